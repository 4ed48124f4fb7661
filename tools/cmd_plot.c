/* lens plot: pictures of a finder's scores and of its training, from CSV files.
 *
 *   lens plot roc|pr|scores|confusion --scores S.csv [--scores T.csv ...] --out FILE.png
 *   lens plot history --history DIR/history.csv --out FILE.png
 *
 * Scores come from a column of a CSV (default p_lens, as `lens predict` writes) and labels (0 or
 * 1) from a column of the same CSV or of another one (--labels, e.g. the labels.csv of a data
 * set), matched to the scores as lens eval matches them: by index, by input names, else in row
 * order. The history is the history.csv that `lens train` writes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lens_cmds.h"
#include "lensviz.h"
#include "cli.h"
#include "options.h"

/* A CSV file in memory (lensnet_csv_read: bounded, quoting, any last line): row 0 is the header. */
typedef lensnet_csv csv_table;

static void csv_free(csv_table *t) { lensnet_csv_free(t); }

/* Reads a CSV whose rows all have the header's number of cells, and at least one data row. */
static int csv_read(const char *path, csv_table *t) {
  lensnet_error err;
  size_t c;
  memset(t, 0, sizeof *t);
  if (lensnet_csv_read(path, t, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (t->rows < 2) { csv_free(t); return lens_fail("%s: no data rows", path); }
  for (c = 0; c < t->cols; c++) while (*t->cells[c] == ' ') t->cells[c]++;
  return 0;
}

static long csv_column(const csv_table *t, const char *name) {
  size_t c;
  for (c = 0; c < t->cols; c++) if (!strcmp(t->cells[c], name)) return (long)c;
  return -1;
}

/* Column values as numbers; a cell that is not a number is an error, and so, with `finite`, is
 * NaN or infinity (a score or label that no curve can place). */
static int csv_numbers(const csv_table *t, long col, const char *path, int finite, float *out) {
  size_t r;
  for (r = 1; r < t->rows; r++) {
    char *end;
    const char *cell = t->cells[r * t->cols + (size_t)col];
    double v = strtod(cell, &end);
    while (*end == ' ') end++;
    if (end == cell || *end) return lens_fail("%s: row %lu: '%s' in column %s is not a number", path, (unsigned long)r + 1, cell, t->cells[col]);
    if (finite && !(v == v && v - v == 0))
      return lens_fail("%s: row %lu: '%s' in column %s is not a finite number", path, (unsigned long)r + 1, cell, t->cells[col]);
    out[r - 1] = (float)v;
  }
  return 0;
}

typedef enum { PLOT_ROC, PLOT_PR, PLOT_SCORES, PLOT_CONFUSION, PLOT_HISTORY } plot_kind;
static const char *const plot_kinds[] = {"roc", "pr", "scores", "confusion", "history", NULL};

typedef struct {
  int kind;                 /* plot_kind */
  const char *scores[8], *names[8];
  size_t nscores, nnames;
  const char *labels, *score_column, *label_column, *history, *out, *title;
  double threshold;
  size_t width, height, bins; /* 0: the kind's default */
} plot_options;

#define T plot_options
static const lens_option plot_rows[] = {
  LENS_CHOICE(T, "KIND", LENS_OPT_REQUIRED | LENS_OPT_POSITIONAL, kind, plot_kinds, -1, NULL, NULL),
  LENS_LIST(T, "scores", scores, nscores, 8, "FILE.csv", "a CSV of scores (repeat for more curves, up to 8)"),
  LENS_TEXT(T, "history", 0, history, NULL, "FILE.csv", "history: the history.csv of lens train"),
  LENS_TEXT(T, "out", LENS_OPT_REQUIRED, out, NULL, "FILE.png", "the picture"),
  LENS_TEXT(T, "score-column", 0, score_column, "p_lens", "NAME", "column holding the score (default p_lens, as lens predict writes)"),
  LENS_TEXT(T, "label-column", 0, label_column, NULL, "NAME", "column holding the label, 1 lens, 0 not (default: label, class or is_lens)"),
  LENS_TEXT(T, "labels", 0, labels, NULL, "FILE.csv", "take labels from this CSV, matched as lens eval matches them (index, input, row order)"),
  LENS_LIST(T, "name", names, nnames, 8, "TEXT", "legend name of each --scores file, in order"),
  LENS_DOUBLE(T, "threshold", threshold, -1e300, 1e300, 0.5, "T", "confusion: a lens when score >= T (default 0.5)"),
  LENS_SIZE(T, "bins", bins, 1, 8192, 20, "N", "scores: histogram bins (default 20)"),
  LENS_TEXT(T, "title", 0, title, NULL, "TEXT", "picture title"),
  LENS_SIZE(T, "width", width, 160, 8192, 0, "W", "picture width (default 640; history 960)"),
  LENS_SIZE(T, "height", height, 120, 8192, 0, "H", "picture height (default 480; history 400)"),
};
#undef T
static const lens_option_section plot_sections[] = {{NULL, plot_rows, sizeof plot_rows / sizeof plot_rows[0]}};
static const lens_command_spec plot_spec = {
  "plot",
  "usage: lens plot roc|pr|scores|confusion --scores FILE.csv [--scores FILE2.csv ...] --out FILE.png [options]\n"
  "       lens plot history --history history.csv --out FILE.png\n",
  "  roc          ROC curves (one per --scores file) with their AUC\n"
  "  pr           precision-recall curves with their average precision\n"
  "  scores       histograms of the scores of lenses and non-lenses (first file)\n"
  "  confusion    2x2 confusion matrix at --threshold (first file)\n"
  "  history      loss and accuracy per epoch from the history.csv of lens train\n",
  NULL, plot_sections, 1,
  "--out must end in .png; missing folders are created. Exit status: 0 done, 1 failure, 2 usage error.\n"};

/* One --scores file's scores and labels. */
typedef struct {
  float *scores;
  int *labels;
  size_t n;
} scored_set;

static int load_scored(const plot_options *o, const char *path, scored_set *s) {
  memset(s, 0, sizeof *s);
  return lens_eval_scored(path, o->labels, o->score_column, o->label_column, &s->scores, &s->labels, &s->n);
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

static lensviz_color series_color(size_t i) {
  static const unsigned char c[8][3] = {{31, 119, 180}, {214, 39, 40}, {44, 160, 44}, {148, 103, 189},
                                        {255, 127, 14}, {23, 190, 207}, {140, 86, 75}, {127, 127, 127}};
  return lensviz_rgb(c[i % 8][0], c[i % 8][1], c[i % 8][2]);
}

static int save(const lensviz_image *img, const char *path) {
  lensnet_error err;
  if (lensviz_png_write(path, img, &err) != LENSNET_OK) return lens_fail_err(&err);
  return 0;
}

/* The 2x2 confusion matrix of the first file at --threshold. */
static void draw_confusion(const plot_options *o, const scored_set *set, lensviz_image *img) {
  double counts[4] = {0, 0, 0, 0};
  static const char *const names[2] = {"non-lens", "lens"};
  char title[200];
  size_t k;
  for (k = 0; k < set->n; k++) counts[set->labels[k] * 2 + (set->scores[k] >= (float)o->threshold)] += 1.0;
  snprintf(title, sizeof title, "%s", o->title ? o->title : "");
  if (!o->title) snprintf(title, sizeof title, "Confusion at %s >= %g", o->score_column, o->threshold);
  lensviz_plot_confusion(img, counts, 2, names, title);
  printf("threshold %g: TN %.0f FP %.0f FN %.0f TP %.0f\n", o->threshold, counts[0], counts[1], counts[2], counts[3]);
}

/* Histograms of the scores of lenses and non-lenses of the first file. */
static int draw_histograms(const plot_options *o, const scored_set *set, lensviz_image *img) {
  float *pos = (float *)malloc(set->n * sizeof(float)), *neg = (float *)malloc(set->n * sizeof(float));
  size_t np = 0, nn = 0, k;
  lensviz_series series[2];
  lensviz_plot_desc pd;
  int rc = 0;
  if (!pos || !neg) rc = lens_fail("out of memory");
  for (k = 0; !rc && k < set->n; k++) { if (set->labels[k]) pos[np++] = set->scores[k]; else neg[nn++] = set->scores[k]; }
  if (!rc) {
    memset(series, 0, sizeof series);
    memset(&pd, 0, sizeof pd);
    series[0].x = neg; series[0].n = nn; series[0].label = "non-lenses"; series[0].color = series_color(0);
    series[1].x = pos; series[1].n = np; series[1].label = "lenses"; series[1].color = series_color(1);
    pd.title = o->title ? o->title : "Scores by class";
    pd.xlabel = o->score_column;
    pd.ylabel = "count";
    lensviz_plot_histogram(img, series, 2, o->bins, &pd);
  }
  free(pos);
  free(neg);
  return rc;
}

/* ROC or precision-recall curves, one per file, with their AUC or AP. */
static int draw_curves(const plot_options *o, const scored_set *sets, lensviz_image *img) {
  lensviz_series series[8];
  lensviz_plot_desc pd;
  char labels[8][160];
  float *xs[8], *ys[8];
  size_t i;
  int rc = 0, roc = o->kind == PLOT_ROC;
  memset(xs, 0, sizeof xs);
  memset(ys, 0, sizeof ys);
  for (i = 0; i < o->nscores && rc == 0; i++) {
    double area = 0.0;
    size_t count;
    xs[i] = (float *)malloc((sets[i].n + 1) * sizeof(float));
    ys[i] = (float *)malloc((sets[i].n + 1) * sizeof(float));
    if (!xs[i] || !ys[i]) { rc = lens_fail("out of memory"); break; }
    count = roc ? lensviz_roc(sets[i].scores, sets[i].labels, sets[i].n, xs[i], ys[i], &area)
                : lensviz_pr(sets[i].scores, sets[i].labels, sets[i].n, xs[i], ys[i], &area);
    if (!count) { rc = lens_fail("%s: %s needs both classes among the labels", o->scores[i], roc ? "a ROC curve" : "a PR curve"); break; }
    snprintf(labels[i], sizeof labels[i], "%.60s (%s %.3f)", i < o->nnames ? o->names[i] : base_name(o->scores[i]), roc ? "AUC" : "AP", area);
    printf("%s: %s %.6f over %lu objects\n", o->scores[i], roc ? "AUC" : "AP", area, (unsigned long)sets[i].n);
    memset(&series[i], 0, sizeof series[i]);
    series[i].x = xs[i]; series[i].y = ys[i]; series[i].n = count; series[i].label = labels[i]; series[i].color = series_color(i);
  }
  if (!rc) {
    memset(&pd, 0, sizeof pd);
    pd.title = o->title ? o->title : roc ? "ROC curve" : "Precision-recall curve";
    pd.xlabel = roc ? "false positive rate" : "recall";
    pd.ylabel = roc ? "true positive rate" : "precision";
    pd.x0 = 0; pd.x1 = 1; pd.y0 = 0; pd.y1 = 1.02f;
    pd.diagonal = roc;
    pd.legend_bottom = 1;
    lensviz_plot_lines(img, series, o->nscores, &pd);
  }
  for (i = 0; i < o->nscores; i++) { free(xs[i]); free(ys[i]); }
  return rc;
}

static int plot_scores(const plot_options *o) {
  scored_set sets[8];
  size_t i;
  int rc = 0;
  lensviz_image img;
  lensnet_error err;
  memset(sets, 0, sizeof sets);
  for (i = 0; i < o->nscores && rc == 0; i++) rc = load_scored(o, o->scores[i], &sets[i]);
  if (rc == 0 && lensviz_image_alloc(&img, o->width, o->height, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  if (rc == 0) {
    if (o->kind == PLOT_CONFUSION) draw_confusion(o, &sets[0], &img);
    else if (o->kind == PLOT_SCORES) rc = draw_histograms(o, &sets[0], &img);
    else rc = draw_curves(o, sets, &img);
    if (!rc) rc = save(&img, o->out);
    lensviz_image_free(&img);
  }
  for (i = 0; i < o->nscores; i++) { free(sets[i].scores); free(sets[i].labels); }
  return rc;
}

static int plot_history(const plot_options *o) {
  csv_table t;
  static const char *need[] = {"epoch", "train_loss", "val_loss", "train_acc", "val_acc"};
  long col[5];
  float *v[5];
  size_t i, n;
  int rc, curves = 2;
  lensviz_image img, left, right;
  lensviz_series s[2];
  lensviz_plot_desc pd;
  lensnet_error err;
  if ((rc = csv_read(o->history, &t)) != 0) return rc;
  n = t.rows - 1;
  memset(v, 0, sizeof v);
  for (i = 0; i < 5 && rc == 0; i++) {
    col[i] = csv_column(&t, need[i]);
    if (col[i] < 0) rc = lens_fail("%s has no column '%s' (expected the history.csv of lens train)", o->history, need[i]);
    else if (!(v[i] = (float *)malloc(n * sizeof(float)))) rc = lens_fail("out of memory");
    else rc = csv_numbers(&t, col[i], o->history, 0, v[i]);
  }
  if (rc == 0) { /* lens train --val-fraction 0 writes 0 for the validation figures of every epoch */
    int any = 0;
    for (i = 0; i < n; i++) any |= v[2][i] != 0.0f || v[4][i] != 0.0f;
    if (!any) {
      curves = 1;
      fprintf(stderr, "lens: note: %s has no validation figures (val_loss and val_acc are 0 in every epoch, as lens train "
                      "--val-fraction 0 writes them): training curves only\n", o->history);
    }
  }
  if (rc == 0) { /* a NaN or infinite figure (a diverged epoch) is not drawn: said, with the first */
    size_t bad = 0, first = 0, k;
    for (i = 0; i < n; i++)
      for (k = 1; k < 5; k++)
        if (!(v[k][i] - v[k][i] == 0.0f) && bad++ == 0) first = i;
    if (bad)
      fprintf(stderr, "lens: note: %s has %lu NaN or infinite figure%s (the first in epoch %g): left out of the curves\n", o->history,
              (unsigned long)bad, bad == 1 ? "" : "s", (double)v[0][first]);
  }
  if (rc == 0 && lensviz_image_alloc(&img, o->width, o->height, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  if (rc == 0) {
    left = lensviz_image_view(&img, 0, 0, o->width / 2, o->height);
    right = lensviz_image_view(&img, o->width / 2, 0, o->width - o->width / 2, o->height);
    memset(s, 0, sizeof s);
    memset(&pd, 0, sizeof pd);
    s[0].x = v[0]; s[0].y = v[1]; s[0].n = n; s[0].label = "train"; s[0].color = series_color(0);
    s[1].x = v[0]; s[1].y = v[2]; s[1].n = n; s[1].label = "validation"; s[1].color = series_color(1); s[1].dashed = 1;
    pd.title = "Loss"; pd.xlabel = "epoch"; pd.ylabel = "loss";
    lensviz_plot_lines(&left, s, (size_t)curves, &pd);
    s[0].y = v[3]; s[1].y = v[4];
    pd.title = "Accuracy"; pd.ylabel = "accuracy"; pd.legend_bottom = 1;
    lensviz_plot_lines(&right, s, (size_t)curves, &pd);
    rc = save(&img, o->out);
    lensviz_image_free(&img);
  }
  for (i = 0; i < 5; i++) free(v[i]);
  csv_free(&t);
  return rc;
}

int lens_cmd_plot(int argc, char **argv) {
  plot_options o;
  int history, rc;
  lens_options_given given;
  /* options that only some kinds use (bit k: plot_kinds[k]); the others serve every kind */
  static const struct { const char *name; unsigned kinds; const char *which; } only[] = {
    {"scores", 15u, "roc, pr, scores, confusion"}, {"score-column", 15u, "roc, pr, scores, confusion"},
    {"label-column", 15u, "roc, pr, scores, confusion"}, {"labels", 15u, "roc, pr, scores, confusion"},
    {"name", 3u, "roc, pr"}, {"threshold", 8u, "confusion"}, {"bins", 4u, "scores"}, {"history", 16u, "history"}};
  size_t i;
  memset(&o, 0, sizeof o);
  if ((rc = lens_options_parse(&plot_spec, argc, argv, &o, &given)) != 0) return rc < 0 ? 0 : rc;
  for (i = 0; i < sizeof only / sizeof only[0]; i++)
    if (!(only[i].kinds & (1u << o.kind)) && lens_options_was_given(&plot_spec, &given, only[i].name))
      return lens_usage("--%s has no use in lens plot %s (it serves: %s)", only[i].name, plot_kinds[o.kind], only[i].which);
  history = o.kind == PLOT_HISTORY;
  if (lens_out_format("--out", o.out, LENS_FMT_PNG) == LENS_FMT_NONE) return LENS_EXIT_USAGE;
  if (!o.width) o.width = history ? 960 : 640;
  if (!o.height) o.height = history ? 400 : 480;
  if (o.width < 160 || o.height < 120) return lens_usage("pictures must be at least 160x120");
  if (history && !o.history) return lens_usage("lens plot history needs --history FILE.csv");
  if (!history && !o.nscores) return lens_usage("lens plot %s needs --scores FILE.csv", plot_kinds[o.kind]);
  {
    const char *others[2];
    others[0] = o.labels; others[1] = o.history;
    if ((rc = lens_out_not_input("--out", o.out, o.scores, o.nscores, NULL)) != 0 || (rc = lens_out_not_input("--out", o.out, others, 2, NULL)) != 0)
      return rc;
  }
  if (lens_make_parents(o.out)) return LENS_EXIT_FAIL;
  return history ? plot_history(&o) : plot_scores(&o);
}
