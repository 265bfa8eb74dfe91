// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels | FileCheck %s
// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels=vector-width=16 | FileCheck %s --check-prefix=AVX512
// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels=expert-weights-bf16=true | FileCheck %s --check-prefix=BF16
// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels=expert-bf16-math=true | FileCheck %s --check-prefix=BF16MATH
// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels="expert-bf16-math=true native-bf16-dot=true vector-width=16" | FileCheck %s --check-prefix=BF16DOT

// A MoE layer after LayerNorm with a residual add (fused into the combine).
// The capacity (a function
// of the per-call capacity factor), k and the BPR flag become host arguments;
// the layer's routing metadata is an attribute of the host function.

// The gates kernel also writes the bf16-rounded copy of x that expert-up
// reads (the layer dispatches in bf16).
// CHECK-LABEL: func.func private @moe_moe_gates_0
// CHECK-SAME: %[[XR:[a-z0-9]+]]: memref<1x8x16xf32>, %{{[a-z0-9]+}}: index
// CHECK-SAME: attributes {vmoe.kernel}
// CHECK: arith.cmpf uno
// CHECK: memref.store %{{.*}}, %[[XR]]
// CHECK: math.exp
// CHECK-LABEL: func.func private @moe_moe_assign_0
// CHECK: scf.while
// Expert-up reads each slot's token row in place: the token is looked up
// once per row of a register block, outside the k loop; no scratch copy.
// CHECK-LABEL: func.func private @moe_moe_expert_up_0
// CHECK-SAME: (%[[X:[a-z0-9]+]]: memref<1x8x16xf32>, %[[SLOT_TOKEN:[a-z0-9]+]]: memref<4x1x8xi32>
// CHECK-SAME: attributes {vmoe.kernel} {
// CHECK: %[[T:.*]] = memref.load %[[SLOT_TOKEN]]
// CHECK-NEXT: %[[I:.*]] = arith.index_cast %[[T]] : i32 to index
// The token is clamped into the group, so that a forged module cannot make
// the gather read outside its input.
// CHECK: %[[TOK:.*]] = arith.minui %[[I]], %{{.*}} : index
// CHECK: scf.for {{.*}} iter_args
// CHECK: memref.load %[[X]][%{{.*}}, %[[TOK]], %{{.*}}] : memref<1x8x16xf32>
// CHECK: vector.fma {{.*}} : vector<8xf32>
// CHECK: math.tanh
// CHECK-LABEL: func.func private @moe_moe_expert_down_0
// The weights (K = 32) are fetched 16 k steps ahead in a loop that stops 16
// steps early, so the prefetch index is unclamped; the last 16 steps run on
// the same accumulators without it.
// CHECK: %[[ACC:.*]]:12 = scf.for %[[K:.*]] = %{{.*}} to %[[SPLIT:.*]] step
// CHECK: %[[AHEAD:.*]] = arith.addi %[[K]], %{{.*}} : index
// CHECK-NEXT: arith.constant 0 : index
// CHECK-NEXT: memref.prefetch %{{.*}}[%{{.*}}, %{{.*}}, %[[AHEAD]], %{{.*}}], read, locality<3>, data : memref<4x1x32x16xf32>
// CHECK: vector.fma {{.*}} : vector<8xf32>
// CHECK: scf.for %{{.*}} = %[[SPLIT]] to %{{.*}} step %{{.*}} iter_args(%{{.*}} = %[[ACC]]#0,
// CHECK-NOT: memref.prefetch
// CHECK: vector.fma {{.*}} : vector<8xf32>
// The last rows, when no more than half a block, run in a 3-row block.
// CHECK: scf.if
// CHECK: %{{.*}}:6 = scf.for
// CHECK: memref.prefetch
// CHECK: func.func @moe
// CHECK-SAME: (%[[IN:[a-z0-9]+]]: memref<2x4x16xf32> {vmoe.input = 0 : i64}, %[[OUT:[a-z0-9]+]]: memref<2x4x16xf32> {vmoe.output = 0 : i64}, %[[BATCH:[a-z0-9]+]]: index {vmoe.knob = "batch"}, %[[CAP:[a-z0-9]+]]: index {vmoe.knob = "capacity", vmoe.layer = 0 : i64}, %[[K:[a-z0-9]+]]: index {vmoe.knob = "k", vmoe.layer = 0 : i64}, %[[BPR:[a-z0-9]+]]: index {vmoe.knob = "bpr", vmoe.layer = 0 : i64})
// A group of 8 tokens spans both 4-token images; a call of one image routes
// it as a partial group.
// CHECK-SAME: vmoe.batch_multiple = 1 : i64
// CHECK-SAME: vmoe.entry
// CHECK-SAME: vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 4, k = 2, group_size = 8, num_groups = 1, tokens_per_image = 4, max_capacity = 8, capacity_factor = 1.000000e+00, max_capacity_factor = 2.000000e+00, batch_priority = true, bf16_dispatch = true>]
// CHECK: vmoe.launch @moe_layer_norm_0
// CHECK: vmoe.launch @moe_moe_gates_0 grid [1, 1, 1](%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[ROUNDED:.*]]) constants(%[[BATCH]] : index) {batch_grid = array<i64: 4, 32>}
// CHECK: vmoe.launch @moe_moe_assign_0 grid [1, 1, 1]({{.*}}) constants(%[[CAP]], %[[BPR]], %[[K]], %[[BATCH]] : index, index, index, index) {batch_grid = array<i64: 4, 8>}
// The expert kernels keep their grid and skip the groups past the batch.
// CHECK: vmoe.launch @moe_moe_expert_up_0 grid [2, {{[0-9]+}}, 4](%[[ROUNDED]], {{.*}}) constants(%[[CAP]], %[[BATCH]] : index, index) :
// CHECK: vmoe.launch @moe_moe_expert_down_0 grid [2, {{[0-9]+}}, 4]({{.*}}) constants(%[[CAP]], %[[BATCH]] : index, index) :
// The residual add is fused into the combine, which writes the output.
// CHECK: %[[FLAT_OUT:.*]] = memref.collapse_shape %[[OUT]]
// CHECK: %[[OUT_GROUPS:.*]] = memref.expand_shape %[[FLAT_OUT]]
// CHECK: %[[FLAT_IN:.*]] = memref.collapse_shape %[[IN]]
// CHECK: %[[IN_GROUPS:.*]] = memref.expand_shape %[[FLAT_IN]]
// CHECK: vmoe.launch @moe_moe_combine_residual_0 grid [1, 1, 1](%{{.*}}, %{{.*}}, %{{.*}}, %[[OUT_GROUPS]], %[[IN_GROUPS]])
// CHECK: vmoe.routing_stats %{{.*}}, %{{.*}} {layer = 0 : i64} : memref<1x4xi32>, memref<8xi32>
// CHECK-NOT: vmoe.launch
// CHECK: return

