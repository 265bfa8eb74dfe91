//===- ImageTest.cpp - image decoders and preprocessing of vmoe-run -------===//
//
// PNGs are written here with zlib and hand-made chunks (every filter type,
// every colour type and bit depth, Adam7), JPEGs with TurboJPEG's encoder,
// PGM/PPM by hand; decoded pixels (exactly, JPEG within its loss), the
// resize (against hand-computed TF2 bilinear values), channel conversion and
// the value range are checked, and malformed files must fail with a
// message.
//
//===----------------------------------------------------------------------===//

#include "Image.h"

#include <gtest/gtest.h>
#include <turbojpeg.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

using namespace vmoe::tools;

namespace {

using Bytes = std::vector<uint8_t>;

void putBe32(Bytes &b, uint32_t v) {
  b.push_back(uint8_t(v >> 24));
  b.push_back(uint8_t(v >> 16));
  b.push_back(uint8_t(v >> 8));
  b.push_back(uint8_t(v));
}

void putChunk(Bytes &png, const char *type, const Bytes &body,
              bool badCrc = false) {
  putBe32(png, uint32_t(body.size()));
  size_t start = png.size();
  png.insert(png.end(), type, type + 4);
  png.insert(png.end(), body.begin(), body.end());
  uint32_t crc = uint32_t(crc32(0L, png.data() + start, uInt(body.size() + 4)));
  putBe32(png, badCrc ? crc ^ 1 : crc);
}

Bytes ihdr(uint32_t width, uint32_t height, int depth, int colorType,
           int interlace = 0) {
  Bytes b;
  putBe32(b, width);
  putBe32(b, height);
  b.push_back(uint8_t(depth));
  b.push_back(uint8_t(colorType));
  b.push_back(0); // compression
  b.push_back(0); // filter method
  b.push_back(uint8_t(interlace));
  return b;
}

Bytes zlibCompress(const Bytes &raw) {
  uLongf size = compressBound(uLong(raw.size()));
  Bytes out(size);
  EXPECT_EQ(compress2(out.data(), &size, raw.data(), uLong(raw.size()), 9),
            Z_OK);
  out.resize(size);
  return out;
}

int paeth(int a, int b, int c) {
  int p = a + b - c;
  int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
}

/// Filters unfiltered rows (`rowBytes` each) with the given per-row filter
/// types (cycled), prefixing each row with its type byte.
Bytes filterRows(const Bytes &rows, size_t rowBytes, size_t bpp,
                 const std::vector<int> &filters) {
  Bytes out;
  size_t height = rows.size() / rowBytes;
  Bytes zero(rowBytes, 0);
  for (size_t y = 0; y < height; ++y) {
    const uint8_t *x = rows.data() + y * rowBytes;
    const uint8_t *prev = y ? x - rowBytes : zero.data();
    int f = filters.empty() ? 0 : filters[y % filters.size()];
    out.push_back(uint8_t(f));
    for (size_t i = 0; i < rowBytes; ++i) {
      int a = i >= bpp ? x[i - bpp] : 0, b = prev[i],
          c = i >= bpp ? prev[i - bpp] : 0;
      int pred = 0;
      switch (f) {
      case 1:
        pred = a;
        break;
      case 2:
        pred = b;
        break;
      case 3:
        pred = (a + b) / 2;
        break;
      case 4:
        pred = paeth(a, b, c);
        break;
      default:
        break;
      }
      out.push_back(uint8_t(x[i] - pred));
    }
  }
  return out;
}

struct PngSpec {
  uint32_t width = 1, height = 1;
  int depth = 8, colorType = 0;
  Bytes rows;               // unfiltered, packed, no filter bytes
  std::vector<int> filters; // cycled over the rows
  Bytes palette;            // RGB triples (colour type 3)
  size_t idatPieces = 1;    // IDAT chunks the stream is split into
};

int samplesPerPixel(int colorType) {
  switch (colorType) {
  case 2:
    return 3;
  case 4:
    return 2;
  case 6:
    return 4;
  default:
    return 1;
  }
}

Bytes makePng(const PngSpec &s) {
  Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  putChunk(png, "IHDR", ihdr(s.width, s.height, s.depth, s.colorType));
  if (!s.palette.empty())
    putChunk(png, "PLTE", s.palette);
  size_t bits = size_t(samplesPerPixel(s.colorType)) * s.depth;
  size_t rowBytes = (s.width * bits + 7) / 8;
  Bytes z = zlibCompress(
      filterRows(s.rows, rowBytes, std::max<size_t>(1, bits / 8), s.filters));
  size_t pieces = std::max<size_t>(1, s.idatPieces);
  for (size_t i = 0; i < pieces; ++i) {
    size_t begin = z.size() * i / pieces, end = z.size() * (i + 1) / pieces;
    putChunk(png, "IDAT", Bytes(z.begin() + begin, z.begin() + end));
  }
  putChunk(png, "IEND", {});
  return png;
}

/// A PNG made of the given chunk bodies after the signature (no IEND added).
Bytes rawPng(const std::vector<std::pair<std::string, Bytes>> &chunks) {
  Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  for (const auto &c : chunks)
    putChunk(png, c.first.c_str(), c.second);
  return png;
}

Bytes str(const std::string &s) { return Bytes(s.begin(), s.end()); }

Image decodeOk(const Bytes &bytes) {
  Image image;
  std::string error;
  EXPECT_TRUE(decodeImage(bytes.data(), bytes.size(), image, &error)) << error;
  return image;
}

std::string decodeError(const Bytes &bytes) {
  Image image;
  std::string error;
  EXPECT_FALSE(decodeImage(bytes.data(), bytes.size(), image, &error));
  EXPECT_FALSE(error.empty());
  return error;
}

#define EXPECT_DECODE_ERROR(bytes, substring)                                  \
  EXPECT_NE(decodeError(bytes).find(substring), std::string::npos)             \
      << "got: " << decodeError(bytes)

Bytes randomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes b(n);
  for (auto &v : b)
    v = uint8_t(rng());
  return b;
}

std::string tempPath(const std::string &name) {
  const char *dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/vmoe_image_test_" +
         std::to_string(getpid()) + "_" + name;
}

void writeFile(const std::string &path, const Bytes &bytes) {
  FILE *f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
}

