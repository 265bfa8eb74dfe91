// RUN: vmoe-opt %s | vmoe-opt | FileCheck %s
// RUN: vmoe-opt %s --mlir-print-op-generic | vmoe-opt | FileCheck %s

// Every vmoe op survives a print/parse round trip, in both the custom and
// the generic form.

// CHECK-LABEL: func.func @routing
func.func @routing(%x: tensor<2x16x32xf32>, %w: tensor<32x8xf32>, %cf: f64, %bpr: i1)
    -> (tensor<8x2x8x32xf32>, tensor<2x8xi32>) {
  // CHECK: %[[G:.*]] = vmoe.router %{{.*}}, %{{.*}} : tensor<2x16x32xf32>, tensor<32x8xf32> -> tensor<2x16x8xf32>
  %gates = vmoe.router %x, %w : tensor<2x16x32xf32>, tensor<32x8xf32> -> tensor<2x16x8xf32>
  // CHECK: %[[V:.*]], %[[I:.*]] = vmoe.top_k %[[G]] {k = 2 : i64} : tensor<2x16x8xf32> -> tensor<2x16x2xf32>, tensor<2x16x2xi32>
  %v, %i = vmoe.top_k %gates {k = 2} : tensor<2x16x8xf32> -> tensor<2x16x2xf32>, tensor<2x16x2xi32>
  // CHECK: %[[C:.*]] = vmoe.capacity %{{.*}} {num_experts = 8 : i64, num_tokens = 32 : i64} : f64
  %c = vmoe.capacity %cf {num_tokens = 32, num_experts = 8} : f64
  // CHECK: %[[S:.*]], %[[N:.*]] = vmoe.assign_slots %[[I]], %[[V]], %[[C]], %{{.*}} {max_capacity = 8 : i64, num_experts = 8 : i64}
  %slots, %counts = vmoe.assign_slots %i, %v, %c, %bpr {num_experts = 8, max_capacity = 8}
      : tensor<2x16x2xi32>, tensor<2x16x2xf32> -> tensor<2x16x2xi32>, tensor<2x8xi32>
  // CHECK: vmoe.dispatch %{{.*}}, %[[I]], %[[S]] {bf16_round = true} : tensor<2x16x32xf32>, tensor<2x16x2xi32>, tensor<2x16x2xi32> -> tensor<8x2x8x32xf32>
  %buf = vmoe.dispatch %x, %i, %slots {bf16_round = true}
      : tensor<2x16x32xf32>, tensor<2x16x2xi32>, tensor<2x16x2xi32> -> tensor<8x2x8x32xf32>
  return %buf, %counts : tensor<8x2x8x32xf32>, tensor<2x8xi32>
}

// CHECK-LABEL: func.func @experts
func.func @experts(%buf: tensor<8x2x8x32xf32>, %w1: tensor<8x32x64xf32>, %b1: tensor<8x64xf32>,
                   %w2: tensor<8x64x32xf32>, %b2: tensor<8x32xf32>, %i: tensor<2x16x2xi32>,
                   %s: tensor<2x16x2xi32>, %v: tensor<2x16x2xf32>) -> tensor<2x16x32xf32> {
  // CHECK: vmoe.expert_mlp
  %y = vmoe.expert_mlp %buf, %w1, %b1, %w2, %b2 : tensor<8x2x8x32xf32>, tensor<8x32x64xf32>,
      tensor<8x64xf32>, tensor<8x64x32xf32>, tensor<8x32xf32> -> tensor<8x2x8x32xf32>
  // CHECK: vmoe.combine
  %out = vmoe.combine %y, %i, %s, %v : tensor<8x2x8x32xf32>, tensor<2x16x2xi32>,
      tensor<2x16x2xi32>, tensor<2x16x2xf32> -> tensor<2x16x32xf32>
  return %out : tensor<2x16x32xf32>
}

// CHECK-LABEL: func.func @expert_choice
func.func @expert_choice(%gates: tensor<2x16x8xf32>, %c: index)
    -> (tensor<2x16x8xi32>, tensor<2x16x8xi32>, tensor<2x16x8xf32>) {
  // CHECK: vmoe.expert_choice %{{.*}}, %{{.*}} {max_capacity = 4 : i64}
  %e, %s, %w = vmoe.expert_choice %gates, %c {max_capacity = 4}
      : tensor<2x16x8xf32> -> tensor<2x16x8xi32>, tensor<2x16x8xi32>, tensor<2x16x8xf32>
  return %e, %s, %w : tensor<2x16x8xi32>, tensor<2x16x8xi32>, tensor<2x16x8xf32>
}

