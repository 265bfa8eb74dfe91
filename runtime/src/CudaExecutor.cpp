//===- CudaBackend.cpp - Run a module's schedule on an NVIDIA GPU ---------===//

#include "CudaBackend.h"

#include "Diagnostics.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <new>
#include <pthread.h>

namespace vmoe {
namespace cuda {
namespace {

using ull = unsigned long long;

template <typename T> uint32_t sizeOf(const flatbuffers::Vector<T> *v) {
  return v ? v->size() : 0;
}

uint64_t alignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

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

vmoe_status_t CudaBackend::check(CUresult result, const char *what,
                                 vmoe_message_t *message) const {
  if (result == kCudaSuccess)
    return VMOE_STATUS_OK;
  const char *name = nullptr, *text = nullptr;
  if (api->cuGetErrorName)
    api->cuGetErrorName(result, &name);
  if (api->cuGetErrorString)
    api->cuGetErrorString(result, &text);
  vmoe_status_t status = result == 2 /* CUDA_ERROR_OUT_OF_MEMORY */
                             ? VMOE_STATUS_OUT_OF_MEMORY
                             : result == 100 /* CUDA_ERROR_NO_DEVICE */
                                   ? VMOE_STATUS_UNSUPPORTED
                                   : VMOE_STATUS_INTERNAL;
  return fail(message, status, "CUDA: %s failed: %s (%s, %d)", what,
              text ? text : "unknown error", name ? name : "?", result);
}

vmoe_status_t CudaBackend::create(Module *module, uint32_t ordinal,
                                  const DriverApi *api, CudaBackend **out,
                                  vmoe_message_t *message) {
  if (!api)
    if (vmoe_status_t s = loadDriver(nullptr, &api, message))
      return s;
  auto *backend = new (std::nothrow) CudaBackend(module, api);
  if (!backend)
    return fail(message, VMOE_STATUS_OUT_OF_MEMORY, "out of memory");
  if (vmoe_status_t s = backend->init(ordinal, message)) {
    delete backend;
    return s;
  }
  *out = backend;
  return VMOE_STATUS_OK;
}

vmoe_status_t CudaBackend::init(uint32_t ordinal, vmoe_message_t *message) {
  if (vmoe_status_t s = check(api->cuInit(0), "cuInit", message))
    return s;
  int count = 0;
  if (vmoe_status_t s =
          check(api->cuDeviceGetCount(&count), "cuDeviceGetCount", message))
    return s;
  if (count <= 0)
    return fail(message, VMOE_STATUS_UNSUPPORTED,
                "the CUDA driver found no GPU");
  if (ordinal >= static_cast<uint32_t>(count))
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "CUDA device %u does not exist (%d device%s)", ordinal, count,
                count == 1 ? "" : "s");
  if (vmoe_status_t s = check(api->cuDeviceGet(&device, int(ordinal)),
                              "cuDeviceGet", message))
    return s;
  int major = 0, minor = 0;
  if (vmoe_status_t s = check(api->cuDeviceGetAttribute(
                                  &major, kAttrComputeCapabilityMajor, device),
                              "cuDeviceGetAttribute", message))
    return s;
  if (vmoe_status_t s = check(api->cuDeviceGetAttribute(
                                  &minor, kAttrComputeCapabilityMinor, device),
                              "cuDeviceGetAttribute", message))
    return s;
  uint32_t sm = static_cast<uint32_t>(major * 10 + minor);
  char name[96] = "";
  if (api->cuDeviceGetName(name, sizeof(name) - 1, device) != kCudaSuccess)
    snprintf(name, sizeof(name), "CUDA device %u", ordinal);
  snprintf(description, sizeof(description), "%s (sm_%u)", name, sm);

  const fb::Module &m = module->root();
  // Every kernel must live in a CUDA executable.
  for (uint32_t k = 0, n = sizeOf(m.kernels()); k < n; ++k) {
    const fb::Kernel *kernel = m.kernels()->Get(k);
    if (m.executables()->Get(kernel->executable())->format() !=
        fb::ExecutableFormat::Cuda)
      return fail(message, VMOE_STATUS_UNSUPPORTED,
                  "kernel %u ('%.64s') is not CUDA code: the module was "
                  "compiled for the CPU (compile with --target=cuda)",
                  k, kernel->name() ? kernel->name()->c_str() : "");
  }

