/* auc_interval: the ROC AUC of a finder's scores with a bootstrap confidence interval.
 *
 *   auc_interval --scores SCORES.csv --labels LABELS.csv [--resamples B] [--seed S]
 *
 * Scores come from the column p_lens (what `lens predict` writes), the truth row by row from the
 * label column of LABELS.csv (the toolkit's rule, lensnet_csv_label_column: `label`, `class`,
 * `is_lens` or the only column; 1 is a lens). The AUC is lensviz_roc's (the trapezoid rule,
 * ties counted half, as `lens plot roc` prints it). The interval is the 2.5 and 97.5
 * percentiles of the AUC over B resamples (default 10000) that draw, with replacement, as many
 * lenses from the lenses and as many non-lenses from the non-lenses as the data hold (a
 * stratified bootstrap: every resample has both classes). The same seed gives the same interval.
 * Prints one line:
 *   AUC 0.8125 95% 0.5938-0.9844 (bootstrap, 10000 resamples; 8 lenses, 8 non-lenses)
 * It stands in for `lens eval --scores --labels` until that command exists (tools/challenge1/
 * recipe.sh calls it in one place). Exit status: 0 done, 1 a file problem, 2 a usage error. */
#define LENSNET_IMPLEMENTATION
#ifndef LENSVIZ_NO_PNG
#define LENSVIZ_NO_PNG /* numbers only: no stb_image_write.h needed */
#endif
#define LENSVIZ_IMPLEMENTATION
#include "lensviz.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROWS 1000000

/* The numbers of one column of a CSV file (header first): the column called `name`, or with
 * name NULL the label column; at most MAX_ROWS rows. Returns the count, or -1 with a message. */
static long read_column(const char *path, const char *name, double **out) {
  FILE *f = fopen(path, "r");
  static char line[65536];
  size_t col = 0;
  long n = 0, cap = 0;
  lensnet_error err;
  *out = NULL;
  if (!f) { fprintf(stderr, "auc_interval: cannot open %s\n", path); return -1; }
  if (!fgets(line, sizeof line, f)) { fprintf(stderr, "auc_interval: %s is empty\n", path); fclose(f); return -1; }
  line[strcspn(line, "\r\n")] = 0;
  if ((name ? lensnet_csv_column(line, name, &col, &err) : lensnet_csv_label_column(line, &col, &err)) != LENSNET_OK) {
    fprintf(stderr, "auc_interval: %s: %s\n", path, err.message);
    fclose(f);
    return -1;
  }
  while (fgets(line, sizeof line, f)) {
    char *cell = line, *end;
    size_t c;
    double v;
    if (line[0] == '\n' || line[0] == '\r' || line[0] == 0) continue;
    for (c = 0; c < col && cell; c++) { cell = strchr(cell, ','); if (cell) cell++; }
    v = cell ? strtod(cell, &end) : 0;
    if (!cell || end == cell) {
      fprintf(stderr, "auc_interval: %s row %ld: no number in column %lu\n", path, n + 1, (unsigned long)col);
      free(*out); fclose(f); return -1;
    }
    if (n == cap) {
      double *grown;
      cap = cap ? 2 * cap : 256;
      if (cap > MAX_ROWS || !(grown = (double *)realloc(*out, (size_t)cap * sizeof **out))) {
        fprintf(stderr, "auc_interval: %s: more than %d rows or out of memory\n", path, MAX_ROWS);
        free(*out); fclose(f); return -1;
      }
      *out = grown;
    }
    (*out)[n++] = v;
  }
  fclose(f);
  return n;
}

/* splitmix64: an explicit random state, one stream per run. */
static unsigned long long next_random(unsigned long long *state) {
  unsigned long long z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int usage(void) {
  fprintf(stderr, "usage: auc_interval --scores SCORES.csv --labels LABELS.csv [--resamples B] [--seed S]\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *scores_path = NULL, *labels_path = NULL;
  long resamples = 10000, n, n_labels, i, b, lenses = 0, others = 0;
  unsigned long long seed = 1;
  double *score, *truth, *area, auc;
  float *s, *fpr, *tpr;
  int *label;
  long *lens_rows, *other_rows;
  for (i = 1; i < argc; i++) {
    if (i + 1 < argc && !strcmp(argv[i], "--scores")) scores_path = argv[++i];
    else if (i + 1 < argc && !strcmp(argv[i], "--labels")) labels_path = argv[++i];
    else if (i + 1 < argc && !strcmp(argv[i], "--resamples")) resamples = atol(argv[++i]);
    else if (i + 1 < argc && !strcmp(argv[i], "--seed")) seed = strtoull(argv[++i], NULL, 10);
    else return usage();
  }
  if (!scores_path || !labels_path || resamples < 100 || resamples > 1000000) return usage();
  if ((n = read_column(scores_path, "p_lens", &score)) < 0) return 1;
  if ((n_labels = read_column(labels_path, NULL, &truth)) < 0) { free(score); return 1; }
  if (n != n_labels) {
    fprintf(stderr, "auc_interval: %ld scores but %ld labels\n", n, n_labels);
    free(score); free(truth); return 1;
  }
  s = (float *)malloc((size_t)n * sizeof *s);
  label = (int *)malloc((size_t)n * sizeof *label);
  fpr = (float *)malloc((size_t)(n + 1) * sizeof *fpr);
  tpr = (float *)malloc((size_t)(n + 1) * sizeof *tpr);
  lens_rows = (long *)malloc((size_t)n * sizeof *lens_rows);
  other_rows = (long *)malloc((size_t)n * sizeof *other_rows);
  area = (double *)malloc((size_t)resamples * sizeof *area);
  if (!s || !label || !fpr || !tpr || !lens_rows || !other_rows || !area) { fprintf(stderr, "auc_interval: out of memory\n"); return 1; }
  for (i = 0; i < n; i++) {
    label[i] = truth[i] == 1;
    s[i] = (float)score[i];
    if (label[i]) lens_rows[lenses++] = i;
    else other_rows[others++] = i;
  }
  if (!lenses || !others) { fprintf(stderr, "auc_interval: the labels hold only one class\n"); return 1; }
  lensviz_roc(s, label, (size_t)n, fpr, tpr, &auc);
  /* each resample: lenses from the lenses, non-lenses from the non-lenses, with replacement */
  for (b = 0; b < resamples; b++) {
    for (i = 0; i < n; i++) {
      long pick = i < lenses ? lens_rows[next_random(&seed) % (unsigned long long)lenses]
                             : other_rows[next_random(&seed) % (unsigned long long)others];
      s[i] = (float)score[pick];
      label[i] = i < lenses;
    }
    lensviz_roc(s, label, (size_t)n, fpr, tpr, &area[b]);
  }
  qsort(area, (size_t)resamples, sizeof *area, cmp_double);
  printf("AUC %.4f 95%% %.4f-%.4f (bootstrap, %ld resamples; %ld lenses, %ld non-lenses)\n", auc,
         area[(long)(0.025 * (double)(resamples - 1) + 0.5)], area[(long)(0.975 * (double)(resamples - 1) + 0.5)], resamples,
         lenses, others);
  free(score); free(truth); free(s); free(label); free(fpr); free(tpr); free(lens_rows); free(other_rows); free(area);
  return 0;
}
