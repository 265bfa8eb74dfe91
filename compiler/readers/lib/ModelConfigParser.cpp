//===- ModelConfigParser.cpp - vmoe model configs from JSON ---------------===//
//
// Walks the JSON document (nlohmann-json, ModelConfigJson.cpp), maps every
// spelling of a field (nested, flat, dotted, big_vision's names) to where
// vmoe nests it, and sets the typed field; reads a whole vmoe config's model
// part as vmoe's evaluation does; finds the image size; then
// checkModelConfig (ModelConfigValidation.cpp) checks the whole.
//
//===----------------------------------------------------------------------===//

#include "vmoe/readers/ModelConfig.h"

#include "ModelConfigJson.h"
#include "ModelConfigLimits.h"
#include "Support.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

namespace vmoe::readers {

using namespace detail;

namespace {

constexpr const char *kDispatcher = "encoder.moe.router.dispatcher.";

/// Where vmoe nests each field; keys of other spellings map here.
std::string canonical(std::string path) {
  auto replacePrefix = [&](std::string_view from, std::string_view to) {
    if (path.compare(0, from.size(), from) == 0) {
      path = std::string(to) + path.substr(from.size());
      return true;
    }
    return false;
  };
  if (path == "model")
    return "";
  replacePrefix("model.", "");
  if (!replacePrefix("transformer.", "encoder."))
    replacePrefix("moe.", "encoder.moe.");
  if (path == "transformer")
    return "encoder";
  if (path == "moe")
    return "encoder.moe";
  static const std::map<std::string, std::string> flat = {
      {"num_layers", "encoder.num_layers"},
      {"mlp_dim", "encoder.mlp_dim"},
      {"num_heads", "encoder.num_heads"},
      {"moe_layers", "encoder.moe.layers"},
      {"num_experts", "encoder.moe.num_experts"},
      {"group_size", "encoder.moe.group_size"},
      {"num_selected_experts", "encoder.moe.router.num_selected_experts"},
      {"capacity_factor", std::string(kDispatcher) + "capacity_factor"},
      {"batch_priority", std::string(kDispatcher) + "batch_priority"},
      {"bfloat16", std::string(kDispatcher) + "bfloat16"},
      {"patches", "patch_size"},
      {"channels", "num_channels"},
  };
  auto it = flat.find(path);
  return it == flat.end() ? path : it->second;
}

bool isContainer(const std::string &path) {
  return path.empty() || path == "encoder" || path == "encoder.moe" ||
         path == "encoder.moe.router" ||
         path == "encoder.moe.router.dispatcher" ||
         path == "encoder.position_emb";
}

/// The fields of ours (not vmoe's model config) that a whole vmoe config may
/// carry beside "model".
bool isInferenceField(const std::string &key) {
  return key == "batch_size" || key == "max_capacity_factor" ||
         key == "class_names" || key == "image_size" || key == "name";
}

/// Training-only fields of vmoe's model config, accepted and ignored.
bool isIgnored(const std::string &path) {
  static const std::set<std::string> ignored = {
      "head_bias_init",
      "head_kernel_zero_init",
      "encoder.dropout_rate",
      "encoder.attention_dropout_rate",
      "encoder.moe.dropout_rate",
      "encoder.moe.split_rngs",
      "encoder.moe.router.noise_std",
      "encoder.moe.router.importance_loss_weight",
      "encoder.moe.router.load_loss_weight",
      "encoder.moe.router.dispatcher.partition_spec",
  };
  return ignored.count(path) != 0;
}

class ConfigParser {
public:
  ConfigParser(const Json &doc, const std::string &file,
               const ConfigReadOptions &options, ModelConfig &out,
               std::string *error)
      : doc_(doc), file_(file), options_(options), c_(out), error_(error) {}

