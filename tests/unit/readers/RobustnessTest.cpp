//===- RobustnessTest.cpp - mutated files never crash a reader ------------===//
//
// A fixed-seed smoke test ahead of real fuzzing: byte flips, truncations,
// insertions and 32-bit overwrites of the generated files must give either
// weights or an error message (run it under ASan/UBSan to catch memory
// errors).
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "vmoe/readers/ModelConfig.h"
#include "vmoe/readers/Npz.h"
#include "vmoe/readers/Safetensors.h"
#include "vmoe/readers/VmoeCheckpoint.h"

#include <random>

namespace vmoe::readers::test {
namespace {

Bytes mutate(Bytes b, std::mt19937 &rng) {
  auto pick = [&](size_t n) { return n ? size_t(rng() % n) : 0; };
  int edits = 1 + int(rng() % 3);
  for (int k = 0; k < edits && !b.empty(); ++k) {
    switch (rng() % 5) {
    case 0:
      b[pick(b.size())] ^= uint8_t(1u << (rng() % 8));
      break;
    case 1:
      b.resize(pick(b.size()));
      break;
    case 2:
      b.insert(b.begin() + long(pick(b.size())), uint8_t(rng()));
      break;
    case 3: {
      size_t at = pick(b.size());
      uint32_t v = rng() % 2 ? 0xffffffffu : uint32_t(rng());
      for (int j = 0; j < 4 && at + j < b.size(); ++j)
        b[at + j] = uint8_t(v >> (8 * j));
      break;
    }
    default:
      b[pick(b.size())] = uint8_t(rng());
      break;
    }
  }
  return b;
}

template <typename Read>
void hammer(const Bytes &original, unsigned seed, int rounds, Read read) {
  std::mt19937 rng(seed);
  int failures = 0;
  for (int r = 0; r < rounds; ++r) {
    Bytes b = mutate(original, rng);
    std::string error;
    if (!read(b, error)) {
      ++failures;
      ASSERT_FALSE(error.empty()) << "round " << r;
    }
  }
  EXPECT_GT(failures, 0);
}

TEST(Robustness, MutatedNpz) {
  REQUIRE_TEST_DATA();
  for (const char *file : {"tiny.npz", "tiny_params_deflate.npz"})
    hammer(readFile(dataPath(file)), 1, 300,
           [](const Bytes &b, std::string &error) {
             TensorMap out;
             return readNpz(span(b), "m.npz", out, &error);
           });
}

TEST(Robustness, MutatedSafetensors) {
  REQUIRE_TEST_DATA();
  hammer(readFile(dataPath("tiny.safetensors")), 2, 300,
         [](const Bytes &b, std::string &error) {
           TensorMap out;
           return readSafetensors(span(b), "m.safetensors", out, &error);
         });
}

TEST(Robustness, MutatedCheckpoint) {
  REQUIRE_TEST_DATA();
  Bytes index = readFile(dataPath("tiny_ckpt_sharded.index"));
  std::vector<Bytes> shards;
  for (int s = 0; s < 3; ++s)
    shards.push_back(
        readFile(vmoeShardPath(dataPath("tiny_ckpt_sharded"), s, 3)));
  hammer(index, 3, 200, [&](const Bytes &b, std::string &error) {
    TensorMap out;
    return readCheckpoint(b, shards, out, error);
  });
  for (int s = 0; s < 3; ++s)
    hammer(shards[s], 4 + s, 30, [&](const Bytes &b, std::string &error) {
      std::vector<Bytes> mutated = shards;
      mutated[s] = b;
      TensorMap out;
      return readCheckpoint(index, mutated, out, error);
    });
  // A small checkpoint of every dtype, hammered harder.
  Bytes smallIndex = readFile(dataPath("dtypes_ckpt.index"));
  Bytes smallShard = readFile(vmoeShardPath(dataPath("dtypes_ckpt"), 0, 1));
  hammer(smallIndex, 8, 300, [&](const Bytes &b, std::string &error) {
    TensorMap out;
    return readCheckpoint(b, {smallShard}, out, error);
  });
  hammer(smallShard, 9, 300, [&](const Bytes &b, std::string &error) {
    TensorMap out;
    return readCheckpoint(smallIndex, {b}, out, error);
  });
}

TEST(Robustness, MutatedConfig) {
  REQUIRE_TEST_DATA();
  hammer(readFile(dataPath("tiny_config.json")), 7, 500,
         [](const Bytes &b, std::string &error) {
           ModelConfig c;
           return parseModelConfig(
               std::string_view(reinterpret_cast<const char *>(b.data()),
                                b.size()),
               "m.json", c, &error);
         });
}

} // namespace
} // namespace vmoe::readers::test
