//===- RunOptions.h - vmoe-run's command line -------------------*- C++ -*-===//
//
// The options of vmoe-run, their parser and usage text (the convention of
// every vmoe tool: --flag=value or --flag value), and the module report of
// --info.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TOOLS_VMOE_RUN_RUNOPTIONS_H
#define VMOE_TOOLS_VMOE_RUN_RUNOPTIONS_H

#include "vmoe/runtime.h"

#include <cstdint>
#include <string>
#include <vector>

namespace vmoe::tools::run {

constexpr const char *kTool = "vmoe-run";

extern const char *const kUsage;

struct Options {
  std::string module, input, labels, classes;
  std::vector<std::string> outputs;    // --output, one per module output
  std::vector<std::string> imageFiles; // positional arguments after MODULE
  uint64_t seed = 0;
  double capacityFactor = 0.0;
  int bpr = -1;
  uint32_t numSelectedExperts = 0; // 0: the module's k
  uint32_t threads = 0;
  vmoe_device_t device = VMOE_DEVICE_CPU;
  uint32_t deviceOrdinal = 0;
  int cudaGraphs = -1;         // -1: the session's default
  uint32_t cudaGraphCache = 0; // 0: the session's default
  int repeat = 1;
  int top = 5;
  int64_t show = 8;
  bool quiet = false, info = false, profile = false;
  bool help = false, version = false;
  std::vector<std::string> trustedKeys;
  bool verifyWeights = true, copyModule = false;
  /// Run as one rank of an MPI job (also when mpirun's environment is
  /// seen); the longest wait for the other ranks, in seconds.
  bool mpi = false;
  uint32_t mpiTimeout = 300;
};

/// Returns 0 when parsed (or --help / --version seen), 2 on a usage error
/// (message printed).
int parseArgs(int argc, char **argv, Options &o);

/// "[2, 3]".
std::string shapeString(const int64_t *shape, uint32_t rank);

/// --info: what the module is, who compiled it, for which target, and what
/// it holds.
void printInfo(vmoe_module_t *module);

} // namespace vmoe::tools::run

#endif // VMOE_TOOLS_VMOE_RUN_RUNOPTIONS_H
