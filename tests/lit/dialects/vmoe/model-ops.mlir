// RUN: vmoe-opt %s -split-input-file | vmoe-opt -split-input-file | FileCheck %s
// RUN: vmoe-opt %s -split-input-file --mlir-print-op-generic | vmoe-opt -split-input-file | FileCheck %s

// vmoe's sincos2d position embedding and MAP head survive a print/parse
// round trip, in both forms.

// CHECK-LABEL: func.func @sincos
func.func @sincos(%x: tensor<2x21x32xf32>, %y: tensor<2x20x32xf32>) -> (tensor<2x21x32xf32>, tensor<2x20x32xf32>) {
  // CHECK: vmoe.sincos2d_position_embed %{{.*}} {height = 4 : i64, width = 5 : i64} : tensor<2x21x32xf32>
  %a = vmoe.sincos2d_position_embed %x {height = 4, width = 5} : tensor<2x21x32xf32>
  // CHECK: vmoe.sincos2d_position_embed %{{.*}} {height = 5 : i64, temperature = 1.000000e+02 : f64, width = 4 : i64} : tensor<2x20x32xf32>
  %b = vmoe.sincos2d_position_embed %y {height = 5, width = 4, temperature = 100.0} : tensor<2x20x32xf32>
  return %a, %b : tensor<2x21x32xf32>, tensor<2x20x32xf32>
}

// -----

// CHECK-LABEL: func.func @map_head
func.func @map_head(%x: tensor<2x16x32xf32>, %probe: tensor<1x1x32xf32>,
                    %qk: tensor<32x4x8xf32>, %qb: tensor<4x8xf32>,
                    %ok: tensor<4x8x32xf32>, %d: tensor<32xf32>,
                    %w1: tensor<32x64xf32>, %b1: tensor<64xf32>,
                    %w2: tensor<64x32xf32>) -> tensor<2x1x32xf32> {
  // CHECK: vmoe.map_head %{{.*}}, %{{.*}} attention(%{{.*}}) norm(%{{.*}}, %{{.*}}) mlp(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}})
  %p = vmoe.map_head %x, %probe attention(%qk, %qb, %qk, %qb, %qk, %qb, %ok, %d) norm(%d, %d) mlp(%w1, %b1, %w2, %d)
    : (tensor<2x16x32xf32>, tensor<1x1x32xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
       tensor<32x4x8xf32>, tensor<4x8xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
       tensor<4x8x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32xf32>,
       tensor<32x64xf32>, tensor<64xf32>, tensor<64x32xf32>, tensor<32xf32>) -> tensor<2x1x32xf32>
  return %p : tensor<2x1x32xf32>
}
