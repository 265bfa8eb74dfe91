//===- VmoeOps.cpp - vmoe dialect operations ------------------------------===//
//
// Verifiers state the expected shape with named dimensions, so a user sees
// what is wrong and what was expected, and the capacity rule of vmoe.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Dialect/IR/VmoeOps.h"
#include "vmoe/Dialect/IR/VmoeContract.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::vmoe;

//===----------------------------------------------------------------------===//
// Capacity rule
//===----------------------------------------------------------------------===//

std::optional<int64_t> mlir::vmoe::computeCapacity(int64_t numTokens,
                                                   int64_t numExperts,
                                                   double capacityFactor,
                                                   int64_t multipleOf,
                                                   bool round) {
  if (numTokens <= 0 || numExperts <= 0 || multipleOf <= 0 ||
      !std::isfinite(capacityFactor))
    return std::nullopt;
  // Same order as Python: num_tokens * capacity_factor / num_experts.
  double v = static_cast<double>(numTokens) * capacityFactor /
             static_cast<double>(numExperts);
  // Python's round() is half-to-even; nearbyint under the default rounding
  // mode is exactly that.
  double capped = round ? std::nearbyint(v) : std::ceil(v);
  if (!(capped >= 1.0) || capped > static_cast<double>(1LL << 52))
    return std::nullopt;
  int64_t cap = static_cast<int64_t>(capped);
  int64_t rem = cap % multipleOf;
  if (rem != 0)
    cap += multipleOf - rem;
  return cap;
}

//===----------------------------------------------------------------------===//
// Shape helpers
//===----------------------------------------------------------------------===//

static constexpr int64_t kAny = ShapedType::kDynamic;

static std::string formatShape(ArrayRef<int64_t> shape) {
  std::string s;
  llvm::raw_string_ostream os(s);
  llvm::interleave(
      shape, os,
      [&](int64_t d) {
        if (ShapedType::isDynamic(d))
          os << "?";
        else
          os << d;
      },
      "x");
  return s;
}

/// Succeeds when `type` has the rank of `expected` and every dimension that is
/// static on both sides is equal. `dims` names the dimensions for the message,
/// e.g. "groups x tokens x experts".
static LogicalResult checkShape(Operation *op, Type type,
                                ArrayRef<int64_t> expected, StringRef what,
                                StringRef dims) {
  auto tensor = cast<RankedTensorType>(type);
  bool ok = tensor.getRank() == static_cast<int64_t>(expected.size());
  for (auto [actual, want] : llvm::zip(tensor.getShape(), expected))
    if (ok && !ShapedType::isDynamic(actual) && !ShapedType::isDynamic(want) &&
        actual != want)
      ok = false;
  if (ok)
    return success();
  return op->emitOpError() << "expects " << what << " of shape "
                           << formatShape(expected) << " (" << dims
                           << "), got " << type;
}

static ArrayRef<int64_t> shapeOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getShape();
}

static int64_t rankOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getRank();
}

/// Dimension `i` of `v`, or kAny when `v` is not at least that rank.
static int64_t dimOf(Value v, int64_t i) {
  auto shape = shapeOf(v);
  if (i < 0)
    i += shape.size();
  return i >= 0 && i < static_cast<int64_t>(shape.size()) ? shape[i] : kAny;
}

static LogicalResult checkRank(Operation *op, Value v, int64_t rank,
                               StringRef what, StringRef dims) {
  if (rankOf(v) == rank)
    return success();
  return op->emitOpError() << "expects " << what << " of rank " << rank << " ("
                           << dims << "), got " << v.getType();
}

static bool isStaticEq(int64_t a, int64_t b) {
  return !ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a == b;
}

//===----------------------------------------------------------------------===//
// RouterOp
//===----------------------------------------------------------------------===//

