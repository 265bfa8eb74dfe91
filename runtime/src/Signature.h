//===- Signature.h - Module signatures (libsodium) --------------*- C++ -*-===//
//
// Built only with VMOE_RUNTIME_SIGNATURES (libsodium): the runtime without it
// stays within its size budget and its cross builds need no libsodium.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_SIGNATURE_H
#define VMOE_RUNTIME_SIGNATURE_H

#include "vmoe/module_format.h"
#include "vmoe/runtime.h"

#include <cstdint>

namespace vmoe {
namespace integrity {

/// Ed25519 over BLAKE2b-512 of [0, file_size) with the signature field read
/// as zeros (module_format.h), checked against the trusted key whose key id
/// the header names. PERMISSION_DENIED when unsigned, signed by a key not
/// among `keys`, or when the signature does not match.
vmoe_status_t verifySignature(const uint8_t *data,
                              const vmoe_module_header_t &header,
                              const uint8_t *keys, uint32_t keyCount,
                              vmoe_message_t *message);

} // namespace integrity
} // namespace vmoe

#endif // VMOE_RUNTIME_SIGNATURE_H
