//===- ShardTest.cpp - Expert-sharded sessions over a collective ----------===//
//
// Ranks are threads of this process (InProcessCollective); every rank holds
// its own toy shard module (ShardSupport.h). Checks every byte the
// all-to-all moves at several batches and capacities, the handshake at
// session creation, the per-call agreement, and a rank that never comes.
//
//===----------------------------------------------------------------------===//

#include "InProcessCollective.h"
#include "ShardSupport.h"

#include <functional>
#include <memory>
#include <thread>

namespace vmoe {
namespace test {
namespace {

/// Runs fn(rank) on `size` threads at once (collective calls need that).
void onRanks(uint32_t size, const std::function<void(uint32_t)> &fn) {
  std::vector<std::thread> threads;
  for (uint32_t r = 0; r < size; ++r)
    threads.emplace_back(fn, r);
  for (std::thread &t : threads)
    t.join();
}

struct Rank {
  Loaded loaded;
  vmoe_session_t *session = nullptr;
  vmoe_status_t status = VMOE_STATUS_INTERNAL;
  std::string message;
  ~Rank() { vmoe_session_destroy(session); }
};

std::vector<uint8_t> shardBytes(const ShardParams &p,
                                const DispatchDesc *collective = nullptr) {
  ModuleWriter w;
  buildShardModule(w, p, collective);
  return serialize(w);
}

/// Loads every rank's module and creates the sessions concurrently.
void createRanks(std::vector<std::unique_ptr<Rank>> &ranks,
                 const std::vector<ShardParams> &params, InProcessGroup &group,
                 vmoe_device_t device = VMOE_DEVICE_CPU) {
  ranks.clear();
  for (const ShardParams &p : params) {
    ranks.push_back(std::make_unique<Rank>());
    ranks.back()->loaded = loadBytes(shardBytes(p));
    ASSERT_EQ(ranks.back()->loaded.status, VMOE_STATUS_OK)
        << ranks.back()->loaded.message;
  }
  onRanks(group.size(), [&](uint32_t r) {
    vmoe_session_options_t options;
    vmoe_session_options_init(&options);
    options.thread_count = 1;
    options.device = device;
    options.collective = group.collective(r);
    vmoe_message_t message;
    message.text[0] = 0;
    ranks[r]->status = vmoe_session_create(ranks[r]->loaded.module, &options,
                                           &ranks[r]->session, &message);
    ranks[r]->message = message.text;
  });
}

std::vector<ShardParams> shardParams(uint32_t size) {
  std::vector<ShardParams> params(size);
  for (uint32_t r = 0; r < size; ++r) {
    params[r].rank = r;
    params[r].size = size;
  }
  return params;
}

struct CallResult {
  vmoe_status_t status = VMOE_STATUS_INTERNAL;
  std::string message;
  std::vector<float> recv;
};

/// One call on every rank at `batch` (per rank) and capacity factor `cf`.
std::vector<CallResult> runRanks(std::vector<std::unique_ptr<Rank>> &ranks,
                                 const ShardParams &p,
                                 std::vector<int64_t> batches,
                                 std::vector<double> factors,
                                 uint32_t badDtypeRank = UINT32_MAX) {
  uint32_t size = static_cast<uint32_t>(ranks.size());
  std::vector<CallResult> results(size);
  onRanks(size, [&](uint32_t r) {
    std::vector<float> x = shardInput(r, batches[r], p);
    std::vector<int64_t> xShape = {batches[r], p.tokensPerImage};
    int64_t recvFloats = static_cast<int64_t>(p.size * shardMaxChunk(p));
    std::vector<int64_t> recvShape = {recvFloats};
    CallResult &result = results[r];
    result.recv.assign(static_cast<size_t>(recvFloats), -1.0f);
    vmoe_tensor_t input =
        tensor(r == badDtypeRank ? VMOE_DTYPE_I32 : VMOE_DTYPE_F32, xShape,
               x.data(), x.size() * 4);
    vmoe_tensor_t output = tensor(VMOE_DTYPE_F32, recvShape, result.recv.data(),
                                  result.recv.size() * 4);
    vmoe_run_options_t options;
    vmoe_run_options_init(&options);
    options.capacity_factor = factors[r];
    vmoe_message_t message;
    message.text[0] = 0;
    result.status = vmoe_session_run(ranks[r]->session, &input, 1, &output, 1,
                                     &options, &message);
    result.message = message.text;
  });
  return results;
}

void expectExchange(std::vector<std::unique_ptr<Rank>> &ranks,
                    const ShardParams &p, int64_t batch, double cf,
                    std::vector<std::vector<float>> *previous) {
  uint32_t size = static_cast<uint32_t>(ranks.size());
  std::vector<CallResult> results =
      runRanks(ranks, p, std::vector<int64_t>(size, batch),
               std::vector<double>(size, cf));
  uint32_t capacity = shardCapacity(p, cf);
  for (uint32_t r = 0; r < size; ++r) {
    ASSERT_EQ(results[r].status, VMOE_STATUS_OK) << results[r].message;
    std::vector<float> want = shardExpectedRecv(r, batch, capacity, p);
    const std::vector<float> &got = results[r].recv;
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_EQ(got[i], want[i]) << "rank " << r << " batch " << batch << " cf "
                                 << cf << " float " << i;
    // Past the call's chunks the receive region keeps what it held: the
    // exchange moved exactly size * chunk bytes.
    for (size_t i = want.size(); i < got.size(); ++i)
      ASSERT_EQ(got[i], (*previous)[r][i])
          << "rank " << r << " wrote past its chunks at float " << i;
    (*previous)[r] = got;
  }
}

class ShardExchangeTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(ShardExchangeTest, MovesEveryChunkAtEveryBatchAndCapacity) {
  uint32_t size = GetParam();
  std::vector<ShardParams> params = shardParams(size);
  InProcessGroup group(size);
  std::vector<std::unique_ptr<Rank>> ranks;
  createRanks(ranks, params, group);
  for (uint32_t r = 0; r < size; ++r)
    ASSERT_EQ(ranks[r]->status, VMOE_STATUS_OK) << ranks[r]->message;
  const ShardParams &p = params[0];
  std::vector<std::vector<float>> previous(
      size, std::vector<float>(p.size * shardMaxChunk(p), 0.0f));
  // Smallest first: the untouched tail of the region is still zero.
  expectExchange(ranks, p, 1, 1.0, &previous);
  expectExchange(ranks, p, 4, 4.0, &previous);
  expectExchange(ranks, p, 3, 2.0, &previous);
  expectExchange(ranks, p, 2, 1.0, &previous);
  for (uint32_t r = 0; r < size; ++r)
    EXPECT_EQ(group.allToAllCount(r), 4u);
}

INSTANTIATE_TEST_SUITE_P(Ranks, ShardExchangeTest, ::testing::Values(2u, 4u));

TEST(ShardSessionTest, ShardInfoAndDispatchName) {
  ShardParams p;
  p.rank = 1;
  p.size = 2;
  p.modelId = {7, 9};
  Loaded loaded = loadBytes(shardBytes(p));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  vmoe_shard_info_t info;
  vmoe_module_shard_info(loaded.module, &info);
  EXPECT_EQ(info.sharded, 1);
  EXPECT_EQ(info.rank, 1u);
  EXPECT_EQ(info.size, 2u);
  EXPECT_EQ(info.model_id[0], 7u);
  EXPECT_EQ(info.model_id[1], 9u);
  EXPECT_STREQ(
      vmoe_module_dispatch_kernel(loaded.module, kShardCollectiveDispatch),
      "all_to_all");
  ModuleWriter plain;
  buildAddModule(plain);
  Loaded unsharded = loadBytes(serialize(plain));
  vmoe_module_shard_info(unsharded.module, &info);
  EXPECT_EQ(info.sharded, 0);
}

TEST(ShardSessionTest, NeedsACollective) {
  Loaded loaded = loadBytes(shardBytes(ShardParams()));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  vmoe_session_t *session = nullptr;
  vmoe_message_t message;
  EXPECT_EQ(vmoe_session_create(loaded.module, nullptr, &session, &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(message.text).find("needs a collective"),
            std::string::npos)
      << message.text;
  // A collective whose rank is past its size, or without functions.
  InProcessGroup group(2);
  vmoe_collective_t bad = *group.collective(0);
  bad.rank = 2;
  vmoe_session_options_t options;
  vmoe_session_options_init(&options);
  options.collective = &bad;
  EXPECT_EQ(vmoe_session_create(loaded.module, &options, &session, &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(message.text).find("out of range"), std::string::npos)
      << message.text;
  bad = *group.collective(0);
  bad.barrier = nullptr;
  EXPECT_EQ(vmoe_session_create(loaded.module, &options, &session, &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(message.text).find("lacks a function"),
            std::string::npos)
      << message.text;
}

/// Every rank fails session creation with a message containing `want`.
void expectAllRefuse(std::vector<ShardParams> params, uint32_t groupSize,
                     const char *want,
                     vmoe_status_t status = VMOE_STATUS_INVALID_ARGUMENT) {
  InProcessGroup group(groupSize);
  std::vector<std::unique_ptr<Rank>> ranks;
  createRanks(ranks, params, group);
  for (uint32_t r = 0; r < groupSize; ++r) {
    EXPECT_EQ(ranks[r]->status, status) << "rank " << r;
    EXPECT_NE(ranks[r]->message.find(want), std::string::npos)
        << "rank " << r << ": " << ranks[r]->message;
    EXPECT_EQ(ranks[r]->session, nullptr);
  }
}

TEST(ShardSessionTest, EveryRankRefusesAModuleOfAnotherRankCount) {
  // Two ranks run the first two parts of a 4-shard compile.
  std::vector<ShardParams> params = shardParams(4);
  params.resize(2);
  expectAllRefuse(params, 2,
                  "holds a module of 4 expert shards, but the job has 2 ranks");
}

TEST(ShardSessionTest, EveryRankRefusesPartsOfAnotherModel) {
  std::vector<ShardParams> params = shardParams(2);
  params[1].modelId = {0x1234, 0x9999};
  expectAllRefuse(params, 2, "rank 1 holds a part of another model");
}

TEST(ShardSessionTest, EveryRankRefusesTheSameShardTwice) {
  std::vector<ShardParams> params = shardParams(2);
  params[1].rank = 0;
  expectAllRefuse(params, 2, "ranks 0 and 1 both hold expert shard 0");
}

TEST(ShardSessionTest, EveryRankRefusesShardsOnTheWrongRanks) {
  std::vector<ShardParams> params = shardParams(2);
  std::swap(params[0], params[1]);
  expectAllRefuse(params, 2, "rank 0 holds expert shard 1");
}

TEST(ShardSessionTest, CudaRefusesShardsAndTheOtherRanksFollow) {
  InProcessGroup group(2);
  std::vector<std::unique_ptr<Rank>> ranks;
  createRanks(ranks, shardParams(2), group, VMOE_DEVICE_CUDA);
  for (uint32_t r = 0; r < 2; ++r) {
    EXPECT_EQ(ranks[r]->status, VMOE_STATUS_UNSUPPORTED) << ranks[r]->message;
    EXPECT_NE(ranks[r]->message.find("CPU only"), std::string::npos)
        << ranks[r]->message;
  }
}

TEST(ShardSessionTest, OneRanksFailureFailsTheOthers) {
  // Rank 1 asks for an unknown device: its own error; rank 0 learns of it.
  InProcessGroup group(2);
  std::vector<std::unique_ptr<Rank>> ranks;
  std::vector<ShardParams> params = shardParams(2);
  for (const ShardParams &p : params) {
    ranks.push_back(std::make_unique<Rank>());
    ranks.back()->loaded = loadBytes(shardBytes(p));
  }
  onRanks(2, [&](uint32_t r) {
    vmoe_session_options_t options;
    vmoe_session_options_init(&options);
    options.thread_count = 1;
    options.collective = group.collective(r);
    if (r == 1)
      options.bpr = 5;
    vmoe_message_t message;
    ranks[r]->status = vmoe_session_create(ranks[r]->loaded.module, &options,
                                           &ranks[r]->session, &message);
    ranks[r]->message = message.text;
  });
  EXPECT_EQ(ranks[1]->status, VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(ranks[1]->message.find("BPR option 5"), std::string::npos)
      << ranks[1]->message;
  EXPECT_EQ(ranks[0]->status, VMOE_STATUS_FAILED_PRECONDITION);
  EXPECT_NE(ranks[0]->message.find("rank 1 could not create its session"),
            std::string::npos)
      << ranks[0]->message;
}

TEST(ShardSessionTest, CallsMustAgreeOnEveryRank) {
  std::vector<ShardParams> params = shardParams(2);
  InProcessGroup group(2);
  std::vector<std::unique_ptr<Rank>> ranks;
  createRanks(ranks, params, group);
  ASSERT_EQ(ranks[0]->status, VMOE_STATUS_OK) << ranks[0]->message;
  const ShardParams &p = params[0];
  std::vector<CallResult> results = runRanks(ranks, p, {2, 3}, {1.0, 1.0});
  for (uint32_t r = 0; r < 2; ++r) {
    EXPECT_EQ(results[r].status, VMOE_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(results[r].message.find("must run the same batch"),
              std::string::npos)
        << results[r].message;
  }
  results = runRanks(ranks, p, {2, 2}, {1.0, 2.0});
  for (uint32_t r = 0; r < 2; ++r) {
    EXPECT_EQ(results[r].status, VMOE_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(results[r].message.find("same capacity factor, BPR and k"),
              std::string::npos)
        << results[r].message;
  }
  results = runRanks(ranks, p, {2, 2}, {1.0, 1.0}, /*badDtypeRank=*/0);
  EXPECT_EQ(results[0].status, VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(results[0].message.find("expected dtype f32"), std::string::npos)
      << results[0].message;
  EXPECT_EQ(results[1].status, VMOE_STATUS_FAILED_PRECONDITION);
  EXPECT_NE(results[1].message.find("rank 0's call failed its checks"),
            std::string::npos)
      << results[1].message;
  // Failing together leaves the ranks in step: the next call runs.
  std::vector<std::vector<float>> previous(
      2, std::vector<float>(p.size * shardMaxChunk(p), 0.0f));
  expectExchange(ranks, p, 1, 1.0, &previous);
}

TEST(ShardSessionTest, ARankThatNeverComesFailsTheOthersInBoundedTime) {
  std::vector<ShardParams> params = shardParams(2);
  InProcessGroup group(2, std::chrono::milliseconds(200));
  std::vector<std::unique_ptr<Rank>> ranks;
  createRanks(ranks, params, group);
  ASSERT_EQ(ranks[0]->status, VMOE_STATUS_OK) << ranks[0]->message;
  // Only rank 0 runs: rank 1 "died" after creating its session.
  std::vector<float> x = shardInput(0, 1, params[0]);
  std::vector<int64_t> xShape = {1, params[0].tokensPerImage};
  std::vector<float> recv(params[0].size * shardMaxChunk(params[0]));
  std::vector<int64_t> recvShape = {static_cast<int64_t>(recv.size())};
  vmoe_tensor_t input = tensor(VMOE_DTYPE_F32, xShape, x.data(), x.size() * 4);
  vmoe_tensor_t output =
      tensor(VMOE_DTYPE_F32, recvShape, recv.data(), recv.size() * 4);
  vmoe_message_t message;
  EXPECT_EQ(vmoe_session_run(ranks[0]->session, &input, 1, &output, 1, nullptr,
                             &message),
            VMOE_STATUS_FAILED_PRECONDITION);
  EXPECT_NE(std::string(message.text).find("timed out"), std::string::npos)
      << message.text;
  EXPECT_NE(std::string(message.text).find("all-gather failed"),
            std::string::npos)
      << message.text;
}

// ---- the validator
// ------------------------------------------------------------

void expectInvalid(const std::vector<uint8_t> &bytes, const char *want,
                   vmoe_status_t status = VMOE_STATUS_INVALID_MODULE) {
  Loaded loaded = loadBytes(bytes);
  EXPECT_EQ(loaded.status, status) << loaded.message;
  EXPECT_NE(loaded.message.find(want), std::string::npos) << loaded.message;
}

TEST(ShardValidatorTest, RefusesForgedShards) {
  ShardParams p;
  ShardParams bad = p;
  bad.size = 1;
  bad.localExperts = 4;
  expectInvalid(shardBytes(bad), "expert shard count 1 is outside");
  bad = p;
  bad.rank = 2;
  expectInvalid(shardBytes(bad), "expert shard rank 2 is out of range");
  // Experts that do not add up, or start elsewhere than rank * local.
  ModuleWriter w;
  buildShardModule(w, p);
  MoeLayerDesc extra;
  extra.name = "moe1";
  extra.numExperts = 6; // 3 per rank, but the layer claims 2
  extra.groupSize = 4;
  extra.numGroups = 4;
  extra.numTokens = 16;
  extra.tokensPerImage = 4;
  extra.maxCapacity = 4;
  extra.firstExpert = 0;
  extra.localExperts = 2;
  w.addMoeLayer(extra);
  expectInvalid(serialize(w), "MoE layer 1: rank 0 of 2 holds experts [0, +2)");
  ModuleWriter shifted;
  extra.numExperts = 4;
  extra.firstExpert = 1;
  buildShardModule(shifted, p);
  shifted.addMoeLayer(extra);
  expectInvalid(serialize(shifted), "give it [0, +2)");
}

TEST(ShardValidatorTest, RefusesShardsWithoutTheirRequirement) {
  ModuleWriter w;
  buildShardModule(w, ShardParams());
  w.setRequirements(VMOE_REQUIRES_CAPACITY_RULE);
  expectInvalid(serialize(w), "does not require expert shards");
  // The requirement without a shard.
  ModuleWriter plain;
  buildAddModule(plain);
  plain.setRequirements(VMOE_REQUIRES_EXPERT_SHARDS);
  expectInvalid(serialize(plain), "holds no expert_shard table");
}

TEST(ShardValidatorTest, RefusesExpertSlicesOutsideAShard) {
  ModuleWriter w;
  buildEchoModule(w, 8, 1, 4, 1.0, 2.0, 4);
  MoeLayerDesc layer;
  layer.name = "moe1";
  layer.numExperts = 4;
  layer.groupSize = 8;
  layer.numGroups = 1;
  layer.numTokens = 8;
  layer.tokensPerImage = 8;
  layer.maxCapacity = 4;
  layer.localExperts = 2;
  w.addMoeLayer(layer);
  expectInvalid(serialize(w), "but the module is not an expert shard");
}

TEST(ShardValidatorTest, RefusesForgedCollectiveSteps) {
  ShardParams p;
  DispatchDesc c = shardCollective(p);
  uint64_t region = c.recvOffset; // each region's size; the arena is twice
  DispatchDesc bad = c;
  bad.collectiveKind = static_cast<fb::CollectiveKind>(9);
  expectInvalid(shardBytes(p, &bad), "unknown collective kind 9");
  bad = c;
  bad.collectiveLayer = 1;
  expectInvalid(shardBytes(p, &bad), "collective of MoE layer 1 out of range");
  bad = c;
  bad.bindings = {BindingDesc::arena(0, 64)};
  expectInvalid(shardBytes(p, &bad), "takes no bindings, push constants");
  bad = c;
  bad.pushConstants = {PushConstantDesc::literal(1)};
  expectInvalid(shardBytes(p, &bad), "takes no bindings, push constants");
  bad = c;
  bad.recvOffset = region + 64;
  expectInvalid(shardBytes(p, &bad), "collective receive region");
  bad = c;
  bad.sendOffset = 2 * region;
  bad.recvOffset = 0;
  expectInvalid(shardBytes(p, &bad), "collective send region");
  bad = c;
  bad.slotBytes = 8; // twice the chunk: past the arena
  expectInvalid(shardBytes(p, &bad), "exceeds the arena size");
  bad = c;
  bad.sendOffset = 16; // 2 chunks of 20 bytes from 0 and from 16
  bad.recvOffset = 0;
  bad.groupBytes = bad.slotBytes = 1;
  expectInvalid(shardBytes(p, &bad), "overlap");
  bad = c;
  bad.slotBytes = UINT64_MAX / 8; // the chunk overflows 64 bits
  expectInvalid(shardBytes(p, &bad), "overflow");
  bad = c;
  bad.groupBytes = UINT64_MAX / 2; // group part alone fits, the sum does not
  expectInvalid(shardBytes(p, &bad), "overflow");
  // A collective step in a module that is not a shard.
  ModuleWriter plain;
  buildAddModule(plain);
  MoeLayerDesc layer;
  layer.name = "moe0";
  layer.numExperts = 2;
  layer.groupSize = 256;
  layer.numGroups = 4;
  layer.numTokens = 1024;
  layer.tokensPerImage = 256;
  layer.maxCapacity = 128;
  plain.addMoeLayer(layer);
  DispatchDesc stray = c;
  stray.sendOffset = stray.recvOffset = 0;
  plain.addDispatch(stray);
  expectInvalid(serialize(plain), "but the module is not an expert shard");
}

} // namespace
} // namespace test
} // namespace vmoe