LogicalResult RouterOp::verify() {
  if (failed(checkRank(*this, getInput(), 3, "input", "groups x tokens x hidden")) ||
      failed(checkRank(*this, getKernel(), 2, "kernel", "hidden x experts")))
    return failure();
  int64_t g = dimOf(getInput(), 0), s = dimOf(getInput(), 1),
          d = dimOf(getInput(), 2), e = dimOf(getKernel(), 1);
  if (failed(checkShape(*this, getKernel().getType(), {d, e}, "kernel",
                        "hidden x experts, hidden from the input")) ||
      failed(checkShape(*this, getGates().getType(), {g, s, e}, "gates",
                        "groups x tokens x experts")))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// TopKOp
//===----------------------------------------------------------------------===//

LogicalResult TopKOp::verify() {
  if (failed(checkRank(*this, getGates(), 3, "gates", "groups x tokens x experts")))
    return failure();
  int64_t g = dimOf(getGates(), 0), s = dimOf(getGates(), 1),
          e = dimOf(getGates(), 2);
  int64_t k = getK();
  if (!ShapedType::isDynamic(e) && k > e)
    return emitOpError() << "k = " << k << " exceeds the number of experts "
                         << e << "; choose 1 <= k <= " << e;
  if (failed(checkShape(*this, getValues().getType(), {g, s, k}, "values",
                        "groups x tokens x k")) ||
      failed(checkShape(*this, getIndices().getType(), {g, s, k}, "indices",
                        "groups x tokens x k")))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// CapacityOp
//===----------------------------------------------------------------------===//

LogicalResult CapacityOp::verify() {
  FloatAttr cf;
  if (!matchPattern(getCapacityFactor(), m_Constant(&cf)))
    return success();
  double value = cf.getValueAsDouble();
  if (std::optional<APFloat> maxCf = getMaxCapacityFactor();
      maxCf && !(maxCf->convertToDouble() >= value))
    return emitOpError() << "max_capacity_factor "
                         << maxCf->convertToDouble()
                         << " is below the default capacity factor " << value;
  if (!(value > 0.0) || !std::isfinite(value))
    return emitOpError() << "capacity factor must be a positive finite number, got "
                         << value;
  if (!computeCapacity(getNumTokens(), getNumExperts(), value, getMultipleOf(),
                       getRound()))
    return emitOpError() << "capacity factor " << value << " gives a capacity below 1 for "
                         << getNumTokens() << " routed tokens and "
                         << getNumExperts() << " experts; raise the capacity factor";
  return success();
}

OpFoldResult CapacityOp::fold(FoldAdaptor adaptor) {
  if (getMaxCapacityFactor())
    return {}; // a run-time knob
  auto cf = dyn_cast_if_present<FloatAttr>(adaptor.getCapacityFactor());
  if (!cf)
    return {};
  std::optional<int64_t> cap =
      computeCapacity(getNumTokens(), getNumExperts(), cf.getValueAsDouble(),
                      getMultipleOf(), getRound());
  if (!cap)
    return {};
  return IntegerAttr::get(IndexType::get(getContext()), *cap);
}

//===----------------------------------------------------------------------===//
// AssignSlotsOp
//===----------------------------------------------------------------------===//

LogicalResult AssignSlotsOp::verify() {
  if (failed(checkRank(*this, getIndices(), 3, "indices", "groups x tokens x k")))
    return failure();
  int64_t g = dimOf(getIndices(), 0), s = dimOf(getIndices(), 1),
          k = dimOf(getIndices(), 2);
  int64_t e = getNumExperts();
  if (!ShapedType::isDynamic(k) && k > e)
    return emitOpError() << "k = " << k << " choices per token exceed num_experts = "
                         << e;
  if (failed(checkShape(*this, getValues().getType(), {g, s, k}, "values",
                        "groups x tokens x k")) ||
      failed(checkShape(*this, getSlots().getType(), {g, s, k}, "slots",
                        "groups x tokens x k")) ||
      failed(checkShape(*this, getCounts().getType(), {g, e}, "counts",
                        "groups x num_experts")))
    return failure();
  APInt cap;
  if (matchPattern(getCapacity(), m_ConstantInt(&cap)) && cap.getSExtValue() < 1)
    return emitOpError() << "capacity must be at least 1, got " << cap.getSExtValue();
  return success();
}

//===----------------------------------------------------------------------===//
// ExpertChoiceOp
//===----------------------------------------------------------------------===//

LogicalResult ExpertChoiceOp::verify() {
  if (failed(checkRank(*this, getGates(), 3, "gates", "groups x tokens x experts")))
    return failure();
  int64_t g = dimOf(getGates(), 0), s = dimOf(getGates(), 1),
          e = dimOf(getGates(), 2);
  for (auto [v, name] : {std::pair<Value, StringRef>{getExperts(), "experts"},
                         {getSlots(), "slots"},
                         {getWeights(), "weights"}})
    if (failed(checkShape(*this, v.getType(), {g, s, e}, name,
                          "groups x tokens x experts")))
      return failure();
  if (!ShapedType::isDynamic(s) && getMaxCapacity() > static_cast<uint64_t>(s))
    return emitOpError() << "max_capacity = " << getMaxCapacity()
                         << " exceeds the group size " << s
                         << ": an expert cannot choose more tokens than a group has";
  APInt cap;
  if (matchPattern(getCapacity(), m_ConstantInt(&cap)) && cap.getSExtValue() < 1)
    return emitOpError() << "capacity must be at least 1, got " << cap.getSExtValue();
  return success();
}

//===----------------------------------------------------------------------===//
// DispatchOp / CombineOp
//===----------------------------------------------------------------------===//

/// Checks the per-assignment tensors (groups x tokens x choices) of dispatch
/// and combine against the token tensor.
static LogicalResult verifyAssignments(Operation *op, int64_t g, int64_t s,
                                       ArrayRef<std::pair<Value, StringRef>> all) {
  int64_t k = dimOf(all.front().first, 2);
  for (auto [v, name] : all)
    if (failed(checkShape(op, v.getType(), {g, s, k}, name,
                          "groups x tokens x choices")))
      return failure();
  return success();
}

LogicalResult DispatchOp::verify() {
  if (failed(checkRank(*this, getInput(), 3, "input", "groups x tokens x hidden")) ||
      failed(checkRank(*this, getBuffers(), 4, "buffers",
                       "experts x groups x capacity x hidden")))
    return failure();
  int64_t g = dimOf(getInput(), 0), s = dimOf(getInput(), 1),
          d = dimOf(getInput(), 2);
  if (failed(verifyAssignments(*this, g, s,
                               {{getExperts(), "experts"}, {getSlots(), "slots"}})))
    return failure();
  return checkShape(*this, getBuffers().getType(),
                    {dimOf(getBuffers(), 0), g, dimOf(getBuffers(), 2), d},
                    "buffers", "experts x groups x capacity x hidden");
}

LogicalResult CombineOp::verify() {
  if (failed(checkRank(*this, getBuffers(), 4, "buffers",
                       "experts x groups x capacity x hidden")) ||
      failed(checkRank(*this, getResult(), 3, "result", "groups x tokens x hidden")))
    return failure();
  int64_t g = dimOf(getResult(), 0), s = dimOf(getResult(), 1),
          d = dimOf(getResult(), 2);
  if (failed(verifyAssignments(*this, g, s,
                               {{getExperts(), "experts"},
                                {getSlots(), "slots"},
                                {getWeights(), "weights"}})))
    return failure();
  return checkShape(*this, getBuffers().getType(),
                    {dimOf(getBuffers(), 0), g, dimOf(getBuffers(), 2), d},
                    "buffers", "experts x groups x capacity x hidden");
}

//===----------------------------------------------------------------------===//
// Expert and dense MLP weights
//===----------------------------------------------------------------------===//

/// Expert weights stacked on a leading expert axis: w1 (E,D,M), b1 (E,M),
/// w2 (E,M,D), b2 (E,D).
static LogicalResult verifyExpertWeights(Operation *op, int64_t e, int64_t d,
                                         Value w1, Value b1, Value w2, Value b2) {
  if (failed(checkRank(op, w1, 3, "expert w1", "experts x hidden x mlp")))
    return failure();
  int64_t m = dimOf(w1, 2);
  if (failed(checkShape(op, w1.getType(), {e, d, m}, "expert w1",
                        "experts x hidden x mlp")) ||
      failed(checkShape(op, b1.getType(), {e, m}, "expert b1", "experts x mlp")) ||
      failed(checkShape(op, w2.getType(), {e, m, d}, "expert w2",
                        "experts x mlp x hidden")) ||
      failed(checkShape(op, b2.getType(), {e, d}, "expert b2",
                        "experts x hidden")))
    return failure();
  return success();
}

LogicalResult ExpertMlpOp::verify() {
  if (rankOf(getBuffers()) < 2)
    return emitOpError() << "expects buffers of rank >= 2 (experts x ... x hidden), got "
                         << getBuffers().getType();
  if (getResult().getType() != getBuffers().getType())
    return emitOpError() << "expects the result type to equal the buffers type "
                         << getBuffers().getType() << ", got "
                         << getResult().getType();
  return verifyExpertWeights(*this, dimOf(getBuffers(), 0),
                             dimOf(getBuffers(), -1), getW1(), getB1(), getW2(),
                             getB2());
}

LogicalResult MlpOp::verify() {
  if (getResult().getType() != getInput().getType())
    return emitOpError() << "expects the result type to equal the input type "
                         << getInput().getType() << ", got "
                         << getResult().getType();
  int64_t d = dimOf(getInput(), -1);
  if (failed(checkRank(*this, getW1(), 2, "w1", "hidden x mlp")))
    return failure();
  int64_t m = dimOf(getW1(), 1);
  if (failed(checkShape(*this, getW1().getType(), {d, m}, "w1", "hidden x mlp")) ||
      failed(checkShape(*this, getB1().getType(), {m}, "b1", "mlp")) ||
      failed(checkShape(*this, getW2().getType(), {m, d}, "w2", "mlp x hidden")) ||
      failed(checkShape(*this, getB2().getType(), {d}, "b2", "hidden")))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// SparseMoeOp
//===----------------------------------------------------------------------===//

static std::optional<double> asDouble(std::optional<APFloat> value) {
  if (!value)
    return std::nullopt;
  return value->convertToDouble();
}

std::optional<double> SparseMoeOp::getCapacityFactorValue() {
  return asDouble(getCapacityFactor());
}

std::optional<double> SparseMoeOp::getMaxCapacityFactorValue() {
  return asDouble(getMaxCapacityFactor());
}

int64_t SparseMoeOp::getRoutedTokensPerGroup() {
  int64_t s = getGroupSize();
  return getRouting() == RoutingKind::TopK ? s * static_cast<int64_t>(getK()) : s;
}

int64_t SparseMoeOp::getNumGroups() {
  auto type = cast<RankedTensorType>(getInput().getType());
  if (!type.hasStaticShape())
    return kAny;
  return type.getNumElements() / type.getShape().back() /
         static_cast<int64_t>(getGroupSize());
}

LogicalResult SparseMoeOp::verify() {
  auto type = cast<RankedTensorType>(getInput().getType());
  if (type.getRank() < 2)
    return emitOpError() << "expects input of rank >= 2 (... x tokens x hidden), got "
                         << type;
  if (getResult().getType() != type)
    return emitOpError() << "expects the result type to equal the input type "
                         << type << ", got " << getResult().getType();
  int64_t e = getNumExperts(), k = getK(), s = getGroupSize();
  int64_t d = type.getShape().back();
  if (failed(checkShape(*this, getRouterKernel().getType(), {d, e},
                        "router kernel", "hidden x num_experts")) ||
      failed(verifyExpertWeights(*this, e, d, getW1(), getB1(), getW2(), getB2())))
    return failure();

  if (getRouting() == RoutingKind::TopK && k > e)
    return emitOpError() << "k = " << k << " exceeds num_experts = " << e
                         << "; choose 1 <= k <= " << e;
  if (getRouting() == RoutingKind::ExpertChoice && k != 1)
    return emitOpError() << "expert-choice routing has no k (each expert picks "
                            "its tokens); remove k or set k = 1, got k = "
                         << k;
  if (type.hasStaticShape()) {
    int64_t tokens = type.getNumElements() / d;
    if (tokens % s != 0)
      return emitOpError() << "group_size = " << s
                           << " does not divide the number of tokens " << tokens
                           << " (batch x tokens per image); choose a divisor of "
                           << tokens;
  }

  std::optional<double> cf = getCapacityFactorValue();
  std::optional<uint64_t> capacity = getCapacity();
  if (cf.has_value() == capacity.has_value())
    return emitOpError() << "expects exactly one of capacity_factor and capacity";
  int64_t routed = getRoutedTokensPerGroup();
  int64_t implied = 0;
  if (cf) {
    if (!(*cf > 0.0) || !std::isfinite(*cf))
      return emitOpError() << "capacity_factor must be a positive finite number, got "
                           << *cf;
    std::optional<int64_t> cap = computeCapacity(routed, e, *cf);
    if (!cap)
      return emitOpError() << "capacity_factor = " << *cf
                           << " gives a capacity below 1 for " << routed
                           << " routed tokens per group and " << e
                           << " experts; raise the capacity factor";
    implied = *cap;
    if (std::optional<double> maxCf = getMaxCapacityFactorValue();
        maxCf && !(*maxCf >= *cf))
      return emitOpError() << "max_capacity_factor = " << *maxCf
                           << " is below capacity_factor = " << *cf;
  } else {
    if (getMaxCapacityFactor())
      return emitOpError() << "max_capacity_factor needs capacity_factor; an "
                              "explicit capacity is fixed at compile time";
    implied = static_cast<int64_t>(*capacity);
    if (implied < 1)
      return emitOpError() << "capacity must be at least 1, got " << implied;
  }
  if (getRouting() == RoutingKind::ExpertChoice && implied > s)
    return emitOpError() << "expert-choice capacity " << implied
                         << " exceeds the group size " << s
                         << ": an expert cannot choose more tokens than a group has";
  if (std::optional<uint64_t> maxCap = getMaxCapacity();
      maxCap && static_cast<int64_t>(*maxCap) < implied)
    return emitOpError() << "max_capacity = " << *maxCap
                         << " is below the capacity " << implied
                         << " that the layer needs; rerun vmoe-infer-capacity";
  return success();
}

std::optional<int64_t> SparseMoeOp::inferMaxCapacity() {
  if (std::optional<uint64_t> capacity = getCapacity())
    return static_cast<int64_t>(*capacity);
  double cf = getMaxCapacityFactorValue().value_or(
      getCapacityFactorValue().value_or(0.0));
  std::optional<int64_t> cap =
      computeCapacity(getRoutedTokensPerGroup(), getNumExperts(), cf);
  // An expert never holds more than one assignment per token of a group.
  if (cap && getRouting() == RoutingKind::ExpertChoice)
    cap = std::min<int64_t>(*cap, getGroupSize());
  return cap;
}

namespace {
/// With an explicit capacity of at least the group size no assignment can be
/// dropped (an expert receives at most one assignment per token), so Batch
/// Prioritized Routing only permutes slots and the output is the same.
struct DropBprWithoutDrops : OpRewritePattern<SparseMoeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SparseMoeOp op,
                                PatternRewriter &rewriter) const override {
    std::optional<uint64_t> capacity = op.getCapacity();
    if (!op.getBatchPriority() || op.getRouting() != RoutingKind::TopK ||
        !capacity || *capacity < op.getGroupSize())
      return failure();
    rewriter.modifyOpInPlace(op, [&] { op.setBatchPriority(false); });
    return success();
  }
};
} // namespace

void SparseMoeOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                              MLIRContext *context) {
  results.add<DropBprWithoutDrops>(context);
}

