//===- LowerToKernels.cpp - decomposed model to CPU kernels ---------------===//
//
// Walks the tensor-level model function in program order and emits, for
// each op or fused group of ops, a kernel function over buffers plus a
// `vmoe.launch` in the host function. The MoE layer becomes five kernels:
//   gates   router GEMM + softmax + top-k           (parallel over tokens)
//   assign  BPR ordering + k-major slot assignment  (one workgroup per group)
//   up      gather rows by slot, GEMM1 + bias + GELU (experts x groups x rows)
//   down    GEMM2 + bias (+ bf16) x gate             (experts x groups x rows)
//   combine sum of the kept assignments per token    (parallel over tokens)
// The expert kernels stop at the number of slots routing filled, so a lower
// capacity factor does less work.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Conversion/KernelBuilder.h"
#include "vmoe/Conversion/Passes.h"
#include "vmoe/Dialect/IR/VmoeContract.h"
#include "vmoe/Dialect/IR/VmoeOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cstring>

#include <cmath>
#include <memory>
#include <numeric>

namespace mlir::vmoe {
#define GEN_PASS_DEF_VMOELOWERTOKERNELS
#include "vmoe/Conversion/Passes.h.inc"

namespace {

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t numElements(Value v) {
  return cast<ShapedType>(v.getType()).getNumElements();
}

ArrayRef<int64_t> shapeOf(Value v) {
  return cast<ShapedType>(v.getType()).getShape();
}

/// A kernel function being built: its arguments and a builder at its end.
struct Kernel {
  func::FuncOp func;
  SmallVector<Value> bindings, constants;
  /// The batch of the call (every kernel gets it as its last constant).
  Value batch;
  Value wx, wy, wz, scratch;
  std::unique_ptr<ImplicitLocOpBuilder> builder;
  ImplicitLocOpBuilder &b() { return *builder; }
};

/// bfloat16 bits of `x`, rounded to nearest even (NaN stays a quiet NaN).
uint16_t floatToBf16Bits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

/// The f32 contents of a constant tensor, from a dense or a resource attr.
FailureOr<SmallVector<float>> getF32Data(Attribute attr) {
  if (auto dense = dyn_cast<DenseElementsAttr>(attr)) {
    if (!dense.getElementType().isF32())
      return failure();
    auto values = dense.getValues<float>();
    return SmallVector<float>(values.begin(), values.end());
  }
  if (auto resource = dyn_cast<DenseResourceElementsAttr>(attr)) {
    AsmResourceBlob *blob = resource.getRawHandle().getBlob();
    if (!blob || !resource.getElementType().isF32())
      return failure();
    ArrayRef<char> bytes = blob->getData();
    int64_t n = resource.getNumElements();
    if (static_cast<int64_t>(bytes.size()) != n * 4)
      return failure();
    SmallVector<float> data(n);
    std::memcpy(data.data(), bytes.data(), bytes.size());
    return data;
  }
  return failure();
}

/// Grid x that follows the batch: {units of work per image, units per
/// workgroup} (see vmoe.launch); zero: a fixed grid.
struct BatchGrid {
  int64_t unitsPerImage = 0, unitsPerWorkgroup = 0;
};

class Lowering {
public:
  Lowering(ModuleOp module, func::FuncOp model, GemmTiling tiling,
           bool expertWeightsBf16, bool expertBf16Math, bool nativeBf16Dot)
      : module(module), model(model), tiling(tiling),
        expertWeightsBf16(expertWeightsBf16 || expertBf16Math),
        expertBf16Math(expertBf16Math), nativeBf16Dot(nativeBf16Dot),
        ctx(module.getContext()) {}

  LogicalResult run();

private:
  // Infrastructure.
  Kernel newKernel(StringRef base, ValueRange bindings, unsigned numConstants,
                   int64_t scratchBytes = 0);
  /// Grid x follows the batch when `batchGrid` is set (see BatchGrid).
  void launch(Kernel &k, ArrayRef<int64_t> grid, ValueRange bindings,
              ValueRange constants = {}, BatchGrid batchGrid = {});
  /// A grid x of `extent / perWorkgroup` workgroups over `extent` units that
  /// scale with the batch (extent is the value at the compiled batch).
  BatchGrid perBatch(int64_t extent, int64_t perWorkgroup);
  /// Inside a kernel: the part of `extent` (a count at the compiled batch,
  /// proportional to it) that exists for the call's batch.
  Value validExtent(Kernel &k, int64_t extent);
  Value alloc(ArrayRef<int64_t> shape, Type element);
  Value allocLike(Value tensor);
  FailureOr<Value> lookup(Value tensor, Operation *user);
  FailureOr<Value> constantBuffer(Value tensor, Operation *user);
  Value createGlobal(StringRef base, MemRefType type, ArrayRef<float> data);
  /// A constant global of `type` holding `bytes` (its elements' raw bits).
  Value createGlobalBytes(StringRef base, MemRefType type,
                          ArrayRef<char> bytes);
  FailureOr<SmallVector<float>> constantData(Value tensor, Operation *user);
  /// Packs a (batch, K, N) matrix into (batch, N/nr, K, nr) panels and its
  /// (batch, N) bias into (batch, panels * nr), zero padded.
  /// `bf16`: the panels are rounded to bfloat16 (RNE) and stored as bf16;
  /// `kPairs` (with bf16, K even): in k pairs, (batch, N/nr, K/2, 2 nr), the
  /// layout of GemmOperands::bf16Pairs.
  std::pair<Value, Value> packWeights(StringRef base, ArrayRef<float> weights,
                                      ArrayRef<float> bias, int64_t batch,
                                      int64_t k, int64_t n, bool bf16 = false,
                                      bool kPairs = false);
  Value flatten2d(Value memref);
  Value hostIndex(int64_t v);

  // Kernels.
  void emitDenseGemm(StringRef name, Value a, Value packedB, Value bias,
                     int64_t n, Activation act, Value c,
                     Value residual = Value());
  enum class Elementwise { Add, Gelu, Copy };
  void emitElementwise(StringRef name, Value x, Value y, Value out,
                       Elementwise kind);
  LogicalResult lowerOp(Operation *op);
  LogicalResult lowerLayerNorm(LayerNormOp op);
  LogicalResult lowerMlp(MlpOp op);
  LogicalResult lowerAttention(AttentionOp op);
  LogicalResult lowerPatchEmbed(PatchEmbedOp op);
  LogicalResult lowerClassToken(ClassTokenOp op);
  LogicalResult lowerPositionEmbed(PositionEmbedOp op);
  LogicalResult lowerHead(ClassifierHeadOp op);
  LogicalResult lowerMoe(RouterOp router);
  LogicalResult lowerReturn(func::ReturnOp op);

  /// Residual adds fused into the kernel that produces one of their operands
  /// (the MLP's and attention's last GEMM, the MoE combine): the producer
  /// writes `residual + result` into the add's buffer.
  void findFusableResiduals();
  /// The buffer a producer of `result` writes: the fused residual add's
  /// buffer (with the residual's buffer second), else a new buffer (and a
  /// null residual).
  std::pair<Value, Value> outputFor(Value result, Operation *user);

  struct FusedResidual {
    Value residual;
    arith::AddFOp add;
  };
  llvm::DenseMap<Value, FusedResidual> fusedResiduals;