Image makeImage(int64_t h, int64_t w, int64_t c, const Bytes &pixels) {
  Image image;
  image.height = h;
  image.width = w;
  image.channels = c;
  image.pixels = pixels;
  return image;
}

//===----------------------------------------------------------------------===//
// PNG decoding
//===----------------------------------------------------------------------===//

TEST(PngTest, Gray8Exact) {
  PngSpec s;
  s.width = 3;
  s.height = 2;
  s.rows = {0, 1, 2, 128, 254, 255};
  Image image = decodeOk(makePng(s));
  EXPECT_EQ(image.height, 2);
  EXPECT_EQ(image.width, 3);
  EXPECT_EQ(image.channels, 1);
  EXPECT_EQ(image.pixels, s.rows);
}

TEST(PngTest, EveryFilterTypeRgb8) {
  PngSpec s;
  s.width = 7;
  s.height = 6;
  s.colorType = 2;
  s.rows = randomBytes(7 * 6 * 3, 1);
  // Each filter alone, then all five mixed row by row.
  for (int f = 0; f <= 4; ++f) {
    s.filters = {f};
    EXPECT_EQ(decodeOk(makePng(s)).pixels, s.rows) << "filter " << f;
  }
  s.filters = {0, 1, 2, 3, 4, 4};
  Image image = decodeOk(makePng(s));
  EXPECT_EQ(image.channels, 3);
  EXPECT_EQ(image.pixels, s.rows);
}

TEST(PngTest, EveryFilterTypeWideAndNarrowPixels) {
  // bpp 8 (RGBA 16-bit), bpp 2 (gray 16-bit), bpp 1 with sub-byte pixels.
  struct Case {
    int depth, colorType;
    uint32_t width;
  } cases[] = {{16, 6, 5}, {16, 0, 5}, {2, 0, 11}, {4, 3, 9}};
  for (const Case &c : cases) {
    PngSpec s;
    s.width = c.width;
    s.height = 5;
    s.depth = c.depth;
    s.colorType = c.colorType;
    size_t bits = size_t(samplesPerPixel(c.colorType)) * c.depth;
    size_t rowBytes = (c.width * bits + 7) / 8;
    s.rows = randomBytes(rowBytes * s.height, 7);
    if (c.colorType == 3) {
      s.palette = randomBytes(16 * 3, 8);
    }
    s.filters = {0, 1, 2, 3, 4};
    Image mixed = decodeOk(makePng(s));
    for (int f = 0; f <= 4; ++f) {
      s.filters = {f};
      EXPECT_EQ(decodeOk(makePng(s)).pixels, mixed.pixels)
          << "depth " << c.depth << " colour type " << c.colorType << " filter "
          << f;
    }
    // Against the unfiltered data.
    ASSERT_EQ(mixed.height, 5);
    for (int64_t y = 0; y < 5; ++y)
      for (int64_t x = 0; x < int64_t(c.width); ++x) {
        const uint8_t *row = s.rows.data() + y * rowBytes;
        const uint8_t *px =
            mixed.pixels.data() + (y * c.width + x) * mixed.channels;
        if (c.depth == 16 && c.colorType == 6) {
          EXPECT_EQ(px[0], row[8 * x]);
          EXPECT_EQ(px[1], row[8 * x + 2]);
          EXPECT_EQ(px[2], row[8 * x + 4]);
        } else if (c.depth == 16) {
          EXPECT_EQ(px[0], row[2 * x]);
        } else if (c.depth == 2) {
          unsigned v = (row[x / 4] >> (6 - 2 * (x % 4))) & 3;
          EXPECT_EQ(px[0], v * 85);
        } else {
          unsigned v = (row[x / 2] >> (4 - 4 * (x % 2))) & 15;
          EXPECT_EQ(px[0], s.palette[3 * v]);
          EXPECT_EQ(px[1], s.palette[3 * v + 1]);
          EXPECT_EQ(px[2], s.palette[3 * v + 2]);
        }
      }
  }
}

TEST(PngTest, SixteenBitKeepsHighByte) {
  PngSpec s;
  s.width = 3;
  s.depth = 16;
  s.rows = {0x00, 0xff, 0x80, 0x00, 0xff, 0xff};
  EXPECT_EQ(decodeOk(makePng(s)).pixels, (Bytes{0x00, 0x80, 0xff}));
  s.colorType = 2;
  s.width = 1;
  EXPECT_EQ(decodeOk(makePng(s)).pixels, (Bytes{0x00, 0x80, 0xff}));
}

TEST(PngTest, AlphaIsDropped) {
  PngSpec s;
  s.width = 2;
  s.colorType = 4; // gray + alpha
  s.rows = {10, 255, 20, 0};
  Image ga = decodeOk(makePng(s));
  EXPECT_EQ(ga.channels, 1);
  EXPECT_EQ(ga.pixels, (Bytes{10, 20}));
  s.depth = 16;
  s.rows = {10, 1, 255, 255, 20, 2, 0, 0};
  EXPECT_EQ(decodeOk(makePng(s)).pixels, (Bytes{10, 20}));
  s.colorType = 6; // RGBA
  s.depth = 8;
  s.rows = {1, 2, 3, 0, 4, 5, 6, 128};
  Image rgba = decodeOk(makePng(s));
  EXPECT_EQ(rgba.channels, 3);
  EXPECT_EQ(rgba.pixels, (Bytes{1, 2, 3, 4, 5, 6}));
}

TEST(PngTest, PaletteWithTransparencyIgnored) {
  PngSpec s;
  s.width = 4;
  s.height = 1;
  s.colorType = 3;
  s.palette = {255, 0, 0, 0, 255, 0, 0, 0, 255};
  s.rows = {2, 0, 1, 2};
  Bytes png = makePng(s);
  // A tRNS chunk after PLTE: alpha is dropped, the colours stay.
  Bytes withTrns(png.begin(), png.begin() + 8 + 25 + 21);
  putChunk(withTrns, "tRNS", {0, 128, 255});
  withTrns.insert(withTrns.end(), png.begin() + 8 + 25 + 21, png.end());
  Bytes want = {0, 0, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255};
  EXPECT_EQ(decodeOk(png).pixels, want);
  Image image = decodeOk(withTrns);
  EXPECT_EQ(image.channels, 3);
  EXPECT_EQ(image.pixels, want);
}

