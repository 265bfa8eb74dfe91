//===- CudaKernelTarget.h - the kernel shape of the CUDA target -*- C++ -*-===//
//
// The CUDA target's answer to the kernel lowering (KernelTargetInfo.h).
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TARGET_CUDA_CUDAKERNELTARGET_H
#define VMOE_TARGET_CUDA_CUDAKERNELTARGET_H

#include "vmoe/Target/Common/KernelTargetInfo.h"

namespace mlir::vmoe::cuda {

/// Each workgroup is one CUDA thread, which runs the vector code lane by
/// lane: small register blocks (2 rows x 4 columns, 16-row GEMM tiles) keep
/// its registers few and split the GEMMs into more workgroups (threads).
/// bf16 k pairs are multiplied in f32 FMAs.
inline KernelTargetInfo getKernelTargetInfo() {
  KernelTargetInfo info;
  info.vectorWidth = 4;
  info.gemmMicroRows = 2;
  info.gemmMicroVectors = 1;
  info.bf16Dot = KernelTargetInfo::Bf16Dot::F32Fma;
  return info;
}

} // namespace mlir::vmoe::cuda

#endif // VMOE_TARGET_CUDA_CUDAKERNELTARGET_H