// AVX512-LABEL: func.func private @moe_moe_expert_up_0
// AVX512: vector.fma {{.*}} : vector<16xf32>
// A 512-bit block's k step reads two 64-byte lines of B (2 x 16 f32): both
// are prefetched.
// AVX512-LABEL: func.func private @moe_moe_expert_down_0
// AVX512: memref.prefetch %{{.*}}[%{{.*}}, %{{.*}}, %[[AHEAD:[a-z0-9_]+]], %c0{{(_[0-9]+)?}}], read, locality<3>, data : memref<4x1x32x32xf32>
// AVX512-NEXT: %[[L1:.*]] = arith.constant 16 : index
// AVX512-NEXT: memref.prefetch %{{.*}}[%{{.*}}, %{{.*}}, %[[AHEAD]], %[[L1]]], read, locality<3>, data : memref<4x1x32x32xf32>

// bf16 expert math: the weights are packed in k pairs (D = 16: 8 pairs of
// 2 x 16 columns; F = 32: 16 pairs); the gathered inputs and the GELU output
// are rounded to bf16 values (kept in f32 without AVX512-BF16). Each k pair
// adds the odd product, then the even one, as vdpbf16ps does.
// BF16MATH-LABEL: func.func private @moe_moe_gates_0
// BF16MATH-SAME: memref<1x8x16xf32>, %{{[a-z0-9]+}}: index
// BF16MATH: arith.cmpf uno
// BF16MATH-DAG: memref.global "private" constant @moe_expert_w1_packed_bf16_0 : memref<4x2x8x32xbf16>
// BF16MATH-DAG: memref.global "private" constant @moe_expert_w2_packed_bf16_0 : memref<4x1x16x32xbf16>
// BF16MATH-LABEL: func.func private @moe_moe_expert_up_0
// BF16MATH-SAME: (%{{.*}}: memref<1x8x16xf32>
// BF16MATH: arith.andi {{.*}} : vector<8xi32>
// BF16MATH: math.tanh
// BF16MATH: arith.cmpf uno
// BF16MATH-LABEL: func.func private @moe_moe_expert_down_0
// BF16MATH: %[[B:.*]] = vector.load %{{.*}} : memref<4x1x16x32xbf16>, vector<16xbf16>
// BF16MATH-NEXT: %[[BI:.*]] = vector.bitcast %[[B]] : vector<16xbf16> to vector<8xi32>
// BF16MATH-NEXT: arith.constant dense<16>
// BF16MATH-NEXT: %[[BEI:.*]] = arith.shli %[[BI]]
// BF16MATH-NEXT: arith.constant dense<-65536>
// BF16MATH-NEXT: %[[BOI:.*]] = arith.andi %[[BI]]
// BF16MATH-NEXT: %[[BE:.*]] = arith.bitcast %[[BEI]] : vector<8xi32> to vector<8xf32>
// BF16MATH-NEXT: %[[BO:.*]] = arith.bitcast %[[BOI]] : vector<8xi32> to vector<8xf32>
// BF16MATH: %[[K:.*]] = arith.muli
// BF16MATH-NEXT: %[[K1:.*]] = arith.addi %[[K]]
// BF16MATH-NEXT: %[[A0:.*]] = memref.load %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %[[K]]] : memref<4x1x8x32xf32>
// BF16MATH-NEXT: %[[AE:.*]] = vector.broadcast %[[A0]]
// BF16MATH-NEXT: %[[A1:.*]] = memref.load %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}, %[[K1]]] : memref<4x1x8x32xf32>
// BF16MATH-NEXT: %[[AO:.*]] = vector.broadcast %[[A1]]
// BF16MATH-NEXT: %[[ODD:.*]] = vector.fma %[[AO]], %[[BO]], %{{.*}} : vector<8xf32>
// BF16MATH-NEXT: vector.fma %[[AE]], %[[BE]], %[[ODD]] : vector<8xf32>

