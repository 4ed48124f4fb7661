/* lens train: train a lens finder (or any architecture) on images.npy + labels.csv, with
 * checkpoints that resume to the same weights an uninterrupted run reaches.
 *
 * State written every epoch, atomically (temporary file + rename):
 *   DIR/checkpoint.safetensors  weights, optimiser moments ("optimizer.m.*", "optimizer.v.*"),
 *                               and in the metadata: every option, the epoch, the optimiser step,
 *                               both random streams, the best validation loss and the history
 *   DIR/best.safetensors        the weights with the lowest validation loss so far
 * Each file's metadata describes the weights it holds: train.epoch is the epoch that made them,
 * train.train_loss, train.train_acc, train.val_loss and train.val_acc that epoch's history row,
 * and train.history ends with that row. "preprocess" (minmax | none) tells lens predict and
 * lens explain how to scale inputs.
 *   DIR/history.csv             one row per epoch
 * `lens train --resume DIR` reads the options back from the checkpoint. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include "lens_cmds.h"
#include "pool.h"
#include "cli.h"

typedef struct {
  char arch[64], arch_file[1024], data[1024], labels[1024], out[1024], init[1024], classes[256];
  char optimizer[16], schedule[16], loss[16], class_weights[256], augment[128];
  int bands, epochs, nesterov, threads, interrupt_after, minmax;
  size_t batch;
  double lr, val_fraction, momentum, weight_decay, clip_norm, gamma, focal_gamma, min_lr;
  int step_size, warmup;
  unsigned long long seed;
} train_options;

typedef struct {
  int flip, rot90, shift;
  float noise;
} augmentation;

static double now_seconds(void) { return lens_seconds(); }

static void train_usage(FILE *f) {
  fprintf(f,
    "usage: lens train --data images.npy --labels labels.csv --out DIR [options]\n"
    "       lens train --resume DIR [--epochs E] [--threads T]\n"
    "  --arch A            ou66 | ou200 | a file of architecture text (default ou66)\n"
    "  --bands B           input bands of a built-in architecture (default: from the data)\n"
    "  --init W.safetensors start from these weights (fine-tuning)\n"
    "  --epochs E          (default 10)     --batch B   (default 32)\n"
    "  --lr LR             (default 1e-3)   --seed S    (default 1)\n"
    "  --val-fraction F    held-out share for validation (default 0.1)\n"
    "  --class-weights W   auto (inverse class frequency) | none | w0,w1,... (default none)\n"
    "  --loss L            ce (softmax cross-entropy) | focal (default ce); --focal-gamma G (2)\n"
    "  --optimizer O       adam | adamw | sgd (default adam); --momentum M, --nesterov,\n"
    "                      --weight-decay WD, --clip-norm C\n"
    "  --schedule S        constant | step | cosine (default constant); --step-size N,\n"
    "                      --gamma G (step), --min-lr LR (cosine), --warmup N (epochs)\n"
    "  --augment LIST      flip,rot90,shift=PIXELS,noise=SIGMA (default none)\n"
    "  --preprocess P      minmax (per-image, per-band scaling to [0,1]) or none (default); saved\n"
    "                      as the model's 'preprocess', which lens predict and explain then apply\n"
    "  --minmax            the same as --preprocess minmax\n"
    "  --classes NAMES     class names for the metadata (default non-lens,lens)\n"
    "  --threads T         worker threads (default: all CPUs); results do not depend on T\n"
    "labels.csv: a header row and one row per image; the class index is read from the column\n"
    "named label, class or is_lens (or the only column).\n"
    "DIR and any missing parent folders are created. A terminal shows a progress line on stderr.\n"
    "Exit status: 0 done, 1 failure (a file, a NaN loss), 2 usage error.\n");
}

/* ---- options <-> checkpoint metadata -------------------------------------------------------- */

/* The accepted range of every numeric option, for the command line and for checkpoints. */
typedef struct { const char *name; double lo, hi; } option_range;
static const option_range option_ranges[] = {
  {"bands", 0, 1024}, {"epochs", 1, 1e6}, {"nesterov", 0, 1}, {"minmax", 0, 1}, {"batch", 1, 65536}, {"lr", 1e-12, 100},
  {"val_fraction", 0, 0.9}, {"momentum", 0, 1}, {"weight_decay", 0, 10}, {"clip_norm", 0, 1e9}, {"gamma", 0, 1},
  {"focal_gamma", 0, 10}, {"min_lr", 0, 100}, {"step_size", 0, 1e6}, {"warmup", 0, 1e6}, {"seed", 0, 9e15},
};
static double option_low(const char *name) {
  size_t i;
  for (i = 0; i < sizeof option_ranges / sizeof option_ranges[0]; i++) if (!strcmp(option_ranges[i].name, name)) return option_ranges[i].lo;
  return 0;
}
static double option_high(const char *name) {
  size_t i;
  for (i = 0; i < sizeof option_ranges / sizeof option_ranges[0]; i++) if (!strcmp(option_ranges[i].name, name)) return option_ranges[i].hi;
  return 0;
}

