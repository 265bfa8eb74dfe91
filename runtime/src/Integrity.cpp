//===- Integrity.cpp - Digests and signatures at load ---------------------===//

#include "Integrity.h"

#include "Diagnostics.h"

#include <algorithm>
#include <cstring>
#include <vector>

// Header-only XXH3 (decision of issue #17): the runtime links nothing for it.
#define XXH_INLINE_ALL
#include <xxhash.h>

#if VMOE_RUNTIME_SIGNATURES
#include "Signature.h"
#endif

namespace vmoe {
namespace integrity {

namespace {

using ull = unsigned long long;

static_assert(sizeof(vmoe_module_header_t) == VMOE_MODULE_HEADER_SIZE,
              "the header struct is the on-disk header");
static_assert(offsetof(vmoe_module_header_t, metadata_digest) ==
                      VMOE_HEADER_METADATA_DIGEST_OFFSET &&
                  offsetof(vmoe_module_header_t, signature) ==
                      VMOE_HEADER_SIGNATURE_OFFSET,
              "digest and signature offsets");

bool allZero(const uint8_t *bytes, uint64_t size) {
  for (uint64_t i = 0; i < size; ++i)
    if (bytes[i])
      return false;
  return true;
}

/// The segment's role, for messages.
void describeSegment(const fb::Module &m, uint32_t segment, char *out,
                     size_t size) {
  for (uint32_t i = 0, e = sizeOf(m.constants()); i < e; ++i) {
    const fb::Constant *c = m.constants()->Get(i);
    if (c->segment() == segment) {
      snprintf(out, size, ", constant '%.64s'",
               c->name() ? c->name()->c_str() : "");
      return;
    }
  }
  out[0] = 0;
}

/// Marks the segments executables use (the validator checked the indices).
std::vector<bool> executableSegments(const fb::Module &m) {
  std::vector<bool> used(sizeOf(m.segments()), false);
  for (uint32_t x = 0, e = sizeOf(m.executables()); x < e; ++x) {
    const fb::Executable *exe = m.executables()->Get(x);
    if (const fb::CpuExecutable *cpu = exe->cpu())
      if (exe->format() == fb::ExecutableFormat::CpuSharedObject)
        used[cpu->segment()] = true;
    const fb::CudaExecutable *cuda = exe->cuda();
    if (!cuda || exe->format() != fb::ExecutableFormat::Cuda)
      continue;
    if (cuda->ptx_segment() >= 0)
      used[static_cast<uint32_t>(cuda->ptx_segment())] = true;
    for (uint32_t c = 0, n = sizeOf(cuda->cubins()); c < n; ++c)
      used[cuda->cubins()->Get(c)->segment()] = true;
  }
  return used;
}

/// The bytes of the segment area (and up to file_size) outside every
/// segment are zero.
vmoe_status_t checkPadding(const VerifiedModule &v, vmoe_message_t *message) {
  const fb::Module &m = *v.root;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (uint32_t i = 0, e = sizeOf(m.segments()); i < e; ++i) {
    const fb::Segment *s = m.segments()->Get(i);
    ranges.push_back({s->offset(), s->offset() + s->length()});
  }
  ranges.push_back({v.header.file_size - v.header.segment_base,
                    v.header.file_size - v.header.segment_base});
  std::sort(ranges.begin(), ranges.end());
  uint64_t cursor = 0;
  for (const auto &r : ranges) {
    if (r.first > cursor && !allZero(v.segmentBase + cursor, r.first - cursor))
      return fail(message, VMOE_STATUS_INVALID_MODULE,
                  "module is corrupt: the padding at file offset %llu (before "
                  "a segment) is not zero",
                  static_cast<ull>(v.header.segment_base + cursor));
    cursor = std::max(cursor, r.second);
  }
  return VMOE_STATUS_OK;
}

} // namespace

vmoe_status_t checkSignatureFields(const vmoe_module_header_t &h,
                                   vmoe_message_t *message) {
  if (h.signature_reserved != 0)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "module header: reserved signature field is %u, not 0",
                h.signature_reserved);
  if (h.signature_scheme == VMOE_SIGNATURE_NONE &&
      !(allZero(h.signature_key_id, sizeof(h.signature_key_id)) &&
        allZero(h.signature, sizeof(h.signature))))
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "module header: an unsigned module has a nonzero key id or "
                "signature");
  return VMOE_STATUS_OK;
}

