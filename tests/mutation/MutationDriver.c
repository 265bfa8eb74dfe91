/*===- MutationDriver.c - load and run many mutants of one module --------===//
 *
 * The engine of scripts/mutation_sweep.py: it reads a module file, runs it
 * once on fixed inputs for the reference outputs, then for every mutation
 * read from stdin ("ID OFFSET VALUE [OFFSET VALUE ...]", one mutant a line)
 * loads the mutated bytes (vmoe_module_load_memory), creates a session and
 * runs the same inputs, each mutant in a forked child so that a crash or a
 * hang ends only that child. It prints one line per mutant:
 *
 *   ID refused-load STATUS: message     (the load refused it: the goal)
 *   ID refused-session STATUS: message  (the load accepted it)
 *   ID refused-run STATUS: message
 *   ID same                             (accepted, outputs unchanged)
 *   ID changed                          (accepted, outputs changed)
 *   ID crash SIGNAL
 *   ID hang                             (past --timeout seconds)
 *
 * Usage: vmoe-mutation-driver MODULE [--jobs N] [--timeout SECONDS]
 *
 * The parent never loads a module itself: it stays single-threaded, so
 * fork() is safe. Plain C over runtime.h, as any embedder would use it.
 *
 *===----------------------------------------------------------------------===*/

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "vmoe/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
  kExitRefusedLoad = 10,
  kExitRefusedSession = 11,
  kExitRefusedRun = 12,
  kExitSame = 13,
  kExitChanged = 14,
  kExitDriverError = 15,
  kMaxJobs = 64,
  kSlotSize = VMOE_MESSAGE_CAPACITY,
  kMaxMutationsPerLine = 64,
};

/* Reference outputs, written by the reference child (shared memory). */
#define kReferenceCapacity ((size_t)64 << 20)
static unsigned char *reference; /* [0,8): byte count, then the bytes */
static char *slots;              /* one message slot per job */

static unsigned char *readFile(const char *path, size_t *size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    fprintf(stderr, "vmoe-mutation-driver: cannot open %s: %s\n", path,
            strerror(errno));
    exit(2);
  }
  unsigned char *bytes = malloc(st.st_size ? (size_t)st.st_size : 1);
  size_t done = 0;
  while (bytes && done < (size_t)st.st_size) {
    ssize_t n = read(fd, bytes + done, (size_t)st.st_size - done);
    if (n <= 0) {
      fprintf(stderr, "vmoe-mutation-driver: cannot read %s\n", path);
      exit(2);
    }
    done += (size_t)n;
  }
  close(fd);
  *size = done;
  return bytes;
}

/* Deterministic inputs: small finite values for floats, a pattern for the
 * rest (never NaN, so outputs compare bytewise). */
static void fillInput(const vmoe_tensor_info_t *info, unsigned char *data) {
  if (info->dtype == VMOE_DTYPE_F32) {
    float *f = (float *)data;
    for (uint64_t i = 0; i < info->size_bytes / 4; ++i)
      f[i] = (float)((int)(i * 7919 % 256) - 128) / 128.0f;
    return;
  }
  for (uint64_t i = 0; i < info->size_bytes; ++i)
    data[i] = (unsigned char)(i * 31 % 7);
}

/* Loads, creates a session and runs at the maximum batch; writes the
 * outputs, concatenated, to `out` (NULL: compares them with the reference).
 * Returns an exit code of the enum above. */
