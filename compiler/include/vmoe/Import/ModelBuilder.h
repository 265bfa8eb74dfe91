//===- ModelBuilder.h - a V-MoE as vmoe dialect IR --------------*- C++ -*-===//
//
// Builds the tensor-level IR of a VisionTransformerMoe from a config that
// mirrors vmoe's `model` config and a set of weights named as in vmoe's
// Flax parameter tree ("Encoder/encoderblock_1/Moe/Mlp/Dense_0/kernel").
// Every tensor the config needs is checked by name and shape; a missing,
// extra or misshapen tensor is an error that names it (and both shapes).
// Weights become resource blobs, so the printed IR of a large model stays
// readable.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_IMPORT_MODELBUILDER_H
#define VMOE_IMPORT_MODELBUILDER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mlir::vmoe {

/// vmoe's model config, the fields a V-MoE at inference uses.
struct VitMoeConfig {
  std::string name = "vmoe";
  int64_t imageHeight = 224, imageWidth = 224, channels = 3;
  int64_t patchSize = 16;
  int64_t hiddenSize = 768;
  int64_t numLayers = 12;
  int64_t mlpDim = 3072;
  int64_t numHeads = 12;
  /// "token" (class token), "gap" (mean over tokens).
  std::string classifier = "token";
  std::optional<int64_t> representationSize;
  int64_t numClasses = 1000;
  // encoder.moe
  std::vector<int64_t> moeLayers;
  int64_t numExperts = 8;
  int64_t numSelectedExperts = 2;
  /// Tokens per routing group; 0: all tokens of one image.
  int64_t groupSize = 0;
  double capacityFactor = 1.05;
  /// Largest per-call capacity factor; 0: the capacity factor.
  double maxCapacityFactor = 0.0;
  bool batchPriority = false;
  bool bf16Dispatch = true;
  /// Images per call the module is compiled for.
  int64_t batchSize = 1;

  int64_t tokensPerImage() const;
  /// Checks the fields (positive sizes, divisibility, layers in range, ...).
  bool validate(std::string *error) const;
};

/// A float32 weight tensor, row-major.
struct WeightTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

using WeightMap = std::map<std::string, WeightTensor>;

/// The names and shapes of every parameter `config` needs, in a stable
/// order (vmoe's Flax tree, without the leading "params/").
std::vector<std::pair<std::string, std::vector<int64_t>>>
expectedWeights(const VitMoeConfig &config);

/// Builds `func.func @<name>(%images: tensor<BxHxWxCxf32>) -> tensor<Bx
/// classes xf32>`. Fails with a message naming the first bad tensor.
OwningOpRef<ModuleOp> buildVitMoe(MLIRContext &context,
                                  const VitMoeConfig &config,
                                  const WeightMap &weights,
                                  std::string *error);

/// Deterministic random weights of the right shapes (for presets and
/// benchmarks): matrices uniform with unit-variance-preserving scale,
/// LayerNorm scales 1, biases and embeddings small.
WeightMap randomWeights(const VitMoeConfig &config, uint64_t seed);

} // namespace mlir::vmoe

#endif // VMOE_IMPORT_MODELBUILDER_H
