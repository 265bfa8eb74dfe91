// RUN: vmoe-opt %s --vmoe-cuda-outline-kernels=block-size=64 | FileCheck %s
// RUN: vmoe-opt %s --vmoe-cuda-outline-kernels=block-size=64 --vmoe-cuda-emulate-on-cpu | FileCheck %s --check-prefix=EMU

// One CUDA thread per workgroup: the linear id is split into the workgroup
// id (x fastest), threads past the grid do nothing, and the workgroup's
// scratch is its slice of one buffer for the whole grid (3 x 2 = 6 slices
// of 16 bytes).

// CHECK-LABEL: module attributes {gpu.container_module}
// CHECK: func.func private @scale(
// CHECK: gpu.module @vmoe_cuda
// CHECK: gpu.func @scale(%[[X:.*]]: memref<6x4xf32>, %[[C:.*]]: index, %[[GX:.*]]: index, %[[GY:.*]]: index, %[[GZ:.*]]: index, %[[S:.*]]: memref<96xi8>) kernel
// CHECK-SAME: known_block_size = array<i32: 64, 1, 1>
// CHECK-SAME: vmoe.block_size = 64 : i64
// CHECK-SAME: vmoe.workgroup_scratch_size = 16 : i64
// CHECK: %[[BID:.*]] = gpu.block_id x
// CHECK: %[[BDIM:.*]] = gpu.block_dim x
// CHECK: %[[TID:.*]] = gpu.thread_id x
// CHECK: %[[MUL:.*]] = arith.muli %[[BID]], %[[BDIM]]
// CHECK: %[[LIN:.*]] = arith.addi %[[MUL]], %[[TID]]
// CHECK: %[[XY:.*]] = arith.muli %[[GX]], %[[GY]]
// CHECK: %[[TOTAL:.*]] = arith.muli %[[XY]], %[[GZ]]
// CHECK: %[[IN:.*]] = arith.cmpi ult, %[[LIN]], %[[TOTAL]]
// CHECK: scf.if %[[IN]] {
// CHECK:   %[[WX:.*]] = arith.remui %[[LIN]], %[[GX]]
// CHECK:   %[[REST:.*]] = arith.divui %[[LIN]], %[[GX]]
// CHECK:   %[[WY:.*]] = arith.remui %[[REST]], %[[GY]]
// CHECK:   %[[C16:.*]] = arith.constant 16 : index
// CHECK:   %[[OFF:.*]] = arith.muli %[[LIN]], %[[C16]]
// CHECK:   %[[SLOT:.*]] = memref.view %[[S]][%[[OFF]]][] : memref<96xi8> to memref<16xi8>
// CHECK:   memref.load %[[X]][%[[WX]], %[[WY]]]
// CHECK:   memref.store {{.*}}, %[[SLOT]]
// CHECK: }
// CHECK: gpu.return

// The emulation: one CUDA block per CPU workgroup, its threads in a loop;
// the launch gets the CUDA grid (ceil(6 / 64) = 1 block) and the counts.
// EMU-LABEL: module {
// EMU: func.func private @scale(%[[X:.*]]: memref<6x4xf32>, %[[C:.*]]: index, %[[GX:.*]]: index, %[[GY:.*]]: index, %[[GZ:.*]]: index, %[[WX:.*]]: index, %{{.*}}: index, %{{.*}}: index, %[[S:.*]]: memref<96xi8>)
// EMU-SAME: vmoe.kernel
// EMU-SAME: vmoe.scratch_size = 96 : i64
// EMU: %[[C64:.*]] = arith.constant 64 : index
// EMU: scf.for %[[T:.*]] = %{{.*}} to %[[C64]]
// EMU:   %[[MUL:.*]] = arith.muli %[[WX]], %[[C64]]
// EMU:   arith.addi %[[MUL]], %[[T]]
// EMU-NOT: gpu.
// EMU: vmoe.launch @scale grid [1, 1, 1](%{{.*}}) constants(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : index, index, index, index)
// EMU-NOT: gpu.module

func.func private @scale(%x: memref<6x4xf32>, %c: index, %wx: index,
                         %wy: index, %wz: index, %scratch: memref<16xi8>)
    attributes {vmoe.kernel, vmoe.scratch_size = 16 : i64} {
  %v = memref.load %x[%wx, %wy] : memref<6x4xf32>
  %c0 = arith.constant 0 : index
  %s = memref.view %scratch[%c0][] : memref<16xi8> to memref<4xf32>
  memref.store %v, %s[%c0] : memref<4xf32>
  return
}

func.func @model(%x: memref<6x4xf32>) {
  %c = arith.constant 3 : index
  vmoe.launch @scale grid [3, 2, 1] (%x) constants(%c : index) : memref<6x4xf32>
  return
}
