//===- OutlineKernels.cpp - vmoe kernels as gpu.func kernels --------------===//
//
// vmoe-cuda-outline-kernels: one CUDA thread per vmoe workgroup.
// vmoe-cuda-emulate-on-cpu: the same gpu.func bodies as CPU kernels, one
// CUDA block per CPU workgroup, so that tests run them without a GPU.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Target/CUDA/Passes.h"

#include "vmoe/Dialect/IR/VmoeContract.h"
#include "vmoe/Dialect/IR/VmoeOps.h"
#include "vmoe/Target/Common/KernelContract.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::vmoe::cuda {
#define GEN_PASS_DEF_VMOECUDAOUTLINEKERNELS
#define GEN_PASS_DEF_VMOECUDAEMULATEONCPU
#include "vmoe/Target/CUDA/Passes.h.inc"
} // namespace mlir::vmoe::cuda

using namespace mlir;
using namespace mlir::vmoe;
using namespace mlir::vmoe::cuda;

namespace {

/// A kernel func's arguments, split per the kernel contract.
struct KernelSignature {
  unsigned bindings = 0, constants = 0;
  int64_t scratch = 0; // bytes per workgroup; 0: no scratch argument
};

FailureOr<KernelSignature> splitSignature(func::FuncOp func) {
  KernelSignature sig;
  ArrayRef<Type> args = func.getArgumentTypes();
  size_t end = args.size();
  if (auto attr = func->getAttrOfType<IntegerAttr>(kScratchSizeAttrName)) {
    sig.scratch = attr.getInt();
    if (end == 0 || !isa<MemRefType>(args[end - 1]))
      return func.emitOpError("has vmoe.scratch_size but no scratch argument");
    --end;
  }
  while (sig.bindings < end && isa<MemRefType>(args[sig.bindings]))
    ++sig.bindings;
  if (end < sig.bindings + 3)
    return func.emitOpError("lacks the workgroup id arguments");
  for (size_t i = sig.bindings; i < end; ++i)
    if (!isa<IndexType>(args[i]))
      return func.emitOpError("argument ") << i << " must be index";
  sig.constants = end - sig.bindings - 3;
  if (func.getFunctionType().getNumResults() != 0 || func.isExternal() ||
      !func.getBody().hasOneBlock())
    return func.emitOpError(
        "must have one body block and no results to run on CUDA");
  return sig;
}

/// A PTX identifier for `name`: characters other than [A-Za-z0-9_$] become
/// '_', and a leading digit gets a '_' in front.
std::string ptxName(StringRef name) {
  std::string out;
  for (char c : name)
    out += (llvm::isAlnum(c) || c == '_' || c == '$') ? c : '_';
  if (out.empty() || llvm::isDigit(out[0]))
    out.insert(out.begin(), '_');
  return out;
}

/// Clones the ops of `src` (one block ending in a terminator) before the
/// builder's insertion point, all but the terminator.
void cloneBody(OpBuilder &b, Block &src, IRMapping &map) {
  for (Operation &op : src.without_terminator())
    b.clone(op, map);
}

/// Symbols referenced inside `root`, transitively through `table`.
void collectSymbols(Operation *root, SymbolTable &table,
                    llvm::SetVector<Operation *> &out) {
  SmallVector<Operation *> work{root};
  while (!work.empty()) {
    Operation *op = work.pop_back_val();
    op->walk([&](Operation *inner) {
      for (NamedAttribute attr : inner->getAttrs()) {
        attr.getValue().walk([&](SymbolRefAttr ref) {
          Operation *sym = table.lookup(ref.getRootReference());
          if (sym && !sym->hasAttr(kKernelAttrName) && out.insert(sym))
            work.push_back(sym);
        });
      }
    });
  }
}

struct OutlineKernelsPass
    : public mlir::vmoe::cuda::impl::VmoeCudaOutlineKernelsBase<
          OutlineKernelsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = module.getContext();
    if (blockSize < 1 || blockSize > kMaxCudaBlockSize) {
      module.emitError("block-size must be in [1, 1024]");
      return signalPassFailure();
    }
    SymbolTable table(module);

    // Largest grid each kernel is launched with (sizes its scratch type).
    llvm::StringMap<int64_t> maxWorkgroups;
    module.walk([&](LaunchOp launch) {
      ArrayRef<int64_t> g = launch.getGrid();
      int64_t total = g[0] * g[1] * g[2];
      int64_t &m = maxWorkgroups[launch.getKernel()];
      m = std::max(m, total);
    });

    SmallVector<func::FuncOp> kernels;
    for (auto func : module.getOps<func::FuncOp>())
      if (func->hasAttr(kKernelAttrName))
        kernels.push_back(func);
    if (kernels.empty()) {
      module.emitError("has no vmoe.kernel funcs to compile for CUDA");
      return signalPassFailure();
    }
    if (table.lookup(kGpuModuleName)) {
      module.emitError() << "already has a symbol @" << kGpuModuleName;
      return signalPassFailure();
    }

