//===- MpiCollective.cpp - vmoe_collective_t over MPI ---------------------===//
//
// Nonblocking collectives polled against a deadline (a peer that died
// cannot hang a rank), byte counts beyond INT_MAX split into pieces of a
// datatype whose extent is the whole chunk, and MPI errors returned (not
// aborted) on a communicator of our own.
//
//===----------------------------------------------------------------------===//

#include "vmoe/mpi.h"

#include <chrono>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

struct vmoe_mpi_collective_t {
  MPI_Comm comm = MPI_COMM_NULL;
  vmoe_collective_t collective = {};
  std::chrono::milliseconds timeout{VMOE_MPI_DEFAULT_TIMEOUT_MS};
  bool broken = false;
  uint64_t maxPiece = 1ull << 30;
};

namespace {

using ull = unsigned long long;

vmoe_status_t failWith(vmoe_message_t *message, vmoe_status_t status,
                       const char *format, ...)
    __attribute__((format(printf, 3, 4)));
vmoe_status_t failWith(vmoe_message_t *message, vmoe_status_t status,
                       const char *format, ...) {
  if (message) {
    va_list args;
    va_start(args, format);
    vsnprintf(message->text, sizeof(message->text), format, args);
    va_end(args);
  }
  return status;
}

vmoe_status_t mpiError(vmoe_mpi_collective_t *c, int code, const char *what,
                       vmoe_message_t *message) {
  c->broken = true;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
    snprintf(text, sizeof(text), "MPI error %d", code);
  return failWith(message, VMOE_STATUS_IO_ERROR, "%s failed: %s", what, text);
}

/// Polls `request` until it completes or the deadline passes; backs off
/// from spinning to short sleeps so that waiting ranks leave the cores to
/// the ranks still computing (oversubscribed runs).
vmoe_status_t wait(vmoe_mpi_collective_t *c, MPI_Request *request,
                   const char *what, vmoe_message_t *message) {
  auto deadline = std::chrono::steady_clock::now() + c->timeout;
  std::chrono::microseconds pause(0);
  for (;;) {
    int done = 0;
    int code = MPI_Test(request, &done, MPI_STATUS_IGNORE);
    if (code != MPI_SUCCESS)
      return mpiError(c, code, what, message);
    if (done)
      return VMOE_STATUS_OK;
    if (std::chrono::steady_clock::now() > deadline) {
      // The request cannot be cancelled (a collective); the collective is
      // broken and the caller ends the job.
      c->broken = true;
      return failWith(message, VMOE_STATUS_FAILED_PRECONDITION,
                      "%s timed out after %lld ms waiting for "
                      "the other ranks (a rank died, hung or runs another "
                      "step)",
                      what, static_cast<long long>(c->timeout.count()));
    }
    if (pause.count() == 0)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(pause);
    pause = std::min(std::chrono::microseconds(1000),
                     pause + std::chrono::microseconds(20));
  }
}

/// One piece of an exchange: `bytes` per rank at `offset` within each
/// block, blocks `stride` bytes apart (the chunk size for all-to-all).
vmoe_status_t exchangePiece(vmoe_mpi_collective_t *c, bool toAll,
                            const uint8_t *send, uint8_t *recv, uint64_t offset,
                            uint64_t bytes, uint64_t stride,
                            vmoe_message_t *message) {
  const char *what = toAll ? "MPI_Ialltoall" : "MPI_Iallgather";
  // One datatype of `bytes` bytes whose extent is the block stride: block j
  // is element j, wherever the stride goes past INT_MAX.
  MPI_Datatype piece, type;
  int code = MPI_Type_contiguous(static_cast<int>(bytes), MPI_BYTE, &piece);
  if (code != MPI_SUCCESS)
    return mpiError(c, code, "MPI_Type_contiguous", message);
  code =
      MPI_Type_create_resized(piece, 0, static_cast<MPI_Aint>(stride), &type);
  MPI_Type_free(&piece);
  if (code != MPI_SUCCESS)
    return mpiError(c, code, "MPI_Type_create_resized", message);
  if ((code = MPI_Type_commit(&type)) != MPI_SUCCESS) {
    MPI_Type_free(&type);
    return mpiError(c, code, "MPI_Type_commit", message);
  }
  MPI_Request request;
  code = toAll ? MPI_Ialltoall(send + offset, 1, type, recv + offset, 1, type,
                               c->comm, &request)
               : MPI_Iallgather(send + offset, 1, type, recv + offset, 1, type,
                                c->comm, &request);
  vmoe_status_t status = code == MPI_SUCCESS ? wait(c, &request, what, message)
                                             : mpiError(c, code, what, message);
  MPI_Type_free(&type); // MPI keeps it alive while the request needs it
  return status;
}

vmoe_status_t exchange(vmoe_mpi_collective_t *c, bool toAll, const void *send,
                       void *recv, uint64_t bytes, vmoe_message_t *message) {
  if (c->broken)
    return failWith(message, VMOE_STATUS_FAILED_PRECONDITION,
                    "an earlier exchange failed; the ranks are no longer in "
                    "step");
  if (bytes == 0)
    return VMOE_STATUS_OK;
  if (bytes > static_cast<uint64_t>(PTRDIFF_MAX) / c->collective.size)
    return failWith(message, VMOE_STATUS_INVALID_ARGUMENT,
                    "%llu bytes per rank is too large",
                    static_cast<ull>(bytes));
  const uint8_t *from = static_cast<const uint8_t *>(send);
  uint8_t *to = static_cast<uint8_t *>(recv);
  // All-gather: every rank's block is `bytes` long and sent whole; the send
  // side of MPI_Iallgather is one block (its stride is never used).
  for (uint64_t offset = 0; offset < bytes; offset += c->maxPiece) {
    uint64_t piece =
        bytes - offset < c->maxPiece ? bytes - offset : c->maxPiece;
    if (vmoe_status_t s =
            exchangePiece(c, toAll, from, to, offset, piece, bytes, message))
      return s;
  }
  return VMOE_STATUS_OK;
}

vmoe_status_t allToAll(void *user, const void *send, void *recv, uint64_t chunk,
                       vmoe_message_t *message) {
  return exchange(static_cast<vmoe_mpi_collective_t *>(user), true, send, recv,
                  chunk, message);
}

vmoe_status_t allGather(void *user, const void *send, void *recv,
                        uint64_t bytes, vmoe_message_t *message) {
  return exchange(static_cast<vmoe_mpi_collective_t *>(user), false, send, recv,
                  bytes, message);
}

vmoe_status_t barrier(void *user, vmoe_message_t *message) {
  auto *c = static_cast<vmoe_mpi_collective_t *>(user);
  if (c->broken)
    return failWith(message, VMOE_STATUS_FAILED_PRECONDITION,
                    "an earlier exchange failed");
  MPI_Request request;
  int code = MPI_Ibarrier(c->comm, &request);
  if (code != MPI_SUCCESS)
    return mpiError(c, code, "MPI_Ibarrier", message);
  return wait(c, &request, "MPI_Ibarrier", message);
}

} // namespace

