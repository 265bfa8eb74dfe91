// RUN: vmoe-opt %s -split-input-file --vmoe-lower-to-kernels -verify-diagnostics

// Weights must be compile-time constants: they are packed for the kernels.
func.func @runtime_weights(%x: tensor<2x5x8xf32>, %k: tensor<8x10xf32>) -> tensor<2x10xf32> {
  %b = arith.constant dense<0.1> : tensor<10xf32>
  // expected-error @+1 {{needs compile-time weights for this operand}}
  %l = vmoe.classifier_head %x head(%k, %b) : (tensor<2x5x8xf32>, tensor<8x10xf32>, tensor<10xf32>) -> tensor<2x10xf32>
  return %l : tensor<2x10xf32>
}

// -----

// Composites must be decomposed first.
func.func @composite(%x: tensor<8x16xf32>) -> tensor<8x16xf32> {
  %r = arith.constant dense<0.1> : tensor<16x4xf32>
  %w1 = arith.constant dense<0.01> : tensor<4x16x32xf32>
  %b1 = arith.constant dense<0.0> : tensor<4x32xf32>
  %w2 = arith.constant dense<0.02> : tensor<4x32x16xf32>
  %b2 = arith.constant dense<0.5> : tensor<4x16xf32>
  // expected-error @+1 {{'vmoe.sparse_moe' op is not supported by the CPU target here; composite ops must be decomposed first (vmoe-decompose)}}
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 4, k = 2, group_size = 8, capacity = 4}
      : (tensor<8x16xf32>, tensor<16x4xf32>, tensor<4x16x32xf32>, tensor<4x32xf32>,
         tensor<4x32x16xf32>, tensor<4x16xf32>) -> tensor<8x16xf32>
  return %y : tensor<8x16xf32>
}

// -----

// A compiled module recomputes the capacity per call from S * k routed
// tokens: a vmoe.capacity over other counts cannot become a knob.
func.func @capacity_of_other_tokens(%x: tensor<1x8x16xf32>) -> tensor<1x8x16xf32> {
  %r = arith.constant dense<0.1> : tensor<16x4xf32>
  %w1 = arith.constant dense<0.01> : tensor<4x16x32xf32>
  %b1 = arith.constant dense<0.0> : tensor<4x32xf32>
  %w2 = arith.constant dense<0.02> : tensor<4x32x16xf32>
  %b2 = arith.constant dense<0.5> : tensor<4x16xf32>
  %g = vmoe.router %x, %r : tensor<1x8x16xf32>, tensor<16x4xf32> -> tensor<1x8x4xf32>
  %w, %e = vmoe.top_k %g {k = 2} : tensor<1x8x4xf32> -> tensor<1x8x2xf32>, tensor<1x8x2xi32>
  %cf = arith.constant 1.0 : f64
  // expected-error @+1 {{'vmoe.capacity' op computes the capacity of 8 routed tokens and 4 experts, but its layer routes 8 tokens x k = 2 to 4 experts; a compiled module derives the capacity from those (set num_tokens = 16, num_experts = 4, or pass a constant capacity)}}
  %c = vmoe.capacity %cf {num_tokens = 8, num_experts = 4, max_capacity_factor = 1.0 : f64} : f64
  %bpr = arith.constant false
  %slots, %counts = vmoe.assign_slots %e, %w, %c, %bpr {num_experts = 4, max_capacity = 4}
      : tensor<1x8x2xi32>, tensor<1x8x2xf32> -> tensor<1x8x2xi32>, tensor<1x4xi32>
  %buf = vmoe.dispatch %x, %e, %slots : tensor<1x8x16xf32>, tensor<1x8x2xi32>, tensor<1x8x2xi32> -> tensor<4x1x4x16xf32>
  %y = vmoe.expert_mlp %buf, %w1, %b1, %w2, %b2 : tensor<4x1x4x16xf32>, tensor<4x16x32xf32>, tensor<4x32xf32>, tensor<4x32x16xf32>, tensor<4x16xf32> -> tensor<4x1x4x16xf32>
  %o = vmoe.combine %y, %e, %slots, %w : tensor<4x1x4x16xf32>, tensor<1x8x2xi32>, tensor<1x8x2xi32>, tensor<1x8x2xf32> -> tensor<1x8x16xf32>
  return %o : tensor<1x8x16xf32>
}

// -----

// The operands packed into one weight (Q, K and V side by side) are all
// named parameters or all IR constants: a mix cannot be streamed.
func.func @mixed(%x: tensor<1x8x16xf32>) -> tensor<1x8x16xf32> {
  %qk = vmoe.parameter "q/kernel" : tensor<16x2x8xf32>
  %kk = arith.constant dense<0.5> : tensor<16x2x8xf32>
  %b = vmoe.parameter "bias" : tensor<2x8xf32>
  %ok = vmoe.parameter "out/kernel" : tensor<2x8x16xf32>
  %ob = vmoe.parameter "out/bias" : tensor<16xf32>
  // expected-error @+1 {{'vmoe.attention' op packs named parameters and IR constants into one weight; give all of its operands as vmoe.parameter or all as constants}}
  %y = vmoe.attention %x, %qk, %b, %kk, %b, %qk, %b, %ok, %ob
      : (tensor<1x8x16xf32>, tensor<16x2x8xf32>, tensor<2x8xf32>, tensor<16x2x8xf32>,
         tensor<2x8xf32>, tensor<16x2x8xf32>, tensor<2x8xf32>, tensor<2x8x16xf32>,
         tensor<16xf32>) -> tensor<1x8x16xf32>
  return %y : tensor<1x8x16xf32>
}
