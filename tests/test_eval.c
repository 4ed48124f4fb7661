/* test_eval.c - lensviz.h's evaluation recipes (lensviz_eval_*), the figures under `lens eval`.
 *
 * Every expected value is worked out by hand in the comments or computed here from its
 * definition (the pairwise Mann-Whitney sum, the Hanley & McNeil 1982 standard error), never
 * from the code under test. `lens eval` itself is tested in tests/test_cli_eval.c, the CSV
 * reader in tests/test_formats.c. */
#define LENSNET_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define LENSVIZ_IMPLEMENTATION
#include "lensviz.h"
#include "check.h"
#include <string.h>

#define NEAR(a, b) (fabs((double)(a) - (double)(b)) <= 1e-12)

static lensviz_eval_desc plain(void) {
  lensviz_eval_desc d;
  memset(&d, 0, sizeof d);
  return d;
}

/* The AUC by its definition: every (lens, non-lens) pair, weighted, a tie counting one half. */
static double pairwise_auc(const float *s, const int *y, const float *w, size_t n) {
  double sum = 0.0, wp = 0.0, wn = 0.0;
  size_t i, j;
  for (i = 0; i < n; i++) {
    double wi = w ? w[i] : 1.0;
    if (y[i]) wp += wi;
    else wn += wi;
    if (!y[i]) continue;
    for (j = 0; j < n; j++) {
      double wj = w ? w[j] : 1.0;
      if (y[j]) continue;
      sum += wi * wj * (s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0);
    }
  }
  return sum / (wp * wn);
}

/* n objects, half lenses; lens scores ~ N(shift, 1), non-lenses ~ N(0, 1), rounded to a
 * multiple of `step` when step > 0 (to make ties). */
static void synthetic(float *s, int *y, size_t n, double shift, double step, uint64_t seed) {
  lensnet_rng rng;
  size_t i;
  lensnet_rng_seed(&rng, seed);
  for (i = 0; i < n; i++) {
    double v = lensnet_rng_normal(&rng);
    y[i] = (int)(i % 2);
    if (y[i]) v += shift;
    if (step > 0) v = step * floor(v / step + 0.5);
    s[i] = (float)v;
  }
}

static void test_auc_small_sets(void) {
  /* lenses 0.9 0.8 0.4, non-lenses 0.7 0.4 0.2: pairs won 3 + 3 + (0 + 0.5 + 1) = 7.5 of 9 */
  float s[6] = {0.9f, 0.8f, 0.4f, 0.7f, 0.4f, 0.2f};
  int y[6] = {1, 1, 1, 0, 0, 0};
  float tied[4] = {0.5f, 0.5f, 0.5f, 0.5f};
  int y4[4] = {1, 0, 1, 0};
  float perfect[4] = {0.1f, 0.2f, 0.8f, 0.9f};
  int yp[4] = {0, 0, 1, 1}, yr[4] = {1, 1, 0, 0};
  lensviz_eval_desc d = plain();
  lensviz_eval_result r;
  CHECK(lensviz_eval_binary(s, y, NULL, 6, 0.5, &d, &r, NULL) == LENSNET_OK && NEAR(r.auc, 7.5 / 9.0), "AUC 7.5/9: %.15g", r.auc);
  CHECK(r.count_pos == 3 && r.count_neg == 3, "class counts");
  CHECK(r.auc_lo != r.auc_lo && r.auc_hi != r.auc_hi && r.resamples == 0, "no resamples: no interval");
  lensviz_eval_binary(tied, y4, NULL, 4, 0.5, &d, &r, NULL);
  CHECK(NEAR(r.auc, 0.5), "all scores tied: 0.5, got %g", r.auc);
  lensviz_eval_binary(perfect, yp, NULL, 4, 0.5, &d, &r, NULL);
  CHECK(NEAR(r.auc, 1.0), "separated: 1, got %g", r.auc);
  lensviz_eval_binary(perfect, yr, NULL, 4, 0.5, &d, &r, NULL);
  CHECK(NEAR(r.auc, 0.0), "reversed: 0, got %g", r.auc);
  {
    /* infinite scores rank as the extremes: lens +inf, lens 0, non-lens -inf, non-lens 0 ->
     * pairs 1 + 1 + 1 + 0.5 = 3.5 of 4 */
    float inf[4] = {INFINITY, 0.0f, -INFINITY, 0.0f};
    int yi[4] = {1, 1, 0, 0};
    lensviz_eval_binary(inf, yi, NULL, 4, 0.5, &d, &r, NULL);
    CHECK(NEAR(r.auc, 3.5 / 4.0), "+-inf scores: 0.875, got %g", r.auc);
  }
}

