//===- CpuCodegenTest.cpp - CPU back end, end to end ----------------------===//
//
// Compiles a small kernel module (MLIR text) to shared objects, dlopens the
// host-runnable ones and calls each kernel's `<name>_entry` through the
// vmoe kernel ABI for every workgroup of its grid, comparing with plain C++.
// Tolerances: tanh/erf are MLIR's f32 polynomial approximations (a few
// ulp), so values are compared to |got - want| <= 1e-5 + 1e-5 * |want|;
// integer and bf16 outputs must match exactly.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Target/CPU/CpuCodegen.h"
#include "vmoe/Target/CPU/Passes.h"
#include "vmoe/kernel_abi.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/BinaryFormat/ELF.h"
#include "llvm/Object/ELFObjectFile.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

using namespace mlir;
using namespace mlir::vmoe::cpu;

namespace {

// Three kernels plus host-side things the back end must drop: a host
// schedule func that allocates and calls an undefined external, and an
// unused global.
constexpr const char *kKernels = R"mlir(
module {
  memref.global "private" constant @unused : memref<4xf32> = dense<1.0>

  // y[r, j] = a[r, j] * (c0 / 4) + tanh(b[r, j]); workgroup (x, y) does
  // columns [64x, 64x + 64) of row y. Grid 4 x 4 x 1.
  func.func private @axpy_tanh(%a: memref<4x256xf32>, %b: memref<4x256xf32>,
      %y: memref<4x256xf32>, %c0: index, %wx: index, %wy: index, %wz: index)
      attributes {vmoe.kernel} {
    %zero = arith.constant 0 : index
    %one = arith.constant 1 : index
    %c64 = arith.constant 64 : index
    %quarter = arith.constant 0.25 : f32
    %ci = arith.index_cast %c0 : index to i64
    %cf = arith.sitofp %ci : i64 to f32
    %scale = arith.mulf %cf, %quarter : f32
    %base = arith.muli %wx, %c64 : index
    scf.for %i = %zero to %c64 step %one {
      %j = arith.addi %base, %i : index
      %av = memref.load %a[%wy, %j] : memref<4x256xf32>
      %bv = memref.load %b[%wy, %j] : memref<4x256xf32>
      %t = math.tanh %bv : f32
      %m = arith.mulf %av, %scale : f32
      %r = arith.addf %m, %t : f32
      memref.store %r, %y[%wy, %j] : memref<4x256xf32>
    }
    return
  }

  // Row x: s = fma(x, w, x) in vector<8xf32>, staged through the scratch;
  // out = mask ? s/2 * (1 + erf(s/sqrt2)) : 0, also as bf16; cnt[x] = number
  // of nonzero mask bytes. Grid 4 x 1 x 1.
  func.func @gelu_rows(%x: memref<4x64xf32>, %w: memref<64xf32>,
      %mask: memref<4x64xi8>, %out: memref<4x64xf32>,
      %outbf: memref<4x64xbf16>, %cnt: memref<4xi32>,
      %wx: index, %wy: index, %wz: index, %s: memref<256xi8>)
      attributes {vmoe.kernel, vmoe.scratch_size = 256 : i64} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c8 = arith.constant 8 : index
    %c64 = arith.constant 64 : index
    %half = arith.constant dense<0.5> : vector<8xf32>
    %onev = arith.constant dense<1.0> : vector<8xf32>
    %rsqrt2 = arith.constant dense<0.70710678> : vector<8xf32>
    %zerov = arith.constant dense<0.0> : vector<8xf32>
    %zi8 = arith.constant dense<0> : vector<8xi8>
    %stage = memref.view %s[%c0][] : memref<256xi8> to memref<64xf32>
    scf.for %i = %c0 to %c64 step %c8 {
      %xv = vector.load %x[%wx, %i] : memref<4x64xf32>, vector<8xf32>
      %wv = vector.load %w[%i] : memref<64xf32>, vector<8xf32>
      %r = vector.fma %xv, %wv, %xv : vector<8xf32>
      vector.store %r, %stage[%i] : memref<64xf32>, vector<8xf32>
    }
    scf.for %i = %c0 to %c64 step %c8 {
      %r = vector.load %stage[%i] : memref<64xf32>, vector<8xf32>
      %u = arith.mulf %r, %rsqrt2 : vector<8xf32>
      %e = math.erf %u : vector<8xf32>
      %p = arith.addf %e, %onev : vector<8xf32>
      %h = arith.mulf %r, %half : vector<8xf32>
      %g = arith.mulf %h, %p : vector<8xf32>
      %m = vector.load %mask[%wx, %i] : memref<4x64xi8>, vector<8xi8>
      %on = arith.cmpi ne, %m, %zi8 : vector<8xi8>
      %o = arith.select %on, %g, %zerov : vector<8xi1>, vector<8xf32>
      vector.store %o, %out[%wx, %i] : memref<4x64xf32>, vector<8xf32>
      %b = arith.truncf %o : vector<8xf32> to vector<8xbf16>
      vector.store %b, %outbf[%wx, %i] : memref<4x64xbf16>, vector<8xbf16>
    }
    %z32 = arith.constant 0 : i32
    %o32 = arith.constant 1 : i32
    %z8 = arith.constant 0 : i8
    %n = scf.for %i = %c0 to %c64 step %c1 iter_args(%acc = %z32) -> (i32) {
      %m = memref.load %mask[%wx, %i] : memref<4x64xi8>
      %on = arith.cmpi ne, %m, %z8 : i8
      %inc = arith.select %on, %o32, %z32 : i32
      %next = arith.addi %acc, %inc : i32
      scf.yield %next : i32
    }
    memref.store %n, %cnt[%wx] : memref<4xi32>
    return
  }