#define TRAIN_STRING_OPTIONS(X) X(arch) X(arch_file) X(data) X(labels) X(init) X(classes) X(optimizer) X(schedule) X(loss) X(class_weights) X(augment)
#define TRAIN_NUMBER_OPTIONS(X) X(bands) X(epochs) X(nesterov) X(minmax) X(batch) X(lr) X(val_fraction) X(momentum) X(weight_decay) \
  X(clip_norm) X(gamma) X(focal_gamma) X(min_lr) X(step_size) X(warmup) X(seed)

static int save_options(lensnet_model *m, const train_options *o) {
  char num[64];
  int bad = 0;
#define SAVE_STRING(f) bad |= lensnet_model_set_meta(m, "train." #f, o->f) != LENSNET_OK;
#define SAVE_NUMBER(f) snprintf(num, sizeof num, "%.17g", (double)o->f); bad |= lensnet_model_set_meta(m, "train." #f, num) != LENSNET_OK;
  TRAIN_STRING_OPTIONS(SAVE_STRING)
  TRAIN_NUMBER_OPTIONS(SAVE_NUMBER)
#undef SAVE_STRING
#undef SAVE_NUMBER
  bad |= lensnet_model_set_meta(m, "preprocess", o->minmax ? "minmax" : "none") != LENSNET_OK;
  return bad ? lens_fail("out of memory") : 0;
}

/* A checkpoint's options pass the command line's range checks too (a damaged or foreign file
 * must not drive the loop out of bounds). */
static int check_loaded_number(const char *name, double v, double lo, double hi) {
  if (!(v >= lo && v <= hi)) return lens_fail("checkpoint: train.%s = %g is outside %g..%g", name, v, lo, hi);
  return 0;
}

