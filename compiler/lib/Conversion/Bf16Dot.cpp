//===- Bf16Dot.cpp - the AVX512-BF16 dot product of bf16 pairs ------------===//
//
// The only user of the x86vector dialect in the lowering (see Bf16Dot.h).
//
//===----------------------------------------------------------------------===//

#include "Bf16Dot.h"

#include "mlir/Dialect/X86Vector/X86VectorDialect.h"

namespace mlir::vmoe {

Value emitAvx512Bf16Dot(ImplicitLocOpBuilder &b, VectorType accType, Value acc,
                        Value a, Value bPairs) {
  return x86vector::DotBF16Op::create(b, accType, acc, a, bPairs);
}

} // namespace mlir::vmoe
