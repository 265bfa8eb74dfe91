// A tiny V-MoE: 16x16 RGB images, 4x4 patches (16 tokens + class token),
// hidden 32, 4 heads, one dense and one MoE encoder block (E = 4, k = 2, BPR),
// 10 classes. The weights are named parameters (vmoe.parameter, their paths
// in a Flax checkpoint; the two blocks share their LayerNorm and attention
// weights): vmoe-compile binds them to a weights file (--weights) or to
// random values (--random-weights=SEED). The whole pipeline runs in vmoe-opt:
//   build/bin/vmoe-opt examples/tiny-vmoe.mlir --vmoe-infer-capacity --vmoe-decompose
//   build/bin/vmoe-opt examples/tiny-vmoe.mlir --vmoe-pipeline=compile-to=kernels
func.func @tiny_vmoe(%images: tensor<2x16x16x3xf32>) -> tensor<2x10xf32> {
  %patch_kernel = vmoe.parameter "embedding/kernel" : tensor<4x4x3x32xf32>
  %patch_bias = vmoe.parameter "embedding/bias" : tensor<32xf32>
  %cls = vmoe.parameter "cls" : tensor<1x1x32xf32>
  %pos = vmoe.parameter "Encoder/posembed_input/pos_embedding" : tensor<1x17x32xf32>
  %ln_scale = vmoe.parameter "Encoder/LayerNorm/scale" : tensor<32xf32>
  %ln_bias = vmoe.parameter "Encoder/LayerNorm/bias" : tensor<32xf32>
  %qkv_kernel = vmoe.parameter "Encoder/SelfAttention/kernel" : tensor<32x4x8xf32>
  %qkv_bias = vmoe.parameter "Encoder/SelfAttention/bias" : tensor<4x8xf32>
  %out_kernel = vmoe.parameter "Encoder/SelfAttention/out/kernel" : tensor<4x8x32xf32>
  %out_bias = vmoe.parameter "Encoder/SelfAttention/out/bias" : tensor<32xf32>
  %mlp_w1 = vmoe.parameter "Encoder/encoderblock_0/Mlp/Dense_0/kernel" : tensor<32x64xf32>
  %mlp_b1 = vmoe.parameter "Encoder/encoderblock_0/Mlp/Dense_0/bias" : tensor<64xf32>
  %mlp_w2 = vmoe.parameter "Encoder/encoderblock_0/Mlp/Dense_1/kernel" : tensor<64x32xf32>
  %mlp_b2 = vmoe.parameter "Encoder/encoderblock_0/Mlp/Dense_1/bias" : tensor<32xf32>
  %router = vmoe.parameter "Encoder/encoderblock_1/Moe/Router/dense/kernel" : tensor<32x4xf32>
  %moe_w1 = vmoe.parameter "Encoder/encoderblock_1/Moe/Mlp/Dense_0/kernel" : tensor<4x32x64xf32>
  %moe_b1 = vmoe.parameter "Encoder/encoderblock_1/Moe/Mlp/Dense_0/bias" : tensor<4x64xf32>
  %moe_w2 = vmoe.parameter "Encoder/encoderblock_1/Moe/Mlp/Dense_1/kernel" : tensor<4x64x32xf32>
  %moe_b2 = vmoe.parameter "Encoder/encoderblock_1/Moe/Mlp/Dense_1/bias" : tensor<4x32xf32>
  %head_kernel = vmoe.parameter "head/kernel" : tensor<32x10xf32>
  %head_bias = vmoe.parameter "head/bias" : tensor<10xf32>
  %patches = vmoe.patch_embed %images, %patch_kernel, %patch_bias
      : (tensor<2x16x16x3xf32>, tensor<4x4x3x32xf32>, tensor<32xf32>) -> tensor<2x16x32xf32>
  %tokens = vmoe.class_token %patches, %cls
      : (tensor<2x16x32xf32>, tensor<1x1x32xf32>) -> tensor<2x17x32xf32>
  %x0 = vmoe.position_embed %tokens, %pos
      : (tensor<2x17x32xf32>, tensor<1x17x32xf32>) -> tensor<2x17x32xf32>
  %x1 = vmoe.encoder_block %x0, %ln_scale, %ln_bias, %qkv_kernel, %qkv_bias, %qkv_kernel,
      %qkv_bias, %qkv_kernel, %qkv_bias, %out_kernel, %out_bias, %ln_scale, %ln_bias
      : (tensor<2x17x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
         tensor<32x4x8xf32>, tensor<4x8xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
         tensor<4x8x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<2x17x32xf32> {
  ^bb0(%h: tensor<2x17x32xf32>):
    %m = vmoe.mlp %h, %mlp_w1, %mlp_b1, %mlp_w2, %mlp_b2
        : (tensor<2x17x32xf32>, tensor<32x64xf32>, tensor<64xf32>, tensor<64x32xf32>,
           tensor<32xf32>) -> tensor<2x17x32xf32>
    vmoe.yield %m : tensor<2x17x32xf32>
  }
  %x2 = vmoe.encoder_block %x1, %ln_scale, %ln_bias, %qkv_kernel, %qkv_bias, %qkv_kernel,
      %qkv_bias, %qkv_kernel, %qkv_bias, %out_kernel, %out_bias, %ln_scale, %ln_bias
      : (tensor<2x17x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
         tensor<32x4x8xf32>, tensor<4x8xf32>, tensor<32x4x8xf32>, tensor<4x8xf32>,
         tensor<4x8x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<2x17x32xf32> {
  ^bb0(%h: tensor<2x17x32xf32>):
    // Both images form one group of 34 tokens; capacity factor 1.05 by
    // default, up to 2.0 per call; BPR on by default.
    %m = vmoe.sparse_moe %h, %router, %moe_w1, %moe_b1, %moe_w2, %moe_b2 {
        num_experts = 4, k = 2, group_size = 34, capacity_factor = 1.05 : f64,
        max_capacity_factor = 2.0 : f64, batch_priority = true, bf16_dispatch = true}
        : (tensor<2x17x32xf32>, tensor<32x4xf32>, tensor<4x32x64xf32>, tensor<4x64xf32>,
           tensor<4x64x32xf32>, tensor<4x32xf32>) -> tensor<2x17x32xf32>
    vmoe.yield %m : tensor<2x17x32xf32>
  }
  %norm = vmoe.layer_norm %x2, %ln_scale, %ln_bias
      : (tensor<2x17x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<2x17x32xf32>
  %logits = vmoe.classifier_head %norm head(%head_kernel, %head_bias)
      : (tensor<2x17x32xf32>, tensor<32x10xf32>, tensor<10xf32>) -> tensor<2x10xf32>
  return %logits : tensor<2x10xf32>
}
