//===- VmoeParameters.cpp - named parameters and packed weights -----------===//
//
// The verifiers of vmoe.parameter and #vmoe.packed_weight, and of the
// vmoe.packed attribute that puts a packing on a weight global.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Dialect/IR/VmoeOps.h"

#include "mlir/IR/BuiltinTypes.h"

using namespace mlir;
using namespace mlir::vmoe;

LogicalResult ParameterOp::verify() {
  if (getName().empty())
    return emitOpError() << "needs the parameter's name (its path in the "
                            "checkpoint, e.g. \"head/kernel\")";
  if (!getType().hasStaticShape())
    return emitOpError() << "result must have a static shape, got "
                         << getType();
  return success();
}

LogicalResult
PackedWeightAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                         PackLayout layout, ArrayAttr parameters,
                         ArrayRef<int64_t> widths, int64_t batch, int64_t k,
                         int64_t nr, bool kPairs, bool kQuads) {
  if (parameters.empty() || parameters.size() != widths.size())
    return emitError() << "needs one width per parameter and at least one "
                          "parameter, got "
                       << parameters.size() << " parameters and "
                       << widths.size() << " widths";
  for (Attribute p : parameters) {
    auto name = dyn_cast<StringAttr>(p);
    if (!name || name.getValue().empty())
      return emitError() << "parameters must be non-empty strings, got " << p;
  }
  if (layout == PackLayout::Copy && parameters.size() != 1)
    return emitError() << "a copy is made of one parameter, got "
                       << parameters.size();
  for (int64_t w : widths)
    if (w < 1)
      return emitError() << "widths must be positive, got " << w;
  if (batch < 1 || k < 1 || nr < 1)
    return emitError() << "batch, k and nr must be positive, got " << batch
                       << ", " << k << ", " << nr;
  if (kPairs && (layout != PackLayout::Panels || k % 2 != 0))
    return emitError() << "k_pairs needs panels and an even k, got k = " << k;
  if (kQuads && (layout != PackLayout::Panels || kPairs || k % 4 != 0))
    return emitError() << "k_quads needs panels without k_pairs and a k that "
                          "is a multiple of 4, got k = "
                       << k;
  return success();
}

SmallVector<int64_t> PackedWeightAttr::getPackedShape() const {
  int64_t n = 0;
  for (int64_t w : getWidths())
    n += w;
  int64_t nr = getNr(), panels = (n + nr - 1) / nr;
  SmallVector<int64_t> shape;
  if (getLayout() == PackLayout::Copy)
    return {n};
  if (getBatch() > 1)
    shape.push_back(getBatch());
  if (getLayout() == PackLayout::Bias ||
      getLayout() == PackLayout::Int8Scales ||
      getLayout() == PackLayout::Int8ColSums)
    shape.push_back(panels * nr);
  else if (getKQuads())
    shape.append({panels, getK() / 4, 4 * nr});
  else if (getKPairs())
    shape.append({panels, getK() / 2, 2 * nr});
  else
    shape.append({panels, getK(), nr});
  return shape;
}

SmallVector<StringRef> PackedWeightAttr::getParameterNames() const {
  SmallVector<StringRef> names;
  for (Attribute p : getParameters())
    names.push_back(cast<StringAttr>(p).getValue());
  return names;
}

LogicalResult mlir::vmoe::verifyPackedGlobal(Operation *op, Attribute attr) {
  // Read through the generic attributes: the dialect does not depend on
  // memref.
  auto packed = dyn_cast<PackedWeightAttr>(attr);
  if (!packed)
    return op->emitOpError() << "'vmoe.packed' must be a "
                                "#vmoe.packed_weight, got "
                             << attr;
  auto typeAttr = op->getAttrOfType<TypeAttr>("type");
  if (op->getName().getStringRef() != "memref.global" || !typeAttr)
    return op->emitOpError()
           << "has 'vmoe.packed', which only memref.global may carry";
  Attribute init = op->getAttr("initial_value");
  if (init && !isa<UnitAttr>(init))
    return op->emitOpError() << "has 'vmoe.packed' and an initial value: "
                                "its bytes come from the parameters";
  auto type = dyn_cast<MemRefType>(typeAttr.getValue());
  SmallVector<int64_t> shape = packed.getPackedShape();
  Type element = type ? type.getElementType() : Type();
  PackLayout layout = packed.getLayout();
  bool panels = layout == PackLayout::Panels;
  bool elementOk =
      !type ? false
      : layout == PackLayout::Int8ColSums
          ? element.isInteger(32)
          : element.isF32() ||
                (panels && (element.isBF16() || element.isInteger(8)));
  if (!elementOk)
    return op->emitOpError()
           << "has 'vmoe.packed' but type " << typeAttr.getValue()
           << "; packed weights are f32 memrefs (bf16 or i8 for panels, i32 "
              "for int8_col_sums)";
  if (packed.getKPairs() && !element.isBF16() && !element.isInteger(8))
    return op->emitOpError() << "packs in k pairs, which are bf16 or i8";
  if (panels && element.isInteger(8) && !packed.getKPairs() &&
      !packed.getKQuads())
    return op->emitOpError() << "packs int8 panels, which come in k pairs or "
                                "k quads";
  if (packed.getKQuads() && !element.isInteger(8))
    return op->emitOpError() << "packs in k quads, which are i8";
  bool same =
      packed.getLayout() == PackLayout::Copy
          ? type.hasStaticShape() && type.getNumElements() == shape.front()
          : type.getShape() == ArrayRef<int64_t>(shape);
  if (!same) {
    InFlightDiagnostic diag = op->emitOpError() << "has type " << type
                                                << " but its packing makes ";
    if (packed.getLayout() == PackLayout::Copy)
      diag << shape.front() << " elements";
    else
      diag << "shape [" << shape << "]";
    return diag;
  }
  return success();
}
