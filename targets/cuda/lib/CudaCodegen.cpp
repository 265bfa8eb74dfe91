//===- CudaCodegen.cpp - Kernel funcs to PTX and cubins -------------------===//
//
// The pipeline is built from pass objects (never parsed from text, which can
// silently run nothing), and its result is checked: exactly one PTX object,
// the .target of the SM asked for, a .entry per kernel and no unresolved
// .extern function. The kernels' math is expanded into polynomials
// (vmoe-expand-math, shared with the CPU back end), so libdevice is never
// needed and the GPU computes the same approximations as the CPU.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Target/CUDA/CudaCodegen.h"
#include "vmoe/Target/CUDA/Passes.h"
#include "vmoe/Target/Common/KernelContract.h"
#include "vmoe/Target/Common/Passes.h"

#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVM.h"
#include "mlir/Conversion/GPUToNVVM/GPUToNVVM.h"
#include "mlir/Conversion/GPUToNVVM/GPUToNVVMPass.h"
#include "mlir/Conversion/IndexToLLVM/IndexToLLVM.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/NVVMToLLVM/NVVMToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/UBToLLVM/UBToLLVM.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVM.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVMPass.h"
#include "mlir/Conversion/VectorToSCF/VectorToSCF.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/NVVM/NVVMToLLVMIRTranslation.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstdlib>

using namespace mlir;
using namespace mlir::vmoe;
using namespace mlir::vmoe::cuda;

void mlir::vmoe::cuda::registerCudaCodegenPasses() {
  registerVmoeCUDAPasses();
  target::registerTargetCommonPasses();
}

void mlir::vmoe::cuda::registerCudaCodegenDialects(DialectRegistry &registry) {
  registry.insert<gpu::GPUDialect, NVVM::NVVMDialect>();
  // convert-gpu-to-nvvm converts the other dialects through their
  // ConvertToLLVMPatternInterface: without these, it leaves cf.br operands
  // unconverted and fails verification.
  arith::registerConvertArithToLLVMInterface(registry);
  cf::registerConvertControlFlowToLLVMInterface(registry);
  registerConvertFuncToLLVMInterface(registry);
  index::registerConvertIndexToLLVMInterface(registry);
  registerConvertMathToLLVMInterface(registry);
  registerConvertMemRefToLLVMInterface(registry);
  ub::registerConvertUBToLLVMInterface(registry);
  vector::registerConvertVectorToLLVMInterface(registry);
  NVVM::registerConvertGpuToNVVMInterface(registry);
  registerConvertNVVMToLLVMInterface(registry);
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
  registerGPUDialectTranslation(registry);
  registerNVVMDialectTranslation(registry);
}

FailureOr<std::vector<unsigned>>
mlir::vmoe::cuda::parseSmList(StringRef text, std::string *error) {
  SmallVector<StringRef> parts;
  text.split(parts, ',', -1, /*KeepEmpty=*/true);
  std::vector<unsigned> sms;
  for (StringRef part : parts) {
    StringRef p = part.trim();
    p.consume_front("sm_");
    unsigned sm = 0;
    if (p.empty() || p.getAsInteger(10, sm) || sm < 50 || sm > 200) {
      *error = "invalid SM '" + part.str() +
               "': expected numbers such as 80 or 80,90 (sm_50 to sm_200)";
      return failure();
    }
    sms.push_back(sm);
  }
  std::sort(sms.begin(), sms.end());
  sms.erase(std::unique(sms.begin(), sms.end()), sms.end());
  return sms;
}

std::string mlir::vmoe::cuda::findPtxas(StringRef explicitPath) {
  if (explicitPath == "none")
    return "";
  if (!explicitPath.empty())
    return llvm::sys::fs::can_execute(explicitPath) ? explicitPath.str() : "";
  for (const char *env : {"CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"}) {
    if (const char *root = std::getenv(env)) {
      SmallString<256> p(root);
      llvm::sys::path::append(p, "bin", "ptxas");
      if (llvm::sys::fs::can_execute(p))
        return std::string(p);
    }
  }
  if (llvm::ErrorOr<std::string> p = llvm::sys::findProgramByName("ptxas"))
    return *p;
  if (llvm::sys::fs::can_execute("/usr/local/cuda/bin/ptxas"))
    return "/usr/local/cuda/bin/ptxas";
  return "";
}

