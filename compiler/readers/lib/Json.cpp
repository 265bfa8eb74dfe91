//===- Json.cpp - a bounded JSON parser -----------------------------------===//

#include "vmoe/readers/Json.h"

#include "Support.h"

#include <algorithm>
#include <charconv>

namespace vmoe::readers::json {

const char *kindName(Kind kind) {
  switch (kind) {
  case Kind::Null:
    return "null";
  case Kind::Bool:
    return "a boolean";
  case Kind::Number:
    return "a number";
  case Kind::String:
    return "a string";
  case Kind::Array:
    return "an array";
  case Kind::Object:
    return "an object";
  }
  return "?";
}

namespace {

class Parser {
public:
  Parser(std::string_view text, const ReadLimits &limits,
         std::vector<Value> &values, std::vector<uint32_t> &children,
         const Document &doc, std::string *error)
      : s_(text), limits_(limits), values_(values), children_(children),
        doc_(doc), error_(error) {}

  bool parseDocument() {
    skipSpace();
    uint32_t id;
    if (!parseValue(0, id))
      return false;
    skipSpace();
    if (pos_ != s_.size())
      return fail("unexpected text after the JSON value", pos_);
    return true;
  }

private:
  bool fail(const std::string &message, uint64_t at) {
    *error_ = "JSON " + doc_.position(at) + ": " + message;
    return false;
  }

  void skipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' ||
                                s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }

