//===- RoutingTest.cpp - top-k, slot assignment, BPR, expert choice -------===//

#include "TestUtil.h"

#include <algorithm>
#include <numeric>

using namespace vmoe::reference;
using namespace vmoe::reference::test;

namespace {

// The upstream example of moe_test.py (reference section 5.1), one group.
Tensor workedExampleGates() {
  return Tensor({1, 3, 3}, {.4f, .0f, .2f, //
                            .5f, .1f, .4f, //
                            .3f, .2f, .6f});
}

TEST(TopKTest, DescendingWithIndices) {
  TopK top = topK(workedExampleGates(), 2);
  EXPECT_EQ(top.values.shape, (std::vector<int64_t>{1, 3, 2}));
  EXPECT_EQ(top.values.data,
            (std::vector<float>{.4f, .2f, .5f, .4f, .6f, .3f}));
  EXPECT_EQ(top.indices.data, (std::vector<int32_t>{0, 2, 0, 2, 2, 0}));
}

TEST(TopKTest, TiesGoToTheLowerIndex) {
  TopK top = topK(Tensor({3, 4}, {.3f, .3f, .4f, .0f,     //
                                  .25f, .25f, .25f, .25f, //
                                  .1f, .4f, .1f, .4f}),
                  3);
  EXPECT_EQ(top.indices.data, (std::vector<int32_t>{2, 0, 1, //
                                                    0, 1, 2, //
                                                    1, 3, 0}));
  // -0.0 and 0.0 compare equal, so the lower index comes first either way.
  TopK zeros = topK(Tensor({2}, {-0.0f, 0.0f}), 2);
  EXPECT_EQ(zeros.indices.data, (std::vector<int32_t>{0, 1}));
}

TEST(SlotAssignmentTest, WorkedExampleVanilla) {
  Routing routing = tokenChoiceRouting(workedExampleGates(), /*k=*/2,
                                       /*capacity=*/2, /*bpr=*/false);
  Tensor expected({1, 3, 3, 2}, {.4f, 0, 0, 0, 0, .2f, //
                                 0, .5f, 0, 0, 0, 0,   //
                                 0, 0, 0, 0, .6f, 0});
  EXPECT_TRUE(bitwiseEqual(combineWeights(routing), expected));
  // Round 0: t0->e0@0, t1->e0@1, t2->e2@0. Round 1: t0->e2@1, t1->e2@2
  // (dropped), t2->e0@2 (dropped: expert 0 is full).
  EXPECT_EQ(routing.positions.data, (std::vector<int32_t>{0, 1, 1, 2, 0, 2}));
  EXPECT_EQ(routing.slots.data, (std::vector<int32_t>{0, 1, 1, -1, 0, -1}));
  EXPECT_EQ(routing.expertCounts.data, (std::vector<int32_t>{3, 0, 3}));
  EXPECT_EQ(routing.slotTokens.data,
            (std::vector<int32_t>{0, 1, -1, -1, 2, 0}));
  Tensor mask = dispatchMask(routing);
  for (int64_t i = 0; i < mask.numElements(); ++i)
    EXPECT_EQ(mask.data[i], expected.data[i] != 0 ? 1.0f : 0.0f);
}

TEST(SlotAssignmentTest, WorkedExampleBatchPriority) {
  Routing routing = tokenChoiceRouting(workedExampleGates(), /*k=*/2,
                                       /*capacity=*/2, /*bpr=*/true);
  Tensor expected({1, 3, 3, 2}, {0, .4f, 0, 0, 0, 0,   //
                                 .5f, 0, 0, 0, 0, .4f, //
                                 0, 0, 0, 0, .6f, 0});
  EXPECT_TRUE(bitwiseEqual(combineWeights(routing), expected));
  // Order by top-1 gate: t2 (.6), t1 (.5), t0 (.4).
  EXPECT_EQ(tokenOrder(topK(workedExampleGates(), 2).values, 0, true),
            (std::vector<int64_t>{2, 1, 0}));
  // Round 0: t2->e2@0, t1->e0@0, t0->e0@1. Round 1: t2->e0@2 (dropped),
  // t1->e2@1, t0->e2@2 (dropped).
  EXPECT_EQ(routing.positions.data, (std::vector<int32_t>{1, 2, 0, 1, 0, 2}));
  EXPECT_EQ(routing.slots.data, (std::vector<int32_t>{1, -1, 0, 1, 0, -1}));
  EXPECT_EQ(routing.expertCounts.data, (std::vector<int32_t>{3, 0, 3}));
}

TEST(SlotAssignmentTest, AssignSlotsDirectly) {
  // Two groups route independently; counters restart per group.
  Tensor values({2, 2, 1}, {.9f, .8f, .7f, .6f});
  IntTensor indices({2, 2, 1}, {1, 1, 0, 0});
  SlotAssignment a = assignSlots(values, indices, /*numExperts=*/2,
                                 /*capacity=*/1, /*bpr=*/false);
  EXPECT_EQ(a.positions.data, (std::vector<int32_t>{0, 1, 0, 1}));
  EXPECT_EQ(a.slots.data, (std::vector<int32_t>{0, -1, 0, -1}));
  EXPECT_EQ(a.expertCounts.data, (std::vector<int32_t>{0, 2, 2, 0}));
}

TEST(SlotAssignmentTest, BatchPriorityIsStableOnEqualTopGates) {
  // t0 and t2 tie on their top-1 gate; t1 is the most confident. With
  // capacity 2 on expert 0, BPR order is t1, t0, t2: t2 is dropped, not t0.
  Tensor gates({1, 3, 2}, {.7f, .3f, //
                           .9f, .1f, //
                           .7f, .3f});
  EXPECT_EQ(tokenOrder(topK(gates, 1).values, 0, true),
            (std::vector<int64_t>{1, 0, 2}));
  Routing bpr = tokenChoiceRouting(gates, 1, 2, true);
  EXPECT_EQ(bpr.slots.data, (std::vector<int32_t>{1, 0, -1}));
  Routing vanilla = tokenChoiceRouting(gates, 1, 2, false);
  EXPECT_EQ(vanilla.slots.data, (std::vector<int32_t>{0, 1, -1}));
  // Many equal gates: BPR keeps exact token order.
  Tensor flat = Tensor::filled({1, 6, 2}, 0.5f);
  EXPECT_EQ(tokenOrder(topK(flat, 2).values, 0, true),
            (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
}

TEST(SlotAssignmentTest, BatchPriorityUsesTopOneGateNotTopKSum) {
  // t0: top-1 .5, top-2 sum .95. t1: top-1 .6, sum .8. Priority by top-1
  // puts t1 first; by the sum it would put t0 first. Capacity 1.
  Tensor gates({1, 2, 3}, {.5f, .45f, .05f, //
                           .6f, .2f, .2f});
  Routing routing = tokenChoiceRouting(gates, 2, 1, true);
  // t1: e0@0 kept, e1@0 kept (round 1 keeps the same order t1, t0 even
  // though t0's second gate .45 is larger than t1's .2).
  // t0: e0@1 dropped, e1@1 dropped.
  EXPECT_EQ(routing.experts.data, (std::vector<int32_t>{0, 1, 0, 1}));
  EXPECT_EQ(routing.slots.data, (std::vector<int32_t>{-1, -1, 0, 0}));
  EXPECT_EQ(routing.positions.data, (std::vector<int32_t>{1, 1, 0, 0}));
  // Vanilla (token order) gives the opposite outcome.
  Routing vanilla = tokenChoiceRouting(gates, 2, 1, false);
  EXPECT_EQ(vanilla.slots.data, (std::vector<int32_t>{0, 0, -1, -1}));
}

TEST(SlotAssignmentTest, CountersKeepCountingPastCapacity) {
  // Four tokens, first choice e0 for t0..t2, e1 for t3; second choices:
  // t0 e1, t1 e1, t2 e1, t3 e0. Capacity 2.
  Tensor gates({1, 4, 3}, {.6f, .3f, .1f, //
                           .6f, .3f, .1f, //
                           .6f, .3f, .1f, //
                           .3f, .6f, .1f});
  Routing routing = tokenChoiceRouting(gates, 2, 2, false);
  // Round 0: e0 gets t0@0, t1@1, t2@2 (dropped); e1 gets t3@0.
  // Round 1: e1 gets t0@1, t1@2 (dropped), t2@3 (dropped); e0 gets t3@3
  // (dropped: the counter is at 3, not capped at 2).
  EXPECT_EQ(routing.positions.data,
            (std::vector<int32_t>{0, 1, 1, 2, 2, 3, 0, 3}));
  EXPECT_EQ(routing.slots.data,
            (std::vector<int32_t>{0, 1, 1, -1, -1, -1, 0, -1}));
  EXPECT_EQ(routing.expertCounts.data, (std::vector<int32_t>{4, 4, 0}));
  // t2 lost both choices and is not back-filled into the empty expert 2.
  EXPECT_EQ(routing.slotTokens.data,
            (std::vector<int32_t>{0, 1, 3, 0, -1, -1}));
}

TEST(SlotAssignmentTest, KMajorOrderGivesFirstChoicesPriority) {
  // t0's second choice (e1) would take e1's only slot in a token-major
  // loop; k-major gives it to t1's first choice.
  Tensor gates({1, 2, 2}, {.8f, .2f, //
                           .1f, .9f});
  Routing routing = tokenChoiceRouting(gates, 2, 1, false);
  EXPECT_EQ(routing.slots.data, (std::vector<int32_t>{0, -1, 0, -1}));
}

TEST(ExpertChoiceTest, HandComputedWithTies) {
  // Expert 0 gates: .6 .3 .6 .5 ; expert 1 gates: .4 .7 .4 .5.
  Tensor gates({1, 4, 2}, {.6f, .4f, //
                           .3f, .7f, //
                           .6f, .4f, //
                           .5f, .5f});
  Result<Routing> two = expertChoiceRouting(gates, 2);
  ASSERT_TRUE(two.ok()) << two.error();
  // e0: t0, t2 (tie at .6 -> lower token first); e1: t1, t3.
  EXPECT_EQ(two->slotTokens.data, (std::vector<int32_t>{0, 2, 1, 3}));

  Result<Routing> three = expertChoiceRouting(gates, 3);
  ASSERT_TRUE(three.ok()) << three.error();
  // e0: t0, t2, t3; e1: t1, t3, then t0 and t2 tie at .4 -> t0.
  EXPECT_EQ(three->slotTokens.data, (std::vector<int32_t>{0, 2, 3, 1, 3, 0}));
  // Per-token form: assignment j is expert j; slot or -1.
  EXPECT_EQ(three->slots.data,
            (std::vector<int32_t>{0, 2, -1, 0, 1, -1, 2, 1}));
  EXPECT_EQ(three->expertCounts.data, (std::vector<int32_t>{3, 3}));
  // Combine weights are the raw gates of the picked pairs.
  Tensor combine = combineWeights(*three);
  EXPECT_EQ(combine.at(0, 0, 1, 2), .4f);
  EXPECT_EQ(combine.at(0, 2, 1, 2), 0.0f);
  EXPECT_EQ(combine.at(0, 3, 0, 2), .5f);
  EXPECT_EQ(combine.at(0, 3, 1, 1), .5f);
}

TEST(ExpertChoiceTest, CapacityAboveGroupSizeIsAnError) {
  Tensor gates = Tensor::filled({1, 4, 2}, 0.5f);
  EXPECT_TRUE(expertChoiceRouting(gates, 4).ok());
  Result<Routing> tooMany = expertChoiceRouting(gates, 5);
  EXPECT_FALSE(tooMany.ok());
  EXPECT_NE(tooMany.error().find("group_size = 4"), std::string::npos);
  EXPECT_FALSE(expertChoiceRouting(gates, 0).ok());
}

// Padding (tokens past numValidTokens, docs/routing.md) takes no slot:
// the worked example with its last token as padding keeps the real tokens'
// queue positions of a group without it, and the capacity.
TEST(PaddingTest, PaddingTakesNoSlot) {
  Routing routing = tokenChoiceRouting(workedExampleGates(), /*k=*/2,
                                       /*capacity=*/2, /*bpr=*/false,
                                       /*numValidTokens=*/2);
  // Round 0: t0->e0@0, t1->e0@1. Round 1: t0->e2@0, t1->e2@1. t2 is padding:
  // in the unpadded example it took e2's slot 0 and pushed t1's second
  // choice out.
  EXPECT_EQ(routing.slots.data, (std::vector<int32_t>{0, 0, 1, 1, -1, -1}));
  EXPECT_EQ(routing.positions.data, (std::vector<int32_t>{0, 0, 1, 1, -1, -1}));
  EXPECT_EQ(routing.expertCounts.data, (std::vector<int32_t>{2, 0, 2}));
  EXPECT_EQ(routing.capacity, 2);
  // With BPR the padding is not sorted in either.
  Routing bpr = tokenChoiceRouting(workedExampleGates(), 2, 2, true, 2);
  EXPECT_EQ(bpr.slots.data, (std::vector<int32_t>{1, 1, 0, 0, -1, -1}));
}

TEST(PaddingTest, ExpertChoiceNeverPicksPadding) {
  Tensor gates({1, 4, 2}, {.6f, .4f, //
                           .3f, .7f, //
                           .6f, .4f, //
                           .9f, .9f});
  // t3 (the best for both experts) is padding; with 3 real tokens and C = 2
  // each expert takes two of them, with C = 4 all three.
  Result<Routing> two = expertChoiceRouting(gates, 2, /*numValidTokens=*/3);
  ASSERT_TRUE(two.ok()) << two.error();
  EXPECT_EQ(two->slotTokens.data, (std::vector<int32_t>{0, 2, 1, 0}));
  Result<Routing> four = expertChoiceRouting(gates, 4, 3);
  ASSERT_TRUE(four.ok()) << four.error();
  EXPECT_EQ(four->expertCounts.data, (std::vector<int32_t>{3, 3}));
  EXPECT_EQ(four->slotTokens.data,
            (std::vector<int32_t>{0, 2, 1, -1, 1, 0, 2, -1}));
  EXPECT_EQ(four->slots.at(0, 3, 0), -1);
  EXPECT_EQ(four->slots.at(0, 3, 1), -1);
}

TEST(RouterTest, GatesAreSoftmaxOfLogitsWithoutBias) {
  Tensor x({1, 2, 2}, {1, 0, 0, 2});
  Tensor kernel({2, 3}, {1, 2, 3, //
                         0, 0, 1});
  Tensor gates = routerGates(x, kernel);
  // Token 0 logits (1, 2, 3); token 1 logits (0, 0, 2).
  Tensor expected = softmaxLastAxis(Tensor({2, 3}, {1, 2, 3, 0, 0, 2}));
  EXPECT_TRUE(bitwiseEqual(gates, expected.reshaped({1, 2, 3})));
}

} // namespace

namespace {

/// vmoe's vectorised form of the assignment (routing.py): flatten the
/// choices k-major in the priority order, one-hot over experts, cumulative
/// sum minus one gives each assignment's position, and the inverse
/// permutation puts positions back in token order. Written independently of
/// the greedy loop in Routing.cpp.
IntTensor vectorisedPositions(const Tensor &topValues,
                              const IntTensor &topIndices, int64_t numExperts,
                              bool batchPriority) {
  int64_t g = topValues.dim(0), s = topValues.dim(1), k = topValues.dim(2);
  IntTensor positions({g, s, k});
  for (int64_t gi = 0; gi < g; ++gi) {
    std::vector<int64_t> perm(s);
    std::iota(perm.begin(), perm.end(), 0);
    if (batchPriority)
      std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
        return -topValues.at(gi, a, 0) < -topValues.at(gi, b, 0);
      });
    // one_hot[(j, i), e] over the k-major flattening of permuted tokens.
    std::vector<int32_t> cumsum(numExperts, 0);
    std::vector<int32_t> flatPos(k * s);
    for (int64_t j = 0; j < k; ++j)
      for (int64_t i = 0; i < s; ++i) {
        int32_t e = topIndices.at(gi, perm[i], j);
        flatPos[j * s + i] = ++cumsum[e] - 1;
      }
    for (int64_t j = 0; j < k; ++j)
      for (int64_t i = 0; i < s; ++i)
        positions.at(gi, perm[i], j) = flatPos[j * s + i];
  }
  return positions;
}

TEST(SlotAssignmentProperty, GreedyLoopEqualsVectorisedForm) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 200; ++trial) {
    int64_t g = 1 + rng() % 3, s = 1 + rng() % 24, e = 1 + rng() % 6;
    int64_t k = 1 + rng() % e;
    // Few distinct values: many ties in gates and in top-1 priorities.
    Tensor gates({g, s, e});
    for (float &v : gates.data)
      v = static_cast<float>(rng() % 4) / 4.0f;
    TopK top = topK(gates, k);
    int64_t capacity = 1 + rng() % (s + 2);
    for (bool bpr : {false, true}) {
      SlotAssignment greedy = assignSlots(top.values, top.indices, e,
                                          capacity, bpr);
      IntTensor vectorised =
          vectorisedPositions(top.values, top.indices, e, bpr);
      ASSERT_EQ(greedy.positions.data, vectorised.data)
          << "trial " << trial << (bpr ? " with BPR" : " vanilla");
      for (size_t i = 0; i < vectorised.data.size(); ++i)
        ASSERT_EQ(greedy.slots.data[i],
                  vectorised.data[i] < capacity ? vectorised.data[i] : -1);
    }
  }
}

} // namespace
