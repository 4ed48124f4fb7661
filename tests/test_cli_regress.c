/* `lens train --task regress` and `lens predict` on the model it makes, end to end: a network
 * learns two known quantities of an image (a Gaussian blob's width and x position), predicts them
 * on images of another seed with physical means and sigmas, Monte Carlo dropout (--mc) gives the
 * same numbers whatever --threads, --batch or --shard, --samples holds the passes behind the
 * means, --symmetries 8 is the average of eight plain predictions on the turned images, an
 * interrupted run resumes to the same weights, and misuse is named. */
#define _POSIX_C_SOURCE 200809L
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "cli_check.h"

#define D "build/regress_t"
#define N 320
#define SIDE 12

static float test_targets[N * 2];
static float val_targets[N * 2];

/* images.npy and labels.csv (index,width,center_x,label) of N blobs from `seed` */
static void make_set(uint64_t seed, const char *npy, const char *csv, float *keep) {
  lensnet_tensor t;
  lensnet_error err;
  lensnet_rng rng;
  size_t shape[4] = {N, 1, SIDE, SIDE}, i;
  FILE *f = fopen(csv, "w");
  int y, x;
  lensnet_tensor_alloc(&t, 4, shape, &err);
  lensnet_rng_seed(&rng, seed);
  if (f) fprintf(f, "index,width,center_x,label\n");
  for (i = 0; i < N; i++) {
    double width = 1.0 + 1.5 * lensnet_rng_uniform(&rng), cx = 3.5 + 4.0 * lensnet_rng_uniform(&rng);
    for (y = 0; y < SIDE; y++)
      for (x = 0; x < SIDE; x++) {
        double r2 = (x - cx) * (x - cx) + (y - 5.5) * (y - 5.5);
        t.data[i * SIDE * SIDE + (size_t)(y * SIDE + x)] = (float)(exp(-0.5 * r2 / (width * width)) + 0.02 * lensnet_rng_normal(&rng));
      }
    if (f) fprintf(f, "%lu,%.9g,%.9g,1\n", (unsigned long)i, width, cx);
    if (keep) { keep[i * 2] = (float)width; keep[i * 2 + 1] = (float)cx; }
  }
  if (f) fclose(f);
  lensnet_npy_write(npy, &t, &err);
  lensnet_tensor_free(&t);
}

static void make_inputs(void) {
  FILE *f;
  CHECK(cli_shell("rm -rf " D " && mkdir -p " D) == 0, "fresh work folder");
  make_set(31, D "/train.npy", D "/train.csv", NULL);
  make_set(32, D "/test.npy", D "/test.csv", test_targets);
  make_set(33, D "/val.npy", D "/val.csv", val_targets);
  f = fopen(D "/arch.txt", "w");
  if (f) {
    fputs("input 1 12 12\nconv2d name=c1 out=8 kernel=3 padding=1\nrelu\nmaxpool kernel=2\n"
          "conv2d name=c2 out=16 kernel=3 padding=1\nrelu\nmaxpool kernel=2\nflatten\ndropout p=0.1\n"
          "dense name=d1 out=32\nrelu\ndropout p=0.1\ndense name=d2 out=4\n", f);
    fclose(f);
  }
}

#define TRAIN "train --task regress --targets width,center_x --loss nll --arch " D "/arch.txt --data " D "/train.npy --labels " D \
              "/train.csv --batch 16 --lr 0.003 --val-fraction 0.25"

static void test_train(void) {
  char out[8192];
  int rc = cli_lens_output(out, sizeof out, TRAIN " --epochs 25 --out " D "/run");
  lensnet_model *m = NULL;
  lensnet_error err;
  lensnet_regression r;
  CHECK(rc == 0, "lens train --task regress: exit %d: %s", rc, out);
  CHECK(strstr(out, "val loss") && strstr(out, "rms"), "the progress reports the rms error");
  CHECK(cli_file_has(D "/run/history.csv", "epoch,lr,train_loss,train_rms,val_loss,val_rms,seconds"), "history.csv names the rms columns");
  if (lensnet_model_load(D "/run/best.safetensors", &m, &err) == LENSNET_OK) {
    CHECK(lensnet_model_regression(m, &r, &err) == LENSNET_OK && r.count == 2 && r.nll && !strcmp(r.names[0], "width") &&
              !strcmp(r.names[1], "center_x"),
          "best.safetensors is a regression model of width and center_x: %s", err.message);
    CHECK(!lensnet_model_meta(m, "classes"), "with no class names");
    lensnet_model_free(m);
  } else CHECK(0, "load best.safetensors: %s", err.message);
}

/* The means of the test set against the truth, in units of each target's spread there. */
static void test_predict(void) {
  char out[8192];
  lensnet_csv t;
  lensnet_error err;
  int rc = cli_lens_output(out, sizeof out, "predict --model " D "/run/best.safetensors " D "/test.npy --csv " D "/pred.csv");
  CHECK(rc == 0, "lens predict on a regression model: exit %d: %s", rc, out);
  if (lensnet_csv_read(D "/pred.csv", &t, &err) != LENSNET_OK) { CHECK(0, "read pred.csv: %s", err.message); return; }
  CHECK(!strcmp(t.header, "input,width,width_sigma,center_x,center_x_sigma"), "header %s", t.header);
  if (t.rows == N + 1 && t.cols == 5) {
    size_t i, j;
    double sq[2] = {0, 0}, var[2] = {0, 0}, mean[2] = {0, 0}, within[2] = {0, 0};
    for (i = 0; i < N; i++) for (j = 0; j < 2; j++) mean[j] += test_targets[i * 2 + j] / N;
    for (i = 0; i < N; i++) {
      for (j = 0; j < 2; j++) {
        double mu = 0, sigma = 0, e;
        lensnet_csv_number(&t, i + 1, 1 + 2 * j, &mu, &err);
        lensnet_csv_number(&t, i + 1, 2 + 2 * j, &sigma, &err);
        e = mu - test_targets[i * 2 + j];
        sq[j] += e * e;
        var[j] += (test_targets[i * 2 + j] - mean[j]) * (test_targets[i * 2 + j] - mean[j]);
        within[j] += fabs(e) < 3 * sigma;
      }
    }
    for (j = 0; j < 2; j++) {
      double rms = sqrt(sq[j] / var[j]);
      CHECK(rms < 0.3, "target %lu: rms error %.3f of the spread on images of another seed (predicting the mean: 1)", (unsigned long)j, rms);
      /* a Gaussian would put 99.7% within 3 sigma; a sigma that means something keeps most there */
      CHECK(within[j] / N > 0.8, "target %lu: %.0f%% of the errors within 3 sigma", (unsigned long)j, 100 * within[j] / N);
      printf("   target %lu: rms error %.3f of the spread, %.0f%% within 3 sigma\n", (unsigned long)j, rms, 100 * within[j] / N);
    }
  } else CHECK(0, "pred.csv has %lu rows of %lu cells", (unsigned long)t.rows, (unsigned long)t.cols);
  lensnet_csv_free(&t);
}

