//===- CpuCodegen.h - Kernel funcs to a CPU shared object -------*- C++ -*-===//
//
// The CPU back end's C++ API, used by vmoe-compile:
//
//   DialectRegistry registry;
//   registerCpuCodegenDialects(registry);         // before parsing
//   ...
//   std::string error;
//   FailureOr<CpuTarget> target = resolveCpuTarget("x86-64-v3", &error);
//   FailureOr<CpuExecutable> exe =
//       compileKernels(module, *target, &error);   // module is not modified
//   // exe->sharedObject: ELF .so bytes; exe->kernels: entry names + counts
//
// Flow: clone the kernel funcs (and what they use) into a fresh module, run
// the vmoe-cpu-lower-kernels-to-llvm pipeline (see Passes.h for the kernel
// contract and the ABI entries), translate to LLVM IR, optimize (O3 by
// default), emit a PIC ELF object for the target, and link it with ld.lld
// into a shared object with no undefined symbols and no DT_NEEDED entries:
// math is expanded in-line (no libm) and memcpy/memmove/memset come from
// hidden definitions inside the object, so cross targets link without a
// libc and the runtime can dlopen it with RTLD_NOW anywhere.
//
// Errors come back in *errorMessage (the MLIR diagnostics, the linker's
// output, ...). Calls that use different MLIRContexts may run concurrently;
// calls on one context must not (the context's registry is extended).
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TARGET_CPU_CPUCODEGEN_H
#define VMOE_TARGET_CPU_CPUCODEGEN_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include <cstdint>
#include <string>
#include <vector>

namespace mlir::vmoe::cpu {

/// A code generation target: what the LLVM TargetMachine is created with.
struct CpuTarget {
  /// The name it was resolved from ("host", "x86-64-v3", ...).
  std::string name;
  /// An LLVM triple of a 64-bit ELF target, e.g. "x86_64-unknown-linux-gnu".
  std::string triple;
  /// An LLVM CPU name for the triple ("x86-64-v3", "generic", ...).
  std::string cpu;
  /// LLVM subtarget features on top of the CPU's, "+f1,-f2" (may be empty).
  std::string features;
  /// All instruction-set features the code may use (the CPU's and
  /// `features`, with what they imply), "+f1,+f2": what a module records
  /// as its requirements.
  std::string isaFeatures;
  /// f32 lanes of the widest vector register (16 AVX-512, 8 AVX, 4 SSE/NEON);
  /// a hint for the tiling/vectorization passes.
  int vectorWidthF32 = 4;
  /// The GEMM micro-kernel's register block: rows x (vectors of
  /// vectorWidthF32 lanes), sized to the vector register file (16 registers:
  /// 6 x 2 = 12 accumulators; AArch64's 32 NEON registers: 8 x 3 = 24;
  /// AVX-512's 32 zmm registers: 12 x 2 = 24).
  int gemmMicroRows = 6;
  int gemmMicroVectors = 2;
  /// AVX512-BF16 (vdpbf16ps): bf16 expert GEMMs use it (see
  /// vmoe-lower-to-kernels native-bf16-dot).
  bool hasAvx512Bf16 = false;
  /// Integer dot products of the int8 GEMMs: AVX512-VNNI (with AVX-512F),
  /// AVX-VNNI or AVX512-VNNI+VL (256-bit vpdpbusd), AVX2 (vpmaddwd),
  /// AArch64 dotprod (sdot).
  bool hasAvx512Vnni = false, hasAvxVnni = false, hasAvx2 = false;
  bool hasDotProd = false;
};

/// The names resolveCpuTarget accepts.
ArrayRef<StringRef> getCpuTargetNames();

/// Resolves a target name:
///   host       the machine compiling: sys::getProcessTriple(),
///              getHostCPUName(), getHostCPUFeatures();
///   x86-64-v3  x86_64-unknown-linux-gnu, AVX2 + FMA (+BMI, F16C, ...);
///   x86-64-v4  x86_64-unknown-linux-gnu, AVX-512 F/BW/CD/DQ/VL;
///   aarch64    aarch64-unknown-linux-gnu, generic Armv8-A with NEON;
///   any other x86-64 CPU name LLVM knows (znver4, sapphirerapids, ...)
///              with its features.
/// `NAME+f1+f2` adds features to the named CPU's (x86-64-v4+avx512bf16).
/// Unknown names fail with a message that lists the known ones.
FailureOr<CpuTarget> resolveCpuTarget(StringRef name,
                                      std::string *errorMessage = nullptr);

/// Checks that LLVM knows the triple, the CPU and every feature of `target`
/// and that the triple is a 64-bit ELF target (the kernel ABI offsets
/// assume LP64). LLVM itself only warns on stderr about unknown CPUs.
LogicalResult verifyCpuTarget(const CpuTarget &target,
                              std::string *errorMessage = nullptr);

/// Registers all LLVM targets, MCs, asm printers and parsers (once).
void initializeCpuCodegenLLVMTargets();

struct CpuCodegenOptions {
  /// 0..3: the LLVM IR pipeline (O0 = always-inline only) and codegen level.
  unsigned optLevel = 3;
  /// When set, the optimized LLVM IR is written there (text).
  std::string dumpLlvmIrPath;
  /// When set, the kernels' assembly (text) is written there.
  std::string dumpAssemblyPath;
  /// When set, the object file given to the linker is written there.
  std::string dumpObjectPath;
  /// ld.lld to run; empty: LLVM's tools dir, then ld.lld-22 / ld.lld in PATH.
  std::string linkerPath;
};

/// One exported kernel of the shared object.
struct CpuKernelInfo {
  /// The kernel func's name, @k.
  std::string name;
  /// Its exported entry symbol, "k_entry" (vmoe_kernel_fn_v0_t).
  std::string entry;
  /// Bindings and push constants it reads; scratch bytes it needs per
  /// worker. The entry returns nonzero if a dispatch gives fewer.
  uint32_t bindingCount = 0;
  uint32_t constantCount = 0;
  uint64_t scratchSize = 0;
};

struct CpuExecutable {
  /// The ELF shared object, ready to be written out and dlopen'ed.
  std::string sharedObject;
  /// In module order of the kernel funcs.
  std::vector<CpuKernelInfo> kernels;
};

/// Compiles the `vmoe.kernel` funcs of `module` (a full module or a
/// kernel-only one; it is not modified) for `target`.
FailureOr<CpuExecutable> compileKernels(ModuleOp module,
                                        const CpuTarget &target,
                                        std::string *errorMessage = nullptr,
                                        const CpuCodegenOptions &options = {});

/// compileKernels, returning the shared object bytes only.
FailureOr<std::string>
compileKernelsToSharedObject(ModuleOp module, const CpuTarget &target,
                             std::string *errorMessage = nullptr,
                             const CpuCodegenOptions &options = {});

} // namespace mlir::vmoe::cpu

#endif // VMOE_TARGET_CPU_CPUCODEGEN_H
