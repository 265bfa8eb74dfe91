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
#include "../common/RuntimeHandles.h"
#include "../common/ToolSupport.h"
#include "vmoe/writer/KeyFiles.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace {

using vmoe::tools::parseDouble;
using vmoe::tools::parseInt;

constexpr const char *kTool = "vmoe-run";

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
    "  --num-selected-experts K\n"
    "                          experts per token (k) of every top-k MoE layer\n"
    "                          for this run (1 <= K <= the compiled k; the\n"
    "                          capacity follows it; default: the module's)\n"
    "  --threads N             worker threads (default: one per CPU)\n"
    "  --device cpu|cuda[:N]   where to run (default cpu; cuda needs a module\n"
    "                          compiled with --target=cuda and an NVIDIA GPU)\n"
    "  --cuda-graphs on|off    CUDA: replay each knob setting as a CUDA graph\n"
    "                          (default on; off launches kernels one by one)\n"
    "  --cuda-graph-cache N    CUDA: graphs kept, least recently used dropped\n"
    "                          (1..1024, default 16)\n"
    "  --repeat N              run N times and report the median time\n"
    "  --top N                 classes to print per image (default 5)\n"
    "  --quiet                 print only errors and the timing line\n"
    "  --profile               print the time of every dispatch (kernel)\n"
    "  --info                  print the module's contents and exit\n"
    "  --trusted-key FILE      load only modules signed by this key (a .pub\n"
    "                          of vmoe-compile --generate-signing-key);\n"
    "                          repeat for several keys\n"
    "  --verify-weights all|none\n"
    "                          check the weights' digests at load (default\n"
    "                          all; none: only for trusted large modules)\n"
    "  --copy-module           read the module into memory instead of\n"
    "                          mapping it (for files that may be rewritten)\n";

struct Options {
  std::string module, input, output, labels;
  std::vector<std::string> imageFiles; // positional arguments after MODULE
  uint64_t seed = 0;
  double capacityFactor = 0.0;
  int bpr = -1;
  uint32_t numSelectedExperts = 0; // 0: the module's k
  uint32_t threads = 0;
  vmoe_device_t device = VMOE_DEVICE_CPU;
  uint32_t deviceOrdinal = 0;
  int cudaGraphs = -1;          // -1: the session's default
  uint32_t cudaGraphCache = 0;  // 0: the session's default
  int repeat = 1;
  int top = 5;
  int64_t show = 8;
  bool quiet = false, info = false, profile = false, help = false;
  std::vector<std::string> trustedKeys;
  bool verifyWeights = true, copyModule = false;
};

int fail(const std::string &message) {
  return vmoe::tools::fail(kTool, message);
}

