/* `lens predict` end to end: the released finders of Wilde et al. 2022 reproduce PyTorch's logits
 * (tests/data/wilde2022) through the command within 1e-4, as through the library
 * (tests/test_wilde2022.c), and with --exact lensnet_model_forward's logits bit for bit; mismatched inputs are refused with clear messages; FITS cutouts are
 * scored from files and lists, over shards; the shipped weights/ *-sim.safetensors find lenses
 * in a fresh `lens sim` sample; and --locator gives the positions a centroid locator made here
 * computes (lensnet_cutout_locate), and refuses models that are no locators. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* wait4: one child's own resource usage */
#define LENSNET_IMPLEMENTATION
#include <sys/stat.h>
#include "lensnet.h"
#include "cli_check.h"
#include <sys/resource.h>
#include <sys/wait.h>
#include <spawn.h>
#include <fcntl.h>
extern char **environ;

static void test_memory_bound(void);

/* The models and the shared inputs PyTorch scored (the first `in_c` bands of them). */
static const struct { const char *name, *inputs; } models[] = {
  {"OU_66", "inputs_66.npy"}, {"OU_J", "inputs_66.npy"}, {"OU_Y", "inputs_66.npy"}, {"OU_H", "inputs_66.npy"},
  {"OU_JYH", "inputs_66.npy"}, {"OU_200", "inputs_200.npy"}, {"OU_VIS", "inputs_200.npy"},
};

/* The Strong Lens Finding Challenge cutouts, in tests/data. */
#define BOLOGNA "bologna-challenge1"

/* lens predict --out writes the logits PyTorch computes, for every model. */
static void test_parity(void) {
  const char *dir = check_data_dir();
  char path[1024];
  size_t i;
  for (i = 0; i < sizeof models / sizeof models[0]; i++) {
    lensnet_model *m = NULL;
    lensnet_tensor x, ref, got;
    lensnet_error err;
    size_t n;
    printf("   %s\n", models[i].name);
    snprintf(path, sizeof path, "weights/%s.safetensors", models[i].name);
    if (lensnet_model_load(path, &m, &err) != LENSNET_OK) { CHECK(0, "load %s: %s", models[i].name, err.message); continue; }
    snprintf(path, sizeof path, "%s/wilde2022/%s", dir, models[i].inputs);
    if (lensnet_npy_read(path, &x, &err) != LENSNET_OK) { CHECK(0, "read inputs: %s", err.message); lensnet_model_free(m); continue; }
    snprintf(path, sizeof path, "%s/wilde2022/logits_%s.npy", dir, models[i].name);
    if (lensnet_npy_read(path, &ref, &err) != LENSNET_OK) {
      CHECK(0, "read logits: %s", err.message);
      lensnet_tensor_free(&x); lensnet_model_free(m);
      continue;
    }
    n = x.shape[0];
    /* exactly as a user runs it */
    CHECK(cli_lens("predict --model weights/%s.safetensors --preprocess none %s/wilde2022/%s --out build/parity_%s.npy 2>/dev/null",
                   models[i].name, dir, models[i].inputs, models[i].name) == 0, "lens predict with %s failed", models[i].name);
    snprintf(path, sizeof path, "build/parity_%s.npy", models[i].name);
    if (lensnet_npy_read(path, &got, &err) == LENSNET_OK) {
      double d;
      CHECK(got.ndim == 2 && got.shape[0] == n && got.shape[1] == m->out_features, "lens predict --out shape");
      d = got.shape[0] == n ? check_max_abs_diff(got.data, ref.data, n * m->out_features) : 1e30;
      printf("   lens predict: max |ours - PyTorch| = %.3g\n", d);
      CHECK(d <= 1e-4, "%s lens predict logits differ from PyTorch by %g", models[i].name, d);
      lensnet_tensor_free(&got);
    } else CHECK(0, "lens predict wrote no readable logits: %s", err.message);
    remove(path);
    if (x.shape[1] == m->in_c) { /* --exact: the direct sums, lensnet_model_forward's bits */
      float *lib = (float *)malloc(n * m->out_features * sizeof(float));
      CHECK(lib && lensnet_model_forward(m, n, x.data, lib, NULL, &err) == LENSNET_OK, "library forward: %s", err.message);
      CHECK(cli_lens("predict --exact --model weights/%s.safetensors --preprocess none %s/wilde2022/%s --out build/parity_%s.npy 2>/dev/null",
                     models[i].name, dir, models[i].inputs, models[i].name) == 0, "lens predict --exact with %s failed", models[i].name);
      if (lib && lensnet_npy_read(path, &got, &err) == LENSNET_OK) {
        CHECK(got.shape[0] == n && got.shape[1] == m->out_features && !memcmp(got.data, lib, n * m->out_features * sizeof(float)),
              "%s: lens predict --exact gives lensnet_model_forward's logits bit for bit", models[i].name);
        lensnet_tensor_free(&got);
      } else CHECK(0, "lens predict --exact wrote no readable logits: %s", err.message);
      remove(path);
      free(lib);
    }
    lensnet_tensor_free(&x); lensnet_tensor_free(&ref);
    lensnet_model_free(m);
  }
}

static void test_mismatched_inputs(void) {
  const char *dir = check_data_dir();
  char text[2048], orig[1200];
  CHECK(cli_lens("predict --model weights/OU_200.safetensors %s/wilde2022/inputs_66.npy > build/predict_err.txt 2>&1", dir) != 0,
        "a 66x66 input to OU_200 must fail");
  cli_text("build/predict_err.txt", text, sizeof text);
  CHECK(strstr(text, "66x66") && strstr(text, "200x200"), "message names both sizes: %s", text);
  CHECK(cli_lens("predict --model weights/OU_66.safetensors --preprocess none %s/wilde2022/inputs_66.npy --batch 4 > build/pred_t1.csv 2>/dev/null", dir) == 0 &&
        cli_lens("predict --model weights/OU_66.safetensors --preprocess none %s/wilde2022/inputs_66.npy --batch 4 --threads 3 > build/pred_t3.csv 2>/dev/null", dir) == 0 &&
        cli_same_file("build/pred_t1.csv", "build/pred_t3.csv"), "--threads 3 gives the same scores as one thread");
  remove("build/pred_t1.csv"); remove("build/pred_t3.csv");
  CHECK(cli_lens("predict --model weights/OU_66.safetensors --channels 0,1 %s/wilde2022/inputs_66.npy > /dev/null 2>&1", dir) != 0,
        "two channels for a four-band model must fail");
  CHECK(cli_lens("predict --model /nonexistent.safetensors x.npy > /dev/null 2>&1") != 0, "a missing model must fail");
  /* a failed run leaves no CSV header on standard output and none of the folders it made */
  CHECK(cli_shell("rm -rf build/pred_made") == 0 &&
            cli_lens("predict --model weights/OU_200.safetensors %s/wilde2022/inputs_66.npy > build/pred_stdout.csv 2> /dev/null", dir) == 1 &&
            cli_text("build/pred_stdout.csv", text, sizeof text)[0] == 0,
        "a refused input: nothing on standard output (got '%s')", text);
  CHECK(cli_lens("predict --model weights/OU_200.safetensors %s/wilde2022/inputs_66.npy --csv build/pred_made/a/s.csv --out build/pred_made/b/l.npy "
                 "2> /dev/null", dir) == 1 && access("build/pred_made", F_OK) != 0,
        "a refused input: the folders made for --csv and --out are gone again");
  CHECK(cli_shell("mkdir -p build/pred_kept") == 0 &&
            cli_lens("predict --model weights/OU_200.safetensors %s/wilde2022/inputs_66.npy --csv build/pred_kept/s.csv 2> /dev/null", dir) == 1 &&
            access("build/pred_kept", F_OK) == 0 && access("build/pred_kept/s.csv", F_OK) != 0,
        "a folder that was there stays, without a file");
  cli_shell("rm -rf build/pred_kept build/pred_stdout.csv");
  /* an output that is an input is refused before anything is written: the input stays */
  snprintf(orig, sizeof orig, "%s/wilde2022/inputs_66.npy", dir);
  CHECK(cli_shell("cp %s/wilde2022/inputs_66.npy build/pred_in.npy && printf 'build/pred_in.npy\\n' > build/pred_outlist.csv", dir) == 0 &&
            cli_lens_output(text, sizeof text, "predict --model weights/OU_66.safetensors build/pred_in.npy --out ./build/pred_in.npy") == 2 &&
            strstr(text, "is also an input") && cli_same_file("build/pred_in.npy", orig),
        "--out naming the input (by another path) is refused, the input kept: %s", text);
  CHECK(cli_lens_output(text, sizeof text, "predict --model weights/OU_66.safetensors --list build/pred_outlist.csv --out build/pred_in.npy") == 2 &&
            strstr(text, "is also an input") && cli_same_file("build/pred_in.npy", orig),
        "--out naming a file of the --list is refused: %s", text);
  CHECK(cli_lens_output(text, sizeof text, "predict --model weights/OU_66.safetensors --list build/pred_outlist.csv --csv build/pred_outlist.csv") == 2 &&
            strstr(text, "--csv build/pred_outlist.csv is also an input"),
        "--csv naming the --list file is refused: %s", text);
  remove("build/pred_in.npy"); remove("build/pred_outlist.csv");
  remove("build/predict_err.txt");
}

/* An array of zeros of the given shape, as .npy. */
static void write_zeros(const char *path, const size_t shape[4]) {
  lensnet_tensor t;
  lensnet_error err;
  lensnet_tensor_alloc(&t, 4, shape, &err);
  lensnet_npy_write(path, &t, &err);
  lensnet_tensor_free(&t);
}

static void test_odd_inputs(void) {
  lensnet_error err;
  lensnet_model *m = NULL;
  size_t empty_shape[4] = {1, 4, 0, 66}, wide_shape[4] = {1, 100, 4, 4}, img_shape[4] = {1, 4, 66, 66};
  char text[2048];
  write_zeros("build/pe_empty.npy", empty_shape);
  CHECK(cli_lens("predict --model weights/OU_66.safetensors --resize build/pe_empty.npy > /dev/null 2> build/pe_err.txt") != 0,
        "an empty image must fail");
  cli_text("build/pe_err.txt", text, sizeof text);
  CHECK(strstr(text, "empty") != NULL, "the message says the image is empty: %s", text);
  if (lensnet_model_create("input 100 4 4\nflatten\ndense name=d out=2", &m, &err) == LENSNET_OK) {
    lensnet_model_save(m, "build/pe_wide.safetensors", &err);
    lensnet_model_free(m);
  }
  write_zeros("build/pe_wide.npy", wide_shape);
  CHECK(cli_lens("predict --model build/pe_wide.safetensors build/pe_wide.npy > /dev/null 2> build/pe_err.txt") != 0,
        "a 100-band model must be refused");
  cli_text("build/pe_err.txt", text, sizeof text);
  CHECK(strstr(text, "64") != NULL, "the message names the limit: %s", text);
  if (lensnet_model_load("weights/OU_66.safetensors", &m, &err) == LENSNET_OK) {
    lensnet_model_set_meta(m, "classes", "a,b,c,d,e,f,g,lens");
    lensnet_model_save(m, "build/pe_classes.safetensors", &err);
    lensnet_model_free(m);
  }
  write_zeros("build/pe_img.npy", img_shape);
  CHECK(cli_lens("predict --model build/pe_classes.safetensors --batch 1 build/pe_img.npy > /dev/null 2> build/pe_err.txt") == 0,
        "class names that outnumber the outputs fall back to the last output");
  CHECK(strstr(cli_text("build/pe_err.txt", text, sizeof text), "names 8 classes (metadata classes=a,b,c,d,e,f,g,lens) for its 2 outputs") != NULL,
        "and a note says so: %s", text);
  /* a NaN among the weights: refused when the model is read, naming the tensor */
  if (lensnet_model_load("weights/OU_66.safetensors", &m, &err) == LENSNET_OK) {
    const lensnet_param *p = &m->params[3];
    m->values[p->offset + 5] = NAN;
    lensnet_model_save(m, "build/pe_nan.safetensors", &err);
    CHECK(cli_lens("predict --model build/pe_nan.safetensors build/pe_img.npy > build/pe_out.csv 2> build/pe_err.txt") == 1 &&
              strstr(cli_text("build/pe_err.txt", text, sizeof text), p->name) && strstr(text, "1 non-finite value (NaN or infinite; the first at flat index 5"),
          "a NaN weight is refused, naming its tensor: %s", text);
    CHECK(cli_text("build/pe_out.csv", text, sizeof text)[0] == 0, "and nothing is scored");
    lensnet_model_free(m);
    remove("build/pe_nan.safetensors"); remove("build/pe_out.csv");
  }
  remove("build/pe_empty.npy"); remove("build/pe_wide.npy"); remove("build/pe_wide.safetensors");
  remove("build/pe_classes.safetensors"); remove("build/pe_img.npy"); remove("build/pe_err.txt");
}

/* OU_VIS on the four space-based cutouts: a CSV with its header, p_lens within [0, 1]. */
static void test_fits_files(void) {
  const char *dir = check_data_dir();
  FILE *f;
  char line[2048];
  int rows = 0, probabilities_ok = 1;
  CHECK(cli_lens("predict --model weights/OU_VIS.safetensors --resize --minmax %s/" BOLOGNA "/space_based/lens/*.fits %s/" BOLOGNA
                 "/space_based/nolens/*.fits > build/pred_fits.csv 2>/dev/null", dir, dir) == 0,
        "OU_VIS on the space-based cutouts");
  f = fopen("build/pred_fits.csv", "r");
  while (f && fgets(line, sizeof line, f)) {
    char *comma = strchr(line, ',');
    if (rows++ == 0) { CHECK(!strncmp(line, "input,p_lens,logit_non-lens,logit_lens", 38), "CSV header: %s", line); continue; }
    if (comma) { double p = atof(comma + 1); probabilities_ok &= p >= 0.0 && p <= 1.0; }
  }
  if (f) fclose(f);
  CHECK(rows == 5, "4 cutouts scored (%d rows with the header)", rows);
  CHECK(probabilities_ok, "p_lens within [0, 1]");
  remove("build/pred_fits.csv");
  /* file names holding a comma or a quote are quoted in the CSV (RFC 4180), so the table still reads */
  {
    lensnet_csv t;
    lensnet_error err;
    CHECK(cli_shell("f=$(ls %s/" BOLOGNA "/space_based/lens/*.fits | head -n 1) && cp \"$f\" 'build/pred_a,b.fits' && "
                    "cp \"$f\" 'build/pred_q\"x.fits'", dir) == 0 &&
              cli_lens("predict --model weights/OU_VIS.safetensors --resize --minmax 'build/pred_a,b.fits' 'build/pred_q\"x.fits' "
                       "--out build/pred_names.csv 2> /dev/null") == 0,
          "cutouts named with a comma and a quote are scored");
    if (lensnet_csv_read("build/pred_names.csv", &t, &err) == LENSNET_OK) {
      CHECK(t.rows == 3 && t.cols == 4 && !strcmp(lensnet_csv_cell(&t, 1, 0), "build/pred_a,b.fits") &&
                !strcmp(lensnet_csv_cell(&t, 2, 0), "build/pred_q\"x.fits"),
            "and their names read back whole from the CSV (%lu rows, %lu columns)", (unsigned long)t.rows, (unsigned long)t.cols);
      lensnet_csv_free(&t);
    } else {
      CHECK(0, "the CSV of those names reads: %s", err.message);
    }
    cli_shell("rm -f 'build/pred_a,b.fits' 'build/pred_q\"x.fits' build/pred_names.csv");
  }
}

