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

/// The widest f32 vector of `target`, its register block, and vdpbf16ps
/// where it has AVX512-BF16 with 512-bit vectors.
inline KernelTargetInfo getKernelTargetInfo(const CpuTarget &target) {
  KernelTargetInfo info;
  info.vectorWidth = target.vectorWidthF32;
  info.gemmMicroRows = target.gemmMicroRows;
  info.gemmMicroVectors = target.gemmMicroVectors;
  if (target.hasAvx512Bf16 && target.vectorWidthF32 == 16)
    info.bf16Dot = KernelTargetInfo::Bf16Dot::Avx512Dot;
  return info;
}

} // namespace mlir::vmoe::cpu

#endif // VMOE_TARGET_CPU_CPUKERNELTARGET_H
