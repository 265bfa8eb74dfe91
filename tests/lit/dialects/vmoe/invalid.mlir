// RUN: vmoe-opt %s -split-input-file -verify-diagnostics

func.func @router_hidden_mismatch(%x: tensor<2x16x32xf32>, %w: tensor<16x8xf32>) {
  // expected-error @+1 {{'vmoe.router' op expects kernel of shape 32x8 (hidden x experts, hidden from the input), got 'tensor<16x8xf32>'}}
  %g = vmoe.router %x, %w : tensor<2x16x32xf32>, tensor<16x8xf32> -> tensor<2x16x8xf32>
  return
}

// -----

func.func @router_rank(%x: tensor<16x32xf32>, %w: tensor<32x8xf32>) {
  // expected-error @+1 {{'vmoe.router' op expects input of rank 3 (groups x tokens x hidden), got 'tensor<16x32xf32>'}}
  %g = vmoe.router %x, %w : tensor<16x32xf32>, tensor<32x8xf32> -> tensor<16x8xf32>
  return
}

// -----

func.func @top_k_exceeds_experts(%g: tensor<2x16x2xf32>) {
  // expected-error @+1 {{'vmoe.top_k' op k = 3 exceeds the number of experts 2; choose 1 <= k <= 2}}
  %v, %i = vmoe.top_k %g {k = 3} : tensor<2x16x2xf32> -> tensor<2x16x3xf32>, tensor<2x16x3xi32>
  return
}

// -----

func.func @top_k_zero(%g: tensor<2x16x8xf32>) {
  // expected-error @+1 {{'vmoe.top_k' op attribute 'k' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %v, %i = vmoe.top_k %g {k = 0} : tensor<2x16x8xf32> -> tensor<2x16x0xf32>, tensor<2x16x0xi32>
  return
}

// -----

func.func @top_k_result_shape(%g: tensor<2x16x8xf32>) {
  // expected-error @+1 {{'vmoe.top_k' op expects indices of shape 2x16x2 (groups x tokens x k), got 'tensor<2x16x1xi32>'}}
  %v, %i = vmoe.top_k %g {k = 2} : tensor<2x16x8xf32> -> tensor<2x16x2xf32>, tensor<2x16x1xi32>
  return
}

// -----

func.func @capacity_below_one() -> index {
  // With ceil any positive factor gives at least 1; Python's round can give 0.
  %cf = arith.constant 0.1 : f64
  // expected-error @+1 {{'vmoe.capacity' op capacity factor 1.000000e-01 gives a capacity below 1 for 16 routed tokens and 8 experts; raise the capacity factor}}
  %c = vmoe.capacity %cf {num_tokens = 16, num_experts = 8, round = true} : f64
  return %c : index
}

// -----

func.func @capacity_negative() -> index {
  %cf = arith.constant -1.0 : f64
  // expected-error @+1 {{'vmoe.capacity' op capacity factor must be a positive finite number, got -1.000000e+00}}
  %c = vmoe.capacity %cf {num_tokens = 16, num_experts = 8} : f64
  return %c : index
}

// -----

func.func @assign_counts_shape(%i: tensor<2x16x2xi32>, %v: tensor<2x16x2xf32>, %c: index, %b: i1) {
  // expected-error @+1 {{'vmoe.assign_slots' op expects counts of shape 2x8 (groups x num_experts), got 'tensor<2x4xi32>'}}
  %s, %n = vmoe.assign_slots %i, %v, %c, %b {num_experts = 8, max_capacity = 8}
      : tensor<2x16x2xi32>, tensor<2x16x2xf32> -> tensor<2x16x2xi32>, tensor<2x4xi32>
  return
}

// -----

func.func @assign_zero_capacity(%i: tensor<2x16x2xi32>, %v: tensor<2x16x2xf32>, %b: i1) {
  %c = arith.constant 0 : index
  // expected-error @+1 {{'vmoe.assign_slots' op capacity must be at least 1, got 0}}
  %s, %n = vmoe.assign_slots %i, %v, %c, %b {num_experts = 8, max_capacity = 8}
      : tensor<2x16x2xi32>, tensor<2x16x2xf32> -> tensor<2x16x2xi32>, tensor<2x8xi32>
  return
}

