//===- KernelBuilder.cpp - building CPU kernel bodies in MLIR -------------===//

#include "vmoe/Conversion/KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"

#include <cmath>

namespace mlir::vmoe {

Value constIndex(ImplicitLocOpBuilder &b, int64_t v) {
  return arith::ConstantIndexOp::create(b, v);
}

Value constF32(ImplicitLocOpBuilder &b, double v) {
  return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
}

Value constI32(ImplicitLocOpBuilder &b, int32_t v) {
  return arith::ConstantOp::create(b, b.getI32IntegerAttr(v));
}

Value minIndex(ImplicitLocOpBuilder &b, Value x, Value y) {
  return arith::MinSIOp::create(b, x, y);
}

void forLoop(ImplicitLocOpBuilder &b, Value lb, Value ub, Value step,
             BodyFn body) {
  scf::ForOp::create(b, lb, ub, step, ValueRange{},
                     [&](OpBuilder &nested, Location loc, Value iv,
                         ValueRange) {
                       ImplicitLocOpBuilder ib(loc, nested);
                       body(ib, iv);
                       scf::YieldOp::create(ib);
                     });
}

SmallVector<Value> forLoopAcc(ImplicitLocOpBuilder &b, Value lb, Value ub,
                              Value step, ValueRange init, AccBodyFn body) {
  auto loop = scf::ForOp::create(
      b, lb, ub, step, init,
      [&](OpBuilder &nested, Location loc, Value iv, ValueRange args) {
        ImplicitLocOpBuilder ib(loc, nested);
        SmallVector<Value> next = body(ib, iv, args);
        scf::YieldOp::create(ib, next);
      });
  return SmallVector<Value>(loop.getResults());
}

void ifThen(ImplicitLocOpBuilder &b, Value cond,
            llvm::function_ref<void(ImplicitLocOpBuilder &)> body) {
  scf::IfOp::create(b, cond, [&](OpBuilder &nested, Location loc) {
    ImplicitLocOpBuilder ib(loc, nested);
    body(ib);
    scf::YieldOp::create(ib);
  });
}

/// Splat `v` to the shape of `like` when `like` is a vector.
static Value splatLike(ImplicitLocOpBuilder &b, Value v, Type like) {
  if (auto vt = dyn_cast<VectorType>(like))
    return vector::BroadcastOp::create(b, vt, v);
  return v;
}

static Type withElement(Type like, Type element) {
  if (auto vt = dyn_cast<VectorType>(like))
    return VectorType::get(vt.getShape(), element);
  return element;
}

Value roundToBf16(ImplicitLocOpBuilder &b, Value x) {
  Type type = x.getType();
  Type intType = withElement(type, b.getI32Type());
  auto c = [&](int32_t v) { return splatLike(b, constI32(b, v), intType); };
  Value bits = arith::BitcastOp::create(b, intType, x);
  // RNE: add 0x7fff plus the lowest kept bit, then clear the low 16 bits.
  Value lsb = arith::AndIOp::create(
      b, arith::ShRUIOp::create(b, bits, c(16)), c(1));
  Value rounded = arith::AddIOp::create(
      b, arith::AddIOp::create(b, bits, c(0x7fff)), lsb);
  Value cleared = arith::AndIOp::create(b, rounded, c(int32_t(0xffff0000u)));
  // NaN: keep sign and top payload bits, force a quiet NaN.
  Value quiet = arith::AndIOp::create(
      b, arith::OrIOp::create(b, bits, c(0x00400000)), c(int32_t(0xffff0000u)));
  Value isNan =
      arith::CmpFOp::create(b, arith::CmpFPredicate::UNO, x, x);
  Value result = arith::SelectOp::create(b, isNan, quiet, cleared);
  return arith::BitcastOp::create(b, type, result);
}

Value bf16Bits(ImplicitLocOpBuilder &b, Value x) {
  Type type = x.getType();
  Type i32 = withElement(type, b.getI32Type());
  Value bits = arith::BitcastOp::create(b, i32, roundToBf16(b, x));
  Value high = arith::ShRUIOp::create(
      b, bits, splatLike(b, constI32(b, 16), i32));
  return arith::TruncIOp::create(b, withElement(type, b.getI16Type()), high);
}

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

Value geluTanh(ImplicitLocOpBuilder &b, Value x) {
  Type type = x.getType();
  auto c = [&](double v) { return splatLike(b, constF32(b, v), type); };
  Value x3 = arith::MulFOp::create(b, arith::MulFOp::create(b, x, x), x);
  Value inner = arith::MulFOp::create(
      b, c(std::sqrt(2.0 / M_PI)),
      arith::AddFOp::create(b, x, arith::MulFOp::create(b, c(0.044715), x3)));
  Value t = math::TanhOp::create(b, inner);
  return arith::MulFOp::create(
      b, arith::MulFOp::create(b, c(0.5), x),
      arith::AddFOp::create(b, c(1.0), t));
}

void emitGemmBlock(ImplicitLocOpBuilder &b, const GemmTiling &tiling,
                   const GemmOperands &ops, Value rowBegin, Value rowEnd,
                   Value panelBegin, Value panelEnd) {
  const int64_t vw = tiling.vectorWidth, mr = tiling.mr, nr = tiling.nr;
  const int64_t nv = nr / vw;
  // bf16 weights are widened in the loop, two cheap vector ops per load:
  // the bytes read are halved, which pays where the weights stream from
  // memory (few rows per expert) and costs nothing measurable elsewhere.
  const bool bf16Weights =
      !ops.bf16Pairs &&
      cast<MemRefType>(ops.b.getType()).getElementType().isBF16();
  auto vecType = VectorType::get({vw}, b.getF32Type());
  Value c0 = constIndex(b, 0), c1 = constIndex(b, 1);
  Value cMr = constIndex(b, mr), cNr = constIndex(b, nr);
  // k steps of the loop: single k, or k pairs.
  const int64_t kTrip = ops.bf16Pairs ? ops.k / 2 : ops.k;
  Value cKTrip = constIndex(b, kTrip), cN = constIndex(b, ops.n);
  const bool bf16Output =
      cast<MemRefType>(ops.c.getType()).getElementType().isInteger(16);
  // bf16Pairs: A as bf16 bits (i16) goes to vdpbf16ps, as f32 to FMAs.
  const bool nativeDot =
      ops.bf16Pairs &&
      cast<MemRefType>(ops.a.getType()).getElementType().isInteger(16);
  Value zero = arith::ConstantOp::create(
      b, DenseElementsAttr::get(vecType, b.getF32FloatAttr(0.0f)));

  // Panels outside, rows inside: one B panel (K x nr) stays in cache while
  // every row block of the workgroup streams past it.
  forLoop(b, panelBegin, panelEnd, c1, [&](ImplicitLocOpBuilder &b, Value p) {
    // The register block of `blockRows` rows from r0: rows past rowEnd read
    // the last valid row and are not stored, so the block is always full.
    auto rowBlock = [&](ImplicitLocOpBuilder &b, Value r0, int64_t blockRows) {
      Value last = arith::SubIOp::create(b, rowEnd, c1);
      SmallVector<Value> rows, loadRows;
      for (int64_t i = 0; i < blockRows; ++i) {
        Value r = arith::AddIOp::create(b, r0, constIndex(b, i));
        rows.push_back(r);
        Value clamped = minIndex(b, r, last);
        loadRows.push_back(ops.aRow ? ops.aRow(b, clamped) : clamped);
      }
      SmallVector<Value> init(blockRows * nv, zero);
      // With `prefetch`, each k step (or k pair) also fetches the B line
      // kAhead steps ahead.
      constexpr int64_t kAhead = 16;
      // Fetches the B row kAhead steps ahead: every 64-byte line of it (a
      // 512-bit block's step reads two).
      auto prefetchB = [&](ImplicitLocOpBuilder &b, Value step) {
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
      };
      // k pairs over [kBegin, kEnd): bf16 A and B, see bf16Pairs.
      auto kPairSteps = [&](Value kBegin, Value kEnd, ValueRange init,
                            bool prefetch) {
        auto i32Vec = VectorType::get({vw}, b.getI32Type());
        auto pairVec = VectorType::get({2 * vw}, b.getBF16Type());
        return forLoopAcc(
            b, kBegin, kEnd, c1, init,
            [&](ImplicitLocOpBuilder &b, Value kp, ValueRange acc) {
              if (prefetch)
                prefetchB(b, kp);
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
                    Value x = vector::FMAOp::create(b, aOdd, bOdd[v],
                                                    acc[i * nv + v]);
                    next.push_back(
                        vector::FMAOp::create(b, aEven, bEven[v], x));
                  }
                  continue;
                }
                // A[r][2j], A[r][2j+1] as one 32-bit value in every lane.
                Value two = vector::LoadOp::create(
                    b, VectorType::get({2}, b.getI16Type()), ops.a,
                    ops.aIndex(b, loadRows[i], k));
                Value word = vector::ExtractOp::create(
                    b,
                    vector::BitCastOp::create(
                        b, VectorType::get({1}, b.getI32Type()), two),
                    ArrayRef<int64_t>{0});
                Value a = vector::BitCastOp::create(
                    b, pairVec, vector::BroadcastOp::create(b, i32Vec, word));
                for (int64_t v = 0; v < nv; ++v)
                  next.push_back(x86vector::DotBF16Op::create(
                      b, vecType, acc[i * nv + v], a, bv[v]));
              }
              return next;
            });
      };
      // k steps over [kBegin, kEnd).
      auto kSteps = [&](Value kBegin, Value kEnd, ValueRange init,
                        bool prefetch) {
        if (ops.bf16Pairs)
          return kPairSteps(kBegin, kEnd, init, prefetch);
        return forLoopAcc(
            b, kBegin, kEnd, c1, init,
            [&](ImplicitLocOpBuilder &b, Value k, ValueRange acc) {
              SmallVector<Value> bv;
              if (prefetch)
                prefetchB(b, k);
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
                          b, DenseElementsAttr::get(
                                 wideType, b.getI32IntegerAttr(16))));
                  bv.push_back(arith::BitcastOp::create(b, vecType, wide));
                  continue;
                }
                bv.push_back(vector::LoadOp::create(b, vecType, ops.b, idx));
              }
              SmallVector<Value> next;
              for (int64_t i = 0; i < blockRows; ++i) {
                Value a = memref::LoadOp::create(b, ops.a,
                                                 ops.aIndex(b, loadRows[i], k));
                Value av = vector::BroadcastOp::create(b, vecType, a);
                for (int64_t v = 0; v < nv; ++v)
                  next.push_back(vector::FMAOp::create(b, av, bv[v],
                                                       acc[i * nv + v]));
              }
              return next;
            });
      };
      // Weights stream from memory once per row tile, so their lines are
      // fetched ahead; the last kAhead steps run without the prefetch, so
      // its index needs no clamp inside the loop (a clamp cost ~10 scalar
      // instructions per two steps of 24 FMAs).
      SmallVector<Value> acc;
      if (kTrip > kAhead) {
        Value split = constIndex(b, kTrip - kAhead);
        acc = kSteps(c0, split, init, /*prefetch=*/true);
        acc = kSteps(split, cKTrip, acc, /*prefetch=*/false);
      } else {
        acc = kSteps(c0, cKTrip, init, /*prefetch=*/false);
      }

      // Epilogue and store, masked on the last partial panel of N.
      Value col0 = arith::MulIOp::create(b, p, cNr);
      SmallVector<Value> biasVec;
      for (int64_t v = 0; v < nv; ++v) {
        Value col = arith::AddIOp::create(b, col0, constIndex(b, v * vw));
        if (ops.bias) {
          SmallVector<Value> idx(ops.biasPrefix);
          idx.push_back(col);
          biasVec.push_back(vector::LoadOp::create(b, vecType, ops.bias, idx));
        }
      }
      for (int64_t i = 0; i < blockRows; ++i) {
        Value inRange = arith::CmpIOp::create(b, arith::CmpIPredicate::slt,
                                              rows[i], rowEnd);
        ifThen(b, inRange, [&](ImplicitLocOpBuilder &b) {
          Value scale = ops.rowScale ? ops.rowScale(b, rows[i]) : Value();
          for (int64_t v = 0; v < nv; ++v) {
            Value x = acc[i * nv + v];
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
              Value r = vector::MaskedLoadOp::create(b, vecType, ops.residual,
                                                     cIdx, mask, zero);
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
    };
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
    Value mainEnd = half >= 1
                        ? arith::SelectOp::create(b, bigTail, rowEnd, fullEnd)
                              .getResult()
                        : rowEnd;
    forLoop(b, rowBegin, mainEnd, cMr, [&](ImplicitLocOpBuilder &b, Value r0) {
      rowBlock(b, r0, mr);
    });
    if (half >= 1) {
      Value smallTail = arith::AndIOp::create(
          b, arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, rem, c0),
          arith::XOrIOp::create(
              b, bigTail, arith::ConstantOp::create(b, b.getBoolAttr(true))));
      ifThen(b, smallTail, [&](ImplicitLocOpBuilder &b) {
        rowBlock(b, fullEnd, half);
      });
    }
  });
}

} // namespace mlir::vmoe
