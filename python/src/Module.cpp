//===- Module.cpp - Modules, their description and the Python module ------===//
//
// Loading (file or bytes, with the C API's load options), the module's
// description as a dict, and the definition of the `vmoe._vmoe` extension.
//
//===----------------------------------------------------------------------===//

#include "Bindings.h"

#include <pybind11/stl.h>

#include <cstring>

namespace vmoe::python {

void check(vmoe_status_t status, const vmoe_message_t &message) {
  if (status != VMOE_STATUS_OK)
    throw StatusError{status, message.text};
}

namespace {

vmoe_module_load_options_t loadOptions(bool verifyWeights,
                                       const std::string &keys) {
  vmoe_module_load_options_t options;
  vmoe_module_load_options_init(&options);
  options.verify_weights =
      verifyWeights ? VMOE_VERIFY_WEIGHTS_ALL : VMOE_VERIFY_WEIGHTS_NONE;
  if (keys.size() % VMOE_PUBLIC_KEY_SIZE != 0)
    throw StatusError{VMOE_STATUS_INVALID_ARGUMENT,
                      "trusted keys are " +
                          std::to_string(VMOE_PUBLIC_KEY_SIZE) + " bytes each"};
  options.trusted_keys = reinterpret_cast<const uint8_t *>(keys.data());
  options.trusted_key_count =
      static_cast<uint32_t>(keys.size() / VMOE_PUBLIC_KEY_SIZE);
  return options;
}

py::tuple shapeTuple(const int64_t *shape, uint32_t rank) {
  py::tuple t(rank);
  for (uint32_t i = 0; i < rank; ++i)
    t[i] = shape[i];
  return t;
}

py::dict tensorDict(const vmoe_tensor_info_t &t) {
  py::dict d;
  d["name"] = t.name;
  d["dtype"] = vmoe_dtype_name(t.dtype);
  d["shape"] = shapeTuple(t.shape, t.rank);
  d["batch_dim"] = t.batch_dim;
  return d;
}

py::list tensorList(vmoe_module_t *m, uint32_t count, bool outputs) {
  py::list list;
  for (uint32_t i = 0; i < count; ++i) {
    vmoe_tensor_info_t t;
    vmoe_message_t msg;
    check(outputs ? vmoe_module_output_info(m, i, &t, &msg)
                  : vmoe_module_input_info(m, i, &t, &msg),
          msg);
    list.append(tensorDict(t));
  }
  return list;
}

py::list moeLayerList(vmoe_module_t *m, uint32_t count) {
  py::list list;
  for (uint32_t i = 0; i < count; ++i) {
    vmoe_moe_layer_info_t l;
    vmoe_message_t msg;
    check(vmoe_module_moe_layer_info(m, i, &l, &msg), msg);
    py::dict d;
    d["name"] = l.name;
    d["num_experts"] = l.num_experts;
    d["k"] = l.k;
    d["group_size"] = l.group_size;
    d["num_groups"] = l.num_groups;
    d["num_tokens"] = l.num_tokens;
    d["tokens_per_image"] = l.tokens_per_image;
    d["default_capacity_factor"] = l.default_capacity_factor;
    d["max_capacity_factor"] = l.max_capacity_factor;
    d["max_capacity"] = l.max_capacity;
    d["default_bpr"] = bool(l.default_bpr);
    d["has_stats"] = bool(l.has_stats);
    list.append(d);
  }
  return list;
}

py::list executableList(vmoe_module_t *m, uint32_t count) {
  py::list list;
  for (uint32_t i = 0; i < count; ++i) {
    vmoe_executable_info_t e;
    vmoe_message_t msg;
    check(vmoe_module_executable_info(m, i, &e, &msg), msg);
    py::dict d;
    d["format"] = e.format == VMOE_EXECUTABLE_CUDA ? "cuda" : "cpu";
    d["name"] = e.name;
    d["target_triple"] = e.target_triple;
    d["cpu_features"] = e.cpu_features;
    d["size_bytes"] = e.size_bytes;
    d["ptx_sm"] = e.ptx_sm;
    d["cubin_count"] = e.cubin_count;
    list.append(d);
  }
  return list;
}

std::string hex(const uint8_t *bytes, size_t size) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < size; ++i) {
    s += digits[bytes[i] >> 4];
    s += digits[bytes[i] & 15];
  }
  return s;
}

