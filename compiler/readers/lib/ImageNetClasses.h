//===- ImageNetClasses.h - ImageNet-1k's class names ------------*- C++ -*-===//
//
// The 1000 class names of ImageNet-1k (ILSVRC-2012) in label order, from
// models/imagenet/classes.txt (embedded at build time): the presets' class
// names.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_READERS_LIB_IMAGENETCLASSES_H
#define VMOE_READERS_LIB_IMAGENETCLASSES_H

#include <string>
#include <vector>

namespace vmoe::readers::detail {

const std::vector<std::string> &imagenetClassNames();

} // namespace vmoe::readers::detail

#endif // VMOE_READERS_LIB_IMAGENETCLASSES_H
