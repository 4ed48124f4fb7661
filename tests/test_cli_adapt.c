/* `lens adapt` end to end on tiny `lens sim` data: each method writes its files, best.safetensors
 * is a finder `lens predict` reads, an interrupted and resumed run ends on the weights of an
 * uninterrupted one (with another thread count after the resume), target images given as FITS
 * files (a list of cutouts, or one cube) give the weights the same images give as .npy, with
 * --resume too, a complete run resumed changes nothing, --method adabn (no source images, one
 * pass) refuses what does not apply to it, and bad input gets clear errors with exit status 1 or 2 and no files, nor a
 * folder the run created. */
#define _POSIX_C_SOURCE 200809L
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "cli_check.h"

#define W "build/tcli_adapt"
#define BASE "adapt --source-data " W "/src/images.npy --source-labels " W "/src/labels.csv --init " W "/finder/best.safetensors " \
             "--batch 8 --threads 1"
#define COMMON BASE " --target-data " W "/tgt/images.npy"
#define TARGETS 16

/* Two small simulations (the target with another seed) and a tiny finder trained on the first. */
static int make_runs(void) {
  FILE *f;
  cli_shell("rm -rf " W " && mkdir -p " W);
  if (!(f = fopen(W "/arch.txt", "w"))) return 0;
  fputs("input 4 66 66\nconv2d name=c1 out=4 kernel=6 stride=6\nrelu\nmaxpool kernel=2\nflatten\n"
        "dense name=fc1 out=8\nrelu\ndense name=fc2 out=2\n", f);
  fclose(f);
  return cli_lens("sim --preset euclid-lensfinding --n 24 --seed 1 --threads 1 --out " W "/src 2>/dev/null") == 0 &&
         cli_lens("sim --preset euclid-lensfinding --n %d --seed 2 --threads 1 --fits --out " W "/tgt 2>/dev/null", TARGETS) == 0 &&
         cli_lens("train --data " W "/src/images.npy --labels " W "/src/labels.csv --arch " W "/arch.txt --epochs 1 --batch 8 "
                  "--threads 1 --out " W "/finder 2>/dev/null") == 0;
}

static void test_methods(void) {
  static const char *const methods[3] = {"adda", "adamatch", "self-ensembling"};
  int k;
  for (k = 0; k < 3; k++) {
    char dir[128], path[192], err_text[4096];
    snprintf(dir, sizeof dir, W "/run_%s", methods[k]);
    CHECK(cli_lens(COMMON " --epochs 2 --method %s%s --target-labels " W "/tgt/labels.csv --out %s 2> %s.err", methods[k],
                   k == 0 ? " --disc-width 16" : "", dir, dir) == 0,
          "%s runs", methods[k]);
    snprintf(path, sizeof path, "%s.err", dir);
    cli_text(path, err_text, sizeof err_text);
    CHECK(strstr(err_text, "epoch 2/2") && strstr(err_text, k ? "source_loss" : "disc_loss") &&
          strstr(err_text, k == 0 ? "encoder_loss" : k == 1 ? "target_loss" : "consistency_loss"), "%s: both losses on stderr:\n%s",
          methods[k], err_text);
    snprintf(path, sizeof path, "%s/history.csv", dir);
    CHECK(cli_lines(path) == 3 && cli_file_has(path, "target_acc,target_auc"), "%s: history.csv with a header and 2 rows", methods[k]);
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    CHECK(check_file_exists(path), "%s: checkpoint.safetensors", methods[k]);
    CHECK(cli_lens("predict --model %s/best.safetensors " W "/tgt/images.npy > %s/scores.csv 2>/dev/null", dir, dir) == 0,
          "%s: lens predict reads best.safetensors", methods[k]);
    snprintf(path, sizeof path, "%s/scores.csv", dir);
    CHECK(cli_lines(path) == 17, "%s: a score per target image (%d lines)", methods[k], cli_lines(path));
  }
  {
    lensnet_model *m = NULL;
    lensnet_error err;
    CHECK(lensnet_model_load(W "/run_adda/best.safetensors", &m, &err) == LENSNET_OK && lensnet_model_meta(m, "adapt.method") &&
          !strcmp(lensnet_model_meta(m, "adapt.method"), "adda") && lensnet_model_meta(m, "train.epochs") &&
          lensnet_model_meta(m, "classes"), "best.safetensors keeps the --init metadata and adds adapt.*");
    CHECK(m && lensnet_model_meta(m, "preprocess") && !strcmp(lensnet_model_meta(m, "preprocess"), "none"),
          "its preprocess says how the images were scaled (as the finder's: none)");
    lensnet_model_free(m);
  }
}

