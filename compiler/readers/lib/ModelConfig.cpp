//===- ModelConfig.cpp - vmoe model configs as JSON, and presets ----------===//

#include "vmoe/readers/ModelConfig.h"

#include "vmoe/readers/Json.h"

#include "Support.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <set>

namespace vmoe::import {

using detail::quote;

int64_t ModelConfig::tokensPerImage() const {
  if (patchSize < 1)
    return 0;
  int64_t patches = (imageHeight / patchSize) * (imageWidth / patchSize);
  return patches + (classifier == "token" ? 1 : 0);
}

namespace {

constexpr int64_t kMaxImage = 1 << 16;
constexpr int64_t kMaxWidth = 1 << 20; // hidden, mlp, representation
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxExperts = 1 << 16;
constexpr int64_t kMaxClasses = 1 << 24;
constexpr int64_t kMaxBatch = 1 << 20;
constexpr int64_t kMaxGroup = int64_t(1) << 31;
constexpr double kMaxCapacityFactor = 1 << 16;

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
          return fail("unknown field " + quote(raw) + " (at " +
                      doc_.position(v.offset) + ")");
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

  // ---- typed access
  // -----------------------------------------------------------

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

  bool setField(const std::string &field, const std::string &raw,
                const json::Value &v) {
    if (field.compare(0, 12, "encoder.moe.") == 0)
      hasMoe_ = true;
    if (isIgnored(field))
      return true;
    std::vector<int64_t> pair;
    if (field == "name") {
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
    if (field == "image_size") {
      if (!ints(raw, v, 2, 1, kMaxImage, pair))
        return false;
      c_.imageHeight = pair[0];
      c_.imageWidth = pair[1];
      return true;
    }
    if (field == "num_channels")
      return integer(raw, v, 1, 64, c_.channels);
    if (field == "patch_size") {
      const json::Value *size = &v;
      if (v.kind == json::Kind::Object) {
        size = doc_.find(v, "size");
        if (!size || v.count != 1)
          return rangeError(raw, "expected {\"size\": [p, p]}");
      }
      if (!ints(raw, *size, 2, 1, kMaxImage, pair))
        return false;
      if (pair[0] != pair[1])
        return rangeError(
            raw, "non-square patches (" + std::to_string(pair[0]) + ", " +
                     std::to_string(pair[1]) + ") are not supported");
      c_.patchSize = pair[0];
      return true;
    }
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
    if (field == std::string(kDispatcher) + "name") {
      std::string dispatcher;
      if (!string(raw, v, dispatcher))
        return false;
      if (dispatcher != "einsum" && dispatcher != "indices")
        return rangeError(raw, "dispatcher " + quote(dispatcher) +
                                   " is not supported ('einsum' or "
                                   "'indices', which compute the same)");
      return true;
    }
    if (field == std::string(kDispatcher) + "capacity_factor")
      return number(raw, v, c_.capacityFactor);
    if (field == std::string(kDispatcher) + "batch_priority")
      return boolean(raw, v, c_.batchPriority);
    if (field == std::string(kDispatcher) + "bfloat16")
      return boolean(raw, v, c_.bf16Dispatch);
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
    return fail("unknown field " + quote(raw) + " (at " +
                doc_.position(v.offset) + ")");
  }

  const json::Document &doc_;
  const std::string &file_;
  ModelConfig &c_;
  std::string *error_;
  std::map<std::string, std::string> seen_;
  bool hasMoe_ = false;
};

} // namespace

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
  if (c.classifier != "token" && c.classifier != "gap")
    return bad("classifier " + quote(c.classifier) +
               " is not supported ('token' or 'gap')");
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

// ---- presets ---------------------------------------------------------------

namespace {

struct Arch {
  const char *id;
  int64_t layers, hidden, mlp, heads, patch;
};

// vmoe-reference.md 8.1 (configs/vmoe_paper/common.py get_vmoe_config).
constexpr Arch kArchs[] = {
    {"s32", 8, 512, 2048, 8, 32},    {"b32", 12, 768, 3072, 12, 32},
    {"b16", 12, 768, 3072, 12, 16},  {"l32", 24, 1024, 4096, 16, 32},
    {"l16", 24, 1024, 4096, 16, 16}, {"h14", 32, 1280, 5120, 16, 14},
};

bool parseNumber(std::string_view s, int64_t &out) {
  if (s.empty() || s.size() > 6 || (s.size() > 1 && s[0] == '0'))
    return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return false;
    out = out * 10 + (c - '0');
  }
  return true;
}

} // namespace

