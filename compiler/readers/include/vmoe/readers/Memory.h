//===- Memory.h - what memory a process may still allocate ------*- C++ -*-===//
//
// vmoe-compile holds a model's weights several times over (as read, as IR
// constants, in the module). Before it allocates any of that, it compares
// the bytes it will need with what the process may still get, so that a
// model too large for the machine or for `ulimit -v` is refused with a
// message instead of an out-of-memory abort half-way through.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_READERS_MEMORY_H
#define VMOE_READERS_MEMORY_H

#include <cstdint>
#include <string>

namespace vmoe::readers {

/// How much more this process may allocate: the least of the memory
/// available (MemAvailable + SwapFree of /proc/meminfo) and the headroom under
/// the address-space and data-segment limits (RLIMIT_AS, RLIMIT_DATA,
/// minus what the process already uses). `limitedBy` names the bound that
/// decides. UINT64_MAX when nothing is known.
uint64_t availableMemory(std::string *limitedBy = nullptr);

/// "12.3 GB" (decimal units, as free(1) -h prints them with --si).
std::string formatBytes(uint64_t bytes);

/// False, with a message saying what needs how much and what is available,
/// when `need` bytes exceed availableMemory(). `what` names the work
/// ("compiling this model").
bool checkMemoryFor(uint64_t need, const std::string &what, std::string *error);

} // namespace vmoe::readers

#endif // VMOE_READERS_MEMORY_H