  ModuleOp module;
  func::FuncOp model, host;
  GemmTiling tiling;
  bool expertWeightsBf16;
  /// bf16 x bf16 expert GEMMs (expert-bf16-math), with vdpbf16ps
  /// (native-bf16-dot).
  bool expertBf16Math, nativeBf16Dot;
  MLIRContext *ctx;
  std::unique_ptr<ImplicitLocOpBuilder> hb; // host builder
  llvm::DenseMap<Value, Value> buffers;      // tensor -> memref
  llvm::DenseSet<Operation *> handled;
  llvm::StringMap<unsigned> nameCounts;
  SmallVector<Attribute> moeLayers;
  unsigned numInputs = 0;
  /// The compiled batch (dim 0 of the model's inputs and results) and
  /// whether every kernel can run a smaller one; batchMultiple: the step
  /// that keeps whole MoE groups.
  int64_t maxBatch = 1, batchMultiple = 1;
  bool dynamicBatch = false;
  Value hostBatch;
};

//===----------------------------------------------------------------------===//
// Infrastructure
//===----------------------------------------------------------------------===//

Kernel Lowering::newKernel(StringRef base, ValueRange bindings,
                           unsigned numConstants, int64_t scratchBytes) {
  std::string name = (model.getName() + "_" + base).str();
  unsigned &count = nameCounts[name];
  name += "_" + std::to_string(count++);

  Builder b(ctx);
  SmallVector<Type> types(bindings.getTypes());
  types.append(numConstants + 4, b.getIndexType());
  if (scratchBytes > 0)
    types.push_back(MemRefType::get({scratchBytes}, b.getI8Type()));
  OpBuilder mb(ctx);
  mb.setInsertionPoint(host);
  auto func = func::FuncOp::create(mb, model.getLoc(), name,
                                   b.getFunctionType(types, {}));
  func.setPrivate();
  func->setAttr(kKernelAttrName, b.getUnitAttr());
  if (scratchBytes > 0)
    func->setAttr(kScratchSizeAttrName, b.getI64IntegerAttr(scratchBytes));
  Block *entry = func.addEntryBlock();
  Kernel k;
  k.func = func;
  auto args = entry->getArguments();
  size_t i = 0;
  for (; i < bindings.size(); ++i)
    k.bindings.push_back(args[i]);
  for (unsigned j = 0; j < numConstants; ++j)
    k.constants.push_back(args[i++]);
  k.batch = args[i++];
  k.wx = args[i++];
  k.wy = args[i++];
  k.wz = args[i++];
  if (scratchBytes > 0)
    k.scratch = args[i++];
  OpBuilder body = OpBuilder::atBlockEnd(entry);
  auto ret = func::ReturnOp::create(body, model.getLoc());
  k.builder = std::make_unique<ImplicitLocOpBuilder>(model.getLoc(), ctx);
  k.builder->setInsertionPoint(ret);
  return k;
}

void Lowering::launch(Kernel &k, ArrayRef<int64_t> grid, ValueRange bindings,
                      ValueRange constants, BatchGrid batchGrid) {
  SmallVector<int64_t> g(grid);
  g.resize(3, 1);
  for (int64_t &n : g)
    n = std::max<int64_t>(n, 1);
  SmallVector<Value> all(constants);
  all.push_back(hostBatch);
  DenseI64ArrayAttr batchGridAttr;
  if (batchGrid.unitsPerWorkgroup > 0) {
    // Only exact when the static grid is the formula's value at maxBatch.
    if (ceilDiv(maxBatch * batchGrid.unitsPerImage,
                batchGrid.unitsPerWorkgroup) == g[0])
      batchGridAttr = DenseI64ArrayAttr::get(
          ctx, {batchGrid.unitsPerImage, batchGrid.unitsPerWorkgroup});
    else
      dynamicBatch = false;
  }
  LaunchOp::create(*hb, k.func.getName(), g, bindings, all, batchGridAttr);
}

BatchGrid Lowering::perBatch(int64_t extent, int64_t perWorkgroup) {
  if (extent % maxBatch != 0) {
    dynamicBatch = false;
    return {};
  }
  return {extent / maxBatch, perWorkgroup};
}

Value Lowering::validExtent(Kernel &k, int64_t extent) {
  ImplicitLocOpBuilder &b = k.b();
  if (extent % maxBatch != 0) {
    // Not proportional to the batch: the module then runs only its
    // compiled batch, where the extent is exact.
    dynamicBatch = false;
    return constIndex(b, extent);
  }
  return arith::MulIOp::create(b, k.batch, constIndex(b, extent / maxBatch));
}

Value Lowering::alloc(ArrayRef<int64_t> shape, Type element) {
  return memref::AllocOp::create(*hb, MemRefType::get(shape, element));
}

Value Lowering::allocLike(Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  Value buffer = alloc(type.getShape(), type.getElementType());
  buffers[tensor] = buffer;
  return buffer;
}

Value Lowering::hostIndex(int64_t v) {
  return arith::ConstantIndexOp::create(*hb, v);
}

FailureOr<SmallVector<float>> Lowering::constantData(Value tensor,
                                                     Operation *user) {
  Attribute attr;
  if (!matchPattern(tensor, m_Constant(&attr)))
    return user->emitOpError()
           << "needs compile-time weights for this operand, got a "
              "run-time value; vmoe-compile binds weights from a checkpoint";
  FailureOr<SmallVector<float>> data = getF32Data(attr);
  if (failed(data))
    return user->emitOpError() << "expects f32 weights";
  return data;
}

Value Lowering::createGlobal(StringRef base, MemRefType type,
                             ArrayRef<float> data) {
  return createGlobalBytes(
      base, type,
      ArrayRef<char>(reinterpret_cast<const char *>(data.data()),
                     data.size() * sizeof(float)));
}

Value Lowering::createGlobalBytes(StringRef base, MemRefType type,
                                  ArrayRef<char> bytes) {
  std::string name = (model.getName() + "_" + base).str();
  unsigned &count = nameCounts[name];
  name += "_" + std::to_string(count++);
  auto tensorType =
      RankedTensorType::get(type.getShape(), type.getElementType());
  // Weights live in resource blobs so printed IR stays readable.
  auto blob = HeapAsmResourceBlob::allocateAndCopyWithAlign(bytes, 64);
  auto init = DenseResourceElementsAttr::get(tensorType, name, std::move(blob));
  OpBuilder mb(ctx);
  mb.setInsertionPoint(host);
  memref::GlobalOp::create(mb, model.getLoc(), name,
                           mb.getStringAttr("private"), type, init,
                           /*constant=*/true, mb.getI64IntegerAttr(64));
  return memref::GetGlobalOp::create(*hb, type, name);
}

FailureOr<Value> Lowering::constantBuffer(Value tensor, Operation *user) {
  if (Value b = buffers.lookup(tensor))
    return b;
  FailureOr<SmallVector<float>> data = constantData(tensor, user);
  if (failed(data))
    return failure();
  auto type = cast<RankedTensorType>(tensor.getType());
  Value buffer = createGlobal(
      "const", MemRefType::get(type.getShape(), type.getElementType()), *data);
  buffers[tensor] = buffer;
  return buffer;
}

FailureOr<Value> Lowering::lookup(Value tensor, Operation *user) {
  if (Value b = buffers.lookup(tensor))
    return b;
  if (matchPattern(tensor, m_Constant()))
    return constantBuffer(tensor, user);
  return user->emitOpError() << "operand was not lowered to a buffer";
}

std::pair<Value, Value> Lowering::packWeights(StringRef base,
                                              ArrayRef<float> weights,
                                              ArrayRef<float> bias,
                                              int64_t batch, int64_t k,
                                              int64_t n, bool bf16,
                                              bool kPairs) {
  int64_t nr = tiling.nr, panels = ceilDiv(n, nr);
  SmallVector<float> packed(batch * panels * k * nr, 0.0f);
  for (int64_t e = 0; e < batch; ++e)
    for (int64_t p = 0; p < panels; ++p)
      for (int64_t kk = 0; kk < k; ++kk)
        for (int64_t l = 0; l < nr && p * nr + l < n; ++l) {
          // (p, kk, l), or in pairs (p, kk / 2, 2 l + kk % 2): the same
          // panel, so the offsets differ only inside it.
          int64_t inPanel =
              kPairs ? (kk / 2) * 2 * nr + 2 * l + kk % 2 : kk * nr + l;
          packed[(e * panels + p) * k * nr + inPanel] =
              weights[(e * k + kk) * n + p * nr + l];
        }
  Type f32 = Float32Type::get(ctx);
  SmallVector<int64_t> shape;
  if (batch > 1)
    shape.push_back(batch);
  if (kPairs)
    shape.append({panels, k / 2, 2 * nr});
  else
    shape.append({panels, k, nr});
  Value b;
  if (bf16) {
    SmallVector<uint16_t> halves(packed.size());
    for (size_t i = 0; i < packed.size(); ++i)
      halves[i] = floatToBf16Bits(packed[i]);
    b = createGlobalBytes(
        (base + "_packed_bf16").str(),
        MemRefType::get(shape, BFloat16Type::get(ctx)),
        ArrayRef<char>(reinterpret_cast<const char *>(halves.data()),
                       halves.size() * sizeof(uint16_t)));
  } else {
    b = createGlobal((base + "_packed").str(), MemRefType::get(shape, f32),
                     packed);
  }
  Value biasBuffer;
  if (!bias.empty()) {
    SmallVector<float> padded(batch * panels * nr, 0.0f);
    for (int64_t e = 0; e < batch; ++e)
      for (int64_t j = 0; j < n; ++j)
        padded[e * panels * nr + j] = bias[e * n + j];
    SmallVector<int64_t> biasShape;
    if (batch > 1)
      biasShape.push_back(batch);
    biasShape.push_back(panels * nr);
    biasBuffer = createGlobal((base + "_bias").str(),
                              MemRefType::get(biasShape, f32), padded);
  }
  return {b, biasBuffer};
}

/// A (..., D) buffer viewed as (rows, D).
Value Lowering::flatten2d(Value memref) {
  auto type = cast<MemRefType>(memref.getType());
  if (type.getRank() == 2)
    return memref;
  SmallVector<ReassociationIndices> reassociation(2);
  for (int64_t i = 0; i < type.getRank() - 1; ++i)
    reassociation[0].push_back(i);
  reassociation[1].push_back(type.getRank() - 1);
  return memref::CollapseShapeOp::create(*hb, memref, reassociation);
}

//===----------------------------------------------------------------------===//
// Dense kernels
//===----------------------------------------------------------------------===//

void Lowering::emitDenseGemm(StringRef name, Value a, Value packedB, Value bias,
                             int64_t n, Activation act, Value c,
                             Value residual) {
  a = flatten2d(a);
  c = flatten2d(c);
  if (residual)
    residual = flatten2d(residual);
  int64_t m = shapeOf(a)[0], k = shapeOf(a)[1];
  int64_t panels = ceilDiv(n, tiling.nr);
  SmallVector<Value> binds = {a, packedB};
  if (bias)
    binds.push_back(bias);
  if (residual)
    binds.push_back(residual);
  binds.push_back(c);
  Kernel kern = newKernel(name, binds, 0);
  ImplicitLocOpBuilder &b = kern.b();
  unsigned i = 0;
  Value kA = kern.bindings[i++], kB = kern.bindings[i++];
  Value kBias = bias ? kern.bindings[i++] : Value();
  Value kRes = residual ? kern.bindings[i++] : Value();
  Value kC = kern.bindings[i++];

  int64_t rowTile = tiling.rowTile;
  Value rowBegin = arith::MulIOp::create(b, kern.wx, constIndex(b, rowTile));
  Value rowEnd = minIndex(
      b, arith::AddIOp::create(b, rowBegin, constIndex(b, rowTile)),
      validExtent(kern, m));
  Value panelBegin =
      arith::MulIOp::create(b, kern.wy, constIndex(b, tiling.panelTile));
  Value panelEnd = minIndex(
      b, arith::AddIOp::create(b, panelBegin, constIndex(b, tiling.panelTile)),
      constIndex(b, panels));
  auto aIndex = [&](ImplicitLocOpBuilder &, Value row, Value kk) {
    return SmallVector<Value>{row, kk};
  };
  auto cIndex = [&](ImplicitLocOpBuilder &, Value row, Value col) {
    return SmallVector<Value>{row, col};
  };
  GemmOperands ops;
  ops.n = n;
  ops.k = k;
  ops.a = kA;
  ops.aIndex = aIndex;
  ops.b = kB;
  ops.bias = kBias;
  ops.activation = act;
  ops.residual = kRes;
  ops.c = kC;
  ops.cIndex = cIndex;
  emitGemmBlock(b, tiling, ops, rowBegin, rowEnd, panelBegin, panelEnd);
  launch(kern, {ceilDiv(m, rowTile), ceilDiv(panels, tiling.panelTile)},
         binds, {}, perBatch(m, rowTile));
}

void Lowering::emitElementwise(StringRef name, Value x, Value y, Value out,
                               Elementwise kind) {
  // Flat views: elementwise kernels see 1-D buffers.
  auto flat = [&](Value v) -> Value {
    auto type = cast<MemRefType>(v.getType());
    if (type.getRank() == 1)
      return v;
    SmallVector<ReassociationIndices> all(1);
    for (int64_t i = 0; i < type.getRank(); ++i)
      all[0].push_back(i);
    return memref::CollapseShapeOp::create(*hb, v, all);
  };
  SmallVector<Value> binds = {flat(x)};
  if (y)
    binds.push_back(flat(y));
  binds.push_back(flat(out));
  int64_t n = numElements(out), chunk = 4096;
  Kernel kern = newKernel(name, binds, 0);
  ImplicitLocOpBuilder &b = kern.b();
  Value begin = arith::MulIOp::create(b, kern.wx, constIndex(b, chunk));
  Value end = minIndex(b, arith::AddIOp::create(b, begin, constIndex(b, chunk)),
                       validExtent(kern, n));
  forLoop(b, begin, end, constIndex(b, 1), [&](ImplicitLocOpBuilder &b, Value i) {
    Value v = memref::LoadOp::create(b, kern.bindings[0], ValueRange{i});
    if (kind == Elementwise::Add) {
      Value w = memref::LoadOp::create(b, kern.bindings[1], ValueRange{i});
      v = arith::AddFOp::create(b, v, w);
    } else if (kind == Elementwise::Gelu) {
      v = geluTanh(b, v);
    }
    memref::StoreOp::create(b, v, kern.bindings.back(), ValueRange{i});
  });
  launch(kern, {ceilDiv(n, chunk)}, binds, {}, perBatch(n, chunk));
}

LogicalResult Lowering::lowerLayerNorm(LayerNormOp op) {
  FailureOr<Value> x = lookup(op.getInput(), op);
  FailureOr<Value> scale = lookup(op.getScale(), op);
  FailureOr<Value> bias = lookup(op.getBias(), op);
  if (failed(x) || failed(scale) || failed(bias))
    return failure();
  Value out = allocLike(op.getResult());
  Value x2 = flatten2d(*x), out2 = flatten2d(out);
  int64_t rows = shapeOf(x2)[0], d = shapeOf(x2)[1], rowTile = 16;
  double eps = op.getEpsilon().convertToDouble();
  SmallVector<Value> binds = {x2, *scale, *bias, out2};
  Kernel kern = newKernel("layer_norm", binds, 0);
  ImplicitLocOpBuilder &b = kern.b();
  Value kx = kern.bindings[0], ks = kern.bindings[1], kb = kern.bindings[2],
        ko = kern.bindings[3];
  Value c0 = constIndex(b, 0), c1 = constIndex(b, 1), cd = constIndex(b, d);
  Value begin = arith::MulIOp::create(b, kern.wx, constIndex(b, rowTile));
  Value end = minIndex(
      b, arith::AddIOp::create(b, begin, constIndex(b, rowTile)),
      validExtent(kern, rows));
  auto fast = arith::FastMathFlagsAttr::get(ctx, arith::FastMathFlags::reassoc |
                                                     arith::FastMathFlags::contract);
  forLoop(b, begin, end, c1, [&](ImplicitLocOpBuilder &b, Value r) {
    Value zero = constF32(b, 0.0);
    SmallVector<Value> sums = forLoopAcc(
        b, c0, cd, c1, {zero, zero},
        [&](ImplicitLocOpBuilder &b, Value i, ValueRange acc) {
          Value v = memref::LoadOp::create(b, kx, ValueRange{r, i});
          Value s = arith::AddFOp::create(b, acc[0], v, fast);
          Value sq = arith::AddFOp::create(
              b, acc[1], arith::MulFOp::create(b, v, v, fast), fast);
          return SmallVector<Value>{s, sq};
        });
    // flax: mu = E[x], var = max(0, E[x^2] - mu^2).
    Value invD = constF32(b, 1.0 / static_cast<double>(d));
    Value mean = arith::MulFOp::create(b, sums[0], invD);
    Value meanSq = arith::MulFOp::create(b, sums[1], invD);
    Value var = arith::MaximumFOp::create(
        b, zero,
        arith::SubFOp::create(b, meanSq, arith::MulFOp::create(b, mean, mean)));
    Value inv = math::RsqrtOp::create(
        b, arith::AddFOp::create(b, var, constF32(b, eps)));
    forLoop(b, c0, cd, c1, [&](ImplicitLocOpBuilder &b, Value i) {
      Value v = memref::LoadOp::create(b, kx, ValueRange{r, i});
      Value s = memref::LoadOp::create(b, ks, ValueRange{i});
      Value bb = memref::LoadOp::create(b, kb, ValueRange{i});
      Value y = arith::AddFOp::create(
          b,
          arith::MulFOp::create(b, arith::SubFOp::create(b, v, mean),
                                arith::MulFOp::create(b, inv, s)),
          bb);
      memref::StoreOp::create(b, y, ko, ValueRange{r, i});
    });
  });
  launch(kern, {ceilDiv(rows, rowTile)}, binds, {}, perBatch(rows, rowTile));
  return success();
}

LogicalResult Lowering::lowerMlp(MlpOp op) {
  FailureOr<Value> x = lookup(op.getInput(), op);
  FailureOr<SmallVector<float>> w1 = constantData(op.getW1(), op),
                                b1 = constantData(op.getB1(), op),
                                w2 = constantData(op.getW2(), op),
                                b2 = constantData(op.getB2(), op);
  if (failed(x) || failed(w1) || failed(b1) || failed(w2) || failed(b2))
    return failure();
  int64_t d = shapeOf(op.getW1())[0], m = shapeOf(op.getW1())[1];
  int64_t rows = numElements(op.getInput()) / d;
  auto [pw1, pb1] = packWeights("mlp_w1", *w1, *b1, 1, d, m);
  auto [pw2, pb2] = packWeights("mlp_w2", *w2, *b2, 1, m, d);
  Value hidden = alloc({rows, m}, Float32Type::get(ctx));
  emitDenseGemm("mlp_up", *x, pw1, pb1, m, Activation::Gelu, hidden);
  auto [out, residual] = outputFor(op.getResult(), op);
  emitDenseGemm("mlp_down", hidden, pw2, pb2, d, Activation::None, out,
                residual);
  return success();
}

LogicalResult Lowering::lowerAttention(AttentionOp op) {
  FailureOr<Value> x = lookup(op.getInput(), op);
  if (failed(x))
    return failure();
  ArrayRef<int64_t> qShape = shapeOf(op.getQueryKernel());
  int64_t d = qShape[0], heads = qShape[1], dh = qShape[2];
  int64_t batch = shapeOf(op.getInput())[0], t = shapeOf(op.getInput())[1];
  // Q, K and V kernels as one (D, 3D) matrix: one GEMM reads x once.
  SmallVector<float> qkv(d * 3 * d), qkvBias(3 * d);
  Value kernels[3] = {op.getQueryKernel(), op.getKeyKernel(),
                      op.getValueKernel()};
  Value biases[3] = {op.getQueryBias(), op.getKeyBias(), op.getValueBias()};
  for (int part = 0; part < 3; ++part) {
    FailureOr<SmallVector<float>> w = constantData(kernels[part], op);
    FailureOr<SmallVector<float>> bias = constantData(biases[part], op);
    if (failed(w) || failed(bias))
      return failure();
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j)
        qkv[i * 3 * d + part * d + j] = (*w)[i * d + j];
    for (int64_t j = 0; j < d; ++j)
      qkvBias[part * d + j] = (*bias)[j];
  }
  FailureOr<SmallVector<float>> wo = constantData(op.getOutKernel(), op);
  FailureOr<SmallVector<float>> bo = constantData(op.getOutBias(), op);
  if (failed(wo) || failed(bo))
    return failure();
  auto [pqkv, pqkvBias] = packWeights("attn_qkv", qkv, qkvBias, 1, d, 3 * d);
  auto [pwo, pbo] = packWeights("attn_out", *wo, *bo, 1, d, d);
  Type f32 = Float32Type::get(ctx);
  Value qkvBuf = alloc({batch * t, 3 * d}, f32);
  emitDenseGemm("attn_qkv", *x, pqkv, pqkvBias, 3 * d, Activation::None,
                qkvBuf);

