//===- Jpeg.cpp - decode JPEG images with libjpeg-turbo -------------------===//
//
// Through the TurboJPEG API (Debian's libturbojpeg0-dev), with the decoder
// settings of tf.io.decode_jpeg's defaults (accurate integer IDCT, fancy
// upsampling). The header is read and the dimensions are checked against
// the tools' limits before the pixel buffer is allocated; warnings (a
// truncated or corrupt entropy-coded segment) are errors rather than gray
// pixels, and progressive files with an absurd number of scans are refused.
//
//===----------------------------------------------------------------------===//

#include "Image.h"

#include "ImageInternal.h"

#ifdef VMOE_HAVE_TURBOJPEG
#include <turbojpeg.h>
#endif

#include <memory>
#include <utility>

namespace vmoe::tools {

using detail::setError;

#ifdef VMOE_HAVE_TURBOJPEG
namespace {

struct HandleDeleter {
  void operator()(void *handle) const { tjDestroy(handle); }
};

} // namespace

bool decodeJpeg(const uint8_t *data, size_t size, Image &out,
                std::string *error) {
  auto fail = [&](const std::string &m) {
    return setError(error, "JPEG: " + m);
  };
  if (detectImageFormat(data, size) != ImageFormat::Jpeg)
    return fail("bad signature (not a JPEG file)");
  std::unique_ptr<void, HandleDeleter> handle(tjInitDecompress());
  if (!handle)
    return fail(std::string("cannot create a decoder: ") +
                tjGetErrorStr2(nullptr));
  // TurboJPEG takes an unsigned long size.
  if (size > static_cast<unsigned long>(-1))
    return fail("file too large");
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  if (tjDecompressHeader3(handle.get(), data, static_cast<unsigned long>(size),
                          &width, &height, &subsampling, &colorspace) != 0)
    return fail(tjGetErrorStr2(handle.get()));
  if (!detail::checkDimensions("JPEG", width, height, error))
    return false;
  if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK)
    return fail("CMYK JPEG images are not supported");
  const int channels = colorspace == TJCS_GRAY ? 1 : 3;
  std::vector<uint8_t> pixels(size_t(width) * size_t(height) *
                              size_t(channels));
  if (tjDecompress2(handle.get(), data, static_cast<unsigned long>(size),
                    pixels.data(), width, 0, height,
                    channels == 1 ? TJPF_GRAY : TJPF_RGB,
                    TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) != 0)
    return fail(tjGetErrorStr2(handle.get()));
  out.height = height;
  out.width = width;
  out.channels = channels;
  out.pixels = std::move(pixels);
  return true;
}
#else
bool decodeJpeg(const uint8_t *, size_t, Image &, std::string *error) {
  return setError(error,
                  "JPEG: vmoe-run was built without JPEG support "
                  "(libjpeg-turbo was not found when it was configured)");
}
#endif

} // namespace vmoe::tools
