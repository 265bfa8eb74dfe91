//===- MoeKernels.cpp - the MoE layer as five kernels ---------------------===//
//
// The decomposed MoE layer (router, top_k, assign_slots, dispatch,
// expert_mlp, combine) becomes five kernels:
//   gates   router GEMM + softmax + top-k           (parallel over tokens)
//   assign  BPR ordering + k-major slot assignment  (one workgroup per group)
//   up      gather rows by slot, GEMM1 + bias + GELU (experts x groups x rows)
//   down    GEMM2 + bias (+ bf16) x gate             (experts x groups x rows)
//   combine sum of the kept assignments per token    (parallel over tokens)
// The expert kernels stop at the number of slots routing filled, so a lower
// capacity factor does less work.
//
//===----------------------------------------------------------------------===//

#include "MoeLayer.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"

#include <cmath>
#include <numeric>
#include <tuple>

namespace mlir::vmoe::lowering {

/// The (batch, tokens, hidden) shape the grouped tokens came from, through
/// the reshapes that vmoe-decompose inserts; tokens per image for the
/// per-image routing statistics.
static int64_t tokensPerImage(Value grouped, int64_t groupSize) {
  Value v = grouped;
  while (Operation *def = v.getDefiningOp()) {
    if (!isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(def))
      break;
    v = def->getOperand(0);
    if (shapeOf(v).size() >= 3)
      return shapeOf(v)[shapeOf(v).size() - 2];
  }
  return groupSize;
}

template <typename OpTy> static OpTy singleUserOfType(Value v) {
  OpTy found;
  for (Operation *user : v.getUsers()) {
    auto op = dyn_cast<OpTy>(user);
    if (!op || (found && found != op))
      return OpTy();
    found = op;
  }
  return found;
}

LogicalResult Lowering::lowerMoe(RouterOp router) {
  FailureOr<MoeLayer> matched = matchMoeLayer(router);
  if (failed(matched))
    return failure();
  MoeLayer &layer = *matched;
  if (failed(setUpMoeKnobs(layer)))
    return failure();
  allocMoeBuffers(layer);
  if (expertShards > 1 && failed(setUpShards(layer)))
    return failure();
  emitMoeGates(layer);
  if (layer.expertChoice)
    emitExpertChoiceAssign(layer);
  else
    emitMoeAssign(layer);
  if (failed(expertShards > 1 ? emitShardedExperts(layer)
                              : emitMoeExperts(layer)))
    return failure();
  emitMoeCombine(layer);
  RoutingStatsOp::create(*hb, layer.counts, layer.kept, layer.index);
  return success();
}

/// The ops of the decomposed layer that `l.router` starts (router, then
/// top_k + assign_slots or expert_choice, dispatch, expert_mlp, combine);
/// some stay null when the graph has another shape.
static void findMoeOps(MoeLayer &l) {
  Value gates = l.router.getGates();
  l.topK = singleUserOfType<TopKOp>(gates);
  l.choice = singleUserOfType<ExpertChoiceOp>(gates);
  Value experts = l.topK     ? l.topK.getIndices()
                  : l.choice ? l.choice.getExperts()
                             : Value();
  if (!experts)
    return;
  for (Operation *u : experts.getUsers()) {
    if (auto a = dyn_cast<AssignSlotsOp>(u))
      l.assign = a;
    else if (auto d = dyn_cast<DispatchOp>(u))
      l.dispatch = d;
    else if (auto c = dyn_cast<CombineOp>(u))
      l.combine = c;
  }
  if (l.dispatch)
    l.experts = singleUserOfType<ExpertMlpOp>(l.dispatch.getBuffers());
}

/// Whether the ops findMoeOps found form one whole layer.
static bool isWholeLayer(MoeLayer &l) {
  if (!l.dispatch || !l.experts || !l.combine || (l.topK && !l.assign))
    return false;
  Value experts = l.topK ? l.topK.getIndices() : l.choice.getExperts();
  Value slots = l.topK ? l.assign.getSlots() : l.choice.getSlots();
  Value weights = l.topK ? l.topK.getValues() : l.choice.getWeights();
  return l.dispatch.getInput() == l.router.getInput() &&
         l.dispatch.getExperts() == experts && l.dispatch.getSlots() == slots &&
         l.combine.getBuffers() == l.experts.getResult() &&
         l.combine.getExperts() == experts && l.combine.getSlots() == slots &&
         l.combine.getWeights() == weights;
}

FailureOr<MoeLayer> Lowering::matchMoeLayer(RouterOp router) {
  // Other shapes of routing graphs are not fused.
  MoeLayer l;
  l.router = router;
  findMoeOps(l);
  if (!isWholeLayer(l))
    return router.emitOpError()
           << "is not part of a decomposed MoE layer (router, then top_k and "
              "assign_slots or expert_choice, dispatch, expert_mlp, "
              "combine); the kernel lowering lowers MoE layers in that form "
              "(run vmoe-decompose)";
  l.expertChoice = static_cast<bool>(l.choice);
  for (Operation *op :
       {l.topK ? l.topK.getOperation() : l.choice.getOperation(),
        l.dispatch.getOperation(), l.experts.getOperation(),
        l.combine.getOperation()})
    handled.insert(op);
  if (l.assign)
    handled.insert(l.assign);

  FailureOr<Value> x = lookup(router.getInput(), router);
  FailureOr<WeightRef> wr = weightOperand(router.getKernel(), router);
  ExpertMlpOp experts = l.experts;
  FailureOr<WeightRef> w1 = weightOperand(experts.getW1(), experts),
                       b1 = weightOperand(experts.getB1(), experts),
                       w2 = weightOperand(experts.getW2(), experts),
                       b2 = weightOperand(experts.getB2(), experts);
  if (failed(x) || failed(wr) || failed(w1) || failed(b1) || failed(w2) ||
      failed(b2))
    return failure();
  l.x = *x;
  l.wr = std::move(*wr);
  l.w1 = std::move(*w1);
  l.b1 = std::move(*b1);
  l.w2 = std::move(*w2);
  l.b2 = std::move(*b2);

  ArrayRef<int64_t> xs = shapeOf(router.getInput());
  l.g = xs[0];
  l.s = xs[1];
  l.d = xs[2];
  l.e = shapeOf(router.getGates())[2];
  l.k = l.expertChoice ? 1 : shapeOf(l.topK.getValues())[2];
  l.cap =
      l.expertChoice ? l.choice.getMaxCapacity() : l.assign.getMaxCapacity();
  l.m = shapeOf(experts.getW1())[2];
  l.bf16 = l.dispatch.getBf16Round();
  if (l.combine.getBf16Round() != l.bf16)
    return l.combine.emitOpError()
           << "rounds expert outputs differently from the dispatch; the CPU "
              "target needs both or neither";
  l.index = moeLayers.size();
  return l;
}

Value Lowering::addKnob(KnobKind kind, unsigned layer) {
  Builder bld(ctx);
  unsigned pos = host.getNumArguments();
  (void)host.insertArgument(
      pos, bld.getIndexType(),
      bld.getDictionaryAttr({
          bld.getNamedAttr(kKnobAttrName,
                           bld.getStringAttr(stringifyKnobKind(kind))),
          bld.getNamedAttr(kLayerAttrName, bld.getI64IntegerAttr(layer)),
      }),
      host.getLoc());
  return host.getArgument(pos);
}

LogicalResult Lowering::recordMoeLayer(const MoeLayer &l) {
  Operation *routing = l.expertChoice ? static_cast<Operation *>(l.choice)
                                      : static_cast<Operation *>(l.assign);
  auto layerAttr = MoeLayerAttr::getChecked(
      [&] { return routing->emitOpError(); }, ctx, int64_t(l.index),
      /*num_experts=*/l.e, l.k, /*group_size=*/l.s, /*num_groups=*/l.g,
      l.tokensPerImage, /*max_capacity=*/l.cap, l.defaultCf, l.maxCf,
      l.defaultBpr, /*bf16_dispatch=*/l.bf16, l.expertChoice,
      l.capacityMultipleOf, l.capacityRound);
  if (!layerAttr)
    return failure();
  moeLayers.push_back(layerAttr);
  return success();
}

LogicalResult Lowering::setUpMoeKnobs(MoeLayer &l) {
  // Any smaller batch runs: its last group may be partial, and the kernels
  // route only its real tokens (see emitMoeAssign).
  l.tokensPerImage = tokensPerImage(l.router.getInput(), l.s);
  if (l.tokensPerImage < 1 || l.g * l.s != maxBatch * l.tokensPerImage)
    dynamicBatch = false;
  // Run-time knobs: the capacity, k and the BPR flag become host arguments.
  Operation *routing =
      l.expertChoice ? l.choice.getOperation() : l.assign.getOperation();
  Value capacity =
      l.expertChoice ? l.choice.getCapacity() : l.assign.getCapacity();
  // Expert choice sizes its buffers for S tokens (vmoe: num_tokens = S).
  int64_t routed = l.expertChoice ? l.s : l.s * l.k;
  if (auto capOp = capacity.getDefiningOp<CapacityOp>()) {
    FloatAttr cf;
    if (!matchPattern(capOp.getCapacityFactor(), m_Constant(&cf)))
      return capOp.emitOpError()
             << "expects a constant default capacity factor";
    l.defaultCf = cf.getValueAsDouble();
    l.maxCf = l.defaultCf;
    if (std::optional<APFloat> maxAttr = capOp.getMaxCapacityFactor())
      l.maxCf = maxAttr->convertToDouble();
    // The runtime recomputes the capacity per call from S * k (the call's
    // k) and the layer's experts, with the op's rule.
    if (capOp.getNumTokens() != uint64_t(routed) ||
        capOp.getNumExperts() != uint64_t(l.e))
      return capOp.emitOpError()
             << "computes the capacity of " << capOp.getNumTokens()
             << " routed tokens and " << capOp.getNumExperts()
             << " experts, but its layer routes " << l.s
             << " tokens x k = " << l.k << " to " << l.e
             << " experts; a compiled module derives the capacity from "
                "those (set num_tokens = "
             << routed << ", num_experts = " << l.e
             << ", or pass a constant capacity)";
    l.capacityMultipleOf = capOp.getMultipleOf();
    l.capacityRound = capOp.getRound();
    l.capacity = addKnob(KnobKind::Capacity, l.index);
  } else {
    APInt value;
    if (!matchPattern(capacity, m_ConstantInt(&value)))
      return routing->emitOpError()
             << "expects a capacity from vmoe.capacity or a constant";
    // A fixed capacity: the runtime reads it as max_capacity, so the
    // buffers are exactly that large.
    l.cap = std::min<int64_t>(l.cap, value.getSExtValue());
    l.capacity = hostIndex(l.cap);
  }
  if (l.expertChoice) // no k, no BPR: experts pick their tokens
    return recordMoeLayer(l);
  l.kCall = addKnob(KnobKind::K, l.index);
  APInt value;
  if (!matchPattern(l.assign.getBatchPriority(), m_ConstantInt(&value)))
    return l.assign.emitOpError() << "expects a constant default BPR flag";
  l.defaultBpr = !value.isZero();
  l.bpr = addKnob(KnobKind::Bpr, l.index);
  return recordMoeLayer(l);
}

void Lowering::allocMoeBuffers(MoeLayer &l) {
  Type f32 = Float32Type::get(ctx), i32 = IntegerType::get(ctx, 32);
  // bf16 math: the expert inputs and the hidden activation are rounded to
  // bf16 (nearest even); vdpbf16ps reads them as bits (i16, see bf16Bits),
  // the f32 FMAs as f32 values (the same numbers: broadcast loads without
  // integer ops, 1.7x faster on AVX2 than splitting bits).
  // Expert-sharded layers send f32 words between ranks: their bf16
  // activations stay f32 values (the f32-FMA form of the same products).
  l.actBits = expertBf16Math && nativeBf16Dot && expertShards < 2;
  l.actType = l.actBits ? Type(IntegerType::get(ctx, 16)) : Type(f32);
  // Expert-up reads its rows in place, by slot -> token: from x, or from a
  // copy of x rounded to bf16 (bf16 dispatch, bf16 math) that the gates
  // kernel writes as it reads x for the router.
  l.roundInputs = l.bf16 || expertBf16Math;
  int64_t g = l.g, s = l.s, d = l.d, e = l.e, k = l.k, cap = l.cap;
  l.expertInput = l.roundInputs ? alloc({g, s, d}, l.actType) : l.x;

  l.wrBuf = copyGlobal("router", l.wr, MemRefType::get({d, e}, f32));
  int64_t a = l.assignments();
  l.topVal = alloc({g, s, a}, f32);
  if (!l.expertChoice)
    l.topIdx = alloc({g, s, k}, i32);
  l.counts = alloc({g, e}, i32);
  l.kept = alloc({g * s}, i32);
  l.slots = alloc({g, s, a}, i32);
  l.slotToken = alloc({e, g, cap}, i32);
  l.slotGate = alloc({e, g, cap}, f32);
  // Expert choice sorts each (group, expert)'s tokens, BPR each group's.
  int64_t orders = l.expertChoice ? g * e : g;
  l.order = alloc({orders, s}, i32);
  l.orderTmp = alloc({orders, s}, i32);
}

void Lowering::emitMoeGates(MoeLayer &l) {
  // gates: logits = x W, softmax over all experts, top-k (ties to the lower
  // expert because only a strictly larger gate replaces the best so far).
  // Expert choice keeps every gate: the experts pick from them.
  int64_t g = l.g, s = l.s, d = l.d, e = l.e, k = l.k;
  int64_t tokenTile = l.tokenTile;
  bool roundInputs = l.roundInputs, actBits = l.actBits;
  bool allGates = l.expertChoice;
  Type f32 = Float32Type::get(ctx), i32 = IntegerType::get(ctx, 32);
  SmallVector<Value> binds = {l.x, l.wrBuf, l.topVal};
  if (!allGates)
    binds.push_back(l.topIdx);
  if (roundInputs)
    binds.push_back(l.expertInput);
  Kernel kern = newKernel("moe_gates", binds, 0);
  ImplicitLocOpBuilder &b = kern.b();
  Value kx = kern.bindings[0], kw = kern.bindings[1], kv = kern.bindings[2];
  unsigned next = 3;
  Value ki = allGates ? Value() : kern.bindings[next++];
  Value kxr = roundInputs ? kern.bindings[next] : Value();
  Value c0 = constIndex(b, 0), c1 = constIndex(b, 1);
  Value cE = constIndex(b, e), cD = constIndex(b, d);
  Value logits = memref::AllocaOp::create(b, MemRefType::get({e}, f32));
  Value begin = arith::MulIOp::create(b, kern.wx, constIndex(b, tokenTile));
  Value end =
      minIndex(b, arith::AddIOp::create(b, begin, constIndex(b, tokenTile)),
               validExtent(kern, g * s));
  forLoop(b, begin, end, c1, [&](ImplicitLocOpBuilder &b, Value tok) {
    Value gi = arith::DivUIOp::create(b, tok, constIndex(b, s));
    Value si = arith::RemUIOp::create(b, tok, constIndex(b, s));
    forLoop(b, c0, cE, c1, [&](ImplicitLocOpBuilder &b, Value ex) {
      memref::StoreOp::create(b, constF32(b, 0.0), logits, ValueRange{ex});
    });
    forLoop(b, c0, cD, c1, [&](ImplicitLocOpBuilder &b, Value dd) {
      Value xv = memref::LoadOp::create(b, kx, ValueRange{gi, si, dd});
      if (roundInputs)
        memref::StoreOp::create(b,
                                actBits ? bf16Bits(b, xv) : roundToBf16(b, xv),
                                kxr, ValueRange{gi, si, dd});
      forLoop(b, c0, cE, c1, [&](ImplicitLocOpBuilder &b, Value ex) {
        Value w = memref::LoadOp::create(b, kw, ValueRange{dd, ex});
        Value l = memref::LoadOp::create(b, logits, ValueRange{ex});
        memref::StoreOp::create(
            b, arith::AddFOp::create(b, l, arith::MulFOp::create(b, xv, w)),
            logits, ValueRange{ex});
      });
    });
    Value mx = forLoopAcc(
        b, c0, cE, c1, {constF32(b, -INFINITY)},
        [&](ImplicitLocOpBuilder &b, Value ex, ValueRange a) {
          Value l = memref::LoadOp::create(b, logits, ValueRange{ex});
          return SmallVector<Value>{arith::MaximumFOp::create(b, a[0], l)};
        })[0];
    Value sum = forLoopAcc(
        b, c0, cE, c1, {constF32(b, 0.0)},
        [&](ImplicitLocOpBuilder &b, Value ex, ValueRange a) {
          Value l = memref::LoadOp::create(b, logits, ValueRange{ex});
          Value p = math::ExpOp::create(b, arith::SubFOp::create(b, l, mx));
          memref::StoreOp::create(b, p, logits, ValueRange{ex});
          return SmallVector<Value>{arith::AddFOp::create(b, a[0], p)};
        })[0];
    forLoop(b, c0, cE, c1, [&](ImplicitLocOpBuilder &b, Value ex) {
      Value p = memref::LoadOp::create(b, logits, ValueRange{ex});
      Value gate = arith::DivFOp::create(b, p, sum);
      memref::StoreOp::create(b, gate, logits, ValueRange{ex});
      if (allGates)
        memref::StoreOp::create(b, gate, kv, ValueRange{gi, si, ex});
    });
    // top-k by repeated selection; a chosen expert is marked with -1.
    for (int64_t j = 0; j < (allGates ? 0 : k); ++j) {
      SmallVector<Value> best = forLoopAcc(
          b, c0, cE, c1, {constF32(b, -1.0), c0},
          [&](ImplicitLocOpBuilder &b, Value ex, ValueRange a) {
            Value p = memref::LoadOp::create(b, logits, ValueRange{ex});
            Value better =
                arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, p, a[0]);
            return SmallVector<Value>{
                arith::SelectOp::create(b, better, p, a[0]),
                arith::SelectOp::create(b, better, ex, a[1])};
          });
      Value jj = constIndex(b, j);
      memref::StoreOp::create(b, best[0], kv, ValueRange{gi, si, jj});
      memref::StoreOp::create(b, arith::IndexCastOp::create(b, i32, best[1]),
                              ki, ValueRange{gi, si, jj});
      memref::StoreOp::create(b, constF32(b, -2.0), logits,
                              ValueRange{best[1]});
    }
  });
  launch(kern, {ceilDiv(g * s, tokenTile)}, binds, {},
         perBatch(g * s, tokenTile));
}

