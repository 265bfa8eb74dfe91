//===- Int8Kernels.cpp - int8 GEMM weights and the quantize kernels -------===//
//
// The lowering's part of the int8 GEMMs (vmoe-lower-to-kernels expert-int8,
// dense-int8): weights quantized per output channel when the module is
// written (vmoe/writer/WeightPacking.h), in the k groups of the target's
// dot product (int8-dot), with their scales and column sums; and the
// kernels that quantize activation rows at run time before each int8 GEMM.
// The GEMMs themselves are emitGemmBlock's (GemmOperands::int8).
//
//===----------------------------------------------------------------------===//

#include "MoeLayer.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace mlir::vmoe::lowering {

namespace pack = ::vmoe::writer;

FailureOr<GemmWeights>
Lowering::packGemmWeights(StringRef base, ArrayRef<const WeightRef *> weights,
                          ArrayRef<const WeightRef *> biases, int64_t batch,
                          int64_t k, int64_t n, bool int8, Operation *user) {
  if (!int8) {
    auto [b, bias] = packWeights(base, weights, biases, batch, k, n);
    return GemmWeights{b, bias, {}, {}};
  }
  if (k % 4 != 0)
    return user->emitOpError()
           << "int8 GEMMs multiply in groups of 4 input values and need an "
              "input size that is a multiple of 4, got "
           << k << "; compile this model with f32 math for these layers";
  int64_t group = int8KGroup(int8Dot), nr = tiling.nr;
  int64_t panels = ceilDiv(n, nr);
  pack::PackSpec spec;
  spec.layout = pack::PackLayout::Panels;
  spec.batch = batch;
  spec.k = k;
  spec.nr = nr;
  spec.int8 = true;
  spec.kPairs = group == 2;
  spec.kQuads = group == 4;
  for (const WeightRef *w : weights)
    spec.widths.push_back(w->numElements() / (batch * k));
  SmallVector<int64_t> shape, perColumn;
  if (batch > 1) {
    shape.push_back(batch);
    perColumn.push_back(batch);
  }
  shape.append({panels, k / group, group * nr});
  perColumn.push_back(panels * nr);
  Location loc = model.getLoc();
  GemmWeights w;
  w.b = packedGlobal((base + "_packed_i8").str(),
                     MemRefType::get(shape, IntegerType::get(ctx, 8)), spec,
                     weights, loc);
  w.bias = packBias(base, biases, batch, n);
  pack::PackSpec scales = spec;
  scales.layout = pack::PackLayout::Int8Scales;
  scales.int8 = scales.kPairs = scales.kQuads = false;
  w.scales = packedGlobal((base + "_scales").str(),
                          MemRefType::get(perColumn, Float32Type::get(ctx)),
                          scales, weights, loc);
  if (int8Unsigned(int8Dot)) {
    pack::PackSpec sums = scales;
    sums.layout = pack::PackLayout::Int8ColSums;
    w.colSums =
        packedGlobal((base + "_col_sums").str(),
                     MemRefType::get(perColumn, IntegerType::get(ctx, 32)),
                     sums, weights, loc);
  }
  return w;
}

int64_t Lowering::quantizeLanes(int64_t k) const {
  for (int64_t lanes : {tiling.vectorWidth, int64_t(8), int64_t(4)})
    if (k % lanes == 0)
      return lanes;
  return 4; // int8 GEMMs need K % 4 == 0 (packGemmWeights)
}

void Lowering::emitQuantizeRows(StringRef name, Value src, Value q,
                                Value scales) {
  int64_t rows = shapeOf(src)[0], k = shapeOf(src)[1];
  const int64_t rowTile = 16;
  SmallVector<Value> binds = {src, q, scales};
  Kernel kern = newKernel(name, binds, 0);
  ImplicitLocOpBuilder &b = kern.b();
  Value ks = kern.bindings[0], kq = kern.bindings[1], kScale = kern.bindings[2];
  Value begin = arith::MulIOp::create(b, kern.wx, constIndex(b, rowTile));
  Value end =
      minIndex(b, arith::AddIOp::create(b, begin, constIndex(b, rowTile)),
               validExtent(kern, rows));
  forLoop(
      b, begin, end, constIndex(b, 1), [&](ImplicitLocOpBuilder &b, Value row) {
        auto at = [&](ImplicitLocOpBuilder &, Value c) {
          return SmallVector<Value>{row, c};
        };
        Value scale =
            emitQuantizeRow(b, int8Dot, k, quantizeLanes(k), ks, at, kq, at);
        memref::StoreOp::create(b, scale, kScale, ValueRange{row});
      });
  launch(kern, {ceilDiv(rows, rowTile)}, binds, {}, perBatch(rows, rowTile));
}

void Lowering::emitQuantizeExpertRows(const MoeLayer &l, Value src, Value q,
                                      Value scales) {
  // One workgroup per (expert, group), over the slots routing filled: the
  // GELU output of the others is stale.
  int64_t g = l.g, m = l.m;
  SmallVector<Value> binds = {src, l.counts, q, scales};
  Kernel kern = newKernel("moe_quantize_hidden", binds, 1);
  ImplicitLocOpBuilder &b = kern.b();
  Value ks = kern.bindings[0], kq = kern.bindings[2], kScale = kern.bindings[3];
  Value ex = arith::DivUIOp::create(b, kern.wx, constIndex(b, g));
  Value gi = arith::RemUIOp::create(b, kern.wx, constIndex(b, g));
  Value rows = filledRows(kern, l, kern.bindings[1], kern.constants[0], ex, gi);
  forLoop(b, constIndex(b, 0), rows, constIndex(b, 1),
          [&](ImplicitLocOpBuilder &b, Value row) {
            auto at = [&](ImplicitLocOpBuilder &, Value c) {
              return SmallVector<Value>{ex, gi, row, c};
            };
            Value scale = emitQuantizeRow(b, int8Dot, m, quantizeLanes(m), ks,
                                          at, kq, at);
            memref::StoreOp::create(b, scale, kScale, ValueRange{ex, gi, row});
          });
  launch(kern, {l.e * g}, binds, {l.capacity});
}

} // namespace mlir::vmoe::lowering
