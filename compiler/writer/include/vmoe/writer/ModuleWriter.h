//===- ModuleWriter.h - Build a vmoe module file ----------------*- C++ -*-===//
//
// Plain C++ (no MLIR): collects a module's contents (signature, segments,
// constants, executables, kernels, the dispatch schedule, the arena plan and
// the MoE layers) and writes the file: the fixed header, the metadata
// FlatBuffer, and the aligned segments after it (see
// format/include/vmoe/module_format.h and format/schema/module.fbs).
//
// The writer checks only what it needs to lay the file out (alignments,
// sizes). Whether the contents make sense (indices, ranges, grids) is the
// runtime verifier's job, so the compiler can hand the bytes to
// vmoe_module_load_memory to check them; tests use the writer's freedom to
// craft invalid modules on purpose.
//
// Every scalar field is stored, even when it equals the schema default, so
// that tools and tests can patch any field in place (the generated
// mutate_*() functions; then resealMetadata, vmoe/writer/ModuleDigests.h).
//
// Integrity: the writer stores each segment's XXH3-128 digest in the
// FlatBuffer and the metadata digest in the header, and signs the file when
// given a ModuleSigner. The segments are read twice (digests, then the
// write), never copied: writeFile streams multi-GB weights from the caller's
// memory. A streamed segment (addSegmentStream) is produced only when the
// file is written, one at a time: its digest is taken as it is written, and
// the FlatBuffer before the segments is written last (its size does not
// depend on the digests' values), so that a module of any size is written
// in the memory of its largest segment.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_WRITER_MODULEWRITER_H
#define VMOE_WRITER_MODULEWRITER_H