//===----------------------------------------------------------------------===//
// Dense ViT parts
//===----------------------------------------------------------------------===//

LogicalResult PatchEmbedOp::verify() {
  if (failed(checkRank(*this, getImages(), 4, "images",
                       "batch x height x width x channels (NHWC)")) ||
      failed(checkRank(*this, getKernel(), 4, "kernel",
                       "patch x patch x channels x hidden (HWIO)")))
    return failure();
  int64_t b = dimOf(getImages(), 0), h = dimOf(getImages(), 1),
          w = dimOf(getImages(), 2), c = dimOf(getImages(), 3);
  int64_t ph = dimOf(getKernel(), 0), pw = dimOf(getKernel(), 1),
          d = dimOf(getKernel(), 3);
  if (failed(checkShape(*this, getKernel().getType(), {ph, pw, c, d}, "kernel",
                        "patch x patch x channels x hidden (HWIO)")) ||
      failed(checkShape(*this, getBias().getType(), {d}, "bias", "hidden")))
    return failure();
  int64_t patches = kAny;
  if (!ShapedType::isDynamic(h) && !ShapedType::isDynamic(w) &&
      !ShapedType::isDynamic(ph) && !ShapedType::isDynamic(pw)) {
    if (ph < 1 || pw < 1 || h < ph || w < pw)
      return emitOpError() << "patch " << ph << "x" << pw
                           << " does not fit in the image " << h << "x" << w;
    patches = (h / ph) * (w / pw);
  }
  return checkShape(*this, getResult().getType(), {b, patches, d}, "result",
                    "batch x (height/patch * width/patch) x hidden");
}

