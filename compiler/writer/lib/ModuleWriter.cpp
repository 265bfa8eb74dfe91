//===- ModuleWriter.cpp - Build a vmoe module file ------------------------===//

#include "vmoe/writer/ModuleWriter.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vmoe {
namespace writer {

namespace {

bool isPowerOfTwo(uint64_t v) { return v && !(v & (v - 1)); }

uint64_t alignUp(uint64_t v, uint64_t alignment) {
  return (v + alignment - 1) & ~(alignment - 1);
}

struct SegmentEntry {
  std::vector<uint8_t> owned;
  const uint8_t *view = nullptr;
  SegmentProducer producer; // a streamed segment
  uint64_t size = 0;
  uint64_t alignment = 64;
  const uint8_t *data() const { return view ? view : owned.data(); }
};

struct ConstantEntry {
  std::string name;
  uint32_t segment;
  fb::ConstantPlacement placement;
  uint64_t arenaOffset;
};

struct ExecutableEntry {
  fb::ExecutableFormat format;
  std::string name;
  std::string triple;
  std::string features;
  uint32_t segment = 0;
  int64_t ptxSegment = -1;
  uint32_t ptxSm = 0;
  std::vector<CudaCubinDesc> cubins;
};

} // namespace

struct ModuleWriter::Impl {
  std::vector<SegmentEntry> segments;
  std::vector<ConstantEntry> constants;
  std::vector<ExecutableEntry> executables;
  std::vector<KernelDesc> kernels;
  std::vector<DispatchDesc> dispatches;
  std::vector<TensorDesc> inputs;
  std::vector<TensorDesc> outputs;
  std::vector<MoeLayerDesc> layers;
  MetadataDesc metadata;
  int64_t maxBatch = 1;
  int64_t batchMultiple = 1;
  uint64_t arenaSize = 0;
  uint64_t arenaAlignment = 64;
  uint32_t major = VMOE_FORMAT_VERSION_MAJOR;
  uint32_t minor = VMOE_FORMAT_VERSION_MINOR;
  uint64_t requirements = 0;
  bool hasShard = false;
  ExpertShardDesc shard;
  const ModuleSigner *signer = nullptr;
  WriteProgress progress;

