//===- EmitAbi.cpp - vmoe kernel ABI entries for lowered kernels ----------===//
//
// The runtime calls every kernel through one C signature,
//   int32_t k_entry(const vmoe_dispatch_state_v0_t *,
//                   const vmoe_workgroup_state_v0_t *),
// while the lowered kernel @k takes its bindings, constants and ids as
// separate scalars. The entry unpacks the ABI structs and calls @k, which
// becomes internal and is inlined into it.
//
// Field offsets are those of kernel_abi.h for LP64 (x86-64 and AArch64
// alike); the C++ driver rejects targets with other pointer sizes.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Target/CPU/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::vmoe::cpu {
#define GEN_PASS_DEF_VMOECPUEMITABI
#include "vmoe/Target/CPU/Passes.h.inc"
} // namespace mlir::vmoe::cpu

using namespace mlir;
using namespace mlir::vmoe;
using namespace mlir::vmoe::cpu;

namespace {
// vmoe_dispatch_state_v0_t.
constexpr int64_t kDispatchBindings = 0;
constexpr int64_t kDispatchBindingCount = 16;
constexpr int64_t kDispatchConstantCount = 20;
constexpr int64_t kDispatchConstants = 24;
// vmoe_workgroup_state_v0_t.
constexpr int64_t kWorkgroupId = 0;
constexpr int64_t kWorkgroupScratch = 24;
constexpr int64_t kWorkgroupScratchSize = 32;

/// What the bare-pointer signature of a lowered kernel holds.
struct KernelSignature {
  unsigned numBindings = 0;
  unsigned numConstants = 0;
  bool hasScratch = false;
  uint64_t scratchSize = 0;
};

/// Recovers the argument groups from the lowered signature: leading
/// pointers (bindings), i64s (constants, then 3 ids), and the scratch
/// pointer when vmoe.scratch_size is set.
FailureOr<KernelSignature> analyzeKernel(LLVM::LLVMFuncOp func) {
  KernelSignature sig;
  if (func.isExternal())
    return func.emitOpError("vmoe.kernel function has no body");
  LLVM::LLVMFunctionType type = func.getFunctionType();
  if (!isa<LLVM::LLVMVoidType>(type.getReturnType()) || type.isVarArg())
    return func.emitOpError("vmoe.kernel function must return void and must "
                            "not be variadic");
  auto isPtr = [](Type t) {
    auto ptr = dyn_cast<LLVM::LLVMPointerType>(t);
    return ptr && ptr.getAddressSpace() == 0;
  };
  ArrayRef<Type> params = type.getParams();
  size_t end = params.size();
  if (Attribute attr = func->getAttr(kScratchSizeAttrName)) {
    auto size = dyn_cast<IntegerAttr>(attr);
    if (!size || size.getInt() < 0)
      return func.emitOpError()
             << kScratchSizeAttrName << " must be a non-negative integer";
    if (end == 0 || !isPtr(params[end - 1]))
      return func.emitOpError("with ")
             << kScratchSizeAttrName
             << " must take the scratch pointer as last argument";
    sig.hasScratch = true;
    sig.scratchSize = size.getInt();
    --end;
  }
  size_t i = 0;
  while (i < end && isPtr(params[i]))
    ++i;
  sig.numBindings = i;
  for (; i < end; ++i)
    if (!params[i].isInteger(64))
      return func.emitOpError("argument #")
             << i << " has type " << params[i]
             << "; expected binding pointers, then i64 push constants and "
                "workgroup ids (lower with the bare-pointer memref calling "
                "convention and 64-bit index)";
  if (end - sig.numBindings < 3)
    return func.emitOpError("must take the workgroup ids x, y, z as its last "
                            "i64 arguments");
  sig.numConstants = end - sig.numBindings - 3;
  return sig;
}

/// Adds the check-and-unpack entry for `kernel` at the end of `module`.
void buildEntry(OpBuilder &builder, LLVM::LLVMFuncOp kernel,
                const KernelSignature &sig, StringRef entryName) {
  MLIRContext *ctx = builder.getContext();
  Location loc = kernel.getLoc();
  Type ptrType = LLVM::LLVMPointerType::get(ctx);
  Type i8Type = builder.getI8Type();
  Type i32Type = builder.getI32Type();
  Type i64Type = builder.getI64Type();

  auto entryType =
      LLVM::LLVMFunctionType::get(i32Type, {ptrType, ptrType}, false);
  auto entry = LLVM::LLVMFuncOp::create(builder, loc, entryName, entryType);
  entry->setAttr(kKernelNameAttrName, builder.getStringAttr(kernel.getName()));
  entry->setAttr(kBindingCountAttrName,
                 builder.getI32IntegerAttr(sig.numBindings));
  entry->setAttr(kConstantCountAttrName,
                 builder.getI32IntegerAttr(sig.numConstants));
  entry->setAttr(kScratchSizeAttrName,
                 builder.getI64IntegerAttr(sig.scratchSize));

  OpBuilder::InsertionGuard guard(builder);
  Block *body = entry.addEntryBlock(builder);
  Value dispatch = body->getArgument(0);
  Value workgroup = body->getArgument(1);
  builder.setInsertionPointToStart(body);

  auto fieldAddr = [&](Value base, int64_t offset) -> Value {
    if (offset == 0)
      return base;
    return LLVM::GEPOp::create(builder, loc, ptrType, i8Type, base,
                               ArrayRef<LLVM::GEPArg>{offset},
                               LLVM::GEPNoWrapFlags::inbounds);
  };
  auto load = [&](Type type, Value addr, unsigned align) -> Value {
    return LLVM::LoadOp::create(builder, loc, type, addr, align);
  };
  auto i32Const = [&](int32_t v) -> Value {
    return LLVM::ConstantOp::create(builder, loc, i32Type,
                                    builder.getI32IntegerAttr(v));
  };

  // A dispatch state that gives fewer bindings, constants or scratch bytes
  // than the kernel reads is refused instead of read out of bounds. The
  // first failing check decides the status, in EntryStatus order.
  SmallVector<std::pair<Value, int32_t>> checks;
  auto addCountCheck = [&](Value base, int64_t offset, Type type,
                           unsigned align, uint64_t need, int32_t status) {
    Value have = load(type, fieldAddr(base, offset), align);
    Value needed = LLVM::ConstantOp::create(builder, loc, type,
                                            builder.getIntegerAttr(type, need));
    Value ok = LLVM::ICmpOp::create(builder, loc, LLVM::ICmpPredicate::uge,
                                    have, needed);
    checks.push_back({ok, status});
  };
  if (sig.numBindings)
    addCountCheck(dispatch, kDispatchBindingCount, i32Type, 4, sig.numBindings,
                  kEntryTooFewBindings);
  if (sig.numConstants)
    addCountCheck(dispatch, kDispatchConstantCount, i32Type, 4,
                  sig.numConstants, kEntryTooFewConstants);
  if (sig.hasScratch && sig.scratchSize)
    addCountCheck(workgroup, kWorkgroupScratchSize, i64Type, 8, sig.scratchSize,
                  kEntryScratchTooSmall);
  // Workgroup ids stay inside the grid the kernel was made for, whatever
  // grid the module's metadata asks the runtime for.
  if (auto grid =
          kernel->getAttrOfType<DenseI64ArrayAttr>(kWorkgroupCountAttrName)) {
    for (int64_t d = 0; d < 3 && d < grid.size(); ++d) {
      Value id = load(i32Type, fieldAddr(workgroup, kWorkgroupId + 4 * d), 4);
      Value bound = i32Const(static_cast<int32_t>(
          static_cast<uint32_t>(grid[static_cast<size_t>(d)])));
      checks.push_back({LLVM::ICmpOp::create(
                            builder, loc, LLVM::ICmpPredicate::ult, id, bound),
                        kEntryOutsideGrid});
    }
  }
  if (!checks.empty()) {
    Value allOk = checks.front().first;
    for (auto &check : llvm::drop_begin(checks))
      allOk = LLVM::AndOp::create(builder, loc, allOk, check.first);
    // status = first failing check's code, built from the last check back.
    Value status = i32Const(checks.back().second);
    for (auto &check : llvm::drop_begin(llvm::reverse(checks)))
      status = LLVM::SelectOp::create(builder, loc, check.first, status,
                                      i32Const(check.second));
    Block *fail = builder.createBlock(&entry.getBody());
    Block *call = builder.createBlock(&entry.getBody());
    builder.setInsertionPointToEnd(body);
    // The failure path is cold: a valid module never takes it.
    LLVM::CondBrOp::create(builder, loc, allOk, call, ValueRange(), fail,
                           ValueRange(), std::make_pair(1u << 20, 1u));
    builder.setInsertionPointToStart(fail);
    LLVM::ReturnOp::create(builder, loc, status);
    builder.setInsertionPointToStart(call);
  }

  SmallVector<Value> args;
  if (sig.numBindings) {
    Value bindings = load(ptrType, fieldAddr(dispatch, kDispatchBindings), 8);
    for (unsigned i = 0; i < sig.numBindings; ++i) {
      Value slot =
          LLVM::GEPOp::create(builder, loc, ptrType, ptrType, bindings,
                              ArrayRef<LLVM::GEPArg>{static_cast<int32_t>(i)},
                              LLVM::GEPNoWrapFlags::inbounds);
      args.push_back(load(ptrType, slot, 8));
    }
  }
  if (sig.numConstants) {
    Value constants = load(ptrType, fieldAddr(dispatch, kDispatchConstants), 8);
    for (unsigned i = 0; i < sig.numConstants; ++i) {
      Value slot =
          LLVM::GEPOp::create(builder, loc, ptrType, i64Type, constants,
                              ArrayRef<LLVM::GEPArg>{static_cast<int32_t>(i)},
                              LLVM::GEPNoWrapFlags::inbounds);
      args.push_back(load(i64Type, slot, 8));
    }
  }
  for (int64_t d = 0; d < 3; ++d) {
    Value id = load(i32Type, fieldAddr(workgroup, kWorkgroupId + 4 * d), 4);
    args.push_back(LLVM::ZExtOp::create(builder, loc, i64Type, id));
  }
  if (sig.hasScratch)
    args.push_back(load(ptrType, fieldAddr(workgroup, kWorkgroupScratch), 8));
  LLVM::CallOp::create(builder, loc, kernel, args);
  LLVM::ReturnOp::create(builder, loc, i32Const(0));
}

struct EmitAbiPass
    : public mlir::vmoe::cpu::impl::VmoeCpuEmitAbiBase<EmitAbiPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    // A partial lowering leaves non-LLVM ops behind, which translation would
    // reject with a less helpful message (or not at all for some).
    WalkResult walk = module.walk([](Operation *op) {
      if (isa<ModuleOp>(op) ||
          isa_and_nonnull<LLVM::LLVMDialect>(op->getDialect()))
        return WalkResult::advance();
      op->emitOpError("was not lowered to the LLVM dialect");
      return WalkResult::interrupt();
    });
    if (walk.wasInterrupted())
      return signalPassFailure();