LogicalResult ClassTokenOp::verify() {
  if (failed(checkRank(*this, getInput(), 3, "input", "batch x tokens x hidden")))
    return failure();
  int64_t b = dimOf(getInput(), 0), n = dimOf(getInput(), 1),
          d = dimOf(getInput(), 2);
  if (failed(checkShape(*this, getCls().getType(), {1, 1, d}, "cls",
                        "1 x 1 x hidden")))
    return failure();
  return checkShape(*this, getResult().getType(),
                    {b, ShapedType::isDynamic(n) ? kAny : n + 1, d}, "result",
                    "batch x (tokens + 1) x hidden");
}

LogicalResult PositionEmbedOp::verify() {
  if (failed(checkRank(*this, getInput(), 3, "input", "batch x tokens x hidden")))
    return failure();
  if (getResult().getType() != getInput().getType())
    return emitOpError() << "expects the result type to equal the input type "
                         << getInput().getType() << ", got "
                         << getResult().getType();
  return checkShape(*this, getTable().getType(),
                    {1, dimOf(getInput(), 1), dimOf(getInput(), 2)}, "table",
                    "1 x tokens x hidden");
}

LogicalResult LayerNormOp::verify() {
  if (getResult().getType() != getInput().getType())
    return emitOpError() << "expects the result type to equal the input type "
                         << getInput().getType() << ", got "
                         << getResult().getType();
  if (!(getEpsilon().convertToDouble() >= 0.0))
    return emitOpError() << "epsilon must be >= 0, got "
                         << getEpsilon().convertToDouble();
  int64_t d = dimOf(getInput(), -1);
  if (failed(checkShape(*this, getScale().getType(), {d}, "scale", "hidden")) ||
      failed(checkShape(*this, getBias().getType(), {d}, "bias", "hidden")))
    return failure();
  return success();
}