  /// `digests`: those of every segment, when known (streamed segments'
  /// are taken as they are written; until then they read as zero).
  bool layout(ModuleLayout &out, flatbuffers::FlatBufferBuilder &fbb,
              std::string *error,
              const std::vector<Digest128> *digests = nullptr) const;
  bool hasStreamed() const {
    for (const SegmentEntry &s : segments)
      if (s.producer)
        return true;
    return false;
  }
  /// Lays the file out again with the digests of `layout` (streamed
  /// segments' now known); the FlatBuffer keeps its size.
  bool relayout(ModuleLayout &layout, flatbuffers::FlatBufferBuilder &fbb,
                std::string *error) const {
    std::vector<Digest128> digests = layout.segmentDigests;
    ModuleLayout final;
    if (!this->layout(final, fbb, error, &digests))
      return false;
    if (final.segmentBase != layout.segmentBase ||
        final.flatbufferSize != layout.flatbufferSize) {
      *error = "the module metadata changed size with its digests";
      return false;
    }
    layout = std::move(final);
    return true;
  }
  /// Makes streamed segment `i` into `bytes`, checking its size.
  bool produce(size_t i, std::vector<uint8_t> &bytes, std::string *error) const;
  void buildFlatBuffer(const ModuleLayout &layout,
                       flatbuffers::FlatBufferBuilder &fbb) const;
};

ModuleWriter::ModuleWriter() : impl(new Impl()) {}
ModuleWriter::~ModuleWriter() = default;

uint32_t ModuleWriter::addSegment(std::vector<uint8_t> bytes,
                                  uint64_t alignment) {
  SegmentEntry entry;
  entry.size = bytes.size();
  entry.owned = std::move(bytes);
  entry.alignment = alignment;
  impl->segments.push_back(std::move(entry));
  return static_cast<uint32_t>(impl->segments.size() - 1);
}

uint32_t ModuleWriter::addSegmentView(const void *data, uint64_t size,
                                      uint64_t alignment) {
  SegmentEntry entry;
  entry.view = static_cast<const uint8_t *>(data);
  entry.size = size;
  entry.alignment = alignment;
  impl->segments.push_back(std::move(entry));
  return static_cast<uint32_t>(impl->segments.size() - 1);
}

uint32_t ModuleWriter::addSegmentStream(uint64_t size, uint64_t alignment,
                                        SegmentProducer producer) {
  SegmentEntry entry;
  entry.size = size;
  entry.alignment = alignment;
  entry.producer = std::move(producer);
  impl->segments.push_back(std::move(entry));
  return static_cast<uint32_t>(impl->segments.size() - 1);
}

bool ModuleWriter::Impl::produce(size_t i, std::vector<uint8_t> &bytes,
                                 std::string *error) const {
  bytes.clear();
  if (!segments[i].producer(bytes, error))
    return false;
  if (bytes.size() != segments[i].size) {
    *error = "segment " + std::to_string(i) + ": made " +
             std::to_string(bytes.size()) + " bytes, declared " +
             std::to_string(segments[i].size);
    return false;
  }
  return true;
}

uint32_t ModuleWriter::addConstant(std::string name, uint32_t segment,
                                   fb::ConstantPlacement placement,
                                   uint64_t arenaOffset) {
  impl->constants.push_back({std::move(name), segment, placement, arenaOffset});
  return static_cast<uint32_t>(impl->constants.size() - 1);
}

uint32_t ModuleWriter::addCpuExecutable(std::string name,
                                        std::string targetTriple,
                                        std::string cpuFeatures,
                                        uint32_t segment) {
  ExecutableEntry entry;
  entry.format = fb::ExecutableFormat::CpuSharedObject;
  entry.name = std::move(name);
  entry.triple = std::move(targetTriple);
  entry.features = std::move(cpuFeatures);
  entry.segment = segment;
  impl->executables.push_back(std::move(entry));
  return static_cast<uint32_t>(impl->executables.size() - 1);
}

uint32_t ModuleWriter::addCudaExecutable(std::string name, int64_t ptxSegment,
                                         uint32_t ptxSm,
                                         std::vector<CudaCubinDesc> cubins) {
  ExecutableEntry entry;
  entry.format = fb::ExecutableFormat::Cuda;
  entry.name = std::move(name);
  entry.ptxSegment = ptxSegment;
  entry.ptxSm = ptxSm;
  entry.cubins = std::move(cubins);
  impl->executables.push_back(std::move(entry));
  return static_cast<uint32_t>(impl->executables.size() - 1);
}

uint32_t ModuleWriter::addKernel(KernelDesc kernel) {
  impl->kernels.push_back(std::move(kernel));
  return static_cast<uint32_t>(impl->kernels.size() - 1);
}

uint32_t ModuleWriter::addDispatch(DispatchDesc dispatch) {
  impl->dispatches.push_back(std::move(dispatch));
  return static_cast<uint32_t>(impl->dispatches.size() - 1);
}

uint32_t ModuleWriter::addInput(TensorDesc tensor) {
  impl->inputs.push_back(std::move(tensor));
  return static_cast<uint32_t>(impl->inputs.size() - 1);
}

uint32_t ModuleWriter::addOutput(TensorDesc tensor) {
  impl->outputs.push_back(std::move(tensor));
  return static_cast<uint32_t>(impl->outputs.size() - 1);
}

uint32_t ModuleWriter::addMoeLayer(MoeLayerDesc layer) {
  impl->layers.push_back(std::move(layer));
  return static_cast<uint32_t>(impl->layers.size() - 1);
}

void ModuleWriter::setBatch(int64_t maxBatch, int64_t batchMultiple) {
  impl->maxBatch = maxBatch;
  impl->batchMultiple = batchMultiple;
}

void ModuleWriter::setArena(uint64_t size, uint64_t alignment) {
  impl->arenaSize = size;
  impl->arenaAlignment = alignment;
}

void ModuleWriter::setMetadata(MetadataDesc metadata) {
  impl->metadata = std::move(metadata);
}

void ModuleWriter::setFormatVersion(uint32_t major, uint32_t minor) {
  impl->major = major;
  impl->minor = minor;
}

void ModuleWriter::setRequirements(uint64_t requirements) {
  impl->requirements = requirements;
}

void ModuleWriter::setExpertShard(ExpertShardDesc shard) {
  impl->hasShard = true;
  impl->shard = shard;
}

void ModuleWriter::setSigner(const ModuleSigner *signer) {
  impl->signer = signer;
}

void ModuleWriter::setProgress(WriteProgress progress) {
  impl->progress = std::move(progress);
}

void ModuleWriter::Impl::buildFlatBuffer(
    const ModuleLayout &layout, flatbuffers::FlatBufferBuilder &fbb) const {
  using flatbuffers::Offset;
  auto tensors = [&](const std::vector<TensorDesc> &list) {
    std::vector<Offset<fb::TensorSpec>> out;
    for (const TensorDesc &t : list)
      out.push_back(fb::CreateTensorSpec(fbb, fbb.CreateString(t.name), t.dtype,
                                         fbb.CreateVector(t.shape),
                                         t.batchDim));
    return fbb.CreateVector(out);
  };
  auto inputsOffset = tensors(inputs);
  auto outputsOffset = tensors(outputs);
  auto signature = fb::CreateSignature(fbb, inputsOffset, outputsOffset,
                                       maxBatch, batchMultiple);

  std::vector<fb::Segment> segmentStructs;
  for (size_t i = 0; i < segments.size(); ++i)
    segmentStructs.emplace_back(layout.segmentOffsets[i], segments[i].size,
                                segments[i].alignment);
  auto segmentsOffset = fbb.CreateVectorOfStructs(segmentStructs);

  std::vector<Offset<fb::Constant>> constantOffsets;
  for (const ConstantEntry &c : constants)
    constantOffsets.push_back(fb::CreateConstant(
        fbb, fbb.CreateString(c.name), c.segment, c.placement, c.arenaOffset));
  auto constantsOffset = fbb.CreateVector(constantOffsets);

  std::vector<Offset<fb::Executable>> executableOffsets;
  for (const ExecutableEntry &x : executables) {
    Offset<fb::CpuExecutable> cpu;
    Offset<fb::CudaExecutable> cuda;
    if (x.format == fb::ExecutableFormat::CpuSharedObject) {
      cpu = fb::CreateCpuExecutable(fbb, fbb.CreateString(x.triple),
                                    fbb.CreateString(x.features), x.segment);
    } else {
      std::vector<Offset<fb::CudaCubin>> cubins;
      for (const CudaCubinDesc &c : x.cubins)
        cubins.push_back(fb::CreateCudaCubin(fbb, c.sm, c.segment));
      cuda = fb::CreateCudaExecutable(fbb, x.ptxSegment, x.ptxSm,
                                      fbb.CreateVector(cubins));
    }
    executableOffsets.push_back(fb::CreateExecutable(
        fbb, x.format, fbb.CreateString(x.name), cpu, cuda));
  }
  auto executablesOffset = fbb.CreateVector(executableOffsets);

  std::vector<Offset<fb::Kernel>> kernelOffsets;
  for (const KernelDesc &k : kernels) {
    fb::Dim3 count(k.workgroupCount[0], k.workgroupCount[1],
                   k.workgroupCount[2]);
    fb::Dim3 size(k.workgroupSize[0], k.workgroupSize[1], k.workgroupSize[2]);
    Offset<flatbuffers::Vector<uint8_t>> written;
    if (!k.writtenBindings.empty()) {
      std::vector<uint8_t> flags(k.writtenBindings.begin(),
                                 k.writtenBindings.end());
      written = fbb.CreateVector(flags);
    }
    kernelOffsets.push_back(fb::CreateKernel(
        fbb, fbb.CreateString(k.name), k.executable, fbb.CreateString(k.entry),
        &count, &size, k.bindingCount, k.constantCount, k.scratchSize,
        k.sharedMemorySize, k.abiVersion, written));
  }
  auto kernelsOffset = fbb.CreateVector(kernelOffsets);

  std::vector<Offset<fb::Dispatch>> dispatchOffsets;
  for (const DispatchDesc &d : dispatches) {
    std::vector<Offset<fb::Binding>> bindings;
    for (const BindingDesc &b : d.bindings)
      bindings.push_back(
          fb::CreateBinding(fbb, b.kind, b.index, b.offset, b.length));
    std::vector<Offset<fb::PushConstant>> constants;
    for (const PushConstantDesc &p : d.pushConstants)
      constants.push_back(
          fb::CreatePushConstant(fbb, p.source, p.layer, p.value));
    fb::BatchGrid batchGrid(d.batchUnitsPerImage, d.batchUnitsPerWorkgroup);
    Offset<fb::Collective> collective;
    if (d.collective)
      collective = fb::CreateCollective(
          fbb, d.collectiveKind, d.collectiveLayer, d.sendOffset, d.recvOffset,
          d.groupBytes, d.slotBytes);
    dispatchOffsets.push_back(fb::CreateDispatch(
        fbb, d.kernel, fbb.CreateVector(bindings), fbb.CreateVector(constants),
        d.batchUnitsPerWorkgroup ? &batchGrid : nullptr, collective));
  }
  auto dispatchesOffset = fbb.CreateVector(dispatchOffsets);

  auto arena = fb::CreateArenaPlan(fbb, arenaSize, arenaAlignment);

  std::vector<Offset<flatbuffers::String>> classNames;
  for (const std::string &name : metadata.classNames)
    classNames.push_back(fbb.CreateString(name));
  Offset<fb::CompilerInfo> compiler;
  if (!metadata.compilerVersion.empty() || !metadata.compilerRevision.empty())
    compiler = fb::CreateCompilerInfo(
        fbb, fbb.CreateString(metadata.compilerVersion),
        fbb.CreateString(metadata.compilerRevision));
  auto metadataOffset = fb::CreateModelMetadata(
      fbb, fbb.CreateString(metadata.name),
      fbb.CreateString(metadata.configJson), fbb.CreateVector(classNames),
      fbb.CreateString(metadata.producer), compiler);

  std::vector<Offset<fb::MoeLayer>> layerOffsets;
  for (const MoeLayerDesc &l : layers) {
    Offset<fb::RoutingStats> stats;
    if (l.hasStats)
      stats =
          fb::CreateRoutingStats(fbb, l.expertCountsOffset, l.tokenKeptOffset);
    layerOffsets.push_back(fb::CreateMoeLayer(
        fbb, fbb.CreateString(l.name), l.numExperts, l.k, l.groupSize,
        l.numGroups, l.numTokens, l.tokensPerImage, l.defaultCapacityFactor,
        l.maxCapacityFactor, l.maxCapacity, l.defaultBpr, stats,
        l.capacityMultipleOf, l.capacityRound,
        l.expertChoice ? fb::RoutingKind::ExpertChoice : fb::RoutingKind::TopK,
        l.firstExpert, l.localExperts));
  }
  auto layersOffset = fbb.CreateVector(layerOffsets);

  std::vector<fb::Digest128> digests;
  for (const Digest128 &d : layout.segmentDigests)
    digests.emplace_back(d.low, d.high);
  auto digestsOffset = fbb.CreateVectorOfStructs(digests);

  Offset<fb::ExpertShard> shardOffset;
  if (hasShard) {
    fb::Digest128 modelId(shard.modelId.low, shard.modelId.high);
    shardOffset = fb::CreateExpertShard(fbb, shard.rank, shard.size, &modelId);
  }

  fb::Version version(major, minor);
  auto root = fb::CreateModule(
      fbb, &version, requirements, metadataOffset, signature, segmentsOffset,
      constantsOffset, executablesOffset, kernelsOffset, dispatchesOffset,
      arena, layersOffset, digestsOffset, shardOffset);
  fbb.Finish(root, fb::ModuleIdentifier());
}

bool ModuleWriter::Impl::layout(ModuleLayout &out,
                                flatbuffers::FlatBufferBuilder &fbb,
                                std::string *error,
                                const std::vector<Digest128> *digests) const {
  out.segmentOffsets.clear();
  out.segmentDigests.clear();
  uint64_t cursor = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    const SegmentEntry &s = segments[i];
    if (!isPowerOfTwo(s.alignment) ||
        s.alignment > VMOE_MAX_SEGMENT_ALIGNMENT) {
      *error = "segment " + std::to_string(i) + ": alignment " +
               std::to_string(s.alignment) + " is not a power of two <= " +
               std::to_string(VMOE_MAX_SEGMENT_ALIGNMENT);
      return false;
    }
    cursor = alignUp(cursor, s.alignment);
    out.segmentOffsets.push_back(cursor);
    if (cursor + s.size < cursor) {
      *error = "segment sizes overflow 64 bits";
      return false;
    }
    cursor += s.size;
    // Read here, written later: the digests go into the FlatBuffer, which
    // precedes the segments in the file.
    if (digests)
      out.segmentDigests.push_back((*digests)[i]);
    else if (s.producer)
      out.segmentDigests.push_back(Digest128());
    else
      out.segmentDigests.push_back(digestBytes(s.data(), s.size));
  }
  out.segmentSize = cursor;
  fbb.Clear();
  fbb.ForceDefaults(true); // keep every scalar patchable in place
  buildFlatBuffer(out, fbb);
  out.flatbufferOffset =
      alignUp(VMOE_MODULE_HEADER_SIZE, VMOE_FLATBUFFER_ALIGNMENT);
  out.flatbufferSize = fbb.GetSize();
  out.segmentBase = alignUp(out.flatbufferOffset + out.flatbufferSize,
                            VMOE_SEGMENT_BASE_ALIGNMENT);
  out.fileSize = out.segmentBase + out.segmentSize;
  return true;
}

