//===- Passes.td - vmoe dialect passes ---------------------*- tablegen -*-===//

#ifndef VMOE_DIALECT_TRANSFORMS_PASSES_TD
#define VMOE_DIALECT_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def VmoeDecompose : Pass<"vmoe-decompose"> {
  let summary = "Split composite vmoe ops into their routing and layer parts";
  let description = [{
    `vmoe.sparse_moe` becomes grouping reshapes, `vmoe.router`, `vmoe.top_k`
    (or `vmoe.expert_choice`), `vmoe.capacity`, `vmoe.assign_slots`,
    `vmoe.dispatch`, `vmoe.expert_mlp` and `vmoe.combine`. The capacity factor
    and the BPR flag become `arith.constant`s feeding SSA operands, so later
    passes can turn them into run-time arguments. `vmoe.encoder_block`
    becomes its LayerNorms, attention, residual adds and the inlined MLP
    region. Composites must have a `max_capacity` (run
    `vmoe-infer-capacity` first, or the pass infers it the same way).
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect"];
}

def VmoeInferCapacity : Pass<"vmoe-infer-capacity"> {
  let summary = "Fix the static expert-buffer capacity of every MoE layer";
  let description = [{
    Sets `max_capacity` on every `vmoe.sparse_moe` from its static shapes:
    vmoe's capacity rule applied to `max_capacity_factor` (or to
    `capacity_factor` when no maximum is given), or the explicit `capacity`.
    A compiled module sizes the expert buffers by it; each call may lower the
    capacity factor below the maximum. The optional `max-capacity-factor`
    option raises the maximum of every layer that has a capacity factor.
  }];
  let options = [
    Option<"maxCapacityFactor", "max-capacity-factor", "double", "0.0",
           "If > 0, the maximum capacity factor of every layer that routes by "
           "capacity factor (must not be below the layer's capacity factor)">
  ];
}

#endif // VMOE_DIALECT_TRANSFORMS_PASSES_TD
