/* lens eval --task regress and lens calibrate: how good a lens-modelling network's means and
 * sigmas are, and a variance scale per target that makes its intervals cover what they claim
 * (with --means first a linear correction of the means).
 *
 *   lens eval --task regress --scores PRED.csv --labels labels.csv [--by theta_E,arc_snr] --out DIR
 *   lens calibrate --model M.safetensors --scores VAL_PRED.csv --labels VAL_labels.csv [--means] --out M2.safetensors
 *
 * PRED.csv is what lens predict writes for a regression model (input,NAME,NAME_sigma,...), its
 * rows in the order of labels.csv's (lens predict keeps the order of its inputs). The figures are
 * lensviz.h's (lensviz_eval_regress, lensviz_regress_level, lensviz_regress_calibration);
 * docs/modelling.md is the manual. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "lens_cmds.h"
#include "lensviz.h"
#include "cli.h"
#include "options.h"

#define REGRESS_MAX_BY 8
#define REGRESS_LEVELS 21

/* ---- the predictions and the truth ----------------------------------------------------------- */

typedef struct {
  lensnet_csv st, lt;                        /* predictions; labels */
  size_t n, count;                           /* objects; targets */
  char names[LENSNET_REGRESSION_MAX][33];
  double *truth[LENSNET_REGRESSION_MAX], *mean[LENSNET_REGRESSION_MAX], *sigma[LENSNET_REGRESSION_MAX];
  const char *join;                          /* how the rows were matched (lens_eval_join) */
} regress_data;

static void regress_free(regress_data *d) {
  size_t j;
  for (j = 0; j < LENSNET_REGRESSION_MAX; j++) { free(d->truth[j]); free(d->mean[j]); free(d->sigma[j]); }
  lensnet_csv_free(&d->st);
  lensnet_csv_free(&d->lt);
}

/* Column `name` of t into *col, or an error naming the file and listing the columns. */
static int need_column(const lensnet_csv *t, const char *path, const char *name, size_t *col) {
  if (lensnet_csv_column(t->header, name, col, NULL) == LENSNET_OK) return 0;
  return lens_fail("%s has no column '%s'; columns found: %s", path, name, t->header);
}

/* Column `col` of t (rows 1..n) as finite numbers. */
static int column_numbers(const lensnet_csv *t, const char *path, size_t col, double *out) {
  lensnet_error err;
  size_t r;
  for (r = 1; r < t->rows; r++) {
    if (lensnet_csv_number(t, r, col, &out[r - 1], &err) != LENSNET_OK) return lens_fail("%s: %s", path, err.message);
    if (!(out[r - 1] - out[r - 1] == 0))
      return lens_fail("%s:%lu: %s is '%s'; a finite number is needed", path, (unsigned long)t->lines[r], t->cells[col], lensnet_csv_cell(t, r, col));
  }
  return 0;
}

/* Rows are matched as lens eval matches a finder's scores (lens_eval_join): by object index when
 * both tables carry one (the labels an `index` column; the predictions `index`, or lens predict's
 * `input` cells "FILE.npy[i]" of one file or lens sim's "DIR/fits/NNNNNNN.fits"), the labels
 * perhaps holding more objects; else by the names of an `input` column in both; else in order,
 * their counts agreeing. Both tables are then put row for row in the objects' order. */
static int regress_join(regress_data *d, const char *spath, const char *lpath) {
  size_t *srow = NULL, *lrow = NULL, n = 0, r, c;
  char **cells, **scells;
  size_t *lines, *slines;
  int rc = lens_eval_join(&d->st, spath, &d->lt, lpath, 1, &srow, &lrow, &n, &d->join);
  if (rc) return rc;
  cells = (char **)malloc((n + 1) * d->lt.cols * sizeof *cells);
  lines = (size_t *)malloc((n + 1) * sizeof *lines);
  scells = (char **)malloc((n + 1) * d->st.cols * sizeof *scells);
  slines = (size_t *)malloc((n + 1) * sizeof *slines);
  if (!cells || !lines || !scells || !slines) {
    free(srow); free(lrow); free(cells); free(lines); free(scells); free(slines);
    return lens_fail("out of memory");
  }
  memcpy(cells, d->lt.cells, d->lt.cols * sizeof *cells); /* the headers */
  memcpy(scells, d->st.cells, d->st.cols * sizeof *scells);
  lines[0] = d->lt.lines[0];
  slines[0] = d->st.lines[0];
  for (r = 1; r <= n; r++) {
    for (c = 0; c < d->lt.cols; c++) cells[r * d->lt.cols + c] = d->lt.cells[lrow[r - 1] * d->lt.cols + c];
    for (c = 0; c < d->st.cols; c++) scells[r * d->st.cols + c] = d->st.cells[srow[r - 1] * d->st.cols + c];
    lines[r] = d->lt.lines[lrow[r - 1]];
    slines[r] = d->st.lines[srow[r - 1]];
  }
  free(srow);
  free(lrow);
  free(d->lt.cells);
  free(d->lt.lines);
  free(d->st.cells);
  free(d->st.lines);
  d->lt.cells = cells;
  d->lt.lines = lines;
  d->lt.rows = n + 1;
  d->st.cells = scells;
  d->st.lines = slines;
  d->st.rows = n + 1;
  return 0;
}

