//===- GemmBuilder.cpp - the register-blocked GEMM of every kernel --------===//
//
// emitGemmBlock (KernelBuilder.h): for each column panel of the workgroup,
// register blocks of `mr` rows stream past the panel; each block keeps its
// `mr x nr` accumulators in vector registers through the k loop (f32 FMAs,
// bf16 weights widened as they load, bf16 k pairs, or int8 k groups summed
// in int32, see Int8Dot.cpp), then applies the epilogue and stores, masked
// on the last partial panel.
//
//===----------------------------------------------------------------------===//

#include "Bf16Dot.h"
#include "vmoe/Conversion/KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace mlir::vmoe {

/// The even (low half) and odd (high half) bf16 of each 32-bit lane of
/// `pairs` (vector<N x i32>) as f32: exact, two integer ops.
static std::pair<Value, Value> splitBf16Pairs(ImplicitLocOpBuilder &b,
                                              Value pairs) {
  auto intType = cast<VectorType>(pairs.getType());
  auto f32Type = VectorType::get(intType.getShape(), b.getF32Type());
  auto splat = [&](int32_t v) {
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(intType, b.getI32IntegerAttr(v)));
  };
  Value even = arith::ShLIOp::create(b, pairs, splat(16));
  Value odd = arith::AndIOp::create(b, pairs, splat(int32_t(0xffff0000u)));
  return {arith::BitcastOp::create(b, f32Type, even),
          arith::BitcastOp::create(b, f32Type, odd)};
}

namespace {

/// One emitGemmBlock call: its operands, what they imply, and the constants
/// every register block shares (created once, in the caller's block).
class GemmEmitter {
public:
  GemmEmitter(ImplicitLocOpBuilder &b, const GemmTiling &tiling,
              const GemmOperands &ops, Value rowEnd);

  /// The register block of `blockRows` rows from r0 in panel p: rows past
  /// rowEnd read the last valid row and are not stored, so the block is
  /// always full.
  void rowBlock(ImplicitLocOpBuilder &b, Value p, Value r0, int64_t blockRows);

  Value c0, c1, cMr;

private:
  /// Fetches the B row kAhead steps ahead: every 64-byte line of it (a
  /// 512-bit block's step reads two).
  void prefetchB(ImplicitLocOpBuilder &b, Value p, Value step);
  /// k steps over [kBegin, kEnd), carrying the accumulators.
  SmallVector<Value> kSteps(ImplicitLocOpBuilder &b, Value p,
                            ArrayRef<Value> loadRows, Value kBegin, Value kEnd,
                            ValueRange init, bool prefetch);
  /// k pairs over [kBegin, kEnd): bf16 A and B, see bf16Pairs.
  SmallVector<Value> kPairSteps(ImplicitLocOpBuilder &b, Value p,
                                ArrayRef<Value> loadRows, Value kBegin,
                                Value kEnd, ValueRange init, bool prefetch);
  /// int8 k groups over [kBegin, kEnd): see GemmOperands::int8.
  SmallVector<Value> kInt8Steps(ImplicitLocOpBuilder &b, Value p,
                                ArrayRef<Value> loadRows, Value kBegin,
                                Value kEnd, ValueRange init, bool prefetch);
  /// The accumulators' start: zero, or -128 x B's column sums (vpdpbusd).
  Value accInit(ImplicitLocOpBuilder &b, Value p, int64_t v);
  /// Bias, activation, rounding, row scale and residual on the
  /// accumulators of `rows` (int8: dequantized first, with the scales of
  /// `loadRows`), then the (masked) stores into C.
  void epilogue(ImplicitLocOpBuilder &b, Value p, ArrayRef<Value> rows,
                ArrayRef<Value> loadRows, ArrayRef<Value> acc);

  /// With `prefetch`, each k step (or k pair) also fetches the B line
  /// kAhead steps ahead.
  static constexpr int64_t kAhead = 16;

  const GemmOperands &ops;
  const int64_t vw, mr, nr, nv;
  /// k steps of the loop: single k, k pairs, or int8 k groups.
  const int64_t kTrip;
  const bool bf16Weights;
  VectorType vecType;
  Value rowEnd, cNr, cKTrip, cN, zero;
  bool bf16Output, nativeDot;
};

} // namespace

