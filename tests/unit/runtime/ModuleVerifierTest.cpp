//===- ModuleVerifierTest.cpp - Every verifier rejection, crafted ---------===//
//
// Each test takes a valid module, breaks one thing (through the writer or by
// patching the file in place), and expects a specific status and message:
// never a crash. Patched modules are resealed (their metadata digest
// recomputed) so that each reaches the check it is about; IntegrityTest.cpp
// tests the digests themselves.
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#include <fcntl.h>
#include <random>
#include <unistd.h>

namespace vmoe {
namespace test {
namespace {

vmoe_module_header_t headerOf(const std::vector<uint8_t> &bytes) {
  vmoe_module_header_t h;
  memcpy(&h, bytes.data(), sizeof(h));
  return h;
}

void setHeader(std::vector<uint8_t> &bytes, const vmoe_module_header_t &h) {
  memcpy(bytes.data(), &h, sizeof(h));
}

/// The FlatBuffer root, patchable in place (the writer stores every field).
fb::Module *rootOf(std::vector<uint8_t> &bytes) {
  return fb::GetMutableModule(bytes.data() + headerOf(bytes).flatbuffer_offset);
}

std::vector<uint8_t> addModuleBytes(bool arenaConstant = false) {
  ModuleWriter w;
  buildAddModule(w, arenaConstant);
  return serialize(w);
}

void expectRejected(const std::vector<uint8_t> &bytes, vmoe_status_t status,
                    const std::string &text) {
  Loaded loaded = loadBytes(resealed(bytes));
  EXPECT_EQ(loaded.status, status) << loaded.message;
  EXPECT_NE(loaded.message.find(text), std::string::npos)
      << "message: " << loaded.message << "\nexpected: " << text;
  EXPECT_EQ(loaded.module, nullptr);
}

TEST(ModuleVerifier, TheBaseModuleIsValid) {
  Loaded loaded = loadBytes(addModuleBytes());
  EXPECT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
}

TEST(ModuleVerifier, Truncated) {
  std::vector<uint8_t> bytes = addModuleBytes();
  vmoe_module_t *module = nullptr;
  vmoe_message_t message;
  EXPECT_EQ(vmoe_module_load_memory(bytes.data(), 0, VMOE_MEMORY_COPY, &module,
                                    &message),
            VMOE_STATUS_INVALID_MODULE);
  EXPECT_NE(std::string(message.text).find("module is truncated: 0 bytes"),
            std::string::npos);
  expectRejected(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 40),
                 VMOE_STATUS_INVALID_MODULE,
                 "module is truncated: 40 bytes, smaller than the 160-byte "
                 "header");
  std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 1);
  expectRejected(cut, VMOE_STATUS_INVALID_MODULE,
                 "module is truncated: the header says " +
                     std::to_string(bytes.size()) + " bytes, got " +
                     std::to_string(bytes.size() - 1));
  // Truncated, with a header patched to match: the FlatBuffer no longer fits.
  std::vector<uint8_t> header(bytes.begin(), bytes.begin() + 200);
  vmoe_module_header_t h = headerOf(header);
  h.file_size = 200;
  setHeader(header, h);
  expectRejected(header, VMOE_STATUS_INVALID_MODULE,
                 "is outside the file body [160, 200)");
}

TEST(ModuleVerifier, WrongMagicAndIdentifier) {
  std::vector<uint8_t> bytes = addModuleBytes();
  std::vector<uint8_t> magic = bytes;
  magic[0] = 'X';
  expectRejected(magic, VMOE_STATUS_INVALID_MODULE,
                 "not a vmoe module: wrong magic bytes");
  std::vector<uint8_t> id = bytes;
  memcpy(id.data() + headerOf(id).flatbuffer_offset + 4, "TFL3", 4);
  expectRejected(id, VMOE_STATUS_INVALID_MODULE,
                 "wrong FlatBuffer file identifier 'TFL3', expected 'VMOE'");
  id[headerOf(id).flatbuffer_offset + 5] = 0x01;
  expectRejected(id, VMOE_STATUS_INVALID_MODULE,
                 "wrong FlatBuffer file identifier 'T\\x01L3'");
}

TEST(ModuleVerifier, Versions) {
  ModuleWriter newer;
  buildAddModule(newer);
  newer.setFormatVersion(VMOE_FORMAT_VERSION_MAJOR + 1, 3);
  expectRejected(serialize(newer), VMOE_STATUS_UNSUPPORTED_VERSION,
                 "module format version " +
                     std::to_string(VMOE_FORMAT_VERSION_MAJOR + 1) +
                     ".3 is newer than this runtime's " +
                     std::to_string(VMOE_FORMAT_VERSION_MAJOR) + "." +
                     std::to_string(VMOE_FORMAT_VERSION_MINOR));
  ModuleWriter older;
  buildAddModule(older);
  older.setFormatVersion(VMOE_FORMAT_VERSION_MAJOR - 1, 9);
  expectRejected(serialize(older), VMOE_STATUS_UNSUPPORTED_VERSION,
                 ".9 is older than this runtime's");
  // Format 1.0 had no integrity digests.
  ModuleWriter undigested;
  buildAddModule(undigested);
  undigested.setFormatVersion(1, 0);
  expectRejected(serialize(undigested), VMOE_STATUS_UNSUPPORTED_VERSION,
                 "module format version 1.0 is older than this runtime's "
                 "1.1 and has no integrity digests: recompile the module");
  // A newer minor only adds what an older runtime may ignore.
  ModuleWriter minor;
  buildAddModule(minor);
  minor.setFormatVersion(VMOE_FORMAT_VERSION_MAJOR,
                         VMOE_FORMAT_VERSION_MINOR + 7);
  Loaded loaded = loadBytes(serialize(minor));
  EXPECT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  // ...but a requirement bit it does not know stops it.
  ModuleWriter required;
  buildAddModule(required);
  required.setRequirements(1u << 5);
  expectRejected(serialize(required), VMOE_STATUS_UNSUPPORTED_VERSION,
                 "requires runtime features 0x20");
  // Header and metadata must agree.
  std::vector<uint8_t> bytes = addModuleBytes();
  vmoe_module_header_t h = headerOf(bytes);
  h.format_minor += 1;
  setHeader(bytes, h);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "disagrees with 1." + std::to_string(h.format_minor) +
                     " in the file header");
  bytes = addModuleBytes();
  h = headerOf(bytes);
  h.flags = 4;
  setHeader(bytes, h);
  expectRejected(bytes, VMOE_STATUS_UNSUPPORTED_VERSION, "unknown flags 0x4");
}

