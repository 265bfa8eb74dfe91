//===- vmoe-run.cpp - run a compiled vmoe module --------------------------===//
//
// Loads a module, runs it on an input (.npy, or a deterministic random batch)
// with the chosen capacity factor and BPR setting, prints the top classes of
// each image and what routing did in every MoE layer, and optionally writes
// the outputs. Uses only the runtime's C API.
//
//===----------------------------------------------------------------------===//

#include "vmoe/runtime.h"

#include "Ranks.h"
#include "RunOptions.h"

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

using namespace vmoe::tools::run;

/// "rank R of N: " once vmoe-run runs as a rank of an MPI job.
std::string rankPrefix;

int fail(const std::string &message) {
  return vmoe::tools::fail(kTool, rankPrefix + message);
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
  return vmoe::tools::isImageFile(path) || ext == ".png" || ext == ".jpg" ||
         ext == ".jpeg" || ext == ".ppm" || ext == ".pgm" || ext == ".pnm";
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
int loadInputs(const Options &o, const ModuleShape &m, uint32_t ranks,
               Inputs &x) {
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
  x.images = m.batch * ranks; // one batch per rank
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

/// The class names of --classes (one per line), or the module's.
int loadClassNames(vmoe_module_t *module, const Options &o,
                   const ModuleShape &m, std::vector<std::string> &names) {
  bool classify = m.info.output_count > 0 && m.outs[0].rank == 2;
  int64_t classes = classify ? m.outs[0].shape[1] : 0;
  if (o.classes.empty()) {
    for (int64_t i = 0; i < classes; ++i) {
      const char *name = vmoe_module_class_name(module, uint32_t(i));
      names.push_back(name ? name : "");
    }
    return 0;
  }
  if (!classify)
    return fail("--classes names the classes of a (batch, classes) output; "
                "this module's first output is not one");
  std::string error;
  if (!vmoe::tools::readLines(o.classes, names, &error))
    return fail(error);
  if (int64_t(names.size()) != classes)
    return fail(o.classes + " holds " + std::to_string(names.size()) +
                " class names; the module has " + std::to_string(classes) +
                " classes");
  return 0;
}

/// Prints the top classes of the first o.show images; returns how many
/// images' top class matches their label.
int64_t printClasses(const std::vector<std::string> &names, const Options &o,
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
      const std::string &name = names[idx[j]];
      if (!name.empty())
        std::printf(" %s (%.4f)", name.c_str(), logits[idx[j]]);
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
  // Without labels there is no accuracy, and no field for it.
  std::printf("summary,images=%" PRId64, images);
  if (!x.labels.empty())
    std::printf(",accuracy=%.6f", double(correct) / images);
  std::printf(",capacity_factor=%.6g,bpr=%d,assignments_kept_share=%.6f,"
              "ms_per_image=%.6f\n",
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

/// The .npy dtype of an output vmoe-run can write, or null.
const char *npyDtype(vmoe_dtype_t dtype) {
  return dtype == VMOE_DTYPE_F32   ? "<f4"
         : dtype == VMOE_DTYPE_I32 ? "<i4"
                                   : nullptr;
}

/// Checks that the module has an output, of a dtype vmoe-run writes, for
/// every --output. Returns 0, or 1 (message printed).
int checkOutputs(const Options &o, const ModuleShape &m) {
  if (o.outputs.size() > m.outs.size())
    return fail(std::to_string(o.outputs.size()) + " --output files for " +
                std::to_string(m.outs.size()) + " module output(s)");
  for (size_t i = 0; i < o.outputs.size(); ++i)
    if (!npyDtype(m.outs[i].dtype))
      return fail(std::string("output ") + m.outs[i].name + " is " +
                  vmoe_dtype_name(m.outs[i].dtype) +
                  "; --output writes float32 and int32 outputs");
  return 0;
}

/// Writes output i of the real images (no padding) to the i-th --output;
/// an output without a batch dim as the last chunk left it.
int writeOutputs(const Options &o, const ModuleShape &m, const Inputs &x,
                 const Results &r) {
  for (size_t i = 0; i < o.outputs.size(); ++i) {
    const vmoe_tensor_info_t &out = m.outs[i];
    vmoe::tools::NpyArray array;
    array.dtype = npyDtype(out.dtype);
    array.shape.assign(out.shape, out.shape + out.rank);
    const float *data = r.outputs[i].data();
    uint64_t bytes = out.size_bytes;
    if (out.batch_dim == 0) {
      array.shape[0] = x.images;
      bytes = out.size_bytes / m.batch * x.images;
    } else {
      data += (r.outputs[i].size() - out.size_bytes / 4);
    }
    array.data.resize(bytes);
    std::memcpy(array.data.data(), data, bytes);
    std::string error;
    if (!vmoe::tools::writeNpy(o.outputs[i], array, &error))
      return fail(error);
  }
  return 0;
}

/// Images per routing group: a rank's slice must be whole groups for its
/// routing to be the one process's. 0 when a layer's groups do not align
/// with images (message printed).
int64_t imagesPerGroup(vmoe_module_t *module, const ModuleShape &m) {
  int64_t images = 1;
  for (uint32_t l = 0; l < m.info.moe_layer_count; ++l) {
    vmoe_moe_layer_info_t layer;
    vmoe_message_t msg;
    if (vmoe_module_moe_layer_info(module, l, &layer, &msg))
      return fail(msg.text), 0;
    int64_t s = layer.group_size, t = layer.tokens_per_image, g = 1;
    if (s % t == 0)
      g = s / t;
    else if (t % s != 0)
      return fail("MoE layer " + std::to_string(l) + ": groups of " +
                  std::to_string(s) + " tokens do not align with images of " +
                  std::to_string(t) + ": the images cannot be split by rank"),
             0;
    images = std::lcm(images, g);
  }
  return images;
}

/// This rank's contiguous slice of the images (the whole run keeps `x` for
/// the labels and the report). Returns 0, or 1 (message printed).
int sliceForRank(vmoe_module_t *module, const ModuleShape &m,
                 const Ranks &ranks, const Inputs &x, Inputs &mine) {
  int64_t group = imagesPerGroup(module, m);
  if (group == 0)
    return 1;
  int64_t step = std::lcm(group, std::max<int64_t>(m.info.batch_multiple, 1));
  int64_t n = ranks.size;
  if (x.images % (n * step) != 0)
    return fail(std::to_string(x.images) + " image(s) do not split into " +
                std::to_string(n) + " equal slices of whole routing groups (" +
                std::to_string(step) + " image(s) each): give a multiple of " +
                std::to_string(n * step) + " images");
  mine.images = x.images / n;
  auto begin = x.values.begin() + ranks.rank * mine.images * m.itemFloats;
  mine.values.assign(begin, begin + mine.images * m.itemFloats);
  return 0;
}

/// Rank 0 gets every rank's outputs (in rank order: image order) and the
/// summed routing statistics; the slowest rank's times. Returns 0, or 1.
int gatherResults(Ranks &ranks, const ModuleShape &m, const Inputs &mine,
                  Results &r) {
  std::string error;
  uint32_t n = ranks.size;
  for (uint32_t i = 0; i < m.info.output_count; ++i) {
    if (m.outs[i].batch_dim != 0)
      continue; // the same on every rank's last call: rank 0's
    uint64_t floats = m.outs[i].size_bytes / 4 / m.batch * mine.images;
    std::vector<float> all(floats * n);
    if (!ranks.allGather(r.outputs[i].data(), all.data(), floats * 4, error))
      return fail(error);
    r.outputs[i] = std::move(all);
  }
  struct LayerRecord {
    uint64_t assignments, kept, dropped;
    double minCoverage;
  };
  for (uint32_t l = 0; l < m.info.moe_layer_count; ++l) {
    vmoe_routing_stats_t &s = r.layerStats[l];
    LayerRecord mineRecord = {s.assignments, s.assignments_kept,
                              s.assignments_dropped, r.minCoverage[l]};
    std::vector<LayerRecord> all(n);
    if (!ranks.allGather(&mineRecord, all.data(), sizeof(LayerRecord), error))
      return fail(error);
    s.assignments = s.assignments_kept = s.assignments_dropped = 0;
    for (const LayerRecord &rec : all) {
      s.assignments += rec.assignments;
      s.assignments_kept += rec.kept;
      s.assignments_dropped += rec.dropped;
      r.minCoverage[l] = std::min(r.minCoverage[l], rec.minCoverage);
    }
  }
  std::vector<double> times(r.times.size() * n);
  if (!ranks.allGather(r.times.data(), times.data(), r.times.size() * 8, error))
    return fail(error);
  for (size_t k = 0; k < r.times.size(); ++k)
    for (uint32_t j = 0; j < n; ++j)
      r.times[k] = std::max(r.times[k], times[j * r.times.size() + k]);
  return 0;
}

/// Loads the module and the inputs (all of them, on every rank). Returns 0,
/// or 1 (message printed).
int prepare(const Options &o, const Ranks &ranks,
            vmoe::tools::ModuleHandle &module, ModuleShape &m,
            std::vector<std::string> &classNames, Inputs &x) {
  std::string error;
  module = loadModule(o, error);
  if (!module)
    return fail(error);
  if (o.info)
    return 0;
  if (int rc = describeModule(module.get(), m))
    return rc;
  if (int rc = checkOutputs(o, m))
    return rc;
  if (int rc = loadClassNames(module.get(), o, m, classNames))
    return rc;
  if (int rc = loadInputs(o, m, ranks.size, x))
    return rc;
  if (!o.labels.empty())
    if (int rc = loadLabels(o.labels, x))
      return rc;
  return 0;
}

int runRanked(Options o, Ranks &ranks) {
  std::string error;
  std::vector<std::string> inputs = o.imageFiles;
  inputs.insert(inputs.end(), {o.module, o.input, o.labels, o.classes});
  for (const std::string &output : o.outputs)
    if (!vmoe::tools::checkOutputIsNoInput("--output", output, inputs, &error))
      return fail(error);
  o.module = ranks.modulePath(o.module);
  if (ranks.rank != 0)
    o.quiet = true; // rank 0 reports for the job
  vmoe::tools::ModuleHandle module;
  ModuleShape m;
  std::vector<std::string> classNames;
  Inputs x, mine;
  int rc = prepare(o, ranks, module, m, classNames, x);
  if (rc == 0 && !o.info && ranks.active())
    rc = sliceForRank(module.get(), m, ranks, x, mine);
  // Every rank fails here if one did (a missing file, a bad input), before
  // any rank waits for the others in a session.
  if (!ranks.allOk(rc == 0, error))
    return rc ? rc : fail(error);
  if (o.info) {
    if (ranks.rank == 0)
      printInfo(module.get());
    return 0;
  }
  Inputs &run = ranks.active() ? mine : x;
  Chunks chunks = planChunks(o, m, run);

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
  sopts.collective = ranks.collective();
  vmoe::tools::SessionHandle session =
      vmoe::tools::createSession(module.get(), sopts, error);
  if (!session)
    return fail(error);
  Results r;
  if (int rc = runChunks(session.get(), o, m, run, chunks, r))
    return rc;
  if (ranks.active())
    if (int rc = gatherResults(ranks, m, run, r))
      return rc;
  if (ranks.rank != 0)
    return 0;

  int64_t correct = printClasses(classNames, o, m, x, r);
  printSummary(session.get(), o, m, x, r, correct);
  if (ranks.active())
    std::printf("ranks: %u, each on %" PRId64 " image(s)\n", ranks.size,
                run.images);
  if (o.profile)
    printProfile(module.get(), session.get(), m);
  return writeOutputs(o, m, x, r);
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
  if (o.version) {
    vmoe::tools::printVersion(kTool);
    return 0;
  }
  Ranks ranks;
  if (int rc = ranks.start(o))
    return rc;
  rankPrefix = ranks.prefix();
  return ranks.finish(runRanked(o, ranks));
}

int main(int argc, char **argv) {
  try {
    return runMain(argc, argv);
  } catch (const std::bad_alloc &) {
    // Buffers sized from the module (below the tensor cap) and the inputs.
    return fail("out of memory");
  }
}
