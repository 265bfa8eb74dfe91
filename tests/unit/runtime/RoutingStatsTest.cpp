//===- RoutingStatsTest.cpp - Routing statistics of the last call ---------===//
//
// A module whose routing kernel (TestKernels.c) fills the statistics
// buffers from given expert choices the way vmoe assigns slots; the test
// recomputes kept/dropped, per-expert load and per-image coverage on its own
// and compares with what the runtime reports.
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#include <random>

namespace vmoe {
namespace test {
namespace {

constexpr uint32_t kExperts = 4, kK = 2, kTokensPerImage = 8;
constexpr uint32_t kGroupSize = 16; // two images per group
constexpr int64_t kMaxBatch = 4;
constexpr uint32_t kGroups = kMaxBatch * kTokensPerImage / kGroupSize;
constexpr uint32_t kTokens = kGroups * kGroupSize;

void buildRoutingModule(ModuleWriter &w) {
  uint32_t exe = addTestExecutable(w);
  w.setBatch(kMaxBatch, 2);
  w.addInput(
      {"expert_ids", fb::DType::I32, {kMaxBatch, kTokensPerImage, kK}, 0});
  w.addOutput({"kept", fb::DType::I32, {kMaxBatch, kTokensPerImage}, 0});
  const uint64_t countsOffset = 0, countsBytes = kGroups * kExperts * 4;
  const uint64_t keptOffset = 64, keptBytes = kTokens * 4;
  w.setArena(keptOffset + keptBytes);
  MoeLayerDesc layer;
  layer.name = "encoderblock_1/moe";
  layer.numExperts = kExperts;
  layer.k = kK;
  layer.groupSize = kGroupSize;
  layer.numGroups = kGroups;
  layer.numTokens = kTokens;
  layer.tokensPerImage = kTokensPerImage;
  layer.defaultCapacityFactor = 1.0;
  layer.maxCapacityFactor = 2.0;
  layer.maxCapacity = 16;
  layer.hasStats = true;
  layer.expertCountsOffset = countsOffset;
  layer.tokenKeptOffset = keptOffset;
  w.addMoeLayer(layer);
  KernelDesc route;
  route.name = "route";
  route.executable = exe;
  route.entry = "vmoe_test_route";
  route.workgroupCount = {kGroups, 1, 1};
  route.bindingCount = 3;
  route.constantCount = 6;
  route.writtenBindings = {false, true, true};
  uint32_t routeKernel = w.addKernel(route);
  KernelDesc copy;
  copy.name = "copy";
  copy.executable = exe;
  copy.entry = "vmoe_test_copy";
  copy.bindingCount = 2;
  copy.writtenBindings = {false, true};
  uint32_t copyKernel = w.addKernel(copy);
  w.addDispatch(
      {routeKernel,
       {BindingDesc::input(0, 0, kTokens * kK * 4),
        BindingDesc::arena(countsOffset, countsBytes),
        BindingDesc::arena(keptOffset, keptBytes)},
       {PushConstantDesc::literal(kExperts), PushConstantDesc::literal(kK),
        PushConstantDesc::literal(kGroupSize), PushConstantDesc::capacity(0),
        PushConstantDesc::literal(kTokensPerImage),
        PushConstantDesc::batchSize()}});
  w.addDispatch({copyKernel,
                 {BindingDesc::arena(keptOffset, keptBytes),
                  BindingDesc::output(0, 0, keptBytes)},
                 {}});
}

/// Expert choices with k distinct experts per token, skewed towards expert
/// 0 so that low capacities drop assignments.
std::vector<int32_t> choices(uint32_t tokens, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(tokens * kK);
  for (uint32_t t = 0; t < tokens; ++t) {
    int32_t first = rng() % 3 == 0 ? static_cast<int32_t>(rng() % kExperts) : 0;
    int32_t second =
        (first + 1 + static_cast<int32_t>(rng() % (kExperts - 1))) %
        static_cast<int32_t>(kExperts);
    ids[t * kK] = first;
    ids[t * kK + 1] = second;
  }
  return ids;
}

struct Expected {
  uint64_t assignments = 0, kept = 0;
  std::vector<uint64_t> perExpertAssigned, perExpertKept;
  std::vector<int32_t> keptPerToken;
  std::vector<double> coverage;
};

/// vmoe's slot assignment, written independently of the test kernel: per
/// group, k-major position counting, kept while position < C.
Expected reference(const std::vector<int32_t> &ids, uint32_t batch,
                   uint32_t capacity) {
  Expected e;
  uint32_t tokens = batch * kTokensPerImage;
  e.perExpertAssigned.assign(kExperts, 0);
  e.perExpertKept.assign(kExperts, 0);
  e.keptPerToken.assign(tokens, 0);
  for (uint32_t g = 0; g * kGroupSize < tokens; ++g) {
    std::vector<uint32_t> position(kExperts, 0);
    for (uint32_t choice = 0; choice < kK; ++choice)
      for (uint32_t t = g * kGroupSize; t < (g + 1) * kGroupSize && t < tokens;
           ++t) {
        int32_t expert = ids[t * kK + choice];
        ++e.assignments;
        ++e.perExpertAssigned[expert];
        if (position[expert]++ < capacity) {
          ++e.kept;
          ++e.perExpertKept[expert];
          ++e.keptPerToken[t];
        }
      }
  }
  for (uint32_t image = 0; image < batch; ++image) {
    uint32_t reached = 0;
    for (uint32_t t = 0; t < kTokensPerImage; ++t)
      reached += e.keptPerToken[image * kTokensPerImage + t] > 0;
    e.coverage.push_back(static_cast<double>(reached) / kTokensPerImage);
  }
  return e;
}

class RoutingStats : public ::testing::Test {
protected:
  void SetUp() override {
    buildRoutingModule(writer);
    loaded = loadBytes(serialize(writer));
    ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  }