TEST(PngTest, SubBytePalette) {
  for (int depth : {1, 2, 4}) {
    PngSpec s;
    s.width = 5;
    s.height = 2;
    s.colorType = 3;
    s.depth = depth;
    s.palette = {0, 0, 0, 10, 20, 30};
    // Indices 1,0,1,1,0 / 0,1,0,0,1 packed MSB first.
    unsigned idx[2][5] = {{1, 0, 1, 1, 0}, {0, 1, 0, 0, 1}};
    size_t rowBytes = (5 * depth + 7) / 8;
    s.rows.assign(2 * rowBytes, 0);
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 5; ++x) {
        size_t bit = size_t(x) * depth;
        s.rows[y * rowBytes + bit / 8] |=
            uint8_t(idx[y][x] << (8 - depth - bit % 8));
      }
    Image image = decodeOk(makePng(s));
    ASSERT_EQ(image.pixels.size(), 30u);
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 5; ++x)
        EXPECT_EQ(image.pixels[(y * 5 + x) * 3 + 1], idx[y][x] ? 20 : 0)
            << "depth " << depth;
  }
}

TEST(PngTest, SubByteGrayScaledTo255) {
  PngSpec s;
  s.width = 4;
  s.depth = 2;
  s.rows = {0x1b}; // 0, 1, 2, 3
  EXPECT_EQ(decodeOk(makePng(s)).pixels, (Bytes{0, 85, 170, 255}));
  s.depth = 4;
  s.width = 3;
  s.rows = {0x0f, 0x70}; // 0, 15, 7
  EXPECT_EQ(decodeOk(makePng(s)).pixels, (Bytes{0, 255, 119}));
  s.depth = 1;
  s.width = 9;
  s.rows = {0xa5, 0x80}; // 1,0,1,0,0,1,0,1 then 1
  EXPECT_EQ(decodeOk(makePng(s)).pixels,
            (Bytes{255, 0, 255, 0, 0, 255, 0, 255, 255}));
}

TEST(PngTest, SplitIdatAndAncillaryChunks) {
  PngSpec s;
  s.width = 9;
  s.height = 8;
  s.colorType = 2;
  s.rows = randomBytes(9 * 8 * 3, 3);
  s.filters = {4, 3, 2, 1, 0};
  for (size_t pieces : {2, 3, 7, 50}) {
    s.idatPieces = pieces;
    EXPECT_EQ(decodeOk(makePng(s)).pixels, s.rows) << pieces << " IDATs";
  }
  // One IDAT per byte, zero-length IDATs, ancillary chunks and data after
  // IEND.
  s.idatPieces = 1;
  Bytes one = makePng(s);
  Bytes z(one.begin() + 8 + 25 + 8, one.end() - 12 - 4);
  Bytes png(one.begin(), one.begin() + 8 + 25);
  putChunk(png, "tEXt", str(std::string("Comment\0hello", 13)));
  putChunk(png, "gAMA", {0, 0, 0xb1, 0x8f});
  putChunk(png, "IDAT", {});
  for (uint8_t b : z)
    putChunk(png, "IDAT", {b});
  putChunk(png, "IDAT", {});
  putChunk(png, "tIME", {7, 0xe8, 1, 1, 0, 0, 0});
  putChunk(png, "IEND", {});
  png.push_back(0xde);
  png.push_back(0xad);
  EXPECT_EQ(decodeOk(png).pixels, s.rows);
}

//===----------------------------------------------------------------------===//
// Netpbm decoding
//===----------------------------------------------------------------------===//

TEST(PnmTest, BinaryPgmAndPpm) {
  Bytes pgm = str("P5\n# a comment\n3 2\n255\n");
  Bytes px = {0, 1, 2, 128, 254, 255};
  pgm.insert(pgm.end(), px.begin(), px.end());
  Image g = decodeOk(pgm);
  EXPECT_EQ(g.height, 2);
  EXPECT_EQ(g.width, 3);
  EXPECT_EQ(g.channels, 1);
  EXPECT_EQ(g.pixels, px);

  Bytes ppm = str("P6 2 1 255 ");
  Bytes rgb = {1, 2, 3, 250, 251, 252};
  ppm.insert(ppm.end(), rgb.begin(), rgb.end());
  ppm.push_back(99); // trailing data is ignored
  Image c = decodeOk(ppm);
  EXPECT_EQ(c.channels, 3);
  EXPECT_EQ(c.pixels, rgb);

  // A comment right after the magic, CRLF line ends.
  Bytes crlf = str("P5#made by hand\r\n1 1\r\n255\n\x07");
  EXPECT_EQ(decodeOk(crlf).pixels, (Bytes{7}));
}

TEST(PnmTest, MaxvalIsScaled) {
  // 16-bit big-endian samples, scaled with rounding.
  Bytes pgm = str("P5\n4 1\n65535\n");
  Bytes px = {0x00, 0x00, 0xff, 0xff, 0x80, 0x00, 0x00, 0x81};
  pgm.insert(pgm.end(), px.begin(), px.end());
  // 32768 * 255 / 65535 = 127.50 -> 128; 129 * 255 / 65535 = 0.50 -> 1.
  EXPECT_EQ(decodeOk(pgm).pixels, (Bytes{0, 255, 128, 1}));
  Bytes small = str("P5 3 1 15\n");
  small.insert(small.end(), {0, 7, 15});
  EXPECT_EQ(decodeOk(small).pixels, (Bytes{0, 119, 255})); // 7*17
}

TEST(PnmTest, AsciiForms) {
  Image g = decodeOk(str("P2\n# gray\n2 2\n255\n0 10\n200 255\n"));
  EXPECT_EQ(g.channels, 1);
  EXPECT_EQ(g.pixels, (Bytes{0, 10, 200, 255}));
  Image c = decodeOk(str("P3 1 2 100 0 50 100\n100 100 100"));
  EXPECT_EQ(c.channels, 3);
  EXPECT_EQ(c.pixels, (Bytes{0, 128, 255, 255, 255, 255}));
}