/* Tile-compressed cutouts (fpack's .fits.fz) score as CFITSIO's decompression of them does,
 * to every printed digit. */
static void test_fits_compressed(void) {
  static const char *names[] = {"rice_float_dither1", "gzip2_int32_tiles", "rice_int16_tiles"};
  const char *dir = check_data_dir();
  char packed[4096] = "", unpacked[4096] = "", a[4096], b[4096];
  FILE *fa, *fb;
  size_t k;
  int rows = 0, same = 1;
  for (k = 0; k < 3; k++) {
    size_t n = strlen(packed), m = strlen(unpacked);
    snprintf(packed + n, sizeof packed - n, " %s/fits/compressed/%s.fits.fz", dir, names[k]);
    snprintf(unpacked + m, sizeof unpacked - m, " %s/fits/compressed/%s.funpack.fits", dir, names[k]);
  }
  CHECK(cli_lens("predict --model weights/OU_VIS.safetensors --resize --minmax%s > build/pred_fz.csv 2>/dev/null", packed) == 0, "compressed cutouts scored");
  CHECK(cli_lens("predict --model weights/OU_VIS.safetensors --resize --minmax%s > build/pred_funpack.csv 2>/dev/null", unpacked) == 0, "funpack's scored");
  fa = fopen("build/pred_fz.csv", "r");
  fb = fopen("build/pred_funpack.csv", "r");
  while (fa && fb && fgets(a, sizeof a, fa) && fgets(b, sizeof b, fb)) {
    const char *ca = strchr(a, ','), *cb = strchr(b, ',');
    rows++;
    same &= ca && cb && !strcmp(ca, cb);
  }
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  CHECK(rows == 4 && same, "%d rows; the scores of the .fits.fz files must be those of funpack's files", rows);
  /* and gzipped: the same scores again */
  CHECK(cli_shell("gzip -c %s/fits/compressed/%s.funpack.fits > build/pred_gz.fits.gz", dir, names[0]) == 0 &&
            cli_lens("predict --model weights/OU_VIS.safetensors --resize --minmax build/pred_gz.fits.gz > build/pred_gz.csv 2>/dev/null") == 0,
        "a .fits.gz scored");
  fa = fopen("build/pred_gz.csv", "r");
  fb = fopen("build/pred_funpack.csv", "r");
  rows = 0;
  same = 1;
  while (fa && fb && fgets(a, sizeof a, fa) && fgets(b, sizeof b, fb)) {
    const char *ca = strchr(a, ','), *cb = strchr(b, ',');
    rows++;
    same &= ca && cb && !strcmp(ca, cb);
  }
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  CHECK(rows == 2 && same, "%d rows; the .fits.gz must score as the file it holds", rows);
  remove("build/pred_fz.csv");
  remove("build/pred_funpack.csv");
  remove("build/pred_gz.csv");
  remove("build/pred_gz.fits.gz");
}

/* Ground-based: four bands in four folders, one object per four files, listed in a file and
 * split over shards; one file where four bands are due is refused, counting bands. */
static void test_fits_lists_and_shards(void) {
  const char *dir = check_data_dir(), *predict = "predict --model weights/OU_66.safetensors --bands 4 --list build/pred_list.txt --resize --minmax";
  FILE *f = fopen("build/pred_list.txt", "w");
  char text[1024];
  int rows, rows0, rows1;
  if (f) {
    const char *ids[] = {"100002", "100003", "100014"};
    int k;
    for (k = 0; k < 3; k++)
      fprintf(f, "%s/" BOLOGNA "/ground_based/lens/Band1/imageSDSS_R-%s.fits %s/" BOLOGNA "/ground_based/lens/Band2/imageSDSS_I-%s.fits "
                 "%s/" BOLOGNA "/ground_based/lens/Band3/imageSDSS_G-%s.fits %s/" BOLOGNA "/ground_based/lens/Band4/imageSDSS_U-%s.fits\n",
              dir, ids[k], dir, ids[k], dir, ids[k], dir, ids[k]);
    fclose(f);
  }
  CHECK(cli_lens("%s > build/pred_all.csv 2>build/pred_err.txt", predict) == 0, "four-band objects from a list");
  CHECK(cli_lens("%s --shard 0/2 > build/pred_s0.csv 2>/dev/null", predict) == 0, "shard 0/2");
  CHECK(cli_lens("%s --shard 1/2 > build/pred_s1.csv 2>/dev/null", predict) == 0, "shard 1/2");
  rows = cli_lines("build/pred_all.csv");
  rows0 = cli_lines("build/pred_s0.csv");
  rows1 = cli_lines("build/pred_s1.csv");
  /* contiguous blocks: objects [0, 1) and [1, 3) */
  CHECK(rows == 4 && rows0 == 2 && rows1 == 3, "3 objects split 1 + 2 over the shards (rows %d, %d, %d with headers)", rows, rows0, rows1);
  CHECK(cli_shell("(cat build/pred_s0.csv; tail -n +2 build/pred_s1.csv) | cmp -s - build/pred_all.csv") == 0,
        "the shards' rows, joined in order, are the whole run's");
  CHECK(cli_lens("predict --model weights/OU_66.safetensors --bands 4 %s/" BOLOGNA "/space_based/lens/imageEUC_VIS-100002.fits > /dev/null 2>&1",
                 dir) != 0, "--bands 4 with one file must fail");
  CHECK(cli_lens("predict --model weights/OU_66.safetensors %s/" BOLOGNA "/space_based/lens/imageEUC_VIS-100002.fits > /dev/null 2> build/pred_err.txt",
                 dir) != 0, "a one-band cutout for a four-band model must fail");
  cli_text("build/pred_err.txt", text, sizeof text);
  CHECK(strstr(text, "1 band") && strstr(text, "takes 4"), "the message counts bands: %s", text);
  remove("build/pred_list.txt"); remove("build/pred_all.csv");
  remove("build/pred_s0.csv"); remove("build/pred_s1.csv"); remove("build/pred_err.txt");
}

/* --skip-bad: objects that cannot be read (a damaged file, a missing band) or do not fit the model
 * (another size without --resize) are named and left out, the rest scored as a run without them;
 * over shards, the manifests count them and lens merge joins the rows that are there. */
static void test_skip_bad(void) {
  const char *good = "samples/ou66/0000000_J.fits samples/ou66/0000001_J.fits samples/ou66/0000002_J.fits";
  const char *mixed = "samples/ou66/0000000_J.fits build/pred_bad.fits samples/ou66/0000001_J.fits samples/vis/0000000_VIS.fits "
                      "samples/ou66/0000002_J.fits";
  char text[4096];
  FILE *f = fopen("build/pred_bad.fits", "w");
  int k;
  if (f) { fputs("SIMPLE  =                    T / cut short here", f); fclose(f); }
  remove("build/pred_sb.csv");
  CHECK(cli_lens("predict --model weights/OU_J.safetensors %s --out build/pred_sb.csv 2> build/pred_err.txt", mixed) == 1 &&
            cli_file_has("build/pred_err.txt", "build/pred_bad.fits") && !check_file_exists("build/pred_sb.csv"),
        "without --skip-bad the damaged file stops the run, named, and no CSV is written: %s", cli_text("build/pred_err.txt", text, sizeof text));
  CHECK(cli_lens("predict --model weights/OU_J.safetensors %s --out build/pred_good.csv 2>/dev/null", good) == 0 &&
            cli_lens("predict --skip-bad --model weights/OU_J.safetensors %s --out build/pred_sb.csv 2> build/pred_err.txt", mixed) == 0,
        "with --skip-bad the run goes on (exit 0): %s", cli_text("build/pred_err.txt", text, sizeof text));
  CHECK(cli_shell("cmp -s build/pred_sb.csv build/pred_good.csv") == 0, "its CSV is the run's over the three good files, byte for byte");
  CHECK(cli_file_has("build/pred_err.txt", "--skip-bad: build/pred_bad.fits left out") &&
            cli_file_has("build/pred_err.txt", "--skip-bad: samples/vis/0000000_VIS.fits left out") &&
            cli_file_has("build/pred_err.txt", "200x200 but the model takes 66x66") &&
            cli_file_has("build/pred_err.txt", "note: 2 objects left out (--skip-bad), the first build/pred_bad.fits"),
        "each left-out object is named with its reason, and a note counts them: %s", cli_text("build/pred_err.txt", text, sizeof text));
  CHECK(!cli_file_has("build/pred_err.txt", "not at the model's pixel scale"), "left-out objects are not counted in the pixel-scale note");
  /* one band of an object missing: the object goes, its other bands with it */
  if ((f = fopen("build/pred_sb_list.txt", "w")) != NULL) {
    fprintf(f, "samples/ou66/0000000_J.fits samples/ou66/0000000_Y.fits samples/ou66/0000000_H.fits samples/ou66/0000000_VIS.fits\n");
    fprintf(f, "samples/ou66/0000001_J.fits build/pred_no_such_Y.fits samples/ou66/0000001_H.fits samples/ou66/0000001_VIS.fits\n");
    fprintf(f, "samples/ou66/0000002_J.fits samples/ou66/0000002_Y.fits samples/ou66/0000002_H.fits samples/ou66/0000002_VIS.fits\n");
    fclose(f);
  }
  CHECK(cli_lens("predict --skip-bad --model weights/OU_66.safetensors --bands 4 --list build/pred_sb_list.txt > build/pred_sb4.csv 2> build/pred_err.txt") == 0 &&
            cli_lines("build/pred_sb4.csv") == 3 && !cli_file_has("build/pred_sb4.csv", "0000001_J") &&
            cli_file_has("build/pred_err.txt", "--skip-bad: samples/ou66/0000001_J.fits and its other bands left out"),
        "--bands: an object with a missing band is left out whole: %s", cli_text("build/pred_err.txt", text, sizeof text));
  /* shards: two with a left-out object each side, as .npy and CSV; merged, the run without them */
  CHECK(cli_lens("predict --model weights/OU_J.safetensors %s --out build/pred_good.npy 2>/dev/null", good) == 0, "the good files' logits");
  for (k = 0; k < 2; k++)
    CHECK(cli_lens("predict --skip-bad --model weights/OU_J.safetensors %s --shard %d/2 --out build/pred_sb_%d.npy --csv build/pred_sb_%d.csv 2>/dev/null",
                   mixed, k, k, k) == 0, "shard %d/2 with --skip-bad", k);
  CHECK(cli_file_has("build/pred_sb_0.npy.shard.json", "\"left_out\": 1") && cli_file_has("build/pred_sb_1.csv.shard.json", "\"left_out\": 1"),
        "each shard's manifest counts the object it left out: %s", cli_text("build/pred_sb_0.npy.shard.json", text, sizeof text));
  CHECK(cli_lens("merge --out build/pred_sbm.npy build/pred_sb_0.npy build/pred_sb_1.npy 2> build/pred_err.txt") == 0 &&
            cli_shell("cmp -s build/pred_sbm.npy build/pred_good.npy") == 0 && cli_file_has("build/pred_err.txt", "2 left out"),
        "lens merge joins the .npy shards into the logits of the good files, byte for byte: %s", cli_text("build/pred_err.txt", text, sizeof text));
  CHECK(cli_lens("merge --out build/pred_sbm.csv build/pred_sb_0.csv build/pred_sb_1.csv 2>/dev/null") == 0 &&
            cli_shell("cmp -s build/pred_sbm.csv build/pred_good.csv") == 0,
        "and the CSV shards into their CSV");
  /* a shard that leaves out every one of its objects goes on (exit 0, no rows, all counted in its
     manifest): objects 1 and 2 of five in shard 1/3 */
  {
    const char *spread = "samples/ou66/0000000_J.fits build/pred_bad.fits samples/vis/0000000_VIS.fits samples/ou66/0000001_J.fits "
                         "samples/ou66/0000002_J.fits";
    for (k = 0; k < 3; k++)
      CHECK(cli_lens("predict --skip-bad --model weights/OU_J.safetensors %s --shard %d/3 --out build/pred_sp_%d.npy --csv build/pred_sp_%d.csv "
                     "2> build/pred_err.txt", spread, k, k, k) == 0,
            "shard %d/3 with --skip-bad exits 0: %s", k, cli_text("build/pred_err.txt", text, sizeof text));
    CHECK(cli_lines("build/pred_sp_1.csv") == 1 && cli_file_has("build/pred_sp_1.csv.shard.json", "\"left_out\": 2"),
          "shard 1/3, every object left out: the CSV header alone, both counted in its manifest: %s",
          cli_text("build/pred_sp_1.csv.shard.json", text, sizeof text));
    CHECK(cli_lens("merge --out build/pred_spm.npy build/pred_sp_0.npy build/pred_sp_1.npy build/pred_sp_2.npy 2> build/pred_err.txt") == 0 &&
              cli_shell("cmp -s build/pred_spm.npy build/pred_good.npy") == 0 &&
              cli_lens("merge --out build/pred_spm.csv build/pred_sp_0.csv build/pred_sp_1.csv build/pred_sp_2.csv 2>/dev/null") == 0 &&
              cli_shell("cmp -s build/pred_spm.csv build/pred_good.csv") == 0,
          "the three shards merge into the good files' run, .npy and CSV, byte for byte: %s", cli_text("build/pred_err.txt", text, sizeof text));
    /* every object of the whole run left out, one shard at a time: lens merge refuses the run */
    for (k = 0; k < 2; k++)
      CHECK(cli_lens("predict --skip-bad --model weights/OU_J.safetensors build/pred_bad.fits samples/vis/0000000_VIS.fits --shard %d/2 "
                     "--csv build/pred_sq_%d.csv 2>/dev/null", k, k) == 0, "all-bad shard %d/2 exits 0", k);
    CHECK(cli_lens("merge --out build/pred_sqm.csv build/pred_sq_0.csv build/pred_sq_1.csv 2> build/pred_err.txt") == 1 &&
              cli_file_has("build/pred_err.txt", "left out every object of the run (2 of 2)") && !check_file_exists("build/pred_sqm.csv"),
          "lens merge refuses a run whose every object was left out, writing nothing: %s", cli_text("build/pred_err.txt", text, sizeof text));
  }
  /* a manifest that claims fewer rows than the file holds is refused, naming both */
  cli_shell("sed 's/\"left_out\": 1/\"left_out\": 2/' build/pred_sb_0.csv.shard.json > build/pred_m.tmp && mv build/pred_m.tmp build/pred_sb_0.csv.shard.json");
  CHECK(cli_lens("merge --out build/pred_sbm2.csv build/pred_sb_0.csv build/pred_sb_1.csv 2> build/pred_err.txt") == 1 &&
            cli_file_has("build/pred_err.txt", "less those left out") && !check_file_exists("build/pred_sbm2.csv"),
        "rows that do not match the manifest's count are refused: %s", cli_text("build/pred_err.txt", text, sizeof text));
  cli_shell("sed 's/\"left_out\": 2/\"left_out\": 3/' build/pred_sb_0.csv.shard.json > build/pred_m.tmp && mv build/pred_m.tmp build/pred_sb_0.csv.shard.json");
  CHECK(cli_lens("merge --out build/pred_sbm2.csv build/pred_sb_0.csv build/pred_sb_1.csv 2> build/pred_err.txt") == 1 &&
            cli_file_has("build/pred_err.txt", "more left out than it holds"),
        "a manifest leaving out more objects than its range is not a manifest: %s", cli_text("build/pred_err.txt", text, sizeof text));
  /* every object left out: an option or the model, not the files; the run fails */
  CHECK(cli_lens("predict --skip-bad --model weights/OU_J.safetensors --hdu 2 %s > build/pred_sb_all.csv 2> build/pred_err.txt", good) == 1 &&
            cli_file_has("build/pred_err.txt", "--skip-bad left out every object (3 of 3)"),
        "--skip-bad leaving out every object fails, saying so: %s", cli_text("build/pred_err.txt", text, sizeof text));
  /* --mc: an object's dropout passes follow its number among all inputs, left-out ones included,
     so the shards merge into the bytes of one run */
  if ((f = fopen("build/pred_sb_mc.txt", "w")) != NULL) {
    fprintf(f, "samples/vis/0000000_VIS.fits\nbuild/pred_no_such.fits\nsamples/vis/0000001_VIS.fits\nsamples/vis/0000002_VIS.fits\n");
    fclose(f);
  }
  CHECK(cli_lens("predict --skip-bad --model weights/ensai-sim.safetensors --mc 4 --crop --list build/pred_sb_mc.txt --out build/pred_sb_mc.csv 2>/dev/null") == 0,
        "--skip-bad with --mc");
  for (k = 0; k < 2; k++)
    cli_lens("predict --skip-bad --model weights/ensai-sim.safetensors --mc 4 --crop --list build/pred_sb_mc.txt --shard %d/2 --out build/pred_sb_mc%d.csv 2>/dev/null",
             k, k);
  CHECK(cli_lens("merge --out build/pred_sb_mcm.csv build/pred_sb_mc0.csv build/pred_sb_mc1.csv 2>/dev/null") == 0 &&
            cli_shell("cmp -s build/pred_sb_mcm.csv build/pred_sb_mc.csv") == 0 && cli_lines("build/pred_sb_mc.csv") == 4,
        "--mc sigmas of merged shards are the single run's, byte for byte, with an object left out in the first shard");
  /* lists: a folder, a byte-order mark, a carriage return before a comment */
  cli_shell("mkdir -p build/pred_sb_dir.txt");
  CHECK(cli_lens("predict --model weights/OU_J.safetensors --list build/pred_sb_dir.txt > /dev/null 2> build/pred_err.txt") == 1 &&
            cli_file_has("build/pred_err.txt", "cannot read the list"),
        "a folder given as --list is refused: %s", cli_text("build/pred_err.txt", text, sizeof text));
  if ((f = fopen("build/pred_sb_bom.txt", "wb")) != NULL) {
    fprintf(f, "\xef\xbb\xbfsamples/ou66/0000000_J.fits\r\n\r# a note\r\nsamples/ou66/0000001_J.fits\r\n  \t\r\nsamples/ou66/0000002_J.fits");
    fclose(f);
  }
  CHECK(cli_lens("predict --model weights/OU_J.safetensors --list build/pred_sb_bom.txt --out build/pred_sb_bom.csv 2> build/pred_err.txt") == 0 &&
            cli_shell("cmp -s build/pred_sb_bom.csv build/pred_good.csv") == 0,
        "a list with a byte-order mark, CRLF lines, a comment after a carriage return, a blank line and no final newline: the three "
        "objects (%s)", cli_text("build/pred_err.txt", text, sizeof text));
  CHECK(cli_lens("predict --model weights/OU_J.safetensors --list build/pred_sb_bom.txt --shard 1/3 --out build/pred_sb_bom1.csv 2> build/pred_err.txt") == 0 &&
            cli_lines("build/pred_sb_bom1.csv") == 2 && cli_file_has("build/pred_sb_bom1.csv", "0000001_J"),
        "its shards count the same three objects: %s", cli_text("build/pred_err.txt", text, sizeof text));
  cli_shell("rm -rf build/pred_sb* build/pred_sp* build/pred_sq* build/pred_good.* build/pred_bad.fits build/pred_err.txt");
}

