//===- Passes.td - CPU code generation passes --------------*- tablegen -*-===//

#ifndef VMOE_TARGET_CPU_PASSES_TD
#define VMOE_TARGET_CPU_PASSES_TD

include "mlir/Pass/PassBase.td"

def VmoeCpuExtractKernels
    : Pass<"vmoe-cpu-extract-kernels", "::mlir::ModuleOp"> {
  let summary = "Keep only the kernel functions and what they reference";
  let description = [{
    Erases every top-level op of the module except the `func.func` ops with
    the unit attribute `vmoe.kernel` and the symbols (helper funcs,
    `memref.global`s) that they reference, directly or transitively. Kept
    helpers become private so that only kernel entries are exported later.

    Checks the kernel contract of the lowering (arguments in this order):
    binding memrefs (static shape, identity layout, default memory space),
    push constants (`index`), the workgroup ids x, y, z (`index`), and when
    the func has `vmoe.scratch_size = N : i64`, a last `memref<Nxi8>` for
    the per-worker scratch; no results.
  }];
}

def VmoeCpuEmitAbi : Pass<"vmoe-cpu-emit-abi", "::mlir::ModuleOp"> {
  let summary = "Add the vmoe kernel ABI entry for every lowered kernel";
  let description = [{
    Runs on the LLVM-dialect module that the CPU lowering produced. For every
    `llvm.func @k` with `vmoe.kernel` (bare-pointer signature: binding
    pointers, push constants and workgroup ids as i64, optional scratch
    pointer) it adds

      llvm.func @k_entry(%dispatch: !llvm.ptr, %workgroup: !llvm.ptr) -> i32

    implementing `vmoe_kernel_fn_v0_t` (format/include/vmoe/kernel_abi.h):
    it returns 1, 2 or 3 when the dispatch has fewer bindings, fewer push
    constants, or less scratch than the kernel needs, and otherwise loads
    the bindings, constants, workgroup ids (zero-extended) and scratch
    pointer, calls @k and returns 0. @k becomes internal and always-inline,
    and every other defined function or global internal, so that the entries
    are the only exported symbols. The entry records `vmoe.kernel_name`, `vmoe.binding_count`,
    `vmoe.constant_count` and `vmoe.scratch_size`. Fails on any op that is
    not in the LLVM dialect, so a partial lowering cannot slip through.
  }];
}

#endif // VMOE_TARGET_CPU_PASSES_TD