    SmallVector<LLVM::LLVMFuncOp> kernels;
    for (auto func : module.getOps<LLVM::LLVMFuncOp>())
      if (func->hasAttr(kKernelAttrName))
        kernels.push_back(func);

    SymbolTable symbols(module);
    OpBuilder builder = OpBuilder::atBlockEnd(module.getBody());
    for (LLVM::LLVMFuncOp kernel : kernels) {
      FailureOr<KernelSignature> sig = analyzeKernel(kernel);
      if (failed(sig))
        return signalPassFailure();
      std::string entryName = (kernel.getName() + kCpuEntrySuffix).str();
      if (Operation *clash = symbols.lookup(entryName)) {
        clash->emitOpError("uses the symbol of the ABI entry of kernel @")
            << kernel.getName();
        return signalPassFailure();
      }
      buildEntry(builder, kernel, *sig, entryName);
      symbols.insert(&module.getBody()->back());
      // Only the entry is exported; the body is inlined into it.
      kernel.setLinkage(LLVM::Linkage::Internal);
      kernel.setAlwaysInline(true);
      kernel->removeAttr(kKernelAttrName);
      kernel->removeAttr(kScratchSizeAttrName);
      kernel->removeAttr(kWorkgroupCountAttrName);
    }

    // Everything else that is defined here becomes internal: the shared
    // object exports the entries only (MLIR's private visibility does not
    // reach LLVM IR by itself).
    for (auto func : module.getOps<LLVM::LLVMFuncOp>())
      if (!func.isExternal() && !func->hasAttr(kKernelNameAttrName))
        func.setLinkage(LLVM::Linkage::Internal);
    for (auto global : module.getOps<LLVM::GlobalOp>())
      if (global.getLinkage() == LLVM::Linkage::External &&
          (global.getValueOrNull() || global.getInitializerBlock()))
        global.setLinkage(LLVM::Linkage::Internal);
  }
};
} // namespace
