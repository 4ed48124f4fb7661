/* lensnet_adapt, the domain-adaptation recipe of lensnet.h: the backward pass from a layer's
 * output against finite differences, each method (adda, adamatch, self-ensembling; adabn's
 * statistics against the engine's own training-mode batch norm) on a tiny
 * model, a resumed run equal bit for bit to an uninterrupted one, results that do not depend on
 * the thread count, clear errors, and a toy domain shift that adaptation must reduce. */
#define _POSIX_C_SOURCE 200809L
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"
#include "../tools/pool.c"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SIDE 8
#define N_SRC 64
#define N_TGT 48
/* batch norm and dropout in the encoder, so that every path of the methods runs */
#define ARCH "input 1 8 8\nconv2d name=c1 out=4 kernel=3 padding=1\nbatchnorm name=bn\nrelu\nmaxpool kernel=2\n" \
             "flatten\ndropout p=0.1\ndense name=fc1 out=8\nrelu\ndense name=fc2 out=2"
#define ARCH_PLAIN "input 1 8 8\nconv2d name=c1 out=4 kernel=3 padding=1\nrelu\nmaxpool kernel=2\n" \
                   "flatten\ndense name=fc1 out=8\nrelu\ndense name=fc2 out=2"
/* smooth everywhere, for finite differences */
#define ARCH_SMOOTH "input 1 8 8\nconv2d name=c1 out=4 kernel=3 padding=1\ntanh\navgpool kernel=2\n" \
                    "flatten\ndense name=fc1 out=8\ntanh\ndense name=fc2 out=2"

static float src_data[N_SRC * SIDE * SIDE], src_labels[N_SRC], tgt_data[N_TGT * SIDE * SIDE], tgt_labels[N_TGT];
static lensnet_tensor source, target;

/* Rings (1) and discs (0) with noise; the target domain is brighter and sits on a pedestal. */
static void make_blobs(float *data, float *labels, size_t n, uint64_t seed, float gain, float pedestal) {
  lensnet_rng rng;
  size_t i;
  int y, x;
  lensnet_rng_seed(&rng, seed);
  for (i = 0; i < n; i++) {
    int ring = (int)(i % 2);
    float r = 1.8f + lensnet_rng_uniform(&rng);
    labels[i] = (float)ring;
    for (y = 0; y < SIDE; y++)
      for (x = 0; x < SIDE; x++) {
        float d = sqrtf((x - 3.5f) * (x - 3.5f) + (y - 3.5f) * (y - 3.5f));
        float v = (float)(ring ? fabsf(d - r) < 0.7f : d < 0.6f * r);
        data[i * SIDE * SIDE + (size_t)(y * SIDE + x)] = gain * v + pedestal + 0.1f * lensnet_rng_normal(&rng);
      }
  }
}

static lensnet_tensor as_tensor(float *data, size_t n) {
  lensnet_tensor t;
  memset(&t, 0, sizeof t);
  t.ndim = 4;
  t.shape[0] = n; t.shape[1] = 1; t.shape[2] = SIDE; t.shape[3] = SIDE;
  t.data = data;
  return t;
}

static lensnet_model *new_model(const char *arch, uint64_t seed) {
  lensnet_model *m = NULL;
  lensnet_error err;
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { printf("   %s\n", err.message); return NULL; }
  lensnet_model_init(m, seed);
  return m;
}

/* ---- lensnet_trainer_backward_from ------------------------------------------------------------ */

/* L = sum_i w_i f_i over the features f (the output of layer `layer`) of a batch of 2. */
static double feature_loss(lensnet_trainer *t, size_t layer, const float *x, const float *w, size_t n) {
  double s = 0;
  size_t i;
  const float *f;
  lensnet_trainer_forward(t, 2, x, 0, NULL, NULL);
  f = lensnet_trainer_activation(t, layer);
  for (i = 0; i < n; i++) s += (double)w[i] * f[i];
  return s;
}

static void test_backward_from(void) {
  lensnet_model *m = new_model(ARCH_SMOOTH, 5);
  lensnet_trainer *t = NULL;
  lensnet_trainer_desc td;
  lensnet_error err;
  size_t layer = 0, n, i, checked = 0;
  float w[2 * 64], *g;
  double worst = 0;
  memset(&td, 0, sizeof td);
  td.batch_cap = 2;
  CHECK(m && lensnet_trainer_create(m, &td, &t, &err) == LENSNET_OK, "trainer");
  if (!t) { lensnet_model_free(m); return; }
  CHECK(lensnet_model_classifier_layer(m, &layer, &err) == LENSNET_OK && layer == 6, "the classifier is the last dense layer (layer %lu)",
        (unsigned long)layer);
  layer--; /* the features: the relu below it */
  n = 2 * 8;
  {
    lensnet_rng rng;
    lensnet_rng_seed(&rng, 9);
    for (i = 0; i < n; i++) w[i] = lensnet_rng_normal(&rng);
  }
  feature_loss(t, layer, src_data, w, n);
  lensnet_trainer_zero_grad(t);
  CHECK(lensnet_trainer_backward_from(t, layer, 2, w, &err) == LENSNET_OK, "backward from the features");
  g = lensnet_trainer_grads(t);
  /* central differences in double-rounded float: every conv and fc1 value that moves the loss */
  for (i = 0; i < m->value_count; i++) {
    float keep = m->values[i];
    const float h = 1e-3f;
    double up, down, fd, tol;
    if (i >= lensnet_model_param(m, "fc2.weight")->offset) { CHECK(g[i] == 0.0f, "no gradient above the features (value %lu)", (unsigned long)i); continue; }
    m->values[i] = keep + h; up = feature_loss(t, layer, src_data, w, n);
    m->values[i] = keep - h; down = feature_loss(t, layer, src_data, w, n);
    m->values[i] = keep;
    fd = (up - down) / (2.0 * h);
    tol = 5e-3 * (fabs(fd) > 1 ? fabs(fd) : 1);
    if (fabs(fd - g[i]) > worst) worst = fabs(fd - g[i]);
    if (fabs(fd - g[i]) > tol) { CHECK(0, "value %lu: backward %g, finite difference %g", (unsigned long)i, (double)g[i], fd); break; }
    checked++;
  }
  printf("   %lu parameter values against central differences, largest difference %.2g\n", (unsigned long)checked, worst);
  CHECK(lensnet_trainer_backward_from(t, 99, 2, w, &err) == LENSNET_ERR_ARG && strstr(err.message, "layer 99"), "a layer that does not exist");
  lensnet_trainer_free(t);
  lensnet_model_free(m);
}