  // dst = src (memref.copy: a 4 KiB memcpy), zeroed[0, n) = 0 (a memset
  // idiom of run-time length). Grid 1 x 1 x 1.
  func.func @copy_fill(%src: memref<1024xf32>, %dst: memref<1024xf32>,
      %zeroed: memref<1024xf32>, %n: index, %wx: index, %wy: index,
      %wz: index) attributes {vmoe.kernel} {
    memref.copy %src, %dst : memref<1024xf32> to memref<1024xf32>
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %f0 = arith.constant 0.0 : f32
    scf.for %i = %c0 to %n step %c1 {
      memref.store %f0, %zeroed[%i] : memref<1024xf32>
    }
    return
  }

  func.func private @external(memref<4xf32>)
  func.func @host(%x: memref<4xf32>) {
    %m = memref.alloc() : memref<4xf32>
    func.call @external(%m) : (memref<4xf32>) -> ()
    return
  }
}
)mlir";

class CpuCodegenTest : public ::testing::Test {
protected:
  CpuCodegenTest() {
    DialectRegistry registry;
    registerCpuCodegenDialects(registry);
    context.appendDialectRegistry(registry);
  }

  OwningOpRef<ModuleOp> parse(const char *text) {
    OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(text, &context);
    EXPECT_TRUE(module) << "kernel module does not parse";
    return module;
  }

  CpuTarget target(StringRef name) {
    std::string error;
    FailureOr<CpuTarget> t = resolveCpuTarget(name, &error);
    EXPECT_TRUE(succeeded(t)) << error;
    return succeeded(t) ? *t : CpuTarget();
  }

  MLIRContext context;
};

/// A shared object written to a temp file and dlopen'ed like the runtime
/// does (RTLD_NOW | RTLD_LOCAL).
class LoadedObject {
public:
  explicit LoadedObject(const std::string &bytes) {
    char path[] = "/tmp/vmoe-cpu-test-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
      return;
    bool written = write(fd, bytes.data(), bytes.size()) ==
                   static_cast<ssize_t>(bytes.size());
    close(fd);
    if (written)
      handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char *message = written ? dlerror() : nullptr;
      error = message ? message : "cannot write the shared object";
    }
    unlink(path);
  }
  ~LoadedObject() {
    if (handle)
      dlclose(handle);
  }
  vmoe_kernel_fn_v0_t entry(const char *name) const {
    return handle ? reinterpret_cast<vmoe_kernel_fn_v0_t>(dlsym(handle, name))
                  : nullptr;
  }
  void *handle = nullptr;
  std::string error;
};

/// Calls `fn` for every workgroup of `grid`; returns the first nonzero
/// status (or 0).
int runGrid(vmoe_kernel_fn_v0_t fn, std::vector<void *> &bindings,
            std::vector<int64_t> &constants, const uint32_t grid[3],
            std::vector<uint8_t> *scratch = nullptr) {
  std::vector<uint64_t> lengths(bindings.size(), 0);
  vmoe_dispatch_state_v0_t dispatch = {};
  dispatch.bindings = bindings.data();
  dispatch.binding_lengths = lengths.data();
  dispatch.binding_count = static_cast<uint32_t>(bindings.size());
  dispatch.constant_count = static_cast<uint32_t>(constants.size());
  dispatch.constants = constants.data();
  for (int d = 0; d < 3; ++d)
    dispatch.workgroup_count[d] = grid[d];
  for (uint32_t z = 0; z < grid[2]; ++z)
    for (uint32_t y = 0; y < grid[1]; ++y)
      for (uint32_t x = 0; x < grid[0]; ++x) {
        vmoe_workgroup_state_v0_t wg = {};
        wg.workgroup_id[0] = x;
        wg.workgroup_id[1] = y;
        wg.workgroup_id[2] = z;
        wg.worker_id = 0;
        wg.worker_count = 1;
        wg.scratch = scratch ? scratch->data() : nullptr;
        wg.scratch_size = scratch ? scratch->size() : 0;
        if (int status = fn(&dispatch, &wg))
          return status;
      }
  return 0;
}

