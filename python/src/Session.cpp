//===- Session.cpp - Running numpy arrays through a session ---------------===//
//
// A call takes any number of images and runs them in chunks of the compiled
// batch, as vmoe-run does: each chunk reads the caller's float32 array in
// place and writes straight into the output array. Only a last chunk that is
// not a whole number of batch steps is copied (it is padded with zero images
// up to the module's batch multiple), and uint8 pixels are converted. The GIL
// is released from the first chunk to the last statistics read.
//
//===----------------------------------------------------------------------===//

#include "Bindings.h"

#include <algorithm>
#include <cstring>

namespace vmoe::python {

namespace {

constexpr const char *kBusyMessage =
    "the session is running a call on another thread; use one session per "
    "thread";

/// Clears the session's running flag when the call ends, however it ends.
struct RunningGuard {
  std::atomic<bool> &flag;
  ~RunningGuard() { flag.store(false); }
};

bool isNativeFloat32(const py::dtype &dt) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const char native = '<';
#else
  const char native = '>';
#endif
  return dt.kind() == 'f' && dt.itemsize() == 4 &&
         (dt.byteorder() == '=' || dt.byteorder() == native);
}

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

int64_t product(const std::vector<int64_t> &shape, size_t from) {
  int64_t n = 1;
  for (size_t i = from; i < shape.size(); ++i)
    n *= shape[i];
  return n;
}

constexpr int kAlignedFlag = py::detail::npy_api::NPY_ARRAY_ALIGNED_;
constexpr int kCContiguousFlag = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_;

} // namespace

/// One call's buffers, resolved while the GIL is held.
struct Session::Call {
  int64_t images = 0;
  py::object keepInput;            // the array `in` or `pixels` points into
  const float *in = nullptr;       // images * itemFloats floats, or
  const uint8_t *pixels = nullptr; // uint8 pixels to convert
  std::vector<float> converted;
  std::vector<py::array> outArrays;
  std::vector<float *> outs; // per output: images * outItemFloats[i]
  vmoe_run_options_t options = {};
  vmoe_status_t status = VMOE_STATUS_OK;
  vmoe_message_t message = {};
};

Session::Session(std::shared_ptr<Module> moduleRef, int device,
                 uint32_t ordinal, uint32_t threads, double capacityFactor,
                 int bpr, bool profile, int cudaGraphs)
    : module(std::move(moduleRef)) {
  vmoe_module_t *m = module->get();
  vmoe_module_info(m, &info);
  if (info.input_count != 1)
    throw StatusError{VMOE_STATUS_UNSUPPORTED,
                      "vmoe sessions take modules with one input (the "
                      "images); this one has " +
                          std::to_string(info.input_count)};
  vmoe_message_t msg;
  vmoe_tensor_info_t in;
  check(vmoe_module_input_info(m, 0, &in, &msg), msg);
  if (in.dtype != VMOE_DTYPE_F32 || in.batch_dim != 0 || in.rank < 2)
    throw StatusError{VMOE_STATUS_UNSUPPORTED,
                      std::string("vmoe sessions take float32 images with "
                                  "the batch first; this module's input is ") +
                          vmoe_dtype_name(in.dtype) + " with batch dim " +
                          std::to_string(in.batch_dim)};
  inShape.assign(in.shape, in.shape + in.rank);
  itemFloats = product(inShape, 1);
  for (uint32_t i = 0; i < info.output_count; ++i) {
    vmoe_tensor_info_t out;
    check(vmoe_module_output_info(m, i, &out, &msg), msg);
    if (out.dtype != VMOE_DTYPE_F32 || out.batch_dim != 0 || out.rank < 1)
      throw StatusError{VMOE_STATUS_UNSUPPORTED,
                        "vmoe sessions take modules whose outputs are "
                        "float32 with the batch first; output " +
                            std::to_string(i) + " is not"};
    outShapes.emplace_back(out.shape, out.shape + out.rank);
    outItemFloats.push_back(product(outShapes.back(), 1));
  }
  for (uint32_t l = 0; l < info.moe_layer_count; ++l) {
    vmoe_moe_layer_info_t layer;
    check(vmoe_module_moe_layer_info(m, l, &layer, &msg), msg);
    if (!layer.has_stats)
      continue;
    LayerTotals t;
    t.layer = l;
    t.assigned.resize(layer.num_experts);
    t.kept.resize(layer.num_experts);
    totals.push_back(std::move(t));
  }

  vmoe_session_options_t options;
  vmoe_session_options_init(&options);
  options.device = static_cast<vmoe_device_t>(device);
  options.device_ordinal = ordinal;
  options.thread_count = threads;
  options.capacity_factor = capacityFactor;
  options.bpr = bpr;
  options.profile = profile;
  if (cudaGraphs >= 0)
    options.cuda_graphs = cudaGraphs;
  vmoe_status_t status;
  {
    py::gil_scoped_release release;
    status = vmoe_session_create(m, &options, &handle, &msg);
  }
  check(status, msg);
}

