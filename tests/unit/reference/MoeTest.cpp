//===- MoeTest.cpp - dispatch, experts, combine and the MoE layer ---------===//

#include "TestUtil.h"

using namespace vmoe::reference;
using namespace vmoe::reference::test;

namespace {

ExpertWeights randomExperts(int64_t experts, int64_t hidden, int64_t mlpDim,
                            std::mt19937 &rng) {
  return {randomTensor({experts, hidden, mlpDim}, rng),
          randomTensor({experts, mlpDim}, rng),
          randomTensor({experts, mlpDim, hidden}, rng),
          randomTensor({experts, hidden}, rng)};
}

/// Expert e's MLP on one token, written out independently of mlpBlock but
/// with the same float rounding points (so bf16 rounding agrees exactly).
std::vector<float> expertOnToken(const ExpertWeights &w, int64_t e,
                                 const std::vector<float> &x) {
  int64_t hidden = w.kernel0.dim(1), mlpDim = w.kernel0.dim(2);
  std::vector<float> h(mlpDim), y(hidden);
  for (int64_t m = 0; m < mlpDim; ++m) {
    double sum = 0.0;
    for (int64_t d = 0; d < hidden; ++d)
      sum += static_cast<double>(x[d]) * w.kernel0.at(e, d, m);
    h[m] = gelu(static_cast<float>(sum + w.bias0.at(e, m)));
  }
  for (int64_t d = 0; d < hidden; ++d) {
    double sum = 0.0;
    for (int64_t m = 0; m < mlpDim; ++m)
      sum += static_cast<double>(h[m]) * w.kernel1.at(e, m, d);
    y[d] = static_cast<float>(sum + w.bias1.at(e, d));
  }
  return y;
}

/// The MoE output as a per-token mixture, valid when nothing is dropped:
/// out[t] = sum over the token's experts e of gate[t, e] * E_e(x[t]).
Tensor perTokenMixture(const Tensor &tokens, const Tensor &gates,
                       const ExpertWeights &w, int64_t k, bool bf16) {
  int64_t numTokens = tokens.dim(0), hidden = tokens.dim(1);
  Tensor out({numTokens, hidden});
  TopK top = topK(gates, k);
  for (int64_t t = 0; t < numTokens; ++t) {
    std::vector<float> x(tokens.data.begin() + t * hidden,
                         tokens.data.begin() + (t + 1) * hidden);
    if (bf16)
      for (float &v : x)
        v = roundToBf16(v);
    std::vector<double> acc(hidden, 0.0);
    for (int64_t j = 0; j < k; ++j) {
      std::vector<float> y = expertOnToken(w, top.indices.at(t, j), x);
      for (int64_t d = 0; d < hidden; ++d)
        acc[d] += static_cast<double>(top.values.at(t, j)) *
                  (bf16 ? roundToBf16(y[d]) : y[d]);
    }
    for (int64_t d = 0; d < hidden; ++d)
      out.at(t, d) = static_cast<float>(acc[d]);
  }
  return out;
}

TEST(DispatchTest, GathersIntoSlotsWithZerosElsewhere) {
  Tensor gates({1, 3, 3}, {.4f, .0f, .2f, .5f, .1f, .4f, .3f, .2f, .6f});
  Routing routing = tokenChoiceRouting(gates, 2, 2, false);
  Tensor x({1, 3, 2}, {1, 2, 3, 4, 5, 6});
  Tensor buffers = dispatch(x, routing, /*bf16=*/false);
  ASSERT_EQ(buffers.shape, (std::vector<int64_t>{3, 1, 2, 2}));
  // e0: [t0, t1]; e1: empty; e2: [t2, t0].
  EXPECT_EQ(buffers.data, (std::vector<float>{1, 2, 3, 4, //
                                              0, 0, 0, 0, //
                                              5, 6, 1, 2}));
  // bf16: the gathered values are rounded.
  Tensor fine({1, 3, 2}, {1.00390625f, 1.01171875f, 0, 0, 0, 0});
  Tensor rounded = dispatch(fine, routing, /*bf16=*/true);
  EXPECT_EQ(rounded.at(0, 0, 0, 0), 1.0f);
  EXPECT_EQ(rounded.at(0, 0, 0, 1), 1.015625f);
  EXPECT_EQ(dispatch(fine, routing, false).at(0, 0, 0, 0), 1.00390625f);
}

TEST(CombineTest, WeightedSumOfKeptSlots) {
  Tensor gates({1, 3, 3}, {.4f, .0f, .2f, .5f, .1f, .4f, .3f, .2f, .6f});
  Routing routing = tokenChoiceRouting(gates, 2, 2, false);
  // Y[e, 0, c, 0] = 10 * e + c + 1; slot outputs for empty slots must be
  // ignored, so give them a large value.
  Tensor y({3, 1, 2, 1}, {1, 2, 1000, 1000, 21, 22});
  Tensor out = combine(y, routing, /*bf16=*/false);
  // t0: .4 * Y[e0,c0] + .2 * Y[e2,c1]; t1: .5 * Y[e0,c1] (e2 dropped);
  // t2: .6 * Y[e2,c0] (e0 dropped).
  EXPECT_FLOAT_EQ(out.at(0, 0, 0), static_cast<float>(.4f * 1.0 + .2f * 22.0));
  EXPECT_FLOAT_EQ(out.at(0, 1, 0), static_cast<float>(.5f * 2.0));
  EXPECT_FLOAT_EQ(out.at(0, 2, 0), static_cast<float>(.6f * 21.0));
}

TEST(CombineTest, Bf16RoundsExpertOutputsNotTheSum) {
  Tensor gates({1, 1, 2}, {.5f, .5f});
  Routing routing = tokenChoiceRouting(gates, 2, 1, false);
  // Each expert output is 1 + 2^-8 (a bf16 tie that rounds to 1.0).
  Tensor y = Tensor::filled({2, 1, 1, 1}, 1.00390625f);
  EXPECT_EQ(combine(y, routing, true).at(0, 0, 0), 1.0f);
  EXPECT_EQ(combine(y, routing, false).at(0, 0, 0), 1.00390625f);
  // The sum stays float32: .5 * 1.0078125 + .5 * 1.0 is not a bf16 value.
  Tensor mixed({2, 1, 1, 1}, {1.0078125f, 1.0f});
  EXPECT_EQ(combine(mixed, routing, true).at(0, 0, 0), 1.00390625f);
}

TEST(DispatchTest, UpstreamAllToAllLayout) {
  // Buffers (E=2, G=4, C=1, D=1) holding 10 * e + g.
  Tensor buffers({2, 4, 1, 1}, {0, 1, 2, 3, 10, 11, 12, 13});
  // G % E == 0: rows of each expert in group order 0, 2, 1, 3.
  Tensor upstream = toUpstreamDispatchLayout(buffers);
  EXPECT_EQ(upstream.shape, (std::vector<int64_t>{2, 4, 1}));
  EXPECT_EQ(upstream.data, (std::vector<float>{0, 2, 1, 3, 10, 12, 11, 13}));
  // G % E != 0: plain (g, c) order.
  Tensor odd({2, 3, 2, 1}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  EXPECT_EQ(toUpstreamDispatchLayout(odd).data, odd.data);
}

TEST(ExpertMlpTest, EachExpertUsesItsOwnWeights) {
  std::mt19937 rng(7);
  ExpertWeights w = randomExperts(3, 4, 5, rng);
  Tensor buffers = randomTensor({3, 2, 2, 4}, rng);
  Tensor out = expertMlp(buffers, w);
  for (int64_t e = 0; e < 3; ++e)
    for (int64_t r = 0; r < 4; ++r) {
      std::vector<float> x(buffers.data.begin() + (e * 4 + r) * 4,
                           buffers.data.begin() + (e * 4 + r + 1) * 4);
      std::vector<float> y = expertOnToken(w, e, x);
      for (int64_t d = 0; d < 4; ++d)
        EXPECT_EQ(out.data[(e * 4 + r) * 4 + d], y[d]);
    }
}

struct SmallMoe {
  MoeWeights weights;
  MoeConfig config;
};

SmallMoe makeSmallMoe(int64_t hidden, int64_t experts, int64_t mlpDim,
                      std::mt19937 &rng) {
  SmallMoe moe;
  moe.weights.routerKernel = randomTensor({hidden, experts}, rng, -2, 2);
  moe.weights.experts = randomExperts(experts, hidden, mlpDim, rng);
  return moe;
}

TEST(SparseMoeTest, NoDropsEqualsPerTokenMixture) {
  std::mt19937 rng(1);
  const int64_t batch = 2, tokens = 5, hidden = 6, experts = 4, mlpDim = 8;
  SmallMoe moe = makeSmallMoe(hidden, experts, mlpDim, rng);
  Tensor x = randomTensor({batch, tokens, hidden}, rng);
  for (bool bf16 : {false, true})
    for (int64_t k : {1, 2, 3}) {
      moe.config.groupSize = batch * tokens;
      moe.config.numSelectedExperts = k;
      moe.config.capacityFactor =
          static_cast<double>(experts) / static_cast<double>(k); // C >= S
      moe.config.bf16Dispatch = bf16;
      Result<MoeOutput> out = sparseMoe(x, moe.weights, moe.config);
      ASSERT_TRUE(out.ok()) << out.error();
      EXPECT_GE(out->routing.capacity, moe.config.groupSize);
      EXPECT_EQ(out->stats.assignmentsDropped, 0);
      EXPECT_EQ(out->stats.assignmentsKept, batch * tokens * k);
      Tensor flat = x.reshaped({batch * tokens, hidden});
      Tensor gates = routerGates(flat, moe.weights.routerKernel);
      Tensor expected =
          perTokenMixture(flat, gates, moe.weights.experts, k, bf16);
      // Same rounding points; only the combine's double sum order differs.
      EXPECT_TRUE(allClose(out->output,
                           expected.reshaped({batch, tokens, hidden}), 1e-6))
          << "k=" << k << " bf16=" << bf16;
    }
}

TEST(SparseMoeTest, TokenWithAllChoicesDroppedGivesExactZero) {
  std::mt19937 rng(2);
  const int64_t hidden = 2, experts = 2;
  SmallMoe moe = makeSmallMoe(hidden, experts, 3, rng);
  // Every token has x[0] = 1, x[1] = 0 and the router strongly prefers e0.
  moe.weights.routerKernel = Tensor({2, 2}, {5, -5, 0, 0});
  Tensor x({2, 2, 2}, {1, 0, 1, 0, 1, 0, 1, 0});
  moe.config.groupSize = 4;
  moe.config.numSelectedExperts = 1;
  moe.config.capacity = 1;
  Result<MoeOutput> out = sparseMoe(x, moe.weights, moe.config);
  ASSERT_TRUE(out.ok()) << out.error();
  // Token 0 is kept; tokens 1..3 are dropped (expert 0 is full, no
  // back-filling into expert 1) and their MoE output is exactly +0.
  for (int64_t i = 2; i < 8; ++i)
    EXPECT_EQ(floatToBits(out->output.data[i]), 0u) << i;
  EXPECT_NE(out->output.at(0, 0, 0), 0.0f);
  const MoeStats &stats = out->stats;
  EXPECT_EQ(stats.expertCounts.data, (std::vector<int32_t>{4, 0}));
  EXPECT_EQ(stats.expertKept.data, (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(stats.assignmentsKept, 1);
  EXPECT_EQ(stats.assignmentsDropped, 3);
  EXPECT_EQ(stats.tokenKeptAssignments.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(stats.tokenKeptAssignments.data,
            (std::vector<int32_t>{1, 0, 0, 0}));
  EXPECT_EQ(stats.imageTokenShare, (std::vector<double>{0.5, 0.0}));
}

TEST(SparseMoeTest, GroupsAreConsecutiveChunksOfTokens) {
  std::mt19937 rng(3);
  SmallMoe moe = makeSmallMoe(4, 3, 4, rng);
  Tensor x = randomTensor({2, 3, 4}, rng);
  moe.config.groupSize = 2;
  moe.config.numSelectedExperts = 1;
  moe.config.capacityFactor = 1.0;
  Result<MoeOutput> out = sparseMoe(x, moe.weights, moe.config);
  ASSERT_TRUE(out.ok()) << out.error();
  ASSERT_EQ(out->gates.shape, (std::vector<int64_t>{3, 2, 3}));
  // Group g, slot s is token g*2+s of the row-major (B, T) flattening.
  Tensor flatGates = routerGates(x.reshaped({6, 4}), moe.weights.routerKernel);
  EXPECT_TRUE(bitwiseEqual(out->gates, flatGates.reshaped({3, 2, 3})));
}

TEST(SparseMoeTest, NoDropOutputIsBatchIndependent) {
  std::mt19937 rng(4);
  const int64_t tokens = 3, hidden = 4, experts = 4;
  SmallMoe moe = makeSmallMoe(hidden, experts, 5, rng);
  Tensor batch = randomTensor({4, tokens, hidden}, rng);
  moe.config.numSelectedExperts = 2;
  moe.config.capacityFactor = 2.0; // C >= S: no drops possible
  moe.config.groupSize = 4 * tokens;
  Result<MoeOutput> together = sparseMoe(batch, moe.weights, moe.config);
  ASSERT_TRUE(together.ok()) << together.error();
  moe.config.groupSize = tokens;
  for (int64_t b = 0; b < 4; ++b) {
    Tensor image(
        {1, tokens, hidden},
        std::vector<float>(batch.data.begin() + b * tokens * hidden,
                           batch.data.begin() + (b + 1) * tokens * hidden));
    Result<MoeOutput> alone = sparseMoe(image, moe.weights, moe.config);
    ASSERT_TRUE(alone.ok()) << alone.error();
    for (int64_t i = 0; i < tokens * hidden; ++i)
      EXPECT_EQ(alone->output.data[i],
                together->output.data[b * tokens * hidden + i]);
  }
}

TEST(SparseMoeTest, LowCapacityStatsAreConsistent) {
  std::mt19937 rng(5);
  const int64_t experts = 4;
  SmallMoe moe = makeSmallMoe(8, experts, 8, rng);
  Tensor x = randomTensor({4, 8, 8}, rng);
  moe.config.groupSize = 16;
  moe.config.numSelectedExperts = 2;
  moe.config.capacityFactor = 0.5; // C = roundup4(ceil(16*2*0.5/4)) = 4
  for (bool bpr : {false, true}) {
    moe.config.batchPriority = bpr;
    Result<MoeOutput> out = sparseMoe(x, moe.weights, moe.config);
    ASSERT_TRUE(out.ok()) << out.error();
    EXPECT_EQ(out->routing.capacity, 4);
    const MoeStats &stats = out->stats;
    int64_t keptSlots = 0, requests = 0, perToken = 0;
    for (int32_t v : stats.expertKept.data)
      keptSlots += v;
    for (int32_t v : stats.expertCounts.data)
      requests += v;
    for (int32_t v : stats.tokenKeptAssignments.data)
      perToken += v;
    EXPECT_EQ(keptSlots, stats.assignmentsKept);
    EXPECT_EQ(perToken, stats.assignmentsKept);
    EXPECT_EQ(requests, 4 * 8 * 2);
    EXPECT_EQ(stats.assignmentsKept + stats.assignmentsDropped, 4 * 8 * 2);
    // At most G * E * C = 2 * 4 * 4 = 32 of the 64 assignments fit.
    EXPECT_LE(stats.assignmentsKept, 32);
    EXPECT_GT(stats.assignmentsDropped, 0);
    // Every token's output is the mixture of its kept assignments only.
    Tensor flat = x.reshaped({32, 8});
    for (int64_t t = 0; t < 32; ++t) {
      int64_t g = t / 16, s = t % 16;
      std::vector<float> xt(flat.data.begin() + t * 8,
                            flat.data.begin() + (t + 1) * 8);
      for (float &v : xt)
        v = roundToBf16(v);
      std::vector<double> acc(8, 0.0);
      for (int64_t j = 0; j < 2; ++j) {
        if (out->routing.slots.at(g, s, j) < 0)
          continue;
        std::vector<float> y = expertOnToken(
            moe.weights.experts, out->routing.experts.at(g, s, j), xt);
        for (int64_t d = 0; d < 8; ++d)
          acc[d] += static_cast<double>(out->routing.weights.at(g, s, j)) *
                    roundToBf16(y[d]);
      }
      for (int64_t d = 0; d < 8; ++d)
        EXPECT_NEAR(out->output.data[t * 8 + d], acc[d], 1e-6);
    }
  }
}

TEST(SparseMoeTest, BatchPriorityDropsTheLeastConfidentTokens) {
  std::mt19937 rng(6);
  SmallMoe moe = makeSmallMoe(4, 2, 4, rng);
  Tensor x = randomTensor({1, 8, 4}, rng, -2, 2);
  moe.config.groupSize = 8;
  moe.config.numSelectedExperts = 1;
  moe.config.capacity = 2;
  moe.config.batchPriority = true;
  Result<MoeOutput> out = sparseMoe(x, moe.weights, moe.config);
  ASSERT_TRUE(out.ok()) << out.error();
  // Per expert, every kept token's top-1 gate is >= every dropped one's.
  for (int64_t e = 0; e < 2; ++e) {
    float minKept = 2.0f, maxDropped = -1.0f;
    for (int64_t s = 0; s < 8; ++s) {
      if (out->routing.experts.at(0, s, 0) != e)
        continue;
      float gate = out->routing.weights.at(0, s, 0);
      if (out->routing.slots.at(0, s, 0) >= 0)
        minKept = std::min(minKept, gate);
      else
        maxDropped = std::max(maxDropped, gate);
    }
    EXPECT_GE(minKept, maxDropped) << "expert " << e;
  }
}

TEST(SparseMoeTest, ExpertChoiceMatchesPerTokenSum) {
  std::mt19937 rng(8);
  const int64_t hidden = 4, experts = 3;
  SmallMoe moe = makeSmallMoe(hidden, experts, 6, rng);
  Tensor x = randomTensor({2, 4, hidden}, rng);
  moe.config.routing = RoutingKind::ExpertChoice;
  moe.config.groupSize = 8;
  moe.config.capacity = 3;
  moe.config.bf16Dispatch = false;
  Result<MoeOutput> out = sparseMoe(x, moe.weights, moe.config);
  ASSERT_TRUE(out.ok()) << out.error();
  EXPECT_EQ(out->stats.assignmentsKept, experts * 3);
  EXPECT_EQ(out->stats.assignmentsDropped, 0);
  EXPECT_EQ(out->stats.expertCounts.data, (std::vector<int32_t>{3, 3, 3}));
  // Independent: for each expert, its 3 highest-gate tokens (lower index
  // on ties) get gate * E_e(x).
  Tensor flat = x.reshaped({8, hidden});
  Tensor gates = routerGates(flat, moe.weights.routerKernel);
  std::vector<std::vector<double>> expected(8,
                                            std::vector<double>(hidden, 0.0));
  for (int64_t e = 0; e < experts; ++e) {
    std::vector<bool> taken(8, false);
    for (int64_t c = 0; c < 3; ++c) {
      int64_t best = -1;
      for (int64_t s = 0; s < 8; ++s)
        if (!taken[s] && (best < 0 || gates.at(s, e) > gates.at(best, e)))
          best = s;
      taken[best] = true;
      std::vector<float> xt(flat.data.begin() + best * hidden,
                            flat.data.begin() + (best + 1) * hidden);
      std::vector<float> y = expertOnToken(moe.weights.experts, e, xt);
      for (int64_t d = 0; d < hidden; ++d)
        expected[best][d] += gates.at(best, e) * static_cast<double>(y[d]);
    }
  }
  for (int64_t s = 0; s < 8; ++s)
    for (int64_t d = 0; d < hidden; ++d)
      EXPECT_NEAR(out->output.data[s * hidden + d], expected[s][d], 1e-6);
}

TEST(SparseMoeTest, ConfigurationErrors) {
  std::mt19937 rng(9);
  SmallMoe moe = makeSmallMoe(4, 4, 4, rng);
  Tensor x = randomTensor({2, 3, 4}, rng);
  moe.config.numSelectedExperts = 2;
  moe.config.capacityFactor = 1.0;

  // group_size must divide B*T = 6 (the issue #182 failure mode).
  moe.config.groupSize = 4;
  Result<MoeOutput> notDividing = sparseMoe(x, moe.weights, moe.config);
  ASSERT_FALSE(notDividing.ok());
  EXPECT_NE(notDividing.error().find("must divide the number of tokens 6"),
            std::string::npos)
      << notDividing.error();
  moe.config.groupSize = 0;
  EXPECT_FALSE(sparseMoe(x, moe.weights, moe.config).ok());
  moe.config.groupSize = 3;
  EXPECT_TRUE(sparseMoe(x, moe.weights, moe.config).ok());

  // K outside [1, E].
  moe.config.numSelectedExperts = 5;
  EXPECT_FALSE(sparseMoe(x, moe.weights, moe.config).ok());
  moe.config.numSelectedExperts = 0;
  EXPECT_FALSE(sparseMoe(x, moe.weights, moe.config).ok());
  moe.config.numSelectedExperts = 2;

  // Both capacity and capacity factor.
  moe.config.capacity = 2;
  EXPECT_FALSE(sparseMoe(x, moe.weights, moe.config).ok());
  moe.config.capacity.reset();

  // Capacity factor that rounds to 0 with 'round'.
  moe.config.capacityFactor = 0.1;
  moe.config.capacityRounding = CapacityRounding::Round;
  EXPECT_FALSE(sparseMoe(x, moe.weights, moe.config).ok());
  moe.config.capacityRounding = CapacityRounding::Ceil;

  // Expert choice: C = roundup4(ceil(3 * 1.0 / 4)) = 4 > S = 3.
  moe.config.routing = RoutingKind::ExpertChoice;
  moe.config.capacityFactor = 1.0;
  Result<MoeOutput> tooBig = sparseMoe(x, moe.weights, moe.config);
  EXPECT_FALSE(tooBig.ok());
  moe.config.capacityMultipleOf = 1; // C = 1
  EXPECT_TRUE(sparseMoe(x, moe.weights, moe.config).ok());
}

} // namespace
