//===- ExtractKernels.cpp - Keep the kernel funcs of a module -------------===//
//
// The CPU back end compiles only kernels: the host schedule function,
// vmoe host ops and unused globals must not reach the LLVM lowering (they
// would not lower, or would be exported from the shared object).
//
//===----------------------------------------------------------------------===//

#include "vmoe/Target/CPU/Passes.h"

#include "vmoe/Dialect/IR/VmoeOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/StringMap.h"

#include <array>

namespace mlir::vmoe::cpu {
#define GEN_PASS_DEF_VMOECPUEXTRACTKERNELS
#include "vmoe/Target/CPU/Passes.h.inc"
} // namespace mlir::vmoe::cpu

using namespace mlir;
using namespace mlir::vmoe;
using namespace mlir::vmoe::cpu;
using target::isKernelFunc;
using target::verifyKernelFunc;

/// The kernels of `module` plus every top-level symbol they reach through
/// symbol references, in module order.
static FailureOr<llvm::SetVector<Operation *>>
collectKernelClosure(ModuleOp module) {
  SymbolTable symbols(module);
  llvm::SetVector<Operation *> kept;
  SmallVector<Operation *> worklist;
  for (Operation &op : module.getBody()->getOperations())
    if (isKernelFunc(&op)) {
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

/// The largest grid each kernel of `module` is launched with, per dim.
static llvm::StringMap<std::array<int64_t, 3>> launchGrids(ModuleOp module) {
  llvm::StringMap<std::array<int64_t, 3>> grids;
  module.walk([&](LaunchOp launch) {
    ArrayRef<int64_t> g = launch.getGrid();
    std::array<int64_t, 3> &m =
        grids.try_emplace(launch.getKernel(), std::array<int64_t, 3>{1, 1, 1})
            .first->second;
    for (size_t d = 0; d < 3 && d < g.size(); ++d)
      m[d] = std::max(m[d], g[d]);
  });
  return grids;
}

/// Records the largest launch grid on kernel `op` (vmoe.workgroup_count):
/// the ABI entry then refuses workgroup ids past it, so a module file that
/// asks for a larger grid gets a failed kernel, not accesses past its
/// buffers. Kernels without a launch here get no bound.
static void recordGrid(Operation *op,
                       const llvm::StringMap<std::array<int64_t, 3>> &grids) {
  auto func = dyn_cast<func::FuncOp>(op);
  if (!func || !isKernelFunc(op))
    return;
  auto it = grids.find(func.getSymName());
  if (it != grids.end())
    op->setAttr(kWorkgroupCountAttrName,
                DenseI64ArrayAttr::get(op->getContext(), it->second));
}

/// Helpers with a body become private: only kernel entries are exported.
/// Declarations stay public (a private declaration is invalid).
static void privatizeHelper(Operation *op) {
  if (isKernelFunc(op))
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
  llvm::StringMap<std::array<int64_t, 3>> grids = launchGrids(module);
  OwningOpRef<ModuleOp> result = ModuleOp::create(module.getLoc());
  OpBuilder builder = OpBuilder::atBlockEnd(result->getBody());
  for (Operation *op : *kept) {
    Operation *clone = builder.clone(*op);
    recordGrid(clone, grids);
    privatizeHelper(clone);
  }
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
    llvm::StringMap<std::array<int64_t, 3>> grids = launchGrids(module);
    // Reverse order: a top-level op is erased only after its users.
    for (Operation &op : llvm::make_early_inc_range(
             llvm::reverse(module.getBody()->getOperations()))) {
      if (kept->contains(&op)) {
        recordGrid(&op, grids);
        privatizeHelper(&op);
      } else
        op.erase();
    }
  }
};
} // namespace
