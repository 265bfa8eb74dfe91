//===- KernelBuilder.cpp - building kernel bodies in MLIR -----------------===//
//
// Loop nests, constants and the scalar/vector math helpers of the kernels;
// the register-blocked GEMM is in GemmBuilder.cpp.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Conversion/KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

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

Value clampIndex(ImplicitLocOpBuilder &b, Value i32Index, int64_t bound) {
  Value i = arith::IndexCastOp::create(b, b.getIndexType(), i32Index);
  return arith::MinUIOp::create(b, i, constIndex(b, bound - 1));
}

void forLoop(ImplicitLocOpBuilder &b, Value lb, Value ub, Value step,
             BodyFn body) {
  scf::ForOp::create(
      b, lb, ub, step, ValueRange{},
      [&](OpBuilder &nested, Location loc, Value iv, ValueRange) {
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
  Value lsb =
      arith::AndIOp::create(b, arith::ShRUIOp::create(b, bits, c(16)), c(1));
  Value rounded =
      arith::AddIOp::create(b, arith::AddIOp::create(b, bits, c(0x7fff)), lsb);
  Value cleared = arith::AndIOp::create(b, rounded, c(int32_t(0xffff0000u)));
  // NaN: keep sign and top payload bits, force a quiet NaN.
  Value quiet = arith::AndIOp::create(
      b, arith::OrIOp::create(b, bits, c(0x00400000)), c(int32_t(0xffff0000u)));
  Value isNan = arith::CmpFOp::create(b, arith::CmpFPredicate::UNO, x, x);
  Value result = arith::SelectOp::create(b, isNan, quiet, cleared);
  return arith::BitcastOp::create(b, type, result);
}

Value bf16Bits(ImplicitLocOpBuilder &b, Value x) {
  Type type = x.getType();
  Type i32 = withElement(type, b.getI32Type());
  Value bits = arith::BitcastOp::create(b, i32, roundToBf16(b, x));
  Value high =
      arith::ShRUIOp::create(b, bits, splatLike(b, constI32(b, 16), i32));
  return arith::TruncIOp::create(b, withElement(type, b.getI16Type()), high);
}

Value geluTanh(ImplicitLocOpBuilder &b, Value x) {
  Type type = x.getType();
  auto c = [&](double v) { return splatLike(b, constF32(b, v), type); };
  Value x3 = arith::MulFOp::create(b, arith::MulFOp::create(b, x, x), x);
  Value inner = arith::MulFOp::create(
      b, c(std::sqrt(2.0 / M_PI)),
      arith::AddFOp::create(b, x, arith::MulFOp::create(b, c(0.044715), x3)));
  Value t = math::TanhOp::create(b, inner);
  return arith::MulFOp::create(b, arith::MulFOp::create(b, c(0.5), x),
                               arith::AddFOp::create(b, c(1.0), t));
}

} // namespace mlir::vmoe