bool near(float got, float want) {
  return std::fabs(got - want) <= 1e-5f + 1e-5f * std::fabs(want);
}

std::string scientific(float v) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.3g", v);
  return text;
}

/// Round-to-nearest-even f32 -> bf16 bits (no NaNs in these tests).
uint16_t toBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

uint16_t elfMachine(const std::string &so) {
  uint16_t machine = 0;
  if (so.size() >= 20)
    std::memcpy(&machine, so.data() + 18, 2);
  return machine;
}

/// Checks the ELF header, that the object imports nothing (no undefined
/// dynamic symbols, no DT_NEEDED) and exports exactly `exports`.
void expectSelfContained(const std::string &so,
                         const std::set<std::string> &exports) {
  ASSERT_GE(so.size(), 64u);
  EXPECT_EQ(so.compare(0, 4,
                       "\x7f"
                       "ELF"),
            0);
  EXPECT_EQ(so[4], 2) << "not ELFCLASS64";
  uint16_t type;
  std::memcpy(&type, so.data() + 16, 2);
  EXPECT_EQ(type, llvm::ELF::ET_DYN);

  auto object = llvm::object::ObjectFile::createObjectFile(
      llvm::MemoryBufferRef(so, "kernels.so"));
  ASSERT_TRUE(!!object) << llvm::toString(object.takeError());
  auto *elf = llvm::dyn_cast<llvm::object::ELF64LEObjectFile>(object->get());
  ASSERT_NE(elf, nullptr);
  std::set<std::string> exported;
  for (const llvm::object::ELFSymbolRef &symbol :
       elf->getDynamicSymbolIterators()) {
    llvm::Expected<llvm::StringRef> name = symbol.getName();
    ASSERT_TRUE(!!name);
    if (name->empty())
      continue;
    llvm::Expected<uint32_t> flags = symbol.getFlags();
    ASSERT_TRUE(!!flags);
    EXPECT_FALSE(*flags & llvm::object::SymbolRef::SF_Undefined)
        << "undefined dynamic symbol " << name->str();
    if (*flags & llvm::object::SymbolRef::SF_Global)
      exported.insert(name->str());
  }
  EXPECT_EQ(exported, exports);
  auto dynamic = elf->getELFFile().dynamicEntries();
  ASSERT_TRUE(!!dynamic) << llvm::toString(dynamic.takeError());
  for (const auto &entry : *dynamic)
    EXPECT_NE(entry.getTag(), llvm::ELF::DT_NEEDED) << "DT_NEEDED entry";
}

bool hostRunsX86_64V3() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

const std::set<std::string> kEntries = {"axpy_tanh_entry", "gelu_rows_entry",
                                        "copy_fill_entry"};

