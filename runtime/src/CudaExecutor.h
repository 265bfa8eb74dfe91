//===- CudaExecutor.h - Run the schedule on an NVIDIA GPU -------*- C++ -*-===//
//
// Per session: one device allocation holds the arena, the constants, staging
// buffers for the caller's inputs and outputs (at the maximum batch) and the
// kernels' scratch; one stream runs the schedule. A run copies the inputs
// in, launches every dispatch (as one CUDA graph per set of call-dependent
// push constants, i.e. per capacity / BPR / batch setting, when graphs are
// on and work; a bounded cache keeps the most recently used ones), copies
// the outputs and the routing statistics back, and synchronizes. Kernel
// parameters follow the CUDA kernel ABI of format/include/vmoe/kernel_abi.h.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_CUDAEXECUTOR_H
#define VMOE_RUNTIME_CUDAEXECUTOR_H

#include "CudaDriver.h"
#include "Executor.h"
#include "Module.h"
#include "vmoe/runtime.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vmoe {
namespace cuda {

/// The session options a CUDA executor takes.
struct CudaOptions {
  /// The driver's device ordinal.
  uint32_t ordinal = 0;
  /// Run the schedule as CUDA graphs (where the driver has them).
  bool graphs = true;
  /// The most graphs kept at once (>= 1).
  uint32_t graphCacheSize = VMOE_CUDA_GRAPH_CACHE_DEFAULT;
};

/// Instantiated graphs by the call-dependent push constants they were
/// captured with; at most `capacity` of them, the least recently used
/// making room for a new one. Plain data: the executor destroys what
/// insert() evicts.
class GraphCache {
public:
  explicit GraphCache(size_t capacity = 1)
      : capacity(capacity ? capacity : 1) {}

  /// The graph captured for `key`, or null; a hit becomes the most recently
  /// used.
  CUgraphExec find(const std::vector<int64_t> &key);
  /// Adds `exec` for `key` (not present); returns the graph it evicted to
  /// stay within the capacity, or null.
  CUgraphExec insert(const std::vector<int64_t> &key, CUgraphExec exec);

  size_t size() const { return entries.size(); }
  size_t limit() const { return capacity; }
  CUgraphExec at(size_t i) const { return entries[i].exec; }

private:
  struct Entry {
    std::vector<int64_t> key;
    CUgraphExec exec;
    uint64_t lastUse;
  };
  std::vector<Entry> entries;
  size_t capacity;
  uint64_t clock = 0;
};

class CudaExecutor final : public Executor {
public:
  /// Loads the module's CUDA executables on the device, allocates the
  /// device memory and prepares every launch. `api` null: loadDriver(null).
  static vmoe_status_t create(Module *module, const CudaOptions &options,
                              const DriverApi *api, CudaExecutor **out,
                              vmoe_message_t *message);
  ~CudaExecutor() override;

  /// Runs the schedule. The routing statistics are copied into the host
  /// arena (same offsets as the device's). No per-dispatch times: `profile`
  /// is not written.
  vmoe_status_t run(const ExecutorCall &call, DispatchProfile *profile,
                    vmoe_message_t *message) override;
  const uint8_t *hostArena() const override { return hostMirror; }

  /// "NVIDIA H100 (sm_90)".
  const char *deviceDescription() const { return description; }
  /// Number of CUDA graphs held now (0 when graphs are off).
  size_t graphCount() const { return graphs.size(); }
  /// Graphs destroyed to keep the cache within its bound.
  uint64_t graphsEvicted() const { return evicted; }

  /// The launch of one dispatch, as prepared (exposed for tests).
  struct Launch {
    uint32_t kernel = 0;
    CUfunction function = nullptr;
    unsigned blocks = 1, threads = 1;
    /// Parameter values (8 bytes each: pointers, int64 constants and
    /// counts) and the pointers to them that cuLaunchKernel takes.
    std::vector<uint64_t> values;
    std::vector<void *> params;
    /// Where this dispatch's push constants start in run()'s array, and
    /// how many there are.
    size_t constantBegin = 0, constantCount = 0;
    /// Where they go in `values`.
    size_t constantIndex = 0;
  };
  const std::vector<Launch> &launches() const { return plans; }

private:
  CudaExecutor(Module *module, const DriverApi *api, const CudaOptions &options)
      : module(module), api(api), graphs(options.graphCacheSize) {}
  vmoe_status_t init(const CudaOptions &options, vmoe_message_t *message);
  vmoe_status_t openDevice(uint32_t ordinal, uint32_t *sm,
                           vmoe_message_t *message);
  vmoe_status_t checkKernels(vmoe_message_t *message) const;
  vmoe_status_t loadImages(uint32_t sm, vmoe_message_t *message);
  vmoe_status_t allocateMemory(std::vector<uint64_t> *constantOffsets,
                               vmoe_message_t *message);
  vmoe_status_t prepareLaunches(const std::vector<uint64_t> &constantOffsets,
                                vmoe_message_t *message);
  vmoe_status_t check(CUresult result, const char *what,
                      vmoe_message_t *message) const;
  vmoe_status_t launchAll(vmoe_message_t *message);
  vmoe_status_t launchSchedule(vmoe_message_t *message);
  vmoe_status_t copyBack(const ExecutorCall &call, vmoe_message_t *message);

  Module *module;
  const DriverApi *api;
  char description[160] = "";
  CUdevice device = 0;
  bool contextRetained = false;
  CUcontext context = nullptr;
  CUstream stream = nullptr;
  std::vector<CUmodule> modules; // per executable; null when unused
  CUdeviceptr memory = 0;
  uint64_t memoryBytes = 0;
  uint64_t arenaOffset = 0;
  uint64_t scratchOffset = 0;
  std::vector<uint64_t> inputOffsets, outputOffsets;
  /// The routing statistics, copied back after each run.
  uint8_t *hostMirror = nullptr;
  uint64_t hostMirrorBytes = 0;
  std::vector<Launch> plans;
  bool useGraphs = false;
  GraphCache graphs;
  uint64_t evicted = 0;
  std::vector<int64_t> key;
};

} // namespace cuda
} // namespace vmoe

#endif // VMOE_RUNTIME_CUDAEXECUTOR_H
