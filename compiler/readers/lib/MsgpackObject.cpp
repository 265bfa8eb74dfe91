//===- MsgpackObject.cpp - bounded msgpack through msgpack-cxx ------------===//
//
// Built with exceptions (see MsgpackObject.h): msgpack-cxx throws.
//
//===----------------------------------------------------------------------===//

#include "vmoe/readers/MsgpackObject.h"

#include "Support.h"

#include <exception>
#include <limits>

namespace vmoe::readers::mp {

namespace {

/// The first pass: msgpack-cxx's parser calls it for every value and
/// allocates nothing on its behalf. It stops the parse (returns false) at
/// the first declared count or depth beyond the limits, before the second
/// pass would allocate for it.
class LimitVisitor : public msgpack::null_visitor {
public:
  LimitVisitor(size_t inputSize, const ReadLimits &limits)
      : inputSize_(inputSize), limits_(limits) {}

  bool start_array(uint32_t n) { return open(false, n); }
  bool start_map(uint32_t n) { return open(true, n); }
  bool end_array() { return close(); }
  bool end_map() { return close(); }
  // msgpack-cxx passes the offset of the invalid byte second.
  void parse_error(size_t, size_t at) {
    invalid_ = true;
    badByteAt_ = at;
  }

  std::string error;
  bool invalid_ = false;
  size_t badByteAt_ = 0;

private:
  bool open(bool map, uint32_t n) {
    if (++depth_ > limits_.maxDepth) {
      error = "msgpack nesting deeper than " +
              std::to_string(limits_.maxDepth) + " levels";
      return false;
    }
    // Every declared value takes at least one byte of the input.
    uint64_t values = map ? uint64_t(n) * 2 : n;
    values_ += values;
    if (values_ <= inputSize_ && values_ <= limits_.maxValues)
      return true;
    std::string count = map ? "a map of " + std::to_string(n) + " pairs (" +
                                  std::to_string(values) + " values)"
                            : "an array of " + std::to_string(n) + " items";
    if (values_ > inputSize_)
      error = "truncated: " + count + " cannot fit in the " +
              std::to_string(inputSize_) + " bytes of the msgpack data";
    else
      error = count + " makes more than " + std::to_string(limits_.maxValues) +
              " msgpack values";
    return false;
  }
  bool close() {
    --depth_;
    return true;
  }

  size_t inputSize_;
  const ReadLimits &limits_;
  uint64_t depth_ = 0;
  uint64_t values_ = 1; // the root
};

bool referenceAll(Type, size_t, void *) { return true; }

} // namespace

bool Document::parse(ByteSpan bytes, std::string *error,
                     const ReadLimits &limits) {
  handle_ = msgpack::object_handle();
  const char *data = reinterpret_cast<const char *>(bytes.data);
  std::string size = std::to_string(bytes.size);
  try {
    LimitVisitor visitor(bytes.size, limits);
    size_t end = 0;
    if (bytes.size == 0 || !msgpack::parse(data, bytes.size, end, visitor)) {
      if (!visitor.error.empty())
        *error = visitor.error;
      else if (visitor.invalid_ && visitor.badByteAt_ < bytes.size)
        *error = "invalid msgpack byte " +
                 detail::hex(bytes.data[visitor.badByteAt_]) + " at offset " +
                 std::to_string(visitor.badByteAt_);
      else
        *error = "truncated: the " + size + " bytes end inside a msgpack value";
      return false;
    }
    if (end != bytes.size) {
      *error = "trailing bytes: the msgpack object ends at offset " +
               std::to_string(end) + " of " + size;
      return false;
    }
    // Within the limits: build the tree. str, bin and ext point into
    // `bytes` (referenceAll); the zone holds only arrays and maps.
    size_t offset = 0;
    handle_ = msgpack::unpack(data, bytes.size, offset, referenceAll, nullptr,
                              msgpack::unpack_limit());
    return true;
  } catch (const std::exception &e) {
    *error = std::string("msgpack: ") + e.what();
  } catch (...) {
    *error = "msgpack: unknown error";
  }
  handle_ = msgpack::object_handle();
  return false;
}

const char *kindName(const Object &o) {
  switch (o.type) {
  case Type::NIL:
    return "nil";
  case Type::BOOLEAN:
    return "bool";
  case Type::POSITIVE_INTEGER:
  case Type::NEGATIVE_INTEGER:
    return "int";
  case Type::FLOAT32:
  case Type::FLOAT64:
    return "float";
  case Type::STR:
    return "str";
  case Type::BIN:
    return "bin";
  case Type::ARRAY:
    return "array";
  case Type::MAP:
    return "map";
  case Type::EXT:
    return "ext";
  }
  return "?";
}

std::string_view text(const Object &o) {
  if (o.type == Type::STR)
    return {o.via.str.ptr, o.via.str.size};
  if (o.type == Type::BIN)
    return {o.via.bin.ptr, o.via.bin.size};
  return {};
}

ByteSpan bytes(const Object &o) {
  if (o.type == Type::EXT)
    return {reinterpret_cast<const uint8_t *>(o.via.ext.data()),
            o.via.ext.size};
  std::string_view t = text(o);
  return {reinterpret_cast<const uint8_t *>(t.data()), t.size()};
}

const Object *find(const Object &map, std::string_view name) {
  if (map.type != Type::MAP)
    return nullptr;
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const Object &k = map.via.map.ptr[i].key;
    if (isText(k) && text(k) == name)
      return &map.via.map.ptr[i].val;
  }
  return nullptr;
}

bool toInt64(const Object &o, int64_t &out) {
  if (o.type == Type::NEGATIVE_INTEGER) {
    out = o.via.i64;
    return true;
  }
  if (o.type == Type::POSITIVE_INTEGER &&
      o.via.u64 <= uint64_t(std::numeric_limits<int64_t>::max())) {
    out = int64_t(o.via.u64);
    return true;
  }
  return false;
}

} // namespace vmoe::readers::mp
