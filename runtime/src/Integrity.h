//===- Integrity.h - Digests and signatures at load -------------*- C++ -*-===//
//
// The integrity checks of a module load (format/include/vmoe/module_format.h
// says what each digest covers), in the order Module runs them:
//   checkSignature      with trusted keys only: Ed25519 over BLAKE2b-512 of
//                       the whole file (Signature.cpp, libsodium; without
//                       VMOE_RUNTIME_SIGNATURES keys are UNSUPPORTED)
//   checkMetadataDigest the header and the FlatBuffer, before the FlatBuffer
//                       verifier reads a byte of it
//   checkSegmentDigests after the validator (segment ranges are sound): the
//                       executables always, the weights and the padding
//                       between segments unless the caller opted out
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_INTEGRITY_H
#define VMOE_RUNTIME_INTEGRITY_H

#include "ModuleVerifier.h"
#include "vmoe/runtime.h"

#include <cstdint>

namespace vmoe {
namespace integrity {

/// The 1.1 header fields outside the digests' ranges: reserved bits, and an
/// unsigned module's key id and signature (all zero).
vmoe_status_t checkSignatureFields(const vmoe_module_header_t &header,
                                   vmoe_message_t *message);

/// Refuses the module unless it is signed by one of `keyCount` trusted keys
/// (32 bytes each at `keys`). The header's ranges must have been checked.
vmoe_status_t checkSignature(const uint8_t *data,
                             const vmoe_module_header_t &header,
                             const uint8_t *keys, uint32_t keyCount,
                             vmoe_message_t *message);

vmoe_status_t checkMetadataDigest(const uint8_t *data,
                                  const vmoe_module_header_t &header,
                                  vmoe_message_t *message);

/// `weights`: check the segments no executable uses, and that the padding
/// of the segment area is zero.
vmoe_status_t checkSegmentDigests(const VerifiedModule &module, bool weights,
                                  vmoe_message_t *message);

} // namespace integrity
} // namespace vmoe

#endif // VMOE_RUNTIME_INTEGRITY_H
