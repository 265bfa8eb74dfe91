// RUN: vmoe-opt %s -split-input-file -verify-diagnostics

func.func @sincos_tokens(%x: tensor<2x22x32xf32>) {
  // expected-error @+1 {{'vmoe.sincos2d_position_embed' op expects height x width = 20 tokens, or one more (a class token), got 22}}
  %a = vmoe.sincos2d_position_embed %x {height = 4, width = 5} : tensor<2x22x32xf32>
  return
}

// -----

func.func @sincos_hidden(%x: tensor<2x20x18xf32>) {
  // expected-error @+1 {{'vmoe.sincos2d_position_embed' op expects a hidden size that is a multiple of 4 and at least 8, got 18}}
  %a = vmoe.sincos2d_position_embed %x {height = 4, width = 5} : tensor<2x20x18xf32>
  return
}

// -----

func.func @sincos_temperature(%x: tensor<2x20x16xf32>) {
  // expected-error @+1 {{'vmoe.sincos2d_position_embed' op expects a positive temperature}}
  %a = vmoe.sincos2d_position_embed %x {height = 4, width = 5, temperature = 0.0} : tensor<2x20x16xf32>
  return
}

// -----

func.func @map_probe(%x: tensor<2x16x32xf32>, %probe: tensor<1x2x32xf32>,
                     %qk: tensor<32x4x8xf32>, %qb: tensor<4x8xf32>,
                     %ok: tensor<4x8x32xf32>, %d: tensor<32xf32>,
                     %w1: tensor<32x64xf32>, %b1: tensor<64xf32>,
                     %w2: tensor<64x32xf32>) {
  // expected-error @+1 {{'vmoe.map_head' op expects probe of shape 1x1x32 (1 x 1 x hidden), got 'tensor<1x2x32xf32>'}}
  %p = vmoe.map_head %x, %probe attention(%qk, %qb, %qk, %qb, %qk, %qb, %ok, %d) norm(%d, %d) mlp(%w1, %b1, %w2, %d)
    : (tensor<2x16x32xf32>, tensor<1x2x32xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
       tensor<32x4x8xf32>, tensor<4x8xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
       tensor<4x8x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32xf32>,
       tensor<32x64xf32>, tensor<64xf32>, tensor<64x32xf32>, tensor<32xf32>) -> tensor<2x1x32xf32>
  return
}

// -----

func.func @map_result(%x: tensor<2x16x32xf32>, %probe: tensor<1x1x32xf32>,
                      %qk: tensor<32x4x8xf32>, %qb: tensor<4x8xf32>,
                      %ok: tensor<4x8x32xf32>, %d: tensor<32xf32>,
                      %w1: tensor<32x64xf32>, %b1: tensor<64xf32>,
                      %w2: tensor<64x32xf32>) {
  // expected-error @+1 {{'vmoe.map_head' op expects result of shape 2x1x32 (batch x 1 x hidden), got 'tensor<2x32xf32>'}}
  %p = vmoe.map_head %x, %probe attention(%qk, %qb, %qk, %qb, %qk, %qb, %ok, %d) norm(%d, %d) mlp(%w1, %b1, %w2, %d)
    : (tensor<2x16x32xf32>, tensor<1x1x32xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
       tensor<32x4x8xf32>, tensor<4x8xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
       tensor<4x8x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32xf32>,
       tensor<32x64xf32>, tensor<64xf32>, tensor<64x32xf32>, tensor<32xf32>) -> tensor<2x32xf32>
  return
}

// -----

func.func @map_mlp(%x: tensor<2x16x32xf32>, %probe: tensor<1x1x32xf32>,
                   %qk: tensor<32x4x8xf32>, %qb: tensor<4x8xf32>,
                   %ok: tensor<4x8x32xf32>, %d: tensor<32xf32>,
                   %w1: tensor<32x64xf32>, %b1: tensor<64xf32>,
                   %w2: tensor<32x64xf32>) {
  // expected-error @+1 {{'vmoe.map_head' op expects mlp w2 of shape 64x32 (mlp x hidden), got 'tensor<32x64xf32>'}}
  %p = vmoe.map_head %x, %probe attention(%qk, %qb, %qk, %qb, %qk, %qb, %ok, %d) norm(%d, %d) mlp(%w1, %b1, %w2, %d)
    : (tensor<2x16x32xf32>, tensor<1x1x32xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
       tensor<32x4x8xf32>, tensor<4x8xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
       tensor<4x8x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32xf32>,
       tensor<32x64xf32>, tensor<64xf32>, tensor<32x64xf32>, tensor<32xf32>) -> tensor<2x1x32xf32>
  return
}
