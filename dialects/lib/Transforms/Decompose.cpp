//===- Decompose.cpp - composite vmoe ops into their parts ----------------===//
//
// The parts are what code generation fuses: router + top-k + slot assignment
// become one kernel, dispatch + GEMM1 another, GEMM2 + combine a third.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Dialect/IR/VmoeOps.h"
#include "vmoe/Dialect/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::vmoe {
#define GEN_PASS_DEF_VMOEDECOMPOSE
#include "vmoe/Dialect/Transforms/Passes.h.inc"

namespace {

/// Reshapes a static `(..., D)` tensor to `shape`, through `(N, D)`.
static Value reshapeTokens(PatternRewriter &rewriter, Location loc, Value v,
                           ArrayRef<int64_t> shape) {
  auto type = cast<RankedTensorType>(v.getType());
  if (type.getShape() == shape)
    return v;
  int64_t rank = type.getRank();
  if (rank > 2) {
    SmallVector<ReassociationIndices> collapse(2);
    for (int64_t i = 0; i < rank - 1; ++i)
      collapse[0].push_back(i);
    collapse[1].push_back(rank - 1);
    v = tensor::CollapseShapeOp::create(rewriter, loc, v, collapse);
  }
  if (shape.size() == 2)
    return v;
  SmallVector<ReassociationIndices> expand(2);
  for (int64_t i = 0, e = shape.size(); i < e - 1; ++i)
    expand[0].push_back(i);
  expand[1].push_back(shape.size() - 1);
  auto resultType = RankedTensorType::get(shape, type.getElementType());
  return tensor::ExpandShapeOp::create(rewriter, loc, resultType, v, expand);
}

struct DecomposeSparseMoe : OpRewritePattern<SparseMoeOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(SparseMoeOp op,
                                PatternRewriter &rewriter) const override {
    auto type = cast<RankedTensorType>(op.getInput().getType());
    if (!type.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "needs a static input shape");
    std::optional<int64_t> maxCapacity =
        op.getMaxCapacity() ? std::optional<int64_t>(*op.getMaxCapacity())
                            : op.inferMaxCapacity();
    if (!maxCapacity)
      return rewriter.notifyMatchFailure(op, "capacity cannot be inferred");

    Location loc = op.getLoc();
    int64_t d = type.getShape().back();
    int64_t s = op.getGroupSize(), g = op.getNumGroups();
    int64_t e = op.getNumExperts();
    Type f32 = rewriter.getF32Type(), i32 = rewriter.getI32Type();
    Value tokens = reshapeTokens(rewriter, loc, op.getInput(), {g, s, d});

    auto gatesType = RankedTensorType::get({g, s, e}, f32);
    Value gates =
        RouterOp::create(rewriter, loc, gatesType, tokens, op.getRouterKernel());

    // The capacity is an SSA value computed from the capacity factor, so that
    // it can later become a per-call argument of the compiled module.
    Value capacity;
    if (std::optional<uint64_t> explicitCapacity = op.getCapacity()) {
      capacity = arith::ConstantIndexOp::create(rewriter, loc, *explicitCapacity);
    } else {
      Value cf = arith::ConstantOp::create(
          rewriter, loc, rewriter.getF64FloatAttr(*op.getCapacityFactorValue()));
      // A run-time knob up to the largest capacity factor a call may ask
      // for; the lowering records both in the module.
      auto capacityOp = CapacityOp::create(
          rewriter, loc, cf, op.getRoutedTokensPerGroup(), e,
          /*multiple_of=*/4, /*round=*/false, /*max_capacity_factor=*/nullptr);
      capacityOp.setMaxCapacityFactorAttr(
          rewriter.getF64FloatAttr(op.getMaxCapacityFactorValue().value_or(
              *op.getCapacityFactorValue())));
      capacity = capacityOp;
    }

    Value experts, slots, weights;
    if (op.getRouting() == RoutingKind::TopK) {
      int64_t k = op.getK();
      auto valuesType = RankedTensorType::get({g, s, k}, f32);
      auto indicesType = RankedTensorType::get({g, s, k}, i32);
      auto topK = TopKOp::create(rewriter, loc, valuesType, indicesType, gates,
                                 static_cast<uint64_t>(k));
      Value bpr = arith::ConstantOp::create(
          rewriter, loc, rewriter.getBoolAttr(op.getBatchPriority()));
      auto assign = AssignSlotsOp::create(
          rewriter, loc, indicesType, RankedTensorType::get({g, e}, i32),
          topK.getIndices(), topK.getValues(), capacity, bpr,
          static_cast<uint64_t>(e), static_cast<uint64_t>(*maxCapacity));
      experts = topK.getIndices();
      slots = assign.getSlots();
      weights = topK.getValues();
    } else {
      auto choice = ExpertChoiceOp::create(
          rewriter, loc, RankedTensorType::get({g, s, e}, i32),
          RankedTensorType::get({g, s, e}, i32),
          RankedTensorType::get({g, s, e}, f32), gates, capacity,
          static_cast<uint64_t>(*maxCapacity));
      experts = choice.getExperts();
      slots = choice.getSlots();
      weights = choice.getWeights();
    }

    auto buffersType = RankedTensorType::get({e, g, *maxCapacity, d}, f32);
    bool bf16 = op.getBf16Dispatch();
    Value buffers = DispatchOp::create(rewriter, loc, buffersType, tokens,
                                       experts, slots, bf16);
    Value outputs = ExpertMlpOp::create(rewriter, loc, buffersType, buffers,
                                        op.getW1(), op.getB1(), op.getW2(),
                                        op.getB2());
    Value combined =
        CombineOp::create(rewriter, loc, RankedTensorType::get({g, s, d}, f32),
                          outputs, experts, slots, weights, bf16);
    rewriter.replaceOp(op,
                       reshapeTokens(rewriter, loc, combined, type.getShape()));
    return success();
  }
};

