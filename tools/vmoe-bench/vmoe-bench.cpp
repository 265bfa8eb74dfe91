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

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <sys/resource.h>
#include <vector>

namespace {

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
  std::fprintf(stderr, "vmoe-bench: error: %s\n", message.c_str());
  return 1;
}

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
  double dense = 0;            // everything but the experts
  double perExpertAssignment = 0; // one kept token through one expert MLP
};

FlopModel flopModel(const vmoe::import::ModelConfig &c, int64_t batch) {
  FlopModel f;
  double b = batch, d = c.hiddenSize, m = c.mlpDim, t = c.tokensPerImage();
  double patches = (c.imageHeight / c.patchSize) * (c.imageWidth / c.patchSize);
  double dh = d / c.numHeads;
  f.dense += b * patches * c.patchSize * c.patchSize * c.channels * d * 2;
  for (int64_t l = 0; l < c.numLayers; ++l) {
    f.dense += b * t * d * 3 * d * 2;                  // q, k, v
    f.dense += b * c.numHeads * t * t * dh * 2 * 2;    // q k^T and p v
    f.dense += b * t * d * d * 2;                      // out
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
bool readInput(const std::string &path, vmoe::import::Tensor &out,
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
  return vmoe::import::readNpy({bytes.data(), bytes.size()}, path, out, error);
}

std::string jsonEscape(const std::string &s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\')
      out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20)
      continue;
    out += ch;
  }
  return out;
}

} // namespace

