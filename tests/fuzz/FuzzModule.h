//===- FuzzModule.h - Module-aware mutation for the module fuzzers -*- C++
//-*-===//
//
// A module file is a header, the metadata FlatBuffer, then the segments
// (weights and the executables' code). What the verifier reads lives before
// the segment base; mutating the (large) segment bytes mostly tests nothing.
// With libFuzzer, the custom mutator below mutates the bytes before the
// segment base nine times in ten and the whole file otherwise. Most mutants
// then get their metadata digest recomputed: otherwise the digest refuses
// them all and the verifier behind it is never reached.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_TESTS_FUZZ_FUZZMODULE_H
#define VMOE_TESTS_FUZZ_FUZZMODULE_H

#include "vmoe/module_format.h"
#include "vmoe/writer/ModuleDigests.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#ifdef VMOE_LIBFUZZER
extern "C" size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t maxSize);

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size,
                                          size_t maxSize, unsigned seed) {
  vmoe_module_header_t header;
  if (size < sizeof(header) || seed % 10 == 0)
    return LLVMFuzzerMutate(data, size, maxSize);
  memcpy(&header, data, sizeof(header));
  uint64_t prefix = header.segment_base;
  if (prefix < sizeof(header) || prefix >= size)
    return LLVMFuzzerMutate(data, size, maxSize);
  // Mutate [0, prefix) in place, keeping its size: offsets into the
  // segments stay meaningful.
  size_t mutated = LLVMFuzzerMutate(data, prefix, prefix);
  if (mutated < prefix)
    memset(data + mutated, 0, prefix - mutated);
  std::string error;
  if (seed % 10 != 1)
    vmoe::writer::resealMetadata(data, size, &error);
  return size;
}
#endif

#endif // VMOE_TESTS_FUZZ_FUZZMODULE_H
