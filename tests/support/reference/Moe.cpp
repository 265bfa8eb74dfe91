//===- Moe.cpp - Dispatch, experts, combine and the MoE layer ---*- C++ -*-===//
//
// The sparse MoE-MLP layer of reference section 4, with dispatch written as a
// gather into (E, G, C, D) buffers and combine as a weighted sum over each
// token's kept assignments (equal to upstream's einsum forms).
//
//===----------------------------------------------------------------------===//

#include "reference/Reference.h"

#include <algorithm>

namespace vmoe::reference {

Tensor dispatch(const Tensor &x, const Routing &routing,
                bool roundInputsToBf16) {
  VMOE_REF_CHECK(x.rank() == 3, "dispatch: x must be (G, S, D), got " +
                                    shapeToString(x.shape));
  int64_t numGroups = x.dim(0), hidden = x.dim(2);
  int64_t numExperts = routing.numExperts, capacity = routing.capacity;
  VMOE_REF_CHECK(routing.slotTokens.shape ==
                     (std::vector<int64_t>{numGroups, numExperts, capacity}),
                 "dispatch: routing is for another shape");
  Tensor buffers({numExperts, numGroups, capacity, hidden});
  for (int64_t g = 0; g < numGroups; ++g)
    for (int64_t e = 0; e < numExperts; ++e)
      for (int64_t c = 0; c < capacity; ++c) {
        int64_t s = routing.slotTokens.at(g, e, c);
        if (s < 0)
          continue; // empty slot stays zero
        for (int64_t d = 0; d < hidden; ++d) {
          float v = x.at(g, s, d);
          buffers.at(e, g, c, d) = roundInputsToBf16 ? roundToBf16(v) : v;
        }
      }
  return buffers;
}

Tensor toUpstreamDispatchLayout(const Tensor &buffers) {
  VMOE_REF_CHECK(buffers.rank() == 4,
                 "toUpstreamDispatchLayout: buffers must be (E, G, C, D)");
  int64_t numExperts = buffers.dim(0), numGroups = buffers.dim(1);
  int64_t capacity = buffers.dim(2), hidden = buffers.dim(3);
  Tensor result({numExperts, numGroups * capacity, hidden});
  // Groups in the order upstream's all-to-all reshape puts them.
  std::vector<int64_t> groupOrder;
  if (numGroups % numExperts == 0) {
    int64_t perBlock = numGroups / numExperts;
    for (int64_t local = 0; local < perBlock; ++local)
      for (int64_t block = 0; block < numExperts; ++block)
        groupOrder.push_back(block * perBlock + local);
  } else {
    for (int64_t g = 0; g < numGroups; ++g)
      groupOrder.push_back(g);
  }
  for (int64_t e = 0; e < numExperts; ++e) {
    int64_t row = 0;
    for (int64_t g : groupOrder)
      for (int64_t c = 0; c < capacity; ++c, ++row)
        for (int64_t d = 0; d < hidden; ++d)
          result.at(e, row, d) = buffers.at(e, g, c, d);
  }
  return result;
}

/// t[index] along the leading axis, as a tensor of rank - 1.
static Tensor sliceLeading(const Tensor &t, int64_t index) {
  std::vector<int64_t> shape(t.shape.begin() + 1, t.shape.end());
  int64_t size = numElementsOf(shape);
  return Tensor(shape, std::vector<float>(t.data.begin() + index * size,
                                          t.data.begin() + (index + 1) * size));
}

Tensor expertMlp(const Tensor &buffers, const ExpertWeights &weights,
                 bool roundHiddenToBf16, GemmMath math) {
  VMOE_REF_CHECK(buffers.rank() >= 2, "expertMlp: buffers must be (E, ..., D)");
  int64_t numExperts = buffers.dim(0), hidden = buffers.dim(-1);
  VMOE_REF_CHECK(
      weights.kernel0.rank() == 3 && weights.kernel0.dim(0) == numExperts &&
          weights.kernel0.dim(1) == hidden,
      "expertMlp: Dense_0 kernel " + shapeToString(weights.kernel0.shape) +
          " does not match buffers " + shapeToString(buffers.shape));
  int64_t mlpDim = weights.kernel0.dim(2);
  VMOE_REF_CHECK(
      weights.bias0.shape == (std::vector<int64_t>{numExperts, mlpDim}) &&
          weights.kernel1.shape ==
              (std::vector<int64_t>{numExperts, mlpDim, hidden}) &&
          weights.bias1.shape == (std::vector<int64_t>{numExperts, hidden}),
      "expertMlp: stacked expert weights have inconsistent shapes");
  VMOE_REF_CHECK(!(roundHiddenToBf16 && math == GemmMath::Int8),
                 "expertMlp: bf16 hidden rounding is for bf16 math, not int8");
  Tensor result(buffers.shape);
  int64_t perExpert = buffers.numElements() / numExperts;
  for (int64_t e = 0; e < numExperts; ++e) {
    MlpWeights mlp{
        {sliceLeading(weights.kernel0, e), sliceLeading(weights.bias0, e)},
        {sliceLeading(weights.kernel1, e), sliceLeading(weights.bias1, e)}};
    Tensor y = roundHiddenToBf16
                   ? dense(roundToBf16(gelu(dense(sliceLeading(buffers, e),
                                                  mlp.dense0))),
                           mlp.dense1)
                   : mlpBlock(sliceLeading(buffers, e), mlp, math);
    std::copy(y.data.begin(), y.data.end(),
              result.data.begin() + e * perExpert);
  }
  return result;
}

Tensor combine(const Tensor &expertOutputs, const Routing &routing,
               bool roundOutputsToBf16) {
  VMOE_REF_CHECK(expertOutputs.rank() == 4,
                 "combine: expert outputs must be (E, G, C, D)");
  int64_t numGroups = routing.slots.dim(0), groupSize = routing.slots.dim(1);
  int64_t numAssignments = routing.slots.dim(2);
  int64_t hidden = expertOutputs.dim(3);
  VMOE_REF_CHECK(expertOutputs.dim(0) == routing.numExperts &&
                     expertOutputs.dim(1) == numGroups &&
                     expertOutputs.dim(2) == routing.capacity,
                 "combine: expert outputs " +
                     shapeToString(expertOutputs.shape) +
                     " do not match the routing");
  Tensor result({numGroups, groupSize, hidden});
  std::vector<double> acc(hidden);
  for (int64_t g = 0; g < numGroups; ++g)
    for (int64_t s = 0; s < groupSize; ++s) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < numAssignments; ++j) {
        int64_t slot = routing.slots.at(g, s, j);
        if (slot < 0)
          continue; // dropped: contributes exactly 0
        int64_t expert = routing.experts.at(g, s, j);
        double weight = routing.weights.at(g, s, j);
        for (int64_t d = 0; d < hidden; ++d) {
          float y = expertOutputs.at(expert, g, slot, d);
          acc[d] += weight * (roundOutputsToBf16 ? roundToBf16(y) : y);
        }
      }
      for (int64_t d = 0; d < hidden; ++d)
        result.at(g, s, d) = static_cast<float>(acc[d]);
    }
  return result;
}

