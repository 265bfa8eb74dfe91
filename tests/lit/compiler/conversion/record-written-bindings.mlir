// RUN: vmoe-opt %s -vmoe-record-written-bindings | FileCheck %s

// Each kernel records, per leading memref argument (its bindings), whether
// it may write it: the runtime binds no constant to a written binding. Writes
// are found through views and calls; a use the analysis does not understand
// counts as a write.

// CHECK-LABEL: func.func @scalar(
// CHECK-SAME: vmoe.written_bindings = array<i1: false, true>
func.func @scalar(%in: memref<16xf32>, %out: memref<16xf32>, %i: index)
    attributes {vmoe.kernel} {
  %v = memref.load %in[%i] : memref<16xf32>
  memref.store %v, %out[%i] : memref<16xf32>
  return
}

// CHECK-LABEL: func.func @vectors(
// CHECK-SAME: vmoe.written_bindings = array<i1: false, true, true, true, false>
func.func @vectors(%a: memref<16xf32>, %b: memref<16xf32>, %c: memref<16xf32>,
                   %d: memref<16xf32>, %e: memref<16xf32>, %i: index,
                   %m: vector<8xi1>) attributes {vmoe.kernel} {
  %pad = arith.constant 0.0 : f32
  %v = vector.load %a[%i] : memref<16xf32>, vector<8xf32>
  %w = vector.transfer_read %e[%i], %pad : memref<16xf32>, vector<8xf32>
  memref.prefetch %e[%i], write, locality<3>, data : memref<16xf32>
  %n = memref.dim %e, %i : memref<16xf32>
  vector.store %v, %b[%i] : memref<16xf32>, vector<8xf32>
  vector.transfer_write %w, %c[%i] : vector<8xf32>, memref<16xf32>
  vector.maskedstore %d[%i], %m, %v : memref<16xf32>, vector<8xi1>, vector<8xf32>
  return
}

// A copy writes its target, through a view of it.
// CHECK-LABEL: func.func @copy(
// CHECK-SAME: vmoe.written_bindings = array<i1: false, true>
func.func @copy(%src: memref<4x8xf32>, %dst: memref<32xf32>)
    attributes {vmoe.kernel} {
  %view = memref.expand_shape %dst [[0, 1]] output_shape [4, 8]
      : memref<32xf32> into memref<4x8xf32>
  %sub = memref.subview %src[0, 0] [4, 8] [1, 1]
      : memref<4x8xf32> to memref<4x8xf32, strided<[8, 1]>>
  memref.copy %sub, %view : memref<4x8xf32, strided<[8, 1]>> to memref<4x8xf32>
  return
}

// Helpers are not kernels: no flags.
// CHECK-LABEL: func.func private @reads(
// CHECK-NOT: vmoe.written_bindings
// CHECK: func.func private @writes(
// CHECK-NOT: vmoe.written_bindings
// CHECK: func.func private @external(
// CHECK-NOT: vmoe.written_bindings
func.func private @reads(%m: memref<16xf32>, %i: index) -> f32 {
  %v = memref.load %m[%i] : memref<16xf32>
  return %v : f32
}

func.func private @writes(%m: memref<16xf32>, %v: f32, %i: index) {
  memref.store %v, %m[%i] : memref<16xf32>
  return
}

func.func private @external(%m: memref<16xf32>)

// Through calls: a helper that reads, one that writes, and one without a
// body (may do anything).
// CHECK-LABEL: func.func @calls(
// CHECK-SAME: vmoe.written_bindings = array<i1: false, true, true>
func.func @calls(%a: memref<16xf32>, %b: memref<16xf32>, %c: memref<16xf32>,
                 %i: index) attributes {vmoe.kernel} {
  %v = func.call @reads(%a, %i) : (memref<16xf32>, index) -> f32
  func.call @writes(%b, %v, %i) : (memref<16xf32>, f32, index) -> ()
  func.call @external(%c) : (memref<16xf32>) -> ()
  return
}

// The address escapes: conservatively written.
// CHECK-LABEL: func.func @escapes(
// CHECK-SAME: vmoe.written_bindings = array<i1: true>
func.func @escapes(%a: memref<16xf32>) -> index attributes {vmoe.kernel} {
  %p = memref.extract_aligned_pointer_as_index %a : memref<16xf32> -> index
  return %p : index
}
