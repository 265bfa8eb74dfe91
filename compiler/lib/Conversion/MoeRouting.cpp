//===- MoeRouting.cpp - the MoE layer's slot assignment kernel ------------===//
//
// The routing decisions of a decomposed MoE layer: per group, the token
// order (BPR) and the k-major slot assignment with counters that keep
// counting past the capacity.
//
//===----------------------------------------------------------------------===//

#include "MoeLayer.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

namespace mlir::vmoe::lowering {

/// A token order by descending gate: a stable sort of the first cS entries
/// of `order[row]` (initially 0..S-1) by `gates[gi, token, column]`, as a
/// bottom-up merge sort that ping-pongs between `order` and `tmp`. BPR sorts
/// group gi's tokens by their top-1 gate (row gi, column 0); expert choice
/// sorts them by expert e's gate (row gi * E + e, column e). c0, c1: the
/// kernel's index constants 0 and 1; cS: the group's real tokens (S, or
/// fewer in a partial group).
static void emitGateOrder(ImplicitLocOpBuilder &b, Value row, Value gi,
                          Value column, Value gates, Value order, Value tmp,
                          Value c0, Value c1, Value cS) {
  Type index = b.getIndexType();
  // Merge runs of `width` from src to dst; `inOrder` tracks which buffer
  // holds the current runs.
  auto key = [&](ImplicitLocOpBuilder &b, Value buf, Value pos) {
    Value tok = arith::IndexCastOp::create(
        b, index, memref::LoadOp::create(b, buf, ValueRange{row, pos}));
    return memref::LoadOp::create(b, gates, ValueRange{gi, tok, column})
        .getResult();
  };
  auto whileOp = scf::WhileOp::create(
      b, TypeRange{index, b.getI1Type()},
      ValueRange{c1, arith::ConstantOp::create(b, b.getBoolAttr(true))},
      [&](OpBuilder &nb, Location loc, ValueRange args) {
        ImplicitLocOpBuilder ib(loc, nb);
        Value more =
            arith::CmpIOp::create(ib, arith::CmpIPredicate::slt, args[0], cS);
        scf::ConditionOp::create(ib, more, args);
      },
      [&](OpBuilder &nb, Location loc, ValueRange args) {
        ImplicitLocOpBuilder ib(loc, nb);
        Value width = args[0], inOrder = args[1];
        Value twice = arith::AddIOp::create(ib, width, width);
        auto merge = [&](ImplicitLocOpBuilder &b, Value src, Value dst) {
          forLoop(b, c0, cS, twice, [&](ImplicitLocOpBuilder &b, Value lo) {
            Value mid = minIndex(b, arith::AddIOp::create(b, lo, width), cS);
            Value hi = minIndex(b, arith::AddIOp::create(b, lo, twice), cS);
            forLoopAcc(
                b, lo, hi, c1, {lo, mid},
                [&](ImplicitLocOpBuilder &b, Value out, ValueRange ij) {
                  Value i = ij[0], j = ij[1];
                  Value leftOk = arith::CmpIOp::create(
                      b, arith::CmpIPredicate::slt, i, mid);
                  Value rightOk = arith::CmpIOp::create(
                      b, arith::CmpIPredicate::slt, j, hi);
                  Value li = minIndex(b, i, arith::SubIOp::create(b, hi, c1));
                  Value ri = minIndex(b, j, arith::SubIOp::create(b, hi, c1));
                  // Stable, descending: the left run wins ties.
                  Value geq =
                      arith::CmpFOp::create(b, arith::CmpFPredicate::OGE,
                                            key(b, src, li), key(b, src, ri));
                  Value takeLeft = arith::AndIOp::create(
                      b, leftOk,
                      arith::OrIOp::create(
                          b,
                          arith::XOrIOp::create(b, rightOk,
                                                arith::ConstantOp::create(
                                                    b, b.getBoolAttr(true))),
                          geq));
                  Value from = arith::SelectOp::create(b, takeLeft, li, ri);
                  Value tok =
                      memref::LoadOp::create(b, src, ValueRange{row, from});
                  memref::StoreOp::create(b, tok, dst, ValueRange{row, out});
                  Value ni = arith::SelectOp::create(
                      b, takeLeft, arith::AddIOp::create(b, i, c1), i);
                  Value nj = arith::SelectOp::create(
                      b, takeLeft, j, arith::AddIOp::create(b, j, c1));
                  return SmallVector<Value>{ni, nj};
                });
          });
        };
        scf::IfOp::create(
            ib, inOrder,
            [&](OpBuilder &n2, Location l2) {
              ImplicitLocOpBuilder b2(l2, n2);
              merge(b2, order, tmp);
              scf::YieldOp::create(b2);
            },
            [&](OpBuilder &n2, Location l2) {
              ImplicitLocOpBuilder b2(l2, n2);
              merge(b2, tmp, order);
              scf::YieldOp::create(b2);
            });
        Value flipped = arith::XOrIOp::create(
            ib, inOrder, arith::ConstantOp::create(ib, ib.getBoolAttr(true)));
        scf::YieldOp::create(ib, ValueRange{twice, flipped});
      });
  Value inOrder = whileOp.getResult(1);
  ifThen(b,
         arith::XOrIOp::create(
             b, inOrder, arith::ConstantOp::create(b, b.getBoolAttr(true))),
         [&](ImplicitLocOpBuilder &b) {
           forLoop(b, c0, cS, c1, [&](ImplicitLocOpBuilder &b, Value p) {
             Value tok = memref::LoadOp::create(b, tmp, ValueRange{row, p});
             memref::StoreOp::create(b, tok, order, ValueRange{row, p});
           });
         });
}

Value Lowering::realTokens(Kernel &kern, const MoeLayer &l, Value tokBase) {
  // A call whose batch ends inside a group routes only its own tokens there
  // (padding never takes a slot, counts nothing); the capacity stays the
  // whole group's.
  ImplicitLocOpBuilder &b = kern.b();
  Value callTokens = validExtent(kern, l.g * l.s);
  Value inside =
      arith::CmpIOp::create(b, arith::CmpIPredicate::ugt, callTokens, tokBase);
  Value rest = minIndex(b, arith::SubIOp::create(b, callTokens, tokBase),
                        constIndex(b, l.s));
  return arith::SelectOp::create(b, inside, rest, constIndex(b, 0));
}

void Lowering::emitMoeAssign(MoeLayer &l) {
  // assign: per group, the token order (BPR: stable sort by descending top-1
  // gate) and the k-major slot assignment with counters that keep counting
  // past the capacity.
  int64_t g = l.g, s = l.s, e = l.e, k = l.k, cap = l.cap;
  Type i32 = IntegerType::get(ctx, 32), index = IndexType::get(ctx);
  SmallVector<Value> binds = {l.topVal,    l.topIdx,   l.slots,
                              l.slotToken, l.slotGate, l.counts,
                              l.kept,      l.order,    l.orderTmp};
  Kernel kern = newKernel("moe_assign", binds, 3);
  ImplicitLocOpBuilder &b = kern.b();
  Value kv = kern.bindings[0], ki = kern.bindings[1], ks = kern.bindings[2],
        kst = kern.bindings[3], ksg = kern.bindings[4], kc = kern.bindings[5],
        kk = kern.bindings[6], ko = kern.bindings[7], kt = kern.bindings[8];
  Value capArg = minIndex(b, kern.constants[0], constIndex(b, cap));
  Value bprOn = arith::CmpIOp::create(b, arith::CmpIPredicate::ne,
                                      kern.constants[1], constIndex(b, 0));
  // The call's k (1..k): its first choices are the top-k' (vmoe recomputes
  // top_k with k', the prefix of the compiled top-k); the rest are dropped.
  Value kCall = minIndex(b, kern.constants[2], constIndex(b, k));
  Value gi = kern.wx;
  Value c0 = constIndex(b, 0), c1 = constIndex(b, 1), cS = constIndex(b, s);
  Value tokBase = arith::MulIOp::create(b, gi, cS);
  Value valid = realTokens(kern, l, tokBase);
  forLoop(b, c0, constIndex(b, e), c1, [&](ImplicitLocOpBuilder &b, Value ex) {
    memref::StoreOp::create(b, constI32(b, 0), kc, ValueRange{gi, ex});
  });
  forLoop(b, c0, cS, c1, [&](ImplicitLocOpBuilder &b, Value si) {
    memref::StoreOp::create(b, arith::IndexCastOp::create(b, i32, si), ko,
                            ValueRange{gi, si});
    memref::StoreOp::create(b, constI32(b, 0), kk,
                            ValueRange{arith::AddIOp::create(b, tokBase, si)});
  });
  ifThen(b, bprOn, [&](ImplicitLocOpBuilder &b) {
    emitGateOrder(b, gi, gi, c0, kv, ko, kt, c0, c1, valid);
  });
  forLoop(b, kCall, constIndex(b, k), c1,
          [&](ImplicitLocOpBuilder &b, Value j) {
            forLoop(b, c0, cS, c1, [&](ImplicitLocOpBuilder &b, Value si) {
              memref::StoreOp::create(b, constI32(b, -1), ks,
                                      ValueRange{gi, si, j});
            });
          });
  forLoop(b, c0, kCall, c1, [&](ImplicitLocOpBuilder &b, Value j) {
    forLoop(b, c0, valid, c1, [&](ImplicitLocOpBuilder &b, Value p) {
      Value si = arith::IndexCastOp::create(
          b, index, memref::LoadOp::create(b, ko, ValueRange{gi, p}));
      // The gates kernel wrote the expert: clamped (see clampIndex).
      Value ex = clampIndex(
          b, memref::LoadOp::create(b, ki, ValueRange{gi, si, j}), e);
      Value posI32 = memref::LoadOp::create(b, kc, ValueRange{gi, ex});
      memref::StoreOp::create(b,
                              arith::AddIOp::create(b, posI32, constI32(b, 1)),
                              kc, ValueRange{gi, ex});
      Value pos = arith::IndexCastOp::create(b, index, posI32);
      Value keep =
          arith::CmpIOp::create(b, arith::CmpIPredicate::slt, pos, capArg);
      memref::StoreOp::create(
          b, arith::SelectOp::create(b, keep, posI32, constI32(b, -1)), ks,
          ValueRange{gi, si, j});
      ifThen(b, keep, [&](ImplicitLocOpBuilder &b) {
        memref::StoreOp::create(b, arith::IndexCastOp::create(b, i32, si), kst,
                                ValueRange{ex, gi, pos});
        Value gate = memref::LoadOp::create(b, kv, ValueRange{gi, si, j});
        memref::StoreOp::create(b, gate, ksg, ValueRange{ex, gi, pos});
        Value tok = arith::AddIOp::create(b, tokBase, si);
        Value n = memref::LoadOp::create(b, kk, ValueRange{tok});
        memref::StoreOp::create(b, arith::AddIOp::create(b, n, constI32(b, 1)),
                                kk, ValueRange{tok});
      });
    });
  });
  launch(kern, {g}, binds, {l.capacity, l.bpr, l.kCall}, perBatch(g * s, s));
}

void Lowering::emitExpertChoiceAssign(MoeLayer &l) {
  // expert choice: workgroup (group, expert) sorts the group's real tokens
  // by descending gate of its expert (stable: ties to the lower token, as
  // top_k over tokens) and takes the first min(C, real tokens) of them.
  int64_t g = l.g, s = l.s, e = l.e, cap = l.cap;
  Type i32 = IntegerType::get(ctx, 32), index = IndexType::get(ctx);
  SmallVector<Value> binds = {l.topVal, l.slots, l.slotToken, l.slotGate,
                              l.counts, l.order, l.orderTmp};
  Kernel kern = newKernel("moe_expert_choice", binds, 1);
  ImplicitLocOpBuilder &b = kern.b();
  Value kv = kern.bindings[0], ks = kern.bindings[1], kst = kern.bindings[2],
        ksg = kern.bindings[3], kc = kern.bindings[4], ko = kern.bindings[5],
        kt = kern.bindings[6];
  Value capArg = minIndex(b, kern.constants[0], constIndex(b, cap));
  Value gi = kern.wx, ex = kern.wy;
  Value c0 = constIndex(b, 0), c1 = constIndex(b, 1), cS = constIndex(b, s);
  Value row = arith::AddIOp::create(
      b, arith::MulIOp::create(b, gi, constIndex(b, e)), ex);
  Value valid = realTokens(kern, l, arith::MulIOp::create(b, gi, cS));
  forLoop(b, c0, cS, c1, [&](ImplicitLocOpBuilder &b, Value si) {
    memref::StoreOp::create(b, arith::IndexCastOp::create(b, i32, si), ko,
                            ValueRange{row, si});
    memref::StoreOp::create(b, constI32(b, -1), ks, ValueRange{gi, si, ex});
  });
  emitGateOrder(b, row, gi, ex, kv, ko, kt, c0, c1, valid);
  Value taken = minIndex(b, capArg, valid);
  forLoop(b, c0, taken, c1, [&](ImplicitLocOpBuilder &b, Value c) {
    Value tokI32 = memref::LoadOp::create(b, ko, ValueRange{row, c});
    Value tok = arith::IndexCastOp::create(b, index, tokI32);
    memref::StoreOp::create(b, arith::IndexCastOp::create(b, i32, c), ks,
                            ValueRange{gi, tok, ex});
    memref::StoreOp::create(b, tokI32, kst, ValueRange{ex, gi, c});
    Value gate = memref::LoadOp::create(b, kv, ValueRange{gi, tok, ex});
    memref::StoreOp::create(b, gate, ksg, ValueRange{ex, gi, c});
  });
  // Every expert is full (or holds every real token): the count is what
  // it took, and nothing is dropped.
  memref::StoreOp::create(b, arith::IndexCastOp::create(b, i32, taken), kc,
                          ValueRange{gi, ex});
  launch(kern, {g, e}, binds, {l.capacity}, perBatch(g * s, s));
}

} // namespace mlir::vmoe::lowering
