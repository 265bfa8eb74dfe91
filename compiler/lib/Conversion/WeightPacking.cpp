//===- WeightPacking.cpp - constant weights and their packing -------------===//
//
// Weights reach the lowering as constant tensors (dense or resource
// attributes); they become private `memref.global`s in resource blobs,
// GEMM operands packed at compile time into the panels the kernels read.
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

/// bfloat16 bits of `x`, rounded to nearest even (NaN stays a quiet NaN).
static uint16_t floatToBf16Bits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

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

std::pair<Value, Value>
Lowering::packWeights(StringRef base, ArrayRef<float> weights,
                      ArrayRef<float> bias, int64_t batch, int64_t k, int64_t n,
                      bool bf16, bool kPairs) {
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

} // namespace mlir::vmoe::lowering