/* Every tensor of a is in b with the same bytes, and b has no others. */
static int same_tensors(const char *pa, const char *pb) {
  lensnet_safetensors a, b;
  lensnet_error err;
  size_t i;
  int same;
  if (lensnet_safetensors_read(pa, &a, &err) != LENSNET_OK) { printf("   %s\n", err.message); return 0; }
  if (lensnet_safetensors_read(pb, &b, &err) != LENSNET_OK) { printf("   %s\n", err.message); lensnet_safetensors_free(&a); return 0; }
  same = a.count == b.count && a.count > 0;
  for (i = 0; same && i < a.count; i++) {
    const lensnet_tensor *tb = lensnet_safetensors_find(&b, a.tensors[i].name);
    size_t n = lensnet_tensor_count(&a.tensors[i].tensor);
    same = tb && lensnet_tensor_count(tb) == n && !memcmp(tb->data, a.tensors[i].tensor.data, n * sizeof(float));
  }
  lensnet_safetensors_free(&a);
  lensnet_safetensors_free(&b);
  return same;
}

/* A pseudo-terminal on stderr gets the progress line with both losses; a file does not. */
static void test_progress(void) {
  char text[1 << 14];
  if (cli_shell("command -v script > /dev/null 2>&1") != 0) {
    printf("   (no `script` here to give the tool a terminal)\n");
    return;
  }
  CHECK(cli_shell("script -qec '%s " COMMON " --epochs 1 --out " W "/tty' /dev/null > " W "/tty.txt 2>&1 < /dev/null",
                  cli_lens_command()) == 0, "adapt under script");
  cli_text(W "/tty.txt", text, sizeof text);
  CHECK(strstr(text, "epoch 1/1 [") && strstr(text, "disc_loss") && strstr(text, "encoder_loss") && strstr(text, "step/s"),
        "a progress line with both losses: %.300s", text);
  cli_text(W "/run_adda.err", text, sizeof text);
  CHECK(!strchr(text, '\r'), "no progress line in a file");
}

/* W/cut, complete at 3 of 3 epochs: resumed without --epochs or with 3 it says so and changes
 * nothing (exit 0); asked for 2 it refuses (exit 2), changing nothing either. */
static void test_resume_complete(void) {
  static const char *const files[] = {"checkpoint.safetensors", "best.safetensors", "history.csv"};
  char out[16384];
  int k, same = 1;
  CHECK(cli_shell("rm -rf " W "/copy && cp -r " W "/cut " W "/copy") == 0, "copy the run");
  CHECK(cli_lens_output(out, sizeof out, "adapt --resume " W "/cut") == 0 && strstr(out, "complete (3 of 3 epochs)") &&
            strstr(out, "--epochs M with M > 3") && !strstr(out, "resuming"),
        "a complete run resumed says it is complete (exit 0): %s", out);
  CHECK(cli_lens_output(out, sizeof out, "adapt --resume " W "/cut --epochs 3") == 0 && strstr(out, "complete"),
        "--epochs 3 of a run at 3: complete (exit 0): %s", out);
  CHECK(cli_lens_output(out, sizeof out, "adapt --resume " W "/cut --epochs 2") == 2 && strstr(out, "has done 3 epochs") &&
            strstr(out, "cannot be shortened"),
        "--epochs 2 of a run at 3: refused (exit 2): %s", out);
  for (k = 0; k < 3; k++) {
    char a[256], b[256];
    snprintf(a, sizeof a, W "/cut/%s", files[k]);
    snprintf(b, sizeof b, W "/copy/%s", files[k]);
    same &= cli_same_file(a, b);
  }
  CHECK(same, "the checkpoint, best weights and history are unchanged");
  cli_shell("rm -rf " W "/copy");
}

