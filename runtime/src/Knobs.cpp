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

vmoe_status_t Knobs::init(const Module *m, const KnobRequest &session,
                          vmoe_message_t *message) {
  module = m;
  if (session.capacityFactor != 0 || session.k != 0) {
    std::vector<LayerCall> layers(sizeOf(module->root().moe_layers()));
    if (vmoe_status_t status = resolveLayers(session, &layers, message))
      return status;
  }
  sessionRequest = session;

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
  KnobRequest request = sessionRequest;
  if (options) {
    if (options->capacity_factor != 0)
      request.capacityFactor = options->capacity_factor;
    if (vmoe_status_t status = checkBpr(options->bpr, "the session's", message))
      return status;
    if (options->bpr != -1)
      request.bpr = options->bpr;
    if (options->num_selected_experts != 0)
      request.k = options->num_selected_experts;
  }
  return resolveLayers(request, layers, message);
}

vmoe_status_t Knobs::resolveLayers(const KnobRequest &request,
                                   std::vector<LayerCall> *out,
                                   vmoe_message_t *message) const {
  const fb::Module &m = module->root();
  uint32_t count = sizeOf(m.moe_layers());
  // A request that no layer can take is a mistake, not a no-op.
  bool anyFactor = false, anyTopK = false;
  for (uint32_t i = 0; i < count; ++i) {
    const fb::MoeLayer *layer = m.moe_layers()->Get(i);
    anyFactor |= layer->max_capacity_factor() != 0;
    anyTopK |= layer->routing() == fb::RoutingKind::TopK;
  }
  if (request.capacityFactor != 0 && !anyFactor)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "capacity factor %s: no MoE layer of this module takes one "
                "(each was compiled with a fixed capacity)",
                formatDouble(request.capacityFactor).text);
  if (request.k != 0 && !anyTopK)
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "k %u: no MoE layer of this module routes by top-k (expert "
                "choice has no k)",
                request.k);
  for (uint32_t i = 0; i < count; ++i)
    if (vmoe_status_t status = resolveLayer(i, request, &(*out)[i], message))
      return status;
  return VMOE_STATUS_OK;
}

vmoe_status_t Knobs::resolveLayer(uint32_t i, const KnobRequest &request,
                                  LayerCall *call,
                                  vmoe_message_t *message) const {
  const fb::MoeLayer *layer = module->root().moe_layers()->Get(i);
  bool topK = layer->routing() == fb::RoutingKind::TopK;
  uint32_t k = layer->k();
  if (topK && request.k != 0) {
    if (request.k > layer->k())
      return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                  "k %u is out of range for MoE layer %u ('%.64s'): it must "
                  "be in [1, %u], the compiled k",
                  request.k, i, layerName(layer), layer->k());
    k = request.k;
  }
  call->k = k;
  // Expert choice has no token order to prioritise: BPR is off there.
  call->bpr = !topK                  ? 0
              : request.bpr >= 0     ? request.bpr
              : layer->default_bpr() ? 1
                                     : 0;
  if (layer->max_capacity_factor() == 0) {
    // A fixed capacity: the same in every call, whatever the factor and k
    // (vmoe uses an explicit capacity as it is).
    call->capacityFactor = 0;
    call->capacity = layer->max_capacity();
    return VMOE_STATUS_OK;
  }
  double cf = request.capacityFactor != 0 ? request.capacityFactor
                                          : layer->default_capacity_factor();
  if (!(cf > 0) || !(cf <= layer->max_capacity_factor()))
    return fail(message, VMOE_STATUS_INVALID_ARGUMENT,
                "capacity factor %s is out of range for MoE layer %u "
                "('%.64s'): it must be > 0 and <= the compiled maximum %s",
                formatDouble(cf).text, i, layerName(layer),
                formatDouble(layer->max_capacity_factor()).text);
  uint64_t capacity;
  if (vmoe_status_t status = layerCapacity(layer, cf, k, &capacity, message)) {
    prependMessage(message, "MoE layer %u ('%.64s')", i, layerName(layer));
    return status;
  }
  call->capacityFactor = cf;
  // Past max_capacity nothing changes: the compiled buffers hold every
  // assignment a group can make (top-k), or the whole group (expert choice).
  call->capacity =
      capacity < layer->max_capacity() ? capacity : layer->max_capacity();
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
    case fb::PushConstantSource::MoeK:
      values[cc.slot] = layers[cc.layer].k;
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
