//===- CudaCodegen.h - Kernel funcs to PTX (and cubins) ---------*- C++ -*-===//
//
// The CUDA back end:
//   vmoe-cuda-outline-kernels            gpu.func per kernel (Passes.h)
//   nvvm-attach-target{chip=sm_XX O=3}   for the lowest SM asked for
//   math expansion, scf/vector/memref/arith/gpu -> NVVM, bare pointers
//   gpu-module-to-binary{format=isa}     PTX
//   checks: one gpu.binary with one PTX object, a .entry per kernel, the
//           .target line, no unresolved .extern function (libdevice)
//   ptxas -arch=sm_XX per SM, when ptxas is found (optional)
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TARGET_CUDA_CUDACODEGEN_H
#define VMOE_TARGET_CUDA_CUDACODEGEN_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlir::vmoe::cuda {

struct CudaCodegenOptions {
  /// SM versions (80 for sm_80); the PTX targets the lowest, a cubin is made
  /// for each when ptxas is found. At least one.
  std::vector<unsigned> sms = {80};
  /// CUDA threads per block.
  int64_t blockSize = 32;
  unsigned optLevel = 3;
  /// ptxas to run: empty: $CUDA_HOME/bin, $CUDA_PATH/bin, PATH, then
  /// /usr/local/cuda/bin; "none": never (PTX only).
  std::string ptxasPath;
  /// Fail when no ptxas is found (instead of emitting PTX only).
  bool requireCubin = false;
};

struct CudaKernelInfo {
  /// The kernel func's name, and its PTX .entry name.
  std::string name;
  std::string entry;
  uint32_t bindingCount = 0;
  uint32_t constantCount = 0;
  /// Per-workgroup scratch bytes.
  uint64_t scratchSize = 0;
  uint32_t blockSize = 0;
};

struct CudaExecutableImage {
  std::string ptx;
  unsigned ptxSm = 0;
  /// (sm, cubin bytes) for each SM ptxas assembled.
  std::vector<std::pair<unsigned, std::string>> cubins;
  std::vector<CudaKernelInfo> kernels;
  /// Which ptxas ran ("" when none).
  std::string ptxas;
};

/// Parses "80,90" or "sm_80,sm_90a"-free spellings: a comma-separated list
/// of SM numbers in [50, 200]; sorted, without duplicates.
FailureOr<std::vector<unsigned>> parseSmList(StringRef text,
                                             std::string *error);

/// Finds ptxas as described in CudaCodegenOptions::ptxasPath; "" if none.
std::string findPtxas(StringRef explicitPath);

/// Compiles the kernels of a lowered module (host + kernel funcs) to PTX and
/// cubins. `module` gets the gpu.module added (the host is not modified).
FailureOr<CudaExecutableImage>
compileCudaKernels(ModuleOp module, const CudaCodegenOptions &options,
                   std::string *error);

/// Checks PTX text: the `.target sm_XX` line, a `.entry` for every name in
/// `entries`, and no `.extern .func` (an unresolved libdevice call).
LogicalResult checkPtx(StringRef ptx, unsigned sm,
                       ArrayRef<std::string> entries, std::string *error);

} // namespace mlir::vmoe::cuda

#endif // VMOE_TARGET_CUDA_CUDACODEGEN_H
