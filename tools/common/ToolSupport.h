//===- ToolSupport.h - what the command-line tools share --------*- C++ -*-===//
//
// Error printing with the tools' exit codes (1: bad data or a failed run,
// 2: bad usage), number parsing for options, and JSON string escaping.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TOOLS_TOOLSUPPORT_H
#define VMOE_TOOLS_TOOLSUPPORT_H

#include <string>

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

} // namespace vmoe::tools

#endif // VMOE_TOOLS_TOOLSUPPORT_H
