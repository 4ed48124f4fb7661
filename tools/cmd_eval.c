/* lens eval: how well a finder's scores tell lenses from non-lenses, overall, by kind, by bins of
 * label columns and at class priors; for K-class models, class by class.
 *
 *   lens eval --scores S.csv [--scores S2.csv ...] [--labels L.csv] [--by kind,theta_E] [--prior 1:100] --out DIR
 *
 * The figures and their rules are lensviz.h's (lensviz_eval_*); this file reads the two tables
 * (lensnet_csv_read; several --scores files, the shards of one run, as one table), joins their
 * rows, makes the groups, measures how far a locator's positions (center_x, center_y in both
 * tables) lie from the lenses' true ones, and writes DIR/metrics.json,
 * DIR/metrics.csv, DIR/curve.csv, DIR/roc.png and DIR/pr.png, with a summary on stdout.
 * docs/eval.md is the manual. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <math.h>
#include "lens_cmds.h"
#include "lensviz.h"
#include "cli.h"
#include "options.h"
#include "pool.h"

#define EVAL_MAX_BY 16
#define EVAL_MAX_PRIORS 8
#define EVAL_MAX_EDGES 64
/* --scores files read as one table: enough for a survey spread over thousands of jobs. */
#define EVAL_MAX_SCORES 4096

/* --prior A:B: lenses to non-lenses; the figures are reweighted to B/A non-lenses per lens. */
typedef struct {
  char name[72];    /* "1:100", as given */
  char suffix[72];  /* "1to100": metrics.csv's column suffix */
  double ratio;     /* B/A */
} eval_prior;

/* One --by column: categorical (a group per value) or numeric (bins). */
typedef struct {
  char name[64];
  double edges[EVAL_MAX_EDGES]; /* fixed edges (NAME:e0,e1,...); none: quantile bins */
  size_t edge_count;
} eval_by;

typedef struct {
  const char *scores_paths[EVAL_MAX_SCORES];
  size_t scores_count;
  const char *labels_path, *out, *score_column, *label_column;
  const char *by_text[EVAL_MAX_BY];
  size_t by_text_count;
  double threshold, level;
  size_t bootstrap, bins, threads;
  unsigned long long seed;
  eval_prior priors[EVAL_MAX_PRIORS];
  size_t prior_count;
  size_t recall_count, fpr_count;
  double recalls[LENSVIZ_EVAL_MAX_LEVELS], fprs[LENSVIZ_EVAL_MAX_LEVELS];
  eval_by by[EVAL_MAX_BY];
  size_t by_count;
  int task;                          /* --task: 0 classify (this table); regress goes to tools/cmd_regress.c */
  int join;                          /* --join: 0 auto, 1 order */
} eval_options;

/* "0.9,0.95" into at most LENSVIZ_EVAL_MAX_LEVELS numbers in (0, 1]. */
static int parse_levels(const char *label, const char *text, const char *example, double *out, size_t *count) {
  const char *p = text;
  *count = 0;
  while (*p) {
    char *end;
    double v = strtod(p, &end);
    if (end == p || !(v > 0.0 && v <= 1.0) || (*end && *end != ',') || *count == LENSVIZ_EVAL_MAX_LEVELS)
      return lens_usage("%s takes up to %d numbers in (0, 1] separated by commas, e.g. %s, got '%s'", label,
                        LENSVIZ_EVAL_MAX_LEVELS, example, text);
    out[(*count)++] = v;
    p = *end ? end + 1 : end;
  }
  if (!*count) return lens_usage("%s: the list is empty", label);
  return 0;
}

static int parse_recalls(const lens_option *o, const char *label, const char *text, void *opts) {
  eval_options *e = (eval_options *)opts;
  (void)o;
  return parse_levels(label, text, "0.9,0.95", e->recalls, &e->recall_count);
}

static int parse_fprs(const lens_option *o, const char *label, const char *text, void *opts) {
  eval_options *e = (eval_options *)opts;
  (void)o;
  return parse_levels(label, text, "0.01,0.001", e->fprs, &e->fpr_count);
}

/* "1:100,1:1000". */
static int parse_priors(const lens_option *o, const char *label, const char *text, void *opts) {
  eval_options *e = (eval_options *)opts;
  const char *p = text;
  (void)o;
  e->prior_count = 0;
  while (*p) {
    size_t len = strcspn(p, ",");
    char item[32], *colon, *end1, *end2;
    double a, b;
    eval_prior *pr;
    size_t i, kept = 0, k;
    if (len == 0 || len >= sizeof item || e->prior_count == EVAL_MAX_PRIORS) break;
    for (i = 0; i < len; i++) /* "1:100, 1:1000": spaces dropped */
      if (!isspace((unsigned char)p[i])) item[kept++] = p[i];
    item[kept] = 0;
    if (!(colon = strchr(item, ':'))) break;
    *colon = 0;
    a = strtod(item, &end1);
    b = strtod(colon + 1, &end2);
    if (end1 == item || *end1 || end2 == colon + 1 || *end2 || !(a > 0 && b > 0 && a < 1e300 && b < 1e300)) break;
    pr = &e->priors[e->prior_count++];
    snprintf(pr->name, sizeof pr->name, "%s:%s", item, colon + 1);
    snprintf(pr->suffix, sizeof pr->suffix, "%sto%s", item, colon + 1);
    pr->ratio = b / a;
    for (k = 0; k + 1 < e->prior_count; k++)
      if (!strcmp(e->priors[k].name, pr->name)) return lens_usage("%s names %s twice", label, pr->name);
    p += len;
    if (*p == ',') p++;
    if (!*p && p[-1] == ',') break;
    if (!*p) return 0;
  }
  return lens_usage("%s takes up to %d priors lenses:non-lenses such as 1:100,1:1000 (both numbers > 0), got '%s'", label,
                    EVAL_MAX_PRIORS, text);
}

static int is_number(const char *s) {
  char *end;
  if (!*s) return 0;
  strtod(s, &end);
  return *end == 0;
}

/* --by LIST (repeatable): names, each optionally with fixed edges, e.g.
 * "kind,theta_E:0,0.5,1,2,arc_snr": a number after NAME:e0 is another edge of NAME. */
static int parse_by(eval_options *o) {
  size_t t;
  for (t = 0; t < o->by_text_count; t++) {
    const char *p = o->by_text[t];
    eval_by *cur = NULL;
    while (*p) {
      size_t len = strcspn(p, ",");
      char tok[96];
      if (len >= sizeof tok) return lens_usage("--by: '%.*s...' is too long", 40, p);
      memcpy(tok, p, len);
      tok[len] = 0;
      p += len;
      if (*p == ',') p++;
      if (!tok[0]) return lens_usage("--by %s: an empty name", o->by_text[t]);
      if (is_number(tok)) {
        if (!cur || !cur->edge_count)
          return lens_usage("--by %s: the number %s follows no column with edges (write NAME:e0,e1,... e.g. theta_E:0,0.5,1,2)",
                            o->by_text[t], tok);
        if (cur->edge_count == EVAL_MAX_EDGES) return lens_usage("--by %s: at most %d edges per column", o->by_text[t], EVAL_MAX_EDGES);
        cur->edges[cur->edge_count] = strtod(tok, NULL);
        if (!(cur->edges[cur->edge_count] > cur->edges[cur->edge_count - 1]))
          return lens_usage("--by %s: the edges of %s must increase", o->by_text[t], cur->name);
        cur->edge_count++;
        continue;
      }
      if (o->by_count == EVAL_MAX_BY) return lens_usage("--by: at most %d columns", EVAL_MAX_BY);
      cur = &o->by[o->by_count++];
      memset(cur, 0, sizeof *cur);
      {
        char *colon = strchr(tok, ':');
        if (colon) {
          *colon = 0;
          if (!is_number(colon + 1)) return lens_usage("--by %s: '%s' after %s: is not a number", o->by_text[t], colon + 1, tok);
          cur->edges[0] = strtod(colon + 1, NULL);
          cur->edge_count = 1;
        }
        if (strlen(tok) >= sizeof cur->name || !tok[0]) return lens_usage("--by %s: a bad column name", o->by_text[t]);
        {
          size_t q;
          for (q = 0; q + 1 < o->by_count; q++)
            if (!strcmp(o->by[q].name, tok)) return lens_usage("--by names %s twice", tok);
        }
        strcpy(cur->name, tok);
      }
    }
    if (cur && cur->edge_count == 1)
      return lens_usage("--by %s: %s needs at least two edges (a bin is [e0, e1))", o->by_text[t], cur->name);
  }
  return 0;
}

static const char *const eval_task_choices[] = {"classify", "regress", NULL};
static const char *const eval_join_choices[] = {"auto", "order", NULL};

#define T eval_options
static const lens_option eval_rows[] = {
  LENS_CHOICE(T, "task", 0, task, eval_task_choices, 0, "classify|regress",
              "classify (default): a finder's scores, the figures below; regress: a lens-modelling\n"
              "network's predictions (lens eval --task regress --help)"),
  LENS_LIST_FLAGS(T, "scores", LENS_OPT_REQUIRED, scores_paths, scores_count, EVAL_MAX_SCORES, "FILE.csv",
                  "scores: the CSV of lens predict (p_lens, logit_<class>...); repeat\n"
                  "for the shards of a run (lens predict --shard I/N): up to 4096\n"
                  "files with the same header, read in order as one table"),
  LENS_TEXT(T, "labels", 0, labels_path, NULL, "FILE.csv", "labels: the labels.csv of lens sim (default: the scores file's own\n"
            "label column); rows joined by 'index' when both files have one (the scores'\n"
            "from input names FILE.npy[i] or lens sim's DIR/fits/NNNNNNN.fits), else\n"
            "by the file names of an 'input' column in both, else in order"),
  LENS_CHOICE(T, "join", 0, join, eval_join_choices, 0, "auto|order",
              "auto (default): as --labels says; order: row by row, whatever the files hold"),
  LENS_TEXT(T, "out", 0, out, NULL, "DIR", "folder for metrics.json, metrics.csv, curve.csv, roc.png, pr.png\n"
            "(none of them may be an input); without it, the summary alone\n(--task regress needs it)"),
  LENS_LIST(T, "by", by_text, by_text_count, EVAL_MAX_BY, "LIST", "groups: label columns such as kind,theta_E,arc_snr,mag_lens; text\n"
            "columns by value, numeric ones in quantile bins, or fixed edges\n"
            "with NAME:e0,e1,... (e.g. theta_E:0,0.5,1,2); may repeat"),
  LENS_SIZE(T, "bins", bins, 1, 100, 4, "N", "quantile bins of a numeric --by column without edges (default 4)"),
  LENS_DOUBLE(T, "threshold", threshold, -1e300, 1e300, 0.5, "T", "a lens when score >= T (default 0.5)"),
  LENS_CUSTOM(T, "prior", 0, priors, parse_priors, "LIST", "class priors lenses:non-lenses to reweight to, e.g. 1:100,1:1000"),
  LENS_CUSTOM(T, "at-recall", 0, recalls, parse_recalls, "LIST", "precision at these recalls (default 0.9,0.95)"),
  LENS_CUSTOM(T, "at-fpr", 0, fprs, parse_fprs, "LIST", "recall at these false-positive rates (default 0.01,0.001)"),
  LENS_SIZE(T, "bootstrap", bootstrap, 0, 1000000, 1000, "N", "resamples for the AUC intervals (default 1000; 0: none)"),
  LENS_DOUBLE(T, "level", level, 0.01, 0.999, 0.95, "L", "the intervals' coverage (default 0.95)"),
  LENS_SEED(T, "seed", seed, 1, "S", "seed of the resamples (default 1); the same seed, the same intervals"),
  LENS_TEXT(T, "score-column", 0, score_column, NULL, "NAME", "the score column (default p_lens; a file with 3 or more p_<class>\n"
            "columns, or else logit_<class> columns, softmaxed, is evaluated\n"
            "as K classes)"),
  LENS_TEXT(T, "label-column", 0, label_column, NULL, "NAME", "the label column (default label, class or is_lens)"),
  LENS_SIZE(T, "threads", threads, 1, 256, 0, "T", "threads for the resamples (default: the CPUs this process may use); results do not\n"
            "depend on T"),
};
#undef T
static const lens_option_section eval_sections[] = {{NULL, eval_rows, sizeof eval_rows / sizeof eval_rows[0]}};
static const lens_command_spec eval_spec = {
  "eval", "usage: lens eval --scores S.csv [--scores S2.csv ...] [--labels L.csv] [--out DIR] [options]\n",
  "Scores against labels: ROC AUC with a bootstrap interval, average precision, the confusion\n"
  "matrix, precision, recall, F1 and accuracy at --threshold, precision at fixed recall, recall\n"
  "at fixed false-positive rate; overall, per --by group, and reweighted to each --prior.\n"
  "A group holding one class (a lens kind) is evaluated against every object of the other.\n"
  "With center_x, center_y in the scores (lens predict --locator) and in the labels: the\n"
  "lenses' position errors (median, 68th and 90th percentiles, rms, share within 0.3\" and 1\").\n",
  NULL, eval_sections, 1,
  "DIR gets metrics.json, metrics.csv (a row per group), curve.csv (a point per threshold),\n"
  "roc.png and pr.png (not in a build without PNG), each written whole or not at all; a summary\n"
  "goes to standard output. docs/eval.md defines every figure. Exit status: 0 done, 1 failure\n"
  "(a file, its content), 2 usage error.\n"};

