//===- Safetensors.cpp - Hugging Face safetensors files -------------------===//

#include "vmoe/readers/Safetensors.h"

#include "vmoe/readers/BoundedJson.h"

#include "Support.h"

#include <algorithm>

namespace vmoe::readers {

using detail::quote;
using json = nlohmann::json;

namespace {

constexpr uint64_t kMaxHeader = 100'000'000; // as safetensors' MAX_HEADER_SIZE

struct Info {
  std::string name;
  DType type;
  bool skip = false;
  std::vector<int64_t> shape;
  uint64_t numel = 0, begin = 0, end = 0;
};

bool dtypeFromName(std::string_view name, DType &type, bool &integer) {
  integer = false;
  if (name == "F32")
    type = DType::F32;
  else if (name == "BF16")
    type = DType::BF16;
  else if (name == "F16")
    type = DType::F16;
  else if (name == "F64")
    type = DType::F64;
  else {
    integer = name == "BOOL" || name == "U8" || name == "I8" || name == "U16" ||
              name == "I16" || name == "U32" || name == "I32" ||
              name == "U64" || name == "I64";
    return false;
  }
  return true;
}

/// One tensor's entry of the header: its dtype, shape and offsets, checked
/// against the data buffer's size and (with ReadOptions::expected) against
/// the model before any of its bytes is used.
bool parseInfo(const std::string &key, const json &v, uint64_t dataSize,
               const ReadOptions &options, Info &info, std::string &why) {
  auto bad = [&](const std::string &what) {
    why = "tensor " + quote(key) + ": " + what;
    return false;
  };
  if (!v.is_object())
    return bad("its entry is not an object");
  auto dtype = v.find("dtype"), shape = v.find("shape"),
       offsets = v.find("data_offsets");
  if (dtype == v.end() || shape == v.end() || offsets == v.end())
    return bad("'dtype', 'shape' or 'data_offsets' is missing");
  info.name = key;
  bool integer = false;
  if (!dtype->is_string())
    return bad("'dtype' is not a string");
  const std::string &dtypeText = dtype->get_ref<const std::string &>();
  if (!dtypeFromName(dtypeText, info.type, integer)) {
    if (!(integer && options.skipNonFloat))
      return bad("dtype " + quote(dtypeText) +
                 " is not supported (F32, BF16, F16, F64)");
    info.skip = true;
  }
  if (!shape->is_array())
    return bad("'shape' is not an array");
  if (shape->size() > options.limits.maxRank)
    return bad("'shape' has more than " +
               std::to_string(options.limits.maxRank) + " dimensions");
  for (const json &dim : *shape) {
    uint64_t d;
    if (!jsonToSize(dim, d))
      return bad("'shape' holds something other than non-negative "
                 "integers");
    info.shape.push_back(int64_t(d));
  }
  // Name and shape against the model before any offset or byte is used.
  // (The message names the tensor by itself.)
  if (!info.skip && !checkExpected(options, std::string(stripParamsPrefix(key)),
                                   info.shape, why))
    return false;
  if (!info.skip && options.select &&
      !options.select(std::string(stripParamsPrefix(key)), info.shape))
    info.skip = true; // checked like the others, not read
  if (!offsets->is_array() || offsets->size() != 2)
    return bad("'data_offsets' is not [begin, end]");
  if (!jsonToSize((*offsets)[0], info.begin) ||
      !jsonToSize((*offsets)[1], info.end))
    return bad("'data_offsets' are not non-negative integers");
  if (info.begin > info.end)
    return bad("'data_offsets' [" + std::to_string(info.begin) + ", " +
               std::to_string(info.end) + "] end before they begin");
  if (info.end > dataSize)
    return bad("'data_offsets' [" + std::to_string(info.begin) + ", " +
               std::to_string(info.end) + "] run past the end of the " +
               std::to_string(dataSize) + "-byte data buffer");
  if (!info.skip) {
    uint64_t need;
    if (!elementCount(info.shape, info.numel) ||
        detail::mulOverflow(info.numel, dtypeSize(info.type), &need))
      return bad("shape " + shapeString(info.shape) + " has too many elements");
    if (info.end - info.begin != need)
      return bad("'data_offsets' [" + std::to_string(info.begin) + ", " +
                 std::to_string(info.end) + "] hold " +
                 std::to_string(info.end - info.begin) + " bytes, its shape " +
                 shapeString(info.shape) + " of " + dtypeText + " needs " +
                 std::to_string(need));
  }
  return true;
}

} // namespace

bool readSafetensors(ByteSpan bytes, const std::string &name, TensorMap &out,
                     std::string *error, const ReadOptions &options) {
  auto fail = [&](const std::string &what) {
    *error = name + ": " + what;
    return false;
  };
  if (bytes.size < 8)
    return fail("too short for a safetensors file (" +
                std::to_string(bytes.size) +
                " bytes, the header length alone takes 8)");
  uint64_t headerLength = detail::load64(bytes.data);
  if (headerLength > kMaxHeader)
    return fail("header length " + std::to_string(headerLength) +
                " exceeds the 100 MB limit (not a safetensors file?)");
  if (headerLength > bytes.size - 8)
    return fail("header length " + std::to_string(headerLength) +
                " runs past the end of the " + std::to_string(bytes.size) +
                " bytes (truncated file?)");
  std::string_view header(reinterpret_cast<const char *>(bytes.data + 8),
                          size_t(headerLength));
  if (header.empty() || header[0] != '{')
    return fail("the header does not start with '{' (not a safetensors "
                "file?)");
  json root;
  std::string why;
  if (!parseBoundedJson(header, root, &why, options.limits))
    return fail("bad header: " + why);
  if (!root.is_object())
    return fail("the header is not a JSON object");
  uint64_t dataSize = bytes.size - 8 - headerLength;
  const uint8_t *data = bytes.data + 8 + headerLength;
  std::vector<Info> infos;
  // In key order (nlohmann's objects are sorted maps).
  for (const auto &[key, v] : root.items()) {
    if (key == "__metadata__")
      continue;
    Info info;
    if (!parseInfo(key, v, dataSize, options, info, why))
      return fail(why);
    infos.push_back(std::move(info));
  }
  // The tensors tile the buffer: sorted by offset, each starts where the
  // previous ended, and the last ends at the end of the file.
  std::vector<const Info *> order;
  for (const Info &info : infos)
    order.push_back(&info);
  std::sort(order.begin(), order.end(), [](const Info *a, const Info *b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t at = 0;
  const Info *previous = nullptr;
  for (const Info *info : order) {
    if (info->begin < at)
      return fail("the data of tensor " + quote(info->name) + " [" +
                  std::to_string(info->begin) + ", " +
                  std::to_string(info->end) + "] overlaps that of " +
                  quote(previous->name) + " [" +
                  std::to_string(previous->begin) + ", " +
                  std::to_string(previous->end) + "]");
    if (info->begin > at)
      return fail("bytes [" + std::to_string(at) + ", " +
                  std::to_string(info->begin) +
                  ") of the data buffer belong to no tensor");
    at = info->end;
    previous = info;
  }
  if (at != dataSize)
    return fail("bytes [" + std::to_string(at) + ", " +
                std::to_string(dataSize) +
                ") at the end of the data buffer belong to no tensor");
  TensorMap result;
  for (const Info &info : infos) {
    if (info.skip)
      continue;
    Tensor t;
    t.shape = info.shape;
    t.sourceType = info.type;
    t.data.assign(size_t(info.numel), 0.0f);
    convertToFloat(info.type, data + info.begin, size_t(info.numel),
                   t.data.data());
    if (!detail::insertTensor(result, std::string(stripParamsPrefix(info.name)),
                              std::move(t), name, error))
      return false;
  }
  for (auto &entry : result)
    if (!detail::insertTensor(out, entry.first, std::move(entry.second), name,
                              error))
      return false;
  return true;
}

bool readSafetensors(const std::string &path, TensorMap &out,
                     std::string *error, const ReadOptions &options) {
  detail::FileData file;
  if (!file.open(path, error))
    return false;
  return readSafetensors(file.bytes(), path, out, error, options);
}

} // namespace vmoe::readers
