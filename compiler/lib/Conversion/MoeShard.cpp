//===- MoeShard.cpp - the MoE layer's experts split over ranks ------------===//
//
// Expert parallelism (vmoe-lower-to-kernels expert-shards=N): each rank
// holds E/N experts of every MoE layer and runs the model on its own images.
// Its routing (gates, assign) sees all E experts, as in one process; then
//   pack      the rows and gates of the slots of rank j's experts, into
//             chunk j of the dispatch buffer        (groups x experts)
//   vmoe.all_to_all                                 (chunk j -> rank j)
//   up        GEMM1 + bias + GELU of the received rows (local experts x
//             ranks x groups x rows)
//   down      GEMM2 + bias (+ bf16) x gate, into chunk j of the return buffer
//   vmoe.all_to_all                                 (back to the senders)
//   combine   reads each expert's row from the chunk of the expert's rank.
// A chunk for a call of G routing groups and capacity C, in f32 words:
//   dispatch  counts [G][El] (the routing counts as f32 values), gates
//             [El][G][C], rows [El][G][C][D]
//   return    rows [El][G][C][D]
// so a chunk is group_bytes * G + slot_bytes * G * C bytes (the collective
// contract). The expert kernels stop at the filled slots, and every row goes
// through the same f32 operations as in one process: the logits match
// bitwise.
//
//===----------------------------------------------------------------------===//

#include "MoeLayer.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace mlir::vmoe::lowering {

LogicalResult Lowering::setUpShards(MoeLayer &l) {
  int64_t n = expertShards;
  if (l.e % n != 0)
    return l.experts.emitOpError()
           << "has " << l.e << " experts, which do not split over "
           << "expert-shards=" << n << " ranks; the number of ranks must "
           << "divide every MoE layer's number of experts";
  for (const WeightRef *w : {&l.w1, &l.b1, &l.w2, &l.b2})
    if (!w->parameter)
      return l.experts.emitOpError()
             << "has expert weights given as IR constants; an expert-sharded "
                "module streams each rank's experts from named parameters "
                "(vmoe.parameter: compile from a config with --weights or "
                "--random-weights)";
  l.localExperts = l.e / n;
  int64_t slots = l.localExperts * l.g * l.cap;
  l.dispatchChunk = l.localExperts * l.g + slots * (1 + l.d);
  l.returnChunk = slots * l.d;
  return success();
}

void Lowering::markExpertSlice(Value get, int64_t experts) {
  auto getOp = get.getDefiningOp<memref::GetGlobalOp>();
  auto global = SymbolTable::lookupNearestSymbolFrom<memref::GlobalOp>(
      host, getOp.getNameAttr());
  global->setAttr(kExpertSliceAttrName,
                  Builder(ctx).getI64IntegerAttr(experts));
}

Value Lowering::callGroups(Kernel &kern, const MoeLayer &l) {
  ImplicitLocOpBuilder &b = kern.b();
  return arith::DivUIOp::create(
      b,
      arith::AddIOp::create(b, validExtent(kern, l.g * l.s),
                            constIndex(b, l.s - 1)),
      constIndex(b, l.s));
}

Value Lowering::callCapacity(Kernel &kern, const MoeLayer &l, Value capacity) {
  return minIndex(kern.b(), capacity, constIndex(kern.b(), l.cap));
}

Value Lowering::shardedRowIndex(ImplicitLocOpBuilder &b, const MoeLayer &l,
                                Value groups, Value capacity, Value ex,
                                Value gi, Value slot, Value col) {
  Value cEl = constIndex(b, l.localExperts), cD = constIndex(b, l.d);
  Value rank = arith::DivUIOp::create(b, ex, cEl);
  Value local = arith::RemUIOp::create(b, ex, cEl);
  Value slots =
      arith::MulIOp::create(b, arith::MulIOp::create(b, cEl, groups), capacity);
  Value chunk = arith::MulIOp::create(b, slots, cD);
  Value slotIndex = arith::AddIOp::create(
      b,
      arith::MulIOp::create(
          b,
          arith::AddIOp::create(b, arith::MulIOp::create(b, local, groups), gi),
          capacity),
      slot);
  return arith::AddIOp::create(
      b, arith::MulIOp::create(b, rank, chunk),
      arith::AddIOp::create(b, arith::MulIOp::create(b, slotIndex, cD), col));
}

