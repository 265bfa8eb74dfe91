//===- Png.cpp - decode PNG images ----------------------------------------===//
//
// Non-interlaced PNG, every colour type and bit depth, to 8-bit gray or RGB.
// Every chunk length and CRC is checked, and the image data is inflated one
// row at a time, so that a malformed or hostile file gives a message, never
// a crash or a huge allocation.
//
//===----------------------------------------------------------------------===//

#include "Image.h"

#include "ImageInternal.h"

#ifndef VMOE_NO_ZLIB
#include <zlib.h>
#endif

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace vmoe::tools {

using detail::checkDimensions;
using detail::kPngSignature;
using detail::setError;

// Without zlib (a cross build whose sysroot lacks it) only the signature is
// read.
#ifndef VMOE_NO_ZLIB
namespace {

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

struct InflateGuard {
  z_stream *stream;
  ~InflateGuard() { inflateEnd(stream); }
};

bool pngError(std::string *error, const std::string &message) {
  return setError(error, "PNG: " + message);
}

/// What the chunks of a PNG hold: the header, the palette, and where the
/// IDAT data lies (no copy).
struct PngChunks {
  PngHeader header;
  std::vector<uint8_t> palette; // RGB triples
  std::vector<std::pair<const uint8_t *, uint32_t>> idat;
};

/// Walks the chunks after the signature: checks every length and CRC, takes
/// IHDR and PLTE, and collects the IDAT spans.
bool readPngChunks(const uint8_t *data, size_t size, PngChunks &chunks,
                   std::string *error) {
  auto fail = [&](const std::string &m) { return pngError(error, m); };
  bool haveHeader = false, haveEnd = false;
  enum { BeforeIdat, InIdat, AfterIdat } idatState = BeforeIdat;
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
      if (!parseIhdr(body, length, chunks.header, error))
        return false;
      haveHeader = true;
    } else if (name == "PLTE") {
      if (idatState != BeforeIdat)
        return fail("PLTE chunk after the image data");
      if (!chunks.palette.empty())
        return fail("more than one PLTE chunk");
      if (length == 0 || length % 3 != 0 || length > 768)
        return fail("PLTE chunk has " + std::to_string(length) +
                    " bytes, not 1 to 256 RGB entries");
      chunks.palette.assign(body, body + length);
    } else if (name == "IDAT") {
      if (idatState == AfterIdat)
        return fail("IDAT chunks are not consecutive");
      idatState = InIdat;
      chunks.idat.emplace_back(body, length);
    } else if (name == "IEND") {
      haveEnd = true;
    } else if (type[0] & 0x20) {
      // Ancillary (tRNS, gAMA, text, ...): not needed for the pixels.
    } else {
      return fail("unknown critical chunk " + name);
    }
  }
  if (chunks.idat.empty())
    return fail("no IDAT chunk (no image data)");
  if (chunks.header.colorType == 3 && chunks.palette.empty())
    return fail("palette image without a PLTE chunk");
  return true;
}

/// The layout of a PNG's rows, from its header.
struct PngRows {
  int samplesPerPixel = 1;
  size_t rowBytes = 0; // without the filter type byte
  size_t bpp = 1;      // bytes per complete pixel, at least 1 (unfiltering)
  size_t rowLen = 0;   // filter type byte first
  int64_t channels = 0;
  unsigned grayScale = 1; // sub-byte gray samples to 0..255
};

PngRows pngRows(const PngHeader &h) {
  PngRows r;
  switch (h.colorType) {
  case 2:
    r.samplesPerPixel = 3;
    break;
  case 4:
    r.samplesPerPixel = 2;
    break;
  case 6:
    r.samplesPerPixel = 4;
    break;
  default:
    break;
  }
  const int64_t bitsPerPixel = int64_t(r.samplesPerPixel) * h.depth;
  r.rowBytes = size_t((h.width * bitsPerPixel + 7) / 8);
  r.bpp = size_t(std::max<int64_t>(1, bitsPerPixel / 8));
  r.rowLen = r.rowBytes + 1;
  r.channels = (h.colorType == 0 || h.colorType == 4) ? 1 : 3;
  r.grayScale =
      h.colorType == 0 && h.depth < 8 ? 255u / ((1u << h.depth) - 1) : 1u;
  return r;
}