/* ---- the methods -------------------------------------------------------------------------------- */

typedef struct { int epochs_seen, stop_after; double loss[2]; int finite; } progress_log;

static int on_progress(void *user, const lensnet_adapt_progress *p) {
  progress_log *l = (progress_log *)user;
  if (!(p->loss[0] - p->loss[0] == 0) || !(p->loss[1] - p->loss[1] == 0)) l->finite = 0;
  if (!p->epoch_done) return 0;
  l->epochs_seen = p->epoch;
  l->loss[0] = p->loss[0]; l->loss[1] = p->loss[1];
  return l->stop_after && p->epoch == l->stop_after;
}

static lensnet_adapt_desc base_desc(const char *method, const char *dir, progress_log *log) {
  lensnet_adapt_desc d;
  memset(&d, 0, sizeof d);
  d.source = &source; d.source_labels = src_labels;
  d.target = &target; d.target_labels = tgt_labels;
  d.method = method;
  d.epochs = 3;
  d.batch = 16;
  d.disc_width = 16;
  d.seed = 4;
  d.out_dir = dir;
  d.progress = on_progress;
  d.progress_user = log;
  memset(log, 0, sizeof *log);
  log->finite = 1;
  return d;
}

static int same_values(const lensnet_model *a, const lensnet_model *b) {
  return a && b && a->value_count == b->value_count && !memcmp(a->values, b->values, a->value_count * sizeof(float));
}

static const char *const methods[3] = {"adda", "adamatch", "self-ensembling"};

static void test_methods_run(void) {
  int k;
  for (k = 0; k < 3; k++) {
    lensnet_model *m = new_model(ARCH, 3);
    lensnet_error err;
    progress_log log;
    lensnet_adapt_desc d = base_desc(methods[k], NULL, &log);
    lensnet_result r = lensnet_adapt(m, &d, &err);
    CHECK(r == LENSNET_OK, "%s: %s", methods[k], r == LENSNET_OK ? "" : err.message);
    CHECK(log.epochs_seen == 3 && log.finite, "%s: 3 epochs with finite losses (%d, %d)", methods[k], log.epochs_seen, log.finite);
    printf("   %-16s last epoch: losses %.4f, %.4f\n", methods[k], log.loss[0], log.loss[1]);
    CHECK(m && lensnet_model_meta(m, "adapt.method") && !strcmp(lensnet_model_meta(m, "adapt.method"), methods[k]), "%s: adapt.method", methods[k]);
    lensnet_model_free(m);
  }
}

/* The target figures of the report against a count made here: the model's class probabilities on
 * the target images (double softmax), accuracy at the argmax, and the AUC by counting every
 * (positive, negative) pair, ties half: class 1's for two classes, the mean over classes of one
 * against the rest for three. */
typedef struct { double acc, auc; } report_log;

static int on_report(void *user, const lensnet_adapt_progress *p) {
  if (p->epoch_done) { ((report_log *)user)->acc = p->target_acc; ((report_log *)user)->auc = p->target_auc; }
  return 0;
}

static void expected_report(const lensnet_model *m, const float *data, const float *labels, size_t n, size_t K, double *acc, double *auc) {
  double *prob = (double *)malloc(n * K * sizeof(double)), sum = 0.0;
  float logits[3];
  size_t i, j, c, correct = 0;
  for (i = 0; i < n; i++) {
    double z = 0.0, top;
    size_t best = 0;
    lensnet_model_forward(m, 1, data + i * SIDE * SIDE, logits, NULL, NULL);
    for (c = 1; c < K; c++) if (logits[c] > logits[best]) best = c;
    correct += best == (size_t)labels[i];
    top = logits[best];
    for (c = 0; c < K; c++) z += exp((double)logits[c] - top);
    for (c = 0; c < K; c++) prob[i * K + c] = exp((double)logits[c] - top) / z;
  }
  for (c = K == 2 ? 1 : 0; c < K; c++) {
    double right = 0.0, pairs = 0.0;
    for (i = 0; i < n; i++)
      for (j = 0; j < n; j++)
        if ((size_t)labels[i] == c && (size_t)labels[j] != c) {
          pairs += 1.0;
          right += prob[i * K + c] > prob[j * K + c] ? 1.0 : prob[i * K + c] == prob[j * K + c] ? 0.5 : 0.0;
        }
    sum += right / pairs;
  }
  *acc = (double)correct / (double)n;
  *auc = K == 2 ? sum : sum / (double)K;
  free(prob);
}

static void test_report(void) {
  size_t K;
  for (K = 2; K <= 3; K++) {
    char arch[512];
    lensnet_model *m;
    lensnet_error err;
    lensnet_adapt_desc d;
    progress_log unused;
    report_log got = {-1.0, -1.0};
    float labels3[N_TGT], src3[N_SRC];
    double acc, auc;
    size_t i;
    snprintf(arch, sizeof arch, "input 1 8 8\nconv2d name=c1 out=4 kernel=3 padding=1\nbatchnorm name=bn\nrelu\nmaxpool kernel=2\n"
             "flatten\ndense name=fc1 out=8\nrelu\ndense name=fc2 out=%lu", (unsigned long)K);
    if (!(m = new_model(arch, 7))) { CHECK(0, "the model"); return; }
    for (i = 0; i < N_TGT; i++) labels3[i] = K == 2 ? tgt_labels[i] : (float)(i % 3);
    for (i = 0; i < N_SRC; i++) src3[i] = K == 2 ? src_labels[i] : (float)(i % 3);
    d = base_desc("adda", NULL, &unused);
    d.source_labels = src3;
    d.target_labels = labels3;
    d.epochs = 1;
    d.progress = on_report;
    d.progress_user = &got;
    CHECK(lensnet_adapt(m, &d, &err) == LENSNET_OK, "%lu classes: %s", (unsigned long)K, err.message);
    expected_report(m, tgt_data, labels3, N_TGT, K, &acc, &auc);
    CHECK(fabs(got.acc - acc) < 1e-12 && fabs(got.auc - auc) < 1e-6 && auc >= 0.0 && auc <= 1.0,
          "%lu classes: target accuracy %.4f and AUC %.6f (%s), counted here %.4f and %.6f", (unsigned long)K, got.acc, got.auc,
          K == 2 ? "class 1's" : "macro one-vs-rest", acc, auc);
    lensnet_model_free(m);
  }
}

