//===- MapHeadKernels.cpp - vmoe's MapHead (classifier 'map') -------------===//
//
// Attention pooling with a learned probe: the keys and values of every
// token in one GEMM, the probe's attention per (image, head) in one kernel
// (one query, so scalar loops; its work is T x Dh per head), then the
// output projection, LayerNorm and MLP as the dense kernels, the MLP's last
// GEMM adding the attention output back.
//
//===----------------------------------------------------------------------===//

#include "LoweringState.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

#include <cmath>

namespace mlir::vmoe::lowering {

void Lowering::emitMapAttentionKernel(MapHeadOp op, Value kv, Value ctxOut,
                                      int64_t batch, int64_t t, int64_t d,
                                      int64_t heads, int64_t dh) {
  // The bindings are checked by the caller (lookup succeeded for each).
  Value probe = *lookup(op.getProbe(), op);
  Value wq = *lookup(op.getQueryKernel(), op);
  Value bq = *lookup(op.getQueryBias(), op);
  SmallVector<Value> binds = {kv, probe, wq, bq, ctxOut};
  Kernel kern = newKernel("map_attention", binds, 0, (dh + t) * 4);
  ImplicitLocOpBuilder &b = kern.b();
  Value kKv = kern.bindings[0], kProbe = kern.bindings[1],
        kWq = kern.bindings[2], kBq = kern.bindings[3], kCtx = kern.bindings[4];
  Type f32 = b.getF32Type();
  Value c0 = constIndex(b, 0), c1 = constIndex(b, 1);
  Value cT = constIndex(b, t), cDh = constIndex(b, dh), cD = constIndex(b, d);
  Value q = memref::ViewOp::create(b, MemRefType::get({dh}, f32), kern.scratch,
                                   c0, ValueRange{});
  Value scores =
      memref::ViewOp::create(b, MemRefType::get({t}, f32), kern.scratch,
                             constIndex(b, dh * 4), ValueRange{});
  Value image = arith::DivUIOp::create(b, kern.wx, constIndex(b, heads));
  Value head = arith::RemUIOp::create(b, kern.wx, constIndex(b, heads));
  Value col = arith::MulIOp::create(b, head, cDh);
  Value rowBase = arith::MulIOp::create(b, image, cT);
  Value zero = constF32(b, 0.0);
  // q = (probe @ Wq[:, head] + bq[head]) / sqrt(Dh), as flax scales it.
  Value sqrtDh = constF32(b, std::sqrt(static_cast<double>(dh)));
  forLoop(b, c0, cDh, c1, [&](ImplicitLocOpBuilder &b, Value e) {
    Value dot = forLoopAcc(
        b, c0, cD, c1, {zero},
        [&](ImplicitLocOpBuilder &b, Value k, ValueRange acc) {
          Value p = memref::LoadOp::create(b, kProbe, ValueRange{c0, c0, k});
          Value w = memref::LoadOp::create(b, kWq, ValueRange{k, head, e});
          return SmallVector<Value>{
              arith::AddFOp::create(b, acc[0], arith::MulFOp::create(b, p, w))};
        })[0];
    Value bias = memref::LoadOp::create(b, kBq, ValueRange{head, e});
    Value qe =
        arith::DivFOp::create(b, arith::AddFOp::create(b, dot, bias), sqrtDh);
    memref::StoreOp::create(b, qe, q, ValueRange{e});
  });
  // Scores q . k_j and their maximum.
  Value mx = forLoopAcc(
      b, c0, cT, c1, {constF32(b, -INFINITY)},
      [&](ImplicitLocOpBuilder &b, Value j, ValueRange m) {
        Value row = arith::AddIOp::create(b, rowBase, j);
        Value s = forLoopAcc(
            b, c0, cDh, c1, {zero},
            [&](ImplicitLocOpBuilder &b, Value e, ValueRange acc) {
              Value qe = memref::LoadOp::create(b, q, ValueRange{e});
              Value k = memref::LoadOp::create(
                  b, kKv, ValueRange{row, arith::AddIOp::create(b, col, e)});
              return SmallVector<Value>{arith::AddFOp::create(
                  b, acc[0], arith::MulFOp::create(b, qe, k))};
            })[0];
        memref::StoreOp::create(b, s, scores, ValueRange{j});
        return SmallVector<Value>{arith::MaximumFOp::create(b, m[0], s)};
      })[0];
  // Softmax numerators in place, and their sum.
  Value sum = forLoopAcc(
      b, c0, cT, c1, {zero},
      [&](ImplicitLocOpBuilder &b, Value j, ValueRange acc) {
        Value s = memref::LoadOp::create(b, scores, ValueRange{j});
        Value p = math::ExpOp::create(b, arith::SubFOp::create(b, s, mx));
        memref::StoreOp::create(b, p, scores, ValueRange{j});
        return SmallVector<Value>{arith::AddFOp::create(b, acc[0], p)};
      })[0];
  Value inv = arith::DivFOp::create(b, constF32(b, 1.0), sum);
  // The head's context: sum_j p_j v_j / sum.
  Value vCol = arith::AddIOp::create(b, col, cD);
  forLoop(b, c0, cDh, c1, [&](ImplicitLocOpBuilder &b, Value e) {
    Value column = arith::AddIOp::create(b, vCol, e);
    Value acc = forLoopAcc(
        b, c0, cT, c1, {zero},
        [&](ImplicitLocOpBuilder &b, Value j, ValueRange acc) {
          Value p = memref::LoadOp::create(b, scores, ValueRange{j});
          Value v = memref::LoadOp::create(
              b, kKv, ValueRange{arith::AddIOp::create(b, rowBase, j), column});
          return SmallVector<Value>{
              arith::AddFOp::create(b, acc[0], arith::MulFOp::create(b, p, v))};
        })[0];
    memref::StoreOp::create(
        b, arith::MulFOp::create(b, acc, inv), kCtx,
        ValueRange{image, arith::AddIOp::create(b, col, e)});
  });
  launch(kern, {batch * heads}, binds, {}, perBatch(batch * heads, 1));
}

LogicalResult Lowering::lowerMapHead(MapHeadOp op) {
  FailureOr<Value> x = lookup(op.getInput(), op);
  FailureOr<Value> lnScale = lookup(op.getLnScale(), op);
  FailureOr<Value> lnBias = lookup(op.getLnBias(), op);
  if (failed(x) || failed(lnScale) || failed(lnBias) ||
      failed(lookup(op.getProbe(), op)) ||
      failed(lookup(op.getQueryKernel(), op)) ||
      failed(lookup(op.getQueryBias(), op)))
    return failure();
  ArrayRef<int64_t> qShape = shapeOf(op.getQueryKernel());
  int64_t d = qShape[0], heads = qShape[1], dh = qShape[2];
  int64_t batch = shapeOf(op.getInput())[0], t = shapeOf(op.getInput())[1];
  int64_t m = shapeOf(op.getW1())[1];
  // K and V kernels as one (D, 2D) matrix: one GEMM reads the tokens once.
  Value kernels[2] = {op.getKeyKernel(), op.getValueKernel()};
  Value biases[2] = {op.getKeyBias(), op.getValueBias()};
  WeightRef kvw[2], kvBias[2];
  for (int part = 0; part < 2; ++part) {
    FailureOr<WeightRef> w = weightOperand(kernels[part], op);
    FailureOr<WeightRef> bias = weightOperand(biases[part], op);
    if (failed(w) || failed(bias))
      return failure();
    kvw[part] = std::move(*w);
    kvBias[part] = std::move(*bias);
  }
  FailureOr<WeightRef> wo = weightOperand(op.getOutKernel(), op),
                       bo = weightOperand(op.getOutBias(), op),
                       w1 = weightOperand(op.getW1(), op),
                       b1 = weightOperand(op.getB1(), op),
                       w2 = weightOperand(op.getW2(), op),
                       b2 = weightOperand(op.getB2(), op);
  if (failed(wo) || failed(bo) || failed(w1) || failed(b1) || failed(w2) ||
      failed(b2))
    return failure();
  auto [pkv, pkvBias] = packWeights(
      "map_kv", ArrayRef<const WeightRef *>{&kvw[0], &kvw[1]},
      ArrayRef<const WeightRef *>{&kvBias[0], &kvBias[1]}, 1, d, 2 * d);
  auto [pwo, pbo] = packWeights("map_out", *wo, *bo, 1, d, d);
  auto [pw1, pb1] = packWeights("map_mlp_w1", *w1, *b1, 1, d, m);
  auto [pw2, pb2] = packWeights("map_mlp_w2", *w2, *b2, 1, m, d);
  Type f32 = Float32Type::get(ctx);
  Value kv = alloc({batch * t, 2 * d}, f32);
  emitDenseGemm("map_kv", *x, pkv, pkvBias, 2 * d, Activation::None, kv);
  Value context = alloc({batch, d}, f32);
  emitMapAttentionKernel(op, kv, context, batch, t, d, heads, dh);
  Value attended = alloc({batch, d}, f32);
  emitDenseGemm("map_out", context, pwo, pbo, d, Activation::None, attended);
  Value normed = alloc({batch, d}, f32);
  emitLayerNorm(attended, *lnScale, *lnBias, normed, 1e-6);
  Value hidden = alloc({batch, m}, f32);
  emitDenseGemm("map_mlp_up", normed, pw1, pb1, m, Activation::Gelu, hidden);
  Value out = allocLike(op.getResult());
  emitDenseGemm("map_mlp_down", hidden, pw2, pb2, d, Activation::None, out,
                attended);
  return success();
}

} // namespace mlir::vmoe::lowering
