// RUN: vmoe-opt %s -split-input-file --vmoe-decompose | FileCheck %s

// Top-k routing with BPR and bf16 dispatch: (2,16,32) tokens in groups of 16,
// so G = 2, S = 16; C = roundup4(ceil(16 * 2 * 1.05 / 8)) = roundup4(5) = 8.
// The capacity factor and the BPR flag stay SSA values (run-time knobs).

// CHECK-LABEL: func.func @top_k
// CHECK-SAME: (%[[X:.*]]: tensor<2x16x32xf32>, %[[R:.*]]: tensor<32x8xf32>, %[[W1:.*]]: tensor<8x32x64xf32>, %[[B1:.*]]: tensor<8x64xf32>, %[[W2:.*]]: tensor<8x64x32xf32>, %[[B2:.*]]: tensor<8x32xf32>)
// CHECK-DAG: %[[G:.*]] = vmoe.router %[[X]], %[[R]] : tensor<2x16x32xf32>, tensor<32x8xf32> -> tensor<2x16x8xf32>
// CHECK-DAG: %[[CF:.*]] = arith.constant 1.050000e+00 : f64
// CHECK-DAG: %[[C:.*]] = vmoe.capacity %[[CF]] {max_capacity_factor = 1.050000e+00 : f64, num_experts = 8 : i64, num_tokens = 32 : i64} : f64
// CHECK-DAG: %[[V:.*]], %[[I:.*]] = vmoe.top_k %[[G]] {k = 2 : i64}
// CHECK-DAG: %[[BPR:.*]] = arith.constant true
// CHECK: %[[S:.*]], %{{.*}} = vmoe.assign_slots %[[I]], %[[V]], %[[C]], %[[BPR]] {max_capacity = 8 : i64, num_experts = 8 : i64} : tensor<2x16x2xi32>, tensor<2x16x2xf32> -> tensor<2x16x2xi32>, tensor<2x8xi32>
// CHECK: %[[D:.*]] = vmoe.dispatch %[[X]], %[[I]], %[[S]] {bf16_round = true} : {{.*}} -> tensor<8x2x8x32xf32>
// CHECK: %[[Y:.*]] = vmoe.expert_mlp %[[D]], %[[W1]], %[[B1]], %[[W2]], %[[B2]]
// CHECK: %[[OUT:.*]] = vmoe.combine %[[Y]], %[[I]], %[[S]], %[[V]] {bf16_round = true} : {{.*}} -> tensor<2x16x32xf32>
// CHECK-NOT: vmoe.sparse_moe
// CHECK: return %[[OUT]]
func.func @top_k(%x: tensor<2x16x32xf32>, %r: tensor<32x8xf32>, %w1: tensor<8x32x64xf32>,
                 %b1: tensor<8x64xf32>, %w2: tensor<8x64x32xf32>, %b2: tensor<8x32xf32>) -> tensor<2x16x32xf32> {
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 8, k = 2, group_size = 16,
      capacity_factor = 1.05 : f64, batch_priority = true, bf16_dispatch = true}
      : (tensor<2x16x32xf32>, tensor<32x8xf32>, tensor<8x32x64xf32>, tensor<8x64xf32>,
         tensor<8x64x32xf32>, tensor<8x32xf32>) -> tensor<2x16x32xf32>
  return %y : tensor<2x16x32xf32>
}

// -----

// Groups that span images: 4 images of 6 tokens in groups of 8 (G = 3). The
// buffers are sized by max_capacity, not by the default capacity factor.

// CHECK-LABEL: func.func @regroup
// CHECK: %[[FLAT:.*]] = tensor.collapse_shape %{{.*}} {{\[\[}}0, 1], [2]] : tensor<4x6x16xf32> into tensor<24x16xf32>
// CHECK: %[[GROUPS:.*]] = tensor.expand_shape %[[FLAT]] {{\[\[}}0, 1], [2]] output_shape [3, 8, 16] : tensor<24x16xf32> into tensor<3x8x16xf32>
// CHECK: vmoe.router %[[GROUPS]]
// CHECK: vmoe.assign_slots {{.*}} {max_capacity = 12 : i64, num_experts = 4 : i64}
// CHECK: vmoe.dispatch {{.*}} -> tensor<4x3x12x16xf32>
// CHECK: %[[C:.*]] = vmoe.combine {{.*}} -> tensor<3x8x16xf32>
// CHECK: %[[F:.*]] = tensor.collapse_shape %[[C]] {{\[\[}}0, 1], [2]] : tensor<3x8x16xf32> into tensor<24x16xf32>
// CHECK: tensor.expand_shape %[[F]] {{\[\[}}0, 1], [2]] output_shape [4, 6, 16] : tensor<24x16xf32> into tensor<4x6x16xf32>
func.func @regroup(%x: tensor<4x6x16xf32>, %r: tensor<16x4xf32>, %w1: tensor<4x16x8xf32>,
                   %b1: tensor<4x8xf32>, %w2: tensor<4x8x16xf32>, %b2: tensor<4x16xf32>) -> tensor<4x6x16xf32> {
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 4, k = 2, group_size = 8,
      capacity_factor = 1.0 : f64, max_capacity_factor = 3.0 : f64, max_capacity = 12}
      : (tensor<4x6x16xf32>, tensor<16x4xf32>, tensor<4x16x8xf32>, tensor<4x8xf32>,
         tensor<4x8x16xf32>, tensor<4x16xf32>) -> tensor<4x6x16xf32>
  return %y : tensor<4x6x16xf32>
}

