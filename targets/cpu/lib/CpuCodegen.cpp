//===- CpuCodegen.cpp - Kernel funcs to a CPU shared object ---------------===//

#include "vmoe/Target/CPU/CpuCodegen.h"
#include "vmoe/Target/CPU/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/IR/BasicBlock.h"
#include "llvm/IR/Function.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/Intrinsics.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Object/ObjectFile.h"
#include "llvm/Passes/OptimizationLevel.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Triple.h"
#include "llvm/Transforms/Utils/Cloning.h"

#ifndef VMOE_LLVM_TOOLS_DIR
#define VMOE_LLVM_TOOLS_DIR ""
#endif

using namespace mlir;
using namespace mlir::vmoe;
using namespace mlir::vmoe::cpu;

namespace {
/// Collects the first error and stops: every step below reports through it.
class ErrorSink {
public:
  explicit ErrorSink(std::string *out) : out(out) {}
  LogicalResult fail(const llvm::Twine &msg) {
    if (out)
      *out = msg.str();
    return failure();
  }

private:
  std::string *out;
};

/// Renders MLIR diagnostics (with notes) while a compile step runs.
class DiagnosticCollector {
public:
  explicit DiagnosticCollector(MLIRContext *ctx)
      : handler(ctx, [this](Diagnostic &diag) {
          append(diag);
          return success();
        }) {}
  std::string take() { return std::move(text); }

private:
  void append(Diagnostic &diag) {
    llvm::raw_string_ostream os(text);
    os << diag.getLocation() << ": ";
    switch (diag.getSeverity()) {
    case DiagnosticSeverity::Error:
      os << "error: ";
      break;
    case DiagnosticSeverity::Warning:
      os << "warning: ";
      break;
    case DiagnosticSeverity::Note:
      os << "note: ";
      break;
    case DiagnosticSeverity::Remark:
      os << "remark: ";
      break;
    }
    os << diag << "\n";
    for (Diagnostic &note : diag.getNotes())
      os << note.getLocation() << ": note: " << note << "\n";
  }

  std::string text;
  ScopedDiagnosticHandler handler;
};

/// A temporary file that is removed when this goes out of scope.
struct TempFile {
  llvm::SmallString<128> path;
  llvm::FileRemover remover;
};

LogicalResult createTempFile(StringRef suffix, TempFile &file,
                             ErrorSink &errors) {
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("vmoe-cpu", suffix, file.path))
    return errors.fail("cannot create a temporary ." + suffix +
                       " file: " + ec.message());
  file.remover.setFile(file.path);
  return success();
}

LogicalResult writeFile(StringRef path, StringRef bytes, ErrorSink &errors) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return errors.fail("cannot open '" + path + "': " + ec.message());
  os << bytes;
  os.close();
  if (os.has_error()) {
    // Cleared, or the stream's destructor aborts the compiler (a full disk
    // must give this message, not a crash).
    std::string message = os.error().message();
    os.clear_error();
    return errors.fail("cannot write '" + path + "': " + message);
  }
  return success();
}

/// The O-level pair used for the IR pipeline and for instruction selection.
struct OptLevels {
  llvm::OptimizationLevel ir;
  llvm::CodeGenOptLevel codegen;
};

FailureOr<OptLevels> getOptLevels(unsigned level) {
  switch (level) {
  case 0:
    return OptLevels{llvm::OptimizationLevel::O0, llvm::CodeGenOptLevel::None};
  case 1:
    return OptLevels{llvm::OptimizationLevel::O1, llvm::CodeGenOptLevel::Less};
  case 2:
    return OptLevels{llvm::OptimizationLevel::O2,
                     llvm::CodeGenOptLevel::Default};
  case 3:
    return OptLevels{llvm::OptimizationLevel::O3,
                     llvm::CodeGenOptLevel::Aggressive};
  default:
    return failure();
  }
}

//===----------------------------------------------------------------------===//
// memcpy / memmove / memset
//===----------------------------------------------------------------------===//

// The back ends turn large or variable llvm.memcpy/memmove/memset (from
// memref.copy, or from loop idioms) into calls to the C functions. The
// shared object links no libc, so it carries its own copies: hidden (bound
// inside the .so, never exported or interposed), "no-builtins" (so the
// optimizer cannot turn their loops back into calls to themselves), and
// dropped by --gc-sections when unused. The loop vectorizer makes them
// reasonably fast.

