//===- ToolSupport.h - what the command-line tools share --------*- C++ -*-===//
//
// Error printing with the tools' exit codes (1: bad data or a failed run,
// 2: bad usage), the command-line convention of vmoe-run and vmoe-bench,
// --version, number parsing for options, JSON string escaping, output files
// written through a temporary file, and caps on what a module asks.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TOOLS_TOOLSUPPORT_H
#define VMOE_TOOLS_TOOLSUPPORT_H

#include <cstddef>
#include <string>
#include <vector>

namespace vmoe::tools {

/// Prints "TOOL: error: MESSAGE" on stderr. Returns 1, the exit code of a
/// run that failed on its inputs.
int fail(const char *tool, const std::string &message);

/// Prints "TOOL: error: MESSAGE" and then the usage text on stderr. Returns
/// 2, the exit code of bad usage.
int usageError(const char *tool, const std::string &message, const char *usage);

/// The command line of vmoe-run and vmoe-bench, in the convention of
/// vmoe-compile and vmoe-opt (LLVM's): "--flag=value" and "--flag value" are
/// the same, "--" ends the options, "-h" is "--help". Usage errors print
/// "TOOL: error: ..." and the usage, and return 2.
///
///   ArgParser args(kTool, kUsage, argc, argv);
///   while (args.next()) {
///     if (args.is("--input")) { const char *v = args.value(); ... }
///     else if (args.is("--quiet")) { if (!args.noValue()) return 2; ... }
///     else if (args.isOption()) return args.unknown();
///     else positional(args.arg());
///   }
class ArgParser {
public:
  ArgParser(const char *tool, const char *usage, int argc, char **argv)
      : tool(tool), usage(usage), argc(argc), argv(argv) {}

  /// Moves to the next argument; false after the last.
  bool next();
  /// The current argument, as given.
  const char *arg() const { return argv[index]; }
  /// Whether the current argument is the option `name` ("--input"), alone
  /// or with "=VALUE".
  bool is(const char *name) const;
  /// Whether it is an option (starts with '-', before any "--"); "-" alone
  /// is positional.
  bool isOption() const;
  /// The current option's value: after '=', or the next argument (which
  /// next() then skips). Null when there is none (usage error printed).
  const char *value();
  /// For an option that takes no value: false when "=VALUE" was given
  /// (usage error printed).
  bool noValue();
  /// The current option's name, without "=VALUE".
  std::string name() const;
  /// "unknown option ..." and the usage; returns 2.
  int unknown() const;
  /// "TOOL: error: MESSAGE" (an option's bad value); returns 2.
  int bad(const std::string &message) const;

private:
  const char *tool;
  const char *usage;
  int argc;
  char **argv;
  int index = 0;             // the current argument
  int valueIndex = 0;        // the last argument it used (its value's)
  bool optionsEnded = false; // after "--"
};

/// "TOOL VERSION (git REVISION)": the first line of every tool's --version
/// (printVersion in RuntimeHandles.h adds the runtime's).
std::string versionLine(const char *tool);

/// The whole of `s` as a number (strtod syntax).
bool parseDouble(const char *s, double &out);

/// The whole of `s` as a decimal integer in [min, max].
bool parseInt(const char *s, long long min, long long max, long long &out);

/// `s` for a JSON string literal: quotes and backslashes escaped, control
/// characters dropped.
std::string jsonEscape(const std::string &s);

/// Writes `size` bytes to `path` through a new temporary file next to it
/// (mkstemp: O_EXCL, so no existing file or symlink there is opened), then
/// renames it over `path` (which replaces a symlink at `path`, never writes
/// through it). On failure `path` is unchanged, the temporary file is gone,
/// and *error says why.
bool writeFileAtomically(const std::string &path, const void *data, size_t size,
                         std::string *error);

/// The lines of a text file of at most 16 MiB (class names), without their
/// "\n" or "\r\n"; a last line without a newline counts.
bool readLines(const std::string &path, std::vector<std::string> &lines,
               std::string *error);

/// Whether `a` and `b` name the same existing file (same device and inode,
/// whatever the names: links and "./x" included).
bool sameFile(const std::string &a, const std::string &b);

/// Refuses an output path that is one of `inputs`: "OPTION FILE is also an
/// input" in *error. Returns true when `output` is none of them.
bool checkOutputIsNoInput(const char *option, const std::string &output,
                          const std::vector<std::string> &inputs,
                          std::string *error);

/// The most bytes a tool allocates for one tensor it feeds or reads back.
/// Shapes come from the module file: a forged one must get a message, not
/// std::bad_alloc.
constexpr unsigned long long kMaxToolTensorBytes = 16ull << 30; // 16 GiB

/// Checks a tensor's byte size against kMaxToolTensorBytes; *error names it.
bool checkToolTensorBytes(const char *what, unsigned index,
                          unsigned long long bytes, std::string *error);

} // namespace vmoe::tools

#endif // VMOE_TOOLS_TOOLSUPPORT_H