TEST(ModuleVerifier, HeaderRanges) {
  std::vector<uint8_t> base = addModuleBytes();
  vmoe_module_header_t good = headerOf(base);

  std::vector<uint8_t> bytes = base;
  vmoe_module_header_t h = good;
  h.flatbuffer_size = h.file_size;
  setHeader(bytes, h);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE, "FlatBuffer range [160, ");

  h = good;
  h.flatbuffer_offset = UINT64_MAX - 8;
  setHeader(bytes, h);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "FlatBuffer offset 18446744073709551607 + size");

  h = good;
  h.header_size = 32;
  setHeader(bytes, h);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "header size 32 is smaller than 160");

  h = good;
  h.segment_size += 1;
  setHeader(bytes, h);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE, "segment area [");

  h = good;
  h.segment_base = UINT64_MAX;
  setHeader(bytes, h);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE, "overflows");

  // A segment base off its page alignment.
  h = good;
  h.segment_base += 8;
  h.segment_size -= 8;
  setHeader(bytes, h);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "is not a multiple of 4096");
}

TEST(ModuleVerifier, CorruptFlatBuffer) {
  std::vector<uint8_t> bytes = addModuleBytes();
  uint32_t bad = 0xfffffff0u;
  memcpy(bytes.data() + headerOf(bytes).flatbuffer_offset, &bad, 4);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "failed structural verification");
}

