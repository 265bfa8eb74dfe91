//===- Image.h - decode and preprocess image files --------------*- C++ -*-===//
//
// What vmoe-run needs to classify a picture: PNG (libspng) and JPEG
// (libjpeg-turbo) decoding, binary/ASCII PGM and PPM, conversion to the
// model's channel count, and the resize and value range of vmoe's fine-tune
// eval pipeline (`decode | resize(size) | value_range(-1, 1)`). Netpbm has no
// library worth adding (Debian's libnetpbm exits the process on bad input):
// its reader here is small and checks every field.
//
// The files are untrusted: every size is checked before it is used, image
// dimensions are limited (kMaxImageSide, kMaxImagePixels) before anything is
// allocated for them, and a malformed file gives a message, never a crash.
// A build configured without libspng or libjpeg-turbo (a cross build whose
// sysroot lacks them) decodes no PNG or JPEG and says so.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TOOLS_IMAGE_H
#define VMOE_TOOLS_IMAGE_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vmoe::tools {

/// Decoded pixels: uint8, row-major HWC, 1 (gray) or 3 (RGB) channels.
struct Image {
  int64_t height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels; // height * width * channels
};

/// Largest width or height a decoder accepts.
constexpr int64_t kMaxImageSide = 16384;
/// Largest width * height a decoder accepts (64 Mpixels).
constexpr int64_t kMaxImagePixels = int64_t(64) << 20;

enum class ImageFormat { Unknown, Png, Jpeg, Pnm };

/// The format named by the first bytes of a file: the PNG signature, a JPEG
/// SOI marker followed by another marker (FF D8 FF), or `P` then a digit
/// then whitespace or a `#` comment (Netpbm).
ImageFormat detectImageFormat(const uint8_t *data, size_t size);

/// True when the file at `path` starts like a PNG, JPEG or Netpbm file. False
/// when it cannot be read or is something else (a .npy, say).
bool isImageFile(const std::string &path);

/// PNG: gray (1, 2, 4, 8, 16 bits), gray+alpha, RGB, RGBA (8, 16 bits) and
/// palette (1, 2, 4, 8 bits), interlaced or not. Gray and gray+alpha give 1
/// channel, the others 3. Alpha and tRNS are dropped; 16-bit samples keep
/// their high byte (as tf.io.decode_png with dtype uint8 does); 1/2/4-bit
/// gray is scaled to 0..255.
bool decodePng(const uint8_t *data, size_t size, Image &out,
               std::string *error);

/// JPEG (baseline and progressive): grayscale gives 1 channel, YCbCr and RGB
/// 3 (as tf.io.decode_jpeg with its default settings); CMYK is refused.
bool decodeJpeg(const uint8_t *data, size_t size, Image &out,
                std::string *error);

/// Netpbm: P5 (PGM) and P6 (PPM), and their ASCII forms P2 and P3. maxval up
/// to 65535 (two big-endian bytes per sample above 255); samples are scaled
/// to 0..255 with rounding when maxval is not 255.
bool decodePnm(const uint8_t *data, size_t size, Image &out,
               std::string *error);

/// Any of the above, chosen by the file's magic.
bool decodeImage(const uint8_t *data, size_t size, Image &out,
                 std::string *error);

/// Reads and decodes a file; messages name the path.
bool readImage(const std::string &path, Image &out, std::string *error);

/// To 1 or 3 channels: gray to RGB replicates; RGB to gray uses the ITU-R
/// BT.601 luma weights 0.299, 0.587, 0.114, rounded to nearest.
bool convertChannels(const Image &in, int64_t channels, Image &out,
                     std::string *error);

/// TF2 `tf.image.resize(image, (height, width), 'bilinear')` (antialias off,
/// half-pixel centers) computed in float32 as TensorFlow's CPU kernel does,
/// then cast back to uint8 by truncation as vmoe's `resize` op does. A copy
/// when the size already matches.
bool resizeBilinear(const Image &in, int64_t height, int64_t width, Image &out,
                    std::string *error);

/// vmoe's value_range(-1, 1): x / 255 * 2 - 1 in float32, in HWC order.
void toValueRange(const Image &image, std::vector<float> &out);

/// Decodes `path`, converts it to `channels` (1 or 3), resizes it to
/// `height` x `width` and maps it to [-1, 1]: one model input, HWC, replacing
/// the contents of `out`.
bool loadImageForModel(const std::string &path, int64_t height, int64_t width,
                       int64_t channels, std::vector<float> &out,
                       std::string *error);

} // namespace vmoe::tools

#endif // VMOE_TOOLS_IMAGE_H