Value Lowering::filledRows(Kernel &kern, const MoeLayer &l, Value kCounts,
                           Value capV, Value ex, Value gi) {
  // Groups past the call's batch hold stale counts: they have no rows. A
  // partial last group counts only its real tokens.
  ImplicitLocOpBuilder &b = kern.b();
  Type index = b.getIndexType();
  Value groups = arith::DivUIOp::create(
      b,
      arith::AddIOp::create(b, validExtent(kern, l.g * l.s),
                            constIndex(b, l.s - 1)),
      constIndex(b, l.s));
  Value live = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, gi, groups);
  Value safeGi = arith::SelectOp::create(b, live, gi, constIndex(b, 0));
  Value n = arith::IndexCastOp::create(
      b, index, memref::LoadOp::create(b, kCounts, ValueRange{safeGi, ex}));
  n = arith::SelectOp::create(b, live, n, constIndex(b, 0));
  return minIndex(b, n, minIndex(b, capV, constIndex(b, l.cap)));
}

void Lowering::emitExpertGemm(const MoeLayer &l, const ExpertGemm &gemm) {
  int64_t g = l.g, rowTile = gemm.rowTile, panelTile = gemm.panelTile;
  int64_t panels = ceilDiv(gemm.n, tiling.nr);
  SmallVector<Value> binds = {gemm.a,       gemm.perSlot, l.counts,
                              gemm.packedB, gemm.bias,    gemm.c};
  const bool int8 = static_cast<bool>(gemm.wScales);
  if (int8)
    binds.append({gemm.aScales, gemm.wScales});
  if (gemm.colSums)
    binds.push_back(gemm.colSums);
  Kernel kern = newKernel(gemm.name, binds, 1);
  ImplicitLocOpBuilder &b = kern.b();
  Value ka = kern.bindings[0], kSlot = kern.bindings[1];
  Value ex = arith::DivUIOp::create(b, kern.wz, constIndex(b, g));
  Value gi = arith::RemUIOp::create(b, kern.wz, constIndex(b, g));
  Value rows = filledRows(kern, l, kern.bindings[2], kern.constants[0], ex, gi);
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
    // The slot's entry of the per-slot operand: its token or its gate.
    auto perSlot = [&](ImplicitLocOpBuilder &b, Value row) -> Value {
      return memref::LoadOp::create(b, kSlot, ValueRange{ex, gi, row});
    };
    // Clamped into the group: the token comes from the arena, where another
    // kernel wrote it, and a forged module can make that anything.
    auto tokenOf = [&](ImplicitLocOpBuilder &b, Value row) -> Value {
      return clampIndex(b, perSlot(b, row), l.s);
    };
    auto aIndex = [&](ImplicitLocOpBuilder &, Value row, Value kk) {
      // Gathered: `row` is the token (see tokenOf).
      if (gemm.gatherTokens)
        return SmallVector<Value>{gi, row, kk};
      return SmallVector<Value>{ex, gi, row, kk};
    };
    auto cIndex = [&](ImplicitLocOpBuilder &, Value row, Value col) {
      return SmallVector<Value>{ex, gi, row, col};
    };
    GemmOperands ops;
    ops.n = gemm.n;
    ops.k = gemm.k;
    ops.bf16Pairs = expertBf16Math;
    // int8: the scale of A's row, the token's (gathered: `row` is the
    // token) or the slot's.
    auto aScale = [&](ImplicitLocOpBuilder &b, Value row) -> Value {
      if (gemm.gatherTokens)
        return memref::LoadOp::create(
            b, kern.bindings[6],
            ValueRange{arith::AddIOp::create(
                b, arith::MulIOp::create(b, gi, constIndex(b, l.s)), row)});
      return memref::LoadOp::create(b, kern.bindings[6],
                                    ValueRange{ex, gi, row});
    };
    if (int8) {
      ops.int8 = int8Dot;
      ops.aScale = aScale;
      ops.wScale = kern.bindings[7];
      if (gemm.colSums)
        ops.colSums = kern.bindings[8];
    }
    ops.a = ka;
    if (gemm.gatherTokens)
      ops.aRow = tokenOf;
    ops.aIndex = aIndex;
    ops.b = kern.bindings[3];
    ops.bPrefix = {ex};
    ops.bias = kern.bindings[4];
    ops.biasPrefix = {ex};
    ops.activation = gemm.activation;
    ops.bf16RoundOutput = gemm.bf16RoundOutput;
    if (!gemm.gatherTokens)
      ops.rowScale = perSlot;
    ops.c = kern.bindings[5];
    ops.cIndex = cIndex;
    emitGemmBlock(b, tiling, ops, rowBegin, rowEnd, panelBegin, panelEnd);
  });
  launch(kern, {ceilDiv(l.cap, rowTile), ceilDiv(panels, panelTile), l.e * g},
         binds, {l.capacity});
}

