//===- Weights.h - any supported weights file -------------------*- C++ -*-===//

#ifndef VMOE_READERS_WEIGHTS_H
#define VMOE_READERS_WEIGHTS_H

#include "vmoe/readers/Tensor.h"

#include <string>

namespace vmoe::readers {

enum class WeightsFormat { Unknown, VmoeCheckpoint, Npz, Safetensors };

const char *formatName(WeightsFormat format);

/// Tells the format of `path`: a vmoe checkpoint given as its prefix, its
/// ".index" or one of its ".data-nnnnn-of-NNNNN" files; an .npz (by suffix
/// or the ZIP signature); a .safetensors file (by suffix or a header length
/// followed by '{'). `prefix` receives the checkpoint prefix, or the path.
WeightsFormat detectWeightsFormat(const std::string &path, std::string &prefix);

/// Reads `path` in whichever format it is in.
bool readWeights(const std::string &path, TensorMap &out, std::string *error,
                 const ReadOptions &options = {});

} // namespace vmoe::readers

#endif // VMOE_READERS_WEIGHTS_H