TEST(ModuleVerifier, Segments) {
  std::vector<uint8_t> base = addModuleBytes();
  uint64_t segmentSize = headerOf(base).segment_size;

  std::vector<uint8_t> bytes = base;
  rootOf(bytes)->mutable_segments()->GetMutableObject(1)->mutate_offset(
      segmentSize);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "segment 1: range [" + std::to_string(segmentSize) + ", " +
                     std::to_string(segmentSize + 1024) +
                     ") extends past the end of the segment area (" +
                     std::to_string(segmentSize) + " bytes)");

  bytes = base;
  rootOf(bytes)->mutable_segments()->GetMutableObject(1)->mutate_offset(
      UINT64_MAX - 63);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "segment 1: offset 18446744073709551552 + length 1024 "
                 "overflows");

  bytes = base;
  rootOf(bytes)->mutable_segments()->GetMutableObject(1)->mutate_length(
      UINT64_MAX);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE, "overflows");

  bytes = base;
  fb::Segment *seg = rootOf(bytes)->mutable_segments()->GetMutableObject(1);
  seg->mutate_offset(seg->offset() - 8);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "is not a multiple of its alignment 64");

  bytes = base;
  seg = rootOf(bytes)->mutable_segments()->GetMutableObject(1);
  seg->mutate_alignment(48);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "segment 1: alignment 48 is not a power of two");

  bytes = base;
  rootOf(bytes)->mutable_segments()->GetMutableObject(1)->mutate_offset(
      rootOf(bytes)->segments()->Get(0)->offset() + 4096);
  expectRejected(
      bytes, VMOE_STATUS_INVALID_MODULE,
      "segments 0 [0, " +
          std::to_string(rootOf(bytes)->segments()->Get(0)->length()) +
          ") and 1 [4096, 5120) overlap");

  bytes = base;
  rootOf(bytes)->mutable_constants()->GetMutableObject(0)->mutate_segment(7);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "constant 0: segment index 7 out of range (2 segments)");

  bytes = base;
  rootOf(bytes)
      ->mutable_executables()
      ->GetMutableObject(0)
      ->mutable_cpu()
      ->mutate_segment(42);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "executable 0: segment index 42 out of range");
}

TEST(ModuleVerifier, Bindings) {
  std::vector<uint8_t> base = addModuleBytes();
  const uint64_t arenaSize = kAddMaxBatch * kAddWidth * 4 + kAddWidth * 4;

  std::vector<uint8_t> bytes = base;
  fb::Binding *binding = rootOf(bytes)
                             ->mutable_dispatches()
                             ->GetMutableObject(0)
                             ->mutable_bindings()
                             ->GetMutableObject(2);
  binding->mutate_offset(arenaSize - 64);
  expectRejected(
      bytes, VMOE_STATUS_INVALID_MODULE,
      "dispatch 0, binding 2: arena range [" + std::to_string(arenaSize - 64) +
          ", +4096) exceeds the arena size " + std::to_string(arenaSize));

  bytes = base;
  rootOf(bytes)
      ->mutable_dispatches()
      ->GetMutableObject(0)
      ->mutable_bindings()
      ->GetMutableObject(2)
      ->mutate_offset(UINT64_MAX - 100);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE, "exceeds the arena size");

  bytes = base;
  rootOf(bytes)
      ->mutable_dispatches()
      ->GetMutableObject(0)
      ->mutable_bindings()
      ->GetMutableObject(0)
      ->mutate_length(4097);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "dispatch 0, binding 0: range [0, +4097) exceeds input 0 of "
                 "4096 bytes");

  bytes = base;
  rootOf(bytes)
      ->mutable_dispatches()
      ->GetMutableObject(2)
      ->mutable_bindings()
      ->GetMutableObject(1)
      ->mutate_index(5);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "dispatch 2, binding 1: constant index 5 out of range (1 "
                 "constants)");

  bytes = base;
  rootOf(bytes)
      ->mutable_dispatches()
      ->GetMutableObject(1)
      ->mutable_bindings()
      ->GetMutableObject(1)
      ->mutate_index(1);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "dispatch 1, binding 1: output index 1 out of range (1 "
                 "outputs)");

  bytes = base;
  rootOf(bytes)
      ->mutable_dispatches()
      ->GetMutableObject(1)
      ->mutable_bindings()
      ->GetMutableObject(1)
      ->mutate_kind(static_cast<fb::BufferKind>(9));
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "dispatch 1, binding 1: unknown buffer kind 9");

  // An arena binding may not touch the arena copy of a constant.
  bytes = addModuleBytes(/*arenaConstant=*/true);
  {
    Loaded loaded = loadBytes(bytes);
    ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  }
  rootOf(bytes)
      ->mutable_dispatches()
      ->GetMutableObject(0)
      ->mutable_bindings()
      ->GetMutableObject(2)
      ->mutate_offset(1024);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "dispatch 0, binding 2: arena range [1024, +4096) overlaps "
                 "the arena copy of constant 0");
  bytes = addModuleBytes(/*arenaConstant=*/true);
  rootOf(bytes)->mutable_constants()->GetMutableObject(0)->mutate_arena_offset(
      arenaSize - 512);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "constant 0 ('c'): arena range at " +
                     std::to_string(arenaSize - 512) +
                     " of 1024 bytes exceeds the arena size");
}

