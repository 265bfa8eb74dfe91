//===- WeightPacking.h - weights in the layout the kernels read -*- C++ -*-===//
//
// Plain C++ (no MLIR): how a model parameter (or several, side by side)
// becomes the bytes of a module constant. The lowering records a PackSpec
// per weight global (#vmoe.packed_weight) and packs IR constants with it at
// once; the serializer packs named parameters with the same code as it
// streams them from the checkpoint into the module, one global at a time.
//
// Sources are float32, row-major. Copy: one source, stored as it is.
// Panels: the sources are (batch, K, N_i) matrices placed side by side into
// one (batch, K, N) matrix, N = sum N_i, stored as (batch, N/nr, K, nr)
// panels (zero padded), or with kPairs as (batch, N/nr, K/2, 2 nr), the
// layout of AVX512-BF16's vdpbf16ps. Bias: the sources are (batch, N_i)
// rows side by side, zero padded to (batch, ceil(N/nr) * nr).
//
// int8 (the int8 GEMMs, --expert-math=int8 / --dense-math=int8): Panels
// with `int8` hold each column quantized symmetrically over its K values
// (quantizeInt8Column), in k pairs (the x86 AVX2 vpmaddwd form) or k quads
// (vpdpbusd, sdot): (batch, N/nr, K/g, g nr) bytes. Int8Scales makes each
// column's f32 scale and Int8ColSums the i32 sum of its int8 values (the
// u8 x s8 correction of vpdpbusd), both laid out as Bias from the same
// (batch, K, N_i) sources as the panels.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_WRITER_WEIGHTPACKING_H
#define VMOE_WRITER_WEIGHTPACKING_H

#include <cstdint>
#include <string>
#include <vector>

namespace vmoe {
namespace writer {

enum class PackLayout : uint8_t { Copy, Panels, Bias, Int8Scales, Int8ColSums };

struct PackSpec {
  PackLayout layout = PackLayout::Copy;
  /// Copy: unused. Panels, Int8Scales, Int8ColSums: batch and K of every
  /// source. Bias: batch.
  int64_t batch = 1, k = 1;
  /// N_i of each source (Copy: its element count).
  std::vector<int64_t> widths;
  /// Columns per panel (Panels, Bias).
  int64_t nr = 1;
  /// Panels: K pairs interleaved (needs bf16 and an even K).
  bool kPairs = false;
  /// Panels: stored as bfloat16 (rounded to nearest even); else float32.
  bool bf16 = false;
  /// Panels: stored as int8, quantized per column (K a multiple of the k
  /// group: 2 with kPairs, 4 with kQuads, one of which is set).
  bool int8 = false;
  /// Panels (int8): K quads interleaved, (batch, N/nr, K/4, 4 nr).
  bool kQuads = false;
};

/// The int8 quantization of one weight column of `k` values, `stride`
/// floats apart (SPEC: scale = max |w| / 127, 1 where that is 0; q =
/// clamp(nearbyint(w / scale), -127, 127), ties to even). Writes q when
/// `q` is not null; returns the scale.
float quantizeInt8Column(const float *column, int64_t k, int64_t stride,
                         int8_t *q);

/// bfloat16 bits of `x`, rounded to nearest even (NaN stays a quiet NaN).
uint16_t floatToBf16Bits(float x);

/// False with *error when the spec is inconsistent (no source, a size that
/// is not positive, kPairs without bf16 or with an odd K, overflow).
bool checkPackSpec(const PackSpec &spec, std::string *error);

/// Float32 values source `i` must hold.
uint64_t sourceElements(const PackSpec &spec, size_t i);

/// Bytes of the packed result.
uint64_t packedBytes(const PackSpec &spec);

/// Packs the sources (sources[i] holds sourceElements(spec, i) floats) into
/// `out` (resized to packedBytes(spec)). The spec must pass checkPackSpec.
void packWeights(const PackSpec &spec,
                 const std::vector<const float *> &sources,
                 std::vector<uint8_t> &out);

} // namespace writer
} // namespace vmoe

#endif // VMOE_WRITER_WEIGHTPACKING_H
