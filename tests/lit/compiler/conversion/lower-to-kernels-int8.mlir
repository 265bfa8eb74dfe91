// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels="expert-int8=true dense-int8=true int8-dot=avx512-vnni vector-width=16" | FileCheck %s --check-prefix=VNNI
// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels="expert-int8=true dense-int8=true int8-dot=avx-vnni" | FileCheck %s --check-prefix=AVXVNNI
// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels="expert-int8=true dense-int8=true int8-dot=avx2" | FileCheck %s --check-prefix=AVX2
// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels="expert-int8=true dense-int8=true int8-dot=sdot vector-width=4 micro-rows=8 micro-vectors=3" | FileCheck %s --check-prefix=SDOT
// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels="dense-int8=true int8-dot=avx2" | FileCheck %s --check-prefix=DENSEONLY

// int8 experts: weights quantized per output channel when the module is
// written (int8 panels in k quads for vpdpbusd and sdot, k pairs for
// vpmaddwd), the tokens quantized per row once per layer, the GELU output
// per row of each filled slot; int32 sums, then
// ((float)acc * scale_x) * scale_w + bias, GELU, the gate in f32.

// VNNI-LABEL: memref.global "private" constant @moe_expert_w1_packed_i8_0 : memref<4x1x4x128xi8>
// VNNI: @moe_expert_w1_bias_0 : memref<4x32xf32>
// VNNI: @moe_expert_w1_scales_0 : memref<4x32xf32>
// VNNI: @moe_expert_w1_col_sums_0 : memref<4x32xi32>
// VNNI-LABEL: func.func private @moe_moe_quantize_input_0(
// VNNI-SAME: memref<8x16xf32>, %{{.*}}: memref<8x16xi8>, %{{.*}}: memref<8xf32>
// VNNI: vector.reduction <maxnumf>, %{{.*}} : vector<16xf32> into f32
// VNNI: arith.divf %{{.*}}, %{{.*}} : vector<16xf32>
// VNNI-NEXT: math.roundeven
// VNNI: arith.fptosi %{{.*}} : vector<16xf32> to vector<16xi32>
// vpdpbusd multiplies unsigned activations: q + 128.
// VNNI-NEXT: arith.constant dense<128> : vector<16xi32>
// VNNI-NEXT: arith.addi
// VNNI-NEXT: arith.trunci %{{.*}} : vector<16xi32> to vector<16xi8>
// VNNI-LABEL: func.func private @moe_moe_expert_up_0(
// VNNI-SAME: memref<1x8x16xi8>
// The accumulators start at -128 x the column sums.
// VNNI: %[[SUMS:.*]] = vector.load %{{.*}} : memref<4x32xi32>, vector<16xi32>
// VNNI-NEXT: %[[M128:.*]] = arith.constant dense<-128> : vector<16xi32>
// VNNI-NEXT: arith.muli %[[SUMS]], %[[M128]] : vector<16xi32>
// VNNI: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%{{.*}}) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// VNNI: %[[F:.*]] = arith.sitofp %{{.*}} : vector<16xi32> to vector<16xf32>
// VNNI-NEXT: %[[X:.*]] = arith.mulf %[[F]], %{{.*}} : vector<16xf32>
// VNNI-NEXT: %[[W:.*]] = arith.mulf %[[X]], %{{.*}} : vector<16xf32>
// VNNI-NEXT: arith.addf %[[W]], %{{.*}} : vector<16xf32>
// VNNI-LABEL: func.func private @moe_moe_quantize_hidden_0(
// VNNI-SAME: memref<4x1x8x32xf32>, %{{.*}}: memref<1x4xi32>, %{{.*}}: memref<4x1x8x32xi8>, %{{.*}}: memref<4x1x8xf32>
// VNNI-LABEL: func.func private @moe_moe_expert_down_0(
// VNNI-SAME: memref<4x1x8x32xi8>
// VNNI: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"

// AVXVNNI-LABEL: func.func private @moe_moe_expert_up_0(
// AVXVNNI: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.256"(%{{.*}}) : (vector<8xi32>, vector<32xi8>, vector<32xi8>) -> vector<8xi32>

