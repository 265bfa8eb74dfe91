//===- ModuleLoadFuzzer.cpp - Fuzz the module loader and verifier --------===//
//
// Loads arbitrary bytes as a module (copy and borrow modes) and, when the
// verifier accepts them, reads every piece of metadata the C API exposes.
// Any crash, sanitizer report or leak is a finding: the loader promises an
// error message for every malformed file.
//
//===----------------------------------------------------------------------===//

#include "FuzzModule.h"
#include "vmoe/runtime.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace {

void touch(const char *s) {
  if (s)
    (void)strlen(s);
}

void inspect(vmoe_module_t *module) {
  vmoe_module_info_t info;
  vmoe_module_info(module, &info);
  touch(info.name);
  touch(info.producer);
  touch(vmoe_module_compiler_version(module));
  touch(vmoe_module_compiler_revision(module));
  if (info.config_json)
    (void)memchr(info.config_json, 0, info.config_json_size + 1);
  vmoe_message_t message;
  for (uint32_t i = 0; i <= info.class_count; ++i)
    touch(vmoe_module_class_name(module, i));
  for (uint32_t i = 0; i <= info.input_count; ++i) {
    vmoe_tensor_info_t t;
    if (vmoe_module_input_info(module, i, &t, &message) == VMOE_STATUS_OK) {
      touch(t.name);
      for (uint32_t d = 0; d < t.rank; ++d)
        (void)t.shape[d];
    }
  }
  for (uint32_t i = 0; i <= info.output_count; ++i) {
    vmoe_tensor_info_t t;
    if (vmoe_module_output_info(module, i, &t, &message) == VMOE_STATUS_OK) {
      touch(t.name);
      for (uint32_t d = 0; d < t.rank; ++d)
        (void)t.shape[d];
    }
  }
  for (uint32_t i = 0; i <= info.moe_layer_count; ++i) {
    vmoe_moe_layer_info_t layer;
    if (vmoe_module_moe_layer_info(module, i, &layer, &message) ==
        VMOE_STATUS_OK)
      touch(layer.name);
  }
  for (uint32_t i = 0; i <= info.executable_count; ++i) {
    vmoe_executable_info_t exe;
    if (vmoe_module_executable_info(module, i, &exe, &message) ==
        VMOE_STATUS_OK) {
      touch(exe.name);
      touch(exe.target_triple);
      touch(exe.cpu_features);
    }
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  vmoe_module_t *module = nullptr;
  vmoe_message_t message;
  if (vmoe_module_load_memory(data, size, VMOE_MEMORY_COPY, &module,
                              &message) == VMOE_STATUS_OK) {
    inspect(module);
    vmoe_module_release(module);
  } else if (memchr(message.text, 0, sizeof(message.text)) == nullptr) {
    abort(); // every failure writes a terminated message
  }
  // Borrow mode reads the same bytes in place from an aligned buffer.
  void *aligned = nullptr;
  if (posix_memalign(&aligned, VMOE_SEGMENT_BASE_ALIGNMENT, size ? size : 1))
    return 0;
  if (size)
    memcpy(aligned, data, size);
  module = nullptr;
  if (vmoe_module_load_memory(aligned, size, VMOE_MEMORY_BORROW, &module,
                              &message) == VMOE_STATUS_OK) {
    inspect(module);
    vmoe_module_release(module);
  }
  free(aligned);
  return 0;
}
