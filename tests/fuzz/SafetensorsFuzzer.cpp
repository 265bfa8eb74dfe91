//===- SafetensorsFuzzer.cpp - Fuzz the safetensors reader ---------------===//

#include "vmoe/readers/Safetensors.h"

#include <cstdint>
#include <string>

using namespace vmoe::readers;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  TensorMap tensors;
  std::string error;
  ReadOptions options;
  options.skipNonFloat = size % 2;
  (void)readSafetensors(ByteSpan{data, size}, "fuzz.safetensors", tensors,
                        &error, options);
  return 0;
}