/// The offsets of a dispatch chunk for the call's groups and capacity.
struct DispatchChunk {
  /// Words of a chunk; where its gates and its rows start; its slots
  /// (El * G * C).
  Value words, gates, rows, slots;
  DispatchChunk(ImplicitLocOpBuilder &b, const MoeLayer &l, Value groups,
                Value capacity) {
    gates = arith::MulIOp::create(b, constIndex(b, l.localExperts), groups);
    slots = arith::MulIOp::create(b, gates, capacity);
    rows = arith::AddIOp::create(b, gates, slots);
    words = arith::AddIOp::create(
        b, rows, arith::MulIOp::create(b, slots, constIndex(b, l.d)));
  }
};

void Lowering::emitMoePack(MoeLayer &l) {
  int64_t g = l.g, d = l.d, e = l.e, el = l.localExperts;
  SmallVector<Value> binds = {l.counts, l.slotToken, l.slotGate, l.expertInput,
                              l.dispatchSend};
  Kernel kern = newKernel("moe_pack", binds, 1);
  ImplicitLocOpBuilder &b = kern.b();
  Value kCounts = kern.bindings[0], kToken = kern.bindings[1],
        kGate = kern.bindings[2], kx = kern.bindings[3],
        kSend = kern.bindings[4];
  Value groups = callGroups(kern, l);
  Value capacity = callCapacity(kern, l, kern.constants[0]);
  Value gi = kern.wx, ex = kern.wy;
  Value live = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, gi, groups);
  ifThen(b, live, [&](ImplicitLocOpBuilder &b) {
    Value cEl = constIndex(b, el), cD = constIndex(b, d);
    Value c0 = constIndex(b, 0), c1 = constIndex(b, 1);
    Value rank = arith::DivUIOp::create(b, ex, cEl);
    Value local = arith::RemUIOp::create(b, ex, cEl);
    DispatchChunk chunk(b, l, groups, capacity);
    Value base = arith::MulIOp::create(b, rank, chunk.words);
    // The routing count, past capacity included, as an exact f32 value.
    Value raw = memref::LoadOp::create(b, kCounts, ValueRange{gi, ex});
    Value countAt = arith::AddIOp::create(
        b, base,
        arith::AddIOp::create(b, arith::MulIOp::create(b, gi, cEl), local));
    memref::StoreOp::create(b, arith::SIToFPOp::create(b, b.getF32Type(), raw),
                            kSend, ValueRange{countAt});
    Value filled = minIndex(
        b, arith::IndexCastOp::create(b, b.getIndexType(), raw), capacity);
    Value slot0 = arith::MulIOp::create(
        b,
        arith::AddIOp::create(b, arith::MulIOp::create(b, local, groups), gi),
        capacity);
    Value gateBase = arith::AddIOp::create(
        b, base, arith::AddIOp::create(b, chunk.gates, slot0));
    Value rowBase = arith::AddIOp::create(
        b, base,
        arith::AddIOp::create(b, chunk.rows,
                              arith::MulIOp::create(b, slot0, cD)));
    forLoop(b, c0, filled, c1, [&](ImplicitLocOpBuilder &b, Value r) {
      Value gate = memref::LoadOp::create(b, kGate, ValueRange{ex, gi, r});
      memref::StoreOp::create(
          b, gate, kSend, ValueRange{arith::AddIOp::create(b, gateBase, r)});
      // Written by assign: clamped into the group (see clampIndex).
      Value tok = clampIndex(
          b, memref::LoadOp::create(b, kToken, ValueRange{ex, gi, r}), l.s);
      Value row =
          arith::AddIOp::create(b, rowBase, arith::MulIOp::create(b, r, cD));
      forLoop(b, c0, cD, c1, [&](ImplicitLocOpBuilder &b, Value dd) {
        Value v = memref::LoadOp::create(b, kx, ValueRange{gi, tok, dd});
        memref::StoreOp::create(b, v, kSend,
                                ValueRange{arith::AddIOp::create(b, row, dd)});
      });
    });
  });
  launch(kern, {g, e}, binds, {l.capacity});
}

