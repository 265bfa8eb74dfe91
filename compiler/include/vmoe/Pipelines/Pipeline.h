//===- Pipeline.h - the pass pipeline vmoe-compile runs ---------*- C++ -*-===//
//
// One named pass pipeline, `vmoe-pipeline`, is what vmoe-compile runs and
// what vmoe-opt runs too, stoppable after each phase (compile-to=):
//   graph    vmoe-infer-capacity, vmoe-decompose, canonicalize, cse
//   kernels  + vmoe-lower-to-kernels, vmoe-record-written-bindings
//   llvm     + vmoe-cpu-lower-kernels-to-llvm (the kernels alone, in the
//            LLVM dialect, with their ABI entries)
// vmoe-compile --emit=mlir stops after graph, --emit=kernels after kernels;
// the rest (LLVM IR, machine code, the module file) is not IR.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_PIPELINES_PIPELINE_H
#define VMOE_PIPELINES_PIPELINE_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

#include <string>

namespace mlir::vmoe {

struct VmoePipelineOptions : public PassPipelineOptions<VmoePipelineOptions> {
  Option<std::string> compileTo{
      *this, "compile-to",
      llvm::cl::desc("The last phase: graph, kernels or llvm"),
      llvm::cl::init("kernels")};
  Option<double> maxCapacityFactor{
      *this, "max-capacity-factor",
      llvm::cl::desc("Largest per-call capacity factor (0: each layer's)"),
      llvm::cl::init(0.0)};
  Option<int64_t> vectorWidth{
      *this, "vector-width",
      llvm::cl::desc("f32 lanes of the vector registers (8, 16, 4)"),
      llvm::cl::init(8)};
  Option<int64_t> microRows{*this, "micro-rows",
                            llvm::cl::desc("Rows of the GEMM register block"),
                            llvm::cl::init(6)};
  Option<int64_t> microVectors{
      *this, "micro-vectors",
      llvm::cl::desc("Vectors per row of the GEMM register block"),
      llvm::cl::init(2)};
  Option<bool> expertWeightsBf16{
      *this, "expert-weights-bf16",
      llvm::cl::desc("Store the expert weights as bfloat16"),
      llvm::cl::init(false)};
  Option<bool> expertBf16Math{*this, "expert-bf16-math",
                              llvm::cl::desc("bf16 x bf16 expert GEMMs"),
                              llvm::cl::init(false)};
  Option<bool> nativeBf16Dot{
      *this, "native-bf16-dot",
      llvm::cl::desc("With expert-bf16-math: AVX512-BF16 vdpbf16ps"),
      llvm::cl::init(false)};
  Option<int64_t> expertShards{
      *this, "expert-shards",
      llvm::cl::desc("Split the experts over this many ranks (1: not split)"),
      llvm::cl::init(1)};
  Option<bool> expertInt8{*this, "expert-int8",
                          llvm::cl::desc("int8 expert GEMMs"),
                          llvm::cl::init(false)};
  Option<bool> denseInt8{*this, "dense-int8",
                         llvm::cl::desc("int8 attention and dense MLP GEMMs"),
                         llvm::cl::init(false)};
  Option<std::string> int8Dot{
      *this, "int8-dot",
      llvm::cl::desc("The int8 GEMMs' dot product: avx2, avx-vnni, "
                     "avx512-vnni, sdot"),
      llvm::cl::init("")};
};

/// Whether `phase` is one of graph, kernels, llvm.
bool isPipelinePhase(llvm::StringRef phase);

/// Adds the phases of vmoe-pipeline up to `options.compileTo` to `pm`
/// (anchored on builtin.module).
void buildVmoePipeline(OpPassManager &pm, const VmoePipelineOptions &options);

/// Registers `vmoe-pipeline` (for vmoe-opt).
void registerVmoePipeline();

} // namespace mlir::vmoe

#endif // VMOE_PIPELINES_PIPELINE_H
