//===- KernelBuilder.h - building kernel bodies in MLIR ---------*- C++ -*-===//
//
// Small helpers to write loop nests (KernelBuilder.cpp), and the
// register-blocked GEMM that every matrix product of the model goes through
// (GemmBuilder.cpp). Kernel bodies are plain scf/arith/math/memref/vector
// IR, plus x86vector.avx512.dot for bf16 pairs on AVX512-BF16 CPUs and
// LLVM integer dot product intrinsics for the int8 GEMMs (Int8Dot.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_CONVERSION_KERNELBUILDER_H
#define VMOE_CONVERSION_KERNELBUILDER_H

#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/STLFunctionalExtras.h"

#include <optional>

namespace mlir::vmoe {

/// Register blocking of the GEMM micro-kernel: `mr` rows by `nr` columns of
/// `vectorWidth` f32 lanes each (nr is a multiple of vectorWidth).
struct GemmTiling {
  int64_t vectorWidth = 8;
  int64_t mr = 6;
  int64_t nr = 16;
  /// Rows per workgroup and column panels per workgroup.
  int64_t rowTile = 48;
  int64_t panelTile = 4;
};

using BodyFn = llvm::function_ref<void(ImplicitLocOpBuilder &, Value)>;
using AccBodyFn = llvm::function_ref<SmallVector<Value>(
    ImplicitLocOpBuilder &, Value, ValueRange)>;

Value constIndex(ImplicitLocOpBuilder &b, int64_t v);
Value constF32(ImplicitLocOpBuilder &b, double v);
Value constI32(ImplicitLocOpBuilder &b, int32_t v);
Value minIndex(ImplicitLocOpBuilder &b, Value x, Value y);
/// An i32 index that one kernel wrote and another reads, as an index
/// clamped into [0, bound): negative values too (compared unsigned). A
/// genuine module never needs the clamp; a forged one (push constants that
/// lie about the capacity, say) then reads wrong rows instead of memory
/// outside its buffers.
Value clampIndex(ImplicitLocOpBuilder &b, Value i32Index, int64_t bound);

/// for (iv = lb; iv < ub; iv += step) body(iv)
void forLoop(ImplicitLocOpBuilder &b, Value lb, Value ub, Value step,
             BodyFn body);
/// The same, carrying `init` through the iterations; returns the results.
SmallVector<Value> forLoopAcc(ImplicitLocOpBuilder &b, Value lb, Value ub,
                              Value step, ValueRange init, AccBodyFn body);
/// if (cond) body()
void ifThen(ImplicitLocOpBuilder &b, Value cond,
            llvm::function_ref<void(ImplicitLocOpBuilder &)> body);

/// Round an f32 scalar or vector to bfloat16 and back (round to nearest
/// even, NaN kept), in integer arithmetic so no runtime helper is needed.
Value roundToBf16(ImplicitLocOpBuilder &b, Value x);
/// The same rounding, to the bits of the bf16 value (the f32's high half) as
/// an i16 scalar or vector. Kernels keep bf16 activations as i16 bits: the
/// x86 back end without AVX512-BF16 would move scalar bf16 values through
/// f32 and a compiler-rt call (__truncsfbf2).
Value bf16Bits(ImplicitLocOpBuilder &b, Value x);
/// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) on f32 scalars/vectors.
Value geluTanh(ImplicitLocOpBuilder &b, Value x);

enum class Activation { None, Gelu, Tanh };

/// How the int8 GEMMs multiply (the CPU target's integer dot product):
///   Avx2Madd    vpmaddwd on int16 k pairs (exact, no saturation), AVX2 or
///               AVX-512 without VNNI; A is stored as i16.
///   AvxVnni     vpdpbusd on 256-bit vectors (AVX-VNNI or AVX512-VNNI+VL).
///   Avx512Vnni  vpdpbusd on 512-bit vectors (AVX512-VNNI).
///   NeonSdot    AArch64 sdot (dotprod), 128-bit vectors.
/// vpdpbusd multiplies u8 by s8: A holds q + 128 and the accumulators start
/// at -128 times the column sums of B. The others multiply signed values.
enum class Int8Dot { None, Avx2Madd, AvxVnni, Avx512Vnni, NeonSdot };

/// The k values per 32-bit lane of the int8 panels: 2 (pairs) or 4 (quads).
int64_t int8KGroup(Int8Dot dot);
/// Whether A holds q + 128 (u8) and B comes with column sums.
inline bool int8Unsigned(Int8Dot dot) {
  return dot == Int8Dot::AvxVnni || dot == Int8Dot::Avx512Vnni;
}
/// The element type the quantized activations are stored in (i8, or i16
/// for Avx2Madd).
Type int8ActType(MLIRContext *ctx, Int8Dot dot);
/// The parser's and printer's names: "avx2", "avx-vnni", "avx512-vnni",
/// "sdot" ("" for None).
StringRef stringifyInt8Dot(Int8Dot dot);
std::optional<Int8Dot> parseInt8Dot(StringRef name);
/// acc + the dot products of one k group: `aWord` is A's k group as one
/// i32 (broadcast to every lane), `bGroup` the B vector of `vw` lanes x
/// k group (i8). `acc` is vector<vw x i32>.
Value emitInt8Dot(ImplicitLocOpBuilder &b, Int8Dot dot, Value acc, Value aWord,
                  Value bGroup);

/// Quantizes one row of `k` f32 values to int8 as SPEC'd: scale = max |x| /
/// 127 (1 where that is 0), q = clamp(roundeven(x / scale), -127, 127),
/// stored as int8ActType (+ 128 when int8Unsigned); returns the scale.
/// `srcIndex` / `dstIndex` turn a column into indices of src / dst.
Value emitQuantizeRow(
    ImplicitLocOpBuilder &b, Int8Dot dot, int64_t k, int64_t lanes, Value src,
    llvm::function_ref<SmallVector<Value>(ImplicitLocOpBuilder &, Value)>
        srcIndex,
    Value dst,
    llvm::function_ref<SmallVector<Value>(ImplicitLocOpBuilder &, Value)>
        dstIndex);

/// One register-blocked GEMM over a block of rows:
///   C[r, n] = epilogue(sum_k A[r, k] * B[k, n] + bias[n])
/// for rows r in [rowBegin, rowEnd) and all column panels in
/// [panelBegin, panelEnd). B is pre-packed into panels of `nr` columns,
/// `(..., N/nr, K, nr)`, f32 or bf16 (widened to f32 as it is loaded), and
/// the bias padded to `(..., panels * nr)`.
/// Accessors turn (row, k) / (row, col) into memref indices, so that rows
/// can come from a gather or from a strided view.
///
/// `bf16Pairs`: B is bf16 packed in k pairs, `(..., N/nr, K/2, 2 nr)` with
/// B[2j][n], B[2j+1][n] side by side (the vdpbf16ps layout; K even), and A
/// holds bf16 values: as bits (i16), multiplied with x86vector.avx512.dot
/// (vdpbf16ps; a pair is one 32-bit broadcast), or as f32, multiplied with
/// f32 FMAs (two broadcast loads, no integer ops). Each k pair adds A[2j+1]
/// B[2j+1], then A[2j] B[2j], in f32; the products of two bf16 values are exact
/// in f32, so the f32 FMAs and vdpbf16ps give the same bits (vdpbf16ps flushes
/// denormals). C may be i16: the epilogue's result is rounded (RNE) to bf16,
/// whose bits are stored.
///
/// `int8` (not None): A holds quantized rows (emitQuantizeRow), B int8
/// panels in k groups, `(..., N/nr, K/g, g nr)` (g = int8KGroup), and the
/// products accumulate in int32; the epilogue starts from
/// ((float)acc * aScale(row)) * wScale[col] (no contraction), then adds the
/// bias and goes on as in f32. wScale (and colSums, for vpdpbusd) are
/// indexed like the bias.
struct GemmOperands {
  int64_t n = 0, k = 0;
  bool bf16Pairs = false;
  Int8Dot int8 = Int8Dot::None;
  Value wScale, colSums;
  /// int8: the scale of A's row `loadRow` (the row aIndex reads).
  llvm::function_ref<Value(ImplicitLocOpBuilder &, Value loadRow)> aScale;
  Value a;
  /// Optional: the row of A that GEMM row `row` reads (a gather: the slot's
  /// token), computed once per register block, outside the k loop; aIndex
  /// then gets that row.
  llvm::function_ref<Value(ImplicitLocOpBuilder &, Value row)> aRow;
  llvm::function_ref<SmallVector<Value>(ImplicitLocOpBuilder &, Value row,
                                        Value k)>
      aIndex;
  Value b;
  SmallVector<Value> bPrefix; // leading indices of B before (panel, k, lane)
  Value bias;                 // may be null
  SmallVector<Value> biasPrefix;
  Activation activation = Activation::None;
  bool bf16RoundOutput = false;
  /// Optional per-row scale applied last (the combine gate).
  llvm::function_ref<Value(ImplicitLocOpBuilder &, Value row)> rowScale;
  /// Optional residual: C = R + epilogue(...). Same indexing as C.
  Value residual;
  Value c;
  llvm::function_ref<SmallVector<Value>(ImplicitLocOpBuilder &, Value row,
                                        Value col)>
      cIndex;
};

void emitGemmBlock(ImplicitLocOpBuilder &b, const GemmTiling &tiling,
                   const GemmOperands &ops, Value rowBegin, Value rowEnd,
                   Value panelBegin, Value panelEnd);

} // namespace mlir::vmoe

#endif // VMOE_CONVERSION_KERNELBUILDER_H