TEST(ImageFormatTest, DetectsByMagic) {
  Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  EXPECT_EQ(detectImageFormat(png.data(), png.size()), ImageFormat::Png);
  EXPECT_EQ(detectImageFormat(png.data(), 7), ImageFormat::Unknown);
  Bytes pgm = str("P5\n");
  EXPECT_EQ(detectImageFormat(pgm.data(), pgm.size()), ImageFormat::Pnm);
  Bytes npy = str("\x93NUMPY\x01\x00");
  EXPECT_EQ(detectImageFormat(npy.data(), npy.size()), ImageFormat::Unknown);
  Bytes text = str("P5x");
  EXPECT_EQ(detectImageFormat(text.data(), text.size()), ImageFormat::Unknown);
}

//===----------------------------------------------------------------------===//
// Channels, resize, value range
//===----------------------------------------------------------------------===//

TEST(ConvertTest, GrayToRgbReplicates) {
  Image out;
  std::string error;
  ASSERT_TRUE(convertChannels(makeImage(1, 2, 1, {7, 200}), 3, out, &error));
  EXPECT_EQ(out.channels, 3);
  EXPECT_EQ(out.pixels, (Bytes{7, 7, 7, 200, 200, 200}));
}

TEST(ConvertTest, RgbToGrayBt601Rounded) {
  Image out;
  std::string error;
  // 255*.299 = 76.245; 255*.587 = 149.685; 255*.114 = 29.07;
  // 10*.299+20*.587+30*.114 = 18.15; 1*.299+0*.587+1*.114 = 0.413;
  // 2*.299+0+2*.114 = 0.826; 1,1,... white 255.
  ASSERT_TRUE(convertChannels(
      makeImage(1, 7, 3, {255, 0, 0, 0, 255, 0, 0, 0,   255, 10, 20,
                          30,  1, 0, 1, 2,   0, 2, 255, 255, 255}),
      1, out, &error));
  EXPECT_EQ(out.channels, 1);
  EXPECT_EQ(out.pixels, (Bytes{76, 150, 29, 18, 0, 1, 255}));
  ASSERT_TRUE(convertChannels(makeImage(1, 1, 3, {1, 2, 3}), 3, out, &error));
  EXPECT_EQ(out.pixels, (Bytes{1, 2, 3}));
  EXPECT_FALSE(convertChannels(makeImage(1, 1, 3, {1, 2, 3}), 4, out, &error));
  EXPECT_NE(error.find("only 1 or 3"), std::string::npos) << error;
}

TEST(ResizeTest, Upscale2x2To4x4) {
  // TF2 bilinear, half-pixel centers: scale 0.5, source x = (i + .5)/2 - .5
  // = -.25, .25, .75, 1.25, clamped; rows [0 100] -> [0 25 75 100] and
  // [200 40] -> [200 160 80 40]; vertical weights the same; truncated.
  Image out;
  std::string error;
  ASSERT_TRUE(
      resizeBilinear(makeImage(2, 2, 1, {0, 100, 200, 40}), 4, 4, out, &error))
      << error;
  EXPECT_EQ(out.height, 4);
  EXPECT_EQ(out.width, 4);
  EXPECT_EQ(out.pixels, (Bytes{0, 25, 75, 100,   //
                               50, 58, 76, 85,   // 58.75 -> 58
                               150, 126, 78, 55, // 126.25, 78.75
                               200, 160, 80, 40}));
}

TEST(ResizeTest, Downscale4x4To3x3) {
  // scale 4/3: source coordinates 1/6, 1.5, 2.8333 (weights 1/6, .5, 5/6).
  // E.g. (0,0): rows 0,1 cols 0,1: 10 + 40/6 = 16.67 and 0 + 100/6 = 16.67
  // -> 16; (1,1): (100+30)/2 = 65, (128+64)/2 = 96 -> 80.5 -> 80.
  Image out;
  std::string error;
  ASSERT_TRUE(resizeBilinear(makeImage(4, 4, 1,
                                       {10, 50, 200, 255, //
                                        0, 100, 30, 70,   //
                                        255, 128, 64, 32, //
                                        17, 99, 180, 5}),
                             3, 3, out, &error))
      << error;
  EXPECT_EQ(out.pixels, (Bytes{16, 115, 215, 125, 80, 50, 64, 132, 34}));
}

TEST(ResizeTest, RgbNonSquareAndIdentity) {
  Image in =
      makeImage(2, 2, 3, {0, 255, 10, 255, 0, 20, 255, 0, 30, 0, 255, 40});
  Image out;
  std::string error;
  ASSERT_TRUE(resizeBilinear(in, 3, 5, out, &error)) << error;
  EXPECT_EQ(out.channels, 3);
  // Channel 0 is [[0 255] [255 0]]: x weights at -.3, .1, .5, .9, 1.3 and y
  // at -1/6, .5, 7/6.
  Bytes c0;
  for (size_t i = 0; i < out.pixels.size(); i += 3)
    c0.push_back(out.pixels[i]);
  EXPECT_EQ(c0, (Bytes{0, 25, 127, 229, 255, 127, 127, 127, 127, 127, 255, 229,
                       127, 25, 0}));
  ASSERT_TRUE(resizeBilinear(in, 2, 2, out, &error));
  EXPECT_EQ(out.pixels, in.pixels);
  EXPECT_FALSE(resizeBilinear(in, 0, 2, out, &error));
}

TEST(ValueRangeTest, MapsToMinusOneOne) {
  std::vector<float> v;
  toValueRange(makeImage(1, 4, 1, {0, 255, 128, 51}), v);
  ASSERT_EQ(v.size(), 4u);
  EXPECT_EQ(v[0], -1.0f);
  EXPECT_EQ(v[1], 1.0f);
  EXPECT_EQ(v[2], 128.0f / 255.0f * 2.0f - 1.0f);
  EXPECT_EQ(v[3], 51.0f / 255.0f * 2.0f - 1.0f);
}