GemmEmitter::GemmEmitter(ImplicitLocOpBuilder &b, const GemmTiling &tiling,
                         const GemmOperands &ops, Value rowEnd)
    : ops(ops), vw(tiling.vectorWidth), mr(tiling.mr), nr(tiling.nr),
      nv(tiling.nr / tiling.vectorWidth),
      kTrip(ops.int8 != Int8Dot::None ? ops.k / int8KGroup(ops.int8)
            : ops.bf16Pairs           ? ops.k / 2
                                      : ops.k),
      // bf16 weights are widened in the loop, two cheap vector ops per load:
      // the bytes read are halved, which pays where the weights stream from
      // memory (few rows per expert) and costs nothing measurable elsewhere.
      bf16Weights(!ops.bf16Pairs &&
                  cast<MemRefType>(ops.b.getType()).getElementType().isBF16()),
      rowEnd(rowEnd) {
  vecType = VectorType::get({vw}, b.getF32Type());
  c0 = constIndex(b, 0);
  c1 = constIndex(b, 1);
  cMr = constIndex(b, mr);
  cNr = constIndex(b, nr);
  cKTrip = constIndex(b, kTrip);
  cN = constIndex(b, ops.n);
  bf16Output = cast<MemRefType>(ops.c.getType()).getElementType().isInteger(16);
  // bf16Pairs: A as bf16 bits (i16) goes to vdpbf16ps, as f32 to FMAs.
  nativeDot = ops.bf16Pairs &&
              cast<MemRefType>(ops.a.getType()).getElementType().isInteger(16);
  zero = arith::ConstantOp::create(
      b, DenseElementsAttr::get(vecType, b.getF32FloatAttr(0.0f)));
}

void GemmEmitter::prefetchB(ImplicitLocOpBuilder &b, Value p, Value step) {
  auto bType = cast<MemRefType>(ops.b.getType());
  int64_t rowElems = bType.getShape().back();
  int64_t lineElems = 64 / (bType.getElementTypeBitWidth() / 8);
  Value ahead = arith::AddIOp::create(b, step, constIndex(b, kAhead));
  for (int64_t e = 0; e < rowElems; e += lineElems) {
    SmallVector<Value> idx(ops.bPrefix);
    idx.append({p, ahead, constIndex(b, e)});
    memref::PrefetchOp::create(b, ops.b, idx, /*isWrite=*/false,
                               /*localityHint=*/3,
                               /*isDataCache=*/true);
  }
}

SmallVector<Value> GemmEmitter::kPairSteps(ImplicitLocOpBuilder &b, Value p,
                                           ArrayRef<Value> loadRows,
                                           Value kBegin, Value kEnd,
                                           ValueRange init, bool prefetch) {
  auto i32Vec = VectorType::get({vw}, b.getI32Type());
  auto pairVec = VectorType::get({2 * vw}, b.getBF16Type());
  const int64_t blockRows = loadRows.size();
  return forLoopAcc(
      b, kBegin, kEnd, c1, init,
      [&](ImplicitLocOpBuilder &b, Value kp, ValueRange acc) {
        if (prefetch)
          prefetchB(b, p, kp);
        SmallVector<Value> bv, bEven, bOdd;
        for (int64_t v = 0; v < nv; ++v) {
          SmallVector<Value> idx(ops.bPrefix);
          idx.append({p, kp, constIndex(b, v * 2 * vw)});
          bv.push_back(vector::LoadOp::create(b, pairVec, ops.b, idx));
          if (!nativeDot) {
            auto [even, odd] = splitBf16Pairs(
                b, vector::BitCastOp::create(b, i32Vec, bv.back()));
            bEven.push_back(even);
            bOdd.push_back(odd);
          }
        }
        Value k = arith::MulIOp::create(b, kp, constIndex(b, 2));
        Value k1 = arith::AddIOp::create(b, k, c1);
        SmallVector<Value> next;
        for (int64_t i = 0; i < blockRows; ++i) {
          if (!nativeDot) {
            // f32 A holding bf16 values: two broadcast loads.
            Value aEven = vector::BroadcastOp::create(
                b, vecType,
                memref::LoadOp::create(b, ops.a,
                                       ops.aIndex(b, loadRows[i], k)));
            Value aOdd = vector::BroadcastOp::create(
                b, vecType,
                memref::LoadOp::create(b, ops.a,
                                       ops.aIndex(b, loadRows[i], k1)));
            for (int64_t v = 0; v < nv; ++v) {
              Value x =
                  vector::FMAOp::create(b, aOdd, bOdd[v], acc[i * nv + v]);
              next.push_back(vector::FMAOp::create(b, aEven, bEven[v], x));
            }
            continue;
          }
          // A[r][2j], A[r][2j+1] as one 32-bit value in every lane.
          Value two =
              vector::LoadOp::create(b, VectorType::get({2}, b.getI16Type()),
                                     ops.a, ops.aIndex(b, loadRows[i], k));
          Value word = vector::ExtractOp::create(
              b,
              vector::BitCastOp::create(b, VectorType::get({1}, b.getI32Type()),
                                        two),
              ArrayRef<int64_t>{0});
          Value a = vector::BitCastOp::create(
              b, pairVec, vector::BroadcastOp::create(b, i32Vec, word));
          for (int64_t v = 0; v < nv; ++v)
            next.push_back(
                emitAvx512Bf16Dot(b, vecType, acc[i * nv + v], a, bv[v]));
        }
        return next;
      });
}

