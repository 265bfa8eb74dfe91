// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels=expert-shards=2 | FileCheck %s
// RUN: vmoe-opt %s -split-input-file --vmoe-infer-capacity --vmoe-decompose --canonicalize --vmoe-lower-to-kernels=expert-shards=4 | FileCheck %s --check-prefix=FOUR
// RUN: vmoe-opt %s -split-input-file --vmoe-pipeline=expert-shards=2 | FileCheck %s --check-prefix=PIPELINE

// Expert parallelism (vmoe-lower-to-kernels expert-shards=N): one rank's
// schedule. Routing sees all 4 experts; the expert weights are the rank's
// E/N experts (vmoe.expert_slice names the whole E); the rows of each
// rank's experts go out by vmoe.all_to_all and come back the same way.
// A dispatch chunk holds, per group, E/N counts (group_bytes = 4 E/N) and,
// per slot, E/N gates and rows of D = 16 (slot_bytes = 4 (E/N) (1 + D));
// the return chunk only the rows (slot_bytes = 4 (E/N) D).

// CHECK-DAG: memref.global "private" constant @moe_router_0 : memref<16x4xf32> {{.*}}batch = 1
// CHECK-DAG: memref.global "private" constant @moe_expert_w1_packed_0 : memref<2x2x16x16xf32> {alignment = 64 : i64, vmoe.expert_slice = 4 : i64, vmoe.packed = #vmoe.packed_weight<panels, ["moe/w1"], widths = [32], batch = 2, k = 16, nr = 16, k_pairs = false>}
// CHECK-DAG: memref.global "private" constant @moe_expert_w1_bias_0 : memref<2x32xf32> {alignment = 64 : i64, vmoe.expert_slice = 4 : i64, vmoe.packed = #vmoe.packed_weight<bias, ["moe/b1"], widths = [32], batch = 2
// CHECK-DAG: memref.global "private" constant @moe_expert_w2_packed_0 : memref<2x1x32x16xf32> {alignment = 64 : i64, vmoe.expert_slice = 4 : i64
// CHECK-DAG: memref.global "private" constant @moe_expert_w2_bias_0 : memref<2x16xf32> {alignment = 64 : i64, vmoe.expert_slice = 4 : i64
// CHECK-LABEL: func.func @moe(
// CHECK-SAME: vmoe.expert_shards = 2 : i64
// CHECK-SAME: num_experts = 4, k = 2, group_size = 8, num_groups = 2
// CHECK: vmoe.launch @moe_moe_gates_0 grid [1, 1, 1]({{.*}}) {{.*}}: memref<2x8x16xf32>, memref<16x4xf32>,
// CHECK: vmoe.launch @moe_moe_assign_0
// Chunks of 2 x 2 counts + 2 x 2 x 4 slots x (1 + 16): 276 words, 2 ranks.
// CHECK: %[[SEND:.*]] = memref.alloc() : memref<552xf32>
// CHECK: vmoe.launch @moe_moe_pack_0 grid [2, 4, 1](%{{.*}}, %{{.*}}, %{{.*}}, %arg0, %[[SEND]]) constants(%arg3, %arg2 : index, index) : memref<2x4xi32>, memref<4x2x4xi32>, memref<4x2x4xf32>, memref<2x8x16xf32>, memref<552xf32>
// CHECK: %[[RECV:.*]] = memref.alloc() : memref<552xf32>
// CHECK: vmoe.all_to_all %[[SEND]], %[[RECV]] {group_bytes = 8 : i64, layer = 0 : i64, ranks = 2 : i64, slot_bytes = 136 : i64} : memref<552xf32>, memref<552xf32>
// The local experts x (ranks x groups) received groups.
// CHECK: %[[HIDDEN:.*]] = memref.alloc() : memref<2x4x4x32xf32>
// CHECK: vmoe.launch @moe_moe_expert_up_0 grid [1, 2, 8](%[[RECV]], %{{.*}}, %{{.*}}, %[[HIDDEN]]) constants(%arg3, %arg2 : index, index)
// CHECK: %[[BACK:.*]] = memref.alloc() : memref<512xf32>
// CHECK: vmoe.launch @moe_moe_expert_down_0 grid [1, 1, 8](%[[RECV]], %[[HIDDEN]], %{{.*}}, %{{.*}}, %[[BACK]]) constants(%arg3, %arg2 : index, index)
// CHECK: %[[BACKRECV:.*]] = memref.alloc() : memref<512xf32>
// CHECK: vmoe.all_to_all %[[BACK]], %[[BACKRECV]] {group_bytes = 0 : i64, layer = 0 : i64, ranks = 2 : i64, slot_bytes = 128 : i64}
// CHECK: vmoe.launch @moe_moe_combine_0 grid [1, 1, 1](%[[BACKRECV]], {{.*}}) constants(%arg3, %arg2 : index, index)
// CHECK: vmoe.routing_stats