static int loadAndRun(const unsigned char *bytes, size_t size, char *slot,
                      unsigned char *out) {
  vmoe_message_t message;
  vmoe_module_t *module = NULL;
  vmoe_status_t s =
      vmoe_module_load_memory(bytes, size, VMOE_MEMORY_COPY, &module, &message);
  if (s != VMOE_STATUS_OK) {
    snprintf(slot, kSlotSize, "%s: %s", vmoe_status_name(s), message.text);
    return kExitRefusedLoad;
  }
  vmoe_session_options_t options;
  vmoe_session_options_init(&options);
  options.thread_count = 1;
  vmoe_session_t *session = NULL;
  s = vmoe_session_create(module, &options, &session, &message);
  if (s != VMOE_STATUS_OK) {
    snprintf(slot, kSlotSize, "%s: %s", vmoe_status_name(s), message.text);
    return kExitRefusedSession;
  }
  vmoe_module_info_t info;
  vmoe_module_info(module, &info);
  if (info.input_count > 64 || info.output_count > 64)
    return kExitRefusedRun;
  vmoe_tensor_t inputs[64], outputs[64];
  uint64_t total = 0;
  for (uint32_t pass = 0; pass < 2; ++pass) {
    uint32_t count = pass == 0 ? info.input_count : info.output_count;
    for (uint32_t i = 0; i < count; ++i) {
      vmoe_tensor_info_t t;
      s = pass == 0 ? vmoe_module_input_info(module, i, &t, &message)
                    : vmoe_module_output_info(module, i, &t, &message);
      if (s != VMOE_STATUS_OK || t.size_bytes > kReferenceCapacity) {
        snprintf(slot, kSlotSize, "%s: %s", vmoe_status_name(s),
                 s == VMOE_STATUS_OK ? "tensor too large for the driver"
                                     : message.text);
        return kExitRefusedRun;
      }
      unsigned char *data = calloc(1, t.size_bytes ? t.size_bytes : 1);
      if (!data)
        return kExitRefusedRun;
      vmoe_tensor_t *tensor = pass == 0 ? &inputs[i] : &outputs[i];
      tensor->dtype = t.dtype;
      tensor->rank = t.rank;
      tensor->shape = t.shape;
      tensor->data = data;
      tensor->size_bytes = t.size_bytes;
      if (pass == 0)
        fillInput(&t, data);
      else
        total += t.size_bytes;
    }
  }
  s = vmoe_session_run(session, inputs, info.input_count, outputs,
                       info.output_count, NULL, &message);
  if (s != VMOE_STATUS_OK) {
    snprintf(slot, kSlotSize, "%s: %s", vmoe_status_name(s), message.text);
    return kExitRefusedRun;
  }
  if (out) {
    if (total > kReferenceCapacity - 8)
      return kExitDriverError;
    memcpy(out, &total, 8);
    uint64_t at = 8;
    for (uint32_t i = 0; i < info.output_count; ++i) {
      memcpy(out + at, outputs[i].data, outputs[i].size_bytes);
      at += outputs[i].size_bytes;
    }
    return kExitSame;
  }
  uint64_t want;
  memcpy(&want, reference, 8);
  if (want != total)
    return kExitChanged;
  uint64_t at = 8;
  for (uint32_t i = 0; i < info.output_count; ++i) {
    if (memcmp(reference + at, outputs[i].data, outputs[i].size_bytes) != 0)
      return kExitChanged;
    at += outputs[i].size_bytes;
  }
  return kExitSame;
}

typedef struct Job {
  pid_t pid;
  long id;
  struct timespec start;
} Job;

static double secondsSince(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - start->tv_sec) +
         (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* The child's end: one mutant, its verdict as the exit code. */
static void child(const unsigned char *original, size_t size,
                  const long *offsets, const int *values, int count, char *slot,
                  unsigned timeout) {
  int null = open("/dev/null", O_WRONLY);
  if (null >= 0) { /* a crashing mutant's noise stays out of the report */
    dup2(null, 1);
    dup2(null, 2);
  }
  alarm(timeout);
  unsigned char *bytes = malloc(size ? size : 1);
  if (!bytes)
    _exit(kExitDriverError);
  memcpy(bytes, original, size);
  for (int i = 0; i < count; ++i)
    bytes[offsets[i]] = (unsigned char)values[i];
  _exit(loadAndRun(bytes, size, slot, NULL));
}

static void report(const Job *job, int status, char *slot) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    if (sig == SIGALRM || sig == SIGKILL)
      printf("%ld hang\n", job->id);
    else
      printf("%ld crash %s\n", job->id, strsignal(sig));
  } else {
    int code = WEXITSTATUS(status);
    for (char *c = slot; *c; ++c)
      if (*c == '\n')
        *c = ' ';
    switch (code) {
    case kExitRefusedLoad:
      printf("%ld refused-load %s\n", job->id, slot);
      break;
    case kExitRefusedSession:
      printf("%ld refused-session %s\n", job->id, slot);
      break;
    case kExitRefusedRun:
      printf("%ld refused-run %s\n", job->id, slot);
      break;
    case kExitSame:
      printf("%ld same\n", job->id);
      break;
    case kExitChanged:
      printf("%ld changed\n", job->id);
      break;
    default:
      printf("%ld crash exit-%d\n", job->id, code);
      break;
    }
  }
  fflush(stdout);
}