  bool newValue(Value &&v, uint32_t &id) {
    if (values_.size() >= limits_.maxValues)
      return fail("more than " + std::to_string(limits_.maxValues) +
                      " JSON values (limit)",
                  v.offset);
    id = uint32_t(values_.size());
    values_.push_back(std::move(v));
    return true;
  }

  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word)
      return false;
    pos_ += word.size();
    return true;
  }

  bool parseValue(unsigned depth, uint32_t &id) {
    Value v;
    v.offset = pos_;
    if (pos_ >= s_.size())
      return fail("unexpected end of the text, expected a value", pos_);
    char c = s_[pos_];
    switch (c) {
    case '{':
    case '[':
      return parseContainer(depth, c == '{', id);
    case '"':
      v.kind = Kind::String;
      return parseString(v.text) && newValue(std::move(v), id);
    case 't':
    case 'f':
    case 'n':
      if (literal("true")) {
        v.kind = Kind::Bool;
        v.boolean = true;
      } else if (literal("false")) {
        v.kind = Kind::Bool;
      } else if (literal("null")) {
        v.kind = Kind::Null;
      } else {
        return fail("invalid literal", pos_);
      }
      return newValue(std::move(v), id);
    default:
      if (c == '-' || (c >= '0' && c <= '9'))
        return parseNumber(v) && newValue(std::move(v), id);
      return fail(std::string("unexpected character ") +
                      detail::quote(std::string_view(&s_[pos_], 1)),
                  pos_);
    }
  }

  bool parseContainer(unsigned depth, bool isObject, uint32_t &id) {
    uint64_t start = pos_;
    if (depth + 1 > limits_.maxDepth)
      return fail("nesting deeper than " + std::to_string(limits_.maxDepth) +
                      " levels",
                  start);
    ++pos_;
    Value v;
    v.offset = start;
    v.kind = isObject ? Kind::Object : Kind::Array;
    if (!newValue(std::move(v), id))
      return false;
    size_t base = stack_.size();
    uint32_t count = 0;
    skipSpace();
    char close = isObject ? '}' : ']';
    if (pos_ < s_.size() && s_[pos_] == close) {
      ++pos_;
    } else {
      for (;;) {
        skipSpace();
        if (isObject) {
          if (pos_ >= s_.size() || s_[pos_] != '"')
            return fail("expected a string key", pos_);
          uint32_t keyId;
          Value key;
          key.kind = Kind::String;
          key.offset = pos_;
          if (!parseString(key.text) || !newValue(std::move(key), keyId))
            return false;
          stack_.push_back(keyId);
          skipSpace();
          if (pos_ >= s_.size() || s_[pos_] != ':')
            return fail("expected ':' after the key", pos_);
          ++pos_;
          skipSpace();
        }
        uint32_t child;
        if (!parseValue(depth + 1, child))
          return false;
        stack_.push_back(child);
        ++count;
        skipSpace();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == close) {
          ++pos_;
          break;
        }
        return fail(std::string("expected ',' or '") + close + "'", pos_);
      }
    }
    Value &self = values_[id];
    self.count = count;
    self.firstChild = uint32_t(children_.size());
    children_.insert(children_.end(), stack_.begin() + base, stack_.end());
    stack_.resize(base);
    if (isObject && count > 1) {
      // Duplicate keys: sort the key ids by text.
      std::vector<uint32_t> keys;
      keys.reserve(count);
      for (uint32_t i = 0; i < count; ++i)
        keys.push_back(children_[self.firstChild + 2 * i]);
      std::sort(keys.begin(), keys.end(), [&](uint32_t a, uint32_t b) {
        if (values_[a].text != values_[b].text)
          return values_[a].text < values_[b].text;
        return values_[a].offset < values_[b].offset;
      });
      for (size_t i = 1; i < keys.size(); ++i)
        if (values_[keys[i]].text == values_[keys[i - 1]].text)
          return fail("duplicate key " + detail::quote(values_[keys[i]].text),
                      values_[keys[i]].offset);
    }
    return true;
  }

  bool hex4(uint32_t &out) {
    if (s_.size() - pos_ < 4)
      return fail("truncated \\u escape", pos_);
    out = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[pos_++];
      out <<= 4;
      if (c >= '0' && c <= '9')
        out |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f')
        out |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        out |= uint32_t(c - 'A' + 10);
      else
        return fail("bad hex digit in a \\u escape", pos_ - 1);
    }
    return true;
  }

  static void appendUtf8(std::string &out, uint32_t cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xc0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += char(0xe0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3f));
      out += char(0x80 | (cp & 0x3f));
    } else {
      out += char(0xf0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3f));
      out += char(0x80 | ((cp >> 6) & 0x3f));
      out += char(0x80 | (cp & 0x3f));
    }
  }

  /// Length of the valid UTF-8 sequence at pos_, 0 if invalid.
  size_t utf8Length() const {
    auto byte = [&](size_t k) -> unsigned {
      return pos_ + k < s_.size() ? uint8_t(s_[pos_ + k]) : 0x100u;
    };
    unsigned b0 = byte(0);
    auto cont = [&](size_t k) { return (byte(k) & 0xc0) == 0x80; };
    if (b0 < 0x80)
      return 1;
    if (b0 >= 0xc2 && b0 <= 0xdf)
      return cont(1) ? 2 : 0;
    if (b0 >= 0xe0 && b0 <= 0xef) {
      unsigned b1 = byte(1);
      if (!cont(1) || !cont(2) || (b0 == 0xe0 && b1 < 0xa0) ||
          (b0 == 0xed && b1 > 0x9f))
        return 0;
      return 3;
    }
    if (b0 >= 0xf0 && b0 <= 0xf4) {
      unsigned b1 = byte(1);
      if (!cont(1) || !cont(2) || !cont(3) || (b0 == 0xf0 && b1 < 0x90) ||
          (b0 == 0xf4 && b1 > 0x8f))
        return 0;
      return 4;
    }
    return 0;
  }

  bool parseString(std::string &out) {
    uint64_t start = pos_;
    ++pos_; // opening quote
    for (;;) {
      if (pos_ >= s_.size())
        return fail("unterminated string", start);
      unsigned char c = uint8_t(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20)
        return fail("control character in a string", pos_);
      if (c != '\\') {
        size_t n = utf8Length();
        if (n == 0)
          return fail("invalid UTF-8 in a string", pos_);
        out.append(s_.substr(pos_, n));
        pos_ += n;
        continue;
      }
      if (++pos_ >= s_.size())
        return fail("unterminated string", start);
      char e = s_[pos_++];
      switch (e) {
      case '"':
      case '\\':
      case '/':
        out += e;
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        uint64_t at = pos_ - 2;
        uint32_t cp;
        if (!hex4(cp))
          return false;
        if (cp >= 0xdc00 && cp <= 0xdfff)
          return fail("unpaired low surrogate in a \\u escape", at);
        if (cp >= 0xd800 && cp <= 0xdbff) {
          uint32_t low;
          if (s_.substr(pos_, 2) != "\\u")
            return fail("unpaired high surrogate in a \\u escape", at);
          pos_ += 2;
          if (!hex4(low))
            return false;
          if (low < 0xdc00 || low > 0xdfff)
            return fail("unpaired high surrogate in a \\u escape", at);
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        }
        appendUtf8(out, cp);
        break;
      }
      default:
        return fail("invalid escape in a string", pos_ - 2);
      }
    }
  }

  bool parseNumber(Value &v) {
    uint64_t start = pos_;
    auto digit = [&]() {
      return pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9';
    };
    if (s_[pos_] == '-')
      ++pos_;
    if (!digit())
      return fail("invalid number", start);
    if (s_[pos_] == '0') {
      ++pos_;
      if (digit())
        return fail("invalid number (leading zero)", start);
    } else {
      while (digit())
        ++pos_;
    }
    bool integral = true;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (!digit())
        return fail("invalid number (no digit after '.')", start);
      while (digit())
        ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-'))
        ++pos_;
      if (!digit())
        return fail("invalid number (no digit in the exponent)", start);
      while (digit())
        ++pos_;
    }
    const char *first = s_.data() + start, *last = s_.data() + pos_;
    v.kind = Kind::Number;
    if (integral) {
      auto r = std::from_chars(first, last, v.integer);
      v.isInteger = r.ec == std::errc() && r.ptr == last;
    }
    auto r = std::from_chars(first, last, v.number);
    if (r.ec == std::errc::result_out_of_range)
      return fail("number out of range", start);
    if (r.ec != std::errc() || r.ptr != last)
      return fail("invalid number", start);
    return true;
  }

  std::string_view s_;
  uint64_t pos_ = 0;
  const ReadLimits &limits_;
  std::vector<Value> &values_;
  std::vector<uint32_t> &children_;
  std::vector<uint32_t> stack_;
  const Document &doc_;
  std::string *error_;
};

} // namespace

bool Document::parse(std::string_view text, std::string *error,
                     const ReadLimits &limits) {
  values_.clear();
  children_.clear();
  text_ = text;
  Parser parser(text, limits, values_, children_, *this, error);
  bool ok = parser.parseDocument();
  if (!ok) {
    values_.clear();
    children_.clear();
    values_.emplace_back();
  }
  return ok;
}

const Value &Document::item(const Value &array, size_t i) const {
  return values_[children_[array.firstChild + i]];
}

const Value &Document::key(const Value &object, size_t i) const {
  return values_[children_[object.firstChild + 2 * i]];
}

const Value &Document::value(const Value &object, size_t i) const {
  return values_[children_[object.firstChild + 2 * i + 1]];
}

const Value *Document::find(const Value &object, std::string_view name) const {
  if (object.kind != Kind::Object)
    return nullptr;
  for (size_t i = 0; i < object.count; ++i)
    if (key(object, i).text == name)
      return &value(object, i);
  return nullptr;
}

std::string Document::position(uint64_t offset) const {
  uint64_t line = 1, column = 1;
  for (uint64_t i = 0; i < offset && i < text_.size(); ++i) {
    if (text_[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

} // namespace vmoe::readers::json
