//===- LoweringState.cpp - kernels, launches, buffers ---------------------===//
//
// The infrastructure of the lowering: kernel functions and their launches
// in the host schedule, the batch that a call may shrink, host buffers.
//
//===----------------------------------------------------------------------===//

#include "LoweringState.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Matchers.h"

namespace mlir::vmoe::lowering {

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

FailureOr<Value> Lowering::lookup(Value tensor, Operation *user) {
  if (Value b = buffers.lookup(tensor))
    return b;
  if (matchPattern(tensor, m_Constant()) || tensor.getDefiningOp<ParameterOp>())
    return constantBuffer(tensor, user);
  return user->emitOpError() << "operand was not lowered to a buffer";
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

} // namespace mlir::vmoe::lowering