  bool run() {
    if (!doc_.is_object())
      return fail("the config is " + std::string(kindName(doc_)) +
                  ", expected a JSON object");
    auto model = doc_.find("model");
    if (model != doc_.end() && !model->is_object())
      return typeError("model", *model, "an object");
    if (model != doc_.end()) {
      if (!readWholeConfig(*model))
        return false;
    } else if (!walk(doc_, "", "")) {
      return false;
    }
    for (const char *required :
         {"patch_size", "hidden_size", "num_classes", "encoder.num_layers",
          "encoder.mlp_dim", "encoder.num_heads"})
      if (!seen_.count(required))
        return fail("field " + quote(required) + " is missing");
    if (hasMoe_)
      for (const char *required :
           {"encoder.moe.layers", "encoder.moe.num_experts"})
        if (!seen_.count(required))
          return fail("field " + quote(required) +
                      " is missing (needed when the config has MoE fields)");
    if (!hasMoe_)
      c_.moeLayers.clear();
    if (!checkRouterFields())
      return false;
    if (!resolveImageSize())
      return false;
    std::string why;
    if (!checkModelConfig(c_, &why))
      return fail(why);
    return true;
  }

private:
  /// What vmoe's routers refuse: both capacity forms (vmoe: "exactly one
  /// of capacity and capacity_factor"), and a k for the expert-choice
  /// router, which has no such field.
  bool checkRouterFields() {
    std::string d = kDispatcher;
    if (seen_.count(d + "capacity") && seen_.count(d + "capacity_factor"))
      return fail("the dispatcher sets both capacity and capacity_factor: "
                  "set exactly one (as vmoe requires)");
    if (c_.expertChoice &&
        seen_.count("encoder.moe.router.num_selected_experts"))
      return fail("encoder.moe.router.num_selected_experts is not a field of "
                  "NoisyTopItemsPerExpertRouter (expert choice has no k): "
                  "remove it");
    if (c_.expertChoice)
      c_.numSelectedExperts = 1;
    return true;
  }

  bool fail(const std::string &message) {
    *error_ = file_ + ": " + message;
    return false;
  }

  /// {"model": {...}, "dataset": {...}, "evaluate": {"model_overrides":
  /// {...}}, ...}: the model as vmoe's evaluation builds it.
  bool readWholeConfig(const Json &model) {
    if (!walk(model, "model", ""))
      return false;
    for (auto &[key, v] : doc_.items())
      if (isInferenceField(key) && !setOnce(key, key, v))
        return false;
    auto evaluate = doc_.find("evaluate");
    if (evaluate != doc_.end() && evaluate->is_object()) {
      auto overrides = evaluate->find("model_overrides");
      if (overrides != evaluate->end() && !overrides->is_null()) {
        if (!overrides->is_object())
          return typeError("evaluate.model_overrides", *overrides, "an object");
        // ConfigDict.update: the overrides replace what "model" says.
        overriding_ = true;
        if (!walk(*overrides, "evaluate.model_overrides", ""))
          return false;
        overriding_ = false;
      }
    }
    auto dataset = doc_.find("dataset");
    if (dataset != doc_.end() && dataset->is_object())
      dataset_ = &*dataset;
    return true;
  }

  /// `rawPath`: the keys as written, for messages; `path`: canonical.
  bool walk(const Json &object, const std::string &rawPath,
            const std::string &path) {
    for (auto &[key, v] : object.items()) {
      std::string raw = rawPath.empty() ? key : rawPath + "." + key;
      std::string field = canonical(path.empty() ? key : path + "." + key);
      if (v.is_object() && field != "patch_size" && !isIgnored(field)) {
        if (!isContainer(field))
          return unknownField(raw);
        if (!walk(v, raw, field))
          return false;
        continue;
      }
      if (!setOnce(field, raw, v))
        return false;
    }
    return true;
  }

  bool setOnce(const std::string &field, const std::string &raw,
               const Json &v) {
    auto [it, inserted] = seen_.emplace(field, raw);
    if (!inserted && !overriding_)
      return fail("field " + quote(field) + " is given twice (as " +
                  quote(it->second) + " and " + quote(raw) + ")");
    it->second = raw;
    return setField(field, raw, v);
  }

