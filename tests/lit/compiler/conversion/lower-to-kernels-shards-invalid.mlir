// RUN: vmoe-opt %s -split-input-file -verify-diagnostics --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels=expert-shards=3

// The ranks must divide every MoE layer's experts.
func.func @uneven(%x: tensor<2x8x16xf32>) -> tensor<2x8x16xf32> {
  %router = vmoe.parameter "moe/router" : tensor<16x4xf32>
  %w1 = vmoe.parameter "moe/w1" : tensor<4x16x32xf32>
  %b1 = vmoe.parameter "moe/b1" : tensor<4x32xf32>
  %w2 = vmoe.parameter "moe/w2" : tensor<4x32x16xf32>
  %b2 = vmoe.parameter "moe/b2" : tensor<4x16xf32>
  // expected-error @+1 {{'vmoe.expert_mlp' op has 4 experts, which do not split over expert-shards=3 ranks; the number of ranks must divide every MoE layer's number of experts}}
  %m = vmoe.sparse_moe %x, %router, %w1, %b1, %w2, %b2 {
      num_experts = 4, k = 2, group_size = 8, capacity_factor = 1.0 : f64,
      batch_priority = false, bf16_dispatch = false}
      : (tensor<2x8x16xf32>, tensor<16x4xf32>, tensor<4x16x32xf32>, tensor<4x32xf32>,
         tensor<4x32x16xf32>, tensor<4x16xf32>) -> tensor<2x8x16xf32>
  return %m : tensor<2x8x16xf32>
}

// -----

// Each rank streams its experts from named parameters: IR constants are
// refused.
func.func @constants(%x: tensor<2x8x16xf32>) -> tensor<2x8x16xf32> {
  %router = arith.constant dense<0.5> : tensor<16x6xf32>
  %w1 = arith.constant dense<0.25> : tensor<6x16x32xf32>
  %b1 = arith.constant dense<0.0> : tensor<6x32xf32>
  %w2 = arith.constant dense<0.25> : tensor<6x32x16xf32>
  %b2 = arith.constant dense<0.0> : tensor<6x16xf32>
  // expected-error @+1 {{'vmoe.expert_mlp' op has expert weights given as IR constants; an expert-sharded module streams each rank's experts from named parameters (vmoe.parameter: compile from a config with --weights or --random-weights)}}
  %m = vmoe.sparse_moe %x, %router, %w1, %b1, %w2, %b2 {
      num_experts = 6, k = 2, group_size = 8, capacity_factor = 1.0 : f64,
      batch_priority = false, bf16_dispatch = false}
      : (tensor<2x8x16xf32>, tensor<16x6xf32>, tensor<6x16x32xf32>, tensor<6x32xf32>,
         tensor<6x32x16xf32>, tensor<6x16xf32>) -> tensor<2x8x16xf32>
  return %m : tensor<2x8x16xf32>
}
