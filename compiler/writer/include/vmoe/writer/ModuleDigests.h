//===- ModuleDigests.h - Digests and signatures of module files -*- C++ -*-===//
//
// The integrity digests of a module file (XXH3-128, format/include/vmoe/
// module_format.h says what each covers) and the interface through which the
// writer signs a module. The writer computes and stores every digest itself;
// these functions are for tools and tests that edit a module in memory (a
// test that patches a field to reach a verifier check reseals the metadata
// digest afterwards) and for signing a module that is already built.
//
// Signing needs a cryptography library; this part has none: a ModuleSigner
// (vmoe/writer/Signing.h, libsodium) supplies the hash and the signature.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_WRITER_MODULEDIGESTS_H
#define VMOE_WRITER_MODULEDIGESTS_H

#include "vmoe/module_format.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace vmoe {
namespace writer {

/// An XXH3-128 digest: the 128-bit value's halves.
struct Digest128 {
  uint64_t low = 0;
  uint64_t high = 0;
  bool operator==(const Digest128 &o) const {
    return low == o.low && high == o.high;
  }
  bool operator!=(const Digest128 &o) const { return !(*this == o); }
};

/// 32 hex digits, high half first (as xxhsum prints XXH128).
std::string digestHex(const Digest128 &digest);

/// XXH3-128 of `size` bytes (a segment's digest).
Digest128 digestBytes(const void *data, uint64_t size);

/// The metadata digest of a module whose bytes [0, segmentBase) are at
/// `prefix`: XXH3-128 of them with the header's metadata_digest and
/// signature fields read as zeros. segmentBase >= VMOE_MODULE_HEADER_SIZE.
Digest128 metadataDigest(const uint8_t *prefix, uint64_t segmentBase);

/// Recomputes and stores the metadata digest of the module at `bytes`
/// (`size` bytes). False with *error set when its header's segment_base
/// lies outside the buffer.
bool resealMetadata(uint8_t *bytes, uint64_t size, std::string *error);

/// The hash a signature covers, fed with the file's bytes in order (the
/// signature field as zeros), then signed once.
class SignatureHash {
public:
  virtual ~SignatureHash() = default;
  virtual void update(const void *data, size_t size) = 0;
  /// Signs what update() saw; false on failure.
  virtual bool sign(uint8_t signature[VMOE_SIGNATURE_SIZE]) = 0;
};

/// A signing key.
class ModuleSigner {
public:
  virtual ~ModuleSigner() = default;
  /// VMOE_SIGNATURE_*.
  virtual uint32_t scheme() const = 0;
  virtual void keyId(uint8_t out[VMOE_SIGNATURE_KEY_ID_SIZE]) const = 0;
  virtual std::unique_ptr<SignatureHash> begin() const = 0;
};

/// Signs the module at `bytes` (`size` bytes, a whole module file) in place:
/// stores the signer's scheme and key id, reseals the metadata digest, and
/// stores the signature of the file. False with *error set on failure.
bool signModule(uint8_t *bytes, uint64_t size, const ModuleSigner &signer,
                std::string *error);

} // namespace writer
} // namespace vmoe

#endif // VMOE_WRITER_MODULEDIGESTS_H
