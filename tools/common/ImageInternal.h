//===- ImageInternal.h - shared by the image decoders -----------*- C++ -*-===//
//
// What Image.cpp (Netpbm, channels, resize) and Png.cpp share; not for the
// tools themselves.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TOOLS_IMAGEINTERNAL_H
#define VMOE_TOOLS_IMAGEINTERNAL_H

#include <cstdint>
#include <string>

namespace vmoe::tools::detail {

/// The first eight bytes of every PNG file.
inline constexpr uint8_t kPngSignature[8] = {0x89, 'P',  'N',  'G',
                                             '\r', '\n', 0x1a, '\n'};

/// Sets `*error` (when there is one) to `message`; returns false.
bool setError(std::string *error, std::string message);

/// Checks decoded dimensions against the limits before anything is
/// allocated for them.
bool checkDimensions(const std::string &format, int64_t width, int64_t height,
                     std::string *error);

} // namespace vmoe::tools::detail

#endif // VMOE_TOOLS_IMAGEINTERNAL_H
