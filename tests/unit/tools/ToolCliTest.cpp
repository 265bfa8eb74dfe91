//===- ToolCliTest.cpp - the command line of vmoe-run and vmoe-bench ------===//
//
// The shared parser (--flag=value and --flag value, "--", switches that take
// no value) and, through the real tool binaries on modules made with the
// writer: --info of a module without a recorded compiler, vmoe-bench's
// batches and its module column, vmoe-run's repeated --output.
//
//===----------------------------------------------------------------------===//

#include "ToolSupport.h"
#include "ToolTestSupport.h"

#include <initializer_list>
#include <sys/stat.h>

namespace vmoe {
namespace test {
namespace {

/// Parses `args` (after a program name) into "name=value" for options that
/// take a value (those named in `valued`), "name" for switches and "+arg"
/// for positional arguments; "error" and the rest empty on a usage error.
std::vector<std::string> parse(std::initializer_list<const char *> args,
                               std::initializer_list<const char *> valued) {
  std::vector<std::string> storage = {"tool"};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char *> argv;
  for (std::string &s : storage)
    argv.push_back(s.data());
  tools::ArgParser parser("tool", "", int(argv.size()), argv.data());
  std::vector<std::string> out;
  while (parser.next()) {
    bool takesValue = false;
    for (const char *name : valued)
      takesValue = takesValue || parser.is(name);
    if (takesValue) {
      const char *v = parser.value();
      if (!v)
        return {"error"};
      out.push_back(parser.name() + "=" + v);
    } else if (parser.isOption()) {
      if (!parser.noValue())
        return {"error"};
      out.push_back(parser.name());
    } else {
      out.push_back(std::string("+") + parser.arg());
    }
  }
  return out;
}

using Strings = std::vector<std::string>;

TEST(ToolCli, BothSpellingsOfAValue) {
  EXPECT_EQ(parse({"m", "--input", "a.npy", "--input=b.npy"}, {"--input"}),
            (Strings{"+m", "--input=a.npy", "--input=b.npy"}));
  // The value after '=' is taken whole, '=' and all; the next argument is
  // a value even when it starts with '-'.
  EXPECT_EQ(parse({"--input=x=y", "--input", "-3"}, {"--input"}),
            (Strings{"--input=x=y", "--input=-3"}));
  EXPECT_EQ(parse({"--input="}, {"--input"}), (Strings{"--input="}));
}

TEST(ToolCli, NamesMatchWhole) {
  // --input is not --inputs, nor a prefix of it.
  EXPECT_EQ(parse({"--inputs", "--in"}, {"--input"}),
            (Strings{"--inputs", "--in"}));
}

TEST(ToolCli, SwitchesPositionalsAndDoubleDash) {
  EXPECT_EQ(parse({"-h", "--quiet", "-", "x"}, {}),
            (Strings{"-h", "--quiet", "+-", "+x"}));
  EXPECT_EQ(parse({"--quiet", "--", "--quiet", "-x"}, {}),
            (Strings{"--quiet", "+--quiet", "+-x"}));
}

TEST(ToolCli, UsageErrors) {
  EXPECT_EQ(parse({"--input"}, {"--input"}), (Strings{"error"}));
  EXPECT_EQ(parse({"--quiet=1"}, {}), (Strings{"error"}));
}

TEST(ToolCli, HelpMatchesDashH) {
  std::vector<std::string> storage = {"tool", "-h"};
  char *argv[] = {storage[0].data(), storage[1].data()};
  tools::ArgParser parser("tool", "", 2, argv);
  ASSERT_TRUE(parser.next());
  EXPECT_TRUE(parser.is("--help"));
  EXPECT_FALSE(parser.is("--version"));
}

TEST(ToolCli, InfoOfAModuleWithoutACompiler) {
  TempDir dir;
  writer::MetadataDesc old = {"old", "", {}, "vmoe-compile", "", ""};
  writeCopyModule(dir / "old.vmoe", 4, &old);
  writeCopyModule(dir / "new.vmoe", 4);
  std::string output;
  ASSERT_EQ(runTool(std::string(VMOE_RUN_PATH) + " '" + (dir / "old.vmoe") +
                        "' --info",
                    &output),
            0)
      << output;
  EXPECT_NE(output.find("compiled by vmoe-compile (no version recorded: "
                        "written before vmoe 0.6.0)"),
            std::string::npos)
      << output;
  // And it runs.
  EXPECT_EQ(runTool(std::string(VMOE_RUN_PATH) + " '" + (dir / "old.vmoe") +
                        "' --quiet",
                    &output),
            0)
      << output;
  ASSERT_EQ(runTool(std::string(VMOE_RUN_PATH) + " '" + (dir / "new.vmoe") +
                        "' --info",
                    &output),
            0)
      << output;
  EXPECT_NE(output.find(std::string("compiled by ? ") + writer::buildVersion() +
                        " (git " + writer::buildRevision() + ")"),
            std::string::npos)
      << output;
}

TEST(ToolCli, RunWritesNoMoreOutputsThanTheModuleHas) {
  TempDir dir;
  writeCopyModule(dir / "m.vmoe", 4);
  std::string output;
  EXPECT_EQ(runTool(std::string(VMOE_RUN_PATH) + " '" + (dir / "m.vmoe") +
                        "' --output '" + (dir / "a.npy") + "' --output=@'" +
                        (dir / "b.npy") + "'",
                    &output),
            1);
  EXPECT_NE(output.find("2 --output files for 1 module output(s)"),
            std::string::npos)
      << output;
  EXPECT_EQ(listDir(dir.path), (std::vector<std::string>{"m.vmoe"}));
}

TEST(ToolCli, BenchRunsEveryBatchTheModuleRuns) {
#ifdef VMOE_BENCH_PATH
  TempDir dir;
  // A long path: the module column is as wide as it, never cut.
  std::string sub = dir / std::string(40, 'd');
  ASSERT_EQ(mkdir(sub.c_str(), 0700), 0);
  std::string module = sub + "/m.vmoe";
  writeCopyModule(module, 4);
  std::string output;
  ASSERT_EQ(runTool(std::string(VMOE_BENCH_PATH) + " '" + module +
                        "' --batch=1,2 --threads 1 --warmup 0 --repeat 1",
                    &output),
            0)
      << output;
  EXPECT_NE(output.find(module + "     1       1"), std::string::npos)
      << output;
  EXPECT_NE(output.find(module + "     2       1"), std::string::npos)
      << output;
  EXPECT_EQ(output.find("module" + std::string(module.size() - 6, ' ') +
                        " batch threads"),
            0u)
      << output;
  EXPECT_EQ(runTool(std::string(VMOE_BENCH_PATH) + " '" + module +
                        "' --batch 3 --repeat 1",
                    &output),
            1);
  EXPECT_NE(output.find("runs batches of 1 to 2 in steps of 1; --batch 3 "
                        "is not one"),
            std::string::npos)
      << output;
  EXPECT_EQ(
      runTool(std::string(VMOE_BENCH_PATH) + " '" + module + "' --batch 1.5",
              &output),
      2);
#else
  GTEST_SKIP() << "no vmoe-bench in this build";
#endif
}

} // namespace
} // namespace test
} // namespace vmoe