static void test_auc_against_pairs(void) {
  enum { N = 300 };
  static float s[N], w[N], fpr[N + 1], tpr[N + 1];
  static int y[N];
  lensviz_eval_desc d = plain();
  lensviz_eval_result r;
  double roc_auc;
  size_t i;
  synthetic(s, y, N, 0.8, 0.25, 5); /* scores on a 0.25 grid: many ties within and across classes */
  CHECK(lensviz_eval_binary(s, y, NULL, N, 0.0, &d, &r, NULL) == LENSNET_OK, "evaluates");
  CHECK(fabs(r.auc - pairwise_auc(s, y, NULL, N)) < 1e-12, "AUC %.15g equals the pairwise sum %.15g", r.auc, pairwise_auc(s, y, NULL, N));
  lensviz_roc(s, y, N, fpr, tpr, &roc_auc);
  CHECK(fabs(r.auc - roc_auc) < 1e-9, "equals lensviz_roc's trapezoids %.12g", roc_auc);
  /* weights: the pairwise sum with weights, and integer weights act as repeated objects */
  for (i = 0; i < N; i++) w[i] = (float)(1 + i % 3);
  lensviz_eval_binary(s, y, w, N, 0.0, &d, &r, NULL);
  CHECK(fabs(r.auc - pairwise_auc(s, y, w, N)) < 1e-12, "weighted AUC %.15g equals the weighted pairs %.15g", r.auc,
        pairwise_auc(s, y, w, N));
  CHECK(NEAR(r.weight_pos + r.weight_neg, 600.0), "total weight 100*(1+2+3) = 600, got %g", r.weight_pos + r.weight_neg);
}

/* The interval: contains the estimate, narrows with n, agrees with Hanley & McNeil's standard
 * error, repeats with the seed, ignores threads. */
typedef struct { int reversed; } fake_pool;
static void run_reversed(void *user, size_t count, lensnet_task_fn task, void *ctx) {
  size_t i;
  (void)user;
  for (i = count; i > 0; i--) task(ctx, i - 1, (i - 1) % 3); /* any order, three workers' scratch */
}

static int progress_calls;
static size_t progress_last;
static void count_progress(void *user, size_t done, size_t total) {
  (*(int *)user)++;
  progress_last = done;
  (void)total;
}

static double hanley_mcneil_se(double a, double np, double nn) {
  double q1 = a / (2.0 - a), q2 = 2.0 * a * a / (1.0 + a);
  return sqrt((a * (1.0 - a) + (np - 1.0) * (q1 - a * a) + (nn - 1.0) * (q2 - a * a)) / (np * nn));
}

