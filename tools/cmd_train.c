/* lens train: train a lens finder (or any architecture) on images.npy + labels.csv with
 * lensnet_fit, which writes DIR/checkpoint.safetensors, DIR/best.safetensors and DIR/history.csv
 * (lensnet.h describes them); `lens train --resume DIR` continues with lensnet_fit_resume and
 * ends on the weights an uninterrupted run reaches.
 *
 * Options are one table: the tool's own (below) and lensnet_fit_settings() (the training
 * settings, --NAME for each with '-' for '_'). Parsing, --help, range checks and, for the
 * options marked saved, the read-back from a checkpoint's train.NAME all come from them. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <math.h>
#include <errno.h>
#include <unistd.h>
#include "lens_cmds.h"
#include "pool.h"
#include "cli.h"
#include "options.h"

typedef struct {
  const char *resume, *data, *labels, *out, *arch, *init, *classes, *channels, *weight_init, *targets;
  int bands, threads, interrupt_after, force, task;
  int crop;                  /* --crop N: train on the central N x N of each image (0: whole images) */
  int arch_given;            /* --arch on the command line: with --init, the network to load the weights into */
  int classes_given;         /* --classes on the command line (else the default, or --init's own names) */
  int preprocess_given;      /* --preprocess or --minmax on the command line (else --init's own scaling) */
  char init_classes[4096];   /* --init's metadata "classes", when it names them and --classes is not given */
  lensnet_fit_desc fit;      /* the training settings */
} train_args;

static const char *const task_choices[] = {"classify", "regress", NULL};
enum { TASK_CLASSIFY, TASK_REGRESS };

#define T train_args
static const lens_option tool_rows[] = {
  LENS_TEXT(T, "data", LENS_OPT_SAVED, data, "", "images.npy", "images [N,C,H,W]"),
  LENS_TEXT(T, "labels", LENS_OPT_SAVED, labels, "", "labels.csv", "a header row and one row per image; the class comes from the column\n"
            "named label, class or is_lens (or the only column); with an index column,\n"
            "each row labels the image its index names"),
  LENS_TEXT(T, "out", 0, out, NULL, "DIR", "folder for the checkpoint, the best weights and history.csv (created)"),
  LENS_FLAG(T, "force", force, "start over in an --out folder that already holds a run (its files are replaced)"),
  LENS_TEXT(T, "resume", 0, resume, NULL, "DIR", "continue the run in DIR: every option comes from its checkpoint;\n"
            "--epochs may extend it, --threads may change, any other is refused"),
  LENS_TEXT(T, "arch", LENS_OPT_SAVED, arch, "ou66", "A", "ou66 | ou200 | ensai (192 x 192, for regress) | resnet18 | resnet34 |\n"
            "p4cnn (rotation-equivariant; the last three take the data's size) |\n"
            "a file of architecture text (default ou66)"),
  LENS_ROW("bands", LENS_OPT_INT, LENS_OPT_SAVED, T, bands, 0, 1024, 0, "B", "input bands of a built-in architecture (default 0: from the data)"),
  LENS_TEXT(T, "channels", LENS_OPT_SAVED | LENS_OPT_SAVED_OPTIONAL, channels, "", "LIST",
            "train on these bands of the data, in this order, e.g. 2,1,3 (default: all)"),
  LENS_ROW("crop", LENS_OPT_INT, LENS_OPT_SAVED | LENS_OPT_SAVED_OPTIONAL, T, crop, 0, 65536, 0, "N",
           "train on the central N x N pixels of each image (offsets rounded down, as\n"
           "lens predict --crop cuts them; default 0: the whole image)"),
  LENS_TEXT(T, "weight-init", LENS_OPT_SAVED | LENS_OPT_SAVED_OPTIONAL, weight_init, "pytorch", "S",
            "starting weights of a fresh model: pytorch (PyTorch's default) | he (He et al. 2015,\n"
            "for deep ReLU stacks without batch norm such as OU-66)"),
  LENS_TEXT(T, "init", LENS_OPT_SAVED, init, "", "W.safetensors", "start from these weights (fine-tuning); with --arch, the weights go\n"
            "by name into that network (another dropout, say), each of its parameters from W"),
  LENS_CHOICE(T, "task", LENS_OPT_SAVED | LENS_OPT_SAVED_OPTIONAL, task, task_choices, 0, "T",
              "classify (default): a class per image | regress: the --targets columns\n"
              "of labels.csv (lens modelling; docs/modelling.md)"),
  LENS_TEXT(T, "targets", LENS_OPT_SAVED | LENS_OPT_SAVED_OPTIONAL, targets, "", "LIST",
            "regress: the labels.csv columns to learn, e.g. theta_E,e1,e2,center_x,center_y;\n"
            "the built-in heads get one output per target (--loss mse, the default) or two\n"
            "(--loss nll: a mean and a log-variance)"),
  LENS_TEXT(T, "classes", LENS_OPT_SAVED, classes, "non-lens,lens", "NAMES", "one name per class, in the order of the labels 0, 1, ...: the model's\n"
            "outputs (default non-lens,lens; with --init, its names)"),
  LENS_CHOICE(T, "preprocess", 0, fit.minmax, lens_preprocess_choices, 0, "P", "minmax | none (default; with --init, its own scaling): the same as\n"
              "--minmax or not"),
  LENS_INT(T, "threads", threads, 1, 256, 0, "T", "worker threads (default: the CPUs this process may use); results do not depend on T"),
  /* a test hook, left out of --help: stop after epoch N as a kill would (exit 1, the checkpoint
   * written, never saved in it), for tests of --resume */
  LENS_INT(T, "interrupt_after", interrupt_after, 0, 1e9, -1, NULL, NULL),
};
#undef T
#define TOOL_ROWS (sizeof tool_rows / sizeof tool_rows[0])

