// RUN: vmoe-opt %s -vmoe-cpu-lower-kernels-to-llvm | FileCheck %s
// RUN: vmoe-opt %s -vmoe-cpu-lower-kernels-to-llvm | FileCheck %s --check-prefix=PURE
// RUN: vmoe-opt %s -vmoe-cpu-lower-kernels-to-llvm | mlir-translate --mlir-to-llvmir | FileCheck %s --check-prefix=LLVMIR
// RUN: vmoe-opt %s '-vmoe-cpu-lower-kernels-to-llvm=emit-abi=false' | FileCheck %s --check-prefix=NOABI

// A kernel with scf loops, math.tanh/exp/erf/rsqrt, a vector.fma loop, bf16
// stores, a scratch view, a global and a helper call reaches pure LLVM
// dialect with bare-pointer memrefs; the host function is gone.

// No op of another dialect is left, and no math that would need libm.
// PURE-NOT: {{ (arith|math|scf|cf|vector|memref|affine|func|index|ub)\.}}
// PURE-NOT: llvm.intr.tanh
// PURE-NOT: llvm.intr.exp
// PURE-NOT: llvm.intr.erf
// PURE-NOT: tanhf
// PURE-NOT: erff
// PURE-NOT: expf
// PURE-NOT: @host
// PURE-NOT: @external
// PURE-NOT: malloc

// CHECK-DAG: llvm.mlir.global private constant @table
// CHECK-DAG: llvm.func internal @helper(
// CHECK-DAG: llvm.func internal @axpy(%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: i64) attributes {always_inline
// CHECK-DAG: llvm.func internal @vfma(%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: !llvm.ptr) attributes {always_inline
// CHECK-DAG: llvm.intr.fmuladd({{.*}}) : (vector<8xf32>, vector<8xf32>, vector<8xf32>) -> vector<8xf32>
// CHECK-DAG: llvm.func @axpy_entry(%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr) -> i32 attributes {vmoe.binding_count = 3 : i32, vmoe.constant_count = 1 : i32, vmoe.kernel_name = "axpy", vmoe.scratch_size = 0 : i64}
// CHECK-DAG: llvm.func @vfma_entry(%{{.*}}: !llvm.ptr, %{{.*}}: !llvm.ptr) -> i32 attributes {vmoe.binding_count = 3 : i32, vmoe.constant_count = 0 : i32, vmoe.kernel_name = "vfma", vmoe.scratch_size = 256 : i64}

// Only the entries are external definitions; no libm declarations.
// LLVMIR-NOT: declare {{.*}} @tanhf
// LLVMIR-NOT: declare {{.*}} @expf
// LLVMIR-DAG: define internal void @axpy(ptr %0, ptr %1, ptr %2, i64 %3, i64 %4, i64 %5, i64 %6)
// LLVMIR-DAG: define i32 @axpy_entry(ptr %0, ptr %1)
// LLVMIR-DAG: define i32 @vfma_entry(ptr %0, ptr %1)
// LLVMIR-DAG: define internal float @helper(

// NOABI: llvm.func @axpy(
// NOABI-SAME: vmoe.kernel
// NOABI-NOT: _entry
module {
  memref.global "private" constant @table : memref<4xf32> = dense<[1.0, 2.0, 3.0, 4.0]>
  func.func private @helper(%x: f32) -> f32 {
    %e = math.erf %x : f32
    return %e : f32
  }
  func.func private @axpy(%a: memref<256xf32>, %b: memref<256xf32>, %y: memref<256xf32>, %c0: index, %wx: index, %wy: index, %wz: index) attributes {vmoe.kernel} {
    %c64 = arith.constant 64 : index
    %c1 = arith.constant 1 : index
    %z = arith.constant 0 : index
    %base = arith.muli %wx, %c64 : index
    %ci = arith.index_cast %c0 : index to i64
    %cf = arith.sitofp %ci : i64 to f32
    %g = memref.get_global @table : memref<4xf32>
    %t = memref.load %g[%z] : memref<4xf32>
    scf.for %i = %z to %c64 step %c1 {
      %j = arith.addi %base, %i : index
      %av = memref.load %a[%j] : memref<256xf32>
      %bv = memref.load %b[%j] : memref<256xf32>
      %th = math.tanh %bv : f32
      %e = math.exp %bv : f32
      %er = func.call @helper(%bv) : (f32) -> f32
      %rs = math.rsqrt %av : f32
      %m = arith.mulf %av, %cf : f32
      %r = arith.addf %m, %th : f32
      %r2 = arith.addf %r, %e : f32
      %r3 = arith.addf %r2, %er : f32
      %r4 = arith.addf %r3, %rs : f32
      %r5 = arith.addf %r4, %t : f32
      memref.store %r5, %y[%j] : memref<256xf32>
    }
    return
  }
  func.func @vfma(%a: memref<4x64xf32>, %y: memref<4x64xf32>, %h: memref<64xbf16>, %wx: index, %wy: index, %wz: index, %s: memref<256xi8>) attributes {vmoe.kernel, vmoe.scratch_size = 256 : i64} {
    %c8 = arith.constant 8 : index
    %c64 = arith.constant 64 : index
    %z = arith.constant 0 : index
    %f0 = arith.constant 0.0 : f32
    %sv = memref.view %s[%z][] : memref<256xi8> to memref<64xf32>
    %a2 = memref.collapse_shape %a [[0, 1]] : memref<4x64xf32> into memref<256xf32>
    scf.for %i = %z to %c64 step %c8 {
      %v = vector.transfer_read %a[%wy, %i], %f0 : memref<4x64xf32>, vector<8xf32>
      %w = vector.load %y[%wy, %i] : memref<4x64xf32>, vector<8xf32>
      %u = vector.load %a2[%i] : memref<256xf32>, vector<8xf32>
      %r = vector.fma %v, %u, %w : vector<8xf32>
      %t = math.tanh %r : vector<8xf32>
      vector.store %t, %sv[%i] : memref<64xf32>, vector<8xf32>
      %t2 = vector.load %sv[%i] : memref<64xf32>, vector<8xf32>
      vector.store %t2, %y[%wy, %i] : memref<4x64xf32>, vector<8xf32>
      %hb = arith.truncf %t2 : vector<8xf32> to vector<8xbf16>
      %hb2 = arith.addf %hb, %hb : vector<8xbf16>
      vector.store %hb2, %h[%i] : memref<64xbf16>, vector<8xbf16>
    }
    return
  }
  func.func @host(%x: memref<4xf32>) {
    %m = memref.alloc() : memref<4xf32>
    call @external(%m) : (memref<4xf32>) -> ()
    return
  }
  func.func private @external(memref<4xf32>)
}
