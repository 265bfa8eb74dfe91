// RUN: vmoe-opt %s -split-input-file -verify-diagnostics

// The vmoe.* attributes of the compiler contract (VmoeContract.h) are
// checked wherever they appear: their types and values, where they may be,
// and the relations between them.

// expected-error @+1 {{k = 3 must be at most num_experts = 2}}
func.func @f() attributes {vmoe.entry, vmoe.batch_multiple = 1 : i64, vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 2, k = 3, group_size = 8, num_groups = 1, tokens_per_image = 8, max_capacity = 16, capacity_factor = 1.0, max_capacity_factor = 1.0, batch_priority = false, bf16_dispatch = false>]} {
  return
}

// -----

// expected-error @+1 {{k = 2 must be 1 for expert_choice (experts pick tokens)}}
func.func @f() attributes {vmoe.entry, vmoe.batch_multiple = 1 : i64, vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 2, k = 2, group_size = 8, num_groups = 1, tokens_per_image = 8, max_capacity = 8, capacity_factor = 1.0, max_capacity_factor = 1.0, batch_priority = false, bf16_dispatch = false, expert_choice = true>]} {
  return
}

// -----

// expected-error @+1 {{capacity_multiple_of = 0 must be in [1, 2^32)}}
func.func @f() attributes {vmoe.entry, vmoe.batch_multiple = 1 : i64, vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 2, k = 1, group_size = 8, num_groups = 1, tokens_per_image = 8, max_capacity = 8, capacity_factor = 1.0, max_capacity_factor = 1.0, batch_priority = false, bf16_dispatch = false, capacity_multiple_of = 0>]} {
  return
}

// -----

// The buffers must hold the capacity of the maximum factor under the layer's
// own rule: round(8 * 1.3 / 2) = 5 with a multiple of 1 (4 would do for
// neither rule; roundup4(ceil(5.2)) = 8).
// expected-error @+1 {{max_capacity = 4 is smaller than 5, the capacity of max_capacity_factor = 1.3}}
func.func @f() attributes {vmoe.entry, vmoe.batch_multiple = 1 : i64, vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 2, k = 1, group_size = 8, num_groups = 1, tokens_per_image = 8, max_capacity = 4, capacity_factor = 1.0, max_capacity_factor = 1.3, batch_priority = false, bf16_dispatch = false, capacity_multiple_of = 1, capacity_round = true>]} {
  return
}

// -----

// expected-error @+1 {{num_experts = 0 must be in [1, 2^32)}}
func.func @f() attributes {vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 0, k = 1, group_size = 8, num_groups = 1, tokens_per_image = 8, max_capacity = 8, capacity_factor = 1.0, max_capacity_factor = 1.0, batch_priority = false, bf16_dispatch = false>]} {
  return
}

// -----

// expected-error @+1 {{capacity_factor = 2.000000e+00 must be > 0 and at most max_capacity_factor = 1.500000e+00}}
func.func @f() attributes {vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 4, k = 2, group_size = 8, num_groups = 1, tokens_per_image = 8, max_capacity = 8, capacity_factor = 2.0, max_capacity_factor = 1.5, batch_priority = false, bf16_dispatch = false>]} {
  return
}

// -----

// expected-error @+1 {{max_capacity_factor = -1.000000e+00 must be a finite number > 0}}
func.func @f() attributes {vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 4, k = 2, group_size = 8, num_groups = 1, tokens_per_image = 8, max_capacity = 8, capacity_factor = 1.0, max_capacity_factor = -1.0, batch_priority = false, bf16_dispatch = false>]} {
  return
}

// -----

// Only a fixed capacity has no factor, and then neither factor.
// expected-error @+1 {{capacity_factor = 0.000000e+00 must be > 0 and at most max_capacity_factor = 2.000000e+00}}
func.func @f() attributes {vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 4, k = 2, group_size = 8, num_groups = 1, tokens_per_image = 8, max_capacity = 8, capacity_factor = 0.0, max_capacity_factor = 2.0, batch_priority = false, bf16_dispatch = false>]} {
  return
}

// -----

