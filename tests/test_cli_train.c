/* `lens train` end to end: an interrupted and resumed run reaches the same weights as an
 * uninterrupted one (with augmentation, dropout, class weights and a different thread count
 * after the resume), the files it promises exist, each checkpoint's metadata describes the
 * weights it holds, a complete run resumed changes nothing, and bad input gets clear errors. */
#define _POSIX_C_SOURCE 200809L
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "cli_check.h"

/* rings (1) and discs (0), 1 x 12 x 12, with noise */
static void make_dataset(void) {
  lensnet_tensor t;
  lensnet_error err;
  lensnet_rng rng;
  size_t shape[4] = {240, 1, 12, 12}, i;
  FILE *f = fopen("build/tcli_labels.csv", "w");
  lensnet_tensor_alloc(&t, 4, shape, &err);
  lensnet_rng_seed(&rng, 3);
  if (f) fprintf(f, "id,label,theta_E\n");
  for (i = 0; i < 240; i++) {
    int ring = (int)(i % 2), y, x;
    float cx = 5.5f + 2.0f * (lensnet_rng_uniform(&rng) - 0.5f), cy = 5.5f + 2.0f * (lensnet_rng_uniform(&rng) - 0.5f);
    float r = 2.5f + 1.5f * lensnet_rng_uniform(&rng);
    for (y = 0; y < 12; y++)
      for (x = 0; x < 12; x++) {
        float d = sqrtf((x - cx) * (x - cx) + (y - cy) * (y - cy));
        float v = ring ? (fabsf(d - r) < 0.8f) : (d < 0.6f * r);
        t.data[i * 144 + (size_t)(y * 12 + x)] = v + 0.1f * lensnet_rng_normal(&rng);
      }
    if (f) fprintf(f, "%lu,%d,%.2f\n", (unsigned long)i, ring, ring ? r * 0.1 : 0.0);
  }
  if (f) fclose(f);
  lensnet_npy_write("build/tcli_images.npy", &t, &err);
  lensnet_tensor_free(&t);
  f = fopen("build/tcli_arch.txt", "w");
  if (f) {
    fputs("input 1 12 12\nconv2d name=c1 out=6 kernel=3 padding=1\nbatchnorm name=bn\nrelu\nmaxpool kernel=2\n"
          "conv2d name=c2 out=8 kernel=3\nrelu\ndropout p=0.2\nflatten\ndense name=d1 out=16\nrelu\ndense name=d2 out=2\n", f);
    fclose(f);
  }
}

/* Every tensor of a must be in b with the same bytes (weights, running statistics, moments). */
static int same_tensors(const char *pa, const char *pb, size_t *compared) {
  lensnet_safetensors a, b;
  lensnet_error err;
  size_t i;
  int same = 1;
  *compared = 0;
  if (lensnet_safetensors_read(pa, &a, &err) != LENSNET_OK) { printf("   %s\n", err.message); return 0; }
  if (lensnet_safetensors_read(pb, &b, &err) != LENSNET_OK) { printf("   %s\n", err.message); lensnet_safetensors_free(&a); return 0; }
  same = a.count == b.count;
  for (i = 0; same && i < a.count; i++) {
    const lensnet_tensor *tb = lensnet_safetensors_find(&b, a.tensors[i].name);
    size_t n = lensnet_tensor_count(&a.tensors[i].tensor);
    if (!tb || lensnet_tensor_count(tb) != n || memcmp(tb->data, a.tensors[i].tensor.data, n * sizeof(float))) {
      printf("   tensor %s differs\n", a.tensors[i].name);
      same = 0;
    }
    (*compared)++;
  }
  lensnet_safetensors_free(&a);
  lensnet_safetensors_free(&b);
  return same;
}

/* Every tensor of `sub` is in `all` with the same bytes (weights inside a checkpoint). */
static int tensors_within(const char *sub, const char *all) {
  lensnet_safetensors a, b;
  lensnet_error err;
  size_t i;
  int same = 1;
  if (lensnet_safetensors_read(sub, &a, &err) != LENSNET_OK) { printf("   %s\n", err.message); return 0; }
  if (lensnet_safetensors_read(all, &b, &err) != LENSNET_OK) { printf("   %s\n", err.message); lensnet_safetensors_free(&a); return 0; }
  for (i = 0; same && i < a.count; i++) {
    const lensnet_tensor *tb = lensnet_safetensors_find(&b, a.tensors[i].name);
    size_t n = lensnet_tensor_count(&a.tensors[i].tensor);
    same = tb && lensnet_tensor_count(tb) == n && !memcmp(tb->data, a.tensors[i].tensor.data, n * sizeof(float));
  }
  same = same && a.count > 0;
  lensnet_safetensors_free(&a);
  lensnet_safetensors_free(&b);
  return same;
}

/* The history row of `epoch` in history.csv: its cells train_loss, train_acc, val_loss, val_acc. */
static int history_row(const char *path, int epoch, char cells[4][32]) {
  FILE *f = fopen(path, "r");
  char line[512];
  int found = 0;
  if (!f) return 0;
  while (!found && fgets(line, sizeof line, f)) {
    char *p = line, *c[7];
    int k = 0;
    line[strcspn(line, "\r\n")] = 0;
    while (k < 7 && p) { c[k++] = p; p = strchr(p, ','); if (p) *p++ = 0; }
    if (k == 7 && atoi(c[0]) == epoch && c[0][0] != 'e') {
      for (k = 0; k < 4; k++) snprintf(cells[k], sizeof cells[k], "%s", c[2 + k]);
      found = 1;
    }
  }
  fclose(f);
  return found;
}

/* The epoch with the lowest validation loss (the first of equals), from history.csv. */
static int best_epoch(const char *path, int epochs) {
  int e, best = 0;
  double lowest = 1e300;
  for (e = 1; e <= epochs; e++) {
    char cells[4][32];
    if (history_row(path, e, cells) && atof(cells[2]) < lowest) { lowest = atof(cells[2]); best = e; }
  }
  return best;
}

/* best.safetensors and checkpoint.safetensors name the epoch whose weights they hold, and carry
 * that epoch's losses and history. Runs of 1, 2 and 3 epochs (constant learning rate: the first
 * k epochs of each are the same) give the weights of every epoch to compare with. */
