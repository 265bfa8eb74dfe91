//===- CudaExecutorTest.cpp - the CUDA executor without a GPU -------------===//
//
// The error paths (no driver, no GPU, a CPU module, no image for the SM), the
// choice between cubin and PTX, and the whole executor (device memory,
// copies, kernel parameters per the CUDA kernel ABI, push constants per call,
// CUDA graphs per setting, their bounded cache) against a fake driver whose
// "device" is host memory and whose kernels are C++ functions.
//
//===----------------------------------------------------------------------===//

#include "CudaExecutor.h"
#include "Executor.h"
#include "TestSupport.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <map>

namespace {

using namespace vmoe;
using namespace vmoe::cuda;
using namespace vmoe::writer;
using namespace vmoe::test;

// ---- error paths without a driver -------------------------------------------

TEST(CudaDriver, MissingLibraryIsUnsupportedWithItsName) {
  const DriverApi *api = nullptr;
  vmoe_message_t msg;
  msg.text[0] = 0;
  EXPECT_EQ(loadDriver("libvmoe-no-such-cuda.so.1", &api, &msg),
            VMOE_STATUS_UNSUPPORTED);
  EXPECT_NE(strstr(msg.text, "libvmoe-no-such-cuda.so.1"), nullptr) << msg.text;
  EXPECT_NE(strstr(msg.text, "CUDA driver is not available"), nullptr)
      << msg.text;
}

TEST(CudaDriver, LibraryWithoutTheEntryPointsIsRefused) {
  // libc is a loadable library without any cu* symbol.
  const DriverApi *api = nullptr;
  vmoe_message_t msg;
  msg.text[0] = 0;
  EXPECT_EQ(loadDriver("libc.so.6", &api, &msg), VMOE_STATUS_UNSUPPORTED);
  EXPECT_NE(strstr(msg.text, "no entry point cuInit"), nullptr) << msg.text;
}

/// A CUDA module: y[b][j] = x[b][j] * scale + c[j] for the images b < the
/// call's batch; grid (kMaxBatch, 1, 1), blocks of 2 threads, scratch.
constexpr int64_t kMaxBatch = 5;
constexpr int64_t kWidth = 8;
const char kPtx[] = "//\n.version 7.0\n.target sm_80\n.address_size 64\n";

std::vector<uint8_t> buildCudaModule(bool withPtx,
                                     std::vector<uint32_t> cubins) {
  ModuleWriter w;
  std::vector<CudaCubinDesc> cubinDescs;
  for (uint32_t sm : cubins) {
    std::vector<uint8_t> elf = {0x7f, 'E', 'L', 'F', static_cast<uint8_t>(sm)};
    cubinDescs.push_back({sm, w.addSegment(elf, 64)});
  }
  int64_t ptxSegment = -1;
  if (withPtx)
    ptxSegment =
        w.addSegment(std::vector<uint8_t>(kPtx, kPtx + sizeof(kPtx) - 1), 64);
  uint32_t exe =
      w.addCudaExecutable("cuda", ptxSegment, withPtx ? 80 : 0, cubinDescs);
  w.setBatch(kMaxBatch);
  w.addInput({"x", fb::DType::F32, {kMaxBatch, kWidth}, 0});
  w.addOutput({"y", fb::DType::F32, {kMaxBatch, kWidth}, 0});
  w.setArena(1024, 64);
  std::vector<float> c(kWidth);
  for (int64_t j = 0; j < kWidth; ++j)
    c[j] = 0.5f * j;
  uint32_t constant = w.addConstant("c", w.addSegment(toBytes(c), 64),
                                    fb::ConstantPlacement::InPlace, 0);
  KernelDesc k;
  k.name = "affine";
  k.executable = exe;
  k.entry = "affine";
  k.workgroupCount = {kMaxBatch, 1, 1};
  k.workgroupSize = {2, 1, 1};
  k.bindingCount = 3;
  k.constantCount = 2;
  k.scratchSize = 16;
  k.writtenBindings = {false, false, true};
  uint32_t kernel = w.addKernel(k);
  const uint64_t bytes = kMaxBatch * kWidth * 4;
  w.addDispatch(
      {kernel,
       {BindingDesc::input(0, 0, bytes),
        BindingDesc::constant(constant, 0, kWidth * 4),
        BindingDesc::output(0, 0, bytes)},
       {PushConstantDesc::literal(3), PushConstantDesc::batchSize()}});
  return serialize(w);
}

Module *internal(vmoe_module_t *m) { return reinterpret_cast<Module *>(m); }

TEST(CudaImage, CubinOfTheSmElsePtxElseAClearError) {
  Loaded loaded = loadBytes(buildCudaModule(true, {90}));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  const fb::CudaExecutable &x =
      *internal(loaded.module)->root().executables()->Get(0)->cuda();
  ImageChoice choice;
  vmoe_message_t msg;
  ASSERT_EQ(chooseImage(x, 0, 90, &choice, &msg), VMOE_STATUS_OK);
  EXPECT_FALSE(choice.ptx);
  EXPECT_EQ(choice.sm, 90u);
  ASSERT_EQ(chooseImage(x, 0, 86, &choice, &msg), VMOE_STATUS_OK);
  EXPECT_TRUE(choice.ptx); // the driver compiles sm_80 PTX for sm_86
  EXPECT_EQ(choice.sm, 80u);
  EXPECT_EQ(chooseImage(x, 0, 75, &choice, &msg), VMOE_STATUS_UNSUPPORTED);
  EXPECT_NE(strstr(msg.text, "cannot run on this sm_75 GPU"), nullptr)
      << msg.text;
  EXPECT_NE(strstr(msg.text, "cubin sm_90, PTX for sm_80 and newer"), nullptr)
      << msg.text;

  Loaded cubinOnly = loadBytes(buildCudaModule(false, {80}));
  ASSERT_EQ(cubinOnly.status, VMOE_STATUS_OK) << cubinOnly.message;
  const fb::CudaExecutable &y =
      *internal(cubinOnly.module)->root().executables()->Get(0)->cuda();
  EXPECT_EQ(chooseImage(y, 0, 90, &choice, &msg), VMOE_STATUS_UNSUPPORTED);
  EXPECT_NE(strstr(msg.text, "recompile with --sm=90"), nullptr) << msg.text;
}

TEST(CudaSession, WithoutAGpuTheSessionFailsCleanly) {
  void *driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  Loaded loaded = loadBytes(buildCudaModule(true, {}));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  vmoe_session_options_t options;
  vmoe_session_options_init(&options);
  EXPECT_EQ(options.device_ordinal, 0u);
  options.device = VMOE_DEVICE_CUDA;
  vmoe_session_t *session = nullptr;
  vmoe_message_t msg;
  msg.text[0] = 0;
  vmoe_status_t status =
      vmoe_session_create(loaded.module, &options, &session, &msg);
  if (status == VMOE_STATUS_OK) {
    vmoe_session_destroy(session);
    dlclose(driver);
    GTEST_SKIP() << "a GPU is present: the error path is not reachable";
  }
  EXPECT_EQ(session, nullptr);
  EXPECT_NE(msg.text[0], 0);
  if (!driver) {
    EXPECT_EQ(status, VMOE_STATUS_UNSUPPORTED);
    EXPECT_NE(strstr(msg.text, "libcuda.so.1"), nullptr) << msg.text;
  } else {
    dlclose(driver);
  }
}

// ---- a fake driver
// -------------------------------------------------------------

struct FakeLaunch {
  CUfunction function;
  unsigned grid, block;
  std::vector<uint64_t> params;
};

struct FakeDevice {
  int deviceCount = 1;
  int sm = 90;
  CUresult failAlloc = 0;
  CUresult failCapture = 0;
  bool capturing = false;
  std::vector<FakeLaunch> captured;
  std::vector<std::vector<FakeLaunch>> graphs;
  int loadedImages = 0;
  std::string loadedImage;
  int launches = 0, graphLaunches = 0, asyncCopies = 0, graphsDestroyed = 0;
  std::map<void *, size_t> allocations;
  std::vector<FakeLaunch> history;
} * fake;

CUfunction const kAffine = reinterpret_cast<CUfunction>(0x1000);

/// The "affine" kernel by the CUDA kernel ABI: params are x, c, y (device
/// pointers), scale, batch (int64), workgroup counts x, y, z, scratch.
void runAffine(const FakeLaunch &l) {
  ASSERT_EQ(l.params.size(), 9u);
  auto *x = reinterpret_cast<const float *>(l.params[0]);
  auto *c = reinterpret_cast<const float *>(l.params[1]);
  auto *y = reinterpret_cast<float *>(l.params[2]);
  int64_t scale = static_cast<int64_t>(l.params[3]);
  int64_t batch = static_cast<int64_t>(l.params[4]);
  uint64_t total = l.params[5] * l.params[6] * l.params[7];
  auto *scratch = reinterpret_cast<uint8_t *>(l.params[8]);
  for (unsigned b = 0; b < l.grid; ++b)
    for (unsigned t = 0; t < l.block; ++t) {
      uint64_t wg = uint64_t(b) * l.block + t;
      if (wg >= total || int64_t(wg) >= batch)
        continue;
      memset(scratch + wg * 16, 0xab, 16); // its own slice only
      for (int64_t j = 0; j < kWidth; ++j)
        y[wg * kWidth + j] = x[wg * kWidth + j] * scale + c[j];
    }
}

extern "C" {
CUresult fInit(unsigned) { return 0; }
CUresult fVersion(int *v) { return *v = 12000, 0; }
CUresult fCount(int *n) { return *n = fake->deviceCount, 0; }
CUresult fGet(CUdevice *d, int i) { return *d = i, 0; }
CUresult fAttr(int *v, int attr, CUdevice) {
  *v = attr == kAttrComputeCapabilityMajor ? fake->sm / 10 : fake->sm % 10;
  return 0;
}
CUresult fName(char *s, int n, CUdevice) {
  snprintf(s, n, "Fake GPU");
  return 0;
}
CUresult fRetain(CUcontext *c, CUdevice) {
  *c = reinterpret_cast<CUcontext>(0x10);
  return 0;
}
CUresult fRelease(CUdevice) { return 0; }
CUresult fSetCurrent(CUcontext) { return 0; }
CUresult fLoad(CUmodule *m, const void *image) {
  fake->loadedImages++;
  fake->loadedImage = static_cast<const char *>(image);
  *m = reinterpret_cast<CUmodule>(0x20);
  return 0;
}
CUresult fUnload(CUmodule) { return 0; }
CUresult fGetFunction(CUfunction *f, CUmodule, const char *name) {
  if (strcmp(name, "affine") != 0)
    return 500; // CUDA_ERROR_NOT_FOUND
  *f = kAffine;
  return 0;
}
CUresult fAlloc(CUdeviceptr *p, size_t n) {
  if (fake->failAlloc)
    return fake->failAlloc;
  void *mem = malloc(n);
  fake->allocations[mem] = n;
  *p = reinterpret_cast<CUdeviceptr>(mem);
  return 0;
}
CUresult fFree(CUdeviceptr p) {
  fake->allocations.erase(reinterpret_cast<void *>(p));
  free(reinterpret_cast<void *>(p));
  return 0;
}
CUresult fMemset(CUdeviceptr p, unsigned char v, size_t n) {
  memset(reinterpret_cast<void *>(p), v, n);
  return 0;
}
CUresult fHtoD(CUdeviceptr d, const void *s, size_t n) {
  memcpy(reinterpret_cast<void *>(d), s, n);
  return 0;
}
CUresult fHtoDAsync(CUdeviceptr d, const void *s, size_t n, CUstream) {
  fake->asyncCopies++;
  return fHtoD(d, s, n);
}
CUresult fDtoH(void *d, CUdeviceptr s, size_t n) {
  memcpy(d, reinterpret_cast<void *>(s), n);
  return 0;
}
CUresult fStreamCreate(CUstream *s, unsigned) {
  *s = reinterpret_cast<CUstream>(0x30);
  return 0;
}
CUresult fStreamDestroy(CUstream) { return 0; }
CUresult fSync(CUstream) { return 0; }
CUresult fLaunch(CUfunction f, unsigned gx, unsigned, unsigned, unsigned bx,
                 unsigned, unsigned, unsigned, CUstream, void **params,
                 void **) {
  FakeLaunch l{f, gx, bx, {}};
  for (int i = 0; i < 9; ++i)
    l.params.push_back(*static_cast<uint64_t *>(params[i]));
  if (fake->capturing) {
    fake->captured.push_back(l);
    return 0;
  }
  fake->launches++;
  fake->history.push_back(l);
  runAffine(l);
  return 0;
}
CUresult fErrorName(CUresult, const char **s) { return *s = "FAKE_ERROR", 0; }
CUresult fErrorString(CUresult, const char **s) {
  return *s = "a fake failure", 0;
}
CUresult fBeginCapture(CUstream, int) {
  if (fake->failCapture)
    return fake->failCapture;
  fake->capturing = true;
  fake->captured.clear();
  return 0;
}
CUresult fEndCapture(CUstream, CUgraph *g) {
  fake->capturing = false;
  fake->graphs.push_back(fake->captured);
  *g = reinterpret_cast<CUgraph>(fake->graphs.size());
  return 0;
}
CUresult fInstantiate(CUgraphExec *e, CUgraph g, unsigned long long) {
  *e = reinterpret_cast<CUgraphExec>(g);
  return 0;
}
CUresult fGraphLaunch(CUgraphExec e, CUstream) {
  fake->graphLaunches++;
  for (const FakeLaunch &l : fake->graphs[reinterpret_cast<size_t>(e) - 1]) {
    fake->history.push_back(l);
    runAffine(l);
  }
  return 0;
}
CUresult fExecDestroy(CUgraphExec) {
  fake->graphsDestroyed++;
  return 0;
}
CUresult fGraphDestroy(CUgraph) { return 0; }
}

DriverApi fakeApi(bool graphs) {
  DriverApi a{};
  a.cuInit = fInit;
  a.cuDriverGetVersion = fVersion;
  a.cuDeviceGetCount = fCount;
  a.cuDeviceGet = fGet;
  a.cuDeviceGetAttribute = fAttr;
  a.cuDeviceGetName = fName;
  a.cuDevicePrimaryCtxRetain = fRetain;
  a.cuDevicePrimaryCtxRelease = fRelease;
  a.cuCtxSetCurrent = fSetCurrent;
  a.cuModuleLoadData = fLoad;
  a.cuModuleUnload = fUnload;
  a.cuModuleGetFunction = fGetFunction;
  a.cuMemAlloc = fAlloc;
  a.cuMemFree = fFree;
  a.cuMemsetD8 = fMemset;
  a.cuMemcpyHtoD = fHtoD;
  a.cuMemcpyDtoH = fDtoH;
  a.cuMemcpyHtoDAsync = fHtoDAsync;
  a.cuStreamCreate = fStreamCreate;
  a.cuStreamDestroy = fStreamDestroy;
  a.cuStreamSynchronize = fSync;
  a.cuLaunchKernel = fLaunch;
  a.cuGetErrorName = fErrorName;
  a.cuGetErrorString = fErrorString;
  if (graphs) {
    a.cuStreamBeginCapture = fBeginCapture;
    a.cuStreamEndCapture = fEndCapture;
    a.cuGraphInstantiateWithFlags = fInstantiate;
    a.cuGraphLaunch = fGraphLaunch;
    a.cuGraphExecDestroy = fExecDestroy;
    a.cuGraphDestroy = fGraphDestroy;
  }
  return a;
}

class FakeCuda : public ::testing::Test {
protected:
  void SetUp() override { fake = &device; }
  void TearDown() override { fake = nullptr; }
  FakeDevice device;
};

/// Runs the module at `batch` with push constants {3, batch}.
std::vector<float> runAt(CudaExecutor &backend, int64_t batch,
                         const std::vector<float> &x) {
  std::vector<float> y(kMaxBatch * kWidth, -1.0f);
  int64_t shape[2] = {batch, kWidth};
  vmoe_tensor_t in = {VMOE_DTYPE_F32, 2, shape, const_cast<float *>(x.data()),
                      x.size() * 4};
  vmoe_tensor_t out = {VMOE_DTYPE_F32, 2, shape, y.data(), y.size() * 4};
  int64_t constants[2] = {3, batch};
  ExecutorCall call = {&in, 1, &out, 1, batch, constants};
  vmoe_message_t msg;
  EXPECT_EQ(backend.run(call, nullptr, &msg), VMOE_STATUS_OK) << msg.text;
  return y;
}

TEST_F(FakeCuda, RunsTheScheduleWithTheKernelAbiAndOneGraphPerSetting) {
  Loaded loaded = loadBytes(buildCudaModule(true, {80}));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  DriverApi api = fakeApi(/*graphs=*/true);
  CudaExecutor *backend = nullptr;
  vmoe_message_t msg;
  ASSERT_EQ(
      CudaExecutor::create(internal(loaded.module), {}, &api, &backend, &msg),
      VMOE_STATUS_OK)
      << msg.text;
  EXPECT_STREQ(backend->deviceDescription(), "Fake GPU (sm_90)");
  // sm_90 has no cubin here: the sm_80 PTX is handed to the driver.
  EXPECT_EQ(device.loadedImages, 1);
  EXPECT_EQ(device.loadedImage, kPtx);
  ASSERT_EQ(backend->launches().size(), 1u);
  EXPECT_EQ(backend->launches()[0].blocks, 3u); // ceil(5 / 2)
  EXPECT_EQ(backend->launches()[0].threads, 2u);

  std::vector<float> x(kMaxBatch * kWidth);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = float(i) - 7.0f;
  std::vector<float> y = runAt(*backend, 5, x);
  for (int64_t b = 0; b < 5; ++b)
    for (int64_t j = 0; j < kWidth; ++j)
      EXPECT_FLOAT_EQ(y[b * kWidth + j], x[b * kWidth + j] * 3 + 0.5f * j);
  ASSERT_EQ(device.history.size(), 1u);
  const FakeLaunch &l = device.history[0];
  EXPECT_EQ(l.grid, 3u);
  EXPECT_EQ(l.block, 2u);
  EXPECT_EQ(l.params[3], 3u);
  EXPECT_EQ(l.params[4], 5u);
  EXPECT_EQ(l.params[5], 5u); // workgroup count x, y, z
  EXPECT_EQ(l.params[6], 1u);
  EXPECT_EQ(l.params[7], 1u);
  EXPECT_EQ(backend->graphCount(), 1u);
  EXPECT_EQ(device.graphLaunches, 1);
  EXPECT_EQ(device.launches, 0);
  EXPECT_EQ(device.asyncCopies, 1); // the input, on the schedule's stream

  // A smaller batch: only its rows are copied back; a new graph for the
  // new constants, then reused.
  std::vector<float> y2 = runAt(*backend, 2, x);
  for (int64_t i = 0; i < kMaxBatch * kWidth; ++i)
    EXPECT_FLOAT_EQ(y2[i],
                    i < 2 * kWidth ? x[i] * 3 + 0.5f * (i % kWidth) : -1.0f)
        << i;
  EXPECT_EQ(device.history.back().params[4], 2u);
  runAt(*backend, 5, x);
  runAt(*backend, 2, x);
  EXPECT_EQ(backend->graphCount(), 2u);
  EXPECT_EQ(device.graphLaunches, 4);
  delete backend;
  EXPECT_TRUE(device.allocations.empty()) << "device memory leaked";
}

TEST_F(FakeCuda, FallsBackToLaunchesWhenCaptureFails) {
  Loaded loaded = loadBytes(buildCudaModule(false, {90}));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  device.failCapture = 801; // CUDA_ERROR_NOT_SUPPORTED
  DriverApi api = fakeApi(/*graphs=*/true);
  CudaExecutor *backend = nullptr;
  vmoe_message_t msg;
  ASSERT_EQ(
      CudaExecutor::create(internal(loaded.module), {}, &api, &backend, &msg),
      VMOE_STATUS_OK)
      << msg.text;
  EXPECT_EQ(device.loadedImage.substr(0, 4), "\x7f"
                                             "ELF"); // the sm_90 cubin
  std::vector<float> x(kMaxBatch * kWidth, 2.0f);
  std::vector<float> y = runAt(*backend, 5, x);
  EXPECT_FLOAT_EQ(y[kWidth + 3], 2.0f * 3 + 1.5f);
  EXPECT_EQ(device.launches, 1);
  EXPECT_EQ(backend->graphCount(), 0u);
  delete backend;
}

TEST_F(FakeCuda, GraphsOffLaunchesOneByOne) {
  // The session option cuda_graphs = 0 (once the VMOE_CUDA_GRAPHS=0
  // environment variable): a driver with graphs, but plain launches.
  Loaded loaded = loadBytes(buildCudaModule(true, {}));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  DriverApi api = fakeApi(/*graphs=*/true);
  CudaOptions options;
  options.graphs = false;
  CudaExecutor *backend = nullptr;
  vmoe_message_t msg;
  ASSERT_EQ(CudaExecutor::create(internal(loaded.module), options, &api,
                                 &backend, &msg),
            VMOE_STATUS_OK)
      << msg.text;
  std::vector<float> x(kMaxBatch * kWidth, 1.0f);
  runAt(*backend, 5, x);
  std::vector<float> y = runAt(*backend, 2, x);
  EXPECT_FLOAT_EQ(y[kWidth + 2], 1.0f * 3 + 1.0f);
  EXPECT_EQ(device.launches, 2);
  EXPECT_EQ(device.graphLaunches, 0);
  EXPECT_TRUE(device.graphs.empty()); // nothing captured
  EXPECT_EQ(backend->graphCount(), 0u);
  delete backend;
}

TEST_F(FakeCuda, GraphCacheIsBoundedLeastRecentlyUsedFirst) {
  Loaded loaded = loadBytes(buildCudaModule(true, {}));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  DriverApi api = fakeApi(/*graphs=*/true);
  CudaOptions options;
  options.graphCacheSize = 2;
  CudaExecutor *backend = nullptr;
  vmoe_message_t msg;
  ASSERT_EQ(CudaExecutor::create(internal(loaded.module), options, &api,
                                 &backend, &msg),
            VMOE_STATUS_OK)
      << msg.text;
  std::vector<float> x(kMaxBatch * kWidth);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = float(i);
  auto expectRows = [&](const std::vector<float> &y, int64_t batch) {
    for (int64_t i = 0; i < kMaxBatch * kWidth; ++i)
      EXPECT_FLOAT_EQ(y[i], i < batch * kWidth ? x[i] * 3 + 0.5f * (i % kWidth)
                                               : -1.0f)
          << "batch " << batch << ", element " << i;
  };
  // Batches 5 and 2 fill the cache; 5 is used again, so 3 evicts 2.
  expectRows(runAt(*backend, 5, x), 5);
  expectRows(runAt(*backend, 2, x), 2);
  expectRows(runAt(*backend, 5, x), 5);
  EXPECT_EQ(device.graphs.size(), 2u); // captures so far
  expectRows(runAt(*backend, 3, x), 3);
  EXPECT_EQ(backend->graphCount(), 2u);
  EXPECT_EQ(backend->graphsEvicted(), 1u);
  EXPECT_EQ(device.graphsDestroyed, 1);
  // 5 is still cached; 2 is captured again and evicts 3, not 5.
  expectRows(runAt(*backend, 5, x), 5);
  EXPECT_EQ(device.graphs.size(), 3u);
  expectRows(runAt(*backend, 2, x), 2);
  EXPECT_EQ(device.graphs.size(), 4u);
  expectRows(runAt(*backend, 5, x), 5);
  EXPECT_EQ(device.graphs.size(), 4u);
  // Every batch from 1 to 5, twice: never more than two graphs.
  for (int round = 0; round < 2; ++round)
    for (int64_t batch = 1; batch <= kMaxBatch; ++batch) {
      expectRows(runAt(*backend, batch, x), batch);
      EXPECT_LE(backend->graphCount(), 2u);
    }
  EXPECT_EQ(device.launches, 0); // every run replayed a graph
  uint64_t evicted = backend->graphsEvicted();
  delete backend;
  // What the cache held at the end is destroyed with the executor.
  EXPECT_EQ(uint64_t(device.graphsDestroyed), evicted + 2);
}

TEST(CudaGraphCache, KeepsTheMostRecentlyUsed) {
  auto exec = [](uintptr_t i) { return reinterpret_cast<CUgraphExec>(i); };
  GraphCache cache(3);
  EXPECT_EQ(cache.limit(), 3u);
  EXPECT_EQ(cache.find({1, 0}), nullptr);
  EXPECT_EQ(cache.insert({1, 0}, exec(1)), nullptr);
  EXPECT_EQ(cache.insert({2, 0}, exec(2)), nullptr);
  EXPECT_EQ(cache.insert({3, 0}, exec(3)), nullptr);
  EXPECT_EQ(cache.find({1, 0}), exec(1)); // 2 is now the oldest
  EXPECT_EQ(cache.insert({4, 0}, exec(4)), exec(2));
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.find({2, 0}), nullptr);
  EXPECT_EQ(cache.insert({5, 1}, exec(5)), exec(3));
  EXPECT_EQ(cache.find({1, 0}), exec(1));
  EXPECT_EQ(cache.find({4, 0}), exec(4));
  EXPECT_EQ(cache.find({5, 1}), exec(5));
  EXPECT_EQ(cache.size(), 3u);
  GraphCache zero(0); // at least one graph
  EXPECT_EQ(zero.limit(), 1u);
}

