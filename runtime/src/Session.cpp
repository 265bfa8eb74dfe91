//===- Session.cpp - Run a module's schedule on a device ------------------===//

#include "Session.h"

#include "CpuExecutor.h"
#include "CudaExecutor.h"
#include "Diagnostics.h"

#include <cstdio>
#include <new>
#include <unistd.h>

namespace vmoe {

namespace {

using ull = unsigned long long;

constexpr uint32_t kMaxThreads = 1024;

uint32_t resolveThreads(uint32_t requested) {
  if (requested != 0)
    return requested;
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  return online < 1 ? 1
         : online > static_cast<long>(kMaxThreads)
             ? kMaxThreads
             : static_cast<uint32_t>(online);
}

} // namespace

Session::~Session() {
  delete executor;
  module->release();
}

vmoe_status_t Session::create(Module *module,
                              const vmoe_session_options_t &options,
                              Session **out, vmoe_message_t *message) {
  Session *session = new (std::nothrow) Session(module);
  if (!session)
    return fail(message, VMOE_STATUS_OUT_OF_MEMORY, "out of memory");
  module->retain();
  if (vmoe_status_t status = session->init(options, message)) {
    delete session;
    return status;
  }
  *out = session;
  return VMOE_STATUS_OK;
}

vmoe_status_t Session::init(const vmoe_session_options_t &options,
                            vmoe_message_t *message) {
  if (vmoe_status_t status = exchange.init(module, options.collective, message))
    return status;
  if (!exchange.active())
    return initLocal(options, message);
  // Every rank reaches the handshake, whatever failed on it before, so that
  // all ranks fail together instead of some waiting for the others.
  vmoe_status_t local = exchange.checkShard(message);
  if (local == VMOE_STATUS_OK && options.device != VMOE_DEVICE_CPU)
    local = fail(message, VMOE_STATUS_UNSUPPORTED,
                 "expert-sharded modules run on the CPU only");
  if (local == VMOE_STATUS_OK)
    local = initLocal(options, message);
  return exchange.handshake(local, message);
}

vmoe_status_t Session::initLocal(const vmoe_session_options_t &options,
                                 vmoe_message_t *message) {
  if (options.device != VMOE_DEVICE_CPU && options.device != VMOE_DEVICE_CUDA)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT, "unknown device %d",
                static_cast<int>(options.device));
  if (vmoe_status_t status = Knobs::checkBpr(options.bpr, "default", message))
    return status;
  if (options.thread_count > kMaxThreads)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "thread count %u exceeds the limit %u", options.thread_count,
                kMaxThreads);
  pending.resize(sizeOf(module->root().moe_layers()));
  KnobRequest request;
  request.capacityFactor = options.capacity_factor;
  request.bpr = options.bpr;
  request.k = options.num_selected_experts;
  if (vmoe_status_t status = knobs.init(module, request, message))
    return status;
  if (options.device == VMOE_DEVICE_CUDA && options.cuda_graphs &&
      (options.cuda_graph_cache < 1 ||
       options.cuda_graph_cache > VMOE_CUDA_GRAPH_CACHE_MAX))
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "CUDA graph cache size %u must be in [1, %u]",
                options.cuda_graph_cache, VMOE_CUDA_GRAPH_CACHE_MAX);
  threads = resolveThreads(options.thread_count);
  if (options.profile)
    dispatchProfile.enable(sizeOf(module->root().dispatches()));

  if (options.device == VMOE_DEVICE_CUDA) {
    cuda::CudaOptions cudaOptions;
    cudaOptions.ordinal = options.device_ordinal;
    cudaOptions.graphs = options.cuda_graphs != 0;
    cudaOptions.graphCacheSize = options.cuda_graph_cache;
    cuda::CudaExecutor *cudaExecutor = nullptr;
    if (vmoe_status_t status = cuda::CudaExecutor::create(
            module, cudaOptions, nullptr, &cudaExecutor, message))
      return status;
    executor = cudaExecutor;
  } else {
    CpuExecutor *cpuExecutor = nullptr;
    if (vmoe_status_t status = CpuExecutor::create(
            module, threads, exchange.active() ? &exchange : nullptr,
            &cpuExecutor, message))
      return status;
    executor = cpuExecutor;
  }
  stats.init(module, executor->hostArena());
  return VMOE_STATUS_OK;
}

