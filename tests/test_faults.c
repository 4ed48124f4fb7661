/* Fault injection: lens sim, lens train, lens predict and lens eval run with build/fault_shim.so
 * (tests/fault_shim.c) failing one call of theirs at a time: a write, a rename, an fsync, a
 * malloc, an open, a close or a remove. The calls of each command are counted first (the shim's
 * counting mode), then the Nth call of each class is failed, for every N among the first and the
 * last calls of the class and at a stride between them (swept() below). For each failure:
 *   - the command exits with a status, not a signal: 0 if the call did not matter, else 1 with a
 *     message on stderr (a line starting "lens: ");
 *   - what a previous complete run left in the folder is byte for byte intact, or the new output is
 *     complete; no temporary file is left behind;
 *   - lens train, after a failure mid-run, continued with `lens train --resume DIR` (or started
 *     again when no checkpoint was written yet) ends with the files of an uninterrupted run:
 *     checkpoint.safetensors, best.safetensors and history.csv the same but for the wall-clock
 *     seconds column of the history (in history.csv and in the checkpoints' train.history).
 * Runs with one thread: the calls of a pool of several come in no fixed order. */
#define _POSIX_C_SOURCE 200809L
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "cli_check.h"
#include <dirent.h>
#include <signal.h>

#define D "build/faults"
#define SHIM "build/fault_shim.so"
/* Which calls are failed: every one of the first FIRST and the last LAST of a class (the last
 * writes and closes are those that finish the outputs), one in STRIDE between them. */
#define FIRST 60
#define LAST 20
#define STRIDE 7
#define MALLOC_FIRST 120
#define MALLOC_STRIDE 23

enum { C_WRITE, C_RENAME, C_FSYNC, C_MALLOC, C_OPEN, C_CLOSE, C_REMOVE, C_COUNT };
static const char *const class_names[C_COUNT] = {"write", "rename", "fsync", "malloc", "open", "close", "remove"};

static int trials, failures_seen;

/* CHECK that also gives the condition back, for steps the rest depends on. */
static int check_ok(int cond, const char *what) {
  CHECK(cond, "%s", what);
  return cond;
}

/* ---- running -------------------------------------------------------------------------------- */

/* `lens ARGS` with the shim failing call `n` of class `cls` (n 0: none), stderr into D/err.log.
 * The exit status, or -1 - the signal that killed it. A run that has not ended after two minutes
 * (they take a tenth of a second) is stopped: a hang counts as a crash (SIGKILL), not as a test
 * that never ends. */
static int run_faulted(const char *cls, unsigned long n, const char *args) {
  char cmd[8192];
  int st;
  snprintf(cmd, sizeof cmd, "exec timeout -s KILL 120 env LD_PRELOAD=%s LENS_FAULT=%s:%lu %s %s > /dev/null 2> " D "/err.log", SHIM, cls, n,
           cli_lens_path(), args);
  st = system(cmd);
  if (st == -1) return -1000;
  if (WIFSIGNALED(st)) return -1 - WTERMSIG(st);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 128 + SIGKILL) return -1 - SIGKILL; /* timeout's report of the kill */
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1000;
}

/* The calls of each class that `lens ARGS` makes (the shim's counting mode). */
static int count_calls(const char *args, unsigned long counts[C_COUNT]) {
  char cmd[8192], name[32];
  unsigned long v;
  int c, found = 0;
  FILE *f;
  memset(counts, 0, C_COUNT * sizeof counts[0]);
  remove(D "/count.txt");
  snprintf(cmd, sizeof cmd, "LD_PRELOAD=%s LENS_FAULT_COUNT=" D "/count.txt exec %s %s > /dev/null 2>&1", SHIM, cli_lens_path(), args);
  if (system(cmd) != 0 || !(f = fopen(D "/count.txt", "r"))) return 0;
  while (fscanf(f, "%31s %lu", name, &v) == 2)
    for (c = 0; c < C_COUNT; c++)
      if (!strcmp(name, class_names[c])) { counts[c] = v; found++; }
  fclose(f);
  return found == C_COUNT;
}