TEST(LoadImageForModelTest, GrayPngToRgbModelInput) {
  PngSpec s;
  s.width = 2;
  s.height = 2;
  s.rows = {0, 100, 200, 40};
  std::string path = tempPath("load.png");
  writeFile(path, makePng(s));
  std::vector<float> v;
  std::string error;
  ASSERT_TRUE(loadImageForModel(path, 4, 4, 3, v, &error)) << error;
  Bytes want = {0,   25,  75, 100, 50,  58,  76, 85,
                150, 126, 78, 55,  200, 160, 80, 40};
  ASSERT_EQ(v.size(), 48u);
  for (size_t i = 0; i < 16; ++i)
    for (size_t k = 0; k < 3; ++k)
      EXPECT_EQ(v[3 * i + k], float(want[i]) / 255.0f * 2.0f - 1.0f);
  // Same size and channels: the pixels themselves.
  ASSERT_TRUE(loadImageForModel(path, 2, 2, 1, v, &error)) << error;
  EXPECT_EQ(v, (std::vector<float>{-1.0f, 100.0f / 255.0f * 2.0f - 1.0f,
                                   200.0f / 255.0f * 2.0f - 1.0f,
                                   40.0f / 255.0f * 2.0f - 1.0f}));
  EXPECT_TRUE(isImageFile(path));
  EXPECT_FALSE(loadImageForModel(path, 2, 2, 4, v, &error));
  EXPECT_NE(error.find("4-channel"), std::string::npos) << error;
  std::remove(path.c_str());

  std::string ppmPath = tempPath("load.ppm");
  Bytes ppm = str("P6 1 1 255\n");
  ppm.insert(ppm.end(), {255, 0, 0});
  writeFile(ppmPath, ppm);
  ASSERT_TRUE(loadImageForModel(ppmPath, 1, 1, 1, v, &error)) << error;
  EXPECT_EQ(v, (std::vector<float>{76.0f / 255.0f * 2.0f - 1.0f}));
  std::remove(ppmPath.c_str());

  EXPECT_FALSE(loadImageForModel(tempPath("missing.png"), 2, 2, 3, v, &error));
  EXPECT_NE(error.find("cannot open"), std::string::npos) << error;
  EXPECT_FALSE(isImageFile(tempPath("missing.png")));
}

//===----------------------------------------------------------------------===//
// Malformed files
//===----------------------------------------------------------------------===//

Bytes validPng() {
  PngSpec s;
  s.width = 5;
  s.height = 4;
  s.colorType = 2;
  s.rows = randomBytes(5 * 4 * 3, 11);
  s.filters = {0, 1, 2, 3, 4};
  return makePng(s);
}

TEST(MalformedTest, BadMagic) {
  EXPECT_DECODE_ERROR(str("GIF89a......"), "unrecognised magic");
  EXPECT_DECODE_ERROR(Bytes{}, "unrecognised magic");
  Image image;
  std::string error;
  Bytes png = validPng();
  png[1] = 'Q';
  EXPECT_FALSE(decodePng(png.data(), png.size(), image, &error));
  EXPECT_NE(error.find("bad signature"), std::string::npos) << error;
  EXPECT_FALSE(decodePnm(png.data(), png.size(), image, &error));
  EXPECT_NE(error.find("bad magic"), std::string::npos) << error;
}

TEST(MalformedTest, TruncatedPngAtSeveralCutPoints) {
  Bytes png = validPng();
  // After the signature, inside IHDR's header and body, between chunks,
  // inside IDAT, before IEND and inside IEND's type: each is a truncation,
  // the last two although every pixel has arrived.
  for (size_t cut : {size_t(8), size_t(12), size_t(20), size_t(33), size_t(50),
                     png.size() - 12, png.size() - 5})
    EXPECT_DECODE_ERROR(Bytes(png.begin(), png.begin() + cut), "truncated")
        << "cut at " << cut;
  // Every prefix fails with a message, and nothing crashes; libspng does not
  // read the CRC of IEND (a chunk without data), so the last four bytes may
  // be missing.
  for (size_t n = 0; n < png.size() - 4; ++n)
    decodeError(Bytes(png.begin(), png.begin() + n));
  for (size_t n = png.size() - 4; n <= png.size(); ++n)
    EXPECT_EQ(decodeOk(Bytes(png.begin(), png.begin() + n)).pixels,
              decodeOk(png).pixels);
}

TEST(MalformedTest, BadCrc) {
  PngSpec s;
  s.rows = {1};
  Bytes png = makePng(s);
  png[8 + 8 + 13] ^= 0xff; // IHDR's CRC
  EXPECT_DECODE_ERROR(png, "CRC mismatch");
  png = makePng(s);
  png[8 + 25 + 8] ^= 0x01; // first IDAT byte: the zlib header breaks first
  EXPECT_DECODE_ERROR(png, "IDAT stream error");
  // The CRC of the IDAT itself.
  png = makePng(s);
  png[png.size() - 12 - 1] ^= 0x01;
  EXPECT_DECODE_ERROR(png, "CRC mismatch");
}

TEST(MalformedTest, BadDimensions) {
  Bytes idat = zlibCompress({0, 0});
  auto png = [&](uint32_t w, uint32_t h) {
    return rawPng({{"IHDR", ihdr(w, h, 8, 0)}, {"IDAT", idat}, {"IEND", {}}});
  };
  EXPECT_DECODE_ERROR(png(0, 1), "invalid image width");
  EXPECT_DECODE_ERROR(png(1, 0), "invalid image height");
  EXPECT_DECODE_ERROR(png(20000, 1), "per side");
  EXPECT_DECODE_ERROR(png(16384, 4097), "67108864 pixels");
  EXPECT_DECODE_ERROR(png(0x80000000u, 1), "invalid image width");
  EXPECT_DECODE_ERROR(str("P5 0 1 255\n"), "at least 1");
  EXPECT_DECODE_ERROR(str("P6 100000 100000 255\n"), "per side");
  EXPECT_DECODE_ERROR(str("P6 16384 16384 255\n"), "67108864 pixels");
  EXPECT_DECODE_ERROR(str("P5 99999999999999999999 1 255\n"), "too large");
}

TEST(MalformedTest, DecompressionBombIsRefusedCheaply) {
  // A 16384 x 4096 RGB image (the pixel limit) whose IDAT holds only a few
  // rows: refused after those rows, with memory for those rows only (the
  // decoder's buffer grows with the rows decoded).
  Bytes rows(3 * (16384 * 3 + 1), 0);
  Bytes png = rawPng({{"IHDR", ihdr(16384, 4096, 8, 2)},
                      {"IDAT", zlibCompress(rows)},
                      {"IEND", {}}});
  EXPECT_DECODE_ERROR(png, "of 4096: IDAT stream too short");
}

