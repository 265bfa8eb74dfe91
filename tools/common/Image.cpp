//===- Image.cpp - decode and preprocess image files ----------------------===//

#include "Image.h"

#include "ImageInternal.h"
#include "Npy.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <utility>

namespace vmoe::tools {

namespace {

std::string sizeString(int64_t width, int64_t height) {
  return std::to_string(width) + "x" + std::to_string(height);
}

} // namespace

namespace detail {

bool setError(std::string *error, std::string message) {
  if (error)
    *error = std::move(message);
  return false;
}

bool checkDimensions(const std::string &format, int64_t width, int64_t height,
                     std::string *error) {
  if (width < 1 || height < 1)
    return setError(error, format + ": image size " +
                               sizeString(width, height) +
                               " (width and height must be at least 1)");
  if (width > kMaxImageSide || height > kMaxImageSide)
    return setError(error, format + ": image size " +
                               sizeString(width, height) +
                               " exceeds the limit of " +
                               std::to_string(kMaxImageSide) + " per side");
  if (width * height > kMaxImagePixels)
    return setError(error, format + ": image size " +
                               sizeString(width, height) +
                               " exceeds the limit of " +
                               std::to_string(kMaxImagePixels) + " pixels");
  return true;
}

} // namespace detail

namespace {

using detail::checkDimensions;
using detail::kPngSignature;
using detail::setError;

bool isPnmSpace(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

bool validImage(const Image &image) {
  return (image.channels == 1 || image.channels == 3) && image.height >= 1 &&
         image.width >= 1 && image.height <= kMaxImageSide &&
         image.width <= kMaxImageSide &&
         image.height * image.width <= kMaxImagePixels &&
         image.pixels.size() ==
             static_cast<size_t>(image.height * image.width * image.channels);
}

} // namespace

ImageFormat detectImageFormat(const uint8_t *data, size_t size) {
  if (size >= 8 && std::memcmp(data, kPngSignature, 8) == 0)
    return ImageFormat::Png;
  if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
    return ImageFormat::Jpeg;
  if (size >= 3 && data[0] == 'P' && data[1] >= '1' && data[1] <= '7' &&
      (isPnmSpace(data[2]) || data[2] == '#'))
    return ImageFormat::Pnm;
  return ImageFormat::Unknown;
}

bool isImageFile(const std::string &path) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return false;
  uint8_t head[8];
  size_t n = std::fread(head, 1, sizeof(head), f);
  std::fclose(f);
  return detectImageFormat(head, n) != ImageFormat::Unknown;
}

//===----------------------------------------------------------------------===//
// Netpbm (PGM, PPM)
//===----------------------------------------------------------------------===//

namespace {

/// A reader of the decimal tokens of a Netpbm header or ASCII raster.
struct PnmReader {
  const uint8_t *data;
  size_t size, pos;

  /// Skips whitespace and (when `comments`) `#` comments; returns whether
  /// anything was skipped.
  bool skipSpace(bool comments) {
    size_t start = pos;
    while (pos < size) {
      if (isPnmSpace(data[pos])) {
        ++pos;
      } else if (comments && data[pos] == '#') {
        while (pos < size && data[pos] != '\n' && data[pos] != '\r')
          ++pos;
      } else {
        break;
      }
    }
    return pos != start;
  }

