//===- CudaBackend.h - Run a module's schedule on an NVIDIA GPU -*- C++ -*-===//
//
// The CUDA backend reaches the GPU through the CUDA driver API, loaded at run
// time with dlopen("libcuda.so.1"): the runtime builds, links and runs where
// CUDA is absent, and a CUDA session then fails with UNSUPPORTED and a
// message that says what is missing.
//
// Per session: one device allocation holds the arena, the constants, staging
// buffers for the caller's inputs and outputs (at the maximum batch) and the
// kernels' scratch; one stream runs the schedule. A run copies the inputs
// in, launches every dispatch (as one CUDA graph per set of call-dependent
// push constants, i.e. per capacity / BPR / batch setting, when graphs
// work), copies the outputs and the routing statistics back, and
// synchronizes. Kernel parameters follow the CUDA kernel ABI of
// format/include/vmoe/kernel_abi.h.
//
// The driver is an interface (DriverApi, a table of entry points), so tests
// drive the whole backend with a fake driver on machines without a GPU.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_CUDABACKEND_H
#define VMOE_RUNTIME_CUDABACKEND_H

#include "Module.h"
#include "vmoe/runtime.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace vmoe {
namespace cuda {

// Driver API types, as in cuda.h (which this runtime does not include).
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
struct CUctx_st;
struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;
struct CUgraph_st;
struct CUgraphExec_st;
using CUcontext = CUctx_st *;
using CUmodule = CUmod_st *;
using CUfunction = CUfunc_st *;
using CUstream = CUstream_st *;
using CUgraph = CUgraph_st *;
using CUgraphExec = CUgraphExec_st *;

constexpr CUresult kCudaSuccess = 0;
constexpr int kAttrComputeCapabilityMajor = 75;
constexpr int kAttrComputeCapabilityMinor = 76;
/// Streams are created blocking (flags 0): the schedule's stream then also
/// waits for work on the legacy stream (the constants, the memset).
constexpr int kStreamDefault = 0;
constexpr int kStreamCaptureModeThreadLocal = 1;

/// The driver entry points the backend uses, looked up by name (the _v2
/// names where the driver has them). Graph entries may be null: the backend
/// then launches the dispatches one by one.
struct DriverApi {
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDriverGetVersion)(int *);
  CUresult (*cuDeviceGetCount)(int *);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
  CUresult (*cuDeviceGetName)(char *, int, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuDevicePrimaryCtxRelease)(CUdevice);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuModuleLoadData)(CUmodule *, const void *);
  CUresult (*cuModuleUnload)(CUmodule);
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
  CUresult (*cuStreamCreate)(CUstream *, unsigned);
  CUresult (*cuStreamDestroy)(CUstream);
  CUresult (*cuStreamSynchronize)(CUstream);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, unsigned, CUstream, void **,
                             void **);
  CUresult (*cuGetErrorName)(CUresult, const char **);
  CUresult (*cuGetErrorString)(CUresult, const char **);
  // Optional (CUDA graphs).
  CUresult (*cuStreamBeginCapture)(CUstream, int);
  CUresult (*cuStreamEndCapture)(CUstream, CUgraph *);
  CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec *, CUgraph,
                                          unsigned long long);
  CUresult (*cuGraphLaunch)(CUgraphExec, CUstream);
  CUresult (*cuGraphExecDestroy)(CUgraphExec);
  CUresult (*cuGraphDestroy)(CUgraph);
};

/// dlopens `library` (default "libcuda.so.1") once per process and fills
/// *api. UNSUPPORTED, naming the library or the missing entry point, when
/// the driver is absent or too old.
vmoe_status_t loadDriver(const char *library, const DriverApi **api,
                         vmoe_message_t *message);

/// Which image of a CUDA executable a device of compute capability `sm`
/// (e.g. 90) runs: the cubin of exactly its SM, else the PTX when
/// `sm >= ptxSm` (the driver compiles it), else none.
struct ImageChoice {
  bool ptx = false;
  uint32_t sm = 0;
  uint32_t segment = 0;
};
vmoe_status_t chooseImage(const fb::CudaExecutable &executable,
                          uint32_t executableIndex, uint32_t sm,
                          ImageChoice *out, vmoe_message_t *message);

class CudaBackend {
public:
  /// Loads the module's CUDA executables on device `ordinal`, allocates the
  /// device memory and prepares every launch. `api` null: loadDriver(null).
  static vmoe_status_t create(Module *module, uint32_t ordinal,
                              const DriverApi *api, CudaBackend **out,
                              vmoe_message_t *message);
  ~CudaBackend();

  /// Runs the schedule. `constants` holds every dispatch's push constants,
  /// resolved for this call, flattened in dispatch order. The routing
  /// statistics are copied into `hostArena` (same offsets as the device's).
  vmoe_status_t run(const vmoe_tensor_t *inputs, uint32_t inputCount,
                    const vmoe_tensor_t *outputs, uint32_t outputCount,
                    int64_t batch, const int64_t *constants, uint8_t *hostArena,
                    vmoe_message_t *message);

  /// "NVIDIA H100 (sm_90)".
  const char *deviceDescription() const { return description; }
  /// Number of CUDA graphs instantiated so far (0 when graphs are off).
  size_t graphCount() const { return graphs.size(); }

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
  CudaBackend(Module *module, const DriverApi *api)
      : module(module), api(api) {}
  vmoe_status_t init(uint32_t ordinal, vmoe_message_t *message);
  vmoe_status_t check(CUresult result, const char *what,
                      vmoe_message_t *message) const;
  vmoe_status_t launchAll(vmoe_message_t *message);

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
  std::vector<uint64_t> inputOffsets, outputOffsets;
  std::vector<Launch> plans;
  bool useGraphs = false;
  /// Instantiated graphs, by the call-dependent constants they were
  /// captured with.
  std::map<std::vector<int64_t>, CUgraphExec> graphs;
  std::vector<int64_t> key;
};

} // namespace cuda
} // namespace vmoe

#endif // VMOE_RUNTIME_CUDABACKEND_H
