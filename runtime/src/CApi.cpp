//===- CApi.cpp - The C API over Module and Session -----------------------===//
//
// Argument checks live here; the C++ classes behind the handles assume valid
// pointers.
//
//===----------------------------------------------------------------------===//

#include "Capacity.h"
#include "Diagnostics.h"
#include "Module.h"
#include "Session.h"
#include "vmoe/runtime.h"

#include <cstring>
#include <type_traits>


using vmoe::fail;
using vmoe::Module;
using vmoe::Session;
namespace fb = vmoe::fb;

static_assert(static_cast<int>(fb::DType::Bool) == VMOE_DTYPE_BOOL,
              "C dtypes follow the schema");
static_assert(static_cast<int>(fb::ExecutableFormat::Cuda) ==
                  VMOE_EXECUTABLE_CUDA,
              "C executable formats follow the schema");

namespace {

Module *unwrap(vmoe_module_t *m) { return reinterpret_cast<Module *>(m); }
const Module *unwrap(const vmoe_module_t *m) {
  return reinterpret_cast<const Module *>(m);
}
Session *unwrap(vmoe_session_t *s) { return reinterpret_cast<Session *>(s); }
const Session *unwrap(const vmoe_session_t *s) {
  return reinterpret_cast<const Session *>(s);
}

const char *str(const flatbuffers::String *s) { return s ? s->c_str() : ""; }

using vmoe::sizeOf;

vmoe_status_t nullArgument(vmoe_message_t *message, const char *what) {
  return fail(message, VMOE_STATUS_INVALID_ARGUMENT, "%s is null", what);
}

vmoe_status_t tensorInfo(const Module *module, bool output, uint32_t index,
                         vmoe_tensor_info_t *out, vmoe_message_t *message) {
  if (!module)
    return nullArgument(message, "module");
  if (!out)
    return nullArgument(message, "out_info");
  const fb::Signature *sig = module->root().signature();
  auto *specs = output ? sig->outputs() : sig->inputs();
  if (index >= sizeOf(specs))
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "%s index %u out of range (%u %ss)",
                output ? "output" : "input", index, sizeOf(specs),
                output ? "output" : "input");
  const fb::TensorSpec *spec = specs->Get(index);
  out->name = spec->name()->c_str();
  out->dtype = static_cast<vmoe_dtype_t>(spec->dtype());
  out->rank = spec->shape()->size();
  out->shape = spec->shape()->data();
  out->batch_dim = spec->batch_dim();
  uint64_t item =
      output ? module->outputItemBytes(index) : module->inputItemBytes(index);
  out->size_bytes = spec->batch_dim() >= 0
                        ? item * static_cast<uint64_t>(sig->max_batch())
                        : item;
  return VMOE_STATUS_OK;
}

} // namespace