/// Runs the three kernels of kKernels from `so` and checks them.
void runAndCheck(const std::string &so) {
  LoadedObject lib(so);
  ASSERT_NE(lib.handle, nullptr) << lib.error;

  // axpy_tanh.
  {
    vmoe_kernel_fn_v0_t fn = lib.entry("axpy_tanh_entry");
    ASSERT_NE(fn, nullptr);
    std::vector<float> a(4 * 256), b(4 * 256), y(4 * 256, -1.0f);
    for (size_t i = 0; i < a.size(); ++i) {
      a[i] = 0.01f * static_cast<float>(i % 97) - 0.3f;
      b[i] = 0.05f * static_cast<float>(static_cast<int>(i % 211) - 105);
    }
    std::vector<void *> bindings = {a.data(), b.data(), y.data()};
    std::vector<int64_t> constants = {6}; // scale 1.5
    const uint32_t grid[3] = {4, 4, 1};
    ASSERT_EQ(runGrid(fn, bindings, constants, grid), 0);
    float worst = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      float want = a[i] * 1.5f + std::tanh(b[i]);
      worst = std::max(worst, std::fabs(y[i] - want));
      ASSERT_TRUE(near(y[i], want))
          << "y[" << i << "] = " << y[i] << ", want " << want;
    }
    ::testing::Test::RecordProperty("axpy_tanh_max_abs_error",
                                    scientific(worst));

    // A dispatch that lacks the push constant is refused (status 2), as is
    // one with too few bindings (status 1); nothing is written.
    std::fill(y.begin(), y.end(), -1.0f);
    std::vector<int64_t> none;
    EXPECT_EQ(runGrid(fn, bindings, none, grid), kEntryTooFewConstants);
    std::vector<void *> two = {a.data(), b.data()};
    EXPECT_EQ(runGrid(fn, two, constants, grid), kEntryTooFewBindings);
    EXPECT_EQ(y[0], -1.0f);
  }

  // gelu_rows.
  {
    vmoe_kernel_fn_v0_t fn = lib.entry("gelu_rows_entry");
    ASSERT_NE(fn, nullptr);
    std::vector<float> x(4 * 64), w(64), out(4 * 64, -1.0f);
    std::vector<int8_t> mask(4 * 64);
    std::vector<uint16_t> outbf(4 * 64, 0xffff);
    std::vector<int32_t> cnt(4, -1);
    for (size_t i = 0; i < x.size(); ++i) {
      x[i] = 0.037f * static_cast<float>(static_cast<int>(i % 113) - 56);
      mask[i] = (i % 7 == 3) ? 0 : static_cast<int8_t>(i % 5 + 1);
    }
    for (size_t i = 0; i < w.size(); ++i)
      w[i] = 0.02f * static_cast<float>(i) - 0.5f;
    std::vector<void *> bindings = {x.data(),   w.data(),     mask.data(),
                                    out.data(), outbf.data(), cnt.data()};
    std::vector<int64_t> constants;
    const uint32_t grid[3] = {4, 1, 1};
    std::vector<uint8_t> scratch(256);
    ASSERT_EQ(runGrid(fn, bindings, constants, grid, &scratch), 0);
    float worst = 0;
    for (int r = 0; r < 4; ++r) {
      int32_t want = 0;
      for (int i = 0; i < 64; ++i) {
        size_t k = r * 64 + i;
        float s = std::fma(x[k], w[i], x[k]);
        float g =
            mask[k] ? 0.5f * s * (1.0f + std::erf(s * 0.70710678f)) : 0.0f;
        worst = std::max(worst, std::fabs(out[k] - g));
        ASSERT_TRUE(near(out[k], g))
            << "out[" << k << "] = " << out[k] << ", want " << g;
        // bf16 is the kernel's own f32 result rounded to nearest even.
        EXPECT_EQ(outbf[k], toBf16(out[k])) << "outbf[" << k << "]";
        want += mask[k] != 0;
      }
      EXPECT_EQ(cnt[r], want) << "cnt[" << r << "]";
    }
    ::testing::Test::RecordProperty("gelu_rows_max_abs_error",
                                    scientific(worst));

    std::vector<uint8_t> small(128);
    EXPECT_EQ(runGrid(fn, bindings, constants, grid, &small),
              kEntryScratchTooSmall);
  }

  // copy_fill: exercises the object's own memcpy and memset.
  {
    vmoe_kernel_fn_v0_t fn = lib.entry("copy_fill_entry");
    ASSERT_NE(fn, nullptr);
    std::vector<float> src(1024), dst(1024, 0.0f), zeroed(1024, 7.0f);
    for (size_t i = 0; i < src.size(); ++i)
      src[i] = static_cast<float>(i) * 0.5f + 1.0f;
    std::vector<void *> bindings = {src.data(), dst.data(), zeroed.data()};
    std::vector<int64_t> constants = {777};
    const uint32_t grid[3] = {1, 1, 1};
    ASSERT_EQ(runGrid(fn, bindings, constants, grid), 0);
    EXPECT_EQ(dst, src);
    for (size_t i = 0; i < zeroed.size(); ++i)
      ASSERT_EQ(zeroed[i], i < 777 ? 0.0f : 7.0f) << "zeroed[" << i << "]";
  }
}

