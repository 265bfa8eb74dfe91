//===- InferCapacity.cpp - static expert-buffer capacities ----------------===//

#include "vmoe/Dialect/IR/VmoeOps.h"
#include "vmoe/Dialect/Transforms/Passes.h"

#include "mlir/IR/Builders.h"

namespace mlir::vmoe {
#define GEN_PASS_DEF_VMOEINFERCAPACITY
#include "vmoe/Dialect/Transforms/Passes.h.inc"

namespace {
struct VmoeInferCapacityPass
    : impl::VmoeInferCapacityBase<VmoeInferCapacityPass> {
  using Base::Base;

  void runOnOperation() override {
    Builder b(&getContext());
    WalkResult result = getOperation()->walk([&](SparseMoeOp op) {
      if (maxCapacityFactor > 0.0 && op.getCapacityFactorValue()) {
        if (maxCapacityFactor < *op.getCapacityFactorValue()) {
          op.emitOpError() << "max-capacity-factor " << maxCapacityFactor.getValue()
                           << " is below the layer's capacity_factor "
                           << *op.getCapacityFactorValue();
          return WalkResult::interrupt();
        }
        op.setMaxCapacityFactorAttr(b.getF64FloatAttr(maxCapacityFactor));
      }
      std::optional<int64_t> cap = op.inferMaxCapacity();
      if (!cap) {
        op.emitOpError() << "cannot infer a capacity of at least 1 from the "
                            "capacity factor";
        return WalkResult::interrupt();
      }
      op.setMaxCapacityAttr(b.getI64IntegerAttr(*cap));
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};
} // namespace
} // namespace mlir::vmoe
