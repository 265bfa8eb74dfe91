//===- KernelContract.h - the kernel funcs both targets compile -*- C++ -*-===//
//
// Kernel func contract (what vmoe-lower-to-kernels produces; the CPU target
// checks it in vmoe-cpu-extract-kernels, the CUDA target splits signatures
// by it): a top-level `func.func @k` with the unit attribute `vmoe.kernel`,
// no results, and arguments in this order:
//   1. bindings: memrefs with static shape, identity layout, default memory
//      space, int/float elements of whole bytes (f32, i32, i8, bf16, ...);
//   2. push constants: `index` (dispatch constants[j], int64);
//   3. workgroup id x, y, z: `index`;
//   4. only when the func has `vmoe.scratch_size = N : i64`: the per-worker
//      scratch, `memref<Nxi8>`.
// The attribute names are those of vmoe/Dialect/IR/VmoeContract.h.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TARGET_COMMON_KERNELCONTRACT_H
#define VMOE_TARGET_COMMON_KERNELCONTRACT_H

#include "vmoe/Dialect/IR/VmoeContract.h"

#include "mlir/Support/LLVM.h"

namespace mlir {
class DialectRegistry;
class Operation;
namespace func {
class FuncOp;
} // namespace func
} // namespace mlir

namespace mlir::vmoe::target {

/// Whether `op` is a kernel func (a func.func with `vmoe.kernel`).
bool isKernelFunc(Operation *op);

/// Checks the kernel contract above for one `vmoe.kernel` func; emits an
/// error on the func and fails when it is not met.
LogicalResult verifyKernelFunc(func::FuncOp func);

/// Registers every dialect a kernel module may use (func, arith, math, scf,
/// memref, vector, x86vector, affine, index, ub, cf, llvm) and the builtin
/// and LLVM dialect translations to LLVM IR.
void registerKernelDialects(DialectRegistry &registry);

} // namespace mlir::vmoe::target

#endif // VMOE_TARGET_COMMON_KERNELCONTRACT_H
