//===- ShardCheck.cpp - Expert-sharded sessions over MPI, per scenario ----===//
//
// Run under `mpirun -np N` by mpi_test.py, one scenario per run; each rank
// builds its toy shard module (ShardSupport.h) in memory, or writes the
// shard files for vmoe-run. Prints "rank R: ok" or "rank R: error: ..." and
// exits 0 or 1; the driver checks every rank's line, the exit code and that
// the job ended in bounded time.
//
//   exchange            every byte of the all-to-all over MPI at several
//                       batches and capacities, in pieces of 24 bytes
//   shards N            the ranks load parts of an N-shard compile
//   other-model         rank 1 loads a part of another compile
//   kill                rank 1 dies after the first call
//   write PREFIX N      writes PREFIX.rank<R>.vmoe for R < N (no MPI)
//
//===----------------------------------------------------------------------===//

#include "ShardSupport.h"
#include "vmoe/mpi.h"

#include <csignal>
#include <cstdio>
#include <string>

namespace {

using namespace vmoe::test;

int report(uint32_t rank, vmoe_status_t status, const std::string &message) {
  if (status == VMOE_STATUS_OK) {
    std::printf("rank %u: ok\n", rank);
    std::fflush(stdout);
    return 0;
  }
  std::printf("rank %u: error: %s: %s\n", rank, vmoe_status_name(status),
              message.c_str());
  std::fflush(stdout);
  return 1;
}

std::vector<uint8_t> moduleBytes(const ShardParams &p) {
  ModuleWriter w;
  buildShardModule(w, p);
  std::vector<uint8_t> bytes;
  std::string error;
  if (!w.writeToBuffer(bytes, &error))
    std::fprintf(stderr, "writer: %s\n", error.c_str());
  return bytes;
}

/// One call at `batch` and capacity factor `cf`; checks what arrived.
vmoe_status_t runOnce(vmoe_session_t *session, const ShardParams &p,
                      int64_t batch, double cf, vmoe_message_t *message) {
  std::vector<float> x = shardInput(p.rank, batch, p);
  std::vector<int64_t> xShape = {batch, p.tokensPerImage};
  std::vector<float> recv(p.size * shardMaxChunk(p), -1.0f);
  std::vector<int64_t> recvShape = {static_cast<int64_t>(recv.size())};
  vmoe_tensor_t input = tensor(VMOE_DTYPE_F32, xShape, x.data(), x.size() * 4);
  vmoe_tensor_t output =
      tensor(VMOE_DTYPE_F32, recvShape, recv.data(), recv.size() * 4);
  vmoe_run_options_t options;
  vmoe_run_options_init(&options);
  options.capacity_factor = cf;
  if (vmoe_status_t status =
          vmoe_session_run(session, &input, 1, &output, 1, &options, message))
    return status;
  std::vector<float> want =
      shardExpectedRecv(p.rank, batch, shardCapacity(p, cf), p);
  for (size_t i = 0; i < want.size(); ++i)
    if (recv[i] != want[i]) {
      snprintf(message->text, sizeof(message->text),
               "batch %lld cf %g: float %zu is %g, expected %g",
               static_cast<long long>(batch), cf, i, recv[i], want[i]);
      return VMOE_STATUS_INTERNAL;
    }
  return VMOE_STATUS_OK;
}

int scenario(const std::string &name, int argc, char **argv,
             vmoe_mpi_collective_t *mpi) {
  const vmoe_collective_t *c = vmoe_mpi_collective_get(mpi);
  ShardParams p;
  p.rank = c->rank;
  p.size = c->size;
  if (name == "shards" && argc > 2)
    p.size = static_cast<uint32_t>(std::stoul(argv[2]));
  if (name == "other-model" && p.rank == 1)
    p.modelId = {0x1234, 0xbad};
  if (name == "exchange")
    vmoe_mpi_collective_set_max_piece(mpi, 24);
  vmoe_message_t message;
  message.text[0] = 0;
  std::vector<uint8_t> bytes = moduleBytes(p);
  vmoe_module_t *module = nullptr;
  vmoe_status_t status = vmoe_module_load_memory(
      bytes.data(), bytes.size(), VMOE_MEMORY_COPY, &module, &message);
  if (status)
    return report(p.rank, status, message.text);
  vmoe_session_options_t options;
  vmoe_session_options_init(&options);
  options.thread_count = 1;
  options.collective = c;
  vmoe_session_t *session = nullptr;
  status = vmoe_session_create(module, &options, &session, &message);
  vmoe_module_release(module);
  if (status)
    return report(p.rank, status, message.text);
  const int64_t batches[] = {1, 4, 3, 2};
  const double factors[] = {1.0, 4.0, 2.0, 1.0};
  for (int i = 0; i < 4 && status == VMOE_STATUS_OK; ++i) {
    if (name == "kill" && i == 1 && p.rank == 1)
      raise(SIGKILL); // dies between two calls; the others are in the next
    status = runOnce(session, p, batches[i], factors[i], &message);
  }
  vmoe_session_destroy(session);
  return report(p.rank, status, message.text);
}

int writeShards(const std::string &prefix, uint32_t size) {
  for (uint32_t r = 0; r < size; ++r) {
    ShardParams p;
    p.rank = r;
    p.size = size;
    p.batchOutput = true;
    ModuleWriter w;
    buildShardModule(w, p);
    std::string error;
    std::string path = prefix + ".rank" + std::to_string(r) + ".vmoe";
    if (!w.writeFile(path, &error)) {
      std::fprintf(stderr, "%s: %s\n", path.c_str(), error.c_str());
      return 1;
    }
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: vmoe_mpi_shard_check SCENARIO [ARGS]\n");
    return 2;
  }
  std::string name = argv[1];
  if (name == "write")
    return argc == 4 ? writeShards(argv[2], std::stoul(argv[3])) : 2;
  MPI_Init(&argc, &argv);
  vmoe_mpi_collective_t *mpi = nullptr;
  vmoe_message_t message;
  // Short: a dead rank fails the others quickly (the test's bound).
  if (vmoe_mpi_collective_create(MPI_COMM_WORLD, 5000, &mpi, &message)) {
    std::printf("error: %s\n", message.text);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  int rc = scenario(name, argc, argv, mpi);
  if (vmoe_mpi_collective_broken(mpi))
    MPI_Abort(MPI_COMM_WORLD, rc ? rc : 1);
  vmoe_mpi_collective_destroy(mpi);
  MPI_Finalize();
  return rc;
}