/// Flax MultiHeadDotProductAttention parameters for hidden size `d`.
static LogicalResult verifyAttentionWeights(Operation *op, int64_t d, Value qk,
                                            Value qb, Value kk, Value kb,
                                            Value vk, Value vb, Value ok,
                                            Value ob) {
  if (failed(checkRank(op, qk, 3, "query kernel", "hidden x heads x head_dim")))
    return failure();
  int64_t h = dimOf(qk, 1), dh = dimOf(qk, 2);
  if (!ShapedType::isDynamic(d) && !ShapedType::isDynamic(h) &&
      !ShapedType::isDynamic(dh) && h * dh != d)
    return op->emitOpError() << "expects heads x head_dim = hidden, got " << h
                             << " x " << dh << " != " << d;
  for (auto [v, name] : {std::pair<Value, StringRef>{qk, "query kernel"},
                         {kk, "key kernel"},
                         {vk, "value kernel"}})
    if (failed(checkShape(op, v.getType(), {d, h, dh}, name,
                          "hidden x heads x head_dim")))
      return failure();
  for (auto [v, name] : {std::pair<Value, StringRef>{qb, "query bias"},
                         {kb, "key bias"},
                         {vb, "value bias"}})
    if (failed(checkShape(op, v.getType(), {h, dh}, name, "heads x head_dim")))
      return failure();
  if (failed(checkShape(op, ok.getType(), {h, dh, d}, "out kernel",
                        "heads x head_dim x hidden")) ||
      failed(checkShape(op, ob.getType(), {d}, "out bias", "hidden")))
    return failure();
  return success();
}

