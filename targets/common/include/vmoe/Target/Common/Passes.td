//===- Passes.td - passes both targets use -----------------*- tablegen -*-===//

#ifndef VMOE_TARGET_COMMON_PASSES_TD
#define VMOE_TARGET_COMMON_PASSES_TD

include "mlir/Pass/PassBase.td"

def VmoeExpandMath : Pass<"vmoe-expand-math"> {
  let summary = "Expand math ops into code that needs no libm";
  let description = [{
    Rewrites f32 (and, through f32, bf16/f16) transcendental math ops (tanh,
    exp, erf, log, sin, cos, atan, ...) into MLIR's polynomial
    approximations, and hyperbolic functions, powf, fpowi, exp2 and clampf
    into ops that are approximated or lower to LLVM instructions. The CPU
    shared object then needs no libm, the CUDA PTX no libdevice, and both
    compute the same approximations. f64 math is left alone (on the CPU it
    lowers to libm calls, which the shared-object link reports as
    unresolved).
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
}

#endif // VMOE_TARGET_COMMON_PASSES_TD