/// for (i = 0; i != n; ++i) body(i), or the reverse when `backward`.
void emitByteLoop(llvm::IRBuilder<> &b, llvm::Function *f, llvm::Value *n,
                  bool backward, llvm::function_ref<void(llvm::Value *)> body,
                  llvm::BasicBlock *exit) {
  llvm::LLVMContext &ctx = b.getContext();
  llvm::Type *sizeType = n->getType();
  llvm::BasicBlock *pre = b.GetInsertBlock();
  llvm::BasicBlock *loop = llvm::BasicBlock::Create(ctx, "loop", f, exit);
  b.CreateCondBr(b.CreateICmpEQ(n, llvm::ConstantInt::get(sizeType, 0)), exit,
                 loop);
  b.SetInsertPoint(loop);
  llvm::PHINode *iv = b.CreatePHI(sizeType, 2);
  iv->addIncoming(backward ? n : llvm::ConstantInt::get(sizeType, 0), pre);
  llvm::Value *index =
      backward ? b.CreateSub(iv, llvm::ConstantInt::get(sizeType, 1))
               : static_cast<llvm::Value *>(iv);
  body(index);
  llvm::Value *next =
      backward ? index : b.CreateAdd(iv, llvm::ConstantInt::get(sizeType, 1));
  iv->addIncoming(next, loop);
  llvm::Value *done =
      b.CreateICmpEQ(next, backward ? llvm::ConstantInt::get(sizeType, 0) : n);
  b.CreateCondBr(done, exit, loop);
}

void addMemoryFunctions(llvm::Module &module) {
  llvm::LLVMContext &ctx = module.getContext();
  llvm::Type *ptr = llvm::PointerType::get(ctx, 0);
  llvm::Type *i8 = llvm::Type::getInt8Ty(ctx);
  llvm::Type *i32 = llvm::Type::getInt32Ty(ctx);
  llvm::Type *size = module.getDataLayout().getIntPtrType(ctx);

  auto declare = [&](StringRef name, llvm::Type *second) -> llvm::Function * {
    // A kernel module that defines one itself keeps its own.
    if (llvm::Function *existing = module.getFunction(name))
      if (!existing->isDeclaration())
        return nullptr;
    auto *type = llvm::FunctionType::get(ptr, {ptr, second, size}, false);
    llvm::Function *f = llvm::cast<llvm::Function>(
        module.getOrInsertFunction(name, type).getCallee());
    f->setLinkage(llvm::GlobalValue::ExternalLinkage);
    f->setVisibility(llvm::GlobalValue::HiddenVisibility);
    f->addFnAttr("no-builtins");
    f->addFnAttr(llvm::Attribute::NoUnwind);
    return f;
  };
  auto copyByte = [&](llvm::IRBuilder<> &b, llvm::Value *dst, llvm::Value *src,
                      llvm::Value *i) {
    llvm::Value *v = b.CreateLoad(i8, b.CreateInBoundsGEP(i8, src, i));
    b.CreateStore(v, b.CreateInBoundsGEP(i8, dst, i));
  };

  if (llvm::Function *f = declare("memcpy", ptr)) {
    llvm::Value *dst = f->getArg(0), *src = f->getArg(1), *n = f->getArg(2);
    llvm::BasicBlock *entry = llvm::BasicBlock::Create(ctx, "entry", f);
    llvm::BasicBlock *exit = llvm::BasicBlock::Create(ctx, "exit", f);
    llvm::IRBuilder<> b(entry);
    emitByteLoop(
        b, f, n, /*backward=*/false,
        [&](llvm::Value *i) { copyByte(b, dst, src, i); }, exit);
    b.SetInsertPoint(exit);
    b.CreateRet(dst);
  }
  if (llvm::Function *f = declare("memmove", ptr)) {
    llvm::Value *dst = f->getArg(0), *src = f->getArg(1), *n = f->getArg(2);
    llvm::BasicBlock *entry = llvm::BasicBlock::Create(ctx, "entry", f);
    llvm::BasicBlock *forward = llvm::BasicBlock::Create(ctx, "forward", f);
    llvm::BasicBlock *backward = llvm::BasicBlock::Create(ctx, "backward", f);
    llvm::BasicBlock *exit = llvm::BasicBlock::Create(ctx, "exit", f);
    llvm::IRBuilder<> b(entry);
    // Copying forward is safe when the destination starts below the source.
    b.CreateCondBr(b.CreateICmpULT(b.CreatePtrToInt(dst, size),
                                   b.CreatePtrToInt(src, size)),
                   forward, backward);
    b.SetInsertPoint(forward);
    emitByteLoop(
        b, f, n, /*backward=*/false,
        [&](llvm::Value *i) { copyByte(b, dst, src, i); }, exit);
    b.SetInsertPoint(backward);
    emitByteLoop(
        b, f, n, /*backward=*/true,
        [&](llvm::Value *i) { copyByte(b, dst, src, i); }, exit);
    b.SetInsertPoint(exit);
    b.CreateRet(dst);
  }
  if (llvm::Function *f = declare("memset", i32)) {
    llvm::Value *dst = f->getArg(0), *n = f->getArg(2);
    llvm::BasicBlock *entry = llvm::BasicBlock::Create(ctx, "entry", f);
    llvm::BasicBlock *exit = llvm::BasicBlock::Create(ctx, "exit", f);
    llvm::IRBuilder<> b(entry);
    llvm::Value *byte = b.CreateTrunc(f->getArg(1), i8);
    emitByteLoop(
        b, f, n, /*backward=*/false,
        [&](llvm::Value *i) {
          b.CreateStore(byte, b.CreateInBoundsGEP(i8, dst, i));
        },
        exit);
    b.SetInsertPoint(exit);
    b.CreateRet(dst);
  }
}

