/*
 * peak_fma.c - the fp32 FMA peak of the machine it runs on.
 *
 * Each thread runs a loop of independent fused multiply-adds on 12 vector
 * accumulators (enough to cover the FMA latency times the number of FMA
 * ports of current x86 and Arm cores), so the loop is bound by FMA
 * throughput alone. Prints GFLOP/s (an FMA counts 2 FLOPs), the best of
 * several trials, per thread and in total.
 *
 * It uses the widest vector unit the compiler targets: AVX-512 where
 * -march=native has it (512-bit FMAs: twice the AVX2 peak on cores with two
 * 512-bit FMA ports, the same on cores with one), else AVX2+FMA, or NEON on
 * AArch64. The ISA it used is printed with the result.
 *
 *   cc -O2 -march=native -pthread bench/peak_fma.c -o peak_fma
 *   cc -O2 -mcpu=native -pthread bench/peak_fma.c -o peak_fma
 *   ./peak_fma [THREADS] [--json]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define ISA "avx512f"
#define LANES 16
typedef __m512 vec;
static vec vsplat(float x) { return _mm512_set1_ps(x); }
static vec vfma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
static float vsum(vec v) { return _mm512_reduce_add_ps(v); }
#define VREG "+v"
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define ISA "avx2-fma"
#define LANES 8
typedef __m256 vec;
static vec vsplat(float x) { return _mm256_set1_ps(x); }
static vec vfma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
#define VREG "+x"
static float vsum(vec v) {
  float lanes[8];
  _mm256_storeu_ps(lanes, v);
  float s = 0;
  for (int i = 0; i < 8; ++i)
    s += lanes[i];
  return s;
}
#elif defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define ISA "neon"
#define LANES 4
typedef float32x4_t vec;
static vec vsplat(float x) { return vdupq_n_f32(x); }
static vec vfma(vec a, vec b, vec c) { return vfmaq_f32(c, a, b); }
static float vsum(vec v) { return vaddvq_f32(v); }
#define VREG "+w"
#else
#error "peak_fma.c needs AVX-512, AVX2+FMA (x86-64, -march=native) or NEON (AArch64)"
#endif

enum { kAccumulators = 12, kTrials = 40 };

static long long iterations = 20000000;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 12 independent chains of a = a * m + c; m and c keep the values bounded. */
static float fmaLoop(long long n, float seed) {
  vec m = vsplat(0.999999f), c = vsplat(1e-7f);
  vec a0 = vsplat(seed), a1 = vsplat(seed + 1), a2 = vsplat(seed + 2),
      a3 = vsplat(seed + 3), a4 = vsplat(seed + 4), a5 = vsplat(seed + 5),
      a6 = vsplat(seed + 6), a7 = vsplat(seed + 7), a8 = vsplat(seed + 8),
      a9 = vsplat(seed + 9), a10 = vsplat(seed + 10), a11 = vsplat(seed + 11);
  for (long long i = 0; i < n; ++i) {
    a0 = vfma(a0, m, c);
    a1 = vfma(a1, m, c);
    a2 = vfma(a2, m, c);
    a3 = vfma(a3, m, c);
    a4 = vfma(a4, m, c);
    a5 = vfma(a5, m, c);
    a6 = vfma(a6, m, c);
    a7 = vfma(a7, m, c);
    a8 = vfma(a8, m, c);
    a9 = vfma(a9, m, c);
    a10 = vfma(a10, m, c);
    a11 = vfma(a11, m, c);
    /* Keeps the compiler from collapsing or reordering the chains. */
    __asm__ volatile(""
                     : VREG(a0), VREG(a1), VREG(a2), VREG(a3), VREG(a4),
                       VREG(a5), VREG(a6), VREG(a7), VREG(a8), VREG(a9),
                       VREG(a10), VREG(a11));
  }
  vec s = vfma(a0, a1, a2);
  s = vfma(s, a3, a4);
  s = vfma(s, a5, a6);
  s = vfma(s, a7, a8);
  s = vfma(s, a9, a10);
  s = vfma(s, a11, m);
  return vsum(s);
}

typedef struct {
  pthread_barrier_t *barrier;
  int index;
  double seconds;
  float sink;
} Worker;

static void *work(void *p) {
  Worker *w = (Worker *)p;
  pthread_barrier_wait(w->barrier);
  double t0 = now();
  w->sink = fmaLoop(iterations, 0.5f + w->index);
  w->seconds = now() - t0;
  return NULL;
}

int main(int argc, char **argv) {
  int threads = 1, json = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--json") == 0)
      json = 1;
    else if ((threads = atoi(argv[i])) < 1) {
      fprintf(stderr, "usage: peak_fma [THREADS] [--json]\n");
      return 2;
    }
  }
  /* Size the loop to ~0.05 s per trial: on a busy machine some trials run
     without being interrupted, and the best of them is the peak. */
  double t0 = now();
  volatile float sink = fmaLoop(1000000, 0.5f);
  double probe = now() - t0;
  (void)sink;
  if (probe > 0)
    iterations = (long long)(1000000 * 0.05 / probe);
  if (iterations < 1000000)
    iterations = 1000000;

  double flops = 2.0 * LANES * kAccumulators * (double)iterations;
  double best = 0, bestPerThread = 0;
  Worker *workers = calloc(threads, sizeof(Worker));
  pthread_t *ids = calloc(threads, sizeof(pthread_t));
  pthread_barrier_t barrier;
  for (int trial = 0; trial < kTrials; ++trial) {
    pthread_barrier_init(&barrier, NULL, threads);
    for (int t = 0; t < threads; ++t) {
      workers[t].barrier = &barrier;
      workers[t].index = t;
      pthread_create(&ids[t], NULL, work, &workers[t]);
    }
    double slowest = 0;
    for (int t = 0; t < threads; ++t) {
      pthread_join(ids[t], NULL);
      if (workers[t].seconds > slowest)
        slowest = workers[t].seconds;
    }
    pthread_barrier_destroy(&barrier);
    double total = threads * flops / slowest / 1e9;
    if (total > best) {
      best = total;
      bestPerThread = total / threads;
    }
  }
  free(workers);
  free(ids);
  if (json)
    printf("{\"isa\": \"%s\", \"threads\": %d, \"gflops\": %.2f, "
           "\"gflops_per_thread\": %.2f}\n",
           ISA, threads, best, bestPerThread);
  else
    printf("fp32 FMA peak (%s, %d thread%s): %.1f GFLOP/s (%.1f per thread)\n",
           ISA, threads, threads == 1 ? "" : "s", best, bestPerThread);
  return 0;
}