int main(int argc, char **argv) {
  std::vector<std::string> modules;
  std::vector<double> threadList, cfList;
  std::vector<int> bprList = {-1};
  int warmup = 3, repeat = 20;
  bool profile = false;
  std::string jsonPath, inputPath;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char * {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--threads") {
      const char *v = value();
      if (!v || !splitNumbers(v, threadList))
        return fail("--threads takes positive integers, comma separated");
    } else if (a == "--capacity-factor") {
      const char *v = value();
      if (!v || !splitNumbers(v, cfList))
        return fail("--capacity-factor takes positive numbers, comma separated");
    } else if (a == "--bpr") {
      const char *v = value();
      std::string s = v ? v : "";
      if (s == "on")
        bprList = {1};
      else if (s == "off")
        bprList = {0};
      else if (s == "both")
        bprList = {1, 0};
      else
        return fail("--bpr takes on, off or both");
    } else if (a == "--warmup" || a == "--repeat") {
      const char *v = value();
      char *end = nullptr;
      long n = v ? std::strtol(v, &end, 10) : -1;
      if (!v || *end != '\0' || n < (a == "--repeat" ? 1 : 0) || n > 100000)
        return fail(a + " takes a count");
      (a == "--warmup" ? warmup : repeat) = static_cast<int>(n);
    } else if (a == "--profile") {
      profile = true;
    } else if (a == "--input") {
      const char *v = value();
      if (!v)
        return fail("--input takes a .npy file");
      inputPath = v;
    } else if (a == "--json") {
      const char *v = value();
      if (!v)
        return fail("--json takes a file");
      jsonPath = v;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "vmoe-bench: error: unknown option %s\n%s",
                   a.c_str(), kUsage);
      return 2;
    } else {
      modules.push_back(a);
    }
  }
  if (modules.empty()) {
    std::fprintf(stderr, "vmoe-bench: error: no module given\n%s", kUsage);
    return 2;
  }
  if (threadList.empty())
    threadList = {0};
  if (cfList.empty())
    cfList = {0};

  std::vector<Result> results;
  std::printf("%-28s %5s %7s %6s %4s %10s %10s %10s %9s %8s %7s\n", "module",
              "batch", "threads", "cf", "bpr", "median ms", "p10 ms",
              "p90 ms", "images/s", "GFLOP/s", "kept");
  for (const std::string &path : modules) {
    vmoe_message_t msg;
    vmoe_module_t *module = nullptr;
    if (vmoe_status_t st = vmoe_module_load_file(path.c_str(), &module, &msg))
      return fail(path + ": " + vmoe_status_name(st) + ": " + msg.text);
    vmoe_module_info_t info;
    vmoe_module_info(module, &info);
    int64_t batch = info.max_batch;
    FlopModel flops;
    if (info.config_json_size > 0) {
      vmoe::import::ModelConfig config;
      std::string error;
      if (vmoe::import::parseModelConfig(
              std::string_view(info.config_json, info.config_json_size),
              "module config", config, &error))
        flops = flopModel(config, batch);
    }
    // Inputs: deterministic random values in [-1, 1], like an image batch.
    std::vector<std::vector<float>> inputs(info.input_count),
        outputs(info.output_count);
    std::vector<vmoe_tensor_t> in(info.input_count), out(info.output_count);
    std::mt19937_64 rng(0);
    std::uniform_real_distribution<float> dist(-1, 1);
    for (uint32_t i = 0; i < info.input_count; ++i) {
      vmoe_tensor_info_t t;
      vmoe_module_input_info(module, i, &t, &msg);
      inputs[i].resize(t.size_bytes / 4);
      for (float &v : inputs[i])
        v = dist(rng);
      if (i == 0 && !inputPath.empty()) {
        std::string error;
        vmoe::import::Tensor array;
        if (!readInput(inputPath, array, &error))
          return fail(error);
        if (array.data.size() != inputs[i].size())
          return fail(inputPath + " holds " +
                      std::to_string(array.data.size()) +
                      " values; the module's first input takes " +
                      std::to_string(inputs[i].size()));
        std::copy(array.data.begin(), array.data.end(), inputs[i].begin());
      }
      in[i] = {t.dtype, t.rank, t.shape, inputs[i].data(), t.size_bytes};
    }
    for (uint32_t i = 0; i < info.output_count; ++i) {
      vmoe_tensor_info_t t;
      vmoe_module_output_info(module, i, &t, &msg);
      outputs[i].resize(t.size_bytes / 4);
      out[i] = {t.dtype, t.rank, t.shape, outputs[i].data(), t.size_bytes};
    }
    for (double threads : threadList)
      for (double cf : cfList)
        for (int bpr : bprList) {
          vmoe_session_options_t sopts;
          vmoe_session_options_init(&sopts);
          sopts.thread_count = static_cast<uint32_t>(threads);
          sopts.profile = profile;
          vmoe_session_t *session = nullptr;
          if (vmoe_status_t st =
                  vmoe_session_create(module, &sopts, &session, &msg))
            return fail(std::string(vmoe_status_name(st)) + ": " + msg.text);
          vmoe_run_options_t ropts = {cf, bpr};
          std::vector<double> ms;
          for (int r = 0; r < warmup + repeat; ++r) {
            auto t0 = std::chrono::steady_clock::now();
            vmoe_status_t st =
                vmoe_session_run(session, in.data(), in.size(), out.data(),
                                 out.size(), &ropts, &msg);
            auto t1 = std::chrono::steady_clock::now();
            if (st)
              return fail(std::string(vmoe_status_name(st)) + ": " + msg.text);
            if (r >= warmup)
              ms.push_back(
                  std::chrono::duration<double, std::milli>(t1 - t0).count());
          }
          std::sort(ms.begin(), ms.end());
          Result res;
          res.module = path;
          res.batch = batch;
          res.threads = vmoe_session_thread_count(session);
          res.medianMs = ms[ms.size() / 2];
          res.p10Ms = ms[ms.size() / 10];
          res.p90Ms = ms[std::min(ms.size() - 1, ms.size() * 9 / 10)];
          res.imagesPerSecond = batch / (res.medianMs / 1e3);
          uint64_t kept = 0, assigned = 0;
          for (uint32_t l = 0; l < info.moe_layer_count; ++l) {
            vmoe_routing_stats_t s;
            if (vmoe_session_routing_stats(session, l, &s, &msg) !=
                VMOE_STATUS_OK)
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
          if (profile) {
            std::vector<uint64_t> ns(info.dispatch_count);
            uint64_t runs = 0;
            if (vmoe_session_profile(session, ns.data(), ns.size(), &runs,
                                     &msg) == VMOE_STATUS_OK &&
                runs > 0)
              for (uint32_t d = 0; d < info.dispatch_count; ++d)
                res.kernels.push_back({vmoe_module_dispatch_kernel(module, d),
                                       ns[d] / 1e6 / runs});
          }
          vmoe_session_destroy(session);
          std::string name = path.size() > 28 ? path.substr(path.size() - 28)
                                              : path;
          std::printf("%-28s %5" PRId64 " %7u %6.3g %4s %10.3f %10.3f %10.3f "
                      "%9.1f %8.1f %6.1f%%\n",
                      name.c_str(), res.batch, res.threads, res.capacityFactor,
                      res.bpr ? "on" : "off", res.medianMs, res.p10Ms,
                      res.p90Ms, res.imagesPerSecond, res.gflops,
                      100 * res.keptShare);
          if (profile) {
            std::vector<std::pair<std::string, double>> sorted = res.kernels;
            std::stable_sort(sorted.begin(), sorted.end(),
                             [](auto &x, auto &y) { return x.second > y.second; });
            for (size_t k = 0; k < sorted.size() && k < 12; ++k)
              std::printf("    %-44s %9.3f ms\n", sorted[k].first.c_str(),
                          sorted[k].second);
          }
          results.push_back(std::move(res));
        }
    vmoe_module_release(module);
  }
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  std::printf("peak resident memory: %.1f MB\n", usage.ru_maxrss / 1024.0);

  if (!jsonPath.empty()) {
    FILE *f = std::fopen(jsonPath.c_str(), "w");
    if (!f)
      return fail("cannot write " + jsonPath + ": " + std::strerror(errno));
    std::fprintf(f, "{\"peak_rss_mb\": %.1f, \"results\": [\n",
                 usage.ru_maxrss / 1024.0);
    for (size_t i = 0; i < results.size(); ++i) {
      const Result &r = results[i];
      std::fprintf(f,
                   "  {\"module\": \"%s\", \"batch\": %" PRId64
                   ", \"threads\": %u, \"capacity_factor\": %.6g, \"bpr\": %d, "
                   "\"median_ms\": %.6f, \"p10_ms\": %.6f, \"p90_ms\": %.6f, "
                   "\"images_per_second\": %.3f, \"gflops\": %.3f, "
                   "\"assignments_kept_share\": %.6f, \"assignments\": %" PRIu64
                   ", \"assignments_kept\": %" PRIu64 ", \"kernels\": [",
                   jsonEscape(r.module).c_str(), r.batch, r.threads,
                   r.capacityFactor, r.bpr, r.medianMs, r.p10Ms, r.p90Ms,
                   r.imagesPerSecond, r.gflops, r.keptShare, r.assignments,
                   r.assignmentsKept);
      for (size_t k = 0; k < r.kernels.size(); ++k)
        std::fprintf(f, "%s{\"name\": \"%s\", \"ms\": %.6f}", k ? ", " : "",
                     jsonEscape(r.kernels[k].first).c_str(),
                     r.kernels[k].second);
      std::fprintf(f, "]}%s\n", i + 1 < results.size() ? "," : "");
    }
    std::fprintf(f, "]}\n");
    if (std::fclose(f) != 0)
      return fail("cannot write " + jsonPath);
  }
  return 0;
}
