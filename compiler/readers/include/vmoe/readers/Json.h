//===- Json.h - a bounded JSON parser ---------------------------*- C++ -*-===//
//
// RFC 8259 JSON into a read-only tree. Bounded nesting and value count
// (ReadLimits), strict grammar (no comments, trailing commas, NaN or leading
// zeros), UTF-8 checked, \u escapes (with surrogate pairs) decoded,
// duplicate object keys rejected. Surrounding whitespace is allowed (the
// safetensors header is padded with spaces).
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_READERS_JSON_H
#define VMOE_READERS_JSON_H

#include "vmoe/readers/Tensor.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vmoe::readers::json {

enum class Kind : uint8_t { Null, Bool, Number, String, Array, Object };

/// "null", "a boolean", "a number", "a string", "an array", "an object".
const char *kindName(Kind kind);

struct Value {
  Kind kind = Kind::Null;
  bool boolean = false;
  /// Number: true when written without fraction or exponent and within
  /// int64_t; then `integer` holds it exactly.
  bool isInteger = false;
  int64_t integer = 0;
  double number = 0;
  /// String: the decoded UTF-8 text.
  std::string text;
  /// Array: items; Object: members.
  uint32_t count = 0;
  uint32_t firstChild = 0;
  /// Byte offset in the input, for messages.
  uint64_t offset = 0;
};

class Document {
public:
  /// Parses `text`; on failure `error` says what is wrong and at which
  /// line:column.
  bool parse(std::string_view text, std::string *error,
             const ReadLimits &limits = {});

  const Value &root() const { return values_.front(); }
  const Value &item(const Value &array, size_t i) const;
  /// Key (a String value) and value of the i-th member of an object, in
  /// file order.
  const Value &key(const Value &object, size_t i) const;
  const Value &value(const Value &object, size_t i) const;
  const Value *find(const Value &object, std::string_view name) const;
  /// "line 3, column 7" for a byte offset of the parsed text.
  std::string position(uint64_t offset) const;

private:
  std::vector<Value> values_;
  std::vector<uint32_t> children_;
  std::string_view text_;
};

} // namespace vmoe::readers::json

#endif // VMOE_READERS_JSON_H