// With AVX512-BF16 the same pairs go to vdpbf16ps (x86vector.avx512.dot):
// the inputs (written by the gates kernel) and the hidden activation are
// stored as bf16 bits, a row's pair is broadcast to every 32-bit lane.
// BF16DOT-LABEL: func.func private @moe_moe_gates_0
// BF16DOT-SAME: memref<1x8x16xi16>, %{{[a-z0-9]+}}: index
// BF16DOT: arith.trunci {{.*}} : i32 to i16
// BF16DOT-LABEL: func.func private @moe_moe_expert_up_0
// BF16DOT-SAME: (%{{.*}}: memref<1x8x16xi16>
// BF16DOT-SAME: %{{.*}}: memref<4x1x8x32xi16>
// BF16DOT-SAME: attributes {vmoe.kernel} {
// BF16DOT: arith.trunci {{.*}} : vector<16xi32> to vector<16xi16>
// BF16DOT-LABEL: func.func private @moe_moe_expert_down_0(
// BF16DOT: %[[B:.*]] = vector.load %{{.*}} : memref<4x1x16x64xbf16>, vector<32xbf16>
// BF16DOT: %[[A2:.*]] = vector.load %{{.*}} : memref<4x1x8x32xi16>, vector<2xi16>
// BF16DOT-NEXT: %[[AW:.*]] = vector.bitcast %[[A2]] : vector<2xi16> to vector<1xi32>
// BF16DOT-NEXT: %[[AS:.*]] = vector.extract %[[AW]][0]
// BF16DOT-NEXT: %[[AV:.*]] = vector.broadcast %[[AS]] : i32 to vector<16xi32>
// BF16DOT-NEXT: %[[A:.*]] = vector.bitcast %[[AV]] : vector<16xi32> to vector<32xbf16>
// BF16DOT-NEXT: x86vector.avx512.dot %{{.*}}, %[[A]], %[[B]] : vector<32xbf16> -> vector<16xf32>
// BF16DOT-NOT: vector.fma
// BF16DOT: func.func