  // softmax(q k^T / sqrt(Dh)) v per (image, head) as two register-blocked
  // GEMMs in the worker's scratch: K^T and V are packed into panels, S = q
  // k^T is scaled in the epilogue, softmax runs on the rows of S, and P V is
  // scaled by 1 / row sum in the second epilogue.
  Value ctxBuf = alloc({batch * t, d}, f32);
  int64_t nr = tiling.nr;
  int64_t kPanels = ceilDiv(t, nr), vPanels = ceilDiv(dh, nr);
  int64_t kPackBytes = kPanels * dh * nr * 4, sBytes = t * t * 4;
  int64_t vPackBytes = vPanels * t * nr * 4, sumBytes = t * 4;
  int64_t scratch = kPackBytes + sBytes + vPackBytes + sumBytes;
  SmallVector<Value> binds = {qkvBuf, ctxBuf};
  Kernel kern = newKernel("attention", binds, 0, scratch);
  {
    ImplicitLocOpBuilder &b = kern.b();
    Value kq = kern.bindings[0], ko = kern.bindings[1];
    Value c0 = constIndex(b, 0), c1 = constIndex(b, 1);
    Value cT = constIndex(b, t), cNr = constIndex(b, nr);
    auto view = [&](int64_t offset, ArrayRef<int64_t> shape) -> Value {
      return memref::ViewOp::create(b, MemRefType::get(shape, f32),
                                    kern.scratch, constIndex(b, offset),
                                    ValueRange{});
    };
    Value kPack = view(0, {kPanels, dh, nr});
    Value sMat = view(kPackBytes, {t, t});
    Value vPack = view(kPackBytes + sBytes, {vPanels, t, nr});
    Value invSum = view(kPackBytes + sBytes + vPackBytes, {t});
    Value image = arith::DivUIOp::create(b, kern.wx, constIndex(b, heads));
    Value head = arith::RemUIOp::create(b, kern.wx, constIndex(b, heads));
    Value rowBase = arith::MulIOp::create(b, image, cT);
    Value qCol = arith::MulIOp::create(b, head, constIndex(b, dh));
    Value kCol = arith::AddIOp::create(b, qCol, constIndex(b, d));
    Value vCol = arith::AddIOp::create(b, qCol, constIndex(b, 2 * d));
    Value zero = constF32(b, 0.0);
    // Pack K^T: kPack[p][e][l] = k[token p*nr + l][e], zero past T.
    forLoop(b, c0, constIndex(b, kPanels), c1, [&](ImplicitLocOpBuilder &b, Value p) {
      forLoop(b, c0, cNr, c1, [&](ImplicitLocOpBuilder &b, Value l) {
        Value tok = arith::AddIOp::create(b, arith::MulIOp::create(b, p, cNr), l);
        Value valid = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, tok, cT);
        Value row = arith::AddIOp::create(
            b, rowBase, minIndex(b, tok, constIndex(b, t - 1)));
        forLoop(b, c0, constIndex(b, dh), c1, [&](ImplicitLocOpBuilder &b, Value e) {
          Value v = memref::LoadOp::create(
              b, kq, ValueRange{row, arith::AddIOp::create(b, kCol, e)});
          memref::StoreOp::create(b, arith::SelectOp::create(b, valid, v, zero),
                                  kPack, ValueRange{p, e, l});
        });
      });
    });
    // Pack V: vPack[p][j][l] = v[token j][p*nr + l], zero past Dh.
    forLoop(b, c0, constIndex(b, vPanels), c1, [&](ImplicitLocOpBuilder &b, Value p) {
      forLoop(b, c0, cT, c1, [&](ImplicitLocOpBuilder &b, Value j) {
        Value row = arith::AddIOp::create(b, rowBase, j);
        forLoop(b, c0, cNr, c1, [&](ImplicitLocOpBuilder &b, Value l) {
          Value e = arith::AddIOp::create(b, arith::MulIOp::create(b, p, cNr), l);
          Value valid = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, e,
                                              constIndex(b, dh));
          Value col = arith::AddIOp::create(
              b, vCol, minIndex(b, e, constIndex(b, dh - 1)));
          Value v = memref::LoadOp::create(b, kq, ValueRange{row, col});
          memref::StoreOp::create(b, arith::SelectOp::create(b, valid, v, zero),
                                  vPack, ValueRange{p, j, l});
        });
      });
    });
    // S = (q k^T) / sqrt(Dh); flax scales q first, the same up to rounding.
    Value scale = constF32(b, 1.0 / std::sqrt(static_cast<double>(dh)));
    {
      auto aIndex = [&](ImplicitLocOpBuilder &b, Value row, Value e) {
        return SmallVector<Value>{arith::AddIOp::create(b, rowBase, row),
                                  arith::AddIOp::create(b, qCol, e)};
      };
      auto cIndex = [&](ImplicitLocOpBuilder &, Value row, Value col) {
        return SmallVector<Value>{row, col};
      };
      auto rowScale = [&](ImplicitLocOpBuilder &, Value) { return scale; };
      GemmOperands ops;
      ops.n = t;
      ops.k = dh;
      ops.a = kq;
      ops.aIndex = aIndex;
      ops.b = kPack;
      ops.rowScale = rowScale;
      ops.c = sMat;
      ops.cIndex = cIndex;
      emitGemmBlock(b, tiling, ops, c0, cT, c0, constIndex(b, kPanels));
    }
    // Softmax numerators in place (whole vectors, then a scalar tail); 1 /
    // row sum kept for the second GEMM.
    int64_t vw = tiling.vectorWidth, tVec = t / vw * vw;
    auto vecType = VectorType::get({vw}, f32);
    Value cVw = constIndex(b, vw), cTVec = constIndex(b, tVec);
    forLoop(b, c0, cT, c1, [&](ImplicitLocOpBuilder &b, Value i) {
      Value negInf = constF32(b, -INFINITY);
      Value mxVec = forLoopAcc(
          b, c0, cTVec, cVw,
          {vector::BroadcastOp::create(b, vecType, negInf)},
          [&](ImplicitLocOpBuilder &b, Value j, ValueRange m) {
            Value v = vector::LoadOp::create(b, vecType, sMat, ValueRange{i, j});
            return SmallVector<Value>{arith::MaximumFOp::create(b, m[0], v)};
          })[0];
      Value mx = forLoopAcc(
          b, cTVec, cT, c1,
          {vector::ReductionOp::create(b, vector::CombiningKind::MAXIMUMF, mxVec)},
          [&](ImplicitLocOpBuilder &b, Value j, ValueRange m) {
            Value v = memref::LoadOp::create(b, sMat, ValueRange{i, j});
            return SmallVector<Value>{arith::MaximumFOp::create(b, m[0], v)};
          })[0];
      Value mxSplat = vector::BroadcastOp::create(b, vecType, mx);
      Value sumVec = forLoopAcc(
          b, c0, cTVec, cVw,
          {vector::BroadcastOp::create(b, vecType, constF32(b, 0.0))},
          [&](ImplicitLocOpBuilder &b, Value j, ValueRange a) {
            Value v = vector::LoadOp::create(b, vecType, sMat, ValueRange{i, j});
            Value e = math::ExpOp::create(b, arith::SubFOp::create(b, v, mxSplat));
            vector::StoreOp::create(b, e, sMat, ValueRange{i, j});
            return SmallVector<Value>{arith::AddFOp::create(b, a[0], e)};
          })[0];
      Value sum = forLoopAcc(
          b, cTVec, cT, c1,
          {vector::ReductionOp::create(b, vector::CombiningKind::ADD, sumVec)},
          [&](ImplicitLocOpBuilder &b, Value j, ValueRange a) {
            Value v = memref::LoadOp::create(b, sMat, ValueRange{i, j});
            Value e = math::ExpOp::create(b, arith::SubFOp::create(b, v, mx));
            memref::StoreOp::create(b, e, sMat, ValueRange{i, j});
            return SmallVector<Value>{arith::AddFOp::create(b, a[0], e)};
          })[0];
      memref::StoreOp::create(b, arith::DivFOp::create(b, constF32(b, 1.0), sum),
                              invSum, ValueRange{i});
    });
    // O = P V / row sum, written to this head's columns.
    {
      auto aIndex = [&](ImplicitLocOpBuilder &, Value row, Value j) {
        return SmallVector<Value>{row, j};
      };
      auto cIndex = [&](ImplicitLocOpBuilder &b, Value row, Value col) {
        return SmallVector<Value>{arith::AddIOp::create(b, rowBase, row),
                                  arith::AddIOp::create(b, qCol, col)};
      };
      auto rowScale = [&](ImplicitLocOpBuilder &b, Value row) -> Value {
        return memref::LoadOp::create(b, invSum, ValueRange{row});
      };
      GemmOperands ops;
      ops.n = dh;
      ops.k = t;
      ops.a = sMat;
      ops.aIndex = aIndex;
      ops.b = vPack;
      ops.rowScale = rowScale;
      ops.c = ko;
      ops.cIndex = cIndex;
      emitGemmBlock(b, tiling, ops, c0, cT, c0, constIndex(b, vPanels));
    }
  }
  launch(kern, {batch * heads}, binds, {}, perBatch(batch * heads, 1));

  auto [out, residual] = outputFor(op.getResult(), op);
  emitDenseGemm("attn_out", ctxBuf, pwo, pbo, d, Activation::None, out,
                residual);
  return success();
}

