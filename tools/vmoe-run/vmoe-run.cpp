//===- vmoe-run.cpp - run a compiled vmoe module --------------------------===//
//
// Loads a module, runs it on an input (.npy, or a deterministic random batch)
// with the chosen capacity factor and BPR setting, prints the top classes of
// each image and what routing did in every MoE layer, and optionally writes
// the outputs. Uses only the runtime's C API.
//
//===----------------------------------------------------------------------===//

#include "vmoe/runtime.h"

#include "../common/Image.h"
#include "../common/Npy.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace {

const char *kUsage =
    "usage: vmoe-run MODULE [IMAGE...] [options]\n"
    "  IMAGE...                PNG, PGM or PPM files to classify, each\n"
    "                          converted to the model's channels, resized to\n"
    "                          its input size (TF2 bilinear, as vmoe's eval\n"
    "                          resize) and mapped to [-1, 1]; printed as\n"
    "                          image 0, 1, ... in the order given\n"
    "  --input FILE            a .npy of images: float32 in [-1, 1] or uint8\n"
    "                          pixels, any number of them (run in chunks of\n"
    "                          the compiled batch), or one PNG/PGM/PPM image\n"
    "                          (default: one batch of random values)\n"
    "  --labels FILE.npy       int32/uint8 labels: report the accuracy\n"
    "  --show N                images whose classes are printed (default 8)\n"
    "  --seed N                seed of the random input (default 0)\n"
    "  --output FILE.npy       write the first output\n"
    "  --capacity-factor X     capacity factor of every MoE layer for this "
    "run\n"
    "                          (0 < X <= the compiled maximum; default: the\n"
    "                          module's)\n"
    "  --bpr on|off            Batch Prioritized Routing (default: the "
    "module's)\n"
    "  --threads N             worker threads (default: one per CPU)\n"
    "  --device cpu|cuda[:N]   where to run (default cpu; cuda needs a module\n"
    "                          compiled with --target=cuda and an NVIDIA GPU)\n"
    "  --repeat N              run N times and report the median time\n"
    "  --top N                 classes to print per image (default 5)\n"
    "  --quiet                 print only errors and the timing line\n"
    "  --profile               print the time of every dispatch (kernel)\n"
    "  --info                  print the module's contents and exit\n";

struct Options {
  std::string module, input, output, labels;
  std::vector<std::string> imageFiles; // positional arguments after MODULE
  uint64_t seed = 0;
  double capacityFactor = 0.0;
  int bpr = -1;
  uint32_t threads = 0;
  vmoe_device_t device = VMOE_DEVICE_CPU;
  uint32_t deviceOrdinal = 0;
  int repeat = 1;
  int top = 5;
  int64_t show = 8;
  bool quiet = false, info = false, profile = false;
};

int fail(const std::string &message) {
  std::fprintf(stderr, "vmoe-run: error: %s\n", message.c_str());
  return 1;
}

bool parseDouble(const char *s, double &out) {
  char *end = nullptr;
  out = std::strtod(s, &end);
  return end && *end == '\0' && end != s;
}

bool parseInt(const char *s, long long min, long long max, long long &out) {
  char *end = nullptr;
  errno = 0;
  out = std::strtoll(s, &end, 10);
  return end && *end == '\0' && end != s && errno == 0 && out >= min &&
         out <= max;
}

