/*
 * vmoe module file: the fixed file header and the format limits.
 *
 * Plain C, shared by the compiler's module writer and the runtime's loader.
 *
 * File layout (all integers little-endian):
 *
 *   [0, header_size)                      vmoe_module_header_t
 *   [flatbuffer_offset, +flatbuffer_size) FlatBuffer
 * (format/schema/module.fbs), file identifier "VMOE" [segment_base,
 * +segment_size)         segments: weights, executables, PTX; each addressed by
 * a 64-bit offset relative to segment_base
 *
 * The FlatBuffer holds only metadata, so it stays far below FlatBuffers' 2 GB
 * limit while the segments (addressed by uint64) can be arbitrarily large and
 * can be used in place from an mmapped file.
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
#define VMOE_FORMAT_VERSION_MINOR 0

/* First 8 bytes of every module file. */
#define VMOE_MODULE_MAGIC "VMOEMOD\0"
#define VMOE_MODULE_MAGIC_SIZE 8
/* FlatBuffers file identifier of the metadata buffer. */
#define VMOE_FLATBUFFER_IDENTIFIER "VMOE"

/* Size of vmoe_module_header_t. A larger header_size in a file is accepted
 * (future fields); a smaller one is refused. */
#define VMOE_MODULE_HEADER_SIZE 64
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
} vmoe_module_header_t;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* VMOE_MODULE_FORMAT_H */
