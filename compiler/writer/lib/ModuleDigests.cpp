//===- ModuleDigests.cpp - Digests and signatures of module files ---------===//

#include "vmoe/writer/ModuleDigests.h"

#include <cstring>

// Header-only XXH3 (decision of issue #17): nothing to link, the same code in
// the writer and the runtime.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace vmoe {
namespace writer {

static_assert(sizeof(vmoe_module_header_t) == VMOE_MODULE_HEADER_SIZE,
              "the header struct is the on-disk header");
static_assert(offsetof(vmoe_module_header_t, metadata_digest) ==
                  VMOE_HEADER_METADATA_DIGEST_OFFSET,
              "metadata digest offset");
static_assert(offsetof(vmoe_module_header_t, signature) ==
                  VMOE_HEADER_SIGNATURE_OFFSET,
              "signature offset");

std::string digestHex(const Digest128 &digest) {
  static const char digits[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[15 - i] = digits[(digest.high >> (4 * i)) & 15];
    out[31 - i] = digits[(digest.low >> (4 * i)) & 15];
  }
  return out;
}

Digest128 digestBytes(const void *data, uint64_t size) {
  XXH128_hash_t h = XXH3_128bits(data, static_cast<size_t>(size));
  return {h.low64, h.high64};
}

Digest128 metadataDigest(const uint8_t *prefix, uint64_t segmentBase) {
  uint8_t header[VMOE_MODULE_HEADER_SIZE];
  memcpy(header, prefix, sizeof(header));
  memset(header + VMOE_HEADER_METADATA_DIGEST_OFFSET, 0,
         VMOE_HEADER_METADATA_DIGEST_SIZE);
  memset(header + VMOE_HEADER_SIGNATURE_OFFSET, 0, VMOE_SIGNATURE_SIZE);
  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  XXH3_128bits_update(&state, header, sizeof(header));
  XXH3_128bits_update(&state, prefix + sizeof(header),
                      static_cast<size_t>(segmentBase - sizeof(header)));
  XXH128_hash_t h = XXH3_128bits_digest(&state);
  return {h.low64, h.high64};
}

bool resealMetadata(uint8_t *bytes, uint64_t size, std::string *error) {
  vmoe_module_header_t header;
  if (size < sizeof(header)) {
    *error = "the module is smaller than its header";
    return false;
  }
  memcpy(&header, bytes, sizeof(header));
  if (header.segment_base < sizeof(header) || header.segment_base > size) {
    *error = "the module's segment base lies outside the buffer";
    return false;
  }
  Digest128 digest = metadataDigest(bytes, header.segment_base);
  header.metadata_digest[0] = digest.low;
  header.metadata_digest[1] = digest.high;
  memcpy(bytes, &header, sizeof(header));
  return true;
}

bool signModule(uint8_t *bytes, uint64_t size, const ModuleSigner &signer,
                std::string *error) {
  vmoe_module_header_t header;
  if (size < sizeof(header)) {
    *error = "the module is smaller than its header";
    return false;
  }
  memcpy(&header, bytes, sizeof(header));
  if (header.file_size > size) {
    *error = "the module is truncated";
    return false;
  }
  header.signature_scheme = signer.scheme();
  header.signature_reserved = 0;
  signer.keyId(header.signature_key_id);
  memset(header.signature, 0, sizeof(header.signature));
  memcpy(bytes, &header, sizeof(header));
  if (!resealMetadata(bytes, size, error))
    return false;
  std::unique_ptr<SignatureHash> hash = signer.begin();
  hash->update(bytes, static_cast<size_t>(header.file_size));
  if (!hash->sign(header.signature)) {
    *error = "signing the module failed";
    return false;
  }
  memcpy(bytes + VMOE_HEADER_SIGNATURE_OFFSET, header.signature,
         sizeof(header.signature));
  return true;
}

} // namespace writer
} // namespace vmoe