/// Returns 0 when parsed (or --help seen), 2 on a usage error (message
/// printed).
int parseArgs(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    // The integrity flags also take --flag=VALUE.
    std::string inlineValue;
    bool hasInline = false;
    for (const char *flag : {"--trusted-key", "--verify-weights"})
      if (a.rfind(std::string(flag) + "=", 0) == 0) {
        inlineValue = a.substr(std::strlen(flag) + 1);
        a = flag;
        hasInline = true;
      }
    auto value = [&](const char *name) -> const char * {
      if (hasInline)
        return inlineValue.c_str();
      if (i + 1 >= argc) {
        vmoe::tools::usageError(kTool, std::string(name) + " needs a value",
                                kUsage);
        return nullptr;
      }
      return argv[++i];
    };
    long long n;
    if (a == "--help" || a == "-h") {
      o.help = true;
      return 0;
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
    } else if (a == "--num-selected-experts") {
      const char *v = value("--num-selected-experts");
      if (!v || !parseInt(v, 1, 4096, n))
        return fail("--num-selected-experts needs an integer in [1, 4096]"), 2;
      o.numSelectedExperts = n;
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
    } else if (a == "--cuda-graphs") {
      const char *v = value("--cuda-graphs");
      if (!v || (std::strcmp(v, "on") != 0 && std::strcmp(v, "off") != 0))
        return fail("--cuda-graphs takes on or off"), 2;
      o.cudaGraphs = std::strcmp(v, "on") == 0;
    } else if (a == "--cuda-graph-cache") {
      const char *v = value("--cuda-graph-cache");
      if (!v || !parseInt(v, 1, VMOE_CUDA_GRAPH_CACHE_MAX, n))
        return fail("--cuda-graph-cache needs an integer in [1, 1024]"), 2;
      o.cudaGraphCache = static_cast<uint32_t>(n);
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
    } else if (a == "--trusted-key") {
      const char *v = value("--trusted-key");
      if (!v)
        return 2;
      o.trustedKeys.push_back(v);
    } else if (a == "--verify-weights") {
      const char *v = value("--verify-weights");
      if (!v || (std::strcmp(v, "all") != 0 && std::strcmp(v, "none") != 0))
        return fail("--verify-weights takes all or none"), 2;
      o.verifyWeights = std::strcmp(v, "all") == 0;
    } else if (a == "--copy-module") {
      o.copyModule = true;
    } else if (!a.empty() && a[0] == '-') {
      return vmoe::tools::usageError(kTool, "unknown option " + a, kUsage);
    } else if (o.module.empty()) {
      o.module = a;
    } else {
      o.imageFiles.push_back(a);
    }
  }
  if (o.module.empty())
    return vmoe::tools::usageError(kTool, "no module given", kUsage);
  return 0;
}

