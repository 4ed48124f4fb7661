/* The `lens` tool's conventions, the same in every subcommand (tools/cli.h):
 *   - lens predict and lens explain apply the model's stored normalisation (metadata preprocess,
 *     or train.minmax = 1 in older files), say so once on stderr, and --preprocess overrides it;
 *   - --out creates missing parent folders;
 *   - an output's format follows its extension, and an extension a command does not write is
 *     refused with exit status 2 naming the accepted ones (render .fits writes FITS);
 *   - exit status 0 success, 1 failure (files), 2 usage error;
 *   - a progress line with rate and ETA on stderr when it is a terminal, and none otherwise. */
#define _POSIX_C_SOURCE 200809L
#include "../tools/cli.c" /* the helpers themselves, for the progress line's format */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "cli_check.h"
#include <string.h>

#define W "build/cli_t"

static int count_of(const char *text, const char *needle) {
  int n = 0;
  const char *p = text;
  while ((p = strstr(p, needle)) != NULL) { n++; p += strlen(needle); }
  return n;
}

#define NIMG 3
#define BANDS 2
#define SIDE 8
#define PER (BANDS * SIDE * SIDE)

static float images[NIMG * PER];

/* A small model with the given preprocess metadata (NULL: none) and train.minmax (NULL: none). */
static void make_model(const char *path, const char *preprocess, const char *train_minmax) {
  lensnet_model *m;
  lensnet_error err;
  if (lensnet_model_create("input 2 8 8\nconv2d name=c out=4 kernel=3\nrelu\nmaxpool kernel=2\nflatten\ndense name=d out=2", &m, &err) != LENSNET_OK) {
    CHECK(0, "model: %s", err.message);
    return;
  }
  lensnet_model_init(m, 7);
  lensnet_model_set_meta(m, "classes", "non-lens,lens");
  if (preprocess) lensnet_model_set_meta(m, "preprocess", preprocess);
  if (train_minmax) lensnet_model_set_meta(m, "train.minmax", train_minmax);
  CHECK(lensnet_model_save(m, path, &err) == LENSNET_OK, "save %s: %s", path, err.message);
  lensnet_model_free(m);
}

/* Logits of the images through the library, min-max normalised or as they are. */
static void library_logits(int minmax, float *out) {
  lensnet_model *m;
  lensnet_error err;
  float x[NIMG * PER];
  size_t i;
  memcpy(x, images, sizeof x);
  if (minmax) for (i = 0; i < NIMG; i++) lensnet_minmax_normalize(x + i * PER, BANDS, SIDE * SIDE);
  if (lensnet_model_load(W "/m_none.safetensors", &m, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); return; }
  CHECK(lensnet_model_forward(m, NIMG, x, out, NULL, &err) == LENSNET_OK, "forward: %s", err.message);
  lensnet_model_free(m);
}

/* The logits lens predict wrote to W/p.npy. */
static int predicted(float *out) {
  lensnet_tensor t;
  lensnet_error err;
  int ok;
  if (lensnet_npy_read(W "/p.npy", &t, &err) != LENSNET_OK) return 0;
  ok = t.ndim == 2 && t.shape[0] == NIMG && t.shape[1] == 2;
  if (ok) memcpy(out, t.data, NIMG * 2 * sizeof(float));
  lensnet_tensor_free(&t);
  remove(W "/p.npy");
  return ok;
}

/* lens predict's logits against the library's: equal to rounding, within 1e-5 of the largest (on
 * AVX-512 lens predict runs 3x3 convolutions as Winograd's F(2x2, 3x3), whose sums round in
 * another order; raw counts in the thousands make logits in the hundreds). */
static int close_logits(const float *got, const float *want) {
  double scale = 1.0;
  size_t i;
  for (i = 0; i < NIMG * 2; i++) scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
  return check_max_abs_diff(got, want, NIMG * 2) <= 1e-5 * scale;
}

static void setup(void) {
  lensnet_tensor t;
  lensnet_error err;
  lensnet_rng rng;
  size_t shape[4] = {NIMG, BANDS, SIDE, SIDE}, i;
  FILE *f;
  CHECK(cli_shell("rm -rf " W " && mkdir -p " W) == 0, "fresh work folder");
  /* counts in the thousands with an offset per band: min-max scaling changes every score */
  lensnet_rng_seed(&rng, 11);
  for (i = 0; i < NIMG * PER; i++) images[i] = 1000.0f * (float)(1 + (i / (SIDE * SIDE)) % BANDS) + 800.0f * lensnet_rng_uniform(&rng);
  lensnet_tensor_alloc(&t, 4, shape, &err);
  memcpy(t.data, images, sizeof images);
  lensnet_npy_write(W "/x.npy", &t, &err);
  lensnet_tensor_free(&t);
  make_model(W "/m_minmax.safetensors", "minmax", NULL);
  make_model(W "/m_none.safetensors", "none", NULL);
  make_model(W "/m_legacy.safetensors", NULL, "1");
  make_model(W "/m_plain.safetensors", NULL, NULL);
  make_model(W "/m_odd.safetensors", "zscore", NULL);
  f = fopen(W "/scene.json", "w");
  if (f) {
    fputs("{\"grid\": {\"num_pix\": 8, \"pixel_scale\": 0.1}, \"lens\": [{\"type\": \"SIS\", \"theta_E\": 0.3}], "
          "\"source_light\": [{\"type\": \"SERSIC\", \"amp\": 10, \"R_sersic\": 0.2, \"n_sersic\": 1, \"center_x\": 0, \"center_y\": 0}]}\n", f);
    fclose(f);
  }
  f = fopen(W "/scores.csv", "w");
  if (f) {
    fputs("input,p_lens,label\na,0.9,1\nb,0.2,0\nc,0.7,1\nd,0.4,0\n", f);
    fclose(f);
  }
}