  /// Runs on `batch` images and checks every statistic against the
  /// reference for capacity `capacity`.
  void runAndCheck(vmoe_session_t *session, uint32_t batch, double cf,
                   uint32_t capacity, uint32_t seed) {
    SCOPED_TRACE(::testing::Message() << "batch " << batch << ", cf " << cf);
    std::vector<int32_t> ids = choices(batch * kTokensPerImage, seed);
    std::vector<int32_t> kept(batch * kTokensPerImage, -1);
    std::vector<int64_t> inShape = {batch, kTokensPerImage, kK};
    std::vector<int64_t> outShape = {batch, kTokensPerImage};
    vmoe_tensor_t input =
        tensor(VMOE_DTYPE_I32, inShape, ids.data(), ids.size() * 4);
    vmoe_tensor_t output =
        tensor(VMOE_DTYPE_I32, outShape, kept.data(), kept.size() * 4);
    vmoe_run_options_t options = {cf, -1};
    vmoe_message_t message;
    ASSERT_EQ(
        vmoe_session_run(session, &input, 1, &output, 1, &options, &message),
        VMOE_STATUS_OK)
        << message.text;
    Expected want = reference(ids, batch, capacity);
    EXPECT_EQ(kept, want.keptPerToken);

    vmoe_routing_stats_t stats;
    ASSERT_EQ(vmoe_session_routing_stats(session, 0, &stats, &message),
              VMOE_STATUS_OK)
        << message.text;
    EXPECT_EQ(stats.capacity, capacity);
    EXPECT_EQ(stats.capacity_factor, cf);
    EXPECT_EQ(stats.num_experts, kExperts);
    EXPECT_EQ(stats.k, kK);
    EXPECT_EQ(stats.image_count, batch);
    EXPECT_EQ(stats.token_count, uint64_t(batch) * kTokensPerImage);
    EXPECT_EQ(stats.group_count, batch * kTokensPerImage / kGroupSize);
    EXPECT_EQ(stats.assignments, uint64_t(batch) * kTokensPerImage * kK);
    EXPECT_EQ(stats.assignments, want.assignments);
    EXPECT_EQ(stats.assignments_kept, want.kept);
    EXPECT_EQ(stats.assignments_dropped, want.assignments - want.kept);

    std::vector<uint64_t> assigned(kExperts), keptPerExpert(kExperts);
    ASSERT_EQ(vmoe_session_expert_load(session, 0, assigned.data(),
                                       keptPerExpert.data(), kExperts,
                                       &message),
              VMOE_STATUS_OK)
        << message.text;
    EXPECT_EQ(assigned, want.perExpertAssigned);
    EXPECT_EQ(keptPerExpert, want.perExpertKept);

    std::vector<double> coverage(batch);
    ASSERT_EQ(vmoe_session_image_coverage(session, 0, coverage.data(), batch,
                                          &message),
              VMOE_STATUS_OK)
        << message.text;
    EXPECT_EQ(coverage, want.coverage);
  }

