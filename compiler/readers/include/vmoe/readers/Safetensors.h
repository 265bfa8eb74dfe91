//===- Safetensors.h - Hugging Face safetensors files ----------*- C++ -*-===//
//
// https://github.com/huggingface/safetensors (format section): an 8-byte
// little-endian header length N, N bytes of JSON {"<name>": {"dtype": "F32",
// "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}},
// then the data buffer the offsets index (relative to its start).
// As the reference implementation: the header is at most 100 MB, dtypes
// F32, BF16, F16, F64 are read (other known dtypes are errors, or skipped
// with ReadOptions::skipNonFloat when they are integer or bool), each
// tensor's bytes must match its shape, and the tensors must tile the buffer
// exactly (no overlap, no hole, nothing after). `__metadata__` is ignored.
// Names are the keys, without a leading "params/".
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_READERS_SAFETENSORS_H
#define VMOE_READERS_SAFETENSORS_H

#include "vmoe/readers/Tensor.h"

#include <string>

namespace vmoe::readers {

bool readSafetensors(const std::string &path, TensorMap &out,
                     std::string *error, const ReadOptions &options = {});
bool readSafetensors(ByteSpan bytes, const std::string &name, TensorMap &out,
                     std::string *error, const ReadOptions &options = {});

} // namespace vmoe::readers

#endif // VMOE_READERS_SAFETENSORS_H
