/* test_gemm.c - the blocked GEMM (every compiled path) and the convolution forward, against
 * double-precision loops.
 *
 * Tolerance. Each float result is a dot product of K terms, scaled by alpha, plus beta*C (plus
 * a bias for convolutions): K + 2 rounded multiplications and additions in some order. The
 * classical bound for such a sum (Higham, "Accuracy and Stability of Numerical Algorithms",
 * section 3.1) is |computed - exact| <= gamma_{K+2} * (sum_k |alpha a_k b_k| + |beta c| + |bias|)
 * with gamma_n = n u / (1 - n u), u = FLT_EPSILON / 2. We check every element against that
 * bound computed from the same data in double, so the test scales with K and with cancellation
 * and holds for any summation order or FMA use; a wrong index or a missed term is off by the
 * size of a whole term, far above it. Paths are also compared with each other through the same
 * bound (twice it, since both err). */
#define _POSIX_C_SOURCE 200112L /* popen, to run this program again with LENSNET_SIMD set */
#include <stdlib.h>

/* An allocator the test can make fail, to check that lensnet_sgemm still answers without its
 * packing buffers. */
static int fail_allocations = 0;
static void *test_malloc(size_t n) { return fail_allocations ? NULL : malloc(n); }
#define LENSNET_MALLOC(sz) test_malloc(sz)
#define LENSNET_REALLOC(p, sz) realloc(p, sz)
#define LENSNET_FREE(p) free(p)

#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"

#include <float.h>
#include <string.h>

static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;

/* Uniform in [-1, 1) from a 64-bit LCG (Knuth's MMIX constants); deterministic across runs. */
static float uniform_pm1(void) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(rng_state >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static double gamma_n(size_t n) {
  double u = FLT_EPSILON / 2.0;
  return (double)n * u / (1.0 - (double)n * u);
}

static float *alloc_floats(size_t n) {
  float *p = (float *)malloc((n ? n : 1) * sizeof(float));
  if (!p) { printf("out of memory\n"); exit(2); }
  return p;
}

static void fill_nan(float *p, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) p[i] = NAN;
}

/* One GEMM case: op(A) is M x K, op(B) is K x N; leading dimensions exceed the row lengths by
 * `slack`, and the slack of A and B holds NaN (it must never be read) while C's slack holds a
 * sentinel (it must never be written). */
typedef struct {
  size_t M, N, K;
  int ta, tb;
  float alpha, beta;
  size_t slack;
} gemm_case;

typedef struct {
  size_t products, elements;
  double worst_ratio;        /* largest |error| / bound seen */
  double worst_ratio_long_k; /* the same over products with K >= 32, where paths sum differently */
  int failures;
} gemm_stats;

static const float SENTINEL = 12345.0f;

/* Runs one case through every available path; the double-precision answer is computed once. */
static void run_gemm_case(const gemm_case *t, gemm_stats *st) {
  size_t a_rows = t->ta ? t->K : t->M, a_cols = t->ta ? t->M : t->K;
  size_t b_rows = t->tb ? t->N : t->K, b_cols = t->tb ? t->K : t->N;
  size_t lda = a_cols + t->slack, ldb = b_cols + t->slack, ldc = t->N + t->slack;
  float *A = alloc_floats(a_rows * lda), *B = alloc_floats(b_rows * ldb);
  float *C = alloc_floats(t->M * ldc), *C0 = alloc_floats(t->M * ldc), *Cs = alloc_floats(t->M * ldc);
  double *exact = (double *)malloc(t->M * t->N * sizeof(double)), *bound = (double *)malloc(t->M * t->N * sizeof(double));
  size_t i, j, k;
  lensnet_simd path;
  if (!exact || !bound) { printf("out of memory\n"); exit(2); }
  fill_nan(A, a_rows * lda);
  fill_nan(B, b_rows * ldb);
  for (i = 0; i < a_rows; i++) for (j = 0; j < a_cols; j++) A[i * lda + j] = uniform_pm1();
  for (i = 0; i < b_rows; i++) for (j = 0; j < b_cols; j++) B[i * ldb + j] = uniform_pm1();
  for (i = 0; i < t->M; i++)
    for (j = 0; j < ldc; j++) C0[i * ldc + j] = j >= t->N ? SENTINEL : (t->beta == 0.0f ? NAN : uniform_pm1());
  for (i = 0; i < t->M; i++)
    for (j = 0; j < t->N; j++) {
      double sum = 0.0, magnitude = 0.0;
      for (k = 0; k < t->K; k++) {
        double a = t->ta ? A[k * lda + i] : A[i * lda + k];
        double b = t->tb ? B[j * ldb + k] : B[k * ldb + j];
        sum += a * b;
        magnitude += fabs(a * b);
      }
      sum *= t->alpha;
      magnitude *= fabs(t->alpha);
      if (t->beta != 0.0f) {
        sum += (double)t->beta * C0[i * ldc + j];
        magnitude += fabs((double)t->beta * C0[i * ldc + j]);
      }
      exact[i * t->N + j] = sum;
      bound[i * t->N + j] = gamma_n(t->K + 2) * magnitude;
    }
  memcpy(Cs, C0, t->M * ldc * sizeof(float));
  lensnet_sgemm_path(LENSNET_SIMD_SCALAR, t->ta, t->tb, t->M, t->N, t->K, t->alpha, A, lda, B, ldb, t->beta, Cs, ldc);
  for (path = LENSNET_SIMD_SCALAR; path < LENSNET_SIMD_COUNT; path = (lensnet_simd)(path + 1)) {
    gemm_stats *ps = &st[path];
    int case_failed = 0;
    if (!lensnet_simd_available(path)) continue;
    memcpy(C, C0, t->M * ldc * sizeof(float));
    lensnet_sgemm_path(path, t->ta, t->tb, t->M, t->N, t->K, t->alpha, A, lda, B, ldb, t->beta, C, ldc);
    for (i = 0; i < t->M; i++) {
      for (j = 0; j < t->N; j++) {
        double e = exact[i * t->N + j], bd = bound[i * t->N + j];
        double err = fabs((double)C[i * ldc + j] - e);
        double err_vs_scalar = fabs((double)C[i * ldc + j] - (double)Cs[i * ldc + j]);
        if (bd > 0 && err / bd > ps->worst_ratio) ps->worst_ratio = err / bd;
        if (bd > 0 && t->K >= 32 && err / bd > ps->worst_ratio_long_k) ps->worst_ratio_long_k = err / bd;
        if (!(err <= bd) || !(err_vs_scalar <= 2 * bd)) {
          if (!case_failed)
            printf("  %s M=%lu N=%lu K=%lu ta=%d tb=%d alpha=%g beta=%g: C[%lu,%lu]=%.9g exact %.9g scalar %.9g bound %.3g\n",
                   lensnet_simd_name(path), (unsigned long)t->M, (unsigned long)t->N, (unsigned long)t->K, t->ta, t->tb,
                   t->alpha, t->beta, (unsigned long)i, (unsigned long)j, C[i * ldc + j], e, Cs[i * ldc + j], bd);
          case_failed = 1;
        }
        ps->elements++;
      }
      for (j = t->N; j < ldc; j++)
        if (C[i * ldc + j] != SENTINEL) {
          if (!case_failed) printf("  %s wrote past N in row %lu\n", lensnet_simd_name(path), (unsigned long)i);
          case_failed = 1;
        }
    }
    ps->products++;
    ps->failures += case_failed;
  }
  free(A); free(B); free(C); free(C0); free(Cs); free(exact); free(bound);
}