static void test_preprocess(void) {
  static const char note[] = "applying the model's min-max normalisation";
  float raw[NIMG * 2], scaled[NIMG * 2], got[NIMG * 2];
  char err[8192];
  library_logits(0, raw);
  library_logits(1, scaled);
  CHECK(check_max_abs_diff(raw, scaled, NIMG * 2) > 1e-3, "min-max scaling changes the library's logits (%g)", check_max_abs_diff(raw, scaled, NIMG * 2));

  TEST("predict applies the model's preprocess=minmax by default and says so once") {
    CHECK(cli_lens("predict --model " W "/m_minmax.safetensors " W "/x.npy --out " W "/p.npy 2> " W "/err.txt") == 0, "predict");
    CHECK(predicted(got) && close_logits(got, scaled), "logits of the min-max scaled images (diff %g)", check_max_abs_diff(got, scaled, NIMG * 2));
    cli_text(W "/err.txt", err, sizeof err);
    CHECK(count_of(err, note) == 1, "the note appears once for %d images: %s", NIMG, err);
    CHECK(strstr(err, "preprocess=minmax") && strstr(err, "--preprocess none"), "the note names the metadata and the way out: %s", err);
  }
  TEST("--preprocess none feeds the images as they are, without the note") {
    CHECK(cli_lens("predict --model " W "/m_minmax.safetensors --preprocess none " W "/x.npy --out " W "/p.npy 2> " W "/err.txt") == 0, "predict");
    CHECK(predicted(got) && close_logits(got, raw), "raw logits (diff %g)", check_max_abs_diff(got, raw, NIMG * 2));
    CHECK(!cli_file_has(W "/err.txt", note), "no note when the flag decides");
  }
  TEST("a model saying preprocess=none is fed as is; --minmax and --preprocess minmax scale it") {
    CHECK(cli_lens("predict --model " W "/m_none.safetensors " W "/x.npy --out " W "/p.npy 2> " W "/err.txt") == 0, "predict");
    CHECK(predicted(got) && close_logits(got, raw), "raw logits");
    CHECK(!cli_file_has(W "/err.txt", note), "no note");
    CHECK(cli_lens("predict --model " W "/m_none.safetensors --minmax " W "/x.npy --out " W "/p.npy 2> " W "/err.txt") == 0, "predict --minmax");
    CHECK(predicted(got) && close_logits(got, scaled), "--minmax scales");
    CHECK(cli_lens("predict --model " W "/m_none.safetensors --preprocess minmax " W "/x.npy --out " W "/p.npy 2> /dev/null") == 0, "--preprocess minmax");
    CHECK(predicted(got) && close_logits(got, scaled), "--preprocess minmax scales");
    CHECK(cli_lens("predict --model " W "/m_plain.safetensors " W "/x.npy --out " W "/p.npy 2> /dev/null") == 0, "no metadata");
    CHECK(predicted(got) && close_logits(got, raw), "a model without metadata is fed as is");
  }
  TEST("older files: train.minmax = 1 means min-max") {
    CHECK(cli_lens("predict --model " W "/m_legacy.safetensors " W "/x.npy --out " W "/p.npy 2> " W "/err.txt") == 0, "predict");
    CHECK(predicted(got) && close_logits(got, scaled), "scaled logits");
    cli_text(W "/err.txt", err, sizeof err);
    CHECK(count_of(err, note) == 1 && strstr(err, "train.minmax=1"), "the note names train.minmax: %s", err);
  }
  TEST("an unknown preprocess value fails unless the flag decides") {
    CHECK(cli_lens("predict --model " W "/m_odd.safetensors " W "/x.npy --out " W "/p.npy 2> " W "/err.txt") == 1, "exit 1");
    CHECK(cli_file_has(W "/err.txt", "zscore"), "the message names the value");
    CHECK(cli_lens("predict --model " W "/m_odd.safetensors --preprocess none " W "/x.npy --out " W "/p.npy 2> /dev/null") == 0, "--preprocess none decides");
    remove(W "/p.npy");
    CHECK(cli_lens("predict --model " W "/m_minmax.safetensors --preprocess zscore " W "/x.npy 2> /dev/null") == 2, "a bad --preprocess value is a usage error");
  }
  TEST("explain applies it too: default = explicit minmax, unlike none") {
    lensnet_tensor a, b, c;
    lensnet_error e;
    int ok;
    CHECK(cli_lens("explain --model " W "/m_minmax.safetensors --input " W "/x.npy --index 1 --method saliency --threads 1 --out " W "/ex_default 2> " W "/err.txt") == 0, "default");
    cli_text(W "/err.txt", err, sizeof err);
    CHECK(count_of(err, note) == 1, "the note appears once: %s", err);
    CHECK(cli_lens("explain --model " W "/m_minmax.safetensors --input " W "/x.npy --index 1 --method saliency --threads 1 --preprocess minmax --out " W "/ex_minmax 2> " W "/err.txt") == 0, "minmax");
    CHECK(!cli_file_has(W "/err.txt", note), "no note when the flag decides");
    CHECK(cli_lens("explain --model " W "/m_minmax.safetensors --input " W "/x.npy --index 1 --method saliency --threads 1 --preprocess none --out " W "/ex_none 2> /dev/null") == 0, "none");
    ok = lensnet_npy_read(W "/ex_default/saliency.npy", &a, &e) == LENSNET_OK;
    ok = ok && lensnet_npy_read(W "/ex_minmax/saliency.npy", &b, &e) == LENSNET_OK;
    ok = ok && lensnet_npy_read(W "/ex_none/saliency.npy", &c, &e) == LENSNET_OK;
    CHECK(ok, "three saliency maps");
    if (ok) {
      size_t n = lensnet_tensor_count(&a);
      CHECK(n == lensnet_tensor_count(&b) && !memcmp(a.data, b.data, n * sizeof(float)), "default = --preprocess minmax");
      CHECK(n == lensnet_tensor_count(&c) && memcmp(a.data, c.data, n * sizeof(float)) != 0, "--preprocess none differs");
      lensnet_tensor_free(&a); lensnet_tensor_free(&b); lensnet_tensor_free(&c);
    }
  }
}

