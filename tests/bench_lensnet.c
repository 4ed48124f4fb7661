/* bench_lensnet.c - single-thread throughput of lensnet.h: OU-66 / OU-200 inference (images/s),
 * float, float with lens predict's packed weights and Winograd 3x3 layers (lensnet_model_pack_winograd),
 * int8 (lensnet_quantize), and lensnet_sgemm on conv-shaped matrices (GFLOP/s).
 *
 * Every figure is printed as one line that tests/bench.sh can pair with a peer's line:
 *   ours gemm path: avx2
 *   ours OU-66 infer batch=1: 812.3 img/s  (0.148 GFLOP/img, 120.2 GFLOP/s)
 *   ours OU-66 int8 infer batch=1: 1100.0 img/s  (0.148 GOP/img, 162.8 GOP/s)
 *   ours sgemm M=50 N=4096 K=36: 25.1 GFLOP/s  (OU-66 conv 1)
 *   ours sgemm M=256 N=256 K=256: 40.2 GFLOP/s
 * The winograd line's GFLOP/s counts the direct sums' FLOPs (an effective rate: F(2x2, 3x3) does
 * 2.25 times fewer products in the 3x3 layers). Nothing here asserts a time; the figures only mean something beside a peer measured in the
 * same run (these machines are noisy).
 *
 * Timing: one warm-up call, then best-of-several samples of the thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID: time other programs take on a shared machine is not counted; the
 * program runs on one thread, so this is its wall time on an idle core). A sample repeats
 * the call until it lasts at least LENS_BENCH_SAMPLE_SECONDS; samples are taken until the
 * workload's budget is spent (at least 3, at most 15). The environment variable
 * LENS_BENCH_SCALE (default 1) multiplies every budget, e.g. 0.2 for a quick look.
 *
 * Inputs are uniform in [0, 1) from lensnet_rng (as torch.rand in the peers); weights come from
 * lensnet_model_init, which costs the same FLOPs as the released ones. */
#define _POSIX_C_SOURCE 200112L
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LENS_BENCH_SAMPLE_SECONDS 0.05
#define LENS_BENCH_MIN_SAMPLES 3
#define LENS_BENCH_MAX_SAMPLES 15
#define LENS_BENCH_INFER_BUDGET 3.0 /* seconds per inference workload, before scaling */
#define LENS_BENCH_GEMM_BUDGET 0.6  /* seconds per GEMM shape, before scaling */

static double bench_scale = 1.0;
static volatile float bench_sink; /* keeps results observable */

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); /* CPU time: the machine is shared */
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* One timed workload: run(ctx) does one unit of work (one forward pass, one GEMM). */
typedef void (*bench_fn)(void *ctx);

/* Best seconds per call over the samples; the first call is a warm-up and only sizes the
 * samples. */
static double best_seconds_per_call(bench_fn run, void *ctx, double budget) {
  double t0 = now_seconds(), first, best = 1e30, spent = 0.0;
  long reps, r;
  int samples = 0;
  run(ctx);
  first = now_seconds() - t0;
  if (first <= 0.0) first = 1e-9;
  reps = (long)(LENS_BENCH_SAMPLE_SECONDS / first) + 1;
  while (samples < LENS_BENCH_MIN_SAMPLES || (spent < budget && samples < LENS_BENCH_MAX_SAMPLES)) {
    double t, start = now_seconds();
    for (r = 0; r < reps; r++) run(ctx);
    t = now_seconds() - start;
    spent += t;
    samples++;
    if (t / (double)reps < best) best = t / (double)reps;
  }
  return best;
}

/* ---- inference ------------------------------------------------------------------------------ */

typedef struct {
  const lensnet_model *model;
  const lensnet_packed *packed; /* NULL: lensnet_model_forward */
  size_t batch;
  const float *input;
  float *output, *workspace;
  int failed;
} infer_job;

static void run_forward(void *ctx) {
  infer_job *job = (infer_job *)ctx;
  lensnet_error err;
  if ((job->packed ? lensnet_model_forward_packed(job->model, job->packed, job->batch, job->input, job->output, job->workspace, &err)
                   : lensnet_model_forward(job->model, job->batch, job->input, job->output, job->workspace, &err)) != LENSNET_OK) {
    if (!job->failed) fprintf(stderr, "forward failed: %s\n", err.message);
    job->failed = 1;
  }
  bench_sink += job->output[0];
}

