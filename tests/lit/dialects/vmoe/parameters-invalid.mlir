// RUN: vmoe-opt %s -split-input-file -verify-diagnostics

func.func @unnamed() {
  // expected-error @+1 {{'vmoe.parameter' op needs the parameter's name (its path in the checkpoint, e.g. "head/kernel")}}
  %w = vmoe.parameter "" : tensor<4xf32>
  return
}

// -----

func.func @dynamic() {
  // expected-error @+1 {{'vmoe.parameter' op result must have a static shape, got 'tensor<?xf32>'}}
  %w = vmoe.parameter "a" : tensor<?xf32>
  return
}

// -----

// expected-error @+1 {{'memref.global' op has type 'memref<2x32x16xf32>' but its packing makes shape [3, 32, 16]}}
memref.global "private" constant @short : memref<2x32x16xf32>
    {vmoe.packed = #vmoe.packed_weight<panels, ["q", "k"], widths = [20, 14], batch = 1, k = 32, nr = 16, k_pairs = false>}

// -----

// expected-error @+1 {{'memref.global' op has 'vmoe.packed' and an initial value: its bytes come from the parameters}}
memref.global "private" constant @both : memref<4xf32> = dense<0.0>
    {vmoe.packed = #vmoe.packed_weight<copy, ["a"], widths = [4], batch = 1, k = 1, nr = 1, k_pairs = false>}

// -----

// expected-error @+1 {{'memref.global' op packs in k pairs, which are bf16}}
memref.global "private" constant @pairs : memref<1x8x32xf32>
    {vmoe.packed = #vmoe.packed_weight<panels, ["a"], widths = [16], batch = 1, k = 16, nr = 16, k_pairs = true>}

// -----

// expected-error @+1 {{'memref.global' op has 'vmoe.packed' but type 'memref<4xbf16>'; packed weights are f32 memrefs (bf16 or i8 for panels, i32 for int8_col_sums)}}
memref.global "private" constant @copybf16 : memref<4xbf16>
    {vmoe.packed = #vmoe.packed_weight<copy, ["a"], widths = [4], batch = 1, k = 1, nr = 1, k_pairs = false>}

// -----

// expected-error @+2 {{a copy is made of one parameter, got 2}}
memref.global "private" constant @two : memref<4xf32>
    {vmoe.packed = #vmoe.packed_weight<copy, ["a", "b"], widths = [2, 2], batch = 1, k = 1, nr = 1, k_pairs = false>}

// -----

// expected-error @+2 {{needs one width per parameter and at least one parameter, got 1 parameters and 2 widths}}
memref.global "private" constant @widths : memref<4xf32>
    {vmoe.packed = #vmoe.packed_weight<bias, ["a"], widths = [2, 2], batch = 1, k = 1, nr = 4, k_pairs = false>}

// -----

func.func @on_a_func() attributes {vmoe.packed = #vmoe.packed_weight<copy, ["a"], widths = [4], batch = 1, k = 1, nr = 1, k_pairs = false>} {
  // expected-error @-1 {{'func.func' op has 'vmoe.packed', which only memref.global may carry}}
  return
}