namespace {

/// The bytes [0, segmentBase) of the file: the header (with the signer's
/// scheme and key id, and the metadata digest), the FlatBuffer, and the zero
/// padding around it. Sets layout.metadataDigest.
std::vector<uint8_t> buildPrefix(ModuleLayout &layout,
                                 const flatbuffers::FlatBufferBuilder &fbb,
                                 uint32_t major, uint32_t minor,
                                 const ModuleSigner *signer) {
  vmoe_module_header_t header;
  memset(&header, 0, sizeof(header));
  memcpy(header.magic, VMOE_MODULE_MAGIC, VMOE_MODULE_MAGIC_SIZE);
  header.header_size = VMOE_MODULE_HEADER_SIZE;
  header.format_major = static_cast<uint16_t>(major);
  header.format_minor = static_cast<uint16_t>(minor);
  header.flatbuffer_offset = layout.flatbufferOffset;
  header.flatbuffer_size = layout.flatbufferSize;
  header.segment_base = layout.segmentBase;
  header.segment_size = layout.segmentSize;
  header.file_size = layout.fileSize;
  header.flags = 0;
  if (signer) {
    header.signature_scheme = signer->scheme();
    signer->keyId(header.signature_key_id);
  }
  std::vector<uint8_t> prefix(layout.segmentBase, 0);
  memcpy(prefix.data(), &header, sizeof(header));
  memcpy(prefix.data() + layout.flatbufferOffset, fbb.GetBufferPointer(),
         layout.flatbufferSize);
  layout.metadataDigest = metadataDigest(prefix.data(), layout.segmentBase);
  header.metadata_digest[0] = layout.metadataDigest.low;
  header.metadata_digest[1] = layout.metadataDigest.high;
  memcpy(prefix.data(), &header, sizeof(header));
  return prefix;
}

} // namespace

