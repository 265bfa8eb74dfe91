//===- Knobs.h - Capacity factor, BPR and batch of a call -------*- C++ -*-===//
//
// The values a caller may change per session and per call: the capacity
// factor, the experts per token (k) and Batch Prioritized Routing of every
// MoE layer, and the batch. They reach the kernels only as push constants
// (MoeCapacity, MoeBpr, MoeK, BatchSize), which this class writes into the
// session's flat array of every dispatch's push constants.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_KNOBS_H
#define VMOE_RUNTIME_KNOBS_H

#include "Module.h"
#include "vmoe/runtime.h"

#include <cstdint>
#include <vector>

namespace vmoe {

/// One MoE layer's values in a call.
struct LayerCall {
  /// 0 for a layer with a fixed capacity.
  double capacityFactor;
  uint64_t capacity;
  int32_t bpr;
  /// Experts per token (1 for expert choice).
  uint32_t k;
};

/// What a call or a session asks for; 0 / -1: the level below's.
struct KnobRequest {
  double capacityFactor = 0;
  int32_t bpr = -1;
  uint32_t k = 0;
};

class Knobs {
public:
  /// A BPR option is -1 (`unset` names what it means), 0 or 1.
  static vmoe_status_t checkBpr(int32_t bpr, const char *unset,
                                vmoe_message_t *message);

  /// The session's settings (0 / -1: each layer's default); a session-wide
  /// capacity factor and k must already be valid for every layer. Also
  /// collects every dispatch's push constants and which of them a call sets.
  vmoe_status_t init(const Module *module, const KnobRequest &session,
                     vmoe_message_t *message);

  /// This call's per-layer values: `options` (may be null) over the
  /// session's over each layer's defaults.
  vmoe_status_t resolve(const vmoe_run_options_t *options,
                        std::vector<LayerCall> *layers,
                        vmoe_message_t *message) const;

  /// Writes the call-dependent push constants for `layers` and `batch`.
  void apply(const std::vector<LayerCall> &layers, int64_t batch);

  /// Every dispatch's push constants, flattened in dispatch order.
  const int64_t *constants() const { return values.data(); }
  size_t constantCount() const { return values.size(); }

private:
  /// A push constant whose value depends on the call.
  struct CallConstant {
    uint32_t slot;
    fb::PushConstantSource source;
    uint32_t layer;
  };

  vmoe_status_t resolveLayers(const KnobRequest &request,
                              std::vector<LayerCall> *out,
                              vmoe_message_t *message) const;
  vmoe_status_t resolveLayer(uint32_t index, const KnobRequest &request,
                             LayerCall *out, vmoe_message_t *message) const;

  const Module *module = nullptr;
  KnobRequest sessionRequest;
  std::vector<int64_t> values;
  std::vector<CallConstant> callConstants;
};

} // namespace vmoe

#endif // VMOE_RUNTIME_KNOBS_H