/* Training settings whose lens train default differs from lensnet_fit's. */
static const struct { const char *name, *value; } tool_defaults[] = {{"seed", "1"}};

/* A training setting: lensnet_fit_setting_parse checks it against lensnet's table. */
static int parse_fit_setting(const lens_option *o, const char *label, const char *text, void *opts) {
  lensnet_error err;
  if (lensnet_fit_setting_parse(&((train_args *)opts)->fit, (const lensnet_fit_setting *)o->data, text, &err) == LENSNET_OK) return 0;
  return lens_usage("%s: %s", label, err.message);
}

/* The options: the tool's rows, then one row per training setting of lensnet_fit_settings(). */
static const lens_command_spec *train_spec(void) {
  static lens_option fit_rows[LENS_OPTIONS_MAX];
  static char fit_help[LENS_OPTIONS_MAX][256];
  static lens_option_section sections[2];
  static lens_command_spec spec;
  size_t i, n, k;
  const lensnet_fit_setting *s = lensnet_fit_settings(&n);
  if (spec.name) return &spec;
  for (i = 0; i < n && i + TOOL_ROWS < LENS_OPTIONS_MAX; i++) {
    const char *def = NULL;
    for (k = 0; k < sizeof tool_defaults / sizeof tool_defaults[0]; k++)
      if (!strcmp(s[i].name, tool_defaults[k].name)) def = tool_defaults[k].value;
    lens_option_from_setting(&fit_rows[i], &s[i], offsetof(train_args, fit) + s[i].offset, parse_fit_setting, def, fit_help[i], sizeof fit_help[i]);
  }
  sections[0].rows = tool_rows;
  sections[0].count = TOOL_ROWS;
  sections[1].heading = "training settings (saved in the checkpoint as train.NAME):";
  sections[1].rows = fit_rows;
  sections[1].count = i;
  spec.usage = "usage: lens train --data images.npy --labels labels.csv --out DIR [options]\n"
               "       lens train --resume DIR [--epochs E] [--threads T]\n";
  spec.sections = sections;
  spec.section_count = 2;
  spec.epilog = "DIR and any missing parent folders are created. A terminal shows a progress line on stderr.\n"
                "Exit status: 0 done, 1 failure (a file, a NaN loss), 2 usage error.\n";
  spec.name = "train";
  return &spec;
}

/* What may be given with --resume: the rest comes from the checkpoint, and would be ignored. */
static const char *const resume_allows[] = {"epochs", "threads", "interrupt_after", NULL};

/* The command line into args (lens train's own defaults first). 0, -1 after --help, or the exit status. */
static int parse_args(int argc, char **argv, train_args *a) {
  lens_options_given given;
  lensnet_error err;
  size_t k;
  int rc;
  memset(a, 0, sizeof *a);
  for (k = 0; k < sizeof tool_defaults / sizeof tool_defaults[0]; k++)
    lensnet_fit_setting_parse(&a->fit, lensnet_fit_setting_find(tool_defaults[k].name), tool_defaults[k].value, &err);
  if ((rc = lens_options_parse(train_spec(), argc, argv, a, &given)) != 0) return rc;
  a->arch_given = lens_options_was_given(train_spec(), &given, "arch");
  a->classes_given = lens_options_was_given(train_spec(), &given, "classes");
  a->preprocess_given = lens_options_was_given(train_spec(), &given, "preprocess") || lens_options_was_given(train_spec(), &given, "minmax");
  if (lens_options_was_given(train_spec(), &given, "bands") && a->init && a->init[0] && !a->arch_given)
    return lens_usage("train: --bands sets the bands of a built-in --arch; with --init alone the network is --init's own, with its own bands");
  if ((rc = lens_options_only_with(train_spec(), &given, "resume", resume_allows, "the run's options come from its checkpoint")) != 0)
    return rc;
  if (a->task != TASK_REGRESS && lens_options_was_given(train_spec(), &given, "targets"))
    return lens_usage("train: --targets names what to regress; add --task regress (without it, the labels' class is learnt)");
  /* a loss's own setting given for another loss would be ignored */
  if (lens_options_was_given(train_spec(), &given, "focal_gamma") && (!a->fit.loss || strcmp(a->fit.loss, "focal")))
    return lens_usage("train: --focal-gamma is a setting of --loss focal; this run's loss is %s", a->fit.loss ? a->fit.loss : "the default");
  if (lens_options_was_given(train_spec(), &given, "nll_beta") && (!a->fit.loss || strcmp(a->fit.loss, "nll")))
    return lens_usage("train: --nll-beta is a setting of --loss nll (with --task regress); this run's loss is %s",
                      a->fit.loss ? a->fit.loss : "the default");
  return 0;
}

/* The saved tool options back from a checkpoint (the training settings are lensnet_fit_resume's). */
static int load_saved_options(const lensnet_safetensors *st, train_args *a) {
  size_t k;
  for (k = 0; k < TOOL_ROWS; k++) {
    const lens_option *o = &tool_rows[k];
    char key[64];
    const char *v;
    if (!(o->flags & LENS_OPT_SAVED)) continue;
    snprintf(key, sizeof key, "train.%s", o->name);
    if (!(v = lensnet_safetensors_meta(st, key))) {
      if (o->flags & LENS_OPT_SAVED_OPTIONAL) continue;
      return lens_fail("checkpoint lacks %s", key);
    }
    if (lens_option_set(o, a, v, "checkpoint: train.")) return LENS_EXIT_FAIL;
  }
  return 0;
}