// -----

func.func @expert_choice_too_many(%g: tensor<1x8x4xf32>, %c: index) {
  // expected-error @+1 {{'vmoe.expert_choice' op max_capacity = 9 exceeds the group size 8: an expert cannot choose more tokens than a group has}}
  %e, %s, %w = vmoe.expert_choice %g, %c {max_capacity = 9}
      : tensor<1x8x4xf32> -> tensor<1x8x4xi32>, tensor<1x8x4xi32>, tensor<1x8x4xf32>
  return
}

// -----

func.func @dispatch_hidden(%x: tensor<2x16x32xf32>, %i: tensor<2x16x2xi32>) {
  // expected-error @+1 {{'vmoe.dispatch' op expects buffers of shape 8x2x4x32 (experts x groups x capacity x hidden), got 'tensor<8x2x4x16xf32>'}}
  %b = vmoe.dispatch %x, %i, %i : tensor<2x16x32xf32>, tensor<2x16x2xi32>, tensor<2x16x2xi32> -> tensor<8x2x4x16xf32>
  return
}

// -----

func.func @combine_slots(%y: tensor<8x2x4x32xf32>, %i: tensor<2x16x2xi32>, %s: tensor<2x16x1xi32>, %w: tensor<2x16x2xf32>) {
  // expected-error @+1 {{'vmoe.combine' op expects slots of shape 2x16x2 (groups x tokens x choices), got 'tensor<2x16x1xi32>'}}
  %o = vmoe.combine %y, %i, %s, %w : tensor<8x2x4x32xf32>, tensor<2x16x2xi32>, tensor<2x16x1xi32>, tensor<2x16x2xf32> -> tensor<2x16x32xf32>
  return
}

// -----

func.func @expert_mlp_weights(%b: tensor<8x2x4x32xf32>, %w1: tensor<8x32x64xf32>, %b1: tensor<8x64xf32>,
                              %w2: tensor<8x32x64xf32>, %b2: tensor<8x32xf32>) {
  // expected-error @+1 {{'vmoe.expert_mlp' op expects expert w2 of shape 8x64x32 (experts x mlp x hidden), got 'tensor<8x32x64xf32>'}}
  %y = vmoe.expert_mlp %b, %w1, %b1, %w2, %b2 : tensor<8x2x4x32xf32>, tensor<8x32x64xf32>,
      tensor<8x64xf32>, tensor<8x32x64xf32>, tensor<8x32xf32> -> tensor<8x2x4x32xf32>
  return
}

// -----

func.func @moe_k_exceeds_experts(%x: tensor<16x4xf32>, %r: tensor<4x2xf32>, %w1: tensor<2x4x8xf32>,
                                  %b1: tensor<2x8xf32>, %w2: tensor<2x8x4xf32>, %b2: tensor<2x4xf32>) {
  // expected-error @+1 {{'vmoe.sparse_moe' op k = 3 exceeds num_experts = 2; choose 1 <= k <= 2}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 2, k = 3, group_size = 16, capacity_factor = 1.0 : f64}
      : (tensor<16x4xf32>, tensor<4x2xf32>, tensor<2x4x8xf32>, tensor<2x8xf32>, tensor<2x8x4xf32>, tensor<2x4xf32>) -> tensor<16x4xf32>
  return
}

// -----

func.func @moe_group_size(%x: tensor<1x577x4xf32>, %r: tensor<4x2xf32>, %w1: tensor<2x4x8xf32>,
                          %b1: tensor<2x8xf32>, %w2: tensor<2x8x4xf32>, %b2: tensor<2x4xf32>) {
  // vmoe issue #182: the released B/16@384 config at batch 1.
  // expected-error @+1 {{'vmoe.sparse_moe' op group_size = 4616 does not divide the number of tokens 577 (batch x tokens per image); choose a divisor of 577}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 2, k = 1, group_size = 4616, capacity_factor = 1.5 : f64}
      : (tensor<1x577x4xf32>, tensor<4x2xf32>, tensor<2x4x8xf32>, tensor<2x8xf32>, tensor<2x8x4xf32>, tensor<2x4xf32>) -> tensor<1x577x4xf32>
  return
}

