//===- vmoe-opt.cpp - the vmoe pass driver --------------------------------===//
//
// mlir-opt with the vmoe dialect and passes, plus every upstream dialect,
// pass and extension that our pipelines use, so that pass debugging works
// with the usual flags: --pass-pipeline, --mlir-print-ir-after-all,
// --mlir-print-ir-tree-dir, -split-input-file, -verify-diagnostics. It runs
// vmoe-compile's own pipeline too: --vmoe-pipeline=compile-to=PHASE.
//
//===----------------------------------------------------------------------===//

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "vmoe/Conversion/Passes.h"
#include "vmoe/Dialect/IR/VmoeDialect.h"
#include "vmoe/Dialect/Transforms/Passes.h"
#include "vmoe/Pipelines/Pipeline.h"
#include "vmoe/Target/CPU/Passes.h"
#include "vmoe/Target/CUDA/Passes.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/raw_ostream.h"

#include "../common/ToolSupport.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  mlir::vmoe::registerVmoePasses();
  mlir::vmoe::cpu::registerCpuCodegenPasses();
  mlir::vmoe::cuda::registerCudaCodegenPasses();
  mlir::vmoe::registerVmoeConversionPasses();
  mlir::vmoe::registerVmoePipeline();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  registry.insert<mlir::vmoe::VmoeDialect>();
  // --version: vmoe's version and revision first, then LLVM's.
  llvm::cl::SetVersionPrinter([](llvm::raw_ostream &os) {
    os << vmoe::tools::versionLine("vmoe-opt") << "\n";
    llvm::cl::PrintVersionMessage();
  });
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "vmoe optimizer driver\n", registry));
}
