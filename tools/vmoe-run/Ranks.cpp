//===- Ranks.cpp - vmoe-run as one rank of an MPI job ---------------------===//

#include "Ranks.h"

#include "../common/ToolSupport.h"

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <sys/stat.h>
#include <unistd.h>

#ifdef VMOE_RUN_MPI
#include "vmoe/mpi.h"
#endif

namespace vmoe::tools::run {

namespace {

/// mpirun's environment (Open MPI, MPICH/PMI, PMIx).
bool launchedByMpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") ||
         std::getenv("PMIX_RANK");
}

bool fileExists(const std::string &path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

#ifdef VMOE_RUN_MPI
// What a rank prints when mpirun ends it because another rank failed or
// died: written by the signal handler, so made before.
char terminatedText[128];

void onTerminate(int) {
  ssize_t ignored = write(2, terminatedText, strlen(terminatedText));
  (void)ignored;
  _exit(143);
}
#endif

} // namespace

#ifdef VMOE_RUN_MPI
struct Ranks::Mpi {
  vmoe_mpi_collective_t *collective = nullptr;
};
#else
struct Ranks::Mpi {};
#endif

Ranks::~Ranks() { delete mpi; }

int Ranks::start(const Options &o) {
  if (!o.mpi && !launchedByMpirun())
    return 0;
#ifndef VMOE_RUN_MPI
  if (!o.mpi)
    return 0; // under mpirun without MPI: every process runs on its own
  return fail(kTool, "--mpi: this vmoe-run was built without MPI (install "
                     "libopenmpi-dev and rebuild)");
#else
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized && MPI_Init(nullptr, nullptr) != MPI_SUCCESS)
    return fail(kTool, "MPI_Init failed");
  started = true;
  mpi = new Mpi;
  vmoe_message_t message;
  if (vmoe_mpi_collective_create(MPI_COMM_WORLD, o.mpiTimeout * 1000u,
                                 &mpi->collective, &message)) {
    fail(kTool, message.text);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  const vmoe_collective_t *c = vmoe_mpi_collective_get(mpi->collective);
  rank = c->rank;
  size = c->size;
  snprintf(terminatedText, sizeof(terminatedText),
           "%s: rank %u of %u: terminated by mpirun (another rank failed or "
           "died)\n",
           kTool, rank, size);
  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_handler = onTerminate;
  sigaction(SIGTERM, &action, nullptr);
  return 0;
#endif
}

int Ranks::finish(int rc) {
#ifdef VMOE_RUN_MPI
  if (!started)
    return rc;
  if (vmoe_mpi_collective_broken(mpi->collective)) {
    // Another rank may wait in an exchange that will never complete: end
    // the whole job now rather than at its timeout.
    MPI_Abort(MPI_COMM_WORLD, rc ? rc : 1);
  }
  vmoe_mpi_collective_destroy(mpi->collective);
  mpi->collective = nullptr;
  MPI_Finalize();
#endif
  return rc;
}

const vmoe_collective_t *Ranks::collective() const {
#ifdef VMOE_RUN_MPI
  return mpi ? vmoe_mpi_collective_get(mpi->collective) : nullptr;
#else
  return nullptr;
#endif
}

bool Ranks::allOk(bool ok, std::string &error) {
#ifdef VMOE_RUN_MPI
  if (started) {
    vmoe_message_t message;
    if (vmoe_mpi_all_ok(mpi->collective, ok, &message) == VMOE_STATUS_OK)
      return true;
    error = prefix() + message.text;
    return false;
  }
#endif
  if (!ok)
    error = "failed";
  return ok;
}

bool Ranks::allGather(const void *send, void *recv, uint64_t bytes,
                      std::string &error) {
#ifdef VMOE_RUN_MPI
  if (started) {
    vmoe_message_t message;
    const vmoe_collective_t *c = collective();
    if (c->all_gather(c->user, send, recv, bytes, &message) == VMOE_STATUS_OK)
      return true;
    error = message.text;
    return false;
  }
#endif
  (void)error;
  std::memcpy(recv, send, bytes);
  return true;
}

std::string Ranks::prefix() const {
  if (!started)
    return "";
  return "rank " + std::to_string(rank) + " of " + std::to_string(size) + ": ";
}

std::string Ranks::modulePath(const std::string &path) const {
  const std::string suffix = ".vmoe";
  if (!started || fileExists(path) || path.size() < suffix.size() ||
      path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0)
    return path;
  return path.substr(0, path.size() - suffix.size()) + ".rank" +
         std::to_string(rank) + suffix;
}

} // namespace vmoe::tools::run
