//===- ExpandMath.cpp - libm-free math for kernels ------------------------===//
//
// convert-math-to-llvm turns math.tanh/exp/erf/... into LLVM intrinsics that
// the x86 and AArch64 back ends lower to libm calls (tanhf, expf, ...), and
// convert-gpu-to-nvvm into libdevice calls. The CPU kernel shared object
// links without libc and the PTX without libdevice, so f32 math is expanded
// here into MLIR's polynomial approximations instead (vectorizable, a few
// ulp), the same on both targets.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Target/Common/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Approximation.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/TypeUtilities.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/STLExtras.h"
#include <cmath>

namespace mlir::vmoe::target {
#define GEN_PASS_DEF_VMOEEXPANDMATH
#include "vmoe/Target/Common/Passes.h.inc"
} // namespace mlir::vmoe::target

using namespace mlir;

namespace {
/// math.log10(x) = math.log(x) * (1 / ln 10); MLIR has no log10
/// approximation, and llvm.log10 becomes a libm call.
struct Log10ToLog : public OpRewritePattern<math::Log10Op> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(math::Log10Op op,
                                PatternRewriter &rewriter) const override {
    Type type = op.getType();
    auto floatType = dyn_cast<FloatType>(getElementTypeOrSelf(type));
    if (!floatType || !floatType.isF32())
      return failure();
    Location loc = op.getLoc();
    TypedAttr scale = rewriter.getFloatAttr(floatType, 1.0 / std::log(10.0));
    if (auto shaped = dyn_cast<ShapedType>(type))
      scale = SplatElementsAttr::get(shaped, scale);
    Value log = math::LogOp::create(rewriter, loc, op.getOperand(),
                                    op.getFastmathAttr());
    Value factor = arith::ConstantOp::create(rewriter, loc, scale);
    rewriter.replaceOpWithNewOp<arith::MulFOp>(op, log, factor,
                                               op.getFastmathAttr());
    return success();
  }
};

struct ExpandMathPass
    : public mlir::vmoe::target::impl::VmoeExpandMathBase<ExpandMathPass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    RewritePatternSet patterns(ctx);
    // Into ops that are approximated below or are instructions. tanh is not
    // expanded here: its exp-based form is slower and less accurate than
    // its own approximation.
    math::populateExpansionPatterns(patterns, {"sinh", "cosh", "tan", "asinh",
                                               "acosh", "atanh", "exp2", "powf",
                                               "fpowi", "clampf"});
    patterns.add<Log10ToLog>(ctx);
    // rsqrt is not listed: its approximation needs x86vector (AVX2 only);
    // convert-math-to-llvm turns it into 1 / llvm.sqrt, an instruction.
    auto approximated = [](StringRef name) {
      return llvm::is_contained(
          {math::AcosOp::getOperationName(), math::AsinOp::getOperationName(),
           math::AtanOp::getOperationName(), math::Atan2Op::getOperationName(),
           math::CbrtOp::getOperationName(), math::CosOp::getOperationName(),
           math::ErfOp::getOperationName(), math::ErfcOp::getOperationName(),
           math::ExpOp::getOperationName(), math::ExpM1Op::getOperationName(),
           math::LogOp::getOperationName(), math::Log2Op::getOperationName(),
           math::Log1pOp::getOperationName(), math::SinOp::getOperationName(),
           math::TanhOp::getOperationName()},
          name);
    };
    // f16/bf16 operands go through f32, the only approximated type.
    populateMathF32ExpansionPatterns(patterns, approximated);
    populateMathPolynomialApproximationPatterns(patterns, approximated);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace

namespace mlir::vmoe::target {
#define GEN_PASS_REGISTRATION
#include "vmoe/Target/Common/Passes.h.inc"
} // namespace mlir::vmoe::target

void mlir::vmoe::target::registerTargetCommonPasses() {
  registerVmoeTargetCommonPasses();
}
