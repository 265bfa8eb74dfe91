//===- CpuTarget.cpp - Named CPU code generation targets ------------------===//

#include "vmoe/Target/CPU/CpuCodegen.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/Triple.h"
#include "llvm/TargetParser/X86TargetParser.h"
#include <algorithm>
#include <memory>
#include <mutex>

using namespace mlir;
using namespace mlir::vmoe::cpu;

static LogicalResult fail(std::string *errorMessage, const llvm::Twine &msg) {
  if (errorMessage)
    *errorMessage = msg.str();
  return failure();
}

void mlir::vmoe::cpu::initializeCpuCodegenLLVMTargets() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargets();
    llvm::InitializeAllTargetMCs();
    llvm::InitializeAllAsmPrinters();
    llvm::InitializeAllAsmParsers();
  });
}

ArrayRef<StringRef> mlir::vmoe::cpu::getCpuTargetNames() {
  static const StringRef names[] = {"host", "x86-64-v3", "x86-64-v4",
                                    "aarch64"};
  return names;
}

/// The subtarget for `cpu` and `features` on the target's triple, or null
/// with a message. Pass a CPU and features that are known to be valid: LLVM
/// prints a warning on stderr for any that are not.
static std::unique_ptr<llvm::MCSubtargetInfo>
createSubtarget(const CpuTarget &target, StringRef cpu, StringRef features,
                std::string *errorMessage) {
  initializeCpuCodegenLLVMTargets();
  llvm::Triple triple(target.triple);
  std::string lookupError;
  const llvm::Target *llvmTarget =
      llvm::TargetRegistry::lookupTarget(triple, lookupError);
  if (!llvmTarget) {
    (void)fail(errorMessage,
               "unknown target triple '" + target.triple + "': " + lookupError);
    return nullptr;
  }
  std::unique_ptr<llvm::MCSubtargetInfo> sti(
      llvmTarget->createMCSubtargetInfo(triple, cpu, features));
  if (!sti)
    (void)fail(errorMessage, "cannot describe CPU '" + cpu + "' for triple '" +
                                 target.triple + "'");
  return sti;
}

static bool isKnownFeature(const llvm::MCSubtargetInfo &sti,
                           StringRef feature) {
  return llvm::any_of(
      sti.getAllProcessorFeatures(),
      [&](const llvm::SubtargetFeatureKV &kv) { return feature == kv.Key; });
}

LogicalResult mlir::vmoe::cpu::verifyCpuTarget(const CpuTarget &target,
                                               std::string *errorMessage) {
  llvm::Triple triple(target.triple);
  if (!triple.isOSBinFormatELF() || !triple.isArch64Bit())
    return fail(errorMessage, "target triple '" + target.triple +
                                  "' is not a 64-bit ELF target; the CPU "
                                  "back end emits LP64 ELF shared objects");
  // The generic subtarget only lists the CPUs and features LLVM knows.
  std::unique_ptr<llvm::MCSubtargetInfo> sti =
      createSubtarget(target, "", "", errorMessage);
  if (!sti)
    return failure();
  if (!target.cpu.empty() && !sti->isCPUStringValid(target.cpu))
    return fail(errorMessage, "unknown CPU '" + target.cpu +
                                  "' for target triple '" + target.triple +
                                  "'");
  SmallVector<StringRef> features;
  StringRef(target.features).split(features, ',', -1, /*KeepEmpty=*/false);
  for (StringRef feature : features) {
    StringRef name = feature.trim();
    if (!name.consume_front("+") && !name.consume_front("-"))
      return fail(errorMessage,
                  "feature '" + feature + "' must start with '+' or '-'");
    if (!isKnownFeature(*sti, name))
      return fail(errorMessage, "unknown CPU feature '" + name +
                                    "' for target triple '" + target.triple +
                                    "'");
  }
  return success();
}

/// f32 lanes of the widest vector register the subtarget has.
static int vectorWidthF32(const CpuTarget &target,
                          const llvm::MCSubtargetInfo &sti) {
  llvm::Triple triple(target.triple);
  if (triple.isX86()) {
    if (sti.checkFeatures("+avx512f"))
      return 16;
    if (sti.checkFeatures("+avx"))
      return 8;
  }
  // SSE and NEON (SVE lengths are not known at compile time).
  return 4;
}

/// "+a,-b,..." from the host's feature map, sorted so that the string (and
/// the module that records it) is deterministic; features this LLVM's
/// target does not know are dropped (they would only produce warnings).
static std::string hostFeatures(const CpuTarget &partial) {
  std::unique_ptr<llvm::MCSubtargetInfo> sti =
      createSubtarget(partial, "", "", /*errorMessage=*/nullptr);
  llvm::StringMap<bool> map = llvm::sys::getHostCPUFeatures();
  std::vector<std::string> entries;
  for (const auto &entry : map)
    if (!sti || isKnownFeature(*sti, entry.getKey()))
      entries.push_back((entry.getValue() ? "+" : "-") + entry.getKey().str());
  std::sort(entries.begin(), entries.end());
  return llvm::join(entries, ",");
}

/// Whether the LLVM target of `triple` knows `cpu` (without LLVM's warning
/// on stderr for unknown names).
static bool isKnownCpu(StringRef triple, StringRef cpu) {
  CpuTarget probe;
  probe.triple = triple.str();
  std::unique_ptr<llvm::MCSubtargetInfo> sti =
      createSubtarget(probe, "", "", /*errorMessage=*/nullptr);
  return sti && sti->isCPUStringValid(cpu);
}