static void test_gemm_paths(void) {
  static const size_t small[] = {1, 2, 3, 7, 17, 33};
  /* larger shapes: several K blocks (K > 256), several M blocks (M > 120), conv-like shapes,
   * and M = 11, 12 whose last row panel holds 1 or 2 rows (M <= 2 takes the direct path) */
  static const size_t large[][3] = {{65, 129, 300}, {300, 65, 129}, {129, 31, 65}, {31, 33, 513},
                                    {250, 40, 300}, {50, 100, 450}, {40, 36, 1250}, {10, 31, 36},
                                    {11, 47, 20}, {12, 70, 9}, {2, 300, 129}, {1, 17, 700}};
  static const float alpha_beta[][2] = {{1.0f, 0.0f}, {0.5f, 0.0f}, {1.0f, 1.0f}, {-1.5f, 0.25f}, {0.0f, 2.0f}, {0.0f, 0.0f}};
  gemm_stats st[LENSNET_SIMD_COUNT];
  size_t mi, ni, ki, s, ab;
  int ta, tb;
  lensnet_simd path;
  memset(st, 0, sizeof st);
  for (ta = 0; ta < 2; ta++)
    for (tb = 0; tb < 2; tb++) {
      for (mi = 0; mi < 6; mi++)
        for (ni = 0; ni < 6; ni++)
          for (ki = 0; ki < 6; ki++) {
            gemm_case t;
            t.M = small[mi]; t.N = small[ni]; t.K = small[ki]; t.ta = ta; t.tb = tb;
            ab = (mi + ni + ki) % 6;
            t.alpha = alpha_beta[ab][0]; t.beta = alpha_beta[ab][1];
            t.slack = (mi + ki) % 3 == 0 ? 0 : 5;
            run_gemm_case(&t, st);
          }
      for (s = 0; s < sizeof large / sizeof large[0]; s++) {
        gemm_case t;
        t.M = large[s][0]; t.N = large[s][1]; t.K = large[s][2]; t.ta = ta; t.tb = tb;
        ab = s % 2 ? 0 : 3;
        t.alpha = alpha_beta[ab][0]; t.beta = alpha_beta[ab][1];
        t.slack = s % 3 ? 3 : 0;
        run_gemm_case(&t, st);
      }
    }
  for (path = LENSNET_SIMD_SCALAR; path < LENSNET_SIMD_COUNT; path = (lensnet_simd)(path + 1)) {
    if (!lensnet_simd_available(path)) continue;
    CHECK(st[path].failures == 0 && st[path].products > 0, "%s: %d of %lu products outside the error bound",
          lensnet_simd_name(path), st[path].failures, (unsigned long)st[path].products);
    printf("path %-7s %lu products, %lu elements, 4 transposes, worst error %.3f of the bound (%.3f for K >= 32): %s\n",
           lensnet_simd_name(path), (unsigned long)st[path].products, (unsigned long)st[path].elements,
           st[path].worst_ratio, st[path].worst_ratio_long_k, st[path].failures ? "FAIL" : "ok");
  }
}

