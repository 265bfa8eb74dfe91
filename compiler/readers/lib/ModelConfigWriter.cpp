//===- ModelConfigWriter.cpp - configs as JSON, command-line overrides ----===//
//
// The effective config of a compile, as vmoe-style JSON (printed by
// vmoe-compile --emit=config and stored in modules), and the command-line
// overrides that lead to it.
//
//===----------------------------------------------------------------------===//

#include "vmoe/readers/ModelConfig.h"

#include "ModelConfigJson.h"
#include "ModelConfigLimits.h"

namespace vmoe::readers {

using namespace detail;

namespace {

/// One line with ", " and ": " between items (readable, and what tools
/// grep), scalars as nlohmann-json writes them (shortest round-trip
/// numbers, escaped strings).
void dumpCompact(const Json &v, std::string &out) {
  if (v.is_object()) {
    out += '{';
    bool first = true;
    for (auto &[key, item] : v.items()) {
      out += first ? "" : ", ";
      first = false;
      out += Json(key).dump() + ": ";
      dumpCompact(item, out);
    }
    out += '}';
  } else if (v.is_array()) {
    out += '[';
    for (size_t i = 0; i < v.size(); ++i) {
      out += i ? ", " : "";
      dumpCompact(v[i], out);
    }
    out += ']';
  } else {
    out += v.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
}

std::string imagesOf(int64_t tokens, int64_t perImage) {
  if (tokens % perImage != 0)
    return std::to_string(tokens) + " tokens";
  int64_t images = tokens / perImage;
  return std::to_string(tokens) + " tokens, " + std::to_string(images) +
         (images == 1 ? " image" : " images");
}

} // namespace

std::string modelConfigToJson(const ModelConfig &c) {
  Json j = Json::object();
  j["name"] = c.name;
  j["image_size"] = {c.imageHeight, c.imageWidth};
  j["channels"] = c.channels;
  j["patch_size"] = c.patchSize;
  j["hidden_size"] = c.hiddenSize;
  j["classifier"] = c.classifier;
  j["representation_size"] = nullptr;
  if (c.representationSize)
    j["representation_size"] = *c.representationSize;
  j["num_classes"] = c.numClasses;
  if (!c.classNames.empty())
    j["class_names"] = c.classNames;
  Json encoder = Json::object();
  encoder["num_layers"] = c.numLayers;
  encoder["mlp_dim"] = c.mlpDim;
  encoder["num_heads"] = c.numHeads;
  if (c.positionEmbedding != "learned") {
    encoder["position_emb"] = {{"name", c.positionEmbedding}};
    if (c.positionEmbedding == "sincos2d")
      encoder["position_emb"]["temperature"] = c.sincosTemperature;
  }
  Json moe = Json::object();
  moe["layers"] = c.moeLayers;
  moe["num_experts"] = c.numExperts;
  // One image's tokens when the config says none (null), unless that is
  // past what a config may say (a dense model at the maxima).
  int64_t group = c.groupSize > 0 ? c.groupSize : c.tokensPerImage();
  moe["group_size"] = nullptr;
  if (group <= kMaxGroup)
    moe["group_size"] = group;
  Json dispatcher = Json::object();
  if (c.capacity > 0)
    dispatcher["capacity"] = c.capacity;
  else
    dispatcher["capacity_factor"] = c.capacityFactor;
  dispatcher["batch_priority"] = c.batchPriority;
  dispatcher["bfloat16"] = c.bf16Dispatch;
  Json router = Json::object();
  if (c.expertChoice)
    router["name"] = "NoisyTopItemsPerExpertRouter";
  else
    router["num_selected_experts"] = c.numSelectedExperts;
  router["dispatcher"] = dispatcher;
  moe["router"] = router;
  encoder["moe"] = moe;
  j["encoder"] = encoder;
  j["batch_size"] = c.batchSize;
  if (c.maxCapacityFactor > 0)
    j["max_capacity_factor"] = c.maxCapacityFactor;
  std::string out;
  dumpCompact(j, out);
  return out;
}

void applyOverrides(ModelConfig &c, const ConfigOverrides &o,
                    std::vector<std::string> &warnings) {
  int64_t t = c.tokensPerImage();
  bool moe = !c.moeLayers.empty() && t > 0;
  int64_t configGroup = c.groupSize > 0 ? c.groupSize : t;
  if (o.batchSize > 0) {
    // A group of the config's images must still fit the new batch.
    if (o.groupSize == 0 && c.groupSize > 0 &&
        (o.batchSize * t) % c.groupSize != 0) {
      c.groupSize = t;
      if (moe && configGroup != t)
        warnings.push_back(
            "--batch " + std::to_string(o.batchSize) +
            " changes the routing group: the config's group of " +
            imagesOf(configGroup, t) + " does not fit a batch of " +
            std::to_string(o.batchSize) + ", so each image's " +
            std::to_string(t) +
            " tokens are routed on their own; where a capacity drops "
            "assignments, results differ from vmoe's (give --group-size "
            "to choose another group)");
    }
    c.batchSize = o.batchSize;
  }
  if (o.groupSize > 0) {
    if (moe && o.groupSize != configGroup)
      warnings.push_back("--group-size " + std::to_string(o.groupSize) +
                         " changes the routing group from the config's " +
                         imagesOf(configGroup, t) + " to " +
                         imagesOf(o.groupSize, t) +
                         "; where a capacity drops assignments, results "
                         "differ from vmoe's");
    c.groupSize = o.groupSize;
  }
  // Without --batch, a config whose group holds whole images (vmoe's 8
  // images) compiles for one group of them: the routing is the config's.
  if (o.batchSize == 0 && c.groupSize > 0 && t > 0 &&
      (c.batchSize * t) % c.groupSize != 0 && c.groupSize % t == 0)
    c.batchSize = c.groupSize / t;
  if (o.capacityFactor > 0.0) {
    if (moe && c.capacity > 0)
      warnings.push_back("--capacity-factor replaces the config's fixed "
                         "capacity (dispatcher.capacity = " +
                         std::to_string(c.capacity) +
                         ") by the capacity factor's rule");
    c.capacity = 0;
    c.capacityFactor = o.capacityFactor;
  }
  if (o.maxCapacityFactor > 0.0)
    c.maxCapacityFactor = o.maxCapacityFactor;
  if (o.batchPriority)
    c.batchPriority = *o.batchPriority;
}

bool parseImageSize(std::string_view text, int64_t &height, int64_t &width,
                    std::string *error) {
  auto number = [](std::string_view s, int64_t &out) {
    if (s.empty() || s.size() > 6)
      return false;
    out = 0;
    for (char ch : s) {
      if (ch < '0' || ch > '9')
        return false;
      out = out * 10 + (ch - '0');
    }
    return out >= 1 && out <= kMaxImage;
  };
  size_t x = text.find('x');
  bool ok = x == std::string_view::npos
                ? number(text, height) && number(text, width)
                : number(text.substr(0, x), height) &&
                      number(text.substr(x + 1), width);
  if (!ok)
    *error = "image size '" + std::string(text) +
             "' is not N or HxW with sides in [1, " +
             std::to_string(kMaxImage) + "]";
  return ok;
}

} // namespace vmoe::readers
