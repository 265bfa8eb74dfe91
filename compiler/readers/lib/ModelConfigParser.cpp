//===- ModelConfigParser.cpp - vmoe model configs from JSON ---------------===//
//
// Walks the JSON document, maps every spelling of a field (nested, flat,
// dotted, big_vision's names) to where vmoe nests it, and sets the typed
// field; then checkModelConfig (ModelConfigValidation.cpp) checks the whole.
//
//===----------------------------------------------------------------------===//

#include "vmoe/readers/ModelConfig.h"

#include "vmoe/readers/Json.h"

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
         path == "encoder.moe.router.dispatcher";
}

/// Training-only fields of vmoe's model config, accepted and ignored.
bool isIgnored(const std::string &path) {
  static const std::set<std::string> ignored = {
      "head_bias_init",
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
  ConfigParser(const json::Document &doc, const std::string &file,
               ModelConfig &out, std::string *error)
      : doc_(doc), file_(file), c_(out), error_(error) {}

  bool run() {
    const json::Value &root = doc_.root();
    if (root.kind != json::Kind::Object)
      return fail("the config is " + std::string(json::kindName(root.kind)) +
                  ", expected a JSON object");
    if (!walk(root, "", ""))
      return false;
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
    std::string why;
    if (!checkModelConfig(c_, &why))
      return fail(why);
    return true;
  }

private:
  bool fail(const std::string &message) {
    *error_ = file_ + ": " + message;
    return false;
  }

  /// `rawPath`: the keys as written, for messages; `path`: canonical.
  bool walk(const json::Value &object, const std::string &rawPath,
            const std::string &path) {
    for (size_t i = 0; i < object.count; ++i) {
      const std::string &key = doc_.key(object, i).text;
      const json::Value &v = doc_.value(object, i);
      std::string raw = rawPath.empty() ? key : rawPath + "." + key;
      std::string field = canonical(path.empty() ? key : path + "." + key);
      if (v.kind == json::Kind::Object && field != "patch_size" &&
          !isIgnored(field)) {
        if (!isContainer(field))
          return unknownField(raw, v);
        if (!walk(v, raw, field))
          return false;
        continue;
      }
      auto [it, inserted] = seen_.emplace(field, raw);
      if (!inserted)
        return fail("field " + quote(field) + " is given twice (as " +
                    quote(it->second) + " and " + quote(raw) + ")");
      if (!setField(field, raw, v))
        return false;
    }
    return true;
  }

  // ---- typed access ---------------------------------------------------------

  bool typeError(const std::string &raw, const json::Value &v,
                 const char *expected) {
    return fail("field " + quote(raw) + ": expected " + expected + ", got " +
                json::kindName(v.kind) + " (at " + doc_.position(v.offset) +
                ")");
  }

  bool rangeError(const std::string &raw, const std::string &what) {
    return fail("field " + quote(raw) + ": " + what);
  }

  bool integer(const std::string &raw, const json::Value &v, int64_t lo,
               int64_t hi, int64_t &out) {
    if (v.kind != json::Kind::Number)
      return typeError(raw, v, "an integer");
    if (!v.isInteger) {
      char text[32];
      std::snprintf(text, sizeof(text), "%.17g", v.number);
      return rangeError(raw, std::string("expected an integer, got ") + text);
    }
    if (v.integer < lo || v.integer > hi)
      return rangeError(raw, std::to_string(v.integer) + " is outside [" +
                                 std::to_string(lo) + ", " +
                                 std::to_string(hi) + "]");
    out = v.integer;
    return true;
  }

  bool number(const std::string &raw, const json::Value &v, double &out) {
    if (v.kind != json::Kind::Number)
      return typeError(raw, v, "a number");
    if (!std::isfinite(v.number) || v.number <= 0 ||
        v.number > kMaxCapacityFactor)
      return rangeError(raw, "must be a number in (0, " +
                                 std::to_string(int64_t(kMaxCapacityFactor)) +
                                 "]");
    out = v.number;
    return true;
  }

  bool boolean(const std::string &raw, const json::Value &v, bool &out) {
    if (v.kind != json::Kind::Bool)
      return typeError(raw, v, "true or false");
    out = v.boolean;
    return true;
  }

  bool string(const std::string &raw, const json::Value &v, std::string &out) {
    if (v.kind != json::Kind::String)
      return typeError(raw, v, "a string");
    out = v.text;
    return true;
  }

  /// An int, or an array of `n` ints.
  bool ints(const std::string &raw, const json::Value &v, size_t n, int64_t lo,
            int64_t hi, std::vector<int64_t> &out) {
    out.clear();
    if (v.kind == json::Kind::Number) {
      int64_t x;
      if (!integer(raw, v, lo, hi, x))
        return false;
      out.assign(n, x);
      return true;
    }
    if (v.kind != json::Kind::Array)
      return typeError(raw, v, "an integer or an array of integers");
    if (v.count != n)
      return rangeError(raw, "expected " + std::to_string(n) +
                                 " integers, got " + std::to_string(v.count));
    for (size_t i = 0; i < v.count; ++i) {
      int64_t x;
      if (!integer(raw, doc_.item(v, i), lo, hi, x))
        return false;
      out.push_back(x);
    }
    return true;
  }

  bool unknownField(const std::string &raw, const json::Value &v) {
    return fail("unknown field " + quote(raw) + " (at " +
                doc_.position(v.offset) + ")");
  }

  // ---- fields ---------------------------------------------------------------

  bool setField(const std::string &field, const std::string &raw,
                const json::Value &v) {
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
                     const json::Value &v) {
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
      if (v.kind == json::Kind::Null) {
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
      if (v.kind == json::Kind::Null) {
        c_.maxCapacityFactor = 0;
        return true;
      }
      return number(raw, v, c_.maxCapacityFactor);
    }
    if (field == "batch_size")
      return integer(raw, v, 1, kMaxBatch, c_.batchSize);
    if (field == "class_names") {
      if (v.kind != json::Kind::Array)
        return typeError(raw, v, "an array of strings");
      c_.classNames.clear();
      for (size_t i = 0; i < v.count; ++i) {
        std::string s;
        if (!string(raw, doc_.item(v, i), s))
          return false;
        c_.classNames.push_back(std::move(s));
      }
      return true;
    }
    return unknownField(raw, v);
  }

  bool setName(const std::string &raw, const json::Value &v) {
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
  bool setPatchSize(const std::string &raw, const json::Value &v) {
    const json::Value *size = &v;
    if (v.kind == json::Kind::Object) {
      size = doc_.find(v, "size");
      if (!size || v.count != 1)
        return rangeError(raw, "expected {\"size\": [p, p]}");
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
                       const json::Value &v) {
    if (field == "encoder.num_layers")
      return integer(raw, v, 1, kMaxLayers, c_.numLayers);
    if (field == "encoder.mlp_dim")
      return integer(raw, v, 1, kMaxWidth, c_.mlpDim);
    if (field == "encoder.num_heads")
      return integer(raw, v, 1, kMaxWidth, c_.numHeads);
    if (field == "encoder.moe.layers") {
      if (v.kind != json::Kind::Array)
        return typeError(raw, v, "an array of block indices");
      c_.moeLayers.clear();
      for (size_t i = 0; i < v.count; ++i) {
        int64_t l;
        if (!integer(raw, doc_.item(v, i), 0, kMaxLayers - 1, l))
          return false;
        c_.moeLayers.push_back(l);
      }
      return true;
    }
    if (field == "encoder.moe.num_experts")
      return integer(raw, v, 1, kMaxExperts, c_.numExperts);
    if (field == "encoder.moe.group_size") {
      if (v.kind == json::Kind::Null) {
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
      if (router != "NoisyTopExpertsPerItemRouter")
        return rangeError(raw, "router " + quote(router) +
                                   " is not supported (V-MoE's "
                                   "'NoisyTopExpertsPerItemRouter')");
      return true;
    }
    if (field.compare(0, strlen(kDispatcher), kDispatcher) == 0)
      return setDispatcherField(field.substr(strlen(kDispatcher)), raw, v);
    return unknownField(raw, v);
  }

  /// The fields under "encoder.moe.router.dispatcher", by their last key.
  bool setDispatcherField(const std::string &key, const std::string &raw,
                          const json::Value &v) {
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
    if (key == "batch_priority")
      return boolean(raw, v, c_.batchPriority);
    if (key == "bfloat16")
      return boolean(raw, v, c_.bf16Dispatch);
    return unknownField(raw, v);
  }

  const json::Document &doc_;
  const std::string &file_;
  ModelConfig &c_;
  std::string *error_;
  std::map<std::string, std::string> seen_;
  bool hasMoe_ = false;
};

} // namespace

bool parseModelConfig(std::string_view text, const std::string &name,
                      ModelConfig &out, std::string *error,
                      const ReadLimits &limits) {
  json::Document doc;
  std::string why;
  if (!doc.parse(text, &why, limits)) {
    *error = name + ": " + why;
    return false;
  }
  ModelConfig config;
  ConfigParser parser(doc, name, config, error);
  if (!parser.run())
    return false;
  out = std::move(config);
  return true;
}

bool readModelConfig(const std::string &path, ModelConfig &out,
                     std::string *error) {
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
      out, error);
}

} // namespace vmoe::readers
