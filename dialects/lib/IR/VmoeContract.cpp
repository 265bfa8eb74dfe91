//===- VmoeContract.cpp - verification of the vmoe.* attributes -----------===//
//
// The dialect checks the attributes of the compiler contract (VmoeContract.h)
// wherever they appear, so that a hand-written or mis-produced module fails
// in the verifier with the attribute's name and the rule it breaks, not later
// in a target, the serializer or the runtime's module verifier. The rules
// mirror what those consumers need; the kernel signature itself is the
// targets' contract and is checked there.
//
//===----------------------------------------------------------------------===//

#include "vmoe/Dialect/IR/VmoeContract.h"
#include "vmoe/Dialect/IR/VmoeOps.h"

#include "mlir/Interfaces/FunctionInterfaces.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::vmoe;

namespace {

using EmitFn = llvm::function_ref<InFlightDiagnostic()>;

/// The module format stores layer shapes and capacities as uint32.
constexpr int64_t kMaxU32 = std::numeric_limits<uint32_t>::max();

/// `attr` must be a signless integer of `width` bits in [min, max].
LogicalResult verifyInteger(EmitFn emit, NamedAttribute attr, unsigned width,
                            int64_t min,
                            int64_t max = std::numeric_limits<int64_t>::max()) {
  auto value = dyn_cast<IntegerAttr>(attr.getValue());
  if (!value || !value.getType().isSignlessInteger(width))
    return emit() << "'" << attr.getName().getValue() << "' must be an i"
                  << width << " integer, got " << attr.getValue();
  int64_t v = value.getInt();
  if (v < min || v > max) {
    InFlightDiagnostic diag = emit() << "'" << attr.getName().getValue()
                                     << "' is " << v << ", must be ";
    if (max == std::numeric_limits<int64_t>::max())
      return diag << ">= " << min;
    return diag << "in [" << min << ", " << max << "]";
  }
  return success();
}

LogicalResult verifyUnit(EmitFn emit, NamedAttribute attr) {
  if (!isa<UnitAttr>(attr.getValue()))
    return emit() << "'" << attr.getName().getValue()
                  << "' must be a unit attribute (a flag), got "
                  << attr.getValue();
  return success();
}

/// Host attributes describe the schedule of the `vmoe.entry` function.
LogicalResult verifyOnEntry(EmitFn emit, Operation *op, NamedAttribute attr) {
  if (!op->hasAttr(kEntryAttrName))
    return emit() << "'" << attr.getName().getValue()
                  << "' belongs on the host function: mark it '"
                  << kEntryAttrName << "' or drop the attribute";
  return success();
}

LogicalResult verifyMoeLayers(EmitFn emit, NamedAttribute attr) {
  auto layers = dyn_cast<ArrayAttr>(attr.getValue());
  if (!layers)
    return emit() << "'" << kMoeLayersAttrName
                  << "' must be an array of #vmoe.moe_layer, got "
                  << attr.getValue();
  llvm::SmallDenseSet<int64_t> seen;
  for (size_t i = 0, e = layers.size(); i < e; ++i) {
    Attribute element = layers[i];
    auto layer = dyn_cast<MoeLayerAttr>(element);
    if (!layer)
      return emit() << "'" << kMoeLayersAttrName << "' element " << i
                    << " must be a #vmoe.moe_layer, got " << element;
    // Attributes built with get() in C++ skipped MoeLayerAttr::verify.
    auto emitElement = [&] {
      return emit() << "'" << kMoeLayersAttrName << "' element " << i << ": ";
    };
    if (failed(MoeLayerAttr::verify(
            emitElement, layer.getLayer(), layer.getNumExperts(), layer.getK(),
            layer.getGroupSize(), layer.getNumGroups(),
            layer.getTokensPerImage(), layer.getMaxCapacity(),
            layer.getCapacityFactor(), layer.getMaxCapacityFactor(),
            layer.getBatchPriority(), layer.getBf16Dispatch(),
            layer.getExpertChoice(), layer.getCapacityMultipleOf(),
            layer.getCapacityRound())))
      return failure();
    if (!seen.insert(layer.getLayer()).second)
      return emit() << "'" << kMoeLayersAttrName << "' lists layer "
                    << layer.getLayer() << " twice";
  }
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// MoeLayerAttr
//===----------------------------------------------------------------------===//

LogicalResult MoeLayerAttr::verify(
    EmitFn emitError, int64_t layer, int64_t numExperts, int64_t k,
    int64_t groupSize, int64_t numGroups, int64_t tokensPerImage,
    int64_t maxCapacity, llvm::APFloat capacityFactor,
    llvm::APFloat maxCapacityFactor, bool batchPriority, bool bf16Dispatch,
    bool expertChoice, int64_t multipleOf, bool round) {
  if (layer < 0 || layer > kMaxU32)
    return emitError() << "layer " << layer << " must be in [0, 2^32)";
  std::pair<StringRef, int64_t> counts[] = {
      {"num_experts", numExperts},
      {"k", k},
      {"group_size", groupSize},
      {"num_groups", numGroups},
      {"tokens_per_image", tokensPerImage},
      {"max_capacity", maxCapacity}};
  for (auto [name, value] : counts)
    if (value < 1 || value > kMaxU32)
      return emitError() << name << " = " << value << " must be in [1, 2^32)";
  if (k > numExperts)
    return emitError() << "k = " << k
                       << " must be at most num_experts = " << numExperts;
  if (expertChoice && k != 1)
    return emitError() << "k = " << k
                       << " must be 1 for expert_choice (experts pick tokens)";
  if (multipleOf < 1 || multipleOf > kMaxU32)
    return emitError() << "capacity_multiple_of = " << multipleOf
                       << " must be in [1, 2^32)";
  // Both < 2^32: the products fit in uint64.
  uint64_t tokens = static_cast<uint64_t>(groupSize) * numGroups;
  if (tokens % tokensPerImage != 0)
    return emitError() << "num_groups * group_size = " << tokens
                       << " tokens must be whole images of tokens_per_image = "
                       << tokensPerImage;
  const llvm::fltSemantics &f64 = llvm::APFloat::IEEEdouble();
  if (&capacityFactor.getSemantics() != &f64 ||
      &maxCapacityFactor.getSemantics() != &f64)
    return emitError() << "capacity factors must be f64 values";
  double cf = capacityFactor.convertToDouble();
  double maxCf = maxCapacityFactor.convertToDouble();
  // A fixed capacity (a constant one in the model, no capacity knob) has no
  // factor: both are 0 and the capacity is max_capacity.
  if (cf == 0 && maxCf == 0)
    return success();
  if (!(maxCf > 0) || !std::isfinite(maxCf))
    return emitError() << "max_capacity_factor = " << maxCf
                       << " must be a finite number > 0";
  if (!(cf > 0) || !(cf <= maxCf))
    return emitError() << "capacity_factor = " << cf
                       << " must be > 0 and at most max_capacity_factor = "
                       << maxCf;
  // The expert buffers must hold what the largest factor lets through; past
  // group_size nothing changes (an expert gets at most S tokens per group).
  std::optional<int64_t> needed =
      computeCapacity(groupSize * k, numExperts, maxCf, multipleOf, round);
  if (!needed)
    return emitError() << "max_capacity_factor = " << maxCf
                       << " gives no valid capacity for group_size = "
                       << groupSize << ", k = " << k
                       << ", num_experts = " << numExperts;
  int64_t required = std::min(*needed, groupSize);
  if (maxCapacity < required)
    return emitError() << "max_capacity = " << maxCapacity
                       << " is smaller than " << required
                       << ", the capacity of max_capacity_factor = " << maxCf;
  return success();
}

//===----------------------------------------------------------------------===//
// Discardable attributes
//===----------------------------------------------------------------------===//

LogicalResult VmoeDialect::verifyOperationAttribute(Operation *op,
                                                    NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  auto emit = [&] { return op->emitOpError(); };
  if (name == kPackedAttrName)
    return verifyPackedGlobal(op, attr.getValue());
  if (name == kExpertSliceAttrName) {
    if (!op->hasAttr(kPackedAttrName))
      return emit() << "has '" << name << "' but no '" << kPackedAttrName
                    << "': only weight globals packed from parameters are "
                       "split between ranks";
    return verifyInteger(emit, attr, 64, 2, kMaxU32);
  }
  if (name == kExpertShardsAttrName) {
    if (!isa<FunctionOpInterface>(op))
      return emit() << "has '" << name << "', which only functions may carry";
    if (failed(verifyInteger(emit, attr, 64, 2, kMaxU32)))
      return failure();
    return verifyOnEntry(emit, op, attr);
  }
  if (name == kInputAttrName || name == kOutputAttrName ||
      name == kKnobAttrName || name == kLayerAttrName)
    return emit() << "has '" << name
                  << "', an attribute of host function arguments; move it to "
                     "the argument";
  bool known = llvm::is_contained(
      {kKernelAttrName, kScratchSizeAttrName, kWorkgroupCountAttrName,
       kWrittenBindingsAttrName, kKernelNameAttrName, kBindingCountAttrName,
       kConstantCountAttrName, kBlockSizeAttrName,
       kWorkgroupScratchSizeAttrName, kEntryAttrName, kBatchMultipleAttrName,
       kMoeLayersAttrName},
      name);
  if (!known)
    return emit() << "has the unknown attribute '" << name
                  << "' (a misspelt vmoe contract attribute?)";
  if (!isa<FunctionOpInterface>(op))
    return emit() << "has '" << name << "', which only functions may carry";

  if (name == kKernelAttrName || name == kEntryAttrName)
    return verifyUnit(emit, attr);
  if (name == kScratchSizeAttrName || name == kWorkgroupScratchSizeAttrName)
    return verifyInteger(emit, attr, 64, 0);
  if (name == kBindingCountAttrName || name == kConstantCountAttrName)
    return verifyInteger(emit, attr, 32, 0);
  if (name == kBlockSizeAttrName)
    return verifyInteger(emit, attr, 64, 1, kMaxCudaBlockSize);
  if (name == kWorkgroupCountAttrName) {
    auto grid = dyn_cast<DenseI64ArrayAttr>(attr.getValue());
    if (!grid || grid.size() != 3 ||
        llvm::any_of(grid.asArrayRef(), [](int64_t n) {
          return n < 1 || n > std::numeric_limits<uint32_t>::max();
        }))
      return emit() << "'" << name
                    << "' must be array<i64: x, y, z> with each in [1, "
                       "2^32), got "
                    << attr.getValue();
    return success();
  }
  if (name == kWrittenBindingsAttrName) {
    // One flag per leading memref argument (the kernel's bindings). Once
    // lowered to LLVM the memrefs are pointers, still first and in order.
    auto flags = dyn_cast<DenseBoolArrayAttr>(attr.getValue());
    ArrayRef<Type> args = cast<FunctionOpInterface>(op).getArgumentTypes();
    auto isMemRef = [](Type t) { return isa<BaseMemRefType>(t); };
    bool lowered = llvm::none_of(args, isMemRef);
    if (!flags || static_cast<size_t>(flags.size()) > args.size() ||
        (!lowered && !llvm::all_of(args.take_front(flags.size()), isMemRef)))
      return emit() << "'" << name
                    << "' must be array<i1: ...> with one flag per leading "
                       "memref argument, got "
                    << attr.getValue();
    return success();
  }
  if (name == kKernelNameAttrName) {
    auto kernel = dyn_cast<StringAttr>(attr.getValue());
    if (!kernel || kernel.getValue().empty())
      return emit() << "'" << name
                    << "' must be the non-empty name of a kernel, got "
                    << attr.getValue();
    return success();
  }
  LogicalResult value = name == kBatchMultipleAttrName
                            ? verifyInteger(emit, attr, 64, 1)
                            : verifyMoeLayers(emit, attr);
  if (failed(value))
    return failure();
  return verifyOnEntry(emit, op, attr);
}

namespace {

/// vmoe.input / vmoe.output: a memref argument that is nothing else.
LogicalResult verifyInputOutput(EmitFn emit, FunctionOpInterface func,
                                unsigned arg, NamedAttribute attr) {
  if (failed(verifyInteger(emit, attr, 64, 0)))
    return failure();
  StringRef name = attr.getName().getValue();
  StringRef other = name == kInputAttrName ? kOutputAttrName : kInputAttrName;
  if (func.getArgAttr(arg, other) || func.getArgAttr(arg, kKnobAttrName))
    return emit() << "has '" << name << "' and '"
                  << (func.getArgAttr(arg, other) ? other
                                                  : StringRef(kKnobAttrName))
                  << "': an argument is an input, an output or a knob";
  if (!isa<MemRefType>(func.getArgumentTypes()[arg]))
    return emit() << "has '" << name << "' but type "
                  << func.getArgumentTypes()[arg] << "; inputs and outputs "
                  << "are memrefs";
  return success();
}

/// vmoe.knob: an index argument; capacity, bpr and k knobs name their layer.
LogicalResult verifyKnob(EmitFn emit, FunctionOpInterface func, unsigned arg,
                         NamedAttribute attr) {
  auto text = dyn_cast<StringAttr>(attr.getValue());
  std::optional<KnobKind> kind =
      text ? symbolizeKnobKind(text.getValue()) : std::nullopt;
  if (!kind)
    return emit() << "'" << kKnobAttrName << "' is " << attr.getValue()
                  << ", must be one of \"batch\", \"capacity\", \"bpr\", \"k\"";
  if (!func.getArgumentTypes()[arg].isIndex())
    return emit() << "is a knob but has type " << func.getArgumentTypes()[arg]
                  << "; knobs are index values";
  bool hasLayer = static_cast<bool>(func.getArgAttr(arg, kLayerAttrName));
  if (*kind == KnobKind::Batch && hasLayer)
    return emit() << "is the batch knob, which belongs to no layer: drop '"
                  << kLayerAttrName << "'";
  if (*kind != KnobKind::Batch && !hasLayer)
    return emit() << "is a " << text.getValue() << " knob without '"
                  << kLayerAttrName << "': name its MoE layer";
  return success();
}

/// vmoe.layer: the layer of a capacity or bpr knob, listed in moe_layers.
LogicalResult verifyLayer(EmitFn emit, FunctionOpInterface func, unsigned arg,
                          NamedAttribute attr) {
  if (failed(verifyInteger(emit, attr, 64, 0, kMaxU32)))
    return failure();
  if (!func.getArgAttr(arg, kKnobAttrName))
    return emit() << "has '" << kLayerAttrName << "' but no '" << kKnobAttrName
                  << "': only capacity and bpr knobs name a layer";
  int64_t layer = cast<IntegerAttr>(attr.getValue()).getInt();
  auto layers = func->getAttrOfType<ArrayAttr>(kMoeLayersAttrName);
  if (!layers)
    return success();
  for (Attribute a : layers) {
    auto l = dyn_cast<MoeLayerAttr>(a);
    if (l && l.getLayer() == layer)
      return success();
  }
  return emit() << "is a knob of MoE layer " << layer << ", which '"
                << kMoeLayersAttrName << "' does not list";
}

} // namespace

LogicalResult VmoeDialect::verifyRegionArgAttribute(Operation *op,
                                                    unsigned region,
                                                    unsigned arg,
                                                    NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  auto emit = [&] { return op->emitOpError() << "argument " << arg << " "; };
  bool known = llvm::is_contained(
      {kInputAttrName, kOutputAttrName, kKnobAttrName, kLayerAttrName}, name);
  if (!known)
    return emit() << "has '" << name
                  << "', which is not a vmoe argument attribute (vmoe.input, "
                     "vmoe.output, vmoe.knob, vmoe.layer)";
  auto func = dyn_cast<FunctionOpInterface>(op);
  if (!func || region != 0)
    return emit() << "has '" << name
                  << "', which only function arguments may carry";
  if (name == kKnobAttrName)
    return verifyKnob(emit, func, arg, attr);
  if (name == kLayerAttrName)
    return verifyLayer(emit, func, arg, attr);
  return verifyInputOutput(emit, func, arg, attr);
}