/// x86 without FMA lowers llvm.fma to a call to fmaf/fma, which the shared
/// object cannot import. The fmas come from the polynomial approximations,
/// which use them for speed, so they become fmuladd (fused where the
/// hardware can) there. Targets with FMA keep exact fma semantics.
void relaxFmaWithoutHardware(llvm::Module &module, llvm::TargetMachine &tm) {
  const llvm::MCSubtargetInfo *sti = tm.getMCSubtargetInfo();
  if (!tm.getTargetTriple().isX86() || sti->checkFeatures("+fma") ||
      sti->checkFeatures("+avx512f"))
    return;
  for (llvm::Function &fma : module) {
    if (fma.getIntrinsicID() != llvm::Intrinsic::fma)
      continue;
    llvm::Function *fmuladd = llvm::Intrinsic::getOrInsertDeclaration(
        &module, llvm::Intrinsic::fmuladd, {fma.getReturnType()});
    for (llvm::User *user : llvm::make_early_inc_range(fma.users()))
      if (auto *call = llvm::dyn_cast<llvm::CallInst>(user))
        call->setCalledFunction(fmuladd);
  }
}

//===----------------------------------------------------------------------===//
// Steps
//===----------------------------------------------------------------------===//

/// Extracts the kernels and lowers them to the LLVM dialect with the ABI
/// entries; fills `kernels` from the entries.
FailureOr<OwningOpRef<ModuleOp>>
lowerToLLVMDialect(ModuleOp module, std::vector<CpuKernelInfo> &kernels,
                   ErrorSink &errors) {
  MLIRContext *ctx = module.getContext();
  DiagnosticCollector diagnostics(ctx);
  FailureOr<OwningOpRef<ModuleOp>> kernelModule = extractKernelModule(module);
  if (failed(kernelModule))
    return errors.fail("CPU codegen: cannot extract the kernels:\n" +
                       diagnostics.take());
  PassManager pm(ctx, ModuleOp::getOperationName());
  buildCpuLowerKernelsToLLVMPipeline(pm);
  if (failed(pm.run(**kernelModule)))
    return errors.fail("CPU codegen: lowering the kernels to the LLVM "
                       "dialect failed:\n" +
                       diagnostics.take());

  for (auto entry : (*kernelModule)->getOps<LLVM::LLVMFuncOp>()) {
    auto name = entry->getAttrOfType<StringAttr>(kKernelNameAttrName);
    if (!name)
      continue;
    auto bindings = entry->getAttrOfType<IntegerAttr>(kBindingCountAttrName);
    auto constants = entry->getAttrOfType<IntegerAttr>(kConstantCountAttrName);
    auto scratch = entry->getAttrOfType<IntegerAttr>(kScratchSizeAttrName);
    if (!bindings || !constants || !scratch)
      return errors.fail("CPU codegen: the ABI entry " + entry.getName().str() +
                         " lacks its " + kBindingCountAttrName.str() + ", " +
                         kConstantCountAttrName.str() + " or " +
                         kScratchSizeAttrName.str());
    CpuKernelInfo info;
    info.name = name.str();
    info.entry = entry.getName().str();
    info.bindingCount = bindings.getInt();
    info.constantCount = constants.getInt();
    info.scratchSize = scratch.getInt();
    kernels.push_back(std::move(info));
  }
  return std::move(*kernelModule);
}