LogicalResult Lowering::planExpertGemms(MoeLayer &l, ExpertGemm &up,
                                        ExpertGemm &down) {
  int64_t g = l.g, d = l.d, e = l.e, cap = l.cap, m = l.m;
  if (expertBf16Math && (d % 2 != 0 || m % 2 != 0))
    return l.experts.emitOpError()
           << "bf16 expert math multiplies in k pairs and needs an even "
              "hidden size and MLP size, got "
           << d << " and " << m << "; compile this model with f32 expert math";
  // An expert-sharded rank holds its own experts' weights only.
  int64_t held = l.localExperts ? l.localExperts : e;
  if (expertInt8 && l.localExperts)
    return l.experts.emitOpError()
           << "int8 expert math is not available with expert shards yet; "
              "compile the shards with f32 or bf16 expert math";
  GemmWeights w1, w2;
  if (expertInt8) {
    FailureOr<GemmWeights> q1 = packGemmWeights("expert_w1", {&l.w1}, {&l.b1},
                                                e, d, m, true, l.experts);
    FailureOr<GemmWeights> q2 = packGemmWeights("expert_w2", {&l.w2}, {&l.b2},
                                                e, m, d, true, l.experts);
    if (failed(q1) || failed(q2))
      return failure();
    w1 = *q1;
    w2 = *q2;
  } else {
    std::tie(w1.b, w1.bias) =
        packWeights("expert_w1", l.w1, l.b1, held, d, m, expertWeightsBf16,
                    expertBf16Math, e / held);
    std::tie(w2.b, w2.bias) =
        packWeights("expert_w2", l.w2, l.b2, held, m, d, expertWeightsBf16,
                    expertBf16Math, e / held);
    if (l.localExperts)
      for (Value packed : {w1.b, w1.bias, w2.b, w2.bias})
        markExpertSlice(packed, e);
  }
  Value pw1 = w1.b, pb1 = w1.bias, pw2 = w2.b, pb2 = w2.bias;
  // The expert kernels run one workgroup per (row tile, panel block, expert
  // x group) and return at once past the filled slots (sharded: local
  // expert x received group, as many).
  int64_t rowTile = std::min<int64_t>(tiling.rowTile, cap);
  rowTile = std::max<int64_t>(tiling.mr, rowTile / tiling.mr * tiling.mr);
  // Split the columns only as far as needed for about 64 workgroups: each
  // split repeats expert-up's gather of its rows.
  auto panelTileFor = [&](int64_t n) {
    int64_t panels = ceilDiv(n, tiling.nr);
    int64_t base = ceilDiv(cap, rowTile) * e * g;
    int64_t splits = std::clamp<int64_t>(ceilDiv(64, base), 1, panels);
    return ceilDiv(panels, splits);
  };
  // Both expert GEMMs read their rows in place, so narrow column tiles cost
  // nothing: at most about 256 KB of B per workgroup, and consecutive
  // workgroups (the row tiles of one expert) find the same panels in L2
  // instead of each streaming the expert's whole matrix.
  int64_t bBytes = expertInt8 ? 1 : expertWeightsBf16 ? 2 : 4;
  auto narrowPanelTile = [&](int64_t n, int64_t kDim) {
    return std::min(
        panelTileFor(n),
        std::max<int64_t>(1, (256 << 10) / (kDim * tiling.nr * bBytes)));
  };
  // GEMM1 + bias + GELU over the rows of its slots, each read in place
  // from its token's row (bf16-rounded already where the layer needs it).
  up.name = "moe_expert_up";
  up.a = l.expertInput;
  Type qType = int8ActType(ctx, int8Dot), f32 = Float32Type::get(ctx);
  if (expertInt8) {
    // Each token quantized once per layer: the same q in every expert.
    up.a = alloc({g, l.s, d}, qType);
    up.aScales = alloc({g * l.s}, f32);
    emitQuantizeRows("moe_quantize_input", flatten2d(l.expertInput),
                     flatten2d(up.a), up.aScales);
    up.wScales = w1.scales;
    up.colSums = w1.colSums;
  }
  up.perSlot = l.slotToken;
  up.packedB = pw1;
  up.bias = pb1;
  up.n = m;
  up.k = d;
  up.rowTile = rowTile;
  up.panelTile = narrowPanelTile(m, d);
  up.gatherTokens = true;
  up.activation = Activation::Gelu;
  // The GELU output as bf16 values (stored as bits with vdpbf16ps).
  up.bf16RoundOutput = expertBf16Math && !l.actBits;
  // GEMM2 + bias (+ bf16 rounding) times the gate, over the same slots.
  down.name = "moe_expert_down";
  // int8: the GELU output is quantized per row once up has run
  // (emitMoeExperts).
  down.wScales = w2.scales;
  down.colSums = w2.colSums;
  down.perSlot = l.slotGate;
  down.packedB = pw2;
  down.bias = pb2;
  down.n = d;
  down.k = m;
  down.rowTile = rowTile;
  down.panelTile = narrowPanelTile(d, m);
  down.bf16RoundOutput = l.bf16;
  return success();
}