static void test_bootstrap(void) {
  enum { SMALL = 100, LARGE = 2000 };
  static float s[LARGE];
  static int y[LARGE];
  lensviz_eval_desc d = plain();
  lensviz_eval_result small, large, again, threaded, narrow;
  lensnet_parallel par;
  double se;
  d.resamples = 1000;
  d.seed = 7;
  synthetic(s, y, SMALL, 1.0, 0, 11);
  lensviz_eval_binary(s, y, NULL, SMALL, 0.5, &d, &small, NULL);
  synthetic(s, y, LARGE, 1.0, 0, 11);
  lensviz_eval_binary(s, y, NULL, LARGE, 0.5, &d, &large, NULL);
  CHECK(small.resamples == 1000 && NEAR(small.level, 0.95), "1000 resamples at 95%%");
  CHECK(small.auc_lo <= small.auc && small.auc <= small.auc_hi, "n=100: %g in [%g, %g]", small.auc, small.auc_lo, small.auc_hi);
  CHECK(large.auc_lo <= large.auc && large.auc <= large.auc_hi, "n=2000: %g in [%g, %g]", large.auc, large.auc_lo, large.auc_hi);
  CHECK(large.auc_hi - large.auc_lo < 0.5 * (small.auc_hi - small.auc_lo), "narrows with n: %g vs %g", large.auc_hi - large.auc_lo,
        small.auc_hi - small.auc_lo);
  /* 95% percentile interval ~ 2 * 1.96 SE; SE by Hanley & McNeil 1982 for 1000 + 1000 objects */
  se = hanley_mcneil_se(large.auc, 1000, 1000);
  CHECK((large.auc_hi - large.auc_lo) / (2 * 1.96 * se) > 0.8 && (large.auc_hi - large.auc_lo) / (2 * 1.96 * se) < 1.25,
        "width %g vs 3.92 SE = %g (Hanley & McNeil)", large.auc_hi - large.auc_lo, 2 * 1.96 * se);
  lensviz_eval_binary(s, y, NULL, LARGE, 0.5, &d, &again, NULL);
  CHECK(again.auc_lo == large.auc_lo && again.auc_hi == large.auc_hi, "the same seed gives the same interval");
  par.run = run_reversed;
  par.user = NULL;
  par.workers = 3;
  d.parallel = &par;
  lensviz_eval_binary(s, y, NULL, LARGE, 0.5, &d, &threaded, NULL);
  CHECK(threaded.auc_lo == large.auc_lo && threaded.auc_hi == large.auc_hi, "resamples in another order on three workers: the same");
  d.parallel = NULL;
  d.progress = count_progress;
  d.progress_user = &progress_calls;
  lensviz_eval_binary(s, y, NULL, SMALL, 0.5, &d, &again, NULL);
  CHECK(progress_calls == 16 && progress_last == 1000, "progress after every 64 resamples and the last: %d calls, last %lu", progress_calls,
        (unsigned long)progress_last);
  d.progress = NULL;
  d.level = 0.5;
  lensviz_eval_binary(s, y, NULL, LARGE, 0.5, &d, &narrow, NULL);
  CHECK(narrow.auc_hi - narrow.auc_lo < large.auc_hi - large.auc_lo, "a 50%% interval is narrower than a 95%% one");
  d.level = 0.95;
  d.seed = 8;
  lensviz_eval_binary(s, y, NULL, LARGE, 0.5, &d, &again, NULL);
  CHECK(again.auc_lo != large.auc_lo || again.auc_hi != large.auc_hi, "another seed, other resamples");
}

