//===- Routing.cpp - Router gates, top-k and slot assignment ----*- C++ -*-===//
//
// Token choice (NoisyTopExpertsPerItemRouter) and expert choice
// (NoisyTopItemsPerExpertRouter) at inference, written as the literal greedy
// loops of reference section 5 rather than upstream's one-hot/cumsum form.
//
//===----------------------------------------------------------------------===//

#include "reference/Reference.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace vmoe::reference {

Tensor routerGates(const Tensor &x, const Tensor &kernel) {
  return softmaxLastAxis(dense(x, kernel));
}

/// Indices 0..n-1 sorted by descending value; std::stable_sort with a strict
/// `>` keeps equal values (including -0.0 vs 0.0) in index order, which is
/// the jax.lax.top_k tie rule and jnp.argsort's stability.
static std::vector<int64_t> descendingOrder(const std::vector<float> &values) {
  for (float v : values)
    VMOE_REF_CHECK(!std::isnan(v), "NaN in values to rank");
  std::vector<int64_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return values[a] > values[b]; });
  return order;
}

TopK topK(const Tensor &x, int64_t k) {
  VMOE_REF_CHECK(x.rank() >= 1, "topK of a rank-0 tensor");
  int64_t n = x.dim(-1);
  VMOE_REF_CHECK(k >= 1 && k <= n, "topK: k = " + std::to_string(k) +
                                       " outside [1, " + std::to_string(n) +
                                       "]");
  std::vector<int64_t> outShape = x.shape;
  outShape.back() = k;
  TopK result{Tensor(outShape), IntTensor(outShape)};
  int64_t rows = x.numElements() / n;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> row(x.data.begin() + r * n,
                           x.data.begin() + (r + 1) * n);
    std::vector<int64_t> order = descendingOrder(row);
    for (int64_t j = 0; j < k; ++j) {
      result.values.data[r * k + j] = row[order[j]];
      result.indices.data[r * k + j] = static_cast<int32_t>(order[j]);
    }
  }
  return result;
}

std::vector<int64_t> tokenOrder(const Tensor &topValues, int64_t group,
                                bool batchPriority) {
  VMOE_REF_CHECK(topValues.rank() == 3,
                 "tokenOrder: top values must be (G, S, K), got " +
                     shapeToString(topValues.shape));
  int64_t groupSize = topValues.dim(1);
  if (!batchPriority) {
    std::vector<int64_t> order(groupSize);
    std::iota(order.begin(), order.end(), 0);
    return order;
  }
  // BPR priority is the top-1 gate (column 0), not the sum of the top-k.
  std::vector<float> priority(groupSize);
  for (int64_t s = 0; s < groupSize; ++s)
    priority[s] = topValues.at(group, s, 0);
  return descendingOrder(priority);
}

/// How many of group g's tokens are real when the first `numValidTokens`
/// tokens of the flattened groups are (-1: all).
static int64_t validInGroup(int64_t g, int64_t groupSize,
                            int64_t numValidTokens) {
  if (numValidTokens < 0)
    return groupSize;
  return std::clamp<int64_t>(numValidTokens - g * groupSize, 0, groupSize);
}

SlotAssignment assignSlots(const Tensor &topValues, const IntTensor &topIndices,
                           int64_t numExperts, int64_t capacity,
                           bool batchPriority, int64_t numValidTokens) {
  VMOE_REF_CHECK(topValues.rank() == 3 && topValues.shape == topIndices.shape,
                 "assignSlots: values " + shapeToString(topValues.shape) +
                     " and indices " + shapeToString(topIndices.shape) +
                     " must both be (G, S, K)");
  VMOE_REF_CHECK(numExperts >= 1, "assignSlots: no experts");
  VMOE_REF_CHECK(capacity >= 0, "assignSlots: negative capacity");
  int64_t numGroups = topValues.dim(0);
  int64_t k = topValues.dim(2);

  SlotAssignment result{IntTensor(topIndices.shape),
                        IntTensor(topIndices.shape),
                        IntTensor({numGroups, numExperts})};
  for (int64_t g = 0; g < numGroups; ++g) {
    std::vector<int64_t> order = tokenOrder(topValues, g, batchPriority);
    std::vector<int64_t> count(numExperts, 0);
    int64_t valid = validInGroup(g, topValues.dim(1), numValidTokens);
    // k-major: every token's j-th choice before any (j+1)-th choice, all
    // rounds in the same token order.
    for (int64_t j = 0; j < k; ++j) {
      for (int64_t s : order) {
        if (s >= valid) { // padding: never routed
          result.positions.at(g, s, j) = -1;
          result.slots.at(g, s, j) = -1;
          continue;
        }
        int64_t expert = topIndices.at(g, s, j);
        VMOE_REF_CHECK(expert >= 0 && expert < numExperts,
                       "assignSlots: expert index " + std::to_string(expert) +
                           " out of range");
        // The counter advances even past the capacity, so a full expert
        // rejects every later assignment (no back-filling).
        int64_t position = count[expert]++;
        result.positions.at(g, s, j) = static_cast<int32_t>(position);
        result.slots.at(g, s, j) =
            position < capacity ? static_cast<int32_t>(position) : -1;
      }
    }
    for (int64_t e = 0; e < numExperts; ++e)
      result.expertCounts.at(g, e) = static_cast<int32_t>(count[e]);
  }
  return result;
}