// The expanded f32 math, element-wise over 4096 points (vectorized by the
// LLVM optimizer), against libm in double. The measured maximum relative
// errors are recorded as test properties (--gtest_output=xml).
constexpr const char *kMathKernel = R"mlir(
  func.func @math(%x: memref<4096xf32>, %exp: memref<4096xf32>,
      %tanh: memref<4096xf32>, %erf: memref<4096xf32>,
      %log: memref<4096xf32>, %wx: index, %wy: index, %wz: index)
      attributes {vmoe.kernel} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %n = arith.constant 4096 : index
    scf.for %i = %c0 to %n step %c1 {
      %v = memref.load %x[%i] : memref<4096xf32>
      %e = math.exp %v : f32
      memref.store %e, %exp[%i] : memref<4096xf32>
      %t = math.tanh %v : f32
      memref.store %t, %tanh[%i] : memref<4096xf32>
      %f = math.erf %v : f32
      memref.store %f, %erf[%i] : memref<4096xf32>
      %a = math.absf %v : f32
      %l = math.log %a : f32
      memref.store %l, %log[%i] : memref<4096xf32>
    }
    return
  })mlir";

TEST_F(CpuCodegenTest, MathApproximationsAreAccurate) {
  OwningOpRef<ModuleOp> module = parse(kMathKernel);
  ASSERT_TRUE(module);
  std::string error;
  FailureOr<std::string> so =
      compileKernelsToSharedObject(*module, target("host"), &error);
  ASSERT_TRUE(succeeded(so)) << error;
  LoadedObject lib(*so);
  ASSERT_NE(lib.handle, nullptr) << lib.error;
  vmoe_kernel_fn_v0_t fn = lib.entry("math_entry");
  ASSERT_NE(fn, nullptr);

  const size_t n = 4096;
  std::vector<float> x(n), exp(n), tanh(n), erf(n), log(n);
  // -87.5 .. 87.5: the whole finite range of expf.
  for (size_t i = 0; i < n; ++i)
    x[i] = -87.5f + 175.0f * static_cast<float>(i) / (n - 1);
  std::vector<void *> bindings = {x.data(), exp.data(), tanh.data(), erf.data(),
                                  log.data()};
  std::vector<int64_t> constants;
  const uint32_t grid[3] = {1, 1, 1};
  ASSERT_EQ(runGrid(fn, bindings, constants, grid), 0);

  // Relative error, with an absolute floor near zero crossings.
  auto err = [](float got, double want) {
    return std::fabs(got - want) / std::max(std::fabs(want), 1e-6);
  };
  double worstExp = 0, worstTanh = 0, worstErf = 0, worstLog = 0;
  for (size_t i = 0; i < n; ++i) {
    double v = x[i];
    worstExp = std::max(worstExp, err(exp[i], std::exp(v)));
    worstTanh = std::max(worstTanh, err(tanh[i], std::tanh(v)));
    worstErf = std::max(worstErf, err(erf[i], std::erf(v)));
    worstLog = std::max(worstLog, err(log[i], std::log(std::fabs(v))));
  }
  ::testing::Test::RecordProperty("exp_max_rel_error", scientific(worstExp));
  ::testing::Test::RecordProperty("tanh_max_rel_error", scientific(worstTanh));
  ::testing::Test::RecordProperty("erf_max_rel_error", scientific(worstErf));
  ::testing::Test::RecordProperty("log_max_rel_error", scientific(worstLog));
  // Measured: about 1e-7 to 2e-7 (1-2 ulp); the bound leaves 5x margin.
  EXPECT_LT(worstExp, 1e-6);
  EXPECT_LT(worstTanh, 1e-6);
  EXPECT_LT(worstErf, 1e-6);
  EXPECT_LT(worstLog, 1e-6);
}

TEST_F(CpuCodegenTest, ResolvesNamedTargets) {
  CpuTarget v3 = target("x86-64-v3");
  EXPECT_EQ(v3.triple, "x86_64-unknown-linux-gnu");
  EXPECT_EQ(v3.cpu, "x86-64-v3");
  EXPECT_EQ(v3.vectorWidthF32, 8);
  EXPECT_EQ(v3.gemmMicroRows, 6); // 6 x 16 block: 12 of 16 ymm registers
  EXPECT_EQ(v3.gemmMicroVectors, 2);
  CpuTarget v4 = target("x86-64-v4");
  EXPECT_EQ(v4.vectorWidthF32, 16);
  EXPECT_EQ(v4.gemmMicroRows, 12); // 12 x 32 block: 24 of 32 zmm registers
  EXPECT_EQ(v4.gemmMicroVectors, 2);
  CpuTarget arm = target("aarch64");
  EXPECT_EQ(arm.triple, "aarch64-unknown-linux-gnu");
  EXPECT_EQ(arm.vectorWidthF32, 4);
  EXPECT_EQ(arm.gemmMicroRows, 8); // 8 x 12 block: 24 of 32 NEON registers
  EXPECT_EQ(arm.gemmMicroVectors, 3);
  CpuTarget host = target("host");
  EXPECT_FALSE(host.triple.empty());
  EXPECT_FALSE(host.cpu.empty());
  EXPECT_GE(host.vectorWidthF32, 4);
}