/* Multiply-adds of one image through the model, counted as 2 FLOPs each. */
static double model_flops_per_image(const lensnet_model *m) {
  double flops = 0.0;
  size_t i;
  for (i = 0; i < m->layer_count; i++) {
    const lensnet_layer *L = &m->layers[i];
    if (L->type == LENSNET_LAYER_CONV2D)
      flops += 2.0 * (double)L->out_c * (double)(L->out_h * L->out_w) *
               (double)(L->in_c / (L->groups ? L->groups : 1)) * (double)(L->kernel * L->kernel);
    else if (L->type == LENSNET_LAYER_DENSE)
      flops += 2.0 * (double)(L->in_c * L->in_h * L->in_w) * (double)L->out;
  }
  return flops;
}

/* Measures one model at one batch size; returns 0 on failure (reported on stderr). */
static int bench_inference(const char *label, const lensnet_model *m, const lensnet_packed *pk, size_t batch, lensnet_rng *rng) {
  size_t in_n = batch * m->in_c * m->in_h * m->in_w, ws_n = lensnet_model_workspace_floats(m, batch), i;
  float *input = (float *)malloc(in_n * sizeof(float));
  float *output = (float *)malloc(batch * m->out_features * sizeof(float));
  float *workspace = ws_n ? (float *)malloc(ws_n * sizeof(float)) : NULL;
  infer_job job;
  double seconds, flops = model_flops_per_image(m);
  if (!input || !output || !workspace) {
    fprintf(stderr, "%s batch=%lu: cannot allocate the buffers\n", label, (unsigned long)batch);
    free(input); free(output); free(workspace);
    return 0;
  }
  for (i = 0; i < in_n; i++) input[i] = lensnet_rng_uniform(rng);
  job.model = m; job.packed = pk; job.batch = batch; job.input = input; job.output = output; job.workspace = workspace; job.failed = 0;
  seconds = best_seconds_per_call(run_forward, &job, LENS_BENCH_INFER_BUDGET * bench_scale);
  if (!job.failed)
    printf("ours %s infer batch=%lu: %.1f img/s  (%.3f %s/img, %.1f %s/s)\n", label, (unsigned long)batch,
           (double)batch / seconds, flops * 1e-9, lensnet_model_is_quantized(m) ? "GOP" : "GFLOP", flops * (double)batch / seconds * 1e-9,
           lensnet_model_is_quantized(m) ? "GOP" : "GFLOP");
  fflush(stdout);
  free(input); free(output); free(workspace);
  return !job.failed;
}

/* The same model quantised (lensnet_quantize, calibrated on 8 inputs like the timed ones; the
 * first layer stays float, the default), at each batch size; "int8 path" says which kernel. */
static int bench_int8(const char *label, const lensnet_model *m, lensnet_rng *rng) {
  static const size_t batches[] = {1, 32};
  size_t per = m->in_c * m->in_h * m->in_w, i;
  float *calibration = (float *)malloc(8 * per * sizeof(float));
  lensnet_model *q = NULL;
  lensnet_error err;
  char int8_label[64];
  int ok = 1;
  if (!calibration) return 0;
  for (i = 0; i < 8 * per; i++) calibration[i] = lensnet_rng_uniform(rng);
  if (lensnet_quantize(m, calibration, 8, NULL, &q, &err) != LENSNET_OK) {
    fprintf(stderr, "%s: %s\n", label, err.message);
    free(calibration);
    return 0;
  }
  snprintf(int8_label, sizeof int8_label, "%s int8", label);
  for (i = 0; i < sizeof batches / sizeof batches[0]; i++) ok &= bench_inference(int8_label, q, NULL, batches[i], rng);
  lensnet_model_free(q);
  free(calibration);
  return ok;
}

/* ---- GEMM ----------------------------------------------------------------------------------- */

typedef struct {
  size_t M, N, K;
  const float *A, *B;
  float *C;
} gemm_job;

/* The call the convolution makes: C[M,N] = W[M,K] * col[K,N], row-major, no transposes. */
static void run_gemm(void *ctx) {
  gemm_job *g = (gemm_job *)ctx;
  lensnet_sgemm(0, 0, g->M, g->N, g->K, 1.0f, g->A, g->K, g->B, g->N, 0.0f, g->C, g->N);
  bench_sink += g->C[0];
}

