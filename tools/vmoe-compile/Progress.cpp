//===- Progress.cpp - what a long compile is doing, on a terminal ---------===//

#include "Progress.h"

#include "vmoe/readers/Memory.h"

#include <cstdio>
#include <unistd.h>

namespace vmoe::tools {

using Clock = std::chrono::steady_clock;

static double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

CompileProgress::CompileProgress(bool enabled)
    : on(enabled && isatty(STDERR_FILENO)), start(Clock::now()),
      phaseStart(start), lastShown(start) {}

CompileProgress::~CompileProgress() { finish(); }

void CompileProgress::show(const std::string &text) {
  if (!on)
    return;
  // \r and erase-to-end: one line, rewritten.
  std::fprintf(stderr, "\r\033[Kvmoe-compile: %s", text.c_str());
  std::fflush(stderr);
  open = true;
}

void CompileProgress::phase(const std::string &name) {
  phaseStart = Clock::now();
  char elapsed[32];
  std::snprintf(elapsed, sizeof(elapsed), " (%.0f s)",
                seconds(phaseStart - start));
  const char *what = name == "kernels"   ? "graph passes and kernel lowering"
                     : name == "codegen" ? "code generation (LLVM)"
                     : name == "weights" ? "writing the weights"
                                         : name.c_str();
  show(std::string(what) + elapsed);
}

void CompileProgress::weights(uint64_t bytesDone, uint64_t bytesTotal,
                              size_t segmentsDone, size_t segmentsTotal) {
  Clock::time_point now = Clock::now();
  // At most a few updates a second, and the last one.
  if (segmentsDone != segmentsTotal && seconds(now - lastShown) < 0.25)
    return;
  lastShown = now;
  std::string text = "weights " + std::to_string(segmentsDone) + "/" +
                     std::to_string(segmentsTotal) + " segments, " +
                     readers::formatBytes(bytesDone) + " of " +
                     readers::formatBytes(bytesTotal);
  double spent = seconds(now - phaseStart);
  if (bytesDone > 0 && bytesDone < bytesTotal && spent > 1.0) {
    char left[48];
    std::snprintf(left, sizeof(left), ", about %.0f s left",
                  spent * double(bytesTotal - bytesDone) / double(bytesDone));
    text += left;
  }
  show(text);
}

void CompileProgress::finish() {
  if (on && open)
    std::fputs("\r\033[K", stderr);
  open = false;
}

} // namespace vmoe::tools
