//===- ModuleSerializer.cpp - host schedule to module file ----------------===//

#include "vmoe/Serialize/ModuleSerializer.h"

#include "vmoe/Dialect/IR/VmoeContract.h"
#include "vmoe/Dialect/IR/VmoeOps.h"
#include "vmoe/writer/MemoryPlanner.h"
#include "vmoe/writer/ModuleWriter.h"
#include "vmoe/writer/WeightPacking.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <limits>

namespace mlir::vmoe {
namespace fb = ::vmoe::fb;
namespace mod = ::vmoe::writer;

namespace {

/// Where a host memref lives: a caller buffer, an arena buffer or a constant.
struct BufferRoot {
  fb::BufferKind kind = fb::BufferKind::Arena;
  uint32_t index = 0; // input, output, arena request or constant index
};

uint64_t byteSize(MemRefType type) {
  return static_cast<uint64_t>(type.getNumElements()) *
         (type.getElementTypeBitWidth() / 8);
}

FailureOr<fb::DType> dtypeOf(Type type) {
  if (type.isF32())
    return fb::DType::F32;
  if (type.isInteger(32))
    return fb::DType::I32;
  if (type.isBF16())
    return fb::DType::BF16;
  if (type.isInteger(8))
    return fb::DType::I8;
  if (type.isInteger(16))
    return fb::DType::I16;
  return failure();
}

/// The bytes of a global's initial value (dense or resource).
FailureOr<std::vector<uint8_t>> globalBytes(memref::GlobalOp global) {
  Attribute init = global.getInitialValueAttr();
  uint64_t size = byteSize(global.getType());
  if (auto resource = dyn_cast_or_null<DenseResourceElementsAttr>(init)) {
    AsmResourceBlob *blob = resource.getRawHandle().getBlob();
    if (!blob || blob->getData().size() != size)
      return failure();
    ArrayRef<char> data = blob->getData();
    return std::vector<uint8_t>(data.begin(), data.end());
  }
  if (auto dense = dyn_cast_or_null<DenseElementsAttr>(init)) {
    ArrayRef<char> raw = dense.getRawData();
    std::vector<uint8_t> bytes(size);
    if (dense.isSplat()) {
      for (uint64_t off = 0; off < size; off += raw.size())
        std::memcpy(bytes.data() + off, raw.data(), raw.size());
    } else {
      if (raw.size() != size)
        return failure();
      std::memcpy(bytes.data(), raw.data(), size);
    }
    return bytes;
  }
  return failure();
}

/// A host argument that receives a run-time value.
struct Knob {
  fb::PushConstantSource source;
  uint32_t layer;
};

/// Builds the module file of one host function (`vmoe.entry`) in the order
/// the file needs: the signature, the buffers and launches of the schedule,
/// the arena plan, the executable, the dispatches, the MoE layers. Every
/// attribute of the contract (VmoeContract.h) is read by type; a missing or
/// mistyped one is reported on the IR.
class Serializer {
public:
  Serializer(ModuleOp module, func::FuncOp host,
             const SerializeOptions &options)
      : module(module), host(host), options(options) {}

  /// Fills the writer; then writeToBuffer or writeFile.
  LogicalResult build(SerializeStats *stats);
  mod::ModuleWriter &moduleWriter() { return writer; }

private:
  LogicalResult readSignature();
  LogicalResult readKnob(BlockArgument arg, Attribute knob);
  LogicalResult readBatch(int64_t maxBatch);
  LogicalResult readSchedule();
  LogicalResult addConstant(memref::GetGlobalOp get);
  /// A segment streamed from the parameters a `vmoe.packed` global names.
  FailureOr<uint32_t> addPackedSegment(memref::GlobalOp global,
                                       PackedWeightAttr packed);
  LogicalResult planArena();
  void addExecutable();
  LogicalResult addDispatch(LaunchOp launch);
  LogicalResult addPushConstants(LaunchOp launch, mod::DispatchDesc &dispatch);
  LogicalResult addCollective(AllToAllOp exchange);
  LogicalResult addMoeLayers();
  /// The host's vmoe.expert_shards (1: not split), checked against the rank.
  LogicalResult readShards();
  void fillStats(SerializeStats &stats) const;