bool ModuleWriter::writeToBuffer(std::vector<uint8_t> &out, std::string *error,
                                 ModuleLayout *layoutOut) const {
  flatbuffers::FlatBufferBuilder fbb;
  ModuleLayout layout;
  if (!impl->layout(layout, fbb, error))
    return false;
  out.assign(layout.fileSize, 0);
  std::vector<uint8_t> produced;
  uint64_t done = 0;
  for (size_t i = 0; i < impl->segments.size(); ++i) {
    const SegmentEntry &s = impl->segments[i];
    uint8_t *place = out.data() + layout.segmentBase + layout.segmentOffsets[i];
    if (s.producer) {
      if (!impl->produce(i, produced, error))
        return false;
      layout.segmentDigests[i] = digestBytes(produced.data(), s.size);
      if (s.size)
        memcpy(place, produced.data(), s.size);
      produced = {};
    } else if (s.size) {
      memcpy(place, s.data(), s.size);
    }
    done += s.size;
    if (impl->progress)
      impl->progress(done, layout.segmentSize, i + 1, impl->segments.size());
  }
  if (impl->hasStreamed() && !impl->relayout(layout, fbb, error))
    return false;
  std::vector<uint8_t> prefix =
      buildPrefix(layout, fbb, impl->major, impl->minor, nullptr);
  memcpy(out.data(), prefix.data(), prefix.size());
  if (impl->signer) {
    if (!signModule(out.data(), out.size(), *impl->signer, error))
      return false;
    memcpy(&layout.metadataDigest.low,
           out.data() + VMOE_HEADER_METADATA_DIGEST_OFFSET, 8);
    memcpy(&layout.metadataDigest.high,
           out.data() + VMOE_HEADER_METADATA_DIGEST_OFFSET + 8, 8);
  }
  if (layoutOut)
    *layoutOut = std::move(layout);
  return true;
}