  if (vmoe_status_t s = check(api->cuDevicePrimaryCtxRetain(&context, device),
                              "cuDevicePrimaryCtxRetain", message))
    return s;
  contextRetained = true;
  if (vmoe_status_t s =
          check(api->cuCtxSetCurrent(context), "cuCtxSetCurrent", message))
    return s;

  // Executables: the cubin of this SM, else PTX (the driver compiles it).
  modules.assign(sizeOf(m.executables()), nullptr);
  for (uint32_t e = 0; e < modules.size(); ++e) {
    const fb::Executable *x = m.executables()->Get(e);
    if (x->format() != fb::ExecutableFormat::Cuda)
      continue;
    ImageChoice choice;
    if (vmoe_status_t s = chooseImage(*x->cuda(), e, sm, &choice, message))
      return s;
    const uint8_t *data = module->segmentData(choice.segment);
    uint64_t length = module->segmentLength(choice.segment);
    // cuModuleLoadData takes PTX as a NUL-terminated string.
    std::vector<char> ptx;
    const void *image = data;
    if (choice.ptx) {
      ptx.assign(data, data + length);
      ptx.push_back('\0');
      image = ptx.data();
    }
    char what[96];
    snprintf(what, sizeof(what), "loading the %s of executable %u",
             choice.ptx ? "PTX" : "cubin", e);
    if (vmoe_status_t s =
            check(api->cuModuleLoadData(&modules[e], image), what, message))
      return s;
  }

  // Device memory: arena | constants | inputs | outputs | scratch.
  uint64_t offset = 0;
  arenaOffset = 0;
  offset = alignUp(m.arena()->size(), 256);
  std::vector<uint64_t> constantOffsets(sizeOf(m.constants()));
  for (uint32_t c = 0; c < constantOffsets.size(); ++c) {
    const fb::Constant *constant = m.constants()->Get(c);
    if (constant->placement() == fb::ConstantPlacement::Arena) {
      constantOffsets[c] = arenaOffset + constant->arena_offset();
      continue;
    }
    constantOffsets[c] = offset;
    offset = alignUp(offset + module->segmentLength(constant->segment()), 256);
  }
  const fb::Signature *sig = m.signature();
  auto maxBytes = [&](const fb::TensorSpec *t, uint64_t item) {
    return t->batch_dim() >= 0 ? item * uint64_t(sig->max_batch()) : item;
  };
  for (uint32_t i = 0, n = sizeOf(sig->inputs()); i < n; ++i) {
    inputOffsets.push_back(offset);
    offset = alignUp(
        offset + maxBytes(sig->inputs()->Get(i), module->inputItemBytes(i)),
        256);
  }
  for (uint32_t i = 0, n = sizeOf(sig->outputs()); i < n; ++i) {
    outputOffsets.push_back(offset);
    offset = alignUp(
        offset + maxBytes(sig->outputs()->Get(i), module->outputItemBytes(i)),
        256);
  }
  const uint64_t scratchOffset = offset;
  for (uint32_t d = 0, n = sizeOf(m.dispatches()); d < n; ++d) {
    const fb::Kernel *k = m.kernels()->Get(m.dispatches()->Get(d)->kernel());
    const fb::Dim3 *g = k->workgroup_count();
    uint64_t need = k->scratch_size() * uint64_t(g->x()) * g->y() * g->z();
    if (scratchOffset + need > offset)
      offset = scratchOffset + need;
  }
  memoryBytes = alignUp(offset, 256) + 256;
  if (vmoe_status_t s =
          check(api->cuMemAlloc(&memory, memoryBytes), "cuMemAlloc", message)) {
    prependMessage(message, "%llu bytes of device memory",
                   static_cast<ull>(memoryBytes));
    return s;
  }
  // Zero once (the CPU arena starts zeroed too), then the constants.
  if (vmoe_status_t s =
          check(api->cuMemsetD8(memory, 0, memoryBytes), "cuMemsetD8", message))
    return s;
  for (uint32_t c = 0; c < constantOffsets.size(); ++c) {
    const fb::Constant *constant = m.constants()->Get(c);
    if (vmoe_status_t s =
            check(api->cuMemcpyHtoD(memory + constantOffsets[c],
                                    module->segmentData(constant->segment()),
                                    module->segmentLength(constant->segment())),
                  "copying the constants", message))
      return s;
  }
  if (vmoe_status_t s = check(api->cuStreamCreate(&stream, kStreamDefault),
                              "cuStreamCreate", message))
    return s;

