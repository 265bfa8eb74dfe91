//===- ReferenceWeights.h - Flax-named weights for the reference -*- C++
//-*-===//
//
// The reference evaluator's weights and model config for a ViT-MoE config
// and its weights named as in vmoe's Flax tree, for the end-to-end tests.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TESTS_E2E_REFERENCEWEIGHTS_H
#define VMOE_TESTS_E2E_REFERENCEWEIGHTS_H

#include "reference/Reference.h"
#include "vmoe/Import/ModelBuilder.h"

#include <string>

namespace vmoe::e2e {

namespace ref = ::vmoe::reference;

inline ref::Tensor toTensor(const mlir::vmoe::WeightTensor &w) {
  return ref::Tensor(w.shape, w.data);
}

inline ref::AttentionWeights attentionWeights(const mlir::vmoe::WeightMap &w,
                                              const std::string &p) {
  auto t = [&](const std::string &name) { return toTensor(w.at(p + name)); };
  ref::AttentionWeights a;
  a.queryKernel = t("query/kernel");
  a.queryBias = t("query/bias");
  a.keyKernel = t("key/kernel");
  a.keyBias = t("key/bias");
  a.valueKernel = t("value/kernel");
  a.valueBias = t("value/bias");
  a.outKernel = t("out/kernel");
  a.outBias = t("out/bias");
  return a;
}

inline ref::ModelWeights toReference(const mlir::vmoe::VitMoeConfig &c,
                                     const mlir::vmoe::WeightMap &w) {
  auto t = [&](const std::string &name) { return toTensor(w.at(name)); };
  ref::ModelWeights m;
  m.embeddingKernel = t("embedding/kernel");
  m.embeddingBias = t("embedding/bias");
  if (c.classifier == "token")
    m.cls = t("cls");
  if (c.positionEmbedding == "learned")
    m.posEmbedding = t("Encoder/posembed_input/pos_embedding");
  for (int64_t i = 0; i < c.numLayers; ++i) {
    std::string p = "Encoder/encoderblock_" + std::to_string(i) + "/";
    ref::EncoderBlockWeights b;
    b.layerNorm0 = {t(p + "LayerNorm_0/scale"), t(p + "LayerNorm_0/bias")};
    b.layerNorm1 = {t(p + "LayerNorm_1/scale"), t(p + "LayerNorm_1/bias")};
    b.attention = attentionWeights(w, p + "SelfAttention/");
    if (w.count(p + "Moe/Router/dense/kernel")) {
      ref::MoeWeights moe;
      moe.routerKernel = t(p + "Moe/Router/dense/kernel");
      moe.experts = {
          t(p + "Moe/Mlp/Dense_0/kernel"), t(p + "Moe/Mlp/Dense_0/bias"),
          t(p + "Moe/Mlp/Dense_1/kernel"), t(p + "Moe/Mlp/Dense_1/bias")};
      b.moe = moe;
    } else {
      b.mlp = ref::MlpWeights{
          {t(p + "Mlp/Dense_0/kernel"), t(p + "Mlp/Dense_0/bias")},
          {t(p + "Mlp/Dense_1/kernel"), t(p + "Mlp/Dense_1/bias")}};
    }
    m.blocks.push_back(std::move(b));
  }
  m.encoderNorm = {t("Encoder/encoder_norm/scale"),
                   t("Encoder/encoder_norm/bias")};
  if (c.classifier == "map") {
    ref::MapHeadWeights head;
    head.probe = t("MapHead/probe");
    head.attention =
        attentionWeights(w, "MapHead/MultiHeadDotProductAttention/");
    head.layerNorm = {t("MapHead/LayerNorm/scale"),
                      t("MapHead/LayerNorm/bias")};
    head.mlp = ref::MlpWeights{
        {t("MapHead/Mlp/Dense_0/kernel"), t("MapHead/Mlp/Dense_0/bias")},
        {t("MapHead/Mlp/Dense_1/kernel"), t("MapHead/Mlp/Dense_1/bias")}};
    m.mapHead = std::move(head);
  }
  if (c.representationSize)
    m.preLogits =
        ref::DenseWeights{t("pre_logits/kernel"), t("pre_logits/bias")};
  m.head = {t("head/kernel"), t("head/bias")};
  return m;
}

/// The reference's classifier and position embedding for `c`.
inline void referenceModelParts(const mlir::vmoe::VitMoeConfig &c,
                                ref::ModelConfig &out) {
  out.classifier = c.classifier == "token" ? ref::Classifier::Token
                   : c.classifier == "gap" ? ref::Classifier::Gap
                   : c.classifier == "map" ? ref::Classifier::Map
                                           : ref::Classifier::First;
  if (c.positionEmbedding == "sincos2d")
    out.sincos2dTemperature = c.sincosTemperature;
}

} // namespace vmoe::e2e

#endif // VMOE_TESTS_E2E_REFERENCEWEIGHTS_H