LogicalResult AttentionOp::verify() {
  if (failed(checkRank(*this, getInput(), 3, "input", "batch x tokens x hidden")))
    return failure();
  if (getResult().getType() != getInput().getType())
    return emitOpError() << "expects the result type to equal the input type "
                         << getInput().getType() << ", got "
                         << getResult().getType();
  return verifyAttentionWeights(*this, dimOf(getInput(), 2), getQueryKernel(),
                                getQueryBias(), getKeyKernel(), getKeyBias(),
                                getValueKernel(), getValueBias(), getOutKernel(),
                                getOutBias());
}

LogicalResult EncoderBlockOp::verify() {
  if (failed(checkRank(*this, getInput(), 3, "input", "batch x tokens x hidden")))
    return failure();
  if (getResult().getType() != getInput().getType())
    return emitOpError() << "expects the result type to equal the input type "
                         << getInput().getType() << ", got "
                         << getResult().getType();
  int64_t d = dimOf(getInput(), 2);
  for (auto [v, name] : {std::pair<Value, StringRef>{getLn0Scale(), "ln0 scale"},
                         {getLn0Bias(), "ln0 bias"},
                         {getLn1Scale(), "ln1 scale"},
                         {getLn1Bias(), "ln1 bias"}})
    if (failed(checkShape(*this, v.getType(), {d}, name, "hidden")))
      return failure();
  return verifyAttentionWeights(*this, d, getQueryKernel(), getQueryBias(),
                                getKeyKernel(), getKeyBias(), getValueKernel(),
                                getValueBias(), getOutKernel(), getOutBias());
}

