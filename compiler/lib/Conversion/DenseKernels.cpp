//===- DenseKernels.cpp - the ViT kernels around the MoE ------------------===//
//
// Layer norm, the MLP, attention, patch embedding, class token, position
// embeddings (learned and sincos2d) and the classifier head, plus the dense
// GEMM and elementwise kernels they (and the host schedule) use.
//
//===----------------------------------------------------------------------===//

#include "LoweringState.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <cmath>

namespace mlir::vmoe::lowering {

void Lowering::emitDenseGemm(StringRef name, Value a, const GemmWeights &w,
                             int64_t n, Activation act, Value c,
                             Value residual) {
  a = flatten2d(a);
  c = flatten2d(c);
  if (residual)
    residual = flatten2d(residual);
  int64_t m = shapeOf(a)[0], k = shapeOf(a)[1];
  int64_t panels = ceilDiv(n, tiling.nr);
  const bool int8 = static_cast<bool>(w.scales);
  Value aScales;
  if (int8) {
    // int8: the rows quantized first, by a kernel of their own.
    Value q = alloc({m, k}, int8ActType(ctx, int8Dot));
    aScales = alloc({m}, Float32Type::get(ctx));
    emitQuantizeRows((name + "_quantize").str(), a, q, aScales);
    a = q;
  }
  SmallVector<Value> binds = {a, w.b};
  for (Value v : {w.bias, aScales, w.scales, w.colSums, residual})
    if (v)
      binds.push_back(v);
  binds.push_back(c);
  Kernel kern = newKernel(name, binds, 0);
  ImplicitLocOpBuilder &b = kern.b();
  unsigned i = 0;
  Value kA = kern.bindings[i++], kB = kern.bindings[i++];
  auto next = [&](Value v) { return v ? kern.bindings[i++] : Value(); };
  Value kBias = next(w.bias), kAScales = next(aScales),
        kWScales = next(w.scales), kSums = next(w.colSums);
  Value kRes = next(residual);
  Value kC = kern.bindings[i++];

  int64_t rowTile = tiling.rowTile;
  Value rowBegin = arith::MulIOp::create(b, kern.wx, constIndex(b, rowTile));
  Value rowEnd =
      minIndex(b, arith::AddIOp::create(b, rowBegin, constIndex(b, rowTile)),
               validExtent(kern, m));
  Value panelBegin =
      arith::MulIOp::create(b, kern.wy, constIndex(b, tiling.panelTile));
  Value panelEnd = minIndex(
      b, arith::AddIOp::create(b, panelBegin, constIndex(b, tiling.panelTile)),
      constIndex(b, panels));
  auto aIndex = [&](ImplicitLocOpBuilder &, Value row, Value kk) {
    return SmallVector<Value>{row, kk};
  };
  auto cIndex = [&](ImplicitLocOpBuilder &, Value row, Value col) {
    return SmallVector<Value>{row, col};
  };
  auto aScale = [&](ImplicitLocOpBuilder &b, Value row) -> Value {
    return memref::LoadOp::create(b, kAScales, ValueRange{row});
  };
  GemmOperands ops;
  ops.n = n;
  ops.k = k;
  if (int8) {
    ops.int8 = int8Dot;
    ops.aScale = aScale;
    ops.wScale = kWScales;
    ops.colSums = kSums;
  }
  ops.a = kA;
  ops.aIndex = aIndex;
  ops.b = kB;
  ops.bias = kBias;
  ops.activation = act;
  ops.residual = kRes;
  ops.c = kC;
  ops.cIndex = cIndex;
  emitGemmBlock(b, tiling, ops, rowBegin, rowEnd, panelBegin, panelEnd);
  launch(kern, {ceilDiv(m, rowTile), ceilDiv(panels, tiling.panelTile)}, binds,
         {}, perBatch(m, rowTile));
}

void Lowering::emitElementwise(StringRef name, Value x, Value y, Value out,
                               Elementwise kind) {
  // Flat views: elementwise kernels see 1-D buffers.
  auto flat = [&](Value v) -> Value {
    auto type = cast<MemRefType>(v.getType());
    if (type.getRank() == 1)
      return v;
    SmallVector<ReassociationIndices> all(1);
    for (int64_t i = 0; i < type.getRank(); ++i)
      all[0].push_back(i);
    return memref::CollapseShapeOp::create(*hb, v, all);
  };
  SmallVector<Value> binds = {flat(x)};
  if (y)
    binds.push_back(flat(y));
  binds.push_back(flat(out));
  int64_t n = numElements(out), chunk = 4096;
  Kernel kern = newKernel(name, binds, 0);
  ImplicitLocOpBuilder &b = kern.b();
  Value begin = arith::MulIOp::create(b, kern.wx, constIndex(b, chunk));
  Value end = minIndex(b, arith::AddIOp::create(b, begin, constIndex(b, chunk)),
                       validExtent(kern, n));
  forLoop(
      b, begin, end, constIndex(b, 1), [&](ImplicitLocOpBuilder &b, Value i) {
        Value v = memref::LoadOp::create(b, kern.bindings[0], ValueRange{i});
        if (kind == Elementwise::Add) {
          Value w = memref::LoadOp::create(b, kern.bindings[1], ValueRange{i});
          v = arith::AddFOp::create(b, v, w);
        } else if (kind == Elementwise::Gelu) {
          v = geluTanh(b, v);
        }
        memref::StoreOp::create(b, v, kern.bindings.back(), ValueRange{i});
      });
  launch(kern, {ceilDiv(n, chunk)}, binds, {}, perBatch(n, chunk));
}

LogicalResult Lowering::lowerLayerNorm(LayerNormOp op) {
  FailureOr<Value> x = lookup(op.getInput(), op);
  FailureOr<Value> scale = lookup(op.getScale(), op);
  FailureOr<Value> bias = lookup(op.getBias(), op);
  if (failed(x) || failed(scale) || failed(bias))
    return failure();
  Value out = allocLike(op.getResult());
  emitLayerNorm(*x, *scale, *bias, out, op.getEpsilon().convertToDouble());
  return success();
}

void Lowering::emitLayerNorm(Value x, Value scale, Value bias, Value out,
                             double eps) {
  Value x2 = flatten2d(x), out2 = flatten2d(out);
  int64_t rows = shapeOf(x2)[0], d = shapeOf(x2)[1], rowTile = 16;
  SmallVector<Value> binds = {x2, scale, bias, out2};
  Kernel kern = newKernel("layer_norm", binds, 0);
  ImplicitLocOpBuilder &b = kern.b();
  Value kx = kern.bindings[0], ks = kern.bindings[1], kb = kern.bindings[2],
        ko = kern.bindings[3];
  Value c0 = constIndex(b, 0), c1 = constIndex(b, 1), cd = constIndex(b, d);
  Value begin = arith::MulIOp::create(b, kern.wx, constIndex(b, rowTile));
  Value end =
      minIndex(b, arith::AddIOp::create(b, begin, constIndex(b, rowTile)),
               validExtent(kern, rows));
  auto fast = arith::FastMathFlagsAttr::get(
      ctx, arith::FastMathFlags::reassoc | arith::FastMathFlags::contract);
  forLoop(b, begin, end, c1, [&](ImplicitLocOpBuilder &b, Value r) {
    Value zero = constF32(b, 0.0);
    SmallVector<Value> sums =
        forLoopAcc(b, c0, cd, c1, {zero, zero},
                   [&](ImplicitLocOpBuilder &b, Value i, ValueRange acc) {
                     Value v = memref::LoadOp::create(b, kx, ValueRange{r, i});
                     Value s = arith::AddFOp::create(b, acc[0], v, fast);
                     Value sq = arith::AddFOp::create(
                         b, acc[1], arith::MulFOp::create(b, v, v, fast), fast);
                     return SmallVector<Value>{s, sq};
                   });
    // flax: mu = E[x], var = max(0, E[x^2] - mu^2).
    Value invD = constF32(b, 1.0 / static_cast<double>(d));
    Value mean = arith::MulFOp::create(b, sums[0], invD);
    Value meanSq = arith::MulFOp::create(b, sums[1], invD);
    Value var = arith::MaximumFOp::create(
        b, zero,
        arith::SubFOp::create(b, meanSq, arith::MulFOp::create(b, mean, mean)));
    Value inv = math::RsqrtOp::create(
        b, arith::AddFOp::create(b, var, constF32(b, eps)));
    forLoop(b, c0, cd, c1, [&](ImplicitLocOpBuilder &b, Value i) {
      Value v = memref::LoadOp::create(b, kx, ValueRange{r, i});
      Value s = memref::LoadOp::create(b, ks, ValueRange{i});
      Value bb = memref::LoadOp::create(b, kb, ValueRange{i});
      Value y = arith::AddFOp::create(
          b,
          arith::MulFOp::create(b, arith::SubFOp::create(b, v, mean),
                                arith::MulFOp::create(b, inv, s)),
          bb);
      memref::StoreOp::create(b, y, ko, ValueRange{r, i});
    });
  });
  launch(kern, {ceilDiv(rows, rowTile)}, binds, {}, perBatch(rows, rowTile));
}

LogicalResult Lowering::lowerMlp(MlpOp op) {
  FailureOr<Value> x = lookup(op.getInput(), op);
  FailureOr<WeightRef> w1 = weightOperand(op.getW1(), op),
                       b1 = weightOperand(op.getB1(), op),
                       w2 = weightOperand(op.getW2(), op),
                       b2 = weightOperand(op.getB2(), op);
  if (failed(x) || failed(w1) || failed(b1) || failed(w2) || failed(b2))
    return failure();
  int64_t d = shapeOf(op.getW1())[0], m = shapeOf(op.getW1())[1];
  int64_t rows = numElements(op.getInput()) / d;
  FailureOr<GemmWeights> pw1 =
      packGemmWeights("mlp_w1", {&*w1}, {&*b1}, 1, d, m, denseInt8, op);
  FailureOr<GemmWeights> pw2 =
      packGemmWeights("mlp_w2", {&*w2}, {&*b2}, 1, m, d, denseInt8, op);
  if (failed(pw1) || failed(pw2))
    return failure();
  Value hidden = alloc({rows, m}, Float32Type::get(ctx));
  emitDenseGemm("mlp_up", *x, *pw1, m, Activation::Gelu, hidden);
  auto [out, residual] = outputFor(op.getResult(), op);
  emitDenseGemm("mlp_down", hidden, *pw2, d, Activation::None, out, residual);
  return success();
}

/// The attention kernel's values: one (image, head) per workgroup, the
/// qkv rows it reads, the context rows it writes and its scratch views.
struct AttentionScratch {
  int64_t t = 0, dh = 0, nr = 0, kPanels = 0, vPanels = 0;
  /// qkv (B * T, 3 D) in, context (B * T, D) out.
  Value kq, ko;
  /// Scratch: K^T and V packed into panels, S = q k^T, 1 / row sums.
  Value kPack, sMat, vPack, invSum;
  /// The image's first row, the head's columns of q, k and v.
  Value rowBase, qCol, kCol, vCol;
  Value c0, c1, cT, cNr, zero;
};

/// Pack K^T: kPack[p][e][l] = k[token p*nr + l][e], zero past T.
static void emitPackKeys(ImplicitLocOpBuilder &b, const AttentionScratch &a) {
  Value c0 = a.c0, c1 = a.c1, cT = a.cT, cNr = a.cNr;
  int64_t t = a.t, dh = a.dh;
  forLoop(b, c0, constIndex(b, a.kPanels), c1,
          [&](ImplicitLocOpBuilder &b, Value p) {
            forLoop(b, c0, cNr, c1, [&](ImplicitLocOpBuilder &b, Value l) {
              Value tok =
                  arith::AddIOp::create(b, arith::MulIOp::create(b, p, cNr), l);
              Value valid =
                  arith::CmpIOp::create(b, arith::CmpIPredicate::slt, tok, cT);
              Value row = arith::AddIOp::create(
                  b, a.rowBase, minIndex(b, tok, constIndex(b, t - 1)));
              forLoop(
                  b, c0, constIndex(b, dh), c1,
                  [&](ImplicitLocOpBuilder &b, Value e) {
                    Value v = memref::LoadOp::create(
                        b, a.kq,
                        ValueRange{row, arith::AddIOp::create(b, a.kCol, e)});
                    memref::StoreOp::create(
                        b, arith::SelectOp::create(b, valid, v, a.zero),
                        a.kPack, ValueRange{p, e, l});
                  });
            });
          });
}

/// Pack V: vPack[p][j][l] = v[token j][p*nr + l], zero past Dh.
static void emitPackValues(ImplicitLocOpBuilder &b, const AttentionScratch &a) {
  Value c0 = a.c0, c1 = a.c1, cT = a.cT, cNr = a.cNr;
  int64_t dh = a.dh;
  forLoop(b, c0, constIndex(b, a.vPanels), c1,
          [&](ImplicitLocOpBuilder &b, Value p) {
            forLoop(b, c0, cT, c1, [&](ImplicitLocOpBuilder &b, Value j) {
              Value row = arith::AddIOp::create(b, a.rowBase, j);
              forLoop(b, c0, cNr, c1, [&](ImplicitLocOpBuilder &b, Value l) {
                Value e = arith::AddIOp::create(
                    b, arith::MulIOp::create(b, p, cNr), l);
                Value valid = arith::CmpIOp::create(
                    b, arith::CmpIPredicate::slt, e, constIndex(b, dh));
                Value col = arith::AddIOp::create(
                    b, a.vCol, minIndex(b, e, constIndex(b, dh - 1)));
                Value v = memref::LoadOp::create(b, a.kq, ValueRange{row, col});
                memref::StoreOp::create(
                    b, arith::SelectOp::create(b, valid, v, a.zero), a.vPack,
                    ValueRange{p, j, l});
              });
            });
          });
}

/// S = (q k^T) / sqrt(Dh); flax scales q first, the same up to rounding.
static void emitScores(ImplicitLocOpBuilder &b, const GemmTiling &tiling,
                       const AttentionScratch &a) {
  Value scale = constF32(b, 1.0 / std::sqrt(static_cast<double>(a.dh)));
  auto aIndex = [&](ImplicitLocOpBuilder &b, Value row, Value e) {
    return SmallVector<Value>{arith::AddIOp::create(b, a.rowBase, row),
                              arith::AddIOp::create(b, a.qCol, e)};
  };
  auto cIndex = [&](ImplicitLocOpBuilder &, Value row, Value col) {
    return SmallVector<Value>{row, col};
  };
  auto rowScale = [&](ImplicitLocOpBuilder &, Value) { return scale; };
  GemmOperands ops;
  ops.n = a.t;
  ops.k = a.dh;
  ops.a = a.kq;
  ops.aIndex = aIndex;
  ops.b = a.kPack;
  ops.rowScale = rowScale;
  ops.c = a.sMat;
  ops.cIndex = cIndex;
  emitGemmBlock(b, tiling, ops, a.c0, a.cT, a.c0, constIndex(b, a.kPanels));
}

/// Softmax numerators in place (whole vectors, then a scalar tail); 1 / row
/// sum kept for the second GEMM.
static void emitSoftmaxRows(ImplicitLocOpBuilder &b, const GemmTiling &tiling,
                            const AttentionScratch &a) {
  Value c0 = a.c0, c1 = a.c1, cT = a.cT, sMat = a.sMat;
  int64_t vw = tiling.vectorWidth, tVec = a.t / vw * vw;
  auto vecType = VectorType::get({vw}, b.getF32Type());
  Value cVw = constIndex(b, vw), cTVec = constIndex(b, tVec);
  forLoop(b, c0, cT, c1, [&](ImplicitLocOpBuilder &b, Value i) {
    Value negInf = constF32(b, -INFINITY);
    Value mxVec = forLoopAcc(
        b, c0, cTVec, cVw, {vector::BroadcastOp::create(b, vecType, negInf)},
        [&](ImplicitLocOpBuilder &b, Value j, ValueRange m) {
          Value v = vector::LoadOp::create(b, vecType, sMat, ValueRange{i, j});
          return SmallVector<Value>{arith::MaximumFOp::create(b, m[0], v)};
        })[0];
    Value mx = forLoopAcc(
        b, cTVec, cT, c1,
        {vector::ReductionOp::create(b, vector::CombiningKind::MAXIMUMF,
                                     mxVec)},
        [&](ImplicitLocOpBuilder &b, Value j, ValueRange m) {
          Value v = memref::LoadOp::create(b, sMat, ValueRange{i, j});
          return SmallVector<Value>{arith::MaximumFOp::create(b, m[0], v)};
        })[0];
    Value mxSplat = vector::BroadcastOp::create(b, vecType, mx);
    Value sumVec = forLoopAcc(
        b, c0, cTVec, cVw,
        {vector::BroadcastOp::create(b, vecType, constF32(b, 0.0))},
        [&](ImplicitLocOpBuilder &b, Value j, ValueRange acc) {
          Value v = vector::LoadOp::create(b, vecType, sMat, ValueRange{i, j});
          Value e =
              math::ExpOp::create(b, arith::SubFOp::create(b, v, mxSplat));
          vector::StoreOp::create(b, e, sMat, ValueRange{i, j});
          return SmallVector<Value>{arith::AddFOp::create(b, acc[0], e)};
        })[0];
    Value sum = forLoopAcc(
        b, cTVec, cT, c1,
        {vector::ReductionOp::create(b, vector::CombiningKind::ADD, sumVec)},
        [&](ImplicitLocOpBuilder &b, Value j, ValueRange acc) {
          Value v = memref::LoadOp::create(b, sMat, ValueRange{i, j});
          Value e = math::ExpOp::create(b, arith::SubFOp::create(b, v, mx));
          memref::StoreOp::create(b, e, sMat, ValueRange{i, j});
          return SmallVector<Value>{arith::AddFOp::create(b, acc[0], e)};
        })[0];
    memref::StoreOp::create(b, arith::DivFOp::create(b, constF32(b, 1.0), sum),
                            a.invSum, ValueRange{i});
  });
}

/// O = P V / row sum, written to this head's columns.
static void emitWeightedValues(ImplicitLocOpBuilder &b,
                               const GemmTiling &tiling,
                               const AttentionScratch &a) {
  auto aIndex = [&](ImplicitLocOpBuilder &, Value row, Value j) {
    return SmallVector<Value>{row, j};
  };
  auto cIndex = [&](ImplicitLocOpBuilder &b, Value row, Value col) {
    return SmallVector<Value>{arith::AddIOp::create(b, a.rowBase, row),
                              arith::AddIOp::create(b, a.qCol, col)};
  };
  auto rowScale = [&](ImplicitLocOpBuilder &b, Value row) -> Value {
    return memref::LoadOp::create(b, a.invSum, ValueRange{row});
  };
  GemmOperands ops;
  ops.n = a.dh;
  ops.k = a.t;
  ops.a = a.sMat;
  ops.aIndex = aIndex;
  ops.b = a.vPack;
  ops.rowScale = rowScale;
  ops.c = a.ko;
  ops.cIndex = cIndex;
  emitGemmBlock(b, tiling, ops, a.c0, a.cT, a.c0, constIndex(b, a.vPanels));
}

void Lowering::emitAttentionKernel(Value qkvBuf, Value ctxBuf, int64_t batch,
                                   int64_t t, int64_t d, int64_t heads,
                                   int64_t dh) {
  // softmax(q k^T / sqrt(Dh)) v per (image, head) as two register-blocked
  // GEMMs in the worker's scratch: K^T and V are packed into panels, S = q
  // k^T is scaled in the epilogue, softmax runs on the rows of S, and P V is
  // scaled by 1 / row sum in the second epilogue.
  Type f32 = Float32Type::get(ctx);
  AttentionScratch a;
  a.t = t;
  a.dh = dh;
  a.nr = tiling.nr;
  int64_t nr = a.nr;
  a.kPanels = ceilDiv(t, nr);
  a.vPanels = ceilDiv(dh, nr);
  int64_t kPackBytes = a.kPanels * dh * nr * 4, sBytes = t * t * 4;
  int64_t vPackBytes = a.vPanels * t * nr * 4, sumBytes = t * 4;
  int64_t scratch = kPackBytes + sBytes + vPackBytes + sumBytes;
  SmallVector<Value> binds = {qkvBuf, ctxBuf};
  Kernel kern = newKernel("attention", binds, 0, scratch);
  ImplicitLocOpBuilder &b = kern.b();
  a.kq = kern.bindings[0];
  a.ko = kern.bindings[1];
  a.c0 = constIndex(b, 0);
  a.c1 = constIndex(b, 1);
  a.cT = constIndex(b, t);
  a.cNr = constIndex(b, nr);
  auto view = [&](int64_t offset, ArrayRef<int64_t> shape) -> Value {
    return memref::ViewOp::create(b, MemRefType::get(shape, f32), kern.scratch,
                                  constIndex(b, offset), ValueRange{});
  };
  a.kPack = view(0, {a.kPanels, dh, nr});
  a.sMat = view(kPackBytes, {t, t});
  a.vPack = view(kPackBytes + sBytes, {a.vPanels, t, nr});
  a.invSum = view(kPackBytes + sBytes + vPackBytes, {t});
  Value image = arith::DivUIOp::create(b, kern.wx, constIndex(b, heads));
  Value head = arith::RemUIOp::create(b, kern.wx, constIndex(b, heads));
  a.rowBase = arith::MulIOp::create(b, image, a.cT);
  a.qCol = arith::MulIOp::create(b, head, constIndex(b, dh));
  a.kCol = arith::AddIOp::create(b, a.qCol, constIndex(b, d));
  a.vCol = arith::AddIOp::create(b, a.qCol, constIndex(b, 2 * d));
  a.zero = constF32(b, 0.0);
  emitPackKeys(b, a);
  emitPackValues(b, a);
  emitScores(b, tiling, a);
  emitSoftmaxRows(b, tiling, a);
  emitWeightedValues(b, tiling, a);
  launch(kern, {batch * heads}, binds, {}, perBatch(batch * heads, 1));
}

LogicalResult Lowering::lowerAttention(AttentionOp op) {
  FailureOr<Value> x = lookup(op.getInput(), op);
  if (failed(x))
    return failure();
  ArrayRef<int64_t> qShape = shapeOf(op.getQueryKernel());
  int64_t d = qShape[0], heads = qShape[1], dh = qShape[2];
  int64_t batch = shapeOf(op.getInput())[0], t = shapeOf(op.getInput())[1];
  // Q, K and V kernels side by side as one (D, 3D) matrix: one GEMM reads
  // x once.
  Value kernels[3] = {op.getQueryKernel(), op.getKeyKernel(),
                      op.getValueKernel()};
  Value biases[3] = {op.getQueryBias(), op.getKeyBias(), op.getValueBias()};
  WeightRef qkv[3], qkvBias[3];
  for (int part = 0; part < 3; ++part) {
    FailureOr<WeightRef> w = weightOperand(kernels[part], op);
    FailureOr<WeightRef> bias = weightOperand(biases[part], op);
    if (failed(w) || failed(bias))
      return failure();
    qkv[part] = std::move(*w);
    qkvBias[part] = std::move(*bias);
  }
  FailureOr<WeightRef> wo = weightOperand(op.getOutKernel(), op);
  FailureOr<WeightRef> bo = weightOperand(op.getOutBias(), op);
  if (failed(wo) || failed(bo))
    return failure();
  FailureOr<GemmWeights> pqkv = packGemmWeights(
      "attn_qkv", {&qkv[0], &qkv[1], &qkv[2]},
      {&qkvBias[0], &qkvBias[1], &qkvBias[2]}, 1, d, 3 * d, denseInt8, op);
  FailureOr<GemmWeights> pwo =
      packGemmWeights("attn_out", {&*wo}, {&*bo}, 1, d, d, denseInt8, op);
  if (failed(pqkv) || failed(pwo))
    return failure();
  Type f32 = Float32Type::get(ctx);
  Value qkvBuf = alloc({batch * t, 3 * d}, f32);
  emitDenseGemm("attn_qkv", *x, *pqkv, 3 * d, Activation::None, qkvBuf);
  Value ctxBuf = alloc({batch * t, d}, f32);
  emitAttentionKernel(qkvBuf, ctxBuf, batch, t, d, heads, dh);
  auto [out, residual] = outputFor(op.getResult(), op);
  emitDenseGemm("attn_out", ctxBuf, *pwo, d, Activation::None, out, residual);
  return success();
}

LogicalResult Lowering::lowerPatchEmbed(PatchEmbedOp op) {
  FailureOr<Value> images = lookup(op.getImages(), op);
  FailureOr<WeightRef> w = weightOperand(op.getKernel(), op);
  FailureOr<WeightRef> bias = weightOperand(op.getBias(), op);
  if (failed(images) || failed(w) || failed(bias))
    return failure();
  ArrayRef<int64_t> is = shapeOf(op.getImages()), ks = shapeOf(op.getKernel());
  int64_t batch = is[0], h = is[1], wd = is[2], ch = is[3];
  int64_t ph = ks[0], pw = ks[1], d = ks[3];
  int64_t gh = h / ph, gw = wd / pw, depth = ph * pw * ch;
  // Patches as rows in (row, col, channel) order: the HWIO kernel reshaped to
  // (ph * pw * C, D) is then an ordinary GEMM operand.
  Value patches = alloc({batch * gh * gw, depth}, Float32Type::get(ctx));
  SmallVector<Value> binds = {*images, patches};
  Kernel kern = newKernel("im2col", binds, 0);
  {
    ImplicitLocOpBuilder &b = kern.b();
    Value ki = kern.bindings[0], kp = kern.bindings[1];
    Value c0 = constIndex(b, 0), c1 = constIndex(b, 1);
    Value img = arith::DivUIOp::create(b, kern.wx, constIndex(b, gh));
    Value gy = arith::RemUIOp::create(b, kern.wx, constIndex(b, gh));
    forLoop(
        b, c0, constIndex(b, gw), c1, [&](ImplicitLocOpBuilder &b, Value gx) {
          Value row = arith::AddIOp::create(
              b,
              arith::MulIOp::create(
                  b,
                  arith::AddIOp::create(
                      b, arith::MulIOp::create(b, img, constIndex(b, gh)), gy),
                  constIndex(b, gw)),
              gx);
          forLoop(b, c0, constIndex(b, ph), c1,
                  [&](ImplicitLocOpBuilder &b, Value i) {
                    Value y = arith::AddIOp::create(
                        b, arith::MulIOp::create(b, gy, constIndex(b, ph)), i);
                    forLoop(
                        b, c0, constIndex(b, pw), c1,
                        [&](ImplicitLocOpBuilder &b, Value j) {
                          Value x = arith::AddIOp::create(
                              b,
                              arith::MulIOp::create(b, gx, constIndex(b, pw)),
                              j);
                          forLoop(b, c0, constIndex(b, ch), c1,
                                  [&](ImplicitLocOpBuilder &b, Value c) {
                                    Value v = memref::LoadOp::create(
                                        b, ki, ValueRange{img, y, x, c});
                                    Value col = arith::AddIOp::create(
                                        b,
                                        arith::MulIOp::create(
                                            b,
                                            arith::AddIOp::create(
                                                b,
                                                arith::MulIOp::create(
                                                    b, i, constIndex(b, pw)),
                                                j),
                                            constIndex(b, ch)),
                                        c);
                                    memref::StoreOp::create(
                                        b, v, kp, ValueRange{row, col});
                                  });
                        });
                  });
        });
  }
  launch(kern, {batch * gh}, binds, {}, perBatch(batch * gh, 1));
  auto [pw8, pb] = packWeights("patch", *w, *bias, 1, depth, d);
  Value out = allocLike(op.getResult());
  emitDenseGemm("patch_embed", patches, pw8, pb, d, Activation::None, out);
  return success();
}

LogicalResult Lowering::lowerClassToken(ClassTokenOp op) {
  FailureOr<Value> x = lookup(op.getInput(), op);
  FailureOr<Value> cls = lookup(op.getCls(), op);
  if (failed(x) || failed(cls))
    return failure();
  Value out = allocLike(op.getResult());
  ArrayRef<int64_t> s = shapeOf(op.getInput());
  int64_t n = s[1], d = s[2];
  SmallVector<Value> binds = {*x, *cls, out};
  Kernel kern = newKernel("class_token", binds, 0);
  ImplicitLocOpBuilder &b = kern.b();
  Value c0 = constIndex(b, 0), c1 = constIndex(b, 1), cd = constIndex(b, d);
  Value img = kern.wx;
  forLoop(b, c0, cd, c1, [&](ImplicitLocOpBuilder &b, Value i) {
    Value v =
        memref::LoadOp::create(b, kern.bindings[1], ValueRange{c0, c0, i});
    memref::StoreOp::create(b, v, kern.bindings[2], ValueRange{img, c0, i});
  });
  forLoop(b, c0, constIndex(b, n), c1, [&](ImplicitLocOpBuilder &b, Value tk) {
    Value dst = arith::AddIOp::create(b, tk, c1);
    forLoop(b, c0, cd, c1, [&](ImplicitLocOpBuilder &b, Value i) {
      Value v =
          memref::LoadOp::create(b, kern.bindings[0], ValueRange{img, tk, i});
      memref::StoreOp::create(b, v, kern.bindings[2], ValueRange{img, dst, i});
    });
  });
  launch(kern, {s[0]}, binds, {}, perBatch(s[0], 1));
  return success();
}

LogicalResult Lowering::lowerPositionEmbed(PositionEmbedOp op) {
  FailureOr<Value> x = lookup(op.getInput(), op);
  FailureOr<Value> table = lookup(op.getTable(), op);
  if (failed(x) || failed(table))
    return failure();
  Value out = allocLike(op.getResult());
  ArrayRef<int64_t> s = shapeOf(op.getInput());
  SmallVector<Value> binds = {*x, *table, out};
  Kernel kern = newKernel("position_embed", binds, 0);
  ImplicitLocOpBuilder &b = kern.b();
  Value c0 = constIndex(b, 0), c1 = constIndex(b, 1);
  forLoop(b, c0, constIndex(b, s[1]), c1,
          [&](ImplicitLocOpBuilder &b, Value tk) {
            forLoop(b, c0, constIndex(b, s[2]), c1,
                    [&](ImplicitLocOpBuilder &b, Value i) {
                      Value v = memref::LoadOp::create(
                          b, kern.bindings[0], ValueRange{kern.wx, tk, i});
                      Value p = memref::LoadOp::create(b, kern.bindings[1],
                                                       ValueRange{c0, tk, i});
                      memref::StoreOp::create(b, arith::AddFOp::create(b, v, p),
                                              kern.bindings[2],
                                              ValueRange{kern.wx, tk, i});
                    });
          });
  launch(kern, {s[0]}, binds, {}, perBatch(s[0], 1));
  return success();
}

/// vmoe's sincos2d table (grid tokens x D), in float32 as vmoe computes it
/// (jnp on float32 inputs): omega = 1 / temperature^(i / (D/4 - 1)), then
/// sin and cos of (column, row) x omega.
static SmallVector<float> sincos2dTable(int64_t height, int64_t width,
                                        int64_t d, double temperature) {
  int64_t quarter = d / 4;
  SmallVector<float> omega(quarter), table(height * width * d);
  for (int64_t i = 0; i < quarter; ++i)
    omega[i] = 1.0f / std::pow(static_cast<float>(temperature),
                               static_cast<float>(i) /
                                   static_cast<float>(quarter - 1));
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x) {
      float *row = &table[(y * width + x) * d];
      for (int64_t i = 0; i < quarter; ++i) {
        float px = static_cast<float>(x) * omega[i];
        float py = static_cast<float>(y) * omega[i];
        row[i] = std::sin(px);
        row[quarter + i] = std::cos(px);
        row[2 * quarter + i] = std::sin(py);
        row[3 * quarter + i] = std::cos(py);
      }
    }
  return table;
}

