//===- ModelConfigPresets.cpp - the V-MoE paper's architectures by name ---===//
//
// "vmoe-<arch>[-e<E>][-every<n>|-last<n>]" (vmoe-reference.md 8.1:
// configs/vmoe_paper/common.py), see presetConfig in ModelConfig.h.
//
//===----------------------------------------------------------------------===//

#include "vmoe/readers/ModelConfig.h"

#include "ImageNetClasses.h"
#include "Support.h"

namespace vmoe::readers {

using detail::quote;

namespace {

struct Arch {
  const char *id;
  int64_t layers, hidden, mlp, heads, patch;
};

// vmoe-reference.md 8.1 (configs/vmoe_paper/common.py get_vmoe_config),
// and V-MoE-15B of the paper's table (48 blocks, D 1408, MLP 6400, 16
// heads, patch 14; with the defaults E = 32, Every-2: 14.7B parameters).
constexpr Arch kArchs[] = {
    {"s32", 8, 512, 2048, 8, 32},    {"b32", 12, 768, 3072, 12, 32},
    {"b16", 12, 768, 3072, 12, 16},  {"l32", 24, 1024, 4096, 16, 32},
    {"l16", 24, 1024, 4096, 16, 16}, {"h14", 32, 1280, 5120, 16, 14},
    {"15b", 48, 1408, 6400, 16, 14},
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

/// A preset name, taken apart.
struct PresetName {
  const Arch *arch = nullptr;
  int64_t experts = 32;
  /// "every" or "last".
  std::string placement = "every";
  int64_t placementN = 2;
};

/// Splits "vmoe-<arch>[-e<E>][-every<n>|-last<n>]"; on failure `why` says
/// which part is wrong.
bool parsePresetName(std::string_view name, PresetName &out, std::string &why) {
  auto bad = [&](std::string message) {
    why = std::move(message);
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
    return bad("it does not start with 'vmoe-<arch>'");
  for (const Arch &a : kArchs)
    if (parts[1] == a.id)
      out.arch = &a;
  if (!out.arch)
    return bad("no architecture " + quote(parts[1]));
  size_t next = 2;
  if (next < parts.size() && parts[next].substr(0, 1) == "e" &&
      parts[next].substr(0, 5) != "every") {
    if (!parseNumber(parts[next].substr(1), out.experts) || out.experts < 2 ||
        out.experts > 1024)
      return bad(quote(parts[next]) +
                 " is not e<experts> with 2 to 1024 experts");
    ++next;
  }
  if (next < parts.size()) {
    std::string_view p = parts[next];
    std::string_view digits;
    if (p.substr(0, 5) == "every") {
      out.placement = "every";
      digits = p.substr(5);
    } else if (p.substr(0, 4) == "last") {
      out.placement = "last";
      digits = p.substr(4);
    } else {
      return bad(quote(p) + " is not every<n> or last<n>");
    }
    if (!parseNumber(digits, out.placementN) || out.placementN < 1)
      return bad(quote(p) + " needs a positive n");
    ++next;
  }
  if (next != parts.size())
    return bad("unexpected " + quote(parts[next]));
  return true;
}

/// The MoE blocks of a placement: every n-th block, range(n - 1, L, n), or
/// the last n of the odd blocks range(1, L, 2).
bool placeMoeLayers(const PresetName &p, std::vector<int64_t> &layers,
                    std::string &why) {
  const int64_t blocks = p.arch->layers;
  if (p.placement == "every") {
    if (p.placementN > blocks) {
      why = "every" + std::to_string(p.placementN) + " exceeds the " +
            std::to_string(blocks) + " blocks";
      return false;
    }
    for (int64_t l = p.placementN - 1; l < blocks; l += p.placementN)
      layers.push_back(l);
    return true;
  }
  int64_t odd = blocks / 2;
  if (p.placementN > odd) {
    why = "last" + std::to_string(p.placementN) + " exceeds the " +
          std::to_string(odd) + " odd blocks";
    return false;
  }
  for (int64_t l = 1 + 2 * (odd - p.placementN); l < blocks; l += 2)
    layers.push_back(l);
  return true;
}

} // namespace

std::vector<std::string> presetExamples() {
  return {"vmoe-s32-e8-last2",
          "vmoe-s32-e32-every2",
          "vmoe-b32-e32-every2",
          "vmoe-b16-e8-every2",
          "vmoe-b16-e32-every2",
          "vmoe-l32-e32-last2",
          "vmoe-l16-e32-every2",
          "vmoe-l16-e32-last2",
          "vmoe-h14-e32-every2",
          "vmoe-h14-e32-last5",
          "vmoe-15b"};
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
  PresetName p;
  std::string why;
  if (!parsePresetName(name, p, why))
    return unknown(why);
  const Arch *arch = p.arch;
  ModelConfig c;
  c.name = "vmoe_" + std::string(arch->id) + "_e" + std::to_string(p.experts) +
           "_" + p.placement + std::to_string(p.placementN);
  c.imageHeight = c.imageWidth = 224;
  c.patchSize = arch->patch;
  c.hiddenSize = arch->hidden;
  c.numLayers = arch->layers;
  c.mlpDim = arch->mlp;
  c.numHeads = arch->heads;
  c.classifier = "token";
  c.representationSize = arch->hidden;
  c.numClasses = 1000;
  c.classNames = detail::imagenetClassNames();
  c.numExperts = p.experts;
  c.numSelectedExperts = 2;
  if (!placeMoeLayers(p, c.moeLayers, why))
    return unknown(why);
  c.batchSize = 8;
  c.groupSize = 8 * c.tokensPerImage();
  c.capacityFactor = 1.05;
  c.batchPriority = false;
  c.bf16Dispatch = true;
  if (!checkModelConfig(c, &why))
    return unknown(why);
  out = std::move(c);
  return true;
}

} // namespace vmoe::readers
