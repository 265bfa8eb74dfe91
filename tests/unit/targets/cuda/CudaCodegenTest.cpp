//===- CudaCodegenTest.cpp - the CUDA back end's checks and options -------===//
//
// The checks that guard the silent failures of the NVVM path must reject
// what they are there for (no .target, a missing .entry, an unresolved
// libdevice call); SM lists parse or fail with a message; a small kernel
// module compiles to PTX with the expected entry and parameters.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Target/CUDA/CudaCodegen.h"
#include "vmoe/Dialect/IR/VmoeDialect.h"
#include "vmoe/Target/CUDA/Passes.h"
#include "vmoe/Target/Common/KernelContract.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

namespace {

using namespace mlir;
using namespace mlir::vmoe::cuda;

const char kPtx[] = R"(//
.version 7.0
.target sm_80
.address_size 64

.visible .entry model_k_0(
	.param .u64 model_k_0_param_0
)
{
	ret;
}
.visible .entry model_k_1(
	.param .u64 model_k_1_param_0
)
{
	ret;
}
)";

TEST(CudaPtxCheck, AcceptsWhatItShould) {
  std::string error;
  EXPECT_TRUE(succeeded(checkPtx(kPtx, 80, {"model_k_0", "model_k_1"}, &error)))
      << error;
}

TEST(CudaPtxCheck, RejectsAnotherTarget) {
  std::string error;
  EXPECT_TRUE(failed(checkPtx(kPtx, 90, {"model_k_0"}, &error)));
  EXPECT_EQ(error, "the PTX lacks the line '.target sm_90'");
}

TEST(CudaPtxCheck, RejectsAMissingEntry) {
  std::string error;
  EXPECT_TRUE(failed(checkPtx(kPtx, 80, {"model_k_0", "model_k_2"}, &error)));
  EXPECT_EQ(error, "the PTX has no .entry for kernel 'model_k_2'");
}

TEST(CudaPtxCheck, RejectsAnUnresolvedLibdeviceCall) {
  std::string ptx = kPtx;
  ptx.insert(ptx.find(".visible"),
             ".extern .func  (.param .b32 func_retval0) __nv_expf\n(\n\t.param "
             ".b32 __nv_expf_param_0\n)\n;\n");
  std::string error;
  EXPECT_TRUE(failed(checkPtx(ptx, 80, {"model_k_0"}, &error)));
  EXPECT_NE(error.find("__nv_expf"), std::string::npos) << error;
  EXPECT_NE(error.find("libdevice"), std::string::npos) << error;
}

TEST(CudaSmList, ParsesSortsAndRejects) {
  std::string error;
  auto sms = parseSmList("90,sm_80,90", &error);
  ASSERT_TRUE(succeeded(sms)) << error;
  EXPECT_EQ(*sms, (std::vector<unsigned>{80, 90}));
  for (const char *bad : {"", "80,", "sm80", "40", "999", "8o"}) {
    EXPECT_TRUE(failed(parseSmList(bad, &error))) << bad;
    EXPECT_NE(error.find("invalid SM"), std::string::npos) << error;
  }
}

TEST(CudaPtxas, ExplicitPathsAreTakenAsGiven) {
  EXPECT_EQ(findPtxas("none"), "");
  EXPECT_EQ(findPtxas("/nonexistent/ptxas"), "");
}

// A kernel with a binding, a push constant and scratch, launched over a
// 3 x 2 grid: PTX with one .entry whose parameters follow the CUDA kernel
// ABI (pointer, constant, three counts, scratch pointer).
TEST(CudaCodegen, SmallModuleToPtx) {
  DialectRegistry registry;
  registry.insert<vmoe::VmoeDialect>();
  vmoe::target::registerKernelDialects(registry);
  registerCudaCodegenDialects(registry);
  MLIRContext context(registry);
  const char *source = R"mlir(
    func.func private @m_scale(%x: memref<6x4xf32>, %c: index, %wx: index,
                               %wy: index, %wz: index, %s: memref<16xi8>)
        attributes {vmoe.kernel, vmoe.scratch_size = 16 : i64} {
      %v = memref.load %x[%wx, %wy] : memref<6x4xf32>
      %r = math.sqrt %v : f32
      %e = math.exp %r : f32
      memref.store %e, %x[%wx, %wy] : memref<6x4xf32>
      return
    }
    func.func @m(%x: memref<6x4xf32>) {
      %c = arith.constant 3 : index
      vmoe.launch @m_scale grid [3, 2, 1] (%x) constants(%c : index)
          : memref<6x4xf32>
      return
    }
  )mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &context);
  ASSERT_TRUE(module);
  CudaCodegenOptions options;
  options.sms = {80};
  options.ptxasPath = "none";
  std::string error;
  FailureOr<CudaExecutableImage> image =
      compileCudaKernels(*module, options, &error);
  ASSERT_TRUE(succeeded(image)) << error;
  EXPECT_EQ(image->ptxSm, 80u);
  EXPECT_TRUE(image->cubins.empty());
  ASSERT_EQ(image->kernels.size(), 1u);
  const CudaKernelInfo &k = image->kernels[0];
  EXPECT_EQ(k.name, "m_scale");
  EXPECT_EQ(k.entry, "m_scale");
  EXPECT_EQ(k.bindingCount, 1u);
  EXPECT_EQ(k.constantCount, 1u);
  EXPECT_EQ(k.scratchSize, 16u);
  EXPECT_EQ(k.blockSize, 32u);
  const std::string &ptx = image->ptx;
  EXPECT_NE(ptx.find(".target sm_80"), std::string::npos);
  EXPECT_NE(ptx.find(".visible .entry m_scale("), std::string::npos);
  for (int i = 0; i < 6; ++i)
    EXPECT_NE(ptx.find("m_scale_param_" + std::to_string(i)), std::string::npos)
        << i;
  EXPECT_EQ(ptx.find("m_scale_param_6"), std::string::npos);
  EXPECT_NE(ptx.find("sqrt.rn.f32"), std::string::npos); // not __nv_sqrtf
  EXPECT_EQ(ptx.find(".extern"), std::string::npos);
}

} // namespace
