//===- ModelConfigValidation.cpp - range and consistency checks -----------===//
//
// What a config must satisfy whichever way it was made: parsed from JSON,
// taken from a preset, or changed afterwards by command-line overrides.
//
//===----------------------------------------------------------------------===//

#include "vmoe/readers/ModelConfig.h"

#include "ModelConfigLimits.h"
#include "Support.h"

#include <cmath>
#include <set>

namespace vmoe::readers {

using namespace detail;

int64_t ModelConfig::tokensPerImage() const {
  if (patchSize < 1)
    return 0;
  int64_t patches = (imageHeight / patchSize) * (imageWidth / patchSize);
  return patches + (classifier == "token" ? 1 : 0);
}

bool checkModelConfig(const ModelConfig &c, std::string *error) {
  auto bad = [&](const std::string &message) {
    *error = message;
    return false;
  };
  auto in = [](int64_t v, int64_t lo, int64_t hi) {
    return v >= lo && v <= hi;
  };
  if (!in(c.imageHeight, 1, kMaxImage) || !in(c.imageWidth, 1, kMaxImage))
    return bad("image_size must be in [1, " + std::to_string(kMaxImage) + "]");
  if (!in(c.channels, 1, 64))
    return bad("num_channels must be in [1, 64]");
  if (c.patchSize < 1 || c.patchSize > c.imageHeight ||
      c.patchSize > c.imageWidth)
    return bad("patch_size " + std::to_string(c.patchSize) +
               " must be in [1, image size " + std::to_string(c.imageHeight) +
               "x" + std::to_string(c.imageWidth) + "]");
  if (!in(c.hiddenSize, 1, kMaxWidth) || !in(c.mlpDim, 1, kMaxWidth) ||
      !in(c.numHeads, 1, kMaxWidth))
    return bad("hidden_size, mlp_dim and num_heads must be in [1, " +
               std::to_string(kMaxWidth) + "]");
  if (c.hiddenSize % c.numHeads != 0)
    return bad("num_heads " + std::to_string(c.numHeads) +
               " does not divide hidden_size " + std::to_string(c.hiddenSize));
  if (!in(c.numLayers, 1, kMaxLayers))
    return bad("num_layers must be in [1, " + std::to_string(kMaxLayers) + "]");
  if (c.classifier != "token" && c.classifier != "gap" &&
      c.classifier != "map" && c.classifier != "0")
    return bad("classifier " + quote(c.classifier) +
               " is not supported ('token', 'gap', 'map' or '0')");
  if (c.positionEmbedding != "learned" && c.positionEmbedding != "sincos2d" &&
      c.positionEmbedding != "none")
    return bad("position_emb " + quote(c.positionEmbedding) +
               " is not supported ('learned', 'sincos2d' or 'none')");
  // vmoe's EncoderMoe.add_position_emb raises the same.
  if (c.positionEmbedding == "sincos2d" &&
      (c.hiddenSize % 4 != 0 || c.hiddenSize < 8))
    return bad("sincos2d position embeddings need a hidden_size that is a "
               "multiple of 4 and at least 8, not " +
               std::to_string(c.hiddenSize));
  if (!(c.sincosTemperature > 0) || !std::isfinite(c.sincosTemperature))
    return bad("the sincos2d temperature must be a positive number");
  if (c.representationSize && !in(*c.representationSize, 1, kMaxWidth))
    return bad("representation_size must be null or in [1, " +
               std::to_string(kMaxWidth) + "]");
  if (!in(c.numClasses, 1, kMaxClasses))
    return bad("num_classes must be in [1, " + std::to_string(kMaxClasses) +
               "]");
  if (!c.classNames.empty() && int64_t(c.classNames.size()) != c.numClasses)
    return bad("class_names has " + std::to_string(c.classNames.size()) +
               " names for " + std::to_string(c.numClasses) + " classes");
  if (!in(c.batchSize, 1, kMaxBatch))
    return bad("batch_size must be in [1, " + std::to_string(kMaxBatch) + "]");
  if (!c.moeLayers.empty()) {
    std::set<int64_t> layers;
    for (int64_t l : c.moeLayers) {
      if (l < 0 || l >= c.numLayers)
        return bad("MoE layer " + std::to_string(l) + " is outside [0, " +
                   "num_layers = " + std::to_string(c.numLayers) + ")");
      if (!layers.insert(l).second)
        return bad("MoE layer " + std::to_string(l) + " is listed twice");
    }
    if (!in(c.numExperts, 1, kMaxExperts))
      return bad("num_experts must be in [1, " + std::to_string(kMaxExperts) +
                 "]");
    if (!in(c.numSelectedExperts, 1, c.numExperts))
      return bad(
          "num_selected_experts " + std::to_string(c.numSelectedExperts) +
          " must be in [1, num_experts = " + std::to_string(c.numExperts) +
          "]");
    if (!in(c.groupSize, 0, kMaxGroup))
      return bad("group_size must be in [0, " + std::to_string(kMaxGroup) +
                 "]");
  }
  if (!(c.capacityFactor > 0) || !(c.capacityFactor <= kMaxCapacityFactor))
    return bad("capacity_factor must be in (0, 65536]");
  if (c.maxCapacityFactor != 0 && !(c.maxCapacityFactor >= c.capacityFactor &&
                                    c.maxCapacityFactor <= kMaxCapacityFactor))
    return bad("max_capacity_factor must be 0 (none) or in [capacity_factor, "
               "65536]");
  return true;
}

} // namespace vmoe::readers
