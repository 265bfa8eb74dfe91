//===- Weights.cpp - any supported weights file ---------------------------===//

#include "vmoe/readers/Weights.h"

#include "vmoe/readers/Npz.h"
#include "vmoe/readers/Safetensors.h"
#include "vmoe/readers/VmoeCheckpoint.h"

#include "Support.h"

#include <cstdio>

namespace vmoe::readers {

const char *formatName(WeightsFormat format) {
  switch (format) {
  case WeightsFormat::VmoeCheckpoint:
    return "vmoe checkpoint";
  case WeightsFormat::Npz:
    return "npz";
  case WeightsFormat::Safetensors:
    return "safetensors";
  case WeightsFormat::Unknown:
    break;
  }
  return "unknown";
}

static bool endsWith(const std::string &s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         std::string_view(s).substr(s.size() - suffix.size()) == suffix;
}

WeightsFormat detectWeightsFormat(const std::string &path,
                                  std::string &prefix) {
  prefix = path;
  if (endsWith(path, ".index")) {
    prefix = path.substr(0, path.size() - 6);
    return WeightsFormat::VmoeCheckpoint;
  }
  // "<prefix>.data-00000-of-00002"
  size_t data = path.rfind(".data-");
  if (data != std::string::npos) {
    std::string_view rest = std::string_view(path).substr(data + 6);
    size_t of = rest.find("-of-");
    auto digits = [](std::string_view s) {
      if (s.empty())
        return false;
      for (char c : s)
        if (c < '0' || c > '9')
          return false;
      return true;
    };
    if (of != std::string_view::npos && digits(rest.substr(0, of)) &&
        digits(rest.substr(of + 4))) {
      prefix = path.substr(0, data);
      return WeightsFormat::VmoeCheckpoint;
    }
  }
  if (endsWith(path, ".npz"))
    return WeightsFormat::Npz;
  if (endsWith(path, ".safetensors"))
    return WeightsFormat::Safetensors;
  if (!detail::fileExists(path) && detail::fileExists(path + ".index"))
    return WeightsFormat::VmoeCheckpoint;
  // Sniff the first bytes.
  uint8_t head[9] = {};
  size_t n = 0;
  if (FILE *f = std::fopen(path.c_str(), "rb")) {
    n = std::fread(head, 1, sizeof(head), f);
    std::fclose(f);
  }
  if (n >= 4 && head[0] == 'P' && head[1] == 'K' &&
      ((head[2] == 3 && head[3] == 4) || (head[2] == 5 && head[3] == 6)))
    return WeightsFormat::Npz;
  if (n == 9 && head[8] == '{' && detail::load64(head) < 100'000'000)
    return WeightsFormat::Safetensors;
  return WeightsFormat::Unknown;
}

bool readWeights(const std::string &path, TensorMap &out, std::string *error,
                 const ReadOptions &options) {
  std::string prefix;
  switch (detectWeightsFormat(path, prefix)) {
  case WeightsFormat::VmoeCheckpoint:
    return readVmoeCheckpoint(prefix, out, error, options);
  case WeightsFormat::Npz:
    return readNpz(path, out, error, options);
  case WeightsFormat::Safetensors:
    return readSafetensors(path, out, error, options);
  case WeightsFormat::Unknown:
    break;
  }
  if (!detail::fileExists(path)) {
    *error = "cannot open " + detail::quote(path) + ": no such file, and no " +
             detail::quote(path + ".index");
    return false;
  }
  *error = path +
           ": unknown weights format (expected an .npz, a .safetensors file "
           "or a vmoe checkpoint: <prefix>.index + <prefix>.data-*)";
  return false;
}

} // namespace vmoe::readers
