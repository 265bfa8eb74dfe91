//===- ToolSupport.cpp - what the command-line tools share ----------------===//

#include "ToolSupport.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vmoe::tools {

int fail(const char *tool, const std::string &message) {
  std::fprintf(stderr, "%s: error: %s\n", tool, message.c_str());
  return 1;
}

int usageError(const char *tool, const std::string &message,
               const char *usage) {
  std::fprintf(stderr, "%s: error: %s\n%s", tool, message.c_str(), usage);
  return 2;
}

bool parseDouble(const char *s, double &out) {
  char *end = nullptr;
  out = std::strtod(s, &end);
  return end && *end == '\0' && end != s;
}

bool parseInt(const char *s, long long min, long long max, long long &out) {
  char *end = nullptr;
  errno = 0;
  out = std::strtoll(s, &end, 10);
  return end && *end == '\0' && end != s && errno == 0 && out >= min &&
         out <= max;
}

std::string jsonEscape(const std::string &s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\')
      out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20)
      continue;
    out += ch;
  }
  return out;
}

bool writeFileAtomically(const std::string &path, const void *data, size_t size,
                         std::string *error) {
  std::string tmp = path + ".tmp-XXXXXX";
  int fd = mkstemp(tmp.data()); // O_CREAT | O_EXCL, mode 0600
  if (fd < 0) {
    *error = "cannot create " + tmp + ": " + std::strerror(errno);
    return false;
  }
  // The mode a plain creat() would give: 0666 less the umask.
  mode_t mask = umask(0);
  umask(mask);
  bool ok = fchmod(fd, 0666 & ~mask) == 0;
  const char *p = static_cast<const char *>(data);
  for (size_t left = size; ok && left;) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    ok = n > 0;
    if (ok) {
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  int writeError = errno;
  if (close(fd) != 0 && ok) {
    ok = false;
    writeError = errno;
  }
  if (ok && std::rename(tmp.c_str(), path.c_str()) == 0)
    return true;
  if (ok)
    writeError = errno;
  *error = "cannot write " + path + ": " + std::strerror(writeError);
  unlink(tmp.c_str());
  return false;
}

bool sameFile(const std::string &a, const std::string &b) {
  struct stat sa, sb;
  return stat(a.c_str(), &sa) == 0 && stat(b.c_str(), &sb) == 0 &&
         sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool checkOutputIsNoInput(const char *option, const std::string &output,
                          const std::vector<std::string> &inputs,
                          std::string *error) {
  for (const std::string &input : inputs) {
    if (input.empty() || !sameFile(output, input))
      continue;
    *error = std::string(option) + " " + output + " is also an input (" +
             input + "); write the output to another file";
    return false;
  }
  return true;
}

bool checkToolTensorBytes(const char *what, unsigned index,
                          unsigned long long bytes, std::string *error) {
  if (bytes <= kMaxToolTensorBytes)
    return true;
  *error = std::string("the module's ") + what + " " + std::to_string(index) +
           " takes " + std::to_string(bytes) + " bytes, more than the " +
           std::to_string(kMaxToolTensorBytes >> 30) +
           " GiB this tool allocates for a tensor";
  return false;
}

} // namespace vmoe::tools
