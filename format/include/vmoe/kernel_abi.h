/*
 * vmoe kernel ABI: how the runtime calls a kernel the compiler produced.
 *
 * Plain C, shared by the compiler (code generation), the runtime, and
 * hand-written test kernels. Versioned: Kernel.abi_version in the module
 * selects the struct layouts below; the runtime refuses versions it lacks.
 *
 * CPU (abi_version 0). A kernel is an exported function of the module's
 * shared object:
 *
 *   int entry(const vmoe_dispatch_state_v0_t *dispatch,
 *             const vmoe_workgroup_state_v0_t *workgroup);
 *
 * For every dispatch of the schedule the runtime calls the entry once per
 * workgroup of the grid workgroup_count[0] x [1] x [2]. The workgroups of a
 * dispatch run concurrently on the session's thread pool in an unspecified
 * order, so they must write disjoint memory (or synchronize themselves);
 * dispatches run one after the other in schedule order. A nonzero return
 * stops the run: the remaining workgroups of the dispatch are skipped and
 * the call fails with VMOE_STATUS_KERNEL_FAILED naming kernel and workgroup.
 *
 * Bindings: bindings[i] is the base address of binding i of the dispatch
 * (arena + offset, constant + offset, or caller buffer + offset);
 * binding_lengths[i] is the number of valid bytes there in this call. For
 * input/output bindings that is less than the compiled length when the batch
 * is smaller than the maximum: kernels bound their accesses by the batch
 * push constant or by binding_lengths. Constant bindings are read-only.
 *
 * Constants ("push constants"): constants[i] is the value of push constant i
 * of the dispatch, resolved per call from its source: a literal, the
 * capacity C of a MoE layer, the BPR flag (0/1) of a MoE layer, or the
 * actual batch size.
 *
 * Scratch: each worker thread owns scratch_size bytes (the largest
 * Kernel.scratch_size of the module, 64-byte aligned) that stay valid for
 * the whole call; a kernel may use them freely within one workgroup.
 *
 * The entry must not keep pointers past its return, must not call back into
 * the runtime, and must be thread-safe.
 *
 * CUDA (abi_version 0; executable format Cuda). A kernel is the __global__
 * function Kernel.entry of the executable's PTX/cubin. Each workgroup of the
 * grid is one CUDA thread: the runtime launches ceil(x * y * z / B) blocks
 * of B = workgroup_size.x threads, and thread t of block b runs workgroup
 * b * B + t (x fastest; threads past the grid return). Parameters, in order:
 * a device pointer per binding, an int64_t per push constant, the workgroup
 * count x, y, z as int64_t, and when Kernel.scratch_size S > 0 a device
 * pointer to S bytes per workgroup (workgroup i owns [i * S, (i + 1) * S)).
 */
#ifndef VMOE_KERNEL_ABI_H
#define VMOE_KERNEL_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VMOE_KERNEL_ABI_VERSION 0

/* Shared by all workgroups of one dispatch. */
typedef struct vmoe_dispatch_state_v0_t {
  void *const *bindings;
  const uint64_t *binding_lengths;
  uint32_t binding_count;
  uint32_t constant_count;
  const int64_t *constants;
  uint32_t workgroup_count[3];
  uint32_t reserved; /* 0 */
} vmoe_dispatch_state_v0_t;

/* Per call of the entry. */
typedef struct vmoe_workgroup_state_v0_t {
  uint32_t workgroup_id[3];
  /* 0 <= worker_id < worker_count; stable for a thread within a call. */
  uint32_t worker_id;
  uint32_t worker_count;
  uint32_t reserved; /* 0 */
  void *scratch;
  uint64_t scratch_size;
} vmoe_workgroup_state_v0_t;

/* Returns 0 on success. */
typedef int (*vmoe_kernel_fn_v0_t)(const vmoe_dispatch_state_v0_t *dispatch,
                                   const vmoe_workgroup_state_v0_t *workgroup);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* VMOE_KERNEL_ABI_H */