static void test_resume(void) {
  CHECK(cli_lens(COMMON " --method adamatch --epochs 3 --out " W "/whole 2>/dev/null") == 0, "an uninterrupted run");
  CHECK(cli_lens(COMMON " --method adamatch --epochs 3 --interrupt_after 1 --out " W "/cut 2>/dev/null") == 1, "a run stopped after epoch 1");
  CHECK(cli_lines(W "/cut/history.csv") == 2, "the stopped run's history has one row");
  CHECK(cli_lens("adapt --resume " W "/cut --threads 2 2>/dev/null") == 0, "--resume");
  CHECK(same_tensors(W "/whole/best.safetensors", W "/cut/best.safetensors"), "the resumed run ends on the same weights, bit for bit");
  CHECK(same_tensors(W "/whole/checkpoint.safetensors", W "/cut/checkpoint.safetensors"),
        "and the same checkpoint: every network, every optimiser moment");
  CHECK(cli_lines(W "/cut/history.csv") == 4, "the resumed run's history has three rows");
  CHECK(cli_lens(COMMON " --method adamatch --epochs 2 --shift -1 --noise -1 --out " W "/nos 2>/dev/null") == 0 &&
            cli_lens(COMMON " --method adamatch --epochs 2 --shift -1 --noise -1 --interrupt_after 1 --out " W "/nos_cut 2>/dev/null") == 1 &&
            cli_lens("adapt --resume " W "/nos_cut 2>/dev/null") == 0,
        "--shift -1 --noise -1: whole, stopped and resumed");
  CHECK(same_tensors(W "/nos/best.safetensors", W "/nos_cut/best.safetensors"), "no shift and no noise survive --resume, bit for bit");
  test_resume_complete();
  { /* target images changed between the stop and --resume: refused, with the run left as it was */
    char out[4096];
    cli_shell("rm -rf " W "/tgt_x && mkdir -p " W "/tgt_x && cp " W "/tgt/images.npy " W "/tgt_x/images.npy");
    CHECK(cli_lens(BASE " --target-data " W "/tgt_x/images.npy --method adamatch --epochs 2 --interrupt_after 1 --out " W "/changed 2>/dev/null") == 1 &&
              cli_lens("sim --preset euclid-lensfinding --n %d --seed 3 --threads 1 --out " W "/tgt_y 2>/dev/null", TARGETS) == 0,
          "a run stopped after epoch 1, and other target images of the same shape");
    cli_shell("cp " W "/changed/checkpoint.safetensors " W "/changed_before.safetensors && cp " W "/tgt_y/images.npy " W "/tgt_x/images.npy");
    CHECK(cli_lens_output(out, sizeof out, "adapt --resume " W "/changed") == 2 && strstr(out, "data differ from those the run started with") &&
              strstr(out, "adapt.data_fingerprint") && !strstr(out, "resuming"),
          "--resume with changed target images is refused and says why, and only that (exit 2): %s", out);
    CHECK(cli_same_file(W "/changed/checkpoint.safetensors", W "/changed_before.safetensors") && cli_lines(W "/changed/history.csv") == 2,
          "and the run is left as it was");
    cli_shell("cp " W "/tgt/images.npy " W "/tgt_x/images.npy");
    CHECK(cli_lens_output(out, sizeof out, "adapt --resume " W "/changed") == 0 && strstr(out, "resuming " W "/changed after epoch 1 of 2") &&
              cli_lines(W "/changed/history.csv") == 3,
          "with its own images back, the run resumes, saying so: %s", out);
  }
  CHECK(cli_lens("adapt --resume " W "/cut --method adda 2>/dev/null") == 2 && cli_lens("adapt --resume " W "/cut --lr 0.1 2>/dev/null") == 2,
        "options beside --resume other than --epochs and --threads are refused");
  CHECK(cli_lens(COMMON " --epochs 2 --method adamatch --out " W "/whole 2>/dev/null") == 2, "an --out holding a run needs --force or --resume");
  CHECK(cli_lens(COMMON " --epochs 1 --method adda --force --out " W "/whole 2>/dev/null") == 0 && cli_lines(W "/whole/history.csv") == 2 &&
        cli_file_has(W "/whole/history.csv", "disc_loss"), "--force starts over");
}

