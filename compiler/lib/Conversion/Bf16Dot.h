//===- Bf16Dot.h - the AVX512-BF16 dot product of bf16 pairs ----*- C++ -*-===//
//
// Internal to the lowering. The one place where target-specific IR enters
// the kernels: with native-bf16-dot (a CPU target with AVX512-BF16, see
// KernelTargetInfo::bf16Dot), the bf16 k-pair GEMM multiplies with
// x86vector.avx512.dot (vdpbf16ps); every other target runs the same
// arithmetic as f32 FMAs (GemmBuilder.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_LIB_CONVERSION_BF16DOT_H
#define VMOE_LIB_CONVERSION_BF16DOT_H

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::vmoe {

/// acc + a[2j] b[2j] + a[2j+1] b[2j+1] in every f32 lane j of `accType`:
/// `a` and `bPairs` are vectors of 2 x lanes bf16.
Value emitAvx512Bf16Dot(ImplicitLocOpBuilder &b, VectorType accType, Value acc,
                        Value a, Value bPairs);

} // namespace mlir::vmoe

#endif // VMOE_LIB_CONVERSION_BF16DOT_H