/* AP, threshold figures, precision at recall and recall at FPR on the six objects above. */
static void test_ap_and_thresholds(void) {
  float s[6] = {0.9f, 0.8f, 0.4f, 0.7f, 0.4f, 0.2f};
  int y[6] = {1, 1, 1, 0, 0, 0};
  lensviz_eval_desc d = plain();
  lensviz_eval_result r;
  d.recall_count = 3;
  d.recalls[0] = 0.5; d.recalls[1] = 0.9; d.recalls[2] = 1.0;
  d.fpr_count = 2;
  d.fprs[0] = 0.4; d.fprs[1] = 0.01;
  lensviz_eval_binary(s, y, NULL, 6, 0.5, &d, &r, NULL);
  /* from the top: 0.9 L (R 1/3, P 1), 0.8 L (R 2/3, P 1), 0.7 N (R 2/3, P 2/3), 0.4 L+N (R 1, P 3/5),
   * 0.2 N (R 1, P 1/2): AP = 1/3 * 1 + 1/3 * 1 + 0 + 1/3 * 3/5 = 13/15 */
  CHECK(NEAR(r.ap, 13.0 / 15.0), "AP 13/15, got %.15g", r.ap);
  /* at 0.5: TP 2 (0.9, 0.8), FP 1 (0.7), FN 1, TN 2 */
  CHECK(NEAR(r.tp, 2) && NEAR(r.fp, 1) && NEAR(r.fn, 1) && NEAR(r.tn, 2), "confusion TP 2 FP 1 FN 1 TN 2");
  CHECK(NEAR(r.precision, 2.0 / 3) && NEAR(r.recall, 2.0 / 3) && NEAR(r.fpr, 1.0 / 3) && NEAR(r.f1, 2.0 / 3) && NEAR(r.accuracy, 4.0 / 6),
        "precision, recall, FPR, F1, accuracy");
  /* recall >= 0.5 first at 0.8 (precision 1); >= 0.9 and 1 first at 0.4 (precision 3/5) */
  CHECK(NEAR(r.precision_at_recall[0], 1.0) && NEAR(r.threshold_at_recall[0], 0.8f), "precision at recall 0.5: 1 at 0.8");
  CHECK(NEAR(r.precision_at_recall[1], 0.6) && NEAR(r.threshold_at_recall[1], 0.4f), "precision at recall 0.9: 3/5 at 0.4");
  CHECK(NEAR(r.precision_at_recall[2], 0.6), "precision at recall 1: 3/5");
  /* FPR <= 0.4: down to 0.7 (FPR 1/3; at 0.4 it is 2/3): recall 2/3; FPR <= 0.01: only 0.8 and 0.9 */
  CHECK(NEAR(r.recall_at_fpr[0], 2.0 / 3) && NEAR(r.threshold_at_fpr[0], 0.7f), "recall at FPR 0.4: 2/3 at 0.7, got %g at %g",
        r.recall_at_fpr[0], r.threshold_at_fpr[0]);
  CHECK(NEAR(r.recall_at_fpr[1], 2.0 / 3) && NEAR(r.threshold_at_fpr[1], 0.8f), "recall at FPR 0.01: 2/3 at 0.8");
  {
    /* a non-lens on top: no threshold has FPR 0 and recall > 0 */
    float t[3] = {0.9f, 0.5f, 0.1f};
    int yt[3] = {0, 1, 0};
    lensviz_eval_binary(t, yt, NULL, 3, 0.5, &d, &r, NULL);
    CHECK(NEAR(r.recall_at_fpr[1], 0.0) && isinf(r.threshold_at_fpr[1]), "recall at FPR 0.01: 0, threshold +inf");
  }
  {
    /* defaults: recalls 0.9, 0.95 and FPRs 1e-2, 1e-3 */
    lensviz_eval_desc def = lensviz_eval_desc_resolve(NULL);
    CHECK(def.recall_count == 2 && def.recalls[0] == 0.9 && def.recalls[1] == 0.95 && def.fpr_count == 2 && def.fprs[0] == 1e-2 &&
          def.fprs[1] == 1e-3 && def.level == 0.95, "defaults");
  }
}

/* A prior 1:10 on two lenses and four non-lenses: each non-lens weighs w = 10 * 2 / 4 = 5. */
static void test_prior(void) {
  float s[6] = {0.9f, 0.6f, 0.8f, 0.3f, 0.2f, 0.1f};
  int y[6] = {1, 1, 0, 0, 0, 0};
  lensviz_eval_desc d = plain();
  lensviz_eval_result plain_r, r;
  lensviz_eval_point pts[7];
  size_t count;
  d.recall_count = 1;
  d.recalls[0] = 1.0;
  lensviz_eval_binary(s, y, NULL, 6, 0.5, &d, &plain_r, NULL);
  d.prior = 10.0;
  lensviz_eval_binary(s, y, NULL, 6, 0.5, &d, &r, NULL);
  CHECK(NEAR(r.negative_weight, 5.0) && NEAR(r.weight_neg, 20.0) && NEAR(r.weight_pos, 2.0), "non-lens weight 5, total 20 vs 2");
  /* at 0.5: TP 2, FP 1 (0.8) -> precision 2/3 as sampled, 2/(2 + 5) at 1:10 */
  CHECK(NEAR(plain_r.precision, 2.0 / 3.0) && NEAR(r.precision, 2.0 / 7.0), "precision 2/3 -> 2/7, got %g", r.precision);
  CHECK(NEAR(r.recall, plain_r.recall) && NEAR(r.fpr, plain_r.fpr) && NEAR(r.auc, plain_r.auc), "recall, FPR and AUC unchanged");
  /* F1 = 2TP / (2TP + FP + FN) = 4 / (4 + 5 + 0); accuracy (2 + 15) / 22 */
  CHECK(NEAR(r.f1, 4.0 / 9.0) && NEAR(r.accuracy, 17.0 / 22.0), "F1 4/9, accuracy 17/22");
  /* from the top: 0.9 L (R 1/2, P 1), 0.8 N (P 1/6), 0.6 L (R 1, P 2/7): AP = 1/2 + 1/2 * 2/7 = 9/14 */
  CHECK(NEAR(r.ap, 9.0 / 14.0), "AP at 1:10: 9/14, got %.15g", r.ap);
  CHECK(NEAR(r.precision_at_recall[0], 2.0 / 7.0), "precision at recall 1: 2/7");
  CHECK(lensviz_eval_curve(s, y, NULL, 6, 10.0, pts, &count, NULL) == LENSNET_OK && count == 7, "the curve: 1 + 6 points");
  CHECK(isinf(pts[0].threshold) && pts[0].tp == 0 && pts[0].precision == 1.0, "first point: +inf, nothing called");
  CHECK(NEAR(pts[2].threshold, 0.8f) && NEAR(pts[2].fp, 5.0) && NEAR(pts[2].precision, 1.0 / 6.0) && NEAR(pts[2].fpr, 0.25),
        "second score 0.8: FP weighs 5, precision 1/6, FPR 1/4");
  CHECK(NEAR(pts[6].tpr, 1.0) && NEAR(pts[6].fpr, 1.0), "last point (1, 1)");
}