Result<int64_t> resolveCapacity(const MoeConfig &config, int64_t numExperts) {
  if (config.capacity.has_value() == config.capacityFactor.has_value())
    return Error{"specify exactly one of capacity and capacity_factor"};
  if (config.capacity) {
    if (*config.capacity < 1)
      return Error{"capacity = " + std::to_string(*config.capacity) +
                   " must be >= 1"};
    return *config.capacity;
  }
  // Token choice sizes buffers for S*K assignments, expert choice for S.
  int64_t numTokens = config.routing == RoutingKind::TokenChoice
                          ? config.groupSize * config.numSelectedExperts
                          : config.groupSize;
  return computeCapacity(numTokens, numExperts, *config.capacityFactor,
                         config.capacityMultipleOf, config.capacityRounding);
}

Result<MoeOutput> sparseMoe(const Tensor &x, const MoeWeights &weights,
                            const MoeConfig &config) {
  VMOE_REF_CHECK(x.rank() >= 2, "sparseMoe: x must be (..., D)");
  int64_t hidden = x.dim(-1);
  std::vector<int64_t> tokenShape(x.shape.begin(), x.shape.end() - 1);
  int64_t numTokens = numElementsOf(tokenShape);
  VMOE_REF_CHECK(
      weights.routerKernel.rank() == 2 && weights.routerKernel.dim(0) == hidden,
      "sparseMoe: router kernel " + shapeToString(weights.routerKernel.shape) +
          " is not (D, E) for input " + shapeToString(x.shape));
  int64_t numExperts = weights.routerKernel.dim(1);
  int64_t groupSize = config.groupSize;
  if (groupSize < 1 || numTokens % groupSize != 0)
    return Error{"group_size = " + std::to_string(groupSize) +
                 " must divide the number of tokens " +
                 std::to_string(numTokens)};
  bool tokenChoice = config.routing == RoutingKind::TokenChoice;
  int64_t k = config.numSelectedExperts;
  if (tokenChoice && (k < 1 || k > numExperts))
    return Error{"num_selected_experts = " + std::to_string(k) +
                 " must be in [1, num_experts = " + std::to_string(numExperts) +
                 "]"};
  if (config.bf16ExpertMath && config.int8ExpertMath)
    return Error{"bf16 and int8 expert math are exclusive: choose one"};
  Result<int64_t> capacity = resolveCapacity(config, numExperts);
  if (!capacity)
    return capacity.takeError();

  int64_t numGroups = numTokens / groupSize;
  Tensor grouped = x.reshaped({numGroups, groupSize, hidden});
  Tensor gates = routerGates(grouped, weights.routerKernel);
  if (config.paddingTokens < 0 || config.paddingTokens > numTokens)
    return Error{"padding_tokens = " + std::to_string(config.paddingTokens) +
                 " must be in [0, " + std::to_string(numTokens) + "]"};
  int64_t numValid = numTokens - config.paddingTokens;
  Routing routing;
  if (tokenChoice) {
    routing =
        tokenChoiceRouting(gates, k, *capacity, config.batchPriority, numValid);
  } else {
    Result<Routing> chosen = expertChoiceRouting(gates, *capacity, numValid);
    if (!chosen)
      return chosen.takeError();
    routing = std::move(chosen).value();
  }

  Tensor buffers = dispatch(grouped, routing,
                            config.bf16Dispatch || config.bf16ExpertMath);
  Tensor expertOutputs =
      expertMlp(buffers, weights.experts, config.bf16ExpertMath,
                config.int8ExpertMath ? GemmMath::Int8 : GemmMath::F32);
  Tensor combined = combine(expertOutputs, routing, config.bf16Dispatch);

  MoeOutput result;
  result.output = combined.reshaped(x.shape);
  result.gates = gates;

  MoeStats &stats = result.stats;
  stats.expertCounts = routing.expertCounts;
  stats.expertKept = IntTensor({numGroups, numExperts});
  for (int64_t g = 0; g < numGroups; ++g)
    for (int64_t e = 0; e < numExperts; ++e)
      stats.expertKept.at(g, e) = static_cast<int32_t>(
          std::min<int64_t>(routing.expertCounts.at(g, e), routing.capacity));
  stats.tokenKeptAssignments = IntTensor({numGroups, groupSize});
  int64_t numAssignments = routing.slots.dim(2);
  for (int64_t g = 0; g < numGroups; ++g)
    for (int64_t s = 0; s < groupSize; ++s) {
      int32_t kept = 0;
      for (int64_t j = 0; j < numAssignments; ++j)
        kept += routing.slots.at(g, s, j) >= 0 ? 1 : 0;
      stats.tokenKeptAssignments.at(g, s) = kept;
      stats.assignmentsKept += kept;
    }
  stats.assignmentsDropped =
      tokenChoice ? numValid * k - stats.assignmentsKept : 0;
  stats.tokenKeptAssignments = stats.tokenKeptAssignments.reshaped(tokenShape);
  if (x.rank() == 3) {
    int64_t images = x.dim(0), tokensPerImage = x.dim(1);
    for (int64_t b = 0; b < images; ++b) {
      int64_t reached = 0;
      for (int64_t t = 0; t < tokensPerImage; ++t)
        reached += stats.tokenKeptAssignments.at(b, t) > 0 ? 1 : 0;
      stats.imageTokenShare.push_back(
          tokensPerImage == 0 ? 0.0
                              : static_cast<double>(reached) /
                                    static_cast<double>(tokensPerImage));
    }
  }
  result.routing = std::move(routing);
  return result;
}

} // namespace vmoe::reference