LogicalResult Lowering::lowerPatchEmbed(PatchEmbedOp op) {
  FailureOr<Value> images = lookup(op.getImages(), op);
  FailureOr<SmallVector<float>> w = constantData(op.getKernel(), op);
  FailureOr<SmallVector<float>> bias = constantData(op.getBias(), op);
  if (failed(images) || failed(w) || failed(bias))
    return failure();
  ArrayRef<int64_t> is = shapeOf(op.getImages()), ks = shapeOf(op.getKernel());
  int64_t batch = is[0], h = is[1], wd = is[2], ch = is[3];
  int64_t ph = ks[0], pw = ks[1], d = ks[3];
  int64_t gh = h / ph, gw = wd / pw, depth = ph * pw * ch;
  // Patches as rows in (row, col, channel) order: the HWIO kernel reshaped to
  // (ph * pw * C, D) is then an ordinary GEMM operand.
  Value patches = alloc({batch * gh * gw, depth}, Float32Type::get(ctx));
  SmallVector<Value> binds = {*images, patches};
  Kernel kern = newKernel("im2col", binds, 0);
  {
    ImplicitLocOpBuilder &b = kern.b();
    Value ki = kern.bindings[0], kp = kern.bindings[1];
    Value c0 = constIndex(b, 0), c1 = constIndex(b, 1);
    Value img = arith::DivUIOp::create(b, kern.wx, constIndex(b, gh));
    Value gy = arith::RemUIOp::create(b, kern.wx, constIndex(b, gh));
    forLoop(b, c0, constIndex(b, gw), c1, [&](ImplicitLocOpBuilder &b, Value gx) {
      Value row = arith::AddIOp::create(
          b,
          arith::MulIOp::create(
              b, arith::AddIOp::create(b, arith::MulIOp::create(b, img, constIndex(b, gh)), gy),
              constIndex(b, gw)),
          gx);
      forLoop(b, c0, constIndex(b, ph), c1, [&](ImplicitLocOpBuilder &b, Value i) {
        Value y = arith::AddIOp::create(
            b, arith::MulIOp::create(b, gy, constIndex(b, ph)), i);
        forLoop(b, c0, constIndex(b, pw), c1, [&](ImplicitLocOpBuilder &b, Value j) {
          Value x = arith::AddIOp::create(
              b, arith::MulIOp::create(b, gx, constIndex(b, pw)), j);
          forLoop(b, c0, constIndex(b, ch), c1, [&](ImplicitLocOpBuilder &b, Value c) {
            Value v = memref::LoadOp::create(b, ki, ValueRange{img, y, x, c});
            Value col = arith::AddIOp::create(
                b,
                arith::MulIOp::create(
                    b,
                    arith::AddIOp::create(
                        b, arith::MulIOp::create(b, i, constIndex(b, pw)), j),
                    constIndex(b, ch)),
                c);
            memref::StoreOp::create(b, v, kp, ValueRange{row, col});
          });
        });
      });
    });
  }
  launch(kern, {batch * gh}, binds, {}, perBatch(batch * gh, 1));
  auto [pw8, pb] = packWeights("patch", *w, *bias, 1, depth, d);
  Value out = allocLike(op.getResult());
  emitDenseGemm("patch_embed", patches, pw8, pb, d, Activation::None, out);
  return success();
}