static void test_checkpoint_metadata(void) {
  static const char *keys[4] = {"train.train_loss", "train.train_acc", "train.val_loss", "train.val_acc"};
  const char *common = "train --arch ou66 --data build/tcli_sim/images.npy --labels build/tcli_sim/labels.csv --batch 8 --lr 0.01 "
                       "--val-fraction 0.25 --minmax --seed 2 --threads 1";
  char path[256];
  int e, k;
  CHECK(cli_lens("sim --preset euclid-lensfinding --n 48 --seed 4 --threads 1 --out build/tcli_sim 2> /dev/null") == 0, "a tiny simulated set");
  for (e = 1; e <= 3; e++) {
      CHECK(cli_lens("%s --epochs %d --out build/tcli_e%d 2> /dev/null", common, e, e) == 0, "train %d epoch(s)", e);
  }
  { /* the names of lens sim's planes (its bands.txt) become the model's band_names */
    lensnet_model *bm = NULL;
    lensnet_error berr;
    const char *names = NULL;
    CHECK(lensnet_model_load("build/tcli_e1/best.safetensors", &bm, &berr) == LENSNET_OK && (names = lensnet_model_meta(bm, "band_names")) &&
              !strcmp(names, "VIS,Y,J,H"),
          "a model trained on lens sim's stack names its bands: %s", names ? names : "(none)");
    lensnet_model_free(bm);
    bm = NULL;
    /* fine-tuning OU-66 (J,Y,H,VIS) on that stack (VIS,Y,J,H): its planes by name, saved as --channels */
    CHECK(cli_lens("train --init weights/OU_66.safetensors --data build/tcli_sim/images.npy --labels build/tcli_sim/labels.csv --batch 8 "
                   "--epochs 1 --threads 1 --out build/tcli_init 2> build/tcli_init.err") == 0 &&
              cli_file_has("build/tcli_init.err", "holds VIS,Y,J,H") && lensnet_model_load("build/tcli_init/best.safetensors", &bm, &berr) == LENSNET_OK &&
              lensnet_model_meta(bm, "train.channels") && !strcmp(lensnet_model_meta(bm, "train.channels"), "2,1,3,0") &&
              !strcmp(lensnet_model_meta(bm, "band_names"), "J,Y,H,VIS"),
          "--init OU-66 on lens sim's stack reads J,Y,H,VIS by name (train.channels %s)", bm ? lensnet_model_meta(bm, "train.channels") : "-");
    lensnet_model_free(bm);
    cli_shell("rm -rf build/tcli_init build/tcli_init.err");
  }
  {
    const char *files[2] = {"best", "checkpoint"};
    int b = best_epoch("build/tcli_e3/history.csv", 3), f;
    printf("   lowest validation loss at epoch %d of 3\n", b);
    CHECK(b >= 1, "history.csv has 3 epochs");
    for (f = 0; f < 2 && b >= 1; f++) {
      int want = f == 0 ? b : 3;
      lensnet_safetensors st;
      lensnet_error err;
      char cells[4][32], other[256];
      snprintf(path, sizeof path, "build/tcli_e3/%s.safetensors", files[f]);
      /* the weights are those of epoch `want`: the last ones of the run that stopped there */
      snprintf(other, sizeof other, "build/tcli_e%d/checkpoint.safetensors", want);
      CHECK(tensors_within(path, other), "%s holds the weights of epoch %d", path, want);
      if (lensnet_safetensors_read(path, &st, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); continue; }
      {
        const char *ep = lensnet_safetensors_meta(&st, "train.epoch"), *hist = lensnet_safetensors_meta(&st, "train.history");
        const char *bvl = lensnet_safetensors_meta(&st, "train.best_val_loss");
        char last_row[64];
        CHECK(ep && atoi(ep) == want, "%s: train.epoch %s, its weights are of epoch %d", path, ep ? ep : "(none)", want);
        CHECK(history_row("build/tcli_e3/history.csv", want, cells), "history row %d", want);
        for (k = 0; k < 4; k++) {
          const char *v = lensnet_safetensors_meta(&st, keys[k]);
          CHECK(v && !strcmp(v, cells[k]), "%s: %s = %s, history row %d says %s", path, keys[k], v ? v : "(none)", want, cells[k]);
        }
        /* the history it carries ends with that epoch's row */
        snprintf(last_row, sizeof last_row, "\n%d,", want);
        CHECK(hist && strstr(hist, last_row) && (snprintf(last_row, sizeof last_row, "\n%d,", want + 1), !strstr(hist, last_row)),
              "%s: train.history ends at epoch %d", path, want);
        if (f == 0) CHECK(bvl && fabs(atof(bvl) - atof(cells[2])) < 1e-6, "%s: best_val_loss %s is its own val_loss %s", path, bvl ? bvl : "(none)", cells[2]);
        CHECK(lensnet_safetensors_meta(&st, "preprocess") && !strcmp(lensnet_safetensors_meta(&st, "preprocess"), "minmax"),
              "%s: preprocess minmax (trained with --minmax)", path);
      }
      lensnet_safetensors_free(&st);
    }
  }
  {
    lensnet_safetensors st;
    lensnet_error err;
    CHECK(cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_labels.csv --epochs 1 --val-fraction 0.2 "
              "--threads 1 --out build/tcli_plain 2> /dev/null") == 0, "train without --minmax");
    if (lensnet_safetensors_read("build/tcli_plain/best.safetensors", &st, &err) == LENSNET_OK) {
      CHECK(lensnet_safetensors_meta(&st, "preprocess") && !strcmp(lensnet_safetensors_meta(&st, "preprocess"), "none"), "preprocess none");
      lensnet_safetensors_free(&st);
    } else CHECK(0, "%s", err.message);
  }
}

/* build/tcli_resumed, complete at 5 of 5 epochs: resumed without --epochs or with 5 it says so
 * and changes nothing (exit 0); asked for 3 it refuses (exit 2), changing nothing either. */
