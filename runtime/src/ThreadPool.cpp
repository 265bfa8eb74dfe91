//===- ThreadPool.cpp - Split a range of work over threads ----------------===//

#include "ThreadPool.h"

#include "Diagnostics.h"

#include <cstring>

namespace vmoe {

ThreadPool::ThreadPool() {
  pthread_mutex_init(&mutex, nullptr);
  pthread_cond_init(&wake, nullptr);
  pthread_cond_init(&done, nullptr);
}

ThreadPool::~ThreadPool() {
  stop();
  pthread_cond_destroy(&done);
  pthread_cond_destroy(&wake);
  pthread_mutex_destroy(&mutex);
}

vmoe_status_t ThreadPool::start(uint32_t threadCount, vmoe_message_t *message) {
  // Reserve first so that Worker addresses stay put while threads use them.
  workers.reserve(threadCount > 0 ? threadCount - 1 : 0);
  for (uint32_t id = 1; id < threadCount; ++id) {
    workers.push_back(Worker{this, id, pthread_t()});
    int error = pthread_create(&workers.back().thread, nullptr, workerMain,
                               &workers.back());
    if (error) {
      workers.pop_back();
      stop();
      return fail(message, VMOE_STATUS_OUT_OF_MEMORY,
                  "cannot start thread %u of %u: %s", id, threadCount,
                  strerror(error));
    }
  }
  return VMOE_STATUS_OK;
}

void ThreadPool::stop() {
  pthread_mutex_lock(&mutex);
  stopping = true;
  pthread_cond_broadcast(&wake);
  pthread_mutex_unlock(&mutex);
  for (Worker &w : workers)
    pthread_join(w.thread, nullptr);
  workers.clear();
}

void *ThreadPool::workerMain(void *arg) {
  Worker *self = static_cast<Worker *>(arg);
  ThreadPool *pool = self->pool;
  uint64_t seen = 0;
  pthread_mutex_lock(&pool->mutex);
  for (;;) {
    while (!pool->stopping && pool->generation == seen)
      pthread_cond_wait(&pool->wake, &pool->mutex);
    if (pool->stopping)
      break;
    seen = pool->generation;
    // A range the caller has already finished is not joined: its fields may
    // be rewritten for the next one as soon as no worker is inside.
    if (!pool->open)
      continue;
    ++pool->inside;
    pthread_mutex_unlock(&pool->mutex);
    pool->work(self->id);
    pthread_mutex_lock(&pool->mutex);
    if (--pool->inside == 0)
      pthread_cond_signal(&pool->done);
  }
  pthread_mutex_unlock(&pool->mutex);
  return nullptr;
}

void ThreadPool::work(uint32_t worker) {
  for (;;) {
    uint64_t begin = next.fetch_add(chunk, std::memory_order_relaxed);
    if (begin >= count)
      return;
    uint64_t end = count - begin < chunk ? count : begin + chunk;
    fn(context, begin, end, worker);
  }
}

void ThreadPool::run(uint64_t rangeCount, RangeFn rangeFn, void *rangeContext) {
  if (rangeCount == 0)
    return;
  if (workers.empty() || rangeCount == 1) {
    rangeFn(rangeContext, 0, rangeCount, 0);
    return;
  }
  uint64_t threads = workers.size() + 1;
  pthread_mutex_lock(&mutex);
  fn = rangeFn;
  context = rangeContext;
  count = rangeCount;
  // Several chunks per thread balance uneven workgroups; claiming one
  // index at a time would make the shared counter the bottleneck.
  chunk = rangeCount / (threads * 4);
  if (chunk == 0)
    chunk = 1;
  next.store(0, std::memory_order_relaxed);
  open = true;
  ++generation;
  pthread_cond_broadcast(&wake);
  pthread_mutex_unlock(&mutex);

  // The caller works too; when it runs out of chunks every index has been
  // claimed, and only the workers still inside can be running some. Workers
  // that were not scheduled in time (a busy machine) are not waited for.
  work(0);

  pthread_mutex_lock(&mutex);
  open = false;
  while (inside != 0)
    pthread_cond_wait(&done, &mutex);
  pthread_mutex_unlock(&mutex);
}

} // namespace vmoe
