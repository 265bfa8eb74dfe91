// RUN: vmoe-opt %s --vmoe-cuda-outline-kernels | FileCheck %s
// RUN: vmoe-opt %s --vmoe-cuda-outline-kernels --vmoe-cuda-emulate-on-cpu | FileCheck %s --check-prefix=EMU

// Kernel names made PTX identifiers (a model named "vmoe-fashion-mnist"):
// the gpu.func keeps the kernel's name in vmoe.kernel_name, and the
// emulation finds its kernel func through it.

// CHECK: gpu.func @vmoe_tiny_1_k_0(
// CHECK-SAME: vmoe.kernel_name = "vmoe-tiny.1_k_0"
// CHECK: gpu.func @_9lives(
// CHECK-SAME: vmoe.kernel_name = "9lives"
// EMU: func.func private @"vmoe-tiny.1_k_0"(
// EMU: func.func private @"9lives"(
// EMU: vmoe.launch @"vmoe-tiny.1_k_0" grid [1, 1, 1]
// EMU: vmoe.launch @"9lives" grid [2, 1, 1]

func.func private @"vmoe-tiny.1_k_0"(%x: memref<4xf32>, %wx: index, %wy: index,
                                     %wz: index) attributes {vmoe.kernel} {
  %v = memref.load %x[%wx] : memref<4xf32>
  memref.store %v, %x[%wx] : memref<4xf32>
  return
}

func.func private @"9lives"(%x: memref<40xf32>, %wx: index, %wy: index,
                            %wz: index) attributes {vmoe.kernel} {
  %v = memref.load %x[%wx] : memref<40xf32>
  memref.store %v, %x[%wx] : memref<40xf32>
  return
}

func.func @model(%x: memref<4xf32>, %y: memref<40xf32>) {
  vmoe.launch @"vmoe-tiny.1_k_0" grid [4, 1, 1] (%x) : memref<4xf32>
  vmoe.launch @"9lives" grid [40, 1, 1] (%y) : memref<40xf32>
  return
}
