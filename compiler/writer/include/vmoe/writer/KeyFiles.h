//===- KeyFiles.h - Ed25519 key files for module signatures -----*- C++ -*-===//
//
// The files `vmoe-compile --generate-signing-key=PREFIX` writes, and that
// `vmoe-compile --sign-key` and `vmoe-run --trusted-key` read: one line of
// text each, a tag and 64 hex digits,
//
//   PREFIX.pub  "vmoe-ed25519-public-key <32-byte public key in hex>\n"
//   PREFIX.key  "vmoe-ed25519-secret-key <32-byte seed in hex>\n"
//
// The seed is the RFC 8032 Ed25519 private key; the key pair is derived from
// it. The secret key file is created with mode 0600 and refused when group
// or others may read it. Plain C++, no cryptography: reading a public key
// needs none.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_WRITER_KEYFILES_H
#define VMOE_WRITER_KEYFILES_H

#include <array>
#include <cstdint>
#include <string>

namespace vmoe {
namespace writer {

using PublicKey = std::array<uint8_t, 32>;
using SecretSeed = std::array<uint8_t, 32>;

constexpr const char *kPublicKeyTag = "vmoe-ed25519-public-key";
constexpr const char *kSecretKeyTag = "vmoe-ed25519-secret-key";

/// Lower-case hex of `size` bytes.
std::string toHex(const uint8_t *bytes, size_t size);

/// Reads a public key file. False with *error set (naming the file).
bool readPublicKeyFile(const std::string &path, PublicKey &key,
                       std::string *error);
/// Reads a secret key file; refuses one that group or others may read.
bool readSecretKeyFile(const std::string &path, SecretSeed &seed,
                       std::string *error);
/// Writes both files of a key pair. Neither may exist (O_EXCL): a key is
/// never overwritten. The secret key file gets mode 0600.
bool writeKeyFiles(const std::string &prefix, const PublicKey &publicKey,
                   const SecretSeed &seed, std::string *error);

} // namespace writer
} // namespace vmoe

#endif // VMOE_WRITER_KEYFILES_H
