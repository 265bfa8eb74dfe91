//===- ToolFilesTest.cpp - what vmoe-run and vmoe-bench write and allocate ===//
//
// Modules built with the writer and the test kernels, run through the real
// tool binaries: outputs go through a new temporary file and a rename (an
// existing X.npy.tmp, file or symlink, is left alone), an output naming an
// input is refused before any work, and a module whose tensors would take
// more bytes than a tool allocates gets a message, not std::bad_alloc.
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"
#include "ToolSupport.h"

#include <dirent.h>
#include <fstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace vmoe {
namespace test {
namespace {

/// A fresh directory for one test, removed with everything in it.
struct TempDir {
  std::string path;
  TempDir() {
    const char *dir = getenv("TMPDIR");
    std::string pattern =
        std::string(dir && *dir ? dir : "/tmp") + "/vmoe-tool-files-XXXXXX";
    path = mkdtemp(pattern.data()) ? pattern : "";
  }
  ~TempDir() {
    if (!path.empty())
      std::system(("rm -rf '" + path + "'").c_str());
  }
  std::string operator/(const std::string &name) const {
    return path + "/" + name;
  }
};

std::vector<std::string> listDir(const std::string &dir) {
  std::vector<std::string> names;
  if (DIR *d = opendir(dir.c_str())) {
    while (dirent *e = readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
        names.push_back(e->d_name);
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

void writeText(const std::string &path, const std::string &text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string readText(const std::string &path) {
  std::vector<uint8_t> bytes = readFileBytes(path);
  return std::string(bytes.begin(), bytes.end());
}

/// Runs `command` with stdout and stderr into `output`; returns the exit
/// code (-1 when it did not exit normally: a crash).
int runTool(const std::string &command, std::string *output) {
  std::string log = command + " > tool.log 2>&1";
  TempDir dir;
  int status = std::system(("cd '" + dir.path + "' && " + log).c_str());
  *output = readText(dir / "tool.log");
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// A module vmoe-run and vmoe-bench can feed: one f32[batch, width] input
/// copied to one f32[batch, width] output.
void writeCopyModule(const std::string &path, int64_t width) {
  ModuleWriter w;
  uint32_t exe = addTestExecutable(w);
  w.setBatch(2);
  w.addInput({"images", fb::DType::F32, {2, width}, 0});
  w.addOutput({"logits", fb::DType::F32, {2, width}, 0});
  w.setArena(0);
  KernelDesc copy;
  copy.name = "copy";
  copy.executable = exe;
  copy.entry = "vmoe_test_copy";
  copy.workgroupCount = {1, 1, 1};
  copy.bindingCount = 2;
  copy.writtenBindings = {false, true};
  uint64_t bytes = std::min<uint64_t>(2 * width * 4, 4096);
  w.addDispatch(
      {w.addKernel(copy),
       {BindingDesc::input(0, 0, bytes), BindingDesc::output(0, 0, bytes)},
       {}});
  std::vector<uint8_t> file = serialize(w);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char *>(file.data()), file.size());
}

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
