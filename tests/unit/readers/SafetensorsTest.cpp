//===- SafetensorsTest.cpp - safetensors reader ---------------------------===//

#include "TestUtil.h"

#include "vmoe/readers/Safetensors.h"

namespace vmoe::readers::test {
namespace {

bool readMem(const Bytes &bytes, TensorMap &out, std::string &error,
             const ReadOptions &options = {}) {
  return readSafetensors(span(bytes), "mem.safetensors", out, &error, options);
}

/// Two float32 tensors, a (2,) at [0, 8) and b (1,) at [8, 12).
const char *kTwo = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                   "\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],"
                   "\"data_offsets\":[8,12]}}";

TEST(Safetensors, ReadsTinyModel) {
  REQUIRE_TEST_DATA();
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readSafetensors(dataPath("tiny.safetensors"), out, &error))
      << error;
  expectTinyWeights(out, DType::F32);
}

TEST(Safetensors, ReadsForms) {
  // Metadata ignored, padding spaces after the JSON, "params/" stripped,
  // unaligned data, every float dtype.
  std::string header =
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"params/a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"h\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[8,10]},"
      "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,1],\"data_offsets\":[10,12]},"
      "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[12,20]}}   ";
  Bytes data = floatBytes({1.5f, -2});
  for (uint8_t x : {0x00, 0xc0, 0x80, 0x3f, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f})
    data.push_back(x); // f16 -2.0, bf16 1.0, f64 1.5
  TensorMap out;
  std::string error;
  ASSERT_TRUE(readMem(makeSafetensors(header, data), out, error)) << error;
  EXPECT_EQ(out.size(), 4u);
  EXPECT_EQ(out["a"].data, (std::vector<float>{1.5f, -2}));
  EXPECT_EQ(out["h"].data, std::vector<float>{-2.0f});
  EXPECT_TRUE(out["h"].shape.empty());
  EXPECT_EQ(out["b"].data, std::vector<float>{1.0f});
  EXPECT_EQ(out["b"].sourceType, DType::BF16);
  EXPECT_EQ(out["d"].data, std::vector<float>{1.5f});
}

TEST(Safetensors, TruncatedAtSeveralPoints) {
  REQUIRE_TEST_DATA();
  Bytes whole = readFile(dataPath("tiny.safetensors"));
  uint64_t headerLength = 0;
  for (int k = 0; k < 8; ++k)
    headerLength |= uint64_t(whole[k]) << (8 * k);
  struct Cut {
    size_t at;
    const char *message;
  };
  for (Cut cut :
       {Cut{0, "too short for a safetensors file"},
        Cut{7, "too short for a safetensors file"},
        Cut{8, "runs past the end of the 8 bytes"},
        Cut{size_t(8 + headerLength / 2), "runs past the end"},
        Cut{size_t(8 + headerLength), "run past the end of the 0-byte"},
        Cut{size_t(8 + headerLength + 100), "run past the end of the "
                                            "100-byte data buffer"},
        Cut{whole.size() - 1, "-byte data buffer"}}) {
    Bytes truncated(whole.begin(), whole.begin() + cut.at);
    TensorMap out;
    std::string error;
    EXPECT_FAILS_WITH(readMem(truncated, out, error), error, cut.message);
    EXPECT_EQ(error.rfind("mem.safetensors: ", 0), 0u) << error;
  }
}

TEST(Safetensors, WrongMagicAndHeader) {
  TensorMap out;
  std::string error;
  // An .npz (or anything else) is no safetensors file.
  EXPECT_FAILS_WITH(readMem(makeZip({{"a.npy", Bytes(64, 0)}}), out, error),
                    error, "exceeds the 100 MB limit");
  Bytes bytes = makeSafetensors(kTwo, Bytes(12, 0));
  bytes[8] = '[';
  EXPECT_FAILS_WITH(readMem(bytes, out, error), error,
                    "the header does not start with '{'");
  EXPECT_FAILS_WITH(readMem(makeSafetensors("{\"a\":", {}), out, error), error,
                    "bad header: JSON line 1, column 6: syntax error while parsing "
                    "value - unexpected end of input");
  EXPECT_FAILS_WITH(readMem(makeSafetensors("{\"a\":1}", {}), out, error),
                    error, "tensor 'a': its entry is not an object");
  EXPECT_FAILS_WITH(
      readMem(makeSafetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[0]}}", {}),
              out, error),
      error, "'dtype', 'shape' or 'data_offsets' is missing");
}

