//===- ModelConfigLimits.h - bounds of model config values ------*- C++ -*-===//
//
// The ranges the config parser and checkModelConfig both enforce: wide
// enough for any real V-MoE, narrow enough that sizes derived from them
// cannot overflow.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_READERS_LIB_MODELCONFIGLIMITS_H
#define VMOE_READERS_LIB_MODELCONFIGLIMITS_H

#include <cstdint>

namespace vmoe::readers::detail {

constexpr int64_t kMaxImage = 1 << 16;
constexpr int64_t kMaxWidth = 1 << 20; // hidden, mlp, representation
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxExperts = 1 << 16;
constexpr int64_t kMaxClasses = 1 << 24;
constexpr int64_t kMaxBatch = 1 << 20;
constexpr int64_t kMaxGroup = int64_t(1) << 31;
constexpr double kMaxCapacityFactor = 1 << 16;

} // namespace vmoe::readers::detail

#endif // VMOE_READERS_LIB_MODELCONFIGLIMITS_H
