//===- vmoe-bench.cpp - benchmark compiled vmoe modules -------------------===//
//
// Warm-up, repeated timed runs, median and spread of latency, images/s,
// achieved GFLOP/s (from the model's FLOP count at the capacity each run
// actually used), per-kernel times, peak memory; over modules (batch sizes),
// thread counts, capacity factors and BPR on/off. JSON output for scripts.
// Uses only the runtime's C API and the config reader.
//
//===----------------------------------------------------------------------===//

#include "vmoe/readers/ModelConfig.h"
#include "vmoe/readers/Npz.h"
#include "vmoe/runtime.h"

#include "../common/RuntimeHandles.h"
#include "../common/ToolSupport.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <sys/resource.h>
#include <vector>

namespace {

constexpr const char *kTool = "vmoe-bench";

const char *kUsage =
    "usage: vmoe-bench MODULE... [options]\n"
    "  --threads N[,N...]         thread counts (default: one per CPU)\n"
    "  --capacity-factor X[,X...] capacity factors (default: the module's)\n"
    "  --bpr on|off|both          Batch Prioritized Routing (default: the "
    "module's)\n"
    "  --warmup N                 untimed runs first (default 3)\n"
    "  --repeat N                 timed runs (default 20)\n"
    "  --profile                  per-kernel times\n"
    "  --input FILE               a float32 .npy holding exactly the first "
    "input\n"
    "                             (default: deterministic random values in "
    "[-1, 1])\n"
    "  --json FILE                write the results as JSON\n"
    "The batch size is the module's: compile one module per batch size.\n";

int fail(const std::string &message) {
  return vmoe::tools::fail(kTool, message);
}

struct Options {
  std::vector<std::string> modules;
  std::vector<double> threadList, cfList;
  std::vector<int> bprList = {-1};
  int warmup = 3, repeat = 20;
  bool profile = false, help = false;
  std::string jsonPath, inputPath;
};

bool splitNumbers(const char *s, std::vector<double> &out) {
  out.clear();
  std::string text(s);
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma - start);
    char *end = nullptr;
    errno = 0;
    double v = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || errno != 0 || !std::isfinite(v) ||
        v <= 0)
      return false;
    out.push_back(v);
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  return !out.empty();
}

/// Multiply-adds count 2 FLOPs; normalisations, softmax and GELU are left
/// out. The MoE experts count only the assignments the run kept.
struct FlopModel {
  bool known = false;
  double dense = 0;               // everything but the experts
  double perExpertAssignment = 0; // one kept token through one expert MLP
};

FlopModel flopModel(const vmoe::readers::ModelConfig &c, int64_t batch) {
  FlopModel f;
  double b = batch, d = c.hiddenSize, m = c.mlpDim, t = c.tokensPerImage();
  double patches = (c.imageHeight / c.patchSize) * (c.imageWidth / c.patchSize);
  double dh = d / c.numHeads;
  f.dense += b * patches * c.patchSize * c.patchSize * c.channels * d * 2;
  for (int64_t l = 0; l < c.numLayers; ++l) {
    f.dense += b * t * d * 3 * d * 2;               // q, k, v
    f.dense += b * c.numHeads * t * t * dh * 2 * 2; // q k^T and p v
    f.dense += b * t * d * d * 2;                   // out
    bool moe = std::count(c.moeLayers.begin(), c.moeLayers.end(), l) > 0;
    if (moe)
      f.dense += b * t * d * c.numExperts * 2; // router
    else
      f.dense += b * t * d * m * 2 * 2;
  }
  double features = d;
  if (c.representationSize) {
    f.dense += b * d * *c.representationSize * 2;
    features = *c.representationSize;
  }
  f.dense += b * features * c.numClasses * 2;
  f.perExpertAssignment = d * m * 2 * 2;
  f.known = true;
  return f;
}

struct Result {
  std::string module;
  int64_t batch = 0;
  uint32_t threads = 0;
  double capacityFactor = 0;
  int bpr = 0;
  double medianMs = 0, p10Ms = 0, p90Ms = 0;
  double imagesPerSecond = 0, gflops = 0, keptShare = 0;
  // Over all MoE layers.
  uint64_t assignments = 0, assignmentsKept = 0;
  std::vector<std::pair<std::string, double>> kernels; // mean ms per call
};

/// A whole .npy file (float32, or any float type the weight readers take).
bool readInput(const std::string &path, vmoe::readers::Tensor &out,
               std::string *error) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) {
    *error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0)
    bytes.insert(bytes.end(), chunk, chunk + n);
  std::fclose(f);
  return vmoe::readers::readNpy({bytes.data(), bytes.size()}, path, out, error);
}