/* An input plane that holds no image (every finite pixel the same value, or none finite: a cutout
 * wholly off a survey's footprint) gets the object a note; with --skip-bad a FITS object is left
 * out, named with the plane (or, with --bands, the file) and the model band it feeds. */
static void test_empty_band(void) {
  lensnet_tensor t, one, big, band;
  lensnet_error err;
  size_t shape[4] = {4, 4, 66, 66}, bshape[3] = {4, 100, 100}, hw = 66 * 66, per = 4 * 66 * 66, k;
  char text[4096];
  FILE *f;
  if (lensnet_tensor_alloc(&t, 4, shape, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); return; }
  for (k = 0; k < 4 * per; k++) t.data[k] = (float)sin(0.37 * (double)k) + 0.01f * (float)(k % 7);
  for (k = 0; k < hw; k++) {
    t.data[1 * per + 2 * hw + k] = NAN;  /* object 1: band 2 blank */
    t.data[2 * per + 0 * hw + k] = 0.0f; /* object 2: band 0 zero-filled */
    t.data[3 * per + 3 * hw + k] = k == 100 ? 1.0f : 0.0f; /* object 3: one pixel in band 3 holds light */
  }
  t.data[2 * per + 5] = NAN; /* blank and zero in one band: still no image */
  CHECK(lensnet_npy_write("build/pred_eb.npy", &t, &err) == LENSNET_OK, "stack written: %s", err.message);
  CHECK(cli_lens("predict --model weights/OU_66.safetensors build/pred_eb.npy > build/pred_eb.csv 2> build/pred_err.txt") == 0 &&
            cli_lines("build/pred_eb.csv") == 5,
        "a .npy stack with empty planes is scored, every object a row: %s", cli_text("build/pred_err.txt", text, sizeof text));
  CHECK(cli_file_has("build/pred_err.txt", "note: 2 objects scored with an input plane that holds no image") &&
            cli_file_has("build/pred_err.txt", "the first build/pred_eb.npy[1], plane 2 (fed as the model's ") &&
            !cli_file_has("build/pred_err.txt", "--skip-bad"),
        "a note counts the two objects and names the first with its plane (no --skip-bad hint for a stack): %s",
        cli_text("build/pred_err.txt", text, sizeof text));
  CHECK(cli_lens("predict --skip-bad --model weights/OU_66.safetensors build/pred_eb.npy > build/pred_eb.csv 2> build/pred_err.txt") == 0 &&
            cli_lines("build/pred_eb.csv") == 5 && cli_file_has("build/pred_err.txt", "not the rows of a .npy stack"),
        "--skip-bad leaves no row of a stack out, and the note says so: %s", cli_text("build/pred_err.txt", text, sizeof text));
  /* one FITS cube an object: the good one and the one with a blank band */
  shape[0] = 1;
  if (lensnet_tensor_alloc(&one, 3, shape + 1, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); lensnet_tensor_free(&t); return; }
  memcpy(one.data, t.data, per * sizeof(float));
  CHECK(lensnet_fits_write("build/pred_eb0.fits", &one, &err) == LENSNET_OK, "cube 0 written: %s", err.message);
  memcpy(one.data, t.data + per, per * sizeof(float));
  CHECK(lensnet_fits_write("build/pred_eb1.fits", &one, &err) == LENSNET_OK, "cube 1 written: %s", err.message);
  memcpy(one.data, t.data + 3 * per, per * sizeof(float));
  CHECK(lensnet_fits_write("build/pred_eb3.fits", &one, &err) == LENSNET_OK, "cube 3 written: %s", err.message);
  CHECK(cli_lens("predict --model weights/OU_66.safetensors build/pred_eb0.fits build/pred_eb3.fits > build/pred_eb.csv 2> build/pred_err.txt") == 0 &&
            cli_lines("build/pred_eb.csv") == 3 && !cli_file_has("build/pred_err.txt", "holds no image"),
        "planes with light, even one pixel of it, are no note: %s", cli_text("build/pred_err.txt", text, sizeof text));
  CHECK(cli_lens("predict --model weights/OU_66.safetensors build/pred_eb0.fits build/pred_eb1.fits > build/pred_eb.csv 2> build/pred_err.txt") == 0 &&
            cli_lines("build/pred_eb.csv") == 3 && cli_file_has("build/pred_err.txt", "note: 1 object scored with an input plane that holds no image") &&
            cli_file_has("build/pred_err.txt", "the first build/pred_eb1.fits, plane 2 (fed as the model's ") &&
            cli_file_has("build/pred_err.txt", "; --skip-bad leaves such FITS objects out"),
        "without --skip-bad the FITS object is scored and noted: %s", cli_text("build/pred_err.txt", text, sizeof text));
  CHECK(cli_lens("predict --skip-bad --model weights/OU_66.safetensors build/pred_eb0.fits build/pred_eb1.fits > build/pred_eb.csv 2> build/pred_err.txt") == 0 &&
            cli_lines("build/pred_eb.csv") == 2 && !cli_file_has("build/pred_eb.csv", "pred_eb1") &&
            cli_file_has("build/pred_err.txt", "build/pred_eb1.fits, plane 2 (fed as the model's ") &&
            cli_file_has("build/pred_err.txt", "holds no image (every finite pixel the same value, or none finite)") &&
            cli_file_has("build/pred_err.txt", "--skip-bad: build/pred_eb1.fits left out") && !cli_file_has("build/pred_err.txt", "scored with an input plane"),
        "with --skip-bad it is named with its plane and left out: %s", cli_text("build/pred_err.txt", text, sizeof text));
  /* --channels: the plane fed is the one tested (plane 3 of cube 3 holds one lit pixel; feeding plane
     0 of cube 1 four times skips its blank plane 2) */
  CHECK(cli_lens("predict --channels 0,0,0,0 --model weights/OU_66.safetensors build/pred_eb1.fits > build/pred_eb.csv 2> build/pred_err.txt") == 0 &&
            !cli_file_has("build/pred_err.txt", "holds no image"),
        "a blank plane --channels does not feed is no note: %s", cli_text("build/pred_err.txt", text, sizeof text));
  /* --resize: a constant plane of another size is caught before the resampling's rounding */
  if (lensnet_tensor_alloc(&big, 3, bshape, &err) == LENSNET_OK) {
    for (k = 0; k < 4 * 100 * 100; k++) big.data[k] = (k / 10000) == 1 ? 0.1f : (float)cos(0.21 * (double)k);
    CHECK(lensnet_fits_write("build/pred_eb_big.fits", &big, &err) == LENSNET_OK, "the 100x100 cube written: %s", err.message);
    CHECK(cli_lens("predict --resize --skip-bad --model weights/OU_66.safetensors build/pred_eb0.fits build/pred_eb_big.fits > build/pred_eb.csv 2> build/pred_err.txt") == 0 &&
              cli_lines("build/pred_eb.csv") == 2 && cli_file_has("build/pred_err.txt", "build/pred_eb_big.fits, plane 1 (fed as the model's "),
          "--resize: a plane of one value (0.1) at 100 x 100 is found and left out: %s", cli_text("build/pred_err.txt", text, sizeof text));
    /* --bands: one file a band, the zero one named */
    bshape[0] = 66; bshape[1] = 66;
    if (lensnet_tensor_alloc(&band, 2, bshape, &err) == LENSNET_OK) {
      for (k = 0; k < 4; k++) {
        char path[64];
        size_t q;
        for (q = 0; q < hw; q++) band.data[q] = k == 2 ? 0.0f : (float)sin(0.1 * (double)(q + 7 * k));
        snprintf(path, sizeof path, "build/pred_eb_b%lu.fits", (unsigned long)k);
        CHECK(lensnet_fits_write(path, &band, &err) == LENSNET_OK, "band file %lu written: %s", (unsigned long)k, err.message);
      }
      if ((f = fopen("build/pred_eb_list.txt", "w")) != NULL) {
        fprintf(f, "build/pred_eb_b0.fits build/pred_eb_b1.fits build/pred_eb_b2.fits build/pred_eb_b3.fits\n");
        fclose(f);
      }
      CHECK(cli_lens("predict --bands 4 --list build/pred_eb_list.txt --model weights/OU_66.safetensors > build/pred_eb.csv 2> build/pred_err.txt") == 0 &&
                cli_lines("build/pred_eb.csv") == 2 && cli_file_has("build/pred_err.txt", "the first build/pred_eb_b2.fits (fed as the model's "),
            "--bands: the note names the file that holds no image: %s", cli_text("build/pred_err.txt", text, sizeof text));
      lensnet_tensor_free(&band);
    }
    lensnet_tensor_free(&big);
  }
  lensnet_tensor_free(&one);
  lensnet_tensor_free(&t);
  cli_shell("rm -f build/pred_eb* build/pred_err.txt");
}

/* --list lines whose paths hold spaces: tabs or commas separate paths where a line has them,
 * blanks otherwise, and with one path per object the line is the path; '#' after a blank starts
 * a comment. The scores are those of the same files named without spaces. */