std::string shapeString(const int64_t *shape, uint32_t rank) {
  std::string s = "[";
  for (uint32_t i = 0; i < rank; ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// The module with the integrity flags' load options, or null with `error`.
vmoe::tools::ModuleHandle loadModule(const Options &o, std::string &error) {
  vmoe_module_load_options_t options;
  vmoe_module_load_options_init(&options);
  options.verify_weights =
      o.verifyWeights ? VMOE_VERIFY_WEIGHTS_ALL : VMOE_VERIFY_WEIGHTS_NONE;
  options.copy = o.copyModule;
  std::vector<uint8_t> keys;
  for (const std::string &path : o.trustedKeys) {
    vmoe::writer::PublicKey key;
    if (!vmoe::writer::readPublicKeyFile(path, key, &error))
      return nullptr;
    keys.insert(keys.end(), key.begin(), key.end());
  }
  options.trusted_keys = keys.data();
  options.trusted_key_count =
      static_cast<uint32_t>(keys.size() / VMOE_PUBLIC_KEY_SIZE);
  return vmoe::tools::loadModule(o.module, error, &options);
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
  vmoe_module_integrity_t integrity;
  vmoe_module_integrity(module, &integrity);
  std::string keyId = vmoe::writer::toHex(integrity.key_id, 8);
  if (!integrity.is_signed)
    std::printf("  unsigned");
  else
    std::printf("  signed by key %s (%s)", keyId.c_str(),
                integrity.signature_verified ? "verified against a trusted key"
                                             : "not checked: no --trusted-key");
  std::printf(", weight digests %s\n", integrity.weights_verified
                                           ? "verified"
                                           : "not checked (--verify-weights)");
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
    if (vmoe_module_moe_layer_info(module, i, &l, &msg) != VMOE_STATUS_OK)
      continue;
    std::printf("  MoE layer %u: E=%u %s group=%u groups=%u ", i, l.num_experts,
                l.expert_choice ? "expert choice" : "top-k", l.group_size,
                l.num_groups);
    if (!l.expert_choice)
      std::printf("k=%u ", l.k);
    if (l.fixed_capacity)
      std::printf("fixed capacity %u", l.max_capacity);
    else
      std::printf("capacity factor %.3g (max %.3g, C_max %u, %s, multiple "
                  "of %u)",
                  l.default_capacity_factor, l.max_capacity_factor,
                  l.max_capacity, l.capacity_round ? "round" : "ceil",
                  l.capacity_multiple_of);
    std::printf(", BPR %s\n", l.default_bpr ? "on" : "off");
  }
}

//===----------------------------------------------------------------------===//
// Inputs
//===----------------------------------------------------------------------===//

/// The module's one input and its outputs, as the run needs them.
struct ModuleShape {
  vmoe_module_info_t info;
  vmoe_tensor_info_t in;
  std::vector<int64_t> inShape;
  std::vector<vmoe_tensor_info_t> outs;
  int64_t batch = 1;       // the compiled batch
  uint64_t itemFloats = 0; // floats per image
};

/// Returns 0, or 1 when vmoe-run cannot feed the module (message printed).
int describeModule(vmoe_module_t *module, ModuleShape &m) {
  vmoe_module_info(module, &m.info);
  if (m.info.input_count != 1)
    return fail("vmoe-run feeds modules with one input; this one has " +
                std::to_string(m.info.input_count));
  vmoe_message_t msg;
  if (vmoe_module_input_info(module, 0, &m.in, &msg))
    return fail(msg.text);
  std::string error;
  if (!vmoe::tools::checkToolTensorBytes("input", 0, m.in.size_bytes, &error))
    return fail(error);
  m.inShape.assign(m.in.shape, m.in.shape + m.in.rank);
  m.batch = m.inShape.empty() ? 1 : m.inShape[0];
  m.itemFloats = m.in.size_bytes / 4 / std::max<int64_t>(m.batch, 1);
  m.outs.resize(m.info.output_count);
  for (uint32_t i = 0; i < m.info.output_count; ++i) {
    vmoe_module_output_info(module, i, &m.outs[i], &msg);
    if (!vmoe::tools::checkToolTensorBytes("output", i, m.outs[i].size_bytes,
                                           &error))
      return fail(error);
  }
  return 0;
}

/// The images of a run, itemFloats each, and their labels (if given).
struct Inputs {
  std::vector<float> values;
  int64_t images = 0;
  std::vector<int32_t> labels;
};

/// An image file by content, or by suffix so that a bad one gets the image
/// decoder's message.
bool isImagePath(const std::string &path) {
  std::string ext = path.substr(std::min(path.size(), path.rfind('.')));
  for (char &ch : ext)
    ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return vmoe::tools::isImageFile(path) || ext == ".png" || ext == ".ppm" ||
         ext == ".pgm" || ext == ".pnm";
}

int loadImageFiles(const Options &o, const std::vector<std::string> &files,
                   const ModuleShape &m, Inputs &x) {
  const std::vector<int64_t> &shape = m.inShape;
  if (shape.size() != 4 ||
      uint64_t(shape[1] * shape[2] * shape[3]) != m.itemFloats)
    return fail("image files need a module that takes (N, H, W, C) images; "
                "this one takes " +
                shapeString(shape.data(), shape.size()));
  x.images = int64_t(files.size());
  x.values.resize(x.images * m.itemFloats);
  std::vector<float> pixels;
  for (int64_t i = 0; i < x.images; ++i) {
    std::string error;
    if (!vmoe::tools::loadImageForModel(files[i], shape[1], shape[2], shape[3],
                                        pixels, &error))
      return fail(error);
    std::copy(pixels.begin(), pixels.end(),
              x.values.begin() + i * m.itemFloats);
    if (!o.quiet && i < o.show)
      std::printf("input %" PRId64 ": %s\n", i, files[i].c_str());
  }
  return 0;
}

/// float32 must already be in the model's range; uint8 pixels are mapped to
/// [-1, 1] as vmoe's value_range(-1, 1) does (x / 255 * 2 - 1).
int loadNpyInput(const std::string &path, const ModuleShape &m, Inputs &x) {
  vmoe::tools::NpyArray array;
  std::string error;
  if (!vmoe::tools::readNpy(path, array, &error))
    return fail(error);
  // An item shape without the channel dim is accepted for 1 channel.
  std::vector<int64_t> item(m.inShape.begin() + 1, m.inShape.end());
  std::vector<int64_t> got(array.shape.begin() + (array.shape.empty() ? 0 : 1),
                           array.shape.end());
  if (got.size() + 1 == item.size() && item.back() == 1)
    got.push_back(1);
  bool dtypeOk = array.dtype == "<f4" || array.dtype == "|u1";
  if (!dtypeOk || array.shape.empty() || got != item) {
    std::vector<int64_t> want = {-1};
    want.insert(want.end(), item.begin(), item.end());
    return fail(path + " holds " + array.dtype + " " +
                shapeString(array.shape.data(), array.shape.size()) +
                ", the model takes float32 or uint8 images of shape " +
                shapeString(want.data(), want.size()) +
                " (any number of images)");
  }
  x.images = array.shape[0];
  x.values.resize(x.images * m.itemFloats);
  if (array.dtype == "<f4") {
    std::memcpy(x.values.data(), array.data.data(), x.values.size() * 4);
  } else {
    for (size_t i = 0; i < x.values.size(); ++i)
      x.values[i] = static_cast<float>(array.data[i]) / 255.0f * 2.0f - 1.0f;
  }
  return 0;
}

/// The images: image files (--input IMAGE and the positional IMAGE
/// arguments), a .npy of any number of them, or one batch of random values.
int loadInputs(const Options &o, const ModuleShape &m, Inputs &x) {
  std::vector<std::string> imageFiles = o.imageFiles;
  bool inputIsImage = !o.input.empty() && isImagePath(o.input);
  if (inputIsImage)
    imageFiles.insert(imageFiles.begin(), o.input);
  if (!imageFiles.empty() && !o.input.empty() && !inputIsImage)
    return fail("give the images either as --input " + o.input +
                " or as image files, not both");
  if (!imageFiles.empty())
    return loadImageFiles(o, imageFiles, m, x);
  if (!o.input.empty())
    return loadNpyInput(o.input, m, x);
  x.images = m.batch;
  x.values.resize(x.images * m.itemFloats);
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (float &v : x.values)
    v = dist(rng);
  return 0;
}

int loadLabels(const std::string &path, Inputs &x) {
  vmoe::tools::NpyArray array;
  std::string error;
  if (!vmoe::tools::readNpy(path, array, &error))
    return fail(error);
  if (array.shape.size() != 1 || array.shape[0] != x.images ||
      (array.dtype != "<i4" && array.dtype != "|u1"))
    return fail(path + ": expected " + std::to_string(x.images) +
                " int32 or uint8 labels");
  x.labels.resize(x.images);
  for (int64_t i = 0; i < x.images; ++i)
    x.labels[i] = array.dtype == "|u1"
                      ? array.data[i]
                      : reinterpret_cast<const int32_t *>(array.data.data())[i];
  return 0;
}

//===----------------------------------------------------------------------===//
// Running
//===----------------------------------------------------------------------===//

/// The images run in chunks of the compiled batch. A last partial chunk runs
/// as a smaller batch (a partial routing group routes only its own images,
/// docs/routing.md); a module that runs only whole batches (batch step =
/// batch) gets zero images, which take part in routing there as in vmoe's
/// padded eval batches.
struct Chunks {
  int64_t count = 0;
  int64_t lastRun = 0; // images in the last call, padding included
};

Chunks planChunks(const Options &o, const ModuleShape &m, Inputs &x) {
  Chunks c;
  c.count = (x.images + m.batch - 1) / m.batch;
  int64_t step = std::max<int64_t>(m.info.batch_multiple, 1);
  c.lastRun = x.images - (c.count - 1) * m.batch;
  c.lastRun = (c.lastRun + step - 1) / step * step;
  if (x.images % step != 0 && !o.quiet)
    std::printf("note: the last %" PRId64 " image(s) padded to %" PRId64
                " (the module runs batches in steps of %" PRId64 ")\n",
                x.images - (c.count - 1) * m.batch, c.lastRun, step);
  x.values.resize(c.count * m.batch * m.itemFloats, 0.0f);
  return c;
}

/// The outputs of all chunks, and routing statistics summed over the chunks
/// of the last repetition.
struct Results {
  std::vector<std::vector<float>> outputs;
  std::vector<vmoe_routing_stats_t> layerStats;
  std::vector<double> minCoverage; // least-covered real image, per layer
  std::vector<double> times;       // ms per repetition
};

/// Adds the statistics of chunk `c` to the results.
void addRoutingStats(vmoe_session_t *session, const ModuleShape &m,
                     const Inputs &x, int64_t c, Results &r) {
  vmoe_message_t msg;
  for (uint32_t l = 0; l < m.info.moe_layer_count; ++l) {
    vmoe_routing_stats_t s;
    if (vmoe_session_routing_stats(session, l, &s, &msg) != VMOE_STATUS_OK)
      continue;
    vmoe_routing_stats_t &t = r.layerStats[l];
    t.capacity = s.capacity;
    t.k = s.k;
    t.capacity_factor = s.capacity_factor;
    t.bpr = s.bpr;
    t.assignments += s.assignments;
    t.assignments_kept += s.assignments_kept;
    t.assignments_dropped += s.assignments_dropped;
    std::vector<double> shares(s.image_count);
    vmoe_session_image_coverage(session, l, shares.data(), s.image_count, &msg);
    int64_t real = std::min<int64_t>(m.batch, x.images - c * m.batch);
    for (int64_t b = 0; b < real && b < (int64_t)shares.size(); ++b)
      r.minCoverage[l] = std::min(r.minCoverage[l], shares[b]);
  }
}

/// Runs every chunk o.repeat times. Returns 0, or 1 when a run fails
/// (message printed).
int runChunks(vmoe_session_t *session, const Options &o, const ModuleShape &m,
              const Inputs &x, const Chunks &chunks, Results &r) {
  uint32_t outputCount = m.info.output_count;
  r.outputs.resize(outputCount);
  for (uint32_t i = 0; i < outputCount; ++i)
    r.outputs[i].resize(chunks.count * (m.outs[i].size_bytes / 4));
  r.layerStats.resize(m.info.moe_layer_count);
  r.minCoverage.resize(m.info.moe_layer_count);
  vmoe_run_options_t ropts = {o.capacityFactor, o.bpr, o.numSelectedExperts};
  // Shapes of a call, whose batch dim each chunk sets (no allocation in the
  // timed loop).
  std::vector<int64_t> runInShape = m.inShape;
  std::vector<std::vector<int64_t>> runOutShapes(outputCount);
  for (uint32_t i = 0; i < outputCount; ++i)
    runOutShapes[i].assign(m.outs[i].shape, m.outs[i].shape + m.outs[i].rank);
  std::vector<vmoe_tensor_t> outTensors(outputCount);
  vmoe_message_t msg;
  for (int rep = 0; rep < o.repeat; ++rep) {
    std::fill(r.layerStats.begin(), r.layerStats.end(), vmoe_routing_stats_t{});
    std::fill(r.minCoverage.begin(), r.minCoverage.end(), 1.0);
    auto t0 = std::chrono::steady_clock::now();
    double statsTime = 0;
    for (int64_t c = 0; c < chunks.count; ++c) {
      int64_t run = c + 1 < chunks.count ? m.batch : chunks.lastRun;
      runInShape[0] = run;
      // The runtime only reads inputs (vmoe_tensor_t has one pointer type).
      float *chunk =
          const_cast<float *>(x.values.data()) + c * m.batch * m.itemFloats;
      vmoe_tensor_t inTensor = {VMOE_DTYPE_F32, m.in.rank, runInShape.data(),
                                chunk, run * m.itemFloats * 4};
      for (uint32_t i = 0; i < outputCount; ++i) {
        const vmoe_tensor_info_t &out = m.outs[i];
        uint64_t perImage = out.size_bytes / m.batch;
        if (out.batch_dim == 0)
          runOutShapes[i][0] = run;
        outTensors[i] = {out.dtype, out.rank, runOutShapes[i].data(),
                         r.outputs[i].data() + c * (out.size_bytes / 4),
                         out.batch_dim == 0 ? run * perImage : out.size_bytes};
      }
      if (vmoe_status_t st =
              vmoe_session_run(session, &inTensor, 1, outTensors.data(),
                               outTensors.size(), &ropts, &msg))
        return fail(vmoe::tools::statusMessage(st, msg));
      // Reading the statistics is not part of inference: keep it out of the
      // timing.
      auto s0 = std::chrono::steady_clock::now();
      addRoutingStats(session, m, x, c, r);
      statsTime += std::chrono::duration<double, std::milli>(
                       std::chrono::steady_clock::now() - s0)
                       .count();
    }
    auto t1 = std::chrono::steady_clock::now();
    r.times.push_back(
        std::chrono::duration<double, std::milli>(t1 - t0).count() - statsTime);
  }
  std::sort(r.times.begin(), r.times.end());
  return 0;
}

//===----------------------------------------------------------------------===//
// Reporting
//===----------------------------------------------------------------------===//

/// Prints the top classes of the first o.show images; returns how many
/// images' top class matches their label.
int64_t printClasses(vmoe_module_t *module, const Options &o,
                     const ModuleShape &m, const Inputs &x, const Results &r) {
  int64_t correct = 0;
  bool classify = m.info.output_count > 0 && m.outs[0].rank == 2;
  int64_t classes = classify ? m.outs[0].shape[1] : 0;
  for (int64_t b = 0; classify && b < x.images; ++b) {
    const float *logits = r.outputs[0].data() + b * classes;
    std::vector<int64_t> idx(classes);
    std::iota(idx.begin(), idx.end(), 0);
    int top = std::min<int64_t>(o.top, classes);
    std::partial_sort(idx.begin(), idx.begin() + std::max(top, 1), idx.end(),
                      [&](int64_t p, int64_t q) {
                        return logits[p] > logits[q] ||
                               (logits[p] == logits[q] && p < q);
                      });
    if (!x.labels.empty() && idx[0] == x.labels[b])
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
    if (!x.labels.empty())
      std::printf("  [label %d]", x.labels[b]);
    std::printf("\n");
  }
  return correct;
}

/// Routing per MoE layer, accuracy, time, and one line for scripts.
void printSummary(vmoe_session_t *session, const Options &o,
                  const ModuleShape &m, const Inputs &x, const Results &r,
                  int64_t correct) {
  uint64_t assignments = 0, kept = 0;
  for (uint32_t l = 0; l < m.info.moe_layer_count; ++l) {
    const vmoe_routing_stats_t &s = r.layerStats[l];
    assignments += s.assignments;
    kept += s.assignments_kept;
    if (!o.quiet)
      std::printf(
          "MoE layer %u: k %u, capacity %u (factor %.3g), BPR %s, kept %" PRIu64
          " of %" PRIu64 " assignments (%.1f%%), least-covered image "
          "%.1f%% of its tokens\n",
          l, s.k, s.capacity, s.capacity_factor, s.bpr ? "on" : "off",
          s.assignments_kept, s.assignments,
          s.assignments ? 100.0 * s.assignments_kept / s.assignments : 0.0,
          100.0 * r.minCoverage[l]);
  }
  int64_t images = x.images;
  double median = r.times[r.times.size() / 2];
  if (!x.labels.empty())
    std::printf("accuracy: %" PRId64 " of %" PRId64 " (%.2f%%)\n", correct,
                images, 100.0 * correct / images);
  std::printf("time: median %.3f ms over %d run(s) of %" PRId64
              " image(s), %.3f ms per image, %u thread(s)\n",
              median, o.repeat, images, median / images,
              vmoe_session_thread_count(session));
  // One line for scripts: the numbers above, comma separated.
  vmoe_routing_stats_t first =
      m.info.moe_layer_count ? r.layerStats[0] : vmoe_routing_stats_t{};
  std::printf("summary,images=%" PRId64 ",accuracy=%.6f,capacity_factor=%.6g,"
              "bpr=%d,assignments_kept_share=%.6f,ms_per_image=%.6f\n",
              images, x.labels.empty() ? -1.0 : double(correct) / images,
              first.capacity_factor, first.bpr,
              assignments ? double(kept) / assignments : 1.0, median / images);
}

void printProfile(vmoe_module_t *module, vmoe_session_t *session,
                  const ModuleShape &m) {
  vmoe::tools::DispatchProfile profile;
  if (!vmoe::tools::readProfile(session, m.info.dispatch_count, profile))
    return;
  double total = 0;
  for (uint64_t v : profile.nanoseconds)
    total += v;
  std::printf("profile: mean per call over %" PRIu64 " call(s)\n",
              profile.runs);
  for (uint32_t d = 0; d < m.info.dispatch_count; ++d)
    std::printf("  %3u %-40s %9.3f ms %5.1f%%\n", d,
                vmoe_module_dispatch_kernel(module, d), profile.meanMs(d),
                total > 0 ? 100.0 * profile.nanoseconds[d] / total : 0);
}

/// Writes the first output of the real images (no padding) to o.output.
int writeOutput(const Options &o, const ModuleShape &m, const Inputs &x,
                const Results &r) {
  vmoe::tools::NpyArray array;
  array.dtype = "<f4";
  array.shape.assign(m.outs[0].shape, m.outs[0].shape + m.outs[0].rank);
  if (!array.shape.empty())
    array.shape[0] = x.images;
  array.data.resize(m.outs[0].size_bytes / m.batch * x.images);
  std::memcpy(array.data.data(), r.outputs[0].data(), array.data.size());
  std::string error;
  if (!vmoe::tools::writeNpy(o.output, array, &error))
    return fail(error);
  return 0;
}

} // namespace

