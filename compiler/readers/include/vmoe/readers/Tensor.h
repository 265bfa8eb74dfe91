//===- Tensor.h - weights read from checkpoint files ------------*- C++ -*-===//
//
// Plain C++17 (no MLIR/LLVM, no exceptions): the common types of the weight
// readers. Every reader turns its file into a `TensorMap`: the Flax path of a
// parameter without a leading "params/" ("Encoder/encoderblock_1/Moe/Mlp/
// Dense_0/kernel") mapped to its shape and float32 values in C order.
//
// All readers follow the same rules: a malformed input never crashes, hangs
// or allocates much more than the input's own size; it gives `false` and an
// error message that names the file and what is wrong.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_READERS_TENSOR_H
#define VMOE_READERS_TENSOR_H

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace vmoe::readers {

/// The element types a checkpoint may store parameters in. All are
/// converted to float32 (bfloat16, float16: exactly; float64: rounded to
/// nearest, out-of-range values become +-inf as numpy's astype does).
enum class DType : uint8_t { F32, BF16, F16, F64 };

/// numpy's name: "float32", "bfloat16", "float16", "float64".
const char *dtypeName(DType type);
/// Bytes per element: 4, 2, 2, 8.
size_t dtypeSize(DType type);

/// One tensor, row-major (C order). A scalar has an empty shape and one
/// value.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  /// The element type in the file (the values are float32 regardless).
  DType sourceType = DType::F32;
};

/// Flax path ("a/b/c", without "params/") -> tensor.
using TensorMap = std::map<std::string, Tensor>;

/// Bounds for the structured parts of a file (msgpack, JSON, .npy headers).
/// The defaults are far above what real checkpoints need; fuzzers may lower
/// them.
struct ReadLimits {
  /// Nesting depth of msgpack / JSON values.
  uint32_t maxDepth = 64;
  /// Values in one msgpack or JSON document (72 to ~120 bytes of memory
  /// each; a real checkpoint's largest document has a few per chunk).
  uint64_t maxValues = uint64_t(1) << 20;
  /// Dimensions of a tensor.
  uint32_t maxRank = 32;
};

/// Flax path (without "params/") -> shape: the tensors a model needs.
using ExpectedShapes = std::map<std::string, std::vector<int64_t>>;

struct ReadOptions {
  ReadLimits limits;
  /// When false (default), a parameter stored as an integer or bool type is
  /// an error naming it; when true it is left out of the result.
  bool skipNonFloat = false;
  /// When set, every tensor's name and declared shape are checked against
  /// it as soon as its header is read, before any of its data is inflated,
  /// converted or allocated: an unexpected or misshapen tensor is refused
  /// at once, so a file cannot make the reader use more memory than the
  /// expected tensors take. (Missing tensors are the caller's to report.)
  const ExpectedShapes *expected = nullptr;
  /// When set, called with each float tensor's name and declared shape once
  /// they passed `expected`, before any of its data is read: false leaves
  /// the tensor out, unread. Reading one tensor of a large checkpoint, or
  /// listing them all, then takes the memory of that one tensor
  /// (TensorSource.h).
  std::function<bool(const std::string &name,
                     const std::vector<int64_t> &shape)>
      select;
};

/// With `options.expected`: whether the tensor `name` of declared `shape` is
/// one of them; if not, `why` says "unexpected weight NAME of shape S (not
/// used by this config)" or "weight NAME has shape S, the config needs T".
bool checkExpected(const ReadOptions &options, const std::string &name,
                   const std::vector<int64_t> &shape, std::string &why);

/// A read-only view of bytes.
struct ByteSpan {
  const uint8_t *data = nullptr;
  size_t size = 0;
};

/// "(2, 3)", "(5,)", "()", as Python prints a shape.
std::string shapeString(const std::vector<int64_t> &shape);

/// Strips one leading "params/" from a Flax path.
std::string_view stripParamsPrefix(std::string_view name);

/// Number of elements of `shape` into `count`; false when a dimension is
/// negative or the product exceeds 2^62.
bool elementCount(const std::vector<int64_t> &shape, uint64_t &count);

/// Exact conversions of one value.
float bfloat16ToFloat(uint16_t bits);
float halfToFloat(uint16_t bits);

/// Converts `count` little-endian values of `type` at `src` (any alignment)
/// to float32.
void convertToFloat(DType type, const uint8_t *src, size_t count, float *dst);

} // namespace vmoe::readers

#endif // VMOE_READERS_TENSOR_H