LogicalResult Lowering::lowerSincosPositionEmbed(SincosPositionEmbedOp op) {
  FailureOr<Value> x = lookup(op.getInput(), op);
  if (failed(x))
    return failure();
  ArrayRef<int64_t> s = shapeOf(op.getInput());
  int64_t t = s[1], d = s[2], grid = op.getHeight() * op.getWidth();
  // The table is a constant of the module, computed here once.
  WeightRef values;
  values.data = sincos2dTable(op.getHeight(), op.getWidth(), d,
                              op.getTemperature().convertToDouble());
  values.shape = {grid, d};
  values.user = op;
  Value table = copyGlobal("sincos2d", values,
                           MemRefType::get({grid, d}, Float32Type::get(ctx)));
  Value out = allocLike(op.getResult());
  SmallVector<Value> binds = {*x, table, out};
  Kernel kern = newKernel("sincos2d_position_embed", binds, 0);
  ImplicitLocOpBuilder &b = kern.b();
  Value kx = kern.bindings[0], kt = kern.bindings[1], ko = kern.bindings[2];
  Value c0 = constIndex(b, 0), c1 = constIndex(b, 1), cd = constIndex(b, d);
  // With a class token first, it passes unchanged.
  int64_t offset = t - grid;
  if (offset == 1)
    forLoop(b, c0, cd, c1, [&](ImplicitLocOpBuilder &b, Value i) {
      Value v = memref::LoadOp::create(b, kx, ValueRange{kern.wx, c0, i});
      memref::StoreOp::create(b, v, ko, ValueRange{kern.wx, c0, i});
    });
  forLoop(
      b, c0, constIndex(b, grid), c1, [&](ImplicitLocOpBuilder &b, Value n) {
        Value tk = arith::AddIOp::create(b, n, constIndex(b, offset));
        forLoop(b, c0, cd, c1, [&](ImplicitLocOpBuilder &b, Value i) {
          Value v = memref::LoadOp::create(b, kx, ValueRange{kern.wx, tk, i});
          Value p = memref::LoadOp::create(b, kt, ValueRange{n, i});
          memref::StoreOp::create(b, arith::AddFOp::create(b, v, p), ko,
                                  ValueRange{kern.wx, tk, i});
        });
      });
  launch(kern, {s[0]}, binds, {}, perBatch(s[0], 1));
  return success();
}