vmoe_status_t vmoe_mpi_collective_create(MPI_Comm comm, uint32_t timeout_ms,
                                         vmoe_mpi_collective_t **out,
                                         vmoe_message_t *message) {
  if (!out)
    return failWith(message, VMOE_STATUS_INVALID_ARGUMENT, "out is null");
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized)
    return failWith(message, VMOE_STATUS_FAILED_PRECONDITION,
                    "MPI is not initialised (call MPI_Init first)");
  auto *c = new (std::nothrow) vmoe_mpi_collective_t;
  if (!c)
    return failWith(message, VMOE_STATUS_OUT_OF_MEMORY, "out of memory");
  if (timeout_ms)
    c->timeout = std::chrono::milliseconds(timeout_ms);
  int code = MPI_Comm_dup(comm, &c->comm);
  if (code == MPI_SUCCESS)
    code = MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
  int rank = 0, size = 0;
  if (code == MPI_SUCCESS)
    code = MPI_Comm_rank(c->comm, &rank);
  if (code == MPI_SUCCESS)
    code = MPI_Comm_size(c->comm, &size);
  if (code != MPI_SUCCESS) {
    vmoe_status_t status = mpiError(c, code, "MPI_Comm_dup", message);
    vmoe_mpi_collective_destroy(c);
    return status;
  }
  c->collective.user = c;
  c->collective.rank = static_cast<uint32_t>(rank);
  c->collective.size = static_cast<uint32_t>(size);
  c->collective.all_to_all = allToAll;
  c->collective.all_gather = allGather;
  c->collective.barrier = barrier;
  *out = c;
  return VMOE_STATUS_OK;
}

void vmoe_mpi_collective_destroy(vmoe_mpi_collective_t *c) {
  if (!c)
    return;
  // Freeing a communicator is collective; a broken job only leaks it.
  if (c->comm != MPI_COMM_NULL && !c->broken)
    MPI_Comm_free(&c->comm);
  delete c;
}

const vmoe_collective_t *
vmoe_mpi_collective_get(const vmoe_mpi_collective_t *c) {
  return c ? &c->collective : nullptr;
}

void vmoe_mpi_collective_set_max_piece(vmoe_mpi_collective_t *c,
                                       uint64_t bytes) {
  // An int count of bytes per MPI call.
  if (c)
    c->maxPiece = bytes < 1 ? 1 : bytes > INT_MAX ? INT_MAX : bytes;
}

int vmoe_mpi_collective_broken(const vmoe_mpi_collective_t *c) {
  return c && c->broken;
}

vmoe_status_t vmoe_mpi_all_ok(vmoe_mpi_collective_t *c, int ok,
                              vmoe_message_t *message) {
  if (!c)
    return failWith(message, VMOE_STATUS_INVALID_ARGUMENT,
                    "collective is null");
  int32_t mine = ok ? 1 : 0;
  std::vector<int32_t> all(c->collective.size, 0);
  if (vmoe_status_t s =
          exchange(c, false, &mine, all.data(), sizeof(mine), message))
    return s;
  for (uint32_t j = 0; j < c->collective.size; ++j)
    if (!all[j])
      return failWith(message, VMOE_STATUS_FAILED_PRECONDITION,
                      "rank %u failed (its own output says why)", j);
  return VMOE_STATUS_OK;
}
