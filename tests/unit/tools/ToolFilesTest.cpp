//===- ToolFilesTest.cpp - what vmoe-run and vmoe-bench write and allocate ===//
//
// Modules built with the writer and the test kernels, run through the real
// tool binaries: outputs go through a new temporary file and a rename (an
// existing X.npy.tmp, file or symlink, is left alone), an output naming an
// input is refused before any work, and a module whose tensors would take
// more bytes than a tool allocates gets a message, not std::bad_alloc.
//
//===----------------------------------------------------------------------===//

#include "ToolSupport.h"
#include "ToolTestSupport.h"

#include <sys/stat.h>
#include <unistd.h>

namespace vmoe {
namespace test {
namespace {

TEST(ToolFiles, RunOutputLeavesAnExistingTmpFileAndSymlinkAlone) {
  TempDir dir;
  writeCopyModule(dir / "m.vmoe", 4);
  // What the old writer opened without O_EXCL: a file, and a symlink to a
  // file that must not be written through.
  writeText(dir / "out.npy.tmp", "keep me");
  writeText(dir / "victim", "victim");
  ASSERT_EQ(symlink((dir / "victim").c_str(), (dir / "sym.npy.tmp").c_str()),
            0);
  std::string output;
  for (const char *name : {"out.npy", "sym.npy"}) {
    EXPECT_EQ(runTool(std::string(VMOE_RUN_PATH) + " '" + (dir / "m.vmoe") +
                          "' --quiet --output '" + (dir / name) + "'",
                      &output),
              0)
        << output;
    std::string npy = readText(dir / name);
    EXPECT_EQ(npy.compare(0, 6, "\x93NUMPY"), 0) << name;
  }
  EXPECT_EQ(readText(dir / "out.npy.tmp"), "keep me");
  EXPECT_EQ(readText(dir / "victim"), "victim");
  // Nothing else left behind.
  EXPECT_EQ(listDir(dir.path),
            (std::vector<std::string>{"m.vmoe", "out.npy", "out.npy.tmp",
                                      "sym.npy", "sym.npy.tmp", "victim"}));
}

TEST(ToolFiles, RunOutputNamingAnInputIsRefused) {
  TempDir dir;
  writeCopyModule(dir / "m.vmoe", 4);
  std::vector<uint8_t> module = readFileBytes(dir / "m.vmoe");
  // The same file under another name: a hard link.
  ASSERT_EQ(link((dir / "m.vmoe").c_str(), (dir / "alias.npy").c_str()), 0);
  std::string output;
  EXPECT_EQ(runTool(std::string(VMOE_RUN_PATH) + " '" + (dir / "m.vmoe") +
                        "' --output '" + (dir / "alias.npy") + "'",
                    &output),
            1);
  EXPECT_NE(output.find("is also an input"), std::string::npos) << output;
  EXPECT_EQ(readFileBytes(dir / "m.vmoe"), module);
}

TEST(ToolFiles, BenchJsonGoesThroughATemporaryFile) {
#ifdef VMOE_BENCH_PATH
  TempDir dir;
  writeCopyModule(dir / "m.vmoe", 4);
  writeText(dir / "victim", "victim");
  ASSERT_EQ(symlink((dir / "victim").c_str(), (dir / "r.json.tmp").c_str()), 0);
  std::string output;
  EXPECT_EQ(runTool(std::string(VMOE_BENCH_PATH) + " '" + (dir / "m.vmoe") +
                        "' --warmup 1 --repeat 2 --json '" + (dir / "r.json") +
                        "'",
                    &output),
            0)
      << output;
  EXPECT_EQ(readText(dir / "r.json").compare(0, 14, "{\"peak_rss_mb\""), 0);
  EXPECT_EQ(readText(dir / "victim"), "victim");
  EXPECT_EQ(runTool(std::string(VMOE_BENCH_PATH) + " '" + (dir / "m.vmoe") +
                        "' --json '" + (dir / "m.vmoe") + "'",
                    &output),
            1);
  EXPECT_NE(output.find("is also an input"), std::string::npos) << output;
#else
  GTEST_SKIP() << "no vmoe-bench in this build";
#endif
}

TEST(ToolFiles, HugeTensorsGetAMessage) {
  // 2^40 bytes of input: the verifier accepts the shape (no overflow), the
  // tools must not try to allocate it.
  TempDir dir;
  writeCopyModule(dir / "m.vmoe", int64_t(1) << 37);
  std::string output;
  EXPECT_EQ(runTool(std::string(VMOE_RUN_PATH) + " '" + (dir / "m.vmoe") + "'",
                    &output),
            1);
  EXPECT_NE(output.find("vmoe-run: error: the module's input 0 takes "
                        "1099511627776 bytes, more than the 16 GiB"),
            std::string::npos)
      << output;
#ifdef VMOE_BENCH_PATH
  EXPECT_EQ(
      runTool(std::string(VMOE_BENCH_PATH) + " '" + (dir / "m.vmoe") + "'",
              &output),
      1);
  EXPECT_NE(output.find("vmoe-bench: error: the module's input 0 takes "
                        "1099511627776 bytes"),
            std::string::npos)
      << output;
#endif
}

TEST(ToolFiles, SameFileComparesInodesNotNames) {
  TempDir dir;
  writeText(dir / "a", "a");
  writeText(dir / "b", "b");
  ASSERT_EQ(symlink((dir / "a").c_str(), (dir / "s").c_str()), 0);
  EXPECT_TRUE(tools::sameFile(dir / "a", dir.path + "/./a"));
  EXPECT_TRUE(tools::sameFile(dir / "a", dir / "s"));
  EXPECT_FALSE(tools::sameFile(dir / "a", dir / "b"));
  EXPECT_FALSE(tools::sameFile(dir / "missing", dir / "missing"));
}

} // namespace
} // namespace test
} // namespace vmoe