// -----

// An explicit capacity becomes an index constant.

// CHECK-LABEL: func.func @explicit_capacity
// CHECK: %[[C:.*]] = arith.constant 3 : index
// CHECK: %[[F:.*]] = arith.constant false
// CHECK: vmoe.assign_slots %{{.*}}, %{{.*}}, %[[C]], %[[F]] {max_capacity = 3 : i64, num_experts = 4 : i64}
func.func @explicit_capacity(%x: tensor<8x16xf32>, %r: tensor<16x4xf32>, %w1: tensor<4x16x8xf32>,
                             %b1: tensor<4x8xf32>, %w2: tensor<4x8x16xf32>, %b2: tensor<4x16xf32>) -> tensor<8x16xf32> {
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 4, k = 1, group_size = 8, capacity = 3}
      : (tensor<8x16xf32>, tensor<16x4xf32>, tensor<4x16x8xf32>, tensor<4x8xf32>,
         tensor<4x8x16xf32>, tensor<4x16xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// -----

// Expert choice: C = roundup4(ceil(8 * 2.0 / 4)) = 4 tokens per expert.

// CHECK-LABEL: func.func @expert_choice
// CHECK: %[[CF:.*]] = arith.constant 2.000000e+00 : f64
// CHECK: %[[C:.*]] = vmoe.capacity %[[CF]] {max_capacity_factor = 2.000000e+00 : f64, num_experts = 4 : i64, num_tokens = 8 : i64} : f64
// CHECK: %[[E:.*]], %[[S:.*]], %[[W:.*]] = vmoe.expert_choice %{{.*}}, %[[C]] {max_capacity = 4 : i64} : tensor<1x8x4xf32> -> tensor<1x8x4xi32>, tensor<1x8x4xi32>, tensor<1x8x4xf32>
// CHECK: vmoe.dispatch %{{.*}}, %[[E]], %[[S]] : {{.*}} -> tensor<4x1x4x16xf32>
// CHECK: vmoe.combine %{{.*}}, %[[E]], %[[S]], %[[W]]
func.func @expert_choice(%x: tensor<8x16xf32>, %r: tensor<16x4xf32>, %w1: tensor<4x16x8xf32>,
                         %b1: tensor<4x8xf32>, %w2: tensor<4x8x16xf32>, %b2: tensor<4x16xf32>) -> tensor<8x16xf32> {
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 4, group_size = 8,
      capacity_factor = 2.0 : f64, routing = #vmoe.routing<expert_choice>}
      : (tensor<8x16xf32>, tensor<16x4xf32>, tensor<4x16x8xf32>, tensor<4x8xf32>,
         tensor<4x8x16xf32>, tensor<4x16xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// -----

// The encoder block becomes pre-LN attention and MLP with residual adds; the
// region is inlined on the second LayerNorm's output.

// CHECK-LABEL: func.func @encoder_block
// CHECK-SAME: (%[[X:[^:]*]]: tensor<1x4x8xf32>
// CHECK: %[[N0:.*]] = vmoe.layer_norm %[[X]]
// CHECK: %[[A:.*]] = vmoe.attention %[[N0]]
// CHECK: %[[X1:.*]] = arith.addf %[[X]], %[[A]] : tensor<1x4x8xf32>
// CHECK: %[[N1:.*]] = vmoe.layer_norm %[[X1]]
// CHECK: %[[M:.*]] = vmoe.mlp %[[N1]]
// CHECK: %[[OUT:.*]] = arith.addf %[[X1]], %[[M]] : tensor<1x4x8xf32>
// CHECK-NOT: vmoe.encoder_block
// CHECK: return %[[OUT]]
func.func @encoder_block(%x: tensor<1x4x8xf32>, %s: tensor<8xf32>, %qk: tensor<8x2x4xf32>,
                         %qb: tensor<2x4xf32>, %ok: tensor<2x4x8xf32>, %w1: tensor<8x16xf32>,
                         %b1: tensor<16xf32>, %w2: tensor<16x8xf32>) -> tensor<1x4x8xf32> {
  %b = vmoe.encoder_block %x, %s, %s, %qk, %qb, %qk, %qb, %qk, %qb, %ok, %s, %s, %s
      : (tensor<1x4x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8x2x4xf32>, tensor<2x4xf32>,
         tensor<8x2x4xf32>, tensor<2x4xf32>, tensor<8x2x4xf32>, tensor<2x4xf32>,
         tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32> {
  ^bb0(%h: tensor<1x4x8xf32>):
    %m = vmoe.mlp %h, %w1, %b1, %w2, %s : (tensor<1x4x8xf32>, tensor<8x16xf32>, tensor<16xf32>,
        tensor<16x8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
    vmoe.yield %m : tensor<1x4x8xf32>
  }
  return %b : tensor<1x4x8xf32>
}
