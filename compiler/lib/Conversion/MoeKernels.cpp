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

#include "LoweringState.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"

#include <cmath>
#include <numeric>

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

template <typename OpTy>
static OpTy singleUserOfType(Value v) {
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
  // The decomposed layer: router -> top_k -> assign_slots -> dispatch ->
  // expert_mlp -> combine. Other shapes of routing graphs are not fused.
  auto topK = singleUserOfType<TopKOp>(router.getGates());
  AssignSlotsOp assign;
  DispatchOp dispatch;
  ExpertMlpOp experts;
  CombineOp combine;
  if (topK) {
    for (Operation *u : topK.getIndices().getUsers()) {
      if (auto a = dyn_cast<AssignSlotsOp>(u))
        assign = a;
      else if (auto d = dyn_cast<DispatchOp>(u))
        dispatch = d;
      else if (auto c = dyn_cast<CombineOp>(u))
        combine = c;
    }
  }
  if (dispatch)
    experts = singleUserOfType<ExpertMlpOp>(dispatch.getBuffers());
  if (!topK || !assign || !dispatch || !experts || !combine ||
      dispatch.getInput() != router.getInput() ||
      dispatch.getSlots() != assign.getSlots() ||
      combine.getBuffers() != experts.getResult() ||
      combine.getSlots() != assign.getSlots() ||
      combine.getWeights() != topK.getValues())
    return router.emitOpError()
           << "is not part of a decomposed top-k MoE layer (router, top_k, "
              "assign_slots, dispatch, expert_mlp, combine); the CPU target "
              "lowers MoE layers in that form (run vmoe-decompose)";
  for (Operation *op : {topK.getOperation(), assign.getOperation(),
                        dispatch.getOperation(), experts.getOperation(),
                        combine.getOperation()})
    handled.insert(op);

  FailureOr<Value> x = lookup(router.getInput(), router);
  FailureOr<SmallVector<float>> wr = constantData(router.getKernel(), router);
  FailureOr<SmallVector<float>> w1 = constantData(experts.getW1(), experts),
                                b1 = constantData(experts.getB1(), experts),
                                w2 = constantData(experts.getW2(), experts),
                                b2 = constantData(experts.getB2(), experts);
  if (failed(x) || failed(wr) || failed(w1) || failed(b1) || failed(w2) ||
      failed(b2))
    return failure();

  ArrayRef<int64_t> xs = shapeOf(router.getInput());
  int64_t g = xs[0], s = xs[1], d = xs[2];
  int64_t e = assign.getNumExperts(), k = shapeOf(topK.getValues())[2];
  int64_t cap = assign.getMaxCapacity();
  int64_t m = shapeOf(experts.getW1())[2];
  bool bf16 = dispatch.getBf16Round();
  if (combine.getBf16Round() != bf16)
    return combine.emitOpError()
           << "rounds expert outputs differently from the dispatch; the CPU "
              "target needs both or neither";
  unsigned layer = moeLayers.size();
  Builder bld(ctx);
  // A smaller batch must keep whole groups: b * T tokens, a multiple of S.
  {
    int64_t t = tokensPerImage(router.getInput(), s);
    if (t < 1 || g * s != maxBatch * t)
      dynamicBatch = false;
    else
      batchMultiple = std::lcm(batchMultiple, s / std::gcd(s, t));
  }
  Type f32 = bld.getF32Type(), i32 = bld.getI32Type(),
       index = bld.getIndexType();

  // Run-time knobs: the capacity and the BPR flag become host arguments.
  auto addKnob = [&](StringRef kind) {
    unsigned pos = host.getNumArguments();
    (void)host.insertArgument(pos, index,
                              bld.getDictionaryAttr({
                                  bld.getNamedAttr("vmoe.knob", bld.getStringAttr(kind)),
                                  bld.getNamedAttr("vmoe.layer", bld.getI64IntegerAttr(layer)),
                              }),
                              host.getLoc());
    return host.getArgument(pos);
  };
  double defaultCf = 0.0, maxCf = 0.0;
  Value capacity;
  if (auto capOp = assign.getCapacity().getDefiningOp<CapacityOp>()) {
    FloatAttr cf;
    if (!matchPattern(capOp.getCapacityFactor(), m_Constant(&cf)))
      return capOp.emitOpError() << "expects a constant default capacity factor";
    defaultCf = cf.getValueAsDouble();
    maxCf = defaultCf;
    if (std::optional<APFloat> maxAttr = capOp.getMaxCapacityFactor())
      maxCf = maxAttr->convertToDouble();
    capacity = addKnob("capacity");
  } else {
    APInt value;
    if (!matchPattern(assign.getCapacity(), m_ConstantInt(&value)))
      return assign.emitOpError()
             << "expects a capacity from vmoe.capacity or a constant";
    capacity = hostIndex(value.getSExtValue());
  }
  bool defaultBpr = false;
  {
    APInt value;
    if (!matchPattern(assign.getBatchPriority(), m_ConstantInt(&value)))
      return assign.emitOpError() << "expects a constant default BPR flag";
    defaultBpr = !value.isZero();
  }
  Value bpr = addKnob("bpr");
  moeLayers.push_back(bld.getDictionaryAttr({
      bld.getNamedAttr("layer", bld.getI64IntegerAttr(layer)),
      bld.getNamedAttr("num_experts", bld.getI64IntegerAttr(e)),
      bld.getNamedAttr("k", bld.getI64IntegerAttr(k)),
      bld.getNamedAttr("group_size", bld.getI64IntegerAttr(s)),
      bld.getNamedAttr("num_groups", bld.getI64IntegerAttr(g)),
      bld.getNamedAttr("tokens_per_image",
                       bld.getI64IntegerAttr(tokensPerImage(router.getInput(), s))),
      bld.getNamedAttr("max_capacity", bld.getI64IntegerAttr(cap)),
      bld.getNamedAttr("capacity_factor", bld.getF64FloatAttr(defaultCf)),
      bld.getNamedAttr("max_capacity_factor", bld.getF64FloatAttr(maxCf)),
      bld.getNamedAttr("batch_priority", bld.getBoolAttr(defaultBpr)),
      bld.getNamedAttr("bf16_dispatch", bld.getBoolAttr(bf16)),
  }));

  // bf16 math: the expert inputs and the hidden activation are rounded to
  // bf16 (nearest even); vdpbf16ps reads them as bits (i16, see bf16Bits),
  // the f32 FMAs as f32 values (the same numbers: broadcast loads without
  // integer ops, 1.7x faster on AVX2 than splitting bits).
  const bool actBits = expertBf16Math && nativeBf16Dot;
  Type actType = actBits ? Type(IntegerType::get(ctx, 16)) : Type(f32);
  // Expert-up reads its rows in place, by slot -> token: from x, or from a
  // copy of x rounded to bf16 (bf16 dispatch, bf16 math) that the gates
  // kernel writes as it reads x for the router.
  const bool roundInputs = bf16 || expertBf16Math;
  Value expertInput = roundInputs ? alloc({g, s, d}, actType) : *x;

  Value wrBuf = createGlobal("router", MemRefType::get({d, e}, f32), *wr);
  Value topVal = alloc({g, s, k}, f32);
  Value topIdx = alloc({g, s, k}, i32);
  Value counts = alloc({g, e}, i32);
  Value kept = alloc({g * s}, i32);
  Value slots = alloc({g, s, k}, i32);
  Value slotToken = alloc({e, g, cap}, i32);
  Value slotGate = alloc({e, g, cap}, f32);
  Value order = alloc({g, s}, i32);
  Value orderTmp = alloc({g, s}, i32);

  // gates: logits = x W, softmax over all experts, top-k (ties to the lower
  // expert because only a strictly larger gate replaces the best so far).
  int64_t tokenTile = 32;
  {
    SmallVector<Value> binds = {*x, wrBuf, topVal, topIdx};
    if (roundInputs)
      binds.push_back(expertInput);
    Kernel kern = newKernel("moe_gates", binds, 0);
    ImplicitLocOpBuilder &b = kern.b();
    Value kx = kern.bindings[0], kw = kern.bindings[1], kv = kern.bindings[2],
          ki = kern.bindings[3];
    Value kxr = roundInputs ? kern.bindings[4] : Value();
    Value c0 = constIndex(b, 0), c1 = constIndex(b, 1);
    Value cE = constIndex(b, e), cD = constIndex(b, d);
    Value logits = memref::AllocaOp::create(b, MemRefType::get({e}, f32));
    Value begin = arith::MulIOp::create(b, kern.wx, constIndex(b, tokenTile));
    Value end = minIndex(
        b, arith::AddIOp::create(b, begin, constIndex(b, tokenTile)),
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
          memref::StoreOp::create(
              b, actBits ? bf16Bits(b, xv) : roundToBf16(b, xv), kxr,
              ValueRange{gi, si, dd});
        forLoop(b, c0, cE, c1, [&](ImplicitLocOpBuilder &b, Value ex) {
          Value w = memref::LoadOp::create(b, kw, ValueRange{dd, ex});
          Value l = memref::LoadOp::create(b, logits, ValueRange{ex});
          memref::StoreOp::create(
              b, arith::AddFOp::create(b, l, arith::MulFOp::create(b, xv, w)),
              logits, ValueRange{ex});
        });
      });
      Value mx = forLoopAcc(b, c0, cE, c1, {constF32(b, -INFINITY)},
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
        memref::StoreOp::create(b, arith::DivFOp::create(b, p, sum), logits,
                                ValueRange{ex});
      });
      // top-k by repeated selection; a chosen expert is marked with -1.
      for (int64_t j = 0; j < k; ++j) {
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
        memref::StoreOp::create(b, constF32(b, -2.0), logits, ValueRange{best[1]});
      }
    });
    launch(kern, {ceilDiv(g * s, tokenTile)}, binds, {},
           perBatch(g * s, tokenTile));
  }

  // assign: per group, the token order (BPR: stable sort by descending top-1
  // gate, a bottom-up merge sort) and the k-major slot assignment with
  // counters that keep counting past the capacity.
  {
    SmallVector<Value> binds = {topVal, topIdx, slots, slotToken, slotGate,
                                counts, kept, order, orderTmp};
    Kernel kern = newKernel("moe_assign", binds, 2);
    ImplicitLocOpBuilder &b = kern.b();
    Value kv = kern.bindings[0], ki = kern.bindings[1], ks = kern.bindings[2],
          kst = kern.bindings[3], ksg = kern.bindings[4], kc = kern.bindings[5],
          kk = kern.bindings[6], ko = kern.bindings[7], kt = kern.bindings[8];
    Value capArg = minIndex(b, kern.constants[0], constIndex(b, cap));
    Value bprOn = arith::CmpIOp::create(b, arith::CmpIPredicate::ne,
                                        kern.constants[1], constIndex(b, 0));
    Value gi = kern.wx;
    Value c0 = constIndex(b, 0), c1 = constIndex(b, 1), cS = constIndex(b, s);
    Value tokBase = arith::MulIOp::create(b, gi, cS);
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
      // Merge runs of `width` from src to dst; `inOrder` tracks which buffer
      // holds the current runs.
      auto key = [&](ImplicitLocOpBuilder &b, Value buf, Value pos) {
        Value tok = arith::IndexCastOp::create(
            b, index, memref::LoadOp::create(b, buf, ValueRange{gi, pos}));
        return memref::LoadOp::create(b, kv, ValueRange{gi, tok, c0}).getResult();
      };
      auto whileOp = scf::WhileOp::create(
          b, TypeRange{index, bld.getI1Type()},
          ValueRange{c1, arith::ConstantOp::create(b, bld.getBoolAttr(true))},
          [&](OpBuilder &nb, Location loc, ValueRange args) {
            ImplicitLocOpBuilder ib(loc, nb);
            Value more = arith::CmpIOp::create(ib, arith::CmpIPredicate::slt,
                                               args[0], cS);
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
                      Value geq = arith::CmpFOp::create(
                          b, arith::CmpFPredicate::OGE, key(b, src, li),
                          key(b, src, ri));
                      Value takeLeft = arith::AndIOp::create(
                          b, leftOk,
                          arith::OrIOp::create(
                              b, arith::XOrIOp::create(
                                     b, rightOk,
                                     arith::ConstantOp::create(b, bld.getBoolAttr(true))),
                              geq));
                      Value from = arith::SelectOp::create(b, takeLeft, li, ri);
                      Value tok = memref::LoadOp::create(b, src, ValueRange{gi, from});
                      memref::StoreOp::create(b, tok, dst, ValueRange{gi, out});
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
                  merge(b2, ko, kt);
                  scf::YieldOp::create(b2);
                },
                [&](OpBuilder &n2, Location l2) {
                  ImplicitLocOpBuilder b2(l2, n2);
                  merge(b2, kt, ko);
                  scf::YieldOp::create(b2);
                });
            Value flipped = arith::XOrIOp::create(
                ib, inOrder, arith::ConstantOp::create(ib, bld.getBoolAttr(true)));
            scf::YieldOp::create(ib, ValueRange{twice, flipped});
          });
      Value inOrder = whileOp.getResult(1);
      ifThen(b, arith::XOrIOp::create(
                    b, inOrder, arith::ConstantOp::create(b, bld.getBoolAttr(true))),
             [&](ImplicitLocOpBuilder &b) {
               forLoop(b, c0, cS, c1, [&](ImplicitLocOpBuilder &b, Value p) {
                 Value tok = memref::LoadOp::create(b, kt, ValueRange{gi, p});
                 memref::StoreOp::create(b, tok, ko, ValueRange{gi, p});
               });
             });
    });
    forLoop(b, c0, constIndex(b, k), c1, [&](ImplicitLocOpBuilder &b, Value j) {
      forLoop(b, c0, cS, c1, [&](ImplicitLocOpBuilder &b, Value p) {
        Value si = arith::IndexCastOp::create(
            b, index, memref::LoadOp::create(b, ko, ValueRange{gi, p}));
        Value ex = arith::IndexCastOp::create(
            b, index, memref::LoadOp::create(b, ki, ValueRange{gi, si, j}));
        Value posI32 = memref::LoadOp::create(b, kc, ValueRange{gi, ex});
        memref::StoreOp::create(b, arith::AddIOp::create(b, posI32, constI32(b, 1)),
                                kc, ValueRange{gi, ex});
        Value pos = arith::IndexCastOp::create(b, index, posI32);
        Value keep = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, pos, capArg);
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
    launch(kern, {g}, binds, {capacity, bpr}, perBatch(g * s, s));
  }

  if (expertBf16Math && (d % 2 != 0 || m % 2 != 0))
    return experts.emitOpError()
           << "bf16 expert math multiplies in k pairs and needs an even "
              "hidden size and MLP size, got "
           << d << " and " << m
           << "; compile this model with f32 expert math";
  auto [pw1, pb1] = packWeights("expert_w1", *w1, *b1, e, d, m,
                                 expertWeightsBf16, expertBf16Math);
  auto [pw2, pb2] = packWeights("expert_w2", *w2, *b2, e, m, d,
                                 expertWeightsBf16, expertBf16Math);
  // The expert kernels run one workgroup per (row tile, panel block, expert
  // x group) and return at once past the filled slots.
  // Groups past the call's batch hold stale counts: they have no rows.
  auto filledRows = [&](Kernel &kern, Value kCounts, Value capV, Value ex,
                        Value gi) {
    ImplicitLocOpBuilder &b = kern.b();
    Value groups =
        arith::DivUIOp::create(b, validExtent(kern, g * s), constIndex(b, s));
    Value live = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, gi, groups);
    Value safeGi = arith::SelectOp::create(b, live, gi, constIndex(b, 0));
    Value n = arith::IndexCastOp::create(
        b, index, memref::LoadOp::create(b, kCounts, ValueRange{safeGi, ex}));
    n = arith::SelectOp::create(b, live, n, constIndex(b, 0));
    return minIndex(b, n, minIndex(b, capV, constIndex(b, cap)));
  };
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
  int64_t bBytes = expertWeightsBf16 ? 2 : 4;
  auto narrowPanelTile = [&](int64_t n, int64_t kDim) {
    return std::min(panelTileFor(n),
                    std::max<int64_t>(1, (256 << 10) /
                                             (kDim * tiling.nr * bBytes)));
  };
  int64_t upPanelTile = narrowPanelTile(m, d);
  int64_t downPanelTile = narrowPanelTile(d, m);
  Value hidden = alloc({e, g, cap, m}, actType);
  {
    // GEMM1 + bias + GELU over the rows of its slots, each read in place
    // from its token's row (bf16-rounded already where the layer needs it).
    SmallVector<Value> binds = {expertInput, slotToken, counts, pw1, pb1,
                                hidden};
    Kernel kern = newKernel("moe_expert_up", binds, 1);
    ImplicitLocOpBuilder &b = kern.b();
    Value kx = kern.bindings[0], kst = kern.bindings[1], kc = kern.bindings[2];
    Value ex = arith::DivUIOp::create(b, kern.wz, constIndex(b, g));
    Value gi = arith::RemUIOp::create(b, kern.wz, constIndex(b, g));
    Value rows = filledRows(kern, kc, kern.constants[0], ex, gi);
    Value rowBegin = arith::MulIOp::create(b, kern.wx, constIndex(b, rowTile));
    Value rowEnd = minIndex(
        b, arith::AddIOp::create(b, rowBegin, constIndex(b, rowTile)), rows);
    Value any = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, rowBegin, rowEnd);
    ifThen(b, any, [&](ImplicitLocOpBuilder &b) {
      int64_t panels = ceilDiv(m, tiling.nr);
      Value panelBegin =
          arith::MulIOp::create(b, kern.wy, constIndex(b, upPanelTile));
      Value panelEnd = minIndex(
          b, arith::AddIOp::create(b, panelBegin, constIndex(b, upPanelTile)),
          constIndex(b, panels));
      auto tokenOf = [&](ImplicitLocOpBuilder &b, Value row) -> Value {
        return arith::IndexCastOp::create(
            b, b.getIndexType(),
            memref::LoadOp::create(b, kst, ValueRange{ex, gi, row}));
      };
      auto aIndex = [&](ImplicitLocOpBuilder &, Value token, Value kk) {
        return SmallVector<Value>{gi, token, kk};
      };
      auto cIndex = [&](ImplicitLocOpBuilder &, Value row, Value col) {
        return SmallVector<Value>{ex, gi, row, col};
      };
      GemmOperands ops;
      ops.n = m;
      ops.k = d;
      ops.bf16Pairs = expertBf16Math;
      ops.a = kx;
      ops.aRow = tokenOf;
      ops.aIndex = aIndex;
      ops.b = kern.bindings[3];
      ops.bPrefix = {ex};
      ops.bias = kern.bindings[4];
      ops.biasPrefix = {ex};
      ops.activation = Activation::Gelu;
      // The GELU output as bf16 values (stored as bits with vdpbf16ps).
      ops.bf16RoundOutput = expertBf16Math && !actBits;
      ops.c = kern.bindings[5];
      ops.cIndex = cIndex;
      emitGemmBlock(b, tiling, ops, rowBegin, rowEnd, panelBegin, panelEnd);
    });
    launch(kern,
           {ceilDiv(cap, rowTile), ceilDiv(ceilDiv(m, tiling.nr), upPanelTile),
            e * g},
           binds, {capacity});
  }
  Value expertOut = alloc({e, g, cap, d}, f32);
  {
    SmallVector<Value> binds = {hidden, slotGate, counts, pw2, pb2, expertOut};
    Kernel kern = newKernel("moe_expert_down", binds, 1);
    ImplicitLocOpBuilder &b = kern.b();
    Value ex = arith::DivUIOp::create(b, kern.wz, constIndex(b, g));
    Value gi = arith::RemUIOp::create(b, kern.wz, constIndex(b, g));
    Value rows = filledRows(kern, kern.bindings[2], kern.constants[0], ex, gi);
    Value rowBegin = arith::MulIOp::create(b, kern.wx, constIndex(b, rowTile));
    Value rowEnd = minIndex(
        b, arith::AddIOp::create(b, rowBegin, constIndex(b, rowTile)), rows);
    Value any = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, rowBegin, rowEnd);
    ifThen(b, any, [&](ImplicitLocOpBuilder &b) {
      int64_t panels = ceilDiv(d, tiling.nr);
      Value panelBegin =
          arith::MulIOp::create(b, kern.wy, constIndex(b, downPanelTile));
      Value panelEnd = minIndex(
          b, arith::AddIOp::create(b, panelBegin, constIndex(b, downPanelTile)),
          constIndex(b, panels));
      Value kh = kern.bindings[0], kg = kern.bindings[1];
      auto aIndex = [&](ImplicitLocOpBuilder &, Value row, Value kk) {
        return SmallVector<Value>{ex, gi, row, kk};
      };
      auto cIndex = [&](ImplicitLocOpBuilder &, Value row, Value col) {
        return SmallVector<Value>{ex, gi, row, col};
      };
      auto gate = [&](ImplicitLocOpBuilder &b, Value row) -> Value {
        return memref::LoadOp::create(b, kg, ValueRange{ex, gi, row});
      };
      GemmOperands ops;
      ops.n = d;
      ops.k = m;
      ops.bf16Pairs = expertBf16Math;
      ops.a = kh;
      ops.aIndex = aIndex;
      ops.b = kern.bindings[3];
      ops.bPrefix = {ex};
      ops.bias = kern.bindings[4];
      ops.biasPrefix = {ex};
      ops.bf16RoundOutput = bf16;
      ops.rowScale = gate;
      ops.c = kern.bindings[5];
      ops.cIndex = cIndex;
      emitGemmBlock(b, tiling, ops, rowBegin, rowEnd, panelBegin, panelEnd);
    });
    launch(kern,
           {ceilDiv(cap, rowTile), ceilDiv(ceilDiv(d, tiling.nr), downPanelTile),
            e * g},
           binds, {capacity});
  }
  // combine: out[token] = sum over kept assignments of gate * expert output
  // (the gate is already applied); dropped tokens get exactly 0.
  auto [out, residual] = outputFor(combine.getResult(), combine);
  {
    SmallVector<Value> binds = {expertOut, topIdx, slots, out};
    if (residual)
      binds.push_back(residual);
    Kernel kern = newKernel(residual ? "moe_combine_residual" : "moe_combine",
                            binds, 0);
    ImplicitLocOpBuilder &b = kern.b();
    Value ky = kern.bindings[0], ki = kern.bindings[1], ks = kern.bindings[2],
          ko = kern.bindings[3];
    Value kr = residual ? kern.bindings[4] : Value();
    Value c0 = constIndex(b, 0), c1 = constIndex(b, 1), cD = constIndex(b, d);
    Value begin = arith::MulIOp::create(b, kern.wx, constIndex(b, tokenTile));
    Value end = minIndex(
        b, arith::AddIOp::create(b, begin, constIndex(b, tokenTile)),
        validExtent(kern, g * s));
    forLoop(b, begin, end, c1, [&](ImplicitLocOpBuilder &b, Value tok) {
      Value gi = arith::DivUIOp::create(b, tok, constIndex(b, s));
      Value si = arith::RemUIOp::create(b, tok, constIndex(b, s));
      // Start from the residual when the block's add is fused here.
      forLoop(b, c0, cD, c1, [&](ImplicitLocOpBuilder &b, Value dd) {
        Value init = kr ? memref::LoadOp::create(b, kr, ValueRange{gi, si, dd})
                              .getResult()
                        : constF32(b, 0.0);
        memref::StoreOp::create(b, init, ko, ValueRange{gi, si, dd});
      });
      for (int64_t j = 0; j < k; ++j) {
        Value jj = constIndex(b, j);
        Value slot = memref::LoadOp::create(b, ks, ValueRange{gi, si, jj});
        Value keep = arith::CmpIOp::create(b, arith::CmpIPredicate::sge, slot,
                                           constI32(b, 0));
        ifThen(b, keep, [&](ImplicitLocOpBuilder &b) {
          Value ex = arith::IndexCastOp::create(
              b, index, memref::LoadOp::create(b, ki, ValueRange{gi, si, jj}));
          Value sl = arith::IndexCastOp::create(b, index, slot);
          forLoop(b, c0, cD, c1, [&](ImplicitLocOpBuilder &b, Value dd) {
            Value y = memref::LoadOp::create(b, ky, ValueRange{ex, gi, sl, dd});
            Value o = memref::LoadOp::create(b, ko, ValueRange{gi, si, dd});
            memref::StoreOp::create(b, arith::AddFOp::create(b, o, y), ko,
                                    ValueRange{gi, si, dd});
          });
        });
      }
    });
    launch(kern, {ceilDiv(g * s, tokenTile)}, binds, {},
           perBatch(g * s, tokenTile));
  }
  RoutingStatsOp::create(*hb, counts, kept, layer);
  (void)slots;
  return success();
}

} // namespace mlir::vmoe::lowering
