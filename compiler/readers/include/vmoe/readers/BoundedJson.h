//===- BoundedJson.h - bounded JSON through nlohmann-json -------*- C++ -*-===//
//
// Parses RFC 8259 JSON with nlohmann-json (Debian's nlohmann-json3-dev,
// header-only) through its SAX interface, so that the tree is built under
// the readers' bounds: nesting depth and value count (ReadLimits) are
// checked as each value arrives, and a duplicate object key is an error
// (nlohmann's own tree keeps the last one silently). The grammar is
// nlohmann's strict one: no comments, trailing commas, NaN or leading
// zeros; UTF-8 and \u escapes checked. Surrounding whitespace is allowed
// (the safetensors header is padded with spaces).
//
// Exceptions: nlohmann-json builds without them (the readers do): the SAX
// parser reports errors through the handler, and the code here only calls
// members that cannot throw on the types it has checked.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_READERS_BOUNDEDJSON_H
#define VMOE_READERS_BOUNDEDJSON_H

#include "vmoe/readers/Tensor.h"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace vmoe::readers {

/// Parses `text` into `out`; on failure `error` says what is wrong, with the
/// line and column where nlohmann-json reports one ("JSON line 1, column 6:
/// syntax error while parsing value - unexpected end of input; ...").
bool parseBoundedJson(std::string_view text, nlohmann::json &out,
                      std::string *error, const ReadLimits &limits = {});
/// The same with the keys of every object in file order (the config
/// reader's messages follow the file).
bool parseBoundedJson(std::string_view text, nlohmann::ordered_json &out,
                      std::string *error, const ReadLimits &limits = {});

/// `v` is an integer in [0, INT64_MAX]: into `out`.
bool jsonToSize(const nlohmann::json &v, uint64_t &out);

} // namespace vmoe::readers

#endif // VMOE_READERS_BOUNDEDJSON_H