TEST_F(CpuCodegenTest, RecordsEveryInstructionSetFeatureOfNamedCpus) {
  // A module records isaFeatures as its requirements: a named level or CPU
  // must list what its name implies, or an older host would fault on it.
  auto has = [](const CpuTarget &t, const std::string &f) {
    return ("," + t.isaFeatures + ",").find("," + f + ",") != std::string::npos;
  };
  CpuTarget v3 = target("x86-64-v3");
  EXPECT_TRUE(has(v3, "+avx2") && has(v3, "+fma")) << v3.isaFeatures;
  EXPECT_FALSE(has(v3, "+avx512f")) << v3.isaFeatures;
  EXPECT_FALSE(v3.hasAvx512Bf16);
  CpuTarget v4 = target("x86-64-v4");
  EXPECT_TRUE(has(v4, "+avx512f") && has(v4, "+avx512bw")) << v4.isaFeatures;
  EXPECT_FALSE(v4.hasAvx512Bf16);
  // NAME+feature: the feature on top of the level's, with what it implies.
  CpuTarget bf16 = target("x86-64-v4+avx512bf16");
  EXPECT_EQ(bf16.cpu, "x86-64-v4");
  EXPECT_EQ(bf16.features, "+avx512bf16");
  EXPECT_TRUE(has(bf16, "+avx512bf16") && has(bf16, "+avx512bw"))
      << bf16.isaFeatures;
  EXPECT_TRUE(bf16.hasAvx512Bf16);
  EXPECT_EQ(bf16.vectorWidthF32, 16);
  // LLVM's CPU names.
  CpuTarget spr = target("sapphirerapids");
  EXPECT_EQ(spr.triple, "x86_64-unknown-linux-gnu");
  EXPECT_TRUE(spr.hasAvx512Bf16);
  EXPECT_TRUE(has(spr, "+amx-bf16")) << spr.isaFeatures;
  CpuTarget zen4 = target("znver4");
  EXPECT_TRUE(zen4.hasAvx512Bf16);
  EXPECT_FALSE(has(zen4, "+amx-tile")) << zen4.isaFeatures;
  CpuTarget arm = target("aarch64+dotprod");
  EXPECT_EQ(arm.features, "+v8a,+fp-armv8,+neon,+dotprod");
  EXPECT_FALSE(arm.hasAvx512Bf16);

  std::string error;
  EXPECT_TRUE(failed(resolveCpuTarget("x86-64-v4+", &error)));
  EXPECT_NE(error.find("empty feature"), std::string::npos) << error;
  EXPECT_TRUE(failed(resolveCpuTarget("x86-64-v3+avx9000", &error)));
  EXPECT_NE(error.find("unknown CPU feature 'avx9000'"), std::string::npos)
      << error;
}

TEST_F(CpuCodegenTest, UnknownTargetNameIsAClearError) {
  std::string error;
  FailureOr<CpuTarget> t = resolveCpuTarget("pentium-9000", &error);
  EXPECT_TRUE(failed(t));
  EXPECT_NE(error.find("unknown CPU target 'pentium-9000'"), std::string::npos)
      << error;
  EXPECT_NE(error.find("x86-64-v3"), std::string::npos) << error;

  // Hand-made targets are checked too: LLVM alone would only warn.
  CpuTarget bad = target("x86-64-v3");
  bad.cpu = "not-a-cpu";
  EXPECT_TRUE(failed(verifyCpuTarget(bad, &error)));
  EXPECT_NE(error.find("unknown CPU 'not-a-cpu'"), std::string::npos) << error;
  bad = target("x86-64-v3");
  bad.features = "+avx9000";
  EXPECT_TRUE(failed(verifyCpuTarget(bad, &error)));
  EXPECT_NE(error.find("unknown CPU feature 'avx9000'"), std::string::npos)
      << error;
  bad = target("x86-64-v3");
  bad.triple = "i686-unknown-linux-gnu";
  EXPECT_TRUE(failed(verifyCpuTarget(bad, &error)));
  EXPECT_NE(error.find("64-bit ELF"), std::string::npos) << error;

  OwningOpRef<ModuleOp> module = parse(kKernels);
  ASSERT_TRUE(module);
  bad = target("x86-64-v3");
  bad.cpu = "not-a-cpu";
  FailureOr<std::string> so =
      compileKernelsToSharedObject(*module, bad, &error);
  EXPECT_TRUE(failed(so));
  EXPECT_NE(error.find("unknown CPU 'not-a-cpu'"), std::string::npos) << error;
}