LogicalResult Lowering::lowerHead(ClassifierHeadOp op) {
  FailureOr<Value> x = lookup(op.getInput(), op);
  if (failed(x))
    return failure();
  ArrayRef<int64_t> s = shapeOf(op.getInput());
  int64_t batch = s[0], t = s[1], d = s[2];
  Type f32 = Float32Type::get(ctx);
  Value pooled = alloc({batch, d}, f32);
  bool gap = op.getPooling() == Pooling::Gap;
  SmallVector<Value> binds = {*x, pooled};
  Kernel kern = newKernel(gap ? "pool_mean" : "pool_token", binds, 0);
  {
    ImplicitLocOpBuilder &b = kern.b();
    Value c0 = constIndex(b, 0), c1 = constIndex(b, 1);
    forLoop(b, c0, constIndex(b, d), c1, [&](ImplicitLocOpBuilder &b, Value i) {
      Value v;
      if (gap) {
        Value sum = forLoopAcc(
            b, c0, constIndex(b, t), c1, {constF32(b, 0.0)},
            [&](ImplicitLocOpBuilder &b, Value tk, ValueRange acc) {
              Value x = memref::LoadOp::create(b, kern.bindings[0],
                                               ValueRange{kern.wx, tk, i});
              return SmallVector<Value>{arith::AddFOp::create(b, acc[0], x)};
            })[0];
        v = arith::DivFOp::create(b, sum, constF32(b, static_cast<double>(t)));
      } else {
        v = memref::LoadOp::create(b, kern.bindings[0],
                                   ValueRange{kern.wx, c0, i});
      }
      memref::StoreOp::create(b, v, kern.bindings[1], ValueRange{kern.wx, i});
    });
  }
  launch(kern, {batch}, binds, {}, perBatch(batch, 1));

  Value features = pooled;
  if (Value preKernel = op.getPreLogitsKernel()) {
    FailureOr<WeightRef> w = weightOperand(preKernel, op);
    FailureOr<WeightRef> bias = weightOperand(op.getPreLogitsBias(), op);
    if (failed(w) || failed(bias))
      return failure();
    int64_t r = shapeOf(preKernel)[1];
    auto [pw, pb] = packWeights("pre_logits", *w, *bias, 1, d, r);
    features = alloc({batch, r}, f32);
    emitDenseGemm("pre_logits", pooled, pw, pb, r, Activation::Tanh, features);
  }
  FailureOr<WeightRef> w = weightOperand(op.getKernel(), op);
  FailureOr<WeightRef> bias = weightOperand(op.getBias(), op);
  if (failed(w) || failed(bias))
    return failure();
  ArrayRef<int64_t> hs = shapeOf(op.getKernel());
  auto [pw, pb] = packWeights("head", *w, *bias, 1, hs[0], hs[1]);
  Value out = allocLike(op.getResult());
  emitDenseGemm("head", features, pw, pb, hs[1], Activation::None, out);
  return success();
}

} // namespace mlir::vmoe::lowering