// bf16 expert weights: stored at half the size and widened to f32 in the
// k loop as they are loaded (zero-extend, shift into the high half), straight
// into the FMAs: no f32 copy of a panel, so the expert kernels need no
// scratch.
// BF16-DAG: memref.global "private" constant @moe_expert_w1_packed_bf16_0 : memref<4x2x16x16xbf16>
// BF16-DAG: memref.global "private" constant @moe_expert_w2_packed_bf16_0 : memref<4x1x32x16xbf16>
// BF16-LABEL: func.func private @moe_moe_expert_up_0
// BF16-SAME: memref<4x2x16x16xbf16>
// BF16-SAME: attributes {vmoe.kernel} {
// BF16: scf.for {{.*}} iter_args
// BF16: %[[HALF:.*]] = vector.load {{.*}} : memref<4x2x16x16xbf16>, vector<8xbf16>
// BF16-NEXT: %[[BITS:.*]] = arith.bitcast %[[HALF]] : vector<8xbf16> to vector<8xi16>
// BF16-NEXT: %[[WIDE:.*]] = arith.extui %[[BITS]] : vector<8xi16> to vector<8xi32>
// BF16-NEXT: %[[SIXTEEN:.*]] = arith.constant dense<16> : vector<8xi32>
// BF16-NEXT: %[[SHIFTED:.*]] = arith.shli %[[WIDE]], %[[SIXTEEN]] : vector<8xi32>
// BF16-NEXT: %[[B0:.*]] = arith.bitcast %[[SHIFTED]] : vector<8xi32> to vector<8xf32>
// BF16: vector.fma %{{.*}}, %[[B0]], %{{.*}} : vector<8xf32>
// BF16-LABEL: func.func private @moe_moe_expert_down_0(
// BF16-SAME: memref<4x1x32x16xbf16>
// BF16-SAME: attributes {vmoe.kernel} {
func.func @moe(%x: tensor<2x4x16xf32>) -> tensor<2x4x16xf32> {
  %r = arith.constant dense<0.1> : tensor<16x4xf32>
  %w1 = arith.constant dense<0.01> : tensor<4x16x32xf32>
  %b1 = arith.constant dense<0.0> : tensor<4x32xf32>
  %w2 = arith.constant dense<0.02> : tensor<4x32x16xf32>
  %b2 = arith.constant dense<0.5> : tensor<4x16xf32>
  %s = arith.constant dense<1.0> : tensor<16xf32>
  %z = arith.constant dense<0.0> : tensor<16xf32>
  %n = vmoe.layer_norm %x, %s, %z : (tensor<2x4x16xf32>, tensor<16xf32>, tensor<16xf32>) -> tensor<2x4x16xf32>
  %y = vmoe.sparse_moe %n, %r, %w1, %b1, %w2, %b2 {num_experts = 4, k = 2, group_size = 8,
      capacity_factor = 1.0 : f64, max_capacity_factor = 2.0 : f64, batch_priority = true, bf16_dispatch = true}
      : (tensor<2x4x16xf32>, tensor<16x4xf32>, tensor<4x16x32xf32>, tensor<4x32xf32>,
         tensor<4x32x16xf32>, tensor<4x16xf32>) -> tensor<2x4x16xf32>
  %o = arith.addf %x, %y : tensor<2x4x16xf32>
  return %o : tensor<2x4x16xf32>
}

// -----

// Dense parts: weights are packed at compile time into panels of nr = 16
// columns (the head's 10 classes are padded to one panel), the result is
// written straight into the output buffer.

// Every kernel follows the call's batch (any batch from 1 to 2): grids
// shrink with it (batch_grid) and the kernels bound their rows by it.
// CHECK-LABEL: func.func @vit_head
// CHECK-SAME: %[[OUT:[a-z0-9]+]]: memref<2x10xf32> {vmoe.output = 0 : i64}, %[[BATCH:[a-z0-9]+]]: index {vmoe.knob = "batch"}
// CHECK-SAME: vmoe.batch_multiple = 1 : i64
// CHECK: vmoe.launch @vit_head_pool_token_0 grid [2, 1, 1](%{{.*}}) constants(%[[BATCH]] : index) {batch_grid = array<i64: 1, 1>}
// CHECK-DAG: %[[W:.*]] = memref.get_global @vit_head_head_packed_0 : memref<1x8x16xf32>
// CHECK-DAG: %[[B:.*]] = memref.get_global @vit_head_head_bias_0 : memref<16xf32>
// CHECK: vmoe.launch @vit_head_head_0 grid [1, 1, 1](%{{.*}}, %[[W]], %[[B]], %[[OUT]]) constants(%[[BATCH]] : index) {batch_grid = array<i64: 1, 48>} : memref<2x8xf32>, memref<1x8x16xf32>, memref<16xf32>, memref<2x10xf32>
func.func @vit_head(%x: tensor<2x5x8xf32>) -> tensor<2x10xf32> {
  %k = arith.constant dense<0.5> : tensor<8x10xf32>
  %b = arith.constant dense<0.1> : tensor<10xf32>
  %l = vmoe.classifier_head %x head(%k, %b) : (tensor<2x5x8xf32>, tensor<8x10xf32>, tensor<10xf32>) -> tensor<2x10xf32>
  return %l : tensor<2x10xf32>
}

