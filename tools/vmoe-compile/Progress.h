//===- Progress.h - what a long compile is doing, on a terminal -*- C++ -*-===//
//
// vmoe-compile's progress line on stderr: the phase, then while the weights
// stream into the module, the tensors (module segments) and bytes written
// and the time left. Quiet unless stderr is a terminal, and with --quiet.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TOOLS_VMOE_COMPILE_PROGRESS_H
#define VMOE_TOOLS_VMOE_COMPILE_PROGRESS_H

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace vmoe::tools {

class CompileProgress {
public:
  /// Shown when `enabled` (not --quiet) and stderr is a terminal.
  explicit CompileProgress(bool enabled);
  ~CompileProgress();

  /// A phase starts: "kernels", "codegen", "weights".
  void phase(const std::string &name);
  /// Weights written so far (the writer's WriteProgress).
  void weights(uint64_t bytesDone, uint64_t bytesTotal, size_t segmentsDone,
               size_t segmentsTotal);
  /// Ends the line (before the summary or an error).
  void finish();

private:
  void show(const std::string &text);
  bool on = false, open = false;
  std::chrono::steady_clock::time_point start, phaseStart, lastShown;
};

} // namespace vmoe::tools

#endif // VMOE_TOOLS_VMOE_COMPILE_PROGRESS_H
