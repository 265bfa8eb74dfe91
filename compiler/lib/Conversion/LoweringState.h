//===- LoweringState.h - shared state of vmoe-lower-to-kernels -*- C++ -*-===//
//
// Internal to the lowering (compiler/lib/Conversion). The `Lowering` class
// walks the tensor-level model function in program order and emits, for
// each op or fused group of ops, a kernel function over buffers plus a
// `vmoe.launch` in the host function. Its parts live by job:
//   LoweringState.cpp      kernels, launches, buffers (the infrastructure)
//   WeightPacking.cpp      weight operands, globals, packed GEMM weights
//   Int8Kernels.cpp        int8 GEMM weights and the quantize kernels
//   DenseKernels.cpp       layer norm, MLP, attention, patch embedding, head
//   MapHeadKernels.cpp     vmoe's MapHead (classifier 'map')
//   MoeKernels.cpp         the MoE layer's gates, expert and combine kernels
//   MoeRouting.cpp         the MoE layer's slot assignment (MoeLayer.h)
//   MoeShard.cpp           the MoE layer's experts split over ranks
//   LowerToKernelsPass.cpp the pass, op dispatch, host schedule, residuals
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_LIB_CONVERSION_LOWERINGSTATE_H
#define VMOE_LIB_CONVERSION_LOWERINGSTATE_H

#include "vmoe/Conversion/KernelBuilder.h"
#include "vmoe/Dialect/IR/VmoeContract.h"
#include "vmoe/Dialect/IR/VmoeOps.h"
#include "vmoe/writer/WeightPacking.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringMap.h"

#include <memory>

namespace mlir::vmoe::lowering {

inline int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline int64_t numElements(Value v) {
  return cast<ShapedType>(v.getType()).getNumElements();
}

inline ArrayRef<int64_t> shapeOf(Value v) {
  return cast<ShapedType>(v.getType()).getShape();
}

/// A kernel function being built: its arguments and a builder at its end.
struct Kernel {
  func::FuncOp func;
  SmallVector<Value> bindings, constants;
  /// The batch of the call (every kernel gets it as its last constant).
  Value batch;
  Value wx, wy, wz, scratch;
  std::unique_ptr<ImplicitLocOpBuilder> builder;
  ImplicitLocOpBuilder &b() { return *builder; }
};

/// Grid x that follows the batch: {units of work per image, units per
/// workgroup} (see vmoe.launch); zero: a fixed grid.
struct BatchGrid {
  int64_t unitsPerImage = 0, unitsPerWorkgroup = 0;
};

struct MoeLayer;
struct ExpertGemm;

/// The packed operands of one GEMM: B and its bias, and for int8 GEMMs the
/// per-column scales and (vpdpbusd) column sums; those are null in f32.
struct GemmWeights {
  Value b, bias, scales, colSums;
};

/// A weight operand of a model op: a named parameter (vmoe.parameter),
/// whose bytes the serializer streams from the checkpoint, or the values of
/// an IR constant, packed at once.
struct WeightRef {
  StringAttr parameter;
  SmallVector<float> data;
  SmallVector<int64_t> shape;
  /// The op that uses it (for messages).
  Operation *user = nullptr;
  int64_t numElements() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
};

/// One run of vmoe-lower-to-kernels over the model function `model`: the
/// host function being built, the tensor -> buffer map, the kernels' names
/// and what the host's attributes record. Its members are defined in the
/// files listed at the top of this header.
class Lowering {
public:
  Lowering(ModuleOp module, func::FuncOp model, GemmTiling tiling,
           bool expertWeightsBf16, bool expertBf16Math, bool nativeBf16Dot,
           int64_t expertShards = 1, Int8Dot int8Dot = Int8Dot::None,
           bool expertInt8 = false, bool denseInt8 = false)
      : module(module), model(model), tiling(tiling),
        expertWeightsBf16(expertWeightsBf16 || expertBf16Math),
        expertBf16Math(expertBf16Math), nativeBf16Dot(nativeBf16Dot),
        expertShards(expertShards), int8Dot(int8Dot), expertInt8(expertInt8),
        denseInt8(denseInt8), ctx(module.getContext()) {}