static void test_out(void) {
  TEST("--out creates missing parent folders, for every subcommand that writes") {
    CHECK(cli_lens("predict --model " W "/m_none.safetensors " W "/x.npy --out " W "/new/p1/logits.npy 2> /dev/null") == 0 && check_file_exists(W "/new/p1/logits.npy"), "predict --out .npy");
    CHECK(cli_lens("predict --model " W "/m_none.safetensors " W "/x.npy --out " W "/new/p2/s.csv > " W "/stdout.txt 2> /dev/null") == 0 && check_file_exists(W "/new/p2/s.csv"), "predict --out .csv");
    CHECK(cli_lens("predict --model " W "/m_none.safetensors " W "/x.npy --csv " W "/new/p3/s.csv 2> /dev/null") == 0 && check_file_exists(W "/new/p3/s.csv"), "predict --csv");
    CHECK(cli_lens("render " W "/scene.json --out " W "/new/r/a.npy 2> /dev/null") == 0 && check_file_exists(W "/new/r/a.npy"), "render");
    CHECK(cli_lens("plot roc --scores " W "/scores.csv --out " W "/new/pl/roc.png > /dev/null 2> /dev/null") == 0 && check_file_exists(W "/new/pl/roc.png"), "plot");
    CHECK(cli_lens("eval --scores " W "/scores.csv --bootstrap 10 --out " W "/new/ev1/ev2 > /dev/null 2> /dev/null") == 0 &&
          check_file_exists(W "/new/ev1/ev2/metrics.json"), "eval");
    CHECK(cli_lens("explain --model " W "/m_none.safetensors --input " W "/x.npy --method saliency --threads 1 --out " W "/new/e1/e2 2> /dev/null") == 0 &&
          check_file_exists(W "/new/e1/e2/saliency.npy"), "explain");
    CHECK(cli_lens("sim --preset euclid-lensfinding --n 12 --threads 1 --out " W "/new/s1/s2 2> /dev/null") == 0 && check_file_exists(W "/new/s1/s2/images.npy"), "sim");
    CHECK(cli_lens("train --data " W "/new/s1/s2/images.npy --labels " W "/new/s1/s2/labels.csv --epochs 1 --batch 4 --threads 1 --val-fraction 0.25 --out " W "/new/t1/run 2> /dev/null") == 0 &&
          check_file_exists(W "/new/t1/run/best.safetensors"), "train");
  }
  TEST("predict --out: .npy the logits, .csv the CSV (and nothing on standard output)") {
    char text[4096];
    lensnet_tensor t;
    lensnet_error err;
    cli_text(W "/new/p2/s.csv", text, sizeof text);
    CHECK(!strncmp(text, "input,p_lens,logit_non-lens,logit_lens\n", 39) && count_of(text, "\n") == NIMG + 1, "a CSV: %.80s", text);
    cli_text(W "/stdout.txt", text, sizeof text);
    CHECK(text[0] == 0, "standard output empty: %.80s", text);
    CHECK(lensnet_npy_read(W "/new/p1/logits.npy", &t, &err) == LENSNET_OK && t.ndim == 2 && t.shape[0] == NIMG, "logits .npy [%d, 2]", NIMG);
    lensnet_tensor_free(&t);
  }
  TEST("render --out .fits writes FITS that lensnet reads back, equal to the .npy") {
    lensnet_tensor a, b;
    lensnet_error err;
    char head[16];
    CHECK(cli_lens("render " W "/scene.json --out " W "/new/r/a.fits 2> /dev/null") == 0, "render .fits");
    cli_text(W "/new/r/a.fits", head, sizeof head);
    CHECK(!strncmp(head, "SIMPLE  =", 9), "starts as FITS: %.9s", head);
    if (lensnet_fits_read(W "/new/r/a.fits", -1, &a, &err) == LENSNET_OK) {
      if (lensnet_npy_read(W "/new/r/a.npy", &b, &err) == LENSNET_OK) {
        CHECK(a.ndim == 2 && a.shape[0] == 8 && a.shape[1] == 8 && lensnet_tensor_count(&b) == 64 && !memcmp(a.data, b.data, 64 * sizeof(float)),
              "the same 8x8 image");
        lensnet_tensor_free(&b);
      } else CHECK(0, "%s", err.message);
      lensnet_tensor_free(&a);
    } else CHECK(0, "lensnet reads the FITS: %s", err.message);
  }
  TEST("an extension the command does not write is refused with exit 2, naming the accepted ones") {
    CHECK(cli_lens("render " W "/scene.json --out " W "/r.png 2> " W "/err.txt") == 2 && cli_file_has(W "/err.txt", ".npy, .fits") && !check_file_exists(W "/r.png"), "render .png");
    CHECK(cli_lens("predict --model " W "/m_none.safetensors " W "/x.npy --out " W "/p.txt 2> " W "/err.txt") == 2 && cli_file_has(W "/err.txt", ".npy, .csv") && !check_file_exists(W "/p.txt"), "predict --out .txt");
    CHECK(cli_lens("predict --model " W "/m_none.safetensors " W "/x.npy --out " W "/p.fits 2> /dev/null") == 2 && !check_file_exists(W "/p.fits"), "predict --out .fits");
    CHECK(cli_lens("predict --model " W "/m_none.safetensors " W "/x.npy --csv " W "/p.npy 2> " W "/err.txt") == 2 && cli_file_has(W "/err.txt", ".csv"), "predict --csv .npy");
    CHECK(cli_lens("predict --model " W "/m_none.safetensors " W "/x.npy --out " W "/a.csv --csv " W "/b.csv 2> /dev/null") == 2, "two CSV files");
    CHECK(cli_lens("plot roc --scores " W "/scores.csv --out " W "/roc.jpg > /dev/null 2> " W "/err.txt") == 2 && cli_file_has(W "/err.txt", ".png") && !check_file_exists(W "/roc.jpg"), "plot .jpg");
    CHECK(cli_lens("explain --model " W "/m_none.safetensors --input " W "/x.npy --method saliency --out " W "/e.png 2> /dev/null") == 2 && !check_file_exists(W "/e.png"), "explain --out a file name");
    CHECK(cli_lens("sim --preset euclid-lensfinding --n 2 --out " W "/s.npy 2> /dev/null") == 2 && !check_file_exists(W "/s.npy"), "sim --out a file name");
    CHECK(cli_lens("train --data " W "/new/s1/s2/images.npy --labels " W "/new/s1/s2/labels.csv --out " W "/t.safetensors 2> /dev/null") == 2, "train --out a file name");
  }
}