TEST(Safetensors, ForgedOffsets) {
  TensorMap out;
  std::string error;
  auto one = [](const std::string &offsets, const std::string &shape = "[2]") {
    return "{\"a\":{\"dtype\":\"F32\",\"shape\":" + shape +
           ",\"data_offsets\":" + offsets + "}}";
  };
  Bytes data(8, 0);
  EXPECT_FAILS_WITH(readMem(makeSafetensors(one("[8,0]"), data), out, error),
                    error, "[8, 0] end before they begin");
  EXPECT_FAILS_WITH(
      readMem(makeSafetensors(one("[0,4611686018427387904]"), data), out,
              error),
      error, "run past the end of the 8-byte data buffer");
  EXPECT_FAILS_WITH(
      readMem(makeSafetensors(one("[0,99999999999999999999]"), data), out,
              error),
      error, "'data_offsets' are not non-negative integers");
  EXPECT_FAILS_WITH(readMem(makeSafetensors(one("[-8,0]"), data), out, error),
                    error, "'data_offsets' are not non-negative integers");
  EXPECT_FAILS_WITH(readMem(makeSafetensors(one("[0,4]"), data), out, error),
                    error,
                    "[0, 4] hold 4 bytes, its shape (2,) of F32 needs 8");
  EXPECT_FAILS_WITH(
      readMem(makeSafetensors(one("[0,8]", "[4294967296,4294967296]"), data),
              out, error),
      error, "has too many elements");
  EXPECT_FAILS_WITH(
      readMem(makeSafetensors(one("[0,8]", "[2,-1]"), data), out, error), error,
      "'shape' holds something other than non-negative integers");
  // Overlap, a hole, trailing bytes.
  std::string overlap = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                        "\"data_offsets\":[0,8]},"
                        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
                        "\"data_offsets\":[4,12]}}";
  EXPECT_FAILS_WITH(
      readMem(makeSafetensors(overlap, Bytes(12, 0)), out, error), error,
      "the data of tensor 'b' [4, 12] overlaps that of 'a' [0, 8]");
  std::string hole = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                     "\"data_offsets\":[0,4]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],"
                     "\"data_offsets\":[8,12]}}";
  EXPECT_FAILS_WITH(readMem(makeSafetensors(hole, Bytes(12, 0)), out, error),
                    error,
                    "bytes [4, 8) of the data buffer belong to no tensor");
  EXPECT_FAILS_WITH(readMem(makeSafetensors(kTwo, Bytes(16, 0)), out, error),
                    error, "bytes [12, 16) at the end of the data buffer");
  ASSERT_TRUE(readMem(makeSafetensors(kTwo, Bytes(12, 0)), out, error))
      << error;
}

TEST(Safetensors, ForgedHeaderLength) {
  TensorMap out;
  std::string error;
  Bytes bytes = makeSafetensors(kTwo, Bytes(12, 0));
  bytes[7] = 0x80; // 2^63 + ...
  EXPECT_FAILS_WITH(readMem(bytes, out, error), error,
                    "exceeds the 100 MB limit");
  bytes = makeSafetensors(kTwo, Bytes(12, 0));
  bytes[0] = uint8_t(bytes[0] + 13); // longer than the file
  EXPECT_FAILS_WITH(readMem(bytes, out, error), error, "runs past the end");
  bytes = makeSafetensors(kTwo, Bytes(12, 0));
  bytes[0] = uint8_t(bytes[0] - 1); // JSON cut by one byte
  EXPECT_FAILS_WITH(readMem(bytes, out, error), error, "bad header");
}

TEST(Safetensors, WrongDtype) {
  TensorMap out;
  std::string error;
  auto one = [](const std::string &dtype, size_t bytes) {
    return makeSafetensors("{\"a\":{\"dtype\":\"" + dtype +
                               "\",\"shape\":[1],\"data_offsets\":[0," +
                               std::to_string(bytes) + "]}}",
                           Bytes(bytes, 0));
  };
  EXPECT_FAILS_WITH(readMem(one("I32", 4), out, error), error,
                    "tensor 'a': dtype 'I32' is not supported (F32, BF16, F16, "
                    "F64)");
  EXPECT_FAILS_WITH(readMem(one("F8_E4M3", 1), out, error), error,
                    "dtype 'F8_E4M3' is not supported");
  ReadOptions options;
  options.skipNonFloat = true;
  out.clear();
  ASSERT_TRUE(readMem(one("I64", 8), out, error, options)) << error;
  EXPECT_TRUE(out.empty());
  EXPECT_FAILS_WITH(readMem(one("F8_E5M2", 1), out, error, options), error,
                    "dtype 'F8_E5M2' is not supported");
}

TEST(Safetensors, DuplicateKeysAndNesting) {
  TensorMap out;
  std::string error;
  std::string dup = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                    "\"data_offsets\":[0,4]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                    "\"data_offsets\":[4,8]}}";
  EXPECT_FAILS_WITH(readMem(makeSafetensors(dup, Bytes(8, 0)), out, error),
                    error, "duplicate key 'a'");
  std::string bomb = "{\"__metadata__\":" + std::string(10000, '[') +
                     std::string(10000, ']') + "}";
  EXPECT_FAILS_WITH(readMem(makeSafetensors(bomb, {}), out, error), error,
                    "nesting deeper than 64 levels");
  // Names equal once "params/" is stripped.
  std::string twice = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                      "\"data_offsets\":[0,4]},"
                      "\"params/a\":{\"dtype\":\"F32\",\"shape\":[1],"
                      "\"data_offsets\":[4,8]}}";
  EXPECT_FAILS_WITH(readMem(makeSafetensors(twice, Bytes(8, 0)), out, error),
                    error, "tensor 'a' is given twice");
}

} // namespace
} // namespace vmoe::readers::test