/* An uninterrupted run against one stopped after epoch 1 and resumed, and against 3 threads. */
static void test_resume_and_threads(void) {
  int k;
  lens_pool *pool = lens_pool_create(3);
  lensnet_parallel par = lens_pool_parallel(pool);
  for (k = 0; k < 3; k++) {
    char dir_a[64], dir_b[64], path[128];
    lensnet_model *a = new_model(ARCH, 3), *b = new_model(ARCH, 3), *c = new_model(ARCH, 3), *resumed = NULL, *best = NULL;
    lensnet_error err;
    progress_log log;
    lensnet_adapt_desc d;
    FILE *f;
    snprintf(dir_a, sizeof dir_a, "build/test_adapt_%d_a", k);
    snprintf(dir_b, sizeof dir_b, "build/test_adapt_%d_b", k);
    mkdir(dir_a, 0755);
    mkdir(dir_b, 0755);
    d = base_desc(methods[k], dir_a, &log);
    CHECK(lensnet_adapt(a, &d, &err) == LENSNET_OK, "%s: uninterrupted run", methods[k]);
    d = base_desc(methods[k], dir_b, &log);
    log.stop_after = 1;
    CHECK(lensnet_adapt(b, &d, &err) == LENSNET_OK && log.epochs_seen == 1, "%s: stopped after epoch 1", methods[k]);
    d = base_desc(methods[k], NULL, &log);
    CHECK(lensnet_adapt_resume(dir_b, &d, &resumed, &err) == LENSNET_OK, "%s: resume: %s", methods[k], err.message);
    CHECK(same_values(a, resumed), "%s: the resumed run ends on the uninterrupted run's weights, bit for bit", methods[k]);
    snprintf(path, sizeof path, "%s/best.safetensors", dir_b);
    CHECK(lensnet_model_load(path, &best, &err) == LENSNET_OK && same_values(best, resumed), "%s: best.safetensors is the adapted model",
          methods[k]);
    CHECK(best && lensnet_model_meta(best, "adapt.epoch") && !strcmp(lensnet_model_meta(best, "adapt.epoch"), "3"), "%s: adapt.epoch 3",
          methods[k]);
    snprintf(path, sizeof path, "%s/history.csv", dir_b);
    if ((f = fopen(path, "r")) != NULL) {
      char line[256];
      int lines = 0;
      while (fgets(line, sizeof line, f)) lines++;
      fclose(f);
      CHECK(lines == 4, "%s: history.csv has a header and 3 rows (%d lines)", methods[k], lines);
    } else CHECK(0, "%s: no history.csv", methods[k]);
    d = base_desc(methods[k], NULL, &log);
    d.parallel = &par;
    CHECK(lensnet_adapt(c, &d, &err) == LENSNET_OK && same_values(a, c), "%s: 3 threads give the weights of 1, bit for bit", methods[k]);
    lensnet_model_free(a); lensnet_model_free(b); lensnet_model_free(c); lensnet_model_free(resumed); lensnet_model_free(best);
  }
  lens_pool_free(pool);
}

static void test_errors(void) {
  lensnet_model *m = new_model(ARCH, 3), *dense_only = NULL;
  lensnet_error err;
  progress_log log;
  lensnet_adapt_desc d = base_desc("adda", NULL, &log);
  lensnet_tensor wrong = as_tensor(tgt_data, N_TGT / 4);
  float bad_labels[N_SRC];
  wrong.shape[2] = 4; wrong.shape[3] = 16;
  d.method = "mixup";
  CHECK(lensnet_adapt(m, &d, &err) == LENSNET_ERR_ARG && strstr(err.message, "mixup"), "an unknown method: %s", err.message);
  d.method = "adda";
  d.target = &wrong;
  CHECK(lensnet_adapt(m, &d, &err) == LENSNET_ERR_SHAPE && strstr(err.message, "target"), "target images of another shape: %s", err.message);
  d.target = &target;
  memcpy(bad_labels, src_labels, sizeof bad_labels);
  bad_labels[5] = 2;
  d.source_labels = bad_labels;
  CHECK(lensnet_adapt(m, &d, &err) == LENSNET_ERR_SHAPE && strstr(err.message, "label 5"), "a label outside the classes: %s", err.message);
  d.source_labels = src_labels;
  lensnet_model_set_meta(m, "regress.targets", "theta_E");
  CHECK(lensnet_adapt(m, &d, &err) == LENSNET_ERR_ARG && strstr(err.message, "regression"), "a regression model: %s", err.message);
  CHECK(lensnet_model_create("input 1 8 8\nflatten\ndense name=fc out=2", &dense_only, &err) == LENSNET_OK, "a model of one dense layer");
  CHECK(dense_only && lensnet_adapt(dense_only, &d, &err) == LENSNET_ERR_ARG && strstr(err.message, "classifier"), "no encoder: %s", err.message);
  lensnet_model_free(m);
  {
    /* an out_dir that is not there: refused before any step, the model as it was */
    lensnet_model *a = new_model(ARCH, 3), *b = new_model(ARCH, 3);
    d = base_desc("adamatch", "build/test_adapt_missing/x", &log);
    CHECK(lensnet_adapt(a, &d, &err) == LENSNET_ERR_IO && strstr(err.message, "out_dir") && strstr(err.message, "test_adapt_missing") &&
              same_values(a, b),
          "a missing out_dir: refused before adapting: %s", err.message);
    lensnet_model_free(a);
    lensnet_model_free(b);
  }
  lensnet_model_free(dense_only);
}

/* The scaling: a model trained on min-max scaled images is adapted on min-max scaled images unless
 * told otherwise, as if desc.minmax were 1; desc.preprocess = "none" overrides it. */
