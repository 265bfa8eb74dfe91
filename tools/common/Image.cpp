//===- Image.cpp - decode and preprocess image files ----------------------===//

#include "Image.h"

#include "Npy.h"

#ifndef VMOE_NO_ZLIB
#include <zlib.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <utility>

namespace vmoe::tools {

namespace {

bool setError(std::string *error, std::string message) {
  if (error)
    *error = std::move(message);
  return false;
}

std::string sizeString(int64_t width, int64_t height) {
  return std::to_string(width) + "x" + std::to_string(height);
}

/// Checks decoded dimensions against the limits before anything is
/// allocated for them.
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

//===----------------------------------------------------------------------===//
// PNG
//===----------------------------------------------------------------------===//

const uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

uint32_t readBe32(const uint8_t *p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) |
         (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

/// A chunk type for messages: its four letters, or hex when they are not
/// printable.
std::string chunkName(const uint8_t *type) {
  bool printable = true;
  for (int i = 0; i < 4; ++i)
    printable &= type[i] >= 0x20 && type[i] < 0x7f;
  if (printable)
    return std::string(reinterpret_cast<const char *>(type), 4);
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", readBe32(type));
  return buf;
}

bool isLetter(uint8_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

struct PngHeader {
  int64_t width = 0, height = 0;
  int depth = 0, colorType = 0;
};

bool parseIhdr(const uint8_t *body, uint32_t length, PngHeader &h,
               std::string *error) {
  auto fail = [&](const std::string &m) {
    return setError(error, "PNG: IHDR: " + m);
  };
  if (length != 13)
    return fail("chunk has " + std::to_string(length) + " bytes, not 13");
  uint32_t width = readBe32(body), height = readBe32(body + 4);
  if (width > 0x7fffffffu || height > 0x7fffffffu)
    return fail("image size " + std::to_string(width) + "x" +
                std::to_string(height) + " is out of range");
  h.width = width;
  h.height = height;
  h.depth = body[8];
  h.colorType = body[9];
  int compression = body[10], filter = body[11], interlace = body[12];
  bool depthOk = false;
  switch (h.colorType) {
  case 0: // gray
    depthOk = h.depth == 1 || h.depth == 2 || h.depth == 4 || h.depth == 8 ||
              h.depth == 16;
    break;
  case 3: // palette
    depthOk = h.depth == 1 || h.depth == 2 || h.depth == 4 || h.depth == 8;
    break;
  case 2: // RGB
  case 4: // gray + alpha
  case 6: // RGBA
    depthOk = h.depth == 8 || h.depth == 16;
    break;
  default:
    return fail("unknown colour type " + std::to_string(h.colorType));
  }
  if (!depthOk)
    return fail("bit depth " + std::to_string(h.depth) +
                " is not valid for colour type " + std::to_string(h.colorType));
  if (compression != 0)
    return fail("unknown compression method " + std::to_string(compression));
  if (filter != 0)
    return fail("unknown filter method " + std::to_string(filter));
  if (interlace == 1)
    return fail("interlaced (Adam7) PNG images are not supported; save the "
                "image without interlacing");
  if (interlace != 0)
    return fail("unknown interlace method " + std::to_string(interlace));
  return checkDimensions("PNG", h.width, h.height, error);
}

/// Reverses the filter of one row in place; `prev` is the row above (zeros
/// for the first row).
bool unfilterRow(uint8_t filter, uint8_t *x, const uint8_t *prev,
                 size_t rowBytes, size_t bpp) {
  switch (filter) {
  case 0:
    return true;
  case 1:
    for (size_t i = bpp; i < rowBytes; ++i)
      x[i] = uint8_t(x[i] + x[i - bpp]);
    return true;
  case 2:
    for (size_t i = 0; i < rowBytes; ++i)
      x[i] = uint8_t(x[i] + prev[i]);
    return true;
  case 3:
    for (size_t i = 0; i < rowBytes; ++i) {
      unsigned a = i >= bpp ? x[i - bpp] : 0;
      x[i] = uint8_t(x[i] + ((a + prev[i]) >> 1));
    }
    return true;
  case 4:
    for (size_t i = 0; i < rowBytes; ++i) {
      int a = i >= bpp ? x[i - bpp] : 0;
      int b = prev[i];
      int c = i >= bpp ? prev[i - bpp] : 0;
      int p = a + b - c;
      int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
      int pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
      x[i] = uint8_t(x[i] + pred);
    }
    return true;
  default:
    return false;
  }
}

/// Sample `index` of an unfiltered row: 16-bit samples give their high byte,
/// sub-byte samples their raw value.
inline unsigned rowSample(const uint8_t *x, size_t index, int depth) {
  switch (depth) {
  case 8:
    return x[index];
  case 16:
    return x[2 * index];
  default: {
    size_t bit = index * depth;
    unsigned shift = 8 - depth - unsigned(bit & 7);
    return (x[bit >> 3] >> shift) & ((1u << depth) - 1);
  }
  }
}

#ifndef VMOE_NO_ZLIB
struct InflateGuard {
  z_stream *stream;
  ~InflateGuard() { inflateEnd(stream); }
};
#endif

} // namespace

ImageFormat detectImageFormat(const uint8_t *data, size_t size) {
  if (size >= 8 && std::memcmp(data, kPngSignature, 8) == 0)
    return ImageFormat::Png;
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

bool decodePng(const uint8_t *data, size_t size, Image &out,
               std::string *error) {
  auto fail = [&](const std::string &m) {
    return setError(error, "PNG: " + m);
  };
  if (size < 8 || std::memcmp(data, kPngSignature, 8) != 0)
    return fail("not a PNG file (bad signature)");
#ifdef VMOE_NO_ZLIB
  // A build without zlib (a cross build whose sysroot lacks it).
  (void)out;
  return fail("this build cannot decode PNG images (it was built without "
              "zlib); convert the image to PGM/PPM or .npy");
#else

  // Walk the chunks: check every length and CRC, take IHDR and PLTE, and
  // collect where the IDAT data lies (no copy).
  PngHeader h;
  bool haveHeader = false, haveEnd = false;
  enum { BeforeIdat, InIdat, AfterIdat } idatState = BeforeIdat;
  std::vector<uint8_t> palette; // RGB triples
  std::vector<std::pair<const uint8_t *, uint32_t>> idat;
  size_t pos = 8;
  while (!haveEnd) {
    if (size - pos < 12) {
      if (size == pos)
        return fail(haveHeader
                        ? "truncated: the file ends before the IEND chunk"
                        : "truncated: the file ends before the IHDR chunk");
      return fail("truncated: the chunk header at byte " + std::to_string(pos) +
                  " is cut off");
    }
    uint32_t length = readBe32(data + pos);
    const uint8_t *type = data + pos + 4;
    std::string name = chunkName(type);
    if (length > 0x7fffffffu)
      return fail("chunk " + name + " at byte " + std::to_string(pos) +
                  " has an invalid length " + std::to_string(length));
    if (length > size - pos - 12)
      return fail(
          "truncated: chunk " + name + " at byte " + std::to_string(pos) +
          " needs " + std::to_string(uint64_t(length) + 12) +
          " bytes, the file has " + std::to_string(size - pos) + " left");
    if (!isLetter(type[0]) || !isLetter(type[1]) || !isLetter(type[2]) ||
        !isLetter(type[3]))
      return fail("invalid chunk type " + name + " at byte " +
                  std::to_string(pos));
    const uint8_t *body = type + 4;
    uint32_t crc = uint32_t(crc32(0L, type, uInt(length) + 4));
    if (crc != readBe32(body + length))
      return fail("CRC mismatch in chunk " + name + " at byte " +
                  std::to_string(pos) + " (the file is corrupt)");
    pos += size_t(length) + 12;

    if (!haveHeader && name != "IHDR")
      return fail("the first chunk is " + name + ", not IHDR");
    if (name != "IDAT" && idatState == InIdat)
      idatState = AfterIdat;
    if (name == "IHDR") {
      if (haveHeader)
        return fail("more than one IHDR chunk");
      if (!parseIhdr(body, length, h, error))
        return false;
      haveHeader = true;
    } else if (name == "PLTE") {
      if (idatState != BeforeIdat)
        return fail("PLTE chunk after the image data");
      if (!palette.empty())
        return fail("more than one PLTE chunk");
      if (length == 0 || length % 3 != 0 || length > 768)
        return fail("PLTE chunk has " + std::to_string(length) +
                    " bytes, not 1 to 256 RGB entries");
      palette.assign(body, body + length);
    } else if (name == "IDAT") {
      if (idatState == AfterIdat)
        return fail("IDAT chunks are not consecutive");
      idatState = InIdat;
      idat.emplace_back(body, length);
    } else if (name == "IEND") {
      haveEnd = true;
    } else if (type[0] & 0x20) {
      // Ancillary (tRNS, gAMA, text, ...): not needed for the pixels.
    } else {
      return fail("unknown critical chunk " + name);
    }
  }
  if (idat.empty())
    return fail("no IDAT chunk (no image data)");
  if (h.colorType == 3 && palette.empty())
    return fail("palette image without a PLTE chunk");

  int samplesPerPixel = 1;
  switch (h.colorType) {
  case 2:
    samplesPerPixel = 3;
    break;
  case 4:
    samplesPerPixel = 2;
    break;
  case 6:
    samplesPerPixel = 4;
    break;
  default:
    break;
  }
  const int64_t bitsPerPixel = int64_t(samplesPerPixel) * h.depth;
  const size_t rowBytes = size_t((h.width * bitsPerPixel + 7) / 8);
  const size_t bpp = size_t(std::max<int64_t>(1, bitsPerPixel / 8));
  const size_t rowLen = rowBytes + 1; // filter type byte first
  const int64_t channels = (h.colorType == 0 || h.colorType == 4) ? 1 : 3;
  const size_t paletteEntries = palette.size() / 3;
  const unsigned grayScale =
      h.colorType == 0 && h.depth < 8 ? 255u / ((1u << h.depth) - 1) : 1u;

  // Inflate the IDAT stream one row at a time: memory grows only with the
  // rows the data really holds, so a small file cannot claim a huge image.
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  if (inflateInit(&zs) != Z_OK)
    return fail("cannot initialise zlib");
  InflateGuard guard{&zs};
  std::vector<uint8_t> prev(rowBytes, 0), cur(rowLen);
  std::vector<uint8_t> pixels;
  size_t rowPixelBytes = size_t(h.width * channels);
  pixels.reserve(std::min<size_t>(size_t(h.height) * rowPixelBytes, 1 << 20));
  size_t filled = 0;
  int64_t row = 0;
  bool streamEnd = false;
  uint8_t scratch[64];
  for (const auto &span : idat) {
    zs.next_in = const_cast<Bytef *>(span.first);
    zs.avail_in = uInt(span.second);
    for (;;) {
      bool full = row >= h.height;
      zs.next_out = full ? scratch : cur.data() + filled;
      zs.avail_out = uInt(full ? sizeof(scratch) : rowLen - filled);
      uInt before = zs.avail_out;
      int ret = inflate(&zs, Z_NO_FLUSH);
      if (ret == Z_STREAM_END) {
        streamEnd = true;
      } else if (ret == Z_BUF_ERROR) {
        break; // no progress: this chunk's data is used up
      } else if (ret == Z_NEED_DICT) {
        return fail("the image data needs a preset zlib dictionary");
      } else if (ret != Z_OK) {
        return fail(std::string("corrupt image data (zlib: ") +
                    (zs.msg ? zs.msg : "error " + std::to_string(ret)) + ")");
      }
      size_t produced = before - zs.avail_out;
      if (full) {
        if (produced > 0)
          return fail("IDAT data too long: the image data holds more than " +
                      std::to_string(h.height) + " rows of " +
                      std::to_string(rowLen) + " bytes");
      } else {
        filled += produced;
        if (filled == rowLen) {
          uint8_t *x = cur.data() + 1;
          if (!unfilterRow(cur[0], x, prev.data(), rowBytes, bpp))
            return fail("unknown filter type " + std::to_string(cur[0]) +
                        " in row " + std::to_string(row));
          size_t at = pixels.size();
          pixels.resize(at + rowPixelBytes);
          uint8_t *o = pixels.data() + at;
          for (int64_t i = 0; i < h.width; ++i) {
            size_t s = size_t(i) * samplesPerPixel;
            switch (h.colorType) {
            case 0:
            case 4:
              *o++ = uint8_t(rowSample(x, s, h.depth) * grayScale);
              break;
            case 2:
            case 6:
              *o++ = uint8_t(rowSample(x, s, h.depth));
              *o++ = uint8_t(rowSample(x, s + 1, h.depth));
              *o++ = uint8_t(rowSample(x, s + 2, h.depth));
              break;
            default: { // palette
              unsigned index = rowSample(x, s, h.depth);
              if (index >= paletteEntries)
                return fail("palette index " + std::to_string(index) +
                            " in row " + std::to_string(row) +
                            " is out of range (the palette has " +
                            std::to_string(paletteEntries) + " entries)");
              std::memcpy(o, palette.data() + 3 * index, 3);
              o += 3;
              break;
            }
            }
          }
          std::memcpy(prev.data(), x, rowBytes);
          filled = 0;
          ++row;
        }
      }
      if (streamEnd || zs.avail_out != 0)
        break; // the stream ended, or this chunk's data is used up
    }
    if (streamEnd)
      break; // data after the end of the zlib stream is ignored
  }
  if (row < h.height)
    return fail("IDAT data too short: it holds " + std::to_string(row) +
                " of " + std::to_string(h.height) + " rows" +
                (streamEnd ? "" : " (the compressed stream is cut off)"));
  if (!streamEnd)
    return fail("the compressed image data is cut off (no end of the zlib "
                "stream)");
  out.height = h.height;
  out.width = h.width;
  out.channels = channels;
  out.pixels = std::move(pixels);
  return true;
#endif
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
  case ImageFormat::Pnm:
    return decodePnm(data, size, out, error);
  default:
    return setError(error,
                    "not a PNG, PGM or PPM file (unrecognised magic bytes)");
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
