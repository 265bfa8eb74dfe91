//===- MoeLayer.h - one MoE layer of vmoe-lower-to-kernels ------*- C++ -*-===//
//
// Internal to the lowering: what the MoE kernel builders (MoeKernels.cpp,
// MoeRouting.cpp) share about the layer they build.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_LIB_CONVERSION_MOELAYER_H
#define VMOE_LIB_CONVERSION_MOELAYER_H

#include "LoweringState.h"

namespace mlir::vmoe::lowering {

/// The values of one MoE layer that its kernel builders pass on: the ops
/// of the decomposed layer, its shapes, its knobs and its buffers.
struct MoeLayer {
  RouterOp router;
  /// Top-k routing: top_k + assign_slots; expert choice: expert_choice.
  TopKOp topK;
  AssignSlotsOp assign;
  ExpertChoiceOp choice;
  DispatchOp dispatch;
  ExpertMlpOp experts;
  CombineOp combine;
  /// Groups, tokens per group, hidden size, experts, top-k (1 for expert
  /// choice), the compiled capacity (slots per expert and group) and the MLP
  /// size.
  int64_t g = 0, s = 0, d = 0, e = 0, k = 0, cap = 0, m = 0;
  bool expertChoice = false;
  /// Assignments per token in the per-token tables: k, or E for expert
  /// choice (assignment j is expert j).
  int64_t assignments() const { return expertChoice ? e : k; }
  /// Tokens per image (for the per-image routing statistics).
  int64_t tokensPerImage = 0;
  /// Expert inputs and outputs rounded to bf16 (the layer's bf16 dispatch).
  bool bf16 = false;
  unsigned index = 0;
  double defaultCf = 0.0, maxCf = 0.0;
  bool defaultBpr = false;
  /// The capacity rule the runtime applies per call (vmoe.capacity's
  /// multiple_of and round).
  int64_t capacityMultipleOf = 4;
  bool capacityRound = false;
  /// Host values: the capacity (a knob or a constant), the BPR knob and the
  /// call's k (a knob).
  Value capacity, bpr, kCall;
  /// Weights.
  WeightRef wr, w1, b1, w2, b2;
  /// Expert activations as bf16 bits (i16) for vdpbf16ps, else f32.
  bool actBits = false;
  /// The gates kernel writes a bf16-rounded copy of x for expert-up.
  bool roundInputs = false;
  Type actType;
  /// Host buffers, in the order they are allocated. Expert choice: topVal
  /// holds every gate (G, S, E) and there is no topIdx.
  Value x, expertInput, wrBuf, topVal, topIdx, counts, kept, slots, slotToken,
      slotGate, order, orderTmp, hidden, expertOut;
  /// Expert-sharded: the experts each rank holds, and the exchange buffers
  /// (flat f32 words, one chunk per rank): the slots each rank sends out
  /// and receives (dispatchSend/Recv), the expert rows it sends back and
  /// receives (returnSend/Recv). Null when the layer is not split.
  int64_t localExperts = 0;
  Value dispatchSend, dispatchRecv, returnSend, returnRecv;
  /// Words of a dispatch chunk at the compiled groups and capacity, and of
  /// a return chunk.
  int64_t dispatchChunk = 0, returnChunk = 0;
  /// Tokens per workgroup of the gates and combine kernels.
  int64_t tokenTile = 32;
};

/// What differs between expert-up and expert-down; the rest of the kernel
/// is the same (see emitExpertGemm and emitShardedExpertGemm).
struct ExpertGemm {
  StringRef name;
  /// A (rows to multiply), the per-slot operand, the packed weights, their
  /// bias and C (expert x group x slot rows).
  Value a, perSlot, packedB, bias, c;
  /// int8: A's row scales, B's column scales and sums (see GemmWeights).
  Value aScales, wScales, colSums;
  int64_t n = 0, k = 0;
  int64_t rowTile = 0, panelTile = 0;
  /// Expert-up: `perSlot` is slot -> token and A's rows are the tokens,
  /// read in place (a gather). Expert-down: A's rows are the slots and
  /// `perSlot` holds the gate that scales each row.
  bool gatherTokens = false;
  Activation activation = Activation::None;
  bool bf16RoundOutput = false;
};

} // namespace mlir::vmoe::lowering

#endif // VMOE_LIB_CONVERSION_MOELAYER_H
