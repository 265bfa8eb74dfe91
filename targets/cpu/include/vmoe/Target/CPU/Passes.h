//===- Passes.h - CPU code generation passes --------------------*- C++ -*-===//
//
// The MLIR half of the CPU back end: kernel extraction, the lowering of
// kernel funcs to the LLVM dialect (bare-pointer memrefs) and the kernel ABI
// entries. CpuCodegen.h drives these and the LLVM half.
//
// Kernel func contract (what the vmoe lowering produces, checked by
// vmoe-cpu-extract-kernels): a top-level `func.func @k` with the unit
// attribute `vmoe.kernel`, no results, and arguments in this order:
//   1. bindings: memrefs with static shape, identity layout, default memory
//      space, int/float elements of whole bytes (f32, i32, i8, bf16, ...);
//   2. push constants: `index` (dispatch constants[j], int64);
//   3. workgroup id x, y, z: `index`;
//   4. only when the func has `vmoe.scratch_size = N : i64`: the per-worker
//      scratch, `memref<Nxi8>`.
// The exported symbol of kernel @k is `k_entry` (kEntrySuffix), a
// vmoe_kernel_fn_v0_t (format/include/vmoe/kernel_abi.h).
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TARGET_CPU_PASSES_H
#define VMOE_TARGET_CPU_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

namespace mlir {
class DialectRegistry;
namespace func {
class FuncOp;
} // namespace func
} // namespace mlir

namespace mlir::vmoe::cpu {

/// Unit attribute marking a kernel func.
inline constexpr llvm::StringLiteral kKernelAttrName = "vmoe.kernel";
/// i64 attribute: per-worker scratch bytes; adds the scratch argument.
inline constexpr llvm::StringLiteral kScratchSizeAttrName = "vmoe.scratch_size";
/// Attributes that vmoe-cpu-emit-abi puts on each entry.
inline constexpr llvm::StringLiteral kKernelNameAttrName = "vmoe.kernel_name";
inline constexpr llvm::StringLiteral kBindingCountAttrName =
    "vmoe.binding_count";
inline constexpr llvm::StringLiteral kConstantCountAttrName =
    "vmoe.constant_count";
/// Entry symbol = kernel name + this suffix.
inline constexpr llvm::StringLiteral kEntrySuffix = "_entry";

/// Entry return codes besides 0 (success), for a dispatch state that does
/// not match the kernel; the runtime reports them as a failed kernel.
enum EntryStatus : int32_t {
  kEntryTooFewBindings = 1,
  kEntryTooFewConstants = 2,
  kEntryScratchTooSmall = 3,
};

#define GEN_PASS_DECL
#include "vmoe/Target/CPU/Passes.h.inc"

/// Checks the kernel contract above for one `vmoe.kernel` func; emits an
/// error on the func and fails when it is not met.
LogicalResult verifyKernelFunc(func::FuncOp func);

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
/// the math expansion, the lowering of vector/affine/scf/memref/arith/math/
/// index/ub/cf/func to the LLVM dialect with bare-pointer memrefs, and
/// (optionally) the ABI entries. Built from pass objects, not parsed text.
void buildCpuLowerKernelsToLLVMPipeline(OpPassManager &pm,
                                        const CpuLoweringOptions &options = {});

/// Registers the passes above and the pipeline
/// `vmoe-cpu-lower-kernels-to-llvm` (option `emit-abi`, default true).
void registerCpuCodegenPasses();

/// Registers every dialect a kernel module may use (func, arith, math, scf,
/// memref, vector, affine, index, ub, cf, llvm) and the LLVM IR translation
/// interfaces that compileKernelsToSharedObject needs.
void registerCpuCodegenDialects(DialectRegistry &registry);

#define GEN_PASS_REGISTRATION
#include "vmoe/Target/CPU/Passes.h.inc"

} // namespace mlir::vmoe::cpu

#endif // VMOE_TARGET_CPU_PASSES_H