/* Cells (row, col) of two CSV files agree to the last printed digit over rows 1..N, cols from cols[]. */
static size_t same_cells(const char *a_path, const char *b_path, const int *cols, size_t ncols) {
  lensnet_csv a, b;
  lensnet_error err;
  size_t i, c, agree = 0;
  if (lensnet_csv_read(a_path, &a, &err) != LENSNET_OK) return 0;
  if (lensnet_csv_read(b_path, &b, &err) != LENSNET_OK) { lensnet_csv_free(&a); return 0; }
  for (i = 1; i <= N && i < a.rows && i < b.rows; i++)
    for (c = 0; c < ncols; c++) {
      double x = 0, y = 1;
      lensnet_csv_number(&a, i, (size_t)cols[c], &x, &err);
      lensnet_csv_number(&b, i, (size_t)cols[c], &y, &err);
      agree += x == y;
    }
  lensnet_csv_free(&a);
  lensnet_csv_free(&b);
  return agree;
}

static void test_mc(void) {
  static const int means[2] = {1, 3}, sigmas[2] = {2, 4};
  char out[8192];
  int rc = cli_lens_output(out, sizeof out, "predict --model " D "/run/best.safetensors " D "/test.npy --mc 16 --seed 3 --threads 2 --csv " D
                                           "/mc.csv");
  lensnet_tensor s;
  lensnet_csv t;
  lensnet_error err;
  size_t agree;
  CHECK(rc == 0, "--mc 16: exit %d: %s", rc, out);
  /* the means from the network without dropout, the sigmas from the dropout passes */
  CHECK(cli_lens("predict --model " D "/run/best.safetensors " D "/test.npy --csv " D "/nomc.csv") == 0 &&
            cli_lens("predict --model " D "/run/best.safetensors " D "/test.npy --mc 16 --seed 3 --mc-mean --csv " D "/mcmean.csv --samples " D
                     "/samples.npy") == 0,
        "one plain pass, and --mc 16 --mc-mean");
  agree = same_cells(D "/mc.csv", D "/nomc.csv", means, 2);
  CHECK(agree == 2 * N, "--mc's means are the plain pass's (%lu of %d)", (unsigned long)agree, 2 * N);
  agree = same_cells(D "/mc.csv", D "/mcmean.csv", sigmas, 2);
  CHECK(agree == 2 * N, "--mc-mean changes the means only: the same sigmas (%lu of %d)", (unsigned long)agree, 2 * N);
  agree = same_cells(D "/mc.csv", D "/mcmean.csv", means, 2);
  CHECK(agree < N, "--mc-mean's means are not the plain pass's (%lu of %d agree)", (unsigned long)agree, 2 * N);
  rc = cli_lens_output(out, sizeof out, "predict --model " D "/run/best.safetensors " D "/test.npy --mc-mean");
  CHECK(rc == 2 && strstr(out, "--mc N"), "--mc-mean without --mc refused: exit %d: %s", rc, out);
  CHECK(cli_lens("predict --model " D "/run/best.safetensors " D "/test.npy --mc 16 --seed 3 --threads 1 --batch 5 --csv " D "/mc1.csv") == 0 &&
            cli_same_file(D "/mc.csv", D "/mc1.csv"),
        "the same numbers with one thread and another batch");
  CHECK(cli_lens("predict --model " D "/run/best.safetensors " D "/test.npy --mc 16 --seed 3 --shard 1/2 --csv " D "/mc_s1.csv") == 0 &&
            cli_shell("tail -n +2 " D "/mc_s1.csv > " D "/a.txt && tail -n +162 " D "/mc.csv > " D "/b.txt && cmp -s " D "/a.txt " D "/b.txt") == 0,
        "a shard's rows are those of the whole run");
  CHECK(cli_lens("predict --model " D "/run/best.safetensors " D "/test.npy --mc 16 --seed 4 --csv " D "/mc4.csv") == 0 &&
            !cli_same_file(D "/mc.csv", D "/mc4.csv"),
        "another seed, other passes");
  if (lensnet_npy_read(D "/samples.npy", &s, &err) == LENSNET_OK) {
    CHECK(s.ndim == 3 && s.shape[0] == N && s.shape[1] == 16 && s.shape[2] == 2, "samples [320, 16, 2]");
    if (s.ndim == 3 && s.shape[0] == N && lensnet_csv_read(D "/mcmean.csv", &t, &err) == LENSNET_OK) {
      size_t i, k, j, agree = 0;
      for (i = 0; i < N; i++)
        for (j = 0; j < 2; j++) {
          double sum = 0, mu = 0;
          for (k = 0; k < 16; k++) sum += s.data[(i * 16 + k) * 2 + j];
          lensnet_csv_number(&t, i + 1, 1 + 2 * j, &mu, &err);
          agree += fabs(sum / 16 - mu) <= 1e-5 * (fabs(mu) + 1);
        }
      CHECK(agree == 2 * N, "--mc-mean: each mean is the average of its passes (%lu of %d)", (unsigned long)agree, 2 * N);
      lensnet_csv_free(&t);
    }
    { /* the library's recipe gives lens predict's passes: for object i, 16 copies of the prepared
       * image through lensnet_model_forward_mc with lensnet_mc_object_seed(3, i), each output
       * turned physical (lensnet_regression_physical), equal to samples.npy to the bit */
      lensnet_model *m = NULL;
      lensnet_tensor x;
      lensnet_regression reg;
      lensnet_cutout_desc cd;
      int minmax = 0;
      size_t i, k, j, per, bad = 0;
      float *copies = NULL, *outs = NULL, *ws = NULL;
      if (lensnet_model_load(D "/run/best.safetensors", &m, &err) == LENSNET_OK && lensnet_npy_read(D "/test.npy", &x, &err) == LENSNET_OK) {
        per = m->in_c * m->in_h * m->in_w;
        lensnet_model_preprocess(m, &minmax, NULL, &err);
        memset(&cd, 0, sizeof cd);
        cd.minmax = minmax;
        copies = (float *)malloc(16 * per * sizeof(float));
        outs = (float *)malloc(16 * m->out_features * sizeof(float));
        ws = (float *)malloc(lensnet_model_workspace_floats(m, 16) * sizeof(float));
        if (copies && outs && ws && lensnet_model_regression(m, &reg, &err) == LENSNET_OK)
          for (i = 0; i < 3; i++) {
            lensnet_cutout_scale(m, &cd, x.data + i * per, NULL);
            for (k = 0; k < 16; k++) lensnet_view(x.data + i * per, copies + k * per, m->in_c, m->in_h, m->in_w, 1, k);
            if (lensnet_model_forward_mc(m, 16, copies, outs, ws, lensnet_mc_object_seed(3, i), &err) != LENSNET_OK) { bad++; break; }
            for (k = 0; k < 16; k++)
              for (j = 0; j < 2; j++) bad += (float)lensnet_regression_physical(&reg, j, outs[k * m->out_features + j]) != s.data[(i * 16 + k) * 2 + j];
          }
        else bad++;
        CHECK(bad == 0, "lensnet_mc_object_seed and lensnet_model_forward_mc give lens predict --mc's passes of objects 0-2 (%lu differ)",
              (unsigned long)bad);
        free(copies); free(outs); free(ws);
        lensnet_tensor_free(&x);
      } else CHECK(0, "load the model and test.npy: %s", err.message);
      lensnet_model_free(m);
    }
    lensnet_tensor_free(&s);
  } else CHECK(0, "read samples.npy: %s", err.message);
}

