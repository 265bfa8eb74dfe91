//===- VersionTest.cpp - the runtime's and a module's compiler versions ---===//
//
// The runtime says its version; a module says the compiler that wrote it
// (ModelMetadata.compiler), and a module without that field, as written
// before vmoe 0.6.0, loads and runs all the same.
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#include "vmoe/version.h"

#include <cstdio>

namespace vmoe {
namespace test {
namespace {

TEST(Version, RuntimeSaysTheProjectVersion) {
  EXPECT_STREQ(vmoe_runtime_version(), VMOE_VERSION_STRING);
  char expected[32];
  std::snprintf(expected, sizeof(expected), "%d.%d.%d", VMOE_VERSION_MAJOR,
                VMOE_VERSION_MINOR, VMOE_VERSION_PATCH);
  EXPECT_STREQ(vmoe_runtime_version(), expected);
}

TEST(Version, ModuleRecordsTheCompiler) {
  ModuleWriter w;
  buildAddModule(w);
  w.setMetadata({"adder", "", {}, "vmoe-test", "1.2.3", "abc123-dirty"});
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  EXPECT_STREQ(vmoe_module_compiler_version(loaded.module), "1.2.3");
  EXPECT_STREQ(vmoe_module_compiler_revision(loaded.module), "abc123-dirty");
}

TEST(Version, WriterRecordsItsOwnBuildByDefault) {
  ModuleWriter w;
  buildAddModule(w);
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  EXPECT_STREQ(vmoe_module_compiler_version(loaded.module),
               VMOE_VERSION_STRING);
  EXPECT_STREQ(vmoe_module_compiler_revision(loaded.module),
               writer::buildRevision());
  EXPECT_STRNE(writer::buildRevision(), "");
}

TEST(Version, ModuleWithoutCompilerLoadsAndRuns) {
  ModuleWriter w;
  buildAddModule(w);
  w.setMetadata({"adder", "", {}, "vmoe-compile", "", ""});
  Loaded loaded = loadBytes(serialize(w));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  EXPECT_STREQ(vmoe_module_compiler_version(loaded.module), "");
  EXPECT_STREQ(vmoe_module_compiler_revision(loaded.module), "");
  vmoe_module_info_t info;
  vmoe_module_info(loaded.module, &info);
  EXPECT_STREQ(info.producer, "vmoe-compile");
  SessionHolder s;
  createSession(loaded.module, s, 1);
  std::vector<float> a(2 * kAddWidth), b(2 * kAddWidth), out(2 * kAddWidth);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = 0.5f * static_cast<float>(i % 11);
    b[i] = -0.25f * static_cast<float>(i % 7);
  }
  std::vector<int64_t> shape = {2, kAddWidth};
  vmoe_tensor_t inputs[2] = {
      tensor(VMOE_DTYPE_F32, shape, a.data(), a.size() * 4),
      tensor(VMOE_DTYPE_F32, shape, b.data(), b.size() * 4)};
  vmoe_tensor_t output =
      tensor(VMOE_DTYPE_F32, shape, out.data(), out.size() * 4);
  vmoe_message_t message;
  ASSERT_EQ(
      vmoe_session_run(s.session, inputs, 2, &output, 1, nullptr, &message),
      VMOE_STATUS_OK)
      << message.text;
  std::vector<float> want = expectedAdd(a, b);
  for (size_t i = 0; i < out.size(); ++i)
    EXPECT_FLOAT_EQ(out[i], want[i]) << "at " << i;
}

TEST(Version, NullModuleHasNoCompiler) {
  EXPECT_STREQ(vmoe_module_compiler_version(nullptr), "");
  EXPECT_STREQ(vmoe_module_compiler_revision(nullptr), "");
}

} // namespace
} // namespace test
} // namespace vmoe
