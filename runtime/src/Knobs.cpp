//===- Knobs.cpp - Capacity factor, BPR and batch of a call ---------------===//

#include "Knobs.h"

#include "Capacity.h"
#include "Diagnostics.h"

namespace vmoe {

namespace {

const char *layerName(const fb::MoeLayer *layer) {
  return layer->name() ? layer->name()->c_str() : "";
}

} // namespace

vmoe_status_t Knobs::checkBpr(int32_t bpr, const char *unset,
                              vmoe_message_t *message) {
  if (bpr < -1 || bpr > 1)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "BPR option %d must be -1 (%s), 0 or 1", bpr, unset);
  return VMOE_STATUS_OK;
}

vmoe_status_t Knobs::init(const Module *m, double capacityFactor, int32_t bpr,
                          vmoe_message_t *message) {
  module = m;
  if (capacityFactor != 0) {
    std::vector<LayerCall> layers(sizeOf(module->root().moe_layers()));
    if (vmoe_status_t status =
            resolveLayers(capacityFactor, bpr, &layers, message))
      return status;
  }
  sessionCapacityFactor = capacityFactor;
  sessionBpr = bpr;

  const fb::Module &root = module->root();
  for (uint32_t d = 0, e = sizeOf(root.dispatches()); d < e; ++d) {
    const auto *pushConstants = root.dispatches()->Get(d)->push_constants();
    for (uint32_t c = 0, n = sizeOf(pushConstants); c < n; ++c) {
      const fb::PushConstant *pc = pushConstants->Get(c);
      if (pc->source() != fb::PushConstantSource::Literal)
        callConstants.push_back(
            {static_cast<uint32_t>(values.size()), pc->source(), pc->layer()});
      values.push_back(pc->value());
    }
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t Knobs::resolve(const vmoe_run_options_t *options,
                             std::vector<LayerCall> *layers,
                             vmoe_message_t *message) const {
  double cf = sessionCapacityFactor;
  int32_t bpr = sessionBpr;
  if (options) {
    if (options->capacity_factor != 0)
      cf = options->capacity_factor;
    if (vmoe_status_t status = checkBpr(options->bpr, "the session's", message))
      return status;
    if (options->bpr != -1)
      bpr = options->bpr;
  }
  return resolveLayers(cf, bpr, layers, message);
}

vmoe_status_t Knobs::resolveLayers(double capacityFactor, int32_t bpr,
                                   std::vector<LayerCall> *out,
                                   vmoe_message_t *message) const {
  const fb::Module &m = module->root();
  for (uint32_t i = 0, e = sizeOf(m.moe_layers()); i < e; ++i) {
    const fb::MoeLayer *layer = m.moe_layers()->Get(i);
    double cf =
        capacityFactor != 0 ? capacityFactor : layer->default_capacity_factor();
    if (!(cf > 0) || !(cf <= layer->max_capacity_factor()))
      return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                  "capacity factor %s is out of range for MoE layer %u "
                  "('%.64s'): it must be > 0 and <= the compiled maximum %s",
                  formatDouble(cf).text, i, layerName(layer),
                  formatDouble(layer->max_capacity_factor()).text);
    uint64_t capacity;
    if (vmoe_status_t status =
            computeCapacity(layer->group_size(), layer->k(),
                            layer->num_experts(), cf, &capacity, message)) {
      prependMessage(message, "MoE layer %u ('%.64s')", i, layerName(layer));
      return status;
    }
    LayerCall &call = (*out)[i];
    call.capacityFactor = cf;
    call.capacity =
        capacity < layer->max_capacity() ? capacity : layer->max_capacity();
    call.bpr = bpr >= 0 ? bpr : layer->default_bpr() ? 1 : 0;
  }
  return VMOE_STATUS_OK;
}

void Knobs::apply(const std::vector<LayerCall> &layers, int64_t batch) {
  for (const CallConstant &cc : callConstants) {
    switch (cc.source) {
    case fb::PushConstantSource::MoeCapacity:
      values[cc.slot] = static_cast<int64_t>(layers[cc.layer].capacity);
      break;
    case fb::PushConstantSource::MoeBpr:
      values[cc.slot] = layers[cc.layer].bpr;
      break;
    case fb::PushConstantSource::BatchSize:
      values[cc.slot] = batch;
      break;
    case fb::PushConstantSource::Literal:
      break;
    }
  }
}

} // namespace vmoe