/// Every instruction-set feature code for `target` may use, "+a,+b,...":
/// a named x86 CPU's own (LLVM's table, without tuning flags) and the
/// explicit ones with what they imply. The module records them, so that a
/// runtime refuses code its CPU cannot execute instead of faulting.
static std::string isaFeatures(const CpuTarget &target) {
  if (!llvm::Triple(target.triple).isX86() || target.name == "host")
    return target.features;
  llvm::StringMap<bool> enabled;
  SmallVector<StringRef> cpuFeatures;
  llvm::X86::getFeaturesForCPU(target.cpu, cpuFeatures);
  // The table lists the top features (avx512bw, not the avx512f it
  // implies); updateImpliedFeatures adds the rest, but not the feature.
  auto set = [&](StringRef f, bool on) {
    llvm::X86::updateImpliedFeatures(f, on, enabled);
    enabled[f] = on;
  };
  for (StringRef f : cpuFeatures)
    set(f, true);
  SmallVector<StringRef> explicitFeatures;
  StringRef(target.features).split(explicitFeatures, ',', -1, false);
  for (StringRef f : explicitFeatures) {
    bool on = f.consume_front("+");
    if (!on)
      f.consume_front("-");
    set(f, on);
  }
  std::vector<std::string> entries;
  for (const auto &entry : enabled)
    if (entry.getValue())
      entries.push_back("+" + entry.getKey().str());
  std::sort(entries.begin(), entries.end());
  return llvm::join(entries, ",");
}

FailureOr<CpuTarget>
mlir::vmoe::cpu::resolveCpuTarget(StringRef spec, std::string *errorMessage) {
  // NAME[+feature...]: extra features on top of the named CPU's, e.g.
  // x86-64-v4+avx512bf16 (a server that has AVX512-BF16 but no AMX).
  SmallVector<StringRef> parts;
  spec.split(parts, '+');
  StringRef name = parts.front();
  CpuTarget target;
  target.name = spec.str();
  if (name == "host") {
    target.triple = llvm::sys::getProcessTriple();
    target.cpu = llvm::sys::getHostCPUName().str();
    target.features = hostFeatures(target);
  } else if (name == "x86-64-v3" || name == "x86-64-v4") {
    // The psABI micro-architecture levels; LLVM's CPU names of the same
    // spelling imply the features (v3: AVX2, FMA, BMI1/2, F16C, LZCNT,
    // MOVBE; v4: + AVX-512 F/BW/CD/DQ/VL).
    target.triple = "x86_64-unknown-linux-gnu";
    target.cpu = name.str();
  } else if (name == "aarch64") {
    // Baseline Armv8-A: runs on every 64-bit Arm Linux device.
    target.triple = "aarch64-unknown-linux-gnu";
    target.cpu = "generic";
    target.features = "+v8a,+fp-armv8,+neon";
  } else if (!name.empty() && isKnownCpu("x86_64-unknown-linux-gnu", name)) {
    // Any x86-64 CPU LLVM knows (znver4, sapphirerapids, ...): its features.
    target.triple = "x86_64-unknown-linux-gnu";
    target.cpu = name.str();
  } else {
    std::string known = llvm::join(getCpuTargetNames().begin(),
                                   getCpuTargetNames().end(), ", ");
    (void)fail(errorMessage,
               "unknown CPU target '" + name + "' (known targets: " + known +
                   ", or an x86-64 CPU name LLVM knows, e.g. znver4, "
                   "sapphirerapids; add features as NAME+feature, e.g. "
                   "x86-64-v4+avx512bf16 or aarch64+dotprod)");
    return failure();
  }
  for (StringRef feature : llvm::drop_begin(parts)) {
    if (feature.empty()) {
      (void)fail(errorMessage, "empty feature in CPU target '" + spec +
                                   "' (write NAME+feature+feature)");
      return failure();
    }
    target.features += (target.features.empty() ? "+" : ",+") + feature.str();
  }
  if (failed(verifyCpuTarget(target, errorMessage)))
    return failure();
  std::unique_ptr<llvm::MCSubtargetInfo> sti =
      createSubtarget(target, target.cpu, target.features, errorMessage);
  if (!sti)
    return failure();
  target.isaFeatures = isaFeatures(target);
  target.vectorWidthF32 = vectorWidthF32(target, *sti);
  bool x86 = llvm::Triple(target.triple).isX86();
  target.hasAvx512Bf16 = x86 && sti->checkFeatures("+avx512bf16,+avx512f");
  target.hasAvx512Vnni = x86 && sti->checkFeatures("+avx512vnni,+avx512f");
  target.hasAvxVnni = x86 && (sti->checkFeatures("+avxvnni") ||
                              sti->checkFeatures("+avx512vnni,+avx512vl"));
  target.hasAvx2 = x86 && sti->checkFeatures("+avx2");
  target.hasDotProd =
      llvm::Triple(target.triple).isAArch64() && sti->checkFeatures("+dotprod");
  if (target.vectorWidthF32 == 16) {
    // AVX-512's 32 zmm registers: 12 rows x 2 vectors (a 12 x 32 block, the
    // shape of BLIS's Skylake-X sgemm kernel) keep 24 accumulators, 2 B
    // vectors and the broadcast A value in registers: 24 FMAs (or
    // vdpbf16ps) per 14 loads, where 6 x 2 did 12 per 8 and left 17
    // registers unused. Not timed on an AVX-512 machine yet.
    target.gemmMicroRows = 12;
    target.gemmMicroVectors = 2;
  }
  if (llvm::Triple(target.triple).isAArch64()) {
    // 32 NEON registers of 4 lanes: 8 rows x 3 vectors (an 8 x 12 block)
    // keep 24 accumulators, 3 B vectors and the A values in registers and
    // do 24 FMAs per 11 loads (6 x 2 would do 12 per 7).
    target.gemmMicroRows = 8;
    target.gemmMicroVectors = 3;
  }
  return target;
}
