// RUN: vmoe-opt %s -vmoe-expand-math | FileCheck %s

// f32 transcendental math becomes polynomial code (no libm at load time);
// f64 math is left alone.

// CHECK-LABEL: func.func @f32_math(
// CHECK-NOT: math.tanh
// CHECK-NOT: math.exp
// CHECK-NOT: math.erf
// CHECK-NOT: math.log
// CHECK-NOT: math.sinh
// CHECK-NOT: math.powf
// CHECK: math.fma
// CHECK: return
func.func @f32_math(%x: f32, %v: vector<8xf32>) -> (f32, f32, f32, f32, f32, f32, vector<8xf32>) {
  %0 = math.tanh %x : f32
  %1 = math.exp %x : f32
  %2 = math.erf %x : f32
  %3 = math.log10 %x : f32
  %4 = math.sinh %x : f32
  %5 = math.powf %x, %x : f32
  %6 = math.tanh %v : vector<8xf32>
  return %0, %1, %2, %3, %4, %5, %6 : f32, f32, f32, f32, f32, f32, vector<8xf32>
}

// bf16 goes through f32.
// CHECK-LABEL: func.func @bf16_math(
// CHECK-NOT: math.tanh
// CHECK: arith.extf {{.*}} : bf16 to f32
// CHECK: arith.truncf {{.*}} : f32 to bf16
func.func @bf16_math(%x: bf16) -> bf16 {
  %0 = math.tanh %x : bf16
  return %0 : bf16
}

// CHECK-LABEL: func.func @f64_math(
// CHECK: math.tanh {{.*}} : f64
// rsqrt is left for convert-math-to-llvm (1 / sqrt, an instruction).
// CHECK: math.rsqrt {{.*}} : f32
func.func @f64_math(%x: f64, %y: f32) -> (f64, f32) {
  %0 = math.tanh %x : f64
  %1 = math.rsqrt %y : f32
  return %0, %1 : f64, f32
}
