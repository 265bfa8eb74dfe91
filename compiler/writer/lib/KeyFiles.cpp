//===- KeyFiles.cpp - Ed25519 key files for module signatures -------------===//

#include "vmoe/writer/KeyFiles.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vmoe {
namespace writer {

namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/// Reads a small file whole; `st` gets its status.
bool readSmallFile(const std::string &path, std::string &text, struct stat &st,
                   std::string *error) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = "cannot open key file '" + path + "': " + strerror(errno);
    return false;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 4096) {
    close(fd);
    *error = "'" + path + "' is not a key file (not a small regular file)";
    return false;
  }
  text.assign(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = read(fd, &text[done], text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      *error = "cannot read key file '" + path + "'";
      close(fd);
      return false;
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  return true;
}

/// Parses "<tag> <64 hex digits>" with an optional final newline.
bool parseKey(const std::string &path, const std::string &text, const char *tag,
              std::array<uint8_t, 32> &out, std::string *error) {
  std::string body = text;
  if (!body.empty() && body.back() == '\n')
    body.pop_back();
  std::string prefix = std::string(tag) + " ";
  bool ok = body.size() == prefix.size() + 64 &&
            body.compare(0, prefix.size(), prefix) == 0;
  for (size_t i = 0; ok && i < 32; ++i) {
    int hi = hexValue(body[prefix.size() + 2 * i]);
    int lo = hexValue(body[prefix.size() + 2 * i + 1]);
    ok = hi >= 0 && lo >= 0;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  if (!ok)
    *error = "'" + path + "' is not a " + tag + " file (one line: '" + tag +
             "' and 64 hex digits)";
  return ok;
}

bool writeNew(const std::string &path, const std::string &text, mode_t mode,
              std::string *error) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    *error = "cannot create '" + path + "': " + strerror(errno) +
             (errno == EEXIST ? " (keys are never overwritten)" : "");
    return false;
  }
  bool ok =
      write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = close(fd) == 0 && ok;
  if (!ok) {
    *error = "cannot write '" + path + "'";
    unlink(path.c_str());
  }
  return ok;
}

} // namespace

std::string toHex(const uint8_t *bytes, size_t size) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < size; ++i) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 15];
  }
  return out;
}

bool readPublicKeyFile(const std::string &path, PublicKey &key,
                       std::string *error) {
  std::string text;
  struct stat st;
  return readSmallFile(path, text, st, error) &&
         parseKey(path, text, kPublicKeyTag, key, error);
}

bool readSecretKeyFile(const std::string &path, SecretSeed &seed,
                       std::string *error) {
  std::string text;
  struct stat st;
  if (!readSmallFile(path, text, st, error))
    return false;
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    *error = "secret key file '" + path +
             "' is accessible by group or others; chmod 600 it";
    return false;
  }
  return parseKey(path, text, kSecretKeyTag, seed, error);
}

bool writeKeyFiles(const std::string &prefix, const PublicKey &publicKey,
                   const SecretSeed &seed, std::string *error) {
  std::string keyPath = prefix + ".key";
  std::string pubPath = prefix + ".pub";
  // Both names checked first, so that a refused pair leaves nothing behind.
  struct stat st;
  for (const std::string &path : {keyPath, pubPath})
    if (lstat(path.c_str(), &st) == 0) {
      *error = "'" + path + "' exists; keys are never overwritten";
      return false;
    }
  if (!writeNew(keyPath,
                std::string(kSecretKeyTag) + " " +
                    toHex(seed.data(), seed.size()) + "\n",
                0600, error))
    return false;
  if (!writeNew(pubPath,
                std::string(kPublicKeyTag) + " " +
                    toHex(publicKey.data(), publicKey.size()) + "\n",
                0644, error)) {
    unlink(keyPath.c_str());
    return false;
  }
  return true;
}

} // namespace writer
} // namespace vmoe
