//===- CudaExecutor.cpp - Run a module's schedule on an NVIDIA GPU --------===//

#include "CudaExecutor.h"

#include "Diagnostics.h"

#include <cstdio>
#include <cstring>
#include <new>

namespace vmoe {
namespace cuda {
namespace {

using ull = unsigned long long;

uint64_t alignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

} // namespace

//===----------------------------------------------------------------------===//
// GraphCache
//===----------------------------------------------------------------------===//

CUgraphExec GraphCache::find(const std::vector<int64_t> &key) {
  for (Entry &entry : entries)
    if (entry.key == key) {
      entry.lastUse = ++clock;
      return entry.exec;
    }
  return nullptr;
}

CUgraphExec GraphCache::insert(const std::vector<int64_t> &key,
                               CUgraphExec exec) {
  if (entries.size() < capacity) {
    entries.push_back({key, exec, ++clock});
    return nullptr;
  }
  Entry *oldest = &entries[0];
  for (Entry &entry : entries)
    if (entry.lastUse < oldest->lastUse)
      oldest = &entry;
  CUgraphExec evicted = oldest->exec;
  oldest->key = key; // same length: no allocation
  oldest->exec = exec;
  oldest->lastUse = ++clock;
  return evicted;
}

//===----------------------------------------------------------------------===//
// CudaExecutor: set-up
//===----------------------------------------------------------------------===//

vmoe_status_t CudaExecutor::check(CUresult result, const char *what,
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

vmoe_status_t CudaExecutor::create(Module *module, const CudaOptions &options,
                                   const DriverApi *api, CudaExecutor **out,
                                   vmoe_message_t *message) {
  // Before the driver: the answer does not depend on the machine.
  if (module->root().expert_shard())
    return fail(message, VMOE_STATUS_UNSUPPORTED,
                "expert-sharded modules run on the CPU only (the CUDA "
                "executor has no collective)");
  if (!api)
    if (vmoe_status_t s = loadDriver(nullptr, &api, message))
      return s;
  auto *executor = new (std::nothrow) CudaExecutor(module, api, options);
  if (!executor)
    return fail(message, VMOE_STATUS_OUT_OF_MEMORY, "out of memory");
  if (vmoe_status_t s = executor->init(options, message)) {
    delete executor;
    return s;
  }
  *out = executor;
  return VMOE_STATUS_OK;
}

vmoe_status_t CudaExecutor::init(const CudaOptions &options,
                                 vmoe_message_t *message) {
  uint32_t sm = 0;
  if (vmoe_status_t s = openDevice(options.ordinal, &sm, message))
    return s;
  if (vmoe_status_t s = checkKernels(message))
    return s;
  if (vmoe_status_t s = loadImages(sm, message))
    return s;
  std::vector<uint64_t> constantOffsets;
  if (vmoe_status_t s = allocateMemory(&constantOffsets, message))
    return s;
  if (vmoe_status_t s = check(api->cuStreamCreate(&stream, kStreamDefault),
                              "cuStreamCreate", message))
    return s;
  if (vmoe_status_t s = prepareLaunches(constantOffsets, message))
    return s;
  useGraphs = options.graphs && api->cuStreamBeginCapture &&
              api->cuStreamEndCapture && api->cuGraphInstantiateWithFlags &&
              api->cuGraphLaunch && api->cuGraphExecDestroy &&
              api->cuGraphDestroy;
  return VMOE_STATUS_OK;
}

vmoe_status_t CudaExecutor::openDevice(uint32_t ordinal, uint32_t *sm,
                                       vmoe_message_t *message) {
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
  *sm = static_cast<uint32_t>(major * 10 + minor);
  char name[96] = "";
  if (api->cuDeviceGetName(name, sizeof(name) - 1, device) != kCudaSuccess)
    snprintf(name, sizeof(name), "CUDA device %u", ordinal);
  snprintf(description, sizeof(description), "%s (sm_%u)", name, *sm);
  return VMOE_STATUS_OK;
}

vmoe_status_t CudaExecutor::checkKernels(vmoe_message_t *message) const {
  const fb::Module &m = module->root();
  for (uint32_t k = 0, n = sizeOf(m.kernels()); k < n; ++k) {
    const fb::Kernel *kernel = m.kernels()->Get(k);
    if (m.executables()->Get(kernel->executable())->format() !=
        fb::ExecutableFormat::Cuda)
      return fail(message, VMOE_STATUS_UNSUPPORTED,
                  "kernel %u ('%.64s') is not CUDA code: the module was "
                  "compiled for the CPU (compile with --target=cuda)",
                  k, kernel->name() ? kernel->name()->c_str() : "");
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t CudaExecutor::loadImages(uint32_t sm, vmoe_message_t *message) {
  if (vmoe_status_t s = check(api->cuDevicePrimaryCtxRetain(&context, device),
                              "cuDevicePrimaryCtxRetain", message))
    return s;
  contextRetained = true;
  if (vmoe_status_t s =
          check(api->cuCtxSetCurrent(context), "cuCtxSetCurrent", message))
    return s;

  // Executables: the cubin of this SM, else PTX (the driver compiles it).
  const fb::Module &m = module->root();
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
  return VMOE_STATUS_OK;
}

vmoe_status_t
CudaExecutor::allocateMemory(std::vector<uint64_t> *constantOffsets,
                             vmoe_message_t *message) {
  // Device memory: arena | constants | inputs | outputs | scratch.
  const fb::Module &m = module->root();
  arenaOffset = 0;
  uint64_t offset = alignUp(m.arena()->size(), 256);
  constantOffsets->assign(sizeOf(m.constants()), 0);
  for (uint32_t c = 0; c < constantOffsets->size(); ++c) {
    const fb::Constant *constant = m.constants()->Get(c);
    if (constant->placement() == fb::ConstantPlacement::Arena) {
      (*constantOffsets)[c] = arenaOffset + constant->arena_offset();
      continue;
    }
    (*constantOffsets)[c] = offset;
    offset = alignUp(offset + module->segmentLength(constant->segment()), 256);
  }
  const int64_t maxBatch = m.signature()->max_batch();
  for (uint32_t i = 0, n = sizeOf(m.signature()->inputs()); i < n; ++i) {
    inputOffsets.push_back(offset);
    offset = alignUp(offset + module->inputBytes(i, maxBatch), 256);
  }
  for (uint32_t i = 0, n = sizeOf(m.signature()->outputs()); i < n; ++i) {
    outputOffsets.push_back(offset);
    offset = alignUp(offset + module->outputBytes(i, maxBatch), 256);
  }
  scratchOffset = offset;
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
  for (uint32_t c = 0; c < constantOffsets->size(); ++c) {
    const fb::Constant *constant = m.constants()->Get(c);
    if (vmoe_status_t s =
            check(api->cuMemcpyHtoD(memory + (*constantOffsets)[c],
                                    module->segmentData(constant->segment()),
                                    module->segmentLength(constant->segment())),
                  "copying the constants", message))
      return s;
  }
  // The host's view of the arena: only the routing statistics are copied.
  hostMirrorBytes = m.arena()->size();
  return mapZeroed(hostMirrorBytes, "arena", &hostMirror, message);
}

vmoe_status_t
CudaExecutor::prepareLaunches(const std::vector<uint64_t> &constantOffsets,
                              vmoe_message_t *message) {
  // Launches with their parameters; call-dependent values are patched in
  // run().
  const fb::Module &m = module->root();
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
  return VMOE_STATUS_OK;
}

CudaExecutor::~CudaExecutor() {
  if (contextRetained)
    api->cuCtxSetCurrent(context);
  for (size_t i = 0; i < graphs.size(); ++i)
    api->cuGraphExecDestroy(graphs.at(i));
  if (stream)
    api->cuStreamDestroy(stream);
  if (memory)
    api->cuMemFree(memory);
  for (CUmodule m : modules)
    if (m)
      api->cuModuleUnload(m);
  if (contextRetained)
    api->cuDevicePrimaryCtxRelease(device);
  unmapZeroed(hostMirror, hostMirrorBytes);
}

//===----------------------------------------------------------------------===//
// CudaExecutor: runs
//===----------------------------------------------------------------------===//

vmoe_status_t CudaExecutor::launchAll(vmoe_message_t *message) {
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

vmoe_status_t CudaExecutor::launchSchedule(vmoe_message_t *message) {
  if (useGraphs) {
    CUgraphExec exec = graphs.find(key);
    if (!exec) {
      CUgraph graph = nullptr;
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
        if (CUgraphExec old = graphs.insert(key, exec)) {
          api->cuGraphExecDestroy(old);
          ++evicted;
        }
      } else {
        // Capture is an optimization: fall back to plain launches for good.
        useGraphs = false;
      }
    }
    if (useGraphs)
      return check(api->cuGraphLaunch(exec, stream), "cuGraphLaunch", message);
  }
  return launchAll(message);
}

vmoe_status_t CudaExecutor::run(const ExecutorCall &call, DispatchProfile *,
                                vmoe_message_t *message) {
  if (vmoe_status_t s =
          check(api->cuCtxSetCurrent(context), "cuCtxSetCurrent", message))
    return s;
  for (uint32_t i = 0; i < call.inputCount; ++i) {
    if (vmoe_status_t s = check(
            // On the stream, so the launches after it see the bytes.
            api->cuMemcpyHtoDAsync(memory + inputOffsets[i],
                                   call.inputs[i].data,
                                   module->inputBytes(i, call.batch), stream),
            "copying an input to the GPU", message))
      return s;
  }
  // The push constants of this call (they follow the bindings).
  for (Launch &l : plans)
    for (size_t c = 0; c < l.constantCount; ++c) {
      key[l.constantBegin + c] = call.constants[l.constantBegin + c];
      l.values[l.constantIndex + c] =
          static_cast<uint64_t>(call.constants[l.constantBegin + c]);
    }
  if (vmoe_status_t s = launchSchedule(message))
    return s;
  if (vmoe_status_t s = check(api->cuStreamSynchronize(stream),
                              "running the schedule", message))
    return s;
  return copyBack(call, message);
}

vmoe_status_t CudaExecutor::copyBack(const ExecutorCall &call,
                                     vmoe_message_t *message) {
  const fb::Module &m = module->root();
  for (uint32_t i = 0; i < call.outputCount; ++i) {
    if (vmoe_status_t s = check(
            api->cuMemcpyDtoH(call.outputs[i].data, memory + outputOffsets[i],
                              module->outputBytes(i, call.batch)),
            "copying an output from the GPU", message))
      return s;
  }
  for (uint32_t i = 0, n = sizeOf(m.moe_layers()); i < n; ++i) {
    const fb::MoeLayer *layer = m.moe_layers()->Get(i);
    const fb::RoutingStats *stats = layer->stats();
    if (!stats)
      continue;
    uint64_t counts = uint64_t(layer->num_groups()) * layer->num_experts() * 4;
    uint64_t kept = layer->num_tokens() * 4;
    if (vmoe_status_t s = check(
            api->cuMemcpyDtoH(
                hostMirror + stats->expert_counts_offset(),
                memory + arenaOffset + stats->expert_counts_offset(), counts),
            "copying the routing statistics", message))
      return s;
    if (vmoe_status_t s =
            check(api->cuMemcpyDtoH(
                      hostMirror + stats->token_kept_offset(),
                      memory + arenaOffset + stats->token_kept_offset(), kept),
                  "copying the routing statistics", message))
      return s;
  }
  return VMOE_STATUS_OK;
}

} // namespace cuda
} // namespace vmoe