/* Whether a folder is there. */
static int dir_exists(const char *path) { return cli_shell("test -d %s", path) == 0; }

/* Writes a FITS primary image of the given shape, every pixel `value`. */
static void write_fits(const char *path, int ndim, size_t c, size_t h, size_t w, float value) {
  lensnet_tensor t;
  lensnet_error err;
  size_t shape[3], i;
  shape[0] = c; shape[1] = h; shape[2] = w;
  if (ndim == 2) { shape[0] = h; shape[1] = w; }
  if (lensnet_tensor_alloc(&t, ndim, shape, &err) != LENSNET_OK) return;
  for (i = 0; i < lensnet_tensor_count(&t); i++) t.data[i] = value;
  lensnet_fits_write(path, &t, &err);
  lensnet_tensor_free(&t);
}

/* The target images as FITS: `lens sim --fits` writes each image as W/tgt/fits/NNNNNNN.fits, the
 * same float32 pixels as images.npy, so the weights must agree bit for bit. */
static void test_fits(void) {
  static char list[TARGETS * 40];
  char out[16384];
  size_t at = 0;
  int k;
  for (k = 0; k < TARGETS; k++) at += (size_t)snprintf(list + at, sizeof list - at, "%s" W "/tgt/fits/%07d.fits", k ? "," : "", k);
  {
    lensnet_tensor t;
    lensnet_error err;
    CHECK(lensnet_npy_read(W "/tgt/images.npy", &t, &err) == LENSNET_OK && lensnet_fits_write(W "/cube.fits", &t, &err) == LENSNET_OK,
          "the target images as one FITS cube [M,C,H,W]");
    lensnet_tensor_free(&t);
  }
  CHECK(cli_lens(COMMON " --method adamatch --epochs 2 --out " W "/f_npy 2>/dev/null") == 0, "targets as .npy");
  CHECK(cli_lens(BASE " --target-data %s --method adamatch --epochs 2 --out " W "/f_list 2>/dev/null", list) == 0,
        "targets as %d FITS cutouts, comma-separated", TARGETS);
  CHECK(same_tensors(W "/f_npy/best.safetensors", W "/f_list/best.safetensors"), "FITS cutouts give the .npy's weights, bit for bit");
  CHECK(cli_lens(BASE " --target-data " W "/cube.fits --method adamatch --epochs 2 --out " W "/f_cube 2>/dev/null") == 0 &&
        same_tensors(W "/f_npy/best.safetensors", W "/f_cube/best.safetensors"), "a FITS cube gives them too");
  CHECK(cli_lens(BASE " --target-data %s --method adamatch --epochs 2 --interrupt_after 1 --out " W "/f_cut 2>/dev/null", list) == 1 &&
        cli_lens("adapt --resume " W "/f_cut 2>/dev/null") == 0, "a FITS run stopped after epoch 1 and resumed");
  CHECK(same_tensors(W "/f_npy/best.safetensors", W "/f_cut/best.safetensors") &&
        same_tensors(W "/f_list/checkpoint.safetensors", W "/f_cut/checkpoint.safetensors"),
        "--resume reads the same FITS files again and ends on the same weights");
  {
    lensnet_model *m = NULL;
    lensnet_error err;
    CHECK(lensnet_model_load(W "/f_list/best.safetensors", &m, &err) == LENSNET_OK && lensnet_model_meta(m, "adapt.target-data") &&
          !strcmp(lensnet_model_meta(m, "adapt.target-data"), list), "adapt.target-data holds the list as given");
    lensnet_model_free(m);
  }
  write_fits(W "/small.fits", 3, 4, 32, 32, 0.5f);
  CHECK(cli_lens_output(out, sizeof out, BASE " --target-data " W "/tgt/fits/0000000.fits," W "/small.fits --out " W "/bad_fits/run") == 1 &&
        strstr(out, W "/small.fits") && strstr(out, "4x32x32") && strstr(out, "4x66x66"), "a FITS cutout of another size: %s", out);
  CHECK(!dir_exists(W "/bad_fits"), "no --out folder left behind, nor its parent");
  write_fits(W "/band.fits", 2, 1, 66, 66, 0.5f);
  CHECK(cli_lens_output(out, sizeof out, BASE " --target-data " W "/band.fits --out " W "/bad_band") == 1 && strstr(out, W "/band.fits") &&
        strstr(out, "1x66x66"), "one band for a model of four: %s", out);
  write_fits(W "/nan.fits", 3, 4, 66, 66, NAN);
  CHECK(cli_lens_output(out, sizeof out, BASE " --target-data " W "/nan.fits --out " W "/bad_nan") == 1 && strstr(out, W "/nan.fits") &&
        strstr(out, "non-finite"), "NaN pixels in a FITS cutout: %s", out);
  CHECK(cli_lens_output(out, sizeof out, BASE " --target-data " W "/tgt/fits/0000000.fits,," W "/tgt/fits/0000001.fits --out " W "/bad_list") == 2 &&
        strstr(out, "empty name"), "an empty name in the list: %s", out);
  CHECK(!dir_exists(W "/bad_band") && !dir_exists(W "/bad_nan") && !dir_exists(W "/bad_list"), "no --out folders left behind");
}