// One expert per rank: its weights, without an expert dimension.
// FOUR-DAG: memref.global "private" constant @moe_expert_w1_packed_0 : memref<2x16x16xf32> {alignment = 64 : i64, vmoe.expert_slice = 4 : i64, vmoe.packed = #vmoe.packed_weight<panels, ["moe/w1"], widths = [32], batch = 1
// FOUR-DAG: memref.global "private" constant @moe_expert_w1_bias_0 : memref<32xf32> {alignment = 64 : i64, vmoe.expert_slice = 4 : i64
// FOUR-LABEL: func.func @moe(
// FOUR-SAME: vmoe.expert_shards = 4 : i64
// FOUR: vmoe.all_to_all {{.*}} {group_bytes = 4 : i64, layer = 0 : i64, ranks = 4 : i64, slot_bytes = 68 : i64} : memref<552xf32>, memref<552xf32>
// FOUR: vmoe.launch @moe_moe_expert_up_0 grid [1, 2, 8]
// FOUR: vmoe.all_to_all {{.*}} {group_bytes = 0 : i64, layer = 0 : i64, ranks = 4 : i64, slot_bytes = 64 : i64} : memref<512xf32>, memref<512xf32>

// PIPELINE-LABEL: func.func @moe(
// PIPELINE-SAME: vmoe.expert_shards = 2 : i64
// PIPELINE-COUNT-2: vmoe.all_to_all
func.func @moe(%x: tensor<2x8x16xf32>) -> tensor<2x8x16xf32> {
  %router = vmoe.parameter "moe/router" : tensor<16x4xf32>
  %w1 = vmoe.parameter "moe/w1" : tensor<4x16x32xf32>
  %b1 = vmoe.parameter "moe/b1" : tensor<4x32xf32>
  %w2 = vmoe.parameter "moe/w2" : tensor<4x32x16xf32>
  %b2 = vmoe.parameter "moe/b2" : tensor<4x16xf32>
  %m = vmoe.sparse_moe %x, %router, %w1, %b1, %w2, %b2 {
      num_experts = 4, k = 2, group_size = 8, capacity_factor = 1.0 : f64,
      batch_priority = false, bf16_dispatch = false}
      : (tensor<2x8x16xf32>, tensor<16x4xf32>, tensor<4x16x32xf32>, tensor<4x32xf32>,
         tensor<4x32x16xf32>, tensor<4x16xf32>) -> tensor<2x8x16xf32>
  return %m : tensor<2x8x16xf32>
}

// -----

// Expert choice splits the same way: each expert picks its tokens from all
// of the rank's groups; the picked rows travel to the expert's rank.
// CHECK-LABEL: func.func @choice(
// CHECK-SAME: vmoe.expert_shards = 2 : i64
// CHECK-SAME: expert_choice = true
// CHECK: vmoe.launch @choice_moe_pack_0
// CHECK: vmoe.all_to_all
// CHECK: vmoe.launch @choice_moe_expert_up_0
// CHECK: vmoe.launch @choice_moe_expert_down_0
// CHECK: vmoe.all_to_all
// CHECK: vmoe.launch @choice_moe_combine_0
// FOUR-LABEL: func.func @choice(
// PIPELINE-LABEL: func.func @choice(
func.func @choice(%x: tensor<2x8x16xf32>) -> tensor<2x8x16xf32> {
  %router = vmoe.parameter "moe/router" : tensor<16x4xf32>
  %w1 = vmoe.parameter "moe/w1" : tensor<4x16x32xf32>
  %b1 = vmoe.parameter "moe/b1" : tensor<4x32xf32>
  %w2 = vmoe.parameter "moe/w2" : tensor<4x32x16xf32>
  %b2 = vmoe.parameter "moe/b2" : tensor<4x16xf32>
  %m = vmoe.sparse_moe %x, %router, %w1, %b1, %w2, %b2 {
      num_experts = 4, k = 1, group_size = 8, capacity_factor = 1.0 : f64,
      batch_priority = false, bf16_dispatch = false,
      routing = #vmoe.routing<expert_choice>}
      : (tensor<2x8x16xf32>, tensor<16x4xf32>, tensor<4x16x32xf32>, tensor<4x32xf32>,
         tensor<4x32x16xf32>, tensor<4x16xf32>) -> tensor<2x8x16xf32>
  return %m : tensor<2x8x16xf32>
}
