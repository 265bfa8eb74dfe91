//===- VmoeOps.td - vmoe dialect operations ----------------*- tablegen -*-===//

#ifndef VMOE_DIALECT_VMOEOPS_TD
#define VMOE_DIALECT_VMOEOPS_TD

include "vmoe/Dialect/IR/VmoeBase.td"
include "vmoe/Dialect/IR/VmoeAttrs.td"
include "vmoe/Dialect/IR/VmoeParameters.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/IR/OpBase.td"
include "mlir/IR/SymbolInterfaces.td"

//===----------------------------------------------------------------------===//
// Routing
//===----------------------------------------------------------------------===//

def Vmoe_RouterOp : Vmoe_Op<"router", [Pure]> {
  let summary = "V-MoE router gates: softmax over all experts of x @ W";
  let description = [{
    `gates[g, s, e] = softmax_e(sum_d input[g, s, d] * kernel[d, e])`. The
    router has no bias and, at inference, no noise (vmoe's
    `NoisyTopExpertsPerItemRouter` with `deterministic=True`). The softmax
    runs over all E experts before any top-k selection.

    Example:
    ```mlir
    %gates = vmoe.router %x, %w : tensor<2x16x32xf32>, tensor<32x8xf32> -> tensor<2x16x8xf32>
    ```
  }];
  let arguments = (ins Vmoe_F32Tensor:$input, Vmoe_F32Tensor:$kernel);
  let results = (outs Vmoe_F32Tensor:$gates);
  let assemblyFormat = [{
    $input `,` $kernel attr-dict `:` type($input) `,` type($kernel) `->` type($gates)
  }];
  let hasVerifier = 1;
}

def Vmoe_TopKOp : Vmoe_Op<"top_k", [Pure]> {
  let summary = "the k largest gates per token, ties to the lower expert";
  let description = [{
    Per token, the `k` largest gates in descending order and their expert
    indices. Equal gates go to the lower expert index first (the
    `jax.lax.top_k` contract). The values are not renormalised.

    Example:
    ```mlir
    %w, %e = vmoe.top_k %gates {k = 2} : tensor<2x16x8xf32> -> tensor<2x16x2xf32>, tensor<2x16x2xi32>
    ```
  }];
  let arguments = (ins Vmoe_F32Tensor:$gates, ConfinedAttr<I64Attr, [IntPositive]>:$k);
  let results = (outs Vmoe_F32Tensor:$values, Vmoe_I32Tensor:$indices);
  let assemblyFormat = [{
    $gates attr-dict `:` type($gates) `->` type($values) `,` type($indices)
  }];
  let hasVerifier = 1;
}