static int bench_gemm(size_t M, size_t N, size_t K, const char *note, lensnet_rng *rng) {
  float *A = (float *)malloc(M * K * sizeof(float)), *B = (float *)malloc(K * N * sizeof(float));
  float *C = (float *)malloc(M * N * sizeof(float));
  gemm_job g;
  double seconds, flops = 2.0 * (double)M * (double)N * (double)K;
  size_t i;
  if (!A || !B || !C) {
    fprintf(stderr, "sgemm M=%lu N=%lu K=%lu: cannot allocate\n", (unsigned long)M, (unsigned long)N, (unsigned long)K);
    free(A); free(B); free(C);
    return 0;
  }
  for (i = 0; i < M * K; i++) A[i] = lensnet_rng_uniform(rng);
  for (i = 0; i < K * N; i++) B[i] = lensnet_rng_uniform(rng);
  g.M = M; g.N = N; g.K = K; g.A = A; g.B = B; g.C = C;
  seconds = best_seconds_per_call(run_gemm, &g, LENS_BENCH_GEMM_BUDGET * bench_scale);
  printf("ours sgemm M=%lu N=%lu K=%lu: %.1f GFLOP/s%s%s%s\n", (unsigned long)M, (unsigned long)N, (unsigned long)K,
         flops / seconds * 1e-9, note ? "  (" : "", note ? note : "", note ? ")" : "");
  fflush(stdout);
  free(A); free(B); free(C);
  return 1;
}

/* The GEMM of every conv layer of a model at batch 1: M = cout, N = oh*ow, K = cin*k*k. */
static int bench_model_gemms(const char *label, const lensnet_model *m, lensnet_rng *rng) {
  size_t i;
  int conv = 0, ok = 1;
  char note[64];
  for (i = 0; i < m->layer_count; i++) {
    const lensnet_layer *L = &m->layers[i];
    size_t groups = L->groups ? L->groups : 1;
    if (L->type != LENSNET_LAYER_CONV2D) continue;
    snprintf(note, sizeof note, "%s conv %d", label, ++conv);
    ok &= bench_gemm(L->out_c / groups, L->out_h * L->out_w, (L->in_c / groups) * L->kernel * L->kernel, note, rng);
  }
  return ok;
}

/* ---- main ----------------------------------------------------------------------------------- */

typedef struct { const char *label, *arch; } model_spec;

int main(void) {
  static const model_spec models[] = {{"OU-66", "ou66(4)"}, {"OU-200", "ou200(4)"}};
  /* The shapes ../shared/peers/sgemm_openblas.c measures, so the figures pair one to one. */
  static const size_t peer_shapes[][3] = {{256, 256, 256}, {512, 512, 512}, {1024, 1024, 1024}, {64, 4356, 36},
                                          {32, 4356, 288}, {64, 1024, 576}, {128, 256, 1152}, {1, 1024, 4096}};
  static const size_t batches[] = {1, 32};
  lensnet_model *loaded[2] = {NULL, NULL};
  lensnet_rng rng;
  const char *scale = getenv("LENS_BENCH_SCALE");
  double started = now_seconds();
  size_t i, b;
  int ok = 1;
  if (scale && *scale && atof(scale) > 0.0) bench_scale = atof(scale);
  lensnet_rng_seed(&rng, 20220312u);

  printf("ours gemm path: %s\n", lensnet_simd_name(lensnet_simd_best()));
  printf("ours int8 path: %s\n", lensnet_simd_name(lensnet_i8_simd_best()));
  printf("ours runs on one thread\n");
  fflush(stdout);

  for (i = 0; i < 2; i++) {
    lensnet_error err;
    if (lensnet_model_create(models[i].arch, &loaded[i], &err) != LENSNET_OK) {
      fprintf(stderr, "%s: %s\n", models[i].arch, err.message);
      ok = 0;
      continue;
    }
    lensnet_model_init(loaded[i], 66 + i);
    for (b = 0; b < sizeof batches / sizeof batches[0]; b++)
      ok &= bench_inference(models[i].label, loaded[i], NULL, batches[b], &rng);
    { /* what lens predict runs: weights packed once, 3x3 layers by Winograd's F(2x2, 3x3) on AVX-512 */
      lensnet_packed *pk = NULL;
      char wlabel[64];
      snprintf(wlabel, sizeof wlabel, "%s winograd", models[i].label);
      if (lensnet_model_pack_winograd(loaded[i], &pk, &err) == LENSNET_OK) ok &= bench_inference(wlabel, loaded[i], pk, 1, &rng);
      else { fprintf(stderr, "%s: %s\n", wlabel, err.message); ok = 0; }
      lensnet_packed_free(pk);
    }
    ok &= bench_int8(models[i].label, loaded[i], &rng);
  }
  for (i = 0; i < 2; i++)
    if (loaded[i]) ok &= bench_model_gemms(models[i].label, loaded[i], &rng);
  for (i = 0; i < sizeof peer_shapes / sizeof peer_shapes[0]; i++)
    ok &= bench_gemm(peer_shapes[i][0], peer_shapes[i][1], peer_shapes[i][2], NULL, &rng);

  for (i = 0; i < 2; i++) lensnet_model_free(loaded[i]);
  printf("ours bench seconds: %.1f\n", now_seconds() - started);
  return ok ? 0 : 1;
}