/// Returns 0 when parsed, 2 on a usage error (message printed).
int parseArgs(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char *name) -> const char * {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "vmoe-run: error: %s needs a value\n%s", name,
                     kUsage);
        return nullptr;
      }
      return argv[++i];
    };
    long long n;
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "--input") {
      const char *v = value("--input");
      if (!v)
        return 2;
      o.input = v;
    } else if (a == "--labels") {
      const char *v = value("--labels");
      if (!v)
        return 2;
      o.labels = v;
    } else if (a == "--show") {
      const char *v = value("--show");
      if (!v || !parseInt(v, 0, INT64_MAX, n))
        return fail("--show needs a non-negative integer"), 2;
      o.show = n;
    } else if (a == "--output") {
      const char *v = value("--output");
      if (!v)
        return 2;
      o.output = v;
    } else if (a == "--seed") {
      const char *v = value("--seed");
      if (!v || !parseInt(v, 0, INT64_MAX, n))
        return fail("--seed needs a non-negative integer"), 2;
      o.seed = n;
    } else if (a == "--capacity-factor") {
      const char *v = value("--capacity-factor");
      if (!v || !parseDouble(v, o.capacityFactor) ||
          !(o.capacityFactor > 0.0) || !std::isfinite(o.capacityFactor))
        return fail("--capacity-factor needs a positive number"), 2;
    } else if (a == "--bpr") {
      const char *v = value("--bpr");
      if (!v)
        return 2;
      if (std::strcmp(v, "on") == 0)
        o.bpr = 1;
      else if (std::strcmp(v, "off") == 0)
        o.bpr = 0;
      else
        return fail("--bpr takes on or off"), 2;
    } else if (a == "--threads") {
      const char *v = value("--threads");
      if (!v || !parseInt(v, 1, 4096, n))
        return fail("--threads needs an integer in [1, 4096]"), 2;
      o.threads = n;
    } else if (a == "--device") {
      const char *v = value("--device");
      if (!v)
        return 2;
      if (std::strcmp(v, "cpu") == 0) {
        o.device = VMOE_DEVICE_CPU;
      } else if (std::strncmp(v, "cuda", 4) == 0 &&
                 (v[4] == '\0' ||
                  (v[4] == ':' && parseInt(v + 5, 0, 1023, n)))) {
        o.device = VMOE_DEVICE_CUDA;
        o.deviceOrdinal = v[4] ? static_cast<uint32_t>(n) : 0;
      } else {
        return fail("--device takes cpu, cuda or cuda:N"), 2;
      }
    } else if (a == "--repeat") {
      const char *v = value("--repeat");
      if (!v || !parseInt(v, 1, 1000000, n))
        return fail("--repeat needs an integer in [1, 1000000]"), 2;
      o.repeat = n;
    } else if (a == "--top") {
      const char *v = value("--top");
      if (!v || !parseInt(v, 0, 1000000, n))
        return fail("--top needs a non-negative integer"), 2;
      o.top = n;
    } else if (a == "--quiet") {
      o.quiet = true;
    } else if (a == "--profile") {
      o.profile = true;
    } else if (a == "--info") {
      o.info = true;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "vmoe-run: error: unknown option %s\n%s", a.c_str(),
                   kUsage);
      return 2;
    } else if (o.module.empty()) {
      o.module = a;
    } else {
      o.imageFiles.push_back(a);
    }
  }
  if (o.module.empty()) {
    std::fprintf(stderr, "vmoe-run: error: no module given\n%s", kUsage);
    return 2;
  }
  return 0;
}