def Vmoe_CapacityOp : Vmoe_Op<"capacity", [Pure]> {
  let summary = "per-expert buffer capacity from a capacity factor";
  let description = [{
    vmoe's `compute_capacity`: `v = (num_tokens * cf) / num_experts`,
    evaluated in IEEE double left to right, then `ceil(v)` (or Python's
    half-to-even `round(v)` with `round = true`), then rounded up to a
    multiple of `multiple_of`. Top-k routing uses `num_tokens = S * k`,
    expert choice `num_tokens = S`. A capacity below 1 is an error. The
    capacity factor is an operand so that a compiled module can take it per
    call; a constant operand folds the op to a constant, except when
    `max_capacity_factor` is set: the capacity is then a run-time knob of the
    compiled module (the constant is its default, the attribute its maximum)
    and stays an op until code generation turns it into an argument.

    Example:
    ```mlir
    %cf = arith.constant 1.05 : f64
    %c = vmoe.capacity %cf {num_tokens = 800, num_experts = 8} : f64
    ```
  }];
  let arguments = (ins F64:$capacity_factor,
                   ConfinedAttr<I64Attr, [IntPositive]>:$num_tokens,
                   ConfinedAttr<I64Attr, [IntPositive]>:$num_experts,
                   DefaultValuedAttr<ConfinedAttr<I64Attr, [IntPositive]>, "4">:$multiple_of,
                   DefaultValuedAttr<BoolAttr, "false">:$round,
                   OptionalAttr<F64Attr>:$max_capacity_factor);
  let results = (outs Index:$capacity);
  let assemblyFormat = "$capacity_factor attr-dict `:` type($capacity_factor)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Vmoe_AssignSlotsOp : Vmoe_Op<"assign_slots", [Pure]> {
  let summary = "token-choice slot assignment, vanilla or Batch Prioritized";
  let description = [{
    Assigns each (token, choice) of every group a slot in its expert's
    buffer, exactly as vmoe does:

    ```
    order = [0..S-1], or with BPR stable_argsort(-values[:, 0])
    count[e] = 0
    for j in 0..k-1:            # all 1st choices, then all 2nd choices, ...
      for s in order:
        pos = count[indices[s, j]]; count[indices[s, j]] += 1   # counts past capacity
        slots[s, j] = pos < capacity ? pos : -1
    ```

    `capacity` and `batch_priority` are run-time values; `capacity` is
    clamped to `max_capacity`, the static size of the dispatch buffers.
    `counts[g, e]` is the raw number of assignments that asked for expert e,
    dropped ones included: the routing statistics derive from it.

    Example:
    ```mlir
    %slots, %counts = vmoe.assign_slots %e, %w, %c, %bpr {num_experts = 8, max_capacity = 216}
        : tensor<2x16x2xi32>, tensor<2x16x2xf32> -> tensor<2x16x2xi32>, tensor<2x8xi32>
    ```
  }];
  let arguments = (ins Vmoe_I32Tensor:$indices, Vmoe_F32Tensor:$values,
                   Index:$capacity, I1:$batch_priority,
                   ConfinedAttr<I64Attr, [IntPositive]>:$num_experts,
                   ConfinedAttr<I64Attr, [IntPositive]>:$max_capacity);
  let results = (outs Vmoe_I32Tensor:$slots, Vmoe_I32Tensor:$counts);
  let assemblyFormat = [{
    $indices `,` $values `,` $capacity `,` $batch_priority attr-dict `:`
    type($indices) `,` type($values) `->` type($slots) `,` type($counts)
  }];
  let hasVerifier = 1;
}

def Vmoe_ExpertChoiceOp : Vmoe_Op<"expert_choice", [Pure]> {
  let summary = "expert-choice routing: each expert takes its top-C tokens";
  let description = [{
    vmoe's `NoisyTopItemsPerExpertRouter` at inference: for each group and
    expert e, the `capacity` tokens with the largest `gates[:, e]` (ties to
    the lower token index); slot c holds the c-th best token. The result uses
    the same per-token form as token choice with one entry per expert:
    `experts[g, s, e] = e`, `slots[g, s, e]` the slot or -1, and
    `weights[g, s, e]` the gate when chosen, else 0. `capacity` is clamped to
    `max_capacity`, which must not exceed the group size S.
  }];
  let arguments = (ins Vmoe_F32Tensor:$gates, Index:$capacity,
                   ConfinedAttr<I64Attr, [IntPositive]>:$max_capacity);
  let results = (outs Vmoe_I32Tensor:$experts, Vmoe_I32Tensor:$slots,
                  Vmoe_F32Tensor:$weights);
  let assemblyFormat = [{
    $gates `,` $capacity attr-dict `:` type($gates) `->` type($experts) `,`
    type($slots) `,` type($weights)
  }];
  let hasVerifier = 1;
}

def Vmoe_DispatchOp : Vmoe_Op<"dispatch", [Pure]> {
  let summary = "gather tokens into per-expert capacity buffers";
  let description = [{
    `buffers[experts[g,s,j], g, slots[g,s,j], :] = input[g, s, :]` for every
    kept assignment (`slots >= 0`); slots no token reached hold zeros. With
    `bf16_round`, values are rounded to bfloat16 (round to nearest even) as
    vmoe's `Bfloat16Dispatcher` does. This is a gather, never a one-hot
    einsum. The result shape is `(E, G, C, D)`.
  }];
  let arguments = (ins Vmoe_F32Tensor:$input, Vmoe_I32Tensor:$experts,
                   Vmoe_I32Tensor:$slots,
                   DefaultValuedAttr<BoolAttr, "false">:$bf16_round);
  let results = (outs Vmoe_F32Tensor:$buffers);
  let assemblyFormat = [{
    $input `,` $experts `,` $slots attr-dict `:` type($input) `,` type($experts)
    `,` type($slots) `->` type($buffers)
  }];
  let hasVerifier = 1;
}