  ModuleWriter writer;
  Loaded loaded;
};

TEST_F(RoutingStats, BeforeTheFirstRun) {
  SessionHolder s;
  createSession(loaded.module, s, 1);
  vmoe_routing_stats_t stats;
  vmoe_message_t message;
  EXPECT_EQ(vmoe_session_routing_stats(s.session, 0, &stats, &message),
            VMOE_STATUS_FAILED_PRECONDITION);
  EXPECT_NE(std::string(message.text).find("no successful run"),
            std::string::npos);
  EXPECT_EQ(vmoe_session_routing_stats(s.session, 1, &stats, &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(message.text).find("MoE layer 1 out of range"),
            std::string::npos);
}

TEST_F(RoutingStats, KeptDroppedPerExpertAndPerImage) {
  SessionHolder s;
  createSession(loaded.module, s, 2);
  // C = roundup4(ceil(16 * 2 * cf / 4)): 0.5 -> 4, 1.0 -> 8, 2.0 -> 16.
  uint32_t seed = 1;
  for (uint32_t batch : {4u, 2u}) {
    runAndCheck(s.session, batch, 0.5, 4, seed++);
    runAndCheck(s.session, batch, 1.0, 8, seed++);
    runAndCheck(s.session, batch, 2.0, 16, seed++);
    runAndCheck(s.session, batch, 0.1, 4, seed++);
  }
  // At cf 0.5 the skewed choices must drop something, at 2.0 nothing (C=S).
  runAndCheck(s.session, 4, 0.5, 4, 99);
  vmoe_routing_stats_t stats;
  ASSERT_EQ(vmoe_session_routing_stats(s.session, 0, &stats, nullptr),
            VMOE_STATUS_OK);
  EXPECT_GT(stats.assignments_dropped, 0u);
  runAndCheck(s.session, 4, 2.0, 16, 99);
  ASSERT_EQ(vmoe_session_routing_stats(s.session, 0, &stats, nullptr),
            VMOE_STATUS_OK);
  EXPECT_EQ(stats.assignments_dropped, 0u);
}

TEST_F(RoutingStats, ArgumentChecks) {
  SessionHolder s;
  createSession(loaded.module, s, 1);
  runAndCheck(s.session, 2, 1.0, 8, 5);
  vmoe_message_t message;
  std::vector<uint64_t> assigned(8);
  EXPECT_EQ(vmoe_session_expert_load(s.session, 0, assigned.data(), nullptr, 8,
                                     &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(message.text).find("has 4 experts, the arrays hold 8"),
            std::string::npos);
  std::vector<double> coverage(4);
  EXPECT_EQ(
      vmoe_session_image_coverage(s.session, 0, coverage.data(), 4, &message),
      VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(message.text).find("the last call had 2 images"),
            std::string::npos);
  // A batch that is not a multiple of the group's images is refused.
  std::vector<int32_t> ids(3 * kTokensPerImage * kK, 0), kept(3 * 8);
  std::vector<int64_t> inShape = {3, kTokensPerImage, kK}, outShape = {3, 8};
  vmoe_tensor_t input =
      tensor(VMOE_DTYPE_I32, inShape, ids.data(), ids.size() * 4);
  vmoe_tensor_t output =
      tensor(VMOE_DTYPE_I32, outShape, kept.data(), kept.size() * 4);
  EXPECT_EQ(
      vmoe_session_run(s.session, &input, 1, &output, 1, nullptr, &message),
      VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(message.text).find("a multiple of 2"),
            std::string::npos)
      << message.text;
  // A refused call leaves the last statistics in place.
  vmoe_routing_stats_t stats;
  EXPECT_EQ(vmoe_session_routing_stats(s.session, 0, &stats, &message),
            VMOE_STATUS_OK);
  EXPECT_EQ(stats.image_count, 2u);
}

} // namespace
} // namespace test
} // namespace vmoe