LogicalResult Lowering::lowerClassToken(ClassTokenOp op) {
  FailureOr<Value> x = lookup(op.getInput(), op);
  FailureOr<Value> cls = lookup(op.getCls(), op);
  if (failed(x) || failed(cls))
    return failure();
  Value out = allocLike(op.getResult());
  ArrayRef<int64_t> s = shapeOf(op.getInput());
  int64_t n = s[1], d = s[2];
  SmallVector<Value> binds = {*x, *cls, out};
  Kernel kern = newKernel("class_token", binds, 0);
  ImplicitLocOpBuilder &b = kern.b();
  Value c0 = constIndex(b, 0), c1 = constIndex(b, 1), cd = constIndex(b, d);
  Value img = kern.wx;
  forLoop(b, c0, cd, c1, [&](ImplicitLocOpBuilder &b, Value i) {
    Value v = memref::LoadOp::create(b, kern.bindings[1], ValueRange{c0, c0, i});
    memref::StoreOp::create(b, v, kern.bindings[2], ValueRange{img, c0, i});
  });
  forLoop(b, c0, constIndex(b, n), c1, [&](ImplicitLocOpBuilder &b, Value tk) {
    Value dst = arith::AddIOp::create(b, tk, c1);
    forLoop(b, c0, cd, c1, [&](ImplicitLocOpBuilder &b, Value i) {
      Value v = memref::LoadOp::create(b, kern.bindings[0], ValueRange{img, tk, i});
      memref::StoreOp::create(b, v, kern.bindings[2], ValueRange{img, dst, i});
    });
  });
  launch(kern, {s[0]}, binds, {}, perBatch(s[0], 1));
  return success();
}

LogicalResult Lowering::lowerPositionEmbed(PositionEmbedOp op) {
  FailureOr<Value> x = lookup(op.getInput(), op);
  FailureOr<Value> table = lookup(op.getTable(), op);
  if (failed(x) || failed(table))
    return failure();
  Value out = allocLike(op.getResult());
  ArrayRef<int64_t> s = shapeOf(op.getInput());
  SmallVector<Value> binds = {*x, *table, out};
  Kernel kern = newKernel("position_embed", binds, 0);
  ImplicitLocOpBuilder &b = kern.b();
  Value c0 = constIndex(b, 0), c1 = constIndex(b, 1);
  forLoop(b, c0, constIndex(b, s[1]), c1, [&](ImplicitLocOpBuilder &b, Value tk) {
    forLoop(b, c0, constIndex(b, s[2]), c1, [&](ImplicitLocOpBuilder &b, Value i) {
      Value v = memref::LoadOp::create(b, kern.bindings[0], ValueRange{kern.wx, tk, i});
      Value p = memref::LoadOp::create(b, kern.bindings[1], ValueRange{c0, tk, i});
      memref::StoreOp::create(b, arith::AddFOp::create(b, v, p), kern.bindings[2],
                              ValueRange{kern.wx, tk, i});
    });
  });
  launch(kern, {s[0]}, binds, {}, perBatch(s[0], 1));
  return success();
}

LogicalResult Lowering::lowerHead(ClassifierHeadOp op) {
  FailureOr<Value> x = lookup(op.getInput(), op);
  if (failed(x))
    return failure();
  ArrayRef<int64_t> s = shapeOf(op.getInput());
  int64_t batch = s[0], t = s[1], d = s[2];
  Type f32 = Float32Type::get(ctx);
  Value pooled = alloc({batch, d}, f32);
  bool gap = op.getPooling() == Pooling::Gap;
  SmallVector<Value> binds = {*x, pooled};
  Kernel kern = newKernel(gap ? "pool_mean" : "pool_token", binds, 0);
  {
    ImplicitLocOpBuilder &b = kern.b();
    Value c0 = constIndex(b, 0), c1 = constIndex(b, 1);
    forLoop(b, c0, constIndex(b, d), c1, [&](ImplicitLocOpBuilder &b, Value i) {
      Value v;
      if (gap) {
        Value sum = forLoopAcc(
            b, c0, constIndex(b, t), c1, {constF32(b, 0.0)},
            [&](ImplicitLocOpBuilder &b, Value tk, ValueRange acc) {
              Value x = memref::LoadOp::create(b, kern.bindings[0],
                                               ValueRange{kern.wx, tk, i});
              return SmallVector<Value>{arith::AddFOp::create(b, acc[0], x)};
            })[0];
        v = arith::DivFOp::create(b, sum, constF32(b, static_cast<double>(t)));
      } else {
        v = memref::LoadOp::create(b, kern.bindings[0], ValueRange{kern.wx, c0, i});
      }
      memref::StoreOp::create(b, v, kern.bindings[1], ValueRange{kern.wx, i});
    });
  }
  launch(kern, {batch}, binds, {}, perBatch(batch, 1));

  Value features = pooled;
  if (Value preKernel = op.getPreLogitsKernel()) {
    FailureOr<SmallVector<float>> w = constantData(preKernel, op);
    FailureOr<SmallVector<float>> bias = constantData(op.getPreLogitsBias(), op);
    if (failed(w) || failed(bias))
      return failure();
    int64_t r = shapeOf(preKernel)[1];
    auto [pw, pb] = packWeights("pre_logits", *w, *bias, 1, d, r);
    features = alloc({batch, r}, f32);
    emitDenseGemm("pre_logits", pooled, pw, pb, r, Activation::Tanh, features);
  }
  FailureOr<SmallVector<float>> w = constantData(op.getKernel(), op);
  FailureOr<SmallVector<float>> bias = constantData(op.getBias(), op);
  if (failed(w) || failed(bias))
    return failure();
  ArrayRef<int64_t> hs = shapeOf(op.getKernel());
  auto [pw, pb] = packWeights("head", *w, *bias, 1, hs[0], hs[1]);
  Value out = allocLike(op.getResult());
  emitDenseGemm("head", features, pw, pb, hs[1], Activation::None, out);
  return success();
}

//===----------------------------------------------------------------------===//
// The MoE layer
//===----------------------------------------------------------------------===//

/// The (batch, tokens, hidden) shape the grouped tokens came from, through
/// the reshapes that vmoe-decompose inserts; tokens per image for the
/// per-image routing statistics.
int64_t tokensPerImage(Value grouped, int64_t groupSize) {
  Value v = grouped;
  while (Operation *def = v.getDefiningOp()) {
    if (!isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(def))
      break;
    v = def->getOperand(0);
    if (shapeOf(v).size() >= 3)
      return shapeOf(v)[shapeOf(v).size() - 2];
  }
  return groupSize;
}

template <typename OpTy>
OpTy singleUserOfType(Value v) {
  OpTy found;
  for (Operation *user : v.getUsers()) {
    auto op = dyn_cast<OpTy>(user);
    if (!op || (found && found != op))
      return OpTy();
    found = op;
  }
  return found;
}