/// A gray 8-bit Adam7-interlaced PNG of `pixels` (filter type 0 everywhere).
Bytes interlacedGray8(uint32_t width, uint32_t height, const Bytes &pixels) {
  static const int pass[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8},
                                 {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2},
                                 {0, 1, 1, 2}}; // x0, y0, dx, dy
  Bytes raw;
  for (const auto &p : pass)
    for (uint32_t y = p[1]; y < height; y += p[3]) {
      if (uint32_t(p[0]) >= width)
        break;
      raw.push_back(0);
      for (uint32_t x = p[0]; x < width; x += p[2])
        raw.push_back(pixels[y * width + x]);
    }
  return rawPng({{"IHDR", ihdr(width, height, 8, 0, 1)},
                 {"IDAT", zlibCompress(raw)},
                 {"IEND", {}}});
}

TEST(PngTest, InterlacedImagesAreDeinterlaced) {
  for (uint32_t side : {1u, 5u, 9u, 17u}) {
    Bytes pixels = randomBytes(side * (side + 2), side);
    Image image = decodeOk(interlacedGray8(side, side + 2, pixels));
    EXPECT_EQ(image.width, side);
    EXPECT_EQ(image.height, side + 2);
    EXPECT_EQ(image.pixels, pixels) << side;
  }
}

TEST(MalformedTest, InvalidHeaderFields) {
  Bytes idat = zlibCompress({0, 0});
  auto png = [&](int depth, int colorType, int interlace) {
    return rawPng({{"IHDR", ihdr(1, 1, depth, colorType, interlace)},
                   {"IDAT", idat},
                   {"IEND", {}}});
  };
  EXPECT_DECODE_ERROR(png(8, 0, 2), "invalid interlace method");
  EXPECT_DECODE_ERROR(png(4, 2, 0), "invalid bit depth");
  EXPECT_DECODE_ERROR(png(16, 3, 0), "invalid bit depth");
  EXPECT_DECODE_ERROR(png(3, 0, 0), "invalid bit depth");
  EXPECT_DECODE_ERROR(png(8, 5, 0), "invalid color type");
  Bytes h = ihdr(1, 1, 8, 0);
  h[10] = 1;
  EXPECT_DECODE_ERROR(rawPng({{"IHDR", h}, {"IDAT", idat}, {"IEND", {}}}),
                      "invalid compression method");
  h = ihdr(1, 1, 8, 0);
  h.push_back(0);
  EXPECT_DECODE_ERROR(rawPng({{"IHDR", h}, {"IDAT", idat}, {"IEND", {}}}),
                      "invalid IHDR chunk size");
}

TEST(MalformedTest, WrongIdatSize) {
  auto png = [&](const Bytes &raw) {
    return rawPng({{"IHDR", ihdr(2, 2, 8, 0)},
                   {"IDAT", zlibCompress(raw)},
                   {"IEND", {}}});
  };
  EXPECT_EQ(decodeOk(png({0, 1, 2, 0, 3, 4})).pixels, (Bytes{1, 2, 3, 4}));
  EXPECT_DECODE_ERROR(png({0, 1, 2, 0, 3}),
                      "row 1 of 2: IDAT stream too short");
  // A zlib stream cut off in the middle, a wrong checksum, no zlib at all.
  Bytes good = zlibCompress({0, 1, 2, 0, 3, 4});
  Bytes cut(good.begin(), good.begin() + 4);
  EXPECT_DECODE_ERROR(
      rawPng({{"IHDR", ihdr(2, 2, 8, 0)}, {"IDAT", cut}, {"IEND", {}}}),
      "IDAT stream");
  Bytes badAdler = good;
  badAdler.back() ^= 1;
  EXPECT_DECODE_ERROR(
      rawPng({{"IHDR", ihdr(2, 2, 8, 0)}, {"IDAT", badAdler}, {"IEND", {}}}),
      "IDAT stream error");
  EXPECT_DECODE_ERROR(
      rawPng(
          {{"IHDR", ihdr(2, 2, 8, 0)}, {"IDAT", {1, 2, 3, 4}}, {"IEND", {}}}),
      "IDAT stream error");
}

TEST(MalformedTest, ChunkStructure) {
  Bytes idat = zlibCompress({0, 7});
  Bytes h = ihdr(1, 1, 8, 0);
  EXPECT_DECODE_ERROR(rawPng({{"IDAT", idat}, {"IEND", {}}}),
                      "invalid IHDR chunk size");
  EXPECT_DECODE_ERROR(rawPng({{"IHDR", h}, {"IEND", {}}}),
                      "invalid chunk position");
  EXPECT_DECODE_ERROR(rawPng({{"IHDR", h}, {"IHDR", h}}),
                      "invalid chunk position");
  EXPECT_DECODE_ERROR(rawPng({{"IHDR", h},
                              {"IDAT", {idat.begin(), idat.begin() + 3}},
                              {"tEXt", str("a\0b")},
                              {"IDAT", {idat.begin() + 3, idat.end()}},
                              {"IEND", {}}}),
                      "IDAT stream too short");
  EXPECT_DECODE_ERROR(
      rawPng({{"IHDR", h}, {"XXXX", {}}, {"IDAT", idat}, {"IEND", {}}}),
      "unknown critical chunk");
  // A length beyond 2^31 - 1.
  Bytes png = rawPng({{"IHDR", h}});
  putBe32(png, 0x80000000u);
  png.insert(png.end(), {'I', 'D', 'A', 'T', 0, 0, 0, 0});
  EXPECT_DECODE_ERROR(png, "chunk exceeds maximum standard length");
  // Filters: type 5 is not one.
  Bytes bad =
      rawPng({{"IHDR", h}, {"IDAT", zlibCompress({5, 7})}, {"IEND", {}}});
  EXPECT_DECODE_ERROR(bad, "invalid scanline filter");
}