  // Launches with their parameters; call-dependent values are patched in
  // run().
  size_t constantSlot = 0;
  plans.resize(sizeOf(m.dispatches()));
  for (uint32_t d = 0; d < plans.size(); ++d) {
    const fb::Dispatch *dispatch = m.dispatches()->Get(d);
    const fb::Kernel *k = m.kernels()->Get(dispatch->kernel());
    Launch &launch = plans[d];
    launch.kernel = dispatch->kernel();
    const char *entry = k->entry() ? k->entry()->c_str() : "";
    char what[160];
    snprintf(what, sizeof(what), "looking up kernel '%.100s'", entry);
    if (vmoe_status_t s =
            check(api->cuModuleGetFunction(&launch.function,
                                           modules[k->executable()], entry),
                  what, message))
      return s;
    const fb::Dim3 *g = k->workgroup_count();
    uint64_t workgroups = uint64_t(g->x()) * g->y() * g->z();
    launch.threads = k->workgroup_size()->x();
    launch.blocks = static_cast<unsigned>((workgroups + launch.threads - 1) /
                                          launch.threads);
    for (uint32_t b = 0, n = sizeOf(dispatch->bindings()); b < n; ++b) {
      const fb::Binding *binding = dispatch->bindings()->Get(b);
      uint64_t base = 0;
      switch (binding->kind()) {
      case fb::BufferKind::Arena:
        base = arenaOffset;
        break;
      case fb::BufferKind::Constant:
        base = constantOffsets[binding->index()];
        break;
      case fb::BufferKind::Input:
        base = inputOffsets[binding->index()];
        break;
      case fb::BufferKind::Output:
        base = outputOffsets[binding->index()];
        break;
      }
      launch.values.push_back(memory + base + binding->offset());
    }
    launch.constantIndex = launch.values.size();
    launch.constantBegin = constantSlot;
    launch.constantCount = sizeOf(dispatch->push_constants());
    constantSlot += launch.constantCount;
    for (uint32_t c = 0; c < launch.constantCount; ++c)
      launch.values.push_back(
          static_cast<uint64_t>(dispatch->push_constants()->Get(c)->value()));
    launch.values.push_back(g->x());
    launch.values.push_back(g->y());
    launch.values.push_back(g->z());
    if (k->scratch_size() > 0)
      launch.values.push_back(memory + scratchOffset);
    for (uint64_t &v : launch.values)
      launch.params.push_back(&v);
  }
  key.resize(constantSlot);

