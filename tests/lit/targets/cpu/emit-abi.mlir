// RUN: vmoe-opt %s -split-input-file -vmoe-cpu-emit-abi -verify-diagnostics | FileCheck %s

// Two bindings, one push constant, no scratch. The entry follows
// format/include/vmoe/kernel_abi.h (LP64): dispatch {bindings @0,
// binding_count @16, constant_count @20, constants @24}, workgroup
// {workgroup_id[3] @0, scratch @24, scratch_size @32}.

// CHECK-LABEL: llvm.func internal @scale(
// CHECK-SAME: attributes {always_inline}
// CHECK: llvm.call @helper
// CHECK-LABEL: llvm.func internal @helper(
// CHECK-LABEL: llvm.func @scale_entry(
// CHECK-SAME: %[[D:.*]]: !llvm.ptr, %[[W:.*]]: !llvm.ptr) -> i32
// CHECK-SAME: vmoe.binding_count = 2 : i32
// CHECK-SAME: vmoe.constant_count = 1 : i32
// CHECK-SAME: vmoe.kernel_name = "scale"
// CHECK-SAME: vmoe.scratch_size = 0 : i64
// Counts are checked first; the first short one decides the status.
// CHECK: %[[NBP:.*]] = llvm.getelementptr inbounds %[[D]][16] : (!llvm.ptr) -> !llvm.ptr, i8
// CHECK: %[[NB:.*]] = llvm.load %[[NBP]] {alignment = 4 : i64} : !llvm.ptr -> i32
// CHECK: %[[TWO:.*]] = llvm.mlir.constant(2 : i32) : i32
// CHECK: %[[BOK:.*]] = llvm.icmp "uge" %[[NB]], %[[TWO]] : i32
// CHECK: %[[NCP:.*]] = llvm.getelementptr inbounds %[[D]][20] : (!llvm.ptr) -> !llvm.ptr, i8
// CHECK: %[[NC:.*]] = llvm.load %[[NCP]] {alignment = 4 : i64} : !llvm.ptr -> i32
// CHECK: %[[ONE:.*]] = llvm.mlir.constant(1 : i32) : i32
// CHECK: %[[COK:.*]] = llvm.icmp "uge" %[[NC]], %[[ONE]] : i32
// CHECK: %[[OK:.*]] = llvm.and %[[BOK]], %[[COK]] : i1
// CHECK-DAG: %[[E2:.*]] = llvm.mlir.constant(2 : i32) : i32
// CHECK-DAG: %[[E1:.*]] = llvm.mlir.constant(1 : i32) : i32
// CHECK: %[[STATUS:.*]] = llvm.select %[[BOK]], %[[E2]], %[[E1]] : i1, i32
// CHECK: llvm.cond_br %[[OK]] weights([1048576, 1]), ^[[CALL:.*]], ^[[FAIL:.*]]
// CHECK: ^[[FAIL]]:
// CHECK-NEXT: llvm.return %[[STATUS]] : i32
// CHECK: ^[[CALL]]:
// CHECK: %[[B:.*]] = llvm.load %[[D]] {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
// CHECK: %[[B0P:.*]] = llvm.getelementptr inbounds %[[B]][0] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[B0:.*]] = llvm.load %[[B0P]] {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
// CHECK: %[[B1P:.*]] = llvm.getelementptr inbounds %[[B]][1] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[B1:.*]] = llvm.load %[[B1P]] {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
// CHECK: %[[CP:.*]] = llvm.getelementptr inbounds %[[D]][24] : (!llvm.ptr) -> !llvm.ptr, i8
// CHECK: %[[C:.*]] = llvm.load %[[CP]] {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
// CHECK: %[[C0P:.*]] = llvm.getelementptr inbounds %[[C]][0] : (!llvm.ptr) -> !llvm.ptr, i64
// CHECK: %[[C0:.*]] = llvm.load %[[C0P]] {alignment = 8 : i64} : !llvm.ptr -> i64
// CHECK: %[[X32:.*]] = llvm.load %[[W]] {alignment = 4 : i64} : !llvm.ptr -> i32
// CHECK: %[[X:.*]] = llvm.zext %[[X32]] : i32 to i64
// CHECK: %[[YP:.*]] = llvm.getelementptr inbounds %[[W]][4] : (!llvm.ptr) -> !llvm.ptr, i8
// CHECK: %[[Y32:.*]] = llvm.load %[[YP]] {alignment = 4 : i64} : !llvm.ptr -> i32
// CHECK: %[[Y:.*]] = llvm.zext %[[Y32]] : i32 to i64
// CHECK: %[[ZP:.*]] = llvm.getelementptr inbounds %[[W]][8] : (!llvm.ptr) -> !llvm.ptr, i8
// CHECK: %[[Z32:.*]] = llvm.load %[[ZP]] {alignment = 4 : i64} : !llvm.ptr -> i32
// CHECK: %[[Z:.*]] = llvm.zext %[[Z32]] : i32 to i64
// CHECK: llvm.call @scale(%[[B0]], %[[B1]], %[[C0]], %[[X]], %[[Y]], %[[Z]]) : (!llvm.ptr, !llvm.ptr, i64, i64, i64, i64) -> ()
// CHECK: %[[ZERO:.*]] = llvm.mlir.constant(0 : i32) : i32
// CHECK: llvm.return %[[ZERO]] : i32
module {
  llvm.func @scale(%a: !llvm.ptr, %y: !llvm.ptr, %c: i64, %x: i64, %yy: i64, %z: i64) attributes {vmoe.kernel} {
    llvm.call @helper() : () -> ()
    llvm.return
  }
  llvm.func @helper() {
    llvm.return
  }
}

