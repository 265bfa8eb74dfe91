// RUN: vmoe-opt %s --vmoe-cuda-outline-kernels -split-input-file -verify-diagnostics

// expected-error @+1 {{has no vmoe.kernel funcs to compile for CUDA}}
module {
  func.func @model() {
    return
  }
}

// -----

module {
  // expected-error @+1 {{must have one body block and no results to run on CUDA}}
  func.func private @k(%x: memref<4xf32>, %wx: index, %wy: index, %wz: index) -> index
      attributes {vmoe.kernel} {
    return %wx : index
  }
}

// -----

// Two kernels whose names become the same PTX identifier.
module {
  func.func private @"a-b"(%x: memref<4xf32>, %wx: index, %wy: index, %wz: index)
      attributes {vmoe.kernel} {
    return
  }
  // expected-error @+1 {{kernels @a_b and @a-b have the same CUDA entry name 'a_b'}}
  func.func private @a_b(%x: memref<4xf32>, %wx: index, %wy: index, %wz: index)
      attributes {vmoe.kernel} {
    return
  }
}

// -----

// The kernel func contract both targets share (targets/common): bindings
// have a static shape.
module {
  // expected-error @+1 {{binding #0 has type 'memref<?xf32>'}}
  func.func private @k(%x: memref<?xf32>, %wx: index, %wy: index, %wz: index)
      attributes {vmoe.kernel} {
    return
  }
}