/// Returns 0 when parsed (or --help seen), 1 for a bad option value, 2 for
/// bad usage (message printed).
int parseArgs(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char * {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    if (a == "--help" || a == "-h") {
      o.help = true;
      return 0;
    } else if (a == "--threads") {
      const char *v = value();
      if (!v || !splitNumbers(v, o.threadList))
        return fail("--threads takes positive integers, comma separated");
    } else if (a == "--capacity-factor") {
      const char *v = value();
      if (!v || !splitNumbers(v, o.cfList))
        return fail(
            "--capacity-factor takes positive numbers, comma separated");
    } else if (a == "--bpr") {
      const char *v = value();
      std::string s = v ? v : "";
      if (s == "on")
        o.bprList = {1};
      else if (s == "off")
        o.bprList = {0};
      else if (s == "both")
        o.bprList = {1, 0};
      else
        return fail("--bpr takes on, off or both");
    } else if (a == "--warmup" || a == "--repeat") {
      const char *v = value();
      char *end = nullptr;
      long n = v ? std::strtol(v, &end, 10) : -1;
      if (!v || *end != '\0' || n < (a == "--repeat" ? 1 : 0) || n > 100000)
        return fail(a + " takes a count");
      (a == "--warmup" ? o.warmup : o.repeat) = static_cast<int>(n);
    } else if (a == "--profile") {
      o.profile = true;
    } else if (a == "--input") {
      const char *v = value();
      if (!v)
        return fail("--input takes a .npy file");
      o.inputPath = v;
    } else if (a == "--json") {
      const char *v = value();
      if (!v)
        return fail("--json takes a file");
      o.jsonPath = v;
    } else if (!a.empty() && a[0] == '-') {
      return vmoe::tools::usageError(kTool, "unknown option " + a, kUsage);
    } else {
      o.modules.push_back(a);
    }
  }
  if (o.modules.empty())
    return vmoe::tools::usageError(kTool, "no module given", kUsage);
  if (o.threadList.empty())
    o.threadList = {0};
  if (o.cfList.empty())
    o.cfList = {0};
  return 0;
}

/// The FLOP model of the config stored in the module, if there is one.
FlopModel moduleFlops(const vmoe_module_info_t &info) {
  FlopModel flops;
  if (info.config_json_size > 0) {
    vmoe::readers::ModelConfig config;
    std::string error;
    if (vmoe::readers::parseModelConfig(
            std::string_view(info.config_json, info.config_json_size),
            "module config", config, &error))
      flops = flopModel(config, info.max_batch);
  }
  return flops;
}

/// Input and output buffers of one call at the compiled batch.
struct Buffers {
  std::vector<std::vector<float>> inputs, outputs;
  std::vector<vmoe_tensor_t> in, out;
};

/// Inputs: deterministic random values in [-1, 1], like an image batch, or
/// the --input file as the first input. Returns 0, or 1 (message printed).
int makeBuffers(vmoe_module_t *module, const vmoe_module_info_t &info,
                const std::string &inputPath, Buffers &b) {
  vmoe_message_t msg;
  b.inputs.resize(info.input_count);
  b.outputs.resize(info.output_count);
  b.in.resize(info.input_count);
  b.out.resize(info.output_count);
  std::mt19937_64 rng(0);
  std::uniform_real_distribution<float> dist(-1, 1);
  for (uint32_t i = 0; i < info.input_count; ++i) {
    vmoe_tensor_info_t t;
    vmoe_module_input_info(module, i, &t, &msg);
    std::string error;
    if (!vmoe::tools::checkToolTensorBytes("input", i, t.size_bytes, &error))
      return fail(error);
    std::vector<float> &input = b.inputs[i];
    input.resize(t.size_bytes / 4);
    for (float &v : input)
      v = dist(rng);
    if (i == 0 && !inputPath.empty()) {
      std::string error;
      vmoe::readers::Tensor array;
      if (!readInput(inputPath, array, &error))
        return fail(error);
      if (array.data.size() != input.size())
        return fail(inputPath + " holds " + std::to_string(array.data.size()) +
                    " values; the module's first input takes " +
                    std::to_string(input.size()));
      std::copy(array.data.begin(), array.data.end(), input.begin());
    }
    b.in[i] = {t.dtype, t.rank, t.shape, input.data(), t.size_bytes};
  }
  for (uint32_t i = 0; i < info.output_count; ++i) {
    vmoe_tensor_info_t t;
    vmoe_module_output_info(module, i, &t, &msg);
    std::string error;
    if (!vmoe::tools::checkToolTensorBytes("output", i, t.size_bytes, &error))
      return fail(error);
    b.outputs[i].resize(t.size_bytes / 4);
    b.out[i] = {t.dtype, t.rank, t.shape, b.outputs[i].data(), t.size_bytes};
  }
  return 0;
}

