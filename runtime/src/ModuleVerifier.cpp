//===- ModuleVerifier.cpp - Verify a module file before use ---------------===//

#include "ModuleVerifier.h"

#include "Diagnostics.h"
#include "Integrity.h"
#include "ModuleValidator.h"

#include <cstdio>
#include <cstring>

namespace vmoe {

namespace {

using ull = unsigned long long;

/// Prints up to four bytes as text, escaping what is not printable.
void identifierText(const uint8_t *bytes, char out[20]) {
  char *p = out;
  for (int i = 0; i < 4; ++i) {
    uint8_t c = bytes[i];
    if (c >= 0x20 && c < 0x7f && c != '\\')
      *p++ = static_cast<char>(c);
    else
      p += snprintf(p, 5, "\\x%02x", c);
  }
  *p = 0;
}

} // namespace

const char *dtypeName(uint32_t dtype) {
  static const char *const names[] = {"invalid", "f32", "f16", "bf16",
                                      "f64",     "i8",  "u8",  "i16",
                                      "i32",     "i64", "bool"};
  return dtype < sizeof(names) / sizeof(names[0]) ? names[dtype] : "invalid";
}

uint64_t dtypeSize(uint32_t dtype) {
  static const uint8_t sizes[] = {0, 4, 2, 2, 8, 1, 1, 2, 4, 8, 1};
  return dtype < sizeof(sizes) ? sizes[dtype] : 0;
}

vmoe_status_t verifyModule(const uint8_t *data, uint64_t size,
                           const VerifyOptions &checks, VerifiedModule *out,
                           vmoe_message_t *message) {
  vmoe_module_header_t &h = out->header;
  if (size < VMOE_MODULE_HEADER_SIZE)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "module is truncated: %llu bytes, smaller than the %u-byte "
                "header",
                static_cast<ull>(size), VMOE_MODULE_HEADER_SIZE);
  memcpy(&h, data, sizeof(h));
  if (memcmp(h.magic, VMOE_MODULE_MAGIC, VMOE_MODULE_MAGIC_SIZE) != 0)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "not a vmoe module: wrong magic bytes at the start of the "
                "file");
  // The version comes before any other field: a newer major may lay out the
  // rest differently, and the user needs to hear about the version.
  if (h.format_major != VMOE_FORMAT_VERSION_MAJOR)
    return fail(message, VMOE_STATUS_UNSUPPORTED_VERSION,
                "module format version %u.%u is %s than this runtime's %u.%u: "
                "%s",
                h.format_major, h.format_minor,
                h.format_major > VMOE_FORMAT_VERSION_MAJOR ? "newer" : "older",
                VMOE_FORMAT_VERSION_MAJOR, VMOE_FORMAT_VERSION_MINOR,
                h.format_major > VMOE_FORMAT_VERSION_MAJOR
                    ? "update the runtime or recompile the module with a "
                      "matching compiler"
                    : "recompile the module");
  if (h.format_minor < VMOE_FORMAT_MIN_MINOR)
    return fail(message, VMOE_STATUS_UNSUPPORTED_VERSION,
                "module format version %u.%u is older than this runtime's "
                "%u.%u and has no integrity digests: recompile the module",
                h.format_major, h.format_minor, VMOE_FORMAT_VERSION_MAJOR,
                VMOE_FORMAT_VERSION_MINOR);
  if (h.header_size < VMOE_MODULE_HEADER_SIZE)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "header size %u is smaller than %u", h.header_size,
                VMOE_MODULE_HEADER_SIZE);
  if (h.flags != 0)
    return fail(message, VMOE_STATUS_UNSUPPORTED_VERSION,
                "module header has unknown flags 0x%llx",
                static_cast<ull>(h.flags));
  if (h.file_size > size)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "module is truncated: the header says %llu bytes, got %llu",
                static_cast<ull>(h.file_size), static_cast<ull>(size));
  if (h.header_size > h.file_size)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "header size %u exceeds the file size %llu", h.header_size,
                static_cast<ull>(h.file_size));
  uint64_t fbEnd;
  if (!checkedAdd(h.flatbuffer_offset, h.flatbuffer_size, &fbEnd))
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "FlatBuffer offset %llu + size %llu overflows",
                static_cast<ull>(h.flatbuffer_offset),
                static_cast<ull>(h.flatbuffer_size));
  if (h.flatbuffer_offset < h.header_size || fbEnd > h.file_size)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "FlatBuffer range [%llu, %llu) is outside the file body "
                "[%u, %llu)",
                static_cast<ull>(h.flatbuffer_offset), static_cast<ull>(fbEnd),
                h.header_size, static_cast<ull>(h.file_size));
  if (h.flatbuffer_offset % VMOE_FLATBUFFER_ALIGNMENT ||
      reinterpret_cast<uintptr_t>(data + h.flatbuffer_offset) %
          VMOE_FLATBUFFER_ALIGNMENT)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "FlatBuffer at offset %llu is not %u-byte aligned in memory",
                static_cast<ull>(h.flatbuffer_offset),
                VMOE_FLATBUFFER_ALIGNMENT);
  if (h.flatbuffer_size < 8 || h.flatbuffer_size >= FLATBUFFERS_MAX_BUFFER_SIZE)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "FlatBuffer size %llu is outside [8, 2 GiB)",
                static_cast<ull>(h.flatbuffer_size));
  uint64_t segEnd;
  if (!checkedAdd(h.segment_base, h.segment_size, &segEnd))
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "segment base %llu + size %llu overflows",
                static_cast<ull>(h.segment_base),
                static_cast<ull>(h.segment_size));
  if (h.segment_base < fbEnd || segEnd > h.file_size)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "segment area [%llu, %llu) is outside [%llu, %llu), between "
                "the FlatBuffer and the end of the file",
                static_cast<ull>(h.segment_base), static_cast<ull>(segEnd),
                static_cast<ull>(fbEnd), static_cast<ull>(h.file_size));
  if (h.segment_base % VMOE_SEGMENT_BASE_ALIGNMENT)
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "segment base %llu is not a multiple of %u",
                static_cast<ull>(h.segment_base), VMOE_SEGMENT_BASE_ALIGNMENT);

  // The header's ranges hold: check what the file claims to be before
  // reading it (a signature, when keys are set, before anything else), and
  // the digest before the FlatBuffer verifier reads a byte.
  if (vmoe_status_t status = integrity::checkSignatureFields(h, message))
    return status;
  if (checks.keyCount)
    if (vmoe_status_t status = integrity::checkSignature(
            data, h, checks.keys, checks.keyCount, message))
      return status;
  if (vmoe_status_t status = integrity::checkMetadataDigest(data, h, message))
    return status;

  const uint8_t *fbData = data + h.flatbuffer_offset;
  if (!flatbuffers::BufferHasIdentifier(fbData, VMOE_FLATBUFFER_IDENTIFIER)) {
    char text[20];
    identifierText(fbData + sizeof(flatbuffers::uoffset_t), text);
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "wrong FlatBuffer file identifier '%s', expected '%s'", text,
                VMOE_FLATBUFFER_IDENTIFIER);
  }
  flatbuffers::Verifier::Options options;
  options.max_depth = VMOE_MAX_FLATBUFFER_DEPTH;
  options.max_tables = VMOE_MAX_FLATBUFFER_TABLES;
  options.check_alignment = true;
  flatbuffers::Verifier verifier(fbData, h.flatbuffer_size, options);
  if (!fb::VerifyModuleBuffer(verifier))
    return fail(message, VMOE_STATUS_INVALID_MODULE,
                "the module's FlatBuffer failed structural verification "
                "(corrupt offsets, sizes or nesting)");

  out->root = fb::GetModule(fbData);
  out->segmentBase = data + h.segment_base;
  validate::Validator validator(*out->root, h, out->segmentBase, out, message);
  if (vmoe_status_t status = validator.run())
    return status;
  return integrity::checkSegmentDigests(*out, checks.verifyWeights, message);
}

} // namespace vmoe