static void test_undefined(void) {
  float s[3] = {0.2f, 0.7f, 0.9f}, nan_s[2] = {0.5f, NAN};
  int lenses[3] = {1, 1, 1}, none[3] = {0, 0, 0}, y2[2] = {1, 0};
  float bad_w[2] = {1.0f, -1.0f};
  lensviz_eval_desc d = plain();
  lensviz_eval_result r;
  lensnet_error err;
  d.resamples = 50;
  CHECK(lensviz_eval_binary(s, lenses, NULL, 3, 0.5, &d, &r, NULL) == LENSNET_OK && r.auc != r.auc && r.auc_lo != r.auc_lo,
        "lenses only: AUC undefined (NaN), no interval");
  CHECK(r.ap == r.ap && NEAR(r.ap, 1.0) && r.fpr != r.fpr && NEAR(r.recall, 2.0 / 3), "lenses only: AP 1, recall 2/3, FPR undefined");
  lensviz_eval_binary(s, none, NULL, 3, 0.5, &d, &r, NULL);
  CHECK(r.auc != r.auc && r.ap != r.ap && r.recall != r.recall && NEAR(r.fpr, 2.0 / 3), "non-lenses only: AUC, AP, recall undefined");
  lensviz_eval_binary(s, y2, NULL, 2, 5.0, &d, &r, NULL);
  CHECK(r.precision != r.precision && NEAR(r.recall, 0.0) && NEAR(r.f1, 0.0), "nothing called: precision undefined, recall and F1 0");
  CHECK(lensviz_eval_binary(nan_s, y2, NULL, 2, 0.5, &d, &r, &err) == LENSNET_ERR_ARG && strstr(err.message, "object 1"),
        "a NaN score is refused, naming the object: %s", err.message);
  CHECK(lensviz_eval_binary(s, y2, bad_w, 2, 0.5, &d, &r, &err) == LENSNET_ERR_ARG, "a negative weight is refused");
  d.level = 1.5;
  CHECK(lensviz_eval_binary(s, y2, NULL, 2, 0.5, &d, &r, &err) == LENSNET_ERR_ARG && strstr(err.message, "level"), "level 1.5 refused");
  d.level = 0;
  d.recall_count = 1;
  d.recalls[0] = 0;
  CHECK(lensviz_eval_binary(s, y2, NULL, 2, 0.5, &d, &r, &err) == LENSNET_ERR_ARG, "recall 0 refused");
  CHECK(lensviz_eval_binary(s, y2, NULL, 0, 0.5, NULL, &r, NULL) == LENSNET_OK && r.count_pos == 0 && r.auc != r.auc, "no objects");
}

