//===- ToolTestSupport.h - running the tools in tests -----------*- C++ -*-===//
//
// What the tests of vmoe-run and vmoe-bench share: a temporary directory, a
// tool run with its output captured, and a module the tools can feed (made
// with the writer and the test kernels).
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TESTS_UNIT_TOOLS_TOOLTESTSUPPORT_H
#define VMOE_TESTS_UNIT_TOOLS_TOOLTESTSUPPORT_H

#include "TestSupport.h"

#include <algorithm>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <string>
#include <sys/wait.h>
#include <vector>

namespace vmoe {
namespace test {

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

inline std::vector<std::string> listDir(const std::string &dir) {
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

inline void writeText(const std::string &path, const std::string &text) {
  std::ofstream(path, std::ios::binary) << text;
}

inline std::string readText(const std::string &path) {
  std::vector<uint8_t> bytes = readFileBytes(path);
  return std::string(bytes.begin(), bytes.end());
}

/// Runs `command` with stdout and stderr into `output`; returns the exit
/// code (-1 when it did not exit normally: a crash).
inline int runTool(const std::string &command, std::string *output) {
  std::string log = command + " > tool.log 2>&1";
  TempDir dir;
  int status = std::system(("cd '" + dir.path + "' && " + log).c_str());
  *output = readText(dir / "tool.log");
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// A module vmoe-run and vmoe-bench can feed: one f32[batch, width] input
/// copied to one f32[batch, width] output, with `metadata` if given.
inline void writeCopyModule(const std::string &path, int64_t width,
                            const writer::MetadataDesc *metadata = nullptr) {
  ModuleWriter w;
  if (metadata)
    w.setMetadata(*metadata);
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

} // namespace test
} // namespace vmoe

#endif // VMOE_TESTS_UNIT_TOOLS_TOOLTESTSUPPORT_H