/// The gray or RGB pixels of unfiltered row `row` (`x`), written to `o`.
bool expandRow(const uint8_t *x, int64_t row, const PngChunks &chunks,
               const PngRows &r, uint8_t *o, std::string *error) {
  const PngHeader &h = chunks.header;
  const size_t paletteEntries = chunks.palette.size() / 3;
  for (int64_t i = 0; i < h.width; ++i) {
    size_t s = size_t(i) * r.samplesPerPixel;
    switch (h.colorType) {
    case 0:
    case 4:
      *o++ = uint8_t(rowSample(x, s, h.depth) * r.grayScale);
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
        return pngError(error, "palette index " + std::to_string(index) +
                                   " in row " + std::to_string(row) +
                                   " is out of range (the palette has " +
                                   std::to_string(paletteEntries) +
                                   " entries)");
      std::memcpy(o, chunks.palette.data() + 3 * index, 3);
      o += 3;
      break;
    }
    }
  }
  return true;
}

/// Inflates the IDAT stream one row at a time: memory grows only with the
/// rows the data really holds, so a small file cannot claim a huge image.
bool inflateRows(const PngChunks &chunks, const PngRows &r,
                 std::vector<uint8_t> &pixels, std::string *error) {
  auto fail = [&](const std::string &m) { return pngError(error, m); };
  const PngHeader &h = chunks.header;
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  if (inflateInit(&zs) != Z_OK)
    return fail("cannot initialise zlib");
  InflateGuard guard{&zs};
  std::vector<uint8_t> prev(r.rowBytes, 0), cur(r.rowLen);
  size_t rowPixelBytes = size_t(h.width * r.channels);
  pixels.reserve(std::min<size_t>(size_t(h.height) * rowPixelBytes, 1 << 20));
  size_t filled = 0;
  int64_t row = 0;
  bool streamEnd = false;
  uint8_t scratch[64];
  for (const auto &span : chunks.idat) {
    zs.next_in = const_cast<Bytef *>(span.first);
    zs.avail_in = uInt(span.second);
    for (;;) {
      bool full = row >= h.height;
      zs.next_out = full ? scratch : cur.data() + filled;
      zs.avail_out = uInt(full ? sizeof(scratch) : r.rowLen - filled);
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
                      std::to_string(r.rowLen) + " bytes");
      } else {
        filled += produced;
        if (filled == r.rowLen) {
          uint8_t *x = cur.data() + 1;
          if (!unfilterRow(cur[0], x, prev.data(), r.rowBytes, r.bpp))
            return fail("unknown filter type " + std::to_string(cur[0]) +
                        " in row " + std::to_string(row));
          size_t at = pixels.size();
          pixels.resize(at + rowPixelBytes);
          if (!expandRow(x, row, chunks, r, pixels.data() + at, error))
            return false;
          std::memcpy(prev.data(), x, r.rowBytes);
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
  return true;
}

} // namespace
#endif // VMOE_NO_ZLIB

bool decodePng(const uint8_t *data, size_t size, Image &out,
               std::string *error) {
  if (size < 8 || std::memcmp(data, kPngSignature, 8) != 0)
    return setError(error, "PNG: not a PNG file (bad signature)");
#ifdef VMOE_NO_ZLIB
  // A build without zlib (a cross build whose sysroot lacks it).
  (void)out;
  return setError(error, "PNG: this build cannot decode PNG images (it was "
                         "built without zlib); convert the image to PGM/PPM "
                         "or .npy");
#else
  PngChunks chunks;
  if (!readPngChunks(data, size, chunks, error))
    return false;
  PngRows rows = pngRows(chunks.header);
  std::vector<uint8_t> pixels;
  if (!inflateRows(chunks, rows, pixels, error))
    return false;
  out.height = chunks.header.height;
  out.width = chunks.header.width;
  out.channels = rows.channels;
  out.pixels = std::move(pixels);
  return true;
#endif
}

} // namespace vmoe::tools
