//===- LowerToKernelsPass.cpp - vmoe-lower-to-kernels ---------------------===//
//
// The pass: finds the model function, builds the host function (inputs,
// outputs, the batch knob, the schedule's attributes), dispatches each op to
// its kernel builder in program order, fuses residual adds into the kernels
// that produce one of their operands and lowers the return.
//
//===----------------------------------------------------------------------===//

#include "LoweringState.h"
#include "vmoe/Conversion/Passes.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/ADT/TypeSwitch.h"

namespace mlir::vmoe {
#define GEN_PASS_DEF_VMOELOWERTOKERNELS
#include "vmoe/Conversion/Passes.h.inc"

namespace lowering {

//===----------------------------------------------------------------------===//
// Residual fusion
//===----------------------------------------------------------------------===//

void Lowering::findFusableResiduals() {
  Block &body = model.getBody().front();
  for (auto add : body.getOps<arith::AddFOp>()) {
    if (!isa<RankedTensorType>(add.getType()))
      continue;
    for (int side = 0; side < 2; ++side) {
      Value chain = add->getOperand(side), residual = add->getOperand(1 - side);
      // Through single-use reshapes back to the producer.
      while (chain.hasOneUse() &&
             isa_and_nonnull<tensor::CollapseShapeOp, tensor::ExpandShapeOp>(
                 chain.getDefiningOp()))
        chain = chain.getDefiningOp()->getOperand(0);
      Operation *producer = chain.getDefiningOp();
      if (!chain.hasOneUse() ||
          !isa_and_nonnull<MlpOp, AttentionOp, CombineOp>(producer))
        continue;
      // The residual must exist before the producer runs.
      Operation *resDef = residual.getDefiningOp();
      if (resDef &&
          (resDef->getBlock() != &body || !resDef->isBeforeInBlock(producer)))
        continue;
      if (fusedResiduals.count(chain))
        continue;
      fusedResiduals[chain] = {residual, add};
      break;
    }
  }
}

std::pair<Value, Value> Lowering::outputFor(Value result, Operation *user) {
  auto it = fusedResiduals.find(result);
  FailureOr<Value> residual = it == fusedResiduals.end()
                                  ? FailureOr<Value>(failure())
                                  : lookup(it->second.residual, user);
  if (failed(residual))
    return {allocLike(result), Value()};
  arith::AddFOp add = it->second.add;
  Value out = allocLike(add.getResult());
  handled.insert(add);
  // The producer sees both buffers in its own result shape.
  auto view = [&](Value buffer) -> Value {
    auto type = cast<RankedTensorType>(result.getType());
    if (cast<MemRefType>(buffer.getType()).getShape() == type.getShape())
      return buffer;
    Value flat = flatten2d(buffer);
    SmallVector<ReassociationIndices> expand(2);
    for (int64_t i = 0; i < type.getRank() - 1; ++i)
      expand[0].push_back(i);
    expand[1].push_back(type.getRank() - 1);
    return memref::ExpandShapeOp::create(
        *hb, MemRefType::get(type.getShape(), type.getElementType()), flat,
        expand);
  };
  Value outView = view(out);
  buffers[result] = outView;
  return {outView, view(*residual)};
}

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

LogicalResult Lowering::lowerReturn(func::ReturnOp op) {
  for (auto [i, v] : llvm::enumerate(op.getOperands())) {
    Value out = host.getArgument(numInputs + i);
    FailureOr<Value> buffer = lookup(v, op);
    if (failed(buffer))
      return failure();
    // The op that produced the result writes straight into the output.
    if (auto allocOp = buffer->getDefiningOp<memref::AllocOp>()) {
      allocOp.getResult().replaceAllUsesWith(out);
      allocOp.erase();
      continue;
    }
    // An input, a weight or a view of another buffer: copy it out.
    emitElementwise("copy", *buffer, Value(), out, Elementwise::Copy);
  }
  func::ReturnOp::create(*hb);
  return success();
}

LogicalResult Lowering::lowerOp(Operation *op) {
  if (handled.contains(op))
    return success();
  return TypeSwitch<Operation *, LogicalResult>(op)
      .Case<arith::ConstantOp, ParameterOp>([&](auto) { return success(); })
      .Case<CapacityOp>([&](auto) { return success(); })
      .Case<tensor::CollapseShapeOp>([&](tensor::CollapseShapeOp c) {
        FailureOr<Value> src = lookup(c.getSrc(), c);
        if (failed(src))
          return failure();
        buffers[c.getResult()] = memref::CollapseShapeOp::create(
            *hb, *src, c.getReassociationIndices());
        return success();
      })
      .Case<tensor::ExpandShapeOp>([&](tensor::ExpandShapeOp e) {
        FailureOr<Value> src = lookup(e.getSrc(), e);
        if (failed(src))
          return failure();
        auto type = cast<RankedTensorType>(e.getResult().getType());
        buffers[e.getResult()] = memref::ExpandShapeOp::create(
            *hb, MemRefType::get(type.getShape(), type.getElementType()), *src,
            e.getReassociationIndices());
        return success();
      })
      .Case<arith::AddFOp>([&](arith::AddFOp a) -> LogicalResult {
        if (!isa<RankedTensorType>(a.getType()))
          return a.emitOpError() << "scalar arithmetic in the model function "
                                    "is not supported by the CPU target";
        FailureOr<Value> x = lookup(a.getLhs(), a), y = lookup(a.getRhs(), a);
        if (failed(x) || failed(y))
          return failure();
        emitElementwise("add", *x, *y, allocLike(a.getResult()),
                        Elementwise::Add);
        return success();
      })
      .Case<GeluOp>([&](GeluOp gop) -> LogicalResult {
        FailureOr<Value> x = lookup(gop.getInput(), gop);
        if (failed(x))
          return failure();
        emitElementwise("gelu", *x, Value(), allocLike(gop.getResult()),
                        Elementwise::Gelu);
        return success();
      })
      .Case<LayerNormOp>([&](auto o) { return lowerLayerNorm(o); })
      .Case<MlpOp>([&](auto o) { return lowerMlp(o); })
      .Case<AttentionOp>([&](auto o) { return lowerAttention(o); })
      .Case<PatchEmbedOp>([&](auto o) { return lowerPatchEmbed(o); })
      .Case<ClassTokenOp>([&](auto o) { return lowerClassToken(o); })
      .Case<PositionEmbedOp>([&](auto o) { return lowerPositionEmbed(o); })
      .Case<SincosPositionEmbedOp>(
          [&](auto o) { return lowerSincosPositionEmbed(o); })
      .Case<MapHeadOp>([&](auto o) { return lowerMapHead(o); })
      .Case<ClassifierHeadOp>([&](auto o) { return lowerHead(o); })
      .Case<RouterOp>([&](auto o) { return lowerMoe(o); })
      .Case<func::ReturnOp>([&](auto o) { return lowerReturn(o); })
      .Default([&](Operation *o) {
        return o->emitOpError()
               << "is not supported by the CPU target here; composite ops "
                  "must be decomposed first (vmoe-decompose), and the "
                  "routing ops must form a decomposed top-k MoE layer";
      });
}

LogicalResult Lowering::createHost() {
  Builder b(ctx);
  SmallVector<Type> args;
  SmallVector<DictionaryAttr> argAttrs;
  for (auto [i, type] : llvm::enumerate(model.getArgumentTypes())) {
    auto t = dyn_cast<RankedTensorType>(type);
    if (!t || !t.hasStaticShape())
      return model.emitOpError() << "expects statically shaped tensor inputs";
    args.push_back(MemRefType::get(t.getShape(), t.getElementType()));
    argAttrs.push_back(b.getDictionaryAttr(
        b.getNamedAttr(kInputAttrName, b.getI64IntegerAttr(i))));
  }
  numInputs = args.size();
  for (auto [i, type] : llvm::enumerate(model.getResultTypes())) {
    auto t = dyn_cast<RankedTensorType>(type);
    if (!t || !t.hasStaticShape())
      return model.emitOpError() << "expects statically shaped tensor results";
    args.push_back(MemRefType::get(t.getShape(), t.getElementType()));
    argAttrs.push_back(b.getDictionaryAttr(
        b.getNamedAttr(kOutputAttrName, b.getI64IntegerAttr(i))));
  }
  // The batch: dim 0 of every input and result. A call may run fewer images
  // when all of them agree on it (checked kernel by kernel as they are
  // built); the batch arrives as a knob.
  dynamicBatch = !args.empty();
  for (auto [i, type] : llvm::enumerate(args)) {
    auto t = cast<MemRefType>(type);
    if (t.getRank() == 0 || (i > 0 && t.getShape()[0] != maxBatch))
      dynamicBatch = false;
    else if (i == 0)
      maxBatch = std::max<int64_t>(t.getShape()[0], 1);
  }
  args.push_back(b.getIndexType());
  argAttrs.push_back(b.getDictionaryAttr(b.getNamedAttr(
      kKnobAttrName, b.getStringAttr(stringifyKnobKind(KnobKind::Batch)))));
  OpBuilder mb(ctx);
  mb.setInsertionPoint(model);
  host = func::FuncOp::create(mb, model.getLoc(),
                              (model.getName() + "__host").str(),
                              b.getFunctionType(args, {}));
  host.setAllArgAttrs(argAttrs);
  Block *entry = host.addEntryBlock();
  hb = std::make_unique<ImplicitLocOpBuilder>(model.getLoc(), ctx);
  hb->setInsertionPointToEnd(entry);
  for (unsigned i = 0; i < numInputs; ++i)
    buffers[model.getArgument(i)] = host.getArgument(i);
  hostBatch = host.getArgument(args.size() - 1);
  return success();
}

void Lowering::setHostAttributes() {
  Builder b(ctx);
  host->setAttr(kMoeLayersAttrName, b.getArrayAttr(moeLayers));
  host->setAttr(kBatchMultipleAttrName,
                b.getI64IntegerAttr(dynamicBatch ? batchMultiple : maxBatch));
  host->setAttr(kEntryAttrName, b.getUnitAttr());
  if (expertShards > 1)
    host->setAttr(kExpertShardsAttrName, b.getI64IntegerAttr(expertShards));
}

LogicalResult Lowering::run() {
  if (!model.getBody().hasOneBlock())
    return model.emitOpError() << "expects a single-block model function";
  if (failed(createHost()))
    return failure();
  findFusableResiduals();
  for (Operation &op : model.getBody().front())
    if (failed(lowerOp(&op)) || packingFailed)
      return failure();
  setHostAttributes();
  StringAttr name = model.getNameAttr();
  model.erase();
  host.setName(name);
  return success();
}

} // namespace lowering

namespace {

struct VmoeLowerToKernelsPass
    : impl::VmoeLowerToKernelsBase<VmoeLowerToKernelsPass> {
  using Base::Base;

  /// The int8 options against each other and the vector width.
  LogicalResult checkInt8Options(ModuleOp module, Int8Dot dot) {
    if (!expertInt8 && !denseInt8)
      return success();
    if (dot == Int8Dot::None)
      return module.emitError()
             << "expert-int8 and dense-int8 need int8-dot (the CPU target's "
                "integer dot product: avx2, avx-vnni, avx512-vnni or sdot)";
    if (expertInt8 && (expertBf16Math || expertWeightsBf16))
      return module.emitError() << "expert-int8 and bf16 expert weights or "
                                   "math exclude each other; pick one";
    int64_t want = dot == Int8Dot::Avx512Vnni ? 16
                   : dot == Int8Dot::NeonSdot ? 4
                                              : 8;
    bool ok =
        vectorWidth == want || (dot == Int8Dot::Avx2Madd && vectorWidth == 16);
    if (!ok)
      return module.emitError()
             << "int8-dot=" << int8Dot << " needs vector-width=" << want
             << ", got " << static_cast<int64_t>(vectorWidth);
    return success();
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<func::FuncOp> models;
    for (auto f : module.getOps<func::FuncOp>())
      if (f.isPublic() && !f->hasAttr(kKernelAttrName) &&
          !f->hasAttr(kEntryAttrName))
        models.push_back(f);
    if (models.size() != 1) {
      module.emitError() << "vmoe-lower-to-kernels expects exactly one public "
                            "model function, found "
                         << models.size();
      return signalPassFailure();
    }
    if (vectorWidth < 1 || microRows < 1 || microVectors < 1) {
      module.emitError() << "vector-width, micro-rows and micro-vectors must "
                            "be positive";
      return signalPassFailure();
    }
    if (nativeBf16Dot && (!expertBf16Math || vectorWidth != 16)) {
      module.emitError() << "native-bf16-dot (AVX512-BF16) needs "
                            "expert-bf16-math and vector-width=16";
      return signalPassFailure();
    }
    if (expertShards < 1) {
      module.emitError() << "expert-shards must be at least 1 (1: the experts "
                            "are not split), got "
                         << expertShards;
      return signalPassFailure();
    }
    std::optional<Int8Dot> dot = parseInt8Dot(int8Dot);
    if (!dot) {
      module.emitError() << "int8-dot takes avx2, avx-vnni, avx512-vnni or "
                            "sdot, got '"
                         << int8Dot << "'";
      return signalPassFailure();
    }
    if (failed(checkInt8Options(module, *dot)))
      return signalPassFailure();
    GemmTiling tiling;
    tiling.vectorWidth = vectorWidth;
    tiling.mr = microRows;
    tiling.nr = vectorWidth * microVectors;
    tiling.rowTile = 8 * microRows;
    if (failed(lowering::Lowering(module, models.front(), tiling,
                                  expertWeightsBf16, expertBf16Math,
                                  nativeBf16Dot, expertShards, *dot,
                                  expertInt8, denseInt8)
                   .run()))
      signalPassFailure();
  }
};

} // namespace
} // namespace mlir::vmoe