SmallVector<Value> GemmEmitter::kSteps(ImplicitLocOpBuilder &b, Value p,
                                       ArrayRef<Value> loadRows, Value kBegin,
                                       Value kEnd, ValueRange init,
                                       bool prefetch) {
  if (ops.bf16Pairs)
    return kPairSteps(b, p, loadRows, kBegin, kEnd, init, prefetch);
  if (ops.int8 != Int8Dot::None)
    return kInt8Steps(b, p, loadRows, kBegin, kEnd, init, prefetch);
  const int64_t blockRows = loadRows.size();
  return forLoopAcc(
      b, kBegin, kEnd, c1, init,
      [&](ImplicitLocOpBuilder &b, Value k, ValueRange acc) {
        SmallVector<Value> bv;
        if (prefetch)
          prefetchB(b, p, k);
        for (int64_t v = 0; v < nv; ++v) {
          SmallVector<Value> idx(ops.bPrefix);
          idx.append({p, k, constIndex(b, v * vw)});
          if (bf16Weights) {
            // bf16 -> f32 is exact: the 16 bits become the high half.
            Value h = vector::LoadOp::create(
                b, VectorType::get({vw}, b.getBF16Type()), ops.b, idx);
            Value bits = arith::BitcastOp::create(
                b, VectorType::get({vw}, b.getI16Type()), h);
            auto wideType = VectorType::get({vw}, b.getI32Type());
            Value wide = arith::ShLIOp::create(
                b, arith::ExtUIOp::create(b, wideType, bits),
                arith::ConstantOp::create(
                    b,
                    DenseElementsAttr::get(wideType, b.getI32IntegerAttr(16))));
            bv.push_back(arith::BitcastOp::create(b, vecType, wide));
            continue;
          }
          bv.push_back(vector::LoadOp::create(b, vecType, ops.b, idx));
        }
        SmallVector<Value> next;
        for (int64_t i = 0; i < blockRows; ++i) {
          Value a =
              memref::LoadOp::create(b, ops.a, ops.aIndex(b, loadRows[i], k));
          Value av = vector::BroadcastOp::create(b, vecType, a);
          for (int64_t v = 0; v < nv; ++v)
            next.push_back(
                vector::FMAOp::create(b, av, bv[v], acc[i * nv + v]));
        }
        return next;
      });
}

SmallVector<Value> GemmEmitter::kInt8Steps(ImplicitLocOpBuilder &b, Value p,
                                           ArrayRef<Value> loadRows,
                                           Value kBegin, Value kEnd,
                                           ValueRange init, bool prefetch) {
  const int64_t group = int8KGroup(ops.int8);
  auto groupVec = VectorType::get({group * vw}, b.getI8Type());
  auto aElem = cast<MemRefType>(ops.a.getType()).getElementType();
  // One 32-bit word: four i8, or two i16 (Avx2Madd).
  auto aGroup = VectorType::get({group}, aElem);
  const int64_t blockRows = loadRows.size();
  return forLoopAcc(
      b, kBegin, kEnd, c1, init,
      [&](ImplicitLocOpBuilder &b, Value kg, ValueRange acc) {
        if (prefetch)
          prefetchB(b, p, kg);
        SmallVector<Value> bv;
        for (int64_t v = 0; v < nv; ++v) {
          SmallVector<Value> idx(ops.bPrefix);
          idx.append({p, kg, constIndex(b, v * group * vw)});
          bv.push_back(vector::LoadOp::create(b, groupVec, ops.b, idx));
        }
        Value k = arith::MulIOp::create(b, kg, constIndex(b, group));
        SmallVector<Value> next;
        for (int64_t i = 0; i < blockRows; ++i) {
          // A's k group of this row as one 32-bit word.
          Value g = vector::LoadOp::create(b, aGroup, ops.a,
                                           ops.aIndex(b, loadRows[i], k));
          Value word = vector::ExtractOp::create(
              b,
              vector::BitCastOp::create(b, VectorType::get({1}, b.getI32Type()),
                                        g),
              ArrayRef<int64_t>{0});
          for (int64_t v = 0; v < nv; ++v)
            next.push_back(
                emitInt8Dot(b, ops.int8, acc[i * nv + v], word, bv[v]));
        }
        return next;
      });
}