static void test_resume_complete(void) {
  static const char *const files[] = {"checkpoint.safetensors", "best.safetensors", "history.csv"};
  int k, same = 1;
  CHECK(cli_shell("rm -rf build/tcli_copy && cp -r build/tcli_resumed build/tcli_copy") == 0, "copy the run");
  CHECK(cli_lens("train --resume build/tcli_resumed 2> build/tcli_err.log") == 0 && cli_file_has("build/tcli_err.log", "complete (5 of 5 epochs)") &&
            cli_file_has("build/tcli_err.log", "--epochs M with M > 5") && !cli_file_has("build/tcli_err.log", "resuming"),
        "a complete run resumed says it is complete (exit 0)");
  CHECK(cli_lens("train --resume build/tcli_resumed --epochs 5 2> build/tcli_err.log") == 0 && cli_file_has("build/tcli_err.log", "complete"),
        "--epochs 5 of a run at 5: complete (exit 0)");
  CHECK(cli_lens("train --resume build/tcli_resumed --epochs 3 2> build/tcli_err.log") == 2 && cli_file_has("build/tcli_err.log", "has done 5 epochs") &&
            cli_file_has("build/tcli_err.log", "cannot be shortened"),
        "--epochs 3 of a run at 5: refused (exit 2)");
  for (k = 0; k < 3; k++) {
    char a[256], b[256];
    snprintf(a, sizeof a, "build/tcli_resumed/%s", files[k]);
    snprintf(b, sizeof b, "build/tcli_copy/%s", files[k]);
    same &= cli_same_file(a, b);
  }
  CHECK(same, "the checkpoint, best weights and history are unchanged");
  cli_shell("rm -rf build/tcli_copy");
}

static void test_resume(void) {
  const char *common = "train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_labels.csv "
                       "--epochs 4 --batch 16 --lr 0.005 --augment flip,rot90,shift=1,noise=0.02 --class-weights auto --minmax --seed 5";
  size_t compared = 0;
  CHECK(cli_lens("%s --out build/tcli_full --threads 1 2> build/tcli_full.log", common) == 0, "uninterrupted run");
  CHECK(cli_lens("%s --out build/tcli_resumed --threads 2 --interrupt-after 2 2> build/tcli_interrupted.log", common) != 0, "the interrupted run stops with a failure status");
  CHECK(cli_file_has("build/tcli_resumed/history.csv", "\n2,") && !cli_file_has("build/tcli_resumed/history.csv", "\n3,"), "history holds epochs 1-2 only");
  /* every option comes from the checkpoint: another beside --resume would be ignored, so it is
   * refused before any work, naming it and what --resume allows */
  CHECK(cli_shell("cp build/tcli_resumed/checkpoint.safetensors build/tcli_ckpt_copy.safetensors") == 0, "copy the checkpoint");
  CHECK(cli_lens("train --resume build/tcli_resumed --lr 0.1 2> build/tcli_err.log") == 2 && cli_file_has("build/tcli_err.log", "--lr") &&
            cli_file_has("build/tcli_err.log", "only --epochs and --threads"),
        "--lr beside --resume refused (exit 2), naming --lr and what --resume allows");
  CHECK(cli_lens("train --resume build/tcli_resumed --epochs 4 --data build/tcli_other.npy 2> build/tcli_err.log") == 2 &&
            cli_file_has("build/tcli_err.log", "--data does not apply with --resume"),
        "--data beside --resume refused");
  CHECK(cli_lens("train --resume build/tcli_resumed --out build/tcli_other --force 2> build/tcli_err.log") == 2 &&
            cli_file_has("build/tcli_err.log", "--out") && access("build/tcli_other", F_OK) != 0,
        "--out beside --resume refused, nothing made");
  CHECK(cli_shell("cmp -s build/tcli_resumed/checkpoint.safetensors build/tcli_ckpt_copy.safetensors") == 0 &&
            !cli_file_has("build/tcli_resumed/history.csv", "\n3,"),
        "the refused runs left the checkpoint and history alone");
  /* the labels file changed under the run (one label flipped): refused, naming the fingerprints */
  CHECK(cli_shell("cp build/tcli_labels.csv build/tcli_labels_orig.csv && sed -i '2s/^0,0,/0,1,/' build/tcli_labels.csv && "
                  "! cmp -s build/tcli_labels.csv build/tcli_labels_orig.csv") == 0, "flip the first label");
  CHECK(cli_lens("train --resume build/tcli_resumed 2> build/tcli_err.log") == 2 &&
            cli_file_has("build/tcli_err.log", "data differ from those the run started with") && cli_file_has("build/tcli_err.log", "train.data_fingerprint") &&
            !cli_file_has("build/tcli_err.log", "resuming"),
        "--resume with changed labels refused (exit 2), saying why and only that");
  CHECK(cli_shell("cmp -s build/tcli_resumed/checkpoint.safetensors build/tcli_ckpt_copy.safetensors") == 0 &&
            !cli_file_has("build/tcli_resumed/history.csv", "\n3,"),
        "the refused resume left the checkpoint and history alone");
  cli_shell("mv build/tcli_labels_orig.csv build/tcli_labels.csv");
  CHECK(cli_lens("train --resume build/tcli_resumed --epochs 2 2> build/tcli_err.log") == 0 &&
            cli_file_has("build/tcli_err.log", "nothing to train: --epochs 2 asks for no more than the 2 done (the run is set for 4)") &&
            !cli_file_has("build/tcli_err.log", "complete") && cli_shell("cmp -s build/tcli_resumed/checkpoint.safetensors build/tcli_ckpt_copy.safetensors") == 0,
        "--epochs 2 of a run stopped at 2 of 4: nothing to train, and not called complete (exit 0)");
  remove("build/tcli_ckpt_copy.safetensors");
  CHECK(cli_lens("train --resume build/tcli_resumed --threads 1 2> build/tcli_resume.log") == 0, "resume");
  CHECK(cli_file_has("build/tcli_resume.log", "resuming build/tcli_resumed after epoch 2 of 4"), "resume says so, with the run's own epochs");
  CHECK(cli_file_has("build/tcli_resume.log", "resuming"), "resume says so");
  CHECK(same_tensors("build/tcli_full/checkpoint.safetensors", "build/tcli_resumed/checkpoint.safetensors", &compared),
        "checkpoints differ after resuming");
  printf("   %lu tensors (weights, batch-norm statistics, Adam moments) identical\n", (unsigned long)compared);
  CHECK(compared > 10, "the checkpoint holds weights and optimiser state (%lu tensors)", (unsigned long)compared);
  CHECK(cli_lens("train --resume build/tcli_resumed --epochs 5 --threads 1 2> /dev/null") == 0 &&
            cli_file_has("build/tcli_resumed/history.csv", "\n5,"),
        "--epochs beside --resume extends the finished run to epoch 5");
  test_resume_complete();
  CHECK(cli_file_has("build/tcli_full/history.csv", "epoch,lr,train_loss,train_acc,val_loss,val_acc") &&
        cli_file_has("build/tcli_full/history.csv", "\n4,"), "history.csv has a header and 4 epochs");
  CHECK(cli_lens("info build/tcli_full/best.safetensors > /dev/null") == 0, "best.safetensors loads");
  /* a finished run is not overwritten by a new run into the same folder, unless --force */
  CHECK(cli_shell("cp build/tcli_full/best.safetensors build/tcli_best_copy.safetensors") == 0, "copy the best weights");
  CHECK(cli_lens("%s --out build/tcli_full 2> build/tcli_again.log", common) == 2 && cli_file_has("build/tcli_again.log", "--resume build/tcli_full") &&
            cli_shell("cmp -s build/tcli_full/best.safetensors build/tcli_best_copy.safetensors") == 0,
        "--out of a finished run refused (exit 2, naming --resume), its files untouched");
  CHECK(cli_lens("%s --out build/tcli_full --force --interrupt-after 1 2> /dev/null", common) != 0 && cli_file_has("build/tcli_full/history.csv", "\n1,") &&
            !cli_file_has("build/tcli_full/history.csv", "\n2,"),
        "--force starts over (the history holds only the new run's first epoch)");
  remove("build/tcli_best_copy.safetensors");
  CHECK(cli_lens("predict --model build/tcli_full/checkpoint.safetensors build/tcli_images.npy --out build/tcli_pred.npy") == 0,
        "the checkpoint scores images");
}

