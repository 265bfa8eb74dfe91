//===- MemoryPlanner.cpp - Assign buffers offsets in one arena ------------===//

#include "vmoe/writer/MemoryPlanner.h"

#include <algorithm>
#include <numeric>

namespace vmoe {
namespace writer {

namespace {

bool isPowerOfTwo(uint64_t v) { return v && !(v & (v - 1)); }

bool liveTogether(const BufferRequest &a, const BufferRequest &b) {
  return a.firstUse <= b.lastUse && b.firstUse <= a.lastUse;
}

bool alignUp(uint64_t v, uint64_t alignment, uint64_t *out) {
  if (v > UINT64_MAX - (alignment - 1))
    return false;
  *out = (v + alignment - 1) & ~(alignment - 1);
  return true;
}

} // namespace

bool planMemory(const std::vector<BufferRequest> &requests, MemoryPlan &plan,
                std::string *error, uint64_t baseAlignment) {
  if (!isPowerOfTwo(baseAlignment)) {
    *error = "base alignment " + std::to_string(baseAlignment) +
             " is not a power of two";
    return false;
  }
  plan.offsets.assign(requests.size(), 0);
  plan.arenaSize = 0;
  plan.arenaAlignment = baseAlignment;
  for (size_t i = 0; i < requests.size(); ++i) {
    const BufferRequest &r = requests[i];
    if (!isPowerOfTwo(r.alignment)) {
      *error = "buffer " + std::to_string(i) + ": alignment " +
               std::to_string(r.alignment) + " is not a power of two";
      return false;
    }
    if (r.firstUse > r.lastUse) {
      *error = "buffer " + std::to_string(i) + ": first use " +
               std::to_string(r.firstUse) + " is after last use " +
               std::to_string(r.lastUse);
      return false;
    }
    plan.arenaAlignment = std::max(plan.arenaAlignment, r.alignment);
  }

  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (requests[a].size != requests[b].size)
      return requests[a].size > requests[b].size;
    return requests[a].firstUse < requests[b].firstUse;
  });

  std::vector<size_t> placed;     // in placement order
  std::vector<size_t> neighbours; // placed buffers live with the current one
  for (size_t i : order) {
    const BufferRequest &r = requests[i];
    if (r.size == 0) {
      plan.offsets[i] = 0; // occupies nothing
      continue;
    }
    neighbours.clear();
    for (size_t j : placed)
      if (liveTogether(r, requests[j]))
        neighbours.push_back(j);
    std::sort(neighbours.begin(), neighbours.end(), [&](size_t a, size_t b) {
      return plan.offsets[a] < plan.offsets[b];
    });
    // First fit: walk the live buffers by offset and take the first gap.
    uint64_t candidate = 0;
    for (size_t j : neighbours) {
      uint64_t end = candidate + r.size;
      if (end < candidate) {
        *error = "arena size overflows 64 bits";
        return false;
      }
      if (end <= plan.offsets[j])
        break;
      uint64_t jEnd = plan.offsets[j] + requests[j].size;
      if (jEnd > candidate && !alignUp(jEnd, r.alignment, &candidate)) {
        *error = "arena size overflows 64 bits";
        return false;
      }
    }
    uint64_t end = candidate + r.size;
    if (end < candidate) {
      *error = "arena size overflows 64 bits";
      return false;
    }
    plan.offsets[i] = candidate;
    plan.arenaSize = std::max(plan.arenaSize, end);
    placed.push_back(i);
  }
  return true;
}

bool verifyMemoryPlan(const std::vector<BufferRequest> &requests,
                      const MemoryPlan &plan, std::string *error) {
  if (plan.offsets.size() != requests.size()) {
    *error = "the plan has " + std::to_string(plan.offsets.size()) +
             " offsets for " + std::to_string(requests.size()) + " buffers";
    return false;
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    const BufferRequest &a = requests[i];
    uint64_t aBegin = plan.offsets[i];
    if (aBegin % a.alignment) {
      *error = "buffer " + std::to_string(i) + " at " + std::to_string(aBegin) +
               " is not " + std::to_string(a.alignment) + "-byte aligned";
      return false;
    }
    if (a.size &&
        (aBegin + a.size < aBegin || aBegin + a.size > plan.arenaSize)) {
      *error = "buffer " + std::to_string(i) + " ends past the arena size " +
               std::to_string(plan.arenaSize);
      return false;
    }
    for (size_t j = i + 1; j < requests.size(); ++j) {
      const BufferRequest &b = requests[j];
      if (!a.size || !b.size || !liveTogether(a, b))
        continue;
      uint64_t bBegin = plan.offsets[j];
      if (aBegin < bBegin + b.size && bBegin < aBegin + a.size) {
        *error = "buffers " + std::to_string(i) + " and " + std::to_string(j) +
                 " are live together and overlap";
        return false;
      }
    }
  }
  return true;
}

} // namespace writer
} // namespace vmoe
