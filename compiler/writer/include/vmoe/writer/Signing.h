//===- Signing.h - Ed25519 module signatures (libsodium) --------*- C++ -*-===//
//
// The signing half of module signatures (VMOE_SIGNATURE_ED25519_BLAKE2B,
// format/include/vmoe/module_format.h): key pairs, key ids, and the
// ModuleSigner the writer signs with. Library vmoe_signing, built where
// libsodium is found; the compiler requires it (vmoe-compile --sign-key).
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_WRITER_SIGNING_H
#define VMOE_WRITER_SIGNING_H

#include "vmoe/writer/KeyFiles.h"
#include "vmoe/writer/ModuleDigests.h"

#include <array>
#include <memory>
#include <string>

namespace vmoe {
namespace writer {

using KeyId = std::array<uint8_t, VMOE_SIGNATURE_KEY_ID_SIZE>;

/// The first 8 bytes of BLAKE2b-512 of the public key.
KeyId keyIdOf(const PublicKey &publicKey);

/// An Ed25519 signing key.
class Ed25519Signer : public ModuleSigner {
public:
  /// From the 32-byte seed (the secret key file's contents).
  explicit Ed25519Signer(const SecretSeed &seed);
  ~Ed25519Signer() override;

  const PublicKey &publicKey() const { return pub; }
  uint32_t scheme() const override { return VMOE_SIGNATURE_ED25519_BLAKE2B; }
  void keyId(uint8_t out[VMOE_SIGNATURE_KEY_ID_SIZE]) const override;
  std::unique_ptr<SignatureHash> begin() const override;

private:
  PublicKey pub;
  std::array<uint8_t, 64> secret; // libsodium's seed + public key form
};

/// Reads a secret key file into a signer; null with *error set.
std::unique_ptr<Ed25519Signer> loadSigner(const std::string &path,
                                          std::string *error);

/// Makes a fresh key pair and writes PREFIX.key (mode 0600) and PREFIX.pub
/// (KeyFiles.h); `keyIdHex` gets its key id. Never overwrites a file.
bool generateKeyPair(const std::string &prefix, std::string *keyIdHex,
                     std::string *error);

} // namespace writer
} // namespace vmoe

#endif // VMOE_WRITER_SIGNING_H