/* Whether call n of the `total` of class c is one the sweep fails. */
static int swept(int c, unsigned long n, unsigned long total) {
  if (n + LAST > total) return 1;
  return c == C_MALLOC ? n <= MALLOC_FIRST || n % MALLOC_STRIDE == 0 : n <= FIRST || n % STRIDE == 0;
}

/* The outcome of one faulted run: 1 if it failed cleanly (status 1 and a message), 0 if the fault
 * did not matter (status 0); -1 (after a FAIL) for a crash or a silent failure. */
static int outcome(const char *what, const char *cls, unsigned long n, int status) {
  trials++;
  if (status == 0) return 0;
  if (status < 0) {
    CHECK(0, "%s with %s call %lu failed: killed by signal %d (%s)", what, cls, n, -1 - status, cli_text(D "/err.log", (char[512]){0}, 512));
    return -1;
  }
  CHECK(status == 1, "%s with %s call %lu failed: exit status %d, want 1", what, cls, n, status);
  if (!cli_file_has(D "/err.log", "lens: ")) {
    CHECK(0, "%s with %s call %lu failed: status %d without a message", what, cls, n, status);
    return -1;
  }
  failures_seen++;
  return 1;
}

/* Whether dir holds a file whose name ends in .tmp. */
static int has_tmp(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int found = 0;
  while (d && (e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n > 4 && !strcmp(e->d_name + n - 4, ".tmp")) found = 1;
  }
  if (d) closedir(d);
  return found;
}

static int exists(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f) fclose(f);
  return f != NULL;
}

/* ---- comparing training runs ------------------------------------------------------------------- */

/* text without the last column of each line (history's wall-clock seconds), into out. */
static void drop_seconds(const char *text, char *out, size_t cap) {
  size_t o = 0;
  while (*text && o + 1 < cap) {
    const char *eol = strchr(text, '\n'), *end = eol ? eol : text + strlen(text), *comma = end;
    while (comma > text && *comma != ',') comma--;
    if (comma == text) comma = end;
    while (text < comma && o + 1 < cap) out[o++] = *text++;
    if (eol && o + 1 < cap) out[o++] = '\n';
    text = eol ? eol + 1 : end;
  }
  out[o] = 0;
}

static int same_history_text(const char *a, const char *b) {
  static char xa[1 << 16], xb[1 << 16];
  drop_seconds(a, xa, sizeof xa);
  drop_seconds(b, xb, sizeof xb);
  return !strcmp(xa, xb);
}

/* Two safetensors files hold the same tensors (names, shapes, bytes, in order) and the same
 * metadata, train.history compared without its seconds column. */
static int same_safetensors(const char *pa, const char *pb, const char **why) {
  lensnet_safetensors a, b;
  lensnet_error err;
  size_t i;
  int same;
  *why = "unreadable";
  if (lensnet_safetensors_read(pa, &a, &err) != LENSNET_OK) return 0;
  if (lensnet_safetensors_read(pb, &b, &err) != LENSNET_OK) { lensnet_safetensors_free(&a); return 0; }
  *why = "tensors";
  same = a.count == b.count && a.meta_count == b.meta_count;
  for (i = 0; same && i < a.count; i++) {
    const lensnet_tensor *ta = &a.tensors[i].tensor, *tb = &b.tensors[i].tensor;
    size_t n = lensnet_tensor_count(ta);
    same = !strcmp(a.tensors[i].name, b.tensors[i].name) && ta->ndim == tb->ndim && lensnet_tensor_count(tb) == n &&
           !memcmp(ta->shape, tb->shape, (size_t)ta->ndim * sizeof ta->shape[0]) && !memcmp(ta->data, tb->data, n * sizeof(float));
  }
  if (same) *why = "metadata";
  for (i = 0; same && i < a.meta_count; i++) {
    const char *vb = lensnet_safetensors_meta(&b, a.meta_keys[i]);
    same = vb && (!strcmp(a.meta_keys[i], "train.history") ? same_history_text(a.meta_values[i], vb) : !strcmp(a.meta_values[i], vb));
  }
  lensnet_safetensors_free(&a);
  lensnet_safetensors_free(&b);
  return same;
}

