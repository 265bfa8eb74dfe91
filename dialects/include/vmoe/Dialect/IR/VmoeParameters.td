//===- VmoeParameters.td - named model parameters ----------*- tablegen -*-===//
//
// Weights never pass through the IR: the tensor-level model names each
// parameter (`vmoe.parameter`), the lowering records how each weight global
// is packed from them (`#vmoe.packed_weight`), and the module serializer
// streams the tensors from the checkpoint into the module.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_DIALECT_VMOEPARAMETERS_TD
#define VMOE_DIALECT_VMOEPARAMETERS_TD

include "vmoe/Dialect/IR/VmoeBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Vmoe_ParameterOp : Vmoe_Op<"parameter", [Pure]> {
  let summary = "a model weight, named by its path in the checkpoint";
  let description = [{
    The value of the parameter `name` (its path in vmoe's Flax tree, without
    a leading "params/", as the checkpoint readers name tensors), as a
    float32 tensor of the result's shape. The IR holds no weight values:
    the compiler binds parameters to a weights file (`vmoe-compile
    --weights`) or to deterministic random values (`--random-weights`) and
    streams them into the module when it is written; a parameter whose
    tensor is missing or has another shape is an error that names it.
    Checkpoints may store bfloat16, float16 or float64: they are converted
    to float32 exactly (float64 rounded to nearest).

    Example:
    ```mlir
    %w = vmoe.parameter "Encoder/encoderblock_0/Mlp/Dense_0/kernel" : tensor<32x64xf32>
    ```
  }];
  let arguments = (ins StrAttr:$name);
  let results = (outs Vmoe_F32Tensor:$result);
  let assemblyFormat = "$name attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Vmoe_PackLayout : I32EnumAttr<"PackLayout",
    "how a weight global is made of parameters", [
      I32EnumAttrCase<"Copy", 0, "copy">,
      I32EnumAttrCase<"Panels", 1, "panels">,
      I32EnumAttrCase<"Bias", 2, "bias">,
      I32EnumAttrCase<"Int8Scales", 3, "int8_scales">,
      I32EnumAttrCase<"Int8ColSums", 4, "int8_col_sums">
    ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::vmoe";
}

def Vmoe_PackedWeightAttr : AttrDef<Vmoe_Dialect, "PackedWeight"> {
  let mnemonic = "packed_weight";
  let summary = "how a weight global is packed from named parameters";
  let description = [{
    Carried as `vmoe.packed` by an uninitialized `memref.global`: its bytes
    are made from the named `parameters` when the module is written, in the
    layout the kernels read (vmoe/writer/WeightPacking.h):
    - `copy`: the one parameter as it is (float32).
    - `panels`: the parameters, viewed as (`batch`, `k`, widths[i])
      matrices, side by side as one (batch, K, N) matrix, stored as
      (batch, ceil(N / nr), K, nr) GEMM panels, zero padded; with `k_pairs`
      as (batch, ceil(N / nr), K / 2, 2 nr), the layout of AVX512-BF16's
      vdpbf16ps. The global's element type says f32 or bf16 (rounded to
      nearest even), or i8: each column quantized symmetrically to int8
      (the int8 GEMMs), in k pairs or, with `k_quads`, as (batch,
      ceil(N / nr), K / 4, 4 nr).
    - `bias`: the parameters as (`batch`, widths[i]) rows side by side, zero
      padded to (batch, ceil(N / nr) * nr).
    - `int8_scales` / `int8_col_sums`: from the same (`batch`, `k`,
      widths[i]) matrices as int8 panels, each column's f32 scale / the
      i32 sum of its int8 values, laid out as `bias`.
    A leading dimension `batch` is present when batch > 1. The dialect
    checks that the global's type is the one the packing makes.

    Example:
    ```mlir
    memref.global "private" constant @m_mlp_w1_packed_0 : memref<4x32x16xf32>
        {vmoe.packed = #vmoe.packed_weight<panels, ["Encoder/encoderblock_0/Mlp/Dense_0/kernel"],
                                           widths = [64], batch = 1, k = 32, nr = 16, k_pairs = false>}
    ```
  }];
  let parameters = (ins
    EnumParameter<Vmoe_PackLayout>:$layout,
    "::mlir::ArrayAttr":$parameters,
    ArrayRefParameter<"int64_t">:$widths,
    "int64_t":$batch,
    "int64_t":$k,
    "int64_t":$nr,
    "bool":$k_pairs,
    DefaultValuedParameter<"bool", "false">:$k_quads
  );
  let assemblyFormat = [{
    `<` $layout `,` $parameters `,` `widths` `=` `[` $widths `]` `,`
    `batch` `=` $batch `,` `k` `=` $k `,` `nr` `=` $nr `,`
    `k_pairs` `=` $k_pairs (`,` `k_quads` `=` $k_quads^)? `>`
  }];
  let extraClassDeclaration = [{
    /// The shape and element type of the global it makes.
    ::llvm::SmallVector<int64_t> getPackedShape() const;
    /// The parameter names, in order.
    ::llvm::SmallVector<::llvm::StringRef> getParameterNames() const;
  }];
  let genVerifyDecl = 1;
}

#endif // VMOE_DIALECT_VMOEPARAMETERS_TD