/* The predictions and the truth of the targets: those named (a comma list), or else every column
 * NAME of the predictions that has a NAME_sigma beside it. */
static int regress_read(const char *spath, const char *lpath, const char *targets, regress_data *d) {
  lensnet_error err;
  size_t c, j;
  int rc;
  memset(d, 0, sizeof *d);
  if (lensnet_csv_read(spath, &d->st, &err) != LENSNET_OK || lensnet_csv_read(lpath, &d->lt, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (d->st.rows < 2) return lens_fail("%s: no data rows", spath);
  if ((rc = regress_join(d, spath, lpath)) != 0) return rc;
  d->n = d->st.rows - 1;
  if (targets && *targets) {
    const char *p = targets;
    while (*p) {
      size_t len = strcspn(p, ",");
      if (d->count == LENSNET_REGRESSION_MAX) return lens_usage("--targets: at most %d", LENSNET_REGRESSION_MAX);
      if (!len || len > 32) return lens_usage("--targets '%s': an empty or overlong name", targets);
      memcpy(d->names[d->count], p, len);
      d->names[d->count][len] = 0;
      for (c = 0; c < d->count; c++)
        if (!strcmp(d->names[c], d->names[d->count])) return lens_usage("--targets '%s' names %s twice", targets, d->names[c]);
      d->count++;
      p += len + (p[len] == ',');
    }
  } else
    for (c = 0; c < d->st.cols; c++) {
      char sigma[64];
      size_t at;
      snprintf(sigma, sizeof sigma, "%s_sigma", d->st.cells[c]);
      if (strlen(d->st.cells[c]) <= 32 && lensnet_csv_column(d->st.header, sigma, &at, NULL) == LENSNET_OK && d->count < LENSNET_REGRESSION_MAX)
        snprintf(d->names[d->count++], sizeof d->names[0], "%s", d->st.cells[c]);
    }
  if (!d->count) return lens_fail("%s has no NAME,NAME_sigma column pairs (is it lens predict's output for a regression model?)", spath);
  for (j = 0; j < d->count; j++) {
    char sigma[64];
    size_t cm, cs, ct;
    int missing;
    snprintf(sigma, sizeof sigma, "%s_sigma", d->names[j]);
    if ((missing = need_column(&d->st, spath, d->names[j], &cm)) || (missing = need_column(&d->st, spath, sigma, &cs)) ||
        (missing = need_column(&d->lt, lpath, d->names[j], &ct)))
      return missing;
    d->truth[j] = (double *)malloc(d->n * sizeof(double));
    d->mean[j] = (double *)malloc(d->n * sizeof(double));
    d->sigma[j] = (double *)malloc(d->n * sizeof(double));
    if (!d->truth[j] || !d->mean[j] || !d->sigma[j]) return lens_fail("out of memory");
    if ((rc = column_numbers(&d->st, spath, cm, d->mean[j])) || (rc = column_numbers(&d->st, spath, cs, d->sigma[j])) ||
        (rc = column_numbers(&d->lt, lpath, ct, d->truth[j])))
      return rc;
  }
  return 0;
}

/* ---- lens eval --task regress ------------------------------------------------------------------ */

typedef struct {
  const char *scores, *labels, *out, *targets, *by_text[REGRESS_MAX_BY];
  size_t by_count, bins;
  int task;
} regress_eval_options;

static const char *const task_choices[] = {"classify", "regress", NULL};

#define T regress_eval_options
static const lens_option regress_eval_rows[] = {
  LENS_CHOICE(T, "task", LENS_OPT_REQUIRED, task, task_choices, 1, "regress", "regression: the figures below (lens eval without it: finders)"),
  LENS_TEXT(T, "scores", LENS_OPT_REQUIRED, scores, NULL, "PRED.csv", "lens predict's CSV for a regression model: input,NAME,NAME_sigma,..."),
  LENS_TEXT(T, "labels", LENS_OPT_REQUIRED, labels, NULL, "labels.csv", "the true values in columns NAME; matched as lens eval matches rows: by\n"
            "object index (index, lens predict's FILE.npy[i], lens sim's\n"
            "fits/NNNNNNN.fits), else by input names in both, else in order"),
  LENS_TEXT(T, "out", LENS_OPT_REQUIRED, out, NULL, "DIR", "folder for metrics.csv, metrics.json, coverage.csv, coverage.png"),
  LENS_TEXT(T, "targets", 0, targets, NULL, "LIST", "the targets to evaluate (default: every NAME with a NAME_sigma)"),
  LENS_LIST(T, "by", by_text, by_count, REGRESS_MAX_BY, "COLUMN", "also in quantile bins of this labels column (repeatable; default\n"
            "theta_E and arc_snr, those of them labels.csv has)"),
  LENS_SIZE(T, "bins", bins, 1, 100, 4, "N", "quantile bins per --by column (default 4)"),
};
#undef T
static const lens_option_section regress_eval_sections[] = {{NULL, regress_eval_rows, sizeof regress_eval_rows / sizeof regress_eval_rows[0]}};
static const lens_command_spec regress_eval_spec = {
  "eval", "usage: lens eval --task regress --scores PRED.csv --labels labels.csv --out DIR [options]\n",
  "A lens-modelling network's predictions against the truth, per target: bias, rms error,\n"
  "scatter, median |error|, the mean sigma, the rms of error/sigma, and the coverage of the\n"
  "68% and 95% intervals mean +- 0.9945 sigma and mean +- 1.96 sigma; overall and in quantile\n"
  "bins of --by columns. A coverage plot compares observed with expected coverage.\n",
  NULL, regress_eval_sections, 1,
  "DIR gets metrics.csv (a row per target and group), metrics.json (overall), coverage.csv (the\n"
  "observed coverage at levels 0.05 ... 0.95, 0.99) and coverage.png, each written whole or not at\n"
  "all; a summary goes to standard output. docs/modelling.md. Exit status: 0 done, 1 failure, 2 usage error.\n"};

static const double coverage_levels[REGRESS_LEVELS] = {0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55,
                                                       0.6, 0.65, 0.68, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99};

/* Figures of target j over the objects with pick[i] nonzero (pick NULL: all). */
static int regress_group(const regress_data *d, size_t j, const unsigned char *pick, lensviz_regress_result *res) {
  lensnet_error err;
  double *t = (double *)malloc((d->n ? d->n : 1) * 3 * sizeof(double)), *m, *s;
  size_t i, k = 0;
  lensnet_result r;
  if (!t) return lens_fail("out of memory");
  m = t + d->n; s = m + d->n;
  for (i = 0; i < d->n; i++)
    if (!pick || pick[i]) { t[k] = d->truth[j][i]; m[k] = d->mean[j][i]; s[k] = d->sigma[j][i]; k++; }
  r = lensviz_eval_regress(t, m, s, k, res, &err);
  free(t);
  return r == LENSNET_OK ? 0 : lens_fail("%s: %s", d->names[j], err.message);
}

static void metrics_row(FILE *f, const char *target, const char *group, double lo, double hi, const lensviz_regress_result *r) {
  lens_csv_cell(f, target);
  fputc(',', f);
  lens_csv_cell(f, group);
  fprintf(f, ",%.9g,%.9g,%lu,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.6f,%.6f\n", lo, hi, (unsigned long)r->n, r->bias, r->rms,
          r->scatter, r->median_abs, r->mean_sigma, r->z_rms, r->coverage68, r->coverage95);
}

/* metrics.csv: every target overall, then in the bins of each --by column. */
static int write_metrics(const regress_eval_options *o, const regress_data *d, const lensviz_regress_result *all) {
  char path[4200], tmp[4300];
  FILE *f;
  size_t j, b, k, i;
  int rc = 0;
  double *values = (double *)malloc((d->n ? d->n : 1) * sizeof(double)), edges[101]; /* --bins takes 1..100 */
  size_t ec = 0;
  lensnet_error err;
  unsigned char *pick = (unsigned char *)malloc(d->n ? d->n : 1);
  snprintf(path, sizeof path, "%s/metrics.csv", o->out);
  if (!values || !pick) rc = lens_fail("out of memory");
  if (rc == 0 && !(f = lens_text_open(path, tmp, sizeof tmp))) rc = LENS_EXIT_FAIL;
  if (rc) { free(values); free(pick); return rc; }
  fprintf(f, "target,group,lo,hi,n,bias,rms,scatter,median_abs,mean_sigma,z_rms,coverage68,coverage95\n");
  for (j = 0; j < d->count; j++) metrics_row(f, d->names[j], "all", NAN, NAN, &all[j]);
  for (b = 0; b < o->by_count && rc == 0; b++) {
    size_t col;
    if (lensnet_csv_column(d->lt.header, o->by_text[b], &col, NULL) != LENSNET_OK) continue; /* checked before: a default absent */
    if ((rc = column_numbers(&d->lt, o->labels, col, values)) != 0) break;
    /* the bins of lens eval --by COLUMN (lensviz_eval_quantile_edges: edges at the quantiles,
     * interpolated, equal edges merged; lensviz_eval_bin) */
    if (lensviz_eval_quantile_edges(values, NULL, d->n, LENSVIZ_EVAL_BIN_ALL, o->bins, edges, &ec, &err) != LENSNET_OK) {
      rc = lens_fail_err(&err);
      break;
    }
    if (ec >= 2 && ec - 1 < o->bins)
      fprintf(stderr, "lens: note: --by %s: tied values fill whole quantile bins, merged into the next: %lu group%s of %lu\n", o->by_text[b],
              (unsigned long)(ec - 1), ec == 2 ? "" : "s", (unsigned long)o->bins);
    for (k = 0; k + 1 < ec && rc == 0; k++) {
      char group[96];
      for (i = 0; i < d->n; i++) pick[i] = lensviz_eval_bin(values[i], edges, ec) == (long)k;
      snprintf(group, sizeof group, "%s_bin%lu", o->by_text[b], (unsigned long)k);
      for (j = 0; j < d->count && rc == 0; j++) {
        lensviz_regress_result r;
        if ((rc = regress_group(d, j, pick, &r)) == 0) metrics_row(f, d->names[j], group, edges[k], edges[k + 1], &r);
      }
    }
  }
  free(values); free(pick);
  if (rc) { lens_text_discard(f, tmp); return rc; }
  return lens_text_commit(f, tmp, path) ? LENS_EXIT_FAIL : 0;
}

static int write_json(const regress_eval_options *o, const regress_data *d, const lensviz_regress_result *all) {
  char path[4200], tmp[4300];
  FILE *f;
  size_t j;
  snprintf(path, sizeof path, "%s/metrics.json", o->out);
  if (!(f = lens_text_open(path, tmp, sizeof tmp))) return LENS_EXIT_FAIL;
  fprintf(f, "{\n  \"task\": \"regress\",\n  \"objects\": %lu,\n  \"targets\": {", (unsigned long)d->n);
  for (j = 0; j < d->count; j++) {
    const lensviz_regress_result *r = &all[j];
    fprintf(f, "%s\n    ", j ? "," : "");
    lens_json_string(f, d->names[j]);
    fprintf(f, ": {\"bias\": %.9g, \"rms\": %.9g, \"scatter\": %.9g, \"median_abs\": %.9g, \"mean_sigma\": %.9g, "
               "\"z_rms\": %.9g, \"coverage68\": %.6f, \"coverage95\": %.6f}",
            r->bias, r->rms, r->scatter, r->median_abs, r->mean_sigma, r->z_rms, r->coverage68, r->coverage95);
  }
  fprintf(f, "\n  }\n}\n");
  return lens_text_commit(f, tmp, path) ? LENS_EXIT_FAIL : 0;
}

/* coverage.csv and coverage.png: the share of objects whose level is at most p, per target. */
static int write_coverage(const regress_eval_options *o, const regress_data *d) {
  char path[4200], tmp[4300];
  float xs[REGRESS_LEVELS], ys[LENSNET_REGRESSION_MAX][REGRESS_LEVELS];
  FILE *f;
  size_t j, k, i;
  for (j = 0; j < d->count; j++)
    for (k = 0; k < REGRESS_LEVELS; k++) {
      size_t in = 0;
      for (i = 0; i < d->n; i++) in += lensviz_regress_level(d->truth[j][i], d->mean[j][i], d->sigma[j][i]) <= coverage_levels[k];
      ys[j][k] = (float)((double)in / (double)d->n);
    }
  snprintf(path, sizeof path, "%s/coverage.csv", o->out);
  if (!(f = lens_text_open(path, tmp, sizeof tmp))) return LENS_EXIT_FAIL;
  fprintf(f, "level");
  for (j = 0; j < d->count; j++) fprintf(f, ",%s", d->names[j]);
  fputc('\n', f);
  for (k = 0; k < REGRESS_LEVELS; k++) {
    xs[k] = (float)coverage_levels[k];
    fprintf(f, "%.2f", coverage_levels[k]);
    for (j = 0; j < d->count; j++) fprintf(f, ",%.6f", ys[j][k]);
    fputc('\n', f);
  }
  if (lens_text_commit(f, tmp, path)) return LENS_EXIT_FAIL;
  if (LENSVIZ_HAS_PNG) {
    static const unsigned char palette[8][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
                                                {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127}};
    lensviz_series series[LENSNET_REGRESSION_MAX];
    lensviz_plot_desc pd;
    lensviz_image img;
    lensnet_error err;
    memset(series, 0, sizeof series);
    memset(&pd, 0, sizeof pd);
    for (j = 0; j < d->count; j++) {
      series[j].x = xs; series[j].y = ys[j]; series[j].n = REGRESS_LEVELS; series[j].label = d->names[j];
      series[j].color = lensviz_rgb(palette[j % 8][0], palette[j % 8][1], palette[j % 8][2]);
      series[j].dashed = j >= 8;
    }
    pd.title = "Coverage of the intervals";
    pd.xlabel = "expected (interval level)";
    pd.ylabel = "observed share";
    pd.x1 = pd.y1 = 1.0f;
    pd.diagonal = 1;
    pd.legend_bottom = 1;
    if (lensviz_image_alloc(&img, 640, 480, &err) != LENSNET_OK) return lens_fail_err(&err);
    lensviz_plot_lines(&img, series, d->count, &pd);
    snprintf(path, sizeof path, "%s/coverage.png", o->out);
    if (lensviz_png_write(path, &img, &err) != LENSNET_OK) { lensviz_image_free(&img); return lens_fail_err(&err); }
    lensviz_image_free(&img);
  }
  return 0;
}

int lens_cmd_eval_regress(int argc, char **argv) {
  size_t made = 0; /* how much of --out this run created (lens_make_dirs_noted) */
  regress_eval_options o;
  regress_data d;
  lensviz_regress_result all[LENSNET_REGRESSION_MAX];
  size_t j, b;
  int rc;
  memset(&o, 0, sizeof o);
  if ((rc = lens_options_parse(&regress_eval_spec, argc, argv, &o, NULL)) != 0) return rc < 0 ? 0 : rc;
  if (lens_out_folder("--out", o.out)) return LENS_EXIT_USAGE;
  rc = regress_read(o.scores, o.labels, o.targets, &d);
  if (rc == 0 && !o.by_count) { /* the defaults, those the labels have */
    static const char *const defaults[] = {"theta_E", "arc_snr"};
    size_t col;
    for (b = 0; b < 2; b++)
      if (lensnet_csv_column(d.lt.header, defaults[b], &col, NULL) == LENSNET_OK) o.by_text[o.by_count++] = defaults[b];
  }
  for (b = 0; rc == 0 && b < o.by_count; b++) {
    size_t col;
    rc = need_column(&d.lt, o.labels, o.by_text[b], &col);
  }
  for (j = 0; rc == 0 && j < d.count; j++) rc = regress_group(&d, j, NULL, &all[j]);
  if (rc == 0) {
    static const char *const outputs[] = {"metrics.csv", "metrics.json", "coverage.csv", "coverage.png"};
    const char *inputs[2];
    inputs[0] = o.scores; inputs[1] = o.labels;
    rc = lens_out_dir_inputs("--out", o.out, outputs, 4, inputs, 2);
  }
  if (rc == 0 && lens_make_dirs_noted(o.out, &made)) rc = LENS_EXIT_FAIL;
  if (rc == 0) rc = write_metrics(&o, &d, all);
  if (rc == 0) rc = write_json(&o, &d, all);
  if (rc == 0) rc = write_coverage(&o, &d);
  if (rc == 0) {
    printf("eval: %lu objects, %lu targets (%s against %s, rows joined by %s)\n", (unsigned long)d.n, (unsigned long)d.count, o.scores,
           o.labels, d.join);
    printf("%-12s %11s %11s %11s %11s %7s %8s %8s\n", "target", "bias", "rms", "scatter", "mean sigma", "z_rms", "cover68", "cover95");
    for (j = 0; j < d.count; j++)
      printf("%-12s %11.4g %11.4g %11.4g %11.4g %7.3f %7.1f%% %7.1f%%\n", d.names[j], all[j].bias, all[j].rms, all[j].scatter, all[j].mean_sigma,
             all[j].z_rms, 100 * all[j].coverage68, 100 * all[j].coverage95);
    printf("-> %s/metrics.csv, metrics.json, coverage.csv%s\n", o.out, LENSVIZ_HAS_PNG ? ", coverage.png" : "");
  }
  if (rc) lens_remove_made_dirs(o.out, made); /* a folder this run made, left empty by a failure */
  regress_free(&d);
  return rc;
}

/* ---- lens calibrate ------------------------------------------------------------------------------ */

typedef struct {
  const char *model, *scores, *labels, *out, *predicted_with;
  int means;                /* --means: also a linear correction of the means */
  int levels;               /* --levels: index into level_choices */
} calibrate_options;

static const char *const level_choices[] = {"68", "68,95", NULL};

#define T calibrate_options
static const lens_option calibrate_rows[] = {
  LENS_TEXT(T, "model", LENS_OPT_REQUIRED, model, NULL, "M.safetensors", "the regression model that made --scores"),
  LENS_TEXT(T, "scores", LENS_OPT_REQUIRED, scores, NULL, "PRED.csv", "its predictions on a validation set (lens predict, with the --mc,\n"
            "--symmetries and --mc-mean the calibrated model will be used with)"),
  LENS_TEXT(T, "labels", LENS_OPT_REQUIRED, labels, NULL, "labels.csv", "the validation set's true values (rows matched to the predictions as\nlens eval matches them: by index, else input names, else in order)"),
  LENS_TEXT(T, "out", LENS_OPT_REQUIRED, out, NULL, "M2.safetensors", "the calibrated model (may be --model itself: written whole, then renamed)"),
  LENS_TEXT(T, "predicted-with", 0, predicted_with, NULL, "\"SETTINGS\"", "the lens predict settings that made --scores, e.g. \"--mc 24\n"
            "--symmetries 8\": recorded (regress.calibration_predict), so that lens\n"
            "predict says when it runs the model otherwise"),
  LENS_FLAG(T, "means", means, "first correct the means: truth ~ offset + slope x mean by least squares\n"
            "per target (regress.offset, regress.slope; a position or e1/e2 pair shares\n"
            "one slope and keeps offset 0, so it still turns with the image), then fit\n"
            "the sigmas' factors on the corrected errors"),
  LENS_CHOICE(T, "levels", 0, levels, level_choices, 0, "68|68,95", "68 (default): each factor makes the 68% interval hold 68% of the\n"
              "objects; 68,95: the factor that brings the 68% and 95% intervals' shares\n"
              "nearest to 68% and 95% together (least squares), for errors with heavy tails"),
};
#undef T
static const lens_option_section calibrate_sections[] = {{NULL, calibrate_rows, sizeof calibrate_rows / sizeof calibrate_rows[0]}};
static const lens_command_spec calibrate_spec = {
  "calibrate", "usage: lens calibrate --model M.safetensors --scores VAL_PRED.csv --labels VAL_labels.csv [--means] --out M2.safetensors\n",
  "Fits one factor per target on the sigmas of a regression model so that its 68% interval\n"
  "(mean +- 0.9945 sigma) holds 68% of the validation objects, and stores it in the model\n"
  "(metadata regress.scale, applied by lens predict). With --means, first a line per target\n"
  "(regress.slope, regress.offset) that every reader of the model applies to its means; the\n"
  "table shows the model's values, this fit composed with any correction it had (calibrating\n"
  "without --means keeps that correction). Use a validation set the model was not trained on,\n"
  "and evaluate on a third (lens eval --task regress).\n",
  NULL, calibrate_sections, 1, "docs/modelling.md. Exit status: 0 done, 1 failure, 2 usage error.\n"};

/* FNV-1a over the bits of every prediction (means and sigmas, as read): what a model's last
 * calibration used (metadata regress.calibration_scores), so that the same predictions are not
 * used twice (their sigmas are the model's before that calibration). */
static unsigned long long calibrate_scores_hash(const regress_data *d) {
  unsigned long long h = 1469598103934665603ull;
  size_t j, k, b;
  for (j = 0; j < d->count; j++)
    for (k = 0; k < d->n; k++) {
      double v[2];
      unsigned char bytes[sizeof v];
      v[0] = d->mean[j][k]; v[1] = d->sigma[j][k];
      memcpy(bytes, v, sizeof v);
      for (b = 0; b < sizeof bytes; b++) { h ^= bytes[b]; h *= 1099511628211ull; }
    }
  return h;
}

int lens_cmd_calibrate(int argc, char **argv) {
  calibrate_options o;
  regress_data d;
  lensnet_model *m = NULL;
  lensnet_regression reg;
  lensnet_error err;
  char scales[LENSNET_REGRESSION_MAX * 28], slopes[LENSNET_REGRESSION_MAX * 28], offsets[LENSNET_REGRESSION_MAX * 28], text[64], hash[24];
  char predicted[256];
  double slope[LENSNET_REGRESSION_MAX], offset[LENSNET_REGRESSION_MAX];
  int no_sigma[LENSNET_REGRESSION_MAX] = {0};
  size_t j, k, len = 0;
  int rc;
  memset(&o, 0, sizeof o);
  memset(&d, 0, sizeof d);
  if ((rc = lens_options_parse(&calibrate_spec, argc, argv, &o, NULL)) != 0) return rc < 0 ? 0 : rc;
  if (strlen(o.out) < 12 || strcmp(o.out + strlen(o.out) - 12, ".safetensors"))
    return lens_usage("--out %s: the calibrated model is a .safetensors file", o.out);
  if (o.predicted_with && !lens_predict_settings(o.predicted_with, predicted, sizeof predicted))
    return lens_usage("--predicted-with '%s': lens predict's --mc N, --symmetries 1|2|8 and --mc-mean, nothing else", o.predicted_with);
  if (lensnet_model_load(o.model, &m, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (!lensnet_model_meta(m, "regress.targets"))
    rc = lens_usage("--model %s is a classifier; lens calibrate calibrates the sigmas of regression models (lens train --task regress)",
                    o.model);
  else if (lensnet_model_regression(m, &reg, &err) != LENSNET_OK) rc = lens_fail("%s: %s", o.model, err.message);
  if (rc == 0) {
    /* the model's targets, in its order */
    char names[LENSNET_REGRESSION_MAX * 34];
    size_t nl = 0;
    names[0] = 0;
    for (j = 0; j < reg.count; j++) nl += (size_t)snprintf(names + nl, sizeof names - nl, "%s%s", j ? "," : "", reg.names[j]);
    rc = regress_read(o.scores, o.labels, names, &d);
  }
  if (rc == 0) {
    const char *used = lensnet_model_meta(m, "regress.calibration_scores");
    snprintf(hash, sizeof hash, "%016llx", calibrate_scores_hash(&d));
    if (used && !strcmp(used, hash))
      rc = lens_fail("%s: %s was calibrated on these very predictions already; its sigmas (and means) now differ from theirs: predict again "
                     "with %s, then calibrate", o.scores, o.model, o.model);
  }
  for (j = 0; rc == 0 && j < d.count; j++) { /* a factor needs errors and sigmas that are not all zero */
    int any_sigma = 0, any_error = 0;
    for (k = 0; k < d.n && rc == 0; k++) {
      if (!(d.sigma[j][k] >= 0) || d.sigma[j][k] - d.sigma[j][k] != 0)
        rc = lens_fail("%s:%lu: the sigma of %s is %g (sigmas are finite and >= 0)", o.scores,
                       (unsigned long)(d.st.lines ? d.st.lines[k + 1] : k + 2), d.names[j], d.sigma[j][k]);
      any_sigma |= d.sigma[j][k] > 0;
      any_error |= d.mean[j][k] != d.truth[j][k];
    }
    if (rc) break;
    no_sigma[j] = !any_sigma;
    if (!any_sigma && !o.means) rc = lens_fail("%s: every sigma of %s is 0: nothing to scale (--means corrects the means alone)", o.scores, d.names[j]);
    else if (!any_error) rc = lens_fail("%s: every prediction of %s equals its label: no errors to calibrate on", o.scores, d.names[j]);
  }
  if (rc == 0 && d.n < 100)
    fprintf(stderr, "lens: note: %lu validation objects: the factors%s are uncertain (a few hundred or more are advised)\n", (unsigned long)d.n,
            o.means ? " and the lines" : "");
  for (j = 0; rc == 0 && !o.means && d.n >= 20 && j < d.count; j++) { /* labels that are not these objects' leave the truth unrelated to the means (20 objects or more: fewer give slopes of noise) */
    double mm = 0, mt = 0, smm = 0, smt = 0, b;
    for (k = 0; k < d.n; k++) { mm += d.mean[j][k]; mt += d.truth[j][k]; }
    mm /= (double)d.n; mt /= (double)d.n;
    for (k = 0; k < d.n; k++) { smm += (d.mean[j][k] - mm) * (d.mean[j][k] - mm); smt += (d.mean[j][k] - mm) * (d.truth[j][k] - mt); }
    b = smm > 0 ? smt / smm : 0;
    if (!(b > 0.5 && b < 2))
      fprintf(stderr, "lens: note: %s: the true values follow the predicted means with a slope of %.3g, far from 1: check that the "
              "labels' rows are these objects' (or the model has not learnt it)\n", d.names[j], b);
  }
  if (rc == 0 && o.means) { /* the correction, then the means as the corrected model will predict them */
    size_t sl = 0, ol = 0;
    if (lensnet_regression_fit_means(&reg, (const double *const *)d.truth, (const double *const *)d.mean, d.n, slope, offset, &err) != LENSNET_OK)
      rc = lens_fail("%s: %s", o.scores, err.message);
    if (rc == 0) printf("calibrate: means, %lu validation objects (%s)\n%-12s %12s %12s %10s %10s\n", (unsigned long)d.n, o.scores, "target", "slope",
                        "offset", "rms", "->rms");
    for (j = 0; rc == 0 && j < d.count; j++) {
      /* d.mean holds offset + slope x m with the model's present values: a + b times it */
      double b = slope[j] / reg.slope[j], a = offset[j] - b * reg.offset[j], before = 0, after = 0;
      for (k = 0; k < d.n; k++) {
        double e0 = d.mean[j][k] - d.truth[j][k];
        d.mean[j][k] = a + b * d.mean[j][k];
        before += e0 * e0;
        after += (d.mean[j][k] - d.truth[j][k]) * (d.mean[j][k] - d.truth[j][k]);
      }
      printf("%-12s %12.6g %12.6g %10.4g %10.4g\n", d.names[j], slope[j], offset[j], sqrt(before / (double)d.n), sqrt(after / (double)d.n));
      if (!(b > 0.5 && b < 2))
        fprintf(stderr, "lens: note: %s: this fit's slope is %.3g, far from 1: check that the labels' rows are these objects'\n", d.names[j], b);
      sl += (size_t)snprintf(slopes + sl, sizeof slopes - sl, "%s%.9g", j ? "," : "", slope[j]);
      ol += (size_t)snprintf(offsets + ol, sizeof offsets - ol, "%s%.9g", j ? "," : "", offset[j]);
    }
  }
  if (rc == 0) printf("calibrate: %lu validation objects (%s)\n%-12s %9s %9s %9s %9s %9s\n", (unsigned long)d.n, o.scores, "target", "factor",
                      "cover68", "cover95", "->cover68", "->cover95");
  for (j = 0; rc == 0 && j < d.count; j++) {
    lensviz_regress_result before, after;
    double s;
    if (no_sigma[j]) { /* --means on a model without sigmas (mse, one pass): its scale stays */
      printf("%-12s %9s (every sigma 0)\n", d.names[j], "-");
      snprintf(text, sizeof text, "%s%.9g", j ? "," : "", reg.scale[j]);
      if (len + strlen(text) < sizeof scales) { memcpy(scales + len, text, strlen(text) + 1); len += strlen(text); }
      continue;
    }
    s = o.levels ? lensviz_regress_calibration_levels(d.truth[j], d.mean[j], d.sigma[j], d.n)
                 : lensviz_regress_calibration(d.truth[j], d.mean[j], d.sigma[j], d.n);
    if (!(s > 0 && s < 1e6)) { rc = lens_fail("%s: no calibration factor for %s (errors or sigmas too small)", o.scores, d.names[j]); break; }
    if ((rc = regress_group(&d, j, NULL, &before)) != 0) break;
    for (k = 0; k < d.n; k++) d.sigma[j][k] *= s;
    if ((rc = regress_group(&d, j, NULL, &after)) != 0) break;
    printf("%-12s %9.4f %8.1f%% %8.1f%% %8.1f%% %8.1f%%\n", d.names[j], s, 100 * before.coverage68, 100 * before.coverage95, 100 * after.coverage68,
           100 * after.coverage95);
    /* the predictions carry the model's current scale already: the new one multiplies it */
    snprintf(text, sizeof text, "%s%.9g", j ? "," : "", reg.scale[j] * s);
    if (len + strlen(text) < sizeof scales) { memcpy(scales + len, text, strlen(text) + 1); len += strlen(text); }
  }
  if (rc == 0) {
    snprintf(text, sizeof text, "%lu", (unsigned long)d.n);
    if (lensnet_model_set_meta(m, "regress.scale", scales) != LENSNET_OK || lensnet_model_set_meta(m, "regress.calibration_objects", text) != LENSNET_OK ||
        lensnet_model_set_meta(m, "regress.calibration_scores", hash) != LENSNET_OK ||
        lensnet_model_set_meta(m, "regress.calibration_predict", o.predicted_with ? predicted : NULL) != LENSNET_OK ||
        (o.means && (lensnet_model_set_meta(m, "regress.slope", slopes) != LENSNET_OK || lensnet_model_set_meta(m, "regress.offset", offsets) != LENSNET_OK)))
      rc = lens_fail("out of memory");
  }
  if (rc == 0 && lens_make_parents(o.out)) rc = LENS_EXIT_FAIL;
  if (rc == 0 && lensnet_model_save(m, o.out, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  if (rc == 0 && o.means) printf("-> %s (regress.scale %s; regress.slope %s; regress.offset %s)\n", o.out, scales, slopes, offsets);
  else if (rc == 0) printf("-> %s (regress.scale %s)\n", o.out, scales);
  regress_free(&d);
  lensnet_model_free(m);
  return rc;
}
