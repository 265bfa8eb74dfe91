//===- VmoeAttrs.td - vmoe contract attributes -------------*- tablegen -*-===//
//
// The typed attributes of the contract between the lowering, the targets and
// the module serializer. The discardable `vmoe.*` attribute names that carry
// them are in VmoeContract.h; the dialect verifies both.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_DIALECT_VMOEATTRS_TD
#define VMOE_DIALECT_VMOEATTRS_TD

include "vmoe/Dialect/IR/VmoeBase.td"

/// An f64 value; parsed as a float literal (`1.0`, `2.5e-1`).
class Vmoe_F64Parameter<string desc> : APFloatParameter<desc> {
  let parser = [{ [&]() -> ::mlir::FailureOr<::llvm::APFloat> {
      ::llvm::APFloat value(0.0);
      if ($_parser.parseFloat(::llvm::APFloat::IEEEdouble(), value))
        return ::mlir::failure();
      return value;
    }() }];
}

def Vmoe_KnobKind : I32EnumAttr<"KnobKind",
    "which run-time value a host knob argument receives", [
      I32EnumAttrCase<"Batch", 0, "batch">,
      I32EnumAttrCase<"Capacity", 1, "capacity">,
      I32EnumAttrCase<"Bpr", 2, "bpr">,
      I32EnumAttrCase<"K", 3, "k">
    ]> {
  // Spelled as a string in `vmoe.knob = "capacity"`: no attribute of its own.
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::vmoe";
}

def Vmoe_MoeLayerAttr : AttrDef<Vmoe_Dialect, "MoeLayer"> {
  let mnemonic = "moe_layer";
  let summary = "what the runtime needs to know of one compiled MoE layer";
  let description = [{
    One entry of the host function's `vmoe.moe_layers`: the shape of the
    layer's routing (`num_experts` experts, top-`k`, `num_groups` groups of
    `group_size` tokens, `tokens_per_image` tokens of each image), the
    capacity the expert buffers were compiled for (`max_capacity`), the
    capacity factor used when a call sets none and the largest one a call may
    ask for, the default of Batch Prioritized Routing, and whether expert
    inputs and outputs are rounded to bfloat16. `layer` numbers the MoE layers
    of the model from 0; the host's `vmoe.layer` knob arguments refer to it.
    A layer compiled with a fixed capacity (no capacity knob) has both
    capacity factors 0 and `max_capacity` as its capacity; otherwise
    `0 < capacity_factor <= max_capacity_factor` and `max_capacity` holds the
    capacity of `max_capacity_factor` (or the whole group).

    The capacity rule of a layer with a capacity factor is vmoe's
    `compute_capacity` over `S * k` routed tokens (`S` for `expert_choice`),
    with `ceil` (Python's half-to-even `round` with `capacity_round`) and
    rounding up to a multiple of `capacity_multiple_of`; the runtime
    evaluates it per call with the call's capacity factor and k.
    `expert_choice` layers route by vmoe's `NoisyTopItemsPerExpertRouter`
    and have `k = 1`.

    Example:
    ```mlir
    #vmoe.moe_layer<layer = 0, num_experts = 8, k = 2, group_size = 16,
                    num_groups = 2, tokens_per_image = 16, max_capacity = 8,
                    capacity_factor = 1.0, max_capacity_factor = 2.0,
                    batch_priority = true, bf16_dispatch = false>
    ```
  }];
  let parameters = (ins
    "int64_t":$layer,
    "int64_t":$num_experts,
    "int64_t":$k,
    "int64_t":$group_size,
    "int64_t":$num_groups,
    "int64_t":$tokens_per_image,
    "int64_t":$max_capacity,
    Vmoe_F64Parameter<"default capacity factor">:$capacity_factor,
    Vmoe_F64Parameter<"largest capacity factor a call may ask for">:
        $max_capacity_factor,
    "bool":$batch_priority,
    "bool":$bf16_dispatch,
    DefaultValuedParameter<"bool", "false">:$expert_choice,
    DefaultValuedParameter<"int64_t", "4">:$capacity_multiple_of,
    DefaultValuedParameter<"bool", "false">:$capacity_round
  );
  let builders = [
    AttrBuilder<(ins "int64_t":$layer, "int64_t":$num_experts, "int64_t":$k,
                     "int64_t":$group_size, "int64_t":$num_groups,
                     "int64_t":$tokens_per_image, "int64_t":$max_capacity,
                     "double":$capacity_factor, "double":$max_capacity_factor,
                     "bool":$batch_priority, "bool":$bf16_dispatch,
                     CArg<"bool", "false">:$expert_choice,
                     CArg<"int64_t", "4">:$capacity_multiple_of,
                     CArg<"bool", "false">:$capacity_round), [{
      return $_get($_ctxt, layer, num_experts, k, group_size, num_groups,
                   tokens_per_image, max_capacity,
                   ::llvm::APFloat(capacity_factor),
                   ::llvm::APFloat(max_capacity_factor), batch_priority,
                   bf16_dispatch, expert_choice, capacity_multiple_of,
                   capacity_round);
    }]>
  ];
  let extraClassDeclaration = [{
    /// The tokens of the layer at the compiled batch.
    int64_t getNumTokens() const { return getGroupSize() * getNumGroups(); }
    /// A fixed capacity (no capacity knob): both capacity factors are 0.
    bool hasFixedCapacity() const {
      return getCapacityFactor().isZero() && getMaxCapacityFactor().isZero();
    }
  }];
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

#endif // VMOE_DIALECT_VMOEATTRS_TD
