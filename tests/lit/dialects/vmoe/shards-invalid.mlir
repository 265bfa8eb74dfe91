// RUN: vmoe-opt %s -split-input-file -verify-diagnostics

// Expert parallelism in the host schedule: vmoe.all_to_all, the host's
// vmoe.expert_shards and the weight globals' vmoe.expert_slice.

func.func @types(%a: memref<64xf32>, %b: memref<32xf32>) {
  // expected-error @+1 {{'vmoe.all_to_all' op expects send and recv buffers of one type, got 'memref<64xf32>' and 'memref<32xf32>'}}
  vmoe.all_to_all %a, %b {layer = 0 : i64, ranks = 2 : i64, group_bytes = 4 : i64, slot_bytes = 8 : i64} : memref<64xf32>, memref<32xf32>
  return
}

// -----

func.func @chunks(%a: memref<5xi8>, %b: memref<5xi8>) {
  // expected-error @+1 {{'vmoe.all_to_all' op expects buffers of 2 equal chunks, got 5 bytes}}
  vmoe.all_to_all %a, %b {layer = 0 : i64, ranks = 2 : i64, group_bytes = 4 : i64, slot_bytes = 8 : i64} : memref<5xi8>, memref<5xi8>
  return
}

// -----

func.func @one_rank(%a: memref<8xf32>, %b: memref<8xf32>) {
  // expected-error @+1 {{'vmoe.all_to_all' op attribute 'ranks' failed to satisfy constraint}}
  vmoe.all_to_all %a, %b {layer = 0 : i64, ranks = 1 : i64, group_bytes = 4 : i64, slot_bytes = 8 : i64} : memref<8xf32>, memref<8xf32>
  return
}

// -----

// expected-error @+1 {{'vmoe.expert_shards' is 1, must be in [2, 4294967295]}}
func.func @f() attributes {vmoe.entry, vmoe.batch_multiple = 1 : i64, vmoe.moe_layers = [], vmoe.expert_shards = 1 : i64} {
  return
}

// -----

// expected-error @+1 {{'vmoe.expert_shards' belongs on the host function: mark it 'vmoe.entry' or drop the attribute}}
func.func @f() attributes {vmoe.expert_shards = 2 : i64} {
  return
}

// -----

// expected-error @+1 {{has 'vmoe.expert_slice' but no 'vmoe.packed': only weight globals packed from parameters are split between ranks}}
memref.global "private" constant @w : memref<2x4xf32> = dense<0.0> {vmoe.expert_slice = 4 : i64}
