//===- BoundedJson.cpp - bounded JSON through nlohmann-json ---------------===//

#include "vmoe/readers/BoundedJson.h"

#include "Support.h"

#include <cstdint>
#include <limits>
#include <vector>

namespace vmoe::readers {

namespace {

using nlohmann::json;

/// Builds the tree as nlohmann's own DOM builder does, but counts values and
/// depth and refuses duplicate keys. A pointer on the stack stays valid: a
/// container gets its next sibling only after it is closed. `Json` is
/// nlohmann::json or nlohmann::ordered_json (keys in file order).
template <typename Json> class Builder : public nlohmann::json_sax<Json> {
  using Base = nlohmann::json_sax<Json>;
  using json = Json;

public:
  using typename Base::binary_t;
  using typename Base::number_float_t;
  using typename Base::number_integer_t;
  using typename Base::number_unsigned_t;
  using typename Base::string_t;

  Builder(json &root, const ReadLimits &limits)
      : root_(root), limits_(limits) {}

  bool null() override { return add(json(nullptr)); }
  bool boolean(bool v) override { return add(json(v)); }
  bool number_integer(number_integer_t v) override { return add(json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return add(json(v)); }
  bool number_float(number_float_t v, const string_t &) override {
    return add(json(v));
  }
  bool string(string_t &v) override { return add(json(std::move(v))); }
  bool binary(binary_t &) override {
    // Only the binary formats (CBOR, ...) produce these.
    error = "JSON: unexpected binary value";
    return false;
  }
  bool start_object(std::size_t) override { return open(json::object()); }
  bool key(string_t &k) override {
    if (stack_.back()->contains(k)) {
      error = "JSON: duplicate key " + detail::quote(k);
      return false;
    }
    key_ = std::move(k);
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(json::array()); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t position, const std::string &,
                   const nlohmann::detail::exception &ex) override {
    // "[json.exception.parse_error.101] parse error at line 1, column 6:
    // syntax error ..." -> "JSON line 1, column 6: syntax error ...".
    std::string what = ex.what();
    size_t bracket = what.find("] ");
    if (what.rfind("[json.exception.", 0) == 0 && bracket != std::string::npos)
      what.erase(0, bracket + 2);
    constexpr std::string_view at = "parse error at ";
    if (what.compare(0, at.size(), at) == 0)
      error = "JSON " + what.substr(at.size());
    else
      error = "JSON byte " + std::to_string(position) + ": " + what;
    return false;
  }

  std::string error;

private:
  bool add(json &&v) { return insert(std::move(v)) != nullptr; }
  json *insert(json &&v) {
    if (++values_ > limits_.maxValues) {
      error = "more than " + std::to_string(limits_.maxValues) + " JSON values";
      return nullptr;
    }
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json &parent = *stack_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    return &(parent[std::move(key_)] = std::move(v));
  }
  bool open(json &&v) {
    if (stack_.size() >= limits_.maxDepth) {
      error = "JSON nesting deeper than " + std::to_string(limits_.maxDepth) +
              " levels";
      return false;
    }
    json *p = insert(std::move(v));
    if (!p)
      return false;
    stack_.push_back(p);
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }

  json &root_;
  const ReadLimits &limits_;
  std::vector<json *> stack_;
  string_t key_;
  uint64_t values_ = 0;
};

template <typename Json>
bool parse(std::string_view text, Json &out, std::string *error,
           const ReadLimits &limits) {
  out = Json();
  Builder<Json> builder(out, limits);
  if (Json::sax_parse(text.begin(), text.end(), &builder))
    return true;
  *error = builder.error.empty() ? "JSON: invalid" : builder.error;
  out = Json();
  return false;
}

} // namespace

bool parseBoundedJson(std::string_view text, json &out, std::string *error,
                      const ReadLimits &limits) {
  return parse(text, out, error, limits);
}

bool parseBoundedJson(std::string_view text, nlohmann::ordered_json &out,
                      std::string *error, const ReadLimits &limits) {
  return parse(text, out, error, limits);
}

bool jsonToSize(const json &v, uint64_t &out) {
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
    return out <= uint64_t(std::numeric_limits<int64_t>::max());
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    out = uint64_t(i);
    return i >= 0;
  }
  return false;
}

} // namespace vmoe::readers