// ceil(8 * 2 * 2.0 / 4) = 8 slots per expert, capped at the group size 8.
// expected-error @+1 {{max_capacity = 4 is smaller than 8, the capacity of max_capacity_factor = 2.000000e+00}}
func.func @f() attributes {vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 4, k = 2, group_size = 8, num_groups = 1, tokens_per_image = 8, max_capacity = 4, capacity_factor = 1.0, max_capacity_factor = 2.0, batch_priority = false, bf16_dispatch = false>]} {
  return
}

// -----

// expected-error @+1 {{num_groups * group_size = 24 tokens must be whole images of tokens_per_image = 16}}
func.func @f() attributes {vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 4, k = 2, group_size = 8, num_groups = 3, tokens_per_image = 16, max_capacity = 8, capacity_factor = 1.0, max_capacity_factor = 1.0, batch_priority = false, bf16_dispatch = false>]} {
  return
}

// -----

// expected-error @+1 {{'func.func' op 'vmoe.moe_layers' element 0 must be a #vmoe.moe_layer, got {k = 2 : i64, layer = 0 : i64}}}
func.func @f() attributes {vmoe.entry, vmoe.moe_layers = [{layer = 0 : i64, k = 2 : i64}]} {
  return
}

// -----

// expected-error @+1 {{'func.func' op 'vmoe.moe_layers' lists layer 0 twice}}
func.func @f() attributes {vmoe.entry, vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 4, k = 2, group_size = 8, num_groups = 1, tokens_per_image = 8, max_capacity = 8, capacity_factor = 1.0, max_capacity_factor = 2.0, batch_priority = true, bf16_dispatch = false>, #vmoe.moe_layer<layer = 0, num_experts = 4, k = 2, group_size = 8, num_groups = 1, tokens_per_image = 8, max_capacity = 8, capacity_factor = 1.0, max_capacity_factor = 2.0, batch_priority = true, bf16_dispatch = false>]} {
  return
}

// -----

// expected-error @+1 {{'func.func' op 'vmoe.moe_layers' belongs on the host function: mark it 'vmoe.entry' or drop the attribute}}
func.func @f() attributes {vmoe.moe_layers = []} {
  return
}

// -----

// expected-error @+1 {{'func.func' op 'vmoe.batch_multiple' is 0, must be >= 1}}
func.func @f() attributes {vmoe.entry, vmoe.batch_multiple = 0 : i64} {
  return
}

// -----

// expected-error @+1 {{'func.func' op 'vmoe.entry' must be a unit attribute (a flag), got true}}
func.func @f() attributes {vmoe.entry = true} {
  return
}

// -----

// expected-error @+1 {{'func.func' op 'vmoe.scratch_size' is -64, must be >= 0}}
func.func private @k(%x: index, %y: index, %z: index) attributes {vmoe.kernel, vmoe.scratch_size = -64 : i64} {
  return
}

// -----

// expected-error @+1 {{'func.func' op 'vmoe.scratch_size' must be an i64 integer, got 6.400000e+01 : f32}}
func.func private @k(%x: index, %y: index, %z: index) attributes {vmoe.kernel, vmoe.scratch_size = 64.0 : f32} {
  return
}

// -----

// expected-error @+1 {{'llvm.func' op 'vmoe.binding_count' must be an i32 integer, got 1 : i64}}
llvm.func @k_entry(%d: !llvm.ptr, %w: !llvm.ptr) -> i32 attributes {vmoe.kernel_name = "k", vmoe.binding_count = 1 : i64} {
  %0 = llvm.mlir.constant(0 : i32) : i32
  llvm.return %0 : i32
}

// -----

// expected-error @+1 {{'llvm.func' op 'vmoe.kernel_name' must be the non-empty name of a kernel, got ""}}
llvm.func @k_entry(%d: !llvm.ptr, %w: !llvm.ptr) -> i32 attributes {vmoe.kernel_name = ""} {
  %0 = llvm.mlir.constant(0 : i32) : i32
  llvm.return %0 : i32
}

// -----

// expected-error @+1 {{'func.func' op 'vmoe.block_size' is 2048, must be in [1, 1024]}}
func.func private @k() attributes {vmoe.block_size = 2048 : i64} {
  return
}

// -----

