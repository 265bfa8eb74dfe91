//===- ShardedCompile.cpp - one model into N expert-sharded modules -------===//
//
// vmoe-compile --expert-shards=N: the model is lowered and compiled once (the
// schedule of every rank is the same), then written N times, each rank's
// file streaming the dense weights and its own experts' (the globals marked
// vmoe.expert_slice). The files share a model id that the runtime checks so
// that ranks of different compiles never exchange buffers.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Pipelines/Compile.h"

#include "vmoe/Dialect/IR/VmoeContract.h"
#include "vmoe/Dialect/IR/VmoeOps.h"
#include "vmoe/writer/ModuleDigests.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"

#include <cstring>
#include <set>

namespace mlir::vmoe {

std::string expertShardPath(const std::string &path, unsigned rank) {
  llvm::StringRef stem(path);
  stem.consume_back(".vmoe");
  return stem.str() + ".rank" + std::to_string(rank) + ".vmoe";
}

namespace {

/// Digests of the parts that identify a compile, folded into one at the end.
class IdBuilder {
public:
  void add(const void *data, uint64_t size) {
    ::vmoe::writer::Digest128 d = ::vmoe::writer::digestBytes(data, size);
    parts.push_back(d.low);
    parts.push_back(d.high);
  }
  void add(const std::string &s) { add(s.data(), s.size()); }
  void add(uint64_t v) { add(&v, sizeof(v)); }
  ::vmoe::writer::Digest128 finish() const {
    return ::vmoe::writer::digestBytes(parts.data(),
                                       parts.size() * sizeof(uint64_t));
  }

private:
  std::vector<uint64_t> parts;
};

} // namespace

FailureOr<::vmoe::writer::Digest128>
expertShardModelId(ModuleOp module, const CompileOptions &options,
                   const SerializeOptions &serialize, std::string *error) {
  IdBuilder id;
  id.add(std::string("vmoe expert shards"));
  id.add(uint64_t(options.expertShards));
  id.add(serialize.modelName);
  id.add(serialize.configJson);
  for (const std::string &name : serialize.classNames)
    id.add(name);
  // The kernels: the lowering's options and the target are in their code.
  id.add(serialize.sharedObject);
  id.add(serialize.targetTriple);
  id.add(serialize.cpuFeatures);
  // Every weight the ranks stream, by name and value.
  std::set<std::string> names;
  module.walk([&](memref::GlobalOp global) {
    if (auto packed = global->getAttrOfType<PackedWeightAttr>(kPackedAttrName))
      for (StringRef name : packed.getParameterNames())
        names.insert(name.str());
  });
  for (const std::string &name : names) {
    ::vmoe::readers::Tensor tensor;
    if (!serialize.parameters ||
        !serialize.parameters->read(name, tensor, error)) {
      if (!serialize.parameters)
        *error =
            "the model names parameter " + name + " but no weights were given";
      return failure();
    }
    id.add(name);
    id.add(tensor.data.data(), tensor.data.size() * sizeof(float));
  }
  return id.finish();
}

/// Lowering, code generation and the model id of a sharded compile.
static LogicalResult prepareShards(ModuleOp module,
                                   const CompileOptions &options,
                                   SerializeOptions &serialize,
                                   std::string *error) {
  if (options.expertShards < 2) {
    *error = "--expert-shards must be at least 2 to split the experts (got " +
             std::to_string(options.expertShards) +
             "; 1 is the usual single module)";
    return failure();
  }
  if (failed(compileToExecutable(module, options, serialize, error)))
    return failure();
  FailureOr<::vmoe::writer::Digest128> modelId =
      expertShardModelId(module, options, serialize, error);
  if (failed(modelId))
    return failure();
  serialize.modelId = *modelId;
  return success();
}

LogicalResult compileToShardedModules(ModuleOp module,
                                      const CompileOptions &options,
                                      std::vector<std::vector<uint8_t>> &ranks,
                                      std::string *error) {
  SerializeOptions serialize;
  if (failed(prepareShards(module, options, serialize, error)))
    return failure();
  ranks.assign(options.expertShards, {});
  for (unsigned rank = 0; rank < options.expertShards; ++rank) {
    serialize.expertRank = rank;
    std::string text;
    ScopedDiagnosticHandler handler(module.getContext(), [&](Diagnostic &d) {
      text += d.str() + "\n";
      return success();
    });
    if (failed(serializeModule(module, serialize, ranks[rank]))) {
      *error = text.empty() ? "serialization failed" : text;
      return failure();
    }
  }
  return success();
}

LogicalResult compileToShardedModuleFiles(ModuleOp module,
                                          const CompileOptions &options,
                                          const std::string &path,
                                          std::string *error,
                                          SerializeStats *stats,
                                          std::vector<uint64_t> *fileSizes) {
  SerializeOptions serialize;
  if (failed(prepareShards(module, options, serialize, error)))
    return failure();
  if (fileSizes)
    fileSizes->clear();
  for (unsigned rank = 0; rank < options.expertShards; ++rank) {
    serialize.expertRank = rank;
    SerializeStats rankStats;
    uint64_t size = 0;
    if (failed(serializeModuleToFile(module, serialize,
                                     expertShardPath(path, rank), &rankStats,
                                     &size, error))) {
      // All ranks or none: the files written so far go too.
      for (unsigned done = 0; done < rank; ++done)
        llvm::sys::fs::remove(expertShardPath(path, done));
      return failure();
    }
    if (stats && rank == 0)
      *stats = rankStats;
    if (fileSizes)
      fileSizes->push_back(size);
  }
  return success();
}

} // namespace mlir::vmoe
