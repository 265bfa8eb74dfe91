// RUN: vmoe-opt %s --vmoe-cuda-emulate-on-cpu -verify-diagnostics

// expected-error @+1 {{has no gpu.module @vmoe_cuda (run vmoe-cuda-outline-kernels first)}}
module {
}
