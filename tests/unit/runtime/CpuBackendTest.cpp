//===- CpuBackendTest.cpp - Host checks and in-memory loading -------------===//

#include "CpuLoader.h"
#include "TestSupport.h"

#include <dlfcn.h>
#include <elf.h>

namespace vmoe {
namespace test {
namespace {

bool hasFeature(const char *name) {
  bool known;
  return cpu::hostHasFeature(name, strlen(name), &known) && known;
}

TEST(CpuBackend, HostFeatures) {
#if defined(__x86_64__)
  EXPECT_TRUE(hasFeature("sse2"));
  EXPECT_TRUE(hasFeature("64bit"));
  EXPECT_EQ(hasFeature("avx2"), __builtin_cpu_supports("avx2") != 0);
  EXPECT_EQ(hasFeature("avx512f"), __builtin_cpu_supports("avx512f") != 0);
  EXPECT_EQ(hasFeature("fma"), __builtin_cpu_supports("fma") != 0);
#endif
  bool known = true;
  EXPECT_FALSE(cpu::hostHasFeature("no-such-feature", 15, &known));
  EXPECT_FALSE(known);
}

TEST(CpuBackend, KnowsTheFeaturesOfNewerX86Hosts) {
  // LLVM lists these for a --cpu=host module on recent Intel CPUs (and
  // virtual machines that pass them through); an unknown name would make
  // the runtime refuse a module compiled on the very host that runs it.
#if defined(__x86_64__)
  for (const char *name :
       {"rtm", "cldemote", "tsxldtrk", "prefetchi", "avx10.1", "avx10.2"}) {
    bool known = false;
    cpu::hostHasFeature(name, strlen(name), &known);
    EXPECT_TRUE(known) << name;
  }
  // AVX10.1 includes AVX-512 (F, BW, CD, DQ, VL, ...).
  if (hasFeature("avx10.1")) {
    EXPECT_TRUE(hasFeature("avx512f"));
    EXPECT_TRUE(hasFeature("avx512bw"));
  }
#endif
}

TEST(CpuBackend, TargetChecks) {
  vmoe_message_t message;
  EXPECT_EQ(cpu::checkTarget(0, hostTriple(), "", &message), VMOE_STATUS_OK);
#if defined(__x86_64__)
  EXPECT_EQ(cpu::checkTarget(0, "x86_64-pc-linux-gnu",
                             "+sse2, +sse4.1,-avx512f", &message),
            __builtin_cpu_supports("sse4.1") ? VMOE_STATUS_OK
                                             : VMOE_STATUS_UNSUPPORTED)
      << message.text;
  EXPECT_EQ(cpu::checkTarget(1, "aarch64-unknown-linux-gnu", "", &message),
            VMOE_STATUS_UNSUPPORTED);
  EXPECT_STREQ(message.text, "executable 1 is compiled for "
                             "'aarch64-unknown-linux-gnu', but this host is "
                             "x86_64");
#endif
  EXPECT_EQ(
      cpu::checkTarget(2, hostTriple(), "+sse2,+fancy-new-thing", &message),
      VMOE_STATUS_UNSUPPORTED);
  EXPECT_NE(std::string(message.text)
                .find("executable 2 requires CPU feature 'fancy-new-thing', "
                      "which this runtime cannot check"),
            std::string::npos)
      << message.text;
}

TEST(CpuBackend, MissingFeatureIsRefused) {
  const char *candidates[] = {
      "amx-tile",           "amx-int8", "avx512bf16", "avx512fp16",
      "avx512vp2intersect", "fma4",     "sse4a",      "avx512f"};
  for (const char *feature : candidates) {
    bool known;
    if (cpu::hostHasFeature(feature, strlen(feature), &known) || !known)
      continue;
    // A module asking for it gets a clear refusal at session creation.
    ModuleWriter demanding;
    uint32_t exe =
        addTestExecutable(demanding, std::string("+sse2,+") + feature);
    KernelDesc k;
    k.name = "add";
    k.executable = exe;
    k.entry = "vmoe_test_add_f32";
    demanding.addKernel(k);
    Loaded loaded = loadBytes(serialize(demanding));
    ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
    vmoe_session_t *session = nullptr;
    vmoe_message_t message;
    EXPECT_EQ(vmoe_session_create(loaded.module, nullptr, &session, &message),
              VMOE_STATUS_UNSUPPORTED);
    EXPECT_EQ(std::string(message.text),
              std::string("executable 0 requires CPU feature '") + feature +
                  "', which this host lacks; compile the module for this CPU "
                  "(or an older one)");
    return;
  }
  GTEST_SKIP() << "this host has every candidate feature";
}

TEST(CpuBackend, ElfChecks) {
  vmoe_message_t message;
  const std::vector<uint8_t> &so = testKernelsSo();
  EXPECT_EQ(cpu::checkElf(0, so.data(), so.size(), &message), VMOE_STATUS_OK);
  std::vector<uint8_t> bytes = so;
  bytes[16] = 1; // e_type = ET_REL
  bytes[17] = 0;
  EXPECT_EQ(cpu::checkElf(0, bytes.data(), bytes.size(), &message),
            VMOE_STATUS_INVALID_MODULE);
  EXPECT_STREQ(message.text,
               "executable 0 is an ELF object of type 1, not a shared object");
  bytes = so;
  bytes[18] = 0x28; // e_machine = EM_ARM
  bytes[19] = 0;
  EXPECT_EQ(cpu::checkElf(0, bytes.data(), bytes.size(), &message),
            VMOE_STATUS_UNSUPPORTED);
  EXPECT_NE(std::string(message.text).find("is ELF machine 40"),
            std::string::npos);
  EXPECT_EQ(cpu::checkElf(0, so.data(), 10, &message),
            VMOE_STATUS_INVALID_MODULE);
  // An image cut short: its segments lie past the end (dlopen would fault
  // with SIGBUS while mapping them).
  size_t cut = so.size() / 2;
  EXPECT_EQ(cpu::checkElf(0, so.data(), cut, &message),
            VMOE_STATUS_INVALID_MODULE);
  EXPECT_NE(std::string(message.text).find("past its"), std::string::npos)
      << message.text;
  // A program header table outside the image.
  bytes = so;
  bytes[32] = 0xff; // e_phoff low byte
  bytes[38] = 0xff; // e_phoff high byte
  EXPECT_EQ(cpu::checkElf(0, bytes.data(), bytes.size(), &message),
            VMOE_STATUS_INVALID_MODULE);
  EXPECT_NE(std::string(message.text).find("program header table"),
            std::string::npos)
      << message.text;
}

void expectLoads(cpu::LoadMethod method) {
  const std::vector<uint8_t> &so = testKernelsSo();
  void *handle = nullptr;
  vmoe_message_t message;
  ASSERT_EQ(
      cpu::loadSharedObject(0, so.data(), so.size(), method, &handle, &message),
      VMOE_STATUS_OK)
      << message.text;
  EXPECT_NE(dlsym(handle, "vmoe_test_add_f32"), nullptr);
  // Non-exported helpers stay hidden.
  EXPECT_EQ(dlsym(handle, "linearId"), nullptr);
  dlclose(handle);
}

TEST(CpuBackend, LoadsFromMemoryByMemFd) {
#if defined(__linux__)
  expectLoads(cpu::LoadMethod::MemFd);
#else
  GTEST_SKIP() << "memfd is Linux-only";
#endif
}

TEST(CpuBackend, LoadsFromMemoryByTemporaryFile) {
  expectLoads(cpu::LoadMethod::TempFile);
}

TEST(CpuBackend, DlopenErrorsAreReported) {
  // A whole object whose first load segment's address and file offset differ
  // by less than a page: the checks before dlopen pass, dlopen refuses it,
  // with its reason.
  std::vector<uint8_t> bytes = testKernelsSo();
  Elf64_Ehdr ehdr;
  memcpy(&ehdr, bytes.data(), sizeof(ehdr));
  bool patched = false;
  for (unsigned i = 0; i < ehdr.e_phnum && !patched; ++i) {
    Elf64_Phdr ph;
    uint8_t *at = bytes.data() + ehdr.e_phoff + i * sizeof(Elf64_Phdr);
    memcpy(&ph, at, sizeof(ph));
    if (ph.p_type != PT_LOAD)
      continue;
    ph.p_vaddr += 1;
    memcpy(at, &ph, sizeof(ph));
    patched = true;
  }
  ASSERT_TRUE(patched);
  void *handle = nullptr;
  vmoe_message_t message;
  EXPECT_EQ(cpu::loadSharedObject(3, bytes.data(), bytes.size(),
                                  cpu::LoadMethod::Auto, &handle, &message),
            VMOE_STATUS_UNSUPPORTED);
  EXPECT_NE(std::string(message.text).find("executable 3: dlopen failed: "),
            std::string::npos)
      << message.text;
  EXPECT_EQ(handle, nullptr);
  // A valid ELF header on a truncated object is refused before dlopen.
  bytes.assign(testKernelsSo().begin(), testKernelsSo().begin() + 200);
  EXPECT_EQ(cpu::loadSharedObject(3, bytes.data(), bytes.size(),
                                  cpu::LoadMethod::Auto, &handle, &message),
            VMOE_STATUS_INVALID_MODULE);
  EXPECT_EQ(handle, nullptr);
}

} // namespace
} // namespace test
} // namespace vmoe
