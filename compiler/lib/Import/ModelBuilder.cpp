//===- ModelBuilder.cpp - a V-MoE as vmoe dialect IR ----------------------===//

#include "vmoe/Import/ModelBuilder.h"

#include "vmoe/Dialect/IR/VmoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Verifier.h"

#include <algorithm>
#include <cmath>

namespace mlir::vmoe {

bool validateForBuild(const VitMoeConfig &c, std::string *error) {
  // Ranges and consistency are checkModelConfig's; what it leaves to the
  // builder is whether a routing group fits the batch.
  if (!::vmoe::readers::checkModelConfig(c, error))
    return false;
  if (c.moeLayers.empty())
    return true;
  int64_t t = c.tokensPerImage(), tokens = c.batchSize * t;
  int64_t group = c.groupSize > 0 ? c.groupSize : t;
  if (tokens % group != 0) {
    *error = "group_size " + std::to_string(group) + " does not divide the " +
             std::to_string(tokens) + " tokens of a batch of " +
             std::to_string(c.batchSize) +
             " (vmoe issue #182); choose a divisor, e.g. the tokens per "
             "image " +
             std::to_string(t);
    return false;
  }
  return true;
}

std::vector<std::pair<std::string, std::vector<int64_t>>>
expectedWeights(const VitMoeConfig &c) {
  int64_t d = c.hiddenSize, p = c.patchSize, h = c.numHeads, dh = d / h;
  int64_t m = c.mlpDim, e = c.numExperts;
  std::vector<std::pair<std::string, std::vector<int64_t>>> w;
  w.push_back({"embedding/kernel", {p, p, c.channels, d}});
  w.push_back({"embedding/bias", {d}});
  if (c.classifier == "token")
    w.push_back({"cls", {1, 1, d}});
  if (c.positionEmbedding == "learned")
    w.push_back(
        {"Encoder/posembed_input/pos_embedding", {1, c.tokensPerImage(), d}});
  for (int64_t i = 0; i < c.numLayers; ++i) {
    std::string b = "Encoder/encoderblock_" + std::to_string(i) + "/";
    w.push_back({b + "LayerNorm_0/scale", {d}});
    w.push_back({b + "LayerNorm_0/bias", {d}});
    for (const char *part : {"query", "key", "value"}) {
      w.push_back({b + "SelfAttention/" + part + "/kernel", {d, h, dh}});
      w.push_back({b + "SelfAttention/" + part + "/bias", {h, dh}});
    }
    w.push_back({b + "SelfAttention/out/kernel", {h, dh, d}});
    w.push_back({b + "SelfAttention/out/bias", {d}});
    w.push_back({b + "LayerNorm_1/scale", {d}});
    w.push_back({b + "LayerNorm_1/bias", {d}});
    if (std::count(c.moeLayers.begin(), c.moeLayers.end(), i)) {
      w.push_back({b + "Moe/Router/dense/kernel", {d, e}});
      w.push_back({b + "Moe/Mlp/Dense_0/kernel", {e, d, m}});
      w.push_back({b + "Moe/Mlp/Dense_0/bias", {e, m}});
      w.push_back({b + "Moe/Mlp/Dense_1/kernel", {e, m, d}});
      w.push_back({b + "Moe/Mlp/Dense_1/bias", {e, d}});
    } else {
      w.push_back({b + "Mlp/Dense_0/kernel", {d, m}});
      w.push_back({b + "Mlp/Dense_0/bias", {m}});
      w.push_back({b + "Mlp/Dense_1/kernel", {m, d}});
      w.push_back({b + "Mlp/Dense_1/bias", {d}});
    }
  }
  w.push_back({"Encoder/encoder_norm/scale", {d}});
  w.push_back({"Encoder/encoder_norm/bias", {d}});
  if (c.classifier == "map") {
    // vmoe's MapHead(num_heads, mlp_dim of the encoder).
    std::string mh = "MapHead/";
    w.push_back({mh + "probe", {1, 1, d}});
    for (const char *part : {"query", "key", "value"}) {
      std::string a = mh + "MultiHeadDotProductAttention/" + part + "/";
      w.push_back({a + "kernel", {d, h, dh}});
      w.push_back({a + "bias", {h, dh}});
    }
    w.push_back({mh + "MultiHeadDotProductAttention/out/kernel", {h, dh, d}});
    w.push_back({mh + "MultiHeadDotProductAttention/out/bias", {d}});
    w.push_back({mh + "LayerNorm/scale", {d}});
    w.push_back({mh + "LayerNorm/bias", {d}});
    w.push_back({mh + "Mlp/Dense_0/kernel", {d, m}});
    w.push_back({mh + "Mlp/Dense_0/bias", {m}});
    w.push_back({mh + "Mlp/Dense_1/kernel", {m, d}});
    w.push_back({mh + "Mlp/Dense_1/bias", {d}});
  }
  int64_t features = d;
  if (c.representationSize) {
    features = *c.representationSize;
    w.push_back({"pre_logits/kernel", {d, features}});
    w.push_back({"pre_logits/bias", {features}});
  }
  w.push_back({"head/kernel", {features, c.numClasses}});
  w.push_back({"head/bias", {c.numClasses}});
  return w;
}

::vmoe::readers::ExpectedShapes expectedShapes(const VitMoeConfig &c) {
  ::vmoe::readers::ExpectedShapes shapes;
  for (auto &entry : expectedWeights(c))
    shapes.emplace(std::move(entry));
  return shapes;
}

uint64_t weightBytes(const VitMoeConfig &c) {
  // Configs at the allowed maxima exceed 2^64 bytes: saturate.
  uint64_t total = 0;
  for (auto &entry : expectedWeights(c)) {
    uint64_t bytes = sizeof(float);
    for (int64_t dim : entry.second)
      if (__builtin_mul_overflow(bytes, uint64_t(dim), &bytes))
        return UINT64_MAX;
    if (__builtin_add_overflow(total, bytes, &total))
      return UINT64_MAX;
  }
  return total;
}

uint64_t largestWeightBytes(const VitMoeConfig &c) {
  uint64_t largest = 0;
  for (auto &entry : expectedWeights(c)) {
    uint64_t bytes = sizeof(float);
    for (int64_t dim : entry.second)
      if (__builtin_mul_overflow(bytes, uint64_t(dim), &bytes))
        return UINT64_MAX;
    largest = std::max(largest, bytes);
  }
  return largest;
}

uint64_t compileMemoryEstimate(const VitMoeConfig &c) {
  // Weights stream into the module one at a time: the largest as read and
  // as packed, and 64 MB for the compiler's own IR and code generation
  // (MLIR does not survive a failed allocation everywhere: below this it
  // may crash instead of reporting). A lower bound of the peak, so that no
  // model that would fit is refused.
  uint64_t bytes = largestWeightBytes(c), need;
  if (__builtin_mul_overflow(bytes, uint64_t(2), &need) ||
      __builtin_add_overflow(need, uint64_t(64) << 20, &need))
    return UINT64_MAX;
  return need;
}

static std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

using WeightFn = llvm::function_ref<Value(const std::string &)>;

/// vmoe's EncoderMoe.add_position_emb: the learned table, sincos2d, or none.
static Value addPositionEmbedding(OpBuilder &b, Location loc,
                                  const VitMoeConfig &c, Value x,
                                  WeightFn weight) {
  if (c.positionEmbedding == "learned")
    return PositionEmbedOp::create(
        b, loc, x.getType(), x, weight("Encoder/posembed_input/pos_embedding"));
  if (c.positionEmbedding == "sincos2d")
    return SincosPositionEmbedOp::create(
        b, loc, x.getType(), x, c.imageHeight / c.patchSize,
        c.imageWidth / c.patchSize, APFloat(c.sincosTemperature));
  return x;
}

/// vmoe's MapHead on the encoded tokens: the pooled token as a one-token
/// sequence, for the head's token pooling.
static Value buildMapHead(OpBuilder &b, const VitMoeConfig &c, Value x,
                          WeightFn weight) {
  auto type = cast<RankedTensorType>(x.getType());
  auto pooled = RankedTensorType::get({type.getDimSize(0), 1, c.hiddenSize},
                                      type.getElementType());
  std::string p = "MapHead/", a = p + "MultiHeadDotProductAttention/";
  return MapHeadOp::create(
      b, NameLoc::get(b.getStringAttr("MapHead")), pooled, x,
      weight(p + "probe"), weight(a + "query/kernel"), weight(a + "query/bias"),
      weight(a + "key/kernel"), weight(a + "key/bias"),
      weight(a + "value/kernel"), weight(a + "value/bias"),
      weight(a + "out/kernel"), weight(a + "out/bias"),
      weight(p + "LayerNorm/scale"), weight(p + "LayerNorm/bias"),
      weight(p + "Mlp/Dense_0/kernel"), weight(p + "Mlp/Dense_0/bias"),
      weight(p + "Mlp/Dense_1/kernel"), weight(p + "Mlp/Dense_1/bias"));
}

/// One MoE block's MLP as vmoe's MlpMoeBlock configures it: top-k or expert
/// choice, from the capacity factor or a fixed capacity (dispatcher.capacity).
static Value buildSparseMoe(OpBuilder &b, Location loc, const VitMoeConfig &c,
                            Type tokens, Value h, const std::string &p,
                            WeightFn weight) {
  int64_t group = c.groupSize > 0 ? c.groupSize : c.tokensPerImage();
  bool fixed = c.capacity > 0;
  auto moe = SparseMoeOp::create(
      b, loc, tokens, h, weight(p + "Moe/Router/dense/kernel"),
      weight(p + "Moe/Mlp/Dense_0/kernel"), weight(p + "Moe/Mlp/Dense_0/bias"),
      weight(p + "Moe/Mlp/Dense_1/kernel"), weight(p + "Moe/Mlp/Dense_1/bias"),
      b.getI64IntegerAttr(c.numExperts),
      b.getI64IntegerAttr(c.expertChoice ? 1 : c.numSelectedExperts),
      b.getI64IntegerAttr(group),
      fixed ? FloatAttr() : b.getF64FloatAttr(c.capacityFactor),
      !fixed && c.maxCapacityFactor > 0.0
          ? b.getF64FloatAttr(c.maxCapacityFactor)
          : FloatAttr(),
      fixed ? b.getI64IntegerAttr(c.capacity) : IntegerAttr(), IntegerAttr(),
      b.getBoolAttr(c.batchPriority && !c.expertChoice),
      b.getBoolAttr(c.bf16Dispatch),
      RoutingKindAttr::get(b.getContext(), c.expertChoice
                                               ? RoutingKind::ExpertChoice
                                               : RoutingKind::TopK));
  return moe.getResult();
}

OwningOpRef<ModuleOp> buildVitMoe(MLIRContext &context, const VitMoeConfig &c,
                                  const WeightMap &weights,
                                  std::string *error) {
  ::vmoe::readers::ExpectedShapes available;
  for (auto &[name, tensor] : weights) {
    int64_t n = 1;
    for (int64_t dim : tensor.shape)
      n *= dim;
    if (static_cast<int64_t>(tensor.data.size()) != n) {
      *error = "weight " + name + " holds " +
               std::to_string(tensor.data.size()) + " values, its shape " +
               shapeString(tensor.shape) + " needs " + std::to_string(n);
      return nullptr;
    }
    available[name] = tensor.shape;
  }
  return buildVitMoe(context, c, available, error);
}

OwningOpRef<ModuleOp>
buildVitMoe(MLIRContext &context, const VitMoeConfig &c,
            const ::vmoe::readers::ExpectedShapes &available,
            std::string *error) {
  if (!validateForBuild(c, error))
    return nullptr;
  // Check names and shapes before building anything.
  auto expected = expectedWeights(c);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (auto &[name, shape] : expected) {
    shapes[name] = shape;
    auto it = available.find(name);
    if (it == available.end()) {
      *error = "missing weight " + name + " of shape " + shapeString(shape);
      return nullptr;
    }
    if (it->second != shape) {
      *error = "weight " + name + " has shape " + shapeString(it->second) +
               ", the config needs " + shapeString(shape);
      return nullptr;
    }
  }
  for (auto &[name, shape] : available)
    if (!shapes.count(name)) {
      *error = "unexpected weight " + name + " of shape " + shapeString(shape) +
               " (not used by this config)";
      return nullptr;
    }

  context.loadDialect<VmoeDialect, func::FuncDialect, arith::ArithDialect>();
  Location loc = NameLoc::get(StringAttr::get(&context, c.name));
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  OpBuilder b(&context);
  b.setInsertionPointToEnd(module->getBody());
  Type f32 = b.getF32Type();
  auto tensor = [&](ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, f32);
  };
  int64_t bsz = c.batchSize, d = c.hiddenSize;
  int64_t t = c.tokensPerImage();
  auto func = func::FuncOp::create(
      b, loc, c.name,
      b.getFunctionType(
          {tensor({bsz, c.imageHeight, c.imageWidth, c.channels})},
          {tensor({bsz, c.numClasses})}));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToEnd(entry);