/* The run in dir ends as the reference run did (see the top of the file). */
static int same_run(const char *dir, const char *ref, char *why, size_t cap) {
  static const char *const files[2] = {"checkpoint.safetensors", "best.safetensors"};
  static char ta[1 << 16], tb[1 << 16];
  char pa[512], pb[512];
  const char *part;
  int k;
  for (k = 0; k < 2; k++) {
    snprintf(pa, sizeof pa, "%s/%s", dir, files[k]);
    snprintf(pb, sizeof pb, "%s/%s", ref, files[k]);
    if (!same_safetensors(pa, pb, &part)) { snprintf(why, cap, "%s differs (%s)", files[k], part); return 0; }
  }
  snprintf(pa, sizeof pa, "%s/history.csv", dir);
  snprintf(pb, sizeof pb, "%s/history.csv", ref);
  if (!same_history_text(cli_text(pa, ta, sizeof ta), cli_text(pb, tb, sizeof tb)) || !strchr(ta, '\n')) {
    snprintf(why, cap, "history.csv differs");
    return 0;
  }
  return 1;
}

/* ---- the commands --------------------------------------------------------------------------- */

#define TRAIN_ARGS "train --arch " D "/arch.txt --data " D "/data/images.npy --labels " D "/data/labels.csv --epochs 3 --batch 8 " \
                   "--lr 0.01 --val-fraction 0.25 --minmax --threads 1"
#define TRAIN TRAIN_ARGS " --seed 2"

/* After a failed run into D/run: the run is continued (or started again: when no checkpoint was
 * written, or when the failed run was to replace another) and must end as D/clean. */
static void train_recover(const char *what, const char *cls, unsigned long n, int again) {
  char why[256];
  int rc = exists(D "/run/checkpoint.safetensors") && !again ? cli_lens("train --resume " D "/run --threads 1 > /dev/null 2>&1")
                                                             : cli_lens(TRAIN " --force --out " D "/run > /dev/null 2>&1");
  CHECK(rc == 0, "%s with %s call %lu failed, then the run could not be finished (status %d)", what, cls, n, rc);
  if (rc == 0) CHECK(same_run(D "/run", D "/clean", why, sizeof why), "%s with %s call %lu failed, then finished: %s", what, cls, n, why);
}

/* A fresh run failing at each call, then finished. */
static void sweep_train(void) {
  unsigned long counts[C_COUNT], n;
  char why[256];
  int c, o;
  if (!check_ok(count_calls(TRAIN " --out " D "/count_run", counts), "count the calls of lens train")) return;
  printf("   lens train: %lu writes, %lu renames, %lu fsyncs, %lu mallocs, %lu opens, %lu closes, %lu removes\n", counts[0], counts[1],
         counts[2], counts[3], counts[4], counts[5], counts[6]);
  CHECK(counts[C_RENAME] >= 7, "3 epochs, each renaming its checkpoint and history into place, and the best weights at least once (%lu)",
        counts[C_RENAME]);
  for (c = 0; c < C_COUNT; c++)
    for (n = 1; n <= counts[c]; n++) {
      if (!swept(c, n, counts[c])) continue;
      cli_shell("rm -rf " D "/run");
      o = outcome("lens train", class_names[c], n, run_faulted(class_names[c], n, TRAIN " --out " D "/run"));
      if (o == 0) CHECK(same_run(D "/run", D "/clean", why, sizeof why), "lens train with harmless %s call %lu: %s", class_names[c], n, why);
      if (o != 1) continue;
      if (c != C_REMOVE) CHECK(!has_tmp(D "/run"), "lens train with %s call %lu failed: a .tmp file left behind", class_names[c], n);
      train_recover("lens train", class_names[c], n, 0);
    }
}