static void test_preprocess(void) {
  lensnet_model *a = new_model(ARCH, 3), *b = new_model(ARCH, 3), *c = new_model(ARCH, 3), *plain = new_model(ARCH, 3);
  lensnet_error err;
  progress_log log;
  lensnet_adapt_desc d = base_desc("adda", NULL, &log);
  const char *v;
  d.epochs = 1;
  lensnet_model_set_meta(a, "preprocess", "minmax");
  lensnet_model_set_meta(b, "preprocess", "minmax");
  lensnet_model_set_meta(c, "preprocess", "minmax");
  CHECK(lensnet_adapt(a, &d, &err) == LENSNET_OK && (v = lensnet_model_meta(a, "preprocess")) && !strcmp(v, "minmax"),
        "desc.minmax 0 on a min-max model: adapted with min-max, and says so");
  d.minmax = 1;
  CHECK(lensnet_adapt(b, &d, &err) == LENSNET_OK && same_values(a, b), "the same weights as desc.minmax = 1, bit for bit");
  d.minmax = 0;
  d.preprocess = "none";
  CHECK(lensnet_adapt(c, &d, &err) == LENSNET_OK && (v = lensnet_model_meta(c, "preprocess")) && !strcmp(v, "none") && !same_values(a, c),
        "desc.preprocess \"none\" overrides the model's metadata");
  d.preprocess = NULL;
  CHECK(lensnet_adapt(plain, &d, &err) == LENSNET_OK && (v = lensnet_model_meta(plain, "preprocess")) && !strcmp(v, "none"),
        "a model that states nothing: none");
  d.preprocess = "zscore";
  CHECK(lensnet_adapt(plain, &d, &err) == LENSNET_ERR_ARG && strstr(err.message, "zscore"), "an unknown preprocess: %s", err.message);
  d.preprocess = NULL;
  lensnet_model_set_meta(plain, "preprocess", "zscore");
  CHECK(lensnet_adapt(plain, &d, &err) == LENSNET_ERR_FORMAT && strstr(err.message, "zscore"), "a model's unknown preprocess: %s", err.message);
  lensnet_model_free(a);
  lensnet_model_free(b);
  lensnet_model_free(c);
  lensnet_model_free(plain);
}

/* The settings table: every setting parsed back from its formatted value, ranges and choices kept. */
static void test_settings(void) {
  size_t n, i;
  const lensnet_fit_setting *s = lensnet_adapt_settings(&n);
  lensnet_adapt_desc d, back;
  lensnet_error err;
  int round = 1;
  memset(&d, 0, sizeof d);
  memset(&back, 0, sizeof back);
  for (i = 0; i < n; i++) {
    char text[128], again[128];
    lensnet_adapt_setting_format(&d, &s[i], text, sizeof text);
    if (lensnet_adapt_setting_parse(&back, &s[i], text, &err) != LENSNET_OK) { round = 0; printf("   %s: %s\n", s[i].name, err.message); continue; }
    lensnet_adapt_setting_format(&back, &s[i], again, sizeof again);
    if (strcmp(text, again)) { round = 0; printf("   %s: %s then %s\n", s[i].name, text, again); }
  }
  CHECK(n == 15 && round, "%lu settings, each formatted and parsed back to itself", (unsigned long)n);
  for (i = 0; i < n && strcmp(s[i].name, "method"); i++) {}
  CHECK(i < n && lensnet_adapt_setting_parse(&d, &s[i], "mixup", &err) == LENSNET_ERR_ARG && strstr(err.message, "adda|adamatch|self-ensembling|adabn"),
        "method takes its choices only: %s", err.message);
  for (i = 0; i < n && strcmp(s[i].name, "tau"); i++) {}
  CHECK(i < n && lensnet_adapt_setting_parse(&d, &s[i], "1.5", &err) == LENSNET_ERR_ARG, "tau above 1 is refused: %s", err.message);
  { /* a 0 would become the default without a word (a zeroed desc field means the default): refused */
    static const char *const zero_is_default[] = {"epochs", "batch", "lr", "disc_width", "disc_lr", "tau", "ema", "confidence",
                                                  "consistency_weight"};
    size_t z, refused = 0;
    for (z = 0; z < sizeof zero_is_default / sizeof zero_is_default[0]; z++) {
      for (i = 0; i < n && strcmp(s[i].name, zero_is_default[z]); i++) {}
      if (i < n && lensnet_adapt_setting_parse(&d, &s[i], "0", &err) == LENSNET_ERR_ARG) refused++;
      else printf("   %s 0 accepted\n", zero_is_default[z]);
    }
    CHECK(refused == sizeof zero_is_default / sizeof zero_is_default[0], "%lu of 9 settings refuse 0, which would mean their default",
          (unsigned long)refused);
    for (i = 0; i < n && strcmp(s[i].name, "shift"); i++) {}
    CHECK(i < n && lensnet_adapt_setting_parse(&d, &s[i], "0", &err) == LENSNET_OK, "shift 0 (documented as the default) is taken");
  }
}

/* The views' symmetries (adamatch and self-ensembling): with "rot180" every weak view is the image
 * or its half turn, both seen; with "none" the image; with "flip-rot90" also flips and quarter
 * turns. The setting is saved, resumed, and refused with another value. */
static void test_views(void) {
  static const char *const views[3] = {"rot180", "none", "flip-rot90"};
  lensnet_model *m = new_model(ARCH, 3), *run = new_model(ARCH, 3);
  lensnet__adapt a;
  lensnet_error err;
  progress_log log;
  lensnet_adapt_desc d;
  float img[64], half[64], view[64], buf[64];
  int k, i, y, x;
  for (i = 0; i < 64; i++) img[i] = (float)((i * i + 3 * i) % 17); /* no symmetry */
  for (y = 0; y < 8; y++)
    for (x = 0; x < 8; x++) half[y * 8 + x] = img[(7 - y) * 8 + 7 - x];
  for (k = 0; k < 3; k++) {
    int same = 0, turned = 0, other = 0, v;
    memset(&a, 0, sizeof a);
    a.m = m; a.per = 64; a.img = buf;
    a.d = lensnet_adapt_desc_resolve(NULL);
    a.d.views = views[k];
    a.d.shift = -1; a.d.noise = -1; /* strong views without the shift and noise: the symmetries alone */
    lensnet_rng_seed(&a.data_rng, 5);
    for (i = 0; i < 400; i++) {
      lensnet__adapt_view(&a, img, view, 1 + i % 2);
      v = !memcmp(view, img, sizeof view) ? 0 : !memcmp(view, half, sizeof view) ? 1 : 2;
      same += v == 0; turned += v == 1; other += v == 2;
    }
    printf("   %-10s of 400 views: %d the image, %d its half turn, %d another\n", views[k], same, turned, other);
    if (k == 0) CHECK(same > 100 && turned > 100 && other == 0, "rot180: the image or its half turn, both");
    if (k == 1) CHECK(same == 400, "none: the image");
    if (k == 2) CHECK(other > 100 && same > 0 && turned > 0, "flip-rot90: flips and quarter turns too");
  }
  d = base_desc("adamatch", NULL, &log);
  d.views = "rot90";
  CHECK(lensnet_adapt(run, &d, &err) == LENSNET_ERR_ARG && strstr(err.message, "views 'rot90'"), "another value is refused: %s", err.message);
  d.views = "rot180";
  d.epochs = 1;
  CHECK(lensnet_adapt(run, &d, &err) == LENSNET_OK && lensnet_model_meta(run, "adapt.views") && !strcmp(lensnet_model_meta(run, "adapt.views"), "rot180"),
        "a run with rot180 records it (adapt.views)");
  lensnet_model_free(m);
  lensnet_model_free(run);
}

