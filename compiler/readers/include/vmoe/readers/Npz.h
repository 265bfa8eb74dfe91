//===- Npz.h - numpy .npz archives and .npy arrays --------------*- C++ -*-===//
//
// An .npz is a ZIP archive (PKWARE APPNOTE 6.3) of .npy files, as
// np.savez (stored) and np.savez_compressed (deflate) write it; ZIP64
// records are read. Each entry "<key>.npy" becomes the tensor named <key>
// (without a leading "params/"), so an .npz of the flattened Flax tree
// (flax.traverse_util.flatten_dict(params, sep='/')) gives vmoe's names.
// Checked: directory and local headers against the file size, overlapping
// entries, encryption, the compression method, the deflate size ratio, the
// CRC-32 of every entry.
//
// .npy (format versions 1.0, 2.0, 3.0): dtype '<f4', '<f8', '<f2', and
// '<V2' / '|V2' taken as bfloat16 (what np.save writes for an
// ml_dtypes.bfloat16 array); fortran_order arrays are transposed into C
// order; big-endian and other dtypes are errors ('<i4', '|b1', '|u1' ... are
// skipped instead with ReadOptions::skipNonFloat).
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_READERS_NPZ_H
#define VMOE_READERS_NPZ_H

#include "vmoe/readers/Tensor.h"

#include <string>

namespace vmoe::readers {

bool readNpz(const std::string &path, TensorMap &out, std::string *error,
             const ReadOptions &options = {});
/// From memory; `name` names the archive in messages.
bool readNpz(ByteSpan bytes, const std::string &name, TensorMap &out,
             std::string *error, const ReadOptions &options = {});

/// One .npy file's content.
bool readNpy(ByteSpan bytes, const std::string &name, Tensor &out,
             std::string *error, const ReadOptions &options = {});

} // namespace vmoe::readers

#endif // VMOE_READERS_NPZ_H
