//===- ExtractKernels.cpp - Keep the kernel funcs of a module -------------===//
//
// The CPU back end compiles only kernels: the host schedule function,
// vmoe host ops and unused globals must not reach the LLVM lowering (they
// would not lower, or would be exported from the shared object).
//
//===----------------------------------------------------------------------===//

#include "vmoe/Target/CPU/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::vmoe::cpu {
#define GEN_PASS_DEF_VMOECPUEXTRACTKERNELS
#include "vmoe/Target/CPU/Passes.h.inc"
} // namespace mlir::vmoe::cpu

using namespace mlir;
using namespace mlir::vmoe::cpu;

static bool isKernel(Operation *op) {
  auto func = dyn_cast<func::FuncOp>(op);
  return func && func->hasAttr(kKernelAttrName);
}

static bool isIndex(Type type) { return isa<IndexType>(type); }

LogicalResult mlir::vmoe::cpu::verifyKernelFunc(func::FuncOp func) {
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
    if (!isIndex(args[i]))
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

/// The kernels of `module` plus every top-level symbol they reach through
/// symbol references, in module order.
static FailureOr<llvm::SetVector<Operation *>>
collectKernelClosure(ModuleOp module) {
  SymbolTable symbols(module);
  llvm::SetVector<Operation *> kept;
  SmallVector<Operation *> worklist;
  for (Operation &op : module.getBody()->getOperations())
    if (isKernel(&op)) {
      if (failed(verifyKernelFunc(cast<func::FuncOp>(op))))
        return failure();
      if (kept.insert(&op))
        worklist.push_back(&op);
    }
  while (!worklist.empty()) {
    Operation *op = worklist.pop_back_val();
    std::optional<SymbolTable::UseRange> uses = SymbolTable::getSymbolUses(op);
    if (!uses)
      return op->emitOpError("has unknown symbol uses; cannot extract kernels");
    for (const SymbolTable::SymbolUse &use : *uses) {
      SymbolRefAttr ref = use.getSymbolRef();
      // Nested references (@a::@b) point into other symbol tables, which
      // the kernel-only module cannot hold.
      if (!ref.getNestedReferences().empty())
        return use.getUser()->emitOpError()
               << "references nested symbol " << ref
               << ", which a CPU kernel cannot use";
      Operation *target = symbols.lookup(ref.getRootReference());
      if (!target)
        return use.getUser()->emitOpError()
               << "references unknown symbol " << ref;
      if (kept.insert(target))
        worklist.push_back(target);
    }
  }
  if (kept.empty())
    return module.emitError("module contains no func.func with the ")
           << kKernelAttrName << " attribute";
  // Module order keeps the output deterministic.
  llvm::SetVector<Operation *> ordered;
  for (Operation &op : module.getBody()->getOperations())
    if (kept.contains(&op))
      ordered.insert(&op);
  return ordered;
}

/// Helpers with a body become private: only kernel entries are exported.
/// Declarations stay public (a private declaration is invalid).
static void privatizeHelper(Operation *op) {
  if (isKernel(op))
    return;
  auto symbol = dyn_cast<SymbolOpInterface>(op);
  if (!symbol || symbol.isDeclaration())
    return;
  symbol.setVisibility(SymbolTable::Visibility::Private);
}

FailureOr<OwningOpRef<ModuleOp>>
mlir::vmoe::cpu::extractKernelModule(ModuleOp module) {
  FailureOr<llvm::SetVector<Operation *>> kept = collectKernelClosure(module);
  if (failed(kept))
    return failure();
  OwningOpRef<ModuleOp> result = ModuleOp::create(module.getLoc());
  OpBuilder builder = OpBuilder::atBlockEnd(result->getBody());
  for (Operation *op : *kept)
    privatizeHelper(builder.clone(*op));
  return result;
}

namespace {
struct ExtractKernelsPass
    : public mlir::vmoe::cpu::impl::VmoeCpuExtractKernelsBase<
          ExtractKernelsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<llvm::SetVector<Operation *>> kept = collectKernelClosure(module);
    if (failed(kept))
      return signalPassFailure();
    // Reverse order: a top-level op is erased only after its users.
    for (Operation &op : llvm::make_early_inc_range(
             llvm::reverse(module.getBody()->getOperations()))) {
      if (kept->contains(&op))
        privatizeHelper(&op);
      else
        op.erase();
    }
  }
};
} // namespace