/* A run with --force over a previous run of another seed, failing at each write, rename, remove
 * and close: the previous run's files go first, so that the folder holds the previous run's files
 * (some removed) or the new run's, never a mixture, which --resume would take for the previous run
 * and finish with the new one's best weights. Then the run is started again and finishes. */
static void sweep_train_force(void) {
  static const int classes[4] = {C_WRITE, C_RENAME, C_REMOVE, C_CLOSE};
  static const char *const files[3] = {"checkpoint.safetensors", "best.safetensors", "history.csv"};
  unsigned long counts[C_COUNT], n;
  int k, o, f;
  cli_shell("rm -rf " D "/count_run && cp -r " D "/old " D "/count_run");
  if (!check_ok(count_calls(TRAIN " --force --out " D "/count_run", counts), "count the calls of lens train --force")) return;
  printf("   lens train --force: %lu writes, %lu renames, %lu closes, %lu removes\n", counts[C_WRITE], counts[C_RENAME], counts[C_CLOSE],
         counts[C_REMOVE]);
  /* the previous run's three files, then the temporary file with which lensnet_fit tries the
   * folder before training (lensnet__probe_out_dir) */
  CHECK(counts[C_REMOVE] == 4, "--force removes the previous run's three files, then the out_dir probe's (%lu removes)", counts[C_REMOVE]);
  for (k = 0; k < 4; k++)
    for (n = 1; n <= counts[classes[k]]; n++) {
      const char *cls = class_names[classes[k]];
      int old = 0, new_ = 0;
      if (!swept(classes[k], n, counts[classes[k]])) continue;
      cli_shell("rm -rf " D "/run && cp -r " D "/old " D "/run");
      o = outcome("lens train --force", cls, n, run_faulted(cls, n, TRAIN " --force --out " D "/run"));
      if (o != 1) continue;
      for (f = 0; f < 3; f++) {
        char now[256], before[256];
        snprintf(now, sizeof now, D "/run/%s", files[f]);
        snprintf(before, sizeof before, D "/old/%s", files[f]);
        if (exists(now)) { if (cli_same_file(now, before)) old++; else new_++; }
      }
      CHECK(!(old && new_), "lens train --force with %s call %lu failed: %d of the previous run's files beside %d of the new run's", cls, n,
            old, new_);
      train_recover("lens train --force", cls, n, 1);
    }
}

/* `lens train --resume` of a run stopped after epoch 1, failing at each call, then resumed. */
static void sweep_resume(void) {
  unsigned long counts[C_COUNT], n;
  char why[256];
  int c, o;
  cli_shell("rm -rf " D "/count_run && cp -r " D "/half0 " D "/count_run");
  if (!check_ok(count_calls("train --resume " D "/count_run --threads 1", counts), "count the calls of lens train --resume")) return;
  printf("   lens train --resume: %lu writes, %lu renames, %lu fsyncs, %lu mallocs, %lu opens, %lu closes, %lu removes\n", counts[0],
         counts[1], counts[2], counts[3], counts[4], counts[5], counts[6]);
  for (c = 0; c < C_COUNT; c++)
    for (n = 1; n <= counts[c]; n++) {
      if (!swept(c, n, counts[c])) continue;
      cli_shell("rm -rf " D "/run && cp -r " D "/half0 " D "/run");
      o = outcome("lens train --resume", class_names[c], n, run_faulted(class_names[c], n, "train --resume " D "/run --threads 1"));
      if (o == 0) CHECK(same_run(D "/run", D "/clean", why, sizeof why), "lens train --resume with harmless %s call %lu: %s", class_names[c], n, why);
      if (o != 1) continue;
      CHECK(exists(D "/run/checkpoint.safetensors"), "lens train --resume with %s call %lu failed: the checkpoint is gone", class_names[c], n);
      train_recover("lens train --resume", class_names[c], n, 0);
    }
}