/* An unavailable path must give exactly the scalar result. */
static void test_unavailable_path_is_scalar(void) {
  lensnet_simd s;
  float A[7 * 5], B[5 * 9], C1[7 * 9], C2[7 * 9];
  size_t i;
  for (i = 0; i < 35; i++) A[i] = uniform_pm1();
  for (i = 0; i < 45; i++) B[i] = uniform_pm1();
  CHECK(lensnet_simd_available(LENSNET_SIMD_SCALAR), "scalar path is always available");
  CHECK(lensnet_simd_available(lensnet_simd_best()), "best path %s is available", lensnet_simd_name(lensnet_simd_best()));
  CHECK(!lensnet_simd_available(LENSNET_SIMD_COUNT), "LENSNET_SIMD_COUNT is not a path");
  lensnet_sgemm_path(LENSNET_SIMD_SCALAR, 0, 0, 7, 9, 5, 1.0f, A, 5, B, 9, 0.0f, C1, 9);
  for (s = LENSNET_SIMD_SCALAR; s < LENSNET_SIMD_COUNT; s = (lensnet_simd)(s + 1)) {
    if (lensnet_simd_available(s)) continue;
    lensnet_sgemm_path(s, 0, 0, 7, 9, 5, 1.0f, A, 5, B, 9, 0.0f, C2, 9);
    CHECK(memcmp(C1, C2, sizeof C1) == 0, "unavailable path %s falls back to scalar", lensnet_simd_name(s));
  }
}

/* ---- convolution ---- */

typedef struct {
  const char *name;
  size_t n, cin, h, w, cout, k, stride, pad, groups;
  int relu, has_bias;
} conv_case;

/* Runs one geometry through every available path against one direct double-precision answer. */
static void run_conv_case(const conv_case *t, int *failures, double *worst) {
  lensnet__conv_geom g;
  size_t in_n, w_n, out_n, scratch_n, cin_g, cout_g, b, co, y, x, c, i, j, o;
  float *in, *weight, *bias, *out, *scratch_mem;
  double *exact, *bound;
  lensnet_simd path;
  g.n = t->n; g.cin = t->cin; g.h = t->h; g.w = t->w; g.cout = t->cout; g.kh = g.kw = t->k;
  g.stride = t->stride; g.pad = t->pad; g.groups = t->groups;
  g.oh = (t->h + 2 * t->pad - t->k) / t->stride + 1;
  g.ow = (t->w + 2 * t->pad - t->k) / t->stride + 1;
  cin_g = t->cin / t->groups;
  cout_g = t->cout / t->groups;
  in_n = t->n * t->cin * t->h * t->w;
  w_n = t->cout * cin_g * t->k * t->k;
  out_n = t->n * t->cout * g.oh * g.ow;
  /* the forward-only size: the forward must fit in it (ASan checks the bound) */
  scratch_n = lensnet__conv_forward_scratch_floats(&g);
  CHECK(scratch_n <= lensnet__conv_scratch_floats(&g), "%s: forward scratch within the shared size", t->name);
  in = alloc_floats(in_n); weight = alloc_floats(w_n); bias = alloc_floats(t->cout); out = alloc_floats(out_n);
  scratch_mem = alloc_floats(scratch_n + 1);
  exact = (double *)malloc(out_n * sizeof(double));
  bound = (double *)malloc(out_n * sizeof(double));
  if (!exact || !bound) { printf("out of memory\n"); exit(2); }
  for (i = 0; i < in_n; i++) in[i] = uniform_pm1();
  for (i = 0; i < w_n; i++) weight[i] = uniform_pm1();
  for (i = 0; i < t->cout; i++) bias[i] = uniform_pm1();
  for (b = 0; b < t->n; b++)
    for (co = 0; co < t->cout; co++) {
      size_t grp = co / cout_g;
      for (y = 0; y < g.oh; y++)
        for (x = 0; x < g.ow; x++) {
          double sum = t->has_bias ? bias[co] : 0.0, magnitude = fabs(sum);
          for (c = 0; c < cin_g; c++)
            for (i = 0; i < t->k; i++)
              for (j = 0; j < t->k; j++) {
                long iy = (long)(y * t->stride + i) - (long)t->pad, ix = (long)(x * t->stride + j) - (long)t->pad;
                double v, wv;
                if (iy < 0 || ix < 0 || iy >= (long)t->h || ix >= (long)t->w) continue;
                v = in[((b * t->cin + grp * cin_g + c) * t->h + (size_t)iy) * t->w + (size_t)ix];
                wv = weight[((co * cin_g + c) * t->k + i) * t->k + j];
                sum += v * wv;
                magnitude += fabs(v * wv);
              }
          if (t->relu && sum < 0) sum = 0;
          o = ((b * t->cout + co) * g.oh + y) * g.ow + x;
          exact[o] = sum;
          bound[o] = gamma_n(cin_g * t->k * t->k + 2) * magnitude;
        }
    }
  { /* im2col (for the backward pass) of every group of image 0 must equal the definition exactly */
    size_t K = cin_g * t->k * t->k, P = g.oh * g.ow, grp, mismatches = 0;
    float *col = alloc_floats(K * P);
    for (grp = 0; grp < t->groups; grp++) {
      lensnet__im2col(&g, in + grp * cin_g * t->h * t->w, cin_g, col);
      for (c = 0; c < cin_g; c++)
        for (i = 0; i < t->k; i++)
          for (j = 0; j < t->k; j++)
            for (y = 0; y < g.oh; y++)
              for (x = 0; x < g.ow; x++) {
                long iy = (long)(y * t->stride + i) - (long)t->pad, ix = (long)(x * t->stride + j) - (long)t->pad;
                float want = (iy < 0 || ix < 0 || iy >= (long)t->h || ix >= (long)t->w)
                                 ? 0.0f : in[((grp * cin_g + c) * t->h + (size_t)iy) * t->w + (size_t)ix];
                if (col[((c * t->k + i) * t->k + j) * P + y * g.ow + x] != want) mismatches++;
              }
    }
    CHECK(mismatches == 0, "im2col %s: %lu values differ from the definition", t->name, (unsigned long)mismatches);
    free(col);
  }
  for (path = LENSNET_SIMD_SCALAR; path < LENSNET_SIMD_COUNT; path = (lensnet_simd)(path + 1)) {
    int failed = 0;
    if (!lensnet_simd_available(path)) continue;
    fill_nan(out, out_n);
    fill_nan(scratch_mem, scratch_n + 1);
    /* scratch + 1: the forward must not depend on the caller's alignment */
    lensnet__conv2d_forward_path(path, &g, in, weight, t->has_bias ? bias : NULL, t->relu, out, scratch_mem + 1);
    for (o = 0; o < out_n; o++) {
      double err = fabs((double)out[o] - exact[o]);
      if (bound[o] > 0 && err / bound[o] > worst[path]) worst[path] = err / bound[o];
      if (!(err <= bound[o]) && !failed) {
        printf("  %s conv %s: out[%lu] = %.9g, exact %.9g, bound %.3g\n", lensnet_simd_name(path), t->name,
               (unsigned long)o, out[o], exact[o], bound[o]);
        failed = 1;
      }
    }
    failures[path] += failed;
  }
  free(in); free(weight); free(bias); free(out); free(scratch_mem); free(exact); free(bound);
}

