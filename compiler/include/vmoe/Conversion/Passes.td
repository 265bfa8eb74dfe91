//===- Passes.td - vmoe conversion passes ------------------*- tablegen -*-===//

#ifndef VMOE_CONVERSION_PASSES_TD
#define VMOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def VmoeLowerToKernels : Pass<"vmoe-lower-to-kernels", "::mlir::ModuleOp"> {
  let summary = "Fuse the decomposed model into CPU kernels and a host schedule";
  let description = [{
    Turns the tensor-level model function (after `vmoe-infer-capacity`,
    `vmoe-decompose` and `canonicalize`) into
    * kernel functions (`vmoe.kernel`) over buffers, written as scf / vector
      loop nests: register-blocked GEMMs with fused epilogues, the fused
      router (gates + softmax + top-k), the slot assignment (vanilla or BPR),
      expert GEMM1 that gathers its rows by slot and applies bias and GELU,
      expert GEMM2 with bias, bf16 rounding and the gate, the combine, and
      the dense ViT kernels;
    * the host function with the same name, over memrefs: buffers
      (`memref.alloc`, weights as `memref.global` packed at compile time for
      the kernels), `vmoe.launch`es in program order, and
      `vmoe.routing_stats`. Each MoE layer's capacity and BPR flag become
      host arguments (`vmoe.knob`), so a compiled module takes them per call;
      the layers' routing metadata is the `vmoe.moe_layers` attribute.
    Expert kernels loop only over the slots that routing filled.
  }];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", "8",
           "f32 lanes of the target's vector registers (8: AVX2, 16: AVX-512, 4: NEON)">,
    Option<"microRows", "micro-rows", "int64_t", "6",
           "rows of the GEMM register block">,
    Option<"microVectors", "micro-vectors", "int64_t", "2",
           "vectors per row of the GEMM register block">,
    Option<"expertWeightsBf16", "expert-weights-bf16", "bool", "false",
           "store the expert weights as bfloat16 (round to nearest even): "
           "half the bytes; the GEMM loop widens them to f32 as it loads "
           "them, accumulation stays f32">,
    Option<"expertBf16Math", "expert-bf16-math", "bool", "false",
           "bf16 expert GEMMs: bf16 weights packed in k pairs, the expert "
           "inputs and the GELU output rounded to bfloat16 and stored as "
           "bf16, bf16 x bf16 products accumulated in f32 (each k pair "
           "adds its odd product, then its even one, as vdpbf16ps does); "
           "implies expert-weights-bf16">,
    Option<"nativeBf16Dot", "native-bf16-dot", "bool", "false",
           "with expert-bf16-math: multiply with x86vector.avx512.dot "
           "(AVX512-BF16 vdpbf16ps; needs vector-width=16) instead of the "
           "same arithmetic in f32 FMAs">,
    Option<"expertShards", "expert-shards", "int64_t", "1",
           "split every MoE layer's experts over this many ranks (expert "
           "parallelism): one rank's schedule, whose expert weights are the "
           "rank's E/N experts and whose MoE layers exchange their dispatch "
           "buffers with vmoe.all_to_all; 1: not split">,
    Option<"expertInt8", "expert-int8", "bool", "false",
           "int8 expert GEMMs: weights quantized per output channel when "
           "the module is written, activation rows quantized at run time, "
           "int32 accumulation, the dequantization, bias, GELU and gate in "
           "f32 (needs int8-dot)">,
    Option<"denseInt8", "dense-int8", "bool", "false",
           "int8 GEMMs for the attention projections and the dense MLPs, "
           "as expert-int8">,
    Option<"int8Dot", "int8-dot", "std::string", "\"\"",
           "the integer dot product of the int8 GEMMs: avx2 (vpmaddwd, "
           "vector-width 8 or 16), avx-vnni (vpdpbusd, 8), avx512-vnni "
           "(vpdpbusd, 16) or sdot (AArch64 dotprod, 4)">
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::func::FuncDialect",
    "::mlir::math::MathDialect", "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect", "::mlir::vector::VectorDialect",
    "::mlir::x86vector::X86VectorDialect", "::mlir::LLVM::LLVMDialect"
  ];
}

def VmoeRecordWrittenBindings
    : Pass<"vmoe-record-written-bindings", "::mlir::ModuleOp"> {
  let summary = "Record which bindings each kernel may write";
  let description = [{
    Sets `vmoe.written_bindings` (array<i1>, one flag per leading memref
    argument) on every `vmoe.kernel` function with a body: true when the
    kernel, or a function it calls, may write through that binding (a store,
    a vector store or transfer_write, a memref.copy target, any op that
    declares a write to it, through views and calls). A use it does not
    understand counts as a write. The serializer records the flags in the
    module; the runtime refuses a constant bound to a written binding.
  }];
}

#endif // VMOE_CONVERSION_PASSES_TD
