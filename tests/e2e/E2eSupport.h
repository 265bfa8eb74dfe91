//===- E2eSupport.h - Models compiled for the end-to-end tests --*- C++ -*-===//
//
// What several end-to-end tests share: compiling a ViT-MoE config with its
// weights for this machine, and a small model of random-weight shape.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TESTS_E2E_E2ESUPPORT_H
#define VMOE_TESTS_E2E_E2ESUPPORT_H

#include "vmoe/Import/ModelBuilder.h"
#include "vmoe/Pipelines/Compile.h"

#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <cstdint>
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