TEST(CudaSession, GraphOptionsDefaultsAndBounds) {
  vmoe_session_options_t options;
  vmoe_session_options_init(&options);
  EXPECT_EQ(options.cuda_graphs, 1);
  EXPECT_EQ(options.cuda_graph_cache, uint32_t(VMOE_CUDA_GRAPH_CACHE_DEFAULT));
  // Checked before the driver is looked for, so this runs anywhere.
  Loaded loaded = loadBytes(buildCudaModule(true, {}));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  options.device = VMOE_DEVICE_CUDA;
  for (uint32_t bad : {0u, uint32_t(VMOE_CUDA_GRAPH_CACHE_MAX) + 1}) {
    options.cuda_graph_cache = bad;
    vmoe_session_t *session = nullptr;
    vmoe_message_t msg;
    msg.text[0] = 0;
    EXPECT_EQ(vmoe_session_create(loaded.module, &options, &session, &msg),
              VMOE_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(strstr(msg.text, "CUDA graph cache size"), nullptr) << msg.text;
    EXPECT_EQ(session, nullptr);
  }
}

TEST_F(FakeCuda, ErrorsNameTheCauseAndReleaseEverything) {
  Loaded loaded = loadBytes(buildCudaModule(true, {}));
  ASSERT_EQ(loaded.status, VMOE_STATUS_OK) << loaded.message;
  DriverApi api = fakeApi(false);
  CudaExecutor *backend = nullptr;
  vmoe_message_t msg;

  device.deviceCount = 0;
  EXPECT_EQ(
      CudaExecutor::create(internal(loaded.module), {}, &api, &backend, &msg),
      VMOE_STATUS_UNSUPPORTED);
  EXPECT_STREQ(msg.text, "the CUDA driver found no GPU");

  device.deviceCount = 2;
  EXPECT_EQ(CudaExecutor::create(internal(loaded.module), CudaOptions{2}, &api,
                                 &backend, &msg),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_STREQ(msg.text, "CUDA device 2 does not exist (2 devices)");

  device.sm = 75;
  EXPECT_EQ(
      CudaExecutor::create(internal(loaded.module), {}, &api, &backend, &msg),
      VMOE_STATUS_UNSUPPORTED);
  EXPECT_NE(strstr(msg.text, "sm_75"), nullptr) << msg.text;

  device.sm = 80;
  device.failAlloc = 2; // CUDA_ERROR_OUT_OF_MEMORY
  EXPECT_EQ(
      CudaExecutor::create(internal(loaded.module), {}, &api, &backend, &msg),
      VMOE_STATUS_OUT_OF_MEMORY);
  EXPECT_NE(strstr(msg.text, "cuMemAlloc failed: a fake failure"), nullptr)
      << msg.text;
  EXPECT_TRUE(device.allocations.empty());

  // A CPU module cannot run on the GPU.
  ModuleWriter w;
  buildAddModule(w);
  Loaded cpu = loadBytes(serialize(w));
  ASSERT_EQ(cpu.status, VMOE_STATUS_OK) << cpu.message;
  device.failAlloc = 0;
  EXPECT_EQ(
      CudaExecutor::create(internal(cpu.module), {}, &api, &backend, &msg),
      VMOE_STATUS_UNSUPPORTED);
  EXPECT_NE(strstr(msg.text, "compile with --target=cuda"), nullptr)
      << msg.text;
}

} // namespace
