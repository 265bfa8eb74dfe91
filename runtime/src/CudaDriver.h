//===- CudaDriver.h - The CUDA driver API, loaded at run time ---*- C++ -*-===//
//
// The runtime reaches the GPU through the CUDA driver API, loaded at run time
// with dlopen("libcuda.so.1"): the runtime builds, links and runs where CUDA
// is absent, and a CUDA session then fails with UNSUPPORTED and a message
// that says what is missing.
//
// The driver is an interface (DriverApi, a table of entry points), so tests
// drive the whole CUDA executor with a fake driver on machines without a GPU.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_CUDADRIVER_H
#define VMOE_RUNTIME_CUDADRIVER_H

#include "Module.h"
#include "vmoe/runtime.h"

#include <cstddef>
#include <cstdint>

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

} // namespace cuda
} // namespace vmoe

#endif // VMOE_RUNTIME_CUDADRIVER_H