static int load_options(const lensnet_safetensors *st, train_options *o) {
  const char *v;
  double d;
#define LOAD_STRING(f) if ((v = lensnet_safetensors_meta(st, "train." #f)) != NULL) snprintf(o->f, sizeof o->f, "%s", v); else return lens_fail("checkpoint lacks train." #f);
#define LOAD_NUMBER(f) if ((v = lensnet_safetensors_meta(st, "train." #f)) != NULL) { \
      d = strtod(v, NULL); if (check_loaded_number(#f, d, option_low(#f), option_high(#f))) return 1; o->f = d; } \
    else return lens_fail("checkpoint lacks train." #f);
  TRAIN_STRING_OPTIONS(LOAD_STRING)
  TRAIN_NUMBER_OPTIONS(LOAD_NUMBER)
#undef LOAD_STRING
#undef LOAD_NUMBER
  return 0;
}

/* ---- data ------------------------------------------------------------------------------------ */

/* Reads the class column of labels.csv into labels[n]. */
static int read_labels(const char *path, size_t n, float *labels, int classes) {
  FILE *f = fopen(path, "r");
  char line[8192];
  int column = -1, row = 0;
  size_t count = 0;
  if (!f) return lens_fail("%s: cannot open the labels", path);
  while (fgets(line, sizeof line, f)) {
    char *p = line, *cell;
    int col = 0;
    row++;
    if (!strchr(line, '\n') && !feof(f)) { fclose(f); return lens_fail("%s:%d: line too long", path, row); }
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0]) continue;
    if (column < 0) {
      /* the header names the column; a lone numeric column needs no header */
      char *end;
      strtod(line, &end);
      if (!strchr(line, ',') && *end == 0) column = 0;
      else {
        for (cell = strtok(p, ","); cell; cell = strtok(NULL, ","), col++)
          if (!strcmp(cell, "label") || !strcmp(cell, "class") || !strcmp(cell, "is_lens")) { column = col; break; }
        if (column < 0) {
          if (!strchr(line, ',')) column = 0; /* a one-column header of another name */
          else { fclose(f); return lens_fail("%s: no column named label, class or is_lens in the header", path); }
        }
        continue;
      }
    }
    {
      char *q = p, *end;
      double v;
      for (col = 0; col < column && q; col++) { q = strchr(q, ','); if (q) q++; }
      if (!q) { fclose(f); return lens_fail("%s:%d: the row has no column %d", path, row, column + 1); }
      v = strtod(q, &end);
      if (end == q || (*end && *end != ',') || v != floor(v) || v < 0 || v >= classes) {
        fclose(f);
        return lens_fail("%s:%d: class must be an integer from 0 to %d", path, row, classes - 1);
      }
      if (count == n) { fclose(f); return lens_fail("%s: more label rows than the %lu images", path, (unsigned long)n); }
      labels[count++] = (float)v;
    }
  }
  fclose(f);
  if (count != n) return lens_fail("%s: %lu label rows for %lu images", path, (unsigned long)count, (unsigned long)n);
  return 0;
}

static int parse_augment(const char *text, augmentation *a) {
  char buf[128], *tok;
  memset(a, 0, sizeof *a);
  if (!text[0] || !strcmp(text, "none")) return 0;
  snprintf(buf, sizeof buf, "%s", text);
  for (tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    if (!strcmp(tok, "flip")) a->flip = 1;
    else if (!strcmp(tok, "rot90")) a->rot90 = 1;
    else if (!strncmp(tok, "shift=", 6)) a->shift = atoi(tok + 6);
    else if (!strncmp(tok, "noise=", 6)) a->noise = (float)atof(tok + 6);
    else return lens_usage("--augment: unknown item '%s' (use flip, rot90, shift=N, noise=SIGMA)", tok);
  }
  if (a->shift < 0 || a->shift > 64 || a->noise < 0) return lens_usage("--augment: shift must be 0..64 pixels and noise >= 0");
  return 0;
}

/* One image [c, h, w] transformed into dst: random flips, a quarter turn (square images),
 * an integer shift with zero fill, and Gaussian noise. */
static void augment_image(const augmentation *a, lensnet_rng *rng, const float *src, float *dst, size_t c, size_t h, size_t w) {
  int fx = a->flip && (lensnet_rng_next(rng) & 1), fy = a->flip && (lensnet_rng_next(rng) & 1);
  int turns = (a->rot90 && h == w) ? (int)(lensnet_rng_next(rng) % 4) : 0;
  long dx = a->shift ? (long)(lensnet_rng_next(rng) % (unsigned)(2 * a->shift + 1)) - a->shift : 0;
  long dy = a->shift ? (long)(lensnet_rng_next(rng) % (unsigned)(2 * a->shift + 1)) - a->shift : 0;
  size_t ch, y, x;
  for (ch = 0; ch < c; ch++)
    for (y = 0; y < h; y++)
      for (x = 0; x < w; x++) {
        long sy = (long)y - dy, sx = (long)x - dx, ty, tx, r;
        float v = 0.0f;
        if (sy >= 0 && sy < (long)h && sx >= 0 && sx < (long)w) {
          ty = sy; tx = sx;
          for (r = 0; r < turns; r++) { long t = ty; ty = tx; tx = (long)w - 1 - t; }
          if (fx) tx = (long)w - 1 - tx;
          if (fy) ty = (long)h - 1 - ty;
          v = src[(ch * h + (size_t)ty) * w + (size_t)tx];
        }
        if (a->noise > 0) v += a->noise * lensnet_rng_normal(rng);
        dst[(ch * h + y) * w + x] = v;
      }
}

/* ---- checkpoint ------------------------------------------------------------------------------ */

static void rng_to_text(const lensnet_rng *r, char *buf, size_t cap) {
  snprintf(buf, cap, "%016llx%016llx%016llx%016llx", (unsigned long long)r->s[0], (unsigned long long)r->s[1],
           (unsigned long long)r->s[2], (unsigned long long)r->s[3]);
}

static int rng_from_text(const char *text, lensnet_rng *r) {
  int i;
  if (!text || strlen(text) != 64) return 0;
  for (i = 0; i < 4; i++) {
    char part[17];
    memcpy(part, text + 16 * i, 16);
    part[16] = 0;
    r->s[i] = strtoull(part, NULL, 16);
  }
  return 1;
}

typedef struct {
  int epoch;                 /* epochs completed */
  double best_val_loss;
  lensnet_rng data_rng;
  char *history;             /* the CSV text so far */
  char losses[4][32];        /* train_loss, train_acc, val_loss, val_acc of epoch `epoch`, as in the history */
} run_state;

static int write_text_atomic(const char *path, const char *text) {
  char tmp[1300];
  FILE *f;
  int ok;
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  f = fopen(tmp, "w");
  if (!f) return lens_fail("%s: cannot open for writing", tmp);
  ok = fputs(text, f) >= 0;
  ok &= fflush(f) == 0;
  ok &= fclose(f) == 0;
  if (!ok || rename(tmp, path) != 0) { remove(tmp); return lens_fail("%s: write failed", path); }
  return 0;
}

/* The training state as metadata of the model: the epoch that made the current weights, its
 * losses, the optimiser step, the random streams, the best validation loss and the history.
 * Set before every save, so each file describes the weights it holds. */
static void set_state_meta(lensnet_model *m, const lensnet_optimizer *opt, lensnet_trainer *t, const run_state *rs) {
  static const char *const loss_keys[4] = {"train.train_loss", "train.train_acc", "train.val_loss", "train.val_acc"};
  char text[128];
  int k;
  snprintf(text, sizeof text, "%d", rs->epoch);
  lensnet_model_set_meta(m, "train.epoch", text);
  snprintf(text, sizeof text, "%llu", (unsigned long long)opt->step);
  lensnet_model_set_meta(m, "train.optimizer_step", text);
  snprintf(text, sizeof text, "%.17g", rs->best_val_loss);
  lensnet_model_set_meta(m, "train.best_val_loss", text);
  rng_to_text(&rs->data_rng, text, sizeof text);
  lensnet_model_set_meta(m, "train.data_rng", text);
  rng_to_text(lensnet_trainer_rng(t), text, sizeof text);
  lensnet_model_set_meta(m, "train.dropout_rng", text);
  lensnet_model_set_meta(m, "train.history", rs->history ? rs->history : "");
  for (k = 0; k < 4; k++)
    if (rs->losses[k][0]) lensnet_model_set_meta(m, loss_keys[k], rs->losses[k]);
}

static int save_checkpoint(const char *dir, lensnet_model *m, const lensnet_optimizer *opt, lensnet_trainer *t, const run_state *rs) {
  lensnet_safetensors st;
  lensnet_error err;
  char path[1200];
  size_t i;
  int rc = 0;
  memset(&st, 0, sizeof st);
  set_state_meta(m, opt, t, rs);
  /* weights with their metadata, then the optimiser's moments under optimizer.* */
  snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
  if (lensnet_model_save(m, path, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (lensnet_safetensors_read(path, &st, &err) != LENSNET_OK) return lens_fail_err(&err);
  for (i = 0; i < m->param_count && rc == 0; i++) {
    const lensnet_param *P = &m->params[i];
    lensnet_tensor tm, tv;
    char name[160];
    if (!P->trainable) continue;
    memset(&tm, 0, sizeof tm);
    tm.ndim = P->ndim;
    memcpy(tm.shape, P->shape, sizeof P->shape);
    tv = tm;
    tm.data = opt->m + P->offset;
    tv.data = opt->v + P->offset;
    snprintf(name, sizeof name, "optimizer.m.%s", P->name);
    if (lensnet_safetensors_add(&st, name, &tm) != LENSNET_OK) rc = lens_fail("out of memory");
    snprintf(name, sizeof name, "optimizer.v.%s", P->name);
    if (rc == 0 && lensnet_safetensors_add(&st, name, &tv) != LENSNET_OK) rc = lens_fail("out of memory");
  }
  if (rc == 0 && lensnet_safetensors_write(path, &st, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  lensnet_safetensors_free(&st);
  if (rc == 0) {
    snprintf(path, sizeof path, "%s/history.csv", dir);
    rc = write_text_atomic(path, rs->history ? rs->history : "");
  }
  return rc;
}

static int append_history(run_state *rs, const char *row) {
  size_t old = rs->history ? strlen(rs->history) : 0, add = strlen(row);
  char *h = (char *)realloc(rs->history, old + add + 1);
  if (!h) return lens_fail("out of memory");
  memcpy(h + old, row, add + 1);
  rs->history = h;
  return 0;
}

/* ---- the loop -------------------------------------------------------------------------------- */

static int parse_number(const char *flag, const char *text, double lo, double hi, double *out) {
  char *end;
  double d = strtod(text, &end);
  if (end == text || *end || !(d >= lo && d <= hi)) { lens_usage("%s takes a number from %g to %g, got '%s'", flag, lo, hi, text); return 0; }
  *out = d;
  return 1;
}

static int parse_class_weights(const char *text, const float *labels, const size_t *idx, size_t n, int classes, float *w, int *use) {
  int c;
  *use = 0;
  if (!text[0] || !strcmp(text, "none")) return 0;
  *use = 1;
  if (!strcmp(text, "auto")) {
    size_t counts[64] = {0}, i;
    for (i = 0; i < n; i++) counts[(int)labels[idx[i]]]++;
    /* inverse class frequency, normalised so a balanced set gets weight 1 */
    for (c = 0; c < classes; c++) w[c] = counts[c] ? (float)((double)n / ((double)classes * (double)counts[c])) : 0.0f;
    return 0;
  }
  {
    const char *p = text;
    for (c = 0; c < classes; c++) {
      char *end;
      w[c] = (float)strtod(p, &end);
      if (end == p || w[c] < 0) return lens_usage("--class-weights: give %d non-negative numbers, or auto", classes);
      p = end;
      if (*p == ',') p++;
    }
    if (*p) return lens_usage("--class-weights: give exactly %d numbers", classes);
  }
  return 0;
}

int lens_cmd_train(int argc, char **argv) {
  train_options o;
  augmentation aug;
  run_state rs;
  lensnet_error err;
  lensnet_model *m = NULL;
  lensnet_trainer *t = NULL;
  lensnet_optimizer *opt = NULL;
  lensnet_optimizer_desc desc;
  lensnet_trainer_desc tdesc;
  lensnet_schedule sched;
  lensnet_safetensors resume_st;
  lens_pool *pool = NULL;
  lensnet_parallel par;
  lensnet_tensor images;
  float *labels = NULL, *batch_x = NULL, *batch_y = NULL, *logits = NULL, *grad = NULL, class_w[64];
  size_t *order = NULL, *split_order = NULL, n, per, n_val, n_train, i;
  const char *resume = NULL;
  int rc = 0, use_weights = 0, classes = 2, epochs_override = 0, threads_override = 0, epoch;
  memset(&o, 0, sizeof o);
  memset(&rs, 0, sizeof rs);
  memset(&images, 0, sizeof images);
  memset(&resume_st, 0, sizeof resume_st);
  strcpy(o.arch, "ou66"); strcpy(o.optimizer, "adam"); strcpy(o.schedule, "constant"); strcpy(o.loss, "ce");
  strcpy(o.class_weights, "none"); strcpy(o.classes, "non-lens,lens");
  o.epochs = 10; o.batch = 32; o.lr = 1e-3; o.val_fraction = 0.1; o.seed = 1; o.gamma = 0.1; o.focal_gamma = 2.0;
  o.interrupt_after = -1;
  for (i = 1; i < (size_t)argc; i++) {
    const char *a = argv[i], *v = i + 1 < (size_t)argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { train_usage(stdout); return 0; }
    if (!strcmp(a, "--nesterov")) { o.nesterov = 1; continue; }
    if (!strcmp(a, "--minmax")) { o.minmax = 1; continue; }
    if (strncmp(a, "--", 2)) return lens_usage("unexpected argument '%s' (see lens train --help)", a);
    if (!v) return lens_usage("%s needs a value", a);
#define STR_OPT(flag, field) else if (!strcmp(a, flag)) { if (strlen(v) >= sizeof o.field) return lens_usage("%s: value too long", a); strcpy(o.field, v); }
#define NUM_OPT(flag, field, lo, hi) else if (!strcmp(a, flag)) { double d; if (!parse_number(a, v, lo, hi, &d)) return LENS_EXIT_USAGE; o.field = d; }
    if (!strcmp(a, "--resume")) resume = v;
    else if (!strcmp(a, "--preprocess")) { if (lens_preprocess_parse(v, &o.minmax)) return LENS_EXIT_USAGE; }
    STR_OPT("--arch", arch) STR_OPT("--data", data) STR_OPT("--labels", labels) STR_OPT("--out", out) STR_OPT("--init", init)
    STR_OPT("--optimizer", optimizer) STR_OPT("--schedule", schedule) STR_OPT("--loss", loss) STR_OPT("--class-weights", class_weights)
    STR_OPT("--augment", augment) STR_OPT("--classes", classes)
    NUM_OPT("--bands", bands, 1, 1024) NUM_OPT("--batch", batch, 1, 65536) NUM_OPT("--lr", lr, 1e-12, 100)
    NUM_OPT("--val-fraction", val_fraction, 0, 0.9) NUM_OPT("--momentum", momentum, 0, 1) NUM_OPT("--weight-decay", weight_decay, 0, 10)
    NUM_OPT("--clip-norm", clip_norm, 0, 1e9) NUM_OPT("--gamma", gamma, 0, 1) NUM_OPT("--focal-gamma", focal_gamma, 0, 10)
    NUM_OPT("--min-lr", min_lr, 0, 100) NUM_OPT("--step-size", step_size, 1, 1e6) NUM_OPT("--warmup", warmup, 0, 1e6)
    NUM_OPT("--seed", seed, 0, 9e15) NUM_OPT("--interrupt-after", interrupt_after, 0, 1e9)
    NUM_OPT("--epochs", epochs, 1, 1e6) NUM_OPT("--threads", threads, 1, 256)
    else return lens_usage("unknown option '%s' (see lens train --help)", a);
#undef STR_OPT
#undef NUM_OPT
    if (!strcmp(a, "--epochs")) epochs_override = 1;
    if (!strcmp(a, "--threads")) threads_override = 1;
    i++;
  }
  if (resume) {
    /* every option comes back from the checkpoint; --epochs may extend the run, --threads may change */
    char path[1200];
    train_options given = o;
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", resume);
    if (lensnet_safetensors_read(path, &resume_st, &err) != LENSNET_OK) return lens_fail_err(&err);
    if ((rc = load_options(&resume_st, &o)) != 0) { lensnet_safetensors_free(&resume_st); return rc; }
    snprintf(o.out, sizeof o.out, "%s", resume);
    if (epochs_override) o.epochs = given.epochs;
    o.threads = threads_override ? given.threads : 0;
    o.interrupt_after = given.interrupt_after;
  }
  if (!o.data[0] || !o.labels[0] || !o.out[0]) { train_usage(stderr); return lens_usage("--data, --labels and --out are required (or --resume DIR)"); }
  if (!resume && lens_out_folder("--out", o.out)) return LENS_EXIT_USAGE;
  if (strcmp(o.optimizer, "adam") && strcmp(o.optimizer, "adamw") && strcmp(o.optimizer, "sgd")) return lens_usage("--optimizer must be adam, adamw or sgd");
  if (strcmp(o.schedule, "constant") && strcmp(o.schedule, "step") && strcmp(o.schedule, "cosine")) return lens_usage("--schedule must be constant, step or cosine");
  if (strcmp(o.loss, "ce") && strcmp(o.loss, "focal")) return lens_usage("--loss must be ce or focal");
  if ((rc = parse_augment(o.augment, &aug)) != 0) return rc;
  {
    const char *p;
    classes = 1;
    for (p = o.classes; *p; p++) classes += *p == ',';
    if (classes < 2 || classes > 64) return lens_usage("--classes needs 2 to 64 comma-separated names");
  }
  /* data */
  if (lensnet_npy_read(o.data, &images, &err) != LENSNET_OK) { rc = lens_fail_err(&err); goto done; }
  if (images.ndim != 4 || images.shape[0] < 2) { rc = lens_fail("%s: expected images [N,C,H,W] with N >= 2", o.data); goto done; }
  n = images.shape[0];
  per = images.shape[1] * images.shape[2] * images.shape[3];
  if (o.minmax) /* the scaling lens predict --minmax applies, so trained models score the same way */
    for (i = 0; i < n; i++) lensnet_minmax_normalize(images.data + i * per, images.shape[1], images.shape[2] * images.shape[3]);
  labels = (float *)malloc(n * sizeof(float));
  if (!labels) { rc = lens_fail("out of memory"); goto done; }
  if ((rc = read_labels(o.labels, n, labels, classes)) != 0) goto done;
  /* model */
  if (resume) {
    if (lensnet_model_from_safetensors(&resume_st, &m, &err) != LENSNET_OK) { rc = lens_fail_err(&err); goto done; }
  } else if (o.init[0]) {
    if (lensnet_model_load(o.init, &m, &err) != LENSNET_OK) { rc = lens_fail_err(&err); goto done; }
  } else {
    char arch[4096];
    FILE *af;
    if (!o.bands) o.bands = (int)images.shape[1];
    if (lensnet_arch_builtin(o.arch, o.bands, arch, sizeof arch)) { /* built-in */ }
    else if ((af = fopen(o.arch, "r")) != NULL) {
      size_t got = fread(arch, 1, sizeof arch - 1, af);
      arch[got] = 0;
      fclose(af);
    } else { rc = lens_usage("--arch '%s' is neither ou66, ou200 nor a readable file", o.arch); goto done; }
    if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { rc = lens_fail_err(&err); goto done; }
    lensnet_model_init(m, o.seed);
  }
  if (m->in_c * m->in_h * m->in_w != per || m->in_c != images.shape[1]) {
    rc = lens_fail("%s: images are %lux%lux%lu but the model takes %lux%lux%lu", o.data, (unsigned long)images.shape[1],
                   (unsigned long)images.shape[2], (unsigned long)images.shape[3], (unsigned long)m->in_c, (unsigned long)m->in_h, (unsigned long)m->in_w);
    goto done;
  }
  if (m->out_features != (size_t)classes) { rc = lens_fail("the model has %lu outputs but there are %d classes", (unsigned long)m->out_features, classes); goto done; }
  lensnet_model_set_meta(m, "classes", o.classes);
  if ((rc = save_options(m, &o)) != 0) goto done;
  /* split: a seeded permutation; the last val_fraction is held out */
  order = (size_t *)malloc(n * sizeof(size_t));
  if (!order) { rc = lens_fail("out of memory"); goto done; }
  {
    lensnet_rng split;
    lensnet_rng_seed(&split, o.seed ^ 0x5eedULL);
    for (i = 0; i < n; i++) order[i] = i;
    for (i = n; i-- > 1;) { size_t j = (size_t)(lensnet_rng_next(&split) % (i + 1)), tmp = order[i]; order[i] = order[j]; order[j] = tmp; }
  }
  split_order = (size_t *)malloc(n * sizeof(size_t));
  if (!split_order) { rc = lens_fail("out of memory"); goto done; }
  memcpy(split_order, order, n * sizeof(size_t));
  n_val = (size_t)floor(o.val_fraction * (double)n);
  n_train = n - n_val;
  if ((rc = parse_class_weights(o.class_weights, labels, order, n_train, classes, class_w, &use_weights)) != 0) goto done;
  /* machinery */
  if (!o.threads) o.threads = (int)lens_pool_default_threads();
  pool = lens_pool_create((size_t)o.threads);
  par = lens_pool_parallel(pool);
  memset(&tdesc, 0, sizeof tdesc);
  tdesc.batch_cap = o.batch; tdesc.parallel = &par; tdesc.seed = o.seed + 17;
  if (lensnet_trainer_create(m, &tdesc, &t, &err) != LENSNET_OK) { rc = lens_fail_err(&err); goto done; }
  memset(&desc, 0, sizeof desc);
  desc.type = !strcmp(o.optimizer, "sgd") ? LENSNET_OPT_SGD : !strcmp(o.optimizer, "adamw") ? LENSNET_OPT_ADAMW : LENSNET_OPT_ADAM;
  desc.lr = (float)o.lr; desc.momentum = (float)o.momentum; desc.nesterov = o.nesterov;
  desc.weight_decay = (float)o.weight_decay; desc.clip_norm = (float)o.clip_norm;
  if (lensnet_optimizer_create(&desc, m, &opt, &err) != LENSNET_OK) { rc = lens_fail_err(&err); goto done; }
  memset(&sched, 0, sizeof sched);
  sched.type = !strcmp(o.schedule, "step") ? LENSNET_SCHEDULE_STEP : !strcmp(o.schedule, "cosine") ? LENSNET_SCHEDULE_COSINE : LENSNET_SCHEDULE_CONSTANT;
  sched.step_size = (size_t)o.step_size; sched.gamma = (float)o.gamma; sched.min_lr = (float)o.min_lr;
  sched.total = (size_t)(o.epochs > o.warmup ? o.epochs - o.warmup : 1); sched.warmup = (size_t)o.warmup;
  rs.best_val_loss = INFINITY;
  lensnet_rng_seed(&rs.data_rng, o.seed * 2654435761ULL + 1);
  if (resume) {
    const char *v;
    size_t k;
    rs.epoch = atoi(lensnet_safetensors_meta(&resume_st, "train.epoch") ? lensnet_safetensors_meta(&resume_st, "train.epoch") : "0");
    if (rs.epoch < 0 || rs.epoch > 1000000) { rc = lens_fail("checkpoint: train.epoch = %d is not a count of epochs", rs.epoch); goto done; }
    v = lensnet_safetensors_meta(&resume_st, "train.optimizer_step");
    opt->step = v ? strtoull(v, NULL, 10) : 0;
    v = lensnet_safetensors_meta(&resume_st, "train.best_val_loss");
    rs.best_val_loss = v ? strtod(v, NULL) : INFINITY;
    if (!rng_from_text(lensnet_safetensors_meta(&resume_st, "train.data_rng"), &rs.data_rng) ||
        !rng_from_text(lensnet_safetensors_meta(&resume_st, "train.dropout_rng"), lensnet_trainer_rng(t))) { rc = lens_fail("checkpoint has no random-stream state"); goto done; }
    v = lensnet_safetensors_meta(&resume_st, "train.history");
    if (v && (rc = append_history(&rs, v)) != 0) goto done;
    for (k = 0; k < m->param_count; k++) {
      const lensnet_param *P = &m->params[k];
      char name[160];
      const lensnet_tensor *tm, *tv;
      if (!P->trainable) continue;
      snprintf(name, sizeof name, "optimizer.m.%s", P->name);
      tm = lensnet_safetensors_find(&resume_st, name);
      snprintf(name, sizeof name, "optimizer.v.%s", P->name);
      tv = lensnet_safetensors_find(&resume_st, name);
      if (!tm || !tv || lensnet_tensor_count(tm) != P->count || lensnet_tensor_count(tv) != P->count) { rc = lens_fail("checkpoint lacks optimiser state for %s", P->name); goto done; }
      memcpy(opt->m + P->offset, tm->data, P->count * sizeof(float));
      memcpy(opt->v + P->offset, tv->data, P->count * sizeof(float));
    }
    fprintf(stderr, "lens: resuming %s after epoch %d of %d\n", o.out, rs.epoch, o.epochs);
  } else {
    if (lens_make_dirs(o.out)) { rc = LENS_EXIT_FAIL; goto done; }
    if ((rc = append_history(&rs, "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds\n")) != 0) goto done;
  }
  batch_x = (float *)malloc(o.batch * per * sizeof(float));
  batch_y = (float *)malloc(o.batch * sizeof(float));
  logits = (float *)malloc(o.batch * (size_t)classes * sizeof(float));
  grad = (float *)malloc(o.batch * (size_t)classes * sizeof(float));
  if (!batch_x || !batch_y || !logits || !grad) { rc = lens_fail("out of memory"); goto done; }
  for (epoch = rs.epoch; epoch < o.epochs && rc == 0; epoch++) {
    float lr = lensnet_schedule_lr(&sched, (float)o.lr, (size_t)epoch);
    double loss_sum = 0, t0 = now_seconds(), val_loss = 0, val_acc = 0, secs;
    size_t correct = 0, seen = 0, b, k;
    char row[256], path[1200];
    lens_progress progress;
    lens_progress_start(&progress);
    /* shuffle the training part afresh from the split order, so an epoch depends only on the
     * random stream (which the checkpoint keeps) */
    memcpy(order, split_order, n_train * sizeof(size_t));
    for (i = n_train; i-- > 1;) { size_t j = (size_t)(lensnet_rng_next(&rs.data_rng) % (i + 1)), tmp = order[i]; order[i] = order[j]; order[j] = tmp; }
    for (b = 0; b < n_train; b += o.batch) {
      size_t bs = n_train - b < o.batch ? n_train - b : o.batch;
      float loss;
      for (k = 0; k < bs; k++) {
        const float *src = images.data + order[b + k] * per;
        if (aug.flip || aug.rot90 || aug.shift || aug.noise > 0)
          augment_image(&aug, &rs.data_rng, src, batch_x + k * per, images.shape[1], images.shape[2], images.shape[3]);
        else memcpy(batch_x + k * per, src, per * sizeof(float));
        batch_y[k] = labels[order[b + k]];
      }
      lensnet_trainer_forward(t, bs, batch_x, 1, logits, &err);
      loss = !strcmp(o.loss, "focal") ? lensnet_loss_focal(logits, batch_y, bs, (size_t)classes, (float)o.focal_gamma, use_weights ? class_w : NULL, grad)
                                      : lensnet_loss_cross_entropy(logits, batch_y, bs, (size_t)classes, use_weights ? class_w : NULL, grad);
      if (loss != loss) { rc = lens_fail("the loss became NaN at epoch %d; lower --lr or add --clip-norm", epoch + 1); break; }
      lensnet_trainer_zero_grad(t);
      lensnet_trainer_backward(t, bs, grad, &err);
      lensnet_optimizer_step(opt, m, lensnet_trainer_grads(t), lr);
      loss_sum += loss * (double)bs;
      for (k = 0; k < bs; k++) {
        size_t c, best = 0;
        for (c = 1; c < (size_t)classes; c++) if (logits[k * classes + c] > logits[k * classes + best]) best = c;
        correct += best == (size_t)batch_y[k];
      }
      seen += bs;
      if (progress.enabled) {
        double el = now_seconds() - t0, rate = (double)seen / (el > 0 ? el : 1e-9);
        double eta = ((double)(n_train - seen) + (double)(o.epochs - epoch - 1) * (double)(n_train + n_val)) / rate;
        char label[48], extra[64];
        snprintf(label, sizeof label, "epoch %d/%d", epoch + 1, o.epochs);
        snprintf(extra, sizeof extra, "loss %.4f acc %.3f", loss_sum / (double)seen, (double)correct / (double)seen);
        lens_progress_show(&progress, label, seen, n_train, "img", eta, extra);
      }
    }
    if (rc) break;
    /* validation, in inference mode */
    if (n_val) {
      size_t vc = 0;
      double vl = 0;
      for (b = n_train; b < n; b += o.batch) {
        size_t bs = n - b < o.batch ? n - b : o.batch;
        for (k = 0; k < bs; k++) { memcpy(batch_x + k * per, images.data + order[b + k] * per, per * sizeof(float)); batch_y[k] = labels[order[b + k]]; }
        lensnet_trainer_forward(t, bs, batch_x, 0, logits, &err);
        vl += lensnet_loss_cross_entropy(logits, batch_y, bs, (size_t)classes, use_weights ? class_w : NULL, NULL) * (double)bs;
        for (k = 0; k < bs; k++) {
          size_t c, best = 0;
          for (c = 1; c < (size_t)classes; c++) if (logits[k * classes + c] > logits[k * classes + best]) best = c;
          vc += best == (size_t)batch_y[k];
        }
      }
      val_loss = vl / (double)n_val;
      val_acc = (double)vc / (double)n_val;
    }
    secs = now_seconds() - t0;
    lens_progress_end(&progress);
    {
      double eta = secs * (double)(o.epochs - epoch - 1);
      fprintf(stderr, "epoch %d/%d: lr %.3g train loss %.4f acc %.3f, val loss %.4f acc %.3f, %.0f img/s, ETA %d:%02d\n", epoch + 1, o.epochs, lr,
              loss_sum / (double)n_train, (double)correct / (double)n_train, val_loss, val_acc, (double)n_train / (secs > 0 ? secs : 1e-9),
              (int)eta / 60, (int)eta % 60);
    }
    snprintf(row, sizeof row, "%d,%.6g,%.6f,%.6f,%.6f,%.6f,%.2f\n", epoch + 1, lr, loss_sum / (double)n_train, (double)correct / (double)n_train,
             val_loss, val_acc, secs);
    if ((rc = append_history(&rs, row)) != 0) break;
    rs.epoch = epoch + 1;
    snprintf(rs.losses[0], sizeof rs.losses[0], "%.6f", loss_sum / (double)n_train);
    snprintf(rs.losses[1], sizeof rs.losses[1], "%.6f", (double)correct / (double)n_train);
    snprintf(rs.losses[2], sizeof rs.losses[2], "%.6f", val_loss);
    snprintf(rs.losses[3], sizeof rs.losses[3], "%.6f", val_acc);
    if (n_val && val_loss < rs.best_val_loss) {
      /* the metadata of this epoch, not of the last checkpoint */
      rs.best_val_loss = val_loss;
      set_state_meta(m, opt, t, &rs);
      snprintf(path, sizeof path, "%s/best.safetensors", o.out);
      if (lensnet_model_save(m, path, &err) != LENSNET_OK) { rc = lens_fail_err(&err); break; }
    }
    if ((rc = save_checkpoint(o.out, m, opt, t, &rs)) != 0) break;
    if (o.interrupt_after >= 0 && rs.epoch == o.interrupt_after && rs.epoch < o.epochs) {
      /* for tests of --resume: stop as if killed right after this checkpoint */
      fprintf(stderr, "lens: stopping after epoch %d as asked (--interrupt-after)\n", rs.epoch);
      rc = LENS_EXIT_FAIL;
      break;
    }
  }
  if (rc == 0 && !n_val) {
    char path[1200];
    snprintf(path, sizeof path, "%s/best.safetensors", o.out);
    if (lensnet_model_save(m, path, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  }
done:
  free(labels); free(order); free(split_order); free(batch_x); free(batch_y); free(logits); free(grad); free(rs.history);
  lensnet_tensor_free(&images);
  lensnet_safetensors_free(&resume_st);
  lensnet_optimizer_free(opt);
  lensnet_trainer_free(t);
  lensnet_model_free(m);
  lens_pool_free(pool);
  return rc;
}