/* The saved tool options and the class names into the model's metadata. */
static int save_tool_options(lensnet_model *m, const train_args *a) {
  size_t k;
  int bad = a->task != TASK_REGRESS && lensnet_model_set_meta(m, "classes", a->classes) != LENSNET_OK;
  for (k = 0; k < TOOL_ROWS; k++) {
    char key[64], value[4096];
    if (!(tool_rows[k].flags & LENS_OPT_SAVED)) continue;
    snprintf(key, sizeof key, "train.%s", tool_rows[k].name);
    lens_option_format(&tool_rows[k], a, value, sizeof value);
    bad |= lensnet_model_set_meta(m, key, value) != LENSNET_OK;
  }
  return bad ? lens_fail("out of memory") : 0;
}

/* band_names for a model trained on a stack whose planes are named (lens sim's bands.txt beside
 * its images.npy: "VIS,Y,J,H"; lens_npy_band_names): the names of the planes it reads (--channels
 * picks them), so that lens predict and lens find later feed it named planes by name. A model
 * that names its bands already (--init, whose bands pick_by_init_names fed by name) keeps them. */
static int set_band_names(lensnet_model *m, const train_args *a) {
  char names[4096], file[4096], out[4096];
  const char *p;
  size_t n = 0, ch[64], k = 0, c, at = 0;
  lensnet_npy_info info;
  lensnet_error err;
  int found = 0, rc;
  if (lensnet_model_meta(m, "band_names")) return 0;
  if ((rc = lens_npy_band_names(a->data, names, sizeof names, &n, file, sizeof file, &found)) != 0 || !found) return rc;
  if (lensnet_npy_info_read(a->data, &info, &err) != LENSNET_OK || info.ndim != 4 || info.shape[1] != n)
    return lens_fail("%s names %lu bands (%s) but %s has %lu", file, (unsigned long)n, names, a->data,
                     (unsigned long)(info.ndim == 4 ? info.shape[1] : 0));
  if (a->channels[0]) {
    if (lensnet_channels_parse(a->channels, ch, 64, &k, &err) != LENSNET_OK) return 0;
  } else
    for (k = 0; k < n && k < 64; k++) ch[k] = k;
  for (c = 0; c < k && ch[c] < n; c++) { /* name ch[c] of the normalised list */
    size_t skip = ch[c], len;
    for (p = names; skip; skip--) p += strcspn(p, ",") + 1;
    len = strcspn(p, ",");
    at += (size_t)snprintf(out + at, sizeof out - at, "%s%.*s", c ? "," : "", (int)len, p);
  }
  if (c < k || k != m->in_c) return 0;
  return lensnet_model_set_meta(m, "band_names", out) != LENSNET_OK ? lens_fail("out of memory") : 0;
}

/* Fine-tuning an --init model that names its bands (OU-66: J,Y,H,VIS) on a stack whose planes are
 * named in another order (lens sim's VIS,Y,J,H): without --channels, its planes are taken by name
 * (ch, *k), as lens predict will feed them to the tuned model, which keeps those names; with
 * --channels, a note when the planes it picks are not the bands --init names. 0 or the status. */