TEST(ModuleVerifier, KernelsAndDispatches) {
  std::vector<uint8_t> base = addModuleBytes();

  std::vector<uint8_t> bytes = base;
  rootOf(bytes)->mutable_dispatches()->GetMutableObject(0)->mutate_kernel(99);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "dispatch 0: kernel index 99 out of range (3 kernels)");

  bytes = base;
  fb::Dim3 *grid = rootOf(bytes)
                       ->mutable_kernels()
                       ->GetMutableObject(0)
                       ->mutable_workgroup_count();
  grid->mutate_x(1u << 20);
  grid->mutate_y(1u << 10);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "kernel 0 ('add'): grid 1048576x1024x1 has more than the "
                 "16777216 workgroups a dispatch may have");

  bytes = base;
  grid = rootOf(bytes)
             ->mutable_kernels()
             ->GetMutableObject(1)
             ->mutable_workgroup_count();
  grid->mutate_x(0xffffffffu);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "kernel 1 ('scale'): workgroup count 4294967295 in dim 0 is "
                 "out of range");

  bytes = base;
  rootOf(bytes)
      ->mutable_kernels()
      ->GetMutableObject(1)
      ->mutable_workgroup_count()
      ->mutate_z(0);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "kernel 1 ('scale'): workgroup count 0 in dim 2");

  bytes = base;
  rootOf(bytes)->mutable_kernels()->GetMutableObject(0)->mutate_binding_count(
      4);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "dispatch 0: 3 bindings, but kernel 0 ('add') takes 4");

  bytes = base;
  rootOf(bytes)->mutable_kernels()->GetMutableObject(1)->mutate_constant_count(
      3);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "dispatch 1: 2 push constants, but kernel 1 ('scale') takes "
                 "3");

  bytes = base;
  rootOf(bytes)->mutable_kernels()->GetMutableObject(0)->mutate_binding_count(
      1000);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "1000 bindings exceed the limit 64");

  bytes = base;
  rootOf(bytes)->mutable_kernels()->GetMutableObject(0)->mutate_executable(3);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "kernel 0 ('add'): executable index 3 out of range (1 "
                 "executables)");

  bytes = base;
  rootOf(bytes)->mutable_kernels()->GetMutableObject(0)->mutate_abi_version(1);
  expectRejected(bytes, VMOE_STATUS_UNSUPPORTED_VERSION,
                 "kernel 0 ('add') uses kernel ABI version 1; this runtime "
                 "implements version 0");

  bytes = base;
  rootOf(bytes)->mutable_kernels()->GetMutableObject(0)->mutate_scratch_size(
      UINT64_MAX);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "scratch of 18446744073709551615 bytes exceeds the limit");

  bytes = base;
  rootOf(bytes)->mutable_executables()->GetMutableObject(0)->mutate_format(
      static_cast<fb::ExecutableFormat>(7));
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "executable 0: unknown format 7");

  bytes = base;
  rootOf(bytes)->mutable_executables()->GetMutableObject(0)->mutate_format(
      fb::ExecutableFormat::Cuda);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "executable 0: CUDA executable without its CUDA description");
}