void Lowering::emitShardedExpertGemm(const MoeLayer &l,
                                     const ExpertGemm &gemm) {
  // Expert-up reads its rows from the received chunks (gatherTokens marks
  // it), expert-down from the hidden buffer; both read the counts there.
  int64_t n = expertShards, el = l.localExperts, g = l.g, d = l.d;
  int64_t rowTile = gemm.rowTile, panelTile = gemm.panelTile;
  int64_t panels = ceilDiv(gemm.n, tiling.nr);
  bool up = gemm.gatherTokens;
  SmallVector<Value> binds = {l.dispatchRecv};
  if (!up)
    binds.push_back(gemm.a);
  binds.append({gemm.packedB, gemm.bias, gemm.c});
  Kernel kern = newKernel(gemm.name, binds, 1);
  ImplicitLocOpBuilder &b = kern.b();
  Value recv = kern.bindings[0];
  unsigned next = 1;
  Value ka = up ? recv : kern.bindings[next++];
  Value kb = kern.bindings[next++], kBias = kern.bindings[next++],
        kc = kern.bindings[next];
  Value groups = callGroups(kern, l);
  Value capacity = callCapacity(kern, l, kern.constants[0]);
  // z: (local expert, sending rank, its group).
  Value local = arith::DivUIOp::create(b, kern.wz, constIndex(b, n * g));
  Value q = arith::RemUIOp::create(b, kern.wz, constIndex(b, n * g));
  Value rank = arith::DivUIOp::create(b, q, constIndex(b, g));
  Value gi = arith::RemUIOp::create(b, q, constIndex(b, g));
  Value cEl = constIndex(b, el), cD = constIndex(b, d);
  DispatchChunk chunk(b, l, groups, capacity);
  Value base = arith::MulIOp::create(b, rank, chunk.words);
  // Groups past the call's batch hold stale chunks: they have no rows.
  Value live = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, gi, groups);
  Value countAt = arith::AddIOp::create(
      b, base,
      arith::AddIOp::create(b, arith::MulIOp::create(b, gi, cEl), local));
  Value count = arith::FPToSIOp::create(
      b, b.getI32Type(), memref::LoadOp::create(b, recv, ValueRange{countAt}));
  Value rows = minIndex(
      b, arith::IndexCastOp::create(b, b.getIndexType(), count), capacity);
  rows = arith::SelectOp::create(b, live, rows, constIndex(b, 0));
  Value slot0 = arith::MulIOp::create(
      b, arith::AddIOp::create(b, arith::MulIOp::create(b, local, groups), gi),
      capacity);
  Value rowBegin = arith::MulIOp::create(b, kern.wx, constIndex(b, rowTile));
  Value rowEnd = minIndex(
      b, arith::AddIOp::create(b, rowBegin, constIndex(b, rowTile)), rows);
  Value any =
      arith::CmpIOp::create(b, arith::CmpIPredicate::slt, rowBegin, rowEnd);
  ifThen(b, any, [&](ImplicitLocOpBuilder &b) {
    Value panelBegin =
        arith::MulIOp::create(b, kern.wy, constIndex(b, panelTile));
    Value panelEnd = minIndex(
        b, arith::AddIOp::create(b, panelBegin, constIndex(b, panelTile)),
        constIndex(b, panels));
    auto slotOf = [&](ImplicitLocOpBuilder &b, Value row) -> Value {
      return arith::AddIOp::create(b, slot0, row);
    };
    auto hiddenIndex = [&](ImplicitLocOpBuilder &, Value row, Value col) {
      return SmallVector<Value>{local, q, row, col};
    };
    auto aIndex = [&](ImplicitLocOpBuilder &b, Value row, Value kk) {
      if (!up)
        return hiddenIndex(b, row, kk);
      Value at = arith::AddIOp::create(
          b, arith::AddIOp::create(b, base, chunk.rows),
          arith::AddIOp::create(b, arith::MulIOp::create(b, slotOf(b, row), cD),
                                kk));
      return SmallVector<Value>{at};
    };
    auto cIndex = [&](ImplicitLocOpBuilder &b, Value row, Value col) {
      if (up)
        return hiddenIndex(b, row, col);
      // Chunk `rank` of the return buffer goes back to the sending rank.
      Value returnChunk = arith::MulIOp::create(b, chunk.slots, cD);
      Value at = arith::AddIOp::create(
          b, arith::MulIOp::create(b, rank, returnChunk),
          arith::AddIOp::create(b, arith::MulIOp::create(b, slotOf(b, row), cD),
                                col));
      return SmallVector<Value>{at};
    };
    auto gateOf = [&](ImplicitLocOpBuilder &b, Value row) -> Value {
      Value at = arith::AddIOp::create(
          b, arith::AddIOp::create(b, base, chunk.gates), slotOf(b, row));
      return memref::LoadOp::create(b, recv, ValueRange{at});
    };
    GemmOperands ops;
    ops.n = gemm.n;
    ops.k = gemm.k;
    ops.bf16Pairs = expertBf16Math;
    ops.a = ka;
    ops.aIndex = aIndex;
    ops.b = kb;
    ops.bias = kBias;
    // One expert per rank: its weights have no expert dimension.
    if (el > 1) {
      ops.bPrefix = {local};
      ops.biasPrefix = {local};
    }
    ops.activation = gemm.activation;
    ops.bf16RoundOutput = gemm.bf16RoundOutput;
    if (!up)
      ops.rowScale = gateOf;
    ops.c = kc;
    ops.cIndex = cIndex;
    emitGemmBlock(b, tiling, ops, rowBegin, rowEnd, panelBegin, panelEnd);
  });
  launch(kern,
         {ceilDiv(l.cap, rowTile), ceilDiv(panels, panelTile), el * n * g},
         binds, {l.capacity});
}

