//===- VmoeDialect.h - vmoe dialect -----------------------------*- C++ -*-===//

#ifndef VMOE_DIALECT_IR_VMOEDIALECT_H
#define VMOE_DIALECT_IR_VMOEDIALECT_H

#include "mlir/IR/Dialect.h"

#include "vmoe/Dialect/IR/VmoeDialect.h.inc"

#endif // VMOE_DIALECT_IR_VMOEDIALECT_H