def Vmoe_ExpertMlpOp : Vmoe_Op<"expert_mlp", [Pure]> {
  let summary = "E independent MLPs, one per expert buffer";
  let description = [{
    For every expert e: `gelu_tanh(buffers[e] @ w1[e] + b1[e]) @ w2[e] + b2[e]`,
    with `w1 : (E, D, M)`, `b1 : (E, M)`, `w2 : (E, M, D)`, `b2 : (E, D)`
    (vmoe's `Moe/Mlp/Dense_{0,1}` stacked on a leading expert axis). The
    buffers are `(E, ..., D)`.
  }];
  let arguments = (ins Vmoe_F32Tensor:$buffers, Vmoe_F32Tensor:$w1,
                   Vmoe_F32Tensor:$b1, Vmoe_F32Tensor:$w2, Vmoe_F32Tensor:$b2);
  let results = (outs Vmoe_F32Tensor:$result);
  let assemblyFormat = [{
    $buffers `,` $w1 `,` $b1 `,` $w2 `,` $b2 attr-dict `:` type($buffers) `,`
    type($w1) `,` type($b1) `,` type($w2) `,` type($b2) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Vmoe_CombineOp : Vmoe_Op<"combine", [Pure]> {
  let summary = "gate-weighted scatter of expert outputs back to token order";
  let description = [{
    `result[g, s, :] = sum_j weights[g,s,j] * buffers[experts[g,s,j], g, slots[g,s,j], :]`
    over kept assignments only (`slots >= 0`); a token whose assignments were
    all dropped gets exactly 0. No renormalisation. With `bf16_round` the
    expert outputs are rounded to bfloat16 before the float32 weighted sum.
  }];
  let arguments = (ins Vmoe_F32Tensor:$buffers, Vmoe_I32Tensor:$experts,
                   Vmoe_I32Tensor:$slots, Vmoe_F32Tensor:$weights,
                   DefaultValuedAttr<BoolAttr, "false">:$bf16_round);
  let results = (outs Vmoe_F32Tensor:$result);
  let assemblyFormat = [{
    $buffers `,` $experts `,` $slots `,` $weights attr-dict `:` type($buffers)
    `,` type($experts) `,` type($slots) `,` type($weights) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Vmoe_SparseMoeOp : Vmoe_Op<"sparse_moe", [Pure]> {
  let summary = "the V-MoE sparse MoE MLP layer (composite)";
  let description = [{
    vmoe's `MlpMoeBlock`: the tokens `(..., D)` are flattened row-major and
    cut into consecutive groups of `group_size`; each group is routed
    independently (`routing = top_k`: router, top-k, capacity assignment,
    vanilla or BPR; `routing = expert_choice`), dispatched to the experts,
    and combined. Dropped assignments contribute 0.

    Capacity: exactly one of `capacity_factor` (capacity from vmoe's rule)
    and `capacity` (explicit). `max_capacity_factor` (default: the capacity
    factor) is the largest capacity factor a compiled module accepts per call;
    `max_capacity`, the static size of the expert buffers, is filled in by
    `vmoe-infer-capacity`. `batch_priority` is the default of the BPR knob.
    `bf16_dispatch` rounds expert inputs and outputs to bfloat16.

    Example:
    ```mlir
    %y = vmoe.sparse_moe %x, %router, %w1, %b1, %w2, %b2 {
        num_experts = 8, k = 2, group_size = 32, capacity_factor = 1.05 : f64}
      : (tensor<2x16x32xf32>, tensor<32x8xf32>, tensor<8x32x64xf32>,
         tensor<8x64xf32>, tensor<8x64x32xf32>, tensor<8x32xf32>) -> tensor<2x16x32xf32>
    ```
  }];
  let arguments = (ins Vmoe_F32Tensor:$input, Vmoe_F32Tensor:$router_kernel,
                   Vmoe_F32Tensor:$w1, Vmoe_F32Tensor:$b1,
                   Vmoe_F32Tensor:$w2, Vmoe_F32Tensor:$b2,
                   ConfinedAttr<I64Attr, [IntPositive]>:$num_experts,
                   DefaultValuedAttr<ConfinedAttr<I64Attr, [IntPositive]>, "1">:$k,
                   ConfinedAttr<I64Attr, [IntPositive]>:$group_size,
                   OptionalAttr<F64Attr>:$capacity_factor,
                   OptionalAttr<F64Attr>:$max_capacity_factor,
                   OptionalAttr<I64Attr>:$capacity,
                   OptionalAttr<I64Attr>:$max_capacity,
                   DefaultValuedAttr<BoolAttr, "false">:$batch_priority,
                   DefaultValuedAttr<BoolAttr, "false">:$bf16_dispatch,
                   DefaultValuedAttr<Vmoe_RoutingKindAttr,
                                     "::mlir::vmoe::RoutingKind::TopK">:$routing);
  let results = (outs Vmoe_F32Tensor:$result);
  let assemblyFormat = [{
    $input `,` $router_kernel `,` $w1 `,` $b1 `,` $w2 `,` $b2 attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
  let extraClassDeclaration = [{
    /// Tokens per group times choices per token: what the capacity rule
    /// divides among the experts.
    int64_t getRoutedTokensPerGroup();
    /// Number of groups of the flattened input (dynamic if the input is).
    int64_t getNumGroups();
    /// The static expert-buffer capacity this layer needs: the explicit
    /// capacity, or vmoe's rule applied to the maximum capacity factor.
    std::optional<int64_t> inferMaxCapacity();
    /// The optional float attributes as doubles.
    std::optional<double> getCapacityFactorValue();
    std::optional<double> getMaxCapacityFactorValue();
  }];
}

//===----------------------------------------------------------------------===//
// Dense Vision Transformer parts
//===----------------------------------------------------------------------===//

def Vmoe_PatchEmbedOp : Vmoe_Op<"patch_embed", [Pure]> {
  let summary = "non-overlapping patch embedding (a VALID, stride-p conv)";
  let description = [{
    vmoe's `embedding` conv: images `(B, H, W, C)` NHWC, kernel `(p, p, C, D)`
    HWIO, bias `(D)`, stride p, VALID padding. The result `(B, h*w, D)` is
    row-major over the `(h, w) = (H/p, W/p)` patch grid (floor division:
    pixels beyond the last whole patch are ignored).
  }];
  let arguments = (ins Vmoe_F32Tensor:$images, Vmoe_F32Tensor:$kernel,
                   Vmoe_F32Tensor:$bias);
  let results = (outs Vmoe_F32Tensor:$result);
  let assemblyFormat = [{
    $images `,` $kernel `,` $bias attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Vmoe_ClassTokenOp : Vmoe_Op<"class_token", [Pure]> {
  let summary = "prepend the learned class token";
  let description = [{
    `(B, N, D), (1, 1, D) -> (B, N + 1, D)`: the `cls` vector at token 0.
  }];
  let arguments = (ins Vmoe_F32Tensor:$input, Vmoe_F32Tensor:$cls);
  let results = (outs Vmoe_F32Tensor:$result);
  let assemblyFormat = [{
    $input `,` $cls attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Vmoe_PositionEmbedOp : Vmoe_Op<"position_embed", [Pure]> {
  let summary = "add the learned position embedding to every token";
  let description = [{
    `(B, T, D) + (1, T, D)`: the table covers the class token too.
  }];
  let arguments = (ins Vmoe_F32Tensor:$input, Vmoe_F32Tensor:$table);
  let results = (outs Vmoe_F32Tensor:$result);
  let assemblyFormat = [{
    $input `,` $table attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Vmoe_LayerNormOp : Vmoe_Op<"layer_norm", [Pure]> {
  let summary = "LayerNorm over the last axis (flax defaults)";
  let description = [{
    `mu = mean(x)`, `var = max(0, mean(x^2) - mu^2)` (flax's fast variance),
    `y = (x - mu) * (rsqrt(var + epsilon) * scale) + bias`; all in float32.
  }];
  let arguments = (ins Vmoe_F32Tensor:$input, Vmoe_F32Tensor:$scale,
                   Vmoe_F32Tensor:$bias,
                   DefaultValuedAttr<F64Attr, "1e-6">:$epsilon);
  let results = (outs Vmoe_F32Tensor:$result);
  let assemblyFormat = [{
    $input `,` $scale `,` $bias attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Vmoe_GeluOp : Vmoe_Op<"gelu", [Pure, SameOperandsAndResultType]> {
  let summary = "GELU, tanh form (jax.nn.gelu with approximate=True)";
  let description = [{
    `0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`, elementwise.
  }];
  let arguments = (ins Vmoe_F32Tensor:$input);
  let results = (outs Vmoe_F32Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

def Vmoe_MlpOp : Vmoe_Op<"mlp", [Pure]> {
  let summary = "dense ViT MLP block: Dense, GELU (tanh), Dense";
  let description = [{
    `gelu_tanh(x @ w1 + b1) @ w2 + b2` over the last axis of `(..., D)`,
    with `w1 : (D, M)`, `b1 : (M)`, `w2 : (M, D)`, `b2 : (D)`.
  }];
  let arguments = (ins Vmoe_F32Tensor:$input, Vmoe_F32Tensor:$w1,
                   Vmoe_F32Tensor:$b1, Vmoe_F32Tensor:$w2, Vmoe_F32Tensor:$b2);
  let results = (outs Vmoe_F32Tensor:$result);
  let assemblyFormat = [{
    $input `,` $w1 `,` $b1 `,` $w2 `,` $b2 attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Vmoe_AttentionOp : Vmoe_Op<"attention", [Pure]> {
  let summary = "multi-head self-attention (flax MultiHeadDotProductAttention)";
  let description = [{
    Input `(B, T, D)`; query/key/value kernels `(D, H, Dh)` with biases
    `(H, Dh)`; output kernel `(H, Dh, D)` with bias `(D)`. q is scaled by
    `1/sqrt(Dh)` before `q k^T`; the softmax over keys is float32; no mask.
  }];
  let arguments = (ins Vmoe_F32Tensor:$input,
                   Vmoe_F32Tensor:$query_kernel, Vmoe_F32Tensor:$query_bias,
                   Vmoe_F32Tensor:$key_kernel, Vmoe_F32Tensor:$key_bias,
                   Vmoe_F32Tensor:$value_kernel, Vmoe_F32Tensor:$value_bias,
                   Vmoe_F32Tensor:$out_kernel, Vmoe_F32Tensor:$out_bias);
  let results = (outs Vmoe_F32Tensor:$result);
  let assemblyFormat = [{
    $input `,` $query_kernel `,` $query_bias `,` $key_kernel `,` $key_bias `,`
    $value_kernel `,` $value_bias `,` $out_kernel `,` $out_bias attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Vmoe_EncoderBlockOp : Vmoe_Op<"encoder_block",
    [SingleBlock, RecursiveMemoryEffects]> {
  let summary = "pre-LN ViT encoder block; its region is the MLP or MoE";
  let description = [{
    ```
    x = x + attention(layer_norm_0(x))
    x = x + region(layer_norm_1(x))
    ```
    The region takes the normalised tokens and yields the MLP sub-layer's
    output: a `vmoe.mlp` in dense blocks, a `vmoe.sparse_moe` in MoE blocks.
  }];
  let arguments = (ins Vmoe_F32Tensor:$input,
                   Vmoe_F32Tensor:$ln0_scale, Vmoe_F32Tensor:$ln0_bias,
                   Vmoe_F32Tensor:$query_kernel, Vmoe_F32Tensor:$query_bias,
                   Vmoe_F32Tensor:$key_kernel, Vmoe_F32Tensor:$key_bias,
                   Vmoe_F32Tensor:$value_kernel, Vmoe_F32Tensor:$value_bias,
                   Vmoe_F32Tensor:$out_kernel, Vmoe_F32Tensor:$out_bias,
                   Vmoe_F32Tensor:$ln1_scale, Vmoe_F32Tensor:$ln1_bias);
  let results = (outs Vmoe_F32Tensor:$result);
  let regions = (region SizedRegion<1>:$mlp);
  let assemblyFormat = [{
    $input `,` $ln0_scale `,` $ln0_bias `,` $query_kernel `,` $query_bias `,`
    $key_kernel `,` $key_bias `,` $value_kernel `,` $value_bias `,`
    $out_kernel `,` $out_bias `,` $ln1_scale `,` $ln1_bias attr-dict `:`
    functional-type(operands, results) $mlp
  }];
  let hasRegionVerifier = 1;
  let hasVerifier = 1;
}

def Vmoe_YieldOp : Vmoe_Op<"yield", [Pure, Terminator,
    HasParent<"EncoderBlockOp">]> {
  let summary = "yields the MLP sub-layer output of an encoder block";
  let arguments = (ins Vmoe_F32Tensor:$value);
  let assemblyFormat = "$value attr-dict `:` type($value)";
}

def Vmoe_ClassifierHeadOp : Vmoe_Op<"classifier_head",
    [Pure, AttrSizedOperandSegments]> {
  let summary = "pooling, optional tanh pre-logits, and the dense head";
  let description = [{
    Pools `(B, T, D)` (`token`: token 0, `gap`: the mean over tokens), then
    optionally `tanh(pooled @ pre_logits_kernel + pre_logits_bias)`, then
    `@ kernel + bias` to `(B, classes)`. Apply the encoder norm first.
  }];
  let arguments = (ins Vmoe_F32Tensor:$input,
                   Optional<Vmoe_F32Tensor>:$pre_logits_kernel,
                   Optional<Vmoe_F32Tensor>:$pre_logits_bias,
                   Vmoe_F32Tensor:$kernel, Vmoe_F32Tensor:$bias,
                   DefaultValuedAttr<Vmoe_PoolingAttr,
                                     "::mlir::vmoe::Pooling::Token">:$pooling);
  let results = (outs Vmoe_F32Tensor:$result);
  let assemblyFormat = [{
    $input (`pre_logits` `(` $pre_logits_kernel^ `,` $pre_logits_bias `)`)?
    `head` `(` $kernel `,` $bias `)` attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}


def Vmoe_SincosPositionEmbedOp : Vmoe_Op<"sincos2d_position_embed", [Pure,
    SameOperandsAndResultType]> {
  let summary = "add vmoe's fixed 2-D sine-cosine position embedding";
  let description = [{
    vmoe's `EncoderMoe.add_position_emb` with `position_emb.name =
    'sincos2d'` (MoCo v3), on `(B, T, D)` tokens of a `height x width` patch
    grid, in float32 as vmoe computes it:
    ```
    omega[i] = 1 / temperature^(i / (D/4 - 1)),  i < D/4
    (y, x)   = the grid's row and column of token n (row-major)
    emb[n]   = concat(sin(x omega), cos(x omega), sin(y omega), cos(y omega))
    ```
    `emb` is added to the last `height * width` tokens; with `T = height *
    width + 1` the first (class) token gets none. D must be a multiple of 4,
    at least 8. The table has no weights: the lowering computes it.
  }];
  let arguments = (ins Vmoe_F32Tensor:$input,
                   ConfinedAttr<I64Attr, [IntPositive]>:$height,
                   ConfinedAttr<I64Attr, [IntPositive]>:$width,
                   DefaultValuedAttr<F64Attr, "10000.0">:$temperature);
  let results = (outs Vmoe_F32Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def Vmoe_MapHeadOp : Vmoe_Op<"map_head", [Pure]> {
  let summary = "vmoe's MapHead: multi-head attention pooling";
  let description = [{
    vmoe's `MapHead` (`classifier = 'map'`), on the encoded tokens `(B, T,
    D)`:
    ```
    x = MultiHeadDotProductAttention(q = probe, kv = input)   # (B, 1, D)
    y = Mlp(LayerNorm(x))                                      # tanh GELU
    result = x + y                                             # (B, 1, D)
    ```
    `probe (1, 1, D)` is the learned query; the attention's kernels are
    `(D, H, Dh)` with biases `(H, Dh)`, its output kernel `(H, Dh, D)` with
    bias `(D)` (flax's; q scaled by `1/sqrt(Dh)`, float32 softmax over the
    T tokens, no mask); LayerNorm eps 1e-6; the MLP `(D, M)`, `(M)`, `(M,
    D)`, `(D)`. The one-token result is what `vmoe.classifier_head`
    (token pooling) reads.
  }];
  let arguments = (ins Vmoe_F32Tensor:$input, Vmoe_F32Tensor:$probe,
                   Vmoe_F32Tensor:$query_kernel, Vmoe_F32Tensor:$query_bias,
                   Vmoe_F32Tensor:$key_kernel, Vmoe_F32Tensor:$key_bias,
                   Vmoe_F32Tensor:$value_kernel, Vmoe_F32Tensor:$value_bias,
                   Vmoe_F32Tensor:$out_kernel, Vmoe_F32Tensor:$out_bias,
                   Vmoe_F32Tensor:$ln_scale, Vmoe_F32Tensor:$ln_bias,
                   Vmoe_F32Tensor:$w1, Vmoe_F32Tensor:$b1,
                   Vmoe_F32Tensor:$w2, Vmoe_F32Tensor:$b2);
  let results = (outs Vmoe_F32Tensor:$result);
  let assemblyFormat = [{
    $input `,` $probe `attention` `(` $query_kernel `,` $query_bias `,`
    $key_kernel `,` $key_bias `,` $value_kernel `,` $value_bias `,`
    $out_kernel `,` $out_bias `)` `norm` `(` $ln_scale `,` $ln_bias `)`
    `mlp` `(` $w1 `,` $b1 `,` $w2 `,` $b2 `)` attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Host level: the schedule of a compiled model, on buffers
//===----------------------------------------------------------------------===//

def Vmoe_LaunchOp : Vmoe_Op<"launch", [AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "run a compiled kernel over a grid of workgroups";
  let description = [{
    One dispatch of the schedule: the kernel function `kernel` runs once per
    workgroup of the `grid` (x, y, z), with the buffers `bindings` and the
    scalar `constants` (run-time knobs such as a layer's capacity, or
    literals). Workgroups of one launch may run in parallel, in any order;
    launches run in program order. The kernel's arguments are the bindings,
    then the constants, then the workgroup id (x, y, z) as `index`.

    `batch_grid = array<i64: U, W>` says that grid x follows the batch of a
    call: for a batch b only ceil(b * U / W) workgroups run along x (U units
    of work per image, W per workgroup; the static x is the value at the
    compiled batch). The kernel bounds its own work by the batch it is
    passed; the shorter grid only skips workgroups with nothing to do.

    Example:
    ```mlir
    vmoe.launch @layer_norm_0 grid [9, 1, 1] (%x, %scale, %bias, %y)
        : memref<34x32xf32>, memref<32xf32>, memref<32xf32>, memref<34x32xf32>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$kernel, DenseI64ArrayAttr:$grid,
                   Variadic<AnyMemRef>:$bindings, Variadic<AnyType>:$constants,
                   OptionalAttr<DenseI64ArrayAttr>:$batch_grid);
  let assemblyFormat = [{
    $kernel `grid` $grid `(` $bindings `)` (`constants` `(` $constants^ `:` type($constants) `)`)?
    attr-dict `:` type($bindings)
  }];
  let hasVerifier = 1;
}

def Vmoe_RoutingStatsOp : Vmoe_Op<"routing_stats"> {
  let summary = "where a MoE layer's routing statistics live after a run";
  let description = [{
    Marks the buffers that the routing kernel of MoE layer `layer` fills:
    `counts` (groups x experts, raw assignment counts including those past
    capacity) and `kept` (tokens, the number of kept assignments of each
    token). The runtime reads them after a run to report what routing did.
  }];
  let arguments = (ins AnyMemRef:$counts, AnyMemRef:$kept,
                   ConfinedAttr<I64Attr, [IntNonNegative]>:$layer);
  let assemblyFormat = [{
    $counts `,` $kept attr-dict `:` type($counts) `,` type($kept)
  }];
}

def Vmoe_AllToAllOp : Vmoe_Op<"all_to_all"> {
  let summary = "exchange a MoE layer's dispatch buffers between expert shards";
  let description = [{
    One step of an expert-sharded schedule (`vmoe.expert_shards` on the host
    function): every rank sends chunk j of `send` to rank j and receives
    rank j's chunk into chunk j of `recv`, for every j (its own chunk too).
    For a call, a chunk is `group_bytes * G + slot_bytes * G * C` bytes,
    where G is MoE layer `layer`'s routing groups in the call and C its
    capacity in the call; both buffers hold `ranks` chunks at the compiled
    batch and capacity. The kernels around it own the chunk's layout.

    Example:
    ```mlir
    vmoe.all_to_all %send, %recv {layer = 0 : i64, ranks = 2 : i64,
        group_bytes = 16 : i64, slot_bytes = 528 : i64}
        : memref<4224xf32>, memref<4224xf32>
    ```
  }];
  let arguments = (ins AnyMemRef:$send, AnyMemRef:$recv,
                   ConfinedAttr<I64Attr, [IntNonNegative]>:$layer,
                   ConfinedAttr<I64Attr, [IntMinValue<2>]>:$ranks,
                   ConfinedAttr<I64Attr, [IntNonNegative]>:$group_bytes,
                   ConfinedAttr<I64Attr, [IntPositive]>:$slot_bytes);
  let assemblyFormat = [{
    $send `,` $recv attr-dict `:` type($send) `,` type($recv)
  }];
  let hasVerifier = 1;
}

#endif // VMOE_DIALECT_VMOEOPS_TD