    OpBuilder mb = OpBuilder::atBlockEnd(module.getBody());
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    UnitAttr::get(ctx));
    auto gpuModule =
        gpu::GPUModuleOp::create(mb, module.getLoc(), kGpuModuleName);
    OpBuilder gb = OpBuilder::atBlockBegin(gpuModule.getBody());

    // Helpers and globals the kernels use.
    llvm::SetVector<Operation *> symbols;
    for (func::FuncOp k : kernels)
      collectSymbols(k, table, symbols);
    for (Operation *sym : symbols) {
      Operation *copy = gb.clone(*sym);
      if (auto symOp = dyn_cast<SymbolOpInterface>(copy))
        symOp.setPrivate();
    }

    Type index = IndexType::get(ctx);
    llvm::StringMap<StringRef> entries; // PTX name -> kernel
    for (func::FuncOp k : kernels) {
      std::string ptx = ptxName(k.getName());
      auto [it, inserted] = entries.try_emplace(ptx, k.getName());
      if (!inserted) {
        k.emitError() << "kernels @" << k.getName() << " and @" << it->second
                      << " have the same CUDA entry name '" << ptx << "'";
        return signalPassFailure();
      }
      // The CUDA split first (its messages name CUDA), then the whole
      // kernel contract that both targets compile.
      FailureOr<KernelSignature> sig = splitSignature(k);
      if (failed(sig) || failed(target::verifyKernelFunc(k)))
        return signalPassFailure();
      int64_t workgroups =
          std::max<int64_t>(maxWorkgroups.lookup(k.getName()), 1);
      ArrayRef<Type> kArgs = k.getArgumentTypes();
      SmallVector<Type> types(kArgs.begin(),
                              kArgs.begin() + sig->bindings + sig->constants);
      types.append(3, index);
      if (sig->scratch > 0)
        types.push_back(MemRefType::get({sig->scratch * workgroups},
                                        IntegerType::get(ctx, 8)));
      auto gfunc = gpu::GPUFuncOp::create(gb, k.getLoc(), ptx,
                                          FunctionType::get(ctx, types, {}));
      gfunc->setAttr(kKernelNameAttrName, k.getNameAttr());
      gfunc->setAttr(gpu::GPUDialect::getKernelFuncAttrName(),
                     UnitAttr::get(ctx));
      gfunc.setKnownBlockSizeAttr(
          DenseI32ArrayAttr::get(ctx, {static_cast<int32_t>(blockSize), 1, 1}));
      gfunc->setAttr(kBlockSizeAttrName,
                     IntegerAttr::get(IntegerType::get(ctx, 64), blockSize));
      if (sig->scratch > 0)
        gfunc->setAttr(
            kWorkgroupScratchSizeAttrName,
            IntegerAttr::get(IntegerType::get(ctx, 64), sig->scratch));

      Block &entry = gfunc.getBody().front();
      ImplicitLocOpBuilder b(k.getLoc(), ctx);
      b.setInsertionPointToStart(&entry);
      auto args = entry.getArguments();
      unsigned n = sig->bindings + sig->constants;
      Value gx = args[n], gy = args[n + 1], gz = args[n + 2];
      Value bid = gpu::BlockIdOp::create(b, gpu::Dimension::x);
      Value bdim = gpu::BlockDimOp::create(b, gpu::Dimension::x);
      Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
      Value linear =
          arith::AddIOp::create(b, arith::MulIOp::create(b, bid, bdim), tid);
      Value total =
          arith::MulIOp::create(b, arith::MulIOp::create(b, gx, gy), gz);
      Value inGrid =
          arith::CmpIOp::create(b, arith::CmpIPredicate::ult, linear, total);
      auto ifOp = scf::IfOp::create(b, inGrid, /*withElse=*/false);
      gpu::ReturnOp::create(b);

      b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
      Value wx = arith::RemUIOp::create(b, linear, gx);
      Value rest = arith::DivUIOp::create(b, linear, gx);
      Value wy = arith::RemUIOp::create(b, rest, gy);
      Value wz = arith::DivUIOp::create(b, rest, gy);
      IRMapping map;
      Block &body = k.getBody().front();
      for (unsigned i = 0; i < n; ++i)
        map.map(body.getArgument(i), args[i]);
      map.map(body.getArgument(n), wx);
      map.map(body.getArgument(n + 1), wy);
      map.map(body.getArgument(n + 2), wz);
      if (sig->scratch > 0) {
        Value offset = arith::MulIOp::create(
            b, linear, arith::ConstantIndexOp::create(b, sig->scratch));
        Value slot = memref::ViewOp::create(
            b, cast<MemRefType>(body.getArguments().back().getType()),
            args.back(), offset, ValueRange{});
        map.map(body.getArguments().back(), slot);
      }
      cloneBody(b, body, map);
    }
  }
};