/* ---- the tables and the join ------------------------------------------------------------- */

/* The objects, joined: each has a row in the scores table and one in the labels table. */
typedef struct {
  lensnet_csv st, lt;           /* scores; labels (lt.rows == 0: labels from st) */
  const char *spath, *lpath;    /* spath: the first --scores file (all share its header) */
  const char *const *spaths;    /* every --scores file, in order */
  size_t scount;
  lensnet_csv *parts;           /* scount > 1: each file as read; st holds their rows one after another */
  size_t *row_part;             /* scount > 1: the file of each row of st */
  char sname[4096];             /* the score files in messages: the path, or "3 score files (a, b, c)" */
  const lensnet_csv *labels_table;
  size_t n;
  size_t *srow, *lrow;          /* the rows of object i */
  const char *join;             /* how the rows were matched */
  int labels_may_hold_more;     /* by index: the labels may name objects the scores lack (lens eval --task regress) */
  int no_join_option;           /* the command has no --join (lens plot, lens eval --task regress, lens calibrate): not offered */
  int two_class_only;           /* the command draws two classes only (lens plot): no advice on K classes */
  int join_order;               /* --join order: row by row */
  size_t classes;               /* 0: two classes (score column); K >= 3: per-class columns */
  size_t class_columns;         /* p_ or logit_ columns found (2 for a two-class model's logits) */
  char two_names[2][48];        /* with 2 of them, their classes */
  size_t class_col[LENSVIZ_EVAL_MAX_CLASSES];
  int class_logits;             /* the class columns are logits (softmaxed) */
  char class_names[LENSVIZ_EVAL_MAX_CLASSES][48];
  size_t score_col, label_col;
  float *scores;                /* n, or n * classes */
  int *labels;
  int positions;                /* center_x, center_y in the scores (a locator's) and in the labels */
  size_t pos_col[2], true_col[2]; /* their columns: scores, labels */
  lensviz_position_result pos;  /* the lenses' position errors, arcsec */
} eval_data;

/* "index, label, kind, ..." for messages, cut near cap. */
static const char *columns_found(const lensnet_csv *t, char *buf, size_t cap) {
  size_t c, at = 0;
  buf[0] = 0;
  for (c = 0; c < t->cols; c++) {
    int n = snprintf(buf + at, cap - at, "%s%s", c ? ", " : "", t->cells[c]);
    if (n < 0 || (size_t)n >= cap - at - 24) {
      snprintf(buf + at, cap - at, ", ... (%lu in all)", (unsigned long)t->cols);
      break;
    }
    at += (size_t)n;
  }
  return buf;
}

static int missing_column(const char *path, const lensnet_csv *t, const char *what, const char *hint) {
  char cols[768];
  return lens_fail("%s has no %s%s; columns found: %s", path, what, hint ? hint : "", columns_found(t, cols, sizeof cols));
}