/// The parts of info() that describe the model rather than the file.
void addModelInfo(vmoe_module_t *m, const vmoe_module_info_t &info,
                  py::dict &d) {
  py::list inputs = tensorList(m, info.input_count, false);
  py::list outputs = tensorList(m, info.output_count, true);
  d["inputs"] = inputs;
  d["outputs"] = outputs;
  d["image_shape"] = py::none();
  if (info.input_count > 0) {
    py::tuple shape = inputs[0]["shape"];
    d["image_shape"] = shape[py::slice(1, shape.size(), 1)];
  }
  d["num_classes"] = py::none();
  if (info.output_count > 0) {
    py::tuple shape = outputs[0]["shape"];
    if (shape.size() == 2)
      d["num_classes"] = shape[1];
  }
  py::object names = py::none();
  if (info.class_count > 0) {
    py::list list;
    for (uint32_t i = 0; i < info.class_count; ++i)
      list.append(vmoe_module_class_name(m, i));
    names = list;
  }
  d["class_names"] = names;
  py::list layers = moeLayerList(m, info.moe_layer_count);
  d["moe_layers"] = layers;
  py::list experts;
  for (py::handle l : layers)
    experts.append(l["num_experts"]);
  d["num_experts"] = experts;
}

} // namespace

std::shared_ptr<Module> Module::loadFile(const std::string &path,
                                         bool verifyWeights,
                                         const std::string &keys, bool copy) {
  vmoe_module_load_options_t options = loadOptions(verifyWeights, keys);
  options.copy = copy;
  vmoe_module_t *handle = nullptr;
  vmoe_message_t msg;
  vmoe_status_t status;
  {
    // Loading checks digests over the whole file: let Python run meanwhile.
    py::gil_scoped_release release;
    status = vmoe_module_load_file_ex(path.c_str(), &options, &handle, &msg);
  }
  check(status, msg);
  return std::make_shared<Module>(handle);
}

std::shared_ptr<Module> Module::loadBytes(const py::buffer &data,
                                          bool verifyWeights,
                                          const std::string &keys) {
  // vmoe/_runtime.py hands over memoryview(data).cast("B"): one
  // contiguous run of bytes.
  py::buffer_info buffer = data.request();
  if (buffer.ndim != 1 || buffer.itemsize != 1 || buffer.strides[0] != 1)
    throw StatusError{VMOE_STATUS_INVALID_ARGUMENT,
                      "module bytes must be one contiguous run of bytes"};
  vmoe_module_load_options_t options = loadOptions(verifyWeights, keys);
  size_t size = static_cast<size_t>(buffer.size * buffer.itemsize);
  vmoe_module_t *handle = nullptr;
  vmoe_message_t msg;
  vmoe_status_t status;
  {
    // COPY: the runtime keeps its own copy, so the Python object may change
    // or go away after the call; `data` keeps the buffer alive until then.
    py::gil_scoped_release release;
    status = vmoe_module_load_memory_ex(buffer.ptr, size, VMOE_MEMORY_COPY,
                                        &options, &handle, &msg);
  }
  check(status, msg);
  return std::make_shared<Module>(handle);
}

