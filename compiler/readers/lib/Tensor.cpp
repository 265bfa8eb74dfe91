//===- Tensor.cpp - common types and helpers of the weight readers --------===//

#include "vmoe/readers/Tensor.h"

#include "Support.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vmoe::readers {

const char *dtypeName(DType type) {
  switch (type) {
  case DType::F32:
    return "float32";
  case DType::BF16:
    return "bfloat16";
  case DType::F16:
    return "float16";
  case DType::F64:
    return "float64";
  }
  return "?";
}

size_t dtypeSize(DType type) {
  switch (type) {
  case DType::F32:
    return 4;
  case DType::BF16:
  case DType::F16:
    return 2;
  case DType::F64:
    return 8;
  }
  return 0;
}

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

bool checkExpected(const ReadOptions &options, const std::string &name,
                   const std::vector<int64_t> &shape, std::string &why) {
  if (!options.expected)
    return true;
  auto it = options.expected->find(name);
  if (it == options.expected->end()) {
    why = "unexpected weight " + name + " of shape " + shapeString(shape) +
          " (not used by this config)";
    return false;
  }
  if (it->second != shape) {
    why = "weight " + name + " has shape " + shapeString(shape) +
          ", the config needs " + shapeString(it->second);
    return false;
  }
  return true;
}

std::string_view stripParamsPrefix(std::string_view name) {
  constexpr std::string_view prefix = "params/";
  if (name.substr(0, prefix.size()) == prefix)
    name.remove_prefix(prefix.size());
  return name;
}

bool elementCount(const std::vector<int64_t> &shape, uint64_t &count) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || detail::mulOverflow(n, uint64_t(d), &n) ||
        n > (uint64_t(1) << 62))
      return false;
  }
  count = n;
  return true;
}

float bfloat16ToFloat(uint16_t bits) {
  uint32_t u = uint32_t(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float halfToFloat(uint16_t bits) {
  uint32_t sign = uint32_t(bits & 0x8000u) << 16;
  uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  uint32_t u;
  if (exponent == 0) {
    if (mantissa == 0) {
      u = sign;
    } else {
      // Subnormal: mantissa * 2^-24, exact in float32.
      float f = std::ldexp(float(mantissa), -24);
      return sign ? -f : f;
    }
  } else if (exponent == 31) {
    u = sign | 0x7f800000u | (mantissa << 13);
  } else {
    u = sign | ((exponent + 112) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void convertToFloat(DType type, const uint8_t *src, size_t count, float *dst) {
  switch (type) {
  case DType::F32:
    for (size_t i = 0; i < count; ++i) {
      uint32_t u = detail::load32(src + 4 * i);
      std::memcpy(dst + i, &u, 4);
    }
    return;
  case DType::BF16:
    for (size_t i = 0; i < count; ++i)
      dst[i] = bfloat16ToFloat(detail::load16(src + 2 * i));
    return;
  case DType::F16:
    for (size_t i = 0; i < count; ++i)
      dst[i] = halfToFloat(detail::load16(src + 2 * i));
    return;
  case DType::F64:
    for (size_t i = 0; i < count; ++i) {
      uint64_t u = detail::load64(src + 8 * i);
      double d;
      std::memcpy(&d, &u, 8);
      dst[i] = static_cast<float>(d);
    }
    return;
  }
}

namespace detail {

std::string hex(uint64_t value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "0x%llx",
                static_cast<unsigned long long>(value));
  return buffer;
}

std::string quote(std::string_view name) {
  std::string s = "'";
  size_t n = 0;
  for (unsigned char c : name) {
    if (++n > 200) {
      s += "...";
      break;
    }
    if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\') {
      char buffer[8];
      std::snprintf(buffer, sizeof(buffer), "\\x%02x", c);
      s += buffer;
    } else {
      s += char(c);
    }
  }
  return s + "'";
}

FileData::FileData(FileData &&other) noexcept { *this = std::move(other); }

FileData &FileData::operator=(FileData &&other) noexcept {
  if (this != &other) {
    reset();
    mapped_ = other.mapped_;
    size_ = other.size_;
    copy_ = std::move(other.copy_);
    data_ =
        mapped_ ? other.data_ : reinterpret_cast<const uint8_t *>(copy_.data());
    other.data_ = nullptr;
    other.size_ = 0;
    other.mapped_ = false;
  }
  return *this;
}

FileData::~FileData() { reset(); }

void FileData::reset() {
  if (mapped_ && data_)
    munmap(const_cast<uint8_t *>(data_), size_);
  data_ = nullptr;
  size_ = 0;
  mapped_ = false;
  copy_.clear();
}

bool FileData::open(const std::string &path, std::string *error) {
  reset();
  auto fail = [&](const std::string &why) {
    *error = "cannot open " + quote(path) + ": " + why;
    return false;
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return fail(std::strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return fail("it is a directory");
  }
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    void *p = mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      ::close(fd);
      data_ = static_cast<const uint8_t *>(p);
      size_ = size_t(st.st_size);
      mapped_ = true;
      return true;
    }
  }
  // Not mappable (empty, a pipe, ...): read it.
  char buffer[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      int e = errno;
      ::close(fd);
      copy_.clear();
      return fail(std::strerror(e));
    }
    if (n == 0)
      break;
    copy_.append(buffer, size_t(n));
  }
  ::close(fd);
  data_ = reinterpret_cast<const uint8_t *>(copy_.data());
  size_ = copy_.size();
  return true;
}

bool fileExists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
}

bool insertTensor(TensorMap &out, std::string name, Tensor tensor,
                  const std::string &source, std::string *error) {
  if (name.empty()) {
    *error = source + ": a tensor has an empty name";
    return false;
  }
  auto [it, inserted] = out.emplace(std::move(name), std::move(tensor));
  if (!inserted) {
    *error = source + ": tensor " + quote(it->first) +
             " is given twice (names are compared without a leading "
             "'params/')";
    return false;
  }
  return true;
}

} // namespace detail
} // namespace vmoe::readers
