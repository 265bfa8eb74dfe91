//===- CpuKernelTarget.h - the kernel shape of a CPU target -----*- C++ -*-===//
//
// The CPU target's answer to the kernel lowering (KernelTargetInfo.h),
// derived from a resolved --cpu (resolveCpuTarget, CpuCodegen.h).
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TARGET_CPU_CPUKERNELTARGET_H
#define VMOE_TARGET_CPU_CPUKERNELTARGET_H

#include "vmoe/Target/CPU/CpuCodegen.h"
#include "vmoe/Target/Common/KernelTargetInfo.h"

namespace mlir::vmoe::cpu {

/// The widest f32 vector of `target`, its register block, vdpbf16ps where
/// it has AVX512-BF16 with 512-bit vectors, and its int8 dot product.
inline KernelTargetInfo getKernelTargetInfo(const CpuTarget &target) {
  KernelTargetInfo info;
  info.vectorWidth = target.vectorWidthF32;
  info.gemmMicroRows = target.gemmMicroRows;
  info.gemmMicroVectors = target.gemmMicroVectors;
  if (target.hasAvx512Bf16 && target.vectorWidthF32 == 16)
    info.bf16Dot = KernelTargetInfo::Bf16Dot::Avx512Dot;
  using Dot = KernelTargetInfo::Int8Dot;
  // The widest integer dot product that fits the vectors the kernels use.
  if (target.hasAvx512Vnni && target.vectorWidthF32 == 16)
    info.int8Dot = Dot::Avx512Vnni;
  else if (target.hasAvxVnni && target.vectorWidthF32 == 8)
    info.int8Dot = Dot::AvxVnni;
  else if (target.hasAvx2 && target.vectorWidthF32 >= 8)
    info.int8Dot = Dot::Avx2Madd;
  else if (target.hasDotProd)
    info.int8Dot = Dot::NeonSdot;
  return info;
}

} // namespace mlir::vmoe::cpu

#endif // VMOE_TARGET_CPU_CPUKERNELTARGET_H