/* Groups: a one-class group against every object of the other class. */
static void test_groups(void) {
  /* kinds: A lenses {0.9, 0.3}, B lenses {0.6}, non-lenses X {0.5, 0.1}, Y {0.7} */
  float s[6] = {0.9f, 0.3f, 0.6f, 0.5f, 0.1f, 0.7f};
  int y[6] = {1, 1, 1, 0, 0, 0};
  unsigned char kind_a[6] = {1, 1, 0, 0, 0, 0}, kind_y[6] = {0, 0, 0, 0, 0, 1}, mixed[6] = {1, 0, 0, 1, 0, 0}, empty[6] = {0};
  lensviz_eval_desc d = plain();
  lensviz_eval_result r;
  lensviz_eval_members m;
  /* A against all three non-lenses: 0.9 beats 3; 0.3 beats 0.1 -> 4 of 6 */
  lensviz_eval_group(s, y, NULL, 6, kind_a, 0.5, &d, &r, &m, NULL);
  CHECK(m == LENSVIZ_EVAL_MEMBERS_LENSES && r.count_pos == 2 && r.count_neg == 3 && NEAR(r.auc, 4.0 / 6.0) && NEAR(r.recall, 0.5),
        "lens kind A vs all non-lenses: AUC 4/6, recall 1/2, got %g", r.auc);
  /* Y (0.7) against all lenses: beaten by 0.9 only -> 1 of 3; FPR at 0.5 is 1 */
  lensviz_eval_group(s, y, NULL, 6, kind_y, 0.5, &d, &r, &m, NULL);
  CHECK(m == LENSVIZ_EVAL_MEMBERS_NON_LENSES && r.count_pos == 3 && r.count_neg == 1 && NEAR(r.auc, 1.0 / 3.0) && NEAR(r.fpr, 1.0),
        "non-lens kind Y vs all lenses: AUC 1/3, FPR 1");
  lensviz_eval_group(s, y, NULL, 6, mixed, 0.5, &d, &r, &m, NULL);
  CHECK(m == LENSVIZ_EVAL_MEMBERS_BOTH && r.count_pos == 1 && r.count_neg == 1 && NEAR(r.auc, 1.0), "a mixed group: its own objects");
  lensviz_eval_group(s, y, NULL, 6, empty, 0.5, &d, &r, &m, NULL);
  CHECK(m == LENSVIZ_EVAL_MEMBERS_NONE && r.count_pos + r.count_neg == 0 && r.auc != r.auc, "an empty group");
  {
    /* the objects behind kind A: its two lenses and the three non-lenses, in order */
    size_t pick[6], count;
    lensviz_eval_group_objects(y, 6, kind_a, pick, &count, &m);
    CHECK(count == 5 && pick[0] == 0 && pick[1] == 1 && pick[2] == 3 && pick[3] == 4 && pick[4] == 5 && m == LENSVIZ_EVAL_MEMBERS_LENSES,
          "lensviz_eval_group_objects: 0, 1, 3, 4, 5");
  }
}

