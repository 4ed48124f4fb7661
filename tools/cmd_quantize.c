/* lens quantize: a model made to run its layers in 8 bits (lensnet_quantize), calibrated on
 * images, written as a quantised safetensors that lens predict runs unchanged; then how far its
 * scores are from the float model's, and how much faster it is. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lens_cmds.h"
#include "cli.h"
#include "options.h"
#include "lensviz.h"

typedef struct {
  const char *model, *calibration, *out, *test, *labels;
  size_t n;
  double percentile;
  int quantize_first;
} quantize_args;
static const lens_option quantize_rows[] = {
  LENS_TEXT(quantize_args, "model", LENS_OPT_REQUIRED, model, NULL, "M.safetensors", "the float model to quantise"),
  LENS_TEXT(quantize_args, "calibration", LENS_OPT_REQUIRED, calibration, NULL, "IMAGES.npy",
            "images [N, bands, height, width] like those the model will see (the model's min-max scaling is applied, as in lens predict)"),
  LENS_SIZE(quantize_args, "n", n, 1, 1000000, 64, "N", "calibration images used: the first N (default 64; fewer if the file has fewer)"),
  LENS_TEXT(quantize_args, "out", LENS_OPT_REQUIRED, out, NULL, "Q.safetensors", "where the quantised model is written"),
  LENS_DOUBLE(quantize_args, "percentile", percentile, 50, 100, 100, "P",
              "range kept of each layer's input: this percentile of |x| over the calibration images (default 100: the maximum)"),
  LENS_FLAG(quantize_args, "quantize-first", quantize_first, "run the first layer (the one reading the image) in 8 bits too"),
  LENS_TEXT(quantize_args, "test", 0, test, NULL, "IMAGES.npy", "report agreement on these images instead of the calibration images"),
  LENS_TEXT(quantize_args, "labels", 0, labels, NULL, "labels.csv", "classes of the report's images: AUC float vs int8 (column label, class or is_lens)"),
};
static const lens_option_section quantize_sections[] = {{NULL, quantize_rows, 8}};
static const lens_command_spec quantize_spec = {
  "quantize", "usage: lens quantize --model M.safetensors --calibration IMAGES.npy [--n N] --out Q.safetensors [--test IMAGES.npy --labels labels.csv]\n",
  "Convolutions and dense layers run with int8 weights (one scale per output channel) and uint8 inputs\n"
  "(one calibrated scale per layer), int32 sums; the rest stays float, so lens predict runs Q unchanged.\n"
  "Then reports, on --test (or the calibration images): max and mean |p_lens difference| against the\n"
  "float model, class agreement, AUC of both with --labels, and images per second of both.\n", NULL, quantize_sections, 1, NULL};

/* Rows [0, n) of an .npy stack, prepared for the model as lens predict prepares them (its
 * min-max scaling if it asks for one; NaN and infinite pixels set to 0, with a note). */
