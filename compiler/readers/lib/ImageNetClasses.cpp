//===- ImageNetClasses.cpp - ImageNet-1k's class names --------------------===//

#include "ImageNetClasses.h"

namespace vmoe::readers::detail {

const std::vector<std::string> &imagenetClassNames() {
  static const std::vector<std::string> names = {
#include "imagenet_classes.inc"
  };
  return names;
}

} // namespace vmoe::readers::detail
