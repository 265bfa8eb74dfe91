// RUN: vmoe-opt %s -split-input-file --canonicalize | FileCheck %s

// A constant capacity factor folds vmoe.capacity to vmoe's rule:
// 400 * 2 * 1.1 / 4 = 220.00000000000003 -> ceil 221 -> multiple of 4: 224.

// CHECK-LABEL: func.func @fold_capacity
// CHECK: %[[C:.*]] = arith.constant 224 : index
// CHECK-NOT: vmoe.capacity
// CHECK: return %[[C]]
func.func @fold_capacity() -> index {
  %cf = arith.constant 1.1 : f64
  %c = vmoe.capacity %cf {num_tokens = 800, num_experts = 4} : f64
  return %c : index
}

// -----

// Python's half-to-even round with multiple_of = 1: 10 * 0.25 / 1 = 2.5 -> 2.

// CHECK-LABEL: func.func @fold_round_half_even
// CHECK: %[[C:.*]] = arith.constant 2 : index
// CHECK: return %[[C]]
func.func @fold_round_half_even() -> index {
  %cf = arith.constant 0.25 : f64
  %c = vmoe.capacity %cf {num_tokens = 10, num_experts = 1, multiple_of = 1, round = true} : f64
  return %c : index
}

// -----

// A capacity factor that is a function argument (a run-time knob) stays.

// CHECK-LABEL: func.func @keep_runtime_capacity
// CHECK: vmoe.capacity %{{.*}} {num_experts = 4 : i64, num_tokens = 800 : i64} : f64
func.func @keep_runtime_capacity(%cf: f64) -> index {
  %c = vmoe.capacity %cf {num_tokens = 800, num_experts = 4} : f64
  return %c : index
}

// -----

// With an explicit capacity >= the group size nothing can be dropped, so
// Batch Prioritized Routing only permutes slots: it is turned off.

// CHECK-LABEL: func.func @bpr_without_drops
// CHECK: vmoe.sparse_moe
// CHECK-NOT: batch_priority
// CHECK-SAME: capacity = 8 : i64
func.func @bpr_without_drops(%x: tensor<8x16xf32>, %r: tensor<16x4xf32>, %w1: tensor<4x16x8xf32>,
                             %b1: tensor<4x8xf32>, %w2: tensor<4x8x16xf32>, %b2: tensor<4x16xf32>) -> tensor<8x16xf32> {
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 4, k = 2, group_size = 8,
      capacity = 8, batch_priority = true}
      : (tensor<8x16xf32>, tensor<16x4xf32>, tensor<4x16x8xf32>, tensor<4x8xf32>,
         tensor<4x8x16xf32>, tensor<4x16xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// -----

// Below the group size drops are possible and BPR decides which: it stays.
// A capacity factor is a run-time knob, so BPR stays there too.

// CHECK-LABEL: func.func @bpr_with_drops
// CHECK: batch_priority = true, capacity = 7 : i64
// CHECK: batch_priority = true, capacity_factor = 8.000000e+00 : f64
func.func @bpr_with_drops(%x: tensor<8x16xf32>, %r: tensor<16x4xf32>, %w1: tensor<4x16x8xf32>,
                          %b1: tensor<4x8xf32>, %w2: tensor<4x8x16xf32>, %b2: tensor<4x16xf32>) -> (tensor<8x16xf32>, tensor<8x16xf32>) {
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 4, k = 2, group_size = 8,
      capacity = 7, batch_priority = true}
      : (tensor<8x16xf32>, tensor<16x4xf32>, tensor<4x16x8xf32>, tensor<4x8xf32>,
         tensor<4x8x16xf32>, tensor<4x16xf32>) -> tensor<8x16xf32>
  %z = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 4, k = 2, group_size = 8,
      capacity_factor = 8.0 : f64, batch_priority = true}
      : (tensor<8x16xf32>, tensor<16x4xf32>, tensor<4x16x8xf32>, tensor<4x8xf32>,
         tensor<4x8x16xf32>, tensor<4x16xf32>) -> tensor<8x16xf32>
  return %y, %z : tensor<8x16xf32>, tensor<8x16xf32>
}

// -----

// A capacity with max_capacity_factor is a run-time knob: it does not fold.

// CHECK-LABEL: func.func @keep_knob
// CHECK: vmoe.capacity %{{.*}} {max_capacity_factor = 2.000000e+00 : f64, num_experts = 4 : i64, num_tokens = 800 : i64} : f64
func.func @keep_knob() -> index {
  %cf = arith.constant 1.1 : f64
  %c = vmoe.capacity %cf {num_tokens = 800, num_experts = 4, max_capacity_factor = 2.0 : f64} : f64
  return %c : index
}
