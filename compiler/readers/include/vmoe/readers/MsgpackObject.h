//===- MsgpackObject.h - bounded msgpack through msgpack-cxx ----*- C++ -*-===//
//
// Decodes one complete msgpack object with msgpack-cxx (Debian's
// libmsgpack-cxx-dev, header-only) into its msgpack::object tree. str, bin
// and ext payloads stay in the input bytes (no copies), so the input must
// outlive the Document.
//
// Bounded before msgpack-cxx allocates: a first pass through msgpack-cxx's
// visitor parser (which allocates nothing per value) checks the nesting
// depth and adds up the items every array and map declares; a declared
// count that the remaining input cannot hold (every value takes a byte) or
// that exceeds ReadLimits::maxValues is refused there. Only then is the
// tree built, so its size is bounded by the limits, not by forged lengths.
// Bytes after the object are an error (as msgpack-python's unpackb).
//
// msgpack-cxx reports errors by throwing. The readers build without
// exceptions, except the files that include this header: Document::parse
// catches everything msgpack-cxx throws and turns it into a message, and
// nothing else in them throws.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_READERS_MSGPACKOBJECT_H
#define VMOE_READERS_MSGPACKOBJECT_H

#include "vmoe/readers/Tensor.h"

#include <msgpack.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace vmoe::readers::mp {

using Object = msgpack::object;
using Type = msgpack::type::object_type;

class Document {
public:
  /// Parses `bytes`; on failure `error` says what is wrong and where
  /// ("truncated: the 30 bytes end inside a msgpack value").
  bool parse(ByteSpan bytes, std::string *error, const ReadLimits &limits = {});

  const Object &root() const { return handle_.get(); }

private:
  msgpack::object_handle handle_;
};

/// "nil", "bool", "int", "float", "str", "bin", "array", "map", "ext".
const char *kindName(const Object &o);

/// The value of the first pair of `map` whose key is the str (or bin)
/// `key`; null when there is none or `map` is not a map.
const Object *find(const Object &map, std::string_view key);

/// The bytes of a str or bin (empty for other types).
std::string_view text(const Object &o);
/// The payload of a str, bin or ext (empty for other types).
ByteSpan bytes(const Object &o);

inline bool isInt(const Object &o) {
  return o.type == Type::POSITIVE_INTEGER || o.type == Type::NEGATIVE_INTEGER;
}
inline bool isText(const Object &o) {
  return o.type == Type::STR || o.type == Type::BIN;
}
inline bool isExt(const Object &o, int8_t code) {
  return o.type == Type::EXT && o.via.ext.type() == code;
}
/// An int that fits int64_t into `out`.
bool toInt64(const Object &o, int64_t &out);

inline uint32_t size(const Object &o) {
  return o.type == Type::ARRAY ? o.via.array.size
         : o.type == Type::MAP ? o.via.map.size
                               : 0;
}
/// i-th item of an array; key and value of the i-th pair of a map.
inline const Object &item(const Object &array, size_t i) {
  return array.via.array.ptr[i];
}
inline const Object &key(const Object &map, size_t i) {
  return map.via.map.ptr[i].key;
}
inline const Object &value(const Object &map, size_t i) {
  return map.via.map.ptr[i].val;
}

} // namespace vmoe::readers::mp

#endif // VMOE_READERS_MSGPACKOBJECT_H