vmoe_status_t Session::checkTensors(const vmoe_tensor_t *tensors,
                                    uint32_t count, bool outputs,
                                    int64_t *batch,
                                    vmoe_message_t *message) const {
  const fb::Signature *sig = module->root().signature();
  auto *specs = outputs ? sig->outputs() : sig->inputs();
  const char *what = outputs ? "output" : "input";
  uint32_t expected = sizeOf(specs);
  if (count != expected)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "expected %u %ss, got %u", expected, what, count);
  if (count && !tensors)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT, "%ss are null", what);
  for (uint32_t i = 0; i < count; ++i) {
    const fb::TensorSpec *spec = specs->Get(i);
    const vmoe_tensor_t &t = tensors[i];
    const char *name = spec->name()->c_str();
    if (static_cast<uint32_t>(t.dtype) != static_cast<uint32_t>(spec->dtype()))
      return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                  "%s %u ('%.64s'): expected dtype %s, got %s", what, i, name,
                  dtypeName(static_cast<uint32_t>(spec->dtype())),
                  dtypeName(static_cast<uint32_t>(t.dtype)));
    uint32_t rank = spec->shape()->size();
    const int64_t *want = spec->shape()->data();
    int32_t batchDim = spec->batch_dim();
    bool shapeOk = t.rank == rank && (rank == 0 || t.shape);
    for (uint32_t d = 0; shapeOk && d < rank; ++d)
      shapeOk = static_cast<int32_t>(d) == batchDim || t.shape[d] == want[d];
    if (!shapeOk) {
      char batchNote[96] = "";
      if (batchDim >= 0)
        snprintf(batchNote, sizeof(batchNote),
                 " (dim %d is the batch, up to %lld)", batchDim,
                 static_cast<long long>(sig->max_batch()));
      return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                  "%s %u ('%.64s'): expected shape %s%s, got %s", what, i, name,
                  formatShape(want, rank).text, batchNote,
                  t.shape || t.rank == 0
                      ? formatShape(t.shape, t.rank > VMOE_MAX_TENSOR_RANK * 4
                                                 ? VMOE_MAX_TENSOR_RANK * 4
                                                 : t.rank)
                            .text
                      : "a null shape");
    }
    if (batchDim >= 0) {
      int64_t b = t.shape[batchDim];
      if (*batch == 0) {
        if (b < 1 || b > sig->max_batch() || b % sig->batch_multiple() != 0)
          return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                      "%s %u ('%.64s'): batch %lld must be in [1, %lld] and "
                      "a multiple of %lld",
                      what, i, name, static_cast<long long>(b),
                      static_cast<long long>(sig->max_batch()),
                      static_cast<long long>(sig->batch_multiple()));
        *batch = b;
      } else if (b != *batch) {
        return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                    "%s %u ('%.64s'): batch %lld differs from the batch %lld "
                    "of the tensors before it",
                    what, i, name, static_cast<long long>(b),
                    static_cast<long long>(*batch));
      }
    }
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t Session::checkBuffers(const vmoe_tensor_t *tensors,
                                    uint32_t count, bool outputs, int64_t batch,
                                    vmoe_message_t *message) const {
  const fb::Signature *sig = module->root().signature();
  for (uint32_t i = 0; i < count; ++i) {
    const fb::TensorSpec *spec =
        (outputs ? sig->outputs() : sig->inputs())->Get(i);
    uint64_t bytes =
        outputs ? module->outputBytes(i, batch) : module->inputBytes(i, batch);
    if (tensors[i].size_bytes < bytes || (bytes && !tensors[i].data))
      return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                  "%s %u ('%.64s'): the buffer holds %llu bytes at %p, the "
                  "tensor needs %llu",
                  outputs ? "output" : "input", i, spec->name()->c_str(),
                  static_cast<ull>(tensors[i].size_bytes), tensors[i].data,
                  static_cast<ull>(bytes));
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t Session::run(const vmoe_tensor_t *inputs, uint32_t inputCount,
                           const vmoe_tensor_t *outputs, uint32_t outputCount,
                           const vmoe_run_options_t *options,
                           vmoe_message_t *message) {
  // A session has one caller at a time: its arena, knobs and statistics are
  // the call's. A second caller is refused at once (no waiting), not let in
  // to corrupt the first one's run.
  bool idle = false;
  if (!busy.compare_exchange_strong(idle, true, std::memory_order_acquire,
                                    std::memory_order_relaxed))
    return fail(message, VMOE_STATUS_FAILED_PRECONDITION,
                "the session is running a call on another thread; a session "
                "has one caller at a time (create one session per thread)");
  vmoe_status_t status =
      runExclusive(inputs, inputCount, outputs, outputCount, options, message);
  busy.store(false, std::memory_order_release);
  return status;
}

vmoe_status_t Session::checkCall(const vmoe_tensor_t *inputs,
                                 uint32_t inputCount,
                                 const vmoe_tensor_t *outputs,
                                 uint32_t outputCount,
                                 const vmoe_run_options_t *options,
                                 int64_t *batch, vmoe_message_t *message) {
  if (vmoe_status_t status =
          checkTensors(inputs, inputCount, false, batch, message))
    return status;
  if (vmoe_status_t status =
          checkTensors(outputs, outputCount, true, batch, message))
    return status;
  if (*batch == 0)
    *batch = module->root().signature()->max_batch(); // no tensor has one
  // Sizes and pointers, now that the batch is known.
  if (vmoe_status_t status =
          checkBuffers(inputs, inputCount, false, *batch, message))
    return status;
  if (vmoe_status_t status =
          checkBuffers(outputs, outputCount, true, *batch, message))
    return status;
  return knobs.resolve(options, &pending, message);
}

vmoe_status_t Session::runExclusive(const vmoe_tensor_t *inputs,
                                    uint32_t inputCount,
                                    const vmoe_tensor_t *outputs,
                                    uint32_t outputCount,
                                    const vmoe_run_options_t *options,
                                    vmoe_message_t *message) {
  int64_t batch = 0;
  vmoe_status_t local = checkCall(inputs, inputCount, outputs, outputCount,
                                  options, &batch, message);
  // The ranks of a sharded model agree on the call before any exchange: a
  // rank whose call fails its checks, or differs, fails them all.
  if (exchange.active()) {
    if (vmoe_status_t status =
            exchange.agreeOnCall(local, batch, pending, message))
      return status;
  } else if (local != VMOE_STATUS_OK) {
    return local;
  }
  knobs.apply(pending, batch);

  stats.invalidate(); // the kernels are about to overwrite the statistics
  ExecutorCall call = {inputs, inputCount,        outputs,       outputCount,
                       batch,  knobs.constants(), pending.data()};
  if (vmoe_status_t status = executor->run(
          call, dispatchProfile.enabled() ? &dispatchProfile : nullptr,
          message))
    return status;
  stats.record(&pending, batch);
  return VMOE_STATUS_OK;
}

} // namespace vmoe
