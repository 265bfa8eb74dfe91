//===- Passes.h - passes both targets use -----------------------*- C++ -*-===//

#ifndef VMOE_TARGET_COMMON_PASSES_H
#define VMOE_TARGET_COMMON_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::vmoe::target {

#define GEN_PASS_DECL
#include "vmoe/Target/Common/Passes.h.inc"

/// Registers the passes above (each target's registration calls this).
void registerTargetCommonPasses();

} // namespace mlir::vmoe::target

#endif // VMOE_TARGET_COMMON_PASSES_H