/* Waits for one child to end (or kills the one past its deadline); frees
 * its job. */
static void reap(Job *jobs, int jobCount, int *running, unsigned timeout) {
  for (;;) {
    for (int j = 0; j < jobCount; ++j) {
      if (!jobs[j].pid)
        continue;
      int status;
      pid_t r = waitpid(jobs[j].pid, &status, WNOHANG);
      if (r == jobs[j].pid) {
        report(&jobs[j], status, slots + (size_t)j * kSlotSize);
        jobs[j].pid = 0;
        --*running;
        return;
      }
      /* A child that blocked SIGALRM: killed a second later. */
      if (secondsSince(&jobs[j].start) > timeout + 1.0)
        kill(jobs[j].pid, SIGKILL);
    }
    struct timespec pause = {0, 200000};
    nanosleep(&pause, NULL);
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: vmoe-mutation-driver MODULE [--jobs N] "
                    "[--timeout SECONDS] < mutations\n");
    return 2;
  }
  int jobCount = 2;
  unsigned timeout = 10;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--jobs") == 0)
      jobCount = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--timeout") == 0)
      timeout = (unsigned)atoi(argv[i + 1]);
  }
  if (jobCount < 1 || jobCount > kMaxJobs || timeout < 1) {
    fprintf(stderr, "vmoe-mutation-driver: --jobs must be in [1, 64] and "
                    "--timeout positive\n");
    return 2;
  }
  size_t size;
  unsigned char *original = readFile(argv[1], &size);
  reference = mmap(NULL, kReferenceCapacity, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  slots = mmap(NULL, (size_t)kMaxJobs * kSlotSize, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (reference == MAP_FAILED || slots == MAP_FAILED)
    return 2;

  /* The reference run, in a child too. */
  pid_t pid = fork();
  if (pid == 0) {
    alarm(timeout * 4);
    _exit(loadAndRun(original, size, slots, reference));
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != kExitSame) {
    fprintf(stderr,
            "vmoe-mutation-driver: the unmutated module does not run (%s)\n",
            slots);
    return 2;
  }
  printf("reference ok %s\n", argv[1]);
  fflush(stdout);

  Job jobs[kMaxJobs];
  memset(jobs, 0, sizeof(jobs));
  int running = 0;
  char *line = NULL;
  size_t capacity = 0;
  while (getline(&line, &capacity, stdin) > 0) {
    long id, offsets[kMaxMutationsPerLine];
    int values[kMaxMutationsPerLine], count = 0, used = 0;
    char *p = line;
    if (sscanf(p, "%ld%n", &id, &used) != 1)
      continue;
    p += used;
    while (count < kMaxMutationsPerLine &&
           sscanf(p, "%ld %d%n", &offsets[count], &values[count], &used) == 2) {
      p += used;
      if (offsets[count] < 0 || (size_t)offsets[count] >= size ||
          values[count] < 0 || values[count] > 255) {
        fprintf(stderr,
                "vmoe-mutation-driver: mutation %ld is outside the "
                "file or not a byte\n",
                id);
        return 2;
      }
      ++count;
    }
    if (running == jobCount)
      reap(jobs, jobCount, &running, timeout);
    int j = 0;
    while (jobs[j].pid)
      ++j;
    memset(slots + (size_t)j * kSlotSize, 0, kSlotSize);
    pid = fork();
    if (pid < 0) {
      perror("vmoe-mutation-driver: fork");
      return 2;
    }
    if (pid == 0)
      child(original, size, offsets, values, count,
            slots + (size_t)j * kSlotSize, timeout);
    jobs[j].pid = pid;
    jobs[j].id = id;
    clock_gettime(CLOCK_MONOTONIC, &jobs[j].start);
    ++running;
  }
  while (running)
    reap(jobs, jobCount, &running, timeout);
  free(line);
  free(original);
  return 0;
}