TEST_F(CpuCodegenTest, HostSharedObjectRuns) {
  OwningOpRef<ModuleOp> module = parse(kKernels);
  ASSERT_TRUE(module);
  std::string before;
  llvm::raw_string_ostream(before) << *module;

  std::string error;
  FailureOr<CpuExecutable> exe =
      compileKernels(*module, target("host"), &error);
  ASSERT_TRUE(succeeded(exe)) << error;

  // The input module is left as it was.
  std::string after;
  llvm::raw_string_ostream(after) << *module;
  EXPECT_EQ(before, after);

  ASSERT_EQ(exe->kernels.size(), 3u);
  EXPECT_EQ(exe->kernels[0].name, "axpy_tanh");
  EXPECT_EQ(exe->kernels[0].entry, "axpy_tanh_entry");
  EXPECT_EQ(exe->kernels[0].bindingCount, 3u);
  EXPECT_EQ(exe->kernels[0].constantCount, 1u);
  EXPECT_EQ(exe->kernels[0].scratchSize, 0u);
  EXPECT_EQ(exe->kernels[1].entry, "gelu_rows_entry");
  EXPECT_EQ(exe->kernels[1].bindingCount, 6u);
  EXPECT_EQ(exe->kernels[1].constantCount, 0u);
  EXPECT_EQ(exe->kernels[1].scratchSize, 256u);
  EXPECT_EQ(exe->kernels[2].entry, "copy_fill_entry");
  EXPECT_EQ(exe->kernels[2].constantCount, 1u);

  expectSelfContained(exe->sharedObject, kEntries);
  runAndCheck(exe->sharedObject);
}

TEST_F(CpuCodegenTest, X86_64V3SharedObjectRuns) {
  OwningOpRef<ModuleOp> module = parse(kKernels);
  ASSERT_TRUE(module);
  std::string error;
  FailureOr<std::string> so =
      compileKernelsToSharedObject(*module, target("x86-64-v3"), &error);
  ASSERT_TRUE(succeeded(so)) << error;
  EXPECT_EQ(elfMachine(*so), llvm::ELF::EM_X86_64);
  expectSelfContained(*so, kEntries);
  if (!hostRunsX86_64V3())
    GTEST_SKIP() << "this machine cannot run x86-64-v3 code";
  runAndCheck(*so);
}

TEST_F(CpuCodegenTest, UnoptimizedSharedObjectRuns) {
  // O0 keeps every intrinsic and memory call as emitted: nothing may need
  // libc there either.
  OwningOpRef<ModuleOp> module = parse(kKernels);
  ASSERT_TRUE(module);
  CpuCodegenOptions options;
  options.optLevel = 0;
  std::string error;
  FailureOr<std::string> so =
      compileKernelsToSharedObject(*module, target("host"), &error, options);
  ASSERT_TRUE(succeeded(so)) << error;
  expectSelfContained(*so, kEntries);
  runAndCheck(*so);
}

TEST_F(CpuCodegenTest, X86_64V4SharedObjectBuilds) {
  OwningOpRef<ModuleOp> module = parse(kKernels);
  ASSERT_TRUE(module);
  std::string error;
  FailureOr<std::string> so =
      compileKernelsToSharedObject(*module, target("x86-64-v4"), &error);
  ASSERT_TRUE(succeeded(so)) << error;
  EXPECT_EQ(elfMachine(*so), llvm::ELF::EM_X86_64);
  expectSelfContained(*so, kEntries);
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    runAndCheck(*so);
#endif
}

TEST_F(CpuCodegenTest, AArch64SharedObjectLinksWithoutLibc) {
  OwningOpRef<ModuleOp> module = parse(kKernels);
  ASSERT_TRUE(module);
  std::string error;
  FailureOr<std::string> so =
      compileKernelsToSharedObject(*module, target("aarch64"), &error);
  ASSERT_TRUE(succeeded(so)) << error;
  EXPECT_EQ(elfMachine(*so), llvm::ELF::EM_AARCH64);
  expectSelfContained(*so, kEntries);
}