static int quantize_images(const char *path, size_t want, const lensnet_model *m, int minmax, lensnet_tensor *x) {
  lensnet_npy_info info;
  lensnet_error err;
  lensnet_cutout_desc desc;
  lensnet_cutout_report rep;
  size_t i, per = m->in_c * m->in_h * m->in_w, nan_pixels = 0, inf_pixels = 0;
  float *tmp;
  if (lensnet_npy_info_read(path, &info, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (info.ndim != 4 || info.shape[1] != m->in_c || info.shape[2] != m->in_h || info.shape[3] != m->in_w)
    return lens_fail("%s: images must be [N, %lu, %lu, %lu] for this model", path, (unsigned long)m->in_c, (unsigned long)m->in_h,
                     (unsigned long)m->in_w);
  if (info.shape[0] == 0) return lens_fail("%s holds no images", path);
  if (want > info.shape[0]) want = info.shape[0];
  if (lensnet_npy_read_rows(path, 0, want, x, &err) != LENSNET_OK) return lens_fail_err(&err);
  { /* planes named beside the stack (lens sim's bands.txt) go to the model's bands by name, as lens predict feeds them */
    lens_band_notes notes;
    int rc;
    memset(&notes, 0, sizeof notes);
    if ((rc = lens_npy_planes_by_name(m, path, x->data, want, m->in_h * m->in_w, &notes)) != 0) { lensnet_tensor_free(x); return rc; }
  }
  if (!(tmp = (float *)malloc(per * sizeof(float)))) { lensnet_tensor_free(x); return lens_fail("out of memory"); }
  memset(&desc, 0, sizeof desc);
  desc.minmax = minmax;
  for (i = 0; i < want; i++) {
    memcpy(tmp, x->data + i * per, per * sizeof(float));
    if (lensnet_cutout_prepare(m, &desc, tmp, m->in_c, m->in_h, m->in_w, x->data + i * per, &rep, &err) != LENSNET_OK) {
      free(tmp);
      lensnet_tensor_free(x);
      return lens_fail("%s[%lu]: %s", path, (unsigned long)i, err.message);
    }
    nan_pixels += rep.nan_pixels;
    inf_pixels += rep.inf_pixels;
  }
  free(tmp);
  if (nan_pixels) fprintf(stderr, "lens: note: %s: %lu NaN (blank) pixels were set to 0\n", path, (unsigned long)nan_pixels);
  if (inf_pixels) fprintf(stderr, "lens: note: %s: %lu infinite pixels were set to 0\n", path, (unsigned long)inf_pixels);
  return 0;
}

/* Nonzero when every image of x is one value throughout (nothing to calibrate ranges on). */
static int quantize_all_constant(const lensnet_tensor *x, size_t per) {
  size_t i, k;
  for (i = 0; i < x->shape[0]; i++)
    for (k = 1; k < per; k++)
      if (x->data[i * per + k] != x->data[i * per]) return 0;
  return 1;
}

/* Whether each of n images is of the class `lens` (the report's AUC is that class against the
 * rest), from a labels.csv read as lens train reads it (lensnet_csv_class_labels: the class
 * column, rows matched by an index column when there is one, classes 0..classes-1). */
static int quantize_labels(const char *path, size_t n, size_t classes, size_t lens, int *labels) {
  lensnet_csv t;
  lensnet_error err;
  float *c = (float *)malloc((n ? n : 1) * sizeof(float));
  size_t i;
  int rc = 0;
  if (!c) return lens_fail("out of memory");
  if (lensnet_csv_read(path, &t, &err) != LENSNET_OK) { free(c); return lens_fail_err(&err); }
  if (lensnet_csv_class_labels(&t, n, classes, c, &err) != LENSNET_OK) rc = lens_fail("%s: %s", path, err.message);
  for (i = 0; !rc && i < n; i++) labels[i] = (size_t)c[i] == lens;
  lensnet_csv_free(&t);
  free(c);
  return rc;
}

/* Scores of n images, one thread, in batches of 32; *seconds the time taken. */
static int quantize_scores(const lensnet_model *m, const float *x, size_t n, size_t lens, float *p, double *seconds) {
  lensnet_error err;
  size_t per = m->in_c * m->in_h * m->in_w, i, k;
  float logits[32 * 64];
  double t0 = lens_seconds();
  if (m->out_features > 64) return lens_fail("the model has %lu outputs; the report handles classifiers of at most 64", (unsigned long)m->out_features);
  for (i = 0; i < n; i += 32) {
    size_t b = n - i < 32 ? n - i : 32;
    if (lensnet_model_forward(m, b, x + i * per, logits, NULL, &err) != LENSNET_OK) return lens_fail_err(&err);
    for (k = 0; k < b; k++) p[i + k] = (float)lensnet_lens_probability(logits + k * m->out_features, m->out_features, lens);
  }
  *seconds = lens_seconds() - t0;
  return 0;
}

/* test: the --test images, read before the model was written (NULL: the calibration images);
 * labels: their classes, likewise (or NULL). */
static int quantize_report(const quantize_args *a, const lensnet_model *m, const lensnet_model *q, int minmax, const lensnet_tensor *test,
                           const int *labels) {
  lensnet_tensor own;
  const lensnet_tensor *x = test;
  float *pf = NULL, *pq = NULL;
  int rc = 0;
  size_t n, i, agree = 0, lens = 1;
  double worst = 0.0, sum = 0.0, tf = 0.0, tq = 0.0;
  memset(&own, 0, sizeof own);
  lensnet_model_class_index(m, "lens", &lens, NULL); /* the last class when none is named lens, as lens predict's p_lens */
  if (!x) {
    if ((rc = quantize_images(a->calibration, a->n, m, minmax, &own)) != 0) return rc;
    x = &own;
  }
  n = x->shape[0];
  pf = (float *)malloc(n * sizeof(float));
  pq = (float *)malloc(n * sizeof(float));
  if (!pf || !pq) rc = lens_fail("out of memory");
  if (!rc) rc = quantize_scores(m, x->data, n, lens, pf, &tf);
  if (!rc) rc = quantize_scores(q, x->data, n, lens, pq, &tq);
  if (!rc) {
    for (i = 0; i < n; i++) {
      double d = fabs((double)pf[i] - pq[i]);
      if (d > worst) worst = d;
      sum += d;
      agree += (pf[i] >= 0.5f) == (pq[i] >= 0.5f);
    }
    printf("agreement on %lu %s images: max |p_lens difference| %.4f, mean %.5f; same class (p >= 0.5) %lu/%lu\n", (unsigned long)n,
           a->test ? "test" : "calibration", worst, sum / (double)n, (unsigned long)agree, (unsigned long)n);
    if (labels) {
      double auc_f = 0.0, auc_q = 0.0;
      float *fpr = (float *)malloc((n + 1) * sizeof(float)), *tpr = (float *)malloc((n + 1) * sizeof(float));
      if (!fpr || !tpr) rc = lens_fail("out of memory");
      else if (!lensviz_roc(pf, labels, n, fpr, tpr, &auc_f) || !lensviz_roc(pq, labels, n, fpr, tpr, &auc_q))
        printf("AUC: not defined (the labels hold one class only)\n");
      else printf("AUC: float %.4f, int8 %.4f (change %+.4f)\n", auc_f, auc_q, auc_q - auc_f);
      free(fpr); free(tpr);
    }
    printf("speed (one thread, batches of 32): float %.1f img/s, int8 %.1f img/s (%s)\n", (double)n / tf, (double)n / tq,
           lensnet_simd_name(lensnet_i8_simd_best()));
  }
  free(pf); free(pq);
  lensnet_tensor_free(&own);
  return rc;
}

int lens_cmd_quantize(int argc, char **argv) {
  quantize_args a;
  lensnet_model *m = NULL, *q = NULL;
  lensnet_tensor cal, test;
  lensnet_error err;
  lensnet_quantize_desc desc;
  char text[512];
  int rc, minmax, *labels = NULL;
  memset(&a, 0, sizeof a);
  rc = lens_options_parse(&quantize_spec, argc, argv, &a, NULL);
  if (rc) return rc < 0 ? 0 : rc;
  if (a.labels && !a.test) return lens_usage("--labels needs --test (the labels of the report's images)");
  {
    const char *inputs[4];
    inputs[0] = a.model; inputs[1] = a.calibration; inputs[2] = a.test; inputs[3] = a.labels;
    if ((rc = lens_out_model("--out", a.out, inputs, 4, NULL)) != 0) return rc;
  }
  if (lensnet_model_load(a.model, &m, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (a.labels) { /* checked before anything is written */
    lensnet_npy_info info;
    size_t lens = 0;
    lensnet_model_class_index(m, "lens", &lens, NULL); /* the last class when none is named lens, as lens predict's p_lens */
    if (lensnet_npy_info_read(a.test, &info, &err) != LENSNET_OK) { lensnet_model_free(m); return lens_fail_err(&err); }
    if (info.ndim < 1 || !(labels = (int *)malloc((info.shape[0] ? info.shape[0] : 1) * sizeof(int)))) {
      lensnet_model_free(m);
      return lens_fail("%s: no images", a.test);
    }
    if ((rc = quantize_labels(a.labels, info.shape[0], m->out_features, lens, labels)) != 0) { lensnet_model_free(m); free(labels); return rc; }
  }
  if (lensnet_model_is_quantized(m)) { lensnet_model_free(m); free(labels); return lens_fail("%s is already quantised", a.model); }
  if ((minmax = lens_preprocess_resolve(m, LENS_PREPROCESS_UNSET)) < 0) { lensnet_model_free(m); free(labels); return LENS_EXIT_FAIL; }
  memset(&cal, 0, sizeof cal);
  memset(&test, 0, sizeof test);
  if (a.test && (rc = quantize_images(a.test, (size_t)-1, m, minmax, &test)) != 0) { /* read before anything is written */
    lensnet_model_free(m);
    free(labels);
    return rc;
  }
  if ((rc = quantize_images(a.calibration, a.n, m, minmax, &cal)) != 0) { lensnet_tensor_free(&test); lensnet_model_free(m); free(labels); return rc; }
  if (quantize_all_constant(&cal, m->in_c * m->in_h * m->in_w)) {
    lensnet_tensor_free(&cal);
    lensnet_tensor_free(&test);
    lensnet_model_free(m);
    free(labels);
    return lens_fail("%s: every calibration image is one value throughout (after preprocessing): no ranges to calibrate on", a.calibration);
  }
  memset(&desc, 0, sizeof desc);
  desc.percentile = a.percentile;
  desc.quantize_first = a.quantize_first;
  {
    const char *base = strrchr(a.calibration, '/');
    int used = snprintf(text, sizeof text, "%lu images of %s", (unsigned long)cal.shape[0], base ? base + 1 : a.calibration);
    if (a.percentile < 100 && used > 0 && (size_t)used < sizeof text)
      snprintf(text + used, sizeof text - (size_t)used, ", percentile %g", a.percentile);
  }
  desc.description = text;
  if (lensnet_quantize(m, cal.data, cal.shape[0], &desc, &q, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  lensnet_tensor_free(&cal);
  if (!rc && (rc = lens_make_parents(a.out)) == 0 && lensnet_model_save(q, a.out, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  if (!rc) {
    size_t i, layers = 0;
    for (i = 0; i < q->layer_count; i++) layers += q->quant[i].weight != NULL;
    printf("wrote %s: %lu layers in 8 bits, calibrated on %s\n", a.out, (unsigned long)layers, text);
    rc = quantize_report(&a, m, q, minmax, a.test ? &test : NULL, labels);
  }
  lensnet_tensor_free(&test);
  lensnet_model_free(m);
  lensnet_model_free(q);
  free(labels);
  return rc;
}