static void test_bad_input(void) {
  FILE *f = fopen("build/tcli_short.csv", "w");
  if (f) { fputs("label\n0\n1\n", f); fclose(f); }
  CHECK(cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_short.csv --out build/tcli_bad 2> build/tcli_err.log") != 0,
        "too few labels must fail");
  CHECK(cli_file_has("build/tcli_err.log", "build/tcli_short.csv: 2 label rows for 240 images"), "the message counts rows and images");
  f = fopen("build/tcli_badclass.csv", "w");
  if (f) { int i; fputs("label\n", f); for (i = 0; i < 240; i++) fputs(i == 7 ? "5\n" : "1\n", f); fclose(f); }
  CHECK(cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_badclass.csv --out build/tcli_bad 2> build/tcli_err.log") != 0,
        "class 5 of 2 must fail");
  CHECK(cli_file_has("build/tcli_err.log", "line 9: class '5' is not an integer from 0 to 1") &&
            cli_file_has("build/tcli_err.log", "--classes names them"),
        "the message names the line, and without --classes says how to name more classes");
  /* labels.csv is read as lens plot and lens eval read tables (lensnet_csv_read): a quoted name
   * holding a comma does not shift the label column onto theta_E (not an integer: refused), and
   * CRLF line ends and a last line without one are read */
  f = fopen("build/tcli_quoted.csv", "wb");
  if (f) {
    int i;
    fputs("\"id, name\",label,theta_E\r\n", f);
    for (i = 0; i < 240; i++) fprintf(f, "\"%d, x\",%d,0.25%s", i, i % 2, i < 239 ? "\r\n" : "");
    fclose(f);
  }
  CHECK(cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_quoted.csv --epochs 1 --threads 1 "
                 "--force --out build/tcli_quoted 2> build/tcli_err.log") == 0,
        "quoted names, CRLF and no final newline in labels.csv");
  f = fopen("build/tcli_ragged.csv", "w");
  if (f) { int i; fputs("id,label\n", f); for (i = 0; i < 240; i++) fprintf(f, i == 3 ? "%d\n" : "%d,1\n", i); fclose(f); }
  CHECK(cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_ragged.csv --out build/tcli_bad 2> build/tcli_err.log") != 0 &&
            cli_file_has("build/tcli_err.log", "line 5"),
        "a row narrower than the header is refused, naming its line");
  CHECK(cli_lens("train --arch ou66 --data build/tcli_images.npy --labels build/tcli_labels.csv --out build/tcli_bad 2> build/tcli_err.log") != 0,
        "12x12 images for OU-66 must fail");
  CHECK(cli_file_has("build/tcli_err.log", "1x12x12") && cli_file_has("build/tcli_err.log", "66"), "the message names both shapes");
  f = fopen("build/tcli_nolabel.csv", "w");
  if (f) { int i; fputs("id,kind\n", f); for (i = 0; i < 240; i++) fprintf(f, "%d,%d\n", i, i % 2); fclose(f); }
  CHECK(cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_nolabel.csv --out build/tcli_bad 2> build/tcli_err.log") == 1 &&
            cli_file_has("build/tcli_err.log", "no column named label") && cli_file_has("build/tcli_err.log", "columns found: id,kind"),
        "labels without a label column: an error listing the columns, not training on the first");
  {
    /* one NaN and one infinite pixel: refused before training, naming the file and the first */
    lensnet_tensor t;
    lensnet_error err;
    if (lensnet_npy_read("build/tcli_images.npy", &t, &err) == LENSNET_OK) {
      t.data[7 * 144 + 3 * 12 + 5] = INFINITY;
      t.data[9 * 144] = NAN;
      lensnet_npy_write("build/tcli_nan.npy", &t, &err);
      lensnet_tensor_free(&t);
    }
    CHECK(system("rm -rf build/tcli_nan_run") == 0 &&
              cli_lens("train --arch build/tcli_arch.txt --data build/tcli_nan.npy --labels build/tcli_labels.csv --out build/tcli_nan_run 2> build/tcli_err.log") == 1 &&
              cli_file_has("build/tcli_err.log", "build/tcli_nan.npy: 2 non-finite pixels") &&
              cli_file_has("build/tcli_err.log", "image 7, band 0, row 3, column 5 (inf)"),
          "non-finite pixels refused, naming the file, the count and the first");
    CHECK(access("build/tcli_nan_run", F_OK) != 0, "and nothing trained: no empty --out folder left behind");
  }
  /* a run that fails before writing anything takes away the folders it made, and only those */
  CHECK(cli_shell("rm -rf build/tcli_made && mkdir -p build/tcli_kept") == 0, "setup");
  CHECK(cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_short.csv --out build/tcli_made/a/b "
                 "2> /dev/null") == 1 && access("build/tcli_made", F_OK) != 0,
        "a failed run leaves none of the folders it made for --out build/tcli_made/a/b");
  CHECK(cli_lens("train --arch nosuch-arch --data build/tcli_images.npy --labels build/tcli_labels.csv --out build/tcli_made 2> build/tcli_err.log") == 2 &&
            cli_file_has("build/tcli_err.log", "nosuch-arch") && access("build/tcli_made", F_OK) != 0,
        "an option found bad after the folder was made (--arch): no folder left");
  CHECK(cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_short.csv --out build/tcli_kept 2> /dev/null") == 1 &&
            access("build/tcli_kept", F_OK) == 0,
        "an --out folder that was there before stays");
  /* the test hook --interrupt-after is left out of --help; the dead --arch-file (--arch takes a
   * file) is refused rather than ignored */
  CHECK(cli_lens("train --help > build/tcli_help.txt") == 0 && cli_file_has("build/tcli_help.txt", "--resume DIR") &&
            !cli_file_has("build/tcli_help.txt", "interrupt") && !cli_file_has("build/tcli_help.txt", "arch-file") &&
            !cli_file_has("build/tcli_help.txt", "arch_file"),
        "--help lists no hidden option");
  CHECK(cli_lens("train --arch-file build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_labels.csv --out build/tcli_made "
                 "2> build/tcli_err.log") == 2 && cli_file_has("build/tcli_err.log", "--arch-file") && access("build/tcli_made", F_OK) != 0,
        "--arch-file is no option (--arch takes a file)");
  CHECK(cli_lens("train --frobnicate 3 2> build/tcli_err.log") != 0 && cli_file_has("build/tcli_err.log", "--frobnicate"), "unknown option named");
  CHECK(cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_labels.csv --weight-init xavier --out build/tcli_bad 2> build/tcli_err.log") == 2 &&
            cli_file_has("build/tcli_err.log", "xavier"), "an unknown --weight-init is named");
  CHECK(cli_lens("train --resume build/does-not-exist 2> build/tcli_err.log") != 0 && cli_file_has("build/tcli_err.log", "does-not-exist"), "missing checkpoint named");
  {
    /* resumed from another folder, the run's relative data names do not resolve: the message says why */
    char cwd[2048], tool[4200];
    const char *runner = getenv("LENS_TEST_RUNNER"), *path = cli_lens_path();
    if (getcwd(cwd, sizeof cwd)) {
      snprintf(tool, sizeof tool, "%s%s%s%s", runner && *runner ? runner : "", runner && *runner ? " " : "", path[0] == '/' ? "" : cwd,
               path[0] == '/' ? path : "");
      if (path[0] != '/') snprintf(tool + strlen(tool), sizeof tool - strlen(tool), "/%s", path);
      CHECK(cli_shell("cd docs && %s train --resume ../build/tcli_full --epochs 9 2> ../build/tcli_err.log", tool) == 1 &&
                cli_file_has("build/tcli_err.log", "build/tcli_images.npy: cannot open") &&
                cli_file_has("build/tcli_err.log", "resume from the one the run started in"),
            "a resume from another folder names the data file and says why it is not found");
    }
  }
  CHECK(cli_lens("train --resume README.md 2> build/tcli_err.log") == 1 && cli_file_has("build/tcli_err.log", "is a file; it takes the folder of a run"),
        "--resume of a file says it takes a folder");
  CHECK(cli_lens("train --resume docs 2> build/tcli_err.log") == 1 && cli_file_has("build/tcli_err.log", "holds no checkpoint.safetensors"),
        "--resume of a folder without a run says so");
  {
    /* a damaged checkpoint: an option out of its range must be refused, not obeyed */
    lensnet_safetensors st;
    lensnet_error err;
    if (lensnet_safetensors_read("build/tcli_full/checkpoint.safetensors", &st, &err) == LENSNET_OK) {
      system("mkdir -p build/tcli_bad");
      lensnet_safetensors_set_meta(&st, "train.val_fraction", "2");
      lensnet_safetensors_write("build/tcli_bad/checkpoint.safetensors", &st, &err);
      lensnet_safetensors_free(&st);
      CHECK(cli_lens("train --resume build/tcli_bad 2> build/tcli_err.log") != 0 && cli_file_has("build/tcli_err.log", "val_fraction"),
            "an out-of-range option in a checkpoint is named");
    } else CHECK(0, "read the checkpoint: %s", err.message);
  }
}

