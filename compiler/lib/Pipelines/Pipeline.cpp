//===- Pipeline.cpp - the pass pipeline vmoe-compile runs -----------------===//

#include "vmoe/Pipelines/Pipeline.h"

#include "vmoe/Conversion/Passes.h"
#include "vmoe/Dialect/Transforms/Passes.h"
#include "vmoe/Target/CPU/Passes.h"

#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

namespace mlir::vmoe {

bool isPipelinePhase(llvm::StringRef phase) {
  return phase == "graph" || phase == "kernels" || phase == "llvm";
}

void buildVmoePipeline(OpPassManager &pm, const VmoePipelineOptions &options) {
  VmoeInferCapacityOptions capacity;
  capacity.maxCapacityFactor = options.maxCapacityFactor;
  pm.addPass(createVmoeInferCapacity(capacity));
  pm.addPass(createVmoeDecompose());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  if (options.compileTo == "graph")
    return;
  VmoeLowerToKernelsOptions lower;
  lower.vectorWidth = options.vectorWidth;
  lower.microRows = options.microRows;
  lower.microVectors = options.microVectors;
  lower.expertWeightsBf16 = options.expertWeightsBf16;
  lower.expertBf16Math = options.expertBf16Math;
  lower.nativeBf16Dot = options.nativeBf16Dot;
  lower.expertShards = options.expertShards;
  lower.expertInt8 = options.expertInt8;
  lower.denseInt8 = options.denseInt8;
  lower.int8Dot = options.int8Dot;
  pm.addPass(createVmoeLowerToKernels(lower));
  // Still at the memref level, before the targets split: both record it.
  pm.addPass(createVmoeRecordWrittenBindings());
  if (options.compileTo == "kernels")
    return;
  cpu::buildCpuLowerKernelsToLLVMPipeline(pm);
}

void registerVmoePipeline() {
  PassPipelineRegistration<VmoePipelineOptions>(
      "vmoe-pipeline",
      "What vmoe-compile runs, up to compile-to=graph|kernels|llvm: capacity "
      "inference, decomposition and cleanup (graph), the kernel lowering "
      "(kernels), the kernels in the LLVM dialect (llvm)",
      [](OpPassManager &pm, const VmoePipelineOptions &options) {
        buildVmoePipeline(pm, options);
      });
}

} // namespace mlir::vmoe
