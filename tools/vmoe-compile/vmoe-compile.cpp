//===- vmoe-compile.cpp - ahead-of-time compiler driver -------------------===//
//
// .mlir model (vmoe + upstream dialects) -> one module file:
//   vmoe-infer-capacity, vmoe-decompose, canonicalize, cse,
//   vmoe-lower-to-kernels (fused kernels + host schedule),
//   CPU code generation (LLVM -> object -> shared object),
//   serialization (FlatBuffer + aligned segments, arena plan).
// --emit stops at a stage and prints it, for inspection.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Conversion/Passes.h"
#include "vmoe/Dialect/IR/VmoeDialect.h"
#include "vmoe/Dialect/IR/VmoeOps.h"
#include "vmoe/Dialect/Transforms/Passes.h"
#include "vmoe/Import/ModelBuilder.h"
#include "vmoe/Pipelines/Compile.h"
#include "vmoe/Serialize/ModuleSerializer.h"
#include "vmoe/Target/CPU/CpuCodegen.h"
#include "vmoe/Target/CPU/Passes.h"
#include "vmoe/Target/CUDA/CudaCodegen.h"
#include "vmoe/readers/Memory.h"
#include "vmoe/readers/ModelConfig.h"
#include "vmoe/readers/Weights.h"
#include "vmoe/writer/Signing.h"

#include "../common/ToolSupport.h"
#include "Progress.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>
#include <random>
#include <unistd.h>

using namespace mlir;
namespace cl = llvm::cl;

static cl::opt<std::string>
    inputFile(cl::Positional,
              cl::desc("<model.mlir | config.json> (or --preset NAME)"),
              cl::init(""));
static cl::opt<std::string>
    preset("preset",
           cl::desc("A V-MoE architecture by name (vmoe-s32, "
                    "vmoe-b16-e8-every2, vmoe-h14-e32-last5, ...)"),
           cl::init(""));
static cl::opt<std::string> weightsFile(
    "weights",
    cl::desc("Weights for a config, preset or .mlir model (its parameters "
             "by name): a vmoe checkpoint (prefix, "
             ".index or .data-* file), .npz or .safetensors with Flax names"),
    cl::init(""));
static cl::opt<std::string> imageSize(
    "image-size",
    cl::desc("Image size of a config, N or HxW (vmoe's model config has "
             "none: by default the config's image_size or its evaluation "
             "datasets' preprocessing)"),
    cl::init(""));
static cl::opt<int64_t> batchSize("batch",
                                  cl::desc("Images per call (config/preset)"),
                                  cl::init(0));
static cl::opt<int64_t>
    groupSize("group-size",
              cl::desc("Tokens routed together (config/preset); must divide "
                       "batch x tokens per image"),
              cl::init(0));
static cl::opt<double> capacityFactor(
    "capacity-factor",
    cl::desc("Default capacity factor of every MoE layer (config/preset)"),
    cl::init(0.0));
static cl::opt<std::string>
    bprDefault("bpr",
               cl::desc("Default Batch Prioritized Routing: on|off "
                        "(config/preset)"),
               cl::init(""));
static cl::opt<std::string> outputFile("o", cl::desc("Output file"),
                                       cl::value_desc("path"),
                                       cl::init("model.vmoe"));
static cl::opt<std::string> targetName(
    "target",
    cl::desc("Target device: cpu, cuda (PTX, plus cubins when ptxas is "
             "found), or cuda-emulation (the CUDA kernels run on the CPU, "
             "for testing)"),
    cl::init("cpu"));
static cl::opt<std::string>
    smList("sm",
           cl::desc("CUDA: SM versions, e.g. 80 or 80,90 (the PTX "
                    "targets the lowest; a cubin per SM with ptxas)"),
           cl::init("80"));
static cl::opt<std::string>
    ptxasPath("ptxas",
              cl::desc("CUDA: the ptxas to run; 'none': PTX only; "
                       "default: $CUDA_HOME/bin, PATH, "
                       "/usr/local/cuda/bin"),
              cl::init(""));
static cl::opt<bool>
    requireCubin("require-cubin",
                 cl::desc("CUDA: fail when ptxas is not found"),
                 cl::init(false));
