/* lens adapt: adapt a lens finder trained on one domain (simulations: --source-data and
 * --source-labels) to unlabelled images of another (--target-data) with lensnet_adapt (ADDA,
 * AdaMatch or self-ensembling; lensnet.h describes them and the files it writes:
 * DIR/checkpoint.safetensors, DIR/best.safetensors, DIR/history.csv). `lens adapt --resume DIR`
 * continues with lensnet_adapt_resume and ends on the weights an uninterrupted run reaches.
 * Images come as one file or a comma-separated list of files, each a .npy stack or a FITS image
 * or cube; the list is saved as given, so that --resume reads the same files again.
 * --target-labels, when given, are read only for the accuracy and AUC of history.csv; they
 * never reach the training. */
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
  const char *resume, *source_data, *source_labels, *target_data, *target_labels, *init, *out;
  int threads, interrupt_after, force, preprocess;
  lensnet_adapt_desc adapt;  /* the adaptation settings */
} adapt_args;

/* The tool's own options; those marked saved go into the model's metadata as adapt.NAME beside
 * lensnet_adapt's settings, so that --resume DIR finds the data again. */
#define A adapt_args
static const lens_option tool_rows[] = {
  LENS_TEXT(A, "source-data", LENS_OPT_SAVED, source_data, "", "FILES", "labelled images of the source domain (simulations), files as --target-data"),
  LENS_TEXT(A, "source-labels", LENS_OPT_SAVED, source_labels, "", "labels.csv",
            "their classes: the column named label, class or is_lens (or the only column);\n"
            "with an index column, each row labels the image its index names"),
  LENS_TEXT(A, "target-data", LENS_OPT_SAVED, target_data, "", "FILES", "unlabelled images of the target domain (a survey): a .npy [M,C,H,W];\n"
            "a FITS image [H,W], cube [C,H,W] or [M,C,H,W] (its first HDU with pixels);\n"
            "or several such files separated by commas (a.fits,b.fits,...), their\n"
            "images in that order. Every image has the model's input shape"),
  LENS_TEXT(A, "target-labels", LENS_OPT_SAVED, target_labels, "", "labels.csv",
            "optional: their classes, read only to report target_acc and target_auc\n"
            "in history.csv; never used in training"),
  LENS_TEXT(A, "init", LENS_OPT_SAVED, init, "", "M.safetensors", "the source classifier to adapt (lens train's best.safetensors)"),
  LENS_TEXT(A, "out", 0, out, NULL, "DIR", "folder for the checkpoint, the adapted model and history.csv (created)"),
  LENS_FLAG(A, "force", force, "start over in an --out folder that already holds a run (its files are replaced)"),
  LENS_TEXT(A, "resume", 0, resume, NULL, "DIR", "continue the run in DIR: every option comes from its checkpoint;\n"
            "--epochs may extend it, --threads may change"),
  LENS_CHOICE(A, "preprocess", 0, preprocess, lens_preprocess_choices, LENS_PREPROCESS_UNSET, "P",
              "minmax | none; default: the --init model's metadata 'preprocess'"),
  LENS_INT(A, "threads", threads, 1, 256, 0, "T", "worker threads (default: the CPUs this process may use); results do not depend on T"),
  LENS_INT(A, "interrupt_after", interrupt_after, 0, 1e9, -1, NULL, NULL), /* tests of --resume: stop after epoch N */
};
#undef A
#define TOOL_ROWS (sizeof tool_rows / sizeof tool_rows[0])

/* Settings whose lens adapt default differs from lensnet_adapt's. */
static const struct { const char *name, *value; } tool_defaults[] = {{"seed", "1"}};

/* An adaptation setting: lensnet_adapt_setting_parse checks it against lensnet's table. */
static int parse_setting(const lens_option *o, const char *label, const char *text, void *opts) {
  lensnet_error err;
  if (lensnet_adapt_setting_parse(&((adapt_args *)opts)->adapt, (const lensnet_fit_setting *)o->data, text, &err) == LENSNET_OK) return 0;
  return lens_usage("%s: %s", label, err.message);
}

