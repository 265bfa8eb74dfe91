//===- ConfigFuzzer.cpp - Fuzz the JSON parser and the model config -------===//
//
// Parses the input as a model config (flat or nested vmoe JSON) and, when it
// parses, checks it and computes what vmoe-compile derives from it.
//
//===----------------------------------------------------------------------===//

#include "vmoe/readers/Json.h"
#include "vmoe/readers/ModelConfig.h"

#include <cstdint>
#include <string>
#include <string_view>

using namespace vmoe::readers;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view text(reinterpret_cast<const char *>(data), size);
  std::string error;
  json::Document doc;
  if (doc.parse(text, &error))
    (void)doc.position(doc.root().offset);
  ModelConfig config;
  if (parseModelConfig(text, "fuzz.json", config, &error) &&
      checkModelConfig(config, &error))
    (void)config.tokensPerImage();
  return 0;
}