TEST(MalformedTest, Palette) {
  Bytes h = ihdr(2, 1, 8, 3);
  Bytes idat = zlibCompress({0, 0, 1});
  EXPECT_DECODE_ERROR(rawPng({{"IHDR", h}, {"IDAT", idat}, {"IEND", {}}}),
                      "missing PLTE");
  EXPECT_DECODE_ERROR(
      rawPng(
          {{"IHDR", h}, {"PLTE", {1, 2, 3, 4}}, {"IDAT", idat}, {"IEND", {}}}),
      "invalid chunk length");
  EXPECT_DECODE_ERROR(
      rawPng({{"IHDR", h}, {"IDAT", idat}, {"PLTE", {1, 2, 3}}, {"IEND", {}}}),
      "missing PLTE");
  // An index past the palette decodes (as libpng does it) to a full image:
  // no read past the palette (ASan, fuzz.image).
  Image image = decodeOk(rawPng({{"IHDR", h},
                                 {"PLTE", {1, 2, 3}},
                                 {"IDAT", zlibCompress({0, 0, 200})},
                                 {"IEND", {}}}));
  EXPECT_EQ(image.pixels.size(), 6u);
  EXPECT_EQ(Bytes(image.pixels.begin(), image.pixels.begin() + 3),
            (Bytes{1, 2, 3}));
}

//===----------------------------------------------------------------------===//
// JPEG (fixtures made with TurboJPEG's encoder)
//===----------------------------------------------------------------------===//

/// Encodes `pixels` (`channels` 1, 3 or 4 = CMYK) as a JPEG.
Bytes encodeJpeg(int width, int height, int channels, const Bytes &pixels,
                 int quality = 100) {
  tjhandle handle = tjInitCompress();
  EXPECT_NE(handle, nullptr);
  unsigned char *jpeg = nullptr;
  unsigned long size = 0;
  int format = channels == 1 ? TJPF_GRAY : channels == 3 ? TJPF_RGB : TJPF_CMYK;
  int subsampling = channels == 1 ? TJSAMP_GRAY : TJSAMP_444;
  EXPECT_EQ(tjCompress2(handle, pixels.data(), width, 0, height, format, &jpeg,
                        &size, subsampling, quality, TJFLAG_ACCURATEDCT),
            0)
      << tjGetErrorStr2(handle);
  Bytes out(jpeg, jpeg + size);
  tjFree(jpeg);
  tjDestroy(handle);
  return out;
}

/// A smooth RGB gradient: JPEG at quality 100 keeps it within a few levels.
Bytes gradient(int width, int height, int channels) {
  Bytes b;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < channels; ++c)
        b.push_back(uint8_t(16 + 8 * x + 5 * y + 40 * c));
  return b;
}

int maxAbsDiff(const Bytes &a, const Bytes &b) {
  EXPECT_EQ(a.size(), b.size());
  int m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    m = std::max(m, std::abs(int(a[i]) - int(b[i])));
  return m;
}

TEST(JpegTest, DecodesRgbAndGray) {
  Bytes rgb = gradient(16, 12, 3);
  Bytes jpeg = encodeJpeg(16, 12, 3, rgb);
  EXPECT_EQ(detectImageFormat(jpeg.data(), jpeg.size()), ImageFormat::Jpeg);
  Image image = decodeOk(jpeg);
  EXPECT_EQ(image.width, 16);
  EXPECT_EQ(image.height, 12);
  EXPECT_EQ(image.channels, 3);
  // YCbCr rounding and quantisation at quality 100.
  EXPECT_LE(maxAbsDiff(image.pixels, rgb), 4);
  Bytes gray = gradient(9, 7, 1); // not a multiple of the 8x8 blocks
  image = decodeOk(encodeJpeg(9, 7, 1, gray));
  EXPECT_EQ(image.channels, 1);
  EXPECT_EQ(image.width, 9);
  EXPECT_LE(maxAbsDiff(image.pixels, gray), 2);
}

TEST(JpegTest, ThroughTheModelPreprocessing) {
  // A JPEG file goes the way of a PNG: gray model input from an RGB file.
  Bytes rgb(2 * 2 * 3, 0);
  for (size_t i = 0; i < rgb.size(); i += 3)
    rgb[i] = 255; // red
  std::string path = tempPath("red.jpg");
  writeFile(path, encodeJpeg(2, 2, 3, rgb));
  EXPECT_TRUE(isImageFile(path));
  std::vector<float> v;
  std::string error;
  ASSERT_TRUE(loadImageForModel(path, 1, 1, 1, v, &error)) << error;
  ASSERT_EQ(v.size(), 1u);
  // BT.601 luma of pure red is 76; JPEG moves it by a level or two.
  EXPECT_NEAR(v[0], 76.0f / 255.0f * 2.0f - 1.0f, 3 * 2.0f / 255.0f);
  std::remove(path.c_str());
}

TEST(MalformedTest, Jpeg) {
  Bytes jpeg = encodeJpeg(16, 16, 3, gradient(16, 16, 3), 90);
  // Every prefix fails with a message (warnings are errors: a cut-off scan
  // is not filled with gray).
  for (size_t n = 3; n < jpeg.size(); ++n)
    EXPECT_NE(decodeError(Bytes(jpeg.begin(), jpeg.begin() + n)).find("JPEG: "),
              std::string::npos)
        << n;
  // Dimensions past the limits, in the frame header (SOF0: FF C0, length,
  // precision, height, width).
  Bytes big = jpeg;
  for (size_t i = 2; i + 8 < big.size(); ++i)
    if (big[i] == 0xff && big[i + 1] == 0xc0) {
      big[i + 5] = 0x40; // height 16385
      big[i + 6] = 0x01;
      break;
    }
  EXPECT_DECODE_ERROR(big, "JPEG: image size 16x16385 exceeds the limit of "
                           "16384 per side");
  EXPECT_DECODE_ERROR(encodeJpeg(8, 8, 4, Bytes(8 * 8 * 4, 9)),
                      "CMYK JPEG images are not supported");
  Bytes garbage = {0xff, 0xd8, 0xff, 0x00, 0x01};
  EXPECT_DECODE_ERROR(garbage, "JPEG: ");
}