// -----

func.func @moe_both_capacities(%x: tensor<16x4xf32>, %r: tensor<4x2xf32>, %w1: tensor<2x4x8xf32>,
                               %b1: tensor<2x8xf32>, %w2: tensor<2x8x4xf32>, %b2: tensor<2x4xf32>) {
  // expected-error @+1 {{'vmoe.sparse_moe' op expects exactly one of capacity_factor and capacity}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 2, group_size = 16, capacity_factor = 1.0 : f64, capacity = 4}
      : (tensor<16x4xf32>, tensor<4x2xf32>, tensor<2x4x8xf32>, tensor<2x8xf32>, tensor<2x8x4xf32>, tensor<2x4xf32>) -> tensor<16x4xf32>
  return
}

// -----

func.func @moe_zero_capacity(%x: tensor<16x4xf32>, %r: tensor<4x2xf32>, %w1: tensor<2x4x8xf32>,
                             %b1: tensor<2x8xf32>, %w2: tensor<2x8x4xf32>, %b2: tensor<2x4xf32>) {
  // expected-error @+1 {{'vmoe.sparse_moe' op capacity must be at least 1, got 0}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 2, group_size = 16, capacity = 0}
      : (tensor<16x4xf32>, tensor<4x2xf32>, tensor<2x4x8xf32>, tensor<2x8xf32>, tensor<2x8x4xf32>, tensor<2x4xf32>) -> tensor<16x4xf32>
  return
}

// -----

func.func @moe_capacity_factor_too_small(%x: tensor<16x4xf32>, %r: tensor<4x8xf32>, %w1: tensor<8x4x8xf32>,
                                         %b1: tensor<8x8xf32>, %w2: tensor<8x8x4xf32>, %b2: tensor<8x4xf32>) {
  // expected-error @+1 {{'vmoe.sparse_moe' op capacity_factor must be a positive finite number, got 0.000000e+00}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 8, k = 2, group_size = 16, capacity_factor = 0.0 : f64}
      : (tensor<16x4xf32>, tensor<4x8xf32>, tensor<8x4x8xf32>, tensor<8x8xf32>, tensor<8x8x4xf32>, tensor<8x4xf32>) -> tensor<16x4xf32>
  return
}

// -----

func.func @moe_max_below_default(%x: tensor<16x4xf32>, %r: tensor<4x2xf32>, %w1: tensor<2x4x8xf32>,
                                 %b1: tensor<2x8xf32>, %w2: tensor<2x8x4xf32>, %b2: tensor<2x4xf32>) {
  // expected-error @+1 {{'vmoe.sparse_moe' op max_capacity_factor = 5.000000e-01 is below capacity_factor = 1.000000e+00}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 2, group_size = 16, capacity_factor = 1.0 : f64, max_capacity_factor = 0.5 : f64}
      : (tensor<16x4xf32>, tensor<4x2xf32>, tensor<2x4x8xf32>, tensor<2x8xf32>, tensor<2x8x4xf32>, tensor<2x4xf32>) -> tensor<16x4xf32>
  return
}

// -----

func.func @moe_max_capacity_too_small(%x: tensor<16x4xf32>, %r: tensor<4x2xf32>, %w1: tensor<2x4x8xf32>,
                                      %b1: tensor<2x8xf32>, %w2: tensor<2x8x4xf32>, %b2: tensor<2x4xf32>) {
  // expected-error @+1 {{'vmoe.sparse_moe' op max_capacity = 4 is below the capacity 8 that the layer needs; rerun vmoe-infer-capacity}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 2, group_size = 16, capacity_factor = 1.0 : f64, max_capacity = 4}
      : (tensor<16x4xf32>, tensor<4x2xf32>, tensor<2x4x8xf32>, tensor<2x8xf32>, tensor<2x8x4xf32>, tensor<2x4xf32>) -> tensor<16x4xf32>
  return
}

// -----