static void test_list_spaces(void) {
  const char *b[4] = {"J", "Y", "H", "VIS"};
  char text[2048];
  FILE *f;
  int k, ok = cli_shell("rm -rf 'build/pred sp' && mkdir -p 'build/pred sp' && cp samples/ou66/0000000_*.fits 'build/pred sp/'") == 0;
  CHECK(ok, "copy the sample cutouts into a folder with a space in its name");
  if (!ok) return;
  if ((f = fopen("build/pred_sp_plain.txt", "w")) != NULL) {
    for (k = 0; k < 4; k++) fprintf(f, "samples/ou66/0000000_%s.fits%s", b[k], k < 3 ? " " : "\n");
    fclose(f);
  }
  if ((f = fopen("build/pred_sp_comma.txt", "w")) != NULL) {  /* commas, blanks around them, a tab, CRLF */
    fprintf(f, "# four bands a line\n");
    for (k = 0; k < 4; k++) fprintf(f, "build/pred sp/0000000_%s.fits%s", b[k], k == 0 ? " , " : k == 1 ? "," : k == 2 ? "\t" : "  # the VIS file last\r\n");
    fclose(f);
  }
  CHECK(cli_lens("predict --model weights/OU_66.safetensors --bands 4 --list build/pred_sp_plain.txt > build/pred_sp_plain.csv 2>/dev/null") == 0 &&
            cli_lens("predict --model weights/OU_66.safetensors --bands 4 --list build/pred_sp_comma.txt > build/pred_sp_comma.csv 2> build/pred_err.txt") == 0,
        "four-band lists with and without spaces in the paths: %s", cli_text("build/pred_err.txt", text, sizeof text));
  CHECK(cli_shell("cut -d, -f2- build/pred_sp_comma.csv > build/pred_sp_comma.cut && cut -d, -f2- build/pred_sp_plain.csv | cmp -s - build/pred_sp_comma.cut") == 0 &&
            cli_lines("build/pred_sp_comma.csv") == 2,
        "the same scores (one row)");
  CHECK(cli_file_has("build/pred_sp_comma.csv", "build/pred sp/0000000_J.fits+build/pred sp/0000000_Y.fits"), "the input column names the files with their spaces");
  if ((f = fopen("build/pred_sp_one.txt", "w")) != NULL) {  /* one path a line: the whole line, its blanks at the ends dropped */
    fprintf(f, "  build/pred sp/0000000_J.fits  \n\n# a comment\nbuild/pred sp/0000000_Y.fits # and a note\n");
    fclose(f);
  }
  CHECK(cli_lens("predict --model weights/OU_J.safetensors --list build/pred_sp_one.txt > build/pred_sp_one.csv 2> build/pred_err.txt") == 0 &&
            cli_lines("build/pred_sp_one.csv") == 3,
        "one path a line holding spaces: two objects (%s)", cli_text("build/pred_err.txt", text, sizeof text));
  CHECK(cli_lens("predict --model weights/OU_J.safetensors samples/ou66/0000000_J.fits samples/ou66/0000000_Y.fits > build/pred_sp_args.csv 2>/dev/null") == 0 &&
            cli_shell("cut -d, -f2- build/pred_sp_args.csv > build/pred_sp_args.cut && cut -d, -f2- build/pred_sp_one.csv | cmp -s - build/pred_sp_args.cut") == 0,
        "their scores are the files' given as arguments");
  if ((f = fopen("build/pred_sp_bad.txt", "w")) != NULL) {
    fprintf(f, "build/pred sp/0000000_J.fits\n");
    fclose(f);
  }
  CHECK(cli_lens("predict --model weights/OU_66.safetensors --bands 4 --list build/pred_sp_bad.txt > /dev/null 2> build/pred_err.txt") != 0 &&
            cli_file_has("build/pred_err.txt", "pred_sp_bad.txt:1: expected 4 path(s) per line, found 2 (paths are separated by tabs or commas"),
        "a path with a space where four bands are due: the line is refused, by number, the rule said (%s)", cli_text("build/pred_err.txt", text, sizeof text));
  cli_shell("rm -rf 'build/pred sp' build/pred_sp_*");
  remove("build/pred_err.txt");
}

/* --bands with one file a band: files whose FILTER headers name the model's bands (samples/ou66,
 * FILTER J, Y, H, VIS as OU-66's band_names) go to those bands in whatever order they are given
 * (a shell glob gives H, J, VIS, Y), with a note; a band named twice is refused; with --channels
 * the files are the caller's to order, and are taken as given. */
/* lens sim --fits cubes name their planes (BAND1 = 'VIS', ...): a model whose band_names list them
 * in another order (OU-66: J,Y,H,VIS) gets them by name, as --channels 2,1,3,0 gives the .npy */
static void test_cube_band_names(void) {
  char byname[1024], npy[1024];
  lensnet_model *m = NULL;
  lensnet_error err;
  size_t slot[4] = {9, 9, 9, 9};
  int named = -1;
  CHECK(cli_lens("sim --preset euclid-lensfinding --n 3 --seed 4 --fits --out build/pred_cube > /dev/null 2>&1") == 0, "lens sim --fits");
  {
    char b1[72] = "", b4[72] = "", ps[72] = "", unit[72] = "";
    const char *f = "build/pred_cube/fits/0000001.fits";
    lensnet_fits_header_value(f, 0, "BAND1", b1, sizeof b1, NULL);
    lensnet_fits_header_value(f, 0, "BAND4", b4, sizeof b4, NULL);
    lensnet_fits_header_value(f, 0, "PIXSCALE", ps, sizeof ps, NULL);
    lensnet_fits_header_value(f, 0, "BUNIT", unit, sizeof unit, NULL);
    CHECK(!strcmp(b1, "VIS") && !strcmp(b4, "H") && atof(ps) == 0.3 && !strcmp(unit, "counts/s"),
          "its FITS cubes name each plane's band, the pixel scale and the unit: BAND1 '%s', BAND4 '%s', PIXSCALE %s, BUNIT '%s'", b1, b4, ps, unit);
  }
  if (lensnet_model_load("weights/OU_66.safetensors", &m, &err) == LENSNET_OK) {
    CHECK(lensnet_fits_cube_band_slots(m, "build/pred_cube/fits/0000001.fits", -1, 4, slot, &named, &err) == LENSNET_OK && named == 1 &&
              slot[0] == 3 && slot[1] == 1 && slot[2] == 0 && slot[3] == 2,
          "lensnet_fits_cube_band_slots: VIS,Y,J,H go to OU-66's bands 3,1,0,2 (got %d: %lu %lu %lu %lu)", named, (unsigned long)slot[0],
          (unsigned long)slot[1], (unsigned long)slot[2], (unsigned long)slot[3]);
    CHECK(lensnet_fits_cube_band_slots(m, "build/pred_cube/fits/0000001.fits", -1, 3, slot, &named, &err) == LENSNET_OK && named == 0 &&
              slot[0] == 0 && slot[2] == 2, "three planes for a four-band model: the order as given");
    lensnet_model_free(m);
  }
  CHECK(cli_lens("predict --model weights/OU_66.safetensors build/pred_cube/fits/0000001.fits > build/pred_cube.csv 2> build/pred_err.txt") == 0 &&
            cli_file_has("build/pred_err.txt", "fed to the model by name") &&
            cli_lens("predict --model weights/OU_66.safetensors --channels 2,1,3,0 build/pred_cube/images.npy > build/pred_cube_npy.csv 2> /dev/null") == 0,
        "lens predict on the cube notes the reordering");
  cli_text("build/pred_cube.csv", byname, sizeof byname);
  cli_text("build/pred_cube_npy.csv", npy, sizeof npy);
  {
    const char *a = strchr(byname, '\n'), *b = strchr(npy, '\n');
    b = b ? strchr(b + 1, '\n') : NULL; /* the .npy's second object, index 1 */
    const char *ca = a ? strchr(a + 1, ',') : NULL, *cb = b ? strchr(b + 1, ',') : NULL;
    size_t na = ca ? strcspn(ca, "\n") : 0;
    CHECK(ca && cb && na > 10 && strcspn(cb, "\n") == na && !strncmp(ca, cb, na),
          "and scores it as the .npy's object 1 with --channels 2,1,3,0:\n%s\n%s", byname, npy);
  }
  CHECK(cli_lens("predict --model weights/OU_66.safetensors --channels 0,1,2,3 build/pred_cube/fits/0000001.fits > /dev/null 2> build/pred_err.txt") == 0 &&
            !cli_file_has("build/pred_err.txt", "by name"), "--channels takes the planes as given");
  /* the same cube without its BANDn cards (renamed XANDn): fed in file order, and said so */
  CHECK(cli_shell("LC_ALL=C sed 's/BAND\\([1-4]\\) /XAND\\1 /g' build/pred_cube/fits/0000001.fits > build/pred_cube/unnamed.fits") == 0 &&
            cli_lens("predict --model weights/OU_66.safetensors build/pred_cube/unnamed.fits > /dev/null 2> build/pred_err.txt") == 0 &&
            cli_file_has("build/pred_err.txt", "names no planes (no BAND1, BAND2, ... cards): they are fed in file order as the model's J,Y,H,VIS"),
        "a cube that names no planes: fed in file order, with a note: %s", cli_text("build/pred_err.txt", npy, sizeof npy));
  /* a cube fed by name, then one without names: a note for each (the second was once silent) */
  CHECK(cli_lens("predict --model weights/OU_66.safetensors build/pred_cube/fits/0000001.fits build/pred_cube/unnamed.fits > /dev/null 2> "
                 "build/pred_err.txt") == 0 &&
            cli_file_has("build/pred_err.txt", "0000001.fits names its planes (BAND1, BAND2, ...) in another order") &&
            cli_file_has("build/pred_err.txt", "unnamed.fits names no planes"),
        "a named cube then an unnamed one: a note for each: %s", cli_text("build/pred_err.txt", npy, sizeof npy));
  cli_shell("rm -rf build/pred_cube build/pred_cube.csv build/pred_cube_npy.csv build/pred_err.txt");
}

/* A .npy has no header for band names: lens sim writes them beside it as bands.txt, and lens
 * predict feeds the planes by those names (OU-66 takes J,Y,H,VIS from a VIS,Y,J,H stack, as
 * --channels 2,1,3,0 does); a bands.txt that does not fit is refused, --channels overrides it. */
