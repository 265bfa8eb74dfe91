//===- Int8Dot.cpp - the int8 dot products and row quantization -----------===//
//
// The integer parts of the int8 GEMMs (KernelBuilder.h): the k-group dot
// product of each CPU target as an LLVM intrinsic (llvm.call_intrinsic;
// MLIR has no x86vector op for vpdpbusd or vpmaddwd), and the per-row
// quantization of the activations.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Conversion/KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace mlir::vmoe {

int64_t int8KGroup(Int8Dot dot) { return dot == Int8Dot::Avx2Madd ? 2 : 4; }

Type int8ActType(MLIRContext *ctx, Int8Dot dot) {
  return IntegerType::get(ctx, dot == Int8Dot::Avx2Madd ? 16 : 8);
}

StringRef stringifyInt8Dot(Int8Dot dot) {
  switch (dot) {
  case Int8Dot::None:
    return "";
  case Int8Dot::Avx2Madd:
    return "avx2";
  case Int8Dot::AvxVnni:
    return "avx-vnni";
  case Int8Dot::Avx512Vnni:
    return "avx512-vnni";
  case Int8Dot::NeonSdot:
    return "sdot";
  }
  return "";
}

std::optional<Int8Dot> parseInt8Dot(StringRef name) {
  for (Int8Dot dot : {Int8Dot::None, Int8Dot::Avx2Madd, Int8Dot::AvxVnni,
                      Int8Dot::Avx512Vnni, Int8Dot::NeonSdot})
    if (name == stringifyInt8Dot(dot))
      return dot;
  return std::nullopt;
}

static Value callIntrinsic(ImplicitLocOpBuilder &b, Type result, StringRef name,
                           ValueRange args) {
  return LLVM::CallIntrinsicOp::create(b, result, b.getStringAttr(name), args)
      .getResult(0);
}

Value emitInt8Dot(ImplicitLocOpBuilder &b, Int8Dot dot, Value acc, Value aWord,
                  Value bGroup) {
  auto accType = cast<VectorType>(acc.getType());
  int64_t vw = accType.getNumElements();
  Value words = vector::BroadcastOp::create(b, accType, aWord);
  if (dot == Int8Dot::Avx2Madd) {
    // Both operands as int16 k pairs: each product pair sums to at most
    // 2 * 127^2 in magnitude, so vpmaddwd is exact.
    auto pairs = VectorType::get({2 * vw}, b.getI16Type());
    Value a = vector::BitCastOp::create(b, pairs, words);
    Value w = arith::ExtSIOp::create(b, pairs, bGroup);
    StringRef name =
        vw == 16 ? "llvm.x86.avx512.pmaddw.d.512" : "llvm.x86.avx2.pmadd.wd";
    return arith::AddIOp::create(b, acc,
                                 callIntrinsic(b, accType, name, {a, w}));
  }
  auto quads = VectorType::get({4 * vw}, b.getI8Type());
  Value a = vector::BitCastOp::create(b, quads, words);
  switch (dot) {
  case Int8Dot::Avx512Vnni:
    return callIntrinsic(b, accType, "llvm.x86.avx512.vpdpbusd.512",
                         {acc, a, bGroup});
  case Int8Dot::AvxVnni:
    // Selected as {vex} vpdpbusd with AVX-VNNI, the EVEX form with VL.
    return callIntrinsic(b, accType, "llvm.x86.avx512.vpdpbusd.256",
                         {acc, a, bGroup});
  default:
    return callIntrinsic(b, accType, "llvm.aarch64.neon.sdot.v4i32.v16i8",
                         {acc, a, bGroup});
  }
}

Value emitQuantizeRow(
    ImplicitLocOpBuilder &b, Int8Dot dot, int64_t k, int64_t lanes, Value src,
    llvm::function_ref<SmallVector<Value>(ImplicitLocOpBuilder &, Value)>
        srcIndex,
    Value dst,
    llvm::function_ref<SmallVector<Value>(ImplicitLocOpBuilder &, Value)>
        dstIndex) {
  auto vt = VectorType::get({lanes}, b.getF32Type());
  auto it = VectorType::get({lanes}, b.getI32Type());
  auto splat = [&](float v) -> Value {
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(vt, b.getF32FloatAttr(v)));
  };
  Value c0 = constIndex(b, 0), cK = constIndex(b, k), cL = constIndex(b, lanes);
  Value amaxVec =
      forLoopAcc(b, c0, cK, cL, {splat(0.0f)},
                 [&](ImplicitLocOpBuilder &b, Value c, ValueRange acc) {
                   Value v = vector::LoadOp::create(b, vt, src, srcIndex(b, c));
                   return SmallVector<Value>{arith::MaxNumFOp::create(
                       b, acc[0], math::AbsFOp::create(b, v))};
                 })[0];
  Value amax =
      vector::ReductionOp::create(b, vector::CombiningKind::MAXNUMF, amaxVec);
  Value isZero = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, amax,
                                       constF32(b, 0.0));
  Value scale = arith::SelectOp::create(
      b, isZero, constF32(b, 1.0),
      arith::DivFOp::create(b, amax, constF32(b, 127.0)));
  Type elem = int8ActType(b.getContext(), dot);
  auto qt = VectorType::get({lanes}, elem);
  forLoop(b, c0, cK, cL, [&](ImplicitLocOpBuilder &b, Value c) {
    Value v = vector::LoadOp::create(b, vt, src, srcIndex(b, c));
    // x / scale (a division, as the reference does), ties to even.
    Value r = math::RoundEvenOp::create(
        b,
        arith::DivFOp::create(b, v, vector::BroadcastOp::create(b, vt, scale)));
    r = arith::MinNumFOp::create(b, arith::MaxNumFOp::create(b, r, splat(-127)),
                                 splat(127));
    Value q = arith::FPToSIOp::create(b, it, r);
    if (int8Unsigned(dot))
      q = arith::AddIOp::create(
          b, q,
          arith::ConstantOp::create(
              b, DenseElementsAttr::get(it, b.getI32IntegerAttr(128))));
    vector::StoreOp::create(b, arith::TruncIOp::create(b, qt, q), dst,
                            dstIndex(b, c));
  });
  return scale;
}

} // namespace mlir::vmoe
