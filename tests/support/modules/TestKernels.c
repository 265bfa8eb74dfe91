/*
 * Test kernels for the runtime and writer tests, written against the kernel
 * ABI (format/include/vmoe/kernel_abi.h) the way the compiler's kernels are.
 * Built into a shared object that the tests embed into modules, and once
 * more with VMOE_TEST_KERNELS_VARIANT into a second object whose add kernel
 * subtracts: two modules with the same kernel names and different code.
 * Each comment says which bindings the kernel writes: a module built with
 * it declares exactly those in KernelDesc::writtenBindings.
 */
#include "vmoe/kernel_abi.h"

#include <stdint.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

static uint64_t linearId(const vmoe_dispatch_state_v0_t *d,
                         const vmoe_workgroup_state_v0_t *w) {
  return w->workgroup_id[0] +
         (uint64_t)d->workgroup_count[0] *
             (w->workgroup_id[1] +
              (uint64_t)d->workgroup_count[1] * w->workgroup_id[2]);
}

static uint64_t minLength(const vmoe_dispatch_state_v0_t *d) {
  uint64_t n = UINT64_MAX;
  for (uint32_t i = 0; i < d->binding_count; ++i)
    if (d->binding_lengths[i] < n)
      n = d->binding_lengths[i];
  return n;
}

/* out = a + b over f32. Bindings: a, b, out (written). Constants: tile
 * (elements per workgroup). Bounded by the shortest binding (a smaller
 * batch). */
EXPORT int vmoe_test_add_f32(const vmoe_dispatch_state_v0_t *d,
                             const vmoe_workgroup_state_v0_t *w) {
  if (d->binding_count != 3 || d->constant_count != 1)
    return 1;
  const float *a = (const float *)d->bindings[0];
  const float *b = (const float *)d->bindings[1];
  float *out = (float *)d->bindings[2];
  uint64_t n = minLength(d) / sizeof(float);
  uint64_t begin = linearId(d, w) * (uint64_t)d->constants[0];
  uint64_t end = begin + (uint64_t)d->constants[0];
  for (uint64_t i = begin; i < end && i < n; ++i)
#ifdef VMOE_TEST_KERNELS_VARIANT
    out[i] = a[i] - b[i]; // the variant library: same names, other code
#else
    out[i] = a[i] + b[i];
#endif
  return 0;
}

/* out = in * constants[0] / 1000. Bindings: in, out (written). Constants:
 * scale in thousandths, tile. */
EXPORT int vmoe_test_scale_f32(const vmoe_dispatch_state_v0_t *d,
                               const vmoe_workgroup_state_v0_t *w) {
  if (d->binding_count != 2 || d->constant_count != 2)
    return 1;
  const float *in = (const float *)d->bindings[0];
  float *out = (float *)d->bindings[1];
  float scale = (float)d->constants[0] / 1000.0f;
  uint64_t n = minLength(d) / sizeof(float);
  uint64_t begin = linearId(d, w) * (uint64_t)d->constants[1];
  uint64_t end = begin + (uint64_t)d->constants[1];
  for (uint64_t i = begin; i < end && i < n; ++i)
    out[i] = in[i] * scale;
  return 0;
}

/* Writes every push constant into an int64 output: out[i] = constants[i].
 * Binding: out (written). */
EXPORT int vmoe_test_echo_constants(const vmoe_dispatch_state_v0_t *d,
                                    const vmoe_workgroup_state_v0_t *w) {
  (void)w;
  if (d->binding_count != 1 ||
      d->binding_lengths[0] < d->constant_count * sizeof(int64_t))
    return 1;
  int64_t *out = (int64_t *)d->bindings[0];
  for (uint32_t i = 0; i < d->constant_count; ++i)
    out[i] = d->constants[i];
  return 0;
}

/* Copies min(len src, len dst) bytes. Bindings: src, dst (written). */
EXPORT int vmoe_test_copy(const vmoe_dispatch_state_v0_t *d,
                          const vmoe_workgroup_state_v0_t *w) {
  (void)w;
  if (d->binding_count != 2)
    return 1;
  memcpy(d->bindings[1], d->bindings[0], (size_t)minLength(d));
  return 0;
}

/* Top-k routing bookkeeping as vmoe does it, from given expert choices: one
 * workgroup per group. Bindings: ids int32[N][K] (the chosen experts),
 * counts int32[G][E] (written), kept int32[N] (written). Constants: E, K, S, C,
 * tokens per image, batch. Assignments go k-major (all tokens' first choice,
 * then the second...), each takes the next slot of its expert, and slots past C
 * are dropped but still counted. */