static void test_conv_paths(void) {
  static const conv_case cases[] = {
      /* name                    n cin  h  w cout k s p g relu bias */
      {"3x3 valid",              2, 3,  9, 11, 5, 3, 1, 0, 1, 0, 1},
      {"3x3 stride 2 pad 1",     2, 3, 10,  9, 7, 3, 2, 1, 1, 1, 1},
      {"5x5 pad 2",              2, 2, 12, 13, 9, 5, 1, 2, 1, 1, 0},
      {"5x5 stride 2 pad 2",     2, 4, 15, 14, 6, 5, 2, 2, 1, 0, 0},
      {"1x1",                    2, 6,  7,  5, 11, 1, 1, 0, 1, 1, 1},
      {"3x3 groups 2 pad 1",     2, 4,  8,  8, 6, 3, 1, 1, 2, 1, 1},
      {"3x3 depthwise pad 1",    2, 4,  9,  7, 4, 3, 1, 1, 4, 0, 1},
      {"3x3 groups 4 stride 2",  2, 8, 11, 11, 12, 3, 2, 0, 4, 1, 0},
      {"3x3 K=270 (two blocks)", 2, 30, 10, 12, 20, 3, 1, 0, 1, 1, 1},
      {"OU-66 first layer",      1, 4, 66, 66, 50, 3, 1, 0, 1, 1, 1},
      {"5x5 K=1250",             1, 50, 9, 10, 40, 5, 1, 0, 1, 1, 1},
      {"wider than a panel row", 2, 3,  5, 70, 10, 3, 1, 1, 1, 0, 1},
      {"two K blocks, wide rows", 1, 30, 6, 70, 12, 3, 1, 0, 1, 1, 1},
      {"1x1 pad 2 stride 3",     2, 3,  7,  8, 4, 1, 3, 2, 1, 0, 1},
      /* read straight from the image on the AVX-512 path: */
      {"3x3 groups 2, rows 34 wide", 2, 4, 6, 32, 6, 3, 1, 1, 2, 1, 1},
      {"1x1, rows 40 wide",      1, 5,  3, 40, 7, 1, 1, 0, 1, 1, 1},
      {"9x9, rows 80 wide",      1, 2, 12, 80, 3, 9, 1, 0, 1, 0, 1},
  };
  int failures[LENSNET_SIMD_COUNT];
  double worst[LENSNET_SIMD_COUNT];
  size_t i;
  lensnet_simd path;
  memset(failures, 0, sizeof failures);
  memset(worst, 0, sizeof worst);
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) run_conv_case(&cases[i], failures, worst);
  for (path = LENSNET_SIMD_SCALAR; path < LENSNET_SIMD_COUNT; path = (lensnet_simd)(path + 1)) {
    if (!lensnet_simd_available(path)) continue;
    CHECK(failures[path] == 0, "%s: %d convolution geometries outside the error bound", lensnet_simd_name(path),
          failures[path]);
    printf("path %-7s %lu convolution geometries, worst error %.3f of the bound: %s\n", lensnet_simd_name(path),
           (unsigned long)(sizeof cases / sizeof cases[0]), worst[path], failures[path] ? "FAIL" : "ok");
  }
}