/// Fills routing.slotTokens from the kept per-token assignments.
static void fillSlotTokens(Routing &routing) {
  int64_t numGroups = routing.slots.dim(0);
  int64_t groupSize = routing.slots.dim(1);
  int64_t numAssignments = routing.slots.dim(2);
  routing.slotTokens =
      IntTensor::filled({numGroups, routing.numExperts, routing.capacity}, -1);
  for (int64_t g = 0; g < numGroups; ++g)
    for (int64_t s = 0; s < groupSize; ++s)
      for (int64_t j = 0; j < numAssignments; ++j) {
        int64_t slot = routing.slots.at(g, s, j);
        if (slot < 0)
          continue;
        int32_t &token =
            routing.slotTokens.at(g, routing.experts.at(g, s, j), slot);
        VMOE_REF_CHECK(token == -1, "two tokens in one expert slot");
        token = static_cast<int32_t>(s);
      }
}

Routing tokenChoiceRouting(const Tensor &gates, int64_t numSelectedExperts,
                           int64_t capacity, bool batchPriority,
                           int64_t numValidTokens) {
  VMOE_REF_CHECK(gates.rank() == 3,
                 "gates must be (G, S, E), got " + shapeToString(gates.shape));
  int64_t numExperts = gates.dim(2);
  TopK top = topK(gates, numSelectedExperts);
  SlotAssignment assignment =
      assignSlots(top.values, top.indices, numExperts, capacity, batchPriority,
                  numValidTokens);
  Routing routing;
  routing.numExperts = numExperts;
  routing.capacity = capacity;
  routing.experts = top.indices;
  routing.positions = assignment.positions;
  routing.slots = assignment.slots;
  // The raw softmax probabilities: no renormalisation over the top-k.
  routing.weights = top.values;
  routing.expertCounts = assignment.expertCounts;
  fillSlotTokens(routing);
  return routing;
}

Result<Routing> expertChoiceRouting(const Tensor &gates, int64_t capacity,
                                    int64_t numValidTokens) {
  VMOE_REF_CHECK(gates.rank() == 3,
                 "gates must be (G, S, E), got " + shapeToString(gates.shape));
  int64_t numGroups = gates.dim(0);
  int64_t groupSize = gates.dim(1);
  int64_t numExperts = gates.dim(2);
  if (capacity < 1 || capacity > groupSize)
    return Error{"expert choice: capacity = " + std::to_string(capacity) +
                 " must be in [1, group_size = " + std::to_string(groupSize) +
                 "]"};

  Routing routing;
  routing.numExperts = numExperts;
  routing.capacity = capacity;
  routing.experts = IntTensor({numGroups, groupSize, numExperts});
  routing.positions = IntTensor::filled({numGroups, groupSize, numExperts}, -1);
  routing.slots = IntTensor::filled({numGroups, groupSize, numExperts}, -1);
  routing.weights = gates;
  routing.expertCounts = IntTensor::filled({numGroups, numExperts},
                                           static_cast<int32_t>(capacity));
  for (int64_t g = 0; g < numGroups; ++g)
    for (int64_t s = 0; s < groupSize; ++s)
      for (int64_t e = 0; e < numExperts; ++e)
        routing.experts.at(g, s, e) = static_cast<int32_t>(e);

  for (int64_t g = 0; g < numGroups; ++g) {
    // Padding tokens are no candidates: with fewer real tokens than C an
    // expert takes them all.
    int64_t valid = validInGroup(g, groupSize, numValidTokens);
    int64_t taken = std::min(capacity, valid);
    for (int64_t e = 0; e < numExperts; ++e) {
      routing.expertCounts.at(g, e) = static_cast<int32_t>(taken);
      std::vector<float> column(valid);
      for (int64_t s = 0; s < valid; ++s)
        column[s] = gates.at(g, s, e);
      // top_k over tokens: ties to the lower token index.
      std::vector<int64_t> order = descendingOrder(column);
      for (int64_t c = 0; c < taken; ++c) {
        int64_t s = order[c];
        routing.positions.at(g, s, e) = static_cast<int32_t>(c);
        routing.slots.at(g, s, e) = static_cast<int32_t>(c);
      }
    }
  }
  fillSlotTokens(routing);
  return routing;
}

static Tensor routingToDense(const Routing &routing, bool useWeights) {
  int64_t numGroups = routing.slots.dim(0);
  int64_t groupSize = routing.slots.dim(1);
  int64_t numAssignments = routing.slots.dim(2);
  Tensor result({numGroups, groupSize, routing.numExperts, routing.capacity});
  for (int64_t g = 0; g < numGroups; ++g)
    for (int64_t s = 0; s < groupSize; ++s)
      for (int64_t j = 0; j < numAssignments; ++j) {
        int64_t slot = routing.slots.at(g, s, j);
        if (slot >= 0)
          result.at(g, s, routing.experts.at(g, s, j), slot) =
              useWeights ? routing.weights.at(g, s, j) : 1.0f;
      }
  return result;
}

Tensor combineWeights(const Routing &routing) {
  return routingToDense(routing, /*useWeights=*/true);
}

Tensor dispatchMask(const Routing &routing) {
  return routingToDense(routing, /*useWeights=*/false);
}

} // namespace vmoe::reference