  LogicalResult run();

private:
  // The pass's driver (LowerToKernelsPass.cpp).
  /// The host function over memrefs: the inputs (`vmoe.input`), outputs
  /// (`vmoe.output`) and the batch knob (`vmoe.knob` "batch").
  LogicalResult createHost();
  /// The schedule's attributes: `vmoe.moe_layers`, `vmoe.batch_multiple`,
  /// `vmoe.entry`.
  void setHostAttributes();
  LogicalResult lowerOp(Operation *op);
  LogicalResult lowerReturn(func::ReturnOp op);

  // Kernels, launches and buffers (LoweringState.cpp).
  Kernel newKernel(StringRef base, ValueRange bindings, unsigned numConstants,
                   int64_t scratchBytes = 0);
  /// Grid x follows the batch when `batchGrid` is set (see BatchGrid).
  void launch(Kernel &k, ArrayRef<int64_t> grid, ValueRange bindings,
              ValueRange constants = {}, BatchGrid batchGrid = {});
  /// A grid x of `extent / perWorkgroup` workgroups over `extent` units that
  /// scale with the batch (extent is the value at the compiled batch).
  BatchGrid perBatch(int64_t extent, int64_t perWorkgroup);
  /// Inside a kernel: the part of `extent` (a count at the compiled batch,
  /// proportional to it) that exists for the call's batch.
  Value validExtent(Kernel &k, int64_t extent);
  Value alloc(ArrayRef<int64_t> shape, Type element);
  Value allocLike(Value tensor);
  FailureOr<Value> lookup(Value tensor, Operation *user);
  Value flatten2d(Value memref);
  Value hostIndex(int64_t v);

  // Weights (WeightPacking.cpp).
  FailureOr<Value> constantBuffer(Value tensor, Operation *user);
  /// A constant global of `type` holding `bytes` (its elements' raw bits).
  Value createGlobalBytes(StringRef base, MemRefType type,
                          ArrayRef<char> bytes);
  /// The weight operand `tensor` of `user`: a parameter or a constant.
  FailureOr<WeightRef> weightOperand(Value tensor, Operation *user);
  /// A global of `type` holding `w` as it is (f32).
  Value copyGlobal(StringRef base, const WeightRef &w, MemRefType type);
  /// Packs (batch, K, N_i) matrices, side by side, into (batch, N/nr, K, nr)
  /// panels and their (batch, N_i) biases into (batch, panels * nr), zero
  /// padded (vmoe/writer/WeightPacking.h). `bf16`: the panels are rounded
  /// to bfloat16 (RNE) and stored as bf16; `kPairs` (with bf16, K even): in
  /// k pairs, (batch, N/nr, K/2, 2 nr), the layout of
  /// GemmOperands::bf16Pairs. Parameters become globals that name them
  /// (#vmoe.packed_weight); constants are packed now. `slices` > 1: the
  /// weights hold that many batches of `batch` (experts split over ranks),
  /// the global one of them.
  std::pair<Value, Value> packWeights(StringRef base,
                                      ArrayRef<const WeightRef *> weights,
                                      ArrayRef<const WeightRef *> biases,
                                      int64_t batch, int64_t k, int64_t n,
                                      bool bf16 = false, bool kPairs = false,
                                      int64_t slices = 1);
  /// The same for one matrix and its bias.
  std::pair<Value, Value> packWeights(StringRef base, const WeightRef &weights,
                                      const WeightRef &bias, int64_t batch,
                                      int64_t k, int64_t n, bool bf16 = false,
                                      bool kPairs = false, int64_t slices = 1) {
    return packWeights(base, ArrayRef<const WeightRef *>{&weights},
                       ArrayRef<const WeightRef *>{&bias}, batch, k, n, bf16,
                       kPairs, slices);
  }
  /// The zero-padded (batch, panels * nr) bias of packWeights (`slices` as
  /// there).
  Value packBias(StringRef base, ArrayRef<const WeightRef *> biases,
                 int64_t batch, int64_t n, int64_t slices = 1);
  /// A GEMM's weights: packWeights' f32 panels, or with `int8` the int8
  /// panels in the k groups of int8Dot, their scales and column sums
  /// (Int8Kernels.cpp). Fails (reported at `user`) where int8 cannot
  /// multiply K.
  FailureOr<GemmWeights> packGemmWeights(StringRef base,
                                         ArrayRef<const WeightRef *> weights,
                                         ArrayRef<const WeightRef *> biases,
                                         int64_t batch, int64_t k, int64_t n,
                                         bool int8, Operation *user);
  /// A kernel that quantizes the rows of `src` (rows, K) into `q` (rows, K,
  /// int8ActType) and their scales into `scales` (rows), as SPEC'd
  /// (emitQuantizeRow); rows scale with the batch.
  void emitQuantizeRows(StringRef name, Value src, Value q, Value scales);
  /// The same over the filled slots of each (expert, group): `src` and `q`
  /// are (E, G, capacity, M), `scales` (E, G, capacity).
  void emitQuantizeExpertRows(const MoeLayer &layer, Value src, Value q,
                              Value scales);
  /// The vector lanes a quantize kernel reads a row of `k` values in.
  int64_t quantizeLanes(int64_t k) const;
  /// A global of `type` made by `spec` from `sources` (all parameters or
  /// all constants; a mix is reported at `loc`).
  Value packedGlobal(StringRef base, MemRefType type,
                     const ::vmoe::writer::PackSpec &spec,
                     ArrayRef<const WeightRef *> sources, Location loc);
  /// Set when a packing failed (reported); run() then fails.
  bool packingFailed = false;