/* ---- a domain shift ----------------------------------------------------------------------------
 * Source: rings and discs; target: the same shapes twice as bright on a pedestal of 1, which the
 * source classifier calls all one class. ADDA must move the target features back under the
 * classifier; the other two are printed (consistency and pseudo-labels cannot fix a classifier
 * that gives every target image the same confident class). */

static double accuracy(const lensnet_model *m, const lensnet_tensor *x, const float *labels) {
  float logits[2];
  size_t i, n = x->shape[0], per = SIDE * SIDE, correct = 0;
  for (i = 0; i < n; i++) {
    lensnet_model_forward(m, 1, x->data + i * per, logits, NULL, NULL);
    correct += (logits[1] > logits[0]) == (labels[i] > 0.5f);
  }
  return (double)correct / (double)n;
}

#define N_SHIFT 192
static float shift_src[N_SHIFT * 64], shift_src_labels[N_SHIFT], shift_tgt[N_SHIFT * 64], shift_tgt_labels[N_SHIFT];

/* A trainer with no_dropout: in training mode a network with dropout (p = 0.5, and no batch norm)
 * gives what inference gives, and its gradients are those of the same network with p = 0. */
#define ARCH_DROP "input 1 8 8\nconv2d name=c1 out=4 kernel=3 padding=1\nrelu\ndropout p=0.5\nmaxpool kernel=2\n" \
                  "flatten\ndropout p=0.5\ndense name=fc1 out=8\nrelu\ndense name=fc2 out=2"
#define ARCH_DROP0 "input 1 8 8\nconv2d name=c1 out=4 kernel=3 padding=1\nrelu\ndropout p=0\nmaxpool kernel=2\n" \
                   "flatten\ndropout p=0\ndense name=fc1 out=8\nrelu\ndense name=fc2 out=2"
static void test_no_dropout(void) {
  lensnet_model *m = new_model(ARCH_DROP, 5), *m0 = new_model(ARCH_DROP0, 5);
  lensnet_trainer *t = NULL, *t0 = NULL, *td = NULL;
  lensnet_trainer_desc desc;
  float out[4 * 2], labels[4] = {0, 1, 1, 0}, grad[4 * 2];
  const float *x = src_data;
  size_t k, n;
  double dmax = 0, gmax = 0, gdiff = 0, ddiff = 0;
  if (!m || !m0) { CHECK(0, "models"); return; }
  memcpy(m0->values, m->values, m->value_count * sizeof(float));
  memset(&desc, 0, sizeof desc);
  desc.batch_cap = 4; desc.seed = 3;
  CHECK(lensnet_trainer_create(m0, &desc, &t0, NULL) == LENSNET_OK && lensnet_trainer_create(m, &desc, &td, NULL) == LENSNET_OK, "trainers");
  desc.no_dropout = 1;
  CHECK(lensnet_trainer_create(m, &desc, &t, NULL) == LENSNET_OK, "a trainer with no_dropout");
  if (!t || !t0 || !td) return;
  CHECK(lensnet_model_forward(m, 4, x, out, NULL, NULL) == LENSNET_OK, "inference");
  lensnet_trainer_forward(t, 4, x, 1, NULL, NULL);
  for (k = 0; k < 8; k++) { double d = fabs(lensnet_trainer_output(t)[k] - out[k]); if (d > dmax) dmax = d; }
  CHECK(dmax == 0, "training mode with no_dropout gives inference's outputs (max difference %g)", dmax);
  lensnet_trainer_forward(td, 4, x, 1, NULL, NULL);
  for (k = 0; k < 8; k++) { double d = fabs(lensnet_trainer_output(td)[k] - out[k]); if (d > ddiff) ddiff = d; }
  CHECK(ddiff > 1e-3, "an ordinary trainer in training mode does drop (difference %g)", ddiff);
  lensnet_loss_cross_entropy(lensnet_trainer_output(t), labels, 4, 2, NULL, grad);
  lensnet_trainer_zero_grad(t);
  lensnet_trainer_backward(t, 4, grad, NULL);
  lensnet_trainer_forward(t0, 4, x, 1, NULL, NULL);
  lensnet_loss_cross_entropy(lensnet_trainer_output(t0), labels, 4, 2, NULL, grad);
  lensnet_trainer_zero_grad(t0);
  lensnet_trainer_backward(t0, 4, grad, NULL);
  n = m->value_count;
  for (k = 0; k < n; k++) {
    double a = lensnet_trainer_grads(t)[k], b = lensnet_trainer_grads(t0)[k];
    if (fabs(a - b) > gdiff) gdiff = fabs(a - b);
    if (fabs(b) > gmax) gmax = fabs(b);
  }
  CHECK(gmax > 0 && gdiff == 0, "its gradients are those of the network with p = 0 (largest %g, difference %g)", gmax, gdiff);
  lensnet_trainer_free(t); lensnet_trainer_free(t0); lensnet_trainer_free(td);
  lensnet_model_free(m); lensnet_model_free(m0);
}

