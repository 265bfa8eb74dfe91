//===- ModuleInfo.cpp - vmoe-run --info -----------------------------------===//
//
// Everything the runtime's C API tells about a module: the compiler that
// wrote it, its target and the CPU features its code needs, integrity,
// signature, expert shard, tensors, MoE layers, class names and the
// embedded config.
//
//===----------------------------------------------------------------------===//

#include "RunOptions.h"

#include "vmoe/writer/KeyFiles.h"

#include <cinttypes>
#include <cstdio>
#include <string>

namespace vmoe::tools::run {

namespace {

/// "+avx2,+fma,-amx-tile" as "avx2 fma": the features the code may use
/// ("-" entries only say what it must not assume).
std::string requiredFeatures(const char *llvmFeatures) {
  std::string out, item;
  for (const char *p = llvmFeatures;; ++p) {
    if (*p && *p != ',') {
      item += *p;
      continue;
    }
    if (item.size() > 1 && item[0] == '+')
      out += (out.empty() ? "" : " ") + item.substr(1);
    item.clear();
    if (!*p)
      return out;
  }
}

void printCompiler(const vmoe_module_t *module,
                   const vmoe_module_info_t &info) {
  const char *version = vmoe_module_compiler_version(module);
  const char *revision = vmoe_module_compiler_revision(module);
  std::printf("  compiled by %s", *info.producer ? info.producer : "?");
  if (*version)
    std::printf(" %s (git %s)\n", version, *revision ? revision : "?");
  else
    std::printf(" (no version recorded: written before vmoe 0.6.0)\n");
}

void printTargets(const vmoe_module_t *module, const vmoe_module_info_t &info) {
  vmoe_message_t msg;
  for (uint32_t i = 0; i < info.executable_count; ++i) {
    vmoe_executable_info_t e;
    if (vmoe_module_executable_info(module, i, &e, &msg) != VMOE_STATUS_OK)
      continue;
    if (e.format == VMOE_EXECUTABLE_CPU_SHARED_OBJECT) {
      std::string features = requiredFeatures(e.cpu_features);
      std::printf("  target: cpu %s, %" PRIu64 " bytes of code; CPU "
                  "features required: %s\n",
                  e.target_triple, e.size_bytes,
                  features.empty() ? "none beyond the base ISA"
                                   : features.c_str());
    } else {
      std::printf("  target: cuda, ");
      if (e.ptx_sm)
        std::printf("PTX for sm_%u (and newer GPUs)", e.ptx_sm);
      else
        std::printf("no PTX");
      std::printf(", %u cubin(s), %" PRIu64 " bytes\n", e.cubin_count,
                  e.size_bytes);
    }
  }
}

void printIntegrity(const vmoe_module_t *module) {
  vmoe_module_integrity_t integrity;
  vmoe_module_integrity(module, &integrity);
  std::string keyId = vmoe::writer::toHex(integrity.key_id, 8);
  if (!integrity.is_signed)
    std::printf("  unsigned");
  else
    std::printf("  signed by key %s (%s)", keyId.c_str(),
                integrity.signature_verified ? "verified against a trusted key"
                                             : "not checked: no --trusted-key");
  std::printf(", weight digests %s\n", integrity.weights_verified
                                           ? "verified"
                                           : "not checked (--verify-weights)");
}

/// An expert shard's place in its model (vmoe-compile --expert-shards).
void printShard(const vmoe_module_t *module) {
  vmoe_shard_info_t shard;
  vmoe_module_shard_info(module, &shard);
  if (!shard.sharded)
    return;
  std::printf("  expert shard %u of %u (model id %016" PRIx64 "%016" PRIx64
              "): holds 1/%u of every MoE layer's experts; run the %u parts "
              "with mpirun -np %u\n",
              shard.rank, shard.size, shard.model_id[1], shard.model_id[0],
              shard.size, shard.size, shard.size);
}

void printTensorsAndLayers(const vmoe_module_t *module,
                           const vmoe_module_info_t &info) {
  vmoe_message_t msg;
  for (uint32_t i = 0; i < info.input_count; ++i) {
    vmoe_tensor_info_t t;
    if (vmoe_module_input_info(module, i, &t, &msg) == VMOE_STATUS_OK)
      std::printf("  input %s: %s %s\n", t.name, vmoe_dtype_name(t.dtype),
                  shapeString(t.shape, t.rank).c_str());
  }
  for (uint32_t i = 0; i < info.output_count; ++i) {
    vmoe_tensor_info_t t;
    if (vmoe_module_output_info(module, i, &t, &msg) == VMOE_STATUS_OK)
      std::printf("  output %s: %s %s\n", t.name, vmoe_dtype_name(t.dtype),
                  shapeString(t.shape, t.rank).c_str());
  }
  for (uint32_t i = 0; i < info.moe_layer_count; ++i) {
    vmoe_moe_layer_info_t l;
    if (vmoe_module_moe_layer_info(module, i, &l, &msg) != VMOE_STATUS_OK)
      continue;
    std::printf("  MoE layer %u: E=%u %s group=%u groups=%u ", i, l.num_experts,
                l.expert_choice ? "expert choice" : "top-k", l.group_size,
                l.num_groups);
    if (!l.expert_choice)
      std::printf("k=%u ", l.k);
    if (l.fixed_capacity)
      std::printf("fixed capacity %u", l.max_capacity);
    else
      std::printf("capacity factor %.3g (max %.3g, C_max %u, %s, multiple "
                  "of %u)",
                  l.default_capacity_factor, l.max_capacity_factor,
                  l.max_capacity, l.capacity_round ? "round" : "ceil",
                  l.capacity_multiple_of);
    std::printf(", BPR %s\n", l.default_bpr ? "on" : "off");
  }
}

/// The class count and the first names; the config verbatim.
void printClassesAndConfig(const vmoe_module_t *module,
                           const vmoe_module_info_t &info) {
  if (info.class_count) {
    std::printf("  class names: %u (", info.class_count);
    uint32_t shown = info.class_count < 5 ? info.class_count : 5;
    for (uint32_t i = 0; i < shown; ++i)
      std::printf("%s%s", i ? ", " : "", vmoe_module_class_name(module, i));
    std::printf("%s)\n", shown < info.class_count ? ", ..." : "");
  } else {
    std::printf("  class names: none (classes print as numbers; "
                "vmoe-run --classes FILE names them)\n");
  }
  if (!info.config_json_size) {
    std::printf("  config: none\n");
    return;
  }
  std::printf("  config (%" PRIu64 " bytes): %.*s\n", info.config_json_size,
              static_cast<int>(info.config_json_size), info.config_json);
}

} // namespace

void printInfo(vmoe_module_t *module) {
  vmoe_module_info_t info;
  vmoe_module_info(module, &info);
  std::printf("module %s (format %u.%u): %" PRIu64 " bytes\n",
              *info.name ? info.name : "(unnamed)", info.format_major,
              info.format_minor, info.file_size);
  printCompiler(module, info);
  printTargets(module, info);
  std::printf("  %u kernels, %u dispatches, arena %" PRIu64
              " bytes, weights %" PRIu64 " bytes, batch %" PRId64,
              info.kernel_count, info.dispatch_count, info.arena_size,
              info.constant_bytes, info.max_batch);
  if (info.batch_multiple < info.max_batch)
    std::printf(" (any multiple of %" PRId64 " up to it)", info.batch_multiple);
  std::printf("\n");
  printIntegrity(module);
  printShard(module);
  printTensorsAndLayers(module, info);
  printClassesAndConfig(module, info);
}

} // namespace vmoe::tools::run