void Session::prepareInput(const py::object &images, Call &call) {
  if (!py::isinstance<py::array>(images))
    throw py::type_error(
        "images must be a numpy.ndarray of float32 values in [-1, 1] or of "
        "uint8 pixels, not " +
        std::string(py::str(py::type::of(images).attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(images);
  py::dtype dt = a.dtype();
  bool f32 = isNativeFloat32(dt);
  bool u8 = dt.kind() == 'u' && dt.itemsize() == 1;
  if (!f32 && !u8)
    throw py::type_error(
        "images are " + std::string(py::str(dt)) +
        "; the model takes float32 images in [-1, 1] "
        "(images.astype(numpy.float32)) or uint8 pixels (mapped to [-1, 1] "
        "as x / 255 * 2 - 1)");
  std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
  std::vector<int64_t> item(inShape.begin() + 1, inShape.end());
  std::vector<int64_t> got;
  if (!shape.empty())
    got.assign(shape.begin() + 1, shape.end());
  // As vmoe-run: one-channel images may leave out the channel dim.
  if (got.size() + 1 == item.size() && item.back() == 1)
    got.push_back(1);
  if (shape.empty() || got != item) {
    std::vector<int64_t> want = {-1};
    want.insert(want.end(), item.begin(), item.end());
    throw StatusError{VMOE_STATUS_INVALID_ARGUMENT,
                      "images have shape " + shapeString(shape) +
                          "; the model takes " + shapeString(want) +
                          ": any number of images (images[None] for one)"};
  }
  call.images = shape[0];
  if (call.images == 0)
    throw StatusError{VMOE_STATUS_INVALID_ARGUMENT, "no images to run"};
  if (f32) {
    // The no-copy path: the runtime reads the caller's buffer.
    if (!(a.flags() & kCContiguousFlag) || !(a.flags() & kAlignedFlag))
      throw StatusError{VMOE_STATUS_INVALID_ARGUMENT,
                        "images are not a C-contiguous, aligned float32 array "
                        "(a view or a transpose?); the runtime reads them in "
                        "place: pass numpy.ascontiguousarray(images)"};
    call.in = static_cast<const float *>(a.data());
    call.keepInput = a;
    return;
  }
  // uint8 pixels are converted anyway; any layout will do.
  auto pixels = py::array_t<uint8_t, py::array::c_style>::ensure(a);
  if (!pixels)
    throw py::error_already_set();
  call.pixels = pixels.data();
  call.keepInput = pixels;
}

void Session::prepareOutputs(const py::object &out, Call &call) {
  size_t count = outShapes.size();
  if (!out.is_none() && count != 1)
    throw StatusError{VMOE_STATUS_INVALID_ARGUMENT,
                      "out= takes one array; this module has " +
                          std::to_string(count) + " outputs"};
  for (size_t i = 0; i < count; ++i) {
    std::vector<int64_t> shape = outShapes[i];
    shape[0] = call.images;
    if (out.is_none()) {
      py::array_t<float> a(
          std::vector<py::ssize_t>(shape.begin(), shape.end()));
      call.outs.push_back(a.mutable_data());
      call.outArrays.push_back(a);
      continue;
    }
    if (!py::isinstance<py::array>(out) ||
        !isNativeFloat32(py::reinterpret_borrow<py::array>(out).dtype()))
      throw py::type_error("out must be a float32 numpy.ndarray");
    py::array a = py::reinterpret_borrow<py::array>(out);
    std::vector<int64_t> got(a.shape(), a.shape() + a.ndim());
    if (got != shape || !(a.flags() & kCContiguousFlag) ||
        !(a.flags() & kAlignedFlag) || !a.writeable())
      throw StatusError{VMOE_STATUS_INVALID_ARGUMENT,
                        "out must be a writeable, C-contiguous float32 array "
                        "of shape " +
                            shapeString(shape) + "; it is " + shapeString(got)};
    float *data = static_cast<float *>(a.mutable_data());
    const char *o = reinterpret_cast<const char *>(data);
    const char *i0 = reinterpret_cast<const char *>(
        call.in ? static_cast<const void *>(call.in) : call.pixels);
    uint64_t inBytes = call.images * itemFloats * (call.in ? 4 : 1);
    uint64_t outBytes = call.images * outItemFloats[i] * 4;
    if (o < i0 + inBytes && i0 < o + outBytes)
      throw StatusError{VMOE_STATUS_INVALID_ARGUMENT,
                        "out overlaps the images"};
    call.outs.push_back(data);
    call.outArrays.push_back(a);
  }
}

void Session::addStats(int64_t realImages) {
  vmoe_message_t msg;
  for (LayerTotals &t : totals) {
    vmoe_routing_stats_t s;
    check(vmoe_session_routing_stats(handle, t.layer, &s, &msg), msg);
    std::vector<uint64_t> assigned(t.assigned.size()), kept(t.kept.size());
    check(
        vmoe_session_expert_load(handle, t.layer, assigned.data(), kept.data(),
                                 static_cast<uint32_t>(assigned.size()), &msg),
        msg);
    std::vector<double> shares(s.image_count);
    check(vmoe_session_image_coverage(handle, t.layer, shares.data(),
                                      s.image_count, &msg),
          msg);
    uint32_t images = t.stats.image_count;
    uint64_t tokens = t.stats.token_count;
    uint32_t groups = t.stats.group_count;
    uint64_t all = t.stats.assignments, keptSum = t.stats.assignments_kept,
             dropped = t.stats.assignments_dropped;
    t.stats = s;
    t.stats.image_count += images;
    t.stats.token_count += tokens;
    t.stats.group_count += groups;
    t.stats.assignments += all;
    t.stats.assignments_kept += keptSum;
    t.stats.assignments_dropped += dropped;
    for (size_t e = 0; e < assigned.size(); ++e) {
      t.assigned[e] += assigned[e];
      t.kept[e] += kept[e];
    }
    size_t real = std::min<size_t>(realImages, shares.size());
    t.coverage.insert(t.coverage.end(), shares.begin(), shares.begin() + real);
  }
}

void Session::runChunks(Call &call) {
  int64_t batch = info.max_batch;
  int64_t step = std::max<int64_t>(info.batch_multiple, 1);
  if (call.pixels) {
    call.converted.resize(call.images * itemFloats);
    for (size_t i = 0; i < call.converted.size(); ++i)
      call.converted[i] =
          static_cast<float>(call.pixels[i]) / 255.0f * 2.0f - 1.0f;
    call.in = call.converted.data();
    copiedBytes += call.converted.size() * sizeof(float);
  }
  size_t outputCount = outShapes.size();
  std::vector<int64_t> runIn = inShape;
  std::vector<std::vector<int64_t>> runOut = outShapes;
  std::vector<float> padIn;
  std::vector<std::vector<float>> padOut(outputCount);
  std::vector<vmoe_tensor_t> outTensors(outputCount);
  for (int64_t first = 0; first < call.images; first += batch) {
    int64_t real = std::min(batch, call.images - first);
    int64_t run = (real + step - 1) / step * step;
    const float *in = call.in + first * itemFloats;
    if (run != real) {
      padIn.assign(run * itemFloats, 0.0f);
      std::memcpy(padIn.data(), in, real * itemFloats * sizeof(float));
      in = padIn.data();
      copiedBytes += real * itemFloats * sizeof(float);
    }
    runIn[0] = run;
    // The runtime only reads inputs (vmoe_tensor_t has one pointer type).
    vmoe_tensor_t inTensor = {
        VMOE_DTYPE_F32, static_cast<uint32_t>(runIn.size()), runIn.data(),
        const_cast<float *>(in), run * itemFloats * sizeof(float)};
    for (size_t i = 0; i < outputCount; ++i) {
      float *data = call.outs[i] + first * outItemFloats[i];
      if (run != real) {
        padOut[i].assign(run * outItemFloats[i], 0.0f);
        data = padOut[i].data();
      }
      runOut[i][0] = run;
      outTensors[i] = {VMOE_DTYPE_F32, static_cast<uint32_t>(runOut[i].size()),
                       runOut[i].data(), data,
                       run * outItemFloats[i] * sizeof(float)};
    }
    call.status = vmoe_session_run(handle, &inTensor, 1, outTensors.data(),
                                   static_cast<uint32_t>(outputCount),
                                   &call.options, &call.message);
    if (call.status != VMOE_STATUS_OK)
      return;
    for (size_t i = 0; run != real && i < outputCount; ++i)
      std::memcpy(call.outs[i] + first * outItemFloats[i], padOut[i].data(),
                  real * outItemFloats[i] * sizeof(float));
    try {
      addStats(real);
    } catch (const StatusError &e) {
      call.status = e.status;
      std::snprintf(call.message.text, sizeof(call.message.text), "%s",
                    e.message.c_str());
      return;
    }
  }
}

py::object Session::run(const py::object &images, double capacityFactor,
                        int bpr, uint32_t numSelectedExperts,
                        const py::object &out) {
  bool idle = false;
  if (!running.compare_exchange_strong(idle, true))
    throw StatusError{VMOE_STATUS_FAILED_PRECONDITION, kBusyMessage};
  RunningGuard guard{running};
  // Whatever fails below, the statistics of an earlier call are gone.
  haveStats = false;
  Call call;
  prepareInput(images, call);
  prepareOutputs(out, call);
  call.options.capacity_factor = capacityFactor;
  call.options.bpr = bpr;
  call.options.num_selected_experts = numSelectedExperts;
  copiedBytes = 0;
  for (LayerTotals &t : totals) {
    t.stats = {};
    std::fill(t.assigned.begin(), t.assigned.end(), 0);
    std::fill(t.kept.begin(), t.kept.end(), 0);
    t.coverage.clear();
  }
  {
    py::gil_scoped_release release;
    runChunks(call);
  }
  check(call.status, call.message);
  haveStats = true;
  if (call.outArrays.size() == 1)
    return call.outArrays[0];
  py::tuple result(call.outArrays.size());
  for (size_t i = 0; i < call.outArrays.size(); ++i)
    result[i] = call.outArrays[i];
  return result;
}

py::dict Session::routingStats() const {
  if (running.load())
    throw StatusError{VMOE_STATUS_FAILED_PRECONDITION, kBusyMessage};
  if (!haveStats)
    throw StatusError{VMOE_STATUS_FAILED_PRECONDITION,
                      "no routing statistics: the session has not finished "
                      "a successful run"};
  py::list layers;
  uint64_t all = 0, kept = 0, dropped = 0;
  for (const LayerTotals &t : totals) {
    const vmoe_routing_stats_t &s = t.stats;
    vmoe_moe_layer_info_t layer;
    vmoe_message_t msg;
    check(vmoe_module_moe_layer_info(module->get(), t.layer, &layer, &msg),
          msg);
    py::dict d;
    d["layer"] = t.layer;
    d["name"] = layer.name;
    d["capacity"] = s.capacity;
    d["capacity_factor"] = s.capacity_factor;
    d["bpr"] = bool(s.bpr);
    d["num_experts"] = s.num_experts;
    d["k"] = s.k;
    d["images"] = s.image_count;
    d["tokens"] = s.token_count;
    d["groups"] = s.group_count;
    d["assignments"] = s.assignments;
    d["assignments_kept"] = s.assignments_kept;
    d["assignments_dropped"] = s.assignments_dropped;
    d["kept_share"] =
        s.assignments ? double(s.assignments_kept) / s.assignments : 1.0;
    d["expert_assigned"] = py::array_t<uint64_t>(
        static_cast<py::ssize_t>(t.assigned.size()), t.assigned.data());
    d["expert_kept"] = py::array_t<uint64_t>(
        static_cast<py::ssize_t>(t.kept.size()), t.kept.data());
    d["image_coverage"] = py::array_t<double>(
        static_cast<py::ssize_t>(t.coverage.size()), t.coverage.data());
    d["min_image_coverage"] =
        t.coverage.empty()
            ? 1.0
            : *std::min_element(t.coverage.begin(), t.coverage.end());
    layers.append(d);
    all += s.assignments;
    kept += s.assignments_kept;
    dropped += s.assignments_dropped;
  }
  py::dict d;
  d["assignments"] = all;
  d["assignments_kept"] = kept;
  d["assignments_dropped"] = dropped;
  d["kept_share"] = all ? double(kept) / all : 1.0;
  d["layers"] = layers;
  return d;
}

py::dict Session::profile() const {
  if (running.load())
    throw StatusError{VMOE_STATUS_FAILED_PRECONDITION, kBusyMessage};
  std::vector<uint64_t> ns(info.dispatch_count);
  uint64_t runs = 0;
  vmoe_message_t msg;
  check(
      vmoe_session_profile(handle, ns.data(), info.dispatch_count, &runs, &msg),
      msg);
  py::list dispatches;
  for (uint32_t d = 0; d < info.dispatch_count; ++d) {
    py::dict e;
    e["kernel"] = vmoe_module_dispatch_kernel(module->get(), d);
    e["total_ms"] = ns[d] / 1e6;
    e["mean_ms"] = runs ? ns[d] / 1e6 / runs : 0.0;
    dispatches.append(e);
  }
  py::dict result;
  result["runs"] = runs;
  result["dispatches"] = dispatches;
  return result;
}

} // namespace vmoe::python