static cl::opt<int64_t>
    cudaBlockSize("cuda-block-size",
                  cl::desc("CUDA: threads per block (1 to 1024)"),
                  cl::init(32));
static cl::opt<std::string>
    cpuName("cpu",
            cl::desc("CPU to compile for: host, x86-64-v3 (AVX2), "
                     "x86-64-v4 (AVX-512), aarch64 (Armv8-A), or an x86-64 "
                     "CPU name LLVM knows (znver4, sapphirerapids, ...; the "
                     "module then needs all of that CPU's features: AMX for "
                     "sapphirerapids); add features as NAME+feature "
                     "(x86-64-v4+avx512bf16, aarch64+dotprod)"),
            cl::init("host"));
enum class Emit { Config, Mlir, Kernels, LlvmIr, Asm, Ptx, Module };
static cl::opt<Emit> emit(
    "emit", cl::desc("What to produce"), cl::init(Emit::Module),
    cl::values(clEnumValN(Emit::Config, "config",
                          "the effective model config as JSON (a config or "
                          "preset with the command-line overrides)"),
               clEnumValN(Emit::Mlir, "mlir",
                          "the decomposed tensor-level IR (weights stay in "
                          "resource blobs)"),
               clEnumValN(Emit::Kernels, "kernels",
                          "the kernels and the host schedule"),
               clEnumValN(Emit::LlvmIr, "llvm", "the optimized LLVM IR"),
               clEnumValN(Emit::Asm, "asm",
                          "the kernels' machine code as assembly (CPU)"),
               clEnumValN(Emit::Ptx, "ptx",
                          "the PTX of the kernels (--target=cuda)"),
               clEnumValN(Emit::Module, "module", "the module file")));
static cl::opt<double> maxCapacityFactor(
    "max-capacity-factor",
    cl::desc("Largest capacity factor a call may request (sizes the expert "
             "buffers); default: each layer's own"),
    cl::init(0.0));
static cl::opt<std::string> expertWeights(
    "expert-weights",
    cl::desc("Precision the expert weights are stored in: f32 (default) or "
             "bf16 (half the bytes; rounded to nearest even, f32 "
             "accumulation)"),
    cl::init("f32"));
static cl::opt<std::string> expertMath(
    "expert-math",
    cl::desc("Arithmetic of the expert GEMMs: f32 (default) or bf16 (bf16 "
             "weights, expert inputs and GELU output, products summed in "
             "f32; AVX512-BF16 vdpbf16ps where the CPU target has it, the "
             "same results from f32 FMAs elsewhere; implies "
             "--expert-weights=bf16) or int8 (weights quantized per output "
             "channel, activations per row at run time, int32 sums; "
             "AVX512-VNNI, AVX-VNNI, AVX2 or AArch64 dotprod)"),
    cl::init("f32"));
static cl::opt<std::string> denseMath(
    "dense-math",
    cl::desc("Arithmetic of the attention projections and dense MLPs: f32 "
             "(default) or int8 (as --expert-math=int8)"),
    cl::init("f32"));
static cl::opt<unsigned> expertShards(
    "expert-shards",
    cl::desc("Split every MoE layer's experts over N ranks (expert "
             "parallelism, run with mpirun -np N vmoe-run): writes "
             "NAME.rank<R>.vmoe for R = 0..N-1 from -o NAME.vmoe, each with "
             "the dense weights and E/N experts of every layer; N must "
             "divide every layer's experts; CPU target. 1 (default): one "
             "module"),
    cl::value_desc("N"), cl::init(1));
static cl::opt<int> randomWeights(
    "random-weights",
    cl::desc("Random weights from this seed, for benchmarks and examples: "
             "for a config or preset without --weights, or for the named "
             "parameters of a .mlir model and every argument after its "
             "first --num-inputs; -1: off"),
    cl::init(-1));
static cl::opt<unsigned> numInputs("num-inputs",
                                   cl::desc("Model inputs (with "
                                            "--random-weights)"),
                                   cl::init(1));
static cl::opt<unsigned> optLevel("O", cl::desc("LLVM optimization level"),
                                  cl::init(3));
static cl::opt<std::string> modelName("name", cl::desc("Model name"),
                                      cl::init(""));
