//===- ModuleSerializer.h - host schedule to module file --------*- C++ -*-===//
//
// Reads the host function that vmoe-lower-to-kernels produced (buffers,
// weights as memref.globals, vmoe.launch, vmoe.routing_stats, knob
// arguments), plans the arena and writes the module file with the compiled
// kernels' shared object.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_SERIALIZE_MODULESERIALIZER_H
#define VMOE_SERIALIZE_MODULESERIALIZER_H

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

/// Writes `bytes` to `path` through a temporary file in the same folder and
/// a rename, so a failed write never leaves a partial module in its place.
LogicalResult writeFileAtomically(const std::string &path,
                                  const std::vector<uint8_t> &bytes,
                                  std::string *error);

} // namespace mlir::vmoe

#endif // VMOE_SERIALIZE_MODULESERIALIZER_H