static int pick_by_init_names(const train_args *a, size_t bands, size_t *ch, size_t *k) {
  char names[4096], file[4096];
  size_t n = 0, c;
  int found = 0, by_name = 0, rc = 0;
  lensnet_model *w = NULL;
  lensnet_error err;
  lensnet_result r;
  *k = 0;
  if (!a->init[0] || a->arch_given) return 0;
  if ((rc = lens_npy_band_names(a->data, names, sizeof names, &n, file, sizeof file, &found)) != 0 || !found) return rc;
  if (lensnet_model_load(a->init, &w, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (w->in_c > 64 || !lensnet_model_meta(w, "band_names")) { lensnet_model_free(w); return 0; }
  r = lensnet_band_pick(w, names, bands, ch, &by_name, &err);
  if (r == LENSNET_ERR_SHAPE)
    rc = lens_usage("--init %s: %s (%s); give --channels to pick planes by number", a->init, err.message, file);
  else if (r != LENSNET_OK)
    rc = lens_fail("%s: %s (%s)", a->data, err.message, file);
  else if (a->channels[0]) {
    size_t given[64], g = 0;
    if (lensnet_channels_parse(a->channels, given, 64, &g, &err) == LENSNET_OK && g == w->in_c) {
      for (c = 0; c < g && given[c] == ch[c]; c++) continue;
      if (c < g)
        fprintf(stderr, "lens: note: --channels %s feeds planes of %s (%s) to --init's bands %s otherwise than by their names\n", a->channels,
                a->data, names, lensnet_model_meta(w, "band_names"));
    }
  } else if (by_name) {
    for (c = 0; c < w->in_c && ch[c] == c; c++) continue;
    if (c < w->in_c || bands != w->in_c) {
      fprintf(stderr, "lens: note: %s holds %s (%s); --init %s takes %s: its planes are fed by name (--channels takes them by number)\n",
              a->data, names, file, a->init, lensnet_model_meta(w, "band_names"));
      *k = w->in_c;
    }
  }
  lensnet_model_free(w);
  return rc;
}

/* ---- data ------------------------------------------------------------------------------------ */

static int class_count(const char *names);

/* Name k of a comma-separated list, blanks around it dropped: its start and length (0: no name k). */
static size_t list_name(const char *names, size_t k, const char **start) {
  size_t n;
  while (k-- > 0) {
    names += strcspn(names, ",");
    if (!*names) return 0;
    names++;
  }
  n = strcspn(names, ",");
  while (n && (*names == ' ' || *names == '\t')) names++, n--;
  while (n && (names[n - 1] == ' ' || names[n - 1] == '\t')) n--;
  *start = names;
  return n;
}

/* A labels.csv whose `kind` column names the classes (every row of a label the same kind, each
 * such kind one of the class names, as `lens sim --preset deeplense-substructure` writes them)
 * must name them in the order of --classes: names in another order would train a model that
 * calls each class by another's name. 0, or the exit status of the refusal. */
static int check_kind_names(const char *path, const lensnet_csv *t, size_t n, const float *labels, const char *names) {
  const char *kind_of[64], *s = "";
  size_t col, *rows, i, c, k, len, classes = (size_t)class_count(names);
  int consistent = 1, rc = 0;
  char want[4096] = "";
  if (!t->header || classes > 64 || lensnet_csv_column(t->header, "kind", &col, NULL) != LENSNET_OK) return 0;
  if (!(rows = (size_t *)malloc((n ? n : 1) * sizeof *rows))) return 0;
  if (lensnet_csv_object_rows(t, 1, n, rows, NULL) != LENSNET_OK) { free(rows); return 0; }
  for (c = 0; c < classes; c++) kind_of[c] = NULL;
  for (i = 0; i < n && consistent; i++) {
    const char *kind = lensnet_csv_cell(t, rows[i], col);
    c = (size_t)labels[i];
    if (!kind || c >= classes) consistent = 0;
    else if (!kind_of[c]) kind_of[c] = kind;
    else consistent = !strcmp(kind_of[c], kind);
  }
  free(rows);
  for (c = 0; c < classes && consistent; c++) { /* each kind one of the names */
    int found = 0;
    if (!kind_of[c]) continue;
    for (k = 0; k < classes && !found; k++) found = (len = list_name(names, k, &s)) == strlen(kind_of[c]) && !memcmp(s, kind_of[c], len);
    consistent = found;
  }
  for (c = 0; c < classes && consistent && !rc; c++)
    if (kind_of[c] && !((len = list_name(names, c, &s)) == strlen(kind_of[c]) && !memcmp(s, kind_of[c], len))) rc = 1;
  if (!rc) return 0;
  for (c = 0; c < classes; c++) { /* the names in label order */
    size_t at = strlen(want);
    if (kind_of[c]) snprintf(want + at, sizeof want - at, "%s%s", c ? "," : "", kind_of[c]);
    else {
      len = list_name(names, c, &s);
      snprintf(want + at, sizeof want - at, "%s%.*s", c ? "," : "", (int)len, s);
    }
  }
  for (c = 0; c < classes; c++)
    if (kind_of[c] && !((len = list_name(names, c, &s)) == strlen(kind_of[c]) && !memcmp(s, kind_of[c], len))) break;
  len = list_name(names, c, &s);
  return lens_usage("--classes %s names label %lu '%.*s', but the kind column of %s calls every row of label %lu '%s': give the names in "
                    "the order of the labels (--classes %s)", names, (unsigned long)c, (int)len, s, path, (unsigned long)c, kind_of[c], want);
}

/* The class of each image from labels.csv (lensnet_csv_class_labels: the class column, rows
 * matched to the images by an index column when there is one, else in order), read through
 * lensnet_csv_read as lens plot and lens eval read their tables. */
static int read_labels(const char *path, size_t n, float *labels, int classes, int classes_named, const char *names) {
  lensnet_csv t;
  lensnet_error err;
  int rc = 0;
  if (lensnet_csv_read(path, &t, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (lensnet_csv_class_labels(&t, n, (size_t)classes, labels, &err) != LENSNET_OK) {
    if (err.result == LENSNET_ERR_FORMAT && strstr(err.message, "class '") && !classes_named)
      rc = lens_fail("%s: %s (%d classes by default; --classes names them, one per class, e.g. --classes a,b,c)", path, err.message, classes);
    else rc = lens_fail("%s: %s", path, err.message);
  } else {
    /* a class no image has: its output is never shown an example */
    size_t i;
    float top = 0;
    for (i = 0; i < n; i++) top = labels[i] > top ? labels[i] : top;
    if ((int)top + 2 == classes)
      fprintf(stderr, "lens: note: %d classes but the labels of %s go up to %d: output %d has no image to learn from\n", classes, path,
              (int)top, classes - 1);
    else if ((int)top + 1 < classes)
      fprintf(stderr, "lens: note: %d classes but the labels of %s go up to %d: outputs %d to %d have no image to learn from\n", classes,
              path, (int)top, (int)top + 1, classes - 1);
    rc = check_kind_names(path, &t, n, labels, names);
  }
  lensnet_csv_free(&t);
  return rc;
}

/* The regression targets (the columns named in `names`) of labels.csv into targets[n * T]. */
static int read_targets(const char *path, const char *names, size_t n, float *targets, size_t T) {
  lensnet_csv t;
  lensnet_error err;
  size_t col[LENSNET_REGRESSION_MAX], j, i, *row = NULL;
  int rc = 0;
  if (lensnet_csv_read(path, &t, &err) != LENSNET_OK) return lens_fail_err(&err);
  for (j = 0; j < T && rc == 0; j++) {
    char name[64];
    size_t len = strcspn(names, ",");
    snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), names);
    names += len + (names[len] == ',');
    if (lensnet_csv_column(t.header, name, &col[j], NULL) != LENSNET_OK)
      rc = lens_fail("%s has no column '%s' (--targets); columns found: %s", path, name, t.header);
  }
  if (rc == 0 && !(row = (size_t *)malloc((n ? n : 1) * sizeof(size_t)))) rc = lens_fail("out of memory");
  if (rc == 0 && lensnet_csv_object_rows(&t, 1, n, row, &err) != LENSNET_OK) rc = lens_fail("%s: %s", path, err.message);
  for (i = 0; i < n && rc == 0; i++)
    for (j = 0; j < T && rc == 0; j++) {
      double v;
      size_t r = row[i];
      if (lensnet_csv_number(&t, r, col[j], &v, &err) != LENSNET_OK) rc = lens_fail("%s: %s", path, err.message);
      else if (!(v - v == 0)) rc = lens_fail("%s:%lu: %s is %s; targets must be finite", path, (unsigned long)t.lines[r], lensnet_csv_cell(&t, 0, col[j]),
                                             lensnet_csv_cell(&t, r, col[j]));
      else targets[i * T + j] = (float)v;
    }
  free(row);
  lensnet_csv_free(&t);
  return rc;
}

/* Targets in a --targets list (0 if empty). */
static size_t target_count(const char *names) {
  size_t n = 1;
  if (!names || !*names) return 0;
  for (; *names; names++) n += *names == ',';
  return n;
}

static int class_count(const char *names) {
  int classes = 1;
  for (; *names; names++) classes += *names == ',';
  return classes;
}

/* --classes: every name there (blanks around it dropped) and no name twice, since lens predict
 * names its columns and lens eval its rows by them. 0 or the exit status. */
static int check_class_names(const char *names) {
  const char *s = names;
  int k;
  for (k = 0;; k++) {
    const char *t = names;
    size_t n = strcspn(s, ","), m;
    int j;
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (!n) return lens_usage("--classes %s: name %d is empty", names, k + 1);
    for (j = 0; j < k; j++) { /* the names before this one */
      m = strcspn(t, ",");
      while (m && (*t == ' ' || *t == '\t')) t++, m--;
      while (m && (t[m - 1] == ' ' || t[m - 1] == '\t')) m--;
      if (m == n && !memcmp(s, t, n)) return lens_usage("--classes %s: '%.*s' twice (names %d and %d)", names, (int)n, s, j + 1, k + 1);
      t += strcspn(t, ",") + 1;
    }
    s += strcspn(s, ",");
    if (!*s) return 0;
    s++;
  }
}

/* Without --classes, a classifier fine-tuned from --init keeps --init's class names (and so its
 * count), when its metadata lists them. */
static void classes_from_init(train_args *a) {
  lensnet_safetensors st;
  lensnet_error err;
  const char *c;
  if (a->classes_given || a->task == TASK_REGRESS || !a->init[0] || lensnet_safetensors_read(a->init, &st, &err) != LENSNET_OK) return;
  if ((c = lensnet_safetensors_meta(&st, "classes")) != NULL && !lensnet_safetensors_meta(&st, "regress.targets") && strlen(c) < sizeof a->init_classes) {
    strcpy(a->init_classes, c);
    a->classes = a->init_classes;
  }
  lensnet_safetensors_free(&st);
}

/* images.npy and the labels. */
static int load_data(const train_args *a, lensnet_tensor *images, float **labels) {
  lensnet_error err;
  if (lensnet_npy_read(a->data, images, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (images->ndim != 4 || images->shape[0] < 2) return lens_fail("%s: expected images [N,C,H,W] with N >= 2", a->data);
  if (a->channels[0]) {
    /* keep the listed bands, in order: each image goes through a copy, then its kept planes are
     * packed to the front (never past the start of the next image) */
    size_t ch[64], k, c, i, n = images->shape[0], bands = images->shape[1], plane = images->shape[2] * images->shape[3];
    float *tmp;
    if (lensnet_channels_parse(a->channels, ch, 64, &k, &err) != LENSNET_OK) return lens_usage("--channels: %s", err.message);
    for (c = 0; c < k; c++)
      if (ch[c] >= bands) return lens_usage("--channels asks for band %lu but %s has %lu bands", (unsigned long)ch[c], a->data, (unsigned long)bands);
    if (!(tmp = (float *)malloc(bands * plane * sizeof(float)))) return lens_fail("out of memory");
    for (i = 0; i < n; i++) {
      memcpy(tmp, images->data + i * bands * plane, bands * plane * sizeof(float));
      for (c = 0; c < k; c++) memcpy(images->data + (i * k + c) * plane, tmp + ch[c] * plane, plane * sizeof(float));
    }
    free(tmp);
    images->shape[1] = k;
  }
  if (a->crop) {
    /* the central crop x crop of every plane, packed in place: each row moves to an earlier place
     * (or its own), so copying in order never overwrites a row still to be read */
    size_t n = images->shape[0] * images->shape[1], h = images->shape[2], w = images->shape[3], c = (size_t)a->crop, p, y;
    size_t y0 = (h - c) / 2, x0 = (w - c) / 2;
    if (c > h || c > w)
      return lens_usage("--crop %lu is larger than the images of %s (%lux%lu)", (unsigned long)c, a->data, (unsigned long)h, (unsigned long)w);
    for (p = 0; p < n; p++)
      for (y = 0; y < c; y++) memmove(images->data + (p * c + y) * c, images->data + (p * h + y0 + y) * w + x0, c * sizeof(float));
    images->shape[2] = images->shape[3] = c;
  }
  {
    size_t first, per = images->shape[1] * images->shape[2] * images->shape[3], hw = images->shape[2] * images->shape[3];
    size_t bad = lensnet_count_nonfinite(images->data, lensnet_tensor_count(images), &first);
    if (bad)
      return lens_fail("%s: %lu non-finite pixels (NaN or infinite); the first is image %lu, band %lu, row %lu, column %lu (%g); "
                       "training needs finite pixels", a->data, (unsigned long)bad, (unsigned long)(first / per), (unsigned long)(first % per / hw),
                       (unsigned long)(first % hw / images->shape[3]), (unsigned long)(first % images->shape[3]), (double)images->data[first]);
  }
  if (a->task == TASK_REGRESS) {
    size_t T = target_count(a->targets);
    if (T == 0 || T > LENSNET_REGRESSION_MAX) return lens_usage("--task regress needs --targets with 1 to %d column names", LENSNET_REGRESSION_MAX);
    *labels = (float *)malloc(images->shape[0] * T * sizeof(float));
    if (!*labels) return lens_fail("out of memory");
    return read_targets(a->labels, a->targets, images->shape[0], *labels, T);
  }
  *labels = (float *)malloc(images->shape[0] * sizeof(float));
  if (!*labels) return lens_fail("out of memory");
  return read_labels(a->labels, images->shape[0], *labels, class_count(a->classes), a->classes_given || a->resume || a->init_classes[0],
                     a->classes);
}

/* A whole text file, or NULL. */
static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  char *text = NULL;
  long size;
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && size < (1L << 24) && fseek(f, 0, SEEK_SET) == 0 &&
      (text = (char *)malloc((size_t)size + 1)) != NULL) {
    if (fread(text, 1, (size_t)size, f) == (size_t)size) text[size] = 0;
    else { free(text); text = NULL; }
  }
  fclose(f);
  return text;
}

/* A parameter's shape as "[4,4,3,3]". */
static void shape_text(const lensnet_param *p, char *buf, size_t cap) {
  size_t len = 0;
  int d;
  buf[0] = 0;
  for (d = 0; d < p->ndim && len + 24 < cap; d++) len += (size_t)snprintf(buf + len, cap - len, "%s%lu", d ? "," : "[", (unsigned long)p->shape[d]);
  if (len + 2 < cap) snprintf(buf + len, cap - len, p->ndim ? "]" : "[]");
}

/* --init W with --arch: every parameter (and running statistic) of the --arch network m comes from
 * W's tensor of the same name and shape; how many of W's are left out (a head, say) goes to stderr. */
static int init_by_name(const train_args *a, lensnet_model *m) {
  lensnet_model *w = NULL;
  lensnet_error err;
  size_t k, used = 0;
  int rc = 0;
  if (lensnet_model_load(a->init, &w, &err) != LENSNET_OK) return lens_fail_err(&err);
  for (k = 0; k < m->param_count && rc == 0; k++) {
    const lensnet_param *p = &m->params[k], *q = lensnet_model_param(w, p->name);
    int d, same = q && q->ndim == p->ndim;
    for (d = 0; same && d < p->ndim; d++) same = q->shape[d] == p->shape[d];
    if (!q) rc = lens_usage("--init %s has no %s, which --arch %s needs", a->init, p->name, a->arch);
    else if (!same) {
      char have[160], want[160];
      shape_text(q, have, sizeof have);
      shape_text(p, want, sizeof want);
      rc = lens_usage("--init %s: %s has the shape %s, --arch %s needs %s", a->init, p->name, have, a->arch, want);
    }
    else memcpy(m->values + p->offset, w->values + q->offset, p->count * sizeof(float)), used++;
  }
  if (rc == 0 && used < w->param_count)
    fprintf(stderr, "lens: --init %s: %lu of its %lu tensors are not in --arch %s and are left out\n", a->init, (unsigned long)(w->param_count - used),
            (unsigned long)w->param_count, a->arch);
  lensnet_model_free(w);
  return rc;
}

/* The model a fresh run starts from: --init weights, a built-in architecture or a file of one. */
/* The model: from --init, or a fresh built-in (its head sized for the classes or the targets) or
 * architecture file, initialised. */
static int new_model(train_args *a, const lensnet_fit_desc *d, const lensnet_tensor *images, lensnet_model **m) {
  int outputs = a->task == TASK_REGRESS ? (int)(target_count(a->targets) * (d->loss && !strcmp(d->loss, "nll") ? 2 : 1)) : class_count(a->classes);
  lensnet_error err;
  char builtin[LENSNET_ARCH_TEXT_MAX], *arch = builtin, *file = NULL;
  lensnet_result r;
  if (a->init[0] && !a->arch_given) {
    a->arch = "init"; /* train.arch: the network is --init's own (its layers are in the weights' arch) */
    return lensnet_model_load(a->init, m, &err) == LENSNET_OK ? 0 : lens_fail_err(&err);
  }
  if (!a->bands) a->bands = (int)images->shape[1];
  errno = 0;
  if (!lensnet_arch_builtin_sized(a->arch, a->bands, outputs, (int)images->shape[2], (int)images->shape[3], builtin, sizeof builtin) &&
      !(arch = file = read_text(a->arch))) {
    /* a file that is there but cannot be read (no memory, a disk error) is a failure, not a usage error */
    if (errno && errno != ENOENT && errno != EISDIR && errno != ENOTDIR)
      return lens_fail("--arch %s: cannot read it: %s", a->arch, strerror(errno));
    return lens_usage("--arch '%s' is neither a built-in (ou66, ou200, ensai, resnet18, resnet34, p4cnn) nor a readable file", a->arch);
  }
  r = lensnet_model_create(arch, m, &err);
  free(file);
  if (r != LENSNET_OK) return lens_fail_err(&err);
  if (a->init[0]) return init_by_name(a, *m);
  if (strcmp(a->weight_init, "he") && strcmp(a->weight_init, "pytorch")) {
    lensnet_model_free(*m);
    *m = NULL;
    return lens_usage("--weight-init '%s' is neither pytorch nor he", a->weight_init);
  }
  if (!strcmp(a->weight_init, "he")) lensnet_model_init_he(*m, d->seed);
  else lensnet_model_init(*m, d->seed);
  return 0;
}

/* ---- progress --------------------------------------------------------------------------------- */

typedef struct {
  lens_progress bar;
  int epoch, interrupt_after, stopped;
  const char *score;    /* what the progress calls the second figure: acc, or rms (regression) */
  char note[4400];      /* a resumed run's first line, printed at the first report (empty: none) */
} train_progress;

static int on_progress(void *user, const lensnet_fit_progress *p) {
  train_progress *t = (train_progress *)user;
  double eta;
  if (t->note[0]) { fputs(t->note, stderr); t->note[0] = 0; }
  if (!p->epoch_done) {
    if (t->epoch != p->epoch) { lens_progress_start(&t->bar); t->epoch = p->epoch; }
    if (t->bar.enabled) {
      double rate = (double)p->seen / (p->seconds > 0 ? p->seconds : 1e-9);
      char label[48], extra[64];
      eta = ((double)(p->train_count - p->seen) + (double)(p->epochs - p->epoch) * (double)(p->train_count + p->val_count)) / rate;
      snprintf(label, sizeof label, "epoch %d/%d", p->epoch, p->epochs);
      snprintf(extra, sizeof extra, "loss %.4f %s %.3f", p->train_loss, t->score, p->train_acc);
      lens_progress_show(&t->bar, label, p->seen, p->train_count, "img", eta, extra);
    }
    return 0;
  }
  lens_progress_end(&t->bar);
  eta = p->seconds * (double)(p->epochs - p->epoch);
  fprintf(stderr, "epoch %d/%d: lr %.3g train loss %.4f %s %.3f, val loss %.4f %s %.3f, %.0f img/s, ETA %d:%02d\n", p->epoch, p->epochs,
          p->lr, p->train_loss, t->score, p->train_acc, p->val_loss, t->score, p->val_acc, (double)p->train_count / (p->seconds > 0 ? p->seconds : 1e-9),
          (int)eta / 60, (int)eta % 60);
  if (t->interrupt_after >= 0 && p->epoch == t->interrupt_after && p->epoch < p->epochs) {
    /* for tests of --resume: stop as if killed right after this checkpoint */
    fprintf(stderr, "lens: stopping after epoch %d as asked (--interrupt-after)\n", p->epoch);
    t->stopped = 1;
    return 1;
  }
  return 0;
}

static double wall_seconds(void *user) {
  (void)user;
  return lens_seconds();
}

/* ---- the command ------------------------------------------------------------------------------ */

/* The fit's result as an exit status. */
static int fit_status(lensnet_result r, const lensnet_error *err, const train_progress *tp) {
  if (r == LENSNET_ERR_DIVERGED) return lens_fail("%s; lower --lr or add --clip-norm", err->message);
  if (r == LENSNET_ERR_ARG) { lens_usage("%s", err->message); return LENS_EXIT_USAGE; }
  if (r != LENSNET_OK) return lens_fail_err(err);
  return tp->stopped ? LENS_EXIT_FAIL : 0;
}

/* --resume: the saved options, the data, then lensnet_fit_resume. */
static int resume_run(train_args *a, lensnet_fit_desc *d, lensnet_tensor *images, float **labels) {
  lensnet_safetensors st;
  lensnet_error err;
  lensnet_model *m = NULL;
  char path[4096];
  int rc, epoch, total, complete = 0;
  const char *ep, *dir = a->resume;
  if (lens_resume_dir(dir)) return LENS_EXIT_FAIL;
  snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
  if (lensnet_safetensors_read(path, &st, &err) != LENSNET_OK) return lens_fail_err(&err);
  rc = load_saved_options(&st, a);
  ep = lensnet_safetensors_meta(&st, "train.epoch");
  epoch = ep ? atoi(ep) : 0;
  ep = lensnet_safetensors_meta(&st, "train.epochs");
  total = ep ? atoi(ep) : 0;
  /* one asked to shorten stops here; a complete run goes on to write its history again from the
   * checkpoint (a run stopped while writing it after its last epoch is finished that way) */
  if (rc == 0 && (rc = lens_resume_epochs(dir, epoch, total, d->epochs)) < 0) complete = 1, rc = 0;
  if (!d->epochs) d->epochs = total;
  if (rc == 0 && (rc = load_data(a, images, labels)) != 0 &&
      ((a->data[0] != '/' && access(a->data, F_OK) != 0) || (a->labels[0] != '/' && access(a->labels, F_OK) != 0)))
    fprintf(stderr, "lens: the run's data files are named as they were given when it started (train.data, train.labels in %s); "
                    "relative names are read from the folder lens train runs in: resume from the one the run started in\n", path);
  if (rc == 0) {
    train_progress *tp = (train_progress *)d->progress_user;
    lens_resume_note(tp->note, sizeof tp->note, dir, epoch, d->epochs, complete);
    if (complete) tp->note[0] = 0;
    d->images = images;
    d->labels = *labels;
    if (a->task == TASK_REGRESS) {
      d->targets = target_count(a->targets);
      d->target_names = a->targets;
      tp->score = "rms"; /* the task comes from the checkpoint */
    }
    rc = fit_status(lensnet_fit_resume(dir, d, &m, &err), &err, tp);
    if (rc == 0 && complete) {
      lens_resume_note(tp->note, sizeof tp->note, dir, epoch, total, 1);
      fputs(tp->note, stderr);
    }
    tp->note[0] = 0;
  }
  lensnet_model_free(m);
  lensnet_safetensors_free(&st);
  return rc;
}

/* The files of a run in an --out folder, checkpoint first. */
static const char *const run_files[] = {"checkpoint.safetensors", "best.safetensors", "history.csv"};

/* --force: the previous run's files go before the new run writes any, so that a new run stopped
 * early never leaves its first files beside the old run's others (a --resume would then continue
 * the old run and keep the new one's best weights). */
static int remove_run(const char *dir) {
  size_t k;
  for (k = 0; k < sizeof run_files / sizeof *run_files; k++) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, run_files[k]);
    if (remove(path) != 0 && errno != ENOENT) return lens_fail("%s: cannot remove the previous run's file: %s", path, strerror(errno));
  }
  return 0;
}