typedef struct { const char *args; int status; } invocation;

static void test_exit_codes(void) {
  static const invocation table[] = {
    {"", 2}, {"nonsense", 2},
    {"info", 2}, {"info a b", 2}, {"info " W "/missing.safetensors", 1}, {"info " W "/m_none.safetensors", 0}, {"info --help", 0},
    {"predict", 2}, {"predict --frobnicate", 2}, {"predict --model " W "/m_none.safetensors", 2},
    {"predict --model " W "/m_none.safetensors --batch 0 " W "/x.npy", 2}, {"predict --model " W "/m_none.safetensors --batch", 2},
    {"predict --model " W "/m_none.safetensors --resize --crop " W "/x.npy", 2}, {"predict --model " W "/m_none.safetensors --shard 3/2 " W "/x.npy", 2},
    {"predict --model " W "/m_none.safetensors --channels 0,1,2 " W "/x.npy", 2},
    {"predict --model " W "/missing.safetensors " W "/x.npy", 1}, {"predict --model " W "/m_none.safetensors " W "/missing.npy", 1},
    {"predict --model " W "/m_none.safetensors " W "/scene.json", 1}, {"predict --model " W "/m_none.safetensors " W "/x.npy", 0}, {"predict --help", 0},
    {"train", 2}, {"train --frobnicate 1", 2}, {"train --lr abc --data a --labels b --out c", 2}, {"train --data a --labels b", 2},
    {"train --data " W "/x.npy --labels b --out " W "/t0 --optimizer rmsprop", 2}, {"train --data " W "/x.npy --labels b --out " W "/t0 --augment twirl", 2},
    {"train --data " W "/missing.npy --labels b --out " W "/t0", 1}, {"train --resume " W "/missing-run", 1}, {"train --help", 0},
    {"render", 2}, {"render " W "/scene.json", 2}, {"render " W "/scene.json --out " W "/r.npy --band NOPE", 2},
    {"render " W "/scene.json --out " W "/r.npy --seed -1 --band VIS", 2}, {"render " W "/scene.json --out " W "/r.npy --frobnicate", 2},
    {"render " W "/missing.json --out " W "/r.npy", 1}, {"render " W "/scores.csv --out " W "/r.npy", 1}, {"render " W "/scene.json --out " W "/r.npy", 0},
    {"render --help", 0},
    {"explain", 2}, {"explain --model " W "/m_none.safetensors --input " W "/x.npy --method nothing --out " W "/e", 2},
    {"explain --model " W "/m_none.safetensors --input " W "/x.npy --method saliency", 2},
    {"explain --model " W "/m_none.safetensors --input " W "/x.npy --method gradcam --layer 99 --out " W "/e", 2},
    {"explain --model " W "/m_none.safetensors --input " W "/x.npy --method saliency --index 9 --out " W "/e", 2},
    {"explain --model " W "/m_none.safetensors --input " W "/x.npy --method saliency --target 5 --out " W "/e", 2},
    {"explain --model " W "/m_none.safetensors --input " W "/x.npy --method saliency --patch x --out " W "/e", 2},
    {"explain --model " W "/missing.safetensors --input " W "/x.npy --method saliency --out " W "/e", 1},
    {"explain --model " W "/m_none.safetensors --input " W "/missing.npy --method saliency --out " W "/e", 1},
    {"explain --model " W "/m_none.safetensors --input " W "/x.npy --method saliency --threads 1 --out " W "/e", 0}, {"explain --help", 0},
    {"plot", 2}, {"plot nonsense --out " W "/a.png", 2}, {"plot roc --out " W "/a.png", 2}, {"plot roc --scores " W "/scores.csv", 2},
    {"plot scores --scores " W "/scores.csv --bins 0 --out " W "/a.png", 2}, {"plot history --out " W "/a.png", 2},
    {"plot roc --scores " W "/scores.csv --threshold 0.3 --out " W "/a.png", 2}, {"plot history --history h.csv --bins 5 --out " W "/a.png", 2},
    {"plot roc --scores " W "/missing.csv --out " W "/a.png", 1}, {"plot roc --scores " W "/scores.csv --score-column nope --out " W "/a.png", 1},
    {"plot roc --scores " W "/scores.csv --out " W "/a.png", 0}, {"plot --help", 0},
    {"eval", 2}, {"eval --scores " W "/scores.csv --bootstrap 10", 0}, {"eval --scores " W "/scores.csv --out " W "/ev.csv", 2},
    {"eval --scores " W "/scores.csv --out " W "/ev --bootstrap -1", 2}, {"eval --scores " W "/scores.csv --out " W "/ev --frobnicate", 2},
    {"eval --scores " W "/missing.csv --out " W "/ev", 1}, {"eval --scores " W "/scores.csv --score-column nope --out " W "/ev", 1},
    {"eval --scores " W "/scores.csv --bootstrap 10 --out " W "/ev", 0}, {"eval --help", 0},
    {"sim", 2}, {"sim --preset nonsense --n 2 --out " W "/s", 2}, {"sim --preset euclid-lensfinding --n 0 --out " W "/s", 2},
    {"sim --preset euclid-lensfinding --n 2", 2}, {"sim --preset euclid-lensfinding --n 2 --lens-fraction 2 --out " W "/s", 2},
    {"sim --preset euclid-lensfinding --n 2 --theta-e-min 2 --theta-e-max 1 --out " W "/s", 2},
    {"sim --preset euclid-lensfinding --n 2 --out " W "/x.npy/s", 1}, {"sim --preset euclid-lensfinding --n 2 --threads 1 --out " W "/s", 0},
    {"sim --help", 0},
    {"merge", 2}, {"merge --out " W "/mg", 2}, {"merge " W "/x.npy", 2}, {"merge --out " W "/mg.csv " W "/x.npy", 2},
    {"merge --out " W "/mg.npy " W "/x.npy --frobnicate", 2}, {"merge --out " W "/mg.npy " W "/x.npy", 1},
    {"merge --out " W "/mg " W "/missing", 1}, {"merge --help", 0},
    {"find", 2}, {"find --frobnicate", 2}, {"find --model " W "/m_none.safetensors --out " W "/fd", 2},
    {"find --model " W "/m_none.safetensors --stride 0 --out " W "/fd " W "/x.npy", 2}, {"find --model " W "/m_none.safetensors " W "/x.npy", 2},
    {"find --model " W "/missing.safetensors --out " W "/fd " W "/x.npy", 1}, {"find --model " W "/m_none.safetensors --out " W "/fd " W "/missing.npy", 1},
    {"find --model " W "/m_none.safetensors --out " W "/fd " W "/x.npy", 1}, {"find --help", 0},
  };
  TEST("exit status: 2 usage errors, 1 failures, 0 success, in every subcommand") {
    size_t i;
    char args[4096];
    for (i = 0; i < sizeof table / sizeof table[0]; i++) {
      int st;
      snprintf(args, sizeof args, "%s > /dev/null 2> " W "/err.txt", table[i].args);
      st = cli_lens("%s", args);
      CHECK(st == table[i].status, "lens %s: exit %d, expected %d", table[i].args, st, table[i].status);
      /* every failure says what went wrong */
      if (table[i].status != 0) CHECK(cli_file_has(W "/err.txt", "lens") || cli_file_has(W "/err.txt", "usage"), "lens %s: a message", table[i].args);
    }
  }
}