/* labels.csv's index column says which image a row labels, as lens eval reads it: the rows in
 * reverse order train the same weights, bit for bit; a repeated index is refused. --classes: no
 * empty or repeated name; without it, a fine-tuned model keeps --init's names. */
static void test_labels_by_index(void) {
  FILE *f = fopen("build/tcli_arch3.txt", "w");
  if (f) {
    fputs("input 1 12 12\nconv2d name=c1 out=4 kernel=3 padding=1\nrelu\nmaxpool kernel=2\nflatten\ndense name=d2 out=3\n", f);
    fclose(f);
  }
  f = fopen("build/tcli_reversed.csv", "w");
  size_t compared = 0;
  lensnet_model *m = NULL;
  lensnet_error err;
  int i;
  if (f) {
    fputs("kind,label,index\n", f);
    for (i = 239; i >= 0; i--) fprintf(f, "%s,%d,%d\n", i % 2 ? "ring" : "disc", i % 2, i);
    fclose(f);
  }
  CHECK(cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_labels.csv --epochs 1 --threads 1 "
                 "--force --out build/tcli_inorder 2> /dev/null") == 0 &&
            cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_reversed.csv --epochs 1 --threads 1 "
                     "--force --out build/tcli_reversed 2> build/tcli_err.log") == 0,
        "both runs");
  CHECK(same_tensors("build/tcli_inorder/best.safetensors", "build/tcli_reversed/best.safetensors", &compared) && compared > 0,
        "rows in reverse order with their index: the same weights");
  f = fopen("build/tcli_dupindex.csv", "w");
  if (f) {
    fputs("index,label\n", f);
    for (i = 0; i < 240; i++) fprintf(f, "%d,%d\n", i == 5 ? 4 : i, i % 2);
    fclose(f);
  }
  CHECK(cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_dupindex.csv --epochs 1 "
                 "--out build/tcli_lab 2> build/tcli_err.log") == 1 &&
            cli_file_has("build/tcli_err.log", "build/tcli_dupindex.csv: line 7: index 4 again (line 6 has it)"),
        "a repeated index: refused, naming both lines");
  /* a kind column that names the classes: --classes in another order is refused, in its order accepted */
  CHECK(cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_reversed.csv --classes ring,disc "
                 "--epochs 1 --threads 1 --out build/tcli_swapped 2> build/tcli_err.log") == 2 &&
            cli_file_has("build/tcli_err.log", "--classes ring,disc names label 0 'ring', but the kind column of build/tcli_reversed.csv calls "
                                               "every row of label 0 'disc'") &&
            cli_file_has("build/tcli_err.log", "(--classes disc,ring)") && cli_shell("test -e build/tcli_swapped") != 0,
        "class names in another order than the kind column's: refused, naming the order, nothing written");
  CHECK(cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_reversed.csv --classes disc,ring "
                 "--epochs 1 --threads 1 --force --out build/tcli_swapped 2> /dev/null") == 0,
        "in the kind column's order: trained");
  CHECK(cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_labels.csv --classes disc,,ring "
                 "--out build/tcli_lab 2> build/tcli_err.log") == 2 && cli_file_has("build/tcli_err.log", "name 2 is empty"),
        "an empty class name is refused");
  CHECK(cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_labels.csv --classes \"disc, disc\" "
                 "--out build/tcli_lab 2> build/tcli_err.log") == 2 && cli_file_has("build/tcli_err.log", "'disc' twice"),
        "a class named twice is refused");
  CHECK(cli_lens("train --arch build/tcli_arch3.txt --data build/tcli_images.npy --labels build/tcli_labels.csv --classes disc,ring,other "
                 "--epochs 1 --threads 1 --force --out build/tcli_lab 2> build/tcli_err.log") == 0 &&
            cli_file_has("build/tcli_err.log", "3 classes but the labels of build/tcli_labels.csv go up to 1: output 2 has no image to learn from"),
        "a class no label uses: trained, with a note");
  CHECK(cli_lens("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_labels.csv --classes disc,ring "
                 "--epochs 1 --threads 1 --force --out build/tcli_named 2> /dev/null") == 0 &&
            cli_lens("train --init build/tcli_named/best.safetensors --data build/tcli_images.npy --labels build/tcli_labels.csv "
                     "--epochs 1 --threads 1 --force --out build/tcli_tuned 2> /dev/null") == 0,
        "a fine-tuning run without --classes");
  CHECK(lensnet_model_load("build/tcli_tuned/best.safetensors", &m, &err) == LENSNET_OK && lensnet_model_meta(m, "classes") &&
            !strcmp(lensnet_model_meta(m, "classes"), "disc,ring"),
        "it keeps --init's class names: %s", m && lensnet_model_meta(m, "classes") ? lensnet_model_meta(m, "classes") : err.message);
  lensnet_model_free(m);
}

