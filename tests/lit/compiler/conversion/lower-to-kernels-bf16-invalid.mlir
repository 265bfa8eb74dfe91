// RUN: vmoe-opt %s --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels=expert-bf16-math=true -verify-diagnostics
// RUN: not vmoe-opt %s --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels="native-bf16-dot=true vector-width=16" 2>&1 | FileCheck %s --check-prefix=NOMATH
// RUN: not vmoe-opt %s --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels="expert-bf16-math=true native-bf16-dot=true" 2>&1 | FileCheck %s --check-prefix=NOMATH

// vdpbf16ps needs the bf16 layouts and 512-bit vectors.
// NOMATH: native-bf16-dot (AVX512-BF16) needs expert-bf16-math and vector-width=16

// bf16 expert math multiplies in k pairs: an odd hidden size cannot.
func.func @odd_hidden(%x: tensor<8x15xf32>) -> tensor<8x15xf32> {
  %r = arith.constant dense<0.1> : tensor<15x4xf32>
  %w1 = arith.constant dense<0.01> : tensor<4x15x32xf32>
  %b1 = arith.constant dense<0.0> : tensor<4x32xf32>
  %w2 = arith.constant dense<0.02> : tensor<4x32x15xf32>
  %b2 = arith.constant dense<0.5> : tensor<4x15xf32>
  // expected-error @+1 {{bf16 expert math multiplies in k pairs and needs an even hidden size and MLP size, got 15 and 32; compile this model with f32 expert math}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 4, k = 2, group_size = 8, capacity = 4}
      : (tensor<8x15xf32>, tensor<15x4xf32>, tensor<4x15x32xf32>, tensor<4x32xf32>,
         tensor<4x32x15xf32>, tensor<4x15xf32>) -> tensor<8x15xf32>
  return %y : tensor<8x15xf32>
}
