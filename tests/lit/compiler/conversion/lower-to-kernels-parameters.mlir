// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels | FileCheck %s
// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels=expert-bf16-math=true | FileCheck %s --check-prefix=BF16MATH

// Named parameters become uninitialized weight globals that record how
// they are packed (#vmoe.packed_weight); no weight value is in the IR. The
// lowering's tiling (nr = 16 by default) and layouts are those it packs
// constants in.

// CHECK-DAG: memref.global "private" constant @moe_const_0 : memref<16xf32> {alignment = 64 : i64, vmoe.packed = #vmoe.packed_weight<copy, ["ln/scale"], widths = [16], batch = 1, k = 1, nr = 1, k_pairs = false>}
// CHECK-DAG: memref.global "private" constant @moe_router_0 : memref<16x4xf32> {{.*}}#vmoe.packed_weight<copy, ["moe/router"], widths = [64]
// CHECK-DAG: memref.global "private" constant @moe_expert_w1_packed_0 : memref<4x2x16x16xf32> {{.*}}#vmoe.packed_weight<panels, ["moe/w1"], widths = [32], batch = 4, k = 16, nr = 16, k_pairs = false>
// CHECK-DAG: memref.global "private" constant @moe_expert_w1_bias_0 : memref<4x32xf32> {{.*}}#vmoe.packed_weight<bias, ["moe/b1"], widths = [32], batch = 4, k = 1, nr = 16, k_pairs = false>
// CHECK-DAG: memref.global "private" constant @moe_expert_w2_packed_0 : memref<4x1x32x16xf32> {{.*}}#vmoe.packed_weight<panels, ["moe/w2"], widths = [16], batch = 4, k = 32, nr = 16, k_pairs = false>
// CHECK-NOT: dense_resource
// CHECK-LABEL: func.func @moe(
// BF16MATH-DAG: memref.global "private" constant @moe_expert_w1_packed_bf16_0 : memref<4x2x8x32xbf16> {{.*}}#vmoe.packed_weight<panels, ["moe/w1"], widths = [32], batch = 4, k = 16, nr = 16, k_pairs = true>
func.func @moe(%x: tensor<1x8x16xf32>) -> tensor<1x8x16xf32> {
  %scale = vmoe.parameter "ln/scale" : tensor<16xf32>
  %bias = vmoe.parameter "ln/bias" : tensor<16xf32>
  %router = vmoe.parameter "moe/router" : tensor<16x4xf32>
  %w1 = vmoe.parameter "moe/w1" : tensor<4x16x32xf32>
  %b1 = vmoe.parameter "moe/b1" : tensor<4x32xf32>
  %w2 = vmoe.parameter "moe/w2" : tensor<4x32x16xf32>
  %b2 = vmoe.parameter "moe/b2" : tensor<4x16xf32>
  %h = vmoe.layer_norm %x, %scale, %bias
      : (tensor<1x8x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<1x8x16xf32>
  %m = vmoe.sparse_moe %h, %router, %w1, %b1, %w2, %b2 {
      num_experts = 4, k = 2, group_size = 8, capacity_factor = 1.0 : f64,
      batch_priority = false, bf16_dispatch = false}
      : (tensor<1x8x16xf32>, tensor<16x4xf32>, tensor<4x16x32xf32>, tensor<4x32xf32>,
         tensor<4x32x16xf32>, tensor<4x16xf32>) -> tensor<1x8x16xf32>
  return %m : tensor<1x8x16xf32>
}

// -----

// Q, K and V of an attention side by side in one packed global, their
// biases in another.
// CHECK-DAG: memref.global "private" constant @attn_attn_qkv_packed_0 : memref<3x16x16xf32> {{.*}}#vmoe.packed_weight<panels, ["q/kernel", "k/kernel", "v/kernel"], widths = [16, 16, 16], batch = 1, k = 16, nr = 16, k_pairs = false>
// CHECK-DAG: memref.global "private" constant @attn_attn_qkv_bias_0 : memref<48xf32> {{.*}}#vmoe.packed_weight<bias, ["q/bias", "k/bias", "v/bias"], widths = [16, 16, 16], batch = 1, k = 1, nr = 16, k_pairs = false>
// CHECK-DAG: memref.global "private" constant @attn_attn_out_packed_0 : memref<1x16x16xf32> {{.*}}#vmoe.packed_weight<panels, ["out/kernel"], widths = [16], batch = 1, k = 16, nr = 16, k_pairs = false>
// CHECK-LABEL: func.func @attn(
func.func @attn(%x: tensor<1x8x16xf32>) -> tensor<1x8x16xf32> {
  %qk = vmoe.parameter "q/kernel" : tensor<16x2x8xf32>
  %qb = vmoe.parameter "q/bias" : tensor<2x8xf32>
  %kk = vmoe.parameter "k/kernel" : tensor<16x2x8xf32>
  %kb = vmoe.parameter "k/bias" : tensor<2x8xf32>
  %vk = vmoe.parameter "v/kernel" : tensor<16x2x8xf32>
  %vb = vmoe.parameter "v/bias" : tensor<2x8xf32>
  %ok = vmoe.parameter "out/kernel" : tensor<2x8x16xf32>
  %ob = vmoe.parameter "out/bias" : tensor<16xf32>
  %y = vmoe.attention %x, %qk, %qb, %kk, %kb, %vk, %vb, %ok, %ob
      : (tensor<1x8x16xf32>, tensor<16x2x8xf32>, tensor<2x8xf32>, tensor<16x2x8xf32>,
         tensor<2x8xf32>, tensor<16x2x8xf32>, tensor<2x8xf32>, tensor<2x8x16xf32>,
         tensor<16xf32>) -> tensor<1x8x16xf32>
  return %y : tensor<1x8x16xf32>
}