/* --channels: training on band 1 of a three-band stack is training on a one-band file of that
 * band (the same weights, bit for bit); the model takes as many bands as listed. */
static void test_channels(void) {
  lensnet_tensor one, three;
  lensnet_error err;
  lensnet_rng rng;
  size_t shape[4] = {240, 3, 12, 12}, i, p, compared = 0;
  const char *common = "--arch build/tcli_arch3.txt --labels build/tcli_labels.csv --epochs 2 --batch 16 --seed 5 --threads 1";
  FILE *f;
  if (lensnet_npy_read("build/tcli_images.npy", &one, &err) != LENSNET_OK || lensnet_tensor_alloc(&three, 4, shape, &err) != LENSNET_OK) {
    CHECK(0, "setup: %s", err.message);
    return;
  }
  lensnet_rng_seed(&rng, 9);
  for (i = 0; i < 240; i++)
    for (p = 0; p < 144; p++) {
      three.data[(i * 3 + 0) * 144 + p] = lensnet_rng_normal(&rng);
      three.data[(i * 3 + 1) * 144 + p] = one.data[i * 144 + p];
      three.data[(i * 3 + 2) * 144 + p] = 5.0f + lensnet_rng_normal(&rng);
    }
  lensnet_npy_write("build/tcli_images3.npy", &three, &err);
  lensnet_tensor_free(&one);
  lensnet_tensor_free(&three);
  f = fopen("build/tcli_arch3.txt", "w");
  if (f) {
    fputs("input 1 12 12\nconv2d name=c1 out=6 kernel=3 padding=1\nrelu\nmaxpool kernel=2\nflatten\ndense name=d2 out=2\n", f);
    fclose(f);
  }
  CHECK(cli_lens("train %s --data build/tcli_images.npy --out build/tcli_ch_one 2>/dev/null", common) == 0, "one-band run");
  CHECK(cli_lens("train %s --data build/tcli_images3.npy --channels 1 --out build/tcli_ch_three 2>/dev/null", common) == 0,
        "band 1 of three");
  CHECK(same_tensors("build/tcli_ch_one/best.safetensors", "build/tcli_ch_three/best.safetensors", &compared) && compared > 0,
        "the same weights (%lu tensors)", (unsigned long)compared);
  CHECK(cli_lens("train --arch ou66 --data build/tcli_images3.npy --labels build/tcli_labels.csv --channels 3 --out build/tcli_ch_bad 2> build/tcli_err.log") == 2 &&
            cli_file_has("build/tcli_err.log", "band 3") && cli_file_has("build/tcli_err.log", "3 bands"),
        "a band the data lacks is named");
}

