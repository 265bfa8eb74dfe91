//===- TensorSource.cpp - weights read one tensor at a time ---------------===//

#include "vmoe/readers/TensorSource.h"

#include "vmoe/readers/Weights.h"

namespace vmoe::readers {

namespace {

/// A weights file: scanned once, then read one selected tensor per call.
class FileSource : public TensorSource {
public:
  FileSource(std::string path, const ReadOptions &options)
      : path(std::move(path)), options(options) {
    // Kept for every later read.
    if (options.expected) {
      expected = *options.expected;
      this->options.expected = &expected;
    }
  }

  bool scan(std::string *error) {
    ReadOptions listing = options;
    listing.select = [this](const std::string &name,
                            const std::vector<int64_t> &shape) {
      all[name] = shape;
      return false;
    };
    TensorMap none;
    return readWeights(path, none, error, listing);
  }

  const ExpectedShapes &shapes() const override { return all; }

  bool read(const std::string &name, Tensor &out, std::string *error) override {
    if (!all.count(name)) {
      *error = path + ": holds no tensor " + name;
      return false;
    }
    ReadOptions one = options;
    one.select = [&](const std::string &n, const std::vector<int64_t> &) {
      return n == name;
    };
    TensorMap map;
    if (!readWeights(path, map, error, one))
      return false;
    auto it = map.find(name);
    if (it == map.end()) {
      *error = path + ": tensor " + name + " could not be read again";
      return false;
    }
    out = std::move(it->second);
    return true;
  }

private:
  std::string path;
  ReadOptions options;
  ExpectedShapes expected, all;
};

class MapSource : public TensorSource {
public:
  explicit MapSource(const TensorMap &map) : map(map) {
    for (const auto &[name, tensor] : map)
      all[name] = tensor.shape;
  }
  const ExpectedShapes &shapes() const override { return all; }
  bool read(const std::string &name, Tensor &out, std::string *error) override {
    auto it = map.find(name);
    if (it == map.end()) {
      *error = "no weight " + name;
      return false;
    }
    out = it->second;
    return true;
  }

private:
  const TensorMap &map;
  ExpectedShapes all;
};

} // namespace

std::unique_ptr<TensorSource> openTensorFile(const std::string &path,
                                             std::string *error,
                                             const ReadOptions &options) {
  auto source = std::make_unique<FileSource>(path, options);
  if (!source->scan(error))
    return nullptr;
  return source;
}

std::unique_ptr<TensorSource> tensorMapSource(const TensorMap &map) {
  return std::make_unique<MapSource>(map);
}

std::string missingTensor(const TensorSource &source,
                          const ExpectedShapes &expected) {
  for (const auto &[name, shape] : expected)
    if (!source.shapes().count(name))
      return "missing weight " + name + " of shape " + shapeString(shape);
  return "";
}

} // namespace vmoe::readers
