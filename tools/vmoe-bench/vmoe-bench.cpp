//===- vmoe-bench.cpp - benchmark compiled vmoe modules -------------------===//
//
// Warm-up, repeated timed runs, median and spread of latency, images/s,
// achieved GFLOP/s (from the model's FLOP count at the capacity each run
// actually used), per-kernel times, peak memory; over modules, batch sizes
// (any the module runs), thread counts, capacity factors and BPR on/off.
// JSON output for scripts.
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
    "Options take their value as --flag=VALUE or --flag VALUE.\n"
    "  --batch N[,N...]           batch sizes (default: the module's compiled\n"
    "                             batch); a module runs any multiple of its\n"
    "                             batch step up to its compiled batch\n"
    "                             (vmoe-run --info shows both)\n"
    "  --threads N[,N...]         thread counts (default: one per CPU)\n"
    "  --capacity-factor X[,X...] capacity factors (default: the module's)\n"
    "  --bpr on|off|both          Batch Prioritized Routing (default: the\n"
    "                             module's)\n"
    "  --warmup N                 untimed runs first (default 3)\n"
    "  --repeat N                 timed runs (default 20)\n"
    "  --profile                  per-kernel times\n"
    "  --input FILE               a float32 .npy holding exactly the first\n"
    "                             input at the compiled batch (default:\n"
    "                             deterministic random values in [-1, 1]);\n"
    "                             --input=@FILE is the same; a smaller batch\n"
    "                             runs its first images\n"
    "  --json FILE                write the results as JSON\n"
    "  --version                  print the versions of vmoe-bench and the\n"
    "                             runtime\n"
    "  --help                     print this text\n";

int fail(const std::string &message) {
  return vmoe::tools::fail(kTool, message);
}

