//===- Npy.h - read and write NumPy .npy arrays -----------------*- C++ -*-===//
//
// The .npy format (version 1.0 and 2.0 headers) for little-endian float32 and
// int32 C-order arrays: what vmoe-run takes as input and writes as output.
// Every header field is checked; a bad file gives a message, never a crash.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TOOLS_NPY_H
#define VMOE_TOOLS_NPY_H

#include <cstdint>
#include <string>
#include <vector>

namespace vmoe::tools {

struct NpyArray {
  std::string dtype; // "<f4" or "<i4"
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

/// Parses a whole .npy file held in memory.
bool parseNpy(const std::vector<uint8_t> &bytes, NpyArray &out,
              std::string *error);
bool readNpy(const std::string &path, NpyArray &out, std::string *error);
bool writeNpy(const std::string &path, const NpyArray &array,
              std::string *error);

bool readFile(const std::string &path, std::vector<uint8_t> &out,
              std::string *error);

} // namespace vmoe::tools

#endif // VMOE_TOOLS_NPY_H