  /// Reads a decimal number; values above `max` fail. Returns 0 on
  /// success, 1 at the end of the data, 2 for a non-digit, 3 when too large.
  int number(uint32_t max, uint32_t &value) {
    if (pos >= size)
      return 1;
    if (data[pos] < '0' || data[pos] > '9')
      return 2;
    uint64_t v = 0;
    while (pos < size && data[pos] >= '0' && data[pos] <= '9') {
      v = v * 10 + (data[pos++] - '0');
      if (v > max)
        return 3;
    }
    value = uint32_t(v);
    return 0;
  }
};

} // namespace

bool decodePnm(const uint8_t *data, size_t size, Image &out,
               std::string *error) {
  if (detectImageFormat(data, size) != ImageFormat::Pnm)
    return setError(error, "PNM: not a PGM or PPM file (bad magic)");
  char kind = char(data[1]);
  if (kind == '1' || kind == '4')
    return setError(error, "PNM: PBM bitmaps (P" + std::string(1, kind) +
                               ") are not supported; convert to PGM");
  if (kind == '7')
    return setError(error, "PNM: PAM (P7) files are not supported");
  const bool color = kind == '3' || kind == '6';
  const bool ascii = kind == '2' || kind == '3';
  const std::string format = color ? "PPM" : "PGM";
  auto fail = [&](const std::string &m) {
    return setError(error, format + ": " + m);
  };

  PnmReader r{data, size, 2};
  uint32_t fields[3] = {0, 0, 0};
  const char *names[3] = {"width", "height", "maxval"};
  for (int i = 0; i < 3; ++i) {
    if (!r.skipSpace(true) && r.pos < size)
      return fail(std::string("expected whitespace before the ") + names[i]);
    switch (r.number(i == 2 ? 65535u : 0x7fffffffu, fields[i])) {
    case 1:
      return fail(std::string("truncated header: no ") + names[i]);
    case 2:
      return fail(std::string("bad ") + names[i] +
                  ": expected a decimal number");
    case 3:
      return fail(std::string(names[i]) + " is too large" +
                  (i == 2 ? " (maxval is at most 65535)" : ""));
    default:
      break;
    }
  }
  const uint32_t maxval = fields[2];
  if (maxval == 0)
    return fail("maxval 0 is out of range (1 to 65535)");
  if (r.pos >= size)
    return fail("truncated: no pixel data after the header");
  if (!isPnmSpace(data[r.pos]))
    return fail("expected whitespace after maxval");
  if (!ascii)
    ++r.pos; // exactly one whitespace byte before binary samples
  const int64_t width = fields[0], height = fields[1];
  if (!checkDimensions(format, width, height, error))
    return false;
  const int64_t channels = color ? 3 : 1;
  const size_t samples = size_t(width * height * channels);
  const size_t left = size - r.pos;
  // Scales a sample to 0..255, rounding to nearest.
  auto scale = [maxval](uint32_t v) -> uint8_t {
    return maxval == 255 ? uint8_t(v)
                         : uint8_t((uint64_t(v) * 255 + maxval / 2) / maxval);
  };
  std::vector<uint8_t> pixels;
  if (!ascii) {
    const size_t bytesPerSample = maxval > 255 ? 2 : 1;
    if (samples > left / bytesPerSample)
      return fail("truncated: the pixel data needs " +
                  std::to_string(samples * bytesPerSample) +
                  " bytes, the file has " + std::to_string(left));
    pixels.resize(samples);
    const uint8_t *p = data + r.pos;
    for (size_t i = 0; i < samples; ++i) {
      uint32_t v =
          bytesPerSample == 2 ? (uint32_t(p[2 * i]) << 8) | p[2 * i + 1] : p[i];
      if (v > maxval)
        return fail("sample " + std::to_string(v) + " exceeds maxval " +
                    std::to_string(maxval));
      pixels[i] = scale(v);
    }
  } else {
    // Every sample takes at least two bytes: whitespace, then a digit.
    if (samples > left / 2)
      return fail("truncated: " + std::to_string(samples) +
                  " samples cannot fit in the " + std::to_string(left) +
                  " bytes left");
    pixels.resize(samples);
    for (size_t i = 0; i < samples; ++i) {
      bool spaced = r.skipSpace(true);
      uint32_t v = 0;
      int rc = r.number(maxval, v);
      if (rc == 1)
        return fail("truncated: the pixel data ends after " +
                    std::to_string(i) + " of " + std::to_string(samples) +
                    " samples");
      if (rc == 2 || !spaced)
        return fail("bad sample " + std::to_string(i) +
                    ": expected a decimal number");
      if (rc == 3)
        return fail("sample " + std::to_string(i) + " exceeds maxval " +
                    std::to_string(maxval));
      pixels[i] = scale(v);
    }
  }
  out.height = height;
  out.width = width;
  out.channels = channels;
  out.pixels = std::move(pixels);
  return true;
}

bool decodeImage(const uint8_t *data, size_t size, Image &out,
                 std::string *error) {
  switch (detectImageFormat(data, size)) {
  case ImageFormat::Png:
    return decodePng(data, size, out, error);
  case ImageFormat::Jpeg:
    return decodeJpeg(data, size, out, error);
  case ImageFormat::Pnm:
    return decodePnm(data, size, out, error);
  default:
    return setError(error, "not a PNG, JPEG, PGM or PPM file (unrecognised "
                           "magic bytes)");
  }
}

bool readImage(const std::string &path, Image &out, std::string *error) {
  std::vector<uint8_t> bytes;
  std::string message;
  if (!readFile(path, bytes, &message))
    return setError(error, message);
  if (!decodeImage(bytes.data(), bytes.size(), out, &message))
    return setError(error, path + ": " + message);
  return true;
}

bool convertChannels(const Image &in, int64_t channels, Image &out,
                     std::string *error) {
  if (!validImage(in))
    return setError(error, "convertChannels: invalid image");
  if (channels != 1 && channels != 3)
    return setError(error, "cannot make a " + std::to_string(channels) +
                               "-channel image (only 1 or 3 channels)");
  const size_t n = size_t(in.height * in.width);
  std::vector<uint8_t> pixels(n * size_t(channels));
  if (in.channels == channels) {
    pixels = in.pixels;
  } else if (channels == 3) {
    for (size_t i = 0; i < n; ++i)
      pixels[3 * i] = pixels[3 * i + 1] = pixels[3 * i + 2] = in.pixels[i];
  } else {
    // BT.601 luma, exactly rounded: weights in thousandths sum to 1000.
    for (size_t i = 0; i < n; ++i) {
      const uint8_t *p = in.pixels.data() + 3 * i;
      pixels[i] =
          uint8_t((299u * p[0] + 587u * p[1] + 114u * p[2] + 500) / 1000);
    }
  }
  out.height = in.height;
  out.width = in.width;
  out.channels = channels;
  out.pixels = std::move(pixels);
  return true;
}

namespace {

/// One output coordinate of TensorFlow's bilinear resize.
struct Interpolation {
  int64_t lower, upper;
  float lerp;
};

/// TensorFlow's compute_interpolation_weights with HalfPixelScaler.
std::vector<Interpolation> interpolationWeights(int64_t inSize,
                                                int64_t outSize) {
  const float scale = static_cast<float>(inSize) / static_cast<float>(outSize);
  std::vector<Interpolation> w(static_cast<size_t>(outSize));
  for (int64_t i = 0; i < outSize; ++i) {
    const float in = (static_cast<float>(i) + 0.5f) * scale - 0.5f;
    const float inF = std::floor(in);
    Interpolation &p = w[size_t(i)];
    p.upper = std::min(static_cast<int64_t>(std::ceil(in)), inSize - 1);
    p.lower =
        std::min(std::max(static_cast<int64_t>(inF), int64_t(0)), p.upper);
    p.lerp = in - inF;
  }
  return w;
}

} // namespace

bool resizeBilinear(const Image &in, int64_t height, int64_t width, Image &out,
                    std::string *error) {
  if (!validImage(in))
    return setError(error, "resizeBilinear: invalid image");
  if (height < 1 || width < 1 || height > kMaxImageSide ||
      width > kMaxImageSide || height * width > kMaxImagePixels)
    return setError(error, "cannot resize to " + sizeString(width, height));
  if (height == in.height && width == in.width) {
    out = in; // TF's resize is exact at scale 1
    return true;
  }
  const int64_t c = in.channels;
  const std::vector<Interpolation> ys = interpolationWeights(in.height, height);
  const std::vector<Interpolation> xs = interpolationWeights(in.width, width);
  std::vector<uint8_t> pixels(size_t(height * width * c));
  const uint8_t *src = in.pixels.data();
  uint8_t *o = pixels.data();
  for (int64_t y = 0; y < height; ++y) {
    const Interpolation &iy = ys[size_t(y)];
    const uint8_t *top = src + iy.lower * in.width * c;
    const uint8_t *bottom = src + iy.upper * in.width * c;
    for (int64_t x = 0; x < width; ++x) {
      const Interpolation &ix = xs[size_t(x)];
      for (int64_t k = 0; k < c; ++k) {
        const float topLeft = top[ix.lower * c + k];
        const float topRight = top[ix.upper * c + k];
        const float bottomLeft = bottom[ix.lower * c + k];
        const float bottomRight = bottom[ix.upper * c + k];
        const float t = topLeft + (topRight - topLeft) * ix.lerp;
        const float b = bottomLeft + (bottomRight - bottomLeft) * ix.lerp;
        const float v = t + (b - t) * iy.lerp;
        // tf.cast(float -> uint8) truncates.
        *o++ = static_cast<uint8_t>(std::min(std::max(v, 0.0f), 255.0f));
      }
    }
  }
  out.height = height;
  out.width = width;
  out.channels = c;
  out.pixels = std::move(pixels);
  return true;
}

void toValueRange(const Image &image, std::vector<float> &out) {
  out.resize(image.pixels.size());
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<float>(image.pixels[i]) / 255.0f * 2.0f - 1.0f;
}

bool loadImageForModel(const std::string &path, int64_t height, int64_t width,
                       int64_t channels, std::vector<float> &out,
                       std::string *error) {
  if (channels != 1 && channels != 3)
    return setError(error, "the model takes " + std::to_string(channels) +
                               "-channel images; an image file gives 1 or 3 "
                               "channels");
  if (height < 1 || width < 1 || height > kMaxImageSide ||
      width > kMaxImageSide || height * width > kMaxImagePixels)
    return setError(error, "the model's input size " +
                               sizeString(width, height) +
                               " is not a valid image size");
  Image image, converted, resized;
  if (!readImage(path, image, error))
    return false;
  if (!convertChannels(image, channels, converted, error) ||
      !resizeBilinear(converted, height, width, resized, error))
    return false;
  toValueRange(resized, out);
  return true;
}

} // namespace vmoe::tools