vmoe_status_t checkSignature(const uint8_t *data,
                             const vmoe_module_header_t &header,
                             const uint8_t *keys, uint32_t keyCount,
                             vmoe_message_t *message) {
#if VMOE_RUNTIME_SIGNATURES
  return verifySignature(data, header, keys, keyCount, message);
#else
  (void)data;
  (void)header;
  (void)keys;
  (void)keyCount;
  return fail(message, VMOE_STATUS_UNSUPPORTED,
              "trusted keys were given, but this runtime was built without "
              "signature support (VMOE_RUNTIME_SIGNATURES, needs libsodium): "
              "it cannot check the module's signature");
#endif
}

vmoe_status_t checkMetadataDigest(const uint8_t *data,
                                  const vmoe_module_header_t &h,
                                  vmoe_message_t *message) {
  vmoe_module_header_t zeroed = h;
  memset(zeroed.metadata_digest, 0, sizeof(zeroed.metadata_digest));
  memset(zeroed.signature, 0, sizeof(zeroed.signature));
  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  XXH3_128bits_update(&state, &zeroed, sizeof(zeroed));
  XXH3_128bits_update(&state, data + sizeof(zeroed),
                      static_cast<size_t>(h.segment_base - sizeof(zeroed)));
  XXH128_hash_t d = XXH3_128bits_digest(&state);
  if (d.low64 != h.metadata_digest[0] || d.high64 != h.metadata_digest[1])
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "module is corrupt: the digest of its header and metadata "
                "(bytes [0, %llu)) is %016llx%016llx, the header records "
                "%016llx%016llx; the file was damaged or modified after it "
                "was written",
                static_cast<ull>(h.segment_base), static_cast<ull>(d.high64),
                static_cast<ull>(d.low64),
                static_cast<ull>(h.metadata_digest[1]),
                static_cast<ull>(h.metadata_digest[0]));
  return VMOE_STATUS_OK;
}

vmoe_status_t checkSegmentDigests(const VerifiedModule &v, bool weights,
                                  vmoe_message_t *message) {
  const fb::Module &m = *v.root;
  auto *digests = m.segment_digests();
  uint32_t count = sizeOf(m.segments());
  if (sizeOf(digests) != count)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "module has %u segment digests for %u segments",
                sizeOf(digests), count);
  if (count && reinterpret_cast<uintptr_t>(digests->Data()) % alignof(uint64_t))
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "the segment digest table is misaligned");
  std::vector<bool> code = executableSegments(m);
  for (uint32_t i = 0; i < count; ++i) {
    if (!code[i] && !weights)
      continue;
    const fb::Segment *s = m.segments()->Get(i);
    XXH128_hash_t d = XXH3_128bits(v.segmentBase + s->offset(),
                                   static_cast<size_t>(s->length()));
    const fb::Digest128 *want = digests->Get(i);
    if (d.low64 == want->low() && d.high64 == want->high())
      continue;
    char role[96];
    if (code[i])
      snprintf(role, sizeof(role), ", executable code");
    else
      describeSegment(m, i, role, sizeof(role));
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "module is corrupt: segment %u (file bytes [%llu, +%llu)%s) "
                "has digest %016llx%016llx, the module records "
                "%016llx%016llx",
                i, static_cast<ull>(v.header.segment_base + s->offset()),
                static_cast<ull>(s->length()), role, static_cast<ull>(d.high64),
                static_cast<ull>(d.low64), static_cast<ull>(want->high()),
                static_cast<ull>(want->low()));
  }
  return weights ? checkPadding(v, message) : VMOE_STATUS_OK;
}

} // namespace integrity
} // namespace vmoe
