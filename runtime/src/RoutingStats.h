//===- RoutingStats.h - Routing statistics of the last run ------*- C++ -*-===//
//
// MoE layers compiled with statistics leave, in the arena, per group and
// expert the number of assignments and, per token, whether one of its
// assignments was kept. After a successful run these reports read them from
// the executor's host view of the arena, with the capacity, BPR and batch
// the run used.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_ROUTINGSTATS_H
#define VMOE_RUNTIME_ROUTINGSTATS_H

#include "Knobs.h"
#include "Module.h"
#include "vmoe/runtime.h"

#include <cstdint>
#include <vector>

namespace vmoe {

class RoutingStats {
public:
  /// `arena`: the executor's host view of the arena.
  void init(const Module *module, const uint8_t *arena);

  /// The kernels are about to overwrite the statistics.
  void invalidate() { valid = false; }
  /// A run succeeded with `layers` (swapped in; *layers gets the previous
  /// values) at `batch`.
  void record(std::vector<LayerCall> *layers, int64_t batch);

  vmoe_status_t routingStats(uint32_t layer, vmoe_routing_stats_t *out,
                             vmoe_message_t *message) const;
  vmoe_status_t expertLoad(uint32_t layer, uint64_t *assigned, uint64_t *kept,
                           uint32_t expertCount, vmoe_message_t *message) const;
  vmoe_status_t imageCoverage(uint32_t layer, double *shares,
                              uint32_t imageCount,
                              vmoe_message_t *message) const;

private:
  vmoe_status_t checkLayer(uint32_t layer, vmoe_message_t *message) const;
  void countAssignments(uint32_t layer, uint64_t *assigned, uint64_t *kept,
                        uint64_t *perExpertAssigned,
                        uint64_t *perExpertKept) const;

  const Module *module = nullptr;
  const uint8_t *arena = nullptr;
  /// Per MoE layer: the last successful call's values.
  std::vector<LayerCall> last;
  int64_t lastBatch = 0;
  bool valid = false;
};

} // namespace vmoe

#endif // VMOE_RUNTIME_ROUTINGSTATS_H
