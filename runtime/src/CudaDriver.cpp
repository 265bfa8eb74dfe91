//===- CudaDriver.cpp - The CUDA driver API, loaded at run time -----------===//

#include "CudaDriver.h"

#include "Diagnostics.h"

#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <new>
#include <pthread.h>

namespace vmoe {
namespace cuda {
namespace {

struct DriverState {
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  bool loaded = false;
  DriverApi api{};
  vmoe_status_t status = VMOE_STATUS_OK;
  vmoe_message_t message{};
} driverState;

template <typename Fn>
bool lookup(void *handle, const char *name, Fn *out, bool required,
            vmoe_message_t *message) {
  void *sym = dlsym(handle, name);
  *out = reinterpret_cast<Fn>(sym);
  if (!sym && required)
    fail(message, VMOE_STATUS_UNSUPPORTED,
         "the CUDA driver has no entry point %s (driver too old?)", name);
  return sym || !required;
}

vmoe_status_t loadDriverFrom(const char *library, DriverApi *api,
                             vmoe_message_t *message) {
  void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *why = dlerror();
    return fail(message, VMOE_STATUS_UNSUPPORTED,
                "the CUDA driver is not available: cannot load %s (%s); "
                "CUDA needs an NVIDIA GPU with its driver installed",
                library, why ? why : "unknown error");
  }
  bool ok =
      lookup(handle, "cuInit", &api->cuInit, true, message) &&
      lookup(handle, "cuDriverGetVersion", &api->cuDriverGetVersion, true,
             message) &&
      lookup(handle, "cuDeviceGetCount", &api->cuDeviceGetCount, true,
             message) &&
      lookup(handle, "cuDeviceGet", &api->cuDeviceGet, true, message) &&
      lookup(handle, "cuDeviceGetAttribute", &api->cuDeviceGetAttribute, true,
             message) &&
      lookup(handle, "cuDeviceGetName", &api->cuDeviceGetName, true, message) &&
      lookup(handle, "cuDevicePrimaryCtxRetain", &api->cuDevicePrimaryCtxRetain,
             true, message) &&
      lookup(handle, "cuDevicePrimaryCtxRelease_v2",
             &api->cuDevicePrimaryCtxRelease, true, message) &&
      lookup(handle, "cuCtxSetCurrent", &api->cuCtxSetCurrent, true, message) &&
      lookup(handle, "cuModuleLoadData", &api->cuModuleLoadData, true,
             message) &&
      lookup(handle, "cuModuleUnload", &api->cuModuleUnload, true, message) &&
      lookup(handle, "cuModuleGetFunction", &api->cuModuleGetFunction, true,
             message) &&
      lookup(handle, "cuMemAlloc_v2", &api->cuMemAlloc, true, message) &&
      lookup(handle, "cuMemFree_v2", &api->cuMemFree, true, message) &&
      lookup(handle, "cuMemsetD8_v2", &api->cuMemsetD8, true, message) &&
      lookup(handle, "cuMemcpyHtoD_v2", &api->cuMemcpyHtoD, true, message) &&
      lookup(handle, "cuMemcpyDtoH_v2", &api->cuMemcpyDtoH, true, message) &&
      lookup(handle, "cuMemcpyHtoDAsync_v2", &api->cuMemcpyHtoDAsync, true,
             message) &&
      lookup(handle, "cuStreamCreate", &api->cuStreamCreate, true, message) &&
      lookup(handle, "cuStreamDestroy_v2", &api->cuStreamDestroy, true,
             message) &&
      lookup(handle, "cuStreamSynchronize", &api->cuStreamSynchronize, true,
             message) &&
      lookup(handle, "cuLaunchKernel", &api->cuLaunchKernel, true, message) &&
      lookup(handle, "cuGetErrorName", &api->cuGetErrorName, true, message) &&
      lookup(handle, "cuGetErrorString", &api->cuGetErrorString, true, message);
  if (!ok) {
    dlclose(handle);
    return VMOE_STATUS_UNSUPPORTED;
  }
  // Graphs are optional: without them, dispatches launch one by one.
  lookup(handle, "cuStreamBeginCapture_v2", &api->cuStreamBeginCapture, false,
         message);
  lookup(handle, "cuStreamEndCapture", &api->cuStreamEndCapture, false,
         message);
  lookup(handle, "cuGraphInstantiateWithFlags",
         &api->cuGraphInstantiateWithFlags, false, message);
  lookup(handle, "cuGraphLaunch", &api->cuGraphLaunch, false, message);
  lookup(handle, "cuGraphExecDestroy", &api->cuGraphExecDestroy, false,
         message);
  lookup(handle, "cuGraphDestroy", &api->cuGraphDestroy, false, message);
  // The handle stays open for the life of the process.
  return VMOE_STATUS_OK;
}

} // namespace

vmoe_status_t loadDriver(const char *library, const DriverApi **api,
                         vmoe_message_t *message) {
  if (library) { // a specific library (tests): not cached
    auto *fresh = new (std::nothrow) DriverApi{};
    if (!fresh)
      return fail(message, VMOE_STATUS_OUT_OF_MEMORY, "out of memory");
    if (vmoe_status_t s = loadDriverFrom(library, fresh, message)) {
      delete fresh;
      return s;
    }
    *api = fresh; // lives as long as the library handle: the process
    return VMOE_STATUS_OK;
  }
  pthread_mutex_lock(&driverState.mutex);
  if (!driverState.loaded) {
    driverState.status =
        loadDriverFrom("libcuda.so.1", &driverState.api, &driverState.message);
    driverState.loaded = true;
  }
  vmoe_status_t status = driverState.status;
  pthread_mutex_unlock(&driverState.mutex);
  if (status) {
    if (message)
      *message = driverState.message;
    return status;
  }
  *api = &driverState.api;
  return VMOE_STATUS_OK;
}

vmoe_status_t chooseImage(const fb::CudaExecutable &executable,
                          uint32_t executableIndex, uint32_t sm,
                          ImageChoice *out, vmoe_message_t *message) {
  for (uint32_t i = 0, n = sizeOf(executable.cubins()); i < n; ++i) {
    const fb::CudaCubin *cubin = executable.cubins()->Get(i);
    if (cubin->sm() == sm) {
      *out = {false, sm, cubin->segment()};
      return VMOE_STATUS_OK;
    }
  }
  if (executable.ptx_segment() >= 0 && executable.ptx_sm() <= sm) {
    *out = {true, executable.ptx_sm(),
            static_cast<uint32_t>(executable.ptx_segment())};
    return VMOE_STATUS_OK;
  }
  char have[160] = "";
  size_t used = 0;
  for (uint32_t i = 0, n = sizeOf(executable.cubins()); i < n; ++i)
    used += snprintf(have + used, used < sizeof(have) ? sizeof(have) - used : 0,
                     "%scubin sm_%u", used ? ", " : "",
                     executable.cubins()->Get(i)->sm());
  if (executable.ptx_segment() >= 0 && used < sizeof(have))
    snprintf(have + used, sizeof(have) - used, "%sPTX for sm_%u and newer",
             used ? ", " : "", executable.ptx_sm());
  return fail(message, VMOE_STATUS_UNSUPPORTED,
              "CUDA executable %u cannot run on this sm_%u GPU: it has %s; "
              "recompile with --sm=%u",
              executableIndex, sm, have, sm);
}

} // namespace cuda
} // namespace vmoe