/* --symmetries 8 against its definition: the model renamed so that its targets are a scalar
 * (width as theta_E) and a spin-2 component (center_x as e1, negated by a transpose); eight plain
 * predictions on images turned here, each e1 negated when transposed, averaged. */
static void test_symmetries(void) {
  static const char *const names[8] = {"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"};
  char out[8192];
  lensnet_tensor x, turned;
  lensnet_csv sym, half, plain[8];
  lensnet_error err;
  size_t i, j, n = SIDE, agree = 0, loaded = 0;
  int t, rc;
  CHECK(cli_lens("info " D "/run/best.safetensors --set regress.targets=theta_E,e1 --out " D "/renamed.safetensors > /dev/null") == 0,
        "the model with targets renamed theta_E,e1");
  if (lensnet_npy_read(D "/test.npy", &x, &err) != LENSNET_OK) { CHECK(0, "read test.npy: %s", err.message); return; }
  if (lensnet_tensor_alloc(&turned, 4, x.shape, &err) != LENSNET_OK) { lensnet_tensor_free(&x); CHECK(0, "alloc"); return; }
  for (t = 0; t < 8; t++) {
    char path[256];
    size_t k, r, c;
    for (k = 0; k < N; k++) /* transform t as lensnet.h defines it, by where each output pixel reads */
      for (r = 0; r < n; r++)
        for (c = 0; c < n; c++) {
          size_t row = t & 1 ? c : r, col = t & 1 ? r : c;
          if (t & 4) row = n - 1 - row;
          if (t & 2) col = n - 1 - col;
          turned.data[k * n * n + r * n + c] = x.data[k * n * n + row * n + col];
        }
    snprintf(path, sizeof path, D "/%s.npy", names[t]);
    lensnet_npy_write(path, &turned, &err);
    rc = cli_lens("predict --model " D "/renamed.safetensors %s --csv " D "/%s.csv", path, names[t]);
    snprintf(path, sizeof path, D "/%s.csv", names[t]);
    if (rc == 0 && lensnet_csv_read(path, &plain[t], &err) == LENSNET_OK) loaded++;
  }
  lensnet_tensor_free(&x);
  lensnet_tensor_free(&turned);
  rc = cli_lens_output(out, sizeof out, "predict --model " D "/renamed.safetensors " D "/test.npy --symmetries 8 --csv " D "/sym.csv");
  CHECK(rc == 0 && loaded == 8 && lensnet_csv_read(D "/sym.csv", &sym, &err) == LENSNET_OK, "--symmetries 8 and the eight plain runs: exit %d: %s",
        rc, out);
  if (rc != 0 || loaded != 8) return;
  for (i = 0; i < N; i++)
    for (j = 0; j < 2; j++) {
      double sum = 0, v = 0, mu = 0;
      for (t = 0; t < 8; t++) {
        lensnet_csv_number(&plain[t], i + 1, 1 + 2 * j, &v, &err);
        sum += j == 1 && (t & 1) ? -v : v;
      }
      lensnet_csv_number(&sym, i + 1, 1 + 2 * j, &mu, &err);
      agree += fabs(sum / 8 - mu) <= 1e-5 * (fabs(mu) + 1);
    }
  CHECK(agree == 2 * N, "each mean is the average of the eight turned predictions, turned back (%lu of %d)", (unsigned long)agree, 2 * N);
  /* --symmetries 2: the image and its half turn (transform 6), which changes neither target */
  rc = cli_lens("predict --model " D "/renamed.safetensors " D "/test.npy --symmetries 2 --csv " D "/sym2.csv");
  agree = 0;
  if (rc == 0 && lensnet_csv_read(D "/sym2.csv", &half, &err) == LENSNET_OK) {
    for (i = 0; i < N; i++)
      for (j = 0; j < 2; j++) {
        double a = 0, b = 0, mu = 0;
        lensnet_csv_number(&plain[0], i + 1, 1 + 2 * j, &a, &err);
        lensnet_csv_number(&plain[6], i + 1, 1 + 2 * j, &b, &err);
        lensnet_csv_number(&half, i + 1, 1 + 2 * j, &mu, &err);
        agree += fabs((a + b) / 2 - mu) <= 1e-5 * (fabs(mu) + 1);
      }
    lensnet_csv_free(&half);
  }
  CHECK(rc == 0 && agree == 2 * N, "--symmetries 2: each mean is the average of the image's and its half turn's (%lu of %d)",
        (unsigned long)agree, 2 * N);
  for (t = 0; t < 8; t++) lensnet_csv_free(&plain[t]);
  lensnet_csv_free(&sym);
  CHECK(cli_lens("predict --model " D "/renamed.safetensors " D "/test.npy --symmetries 8 --mc 16 --threads 2 --csv " D "/symmc.csv") == 0 &&
            cli_lens("predict --model " D "/renamed.safetensors " D "/test.npy --symmetries 8 --mc 16 --threads 1 --batch 7 --csv " D "/symmc1.csv") == 0 &&
            cli_same_file(D "/symmc.csv", D "/symmc1.csv") && !cli_same_file(D "/symmc.csv", D "/sym.csv"),
        "--symmetries 8 --mc 16: the same numbers with one thread and another batch");
  {
    static const int means[2] = {1, 3};
    size_t same = same_cells(D "/symmc.csv", D "/sym.csv", means, 2);
    CHECK(same == 2 * N, "--symmetries 8 --mc 16: the means are the eight plain passes' (%lu of %d)", (unsigned long)same, 2 * N);
  }
  rc = cli_lens_output(out, sizeof out, "predict --model " D "/renamed.safetensors " D "/test.npy --symmetries 8 --mc 12");
  CHECK(rc == 2 && strstr(out, "multiple of 8"), "--mc 12 with --symmetries 8 refused: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "predict --model " D "/run/best.safetensors " D "/test.npy --symmetries 8");
  CHECK(rc == 2 && strstr(out, "'width'"), "a target without a known symmetry (width) refused by name: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "predict --model " D "/renamed.safetensors " D "/test.npy --symmetries 2 --mc 3");
  CHECK(rc == 2 && strstr(out, "multiple of 2"), "--mc 3 with --symmetries 2 refused: exit %d: %s", rc, out);
}

static void test_resume(void) { /* with --nll-beta, which the checkpoint must carry */
  CHECK(cli_lens(TRAIN " --nll-beta 0.5 --epochs 4 --out " D "/full > /dev/null 2>&1") == 0, "uninterrupted 4 epochs");
  CHECK(cli_lens(TRAIN " --nll-beta 0.5 --epochs 4 --out " D "/cut --interrupt_after 2 > /dev/null 2>&1") == 1,
        "stopped after epoch 2 (exit 1, as a kill would leave it)");
  CHECK(cli_lens("train --resume " D "/cut > /dev/null 2>&1") == 0, "resumed");
  CHECK(cli_shell("cut -d, -f1-6 " D "/full/history.csv > " D "/h1 && cut -d, -f1-6 " D "/cut/history.csv > " D "/h2 && cmp -s " D "/h1 " D "/h2") == 0,
        "the same losses epoch by epoch");
  {
    lensnet_safetensors a, b;
    lensnet_error err;
    size_t i;
    int same = 0;
    if (lensnet_safetensors_read(D "/full/best.safetensors", &a, &err) == LENSNET_OK) {
      if (lensnet_safetensors_read(D "/cut/best.safetensors", &b, &err) == LENSNET_OK) {
        same = a.count == b.count;
        for (i = 0; same && i < a.count; i++) {
          const lensnet_tensor *tb = lensnet_safetensors_find(&b, a.tensors[i].name);
          same = tb && !memcmp(tb->data, a.tensors[i].tensor.data, lensnet_tensor_count(tb) * sizeof(float));
        }
        lensnet_safetensors_free(&b);
      }
      lensnet_safetensors_free(&a);
    }
    CHECK(same, "the resumed run ends on the same weights, bit for bit");
  }
  { /* a checkpoint from before --nll-beta (no train.nll_beta) resumes as the plain NLL it ran with */
    lensnet_safetensors st;
    lensnet_error err;
    char out[8192];
    int rc;
    cli_shell("rm -rf " D "/old && mkdir -p " D "/old && cp " D "/full/history.csv " D "/old/");
    if (lensnet_safetensors_read(D "/full/checkpoint.safetensors", &st, &err) == LENSNET_OK) {
      lensnet_safetensors_set_meta(&st, "train.nll_beta", NULL);
      lensnet_safetensors_write(D "/old/checkpoint.safetensors", &st, &err);
      lensnet_safetensors_free(&st);
    }
    rc = cli_lens_output(out, sizeof out, "train --resume " D "/old --epochs 5");
    CHECK(rc == 0 && strstr(out, "epoch 5/5") && strstr(out, " rms ") && !strstr(out, " acc "),
          "an older checkpoint without train.nll_beta resumes, its progress in rms: exit %d: %s", rc, out);
  }
}

/* The figures of lens eval --task regress, recomputed here from pred.csv by their definitions:
 * error = mean - truth; a true value is inside the 68% interval when |error| <= 0.9945 sigma. */
static void test_eval(void) {
  char out[8192];
  lensnet_csv p, m;
  lensnet_error err;
  int rc = cli_lens_output(out, sizeof out, "eval --task regress --scores " D "/pred.csv --labels " D "/test.csv --by width --bins 2 --out " D "/ev");
  CHECK(rc == 0 && strstr(out, "320 objects, 2 targets") && strstr(out, "cover68"), "lens eval --task regress: exit %d: %s", rc, out);
  CHECK(cli_shell("test -s " D "/ev/metrics.json && test -s " D "/ev/coverage.csv") == 0, "metrics.json and coverage.csv written");
  if (lensnet_csv_read(D "/pred.csv", &p, &err) == LENSNET_OK && lensnet_csv_read(D "/ev/metrics.csv", &m, &err) == LENSNET_OK) {
    size_t j, i;
    CHECK(m.rows == 1 + 2 + 2 * 2, "metrics.csv: 2 targets overall and in 2 bins of width (%lu rows)", (unsigned long)m.rows - 1);
    for (j = 0; j < 2; j++) {
      double bias = 0, sq = 0, c68 = 0, c95 = 0, got[4] = {0, 0, 0, 0};
      for (i = 0; i < N; i++) {
        double mu = 0, sigma = 0, e;
        lensnet_csv_number(&p, i + 1, 1 + 2 * j, &mu, &err);
        lensnet_csv_number(&p, i + 1, 2 + 2 * j, &sigma, &err);
        e = mu - test_targets[i * 2 + j];
        bias += e / N;
        sq += e * e / N;
        c68 += fabs(e) <= 0.99445788 * sigma;
        c95 += fabs(e) <= 1.95996398 * sigma;
      }
      lensnet_csv_number(&m, 1 + j, 5, &got[0], &err); /* bias */
      lensnet_csv_number(&m, 1 + j, 6, &got[1], &err); /* rms */
      lensnet_csv_number(&m, 1 + j, 11, &got[2], &err); /* coverage68 */
      lensnet_csv_number(&m, 1 + j, 12, &got[3], &err); /* coverage95 */
      /* the truth in test.csv is printed to 9 digits, the errors here use the float targets */
      CHECK(fabs(got[0] - bias) < 1e-5 && fabs(got[1] - sqrt(sq)) < 1e-5 && fabs(got[2] - c68 / N) < 0.5 / N + 1e-9 &&
                fabs(got[3] - c95 / N) < 0.5 / N + 1e-9,
            "target %lu: bias %.6g (%.6g), rms %.6g (%.6g), coverage %.4f/%.4f (%.4f/%.4f)", (unsigned long)j, got[0], bias, got[1], sqrt(sq), got[2],
            got[3], c68 / N, c95 / N);
    }
    lensnet_csv_free(&m);
    lensnet_csv_free(&p);
  } else CHECK(0, "read pred.csv and metrics.csv: %s", err.message);
  /* rows are matched by object index (lens predict's input FILE.npy[i] against the labels' index):
   * the predictions in reverse order give the same figures; without indices they are matched in order */
  cli_shell("(head -n 1 " D "/pred.csv; tail -n +2 " D "/pred.csv | tac) > " D "/pred_rev.csv");
  rc = cli_lens_output(out, sizeof out, "eval --task regress --scores " D "/pred_rev.csv --labels " D "/test.csv --by width --bins 2 --out " D "/ev_rev");
  CHECK(rc == 0 && strstr(out, "rows joined by index"), "reversed predictions matched by index: %s", out);
  CHECK(cli_shell("cmp -s " D "/ev/metrics.csv " D "/ev_rev/metrics.csv") == 0, "the same metrics.csv from the reversed predictions");
  /* a column of one value (label: 1 for every object) fills every quantile bin: one group, said */
  rc = cli_lens_output(out, sizeof out, "eval --task regress --scores " D "/pred.csv --labels " D "/test.csv --by label --bins 4 --out " D "/ev_tied");
  CHECK(rc == 0 && strstr(out, "--by label: tied values fill whole quantile bins, merged into the next: 1 group of 4") &&
            cli_shell("test $(grep -c ',label_bin' " D "/ev_tied/metrics.csv) -eq 2") == 0,
        "a constant --by column: one group per target, with a note: %s", out);
  cli_shell("head -n 101 " D "/pred.csv > " D "/pred_100.csv");
  rc = cli_lens_output(out, sizeof out, "eval --task regress --scores " D "/pred_100.csv --labels " D "/test.csv --out " D "/ev_100");
  CHECK(rc == 0 && strstr(out, "100 objects"), "the predictions of 100 objects against labels of more: %s", out);
  cli_shell("sed 's/^[^,]*\\[\\([0-9]*\\)\\]/\\1/' " D "/pred_100.csv | sed '1s/^input/name/' > " D "/pred_noidx.csv");
  rc = cli_lens_output(out, sizeof out, "eval --task regress --scores " D "/pred_noidx.csv --labels " D "/test.csv --out " D "/ev_noidx");
  CHECK(rc == 1 && strstr(out, "matched in order"), "no indices and other row counts: refused, saying rows are matched in order: %s", out);
  cli_shell("cp " D "/pred_100.csv " D "/ev_100/metrics.csv");
  rc = cli_lens_output(out, sizeof out, "eval --task regress --scores " D "/ev_100/metrics.csv --labels " D "/test.csv --out " D "/ev_100");
  CHECK(rc == 2 && strstr(out, "would overwrite the input") && cli_shell("cmp -s " D "/pred_100.csv " D "/ev_100/metrics.csv") == 0,
        "predictions in --out under an output's name: refused, intact: %s", out);
}

/* lens calibrate --means on the validation seed, checked by what least squares guarantees on the
 * data it was fitted to: width (a target of no known symmetry: an offset and a slope) leaves
 * errors that sum to 0; center_x (a position without its partner: a slope through 0) leaves errors
 * orthogonal to the means; neither rms rises; and the corrected model's means are offset + slope
 * times the old ones, as its metadata says. Then anti-related labels are refused by name. */
/* lens sim's FITS files given to lens predict in reverse order: matched by their file numbers
 * (lens eval's join), the same metrics as in order; they were once joined row by row. */
static void test_eval_fits_order(void) {
  char out[4096];
  int rc;
  CHECK(cli_lens("sim --preset ensai-modelling --n 6 --seed 5 --fits --out " D "/fits_set > /dev/null 2>&1") == 0 &&
            cli_lens("predict --threads 1 --model weights/ensai-sim.safetensors " D "/fits_set/fits/*.fits > " D "/fits_fwd.csv 2>/dev/null") == 0 &&
            cli_lens("predict --threads 1 --model weights/ensai-sim.safetensors $(ls " D "/fits_set/fits/*.fits | sort -r) > " D
                     "/fits_rev.csv 2>/dev/null") == 0,
        "lens sim --fits, and lens predict on its files in order and reversed");
  rc = cli_lens_output(out, sizeof out, "eval --task regress --scores " D "/fits_rev.csv --labels " D "/fits_set/labels.csv --out " D "/ev_fits_rev");
  CHECK(rc == 0 && strstr(out, "lens sim's fits/NNNNNNN.fits"), "reversed FITS predictions joined by their file numbers: %s", out);
  CHECK(cli_lens("eval --task regress --scores " D "/fits_fwd.csv --labels " D "/fits_set/labels.csv --out " D "/ev_fits_fwd > /dev/null 2>&1") == 0 &&
            cli_shell("cmp -s " D "/ev_fits_fwd/metrics.csv " D "/ev_fits_rev/metrics.csv") == 0,
        "and give the metrics.csv of the predictions in order");
}

/* A target whose name holds a backslash and a double quote (th\E"x): metrics.json, which once
 * wrote names as they came, parses and names it. */
static void test_eval_odd_name(void) {
  char out[4096], text[8192];
  lensnet_json *j = NULL;
  lensnet_error err;
  const lensnet_json *targets = NULL;
  cli_shell("printf 'input,th\\\\E\"x,th\\\\E\"x_sigma\\nx.npy[0],1.0,0.1\\nx.npy[1],2.0,0.1\\nx.npy[2],3.5,0.2\\n' > " D "/odd_pred.csv && "
            "printf 'index,th\\\\E\"x\\n0,1.05\\n1,2.1\\n2,3.0\\n' > " D "/odd_labels.csv");
  CHECK(cli_lens_output(out, sizeof out, "eval --task regress --scores " D "/odd_pred.csv --labels " D "/odd_labels.csv --out " D "/ev_odd") == 0,
        "lens eval --task regress on a target named th\\E\"x: %s", out);
  cli_text(D "/ev_odd/metrics.json", text, sizeof text);
  CHECK(lensnet_json_parse(text, strlen(text), &j, &err) == LENSNET_OK && (targets = lensnet_json_get(j, "targets")) != NULL &&
            lensnet_json_get(targets, "th\\E\"x") != NULL,
        "metrics.json parses and holds the name: %s", text);
  lensnet_json_free(j);
}

static void test_calibrate_means(void) {
  char out[8192];
  lensnet_csv before, after;
  lensnet_model *m = NULL;
  lensnet_regression r;
  lensnet_error err;
  int rc = cli_lens_output(out, sizeof out, "calibrate --model " D "/run/best.safetensors --scores " D "/val_pred.csv --labels " D "/val.csv --means --out " D
                                            "/calibrated_means.safetensors");
  CHECK(rc == 0 && strstr(out, "regress.slope") && strstr(out, "regress.offset") && strstr(out, "->rms"), "lens calibrate --means: exit %d: %s", rc, out);
  printf("%s", out);
  rc = cli_lens("predict --model " D "/calibrated_means.safetensors " D "/val.npy --csv " D "/val_means.csv");
  if (rc == 0 && lensnet_model_load(D "/calibrated_means.safetensors", &m, &err) == LENSNET_OK && lensnet_model_regression(m, &r, &err) == LENSNET_OK &&
      lensnet_csv_read(D "/val_pred.csv", &before, &err) == LENSNET_OK) {
    if (lensnet_csv_read(D "/val_means.csv", &after, &err) == LENSNET_OK) {
      double sum_e = 0, dot_e = 0, dot_m = 0, sq[2][2] = {{0, 0}, {0, 0}};
      size_t i, j, related = 0;
      for (i = 0; i < N; i++)
        for (j = 0; j < 2; j++) {
          double m0 = 0, m1 = 0, y = val_targets[i * 2 + j];
          lensnet_csv_number(&before, i + 1, 1 + 2 * j, &m0, &err);
          lensnet_csv_number(&after, i + 1, 1 + 2 * j, &m1, &err);
          related += fabs(m1 - (r.offset[j] + r.slope[j] * m0)) <= 1e-5 * (fabs(m1) + 1);
          sq[j][0] += (m0 - y) * (m0 - y);
          sq[j][1] += (m1 - y) * (m1 - y);
          if (j == 0) sum_e += y - m1;
          else { dot_e += m1 * (y - m1); dot_m += m1 * m1; }
        }
      CHECK(related == 2 * N, "the corrected means are offset + slope x the old ones (%lu of %d)", (unsigned long)related, 2 * N);
      CHECK(r.offset[1] == 0 && r.slope[1] > 0 && r.slope[0] > 0, "center_x: a slope through 0 (offset %g, slope %g); width: slope %g", r.offset[1],
            r.slope[1], r.slope[0]);
      CHECK(fabs(sum_e / N) < 1e-5, "width: the corrected errors average %.3g (least squares with an offset: 0)", sum_e / N);
      CHECK(fabs(dot_e / dot_m) < 1e-5, "center_x: errors . means / means . means = %.3g (least squares through 0: 0)", dot_e / dot_m);
      CHECK(sq[0][1] <= sq[0][0] * (1 + 1e-6) && sq[1][1] <= sq[1][0] * (1 + 1e-6), "neither rms rises on the fitted set: width %.4g -> %.4g, "
            "center_x %.4g -> %.4g", sqrt(sq[0][0] / N), sqrt(sq[0][1] / N), sqrt(sq[1][0] / N), sqrt(sq[1][1] / N));
      lensnet_csv_free(&after);
    } else CHECK(0, "read val_means.csv: %s", err.message);
    lensnet_csv_free(&before);
  } else CHECK(0, "predict with the model calibrated with --means: exit %d", rc);
  lensnet_model_free(m);
  cli_shell("awk -F, 'BEGIN{OFS=\",\"} NR>1{$2=4-$2} {print}' " D "/val.csv > " D "/val_flipped.csv");
  rc = cli_lens_output(out, sizeof out, "calibrate --model " D "/run/best.safetensors --scores " D "/val_pred.csv --labels " D
                                        "/val_flipped.csv --means --out " D "/y.safetensors");
  CHECK(rc == 1 && strstr(out, "width does not rise") && cli_shell("test -e " D "/y.safetensors") != 0,
        "labels that fall as the means rise: refused by name, nothing written: %s", out);
  /* labels unrelated to the means (width drawn afresh): a slope far from 1, said */
  cli_shell("awk -F, 'BEGIN{OFS=\",\"; srand(7)} NR>1{$2=1+1.5*rand()} {print}' " D "/val.csv > " D "/val_random.csv");
  rc = cli_lens_output(out, sizeof out, "calibrate --model " D "/run/best.safetensors --scores " D "/val_pred.csv --labels " D
                                        "/val_random.csv --means --out " D "/r.safetensors");
  CHECK(strstr(out, "far from 1") && strstr(out, "width"), "unrelated labels: a note that the slope is far from 1: exit %d: %s", rc, out);
  /* predictions without sigmas (an mse model's plain pass): --means alone corrects them, the scale stays */
  cli_shell("awk -F, 'BEGIN{OFS=\",\"} NR>1{$3=0; $5=0} {print}' " D "/val_pred.csv > " D "/val_nosigma.csv");
  rc = cli_lens_output(out, sizeof out, "calibrate --model " D "/run/best.safetensors --scores " D "/val_nosigma.csv --labels " D "/val.csv --out " D
                                        "/z.safetensors");
  CHECK(rc == 1 && strstr(out, "every sigma of width is 0") && strstr(out, "--means"), "no sigmas, no --means: refused, --means named: %s", out);
  rc = cli_lens_output(out, sizeof out, "calibrate --model " D "/run/best.safetensors --scores " D "/val_nosigma.csv --labels " D
                                        "/val.csv --means --out " D "/z.safetensors");
  CHECK(rc == 0 && strstr(out, "every sigma 0") && strstr(out, "regress.scale 1,1;"), "no sigmas with --means: the means corrected, the scale kept: "
        "exit %d: %s", rc, out);
  /* --levels 68,95: both intervals' shares nearest their levels; another level is refused */
  rc = cli_lens_output(out, sizeof out, "calibrate --model " D "/run/best.safetensors --scores " D "/val_pred.csv --labels " D
                                        "/val.csv --levels 68,95 --out " D "/lv.safetensors");
  CHECK(rc == 0 && strstr(out, "regress.scale"), "--levels 68,95: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "calibrate --model " D "/run/best.safetensors --scores " D "/val_pred.csv --labels " D
                                        "/val.csv --levels 90 --out " D "/lv2.safetensors");
  CHECK(rc == 2 && strstr(out, "68,95"), "--levels 90: refused, the choices named: exit %d: %s", rc, out);
  /* --predicted-with records the settings the sigmas were fitted for; lens predict says when it
   * runs the model otherwise (val_pred.csv came from one plain pass) */
  rc = cli_lens_output(out, sizeof out, "calibrate --model " D "/run/best.safetensors --scores " D "/val_pred.csv --labels " D
                                        "/val.csv --predicted-with \"--symmetries 1\" --out " D "/pw.safetensors");
  CHECK(rc == 0, "--predicted-with: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "predict --model " D "/pw.safetensors " D "/val.npy --csv " D "/pw_plain.csv");
  CHECK(rc == 0 && !strstr(out, "calibrated on predictions"), "predicted as calibrated: no note: %s", out);
  rc = cli_lens_output(out, sizeof out, "predict --model " D "/pw.safetensors " D "/val.npy --mc 4 --csv " D "/pw_mc.csv");
  CHECK(rc == 0 && strstr(out, "calibrated on predictions made with one plain pass") && strstr(out, "made with --mc 4"),
        "predicted otherwise: a note naming both: %s", out);
  rc = cli_lens_output(out, sizeof out, "predict --model " D "/pw.safetensors " D "/val.npy --mc 20 --symmetries 8 --csv " D "/pw_bad.csv");
  CHECK(rc == 2 && strstr(out, "multiple of 8") && !strstr(out, "calibrated on predictions"),
        "a usage error comes alone, without the calibration note: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "calibrate --model " D "/run/best.safetensors --scores " D "/val_pred.csv --labels " D
                                        "/val.csv --predicted-with \"--mc 24 --resize\" --out " D "/pw2.safetensors");
  CHECK(rc == 2 && strstr(out, "--predicted-with"), "--predicted-with with another option: refused: %s", out);
  /* lens info --set keeps the regression metadata readable */
  rc = cli_lens_output(out, sizeof out, "info " D "/calibrated_means.safetensors --set regress.slope=0,1 --out " D "/bad_slope.safetensors");
  CHECK(rc == 2 && strstr(out, "regress.slope") && strstr(out, "not positive") && cli_shell("test -e " D "/bad_slope.safetensors") != 0,
        "--set regress.slope=0,1: refused, nothing written: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "info " D "/calibrated_means.safetensors --set regress.offset=1 --out " D "/bad_offset.safetensors");
  CHECK(rc == 2 && strstr(out, "regress.offset"), "--set regress.offset with one number for two targets: refused: exit %d: %s", rc, out);
  CHECK(cli_lens("info " D "/calibrated_means.safetensors --set regress.slope=1,1 --out " D "/unit_slope.safetensors > /dev/null") == 0,
        "--set regress.slope=1,1 accepted");
}

/* Calibrated on one seed, evaluated on another: the 68% interval then holds about 68%. */
static void test_calibrate(void) {
  char out[8192];
  lensnet_csv t;
  lensnet_error err;
  int rc = cli_lens_output(out, sizeof out, "predict --model " D "/run/best.safetensors " D "/val.npy --csv " D "/val_pred.csv");
  CHECK(rc == 0, "predictions on the validation seed: %s", out);
  rc = cli_lens_output(out, sizeof out, "calibrate --model " D "/run/best.safetensors --scores " D "/val_pred.csv --labels " D "/val.csv --out " D
                                        "/calibrated.safetensors");
  CHECK(rc == 0 && strstr(out, "regress.scale"), "lens calibrate: exit %d: %s", rc, out);
  printf("%s", out);
  rc = cli_lens_output(out, sizeof out, "predict --model " D "/calibrated.safetensors " D "/test.npy --csv " D "/cal_pred.csv");
  if (rc == 0 && lensnet_csv_read(D "/cal_pred.csv", &t, &err) == LENSNET_OK) {
    size_t j, i;
    for (j = 0; j < 2; j++) {
      double c68 = 0;
      for (i = 0; i < N; i++) {
        double mu = 0, sigma = 0;
        lensnet_csv_number(&t, i + 1, 1 + 2 * j, &mu, &err);
        lensnet_csv_number(&t, i + 1, 2 + 2 * j, &sigma, &err);
        c68 += fabs(mu - test_targets[i * 2 + j]) <= 0.99445788 * sigma;
      }
      /* 320 objects: a binomial 68% has a standard deviation of 2.6%; allow three */
      CHECK(fabs(c68 / N - 0.68) < 0.08, "target %lu: the calibrated 68%% interval holds %.1f%% of another seed's objects", (unsigned long)j,
            100 * c68 / N);
      printf("   target %lu: calibrated 68%% interval holds %.1f%% on the test seed\n", (unsigned long)j, 100 * c68 / N);
    }
    lensnet_csv_free(&t);
  } else CHECK(0, "predict with the calibrated model: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "calibrate --model weights/ou66-sim.safetensors --scores " D "/val_pred.csv --labels " D "/val.csv --out " D
                                        "/x.safetensors");
  CHECK(rc == 2 && strstr(out, "is a classifier") && cli_shell("test -e " D "/x.safetensors") != 0,
        "a finder cannot be calibrated: a usage error, as lens find's with a regression model, nothing written: exit %d: %s", rc, out);
  /* the predictions a calibration used carry the old sigmas: using them again would compound the factor */
  rc = cli_lens_output(out, sizeof out, "calibrate --model " D "/calibrated.safetensors --scores " D "/val_pred.csv --labels " D "/val.csv --out " D
                                        "/calibrated.safetensors");
  CHECK(rc == 1 && strstr(out, "calibrated on these very predictions"), "the same predictions twice: refused: %s", out);
  /* another seed's labels (their indices the same) leave the truth unrelated to the means: said */
  rc = cli_lens_output(out, sizeof out, "calibrate --model " D "/run/best.safetensors --scores " D "/val_pred.csv --labels " D "/test.csv --out " D
                                        "/x.safetensors");
  CHECK(strstr(out, "far from 1: check that the labels' rows are these objects'") != NULL, "labels of other objects: a note: %s", out);
  cli_shell("rm -f " D "/x.safetensors");
  /* labels equal to the means (no errors) and a negative sigma: named, nothing written */
  cli_shell("awk -F, 'BEGIN{OFS=\",\"} {print $1, $2, $4}' " D "/val_pred.csv > " D "/perfect.csv");
  rc = cli_lens_output(out, sizeof out, "calibrate --model " D "/run/best.safetensors --scores " D "/val_pred.csv --labels " D "/perfect.csv --out " D
                                        "/x.safetensors");
  CHECK(rc == 1 && strstr(out, "equals its label: no errors to calibrate on"), "labels equal to the predictions: %s", out);
  cli_shell("awk -F, 'BEGIN{OFS=\",\"} NR==3{$3=-0.5} {print}' " D "/val_pred.csv > " D "/negative.csv");
  rc = cli_lens_output(out, sizeof out, "calibrate --model " D "/run/best.safetensors --scores " D "/negative.csv --labels " D "/val.csv --out " D
                                        "/x.safetensors");
  CHECK(rc == 1 && strstr(out, "negative.csv:3: the sigma of") && !strstr(out, "factor"), "a negative sigma: its line named, no table: %s", out);
  CHECK(cli_shell("test -e " D "/x.safetensors") != 0, "nothing written by the refused calibrations");
  test_calibrate_means();
  /* training on from the calibrated model (its own network, --nll-beta 1): the new weights carry
   * their own targets' statistics and no calibration of the old ones */
  rc = cli_lens_output(out, sizeof out, "train --task regress --targets width,center_x --loss nll --nll-beta 1 --init " D
                                        "/calibrated_means.safetensors --data " D "/train.npy --labels " D "/train.csv --epochs 1 --seed 5 --out " D "/tuned");
  CHECK(rc == 0, "lens train --init a calibrated model, --nll-beta 1: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "info " D "/tuned/best.safetensors");
  CHECK(rc == 0 && strstr(out, "regress.std") && !strstr(out, "regress.scale") && !strstr(out, "regress.calibration") &&
            !strstr(out, "regress.slope") && !strstr(out, "regress.offset") &&
            strstr(out, "train.nll_beta: 1") && strstr(out, "train.arch: init"),
        "the retrained weights drop the old calibration, keep nll_beta, and name the network as --init's: %s", out);
}

static void test_misuse(void) {
  char out[8192];
  int rc = cli_lens_output(out, sizeof out, "train --task regress --arch " D "/arch.txt --data " D "/train.npy --labels " D "/train.csv --out " D "/bad");
  CHECK(rc == 2 && strstr(out, "--targets"), "--task regress without --targets: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "train --task regress --targets width,theta_E --arch " D "/arch.txt --data " D "/train.npy --labels " D
                                        "/train.csv --loss nll --out " D "/bad2");
  CHECK(rc == 1 && strstr(out, "no column 'theta_E'") && strstr(out, "index,width,center_x,label"), "a missing target column, with the columns found: %s",
        out);
  rc = cli_lens_output(out, sizeof out, "train --task regress --targets width,center_x --arch " D "/arch.txt --data " D "/train.npy --labels " D
                                        "/train.csv --out " D "/bad3");
  CHECK(rc == 1 && strstr(out, "4 outputs") && strstr(out, "need 2"), "an mse run on a 4-output model: %s", out);
  rc = cli_lens_output(out, sizeof out, "train --task regress --targets width,center_x --loss mse --nll-beta 0.5 --arch " D "/arch.txt --data " D
                                        "/train.npy --labels " D "/train.csv --out " D "/bad4");
  CHECK(rc == 2 && strstr(out, "--nll-beta is a setting of --loss nll"), "--nll-beta with the squared error: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "train --task regress --targets width,center_x --loss nll --nll-beta 2 --arch " D "/arch.txt --data " D
                                        "/train.npy --labels " D "/train.csv --out " D "/bad5");
  CHECK(rc == 2 && strstr(out, "nll-beta"), "--nll-beta beyond 1: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "train --arch " D "/arch.txt --data " D "/train.npy --labels " D "/train.csv --focal-gamma 3 --out " D "/bad7");
  CHECK(rc == 2 && strstr(out, "--focal-gamma is a setting of --loss focal"), "--focal-gamma without --loss focal: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "train --task regress --targets width,center_x --loss mse --nll-beta 0 --arch " D "/arch.txt --data " D
                                        "/train.npy --labels " D "/train.csv --out " D "/bad8");
  CHECK(rc == 2 && strstr(out, "--nll-beta is a setting of --loss nll"), "--nll-beta 0 with --loss mse: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "train --targets width --arch " D "/arch.txt --data " D "/train.npy --labels " D "/train.csv --out " D "/bad6");
  CHECK(rc == 2 && strstr(out, "add --task regress"), "--targets without --task regress: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "predict --model weights/ou66-sim.safetensors " D "/test.npy --mc 4");
  CHECK(rc == 2 && strstr(out, "regression"), "--mc on a classifier: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "predict --model weights/ou66-sim.safetensors " D "/test.npy --mc-mean");
  CHECK(rc == 2 && strstr(out, "regression models") && strstr(out, "classifier"), "--mc-mean on a classifier names the model's kind: exit %d: %s", rc,
        out);
  rc = cli_lens_output(out, sizeof out, "find --model " D "/run/best.safetensors " D "/test.npy --out " D "/find");
  CHECK(rc == 2 && strstr(out, "regression"), "lens find with a modelling network: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "predict --model " D "/run/best.safetensors " D "/test.npy --samples " D "/s.npy");
  CHECK(rc == 2 && strstr(out, "--mc"), "--samples without --mc: exit %d: %s", rc, out);
}

int main(void) {
  if (!cli_have_lens()) return check_summary();
  make_inputs();
  TEST("lens train --task regress learns two targets (Gaussian NLL)") test_train();
  TEST("lens predict: physical means and sigmas on images of another seed") test_predict();
  TEST("lens predict --mc: Monte Carlo dropout, reproducible across threads, batches and shards") test_mc();
  TEST("lens predict --symmetries 8: the eight flips and quarter turns, turned back and averaged") test_symmetries();
  TEST("lens eval --task regress: bias, rms and coverage as defined") test_eval();
  TEST("lens eval --task regress joins predictions on FITS files by their file numbers") test_eval_fits_order();
  TEST("lens eval --task regress writes a target name with a backslash and a quote as valid JSON") test_eval_odd_name();
  TEST("lens calibrate on one seed makes the 68% interval hold about 68% on another") test_calibrate();
  TEST("an interrupted regression run resumes to the same weights") test_resume();
  TEST("misuse is named") test_misuse();
  cli_shell("rm -rf " D);
  return check_summary();
}
