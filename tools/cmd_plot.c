/* lens plot: pictures of a finder's scores and of its training, from CSV files.
 *
 *   lens plot roc|pr|scores|confusion --scores S.csv [--scores T.csv ...] --out FILE.png
 *   lens plot history --history DIR/history.csv --out FILE.png
 *
 * Scores come from a column of a CSV (default p_lens, as `lens predict` writes) and labels from
 * a column of the same CSV or, row by row, of another one (--labels, e.g. the labels.csv of a
 * data set). The history is the history.csv that `lens train` writes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lens_cmds.h"
#include "lensviz.h"
#include "cli.h"

/* A CSV file in memory: row 0 is the header; cells point into text. */
typedef struct {
  char *text;
  char **cells;
  size_t rows, cols;
} csv_table;

static void csv_free(csv_table *t) {
  free(t->text);
  free(t->cells);
  memset(t, 0, sizeof *t);
}

/* Reads a CSV without quoting (the toolkit's files have none); every row must have the
 * header's number of cells. */
static int csv_read(const char *path, csv_table *t) {
  FILE *f = fopen(path, "rb");
  long size;
  size_t r, cap = 0, line = 1;
  char *p;
  memset(t, 0, sizeof *t);
  if (!f) return lens_fail("%s: cannot open", path);
  if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return lens_fail("%s: cannot read", path); }
  t->text = (char *)malloc((size_t)size + 1);
  if (!t->text) { fclose(f); return lens_fail("out of memory reading %s", path); }
  if (fread(t->text, 1, (size_t)size, f) != (size_t)size) { fclose(f); csv_free(t); return lens_fail("%s: read failed", path); }
  fclose(f);
  t->text[size] = 0;
  p = t->text;
  while (*p) {
    size_t col = 0;
    char *end = strchr(p, '\n'), *q;
    if (end) *end = 0;
    if (end && end > p && end[-1] == '\r') end[-1] = 0;
    if (*p == 0) { p = end ? end + 1 : p + strlen(p); line++; continue; }
    for (q = p;; q++) {
      if (*q == ',' || *q == 0) {
        int last = *q == 0;
        if (t->rows == 0) {
          if (t->cols + 1 > cap) {
            char **nc;
            cap = cap ? cap * 2 : 16;
            nc = (char **)realloc(t->cells, cap * sizeof(char *));
            if (!nc) { csv_free(t); return lens_fail("out of memory reading %s", path); }
            t->cells = nc;
          }
          t->cells[t->cols++] = p;
        } else {
          size_t at = t->rows * t->cols + col;
          if (col >= t->cols) { csv_free(t); return lens_fail("%s:%lu: more cells than the header has", path, (unsigned long)line); }
          if (at + 1 > cap) {
            char **nc;
            while (at + 1 > cap) cap = cap ? cap * 2 : 16;
            nc = (char **)realloc(t->cells, cap * sizeof(char *));
            if (!nc) { csv_free(t); return lens_fail("out of memory reading %s", path); }
            t->cells = nc;
          }
          t->cells[at] = p;
          col++;
        }
        *q = 0;
        p = q + 1;
        if (last) break;
      }
    }
    if (t->rows > 0 && col != t->cols) { csv_free(t); return lens_fail("%s:%lu: %lu cells but the header has %lu", path, (unsigned long)line, (unsigned long)col, (unsigned long)t->cols); }
    t->rows++;
    line++;
    p = end ? end + 1 : p + strlen(p);
  }
  if (t->rows < 2) { csv_free(t); return lens_fail("%s: no data rows", path); }
  for (r = 0; r < t->cols; r++) while (*t->cells[r] == ' ') t->cells[r]++;
  return 0;
}

static long csv_column(const csv_table *t, const char *name) {
  size_t c;
  for (c = 0; c < t->cols; c++) if (!strcmp(t->cells[c], name)) return (long)c;
  return -1;
}