/// The signature hash of a written module: `prefix` (its first bytes, the
/// signature field zero), then the rest as read back from `file`.
static bool hashFile(FILE *file, const std::vector<uint8_t> &prefix,
                     uint64_t fileSize, const ModuleSigner &signer,
                     std::unique_ptr<SignatureHash> &hash) {
  hash = signer.begin();
  hash->update(prefix.data(), prefix.size());
  if (fflush(file) != 0 || fseek(file, long(prefix.size()), SEEK_SET) != 0)
    return false;
  std::vector<uint8_t> chunk(1 << 20);
  for (uint64_t at = prefix.size(); at < fileSize;) {
    size_t n = size_t(std::min<uint64_t>(chunk.size(), fileSize - at));
    if (fread(chunk.data(), 1, n, file) != n)
      return false;
    hash->update(chunk.data(), n);
    at += n;
  }
  return true;
}

/// Creates a new file next to `path` for writing, named `path.tmp-PID-N`,
/// with mode 0666 less the umask like any file the user creates (mkstemp's
/// 0600 would need the umask, which can only be read by changing it for the
/// whole process). -1 with errno set on failure.
static int createTemporary(const std::string &path, std::string &tmpPath) {
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    tmpPath = path + ".tmp-" + std::to_string(getpid()) + "-" +
              std::to_string(counter++);
    int fd = open(tmpPath.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST)
      return fd;
  }
  return -1;
}