static void test_domain_shift(void) {
  lensnet_tensor s = as_tensor(shift_src, N_SHIFT), t = as_tensor(shift_tgt, N_SHIFT);
  lensnet_model *m = new_model(ARCH_PLAIN, 21), *adapted = NULL;
  lensnet_fit_desc fd;
  lensnet_error err;
  double src_acc, before, after;
  int k;
  make_blobs(shift_src, shift_src_labels, N_SHIFT, 31, 1.0f, 0.0f);
  make_blobs(shift_tgt, shift_tgt_labels, N_SHIFT, 32, 2.0f, 1.0f); /* twice as bright, on a pedestal */
  memset(&fd, 0, sizeof fd);
  fd.images = &s; fd.labels = shift_src_labels; fd.epochs = 12; fd.batch = 16; fd.lr = 0.01; fd.val_fraction = -1; fd.seed = 2;
  CHECK(m && lensnet_fit(m, &fd, &err) == LENSNET_OK, "the source classifier trains");
  if (!m) return;
  src_acc = accuracy(m, &s, shift_src_labels);
  before = accuracy(m, &t, shift_tgt_labels);
  for (k = 0; k < 3; k++) {
    progress_log log;
    lensnet_adapt_desc d;
    adapted = NULL;
    lensnet__adapt_clone(m, &adapted, &err);
    d = base_desc(methods[k], NULL, &log);
    d.source = &s; d.source_labels = shift_src_labels; d.target = &t; d.target_labels = NULL;
    d.epochs = 20; d.batch = 32;
    CHECK(adapted && lensnet_adapt(adapted, &d, &err) == LENSNET_OK, "%s on the shifted domain", d.method);
    after = adapted ? accuracy(adapted, &t, shift_tgt_labels) : 0;
    printf("   %-16s source accuracy %.3f; target accuracy %.3f before, %.3f after\n", d.method, src_acc, before, after);
    if (k == 0) CHECK(after > before + 0.1, "adda improves the target accuracy (%.3f -> %.3f)", before, after);
    lensnet_model_free(adapted);
  }
  lensnet_model_free(m);
  /* adabn needs batch norm: a classifier with it, and a stronger shift (4 times as bright on a
   * pedestal of 3), since batch norm's source statistics already carry it through the one above.
   * The brightness and the pedestal reach the first batch norm as an affine change of each
   * channel (the convolution is linear; only the zero padding at the border differs), which the
   * target's statistics undo: the target accuracy should come back to about the source's. */
  make_blobs(shift_tgt, shift_tgt_labels, N_SHIFT, 32, 4.0f, 3.0f);
  m = new_model(ARCH, 21);
  CHECK(m && lensnet_fit(m, &fd, &err) == LENSNET_OK, "a source classifier with batch norm trains");
  if (!m) return;
  src_acc = accuracy(m, &s, shift_src_labels);
  before = accuracy(m, &t, shift_tgt_labels);
  adapted = NULL;
  lensnet__adapt_clone(m, &adapted, &err);
  {
    progress_log log;
    lensnet_adapt_desc d = base_desc("adabn", NULL, &log);
    d.source = NULL; d.source_labels = NULL; d.target = &t; d.target_labels = NULL;
    CHECK(adapted && lensnet_adapt(adapted, &d, &err) == LENSNET_OK, "adabn on the shifted domain");
  }
  after = adapted ? accuracy(adapted, &t, shift_tgt_labels) : 0;
  printf("   %-16s source accuracy %.3f; target accuracy %.3f before, %.3f after\n", "adabn", src_acc, before, after);
  CHECK(after > before + 0.1 && after >= src_acc - 0.05, "adabn brings the target accuracy (%.3f -> %.3f) to about the source's (%.3f)",
        before, after, src_acc);
  lensnet_model_free(adapted);
  lensnet_model_free(m);
}

/* adda's disc_lr: by default the encoder's rate (the same run bit for bit as naming it); another
 * rate changes the run; a checkpoint from before the setting resumes at the encoder's rate. */
static void test_disc_lr(void) {
  lensnet_model *a = new_model(ARCH, 3), *b = new_model(ARCH, 3), *c = new_model(ARCH, 3), *stopped = new_model(ARCH, 3);
  lensnet_model *resumed = NULL;
  lensnet_error err;
  progress_log log;
  lensnet_adapt_desc d = base_desc("adda", NULL, &log), r;
  const char *dir = "build/test_adapt_disc_lr";
  char path[128];
  FILE *f;
  d.lr = 3e-4;
  r = lensnet_adapt_desc_resolve(&d);
  CHECK(r.disc_lr == 3e-4, "disc_lr defaults to lr (%g)", r.disc_lr);
  d.disc_lr = 1e-3;
  r = lensnet_adapt_desc_resolve(&d);
  CHECK(r.disc_lr == 1e-3 && r.lr == 3e-4, "disc_lr given stays (%g, lr %g)", r.disc_lr, r.lr);
  d = base_desc("adda", NULL, &log);
  CHECK(lensnet_adapt(a, &d, &err) == LENSNET_OK, "adda, the default rates");
  d = base_desc("adda", NULL, &log);
  d.disc_lr = 2e-4; /* adda's default lr, named */
  CHECK(lensnet_adapt(b, &d, &err) == LENSNET_OK && same_values(a, b), "disc_lr = lr named: the default run, bit for bit");
  d = base_desc("adda", NULL, &log);
  d.disc_lr = 2e-3;
  CHECK(lensnet_adapt(c, &d, &err) == LENSNET_OK && !same_values(a, c), "another disc_lr: another encoder");
  CHECK(c && lensnet_model_meta(c, "adapt.disc_lr") && atof(lensnet_model_meta(c, "adapt.disc_lr")) == 2e-3, "adapt.disc_lr in the metadata");
  /* a checkpoint without adapt.disc_lr (its key renamed in place, the header keeps its length) */
  mkdir(dir, 0755);
  d = base_desc("adda", dir, &log);
  log.stop_after = 1;
  CHECK(lensnet_adapt(stopped, &d, &err) == LENSNET_OK, "stopped after epoch 1");
  snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
  if ((f = fopen(path, "r+b")) != NULL) {
    unsigned char head[8];
    size_t n = 0, i, k, hits = 0;
    char *json;
    if (fread(head, 1, 8, f) == 8)
      for (i = 0; i < 8; i++) n |= (size_t)head[i] << (8 * i);
    json = (char *)malloc(n + 1);
    if (json && n > 0 && fread(json, 1, n, f) == n) {
      json[n] = 0;
      for (k = 0; k + 15 <= n; k++)
        if (!memcmp(json + k, "\"adapt.disc_lr\"", 15)) { memcpy(json + k, "\"adapt.disc_xx\"", 15); hits++; }
      fseek(f, 8, SEEK_SET);
      fwrite(json, 1, n, f);
    }
    fclose(f);
    free(json);
    CHECK(hits == 1, "the checkpoint named adapt.disc_lr once (%lu)", (unsigned long)hits);
  } else CHECK(0, "no %s", path);
  d = base_desc("adda", NULL, &log);
  CHECK(lensnet_adapt_resume(dir, &d, &resumed, &err) == LENSNET_OK, "a checkpoint without adapt.disc_lr resumes: %s", err.message);
  CHECK(same_values(a, resumed), "at the encoder's rate: the uninterrupted default run, bit for bit");
  lensnet_model_free(a); lensnet_model_free(b); lensnet_model_free(c); lensnet_model_free(stopped); lensnet_model_free(resumed);
}


/* ---- adabn ------------------------------------------------------------------------------------
 * The reference for the statistics is the engine's batch norm in training mode: with momentum=1
 * its running mean and variance after one pass over all the target images as a single batch are
 * those images' mean and unbiased variance, layer by layer. The two differ only in how a lower
 * layer normalises while the upper one is measured (the batch's biased variance against adabn's
 * unbiased running one, a factor sqrt(1 - 1/n) with n = 48 x 4 x 64 values a channel), so they
 * agree to about 1e-4 of the statistic, not bit for bit. */