  const char *graphsEnv = getenv("VMOE_CUDA_GRAPHS");
  useGraphs = api->cuStreamBeginCapture && api->cuStreamEndCapture &&
              api->cuGraphInstantiateWithFlags && api->cuGraphLaunch &&
              api->cuGraphExecDestroy && api->cuGraphDestroy &&
              !(graphsEnv && strcmp(graphsEnv, "0") == 0);
  return VMOE_STATUS_OK;
}

CudaBackend::~CudaBackend() {
  if (contextRetained)
    api->cuCtxSetCurrent(context);
  for (auto &entry : graphs)
    api->cuGraphExecDestroy(entry.second);
  if (stream)
    api->cuStreamDestroy(stream);
  if (memory)
    api->cuMemFree(memory);
  for (CUmodule m : modules)
    if (m)
      api->cuModuleUnload(m);
  if (contextRetained)
    api->cuDevicePrimaryCtxRelease(device);
}

vmoe_status_t CudaBackend::launchAll(vmoe_message_t *message) {
  const fb::Module &m = module->root();
  for (uint32_t d = 0; d < plans.size(); ++d) {
    Launch &l = plans[d];
    CUresult r = api->cuLaunchKernel(l.function, l.blocks, 1, 1, l.threads, 1,
                                     1, 0, stream, l.params.data(), nullptr);
    if (r != kCudaSuccess) {
      const fb::Kernel *k = m.kernels()->Get(l.kernel);
      char what[160];
      snprintf(what, sizeof(what), "launching dispatch %u (kernel '%.64s')", d,
               k->name() ? k->name()->c_str() : "");
      return check(r, what, message);
    }
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t CudaBackend::run(const vmoe_tensor_t *inputs, uint32_t inputCount,
                               const vmoe_tensor_t *outputs,
                               uint32_t outputCount, int64_t batch,
                               const int64_t *constants, uint8_t *hostArena,
                               vmoe_message_t *message) {
  const fb::Module &m = module->root();
  const fb::Signature *sig = m.signature();
  if (vmoe_status_t s =
          check(api->cuCtxSetCurrent(context), "cuCtxSetCurrent", message))
    return s;
  auto bytesFor = [&](const fb::TensorSpec *t, uint64_t item) {
    return t->batch_dim() >= 0 ? item * uint64_t(batch) : item;
  };
  for (uint32_t i = 0; i < inputCount; ++i) {
    uint64_t n = bytesFor(sig->inputs()->Get(i), module->inputItemBytes(i));
    if (vmoe_status_t s = check(
            // On the stream, so the launches after it see the bytes.
            api->cuMemcpyHtoDAsync(memory + inputOffsets[i], inputs[i].data, n,
                                   stream),
            "copying an input to the GPU", message))
      return s;
  }
  // The push constants of this call (they follow the bindings).
  for (Launch &l : plans)
    for (size_t c = 0; c < l.constantCount; ++c) {
      key[l.constantBegin + c] = constants[l.constantBegin + c];
      l.values[l.constantIndex + c] =
          static_cast<uint64_t>(constants[l.constantBegin + c]);
    }

  bool launched = false;
  if (useGraphs) {
    auto it = graphs.find(key);
    if (it == graphs.end()) {
      CUgraph graph = nullptr;
      CUgraphExec exec = nullptr;
      bool ok = api->cuStreamBeginCapture(
                    stream, kStreamCaptureModeThreadLocal) == kCudaSuccess;
      vmoe_status_t launchStatus = ok ? launchAll(message) : VMOE_STATUS_OK;
      if (ok) {
        CUresult end = api->cuStreamEndCapture(stream, &graph);
        ok = end == kCudaSuccess && launchStatus == VMOE_STATUS_OK && graph &&
             api->cuGraphInstantiateWithFlags(&exec, graph, 0) == kCudaSuccess;
        if (graph)
          api->cuGraphDestroy(graph);
      }
      if (ok) {
        it = graphs.emplace(key, exec).first;
      } else {
        // Capture is an optimization: fall back to plain launches for good.
        useGraphs = false;
      }
    }
    if (useGraphs) {
      if (vmoe_status_t s = check(api->cuGraphLaunch(it->second, stream),
                                  "cuGraphLaunch", message))
        return s;
      launched = true;
    }
  }
  if (!launched)
    if (vmoe_status_t s = launchAll(message))
      return s;
  if (vmoe_status_t s = check(api->cuStreamSynchronize(stream),
                              "running the schedule", message))
    return s;

  for (uint32_t i = 0; i < outputCount; ++i) {
    uint64_t n = bytesFor(sig->outputs()->Get(i), module->outputItemBytes(i));
    if (vmoe_status_t s = check(
            api->cuMemcpyDtoH(outputs[i].data, memory + outputOffsets[i], n),
            "copying an output from the GPU", message))
      return s;
  }
  for (uint32_t i = 0, n = sizeOf(m.moe_layers()); i < n; ++i) {
    const fb::MoeLayer *layer = m.moe_layers()->Get(i);
    const fb::RoutingStats *stats = layer->stats();
    if (!stats || !hostArena)
      continue;
    uint64_t counts = uint64_t(layer->num_groups()) * layer->num_experts() * 4;
    uint64_t kept = layer->num_tokens() * 4;
    if (vmoe_status_t s = check(
            api->cuMemcpyDtoH(
                hostArena + stats->expert_counts_offset(),
                memory + arenaOffset + stats->expert_counts_offset(), counts),
            "copying the routing statistics", message))
      return s;
    if (vmoe_status_t s =
            check(api->cuMemcpyDtoH(
                      hostArena + stats->token_kept_offset(),
                      memory + arenaOffset + stats->token_kept_offset(), kept),
                  "copying the routing statistics", message))
      return s;
  }
  return VMOE_STATUS_OK;
}

} // namespace cuda
} // namespace vmoe
