//===- ModuleRunFuzzer.cpp - Load, then run, a mutated module ------------===//
//
// The seeds are small valid modules built on the runtime tests' kernels
// (tests/support/modules/TestKernels.c). Every input the verifier accepts
// gets a session and runs at the maximum batch, at batch 1, and at a lowered
// capacity factor with BPR flipped. The runtime must catch every
// inconsistency between the metadata and the call before a kernel runs.
//
// A module carries native code that the runtime trusts (runtime.h: "Load
// modules only from sources you would take an executable from"); so this
// target runs only inputs whose executables are byte for byte the test
// kernels and whose kernels are the ones that bound their accesses by the
// binding lengths. Mutating the code or picking another entry point would
// test the kernels, not the runtime.
//
//===----------------------------------------------------------------------===//

#include "FuzzModule.h"
#include "vmoe/module_generated.h"
#include "vmoe/runtime.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

const std::vector<uint8_t> &testKernels() {
  static const std::vector<uint8_t> bytes = [] {
    std::ifstream in(VMOE_TEST_KERNELS_PATH, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in),
                                std::istreambuf_iterator<char>());
  }();
  return bytes;
}

bool safeEntry(const flatbuffers::String *entry) {
  static const char *const kSafe[] = {
      "vmoe_test_add_f32", "vmoe_test_scale_f32", "vmoe_test_echo_constants"};
  if (!entry)
    return false;
  for (const char *name : kSafe)
    if (entry->str() == name)
      return true;
  return false;
}

/// Only called on bytes the verifier accepted: every index and range below
/// has been checked.
bool runsOnlyTestKernels(const uint8_t *data) {
  vmoe_module_header_t header;
  memcpy(&header, data, sizeof(header));
  const vmoe::fb::Module *root =
      vmoe::fb::GetModule(data + header.flatbuffer_offset);
  const auto *executables = root->executables();
  const auto *segments = root->segments();
  if (!executables || !segments)
    return false;
  for (const vmoe::fb::Executable *exe : *executables) {
    if (exe->format() != vmoe::fb::ExecutableFormat::CpuSharedObject ||
        !exe->cpu())
      return false;
    const vmoe::fb::Segment *segment = segments->Get(exe->cpu()->segment());
    const std::vector<uint8_t> &want = testKernels();
    if (segment->length() != want.size() ||
        memcmp(data + header.segment_base + segment->offset(), want.data(),
               want.size()) != 0)
      return false;
  }
  if (const auto *kernels = root->kernels())
    for (const vmoe::fb::Kernel *kernel : *kernels)
      if (!safeEntry(kernel->entry()))
        return false;
  // The verifier lets a dispatch have up to 16M workgroups: a forged module
  // may make a run take minutes, by design (bounded work, no fault). Such
  // inputs only slow fuzzing down; runs here stay under 1M workgroups.
  // Misaligned bindings and segments are the verifier's to refuse (issue
  // #17), so they are run, not left out.
  uint64_t workgroups = 0;
  if (const auto *dispatches = root->dispatches())
    for (const vmoe::fb::Dispatch *dispatch : *dispatches) {
      const vmoe::fb::Dim3 *grid =
          root->kernels()->Get(dispatch->kernel())->workgroup_count();
      if (!grid)
        return false;
      workgroups += uint64_t(grid->x()) * grid->y() * grid->z();
      if (workgroups > (uint64_t(1) << 20))
        return false;
    }
  return true;
}

struct Buffers {
  std::vector<std::vector<int64_t>> shapes;
  std::vector<std::vector<uint8_t>> data;
  std::vector<vmoe_tensor_t> tensors;
};

