//===- WrittenBindings.cpp - which bindings a kernel writes ---------------===//
//
// Follows every use of a kernel's memref arguments, through views and calls,
// and asks each user for its memory effects on the value: a write (store,
// transfer_write, copy target, a linalg output, ...) marks the binding
// written. A user without a declared effect on the value marks it written
// unless it is known to only read shape metadata: a forged "read-only" flag
// would let the runtime bind shared weights to it.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Conversion/WrittenBindings.h"

#include "vmoe/Conversion/Passes.h"

#include "vmoe/Dialect/IR/VmoeContract.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/CallInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "llvm/ADT/DenseMap.h"

using namespace mlir;
using namespace mlir::vmoe;

namespace {

class WriteAnalysis {
public:
  /// Whether argument `index` of `func` may be written.
  bool argumentWritten(FunctionOpInterface func, unsigned index);

private:
  bool valueWritten(Value value);
  bool useWrites(OpOperand &use);
  bool callWrites(CallOpInterface call, OpOperand &use);

  /// (function, argument) -> written; an entry in progress reads as
  /// written, so that recursion stays conservative.
  llvm::DenseMap<std::pair<Operation *, unsigned>, bool> memo;
};

} // namespace

bool WriteAnalysis::argumentWritten(FunctionOpInterface func, unsigned index) {
  auto key = std::make_pair(func.getOperation(), index);
  auto [it, inserted] = memo.try_emplace(key, true);
  if (!inserted)
    return it->second;
  if (func.isExternal() || index >= func.getNumArguments())
    return true;
  bool written = valueWritten(func.getArgument(index));
  memo[key] = written;
  return written;
}

bool WriteAnalysis::valueWritten(Value value) {
  for (OpOperand &use : value.getUses())
    if (useWrites(use))
      return true;
  return false;
}

bool WriteAnalysis::callWrites(CallOpInterface call, OpOperand &use) {
  auto callee = dyn_cast_or_null<FunctionOpInterface>(call.resolveCallable());
  if (!callee)
    return true;
  MutableOperandRange args = call.getArgOperandsMutable();
  for (unsigned i = 0, e = args.size(); i < e; ++i)
    if (&args[i] == &use)
      return argumentWritten(callee, i);
  return true; // passed as something other than an argument
}

bool WriteAnalysis::useWrites(OpOperand &use) {
  Operation *user = use.getOwner();
  Value value = use.get();
  if (auto call = dyn_cast<CallOpInterface>(user))
    return callWrites(call, use);
  // A view aliases its source: writes through it are writes to the binding.
  auto followMemRefResults = [&] {
    for (Value result : user->getResults())
      if (isa<BaseMemRefType>(result.getType()) && valueWritten(result))
        return true;
    return false;
  };
  if (auto view = dyn_cast<ViewLikeOpInterface>(user))
    if (view.getViewSource() == value)
      return followMemRefResults();
  // Shape queries and cache hints (a prefetch for write writes nothing).
  if (isa<memref::DimOp, memref::RankOp, memref::ExtractStridedMetadataOp,
          memref::PrefetchOp>(user))
    return followMemRefResults();
  auto effects = dyn_cast<MemoryEffectOpInterface>(user);
  if (!effects)
    return true;
  SmallVector<MemoryEffects::EffectInstance> all;
  effects.getEffects(all);
  bool reads = false;
  for (const MemoryEffects::EffectInstance &effect : all) {
    bool onValue = effect.getValue() == value;
    // A write with no value named may be a write to anything.
    if (!isa<MemoryEffects::Read>(effect.getEffect()) &&
        (onValue || !effect.getValue()))
      return true;
    reads |= onValue && isa<MemoryEffects::Read>(effect.getEffect());
  }
  // A pure op that hands the memref (or its address) on, unexplained.
  if (!reads)
    return true;
  return followMemRefResults();
}

SmallVector<bool>
mlir::vmoe::computeWrittenBindings(FunctionOpInterface kernel) {
  WriteAnalysis analysis;
  SmallVector<bool> written;
  for (unsigned i = 0, e = kernel.getNumArguments(); i < e; ++i) {
    if (!isa<BaseMemRefType>(kernel.getArgument(i).getType()))
      break;
    written.push_back(analysis.argumentWritten(kernel, i));
  }
  return written;
}

void mlir::vmoe::recordWrittenBindings(ModuleOp module) {
  module.walk([](FunctionOpInterface func) {
    if (!func->hasAttr(kKernelAttrName) || func.isExternal())
      return;
    func->setAttr(kWrittenBindingsAttrName,
                  DenseBoolArrayAttr::get(func->getContext(),
                                          computeWrittenBindings(func)));
  });
}

namespace mlir::vmoe {
#define GEN_PASS_DEF_VMOERECORDWRITTENBINDINGS
#include "vmoe/Conversion/Passes.h.inc"
} // namespace mlir::vmoe

namespace {
struct RecordWrittenBindingsPass
    : mlir::vmoe::impl::VmoeRecordWrittenBindingsBase<
          RecordWrittenBindingsPass> {
  void runOnOperation() override { recordWrittenBindings(getOperation()); }
};
} // namespace
