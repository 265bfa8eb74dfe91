//===- Png.cpp - decode PNG images with libspng ---------------------------===//
//
// libspng (Debian's libspng-dev) checks the chunk structure, the CRCs and
// the zlib stream; this file maps its output to vmoe-run's 8-bit gray or RGB
// and keeps the tools' bounds: the dimensions are checked against the image
// limits before anything is allocated for them, and a non-interlaced image
// is decoded one row at a time into a buffer that grows with the rows
// actually decoded (a few bytes of IDAT cannot claim 200 MB). An interlaced
// image needs its whole buffer before the first pass; it is allocated after
// the dimension check.
//
//===----------------------------------------------------------------------===//

#include "Image.h"

#include "ImageInternal.h"

#ifdef VMOE_HAVE_SPNG
#include <spng.h>
#endif

#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>

namespace vmoe::tools {

using detail::setError;

#ifdef VMOE_HAVE_SPNG
namespace {

struct ContextDeleter {
  void operator()(spng_ctx *ctx) const { spng_ctx_free(ctx); }
};

/// What libspng decodes to: gray stays one channel (16-bit through GA16 so
/// that the high byte is kept, as tf.io.decode_png with dtype uint8 does),
/// the rest becomes RGB8 (palette expanded, alpha and tRNS dropped).
struct Output {
  int format;
  int channels;    // of the Image
  size_t stride;   // bytes per pixel that libspng writes
  size_t pick;     // byte of a pixel's first channel
  size_t channelW; // bytes per channel
};

Output outputFor(const spng_ihdr &ihdr) {
  if (ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE && ihdr.bit_depth <= 8)
    return {SPNG_FMT_G8, 1, 1, 0, 1};
  if (ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE)
    return {SPNG_FMT_GA16, 1, 4, 0, 2};
  if (ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA)
    // RGB8 of a gray pixel repeats the (high byte of the) gray value.
    return {SPNG_FMT_RGB8, 1, 3, 0, 1};
  return {SPNG_FMT_RGB8, 3, 3, 0, 1};
}

/// Takes the image's channels out of what libspng wrote for `pixels`
/// pixels; 16-bit values are host-endian.
void pickChannels(const Output &o, const uint8_t *src, size_t pixels,
                  uint8_t *dst) {
  if (o.stride == size_t(o.channels)) {
    std::copy(src, src + pixels * o.stride, dst);
    return;
  }
  for (size_t i = 0; i < pixels; ++i, src += o.stride)
    for (int c = 0; c < o.channels; ++c) {
      const uint8_t *v = src + o.pick + size_t(c) * o.channelW;
      if (o.channelW == 2) {
        uint16_t sample;
        std::memcpy(&sample, v, 2);
        *dst++ = uint8_t(sample >> 8);
      } else {
        *dst++ = *v;
      }
    }
}

/// libspng's message, and what it means where that is not obvious.
std::string message(int rc) {
  std::string text = spng_strerror(rc);
  if (rc == SPNG_IO_EOF || rc == SPNG_EOF)
    return "truncated: the file ends before the PNG does (" + text + ")";
  if (rc == SPNG_ECHUNK_CRC)
    return "CRC mismatch: " + text;
  return text + " (libspng error " + std::to_string(rc) + ")";
}

} // namespace

bool decodePng(const uint8_t *data, size_t size, Image &out,
               std::string *error) {
  auto fail = [&](const std::string &m) {
    return setError(error, "PNG: " + m);
  };
  if (detectImageFormat(data, size) != ImageFormat::Png)
    return fail("bad signature (not a PNG file)");
  std::unique_ptr<spng_ctx, ContextDeleter> ctx(spng_ctx_new(0));
  if (!ctx)
    return fail("cannot create a libspng decoder");
  // The tools' limits, and at most 16 MB of ancillary chunks (libspng's
  // default is larger than anything vmoe-run needs).
  spng_set_image_limits(ctx.get(), uint32_t(kMaxImageSide),
                        uint32_t(kMaxImageSide));
  spng_set_chunk_limits(ctx.get(), size_t(1) << 24, size_t(1) << 24);
  int rc = spng_set_png_buffer(ctx.get(), data, size);
  spng_ihdr ihdr{};
  if (rc == 0)
    rc = spng_get_ihdr(ctx.get(), &ihdr);
  if (rc == SPNG_EUSER_WIDTH || rc == SPNG_EUSER_HEIGHT)
    return fail("image size exceeds the limit of " +
                std::to_string(kMaxImageSide) + " per side");
  if (rc)
    return fail(message(rc));
  if (!detail::checkDimensions("PNG", ihdr.width, ihdr.height, error))
    return false;
  const Output o = outputFor(ihdr);
  size_t decodedSize = 0;
  rc = spng_decoded_image_size(ctx.get(), o.format, &decodedSize);
  if (rc)
    return fail(message(rc));
  const size_t width = ihdr.width, height = ihdr.height;
  const size_t rowBytes = decodedSize / height;
  std::vector<uint8_t> pixels;
  if (ihdr.interlace_method != SPNG_INTERLACE_NONE) {
    std::vector<uint8_t> decoded(decodedSize);
    rc = spng_decode_image(ctx.get(), decoded.data(), decoded.size(), o.format,
                           0);
    if (rc)
      return fail(message(rc));
    pixels.resize(width * height * size_t(o.channels));
    pickChannels(o, decoded.data(), width * height, pixels.data());
  } else {
    rc = spng_decode_image(ctx.get(), nullptr, 0, o.format,
                           SPNG_DECODE_PROGRESSIVE);
    if (rc)
      return fail(message(rc));
    std::vector<uint8_t> row(rowBytes);
    for (size_t y = 0; y < height; ++y) {
      rc = spng_decode_row(ctx.get(), row.data(), row.size());
      if (rc != 0 && !(rc == SPNG_EOI && y + 1 == height))
        return fail("row " + std::to_string(y) + " of " +
                    std::to_string(height) + ": " + message(rc));
      size_t at = pixels.size();
      pixels.resize(at + width * size_t(o.channels));
      pickChannels(o, row.data(), width, pixels.data() + at);
    }
    // The chunks after the image data, up to IEND: a file cut off after
    // its pixels is still a truncated file.
    rc = spng_decode_chunks(ctx.get());
    if (rc)
      return fail("after the image data: " + message(rc));
  }
  out.height = int64_t(height);
  out.width = int64_t(width);
  out.channels = o.channels;
  out.pixels = std::move(pixels);
  return true;
}
#else
bool decodePng(const uint8_t *, size_t, Image &, std::string *error) {
  return setError(error, "PNG: vmoe-run was built without PNG support "
                         "(libspng was not found when it was configured)");
}
#endif

} // namespace vmoe::tools