func.func @moe_router_experts(%x: tensor<16x4xf32>, %r: tensor<4x4xf32>, %w1: tensor<2x4x8xf32>,
                              %b1: tensor<2x8xf32>, %w2: tensor<2x8x4xf32>, %b2: tensor<2x4xf32>) {
  // expected-error @+1 {{'vmoe.sparse_moe' op expects router kernel of shape 4x2 (hidden x num_experts), got 'tensor<4x4xf32>'}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 2, group_size = 16, capacity_factor = 1.0 : f64}
      : (tensor<16x4xf32>, tensor<4x4xf32>, tensor<2x4x8xf32>, tensor<2x8xf32>, tensor<2x8x4xf32>, tensor<2x4xf32>) -> tensor<16x4xf32>
  return
}

// -----

func.func @moe_expert_weights(%x: tensor<16x4xf32>, %r: tensor<4x2xf32>, %w1: tensor<3x4x8xf32>,
                              %b1: tensor<2x8xf32>, %w2: tensor<2x8x4xf32>, %b2: tensor<2x4xf32>) {
  // expected-error @+1 {{'vmoe.sparse_moe' op expects expert w1 of shape 2x4x8 (experts x hidden x mlp), got 'tensor<3x4x8xf32>'}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 2, group_size = 16, capacity_factor = 1.0 : f64}
      : (tensor<16x4xf32>, tensor<4x2xf32>, tensor<3x4x8xf32>, tensor<2x8xf32>, tensor<2x8x4xf32>, tensor<2x4xf32>) -> tensor<16x4xf32>
  return
}

// -----

func.func @moe_expert_choice_k(%x: tensor<16x4xf32>, %r: tensor<4x2xf32>, %w1: tensor<2x4x8xf32>,
                               %b1: tensor<2x8xf32>, %w2: tensor<2x8x4xf32>, %b2: tensor<2x4xf32>) {
  // expected-error @+1 {{'vmoe.sparse_moe' op expert-choice routing has no k (each expert picks its tokens); remove k or set k = 1, got k = 2}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 2, k = 2, group_size = 16, capacity_factor = 1.0 : f64, routing = #vmoe.routing<expert_choice>}
      : (tensor<16x4xf32>, tensor<4x2xf32>, tensor<2x4x8xf32>, tensor<2x8xf32>, tensor<2x8x4xf32>, tensor<2x4xf32>) -> tensor<16x4xf32>
  return
}

// -----

func.func @moe_expert_choice_capacity(%x: tensor<16x4xf32>, %r: tensor<4x2xf32>, %w1: tensor<2x4x8xf32>,
                                      %b1: tensor<2x8xf32>, %w2: tensor<2x8x4xf32>, %b2: tensor<2x4xf32>) {
  // expected-error @+1 {{'vmoe.sparse_moe' op expert-choice capacity 20 exceeds the group size 16: an expert cannot choose more tokens than a group has}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 2, group_size = 16, capacity = 20, routing = #vmoe.routing<expert_choice>}
      : (tensor<16x4xf32>, tensor<4x2xf32>, tensor<2x4x8xf32>, tensor<2x8xf32>, tensor<2x8x4xf32>, tensor<2x4xf32>) -> tensor<16x4xf32>
  return
}

// -----

func.func @patch_embed_channels(%i: tensor<1x32x32x3xf32>, %k: tensor<16x16x1x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'vmoe.patch_embed' op expects kernel of shape 16x16x3x8 (patch x patch x channels x hidden (HWIO)), got 'tensor<16x16x1x8xf32>'}}
  %p = vmoe.patch_embed %i, %k, %b : (tensor<1x32x32x3xf32>, tensor<16x16x1x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
  return
}

// -----

func.func @patch_embed_tokens(%i: tensor<1x32x32x3xf32>, %k: tensor<16x16x3x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'vmoe.patch_embed' op expects result of shape 1x4x8 (batch x (height/patch * width/patch) x hidden), got 'tensor<1x5x8xf32>'}}
  %p = vmoe.patch_embed %i, %k, %b : (tensor<1x32x32x3xf32>, tensor<16x16x3x8xf32>, tensor<8xf32>) -> tensor<1x5x8xf32>
  return
}

// -----

