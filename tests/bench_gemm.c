/* bench_gemm.c - throughput of lensnet_sgemm per path on the matrix shapes of the OU-66 and
 * OU-200 convolution and dense layers (batch 1) and a square 512 product, then the convolution
 * layers themselves through lensnet__conv2d_forward (implicit GEMM) and through im2col +
 * lensnet_sgemm, the whole-network estimate (sum of conv-layer times per image) per path, and
 * one core's FMA peak measured the same way, before and after.
 *
 * Usage: build/bench_gemm [seconds per measurement, default 0.3]
 * Each figure is the fastest of many ~2 ms trials (see time_calls), in the thread's CPU time;
 * compare ratios within one run, since a shared machine's speed moves with its neighbours' load. */
#define _POSIX_C_SOURCE 199309L /* clock_gettime under -std=c99 */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); /* CPU time: the machine is shared */
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double measure_seconds = 0.3;

/* Seconds per call of fn(ctx): the fastest of many trials of about 2 ms each, spread over
 * measure_seconds. Short trials fit inside one scheduling slice, so on a shared machine the
 * minimum is close to what an unshared core does. */
static double time_calls(void (*fn)(void *), void *ctx) {
  double t0 = now_seconds(), best = 1e30, start;
  int reps, i;
  fn(ctx);
  reps = (int)(0.002 / (now_seconds() - t0 + 1e-9)) + 1;
  start = now_seconds();
  while (now_seconds() - start < measure_seconds) {
    double t1 = now_seconds(), t;
    for (i = 0; i < reps; i++) fn(ctx);
    t = (now_seconds() - t1) / reps;
    if (t < best) best = t;
  }
  return best;
}

static float *random_floats(size_t n) {
  float *p = (float *)malloc((n ? n : 1) * sizeof(float));
  size_t i;
  unsigned s = 12345u;
  if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
  for (i = 0; i < n; i++) { s = s * 1664525u + 1013904223u; p[i] = (float)(s >> 8) / 16777216.0f - 0.5f; }
  return p;
}

/* One core's FMA peak measured now (the machine may be shared: figures are relative to it).
 * 12 independent accumulator chains cover the FMA latency on two ports. */
#if !defined(LENSNET_NO_SIMD) && (defined(__AVX512F__) || defined(LENSNET__X86_DISPATCH))
#define BENCH_FMA_PEAK 1
/* 12 independent FMA chains. They must start from different values: chains that start equal
 * compute equal values, and the compiler merges them into one latency-bound chain (which makes
 * a peak measured that way look 1.5x higher than the hardware can do). */
