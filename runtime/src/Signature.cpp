//===- Signature.cpp - Module signatures (libsodium) ----------------------===//

#include "Signature.h"

#include "Diagnostics.h"

#include <sodium.h>

#include <cstring>

namespace vmoe {
namespace integrity {

namespace {

void keyIdHex(const uint8_t id[VMOE_SIGNATURE_KEY_ID_SIZE], char out[17]) {
  for (int i = 0; i < VMOE_SIGNATURE_KEY_ID_SIZE; ++i)
    snprintf(out + 2 * i, 3, "%02x", id[i]);
}

} // namespace

vmoe_status_t verifySignature(const uint8_t *data,
                              const vmoe_module_header_t &header,
                              const uint8_t *keys, uint32_t keyCount,
                              vmoe_message_t *message) {
  if (sodium_init() < 0)
    return fail(message, VMOE_STATUS_INTERNAL,
                "libsodium failed to initialize");
  if (header.signature_scheme == VMOE_SIGNATURE_NONE)
    return fail(message, VMOE_STATUS_PERMISSION_DENIED,
                "module is not signed, and trusted keys are set: sign it "
                "(vmoe-compile --sign-key) with one of the %u trusted key(s)",
                keyCount);
  char id[17];
  keyIdHex(header.signature_key_id, id);
  if (header.signature_scheme != VMOE_SIGNATURE_ED25519_BLAKE2B)
    return fail(message, VMOE_STATUS_PERMISSION_DENIED,
                "module is signed (key %s) with scheme %u, which this "
                "runtime does not know",
                id, header.signature_scheme);
  const uint8_t *key = nullptr;
  for (uint32_t k = 0; k < keyCount && !key; ++k) {
    const uint8_t *candidate = keys + k * VMOE_SIGNATURE_PUBLIC_KEY_SIZE;
    unsigned char hash[64];
    crypto_generichash(hash, sizeof(hash), candidate,
                       VMOE_SIGNATURE_PUBLIC_KEY_SIZE, nullptr, 0);
    if (memcmp(hash, header.signature_key_id, VMOE_SIGNATURE_KEY_ID_SIZE) == 0)
      key = candidate;
  }
  if (!key)
    return fail(message, VMOE_STATUS_PERMISSION_DENIED,
                "module is signed by key %s, which is not among the %u "
                "trusted key(s)",
                id, keyCount);
  // The signed bytes: the whole file, the signature field as zeros.
  static const uint8_t zeros[VMOE_SIGNATURE_SIZE] = {};
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, 64);
  crypto_generichash_update(&state, data, VMOE_HEADER_SIGNATURE_OFFSET);
  crypto_generichash_update(&state, zeros, sizeof(zeros));
  uint64_t rest = VMOE_HEADER_SIGNATURE_OFFSET + VMOE_SIGNATURE_SIZE;
  crypto_generichash_update(&state, data + rest, header.file_size - rest);
  unsigned char digest[64];
  crypto_generichash_final(&state, digest, sizeof(digest));
  if (crypto_sign_verify_detached(header.signature, digest, sizeof(digest),
                                  key) != 0)
    return fail(message, VMOE_STATUS_PERMISSION_DENIED,
                "module signature by key %s does not match the module's "
                "contents: the file was modified after it was signed",
                id);
  return VMOE_STATUS_OK;
}

} // namespace integrity
} // namespace vmoe