static void test_errors(void) {
  char out[16384];
  CHECK(cli_lens_output(out, sizeof out, COMMON " --method mixup --out " W "/bad1") == 2 && strstr(out, "mixup"), "an unknown method: %s", out);
  /* a setting of another method would be ignored: refused, with both methods named */
  CHECK(cli_lens_output(out, sizeof out, COMMON " --method adamatch --disc-width 64 --out " W "/bad1") == 2 &&
            strstr(out, "--disc-width is a setting of --method adda; this run is --method adamatch"),
        "--disc-width with adamatch: %s", out);
  CHECK(cli_lens_output(out, sizeof out, COMMON " --method self-ensembling --disc-lr 1e-5 --out " W "/bad1") == 2 &&
            strstr(out, "--disc-lr is a setting of --method adda; this run is --method self-ensembling"),
        "--disc-lr with self-ensembling: %s", out);
  CHECK(cli_lens_output(out, sizeof out, COMMON " --tau 0.5 --out " W "/bad1") == 2 && strstr(out, "--tau is a setting of --method adamatch") &&
            strstr(out, "--method adda"),
        "--tau with the default method (adda): %s", out);
  CHECK(cli_lens_output(out, sizeof out, COMMON " --method adda --consistency-weight 2 --out " W "/bad1") == 2 &&
            strstr(out, "--method self-ensembling"),
        "--consistency-weight with adda: %s", out);
  CHECK(cli_lens_output(out, sizeof out, COMMON " --method adda --shift 3 --out " W "/bad1") == 2 &&
            strstr(out, "--shift is a setting of --method adamatch or self-ensembling; this run is --method adda"),
        "--shift (strong views) with adda: %s", out);
  CHECK(!dir_exists(W "/bad1"), "nothing written for the refused settings");
  CHECK(cli_lens_output(out, sizeof out, "adapt --source-data " W "/src/images.npy --source-labels " W "/src/labels.csv --target-data "
                        W "/tgt/images.npy --out " W "/bad2") == 2 && strstr(out, "--init"), "--init is required: %s", out);
  CHECK(cli_shell("head -5 " W "/src/labels.csv > " W "/short.csv") == 0, "a short label file");
  CHECK(cli_lens_output(out, sizeof out, "adapt --source-data " W "/src/images.npy --source-labels " W "/short.csv --target-data " W
                        "/tgt/images.npy --init " W "/finder/best.safetensors --out " W "/bad3") == 1 && strstr(out, "label rows"),
        "labels that do not match the images: %s", out);
  CHECK(!dir_exists(W "/bad3"), "nothing written, not even the --out folder");
  CHECK(cli_lens_output(out, sizeof out, "adapt --source-data " W "/src/images.npy --source-labels " W "/src/labels.csv --target-data "
                        W "/finder/best.safetensors --init " W "/finder/best.safetensors --out " W "/bad4") == 1, "target data that is no .npy: %s",
        out);
  {
    lensnet_tensor t;
    lensnet_error err;
    size_t shape[4] = {3, 4, 32, 32};
    lensnet_tensor_alloc(&t, 4, shape, &err);
    lensnet_npy_write(W "/small.npy", &t, &err);
    lensnet_tensor_free(&t);
  }
  CHECK(cli_lens_output(out, sizeof out, "adapt --source-data " W "/src/images.npy --source-labels " W "/src/labels.csv --target-data "
                        W "/small.npy --init " W "/finder/best.safetensors --out " W "/bad5") == 1 && strstr(out, "4x32x32") &&
        strstr(out, "4x66x66"), "target images of another size: %s", out);
  CHECK(cli_shell("mkdir -p " W "/kept") == 0 && cli_lens("adapt --source-data " W "/src/images.npy --source-labels " W "/src/labels.csv "
                  "--target-data " W "/small.npy --init " W "/finder/best.safetensors --out " W "/kept 2>/dev/null") == 1 &&
        dir_exists(W "/kept"), "a failed run leaves alone an --out folder that was there before");
  { /* a one-output model passes the tool's checks and fails in lensnet_adapt, after the folder is made */
    lensnet_model *m = NULL;
    lensnet_error err;
    FILE *f;
    if (lensnet_model_create("input 4 66 66\nconv2d name=c1 out=4 kernel=6 stride=6\nrelu\nmaxpool kernel=2\nflatten\n"
                             "dense name=fc1 out=8\nrelu\ndense name=fc2 out=1\n", &m, &err) == LENSNET_OK) {
      lensnet_model_init(m, 1);
      lensnet_model_save(m, W "/one.safetensors", &err);
      lensnet_model_free(m);
    }
    if ((f = fopen(W "/zeros.csv", "w")) != NULL) {
      int k;
      fputs("label\n", f);
      for (k = 0; k < 24; k++) fputs("0\n", f);
      fclose(f);
    }
  }
  CHECK(cli_lens_output(out, sizeof out, "adapt --source-data " W "/src/images.npy --source-labels " W "/zeros.csv --target-data "
                        W "/tgt/images.npy --init " W "/one.safetensors --out " W "/bad7/run") == 2 && strstr(out, "1 outputs"),
        "a one-output model: %s", out);
  CHECK(!dir_exists(W "/bad7"), "the folders the failed run made are gone");
  {
    lensnet_model *m = NULL;
    lensnet_error err;
    if (lensnet_model_load(W "/finder/best.safetensors", &m, &err) == LENSNET_OK) {
      lensnet_model_set_meta(m, "regress.targets", "theta_E,e1");
      lensnet_model_save(m, W "/regress.safetensors", &err);
      lensnet_model_free(m);
    }
  }
  CHECK(cli_lens_output(out, sizeof out, "adapt --source-data " W "/src/images.npy --source-labels " W "/src/labels.csv --target-data "
                        W "/tgt/images.npy --init " W "/regress.safetensors --out " W "/bad6") == 2 && strstr(out, "regression"),
        "a regression model as --init: %s", out);
  CHECK(cli_lens_output(out, sizeof out, "adapt --resume " W "/nothing_here") == 1, "--resume of a folder without a run: %s", out);
}