extern "C" {

const char *vmoe_status_name(vmoe_status_t status) {
  switch (status) {
  case VMOE_STATUS_OK:
    return "OK";
  case VMOE_STATUS_INVALID_ARGUMENT:
    return "INVALID_ARGUMENT";
  case VMOE_STATUS_INVALID_MODULE:
    return "INVALID_MODULE";
  case VMOE_STATUS_UNSUPPORTED_VERSION:
    return "UNSUPPORTED_VERSION";
  case VMOE_STATUS_UNSUPPORTED:
    return "UNSUPPORTED";
  case VMOE_STATUS_IO_ERROR:
    return "IO_ERROR";
  case VMOE_STATUS_OUT_OF_MEMORY:
    return "OUT_OF_MEMORY";
  case VMOE_STATUS_KERNEL_FAILED:
    return "KERNEL_FAILED";
  case VMOE_STATUS_FAILED_PRECONDITION:
    return "FAILED_PRECONDITION";
  case VMOE_STATUS_INTERNAL:
    return "INTERNAL";
  case VMOE_STATUS_PERMISSION_DENIED:
    return "PERMISSION_DENIED";
  }
  return "UNKNOWN";
}

void vmoe_runtime_format_version(uint32_t *major, uint32_t *minor) {
  if (major)
    *major = VMOE_FORMAT_VERSION_MAJOR;
  if (minor)
    *minor = VMOE_FORMAT_VERSION_MINOR;
}

size_t vmoe_dtype_size(vmoe_dtype_t dtype) {
  return static_cast<size_t>(vmoe::dtypeSize(static_cast<uint32_t>(dtype)));
}

const char *vmoe_dtype_name(vmoe_dtype_t dtype) {
  return vmoe::dtypeName(static_cast<uint32_t>(dtype));
}

vmoe_status_t vmoe_compute_capacity(uint64_t group_size, uint32_t k,
                                    uint32_t num_experts,
                                    double capacity_factor,
                                    uint32_t *out_capacity,
                                    vmoe_message_t *message) {
  if (!out_capacity)
    return nullArgument(message, "out_capacity");
  uint64_t capacity;
  if (vmoe_status_t status = vmoe::computeCapacity(
          group_size, k, num_experts, capacity_factor, &capacity, message))
    return status;
  *out_capacity = static_cast<uint32_t>(capacity);
  return VMOE_STATUS_OK;
}

void vmoe_module_load_options_init(vmoe_module_load_options_t *options) {
  if (!options)
    return;
  memset(options, 0, sizeof(*options));
  options->verify_weights = VMOE_VERIFY_WEIGHTS_ALL;
}

namespace {

/// Checks `options` (null: the defaults) into `out`.
vmoe_status_t loadOptions(const vmoe_module_load_options_t *options,
                          vmoe_module_load_options_t *out,
                          vmoe_message_t *message) {
  vmoe_module_load_options_init(out);
  if (!options)
    return VMOE_STATUS_OK;
  // The mode is read as its integer: a C caller may store any int in the
  // enum field, and loading an out-of-range value as the C++ enum is
  // undefined.
  std::underlying_type_t<vmoe_verify_weights_t> mode;
  static_assert(sizeof(mode) == sizeof(options->verify_weights), "enum size");
  memcpy(&mode, &options->verify_weights, sizeof(mode));
  if (mode != VMOE_VERIFY_WEIGHTS_ALL && mode != VMOE_VERIFY_WEIGHTS_NONE)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "unknown verify_weights mode %d", static_cast<int>(mode));
  memcpy(static_cast<void *>(out), options, sizeof(*out));
  if (out->trusted_key_count && !out->trusted_keys)
    return nullArgument(message, "trusted_keys");
  return VMOE_STATUS_OK;
}

} // namespace

vmoe_status_t vmoe_module_load_file(const char *path,
                                    vmoe_module_t **out_module,
                                    vmoe_message_t *message) {
  return vmoe_module_load_file_ex(path, nullptr, out_module, message);
}

vmoe_status_t vmoe_module_load_file_ex(const char *path,
                                       const vmoe_module_load_options_t *opts,
                                       vmoe_module_t **out_module,
                                       vmoe_message_t *message) {
  if (!path)
    return nullArgument(message, "path");
  if (!out_module)
    return nullArgument(message, "out_module");
  vmoe_module_load_options_t options;
  if (vmoe_status_t status = loadOptions(opts, &options, message))
    return status;
  Module *module;
  if (vmoe_status_t status = Module::loadFile(path, options, &module, message))
    return status;
  *out_module = reinterpret_cast<vmoe_module_t *>(module);
  return VMOE_STATUS_OK;
}

vmoe_status_t vmoe_module_load_memory(const void *data, size_t size,
                                      vmoe_memory_mode_t mode,
                                      vmoe_module_t **out_module,
                                      vmoe_message_t *message) {
  return vmoe_module_load_memory_ex(data, size, mode, nullptr, out_module,
                                    message);
}

