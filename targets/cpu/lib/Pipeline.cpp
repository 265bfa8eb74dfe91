//===- Pipeline.cpp - Kernel funcs to the LLVM dialect --------------------===//
//
// The pipeline is built from pass objects rather than parsed from text, so
// a typo cannot turn it into a silent no-op (see the MLIR 22 build notes).
//
//===----------------------------------------------------------------------===//

#include "vmoe/Target/CPU/Passes.h"
#include "vmoe/Target/Common/Passes.h"

#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/IndexToLLVM/IndexToLLVM.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MathToLibm/MathToLibm.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/UBToLLVM/UBToLLVM.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVMPass.h"
#include "mlir/Conversion/VectorToSCF/VectorToSCF.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassOptions.h"
#include "mlir/Pass/PassRegistry.h"

using namespace mlir;

void mlir::vmoe::cpu::buildCpuLowerKernelsToLLVMPipeline(
    OpPassManager &pm, const CpuLoweringOptions &options) {
  pm.addPass(createVmoeCpuExtractKernels());

  // Rank-1 transfers, which convert-vector-to-llvm turns into (masked)
  // loads and stores.
  VectorTransferToSCFOptions transferOptions;
  transferOptions.setTargetRank(1);
  pm.addPass(createConvertVectorToSCFPass(transferOptions));

  // bf16 has no arithmetic on our targets, and its conversions would become
  // compiler-rt calls (__truncsfbf2): compute in f32 and expand the
  // conversions into integer ops (arith-expand below).
  math::MathExtendToSupportedTypesOptions extendMath;
  pm.addPass(math::createMathExtendToSupportedTypes(extendMath));
  arith::ArithEmulateUnsupportedFloatsOptions emulateFloats;
  emulateFloats.sourceTypeStrs = {"bf16"};
  emulateFloats.targetTypeStr = "f32";
  pm.addPass(arith::createArithEmulateUnsupportedFloats(emulateFloats));
  pm.addPass(target::createVmoeExpandMath());

  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  arith::ArithExpandOpsPassOptions expandArith;
  expandArith.includeBf16 = true;
  pm.addPass(arith::createArithExpandOpsPass(expandArith));
  pm.addPass(createSCFToControlFlowPass());

  // x86vector ops (vdpbf16ps of bf16 expert GEMMs) become LLVM intrinsics.
  ConvertVectorToLLVMPassOptions vectorOptions;
  vectorOptions.x86Vector = true;
  pm.addPass(createConvertVectorToLLVMPass(vectorOptions));
  pm.addPass(createConvertMathToLLVMPass());
  // Math left over (f64 functions without an LLVM intrinsic) becomes libm
  // calls, which the shared-object link reports by name.
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createUBToLLVMConversionPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  ConvertFuncToLLVMPassOptions funcOptions;
  // Kernels see bindings as plain pointers: the ABI entry passes them so.
  funcOptions.useBarePtrCallConv = true;
  pm.addPass(createConvertFuncToLLVMPass(funcOptions));
  pm.addPass(createReconcileUnrealizedCastsPass());

  if (options.emitAbi)
    pm.addPass(createVmoeCpuEmitAbi());
}

namespace {
struct LowerKernelsPipelineOptions
    : public PassPipelineOptions<LowerKernelsPipelineOptions> {
  Option<bool> emitAbi{*this, "emit-abi",
                       llvm::cl::desc("Add the vmoe kernel ABI entries"),
                       llvm::cl::init(true)};
};
} // namespace

void mlir::vmoe::cpu::registerCpuCodegenPasses() {
  registerVmoeCPUPasses();
  target::registerTargetCommonPasses();
  PassPipelineRegistration<LowerKernelsPipelineOptions>(
      "vmoe-cpu-lower-kernels-to-llvm",
      "Extract the vmoe.kernel funcs and lower them to the LLVM dialect with "
      "bare-pointer memrefs and libm-free math, plus the kernel ABI entries",
      [](OpPassManager &pm, const LowerKernelsPipelineOptions &options) {
        CpuLoweringOptions lowering;
        lowering.emitAbi = options.emitAbi;
        buildCpuLowerKernelsToLLVMPipeline(pm, lowering);
      });
}

void mlir::vmoe::cpu::registerCpuCodegenDialects(DialectRegistry &registry) {
  target::registerKernelDialects(registry);
}
