//===- Signing.cpp - Ed25519 module signatures (libsodium) ----------------===//

#include "vmoe/writer/Signing.h"

#include <sodium.h>

#include <cstring>

namespace vmoe {
namespace writer {

namespace {

bool initSodium() { return sodium_init() >= 0; }

/// BLAKE2b-512 of the file's bytes, then an Ed25519 signature of it.
class Ed25519Hash : public SignatureHash {
public:
  explicit Ed25519Hash(const uint8_t secret[64]) : secret(secret) {
    crypto_generichash_init(&state, nullptr, 0, 64);
  }
  void update(const void *data, size_t size) override {
    crypto_generichash_update(&state, static_cast<const unsigned char *>(data),
                              size);
  }
  bool sign(uint8_t signature[VMOE_SIGNATURE_SIZE]) override {
    unsigned char digest[64];
    crypto_generichash_final(&state, digest, sizeof(digest));
    return crypto_sign_detached(signature, nullptr, digest, sizeof(digest),
                                secret) == 0;
  }

private:
  crypto_generichash_state state;
  const uint8_t *secret;
};

} // namespace

KeyId keyIdOf(const PublicKey &publicKey) {
  unsigned char hash[64];
  crypto_generichash(hash, sizeof(hash), publicKey.data(), publicKey.size(),
                     nullptr, 0);
  KeyId id;
  memcpy(id.data(), hash, id.size());
  return id;
}

Ed25519Signer::Ed25519Signer(const SecretSeed &seed) {
  initSodium();
  crypto_sign_seed_keypair(pub.data(), secret.data(), seed.data());
}

Ed25519Signer::~Ed25519Signer() { sodium_memzero(secret.data(), 64); }

void Ed25519Signer::keyId(uint8_t out[VMOE_SIGNATURE_KEY_ID_SIZE]) const {
  KeyId id = keyIdOf(pub);
  memcpy(out, id.data(), id.size());
}

std::unique_ptr<SignatureHash> Ed25519Signer::begin() const {
  return std::unique_ptr<SignatureHash>(new Ed25519Hash(secret.data()));
}

std::unique_ptr<Ed25519Signer> loadSigner(const std::string &path,
                                          std::string *error) {
  SecretSeed seed;
  if (!readSecretKeyFile(path, seed, error))
    return nullptr;
  std::unique_ptr<Ed25519Signer> signer(new Ed25519Signer(seed));
  sodium_memzero(seed.data(), seed.size());
  return signer;
}

bool generateKeyPair(const std::string &prefix, std::string *keyIdHex,
                     std::string *error) {
  if (!initSodium()) {
    *error = "libsodium failed to initialize";
    return false;
  }
  SecretSeed seed;
  randombytes_buf(seed.data(), seed.size());
  Ed25519Signer signer(seed);
  bool ok = writeKeyFiles(prefix, signer.publicKey(), seed, error);
  sodium_memzero(seed.data(), seed.size());
  if (ok) {
    KeyId id = keyIdOf(signer.publicKey());
    *keyIdHex = toHex(id.data(), id.size());
  }
  return ok;
}

} // namespace writer
} // namespace vmoe
