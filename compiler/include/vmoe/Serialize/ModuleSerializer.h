//===- ModuleSerializer.h - host schedule to module file --------*- C++ -*-===//
//
// Reads the host function that vmoe-lower-to-kernels produced (buffers,
// weights as memref.globals, vmoe.launch, vmoe.routing_stats, knob
// arguments), plans the arena and writes the module file with the compiled
// kernels' shared object. Weight globals that name parameters
// (`vmoe.packed`) are streamed from SerializeOptions::parameters into the
// file as it is written, one global at a time, packed on the way.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_SERIALIZE_MODULESERIALIZER_H
#define VMOE_SERIALIZE_MODULESERIALIZER_H

#include "vmoe/readers/TensorSource.h"
#include "vmoe/writer/ModuleWriter.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LogicalResult.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mlir::vmoe {

struct SerializeOptions {
  std::string modelName;
  std::string configJson;
  std::vector<std::string> classNames;
  std::string producer = "vmoe-compile";
  /// The CPU executable: the shared object and what it was built for.
  std::string sharedObject;
  std::string targetTriple;
  std::string cpuFeatures;
  /// The CUDA executable, used instead of the CPU one when `cudaPtx` is set:
  /// PTX for SM `cudaPtxSm`, cubins per SM, CUDA threads per block.
  std::string cudaPtx;
  uint32_t cudaPtxSm = 0;
  std::vector<std::pair<uint32_t, std::string>> cudaCubins;
  uint32_t cudaBlockSize = 0;
  /// CUDA: the PTX .entry of each kernel func (by name).
  std::map<std::string, std::string> cudaEntries;
  /// Where the parameters the weight globals name are read from (the
  /// checkpoint, or random weights); must outlive the serialization.
  ::vmoe::readers::TensorSource *parameters = nullptr;
  /// Signs the module when set.
  const ::vmoe::writer::ModuleSigner *signer = nullptr;
  /// Reports the writing of the weights, when set.
  ::vmoe::writer::WriteProgress progress;
  /// An expert-sharded schedule (vmoe.expert_shards = N on the host): the
  /// rank to write (0..N-1; its experts' weights only) and the model id
  /// that all N files of the compile share.
  uint32_t expertRank = 0;
  ::vmoe::writer::Digest128 modelId;
};

struct SerializeStats {
  uint64_t arenaSize = 0;
  uint64_t arenaSizeWithoutReuse = 0;
  uint64_t constantBytes = 0;
  uint32_t dispatches = 0;
  uint32_t kernels = 0;
};

/// Builds the module file bytes. Errors are reported on the IR.
LogicalResult serializeModule(ModuleOp module, const SerializeOptions &options,
                              std::vector<uint8_t> &bytes,
                              SerializeStats *stats = nullptr);

/// Writes the module file to `path` (through a temporary file and a
/// rename), streaming the parameters into it: the memory it takes is that
/// of the largest weight, not of all. *error gets the diagnostics' text.
LogicalResult serializeModuleToFile(ModuleOp module,
                                    const SerializeOptions &options,
                                    const std::string &path,
                                    SerializeStats *stats, uint64_t *fileSize,
                                    std::string *error);

/// Writes `bytes` to `path` through a temporary file in the same folder and
/// a rename, so a failed write never leaves a partial module in its place.
LogicalResult writeFileAtomically(const std::string &path,
                                  const std::vector<uint8_t> &bytes,
                                  std::string *error);

} // namespace mlir::vmoe

#endif // VMOE_SERIALIZE_MODULESERIALIZER_H
