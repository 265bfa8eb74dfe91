//===- WrittenBindings.h - which bindings a kernel writes -------*- C++ -*-===//
//
// The runtime refuses a dispatch that binds a constant to a binding its
// kernel may write (constants are shared, read-only weights). The module
// records, per kernel, which bindings those are; this analysis finds them on
// the memref-level kernel funcs, before the targets split, so that the CPU
// and the CUDA paths record the same answer.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_CONVERSION_WRITTENBINDINGS_H
#define VMOE_CONVERSION_WRITTENBINDINGS_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "llvm/ADT/SmallVector.h"

namespace mlir::vmoe {

/// One flag per memref argument of `kernel` (the leading bindings): true when
/// the kernel, or any function it calls, may write through it. Conservative:
/// a use the analysis does not understand counts as a write.
llvm::SmallVector<bool> computeWrittenBindings(FunctionOpInterface kernel);

/// Sets vmoe.written_bindings (VmoeContract.h) on every vmoe.kernel function
/// of `module` that has a body.
void recordWrittenBindings(ModuleOp module);

} // namespace mlir::vmoe

#endif // VMOE_CONVERSION_WRITTENBINDINGS_H