/* --crop N: training on the central 12 x 12 of 20 x 16 images is training on a file of those
 * 12 x 12 (the same weights, bit for bit), the offsets rounded down as lens predict --crop cuts
 * (rows 4-15, columns 2-13); a run with --crop resumes to the uninterrupted run's weights (the
 * crop comes back from the checkpoint); a crop larger than the images is refused, naming both. */
static void test_crop(void) {
  lensnet_tensor one, big;
  lensnet_error err;
  lensnet_rng rng;
  size_t shape[4] = {240, 1, 20, 16}, i, y, x, compared = 0;
  const char *common = "--arch build/tcli_arch.txt --labels build/tcli_labels.csv --epochs 2 --batch 16 --seed 5 --threads 1";
  if (lensnet_npy_read("build/tcli_images.npy", &one, &err) != LENSNET_OK || lensnet_tensor_alloc(&big, 4, shape, &err) != LENSNET_OK) {
    CHECK(0, "setup: %s", err.message);
    return;
  }
  lensnet_rng_seed(&rng, 11);
  for (i = 0; i < 240; i++)
    for (y = 0; y < 20; y++)
      for (x = 0; x < 16; x++)
        big.data[(i * 20 + y) * 16 + x] = y >= 4 && y < 16 && x >= 2 && x < 14 ? one.data[(i * 12 + y - 4) * 12 + x - 2] : 3.0f * lensnet_rng_normal(&rng);
  lensnet_npy_write("build/tcli_images_big.npy", &big, &err);
  lensnet_tensor_free(&one);
  lensnet_tensor_free(&big);
  CHECK(cli_lens("train %s --data build/tcli_images.npy --out build/tcli_crop_ref 2>/dev/null", common) == 0, "run on the 12 x 12 images");
  CHECK(cli_lens("train %s --data build/tcli_images_big.npy --crop 12 --out build/tcli_crop 2>/dev/null", common) == 0, "run on 20 x 16 with --crop 12");
  CHECK(same_tensors("build/tcli_crop_ref/best.safetensors", "build/tcli_crop/best.safetensors", &compared) && compared > 0,
        "the same weights (%lu tensors)", (unsigned long)compared);
  CHECK(cli_lens("train %s --data build/tcli_images_big.npy --crop 12 --interrupt-after 1 --out build/tcli_crop_resumed 2>/dev/null", common) != 0 &&
            cli_lens("train --resume build/tcli_crop_resumed 2>/dev/null") == 0,
        "a --crop run stopped after epoch 1 and resumed");
  compared = 0;
  CHECK(same_tensors("build/tcli_crop/best.safetensors", "build/tcli_crop_resumed/best.safetensors", &compared) && compared > 0,
        "resumed: the uninterrupted run's weights (%lu tensors)", (unsigned long)compared);
  CHECK(cli_lens("train %s --data build/tcli_images_big.npy --crop 18 --out build/tcli_crop_bad 2> build/tcli_err.log", common) == 2 &&
            cli_file_has("build/tcli_err.log", "--crop 18 is larger than the images") && cli_file_has("build/tcli_err.log", "20x16") &&
            access("build/tcli_crop_bad", F_OK) != 0,
        "a crop larger than the images is named (exit 2), no folder left");
  /* lens predict on the uncut images: the message says the model wants its central crop */
  CHECK(cli_lens("predict --model build/tcli_crop/best.safetensors build/tcli_images_big.npy > /dev/null 2> build/tcli_err.log") == 1 &&
            cli_file_has("build/tcli_err.log", "trained on the central 12x12 of its images (train.crop); pass --crop"),
        "predict on uncut images names the model's crop");
  CHECK(cli_lens("predict --model build/tcli_crop/best.safetensors --crop build/tcli_images_big.npy > build/tcli_crop_scores.csv 2> /dev/null") == 0 &&
            cli_lens("predict --model build/tcli_crop_ref/best.safetensors build/tcli_images.npy > build/tcli_ref_scores.csv 2> /dev/null") == 0,
        "both score");
  CHECK(cli_shell("cut -d, -f2- build/tcli_crop_scores.csv > build/tcli_a.cut && cut -d, -f2- build/tcli_ref_scores.csv > build/tcli_b.cut && "
                  "cmp -s build/tcli_a.cut build/tcli_b.cut") == 0,
        "with --crop, the scores of the run on the 12 x 12 images");
}

/* --init W --arch A: A's parameters come from W by name (here: the run's network without its
 * dropout); a name A has and W lacks is refused. A learning rate of 1e-12 leaves the weights where
 * they start to 1e-9 (Adam's step is about lr, 15 steps), while two initialisations differ by ~0.1. */
