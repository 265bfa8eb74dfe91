//===- NpzFuzzer.cpp - Fuzz the .npz (zip + .npy) reader ------------------===//

#include "vmoe/readers/Npz.h"

#include <cstdint>
#include <string>

using namespace vmoe::readers;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ByteSpan bytes{data, size};
  TensorMap tensors;
  std::string error;
  ReadOptions options;
  options.skipNonFloat = size % 2;
  (void)readNpz(bytes, "fuzz.npz", tensors, &error, options);
  // The same bytes as one .npy member.
  Tensor tensor;
  (void)readNpy(bytes, "fuzz.npy", tensor, &error, options);
  return 0;
}