TEST(ModuleVerifier, BatchGridMustGiveTheKernelGridAtTheMaximumBatch) {
  // 4 images x 256 units in workgroups of 64: the kernel's 16 workgroups.
  ModuleWriter good;
  buildAddModule(good, false, 64);
  Loaded loaded = loadBytes(serialize(good));
  EXPECT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;

  ModuleWriter bad;
  buildAddModule(bad, false, 32);
  expectRejected(serialize(bad), VMOE_STATUS_INVALID_MODULE,
                 "dispatch 0: batch grid of 256 units per image and 32 per "
                 "workgroup does not give the kernel's 16 workgroups at the "
                 "maximum batch 4");
}

TEST(ModuleVerifier, ShapesThatDisagree) {
  std::vector<uint8_t> base = addModuleBytes();
  auto shapeOf = [](std::vector<uint8_t> &bytes, uint32_t input) {
    return rootOf(bytes)
        ->mutable_signature()
        ->mutable_inputs()
        ->GetMutableObject(input)
        ->mutable_shape();
  };
  std::vector<uint8_t> bytes = base;
  shapeOf(bytes, 0)->Mutate(0, 3);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "input 0 ('a'): batch dim 0 is 3 but the maximum batch is 4");

  bytes = base;
  shapeOf(bytes, 1)->Mutate(1, -5);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "input 1 ('b'): dim 1 is negative (-5)");

  bytes = base;
  shapeOf(bytes, 1)->Mutate(1, int64_t(1) << 62);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "input 1 ('b'): byte size of shape [4,4611686018427387904] "
                 "overflows");

  // A smaller tensor than the dispatches bind.
  bytes = base;
  shapeOf(bytes, 1)->Mutate(1, 128);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "dispatch 0, binding 1: range [0, +4096) exceeds input 1 of "
                 "2048 bytes");

  bytes = base;
  rootOf(bytes)
      ->mutable_signature()
      ->mutable_inputs()
      ->GetMutableObject(0)
      ->mutate_dtype(static_cast<fb::DType>(77));
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "input 0 ('a'): unknown dtype 77");

  bytes = base;
  rootOf(bytes)
      ->mutable_signature()
      ->mutable_outputs()
      ->GetMutableObject(0)
      ->mutate_batch_dim(2);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "output 0 ('out'): batch dim 2 out of range for rank 2");

  bytes = base;
  rootOf(bytes)->mutable_signature()->mutate_max_batch(0);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "maximum batch 0 must be >= 1");

  bytes = base;
  rootOf(bytes)->mutable_signature()->mutate_batch_multiple(3);
  expectRejected(
      bytes, VMOE_STATUS_INVALID_MODULE,
      "batch multiple 3 must be >= 1 and divide the maximum batch 4");

  ModuleWriter w;
  buildAddModule(w);
  w.addInput({"a", fb::DType::F32, {4}, -1});
  expectRejected(serialize(w), VMOE_STATUS_INVALID_MODULE,
                 "input 2 ('a'): name used twice");

  ModuleWriter deep;
  buildAddModule(deep);
  deep.addInput({"deep", fb::DType::F32, std::vector<int64_t>(9, 1), -1});
  expectRejected(serialize(deep), VMOE_STATUS_INVALID_MODULE,
                 "input 2 ('deep'): rank 9 exceeds the limit 8");
}

