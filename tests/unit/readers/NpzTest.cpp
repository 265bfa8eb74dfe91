//===- NpzTest.cpp - .npz / .npy reader -----------------------------------===//

#include "TestUtil.h"

#include "vmoe/readers/Npz.h"

namespace vmoe::readers::test {
namespace {

const char *kF32x3 =
    "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";

Bytes npyF32(const std::vector<float> &values) {
  return makeNpy(kF32x3, floatBytes(values));
}

bool readMem(const Bytes &bytes, TensorMap &out, std::string &error,
             const ReadOptions &options = {}) {
  return readNpz(span(bytes), "mem.npz", out, &error, options);
}

/// Offset of the end-of-central-directory record and of the directory.
void directory(const Bytes &zip, size_t &end, size_t &cd) {
  end = zip.size() - 22;
  ASSERT_EQ(zip[end], 0x50);
  ASSERT_EQ(zip[end + 1], 0x4b);
  cd = zip[end + 16] | zip[end + 17] << 8 | zip[end + 18] << 16 |
       size_t(zip[end + 19]) << 24;
}

void put32(Bytes &b, size_t at, uint32_t v) {
  for (int k = 0; k < 4; ++k)
    b[at + k] = uint8_t(v >> (8 * k));
}

TEST(Npz, ReadsNumpySavez) {
  REQUIRE_TEST_DATA();
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readNpz(dataPath("tiny.npz"), out, &error)) << error;
  expectTinyWeights(out, DType::F32);
}

TEST(Npz, ReadsNumpySavezCompressedWithParamsPrefix) {
  REQUIRE_TEST_DATA();
  // np.savez_compressed (deflate), keys "params/Encoder/...".
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readNpz(dataPath("tiny_params_deflate.npz"), out, &error))
      << error;
  expectTinyWeights(out, DType::F32);
}

