//===- Npz.cpp - numpy .npz archives and .npy arrays ----------------------===//
//
// ZIP layout: PKWARE APPNOTE.TXT 6.3.x, sections 4.3.7 (local file header),
// 4.3.12 (central directory header), 4.3.14-4.3.16 (ZIP64 end of central
// directory record and locator, end of central directory record), 4.5.3
// (ZIP64 extended information extra field). .npy layout: numpy's
// doc/neps/nep-0001-npy-format.rst.
//
//===----------------------------------------------------------------------===//

#include "vmoe/readers/Npz.h"

#include "Support.h"

#include <algorithm>
#include <set>
#include <zlib.h>

namespace vmoe::readers {

using detail::load16;
using detail::load32;
using detail::load64;
using detail::quote;

namespace {

enum class Outcome { Ok, Skipped, Failed };

// ---- .npy
// ----------------------------------------------------------------------

/// The header dict of a .npy: {'descr': '<f4', 'fortran_order': False,
/// 'shape': (2, 3), } (a Python literal).
class NpyHeaderParser {
public:
  NpyHeaderParser(std::string_view text, uint32_t maxRank)
      : s_(text), maxRank_(maxRank) {}

  bool parse(std::string &descr, bool &fortran, std::vector<int64_t> &shape,
             std::string &why) {
    bool haveDescr = false, haveFortran = false, haveShape = false;
    space();
    if (!eat('{'))
      return bad("the header is not a dict", why);
    for (;;) {
      space();
      if (eat('}'))
        break;
      std::string key;
      if (!quoted(key))
        return bad("expected a quoted key in the header dict", why);
      space();
      if (!eat(':'))
        return bad("expected ':' in the header dict", why);
      space();
      if (key == "descr") {
        if (haveDescr)
          return bad("'descr' is given twice", why);
        haveDescr = true;
        if (peek() == '[')
          return bad("structured dtypes are not supported", why);
        if (!quoted(descr))
          return bad("'descr' is not a string", why);
      } else if (key == "fortran_order") {
        if (haveFortran)
          return bad("'fortran_order' is given twice", why);
        haveFortran = true;
        if (word("True"))
          fortran = true;
        else if (word("False"))
          fortran = false;
        else
          return bad("'fortran_order' is not True or False", why);
      } else if (key == "shape") {
        if (haveShape)
          return bad("'shape' is given twice", why);
        haveShape = true;
        if (!tuple(shape, why))
          return false;
      } else {
        return bad("unexpected key " + quote(key) + " in the header dict", why);
      }
      space();
      if (eat(','))
        continue;
      space();
      if (eat('}'))
        break;
      return bad("expected ',' or '}' in the header dict", why);
    }
    space();
    if (pos_ != s_.size())
      return bad("unexpected text after the header dict", why);
    if (!haveDescr || !haveFortran || !haveShape)
      return bad("the header lacks 'descr', 'fortran_order' or 'shape'", why);
    return true;
  }

private:
  static bool bad(const std::string &message, std::string &why) {
    why = message;
    return false;
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool eat(char c) {
    if (peek() != c)
      return false;
    ++pos_;
    return true;
  }
  void space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' ||
                                s_[pos_] == '\t' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool word(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w)
      return false;
    pos_ += w.size();
    return true;
  }
  bool quoted(std::string &out) {
    char q = peek();
    if (q != '\'' && q != '"')
      return false;
    size_t end = s_.find(q, pos_ + 1);
    if (end == std::string_view::npos)
      return false;
    out = std::string(s_.substr(pos_ + 1, end - pos_ - 1));
    if (out.find('\\') != std::string::npos)
      return false;
    pos_ = end + 1;
    return true;
  }
  bool tuple(std::vector<int64_t> &shape, std::string &why) {
    if (!eat('('))
      return bad("'shape' is not a tuple", why);
    for (;;) {
      space();
      if (eat(')'))
        return true;
      uint64_t v = 0;
      size_t start = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
        if (detail::mulOverflow(v, 10, &v) ||
            detail::addOverflow(v, uint64_t(s_[pos_] - '0'), &v) ||
            v > uint64_t(INT64_MAX))
          return bad("a dimension of 'shape' is too large", why);
        ++pos_;
      }
      if (pos_ == start)
        return bad("'shape' holds something other than non-negative "
                   "integers",
                   why);
      eat('L'); // Python 2 longs
      if (shape.size() >= maxRank_)
        return bad("'shape' has more than " + std::to_string(maxRank_) +
                       " dimensions",
                   why);
      shape.push_back(int64_t(v));
      space();
      if (eat(','))
        continue;
      space();
      if (eat(')'))
        return true;
      return bad("expected ',' or ')' in 'shape'", why);
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
  uint32_t maxRank_;
};

/// What a .npy header declares.
struct NpyHeader {
  DType type = DType::F32;
  bool fortran = false;
  std::vector<int64_t> shape;
  uint64_t numel = 0;
  uint64_t dataOffset = 0; // magic, version, length and header dict
  uint64_t dataBytes = 0;  // numel * the dtype's size
};

/// Parses the header of a .npy of `fullSize` bytes from `bytes`, its first
/// bytes (all of them, or a prefix that must hold the whole header).
Outcome parseNpyHeader(ByteSpan bytes, uint64_t fullSize,
                       const std::string &name, NpyHeader &out,
                       std::string *error, const ReadOptions &options) {
  auto fail = [&](const std::string &what) {
    *error = name + ": " + what;
    return Outcome::Failed;
  };
  static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (bytes.size < 10 || std::memcmp(bytes.data, magic, 6) != 0)
    return fail("not a .npy array (no \\x93NUMPY magic)");
  uint8_t major = bytes.data[6];
  uint64_t headerLength, headerStart;
  if (major == 1) {
    headerLength = load16(bytes.data + 8);
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size < 12)
      return fail("truncated .npy header");
    headerLength = load32(bytes.data + 8);
    headerStart = 12;
  } else {
    return fail(".npy format version " + std::to_string(major) +
                " is not supported (1, 2, 3)");
  }
  if (headerLength > fullSize - headerStart)
    return fail("the .npy header of " + std::to_string(headerLength) +
                " bytes runs past the end of the " + std::to_string(fullSize) +
                " bytes");
  if (headerLength > bytes.size - headerStart)
    return fail("the .npy header of " + std::to_string(headerLength) +
                " bytes is longer than the " + std::to_string(bytes.size) +
                " bytes this reader accepts for one");
  std::string_view header(
      reinterpret_cast<const char *>(bytes.data + headerStart),
      size_t(headerLength));
  std::string descr, why;
  NpyHeaderParser parser(header, options.limits.maxRank);
  if (!parser.parse(descr, out.fortran, out.shape, why))
    return fail("bad .npy header: " + why);
  DType &type = out.type;
  if (descr == "<f4")
    type = DType::F32;
  else if (descr == "<f8")
    type = DType::F64;
  else if (descr == "<f2")
    type = DType::F16;
  else if (descr == "<V2" || descr == "|V2")
    type = DType::BF16; // ml_dtypes.bfloat16 as np.save writes it
  else if (descr.size() >= 2 && descr[0] == '>' && descr[1] != 'V' &&
           descr != ">i1" && descr != ">u1")
    return fail("dtype " + quote(descr) +
                " is big-endian; only little-endian arrays can be imported "
                "(numpy: arr.astype(arr.dtype.newbyteorder('<')))");
  else if (descr.size() >= 2 &&
           (descr[1] == 'i' || descr[1] == 'u' || descr[1] == 'b') &&
           options.skipNonFloat)
    return Outcome::Skipped;
  else
    return fail("dtype " + quote(descr) +
                " is not supported ('<f4', '<f8', '<f2', bfloat16 as "
                "'<V2')");
  if (!elementCount(out.shape, out.numel) ||
      detail::mulOverflow(out.numel, dtypeSize(type), &out.dataBytes))
    return fail("shape " + shapeString(out.shape) + " has too many elements");
  out.dataOffset = headerStart + headerLength;
  return Outcome::Ok;
}

Outcome parseNpy(ByteSpan bytes, const std::string &name, Tensor &out,
                 std::string *error, const ReadOptions &options) {
  NpyHeader h;
  Outcome o = parseNpyHeader(bytes, bytes.size, name, h, error, options);
  if (o != Outcome::Ok)
    return o;
  const std::vector<int64_t> &shape = h.shape;
  DType type = h.type;
  uint64_t numel = h.numel, need = h.dataBytes;
  uint64_t have = bytes.size - h.dataOffset;
  if (have != need) {
    *error = name + ": holds " + std::to_string(have) +
             " bytes of data, its shape " + shapeString(shape) + " of " +
             dtypeName(type) + " needs " + std::to_string(need);
    return Outcome::Failed;
  }
  bool fortran = h.fortran;
  const uint8_t *data = bytes.data + h.dataOffset;
  out.shape = shape;
  out.sourceType = type;
  out.data.assign(size_t(numel), 0.0f);
  if (!fortran || shape.size() < 2) {
    convertToFloat(type, data, size_t(numel), out.data.data());
    return Outcome::Ok;
  }
  // Column-major: convert, then walk the C-order positions.
  std::vector<float> columnMajor(static_cast<size_t>(numel));
  convertToFloat(type, data, size_t(numel), columnMajor.data());
  size_t rank = shape.size();
  std::vector<uint64_t> fstride(rank, 1);
  for (size_t a = 1; a < rank; ++a)
    fstride[a] = fstride[a - 1] * uint64_t(shape[a - 1]);
  std::vector<int64_t> index(rank, 0);
  uint64_t f = 0;
  for (uint64_t c = 0; c < numel; ++c) {
    out.data[size_t(c)] = columnMajor[size_t(f)];
    for (size_t a = rank; a-- > 0;) {
      f += fstride[a];
      if (++index[a] < shape[a])
        break;
      f -= fstride[a] * uint64_t(shape[a]);
      index[a] = 0;
    }
  }
  return Outcome::Ok;
}

// ---- ZIP
// ---------------------------------------------------------------------

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
// Deflate cannot compress better than about 1032:1 (RFC 1951 block limits).
constexpr uint64_t kMaxDeflateRatio = 1032;
// The most of an entry read to find its .npy header (numpy writes headers
// of a few hundred bytes; version 2 allows up to 4 GiB).
constexpr uint64_t kMaxNpyHead = uint64_t(1) << 20;

struct Entry {
  std::string name;
  uint16_t flags = 0, method = 0;
  uint32_t crc = 0;
  uint64_t compressedSize = 0, size = 0, localOffset = 0;
  uint64_t dataStart = 0; // filled from the local header
};

class ZipReader {
public:
  ZipReader(ByteSpan bytes, const std::string &name, std::string *error)
      : b_(bytes), name_(name), error_(error) {}