vmoe_status_t vmoe_module_load_memory_ex(const void *data, size_t size,
                                         vmoe_memory_mode_t mode,
                                         const vmoe_module_load_options_t *opts,
                                         vmoe_module_t **out_module,
                                         vmoe_message_t *message) {
  if (!data && size)
    return nullArgument(message, "data");
  if (!out_module)
    return nullArgument(message, "out_module");
  vmoe_module_load_options_t options;
  if (vmoe_status_t status = loadOptions(opts, &options, message))
    return status;
  if (size < VMOE_MODULE_HEADER_SIZE)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "module is truncated: %zu bytes, smaller than the %u-byte "
                "header",
                size, VMOE_MODULE_HEADER_SIZE);
  Module *module;
  if (vmoe_status_t status =
          Module::loadMemory(data, size, mode, options, &module, message))
    return status;
  *out_module = reinterpret_cast<vmoe_module_t *>(module);
  return VMOE_STATUS_OK;
}

void vmoe_module_integrity(const vmoe_module_t *handle,
                           vmoe_module_integrity_t *out) {
  if (!out)
    return;
  memset(out, 0, sizeof(*out));
  if (!handle)
    return;
  const Module *module = unwrap(handle);
  const vmoe_module_header_t &h = module->header();
  out->is_signed = h.signature_scheme != VMOE_SIGNATURE_NONE;
  memcpy(out->key_id, h.signature_key_id, sizeof(out->key_id));
  out->signature_verified = module->signatureVerified();
  out->weights_verified = module->weightsVerified();
}

void vmoe_module_retain(vmoe_module_t *module) {
  if (module)
    unwrap(module)->retain();
}

void vmoe_module_release(vmoe_module_t *module) {
  if (module)
    unwrap(module)->release();
}

void vmoe_module_shard_info(const vmoe_module_t *handle,
                            vmoe_shard_info_t *out) {
  if (!out)
    return;
  memset(out, 0, sizeof(*out));
  if (!handle)
    return;
  if (const fb::ExpertShard *shard = unwrap(handle)->root().expert_shard()) {
    out->sharded = 1;
    out->rank = shard->rank();
    out->size = shard->size();
    // The validator makes model_id present on every shard.
    out->model_id[0] = shard->model_id()->low();
    out->model_id[1] = shard->model_id()->high();
  }
}

void vmoe_module_info(const vmoe_module_t *handle, vmoe_module_info_t *out) {
  if (!out)
    return;
  memset(out, 0, sizeof(*out));
  out->name = out->producer = out->config_json = "";
  if (!handle)
    return;
  const Module *module = unwrap(handle);
  const fb::Module &m = module->root();
  out->format_major = m.version()->major();
  out->format_minor = m.version()->minor();
  if (const fb::ModelMetadata *meta = m.metadata()) {
    out->name = str(meta->name());
    out->producer = str(meta->producer());
    out->config_json = str(meta->config_json());
    out->config_json_size =
        meta->config_json() ? meta->config_json()->size() : 0;
    out->class_count = sizeOf(meta->class_names());
  }
  out->input_count = sizeOf(m.signature()->inputs());
  out->output_count = sizeOf(m.signature()->outputs());
  out->moe_layer_count = sizeOf(m.moe_layers());
  out->max_batch = m.signature()->max_batch();
  out->batch_multiple = m.signature()->batch_multiple();
  out->segment_count = sizeOf(m.segments());
  out->constant_count = sizeOf(m.constants());
  out->executable_count = sizeOf(m.executables());
  out->kernel_count = sizeOf(m.kernels());
  out->dispatch_count = sizeOf(m.dispatches());
  out->arena_size = m.arena()->size();
  out->arena_alignment = m.arena()->alignment();
  for (uint32_t i = 0; i < out->constant_count; ++i)
    out->constant_bytes +=
        module->segmentLength(m.constants()->Get(i)->segment());
  out->file_size = module->header().file_size;
}

const char *vmoe_module_class_name(const vmoe_module_t *handle,
                                   uint32_t index) {
  if (!handle)
    return nullptr;
  const fb::ModelMetadata *meta = unwrap(handle)->root().metadata();
  if (!meta || index >= sizeOf(meta->class_names()))
    return nullptr;
  return meta->class_names()->Get(index)->c_str();
}