LogicalResult EncoderBlockOp::verifyRegions() {
  Block &body = getMlp().front();
  Type type = getInput().getType();
  if (body.getNumArguments() != 1 || body.getArgument(0).getType() != type)
    return emitOpError() << "expects the mlp region to take one argument of type "
                         << type << " (the normalised tokens)";
  auto yield = dyn_cast<YieldOp>(body.getTerminator());
  if (!yield)
    return emitOpError() << "expects the mlp region to end with vmoe.yield";
  if (yield.getValue().getType() != type)
    return emitOpError() << "expects the mlp region to yield " << type
                         << ", got " << yield.getValue().getType();
  return success();
}

LogicalResult ClassifierHeadOp::verify() {
  if (failed(checkRank(*this, getInput(), 3, "input", "batch x tokens x hidden")))
    return failure();
  int64_t b = dimOf(getInput(), 0), d = dimOf(getInput(), 2);
  int64_t features = d;
  if (static_cast<bool>(getPreLogitsKernel()) !=
      static_cast<bool>(getPreLogitsBias()))
    return emitOpError() << "expects both pre_logits kernel and bias, or neither";
  if (Value pre = getPreLogitsKernel()) {
    if (failed(checkRank(*this, pre, 2, "pre_logits kernel",
                         "hidden x representation")))
      return failure();
    features = dimOf(pre, 1);
    if (failed(checkShape(*this, pre.getType(), {d, features},
                          "pre_logits kernel", "hidden x representation")) ||
        failed(checkShape(*this, getPreLogitsBias().getType(), {features},
                          "pre_logits bias", "representation")))
      return failure();
  }
  if (failed(checkRank(*this, getKernel(), 2, "head kernel",
                       "features x classes")))
    return failure();
  int64_t classes = dimOf(getKernel(), 1);
  if (failed(checkShape(*this, getKernel().getType(), {features, classes},
                        "head kernel", "features x classes")) ||
      failed(checkShape(*this, getBias().getType(), {classes}, "head bias",
                        "classes")) ||
      failed(checkShape(*this, getResult().getType(), {b, classes}, "result",
                        "batch x classes")))
    return failure();
  return success();
}

LogicalResult SincosPositionEmbedOp::verify() {
  if (failed(checkRank(*this, getInput(), 3, "input", "batch x tokens x hidden")))
    return failure();
  int64_t t = dimOf(getInput(), 1), d = dimOf(getInput(), 2);
  int64_t grid = getHeight() * getWidth();
  if (!ShapedType::isDynamic(t) && t != grid && t != grid + 1)
    return emitOpError() << "expects height x width = " << grid
                         << " tokens, or one more (a class token), got " << t;
  if (!ShapedType::isDynamic(d) && (d % 4 != 0 || d < 8))
    return emitOpError() << "expects a hidden size that is a multiple of 4 "
                            "and at least 8, got "
                         << d;
  if (!(getTemperature().convertToDouble() > 0.0))
    return emitOpError() << "expects a positive temperature";
  return success();
}

