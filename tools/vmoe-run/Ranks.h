//===- Ranks.h - vmoe-run as one rank of an MPI job -------------*- C++ -*-===//
//
// Under `mpirun -np N`, vmoe-run is one of N processes: each runs its own
// slice of the images (and its expert shard, when the module is one), the
// ranks agree on every step that can fail so that they fail together, and
// rank 0 gathers the outputs and the routing statistics. Without MPI in the
// build (or outside mpirun) this is one rank of one, and every exchange is
// a copy.
//
//===----------------------------------------------------------------------===//

#ifndef VMOE_TOOLS_VMOE_RUN_RANKS_H
#define VMOE_TOOLS_VMOE_RUN_RANKS_H

#include "RunOptions.h"

#include <cstdint>
#include <string>

namespace vmoe::tools::run {

class Ranks {
public:
  Ranks() = default;
  Ranks(const Ranks &) = delete;
  Ranks &operator=(const Ranks &) = delete;
  ~Ranks();

  /// Starts MPI when asked (--mpi) or launched by mpirun. Returns 0, or 1
  /// (message printed).
  int start(const Options &o);
  /// Ends the job: MPI_Finalize when the ranks are still in step, else
  /// MPI_Abort (a rank may be waiting in an exchange). Returns `rc`.
  int finish(int rc);

  bool active() const { return size > 1 || started; }
  uint32_t rank = 0;
  uint32_t size = 1;

  /// The runtime's collective for sessions (null outside MPI).
  const vmoe_collective_t *collective() const;
  /// Every rank says whether its step succeeded; true when all did, else
  /// `error` names the first rank that did not.
  bool allOk(bool ok, std::string &error);
  /// Rank j's `bytes` bytes of `send` land at recv + j * bytes everywhere.
  bool allGather(const void *send, void *recv, uint64_t bytes,
                 std::string &error);
  /// "rank R of N: " under MPI, "" otherwise (for messages).
  std::string prefix() const;

  /// The module file of this rank: `path`, or NAME.rankR.vmoe for
  /// NAME.vmoe when that does not exist and the job has several ranks.
  std::string modulePath(const std::string &path) const;

private:
  bool started = false;
  struct Mpi;
  Mpi *mpi = nullptr;
};

} // namespace vmoe::tools::run

#endif // VMOE_TOOLS_VMOE_RUN_RANKS_H