LogicalResult Lowering::emitMoeExperts(MoeLayer &l) {
  ExpertGemm up, down;
  if (failed(planExpertGemms(l, up, down)))
    return failure();
  int64_t g = l.g, d = l.d, e = l.e, cap = l.cap, m = l.m;
  l.hidden = alloc({e, g, cap, m}, l.actType);
  up.c = l.hidden;
  emitExpertGemm(l, up);
  l.expertOut = alloc({e, g, cap, d}, Float32Type::get(ctx));
  down.a = l.hidden;
  if (expertInt8) {
    // The GELU output of each filled slot, quantized per row.
    down.a = alloc({e, g, cap, m}, int8ActType(ctx, int8Dot));
    down.aScales = alloc({e, g, cap}, Float32Type::get(ctx));
    emitQuantizeExpertRows(l, l.hidden, down.a, down.aScales);
  }
  down.c = l.expertOut;
  emitExpertGemm(l, down);
  return success();
}

void Lowering::emitMoeCombine(MoeLayer &l) {
  // combine: out[token] = sum over kept assignments of gate * expert output
  // (the gate is already applied); dropped tokens get exactly 0. Expert
  // choice: assignment j is expert j, and this kernel counts each token's
  // experts for the routing statistics (the assign kernels of different
  // experts cannot).
  int64_t g = l.g, s = l.s, d = l.d, k = l.k, tokenTile = l.tokenTile;
  bool choice = l.expertChoice;
  // Expert-sharded: the expert rows came back from their ranks (returnRecv).
  bool sharded = static_cast<bool>(l.returnRecv);
  Type index = IndexType::get(ctx);
  auto [out, residual] = outputFor(l.combine.getResult(), l.combine);
  SmallVector<Value> binds = {sharded ? l.returnRecv : l.expertOut,
                              choice ? l.kept : l.topIdx, l.slots, out};
  if (residual)
    binds.push_back(residual);
  Kernel kern = newKernel(residual ? "moe_combine_residual" : "moe_combine",
                          binds, sharded ? 1 : 0);
  ImplicitLocOpBuilder &b = kern.b();
  Value callG = sharded ? callGroups(kern, l) : Value();
  Value callC = sharded ? callCapacity(kern, l, kern.constants[0]) : Value();
  Value ky = kern.bindings[0], ki = kern.bindings[1], ks = kern.bindings[2],
        ko = kern.bindings[3];
  Value kr = residual ? kern.bindings[4] : Value();
  Value c0 = constIndex(b, 0), c1 = constIndex(b, 1), cD = constIndex(b, d);
  Value begin = arith::MulIOp::create(b, kern.wx, constIndex(b, tokenTile));
  Value end =
      minIndex(b, arith::AddIOp::create(b, begin, constIndex(b, tokenTile)),
               validExtent(kern, g * s));
  forLoop(b, begin, end, c1, [&](ImplicitLocOpBuilder &b, Value tok) {
    Value gi = arith::DivUIOp::create(b, tok, constIndex(b, s));
    Value si = arith::RemUIOp::create(b, tok, constIndex(b, s));
    // Start from the residual when the block's add is fused here.
    forLoop(b, c0, cD, c1, [&](ImplicitLocOpBuilder &b, Value dd) {
      Value init =
          kr ? memref::LoadOp::create(b, kr, ValueRange{gi, si, dd}).getResult()
             : constF32(b, 0.0);
      memref::StoreOp::create(b, init, ko, ValueRange{gi, si, dd});
    });
    // Adds assignment jj's expert row when kept; returns whether it was.
    auto addAssignment = [&](ImplicitLocOpBuilder &b, Value jj) -> Value {
      Value slot = memref::LoadOp::create(b, ks, ValueRange{gi, si, jj});
      Value keep = arith::CmpIOp::create(b, arith::CmpIPredicate::sge, slot,
                                         constI32(b, 0));
      ifThen(b, keep, [&](ImplicitLocOpBuilder &b) {
        // Expert and slot come from other kernels through the arena:
        // clamped, so that a forged module cannot read past the buffer.
        Value ex =
            choice
                ? jj
                : clampIndex(
                      b, memref::LoadOp::create(b, ki, ValueRange{gi, si, jj}),
                      l.e);
        Value sl = clampIndex(b, slot, l.cap);
        forLoop(b, c0, cD, c1, [&](ImplicitLocOpBuilder &b, Value dd) {
          Value y =
              sharded
                  ? memref::LoadOp::create(
                        b, ky,
                        ValueRange{shardedRowIndex(b, l, callG, callC, ex, gi,
                                                   sl, dd)})
                  : memref::LoadOp::create(b, ky, ValueRange{ex, gi, sl, dd});
          Value o = memref::LoadOp::create(b, ko, ValueRange{gi, si, dd});
          memref::StoreOp::create(b, arith::AddFOp::create(b, o, y), ko,
                                  ValueRange{gi, si, dd});
        });
      });
      return keep;
    };
    if (!choice) {
      for (int64_t j = 0; j < k; ++j)
        addAssignment(b, constIndex(b, j));
      return;
    }
    Value kept = forLoopAcc(
        b, c0, constIndex(b, l.e), c1, {constI32(b, 0)},
        [&](ImplicitLocOpBuilder &b, Value j, ValueRange a) {
          Value keep = addAssignment(b, j);
          Value one = arith::ExtUIOp::create(b, b.getI32Type(), keep);
          return SmallVector<Value>{arith::AddIOp::create(b, a[0], one)};
        })[0];
    memref::StoreOp::create(b, kept, ki, ValueRange{tok});
  });
  SmallVector<Value> constants;
  if (sharded)
    constants.push_back(l.capacity);
  launch(kern, {ceilDiv(g * s, tokenTile)}, binds, constants,
         perBatch(g * s, tokenTile));
}

} // namespace mlir::vmoe::lowering
