//===- ShardSupport.h - Toy expert-sharded modules for tests ----*- C++ -*-===//
//
// A rank module of a toy expert-sharded model, built with the module writer
// and the test kernels: one MoE layer whose pack kernel fills the send
// region (vmoe_test_pack_chunks), one all-to-all, and a copy of the receive
// region into the output. What a rank receives names the sender, the
// receiver and the sender's input, so a test checks every byte the
// exchange moved, at any batch and capacity.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_TESTS_SUPPORT_MODULES_SHARDSUPPORT_H
#define VMOE_TESTS_SUPPORT_MODULES_SHARDSUPPORT_H

#include "TestSupport.h"

#include <cmath>

namespace vmoe {
namespace test {

struct ShardParams {
  uint32_t rank = 0;
  uint32_t size = 2;
  /// Experts per rank; E = localExperts * size.
  uint32_t localExperts = 2;
  int64_t maxBatch = 4;
  uint32_t tokensPerImage = 4;
  uint32_t groupSize = 4;
  double maxCapacityFactor = 4;
  writer::Digest128 modelId = {0x1234, 0x5678};
  /// Adds output "y": f32[B, T], the first B * T floats received (a
  /// batch output, as vmoe-run gathers them).
  bool batchOutput = false;
};

inline uint32_t shardExperts(const ShardParams &p) {
  return p.localExperts * p.size;
}
inline uint64_t shardMaxGroups(const ShardParams &p) {
  return static_cast<uint64_t>(p.maxBatch) * p.tokensPerImage / p.groupSize;
}
/// C = ceil(S * cf / E) (k 1, capacity multiple of 1), at most S.
inline uint32_t shardCapacity(const ShardParams &p, double cf) {
  double c = std::ceil(p.groupSize * cf / shardExperts(p));
  return static_cast<uint32_t>(c < p.groupSize ? c : p.groupSize);
}
/// Floats per chunk: one per group and one per slot.
inline uint64_t shardChunk(const ShardParams &p, int64_t batch,
                           uint32_t capacity) {
  uint64_t tokens = static_cast<uint64_t>(batch) * p.tokensPerImage;
  uint64_t groups = (tokens + p.groupSize - 1) / p.groupSize;
  return groups + groups * capacity;
}
inline uint64_t shardMaxChunk(const ShardParams &p) {
  return shardChunk(p, p.maxBatch, shardCapacity(p, p.maxCapacityFactor));
}

/// Dispatch index of the all-to-all in the toy module.
constexpr uint32_t kShardCollectiveDispatch = 1;

/// The default collective step of buildShardModule, for tests to edit.
inline DispatchDesc shardCollective(const ShardParams &p) {
  uint64_t regionBytes = (p.size * shardMaxChunk(p) * 4 + 63) / 64 * 64;
  DispatchDesc exchange;
  exchange.collective = true;
  exchange.sendOffset = 0;
  exchange.recvOffset = regionBytes;
  exchange.groupBytes = 4;
  exchange.slotBytes = 4;
  return exchange;
}

/// Input "x": f32[B, T]; output "recv": f32[size * max chunk] (no batch
/// dim). `collective`: the exchange step to use instead of
/// shardCollective(p) (forged modules).
inline void buildShardModule(ModuleWriter &w, const ShardParams &p,
                             const DispatchDesc *collective = nullptr) {
  uint32_t exe = addTestExecutable(w);
  w.setBatch(p.maxBatch);
  w.addInput({"x", fb::DType::F32, {p.maxBatch, p.tokensPerImage}, 0});
  uint64_t regionFloats = p.size * shardMaxChunk(p);
  uint64_t regionBytes = (regionFloats * 4 + 63) / 64 * 64;
  w.addOutput(
      {"recv", fb::DType::F32, {static_cast<int64_t>(regionFloats)}, -1});
  w.setArena(2 * regionBytes, 64);
  w.setRequirements(VMOE_REQUIRES_EXPERT_SHARDS | VMOE_REQUIRES_CAPACITY_RULE);
  w.setExpertShard({p.rank, p.size, p.modelId});
  MoeLayerDesc layer;
  layer.name = "moe0";
  layer.numExperts = shardExperts(p);
  layer.k = 1;
  layer.groupSize = p.groupSize;
  layer.numGroups = static_cast<uint32_t>(shardMaxGroups(p));
  layer.numTokens = static_cast<uint64_t>(p.maxBatch) * p.tokensPerImage;
  layer.tokensPerImage = p.tokensPerImage;
  layer.defaultCapacityFactor = 1;
  layer.maxCapacityFactor = p.maxCapacityFactor;
  layer.maxCapacity = shardCapacity(p, p.maxCapacityFactor);
  layer.capacityMultipleOf = 1;
  layer.firstExpert = p.rank * p.localExperts;
  layer.localExperts = p.localExperts;
  w.addMoeLayer(layer);

  KernelDesc pack;
  pack.name = "pack";
  pack.executable = exe;
  pack.entry = "vmoe_test_pack_chunks";
  pack.bindingCount = 2;
  pack.constantCount = 6;
  pack.writtenBindings = {false, true};
  uint32_t packKernel = w.addKernel(pack);
  KernelDesc copy;
  copy.name = "copy";
  copy.executable = exe;
  copy.entry = "vmoe_test_copy";
  copy.bindingCount = 2;
  copy.writtenBindings = {false, true};
  uint32_t copyKernel = w.addKernel(copy);

  uint64_t xBytes = static_cast<uint64_t>(p.maxBatch) * p.tokensPerImage * 4;
  w.addDispatch(
      {packKernel,
       {BindingDesc::input(0, 0, xBytes), BindingDesc::arena(0, regionBytes)},
       {PushConstantDesc::literal(p.rank), PushConstantDesc::literal(p.size),
        PushConstantDesc::batchSize(), PushConstantDesc::capacity(0),
        PushConstantDesc::literal(p.tokensPerImage),
        PushConstantDesc::literal(p.groupSize)}});
  DispatchDesc exchange = collective ? *collective : shardCollective(p);
  w.addDispatch(exchange);
  w.addDispatch({copyKernel,
                 {BindingDesc::arena(regionBytes, regionFloats * 4),
                  BindingDesc::output(0, 0, regionFloats * 4)},
                 {}});
  if (p.batchOutput) {
    // The copy stops at the output's length, which follows the batch.
    w.addOutput({"y", fb::DType::F32, {p.maxBatch, p.tokensPerImage}, 0});
    w.addDispatch({copyKernel,
                   {BindingDesc::arena(regionBytes, regionFloats * 4),
                    BindingDesc::output(1, 0, xBytes)},
                   {}});
  }
}

/// Rank `rank`'s input at `batch`: x[t] = 0.5 * t + 0.25 * rank (exact).
inline std::vector<float> shardInput(uint32_t rank, int64_t batch,
                                     const ShardParams &p) {
  std::vector<float> x(static_cast<size_t>(batch) * p.tokensPerImage);
  for (size_t t = 0; t < x.size(); ++t)
    x[t] = 0.5f * static_cast<float>(t % 64) + 0.25f * rank;
  return x;
}

/// What rank `rank` receives: chunk j is rank j's pack for this rank.
inline std::vector<float> shardExpectedRecv(uint32_t rank, int64_t batch,
                                            uint32_t capacity,
                                            const ShardParams &p) {
  uint64_t chunk = shardChunk(p, batch, capacity);
  std::vector<float> out(p.size * chunk);
  for (uint32_t j = 0; j < p.size; ++j) {
    std::vector<float> x = shardInput(j, batch, p);
    for (uint64_t q = 0; q < chunk; ++q)
      out[j * chunk + q] =
          static_cast<float>(1000 * j + 100 * rank) + x[q % x.size()];
  }
  return out;
}

} // namespace test
} // namespace vmoe

#endif // VMOE_TESTS_SUPPORT_MODULES_SHARDSUPPORT_H