TEST(ModuleVerifier, MisalignedVectorElements) {
  // FlatBuffers 2.0 checks a vector's 4-byte length prefix, not the
  // alignment of 8-byte elements. Point input 0's shape 4 bytes further, so
  // that the low word of dim 0 (set to 1) becomes the length: still in
  // bounds, so structurally valid, but the one int64 dim is misaligned.
  std::vector<uint8_t> bytes = addModuleBytes();
  fb::TensorSpec *spec =
      rootOf(bytes)->mutable_signature()->mutable_inputs()->GetMutableObject(0);
  spec->mutable_shape()->Mutate(0, 1);
  uint8_t *field = reinterpret_cast<flatbuffers::Table *>(spec)->GetAddressOf(
      fb::TensorSpec::VT_SHAPE);
  ASSERT_NE(field, nullptr);
  uint32_t offset;
  memcpy(&offset, field, 4);
  offset += 4;
  memcpy(field, &offset, 4);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "input 0 ('a'): the shape is misaligned");
}

/// The echo module (TestSupport.h) has a MoE layer and MoE push constants;
/// with `stats`, a bare module whose layer records routing statistics.
std::vector<uint8_t> echoModuleBytes(uint32_t maxCapacity, bool stats = false) {
  ModuleWriter w;
  if (!stats) {
    buildEchoModule(w, 400, 2, 8, 0.25, 0.25, maxCapacity);
    return serialize(w);
  }
  w.setBatch(1);
  w.setArena(8 * 4 + 400 * 4);
  MoeLayerDesc layer;
  layer.name = "moe";
  layer.numExperts = 8;
  layer.k = 2;
  layer.groupSize = 400;
  layer.numGroups = 1;
  layer.numTokens = 400;
  layer.tokensPerImage = 400;
  layer.defaultCapacityFactor = 0.25;
  layer.maxCapacityFactor = 0.25;
  layer.maxCapacity = maxCapacity;
  layer.hasStats = true;
  layer.expertCountsOffset = 0;
  layer.tokenKeptOffset = 32;
  w.addMoeLayer(layer);
  return serialize(w);
}

TEST(ModuleVerifier, MoeLayersAndPushConstants) {
  // C(0.25) for S=400, K=2, E=8 is 28.
  {
    Loaded loaded = loadBytes(echoModuleBytes(28));
    EXPECT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  }
  expectRejected(echoModuleBytes(24), VMOE_STATUS_INVALID_MODULE,
                 "MoE layer 0: compiled capacity 24 is smaller than 28, the "
                 "capacity of its maximum capacity factor 0.25");

  std::vector<uint8_t> base = echoModuleBytes(28);
  std::vector<uint8_t> bytes = base;
  rootOf(bytes)
      ->mutable_dispatches()
      ->GetMutableObject(0)
      ->mutable_push_constants()
      ->GetMutableObject(0)
      ->mutate_layer(3);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "dispatch 0, push constant 0: MoE layer 3 out of range (1 "
                 "layers)");

  bytes = base;
  rootOf(bytes)
      ->mutable_dispatches()
      ->GetMutableObject(0)
      ->mutable_push_constants()
      ->GetMutableObject(2)
      ->mutate_source(static_cast<fb::PushConstantSource>(12));
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "dispatch 0, push constant 2: unknown source 12");

  // The call's k reaches only modules that say they need it.
  bytes = base;
  rootOf(bytes)
      ->mutable_dispatches()
      ->GetMutableObject(0)
      ->mutable_push_constants()
      ->GetMutableObject(2)
      ->mutate_source(fb::PushConstantSource::MoeK);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "dispatch 0, push constant 2 takes the call's k but the "
                 "module does not require it");

  bytes = base;
  rootOf(bytes)->mutable_moe_layers()->GetMutableObject(0)->mutate_num_tokens(
      401);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "MoE layer 0: 401 tokens is not 1 groups of 400");

  bytes = base;
  rootOf(bytes)->mutable_moe_layers()->GetMutableObject(0)->mutate_k(9);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "MoE layer 0: k 9 and 8 experts need 1 <= k <= E");

  bytes = base;
  rootOf(bytes)
      ->mutable_moe_layers()
      ->GetMutableObject(0)
      ->mutate_default_capacity_factor(0.5);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "MoE layer 0: capacity factors need 0 < default (0.5) <= "
                 "maximum (0.25)");

  bytes = base;
  rootOf(bytes)
      ->mutable_moe_layers()
      ->GetMutableObject(0)
      ->mutate_tokens_per_image(200);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "MoE layer 0: 400 tokens is not the maximum batch 1 times 200 "
                 "tokens per image");

  bytes = echoModuleBytes(28, /*stats=*/true);
  {
    Loaded loaded = loadBytes(bytes);
    EXPECT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  }
  rootOf(bytes)
      ->mutable_moe_layers()
      ->GetMutableObject(0)
      ->mutable_stats()
      ->mutate_token_kept_offset(36);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "MoE layer 0: token kept buffer at 36 (400 int32) exceeds "
                 "the arena size 1632");
  bytes = echoModuleBytes(28, /*stats=*/true);
  rootOf(bytes)
      ->mutable_moe_layers()
      ->GetMutableObject(0)
      ->mutable_stats()
      ->mutate_expert_counts_offset(2);
  expectRejected(bytes, VMOE_STATUS_INVALID_MODULE,
                 "expert counts buffer offset 2 is not 4-byte aligned");
}

