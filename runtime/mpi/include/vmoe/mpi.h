/*
 * vmoe_mpi: the collective of expert-sharded vmoe sessions over MPI.
 *
 * An optional library next to the runtime (which links no MPI): it
 * implements vmoe_collective_t (vmoe/runtime.h) on an MPI communicator, so
 * that the ranks of `mpirun -np N` each run one shard of a model compiled
 * with `vmoe-compile --expert-shards=N`.
 *
 * Bounded time: every exchange is a nonblocking MPI collective that the
 * calling rank polls until it completes or its deadline passes; a peer that
 * died or stopped answering makes the exchange fail with a message (and
 * marks the collective broken) instead of hanging. The communicator is a
 * duplicate with MPI_ERRORS_RETURN, so an MPI error is a status here, not an
 * abort. A broken collective cannot be trusted to line the ranks up again:
 * end the job (MPI_Abort).
 *
 * MPI must be initialised before vmoe_mpi_collective_create and finalised
 * after vmoe_mpi_collective_destroy; only the thread that created the
 * collective may use it (MPI_THREAD_SINGLE is enough: the session calls the
 * collective from the thread that calls vmoe_session_run).
 */
#ifndef VMOE_MPI_H
#define VMOE_MPI_H

#include "vmoe/runtime.h"

#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmoe_mpi_collective_t vmoe_mpi_collective_t;

/* A collective over a duplicate of `comm`. `timeout_ms`: the longest one
 * exchange may wait for the other ranks (0: VMOE_MPI_DEFAULT_TIMEOUT_MS).
 * Collective over `comm`: every rank calls it. */
#define VMOE_MPI_DEFAULT_TIMEOUT_MS 300000u
vmoe_status_t vmoe_mpi_collective_create(MPI_Comm comm, uint32_t timeout_ms,
                                         vmoe_mpi_collective_t **out,
                                         vmoe_message_t *message);
/* Frees the duplicate communicator (collective unless broken). */
void vmoe_mpi_collective_destroy(vmoe_mpi_collective_t *collective);

/* What vmoe_session_options_t.collective takes; lives as long as
 * `collective`. */
const vmoe_collective_t *
vmoe_mpi_collective_get(const vmoe_mpi_collective_t *collective);

/* Nonzero once an exchange failed on this rank (an MPI error or a timeout):
 * the ranks may no longer be in step. */
int vmoe_mpi_collective_broken(const vmoe_mpi_collective_t *collective);

/* The most bytes per rank one MPI call moves (default 1 GiB; an exchange
 * past it, or past INT_MAX, goes in pieces). For tests of the pieces. */
void vmoe_mpi_collective_set_max_piece(vmoe_mpi_collective_t *collective,
                                       uint64_t bytes);

/* Every rank contributes `ok` (nonzero: this rank succeeded); returns
 * VMOE_STATUS_OK when all did, else FAILED_PRECONDITION naming the first
 * rank that did not (or the exchange's own error). For a program's steps
 * outside the runtime (loading inputs, writing outputs), so that the ranks
 * fail together. */
vmoe_status_t vmoe_mpi_all_ok(vmoe_mpi_collective_t *collective, int ok,
                              vmoe_message_t *message);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* VMOE_MPI_H */
