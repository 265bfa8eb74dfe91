//===- KernelContract.cpp - the kernel funcs both targets compile ---------===//

#include "vmoe/Target/Common/KernelContract.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Index/IR/IndexDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"

using namespace mlir;
using namespace mlir::vmoe;

bool mlir::vmoe::target::isKernelFunc(Operation *op) {
  auto func = dyn_cast<func::FuncOp>(op);
  return func && func->hasAttr(kKernelAttrName);
}

LogicalResult mlir::vmoe::target::verifyKernelFunc(func::FuncOp func) {
  if (func.isExternal())
    return func.emitOpError("vmoe.kernel func must have a body");
  if (func.getFunctionType().getNumResults() != 0)
    return func.emitOpError("vmoe.kernel func must not return values");

  ArrayRef<Type> args = func.getArgumentTypes();
  size_t end = args.size();

  // The scratch argument exists exactly when the attribute does.
  if (Attribute attr = func->getAttr(kScratchSizeAttrName)) {
    auto size = dyn_cast<IntegerAttr>(attr);
    if (!size || !size.getType().isInteger(64) || size.getInt() < 0)
      return func.emitOpError()
             << kScratchSizeAttrName << " must be a non-negative i64 attribute";
    auto scratch = end ? dyn_cast<MemRefType>(args[end - 1]) : MemRefType();
    if (!scratch || scratch.getRank() != 1 ||
        scratch.getDimSize(0) != size.getInt() ||
        !scratch.getElementType().isInteger(8) ||
        !scratch.getLayout().isIdentity() || scratch.getMemorySpace())
      return func.emitOpError()
             << "with " << kScratchSizeAttrName << " = " << size.getInt()
             << " must take a last argument of type memref<" << size.getInt()
             << "xi8>";
    --end;
  }

  // Leading memrefs are the bindings, the rest are index values whose last
  // three are the workgroup ids.
  size_t numBindings = 0;
  while (numBindings < end && isa<MemRefType>(args[numBindings]))
    ++numBindings;
  for (size_t i = 0; i < numBindings; ++i) {
    auto type = cast<MemRefType>(args[i]);
    Type element = type.getElementType();
    bool byteSized = (isa<FloatType>(element) || isa<IntegerType>(element)) &&
                     element.getIntOrFloatBitWidth() % 8 == 0;
    if (!type.hasStaticShape() || !type.getLayout().isIdentity() ||
        type.getMemorySpace() || !byteSized)
      return func.emitOpError()
             << "binding #" << i << " has type " << type
             << "; bindings must be memrefs with a static shape, identity "
                "layout, default memory space and byte-sized int/float "
                "elements";
  }
  for (size_t i = numBindings; i < end; ++i)
    if (!isa<IndexType>(args[i]))
      return func.emitOpError()
             << "argument #" << i << " has type " << args[i]
             << "; after the binding memrefs come only index push constants "
                "and the 3 index workgroup ids (then the scratch memref when "
             << kScratchSizeAttrName << " is set)";
  if (end - numBindings < 3)
    return func.emitOpError("vmoe.kernel func must end with the workgroup ids "
                            "x, y, z as index arguments");
  return success();
}

void mlir::vmoe::target::registerKernelDialects(DialectRegistry &registry) {
  registry.insert<affine::AffineDialect, arith::ArithDialect,
                  cf::ControlFlowDialect, func::FuncDialect,
                  index::IndexDialect, LLVM::LLVMDialect, math::MathDialect,
                  memref::MemRefDialect, scf::SCFDialect, ub::UBDialect,
                  vector::VectorDialect, x86vector::X86VectorDialect>();
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
}