LogicalResult mlir::vmoe::cuda::checkPtx(StringRef ptx, unsigned sm,
                                         ArrayRef<std::string> entries,
                                         std::string *error) {
  std::string target = ".target sm_" + std::to_string(sm);
  bool hasTarget = false;
  SmallVector<StringRef> lines;
  ptx.split(lines, '\n');
  llvm::StringSet<> found;
  for (StringRef line : lines) {
    StringRef l = line.trim();
    if (l.starts_with(".target ")) {
      StringRef rest = l.drop_front(8).trim();
      hasTarget |=
          rest == target.substr(8) || rest.starts_with(target.substr(8) + ",");
    }
    if (l.starts_with(".extern .func")) {
      *error = "the PTX calls an external function (" + l.str() +
               "): a math function was left for libdevice, which is not "
               "linked; ptxas would reject it";
      return failure();
    }
    if (l.consume_front(".visible .entry ") || l.consume_front(".entry ")) {
      size_t paren = l.find('(');
      found.insert(l.substr(0, paren).trim());
    }
  }
  if (!hasTarget) {
    *error = "the PTX lacks the line '" + target + "'";
    return failure();
  }
  for (const std::string &e : entries)
    if (!found.contains(e)) {
      *error = "the PTX has no .entry for kernel '" + e + "'";
      return failure();
    }
  return success();
}

namespace {
/// Collects the diagnostics of a pass run as text.
struct Collector {
  explicit Collector(MLIRContext *ctx)
      : handler(ctx, [this](Diagnostic &d) {
          llvm::raw_string_ostream os(text);
          os << d.getLocation() << ": " << d << "\n";
          for (Diagnostic &note : d.getNotes())
            os << "  note: " << note << "\n";
          return success();
        }) {}
  std::string text;
  ScopedDiagnosticHandler handler;
};

/// Runs `ptxas` on `ptx` for `sm`; the cubin or an error with its output.
FailureOr<std::string> runPtxas(const std::string &ptxas, StringRef ptx,
                                unsigned sm, unsigned optLevel,
                                std::string *error) {
  SmallString<128> in, out, log;
  int fd;
  if (llvm::sys::fs::createTemporaryFile("vmoe-cuda", "ptx", fd, in)) {
    *error = "cannot create a temporary file for ptxas";
    return failure();
  }
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << ptx;
  }
  llvm::sys::fs::createTemporaryFile("vmoe-cuda", "cubin", out);
  llvm::sys::fs::createTemporaryFile("vmoe-cuda", "log", log);
  llvm::scope_exit cleanup([&] {
    llvm::sys::fs::remove(in);
    llvm::sys::fs::remove(out);
    llvm::sys::fs::remove(log);
  });
  std::string arch = "sm_" + std::to_string(sm);
  std::string opt = "-O" + std::to_string(std::min(optLevel, 3u));
  SmallVector<StringRef> args = {ptxas, "-arch", arch, opt, in, "-o", out};
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(log),
                                          StringRef(log)};
  std::string execError;
  int rc = llvm::sys::ExecuteAndWait(ptxas, args, std::nullopt, redirects, 0, 0,
                                     &execError);
  if (rc != 0) {
    auto text = llvm::MemoryBuffer::getFile(log);
    *error = "ptxas (" + ptxas + " -arch " + arch + ") failed" +
             (execError.empty() ? "" : ": " + execError) +
             (text ? ":\n" + (*text)->getBuffer().str() : "");
    return failure();
  }
  auto cubin = llvm::MemoryBuffer::getFile(out, /*IsText=*/false);
  if (!cubin || (*cubin)->getBufferSize() < 4 ||
      (*cubin)->getBuffer().substr(0, 4) != "\x7f"
                                            "ELF") {
    *error = "ptxas produced no ELF cubin for " + arch;
    return failure();
  }
  return (*cubin)->getBuffer().str();
}
/// Rewrites calls of libdevice functions that have an LLVM intrinsic of the
/// same semantics (IEEE sqrt, fabs, fma, floor, ceil, min/max) into it, and
/// drops the declarations that are then unused.
void replaceLibdeviceCalls(ModuleOp device) {
  static const std::pair<const char *, StringRef> kIntrinsics[] = {
      {"__nv_sqrtf", LLVM::SqrtOp::getOperationName()},
      {"__nv_fsqrt_rn", LLVM::SqrtOp::getOperationName()},
      {"__nv_fabsf", LLVM::FAbsOp::getOperationName()},
      {"__nv_fmaf", LLVM::FMAOp::getOperationName()},
      {"__nv_floorf", LLVM::FFloorOp::getOperationName()},
      {"__nv_ceilf", LLVM::FCeilOp::getOperationName()},
      {"__nv_fmaxf", LLVM::MaxNumOp::getOperationName()},
      {"__nv_fminf", LLVM::MinNumOp::getOperationName()},
      {"__nv_sqrt", LLVM::SqrtOp::getOperationName()},
      {"__nv_fabs", LLVM::FAbsOp::getOperationName()},
      {"__nv_fma", LLVM::FMAOp::getOperationName()}};
  SmallVector<LLVM::CallOp> calls;
  device.walk([&](LLVM::CallOp call) { calls.push_back(call); });
  for (LLVM::CallOp call : calls) {
    std::optional<StringRef> callee = call.getCallee();
    if (!callee || call.getNumResults() != 1)
      continue;
    if (*callee == "__nv_rsqrtf" || *callee == "__nv_rsqrt") {
      // 1 / sqrt(x), as the CPU back end computes it.
      OpBuilder b(call);
      Type type = call.getResult().getType();
      Value x = call.getArgOperands()[0];
      OperationState sqrtState(call.getLoc(), LLVM::SqrtOp::getOperationName());
      sqrtState.addOperands(x);
      sqrtState.addTypes(type);
      Value root = b.create(sqrtState)->getResult(0);
      Value one = LLVM::ConstantOp::create(b, call.getLoc(), type,
                                           b.getFloatAttr(type, 1.0));
      Value inv = LLVM::FDivOp::create(b, call.getLoc(), one, root);
      call.getResult().replaceAllUsesWith(inv);
      call.erase();
      continue;
    }
    for (const auto &[name, op] : kIntrinsics) {
      if (*callee != name)
        continue;
      OpBuilder b(call);
      OperationState state(call.getLoc(), op);
      state.addOperands(call.getArgOperands());
      state.addTypes(call.getResult().getType());
      Operation *intrinsic = b.create(state);
      call.getResult().replaceAllUsesWith(intrinsic->getResult(0));
      call.erase();
      break;
    }
  }
  SmallVector<LLVM::LLVMFuncOp> unused;
  device.walk([&](LLVM::LLVMFuncOp f) {
    if (f.isExternal() && f.getName().starts_with("__nv_") &&
        SymbolTable::symbolKnownUseEmpty(f, f->getParentOp()))
      unused.push_back(f);
  });
  for (LLVM::LLVMFuncOp f : unused)
    f.erase();
}
} // namespace