/* The new model, trained into the --out folder made for it. */
static int fit_new(train_args *a, lensnet_fit_desc *d, lensnet_tensor *images, float **labels, int classes) {
  lensnet_error err;
  lensnet_model *m = NULL;
  int rc;
  { /* an --init that names its bands takes a named stack's planes by name: as --channels, so saved */
    static char by_names[64 * 4];
    size_t named[64], picked = 0, c, at = 0;
    lensnet_npy_info info;
    lensnet_error ierr;
    if (lensnet_npy_info_read(a->data, &info, &ierr) == LENSNET_OK && info.ndim == 4) {
      if ((rc = pick_by_init_names(a, info.shape[1], named, &picked)) != 0) return rc;
      for (c = 0; c < picked; c++) at += (size_t)snprintf(by_names + at, sizeof by_names - at, "%s%lu", c ? "," : "", (unsigned long)named[c]);
      if (picked) a->channels = by_names;
    }
  }
  if ((rc = load_data(a, images, labels)) != 0 || (rc = new_model(a, d, images, &m)) != 0) { lensnet_model_free(m); return rc; }
  if (a->task == TASK_REGRESS) {
    d->targets = target_count(a->targets);
    d->target_names = a->targets;
  } else if (m->out_features != (size_t)classes)
    rc = lens_fail("the model has %lu outputs but there are %d classes", (unsigned long)m->out_features, classes);
  if (rc == 0) rc = save_tool_options(m, a);
  if (rc == 0) rc = set_band_names(m, a);
  if (rc == 0 && a->force) rc = remove_run(a->out);
  if (rc == 0) {
    d->images = images;
    d->labels = *labels;
    d->out_dir = a->out;
    lensnet_result r = lensnet_fit(m, d, &err);
    rc = r == LENSNET_ERR_SHAPE ? lens_fail("%s: %s", a->data, err.message) : fit_status(r, &err, (const train_progress *)d->progress_user);
  }
  lensnet_model_free(m);
  return rc;
}

