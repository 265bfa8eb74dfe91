//===- TensorSource.h - weights read one tensor at a time -------*- C++ -*-===//
//
// Plain C++17 (no MLIR/LLVM, no exceptions). A TensorSource hands out the
// tensors of a model one at a time, by name: what the module serializer
// streams from the checkpoint into the module, so that compiling a model
// takes the memory of its largest tensor, not of all of them.
//
// openTensorFile scans a weights file once (names, dtypes and shapes
// against ReadOptions::expected; no tensor data is read) and then reads
// each tensor when asked, mapping the file for that read only.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_READERS_TENSORSOURCE_H
#define VMOE_READERS_TENSORSOURCE_H

#include "vmoe/readers/Tensor.h"

#include <memory>
#include <string>

namespace vmoe::readers {

class TensorSource {
public:
  // Inline (no key function): implementations built with RTTI (the MLIR
  // side) and without (this library) each emit what they need.
  virtual ~TensorSource() = default;
  /// Every tensor it holds: name -> shape.
  virtual const ExpectedShapes &shapes() const = 0;
  /// Reads tensor `name` (float32, C order) into `out`; false with *error
  /// set when it is not there or cannot be read.
  virtual bool read(const std::string &name, Tensor &out,
                    std::string *error) = 0;
};

/// The tensors of `path` (a vmoe checkpoint, .npz or .safetensors, as
/// readWeights takes them), checked against `options.expected` when set.
/// (The source keeps a copy of `options`, with `expected`.)
/// Null with *error set when the file cannot be read or holds a bad,
/// unexpected or misshapen tensor. (Missing tensors are the caller's to
/// report; see missingTensor.)
std::unique_ptr<TensorSource> openTensorFile(const std::string &path,
                                             std::string *error,
                                             const ReadOptions &options = {});

/// The tensors of `map`, which must outlive the source.
std::unique_ptr<TensorSource> tensorMapSource(const TensorMap &map);

/// The first of `expected` that `source` lacks, as "missing weight NAME of
/// shape S"; empty when none is missing.
std::string missingTensor(const TensorSource &source,
                          const ExpectedShapes &expected);

} // namespace vmoe::readers

#endif // VMOE_READERS_TENSORSOURCE_H