TEST_F(CpuCodegenTest, DumpsIrAndObject) {
  OwningOpRef<ModuleOp> module = parse(kKernels);
  ASSERT_TRUE(module);
  llvm::SmallString<128> irPath, objPath;
  ASSERT_FALSE(
      llvm::sys::fs::createTemporaryFile("vmoe-cpu-test", "ll", irPath));
  ASSERT_FALSE(
      llvm::sys::fs::createTemporaryFile("vmoe-cpu-test", "o", objPath));
  CpuCodegenOptions options;
  options.optLevel = 2;
  options.dumpLlvmIrPath = irPath.str().str();
  options.dumpObjectPath = objPath.str().str();
  std::string error;
  FailureOr<std::string> so = compileKernelsToSharedObject(
      *module, target("x86-64-v3"), &error, options);
  ASSERT_TRUE(succeeded(so)) << error;
  auto ir = llvm::MemoryBuffer::getFile(irPath);
  auto obj = llvm::MemoryBuffer::getFile(objPath);
  ASSERT_TRUE(!!ir);
  ASSERT_TRUE(!!obj);
  llvm::StringRef text = (*ir)->getBuffer();
  EXPECT_NE(text.find(" i32 @axpy_tanh_entry(ptr"), llvm::StringRef::npos)
      << text.str();
  EXPECT_NE(text.find("target triple = \"x86_64-unknown-linux-gnu\""),
            llvm::StringRef::npos);
  // The kernel body is inlined into its entry.
  EXPECT_EQ(text.find("define internal void @axpy_tanh("),
            llvm::StringRef::npos);
  EXPECT_EQ((*obj)->getBuffer().substr(0, 4), "\x7f"
                                              "ELF");
  llvm::sys::fs::remove(irPath);
  llvm::sys::fs::remove(objPath);
}

TEST_F(CpuCodegenTest, ContractViolationIsAnError) {
  OwningOpRef<ModuleOp> module = parse(R"mlir(
    func.func @k(%a: memref<?xf32>, %x: index, %y: index, %z: index)
        attributes {vmoe.kernel} {
      return
    })mlir");
  ASSERT_TRUE(module);
  std::string error;
  FailureOr<std::string> so =
      compileKernelsToSharedObject(*module, target("host"), &error);
  EXPECT_TRUE(failed(so));
  EXPECT_NE(error.find("binding #0 has type 'memref<?xf32>'"),
            std::string::npos)
      << error;
}

TEST_F(CpuCodegenTest, NoKernelIsAnError) {
  OwningOpRef<ModuleOp> module = parse(R"mlir(
    func.func @host() {
      return
    })mlir");
  ASSERT_TRUE(module);
  std::string error;
  EXPECT_TRUE(
      failed(compileKernelsToSharedObject(*module, target("host"), &error)));
  EXPECT_NE(error.find("no func.func with the vmoe.kernel attribute"),
            std::string::npos)
      << error;
}

TEST_F(CpuCodegenTest, LibmDependencyIsReportedByName) {
  // f64 tanh has no in-line expansion: it would need libm's tanh.
  OwningOpRef<ModuleOp> module = parse(R"mlir(
    func.func @k(%a: memref<4xf64>, %x: index, %y: index, %z: index)
        attributes {vmoe.kernel} {
      %c0 = arith.constant 0 : index
      %v = memref.load %a[%c0] : memref<4xf64>
      %t = math.tanh %v : f64
      memref.store %t, %a[%c0] : memref<4xf64>
      return
    })mlir");
  ASSERT_TRUE(module);
  std::string error;
  EXPECT_TRUE(failed(
      compileKernelsToSharedObject(*module, target("x86-64-v3"), &error)));
  EXPECT_NE(error.find("tanh"), std::string::npos) << error;
  EXPECT_NE(error.find("links no libc/libm"), std::string::npos) << error;
}

TEST_F(CpuCodegenTest, BadOptLevelIsAnError) {
  OwningOpRef<ModuleOp> module = parse(kKernels);
  ASSERT_TRUE(module);
  CpuCodegenOptions options;
  options.optLevel = 7;
  std::string error;
  EXPECT_TRUE(failed(
      compileKernelsToSharedObject(*module, target("host"), &error, options)));
  EXPECT_NE(error.find("optimization level 7"), std::string::npos) << error;
}

TEST_F(CpuCodegenTest, MissingLinkerIsAnError) {
  OwningOpRef<ModuleOp> module = parse(kKernels);
  ASSERT_TRUE(module);
  CpuCodegenOptions options;
  options.linkerPath = "/nonexistent/ld.lld";
  std::string error;
  EXPECT_TRUE(failed(
      compileKernelsToSharedObject(*module, target("host"), &error, options)));
  EXPECT_NE(error.find("/nonexistent/ld.lld"), std::string::npos) << error;
}

} // namespace
