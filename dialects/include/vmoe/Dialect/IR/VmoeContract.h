//===- VmoeContract.h - the vmoe.* attributes of the compiler ---*- C++ -*-===//
//
// The discardable attributes through which vmoe-lower-to-kernels, the code
// generation targets and the module serializer talk to each other. Every
// producer and consumer names them through these constants; the vmoe dialect
// verifies their types and values (VmoeContract.cpp) wherever it is loaded.
//
// Kernel functions (lowering -> targets, serializer):
//   vmoe.kernel                  unit      a kernel func (the signature rule is
//                                          the targets' kernel contract)
//   vmoe.scratch_size            i64 >= 0  per-worker scratch bytes
//   vmoe.workgroup_count         array<i64: x, y, z>, each in [1, 2^32)
//                                          the largest grid it is launched
//                                          with (vmoe-cpu-extract-kernels;
//                                          the CPU entry refuses ids past it)
//   vmoe.written_bindings        array<i1: ...>, one per leading memref
//                                          argument: true if the kernel may
//                                          write it (lowerToKernels; the
//                                          runtime binds no constant there)
// CPU ABI entries (vmoe-cpu-emit-abi):
//   vmoe.kernel_name             string    the kernel an entry calls
//   vmoe.binding_count           i32 >= 0
//   vmoe.constant_count          i32 >= 0
// CUDA gpu.func kernels (vmoe-cuda-outline-kernels):
//   vmoe.kernel_name             string    the kernel func it came from
//   vmoe.block_size              i64 in [1, 1024]  CUDA threads per block
//   vmoe.workgroup_scratch_size  i64 >= 0  scratch bytes per workgroup
// The host function (lowering -> serializer):
//   vmoe.entry                   unit      the host schedule function
//   vmoe.batch_multiple          i64 >= 1  the batch step of a call
//   vmoe.moe_layers              [#vmoe.moe_layer<...>]  one per MoE layer
//   vmoe.expert_shards           i64 >= 2  present: one rank's schedule of
//                                          a model whose experts are split
//                                          over this many ranks
// Weight globals (lowering -> serializer):
//   vmoe.packed                  #vmoe.packed_weight<...>  on an
//                                          uninitialized memref.global: the
//                                          parameters it is packed from
//   vmoe.expert_slice            i64 >= 2  on such a global of an
//                                          expert-sharded schedule: its
//                                          batch is one rank's experts of
//                                          this many (the rank picks which)
// Host function arguments (lowering -> serializer):
//   vmoe.input, vmoe.output      i64 >= 0  the model input/result number
//   vmoe.knob                    string    a KnobKind ("batch", "capacity",
//                                          "bpr", "k"), on an index argument
//   vmoe.layer                   i64 >= 0  the MoE layer of a capacity,
//                                          bpr or k knob
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_DIALECT_IR_VMOECONTRACT_H
#define VMOE_DIALECT_IR_VMOECONTRACT_H

#include "llvm/ADT/StringRef.h"

namespace mlir::vmoe {

// Kernel functions.
inline constexpr llvm::StringLiteral kKernelAttrName = "vmoe.kernel";
inline constexpr llvm::StringLiteral kScratchSizeAttrName = "vmoe.scratch_size";
inline constexpr llvm::StringLiteral kWorkgroupCountAttrName =
    "vmoe.workgroup_count";
inline constexpr llvm::StringLiteral kWrittenBindingsAttrName =
    "vmoe.written_bindings";

// Target-made kernel entries.
inline constexpr llvm::StringLiteral kKernelNameAttrName = "vmoe.kernel_name";
inline constexpr llvm::StringLiteral kBindingCountAttrName =
    "vmoe.binding_count";
inline constexpr llvm::StringLiteral kConstantCountAttrName =
    "vmoe.constant_count";
inline constexpr llvm::StringLiteral kBlockSizeAttrName = "vmoe.block_size";
inline constexpr llvm::StringLiteral kWorkgroupScratchSizeAttrName =
    "vmoe.workgroup_scratch_size";

// The host function.
inline constexpr llvm::StringLiteral kEntryAttrName = "vmoe.entry";
inline constexpr llvm::StringLiteral kBatchMultipleAttrName =
    "vmoe.batch_multiple";
inline constexpr llvm::StringLiteral kMoeLayersAttrName = "vmoe.moe_layers";
inline constexpr llvm::StringLiteral kExpertShardsAttrName =
    "vmoe.expert_shards";

// Weight globals.
inline constexpr llvm::StringLiteral kPackedAttrName = "vmoe.packed";
inline constexpr llvm::StringLiteral kExpertSliceAttrName = "vmoe.expert_slice";

// Host function arguments.
inline constexpr llvm::StringLiteral kInputAttrName = "vmoe.input";
inline constexpr llvm::StringLiteral kOutputAttrName = "vmoe.output";
inline constexpr llvm::StringLiteral kKnobAttrName = "vmoe.knob";
inline constexpr llvm::StringLiteral kLayerAttrName = "vmoe.layer";

/// The exported symbol of kernel @k's CPU ABI entry is `k` + this suffix
/// (vmoe-cpu-emit-abi makes it, the serializer records it).
inline constexpr llvm::StringLiteral kCpuEntrySuffix = "_entry";

/// The largest CUDA block (threads per block) vmoe.block_size may ask for.
inline constexpr int64_t kMaxCudaBlockSize = 1024;

} // namespace mlir::vmoe

#endif // VMOE_DIALECT_IR_VMOECONTRACT_H