Value GemmEmitter::accInit(ImplicitLocOpBuilder &b, Value p, int64_t v) {
  if (ops.int8 == Int8Dot::None)
    return zero;
  auto accType = VectorType::get({vw}, b.getI32Type());
  if (!int8Unsigned(ops.int8))
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(accType, b.getI32IntegerAttr(0)));
  // vpdpbusd adds (q + 128) w: start from -128 sum_k w.
  SmallVector<Value> idx(ops.biasPrefix);
  idx.push_back(arith::AddIOp::create(b, arith::MulIOp::create(b, p, cNr),
                                      constIndex(b, v * vw)));
  Value sums = vector::LoadOp::create(b, accType, ops.colSums, idx);
  return arith::MulIOp::create(
      b, sums,
      arith::ConstantOp::create(
          b, DenseElementsAttr::get(accType, b.getI32IntegerAttr(-128))));
}

void GemmEmitter::epilogue(ImplicitLocOpBuilder &b, Value p,
                           ArrayRef<Value> rows, ArrayRef<Value> loadRows,
                           ArrayRef<Value> acc) {
  // Epilogue and store, masked on the last partial panel of N.
  Value col0 = arith::MulIOp::create(b, p, cNr);
  SmallVector<Value> biasVec, wScaleVec;
  const bool int8 = ops.int8 != Int8Dot::None;
  for (int64_t v = 0; v < nv; ++v) {
    Value col = arith::AddIOp::create(b, col0, constIndex(b, v * vw));
    SmallVector<Value> idx(ops.biasPrefix);
    idx.push_back(col);
    if (ops.bias)
      biasVec.push_back(vector::LoadOp::create(b, vecType, ops.bias, idx));
    if (int8)
      wScaleVec.push_back(vector::LoadOp::create(b, vecType, ops.wScale, idx));
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    Value inRange =
        arith::CmpIOp::create(b, arith::CmpIPredicate::slt, rows[i], rowEnd);
    ifThen(b, inRange, [&](ImplicitLocOpBuilder &b) {
      Value scale = ops.rowScale ? ops.rowScale(b, rows[i]) : Value();
      Value aScale = int8 ? vector::BroadcastOp::create(
                                b, vecType, ops.aScale(b, loadRows[i]))
                                .getResult()
                          : Value();
      for (int64_t v = 0; v < nv; ++v) {
        Value x = acc[i * nv + v];
        if (int8) // ((float)acc * scale_x) * scale_w, in that order
          x = arith::MulFOp::create(
              b,
              arith::MulFOp::create(b, arith::SIToFPOp::create(b, vecType, x),
                                    aScale),
              wScaleVec[v]);
        if (ops.bias)
          x = arith::AddFOp::create(b, x, biasVec[v]);
        if (ops.activation == Activation::Gelu)
          x = geluTanh(b, x);
        else if (ops.activation == Activation::Tanh)
          x = math::TanhOp::create(b, x);
        if (ops.bf16RoundOutput)
          x = roundToBf16(b, x);
        if (scale)
          x = arith::MulFOp::create(
              b, x, vector::BroadcastOp::create(b, vecType, scale));
        Value col = arith::AddIOp::create(b, col0, constIndex(b, v * vw));
        SmallVector<Value> cIdx = ops.cIndex(b, rows[i], col);
        Value remaining = arith::SubIOp::create(b, cN, col);
        Value full = arith::CmpIOp::create(b, arith::CmpIPredicate::sge,
                                           remaining, constIndex(b, vw));
        auto maskType = VectorType::get({vw}, b.getI1Type());
        Value mask = vector::CreateMaskOp::create(
            b, maskType, ValueRange{minIndex(b, remaining, constIndex(b, vw))});
        if (ops.residual) {
          Value r = vector::MaskedLoadOp::create(b, vecType, ops.residual, cIdx,
                                                 mask, zero);
          x = arith::AddFOp::create(b, x, r);
        }
        if (bf16Output)
          x = bf16Bits(b, x);
        scf::IfOp::create(
            b, full,
            [&](OpBuilder &nested, Location loc) {
              ImplicitLocOpBuilder ib(loc, nested);
              vector::StoreOp::create(ib, x, ops.c, cIdx);
              scf::YieldOp::create(ib);
            },
            [&](OpBuilder &nested, Location loc) {
              ImplicitLocOpBuilder ib(loc, nested);
              vector::MaskedStoreOp::create(ib, ops.c, cIdx, mask, x);
              scf::YieldOp::create(ib);
            });
      }
    });
  }
}