/* The label column by the toolkit's rule (lensnet_csv_label_column), or -1. */
static long csv_label_column(const csv_table *t) {
  size_t c, len = 1, at = 0, col;
  char *line;
  long found = -1;
  for (c = 0; c < t->cols; c++) len += strlen(t->cells[c]) + 1;
  if (!(line = (char *)malloc(len))) return -1;
  for (c = 0; c < t->cols; c++) at += (size_t)sprintf(line + at, "%s%s", c ? "," : "", t->cells[c]);
  line[at] = 0;
  if (lensnet_csv_label_column(line, &col, NULL) == LENSNET_OK) found = (long)col;
  free(line);
  return found;
}

/* Column values as numbers; a cell that is not a number is an error. */
static int csv_numbers(const csv_table *t, long col, const char *path, float *out) {
  size_t r;
  for (r = 1; r < t->rows; r++) {
    char *end;
    const char *cell = t->cells[r * t->cols + (size_t)col];
    double v = strtod(cell, &end);
    while (*end == ' ') end++;
    if (end == cell || *end) return lens_fail("%s: row %lu: '%s' in column %s is not a number", path, (unsigned long)r + 1, cell, t->cells[col]);
    out[r - 1] = (float)v;
  }
  return 0;
}

typedef struct {
  const char *scores[8], *names[8];
  size_t nscores, nnames;
  const char *labels, *score_column, *label_column, *history, *out, *title;
  double threshold;
  size_t width, height, bins;
} plot_options;

/* One --scores file's scores and labels. */
typedef struct {
  float *scores;
  int *labels;
  size_t n;
} scored_set;