#define SIM "sim --preset euclid-lensfinding --n 3 --threads 1 --out " D "/simrun --seed "

/* lens sim over a previous run of another seed: each failure leaves the previous pair, or
 * images.npy (old or new) without labels.csv (a failure between the renames); never a pair
 * that does not belong together. */
static void sweep_sim(void) {
  unsigned long counts[C_COUNT], n;
  int c, o;
  cli_shell("rm -rf " D "/simrun " D "/sim_old " D "/sim_new");
  CHECK(cli_lens(SIM "4 > /dev/null 2>&1") == 0 && cli_shell("mv " D "/simrun " D "/sim_old") == 0, "the previous run");
  CHECK(cli_lens(SIM "5 > /dev/null 2>&1") == 0 && cli_shell("mv " D "/simrun " D "/sim_new") == 0, "the new run, undisturbed");
  CHECK(!cli_same_file(D "/sim_old/images.npy", D "/sim_new/images.npy") && !cli_same_file(D "/sim_old/labels.csv", D "/sim_new/labels.csv"),
        "two seeds, two different pairs");
  cli_shell("cp -r " D "/sim_old " D "/simrun");
  if (!check_ok(count_calls(SIM "5", counts), "count the calls of lens sim")) return;
  printf("   lens sim: %lu writes, %lu renames, %lu fsyncs, %lu mallocs, %lu opens, %lu closes, %lu removes\n", counts[0], counts[1],
         counts[2], counts[3], counts[4], counts[5], counts[6]);
  for (c = 0; c < C_COUNT; c++)
    for (n = 1; n <= counts[c]; n++) {
      int old_images, new_images, old_labels, new_labels, labels;
      if (!swept(c, n, counts[c])) continue;
      cli_shell("rm -rf " D "/simrun && cp -r " D "/sim_old " D "/simrun");
      o = outcome("lens sim", class_names[c], n, run_faulted(class_names[c], n, SIM "5"));
      if (o < 0) continue;
      old_images = cli_same_file(D "/simrun/images.npy", D "/sim_old/images.npy");
      new_images = cli_same_file(D "/simrun/images.npy", D "/sim_new/images.npy");
      old_labels = cli_same_file(D "/simrun/labels.csv", D "/sim_old/labels.csv");
      new_labels = cli_same_file(D "/simrun/labels.csv", D "/sim_new/labels.csv");
      labels = exists(D "/simrun/labels.csv");
      if (o == 0) {
        CHECK(new_images && new_labels, "lens sim with harmless %s call %lu: not the undisturbed run's files", class_names[c], n);
        continue;
      }
      CHECK((old_images && old_labels) || (!labels && (old_images || new_images)),
            "lens sim with %s call %lu failed: images.npy %s, labels.csv %s", class_names[c], n,
            old_images ? "old" : new_images ? "new" : "damaged or gone", old_labels ? "old" : new_labels ? "new" : labels ? "damaged" : "gone");
      if (c != C_REMOVE) CHECK(!has_tmp(D "/simrun"), "lens sim with %s call %lu failed: a .tmp file left behind", class_names[c], n);
    }
}

#define PREDICT "predict --threads 1 " D "/data/images.npy --out " D "/pred/logits.npy --csv " D "/pred/scores.csv --model "

/* lens predict over the outputs of a previous run with another model: each file is the old one
 * or, complete, the new one. */
