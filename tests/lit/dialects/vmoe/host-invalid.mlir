// RUN: vmoe-opt %s -split-input-file -verify-diagnostics

func.func @missing_kernel(%a: memref<4xf32>) {
  // expected-error @+1 {{'vmoe.launch' op kernel @nope is not a function of this module}}
  vmoe.launch @nope grid [1, 1, 1] (%a) : memref<4xf32>
  return
}

// -----

func.func private @k(%a: memref<4xf32>, %x: index, %y: index, %z: index) attributes {vmoe.kernel} {
  return
}
func.func @argument_count(%a: memref<4xf32>, %c: index) {
  // expected-error @+1 {{'vmoe.launch' op kernel @k takes 4 arguments, the launch passes 5 (bindings, constants, x, y, z[, scratch])}}
  vmoe.launch @k grid [1, 1, 1] (%a) constants(%c : index) : memref<4xf32>
  return
}

// -----

func.func private @k(%a: memref<4xf32>, %x: index, %y: index, %z: index) attributes {vmoe.kernel} {
  return
}
func.func @argument_type(%a: memref<8xf32>) {
  // expected-error @+1 {{'vmoe.launch' op operand 0 has type 'memref<8xf32>' but kernel @k expects 'memref<4xf32>'}}
  vmoe.launch @k grid [1, 1, 1] (%a) : memref<8xf32>
  return
}

// -----

func.func private @k(%a: memref<4xf32>, %x: index, %y: index, %z: index) attributes {vmoe.kernel} {
  return
}
func.func @grid_rank(%a: memref<4xf32>) {
  // expected-error @+1 {{'vmoe.launch' op expects a grid of 3 dimensions (x, y, z), got 2}}
  vmoe.launch @k grid [1, 1] (%a) : memref<4xf32>
  return
}

// -----

func.func private @k(%a: memref<4xf32>, %x: index, %y: index, %z: index) attributes {vmoe.kernel} {
  return
}
func.func @grid_zero(%a: memref<4xf32>) {
  // expected-error @+1 {{'vmoe.launch' op expects grid dimensions in [1, 2^32), got 0}}
  vmoe.launch @k grid [1, 0, 1] (%a) : memref<4xf32>
  return
}

// -----

func.func private @k(%a: memref<4xf32>, %c: f32, %x: index, %y: index, %z: index) attributes {vmoe.kernel} {
  return
}
func.func @float_constant(%a: memref<4xf32>, %c: f32) {
  // expected-error @+1 {{'vmoe.launch' op expects index or integer constants, got 'f32'}}
  vmoe.launch @k grid [1, 1, 1] (%a) constants(%c : f32) : memref<4xf32>
  return
}

// -----

func.func private @k(%a: memref<4xf32>, %x: index, %y: index, %z: index) attributes {vmoe.kernel} {
  return
}
func.func @batch_grid(%a: memref<4xf32>) {
  // expected-error @+1 {{'vmoe.launch' op expects batch_grid = [units per image, units per workgroup], both >= 1}}
  vmoe.launch @k grid [4, 1, 1] (%a) {batch_grid = array<i64: 2, 0>} : memref<4xf32>
  return
}
