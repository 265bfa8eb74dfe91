//===- Npy.cpp - read and write NumPy .npy arrays -------------------------===//

#include "Npy.h"
#include "ToolSupport.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

namespace vmoe::tools {

bool readFile(const std::string &path, std::vector<uint8_t> &out,
              std::string *error) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) {
    *error = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  out.clear();
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
    out.insert(out.end(), buf, buf + n);
  bool ok = !std::ferror(f);
  std::fclose(f);
  if (!ok)
    *error = "cannot read " + path;
  return ok;
}

/// Finds `'key':` in the header dict and returns what follows it.
static bool findValue(const std::string &header, const std::string &key,
                      std::string::size_type &pos) {
  std::string quoted = "'" + key + "'";
  pos = header.find(quoted);
  if (pos == std::string::npos)
    return false;
  pos = header.find(':', pos + quoted.size());
  if (pos == std::string::npos)
    return false;
  ++pos;
  while (pos < header.size() && header[pos] == ' ')
    ++pos;
  return pos < header.size();
}

bool parseNpy(const std::vector<uint8_t> &bytes, NpyArray &out,
              std::string *error) {
  static const char magic[] = "\x93NUMPY";
  if (bytes.size() < 10 || std::memcmp(bytes.data(), magic, 6) != 0) {
    *error = "not a .npy file (bad magic)";
    return false;
  }
  uint8_t major = bytes[6];
  size_t headerLen, headerStart;
  if (major == 1) {
    headerLen = bytes[8] | (bytes[9] << 8);
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) {
      *error = "truncated .npy header";
      return false;
    }
    headerLen = bytes[8] | (bytes[9] << 8) | (bytes[10] << 16) |
                (static_cast<size_t>(bytes[11]) << 24);
    headerStart = 12;
  } else {
    *error = ".npy version " + std::to_string(major) + " is not supported";
    return false;
  }
  if (headerLen > bytes.size() - headerStart) {
    *error = "truncated .npy header";
    return false;
  }
  std::string header(reinterpret_cast<const char *>(bytes.data()) + headerStart,
                     headerLen);
  std::string::size_type pos;
  if (!findValue(header, "descr", pos) || header[pos] != '\'') {
    *error = ".npy header has no descr";
    return false;
  }
  std::string::size_type end = header.find('\'', pos + 1);
  if (end == std::string::npos) {
    *error = ".npy header has a bad descr";
    return false;
  }
  out.dtype = header.substr(pos + 1, end - pos - 1);
  if (out.dtype == "u1")
    out.dtype = "|u1";
  if (out.dtype != "<f4" && out.dtype != "<i4" && out.dtype != "|u1") {
    *error = ".npy dtype " + out.dtype +
             " is not supported (float32 '<f4', int32 '<i4' or uint8 '|u1')";
    return false;
  }
  if (!findValue(header, "fortran_order", pos) ||
      header.compare(pos, 5, "False") != 0) {
    *error = ".npy array must be C-ordered (fortran_order False)";
    return false;
  }
  if (!findValue(header, "shape", pos) || header[pos] != '(') {
    *error = ".npy header has no shape";
    return false;
  }
  end = header.find(')', pos);
  if (end == std::string::npos) {
    *error = ".npy header has a bad shape";
    return false;
  }
  out.shape.clear();
  uint64_t count = 1;
  const char *p = header.c_str() + pos + 1, *stop = header.c_str() + end;
  while (p < stop) {
    while (p < stop && (*p == ' ' || *p == ','))
      ++p;
    if (p >= stop)
      break;
    char *after = nullptr;
    errno = 0;
    long long dim = std::strtoll(p, &after, 10);
    if (after == p || errno != 0 || dim < 0 || after > stop) {
      *error = ".npy header has a bad shape";
      return false;
    }
    if (dim != 0 && count > std::numeric_limits<uint64_t>::max() / 8 / dim) {
      *error = ".npy shape overflows";
      return false;
    }
    count *= static_cast<uint64_t>(dim);
    out.shape.push_back(dim);
    p = after;
  }
  size_t dataStart = headerStart + headerLen;
  uint64_t size = count * (out.dtype == "|u1" ? 1 : 4);
  if (bytes.size() - dataStart != size) {
    *error = ".npy data holds " + std::to_string(bytes.size() - dataStart) +
             " bytes, the shape needs " + std::to_string(size);
    return false;
  }
  out.data.assign(bytes.begin() + dataStart, bytes.end());
  return true;
}

bool readNpy(const std::string &path, NpyArray &out, std::string *error) {
  std::vector<uint8_t> bytes;
  if (!readFile(path, bytes, error))
    return false;
  if (!parseNpy(bytes, out, error)) {
    *error = path + ": " + *error;
    return false;
  }
  return true;
}

bool writeNpy(const std::string &path, const NpyArray &array,
              std::string *error) {
  std::string header = "{'descr': '" + array.dtype +
                       "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < array.shape.size(); ++i)
    header += (i ? ", " : "") + std::to_string(array.shape[i]);
  if (array.shape.size() == 1)
    header += ","; // numpy writes (2,) and (2, 3)
  header += "), }";
  // Pad so that the data starts at a multiple of 64 bytes.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  uint8_t preamble[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                          static_cast<uint8_t>(header.size() & 0xff),
                          static_cast<uint8_t>(header.size() >> 8)};
  std::vector<uint8_t> bytes(preamble, preamble + 10);
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.insert(bytes.end(), array.data.begin(), array.data.end());
  // A new temporary file and a rename: never an existing X.tmp or a
  // symlink written through.
  return writeFileAtomically(path, bytes.data(), bytes.size(), error);
}

} // namespace vmoe::tools
