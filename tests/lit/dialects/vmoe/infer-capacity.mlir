// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity | FileCheck %s
// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity=max-capacity-factor=4.0 | FileCheck %s --check-prefix=MAX
// RUN: not vmoe-opt %s -split-input-file --vmoe-infer-capacity=max-capacity-factor=0.5 -o /dev/null 2>&1 | FileCheck %s --check-prefix=LOW

// V-MoE-B/16 at 224 px with E = 32, K = 2: S = 8 * 197 = 1576 and
// 1576 * 2 * 1.05 / 32 = 103.425, so C = roundup4(104) = 104 (section 6 of
// vmoe-reference.md); with max-capacity-factor 4.0: 394.0 -> 396.

// CHECK-LABEL: func.func @b16
// CHECK: vmoe.sparse_moe {{.*}}max_capacity = 104 : i64
// MAX-LABEL: func.func @b16
// MAX: max_capacity = 396 : i64, max_capacity_factor = 4.000000e+00 : f64
// LOW: error: 'vmoe.sparse_moe' op max-capacity-factor 5.000000e-01 is below the layer's capacity_factor 1.050000e+00
func.func @b16(%x: tensor<8x197x4xf32>, %r: tensor<4x32xf32>, %w1: tensor<32x4x8xf32>,
               %b1: tensor<32x8xf32>, %w2: tensor<32x8x4xf32>, %b2: tensor<32x4xf32>) -> tensor<8x197x4xf32> {
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 32, k = 2, group_size = 1576,
      capacity_factor = 1.05 : f64}
      : (tensor<8x197x4xf32>, tensor<4x32xf32>, tensor<32x4x8xf32>, tensor<32x8xf32>,
         tensor<32x8x4xf32>, tensor<32x4xf32>) -> tensor<8x197x4xf32>
  return %y : tensor<8x197x4xf32>
}

// -----

// The double pitfall: 400 * 2 * 1.1 / 4 = 220.00000000000003 in IEEE double,
// so vmoe's ceil gives 221 and the multiple-of-4 rule 224, not 220.

// CHECK-LABEL: func.func @double_rounding
// CHECK: max_capacity = 224 : i64
func.func @double_rounding(%x: tensor<400x4xf32>, %r: tensor<4x4xf32>, %w1: tensor<4x4x8xf32>,
                           %b1: tensor<4x8xf32>, %w2: tensor<4x8x4xf32>, %b2: tensor<4x4xf32>) -> tensor<400x4xf32> {
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 4, k = 2, group_size = 400,
      capacity_factor = 1.1 : f64}
      : (tensor<400x4xf32>, tensor<4x4xf32>, tensor<4x4x8xf32>, tensor<4x8xf32>,
         tensor<4x8x4xf32>, tensor<4x4xf32>) -> tensor<400x4xf32>
  return %y : tensor<400x4xf32>
}

// -----

// S/32 at 224 px, E = 8, K = 2, S = 400: cf 1.05 -> 108; the layer's own
// max_capacity_factor 1.5 -> 152 (section 6 table).

// CHECK-LABEL: func.func @s32
// CHECK: capacity_factor = 1.050000e+00 : f64, {{.*}}max_capacity = 152 : i64, max_capacity_factor = 1.500000e+00 : f64
// MAX-LABEL: func.func @s32
// MAX: max_capacity = 400 : i64, max_capacity_factor = 4.000000e+00 : f64
func.func @s32(%x: tensor<8x50x4xf32>, %r: tensor<4x8xf32>, %w1: tensor<8x4x8xf32>,
               %b1: tensor<8x8xf32>, %w2: tensor<8x8x4xf32>, %b2: tensor<8x4xf32>) -> tensor<8x50x4xf32> {
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 8, k = 2, group_size = 400,
      capacity_factor = 1.05 : f64, max_capacity_factor = 1.5 : f64}
      : (tensor<8x50x4xf32>, tensor<4x8xf32>, tensor<8x4x8xf32>, tensor<8x8xf32>,
         tensor<8x8x4xf32>, tensor<8x4xf32>) -> tensor<8x50x4xf32>
  return %y : tensor<8x50x4xf32>
}

// -----

// An explicit capacity is the buffer size; the option does not touch it.

// CHECK-LABEL: func.func @explicit
// CHECK: capacity = 5 : i64, {{.*}}max_capacity = 5 : i64
// MAX-LABEL: func.func @explicit
// MAX-NOT: max_capacity_factor
// MAX: max_capacity = 5 : i64
func.func @explicit(%x: tensor<8x4xf32>, %r: tensor<4x2xf32>, %w1: tensor<2x4x8xf32>,
                    %b1: tensor<2x8xf32>, %w2: tensor<2x8x4xf32>, %b2: tensor<2x4xf32>) -> tensor<8x4xf32> {
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 2, group_size = 8, capacity = 5}
      : (tensor<8x4xf32>, tensor<4x2xf32>, tensor<2x4x8xf32>, tensor<2x8xf32>,
         tensor<2x8x4xf32>, tensor<2x4xf32>) -> tensor<8x4xf32>
  return %y : tensor<8x4xf32>
}