static void sweep_predict(void) {
  unsigned long counts[C_COUNT], n;
  int c, o;
  cli_shell("rm -rf " D "/pred " D "/pred_old " D "/pred_new");
  CHECK(cli_lens(PREDICT D "/clean/checkpoint.safetensors > /dev/null 2>&1") == 0 && cli_shell("mv " D "/pred " D "/pred_old") == 0, "the previous scores");
  CHECK(cli_lens(PREDICT D "/half0/checkpoint.safetensors > /dev/null 2>&1") == 0 && cli_shell("mv " D "/pred " D "/pred_new") == 0,
        "the new scores, undisturbed");
  CHECK(!cli_same_file(D "/pred_old/scores.csv", D "/pred_new/scores.csv"), "two models, two different score files");
  cli_shell("cp -r " D "/pred_old " D "/pred");
  if (!check_ok(count_calls(PREDICT D "/half0/checkpoint.safetensors", counts), "count the calls of lens predict")) return;
  printf("   lens predict: %lu writes, %lu renames, %lu fsyncs, %lu mallocs, %lu opens, %lu closes, %lu removes\n", counts[0],
         counts[1], counts[2], counts[3], counts[4], counts[5], counts[6]);
  for (c = 0; c < C_COUNT; c++)
    for (n = 1; n <= counts[c]; n++) {
      static const char *const files[2] = {"scores.csv", "logits.npy"};
      int k;
      if (!swept(c, n, counts[c])) continue;
      cli_shell("rm -rf " D "/pred && cp -r " D "/pred_old " D "/pred");
      o = outcome("lens predict", class_names[c], n, run_faulted(class_names[c], n, PREDICT D "/half0/checkpoint.safetensors"));
      if (o < 0) continue;
      for (k = 0; k < 2; k++) {
        char now[256], old[256], new_[256];
        snprintf(now, sizeof now, D "/pred/%s", files[k]);
        snprintf(old, sizeof old, D "/pred_old/%s", files[k]);
        snprintf(new_, sizeof new_, D "/pred_new/%s", files[k]);
        if (o == 0) CHECK(cli_same_file(now, new_), "lens predict with harmless %s call %lu: %s is not the undisturbed run's", class_names[c], n, files[k]);
        else CHECK(cli_same_file(now, old) || cli_same_file(now, new_), "lens predict with %s call %lu failed: %s neither the old nor the new one",
                   class_names[c], n, files[k]);
      }
      if (o == 1 && c != C_REMOVE) CHECK(!has_tmp(D "/pred"), "lens predict with %s call %lu failed: a .tmp file left behind", class_names[c], n);
    }
}

#define EVAL "eval --scores " D "/pred_new/scores.csv --labels " D "/data/labels.csv --bootstrap 50 --threads 1 --out " D "/evalrun"