/// Warm-up runs, then timed runs: their latencies in ms, sorted. Returns 0,
/// or 1 when a run fails (message printed).
int timeRuns(vmoe_session_t *session, Buffers &b,
             const vmoe_run_options_t &ropts, const Options &o,
             std::vector<double> &ms) {
  vmoe_message_t msg;
  for (int r = 0; r < o.warmup + o.repeat; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    vmoe_status_t st =
        vmoe_session_run(session, b.in.data(), b.in.size(), b.out.data(),
                         b.out.size(), &ropts, &msg);
    auto t1 = std::chrono::steady_clock::now();
    if (st)
      return fail(vmoe::tools::statusMessage(st, msg));
    if (r >= o.warmup)
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return 0;
}

/// Routing of the last run over all MoE layers, and the FLOP rate it gives.
void addRouting(vmoe_session_t *session, const vmoe_module_info_t &info,
                const FlopModel &flops, Result &res) {
  vmoe_message_t msg;
  uint64_t kept = 0, assigned = 0;
  for (uint32_t l = 0; l < info.moe_layer_count; ++l) {
    vmoe_routing_stats_t s;
    if (vmoe_session_routing_stats(session, l, &s, &msg) != VMOE_STATUS_OK)
      continue;
    kept += s.assignments_kept;
    assigned += s.assignments;
    res.capacityFactor = s.capacity_factor;
    res.bpr = s.bpr;
  }
  res.keptShare = assigned ? double(kept) / assigned : 1.0;
  res.assignments = assigned;
  res.assignmentsKept = kept;
  if (flops.known)
    res.gflops = (flops.dense + kept * flops.perExpertAssignment) /
                 (res.medianMs / 1e3) / 1e9;
}

void printResult(const Result &res, bool profile) {
  const std::string &path = res.module;
  std::string name = path.size() > 28 ? path.substr(path.size() - 28) : path;
  std::printf("%-28s %5" PRId64 " %7u %6.3g %4s %10.3f %10.3f %10.3f "
              "%9.1f %8.1f %6.1f%%\n",
              name.c_str(), res.batch, res.threads, res.capacityFactor,
              res.bpr ? "on" : "off", res.medianMs, res.p10Ms, res.p90Ms,
              res.imagesPerSecond, res.gflops, 100 * res.keptShare);
  if (profile) {
    std::vector<std::pair<std::string, double>> sorted = res.kernels;
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](auto &x, auto &y) { return x.second > y.second; });
    for (size_t k = 0; k < sorted.size() && k < 12; ++k)
      std::printf("    %-44s %9.3f ms\n", sorted[k].first.c_str(),
                  sorted[k].second);
  }
}

/// One module at one setting: a session, its runs, the result printed.
/// Returns 0, or 1 (message printed).
int benchmark(vmoe_module_t *module, const std::string &path,
              const vmoe_module_info_t &info, const FlopModel &flops,
              Buffers &buffers, const Options &o, double threads, double cf,
              int bpr, Result &res) {
  vmoe_session_options_t sopts;
  vmoe_session_options_init(&sopts);
  sopts.thread_count = static_cast<uint32_t>(threads);
  sopts.profile = o.profile;
  std::string error;
  vmoe::tools::SessionHandle session =
      vmoe::tools::createSession(module, sopts, error);
  if (!session)
    return fail(error);
  vmoe_run_options_t ropts = {cf, bpr};
  std::vector<double> ms;
  if (int rc = timeRuns(session.get(), buffers, ropts, o, ms))
    return rc;
  res.module = path;
  res.batch = info.max_batch;
  res.threads = vmoe_session_thread_count(session.get());
  res.medianMs = ms[ms.size() / 2];
  res.p10Ms = ms[ms.size() / 10];
  res.p90Ms = ms[std::min(ms.size() - 1, ms.size() * 9 / 10)];
  res.imagesPerSecond = res.batch / (res.medianMs / 1e3);
  addRouting(session.get(), info, flops, res);
  vmoe::tools::DispatchProfile profile;
  if (o.profile &&
      vmoe::tools::readProfile(session.get(), info.dispatch_count, profile))
    for (uint32_t d = 0; d < info.dispatch_count; ++d)
      res.kernels.push_back(
          {vmoe_module_dispatch_kernel(module, d), profile.meanMs(d)});
  session.reset();
  printResult(res, o.profile);
  return 0;
}