static void test_npy_band_names(void) {
  char text[4096], byname[4096], bychannels[4096], err[2048];
  lensnet_model *m = NULL;
  lensnet_error e;
  size_t pick[4] = {9, 9, 9, 9};
  int named = -1;
  CHECK(cli_shell("rm -rf build/pred_bt") == 0 && cli_lens("sim --preset euclid-lensfinding --n 4 --seed 6 --out build/pred_bt > /dev/null 2>&1") == 0 &&
            !strcmp(cli_text("build/pred_bt/bands.txt", text, sizeof text), "VIS,Y,J,H\n"),
        "lens sim writes bands.txt: '%s'", text);
  if (lensnet_model_load("weights/OU_66.safetensors", &m, &e) == LENSNET_OK) {
    CHECK(lensnet_band_pick(m, " VIS, NISP_Y ,J,H\n", 4, pick, &named, &e) == LENSNET_OK && named == 1 && pick[0] == 2 && pick[1] == 1 &&
              pick[2] == 3 && pick[3] == 0,
          "lensnet_band_pick: OU-66's J,Y,H,VIS are planes 2,1,3,0 of VIS,Y,J,H (got %d: %lu %lu %lu %lu)", named, (unsigned long)pick[0],
          (unsigned long)pick[1], (unsigned long)pick[2], (unsigned long)pick[3]);
    CHECK(lensnet_band_pick(m, "VIS,Y,J", 4, pick, &named, &e) == LENSNET_ERR_FORMAT && named == 0 && strstr(e.message, "3 band names (VIS,Y,J) for an image of 4 planes"),
          "three names for four planes: %s", e.message);
    CHECK(lensnet_band_pick(m, "VIS,Y,J,Y", 4, pick, &named, &e) == LENSNET_ERR_FORMAT && strstr(e.message, "both 'Y'"), "a band twice: %s",
          e.message);
    CHECK(lensnet_band_pick(m, "VIS,Y,J,K", 4, pick, &named, &e) == LENSNET_ERR_SHAPE && strstr(e.message, "'H'") && strstr(e.message, "VIS,Y,J,K"),
          "the model's H missing: %s", e.message);
    CHECK(lensnet_band_pick(m, NULL, 4, pick, &named, &e) == LENSNET_OK && named == 0 && pick[0] == 0 && pick[3] == 3, "no names: in order");
    lensnet_model_free(m);
  }
  CHECK(cli_lens("predict --model weights/OU_66.safetensors build/pred_bt/images.npy > build/pred_bt/byname.csv 2> build/pred_bt/err.txt") == 0 &&
            cli_file_has("build/pred_bt/err.txt", "holds VIS,Y,J,H (build/pred_bt/bands.txt); the model takes J,Y,H,VIS: its planes are fed by name"),
        "OU-66 on lens sim's stack: fed by name, with a note: %s", cli_text("build/pred_bt/err.txt", err, sizeof err));
  CHECK(cli_lens("predict --model weights/OU_66.safetensors --channels 2,1,3,0 build/pred_bt/images.npy > build/pred_bt/bych.csv 2> build/pred_bt/err.txt") == 0 &&
            !cli_file_has("build/pred_bt/err.txt", "by name") && cli_same_file("build/pred_bt/byname.csv", "build/pred_bt/bych.csv"),
        "the same scores as --channels 2,1,3,0, byte for byte:\n%s\n%s", cli_text("build/pred_bt/byname.csv", byname, sizeof byname),
        cli_text("build/pred_bt/bych.csv", bychannels, sizeof bychannels));
  CHECK(cli_lens("explain --model weights/OU_66.safetensors --input build/pred_bt/images.npy --index 1 --method saliency --out build/pred_bt/x1 "
                 "2> build/pred_bt/err.txt") == 0 && cli_file_has("build/pred_bt/err.txt", "fed by name") &&
            cli_lens("explain --model weights/OU_66.safetensors --input build/pred_bt/images.npy --index 1 --channels 2,1,3,0 --method saliency "
                     "--out build/pred_bt/x2 2> /dev/null") == 0 &&
            cli_same_file("build/pred_bt/x1/saliency.npy", "build/pred_bt/x2/saliency.npy"),
        "lens explain feeds the planes by name too");
  CHECK(cli_lens("predict --model weights/ou66-sim.safetensors build/pred_bt/images.npy > /dev/null 2> build/pred_bt/err.txt") == 0 &&
            !cli_file_has("build/pred_bt/err.txt", "by name"), "a model of lens sim's order: no note");
  CHECK(cli_lens("predict --model weights/OU_J.safetensors --resize build/pred_bt/images.npy > build/pred_bt/j.csv 2> build/pred_bt/err.txt") == 0 &&
            cli_file_has("build/pred_bt/err.txt", "the model takes J: its planes are fed by name") &&
            cli_lens("predict --model weights/OU_J.safetensors --resize --channels 2 build/pred_bt/images.npy > build/pred_bt/j2.csv 2> /dev/null") == 0 &&
            cli_same_file("build/pred_bt/j.csv", "build/pred_bt/j2.csv"),
        "a one-band model gets its band, J, not the first plane");
  { /* several inputs: a note for each fed otherwise than the one before; X.bands.txt names X.npy's planes;
     * bands.txt names only images.npy's */
    cli_shell("mkdir -p build/pred_bt/b && cp build/pred_bt/images.npy build/pred_bt/b/stack.npy && printf '\\357\\273\\277vis\\r\\nNISP_Y\\r\\nJ\\r\\nH\\r\\n' > "
              "build/pred_bt/b/stack.bands.txt && cp build/pred_bt/images.npy build/pred_bt/b/images.npy && cp build/pred_bt/images.npy build/pred_bt/plain.npy");
    CHECK(cli_lens("predict --model weights/OU_66.safetensors build/pred_bt/images.npy build/pred_bt/b/stack.npy build/pred_bt/b/images.npy "
                   "build/pred_bt/plain.npy > build/pred_bt/four.csv 2> build/pred_bt/err.txt") == 0 &&
              cli_file_has("build/pred_bt/err.txt", "build/pred_bt/b/images.npy names no bands (no build/pred_bt/b/bands.txt): its planes are fed in file order") &&
              cli_file_has("build/pred_bt/err.txt", "build/pred_bt/plain.npy") == 0 && !cli_file_has("build/pred_bt/err.txt", "b/stack.npy holds"),
          "four inputs: a note where the feeding changes (by name, by name again with a BOM, CRLF and prefixes, file order, file order): %s",
          cli_text("build/pred_bt/err.txt", err, sizeof err));
    /* the first input unnamed: file order is said, with the model's bands, so a stack in another
     * order is not scored silently (docs/predict.md has a lens scored 0.444 by name, 0.169 in file order) */
    CHECK(cli_lens("predict --model weights/OU_66.safetensors build/pred_bt/plain.npy > /dev/null 2> build/pred_bt/err.txt") == 0 &&
              cli_file_has("build/pred_bt/err.txt", "build/pred_bt/plain.npy names no bands (no build/pred_bt/plain.bands.txt): its planes are "
                           "fed in file order as the model's J,Y,H,VIS"),
          "one unnamed stack: a note of file order and the model's bands: %s", cli_text("build/pred_bt/err.txt", err, sizeof err));
    /* X.NPY is a .npy as X.npy is (it was read as FITS) */
    CHECK(cli_shell("cp build/pred_bt/plain.npy build/pred_bt/UPPER.NPY") == 0 &&
              cli_lens("predict --model weights/OU_66.safetensors build/pred_bt/plain.npy 2>/dev/null | cut -d, -f2- > build/pred_bt/lower.csv") == 0 &&
              cli_lens("predict --model weights/OU_66.safetensors build/pred_bt/UPPER.NPY 2>/dev/null | cut -d, -f2- > build/pred_bt/upper.csv") == 0 &&
              cli_same_file("build/pred_bt/lower.csv", "build/pred_bt/upper.csv") && cli_shell("test -s build/pred_bt/upper.csv") == 0,
          "an upper-case .NPY is read as .npy");
    mkdir("build/pred_bt/c", 0755);
    cli_shell("cp build/pred_bt/images.npy build/pred_bt/c/images.npy && mkdir -p build/pred_bt/c/bands.txt");
    CHECK(cli_lens_output(text, sizeof text, "predict --model weights/OU_66.safetensors build/pred_bt/c/images.npy") == 1 && strstr(text, "bands.txt") &&
              strstr(text, "cannot read"),
          "a bands.txt that cannot be read is an error, not file order: %s", text);
  }
  cli_shell("printf 'VIS,Y,J,K\\n' > build/pred_bt/bands.txt");
  CHECK(cli_lens_output(text, sizeof text, "predict --model weights/OU_66.safetensors build/pred_bt/images.npy") == 2 && strstr(text, "'H'") &&
            strstr(text, "--channels") && strstr(text, "bands.txt"),
        "a band of the model's missing from bands.txt: a usage error naming --channels: %s", text);
  CHECK(cli_lens("predict --model weights/OU_66.safetensors --channels 2,1,3,0 build/pred_bt/images.npy > build/pred_bt/bych2.csv 2> /dev/null") == 0 &&
            cli_same_file("build/pred_bt/bych.csv", "build/pred_bt/bych2.csv"),
        "--channels takes the planes by number whatever bands.txt says");
  cli_shell("printf 'VIS,Y\\n' > build/pred_bt/bands.txt");
  CHECK(cli_lens_output(text, sizeof text, "predict --model weights/OU_66.safetensors build/pred_bt/images.npy") == 1 && strstr(text, "2 band names (VIS,Y) for an image of 4 planes"),
        "a bands.txt of two names for four planes: refused: %s", text);
  CHECK(cli_shell("rm -rf build/pred_bt_m0 build/pred_bt_m1 build/pred_bt_m") == 0 &&
            cli_lens("sim --preset euclid-lensfinding --n 4 --seed 6 --shard 0/2 --out build/pred_bt_m0 > /dev/null 2>&1") == 0 &&
            cli_lens("sim --preset euclid-lensfinding --n 4 --seed 6 --shard 1/2 --out build/pred_bt_m1 > /dev/null 2>&1") == 0 &&
            cli_lens("merge build/pred_bt_m0 build/pred_bt_m1 --out build/pred_bt_m 2> /dev/null") == 0 &&
            !strcmp(cli_text("build/pred_bt_m/bands.txt", text, sizeof text), "VIS,Y,J,H\n"),
        "lens merge of sim shards keeps bands.txt");
  cli_shell("printf 'g,r,i\\n' > build/pred_bt_m1/bands.txt");
  CHECK(cli_lens_output(text, sizeof text, "merge build/pred_bt_m0 build/pred_bt_m1 --out build/pred_bt_m2") == 1 && strstr(text, "bands.txt") &&
            cli_shell("test -e build/pred_bt_m2/images.npy") != 0,
        "shards naming other bands are refused before anything is written: %s", text);
  cli_shell("rm build/pred_bt_m0/bands.txt build/pred_bt_m1/bands.txt");
  CHECK(cli_lens("merge build/pred_bt_m0 build/pred_bt_m1 --out build/pred_bt_m 2> /dev/null") == 0 && cli_shell("test -e build/pred_bt_m/bands.txt") != 0,
        "shards without names merged into a folder holding an older bands.txt: it goes");
  cli_shell("rm -rf build/pred_bt build/pred_bt_m0 build/pred_bt_m1 build/pred_bt_m build/pred_bt_m2");
}

static void test_bands_by_filter(void) {
  const char *model = "predict --model weights/OU_66.safetensors --bands 4";
  char ordered[1024], globbed[1024], asgiven[1024], err[2048];
  CHECK(cli_lens("%s samples/ou66/0000002_J.fits samples/ou66/0000002_Y.fits samples/ou66/0000002_H.fits samples/ou66/0000002_VIS.fits "
                 "> build/pred_order.csv 2> build/pred_err.txt", model) == 0 && !cli_file_has("build/pred_err.txt", "FILTER"),
        "the files in the model's order: no note");
  CHECK(cli_lens("%s samples/ou66/0000002_H.fits samples/ou66/0000002_J.fits samples/ou66/0000002_VIS.fits samples/ou66/0000002_Y.fits "
                 "> build/pred_glob.csv 2> build/pred_err.txt", model) == 0 &&
            cli_file_has("build/pred_err.txt", "come in the order H,J,VIS,Y (their FILTER headers); they are fed to the model in its band order J,Y,H,VIS"),
        "the files in a glob's order: put in the model's, with a note: %s", cli_text("build/pred_err.txt", err, sizeof err));
  cli_text("build/pred_order.csv", ordered, sizeof ordered);
  cli_text("build/pred_glob.csv", globbed, sizeof globbed);
  CHECK(strchr(ordered, '\n') && strchr(globbed, '\n') && !strcmp(strchr(ordered, ',') ? strstr(strchr(ordered, '\n') + 1, ",") : "",
                                                                        strchr(globbed, ',') ? strstr(strchr(globbed, '\n') + 1, ",") : "x"),
        "the same scores either way:\n%s\n%s", ordered, globbed);
  CHECK(cli_lens("%s --channels 0,1,2,3 samples/ou66/0000002_H.fits samples/ou66/0000002_J.fits samples/ou66/0000002_VIS.fits "
                 "samples/ou66/0000002_Y.fits > build/pred_given.csv 2> build/pred_err.txt", model) == 0 &&
            !cli_file_has("build/pred_err.txt", "FILTER"),
        "with --channels the files are taken as given");
  cli_text("build/pred_given.csv", asgiven, sizeof asgiven);
  CHECK(strcmp(strchr(asgiven, '\n') ? strstr(strchr(asgiven, '\n') + 1, ",") : "", strstr(strchr(globbed, '\n') + 1, ",")) != 0,
        "and score otherwise:\n%s", asgiven);
  CHECK(cli_lens("%s samples/ou66/0000002_J.fits samples/ou66/0000002_J.fits samples/ou66/0000002_H.fits samples/ou66/0000002_VIS.fits "
                 "> /dev/null 2> build/pred_err.txt", model) == 1 &&
            cli_file_has("build/pred_err.txt", "both have FILTER = 'J'"),
        "a band given twice is refused: %s", cli_text("build/pred_err.txt", err, sizeof err));
  remove("build/pred_order.csv"); remove("build/pred_glob.csv"); remove("build/pred_given.csv"); remove("build/pred_err.txt");
}

/* FITS cutouts at another pixel scale than the model's (the challenge's space-based 101 x 101 at
 * 0.1", resized to OU_VIS's 200 x 200 of 0.1": 0.0505" a model pixel) are scored with a note that
 * says so; the samples at the model's own scale get none. */
static void test_pixel_scale_note(void) {
  const char *dir = check_data_dir();
  char err[2048];
  CHECK(cli_lens("predict --model weights/OU_VIS.safetensors --resize %s/" BOLOGNA "/space_based/lens/imageEUC_VIS-100002.fits "
                 "%s/" BOLOGNA "/space_based/lens/imageEUC_VIS-100003.fits > /dev/null 2> build/pred_err.txt", dir, dir) == 0 &&
            cli_file_has("build/pred_err.txt", "2 FITS objects are not at the model's pixel scale") &&
            cli_file_has("build/pred_err.txt", "has 0.0505\"/pixel (FITS CD1_1, resized), the model was made for 0.1\""),
        "cutouts resized to another scale: a note: %s", cli_text("build/pred_err.txt", err, sizeof err));
  CHECK(cli_lens("predict --model weights/OU_VIS.safetensors samples/vis/0000002_VIS.fits > /dev/null 2> build/pred_err.txt") == 0 &&
            !cli_file_has("build/pred_err.txt", "pixel scale"),
        "a cutout at the model's scale: no note");
  remove("build/pred_err.txt");
}

/* The finders shipped in weights/: each must still separate lenses from non-lenses in a fresh
 * `lens sim` sample (seed 3: neither their training seed 1 nor their card's test seed 2). Their
 * cards give the ROC AUC on 4000 objects; on 200 objects the AUC scatters by about 0.02, so each
 * floor sits 0.06 below the card's figure. */
typedef struct { const char *file, *channels; double card_auc; int layout; } shipped_finder;

/* AUC of scores[i] (p_lens) against labels[i] (0/1) by counting pairs, ties half */
static double pair_auc(const double *score, const int *label, int n) {
  double wins = 0, pairs = 0;
  int i, j;
  for (i = 0; i < n; i++)
    for (j = 0; j < n; j++)
      if (label[i] == 1 && label[j] == 0) { pairs++; wins += score[i] > score[j] ? 1.0 : score[i] == score[j] ? 0.5 : 0.0; }
  return pairs ? wins / pairs : 0;
}

static void test_shipped_finders(void) {
  static const shipped_finder finders[] = {
    {"weights/ou66-sim.safetensors", NULL, 0.978, 66}, {"weights/ou66-jyh-sim.safetensors", "2,1,3", 0.951, 66},
    {"weights/ou66-j-sim.safetensors", "2", 0.935, 66}, {"weights/ou66-y-sim.safetensors", "1", 0.936, 66},
    {"weights/ou66-h-sim.safetensors", "3", 0.915, 66}, {"weights/ou200-sim.safetensors", NULL, 0.883, 200},
    {"weights/ou200-vis-sim.safetensors", "0", 0.909, 200}, {"weights/ou66-scan.safetensors", NULL, 0.965, 66},
  };
  static double score[200];
  static int label[200];
  char a[4096], b[4096];
  size_t k;
  CHECK(cli_shell("rm -rf build/tw build/tw200") == 0 && cli_lens("sim --preset euclid-lensfinding --n 200 --seed 3 --out build/tw 2>/dev/null") == 0 &&
            cli_lens("sim --preset euclid-lensfinding --layout ou200 --n 200 --seed 3 --out build/tw200 2>/dev/null") == 0,
        "lens sim, OU-66 and OU-200 layouts");
  for (k = 0; k < sizeof finders / sizeof *finders; k++) {
    const shipped_finder *f = &finders[k];
    const char *dir = f->layout == 200 ? "build/tw200" : "build/tw";
    char path[64];
    FILE *scores, *labels;
    int n = 0;
    double auc;
    CHECK(cli_lens("predict --model %s%s%s %s/images.npy > build/tw/scores.csv 2>/dev/null", f->file, f->channels ? " --channels " : "",
                   f->channels ? f->channels : "", dir) == 0, "lens predict %s", f->file);
    snprintf(path, sizeof path, "%s/labels.csv", dir);
    scores = fopen("build/tw/scores.csv", "r");
    labels = fopen(path, "r");
    if (scores && labels && fgets(a, sizeof a, scores) && fgets(b, sizeof b, labels)) {
      while (n < 200 && fgets(a, sizeof a, scores) && fgets(b, sizeof b, labels)) {
        const char *pa = strchr(a, ','), *pb = strchr(b, ',');
        if (!pa || !pb) break;
        score[n] = atof(pa + 1);
        label[n] = atoi(pb + 1) == 1;
        n++;
      }
    }
    if (scores) fclose(scores);
    if (labels) fclose(labels);
    auc = pair_auc(score, label, n);
    printf("   %s: AUC %.3f on %d objects (card: %.3f)\n", f->file, auc, n, f->card_auc);
    CHECK(n == 200 && auc >= f->card_auc - 0.06, "%s: AUC %.3f below %.3f", f->file, auc, f->card_auc - 0.06);
  }
  test_memory_bound();
  cli_shell("rm -rf build/tw build/tw200");
}

/* The peak resident memory of `lens predict` on OU-200 (0.64 MB an object) stays the model's at
 * any --batch: under 64 MB with --batch 256 over 200 objects (it held a whole batch, 94 MB at 256
 * with 64 objects). The tool is run directly, not through a shell, so wait4 reports its own peak. */