struct EmulateOnCpuPass
    : public mlir::vmoe::cuda::impl::VmoeCudaEmulateOnCpuBase<
          EmulateOnCpuPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = module.getContext();
    auto gpuModule = dyn_cast_or_null<gpu::GPUModuleOp>(
        SymbolTable::lookupSymbolIn(module, kGpuModuleName));
    if (!gpuModule) {
      module.emitError() << "has no gpu.module @" << kGpuModuleName
                         << " (run vmoe-cuda-outline-kernels first)";
      return signalPassFailure();
    }
    SymbolTable table(module);
    llvm::StringMap<int64_t> blockSizes;

    for (auto gfunc : gpuModule.getOps<gpu::GPUFuncOp>()) {
      if (!gfunc.isKernel())
        continue;
      auto kernelName = gfunc->getAttrOfType<StringAttr>(kKernelNameAttrName);
      auto old = kernelName ? dyn_cast_or_null<func::FuncOp>(
                                  table.lookup(kernelName.getValue()))
                            : func::FuncOp();
      auto bs = gfunc->getAttrOfType<IntegerAttr>(kBlockSizeAttrName);
      if (!old || !bs) {
        gfunc.emitOpError("has no vmoe.kernel func or block size");
        return signalPassFailure();
      }
      int64_t blockSize = bs.getInt();
      blockSizes[old.getName()] = blockSize;
      auto scratchAttr =
          gfunc->getAttrOfType<IntegerAttr>(kWorkgroupScratchSizeAttrName);
      // The CPU kernel: gpu.func args (scratch last), then the block id.
      SmallVector<Type> types(gfunc.getArgumentTypes());
      Type scratchType;
      if (scratchAttr) {
        scratchType = types.pop_back_val();
      }
      Type index = IndexType::get(ctx);
      types.append(3, index);
      if (scratchType)
        types.push_back(scratchType);
      OpBuilder mb(old);
      auto func = func::FuncOp::create(mb, old.getLoc(), old.getName(),
                                       FunctionType::get(ctx, types, {}));
      func.setPrivate();
      func->setAttr(kKernelAttrName, UnitAttr::get(ctx));
      if (scratchType)
        func->setAttr(
            kScratchSizeAttrName,
            IntegerAttr::get(IntegerType::get(ctx, 64),
                             cast<MemRefType>(scratchType).getNumElements()));
      // Same leading bindings as the kernel it replaces: the serializer
      // records the kernel's written bindings from here.
      if (Attribute written = old->getAttr(kWrittenBindingsAttrName))
        func->setAttr(kWrittenBindingsAttrName, written);
      old.erase();

      Block *entry = func.addEntryBlock();
      ImplicitLocOpBuilder b(func.getLoc(), ctx);
      b.setInsertionPointToStart(entry);
      auto args = entry->getArguments();
      unsigned n = gfunc.getNumArguments() - (scratchType ? 1 : 0);
      Value blockId = args[n]; // workgroup x
      Value c0 = arith::ConstantIndexOp::create(b, 0);
      Value c1 = arith::ConstantIndexOp::create(b, 1);
      Value bdim = arith::ConstantIndexOp::create(b, blockSize);
      auto loop = scf::ForOp::create(b, c0, bdim, c1);
      func::ReturnOp::create(b);

      OpBuilder lb = OpBuilder::atBlockBegin(loop.getBody());
      IRMapping map;
      Block &src = gfunc.getBody().front();
      for (unsigned i = 0; i < n; ++i)
        map.map(src.getArgument(i), args[i]);
      if (scratchType)
        map.map(src.getArguments().back(), args.back());
      Value tid = loop.getInductionVar();
      for (Operation &op : src.without_terminator()) {
        if (auto id = dyn_cast<gpu::BlockIdOp>(op)) {
          map.map(id.getResult(), blockId);
          continue;
        }
        if (auto id = dyn_cast<gpu::ThreadIdOp>(op)) {
          map.map(id.getResult(), tid);
          continue;
        }
        if (auto dim = dyn_cast<gpu::BlockDimOp>(op)) {
          map.map(dim.getResult(), bdim);
          continue;
        }
        lb.clone(op, map);
      }
      bool bad = false;
      func.walk([&](Operation *op) {
        if (isa<gpu::GPUDialect>(op->getDialect())) {
          op->emitOpError("cannot be emulated on the CPU");
          bad = true;
        }
      });
      if (bad)
        return signalPassFailure();
    }

    // Launches: the CUDA grid, the workgroup counts as constants.
    WalkResult result = module.walk([&](LaunchOp launch) {
      auto it = blockSizes.find(launch.getKernel());
      if (it == blockSizes.end()) {
        launch.emitOpError("launches a kernel without a gpu.func");
        return WalkResult::interrupt();
      }
      ArrayRef<int64_t> g = launch.getGrid();
      int64_t total = g[0] * g[1] * g[2];
      int64_t blocks = (total + it->second - 1) / it->second;
      ImplicitLocOpBuilder b(launch.getLoc(), launch);
      SmallVector<Value> counts;
      for (int64_t d : g)
        counts.push_back(arith::ConstantIndexOp::create(b, d));
      launch.getConstantsMutable().append(counts);
      launch.setGrid(ArrayRef<int64_t>{blocks, 1, 1});
      // The emulated grid is one of CUDA blocks: it runs whole at every
      // batch (the kernels bound their rows by the batch themselves).
      launch->removeAttr("batch_grid");
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      return signalPassFailure();
    gpuModule.erase();
    module->removeAttr(gpu::GPUDialect::getContainerModuleAttrName());
  }
};

} // namespace