/// Every thread count x capacity factor x BPR setting of one module.
int benchmarkModule(const std::string &path, const Options &o,
                    std::vector<Result> &results) {
  std::string error;
  vmoe::tools::ModuleHandle module = vmoe::tools::loadModule(path, error);
  if (!module)
    return fail(path + ": " + error);
  vmoe_module_info_t info;
  vmoe_module_info(module.get(), &info);
  FlopModel flops = moduleFlops(info);
  Buffers buffers;
  if (int rc = makeBuffers(module.get(), info, o.inputPath, buffers))
    return rc;
  for (double threads : o.threadList)
    for (double cf : o.cfList)
      for (int bpr : o.bprList) {
        Result res;
        if (int rc = benchmark(module.get(), path, info, flops, buffers, o,
                               threads, cf, bpr, res))
          return rc;
        results.push_back(std::move(res));
      }
  return 0;
}

int writeJson(const std::string &path, double peakMb,
              const std::vector<Result> &results) {
  // Formatted in memory, then written through a new temporary file.
  char *text = nullptr;
  size_t textSize = 0;
  FILE *f = open_memstream(&text, &textSize);
  if (!f)
    return fail("cannot format the JSON results: " +
                std::string(std::strerror(errno)));
  std::fprintf(f, "{\"peak_rss_mb\": %.1f, \"results\": [\n", peakMb);
  for (size_t i = 0; i < results.size(); ++i) {
    const Result &r = results[i];
    std::fprintf(f,
                 "  {\"module\": \"%s\", \"batch\": %" PRId64
                 ", \"threads\": %u, \"capacity_factor\": %.6g, \"bpr\": %d, "
                 "\"median_ms\": %.6f, \"p10_ms\": %.6f, \"p90_ms\": %.6f, "
                 "\"images_per_second\": %.3f, \"gflops\": %.3f, "
                 "\"assignments_kept_share\": %.6f, \"assignments\": %" PRIu64
                 ", \"assignments_kept\": %" PRIu64 ", \"kernels\": [",
                 vmoe::tools::jsonEscape(r.module).c_str(), r.batch, r.threads,
                 r.capacityFactor, r.bpr, r.medianMs, r.p10Ms, r.p90Ms,
                 r.imagesPerSecond, r.gflops, r.keptShare, r.assignments,
                 r.assignmentsKept);
    for (size_t k = 0; k < r.kernels.size(); ++k)
      std::fprintf(f, "%s{\"name\": \"%s\", \"ms\": %.6f}", k ? ", " : "",
                   vmoe::tools::jsonEscape(r.kernels[k].first).c_str(),
                   r.kernels[k].second);
    std::fprintf(f, "]}%s\n", i + 1 < results.size() ? "," : "");
  }
  std::fprintf(f, "]}\n");
  bool formatted = std::fclose(f) == 0;
  std::string error;
  bool written = formatted &&
                 vmoe::tools::writeFileAtomically(path, text, textSize, &error);
  std::free(text);
  if (!formatted)
    return fail("cannot format the JSON results");
  return written ? 0 : fail(error);
}

} // namespace

int benchMain(int argc, char **argv) {
  Options o;
  if (int rc = parseArgs(argc, argv, o))
    return rc;
  if (o.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!o.jsonPath.empty()) {
    std::vector<std::string> inputs = o.modules;
    inputs.push_back(o.inputPath);
    std::string error;
    if (!vmoe::tools::checkOutputIsNoInput("--json", o.jsonPath, inputs,
                                           &error))
      return fail(error);
  }
  std::vector<Result> results;
  std::printf("%-28s %5s %7s %6s %4s %10s %10s %10s %9s %8s %7s\n", "module",
              "batch", "threads", "cf", "bpr", "median ms", "p10 ms", "p90 ms",
              "images/s", "GFLOP/s", "kept");
  for (const std::string &path : o.modules)
    if (int rc = benchmarkModule(path, o, results))
      return rc;
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  double peakMb = usage.ru_maxrss / 1024.0;
  std::printf("peak resident memory: %.1f MB\n", peakMb);
  if (!o.jsonPath.empty())
    return writeJson(o.jsonPath, peakMb, results);
  return 0;
}

int main(int argc, char **argv) {
  try {
    return benchMain(argc, argv);
  } catch (const std::bad_alloc &) {
    // Buffers sized from a module (below the tensor cap) or an input file.
    return fail("out of memory");
  }
}
