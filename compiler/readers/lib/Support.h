//===- Support.h - internal helpers of the weight readers -------*- C++ -*-===//

#ifndef VMOE_READERS_LIB_SUPPORT_H
#define VMOE_READERS_LIB_SUPPORT_H

#include "vmoe/readers/Tensor.h"

#include <cstdint>
#include <cstring>
#include <string>

namespace vmoe::readers::detail {

inline uint16_t load16(const uint8_t *p) {
  return uint16_t(p[0] | (uint16_t(p[1]) << 8));
}
inline uint32_t load32(const uint8_t *p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) |
         (uint32_t(p[3]) << 24);
}
inline uint64_t load64(const uint8_t *p) {
  return uint64_t(load32(p)) | (uint64_t(load32(p + 4)) << 32);
}
inline uint16_t loadBE16(const uint8_t *p) {
  return uint16_t((uint16_t(p[0]) << 8) | p[1]);
}
inline uint32_t loadBE32(const uint8_t *p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) |
         (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}
inline uint64_t loadBE64(const uint8_t *p) {
  return (uint64_t(loadBE32(p)) << 32) | loadBE32(p + 4);
}

inline bool mulOverflow(uint64_t a, uint64_t b, uint64_t *out) {
  return __builtin_mul_overflow(a, b, out);
}
inline bool addOverflow(uint64_t a, uint64_t b, uint64_t *out) {
  return __builtin_add_overflow(a, b, out);
}

/// "0x1f"
std::string hex(uint64_t value);

/// Quotes a name for messages ('abc'), escaping control and non-ASCII bytes
/// and cutting very long names.
std::string quote(std::string_view name);

/// A whole file, memory-mapped read-only (or read, where mapping fails).
class FileData {
public:
  FileData() = default;
  FileData(const FileData &) = delete;
  FileData &operator=(const FileData &) = delete;
  FileData(FileData &&other) noexcept;
  FileData &operator=(FileData &&other) noexcept;
  ~FileData();

  /// Opens `path`; on failure `error` is "cannot open 'path': reason".
  bool open(const std::string &path, std::string *error);
  ByteSpan bytes() const { return {data_, size_}; }

private:
  void reset();
  const uint8_t *data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  std::string copy_;
};

bool fileExists(const std::string &path);

/// Records one converted tensor in `out`, refusing a duplicate name.
bool insertTensor(TensorMap &out, std::string name, Tensor tensor,
                  const std::string &source, std::string *error);

} // namespace vmoe::readers::detail

#endif // VMOE_READERS_LIB_SUPPORT_H