py::dict Module::info() const {
  vmoe_module_info_t info;
  vmoe_module_info(handle, &info);
  py::dict d;
  d["name"] = info.name;
  d["producer"] = info.producer;
  d["format_version"] = py::make_tuple(info.format_major, info.format_minor);
  d["config_json"] =
      py::str(info.config_json, static_cast<size_t>(info.config_json_size));
  d["batch"] = info.max_batch;
  d["batch_multiple"] = info.batch_multiple;
  addModelInfo(handle, info, d);
  py::list executables = executableList(handle, info.executable_count);
  d["executables"] = executables;
  // The target the module was compiled for: its first executable's.
  d["device"] = py::none();
  d["target_triple"] = py::none();
  d["cpu_features"] = py::none();
  if (info.executable_count > 0) {
    py::dict first = executables[0];
    d["device"] = first["format"];
    if (py::str(first["format"]).cast<std::string>() == "cpu") {
      d["target_triple"] = first["target_triple"];
      d["cpu_features"] = first["cpu_features"];
    }
  }
  d["kernels"] = info.kernel_count;
  d["dispatches"] = info.dispatch_count;
  d["segments"] = info.segment_count;
  d["constants"] = info.constant_count;
  d["arena_bytes"] = info.arena_size;
  d["arena_alignment"] = info.arena_alignment;
  d["weight_bytes"] = info.constant_bytes;
  d["file_size"] = info.file_size;
  vmoe_module_integrity_t integrity;
  vmoe_module_integrity(handle, &integrity);
  d["signed"] = bool(integrity.is_signed);
  d["key_id"] = integrity.is_signed
                    ? py::object(py::str(hex(integrity.key_id, 8)))
                    : py::object(py::none());
  d["signature_verified"] = bool(integrity.signature_verified);
  d["weights_verified"] = bool(integrity.weights_verified);
  return d;
}

} // namespace vmoe::python

using namespace vmoe::python;

PYBIND11_MODULE(_vmoe, m) {
  m.doc() = "Native part of the vmoe package (the runtime's C API); use the "
            "`vmoe` package.";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p)
        std::rethrow_exception(p);
    } catch (const StatusError &e) {
      // The runtime's message may quote file names: decode leniently.
      py::object text = py::reinterpret_steal<py::object>(PyUnicode_DecodeUTF8(
          e.message.data(), static_cast<Py_ssize_t>(e.message.size()),
          "replace"));
      py::object cls = py::module_::import("vmoe._errors")
                           .attr("error_class")(static_cast<int>(e.status));
      PyErr_SetObject(cls.ptr(), text.ptr());
    }
  });

  m.def("status_name", [](int status) {
    return vmoe_status_name(static_cast<vmoe_status_t>(status));
  });
  m.def("runtime_format_version", [] {
    uint32_t major = 0, minor = 0;
    vmoe_runtime_format_version(&major, &minor);
    return py::make_tuple(major, minor);
  });
  m.def("compute_capacity", [](uint64_t groupSize, uint32_t k,
                               uint32_t numExperts, double capacityFactor) {
    uint32_t capacity = 0;
    vmoe_message_t msg;
    check(vmoe_compute_capacity(groupSize, k, numExperts, capacityFactor,
                                &capacity, &msg),
          msg);
    return capacity;
  });

  py::class_<Module, std::shared_ptr<Module>>(m, "Module")
      .def_static("load_file", &Module::loadFile, py::arg("path"),
                  py::arg("verify_weights"), py::arg("trusted_keys"),
                  py::arg("copy"))
      .def_static("load_bytes", &Module::loadBytes, py::arg("data"),
                  py::arg("verify_weights"), py::arg("trusted_keys"))
      .def("info", &Module::info);

  py::class_<Session>(m, "Session")
      .def(py::init<std::shared_ptr<Module>, int, uint32_t, uint32_t, double,
                    int, bool, int>(),
           py::arg("module"), py::arg("device"), py::arg("device_ordinal"),
           py::arg("threads"), py::arg("capacity_factor"), py::arg("bpr"),
           py::arg("profile"), py::arg("cuda_graphs"))
      .def("run", &Session::run, py::arg("images"), py::arg("capacity_factor"),
           py::arg("bpr"), py::arg("k"), py::arg("out"))
      .def("routing_stats", &Session::routingStats)
      .def("profile", &Session::profile)
      .def_property_readonly("thread_count", &Session::threadCount)
      .def_property_readonly("busy", &Session::busy)
      .def_property_readonly("input_bytes_copied", &Session::inputBytesCopied);
}