LogicalResult Lowering::lowerMoe(RouterOp router) {
  // The decomposed layer: router -> top_k -> assign_slots -> dispatch ->
  // expert_mlp -> combine. Other shapes of routing graphs are not fused.
  auto topK = singleUserOfType<TopKOp>(router.getGates());
  AssignSlotsOp assign;
  DispatchOp dispatch;
  ExpertMlpOp experts;
  CombineOp combine;
  if (topK) {
    for (Operation *u : topK.getIndices().getUsers()) {
      if (auto a = dyn_cast<AssignSlotsOp>(u))
        assign = a;
      else if (auto d = dyn_cast<DispatchOp>(u))
        dispatch = d;
      else if (auto c = dyn_cast<CombineOp>(u))
        combine = c;
    }
  }
  if (dispatch)
    experts = singleUserOfType<ExpertMlpOp>(dispatch.getBuffers());
  if (!topK || !assign || !dispatch || !experts || !combine ||
      dispatch.getInput() != router.getInput() ||
      dispatch.getSlots() != assign.getSlots() ||
      combine.getBuffers() != experts.getResult() ||
      combine.getSlots() != assign.getSlots() ||
      combine.getWeights() != topK.getValues())
    return router.emitOpError()
           << "is not part of a decomposed top-k MoE layer (router, top_k, "
              "assign_slots, dispatch, expert_mlp, combine); the CPU target "
              "lowers MoE layers in that form (run vmoe-decompose)";
  for (Operation *op : {topK.getOperation(), assign.getOperation(),
                        dispatch.getOperation(), experts.getOperation(),
                        combine.getOperation()})
    handled.insert(op);

  FailureOr<Value> x = lookup(router.getInput(), router);
  FailureOr<SmallVector<float>> wr = constantData(router.getKernel(), router);
  FailureOr<SmallVector<float>> w1 = constantData(experts.getW1(), experts),
                                b1 = constantData(experts.getB1(), experts),
                                w2 = constantData(experts.getW2(), experts),
                                b2 = constantData(experts.getB2(), experts);
  if (failed(x) || failed(wr) || failed(w1) || failed(b1) || failed(w2) ||
      failed(b2))
    return failure();

  ArrayRef<int64_t> xs = shapeOf(router.getInput());
  int64_t g = xs[0], s = xs[1], d = xs[2];
  int64_t e = assign.getNumExperts(), k = shapeOf(topK.getValues())[2];
  int64_t cap = assign.getMaxCapacity();
  int64_t m = shapeOf(experts.getW1())[2];
  bool bf16 = dispatch.getBf16Round();
  if (combine.getBf16Round() != bf16)
    return combine.emitOpError()
           << "rounds expert outputs differently from the dispatch; the CPU "
              "target needs both or neither";
  unsigned layer = moeLayers.size();
  Builder bld(ctx);
  // A smaller batch must keep whole groups: b * T tokens, a multiple of S.
  {
    int64_t t = tokensPerImage(router.getInput(), s);
    if (t < 1 || g * s != maxBatch * t)
      dynamicBatch = false;
    else
      batchMultiple = std::lcm(batchMultiple, s / std::gcd(s, t));
  }
  Type f32 = bld.getF32Type(), i32 = bld.getI32Type(),
       index = bld.getIndexType();

  // Run-time knobs: the capacity and the BPR flag become host arguments.
  auto addKnob = [&](KnobKind kind) {
    unsigned pos = host.getNumArguments();
    (void)host.insertArgument(
        pos, index,
        bld.getDictionaryAttr({
            bld.getNamedAttr(kKnobAttrName,
                             bld.getStringAttr(stringifyKnobKind(kind))),
            bld.getNamedAttr(kLayerAttrName, bld.getI64IntegerAttr(layer)),
        }),
        host.getLoc());
    return host.getArgument(pos);
  };
  double defaultCf = 0.0, maxCf = 0.0;
  Value capacity;
  if (auto capOp = assign.getCapacity().getDefiningOp<CapacityOp>()) {
    FloatAttr cf;
    if (!matchPattern(capOp.getCapacityFactor(), m_Constant(&cf)))
      return capOp.emitOpError() << "expects a constant default capacity factor";
    defaultCf = cf.getValueAsDouble();
    maxCf = defaultCf;
    if (std::optional<APFloat> maxAttr = capOp.getMaxCapacityFactor())
      maxCf = maxAttr->convertToDouble();
    capacity = addKnob(KnobKind::Capacity);
  } else {
    APInt value;
    if (!matchPattern(assign.getCapacity(), m_ConstantInt(&value)))
      return assign.emitOpError()
             << "expects a capacity from vmoe.capacity or a constant";
    capacity = hostIndex(value.getSExtValue());
  }
  bool defaultBpr = false;
  {
    APInt value;
    if (!matchPattern(assign.getBatchPriority(), m_ConstantInt(&value)))
      return assign.emitOpError() << "expects a constant default BPR flag";
    defaultBpr = !value.isZero();
  }
  Value bpr = addKnob(KnobKind::Bpr);
  auto layerAttr = MoeLayerAttr::getChecked(
      [&] { return assign.emitOpError(); }, ctx, int64_t(layer),
      /*num_experts=*/e, k, /*group_size=*/s, /*num_groups=*/g,
      tokensPerImage(router.getInput(), s), /*max_capacity=*/cap, defaultCf,
      maxCf, defaultBpr, /*bf16_dispatch=*/bf16);
  if (!layerAttr)
    return failure();
  moeLayers.push_back(layerAttr);

  // bf16 math: the expert inputs and the hidden activation are rounded to
  // bf16 (nearest even); vdpbf16ps reads them as bits (i16, see bf16Bits),
  // the f32 FMAs as f32 values (the same numbers: broadcast loads without
  // integer ops, 1.7x faster on AVX2 than splitting bits).
  const bool actBits = expertBf16Math && nativeBf16Dot;
  Type actType = actBits ? Type(IntegerType::get(ctx, 16)) : Type(f32);
  // Expert-up reads its rows in place, by slot -> token: from x, or from a
  // copy of x rounded to bf16 (bf16 dispatch, bf16 math) that the gates
  // kernel writes as it reads x for the router.
  const bool roundInputs = bf16 || expertBf16Math;
  Value expertInput = roundInputs ? alloc({g, s, d}, actType) : *x;

  Value wrBuf = createGlobal("router", MemRefType::get({d, e}, f32), *wr);
  Value topVal = alloc({g, s, k}, f32);
  Value topIdx = alloc({g, s, k}, i32);
  Value counts = alloc({g, e}, i32);
  Value kept = alloc({g * s}, i32);
  Value slots = alloc({g, s, k}, i32);
  Value slotToken = alloc({e, g, cap}, i32);
  Value slotGate = alloc({e, g, cap}, f32);
  Value order = alloc({g, s}, i32);
  Value orderTmp = alloc({g, s}, i32);

  // gates: logits = x W, softmax over all experts, top-k (ties to the lower
  // expert because only a strictly larger gate replaces the best so far).
  int64_t tokenTile = 32;
  {
    SmallVector<Value> binds = {*x, wrBuf, topVal, topIdx};
    if (roundInputs)
      binds.push_back(expertInput);
    Kernel kern = newKernel("moe_gates", binds, 0);
    ImplicitLocOpBuilder &b = kern.b();
    Value kx = kern.bindings[0], kw = kern.bindings[1], kv = kern.bindings[2],
          ki = kern.bindings[3];
    Value kxr = roundInputs ? kern.bindings[4] : Value();
    Value c0 = constIndex(b, 0), c1 = constIndex(b, 1);
    Value cE = constIndex(b, e), cD = constIndex(b, d);
    Value logits = memref::AllocaOp::create(b, MemRefType::get({e}, f32));
    Value begin = arith::MulIOp::create(b, kern.wx, constIndex(b, tokenTile));
    Value end = minIndex(
        b, arith::AddIOp::create(b, begin, constIndex(b, tokenTile)),
        validExtent(kern, g * s));
    forLoop(b, begin, end, c1, [&](ImplicitLocOpBuilder &b, Value tok) {
      Value gi = arith::DivUIOp::create(b, tok, constIndex(b, s));
      Value si = arith::RemUIOp::create(b, tok, constIndex(b, s));
      forLoop(b, c0, cE, c1, [&](ImplicitLocOpBuilder &b, Value ex) {
        memref::StoreOp::create(b, constF32(b, 0.0), logits, ValueRange{ex});
      });
      forLoop(b, c0, cD, c1, [&](ImplicitLocOpBuilder &b, Value dd) {
        Value xv = memref::LoadOp::create(b, kx, ValueRange{gi, si, dd});
        if (roundInputs)
          memref::StoreOp::create(
              b, actBits ? bf16Bits(b, xv) : roundToBf16(b, xv), kxr,
              ValueRange{gi, si, dd});
        forLoop(b, c0, cE, c1, [&](ImplicitLocOpBuilder &b, Value ex) {
          Value w = memref::LoadOp::create(b, kw, ValueRange{dd, ex});
          Value l = memref::LoadOp::create(b, logits, ValueRange{ex});
          memref::StoreOp::create(
              b, arith::AddFOp::create(b, l, arith::MulFOp::create(b, xv, w)),
              logits, ValueRange{ex});
        });
      });
      Value mx = forLoopAcc(b, c0, cE, c1, {constF32(b, -INFINITY)},
                            [&](ImplicitLocOpBuilder &b, Value ex, ValueRange a) {
                              Value l = memref::LoadOp::create(b, logits, ValueRange{ex});
                              return SmallVector<Value>{arith::MaximumFOp::create(b, a[0], l)};
                            })[0];
      Value sum = forLoopAcc(
          b, c0, cE, c1, {constF32(b, 0.0)},
          [&](ImplicitLocOpBuilder &b, Value ex, ValueRange a) {
            Value l = memref::LoadOp::create(b, logits, ValueRange{ex});
            Value p = math::ExpOp::create(b, arith::SubFOp::create(b, l, mx));
            memref::StoreOp::create(b, p, logits, ValueRange{ex});
            return SmallVector<Value>{arith::AddFOp::create(b, a[0], p)};
          })[0];
      forLoop(b, c0, cE, c1, [&](ImplicitLocOpBuilder &b, Value ex) {
        Value p = memref::LoadOp::create(b, logits, ValueRange{ex});
        memref::StoreOp::create(b, arith::DivFOp::create(b, p, sum), logits,
                                ValueRange{ex});
      });
      // top-k by repeated selection; a chosen expert is marked with -1.
      for (int64_t j = 0; j < k; ++j) {
        SmallVector<Value> best = forLoopAcc(
            b, c0, cE, c1, {constF32(b, -1.0), c0},
            [&](ImplicitLocOpBuilder &b, Value ex, ValueRange a) {
              Value p = memref::LoadOp::create(b, logits, ValueRange{ex});
              Value better =
                  arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, p, a[0]);
              return SmallVector<Value>{
                  arith::SelectOp::create(b, better, p, a[0]),
                  arith::SelectOp::create(b, better, ex, a[1])};
            });
        Value jj = constIndex(b, j);
        memref::StoreOp::create(b, best[0], kv, ValueRange{gi, si, jj});
        memref::StoreOp::create(b, arith::IndexCastOp::create(b, i32, best[1]),
                                ki, ValueRange{gi, si, jj});
        memref::StoreOp::create(b, constF32(b, -2.0), logits, ValueRange{best[1]});
      }
    });
    launch(kern, {ceilDiv(g * s, tokenTile)}, binds, {},
           perBatch(g * s, tokenTile));
  }

  // assign: per group, the token order (BPR: stable sort by descending top-1
  // gate, a bottom-up merge sort) and the k-major slot assignment with
  // counters that keep counting past the capacity.
  {
    SmallVector<Value> binds = {topVal, topIdx, slots, slotToken, slotGate,
                                counts, kept, order, orderTmp};
    Kernel kern = newKernel("moe_assign", binds, 2);
    ImplicitLocOpBuilder &b = kern.b();
    Value kv = kern.bindings[0], ki = kern.bindings[1], ks = kern.bindings[2],
          kst = kern.bindings[3], ksg = kern.bindings[4], kc = kern.bindings[5],
          kk = kern.bindings[6], ko = kern.bindings[7], kt = kern.bindings[8];
    Value capArg = minIndex(b, kern.constants[0], constIndex(b, cap));
    Value bprOn = arith::CmpIOp::create(b, arith::CmpIPredicate::ne,
                                        kern.constants[1], constIndex(b, 0));
    Value gi = kern.wx;
    Value c0 = constIndex(b, 0), c1 = constIndex(b, 1), cS = constIndex(b, s);
    Value tokBase = arith::MulIOp::create(b, gi, cS);
    forLoop(b, c0, constIndex(b, e), c1, [&](ImplicitLocOpBuilder &b, Value ex) {
      memref::StoreOp::create(b, constI32(b, 0), kc, ValueRange{gi, ex});
    });
    forLoop(b, c0, cS, c1, [&](ImplicitLocOpBuilder &b, Value si) {
      memref::StoreOp::create(b, arith::IndexCastOp::create(b, i32, si), ko,
                              ValueRange{gi, si});
      memref::StoreOp::create(b, constI32(b, 0), kk,
                              ValueRange{arith::AddIOp::create(b, tokBase, si)});
    });
    ifThen(b, bprOn, [&](ImplicitLocOpBuilder &b) {
      // Merge runs of `width` from src to dst; `inOrder` tracks which buffer
      // holds the current runs.
      auto key = [&](ImplicitLocOpBuilder &b, Value buf, Value pos) {
        Value tok = arith::IndexCastOp::create(
            b, index, memref::LoadOp::create(b, buf, ValueRange{gi, pos}));
        return memref::LoadOp::create(b, kv, ValueRange{gi, tok, c0}).getResult();
      };
      auto whileOp = scf::WhileOp::create(
          b, TypeRange{index, bld.getI1Type()},
          ValueRange{c1, arith::ConstantOp::create(b, bld.getBoolAttr(true))},
          [&](OpBuilder &nb, Location loc, ValueRange args) {
            ImplicitLocOpBuilder ib(loc, nb);
            Value more = arith::CmpIOp::create(ib, arith::CmpIPredicate::slt,
                                               args[0], cS);
            scf::ConditionOp::create(ib, more, args);
          },
          [&](OpBuilder &nb, Location loc, ValueRange args) {
            ImplicitLocOpBuilder ib(loc, nb);
            Value width = args[0], inOrder = args[1];
            Value twice = arith::AddIOp::create(ib, width, width);
            auto merge = [&](ImplicitLocOpBuilder &b, Value src, Value dst) {
              forLoop(b, c0, cS, twice, [&](ImplicitLocOpBuilder &b, Value lo) {
                Value mid = minIndex(b, arith::AddIOp::create(b, lo, width), cS);
                Value hi = minIndex(b, arith::AddIOp::create(b, lo, twice), cS);
                forLoopAcc(
                    b, lo, hi, c1, {lo, mid},
                    [&](ImplicitLocOpBuilder &b, Value out, ValueRange ij) {
                      Value i = ij[0], j = ij[1];
                      Value leftOk = arith::CmpIOp::create(
                          b, arith::CmpIPredicate::slt, i, mid);
                      Value rightOk = arith::CmpIOp::create(
                          b, arith::CmpIPredicate::slt, j, hi);
                      Value li = minIndex(b, i, arith::SubIOp::create(b, hi, c1));
                      Value ri = minIndex(b, j, arith::SubIOp::create(b, hi, c1));
                      // Stable, descending: the left run wins ties.
                      Value geq = arith::CmpFOp::create(
                          b, arith::CmpFPredicate::OGE, key(b, src, li),
                          key(b, src, ri));
                      Value takeLeft = arith::AndIOp::create(
                          b, leftOk,
                          arith::OrIOp::create(
                              b, arith::XOrIOp::create(
                                     b, rightOk,
                                     arith::ConstantOp::create(b, bld.getBoolAttr(true))),
                              geq));
                      Value from = arith::SelectOp::create(b, takeLeft, li, ri);
                      Value tok = memref::LoadOp::create(b, src, ValueRange{gi, from});
                      memref::StoreOp::create(b, tok, dst, ValueRange{gi, out});
                      Value ni = arith::SelectOp::create(
                          b, takeLeft, arith::AddIOp::create(b, i, c1), i);
                      Value nj = arith::SelectOp::create(
                          b, takeLeft, j, arith::AddIOp::create(b, j, c1));
                      return SmallVector<Value>{ni, nj};
                    });
              });
            };
            scf::IfOp::create(
                ib, inOrder,
                [&](OpBuilder &n2, Location l2) {
                  ImplicitLocOpBuilder b2(l2, n2);
                  merge(b2, ko, kt);
                  scf::YieldOp::create(b2);
                },
                [&](OpBuilder &n2, Location l2) {
                  ImplicitLocOpBuilder b2(l2, n2);
                  merge(b2, kt, ko);
                  scf::YieldOp::create(b2);
                });
            Value flipped = arith::XOrIOp::create(
                ib, inOrder, arith::ConstantOp::create(ib, bld.getBoolAttr(true)));
            scf::YieldOp::create(ib, ValueRange{twice, flipped});
          });
      Value inOrder = whileOp.getResult(1);
      ifThen(b, arith::XOrIOp::create(
                    b, inOrder, arith::ConstantOp::create(b, bld.getBoolAttr(true))),
             [&](ImplicitLocOpBuilder &b) {
               forLoop(b, c0, cS, c1, [&](ImplicitLocOpBuilder &b, Value p) {
                 Value tok = memref::LoadOp::create(b, kt, ValueRange{gi, p});
                 memref::StoreOp::create(b, tok, ko, ValueRange{gi, p});
               });
             });
    });
    forLoop(b, c0, constIndex(b, k), c1, [&](ImplicitLocOpBuilder &b, Value j) {
      forLoop(b, c0, cS, c1, [&](ImplicitLocOpBuilder &b, Value p) {
        Value si = arith::IndexCastOp::create(
            b, index, memref::LoadOp::create(b, ko, ValueRange{gi, p}));
        Value ex = arith::IndexCastOp::create(
            b, index, memref::LoadOp::create(b, ki, ValueRange{gi, si, j}));
        Value posI32 = memref::LoadOp::create(b, kc, ValueRange{gi, ex});
        memref::StoreOp::create(b, arith::AddIOp::create(b, posI32, constI32(b, 1)),
                                kc, ValueRange{gi, ex});
        Value pos = arith::IndexCastOp::create(b, index, posI32);
        Value keep = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, pos, capArg);
        memref::StoreOp::create(
            b, arith::SelectOp::create(b, keep, posI32, constI32(b, -1)), ks,
            ValueRange{gi, si, j});
        ifThen(b, keep, [&](ImplicitLocOpBuilder &b) {
          memref::StoreOp::create(b, arith::IndexCastOp::create(b, i32, si), kst,
                                  ValueRange{ex, gi, pos});
          Value gate = memref::LoadOp::create(b, kv, ValueRange{gi, si, j});
          memref::StoreOp::create(b, gate, ksg, ValueRange{ex, gi, pos});
          Value tok = arith::AddIOp::create(b, tokBase, si);
          Value n = memref::LoadOp::create(b, kk, ValueRange{tok});
          memref::StoreOp::create(b, arith::AddIOp::create(b, n, constI32(b, 1)),
                                  kk, ValueRange{tok});
        });
      });
    });
    launch(kern, {g}, binds, {capacity, bpr}, perBatch(g * s, s));
  }

  if (expertBf16Math && (d % 2 != 0 || m % 2 != 0))
    return experts.emitOpError()
           << "bf16 expert math multiplies in k pairs and needs an even "
              "hidden size and MLP size, got "
           << d << " and " << m
           << "; compile this model with f32 expert math";
  auto [pw1, pb1] = packWeights("expert_w1", *w1, *b1, e, d, m,
                                 expertWeightsBf16, expertBf16Math);
  auto [pw2, pb2] = packWeights("expert_w2", *w2, *b2, e, m, d,
                                 expertWeightsBf16, expertBf16Math);
  // The expert kernels run one workgroup per (row tile, panel block, expert
  // x group) and return at once past the filled slots.
  // Groups past the call's batch hold stale counts: they have no rows.
  auto filledRows = [&](Kernel &kern, Value kCounts, Value capV, Value ex,
                        Value gi) {
    ImplicitLocOpBuilder &b = kern.b();
    Value groups =
        arith::DivUIOp::create(b, validExtent(kern, g * s), constIndex(b, s));
    Value live = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, gi, groups);
    Value safeGi = arith::SelectOp::create(b, live, gi, constIndex(b, 0));
    Value n = arith::IndexCastOp::create(
        b, index, memref::LoadOp::create(b, kCounts, ValueRange{safeGi, ex}));
    n = arith::SelectOp::create(b, live, n, constIndex(b, 0));
    return minIndex(b, n, minIndex(b, capV, constIndex(b, cap)));
  };
  int64_t rowTile = std::min<int64_t>(tiling.rowTile, cap);
  rowTile = std::max<int64_t>(tiling.mr, rowTile / tiling.mr * tiling.mr);
  // Split the columns only as far as needed for about 64 workgroups: each
  // split repeats expert-up's gather of its rows.
  auto panelTileFor = [&](int64_t n) {
    int64_t panels = ceilDiv(n, tiling.nr);
    int64_t base = ceilDiv(cap, rowTile) * e * g;
    int64_t splits = std::clamp<int64_t>(ceilDiv(64, base), 1, panels);
    return ceilDiv(panels, splits);
  };
  // Both expert GEMMs read their rows in place, so narrow column tiles cost
  // nothing: at most about 256 KB of B per workgroup, and consecutive
  // workgroups (the row tiles of one expert) find the same panels in L2
  // instead of each streaming the expert's whole matrix.
  int64_t bBytes = expertWeightsBf16 ? 2 : 4;
  auto narrowPanelTile = [&](int64_t n, int64_t kDim) {
    return std::min(panelTileFor(n),
                    std::max<int64_t>(1, (256 << 10) /
                                             (kDim * tiling.nr * bBytes)));
  };
  int64_t upPanelTile = narrowPanelTile(m, d);
  int64_t downPanelTile = narrowPanelTile(d, m);
  Value hidden = alloc({e, g, cap, m}, actType);
  {
    // GEMM1 + bias + GELU over the rows of its slots, each read in place
    // from its token's row (bf16-rounded already where the layer needs it).
    SmallVector<Value> binds = {expertInput, slotToken, counts, pw1, pb1,
                                hidden};
    Kernel kern = newKernel("moe_expert_up", binds, 1);
    ImplicitLocOpBuilder &b = kern.b();
    Value kx = kern.bindings[0], kst = kern.bindings[1], kc = kern.bindings[2];
    Value ex = arith::DivUIOp::create(b, kern.wz, constIndex(b, g));
    Value gi = arith::RemUIOp::create(b, kern.wz, constIndex(b, g));
    Value rows = filledRows(kern, kc, kern.constants[0], ex, gi);
    Value rowBegin = arith::MulIOp::create(b, kern.wx, constIndex(b, rowTile));
    Value rowEnd = minIndex(
        b, arith::AddIOp::create(b, rowBegin, constIndex(b, rowTile)), rows);
    Value any = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, rowBegin, rowEnd);
    ifThen(b, any, [&](ImplicitLocOpBuilder &b) {
      int64_t panels = ceilDiv(m, tiling.nr);
      Value panelBegin =
          arith::MulIOp::create(b, kern.wy, constIndex(b, upPanelTile));
      Value panelEnd = minIndex(
          b, arith::AddIOp::create(b, panelBegin, constIndex(b, upPanelTile)),
          constIndex(b, panels));
      auto tokenOf = [&](ImplicitLocOpBuilder &b, Value row) -> Value {
        return arith::IndexCastOp::create(
            b, b.getIndexType(),
            memref::LoadOp::create(b, kst, ValueRange{ex, gi, row}));
      };
      auto aIndex = [&](ImplicitLocOpBuilder &, Value token, Value kk) {
        return SmallVector<Value>{gi, token, kk};
      };
      auto cIndex = [&](ImplicitLocOpBuilder &, Value row, Value col) {
        return SmallVector<Value>{ex, gi, row, col};
      };
      GemmOperands ops;
      ops.n = m;
      ops.k = d;
      ops.bf16Pairs = expertBf16Math;
      ops.a = kx;
      ops.aRow = tokenOf;
      ops.aIndex = aIndex;
      ops.b = kern.bindings[3];
      ops.bPrefix = {ex};
      ops.bias = kern.bindings[4];
      ops.biasPrefix = {ex};
      ops.activation = Activation::Gelu;
      // The GELU output as bf16 values (stored as bits with vdpbf16ps).
      ops.bf16RoundOutput = expertBf16Math && !actBits;
      ops.c = kern.bindings[5];
      ops.cIndex = cIndex;
      emitGemmBlock(b, tiling, ops, rowBegin, rowEnd, panelBegin, panelEnd);
    });
    launch(kern,
           {ceilDiv(cap, rowTile), ceilDiv(ceilDiv(m, tiling.nr), upPanelTile),
            e * g},
           binds, {capacity});
  }
  Value expertOut = alloc({e, g, cap, d}, f32);
  {
    SmallVector<Value> binds = {hidden, slotGate, counts, pw2, pb2, expertOut};
    Kernel kern = newKernel("moe_expert_down", binds, 1);
    ImplicitLocOpBuilder &b = kern.b();
    Value ex = arith::DivUIOp::create(b, kern.wz, constIndex(b, g));
    Value gi = arith::RemUIOp::create(b, kern.wz, constIndex(b, g));
    Value rows = filledRows(kern, kern.bindings[2], kern.constants[0], ex, gi);
    Value rowBegin = arith::MulIOp::create(b, kern.wx, constIndex(b, rowTile));
    Value rowEnd = minIndex(
        b, arith::AddIOp::create(b, rowBegin, constIndex(b, rowTile)), rows);
    Value any = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, rowBegin, rowEnd);
    ifThen(b, any, [&](ImplicitLocOpBuilder &b) {
      int64_t panels = ceilDiv(d, tiling.nr);
      Value panelBegin =
          arith::MulIOp::create(b, kern.wy, constIndex(b, downPanelTile));
      Value panelEnd = minIndex(
          b, arith::AddIOp::create(b, panelBegin, constIndex(b, downPanelTile)),
          constIndex(b, panels));
      Value kh = kern.bindings[0], kg = kern.bindings[1];
      auto aIndex = [&](ImplicitLocOpBuilder &, Value row, Value kk) {
        return SmallVector<Value>{ex, gi, row, kk};
      };
      auto cIndex = [&](ImplicitLocOpBuilder &, Value row, Value col) {
        return SmallVector<Value>{ex, gi, row, col};
      };
      auto gate = [&](ImplicitLocOpBuilder &b, Value row) -> Value {
        return memref::LoadOp::create(b, kg, ValueRange{ex, gi, row});
      };
      GemmOperands ops;
      ops.n = d;
      ops.k = m;
      ops.bf16Pairs = expertBf16Math;
      ops.a = kh;
      ops.aIndex = aIndex;
      ops.b = kern.bindings[3];
      ops.bPrefix = {ex};
      ops.bias = kern.bindings[4];
      ops.biasPrefix = {ex};
      ops.bf16RoundOutput = bf16;
      ops.rowScale = gate;
      ops.c = kern.bindings[5];
      ops.cIndex = cIndex;
      emitGemmBlock(b, tiling, ops, rowBegin, rowEnd, panelBegin, panelEnd);
    });
    launch(kern,
           {ceilDiv(cap, rowTile), ceilDiv(ceilDiv(d, tiling.nr), downPanelTile),
            e * g},
           binds, {capacity});
  }
  // combine: out[token] = sum over kept assignments of gate * expert output
  // (the gate is already applied); dropped tokens get exactly 0.
  auto [out, residual] = outputFor(combine.getResult(), combine);
  {
    SmallVector<Value> binds = {expertOut, topIdx, slots, out};
    if (residual)
      binds.push_back(residual);
    Kernel kern = newKernel(residual ? "moe_combine_residual" : "moe_combine",
                            binds, 0);
    ImplicitLocOpBuilder &b = kern.b();
    Value ky = kern.bindings[0], ki = kern.bindings[1], ks = kern.bindings[2],
          ko = kern.bindings[3];
    Value kr = residual ? kern.bindings[4] : Value();
    Value c0 = constIndex(b, 0), c1 = constIndex(b, 1), cD = constIndex(b, d);
    Value begin = arith::MulIOp::create(b, kern.wx, constIndex(b, tokenTile));
    Value end = minIndex(
        b, arith::AddIOp::create(b, begin, constIndex(b, tokenTile)),
        validExtent(kern, g * s));
    forLoop(b, begin, end, c1, [&](ImplicitLocOpBuilder &b, Value tok) {
      Value gi = arith::DivUIOp::create(b, tok, constIndex(b, s));
      Value si = arith::RemUIOp::create(b, tok, constIndex(b, s));
      // Start from the residual when the block's add is fused here.
      forLoop(b, c0, cD, c1, [&](ImplicitLocOpBuilder &b, Value dd) {
        Value init = kr ? memref::LoadOp::create(b, kr, ValueRange{gi, si, dd})
                              .getResult()
                        : constF32(b, 0.0);
        memref::StoreOp::create(b, init, ko, ValueRange{gi, si, dd});
      });
      for (int64_t j = 0; j < k; ++j) {
        Value jj = constIndex(b, j);
        Value slot = memref::LoadOp::create(b, ks, ValueRange{gi, si, jj});
        Value keep = arith::CmpIOp::create(b, arith::CmpIPredicate::sge, slot,
                                           constI32(b, 0));
        ifThen(b, keep, [&](ImplicitLocOpBuilder &b) {
          Value ex = arith::IndexCastOp::create(
              b, index, memref::LoadOp::create(b, ki, ValueRange{gi, si, jj}));
          Value sl = arith::IndexCastOp::create(b, index, slot);
          forLoop(b, c0, cD, c1, [&](ImplicitLocOpBuilder &b, Value dd) {
            Value y = memref::LoadOp::create(b, ky, ValueRange{ex, gi, sl, dd});
            Value o = memref::LoadOp::create(b, ko, ValueRange{gi, si, dd});
            memref::StoreOp::create(b, arith::AddFOp::create(b, o, y), ko,
                                    ValueRange{gi, si, dd});
          });
        });
      }
    });
    launch(kern, {ceilDiv(g * s, tokenTile)}, binds, {},
           perBatch(g * s, tokenTile));
  }
  RoutingStatsOp::create(*hb, counts, kept, layer);
  (void)slots;
  return success();
}

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
      if (resDef && (resDef->getBlock() != &body ||
                     !resDef->isBeforeInBlock(producer)))
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
  FailureOr<Value> residual =
      it == fusedResiduals.end() ? FailureOr<Value>(failure())
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
      .Case<arith::ConstantOp>([&](auto) { return success(); })
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