#define ARCH_P4BN(mom) "input 1 8 8\np4_lift name=lift out=2 kernel=3 padding=1 bias=0\nbatchnorm name=bn0 orientations=4" mom "\nrelu\n" \
                       "p4_conv name=c1 out=3 kernel=3 padding=1\nbatchnorm name=bn1 orientations=4" mom "\nrelu\np4_pool mode=max\n" \
                       "global_avgpool\ndense name=fc out=2"

static const float *param_of(const lensnet_model *m, const char *name) {
  size_t i;
  for (i = 0; i < m->param_count; i++)
    if (!strcmp(m->params[i].name, name)) return m->values + m->params[i].offset;
  return NULL;
}

static void test_adabn(void) {
  lensnet_model *m = new_model(ARCH_P4BN(""), 5), *ref = new_model(ARCH_P4BN(" momentum=1"), 5), *start = new_model(ARCH_P4BN(""), 5);
  lensnet_model *b5 = new_model(ARCH_P4BN(""), 5), *threaded = new_model(ARCH_P4BN(""), 5), *with_src = new_model(ARCH_P4BN(""), 5);
  lensnet_model *plain = new_model(ARCH_PLAIN, 3), *resumed = NULL;
  lensnet_trainer *t = NULL;
  lensnet_trainer_desc td;
  lensnet_error err;
  progress_log log;
  lensnet_adapt_desc d;
  lens_pool *pool = lens_pool_create(3);
  lensnet_parallel par = lens_pool_parallel(pool);
  const char *names[4] = {"bn0.running_mean", "bn0.running_var", "bn1.running_mean", "bn1.running_var"};
  size_t counts[4] = {2, 2, 3, 3}, i, k, moved = 0, others = 0;
  double worst = 0, change = 0;
  const char *dir = "build/test_adapt_adabn";
  char path[128], line[256];
  FILE *f;
  if (!m || !ref || !start || !b5 || !threaded || !with_src || !plain) { CHECK(0, "the models"); return; }
  /* running statistics far from the target's, as a source model's would be */
  for (k = 0; k < 4; k++) {
    float *v = (float *)param_of(m, names[k]);
    for (i = 0; v && i < counts[k]; i++) v[i] = k % 2 ? 0.3f : -0.7f;
  }
  memcpy(start->values, m->values, m->value_count * sizeof(float));
  memcpy(b5->values, m->values, m->value_count * sizeof(float));
  memcpy(threaded->values, m->values, m->value_count * sizeof(float));
  memcpy(with_src->values, m->values, m->value_count * sizeof(float));
  memcpy(ref->values, m->values, m->value_count * sizeof(float));
  mkdir(dir, 0755);
  d = base_desc("adabn", dir, &log);
  d.source = NULL; d.source_labels = NULL; d.epochs = 0; d.batch = 16; d.target_labels = NULL;
  CHECK(lensnet_adapt(m, &d, &err) == LENSNET_OK, "adabn without source images: %s", err.message);
  CHECK(log.epochs_seen == 1 && log.finite, "one epoch (%d) with finite statistics", log.epochs_seen);
  printf("   adabn: mean_shift %.4f, std_change %.4f\n", log.loss[0], log.loss[1]);
  /* the reference */
  memset(&td, 0, sizeof td);
  td.batch_cap = N_TGT;
  CHECK(lensnet_trainer_create(ref, &td, &t, &err) == LENSNET_OK && lensnet_trainer_forward(t, N_TGT, tgt_data, 1, NULL, &err) == LENSNET_OK,
        "the reference pass in training mode");
  for (k = 0; k < 4; k++) {
    const float *a = param_of(m, names[k]), *r = param_of(ref, names[k]), *s0 = param_of(start, names[k]);
    for (i = 0; a && r && s0 && i < counts[k]; i++) {
      double e = fabs((double)a[i] - r[i]) / (fabs((double)r[i]) + 1e-3);
      if (e > worst) worst = e;
      if (fabs((double)a[i] - s0[i]) > change) change = fabs((double)a[i] - s0[i]);
    }
  }
  printf("   largest relative difference from the training-mode statistics: %.2e (largest change %.3f)\n", worst, change);
  CHECK(worst < 1e-3 && change > 0.1, "bn0's and bn1's statistics are the target images' (relative difference %.2e)", worst);
  for (k = 0; k < m->param_count; k++) {
    const lensnet_param *P = &m->params[k];
    int stat = strstr(P->name, "running_") != NULL, same = !memcmp(m->values + P->offset, start->values + P->offset, P->count * sizeof(float));
    moved += stat && !same;
    others += !stat && !same;
  }
  CHECK(moved == 4 && others == 0, "only the running statistics change (%lu of 4 moved, %lu others)", (unsigned long)moved, (unsigned long)others);
  d = base_desc("adabn", NULL, &log);
  d.source = NULL; d.source_labels = NULL; d.batch = 5; d.target_labels = NULL;
  CHECK(lensnet_adapt(b5, &d, &err) == LENSNET_OK && same_values(m, b5), "a batch of 5 gives the statistics of 16, bit for bit");
  d.batch = 16; d.parallel = &par;
  CHECK(lensnet_adapt(threaded, &d, &err) == LENSNET_OK && same_values(m, threaded), "3 threads give those of 1, bit for bit");
  d = base_desc("adabn", NULL, &log);
  d.batch = 16; d.target_labels = NULL;
  CHECK(lensnet_adapt(with_src, &d, &err) == LENSNET_OK && same_values(m, with_src), "source images given are not read");
  d = base_desc("adabn", NULL, &log);
  CHECK(lensnet_adapt(plain, &d, &err) == LENSNET_ERR_ARG && strstr(err.message, "batch norm"), "a model without batch norm: %s", err.message);
  snprintf(path, sizeof path, "%s/history.csv", dir);
  if ((f = fopen(path, "r")) != NULL) {
    int lines = 0, header = 0;
    while (fgets(line, sizeof line, f)) header |= lines++ == 0 && !strncmp(line, "epoch,mean_shift,std_change,", 28);
    fclose(f);
    CHECK(lines == 2 && header, "history.csv: the header of adabn's two statistics and one row (%d lines)", lines);
  } else CHECK(0, "no %s", path);
  d = base_desc("adabn", NULL, &log);
  d.source = NULL; d.source_labels = NULL; d.target_labels = NULL;
  CHECK(lensnet_adapt_resume(dir, &d, &resumed, &err) == LENSNET_OK && same_values(m, resumed) && log.epochs_seen == 0,
        "resuming the complete run: the same model, nothing run again");
  CHECK(resumed && lensnet_model_meta(resumed, "adapt.method") && !strcmp(lensnet_model_meta(resumed, "adapt.method"), "adabn") &&
            lensnet_model_meta(resumed, "adapt.epochs") && !strcmp(lensnet_model_meta(resumed, "adapt.epochs"), "1"),
        "adapt.method adabn, adapt.epochs 1");
  lensnet_trainer_free(t);
  lens_pool_free(pool);
  lensnet_model_free(m); lensnet_model_free(ref); lensnet_model_free(start); lensnet_model_free(b5); lensnet_model_free(threaded);
  lensnet_model_free(with_src); lensnet_model_free(plain); lensnet_model_free(resumed);
}