/* The options: the tool's rows, then one row per setting of lensnet_adapt_settings() (minmax is
 * --preprocess here). */
static const lens_command_spec *adapt_spec(void) {
  static lens_option rows[LENS_OPTIONS_MAX];
  static char help[LENS_OPTIONS_MAX][256];
  static lens_option_section sections[2];
  static lens_command_spec spec;
  size_t i, n, k, r = 0;
  const lensnet_fit_setting *s = lensnet_adapt_settings(&n);
  if (spec.name) return &spec;
  for (i = 0; i < n && r + TOOL_ROWS < LENS_OPTIONS_MAX; i++) {
    const char *def = NULL;
    if (!strcmp(s[i].name, "minmax")) continue;
    for (k = 0; k < sizeof tool_defaults / sizeof tool_defaults[0]; k++)
      if (!strcmp(s[i].name, tool_defaults[k].name)) def = tool_defaults[k].value;
    lens_option_from_setting(&rows[r], &s[i], offsetof(adapt_args, adapt) + s[i].offset, parse_setting, def, help[r], sizeof help[r]);
    r++;
  }
  sections[0].rows = tool_rows;
  sections[0].count = TOOL_ROWS;
  sections[1].heading = "adaptation settings (saved in the checkpoint as adapt.NAME):";
  sections[1].rows = rows;
  sections[1].count = r;
  spec.usage = "usage: lens adapt --source-data images.npy --source-labels labels.csv --target-data FILES\n"
               "                  --init M.safetensors --out DIR [--method adda|adamatch|self-ensembling] [options]\n"
               "       lens adapt --method adabn --target-data FILES --init M.safetensors --out DIR [options]\n"
               "       lens adapt --resume DIR [--epochs E] [--threads T]\n";
  spec.intro = "Domain adaptation of a classifier: its last dense layer is the classifier, the layers below it\n"
               "the encoder. DIR/best.safetensors is the adapted finder (lens predict reads it).\n";
  spec.sections = sections;
  spec.section_count = 2;
  spec.epilog = "DIR and any missing parent folders are created once the data are read, and removed again if the\n"
                "run fails before writing its first files. A terminal shows a progress line on stderr with\n"
                "both losses (adabn: its two statistics). --method adabn reads no source images, and --epochs,\n"
                "--lr and --seed do not apply to it; --batch is then the target images passed at once.\n"
                "Exit status: 0 done, 1 failure (a file, a NaN loss, a statistic beyond float's range), 2 usage error.\n";
  spec.name = "adapt";
  return &spec;
}

/* ---- data ------------------------------------------------------------------------------------ */

/* The class of each image from labels.csv (classes 0..classes-1; lensnet_csv_class_labels: rows
 * matched to the images by an index column when there is one, else in order). */
