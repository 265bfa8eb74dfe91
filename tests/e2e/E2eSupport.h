//===- E2eSupport.h - Models compiled for the end-to-end tests --*- C++ -*-===//
//
// What several end-to-end tests share: the bundled model, compiling a
// ViT-MoE config with its weights for this machine (whole or into expert
// shards), the target the tests run on, opening a session on compiled bytes,
// and a small model of random-weight shape.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TESTS_E2E_E2ESUPPORT_H
#define VMOE_TESTS_E2E_E2ESUPPORT_H

#include "vmoe/Import/ModelBuilder.h"
#include "vmoe/Pipelines/Compile.h"
#include "vmoe/readers/ModelConfig.h"
#include "vmoe/readers/Npz.h"
#include "vmoe/readers/TensorSource.h"
#include "vmoe/readers/Weights.h"
#include "vmoe/runtime.h"

#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace vmoe::e2e {

/// `config` with `weights` compiled for this machine into module bytes
/// (empty, with a test failure, when it does not compile).
inline std::vector<uint8_t>
compileForHost(const mlir::vmoe::VitMoeConfig &config,
               const mlir::vmoe::WeightMap &weights) {
  mlir::DialectRegistry registry;
  mlir::vmoe::registerCompilerDialects(registry);
  mlir::MLIRContext context(registry);
  std::string error;
  auto module = mlir::vmoe::buildVitMoe(context, config, weights, &error);
  EXPECT_TRUE(module) << error;
  std::vector<uint8_t> bytes;
  if (!module)
    return bytes;
  mlir::vmoe::CompileOptions options;
  options.cpu = "host";
  options.modelName = config.name;
  auto source = ::vmoe::readers::tensorMapSource(weights);
  options.parameters = source.get();
  EXPECT_TRUE(mlir::succeeded(
      mlir::vmoe::compileToModule(*module, options, bytes, &error)))
      << error;
  return bytes;
}

/// `config` with `weights` compiled for this machine whole (`shards` 1: one
/// module) or into `shards` rank modules (expert parallelism), with the
/// other choices of `options`. Empty when it does not compile: with
/// `error`, the message goes there; without, it fails the test.
inline std::vector<std::vector<uint8_t>>
compileRanks(const mlir::vmoe::VitMoeConfig &config,
             const mlir::vmoe::WeightMap &weights, unsigned shards,
             mlir::vmoe::CompileOptions options = {},
             std::string *error = nullptr) {
  mlir::DialectRegistry registry;
  mlir::vmoe::registerCompilerDialects(registry);
  mlir::MLIRContext context(registry);
  std::string text;
  auto source = ::vmoe::readers::tensorMapSource(weights);
  auto module =
      mlir::vmoe::buildVitMoe(context, config, source->shapes(), &text);
  EXPECT_TRUE(module) << text;
  std::vector<std::vector<uint8_t>> out;
  if (!module)
    return out;
  options.cpu = "host";
  options.modelName = config.name;
  options.parameters = source.get();
  options.expertShards = shards;
  bool ok;
  if (shards == 1) {
    out.resize(1);
    ok = mlir::succeeded(
        mlir::vmoe::compileToModule(*module, options, out[0], &text));
  } else {
    ok = mlir::succeeded(
        mlir::vmoe::compileToShardedModules(*module, options, out, &text));
  }
  if (error)
    *error = ok ? "" : text;
  else
    EXPECT_TRUE(ok) << text;
  if (!ok)
    out.clear();
  return out;
}

/// The bundled model (models/fashion-mnist): its config and weights, and
/// with `samples` its sample images ("inputs") and their golden PyTorch
/// logits ("logits"). False with *error when a file does not read.
inline bool loadBundledModel(mlir::vmoe::VitMoeConfig &config,
                             mlir::vmoe::WeightMap &weights,
                             mlir::vmoe::WeightMap *samples,
                             std::string *error) {
  std::string dir = VMOE_BUNDLED_MODEL_DIR;
  if (!::vmoe::readers::readModelConfig(dir + "/config.json", config, error) ||
      !::vmoe::readers::readWeights(dir + "/weights.npz", weights, error))
    return false;
  if (!samples)
    return true;
  ::vmoe::readers::ReadOptions options;
  options.skipNonFloat = true; // the uint8 images and int32 labels
  return ::vmoe::readers::readNpz(dir + "/samples.npz", *samples, error,
                                  options);
}

/// Where the end-to-end tests run: this CPU by default;
/// VMOE_E2E_TARGET=cuda-emulation runs the CUDA kernels' bodies on the CPU
/// (ctest does, everywhere); VMOE_E2E_DEVICE=cuda runs the PTX on a GPU
/// (scripts/gpu-check.sh). Sets the target of `options`; true on a GPU.
inline bool setE2eTarget(mlir::vmoe::CompileOptions &options) {
  if (const char *target = std::getenv("VMOE_E2E_TARGET"))
    options.target = target;
  const char *device = std::getenv("VMOE_E2E_DEVICE");
  bool onGpu = device && std::string(device) == "cuda";
  if (onGpu) {
    options.target = "cuda";
    options.cudaSms = {80, 90};
  }
  return onGpu;
}

/// Loads compiled `bytes` (copied) and opens a two-thread session on them,
/// on the GPU when `onGpu`; `base` gives the other session options.
inline void openSession(const std::vector<uint8_t> &bytes, bool onGpu,
                        vmoe_module_t **module, vmoe_session_t **session,
                        const vmoe_session_options_t *base = nullptr) {
  vmoe_message_t msg;
  ASSERT_EQ(vmoe_module_load_memory(bytes.data(), bytes.size(),
                                    VMOE_MEMORY_COPY, module, &msg),
            VMOE_STATUS_OK)
      << msg.text;
  vmoe_session_options_t options;
  vmoe_session_options_init(&options);
  if (base)
    options = *base;
  options.thread_count = 2;
  if (onGpu)
    options.device = VMOE_DEVICE_CUDA;
  ASSERT_EQ(vmoe_session_create(*module, &options, session, &msg),
            VMOE_STATUS_OK)
      << msg.text;
}

/// A small ViT-MoE (16x16 images, 2 blocks, MoE in block 1, 4 experts,
/// k = 2, batch 2).
inline mlir::vmoe::VitMoeConfig smallVitMoe(const std::string &name) {
  mlir::vmoe::VitMoeConfig config;
  config.name = name;
  config.imageHeight = config.imageWidth = 16;
  config.patchSize = 4;
  config.hiddenSize = 32;
  config.numLayers = 2;
  config.mlpDim = 64;
  config.numHeads = 4;
  config.numClasses = 7;
  config.moeLayers = {1};
  config.numExperts = 4;
  config.numSelectedExperts = 2;
  config.batchSize = 2;
  config.capacityFactor = 1.0;
  config.maxCapacityFactor = 2.0;
  return config;
}

} // namespace vmoe::e2e

#endif // VMOE_TESTS_E2E_E2ESUPPORT_H