LogicalResult MapHeadOp::verify() {
  if (failed(checkRank(*this, getInput(), 3, "input", "batch x tokens x hidden")))
    return failure();
  int64_t b = dimOf(getInput(), 0), d = dimOf(getInput(), 2);
  if (failed(checkShape(*this, getProbe().getType(), {1, 1, d}, "probe",
                        "1 x 1 x hidden")) ||
      failed(checkShape(*this, getResult().getType(), {b, 1, d}, "result",
                        "batch x 1 x hidden")) ||
      failed(checkShape(*this, getLnScale().getType(), {d}, "norm scale",
                        "hidden")) ||
      failed(checkShape(*this, getLnBias().getType(), {d}, "norm bias",
                        "hidden")) ||
      failed(checkRank(*this, getW1(), 2, "mlp w1", "hidden x mlp")))
    return failure();
  int64_t m = dimOf(getW1(), 1);
  if (failed(checkShape(*this, getW1().getType(), {d, m}, "mlp w1",
                        "hidden x mlp")) ||
      failed(checkShape(*this, getB1().getType(), {m}, "mlp b1", "mlp")) ||
      failed(checkShape(*this, getW2().getType(), {m, d}, "mlp w2",
                        "mlp x hidden")) ||
      failed(checkShape(*this, getB2().getType(), {d}, "mlp b2", "hidden")))
    return failure();
  return verifyAttentionWeights(*this, d, getQueryKernel(), getQueryBias(),
                                getKeyKernel(), getKeyBias(), getValueKernel(),
                                getValueBias(), getOutKernel(), getOutBias());
}

//===----------------------------------------------------------------------===//
// LaunchOp
//===----------------------------------------------------------------------===//

LogicalResult LaunchOp::verify() {
  ArrayRef<int64_t> grid = getGrid();
  if (grid.size() != 3)
    return emitOpError() << "expects a grid of 3 dimensions (x, y, z), got "
                         << grid.size();
  for (int64_t n : grid)
    if (n < 1 || n > std::numeric_limits<uint32_t>::max())
      return emitOpError() << "expects grid dimensions in [1, 2^32), got " << n;
  for (Value c : getConstants())
    if (!c.getType().isIndex() && !c.getType().isSignlessInteger())
      return emitOpError() << "expects index or integer constants, got "
                           << c.getType();
  if (std::optional<ArrayRef<int64_t>> batchGrid = getBatchGrid()) {
    if (batchGrid->size() != 2 || (*batchGrid)[0] < 1 || (*batchGrid)[1] < 1)
      return emitOpError() << "expects batch_grid = [units per image, units "
                              "per workgroup], both >= 1";
  }
  return success();
}

LogicalResult
LaunchOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto kernel = symbolTable.lookupNearestSymbolFrom<FunctionOpInterface>(
      *this, getKernelAttr());
  if (!kernel)
    return emitOpError() << "kernel @" << getKernel()
                         << " is not a function of this module";
  // Bindings, then constants, then the workgroup id (x, y, z), then the
  // worker's scratch buffer when the kernel declares `vmoe.scratch_size`.
  ArrayRef<Type> params = kernel.getArgumentTypes();
  size_t expected = getBindings().size() + getConstants().size() + 3;
  if (kernel->hasAttr(kScratchSizeAttrName))
    ++expected;
  if (params.size() != expected)
    return emitOpError() << "kernel @" << getKernel() << " takes "
                         << params.size() << " arguments, the launch passes "
                         << expected
                         << " (bindings, constants, x, y, z[, scratch])";
  size_t i = 0;
  for (Value v : llvm::concat<const Value>(getBindings(), getConstants())) {
    if (v.getType() != params[i])
      return emitOpError() << "operand " << i << " has type " << v.getType()
                           << " but kernel @" << getKernel() << " expects "
                           << params[i];
    ++i;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// AllToAllOp
//===----------------------------------------------------------------------===//

LogicalResult AllToAllOp::verify() {
  // Both regions hold `ranks` chunks of one layout: the same buffer type.
  if (getSend().getType() != getRecv().getType())
    return emitOpError() << "expects send and recv buffers of one type, got "
                         << getSend().getType() << " and "
                         << getRecv().getType();
  auto type = cast<MemRefType>(getSend().getType());
  if (!type.hasStaticShape() || type.getElementTypeBitWidth() % 8 != 0)
    return emitOpError() << "expects statically shaped buffers of whole "
                            "bytes, got "
                         << type;
  int64_t bytes = type.getNumElements() * (type.getElementTypeBitWidth() / 8);
  if (bytes % getRanks() != 0)
    return emitOpError() << "expects buffers of " << getRanks()
                         << " equal chunks, got " << bytes << " bytes";
  return success();
}

#define GET_OP_CLASSES
#include "vmoe/Dialect/IR/VmoeOps.cpp.inc"
