//===- Passes.h - vmoe conversion passes ------------------------*- C++ -*-===//

#ifndef VMOE_CONVERSION_PASSES_H
#define VMOE_CONVERSION_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::vmoe {

#define GEN_PASS_DECL
#include "vmoe/Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "vmoe/Conversion/Passes.h.inc"

} // namespace mlir::vmoe

#endif // VMOE_CONVERSION_PASSES_H
