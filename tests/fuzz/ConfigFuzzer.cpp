//===- ConfigFuzzer.cpp - Fuzz the model config reader --------------------===//
//
// Parses the input as a model config (flat, nested or a whole vmoe config;
// the JSON itself through nlohmann-json) and, when it parses, checks it,
// computes what vmoe-compile derives from it, and requires that the config
// it writes back (--emit=config) reads back to the same.
//
//===----------------------------------------------------------------------===//

#include "vmoe/readers/ModelConfig.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace vmoe::readers;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view text(reinterpret_cast<const char *>(data), size);
  std::string error;
  ModelConfig config;
  if (!parseModelConfig(text, "fuzz.json", config, &error) ||
      !checkModelConfig(config, &error))
    return 0;
  (void)config.tokensPerImage();
  std::string json = modelConfigToJson(config);
  ModelConfig back;
  if (!parseModelConfig(json, "emitted.json", back, &error) ||
      modelConfigToJson(back) != json)
    __builtin_trap();
  ConfigOverrides overrides;
  overrides.batchSize = 1;
  std::vector<std::string> warnings;
  applyOverrides(back, overrides, warnings);
  return 0;
}