TEST(ModuleVerifier, CpuExecutableProblemsSurfaceAtSessionCreation) {
  // A kernel whose entry the shared object lacks.
  std::vector<uint8_t> bytes = addModuleBytes();
  ModuleWriter w;
  buildAddModule(w);
  KernelDesc missing;
  missing.name = "missing";
  missing.entry = "vmoe_test_no_such_kernel";
  w.addKernel(missing);
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  vmoe_session_t *session = nullptr;
  vmoe_message_t message;
  EXPECT_EQ(vmoe_session_create(loaded.module, nullptr, &session, &message),
            VMOE_STATUS_INVALID_MODULE);
  EXPECT_NE(std::string(message.text)
                .find("kernel 3 ('missing'): entry symbol "
                      "'vmoe_test_no_such_kernel' not found in executable 0"),
            std::string::npos)
      << message.text;

  // Bytes that are not an ELF object.
  ModuleWriter junk;
  uint32_t segment = junk.addSegment(std::vector<uint8_t>(256, 0x42), 64);
  uint32_t exe = junk.addCpuExecutable("junk", hostTriple(), "", segment);
  KernelDesc k;
  k.name = "k";
  k.executable = exe;
  k.entry = "f";
  junk.addKernel(k);
  Loaded junkLoaded = loadBytes(serialize(junk));
  ASSERT_EQ(junkLoaded.status, VMOE_STATUS_OK) << junkLoaded.message;
  EXPECT_EQ(vmoe_session_create(junkLoaded.module, nullptr, &session, &message),
            VMOE_STATUS_INVALID_MODULE);
  EXPECT_STREQ(message.text, "executable 0 is not an ELF shared object");
  EXPECT_EQ(session, nullptr);
}

