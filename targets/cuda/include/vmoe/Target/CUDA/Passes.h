//===- Passes.h - CUDA code generation passes -------------------*- C++ -*-===//
//
// The MLIR half of the CUDA back end: kernel funcs -> gpu.func kernels in a
// gpu.module (vmoe-cuda-outline-kernels), and the same gpu.func bodies run
// as CPU kernels for testing without a GPU (vmoe-cuda-emulate-on-cpu).
//
// CUDA kernel ABI (abi_version 0) of a gpu.func @k, in parameter order:
//   1. one device pointer per binding;
//   2. one int64 per push constant;
//   3. the dispatch's workgroup count x, y, z as int64;
//   4. only when the kernel has scratch_size S > 0: a device pointer to
//      S * (x * y * z) bytes, workgroup i using bytes [i * S, (i + 1) * S).
// The runtime launches ceil(x * y * z / B) blocks of B = workgroup_size.x
// threads; thread t of block b runs workgroup b * B + t (x fastest).
//
// The kernel funcs it outlines follow the kernel func contract of
// vmoe/Target/Common/KernelContract.h.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TARGET_CUDA_PASSES_H
#define VMOE_TARGET_CUDA_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"
#include "vmoe/Dialect/IR/VmoeContract.h"

namespace mlir::vmoe::cuda {

/// The gpu.module that vmoe-cuda-outline-kernels adds. Each gpu.func in it
/// carries vmoe.kernel_name (the kernel func it came from; its own name is
/// that name made a PTX identifier), vmoe.block_size and, with scratch,
/// vmoe.workgroup_scratch_size (vmoe/Dialect/IR/VmoeContract.h).
inline constexpr llvm::StringLiteral kGpuModuleName = "vmoe_cuda";

#define GEN_PASS_DECL
#include "vmoe/Target/CUDA/Passes.h.inc"

/// Registers the passes above and the shared ones of the targets
/// (vmoe-expand-math).
void registerCudaCodegenPasses();

/// Registers the dialects and translations the CUDA back end needs (gpu,
/// nvvm, its target attribute and LLVM IR translation).
void registerCudaCodegenDialects(DialectRegistry &registry);

#define GEN_PASS_REGISTRATION
#include "vmoe/Target/CUDA/Passes.h.inc"

} // namespace mlir::vmoe::cuda

#endif // VMOE_TARGET_CUDA_PASSES_H