static void test_progress(void) {
  TEST("the progress line: bar, count, rate and time left") {
    char line[256];
    lens_progress_format(line, sizeof line, "predict", 50, 100, "obj", 10.0, -1.0, NULL);
    CHECK(!strcmp(line, "predict [===============               ] 50/100 5 obj/s ETA 0:10"), "'%s'", line);
    lens_progress_format(line, sizeof line, "epoch 2/3", 30, 30, "img", 2.0, 75.0, "loss 0.5000");
    CHECK(!strcmp(line, "epoch 2/3 [==============================] 30/30 15 img/s ETA 1:15 loss 0.5000"), "'%s'", line);
    lens_progress_format(line, sizeof line, "predict", 32, 3200, "obj", 0.004, -1.0, NULL);
    CHECK(!strcmp(line, "predict [                              ] 32/3200 - obj/s ETA -"), "too early for a rate: '%s'", line);
    CHECK(lens_format_of("a/b.FITS") == LENS_FMT_FITS && lens_format_of("x.npy") == LENS_FMT_NPY && lens_format_of("x.csv") == LENS_FMT_CSV &&
          lens_format_of("x.png") == LENS_FMT_PNG && lens_format_of("x.npy.txt") == LENS_FMT_NONE, "formats from extensions");
  }
  TEST("a progress line on a terminal's stderr, none otherwise") {
    char text[1 << 15];
    if (cli_shell("command -v script > /dev/null 2>&1") != 0) {
      printf("   (no `script` here to give the tool a terminal; the format is tested above)\n");
      break;
    }
    /* predict, sim and train, each with stderr on a pseudo-terminal and stdout in a file */
    CHECK(cli_shell("script -qec '%s predict --model " W "/m_none.safetensors --batch 1 " W "/x.npy > /dev/null' /dev/null > " W "/tty.txt 2>&1 < /dev/null", cli_lens_command()) == 0,
          "predict under script");
    cli_text(W "/tty.txt", text, sizeof text);
    CHECK(strstr(text, "predict [") && strstr(text, "3/3") && strstr(text, "obj/s ETA"), "predict shows progress: %.200s", text);
    CHECK(cli_shell("script -qec '%s sim --preset euclid-lensfinding --n 4 --threads 1 --out " W "/s_tty' /dev/null > " W "/tty.txt 2>&1 < /dev/null", cli_lens_command()) == 0,
          "sim under script");
    cli_text(W "/tty.txt", text, sizeof text);
    CHECK(strstr(text, "sim euclid-lensfinding [") && strstr(text, "img/s ETA"), "sim shows progress: %.200s", text);
    CHECK(cli_shell("script -qec '%s train --data " W "/s_tty/images.npy --labels " W "/s_tty/labels.csv --epochs 1 --batch 2 --val-fraction 0.25 --threads 1 --out " W "/t_tty' /dev/null > " W "/tty.txt 2>&1 < /dev/null", cli_lens_command()) == 0,
          "train under script");
    cli_text(W "/tty.txt", text, sizeof text);
    CHECK(strstr(text, "epoch 1/1 [") && strstr(text, "img/s ETA"), "train shows progress: %.200s", text);
    /* the same with stderr in a file: no progress line, no carriage returns */
    CHECK(cli_lens("predict --model " W "/m_none.safetensors --batch 1 " W "/x.npy > /dev/null 2> " W "/err.txt") == 0, "predict");
    cli_text(W "/err.txt", text, sizeof text);
    CHECK(!strstr(text, "obj/s") && !strchr(text, '\r'), "no progress line in a file: %.200s", text);
    CHECK(cli_lens("sim --preset euclid-lensfinding --n 4 --threads 1 --out " W "/s_file 2> " W "/err.txt") == 0, "sim");
    cli_text(W "/err.txt", text, sizeof text);
    CHECK(!strstr(text, "sim euclid-lensfinding [") && !strchr(text, '\r'), "no progress line in a file: %.200s", text);
  }
}

