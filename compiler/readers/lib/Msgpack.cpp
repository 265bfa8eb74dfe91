//===- Msgpack.cpp - a bounded msgpack decoder ----------------------------===//

#include "vmoe/readers/Msgpack.h"

#include "Support.h"

#include <cstring>

namespace vmoe::readers::msgpack {

using detail::loadBE16;
using detail::loadBE32;
using detail::loadBE64;

const char *kindName(Kind kind) {
  switch (kind) {
  case Kind::Nil:
    return "nil";
  case Kind::Bool:
    return "bool";
  case Kind::Int:
  case Kind::UInt:
    return "int";
  case Kind::Float:
    return "float";
  case Kind::Str:
    return "str";
  case Kind::Bin:
    return "bin";
  case Kind::Array:
    return "array";
  case Kind::Map:
    return "map";
  case Kind::Ext:
    return "ext";
  }
  return "?";
}

namespace {

class Parser {
public:
  Parser(ByteSpan bytes, const ReadLimits &limits, std::vector<Value> &values,
         std::vector<uint32_t> &children, std::vector<uint32_t> &stack,
         std::string *error)
      : p_(bytes.data), size_(bytes.size), limits_(limits), values_(values),
        children_(children), stack_(stack), error_(error) {}

  bool parseDocument() {
    uint32_t id;
    if (!parseValue(0, id))
      return false;
    if (pos_ != size_)
      return fail("trailing bytes: the msgpack object ends at offset " +
                  std::to_string(pos_) + " of " + std::to_string(size_));
    return true;
  }

private:
  bool fail(const std::string &message) {
    *error_ = message;
    return false;
  }

  uint64_t left() const { return size_ - pos_; }

  bool need(uint64_t n, const char *what, uint64_t at) {
    if (n > left())
      return fail(std::string("truncated: ") + what + " at offset " +
                  std::to_string(at) + " needs " + std::to_string(n) +
                  " more bytes, only " + std::to_string(left()) + " remain");
    return true;
  }

  bool readUInt(unsigned width, uint64_t &out, const char *what, uint64_t at) {
    if (!need(width, what, at))
      return false;
    const uint8_t *q = p_ + pos_;
    switch (width) {
    case 1:
      out = q[0];
      break;
    case 2:
      out = loadBE16(q);
      break;
    case 4:
      out = loadBE32(q);
      break;
    default:
      out = loadBE64(q);
      break;
    }
    pos_ += width;
    return true;
  }

  bool newValue(Value v, uint32_t &id) {
    if (values_.size() >= limits_.maxValues)
      return fail("more than " + std::to_string(limits_.maxValues) +
                  " msgpack values (limit)");
    id = uint32_t(values_.size());
    values_.push_back(v);
    return true;
  }

  bool payload(Value &v, uint64_t n, const char *what) {
    if (!need(n, what, v.offset))
      return false;
    v.data = p_ + pos_;
    v.size = n;
    pos_ += n;
    return true;
  }

  bool container(Value &v, uint64_t n, bool isMap, unsigned depth,
                 uint32_t &id) {
    // Each item takes at least one byte: refuse counts the input cannot
    // hold before reserving anything.
    uint64_t items = isMap ? 2 * n : n;
    if (items > left())
      return fail(std::string("truncated: ") + (isMap ? "map" : "array") +
                  " of " + std::to_string(n) + (isMap ? " pairs" : " items") +
                  " at offset " + std::to_string(v.offset) +
                  " cannot fit in the " + std::to_string(left()) +
                  " bytes that remain");
    if (depth + 1 > limits_.maxDepth)
      return fail("msgpack nesting deeper than " +
                  std::to_string(limits_.maxDepth) + " levels at offset " +
                  std::to_string(v.offset));
    v.kind = isMap ? Kind::Map : Kind::Array;
    v.count = uint32_t(n);
    if (!newValue(v, id))
      return false;
    size_t base = stack_.size();
    for (uint64_t k = 0; k < items; ++k) {
      uint32_t child;
      if (!parseValue(depth + 1, child))
        return false;
      stack_.push_back(child);
    }
    values_[id].firstChild = uint32_t(children_.size());
    children_.insert(children_.end(), stack_.begin() + base, stack_.end());
    stack_.resize(base);
    return true;
  }