static void test_memory_bound(void) {
  static const char *const batches[] = {"1", "256"};
  size_t k;
#if defined(__SANITIZE_ADDRESS__)
  /* a child's peak counts the memory it shared with its parent before exec: here that parent is a
   * sanitizer build, tens of megabytes, so the figure would not be the tool's */
  SKIP("the peak memory of lens predict is measured by the plain build of this test, not the sanitizer build");
  (void)batches; (void)k;
  return;
#endif
  for (k = 0; k < 2; k++) {
    struct rusage ru;
    int status = -1;
    pid_t pid = -1;
    posix_spawn_file_actions_t fa;
    char *argv[] = {"lens", "predict", "--model", "weights/ou200-sim.safetensors", "build/tw200/images.npy", "--batch", NULL, "--threads", "2", NULL};
    argv[6] = (char *)batches[k];
    /* posix_spawn, not fork: a forked copy of this (perhaps sanitizer-sized) process would count */
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawn(&pid, cli_lens_path(), &fa, NULL, argv, environ) != 0) pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    memset(&ru, 0, sizeof ru);
    CHECK(pid > 0 && wait4(pid, &status, 0, &ru) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0, "lens predict --batch %s ran", batches[k]);
    printf("   OU-200, --batch %s, 2 threads: peak resident memory %.1f MB\n", batches[k], ru.ru_maxrss / 1024.0);
    CHECK(ru.ru_maxrss > 0 && ru.ru_maxrss < 64 * 1024, "--batch %s: peak resident memory %.1f MB (at most 64)", batches[k], ru.ru_maxrss / 1024.0);
  }
}

/* --shard over .npy stacks: contiguous blocks across several files, read a batch of rows at a
 * time; the shards' CSV and logits joined in order are the single run's, byte for byte; each
 * output has its manifest; --skip-done skips only a finished shard of the same run. */
static void test_npy_shards(void) {
  const char *model = "weights/ou66-sim.safetensors", *W = "build/pred_shard";
  char text[2048];
  int k;
  CHECK(cli_shell("rm -rf %s && mkdir -p %s", W, W) == 0, "folder");
  CHECK(cli_lens("sim --preset euclid-lensfinding --n 7 --seed 11 --out %s/a 2>/dev/null", W) == 0 &&
            cli_lens("sim --preset euclid-lensfinding --n 4 --seed 12 --out %s/b 2>/dev/null", W) == 0,
        "two stacks of 7 and 4 objects");
  CHECK(cli_lens("predict --model %s %s/a/images.npy %s/b/images.npy --out %s/all.npy --csv %s/all.csv 2>/dev/null", model, W, W, W, W) == 0,
        "the whole run");
  /* 11 objects over 3 shards: [0, 3), [3, 7), [7, 11); shard 1 and 2 straddle the two files */
  for (k = 0; k < 3; k++)
    CHECK(cli_lens("predict --model %s %s/a/images.npy %s/b/images.npy --shard %d/3 --batch 2 --out %s/p%d.npy --csv %s/p%d.csv 2>/dev/null",
                   model, W, W, k, W, k, W, k) == 0, "shard %d/3", k);
  CHECK(cli_shell("cd %s && (cat p0.csv; tail -n +2 p1.csv; tail -n +2 p2.csv) | cmp -s - all.csv", W) == 0, "CSV rows joined = the whole run");
  /* the logits: the shards' data sections (after their 128-byte headers) joined = the whole run's */
  CHECK(cli_shell("cd %s && (tail -c +129 p0.npy; tail -c +129 p1.npy; tail -c +129 p2.npy) | cmp -s - all.npy -i 0:128", W) == 0,
        "logits joined = the whole run's");
  cli_text("build/pred_shard/p1.csv.shard.json", text, sizeof text);
  CHECK(strstr(text, "\"command\": \"predict\"") && strstr(text, "\"shard\": 1, \"shards\": 3, \"first\": 3, \"end\": 7, \"total\": 11") &&
            strstr(text, "\"files\": [\"p1.csv\"]"), "manifest of p1.csv: %s", text);
  CHECK(check_file_exists("build/pred_shard/p1.npy.shard.json") && !check_file_exists("build/pred_shard/all.csv.shard.json"),
        "a manifest per sharded output, none for the whole run");
  CHECK(cli_lens("predict --model %s %s/a/images.npy %s/b/images.npy --shard 1/3 --out %s/p1.csv --skip-done 2>%s/err.txt", model, W, W, W, W) == 0 &&
            cli_file_has("build/pred_shard/err.txt", "already done"), "--skip-done on a finished shard (other --batch, --threads) skips");
  CHECK(cli_lens("predict --model %s %s/a/images.npy --shard 1/3 --out %s/p1.csv --skip-done 2>%s/err.txt", model, W, W, W) == 0 &&
            !cli_file_has("build/pred_shard/err.txt", "already done") && cli_lines("build/pred_shard/p1.csv") == 3,
        "another run's shard is redone (rows %d)", cli_lines("build/pred_shard/p1.csv"));
  CHECK(cli_lens("predict --model %s %s/a/images.npy --skip-done --out %s/x.csv 2>/dev/null", model, W, W) == 2, "--skip-done without --shard");
  CHECK(cli_lens("predict --model %s %s/a/images.npy --shard 0/2 --skip-done 2>/dev/null >/dev/null", model, W) == 2, "--skip-done without --out");
  /* a run that fails part-way (a bad FITS file after a good stack) removes the stale manifest
   * before touching the outputs and leaves the old CSV in place */
  CHECK(cli_shell("cp %s/p0.csv %s/keep.csv && echo 'not a FITS file' > %s/bad.fits", W, W, W) == 0, "a bad FITS file");
  CHECK(cli_lens("predict --model %s %s/a/images.npy %s/bad.fits --shard 0/1 --out %s/p0.csv 2>/dev/null", model, W, W, W) == 1 &&
            !check_file_exists("build/pred_shard/p0.csv.shard.json") && !check_file_exists("build/pred_shard/p0.csv.tmp") &&
            cli_shell("cmp -s %s/p0.csv %s/keep.csv", W, W) == 0,
        "a failed shard: its stale manifest gone, no temporary left, the old output untouched");
  /* the CSV on a full disk (Linux's /dev/full) fails instead of exiting 0 with nothing written */
  if (check_file_exists("/dev/full"))
    CHECK(cli_lens("predict --model %s %s/a/images.npy > /dev/full 2>%s/err.txt", model, W, W) == 1 && cli_file_has("build/pred_shard/err.txt", "write failed"),
          "standard output on a full disk: exit 1, said");
  /* a truncated stack is refused before anything is written */
  CHECK(cli_shell("cp %s/a/images.npy %s/c.npy && truncate -s 20000 %s/c.npy", W, W, W) == 0, "a truncated stack");
  CHECK(cli_lens("predict --model %s %s/c.npy --shard 0/2 --out %s/p2.csv 2>%s/err.txt", model, W, W, W) == 1 &&
            cli_file_has("build/pred_shard/err.txt", "truncated") && check_file_exists("build/pred_shard/p2.csv.shard.json"),
        "a truncated stack named before the outputs are touched");
  cli_shell("rm -rf %s", W);
}

/* ---- --locator: positions beside the scores ---------------------------------------------------- */

#define LOC "build/pred_locator"
#define LOC_N 3

/* Blobs of amplitude 5, exp(-r^2 / 4), in band 0 of object k, at these input pixels (x, y): each
 * at least 10 pixels from the edges, so its sampled flux is 20 pi (the Gaussian's integral; the
 * sum over integer pixels differs by a factor 1 + O(exp(-4 pi^2))). */
static const double loc_blob[LOC_N][2] = {{40.3, 21.6}, {25.0, 33.5}, {32.5, 45.25}};

/* A 4-band 66x66 model of one dense layer with the given weights (NULL: zeros), biases and
 * metadata (key, value pairs, NULL-terminated), saved to path. */
static void save_dense(const char *path, size_t outputs, const float *weights, const float *bias, const char *const *meta) {
  lensnet_model *m = NULL;
  lensnet_error err;
  const lensnet_param *dw, *db;
  char arch[96];
  size_t k;
  snprintf(arch, sizeof arch, "input 4 66 66\nflatten\ndense name=d out=%lu", (unsigned long)outputs);
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { CHECK(0, "%s: %s", path, err.message); return; }
  dw = lensnet_model_param(m, "d.weight");
  db = lensnet_model_param(m, "d.bias");
  for (k = 0; k < outputs * 4 * 66 * 66; k++) m->values[dw->offset + k] = weights ? weights[k] : 0.0f;
  for (k = 0; k < outputs; k++) m->values[db->offset + k] = bias[k];
  for (k = 0; meta[k]; k += 2) lensnet_model_set_meta(m, meta[k], meta[k + 1]);
  CHECK(lensnet_model_save(m, path, &err) == LENSNET_OK, "save %s: %s", path, err.message);
  lensnet_model_free(m);
}

/* The models of the locator tests: a finder that scales min-max and gives every cutout logits
 * (0, 1); a linear centroid locator (center_x = 0.3 sum((x - 32.5) I) / (20 pi) over band 0, in
 * arcsec, preprocess none); an nll locator of constant outputs; and four that are no locators. */
static void make_locator_models(void) {
  static float w[2 * 4 * 66 * 66];
  static const char *const finder[] = {"classes", "non-lens,lens", "preprocess", "minmax", NULL};
  static const char *const centroid[] = {"regress.targets", "center_x,center_y", "regress.loss", "mse", "regress.mean", "0,0",
                                         "regress.std", "1,1", "pixel_scale", "0.3", "preprocess", "none", NULL};
  static const char *const nll[] = {"regress.targets", "center_x,center_y", "regress.loss", "nll", "regress.mean", "0.6,-0.3",
                                    "regress.std", "2,0.5", "pixel_scale", "0.25", "preprocess", "none", NULL};
  static const char *const no_scale[] = {"regress.targets", "center_x,center_y", "regress.loss", "mse", "regress.mean", "0,0",
                                         "regress.std", "1,1", NULL};
  static const char *const no_centre[] = {"regress.targets", "theta_E,e1", "regress.loss", "mse", "regress.mean", "0,0",
                                          "regress.std", "1,1", "pixel_scale", "0.3", NULL};
  const float finder_bias[2] = {0.0f, 1.0f}, zero[2] = {0.0f, 0.0f};
  /* nll: means (0.5, 2) -> 0.6 + 2 * 0.5 = 1.6" and -0.3 + 0.5 * 2 = 0.7"; log-variances -> sigma
   * 2 * 0.1 = 0.2" and 0.5 * 0.2 = 0.1" */
  const double pi = 3.14159265358979323846;
  float nll_bias[4];
  size_t x, y;
  nll_bias[0] = 0.5f; nll_bias[1] = 2.0f; nll_bias[2] = (float)log(0.01); nll_bias[3] = (float)log(0.04);
  for (y = 0; y < 66; y++)
    for (x = 0; x < 66; x++) {
      w[y * 66 + x] = (float)(0.3 * ((double)x - 32.5) / (20 * pi));
      w[4 * 66 * 66 + y * 66 + x] = (float)(0.3 * ((double)y - 32.5) / (20 * pi));
    }
  save_dense(LOC "/finder.safetensors", 2, NULL, finder_bias, finder);
  save_dense(LOC "/centroid.safetensors", 2, w, zero, centroid);
  save_dense(LOC "/nll.safetensors", 4, NULL, nll_bias, nll);
  save_dense(LOC "/no_scale.safetensors", 2, w, zero, no_scale);
  save_dense(LOC "/no_centre.safetensors", 2, w, zero, no_centre);
  {
    lensnet_model *m = NULL;
    lensnet_error err;
    if (lensnet_model_create("input 4 64 64\nflatten\ndense name=d out=2", &m, &err) == LENSNET_OK) {
      lensnet_model_set_meta(m, "regress.targets", "center_x,center_y");
      lensnet_model_set_meta(m, "regress.loss", "mse");
      lensnet_model_set_meta(m, "regress.mean", "0,0");
      lensnet_model_set_meta(m, "regress.std", "1,1");
      lensnet_model_set_meta(m, "pixel_scale", "0.3");
      CHECK(lensnet_model_save(m, LOC "/small.safetensors", &err) == LENSNET_OK, "save: %s", err.message);
      lensnet_model_free(m);
    }
  }
}

/* LOC_N cutouts [4, 66, 66]: band 0 a blob at loc_blob[k], bands 1-3 a ramp the locators do not
 * read (and that min-max would leave alone). */
static void write_locator_cutouts(void) {
  lensnet_tensor t;
  lensnet_error err;
  size_t shape[4] = {LOC_N, 4, 66, 66}, k, b, x, y;
  if (lensnet_tensor_alloc(&t, 4, shape, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); return; }
  for (k = 0; k < LOC_N; k++)
    for (y = 0; y < 66; y++)
      for (x = 0; x < 66; x++) {
        double dx = (double)x - loc_blob[k][0], dy = (double)y - loc_blob[k][1];
        t.data[((k * 4 + 0) * 66 + y) * 66 + x] = (float)(5.0 * exp(-(dx * dx + dy * dy) / 4.0));
        for (b = 1; b < 4; b++) t.data[((k * 4 + b) * 66 + y) * 66 + x] = (float)(x + y + b);
      }
  CHECK(lensnet_npy_write(LOC "/cutouts.npy", &t, &err) == LENSNET_OK, "%s", err.message);
  lensnet_tensor_free(&t);
}

/* Cell (row, column name) of a CSV as a number; NaN when missing. */
static double csv_value(const lensnet_csv *t, size_t row, const char *column) {
  size_t col = 0;
  double v = NAN;
  if (lensnet_csv_column(t->header, column, &col, NULL) == LENSNET_OK) lensnet_csv_number(t, row, col, &v, NULL);
  return v;
}