int runMain(int argc, char **argv) {
  Options o;
  if (int rc = parseArgs(argc, argv, o))
    return rc;
  if (o.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }

  std::string error;
  if (!o.output.empty()) {
    std::vector<std::string> inputs = o.imageFiles;
    inputs.insert(inputs.end(), {o.module, o.input, o.labels});
    if (!vmoe::tools::checkOutputIsNoInput("--output", o.output, inputs,
                                           &error))
      return fail(error);
  }
  vmoe::tools::ModuleHandle module = loadModule(o, error);
  if (!module)
    return fail(error);
  if (o.info) {
    printInfo(module.get());
    return 0;
  }
  ModuleShape m;
  if (int rc = describeModule(module.get(), m))
    return rc;
  Inputs x;
  if (int rc = loadInputs(o, m, x))
    return rc;
  if (!o.labels.empty())
    if (int rc = loadLabels(o.labels, x))
      return rc;
  Chunks chunks = planChunks(o, m, x);

  vmoe_session_options_t sopts;
  vmoe_session_options_init(&sopts);
  sopts.thread_count = o.threads;
  sopts.profile = o.profile;
  sopts.device = o.device;
  sopts.device_ordinal = o.deviceOrdinal;
  if (o.cudaGraphs >= 0)
    sopts.cuda_graphs = o.cudaGraphs;
  if (o.cudaGraphCache)
    sopts.cuda_graph_cache = o.cudaGraphCache;
  vmoe::tools::SessionHandle session =
      vmoe::tools::createSession(module.get(), sopts, error);
  if (!session)
    return fail(error);
  Results r;
  if (int rc = runChunks(session.get(), o, m, x, chunks, r))
    return rc;

  int64_t correct = printClasses(module.get(), o, m, x, r);
  printSummary(session.get(), o, m, x, r, correct);
  if (o.profile)
    printProfile(module.get(), session.get(), m);
  if (!o.output.empty() && m.info.output_count > 0)
    return writeOutput(o, m, x, r);
  return 0;
}

int main(int argc, char **argv) {
  try {
    return runMain(argc, argv);
  } catch (const std::bad_alloc &) {
    // Buffers sized from the module (below the tensor cap) and the inputs.
    return fail("out of memory");
  }
}