// -----

// Scratch: the last pointer comes from the workgroup state, and its size is
// checked against vmoe.scratch_size.

// CHECK-LABEL: llvm.func internal @tmp(
// CHECK-NOT: vmoe.
// CHECK-LABEL: llvm.func @tmp_entry(
// CHECK-SAME: %[[D:.*]]: !llvm.ptr, %[[W:.*]]: !llvm.ptr) -> i32
// CHECK-SAME: vmoe.binding_count = 1 : i32
// CHECK-SAME: vmoe.constant_count = 0 : i32
// CHECK-SAME: vmoe.scratch_size = 4096 : i64
// CHECK: %[[SSP:.*]] = llvm.getelementptr inbounds %[[W]][32] : (!llvm.ptr) -> !llvm.ptr, i8
// CHECK: %[[SS:.*]] = llvm.load %[[SSP]] {alignment = 8 : i64} : !llvm.ptr -> i64
// CHECK: %[[N:.*]] = llvm.mlir.constant(4096 : i64) : i64
// CHECK: llvm.icmp "uge" %[[SS]], %[[N]] : i64
// CHECK: llvm.select {{.*}} : i1, i32
// CHECK: llvm.cond_br
// CHECK: %[[SP:.*]] = llvm.getelementptr inbounds %[[W]][24] : (!llvm.ptr) -> !llvm.ptr, i8
// CHECK: %[[S:.*]] = llvm.load %[[SP]] {alignment = 8 : i64} : !llvm.ptr -> !llvm.ptr
// CHECK: llvm.call @tmp(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[S]])
module {
  llvm.func @tmp(%a: !llvm.ptr, %x: i64, %y: i64, %z: i64, %s: !llvm.ptr) attributes {vmoe.kernel, vmoe.scratch_size = 4096 : i64} {
    llvm.return
  }
}

// -----

// No bindings or constants: nothing to check, no branch.

// Globals with an initializer become internal.
// CHECK: llvm.mlir.global internal constant @table
// CHECK-LABEL: llvm.func @ids_entry(
// CHECK-SAME: vmoe.binding_count = 0 : i32
// CHECK-NOT: llvm.cond_br
// CHECK: llvm.call @ids(
// CHECK: llvm.return
module {
  llvm.mlir.global external constant @table(dense<1.0> : tensor<4xf32>) : !llvm.array<4 x f32>
  llvm.func @ids(%x: i64, %y: i64, %z: i64) attributes {vmoe.kernel} {
    llvm.return
  }
}

// -----

module {
  llvm.func @k(%x: i64, %y: i64, %z: i64) attributes {vmoe.kernel} {
    llvm.return
  }
  // expected-error @+1 {{uses the symbol of the ABI entry of kernel @k}}
  llvm.func @k_entry() {
    llvm.return
  }
}

// -----

module {
  // expected-error @+1 {{argument #1 has type 'i32'}}
  llvm.func @k(%a: !llvm.ptr, %c: i32, %x: i64, %y: i64, %z: i64) attributes {vmoe.kernel} {
    llvm.return
  }
}

// -----

module {
  // expected-error @+1 {{must take the workgroup ids x, y, z}}
  llvm.func @k(%a: !llvm.ptr, %x: i64, %y: i64) attributes {vmoe.kernel} {
    llvm.return
  }
}

// -----

module {
  // expected-error @+1 {{must take the scratch pointer as last argument}}
  llvm.func @k(%a: !llvm.ptr, %x: i64, %y: i64, %z: i64) attributes {vmoe.kernel, vmoe.scratch_size = 64 : i64} {
    llvm.return
  }
}

// -----

module {
  llvm.func @k(%x: i64, %y: i64, %z: i64) attributes {vmoe.kernel} {
    // expected-error @+1 {{was not lowered to the LLVM dialect}}
    %0 = arith.constant 0 : index
    llvm.return
  }
}