// expected-error @+1 {{'func.func' op has the unknown attribute 'vmoe.scrach_size' (a misspelt vmoe contract attribute?)}}
func.func private @k(%x: index, %y: index, %z: index) attributes {vmoe.kernel, vmoe.scrach_size = 64 : i64} {
  return
}

// -----

// expected-error @+1 {{'builtin.module' op has 'vmoe.kernel', which only functions may carry}}
module attributes {vmoe.kernel} {
}

// -----

// expected-error @+1 {{'func.func' op has 'vmoe.knob', an attribute of host function arguments; move it to the argument}}
func.func @f(%b: index) attributes {vmoe.knob = "batch"} {
  return
}

// -----

// expected-error @+1 {{'func.func' op argument 0 has 'vmoe.kernel', which is not a vmoe argument attribute (vmoe.input, vmoe.output, vmoe.knob, vmoe.layer)}}
func.func @f(%b: index {vmoe.kernel}) {
  return
}

// -----

// expected-error @+1 {{'func.func' op argument 0 'vmoe.knob' is "capcity", must be one of "batch", "capacity", "bpr", "k"}}
func.func @f(%c: index {vmoe.knob = "capcity", vmoe.layer = 0 : i64}) {
  return
}

// -----

// expected-error @+1 {{'func.func' op argument 0 is a knob but has type 'i32'; knobs are index values}}
func.func @f(%b: i32 {vmoe.knob = "batch"}) {
  return
}

// -----

// expected-error @+1 {{'func.func' op argument 0 is a capacity knob without 'vmoe.layer': name its MoE layer}}
func.func @f(%c: index {vmoe.knob = "capacity"}) {
  return
}

// -----

// expected-error @+1 {{'func.func' op argument 0 is the batch knob, which belongs to no layer: drop 'vmoe.layer'}}
func.func @f(%b: index {vmoe.knob = "batch", vmoe.layer = 0 : i64}) {
  return
}

// -----

// expected-error @+1 {{'func.func' op argument 0 has 'vmoe.layer' but no 'vmoe.knob': only capacity and bpr knobs name a layer}}
func.func @f(%x: memref<4xf32> {vmoe.input = 0 : i64, vmoe.layer = 0 : i64}) {
  return
}

// -----

// expected-error @+1 {{'func.func' op argument 1 is a knob of MoE layer 1, which 'vmoe.moe_layers' does not list}}
func.func @f(%c: index {vmoe.knob = "capacity", vmoe.layer = 0 : i64}, %p: index {vmoe.knob = "bpr", vmoe.layer = 1 : i64}) attributes {vmoe.entry, vmoe.moe_layers = [#vmoe.moe_layer<layer = 0, num_experts = 4, k = 2, group_size = 8, num_groups = 1, tokens_per_image = 8, max_capacity = 8, capacity_factor = 1.0, max_capacity_factor = 2.0, batch_priority = true, bf16_dispatch = false>]} {
  return
}

// -----

// expected-error @+1 {{'func.func' op argument 0 'vmoe.input' is -1, must be >= 0}}
func.func @f(%x: memref<4xf32> {vmoe.input = -1 : i64}) {
  return
}

// -----

// expected-error @+1 {{'func.func' op argument 0 has 'vmoe.output' but type 'tensor<4xf32>'; inputs and outputs are memrefs}}
func.func @f(%x: tensor<4xf32> {vmoe.output = 0 : i64}) {
  return
}

// -----

// expected-error @+1 {{'func.func' op argument 0 has 'vmoe.input' and 'vmoe.output': an argument is an input, an output or a knob}}
func.func @f(%x: memref<4xf32> {vmoe.input = 0 : i64, vmoe.output = 0 : i64}) {
  return
}

// -----

// expected-error @+1 {{'func.func' op 'vmoe.written_bindings' must be array<i1: ...> with one flag per leading memref argument, got array<i1: false, true>}}
func.func private @k(%a: memref<4xf32>, %x: index) attributes {vmoe.kernel, vmoe.written_bindings = array<i1: false, true>} {
  return
}

// -----

// expected-error @+1 {{'func.func' op 'vmoe.written_bindings' must be array<i1: ...> with one flag per leading memref argument, got array<i64: 1>}}
func.func private @k(%a: memref<4xf32>) attributes {vmoe.kernel, vmoe.written_bindings = array<i64: 1>} {
  return
}