// AVX2 multiplies signed int16 k pairs: activations stored as i16, no
// column sums.
// AVX2-LABEL: memref.global "private" constant @moe_expert_w1_packed_i8_0 : memref<4x2x8x32xi8>
// AVX2-NOT: col_sums
// AVX2-LABEL: func.func private @moe_moe_quantize_input_0(
// AVX2-SAME: memref<8x16xi16>
// AVX2: arith.fptosi
// AVX2-NEXT: arith.trunci %{{.*}} : vector<8xi32> to vector<8xi16>
// AVX2-LABEL: func.func private @moe_moe_expert_up_0(
// AVX2: arith.extsi %{{.*}} : vector<16xi8> to vector<16xi16>
// AVX2-NEXT: llvm.call_intrinsic "llvm.x86.avx2.pmadd.wd"(%{{.*}}) : (vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// AVX2-NEXT: arith.addi

// SDOT-LABEL: memref.global "private" constant @moe_expert_w1_packed_i8_0 : memref<4x3x4x48xi8>
// SDOT-NOT: col_sums
// SDOT-LABEL: func.func private @moe_moe_expert_up_0(
// SDOT: llvm.call_intrinsic "llvm.aarch64.neon.sdot.v4i32.v16i8"(%{{.*}}) : (vector<4xi32>, vector<16xi8>, vector<16xi8>) -> vector<4xi32>

// Dense math alone leaves the experts in f32.
// DENSEONLY-LABEL: func.func private @moe_moe_expert_up_0(
// DENSEONLY-NOT: call_intrinsic
// DENSEONLY: vector.fma
func.func @moe(%x: tensor<2x4x16xf32>) -> tensor<2x4x16xf32> {
  %r = arith.constant dense<0.1> : tensor<16x4xf32>
  %w1 = arith.constant dense<0.01> : tensor<4x16x32xf32>
  %b1 = arith.constant dense<0.0> : tensor<4x32xf32>
  %w2 = arith.constant dense<0.02> : tensor<4x32x16xf32>
  %b2 = arith.constant dense<0.5> : tensor<4x16xf32>
  %y = vmoe.sparse_moe %x, %r, %w1, %b1, %w2, %b2 {num_experts = 4, k = 2, group_size = 8,
      capacity_factor = 1.0 : f64, max_capacity_factor = 2.0 : f64, batch_priority = true}
      : (tensor<2x4x16xf32>, tensor<16x4xf32>, tensor<4x16x32xf32>, tensor<4x32xf32>,
         tensor<4x32x16xf32>, tensor<4x16xf32>) -> tensor<2x4x16xf32>
  return %y : tensor<2x4x16xf32>
}

// -----

// The dense MLP: each GEMM's rows quantized by a kernel of their own first.
// VNNI-LABEL: func.func private @mlp_mlp_up_quantize_0(
// VNNI-SAME: memref<8x16xf32>, %{{.*}}: memref<8x16xi8>, %{{.*}}: memref<8xf32>
// VNNI-LABEL: func.func private @mlp_mlp_up_0(
// VNNI-SAME: memref<8x16xi8>, %{{.*}}: memref<2x4x128xi8>, %{{.*}}: memref<64xf32>, %{{.*}}: memref<8xf32>, %{{.*}}: memref<64xf32>, %{{.*}}: memref<64xi32>, %{{.*}}: memref<8x64xf32>
// VNNI: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
// VNNI-LABEL: func.func private @mlp_mlp_down_quantize_0(
// VNNI-LABEL: func.func private @mlp_mlp_down_0(
// VNNI: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
// DENSEONLY-LABEL: func.func private @mlp_mlp_up_quantize_0(
// DENSEONLY-LABEL: func.func private @mlp_mlp_up_0(
// DENSEONLY: llvm.call_intrinsic "llvm.x86.avx2.pmadd.wd"
func.func @mlp(%x: tensor<2x4x16xf32>) -> tensor<2x4x16xf32> {
  %w1 = arith.constant dense<0.01> : tensor<16x64xf32>
  %b1 = arith.constant dense<0.0> : tensor<64xf32>
  %w2 = arith.constant dense<0.02> : tensor<64x16xf32>
  %b2 = arith.constant dense<0.5> : tensor<16xf32>
  %m = vmoe.mlp %x, %w1, %b1, %w2, %b2 : (tensor<2x4x16xf32>, tensor<16x64xf32>, tensor<64xf32>, tensor<64x16xf32>, tensor<16xf32>) -> tensor<2x4x16xf32>
  return %m : tensor<2x4x16xf32>
}