#include "vmoe/kernel_abi.h"
#include "vmoe/module_format.h"
#include "vmoe/module_generated.h"
#include "vmoe/writer/ModuleDigests.h"

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace vmoe {
namespace writer {

struct TensorDesc {
  std::string name;
  fb::DType dtype = fb::DType::F32;
  /// Row-major dims; the batch dim holds the maximum batch.
  std::vector<int64_t> shape;
  /// -1: no batch dim.
  int32_t batchDim = -1;
};

struct KernelDesc {
  std::string name;
  uint32_t executable = 0;
  std::string entry;
  std::array<uint32_t, 3> workgroupCount = {1, 1, 1};
  /// CUDA block dims; unused on CPU.
  std::array<uint32_t, 3> workgroupSize = {1, 1, 1};
  uint32_t bindingCount = 0;
  uint32_t constantCount = 0;
  uint64_t scratchSize = 0;
  uint32_t sharedMemorySize = 0;
  uint32_t abiVersion = VMOE_KERNEL_ABI_VERSION;
  /// One flag per binding: true if the kernel may write it. Empty: the field
  /// is left out, which the runtime reads as "every binding is written".
  std::vector<bool> writtenBindings;
};

struct BindingDesc {
  fb::BufferKind kind = fb::BufferKind::Arena;
  uint32_t index = 0;
  uint64_t offset = 0;
  uint64_t length = 0;

  static BindingDesc arena(uint64_t offset, uint64_t length) {
    return {fb::BufferKind::Arena, 0, offset, length};
  }
  static BindingDesc constant(uint32_t index, uint64_t offset,
                              uint64_t length) {
    return {fb::BufferKind::Constant, index, offset, length};
  }
  static BindingDesc input(uint32_t index, uint64_t offset, uint64_t length) {
    return {fb::BufferKind::Input, index, offset, length};
  }
  static BindingDesc output(uint32_t index, uint64_t offset, uint64_t length) {
    return {fb::BufferKind::Output, index, offset, length};
  }
};

struct PushConstantDesc {
  fb::PushConstantSource source = fb::PushConstantSource::Literal;
  uint32_t layer = 0;
  int64_t value = 0;

  static PushConstantDesc literal(int64_t value) {
    return {fb::PushConstantSource::Literal, 0, value};
  }
  /// The capacity C of MoE layer `layer` in each call.
  static PushConstantDesc capacity(uint32_t layer) {
    return {fb::PushConstantSource::MoeCapacity, layer, 0};
  }
  /// 1 if BPR is on for MoE layer `layer` in each call, else 0.
  static PushConstantDesc bpr(uint32_t layer) {
    return {fb::PushConstantSource::MoeBpr, layer, 0};
  }
  /// The experts per token of MoE layer `layer` in each call.
  static PushConstantDesc k(uint32_t layer) {
    return {fb::PushConstantSource::MoeK, layer, 0};
  }
  /// The actual batch of each call.
  static PushConstantDesc batchSize() {
    return {fb::PushConstantSource::BatchSize, 0, 0};
  }
};

struct DispatchDesc {
  uint32_t kernel = 0;
  std::vector<BindingDesc> bindings;
  std::vector<PushConstantDesc> pushConstants;
  /// When nonzero, grid x follows the batch: ceil(b * unitsPerImage /
  /// unitsPerWorkgroup) workgroups for a call of batch b.
  uint64_t batchUnitsPerImage = 0;
  uint64_t batchUnitsPerWorkgroup = 0;
  /// Expert-sharded modules: when set, the step is an exchange between the
  /// ranks (Dispatch.collective) and kernel, bindings and push constants
  /// are left empty.
  bool collective = false;
  fb::CollectiveKind collectiveKind = fb::CollectiveKind::AllToAll;
  uint32_t collectiveLayer = 0;
  uint64_t sendOffset = 0;
  uint64_t recvOffset = 0;
  uint64_t groupBytes = 0;
  uint64_t slotBytes = 0;
};

struct MoeLayerDesc {
  std::string name;
  uint32_t numExperts = 0;
  uint32_t k = 1;
  uint32_t groupSize = 0;
  uint32_t numGroups = 0;
  uint64_t numTokens = 0;
  uint32_t tokensPerImage = 0;
  /// Both 0: a fixed capacity (maxCapacity in every call).
  double defaultCapacityFactor = 1.0;
  double maxCapacityFactor = 1.0;
  uint32_t maxCapacity = 0;
  bool defaultBpr = false;
  /// The capacity rule (vmoe's compute_capacity options) and the routing.
  uint32_t capacityMultipleOf = 4;
  bool capacityRound = false;
  bool expertChoice = false;
  /// Routing statistics buffers in the arena (int32[G][E] counts and
  /// int32[N] kept-per-token), live until the end of the schedule.
  bool hasStats = false;
  uint64_t expertCountsOffset = 0;
  uint64_t tokenKeptOffset = 0;
  /// Expert-sharded modules: the experts this rank holds (0: all).
  uint32_t firstExpert = 0;
  uint32_t localExperts = 0;
};

/// Module.expert_shard: this module is rank `rank` of `size` parts of the
/// model that `modelId` names.
struct ExpertShardDesc {
  uint32_t rank = 0;
  uint32_t size = 0;
  Digest128 modelId;
};

struct CudaCubinDesc {
  uint32_t sm = 0;
  uint32_t segment = 0;
};

/// This build's vmoe version ("0.6.0") and git revision (BuildVersion.cpp).
const char *buildVersion();
const char *buildRevision();
/// Fills `bytes` with a streamed segment's contents (exactly the size it
/// was added with); false with *error set on failure.
using SegmentProducer =
    std::function<bool(std::vector<uint8_t> &bytes, std::string *error)>;

/// After each segment is written: bytes and segments written so far, of
/// how many.
using WriteProgress =
    std::function<void(uint64_t bytesDone, uint64_t bytesTotal,
                       size_t segmentsDone, size_t segmentsTotal)>;

struct MetadataDesc {
  std::string name;
  std::string configJson;
  std::vector<std::string> classNames;
  std::string producer;
  /// The compiler recorded in the module (ModelMetadata.compiler). Both
  /// empty: none, as in modules written before vmoe 0.6.0.
  std::string compilerVersion = buildVersion();
  std::string compilerRevision = buildRevision();
};

/// Where the writer put things; filled by write*().
struct ModuleLayout {
  uint64_t flatbufferOffset = 0;
  uint64_t flatbufferSize = 0;
  uint64_t segmentBase = 0;
  uint64_t segmentSize = 0;
  uint64_t fileSize = 0;
  /// Offset of each segment relative to segmentBase.
  std::vector<uint64_t> segmentOffsets;
  /// XXH3-128 of each segment, and the header's metadata digest.
  std::vector<Digest128> segmentDigests;
  Digest128 metadataDigest;
};

class ModuleWriter {
public:
  ModuleWriter();
  ~ModuleWriter();
  ModuleWriter(const ModuleWriter &) = delete;
  ModuleWriter &operator=(const ModuleWriter &) = delete;

  // ---- segments: raw bytes after the FlatBuffer ----
  /// Adds a segment holding a copy of `bytes`. `alignment`: a power of two
  /// <= VMOE_MAX_SEGMENT_ALIGNMENT.
  uint32_t addSegment(std::vector<uint8_t> bytes, uint64_t alignment = 64);
  /// Adds a segment that refers to caller memory (large weights, e.g. from a
  /// mapped checkpoint): `data` must stay valid until the last write*().
  uint32_t addSegmentView(const void *data, uint64_t size,
                          uint64_t alignment = 64);
  /// Adds a segment of `size` bytes that `producer` makes when the file is
  /// written (weights streamed from a checkpoint). `producer` and what it
  /// refers to must stay valid until the last write*().
  uint32_t addSegmentStream(uint64_t size, uint64_t alignment,
                            SegmentProducer producer);

  // ---- contents ----
  uint32_t
  addConstant(std::string name, uint32_t segment,
              fb::ConstantPlacement placement = fb::ConstantPlacement::InPlace,
              uint64_t arenaOffset = 0);
  uint32_t addCpuExecutable(std::string name, std::string targetTriple,
                            std::string cpuFeatures, uint32_t segment);
  /// `ptxSegment` -1: no PTX.
  uint32_t addCudaExecutable(std::string name, int64_t ptxSegment,
                             uint32_t ptxSm, std::vector<CudaCubinDesc> cubins);
  uint32_t addKernel(KernelDesc kernel);
  uint32_t addDispatch(DispatchDesc dispatch);
  uint32_t addInput(TensorDesc tensor);
  uint32_t addOutput(TensorDesc tensor);
  uint32_t addMoeLayer(MoeLayerDesc layer);
  void setBatch(int64_t maxBatch, int64_t batchMultiple = 1);
  void setArena(uint64_t size, uint64_t alignment = 64);
  void setMetadata(MetadataDesc metadata);
  /// Defaults to this build's VMOE_FORMAT_VERSION_*; tests set others.
  void setFormatVersion(uint32_t major, uint32_t minor);
  void setRequirements(uint64_t requirements);
  /// Marks the module as one rank's part of an expert-sharded model.
  void setExpertShard(ExpertShardDesc shard);
  /// Signs the module with `signer` (null: unsigned, the default). The
  /// signer must stay valid until the last write*().
  void setSigner(const ModuleSigner *signer);
  /// Reports the progress of write*() (null: none).
  void setProgress(WriteProgress progress);

  // ---- output ----
  /// Writes the module to `path` (streaming the segments). On failure
  /// returns false and sets *error.
  bool writeFile(const std::string &path, std::string *error,
                 ModuleLayout *layout = nullptr) const;
  /// Builds the whole module in memory.
  bool writeToBuffer(std::vector<uint8_t> &out, std::string *error,
                     ModuleLayout *layout = nullptr) const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl;
};

} // namespace writer
} // namespace vmoe

#endif // VMOE_WRITER_MODULEWRITER_H
