//===- RandomWeights.cpp - deterministic random weights, streamed ---------===//
//
// One mt19937_64 stream over the tensors in expectedWeights order, as
// randomWeights has always made them: matrices uniform in +-sqrt(3 / fan
// in), LayerNorm scales 1, the rest uniform in +-0.02. The source makes a
// tensor when it is read, in any order: it keeps the generator's state at
// the start of every tensor it has passed (2.5 KB each) and skips forward
// over the tensors it is not asked for, so that a model's weights are the
// same values however the serializer orders its reads.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Import/ModelBuilder.h"

#include <cmath>
#include <map>
#include <random>

namespace mlir::vmoe {

namespace {

/// How one tensor is made: ones, or `count` uniform draws in +-scale.
struct Recipe {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t count = 0;
  bool ones = false;
  double scale = 0.02;
};

bool endsWith(const std::string &name, const char *suffix) {
  std::string s(suffix);
  return name.size() >= s.size() &&
         name.compare(name.size() - s.size(), s.size(), s) == 0;
}

std::vector<Recipe> recipes(const VitMoeConfig &config) {
  std::vector<Recipe> out;
  for (auto &[name, shape] : expectedWeights(config)) {
    Recipe r;
    r.name = name;
    r.shape = shape;
    int64_t n = 1;
    for (int64_t dim : shape)
      n *= dim;
    r.count = uint64_t(n);
    r.ones = endsWith(name, "/scale");
    if (endsWith(name, "/kernel")) {
      int64_t fanIn = name.find("Moe/Mlp") != std::string::npos
                          ? shape[1]
                          : n / shape.back();
      r.scale = std::sqrt(3.0 / static_cast<double>(fanIn));
    }
    out.push_back(std::move(r));
  }
  return out;
}

class RandomSource : public ::vmoe::readers::TensorSource {
public:
  RandomSource(const VitMoeConfig &config, uint64_t seed)
      : list(recipes(config)), rng(seed) {
    for (size_t i = 0; i < list.size(); ++i) {
      index[list[i].name] = i;
      all[list[i].name] = list[i].shape;
    }
  }

  const ::vmoe::readers::ExpectedShapes &shapes() const override { return all; }

  bool read(const std::string &name, WeightTensor &out,
            std::string *error) override {
    auto it = index.find(name);
    if (it == index.end()) {
      *error = "the random weights have no tensor " + name;
      return false;
    }
    size_t i = it->second;
    if (i < cursor) {
      rng = starts.at(i); // passed before: its start was kept
      cursor = i;
    }
    while (cursor < i) { // skip the tensors in between, keeping their starts
      starts.emplace(cursor, rng);
      if (!list[cursor].ones)
        rng.discard(list[cursor].count);
      ++cursor;
    }
    starts.emplace(i, rng);
    const Recipe &r = list[i];
    out.shape = r.shape;
    out.sourceType = ::vmoe::readers::DType::F32;
    out.data.resize(r.count);
    if (r.ones) {
      std::fill(out.data.begin(), out.data.end(), 1.0f);
    } else {
      // One draw per value: generate_canonical<float> takes one 64-bit word.
      std::uniform_real_distribution<float> dist(-r.scale, r.scale);
      for (float &v : out.data)
        v = dist(rng);
    }
    cursor = i + 1;
    return true;
  }

private:
  std::vector<Recipe> list;
  std::map<std::string, size_t> index;
  ::vmoe::readers::ExpectedShapes all;
  std::mt19937_64 rng;
  /// The tensor the generator's state is at the start of.
  size_t cursor = 0;
  std::map<size_t, std::mt19937_64> starts;
};

/// Named parameters of any model, each from its own stream.
class ParameterSource : public ::vmoe::readers::TensorSource {
public:
  ParameterSource(const ::vmoe::readers::ExpectedShapes &shapes, uint64_t seed)
      : all(shapes), seed(seed) {}

  const ::vmoe::readers::ExpectedShapes &shapes() const override {
    return all;
  }

  bool read(const std::string &name, WeightTensor &out,
            std::string *error) override {
    auto it = all.find(name);
    if (it == all.end()) {
      *error = "no random parameter " + name;
      return false;
    }
    const std::vector<int64_t> &shape = it->second;
    uint64_t n = 1, h = 14695981039346656037ull; // FNV-1a of the name
    for (int64_t d : shape)
      n *= uint64_t(d);
    for (unsigned char c : name)
      h = (h ^ c) * 1099511628211ull;
    std::mt19937_64 rng(seed ^ h);
    double scale = 0.02;
    if (shape.size() >= 2 && shape[0] != 1)
      scale = std::sqrt(3.0 / static_cast<double>(shape[shape.size() - 2]));
    std::uniform_real_distribution<float> dist(-scale, scale);
    out.shape = shape;
    out.sourceType = ::vmoe::readers::DType::F32;
    out.data.resize(n);
    bool ones = endsWith(name, "/scale");
    for (float &v : out.data)
      v = ones ? 1.0f : dist(rng);
    return true;
  }

private:
  ::vmoe::readers::ExpectedShapes all;
  uint64_t seed;
};

} // namespace

std::unique_ptr<::vmoe::readers::TensorSource>
randomParameterSource(const ::vmoe::readers::ExpectedShapes &shapes,
                      uint64_t seed) {
  return std::make_unique<ParameterSource>(shapes, seed);
}

std::unique_ptr<::vmoe::readers::TensorSource>
randomWeightSource(const VitMoeConfig &config, uint64_t seed) {
  return std::make_unique<RandomSource>(config, seed);
}

WeightMap randomWeights(const VitMoeConfig &config, uint64_t seed) {
  RandomSource source(config, seed);
  WeightMap map;
  std::string error;
  for (auto &entry : expectedWeights(config))
    (void)source.read(entry.first, map[entry.first], &error);
  return map;
}

} // namespace mlir::vmoe
