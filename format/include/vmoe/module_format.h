/*
 * vmoe module file: the fixed file header and the format limits.
 *
 * Plain C, shared by the compiler's module writer and the runtime's loader.
 *
 * File layout (all integers little-endian):
 *
 *   [0, header_size)                       vmoe_module_header_t
 *   [flatbuffer_offset, +flatbuffer_size)  FlatBuffer (format/schema/
 *                                          module.fbs), identifier "VMOE"
 *   [segment_base, +segment_size)          segments: weights, executables,
 *                                          PTX; each addressed by a 64-bit
 *                                          offset relative to segment_base
 *
 * The FlatBuffer holds only metadata, so it stays far below FlatBuffers' 2 GB
 * limit while the segments (addressed by uint64) can be arbitrarily large and
 * can be used in place from an mmapped file.
 *
 * Integrity (format 1.1): every byte up to file_size is covered.
 * - metadata_digest: XXH3-128 (seed 0) of the bytes [0, segment_base) (the
 *   header, the FlatBuffer and the zero padding around it) read with the
 *   metadata_digest and signature fields as zeros.
 * - Module.segment_digests (module.fbs): XXH3-128 of each segment's bytes.
 * - The padding between segments is zero.
 * A digest detects corruption, truncation and accidental edits; anyone can
 * recompute it, so it is no defence against a forger. That is the signature's
 * job:
 * - signature_scheme VMOE_SIGNATURE_ED25519_BLAKE2B: signature is the Ed25519
 *   signature (RFC 8032) of the BLAKE2b-512 hash of the bytes [0, file_size)
 *   read with the signature field as zeros (the metadata digest, key id and
 *   scheme are signed). signature_key_id is the first 8 bytes of the
 *   BLAKE2b-512 hash of the 32-byte public key: it names the key in messages
 *   and picks the trusted key to check against; it proves nothing by itself.
 * - signature_scheme VMOE_SIGNATURE_NONE: unsigned; key id and signature are
 *   zero.
 * A 128-bit digest is written as 32 hex digits, high half first (as xxhsum
 * prints XXH128); stored as two little-endian uint64, low half first.
 */
#ifndef VMOE_MODULE_FORMAT_H
#define VMOE_MODULE_FORMAT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Format version of the module file. A runtime loads any module with the
 * same major version. A newer minor only adds fields that an older runtime
 * may ignore; anything an older runtime must not ignore is a bit in
 * Module.requirements (a runtime refuses unknown bits). */
#define VMOE_FORMAT_VERSION_MAJOR 1
#define VMOE_FORMAT_VERSION_MINOR 1
/* Modules of an older minor than this lack the integrity digests: refused,
 * to be recompiled. */
#define VMOE_FORMAT_MIN_MINOR 1

/* Module.requirements bits. A MoE layer whose capacity rule is not vmoe's
 * default (ceil, multiple of 4; MoeLayer.capacity_round and
 * capacity_multiple_of), and a layer routed by expert choice
 * (MoeLayer.routing): a runtime that ignored those fields would compute other
 * capacities or read the routing wrongly. A kernel that takes the call's k
 * (PushConstantSource.MoeK): an older runtime cannot supply it. A module that
 * is one rank's part of an expert-sharded model (Module.expert_shard,
 * Dispatch.collective): a runtime without a collective cannot run it. */
#define VMOE_REQUIRES_CAPACITY_RULE (1ull << 0)
#define VMOE_REQUIRES_EXPERT_CHOICE (1ull << 1)
#define VMOE_REQUIRES_K_KNOB (1ull << 2)
#define VMOE_REQUIRES_EXPERT_SHARDS (1ull << 3)

/* First 8 bytes of every module file. */
#define VMOE_MODULE_MAGIC "VMOEMOD\0"
#define VMOE_MODULE_MAGIC_SIZE 8
/* FlatBuffers file identifier of the metadata buffer. */
#define VMOE_FLATBUFFER_IDENTIFIER "VMOE"

/* Size of vmoe_module_header_t. A larger header_size in a file is accepted
 * (future fields, covered by the metadata digest); a smaller one is refused.
 * Format 1.0 had the first 64 bytes only. */
#define VMOE_MODULE_HEADER_SIZE 160
/* The FlatBuffer starts at a multiple of this (its scalars are aligned). */
#define VMOE_FLATBUFFER_ALIGNMENT 16
/* segment_base is a multiple of this, so every segment alignment up to
 * VMOE_MAX_SEGMENT_ALIGNMENT holds in an mmapped file. */
#define VMOE_SEGMENT_BASE_ALIGNMENT 4096
#define VMOE_MAX_SEGMENT_ALIGNMENT 4096
#define VMOE_MAX_ARENA_ALIGNMENT 4096

/* Limits the loader enforces; the compiler must stay within them. */
#define VMOE_MAX_TENSOR_RANK 8
#define VMOE_MAX_KERNEL_BINDINGS 64
#define VMOE_MAX_KERNEL_CONSTANTS 64
/* Per dimension and in total (x*y*z): a bound that keeps a malformed grid
 * from turning into an effectively endless run. */
#define VMOE_MAX_WORKGROUP_COUNT_PER_DIM 0x7fffffffu
#define VMOE_MAX_WORKGROUPS (1ull << 24)
/* Per-worker scratch memory a kernel may request. */
#define VMOE_MAX_KERNEL_SCRATCH (256ull << 20)
/* FlatBuffer structural verification bounds. */
#define VMOE_MAX_FLATBUFFER_DEPTH 32
#define VMOE_MAX_FLATBUFFER_TABLES 4000000

/* signature_scheme values. */
#define VMOE_SIGNATURE_NONE 0u
#define VMOE_SIGNATURE_ED25519_BLAKE2B 1u
#define VMOE_SIGNATURE_SIZE 64       /* Ed25519 signature */
#define VMOE_SIGNATURE_KEY_ID_SIZE 8 /* BLAKE2b-512(public key)[0, 8) */
#define VMOE_SIGNATURE_PUBLIC_KEY_SIZE 32

typedef struct vmoe_module_header_t {
  char magic[VMOE_MODULE_MAGIC_SIZE]; /* VMOE_MODULE_MAGIC */
  uint32_t header_size;               /* >= VMOE_MODULE_HEADER_SIZE */
  uint16_t format_major;              /* must equal Module.version.major */
  uint16_t format_minor;              /* must equal Module.version.minor */
  uint64_t flatbuffer_offset;         /* from the start of the file */
  uint64_t flatbuffer_size;
  uint64_t segment_base; /* from the start of the file */
  uint64_t segment_size;
  uint64_t file_size; /* total size the writer produced */
  uint64_t flags;     /* reserved, must be 0 */
  /* Format 1.1: integrity and signature (see the top of this file). */
  uint64_t metadata_digest[2]; /* XXH3-128: low, high */
  uint32_t signature_scheme;   /* VMOE_SIGNATURE_* */
  uint32_t signature_reserved; /* must be 0 */
  uint8_t signature_key_id[VMOE_SIGNATURE_KEY_ID_SIZE];
  uint8_t signature[VMOE_SIGNATURE_SIZE];
} vmoe_module_header_t;

/* Byte offsets of the fields the digest and signature read as zeros. */
#define VMOE_HEADER_METADATA_DIGEST_OFFSET 64
#define VMOE_HEADER_METADATA_DIGEST_SIZE 16
#define VMOE_HEADER_SIGNATURE_OFFSET 96

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* VMOE_MODULE_FORMAT_H */
