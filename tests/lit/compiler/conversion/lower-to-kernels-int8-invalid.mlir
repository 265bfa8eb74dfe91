// RUN: vmoe-opt %s --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels="expert-int8=true int8-dot=avx2" -verify-diagnostics
// RUN: not vmoe-opt %s --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels=expert-int8=true 2>&1 | FileCheck %s --check-prefix=NODOT
// RUN: not vmoe-opt %s --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels="dense-int8=true int8-dot=avx512-vnni" 2>&1 | FileCheck %s --check-prefix=WIDTH
// RUN: not vmoe-opt %s --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels="expert-int8=true int8-dot=neon" 2>&1 | FileCheck %s --check-prefix=NAME
// RUN: not vmoe-opt %s --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels="expert-int8=true expert-bf16-math=true int8-dot=avx2" 2>&1 | FileCheck %s --check-prefix=BF16

// int8 GEMMs need the target's integer dot product, at its vector width,
// and exclude bf16 experts.
// NODOT: expert-int8 and dense-int8 need int8-dot (the CPU target's integer dot product: avx2, avx-vnni, avx512-vnni or sdot)
// WIDTH: int8-dot=avx512-vnni needs vector-width=16, got 8
// NAME: int8-dot takes avx2, avx-vnni, avx512-vnni or sdot, got 'neon'
// BF16: expert-int8 and bf16 expert weights or math exclude each other; pick one

// int8 multiplies groups of 4 input values: a hidden size of 18 cannot.
func.func @odd_hidden(%x: tensor<8x18xf32>) -> tensor<8x18xf32> {
  %r = arith.constant dense<0.1> : tensor<18x4xf32>
  %w1 = arith.constant dense<0.01> : tensor<4x18x32xf32>
  %b1 = arith.constant dense<0.0> : tensor<4x32xf32>
  %w2 = arith.constant dense<0.02> : tensor<4x32x18xf32>
  %b2 = arith.constant dense<0.5> : tensor<4x18xf32>
  // expected-error @+1 {{int8 GEMMs multiply in groups of 4 input values and need an input size that is a multiple of 4, got 18; compile this model with f32 math for these layers}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 4, k = 2, group_size = 8, capacity = 4}
      : (tensor<8x18xf32>, tensor<18x4xf32>, tensor<4x18x32xf32>, tensor<4x32xf32>,
         tensor<4x32x18xf32>, tensor<4x18xf32>) -> tensor<8x18xf32>
  return %y : tensor<8x18xf32>
}