struct Options {
  std::vector<std::string> modules;
  std::vector<double> batchList, threadList, cfList;
  std::vector<int> bprList = {-1};
  int warmup = 3, repeat = 20;
  bool profile = false, help = false, version = false;
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

/// Whether `v` is a comma-separated list of positive integers (as doubles).
bool splitCounts(const char *v, std::vector<double> &out) {
  if (!splitNumbers(v, out))
    return false;
  for (double n : out)
    if (n != std::floor(n) || n > 1e9)
      return false;
  return true;
}

/// Applies the option that takes value `v`. Returns 0, 2 for a bad value
/// (message printed), or -1 when `args` is no such option.
int parseValueOption(vmoe::tools::ArgParser &args, const char *v, Options &o) {
  if (args.is("--batch")) {
    if (!splitCounts(v, o.batchList))
      return args.bad("--batch takes positive integers, comma separated");
  } else if (args.is("--threads")) {
    if (!splitCounts(v, o.threadList))
      return args.bad("--threads takes positive integers, comma separated");
  } else if (args.is("--capacity-factor")) {
    if (!splitNumbers(v, o.cfList))
      return args.bad(
          "--capacity-factor takes positive numbers, comma separated");
  } else if (args.is("--bpr")) {
    std::string s = v;
    if (s == "on")
      o.bprList = {1};
    else if (s == "off")
      o.bprList = {0};
    else if (s == "both")
      o.bprList = {1, 0};
    else
      return args.bad("--bpr takes on, off or both");
  } else if (args.is("--warmup") || args.is("--repeat")) {
    bool repeat = args.is("--repeat");
    long long n;
    if (!vmoe::tools::parseInt(v, repeat ? 1 : 0, 100000, n))
      return args.bad(args.name() + " takes a count");
    (repeat ? o.repeat : o.warmup) = static_cast<int>(n);
  } else if (args.is("--input")) {
    o.inputPath = v[0] == '@' ? v + 1 : v;
  } else if (args.is("--json")) {
    o.jsonPath = v;
  } else {
    return -1;
  }
  return 0;
}

/// Returns 0 when parsed (or --help / --version seen), 2 for bad usage
/// (message printed).
int parseArgs(int argc, char **argv, Options &o) {
  vmoe::tools::ArgParser args(kTool, kUsage, argc, argv);
  while (args.next()) {
    bool *flag = args.is("--help")      ? &o.help
                 : args.is("--version") ? &o.version
                 : args.is("--profile") ? &o.profile
                                        : nullptr;
    if (flag) {
      if (!args.noValue())
        return 2;
      *flag = true;
      if (o.help || o.version)
        return 0;
      continue;
    }
    bool takesValue = false;
    for (const char *name :
         {"--batch", "--threads", "--capacity-factor", "--bpr", "--warmup",
          "--repeat", "--input", "--json"})
      takesValue = takesValue || args.is(name);
    if (takesValue) {
      const char *v = args.value();
      if (!v)
        return 2;
      if (int rc = parseValueOption(args, v, o))
        return rc;
    } else if (args.isOption()) {
      return args.unknown();
    } else {
      o.modules.push_back(args.arg());
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

/// The model config stored in the module, for FLOP counts; false when
/// there is none.
bool moduleConfig(const vmoe_module_info_t &info,
                  vmoe::readers::ModelConfig &config) {
  std::string error;
  return info.config_json_size > 0 &&
         vmoe::readers::parseModelConfig(
             std::string_view(info.config_json, info.config_json_size),
             "module config", config, &error);
}

/// Input and output buffers at the compiled batch, and the tensors of a call
/// at the batch setBatch chose.
struct Buffers {
  int64_t maxBatch = 1;
  std::vector<vmoe_tensor_info_t> inInfo, outInfo;
  std::vector<std::vector<float>> inputs, outputs;
  std::vector<std::vector<int64_t>> inShapes, outShapes;
  std::vector<vmoe_tensor_t> in, out;
};

/// Points the call's tensors at the first `batch` images of the buffers.
void setBatch(Buffers &b, int64_t batch) {
  auto set = [&](const vmoe_tensor_info_t &t, std::vector<float> &data,
                 std::vector<int64_t> &shape, vmoe_tensor_t &tensor) {
    shape.assign(t.shape, t.shape + t.rank);
    uint64_t bytes = t.size_bytes;
    if (t.batch_dim >= 0) {
      shape[t.batch_dim] = batch;
      bytes = t.size_bytes / b.maxBatch * batch;
    }
    tensor = {t.dtype, t.rank, shape.data(), data.data(), bytes};
  };
  for (size_t i = 0; i < b.in.size(); ++i)
    set(b.inInfo[i], b.inputs[i], b.inShapes[i], b.in[i]);
  for (size_t i = 0; i < b.out.size(); ++i)
    set(b.outInfo[i], b.outputs[i], b.outShapes[i], b.out[i]);
}

/// Inputs: deterministic random values in [-1, 1], like an image batch, or
/// the --input file as the first input. Returns 0, or 1 (message printed).
int makeBuffers(vmoe_module_t *module, const vmoe_module_info_t &info,
                const std::string &inputPath, Buffers &b) {
  vmoe_message_t msg;
  b.maxBatch = std::max<int64_t>(info.max_batch, 1);
  b.inInfo.resize(info.input_count);
  b.outInfo.resize(info.output_count);
  b.inputs.resize(info.input_count);
  b.outputs.resize(info.output_count);
  b.inShapes.resize(info.input_count);
  b.outShapes.resize(info.output_count);
  b.in.resize(info.input_count);
  b.out.resize(info.output_count);
  std::mt19937_64 rng(0);
  std::uniform_real_distribution<float> dist(-1, 1);
  std::string error;
  for (uint32_t i = 0; i < info.input_count; ++i) {
    vmoe_tensor_info_t &t = b.inInfo[i];
    vmoe_module_input_info(module, i, &t, &msg);
    if (!vmoe::tools::checkToolTensorBytes("input", i, t.size_bytes, &error))
      return fail(error);
    std::vector<float> &input = b.inputs[i];
    input.resize(t.size_bytes / 4);
    for (float &v : input)
      v = dist(rng);
    if (i == 0 && !inputPath.empty()) {
      vmoe::readers::Tensor array;
      if (!readInput(inputPath, array, &error))
        return fail(error);
      if (array.data.size() != input.size())
        return fail(inputPath + " holds " + std::to_string(array.data.size()) +
                    " values; the module's first input takes " +
                    std::to_string(input.size()));
      std::copy(array.data.begin(), array.data.end(), input.begin());
    }
  }
  for (uint32_t i = 0; i < info.output_count; ++i) {
    vmoe_tensor_info_t &t = b.outInfo[i];
    vmoe_module_output_info(module, i, &t, &msg);
    if (!vmoe::tools::checkToolTensorBytes("output", i, t.size_bytes, &error))
      return fail(error);
    b.outputs[i].resize(t.size_bytes / 4);
  }
  return 0;
}

/// The batches to run: --batch, each one the module runs, or the compiled
/// batch. Returns 0, or 1 (message printed).
int batchesOf(const std::string &path, const vmoe_module_info_t &info,
              const Buffers &b, const Options &o, std::vector<int64_t> &out) {
  int64_t step = std::max<int64_t>(info.batch_multiple, 1);
  out.clear();
  for (double n : o.batchList) {
    int64_t batch = static_cast<int64_t>(n);
    if (batch > info.max_batch || batch % step != 0)
      return fail(path + " runs batches of " + std::to_string(step) + " to " +
                  std::to_string(info.max_batch) + " in steps of " +
                  std::to_string(step) + "; --batch " + std::to_string(batch) +
                  " is not one");
    out.push_back(batch);
  }
  if (out.empty())
    out.push_back(info.max_batch);
  // A smaller batch is the first images: the batch dim must lead.
  for (const auto *infos : {&b.inInfo, &b.outInfo})
    for (const vmoe_tensor_info_t &t : *infos)
      if (t.batch_dim > 0 && (out.size() > 1 || out[0] != info.max_batch))
        return fail(path + ": tensor " + t.name +
                    " has its batch dim inside; --batch needs it first");
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

/// The table's header; the module column is as wide as the longest path.
void printHeader(int nameWidth) {
  std::printf("%-*s %5s %7s %6s %4s %10s %10s %10s %9s %8s %7s\n", nameWidth,
              "module", "batch", "threads", "cf", "bpr", "median ms", "p10 ms",
              "p90 ms", "images/s", "GFLOP/s", "kept");
}

void printResult(const Result &res, int nameWidth, bool profile) {
  std::printf("%-*s %5" PRId64 " %7u %6.3g %4s %10.3f %10.3f %10.3f "
              "%9.1f %8.1f %6.1f%%\n",
              nameWidth, res.module.c_str(), res.batch, res.threads,
              res.capacityFactor, res.bpr ? "on" : "off", res.medianMs,
              res.p10Ms, res.p90Ms, res.imagesPerSecond, res.gflops,
              100 * res.keptShare);
  if (profile) {
    std::vector<std::pair<std::string, double>> sorted = res.kernels;
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](auto &x, auto &y) { return x.second > y.second; });
    for (size_t k = 0; k < sorted.size() && k < 12; ++k)
      std::printf("    %-44s %9.3f ms\n", sorted[k].first.c_str(),
                  sorted[k].second);
  }
}

/// One setting of a benchmark: batch, threads, capacity factor, BPR.
struct Setting {
  int64_t batch = 1;
  double threads = 0, capacityFactor = 0;
  int bpr = -1;
};

/// One module at one setting: a session, its runs, the result printed.
/// Returns 0, or 1 (message printed).
int benchmark(vmoe_module_t *module, const vmoe_module_info_t &info,
              const FlopModel &flops, Buffers &buffers, const Options &o,
              const Setting &setting, Result &res) {
  vmoe_session_options_t sopts;
  vmoe_session_options_init(&sopts);
  sopts.thread_count = static_cast<uint32_t>(setting.threads);
  sopts.profile = o.profile;
  std::string error;
  vmoe::tools::SessionHandle session =
      vmoe::tools::createSession(module, sopts, error);
  if (!session)
    return fail(error);
  setBatch(buffers, setting.batch);
  vmoe_run_options_t ropts = {setting.capacityFactor, setting.bpr};
  std::vector<double> ms;
  if (int rc = timeRuns(session.get(), buffers, ropts, o, ms))
    return rc;
  res.batch = setting.batch;
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
  return 0;
}

/// Every batch x thread count x capacity factor x BPR setting of one module.
int benchmarkModule(const std::string &path, const Options &o, int nameWidth,
                    std::vector<Result> &results) {
  std::string error;
  vmoe::tools::ModuleHandle module = vmoe::tools::loadModule(path, error);
  if (!module)
    return fail(path + ": " + error);
  vmoe_module_info_t info;
  vmoe_module_info(module.get(), &info);
  vmoe::readers::ModelConfig config;
  bool hasConfig = moduleConfig(info, config);
  Buffers buffers;
  if (int rc = makeBuffers(module.get(), info, o.inputPath, buffers))
    return rc;
  std::vector<int64_t> batches;
  if (int rc = batchesOf(path, info, buffers, o, batches))
    return rc;
  for (int64_t batch : batches) {
    FlopModel flops = hasConfig ? flopModel(config, batch) : FlopModel{};
    for (double threads : o.threadList)
      for (double cf : o.cfList)
        for (int bpr : o.bprList) {
          Result res;
          res.module = path;
          if (int rc = benchmark(module.get(), info, flops, buffers, o,
                                 {batch, threads, cf, bpr}, res))
            return rc;
          printResult(res, nameWidth, o.profile);
          results.push_back(std::move(res));
        }
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
  if (o.version) {
    vmoe::tools::printVersion(kTool);
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
  int nameWidth = 6; // "module"
  for (const std::string &path : o.modules)
    nameWidth = std::max(nameWidth, static_cast<int>(path.size()));
  printHeader(nameWidth);
  for (const std::string &path : o.modules)
    if (int rc = benchmarkModule(path, o, nameWidth, results))
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
