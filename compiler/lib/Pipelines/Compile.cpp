//===- Compile.cpp - the whole compiler as one call -----------------------===//

#include "vmoe/Pipelines/Compile.h"
#include "vmoe/Pipelines/Pipeline.h"

#include "vmoe/Conversion/Passes.h"
#include "vmoe/Dialect/IR/VmoeDialect.h"
#include "vmoe/Dialect/IR/VmoeOps.h"
#include "vmoe/Dialect/Transforms/Passes.h"
#include "vmoe/Target/CPU/CpuCodegen.h"
#include "vmoe/Target/CPU/CpuKernelTarget.h"
#include "vmoe/Target/CPU/Passes.h"
#include "vmoe/Target/CUDA/CudaCodegen.h"
#include "vmoe/Target/CUDA/CudaKernelTarget.h"
#include "vmoe/Target/CUDA/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/raw_ostream.h"

#include <map>

namespace mlir::vmoe {

void registerCompilerDialects(DialectRegistry &registry) {
  registry.insert<VmoeDialect, func::FuncDialect, arith::ArithDialect,
                  tensor::TensorDialect>();
  cpu::registerCpuCodegenDialects(registry);
}

void buildGraphPipeline(OpPassManager &pm, const CompileOptions &options) {
  VmoePipelineOptions pipeline;
  pipeline.compileTo = "graph";
  pipeline.maxCapacityFactor = options.maxCapacityFactor;
  buildVmoePipeline(pm, pipeline);
}

/// Collects the diagnostics a pass emits, so callers get them as text.
class DiagnosticCollector {
public:
  explicit DiagnosticCollector(MLIRContext *context)
      : handler(context, [this](Diagnostic &diag) {
          llvm::raw_string_ostream os(text);
          os << diag.getLocation() << ": " << diag << "\n";
          for (Diagnostic &note : diag.getNotes())
            os << "  note: " << note << "\n";
          return success();
        }) {}
  std::string text;

private:
  ScopedDiagnosticHandler handler;
};

/// How the selected target wants its kernels: the CUDA target's (also when
/// its kernels are emulated on the CPU), else the CPU target's.
static KernelTargetInfo kernelTargetInfo(const CompileOptions &options,
                                         const cpu::CpuTarget &cpuTarget) {
  if (options.target != "cpu")
    return cuda::getKernelTargetInfo();
  return cpu::getKernelTargetInfo(cpuTarget);
}

LogicalResult lowerToKernels(ModuleOp module, const CompileOptions &options,
                             std::string *error) {
  FailureOr<cpu::CpuTarget> target = cpu::resolveCpuTarget(options.cpu, error);
  if (failed(target))
    return failure();
  DiagnosticCollector diagnostics(module.getContext());
  PassManager pm(module.getContext());
  // vmoe-pipeline up to its kernels, with the kernel shape of the target.
  KernelTargetInfo info = kernelTargetInfo(options, *target);
  VmoePipelineOptions pipeline;
  pipeline.compileTo = "kernels";
  pipeline.maxCapacityFactor = options.maxCapacityFactor;
  pipeline.vectorWidth = info.vectorWidth;
  pipeline.microRows = info.gemmMicroRows;
  pipeline.microVectors = info.gemmMicroVectors;
  pipeline.expertWeightsBf16 = options.expertWeightsBf16;
  pipeline.expertBf16Math = options.expertBf16Math;
  pipeline.nativeBf16Dot = options.expertBf16Math &&
                           info.bf16Dot == KernelTargetInfo::Bf16Dot::Avx512Dot;
  pipeline.expertShards = options.expertShards;
  pipeline.expertInt8 = options.expertInt8;
  pipeline.denseInt8 = options.denseInt8;
  if (options.expertInt8 || options.denseInt8) {
    using Dot = KernelTargetInfo::Int8Dot;
    if (info.int8Dot == Dot::None) {
      *error = "int8 math (--expert-math=int8, --dense-math=int8) needs an "
               "integer dot product: the " +
               options.target + " target '" + options.cpu +
               "' has none (x86 needs AVX2, AArch64 dotprod: e.g. "
               "--cpu=aarch64+dotprod)";
      return failure();
    }
    pipeline.int8Dot = info.int8Dot == Dot::Avx2Madd     ? "avx2"
                       : info.int8Dot == Dot::AvxVnni    ? "avx-vnni"
                       : info.int8Dot == Dot::Avx512Vnni ? "avx512-vnni"
                                                         : "sdot";
  }
  buildVmoePipeline(pm, pipeline);
  if (failed(pm.run(module))) {
    *error = diagnostics.text.empty() ? "the kernel lowering failed"
                                      : diagnostics.text;
    return failure();
  }
  return success();
}

/// The features a module records as requirements: the instruction-set
/// extensions generated code can use. A host target lists every feature of
/// the machine (clzero, rdpid, ...); those never appear in compute kernels,
/// and a runtime elsewhere could not check them all.
static std::string requiredFeatures(StringRef features) {
  static const char *const kCompute[] = {
      "sse",   "ssse3",  "avx",     "fma",      "f16c", "bmi",
      "lzcnt", "popcnt", "movbe",   "amx",      "neon", "fp-armv8",
      "sve",   "bf16",   "dotprod", "fullfp16", "i8mm"};
  SmallVector<StringRef> all;
  features.split(all, ',', -1, /*KeepEmpty=*/false);
  std::string out;
  for (StringRef f : all) {
    if (!f.consume_front("+"))
      continue;
    if (llvm::any_of(kCompute, [&](const char *p) { return f.starts_with(p); }))
      out += (out.empty() ? "+" : ",+") + f.str();
  }
  return out;
}

bool checkParameters(ModuleOp module,
                     const ::vmoe::readers::TensorSource *parameters,
                     std::string *error) {
  std::map<std::string, std::vector<int64_t>> named;
  std::string bad;
  module.walk([&](ParameterOp p) {
    std::vector<int64_t> shape(p.getType().getShape().begin(),
                               p.getType().getShape().end());
    auto [it, inserted] = named.emplace(p.getName().str(), shape);
    if (!inserted && it->second != shape && bad.empty())
      bad = "parameter " + p.getName().str() + " is used with shapes " +
            ::vmoe::readers::shapeString(it->second) + " and " +
            ::vmoe::readers::shapeString(shape);
  });
  if (!bad.empty()) {
    *error = bad;
    return false;
  }
  if (named.empty())
    return true;
  if (!parameters) {
    *error = "the model names " + std::to_string(named.size()) +
             " parameters (" + named.begin()->first +
             ", ...): give the weights to read them from (vmoe-compile "
             "--weights FILE, or --random-weights=SEED)";
    return false;
  }
  for (auto &[name, shape] : named) {
    auto it = parameters->shapes().find(name);
    if (it == parameters->shapes().end()) {
      *error = "the weights have no tensor " + name + " (shape " +
               ::vmoe::readers::shapeString(shape) + ") that the model names";
      return false;
    }
    if (it->second != shape) {
      *error = "weight " + name + " has shape " +
               ::vmoe::readers::shapeString(it->second) + ", the model needs " +
               ::vmoe::readers::shapeString(shape);
      return false;
    }
  }
  return true;
}

LogicalResult compileToExecutable(ModuleOp module,
                                  const CompileOptions &options,
                                  SerializeOptions &serialize,
                                  std::string *error) {
  if (options.target != "cpu" && options.target != "cuda" &&
      options.target != "cuda-emulation") {
    *error = "unknown target '" + options.target +
             "' (known: cpu, cuda, cuda-emulation)";
    return failure();
  }
  if (options.expertShards > 1 && options.target != "cpu") {
    *error = "--expert-shards needs --target=cpu: the exchange between ranks "
             "is implemented for CPU modules only (got --target=" +
             options.target + ")";
    return failure();
  }
  if (options.expertShards > 1 && options.expertInt8) {
    *error = "--expert-shards does not take --expert-math=int8 yet: compile "
             "the shards with f32 or bf16 expert math (--dense-math=int8 "
             "works)";
    return failure();
  }
  // Before any work: the weights must be there, with their shapes.
  if (!checkParameters(module, options.parameters, error))
    return failure();
  auto phase = [&](const char *name) {
    if (options.onPhase)
      options.onPhase(name);
  };
  FailureOr<cpu::CpuTarget> target = cpu::resolveCpuTarget(options.cpu, error);
  phase("kernels");
  if (failed(target) || failed(lowerToKernels(module, options, error)))
    return failure();
  serialize.modelName = options.modelName;
  serialize.configJson = options.configJson;
  serialize.classNames = options.classNames;
  serialize.parameters = options.parameters;
  serialize.signer = options.signer;
  serialize.progress = options.onWeights;
  phase("codegen");
  if (options.target == "cuda") {
    cuda::CudaCodegenOptions codegen;
    codegen.sms = options.cudaSms;
    codegen.blockSize = options.cudaBlockSize;
    codegen.optLevel = options.optLevel;
    codegen.ptxasPath = options.ptxasPath;
    codegen.requireCubin = options.requireCubin;
    FailureOr<cuda::CudaExecutableImage> image =
        cuda::compileCudaKernels(module, codegen, error);
    if (failed(image))
      return failure();
    serialize.cudaPtx = std::move(image->ptx);
    serialize.cudaPtxSm = image->ptxSm;
    for (auto &[sm, cubin] : image->cubins)
      serialize.cudaCubins.emplace_back(sm, std::move(cubin));
    serialize.cudaBlockSize = static_cast<uint32_t>(options.cudaBlockSize);
    for (const cuda::CudaKernelInfo &k : image->kernels)
      serialize.cudaEntries[k.name] = k.entry;
    phase("weights");
    return success();
  }
  if (options.target == "cuda-emulation") {
    DiagnosticCollector diagnostics(module.getContext());
    {
      DialectRegistry registry;
      cuda::registerCudaCodegenDialects(registry);
      module.getContext()->appendDialectRegistry(registry);
    }
    PassManager pm(module.getContext());
    cuda::VmoeCudaOutlineKernelsOptions outline;
    outline.blockSize = options.cudaBlockSize;
    pm.addPass(cuda::createVmoeCudaOutlineKernels(outline));
    pm.addPass(cuda::createVmoeCudaEmulateOnCpu());
    if (failed(pm.run(module))) {
      *error = diagnostics.text.empty() ? "the CUDA emulation failed"
                                        : diagnostics.text;
      return failure();
    }
  }
  cpu::CpuCodegenOptions codegen;
  codegen.optLevel = options.optLevel;
  codegen.dumpLlvmIrPath = options.dumpLlvmIrPath;
  codegen.dumpAssemblyPath = options.dumpAssemblyPath;
  FailureOr<cpu::CpuExecutable> exe =
      cpu::compileKernels(module, *target, error, codegen);
  if (failed(exe))
    return failure();
  serialize.sharedObject = std::move(exe->sharedObject);
  serialize.targetTriple = target->triple;
  serialize.cpuFeatures = requiredFeatures(target->isaFeatures);
  phase("weights");
  return success();
}

/// One module holds every expert: N rank modules come from
/// compileToShardedModules(Files).
static LogicalResult refuseShards(const CompileOptions &options,
                                  std::string *error) {
  if (options.expertShards <= 1)
    return success();
  *error = "expertShards = " + std::to_string(options.expertShards) +
           " makes one module per rank: compile with compileToShardedModules "
           "or compileToShardedModuleFiles";
  return failure();
}

LogicalResult compileToModule(ModuleOp module, const CompileOptions &options,
                              std::vector<uint8_t> &bytes, std::string *error,
                              SerializeStats *stats) {
  if (failed(refuseShards(options, error)))
    return failure();
  SerializeOptions serialize;
  if (failed(compileToExecutable(module, options, serialize, error)))
    return failure();
  DiagnosticCollector diagnostics(module.getContext());
  if (failed(serializeModule(module, serialize, bytes, stats))) {
    *error =
        diagnostics.text.empty() ? "serialization failed" : diagnostics.text;
    return failure();
  }
  return success();
}

LogicalResult compileToModuleFile(ModuleOp module,
                                  const CompileOptions &options,
                                  const std::string &path, std::string *error,
                                  SerializeStats *stats, uint64_t *fileSize) {
  if (failed(refuseShards(options, error)))
    return failure();
  SerializeOptions serialize;
  if (failed(compileToExecutable(module, options, serialize, error)))
    return failure();
  return serializeModuleToFile(module, serialize, path, stats, fileSize, error);
}

} // namespace mlir::vmoe