  ModuleOp module;
  func::FuncOp host;
  const SerializeOptions &options;
  mod::ModuleWriter writer;
  llvm::DenseMap<Value, BufferRoot> roots;
  std::vector<mod::BufferRequest> requests;
  llvm::StringMap<uint32_t> constants;
  llvm::DenseMap<Value, Knob> knobs;
  /// The schedule's steps: launches and exchanges (vmoe.all_to_all).
  std::vector<Operation *> steps;
  uint32_t kernelLaunches = 0;
  int64_t shards = 1;
  SmallVector<RoutingStatsOp> statsOps;
  /// MoE layer -> (expert counts, token kept) arena requests.
  llvm::DenseMap<int64_t, std::pair<uint32_t, uint32_t>> statsRequests;
  mod::MemoryPlan plan;
  uint64_t constantBytes = 0;
  uint32_t executable = 0;
};

/// The one function marked `vmoe.entry`.
FailureOr<func::FuncOp> findHost(ModuleOp module) {
  func::FuncOp host;
  for (auto f : module.getOps<func::FuncOp>()) {
    if (!f->hasAttr(kEntryAttrName))
      continue;
    if (host)
      return module.emitError()
             << "has two host functions (" << kEntryAttrName << "): @"
             << host.getName() << " and @" << f.getName();
    host = f;
  }
  if (!host)
    return module.emitError() << "no host function (" << kEntryAttrName
                              << "): run vmoe-lower-to-kernels first";
  return host;
}

LogicalResult Serializer::readKnob(BlockArgument arg, Attribute knob) {
  unsigned i = arg.getArgNumber();
  auto text = dyn_cast<StringAttr>(knob);
  std::optional<KnobKind> kind =
      text ? symbolizeKnobKind(text.getValue()) : std::nullopt;
  if (!kind)
    return host.emitOpError() << "argument " << i << " has an unknown "
                              << kKnobAttrName << " " << knob;
  if (*kind == KnobKind::Batch) {
    knobs[arg] = {fb::PushConstantSource::BatchSize, 0};
    return success();
  }
  auto layer = host.getArgAttrOfType<IntegerAttr>(i, kLayerAttrName);
  if (!layer || layer.getInt() < 0 ||
      layer.getInt() > std::numeric_limits<uint32_t>::max())
    return host.emitOpError() << "knob argument " << i << " has no "
                              << kLayerAttrName << " (a layer number)";
  auto source = *kind == KnobKind::Capacity
                    ? fb::PushConstantSource::MoeCapacity
                : *kind == KnobKind::K ? fb::PushConstantSource::MoeK
                                       : fb::PushConstantSource::MoeBpr;
  knobs[arg] = {source, static_cast<uint32_t>(layer.getInt())};
  return success();
}

LogicalResult Serializer::readSignature() {
  int64_t maxBatch = 0;
  unsigned numInputs = 0, numOutputs = 0;
  for (BlockArgument arg : host.getArguments()) {
    unsigned i = arg.getArgNumber();
    if (Attribute knob = host.getArgAttr(i, kKnobAttrName)) {
      if (failed(readKnob(arg, knob)))
        return failure();
      continue;
    }
    auto type = dyn_cast<MemRefType>(arg.getType());
    Attribute input = host.getArgAttr(i, kInputAttrName);
    Attribute output = host.getArgAttr(i, kOutputAttrName);
    if (!type || static_cast<bool>(input) == static_cast<bool>(output))
      return host.emitOpError()
             << "argument " << i << " must be a memref with one of "
             << kInputAttrName << ", " << kOutputAttrName << " or "
             << kKnobAttrName;
    // Inputs and outputs are numbered in argument order.
    bool isInput = static_cast<bool>(input);
    unsigned expected = isInput ? numInputs : numOutputs;
    auto number = dyn_cast<IntegerAttr>(isInput ? input : output);
    if (!number || number.getInt() != expected)
      return host.emitOpError()
             << "argument " << i << " is " << (isInput ? "input" : "output")
             << " " << expected << " but has "
             << (isInput ? kInputAttrName : kOutputAttrName) << " = "
             << (isInput ? input : output);
    FailureOr<fb::DType> dtype = dtypeOf(type.getElementType());
    if (failed(dtype))
      return host.emitOpError() << "argument " << i << " has an unsupported "
                                << "element type " << type.getElementType();
    mod::TensorDesc desc;
    desc.dtype = *dtype;
    desc.shape.assign(type.getShape().begin(), type.getShape().end());
    desc.batchDim = type.getRank() > 0 ? 0 : -1;
    if (isInput) {
      desc.name = "input" + std::to_string(numInputs++);
      roots[arg] = {fb::BufferKind::Input, writer.addInput(desc)};
    } else {
      desc.name = "output" + std::to_string(numOutputs++);
      roots[arg] = {fb::BufferKind::Output, writer.addOutput(desc)};
    }
    if (type.getRank() > 0)
      maxBatch = std::max<int64_t>(maxBatch, type.getShape()[0]);
  }
  return readBatch(maxBatch);
}

LogicalResult Serializer::readBatch(int64_t maxBatch) {
  // A call runs the compiled batch, or a multiple of the batch step the
  // lowering recorded when every kernel follows the call's batch.
  maxBatch = std::max<int64_t>(maxBatch, 1);
  auto attr = host->getAttrOfType<IntegerAttr>(kBatchMultipleAttrName);
  if (!attr)
    return host.emitOpError()
           << "has no " << kBatchMultipleAttrName << " (an i64 batch step)";
  int64_t batchMultiple = attr.getInt();
  if (batchMultiple < 1 || maxBatch % batchMultiple != 0)
    return host.emitOpError()
           << "batch multiple " << batchMultiple
           << " does not divide the compiled batch " << maxBatch;
  writer.setBatch(maxBatch, batchMultiple);
  return success();
}

LogicalResult Serializer::addConstant(memref::GetGlobalOp get) {
  auto it = constants.find(get.getName());
  if (it == constants.end()) {
    auto global = SymbolTable::lookupNearestSymbolFrom<memref::GlobalOp>(
        get, get.getNameAttr());
    if (!global)
      return get.emitOpError() << "refers to a missing global";
    uint32_t segment;
    if (auto packed =
            global->getAttrOfType<PackedWeightAttr>(kPackedAttrName)) {
      FailureOr<uint32_t> streamed = addPackedSegment(global, packed);
      if (failed(streamed))
        return failure();
      segment = *streamed;
    } else {
      FailureOr<std::vector<uint8_t>> data = globalBytes(global);
      if (failed(data))
        return global.emitOpError()
               << "has no dense or resource initial value of its size and no "
               << kPackedAttrName;
      constantBytes += data->size();
      segment = writer.addSegment(std::move(*data), 64);
    }
    it = constants
             .insert({get.getName(),
                      writer.addConstant(get.getName().str(), segment)})
             .first;
  }
  roots[get] = {fb::BufferKind::Constant, it->second};
  return success();
}

FailureOr<uint32_t> Serializer::addPackedSegment(memref::GlobalOp global,
                                                 PackedWeightAttr packed) {
  if (!options.parameters)
    return global.emitOpError()
           << "is packed from named parameters (" << packed.getParameters()
           << "), but no weights were given to read them from (vmoe-compile "
              "--weights FILE or --random-weights=SEED)";
  ::vmoe::writer::PackSpec spec;
  spec.layout = static_cast<::vmoe::writer::PackLayout>(packed.getLayout());
  spec.batch = packed.getBatch();
  spec.k = packed.getK();
  spec.nr = packed.getNr();
  spec.widths.assign(packed.getWidths().begin(), packed.getWidths().end());
  spec.kPairs = packed.getKPairs();
  spec.kQuads = packed.getKQuads();
  spec.bf16 = global.getType().getElementType().isBF16();
  spec.int8 = packed.getLayout() == PackLayout::Panels &&
              global.getType().getElementType().isInteger(8);
  std::string error;
  if (!::vmoe::writer::checkPackSpec(spec, &error))
    return global.emitOpError() << error;
  uint64_t size = byteSize(global.getType());
  if (::vmoe::writer::packedBytes(spec) != size)
    return global.emitOpError() << "packs " << ::vmoe::writer::packedBytes(spec)
                                << " bytes into a global of " << size;
  // One rank's slice of a layer's experts: the global holds its experts of
  // the parameters' `experts`, from the rank's first on.
  uint64_t sliceFactor = 1, sliceRank = 0;
  if (Attribute attr = global->getAttr(kExpertSliceAttrName)) {
    auto experts = dyn_cast<IntegerAttr>(attr);
    if (shards < 2 || !experts || experts.getInt() != spec.batch * shards)
      return global.emitOpError()
             << "has " << kExpertSliceAttrName << " = " << attr
             << "; expected the experts of its layer (" << spec.batch
             << " per rank) in a schedule split over ranks";
    sliceFactor = static_cast<uint64_t>(shards);
    sliceRank = options.expertRank;
  }
  std::vector<std::string> names;
  for (StringRef name : packed.getParameterNames())
    names.push_back(name.str());
  constantBytes += size;
  ::vmoe::readers::TensorSource *source = options.parameters;
  std::string what = global.getSymName().str();
  auto produce = [source, spec, names, what, sliceFactor,
                  sliceRank](std::vector<uint8_t> &bytes, std::string *error) {
    // The tensors of this one global, then its packed bytes: the memory
    // of one weight at a time.
    std::vector<::vmoe::readers::Tensor> tensors(names.size());
    std::vector<const float *> data;
    for (size_t i = 0; i < names.size(); ++i) {
      if (!source->read(names[i], tensors[i], error))
        return false;
      uint64_t slice = ::vmoe::writer::sourceElements(spec, i);
      uint64_t need = slice * sliceFactor;
      if (tensors[i].data.size() != need) {
        *error = "parameter " + names[i] + " holds " +
                 std::to_string(tensors[i].data.size()) + " values, " + what +
                 " needs " + std::to_string(need);
        return false;
      }
      data.push_back(tensors[i].data.data() + sliceRank * slice);
    }
    ::vmoe::writer::packWeights(spec, data, bytes);
    return true;
  };
  return writer.addSegmentStream(size, 64, std::move(produce));
}

/// Buffers and dispatches, in program order.
LogicalResult Serializer::readSchedule() {
  for (Operation &op : host.getBody().front()) {
    if (auto allocOp = dyn_cast<memref::AllocOp>(op)) {
      mod::BufferRequest request;
      request.size = byteSize(allocOp.getType());
      request.alignment = 64;
      request.firstUse = request.lastUse = steps.size();
      roots[allocOp] = {fb::BufferKind::Arena,
                        static_cast<uint32_t>(requests.size())};
      requests.push_back(request);
    } else if (auto get = dyn_cast<memref::GetGlobalOp>(op)) {
      if (failed(addConstant(get)))
        return failure();
    } else if (isa<memref::CollapseShapeOp, memref::ExpandShapeOp>(op)) {
      auto it = roots.find(op.getOperand(0));
      if (it == roots.end())
        return op.emitOpError() << "views a buffer of unknown origin";
      // A copy: roots[] may grow the map and free the entry `it` points at
      // (found by AddressSanitizer).
      BufferRoot root = it->second;
      roots[op.getResult(0)] = root;
    } else if (auto launch = dyn_cast<LaunchOp>(op)) {
      for (Value v : launch.getBindings()) {
        auto it = roots.find(v);
        if (it == roots.end())
          return launch.emitOpError() << "binds a buffer of unknown origin";
        if (it->second.kind == fb::BufferKind::Arena)
          requests[it->second.index].lastUse = steps.size();
      }
      steps.push_back(launch);
      ++kernelLaunches;
    } else if (auto exchange = dyn_cast<AllToAllOp>(op)) {
      if (shards < 2)
        return exchange.emitOpError()
               << "exchanges buffers in a schedule without "
               << kExpertShardsAttrName << " (not expert-sharded)";
      if (exchange.getRanks() != shards)
        return exchange.emitOpError()
               << "exchanges between " << exchange.getRanks()
               << " ranks in a schedule of " << shards;
      for (Value v : {exchange.getSend(), exchange.getRecv()}) {
        auto it = roots.find(v);
        if (it == roots.end() || it->second.kind != fb::BufferKind::Arena)
          return exchange.emitOpError() << "expects arena buffers";
        requests[it->second.index].lastUse = steps.size();
      }
      steps.push_back(exchange);
    } else if (auto statsOp = dyn_cast<RoutingStatsOp>(op)) {
      statsOps.push_back(statsOp);
    } else if (!isa<arith::ConstantOp, func::ReturnOp>(op)) {
      return op.emitOpError() << "is not part of a host schedule";
    }
  }
  if (kernelLaunches == 0)
    return host.emitOpError() << "has no kernel launches";
  return success();
}

LogicalResult Serializer::planArena() {
  // Routing statistics are read after the run: keep them to the end.
  uint32_t last = steps.size() - 1;
  for (RoutingStatsOp s : statsOps) {
    BufferRoot counts = roots.lookup(s.getCounts());
    BufferRoot kept = roots.lookup(s.getKept());
    if (counts.kind != fb::BufferKind::Arena ||
        kept.kind != fb::BufferKind::Arena)
      return s.emitOpError() << "expects arena buffers";
    requests[counts.index].lastUse = last;
    requests[kept.index].lastUse = last;
    statsRequests[s.getLayer()] = {counts.index, kept.index};
  }
  std::string error;
  if (!mod::planMemory(requests, plan, &error))
    return host.emitOpError() << "memory planning failed: " << error;
  writer.setArena(plan.arenaSize, plan.arenaAlignment);
  return success();
}

void Serializer::addExecutable() {
  auto bytesOf = [](const std::string &s) {
    return std::vector<uint8_t>(s.begin(), s.end());
  };
  if (options.cudaPtx.empty()) {
    executable = writer.addCpuExecutable(
        "cpu", options.targetTriple, options.cpuFeatures,
        writer.addSegment(bytesOf(options.sharedObject), 4096));
    return;
  }
  std::vector<mod::CudaCubinDesc> cubins;
  for (const auto &[sm, cubin] : options.cudaCubins)
    cubins.push_back({sm, writer.addSegment(bytesOf(cubin), 256)});
  executable = writer.addCudaExecutable(
      "cuda", writer.addSegment(bytesOf(options.cudaPtx), 256),
      options.cudaPtxSm, std::move(cubins));
}

LogicalResult Serializer::addPushConstants(LaunchOp launch,
                                           mod::DispatchDesc &dispatch) {
  for (Value c : launch.getConstants()) {
    if (auto it = knobs.find(c); it != knobs.end()) {
      switch (it->second.source) {
      case fb::PushConstantSource::MoeCapacity:
        dispatch.pushConstants.push_back(
            mod::PushConstantDesc::capacity(it->second.layer));
        break;
      case fb::PushConstantSource::MoeBpr:
        dispatch.pushConstants.push_back(
            mod::PushConstantDesc::bpr(it->second.layer));
        break;
      case fb::PushConstantSource::MoeK:
        dispatch.pushConstants.push_back(
            mod::PushConstantDesc::k(it->second.layer));
        break;
      default:
        dispatch.pushConstants.push_back(mod::PushConstantDesc::batchSize());
        break;
      }
      continue;
    }
    APInt value;
    if (!matchPattern(c, m_ConstantInt(&value)))
      return launch.emitOpError()
             << "passes a constant that is neither a knob nor a literal";
    dispatch.pushConstants.push_back(
        mod::PushConstantDesc::literal(value.getSExtValue()));
  }
  return success();
}

LogicalResult Serializer::addDispatch(LaunchOp launch) {
  auto kernelFunc = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(
      launch, launch.getKernelAttr());
  if (!kernelFunc)
    return launch.emitOpError() << "launches a missing kernel";
  mod::KernelDesc kernel;
  kernel.name = launch.getKernel().str();
  kernel.executable = executable;
  // CPU: the ABI entry; CUDA: the gpu.func the CUDA back end made of it.
  kernel.entry = kernel.name + kCpuEntrySuffix.str();
  if (!options.cudaPtx.empty()) {
    auto entry = options.cudaEntries.find(kernel.name);
    if (entry == options.cudaEntries.end())
      return launch.emitOpError() << "launches a kernel without CUDA code";
    kernel.entry = entry->second;
    kernel.workgroupSize = {options.cudaBlockSize, 1, 1};
  }
  ArrayRef<int64_t> grid = launch.getGrid();
  kernel.workgroupCount = {static_cast<uint32_t>(grid[0]),
                           static_cast<uint32_t>(grid[1]),
                           static_cast<uint32_t>(grid[2])};
  kernel.bindingCount = launch.getBindings().size();
  kernel.constantCount = launch.getConstants().size();
  if (Attribute attr = kernelFunc->getAttr(kScratchSizeAttrName)) {
    auto scratch = dyn_cast<IntegerAttr>(attr);
    if (!scratch || scratch.getInt() < 0)
      return kernelFunc.emitOpError()
             << "has " << kScratchSizeAttrName << " = " << attr
             << "; expected a non-negative i64 byte count";
    kernel.scratchSize = scratch.getInt();
  }
  // Without the analysis' answer every binding counts as written: the
  // runtime then refuses constants bound to this kernel.
  kernel.writtenBindings.assign(kernel.bindingCount, true);
  if (auto flags = kernelFunc->getAttrOfType<DenseBoolArrayAttr>(
          kWrittenBindingsAttrName))
    for (auto [i, written] : llvm::enumerate(flags.asArrayRef()))
      if (i < kernel.bindingCount)
        kernel.writtenBindings[i] = written;
  mod::DispatchDesc dispatch;
  dispatch.kernel = writer.addKernel(kernel);
  for (Value v : launch.getBindings()) {
    BufferRoot root = roots.lookup(v);
    uint64_t length = byteSize(cast<MemRefType>(v.getType()));
    switch (root.kind) {
    case fb::BufferKind::Arena:
      dispatch.bindings.push_back(
          mod::BindingDesc::arena(plan.offsets[root.index], length));
      break;
    case fb::BufferKind::Constant:
      dispatch.bindings.push_back(
          mod::BindingDesc::constant(root.index, 0, length));
      break;
    case fb::BufferKind::Input:
      dispatch.bindings.push_back(
          mod::BindingDesc::input(root.index, 0, length));
      break;
    case fb::BufferKind::Output:
      dispatch.bindings.push_back(
          mod::BindingDesc::output(root.index, 0, length));
      break;
    }
  }
  if (failed(addPushConstants(launch, dispatch)))
    return failure();
  if (std::optional<ArrayRef<int64_t>> batchGrid = launch.getBatchGrid()) {
    dispatch.batchUnitsPerImage = static_cast<uint64_t>((*batchGrid)[0]);
    dispatch.batchUnitsPerWorkgroup = static_cast<uint64_t>((*batchGrid)[1]);
  }
  writer.addDispatch(std::move(dispatch));
  return success();
}

LogicalResult Serializer::addCollective(AllToAllOp exchange) {
  mod::DispatchDesc dispatch;
  dispatch.collective = true;
  dispatch.collectiveLayer = static_cast<uint32_t>(exchange.getLayer());
  dispatch.sendOffset = plan.offsets[roots.lookup(exchange.getSend()).index];
  dispatch.recvOffset = plan.offsets[roots.lookup(exchange.getRecv()).index];
  dispatch.groupBytes = static_cast<uint64_t>(exchange.getGroupBytes());
  dispatch.slotBytes = static_cast<uint64_t>(exchange.getSlotBytes());
  writer.addDispatch(std::move(dispatch));
  return success();
}

LogicalResult Serializer::readShards() {
  if (Attribute attr = host->getAttr(kExpertShardsAttrName)) {
    auto n = dyn_cast<IntegerAttr>(attr);
    if (!n || n.getInt() < 2 || n.getInt() > (int64_t(1) << 16))
      return host.emitOpError()
             << "has " << kExpertShardsAttrName << " = " << attr
             << "; expected an i64 number of ranks >= 2";
    shards = n.getInt();
  }
  if (options.expertRank >= shards)
    return host.emitOpError()
           << "has no rank " << options.expertRank << ": its schedule is for "
           << shards << " rank(s) (" << kExpertShardsAttrName << ")";
  return success();
}

LogicalResult Serializer::addMoeLayers() {
  Attribute attr = host->getAttr(kMoeLayersAttrName);
  auto layers = dyn_cast_or_null<ArrayAttr>(attr);
  if (!layers)
    return host.emitOpError() << "has no " << kMoeLayersAttrName
                              << " array (one #vmoe.moe_layer per MoE layer)";
  uint64_t requirements = 0;
  for (auto [i, element] : llvm::enumerate(layers)) {
    auto l = dyn_cast<MoeLayerAttr>(element);
    if (!l)
      return host.emitOpError() << kMoeLayersAttrName << " element " << i
                                << " is not a #vmoe.moe_layer: " << element;
    mod::MoeLayerDesc layer;
    layer.name = "moe" + std::to_string(l.getLayer());
    layer.numExperts = l.getNumExperts();
    layer.k = l.getK();
    layer.groupSize = l.getGroupSize();
    layer.numGroups = l.getNumGroups();
    layer.numTokens = static_cast<uint64_t>(layer.groupSize) * layer.numGroups;
    layer.tokensPerImage = l.getTokensPerImage();
    layer.maxCapacity = l.getMaxCapacity();
    layer.defaultCapacityFactor = l.getCapacityFactor().convertToDouble();
    layer.maxCapacityFactor = l.getMaxCapacityFactor().convertToDouble();
    layer.defaultBpr = l.getBatchPriority();
    layer.capacityMultipleOf = l.getCapacityMultipleOf();
    layer.capacityRound = l.getCapacityRound();
    layer.expertChoice = l.getExpertChoice();
    // What a runtime must not ignore (module_format.h).
    if (!l.hasFixedCapacity() &&
        (layer.capacityRound || layer.capacityMultipleOf != 4))
      requirements |= VMOE_REQUIRES_CAPACITY_RULE;
    if (layer.expertChoice)
      requirements |= VMOE_REQUIRES_EXPERT_CHOICE;
    if (shards > 1) {
      // Every rank holds the same number of experts of every layer.
      layer.localExperts = layer.numExperts / shards;
      layer.firstExpert = options.expertRank * layer.localExperts;
    }
    if (auto it = statsRequests.find(l.getLayer()); it != statsRequests.end()) {
      layer.hasStats = true;
      layer.expertCountsOffset = plan.offsets[it->second.first];
      layer.tokenKeptOffset = plan.offsets[it->second.second];
    }
    writer.addMoeLayer(layer);
  }
  for (const auto &entry : knobs)
    if (entry.second.source == fb::PushConstantSource::MoeK)
      requirements |= VMOE_REQUIRES_K_KNOB;
  if (shards > 1) {
    requirements |= VMOE_REQUIRES_EXPERT_SHARDS;
    mod::ExpertShardDesc shard;
    shard.rank = options.expertRank;
    shard.size = static_cast<uint32_t>(shards);
    shard.modelId = options.modelId;
    writer.setExpertShard(shard);
  }
  writer.setRequirements(requirements);
  return success();
}

void Serializer::fillStats(SerializeStats &stats) const {
  stats.arenaSize = plan.arenaSize;
  stats.arenaSizeWithoutReuse = 0;
  for (const mod::BufferRequest &r : requests)
    stats.arenaSizeWithoutReuse += (r.size + 63) / 64 * 64;
  stats.constantBytes = constantBytes;
  stats.dispatches = steps.size();
  stats.kernels = kernelLaunches;
}

LogicalResult Serializer::build(SerializeStats *stats) {
  if (failed(readShards()) || failed(readSignature()) ||
      failed(readSchedule()) || failed(planArena()))
    return failure();
  addExecutable();
  for (Operation *step : steps) {
    auto launch = dyn_cast<LaunchOp>(step);
    if (failed(launch ? addDispatch(launch)
                      : addCollective(cast<AllToAllOp>(step))))
      return failure();
  }
  if (failed(addMoeLayers()))
    return failure();

  mod::MetadataDesc metadata;
  metadata.name = options.modelName;
  metadata.configJson = options.configJson;
  metadata.classNames = options.classNames;
  metadata.producer = options.producer;
  writer.setMetadata(metadata);
  writer.setSigner(options.signer);
  writer.setProgress(options.progress);
  if (stats)
    fillStats(*stats);
  return success();
}

} // namespace

LogicalResult serializeModule(ModuleOp module, const SerializeOptions &options,
                              std::vector<uint8_t> &bytes,
                              SerializeStats *stats) {
  FailureOr<func::FuncOp> host = findHost(module);
  if (failed(host))
    return failure();
  Serializer serializer(module, *host, options);
  if (failed(serializer.build(stats)))
    return failure();
  std::string error;
  if (!serializer.moduleWriter().writeToBuffer(bytes, &error))
    return module.emitError() << "writing the module failed: " << error;
  return success();
}

LogicalResult serializeModuleToFile(ModuleOp module,
                                    const SerializeOptions &options,
                                    const std::string &path,
                                    SerializeStats *stats, uint64_t *fileSize,
                                    std::string *error) {
  std::string text;
  ScopedDiagnosticHandler handler(module.getContext(), [&](Diagnostic &diag) {
    llvm::raw_string_ostream os(text);
    os << diag.getLocation() << ": " << diag << "\n";
    return success();
  });
  FailureOr<func::FuncOp> host = findHost(module);
  if (failed(host)) {
    *error = text;
    return failure();
  }
  Serializer serializer(module, *host, options);
  if (failed(serializer.build(stats))) {
    *error = text.empty() ? "serialization failed" : text;
    return failure();
  }
  mod::ModuleLayout layout;
  if (!serializer.moduleWriter().writeFile(path, error, &layout))
    return failure();
  if (fileSize)
    *fileSize = layout.fileSize;
  return success();
}

LogicalResult writeFileAtomically(const std::string &path,
                                  const std::vector<uint8_t> &bytes,
                                  std::string *error) {
  llvm::SmallString<256> tmp(path);
  tmp += ".tmp-%%%%%%";
  int fd = -1;
  llvm::SmallString<256> tmpPath;
  if (std::error_code ec = llvm::sys::fs::createUniqueFile(tmp, fd, tmpPath)) {
    *error = "cannot create " + std::string(tmp) + ": " + ec.message();
    return failure();
  }
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os.write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
    os.close(); // a full disk may only show here
    if (os.has_error()) {
      *error =
          "cannot write " + std::string(tmpPath) + ": " + os.error().message();
      os.clear_error();
      llvm::sys::fs::remove(tmpPath);
      return failure();
    }
  }
  if (std::error_code ec = llvm::sys::fs::rename(tmpPath, path)) {
    *error = "cannot rename to " + path + ": " + ec.message();
    llvm::sys::fs::remove(tmpPath);
    return failure();
  }
  return success();
}

} // namespace mlir::vmoe