/* The option names of a table in tools/ as written: rows `LENS_...(T, "name"` or `LENS_ROW("name"`, the
 * cutout rows where LENS_CUTOUT_OPTIONS stands, for train lensnet's training settings and for adapt its
 * adaptation settings (but minmax, which is --preprocess there). Hidden rows
 * (help NULL) and positional ones (not lower case) are left out. Returns the count. */
static int table_options(const char *command, char names[][48], int most) {
  char path[256], line[1024];
  int n = 0;
  FILE *f;
  snprintf(path, sizeof path, "tools/cmd_%s.c", command);
  if (!(f = fopen(path, "r"))) return -1;
  while (fgets(line, sizeof line, f) && n < most) {
    char *p = strstr(line, "LENS_"), *q;
    if (strstr(line, "LENS_CUTOUT_OPTIONS(T")) {
      static const char *cutout[] = {"channels", "preprocess", "minmax", "resize", "crop", "hdu"};
      size_t k;
      for (k = 0; k < sizeof cutout / sizeof cutout[0] && n < most; k++) snprintf(names[n++], 48, "%s", cutout[k]);
      continue;
    }
    if (!p || !(q = strchr(p, '(')) || strncmp(p, "LENS_OPT", 8) == 0) continue;
    q = strchr(q, '"');
    if (!q || !(q[1] >= 'a' && q[1] <= 'z') || strstr(line, "NULL, NULL),")) continue;
    snprintf(names[n], 48, "%.*s", (int)strcspn(q + 1, "\""), q + 1);
    for (p = names[n]; *p; p++) if (*p == '_') *p = '-';
    n++;
  }
  fclose(f);
  if (!strcmp(command, "train") || !strcmp(command, "adapt")) {
    size_t count, i;
    const lensnet_fit_setting *s = !strcmp(command, "train") ? lensnet_fit_settings(&count) : lensnet_adapt_settings(&count);
    for (i = 0; i < count && n < most; i++, n++) {
      if (!strcmp(command, "adapt") && !strcmp(s[i].name, "minmax")) { n--; continue; } /* --preprocess there */
      char *p;
      snprintf(names[n], 48, "%s", s[i].name);
      for (p = names[n]; *p; p++) if (*p == '_') *p = '-';
    }
  }
  return n;
}

static void test_help(void) {
  TEST("every subcommand's --help lists every option of its table and exits 0") {
    static const char *commands[] = {"info", "predict", "train", "adapt", "render", "explain", "plot", "eval", "sim", "merge", "find", "quantize"};
    static char names[64][48], text[1 << 15];
    size_t c;
    for (c = 0; c < sizeof commands / sizeof commands[0]; c++) {
      char args[256];
      int n = table_options(commands[c], names, 64), i;
      CHECK(n >= 0, "read tools/cmd_%s.c", commands[c]);
      snprintf(args, sizeof args, "%s --help > " W "/help.txt 2> /dev/null", commands[c]);
      CHECK(cli_lens("%s", args) == 0, "lens %s --help exits 0", commands[c]);
      cli_text(W "/help.txt", text, sizeof text);
      CHECK(!strncmp(text, "usage: lens ", 12), "lens %s --help starts with its usage", commands[c]);
      for (i = 0; i < n; i++) {
        char want[64];
        snprintf(want, sizeof want, "  --%.47s", names[i]);
        CHECK(strstr(text, want) != NULL, "lens %s --help lists --%s", commands[c], names[i]);
      }
    }
    CHECK(table_options("predict", names, 64) >= 14 && table_options("train", names, 64) >= 29, "the tables were found");
  }
}

/* lens info --set: metadata added to a copy, the tensors and the rest of the metadata kept, the
 * keys that describe the network refused, and the input file untouched on every refusal. */
