//===- Memory.cpp - what memory a process may still allocate --------------===//

#include "vmoe/readers/Memory.h"

#include <cstdio>
#include <cstring>
#include <sys/resource.h>
#include <unistd.h>

namespace vmoe::readers {

namespace {

/// A "Name:   123 kB" line of a /proc file, in bytes.
bool procField(const char *path, const char *name, uint64_t &bytes) {
  FILE *f = std::fopen(path, "r");
  if (!f)
    return false;
  char line[256];
  size_t length = std::strlen(name);
  bool found = false;
  while (std::fgets(line, sizeof(line), f)) {
    unsigned long long kb = 0;
    if (std::strncmp(line, name, length) == 0 && line[length] == ':' &&
        std::sscanf(line + length + 1, "%llu", &kb) == 1) {
      bytes = uint64_t(kb) * 1024;
      found = true;
      break;
    }
  }
  std::fclose(f);
  return found;
}

/// Headroom under a resource limit, given what the process uses of it.
void underLimit(int resource, const char *procName, const char *label,
                uint64_t &best, std::string &limitedBy) {
  struct rlimit limit;
  if (getrlimit(resource, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
    return;
  uint64_t used = 0;
  procField("/proc/self/status", procName, used);
  uint64_t cap = uint64_t(limit.rlim_cur);
  uint64_t left = cap > used ? cap - used : 0;
  if (left < best) {
    best = left;
    limitedBy = std::string(label) + " of " + formatBytes(cap) + ", " +
                formatBytes(used) + " of it in use";
  }
}

} // namespace

uint64_t availableMemory(std::string *limitedBy) {
  uint64_t best = UINT64_MAX;
  std::string why;
  uint64_t available = 0, swap = 0;
  if (procField("/proc/meminfo", "MemAvailable", available)) {
    procField("/proc/meminfo", "SwapFree", swap);
    best = available + swap;
    why = "the memory and swap available on this machine (MemAvailable + "
          "SwapFree)";
  }
  underLimit(RLIMIT_AS, "VmSize", "the address-space limit (ulimit -v)", best,
             why);
  underLimit(RLIMIT_DATA, "VmData", "the data-segment limit (ulimit -d)", best,
             why);
  if (limitedBy)
    *limitedBy = why;
  return best;
}

std::string formatBytes(uint64_t bytes) {
  char buffer[32];
  if (bytes < 1000000)
    std::snprintf(buffer, sizeof(buffer), "%llu bytes",
                  static_cast<unsigned long long>(bytes));
  else if (bytes < 1000000000)
    std::snprintf(buffer, sizeof(buffer), "%.1f MB", double(bytes) / 1e6);
  else
    std::snprintf(buffer, sizeof(buffer), "%.1f GB", double(bytes) / 1e9);
  return buffer;
}

bool checkMemoryFor(uint64_t need, const std::string &what,
                    std::string *error) {
  std::string limitedBy;
  uint64_t available = availableMemory(&limitedBy);
  if (need <= available)
    return true;
  *error = what + " needs about " +
           (need == UINT64_MAX ? std::string("more than 18 EB")
                               : formatBytes(need)) +
           " of memory, more than the " + formatBytes(available) +
           " available: " + limitedBy;
  return false;
}

} // namespace vmoe::readers