/* --method adabn: a finder with batch norm, no source images; its files, its refusals. */
static void test_adabn(void) {
  char out[16384];
  FILE *f;
  if ((f = fopen(W "/arch_bn.txt", "w")) != NULL) {
    fputs("input 4 66 66\nconv2d name=c1 out=4 kernel=6 stride=6\nbatchnorm name=bn\nrelu\nmaxpool kernel=2\nflatten\n"
          "dense name=fc1 out=8\nrelu\ndense name=fc2 out=2\n", f);
    fclose(f);
  }
  CHECK(cli_lens("train --data " W "/src/images.npy --labels " W "/src/labels.csv --arch " W "/arch_bn.txt --epochs 1 --batch 8 "
                 "--threads 1 --out " W "/finder_bn 2>/dev/null") == 0, "a finder with batch norm");
#define ADABN "adapt --method adabn --init " W "/finder_bn/best.safetensors --threads 1"
  CHECK(cli_lens_output(out, sizeof out, ADABN " --target-data " W "/tgt/images.npy --target-labels " W "/tgt/labels.csv --out " W
                        "/run_adabn") == 0 && strstr(out, "epoch 1/1: mean_shift") && strstr(out, "std_change") && strstr(out, "target acc"),
        "adabn runs without source images, its statistics on stderr: %s", out);
  CHECK(cli_lines(W "/run_adabn/history.csv") == 2 && cli_file_has(W "/run_adabn/history.csv", "epoch,mean_shift,std_change,target_acc"),
        "history.csv: adabn's header and one row");
  CHECK(cli_lens("predict --model " W "/run_adabn/best.safetensors " W "/tgt/images.npy > " W "/run_adabn/scores.csv 2>/dev/null") == 0 &&
            cli_lines(W "/run_adabn/scores.csv") == TARGETS + 1,
        "lens predict reads the adapted finder");
  CHECK(cli_lens(ADABN " --batch 3 --target-data \"$(ls " W "/tgt/fits/*.fits | paste -sd, -)\" --out " W "/run_adabn_fits 2>/dev/null") == 0 &&
            same_tensors(W "/run_adabn/best.safetensors", W "/run_adabn_fits/best.safetensors"),
        "the targets as FITS cutouts, 3 at a time: the same statistics, bit for bit");
  CHECK(cli_lens_output(out, sizeof out, "adapt --resume " W "/run_adabn") == 0 && strstr(out, "complete (adabn is one pass)") &&
            !strstr(out, "extends"),
        "resumed, the run is complete, with no advice to extend it: %s", out);
  CHECK(cli_lens_output(out, sizeof out, "adapt --resume " W "/run_adabn --epochs 1") == 0 && strstr(out, "complete"),
        "--epochs 1, the epochs it has done: complete (exit 0): %s", out);
  CHECK(cli_lens_output(out, sizeof out, "adapt --resume " W "/run_adabn --epochs 3") == 2 && strstr(out, "--epochs does not apply to --method adabn"),
        "--epochs to extend it: refused: %s", out);
  CHECK(cli_lens_output(out, sizeof out, ADABN " --target-data " W "/tgt/images.npy --source-data " W "/src/images.npy --source-labels " W
                        "/src/labels.csv --out " W "/bad_adabn") == 2 && strstr(out, "uses no source images"),
        "source images given to adabn: refused: %s", out);
  CHECK(cli_lens_output(out, sizeof out, ADABN " --target-data " W "/tgt/images.npy --lr 1e-3 --out " W "/bad_adabn") == 2 &&
            strstr(out, "--lr is a setting of --method adda, adamatch or self-ensembling; this run is --method adabn"),
        "--lr with adabn: refused, the methods named: %s", out);
  CHECK(cli_lens_output(out, sizeof out, ADABN " --out " W "/bad_adabn") == 2 && strstr(out, "--target-data, --init and --out are required"),
        "adabn without --target-data: %s", out);
  CHECK(cli_lens_output(out, sizeof out, "adapt --method adabn --init " W "/finder/best.safetensors --target-data " W "/tgt/images.npy --out " W
                        "/bad_adabn") == 2 && strstr(out, "no batch norm"),
        "a finder without batch norm: %s", out);
  CHECK(!dir_exists(W "/bad_adabn"), "nothing written for the refused runs");
#undef ADABN
}

int main(void) {
  if (!cli_have_lens()) return check_summary();
  TEST("tiny simulations and a finder") CHECK(make_runs(), "lens sim and lens train");
  TEST("each method end to end") test_methods();
  TEST("a progress line on a terminal") test_progress();
  TEST("an interrupted run resumed") test_resume();
  TEST("target images as FITS") test_fits();
  TEST("bad input") test_errors();
  TEST("--method adabn") test_adabn();
  return check_summary();
}