/* adabn's edges: a batch norm above the classifier keeps its statistics (as adda keeps the
 * classifier's); a channel far from zero keeps its variance's digits (against a two-pass sum in
 * the test); a layer with one value per channel, and a pixel of 1e30, are refused. */
static void test_adabn_edges(void) {
  lensnet_model *top = new_model("input 1 8 8\nconv2d name=c1 out=2 kernel=3 padding=1\nbatchnorm name=bn0\nrelu\nflatten\n"
                                 "dense name=fc out=2\nbatchnorm name=bntop", 7);
  lensnet_model *first = new_model("input 1 8 8\nbatchnorm name=bn0\nflatten\ndense name=fc out=2", 7);
  lensnet_model *dense_bn = new_model("input 1 8 8\nflatten\ndense name=h out=4\nbatchnorm name=bnh\nrelu\ndense name=fc out=2", 7);
  static float far[N_TGT * SIDE * SIDE];
  lensnet_tensor t = as_tensor(far, N_TGT), one = as_tensor(tgt_data, 1);
  lensnet_error err;
  progress_log log;
  lensnet_adapt_desc d;
  float before[2];
  double sum = 0, sq = 0, mean, var, got;
  size_t i, n = N_TGT * SIDE * SIDE;
  lensnet_rng rng;
  if (!top || !first || !dense_bn) { CHECK(0, "the models"); return; }
  memcpy(before, param_of(top, "bntop.running_mean"), sizeof before);
  d = base_desc("adabn", NULL, &log);
  d.source = NULL; d.source_labels = NULL; d.target_labels = NULL;
  CHECK(lensnet_adapt(top, &d, &err) == LENSNET_OK && !memcmp(before, param_of(top, "bntop.running_mean"), sizeof before) &&
            param_of(top, "bn0.running_mean")[0] != 0.0f,
        "a batch norm above the classifier keeps its statistics; the one below moves");
  lensnet_rng_seed(&rng, 9);
  for (i = 0; i < n; i++) far[i] = 1e6f + 3.0f * lensnet_rng_normal(&rng);
  for (i = 0; i < n; i++) sum += far[i];
  mean = sum / (double)n;
  for (i = 0; i < n; i++) sq += (far[i] - mean) * (far[i] - mean);
  var = sq / (double)(n - 1);
  d = base_desc("adabn", NULL, &log);
  d.source = NULL; d.source_labels = NULL; d.target = &t; d.target_labels = NULL; d.preprocess = "none";
  CHECK(lensnet_adapt(first, &d, &err) == LENSNET_OK, "adabn on images of 1e6 + 3 N(0, 1): %s", err.message);
  got = param_of(first, "bn0.running_var")[0];
  printf("   variance about a mean of 1e6: %.6f against %.6f by two passes\n", got, var);
  CHECK(fabs(got - var) < 1e-5 * var && fabs(param_of(first, "bn0.running_mean")[0] - mean) < 1e-6 * mean,
        "its mean and variance agree with the two-pass sums to float's precision");
  d = base_desc("adabn", NULL, &log);
  d.source = NULL; d.source_labels = NULL; d.target = &one; d.target_labels = NULL;
  CHECK(lensnet_adapt(dense_bn, &d, &err) == LENSNET_ERR_SHAPE && strstr(err.message, "bnh") && strstr(err.message, "at least 2"),
        "one target image and a batch norm with one value per channel: refused: %s", err.message);
  far[5] = 1e30f;
  d = base_desc("adabn", NULL, &log);
  d.source = NULL; d.source_labels = NULL; d.target = &t; d.target_labels = NULL; d.preprocess = "none";
  CHECK(lensnet_adapt(first, &d, &err) == LENSNET_ERR_FORMAT && strstr(err.message, "bn0") && strstr(err.message, "beyond float"),
        "a pixel of 1e30: refused, naming the layer: %s", err.message);
  {
    lensnet_model *m = new_model(ARCH_P4BN(""), 5);
    d = base_desc("adabn", NULL, &log);
    d.source = NULL; d.source_labels = NULL; d.target_labels = NULL;
    CHECK(m && lensnet_adapt(m, &d, &err) == LENSNET_OK && lensnet_model_meta(m, "adapt.batch") && !lensnet_model_meta(m, "adapt.lr") &&
              !lensnet_model_meta(m, "adapt.tau") && !lensnet_model_meta(m, "adapt.seed"),
          "the metadata holds the settings adabn uses, not the others");
    lensnet_model_free(m);
  }
  lensnet_model_free(top); lensnet_model_free(first); lensnet_model_free(dense_bn);
}

int main(void) {
  make_blobs(src_data, src_labels, N_SRC, 12, 1.0f, 0.0f);
  make_blobs(tgt_data, tgt_labels, N_TGT, 13, 2.0f, 0.5f);
  source = as_tensor(src_data, N_SRC);
  target = as_tensor(tgt_data, N_TGT);
  TEST("the backward pass from a layer's output against finite differences") test_backward_from();
  TEST("each method runs with finite losses") test_methods_run();
  TEST("resume equals an uninterrupted run; threads do not change it") test_resume_and_threads();
  TEST("the report's target accuracy and AUC, two classes and three (macro)") test_report();
  TEST("bad input gets clear errors") test_errors();
  TEST("adda's discriminator rate") test_disc_lr();
  TEST("the settings table") test_settings();
  TEST("the scaling follows the model's preprocess unless desc says otherwise") test_preprocess();
  TEST("the views' symmetries: flips and quarter turns, half turns, none") test_views();
  TEST("no_dropout: dropout is the identity in training mode, gradients as with p = 0") test_no_dropout();
  TEST("a domain shift that adaptation reduces") test_domain_shift();
  TEST("adabn: the target's batch-norm statistics, exactly, and nothing else") test_adabn();
  TEST("adabn: the classifier's own, far from zero, too few values, too large") test_adabn_edges();
  return check_summary();
}