LENSNET__TARGET_AVX512 static void fma_chains(void *ctx) {
  float *out = (float *)ctx;
  __m512 b = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(1e-4f);
  __m512 a0 = _mm512_set1_ps(0.10f), a1 = _mm512_set1_ps(0.11f), a2 = _mm512_set1_ps(0.12f);
  __m512 a3 = _mm512_set1_ps(0.13f), a4 = _mm512_set1_ps(0.14f), a5 = _mm512_set1_ps(0.15f);
  __m512 a6 = _mm512_set1_ps(0.16f), a7 = _mm512_set1_ps(0.17f), a8 = _mm512_set1_ps(0.18f);
  __m512 a9 = _mm512_set1_ps(0.19f), a10 = _mm512_set1_ps(0.20f), a11 = _mm512_set1_ps(0.21f);
  long n;
  for (n = 0; n < 100000; n++) {
    a0 = _mm512_fmadd_ps(a0, b, c); a1 = _mm512_fmadd_ps(a1, b, c); a2 = _mm512_fmadd_ps(a2, b, c);
    a3 = _mm512_fmadd_ps(a3, b, c); a4 = _mm512_fmadd_ps(a4, b, c); a5 = _mm512_fmadd_ps(a5, b, c);
    a6 = _mm512_fmadd_ps(a6, b, c); a7 = _mm512_fmadd_ps(a7, b, c); a8 = _mm512_fmadd_ps(a8, b, c);
    a9 = _mm512_fmadd_ps(a9, b, c); a10 = _mm512_fmadd_ps(a10, b, c); a11 = _mm512_fmadd_ps(a11, b, c);
  }
  a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                     _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
  a0 = _mm512_add_ps(a0, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
  _mm512_storeu_ps(out, a0);
}
#endif

/* One core's AVX-512 FMA peak measured now, timed like the GEMM; 0 without AVX-512. */
static double fma_peak_gflops(void) {
#ifdef BENCH_FMA_PEAK
  float out[16];
  double t;
  if (!lensnet_simd_available(LENSNET_SIMD_AVX512)) return 0;
  t = time_calls(fma_chains, out);
  if (out[0] == 12345.0f) printf(" "); /* keeps the chains alive */
  return 100000.0 * 12 * 16 * 2 / t / 1e9;
#else
  return 0;
#endif
}

typedef struct { const char *name; size_t M, N, K; int tb; } shape;

typedef struct { lensnet_simd path; const shape *s; const float *A, *B; float *C; } sgemm_call;

static void run_sgemm(void *ctx) {
  sgemm_call *c = (sgemm_call *)ctx;
  lensnet_sgemm_path(c->path, 0, c->s->tb, c->s->M, c->s->N, c->s->K, 1.0f, c->A, c->s->K, c->B,
                     c->s->tb ? c->s->K : c->s->N, 0.0f, c->C, c->s->N);
}

typedef struct { const char *name; size_t cin, hw, cout, k; } conv_layer;

static void geom_for(const conv_layer *l, lensnet__conv_geom *g) {
  g->n = 1; g->cin = l->cin; g->h = g->w = l->hw; g->cout = l->cout; g->kh = g->kw = l->k;
  g->stride = 1; g->pad = 0; g->groups = 1;
  g->oh = g->ow = l->hw - l->k + 1;
}

/* The alternative to implicit packing: form the im2col matrix, multiply, then bias + ReLU. */
static void conv_via_im2col(const lensnet__conv_geom *g, const float *in, const float *w, const float *bias,
                            float *out, float *col) {
  size_t K = g->cin * g->kh * g->kw, P = g->oh * g->ow, co, p;
  lensnet__im2col(g, in, g->cin, col);
  lensnet_sgemm(0, 0, g->cout, P, K, 1.0f, w, K, col, P, 0.0f, out, P);
  for (co = 0; co < g->cout; co++)
    for (p = 0; p < P; p++) { float v = out[co * P + p] + bias[co]; out[co * P + p] = v > 0.0f ? v : 0.0f; }
}

typedef struct {
  int which; /* 0: implicit GEMM on `path`; 1: im2col + sgemm */
  lensnet_simd path;
  lensnet__conv_geom g;
  float *in, *w, *bias, *out, *scratch, *col;
} conv_call;

static void run_conv(void *ctx) {
  conv_call *c = (conv_call *)ctx;
  if (c->which == 0) lensnet__conv2d_forward_path(c->path, &c->g, c->in, c->w, c->bias, 1, c->out, c->scratch);
  else conv_via_im2col(&c->g, c->in, c->w, c->bias, c->out, c->col);
}

/* Seconds per call of one conv layer at batch 1. */
static double time_conv(const conv_layer *l, int which, lensnet_simd path) {
  conv_call c;
  size_t K = l->cin * l->k * l->k, P;
  double t;
  c.which = which;
  c.path = path;
  geom_for(l, &c.g);
  P = c.g.oh * c.g.ow;
  c.in = random_floats(l->cin * l->hw * l->hw); c.w = random_floats(l->cout * K); c.bias = random_floats(l->cout);
  c.out = random_floats(l->cout * P); c.scratch = random_floats(lensnet__conv_scratch_floats(&c.g));
  c.col = random_floats(K * P);
  t = time_calls(run_conv, &c);
  free(c.in); free(c.w); free(c.bias); free(c.out); free(c.scratch); free(c.col);
  return t;
}

static const conv_layer ou66[] = {
  {"conv1 4->50 3x3 @66", 4, 66, 50, 3},   {"conv2 50->50 3x3 @32", 50, 32, 50, 3},
  {"conv3 50->50 3x3 @30", 50, 30, 50, 3}, {"conv4 50->50 3x3 @28", 50, 28, 50, 3},
  {"conv5 50->40 3x3 @26", 50, 26, 40, 3}, {"conv6 40->40 3x3 @12", 40, 12, 40, 3},
  {"conv7 40->40 3x3 @10", 40, 10, 40, 3}, {"conv8 40->40 3x3 @8", 40, 8, 40, 3},
  {"conv9 40->30 3x3 @6", 40, 6, 30, 3},
};
static const conv_layer ou200[] = {
  {"conv1 4->50 5x5 @200", 4, 200, 50, 5}, {"conv2 50->40 5x5 @98", 50, 98, 40, 5},
  {"conv3 40->30 3x3 @47", 40, 47, 30, 3}, {"conv4 30->20 3x3 @22", 30, 22, 20, 3},
  {"conv5 20->20 3x3 @10", 20, 10, 20, 3}, {"conv6 20->20 3x3 @8", 20, 8, 20, 3},
};

static void bench_network(const char *name, const conv_layer *layers, size_t count) {
  double total_implicit = 0, total_im2col = 0, total_flop = 0;
  size_t i;
  lensnet_simd best = lensnet_simd_best();
  printf("\n%s conv layers at batch 1 (%s path): implicit GEMM vs im2col + sgemm\n", name, lensnet_simd_name(best));
  printf("  %-24s %10s %10s %9s %10s %9s\n", "layer", "MFLOP", "implicit", "GFLOP/s", "im2col", "GFLOP/s");
  for (i = 0; i < count; i++) {
    const conv_layer *l = &layers[i];
    size_t o = l->hw - l->k + 1;
    double flop = 2.0 * (double)l->cout * (double)(o * o) * (double)(l->cin * l->k * l->k);
    double t_impl = time_conv(l, 0, best), t_col = time_conv(l, 1, best);
    total_implicit += t_impl;
    total_im2col += t_col;
    total_flop += flop;
    printf("  %-24s %10.2f %8.1f us %9.1f %8.1f us %9.1f\n", l->name, flop / 1e6, t_impl * 1e6, flop / t_impl / 1e9,
           t_col * 1e6, flop / t_col / 1e9);
  }
  printf("  %-24s %10.2f %8.1f us %9.1f %8.1f us %9.1f\n", "sum of conv layers", total_flop / 1e6, total_implicit * 1e6,
         total_flop / total_implicit / 1e9, total_im2col * 1e6, total_flop / total_im2col / 1e9);
  printf("  whole-network estimate (conv layers only): %.0f img/s implicit, %.0f img/s im2col\n", 1.0 / total_implicit,
         1.0 / total_im2col);
}

/* Whole-network conv time per path (implicit GEMM), so paths can be compared end to end. */
static void bench_paths(void) {
  lensnet_simd path;
  printf("\nconv layers per path at batch 1 (sum of layer times, implicit GEMM)\n");
  printf("  %-8s %12s %10s %12s %10s\n", "path", "OU-66", "img/s", "OU-200", "img/s");
  for (path = LENSNET_SIMD_SCALAR; path < LENSNET_SIMD_COUNT; path = (lensnet_simd)(path + 1)) {
    double t66 = 0, t200 = 0;
    size_t i;
    if (!lensnet_simd_available(path)) continue;
    for (i = 0; i < sizeof ou66 / sizeof ou66[0]; i++) t66 += time_conv(&ou66[i], 0, path);
    for (i = 0; i < sizeof ou200 / sizeof ou200[0]; i++) t200 += time_conv(&ou200[i], 0, path);
    printf("  %-8s %9.1f us %10.0f %9.1f us %10.1f\n", lensnet_simd_name(path), t66 * 1e6, 1.0 / t66, t200 * 1e6, 1.0 / t200);
  }
}

int main(int argc, char **argv) {
  static const shape shapes[] = {
    {"OU-66 conv1", 50, 4096, 36, 0},  {"OU-66 conv2", 50, 900, 450, 0},  {"OU-66 conv3", 50, 784, 450, 0},
    {"OU-66 conv4", 50, 676, 450, 0},  {"OU-66 conv5", 40, 576, 450, 0},  {"OU-66 conv6", 40, 100, 360, 0},
    {"OU-66 conv7", 40, 64, 360, 0},   {"OU-66 conv8", 40, 36, 360, 0},   {"OU-66 conv9", 30, 16, 360, 0},
    {"OU-200 conv1", 50, 38416, 100, 0}, {"OU-200 conv2", 40, 8836, 1250, 0}, {"OU-200 conv3", 30, 2025, 360, 0},
    {"OU-200 conv4", 20, 400, 270, 0}, {"OU-200 conv5", 20, 64, 180, 0},  {"OU-200 conv6", 20, 36, 180, 0},
    {"OU-66 dense1 x W^T b=1", 1, 500, 120, 1}, {"OU-66 dense1 x W^T b=32", 32, 500, 120, 1},
    {"OU-200 dense1 x W^T b=1", 1, 350, 720, 1}, {"square 512", 512, 512, 512, 0},
    {"square 512, B^T", 512, 512, 512, 1},
  };
  size_t i;
  lensnet_simd path;
  if (argc > 1) measure_seconds = atof(argv[1]);
  printf("AVX-512 FMA peak of one core, measured now: %.1f GFLOP/s (0 = no AVX-512)\n\n", fma_peak_gflops());
  printf("lensnet_sgemm GFLOP/s per path (C = A B, or A B^T where marked W^T / B^T; fastest of ~2 ms trials)\n");
  printf("  %-24s %6s %6s %5s", "shape", "M", "N", "K");
  for (path = LENSNET_SIMD_SCALAR; path < LENSNET_SIMD_COUNT; path = (lensnet_simd)(path + 1))
    if (lensnet_simd_available(path)) printf(" %8s", lensnet_simd_name(path));
  printf("\n");
  for (i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    const shape *s = &shapes[i];
    float *A = random_floats(s->M * s->K), *B = random_floats(s->K * s->N), *C = random_floats(s->M * s->N);
    printf("  %-24s %6lu %6lu %5lu", s->name, (unsigned long)s->M, (unsigned long)s->N, (unsigned long)s->K);
    for (path = LENSNET_SIMD_SCALAR; path < LENSNET_SIMD_COUNT; path = (lensnet_simd)(path + 1)) {
      if (!lensnet_simd_available(path)) continue;
      sgemm_call call;
      call.path = path; call.s = s; call.A = A; call.B = B; call.C = C;
      printf(" %8.1f", 2.0 * (double)s->M * (double)s->N * (double)s->K / time_calls(run_sgemm, &call) / 1e9);
      fflush(stdout);
    }
    printf("\n");
    free(A); free(B); free(C);
  }
  bench_network("OU-66", ou66, sizeof ou66 / sizeof ou66[0]);
  bench_network("OU-200", ou200, sizeof ou200 / sizeof ou200[0]);
  bench_paths();
  printf("\nAVX-512 FMA peak of one core, measured again: %.1f GFLOP/s\n", fma_peak_gflops());
  return 0;
}