static int load_scored(const plot_options *o, const char *path, scored_set *s) {
  csv_table t, lt;
  const csv_table *label_table;
  long sc, lc;
  float *lab;
  size_t i;
  int rc;
  memset(s, 0, sizeof *s);
  if ((rc = csv_read(path, &t)) != 0) return rc;
  memset(&lt, 0, sizeof lt);
  if (o->labels && (rc = csv_read(o->labels, &lt)) != 0) { csv_free(&t); return rc; }
  label_table = o->labels ? &lt : &t;
  sc = csv_column(&t, o->score_column);
  lc = o->label_column ? csv_column(label_table, o->label_column) : csv_label_column(label_table);
  if (!o->label_column && lc == sc && label_table == &t) lc = -1; /* a lone column holds the scores, not labels */
  if (sc < 0) rc = lens_fail("%s has no column '%s' (choose one with --score-column)", path, o->score_column);
  else if (lc < 0) rc = lens_fail("%s has no label column%s%s (choose one with --label-column, or give --labels FILE)", o->labels ? o->labels : path,
                                  o->label_column ? " " : "", o->label_column ? o->label_column : "");
  else if (label_table->rows != t.rows)
    rc = lens_fail("%s has %lu rows but %s has %lu", path, (unsigned long)t.rows - 1, o->labels, (unsigned long)label_table->rows - 1);
  if (rc) { csv_free(&t); csv_free(&lt); return rc; }
  s->n = t.rows - 1;
  s->scores = (float *)malloc(s->n * sizeof(float));
  s->labels = (int *)malloc(s->n * sizeof(int));
  lab = (float *)malloc(s->n * sizeof(float));
  if (!s->scores || !s->labels || !lab) rc = lens_fail("out of memory");
  if (!rc) rc = csv_numbers(&t, sc, path, s->scores);
  if (!rc) rc = csv_numbers(label_table, lc, o->labels ? o->labels : path, lab);
  for (i = 0; !rc && i < s->n; i++) s->labels[i] = lab[i] != 0.0f;
  free(lab);
  csv_free(&t);
  csv_free(&lt);
  if (rc) { free(s->scores); free(s->labels); memset(s, 0, sizeof *s); }
  return rc;
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

static int plot_scores(const char *kind, const plot_options *o) {
  scored_set sets[8];
  lensviz_series series[8];
  char labels[8][160];
  float *xs[8], *ys[8];
  size_t i, k;
  int rc = 0;
  lensviz_image img;
  lensnet_error err;
  lensviz_plot_desc pd;
  memset(sets, 0, sizeof sets);
  memset(xs, 0, sizeof xs);
  memset(ys, 0, sizeof ys);
  memset(&pd, 0, sizeof pd);
  for (i = 0; i < o->nscores && rc == 0; i++) rc = load_scored(o, o->scores[i], &sets[i]);
  if (rc == 0 && lensviz_image_alloc(&img, o->width, o->height, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  if (rc) { for (i = 0; i < o->nscores; i++) { free(sets[i].scores); free(sets[i].labels); } return rc; }
  if (!strcmp(kind, "confusion")) {
    double counts[4] = {0, 0, 0, 0};
    static const char *const names[2] = {"non-lens", "lens"};
    char title[200];
    for (k = 0; k < sets[0].n; k++) counts[sets[0].labels[k] * 2 + (sets[0].scores[k] >= o->threshold)] += 1.0;
    snprintf(title, sizeof title, "%s", o->title ? o->title : "");
    if (!o->title) snprintf(title, sizeof title, "Confusion at %s >= %g", o->score_column, o->threshold);
    lensviz_plot_confusion(&img, counts, 2, names, title);
    printf("threshold %g: TN %.0f FP %.0f FN %.0f TP %.0f\n", o->threshold, counts[0], counts[1], counts[2], counts[3]);
  } else if (!strcmp(kind, "scores")) {
    /* histograms of the scores of lenses and non-lenses of the first file */
    float *pos = (float *)malloc(sets[0].n * sizeof(float)), *neg = (float *)malloc(sets[0].n * sizeof(float));
    size_t np = 0, nn = 0;
    if (!pos || !neg) rc = lens_fail("out of memory");
    for (k = 0; !rc && k < sets[0].n; k++) { if (sets[0].labels[k]) pos[np++] = sets[0].scores[k]; else neg[nn++] = sets[0].scores[k]; }
    if (!rc) {
      memset(series, 0, sizeof series);
      series[0].x = neg; series[0].n = nn; series[0].label = "non-lenses"; series[0].color = series_color(0);
      series[1].x = pos; series[1].n = np; series[1].label = "lenses"; series[1].color = series_color(1);
      pd.title = o->title ? o->title : "Scores by class";
      pd.xlabel = o->score_column;
      pd.ylabel = "count";
      lensviz_plot_histogram(&img, series, 2, o->bins, &pd);
    }
    free(pos);
    free(neg);
  } else {
    int roc = !strcmp(kind, "roc");
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
      pd.title = o->title ? o->title : roc ? "ROC curve" : "Precision-recall curve";
      pd.xlabel = roc ? "false positive rate" : "recall";
      pd.ylabel = roc ? "true positive rate" : "precision";
      pd.x0 = 0; pd.x1 = 1; pd.y0 = 0; pd.y1 = 1.02f;
      pd.diagonal = roc;
      pd.legend_bottom = 1;
      lensviz_plot_lines(&img, series, o->nscores, &pd);
    }
  }
  if (!rc) rc = save(&img, o->out);
  lensviz_image_free(&img);
  for (i = 0; i < o->nscores; i++) { free(sets[i].scores); free(sets[i].labels); free(xs[i]); free(ys[i]); }
  return rc;
}

static int plot_history(const plot_options *o) {
  csv_table t;
  static const char *need[] = {"epoch", "train_loss", "val_loss", "train_acc", "val_acc"};
  long col[5];
  float *v[5];
  size_t i, n;
  int rc;
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
    else rc = csv_numbers(&t, col[i], o->history, v[i]);
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
    lensviz_plot_lines(&left, s, 2, &pd);
    s[0].y = v[3]; s[1].y = v[4];
    pd.title = "Accuracy"; pd.ylabel = "accuracy"; pd.legend_bottom = 1;
    lensviz_plot_lines(&right, s, 2, &pd);
    rc = save(&img, o->out);
    lensviz_image_free(&img);
  }
  for (i = 0; i < 5; i++) free(v[i]);
  csv_free(&t);
  return rc;
}

static void plot_usage(FILE *f) {
  fprintf(f,
    "usage: lens plot roc|pr|scores|confusion --scores FILE.csv [--scores FILE2.csv ...] --out FILE.png [options]\n"
    "       lens plot history --history history.csv --out FILE.png\n"
    "  roc          ROC curves (one per --scores file) with their AUC\n"
    "  pr           precision-recall curves with their average precision\n"
    "  scores       histograms of the scores of lenses and non-lenses (first file)\n"
    "  confusion    2x2 confusion matrix at --threshold (first file)\n"
    "  history      loss and accuracy per epoch from the history.csv of lens train\n"
    "  --score-column NAME   column holding the score (default p_lens, as lens predict writes)\n"
    "  --label-column NAME   column holding the label, nonzero = lens (default: label, class or is_lens)\n"
    "  --labels FILE.csv     take labels from this CSV, row by row, instead of the scores file\n"
    "  --name TEXT           legend name of each --scores file, in order\n"
    "  --threshold T         confusion: a lens when score >= T (default 0.5)\n"
    "  --bins N              scores: histogram bins (default 20)\n"
    "  --title TEXT          picture title\n"
    "  --width W --height H  picture size (default 640x480; history 960x400)\n"
    "--out must end in .png; missing folders are created. Exit status: 0 done, 1 failure, 2 usage error.\n");
}

int lens_cmd_plot(int argc, char **argv) {
  plot_options o;
  const char *kind;
  int i;
  memset(&o, 0, sizeof o);
  o.score_column = "p_lens";
  o.threshold = 0.5;
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { plot_usage(argc < 2 ? stderr : stdout); return argc < 2 ? 2 : 0; }
  kind = argv[1];
  if (strcmp(kind, "roc") && strcmp(kind, "pr") && strcmp(kind, "scores") && strcmp(kind, "confusion") && strcmp(kind, "history"))
    return lens_usage("unknown plot '%s': roc, pr, scores, confusion or history", kind);
  for (i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { plot_usage(stdout); return 0; }
    if (!v) return lens_usage("%s needs a value (see lens plot --help)", a);
    i++;
    if (!strcmp(a, "--scores")) { if (o.nscores == 8) return lens_usage("at most 8 --scores files"); o.scores[o.nscores++] = v; }
    else if (!strcmp(a, "--name")) { if (o.nnames < 8) o.names[o.nnames++] = v; }
    else if (!strcmp(a, "--labels")) o.labels = v;
    else if (!strcmp(a, "--score-column")) o.score_column = v;
    else if (!strcmp(a, "--label-column")) o.label_column = v;
    else if (!strcmp(a, "--history")) o.history = v;
    else if (!strcmp(a, "--out")) o.out = v;
    else if (!strcmp(a, "--title")) o.title = v;
    else if (!strcmp(a, "--threshold")) o.threshold = atof(v);
    else if (!strcmp(a, "--bins") || !strcmp(a, "--width") || !strcmp(a, "--height")) {
      char *end;
      long n = strtol(v, &end, 10);
      if (*end || n < 1 || n > 8192) return lens_usage("%s takes a number from 1 to 8192", a);
      if (!strcmp(a, "--bins")) o.bins = (size_t)n;
      else if (!strcmp(a, "--width")) o.width = (size_t)n;
      else o.height = (size_t)n;
    } else return lens_usage("unknown option '%s' (see lens plot --help)", a);
  }
  if (!o.out) return lens_usage("--out FILE.png is required");
  if (lens_out_format("--out", o.out, LENS_FMT_PNG) == LENS_FMT_NONE) return LENS_EXIT_USAGE;
  if (!o.width) o.width = !strcmp(kind, "history") ? 960 : 640;
  if (!o.height) o.height = !strcmp(kind, "history") ? 400 : 480;
  if (o.width < 160 || o.height < 120) return lens_usage("pictures must be at least 160x120");
  if (!strcmp(kind, "history") && !o.history) return lens_usage("lens plot history needs --history FILE.csv");
  if (strcmp(kind, "history") && !o.nscores) return lens_usage("lens plot %s needs --scores FILE.csv", kind);
  if (lens_make_parents(o.out)) return LENS_EXIT_FAIL;
  if (!strcmp(kind, "history")) {
    return plot_history(&o);
  }
  if (!o.nscores) return lens_usage("lens plot %s needs --scores FILE.csv", kind);
  return plot_scores(kind, &o);
}