  /// --image-size, else "image_size", else the evaluation datasets'
  /// preprocessing (see ModelConfig.h).
  bool resolveImageSize() {
    if (options_.imageHeight > 0 && options_.imageWidth > 0) {
      c_.imageHeight = options_.imageHeight;
      c_.imageWidth = options_.imageWidth;
      return true;
    }
    if (seen_.count("image_size"))
      return true;
    const char *missing =
        "the image size is not known: vmoe's model config has none (its "
        "input pipeline sets it)";
    const char *remedy = "; pass it (vmoe-compile --image-size=N or HxW) or "
                         "add \"image_size\": N to the config";
    if (!dataset_)
      return fail(std::string(missing) + " and this config has no \"dataset\"" +
                  remedy);
    std::string sizedBy;
    std::pair<int64_t, int64_t> size{0, 0};
    for (bool eval : {true, false}) {
      for (auto &[name, entry] : dataset_->items()) {
        if ((name == "train") == eval || !entry.is_object())
          continue;
        auto process = entry.find("process");
        if (process == entry.end() || !process->is_string())
          continue;
        auto found = processImageSize(process->get_ref<const std::string &>());
        if (!found)
          continue;
        if (!sizedBy.empty() && *found != size)
          return fail("the evaluation datasets disagree on the image size: " +
                      quote("dataset." + sizedBy) + " gives " +
                      sizeString(size) + ", " + quote("dataset." + name) + " " +
                      sizeString(*found) + remedy);
        sizedBy = name;
        size = *found;
      }
      if (!sizedBy.empty())
        break;
    }
    if (sizedBy.empty())
      return fail(std::string(missing) + " and no \"process\" of its " +
                  "\"dataset\" entries ends with a fixed size" + remedy);
    c_.imageHeight = size.first;
    c_.imageWidth = size.second;
    return true;
  }

  static std::string sizeString(std::pair<int64_t, int64_t> size) {
    return std::to_string(size.first) + "x" + std::to_string(size.second);
  }

  // ---- typed access ---------------------------------------------------------

  bool typeError(const std::string &raw, const Json &v, const char *expected) {
    return fail("field " + quote(raw) + ": expected " + expected + ", got " +
                kindName(v));
  }

  bool rangeError(const std::string &raw, const std::string &what) {
    return fail("field " + quote(raw) + ": " + what);
  }

  bool integer(const std::string &raw, const Json &v, int64_t lo, int64_t hi,
               int64_t &out) {
    if (!v.is_number())
      return typeError(raw, v, "an integer");
    if (v.is_number_float()) {
      char text[32];
      std::snprintf(text, sizeof(text), "%.17g", v.get<double>());
      return rangeError(raw, std::string("expected an integer, got ") + text);
    }
    // Unsigned values past int64_t are out of every range.
    bool huge =
        v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX);
    int64_t x = huge ? INT64_MAX : v.get<int64_t>();
    if (huge || x < lo || x > hi)
      return rangeError(
          raw, (huge ? std::to_string(v.get<uint64_t>()) : std::to_string(x)) +
                   " is outside [" + std::to_string(lo) + ", " +
                   std::to_string(hi) + "]");
    out = x;
    return true;
  }

  bool number(const std::string &raw, const Json &v, double &out,
              double hi = kMaxCapacityFactor) {
    if (!v.is_number())
      return typeError(raw, v, "a number");
    double x = v.get<double>();
    if (!std::isfinite(x) || x <= 0 || x > hi)
      return rangeError(raw, "must be a number in (0, " +
                                 std::to_string(int64_t(hi)) + "]");
    out = x;
    return true;
  }

  bool boolean(const std::string &raw, const Json &v, bool &out) {
    if (!v.is_boolean())
      return typeError(raw, v, "true or false");
    out = v.get<bool>();
    return true;
  }

  bool string(const std::string &raw, const Json &v, std::string &out) {
    if (!v.is_string())
      return typeError(raw, v, "a string");
    out = v.get_ref<const std::string &>();
    return true;
  }

  /// An int, or an array of `n` ints.
  bool ints(const std::string &raw, const Json &v, size_t n, int64_t lo,
            int64_t hi, std::vector<int64_t> &out) {
    out.clear();
    if (v.is_number()) {
      int64_t x;
      if (!integer(raw, v, lo, hi, x))
        return false;
      out.assign(n, x);
      return true;
    }
    if (!v.is_array())
      return typeError(raw, v, "an integer or an array of integers");
    if (v.size() != n)
      return rangeError(raw, "expected " + std::to_string(n) +
                                 " integers, got " + std::to_string(v.size()));
    for (const Json &item : v) {
      int64_t x;
      if (!integer(raw, item, lo, hi, x))
        return false;
      out.push_back(x);
    }
    return true;
  }

  bool unknownField(const std::string &raw) {
    return fail("unknown field " + quote(raw));
  }