vmoe_status_t vmoe_module_input_info(const vmoe_module_t *module,
                                     uint32_t index, vmoe_tensor_info_t *out,
                                     vmoe_message_t *message) {
  return tensorInfo(unwrap(module), false, index, out, message);
}

vmoe_status_t vmoe_module_output_info(const vmoe_module_t *module,
                                      uint32_t index, vmoe_tensor_info_t *out,
                                      vmoe_message_t *message) {
  return tensorInfo(unwrap(module), true, index, out, message);
}

vmoe_status_t vmoe_module_moe_layer_info(const vmoe_module_t *handle,
                                         uint32_t index,
                                         vmoe_moe_layer_info_t *out,
                                         vmoe_message_t *message) {
  if (!handle)
    return nullArgument(message, "module");
  if (!out)
    return nullArgument(message, "out_info");
  const fb::Module &m = unwrap(handle)->root();
  if (index >= sizeOf(m.moe_layers()))
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "MoE layer %u out of range (%u layers)", index,
                sizeOf(m.moe_layers()));
  const fb::MoeLayer *l = m.moe_layers()->Get(index);
  out->name = str(l->name());
  out->num_experts = l->num_experts();
  out->k = l->k();
  out->group_size = l->group_size();
  out->num_groups = l->num_groups();
  out->num_tokens = l->num_tokens();
  out->tokens_per_image = l->tokens_per_image();
  out->default_capacity_factor = l->default_capacity_factor();
  out->max_capacity_factor = l->max_capacity_factor();
  out->max_capacity = l->max_capacity();
  out->default_bpr = l->default_bpr() ? 1 : 0;
  out->has_stats = l->stats() ? 1 : 0;
  out->fixed_capacity = l->max_capacity_factor() == 0 ? 1 : 0;
  out->capacity_multiple_of = l->capacity_multiple_of();
  out->capacity_round = l->capacity_round() ? 1 : 0;
  out->expert_choice = l->routing() == fb::RoutingKind::ExpertChoice ? 1 : 0;
  return VMOE_STATUS_OK;
}

vmoe_status_t vmoe_module_executable_info(const vmoe_module_t *handle,
                                          uint32_t index,
                                          vmoe_executable_info_t *out,
                                          vmoe_message_t *message) {
  if (!handle)
    return nullArgument(message, "module");
  if (!out)
    return nullArgument(message, "out_info");
  const Module *module = unwrap(handle);
  const fb::Module &m = module->root();
  if (index >= sizeOf(m.executables()))
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "executable %u out of range (%u executables)", index,
                sizeOf(m.executables()));
  const fb::Executable *x = m.executables()->Get(index);
  memset(out, 0, sizeof(*out));
  out->format = static_cast<vmoe_executable_format_t>(x->format());
  out->name = str(x->name());
  out->target_triple = out->cpu_features = "";
  if (const fb::CpuExecutable *cpu = x->cpu();
      cpu && x->format() == fb::ExecutableFormat::CpuSharedObject) {
    out->target_triple = str(cpu->target_triple());
    out->cpu_features = str(cpu->cpu_features());
    out->size_bytes = module->segmentLength(cpu->segment());
  }
  if (const fb::CudaExecutable *cuda = x->cuda();
      cuda && x->format() == fb::ExecutableFormat::Cuda) {
    if (cuda->ptx_segment() >= 0) {
      out->ptx_sm = cuda->ptx_sm();
      out->size_bytes +=
          module->segmentLength(static_cast<uint32_t>(cuda->ptx_segment()));
    }
    out->cubin_count = sizeOf(cuda->cubins());
    for (uint32_t i = 0; i < out->cubin_count; ++i)
      out->size_bytes +=
          module->segmentLength(cuda->cubins()->Get(i)->segment());
  }
  return VMOE_STATUS_OK;
}

void vmoe_session_options_init(vmoe_session_options_t *options) {
  if (!options)
    return;
  memset(options, 0, sizeof(*options));
  options->device = VMOE_DEVICE_CPU;
  options->thread_count = 0;
  options->capacity_factor = 0;
  options->bpr = -1;
  options->cuda_graphs = 1;
  options->cuda_graph_cache = VMOE_CUDA_GRAPH_CACHE_DEFAULT;
}

