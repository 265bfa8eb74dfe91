//===- KernelTargetInfo.h - the kernel shape a target asks for --*- C++ -*-===//
//
// What a code generation target tells the kernel lowering
// (vmoe-lower-to-kernels) about itself: the f32 vector width its kernels
// are written for, the GEMM register block, and how bf16 k pairs are
// multiplied. Each target returns one (cpu::getKernelTargetInfo for a
// resolved --cpu, cuda::getKernelTargetInfo); the compiler's pipeline turns
// it into the lowering's options. Plain C++, header only.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TARGET_COMMON_KERNELTARGETINFO_H
#define VMOE_TARGET_COMMON_KERNELTARGETINFO_H

#include <cstdint>

namespace mlir::vmoe {

struct KernelTargetInfo {
  /// f32 lanes of the vectors the kernels are written in.
  int64_t vectorWidth = 8;
  /// The GEMM micro-kernel's register block: rows x vectors of vectorWidth
  /// lanes (accumulators that stay in registers through the k loop).
  int64_t gemmMicroRows = 6;
  int64_t gemmMicroVectors = 2;

  /// How bf16 expert GEMMs (expert-bf16-math) multiply bf16 k pairs.
  enum class Bf16Dot {
    /// The bf16 values as f32, in f32 FMAs: any target.
    F32Fma,
    /// AVX512-BF16's vdpbf16ps (x86vector.avx512.dot, 16 lanes): the same
    /// results (vmoe-lower-to-kernels native-bf16-dot).
    Avx512Dot,
  };
  Bf16Dot bf16Dot = Bf16Dot::F32Fma;

  /// The integer dot product of the int8 GEMMs (vmoe-lower-to-kernels
  /// int8-dot, whose names follow each); None: the target has none and
  /// int8 math is refused.
  enum class Int8Dot {
    None,
    /// "avx2": vpmaddwd on int16 k pairs (AVX2, AVX-512 without VNNI).
    Avx2Madd,
    /// "avx-vnni": vpdpbusd on 256-bit vectors.
    AvxVnni,
    /// "avx512-vnni": vpdpbusd on 512-bit vectors.
    Avx512Vnni,
    /// "sdot": AArch64 dotprod.
    NeonSdot,
  };
  Int8Dot int8Dot = Int8Dot::None;
};

} // namespace mlir::vmoe

#endif // VMOE_TARGET_COMMON_KERNELTARGETINFO_H
