//===- Passes.h - vmoe dialect passes ---------------------------*- C++ -*-===//

#ifndef VMOE_DIALECT_TRANSFORMS_PASSES_H
#define VMOE_DIALECT_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"

namespace mlir::vmoe {

#define GEN_PASS_DECL
#include "vmoe/Dialect/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "vmoe/Dialect/Transforms/Passes.h.inc"

} // namespace mlir::vmoe

#endif // VMOE_DIALECT_TRANSFORMS_PASSES_H
