//===- ShardFilesTest.cpp - what the rank modules of a compile hold -------===//
//
// compileToShardedModules: each rank's module holds the dense weights and
// exactly its own experts' packed bytes (a slice of the unsharded module's),
// marks its experts in every MoE layer, and carries the model id that the
// ranks of one compile share and other compiles do not.
//
//===----------------------------------------------------------------------===//

#include "E2eSupport.h"
#include "vmoe/Import/ModelBuilder.h"
#include "vmoe/Pipelines/Compile.h"
#include "vmoe/module_format.h"
#include "vmoe/module_generated.h"
#include "vmoe/readers/TensorSource.h"
#include "vmoe/runtime.h"

#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>

namespace {

using mlir::vmoe::VitMoeConfig;
using mlir::vmoe::WeightMap;
namespace fb = ::vmoe::fb;

std::vector<std::vector<uint8_t>> compile(const VitMoeConfig &config,
                                          const WeightMap &weights,
                                          unsigned shards,
                                          std::string *error = nullptr) {
  return vmoe::e2e::compileRanks(config, weights, shards, {}, error);
}

const fb::Module *rootOf(const std::vector<uint8_t> &bytes) {
  vmoe_module_header_t h;
  std::memcpy(&h, bytes.data(), sizeof(h));
  return fb::GetModule(bytes.data() + h.flatbuffer_offset);
}

/// Constant name -> its segment's bytes.
std::map<std::string, std::vector<uint8_t>>
constantsOf(const std::vector<uint8_t> &bytes) {
  vmoe_module_header_t h;
  std::memcpy(&h, bytes.data(), sizeof(h));
  const fb::Module *m = rootOf(bytes);
  std::map<std::string, std::vector<uint8_t>> out;
  for (const fb::Constant *c : *m->constants()) {
    const fb::Segment *s = m->segments()->Get(c->segment());
    const uint8_t *at = bytes.data() + h.segment_base + s->offset();
    out[c->name()->str()].assign(at, at + s->length());
  }
  return out;
}

vmoe_shard_info_t shardInfo(const std::vector<uint8_t> &bytes) {
  vmoe_module_t *module = nullptr;
  vmoe_message_t msg;
  vmoe_shard_info_t info = {};
  EXPECT_EQ(vmoe_module_load_memory(bytes.data(), bytes.size(),
                                    VMOE_MEMORY_COPY, &module, &msg),
            VMOE_STATUS_OK)
      << msg.text;
  if (module)
    vmoe_module_shard_info(module, &info);
  vmoe_module_release(module);
  return info;
}

VitMoeConfig smallConfig() {
  VitMoeConfig config = vmoe::e2e::smallVitMoe("shard-files");
  config.numExperts = 8;
  config.moeLayers = {0, 1};
  return config;
}

TEST(ShardFiles, EachRankHoldsItsExpertsOnly) {
  VitMoeConfig config = smallConfig();
  WeightMap weights = mlir::vmoe::randomWeights(config, 3);
  std::vector<std::vector<uint8_t>> whole = compile(config, weights, 1);
  const unsigned shards = 4;
  std::vector<std::vector<uint8_t>> ranks = compile(config, weights, shards);
  ASSERT_EQ(whole.size(), 1u);
  ASSERT_EQ(ranks.size(), shards);
  auto all = constantsOf(whole[0]);
  unsigned sliced = 0;
  for (unsigned r = 0; r < shards; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    EXPECT_LT(ranks[r].size(), whole[0].size());
    const fb::Module *m = rootOf(ranks[r]);
    EXPECT_TRUE(m->requirements() & VMOE_REQUIRES_EXPERT_SHARDS);
    ASSERT_TRUE(m->expert_shard());
    EXPECT_EQ(m->expert_shard()->rank(), r);
    EXPECT_EQ(m->expert_shard()->size(), shards);
    for (const fb::MoeLayer *l : *m->moe_layers()) {
      EXPECT_EQ(l->num_experts(), 8u);
      EXPECT_EQ(l->local_experts(), 2u);
      EXPECT_EQ(l->first_expert(), 2 * r);
    }
    // Every constant: the unsharded module's bytes (dense weights), or the
    // rank's quarter of them (its experts).
    for (auto &[name, bytes] : constantsOf(ranks[r])) {
      ASSERT_TRUE(all.count(name)) << name;
      const std::vector<uint8_t> &full = all[name];
      if (bytes.size() == full.size()) {
        EXPECT_EQ(bytes, full) << name;
        continue;
      }
      ASSERT_EQ(bytes.size() * shards, full.size()) << name;
      EXPECT_EQ(0, std::memcmp(bytes.data(), full.data() + r * bytes.size(),
                               bytes.size()))
          << name;
      sliced += r == 0;
    }
  }
  // w1, its bias, w2, its bias, of two MoE layers.
  EXPECT_EQ(sliced, 8u);
  // The unsharded module is no shard.
  EXPECT_FALSE(rootOf(whole[0])->expert_shard());
  EXPECT_EQ(rootOf(whole[0])->requirements() & VMOE_REQUIRES_EXPERT_SHARDS, 0u);
}

TEST(ShardFiles, ModelIdIsSharedByOneCompileOnly) {
  VitMoeConfig config = smallConfig();
  WeightMap weights = mlir::vmoe::randomWeights(config, 3);
  auto a = compile(config, weights, 2);
  auto again = compile(config, weights, 2);
  auto otherWeights = compile(config, mlir::vmoe::randomWeights(config, 4), 2);
  auto fourRanks = compile(config, weights, 4);
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(again.size(), 2u);
  ASSERT_EQ(otherWeights.size(), 2u);
  ASSERT_EQ(fourRanks.size(), 4u);
  vmoe_shard_info_t r0 = shardInfo(a[0]), r1 = shardInfo(a[1]);
  EXPECT_TRUE(r0.sharded && r1.sharded);
  EXPECT_EQ(r0.rank, 0u);
  EXPECT_EQ(r1.rank, 1u);
  EXPECT_EQ(r1.size, 2u);
  auto id = [](const vmoe_shard_info_t &i) {
    return std::make_pair(i.model_id[0], i.model_id[1]);
  };
  EXPECT_EQ(id(r0), id(r1));
  // Deterministic: the same compile gives the same id (and bytes).
  EXPECT_EQ(id(shardInfo(again[0])), id(r0));
  EXPECT_EQ(again[1], a[1]);
  // Other weights, another rank count: another model.
  EXPECT_NE(id(shardInfo(otherWeights[0])), id(r0));
  EXPECT_NE(id(shardInfo(fourRanks[0])), id(r0));
}

TEST(ShardFiles, RefusesRankCountsThatDoNotDivideTheExperts) {
  VitMoeConfig config = smallConfig();
  WeightMap weights = mlir::vmoe::randomWeights(config, 3);
  std::string error;
  EXPECT_TRUE(compile(config, weights, 3, &error).empty());
  EXPECT_NE(error.find("has 8 experts, which do not split over "
                       "expert-shards=3 ranks"),
            std::string::npos)
      << error;
}

} // namespace