static void test_info_set(void) {
  lensnet_model *a = NULL, *b = NULL;
  lensnet_error err;
  char out[4096];
  size_t i, n;
  int same = 1;
  make_model(W "/meta_in.safetensors", "minmax", NULL);
  CHECK(cli_lens("info " W "/meta_in.safetensors --set band_names=VIS,Y --set pixel_scale=0.3 --out " W "/meta_out.safetensors > /dev/null") == 0, "info --set");
  if (lensnet_model_load(W "/meta_in.safetensors", &a, &err) != LENSNET_OK || lensnet_model_load(W "/meta_out.safetensors", &b, &err) != LENSNET_OK) {
    CHECK(0, "load: %s", err.message);
  } else {
    const char *bn = lensnet_model_meta(b, "band_names"), *ps = lensnet_model_meta(b, "pixel_scale"), *pp = lensnet_model_meta(b, "preprocess");
    CHECK(bn && !strcmp(bn, "VIS,Y"), "band_names set (got %s)", bn ? bn : "(none)");
    CHECK(ps && !strcmp(ps, "0.3"), "pixel_scale set (got %s)", ps ? ps : "(none)");
    CHECK(pp && !strcmp(pp, "minmax"), "preprocess kept (got %s)", pp ? pp : "(none)");
    CHECK(!lensnet_model_meta(a, "band_names"), "the input file is unchanged");
    n = lensnet_model_parameter_count(a);
    CHECK(n == lensnet_model_parameter_count(b), "same parameter count");
    same = a->param_count == b->param_count;
    for (i = 0; same && i < a->param_count; i++) {
      const lensnet_param *pa = &a->params[i], *pb = lensnet_model_param(b, pa->name);
      same = pb && pb->count == pa->count && !memcmp(a->values + pa->offset, b->values + pb->offset, pa->count * sizeof(float));
    }
    CHECK(same, "weights bit-identical after --set");
  }
  lensnet_model_free(a);
  lensnet_model_free(b);
  /* rewriting in place, and the refusals */
  CHECK(cli_lens("info " W "/meta_out.safetensors --set pixel_scale=0.1 --out " W "/meta_out.safetensors > /dev/null") == 0, "info --set in place");
  CHECK(cli_lens_output(out, sizeof out, "info " W "/meta_out.safetensors") == 0 && strstr(out, "pixel_scale: 0.1") && strstr(out, "band_names: VIS,Y"),
        "in-place --set changed one entry and kept the others");
  CHECK(cli_lens_output(out, sizeof out, "info " W "/meta_in.safetensors --set arch=ou66 --out " W "/m2.safetensors") == 2 && strstr(out, "arch") &&
        !check_file_exists(W "/m2.safetensors"), "--set arch refused");
  CHECK(cli_lens_output(out, sizeof out, "info " W "/meta_in.safetensors --set bands=9 --out " W "/m2.safetensors") == 2 && !check_file_exists(W "/m2.safetensors"),
        "--set bands refused");
  CHECK(cli_lens_output(out, sizeof out, "info " W "/meta_in.safetensors --set novalue --out " W "/m2.safetensors") == 2 && strstr(out, "KEY=VALUE"),
        "--set without = refused");
  CHECK(cli_lens_output(out, sizeof out, "info " W "/meta_in.safetensors --set a=b") == 2 && strstr(out, "--out"), "--set without --out refused");
  /* values other commands read as facts about the network must fit it */
  CHECK(cli_lens_output(out, sizeof out, "info " W "/meta_in.safetensors --set classes=a,b,c --out " W "/m2.safetensors") == 2 &&
            strstr(out, "3 names for a model of"), "--set classes of the wrong count refused: %s", out);
  CHECK(cli_lens_output(out, sizeof out, "info " W "/meta_in.safetensors --set band_names=A,B,C,D,E,F,G --out " W "/m2.safetensors") == 2 &&
            strstr(out, "input bands"), "--set band_names of the wrong count refused: %s", out);
  CHECK(cli_lens_output(out, sizeof out, "info " W "/meta_in.safetensors --set pixel_scale=abc --out " W "/m2.safetensors") == 2 &&
            strstr(out, "not a positive number of arcseconds"), "--set pixel_scale=abc refused: %s", out);
  /* band names stored as the readers read them: blanks and a trailing comma gone */
  CHECK(cli_lens("info " W "/meta_in.safetensors --set 'band_names= VIS , Y,' --out " W "/m3.safetensors > /dev/null") == 0 &&
            cli_lens_output(out, sizeof out, "info " W "/m3.safetensors") == 0 && strstr(out, "band_names: VIS,Y\n"),
        "--set band_names=' VIS , Y,' is stored as VIS,Y: %s", out);
  remove(W "/m3.safetensors");
  /* by the rules of the readers: a band named twice is refused, as lensnet_band_pick would */
  CHECK(cli_lens_output(out, sizeof out, "info " W "/meta_in.safetensors --set band_names=VIS,vis --out " W "/m2.safetensors") == 2 &&
            strstr(out, "both"), "--set band_names naming a band twice refused: %s", out);
  CHECK(!check_file_exists(W "/m2.safetensors"), "nothing written for the refused values");
  CHECK(cli_lens_output(out, sizeof out, "info " W "/meta_in.safetensors --out " W "/m2.safetensors") == 2 && strstr(out, "--set"), "--out without --set refused");
  { /* a long one-line value (a list of 40 files) is cut unless --full */
    char cmd[1024] = "info " W "/meta_in.safetensors --out " W "/long.safetensors --set adapt.target-data=";
    int k;
    for (k = 0; k < 40; k++) strcat(cmd, k ? ",cut.fits" : "cut.fits");
    CHECK(cli_lens("%s > /dev/null", cmd) == 0, "a value of 359 characters set");
    CHECK(cli_lens_output(out, sizeof out, "info " W "/long.safetensors") == 0 && strstr(out, "(359 characters; --full prints it whole)") &&
              !strstr(out, "cut.fits,cut.fits\n"),
          "cut, with its length");
    CHECK(cli_lens_output(out, sizeof out, "info --full " W "/long.safetensors") == 0 && strstr(out, "cut.fits,cut.fits\n") &&
              !strstr(out, "characters; --full"),
          "--full prints it whole");
  }
  { /* characters, not bytes: 200 two-byte characters are 200, and the cut keeps whole ones */
    char cmd[1024] = "info " W "/meta_in.safetensors --out " W "/greek.safetensors --set note=";
    const char *s = NULL;
    int k, whole = 1;
    for (k = 0; k < 200; k++) strcat(cmd, "\xce\xb8"); /* theta */
    CHECK(cli_lens("%s > /dev/null", cmd) == 0, "a value of 200 thetas set");
    CHECK(cli_lens_output(out, sizeof out, "info " W "/greek.safetensors") == 0 && (s = strstr(out, "  note: ")) != NULL &&
              strstr(out, "(200 characters; --full prints it whole)"), "counted in characters: %s", out);
    if (s) {
      const char *end = strstr(s, " ... (");
      s += 8;
      whole = end && (end - s) == 280; /* 140 characters of two bytes */
      for (; end && s < end; s += 2) whole = whole && (unsigned char)s[0] == 0xce && (unsigned char)s[1] == 0xb8;
    }
    CHECK(whole, "cut after 140 whole characters");
  }
  { /* a value of several lines (a training history) is indented under its key; past 24 lines
     * its first and last 8 are shown unless --full */
    lensnet_model *h = NULL;
    char text[2048], big[8192];
    size_t len = 0;
    int k;
    len += (size_t)snprintf(text + len, sizeof text - len, "epoch,loss\n");
    for (k = 1; k <= 3; k++) len += (size_t)snprintf(text + len, sizeof text - len, "%d,0.%d\n", k, 9 - k);
    CHECK(lensnet_model_load(W "/meta_in.safetensors", &h, &err) == LENSNET_OK && lensnet_model_set_meta(h, "train.history", text) == LENSNET_OK &&
              lensnet_model_save(h, W "/hist.safetensors", &err) == LENSNET_OK,
          "a model with a history of 4 lines saved");
    CHECK(cli_lens_output(big, sizeof big, "info " W "/hist.safetensors") == 0 &&
              strstr(big, "  train.history: (4 lines)\n    epoch,loss\n    1,0.8\n    2,0.7\n    3,0.6\n") && !strstr(big, "    3,0.6\n    \n"),
          "each line indented under its key: %s", big);
    len = (size_t)snprintf(text, sizeof text, "epoch,loss\n");
    for (k = 1; k <= 39; k++) len += (size_t)snprintf(text + len, sizeof text - len, "%d,%d\n", k, 100 - k);
    CHECK(h && lensnet_model_set_meta(h, "train.history", text) == LENSNET_OK && lensnet_model_save(h, W "/hist.safetensors", &err) == LENSNET_OK,
          "a history of 40 lines saved");
    CHECK(cli_lens_output(big, sizeof big, "info " W "/hist.safetensors") == 0 && strstr(big, "train.history: (40 lines)\n    epoch,loss\n") &&
              strstr(big, "    7,93\n    ... (24 more lines; --full prints them all)\n    32,68\n") && strstr(big, "    39,61\n") &&
              !strstr(big, "    8,92\n") && !strstr(big, "    31,69\n"),
          "40 lines: the first and last 8: %s", big);
    CHECK(cli_lens_output(big, sizeof big, "info --full " W "/hist.safetensors") == 0 && strstr(big, "    7,93\n    8,92\n") &&
              strstr(big, "    31,69\n    32,68\n") && !strstr(big, "more lines"),
          "--full: every line");
    lensnet_model_free(h);
  }
}

