//===- IntegrityTest.cpp - Digests, signatures and load options -----------===//
//
// Every region of a module is covered: one flipped byte in the header, the
// FlatBuffer, an executable, a weight or the padding between segments is
// refused at load; the weight opt-out skips only the weights. The copying
// load survives its file being cut. Signed modules load with the right key
// only (VMOE_RUNTIME_SIGNATURES builds; without it, keys are UNSUPPORTED).
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#if VMOE_TEST_SIGNING
#include "vmoe/writer/Signing.h"
#endif

#include <fcntl.h>
#include <unistd.h>

namespace vmoe {
namespace test {
namespace {

vmoe_module_header_t headerOf(const std::vector<uint8_t> &bytes) {
  vmoe_module_header_t h;
  memcpy(&h, bytes.data(), sizeof(h));
  return h;
}

const fb::Module *rootOf(const std::vector<uint8_t> &bytes) {
  return fb::GetModule(bytes.data() + headerOf(bytes).flatbuffer_offset);
}

/// File offset of segment `i`.
uint64_t segmentAt(const std::vector<uint8_t> &bytes, uint32_t i) {
  return headerOf(bytes).segment_base +
         rootOf(bytes)->segments()->Get(i)->offset();
}

std::vector<uint8_t> addModuleBytes() {
  ModuleWriter w;
  buildAddModule(w);
  return serialize(w);
}

Loaded loadWith(const std::vector<uint8_t> &bytes,
                const vmoe_module_load_options_t &options) {
  Loaded result;
  vmoe_message_t message;
  message.text[0] = 0;
  result.status =
      vmoe_module_load_memory_ex(bytes.data(), bytes.size(), VMOE_MEMORY_COPY,
                                 &options, &result.module, &message);
  if (result.status)
    result.message = message.text;
  return result;
}

vmoe_module_load_options_t skipWeights() {
  vmoe_module_load_options_t options;
  vmoe_module_load_options_init(&options);
  options.verify_weights = VMOE_VERIFY_WEIGHTS_NONE;
  return options;
}

void expectCorrupt(const Loaded &loaded, const std::string &text) {
  EXPECT_EQ(loaded.status, VMOE_STATUS_INVALID_MODULE) << loaded.message;
  EXPECT_NE(loaded.message.find(text), std::string::npos)
      << "message: " << loaded.message << "\nexpected: " << text;
  EXPECT_EQ(loaded.module, nullptr);
}

/// Runs the add module on fixed inputs and checks its output.
void expectAddRuns(vmoe_module_t *module) {
  SessionHolder holder;
  createSession(module, holder, 1);
  if (!holder.session)
    return;
  std::vector<float> a(kAddMaxBatch * kAddWidth), b(a.size()), out(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = 0.5f * float(i % 13);
    b[i] = -0.25f * float(i % 5);
  }
  std::vector<int64_t> shape = {kAddMaxBatch, kAddWidth};
  uint64_t bytes = a.size() * 4;
  vmoe_tensor_t inputs[2] = {tensor(VMOE_DTYPE_F32, shape, a.data(), bytes),
                             tensor(VMOE_DTYPE_F32, shape, b.data(), bytes)};
  vmoe_tensor_t output = tensor(VMOE_DTYPE_F32, shape, out.data(), bytes);
  vmoe_message_t message;
  ASSERT_EQ(vmoe_session_run(holder.session, inputs, 2, &output, 1, nullptr,
                             &message),
            VMOE_STATUS_OK)
      << message.text;
  EXPECT_EQ(out, expectedAdd(a, b));
}

TEST(Integrity, TheWriterRecordsEveryDigest) {
  ModuleWriter w;
  buildAddModule(w);
  std::vector<uint8_t> bytes;
  std::string error;
  writer::ModuleLayout layout;
  ASSERT_TRUE(w.writeToBuffer(bytes, &error, &layout)) << error;
  vmoe_module_header_t h = headerOf(bytes);
  EXPECT_EQ(h.format_minor, VMOE_FORMAT_VERSION_MINOR);
  EXPECT_EQ(h.metadata_digest[0], layout.metadataDigest.low);
  EXPECT_EQ(h.metadata_digest[1], layout.metadataDigest.high);
  EXPECT_EQ(writer::metadataDigest(bytes.data(), h.segment_base),
            layout.metadataDigest);
  EXPECT_EQ(h.signature_scheme, VMOE_SIGNATURE_NONE);
  const fb::Module *m = rootOf(bytes);
  ASSERT_EQ(m->segment_digests()->size(), m->segments()->size());
  ASSERT_EQ(layout.segmentDigests.size(), 2u);
  // Segment 0: the test kernels; segment 1: the constant c.
  EXPECT_EQ(
      layout.segmentDigests[0],
      writer::digestBytes(testKernelsSo().data(), testKernelsSo().size()));
  std::vector<uint8_t> c = toBytes(addConstantValues());
  EXPECT_EQ(layout.segmentDigests[1], writer::digestBytes(c.data(), c.size()));
  for (uint32_t i = 0; i < 2; ++i) {
    EXPECT_EQ(m->segment_digests()->Get(i)->low(),
              layout.segmentDigests[i].low);
    EXPECT_EQ(m->segment_digests()->Get(i)->high(),
              layout.segmentDigests[i].high);
  }
  // The XXH3-128 of the empty input, as xxhsum -H2 prints it.
  EXPECT_EQ(writer::digestHex(writer::digestBytes("", 0)),
            "99aa06d3014798d86001c324468d497f");

  // The streaming writer writes the same bytes.
  std::string path = testing::TempDir() + "integrity-stream.vmoe";
  ASSERT_TRUE(w.writeFile(path, &error)) << error;
  EXPECT_EQ(readFileBytes(path), bytes);
  unlink(path.c_str());
}

TEST(Integrity, EveryRegionIsCovered) {
  const std::vector<uint8_t> base = addModuleBytes();
  const vmoe_module_header_t h = headerOf(base);

  // The header: a segment area that still fits the file, and the digest
  // itself.
  std::vector<uint8_t> bytes = base;
  vmoe_module_header_t patched = h;
  patched.segment_size -= 1;
  memcpy(bytes.data(), &patched, sizeof(patched));
  expectCorrupt(loadBytes(bytes),
                "module is corrupt: the digest of its header and metadata "
                "(bytes [0, " +
                    std::to_string(h.segment_base) + "))");
  bytes = base;
  bytes[VMOE_HEADER_METADATA_DIGEST_OFFSET + 3] ^= 1;
  expectCorrupt(loadBytes(bytes), "the header records");

  // The FlatBuffer: one byte of the constant's name ('c' -> 'd'), which no
  // structural check could see.
  bytes = base;
  uint64_t name = reinterpret_cast<const uint8_t *>(
                      rootOf(bytes)->constants()->Get(0)->name()->c_str()) -
                  bytes.data();
  bytes[name] ^= 7;
  expectCorrupt(loadBytes(bytes), "the digest of its header and metadata");

  // An executable: refused even when the weights are not checked.
  bytes = base;
  bytes[segmentAt(bytes, 0) + 1000] ^= 0x10;
  expectCorrupt(loadBytes(bytes), "segment 0 (file bytes [" +
                                      std::to_string(segmentAt(bytes, 0)) +
                                      ", +" +
                                      std::to_string(testKernelsSo().size()) +
                                      "), executable code) has digest");
  expectCorrupt(loadWith(bytes, skipWeights()), "executable code");

  // A weight: refused by default; loaded (and its wrong value used) when
  // the caller opted out.
  bytes = base;
  bytes[segmentAt(bytes, 1) + 5] ^= 0x40;
  expectCorrupt(loadBytes(bytes), "segment 1 (file bytes [" +
                                      std::to_string(segmentAt(bytes, 1)) +
                                      ", +1024), constant 'c') has digest");
  Loaded skipped = loadWith(bytes, skipWeights());
  ASSERT_EQ(skipped.status, VMOE_STATUS_OK) << skipped.message;
  vmoe_module_integrity_t integrity;
  vmoe_module_integrity(skipped.module, &integrity);
  EXPECT_EQ(integrity.weights_verified, 0);

  // The zero padding between two segments (a 3-byte one, then one aligned
  // to 64).
  ModuleWriter padded;
  buildAddModule(padded);
  uint32_t odd = padded.addSegment({1, 2, 3}, 64);
  padded.addSegment({4}, 64);
  bytes = serialize(padded);
  ASSERT_EQ(loadBytes(bytes).status, VMOE_STATUS_OK);
  uint64_t gap = segmentAt(bytes, odd) + 3;
  ASSERT_LT(gap, segmentAt(bytes, odd + 1));
  bytes[gap] = 1;
  EXPECT_EQ(loadWith(bytes, skipWeights()).status, VMOE_STATUS_OK);
  expectCorrupt(loadBytes(bytes), "the padding at file offset " +
                                      std::to_string(gap) +
                                      " (before a "
                                      "segment) is "
                                      "not zero");

  Loaded good = loadBytes(base);
  ASSERT_EQ(good.status, VMOE_STATUS_OK) << good.message;
  vmoe_module_integrity(good.module, &integrity);
  EXPECT_EQ(integrity.weights_verified, 1);
  EXPECT_EQ(integrity.is_signed, 0);
  EXPECT_EQ(integrity.signature_verified, 0);
}

TEST(Integrity, UnsignedModulesCarryNoSignatureBytes) {
  std::vector<uint8_t> bytes = addModuleBytes();
  bytes[VMOE_HEADER_SIGNATURE_OFFSET + 10] = 1;
  expectCorrupt(loadBytes(bytes), "an unsigned module has a nonzero key id "
                                  "or signature");
  bytes = addModuleBytes();
  bytes[offsetof(vmoe_module_header_t, signature_reserved)] = 1;
  expectCorrupt(loadBytes(resealed(bytes)), "reserved signature field is 1");
}

TEST(Integrity, LoadOptionsAreChecked) {
  std::vector<uint8_t> bytes = addModuleBytes();
  vmoe_module_load_options_t options;
  vmoe_module_load_options_init(&options);
  EXPECT_EQ(options.verify_weights, VMOE_VERIFY_WEIGHTS_ALL);
  EXPECT_EQ(options.trusted_key_count, 0u);
  EXPECT_EQ(options.copy, 0);
  vmoe_module_t *module = nullptr;
  vmoe_message_t message;
  options.verify_weights = static_cast<vmoe_verify_weights_t>(5);
  EXPECT_EQ(vmoe_module_load_memory_ex(bytes.data(), bytes.size(),
                                       VMOE_MEMORY_COPY, &options, &module,
                                       &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_STREQ(message.text, "unknown verify_weights mode 5");
  vmoe_module_load_options_init(&options);
  options.trusted_key_count = 1;
  EXPECT_EQ(vmoe_module_load_memory_ex(bytes.data(), bytes.size(),
                                       VMOE_MEMORY_COPY, &options, &module,
                                       &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_STREQ(message.text, "trusted_keys is null");
  vmoe_module_load_options_init(&options);
  options.copy = 1;
  EXPECT_EQ(vmoe_module_load_memory_ex(bytes.data(), bytes.size(),
                                       VMOE_MEMORY_BORROW, &options, &module,
                                       &message),
            VMOE_STATUS_INVALID_ARGUMENT);
  EXPECT_EQ(module, nullptr);
  EXPECT_STREQ(vmoe_status_name(VMOE_STATUS_PERMISSION_DENIED),
               "PERMISSION_DENIED");
}

TEST(Integrity, CopyingLoadOwnsItsBytes) {
  std::vector<uint8_t> bytes = addModuleBytes();
  std::string path = testing::TempDir() + "integrity-copy.vmoe";
  {
    FILE *f = fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
    fclose(f);
  }
  vmoe_module_load_options_t options;
  vmoe_module_load_options_init(&options);
  options.copy = 1;
  vmoe_module_t *module = nullptr;
  vmoe_message_t message;
  ASSERT_EQ(vmoe_module_load_file_ex(path.c_str(), &options, &module, &message),
            VMOE_STATUS_OK)
      << message.text;
  // The file cut to nothing and rewritten with garbage: a mapped module
  // would fault (SIGBUS) or see other bytes; the copy runs as loaded.
  ASSERT_EQ(truncate(path.c_str(), 0), 0);
  {
    FILE *f = fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::vector<uint8_t> garbage(bytes.size(), 0xAB);
    fwrite(garbage.data(), 1, garbage.size(), f);
    fclose(f);
  }
  expectAddRuns(module);
  vmoe_module_release(module);
  // The same file, now garbage, is refused by a copying load too.
  EXPECT_EQ(vmoe_module_load_file_ex(path.c_str(), &options, &module, &message),
            VMOE_STATUS_INVALID_MODULE);
  unlink(path.c_str());
}

#if VMOE_TEST_SIGNING

writer::SecretSeed seedOf(uint8_t value) {
  writer::SecretSeed seed;
  seed.fill(value);
  return seed;
}

Loaded loadTrusting(const std::vector<uint8_t> &bytes,
                    const std::vector<writer::PublicKey> &keys) {
  std::vector<uint8_t> flat;
  for (const writer::PublicKey &k : keys)
    flat.insert(flat.end(), k.begin(), k.end());
  vmoe_module_load_options_t options;
  vmoe_module_load_options_init(&options);
  options.trusted_keys = flat.data();
  options.trusted_key_count = static_cast<uint32_t>(keys.size());
  return loadWith(bytes, options);
}

void expectDenied(const Loaded &loaded, const std::string &text) {
  EXPECT_EQ(loaded.status, VMOE_STATUS_PERMISSION_DENIED) << loaded.message;
  EXPECT_NE(loaded.message.find(text), std::string::npos)
      << "message: " << loaded.message << "\nexpected: " << text;
}

std::string keyIdHex(const writer::PublicKey &key) {
  writer::KeyId id = writer::keyIdOf(key);
  return writer::toHex(id.data(), id.size());
}

#endif

TEST(Integrity, Signatures) {
#if VMOE_TEST_SIGNING
  writer::Ed25519Signer signer(seedOf(1)), other(seedOf(2));
  ModuleWriter w;
  buildAddModule(w);
  w.setSigner(&signer);
  std::vector<uint8_t> signedBytes = serialize(w);
  vmoe_module_header_t h = headerOf(signedBytes);
  EXPECT_EQ(h.signature_scheme, VMOE_SIGNATURE_ED25519_BLAKE2B);
  writer::KeyId id = writer::keyIdOf(signer.publicKey());
  EXPECT_EQ(memcmp(h.signature_key_id, id.data(), id.size()), 0);
  // The streaming writer signs the same bytes, and signing a built module
  // afterwards gives them too.
  std::string path = testing::TempDir() + "integrity-signed.vmoe";
  std::string error;
  ASSERT_TRUE(w.writeFile(path, &error)) << error;
  EXPECT_EQ(readFileBytes(path), signedBytes);
  unlink(path.c_str());
  std::vector<uint8_t> later = addModuleBytes();
  ASSERT_TRUE(writer::signModule(later.data(), later.size(), signer, &error));
  EXPECT_EQ(later, signedBytes);

  // The right key (among others): loaded, and reported as checked.
  Loaded ok =
      loadTrusting(signedBytes, {other.publicKey(), signer.publicKey()});
  ASSERT_EQ(ok.status, VMOE_STATUS_OK) << ok.message;
  vmoe_module_integrity_t integrity;
  vmoe_module_integrity(ok.module, &integrity);
  EXPECT_EQ(integrity.is_signed, 1);
  EXPECT_EQ(integrity.signature_verified, 1);
  EXPECT_EQ(memcmp(integrity.key_id, id.data(), id.size()), 0);
  expectAddRuns(ok.module);
  // Without keys a signed module loads like any other, unchecked.
  Loaded unchecked = loadBytes(signedBytes);
  ASSERT_EQ(unchecked.status, VMOE_STATUS_OK) << unchecked.message;
  vmoe_module_integrity(unchecked.module, &integrity);
  EXPECT_EQ(integrity.is_signed, 1);
  EXPECT_EQ(integrity.signature_verified, 0);

  // A wrong key, an unsigned module, a signed module modified afterwards
  // (its digests resealed: only the signature can tell).
  expectDenied(loadTrusting(signedBytes, {other.publicKey()}),
               "module is signed by key " + keyIdHex(signer.publicKey()) +
                   ", which is not among the 1 trusted key(s)");
  expectDenied(loadTrusting(addModuleBytes(), {signer.publicKey()}),
               "module is not signed, and trusted keys are set");
  std::vector<uint8_t> modified = signedBytes;
  modified[segmentAt(modified, 1) + 2] ^= 1;
  const fb::Module *m = rootOf(modified);
  writer::Digest128 d =
      writer::digestBytes(modified.data() + segmentAt(modified, 1),
                          m->segments()->Get(1)->length());
  const_cast<fb::Digest128 *>(m->segment_digests()->Get(1))->mutate_low(d.low);
  const_cast<fb::Digest128 *>(m->segment_digests()->Get(1))
      ->mutate_high(d.high);
  reseal(modified);
  ASSERT_EQ(loadBytes(modified).status, VMOE_STATUS_OK)
      << "the digests alone accept the forgery";
  expectDenied(loadTrusting(modified, {signer.publicKey()}),
               "module signature by key " + keyIdHex(signer.publicKey()) +
                   " does not match the module's contents");
  // A forged key id names the trusted key, but the signature is the other
  // key's.
  std::vector<uint8_t> forged = signedBytes;
  writer::KeyId otherId = writer::keyIdOf(other.publicKey());
  memcpy(forged.data() + offsetof(vmoe_module_header_t, signature_key_id),
         otherId.data(), otherId.size());
  reseal(forged);
  expectDenied(loadTrusting(forged, {other.publicKey()}), "does not match");
#else
  std::vector<uint8_t> keys(VMOE_PUBLIC_KEY_SIZE, 1);
  vmoe_module_load_options_t options;
  vmoe_module_load_options_init(&options);
  options.trusted_keys = keys.data();
  options.trusted_key_count = 1;
  Loaded loaded = loadWith(addModuleBytes(), options);
  EXPECT_EQ(loaded.status, VMOE_STATUS_UNSUPPORTED);
  EXPECT_NE(loaded.message.find("built without signature support"),
            std::string::npos)
      << loaded.message;
#endif
}

} // namespace
} // namespace test
} // namespace vmoe