TEST(MalformedTest, Pnm) {
  EXPECT_DECODE_ERROR(str("P4 1 1\n\x80"), "PBM bitmaps (P4)");
  EXPECT_DECODE_ERROR(str("P7\nWIDTH 1\n"), "PAM (P7)");
  EXPECT_DECODE_ERROR(str("P5 2"), "truncated header: no height");
  EXPECT_DECODE_ERROR(str("P5 2 2"), "truncated header: no maxval");
  EXPECT_DECODE_ERROR(str("P5 2 x 255\n"), "bad height");
  EXPECT_DECODE_ERROR(str("P5 2 2 255"), "no pixel data");
  EXPECT_DECODE_ERROR(str("P5 2 2 255x"), "expected whitespace after maxval");
  EXPECT_DECODE_ERROR(str("P5 2 2 0\n"), "maxval 0 is out of range");
  EXPECT_DECODE_ERROR(str("P5 2 2 70000\n"), "maxval is at most 65535");
  EXPECT_DECODE_ERROR(
      str("P5 2 2 255\n\1\2\3"),
      "truncated: the pixel data needs 4 bytes, the file has 3");
  EXPECT_DECODE_ERROR(str("P6 1 1 65535\n\1\2\3\4\5"), "needs 6 bytes");
  EXPECT_DECODE_ERROR(str("P5 1 1 15\n\x10"), "sample 16 exceeds maxval 15");
  EXPECT_DECODE_ERROR(str("P5 1 1 1000\n\x03\xe9"),
                      "sample 1001 exceeds maxval 1000");
  EXPECT_DECODE_ERROR(str("P2 2 1 255\n1    "), "ends after 1 of 2 samples");
  EXPECT_DECODE_ERROR(str("P2 2 1 255\n1 x"), "bad sample 1");
  EXPECT_DECODE_ERROR(str("P2 2 1 255\n1 256"), "sample 1 exceeds maxval 255");
  EXPECT_DECODE_ERROR(str("P3 1000 1000 255\n1 2 3"), "cannot fit");
  // Every prefix of a valid PPM fails with a message.
  Bytes ppm = str("P6\n# c\n2 2\n255\n");
  Bytes px = randomBytes(12, 9);
  ppm.insert(ppm.end(), px.begin(), px.end());
  decodeOk(ppm);
  for (size_t n = 0; n < ppm.size(); ++n)
    decodeError(Bytes(ppm.begin(), ppm.begin() + n));
}

TEST(MalformedTest, RandomMutationsNeverCrash) {
  // A small fuzz: flip, insert and delete bytes of valid files; any result
  // is fine as long as it returns, and a failure has a message.
  std::mt19937 rng(1234);
  std::vector<Bytes> seeds = {validPng(), str("P6 2 2 255\n"),
                              str("P2 2 1 255\n0 1\n")};
  seeds[1].insert(seeds[1].end(), 12, 7);
  PngSpec pal;
  pal.width = 9;
  pal.height = 3;
  pal.colorType = 3;
  pal.depth = 2;
  pal.palette = randomBytes(12, 2);
  pal.rows = randomBytes(3 * 3, 4);
  pal.filters = {1, 4, 3};
  seeds.push_back(makePng(pal));
  int decoded = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    Bytes b = seeds[iter % seeds.size()];
    int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits && !b.empty(); ++e) {
      size_t at = rng() % b.size();
      switch (rng() % 3) {
      case 0:
        b[at] ^= uint8_t(1u << (rng() % 8));
        break;
      case 1:
        b.insert(b.begin() + at, uint8_t(rng()));
        break;
      default:
        b.erase(b.begin() + at);
        break;
      }
    }
    Image image;
    std::string error;
    if (decodeImage(b.data(), b.size(), image, &error)) {
      ++decoded;
      EXPECT_EQ(image.pixels.size(),
                size_t(image.height * image.width * image.channels));
    } else {
      EXPECT_FALSE(error.empty());
    }
  }
  EXPECT_GT(decoded, 0);
}

TEST(MalformedTest, MutationsBehindValidCrcsNeverCrash) {
  // Mutations that keep the chunk structure and CRCs valid reach the
  // header checks, zlib, the filters and the palette lookup.
  std::mt19937 rng(99);
  auto rebuild = [&](int depth, int colorType, uint32_t width, uint32_t height,
                     Bytes raw, const Bytes &palette) {
    std::vector<std::pair<std::string, Bytes>> chunks;
    Bytes h = ihdr(width, height, depth, colorType);
    if (rng() % 4 == 0)
      h[rng() % h.size()] ^= uint8_t(1u << (rng() % 8));
    chunks.push_back({"IHDR", h});
    size_t rowLen = raw.size() / height;
    for (size_t r = 0; r < raw.size(); r += rowLen)
      raw[r] = uint8_t(rng() % 5); // valid filter types
    if (!palette.empty())
      chunks.push_back({"PLTE", palette});
    for (int e = int(rng() % 3) - 1; e >= 0; --e)
      raw[rng() % raw.size()] = uint8_t(rng());
    Bytes z = zlibCompress(raw);
    if (rng() % 4 == 0)
      z[rng() % z.size()] ^= uint8_t(1u << (rng() % 8));
    chunks.push_back({"IDAT", z});
    chunks.push_back({"IEND", {}});
    return rawPng(chunks);
  };
  int decoded = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    int kind = iter % 4;
    Bytes png;
    if (kind == 0) // RGB 8, 4 x 3 with filter bytes
      png = rebuild(8, 2, 4, 3, randomBytes(3 * 13, iter), {});
    else if (kind == 1) // palette 4-bit, 5 x 2, 3 entries
      png = rebuild(4, 3, 5, 2, randomBytes(2 * 4, iter), randomBytes(9, 1));
    else if (kind == 2) // gray 16, 3 x 3
      png = rebuild(16, 0, 3, 3, randomBytes(3 * 7, iter), {});
    else // gray 1-bit, 9 x 2
      png = rebuild(1, 0, 9, 2, randomBytes(2 * 3, iter), {});
    Image image;
    std::string error;
    if (decodeImage(png.data(), png.size(), image, &error)) {
      ++decoded;
      EXPECT_EQ(image.pixels.size(),
                size_t(image.height * image.width * image.channels));
    } else {
      EXPECT_FALSE(error.empty());
    }
  }
  EXPECT_GT(decoded, 0);
}

} // namespace