LogicalResult Lowering::run() {
  if (!model.getBody().hasOneBlock())
    return model.emitOpError() << "expects a single-block model function";
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

  findFusableResiduals();
  for (Operation &op : model.getBody().front())
    if (failed(lowerOp(&op)))
      return failure();

  host->setAttr(kMoeLayersAttrName, b.getArrayAttr(moeLayers));
  host->setAttr(kBatchMultipleAttrName,
                b.getI64IntegerAttr(dynamicBatch ? batchMultiple : maxBatch));
  host->setAttr(kEntryAttrName, b.getUnitAttr());
  StringAttr name = model.getNameAttr();
  model.erase();
  host.setName(name);
  return success();
}

struct VmoeLowerToKernelsPass
    : impl::VmoeLowerToKernelsBase<VmoeLowerToKernelsPass> {
  using Base::Base;

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
    GemmTiling tiling;
    tiling.vectorWidth = vectorWidth;
    tiling.mr = microRows;
    tiling.nr = vectorWidth * microVectors;
    tiling.rowTile = 8 * microRows;
    if (failed(Lowering(module, models.front(), tiling, expertWeightsBf16,
                        expertBf16Math, nativeBf16Dot)
                   .run()))
      signalPassFailure();
  }
};

} // namespace
} // namespace mlir::vmoe