  // ---- fields ---------------------------------------------------------------

  bool setField(const std::string &field, const std::string &raw,
                const Json &v) {
    if (field.compare(0, 12, "encoder.moe.") == 0)
      hasMoe_ = true;
    if (isIgnored(field))
      return true;
    if (field.compare(0, 8, "encoder.") == 0)
      return setEncoderField(field, raw, v);
    return setModelField(field, raw, v);
  }

  /// The fields outside "encoder".
  bool setModelField(const std::string &field, const std::string &raw,
                     const Json &v) {
    std::vector<int64_t> pair;
    if (field == "name")
      return setName(raw, v);
    if (field == "image_size") {
      if (!ints(raw, v, 2, 1, kMaxImage, pair))
        return false;
      c_.imageHeight = pair[0];
      c_.imageWidth = pair[1];
      return true;
    }
    if (field == "num_channels")
      return integer(raw, v, 1, 64, c_.channels);
    if (field == "patch_size")
      return setPatchSize(raw, v);
    if (field == "hidden_size")
      return integer(raw, v, 1, kMaxWidth, c_.hiddenSize);
    if (field == "classifier")
      return string(raw, v, c_.classifier);
    if (field == "representation_size") {
      if (v.is_null()) {
        c_.representationSize.reset();
        return true;
      }
      int64_t r;
      if (!integer(raw, v, 1, kMaxWidth, r))
        return false;
      c_.representationSize = r;
      return true;
    }
    if (field == "num_classes")
      return integer(raw, v, 1, kMaxClasses, c_.numClasses);
    if (field == "max_capacity_factor") {
      if (v.is_null()) {
        c_.maxCapacityFactor = 0;
        return true;
      }
      return number(raw, v, c_.maxCapacityFactor);
    }
    if (field == "batch_size")
      return integer(raw, v, 1, kMaxBatch, c_.batchSize);
    if (field == "class_names") {
      if (!v.is_array())
        return typeError(raw, v, "an array of strings");
      c_.classNames.clear();
      for (const Json &item : v) {
        std::string s;
        if (!string(raw, item, s))
          return false;
        c_.classNames.push_back(std::move(s));
      }
      return true;
    }
    return unknownField(raw);
  }

  bool setName(const std::string &raw, const Json &v) {
    if (!string(raw, v, c_.name))
      return false;
    bool ok = !c_.name.empty() && c_.name.size() <= 128;
    for (char ch : c_.name)
      ok = ok &&
           ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.');
    if (!ok)
      return rangeError(raw, quote(c_.name) +
                                 " is not 1-128 letters, digits, '_', '-' "
                                 "or '.'");
    return true;
  }

  /// p, [p, p] or big_vision's {"size": [p, p]}.
  bool setPatchSize(const std::string &raw, const Json &v) {
    const Json *size = &v;
    if (v.is_object()) {
      auto it = v.find("size");
      if (it == v.end() || v.size() != 1)
        return rangeError(raw, "expected {\"size\": [p, p]}");
      size = &*it;
    }
    std::vector<int64_t> pair;
    if (!ints(raw, *size, 2, 1, kMaxImage, pair))
      return false;
    if (pair[0] != pair[1])
      return rangeError(raw, "non-square patches (" + std::to_string(pair[0]) +
                                 ", " + std::to_string(pair[1]) +
                                 ") are not supported");
    c_.patchSize = pair[0];
    return true;
  }

