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

bool ArgParser::next() {
  index = valueIndex + 1;
  valueIndex = index;
  if (index >= argc)
    return false;
  if (!optionsEnded && std::strcmp(argv[index], "--") == 0) {
    optionsEnded = true;
    return next();
  }
  return true;
}

bool ArgParser::isOption() const {
  const char *a = argv[index];
  return !optionsEnded && a[0] == '-' && a[1] != '\0';
}

bool ArgParser::is(const char *optionName) const {
  if (!isOption())
    return false;
  const char *a = argv[index];
  if (std::strcmp(optionName, "--help") == 0 && std::strcmp(a, "-h") == 0)
    return true;
  size_t n = std::strlen(optionName);
  return std::strncmp(a, optionName, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

std::string ArgParser::name() const {
  const char *a = argv[index];
  const char *eq = std::strchr(a, '=');
  return eq ? std::string(a, eq) : std::string(a);
}

const char *ArgParser::value() {
  if (const char *eq = std::strchr(argv[index], '='))
    return eq + 1;
  if (index + 1 >= argc) {
    usageError(tool, name() + " needs a value", usage);
    return nullptr;
  }
  valueIndex = index + 1;
  return argv[valueIndex];
}

bool ArgParser::noValue() {
  if (!std::strchr(argv[index], '='))
    return true;
  usageError(tool, name() + " takes no value", usage);
  return false;
}

int ArgParser::unknown() const {
  return usageError(tool, "unknown option " + name(), usage);
}

int ArgParser::bad(const std::string &message) const {
  std::fprintf(stderr, "%s: error: %s\n", tool, message.c_str());
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

bool readLines(const std::string &path, std::vector<std::string> &lines,
               std::string *error) {
  constexpr size_t kMaxBytes = 16u << 20;
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) {
    *error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  std::string text;
  char chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0 &&
         text.size() <= kMaxBytes)
    text.append(chunk, n);
  bool readError = std::ferror(f);
  std::fclose(f);
  if (readError || text.size() > kMaxBytes) {
    *error = path + (readError ? ": read error" : ": larger than 16 MiB");
    return false;
  }
  lines.clear();
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos)
      end = text.size();
    size_t stop = end > start && text[end - 1] == '\r' ? end - 1 : end;
    lines.push_back(text.substr(start, stop - start));
    start = end + 1;
  }
  return true;
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