/* K = 0 leaves beta*C (zeros for beta = 0, whatever C held); M = 0 or N = 0 touches nothing. */
static void test_empty_products(void) {
  lensnet_simd path;
  for (path = LENSNET_SIMD_SCALAR; path < LENSNET_SIMD_COUNT; path = (lensnet_simd)(path + 1)) {
    float C[6] = {1, 2, 3, 4, 5, 6}, D[6] = {NAN, NAN, NAN, NAN, NAN, NAN}, E[1] = {7};
    const float *none = NULL;
    if (!lensnet_simd_available(path)) continue;
    lensnet_sgemm_path(path, 0, 0, 2, 3, 0, 1.0f, none, 1, none, 3, 0.5f, C, 3);
    lensnet_sgemm_path(path, 1, 1, 2, 3, 0, 1.0f, none, 2, none, 1, 0.0f, D, 3);
    lensnet_sgemm_path(path, 0, 0, 0, 1, 4, 1.0f, none, 4, none, 1, 0.0f, E, 1);
    lensnet_sgemm_path(path, 0, 0, 1, 0, 4, 1.0f, none, 4, none, 1, 0.0f, E, 1);
    CHECK(C[0] == 0.5f && C[5] == 3.0f && D[0] == 0.0f && D[5] == 0.0f && E[0] == 7.0f,
          "%s: K = 0 gives beta*C and empty products write nothing", lensnet_simd_name(path));
  }
}

/* Without packing memory every path falls back to the unblocked loop and is still right. */
static void test_without_packing_memory(void) {
  gemm_stats st[LENSNET_SIMD_COUNT];
  gemm_case t;
  lensnet_simd path;
  int ta, tb;
  memset(st, 0, sizeof st);
  fail_allocations = 1;
  for (ta = 0; ta < 2; ta++)
    for (tb = 0; tb < 2; tb++) {
      t.M = 23; t.N = 41; t.K = 300; t.ta = ta; t.tb = tb; t.alpha = -1.5f; t.beta = 0.25f; t.slack = 2;
      run_gemm_case(&t, st);
    }
  fail_allocations = 0;
  for (path = LENSNET_SIMD_SCALAR; path < LENSNET_SIMD_COUNT; path = (lensnet_simd)(path + 1))
    if (lensnet_simd_available(path))
      CHECK(st[path].failures == 0 && st[path].products == 4, "%s without packing memory: %d of 4 products wrong",
            lensnet_simd_name(path), st[path].failures);
  {
    /* and the same answer to the bit as with it (a training run must not depend on the memory it
     * gets): several row blocks and k blocks, edge tiles in both directions */
    enum { M = 131, N = 45, K = 600 };
    static float A[M * K], B[K * N], C0[M * N], C1[M * N], C2[M * N];
    lensnet_rng rng;
    size_t i;
    lensnet_rng_seed(&rng, 11);
    for (i = 0; i < M * K; i++) A[i] = lensnet_rng_normal(&rng);
    for (i = 0; i < K * N; i++) B[i] = lensnet_rng_normal(&rng);
    for (i = 0; i < M * N; i++) C0[i] = lensnet_rng_normal(&rng);
    for (path = LENSNET_SIMD_SCALAR; path < LENSNET_SIMD_COUNT; path = (lensnet_simd)(path + 1))
      for (ta = 0; ta < 2 && lensnet_simd_available(path); ta++)
        for (tb = 0; tb < 2; tb++) {
          memcpy(C1, C0, sizeof C0);
          memcpy(C2, C0, sizeof C0);
          lensnet_sgemm_path(path, ta, tb, M, N, K, 0.75f, A, ta ? M : K, B, tb ? K : N, 0.5f, C1, N);
          fail_allocations = 1;
          lensnet_sgemm_path(path, ta, tb, M, N, K, 0.75f, A, ta ? M : K, B, tb ? K : N, 0.5f, C2, N);
          fail_allocations = 0;
          CHECK(!memcmp(C1, C2, sizeof C1), "%s, ta %d tb %d: without packing memory, not the same bits", lensnet_simd_name(path), ta, tb);
        }
  }
}

/* The path every lensnet_sgemm call takes is the widest one the CPU runs, whatever flags built
 * this program: a build without -march (baseline x86-64) still has the AVX2 and AVX-512 kernels
 * and must use them where the CPU has them. The CPU is asked here independently of the library. */
static void test_best_path_is_the_cpus_best(void) {
  const char *env = getenv("LENSNET_SIMD");
  lensnet_simd want = LENSNET_SIMD_SCALAR;
#if !defined(LENSNET_NO_SIMD) && (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  int sse2 = __builtin_cpu_supports("sse2") != 0;
  int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  CHECK(lensnet_simd_available(LENSNET_SIMD_SSE) == sse2, "sse path available (%d) as the CPU has SSE2 (%d)",
        lensnet_simd_available(LENSNET_SIMD_SSE), sse2);
  CHECK(lensnet_simd_available(LENSNET_SIMD_AVX2) == avx2, "avx2 path available (%d) as the CPU has AVX2 and FMA (%d)",
        lensnet_simd_available(LENSNET_SIMD_AVX2), avx2);
  CHECK(lensnet_simd_available(LENSNET_SIMD_AVX512) == avx512, "avx512 path available (%d) as the CPU has AVX-512 F, VL, BW, DQ (%d)",
        lensnet_simd_available(LENSNET_SIMD_AVX512), avx512);
  CHECK(!lensnet_simd_available(LENSNET_SIMD_NEON), "no NEON path on x86");
  want = avx512 ? LENSNET_SIMD_AVX512 : avx2 ? LENSNET_SIMD_AVX2 : sse2 ? LENSNET_SIMD_SSE : LENSNET_SIMD_SCALAR;
  printf("CPU: sse2 %d, avx2+fma %d, avx512 f+vl+bw+dq %d; compiler targets:%s%s%s\n", sse2, avx2, avx512,
#if defined(__SSE2__)
         " sse2",
#else
         "",
#endif
#if defined(__AVX2__) && defined(__FMA__)
         " avx2+fma",
#else
         "",
#endif
#if defined(__AVX512F__)
         " avx512f"
#else
         ""
#endif
  );
#elif !defined(LENSNET_NO_SIMD) && (defined(__aarch64__) || defined(_M_ARM64))
  want = LENSNET_SIMD_NEON;
  CHECK(lensnet_simd_available(LENSNET_SIMD_NEON), "NEON is available on AArch64");
#elif defined(LENSNET_NO_SIMD)
  lensnet_simd s;
  for (s = LENSNET_SIMD_SSE; s < LENSNET_SIMD_COUNT; s = (lensnet_simd)(s + 1))
    CHECK(!lensnet_simd_available(s), "LENSNET_NO_SIMD: %s is not available", lensnet_simd_name(s));
#else
  want = lensnet_simd_best(); /* another architecture: nothing independent to ask */
#endif
  if (env && *env) {
    printf("LENSNET_SIMD=%s is set: the choice of path is checked by the runs below instead\n", env);
    return;
  }
  CHECK(lensnet_simd_best() == want, "best path %s is the widest the CPU runs (%s)", lensnet_simd_name(lensnet_simd_best()),
        lensnet_simd_name(want));
}