  bool parseValue(unsigned depth, uint32_t &id) {
    Value v;
    v.offset = pos_;
    if (!need(1, "a value", pos_))
      return false;
    uint8_t b = p_[pos_++];
    uint64_t n = 0;
    if (b <= 0x7f) {
      v.kind = Kind::Int;
      v.i = b;
      return newValue(v, id);
    }
    if (b >= 0xe0) {
      v.kind = Kind::Int;
      v.i = int8_t(b);
      return newValue(v, id);
    }
    if (b >= 0x80 && b <= 0x8f)
      return container(v, b & 0x0f, true, depth, id);
    if (b >= 0x90 && b <= 0x9f)
      return container(v, b & 0x0f, false, depth, id);
    if (b >= 0xa0 && b <= 0xbf) {
      v.kind = Kind::Str;
      return payload(v, b & 0x1f, "str") && newValue(v, id);
    }
    switch (b) {
    case 0xc0:
      v.kind = Kind::Nil;
      return newValue(v, id);
    case 0xc2:
    case 0xc3:
      v.kind = Kind::Bool;
      v.boolean = b == 0xc3;
      return newValue(v, id);
    case 0xc4:
    case 0xc5:
    case 0xc6:
      v.kind = Kind::Bin;
      return readUInt(1u << (b - 0xc4), n, "bin length", v.offset) &&
             payload(v, n, "bin") && newValue(v, id);
    case 0xc7:
    case 0xc8:
    case 0xc9: {
      if (!readUInt(1u << (b - 0xc7), n, "ext length", v.offset))
        return false;
      uint64_t type;
      if (!readUInt(1, type, "ext type", v.offset))
        return false;
      v.kind = Kind::Ext;
      v.extType = int8_t(uint8_t(type));
      return payload(v, n, "ext") && newValue(v, id);
    }
    case 0xca: {
      uint64_t bits;
      if (!readUInt(4, bits, "float32", v.offset))
        return false;
      uint32_t u = uint32_t(bits);
      float f;
      std::memcpy(&f, &u, 4);
      v.kind = Kind::Float;
      v.f = f;
      return newValue(v, id);
    }
    case 0xcb: {
      uint64_t bits;
      if (!readUInt(8, bits, "float64", v.offset))
        return false;
      std::memcpy(&v.f, &bits, 8);
      v.kind = Kind::Float;
      return newValue(v, id);
    }
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
      if (!readUInt(1u << (b - 0xcc), n, "uint", v.offset))
        return false;
      if (n > uint64_t(INT64_MAX)) {
        v.kind = Kind::UInt;
        v.u = n;
      } else {
        v.kind = Kind::Int;
        v.i = int64_t(n);
      }
      return newValue(v, id);
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
      unsigned width = 1u << (b - 0xd0);
      if (!readUInt(width, n, "int", v.offset))
        return false;
      v.kind = Kind::Int;
      if (width == 1)
        v.i = int8_t(n);
      else if (width == 2)
        v.i = int16_t(n);
      else if (width == 4)
        v.i = int32_t(n);
      else
        v.i = int64_t(n);
      return newValue(v, id);
    }
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8: {
      uint64_t type;
      if (!readUInt(1, type, "ext type", v.offset))
        return false;
      v.kind = Kind::Ext;
      v.extType = int8_t(uint8_t(type));
      return payload(v, uint64_t(1) << (b - 0xd4), "fixext") && newValue(v, id);
    }
    case 0xd9:
    case 0xda:
    case 0xdb:
      v.kind = Kind::Str;
      return readUInt(1u << (b - 0xd9), n, "str length", v.offset) &&
             payload(v, n, "str") && newValue(v, id);
    case 0xdc:
    case 0xdd:
      return readUInt(b == 0xdc ? 2 : 4, n, "array length", v.offset) &&
             container(v, n, false, depth, id);
    case 0xde:
    case 0xdf:
      return readUInt(b == 0xde ? 2 : 4, n, "map length", v.offset) &&
             container(v, n, true, depth, id);
    default: // 0xc1
      return fail("invalid msgpack byte " + detail::hex(b) + " at offset " +
                  std::to_string(v.offset));
    }
  }

  const uint8_t *p_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const ReadLimits &limits_;
  std::vector<Value> &values_;
  std::vector<uint32_t> &children_;
  std::vector<uint32_t> &stack_;
  std::string *error_;
};

} // namespace

bool Document::parse(ByteSpan bytes, std::string *error,
                     const ReadLimits &limits) {
  values_.clear();
  children_.clear();
  stack_.clear();
  Parser parser(bytes, limits, values_, children_, stack_, error);
  if (!parser.parseDocument()) {
    values_.clear();
    children_.clear();
    values_.emplace_back();
    return false;
  }
  // The root is the first value created.
  return true;
}

const Value &Document::item(const Value &array, size_t i) const {
  return values_[children_[array.firstChild + i]];
}

const Value &Document::key(const Value &map, size_t i) const {
  return values_[children_[map.firstChild + 2 * i]];
}

const Value &Document::value(const Value &map, size_t i) const {
  return values_[children_[map.firstChild + 2 * i + 1]];
}

const Value *Document::find(const Value &map, std::string_view name) const {
  if (map.kind != Kind::Map)
    return nullptr;
  for (size_t i = 0; i < map.count; ++i) {
    const Value &k = key(map, i);
    if ((k.kind == Kind::Str || k.kind == Kind::Bin) && k.str() == name)
      return &value(map, i);
  }
  return nullptr;
}

} // namespace vmoe::readers::msgpack