func.func @class_token(%x: tensor<2x16x8xf32>, %c: tensor<1x1x8xf32>) {
  // expected-error @+1 {{'vmoe.class_token' op expects result of shape 2x17x8 (batch x (tokens + 1) x hidden), got 'tensor<2x16x8xf32>'}}
  %t = vmoe.class_token %x, %c : (tensor<2x16x8xf32>, tensor<1x1x8xf32>) -> tensor<2x16x8xf32>
  return
}

// -----

func.func @position_table(%x: tensor<2x17x8xf32>, %p: tensor<1x16x8xf32>) {
  // expected-error @+1 {{'vmoe.position_embed' op expects table of shape 1x17x8 (1 x tokens x hidden), got 'tensor<1x16x8xf32>'}}
  %t = vmoe.position_embed %x, %p : (tensor<2x17x8xf32>, tensor<1x16x8xf32>) -> tensor<2x17x8xf32>
  return
}

// -----

func.func @layer_norm_scale(%x: tensor<2x17x8xf32>, %s: tensor<4xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'vmoe.layer_norm' op expects scale of shape 8 (hidden), got 'tensor<4xf32>'}}
  %n = vmoe.layer_norm %x, %s, %b : (tensor<2x17x8xf32>, tensor<4xf32>, tensor<8xf32>) -> tensor<2x17x8xf32>
  return
}

// -----

func.func @mlp_bias(%x: tensor<2x17x8xf32>, %w1: tensor<8x16xf32>, %b1: tensor<8xf32>, %w2: tensor<16x8xf32>, %b2: tensor<8xf32>) {
  // expected-error @+1 {{'vmoe.mlp' op expects b1 of shape 16 (mlp), got 'tensor<8xf32>'}}
  %m = vmoe.mlp %x, %w1, %b1, %w2, %b2 : (tensor<2x17x8xf32>, tensor<8x16xf32>, tensor<8xf32>, tensor<16x8xf32>, tensor<8xf32>) -> tensor<2x17x8xf32>
  return
}

// -----