/* lens eval over a previous evaluation's folder: each file the old one or the new one. */
static void sweep_eval(void) {
  static const char *const files[] = {"metrics.json", "metrics.csv", "curve.csv", "roc.png", "pr.png"};
  unsigned long counts[C_COUNT], n;
  size_t k;
  int c, o;
  cli_shell("rm -rf " D "/evalrun " D "/eval_old " D "/eval_new");
  CHECK(cli_lens("eval --scores " D "/pred_old/scores.csv --labels " D "/data/labels.csv --bootstrap 50 --threads 1 --out " D
                 "/evalrun > /dev/null 2>&1") == 0 && cli_shell("mv " D "/evalrun " D "/eval_old") == 0, "the previous evaluation");
  CHECK(cli_lens(EVAL " > /dev/null 2>&1") == 0 && cli_shell("mv " D "/evalrun " D "/eval_new") == 0, "the new evaluation, undisturbed");
  CHECK(!cli_same_file(D "/eval_old/metrics.csv", D "/eval_new/metrics.csv"), "two score files, two different evaluations");
  cli_shell("cp -r " D "/eval_old " D "/evalrun");
  if (!check_ok(count_calls(EVAL, counts), "count the calls of lens eval")) return;
  printf("   lens eval: %lu writes, %lu renames, %lu fsyncs, %lu mallocs, %lu opens, %lu closes, %lu removes\n", counts[0], counts[1],
         counts[2], counts[3], counts[4], counts[5], counts[6]);
  for (c = 0; c < C_COUNT; c++)
    for (n = 1; n <= counts[c]; n++) {
      if (!swept(c, n, counts[c])) continue;
      cli_shell("rm -rf " D "/evalrun && cp -r " D "/eval_old " D "/evalrun");
      o = outcome("lens eval", class_names[c], n, run_faulted(class_names[c], n, EVAL));
      if (o < 0) continue;
      for (k = 0; k < sizeof files / sizeof *files; k++) {
        char now[256], old[256], new_[256];
        snprintf(now, sizeof now, D "/evalrun/%s", files[k]);
        snprintf(old, sizeof old, D "/eval_old/%s", files[k]);
        snprintf(new_, sizeof new_, D "/eval_new/%s", files[k]);
        if (!exists(new_)) continue; /* a build without PNG */
        if (o == 0) CHECK(cli_same_file(now, new_), "lens eval with harmless %s call %lu: %s is not the undisturbed run's", class_names[c], n, files[k]);
        else CHECK(cli_same_file(now, old) || cli_same_file(now, new_), "lens eval with %s call %lu failed: %s neither the old nor the new one",
                   class_names[c], n, files[k]);
      }
      if (o == 1 && c != C_REMOVE) CHECK(!has_tmp(D "/evalrun"), "lens eval with %s call %lu failed: a .tmp file left behind", class_names[c], n);
    }
}

int main(void) {
  FILE *f;
  if (!cli_have_lens()) return check_summary();
  if (!check_file_exists(SHIM)) {
    SKIP("no %s (make builds it from tests/fault_shim.c)", SHIM);
    return check_summary();
  }
  cli_shell("rm -rf " D " && mkdir -p " D);
  /* a small model on a few simulated images: a run takes a few hundredths of a second */
  f = fopen(D "/arch.txt", "w");
  if (f) {
    fputs("input 4 66 66\nmaxpool kernel=6\nconv2d name=c1 out=4 kernel=3\nbatchnorm name=bn\nrelu\nflatten\ndense name=d1 out=2\n", f);
    fclose(f);
  }
  CHECK(cli_lens("sim --preset euclid-lensfinding --n 24 --seed 4 --threads 1 --out " D "/data > /dev/null 2>&1") == 0, "simulate the data");
  CHECK(cli_lens(TRAIN " --out " D "/clean > /dev/null 2>&1") == 0, "the uninterrupted run");
  CHECK(cli_lens(TRAIN " --out " D "/half0 --interrupt-after 1 > /dev/null 2>&1") == 1, "a run stopped after epoch 1");
  CHECK(cli_lens(TRAIN_ARGS " --seed 3 --out " D "/old > /dev/null 2>&1") == 0, "a previous run of another seed");
  CHECK(run_faulted("write", 0, TRAIN " --out " D "/run0") == 0 && same_run(D "/run0", D "/clean", (char[256]){0}, 256),
        "under the shim, failing nothing, the same run");
  TEST("lens train: every failure exits 1 with a message, and the run finishes as an uninterrupted one") sweep_train();
  TEST("lens train --force: every failure leaves the new run's files, never the previous run's beside them") sweep_train_force();
  TEST("lens train --resume: every failure exits 1 with a message, and the run finishes as an uninterrupted one") sweep_resume();
  TEST("lens sim: every failure leaves the previous pair, or images without labels") sweep_sim();
  TEST("lens predict: every failure leaves each output old or new, never damaged") sweep_predict();
  TEST("lens eval: every failure leaves each output old or new, never damaged") sweep_eval();
  printf("   %d faulted runs, %d of them failed cleanly (the others' fault did not matter)\n", trials, failures_seen);
  cli_shell("rm -rf " D);
  return check_summary();
}
