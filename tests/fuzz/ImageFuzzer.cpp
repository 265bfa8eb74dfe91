//===- ImageFuzzer.cpp - Fuzz vmoe-run's input decoders -------------------===//
//
// PNG (libspng), JPEG (libjpeg-turbo), PGM/PPM (by magic) and .npy: the
// files vmoe-run reads from users. A decoded image goes through the model
// preprocessing (channel conversion and a small bilinear resize) too.
//
//===----------------------------------------------------------------------===//

#include "Image.h"
#include "Npy.h"

#include <cstdint>
#include <string>
#include <vector>

using namespace vmoe::tools;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string error;
  Image image;
  if (decodeImage(data, size, image, &error)) {
    if (image.pixels.size() !=
        size_t(image.height * image.width * image.channels))
      __builtin_trap();
    Image converted, resized;
    int64_t channels = image.channels == 1 ? 3 : 1;
    if (convertChannels(image, channels, converted, &error) &&
        resizeBilinear(converted, 7, 5, resized, &error)) {
      std::vector<float> values;
      toValueRange(resized, values);
    }
  }
  NpyArray array;
  (void)parseNpy(std::vector<uint8_t>(data, data + size), array, &error);
  return 0;
}