static cl::opt<std::string> signKey(
    "sign-key",
    cl::desc("Sign the module with this Ed25519 secret key file (made by "
             "--generate-signing-key; mode 0600)"),
    cl::value_desc("file"), cl::init(""));
static cl::opt<bool>
    quiet("quiet",
          cl::desc("No progress line (shown only when stderr is a "
                   "terminal)"),
          cl::init(false));
static cl::opt<std::string> generateSigningKey(
    "generate-signing-key",
    cl::desc("Make a new Ed25519 key pair, PREFIX.key (secret, mode 0600) "
             "and PREFIX.pub (for vmoe-run --trusted-key), and exit"),
    cl::value_desc("prefix"), cl::init(""));

namespace {

/// Presets with more float32 weights than this store their experts as bf16.
constexpr uint64_t kBf16PresetBytes = 16'000'000'000;

int fail(const llvm::Twine &message) {
  return ::vmoe::tools::fail("vmoe-compile", message.str());
}

/// Any allocation that fails (operator new through LLVM's new handler,
/// LLVM's own allocators): a message and exit 1 instead of "LLVM ERROR: out
/// of memory" and an abort. Nothing here may allocate.
[[noreturn]] void outOfMemory(void *, const char *reason, bool) {
  static const char prefix[] = "vmoe-compile: error: out of memory (";
  static const char suffix[] =
      "): the model needs more memory than this process may use (see "
      "'ulimit -v' and the memory available)\n";
  (void)!write(2, prefix, sizeof(prefix) - 1);
  (void)!write(2, reason, std::strlen(reason));
  (void)!write(2, suffix, sizeof(suffix) - 1);
  _exit(1);
}

/// LLVM's fatal errors: running out of threads or memory (a thread pool
/// that cannot start its threads under `ulimit -v`) is the machine's limit,
/// reported like the other errors; anything else is a compiler bug and gets
/// LLVM's usual report and crash diagnostics.
void fatalError(void *, const char *reason, bool) {
  auto say = [](const char *text) { (void)!write(2, text, std::strlen(text)); };
  if (std::strstr(reason, "pthread_create") ||
      std::strstr(reason, "out of memory") ||
      std::strstr(reason, "Cannot allocate memory")) {
    say("vmoe-compile: error: ");
    say(reason);
    say(": the model needs more memory or threads than this process may use "
        "(see 'ulimit -v' and the memory available)\n");
    llvm::sys::RunInterruptHandlers();
    _exit(1);
  }
  say("LLVM ERROR: ");
  say(reason);
  say("\n");
}

/// Uniform values with unit-variance-preserving scale for matrices, ones for
/// LayerNorm scales, small values for the rest: random, but numerically sane
/// enough that benchmarks exercise realistic routing.
LogicalResult bindRandomWeights(func::FuncOp f, unsigned inputs,
                                uint64_t seed) {
  uint64_t total = 0;
  for (unsigned i = inputs; i < f.getNumArguments(); ++i)
    if (auto type = dyn_cast<RankedTensorType>(f.getArgument(i).getType());
        type && type.hasStaticShape())
      total = llvm::SaturatingAdd(
          total, llvm::SaturatingMultiply(uint64_t(type.getNumElements()),
                                          uint64_t(sizeof(float))));
  std::string error;
  // The weights as made, as IR constants and in the module.
  if (!::vmoe::readers::checkMemoryFor(
          llvm::SaturatingMultiply(total, uint64_t(3)),
          "binding " + ::vmoe::readers::formatBytes(total) +
              " of random weights to @" + f.getName().str(),
          &error))
    return f.emitOpError() << error;
  std::mt19937_64 rng(seed);
  Block &entry = f.getBody().front();
  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  SmallVector<unsigned> erase;
  for (unsigned i = inputs; i < f.getNumArguments(); ++i) {
    BlockArgument arg = f.getArgument(i);
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    if (!type || !type.hasStaticShape() || !type.getElementType().isF32())
      return f.emitOpError() << "argument " << i
                             << " is not a static f32 tensor; cannot bind "
                                "random weights to it";
    bool isScale = llvm::any_of(arg.getUses(), [](OpOperand &use) {
      Operation *op = use.getOwner();
      unsigned n = use.getOperandNumber();
      return (isa<mlir::vmoe::LayerNormOp>(op) && n == 1) ||
             (isa<mlir::vmoe::EncoderBlockOp>(op) && (n == 1 || n == 11));
    });
    ArrayRef<int64_t> shape = type.getShape();
    double scale = 0.02;
    if (shape.size() >= 2 && shape[0] != 1)
      scale = std::sqrt(3.0 / static_cast<double>(shape[shape.size() - 2]));
    std::uniform_real_distribution<float> dist(-scale, scale);
    std::vector<float> data(type.getNumElements());
    for (float &v : data)
      v = isScale ? 1.0f : dist(rng);
    auto blob = HeapAsmResourceBlob::allocateAndCopyInferAlign<float>(data);
    auto attr = DenseResourceElementsAttr::get(
        type, "weight" + std::to_string(i), std::move(blob));
    Value c = arith::ConstantOp::create(b, f.getLoc(), attr);
    arg.replaceAllUsesWith(c);
    erase.push_back(i);
  }
  llvm::BitVector bits(f.getNumArguments());
  for (unsigned i : erase)
    bits.set(i);
  return f.eraseArguments(bits);
}

void parseCommandLine(int argc, char **argv) {
  // LLVM's libraries register hundreds of options of their own; --help
  // lists this tool's.
  static cl::OptionCategory category("vmoe-compile options");
  for (cl::Option *option : std::initializer_list<cl::Option *>{
           &inputFile,     &preset,         &weightsFile,   &batchSize,
           &groupSize,     &capacityFactor, &bprDefault,    &outputFile,
           &targetName,    &smList,         &ptxasPath,     &requireCubin,
           &cudaBlockSize, &cpuName,        &emit,          &maxCapacityFactor,
           &expertWeights, &expertMath,     &randomWeights, &numInputs,
           &optLevel,      &modelName,      &signKey,       &generateSigningKey,
           &imageSize,     &quiet,          &expertShards, &denseMath})
    option->addCategory(category);
  cl::HideUnrelatedOptions(category);
  // --version: vmoe's version and revision first, then LLVM's.
  cl::SetVersionPrinter([](llvm::raw_ostream &os) {
    os << ::vmoe::tools::versionLine("vmoe-compile") << "\n";
    cl::PrintVersionMessage();
  });
  cl::ParseCommandLineOptions(
      argc, argv, "vmoe-compile: compile a V-MoE model into one module file\n");
}

/// Checks the options that need no model; `sms` gets the SM list. Returns
/// 0, or 1 (message printed).
int checkOptions(std::vector<unsigned> &sms) {
  if (expertWeights != "f32" && expertWeights != "bf16")
    return fail("--expert-weights takes f32 or bf16, got '" + expertWeights +
                "'");
  if (expertMath != "f32" && expertMath != "bf16" && expertMath != "int8")
    return fail("--expert-math takes f32, bf16 or int8, got '" + expertMath +
                "'");
  if (denseMath != "f32" && denseMath != "int8")
    return fail("--dense-math takes f32 or int8, got '" + denseMath + "'");
  if (expertMath == "int8" && expertWeights == "bf16")
    return fail("--expert-math=int8 stores int8 weights: drop "
                "--expert-weights=bf16");
  if ((expertMath == "int8" || denseMath == "int8") && targetName != "cpu")
    return fail("int8 math (--expert-math=int8, --dense-math=int8) needs "
                "--target=cpu");
  if (expertMath == "bf16" && expertWeights.getNumOccurrences() &&
      expertWeights == "f32")
    return fail("--expert-math=bf16 multiplies bf16 weights: drop "
                "--expert-weights=f32 (or use --expert-math=f32)");
  if (emit == Emit::Asm && targetName != "cpu")
    return fail("--emit=asm shows CPU code: it needs --target=cpu");
  if (targetName != "cpu" && targetName != "cuda" &&
      targetName != "cuda-emulation")
    return fail("unknown --target=" + targetName +
                " (known: cpu, cuda, cuda-emulation)");
  std::string smError;
  if (auto parsed = mlir::vmoe::cuda::parseSmList(smList, &smError);
      succeeded(parsed))
    sms = *parsed;
  else
    return fail(smError);
  if (cudaBlockSize < 1 || cudaBlockSize > 1024)
    return fail("--cuda-block-size must be in [1, 1024]");
  if (expertShards < 1)
    return fail("--expert-shards must be at least 1 (1: one module)");
  if (expertShards > 1 && targetName != "cpu")
    return fail("--expert-shards needs --target=cpu: the exchange between "
                "ranks is implemented for CPU modules only");
  if (maxCapacityFactor < 0.0 || !std::isfinite(maxCapacityFactor))
    return fail("--max-capacity-factor must be a positive number");
  return 0;
}

/// Refuses an -o that names one of the inputs (by device and inode, so
/// links and other spellings count): the rename at the end would replace
/// it. A checkpoint prefix stands for its .index and .data-* files. Returns
/// 0, or 1 (message printed).
int checkOutputPath() {
  if (emit != Emit::Module)
    return 0; // the other --emit kinds print to stdout
  std::vector<std::string> inputs = {inputFile, weightsFile};
  if (!weightsFile.empty()) {
    inputs.push_back(weightsFile + ".index");
    std::error_code ec;
    llvm::StringRef dir = llvm::sys::path::parent_path(weightsFile);
    std::string prefix =
        (llvm::sys::path::filename(weightsFile) + ".data-").str();
    for (llvm::sys::fs::directory_iterator it(dir.empty() ? "." : dir, ec), end;
         !ec && it != end; it.increment(ec))
      if (llvm::sys::path::filename(it->path()).starts_with(prefix))
        inputs.push_back(it->path());
  }
  std::string error;
  // --expert-shards writes NAME.rank<R>.vmoe instead of -o.
  std::vector<std::string> outputs = {outputFile};
  if (expertShards > 1) {
    outputs.clear();
    for (unsigned r = 0; r < expertShards; ++r)
      outputs.push_back(mlir::vmoe::expertShardPath(outputFile, r));
  }
  for (const std::string &output : outputs)
    if (!::vmoe::tools::checkOutputIsNoInput("-o", output, inputs, &error))
      return fail(error);
  return 0;
}

/// The config or preset with the command-line overrides. Returns 0, or 1
/// (message printed).
int readConfig(::vmoe::readers::ModelConfig &config) {
  std::string error;
  if (!preset.empty()) {
    if (!inputFile.empty())
      return fail("give either a model file or --preset, not both");
    if (!::vmoe::readers::presetConfig(preset, config, &error))
      return fail(error);
  } else {
    ::vmoe::readers::ConfigReadOptions options;
    if (!imageSize.empty() &&
        !::vmoe::readers::parseImageSize(imageSize, options.imageHeight,
                                         options.imageWidth, &error))
      return fail("--image-size: " + error);
    if (!::vmoe::readers::readModelConfig(inputFile, config, &error, options))
      return fail(error);
  }
  if (!preset.empty() && !imageSize.empty())
    return fail("--image-size applies to a config; a preset is 224 px");
  if (!bprDefault.empty() && bprDefault != "on" && bprDefault != "off")
    return fail("--bpr takes on or off");
  ::vmoe::readers::ConfigOverrides overrides;
  overrides.batchSize = batchSize;
  overrides.groupSize = groupSize;
  overrides.capacityFactor = capacityFactor;
  overrides.maxCapacityFactor = maxCapacityFactor;
  if (!bprDefault.empty())
    overrides.batchPriority = bprDefault == "on";
  std::vector<std::string> warnings;
  ::vmoe::readers::applyOverrides(config, overrides, warnings);
  for (const std::string &warning : warnings)
    llvm::errs() << "vmoe-compile: warning: " << warning << "\n";
  return 0;
}

/// The model of a config with its weights (read, or random). Returns 0, or
/// 1 (message printed).
int buildFromConfig(MLIRContext &context,
                    const ::vmoe::readers::ModelConfig &config,
                    OwningOpRef<ModuleOp> &module,
                    std::unique_ptr<::vmoe::readers::TensorSource> &source) {
  std::string error;
  if (weightsFile.empty() && randomWeights < 0)
    return fail("a config needs --weights FILE (or --random-weights=SEED "
                "for benchmarks)");
  // Whether the model fits, before any weight is read or made: the weights
  // stream into the module one at a time.
  if (!mlir::vmoe::validateForBuild(config, &error) ||
      !::vmoe::readers::checkMemoryFor(
          mlir::vmoe::compileMemoryEstimate(config),
          "compiling '" + config.name + "' (" +
              ::vmoe::readers::formatBytes(mlir::vmoe::weightBytes(config)) +
              " of float32 weights, the largest " +
              ::vmoe::readers::formatBytes(
                  mlir::vmoe::largestWeightBytes(config)) +
              ")",
          &error))
    return fail(error);
  if (!weightsFile.empty()) {
    // The file is scanned here (names, dtypes, shapes; no data): unexpected
    // or misshapen tensors are refused before any data is read.
    ::vmoe::readers::ExpectedShapes expected =
        mlir::vmoe::expectedShapes(config);
    ::vmoe::readers::ReadOptions readOptions;
    readOptions.expected = &expected;
    source = ::vmoe::readers::openTensorFile(weightsFile, &error, readOptions);
    if (!source)
      return fail(error);
  } else {
    source = mlir::vmoe::randomWeightSource(config, randomWeights);
  }
  module = mlir::vmoe::buildVitMoe(context, config, source->shapes(), &error);
  if (!module)
    return fail(error);
  return 0;
}

/// A .mlir model, with random weights bound when asked. Returns 0, or 1
/// (message or diagnostics printed).
int parseModel(MLIRContext &context, llvm::SourceMgr &sourceMgr,
               OwningOpRef<ModuleOp> &module,
               std::unique_ptr<::vmoe::readers::TensorSource> &source) {
  if (inputFile.empty())
    return fail("no model given: a .mlir file, a config .json, or --preset");
  std::string openError;
  auto file = openInputFile(inputFile, &openError);
  if (!file)
    return fail(openError);
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return fail("cannot parse " + inputFile);
  if (!weightsFile.empty()) {
    // The parameters the model names (vmoe.parameter), read by name.
    std::string error;
    source = ::vmoe::readers::openTensorFile(weightsFile, &error);
    if (!source)
      return fail(error);
  }
  if (randomWeights >= 0) {
    for (auto f : llvm::make_early_inc_range(module->getOps<func::FuncOp>()))
      if (f.isPublic() &&
          failed(bindRandomWeights(f, numInputs, randomWeights)))
        return 1;
    // Named parameters (vmoe.parameter) get random values by name.
    if (!source) {
      ::vmoe::readers::ExpectedShapes shapes;
      module->walk([&](mlir::vmoe::ParameterOp p) {
        shapes[p.getName().str()] = std::vector<int64_t>(
            p.getType().getShape().begin(), p.getType().getShape().end());
      });
      if (!shapes.empty())
        source = mlir::vmoe::randomParameterSource(shapes, randomWeights);
    }
  }
  return 0;
}

mlir::vmoe::CompileOptions
compileOptions(const std::vector<unsigned> &sms, const std::string &configJson,
               const std::vector<std::string> &classNames) {
  mlir::vmoe::CompileOptions options;
  options.cpu = cpuName;
  options.target = targetName;
  options.cudaSms = sms;
  options.cudaBlockSize = cudaBlockSize;
  options.ptxasPath = ptxasPath;
  options.requireCubin = requireCubin;
  options.maxCapacityFactor = maxCapacityFactor;
  options.expertWeightsBf16 = expertWeights == "bf16";
  options.expertBf16Math = expertMath == "bf16";
  options.expertInt8 = expertMath == "int8";
  options.denseInt8 = denseMath == "int8";
  options.optLevel = optLevel;
  options.expertShards = expertShards;
  options.modelName = !modelName.empty() ? std::string(modelName)
                      : !preset.empty()
                          ? std::string(preset)
                          : llvm::sys::path::stem(inputFile).str();
  options.configJson = configJson;
  options.classNames = classNames;
  return options;
}

/// --emit=mlir, kernels or ptx: prints the IR (or PTX) of that stage.
int emitStage(ModuleOp module, const mlir::vmoe::CompileOptions &options) {
  std::string error;
  if (emit == Emit::Mlir) {
    PassManager pm(module.getContext());
    mlir::vmoe::buildGraphPipeline(pm, options);
    if (failed(pm.run(module)))
      return 1;
    // Weights stay out of the text: resource blobs print as elided.
    module->print(llvm::outs(), OpPrintingFlags().elideLargeResourceString(64));
    return 0;
  }
  if (emit == Emit::Kernels) {
    if (failed(mlir::vmoe::lowerToKernels(module, options, &error)))
      return fail(error);
    module->print(llvm::outs(), OpPrintingFlags().elideLargeResourceString(64));
    return 0;
  }
  if (targetName != "cuda")
    return fail("--emit=ptx needs --target=cuda");
  if (failed(mlir::vmoe::lowerToKernels(module, options, &error)))
    return fail(error);
  mlir::vmoe::cuda::CudaCodegenOptions codegen;
  codegen.sms = options.cudaSms;
  codegen.blockSize = cudaBlockSize;
  codegen.optLevel = optLevel;
  codegen.ptxasPath = ptxasPath;
  codegen.requireCubin = requireCubin;
  auto image = mlir::vmoe::cuda::compileCudaKernels(module, codegen, &error);
  if (failed(image))
    return fail(error);
  llvm::outs() << image->ptx;
  return 0;
}

/// What the module runs on, for the summary line.
std::string deviceName(const mlir::vmoe::cpu::CpuTarget &target,
                       const std::vector<unsigned> &sms) {
  std::string device = target.name + " (" + target.triple + ")";
  if (targetName == "cuda") {
    std::string ptxas = mlir::vmoe::cuda::findPtxas(ptxasPath);
    device = "cuda (PTX for sm_" + std::to_string(sms.front()) +
             (ptxas.empty() ? ", no cubin: ptxas not found"
                            : ", cubins from " + ptxas) +
             ")";
  } else if (targetName == "cuda-emulation") {
    device = "cuda-emulation on " + device;
  }
  return device;
}

/// Compiles the whole way: writes the module file and prints a summary, or
/// with --emit=llvm or asm prints the kernels' code instead.
int compileModule(ModuleOp module, mlir::vmoe::CompileOptions &options,
                  const mlir::vmoe::cpu::CpuTarget &target,
                  const ::vmoe::writer::ModuleSigner *signer) {
  std::string error;
  llvm::SmallString<128> llPath;
  bool dumpCode = emit == Emit::LlvmIr || emit == Emit::Asm;
  if (dumpCode) {
    if (std::error_code ec = llvm::sys::fs::createTemporaryFile(
            "vmoe-kernels", emit == Emit::Asm ? "s" : "ll", llPath))
      return fail("cannot create a temporary file: " + ec.message());
    (emit == Emit::Asm ? options.dumpAssemblyPath : options.dumpLlvmIrPath) =
        std::string(llPath);
  }
  if (dumpCode) {
    mlir::vmoe::SerializeOptions serialize;
    LogicalResult compiled =
        mlir::vmoe::compileToExecutable(module, options, serialize, &error);
    auto buffer = llvm::MemoryBuffer::getFile(llPath);
    llvm::sys::fs::remove(llPath);
    if (failed(compiled))
      return fail(error);
    if (!buffer)
      return fail("cannot read the generated code back");
    llvm::outs() << (*buffer)->getBuffer();
    return 0;
  }
  options.signer = signer;
  ::vmoe::tools::CompileProgress progress(!quiet);
  options.onPhase = [&](const std::string &phase) { progress.phase(phase); };
  options.onWeights = [&](uint64_t done, uint64_t total, size_t segments,
                          size_t all) {
    progress.weights(done, total, segments, all);
  };
  mlir::vmoe::SerializeStats stats;
  std::vector<uint64_t> fileSizes(1);
  std::vector<std::string> paths;
  LogicalResult compiled = failure();
  if (expertShards > 1) {
    compiled = mlir::vmoe::compileToShardedModuleFiles(
        module, options, outputFile, &error, &stats, &fileSizes);
    for (unsigned r = 0; r < expertShards; ++r)
      paths.push_back(mlir::vmoe::expertShardPath(outputFile, r));
  } else {
    compiled = mlir::vmoe::compileToModuleFile(
        module, options, outputFile, &error, &stats, fileSizes.data());
    paths.push_back(outputFile);
  }
  progress.finish();
  if (failed(compiled))
    return fail(error);
  for (size_t i = 0; i < paths.size() && i < fileSizes.size(); ++i)
    llvm::outs() << "wrote " << paths[i] << ": " << fileSizes[i] << " bytes, "
                 << stats.kernels << " kernels for "
                 << deviceName(target, options.cudaSms) << ", weights "
                 << stats.constantBytes << " bytes, arena " << stats.arenaSize
                 << " bytes (" << stats.arenaSizeWithoutReuse
                 << " without buffer reuse)\n";
  if (signer) {
    uint8_t id[VMOE_SIGNATURE_KEY_ID_SIZE];
    signer->keyId(id);
    llvm::outs() << "signed by key " << ::vmoe::writer::toHex(id, sizeof(id))
                 << "\n";
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  llvm::install_bad_alloc_error_handler(outOfMemory);
  llvm::install_out_of_memory_new_handler(); // InitLLVM may not have
  llvm::install_fatal_error_handler(fatalError);
  parseCommandLine(argc, argv);
  std::string error;
  if (!generateSigningKey.empty()) {
    std::string keyId;
    if (!::vmoe::writer::generateKeyPair(generateSigningKey, &keyId, &error))
      return fail(error);
    llvm::outs() << "wrote " << generateSigningKey << ".key (secret) and "
                 << generateSigningKey << ".pub: key id " << keyId << "\n";
    return 0;
  }
  // The key is read first: a bad key file fails before a long compile.
  std::unique_ptr<::vmoe::writer::Ed25519Signer> signer;
  if (!signKey.empty() &&
      !(signer = ::vmoe::writer::loadSigner(signKey, &error)))
    return fail(error);
  std::vector<unsigned> sms;
  if (int rc = checkOptions(sms))
    return rc;
  if (int rc = checkOutputPath())
    return rc;
  FailureOr<mlir::vmoe::cpu::CpuTarget> target =
      mlir::vmoe::cpu::resolveCpuTarget(cpuName, &error);
  if (failed(target))
    return fail(error);

  DialectRegistry registry;
  mlir::vmoe::registerCompilerDialects(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  OwningOpRef<ModuleOp> module;
  std::unique_ptr<::vmoe::readers::TensorSource> source;
  std::string configJson;
  std::vector<std::string> classNames;
  if (!preset.empty() || llvm::StringRef(inputFile).ends_with(".json")) {
    // A vmoe config (or preset) and its weights.
    ::vmoe::readers::ModelConfig config;
    if (int rc = readConfig(config))
      return rc;
    classNames = config.classNames;
    configJson = ::vmoe::readers::modelConfigToJson(config);
    // A preset whose float32 weights would not fit a 24 GB machine stores
    // its experts as bf16 unless told otherwise (V-MoE-H/14 Every-2,
    // V-MoE-15B).
    if (!preset.empty() && !expertWeights.getNumOccurrences() &&
        expertMath != "int8" &&
        mlir::vmoe::weightBytes(config) > kBf16PresetBytes) {
      expertWeights = "bf16";
      llvm::errs() << "vmoe-compile: note: " << preset << " has "
                   << ::vmoe::readers::formatBytes(
                          mlir::vmoe::weightBytes(config))
                   << " of float32 weights: storing its expert weights as "
                      "bf16 (--expert-weights=f32 to keep them float32)\n";
    }
    if (emit == Emit::Config) {
      llvm::outs() << configJson << "\n";
      return 0;
    }
    if (int rc = buildFromConfig(context, config, module, source))
      return rc;
  } else if (int rc = parseModel(context, sourceMgr, module, source)) {
    return rc;
  }

  mlir::vmoe::CompileOptions options =
      compileOptions(sms, configJson, classNames);
  options.parameters = source.get();
  if (emit == Emit::Mlir || emit == Emit::Kernels || emit == Emit::Ptx)
    return emitStage(*module, options);
  return compileModule(*module, options, *target, signer.get());
}
