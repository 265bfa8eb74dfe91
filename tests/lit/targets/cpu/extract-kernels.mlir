// RUN: vmoe-opt %s -split-input-file -vmoe-cpu-extract-kernels -verify-diagnostics | FileCheck %s

// Keeps the kernels and what they reference (transitively), in module order;
// drops the host schedule function, its callees and unused globals. Kept
// helpers with a body become private; kernels keep their visibility.

// CHECK-LABEL: module {
// CHECK-NEXT: memref.global "private" constant @table
// CHECK-NEXT: func.func private @leaf(
// CHECK: func.func private @helper(
// CHECK: func.func private @k0(
// CHECK-SAME: attributes {vmoe.kernel}
// CHECK: func.func @k1(
// CHECK-SAME: attributes {vmoe.kernel, vmoe.scratch_size = 64 : i64}
// CHECK-NOT: @unused
// CHECK-NOT: @host
// CHECK-NOT: @external
// CHECK: }
module {
  memref.global "private" constant @table : memref<4xf32> = dense<1.0>
  memref.global "private" constant @unused_table : memref<4xf32> = dense<2.0>
  func.func @leaf(%x: f32) -> f32 {
    return %x : f32
  }
  func.func @helper(%x: f32) -> f32 {
    %0 = func.call @leaf(%x) : (f32) -> f32
    return %0 : f32
  }
  func.func private @k0(%a: memref<16xf32>, %c: index, %x: index, %y: index, %z: index) attributes {vmoe.kernel} {
    %g = memref.get_global @table : memref<4xf32>
    %c0 = arith.constant 0 : index
    %v = memref.load %g[%c0] : memref<4xf32>
    %r = func.call @helper(%v) : (f32) -> f32
    memref.store %r, %a[%c0] : memref<16xf32>
    return
  }
  func.func @k1(%a: memref<2x8xbf16>, %b: memref<8xi8>, %x: index, %y: index, %z: index, %s: memref<64xi8>) attributes {vmoe.kernel, vmoe.scratch_size = 64 : i64} {
    return
  }
  func.func @unused_helper() {
    return
  }
  func.func private @external(memref<16xf32>)
  func.func @host(%a: memref<16xf32>) attributes {vmoe.entry} {
    %m = memref.alloc() : memref<16xf32>
    func.call @external(%m) : (memref<16xf32>) -> ()
    return
  }
}

// -----

module {
  // expected-error @+1 {{binding #0 has type 'memref<?xf32>'}}
  func.func @k(%a: memref<?xf32>, %x: index, %y: index, %z: index) attributes {vmoe.kernel} {
    return
  }
}

// -----

module {
  // expected-error @+1 {{binding #0 has type 'memref<4xf32, strided<[2]>>'}}
  func.func @k(%a: memref<4xf32, strided<[2]>>, %x: index, %y: index, %z: index) attributes {vmoe.kernel} {
    return
  }
}

// -----

module {
  // expected-error @+1 {{argument #1 has type 'i32'}}
  func.func @k(%a: memref<4xf32>, %c: i32, %x: index, %y: index, %z: index) attributes {vmoe.kernel} {
    return
  }
}

// -----

module {
  // expected-error @+1 {{must end with the workgroup ids x, y, z}}
  func.func @k(%a: memref<4xf32>, %x: index, %y: index) attributes {vmoe.kernel} {
    return
  }
}

// -----

module {
  // expected-error @+1 {{with vmoe.scratch_size = 128 must take a last argument of type memref<128xi8>}}
  func.func @k(%a: memref<4xf32>, %x: index, %y: index, %z: index, %s: memref<64xi8>) attributes {vmoe.kernel, vmoe.scratch_size = 128 : i64} {
    return
  }
}

// -----

module {
  // expected-error @+1 {{must not return values}}
  func.func @k(%x: index, %y: index, %z: index) -> index attributes {vmoe.kernel} {
    return %x : index
  }
}

// -----

module {
  // A memref after the push constants that is not the scratch.
  // expected-error @+1 {{argument #3 has type 'memref<4xf32>'}}
  func.func @k(%x: index, %y: index, %z: index, %a: memref<4xf32>) attributes {vmoe.kernel} {
    return
  }
}

// -----

// expected-error @+1 {{module contains no func.func with the vmoe.kernel attribute}}
module {
  func.func @host() {
    return
  }
}
