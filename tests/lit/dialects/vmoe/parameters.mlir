// RUN: vmoe-opt %s -split-input-file | vmoe-opt -split-input-file | FileCheck %s

// Parameters name weights; the IR holds no values.
// CHECK-LABEL: func.func @named
// CHECK: %[[W:.*]] = vmoe.parameter "Encoder/encoderblock_0/Mlp/Dense_0/kernel" : tensor<32x64xf32>
// CHECK: return %[[W]]
func.func @named() -> tensor<32x64xf32> {
  %w = vmoe.parameter "Encoder/encoderblock_0/Mlp/Dense_0/kernel" : tensor<32x64xf32>
  return %w : tensor<32x64xf32>
}

// -----

// Weight globals record how they are packed from parameters.
// CHECK-LABEL: memref.global "private" constant @qkv : memref<2x32x16xf32>
// CHECK-SAME: {vmoe.packed = #vmoe.packed_weight<panels, ["q", "k"], widths = [10, 12], batch = 1, k = 32, nr = 16, k_pairs = false>}
memref.global "private" constant @qkv : memref<2x32x16xf32>
    {vmoe.packed = #vmoe.packed_weight<panels, ["q", "k"], widths = [10, 12], batch = 1, k = 32, nr = 16, k_pairs = false>}
// CHECK-LABEL: memref.global "private" constant @experts : memref<4x2x16x32xbf16>
// CHECK-SAME: k_pairs = true
memref.global "private" constant @experts : memref<4x2x16x32xbf16>
    {vmoe.packed = #vmoe.packed_weight<panels, ["e"], widths = [32], batch = 4, k = 32, nr = 16, k_pairs = true>}
// CHECK-LABEL: memref.global "private" constant @bias : memref<4x32xf32>
memref.global "private" constant @bias : memref<4x32xf32>
    {vmoe.packed = #vmoe.packed_weight<bias, ["b"], widths = [20], batch = 4, k = 1, nr = 16, k_pairs = false>}
// CHECK-LABEL: memref.global "private" constant @pos : memref<1x17x32xf32>
memref.global "private" constant @pos : memref<1x17x32xf32>
    {vmoe.packed = #vmoe.packed_weight<copy, ["Encoder/posembed_input/pos_embedding"], widths = [544], batch = 1, k = 1, nr = 1, k_pairs = false>}
