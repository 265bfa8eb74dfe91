// RUN: vmoe-opt %s -vmoe-cpu-extract-kernels | FileCheck %s --check-prefix=EXTRACT
// RUN: vmoe-opt %s -vmoe-cpu-extract-kernels -convert-func-to-llvm='use-bare-ptr-memref-call-conv=1' -vmoe-cpu-emit-abi | FileCheck %s --check-prefix=ENTRY

// A kernel keeps the largest grid it is launched with, per dim, and its ABI
// entry refuses workgroup ids past it (status 4): a module whose metadata
// asks the runtime for a larger grid gets a failed kernel, not accesses
// past the kernel's buffers. A kernel nothing launches gets no bound.

// EXTRACT: func.func @k(
// EXTRACT-SAME: vmoe.workgroup_count = array<i64: 8, 3, 1>
// EXTRACT: func.func @unlaunched(
// EXTRACT-NOT: vmoe.workgroup_count
// EXTRACT-SAME: {vmoe.kernel}

// ENTRY-LABEL: llvm.func @k_entry(
// ENTRY-SAME: %[[D:.*]]: !llvm.ptr, %[[W:.*]]: !llvm.ptr) -> i32
// ENTRY: %[[X:.*]] = llvm.load %[[W]] {alignment = 4 : i64} : !llvm.ptr -> i32
// ENTRY: %[[GX:.*]] = llvm.mlir.constant(8 : i32) : i32
// ENTRY: %[[XOK:.*]] = llvm.icmp "ult" %[[X]], %[[GX]] : i32
// ENTRY: %[[YP:.*]] = llvm.getelementptr inbounds %[[W]][4] : (!llvm.ptr) -> !llvm.ptr, i8
// ENTRY: %[[Y:.*]] = llvm.load %[[YP]] {alignment = 4 : i64} : !llvm.ptr -> i32
// ENTRY: %[[GY:.*]] = llvm.mlir.constant(3 : i32) : i32
// ENTRY: llvm.icmp "ult" %[[Y]], %[[GY]] : i32
// ENTRY: %[[ZP:.*]] = llvm.getelementptr inbounds %[[W]][8] : (!llvm.ptr) -> !llvm.ptr, i8
// ENTRY: %[[Z:.*]] = llvm.load %[[ZP]] {alignment = 4 : i64} : !llvm.ptr -> i32
// ENTRY: %[[GZ:.*]] = llvm.mlir.constant(1 : i32) : i32
// ENTRY: llvm.icmp "ult" %[[Z]], %[[GZ]] : i32
// ENTRY: llvm.mlir.constant(4 : i32) : i32
// ENTRY: llvm.cond_br
// ENTRY-LABEL: llvm.func @unlaunched_entry(
// ENTRY-NOT: "ult"
// ENTRY: llvm.return
module {
  func.func @k(%a: memref<4xf32>, %x: index, %y: index, %z: index) attributes {vmoe.kernel} {
    return
  }
  func.func @unlaunched(%x: index, %y: index, %z: index) attributes {vmoe.kernel} {
    return
  }
  func.func @host(%a: memref<4xf32>) attributes {vmoe.entry} {
    vmoe.launch @k grid [8, 1, 1] (%a) : memref<4xf32>
    vmoe.launch @k grid [2, 3, 1] (%a) : memref<4xf32>
    return
  }
}
