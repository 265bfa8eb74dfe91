//===- MakeModuleSeeds.cpp - Seed modules for the module fuzzers ---------===//
//
// Writes the runtime tests' modules (tests/support/modules/TestSupport.h) into
// a directory: the seed corpus of the module_load and module_run targets.
// Usage: vmoe_fuzz_module_seeds DIR
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#include <cstdio>
#include <string>

using namespace vmoe;
using namespace vmoe::test;

namespace {

bool write(const std::string &dir, const char *name, const ModuleWriter &w) {
  std::string error;
  std::string path = dir + "/" + name;
  if (!w.writeFile(path, &error)) {
    fprintf(stderr, "error: %s\n", error.c_str());
    return false;
  }
  return true;
}

/// A layer that records routing statistics in the arena, filled by the add
/// kernel with float bits: the statistics readers meet arbitrary counts.
void buildStatsModule(ModuleWriter &w) {
  constexpr uint32_t kExperts = 4, kTokensPerImage = 8, kGroupSize = 8;
  constexpr int64_t kMaxBatch = 2;
  constexpr uint32_t kGroups = kMaxBatch, kTokens = kGroups * kGroupSize;
  const uint64_t countsBytes = kGroups * kExperts * 4, keptOffset = 64;
  const uint64_t keptBytes = kTokens * 4, bytes = keptOffset + keptBytes;
  uint32_t exe = addTestExecutable(w);
  w.setBatch(kMaxBatch);
  w.addInput({"a", fb::DType::F32, {kMaxBatch, 48}, 0});
  w.addInput({"b", fb::DType::F32, {kMaxBatch, 48}, 0});
  w.addOutput({"out", fb::DType::F32, {kMaxBatch, 48}, 0});
  w.setArena(bytes);
  MoeLayerDesc layer;
  layer.name = "moe";
  layer.numExperts = kExperts;
  layer.k = 2;
  layer.groupSize = kGroupSize;
  layer.numGroups = kGroups;
  layer.numTokens = kTokens;
  layer.tokensPerImage = kTokensPerImage;
  layer.defaultCapacityFactor = 1.0;
  layer.maxCapacityFactor = 2.0;
  layer.maxCapacity = 8;
  layer.hasStats = true;
  layer.expertCountsOffset = 0;
  layer.tokenKeptOffset = keptOffset;
  w.addMoeLayer(layer);
  KernelDesc add;
  add.name = "add";
  add.executable = exe;
  add.entry = "vmoe_test_add_f32";
  add.workgroupCount = {2, 1, 1};
  add.bindingCount = 3;
  add.constantCount = 1;
  add.writtenBindings = {false, false, true};
  uint32_t kernel = w.addKernel(add);
  w.addDispatch(
      {kernel,
       {BindingDesc::input(0, 0, bytes), BindingDesc::input(1, 0, bytes),
        BindingDesc::arena(0, bytes)},
       {PushConstantDesc::literal(int64_t(bytes / 8))}});
  (void)countsBytes;
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  ModuleWriter add, addArena, echo, echoBpr, stats;
  buildAddModule(add);
  buildAddModule(addArena, /*arenaConstant=*/true);
  buildEchoModule(echo, 16, 2, 8, 1.0, 2.0, 8);
  buildEchoModule(echoBpr, 12, 1, 3, 1.05, 1.5, 8, /*defaultBpr=*/true);
  buildStatsModule(stats);
  bool ok = write(dir, "add.vmoe", add) &&
            write(dir, "add_arena_constant.vmoe", addArena) &&
            write(dir, "echo.vmoe", echo) &&
            write(dir, "echo_bpr.vmoe", echoBpr) &&
            write(dir, "stats.vmoe", stats);
  return ok ? 0 : 1;
}