/* LENSNET_SIMD caps the path lensnet_sgemm takes: this program is run again with it set and
 * prints the path it would take ("--best"). A named path the CPU lacks gives the widest one
 * below it; an unknown name is ignored. */
static void test_environment_cap(const char *self) {
  static const char *const names[] = {"scalar", "sse", "avx2", "avx512", "neon", "bogus"};
  size_t i;
  const char *env = getenv("LENSNET_SIMD"), *runner = getenv("LENS_TEST_RUNNER");
  if (env && *env) { printf("LENSNET_SIMD is already set; skipped\n"); return; }
  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    char cmd[1200], got[64] = "";
    lensnet_simd want = lensnet_simd_best(), s;
    FILE *f;
    size_t n;
    if (strlen(self) > 1000 || strchr(self, '\'') || (runner && strlen(runner) > 100)) { printf("unusual program path; skipped\n"); return; }
    /* through $LENS_TEST_RUNNER (an emulator under make test-cross) when set, as this program was */
    snprintf(cmd, sizeof cmd, "LENSNET_SIMD=%s %s '%s' --best", names[i], runner && *runner ? runner : "", self);
    f = popen(cmd, "r");
    if (!f) { CHECK(0, "popen %s", cmd); continue; }
    n = fread(got, 1, sizeof got - 1, f);
    got[n] = 0;
    if (n && got[n - 1] == '\n') got[n - 1] = 0;
    CHECK(pclose(f) == 0, "%s exits with 0", cmd);
    for (s = LENSNET_SIMD_SCALAR; s < LENSNET_SIMD_COUNT; s = (lensnet_simd)(s + 1)) {
      if (strcmp(names[i], lensnet_simd_name(s)) != 0) continue;
      /* the widest available path no wider than s (sse and neon count as equally wide) */
      if (s == LENSNET_SIMD_SCALAR) want = LENSNET_SIMD_SCALAR;
      else if (lensnet_simd_available(s)) want = s;
      else if (s == LENSNET_SIMD_AVX512 && lensnet_simd_available(LENSNET_SIMD_AVX2)) want = LENSNET_SIMD_AVX2;
      else if (s != LENSNET_SIMD_NEON && lensnet_simd_available(LENSNET_SIMD_NEON)) want = LENSNET_SIMD_NEON;
      else if (s != LENSNET_SIMD_SSE && s != LENSNET_SIMD_NEON && lensnet_simd_available(LENSNET_SIMD_SSE)) want = LENSNET_SIMD_SSE;
      else if (s == LENSNET_SIMD_NEON && lensnet_simd_available(LENSNET_SIMD_SSE)) want = LENSNET_SIMD_SSE;
      else want = LENSNET_SIMD_SCALAR;
    }
    CHECK(strcmp(got, lensnet_simd_name(want)) == 0, "LENSNET_SIMD=%s: lensnet_sgemm takes %s, expected %s", names[i], got,
          lensnet_simd_name(want));
    printf("LENSNET_SIMD=%-7s -> %s\n", names[i], got);
  }
}

/* AVX-512 convolution rows read straight from the image (no patch packing) against the packed
 * panels of the same path, bit for bit: members of the output tile (m_valid < 10), one to five K
 * blocks, padding, row widths leaving one or two skipped gaps per 32-pixel panel, a band of rows
 * and a single row, a NaN input (computed in dropped lanes too, which must not leak). */
