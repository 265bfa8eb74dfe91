//===- Compile.h - the whole compiler as one call ---------------*- C++ -*-===//
//
// Tensor-level model IR -> module file bytes, the path vmoe-compile and the
// end-to-end tests take:
//   vmoe-infer-capacity, vmoe-decompose, canonicalize, cse   (graph)
//   vmoe-lower-to-kernels                                    (kernels)
//   CPU code generation                                      (shared object)
//   serialization                                            (module file)
// The model's parameters (vmoe.parameter) stream from
// CompileOptions::parameters into the module as it is written.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_PIPELINES_COMPILE_H
#define VMOE_PIPELINES_COMPILE_H

#include "vmoe/Serialize/ModuleSerializer.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"

#include <functional>
#include <string>
#include <vector>

namespace mlir::vmoe {

struct CompileOptions {
  /// --cpu: host, x86-64-v3, x86-64-v4, aarch64, an LLVM CPU name, each
  /// with optional +features (see cpu::resolveCpuTarget).
  std::string cpu = "host";
  /// Largest per-call capacity factor; 0: each layer's own.
  double maxCapacityFactor = 0.0;
  unsigned optLevel = 3;
  std::string modelName;
  std::string configJson;
  std::vector<std::string> classNames;
  /// Expert weights stored as bfloat16 (vmoe-lower-to-kernels
  /// expert-weights-bf16): half the bytes, f32 accumulation.
  bool expertWeightsBf16 = false;
  /// bf16 x bf16 expert GEMMs with f32 accumulation (vmoe-lower-to-kernels
  /// expert-bf16-math; implies bf16 expert weights): AVX512-BF16 where
  /// the CPU target has it, the same arithmetic in f32 FMAs elsewhere.
  bool expertBf16Math = false;
  /// --expert-shards: split every MoE layer's experts over this many ranks
  /// (expert parallelism, one module per rank: compileToShardedModuleFiles);
  /// 1: one module with every expert.
  unsigned expertShards = 1;
  /// int8 GEMMs (vmoe-lower-to-kernels expert-int8, dense-int8): the
  /// experts', and the attention projections' and dense MLPs'; with the
  /// integer dot product of the CPU target (KernelTargetInfo::int8Dot).
  bool expertInt8 = false;
  bool denseInt8 = false;
  /// Where to write the optimized LLVM IR / the kernels' assembly, when set.
  std::string dumpLlvmIrPath;
  std::string dumpAssemblyPath;
  /// --target: "cpu"; "cuda" (PTX, cubins when ptxas is found); or
  /// "cuda-emulation": the CUDA kernels' bodies compiled for the CPU (`cpu`),
  /// one CUDA block per CPU workgroup, to test them without a GPU.
  std::string target = "cpu";
  /// CUDA: SM versions (the PTX targets the lowest), threads per block, the
  /// ptxas to run ("" search, "none" PTX only), fail without ptxas.
  std::vector<unsigned> cudaSms = {80};
  int64_t cudaBlockSize = 32;
  std::string ptxasPath;
  bool requireCubin = false;
  /// Where the model's parameters are read from (a checkpoint, random
  /// weights); needed when the model names any. Must outlive the compile.
  ::vmoe::readers::TensorSource *parameters = nullptr;
  /// Signs the module when set.
  const ::vmoe::writer::ModuleSigner *signer = nullptr;
  /// Progress: called as each phase starts ("graph", "kernels", "codegen",
  /// "weights"), and as the weights are written.
  std::function<void(const std::string &phase)> onPhase;
  ::vmoe::writer::WriteProgress onWeights;
};

/// Whether `parameters` holds every parameter the model names, with its
/// shape; false with *error naming the first that is missing or
/// misshapen (or saying that weights are needed).
bool checkParameters(ModuleOp module,
                     const ::vmoe::readers::TensorSource *parameters,
                     std::string *error);

/// Registers every dialect the compiler parses or produces.
void registerCompilerDialects(DialectRegistry &registry);

/// Adds the graph-level passes (capacity inference, decomposition, cleanup).
void buildGraphPipeline(OpPassManager &pm, const CompileOptions &options);

/// Runs the graph passes and the kernel lowering on `module` in place, with
/// the kernel shape the selected target asks for (KernelTargetInfo).
LogicalResult lowerToKernels(ModuleOp module, const CompileOptions &options,
                             std::string *error);

/// Everything but the module's bytes: lowering and code generation, into
/// `serialize` (with CompileOptions' parameters, signer and progress).
/// --emit=llvm and asm stop here.
LogicalResult compileToExecutable(ModuleOp module,
                                  const CompileOptions &options,
                                  SerializeOptions &serialize,
                                  std::string *error);

/// The whole flow into memory. `module` is consumed (lowered in place).
LogicalResult compileToModule(ModuleOp module, const CompileOptions &options,
                              std::vector<uint8_t> &bytes, std::string *error,
                              SerializeStats *stats = nullptr);

/// The whole flow into the file `path` (written through a temporary file
/// and a rename), streaming the weights: the memory it takes is that of
/// the largest weight. `fileSize` gets the module's size.
LogicalResult compileToModuleFile(ModuleOp module,
                                  const CompileOptions &options,
                                  const std::string &path, std::string *error,
                                  SerializeStats *stats = nullptr,
                                  uint64_t *fileSize = nullptr);

/// The file of rank `rank` of an expert-sharded compile to `path`:
/// NAME.vmoe -> NAME.rank<R>.vmoe (a path without .vmoe gets the suffix).
std::string expertShardPath(const std::string &path, unsigned rank);

/// The id that the rank modules of one expert-sharded compile share: an
/// XXH3-128 digest over the model (config, name, class names), the compiled
/// kernels (they carry every lowering option and the target), the number of
/// ranks and every weight the module packs (names and values).
FailureOr<::vmoe::writer::Digest128>
expertShardModelId(ModuleOp module, const CompileOptions &options,
                   const SerializeOptions &serialize, std::string *error);

/// The whole flow for options.expertShards = N >= 2 ranks into memory:
/// `ranks[R]` gets rank R's module.
LogicalResult compileToShardedModules(ModuleOp module,
                                      const CompileOptions &options,
                                      std::vector<std::vector<uint8_t>> &ranks,
                                      std::string *error);

/// The whole flow for options.expertShards = N >= 2 ranks: one lowering and
/// code generation, then N module files, expertShardPath(path, R), each with
/// the dense weights and rank R's experts, streamed. `fileSizes` gets their
/// sizes; `stats` those of rank 0 (every rank has the same schedule).
LogicalResult
compileToShardedModuleFiles(ModuleOp module, const CompileOptions &options,
                            const std::string &path, std::string *error,
                            SerializeStats *stats = nullptr,
                            std::vector<uint64_t> *fileSizes = nullptr);

} // namespace mlir::vmoe

#endif // VMOE_PIPELINES_COMPILE_H