FailureOr<std::unique_ptr<llvm::TargetMachine>>
createTargetMachine(const CpuTarget &target, llvm::CodeGenOptLevel level,
                    ErrorSink &errors) {
  std::string message;
  if (failed(verifyCpuTarget(target, &message)))
    return errors.fail("CPU codegen: " + message);
  llvm::Triple triple(target.triple);
  const llvm::Target *llvmTarget =
      llvm::TargetRegistry::lookupTarget(triple, message);
  if (!llvmTarget)
    return errors.fail("CPU codegen: " + message);
  llvm::TargetOptions options;
  // One section per function/global so that ld.lld --gc-sections drops
  // what no entry reaches (e.g. the unused memory functions).
  options.FunctionSections = true;
  options.DataSections = true;
  std::unique_ptr<llvm::TargetMachine> tm(llvmTarget->createTargetMachine(
      triple, target.cpu, target.features, options, llvm::Reloc::PIC_,
      std::nullopt, level));
  if (!tm)
    return errors.fail("CPU codegen: cannot create a target machine for '" +
                       target.triple + "'");
  if (tm->createDataLayout().getPointerSize() != 8)
    return errors.fail("CPU codegen: the kernel ABI needs 64-bit pointers");
  return std::move(tm);
}

void optimize(llvm::Module &module, llvm::TargetMachine &tm,
              const OptLevels &levels) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions tuning;
  bool vectorize = levels.ir.getSpeedupLevel() >= 2;
  tuning.LoopVectorization = vectorize;
  tuning.SLPVectorization = vectorize;
  tuning.LoopUnrolling = levels.ir.getSpeedupLevel() >= 2;
  llvm::PassBuilder pb(&tm, tuning);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm =
      levels.ir == llvm::OptimizationLevel::O0
          ? pb.buildO0DefaultPipeline(levels.ir)
          : pb.buildPerModuleDefaultPipeline(levels.ir);
  mpm.run(module, mam);
}

/// Symbols the object needs from outside: none may remain, since the
/// shared object is linked without any library.
LogicalResult checkSelfContained(StringRef object, ErrorSink &errors) {
  llvm::Expected<std::unique_ptr<llvm::object::ObjectFile>> file =
      llvm::object::ObjectFile::createObjectFile(
          llvm::MemoryBufferRef(object, "kernels.o"));
  if (!file)
    return errors.fail("CPU codegen: cannot read the emitted object: " +
                       llvm::toString(file.takeError()));
  std::vector<std::string> undefined;
  for (const llvm::object::SymbolRef &symbol : (*file)->symbols()) {
    llvm::Expected<uint32_t> flags = symbol.getFlags();
    if (!flags) {
      llvm::consumeError(flags.takeError());
      continue;
    }
    if (!(*flags & llvm::object::SymbolRef::SF_Undefined))
      continue;
    llvm::Expected<StringRef> name = symbol.getName();
    if (!name) {
      llvm::consumeError(name.takeError());
      continue;
    }
    if (!name->empty())
      undefined.push_back(name->str());
  }
  if (undefined.empty())
    return success();
  return errors.fail(
      "CPU codegen: the kernels need symbols that the shared object cannot "
      "import (it links no libc/libm): " +
      llvm::join(undefined, ", ") +
      ". f32 math is expanded in-line; f64 math functions, frem, "
      "memref.alloc (malloc) and memref.copy of non-contiguous memrefs "
      "(memrefCopy) are not supported in kernels");
}

