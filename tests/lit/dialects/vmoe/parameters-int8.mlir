// RUN: vmoe-opt %s -split-input-file -verify-diagnostics | FileCheck %s

// int8 packings: panels of i8 in k quads (vpdpbusd, sdot) or k pairs
// (vpmaddwd), and the per-column scales and sums made from the same
// matrices, laid out as a bias. k_quads is printed only when set.
// CHECK-LABEL: memref.global "private" constant @quads : memref<2x8x64xi8>
// CHECK-SAME: #vmoe.packed_weight<panels, ["w"], widths = [20], batch = 1, k = 32, nr = 16, k_pairs = false, k_quads = true>
memref.global "private" constant @quads : memref<2x8x64xi8>
    {vmoe.packed = #vmoe.packed_weight<panels, ["w"], widths = [20], batch = 1, k = 32, nr = 16, k_pairs = false, k_quads = true>}
// CHECK-LABEL: memref.global "private" constant @pairs : memref<4x2x16x32xi8>
// CHECK-SAME: k_pairs = true>
memref.global "private" constant @pairs : memref<4x2x16x32xi8>
    {vmoe.packed = #vmoe.packed_weight<panels, ["w"], widths = [20], batch = 4, k = 32, nr = 16, k_pairs = true>}
// CHECK-LABEL: memref.global "private" constant @scales : memref<4x32xf32>
// CHECK-SAME: #vmoe.packed_weight<int8_scales, ["w"]
memref.global "private" constant @scales : memref<4x32xf32>
    {vmoe.packed = #vmoe.packed_weight<int8_scales, ["w"], widths = [20], batch = 4, k = 32, nr = 16, k_pairs = false>}
// CHECK-LABEL: memref.global "private" constant @sums : memref<32xi32>
// CHECK-SAME: #vmoe.packed_weight<int8_col_sums, ["w"]
memref.global "private" constant @sums : memref<32xi32>
    {vmoe.packed = #vmoe.packed_weight<int8_col_sums, ["w"], widths = [20], batch = 1, k = 32, nr = 16, k_pairs = false>}

// -----

memref.global "private" constant @odd : memref<2x7x64xi8>
    // expected-error @+1 {{k_quads needs panels without k_pairs and a k that is a multiple of 4, got k = 30}}
    {vmoe.packed = #vmoe.packed_weight<panels, ["w"], widths = [20], batch = 1, k = 30, nr = 16, k_pairs = false, k_quads = true>}

// -----

// expected-error @+1 {{'memref.global' op packs int8 panels, which come in k pairs or k quads}}
memref.global "private" constant @plain : memref<2x32x16xi8>
    {vmoe.packed = #vmoe.packed_weight<panels, ["w"], widths = [20], batch = 1, k = 32, nr = 16, k_pairs = false>}

// -----

// expected-error @+1 {{'memref.global' op packs in k quads, which are i8}}
memref.global "private" constant @f32quads : memref<2x8x64xf32>
    {vmoe.packed = #vmoe.packed_weight<panels, ["w"], widths = [20], batch = 1, k = 32, nr = 16, k_pairs = false, k_quads = true>}

// -----

// expected-error @+1 {{'memref.global' op has 'vmoe.packed' but type 'memref<32xf32>'; packed weights are f32 memrefs (bf16 or i8 for panels, i32 for int8_col_sums)}}
memref.global "private" constant @f32sums : memref<32xf32>
    {vmoe.packed = #vmoe.packed_weight<int8_col_sums, ["w"], widths = [20], batch = 1, k = 32, nr = 16, k_pairs = false>}