std::string shapeString(const int64_t *shape, uint32_t rank) {
  std::string s = "[";
  for (uint32_t i = 0; i < rank; ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void printInfo(vmoe_module_t *module) {
  vmoe_module_info_t info;
  vmoe_module_info(module, &info);
  std::printf("module %s (format %u.%u, by %s): %" PRIu64 " bytes\n",
              *info.name ? info.name : "(unnamed)", info.format_major,
              info.format_minor, *info.producer ? info.producer : "?",
              info.file_size);
  std::printf("  %u kernels, %u dispatches, arena %" PRIu64
              " bytes, weights %" PRIu64 " bytes, batch %" PRId64,
              info.kernel_count, info.dispatch_count, info.arena_size,
              info.constant_bytes, info.max_batch);
  if (info.batch_multiple < info.max_batch)
    std::printf(" (any multiple of %" PRId64 " up to it)", info.batch_multiple);
  std::printf("\n");
  vmoe_message_t msg;
  for (uint32_t i = 0; i < info.input_count; ++i) {
    vmoe_tensor_info_t t;
    if (vmoe_module_input_info(module, i, &t, &msg) == VMOE_STATUS_OK)
      std::printf("  input %s: %s %s\n", t.name, vmoe_dtype_name(t.dtype),
                  shapeString(t.shape, t.rank).c_str());
  }
  for (uint32_t i = 0; i < info.output_count; ++i) {
    vmoe_tensor_info_t t;
    if (vmoe_module_output_info(module, i, &t, &msg) == VMOE_STATUS_OK)
      std::printf("  output %s: %s %s\n", t.name, vmoe_dtype_name(t.dtype),
                  shapeString(t.shape, t.rank).c_str());
  }
  for (uint32_t i = 0; i < info.moe_layer_count; ++i) {
    vmoe_moe_layer_info_t l;
    if (vmoe_module_moe_layer_info(module, i, &l, &msg) == VMOE_STATUS_OK)
      std::printf("  MoE layer %u: E=%u k=%u group=%u groups=%u capacity "
                  "factor %.3g (max %.3g, C_max %u), BPR %s\n",
                  i, l.num_experts, l.k, l.group_size, l.num_groups,
                  l.default_capacity_factor, l.max_capacity_factor,
                  l.max_capacity, l.default_bpr ? "on" : "off");
  }
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  if (int rc = parseArgs(argc, argv, o))
    return rc;

  vmoe_message_t msg;
  vmoe_module_t *module = nullptr;
  if (vmoe_status_t st = vmoe_module_load_file(o.module.c_str(), &module, &msg))
    return fail(std::string(vmoe_status_name(st)) + ": " + msg.text);
  if (o.info) {
    printInfo(module);
    vmoe_module_release(module);
    return 0;
  }
  vmoe_module_info_t info;
  vmoe_module_info(module, &info);
  if (info.input_count != 1) {
    vmoe_module_release(module);
    return fail("vmoe-run feeds modules with one input; this one has " +
                std::to_string(info.input_count));
  }
  vmoe_tensor_info_t in;
  if (vmoe_module_input_info(module, 0, &in, &msg)) {
    vmoe_module_release(module);
    return fail(msg.text);
  }
  // The input: N images, run in chunks of the compiled batch. float32 must
  // already be in the model's range; uint8 pixels are mapped to [-1, 1] as
  // vmoe's value_range(-1, 1) does (x / 255 * 2 - 1).
  std::vector<int64_t> inShape(in.shape, in.shape + in.rank);
  int64_t batch = inShape.empty() ? 1 : inShape[0];
  uint64_t itemFloats = in.size_bytes / 4 / std::max<int64_t>(batch, 1);
  std::vector<float> input;
  int64_t images = batch;
  // Image files (by content, or by suffix so that a bad one gets the image
  // decoder's message): --input IMAGE and the positional IMAGE arguments.
  auto isImage = [](const std::string &path) {
    std::string ext = path.substr(std::min(path.size(), path.rfind('.')));
    for (char &ch : ext)
      ch = char(std::tolower(static_cast<unsigned char>(ch)));
    return vmoe::tools::isImageFile(path) || ext == ".png" || ext == ".ppm" ||
           ext == ".pgm" || ext == ".pnm";
  };
  std::vector<std::string> imageFiles = o.imageFiles;
  bool inputIsImage = !o.input.empty() && isImage(o.input);
  if (inputIsImage)
    imageFiles.insert(imageFiles.begin(), o.input);
  if (!imageFiles.empty() && !o.input.empty() && !inputIsImage) {
    vmoe_module_release(module);
    return fail("give the images either as --input " + o.input +
                " or as image files, not both");
  }
  if (!imageFiles.empty()) {
    if (inShape.size() != 4 ||
        uint64_t(inShape[1] * inShape[2] * inShape[3]) != itemFloats) {
      vmoe_module_release(module);
      return fail("image files need a module that takes (N, H, W, C) images; "
                  "this one takes " +
                  shapeString(inShape.data(), inShape.size()));
    }
    images = int64_t(imageFiles.size());
    input.resize(images * itemFloats);
    std::vector<float> pixels;
    for (int64_t i = 0; i < images; ++i) {
      std::string error;
      if (!vmoe::tools::loadImageForModel(imageFiles[i], inShape[1], inShape[2],
                                          inShape[3], pixels, &error)) {
        vmoe_module_release(module);
        return fail(error);
      }
      std::copy(pixels.begin(), pixels.end(), input.begin() + i * itemFloats);
      if (!o.quiet && i < o.show)
        std::printf("input %" PRId64 ": %s\n", i, imageFiles[i].c_str());
    }
  } else if (!o.input.empty()) {
    vmoe::tools::NpyArray array;
    std::string error;
    if (!vmoe::tools::readNpy(o.input, array, &error)) {
      vmoe_module_release(module);
      return fail(error);
    }
    // An item shape without the channel dim is accepted for 1 channel.
    std::vector<int64_t> item(inShape.begin() + 1, inShape.end());
    std::vector<int64_t> got(array.shape.begin() + (array.shape.empty() ? 0 : 1),
                             array.shape.end());
    if (got.size() + 1 == item.size() && item.back() == 1)
      got.push_back(1);
    bool dtypeOk = array.dtype == "<f4" || array.dtype == "|u1";
    if (!dtypeOk || array.shape.empty() || got != item) {
      vmoe_module_release(module);
      std::vector<int64_t> want = {-1};
      want.insert(want.end(), item.begin(), item.end());
      return fail(o.input + " holds " + array.dtype + " " +
                  shapeString(array.shape.data(), array.shape.size()) +
                  ", the model takes float32 or uint8 images of shape " +
                  shapeString(want.data(), want.size()) +
                  " (any number of images)");
    }
    images = array.shape[0];
    input.resize(images * itemFloats);
    if (array.dtype == "<f4") {
      std::memcpy(input.data(), array.data.data(), input.size() * 4);
    } else {
      for (size_t i = 0; i < input.size(); ++i)
        input[i] = static_cast<float>(array.data[i]) / 255.0f * 2.0f - 1.0f;
    }
  } else {
    input.resize(images * itemFloats);
    std::mt19937_64 rng(o.seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (float &v : input)
      v = dist(rng);
  }
  std::vector<int32_t> labels;
  if (!o.labels.empty()) {
    vmoe::tools::NpyArray array;
    std::string error;
    if (!vmoe::tools::readNpy(o.labels, array, &error)) {
      vmoe_module_release(module);
      return fail(error);
    }
    if (array.shape.size() != 1 || array.shape[0] != images ||
        (array.dtype != "<i4" && array.dtype != "|u1")) {
      vmoe_module_release(module);
      return fail(o.labels + ": expected " + std::to_string(images) +
                  " int32 or uint8 labels");
    }
    labels.resize(images);
    for (int64_t i = 0; i < images; ++i)
      labels[i] = array.dtype == "|u1"
                      ? array.data[i]
                      : reinterpret_cast<const int32_t *>(array.data.data())[i];
  }
  // A last partial chunk runs as a smaller batch, padded with zero images
  // only up to the module's batch step (whole MoE groups); padding images
  // take part in routing as vmoe's padded eval batches do.
  int64_t chunks = (images + batch - 1) / batch;
  int64_t step = std::max<int64_t>(info.batch_multiple, 1);
  int64_t lastRun = images - (chunks - 1) * batch;
  lastRun = (lastRun + step - 1) / step * step;
  if (images % step != 0 && !o.quiet)
    std::printf("note: the last %" PRId64 " image(s) padded to %" PRId64
                " (the module runs batches in steps of %" PRId64 ")\n",
                images - (chunks - 1) * batch, lastRun, step);
  input.resize(chunks * batch * itemFloats, 0.0f);

  std::vector<std::vector<float>> outputs(info.output_count);
  std::vector<vmoe_tensor_t> outTensors(info.output_count);
  std::vector<vmoe_tensor_info_t> outInfos(info.output_count);
  for (uint32_t i = 0; i < info.output_count; ++i) {
    vmoe_module_output_info(module, i, &outInfos[i], &msg);
    outputs[i].resize(chunks * (outInfos[i].size_bytes / 4));
  }

  vmoe_session_options_t sopts;
  vmoe_session_options_init(&sopts);
  sopts.thread_count = o.threads;
  sopts.profile = o.profile;
  sopts.device = o.device;
  sopts.device_ordinal = o.deviceOrdinal;
  vmoe_session_t *session = nullptr;
  if (vmoe_status_t st = vmoe_session_create(module, &sopts, &session, &msg)) {
    vmoe_module_release(module);
    return fail(std::string(vmoe_status_name(st)) + ": " + msg.text);
  }
  vmoe_run_options_t ropts = {o.capacityFactor, o.bpr};
  // Shapes of a call, whose batch dim each chunk sets (no allocation in the
  // timed loop).
  std::vector<int64_t> runInShape(in.shape, in.shape + in.rank);
  std::vector<std::vector<int64_t>> runOutShapes(info.output_count);
  for (uint32_t i = 0; i < info.output_count; ++i)
    runOutShapes[i].assign(outInfos[i].shape,
                           outInfos[i].shape + outInfos[i].rank);
  // Routing statistics summed over the chunks of the last repetition.
  std::vector<vmoe_routing_stats_t> layerStats(info.moe_layer_count);
  std::vector<double> minCoverage(info.moe_layer_count, 1.0);
  std::vector<double> times;
  for (int r = 0; r < o.repeat; ++r) {
    std::fill(layerStats.begin(), layerStats.end(), vmoe_routing_stats_t{});
    std::fill(minCoverage.begin(), minCoverage.end(), 1.0);
    auto t0 = std::chrono::steady_clock::now();
    double statsTime = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      int64_t run = c + 1 < chunks ? batch : lastRun;
      runInShape[0] = run;
      vmoe_tensor_t inTensor = {VMOE_DTYPE_F32, in.rank, runInShape.data(),
                                input.data() + c * batch * itemFloats,
                                run * itemFloats * 4};
      for (uint32_t i = 0; i < info.output_count; ++i) {
        uint64_t perImage = outInfos[i].size_bytes / batch;
        if (outInfos[i].batch_dim == 0)
          runOutShapes[i][0] = run;
        outTensors[i] = {outInfos[i].dtype, outInfos[i].rank,
                         runOutShapes[i].data(),
                         outputs[i].data() + c * (outInfos[i].size_bytes / 4),
                         outInfos[i].batch_dim == 0 ? run * perImage
                                                    : outInfos[i].size_bytes};
      }
      vmoe_status_t st =
          vmoe_session_run(session, &inTensor, 1, outTensors.data(),
                           outTensors.size(), &ropts, &msg);
      if (st) {
        vmoe_session_destroy(session);
        vmoe_module_release(module);
        return fail(std::string(vmoe_status_name(st)) + ": " + msg.text);
      }
      // Reading the statistics is not part of inference: keep it out of the
      // timing.
      auto s0 = std::chrono::steady_clock::now();
      for (uint32_t l = 0; l < info.moe_layer_count; ++l) {
        vmoe_routing_stats_t s;
        if (vmoe_session_routing_stats(session, l, &s, &msg) != VMOE_STATUS_OK)
          continue;
        vmoe_routing_stats_t &t = layerStats[l];
        t.capacity = s.capacity;
        t.capacity_factor = s.capacity_factor;
        t.bpr = s.bpr;
        t.assignments += s.assignments;
        t.assignments_kept += s.assignments_kept;
        t.assignments_dropped += s.assignments_dropped;
        std::vector<double> shares(s.image_count);
        vmoe_session_image_coverage(session, l, shares.data(), s.image_count,
                                    &msg);
        int64_t real = std::min<int64_t>(batch, images - c * batch);
        for (int64_t b = 0; b < real && b < (int64_t)shares.size(); ++b)
          minCoverage[l] = std::min(minCoverage[l], shares[b]);
      }
      statsTime += std::chrono::duration<double, std::milli>(
                       std::chrono::steady_clock::now() - s0)
                       .count();
    }
    auto t1 = std::chrono::steady_clock::now();
    times.push_back(
        std::chrono::duration<double, std::milli>(t1 - t0).count() - statsTime);
  }
  std::sort(times.begin(), times.end());
  double median = times[times.size() / 2];

  int64_t correct = 0;
  bool classify = info.output_count > 0 && outInfos[0].rank == 2;
  int64_t classes = classify ? outInfos[0].shape[1] : 0;
  for (int64_t b = 0; classify && b < images; ++b) {
    const float *logits = outputs[0].data() + b * classes;
    std::vector<int64_t> idx(classes);
    std::iota(idx.begin(), idx.end(), 0);
    int top = std::min<int64_t>(o.top, classes);
    std::partial_sort(idx.begin(), idx.begin() + std::max(top, 1), idx.end(),
                      [&](int64_t x, int64_t y) {
                        return logits[x] > logits[y] ||
                               (logits[x] == logits[y] && x < y);
                      });
    if (!labels.empty() && idx[0] == labels[b])
      ++correct;
    if (o.quiet || b >= o.show)
      continue;
    std::printf("image %" PRId64 ":", b);
    for (int j = 0; j < top; ++j) {
      const char *name = vmoe_module_class_name(module, idx[j]);
      if (name && *name)
        std::printf(" %s (%.4f)", name, logits[idx[j]]);
      else
        std::printf(" %" PRId64 " (%.4f)", idx[j], logits[idx[j]]);
    }
    if (!labels.empty())
      std::printf("  [label %d]", labels[b]);
    std::printf("\n");
  }
  uint64_t assignments = 0, kept = 0;
  for (uint32_t l = 0; l < info.moe_layer_count; ++l) {
    const vmoe_routing_stats_t &s = layerStats[l];
    assignments += s.assignments;
    kept += s.assignments_kept;
    if (!o.quiet)
      std::printf("MoE layer %u: capacity %u (factor %.3g), BPR %s, kept %" PRIu64
                  " of %" PRIu64 " assignments (%.1f%%), least-covered image "
                  "%.1f%% of its tokens\n",
                  l, s.capacity, s.capacity_factor, s.bpr ? "on" : "off",
                  s.assignments_kept, s.assignments,
                  s.assignments ? 100.0 * s.assignments_kept / s.assignments
                                : 0.0,
                  100.0 * minCoverage[l]);
  }
  if (!labels.empty())
    std::printf("accuracy: %" PRId64 " of %" PRId64 " (%.2f%%)\n", correct,
                images, 100.0 * correct / images);
  std::printf("time: median %.3f ms over %d run(s) of %" PRId64
              " image(s), %.3f ms per image, %u thread(s)\n",
              median, o.repeat, images, median / images,
              vmoe_session_thread_count(session));
  // One line for scripts: the numbers above, comma separated.
  vmoe_routing_stats_t first = info.moe_layer_count ? layerStats[0]
                                                    : vmoe_routing_stats_t{};
  std::printf("summary,images=%" PRId64 ",accuracy=%.6f,capacity_factor=%.6g,"
              "bpr=%d,assignments_kept_share=%.6f,ms_per_image=%.6f\n",
              images, labels.empty() ? -1.0 : double(correct) / images,
              first.capacity_factor, first.bpr,
              assignments ? double(kept) / assignments : 1.0, median / images);

  if (o.profile) {
    std::vector<uint64_t> ns(info.dispatch_count);
    uint64_t runs = 0;
    if (vmoe_session_profile(session, ns.data(), ns.size(), &runs, &msg) ==
            VMOE_STATUS_OK &&
        runs > 0) {
      double total = 0;
      for (uint64_t v : ns)
        total += v;
      std::printf("profile: mean per call over %" PRIu64 " call(s)\n", runs);
      for (uint32_t d = 0; d < info.dispatch_count; ++d)
        std::printf("  %3u %-40s %9.3f ms %5.1f%%\n", d,
                    vmoe_module_dispatch_kernel(module, d),
                    ns[d] / 1e6 / runs, total > 0 ? 100.0 * ns[d] / total : 0);
    }
  }

  int rc = 0;
  if (!o.output.empty() && info.output_count > 0) {
    vmoe::tools::NpyArray array;
    array.dtype = "<f4";
    array.shape.assign(outInfos[0].shape,
                       outInfos[0].shape + outInfos[0].rank);
    if (!array.shape.empty())
      array.shape[0] = images;
    array.data.resize(outInfos[0].size_bytes / batch * images);
    std::memcpy(array.data.data(), outputs[0].data(), array.data.size());
    std::string error;
    if (!vmoe::tools::writeNpy(o.output, array, &error))
      rc = fail(error);
  }
  vmoe_session_destroy(session);
  vmoe_module_release(module);
  return rc;
}