static void test_init_into_arch(void) {
  lensnet_model *w = NULL, *got = NULL;
  lensnet_error err;
  const char *names[4] = {"c1.weight", "c2.weight", "d1.weight", "d2.bias"};
  size_t k;
  int same = 1;
  FILE *f = fopen("build/tcli_arch_nodrop.txt", "w");
  if (f) {
    fputs("input 1 12 12\nconv2d name=c1 out=6 kernel=3 padding=1\nbatchnorm name=bn\nrelu\nmaxpool kernel=2\n"
          "conv2d name=c2 out=8 kernel=3\nrelu\nflatten\ndense name=d1 out=16\nrelu\ndense name=d2 out=2\n", f);
    fclose(f);
  }
  f = fopen("build/tcli_arch_renamed.txt", "w");
  if (f) {
    fputs("input 1 12 12\nconv2d name=first out=6 kernel=3 padding=1\nbatchnorm name=bn\nrelu\nmaxpool kernel=2\n"
          "conv2d name=c2 out=8 kernel=3\nrelu\nflatten\ndense name=d1 out=16\nrelu\ndense name=d2 out=2\n", f);
    fclose(f);
  }
  CHECK(cli_lens("train --init build/tcli_full/best.safetensors --arch build/tcli_arch_nodrop.txt --data build/tcli_images.npy "
                 "--labels build/tcli_labels.csv --epochs 1 --lr 1e-12 --threads 1 --force --out build/tcli_nodrop 2>/dev/null") == 0,
        "--init into an --arch without dropout");
  if (lensnet_model_load("build/tcli_full/best.safetensors", &w, &err) == LENSNET_OK &&
      lensnet_model_load("build/tcli_nodrop/best.safetensors", &got, &err) == LENSNET_OK) {
    for (k = 0; k < got->layer_count; k++) same &= got->layers[k].type != LENSNET_LAYER_DROPOUT;
    CHECK(same, "the trained network has no dropout layer");
    for (k = 0; k < 4; k++) {
      const lensnet_param *p = lensnet_model_param(w, names[k]), *q = lensnet_model_param(got, names[k]);
      double worst = 0;
      size_t i;
      for (i = 0; p && q && p->count == q->count && i < p->count; i++)
        if (fabs((double)w->values[p->offset + i] - got->values[q->offset + i]) > worst) worst = fabs((double)w->values[p->offset + i] - got->values[q->offset + i]);
      CHECK(p && q && p->count == q->count && worst <= 1e-9, "%s: W's values (largest difference %.2g)", names[k], worst);
    }
  } else CHECK(0, "load: %s", err.message);
  lensnet_model_free(w);
  lensnet_model_free(got);
  CHECK(cli_lens("train --init build/tcli_full/best.safetensors --arch build/tcli_arch_renamed.txt --data build/tcli_images.npy "
                 "--labels build/tcli_labels.csv --epochs 1 --force --out build/tcli_renamed 2> build/tcli_err.log") == 2 &&
            cli_file_has("build/tcli_err.log", "has no first.weight") && access("build/tcli_renamed", F_OK) != 0,
        "a parameter --init lacks is named (exit 2), no folder left");
  f = fopen("build/tcli_arch_narrow.txt", "w");
  if (f) {
    fputs("input 1 12 12\nconv2d name=c1 out=4 kernel=3 padding=1\nrelu\nflatten\ndense name=d2 out=2\n", f);
    fclose(f);
  }
  CHECK(cli_lens("train --init build/tcli_full/best.safetensors --arch build/tcli_arch_narrow.txt --data build/tcli_images.npy "
                 "--labels build/tcli_labels.csv --epochs 1 --force --out build/tcli_narrow 2> build/tcli_err.log") == 2 &&
            cli_file_has("build/tcli_err.log", "c1.weight has the shape [6,1,3,3]") && cli_file_has("build/tcli_err.log", "needs [4,1,3,3]"),
        "a parameter of another shape: both shapes named (exit 2)");
}

/* Fine-tuning keeps --init's scaling: a finder trained on min-max scaled images (tcli_full, with
 * --minmax) goes on with them unless --preprocess says otherwise, with a note; the run with the
 * scaling given as --minmax ends on the same weights, the one with --preprocess none elsewhere. */
static void test_init_keeps_scaling(void) {
  const char *common = "train --init build/tcli_full/best.safetensors --data build/tcli_images.npy --labels build/tcli_labels.csv "
                       "--epochs 1 --batch 16 --threads 1 --force";
  lensnet_model *m = NULL;
  lensnet_error err;
  size_t compared = 0;
  CHECK(cli_lens("%s --out build/tcli_keep 2> build/tcli_err.log", common) == 0 &&
            cli_file_has("build/tcli_err.log", "--init build/tcli_full/best.safetensors was trained on min-max scaled images (metadata preprocess): so is this run"),
        "fine-tuning a min-max finder: min-max, said in a note");
  CHECK(lensnet_model_load("build/tcli_keep/best.safetensors", &m, &err) == LENSNET_OK && lensnet_model_meta(m, "preprocess") &&
            !strcmp(lensnet_model_meta(m, "preprocess"), "minmax"),
        "the fine-tuned finder says preprocess=minmax: %s", m && lensnet_model_meta(m, "preprocess") ? lensnet_model_meta(m, "preprocess") : err.message);
  lensnet_model_free(m);
  CHECK(cli_lens("%s --minmax --out build/tcli_keep2 2> build/tcli_err.log", common) == 0 && !cli_file_has("build/tcli_err.log", "min-max scaled"),
        "with --minmax given: no note");
  CHECK(same_tensors("build/tcli_keep/best.safetensors", "build/tcli_keep2/best.safetensors", &compared) && compared > 0,
        "the same weights as with --minmax given (%lu tensors)", (unsigned long)compared);
  CHECK(cli_lens("%s --preprocess none --out build/tcli_keep3 2> build/tcli_err.log", common) == 0 && !cli_file_has("build/tcli_err.log", "min-max scaled"),
        "--preprocess none: no note");
  CHECK(lensnet_model_load("build/tcli_keep3/best.safetensors", &m, &err) == LENSNET_OK && lensnet_model_meta(m, "preprocess") &&
            !strcmp(lensnet_model_meta(m, "preprocess"), "none") &&
            !same_tensors("build/tcli_keep/best.safetensors", "build/tcli_keep3/best.safetensors", &compared),
        "--preprocess none trains on the values as they are, to other weights");
  lensnet_model_free(m);
  CHECK(cli_lens("%s --bands 3 --out build/tcli_keep4 2> build/tcli_err.log", common) == 2 && cli_file_has("build/tcli_err.log", "--bands sets the bands"),
        "--bands with --init alone is refused, not ignored");
}

int main(void) {
  make_dataset();
  cli_shell("rm -rf build/tcli_full build/tcli_resumed");
  TEST("an interrupted run resumed reaches the same weights") test_resume();
  TEST("bad input gets a clear error") test_bad_input();
  TEST("labels.csv rows matched by index; --classes checked and kept from --init") test_labels_by_index();
  TEST("--channels trains on the listed bands") test_channels();
  TEST("--crop trains on the central pixels") test_crop();
  TEST("--init into another --arch: weights by name") test_init_into_arch();
  TEST("fine-tuning keeps --init's scaling unless --preprocess says otherwise") test_init_keeps_scaling();
  TEST("best and last checkpoints describe the weights they hold (epoch, losses, history)") test_checkpoint_metadata();
  cli_shell("rm -rf build/tcli_*");
  return check_summary();
}