/* The scaling of a fresh run: --preprocess or --minmax as given; else, fine-tuning, --init's own
 * (its metadata "preprocess": a finder trained on min-max scaled images goes on with them, as
 * lens predict scores it), said in a note; else none. */
static int preprocess_from_init(train_args *a, lensnet_fit_desc *d) {
  lensnet_model *w = NULL;
  lensnet_error err;
  const char *key = NULL;
  int minmax = 0;
  if (a->preprocess_given) { d->preprocess = d->minmax ? "minmax" : "none"; return 0; }
  if (!a->init[0]) return 0;
  if (lensnet_model_load(a->init, &w, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (lensnet_model_preprocess(w, &minmax, &key, &err) != LENSNET_OK) { lensnet_model_free(w); return lens_fail("--init %s: %s", a->init, err.message); }
  lensnet_model_free(w);
  d->preprocess = minmax ? "minmax" : "none";
  if (minmax)
    fprintf(stderr, "lens: --init %s was trained on min-max scaled images (metadata %s): so is this run; --preprocess none to "
            "train on the values as they are\n", a->init, key);
  return 0;
}

/* A new run into --out. */
static int fresh_run(train_args *a, lensnet_fit_desc *d, lensnet_tensor *images, float **labels) {
  size_t made;
  int rc, classes;
  if (!a->data[0] || !a->labels[0] || !a->out || !a->out[0]) {
    lens_options_help(train_spec(), stderr);
    return lens_usage("--data, --labels and --out are required (or --resume DIR)");
  }
  if (lens_out_folder("--out", a->out)) return LENS_EXIT_USAGE;
  if (!a->force) {
    /* a finished or interrupted run is not overwritten by accident */
    size_t k;
    for (k = 0; k < sizeof run_files / sizeof *run_files; k++) {
      char path[4200];
      FILE *f;
      snprintf(path, sizeof path, "%s/%s", a->out, run_files[k]);
      if ((f = fopen(path, "rb")) != NULL) {
        fclose(f);
        return lens_usage("%s already holds a training run (%s): --resume %s continues it, --force starts over", a->out, run_files[k], a->out);
      }
    }
  }
  classes_from_init(a);
  if ((rc = preprocess_from_init(a, d)) != 0) return rc;
  classes = class_count(a->classes);
  if (classes < 2 || classes > 64) return lens_usage("--classes needs 2 to 64 comma-separated names");
  if (a->task != TASK_REGRESS && (rc = check_class_names(a->classes)) != 0) return rc;
  /* the run's folder first: an --out that cannot be made fails before the data is read; a folder
   * made here goes again if the run fails before writing into it (bad data, a bad option) */
  if (lens_make_dirs_noted(a->out, &made)) return LENS_EXIT_FAIL;
  if ((rc = fit_new(a, d, images, labels, classes)) != 0) lens_remove_made_dirs(a->out, made);
  return rc;
}

int lens_cmd_train(int argc, char **argv) {
  train_args a;
  lensnet_tensor images;
  lensnet_parallel par;
  train_progress tp;
  lens_pool *pool;
  float *labels = NULL;
  int rc = parse_args(argc, argv, &a);
  if (rc) return rc < 0 ? 0 : rc;
  memset(&images, 0, sizeof images);
  memset(&tp, 0, sizeof tp);
  tp.interrupt_after = a.interrupt_after;
  tp.score = "acc";
  pool = lens_pool_create(a.threads ? (size_t)a.threads : lens_pool_default_threads());
  par = lens_pool_parallel(pool);
  a.fit.parallel = &par;
  a.fit.progress = on_progress;
  a.fit.progress_user = &tp;
  a.fit.seconds = wall_seconds;
  if (a.task == TASK_REGRESS) tp.score = "rms"; /* standardised rms error of the means */
  rc = a.resume ? resume_run(&a, &a.fit, &images, &labels) : fresh_run(&a, &a.fit, &images, &labels);
  free(labels);
  lensnet_tensor_free(&images);
  lens_pool_free(pool);
  return rc;
}
