//===- ModelBuilder.h - a V-MoE as vmoe dialect IR --------------*- C++ -*-===//
//
// Builds the tensor-level IR of a VisionTransformerMoe from a config that
// mirrors vmoe's `model` config and a set of weights named as in vmoe's
// Flax parameter tree ("Encoder/encoderblock_1/Moe/Mlp/Dense_0/kernel").
// Every tensor the config needs is checked by name and shape; a missing,
// extra or misshapen tensor is an error that names it (and both shapes).
// Weights stay out of the IR: each is a `vmoe.parameter` that names it, and
// the serializer streams its values from a TensorSource (the checkpoint, or
// random weights) into the module.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_IMPORT_MODELBUILDER_H
#define VMOE_IMPORT_MODELBUILDER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "vmoe/readers/ModelConfig.h"
#include "vmoe/readers/Tensor.h"
#include "vmoe/readers/TensorSource.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mlir::vmoe {

/// vmoe's model config (the fields a V-MoE at inference uses) and weights,
/// as the readers in compiler/readers produce them.
using VitMoeConfig = ::vmoe::readers::ModelConfig;
using WeightTensor = ::vmoe::readers::Tensor;
using WeightMap = ::vmoe::readers::TensorMap;

/// checkModelConfig plus what building needs: the group size divides the
/// batch's tokens (vmoe issue #182), the MoE layers and capacities are sane.
bool validateForBuild(const VitMoeConfig &config, std::string *error);

/// The names and shapes of every parameter `config` needs, in a stable
/// order (vmoe's Flax tree, without the leading "params/").
std::vector<std::pair<std::string, std::vector<int64_t>>>
expectedWeights(const VitMoeConfig &config);

/// The same as a map, for the readers (ReadOptions::expected): they refuse
/// an unexpected or misshapen tensor before reading its data.
::vmoe::readers::ExpectedShapes expectedShapes(const VitMoeConfig &config);

/// Bytes of the float32 weights `config` needs, UINT64_MAX past 2^64.
uint64_t weightBytes(const VitMoeConfig &config);

/// Bytes of the largest float32 weight `config` needs, UINT64_MAX past 2^64.
uint64_t largestWeightBytes(const VitMoeConfig &config);

/// The memory compiling `config` takes at least: the weights stream into
/// the module one at a time, so its largest weight as read and as packed,
/// plus 64 MB for the compiler's IR and code generation. UINT64_MAX past
/// 2^64.
uint64_t compileMemoryEstimate(const VitMoeConfig &config);

/// Builds `func.func @<name>(%images: tensor<BxHxWxCxf32>) -> tensor<Bx
/// classes xf32>` with one `vmoe.parameter` per weight, checking the names
/// and shapes of the tensors `available` (TensorSource::shapes()) against
/// the config. Fails with a message naming the first bad tensor.
OwningOpRef<ModuleOp>
buildVitMoe(MLIRContext &context, const VitMoeConfig &config,
            const ::vmoe::readers::ExpectedShapes &available,
            std::string *error);

/// The same, checking `weights` (shapes and value counts); compile it with
/// tensorMapSource(weights) as CompileOptions::parameters.
OwningOpRef<ModuleOp> buildVitMoe(MLIRContext &context,
                                  const VitMoeConfig &config,
                                  const WeightMap &weights,
                                  std::string *error);

/// Deterministic random weights of the right shapes (for presets and
/// benchmarks): matrices uniform with unit-variance-preserving scale,
/// LayerNorm scales 1, biases and embeddings small. One random stream
/// over the tensors in expectedWeights order.
WeightMap randomWeights(const VitMoeConfig &config, uint64_t seed);

/// The same values, made one tensor at a time when read (any order): what
/// vmoe-compile --random-weights streams into a module.
std::unique_ptr<::vmoe::readers::TensorSource>
randomWeightSource(const VitMoeConfig &config, uint64_t seed);

/// Random values for the parameters `shapes` of a .mlir model (vmoe-compile
/// --random-weights): each from its own stream (the seed and its name), so
/// the order of reads does not matter. Names ending in "/scale" are ones,
/// matrices uniform in +-sqrt(3 / rows), the rest uniform in +-0.02.
std::unique_ptr<::vmoe::readers::TensorSource>
randomParameterSource(const ::vmoe::readers::ExpectedShapes &shapes,
                      uint64_t seed);

} // namespace mlir::vmoe

#endif // VMOE_IMPORT_MODELBUILDER_H