static void test_bins(void) {
  double theta[6] = {0.0, 0.0, 0.0, 1.2, 0.4, 2.0}, mag[6] = {20, 22, 24, 21, 23, 25}, v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  double edges[5], tied[4] = {3, 3, 3, 3};
  int y[6] = {0, 0, 0, 1, 1, 1}, y8[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t count;
  CHECK(lensviz_eval_binned_class(theta, y, 6) == LENSVIZ_EVAL_BIN_LENSES, "theta_E, 0 for every non-lens: the lenses are binned");
  CHECK(lensviz_eval_binned_class(mag, y, 6) == LENSVIZ_EVAL_BIN_ALL, "mag_lens varies in both classes: every object");
  /* numpy.quantile([1..8], [0, .25, .5, .75, 1]) = 1, 2.75, 4.5, 6.25, 8 */
  lensviz_eval_quantile_edges(v, y8, 8, LENSVIZ_EVAL_BIN_ALL, 4, edges, &count, NULL);
  CHECK(count == 5 && NEAR(edges[0], 1) && NEAR(edges[1], 2.75) && NEAR(edges[2], 4.5) && NEAR(edges[3], 6.25) && NEAR(edges[4], 8),
        "quartile edges of 1..8");
  /* lenses only: 0.4, 1.2, 2.0 -> halves at 0.4, 1.2, 2.0 */
  lensviz_eval_quantile_edges(theta, y, 6, LENSVIZ_EVAL_BIN_LENSES, 2, edges, &count, NULL);
  CHECK(count == 3 && NEAR(edges[0], 0.4) && NEAR(edges[1], 1.2) && NEAR(edges[2], 2.0), "edges over the lenses only");
  lensviz_eval_quantile_edges(tied, y8, 4, LENSVIZ_EVAL_BIN_ALL, 4, edges, &count, NULL);
  CHECK(count == 2 && edges[0] == 3 && edges[1] == 3 && lensviz_eval_bin(3, edges, count) == 0, "one value: one bin [3, 3]");
  edges[0] = 0; edges[1] = 0.5; edges[2] = 1; edges[3] = 2;
  CHECK(lensviz_eval_bin(0, edges, 4) == 0 && lensviz_eval_bin(0.5, edges, 4) == 1 && lensviz_eval_bin(1.99, edges, 4) == 2 &&
        lensviz_eval_bin(2, edges, 4) == 2, "bins [0, 0.5) [0.5, 1) [1, 2]");
  CHECK(lensviz_eval_bin(-0.1, edges, 4) == -1 && lensviz_eval_bin(2.01, edges, 4) == -1 && lensviz_eval_bin(NAN, edges, 4) == -1,
        "outside and NaN: no bin");
}

/* Three classes, four objects each way worked by hand. */
static void test_multiclass(void) {
  /* rows: P(0), P(1), P(2); labels 0 0 1 1 2 2 */
  float p[6 * 3] = {0.7f, 0.2f, 0.1f,   0.4f, 0.5f, 0.1f,   0.2f, 0.6f, 0.2f,
                    0.3f, 0.3f, 0.4f,   0.1f, 0.1f, 0.8f,   0.5f, 0.2f, 0.3f};
  int y[6] = {0, 0, 1, 1, 2, 2}, y_absent[6] = {0, 0, 1, 1, 1, 1};
  lensviz_eval_desc d = plain();
  lensviz_eval_classes r;
  lensnet_error err;
  CHECK(lensviz_eval_multiclass(p, y, 6, 3, &d, &r, NULL) == LENSNET_OK, "evaluates");
  /* class 0: {0.7, 0.4} vs {0.2, 0.3, 0.1, 0.5}: 0.7 beats 4, 0.4 beats 3 -> 7/8
   * class 1: {0.6, 0.3} vs {0.2, 0.5, 0.1, 0.2}: 0.6 beats 4, 0.3 beats 3 -> 7/8
   * class 2: {0.8, 0.3} vs {0.1, 0.1, 0.2, 0.4}: 0.8 beats 4, 0.3 beats 3 -> 7/8 */
  CHECK(NEAR(r.auc[0], 7.0 / 8) && NEAR(r.auc[1], 7.0 / 8) && NEAR(r.auc[2], 7.0 / 8) && NEAR(r.macro_auc, 7.0 / 8), "one-vs-rest AUCs 7/8");
  /* argmax: 0, 1, 1, 2, 2, 0 -> confusion rows (true) [1 1 0] [0 1 1] [1 0 1] */
  CHECK(r.confusion[0] == 1 && r.confusion[1] == 1 && r.confusion[2] == 0 && r.confusion[3] == 0 && r.confusion[4] == 1 &&
        r.confusion[5] == 1 && r.confusion[6] == 1 && r.confusion[7] == 0 && r.confusion[8] == 1, "confusion matrix at the argmax");
  CHECK(NEAR(r.accuracy, 0.5) && NEAR(r.recall[1], 0.5) && NEAR(r.precision[1], 0.5) && NEAR(r.f1[1], 0.5), "accuracy 1/2, class 1 P = R = F1 = 1/2");
  d.resamples = 200;
  lensviz_eval_multiclass(p, y, 6, 3, &d, &r, NULL);
  CHECK(r.resamples == 200 && r.macro_lo <= r.macro_auc && r.macro_auc <= r.macro_hi && r.auc_lo[2] <= r.auc[2] && r.auc[2] <= r.auc_hi[2],
        "intervals hold the estimates");
  lensviz_eval_multiclass(p, y_absent, 6, 3, &d, &r, NULL);
  CHECK(r.auc[2] != r.auc[2] && r.macro_auc != r.macro_auc && r.auc[0] == r.auc[0] && r.count[2] == 0,
        "class 2 absent: its AUC and the macro AUC undefined, class 0's defined");
  y_absent[5] = 3;
  CHECK(lensviz_eval_multiclass(p, y_absent, 6, 3, &d, &r, &err) == LENSNET_ERR_ARG && strstr(err.message, "object 5"),
        "label 3 of 3 classes refused: %s", err.message);
}

/* Positions: four objects off by 0.5 (0.3 right, 0.4 up), 1, 0 and 2.6 (1 left, 2.4 up);
 * sorted 0, 0.5, 1, 2.6: the median halfway between 0.5 and 1, 0.75; the 0.68 quantile at 0.68 * 3 =
 * 2.04, 1 + 0.04 * 1.6 = 1.064; the 0.9 quantile at 2.7, 1 + 0.7 * 1.6 = 2.12; rms sqrt((0.25 + 1 +
 * 6.76) / 4) = sqrt(2.0025); within 1 (inclusive): 3 of 4, within 0.4: 1 of 4. */
static void test_positions(void) {
  const double tx[4] = {1, 2, 3, -1}, ty[4] = {1, 2, 3, 0.5}, x[4] = {1.3, 2, 3, -2.0}, y[4] = {1.4, 3, 3, 0.5 + 2.4};
  const double radii[2] = {0.4, 1.0}, bad[1] = {NAN};
  double nine[9] = {0};
  lensviz_position_result r;
  lensnet_error err;
  CHECK(lensviz_eval_positions(tx, ty, x, y, 4, radii, 2, &r, &err) == LENSNET_OK, "%s", err.message);
  CHECK(r.n == 4 && NEAR(r.median, 0.75) && NEAR(r.p68, 1.064) && NEAR(r.p90, 2.12) && NEAR(r.rms, sqrt(2.0025)),
        "median %.15g, p68 %.15g, p90 %.15g, rms %.15g", r.median, r.p68, r.p90, r.rms);
  CHECK(r.radius_count == 2 && r.radii[1] == 1.0 && NEAR(r.within[0], 0.25) && NEAR(r.within[1], 0.75), "within: %g %g", r.within[0], r.within[1]);
  CHECK(lensviz_eval_positions(tx, ty, x, y, 0, radii, 2, &r, &err) == LENSNET_OK && r.n == 0 && isnan(r.median) && isnan(r.rms) &&
            isnan(r.within[0]), "no objects: NaN");
  CHECK(lensviz_eval_positions(tx, ty, bad, y, 1, radii, 2, &r, &err) == LENSNET_ERR_ARG && strstr(err.message, "object 0"), "NaN refused: %s",
        err.message);
  CHECK(lensviz_eval_positions(tx, ty, x, y, 4, nine, 9, &r, &err) == LENSNET_ERR_ARG, "nine radii refused");
}

int main(void) {
  TEST("AUC of small sets, ties, +-inf") test_auc_small_sets();
  TEST("AUC equals the pairwise Mann-Whitney sum, with and without weights") test_auc_against_pairs();
  TEST("bootstrap interval: holds the estimate, narrows with n, Hanley-McNeil width, seeded, thread-free") test_bootstrap();
  TEST("AP, figures at a threshold, precision at recall, recall at FPR") test_ap_and_thresholds();
  TEST("a class prior reweights the non-lenses") test_prior();
  TEST("undefined figures are NaN; bad inputs are refused") test_undefined();
  TEST("groups of one class are evaluated against the other class") test_groups();
  TEST("bins: which class, quantile edges, bin lookup") test_bins();
  TEST("K classes: one-vs-rest AUC, macro AUC, confusion at the argmax") test_multiclass();
  TEST("positions: quantiles, rms and shares within radii of the distances") test_positions();
  return check_summary();
}