static void test_direct_conv_rows(void) {
#ifdef LENSNET__HAVE_AVX512
  typedef struct { const char *name; size_t cin, h, w, cout, k, pad, y0, y1; } direct_case;
  static const direct_case cases[] = {
      /* name                        cin  h   w cout k pad y0 y1 (0 0: every row) */
      {"5x5, 7 outputs",               3, 12, 40,  7, 5, 0, 0, 0},
      {"3x3 pad 1, three K blocks",   60, 20, 20, 23, 3, 1, 0, 0},
      {"rows 17 wide: two gaps/panel", 4, 11, 17, 10, 3, 0, 0, 0},
      {"band of rows 3-9",            50, 14, 34, 40, 3, 0, 3, 9},
      {"one row",                      8, 9, 66, 12, 3, 0, 4, 5},
      {"5x5 K=1250, five K blocks",   50, 8, 98, 40, 5, 0, 0, 0},
      {"1x1 (no dropped lanes)",       5, 3, 40,  7, 1, 0, 0, 0},
      {"9x9: 8 dropped lanes a row",   2, 12, 80,  3, 9, 0, 0, 0},
      {"17x17: a whole half-tile dropped", 2, 20, 136, 3, 17, 0, 0, 0},
  };
  const lensnet__gemm_path *path = lensnet__gemm_path_for(LENSNET_SIMD_AVX512);
  size_t t;
  if (!lensnet_simd_available(LENSNET_SIMD_AVX512)) { printf("SKIP: AVX-512 is not available on this CPU\n"); return; }
  for (t = 0; t < sizeof cases / sizeof cases[0]; t++) {
    const direct_case *d = &cases[t];
    lensnet__conv_geom g;
    lensnet__b_source src;
    size_t K = d->cin * d->k * d->k, m_pad, hp = d->h + 2 * d->pad, wp = d->w + 2 * d->pad, i, y0, y1, n_out, differ = 0;
    float *in, *padded, *weight, *bias, *A, *Bp, *direct, *packed;
    memset(&g, 0, sizeof g);
    g.n = 1; g.cin = d->cin; g.h = d->h; g.w = d->w; g.cout = d->cout; g.kh = g.kw = d->k; g.stride = 1; g.pad = d->pad;
    g.groups = 1; g.oh = hp - d->k + 1; g.ow = wp - d->k + 1;
    y0 = d->y1 ? d->y0 : 0; y1 = d->y1 ? d->y1 : g.oh;
    m_pad = lensnet__round_up(d->cout, path->mr);
    n_out = d->cout * (y1 - y0) * g.ow;
    in = alloc_floats(d->cin * d->h * d->w); padded = alloc_floats(d->cin * hp * wp); weight = alloc_floats(d->cout * K);
    bias = alloc_floats(d->cout); A = alloc_floats(m_pad * K + 16); Bp = alloc_floats(LENSNET__GEMM_KC * 32 + 16);
    direct = alloc_floats(n_out); packed = alloc_floats(n_out);
    for (i = 0; i < d->cin * d->h * d->w; i++) in[i] = uniform_pm1();
    for (i = 0; i < d->cout * K; i++) weight[i] = uniform_pm1();
    for (i = 0; i < d->cout; i++) bias[i] = uniform_pm1();
    in[(d->cin - 1) * d->h * d->w + 2 * d->w + d->w - 1] = NAN; /* the last column: read by dropped lanes too */
    lensnet__pad_image(&g, in, d->cin, padded);
    lensnet__conv_pack_weights(path, &g, weight, 0, A);
    memset(&src, 0, sizeof src);
    src.data = padded; src.is_image = 1; src.chan_stride = hp * wp; src.row_stride = wp; src.kh = src.kw = d->k;
    src.stride = 1; src.ow = g.ow;
    CHECK(lensnet__direct_conv_ok(&g, &src), "%s: read straight from the image", d->name);
    fill_nan(direct, n_out);
    fill_nan(packed, n_out);
    lensnet__conv_rows_direct_avx512(&g, &src, A, bias, 1, y0, y1, direct);
    lensnet__conv_rows_packed(path, &g, &src, A, bias, 1, y0, y1, packed, lensnet__align64(Bp));
    for (i = 0; i < n_out; i++) differ += memcmp(&direct[i], &packed[i], sizeof(float)) != 0;
    CHECK(differ == 0, "%s: %lu of %lu outputs differ from the packed path (first %g vs %g)", d->name, (unsigned long)differ,
          (unsigned long)n_out, direct[0], packed[0]);
    free(in); free(padded); free(weight); free(bias); free(A); free(Bp); free(direct); free(packed);
  }
#else
  printf("SKIP: this build has no AVX-512 path\n");
#endif
}

/* The weight gradient without im2col (AVX-512: the output gradient widened to the input's rows,
 * 5 x 5 blocks of 16-lane sums) against the definition in double precision, within the error
 * bound of a float sum of P products: output channels and weights not multiples of 5, padding,
 * the OU-66 first layer (rows 66 wide), adding into a slot that already holds a gradient; and the
 * bias gradient it sums on the way (each output channel's sum of dy). */