func.func @attention_heads(%x: tensor<1x4x8xf32>, %qk: tensor<8x3x4xf32>, %qb: tensor<3x4xf32>, %ok: tensor<3x4x8xf32>, %ob: tensor<8xf32>) {
  // expected-error @+1 {{'vmoe.attention' op expects heads x head_dim = hidden, got 3 x 4 != 8}}
  %a = vmoe.attention %x, %qk, %qb, %qk, %qb, %qk, %qb, %ok, %ob
      : (tensor<1x4x8xf32>, tensor<8x3x4xf32>, tensor<3x4xf32>, tensor<8x3x4xf32>, tensor<3x4xf32>,
         tensor<8x3x4xf32>, tensor<3x4xf32>, tensor<3x4x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
  return
}

// -----

func.func @attention_value_kernel(%x: tensor<1x4x8xf32>, %qk: tensor<8x2x4xf32>, %vk: tensor<8x4x2xf32>, %qb: tensor<2x4xf32>, %ok: tensor<2x4x8xf32>, %ob: tensor<8xf32>) {
  // expected-error @+1 {{'vmoe.attention' op expects value kernel of shape 8x2x4 (hidden x heads x head_dim), got 'tensor<8x4x2xf32>'}}
  %a = vmoe.attention %x, %qk, %qb, %qk, %qb, %vk, %qb, %ok, %ob
      : (tensor<1x4x8xf32>, tensor<8x2x4xf32>, tensor<2x4xf32>, tensor<8x2x4xf32>, tensor<2x4xf32>,
         tensor<8x4x2xf32>, tensor<2x4xf32>, tensor<2x4x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
  return
}

// -----

func.func @encoder_block_yield(%x: tensor<1x4x8xf32>, %s: tensor<8xf32>, %qk: tensor<8x2x4xf32>,
                               %qb: tensor<2x4xf32>, %ok: tensor<2x4x8xf32>, %bad: tensor<1x4x4xf32>) {
  // expected-error @+1 {{'vmoe.encoder_block' op expects the mlp region to yield 'tensor<1x4x8xf32>', got 'tensor<1x4x4xf32>'}}
  %b = vmoe.encoder_block %x, %s, %s, %qk, %qb, %qk, %qb, %qk, %qb, %ok, %s, %s, %s
      : (tensor<1x4x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8x2x4xf32>, tensor<2x4xf32>,
         tensor<8x2x4xf32>, tensor<2x4xf32>, tensor<8x2x4xf32>, tensor<2x4xf32>,
         tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32> {
  ^bb0(%h: tensor<1x4x8xf32>):
    vmoe.yield %bad : tensor<1x4x4xf32>
  }
  return
}

// -----

func.func @head_features(%x: tensor<2x17x8xf32>, %pk: tensor<8x16xf32>, %pb: tensor<16xf32>, %k: tensor<8x10xf32>, %b: tensor<10xf32>) {
  // expected-error @+1 {{'vmoe.classifier_head' op expects head kernel of shape 16x10 (features x classes), got 'tensor<8x10xf32>'}}
  %l = vmoe.classifier_head %x pre_logits(%pk, %pb) head(%k, %b)
      : (tensor<2x17x8xf32>, tensor<8x16xf32>, tensor<16xf32>, tensor<8x10xf32>, tensor<10xf32>) -> tensor<2x10xf32>
  return
}

// -----

func.func @capacity_knob_maximum() -> index {
  %cf = arith.constant 1.5 : f64
  // expected-error @+1 {{'vmoe.capacity' op max_capacity_factor 1.000000e+00 is below the default capacity factor 1.500000e+00}}
  %c = vmoe.capacity %cf {num_tokens = 16, num_experts = 8, max_capacity_factor = 1.0 : f64} : f64
  return %c : index
}

// -----

func.func @moe_rank(%x: tensor<4xf32>, %r: tensor<4x2xf32>, %w1: tensor<2x4x8xf32>,
                    %b1: tensor<2x8xf32>, %w2: tensor<2x8x4xf32>, %b2: tensor<2x4xf32>) {
  // expected-error @+1 {{'vmoe.sparse_moe' op expects input of rank >= 2 (... x tokens x hidden), got 'tensor<4xf32>'}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 2, group_size = 1, capacity = 1}
      : (tensor<4xf32>, tensor<4x2xf32>, tensor<2x4x8xf32>, tensor<2x8xf32>, tensor<2x8x4xf32>, tensor<2x4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @moe_result_type(%x: tensor<16x4xf32>, %r: tensor<4x2xf32>, %w1: tensor<2x4x8xf32>,
                           %b1: tensor<2x8xf32>, %w2: tensor<2x8x4xf32>, %b2: tensor<2x4xf32>) {
  // expected-error @+1 {{'vmoe.sparse_moe' op expects the result type to equal the input type 'tensor<16x4xf32>', got 'tensor<8x4xf32>'}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 2, group_size = 16, capacity = 4}
      : (tensor<16x4xf32>, tensor<4x2xf32>, tensor<2x4x8xf32>, tensor<2x8xf32>, tensor<2x8x4xf32>, tensor<2x4xf32>) -> tensor<8x4xf32>
  return
}

// -----

func.func @moe_max_cf_with_capacity(%x: tensor<16x4xf32>, %r: tensor<4x2xf32>, %w1: tensor<2x4x8xf32>,
                                    %b1: tensor<2x8xf32>, %w2: tensor<2x8x4xf32>, %b2: tensor<2x4xf32>) {
  // expected-error @+1 {{'vmoe.sparse_moe' op max_capacity_factor needs capacity_factor; an explicit capacity is fixed at compile time}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 2, group_size = 16, capacity = 4, max_capacity_factor = 2.0 : f64}
      : (tensor<16x4xf32>, tensor<4x2xf32>, tensor<2x4x8xf32>, tensor<2x8xf32>, tensor<2x8x4xf32>, tensor<2x4xf32>) -> tensor<16x4xf32>
  return
}

// -----

func.func @expert_mlp_rank(%b: tensor<8xf32>, %w1: tensor<8x32x64xf32>, %b1: tensor<8x64xf32>,
                           %w2: tensor<8x64x32xf32>, %b2: tensor<8x32xf32>) {
  // expected-error @+1 {{'vmoe.expert_mlp' op expects buffers of rank >= 2 (experts x ... x hidden), got 'tensor<8xf32>'}}
  %y = vmoe.expert_mlp %b, %w1, %b1, %w2, %b2 : tensor<8xf32>, tensor<8x32x64xf32>,
      tensor<8x64xf32>, tensor<8x64x32xf32>, tensor<8x32xf32> -> tensor<8xf32>
  return
}

// -----

func.func @router_result(%x: tensor<2x16x32xf32>, %w: tensor<32x8xf32>) {
  // expected-error @+1 {{'vmoe.router' op expects gates of shape 2x16x8 (groups x tokens x experts), got 'tensor<2x16x4xf32>'}}
  %g = vmoe.router %x, %w : tensor<2x16x32xf32>, tensor<32x8xf32> -> tensor<2x16x4xf32>
  return
}

// -----

func.func @assign_k_exceeds(%i: tensor<2x16x3xi32>, %v: tensor<2x16x3xf32>, %c: index, %b: i1) {
  // expected-error @+1 {{'vmoe.assign_slots' op k = 3 choices per token exceed num_experts = 2}}
  %s, %n = vmoe.assign_slots %i, %v, %c, %b {num_experts = 2, max_capacity = 8}
      : tensor<2x16x3xi32>, tensor<2x16x3xf32> -> tensor<2x16x3xi32>, tensor<2x2xi32>
  return
}

// -----

func.func @expert_choice_zero_capacity(%g: tensor<1x8x4xf32>) {
  %c = arith.constant 0 : index
  // expected-error @+1 {{'vmoe.expert_choice' op capacity must be at least 1, got 0}}
  %e, %s, %w = vmoe.expert_choice %g, %c {max_capacity = 4}
      : tensor<1x8x4xf32> -> tensor<1x8x4xi32>, tensor<1x8x4xi32>, tensor<1x8x4xf32>
  return
}

// -----

func.func @layer_norm_epsilon(%x: tensor<2x8xf32>, %s: tensor<8xf32>) {
  // expected-error @+1 {{'vmoe.layer_norm' op epsilon must be >= 0, got -1.000000e+00}}
  %n = vmoe.layer_norm %x, %s, %s {epsilon = -1.0 : f64} : (tensor<2x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @patch_too_big(%i: tensor<1x8x8x3xf32>, %k: tensor<16x16x3x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{'vmoe.patch_embed' op patch 16x16 does not fit in the image 8x8}}
  %p = vmoe.patch_embed %i, %k, %b : (tensor<1x8x8x3xf32>, tensor<16x16x3x8xf32>, tensor<8xf32>) -> tensor<1x0x8xf32>
  return
}

// -----

func.func @encoder_block_arg(%x: tensor<1x4x8xf32>, %s: tensor<8xf32>, %qk: tensor<8x2x4xf32>,
                             %qb: tensor<2x4xf32>, %ok: tensor<2x4x8xf32>) {
  // expected-error @+1 {{'vmoe.encoder_block' op expects the mlp region to take one argument of type 'tensor<1x4x8xf32>' (the normalised tokens)}}
  %b = vmoe.encoder_block %x, %s, %s, %qk, %qb, %qk, %qb, %qk, %qb, %ok, %s, %s, %s
      : (tensor<1x4x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8x2x4xf32>, tensor<2x4xf32>,
         tensor<8x2x4xf32>, tensor<2x4xf32>, tensor<8x2x4xf32>, tensor<2x4xf32>,
         tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32> {
  ^bb0(%h: tensor<1x4x4xf32>):
    vmoe.yield %x : tensor<1x4x8xf32>
  }
  return
}

// -----

func.func @head_batch(%x: tensor<2x17x8xf32>, %k: tensor<8x10xf32>, %b: tensor<10xf32>) {
  // expected-error @+1 {{'vmoe.classifier_head' op expects result of shape 2x10 (batch x classes), got 'tensor<3x10xf32>'}}
  %l = vmoe.classifier_head %x head(%k, %b) : (tensor<2x17x8xf32>, tensor<8x10xf32>, tensor<10xf32>) -> tensor<3x10xf32>
  return
}