// CHECK-LABEL: func.func @sparse_moe
func.func @sparse_moe(%x: tensor<2x16x32xf32>, %r: tensor<32x8xf32>, %w1: tensor<8x32x64xf32>,
                      %b1: tensor<8x64xf32>, %w2: tensor<8x64x32xf32>, %b2: tensor<8x32xf32>)
    -> tensor<2x16x32xf32> {
  // CHECK: vmoe.sparse_moe {{.*}} {batch_priority = true, bf16_dispatch = true, capacity_factor = 1.050000e+00 : f64, group_size = 16 : i64, k = 2 : i64, max_capacity_factor = 2.000000e+00 : f64, num_experts = 8 : i64}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 8, k = 2, group_size = 16,
      capacity_factor = 1.05 : f64, max_capacity_factor = 2.0 : f64, batch_priority = true,
      bf16_dispatch = true}
      : (tensor<2x16x32xf32>, tensor<32x8xf32>, tensor<8x32x64xf32>, tensor<8x64xf32>,
         tensor<8x64x32xf32>, tensor<8x32xf32>) -> tensor<2x16x32xf32>
  // CHECK: vmoe.sparse_moe {{.*}} {capacity = 4 : i64, group_size = 32 : i64, num_experts = 8 : i64, routing = #vmoe.routing<expert_choice>}
  %z = vmoe.sparse_moe %y, %r, %w1, %b1, %w2, %b2 {num_experts = 8, group_size = 32,
      capacity = 4, routing = #vmoe.routing<expert_choice>}
      : (tensor<2x16x32xf32>, tensor<32x8xf32>, tensor<8x32x64xf32>, tensor<8x64xf32>,
         tensor<8x64x32xf32>, tensor<8x32xf32>) -> tensor<2x16x32xf32>
  return %z : tensor<2x16x32xf32>
}

// CHECK-LABEL: func.func @vit
func.func @vit(%img: tensor<2x28x28x3xf32>, %k: tensor<7x7x3x32xf32>, %kb: tensor<32xf32>,
               %cls: tensor<1x1x32xf32>, %pos: tensor<1x17x32xf32>, %s: tensor<32xf32>,
               %qk: tensor<32x4x8xf32>, %qb: tensor<4x8xf32>, %ok: tensor<4x8x32xf32>,
               %w1: tensor<32x64xf32>, %b1: tensor<64xf32>, %w2: tensor<64x32xf32>,
               %hk: tensor<32x10xf32>, %hb: tensor<10xf32>, %pk: tensor<32x16xf32>,
               %pb: tensor<16xf32>, %hk2: tensor<16x10xf32>) -> (tensor<2x10xf32>, tensor<2x10xf32>) {
  // CHECK: vmoe.patch_embed
  %p = vmoe.patch_embed %img, %k, %kb : (tensor<2x28x28x3xf32>, tensor<7x7x3x32xf32>, tensor<32xf32>) -> tensor<2x16x32xf32>
  // CHECK: vmoe.class_token
  %t = vmoe.class_token %p, %cls : (tensor<2x16x32xf32>, tensor<1x1x32xf32>) -> tensor<2x17x32xf32>
  // CHECK: vmoe.position_embed
  %e = vmoe.position_embed %t, %pos : (tensor<2x17x32xf32>, tensor<1x17x32xf32>) -> tensor<2x17x32xf32>
  // CHECK: vmoe.encoder_block
  // CHECK: ^bb0(%[[ARG:.*]]: tensor<2x17x32xf32>):
  // CHECK:   %[[M:.*]] = vmoe.mlp %[[ARG]]
  // CHECK:   vmoe.yield %[[M]] : tensor<2x17x32xf32>
  %b = vmoe.encoder_block %e, %s, %s, %qk, %qb, %qk, %qb, %qk, %qb, %ok, %s, %s, %s
      : (tensor<2x17x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
         tensor<32x4x8xf32>, tensor<4x8xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
         tensor<4x8x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<2x17x32xf32> {
  ^bb0(%h: tensor<2x17x32xf32>):
    %m = vmoe.mlp %h, %w1, %b1, %w2, %s : (tensor<2x17x32xf32>, tensor<32x64xf32>, tensor<64xf32>,
        tensor<64x32xf32>, tensor<32xf32>) -> tensor<2x17x32xf32>
    vmoe.yield %m : tensor<2x17x32xf32>
  }
  // CHECK: vmoe.layer_norm {{.*}} {epsilon = 1.000000e-05 : f64}
  %n = vmoe.layer_norm %b, %s, %s {epsilon = 1.0e-5 : f64} : (tensor<2x17x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<2x17x32xf32>
  // CHECK: vmoe.gelu
  %g = vmoe.gelu %n : tensor<2x17x32xf32>
  // CHECK: vmoe.attention
  %a = vmoe.attention %g, %qk, %qb, %qk, %qb, %qk, %qb, %ok, %s
      : (tensor<2x17x32xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
         tensor<32x4x8xf32>, tensor<4x8xf32>, tensor<4x8x32xf32>, tensor<32xf32>) -> tensor<2x17x32xf32>
  // CHECK: vmoe.classifier_head %{{.*}} head(%{{.*}}, %{{.*}}) {pooling = #vmoe.pooling<gap>}
  %l = vmoe.classifier_head %a head(%hk, %hb) {pooling = #vmoe.pooling<gap>}
      : (tensor<2x17x32xf32>, tensor<32x10xf32>, tensor<10xf32>) -> tensor<2x10xf32>
  // CHECK: vmoe.classifier_head %{{.*}} pre_logits(%{{.*}}, %{{.*}}) head(%{{.*}}, %{{.*}})
  %l2 = vmoe.classifier_head %a pre_logits(%pk, %pb) head(%hk2, %hb)
      : (tensor<2x17x32xf32>, tensor<32x16xf32>, tensor<16xf32>, tensor<16x10xf32>, tensor<10xf32>) -> tensor<2x10xf32>
  return %l, %l2 : tensor<2x10xf32>, tensor<2x10xf32>
}
