//===- ParserTest.cpp - msgpack and JSON parsing -----------===//

#include "TestUtil.h"

#include "vmoe/readers/BoundedJson.h"
#include "vmoe/readers/MsgpackObject.h"

#include <cmath>

namespace vmoe::readers::test {
namespace {

TEST(Msgpack, DecodesEveryForm) {
  Mp m;
  m.arr(15);
  m.i(5).i(-3).i(200).i(40000).i(3000000000LL).i(int64_t(1) << 40).i(-1000000);
  m.byte(0xcf).be(0xffffffffffffffffull, 8);      // uint64 max
  m.byte(0xd0).be(0x80, 1);                       // int8 -128
  m.byte(0xca).be(0x3fc00000, 4);                 // float32 1.5
  m.byte(0xcb).be(0xc004000000000000ull, 8);      // float64 -2.5
  m.str(std::string(40, 'x')).bin(Bytes(300, 7)); // str8, bin16
  m.ext(5, Bytes(3, 1)).ext(6, Bytes(8, 2));      // ext8, fixext8
  mp::Document doc;
  std::string error;
  ASSERT_TRUE(doc.parse(span(m.b), &error)) << error;
  const mp::Object &a = doc.root();
  ASSERT_EQ(a.type, mp::Type::ARRAY);
  ASSERT_EQ(mp::size(a), 15u);
  std::vector<int64_t> ints = {
      5, -3, 200, 40000, 3000000000LL, int64_t(1) << 40, -1000000};
  for (size_t i = 0; i < ints.size(); ++i) {
    int64_t v = 0;
    EXPECT_TRUE(mp::isInt(mp::item(a, i)));
    EXPECT_TRUE(mp::toInt64(mp::item(a, i), v));
    EXPECT_EQ(v, ints[i]);
  }
  int64_t big = 0;
  EXPECT_EQ(mp::item(a, 7).via.u64, 0xffffffffffffffffull);
  EXPECT_FALSE(mp::toInt64(mp::item(a, 7), big)); // past int64_t
  EXPECT_EQ(mp::item(a, 8).via.i64, -128);
  EXPECT_EQ(mp::item(a, 9).via.f64, 1.5);
  EXPECT_EQ(mp::item(a, 10).via.f64, -2.5);
  EXPECT_EQ(mp::text(mp::item(a, 11)), std::string(40, 'x'));
  EXPECT_EQ(mp::bytes(mp::item(a, 12)).size, 300u);
  EXPECT_TRUE(mp::isExt(mp::item(a, 13), 5));
  EXPECT_EQ(mp::bytes(mp::item(a, 13)).size, 3u);
  EXPECT_TRUE(mp::isExt(mp::item(a, 14), 6));
  EXPECT_EQ(mp::bytes(mp::item(a, 14)).size, 8u);
  EXPECT_EQ(mp::bytes(mp::item(a, 14)).data[0], 2);
  // str, bin and ext stay in the input (no copies).
  EXPECT_EQ(mp::bytes(mp::item(a, 12)).data,
            m.b.data() + (m.b.size() - 10 - 6 - 300));
  EXPECT_STREQ(mp::kindName(mp::item(a, 13)), "ext");
  // Maps, nil, bool and 16/32-bit containers.
  Mp n;
  n.map(2).str("a").nil().str("b").byte(0xdd).be(2, 4).boolean(true).boolean(
      false);
  ASSERT_TRUE(doc.parse(span(n.b), &error)) << error;
  EXPECT_EQ(mp::find(doc.root(), "a")->type, mp::Type::NIL);
  const mp::Object *b = mp::find(doc.root(), "b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(mp::size(*b), 2u);
  EXPECT_TRUE(mp::item(*b, 0).via.boolean);
  EXPECT_EQ(mp::find(doc.root(), "c"), nullptr);
}

TEST(Msgpack, RejectsMalformedInput) {
  mp::Document doc;
  std::string error;
  EXPECT_FAILS_WITH(doc.parse(span(Bytes{0xc1}), &error), error,
                    "invalid msgpack byte 0xc1 at offset 0");
  EXPECT_FAILS_WITH(doc.parse(span(Bytes{0x92, 0x01, 0xc1}), &error), error,
                    "invalid msgpack byte 0xc1 at offset 2");
  EXPECT_FAILS_WITH(doc.parse(span(Bytes{0x01, 0x02}), &error), error,
                    "trailing bytes: the msgpack object ends at offset 1 of 2");
  EXPECT_FAILS_WITH(doc.parse(span(Bytes{}), &error), error,
                    "truncated: the 0 bytes end inside a msgpack value");
  EXPECT_FAILS_WITH(doc.parse(span(Bytes{0xcd, 0x01}), &error), error,
                    "truncated: the 2 bytes end inside a msgpack value");
  EXPECT_FAILS_WITH(
      doc.parse(span(Bytes{0xdb, 0xff, 0xff, 0xff, 0xff}), &error), error,
      "truncated: the 5 bytes end inside a msgpack value");
  // Declared counts are checked before anything is reserved for them.
  EXPECT_FAILS_WITH(
      doc.parse(span(Bytes{0xdd, 0x7f, 0xff, 0xff, 0xff, 0}), &error), error,
      "truncated: an array of 2147483647 items cannot fit in the 6 bytes");
  EXPECT_FAILS_WITH(doc.parse(span(Bytes{0xd8, 0x01, 0x00}), &error), error,
                    "truncated");
  // Every prefix of a valid document fails cleanly.
  Mp m;
  m.map(2)
      .str("key")
      .arr(3)
      .i(1)
      .i(300)
      .bin(Bytes(20, 1))
      .str("e")
      .ext(8, Bytes(5));
  for (size_t cut = 0; cut < m.b.size(); ++cut) {
    Bytes prefix(m.b.begin(), m.b.begin() + cut);
    EXPECT_FALSE(doc.parse(span(prefix), &error)) << cut;
    EXPECT_EQ(error.rfind("truncated", 0), 0u) << error;
  }
  ASSERT_TRUE(doc.parse(span(m.b), &error)) << error;
  // Depth: 64 levels are fine, 65 are not.
  Bytes deep(63, 0x91);
  deep.push_back(0x90);
  EXPECT_TRUE(doc.parse(span(deep), &error)) << error;
  deep.insert(deep.begin(), 0x91);
  EXPECT_FAILS_WITH(doc.parse(span(deep), &error), error,
                    "msgpack nesting deeper than 64 levels");
  // The value count: what the containers declare, before the tree is built.
  ReadLimits limits;
  limits.maxValues = 100;
  Mp wide;
  wide.arr(2).arr(60);
  for (int i = 0; i < 60; ++i)
    wide.nil();
  wide.arr(60);
  for (int i = 0; i < 60; ++i)
    wide.nil();
  EXPECT_FAILS_WITH(doc.parse(span(wide.b), &error, limits), error,
                    "an array of 60 items makes more than 100 msgpack values");
  limits.maxValues = 123;
  EXPECT_TRUE(doc.parse(span(wide.b), &error, limits)) << error;
}

TEST(BoundedJson, ParsesValues) {
  nlohmann::json doc;
  std::string error;
  ASSERT_TRUE(parseBoundedJson(
      " {\"a\": [1, -2, 3.5, 1e3, -0, 12345678901234567890],"
      " \"s\": \"x\\u00e9\\ud83d\\ude00\\n\\\"\","
      " \"t\": true, \"f\": false, \"n\": null, \"o\": {}} \n",
      doc, &error))
      << error;
  const nlohmann::json &a = doc["a"];
  ASSERT_EQ(a.size(), 6u);
  EXPECT_TRUE(a[0].is_number_integer());
  EXPECT_EQ(a[1].get<int64_t>(), -2);
  EXPECT_TRUE(a[2].is_number_float());
  EXPECT_EQ(a[2].get<double>(), 3.5);
  EXPECT_EQ(a[3].get<double>(), 1000.0);
  EXPECT_TRUE(a[4].is_number_integer());
  uint64_t size = 0;
  EXPECT_TRUE(jsonToSize(a[0], size));
  EXPECT_EQ(size, 1u);
  EXPECT_FALSE(jsonToSize(a[1], size)); // negative
  EXPECT_FALSE(jsonToSize(a[2], size)); // not an integer
  EXPECT_EQ(doc["s"].get<std::string>(), "x\xc3\xa9\xf0\x9f\x98\x80\n\"");
  EXPECT_TRUE(doc["t"].get<bool>());
  EXPECT_TRUE(doc["n"].is_null());
  EXPECT_TRUE(doc["o"].is_object());
}

TEST(BoundedJson, RejectsMalformedInput) {
  nlohmann::json doc;
  std::string error;
  struct Case {
    const char *text, *message;
  };
  // nlohmann-json's strict grammar; every syntax error says where.
  for (Case c : {Case{"", "JSON line 1, column 1: syntax error"},
                 Case{"{\"a\":1,}", "syntax error"},
                 Case{"[1,]", "syntax error"}, Case{"[01]", "syntax error"},
                 Case{"[1.]", "syntax error"}, Case{"[NaN]", "syntax error"},
                 Case{"[\"a\nb\"]", "syntax error"},
                 Case{"[\"\\x\"]", "syntax error"},
                 Case{"[\"\\ud800\"]", "syntax error"},
                 Case{"[\"\\udc00\"]", "syntax error"},
                 Case{"[\"\xff\"]", "syntax error"},
                 Case{"[\"\xc0\xaf\"]", "syntax error"},
                 Case{"{\"a\":1,\"a\":2}", "duplicate key 'a'"},
                 Case{"{} {}", "syntax error"}, Case{"[tru]", "syntax error"},
                 Case{"\n\n  [1 2]", "JSON line 3, column 6: syntax error"}})
    EXPECT_FAILS_WITH(parseBoundedJson(c.text, doc, &error), error, c.message);
  std::string bomb(100000, '[');
  EXPECT_FAILS_WITH(parseBoundedJson(bomb, doc, &error), error,
                    "JSON nesting deeper than 64 levels");
  ReadLimits limits;
  limits.maxValues = 100;
  std::string wide = "[" + std::string(200, '0');
  for (size_t i = 2; i < wide.size(); i += 2)
    wide[i] = ',';
  wide += "]";
  EXPECT_FAILS_WITH(parseBoundedJson(wide, doc, &error, limits), error,
                    "more than 100 JSON values");
}

TEST(Conversions, HalfBfloat16AndDouble) {
  // Every float16 value against its definition.
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    int exponent = (bits >> 10) & 31, mantissa = bits & 1023;
    double sign = (bits & 0x8000) ? -1 : 1, want;
    if (exponent == 0)
      want = sign * std::ldexp(mantissa, -24);
    else if (exponent == 31)
      want = mantissa ? NAN : sign * INFINITY;
    else
      want = sign * std::ldexp(1024 + mantissa, exponent - 25);
    float got = halfToFloat(uint16_t(bits));
    if (std::isnan(want))
      EXPECT_TRUE(std::isnan(got)) << bits;
    else
      ASSERT_EQ(got, float(want)) << bits;
    if (want == 0)
      EXPECT_EQ(std::signbit(got), (bits & 0x8000) != 0);
  }
  EXPECT_EQ(bfloat16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(bfloat16ToFloat(0xc020), -2.5f);
  EXPECT_EQ(bfloat16ToFloat(0x0008), std::ldexp(1.0f, -130));
  EXPECT_TRUE(std::isinf(bfloat16ToFloat(0x7f80)));
  // float64 -> float32 rounds to nearest, as numpy's astype.
  uint8_t bytes[3 * 8];
  double values[3] = {0.1, 1e300, 1e-50};
  std::memcpy(bytes, values, sizeof(bytes));
  float out[3];
  convertToFloat(DType::F64, bytes, 3, out);
  EXPECT_EQ(out[0], 0.1f);
  EXPECT_TRUE(std::isinf(out[1]));
  EXPECT_EQ(out[2], 0.0f);
}

} // namespace
} // namespace vmoe::readers::test
