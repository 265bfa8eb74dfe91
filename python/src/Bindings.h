//===- Bindings.h - The vmoe Python package's native part -------*- C++ -*-===//
//
// pybind11 bindings over the runtime's C API (runtime/include/vmoe/runtime.h),
// the stable interface: the package needs nothing that the C API does not
// offer, and binding it keeps the package independent of the runtime's
// internal classes. Module and Session own one C handle each; the Python
// classes in python/vmoe/ wrap them.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_PYTHON_BINDINGS_H
#define VMOE_PYTHON_BINDINGS_H

#include "vmoe/runtime.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace vmoe::python {

namespace py = pybind11;

/// A failed call: raised in Python as the vmoe exception of its status
/// (vmoe/_errors.py), with the runtime's message.
struct StatusError {
  vmoe_status_t status;
  std::string message;
};

/// Throws StatusError unless `status` is OK.
void check(vmoe_status_t status, const vmoe_message_t &message);

/// A loaded module (one reference of the C handle).
class Module {
public:
  explicit Module(vmoe_module_t *handle) : handle(handle) {}
  ~Module() { vmoe_module_release(handle); }
  Module(const Module &) = delete;
  Module &operator=(const Module &) = delete;

  /// `keys`: trusted Ed25519 public keys, 32 bytes each, back to back.
  static std::shared_ptr<Module> loadFile(const std::string &path,
                                          bool verifyWeights,
                                          const std::string &keys, bool copy);
  /// Copies `data` (any contiguous buffer) into memory the module owns.
  static std::shared_ptr<Module> loadBytes(const py::buffer &data,
                                           bool verifyWeights,
                                           const std::string &keys);

  /// Everything the C API tells about the module, as a dict.
  py::dict info() const;
  vmoe_module_t *get() const { return handle; }

private:
  vmoe_module_t *handle;
};

/// Per MoE layer: routing statistics summed over the chunks of a call.
struct LayerTotals {
  uint32_t layer = 0;
  vmoe_routing_stats_t stats = {};
  std::vector<uint64_t> assigned, kept;
  /// Per real image (padding images left out).
  std::vector<double> coverage;
};

/// A session: a thread pool and an arena for one module; one call at a time.
class Session {
public:
  /// `capacityFactor` 0 and `bpr` -1: each layer's defaults; `cudaGraphs`
  /// -1: the runtime's default.
  Session(std::shared_ptr<Module> module, int device, uint32_t ordinal,
          uint32_t threads, double capacityFactor, int bpr, bool profile,
          int cudaGraphs);
  ~Session() { vmoe_session_destroy(handle); }
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  /// Runs `images` (any number, in chunks of the compiled batch) and returns
  /// the output (a tuple for several outputs). `bpr` -1 keeps the session's.
  py::object run(const py::object &images, double capacityFactor, int bpr,
                 uint32_t numSelectedExperts, const py::object &out);
  py::dict routingStats() const;
  py::dict profile() const;
  uint32_t threadCount() const { return vmoe_session_thread_count(handle); }
  bool busy() const { return running.load(); }
  uint64_t inputBytesCopied() const { return copiedBytes; }

private:
  struct Call;
  void prepareInput(const py::object &images, Call &call);
  void prepareOutputs(const py::object &out, Call &call);
  void runChunks(Call &call);
  void addStats(int64_t realImages);

  std::shared_ptr<Module> module;
  vmoe_session_t *handle = nullptr;
  vmoe_module_info_t info = {};
  std::vector<int64_t> inShape;
  std::vector<std::vector<int64_t>> outShapes;
  int64_t itemFloats = 0;
  std::vector<uint64_t> outItemFloats;
  /// Set for the whole of a call, chunks and statistics included.
  std::atomic<bool> running{false};
  bool haveStats = false;
  std::vector<LayerTotals> totals;
  uint64_t copiedBytes = 0;
};

} // namespace vmoe::python

#endif // VMOE_PYTHON_BINDINGS_H
