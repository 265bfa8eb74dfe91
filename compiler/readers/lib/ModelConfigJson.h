//===- ModelConfigJson.h - JSON documents of model configs ------*- C++ -*-===//
//
// Internal to the config reader: bounded parsing of a config's JSON text
// with nlohmann-json (built without exceptions), and the image size that a
// vmoe input pipeline's `process` string ends with.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_READERS_LIB_MODELCONFIGJSON_H
#define VMOE_READERS_LIB_MODELCONFIGJSON_H

#include "vmoe/readers/Tensor.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace vmoe::readers::detail {

/// Objects keep their keys in file order, so messages follow the file.
using Json = nlohmann::ordered_json;

/// Parses `text` (RFC 8259) into `out`. Refuses nesting deeper than
/// limits.maxDepth, more than limits.maxValues values and a key given twice
/// in one object, with a message; syntax errors say where.
bool parseJson(std::string_view text, const ReadLimits &limits, Json &out,
               std::string *error);

/// "null", "a boolean", "a number", "a string", "an array", "an object".
const char *kindName(const Json &value);

/// The (height, width) of the images that a vmoe preprocessing string such
/// as "decode|resize(384)|value_range(-1,1)" produces, when it fixes them:
/// the last resize, central_crop, random_crop, inception_crop or
/// decode_jpeg_and_inception_crop with a size; nothing when no op fixes it
/// or a later op (decode, resize_small) makes it depend on the input.
std::optional<std::pair<int64_t, int64_t>>
processImageSize(std::string_view process);

} // namespace vmoe::readers::detail

#endif // VMOE_READERS_LIB_MODELCONFIGJSON_H
