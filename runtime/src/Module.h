//===- Module.h - A loaded, verified module ---------------------*- C++ -*-===//
#ifndef VMOE_RUNTIME_MODULE_H
#define VMOE_RUNTIME_MODULE_H

#include "ModuleVerifier.h"
#include "vmoe/kernel_abi.h"
#include "vmoe/runtime.h"

#include <atomic>
#include <cstdint>
#include <pthread.h>
#include <vector>

namespace vmoe {

/// Immutable after load, except for the CPU executables, which the first CPU
/// session loads (under a mutex) and all later sessions share.
class Module {
public:
  /// `options` are valid (CApi checked them).
  static vmoe_status_t loadFile(const char *path,
                                const vmoe_module_load_options_t &options,
                                Module **out, vmoe_message_t *message);
  static vmoe_status_t loadMemory(const void *data, size_t size,
                                  vmoe_memory_mode_t mode,
                                  const vmoe_module_load_options_t &options,
                                  Module **out, vmoe_message_t *message);

  void retain() { refCount.fetch_add(1, std::memory_order_relaxed); }
  void release();

  const fb::Module &root() const { return *verified.root; }
  const vmoe_module_header_t &header() const { return verified.header; }
  const uint8_t *segmentData(uint32_t segment) const {
    return verified.segmentBase + root().segments()->Get(segment)->offset();
  }
  uint64_t segmentLength(uint32_t segment) const {
    return root().segments()->Get(segment)->length();
  }
  uint64_t inputItemBytes(uint32_t i) const {
    return verified.inputItemBytes[i];
  }
  uint64_t outputItemBytes(uint32_t i) const {
    return verified.outputItemBytes[i];
  }
  uint64_t maxScratchSize() const { return verified.maxScratchSize; }
  /// What the load checked (vmoe_module_integrity).
  bool signatureVerified() const { return checkedSignature; }
  bool weightsVerified() const { return checkedWeights; }
  /// Bytes of input/output `i` at `batch` (the whole tensor when it has no
  /// batch dim).
  uint64_t inputBytes(uint32_t i, int64_t batch) const {
    return tensorBytes(root().signature()->inputs()->Get(i), inputItemBytes(i),
                       batch);
  }
  uint64_t outputBytes(uint32_t i, int64_t batch) const {
    return tensorBytes(root().signature()->outputs()->Get(i),
                       outputItemBytes(i), batch);
  }

  /// Loads every CPU executable the kernels use and resolves every kernel
  /// entry; fails if a kernel lives in a non-CPU executable. Idempotent and
  /// thread-safe.
  vmoe_status_t prepareCpu(vmoe_message_t *message);
  /// Valid after prepareCpu succeeded.
  vmoe_kernel_fn_v0_t cpuKernel(uint32_t kernel) const {
    return cpuKernels[kernel];
  }

private:
  static uint64_t tensorBytes(const fb::TensorSpec *t, uint64_t itemBytes,
                              int64_t batch) {
    return t->batch_dim() >= 0 ? itemBytes * static_cast<uint64_t>(batch)
                               : itemBytes;
  }

  /// Mapped: a read-only mapping of the file, or a private copy made
  /// read-only once filled (munmap on release); Borrowed: the caller's.
  enum class Storage { Mapped, Borrowed };
  Module() = default;
  ~Module();
  vmoe_status_t init(const uint8_t *bytes, uint64_t length, Storage how,
                     const vmoe_module_load_options_t &options,
                     vmoe_message_t *message);
  static vmoe_status_t finishLoad(const uint8_t *bytes, uint64_t length,
                                  Storage how,
                                  const vmoe_module_load_options_t &options,
                                  Module **out, vmoe_message_t *message);

  std::atomic<uint32_t> refCount{1};
  const uint8_t *data = nullptr;
  uint64_t size = 0;
  Storage storage = Storage::Borrowed;
  VerifiedModule verified;
  bool checkedSignature = false;
  bool checkedWeights = false;

  pthread_mutex_t cpuMutex = PTHREAD_MUTEX_INITIALIZER;
  bool cpuReady = false;
  std::vector<void *> cpuHandles; // per executable; null if not CPU/unused
  std::vector<vmoe_kernel_fn_v0_t> cpuKernels;
};

} // namespace vmoe

#endif // VMOE_RUNTIME_MODULE_H
