//===- VmoeDialect.cpp - vmoe dialect registration ------------------------===//

#include "vmoe/Dialect/IR/VmoeDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "vmoe/Dialect/IR/VmoeOps.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::vmoe;

#include "vmoe/Dialect/IR/VmoeDialect.cpp.inc"
#include "vmoe/Dialect/IR/VmoeEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "vmoe/Dialect/IR/VmoeAttrs.cpp.inc"

void VmoeDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "vmoe/Dialect/IR/VmoeOps.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "vmoe/Dialect/IR/VmoeAttrs.cpp.inc"
      >();
}

Operation *VmoeDialect::materializeConstant(OpBuilder &builder, Attribute value,
                                            Type type, Location loc) {
  // Folded capacities are index constants.
  if (auto typed = dyn_cast<TypedAttr>(value))
    return arith::ConstantOp::materialize(builder, typed, type, loc);
  return nullptr;
}