static int read_labels(const char *path, size_t n, float *labels, size_t classes) {
  lensnet_csv t;
  lensnet_error err;
  int rc = 0;
  if (lensnet_csv_read(path, &t, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (lensnet_csv_class_labels(&t, n, classes, labels, &err) != LENSNET_OK)
    rc = lens_fail("%s: %s%s", path, err.message, strstr(err.message, "class '") ? " (the model's outputs)" : "");
  lensnet_csv_free(&t);
  return rc;
}

/* One file of --source-data / --target-data as images [N,C,H,W] of the model's input, finite: a
 * .npy [N,C,H,W], or a FITS image [H,W], cube [C,H,W] or [N,C,H,W] (the first HDU with pixels). */
static int read_image_file(const char *flag, const char *path, const lensnet_model *m, lensnet_tensor *images) {
  lensnet_error err;
  size_t first, bad;
  int fits = lens_format_of(path) != LENS_FMT_NPY;
  if ((fits ? lensnet_fits_read(path, -1, images, &err) : lensnet_npy_read(path, images, &err)) != LENSNET_OK) return lens_fail_err(&err);
  if (fits && (images->ndim == 2 || images->ndim == 3)) { /* one image: [1,C,H,W] */
    size_t c = images->ndim == 3 ? images->shape[0] : 1, h = images->shape[images->ndim - 2], w = images->shape[images->ndim - 1];
    images->shape[0] = 1; images->shape[1] = c; images->shape[2] = h; images->shape[3] = w;
    images->ndim = 4;
  }
  if (images->ndim != 4 || images->shape[0] < 1)
    return lens_fail("%s %s: expected %s", flag, path, fits ? "a FITS image [H,W], cube [C,H,W] or [N,C,H,W]" : "images [N,C,H,W]");
  if (images->shape[1] != m->in_c || images->shape[2] != m->in_h || images->shape[3] != m->in_w)
    return lens_fail("%s %s: images are %lux%lux%lu but the model takes %lux%lux%lu", flag, path, (unsigned long)images->shape[1],
                     (unsigned long)images->shape[2], (unsigned long)images->shape[3], (unsigned long)m->in_c, (unsigned long)m->in_h,
                     (unsigned long)m->in_w);
  if (!fits) { /* planes named beside the stack (lens sim's bands.txt) go to the model's bands by name, as lens predict feeds them */
    lens_band_notes notes;
    int rc;
    memset(&notes, 0, sizeof notes);
    if ((rc = lens_npy_planes_by_name(m, path, images->data, images->shape[0], m->in_h * m->in_w, &notes)) != 0) return rc;
  }
  if ((bad = lensnet_count_nonfinite(images->data, lensnet_tensor_count(images), &first)) != 0)
    return lens_fail("%s %s: %lu non-finite pixels (NaN or infinite), the first in image %lu; adaptation needs finite pixels", flag, path,
                     (unsigned long)bad, (unsigned long)(first / (m->in_c * m->in_h * m->in_w)));
  return 0;
}

/* One set of images: the files of `list` (names separated by commas), their images in order. */
static int read_images(const char *flag, const char *list, const lensnet_model *m, lensnet_tensor *images) {
  size_t n = 1, i, at, total = 0, per = m->in_c * m->in_h * m->in_w;
  const char *p;
  char *names = NULL, *name;
  lensnet_tensor *files;
  lensnet_error err;
  int rc = 0;
  for (p = list; *p; p++) n += *p == ',';
  if (n == 1) return read_image_file(flag, list, m, images);
  if (list[0] == ',' || strstr(list, ",,") || list[strlen(list) - 1] == ',')
    return lens_usage("%s: an empty name in the list of files (the names are separated by commas)", flag);
  if (!(files = (lensnet_tensor *)calloc(n, sizeof *files)) || !(names = (char *)malloc(strlen(list) + 1))) {
    free(files);
    return lens_fail("out of memory");
  }
  strcpy(names, list);
  for (i = 0, name = names; i < n && rc == 0; i++) {
    char *comma = strchr(name, ',');
    if (comma) *comma = 0;
    if ((rc = read_image_file(flag, name, m, &files[i])) == 0) total += files[i].shape[0];
    name = comma ? comma + 1 : name;
  }
  if (rc == 0) {
    size_t shape[4];
    shape[0] = total; shape[1] = m->in_c; shape[2] = m->in_h; shape[3] = m->in_w;
    if (lensnet_tensor_alloc(images, 4, shape, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  }
  for (i = 0, at = 0; i < n; i++) {
    if (rc == 0) memcpy(images->data + at, files[i].data, files[i].shape[0] * per * sizeof(float));
    at += files[i].shape[0] * per;
    lensnet_tensor_free(&files[i]);
  }
  free(files);
  free(names);
  return rc;
}

typedef struct {
  lensnet_tensor source, target;
  float *source_labels, *target_labels;
} adapt_data;

static void data_free(adapt_data *d) {
  lensnet_tensor_free(&d->source);
  lensnet_tensor_free(&d->target);
  free(d->source_labels);
  free(d->target_labels);
}

static int load_data(const adapt_args *a, const lensnet_model *m, adapt_data *d) {
  int rc;
  if ((a->source_data[0] && (rc = read_images("--source-data", a->source_data, m, &d->source)) != 0) ||
      (rc = read_images("--target-data", a->target_data, m, &d->target)) != 0) return rc;
  if ((a->source_data[0] && !(d->source_labels = (float *)malloc(d->source.shape[0] * sizeof(float)))) ||
      (a->target_labels[0] && !(d->target_labels = (float *)malloc(d->target.shape[0] * sizeof(float)))))
    return lens_fail("out of memory");
  if (a->source_data[0] && (rc = read_labels(a->source_labels, d->source.shape[0], d->source_labels, m->out_features)) != 0) return rc;
  return a->target_labels[0] ? read_labels(a->target_labels, d->target.shape[0], d->target_labels, m->out_features) : 0;
}

/* ---- progress --------------------------------------------------------------------------------- */

typedef struct {
  lens_progress bar;
  int epoch, interrupt_after, stopped;
  char note[4400];      /* a resumed run's first line, printed at the first report (empty: none) */
} adapt_progress;

static int on_progress(void *user, const lensnet_adapt_progress *p) {
  adapt_progress *t = (adapt_progress *)user;
  double eta;
  if (t->note[0]) { fputs(t->note, stderr); t->note[0] = 0; }
  if (!p->epoch_done) {
    if (t->epoch != p->epoch) { lens_progress_start(&t->bar); t->epoch = p->epoch; }
    if (t->bar.enabled) {
      double rate = (double)p->step / (p->seconds > 0 ? p->seconds : 1e-9);
      char label[48], extra[96];
      eta = ((double)(p->steps - p->step) + (double)(p->epochs - p->epoch) * (double)p->steps) / rate;
      snprintf(label, sizeof label, "epoch %d/%d", p->epoch, p->epochs);
      snprintf(extra, sizeof extra, "%s %.4f %s %.4f", p->loss_names[0], p->loss[0], p->loss_names[1], p->loss[1]);
      lens_progress_show(&t->bar, label, p->step, p->steps, "step", eta, extra);
    }
    return 0;
  }
  lens_progress_end(&t->bar);
  eta = p->seconds * (double)(p->epochs - p->epoch);
  fprintf(stderr, "epoch %d/%d: %s %.4f, %s %.4f", p->epoch, p->epochs, p->loss_names[0], p->loss[0], p->loss_names[1], p->loss[1]);
  if (p->target_acc == p->target_acc) fprintf(stderr, ", target acc %.3f", p->target_acc);
  if (p->target_auc == p->target_auc) fprintf(stderr, " auc %.3f", p->target_auc);
  fprintf(stderr, ", ETA %d:%02d\n", (int)eta / 60, (int)eta % 60);
  if (t->interrupt_after >= 0 && p->epoch == t->interrupt_after && p->epoch < p->epochs) {
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

static int adapt_status(lensnet_result r, const lensnet_error *err, const adapt_progress *tp) {
  if (r == LENSNET_ERR_DIVERGED) return lens_fail("%s; lower --lr", err->message);
  if (r == LENSNET_ERR_ARG) { lens_usage("%s", err->message); return LENS_EXIT_USAGE; }
  if (r != LENSNET_OK) return lens_fail_err(err);
  return tp->stopped ? LENS_EXIT_FAIL : 0;
}

static const char *const run_files[] = {"checkpoint.safetensors", "best.safetensors", "history.csv"};

static int fresh_run(adapt_args *a, lensnet_adapt_desc *base, adapt_data *data) {
  lensnet_model *m = NULL;
  lensnet_error err;
  lensnet_adapt_desc d;
  size_t k;
  int rc = 0, minmax = 0;
  size_t made = 0;        /* how much of --out this run created (lens_make_dirs_noted) */
  int adabn = a->adapt.method && !strcmp(a->adapt.method, "adabn");
  if (adabn && (a->source_data[0] || a->source_labels[0]))
    return lens_usage("adapt: --method adabn uses no source images; leave out --source-data and --source-labels");
  if ((!adabn && (!a->source_data[0] || !a->source_labels[0])) || !a->target_data[0] || !a->init[0] || !a->out || !a->out[0]) {
    lens_options_help(adapt_spec(), stderr);
    return lens_usage(adabn ? "--target-data, --init and --out are required with --method adabn"
                            : "--source-data, --source-labels, --target-data, --init and --out are required (or --resume DIR)");
  }
  if (lens_out_folder("--out", a->out)) return LENS_EXIT_USAGE;
  for (k = 0; k < sizeof run_files / sizeof *run_files && !a->force; k++) {
    char path[4200];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", a->out, run_files[k]);
    if ((f = fopen(path, "rb")) != NULL) {
      fclose(f);
      return lens_usage("%s already holds a run (%s): --resume %s continues it, --force starts over", a->out, run_files[k], a->out);
    }
  }
  if (lensnet_model_load(a->init, &m, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (lensnet_model_meta(m, "regress.targets")) rc = lens_usage("--init %s is a regression model; lens adapt adapts classifiers", a->init);
  else if ((minmax = lens_preprocess_resolve(m, a->preprocess)) < 0) rc = LENS_EXIT_FAIL;
  else if ((rc = load_data(a, m, data)) == 0 && lens_make_dirs_noted(a->out, &made)) rc = LENS_EXIT_FAIL;
  for (k = 0; k < TOOL_ROWS && rc == 0; k++) { /* the data's paths, for --resume */
    char key[64], *value;
    size_t len;
    if (!(tool_rows[k].flags & LENS_OPT_SAVED)) continue;
    snprintf(key, sizeof key, "adapt.%s", tool_rows[k].name);
    len = (size_t)lens_option_format(&tool_rows[k], a, NULL, 0) + 1; /* a list of FITS files may be long */
    if (!(value = (char *)malloc(len))) { rc = lens_fail("out of memory"); break; }
    lens_option_format(&tool_rows[k], a, value, len);
    if (lensnet_model_set_meta(m, key, value) != LENSNET_OK) rc = lens_fail("out of memory");
    free(value);
  }
  for (k = 0; k < sizeof run_files / sizeof *run_files && rc == 0 && a->force; k++) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", a->out, run_files[k]);
    if (remove(path) != 0 && errno != ENOENT) rc = lens_fail("%s: cannot remove the previous run's file: %s", path, strerror(errno));
  }
  if (rc == 0) {
    lensnet_result r;
    d = a->adapt;
    d.minmax = minmax;
    d.preprocess = minmax ? "minmax" : "none"; /* resolved above, --preprocess over the model's */
    d.source = adabn ? NULL : &data->source; d.source_labels = data->source_labels;
    d.target = &data->target; d.target_labels = data->target_labels;
    d.parallel = base->parallel; d.progress = base->progress; d.progress_user = base->progress_user; d.seconds = base->seconds;
    d.out_dir = a->out;
    r = lensnet_adapt(m, &d, &err);
    rc = adapt_status(r, &err, (const adapt_progress *)d.progress_user);
  }
  if (rc != 0) lens_remove_made_dirs(a->out, made); /* a failure before the first epoch's files leaves no empty folder */
  lensnet_model_free(m);
  return rc;
}

/* Whether a comma-separated list of files names a relative one that is not there. */
static int relative_missing(const char *list) {
  while (list && *list) {
    char name[4096];
    size_t n = strcspn(list, ",");
    snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name - 1 ? n : sizeof name - 1), list);
    if (name[0] && name[0] != '/' && access(name, F_OK) != 0) return 1;
    list += n + (list[n] == ',');
  }
  return 0;
}

static int resume_run(adapt_args *a, lensnet_adapt_desc *base, adapt_data *data) {
  lensnet_safetensors st;
  lensnet_error err;
  lensnet_model *m = NULL, *adapted = NULL;
  char path[4200];
  size_t k;
  int rc = 0, complete = 0, adabn = 0;
  if (lens_resume_dir(a->resume)) return LENS_EXIT_FAIL;
  snprintf(path, sizeof path, "%s/checkpoint.safetensors", a->resume);
  if (lensnet_safetensors_read(path, &st, &err) != LENSNET_OK) return lens_fail_err(&err);
  for (k = 0; k < TOOL_ROWS && rc == 0; k++) {
    char key[64];
    const char *v;
    if (!(tool_rows[k].flags & LENS_OPT_SAVED)) continue;
    snprintf(key, sizeof key, "adapt.%s", tool_rows[k].name);
    if (!(v = lensnet_safetensors_meta(&st, key))) rc = lens_fail("%s: not a lens adapt checkpoint (no %s)", path, key);
    else if (lens_option_set(&tool_rows[k], a, v, "checkpoint: adapt.")) rc = LENS_EXIT_FAIL;
  }
  if (rc == 0) { /* adabn is one pass: there is nothing to extend */
    const char *method = lensnet_safetensors_meta(&st, "adapt.method");
    adabn = method && !strcmp(method, "adabn");
    if (adabn && a->adapt.epochs && a->adapt.epochs != 1)
      rc = lens_usage("adapt: --epochs does not apply to --method adabn (one pass over the target images)");
  }
  if (rc == 0) { /* one asked to shorten stops here; a complete run writes its history again from the checkpoint */
    const char *done = lensnet_safetensors_meta(&st, "adapt.epoch"), *total = lensnet_safetensors_meta(&st, "adapt.epochs");
    rc = lens_resume_epochs(a->resume, done ? atoi(done) : 0, total ? atoi(total) : 0, a->adapt.epochs);
    if (rc < 0) complete = 1, rc = 0;
  }
  if (rc == 0 && lensnet_model_from_safetensors(&st, &m, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  if (rc == 0 && (rc = load_data(a, m, data)) != 0 && (relative_missing(a->source_data) || relative_missing(a->source_labels) ||
                                                      relative_missing(a->target_data) || relative_missing(a->target_labels)))
    fprintf(stderr, "lens: the run's data files are named as they were given when it started (adapt.source-data, adapt.target-data "
                    "in %s); relative names are read from the folder lens adapt runs in: resume from the one the run started in\n", path);
  if (rc == 0) {
    const char *ep = lensnet_safetensors_meta(&st, "adapt.epoch");
    lensnet_adapt_desc d;
    memset(&d, 0, sizeof d);
    d.source = a->source_data[0] ? &data->source : NULL; d.source_labels = data->source_labels;
    d.target = &data->target; d.target_labels = data->target_labels;
    d.parallel = base->parallel; d.progress = base->progress; d.progress_user = base->progress_user; d.seconds = base->seconds;
    d.epochs = a->adapt.epochs;
    adapt_progress *tp = (adapt_progress *)d.progress_user;
    const char *total = lensnet_safetensors_meta(&st, "adapt.epochs");
    int done = ep ? atoi(ep) : 0;
    lens_resume_note(tp->note, sizeof tp->note, a->resume, done, d.epochs ? d.epochs : total ? atoi(total) : 0, complete);
    if (complete) tp->note[0] = 0;
    rc = adapt_status(lensnet_adapt_resume(a->resume, &d, &adapted, &err), &err, tp);
    if (rc == 0 && complete) {
      if (adabn) /* nothing extends it */
        snprintf(tp->note, sizeof tp->note, "lens: %s: the run is complete (adabn is one pass): history.csv was written again from the checkpoint\n",
                 a->resume);
      else lens_resume_note(tp->note, sizeof tp->note, a->resume, done, total ? atoi(total) : done, 1);
      fputs(tp->note, stderr);
    }
    tp->note[0] = 0;
  }
  lensnet_model_free(m);
  lensnet_model_free(adapted);
  lensnet_safetensors_free(&st);
  return rc;
}

/* The setting called name in lensnet_adapt_settings(). */
static const lensnet_fit_setting *setting_named(const char *name) {
  size_t n, i;
  const lensnet_fit_setting *s = lensnet_adapt_settings(&n);
  for (i = 0; i < n && strcmp(s[i].name, name); i++) {}
  return i < n ? &s[i] : NULL;
}

int lens_cmd_adapt(int argc, char **argv) {
  adapt_args a;
  lens_options_given given;
  adapt_data data;
  lensnet_adapt_desc base;
  lensnet_parallel par;
  adapt_progress tp;
  lens_pool *pool;
  size_t k;
  int rc;
  memset(&a, 0, sizeof a);
  for (k = 0; k < sizeof tool_defaults / sizeof tool_defaults[0]; k++)
    lensnet_adapt_setting_parse(&a.adapt, setting_named(tool_defaults[k].name), tool_defaults[k].value, NULL);
  if ((rc = lens_options_parse(adapt_spec(), argc, argv, &a, &given)) != 0) return rc < 0 ? 0 : rc;
  if (a.resume) { /* everything else comes from the checkpoint: an option given beside --resume would be ignored */
    const lens_command_spec *spec = adapt_spec();
    size_t sec, row, n = 0;
    for (sec = 0; sec < spec->section_count; sec++)
      for (row = 0; row < spec->sections[sec].count; row++, n++) {
        const char *name = spec->sections[sec].rows[row].name;
        if (n < LENS_OPTIONS_MAX && given.row[n] && strcmp(name, "resume") && strcmp(name, "epochs") && strcmp(name, "threads") &&
            strcmp(name, "interrupt_after"))
          return lens_usage("adapt: --%s does not apply with --resume (the run's options come from its checkpoint; "
                            "only --epochs and --threads may change)", name);
      }
  }
  else { /* a setting of another method would be ignored */
    const lens_command_spec *spec = adapt_spec();
    const char *method = a.adapt.method && a.adapt.method[0] ? a.adapt.method : lensnet_adapt_desc_resolve(NULL).method;
    size_t sec, row, n = 0;
    for (sec = 0; sec < spec->section_count; sec++)
      for (row = 0; row < spec->sections[sec].count; row++, n++) {
        const lens_option *o = &spec->sections[sec].rows[row];
        const lensnet_fit_setting *setting = sec == 1 ? (const lensnet_fit_setting *)o->data : NULL;
        if (n < LENS_OPTIONS_MAX && given.row[n] && setting && !lensnet_adapt_setting_applies(setting, method)) {
          char flag[64], own[96];
          size_t c;
          snprintf(flag, sizeof flag, "%s", o->name);
          for (c = 0; flag[c]; c++) if (flag[c] == '_') flag[c] = '-';
          { /* "a,b,c": "a, b or c" */
            const char *list = lensnet_adapt_setting_method(setting), *last = strrchr(list, ',');
            size_t o2 = 0;
            for (; *list && o2 + 5 < sizeof own; list++)
              if (*list != ',') own[o2++] = *list;
              else if (list == last) memcpy(own + o2, " or ", 4), o2 += 4;
              else memcpy(own + o2, ", ", 2), o2 += 2;
            own[o2] = 0;
          }
          return lens_usage("adapt: --%s is a setting of --method %s; this run is --method %s", flag, own, method);
        }
      }
  }
  memset(&data, 0, sizeof data);
  memset(&tp, 0, sizeof tp);
  memset(&base, 0, sizeof base);
  tp.interrupt_after = a.interrupt_after;
  pool = lens_pool_create(a.threads ? (size_t)a.threads : lens_pool_default_threads());
  par = lens_pool_parallel(pool);
  base.parallel = &par;
  base.progress = on_progress;
  base.progress_user = &tp;
  base.seconds = wall_seconds;
  rc = a.resume ? resume_run(&a, &base, &data) : fresh_run(&a, &base, &data);
  data_free(&data);
  lens_pool_free(pool);
  return rc;
}
