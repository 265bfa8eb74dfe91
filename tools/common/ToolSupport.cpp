//===- ToolSupport.cpp - what the command-line tools share ----------------===//

#include "ToolSupport.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

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

} // namespace vmoe::tools
