//===- ModuleWriterTest.cpp - Round trip through the file format ----------===//

#include "TestSupport.h"

#include <csignal>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vmoe {
namespace test {
namespace {

using writer::CudaCubinDesc;
using writer::ModuleLayout;

TEST(ModuleWriter, RoundTrip) {
  ModuleWriter w;
  w.setMetadata({"vmoe-s32",
                 "{\"num_classes\": 3}",
                 {"a", "b", "c"},
                 "vmoe-compile 0.1"});
  w.setBatch(8, 8);
  w.addInput({"images", fb::DType::BF16, {8, 32, 32, 3}, 0});
  w.addOutput({"logits", fb::DType::F32, {8, 3}, 0});
  std::vector<uint8_t> weights(1000);
  for (size_t i = 0; i < weights.size(); ++i)
    weights[i] = static_cast<uint8_t>(i * 7);
  uint32_t so = w.addSegment(testKernelsSo(), 4096);
  uint32_t weightSegment = w.addSegment(weights, 256);
  std::vector<uint8_t> viewed(77, 0x5a);
  uint32_t viewSegment = w.addSegmentView(viewed.data(), viewed.size(), 16);
  std::string ptx = ".version 8.0\n.target sm_80\n";
  uint32_t ptxSegment =
      w.addSegment(std::vector<uint8_t>(ptx.begin(), ptx.end()), 8);
  uint32_t cubinSegment = w.addSegment(std::vector<uint8_t>(100, 1), 128);
  w.addConstant("w0", weightSegment);
  w.addConstant("w1", viewSegment, fb::ConstantPlacement::Arena, 4096);
  uint32_t cpu = w.addCpuExecutable("cpu", hostTriple(), "+sse2", so);
  uint32_t cuda = w.addCudaExecutable("cuda", ptxSegment, 80,
                                      {CudaCubinDesc{90, cubinSegment}});
  KernelDesc k;
  k.name = "k0";
  k.executable = cpu;
  k.entry = "vmoe_test_add_f32";
  k.workgroupCount = {3, 2, 1};
  k.workgroupSize = {64, 1, 1};
  k.bindingCount = 1;
  k.constantCount = 2;
  k.scratchSize = 4096;
  k.sharedMemorySize = 1024;
  k.writtenBindings = {true};
  w.addKernel(k);
  w.addDispatch(
      {0,
       {BindingDesc::arena(128, 256)},
       {PushConstantDesc::literal(-5), PushConstantDesc::capacity(0)}});
  w.setArena(8192, 256);
  MoeLayerDesc layer;
  layer.name = "block1/moe";
  layer.numExperts = 8;
  layer.k = 2;
  layer.groupSize = 400;
  layer.numGroups = 1;
  layer.numTokens = 400;
  layer.tokensPerImage = 50;
  layer.defaultCapacityFactor = 1.05;
  layer.maxCapacityFactor = 1.5;
  layer.maxCapacity = 152;
  layer.defaultBpr = true;
  layer.hasStats = true;
  layer.expertCountsOffset = 0;
  layer.tokenKeptOffset = 2048;
  w.addMoeLayer(layer);

  std::vector<uint8_t> bytes;
  std::string error;
  ModuleLayout layout;
  ASSERT_TRUE(w.writeToBuffer(bytes, &error, &layout)) << error;
  ASSERT_EQ(bytes.size(), layout.fileSize);

  // The header.
  vmoe_module_header_t h;
  memcpy(&h, bytes.data(), sizeof(h));
  EXPECT_EQ(memcmp(h.magic, VMOE_MODULE_MAGIC, 8), 0);
  EXPECT_EQ(h.header_size, uint32_t(VMOE_MODULE_HEADER_SIZE));
  EXPECT_EQ(h.format_major, VMOE_FORMAT_VERSION_MAJOR);
  EXPECT_EQ(h.flatbuffer_offset, uint64_t(VMOE_MODULE_HEADER_SIZE));
  EXPECT_EQ(h.segment_base % 4096, 0u);
  EXPECT_EQ(h.segment_base, layout.segmentBase);
  EXPECT_EQ(h.file_size, bytes.size());

  // The metadata, read back with the generated API.
  const uint8_t *fbData = bytes.data() + h.flatbuffer_offset;
  ASSERT_TRUE(fb::ModuleBufferHasIdentifier(fbData));
  flatbuffers::Verifier verifier(fbData, h.flatbuffer_size);
  ASSERT_TRUE(fb::VerifyModuleBuffer(verifier));
  const fb::Module *m = fb::GetModule(fbData);
  EXPECT_EQ(m->version()->major(), uint32_t(VMOE_FORMAT_VERSION_MAJOR));
  EXPECT_EQ(m->metadata()->class_names()->size(), 3u);
  EXPECT_EQ(m->signature()->max_batch(), 8);
  EXPECT_EQ(m->signature()->batch_multiple(), 8);
  EXPECT_EQ(m->signature()->inputs()->Get(0)->dtype(), fb::DType::BF16);
  EXPECT_EQ(m->signature()->inputs()->Get(0)->shape()->Get(3), 3);
  ASSERT_EQ(m->segments()->size(), 5u);
  for (uint32_t i = 0; i < 5; ++i) {
    const fb::Segment *seg = m->segments()->Get(i);
    EXPECT_EQ(seg->offset(), layout.segmentOffsets[i]);
    EXPECT_EQ(seg->offset() % seg->alignment(), 0u);
  }
  const fb::Segment *ws = m->segments()->Get(weightSegment);
  EXPECT_EQ(ws->length(), weights.size());
  EXPECT_EQ(ws->alignment(), 256u);
  EXPECT_EQ(memcmp(bytes.data() + h.segment_base + ws->offset(), weights.data(),
                   weights.size()),
            0);
  const fb::Segment *vs = m->segments()->Get(viewSegment);
  EXPECT_EQ(memcmp(bytes.data() + h.segment_base + vs->offset(), viewed.data(),
                   viewed.size()),
            0);
  EXPECT_EQ(m->constants()->Get(1)->placement(), fb::ConstantPlacement::Arena);
  EXPECT_EQ(m->constants()->Get(1)->arena_offset(), 4096u);
  const fb::Executable *cudaExe = m->executables()->Get(cuda);
  EXPECT_EQ(cudaExe->format(), fb::ExecutableFormat::Cuda);
  EXPECT_EQ(cudaExe->cuda()->ptx_segment(), int64_t(ptxSegment));
  EXPECT_EQ(cudaExe->cuda()->cubins()->Get(0)->sm(), 90u);
  const fb::Kernel *kernel = m->kernels()->Get(0);
  EXPECT_EQ(kernel->workgroup_count()->x(), 3u);
  EXPECT_EQ(kernel->workgroup_size()->x(), 64u);
  EXPECT_EQ(kernel->scratch_size(), 4096u);
  EXPECT_EQ(kernel->shared_memory_size(), 1024u);
  ASSERT_NE(kernel->written_bindings(), nullptr);
  ASSERT_EQ(kernel->written_bindings()->size(), 1u);
  EXPECT_TRUE(kernel->written_bindings()->Get(0));
  const fb::Dispatch *d = m->dispatches()->Get(0);
  EXPECT_EQ(d->bindings()->Get(0)->offset(), 128u);
  EXPECT_EQ(d->push_constants()->Get(0)->value(), -5);
  EXPECT_EQ(d->push_constants()->Get(1)->source(),
            fb::PushConstantSource::MoeCapacity);
  EXPECT_EQ(m->arena()->alignment(), 256u);
  const fb::MoeLayer *l = m->moe_layers()->Get(0);
  EXPECT_EQ(l->default_capacity_factor(), 1.05);
  EXPECT_TRUE(l->default_bpr());
  EXPECT_EQ(l->stats()->token_kept_offset(), 2048u);

  // And through the runtime's verifier and C API.
  Loaded loaded = loadBytes(bytes);
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  vmoe_module_info_t info;
  vmoe_module_info(loaded.module, &info);
  EXPECT_STREQ(info.name, "vmoe-s32");
  EXPECT_EQ(info.config_json_size, strlen("{\"num_classes\": 3}"));
  EXPECT_EQ(info.executable_count, 2u);
  EXPECT_EQ(info.arena_size, 8192u);
  EXPECT_EQ(info.constant_bytes, weights.size() + viewed.size());
  EXPECT_EQ(info.batch_multiple, 8);
  vmoe_moe_layer_info_t li;
  vmoe_message_t message;
  ASSERT_EQ(vmoe_module_moe_layer_info(loaded.module, 0, &li, &message),
            VMOE_STATUS_OK);
  EXPECT_STREQ(li.name, "block1/moe");
  EXPECT_EQ(li.max_capacity, 152u);
  EXPECT_EQ(li.max_capacity_factor, 1.5);
  EXPECT_EQ(li.default_bpr, 1);
  EXPECT_EQ(li.has_stats, 1);
  EXPECT_EQ(vmoe_module_moe_layer_info(loaded.module, 1, &li, &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  vmoe_executable_info_t xi;
  ASSERT_EQ(vmoe_module_executable_info(loaded.module, cuda, &xi, &message),
            VMOE_STATUS_OK);
  EXPECT_EQ(xi.format, VMOE_EXECUTABLE_CUDA);
  EXPECT_EQ(xi.ptx_sm, 80u);
  EXPECT_EQ(xi.cubin_count, 1u);
  EXPECT_EQ(xi.size_bytes, ptx.size() + 100);
  // With its kernel in the CUDA executable, a CPU session refuses it.
  std::vector<uint8_t> patched = bytes;
  fb::GetMutableModule(patched.data() + h.flatbuffer_offset)
      ->mutable_kernels()
      ->GetMutableObject(0)
      ->mutate_executable(cuda);
  Loaded cudaOnly = loadBytes(resealed(patched));
  ASSERT_EQ(cudaOnly.status, VMOE_STATUS_OK) << cudaOnly.message;
  vmoe_session_t *session = nullptr;
  EXPECT_EQ(vmoe_session_create(cudaOnly.module, nullptr, &session, &message),
            VMOE_STATUS_UNSUPPORTED);
  EXPECT_NE(std::string(message.text).find("is not a CPU shared object"),
            std::string::npos)
      << message.text;
}

TEST(ModuleWriter, RejectsBadSegmentAlignment) {
  ModuleWriter w;
  w.addSegment(std::vector<uint8_t>(4), 3);
  std::vector<uint8_t> bytes;
  std::string error;
  EXPECT_FALSE(w.writeToBuffer(bytes, &error));
  EXPECT_NE(error.find("segment 0: alignment 3 is not a power of two"),
            std::string::npos);
  ModuleWriter big;
  big.addSegment(std::vector<uint8_t>(4), 8192);
  EXPECT_FALSE(big.writeToBuffer(bytes, &error));
  EXPECT_FALSE(big.writeFile("/tmp/never-written.vmoe", &error));
  ModuleWriter valid;
  EXPECT_FALSE(valid.writeFile("/nonexistent/dir/x.vmoe", &error));
  EXPECT_NE(error.find("cannot open '/nonexistent/dir/x.vmoe'"),
            std::string::npos)
      << error;
}

/// Names in `dir` that start with `prefix`.
std::vector<std::string> filesStartingWith(const std::string &dir,
                                           const std::string &prefix) {
  std::vector<std::string> names;
  if (DIR *d = opendir(dir.c_str())) {
    while (dirent *e = readdir(d))
      if (std::string(e->d_name).rfind(prefix, 0) == 0)
        names.push_back(e->d_name);
    closedir(d);
  }
  return names;
}

TEST(ModuleWriter, FullDiskKeepsTheOldFileAndLeavesNoTemporary) {
  const char *tmp = getenv("TMPDIR");
  std::string dir = tmp && *tmp ? tmp : "/tmp";
  std::string name = "vmoe-writer-" + std::to_string(getpid()) + ".vmoe";
  std::string path = dir + "/" + name;
  ModuleWriter small;
  small.setMetadata({"small", "", {}, ""});
  std::string error;
  ASSERT_TRUE(small.writeFile(path, &error)) << error;
  std::vector<uint8_t> good = readFileBytes(path);
  ASSERT_FALSE(good.empty());

  // A disk that fills up after 64 KiB: RLIMIT_FSIZE makes writes past it
  // fail with EFBIG (SIGXFSZ ignored), as ENOSPC would on a full disk.
  ModuleWriter big;
  big.setMetadata({"big", "", {}, ""});
  big.addSegment(std::vector<uint8_t>(1 << 20, 0x5A), 64);
  struct rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  void (*savedHandler)(int) = signal(SIGXFSZ, SIG_IGN);
  struct rlimit limited = saved;
  limited.rlim_cur = 64 * 1024;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
  bool written = big.writeFile(path, &error);
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, savedHandler);

  EXPECT_FALSE(written);
  EXPECT_EQ(error, "writing '" + path + "' failed: File too large");
  EXPECT_EQ(readFileBytes(path), good) << "the old module was overwritten";
  EXPECT_EQ(filesStartingWith(dir, name + ".tmp-"), std::vector<std::string>{});

  // Without the limit the same write replaces the file in one step.
  ASSERT_TRUE(big.writeFile(path, &error)) << error;
  EXPECT_GT(readFileBytes(path).size(), size_t(1 << 20));
  EXPECT_EQ(filesStartingWith(dir, name + ".tmp-"), std::vector<std::string>{});
  unlink(path.c_str());
}

TEST(ModuleWriter, FileModeFollowsTheUmask) {
  const char *tmp = getenv("TMPDIR");
  std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/vmoe-mode-" +
                     std::to_string(getpid()) + ".vmoe";
  ModuleWriter writer;
  writer.setMetadata({"mode", "", {}, ""});
  std::string error;
  for (mode_t mask : {mode_t(022), mode_t(077), mode_t(002)}) {
    mode_t saved = umask(mask);
    bool written = writer.writeFile(path, &error);
    umask(saved);
    ASSERT_TRUE(written) << error;
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask) << "umask " << mask;
    unlink(path.c_str());
  }
}

TEST(ModuleWriter, UnwritableDirectoryLeavesNothing) {
  // A file in place of the directory: no temporary can be created there.
  const char *tmp = getenv("TMPDIR");
  std::string file = std::string(tmp && *tmp ? tmp : "/tmp") +
                     "/vmoe-notadir-" + std::to_string(getpid());
  FILE *f = fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  ModuleWriter w;
  std::string error;
  EXPECT_FALSE(w.writeFile(file + "/x.vmoe", &error));
  EXPECT_EQ(error,
            "cannot open '" + file + "/x.vmoe' for writing: Not a directory");
  unlink(file.c_str());
}

TEST(ModuleWriter, EmptyModuleIsValid) {
  ModuleWriter w;
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  SessionHolder s;
  createSession(loaded.module, s, 2);
  vmoe_message_t message;
  EXPECT_EQ(
      vmoe_session_run(s.session, nullptr, 0, nullptr, 0, nullptr, &message),
      VMOE_STATUS_OK)
      << message.text;
}

} // namespace
} // namespace test
} // namespace vmoe
