//===- ToolSupport.h - what the command-line tools share --------*- C++ -*-===//
//
// Error printing with the tools' exit codes (1: bad data or a failed run,
// 2: bad usage), number parsing for options, JSON string escaping, output
// files written through a temporary file, and caps on what a module asks.
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