TEST(Npz, FortranOrderAndHeaderForms) {
  // shape (2, 3) in column-major order: [[0,1,2],[3,4,5]] stored as
  // 0 3 1 4 2 5.
  Bytes fortran =
      makeNpy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
              floatBytes({0, 3, 1, 4, 2, 5}));
  // Double quotes, Python 2 long dimensions, no trailing comma, a scalar.
  Bytes py2 = makeNpy(
      "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (3L,)}",
      floatBytes({7, 8, 9}));
  Bytes scalar = makeNpy("{'descr': '<f8', 'fortran_order': False, "
                         "'shape': (), }",
                         Bytes{0, 0, 0, 0, 0, 0, 0x24, 0x40}); // 10.0
  // Format version 2.0: a 4-byte header length.
  std::string dict =
      "{'descr': '<f2', 'fortran_order': False, 'shape': (1,), }";
  Bytes v2 = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0};
  putLE(v2, dict.size() + 1, 4);
  v2.insert(v2.end(), dict.begin(), dict.end());
  v2.push_back('\n');
  v2.push_back(0x00);
  v2.push_back(0x3c); // float16 1.0
  Bytes zip = makeZip({{"f.npy", fortran},
                       {"py2.npy", py2},
                       {"params/s.npy", scalar},
                       {"v2.npy", v2},
                       {"dir/", {}}});
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readMem(zip, out, error)) << error;
  EXPECT_EQ(out["f"].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(out["f"].data, (std::vector<float>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(out["py2"].data, (std::vector<float>{7, 8, 9}));
  EXPECT_TRUE(out["s"].shape.empty());
  EXPECT_EQ(out["s"].data, std::vector<float>{10.0f});
  EXPECT_EQ(out["s"].sourceType, DType::F64);
  EXPECT_EQ(out["v2"].data, std::vector<float>{1.0f});
  EXPECT_EQ(out.size(), 4u);
}

TEST(Npz, TruncatedAtSeveralPoints) {
  REQUIRE_TEST_DATA();
  for (const char *file : {"tiny.npz", "tiny_params_deflate.npz"}) {
    Bytes whole = readFile(dataPath(file));
    for (size_t cut : {size_t(0), size_t(21), size_t(100), whole.size() / 2,
                       whole.size() - 22, whole.size() - 1}) {
      Bytes truncated(whole.begin(), whole.begin() + cut);
      TensorMap out;
      std::string error;
      EXPECT_FAILS_WITH(readMem(truncated, out, error), error,
                        cut < 22 ? "mem.npz: not a ZIP archive (.npz): "
                                 : "mem.npz: not a ZIP archive (.npz): no "
                                   "end-of-central-directory record");
    }
  }
}

TEST(Npz, TruncatedDataWithIntactDirectory) {
  REQUIRE_TEST_DATA();
  // Cut the data of the archive but keep its directory: the entries now
  // point past their bytes.
  Bytes whole = readFile(dataPath("tiny.npz"));
  size_t end, cd;
  directory(whole, end, cd);
  Bytes cutData(whole.begin(), whole.begin() + cd / 2);
  cutData.insert(cutData.end(), whole.begin() + cd, whole.end());
  // Shift the directory offset to where it now is.
  put32(cutData, cutData.size() - 22 + 16, uint32_t(cd / 2));
  TensorMap out;
  std::string error;
  EXPECT_FALSE(readMem(cutData, out, error));
  EXPECT_TRUE(error.find("no local header at offset") != std::string::npos ||
              error.find("run past the start of the central directory") !=
                  std::string::npos)
      << error;
}

TEST(Npz, BadCrc) {
  REQUIRE_TEST_DATA();
  Bytes zip = readFile(dataPath("tiny.npz"));
  // The last byte of the first entry's data (a stored .npy).
  size_t end, cd;
  directory(zip, end, cd);
  size_t nameLength = zip[26] | zip[27] << 8,
         extraLength = zip[28] | zip[29] << 8;
  size_t size = zip[cd + 24] | zip[cd + 25] << 8 | zip[cd + 26] << 16;
  zip[30 + nameLength + extraLength + size - 1] ^= 0x01;
  TensorMap out;
  std::string error;
  EXPECT_FAILS_WITH(readMem(zip, out, error), error, "CRC-32 mismatch");
  // And in a deflated entry.
  zip = readFile(dataPath("tiny_params_deflate.npz"));
  directory(zip, end, cd);
  uint32_t crc = zip[cd + 16] | zip[cd + 17] << 8 | zip[cd + 18] << 16 |
                 uint32_t(zip[cd + 19]) << 24;
  put32(zip, cd + 16, crc ^ 0x5a5a5a5au); // the recorded CRC
  EXPECT_FAILS_WITH(readMem(zip, out, error), error, "CRC-32 mismatch");
}

TEST(Npz, CorruptAndTruncatedDeflate) {
  REQUIRE_TEST_DATA();
  Bytes whole = readFile(dataPath("tiny_params_deflate.npz"));
  size_t end, cd;
  directory(whole, end, cd);
  uint32_t csize = whole[cd + 20] | whole[cd + 21] << 8 | whole[cd + 22] << 16;
  TensorMap out;
  std::string error;
  // Half the compressed bytes.
  Bytes zip = whole;
  put32(zip, cd + 20, csize / 2);
  EXPECT_FAILS_WITH(readMem(zip, out, error), error,
                    "the deflate stream is truncated");
  // Garbage in the stream: a reserved block type (BTYPE 11).
  zip = whole;
  size_t nameLength = zip[26] | zip[27] << 8,
         extraLength = zip[28] | zip[29] << 8;
  zip[30 + nameLength + extraLength] = 0x07;
  EXPECT_FALSE(readMem(zip, out, error));
  EXPECT_NE(error.find("corrupt deflate data"), std::string::npos) << error;
  // More output than recorded.
  zip = whole;
  uint32_t size = whole[cd + 24] | whole[cd + 25] << 8 | whole[cd + 26] << 16;
  put32(zip, cd + 24, size - 1);
  EXPECT_FAILS_WITH(readMem(zip, out, error), error,
                    "inflates to more than the");
  // A zip bomb's claim: 1 GB from a few bytes; refused before allocating.
  zip = whole;
  put32(zip, cd + 24, 1u << 30);
  EXPECT_FAILS_WITH(readMem(zip, out, error), error,
                    "more than deflate can encode");
}

TEST(Npz, WrongMagic) {
  TensorMap out;
  std::string error;
  Bytes npy = npyF32({1, 2, 3});
  npy[1] = 'X';
  EXPECT_FAILS_WITH(readMem(makeZip({{"a.npy", npy}}), out, error), error,
                    "mem.npz: 'a.npy': not a .npy array (no \\x93NUMPY magic)");
  Bytes zip = makeZip({{"a.npy", npyF32({1, 2, 3})}});
  zip[zip.size() - 22] = 'Q';
  EXPECT_FAILS_WITH(readMem(zip, out, error), error,
                    "no end-of-central-directory record");
  zip = makeZip({{"a.npy", npyF32({1, 2, 3})}});
  zip[0] = 'Q'; // local header signature
  EXPECT_FAILS_WITH(readMem(zip, out, error), error,
                    "entry 'a.npy': no local header at offset 0");
  zip = makeZip({{"a.npy", npyF32({1, 2, 3})}, {"b.npy", npyF32({1, 2, 3})}});
  size_t end, cd;
  directory(zip, end, cd);
  zip[cd] = 'Q'; // central directory signature
  EXPECT_FAILS_WITH(readMem(zip, out, error), error,
                    "central directory entry 0 at offset");
  Bytes npyV9 = npyF32({1, 2, 3});
  npyV9[6] = 9;
  EXPECT_FAILS_WITH(readMem(makeZip({{"a.npy", npyV9}}), out, error), error,
                    ".npy format version 9 is not supported");
}

TEST(Npz, WrongDtypes) {
  TensorMap out;
  std::string error;
  auto one = [&](const std::string &descr, size_t bytes) {
    Bytes npy = makeNpy("{'descr': '" + descr +
                            "', 'fortran_order': False, 'shape': (1,), }",
                        Bytes(bytes, 0));
    return makeZip({{"w.npy", npy}});
  };
  EXPECT_FAILS_WITH(readMem(one(">f4", 4), out, error), error,
                    "dtype '>f4' is big-endian");
  EXPECT_FAILS_WITH(readMem(one("<i4", 4), out, error), error,
                    "dtype '<i4' is not supported");
  EXPECT_FAILS_WITH(readMem(one("<c8", 8), out, error), error,
                    "dtype '<c8' is not supported");
  EXPECT_FAILS_WITH(readMem(one("|V4", 4), out, error), error,
                    "dtype '|V4' is not supported");
  Bytes structured = makeNpy(
      "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
      Bytes(4, 0));
  EXPECT_FAILS_WITH(readMem(makeZip({{"w.npy", structured}}), out, error),
                    error, "structured dtypes are not supported");
  // Integer arrays are skipped on request.
  ReadOptions options;
  options.skipNonFloat = true;
  out.clear();
  Bytes zip = makeZip({{"step.npy", makeNpy("{'descr': '<i4', "
                                            "'fortran_order': False, "
                                            "'shape': (), }",
                                            Bytes(4, 0))},
                       {"w.npy", npyF32({1, 2, 3})}});
  ASSERT_TRUE(readMem(zip, out, error, options)) << error;
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(out.count("w"), 1u);
}

TEST(Npz, ForgedNpyHeaders) {
  TensorMap out;
  std::string error;
  auto zipOf = [](const Bytes &npy) { return makeZip({{"w.npy", npy}}); };
  // Shape (3,) with 2 floats of data.
  EXPECT_FAILS_WITH(
      readMem(zipOf(makeNpy(kF32x3, floatBytes({1, 2}))), out, error), error,
      "holds 8 bytes of data, its shape (3,) of float32 needs 12");
  // A huge shape.
  EXPECT_FAILS_WITH(
      readMem(zipOf(makeNpy("{'descr': '<f4', 'fortran_order': False, "
                            "'shape': (4294967296, 4294967296), }",
                            {})),
              out, error),
      error, "has too many elements");
  EXPECT_FAILS_WITH(
      readMem(zipOf(makeNpy("{'descr': '<f4', 'fortran_order': False, "
                            "'shape': (99999999999999999999,), }",
                            {})),
              out, error),
      error, "a dimension of 'shape' is too large");
  // A header length past the end.
  Bytes npy = npyF32({1, 2, 3});
  npy[8] = 0xff;
  npy[9] = 0xff;
  EXPECT_FAILS_WITH(readMem(zipOf(npy), out, error), error,
                    "the .npy header of 65535 bytes runs past the end");
  // Missing and unknown keys, bad values.
  EXPECT_FAILS_WITH(
      readMem(zipOf(makeNpy("{'descr': '<f4', 'shape': (1,), }", Bytes(4, 0))),
              out, error),
      error, "the header lacks 'descr', 'fortran_order' or 'shape'");
  EXPECT_FAILS_WITH(
      readMem(zipOf(makeNpy("{'descr': '<f4', 'fortran_order': False, "
                            "'shape': (1,), 'x': 1}",
                            Bytes(4, 0))),
              out, error),
      error, "unexpected key 'x'");
  EXPECT_FAILS_WITH(
      readMem(zipOf(makeNpy("{'descr': '<f4', 'fortran_order': 0, "
                            "'shape': (1,), }",
                            Bytes(4, 0))),
              out, error),
      error, "'fortran_order' is not True or False");
  EXPECT_FAILS_WITH(
      readMem(zipOf(makeNpy("{'descr': '<f4', 'fortran_order': False, "
                            "'shape': (-1,), }",
                            Bytes(4, 0))),
              out, error),
      error, "non-negative integers");
  std::string deep = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (int i = 0; i < 40; ++i)
    deep += "1,";
  EXPECT_FAILS_WITH(
      readMem(zipOf(makeNpy(deep + "), }", Bytes(4, 0))), out, error), error,
      "'shape' has more than 32 dimensions");
}

TEST(Npz, ForgedDirectory) {
  TensorMap out;
  std::string error;
  Bytes good = makeZip({{"a.npy", npyF32({1, 2, 3})}});
  size_t end, cd;
  directory(good, end, cd);
  // Entry count beyond what the directory can hold.
  Bytes zip = good;
  zip[end + 8] = zip[end + 10] = 0xff;
  zip[end + 9] = zip[end + 11] = 0xff;
  EXPECT_FAILS_WITH(readMem(zip, out, error), error,
                    "the central directory claims 65535 entries");
  // Directory offset past the end record.
  zip = good;
  put32(zip, end + 16, 0x7fffffff);
  EXPECT_FAILS_WITH(readMem(zip, out, error), error,
                    "runs past its end record");
  // Compressed size past the directory.
  zip = good;
  put32(zip, cd + 20, 0xfffffff0);
  put32(zip, cd + 24, 0xfffffff0);
  EXPECT_FAILS_WITH(readMem(zip, out, error), error,
                    "run past the start of the central directory");
  // Local header offset forged.
  zip = good;
  put32(zip, cd + 42, 0x10000000);
  EXPECT_FAILS_WITH(readMem(zip, out, error), error,
                    "no local header at offset 268435456");
  // Encrypted, or compressed with bzip2.
  zip = good;
  zip[cd + 8] = 0x01;
  EXPECT_FAILS_WITH(readMem(zip, out, error), error,
                    "entry 'a.npy': is encrypted");
  zip = good;
  zip[cd + 10] = 12;
  EXPECT_FAILS_WITH(readMem(zip, out, error), error,
                    "compression method 12 is not supported");
  // A stored entry whose sizes disagree.
  zip = good;
  put32(zip, cd + 24, 5);
  EXPECT_FAILS_WITH(readMem(zip, out, error), error,
                    "is stored with a compressed size of");
  // Multi-disk.
  zip = good;
  zip[end + 4] = 1;
  EXPECT_FAILS_WITH(readMem(zip, out, error), error,
                    "multi-disk ZIP archives are not supported");
}

TEST(Npz, DuplicateAndOverlappingEntries) {
  TensorMap out;
  std::string error;
  EXPECT_FAILS_WITH(readMem(makeZip({{"a.npy", npyF32({1, 2, 3})},
                                     {"a.npy", npyF32({1, 2, 3})}}),
                            out, error),
                    error, "entry 'a.npy' appears twice");
  EXPECT_FAILS_WITH(readMem(makeZip({{"a.npy", npyF32({1, 2, 3})},
                                     {"params/a.npy", npyF32({1, 2, 3})}}),
                            out, error),
                    error, "tensor 'a' is given twice");
  EXPECT_FAILS_WITH(
      readMem(makeZip({{"a.txt", npyF32({1, 2, 3})}}), out, error), error,
      "entry 'a.txt' is not a .npy array");
  // Entry "b.npy" lives inside the data of "a.npy" (a zip bomb trick).
  Bytes inner;
  ZipRecord b = addStored(inner, "b.npy", npyF32({1, 2, 3}));
  Bytes local;
  ZipRecord a = addStored(local, "a.npy", inner);
  b.localOffset = a.localOffset + 30 + a.name.size();
  EXPECT_FAILS_WITH(readMem(finishZip(local, {a, b}), out, error), error,
                    "entries 'a.npy' and 'b.npy' overlap");
}

TEST(Npz, ReadsZip64Records) {
  // A ZIP64 end record and locator, and a ZIP64 extra field in the
  // directory with the sizes and offset (as large archives have).
  Bytes npy = npyF32({4, 5, 6});
  Bytes local;
  ZipRecord r = addStored(local, "z.npy", npy);
  Bytes zip;
  zip.insert(zip.end(), local.begin(), local.end());
  uint64_t cdOffset = zip.size();
  Bytes extra;
  putLE(extra, 0x0001, 2);
  putLE(extra, 24, 2);
  putLE(extra, npy.size(), 8);
  putLE(extra, npy.size(), 8);
  putLE(extra, 0, 8);
  putLE(zip, 0x02014b50, 4);
  putLE(zip, 45, 2);
  putLE(zip, 45, 2);
  putLE(zip, 0, 2);
  putLE(zip, 0, 2);
  putLE(zip, 0, 4);
  putLE(zip, r.crc, 4);
  putLE(zip, 0xffffffff, 4);
  putLE(zip, 0xffffffff, 4);
  putLE(zip, 5, 2);
  putLE(zip, extra.size(), 2);
  putLE(zip, 0, 2);
  putLE(zip, 0, 2);
  putLE(zip, 0, 2);
  putLE(zip, 0, 4);
  putLE(zip, 0xffffffff, 4);
  zip.insert(zip.end(), r.name.begin(), r.name.end());
  zip.insert(zip.end(), extra.begin(), extra.end());
  uint64_t cdSize = zip.size() - cdOffset;
  uint64_t zip64End = zip.size();
  putLE(zip, 0x06064b50, 4);
  putLE(zip, 44, 8);
  putLE(zip, 45, 2);
  putLE(zip, 45, 2);
  putLE(zip, 0, 4);
  putLE(zip, 0, 4);
  putLE(zip, 1, 8);
  putLE(zip, 1, 8);
  putLE(zip, cdSize, 8);
  putLE(zip, cdOffset, 8);
  putLE(zip, 0x07064b50, 4);
  putLE(zip, 0, 4);
  putLE(zip, zip64End, 8);
  putLE(zip, 1, 4);
  putLE(zip, 0x06054b50, 4);
  putLE(zip, 0, 4);
  putLE(zip, 0xffff, 2);
  putLE(zip, 0xffff, 2);
  putLE(zip, 0xffffffff, 4);
  putLE(zip, 0xffffffff, 4);
  putLE(zip, 0, 2);
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readMem(zip, out, error)) << error;
  EXPECT_EQ(out["z"].data, (std::vector<float>{4, 5, 6}));
  // A locator pointing nowhere.
  Bytes bad = zip;
  put32(bad, bad.size() - 22 - 20 + 8, 3);
  EXPECT_FAILS_WITH(readMem(bad, out, error), error,
                    "where no ZIP64 record is");
}

} // namespace
} // namespace vmoe::readers::test
