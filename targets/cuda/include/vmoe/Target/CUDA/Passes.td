//===- Passes.td - CUDA code generation passes -------------*- tablegen -*-===//

#ifndef VMOE_TARGET_CUDA_PASSES_TD
#define VMOE_TARGET_CUDA_PASSES_TD

include "mlir/Pass/PassBase.td"

def VmoeCudaOutlineKernels
    : Pass<"vmoe-cuda-outline-kernels", "::mlir::ModuleOp"> {
  let summary = "Turn every vmoe.kernel func into a gpu.func kernel";
  let description = [{
    Adds `gpu.module @vmoe_cuda` to a lowered module (kernels plus host
    schedule) with one `gpu.func ... kernel` per `vmoe.kernel` func `@k`,
    its name made a PTX identifier (other characters become '_'; the kernel
    name is kept in `vmoe.kernel_name`), taking

      bindings..., push constants... (index), workgroup count x, y, z (index),
      [scratch: memref<S * W x i8>, only when @k has vmoe.scratch_size = S]

    where W is the largest workgroup count of the launches of `@k`. Each CUDA
    thread runs one workgroup of the vmoe grid: its linear id
    `block_id.x * block_dim.x + thread_id.x` is split into the workgroup id
    (x fastest), threads past the grid return at once, and the workgroup's
    scratch is bytes [id * S, (id + 1) * S) of the scratch argument. The
    kernel body is inlined from `@k`; symbols it uses (helper funcs,
    memref.globals) are cloned into the gpu.module. The host function and
    the kernel funcs are left as they are. Workgroups of a dispatch write
    disjoint memory (the kernel ABI's rule), so running them as concurrent
    threads computes what the CPU computes.
  }];
  let options = [
    Option<"blockSize", "block-size", "int64_t", "32",
           "CUDA threads per block (workgroups per block)">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::gpu::GPUDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect"];
}

def VmoeCudaEmulateOnCpu
    : Pass<"vmoe-cuda-emulate-on-cpu", "::mlir::ModuleOp"> {
  let summary = "Run the gpu.func kernels as CPU kernels (for testing)";
  let description = [{
    Runs after `vmoe-cuda-outline-kernels`. Replaces every `vmoe.kernel` func
    `@k` by a CPU kernel that executes one CUDA block of the gpu.func `@k`:
    workgroup x is the block id, a loop runs the block's threads one after
    the other, `block_dim.x` is the block size; the workgroup counts become
    push constants and the scratch argument the worker's scratch. Every
    `vmoe.launch @k` gets the CUDA grid (ceil(workgroups / block size), 1, 1)
    and the three counts as literal constants. The gpu.module is erased. The
    CPU back end and runtime then execute exactly the kernel bodies the CUDA
    back end lowers to PTX.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::scf::SCFDialect"];
}

#endif // VMOE_TARGET_CUDA_PASSES_TD