FailureOr<std::string> findLinker(const CpuCodegenOptions &options,
                                  ErrorSink &errors) {
  if (!options.linkerPath.empty()) {
    if (!llvm::sys::fs::can_execute(options.linkerPath))
      return errors.fail("CPU codegen: linker '" + options.linkerPath +
                         "' is not an executable file");
    return options.linkerPath;
  }
  StringRef toolsDir = VMOE_LLVM_TOOLS_DIR;
  if (!toolsDir.empty())
    if (llvm::ErrorOr<std::string> path =
            llvm::sys::findProgramByName("ld.lld", {toolsDir}))
      return *path;
  for (StringRef name : {"ld.lld-22", "ld.lld"})
    if (llvm::ErrorOr<std::string> path = llvm::sys::findProgramByName(name))
      return *path;
  return errors.fail("CPU codegen: cannot find ld.lld (looked in '" + toolsDir +
                     "' and for ld.lld-22 / ld.lld in PATH)");
}

FailureOr<std::string> linkSharedObject(StringRef object, StringRef linker,
                                        ErrorSink &errors) {
  TempFile objectFile, sharedFile, logFile;
  if (failed(createTempFile("o", objectFile, errors)) ||
      failed(createTempFile("so", sharedFile, errors)) ||
      failed(createTempFile("log", logFile, errors)) ||
      failed(writeFile(objectFile.path, object, errors)))
    return failure();

  // No libraries: the object is self-contained (checked before), so this
  // links for any target without a sysroot. --no-undefined makes lld
  // re-check that; -z now + relro harden the loaded image.
  SmallVector<StringRef> args = {linker,
                                 "-shared",
                                 "--no-undefined",
                                 "--gc-sections",
                                 "--hash-style=both",
                                 "--build-id",
                                 "-z",
                                 "noexecstack",
                                 "-z",
                                 "relro",
                                 "-z",
                                 "now",
                                 "-o",
                                 sharedFile.path,
                                 objectFile.path};
  std::optional<StringRef> redirects[] = {
      StringRef(""), StringRef(logFile.path), StringRef(logFile.path)};
  std::string execError;
  bool execFailed = false;
  int rc = llvm::sys::ExecuteAndWait(linker, args, std::nullopt, redirects,
                                     /*SecondsToWait=*/300, /*MemoryLimit=*/0,
                                     &execError, &execFailed);
  if (execFailed)
    return errors.fail("CPU codegen: cannot run '" + linker +
                       "': " + execError);
  if (rc != 0) {
    std::string log;
    if (auto buffer = llvm::MemoryBuffer::getFile(logFile.path))
      log = (*buffer)->getBuffer().trim().str();
    return errors.fail(
        "CPU codegen: '" + linker + "' failed (exit code " + llvm::Twine(rc) +
        ")" + (execError.empty() ? "" : ": " + execError) + ":\n" + log);
  }
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> shared =
      llvm::MemoryBuffer::getFile(sharedFile.path, /*IsText=*/false,
                                  /*RequiresNullTerminator=*/false);
  if (!shared)
    return errors.fail("CPU codegen: cannot read the linked shared object: " +
                       shared.getError().message());
  return (*shared)->getBuffer().str();
}
} // namespace