EXPORT int vmoe_test_route(const vmoe_dispatch_state_v0_t *d,
                           const vmoe_workgroup_state_v0_t *w) {
  if (d->binding_count != 3 || d->constant_count != 6)
    return 1;
  const int32_t *ids = (const int32_t *)d->bindings[0];
  int32_t *counts = (int32_t *)d->bindings[1];
  int32_t *kept = (int32_t *)d->bindings[2];
  int64_t e = d->constants[0], k = d->constants[1], s = d->constants[2];
  int64_t capacity = d->constants[3];
  int64_t tokens = d->constants[4] * d->constants[5];
  int64_t g = (int64_t)linearId(d, w);
  int32_t *groupCounts = counts + g * e;
  for (int64_t x = 0; x < e; ++x)
    groupCounts[x] = 0;
  for (int64_t t = g * s; t < (g + 1) * s && t < tokens; ++t)
    kept[t] = 0;
  for (int64_t choice = 0; choice < k; ++choice) {
    for (int64_t t = g * s; t < (g + 1) * s && t < tokens; ++t) {
      int32_t expert = ids[t * k + choice];
      if (expert < 0 || expert >= e)
        return 2;
      int32_t slot = groupCounts[expert]++;
      if (slot < capacity)
        ++kept[t];
    }
  }
  return 0;
}

/* Fails (returns 7) in the workgroup whose linear id is constants[0].
 * Writes no binding. */
EXPORT int vmoe_test_fail(const vmoe_dispatch_state_v0_t *d,
                          const vmoe_workgroup_state_v0_t *w) {
  return (int64_t)linearId(d, w) == d->constants[0] ? 7 : 0;
}

/* Each workgroup writes its id and a value that takes some work to compute
 * into its own two slots, after a round trip through the worker's scratch.
 * Binding: out uint32[2 * workgroups] (written). */
EXPORT int vmoe_test_stamp(const vmoe_dispatch_state_v0_t *d,
                           const vmoe_workgroup_state_v0_t *w) {
  if (w->worker_id >= w->worker_count || w->scratch_size < 64 || !w->scratch)
    return 3;
  uint64_t id = linearId(d, w);
  uint32_t *out = (uint32_t *)d->bindings[0];
  if (d->binding_lengths[0] < (id + 1) * 2 * sizeof(uint32_t))
    return 4;
  volatile uint64_t *scratch = (volatile uint64_t *)w->scratch;
  scratch[0] = id;
  uint64_t h = 1469598103934665603ull ^ scratch[0];
  for (int i = 0; i < 2000; ++i)
    h = (h ^ (uint64_t)i) * 1099511628211ull;
  out[2 * id] = w->workgroup_id[0] | (w->workgroup_id[1] << 10) |
                (w->workgroup_id[2] << 20);
  out[2 * id + 1] = (uint32_t)(h ^ (h >> 32));
  return 0;
}

/* Signals that it started (int32 gate[1] = 1), then waits until the caller
 * sets gate[0] to nonzero: a run that stays under way while a test calls the
 * same session from another thread. Binding: gate int32[2] (written: an
 * output, so writable). */
EXPORT int vmoe_test_wait_gate(const vmoe_dispatch_state_v0_t *d,
                               const vmoe_workgroup_state_v0_t *w) {
  (void)w;
  if (d->binding_count != 1 || d->binding_lengths[0] < 2 * sizeof(int32_t))
    return 1;
  int32_t *gate = (int32_t *)d->bindings[0];
  __atomic_store_n(&gate[1], 1, __ATOMIC_RELEASE);
  while (!__atomic_load_n(&gate[0], __ATOMIC_ACQUIRE))
    ;
  return 0;
}

/* The pack step of a toy expert shard (ShardSupport.h): fills chunk j of the
 * send region (the part for rank j) with values that name the sender, the
 * receiver and the input. Bindings: x (f32, one float per token), send
 * (written). Constants: rank, ranks, batch, capacity C, tokens per image T,
 * group size S. Chunks follow the collective contract with 4 bytes per group
 * and 4 per slot: G + G * C floats, G = ceil(batch * T / S):
 *   send[j * chunk + q] = 1000 * rank + 100 * j + x[q % (batch * T)]. */
EXPORT int vmoe_test_pack_chunks(const vmoe_dispatch_state_v0_t *d,
                                 const vmoe_workgroup_state_v0_t *w) {
  (void)w;
  if (d->binding_count != 2 || d->constant_count != 6)
    return 1;
  const float *x = (const float *)d->bindings[0];
  float *send = (float *)d->bindings[1];
  int64_t rank = d->constants[0], ranks = d->constants[1];
  int64_t batch = d->constants[2], capacity = d->constants[3];
  int64_t perImage = d->constants[4], groupSize = d->constants[5];
  if (ranks < 1 || batch < 1 || capacity < 1 || perImage < 1 || groupSize < 1)
    return 2;
  uint64_t tokens = (uint64_t)batch * (uint64_t)perImage;
  uint64_t groups = (tokens + (uint64_t)groupSize - 1) / (uint64_t)groupSize;
  uint64_t chunk = groups + groups * (uint64_t)capacity;
  if (tokens * sizeof(float) > d->binding_lengths[0] ||
      chunk * (uint64_t)ranks * sizeof(float) > d->binding_lengths[1])
    return 3;
  for (int64_t j = 0; j < ranks; ++j)
    for (uint64_t q = 0; q < chunk; ++q)
      send[(uint64_t)j * chunk + q] =
          (float)(1000 * rank + 100 * j) + x[q % tokens];
  return 0;
}