  /// The fields under "encoder" (canonical paths), the MoE ones included.
  bool setEncoderField(const std::string &field, const std::string &raw,
                       const Json &v) {
    if (field == "encoder.num_layers")
      return integer(raw, v, 1, kMaxLayers, c_.numLayers);
    if (field == "encoder.mlp_dim")
      return integer(raw, v, 1, kMaxWidth, c_.mlpDim);
    if (field == "encoder.num_heads")
      return integer(raw, v, 1, kMaxWidth, c_.numHeads);
    if (field == "encoder.position_emb.name")
      return string(raw, v, c_.positionEmbedding);
    if (field == "encoder.position_emb.temperature")
      return number(raw, v, c_.sincosTemperature, 1e30);
    if (field == "encoder.attention_qk_norm") {
      bool qkNorm = false;
      if (!boolean(raw, v, qkNorm))
        return false;
      if (qkNorm)
        return rangeError(raw, "query-key normalisation is not supported "
                               "(the V-MoE models have it off)");
      return true;
    }
    if (field == "encoder.moe.layers") {
      if (!v.is_array())
        return typeError(raw, v, "an array of block indices");
      c_.moeLayers.clear();
      for (const Json &item : v) {
        int64_t l;
        if (!integer(raw, item, 0, kMaxLayers - 1, l))
          return false;
        c_.moeLayers.push_back(l);
      }
      return true;
    }
    if (field == "encoder.moe.num_experts")
      return integer(raw, v, 1, kMaxExperts, c_.numExperts);
    if (field == "encoder.moe.group_size") {
      if (v.is_null()) {
        c_.groupSize = 0;
        return true;
      }
      return integer(raw, v, 0, kMaxGroup, c_.groupSize);
    }
    if (field == "encoder.moe.router.num_selected_experts")
      return integer(raw, v, 1, kMaxExperts, c_.numSelectedExperts);
    if (field == "encoder.moe.router.name") {
      std::string router;
      if (!string(raw, v, router))
        return false;
      if (router != "NoisyTopExpertsPerItemRouter" &&
          router != "NoisyTopItemsPerExpertRouter")
        return rangeError(raw, "router " + quote(router) +
                                   " is not supported (V-MoE's "
                                   "'NoisyTopExpertsPerItemRouter', or "
                                   "'NoisyTopItemsPerExpertRouter': expert "
                                   "choice)");
      c_.expertChoice = router == "NoisyTopItemsPerExpertRouter";
      return true;
    }
    if (field.compare(0, strlen(kDispatcher), kDispatcher) == 0)
      return setDispatcherField(field.substr(strlen(kDispatcher)), raw, v);
    return unknownField(raw);
  }

  /// The fields under "encoder.moe.router.dispatcher", by their last key.
  bool setDispatcherField(const std::string &key, const std::string &raw,
                          const Json &v) {
    if (key == "name") {
      std::string dispatcher;
      if (!string(raw, v, dispatcher))
        return false;
      if (dispatcher != "einsum" && dispatcher != "indices")
        return rangeError(raw, "dispatcher " + quote(dispatcher) +
                                   " is not supported ('einsum' or "
                                   "'indices', which compute the same)");
      return true;
    }
    if (key == "capacity_factor")
      return number(raw, v, c_.capacityFactor);
    if (key == "capacity")
      return integer(raw, v, 1, kMaxGroup, c_.capacity);
    if (key == "batch_priority")
      return boolean(raw, v, c_.batchPriority);
    if (key == "bfloat16")
      return boolean(raw, v, c_.bf16Dispatch);
    return unknownField(raw);
  }

  const Json &doc_;
  const std::string &file_;
  const ConfigReadOptions &options_;
  ModelConfig &c_;
  std::string *error_;
  std::map<std::string, std::string> seen_;
  const Json *dataset_ = nullptr;
  bool hasMoe_ = false, overriding_ = false;
};

} // namespace

bool parseModelConfig(std::string_view text, const std::string &name,
                      ModelConfig &out, std::string *error,
                      const ConfigReadOptions &options) {
  Json doc;
  std::string why;
  if (!parseJson(text, options.limits, doc, &why)) {
    *error = name + ": " + why;
    return false;
  }
  ModelConfig config;
  ConfigParser parser(doc, name, options, config, error);
  if (!parser.run())
    return false;
  out = std::move(config);
  return true;
}

bool parseModelConfig(std::string_view text, const std::string &name,
                      ModelConfig &out, std::string *error,
                      const ReadLimits &limits) {
  ConfigReadOptions options;
  options.limits = limits;
  return parseModelConfig(text, name, out, error, options);
}

bool readModelConfig(const std::string &path, ModelConfig &out,
                     std::string *error, const ConfigReadOptions &options) {
  detail::FileData file;
  if (!file.open(path, error))
    return false;
  ByteSpan b = file.bytes();
  if (b.size > (64u << 20)) {
    *error = path + ": a config of " + std::to_string(b.size) +
             " bytes is too large (64 MB at most)";
    return false;
  }
  return parseModelConfig(
      std::string_view(reinterpret_cast<const char *>(b.data), b.size), path,
      out, error, options);
}

} // namespace vmoe::readers
