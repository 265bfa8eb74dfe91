//===- WeightPacking.cpp - weight operands and their packing --------------===//
//
// Weights reach the lowering as named parameters (vmoe.parameter) or as
// constant tensors (dense or resource attributes). Either becomes a private
// `memref.global`, GEMM operands in the panels the kernels read: a
// parameter's global stays uninitialized and records how it is packed
// (`vmoe.packed`), for the serializer to stream from the checkpoint; a
// constant's is packed now, with the same code (vmoe/writer/WeightPacking.h),
// into a resource blob.
//
//===----------------------------------------------------------------------===//

#include "LoweringState.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Matchers.h"

#include <cstring>

namespace mlir::vmoe::lowering {

namespace pack = ::vmoe::writer;

/// The f32 contents of a constant tensor, from a dense or a resource attr.
static FailureOr<SmallVector<float>> getF32Data(Attribute attr) {
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

FailureOr<WeightRef> Lowering::weightOperand(Value tensor, Operation *user) {
  WeightRef w;
  w.user = user;
  auto type = cast<ShapedType>(tensor.getType());
  w.shape.assign(type.getShape().begin(), type.getShape().end());
  if (auto parameter = tensor.getDefiningOp<ParameterOp>()) {
    w.parameter = parameter.getNameAttr();
    return w;
  }
  Attribute attr;
  if (!matchPattern(tensor, m_Constant(&attr)))
    return user->emitOpError()
           << "needs compile-time weights for this operand, got a "
              "run-time value; name it with vmoe.parameter (vmoe-compile "
              "binds parameters to a checkpoint or to --random-weights)";
  FailureOr<SmallVector<float>> data = getF32Data(attr);
  if (failed(data))
    return user->emitOpError()
           << "expects f32 weights (a vmoe.parameter, or a dense or "
              "resource f32 constant) for this operand";
  w.data = std::move(*data);
  return w;
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

Value Lowering::packedGlobal(StringRef base, MemRefType type,
                             const pack::PackSpec &spec,
                             ArrayRef<const WeightRef *> sources,
                             Location loc) {
  bool parameters = static_cast<bool>(sources.front()->parameter);
  // Reported once: the lowering stops after the op.
  for (const WeightRef *w : sources)
    if (static_cast<bool>(w->parameter) != parameters) {
      (w->user ? w->user->emitOpError() : emitError(loc))
          << "packs named parameters and IR constants into one weight; "
             "give all of its operands as vmoe.parameter or all as "
             "constants";
      packingFailed = true;
      return memref::AllocOp::create(*hb, type);
    }
  if (!parameters) {
    std::vector<const float *> data;
    for (const WeightRef *w : sources)
      data.push_back(w->data.data());
    std::vector<uint8_t> bytes;
    pack::packWeights(spec, data, bytes);
    return createGlobalBytes(
        base, type,
        ArrayRef<char>(reinterpret_cast<const char *>(bytes.data()),
                       bytes.size()));
  }
  std::string name = (model.getName() + "_" + base).str();
  unsigned &count = nameCounts[name];
  name += "_" + std::to_string(count++);
  SmallVector<Attribute> names;
  for (const WeightRef *w : sources)
    names.push_back(w->parameter);
  // The writer's layouts and the dialect's are in the same order.
  auto layout = static_cast<PackLayout>(spec.layout);
  auto packed = PackedWeightAttr::get(ctx, layout, ArrayAttr::get(ctx, names),
                                      spec.widths, spec.batch, spec.k, spec.nr,
                                      spec.kPairs, spec.kQuads);
  OpBuilder mb(ctx);
  mb.setInsertionPoint(host);
  auto global = memref::GlobalOp::create(
      mb, model.getLoc(), name, mb.getStringAttr("private"), type, Attribute(),
      /*constant=*/true, mb.getI64IntegerAttr(64));
  global->setAttr(kPackedAttrName, packed);
  return memref::GetGlobalOp::create(*hb, type, name);
}

Value Lowering::copyGlobal(StringRef base, const WeightRef &w,
                           MemRefType type) {
  pack::PackSpec spec;
  spec.layout = pack::PackLayout::Copy;
  spec.widths = {w.numElements()};
  return packedGlobal(base, type, spec, {&w}, model.getLoc());
}

FailureOr<Value> Lowering::constantBuffer(Value tensor, Operation *user) {
  if (Value b = buffers.lookup(tensor))
    return b;
  FailureOr<WeightRef> w = weightOperand(tensor, user);
  if (failed(w))
    return failure();
  auto type = cast<RankedTensorType>(tensor.getType());
  Value buffer = copyGlobal(
      "const", *w, MemRefType::get(type.getShape(), type.getElementType()));
  buffers[tensor] = buffer;
  return buffer;
}

std::pair<Value, Value>
Lowering::packWeights(StringRef base, ArrayRef<const WeightRef *> weights,
                      ArrayRef<const WeightRef *> biases, int64_t batch,
                      int64_t k, int64_t n, bool bf16, bool kPairs,
                      int64_t slices) {
  pack::PackSpec spec;
  spec.layout = pack::PackLayout::Panels;
  spec.batch = batch;
  spec.k = k;
  spec.nr = tiling.nr;
  spec.bf16 = bf16;
  spec.kPairs = kPairs;
  // The sources hold `slices` batches of `batch`; one is packed.
  for (const WeightRef *w : weights)
    spec.widths.push_back(w->numElements() / (slices * batch * k));
  int64_t nr = tiling.nr, panels = ceilDiv(n, nr);
  SmallVector<int64_t> shape;
  if (batch > 1)
    shape.push_back(batch);
  if (kPairs)
    shape.append({panels, k / 2, 2 * nr});
  else
    shape.append({panels, k, nr});
  Location loc = model.getLoc();
  Type element = bf16 ? Type(BFloat16Type::get(ctx)) : Float32Type::get(ctx);
  Value b = packedGlobal((base + (bf16 ? "_packed_bf16" : "_packed")).str(),
                         MemRefType::get(shape, element), spec, weights, loc);
  return {b, packBias(base, biases, batch, n, slices)};
}

Value Lowering::packBias(StringRef base, ArrayRef<const WeightRef *> biases,
                         int64_t batch, int64_t n, int64_t slices) {
  if (biases.empty())
    return Value();
  int64_t nr = tiling.nr;
  pack::PackSpec biasSpec;
  biasSpec.layout = pack::PackLayout::Bias;
  biasSpec.batch = batch;
  biasSpec.nr = nr;
  for (const WeightRef *w : biases)
    biasSpec.widths.push_back(w->numElements() / (slices * batch));
  SmallVector<int64_t> biasShape;
  if (batch > 1)
    biasShape.push_back(batch);
  biasShape.push_back(ceilDiv(n, nr) * nr);
  return packedGlobal((base + "_bias").str(),
                      MemRefType::get(biasShape, Float32Type::get(ctx)),
                      biasSpec, biases, model.getLoc());
}

} // namespace mlir::vmoe::lowering
