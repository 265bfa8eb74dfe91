// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels | FileCheck %s

// vmoe.capacity's rule (multiple_of, round) travels to the module, which
// evaluates it per call: here a capacity of 2 at the default factor 0.5
// (round(8 * 2 * 0.5 / 4) = 2, multiple of 1), not roundup4's 4.
// CHECK-LABEL: func.func @capacity_rule
// CHECK-SAME: %[[CAP:[a-z0-9]+]]: index {vmoe.knob = "capacity", vmoe.layer = 0 : i64}, %[[K:[a-z0-9]+]]: index {vmoe.knob = "k", vmoe.layer = 0 : i64}, %[[BPR:[a-z0-9]+]]: index {vmoe.knob = "bpr", vmoe.layer = 0 : i64}
// CHECK-SAME: vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 4, k = 2, group_size = 8, num_groups = 1, tokens_per_image = 8, max_capacity = 4, capacity_factor = 5.000000e-01, max_capacity_factor = 1.000000e+00, batch_priority = false, bf16_dispatch = false, capacity_multiple_of = 1, capacity_round = true>]
// The assignment kernel takes the call's capacity, BPR flag and k.
// CHECK: vmoe.launch @capacity_rule_moe_assign_0 grid [1, 1, 1]({{.*}}) constants(%[[CAP]], %[[BPR]], %[[K]], %{{.*}} : index, index, index, index)
func.func @capacity_rule(%x: tensor<1x8x16xf32>) -> tensor<1x8x16xf32> {
  %r = arith.constant dense<0.1> : tensor<16x4xf32>
  %w1 = arith.constant dense<0.01> : tensor<4x16x32xf32>
  %b1 = arith.constant dense<0.0> : tensor<4x32xf32>
  %w2 = arith.constant dense<0.02> : tensor<4x32x16xf32>
  %b2 = arith.constant dense<0.5> : tensor<4x16xf32>
  %g = vmoe.router %x, %r : tensor<1x8x16xf32>, tensor<16x4xf32> -> tensor<1x8x4xf32>
  %w, %e = vmoe.top_k %g {k = 2} : tensor<1x8x4xf32> -> tensor<1x8x2xf32>, tensor<1x8x2xi32>
  %cf = arith.constant 0.5 : f64
  %c = vmoe.capacity %cf {num_tokens = 16, num_experts = 4, multiple_of = 1, round = true, max_capacity_factor = 1.0 : f64} : f64
  %bpr = arith.constant false
  %slots, %counts = vmoe.assign_slots %e, %w, %c, %bpr {num_experts = 4, max_capacity = 4}
      : tensor<1x8x2xi32>, tensor<1x8x2xf32> -> tensor<1x8x2xi32>, tensor<1x4xi32>
  %buf = vmoe.dispatch %x, %e, %slots : tensor<1x8x16xf32>, tensor<1x8x2xi32>, tensor<1x8x2xi32> -> tensor<4x1x4x16xf32>
  %y = vmoe.expert_mlp %buf, %w1, %b1, %w2, %b2 : tensor<4x1x4x16xf32>, tensor<4x16x32xf32>, tensor<4x32xf32>, tensor<4x32x16xf32>, tensor<4x16xf32> -> tensor<4x1x4x16xf32>
  %o = vmoe.combine %y, %e, %slots, %w : tensor<4x1x4x16xf32>, tensor<1x8x2xi32>, tensor<1x8x2xi32>, tensor<1x8x2xf32> -> tensor<1x8x16xf32>
  return %o : tensor<1x8x16xf32>
}

// -----

// An explicit capacity is fixed: no capacity knob, both capacity factors 0,
// and the buffers hold exactly that many slots (the module's capacity).
// CHECK-LABEL: func.func private @fixed_moe_expert_up_0
// CHECK-SAME: memref<4x1x3x32xf32>
// CHECK-LABEL: func.func @fixed
// CHECK-NOT: vmoe.knob = "capacity"
// CHECK-SAME: vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 4, k = 2, group_size = 8, num_groups = 1, tokens_per_image = 8, max_capacity = 3, capacity_factor = 0.000000e+00, max_capacity_factor = 0.000000e+00, batch_priority = false, bf16_dispatch = false>]
func.func @fixed(%x: tensor<1x8x16xf32>) -> tensor<1x8x16xf32> {
  %r = arith.constant dense<0.1> : tensor<16x4xf32>
  %w1 = arith.constant dense<0.01> : tensor<4x16x32xf32>
  %b1 = arith.constant dense<0.0> : tensor<4x32xf32>
  %w2 = arith.constant dense<0.02> : tensor<4x32x16xf32>
  %b2 = arith.constant dense<0.5> : tensor<4x16xf32>
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 4, k = 2, group_size = 8, capacity = 3}
      : (tensor<1x8x16xf32>, tensor<16x4xf32>, tensor<4x16x32xf32>, tensor<4x32xf32>,
         tensor<4x32x16xf32>, tensor<4x16xf32>) -> tensor<1x8x16xf32>
  return %y : tensor<1x8x16xf32>
}