/* lens info on FITS files: the HDUs, their shapes and compression, the one read by default. */
static void test_info_fits(void) {
  char out[4096];
  const char *dir = check_data_dir();
  TEST("lens info FILE.fits: HDUs, shapes, compression and the HDU read by default") {
    CHECK(cli_lens_output(out, sizeof out, "info %s/fits/compressed/rice_int16_tiles.fits.fz", dir) == 0 && strstr(out, "HDUs:       2") &&
              strstr(out, "HDU 0: primary, no pixels") && strstr(out, "HDU 1: compressed image 47 x 61, BITPIX 16, RICE_1") &&
              strstr(out, "<- read by default"),
          "a .fits.fz:\n%s", out);
    CHECK(cli_lens_output(out, sizeof out, "info %s/fits/o4sp040b0_raw.fits", dir) == 0 && strstr(out, "HDUs:       7") &&
              strstr(out, "HDU 1: image 44 x 62, BITPIX 16 (EXTNAME SCI)  <- read by default") && strstr(out, "HDU 2: image, no pixels (EXTNAME ERR)") &&
              strstr(out, "HDU 4: image 44 x 62, BITPIX 16 (EXTNAME SCI)\n"),
          "seven HDUs:\n%s", out);
    CHECK(cli_lens_output(out, sizeof out, "info %s/fits/arange.fits", dir) == 0 && strstr(out, "HDU 0: primary image 7 x 10 x 11, BITPIX 32"),
          "a cube in NumPy order:\n%s", out);
    CHECK(cli_lens_output(out, sizeof out, "info %s/fits/test0.fits --set a=b --out " W "/x.safetensors", dir) == 2 && strstr(out, "model files"),
          "--set on a FITS file: %s", out);
    CHECK(cli_lens_output(out, sizeof out, "info " W "/missing.fits") == 1 && strstr(out, "missing.fits"), "a missing file: %s", out);
    { /* a Pan-STARRS1 stack image stores an asinh of the flux: lens info says it is read as linear flux */
      static const lensnet_fits_card cards[] = {{"BSOFTEN", "3.25", NULL}, {"BOFFSET", "12.5", NULL}};
      lensnet_tensor t;
      lensnet_error err;
      size_t shape[2] = {3, 4};
      if (lensnet_tensor_alloc(&t, 2, shape, &err) == LENSNET_OK) {
        memset(t.data, 0, 12 * sizeof(float));
        CHECK(lensnet_fits_write_cards(W "/ps1.fits", &t, cards, 2, &err) == LENSNET_OK, "ps1.fits: %s", err.message);
        lensnet_tensor_free(&t);
      }
      CHECK(cli_lens_output(out, sizeof out, "info " W "/ps1.fits") == 0 &&
                strstr(out, "HDU 0: primary image 3 x 4, BITPIX -32, asinh-scaled (Pan-STARRS1 BSOFTEN, BOFFSET): read as linear flux"),
            "a PS1 stack image:\n%s", out);
    }
  }
}

int main(void) {
  setup();
  test_help();
  test_preprocess();
  test_out();
  test_exit_codes();
  test_progress();
  test_info_set();
  test_info_fits();
  if (check__failed == 0) cli_shell("rm -rf " W);
  return check_summary();
}