  // A weight by its name in the checkpoint (its shape from
  // expectedWeights): the IR names it, the serializer streams its values.
  auto weight = [&](const std::string &name) -> Value {
    return ParameterOp::create(b, NameLoc::get(b.getStringAttr(name)),
                               tensor(shapes.at(name)), name);
  };

  int64_t patches = t - (c.classifier == "token" ? 1 : 0);
  Value x = PatchEmbedOp::create(
      b, loc, tensor({bsz, patches, d}), entry->getArgument(0),
      weight("embedding/kernel"), weight("embedding/bias"));
  if (c.classifier == "token")
    x = ClassTokenOp::create(b, loc, tensor({bsz, t, d}), x, weight("cls"));
  x = addPositionEmbedding(b, loc, c, x, weight);
  Type tokens = tensor({bsz, t, d});
  for (int64_t i = 0; i < c.numLayers; ++i) {
    std::string p = "Encoder/encoderblock_" + std::to_string(i) + "/";
    Location blockLoc =
        NameLoc::get(b.getStringAttr("encoderblock_" + std::to_string(i)));
    auto block = EncoderBlockOp::create(
        b, blockLoc, tokens, x, weight(p + "LayerNorm_0/scale"),
        weight(p + "LayerNorm_0/bias"),
        weight(p + "SelfAttention/query/kernel"),
        weight(p + "SelfAttention/query/bias"),
        weight(p + "SelfAttention/key/kernel"),
        weight(p + "SelfAttention/key/bias"),
        weight(p + "SelfAttention/value/kernel"),
        weight(p + "SelfAttention/value/bias"),
        weight(p + "SelfAttention/out/kernel"),
        weight(p + "SelfAttention/out/bias"), weight(p + "LayerNorm_1/scale"),
        weight(p + "LayerNorm_1/bias"));
    // createBlock moves the builder into the region; it moves back after
    // the yield.
    Block *body = b.createBlock(&block.getMlp(), {}, {tokens}, {blockLoc});
    Value h = body->getArgument(0);
    Value mlp;
    if (std::count(c.moeLayers.begin(), c.moeLayers.end(), i)) {
      mlp = buildSparseMoe(b, blockLoc, c, tokens, h, p, weight);
    } else {
      mlp = MlpOp::create(
          b, blockLoc, tokens, h, weight(p + "Mlp/Dense_0/kernel"),
          weight(p + "Mlp/Dense_0/bias"), weight(p + "Mlp/Dense_1/kernel"),
          weight(p + "Mlp/Dense_1/bias"));
    }
    YieldOp::create(b, blockLoc, mlp);
    b.setInsertionPointAfter(block);
    x = block.getResult();
  }
  x = LayerNormOp::create(b, loc, tokens, x,
                          weight("Encoder/encoder_norm/scale"),
                          weight("Encoder/encoder_norm/bias"), APFloat(1e-6));
  if (c.classifier == "map")
    x = buildMapHead(b, c, x, weight);
  Value preKernel, preBias;
  if (c.representationSize) {
    preKernel = weight("pre_logits/kernel");
    preBias = weight("pre_logits/bias");
  }
  Value logits = ClassifierHeadOp::create(
      b, loc, tensor({bsz, c.numClasses}), x, preKernel, preBias,
      weight("head/kernel"), weight("head/bias"),
      PoolingAttr::get(&context,
                       c.classifier == "gap" ? Pooling::Gap : Pooling::Token));
  func::ReturnOp::create(b, loc, logits);
  if (failed(verify(*module))) {
    *error = "the built model does not verify";
    return nullptr;
  }
  return module;
}

} // namespace mlir::vmoe
