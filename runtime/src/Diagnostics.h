//===- Diagnostics.h - Status messages and checked arithmetic ---*- C++ -*-===//
//
// Internal helpers shared by the runtime: writing a status message into the
// caller's vmoe_message_t, and overflow-checked 64-bit arithmetic for every
// size and offset that comes from a module file.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_DIAGNOSTICS_H
#define VMOE_RUNTIME_DIAGNOSTICS_H

#include "vmoe/runtime.h"

#include <cstddef>
#include <cstdint>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
// Module files are little-endian and used in place.
#error "the vmoe runtime needs a little-endian host"
#endif

namespace vmoe {

/// Formats into `message` (if not null) and returns `status`.
vmoe_status_t fail(vmoe_message_t *message, vmoe_status_t status,
                   const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/// Prepends "prefix: " to an existing message (adds context on the way up).
void prependMessage(vmoe_message_t *message, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/// Shortest "%g"-style text that reads back as the same double, so two
/// values that differ in the last bit never print alike in a message.
struct DoubleText {
  char text[32];
};
DoubleText formatDouble(double value);

/// Formats a shape as "[2,3,4]" (truncated with "..." when long).
struct ShapeText {
  char text[160];
};
ShapeText formatShape(const int64_t *dims, uint32_t rank);

inline bool checkedAdd(uint64_t a, uint64_t b, uint64_t *out) {
  return !__builtin_add_overflow(a, b, out);
}
inline bool checkedMul(uint64_t a, uint64_t b, uint64_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}
inline bool isPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }
/// `alignment` must be a power of two.
inline bool checkedAlignUp(uint64_t v, uint64_t alignment, uint64_t *out) {
  uint64_t sum;
  if (!checkedAdd(v, alignment - 1, &sum))
    return false;
  *out = sum & ~(alignment - 1);
  return true;
}
/// True when [offset, offset + length) lies within [0, limit).
inline bool rangeWithin(uint64_t offset, uint64_t length, uint64_t limit) {
  uint64_t end;
  return checkedAdd(offset, length, &end) && end <= limit;
}

} // namespace vmoe

#endif // VMOE_RUNTIME_DIAGNOSTICS_H