FailureOr<CpuExecutable>
mlir::vmoe::cpu::compileKernels(ModuleOp module, const CpuTarget &target,
                                std::string *errorMessage,
                                const CpuCodegenOptions &options) {
  ErrorSink errors(errorMessage);
  FailureOr<OptLevels> levels = getOptLevels(options.optLevel);
  if (failed(levels))
    return errors.fail("CPU codegen: optimization level " +
                       llvm::Twine(options.optLevel) + " is not 0..3");
  // The cheap checks first: no lowering work for a run that cannot link.
  FailureOr<std::string> linker = findLinker(options, errors);
  if (failed(linker))
    return failure();
  initializeCpuCodegenLLVMTargets();
  FailureOr<std::unique_ptr<llvm::TargetMachine>> tm =
      createTargetMachine(target, levels->codegen, errors);
  if (failed(tm))
    return failure();

  // Translation needs the LLVM IR interfaces of the builtin and llvm
  // dialects, which a parser-only registry lacks.
  MLIRContext *ctx = module.getContext();
  {
    DialectRegistry registry;
    registerCpuCodegenDialects(registry);
    ctx->appendDialectRegistry(registry);
  }

  CpuExecutable result;
  FailureOr<OwningOpRef<ModuleOp>> lowered =
      lowerToLLVMDialect(module, result.kernels, errors);
  if (failed(lowered))
    return failure();

  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule;
  {
    DiagnosticCollector diagnostics(ctx);
    llvmModule =
        translateModuleToLLVMIR(lowered->get(), llvmContext, "vmoe_kernels");
    if (!llvmModule)
      return errors.fail("CPU codegen: translation to LLVM IR failed:\n" +
                         diagnostics.take());
  }
  llvmModule->setTargetTriple((*tm)->getTargetTriple());
  llvmModule->setDataLayout((*tm)->createDataLayout());
  addMemoryFunctions(*llvmModule);
  relaxFmaWithoutHardware(*llvmModule, **tm);
  // Function attributes, not only the target machine, decide what the IR
  // optimizer (vectorizer cost model, inliner compatibility) may assume.
  for (llvm::Function &f : *llvmModule) {
    if (f.isDeclaration())
      continue;
    f.addFnAttr("target-cpu", target.cpu);
    if (!target.features.empty())
      f.addFnAttr("target-features", target.features);
    // Kernels never throw; this also keeps .eh_frame out of the object.
    f.addFnAttr(llvm::Attribute::NoUnwind);
  }
  {
    std::string message;
    llvm::raw_string_ostream os(message);
    if (llvm::verifyModule(*llvmModule, &os))
      return errors.fail("CPU codegen: invalid LLVM IR: " + message);
  }

  optimize(*llvmModule, **tm, *levels);
  if (!options.dumpLlvmIrPath.empty()) {
    std::string text;
    llvm::raw_string_ostream os(text);
    llvmModule->print(os, nullptr);
    if (failed(writeFile(options.dumpLlvmIrPath, text, errors)))
      return failure();
  }

  // Runs code generation on `m` into `out`; false if the target cannot.
  auto emit = [&](llvm::Module &m, llvm::CodeGenFileType type,
                  llvm::SmallVector<char, 0> &out) {
    llvm::raw_svector_ostream os(out);
    llvm::legacy::PassManager codegen;
    if ((*tm)->addPassesToEmitFile(codegen, os, nullptr, type))
      return false;
    codegen.run(m);
    return true;
  };
  if (!options.dumpAssemblyPath.empty()) {
    // Code generation changes the IR it runs on: print a copy's assembly.
    std::unique_ptr<llvm::Module> copy = llvm::CloneModule(*llvmModule);
    llvm::SmallVector<char, 0> text;
    if (!emit(*copy, llvm::CodeGenFileType::AssemblyFile, text))
      return errors.fail("CPU codegen: target '" + target.triple +
                         "' cannot emit assembly");
    if (failed(writeFile(options.dumpAssemblyPath,
                         StringRef(text.data(), text.size()), errors)))
      return failure();
  }

  llvm::SmallVector<char, 0> object;
  if (!emit(*llvmModule, llvm::CodeGenFileType::ObjectFile, object))
    return errors.fail("CPU codegen: target '" + target.triple +
                       "' cannot emit object files");
  StringRef objectBytes(object.data(), object.size());
  if (!options.dumpObjectPath.empty() &&
      failed(writeFile(options.dumpObjectPath, objectBytes, errors)))
    return failure();
  if (failed(checkSelfContained(objectBytes, errors)))
    return failure();

  FailureOr<std::string> shared =
      linkSharedObject(objectBytes, *linker, errors);
  if (failed(shared))
    return failure();
  result.sharedObject = std::move(*shared);
  return result;
}

FailureOr<std::string> mlir::vmoe::cpu::compileKernelsToSharedObject(
    ModuleOp module, const CpuTarget &target, std::string *errorMessage,
    const CpuCodegenOptions &options) {
  FailureOr<CpuExecutable> exe =
      compileKernels(module, target, errorMessage, options);
  if (failed(exe))
    return failure();
  return std::move(exe->sharedObject);
}