LogicalResult Lowering::emitShardedExperts(MoeLayer &l) {
  ExpertGemm up, down;
  if (failed(planExpertGemms(l, up, down)))
    return failure();
  int64_t n = expertShards, el = l.localExperts, g = l.g, d = l.d;
  Type f32 = Float32Type::get(ctx);
  auto exchange = [&](Value send, Value recv, int64_t groupWords,
                      int64_t slotWords) {
    AllToAllOp::create(*hb, send, recv, hb->getI64IntegerAttr(l.index),
                       hb->getI64IntegerAttr(n),
                       hb->getI64IntegerAttr(groupWords * 4),
                       hb->getI64IntegerAttr(slotWords * 4));
  };
  l.dispatchSend = alloc({n * l.dispatchChunk}, f32);
  emitMoePack(l);
  l.dispatchRecv = alloc({n * l.dispatchChunk}, f32);
  exchange(l.dispatchSend, l.dispatchRecv, el, el * (1 + d));
  // The rows of every rank's groups, as their local experts' hidden rows.
  l.hidden = alloc({el, n * g, l.cap, l.m}, f32);
  up.c = l.hidden;
  emitShardedExpertGemm(l, up);
  l.returnSend = alloc({n * l.returnChunk}, f32);
  down.a = l.hidden;
  down.c = l.returnSend;
  emitShardedExpertGemm(l, down);
  l.returnRecv = alloc({n * l.returnChunk}, f32);
  exchange(l.returnSend, l.returnRecv, 0, el * d);
  return success();
}

} // namespace mlir::vmoe::lowering
