//===- VmoeBase.td - vmoe dialect definition ---------------*- tablegen -*-===//
//
// The `vmoe` dialect: sparse Mixture-of-Experts routing, Batch Prioritized
// Routing and the dense Vision Transformer parts of V-MoE, at tensor level.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_DIALECT_VMOEBASE_TD
#define VMOE_DIALECT_VMOEBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Vmoe_Dialect : Dialect {
  let name = "vmoe";
  let cppNamespace = "::mlir::vmoe";
  let summary = "Sparse Mixture-of-Experts vision models (V-MoE)";
  let description = [{
    Ops with the exact inference semantics of google-research/vmoe: the
    softmax router, top-k selection (ties to the lower expert), capacity
    assignment in k-major order with counters that keep counting past
    capacity, Batch Prioritized Routing (stable sort by descending top-1
    gate), expert-choice routing, dispatch as a gather into per-expert
    capacity buffers, the expert MLP stack and the gate-weighted combine.
    The dense Vision Transformer parts (patch embedding, LayerNorm, attention,
    MLP, encoder block, classifier head) complete the model.

    Capacity and Batch Prioritized Routing are SSA values, not attributes, in
    the decomposed form: they are run-time knobs of a compiled module.
  }];
  let hasConstantMaterializer = 1;
  let useDefaultAttributePrinterParser = 1;
  // The discardable `vmoe.*` attributes of the compiler contract
  // (VmoeContract.h) are checked by VmoeContract.cpp.
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
}

def Vmoe_RoutingKind : I32EnumAttr<"RoutingKind",
    "how tokens and experts are matched", [
      I32EnumAttrCase<"TopK", 0, "top_k">,
      I32EnumAttrCase<"ExpertChoice", 1, "expert_choice">
    ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::vmoe";
}

def Vmoe_RoutingKindAttr : EnumAttr<Vmoe_Dialect, Vmoe_RoutingKind, "routing"> {
  let assemblyFormat = "`<` $value `>`";
}

def Vmoe_Pooling : I32EnumAttr<"Pooling",
    "how the classifier pools the encoder output", [
      I32EnumAttrCase<"Token", 0, "token">,
      I32EnumAttrCase<"Gap", 1, "gap">
    ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::vmoe";
}

def Vmoe_PoolingAttr : EnumAttr<Vmoe_Dialect, Vmoe_Pooling, "pooling"> {
  let assemblyFormat = "`<` $value `>`";
}

class Vmoe_Op<string mnemonic, list<Trait> traits = []>
    : Op<Vmoe_Dialect, mnemonic, traits>;

def Vmoe_F32Tensor : RankedTensorOf<[F32]>;
def Vmoe_I32Tensor : RankedTensorOf<[I32]>;

#endif // VMOE_DIALECT_VMOEBASE_TD