std::vector<std::string> presetExamples() {
  return {"vmoe-s32-e8-last2",   "vmoe-s32-e32-every2", "vmoe-b32-e32-every2",
          "vmoe-b16-e8-every2",  "vmoe-b16-e32-every2", "vmoe-l32-e32-last2",
          "vmoe-l16-e32-every2", "vmoe-l16-e32-last2",  "vmoe-h14-e32-every2",
          "vmoe-h14-e32-last5"};
}

bool presetConfig(std::string_view name, ModelConfig &out, std::string *error) {
  auto unknown = [&](const std::string &why) {
    std::string known;
    for (const Arch &a : kArchs)
      known += std::string(known.empty() ? "" : ", ") + "vmoe-" + a.id;
    *error = "unknown preset " + quote(name) + ": " + why +
             "; presets are vmoe-<arch>[-e<experts>][-every<n>|-last<n>] "
             "with arch " +
             known + " (e.g. vmoe-b16-e8-every2, vmoe-h14-e32-last5)";
    return false;
  };
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    size_t dash = name.find('-', start);
    parts.push_back(name.substr(start, dash - start));
    if (dash == std::string_view::npos)
      break;
    start = dash + 1;
  }
  if (parts.size() < 2 || parts[0] != "vmoe")
    return unknown("it does not start with 'vmoe-<arch>'");
  const Arch *arch = nullptr;
  for (const Arch &a : kArchs)
    if (parts[1] == a.id)
      arch = &a;
  if (!arch)
    return unknown("no architecture " + quote(parts[1]));
  int64_t experts = 32;
  std::string placement = "every";
  int64_t placementN = 2;
  size_t next = 2;
  if (next < parts.size() && parts[next].substr(0, 1) == "e" &&
      parts[next].substr(0, 5) != "every") {
    if (!parseNumber(parts[next].substr(1), experts) || experts < 2 ||
        experts > 1024)
      return unknown(quote(parts[next]) +
                     " is not e<experts> with 2 to 1024 experts");
    ++next;
  }
  if (next < parts.size()) {
    std::string_view p = parts[next];
    std::string_view digits;
    if (p.substr(0, 5) == "every") {
      placement = "every";
      digits = p.substr(5);
    } else if (p.substr(0, 4) == "last") {
      placement = "last";
      digits = p.substr(4);
    } else {
      return unknown(quote(p) + " is not every<n> or last<n>");
    }
    if (!parseNumber(digits, placementN) || placementN < 1)
      return unknown(quote(p) + " needs a positive n");
    ++next;
  }
  if (next != parts.size())
    return unknown("unexpected " + quote(parts[next]));

  ModelConfig c;
  c.name = "vmoe_" + std::string(arch->id) + "_e" + std::to_string(experts) +
           "_" + placement + std::to_string(placementN);
  c.imageHeight = c.imageWidth = 224;
  c.patchSize = arch->patch;
  c.hiddenSize = arch->hidden;
  c.numLayers = arch->layers;
  c.mlpDim = arch->mlp;
  c.numHeads = arch->heads;
  c.classifier = "token";
  c.representationSize = arch->hidden;
  c.numClasses = 1000;
  c.numExperts = experts;
  c.numSelectedExperts = 2;
  if (placement == "every") {
    // Every n: range(n - 1, L, n).
    if (placementN > arch->layers)
      return unknown("every" + std::to_string(placementN) + " exceeds the " +
                     std::to_string(arch->layers) + " blocks");
    for (int64_t l = placementN - 1; l < arch->layers; l += placementN)
      c.moeLayers.push_back(l);
  } else {
    // Last n: the last n of the odd blocks range(1, L, 2).
    int64_t odd = arch->layers / 2;
    if (placementN > odd)
      return unknown("last" + std::to_string(placementN) + " exceeds the " +
                     std::to_string(odd) + " odd blocks");
    for (int64_t l = 1 + 2 * (odd - placementN); l < arch->layers; l += 2)
      c.moeLayers.push_back(l);
  }
  c.batchSize = 8;
  c.groupSize = 8 * c.tokensPerImage();
  c.capacityFactor = 1.05;
  c.batchPriority = false;
  c.bf16Dispatch = true;
  std::string why;
  if (!checkModelConfig(c, &why))
    return unknown(why);
  out = std::move(c);
  return true;
}

} // namespace vmoe::import
