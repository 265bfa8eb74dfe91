//===- Msgpack.h - a bounded msgpack decoder --------------------*- C++ -*-===//
//
// Decodes one complete msgpack object (https://github.com/msgpack/msgpack/
// blob/master/spec.md) into a read-only tree of values whose str, bin and ext
// payloads point into the input bytes (no copies). Every form is accepted:
// fixint/int8-64/uint8-64, float32/64, nil, bool, fixstr/str8-32,
// bin8-32, fixarray/array16-32, fixmap/map16-32, fixext1-16/ext8-32.
// Bounded: nesting depth and value count come from ReadLimits, every length
// is checked against the bytes left before anything is reserved, bytes after
// the object are an error (as msgpack-python's unpackb), 0xc1 is rejected.
// Map keys are not deduplicated here; callers that need unique keys check.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_READERS_MSGPACK_H
#define VMOE_READERS_MSGPACK_H

#include "vmoe/readers/Tensor.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vmoe::readers::msgpack {

enum class Kind : uint8_t {
  Nil,
  Bool,
  Int,  // fits int64_t: `i`
  UInt, // above INT64_MAX: `u`
  Float,
  Str,
  Bin,
  Array,
  Map,
  Ext
};

/// "nil", "bool", "int", ... for messages.
const char *kindName(Kind kind);

struct Value {
  Kind kind = Kind::Nil;
  /// Ext type code (Kind::Ext).
  int8_t extType = 0;
  bool boolean = false;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  /// Str, Bin, Ext payload.
  const uint8_t *data = nullptr;
  uint64_t size = 0;
  /// Array: items; Map: key/value pairs.
  uint32_t count = 0;
  /// Position of the children in the document (internal).
  uint32_t firstChild = 0;
  /// Byte offset of this value in the input, for messages.
  uint64_t offset = 0;

  std::string_view str() const {
    return {reinterpret_cast<const char *>(data), size_t(size)};
  }
  ByteSpan bytes() const { return {data, size_t(size)}; }
  bool isInt() const { return kind == Kind::Int || kind == Kind::UInt; }
};

class Document {
public:
  /// Parses `bytes` (a Document may be reused: its buffers are kept); on
  /// failure `error` says what is wrong and where
  /// ("truncated: str of 20 bytes at offset 12 runs past the end of the 30
  /// bytes").
  bool parse(ByteSpan bytes, std::string *error, const ReadLimits &limits = {});

  const Value &root() const { return values_.front(); }
  /// i-th item of an array.
  const Value &item(const Value &array, size_t i) const;
  /// Key and value of the i-th pair of a map.
  const Value &key(const Value &map, size_t i) const;
  const Value &value(const Value &map, size_t i) const;
  /// The value of the first pair whose key is the str (or bin) `name`.
  const Value *find(const Value &map, std::string_view name) const;

private:
  std::vector<Value> values_;
  std::vector<uint32_t> children_;
  std::vector<uint32_t> stack_; // scratch, kept between parses
};

} // namespace vmoe::readers::msgpack

#endif // VMOE_READERS_MSGPACK_H