static void test_locator(void) {
  lensnet_csv t;
  char text[4096];
  size_t k;
  int rc;
  CHECK(cli_shell("rm -rf " LOC " && mkdir -p " LOC) == 0, "folder");
  make_locator_models();
  write_locator_cutouts();
  CHECK(cli_lens("predict --model " LOC "/finder.safetensors --locator " LOC "/centroid.safetensors " LOC "/cutouts.npy --out " LOC
                 "/pos.csv 2>" LOC "/err.txt") == 0, "predict --locator: %s", cli_text(LOC "/err.txt", text, sizeof text));
  if (lensnet_csv_read(LOC "/pos.csv", &t, NULL) == LENSNET_OK) {
    CHECK(!strcmp(t.header, "input,p_lens,logit_non-lens,logit_lens,x,y,x_sigma,y_sigma,center_x,center_y"), "header: %s", t.header);
    CHECK(t.rows == LOC_N + 1, "a row per cutout: %lu", (unsigned long)t.rows);
    for (k = 0; k < LOC_N && k + 1 < t.rows; k++) {
      /* the blob's own position: x, y; (x - 32.5) 0.3, (y - 32.5) 0.3 arcsec from the centre */
      double x = loc_blob[k][0], y = loc_blob[k][1];
      CHECK(fabs(csv_value(&t, k + 1, "p_lens") - 1.0 / (1.0 + exp(-1.0))) < 1e-6, "the finder's score is kept");
      CHECK(fabs(csv_value(&t, k + 1, "x") - x) < 1e-3 && fabs(csv_value(&t, k + 1, "y") - y) < 1e-3,
            "cutout %lu: (%.4f, %.4f), the blob is at (%.2f, %.2f)", (unsigned long)k, csv_value(&t, k + 1, "x"), csv_value(&t, k + 1, "y"), x, y);
      CHECK(fabs(csv_value(&t, k + 1, "center_x") - 0.3 * (x - 32.5)) < 3e-4 && fabs(csv_value(&t, k + 1, "center_y") - 0.3 * (y - 32.5)) < 3e-4,
            "cutout %lu: center (%.5f, %.5f)\"", (unsigned long)k, csv_value(&t, k + 1, "center_x"), csv_value(&t, k + 1, "center_y"));
      CHECK(csv_value(&t, k + 1, "x_sigma") == 0 && csv_value(&t, k + 1, "y_sigma") == 0, "an mse locator: sigmas 0");
    }
    lensnet_csv_free(&t);
  } else CHECK(0, "no readable " LOC "/pos.csv");
  /* the finder scales min-max and the locator not: it got the raw pixels (min-max would have put
   * the blobs at a fifth of their offsets). With the finder's scaling switched off both share one
   * prepared cutout, and the positions are the same. */
  CHECK(cli_lens("predict --model " LOC "/finder.safetensors --preprocess none --locator " LOC "/centroid.safetensors " LOC
                 "/cutouts.npy > " LOC "/pos_none.csv 2>/dev/null") == 0 &&
            cli_shell("cut -d, -f5- " LOC "/pos.csv > " LOC "/a.txt && cut -d, -f5- " LOC "/pos_none.csv > " LOC "/b.txt") == 0 &&
            cli_same_file(LOC "/a.txt", LOC "/b.txt") && cli_lines(LOC "/a.txt") == LOC_N + 1,
        "the locator's columns do not depend on the finder's --preprocess");
  /* an nll locator: sigmas over its own pixel scale, 0.25" */
  CHECK(cli_lens("predict --model " LOC "/finder.safetensors --locator " LOC "/nll.safetensors " LOC "/cutouts.npy --out " LOC
                 "/nll.csv 2>/dev/null") == 0, "an nll locator");
  if (lensnet_csv_read(LOC "/nll.csv", &t, NULL) == LENSNET_OK) {
    /* 32.5 + 1.6 / 0.25 = 38.9, 32.5 + 0.7 / 0.25 = 35.3; 0.2 / 0.25 = 0.8, 0.1 / 0.25 = 0.4 pixels */
    CHECK(t.rows == LOC_N + 1 && fabs(csv_value(&t, 1, "x") - 38.9) < 1e-5 && fabs(csv_value(&t, 1, "y") - 35.3) < 1e-5 &&
              fabs(csv_value(&t, 1, "center_x") - 1.6) < 1e-6 && fabs(csv_value(&t, 1, "center_y") - 0.7) < 1e-6,
          "nll: (%g, %g), center (%g, %g)", csv_value(&t, 1, "x"), csv_value(&t, 1, "y"), csv_value(&t, 1, "center_x"), csv_value(&t, 1, "center_y"));
    CHECK(fabs(csv_value(&t, 1, "x_sigma") - 0.8) < 1e-5 && fabs(csv_value(&t, 1, "y_sigma") - 0.4) < 1e-5, "nll: sigmas (%g, %g) pixels",
          csv_value(&t, 1, "x_sigma"), csv_value(&t, 1, "y_sigma"));
    lensnet_csv_free(&t);
  } else CHECK(0, "no readable " LOC "/nll.csv");
  /* --map: p_lens times each pixel's probability of holding the position. For the nll locator
   * (x, y) = (38.9, 35.3), sigmas (0.8, 0.4): pixel (row 35, column 39) holds
   * [Phi(0.75) - Phi(-0.5)] [Phi(0.5) - Phi(-2)] p = 0.464835 x 0.668712 x 0.731059 = 0.227243
   * (standard normal CDF values); the plane sums to p (the Gaussian lies inside); the centroid
   * (mse) locator puts all of p on the pixel holding the position. */
  CHECK(cli_lens("predict --model " LOC "/finder.safetensors --locator " LOC "/nll.safetensors " LOC "/cutouts.npy --out " LOC
                 "/nll2.csv --map " LOC "/nll_map.npy 2>/dev/null") == 0, "--map with an nll locator");
  {
    lensnet_tensor mp;
    if (lensnet_npy_read(LOC "/nll_map.npy", &mp, NULL) == LENSNET_OK) {
      double sum = 0, p = 1.0 / (1.0 + exp(-1.0));
      size_t k, best = 0;
      CHECK(mp.ndim == 3 && mp.shape[0] == LOC_N && mp.shape[1] == 66 && mp.shape[2] == 66, "the map is [N, 66, 66]");
      for (k = 0; k < 66 * 66; k++) { sum += mp.data[k]; if (mp.data[k] > mp.data[best]) best = k; }
      CHECK(fabs(mp.data[35 * 66 + 39] - 0.227243) < 2e-6, "pixel (35, 39): %.7f, 0.227243 expected", mp.data[35 * 66 + 39]);
      CHECK(best == 35 * 66 + 39, "the map peaks at the position's pixel (%lu)", (unsigned long)best);
      CHECK(fabs(sum - p) < 1e-5, "the plane sums to p_lens: %.7f vs %.7f", sum, p);
      lensnet_tensor_free(&mp);
    } else CHECK(0, "no readable nll_map.npy");
  }
  CHECK(cli_lens("predict --model " LOC "/finder.safetensors --locator " LOC "/centroid.safetensors " LOC "/cutouts.npy --out " LOC
                 "/c.csv --map " LOC "/c_map.npy 2>/dev/null") == 0, "--map with an mse locator");
  {
    lensnet_tensor mp;
    if (lensnet_npy_read(LOC "/c_map.npy", &mp, NULL) == LENSNET_OK) {
      size_t k, j, nonzero = 0, right = 0;
      for (k = 0; k < LOC_N; k++)
        for (j = 0; j < 66 * 66; j++) {
          size_t want = (size_t)floor(loc_blob[k][1] + 0.5) * 66 + (size_t)floor(loc_blob[k][0] + 0.5);
          float v = mp.data[k * 66 * 66 + j];
          nonzero += v != 0;
          right += j == want && fabs(v - 1.0 / (1.0 + exp(-1.0))) < 1e-6;
        }
      CHECK(nonzero == LOC_N && right == LOC_N, "an mse locator: all of p_lens on the position's pixel (%lu nonzero, %lu right)",
            (unsigned long)nonzero, (unsigned long)right);
      lensnet_tensor_free(&mp);
    } else CHECK(0, "no readable c_map.npy");
  }
  CHECK(cli_lens("predict --model " LOC "/finder.safetensors " LOC "/cutouts.npy --map " LOC "/x.npy 2>/dev/null") == 2 &&
            !check_file_exists(LOC "/x.npy"), "--map without --locator is a usage error");
  CHECK(cli_lens("predict --model " LOC "/finder.safetensors --locator " LOC "/nll.safetensors " LOC "/cutouts.npy --shard 0/2 --out " LOC
                 "/s.csv --map " LOC "/s.npy 2>/dev/null") == 2 && !check_file_exists(LOC "/s.npy"), "--map with --shard is refused");
  CHECK(cli_lens("predict --model " LOC "/finder.safetensors --locator " LOC "/nll.safetensors " LOC "/cutouts.npy --out " LOC
                 "/same.npy --csv " LOC "/same.csv --map " LOC "/same.npy 2>/dev/null") == 2, "--map on the --out file is refused");
  CHECK(cli_lens("predict --model " LOC "/finder.safetensors --locator " LOC "/nll.safetensors " LOC "/cutouts.npy --out " LOC
                 "/in.csv --map " LOC "/cutouts.npy 2>/dev/null") == 2, "--map on an input is refused");
  /* --out FILE.npy keeps the finder's logits [N, 2]; the CSV beside it has the positions */
  CHECK(cli_lens("predict --model " LOC "/finder.safetensors --locator " LOC "/centroid.safetensors " LOC "/cutouts.npy --out " LOC
                 "/logits.npy --csv " LOC "/beside.csv 2>/dev/null") == 0 && cli_same_file(LOC "/beside.csv", LOC "/pos.csv"),
        "--out .npy with --csv: the same CSV");
  {
    lensnet_tensor lg;
    if (lensnet_npy_read(LOC "/logits.npy", &lg, NULL) == LENSNET_OK) {
      CHECK(lg.ndim == 2 && lg.shape[0] == LOC_N && lg.shape[1] == 2 && lg.data[1] == 1.0f, "the .npy holds the finder's logits");
      lensnet_tensor_free(&lg);
    } else CHECK(0, "no readable logits.npy");
  }
  /* shards joined by lens merge: the whole run's CSV */
  CHECK(cli_lens("predict --model " LOC "/finder.safetensors --locator " LOC "/centroid.safetensors " LOC "/cutouts.npy --shard 0/2 --out " LOC
                 "/s0.csv 2>/dev/null") == 0 &&
            cli_lens("predict --model " LOC "/finder.safetensors --locator " LOC "/centroid.safetensors " LOC "/cutouts.npy --shard 1/2 --out " LOC
                     "/s1.csv 2>/dev/null") == 0 &&
            cli_lens("merge --out " LOC "/merged.csv " LOC "/s1.csv " LOC "/s0.csv > /dev/null 2>&1") == 0 &&
            cli_same_file(LOC "/merged.csv", LOC "/pos.csv"),
        "two shards merged = the whole run");
  /* refusals, exit 2 */
  rc = cli_lens_output(text, sizeof text, "predict --model " LOC "/finder.safetensors --locator " LOC "/finder.safetensors " LOC "/cutouts.npy");
  CHECK(rc == 2 && strstr(text, "--locator") && strstr(text, "center_x"), "a finder as the locator (exit %d): %s", rc, text);
  rc = cli_lens_output(text, sizeof text, "predict --model " LOC "/finder.safetensors --locator " LOC "/no_centre.safetensors " LOC "/cutouts.npy");
  CHECK(rc == 2 && strstr(text, "do not include center_x and center_y"), "a locator of theta_E, e1 (exit %d): %s", rc, text);
  rc = cli_lens_output(text, sizeof text, "predict --model " LOC "/finder.safetensors --locator " LOC "/no_scale.safetensors " LOC "/cutouts.npy");
  CHECK(rc == 2 && strstr(text, "pixel_scale") && strstr(text, "lens info " LOC "/no_scale.safetensors --set pixel_scale=ARCSEC --out"),
        "no pixel_scale (exit %d): %s", rc, text);
  rc = cli_lens_output(text, sizeof text, "predict --model " LOC "/centroid.safetensors --locator " LOC "/centroid.safetensors " LOC "/cutouts.npy");
  CHECK(rc == 2 && strstr(text, "regression"), "a regression --model with --locator (exit %d): %s", rc, text);
  rc = cli_lens_output(text, sizeof text, "predict --model " LOC "/finder.safetensors --locator " LOC "/small.safetensors " LOC "/cutouts.npy");
  CHECK(rc == 2 && strstr(text, "4x64x64") && strstr(text, "4x66x66"), "a locator of another input size (exit %d): %s", rc, text);
  rc = cli_lens_output(text, sizeof text, "predict --model " LOC "/finder.safetensors --locator " LOC "/centroid.safetensors " LOC
                       "/cutouts.npy --out " LOC "/alone.npy");
  CHECK(rc == 2 && strstr(text, "--csv") && !check_file_exists(LOC "/alone.npy"), "--out .npy alone would drop the positions (exit %d): %s", rc, text);
  rc = cli_lens_output(text, sizeof text, "predict --model " LOC "/finder.safetensors --locator " LOC "/centroid.safetensors --locate-passes 2 " LOC
                       "/cutouts.npy");
  CHECK(rc == 2, "--locate-passes is lens find's (exit %d)", rc);
  cli_shell("rm -rf " LOC);
}

/* --symmetries 2 and 8 on a classifier against their definition: the model run here on each view,
 * the views made by index arithmetic (the half turn (h-1-y, w-1-x) of a 2 x 6 x 9 input; the
 * eight flips and quarter turns of a 2 x 7 x 7 one), each softmaxed in double and averaged; the
 * CSV's p_lens is that mean, its logit columns the logs of the means. */
#define SYM "build/pe_sym"
/* View t of object i of x [N, B, h, w] into view [B, h, w], by index arithmetic: views 2, the
 * image and its half turn (h-1-y, w-1-x); views 8, its flips and quarter turns. */
static void sym_view(const float *x, size_t i, size_t B, size_t h, size_t w, int views, int t, float *view) {
  size_t c, y, xx;
  for (c = 0; c < B; c++)
    for (y = 0; y < h; y++)
      for (xx = 0; xx < w; xx++) {
        size_t row = y, col = xx;
        if (views == 2 && t == 1) { row = h - 1 - y; col = w - 1 - xx; }
        if (views == 8) { /* reverse rows (bit 2) and columns (bit 1), then transpose (bit 0) */
          row = t & 1 ? xx : y; col = t & 1 ? y : xx;
          if (t & 4) row = h - 1 - row;
          if (t & 2) col = w - 1 - col;
        }
        view[(c * h + y) * w + xx] = x[((i * B + c) * h + row) * w + col];
      }
}

