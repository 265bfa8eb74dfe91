// RUN: vmoe-opt %s | vmoe-opt | FileCheck %s
// RUN: vmoe-opt %s --mlir-print-op-generic | vmoe-opt | FileCheck %s

// The attributes of the compiler contract round-trip: a host function with
// its arguments and MoE layers (#vmoe.moe_layer, one with a fixed capacity),
// a kernel with scratch, and the attributes the targets put on what they
// make.

// CHECK-LABEL: func.func @model(
// CHECK-SAME: %{{.*}}: memref<2x4x16xf32> {vmoe.input = 0 : i64}
// CHECK-SAME: %{{.*}}: memref<2x4x16xf32> {vmoe.output = 0 : i64}
// CHECK-SAME: %{{.*}}: index {vmoe.knob = "batch"}
// CHECK-SAME: %{{.*}}: index {vmoe.knob = "capacity", vmoe.layer = 0 : i64}
// CHECK-SAME: %{{.*}}: index {vmoe.knob = "bpr", vmoe.layer = 0 : i64}
// CHECK-SAME: vmoe.batch_multiple = 2 : i64
// CHECK-SAME: vmoe.entry
// CHECK-SAME: vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 4, k = 2, group_size = 8, num_groups = 1, tokens_per_image = 4, max_capacity = 8, capacity_factor = 1.050000e+00, max_capacity_factor = 2.000000e+00, batch_priority = true, bf16_dispatch = false>, #vmoe.moe_layer<layer = 1, num_experts = 4, k = 1, group_size = 8, num_groups = 1, tokens_per_image = 4, max_capacity = 2, capacity_factor = 0.000000e+00, max_capacity_factor = 0.000000e+00, batch_priority = false, bf16_dispatch = false>]
func.func @model(%x: memref<2x4x16xf32> {vmoe.input = 0 : i64},
                 %y: memref<2x4x16xf32> {vmoe.output = 0 : i64},
                 %batch: index {vmoe.knob = "batch"},
                 %cap: index {vmoe.knob = "capacity", vmoe.layer = 0 : i64},
                 %bpr: index {vmoe.knob = "bpr", vmoe.layer = 0 : i64})
    attributes {vmoe.entry, vmoe.batch_multiple = 2 : i64,
                vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 4,
                    k = 2, group_size = 8, num_groups = 1, tokens_per_image = 4,
                    max_capacity = 8, capacity_factor = 1.05,
                    max_capacity_factor = 2.0, batch_priority = true,
                    bf16_dispatch = false>,
                  // A fixed capacity: no factors, no capacity knob.
                  #vmoe.moe_layer<layer = 1, num_experts = 4,
                    k = 1, group_size = 8, num_groups = 1, tokens_per_image = 4,
                    max_capacity = 2, capacity_factor = 0.0,
                    max_capacity_factor = 0.0, batch_priority = false,
                    bf16_dispatch = false>]} {
  vmoe.launch @copy grid [2, 1, 1] (%x, %y) constants(%batch : index) : memref<2x4x16xf32>, memref<2x4x16xf32>
  return
}

// CHECK-LABEL: func.func private @copy(
// CHECK-SAME: attributes {vmoe.kernel, vmoe.scratch_size = 64 : i64}
func.func private @copy(%x: memref<2x4x16xf32>, %y: memref<2x4x16xf32>,
                        %b: index, %wx: index, %wy: index, %wz: index,
                        %s: memref<64xi8>)
    attributes {vmoe.kernel, vmoe.scratch_size = 64 : i64} {
  return
}

// CHECK-LABEL: llvm.func @copy_entry(
// CHECK-SAME: vmoe.binding_count = 2 : i32, vmoe.constant_count = 1 : i32, vmoe.kernel_name = "copy", vmoe.scratch_size = 64 : i64
llvm.func @copy_entry(%d: !llvm.ptr, %w: !llvm.ptr) -> i32
    attributes {vmoe.kernel_name = "copy", vmoe.binding_count = 2 : i32,
                vmoe.constant_count = 1 : i32, vmoe.scratch_size = 64 : i64} {
  %0 = llvm.mlir.constant(0 : i32) : i32
  llvm.return %0 : i32
}

// CHECK-LABEL: func.func private @outlined(
// CHECK-SAME: vmoe.block_size = 32 : i64, vmoe.kernel_name = "copy", vmoe.workgroup_scratch_size = 64 : i64
func.func private @outlined()
    attributes {vmoe.kernel_name = "copy", vmoe.block_size = 32 : i64,
                vmoe.workgroup_scratch_size = 64 : i64}
