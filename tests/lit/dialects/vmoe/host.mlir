// RUN: vmoe-opt %s -split-input-file | vmoe-opt | FileCheck %s

// The host-level ops round-trip: vmoe.launch and vmoe.routing_stats.

func.func private @k(%a: memref<4xf32>, %c: index, %x: index, %y: index, %z: index) attributes {vmoe.kernel} {
  return
}
func.func private @ks(%a: memref<4xf32>, %x: index, %y: index, %z: index, %s: memref<64xi8>) attributes {vmoe.kernel, vmoe.scratch_size = 64 : i64} {
  return
}
// CHECK-LABEL: func.func @host
func.func @host(%a: memref<4xf32>, %cap: index, %n: memref<1x4xi32>, %t: memref<8xi32>) {
  // CHECK: vmoe.launch @k grid [2, 1, 1](%{{.*}}) constants(%{{.*}} : index) : memref<4xf32>
  vmoe.launch @k grid [2, 1, 1] (%a) constants(%cap : index) : memref<4xf32>
  // CHECK: vmoe.launch @ks grid [1, 3, 1](%{{.*}}) : memref<4xf32>
  vmoe.launch @ks grid [1, 3, 1] (%a) : memref<4xf32>
  // CHECK: vmoe.routing_stats %{{.*}}, %{{.*}} {layer = 0 : i64} : memref<1x4xi32>, memref<8xi32>
  vmoe.routing_stats %n, %t {layer = 0} : memref<1x4xi32>, memref<8xi32>
  return
}