static void check_symmetries(const char *arch, size_t h, size_t w, int views) {
  enum { N = 5, B = 2 };
  lensnet_model *m = NULL;
  lensnet_error err;
  lensnet_tensor x;
  lensnet_csv csv;
  lensnet_rng rng;
  size_t shape[4] = {N, B, 0, 0}, i, k, agree = 0, hw = h * w;
  float *view = NULL, *ws = NULL, z[3];
  char cmd[512];
  int t, rc;
  shape[2] = h; shape[3] = w;
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { CHECK(0, "model: %s", err.message); return; }
  lensnet_model_init(m, 7);
  lensnet_model_set_meta(m, "classes", "a,lens,c");
  snprintf(cmd, sizeof cmd, SYM "/model%d.safetensors", views);
  lensnet_model_save(m, cmd, &err);
  if (lensnet_tensor_alloc(&x, 4, shape, &err) != LENSNET_OK) { lensnet_model_free(m); CHECK(0, "alloc"); return; }
  lensnet_rng_seed(&rng, 3);
  for (i = 0; i < N * B * hw; i++) x.data[i] = lensnet_rng_normal(&rng);
  snprintf(cmd, sizeof cmd, SYM "/x%d.npy", views);
  lensnet_npy_write(cmd, &x, &err);
  view = (float *)malloc(B * hw * sizeof(float));
  ws = (float *)malloc(lensnet_model_workspace_floats(m, 1) * sizeof(float));
  snprintf(cmd, sizeof cmd, "predict --model " SYM "/model%d.safetensors " SYM "/x%d.npy --symmetries %d --csv " SYM "/sym%d.csv", views, views,
           views, views);
  rc = cli_lens("%s", cmd);
  CHECK(rc == 0, "%s: exit %d", cmd, rc);
  snprintf(cmd, sizeof cmd, SYM "/sym%d.csv", views);
  if (rc == 0 && view && ws && lensnet_csv_read(cmd, &csv, &err) == LENSNET_OK) {
    for (i = 0; i < N; i++) {
      double mean[3] = {0, 0, 0}, v;
      int ok = 1;
      for (t = 0; t < views; t++) {
        double mx, sum = 0;
        sym_view(x.data, i, B, h, w, views, t, view);
        lensnet_model_forward(m, 1, view, z, ws, &err);
        mx = z[0] > z[1] ? (z[0] > z[2] ? z[0] : z[2]) : (z[1] > z[2] ? z[1] : z[2]);
        for (k = 0; k < 3; k++) sum += exp(z[k] - mx);
        for (k = 0; k < 3; k++) mean[k] += exp(z[k] - mx) / sum / views;
      }
      ok &= lensnet_csv_number(&csv, i + 1, 1, &v, &err) == LENSNET_OK && fabs(v - mean[1]) <= 1e-6;
      for (k = 0; k < 3; k++) ok &= lensnet_csv_number(&csv, i + 1, 2 + k, &v, &err) == LENSNET_OK && fabs(v - log(mean[k])) <= 1e-5;
      agree += ok;
    }
    lensnet_csv_free(&csv);
  }
  CHECK(agree == N, "--symmetries %d: p_lens and the logits from the mean probabilities of the %d views (%lu of %d)", views, views,
        (unsigned long)agree, N);
  snprintf(cmd, sizeof cmd, "predict --model " SYM "/model%d.safetensors " SYM "/x%d.npy --symmetries %d --threads 2 --batch 3 --csv " SYM
           "/symt%d.csv", views, views, views, views);
  rc = cli_lens("%s", cmd);
  snprintf(cmd, sizeof cmd, SYM "/sym%d.csv", views);
  {
    char other[128];
    snprintf(other, sizeof other, SYM "/symt%d.csv", views);
    CHECK(rc == 0 && cli_same_file(cmd, other), "--symmetries %d: the same rows with 2 threads and --batch 3", views);
  }
  free(view); free(ws);
  lensnet_tensor_free(&x);
  lensnet_model_free(m);
}

static void test_classifier_symmetries(void) {
  char text[4096];
  int rc;
  cli_shell("rm -rf " SYM " && mkdir -p " SYM);
  check_symmetries("input 2 6 9\nconv2d name=c1 out=3 kernel=3 padding=1\nrelu\nflatten\ndense name=d out=3", 6, 9, 2);
  check_symmetries("input 2 7 7\nconv2d name=c1 out=3 kernel=3\nrelu\nflatten\ndense name=d out=3", 7, 7, 8);
  rc = cli_lens_output(text, sizeof text, "predict --model " SYM "/model8.safetensors " SYM "/x8.npy --symmetries 4");
  CHECK(rc == 2 && strstr(text, "1, 2, 8"), "--symmetries 4 refused, naming 1, 2 and 8 (exit %d): %s", rc, text);
  rc = cli_lens_output(text, sizeof text, "predict --model " SYM "/model2.safetensors " SYM "/x2.npy --symmetries 8");
  CHECK(rc == 2 && strstr(text, "square") && strstr(text, "6 x 9"), "--symmetries 8 on a 6 x 9 input refused (exit %d): %s", rc, text);
  cli_shell("rm -rf " SYM);
}

/* --model repeated: an ensemble. Three finders of one architecture (other initial weights) on 2 x 7
 * x 7 inputs; each object's expected probabilities are the mean, over the models and (with
 * --symmetries 8) their eight views, of each forward pass's softmax, computed here in double; the
 * CSV's p_lens is that mean and its logits the logs of the means. Then the refusals: members of
 * another input size, other classes, a regression member, and a locator beside an ensemble. */
#define ENS "build/pe_ens"
static void test_ensemble(void) {
  enum { N = 6, B = 2, H = 7, M = 3 };
  const char *arch = "input 2 7 7\nconv2d name=c1 out=3 kernel=3\nrelu\nflatten\ndense name=d out=3";
  lensnet_model *m[M] = {NULL, NULL, NULL}, *other = NULL;
  lensnet_error err;
  lensnet_tensor x;
  lensnet_csv csv;
  lensnet_rng rng;
  size_t shape[4] = {N, B, H, H}, i, k, j, agree;
  float view[B * H * H], *ws = NULL, z[3];
  char cmd[1024], text[4096], path[128];
  int t, rc, views, made = 1;
  cli_shell("rm -rf " ENS " && mkdir -p " ENS);
  for (j = 0; j < M; j++) {
    made &= lensnet_model_create(arch, &m[j], &err) == LENSNET_OK;
    if (!made) break;
    lensnet_model_init(m[j], 11 + 5 * j);
    lensnet_model_set_meta(m[j], "classes", "a,lens,c");
    snprintf(path, sizeof path, ENS "/m%lu.safetensors", (unsigned long)j);
    made &= lensnet_model_save(m[j], path, &err) == LENSNET_OK;
  }
  made &= lensnet_tensor_alloc(&x, 4, shape, &err) == LENSNET_OK;
  CHECK(made, "three models and the inputs made");
  if (!made) { for (j = 0; j < M; j++) lensnet_model_free(m[j]); return; }
  lensnet_rng_seed(&rng, 5);
  for (i = 0; i < N * B * H * H; i++) x.data[i] = lensnet_rng_normal(&rng);
  lensnet_npy_write(ENS "/x.npy", &x, &err);
  ws = (float *)malloc(lensnet_model_workspace_floats(m[0], 1) * sizeof(float));
  for (views = 1; views <= 8 && ws; views += 7) {
    snprintf(cmd, sizeof cmd, "predict --model " ENS "/m0.safetensors --model " ENS "/m1.safetensors --model " ENS
             "/m2.safetensors " ENS "/x.npy --symmetries %d --csv " ENS "/e%d.csv", views, views);
    rc = cli_lens("%s", cmd);
    CHECK(rc == 0, "%s: exit %d", cmd, rc);
    snprintf(path, sizeof path, ENS "/e%d.csv", views);
    agree = 0;
    if (rc == 0 && lensnet_csv_read(path, &csv, &err) == LENSNET_OK) {
      for (i = 0; i < N; i++) {
        double mean[3] = {0, 0, 0}, v;
        int ok = 1;
        for (j = 0; j < M; j++)
          for (t = 0; t < views; t++) {
            double mx, sum = 0;
            sym_view(x.data, i, B, H, H, views == 1 ? 2 : views, t, view); /* views 1: t = 0, the image as it is */
            lensnet_model_forward(m[j], 1, view, z, ws, &err);
            mx = z[0] > z[1] ? (z[0] > z[2] ? z[0] : z[2]) : (z[1] > z[2] ? z[1] : z[2]);
            for (k = 0; k < 3; k++) sum += exp(z[k] - mx);
            for (k = 0; k < 3; k++) mean[k] += exp(z[k] - mx) / sum / (M * views);
          }
        ok &= lensnet_csv_number(&csv, i + 1, 1, &v, &err) == LENSNET_OK && fabs(v - mean[1]) <= 1e-6;
        for (k = 0; k < 3; k++) ok &= lensnet_csv_number(&csv, i + 1, 2 + k, &v, &err) == LENSNET_OK && fabs(v - log(mean[k])) <= 1e-5;
        agree += ok;
      }
      lensnet_csv_free(&csv);
    }
    CHECK(agree == N, "an ensemble of %d, --symmetries %d: p_lens and the logits from the mean probabilities over models and views "
          "(%lu of %d)", M, views, (unsigned long)agree, N);
    snprintf(cmd, sizeof cmd, "predict --model " ENS "/m0.safetensors --model " ENS "/m1.safetensors --model " ENS
             "/m2.safetensors " ENS "/x.npy --symmetries %d --threads 2 --batch 4 --csv " ENS "/et%d.csv", views, views);
    rc = cli_lens("%s", cmd);
    {
      char again[128];
      snprintf(again, sizeof again, ENS "/et%d.csv", views);
      CHECK(rc == 0 && cli_same_file(path, again), "an ensemble, --symmetries %d: the same rows with 2 threads and --batch 4", views);
    }
  }
  /* one model twice is that model alone (its p_lens; the logit columns become logs of probabilities) */
  rc = cli_lens("predict --model " ENS "/m1.safetensors " ENS "/x.npy --csv " ENS "/one.csv");
  rc |= cli_lens("predict --model " ENS "/m1.safetensors --model " ENS "/m1.safetensors " ENS "/x.npy --csv " ENS "/twice.csv");
  agree = 0;
  if (rc == 0 && lensnet_csv_read(ENS "/one.csv", &csv, &err) == LENSNET_OK) {
    lensnet_csv twice;
    if (lensnet_csv_read(ENS "/twice.csv", &twice, &err) == LENSNET_OK) {
      for (i = 0; i < N; i++) {
        double a, b;
        agree += lensnet_csv_number(&csv, i + 1, 1, &a, &err) == LENSNET_OK && lensnet_csv_number(&twice, i + 1, 1, &b, &err) == LENSNET_OK &&
                 fabs(a - b) <= 1e-6 * (fabs(a) + 1e-30) + 1e-12;
      }
      lensnet_csv_free(&twice);
    }
    lensnet_csv_free(&csv);
  }
  CHECK(agree == N, "an ensemble of one model twice gives the model's own p_lens (%lu of %d)", (unsigned long)agree, N);
  /* refusals: other input size, other classes, a regression member, a locator */
  if (lensnet_model_create("input 2 8 8\nconv2d name=c1 out=3 kernel=3\nrelu\nflatten\ndense name=d out=3", &other, &err) == LENSNET_OK) {
    lensnet_model_init(other, 3);
    lensnet_model_save(other, ENS "/big.safetensors", &err);
    lensnet_model_free(other);
  }
  rc = cli_lens_output(text, sizeof text, "predict --model " ENS "/m0.safetensors --model " ENS "/big.safetensors " ENS "/x.npy");
  CHECK(rc == 2 && strstr(text, "2x8x8") && strstr(text, "2x7x7"), "an ensemble member of another input size refused (exit %d): %s", rc, text);
  lensnet_model_set_meta(m[2], "classes", "a,b,lens");
  lensnet_model_save(m[2], ENS "/order.safetensors", &err);
  rc = cli_lens_output(text, sizeof text, "predict --model " ENS "/m0.safetensors --model " ENS "/order.safetensors " ENS "/x.npy");
  CHECK(rc == 2 && strstr(text, "'b'") && strstr(text, "'lens'"), "an ensemble member with other classes refused (exit %d): %s", rc, text);
  lensnet_model_set_meta(m[2], "regress.targets", "theta_E,e1,e2");
  lensnet_model_set_meta(m[2], "regress.loss", "mse");
  lensnet_model_set_meta(m[2], "regress.mean", "1,0,0");
  lensnet_model_set_meta(m[2], "regress.std", "0.5,0.2,0.2");
  lensnet_model_save(m[2], ENS "/regress.safetensors", &err);
  rc = cli_lens_output(text, sizeof text, "predict --model " ENS "/m0.safetensors --model " ENS "/regress.safetensors " ENS "/x.npy");
  CHECK(rc == 2 && strstr(text, "regression"), "a regression member refused (exit %d): %s", rc, text);
  rc = cli_lens_output(text, sizeof text, "predict --model " ENS "/regress.safetensors --model " ENS "/m0.safetensors " ENS "/x.npy");
  CHECK(rc == 2 && strstr(text, "regression"), "an ensemble led by a regression model refused (exit %d): %s", rc, text);
  rc = cli_lens_output(text, sizeof text, "predict --model " ENS "/m0.safetensors --model " ENS "/m1.safetensors --locator " ENS
                       "/regress.safetensors " ENS "/x.npy");
  CHECK(rc == 2 && strstr(text, "--locator"), "--locator beside an ensemble refused (exit %d): %s", rc, text);
  free(ws);
  lensnet_tensor_free(&x);
  for (j = 0; j < M; j++) lensnet_model_free(m[j]);
  cli_shell("rm -rf " ENS);
}

int main(void) {
  TEST("every released finder of Wilde et al. 2022 reproduces PyTorch's logits through lens predict") test_parity();
  TEST("lens predict refuses mismatched inputs with a clear message") test_mismatched_inputs();
  TEST("lens predict refuses empty images and oversized band counts, and survives odd class metadata") test_odd_inputs();
  TEST("lens predict on FITS cutouts: resize, min-max") test_fits_files();
  TEST("lens predict on FITS cutouts: --bands, --list and --shard") test_fits_lists_and_shards();
  TEST("--skip-bad: unreadable and misfit objects named and left out; shards count them, lens merge joins the rest") test_skip_bad();
  TEST("a band that holds no image: noted, and left out by --skip-bad") test_empty_band();
  TEST("--list: paths holding spaces, separated by tabs or commas, or one a line; comments") test_list_spaces();
  TEST("--bands: files go to the bands their FILTER headers name") test_bands_by_filter();
  TEST("a FITS cube's planes go to the bands their BANDn cards name") test_cube_band_names();
  TEST("a .npy's planes go to the bands lens sim's bands.txt beside it names") test_npy_band_names();
  TEST("FITS cutouts at another pixel scale than the model's are noted") test_pixel_scale_note();
  TEST("lens predict on tile-compressed cutouts scores them as their decompressed files") test_fits_compressed();
  TEST("lens predict --shard over .npy stacks: joined shards are the whole run, manifests, --skip-done") test_npy_shards();
  TEST("lens predict --locator: each blob's position, an nll locator's sigmas, shards; non-locators refused") test_locator();
  TEST("the shipped finders find lenses in a fresh lens sim sample") test_shipped_finders();
  TEST("lens predict --symmetries 2 and 8 on a classifier average the views' class probabilities") test_classifier_symmetries();
  TEST("lens predict --model repeated: an ensemble averages its finders' class probabilities") test_ensemble();
  return check_summary();
}
