// A small random V-MoE for the cross-target test: 16x16 RGB images, 4x4
// patches (16 tokens + class token), hidden 32, 4 heads; block 1 is an MoE
// layer with k = 1 over 4 experts, block 2 one with k = 2 over 8 experts.
// Four images form two routing groups of 34 tokens. Both layers compile for
// capacity factors up to 2.0; BPR is a per-call knob.
func.func @moe_k1_k2(
    %images: tensor<4x16x16x3xf32>,
    %patch_kernel: tensor<4x4x3x32xf32>, %patch_bias: tensor<32xf32>,
    %cls: tensor<1x1x32xf32>, %pos: tensor<1x17x32xf32>,
    %ln_scale: tensor<32xf32>, %ln_bias: tensor<32xf32>,
    %qkv_kernel: tensor<32x4x8xf32>, %qkv_bias: tensor<4x8xf32>,
    %out_kernel: tensor<4x8x32xf32>, %out_bias: tensor<32xf32>,
    %router1: tensor<32x4xf32>,
    %e1_w1: tensor<4x32x64xf32>, %e1_b1: tensor<4x64xf32>,
    %e1_w2: tensor<4x64x32xf32>, %e1_b2: tensor<4x32xf32>,
    %router2: tensor<32x8xf32>,
    %e2_w1: tensor<8x32x48xf32>, %e2_b1: tensor<8x48xf32>,
    %e2_w2: tensor<8x48x32xf32>, %e2_b2: tensor<8x32xf32>,
    %head_kernel: tensor<32x10xf32>, %head_bias: tensor<10xf32>) -> tensor<4x10xf32> {
  %patches = vmoe.patch_embed %images, %patch_kernel, %patch_bias
      : (tensor<4x16x16x3xf32>, tensor<4x4x3x32xf32>, tensor<32xf32>) -> tensor<4x16x32xf32>
  %tokens = vmoe.class_token %patches, %cls
      : (tensor<4x16x32xf32>, tensor<1x1x32xf32>) -> tensor<4x17x32xf32>
  %x0 = vmoe.position_embed %tokens, %pos
      : (tensor<4x17x32xf32>, tensor<1x17x32xf32>) -> tensor<4x17x32xf32>
  %x1 = vmoe.encoder_block %x0, %ln_scale, %ln_bias, %qkv_kernel, %qkv_bias, %qkv_kernel,
      %qkv_bias, %qkv_kernel, %qkv_bias, %out_kernel, %out_bias, %ln_scale, %ln_bias
      : (tensor<4x17x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
         tensor<32x4x8xf32>, tensor<4x8xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
         tensor<4x8x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<4x17x32xf32> {
  ^bb0(%h: tensor<4x17x32xf32>):
    %m = vmoe.sparse_moe %h, %router1, %e1_w1, %e1_b1, %e1_w2, %e1_b2 {
        num_experts = 4, k = 1, group_size = 34, capacity_factor = 1.0 : f64,
        max_capacity_factor = 2.0 : f64, batch_priority = true, bf16_dispatch = false}
        : (tensor<4x17x32xf32>, tensor<32x4xf32>, tensor<4x32x64xf32>, tensor<4x64xf32>,
           tensor<4x64x32xf32>, tensor<4x32xf32>) -> tensor<4x17x32xf32>
    vmoe.yield %m : tensor<4x17x32xf32>
  }
  %x2 = vmoe.encoder_block %x1, %ln_scale, %ln_bias, %qkv_kernel, %qkv_bias, %qkv_kernel,
      %qkv_bias, %qkv_kernel, %qkv_bias, %out_kernel, %out_bias, %ln_scale, %ln_bias
      : (tensor<4x17x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
         tensor<32x4x8xf32>, tensor<4x8xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
         tensor<4x8x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<4x17x32xf32> {
  ^bb0(%h: tensor<4x17x32xf32>):
    %m = vmoe.sparse_moe %h, %router2, %e2_w1, %e2_b1, %e2_w2, %e2_b2 {
        num_experts = 8, k = 2, group_size = 34, capacity_factor = 1.0 : f64,
        max_capacity_factor = 2.0 : f64, batch_priority = true, bf16_dispatch = true}
        : (tensor<4x17x32xf32>, tensor<32x8xf32>, tensor<8x32x48xf32>, tensor<8x48xf32>,
           tensor<8x48x32xf32>, tensor<8x32xf32>) -> tensor<4x17x32xf32>
    vmoe.yield %m : tensor<4x17x32xf32>
  }
  %norm = vmoe.layer_norm %x2, %ln_scale, %ln_bias
      : (tensor<4x17x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<4x17x32xf32>
  %logits = vmoe.classifier_head %norm head(%head_kernel, %head_bias)
      : (tensor<4x17x32xf32>, tensor<32x10xf32>, tensor<10xf32>) -> tensor<4x10xf32>
  return %logits : tensor<4x10xf32>
}
