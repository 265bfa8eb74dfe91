//===- Executor.cpp - Host memory for executors ---------------------------===//

#include "Executor.h"

#include "Diagnostics.h"

#include <sys/mman.h>

namespace vmoe {

vmoe_status_t mapZeroed(uint64_t size, const char *what, uint8_t **out,
                        vmoe_message_t *message) {
  *out = nullptr;
  if (size == 0)
    return VMOE_STATUS_OK;
  void *memory = size > SIZE_MAX ? MAP_FAILED
                                 : mmap(nullptr, static_cast<size_t>(size),
                                        PROT_READ | PROT_WRITE,
                                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED)
    return fail(message, VMOE_STATUS_OUT_OF_MEMORY,
                "cannot allocate the %llu-byte %s",
                static_cast<unsigned long long>(size), what);
  *out = static_cast<uint8_t *>(memory);
  return VMOE_STATUS_OK;
}

void unmapZeroed(uint8_t *memory, uint64_t size) {
  if (memory)
    munmap(memory, static_cast<size_t>(size));
}

} // namespace vmoe