struct DecomposeEncoderBlock : OpRewritePattern<EncoderBlockOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(EncoderBlockOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Type type = op.getInput().getType();
    Value norm0 = LayerNormOp::create(rewriter, loc, type, op.getInput(),
                                      op.getLn0Scale(), op.getLn0Bias(),
                                      APFloat(1e-6));
    Value attention = AttentionOp::create(
        rewriter, loc, type, norm0, op.getQueryKernel(), op.getQueryBias(),
        op.getKeyKernel(), op.getKeyBias(), op.getValueKernel(),
        op.getValueBias(), op.getOutKernel(), op.getOutBias());
    Value x = arith::AddFOp::create(rewriter, loc, op.getInput(), attention);
    Value norm1 = LayerNormOp::create(rewriter, loc, type, x, op.getLn1Scale(),
                                      op.getLn1Bias(), APFloat(1e-6));
    Block &body = op.getMlp().front();
    auto yield = cast<YieldOp>(body.getTerminator());
    Value mlp = yield.getValue();
    rewriter.inlineBlockBefore(&body, op, ValueRange{norm1});
    rewriter.eraseOp(yield);
    rewriter.replaceOpWithNewOp<arith::AddFOp>(op, x, mlp);
    return success();
  }
};

struct VmoeDecomposePass : impl::VmoeDecomposeBase<VmoeDecomposePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<DecomposeSparseMoe, DecomposeEncoderBlock>(&getContext());
    // No folding: a folded `vmoe.capacity` would lose the capacity factor
    // that later passes turn into a per-call argument.
    GreedyRewriteConfig config;
    config.enableFolding(false).enableConstantCSE(false);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns),
                                     config)))
      return signalPassFailure();
    // A composite left behind had a dynamic shape or no capacity: say so
    // rather than hand later passes an op they cannot lower.
    WalkResult leftover = getOperation()->walk([](Operation *op) {
      if (isa<SparseMoeOp, EncoderBlockOp>(op)) {
        op->emitOpError() << "could not be decomposed: it needs static shapes";
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (leftover.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
} // namespace mlir::vmoe