bool ModuleWriter::writeFile(const std::string &path, std::string *error,
                             ModuleLayout *layoutOut) const {
  flatbuffers::FlatBufferBuilder fbb;
  ModuleLayout layout;
  if (!impl->layout(layout, fbb, error))
    return false;
  // Written to a temporary file next to `path`, then renamed over it: a
  // failed write (full disk, I/O error) never leaves a half-written file in
  // place of a good one, and the temporary is removed.
  std::string tmpPath;
  int fd = createTemporary(path, tmpPath);
  if (fd < 0) {
    *error = "cannot open '" + path + "' for writing: " + strerror(errno);
    return false;
  }
  FILE *file = fdopen(fd, "w+b");
  if (!file) {
    *error = "cannot open '" + tmpPath + "' for writing: " + strerror(errno);
    close(fd);
    unlink(tmpPath.c_str());
    return false;
  }
  // Streams everything in file order, zero-filling the alignment gaps, so
  // that multi-GB segments are never copied in memory.
  uint64_t position = 0;
  bool ok = true;
  // The signature's hash sees every byte as it is written (the signature
  // field still zero), which is then stored over that field. With streamed
  // segments the metadata is written last, and the hash reads the file
  // back (from the page cache) instead.
  bool streamed = impl->hasStreamed();
  std::unique_ptr<SignatureHash> hash;
  if (impl->signer && !streamed)
    hash = impl->signer->begin();
  auto padTo = [&](uint64_t target) {
    static const uint8_t zeros[4096] = {};
    while (ok && position < target) {
      uint64_t n =
          target - position < sizeof(zeros) ? target - position : sizeof(zeros);
      ok = fwrite(zeros, 1, n, file) == n;
      if (hash)
        hash->update(zeros, n);
      position += n;
    }
  };
  auto put = [&](const void *data, uint64_t size) {
    if (ok && size)
      ok = fwrite(data, 1, size, file) == size;
    if (hash && size)
      hash->update(data, size);
    position += size;
  };
  std::vector<uint8_t> prefix =
      streamed
          ? std::vector<uint8_t>(layout.segmentBase, 0)
          : buildPrefix(layout, fbb, impl->major, impl->minor, impl->signer);
  put(prefix.data(), prefix.size());
  std::vector<uint8_t> produced;
  bool producedOk = true;
  for (size_t i = 0; ok && producedOk && i < impl->segments.size(); ++i) {
    const SegmentEntry &s = impl->segments[i];
    padTo(layout.segmentBase + layout.segmentOffsets[i]);
    if (s.producer) {
      producedOk = impl->produce(i, produced, error);
      if (!producedOk)
        break;
      layout.segmentDigests[i] = digestBytes(produced.data(), s.size);
      put(produced.data(), s.size);
      produced = {}; // one segment in memory at a time
    } else {
      put(s.data(), s.size);
    }
    if (impl->progress)
      impl->progress(position - layout.segmentBase, layout.segmentSize, i + 1,
                     impl->segments.size());
  }
  padTo(layout.fileSize);
  if (ok && producedOk && streamed) {
    producedOk = impl->relayout(layout, fbb, error);
    if (producedOk) {
      prefix = buildPrefix(layout, fbb, impl->major, impl->minor, impl->signer);
      ok = fseek(file, 0, SEEK_SET) == 0 &&
           fwrite(prefix.data(), 1, prefix.size(), file) == prefix.size();
    }
    if (ok && producedOk && impl->signer)
      ok = hashFile(file, prefix, layout.fileSize, *impl->signer, hash);
  }
  if (!producedOk) {
    fclose(file);
    unlink(tmpPath.c_str());
    return false;
  }
  if (ok && hash) {
    uint8_t signature[VMOE_SIGNATURE_SIZE];
    ok = hash->sign(signature);
    if (!ok)
      errno = EINVAL;
    else
      ok = fseek(file, VMOE_HEADER_SIGNATURE_OFFSET, SEEK_SET) == 0 &&
           fwrite(signature, 1, sizeof(signature), file) == sizeof(signature);
  }
  if (ok && fflush(file) != 0)
    ok = false;
  int savedErrno = errno;
  if (fclose(file) != 0 && ok) {
    ok = false;
    savedErrno = errno;
  }
  if (!ok) {
    *error = "writing '" + path + "' failed: " + strerror(savedErrno);
    unlink(tmpPath.c_str());
    return false;
  }
  if (rename(tmpPath.c_str(), path.c_str()) != 0) {
    *error =
        "cannot rename '" + tmpPath + "' to '" + path + "': " + strerror(errno);
    unlink(tmpPath.c_str());
    return false;
  }
  if (layoutOut)
    *layoutOut = std::move(layout);
  return true;
}

} // namespace writer
} // namespace vmoe