  // Dense kernels (DenseKernels.cpp).
  void emitDenseGemm(StringRef name, Value a, Value packedB, Value bias,
                     int64_t n, Activation act, Value c,
                     Value residual = Value()) {
    emitDenseGemm(name, a, GemmWeights{packedB, bias, {}, {}}, n, act, c,
                  residual);
  }
  /// With int8 weights (w.scales set), `a`'s rows are quantized first.
  void emitDenseGemm(StringRef name, Value a, const GemmWeights &w, int64_t n,
                     Activation act, Value c, Value residual = Value());
  enum class Elementwise { Add, Gelu, Copy };
  void emitElementwise(StringRef name, Value x, Value y, Value out,
                       Elementwise kind);
  LogicalResult lowerLayerNorm(LayerNormOp op);
  /// LayerNorm of the rows of `x` (..., D) into `out` (same shape).
  void emitLayerNorm(Value x, Value scale, Value bias, Value out, double eps);
  LogicalResult lowerMlp(MlpOp op);
  LogicalResult lowerAttention(AttentionOp op);
  /// softmax(q k^T / sqrt(Dh)) v of every (image, head), from the qkv rows
  /// (B * T, 3 D) into the context rows (B * T, D).
  void emitAttentionKernel(Value qkvBuf, Value ctxBuf, int64_t batch, int64_t t,
                           int64_t d, int64_t heads, int64_t dh);
  LogicalResult lowerPatchEmbed(PatchEmbedOp op);
  LogicalResult lowerClassToken(ClassTokenOp op);
  LogicalResult lowerPositionEmbed(PositionEmbedOp op);
  LogicalResult lowerSincosPositionEmbed(SincosPositionEmbedOp op);
  LogicalResult lowerHead(ClassifierHeadOp op);

  // vmoe's MapHead (MapHeadKernels.cpp).
  LogicalResult lowerMapHead(MapHeadOp op);
  /// The probe's attention over each image's tokens: one (image, head) per
  /// workgroup, from the key/value rows (B * T, 2 D) into (B, D).
  void emitMapAttentionKernel(MapHeadOp op, Value kv, Value ctxOut,
                              int64_t batch, int64_t t, int64_t d,
                              int64_t heads, int64_t dh);

  // The MoE layer (MoeKernels.cpp), built in this order.
  LogicalResult lowerMoe(RouterOp router);
  FailureOr<MoeLayer> matchMoeLayer(RouterOp router);
  /// The layer's run-time knobs and its routing metadata.
  LogicalResult setUpMoeKnobs(MoeLayer &layer);
  /// A host argument that a call sets: `kind` of MoE layer `layer`.
  Value addKnob(KnobKind kind, unsigned layer);
  /// Appends the layer's entry of the host's `vmoe.moe_layers`.
  LogicalResult recordMoeLayer(const MoeLayer &layer);
  void allocMoeBuffers(MoeLayer &layer);
  void emitMoeGates(MoeLayer &layer);
  void emitMoeAssign(MoeLayer &layer);
  /// Expert choice: each (group, expert) takes its top-C tokens.
  void emitExpertChoiceAssign(MoeLayer &layer);
  /// Inside an assign kernel: the real tokens of the group whose first token
  /// is `tokBase` (S, or fewer where the call's batch ends).
  Value realTokens(Kernel &kern, const MoeLayer &layer, Value tokBase);
  LogicalResult emitMoeExperts(MoeLayer &layer);
  /// Packs the expert weights (the rank's experts when sharded) and fills
  /// expert-up's and expert-down's GEMMs but their A and C buffers.
  LogicalResult planExpertGemms(MoeLayer &layer, ExpertGemm &up,
                                ExpertGemm &down);
  /// Expert-up and expert-down: one GEMM per (row tile, panel block, expert
  /// x group) over the filled slots.
  void emitExpertGemm(const MoeLayer &layer, const ExpertGemm &gemm);
  /// Inside an expert kernel: the slots of (expert, group) that routing
  /// filled, at most the call's capacity.
  Value filledRows(Kernel &kern, const MoeLayer &layer, Value counts,
                   Value capacity, Value ex, Value gi);
  void emitMoeCombine(MoeLayer &layer);