bool prepare(vmoe_module_t *module, bool inputs, uint32_t count, int64_t batch,
             Buffers &out) {
  out.shapes.resize(count);
  out.data.resize(count);
  out.tensors.resize(count);
  vmoe_message_t message;
  for (uint32_t i = 0; i < count; ++i) {
    vmoe_tensor_info_t info;
    vmoe_status_t status =
        inputs ? vmoe_module_input_info(module, i, &info, &message)
               : vmoe_module_output_info(module, i, &info, &message);
    if (status != VMOE_STATUS_OK)
      return false;
    out.shapes[i].assign(info.shape, info.shape + info.rank);
    uint64_t bytes = info.size_bytes;
    if (info.batch_dim >= 0 && out.shapes[i][info.batch_dim] > 0) {
      bytes = bytes / uint64_t(out.shapes[i][info.batch_dim]) * batch;
      out.shapes[i][info.batch_dim] = batch;
    }
    if (bytes > (uint64_t(64) << 20))
      return false; // the test modules are small; skip giant signatures
    out.data[i].assign(bytes, 0);
    for (uint64_t j = 0; j < bytes; ++j)
      out.data[i][j] = uint8_t(j * 37 + i);
    vmoe_tensor_t &t = out.tensors[i];
    t.dtype = info.dtype;
    t.rank = info.rank;
    t.shape = out.shapes[i].data();
    t.data = out.data[i].data();
    t.size_bytes = bytes;
  }
  return true;
}

void run(vmoe_session_t *session, vmoe_module_t *module, int64_t batch,
         const vmoe_run_options_t *options) {
  vmoe_module_info_t info;
  vmoe_module_info(module, &info);
  Buffers inputs, outputs;
  if (!prepare(module, true, info.input_count, batch, inputs) ||
      !prepare(module, false, info.output_count, batch, outputs))
    return;
  vmoe_message_t message;
  if (vmoe_session_run(session, inputs.tensors.data(), info.input_count,
                       outputs.tensors.data(), info.output_count, options,
                       &message) == VMOE_STATUS_OK) {
    // Statistics, when a layer records them, come from arena bytes the
    // kernels wrote: whatever they hold must be summarized safely.
    for (uint32_t i = 0; i < info.moe_layer_count; ++i) {
      vmoe_routing_stats_t stats;
      if (vmoe_session_routing_stats(session, i, &stats, &message) !=
          VMOE_STATUS_OK)
        continue;
      if (stats.num_experts <= 4096) {
        std::vector<uint64_t> assigned(stats.num_experts),
            kept(stats.num_experts);
        (void)vmoe_session_expert_load(session, i, assigned.data(), kept.data(),
                                       stats.num_experts, &message);
      }
      if (stats.image_count <= 4096) {
        std::vector<double> shares(stats.image_count);
        (void)vmoe_session_image_coverage(session, i, shares.data(),
                                          stats.image_count, &message);
      }
    }
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  vmoe_module_t *module = nullptr;
  vmoe_message_t message;
  if (vmoe_module_load_memory(data, size, VMOE_MEMORY_COPY, &module,
                              &message) != VMOE_STATUS_OK)
    return 0;
  if (!runsOnlyTestKernels(data)) {
    vmoe_module_release(module);
    return 0;
  }
  vmoe_session_options_t options;
  vmoe_session_options_init(&options);
  options.thread_count = 1 + size % 2;
  vmoe_session_t *session = nullptr;
  if (vmoe_session_create(module, &options, &session, &message) ==
      VMOE_STATUS_OK) {
    vmoe_module_info_t info;
    vmoe_module_info(module, &info);
    run(session, module, info.max_batch, nullptr);
    run(session, module, 1, nullptr);
    // A lowered capacity factor with BPR flipped, and one past the maximum.
    vmoe_moe_layer_info_t layer;
    if (info.moe_layer_count &&
        vmoe_module_moe_layer_info(module, 0, &layer, &message) ==
            VMOE_STATUS_OK) {
      vmoe_run_options_t runOptions = {layer.max_capacity_factor / 2,
                                       !layer.default_bpr};
      run(session, module, info.max_batch, &runOptions);
      runOptions.capacity_factor = layer.max_capacity_factor * 2 + 1;
      run(session, module, info.max_batch, &runOptions);
    }
    vmoe_session_destroy(session);
  }
  vmoe_module_release(module);
  return 0;
}
