//===- ThreadPool.h - Split a range of work over threads --------*- C++ -*-===//
//
// A fixed set of pthreads that, together with the calling thread, split one
// index range at a time (a dispatch's workgroups) in dynamically claimed
// chunks. Starting a range allocates nothing. One caller at a time.
//
//===----------------------------------------------------------------------===//
#ifndef VMOE_RUNTIME_THREADPOOL_H
#define VMOE_RUNTIME_THREADPOOL_H

#include "vmoe/runtime.h"

#include <atomic>
#include <cstdint>
#include <pthread.h>
#include <vector>

namespace vmoe {

class ThreadPool {
public:
  /// Runs indices [begin, end) of the current range on worker `worker`.
  using RangeFn = void (*)(void *context, uint64_t begin, uint64_t end,
                           uint32_t worker);

  ThreadPool();
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  /// Starts `threadCount - 1` workers (the caller is worker 0).
  vmoe_status_t start(uint32_t threadCount, vmoe_message_t *message);

  uint32_t threadCount() const {
    return static_cast<uint32_t>(workers.size()) + 1;
  }

  /// Calls `fn` over [0, count) split across all threads; returns when every
  /// index has been run.
  void run(uint64_t count, RangeFn fn, void *context);

private:
  struct Worker {
    ThreadPool *pool;
    uint32_t id;
    pthread_t thread;
  };
  static void *workerMain(void *arg);
  void work(uint32_t worker);
  void stop();

  pthread_mutex_t mutex;
  pthread_cond_t wake;
  pthread_cond_t done;
  std::vector<Worker> workers;
  uint64_t generation = 0;
  /// Workers inside the current range; the caller waits only for them, not
  /// for workers that have not woken yet (they skip a closed range).
  uint32_t inside = 0;
  bool open = false;
  bool stopping = false;
  // The current range; written under the mutex before a generation starts.
  RangeFn fn = nullptr;
  void *context = nullptr;
  uint64_t count = 0;
  uint64_t chunk = 1;
  std::atomic<uint64_t> next{0};
};

} // namespace vmoe

#endif // VMOE_RUNTIME_THREADPOOL_H