  bool readDirectory(std::vector<Entry> &entries) {
    uint64_t size = b_.size;
    if (size < 22)
      return fail("not a ZIP archive (.npz): " + std::to_string(size) +
                  " bytes is too short");
    // End of central directory: the last signature whose comment fits.
    uint64_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
    uint64_t end = UINT64_MAX;
    for (uint64_t pos = size - 22 + 1; pos-- > lowest;) {
      if (load32(b_.data + pos) == kEndSig &&
          pos + 22 + load16(b_.data + pos + 20) <= size) {
        end = pos;
        break;
      }
    }
    if (end == UINT64_MAX)
      return fail("not a ZIP archive (.npz): no end-of-central-directory "
                  "record");
    const uint8_t *e = b_.data + end;
    uint64_t diskEntries = load16(e + 8), count = load16(e + 10);
    uint64_t cdSize = load32(e + 12), cdOffset = load32(e + 16);
    uint64_t cdLimit = end;
    if (load16(e + 4) != 0 || load16(e + 6) != 0 || diskEntries != count)
      return fail("multi-disk ZIP archives are not supported");
    if (end >= 20 && load32(b_.data + end - 20) == kZip64LocatorSig) {
      const uint8_t *loc = b_.data + end - 20;
      uint64_t at = load64(loc + 8);
      if (load32(loc + 4) != 0 || load32(loc + 16) > 1)
        return fail("multi-disk ZIP archives are not supported");
      if (at > end - 20 || end - 20 - at < 56 ||
          load32(b_.data + at) != kZip64EndSig)
        return fail("the ZIP64 end-of-central-directory locator points to " +
                    std::to_string(at) + ", where no ZIP64 record is");
      const uint8_t *z = b_.data + at;
      if (load32(z + 16) != 0 || load32(z + 20) != 0 ||
          load64(z + 24) != load64(z + 32))
        return fail("multi-disk ZIP archives are not supported");
      count = load64(z + 32);
      cdSize = load64(z + 40);
      cdOffset = load64(z + 48);
      cdLimit = at;
    } else if (count == 0xffff || cdSize == 0xffffffff ||
               cdOffset == 0xffffffff) {
      // Values at their ZIP64 sentinel without a ZIP64 record: take them
      // as they are, the checks below catch inconsistencies.
    }
    if (cdOffset > cdLimit || cdSize > cdLimit - cdOffset)
      return fail("the central directory (" + std::to_string(cdSize) +
                  " bytes at offset " + std::to_string(cdOffset) +
                  ") runs past its end record at " + std::to_string(cdLimit));
    if (count > cdSize / 46)
      return fail("the central directory claims " + std::to_string(count) +
                  " entries, its " + std::to_string(cdSize) +
                  " bytes hold at most " + std::to_string(cdSize / 46));
    cdOffset_ = cdOffset;
    uint64_t pos = cdOffset, cdEnd = cdOffset + cdSize;
    entries.reserve(size_t(count));
    for (uint64_t i = 0; i < count; ++i) {
      if (cdEnd - pos < 46 || load32(b_.data + pos) != kCentralSig)
        return fail("central directory entry " + std::to_string(i) +
                    " at offset " + std::to_string(pos) +
                    " is truncated or has a wrong signature");
      const uint8_t *c = b_.data + pos;
      Entry entry;
      entry.flags = load16(c + 8);
      entry.method = load16(c + 10);
      entry.crc = load32(c + 16);
      entry.compressedSize = load32(c + 20);
      entry.size = load32(c + 24);
      uint64_t nameLength = load16(c + 28), extraLength = load16(c + 30),
               commentLength = load16(c + 32);
      uint32_t disk = load16(c + 34);
      entry.localOffset = load32(c + 42);
      uint64_t variable = nameLength + extraLength + commentLength;
      if (variable > cdEnd - pos - 46)
        return fail("central directory entry " + std::to_string(i) +
                    " runs past the end of the directory");
      entry.name.assign(reinterpret_cast<const char *>(c + 46),
                        size_t(nameLength));
      // ZIP64 extended information (APPNOTE 4.5.3): the 64-bit values of
      // the fields set to their sentinel, in this order.
      const uint8_t *x = c + 46 + nameLength, *xEnd = x + extraLength;
      while (xEnd - x >= 4) {
        uint16_t id = load16(x), length = load16(x + 2);
        if (uint64_t(xEnd - x - 4) < length)
          return fail("entry " + quote(entry.name) +
                      " has a truncated extra field");
        if (id == 0x0001) {
          const uint8_t *f = x + 4, *fEnd = f + length;
          auto take = [&](uint64_t &field) {
            if (fEnd - f < 8)
              return false;
            field = load64(f);
            f += 8;
            return true;
          };
          if ((entry.size == 0xffffffff && !take(entry.size)) ||
              (entry.compressedSize == 0xffffffff &&
               !take(entry.compressedSize)) ||
              (entry.localOffset == 0xffffffff && !take(entry.localOffset)))
            return fail("entry " + quote(entry.name) +
                        " has a truncated ZIP64 extra field");
          if (disk == 0xffff && fEnd - f >= 4) {
            disk = load32(f);
          }
        }
        x += 4 + length;
      }
      if (disk != 0)
        return fail("entry " + quote(entry.name) +
                    " is on another disk (multi-disk archives are not "
                    "supported)");
      entries.push_back(std::move(entry));
      pos += 46 + variable;
    }
    // Local headers, and no two entries sharing bytes (a zip bomb trick).
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (Entry &entry : entries) {
      if (!localHeader(entry))
        return false;
      ranges.push_back(
          {entry.localOffset, entry.dataStart + entry.compressedSize});
    }
    std::vector<size_t> order(entries.size());
    for (size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
    for (size_t k = 1; k < order.size(); ++k)
      if (ranges[order[k]].first < ranges[order[k - 1]].second)
        return fail("entries " + quote(entries[order[k - 1]].name) + " and " +
                    quote(entries[order[k]].name) + " overlap");
    return true;
  }

  /// Up to the first `limit` bytes of `entry`'s uncompressed content, the
  /// rest left untouched: a stored entry's bytes in place, a deflated one's
  /// inflated into `storage`. Not CRC-checked (contents() checks that).
  bool head(const Entry &entry, uint64_t limit, std::vector<uint8_t> &storage,
            ByteSpan &out) {
    if (!checkEntry(entry))
      return false;
    uint64_t n = std::min(entry.size, limit);
    if (entry.method == 0) {
      out = {b_.data + entry.dataStart, size_t(n)};
      return true;
    }
    storage.assign(size_t(n), 0);
    z_stream zs{};
    if (inflateInit2(&zs, -15) != Z_OK)
      return fail("entry " + quote(entry.name) + ": cannot start zlib");
    zs.next_in = const_cast<Bytef *>(b_.data + entry.dataStart);
    zs.avail_in = uInt(std::min<uint64_t>(entry.compressedSize, 1u << 30));
    zs.next_out = storage.data();
    zs.avail_out = uInt(n);
    int r = Z_OK;
    while (zs.avail_out > 0 && r == Z_OK)
      r = inflate(&zs, Z_NO_FLUSH);
    std::string why;
    if (r != Z_OK && r != Z_STREAM_END && zs.avail_out > 0)
      why = r == Z_BUF_ERROR ? "the deflate stream is truncated"
                             : std::string("corrupt deflate data (") +
                                   (zs.msg ? zs.msg : "zlib error") + ")";
    storage.resize(size_t(zs.total_out));
    inflateEnd(&zs);
    if (!why.empty())
      return fail("entry " + quote(entry.name) + ": " + why);
    out = {storage.data(), storage.size()};
    return true;
  }

  /// The uncompressed bytes of `entry`, CRC-checked. Stored entries are not
  /// copied (`storage` stays empty).
  bool contents(const Entry &entry, std::vector<uint8_t> &storage,
                ByteSpan &out) {
    if (!checkEntry(entry))
      return false;
    ByteSpan compressed{b_.data + entry.dataStart,
                        size_t(entry.compressedSize)};
    if (entry.method == 0) {
      out = compressed;
    } else {
      if (!inflateEntry(entry, compressed, storage))
        return false;
      out = {storage.data(), storage.size()};
    }
    uint32_t crc = crc32(0L, Z_NULL, 0);
    for (uint64_t done = 0; done < out.size;) {
      uInt n = uInt(std::min<uint64_t>(out.size - done, 1u << 30));
      crc = uint32_t(crc32(crc, out.data + done, n));
      done += n;
    }
    if (crc != entry.crc)
      return fail("entry " + quote(entry.name) +
                  ": CRC-32 mismatch: the directory records " +
                  detail::hex(entry.crc) + ", the data has " +
                  detail::hex(crc) + " (corrupt archive)");
    return true;
  }

private:
  bool fail(const std::string &message) {
    *error_ = name_ + ": " + message;
    return false;
  }

  /// Encryption, the method and the sizes it allows.
  bool checkEntry(const Entry &entry) {
    auto bad = [&](const std::string &what) {
      return fail("entry " + quote(entry.name) + ": " + what);
    };
    if (entry.flags & 0x1)
      return bad("is encrypted");
    if (entry.method == 0) {
      if (entry.compressedSize != entry.size)
        return bad("is stored with a compressed size of " +
                   std::to_string(entry.compressedSize) + " and a size of " +
                   std::to_string(entry.size));
      return true;
    }
    if (entry.method == 8) {
      uint64_t bound;
      if (detail::mulOverflow(entry.compressedSize, kMaxDeflateRatio, &bound) ||
          entry.size > bound + 1024)
        return bad("claims " + std::to_string(entry.size) + " bytes from " +
                   std::to_string(entry.compressedSize) +
                   " deflated bytes, more than deflate can encode");
      return true;
    }
    return bad("compression method " + std::to_string(entry.method) +
               " is not supported (only stored and deflate; np.savez and "
               "np.savez_compressed write these)");
  }

  bool localHeader(Entry &entry) {
    uint64_t at = entry.localOffset;
    if (at > cdOffset_ || cdOffset_ - at < 30 ||
        load32(b_.data + at) != kLocalSig)
      return fail("entry " + quote(entry.name) +
                  ": no local header at offset " + std::to_string(at));
    const uint8_t *l = b_.data + at;
    uint64_t nameLength = load16(l + 26), extraLength = load16(l + 28);
    uint64_t start = at + 30 + nameLength + extraLength;
    if (start > cdOffset_ || entry.compressedSize > cdOffset_ - start)
      return fail("entry " + quote(entry.name) + ": its " +
                  std::to_string(entry.compressedSize) +
                  " bytes of data at offset " + std::to_string(start) +
                  " run past the start of the central directory at " +
                  std::to_string(cdOffset_) + " (truncated archive?)");
    if (std::string_view(reinterpret_cast<const char *>(l + 30),
                         size_t(nameLength)) != entry.name)
      return fail("entry " + quote(entry.name) +
                  ": the local header names it differently");
    entry.dataStart = start;
    return true;
  }

  bool inflateEntry(const Entry &entry, ByteSpan in,
                    std::vector<uint8_t> &out) {
    auto bad = [&](const std::string &what) {
      return fail("entry " + quote(entry.name) + ": " + what);
    };
    out.assign(size_t(entry.size), 0);
    z_stream zs{};
    if (inflateInit2(&zs, -15) != Z_OK)
      return bad("cannot start zlib");
    uint64_t inDone = 0, outDone = 0;
    uint8_t scratch[1];
    bool ok = false;
    std::string why;
    for (;;) {
      if (zs.avail_in == 0 && inDone < in.size) {
        uInt n = uInt(std::min<uint64_t>(in.size - inDone, 1u << 30));
        zs.next_in = const_cast<Bytef *>(in.data + inDone);
        zs.avail_in = n;
        inDone += n;
      }
      bool intoScratch = false;
      if (zs.avail_out == 0) {
        if (outDone < out.size()) {
          uInt n = uInt(std::min<uint64_t>(out.size() - outDone, 1u << 30));
          zs.next_out = out.data() + outDone;
          zs.avail_out = n;
          outDone += n;
        } else {
          zs.next_out = scratch;
          zs.avail_out = 1;
          intoScratch = true;
        }
      }
      int r = inflate(&zs, Z_NO_FLUSH);
      if (intoScratch && zs.avail_out == 0) {
        why = "inflates to more than the " + std::to_string(entry.size) +
              " bytes the directory records";
        break;
      }
      if (intoScratch)
        zs.avail_out = 0; // the scratch byte was not used
      if (r == Z_STREAM_END) {
        uint64_t produced = uint64_t(zs.total_out);
        if (produced != entry.size)
          why = "inflates to " + std::to_string(produced) +
                " bytes, the directory records " + std::to_string(entry.size);
        else
          ok = true;
        break;
      }
      if (r == Z_OK)
        continue;
      if (r == Z_BUF_ERROR)
        why = "the deflate stream is truncated";
      else
        why =
            std::string("corrupt deflate data (") +
            (zs.msg ? std::string(zs.msg) : "zlib error " + std::to_string(r)) +
            ")";
      break;
    }
    inflateEnd(&zs);
    if (!ok) {
      out.clear();
      out.shrink_to_fit();
      return bad(why);
    }
    return true;
  }

  ByteSpan b_;
  const std::string &name_;
  std::string *error_;
  uint64_t cdOffset_ = 0;
};

} // namespace

bool readNpy(ByteSpan bytes, const std::string &name, Tensor &out,
             std::string *error, const ReadOptions &options) {
  ReadOptions strict = options;
  strict.skipNonFloat = false;
  return parseNpy(bytes, name, out, error, strict) == Outcome::Ok;
}

bool readNpz(ByteSpan bytes, const std::string &name, TensorMap &out,
             std::string *error, const ReadOptions &options) {
  ZipReader zip(bytes, name, error);
  std::vector<Entry> entries;
  if (!zip.readDirectory(entries))
    return false;
  std::set<std::string_view> seen;
  for (const Entry &entry : entries)
    if (!seen.insert(entry.name).second) {
      *error = name + ": entry " + quote(entry.name) + " appears twice";
      return false;
    }
  TensorMap result;
  for (const Entry &entry : entries) {
    std::string_view key = entry.name;
    if (!key.empty() && key.back() == '/' && entry.size == 0)
      continue; // a directory entry
    constexpr std::string_view suffix = ".npy";
    if (key.size() <= suffix.size() ||
        key.substr(key.size() - suffix.size()) != suffix) {
      *error = name + ": entry " + quote(entry.name) + " is not a .npy array";
      return false;
    }
    key.remove_suffix(suffix.size());
    std::string entryName = name + ": " + quote(entry.name);
    // The .npy header first: the name, the declared shape and the size it
    // implies are checked before the data is inflated or converted.
    std::vector<uint8_t> storage;
    ByteSpan content;
    NpyHeader header;
    if (!zip.head(entry, kMaxNpyHead, storage, content))
      return false;
    Outcome o =
        parseNpyHeader(content, entry.size, entryName, header, error, options);
    if (o == Outcome::Failed)
      return false;
    if (o == Outcome::Skipped)
      continue;
    std::string tensorName(stripParamsPrefix(key)), why;
    if (!checkExpected(options, tensorName, header.shape, why)) {
      *error = name + ": " + why;
      return false;
    }
    if (options.select && !options.select(tensorName, header.shape))
      continue;
    // An entry claiming more than its shape needs is refused before it is
    // inflated (one claiming less fails while inflating, without cost).
    if (entry.size - header.dataOffset > header.dataBytes) {
      *error = entryName + ": holds " +
               std::to_string(entry.size - header.dataOffset) +
               " bytes of data, its shape " + shapeString(header.shape) +
               " of " + dtypeName(header.type) + " needs " +
               std::to_string(header.dataBytes);
      return false;
    }
    if (!zip.contents(entry, storage, content))
      return false;
    Tensor tensor;
    o = parseNpy(content, entryName, tensor, error, options);
    if (o == Outcome::Failed)
      return false;
    if (o == Outcome::Skipped)
      continue;
    if (!detail::insertTensor(result, tensorName, std::move(tensor), name,
                              error))
      return false;
  }
  for (auto &entry : result)
    if (!detail::insertTensor(out, entry.first, std::move(entry.second), name,
                              error))
      return false;
  return true;
}

bool readNpz(const std::string &path, TensorMap &out, std::string *error,
             const ReadOptions &options) {
  detail::FileData file;
  if (!file.open(path, error))
    return false;
  return readNpz(file.bytes(), path, out, error, options);
}

} // namespace vmoe::readers