static int read_table(const char *path, lensnet_csv *t) {
  lensnet_error err;
  if (lensnet_csv_read(path, t, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (t->rows < 2) return lens_fail("%s: no data rows (only the header: %s)", path, t->header);
  return 0;
}

/* The file a row of table t (the scores or the labels) was read from, for messages. */
static const char *row_file(const eval_data *d, const lensnet_csv *t, size_t row) {
  if (t != &d->st) return d->lpath;
  return d->row_part ? d->spaths[d->row_part[row]] : d->spath;
}

/* How messages and the summary call the score files: the path of one; for several, their count
 * and names (the first and the last of more than three). */
static void name_score_files(eval_data *d) {
  const char *const *p = d->spaths;
  size_t n = d->scount;
  if (n == 1) snprintf(d->sname, sizeof d->sname, "%s", p[0]);
  else if (n == 2) snprintf(d->sname, sizeof d->sname, "2 score files (%.2000s, %.2000s)", p[0], p[1]);
  else if (n == 3) snprintf(d->sname, sizeof d->sname, "3 score files (%.1300s, %.1300s, %.1300s)", p[0], p[1], p[2]);
  else snprintf(d->sname, sizeof d->sname, "%lu score files (%.2000s, ..., %.2000s)", (unsigned long)n, p[0], p[n - 1]);
}

/* Whether table b (read from bpath) has the header of a (apath); if not, a message naming bpath
 * and the first difference. */
static int same_header(const char *apath, const lensnet_csv *a, const char *bpath, const lensnet_csv *b) {
  char ca[768], cb[768];
  size_t c;
  if (a->cols != b->cols)
    return lens_fail("%s: the header differs from that of %s: %lu column%s (%s) where %s has %lu (%s); score files read as one "
                     "table need the same columns in the same order", bpath, apath, (unsigned long)b->cols, b->cols == 1 ? "" : "s",
                     columns_found(b, cb, sizeof cb), apath, (unsigned long)a->cols, columns_found(a, ca, sizeof ca));
  for (c = 0; c < a->cols; c++)
    if (strcmp(a->cells[c], b->cells[c]))
      return lens_fail("%s: the header differs from that of %s: column %lu is '%.200s' where %s has '%.200s'; score files read as "
                       "one table need the same columns in the same order", bpath, apath, (unsigned long)c + 1, b->cells[c], apath,
                       a->cells[c]);
  return 0;
}

/* Several --scores files as one table: each read whole, every header the first's, their rows one
 * after another in d->st, which points into the files' cells (a file may hold its header alone:
 * an empty shard). */
static int read_score_files(eval_data *d) {
  size_t i, r, rows = 1, at = 1, cols;
  lensnet_error err;
  int rc;
  if (!(d->parts = (lensnet_csv *)calloc(d->scount, sizeof *d->parts))) return lens_fail("out of memory");
  for (i = 0; i < d->scount; i++) {
    if (lensnet_csv_read(d->spaths[i], &d->parts[i], &err) != LENSNET_OK) return lens_fail_err(&err);
    if (i && (rc = same_header(d->spaths[0], &d->parts[0], d->spaths[i], &d->parts[i])) != 0) return rc;
    rows += d->parts[i].rows - 1;
  }
  if (rows == 1) return lens_fail("%s: no data rows (only the header: %s)", d->sname, d->parts[0].header);
  cols = d->parts[0].cols;
  d->st.cells = (char **)malloc(rows * cols * sizeof(char *));
  d->st.lines = (size_t *)malloc(rows * sizeof(size_t));
  d->row_part = (size_t *)malloc(rows * sizeof(size_t));
  if (!d->st.cells || !d->st.lines || !d->row_part) return lens_fail("out of memory for %lu rows", (unsigned long)rows);
  memcpy(d->st.cells, d->parts[0].cells, cols * sizeof(char *));
  d->st.lines[0] = d->parts[0].lines[0];
  d->row_part[0] = 0;
  for (i = 0; i < d->scount; i++)
    for (r = 1; r < d->parts[i].rows; r++, at++) {
      memcpy(d->st.cells + at * cols, d->parts[i].cells + r * cols, cols * sizeof(char *));
      d->st.lines[at] = d->parts[i].lines[r];
      d->row_part[at] = i;
    }
  d->st.header = d->parts[0].header;
  d->st.rows = rows;
  d->st.cols = cols;
  return 0;
}

/* Where an `input` cell names lens sim's FITS file of object i (DIR/fits/NNNNNNN.fits: seven or
 * more digits, the object's index, optionally .gz or .fz after it), the start of its digits and the
 * length of the folder part before them; NULL otherwise. */
static const char *sim_fits_digits(const char *cell, size_t *folder_len) {
  const char *slash = strrchr(cell, '/'), *base = slash ? slash + 1 : cell, *p = base;
  while (*p >= '0' && *p <= '9') p++;
  if (p - base < 7 || strncmp(p, ".fits", 5) != 0) return NULL;
  if (p[5] && strcmp(p + 5, ".gz") != 0 && strcmp(p + 5, ".fz") != 0) return NULL;
  *folder_len = (size_t)(base - cell);
  return base;
}

/* The key of a row: its `index` cell; for lens predict's `input` cells (from_input 1) "FILE.npy[i]",
 * i; (from_input 2) lens sim's "DIR/fits/NNNNNNN.fits", NNNNNNN. */
static int row_key(const lensnet_csv *t, size_t row, size_t col, int from_input, unsigned long long *key) {
  const char *cell = lensnet_csv_cell(t, row, col), *digits = cell;
  char *end;
  size_t folder;
  if (from_input == 1) {
    size_t len = strlen(cell);
    digits = len >= 3 && cell[len - 1] == ']' ? strrchr(cell, '[') : NULL;
    if (!digits) return 1;
    digits++;
  } else if (from_input == 2 && !(digits = sim_fits_digits(cell, &folder))) {
    return 1;
  }
  if (*digits < '0' || *digits > '9') return 1;
  *key = strtoull(digits, &end, 10);
  if (from_input == 1 ? *end != ']' : from_input == 2 ? *end != '.' : *end != 0) return 1;
  return 0;
}

typedef struct { unsigned long long key; size_t row; } keyed_row;

static int by_key(const void *a, const void *b) {
  const keyed_row *x = (const keyed_row *)a, *y = (const keyed_row *)b;
  return x->key < y->key ? -1 : x->key > y->key ? 1 : x->row < y->row ? -1 : x->row > y->row;
}

/* Where an index given twice appears (rows a < b of t): its lines, and its files when the table
 * is several score files. Returns what snprintf does. */
static int duplicate_text(const eval_data *d, const lensnet_csv *t, unsigned long long key, size_t a, size_t b, char *buf, size_t cap) {
  unsigned long la = (unsigned long)t->lines[a], lb = (unsigned long)t->lines[b];
  if (t != &d->st || !d->row_part) return snprintf(buf, cap, "index %llu on lines %lu and %lu", key, la, lb);
  if (d->row_part[a] == d->row_part[b]) return snprintf(buf, cap, "index %llu on lines %lu and %lu of %s", key, la, lb, row_file(d, t, a));
  return snprintf(buf, cap, "index %llu on line %lu of %s and line %lu of %s", key, la, row_file(d, t, a), lb, row_file(d, t, b));
}

/* The keys of every data row of t (d's scores or labels), sorted; duplicates refused, naming
 * them. */
static int table_keys(const eval_data *d, const lensnet_csv *t, size_t col, int from_input, keyed_row **out) {
  size_t r, n = t->rows - 1, dup = 0;
  keyed_row *k = (keyed_row *)malloc(n * sizeof *k);
  char list[2048];
  size_t at = 0;
  *out = NULL;
  if (!k) return lens_fail("out of memory");
  for (r = 0; r < n; r++) {
    k[r].row = r + 1;
    if (row_key(t, r + 1, col, from_input, &k[r].key)) {
      int rc = lens_fail("%s: line %lu: '%s' in column %s is not an object index (a whole number >= 0%s)", row_file(d, t, r + 1),
                         (unsigned long)t->lines[r + 1], lensnet_csv_cell(t, r + 1, col), t->cells[col],
                         from_input == 1 ? " in [...]" : from_input == 2 ? " as NNNNNNN.fits" : "");
      free(k);
      return rc;
    }
  }
  qsort(k, n, sizeof *k, by_key);
  list[0] = 0;
  for (r = 1; r < n; r++)
    if (k[r].key == k[r - 1].key && (r < 2 || k[r - 1].key != k[r - 2].key)) {
      if (dup++ < 5 && at < sizeof list) {
        if (dup > 1) at += (size_t)snprintf(list + at, sizeof list - at, "; ");
        if (at < sizeof list) at += (size_t)duplicate_text(d, t, k[r].key, k[r - 1].row, k[r].row, list + at, sizeof list - at);
      }
    }
  if (dup) {
    free(k);
    return lens_fail("%s: %lu duplicate object %s: %s%s", t == &d->st ? d->sname : d->lpath, (unsigned long)dup,
                     dup == 1 ? "index" : "indices", list, dup > 5 ? "; ..." : "");
  }
  *out = k;
  return 0;
}

/* Up to ten keys of a that b lacks, as text; their count. */
static size_t keys_missing(const keyed_row *a, size_t na, const keyed_row *b, size_t nb, char *buf, size_t cap) {
  size_t i = 0, j = 0, missing = 0, at = 0;
  buf[0] = 0;
  for (i = 0; i < na; i++) {
    while (j < nb && b[j].key < a[i].key) j++;
    if (j < nb && b[j].key == a[i].key) continue;
    if (missing++ < 10 && at < cap) at += (size_t)snprintf(buf + at, cap - at, "%s%llu", missing > 1 ? ", " : "", a[i].key);
  }
  if (missing > 10 && at < cap) snprintf(buf + at, cap - at, ", ...");
  return missing;
}

/* Whether every `input` cell reads "SAME[i]" for one SAME (one .npy given to lens predict): 1;
 * else whether every cell names lens sim's FITS file of an object in one folder,
 * "DIR/fits/NNNNNNN.fits" (lens predict given them in any order): 2; else 0. */
static int input_keys_usable(const lensnet_csv *t, size_t col) {
  int mode;
  for (mode = 1; mode <= 2; mode++) {
    size_t r, plen = 0;
    const char *first = NULL;
    for (r = 1; r < t->rows; r++) {
      const char *cell = lensnet_csv_cell(t, r, col);
      unsigned long long key;
      size_t len;
      if (row_key(t, r, col, mode, &key)) break;
      if (mode == 1) len = (size_t)(strrchr(cell, '[') - cell);
      else sim_fits_digits(cell, &len);
      if (!first) { first = cell; plen = len; }
      else if (len != plen || memcmp(cell, first, plen) != 0) break;
    }
    if (r == t->rows && t->rows > 1) return mode;
  }
  return 0;
}

/* One row's name in an `input` column: the cell, or with `base` its file name (after the last '/'). */
typedef struct { const char *name; size_t row; } named_row;

static int by_name(const void *a, const void *b) {
  const named_row *x = (const named_row *)a, *y = (const named_row *)b;
  int c = strcmp(x->name, y->name);
  return c ? c : x->row < y->row ? -1 : x->row > y->row;
}

static named_row *table_names(const lensnet_csv *t, size_t col, int base) {
  size_t r, n = t->rows - 1;
  named_row *k = (named_row *)malloc((n ? n : 1) * sizeof *k);
  if (!k) return NULL;
  for (r = 0; r < n; r++) {
    const char *cell = lensnet_csv_cell(t, r + 1, col), *slash = base ? strrchr(cell, '/') : NULL;
    k[r].name = slash ? slash + 1 : cell;
    k[r].row = r + 1;
  }
  qsort(k, n, sizeof *k, by_name);
  return k;
}

/* The first name given twice among sorted rows k[n], or NULL. */
static const named_row *name_twice(const named_row *k, size_t n) {
  size_t r;
  for (r = 1; r < n; r++)
    if (!strcmp(k[r].name, k[r - 1].name)) return &k[r - 1];
  return NULL;
}

/* Up to five names of a that b lacks, as text; their count. */
static size_t names_missing(const named_row *a, size_t na, const named_row *b, size_t nb, char *buf, size_t cap) {
  size_t i, j = 0, missing = 0, at = 0;
  buf[0] = 0;
  for (i = 0; i < na; i++) {
    while (j < nb && strcmp(b[j].name, a[i].name) < 0) j++;
    if (j < nb && !strcmp(b[j].name, a[i].name)) continue;
    if (missing++ < 5 && at < cap) at += (size_t)snprintf(buf + at, cap - at, "%s%.80s", missing > 1 ? ", " : "", a[i].name);
  }
  if (missing > 5 && at < cap) snprintf(buf + at, cap - at, ", ...");
  return missing;
}

/* Both tables name their objects in an `input` column (lens predict's, and a label list of the
 * same files): rows go by those names, the whole cell or else the file name (a label list
 * written without the folders), in the score files' order. Names must be unique and the same in
 * both; a list of names that differ is refused, naming some, rather than joined in order. */
static int join_by_input(eval_data *d, size_t s_in, size_t l_in) {
  const lensnet_csv *st = &d->st, *lt = d->labels_table;
  size_t n = st->rows - 1, r, only_s = 0, only_l = 0;
  char a[512], b[512], fa[512], fb[512];
  int base, by_file = 0;
  if (st->rows != lt->rows)
    return lens_fail("%s %s %lu rows and %s %lu: rows are matched by their 'input' names and the objects must be the same%s", d->sname,
                     d->row_part ? "hold" : "has", (unsigned long)n, d->lpath, (unsigned long)lt->rows - 1,
                     d->no_join_option ? "" : " (--join order matches them row by row)");
  for (base = 0; base < 2; base++) {
    named_row *sk = table_names(st, s_in, base), *lk = table_names(lt, l_in, base);
    const named_row *twice_s, *twice_l;
    size_t missing;
    if (!sk || !lk) { free(sk); free(lk); return lens_fail("out of memory"); }
    twice_s = name_twice(sk, n);
    twice_l = name_twice(lk, n);
    if (twice_s || twice_l) {
      const lensnet_csv *t = twice_s ? st : lt;
      const named_row *tw = twice_s ? twice_s : twice_l;
      int rc = base ? 0 /* file names repeat across folders: only whole names can join */
                    : lens_fail("%s: the input '%.200s' is on lines %lu and %lu: rows are matched by their 'input' names, which must be "
                                "unique%s", twice_s ? row_file(d, t, tw->row) : d->lpath, tw->name,
                                (unsigned long)t->lines[tw->row], (unsigned long)t->lines[(tw + 1)->row],
                                d->no_join_option ? "" : " (--join order matches them row by row)");
      free(sk);
      free(lk);
      if (rc) return rc;
      break;
    }
    missing = names_missing(sk, n, lk, n, base ? fa : a, sizeof a);
    if (!base) {
      only_s = missing;
      only_l = names_missing(lk, n, sk, n, b, sizeof b);
    } else if (missing) { /* the file names come closer: the refusal reports those */
      size_t other = names_missing(lk, n, sk, n, fb, sizeof fb);
      if (missing + other < only_s + only_l) {
        only_s = missing;
        only_l = other;
        memcpy(a, fa, sizeof a);
        memcpy(b, fb, sizeof b);
        by_file = 1;
      }
    }
    if (missing == 0) { /* n names each, none twice, all of one in the other: one to one */
      d->n = n;
      d->srow = (size_t *)malloc((n ? n : 1) * sizeof(size_t));
      d->lrow = (size_t *)malloc((n ? n : 1) * sizeof(size_t));
      if (!d->srow || !d->lrow) { free(sk); free(lk); return lens_fail("out of memory"); }
      for (r = 0; r < n; r++) { /* sorted alike, the r-th names are equal; objects in the score files' order */
        d->srow[sk[r].row - 1] = sk[r].row;
        d->lrow[sk[r].row - 1] = lk[r].row;
      }
      free(sk);
      free(lk);
      d->join = base ? "input (the file names)" : "input";
      return 0;
    }
    free(sk);
    free(lk);
  }
  return lens_fail("the 'input' columns of %s and %s name different objects%s: %lu only in %s (%s); %lu only in %s (%s). Rows are matched by "
                   "those names when both files have them (whole, or else by file name)%s", d->sname, d->lpath,
                   by_file ? " (compared by file name, the folders left out)" : "", (unsigned long)only_s, d->sname, a, (unsigned long)only_l, d->lpath, b,
                   d->no_join_option ? "" : "; --join order matches them row by row");
}

/* Matches the rows of the two tables: by index when both have one, else by the names of an
 * `input` column in both, else row by row (always row by row with --join order). */
static int join_rows(eval_data *d) {
  const lensnet_csv *st = &d->st, *lt = d->labels_table;
  size_t s_idx, l_idx, r, at;
  int s_has = lensnet_csv_column(st->header, "index", &s_idx, NULL) == LENSNET_OK;
  int l_has = lensnet_csv_column(lt->header, "index", &l_idx, NULL) == LENSNET_OK, from_input = 0, rc;
  keyed_row *sk = NULL, *lk = NULL;
  if (lt == st) {
    d->n = st->rows - 1;
    d->join = d->row_part ? "one table (the score files in the order given)" : "one file";
  } else {
    size_t s_in, l_in;
    if (!s_has && l_has && lensnet_csv_column(st->header, "input", &s_idx, NULL) == LENSNET_OK &&
        (from_input = input_keys_usable(st, s_idx)) != 0)
      s_has = 1;
    if (d->join_order) s_has = l_has = 0;
    if (!(s_has && l_has) && !d->join_order && lensnet_csv_column(st->header, "input", &s_in, NULL) == LENSNET_OK &&
        lensnet_csv_column(lt->header, "input", &l_in, NULL) == LENSNET_OK)
      return join_by_input(d, s_in, l_in);
    if (!(s_has && l_has)) {
      if (st->rows != lt->rows)
        return lens_fail("%s %s %lu rows and %s %lu: without an 'index' column in both, rows are matched in order and their numbers "
                         "must agree", d->sname, d->row_part ? "hold" : "has", (unsigned long)st->rows - 1, d->lpath,
                         (unsigned long)lt->rows - 1);
      d->n = st->rows - 1;
      d->join = "row order";
      { /* one table's object indices out of row order: the rows were probably not written in the same order */
        const lensnet_csv *t[2];
        const char *names[2];
        size_t col, k;
        t[0] = st; t[1] = lt; names[0] = d->sname; names[1] = d->lpath;
        for (k = 0; k < 2 && !d->join_order; k++) {
          int mode = 0;
          if (lensnet_csv_column(t[k]->header, "index", &col, NULL) != LENSNET_OK) {
            if (lensnet_csv_column(t[k]->header, "input", &col, NULL) != LENSNET_OK || !(mode = input_keys_usable(t[k], col))) continue;
          }
          for (r = 1; r < t[k]->rows; r++) {
            unsigned long long key;
            if (row_key(t[k], r, col, mode, &key) || key != r - 1) break;
          }
          if (r < t[k]->rows)
            fprintf(stderr, "lens: note: %s numbers its objects (%s) out of row order (line %lu is not object %lu), but %s has no index: "
                    "rows were matched in order; give both an index column%s\n", names[k],
                    mode ? "its input column's [i] or file numbers" : "its index column", (unsigned long)t[k]->lines[r],
                    (unsigned long)r - 1, names[1 - k], d->no_join_option ? "" : " (or --join order to silence this)");
        }
      }
    } else {
      char a[256], b[256];
      size_t only_s, only_l;
      if ((rc = table_keys(d, st, s_idx, from_input, &sk)) != 0) return rc;
      if ((rc = table_keys(d, lt, l_idx, 0, &lk)) != 0) { free(sk); return rc; }
      only_s = keys_missing(sk, st->rows - 1, lk, lt->rows - 1, a, sizeof a);
      only_l = keys_missing(lk, lt->rows - 1, sk, st->rows - 1, b, sizeof b);
      if (only_s || (only_l && !d->labels_may_hold_more)) {
        rc = lens_fail("the objects of %s and %s differ: %lu %s only in %s%s%s%s; %lu only in %s%s%s%s", d->sname, d->lpath,
                       (unsigned long)only_s, only_s == 1 ? "index is" : "indices are", d->sname, only_s ? " (" : "", a, only_s ? ")" : "",
                       (unsigned long)only_l, d->lpath, only_l ? " (" : "", b, only_l ? ")" : "");
        free(sk);
        free(lk);
        return rc;
      }
      d->n = st->rows - 1;
      d->join = from_input == 1 ? "index (from the input column's [i])"
                : from_input == 2 ? "index (from the input column's file names, lens sim's fits/NNNNNNN.fits)" : "index";
    }
  }
  d->srow = (size_t *)malloc(d->n * sizeof(size_t));
  d->lrow = (size_t *)malloc(d->n * sizeof(size_t));
  if (!d->srow || !d->lrow) { free(sk); free(lk); return lens_fail("out of memory"); }
  for (r = 0, at = 0; r < d->n; r++) {
    d->srow[r] = sk ? sk[r].row : r + 1; /* by index: objects in index order */
    if (lk) while (lk[at].key < sk[r].key) at++; /* (the labels' keys, sorted, hold every score's) */
    d->lrow[r] = lk ? lk[at].row : r + 1;
  }
  free(sk);
  free(lk);
  return 0;
}

/* K-class mode: three or more p_<class> columns (probabilities), else logit_<class> columns. */
static void find_class_columns(eval_data *d) {
  static const char *const prefixes[2] = {"p_", "logit_"};
  int pass;
  for (pass = 0; pass < 2 && !d->classes; pass++) {
    size_t c, k = 0, len = strlen(prefixes[pass]);
    for (c = 0; c < d->st.cols; c++)
      if (!strncmp(d->st.cells[c], prefixes[pass], len) && d->st.cells[c][len] && k < LENSVIZ_EVAL_MAX_CLASSES) {
        d->class_col[k] = c;
        snprintf(d->class_names[k], sizeof d->class_names[k], "%s", d->st.cells[c] + len);
        k++;
      }
    if (k > d->class_columns) {
      d->class_columns = k;
      if (k == 2) { /* a two-class model's columns, named in the message on labels of more classes */
        snprintf(d->two_names[0], sizeof d->two_names[0], "%s", d->class_names[0]);
        snprintf(d->two_names[1], sizeof d->two_names[1], "%s", d->class_names[1]);
      }
    }
    if (k >= 3) {
      d->classes = k;
      d->class_logits = pass == 1;
    }
  }
}

/* A finite number from cell (row, col) of t, or a message naming the line. */
static int finite_cell(const lensnet_csv *t, const char *path, size_t row, size_t col, const char *what, double *v) {
  lensnet_error err;
  if (lensnet_csv_number(t, row, col, v, &err) != LENSNET_OK) return lens_fail("%s: %s", path, err.message);
  if (!isfinite(*v))
    return lens_fail("%s: line %lu: %s '%s' in column %s is not a finite number", path, (unsigned long)t->lines[row], what,
                     lensnet_csv_cell(t, row, col), t->cells[col]);
  return 0;
}

/* Positions are evaluated when the scores have a locator's center_x, center_y (lens predict
 * --locator) and a separate labels table has the true ones, in two-class mode (label 1: a lens). */
static void find_position_columns(eval_data *d) {
  static const char *const names[2] = {"center_x", "center_y"};
  int k, in_scores = 1, in_labels = 1;
  for (k = 0; k < 2; k++) {
    in_scores &= lensnet_csv_column(d->st.header, names[k], &d->pos_col[k], NULL) == LENSNET_OK;
    in_labels &= lensnet_csv_column(d->labels_table->header, names[k], &d->true_col[k], NULL) == LENSNET_OK;
  }
  if (!in_scores || d->labels_table == &d->st || d->classes) return;
  if (!in_labels) {
    fprintf(stderr, "lens: note: %s %s center_x, center_y but %s lacks them: no position errors\n", d->sname,
            d->scount > 1 ? "have" : "has", d->lpath);
    return;
  }
  d->positions = 1;
}

/* The position errors of the lenses (lensviz_eval_positions): within 0.3" (a pixel of OU-66's
 * inputs) and 1". */
static int evaluate_positions(eval_data *d) {
  static const double radii[2] = {0.3, 1.0};
  const lensnet_csv *lt = d->labels_table;
  double *v;
  size_t i, k, m = 0;
  lensnet_error err;
  int rc = 0;
  if (!d->positions) return 0;
  if (!(v = (double *)malloc((d->n ? d->n : 1) * 4 * sizeof(double)))) return lens_fail("out of memory");
  for (i = 0; i < d->n && !rc; i++) {
    if (d->labels[i] != 1) continue;
    for (k = 0; k < 2 && !rc; k++) {
      rc = finite_cell(lt, row_file(d, lt, d->lrow[i]), d->lrow[i], d->true_col[k], "position", &v[k * d->n + m]);
      if (!rc) rc = finite_cell(&d->st, row_file(d, &d->st, d->srow[i]), d->srow[i], d->pos_col[k], "position", &v[(2 + k) * d->n + m]);
    }
    m++;
  }
  if (!rc && lensviz_eval_positions(v, v + d->n, v + 2 * d->n, v + 3 * d->n, m, radii, 2, &d->pos, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  free(v);
  return rc;
}

/* K classes: when the labels' kind column names only classes of the scores (lens sim's
 * deeplense-substructure writes no_substructure, subhalos, vortex), every object's kind must be
 * the class its label numbers: scores whose class columns come in another order than the labels
 * count would otherwise be scored against the wrong classes without a word. */
static int check_kinds(const eval_data *d) {
  const lensnet_csv *lt = d->labels_table;
  size_t kc, i, c;
  if (lensnet_csv_column(lt->header, "kind", &kc, NULL) != LENSNET_OK) return 0;
  for (i = 0; i < d->n; i++) { /* a kind that is not a class name: kinds are something else here */
    const char *kind = lensnet_csv_cell(lt, d->lrow[i], kc);
    for (c = 0; c < d->classes && strcmp(kind, d->class_names[c]); c++) {}
    if (c == d->classes) return 0;
  }
  for (i = 0; i < d->n; i++) {
    const char *kind = lensnet_csv_cell(lt, d->lrow[i], kc);
    if (strcmp(kind, d->class_names[d->labels[i]]))
      return lens_fail("%s: line %lu: label %d is kind '%.48s', but the scores' class %d is '%s' (their columns: %s%s, %s%s, ...): the "
                       "scores and the labels number the classes differently", row_file(d, lt, d->lrow[i]),
                       (unsigned long)lt->lines[d->lrow[i]], d->labels[i], kind, d->labels[i], d->class_names[d->labels[i]],
                       d->class_logits ? "logit_" : "p_", d->class_names[0], d->class_logits ? "logit_" : "p_", d->class_names[1]);
  }
  return 0;
}

static int read_scores_and_labels(eval_data *d) {
  const lensnet_csv *lt = d->labels_table;
  size_t i, c, k = d->classes ? d->classes : 1;
  int rc;
  d->scores = (float *)malloc(d->n * k * sizeof(float));
  d->labels = (int *)malloc(d->n * sizeof(int));
  if (!d->scores || !d->labels) return lens_fail("out of memory for %lu objects", (unsigned long)d->n);
  for (i = 0; i < d->n; i++) {
    double v, lab;
    if ((rc = finite_cell(lt, row_file(d, lt, d->lrow[i]), d->lrow[i], d->label_col, "label", &lab)) != 0) return rc;
    if (lab != floor(lab) || lab < 0 || lab >= (double)(d->classes ? d->classes : 2)) {
      char where[256];
      snprintf(where, sizeof where, "%s: line %lu: label '%.32s' in column %.64s", row_file(d, lt, d->lrow[i]),
               (unsigned long)lt->lines[d->lrow[i]], lensnet_csv_cell(lt, d->lrow[i], d->label_col), lt->cells[d->label_col]);
      if (d->classes)
        return lens_fail("%s: the scores have %lu class columns, so labels are 0..%lu", where, (unsigned long)d->classes,
                         (unsigned long)d->classes - 1);
      if (d->class_columns == 2 && !d->two_class_only)
        return lens_fail("%s: the scores are a two-class model's (%s, %s), so labels are 0 and 1", where, d->two_names[0], d->two_names[1]);
      return lens_fail("%s: a two-class evaluation takes 0 (non-lens) and 1 (lens)%s", where,
                       d->two_class_only ? "" : "; for K classes the scores need a column per class (logit_<class> or p_<class>)");
    }
    d->labels[i] = (int)lab;
    if (!d->classes) {
      if ((rc = finite_cell(&d->st, row_file(d, &d->st, d->srow[i]), d->srow[i], d->score_col, "score", &v)) != 0) return rc;
      d->scores[i] = (float)v;
      continue;
    }
    for (c = 0; c < k; c++) {
      if ((rc = finite_cell(&d->st, row_file(d, &d->st, d->srow[i]), d->srow[i], d->class_col[c], "score", &v)) != 0) return rc;
      d->scores[i * k + c] = (float)v;
    }
    if (d->class_logits) {
      float z[LENSVIZ_EVAL_MAX_CLASSES];
      memcpy(z, d->scores + i * k, k * sizeof(float));
      for (c = 0; c < k; c++) d->scores[i * k + c] = (float)lensnet_lens_probability(z, k, c);
    }
  }
  return d->classes ? check_kinds(d) : 0;
}

static int load_data(const eval_options *o, eval_data *d) {
  int rc;
  d->spaths = o->scores_paths;
  d->scount = o->scores_count;
  d->spath = o->scores_paths[0];
  d->lpath = o->labels_path;
  d->join_order = o->join == 1;
  name_score_files(d);
  if ((rc = d->scount > 1 ? read_score_files(d) : read_table(d->spath, &d->st)) != 0) return rc;
  if (o->labels_path && (rc = read_table(o->labels_path, &d->lt)) != 0) return rc;
  d->labels_table = o->labels_path ? &d->lt : &d->st;
  /* the label column */
  if (o->label_column) {
    if (lensnet_csv_column(d->labels_table->header, o->label_column, &d->label_col, NULL) != LENSNET_OK)
      return missing_column(o->labels_path ? d->lpath : d->spath, d->labels_table, "label column ", o->label_column);
  } else if (lensnet_csv_label_column(d->labels_table->header, &d->label_col, NULL) != LENSNET_OK ||
             (d->labels_table == &d->st && d->st.cols == 1)) {
    return missing_column(o->labels_path ? d->lpath : d->spath, d->labels_table, "label column (label, class or is_lens)",
                          o->labels_path ? NULL : "; give the labels with --labels FILE.csv");
  }
  /* the scores: one column, or one per class */
  if (!o->score_column) find_class_columns(d);
  if (!d->classes && lensnet_csv_column(d->st.header, o->score_column ? o->score_column : "p_lens", &d->score_col, NULL) != LENSNET_OK) {
    char what[128];
    size_t c;
    int sigmas = 0; /* NAME_sigma columns: a lens-modelling network's predictions */
    for (c = 0; c < d->st.cols; c++) {
      size_t len = strlen(d->st.cells[c]);
      sigmas |= len > 6 && !strcmp(d->st.cells[c] + len - 6, "_sigma");
    }
    snprintf(what, sizeof what, "score column %s", o->score_column ? o->score_column : "p_lens");
    return missing_column(d->spath, &d->st, what,
                          sigmas ? " (its NAME_sigma columns are a lens-modelling network's: evaluate them with --task regress)"
                                 : " (choose one with --score-column)");
  }
  if (!d->classes) { /* a column named twice: which one is meant is not known */
    size_t c, seen = 0;
    for (c = 0; c < d->st.cols; c++) seen += !strcmp(d->st.cells[c], d->st.cells[d->score_col]);
    if (seen > 1) return lens_fail("%s: the score column %s appears %lu times in the header", d->spath, d->st.cells[d->score_col], (unsigned long)seen);
  }
  if ((rc = join_rows(d)) != 0) return rc;
  find_position_columns(d);
  if ((rc = read_scores_and_labels(d)) != 0) return rc;
  return evaluate_positions(d); /* cheap, and a bad position is best refused before the resamples */
}

static void free_data(eval_data *d) {
  size_t i;
  if (d->parts) { /* st points into the parts */
    free(d->st.cells);
    free(d->st.lines);
    memset(&d->st, 0, sizeof d->st);
    for (i = 0; i < d->scount; i++) lensnet_csv_free(&d->parts[i]);
    free(d->parts);
    free(d->row_part);
  }
  lensnet_csv_free(&d->st);
  lensnet_csv_free(&d->lt);
  free(d->srow);
  free(d->lrow);
  free(d->scores);
  free(d->labels);
}

int lens_eval_join(const lensnet_csv *st, const char *spath, const lensnet_csv *lt, const char *lpath, int labels_may_hold_more,
                   size_t **srow, size_t **lrow, size_t *n, const char **how) {
  eval_data d;
  int rc;
  memset(&d, 0, sizeof d);
  d.st = *st; /* borrowed: join_rows reads the tables and frees nothing of them */
  d.lt = *lt;
  d.labels_table = &d.lt;
  d.spaths = &spath;
  d.scount = 1;
  d.spath = spath;
  d.lpath = lpath;
  d.labels_may_hold_more = labels_may_hold_more;
  d.no_join_option = 1;
  name_score_files(&d);
  rc = join_rows(&d);
  if (rc) { free(d.srow); free(d.lrow); return rc; }
  *srow = d.srow; *lrow = d.lrow; *n = d.n; *how = d.join;
  return 0;
}

/* One score file's scores and 0/1 labels, read and joined as lens eval joins them (by index, by
 * input names, else in row order, with the same checks and notes), for lens plot. */
int lens_eval_scored(const char *scores_path, const char *labels_path, const char *score_column, const char *label_column,
                     float **scores, int **labels, size_t *n) {
  eval_options o;
  eval_data d;
  int rc;
  memset(&o, 0, sizeof o);
  memset(&d, 0, sizeof d);
  o.scores_paths[0] = scores_path;
  o.scores_count = 1;
  o.labels_path = labels_path;
  o.score_column = score_column; /* given: one score column, two classes */
  o.label_column = label_column;
  d.no_join_option = d.two_class_only = 1; /* lens plot: neither --join nor K classes */
  rc = load_data(&o, &d);
  if (!rc) {
    *scores = d.scores; *labels = d.labels; *n = d.n;
    d.scores = NULL; d.labels = NULL;
  }
  free_data(&d);
  return rc;
}

/* ---- groups ------------------------------------------------------------------------------ */

typedef struct {
  char name[160];               /* "all", "kind=compound_arc", "theta_E[0.5:1)" */
  const char *column;           /* NULL for all */
  char value[64];               /* the category, or the bin's number */
  double lo, hi;                /* a bin's edges (NaN otherwise) */
  int closed;                   /* the bin includes hi */
  unsigned char *in;            /* n flags */
  lensviz_eval_members members;
  lensviz_eval_result sample, at_prior[EVAL_MAX_PRIORS];
  lensviz_eval_classes *classes; /* K-class mode */
} eval_group;

/* What one --by column became, for the summary and metrics.json. */
typedef struct {
  const eval_by *spec;
  int numeric;
  lensviz_eval_binned binned;
  double edges[EVAL_MAX_EDGES];
  size_t edge_count, outside;   /* objects binned that fall in no bin (fixed edges) */
  size_t first_group, group_count;
} eval_column;

typedef struct {
  eval_group *groups;
  size_t count, cap;
  eval_column columns[EVAL_MAX_BY];
  size_t column_count;
} eval_groups;

static eval_group *add_group(eval_groups *g, size_t n) {
  eval_group *x;
  if (g->count == g->cap) {
    size_t cap = g->cap ? g->cap * 2 : 16;
    eval_group *ng = (eval_group *)realloc(g->groups, cap * sizeof *ng);
    if (!ng) return NULL;
    g->groups = ng;
    g->cap = cap;
  }
  x = &g->groups[g->count];
  memset(x, 0, sizeof *x);
  x->lo = x->hi = NAN;
  if (!(x->in = (unsigned char *)calloc(n ? n : 1, 1))) return NULL;
  g->count++;
  return x;
}

/* The table and column of a --by name: the labels first, then the scores. */
static int find_by_column(const eval_data *d, const char *name, const lensnet_csv **t, const size_t **rows, size_t *col) {
  if (lensnet_csv_column(d->labels_table->header, name, col, NULL) == LENSNET_OK) {
    *t = d->labels_table;
    *rows = d->labels_table == &d->st ? d->srow : d->lrow;
    return 1;
  }
  if (lensnet_csv_column(d->st.header, name, col, NULL) == LENSNET_OK) {
    *t = &d->st;
    *rows = d->srow;
    return 1;
  }
  return 0;
}

typedef struct { const char *value; int order; } category;

static int by_category(const void *a, const void *b) {
  const category *x = (const category *)a, *y = (const category *)b;
  return x->order != y->order ? x->order - y->order : strcmp(x->value, y->value);
}

/* One group per value of a text column: lens-only values first, then mixed, then non-lens-only,
 * each alphabetical. */
static int categorical_groups(const eval_data *d, eval_column *col, const lensnet_csv *t, const size_t *rows, size_t c, eval_groups *g) {
  category *cats = (category *)malloc(d->n * sizeof *cats);
  size_t i, j, ncat = 0;
  int rc = 0;
  if (!cats) return lens_fail("out of memory");
  for (i = 0; i < d->n; i++) {
    const char *v = lensnet_csv_cell(t, rows[i], c);
    int pos = d->classes ? 0 : d->labels[i] != 0;
    for (j = 0; j < ncat && strcmp(cats[j].value, v); j++) continue;
    if (j == ncat) { cats[ncat].value = v; cats[ncat].order = pos ? 0 : 2; ncat++; }
    else if ((cats[j].order == 0 && !pos) || (cats[j].order == 2 && pos)) cats[j].order = 1;
  }
  qsort(cats, ncat, sizeof *cats, by_category);
  for (j = 0; j < ncat && !rc; j++) {
    eval_group *x = add_group(g, d->n);
    if (!x) { rc = lens_fail("out of memory"); break; }
    x->column = col->spec->name;
    snprintf(x->value, sizeof x->value, "%.63s", cats[j].value);
    snprintf(x->name, sizeof x->name, "%s=%.63s", col->spec->name, cats[j].value);
    for (i = 0; i < d->n; i++) x->in[i] = !strcmp(lensnet_csv_cell(t, rows[i], c), cats[j].value);
  }
  free(cats);
  return rc;
}

/* Bins of a numeric column: fixed edges or quantiles over the objects the column describes. */
static int numeric_groups(const eval_data *d, const eval_options *o, eval_column *col, const double *values, eval_groups *g) {
  lensnet_error err;
  size_t b, i;
  int two = !d->classes;
  col->binned = two ? lensviz_eval_binned_class(values, d->labels, d->n) : LENSVIZ_EVAL_BIN_ALL;
  if (col->spec->edge_count) {
    memcpy(col->edges, col->spec->edges, col->spec->edge_count * sizeof(double));
    col->edge_count = col->spec->edge_count;
  } else if (lensviz_eval_quantile_edges(values, d->labels, d->n, col->binned, o->bins, col->edges, &col->edge_count, &err) != LENSNET_OK) {
    return lens_fail_err(&err);
  }
  for (b = 0; b + 1 < col->edge_count; b++) {
    eval_group *x = add_group(g, d->n);
    int last = b + 2 == col->edge_count;
    if (!x) return lens_fail("out of memory");
    x->column = col->spec->name;
    x->lo = col->edges[b];
    x->hi = col->edges[b + 1];
    x->closed = last;
    snprintf(x->value, sizeof x->value, "%lu", (unsigned long)b);
    snprintf(x->name, sizeof x->name, "%s[%.4g:%.4g%c", col->spec->name, x->lo, x->hi, last ? ']' : ')');
  }
  for (i = 0; i < d->n; i++) {
    long bin;
    if ((col->binned == LENSVIZ_EVAL_BIN_LENSES && !d->labels[i]) || (col->binned == LENSVIZ_EVAL_BIN_NON_LENSES && d->labels[i])) continue;
    if (!isfinite(values[i])) continue;
    bin = lensviz_eval_bin(values[i], col->edges, col->edge_count);
    if (bin < 0) col->outside++;
    else g->groups[col->first_group + (size_t)bin].in[i] = 1;
  }
  return 0;
}

static int make_groups(const eval_options *o, const eval_data *d, eval_groups *g) {
  eval_group *all = add_group(g, d->n);
  size_t b, i;
  int rc = 0;
  if (!all) return lens_fail("out of memory");
  strcpy(all->name, "all");
  memset(all->in, 1, d->n);
  for (b = 0; b < o->by_count && !rc; b++) {
    eval_column *col = &g->columns[g->column_count++];
    const lensnet_csv *t;
    const size_t *rows;
    size_t c;
    double *values;
    memset(col, 0, sizeof *col);
    col->spec = &o->by[b];
    col->first_group = g->count;
    if (!find_by_column(d, o->by[b].name, &t, &rows, &c)) {
      char what[128];
      snprintf(what, sizeof what, "column %s (--by)", o->by[b].name);
      return missing_column(o->labels_path ? o->labels_path : d->spath, d->labels_table, what, NULL);
    }
    if (!(values = (double *)malloc(d->n * sizeof(double)))) return lens_fail("out of memory");
    col->numeric = 1;
    for (i = 0; i < d->n && col->numeric; i++) {
      const char *cell = lensnet_csv_cell(t, rows[i], c);
      char *end;
      values[i] = strtod(cell, &end);
      if (end == cell || *end) col->numeric = 0;
    }
    if (!col->numeric && o->by[b].edge_count)
      rc = lens_fail("--by %s: edges were given but column %s holds text ('%s' on line %lu of %s)", o->by[b].name, o->by[b].name,
                     lensnet_csv_cell(t, rows[i - 1], c), (unsigned long)t->lines[rows[i - 1]], row_file(d, t, rows[i - 1]));
    else rc = col->numeric ? numeric_groups(d, o, col, values, g) : categorical_groups(d, col, t, rows, c, g);
    col->group_count = g->count - col->first_group;
    free(values);
  }
  return rc;
}

static void free_groups(eval_groups *g) {
  size_t i;
  for (i = 0; i < g->count; i++) {
    free(g->groups[i].in);
    free(g->groups[i].classes);
  }
  free(g->groups);
}

/* ---- the computation --------------------------------------------------------------------- */

typedef struct {
  lens_progress bar;
  size_t before, total;
} eval_progress;

static void show_progress(void *user, size_t done, size_t total) {
  eval_progress *p = (eval_progress *)user;
  size_t all = p->before + done;
  (void)total;
  lens_progress_show(&p->bar, "bootstrap", all, all > p->total ? all : p->total, "resamples", -1.0, NULL);
}

static lensviz_eval_desc make_desc(const eval_options *o) {
  lensviz_eval_desc desc;
  memset(&desc, 0, sizeof desc);
  desc.level = o->level;
  desc.seed = o->seed;
  desc.recall_count = o->recall_count;
  memcpy(desc.recalls, o->recalls, sizeof desc.recalls);
  desc.fpr_count = o->fpr_count;
  memcpy(desc.fprs, o->fprs, sizeof desc.fprs);
  return desc;
}

/* The K-class figures of a group's objects. */
static int evaluate_classes(const eval_data *d, const lensviz_eval_desc *desc, eval_group *x) {
  size_t k = d->classes, i, m = 0;
  float *p = (float *)malloc(d->n * k * sizeof(float));
  int *l = (int *)malloc(d->n * sizeof(int));
  lensnet_error err;
  int rc = 0;
  x->classes = (lensviz_eval_classes *)malloc(sizeof *x->classes);
  if (!p || !l || !x->classes) rc = lens_fail("out of memory");
  for (i = 0; !rc && i < d->n; i++)
    if (x->in[i]) {
      memcpy(p + m * k, d->scores + i * k, k * sizeof(float));
      l[m++] = d->labels[i];
    }
  if (!rc && lensviz_eval_multiclass(p, l, m, k, desc, x->classes, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  free(p);
  free(l);
  return rc;
}

static int evaluate(const eval_options *o, const eval_data *d, eval_groups *g, lens_pool *pool) {
  lensviz_eval_desc desc = make_desc(o);
  lensnet_parallel par = lens_pool_parallel(pool);
  eval_progress prog;
  lensnet_error err;
  size_t i, p;
  int rc = 0;
  lens_progress_start(&prog.bar);
  prog.before = 0;
  prog.total = o->bootstrap * g->count;
  desc.resamples = o->bootstrap;
  desc.parallel = &par;
  desc.progress = show_progress;
  desc.progress_user = &prog;
  for (i = 0; i < g->count && !rc; i++) {
    eval_group *x = &g->groups[i];
    if (d->classes) rc = evaluate_classes(d, &desc, x);
    else {
      lensviz_eval_desc at = desc;
      if (lensviz_eval_group(d->scores, d->labels, NULL, d->n, x->in, o->threshold, &desc, &x->sample, &x->members, &err) != LENSNET_OK)
        rc = lens_fail_err(&err);
      at.resamples = 0;
      for (p = 0; p < o->prior_count && !rc; p++) {
        at.prior = o->priors[p].ratio;
        if (lensviz_eval_group(d->scores, d->labels, NULL, d->n, x->in, o->threshold, &at, &x->at_prior[p], NULL, &err) != LENSNET_OK)
          rc = lens_fail_err(&err);
      }
    }
    prog.before += o->bootstrap;
  }
  lens_progress_end(&prog.bar);
  return rc;
}

/* ---- metrics.json ------------------------------------------------------------------------- */

static void json_num(FILE *f, double v) {
  if (isfinite(v)) fprintf(f, "%.10g", v);
  else fputs("null", f);
}

static const char *members_name(lensviz_eval_members m) {
  switch (m) {
    case LENSVIZ_EVAL_MEMBERS_BOTH: return "both";
    case LENSVIZ_EVAL_MEMBERS_LENSES: return "lenses";
    case LENSVIZ_EVAL_MEMBERS_NON_LENSES: return "non-lenses";
    default: return "none";
  }
}

/* Why the AUC is undefined, or NULL. */
static const char *auc_undefined(size_t pos, size_t neg) {
  if (!pos && !neg) return "no objects";
  if (!pos) return "no lenses";
  if (!neg) return "no non-lenses";
  return NULL;
}

/* AP and the figures at the threshold and at fixed recalls (what a prior changes), after indent. */
static void json_thresholded(FILE *f, const lensviz_eval_result *r, const char *indent) {
  size_t k;
  fputs("\"ap\": ", f); json_num(f, r->ap);
  fprintf(f, ",\n%s\"confusion\": {\"tp\": ", indent); json_num(f, r->tp);
  fputs(", \"fp\": ", f); json_num(f, r->fp);
  fputs(", \"tn\": ", f); json_num(f, r->tn);
  fputs(", \"fn\": ", f); json_num(f, r->fn);
  fprintf(f, "},\n%s\"precision\": ", indent); json_num(f, r->precision);
  fputs(", \"recall\": ", f); json_num(f, r->recall);
  fputs(", \"fpr\": ", f); json_num(f, r->fpr);
  fputs(", \"f1\": ", f); json_num(f, r->f1);
  fputs(", \"accuracy\": ", f); json_num(f, r->accuracy);
  fprintf(f, ",\n%s\"precision_at_recall\": [", indent);
  for (k = 0; k < r->recall_count; k++) {
    fprintf(f, "%s{\"recall\": %g, \"precision\": ", k ? ", " : "", r->recalls[k]);
    json_num(f, r->precision_at_recall[k]);
    fputs(", \"threshold\": ", f);
    json_num(f, r->threshold_at_recall[k]);
    fputc('}', f);
  }
  fputs("]", f);
}

static void json_binary_group(FILE *f, const eval_options *o, const eval_group *x) {
  const lensviz_eval_result *r = &x->sample;
  const char *why = auc_undefined(r->count_pos, r->count_neg);
  size_t k, p;
  fputs("    {\"group\": ", f); lens_json_string(f, x->name);
  fputs(", \"column\": ", f); if (x->column) lens_json_string(f, x->column); else fputs("null", f);
  fputs(", \"value\": ", f); if (x->column) lens_json_string(f, x->value); else fputs("null", f);
  fputs(", \"lo\": ", f); json_num(f, x->lo);
  fputs(", \"hi\": ", f); json_num(f, x->hi);
  fprintf(f, ",\n     \"members\": \"%s\", \"n_pos\": %lu, \"n_neg\": %lu,\n     \"auc\": ", members_name(x->members),
          (unsigned long)r->count_pos, (unsigned long)r->count_neg);
  json_num(f, r->auc);
  fputs(", \"auc_lo\": ", f); json_num(f, r->auc_lo);
  fputs(", \"auc_hi\": ", f); json_num(f, r->auc_hi);
  fputs(", \"auc_undefined\": ", f); if (why) lens_json_string(f, why); else fputs("null", f);
  fputs(",\n     ", f);
  json_thresholded(f, r, "     ");
  fputs(",\n     \"recall_at_fpr\": [", f);
  for (k = 0; k < r->fpr_count; k++) {
    fprintf(f, "%s{\"fpr\": %g, \"recall\": ", k ? ", " : "", r->fprs[k]);
    json_num(f, r->recall_at_fpr[k]);
    fputs(", \"threshold\": ", f);
    json_num(f, r->threshold_at_fpr[k]);
    fprintf(f, ", \"false_positives_allowed\": %.0f}", floor(r->fprs[k] * (double)r->count_neg * (1 + 1e-12)));
  }
  fputs("],\n     \"at_prior\": [", f);
  for (p = 0; p < o->prior_count; p++) {
    fprintf(f, "%s\n       {\"prior\": \"%s\", \"non_lenses_per_lens\": %g, \"negative_weight\": ", p ? "," : "", o->priors[p].name,
            o->priors[p].ratio);
    json_num(f, x->at_prior[p].negative_weight);
    fputs(",\n        ", f);
    json_thresholded(f, &x->at_prior[p], "        ");
    fputs("}", f);
  }
  fputs("]}", f);
}

static void json_class_group(FILE *f, const eval_data *d, const eval_group *x) {
  const lensviz_eval_classes *c = x->classes;
  size_t k = d->classes, i, j;
  fputs("    {\"group\": ", f); lens_json_string(f, x->name);
  fputs(", \"column\": ", f); if (x->column) lens_json_string(f, x->column); else fputs("null", f);
  fputs(", \"value\": ", f); if (x->column) lens_json_string(f, x->value); else fputs("null", f);
  fputs(", \"lo\": ", f); json_num(f, x->lo);
  fputs(", \"hi\": ", f); json_num(f, x->hi);
  fputs(",\n     \"macro_auc\": ", f); json_num(f, c->macro_auc);
  fputs(", \"macro_auc_lo\": ", f); json_num(f, c->macro_lo);
  fputs(", \"macro_auc_hi\": ", f); json_num(f, c->macro_hi);
  fputs(", \"accuracy\": ", f); json_num(f, c->accuracy);
  fputs(",\n     \"classes\": [", f);
  for (i = 0; i < k; i++) {
    fprintf(f, "%s\n       {\"class\": %lu, \"name\": ", i ? "," : "", (unsigned long)i);
    lens_json_string(f, d->class_names[i]);
    fprintf(f, ", \"n\": %lu, \"auc\": ", (unsigned long)c->count[i]);
    json_num(f, c->auc[i]);
    fputs(", \"auc_lo\": ", f); json_num(f, c->auc_lo[i]);
    fputs(", \"auc_hi\": ", f); json_num(f, c->auc_hi[i]);
    fputs(", \"precision\": ", f); json_num(f, c->precision[i]);
    fputs(", \"recall\": ", f); json_num(f, c->recall[i]);
    fputs(", \"f1\": ", f); json_num(f, c->f1[i]);
    fputc('}', f);
  }
  fputs("],\n     \"confusion\": [", f);
  for (i = 0; i < k; i++) {
    fprintf(f, "%s[", i ? ", " : "");
    for (j = 0; j < k; j++) fprintf(f, "%s%.0f", j ? ", " : "", c->confusion[i * k + j]);
    fputc(']', f);
  }
  fputs("]}", f);
}

static const char *binned_name(lensviz_eval_binned b) {
  return b == LENSVIZ_EVAL_BIN_LENSES ? "lenses" : b == LENSVIZ_EVAL_BIN_NON_LENSES ? "non-lenses" : "all";
}

/* The lenses' position errors, or null without positions. */
static void json_positions(FILE *f, const eval_data *d) {
  const lensviz_position_result *p = &d->pos;
  size_t k;
  if (!d->positions) {
    fputs("null", f);
    return;
  }
  fprintf(f, "{\"objects\": \"lenses\", \"unit\": \"arcsec\", \"n\": %lu, \"median\": ", (unsigned long)p->n);
  json_num(f, p->median);
  fputs(", \"p68\": ", f); json_num(f, p->p68);
  fputs(", \"p90\": ", f); json_num(f, p->p90);
  fputs(", \"rms\": ", f); json_num(f, p->rms);
  fputs(", \"within\": [", f);
  for (k = 0; k < p->radius_count; k++) {
    fprintf(f, "%s{\"radius\": %g, \"share\": ", k ? ", " : "", p->radii[k]);
    json_num(f, p->within[k]);
    fputc('}', f);
  }
  fputs("]}", f);
}

static int write_json(const eval_options *o, const eval_data *d, const eval_groups *g, const char *path) {
  char tmp[4200];
  FILE *f = lens_text_open(path, tmp, sizeof tmp);
  size_t i, k;
  if (!f) return LENS_EXIT_FAIL;
  /* "scores" and "labels" name one file each (null for several score files); "score_files" lists
   * every --scores file in order */
  fputs("{\n  \"scores\": ", f);
  if (d->scount > 1) fputs("null", f);
  else lens_json_string(f, d->spath);
  fputs(", \"labels\": ", f);
  if (o->labels_path || d->scount == 1) lens_json_string(f, o->labels_path ? o->labels_path : d->spath);
  else fputs("null", f);
  fputs(",\n  \"score_files\": [", f);
  for (i = 0; i < d->scount; i++) {
    if (i) fputs(", ", f);
    lens_json_string(f, d->spaths[i]);
  }
  fputs("]", f);
  fputs(", \"join\": ", f); lens_json_string(f, d->join);
  fprintf(f, ", \"objects\": %lu,\n", (unsigned long)d->n);
  if (d->classes) {
    fprintf(f, "  \"mode\": \"classes\", \"classes\": %lu, \"class_columns\": \"%s\",\n", (unsigned long)d->classes,
            d->class_logits ? "logit_<class>, softmaxed" : "p_<class>");
  } else {
    fputs("  \"mode\": \"two classes\", \"score_column\": ", f);
    lens_json_string(f, d->st.cells[d->score_col]);
    fputs(", \"threshold\": ", f);
    json_num(f, o->threshold);
    fputs(",\n", f);
  }
  fputs("  \"label_column\": ", f); lens_json_string(f, d->labels_table->cells[d->label_col]);
  fputs(",\n  \"positions\": ", f);
  json_positions(f, d);
  fprintf(f, ",\n  \"bootstrap\": {\"resamples\": %lu, \"level\": %g, \"seed\": %llu, \"method\": \"percentile, stratified by class\"},\n",
          (unsigned long)o->bootstrap, o->level, o->seed);
  fputs("  \"priors\": [", f);
  for (i = 0; i < o->prior_count; i++) fprintf(f, "%s{\"prior\": \"%s\", \"non_lenses_per_lens\": %g}", i ? ", " : "", o->priors[i].name, o->priors[i].ratio);
  fputs("],\n  \"by\": [", f);
  for (i = 0; i < g->column_count; i++) {
    const eval_column *c = &g->columns[i];
    fprintf(f, "%s\n    {\"column\": ", i ? "," : "");
    lens_json_string(f, c->spec->name);
    if (!c->numeric) fputs(", \"kind\": \"categories\"", f);
    else {
      fprintf(f, ", \"kind\": \"%s\", \"objects\": \"%s\", \"edges\": [", c->spec->edge_count ? "fixed edges" : "quantile bins",
              binned_name(c->binned));
      for (k = 0; k < c->edge_count; k++) { if (k) fputs(", ", f); json_num(f, c->edges[k]); }
      fprintf(f, "], \"outside\": %lu", (unsigned long)c->outside);
    }
    fputc('}', f);
  }
  fputs(g->column_count ? "\n  ],\n  \"groups\": [\n" : "],\n  \"groups\": [\n", f);
  for (i = 0; i < g->count; i++) {
    if (d->classes) json_class_group(f, d, &g->groups[i]);
    else json_binary_group(f, o, &g->groups[i]);
    fputs(i + 1 < g->count ? ",\n" : "\n", f);
  }
  fputs("  ]\n}\n", f);
  return lens_text_commit(f, tmp, path);
}

/* ---- metrics.csv and curve.csv ----------------------------------------------------------- */

static void csv_num(FILE *f, double v) {
  if (isfinite(v)) fprintf(f, ",%.6g", v);
  else fputs(",", f);
}

/* A text cell: quoted when it holds a comma, a quote or a line end (RFC 4180). */
static void csv_text(FILE *f, const char *s, int first) {
  if (!first) fputc(',', f);
  if (!strpbrk(s, ",\"\r\n")) { fputs(s, f); return; }
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

/* The columns of AP and the threshold figures; at a prior (suffix "_1to100") only those it changes. */
static void csv_thresholded_header(FILE *f, const lensviz_eval_result *r, const char *suffix) {
  size_t k;
  if (*suffix) fprintf(f, ",ap%s,precision%s,f1%s,accuracy%s", suffix, suffix, suffix, suffix);
  else fputs(",ap,precision,recall,fpr,f1,accuracy", f);
  for (k = 0; k < r->recall_count; k++) {
    fprintf(f, ",precision_at_recall_%g%s", r->recalls[k], suffix);
    if (!*suffix) fprintf(f, ",threshold_at_recall_%g", r->recalls[k]);
  }
}

static void csv_thresholded(FILE *f, const lensviz_eval_result *r, int at_prior) {
  size_t k;
  csv_num(f, r->ap);
  csv_num(f, r->precision);
  if (!at_prior) {
    csv_num(f, r->recall);
    csv_num(f, r->fpr);
  }
  csv_num(f, r->f1);
  csv_num(f, r->accuracy);
  for (k = 0; k < r->recall_count; k++) {
    csv_num(f, r->precision_at_recall[k]);
    if (!at_prior) csv_num(f, r->threshold_at_recall[k]);
  }
}

static void csv_group_start(FILE *f, const eval_group *x) {
  csv_text(f, x->name, 1);
  csv_text(f, x->column ? x->column : "", 0);
  csv_text(f, x->column ? x->value : "", 0);
  csv_num(f, x->lo);
  csv_num(f, x->hi);
}

static void write_binary_csv(FILE *f, const eval_options *o, const eval_groups *g) {
  const lensviz_eval_result *r0 = &g->groups[0].sample;
  size_t i, k, p;
  char suffix[48];
  fputs("group,column,value,lo,hi,members,n_pos,n_neg,auc,auc_lo,auc_hi,threshold,tp,fp,tn,fn", f);
  csv_thresholded_header(f, r0, "");
  for (k = 0; k < r0->fpr_count; k++) fprintf(f, ",recall_at_fpr_%g,threshold_at_fpr_%g", r0->fprs[k], r0->fprs[k]);
  for (p = 0; p < o->prior_count; p++) {
    snprintf(suffix, sizeof suffix, "_%s", o->priors[p].suffix);
    csv_thresholded_header(f, r0, suffix);
  }
  fputc('\n', f);
  for (i = 0; i < g->count; i++) {
    const eval_group *x = &g->groups[i];
    const lensviz_eval_result *r = &x->sample;
    csv_group_start(f, x);
    fprintf(f, ",%s,%lu,%lu", members_name(x->members), (unsigned long)r->count_pos, (unsigned long)r->count_neg);
    csv_num(f, r->auc);
    csv_num(f, r->auc_lo);
    csv_num(f, r->auc_hi);
    csv_num(f, r->threshold);
    csv_num(f, r->tp);
    csv_num(f, r->fp);
    csv_num(f, r->tn);
    csv_num(f, r->fn);
    csv_thresholded(f, r, 0);
    for (k = 0; k < r->fpr_count; k++) {
      csv_num(f, r->recall_at_fpr[k]);
      if (isinf(r->threshold_at_fpr[k])) fputs(",inf", f);
      else csv_num(f, r->threshold_at_fpr[k]);
    }
    for (p = 0; p < o->prior_count; p++) csv_thresholded(f, &x->at_prior[p], 1);
    fputc('\n', f);
  }
}

static void write_class_csv(FILE *f, const eval_data *d, const eval_groups *g) {
  size_t i, c;
  fputs("group,column,value,lo,hi,class,n,n_pos,n_neg,auc,auc_lo,auc_hi,precision,recall,f1,accuracy\n", f);
  for (i = 0; i < g->count; i++) {
    const eval_group *x = &g->groups[i];
    const lensviz_eval_classes *r = x->classes;
    size_t n = 0;
    for (c = 0; c < d->classes; c++) n += r->count[c];
    csv_group_start(f, x);
    fprintf(f, ",macro,%lu,,", (unsigned long)n);
    csv_num(f, r->macro_auc);
    csv_num(f, r->macro_lo);
    csv_num(f, r->macro_hi);
    fputs(",,,", f);
    csv_num(f, r->accuracy);
    fputc('\n', f);
    for (c = 0; c < d->classes; c++) {
      csv_group_start(f, x);
      csv_text(f, d->class_names[c], 0);
      fprintf(f, ",%lu,%lu,%lu", (unsigned long)n, (unsigned long)r->count[c], (unsigned long)(n - r->count[c]));
      csv_num(f, r->auc[c]);
      csv_num(f, r->auc_lo[c]);
      csv_num(f, r->auc_hi[c]);
      csv_num(f, r->precision[c]);
      csv_num(f, r->recall[c]);
      csv_num(f, r->f1[c]);
      fputs(",\n", f);
    }
  }
}

static int write_metrics_csv(const eval_options *o, const eval_data *d, const eval_groups *g, const char *path) {
  char tmp[4200];
  FILE *f = lens_text_open(path, tmp, sizeof tmp);
  if (!f) return LENS_EXIT_FAIL;
  if (d->classes) write_class_csv(f, d, g);
  else write_binary_csv(f, o, g);
  return lens_text_commit(f, tmp, path);
}

/* One class's (or the lenses') scores and labels: the curves' input. */
typedef struct {
  float *scores;
  int *labels;
  size_t n;
} eval_series;

static int series_of(const eval_data *d, size_t cls, const size_t *pick, size_t m, eval_series *s) {
  size_t i;
  s->n = m;
  s->scores = (float *)malloc((m ? m : 1) * sizeof(float));
  s->labels = (int *)malloc((m ? m : 1) * sizeof(int));
  if (!s->scores || !s->labels) return lens_fail("out of memory");
  for (i = 0; i < m; i++) {
    size_t j = pick ? pick[i] : i;
    s->scores[i] = d->classes ? d->scores[j * d->classes + cls] : d->scores[j];
    s->labels[i] = d->classes ? d->labels[j] == (int)cls : d->labels[j];
  }
  return 0;
}

static void series_free(eval_series *s) {
  free(s->scores);
  free(s->labels);
  memset(s, 0, sizeof *s);
}

static int curve_of(const eval_series *s, double prior, lensviz_eval_point **pts, size_t *count) {
  lensnet_error err;
  *pts = (lensviz_eval_point *)malloc((s->n + 1) * sizeof **pts);
  if (!*pts) return lens_fail("out of memory");
  if (lensviz_eval_curve(s->scores, s->labels, NULL, s->n, prior, *pts, count, &err) != LENSNET_OK) return lens_fail_err(&err);
  return 0;
}

/* A threshold is a score, a float: its shortest text that reads back as that float (0.99, not
 * 0.99000001); lens eval --threshold with it gives back the same point. */
static void csv_threshold(FILE *f, double t) {
  char buf[32];
  int prec;
  if (isinf(t)) { fputs("inf", f); return; }
  for (prec = 1; prec <= 9; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, t);
    if ((float)strtod(buf, NULL) == (float)t) break;
  }
  fputs(buf, f);
}

/* curve.csv: the overall curve, one row per threshold (K classes: per class, one-vs-rest). */
static int write_curve_csv(const eval_options *o, const eval_data *d, const char *path) {
  char tmp[4200];
  FILE *f = lens_text_open(path, tmp, sizeof tmp);
  size_t c, i, p, count = 0, classes = d->classes ? d->classes : 1;
  int rc = 0;
  if (!f) return LENS_EXIT_FAIL;
  fputs(d->classes ? "class,threshold,tp,fp,tpr,fpr,precision" : "threshold,tp,fp,tpr,fpr,precision", f);
  for (p = 0; !d->classes && p < o->prior_count; p++) fprintf(f, ",precision_%s", o->priors[p].suffix);
  fputc('\n', f);
  for (c = 0; c < classes && !rc; c++) {
    eval_series s;
    lensviz_eval_point *pts = NULL, *prior_pts[EVAL_MAX_PRIORS];
    memset(prior_pts, 0, sizeof prior_pts);
    rc = series_of(d, c, NULL, d->n, &s);
    if (!rc) rc = curve_of(&s, 0.0, &pts, &count);
    for (p = 0; !rc && !d->classes && p < o->prior_count; p++) rc = curve_of(&s, o->priors[p].ratio, &prior_pts[p], &count);
    for (i = 0; !rc && i < count; i++) {
      if (d->classes) { csv_text(f, d->class_names[c], 1); fputc(',', f); }
      csv_threshold(f, pts[i].threshold);
      fprintf(f, ",%.9g,%.9g", pts[i].tp, pts[i].fp);
      csv_num(f, pts[i].tpr);
      csv_num(f, pts[i].fpr);
      csv_num(f, pts[i].precision);
      for (p = 0; !d->classes && p < o->prior_count; p++) csv_num(f, prior_pts[p][i].precision);
      fputc('\n', f);
    }
    free(pts);
    for (p = 0; p < EVAL_MAX_PRIORS; p++) free(prior_pts[p]);
    series_free(&s);
  }
  if (rc) { lens_text_discard(f, tmp); return rc; }
  return lens_text_commit(f, tmp, path);
}

/* ---- roc.png and pr.png ------------------------------------------------------------------ */

static lensviz_color series_color(size_t i) {
  static const unsigned char c[8][3] = {{31, 119, 180}, {214, 39, 40}, {44, 160, 44}, {148, 103, 189},
                                        {255, 127, 14}, {23, 190, 207}, {140, 86, 75}, {127, 127, 127}};
  return lensviz_rgb(c[i % 8][0], c[i % 8][1], c[i % 8][2]);
}

#define EVAL_MAX_CURVES 8

typedef struct {
  lensviz_series series[EVAL_MAX_CURVES];
  float *x[EVAL_MAX_CURVES], *y[EVAL_MAX_CURVES];
  char labels[EVAL_MAX_CURVES][96];
  size_t count;
} eval_plot;

/* Adds the ROC (roc != 0) or PR curve of s, at a prior for PR. */
static int plot_add(eval_plot *pl, const eval_series *s, int roc, double prior, const char *label, int dashed) {
  lensviz_eval_point *pts;
  size_t count, i, k = pl->count;
  int rc;
  if (k == EVAL_MAX_CURVES) return 0;
  if ((rc = curve_of(s, prior, &pts, &count)) != 0) return rc;
  pl->x[k] = (float *)malloc(count * sizeof(float));
  pl->y[k] = (float *)malloc(count * sizeof(float));
  if (!pl->x[k] || !pl->y[k]) { free(pts); return lens_fail("out of memory"); }
  for (i = 0; i < count; i++) {
    pl->x[k][i] = (float)(roc ? pts[i].fpr : pts[i].tpr);
    pl->y[k][i] = (float)(roc ? pts[i].tpr : pts[i].precision);
  }
  free(pts);
  snprintf(pl->labels[k], sizeof pl->labels[k], "%s", label);
  memset(&pl->series[k], 0, sizeof pl->series[k]);
  pl->series[k].x = pl->x[k];
  pl->series[k].y = pl->y[k];
  pl->series[k].n = count;
  pl->series[k].label = pl->labels[k];
  pl->series[k].color = series_color(k);
  pl->series[k].dashed = dashed;
  pl->count++;
  return 0;
}

/* Draws the curves into path; without any (a class is missing), says so and removes an older
 * picture of that name, so that none is mistaken for this evaluation's. */
static int plot_save(eval_plot *pl, int roc, const char *title, const char *path) {
  lensviz_image img;
  lensviz_plot_desc pd;
  lensnet_error err;
  size_t i;
  int rc = 0;
  if (!pl->count) {
    fprintf(stderr, "lens: note: %s not drawn: %s needs %s\n", path, roc ? "a ROC curve" : "a precision-recall curve",
            roc ? "both classes" : "lenses");
    remove(path);
    return 0;
  }
  if (lensviz_image_alloc(&img, 640, 480, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  else {
    memset(&pd, 0, sizeof pd);
    pd.title = title;
    pd.xlabel = roc ? "false positive rate" : "recall";
    pd.ylabel = roc ? "true positive rate (recall)" : "precision";
    pd.x0 = 0; pd.x1 = 1; pd.y0 = 0; pd.y1 = 1.02f;
    pd.diagonal = roc;
    pd.legend_bottom = roc;
    lensviz_plot_lines(&img, pl->series, pl->count, &pd);
    if (lensviz_png_write(path, &img, &err) != LENSNET_OK) rc = lens_fail_err(&err);
    lensviz_image_free(&img);
  }
  for (i = 0; i < pl->count; i++) { free(pl->x[i]); free(pl->y[i]); }
  pl->count = 0;
  return rc;
}

/* The ROC of every object and of each lens kind (a lens-only group of the first text --by column
 * that does not hold every lens) against all non-lenses; PR as sampled and at each prior. */
static int draw_binary(const eval_options *o, const eval_data *d, const eval_groups *g, const char *roc_path, const char *pr_path) {
  eval_plot pl;
  eval_series all;
  char label[96];
  size_t i, p, kinds = 0, *pick = NULL;
  const eval_group *x0 = &g->groups[0];
  int rc;
  memset(&pl, 0, sizeof pl);
  if ((rc = series_of(d, 0, NULL, d->n, &all)) != 0) return rc;
  snprintf(label, sizeof label, "all (AUC %.3f)", x0->sample.auc);
  if (isfinite(x0->sample.auc)) rc = plot_add(&pl, &all, 1, 0.0, label, 0);
  for (i = 0; !rc && i < g->column_count; i++)
    if (!g->columns[i].numeric) {
      size_t j;
      if (!(pick = (size_t *)malloc(d->n * sizeof(size_t)))) { rc = lens_fail("out of memory"); break; }
      for (j = 0; !rc && j < g->columns[i].group_count; j++) {
        const eval_group *x = &g->groups[g->columns[i].first_group + j];
        eval_series s;
        size_t m;
        if (x->members != LENSVIZ_EVAL_MEMBERS_LENSES || x->sample.count_pos == x0->sample.count_pos || !isfinite(x->sample.auc)) continue;
        lensviz_eval_group_objects(d->labels, d->n, x->in, pick, &m, NULL);
        snprintf(label, sizeof label, "%.40s (%.3f)", x->value, x->sample.auc);
        if ((rc = series_of(d, 0, pick, m, &s)) == 0) rc = plot_add(&pl, &s, 1, 0.0, label, 1);
        series_free(&s);
        kinds++;
      }
      break;
    }
  if (!rc) rc = plot_save(&pl, 1, kinds ? "ROC: all, and each lens kind against all non-lenses" : "ROC curve", roc_path);
  snprintf(label, sizeof label, "as sampled (AP %.3f)", x0->sample.ap);
  if (!rc && isfinite(x0->sample.ap)) rc = plot_add(&pl, &all, 0, 0.0, label, 0);
  for (p = 0; !rc && isfinite(x0->sample.ap) && p < o->prior_count; p++) {
    snprintf(label, sizeof label, "prior %s (AP %.3f)", o->priors[p].name, x0->at_prior[p].ap);
    rc = plot_add(&pl, &all, 0, o->priors[p].ratio, label, 1);
  }
  if (!rc) rc = plot_save(&pl, 0, "Precision-recall", pr_path);
  free(pick);
  series_free(&all);
  for (i = 0; i < pl.count; i++) { free(pl.x[i]); free(pl.y[i]); }
  return rc;
}

/* One-vs-rest ROC and PR curves of each class (the first eight). */
static int draw_classes(const eval_data *d, const eval_groups *g, const char *roc_path, const char *pr_path) {
  eval_plot pl;
  size_t c, pass;
  int rc = 0;
  memset(&pl, 0, sizeof pl);
  for (pass = 0; pass < 2 && !rc; pass++) {
    for (c = 0; c < d->classes && !rc; c++) {
      eval_series s;
      char label[96];
      if (!g->groups[0].classes->count[c] || g->groups[0].classes->count[c] == d->n) continue;
      snprintf(label, sizeof label, "%.40s (AUC %.3f)", d->class_names[c], g->groups[0].classes->auc[c]);
      if ((rc = series_of(d, c, NULL, d->n, &s)) == 0) rc = plot_add(&pl, &s, pass == 0, 0.0, label, 0);
      series_free(&s);
    }
    if (!rc) rc = plot_save(&pl, pass == 0, pass == 0 ? "ROC, each class against the rest" : "Precision-recall, each class against the rest",
                            pass == 0 ? roc_path : pr_path);
  }
  for (c = 0; c < pl.count; c++) { free(pl.x[c]); free(pl.y[c]); }
  return rc;
}

/* ---- the summary ------------------------------------------------------------------------- */

static void print_auc(const lensviz_eval_result *r) {
  const char *why = auc_undefined(r->count_pos, r->count_neg);
  if (why) printf("  %-24s", why);
  else if (r->resamples) printf("  %.4f [%.4f, %.4f]", r->auc, r->auc_lo, r->auc_hi);
  else printf("  %-24.4f", r->auc);
}

/* A column of the group table: "-" where the figure does not describe the group or is undefined. */
static void print_fig(double v) {
  if (isfinite(v)) printf("  %7.4f", v);
  else printf("  %7s", "-");
}

/* A figure for the summary: 4 decimals, "undefined" for NaN, "none" for an infinite threshold
 * (eight rotating buffers: up to eight per printf). */
static const char *fig(double v, int threshold) {
  static char bufs[8][32];
  static int next;
  char *b = bufs[next++ % 8];
  if (v != v) return "undefined";
  if (isinf(v)) return threshold ? "none" : v > 0 ? "inf" : "-inf";
  snprintf(b, sizeof bufs[0], threshold ? "%.4g" : "%.4f", v);
  return b;
}

static void print_binary(const eval_options *o, const eval_groups *g) {
  const lensviz_eval_result *a = &g->groups[0].sample;
  size_t i, k, p;
  if (auc_undefined(a->count_pos, a->count_neg)) printf("AUC undefined: %s\n", auc_undefined(a->count_pos, a->count_neg));
  else if (a->resamples)
    printf("AUC %.4f, %g%% interval [%.4f, %.4f] (percentile bootstrap, %lu resamples stratified by class, seed %llu)\n", a->auc,
           100 * o->level, a->auc_lo, a->auc_hi, (unsigned long)a->resamples, o->seed);
  else printf("AUC %.4f (no interval: --bootstrap 0)\n", a->auc);
  if (isfinite(a->ap)) printf("AP %.4f\n", a->ap);
  else printf("AP undefined: no lenses\n");
  printf("at threshold %g: precision %s, recall %s, FPR %s, F1 %s, accuracy %s (TP %.0f, FP %.0f, TN %.0f, FN %.0f)\n", o->threshold,
         fig(a->precision, 0), fig(a->recall, 0), fig(a->fpr, 0), fig(a->f1, 0), fig(a->accuracy, 0), a->tp, a->fp, a->tn, a->fn);
  for (k = 0; k < a->recall_count; k++)
    printf("precision at recall %g: %s (threshold %s)\n", a->recalls[k], fig(a->precision_at_recall[k], 0), fig(a->threshold_at_recall[k], 1));
  for (k = 0; k < a->fpr_count; k++) {
    double allowed = floor(a->fprs[k] * (double)a->count_neg * (1 + 1e-12));
    printf("recall at FPR %g: %s (threshold %s", a->fprs[k], fig(a->recall_at_fpr[k], 0), fig(a->threshold_at_fpr[k], 1));
    if (allowed < 1 && a->count_neg) printf("; with %lu non-lenses no false positive is allowed", (unsigned long)a->count_neg);
    printf(")\n");
  }
  for (p = 0; p < o->prior_count; p++) {
    const lensviz_eval_result *r = &g->groups[0].at_prior[p];
    printf("at prior %s: precision %s, F1 %s, AP %s", o->priors[p].name, fig(r->precision, 0), fig(r->f1, 0), fig(r->ap, 0));
    for (k = 0; k < r->recall_count; k++) printf(", precision at recall %g %s", r->recalls[k], fig(r->precision_at_recall[k], 0));
    printf("\n");
  }
  if (g->count < 2) return;
  printf("\n%-28s %6s %6s  %-24s %8s %8s %8s\n", "group (() = the other class)", "lenses", "non", "AUC [interval]", "recall", "FPR", "precision");
  for (i = 0; i < g->count; i++) {
    const eval_group *x = &g->groups[i];
    const lensviz_eval_result *r = &x->sample;
    char pos[16], neg[16];
    int lenses = x->members == LENSVIZ_EVAL_MEMBERS_LENSES, non = x->members == LENSVIZ_EVAL_MEMBERS_NON_LENSES;
    snprintf(pos, sizeof pos, non ? "(%lu)" : "%lu", (unsigned long)r->count_pos);
    snprintf(neg, sizeof neg, lenses ? "(%lu)" : "%lu", (unsigned long)r->count_neg);
    printf("%-28.28s %6s %6s", x->name, pos, neg);
    print_auc(r);
    print_fig(non ? NAN : r->recall);
    print_fig(lenses ? NAN : r->fpr);
    print_fig(lenses || non ? NAN : r->precision);
    printf("\n");
  }
  for (i = 0; i < g->column_count; i++) {
    const eval_column *c = &g->columns[i];
    if (!c->numeric) continue;
    printf("%s: %s over %s", c->spec->name, c->spec->edge_count ? "fixed edges" : "quantile bins", binned_name(c->binned));
    if (c->binned != LENSVIZ_EVAL_BIN_ALL)
      printf(" (every %s has one value)", c->binned == LENSVIZ_EVAL_BIN_LENSES ? "non-lens" : "lens");
    if (c->outside) printf("; %lu outside the edges", (unsigned long)c->outside);
    printf("\n");
  }
}

static void print_positions(const eval_data *d) {
  const lensviz_position_result *p = &d->pos;
  if (!d->positions) return;
  if (!p->n) {
    printf("position error: no lenses\n");
    return;
  }
  printf("position error of the %lu lenses (center_x, center_y against %s): median %.4f\", 68%% %.4f\", 90%% %.4f\", rms %.4f\"; "
         "within 0.3\" %.4f, within 1\" %.4f\n", (unsigned long)p->n, d->lpath, p->median, p->p68, p->p90, p->rms, p->within[0],
         p->within[1]);
}

static void print_classes(const eval_data *d, const eval_groups *g) {
  const lensviz_eval_classes *a = g->groups[0].classes;
  size_t i, c;
  if (isfinite(a->macro_auc)) {
    printf("macro AUC (one-vs-rest) %.4f", a->macro_auc);
    if (a->resamples) printf(", %g%% interval [%.4f, %.4f]", 100 * a->level, a->macro_lo, a->macro_hi);
    printf("; accuracy at the argmax %.4f\n", a->accuracy);
  } else printf("macro AUC undefined (a class has no objects); accuracy at the argmax %.4f\n", a->accuracy);
  printf("%-24s %6s  %-24s %8s %8s %8s\n", "class", "n", "AUC one-vs-rest", "precision", "recall", "F1");
  for (c = 0; c < d->classes; c++) {
    printf("%lu %-22.22s %6lu", (unsigned long)c, d->class_names[c], (unsigned long)a->count[c]);
    if (!isfinite(a->auc[c])) printf("  %-24s", a->count[c] ? "undefined: no others" : "undefined: no objects");
    else if (a->resamples) printf("  %.4f [%.4f, %.4f]", a->auc[c], a->auc_lo[c], a->auc_hi[c]);
    else printf("  %-24.4f", a->auc[c]);
    print_fig(a->precision[c]);
    print_fig(a->recall[c]);
    print_fig(a->f1[c]);
    printf("\n");
  }
  printf("confusion (rows: true class, columns: argmax):\n");
  for (c = 0; c < d->classes; c++) {
    size_t j;
    printf("  ");
    for (j = 0; j < d->classes; j++) printf(" %7.0f", a->confusion[c * d->classes + j]);
    printf("\n");
  }
  if (g->count > 1) {
    printf("\n%-28s %6s %8s  recall per class\n", "group", "n", "accuracy");
    for (i = 1; i < g->count; i++) {
      const lensviz_eval_classes *r = g->groups[i].classes;
      size_t n = 0;
      for (c = 0; c < d->classes; c++) n += r->count[c];
      printf("%-28.28s %6lu", g->groups[i].name, (unsigned long)n);
      print_fig(r->accuracy);
      for (c = 0; c < d->classes; c++) print_fig(r->recall[c]);
      printf("\n");
    }
  }
}

/* ---- the command ------------------------------------------------------------------------- */

/* A file given twice to --scores would count its objects twice (or, joined by index, be refused as
 * duplicates line by line): say so at once. */
static int check_score_files(const eval_options *o) {
  size_t i, j;
  for (i = 1; i < o->scores_count; i++)
    for (j = 0; j < i; j++)
      if (!strcmp(o->scores_paths[i], o->scores_paths[j]))
        return lens_usage("--scores %s is given twice (the files are read as one table)", o->scores_paths[i]);
  return 0;
}

static int output_path(char *buf, size_t cap, const char *dir, const char *name) {
  size_t len = strlen(dir);
  while (len > 1 && dir[len - 1] == '/') len--;
  if ((size_t)snprintf(buf, cap, "%.*s/%s", (int)len, dir, name) >= cap) return lens_fail("%s: path too long", dir);
  return 0;
}

static int write_outputs(const eval_options *o, const eval_data *d, const eval_groups *g) {
  char json[4096], csv[4096], curve[4096], roc[4096], pr[4096];
  int rc = output_path(json, sizeof json, o->out, "metrics.json") || output_path(csv, sizeof csv, o->out, "metrics.csv") ||
           output_path(curve, sizeof curve, o->out, "curve.csv") || output_path(roc, sizeof roc, o->out, "roc.png") ||
           output_path(pr, sizeof pr, o->out, "pr.png");
  if (rc) return LENS_EXIT_FAIL;
  if ((rc = write_json(o, d, g, json)) != 0 || (rc = write_metrics_csv(o, d, g, csv)) != 0 || (rc = write_curve_csv(o, d, curve)) != 0)
    return rc;
  if (!LENSVIZ_HAS_PNG) {
    fprintf(stderr, "lens: note: roc.png and pr.png not drawn: this lens was built without PNG support (make NO_PNG=1)\n");
    printf("\nwrote %s, %s, %s\n", json, csv, curve);
    return 0;
  }
  rc = d->classes ? draw_classes(d, g, roc, pr) : draw_binary(o, d, g, roc, pr);
  if (!rc) {
    FILE *f;
    printf("\nwrote %s, %s, %s", json, csv, curve);
    if ((f = fopen(roc, "rb")) != NULL) { fclose(f); printf(", %s", roc); }
    if ((f = fopen(pr, "rb")) != NULL) { fclose(f); printf(", %s", pr); }
    printf("\n");
  }
  return rc;
}

int lens_cmd_eval(int argc, char **argv) {
  size_t made = 0; /* how much of --out this run created (lens_make_dirs_noted) */
  eval_options o;
  eval_data d;
  eval_groups g;
  lens_pool *pool = NULL;
  lens_options_given given;
  size_t c;
  int rc;
  for (c = 1; c < (size_t)argc; c++) /* --task regress: lens modelling, another table (tools/cmd_regress.c) */
    if ((!strcmp(argv[c], "--task") && c + 1 < (size_t)argc && !strcmp(argv[c + 1], "regress")) || !strcmp(argv[c], "--task=regress"))
      return lens_cmd_eval_regress(argc, argv);
  memset(&o, 0, sizeof o);
  memset(&d, 0, sizeof d);
  memset(&g, 0, sizeof g);
  if ((rc = lens_options_parse(&eval_spec, argc, argv, &o, &given)) != 0) return rc < 0 ? 0 : rc;
  if ((rc = parse_by(&o)) != 0 || (rc = check_score_files(&o)) != 0) return rc;
  if (o.out && lens_out_folder("--out", o.out)) return LENS_EXIT_USAGE;
  if (o.out) {
    static const char *const outputs[] = {"metrics.json", "metrics.csv", "curve.csv", "roc.png", "pr.png"};
    const char *inputs[EVAL_MAX_SCORES + 1];
    size_t k;
    for (k = 0; k < o.scores_count; k++) inputs[k] = o.scores_paths[k];
    inputs[k] = o.labels_path;
    if ((rc = lens_out_dir_inputs("--out", o.out, outputs, 5, inputs, o.scores_count + 1)) != 0) return rc;
  }
  rc = load_data(&o, &d);
  if (!rc && d.classes && lens_options_was_given(&eval_spec, &given, "threshold"))
    rc = lens_usage("--threshold is a two-class figure; %s %s %lu class columns (each object's class is its highest score)", d.sname,
                    d.scount > 1 ? "have" : "has", (unsigned long)d.classes);
  if (!rc && d.classes && (o.prior_count || o.recall_count || o.fpr_count))
    rc = lens_usage("--prior, --at-recall and --at-fpr are two-class figures; %s %s %lu class columns (for one class against the rest, "
                    "give --score-column p_<class> with labels of 1 for that class and 0 for the others)",
                    d.sname, d.scount > 1 ? "have" : "has", (unsigned long)d.classes);
  if (!rc) rc = make_groups(&o, &d, &g);
  if (!rc && o.out && lens_make_dirs_noted(o.out, &made)) rc = LENS_EXIT_FAIL;
  if (!rc) {
    pool = lens_pool_create(o.threads ? o.threads : lens_pool_default_threads());
    if (!pool) rc = lens_fail("eval: cannot start threads");
  }
  if (!rc) rc = evaluate(&o, &d, &g, pool);
  if (!rc) {
    if (d.classes) {
      printf("lens eval: %lu objects in %lu classes (", (unsigned long)d.n, (unsigned long)d.classes);
      for (c = 0; c < d.classes; c++) printf("%s%s", c ? ", " : "", d.class_names[c]);
      printf("; %s columns of %s), labels from column %s, rows joined by %s\n", d.class_logits ? "logit_, softmaxed," : "p_", d.sname,
             d.labels_table->cells[d.label_col], d.join);
      print_classes(&d, &g);
      { /* labels that use fewer classes than the scores have columns: perhaps another file's labels */
        size_t i, top = 0;
        for (i = 0; i < d.n; i++)
          if ((size_t)d.labels[i] > top) top = (size_t)d.labels[i];
        if (top + 2 == d.classes)
          fprintf(stderr, "lens: note: the labels go up to class %lu of the scores' %lu (%s ... %s): class %lu (%s) has no objects\n",
                  (unsigned long)top, (unsigned long)d.classes, d.class_names[0], d.class_names[d.classes - 1], (unsigned long)top + 1,
                  d.class_names[top + 1]);
        else if (top + 1 < d.classes)
          fprintf(stderr, "lens: note: the labels go up to class %lu of the scores' %lu (%s ... %s): classes %lu-%lu have no objects\n",
                  (unsigned long)top, (unsigned long)d.classes, d.class_names[0], d.class_names[d.classes - 1], (unsigned long)top + 1,
                  (unsigned long)d.classes - 1);
      }
    } else {
      printf("lens eval: %lu objects, %lu lens%s and %lu non-lens%s (score %s of %s, label %s, rows joined by %s)\n", (unsigned long)d.n,
             (unsigned long)g.groups[0].sample.count_pos, g.groups[0].sample.count_pos == 1 ? "" : "es",
             (unsigned long)g.groups[0].sample.count_neg, g.groups[0].sample.count_neg == 1 ? "" : "es", d.st.cells[d.score_col],
             d.sname, d.labels_table->cells[d.label_col], d.join);
      print_binary(&o, &g);
      print_positions(&d);
    }
    if (o.out) rc = write_outputs(&o, &d, &g);
    else printf("\n(no --out: nothing written; --out DIR writes metrics.json, metrics.csv, curve.csv and the plots)\n");
  }
  if (rc && o.out) lens_remove_made_dirs(o.out, made); /* a folder this run made, left empty by a failure */
  lens_pool_free(pool);
  free_groups(&g);
  free_data(&d);
  return rc;
}