void vmoe_run_options_init(vmoe_run_options_t *options) {
  if (!options)
    return;
  memset(options, 0, sizeof(*options));
  options->capacity_factor = 0;
  options->bpr = -1;
  options->num_selected_experts = 0;
}

vmoe_status_t vmoe_session_create(vmoe_module_t *module,
                                  const vmoe_session_options_t *options,
                                  vmoe_session_t **out_session,
                                  vmoe_message_t *message) {
  if (!module)
    return nullArgument(message, "module");
  if (!out_session)
    return nullArgument(message, "out_session");
  vmoe_session_options_t defaults;
  vmoe_session_options_init(&defaults);
  Session *session;
  if (vmoe_status_t status = Session::create(
          unwrap(module), options ? *options : defaults, &session, message))
    return status;
  *out_session = reinterpret_cast<vmoe_session_t *>(session);
  return VMOE_STATUS_OK;
}

void vmoe_session_destroy(vmoe_session_t *session) { delete unwrap(session); }

uint32_t vmoe_session_thread_count(const vmoe_session_t *session) {
  return session ? unwrap(session)->threadCount() : 0;
}

vmoe_status_t
vmoe_session_run(vmoe_session_t *session, const vmoe_tensor_t *inputs,
                 uint32_t input_count, const vmoe_tensor_t *outputs,
                 uint32_t output_count, const vmoe_run_options_t *options,
                 vmoe_message_t *message) {
  if (!session)
    return nullArgument(message, "session");
  return unwrap(session)->run(inputs, input_count, outputs, output_count,
                              options, message);
}

vmoe_status_t vmoe_session_routing_stats(const vmoe_session_t *session,
                                         uint32_t layer,
                                         vmoe_routing_stats_t *out_stats,
                                         vmoe_message_t *message) {
  if (!session)
    return nullArgument(message, "session");
  if (!out_stats)
    return nullArgument(message, "out_stats");
  return unwrap(session)->routing().routingStats(layer, out_stats, message);
}

vmoe_status_t vmoe_session_expert_load(const vmoe_session_t *session,
                                       uint32_t layer, uint64_t *out_assigned,
                                       uint64_t *out_kept,
                                       uint32_t expert_count,
                                       vmoe_message_t *message) {
  if (!session)
    return nullArgument(message, "session");
  return unwrap(session)->routing().expertLoad(layer, out_assigned, out_kept,
                                               expert_count, message);
}

vmoe_status_t vmoe_session_image_coverage(const vmoe_session_t *session,
                                          uint32_t layer, double *out_shares,
                                          uint32_t image_count,
                                          vmoe_message_t *message) {
  if (!session)
    return nullArgument(message, "session");
  return unwrap(session)->routing().imageCoverage(layer, out_shares,
                                                  image_count, message);
}

} // extern "C"

vmoe_status_t vmoe_session_profile(const vmoe_session_t *session,
                                   uint64_t *out_ns, uint32_t dispatch_count,
                                   uint64_t *out_runs,
                                   vmoe_message_t *message) {
  if (!session)
    return nullArgument(message, "session");
  if (!out_ns && dispatch_count > 0)
    return nullArgument(message, "out_ns");
  return unwrap(session)->profile(out_ns, dispatch_count, out_runs, message);
}

const char *vmoe_module_dispatch_kernel(const vmoe_module_t *module,
                                        uint32_t index) {
  if (!module)
    return "";
  const auto &root = unwrap(module)->root();
  if (index >= sizeOf(root.dispatches()))
    return "";
  // A collective step runs no kernel (its kernel index is not checked).
  if (root.dispatches()->Get(index)->collective())
    return "all_to_all";
  const auto *kernel =
      root.kernels()->Get(root.dispatches()->Get(index)->kernel());
  return kernel->name() ? kernel->name()->c_str() : "";
}