FailureOr<CudaExecutableImage> mlir::vmoe::cuda::compileCudaKernels(
    ModuleOp module, const CudaCodegenOptions &options, std::string *error) {
  if (options.sms.empty()) {
    *error = "no SM to compile for";
    return failure();
  }
  MLIRContext *ctx = module.getContext();
  {
    DialectRegistry registry;
    registerCudaCodegenDialects(registry);
    target::registerKernelDialects(registry);
    ctx->appendDialectRegistry(registry);
  }
  Collector diagnostics(ctx);
  auto failWith = [&](const char *what) {
    *error = std::string(what) +
             (diagnostics.text.empty() ? "" : ":\n" + diagnostics.text);
    return failure();
  };

  // 1. gpu.func per kernel, in the lowered module.
  {
    PassManager pm(ctx);
    VmoeCudaOutlineKernelsOptions outline;
    outline.blockSize = options.blockSize;
    pm.addPass(createVmoeCudaOutlineKernels(outline));
    if (failed(pm.run(module)))
      return failWith("outlining the kernels for CUDA failed");
  }
  auto gpuModule = dyn_cast_or_null<gpu::GPUModuleOp>(
      SymbolTable::lookupSymbolIn(module, kGpuModuleName));
  if (!gpuModule)
    return failWith("no gpu.module after outlining");

  CudaExecutableImage image;
  std::vector<std::string> entries;
  for (auto f : gpuModule.getOps<gpu::GPUFuncOp>()) {
    if (!f.isKernel())
      continue;
    CudaKernelInfo info;
    info.entry = f.getName().str();
    auto kernelName = f->getAttrOfType<StringAttr>(kKernelNameAttrName);
    info.name = kernelName ? kernelName.str() : info.entry;
    auto types = f.getArgumentTypes();
    while (info.bindingCount < types.size() &&
           isa<MemRefType>(types[info.bindingCount]))
      ++info.bindingCount;
    if (auto s = f->getAttrOfType<IntegerAttr>(kWorkgroupScratchSizeAttrName))
      info.scratchSize = s.getInt();
    info.constantCount =
        types.size() - info.bindingCount - 3 - (info.scratchSize ? 1 : 0);
    info.blockSize = options.blockSize;
    entries.push_back(info.entry);
    image.kernels.push_back(std::move(info));
  }

  // 2. The gpu.module alone, lowered to NVVM and serialized to PTX.
  OwningOpRef<ModuleOp> device = ModuleOp::create(module.getLoc());
  (*device)->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                     UnitAttr::get(ctx));
  OpBuilder::atBlockEnd(device->getBody()).clone(*gpuModule);

  image.ptxSm = options.sms.front();
  PassManager pm(ctx);
  GpuNVVMAttachTargetOptions attach;
  attach.chip = "sm_" + std::to_string(image.ptxSm);
  attach.optLevel = options.optLevel;
  pm.addPass(createGpuNVVMAttachTarget(attach));
  OpPassManager &gm = pm.nest<gpu::GPUModuleOp>();
  VectorTransferToSCFOptions transfers;
  transfers.setTargetRank(1);
  gm.addPass(createConvertVectorToSCFPass(transfers));
  gm.addPass(math::createMathExtendToSupportedTypes());
  arith::ArithEmulateUnsupportedFloatsOptions emulate;
  emulate.sourceTypeStrs = {"bf16"};
  emulate.targetTypeStr = "f32";
  gm.addPass(arith::createArithEmulateUnsupportedFloats(emulate));
  gm.addPass(target::createVmoeExpandMath());
  gm.addPass(memref::createExpandStridedMetadataPass());
  gm.addPass(createLowerAffinePass());
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  gm.addPass(arith::createArithExpandOpsPass(expand));
  gm.addPass(createSCFToControlFlowPass());
  // Vector ops (masks included) first: convert-gpu-to-nvvm does not
  // materialize vector.create_mask.
  gm.addPass(createConvertVectorToLLVMPass());
  ConvertGpuOpsToNVVMOpsOptions nvvm;
  nvvm.indexBitwidth = 64;
  nvvm.useBarePtrCallConv = true;
  gm.addPass(createConvertGpuOpsToNVVMOps(nvvm));
  gm.addPass(createReconcileUnrealizedCastsPass());
  if (failed(pm.run(*device)))
    return failWith("lowering the kernels to NVVM failed");
  // convert-gpu-to-nvvm turns the math left after the expansion (sqrt, abs,
  // fma, ...) into libdevice calls; those with an exact LLVM intrinsic,
  // which the NVPTX back end lowers to one PTX instruction, go back to it,
  // so libdevice is not needed. Any other call fails the .extern check.
  replaceLibdeviceCalls(*device);
  PassManager binary(ctx);
  GpuModuleToBinaryPassOptions toBinary;
  toBinary.compilationTarget = "isa";
  binary.addPass(createGpuModuleToBinaryPass(toBinary));
  if (failed(binary.run(*device)))
    return failWith("serializing the kernels to PTX failed");

  // 3. Exactly one PTX object (an invalid format would silently give
  //    something else), with every kernel and nothing left for libdevice.
  SmallVector<gpu::BinaryOp> binaries(device->getOps<gpu::BinaryOp>());
  if (binaries.size() != 1 || binaries[0].getObjects().size() != 1)
    return failWith("expected one gpu.binary with one object");
  auto object = cast<gpu::ObjectAttr>(binaries[0].getObjects()[0]);
  if (object.getFormat() != gpu::CompilationTarget::Assembly)
    return failWith("the GPU binary is not PTX");
  image.ptx = object.getObject().getValue().str();
  if (failed(checkPtx(image.ptx, image.ptxSm, entries, error)))
    return failure();

  // 4. Cubins, when ptxas is there.
  image.ptxas = findPtxas(options.ptxasPath);
  if (image.ptxas.empty()) {
    if (options.requireCubin) {
      *error = options.ptxasPath.empty()
                   ? "no ptxas found (set CUDA_HOME or pass --ptxas)"
                   : "ptxas '" + options.ptxasPath + "' is not executable";
      return failure();
    }
    return image;
  }
  for (unsigned sm : options.sms) {
    FailureOr<std::string> cubin =
        runPtxas(image.ptxas, image.ptx, sm, options.optLevel, error);
    if (failed(cubin))
      return failure();
    image.cubins.emplace_back(sm, std::move(*cubin));
  }
  return image;
}