  // The MoE layer's experts split over `expertShards` ranks (MoeShard.cpp):
  // pack -> all_to_all -> expert up/down over the local experts -> all_to_all
  // back; combine then reads the returned rows (shardedRowIndex).
  LogicalResult emitShardedExperts(MoeLayer &layer);
  /// Checks that the layer can be split (E divisible, weights as
  /// parameters) and allocates the exchange buffers.
  LogicalResult setUpShards(MoeLayer &layer);
  void emitMoePack(MoeLayer &layer);
  /// Expert-up and expert-down over the local experts of the rows that
  /// every rank sent (see emitShardedExperts).
  void emitShardedExpertGemm(const MoeLayer &layer, const ExpertGemm &gemm);
  /// Inside a kernel: the call's routing groups and capacity.
  Value callGroups(Kernel &kern, const MoeLayer &layer);
  Value callCapacity(Kernel &kern, const MoeLayer &layer, Value capacity);
  /// Inside combine: the index into the returned rows of expert `ex`'s slot
  /// `slot` of group `gi`, column `col`.
  Value shardedRowIndex(ImplicitLocOpBuilder &b, const MoeLayer &layer,
                        Value groups, Value capacity, Value ex, Value gi,
                        Value slot, Value col);
  /// Marks the packed global behind `get` as one rank's slice of the
  /// layer's experts (vmoe.expert_slice).
  void markExpertSlice(Value get, int64_t experts);

  // Residual fusion (LowerToKernelsPass.cpp).
  /// Residual adds fused into the kernel that produces one of their operands
  /// (the MLP's and attention's last GEMM, the MoE combine): the producer
  /// writes `residual + result` into the add's buffer.
  void findFusableResiduals();
  /// The buffer a producer of `result` writes: the fused residual add's
  /// buffer (with the residual's buffer second), else a new buffer (and a
  /// null residual).
  std::pair<Value, Value> outputFor(Value result, Operation *user);

  struct FusedResidual {
    Value residual;
    arith::AddFOp add;
  };
  llvm::DenseMap<Value, FusedResidual> fusedResiduals;

  ModuleOp module;
  func::FuncOp model, host;
  GemmTiling tiling;
  bool expertWeightsBf16;
  /// bf16 x bf16 expert GEMMs (expert-bf16-math), with vdpbf16ps
  /// (native-bf16-dot).
  bool expertBf16Math, nativeBf16Dot;
  /// Ranks the experts are split over (1: not split).
  int64_t expertShards;
  /// int8 GEMMs: the target's dot product, and which GEMMs use it.
  Int8Dot int8Dot;
  bool expertInt8, denseInt8;
  MLIRContext *ctx;
  std::unique_ptr<ImplicitLocOpBuilder> hb; // host builder
  llvm::DenseMap<Value, Value> buffers;     // tensor -> memref
  llvm::DenseSet<Operation *> handled;
  llvm::StringMap<unsigned> nameCounts;
  /// The entries of `vmoe.moe_layers`, one per MoE layer (recordMoeLayer).
  SmallVector<Attribute> moeLayers;
  unsigned numInputs = 0;
  /// The compiled batch (dim 0 of the model's inputs and results) and
  /// whether every kernel can run a smaller one; batchMultiple: the step
  /// that keeps whole MoE groups.
  int64_t maxBatch = 1, batchMultiple = 1;
  bool dynamicBatch = false;
  Value hostBatch;
};

} // namespace mlir::vmoe::lowering

#endif // VMOE_LIB_CONVERSION_LOWERINGSTATE_H
