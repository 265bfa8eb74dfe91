//===- VmoeOps.h - vmoe dialect operations ----------------------*- C++ -*-===//

#ifndef VMOE_DIALECT_IR_VMOEOPS_H
#define VMOE_DIALECT_IR_VMOEOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "vmoe/Dialect/IR/VmoeDialect.h"

#include "vmoe/Dialect/IR/VmoeEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "vmoe/Dialect/IR/VmoeAttrs.h.inc"

#define GET_OP_CLASSES
#include "vmoe/Dialect/IR/VmoeOps.h.inc"

#include <optional>

namespace mlir::vmoe {

/// vmoe's `compute_capacity`: `(numTokens * capacityFactor) / numExperts` in
/// IEEE double, left to right, then ceil (or Python's half-to-even round),
/// then up to a multiple of `multipleOf`. Returns std::nullopt when the
/// capacity would be below 1 (vmoe raises an error there) or overflow.
std::optional<int64_t> computeCapacity(int64_t numTokens, int64_t numExperts,
                                       double capacityFactor,
                                       int64_t multipleOf = 4,
                                       bool round = false);

/// vmoe.packed (VmoeContract.h) on `op`: a #vmoe.packed_weight on an
/// uninitialized memref.global of the type the packing makes.
LogicalResult verifyPackedGlobal(Operation *op, Attribute packed);

} // namespace mlir::vmoe

#endif // VMOE_DIALECT_IR_VMOEOPS_H