TEST(ModuleVerifier, RandomCorruptionNeverCrashes) {
  std::vector<uint8_t> base = addModuleBytes();
  uint64_t fbEnd =
      headerOf(base).flatbuffer_offset + headerOf(base).flatbuffer_size;
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int round = 0; round < 3000; ++round) {
    std::vector<uint8_t> bytes = base;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) {
      // Mostly the header and the metadata: the segments are opaque bytes.
      uint64_t at = rng() % 8 ? rng() % fbEnd : rng() % bytes.size();
      bytes[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
    }
    Loaded loaded = loadBytes(bytes);
    if (loaded.status == VMOE_STATUS_OK) {
      ++accepted;
      vmoe_module_info_t info;
      vmoe_module_info(loaded.module, &info); // must be safe to read
    } else {
      EXPECT_FALSE(loaded.message.empty());
    }
  }
  // Every truncation too.
  for (uint64_t size = 0; size < base.size(); size += 61) {
    Loaded loaded =
        loadBytes(std::vector<uint8_t>(base.begin(), base.begin() + size));
    EXPECT_NE(loaded.status, VMOE_STATUS_OK) << size;
  }
  RecordProperty("accepted", accepted);
}

TEST(ModuleVerifier, SegmentsBeyondFourGigabytes) {
  // Segments are addressed by 64-bit offsets: move the constant c past 5 GiB
  // in a sparse file, and run the module from there.
  ModuleWriter w;
  buildAddModule(w);
  std::vector<uint8_t> bytes = serialize(w);
  vmoe_module_header_t h = headerOf(bytes);
  fb::Segment *seg = rootOf(bytes)->mutable_segments()->GetMutableObject(1);
  uint64_t oldOffset = seg->offset();
  const uint64_t farOffset = 5ull << 30;
  seg->mutate_offset(farOffset);
  h.segment_size = farOffset + seg->length();
  h.file_size = h.segment_base + h.segment_size;
  setHeader(bytes, h);
  reseal(bytes);

  const char *dir = getenv("TMPDIR");
  std::string path = std::string(dir && *dir ? dir : "/tmp") +
                     "/vmoe-test-large-" + std::to_string(getpid()) + ".vmoe";
  int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  bool ok = write(fd, bytes.data(), bytes.size()) ==
                static_cast<ssize_t>(bytes.size()) &&
            pwrite(fd, bytes.data() + h.segment_base + oldOffset, 1024,
                   static_cast<off_t>(h.segment_base + farOffset)) == 1024 &&
            ftruncate(fd, static_cast<off_t>(h.file_size)) == 0;
  close(fd);
  if (!ok) {
    unlink(path.c_str());
    GTEST_SKIP() << "no sparse 5 GiB file in " << path;
  }
  vmoe_module_t *module = nullptr;
  vmoe_message_t message;
  // The weights unchecked: a full check would read the 5 GiB of zeros.
  vmoe_module_load_options_t options;
  vmoe_module_load_options_init(&options);
  options.verify_weights = VMOE_VERIFY_WEIGHTS_NONE;
  vmoe_status_t status =
      vmoe_module_load_file_ex(path.c_str(), &options, &module, &message);
  unlink(path.c_str());
  ASSERT_EQ(status, VMOE_STATUS_OK) << message.text;
  vmoe_module_info_t info;
  vmoe_module_info(module, &info);
  EXPECT_GT(info.file_size, 5ull << 30);
  {
    SessionHolder s;
    createSession(module, s, 2);
    std::vector<float> a(kAddMaxBatch * kAddWidth, 1.0f),
        b(kAddMaxBatch * kAddWidth, 2.0f), out(kAddMaxBatch * kAddWidth);
    std::vector<int64_t> shape = {kAddMaxBatch, kAddWidth};
    vmoe_tensor_t inputs[2] = {
        tensor(VMOE_DTYPE_F32, shape, a.data(), a.size() * 4),
        tensor(VMOE_DTYPE_F32, shape, b.data(), b.size() * 4)};
    vmoe_tensor_t output =
        tensor(VMOE_DTYPE_F32, shape, out.data(), out.size() * 4);
    ASSERT_EQ(
        vmoe_session_run(s.session, inputs, 2, &output, 1, nullptr, &message),
        VMOE_STATUS_OK)
        << message.text;
    EXPECT_EQ(out, expectedAdd(a, b));
  }
  vmoe_module_release(module);
}

} // namespace
} // namespace test
} // namespace vmoe