void GemmEmitter::rowBlock(ImplicitLocOpBuilder &b, Value p, Value r0,
                           int64_t blockRows) {
  Value last = arith::SubIOp::create(b, rowEnd, c1);
  SmallVector<Value> rows, loadRows;
  for (int64_t i = 0; i < blockRows; ++i) {
    Value r = arith::AddIOp::create(b, r0, constIndex(b, i));
    rows.push_back(r);
    Value clamped = minIndex(b, r, last);
    loadRows.push_back(ops.aRow ? ops.aRow(b, clamped) : clamped);
  }
  SmallVector<Value> init;
  for (int64_t i = 0; i < blockRows; ++i)
    for (int64_t v = 0; v < nv; ++v)
      init.push_back(i == 0 ? accInit(b, p, v) : init[v]);
  // Weights stream from memory once per row tile, so their lines are
  // fetched ahead; the last kAhead steps run without the prefetch, so
  // its index needs no clamp inside the loop (a clamp cost ~10 scalar
  // instructions per two steps of 24 FMAs).
  SmallVector<Value> acc;
  if (kTrip > kAhead) {
    Value split = constIndex(b, kTrip - kAhead);
    acc = kSteps(b, p, loadRows, c0, split, init, /*prefetch=*/true);
    acc = kSteps(b, p, loadRows, split, cKTrip, acc, /*prefetch=*/false);
  } else {
    acc = kSteps(b, p, loadRows, c0, cKTrip, init, /*prefetch=*/false);
  }
  epilogue(b, p, rows, loadRows, acc);
}

void emitGemmBlock(ImplicitLocOpBuilder &b, const GemmTiling &tiling,
                   const GemmOperands &ops, Value rowBegin, Value rowEnd,
                   Value panelBegin, Value panelEnd) {
  GemmEmitter gemm(b, tiling, ops, rowEnd);
  const int64_t mr = tiling.mr;
  Value c0 = gemm.c0, c1 = gemm.c1, cMr = gemm.cMr;
  // Panels outside, rows inside: one B panel (K x nr) stays in cache while
  // every row block of the workgroup streams past it.
  forLoop(b, panelBegin, panelEnd, c1, [&](ImplicitLocOpBuilder &b, Value p) {
    // Whole blocks, then the last rows: in a whole block when more than half
    // of it is used, else in a half-height block (small experts waste fewer
    // rows: 25 rows are 4 blocks of 6 and one of 3, not 5 of 6).
    const int64_t half = mr / 2;
    Value span = arith::MaxSIOp::create(
        b, arith::SubIOp::create(b, rowEnd, rowBegin), c0);
    Value fullEnd = arith::AddIOp::create(
        b, rowBegin,
        arith::MulIOp::create(b, arith::DivUIOp::create(b, span, cMr), cMr));
    Value rem = arith::SubIOp::create(b, rowEnd, fullEnd);
    Value bigTail = arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, rem,
                                          constIndex(b, half));
    Value mainEnd =
        half >= 1
            ? arith::SelectOp::create(b, bigTail, rowEnd, fullEnd).getResult()
            : rowEnd;
    forLoop(b, rowBegin, mainEnd, cMr, [&](ImplicitLocOpBuilder &b, Value r0) {
      gemm.rowBlock(b, p, r0, mr);
    });
    if (half >= 1) {
      Value smallTail = arith::AndIOp::create(
          b, arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, rem, c0),
          arith::XOrIOp::create(
              b, bigTail, arith::ConstantOp::create(b, b.getBoolAttr(true))));
      ifThen(b, smallTail, [&](ImplicitLocOpBuilder &b) {
        gemm.rowBlock(b, p, fullEnd, half);
      });
    }
  });
}

} // namespace mlir::vmoe
