//===- Passes.h - CPU code generation passes --------------------*- C++ -*-===//
//
// The MLIR half of the CPU back end: kernel extraction, the lowering of
// kernel funcs to the LLVM dialect (bare-pointer memrefs) and the kernel ABI
// entries. CpuCodegen.h drives these and the LLVM half.
//
// The kernels it compiles follow the kernel func contract of
// vmoe/Target/Common/KernelContract.h. The exported symbol of kernel @k is
// `k_entry` (kCpuEntrySuffix), a vmoe_kernel_fn_v0_t
// (format/include/vmoe/kernel_abi.h).
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TARGET_CPU_PASSES_H
#define VMOE_TARGET_CPU_PASSES_H

#include "vmoe/Target/Common/KernelContract.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

namespace mlir::vmoe::cpu {

/// Entry return codes besides 0 (success), for a dispatch state that does
/// not match the kernel; the runtime reports them as a failed kernel.
enum EntryStatus : int32_t {
  kEntryTooFewBindings = 1,
  kEntryTooFewConstants = 2,
  kEntryScratchTooSmall = 3,
  /// A workgroup id past the largest grid the kernel is launched with (a
  /// module whose metadata asks for a larger grid than the code was made
  /// for).
  kEntryOutsideGrid = 4,
};

#define GEN_PASS_DECL
#include "vmoe/Target/CPU/Passes.h.inc"

/// Returns a new module (same context) that holds clones of the kernel funcs
/// of `module` and of the symbols they reference, with helpers made private.
/// The input is not modified. Fails (with diagnostics) when a kernel breaks
/// the contract, a referenced symbol is missing, or there is no kernel.
FailureOr<OwningOpRef<ModuleOp>> extractKernelModule(ModuleOp module);

struct CpuLoweringOptions {
  /// Also run vmoe-cpu-emit-abi (the result is then ready for translation).
  bool emitAbi = true;
};

/// Adds, to a pass manager anchored on builtin.module: extract-kernels,
/// the math expansion (vmoe-expand-math), the lowering of vector/affine/scf/
/// memref/arith/math/index/ub/cf/func to the LLVM dialect with bare-pointer
/// memrefs, and (optionally) the ABI entries. Built from pass objects, not
/// parsed text.
void buildCpuLowerKernelsToLLVMPipeline(OpPassManager &pm,
                                        const CpuLoweringOptions &options = {});

/// Registers the passes above, the shared ones of the targets
/// (vmoe-expand-math) and the pipeline `vmoe-cpu-lower-kernels-to-llvm`
/// (option `emit-abi`, default true).
void registerCpuCodegenPasses();

/// Registers every dialect a kernel module may use and the LLVM IR
/// translation interfaces that compileKernelsToSharedObject needs
/// (target::registerKernelDialects).
void registerCpuCodegenDialects(DialectRegistry &registry);

#define GEN_PASS_REGISTRATION
#include "vmoe/Target/CPU/Passes.h.inc"

} // namespace mlir::vmoe::cpu

#endif // VMOE_TARGET_CPU_PASSES_H