static void test_direct_weight_gradient(void) {
#ifdef LENSNET__HAVE_AVX512
  typedef struct { const char *name; size_t cin, h, w, cout, k, pad; int accumulate; } wg_case;
  static const wg_case cases[] = {
      {"OU-66 first layer",          4, 66, 66, 50, 3, 0, 0},
      {"5x5, 7 outputs, K = 75",     3, 12, 40,  7, 5, 0, 0},
      {"3x3 pad 1, 11 outputs, K = 54, added", 6, 10, 20, 11, 3, 1, 1},
      {"3x3, rows 17 wide",          5, 9, 17, 10, 3, 0, 1},
      {"OU-66 layer 17 (12 x 12)",  40, 12, 12, 40, 3, 0, 0},
      {"6 x 6, a third of the lanes dropped", 30, 6, 6, 20, 3, 0, 1},
  };
  size_t t;
  if (!lensnet_simd_available(LENSNET_SIMD_AVX512) || lensnet_simd_best() != LENSNET_SIMD_AVX512) {
    printf("SKIP: AVX-512 is not the path in use here\n");
    return;
  }
  for (t = 0; t < sizeof cases / sizeof cases[0]; t++) {
    const wg_case *d = &cases[t];
    lensnet__conv_geom g;
    size_t K = d->cin * d->k * d->k, i, co, c, ki, kj, y, x, scratch_n, bad = 0;
    float *in, *dy, *dw, *start, *scratch, *db, *db_start;
    double worst = 0.0;
    memset(&g, 0, sizeof g);
    g.n = 1; g.cin = d->cin; g.h = d->h; g.w = d->w; g.cout = d->cout; g.kh = g.kw = d->k; g.stride = 1; g.pad = d->pad;
    g.groups = 1; g.oh = d->h + 2 * d->pad - d->k + 1; g.ow = d->w + 2 * d->pad - d->k + 1;
    scratch_n = lensnet__conv_wgrad_direct_floats(&g);
    in = alloc_floats(d->cin * d->h * d->w); dy = alloc_floats(d->cout * g.oh * g.ow); dw = alloc_floats(d->cout * K);
    start = alloc_floats(d->cout * K); scratch = alloc_floats(scratch_n);
    db = alloc_floats(d->cout); db_start = alloc_floats(d->cout);
    for (i = 0; i < d->cin * d->h * d->w; i++) in[i] = uniform_pm1();
    for (i = 0; i < d->cout * g.oh * g.ow; i++) dy[i] = uniform_pm1();
    for (i = 0; i < d->cout * K; i++) dw[i] = start[i] = d->accumulate ? uniform_pm1() : (float)NAN;
    for (i = 0; i < d->cout; i++) db[i] = db_start[i] = d->accumulate ? uniform_pm1() : (float)NAN;
    fill_nan(scratch, scratch_n);
    CHECK(!lensnet__conv_wgrad_direct(&g, in, dy, scratch, scratch_n - 1, dw, db, d->accumulate) &&
              !memcmp(dw, start, d->cout * K * sizeof(float)) && !memcmp(db, db_start, d->cout * sizeof(float)),
          "%s: refused, touching nothing, with one float of scratch too few", d->name);
    CHECK(lensnet__conv_wgrad_direct(&g, in, dy, scratch, scratch_n, dw, db, d->accumulate), "%s: the direct path applies", d->name);
    for (co = 0; co < d->cout; co++) {
      double sum = d->accumulate ? db_start[co] : 0.0, magnitude = fabs(sum);
      for (i = 0; i < g.oh * g.ow; i++) {
        sum += dy[co * g.oh * g.ow + i];
        magnitude += fabs(dy[co * g.oh * g.ow + i]);
      }
      if (!(fabs((double)db[co] - sum) <= gamma_n(g.oh * g.ow + 2) * magnitude)) bad++;
    }
    CHECK(bad == 0, "%s: %lu of %lu bias gradients outside the error bound", d->name, (unsigned long)bad, (unsigned long)d->cout);
    bad = 0;
    for (co = 0; co < d->cout; co++)
      for (c = 0; c < d->cin; c++)
        for (ki = 0; ki < d->k; ki++)
          for (kj = 0; kj < d->k; kj++) {
            size_t k = (c * d->k + ki) * d->k + kj;
            double sum = d->accumulate ? start[co * K + k] : 0.0, magnitude = fabs(sum), err;
            for (y = 0; y < g.oh; y++)
              for (x = 0; x < g.ow; x++) {
                long iy = (long)(y + ki) - (long)d->pad, ix = (long)(x + kj) - (long)d->pad;
                double v;
                if (iy < 0 || ix < 0 || iy >= (long)d->h || ix >= (long)d->w) continue;
                v = (double)dy[(co * g.oh + y) * g.ow + x] * in[(c * d->h + (size_t)iy) * d->w + (size_t)ix];
                sum += v;
                magnitude += fabs(v);
              }
            err = fabs((double)dw[co * K + k] - sum);
            if (!(err <= gamma_n(g.oh * g.ow + 2) * magnitude)) bad++;
            if (magnitude > 0 && err / magnitude > worst) worst = err / magnitude;
          }
    CHECK(bad == 0, "%s: %lu of %lu weight gradients outside the error bound (worst %.3g of the magnitude)", d->name,
          (unsigned long)bad, (unsigned long)(d->cout * K), worst);
    free(in); free(dy); free(dw); free(start); free(scratch); free(db); free(db_start);
  }
#else
  printf("SKIP: this build has no AVX-512 path\n");
#endif
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--best") == 0) { /* for test_environment_cap */
    printf("%s\n", lensnet_simd_name(lensnet_simd_best()));
    return 0;
  }
  (void)check_data_dir; /* part of the harness; this test needs no reference files */
  printf("best path: %s\n", lensnet_simd_name(lensnet_simd_best()));
  TEST("the best path is the widest the CPU runs, whatever the compiler flags") test_best_path_is_the_cpus_best();
  TEST("LENSNET_SIMD caps the path") test_environment_cap(argv[0]);
  TEST("unavailable paths run the scalar kernel") test_unavailable_path_is_scalar();
  TEST("sgemm with K = 0, M = 0, N = 0") test_empty_products();
  TEST("sgemm without packing memory (allocation fails)") test_without_packing_memory();
  TEST("sgemm: every available path against double precision and the scalar path")
    test_gemm_paths();
  TEST("conv2d forward: every available path against a direct double-precision convolution")
    test_conv_paths();
  TEST("conv2d rows read straight from the image (AVX-512): the packed path's outputs bit for bit") test_direct_conv_rows();
  TEST("conv2d weight gradient without im2col (AVX-512) against double precision") test_direct_weight_gradient();
  return check_summary();
}
