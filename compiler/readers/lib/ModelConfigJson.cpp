//===- ModelConfigJson.cpp - JSON documents of model configs --------------===//
//
// nlohmann-json parses the config; a first SAX pass enforces the reader's
// limits and refuses duplicate keys (which nlohmann-json would silently
// overwrite), so the document it builds is bounded. The library is built
// without exceptions here: nothing below may call what would throw (no
// at(), no get<>() of a mismatched type); the parse itself reports errors
// through the SAX handler.
//
//===----------------------------------------------------------------------===//

#include "ModelConfigJson.h"

#include "Support.h"
#include "vmoe/readers/BoundedJson.h"

#include <cctype>
#include <set>
#include <vector>

namespace vmoe::readers::detail {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

/// A positive decimal integer, nothing else.
std::optional<int64_t> parseSize(std::string_view s) {
  s = trim(s);
  if (s.empty() || s.size() > 9)
    return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v < 1)
    return std::nullopt;
  return v;
}

/// The first argument of an op: "384", "(384, 256)", "[384, 256]", or
/// "resize_size=384"; nothing for "None" or anything else.
std::optional<std::pair<int64_t, int64_t>> sizeArgument(std::string_view args) {
  // The first top-level argument.
  int depth = 0;
  size_t end = 0;
  for (; end < args.size(); ++end) {
    char c = args[end];
    if (c == '(' || c == '[')
      ++depth;
    else if (c == ')' || c == ']')
      --depth;
    else if (c == ',' && depth == 0)
      break;
  }
  std::string_view first = trim(args.substr(0, end));
  if (size_t eq = first.find('='); eq != std::string_view::npos)
    first = trim(first.substr(eq + 1));
  if (first.size() >= 2 && (first.front() == '(' || first.front() == '[')) {
    std::string_view inner = first.substr(1, first.size() - 2);
    size_t comma = inner.find(',');
    if (comma == std::string_view::npos)
      return std::nullopt;
    auto h = parseSize(inner.substr(0, comma));
    auto w = parseSize(inner.substr(comma + 1));
    if (!h || !w)
      return std::nullopt;
    return std::make_pair(*h, *w);
  }
  if (auto n = parseSize(first))
    return std::make_pair(*n, *n);
  return std::nullopt;
}

} // namespace

bool parseJson(std::string_view text, const ReadLimits &limits, Json &out,
               std::string *error) {
  return parseBoundedJson(text, out, error, limits);
}

const char *kindName(const Json &value) {
  if (value.is_null())
    return "null";
  if (value.is_boolean())
    return "a boolean";
  if (value.is_number())
    return "a number";
  if (value.is_string())
    return "a string";
  if (value.is_array())
    return "an array";
  return "an object";
}

std::optional<std::pair<int64_t, int64_t>>
processImageSize(std::string_view process) {
  static const std::set<std::string, std::less<>> sizing = {
      "resize", "central_crop", "random_crop", "inception_crop",
      "decode_jpeg_and_inception_crop"};
  // Ops after which the size is the input's (or random).
  static const std::set<std::string, std::less<>> unsizing = {"decode",
                                                              "resize_small"};
  std::optional<std::pair<int64_t, int64_t>> size;
  while (!process.empty()) {
    size_t bar = process.find('|');
    std::string_view op = trim(process.substr(0, bar));
    process = bar == std::string_view::npos ? std::string_view()
                                            : process.substr(bar + 1);
    size_t paren = op.find('(');
    std::string_view name = trim(op.substr(0, paren));
    std::string_view args;
    if (paren != std::string_view::npos && op.back() == ')')
      args = op.substr(paren + 1, op.size() - paren - 2);
    if (sizing.count(name))
      size = sizeArgument(args);
    else if (unsizing.count(name))
      size.reset();
  }
  return size;
}

} // namespace vmoe::readers::detail
