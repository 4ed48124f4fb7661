/* test_cli_hostile.c - what the tool does with input an attacker or an unlucky user gives it:
 * each case is one that once crashed, allocated without bound, destroyed an output or succeeded
 * silently, kept here so it stays fixed.
 *   - out-of-range numbers (--threads 99999999999) are usage errors naming the option;
 *   - NaN and infinite pixels are scored, counted and reported, and the scores stay finite; with
 *     --resize they are left out of the interpolation rather than spread by it;
 *   - a folder where a file is expected is named as such by every command that reads files;
 *   - an --out that cannot be created is refused before any work, and writes nothing;
 *   - a small hostile weights file is refused without allocating what it claims. */
#define _POSIX_C_SOURCE 200809L
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "cli_check.h"
#include <sys/resource.h>

#define W "build/hostile_t"
#define MODEL "build/hostile_t/model.safetensors"

/* Four 2 x 8 x 8 images; image 1 holds a NaN and image 2 an infinity. */
static void make_inputs(void) {
  lensnet_model *m;
  lensnet_error err;
  lensnet_tensor t;
  size_t shape[4] = {4, 2, 8, 8}, i;
  CHECK(cli_shell("rm -rf " W " && mkdir -p " W "/adir && touch " W "/afile") == 0, "fresh work folder");
  if (lensnet_model_create("input 2 8 8\nconv2d name=c out=4 kernel=3\nrelu\nmaxpool kernel=2\nflatten\ndense name=d out=2", &m, &err) != LENSNET_OK) {
    CHECK(0, "model: %s", err.message);
    return;
  }
  lensnet_model_init(m, 5);
  lensnet_model_set_meta(m, "classes", "non-lens,lens");
  CHECK(lensnet_model_save(m, MODEL, &err) == LENSNET_OK, "save the model: %s", err.message);
  lensnet_model_free(m);
  lensnet_tensor_alloc(&t, 4, shape, &err);
  for (i = 0; i < 4 * 128; i++) t.data[i] = (float)((i * 37) % 11) / 11.0f;
  t.data[128 + 9] = NAN;
  t.data[256 + 70] = INFINITY;
  CHECK(lensnet_npy_write(W "/bad.npy", &t, &err) == LENSNET_OK, "write bad.npy: %s", err.message);
  lensnet_tensor_free(&t);
  /* one 2 x 16 x 16 image with a NaN and an infinity, for --resize */
  shape[0] = 1, shape[2] = shape[3] = 16;
  lensnet_tensor_alloc(&t, 4, shape, &err);
  for (i = 0; i < 512; i++) t.data[i] = (float)((i * 37) % 11) / 11.0f;
  t.data[16 * 5 + 7] = NAN;
  t.data[256 + 16 * 9 + 3] = -INFINITY;
  CHECK(lensnet_npy_write(W "/bad16.npy", &t, &err) == LENSNET_OK, "write bad16.npy: %s", err.message);
  lensnet_tensor_free(&t);
  {
    FILE *f = fopen(W "/labels.csv", "w");
    if (f) { fputs("index,label\n0,0\n1,1\n2,0\n3,1\n", f); fclose(f); }
    f = fopen(W "/scores.csv", "w");
    if (f) { fputs("input,p_lens\na,0.1\nb,0.9\nc,0.2\nd,0.8\n", f); fclose(f); }
  }
}

static void test_numbers_out_of_range(void) {
  char out[4096];
  int rc = cli_lens_output(out, sizeof out, "explain --model " MODEL " --input " W "/bad.npy --method smoothgrad --threads 99999999999 --out " W "/ex");
  CHECK(rc == 2 && strstr(out, "--threads") && strstr(out, "99999999999"), "explain --threads 99999999999: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "predict --model " MODEL " " W "/bad.npy --batch 0");
  CHECK(rc == 2 && strstr(out, "--batch"), "predict --batch 0: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "explain --model " MODEL " --input " W "/bad.npy --method saliency --target 2 --out " W "/ex");
  CHECK(rc == 2 && strstr(out, "--target 2") && strstr(out, "2 outputs"), "explain --target past the outputs: exit %d: %s", rc, out);
}

static void test_nonfinite_pixels(void) {
  char out[4096];
  int rc = cli_lens_output(out, sizeof out, "predict --model " MODEL " " W "/bad.npy --csv " W "/p.csv");
  CHECK(rc == 0, "predict scores images with a NaN and an infinity: exit %d: %s", rc, out);
  CHECK(strstr(out, "1 NaN (blank) pixels were set to 0") && strstr(out, "1 infinite pixels were set to 0"),
        "both are counted and reported: %s", out);
  CHECK(strstr(out, "pixels set to 0 in 2 objects, the first " W "/bad.npy[1]") != NULL, "and the objects, naming the first: %s", out);
  {
    lensnet_csv t;
    lensnet_error err;
    size_t r;
    int finite = 1;
    if (lensnet_csv_read(W "/p.csv", &t, &err) == LENSNET_OK) {
      for (r = 1; r < t.rows; r++) {
        double v = 0;
        finite &= lensnet_csv_number(&t, r, 1, &v, &err) == LENSNET_OK && v == v && v - v == 0;
      }
      CHECK(t.rows == 5 && finite, "four finite scores (%lu rows)", (unsigned long)t.rows - 1);
      lensnet_csv_free(&t);
    } else CHECK(0, "read p.csv: %s", err.message);
  }
  /* Halving 16 x 16 to 8 x 8 samples rows and columns 2i and 2i + 1 with weights 1/2 each: every
   * output has three finite neighbours of positive weight around a lone blank, so none stays blank
   * (plain interpolation would have made 2 blank outputs of each). */
  rc = cli_lens_output(out, sizeof out, "predict --model " MODEL " --resize " W "/bad16.npy --csv " W "/p16.csv");
  CHECK(rc == 0 && strstr(out, "2 blank (NaN or infinite) input pixels were left out of the resize") && !strstr(out, "set to 0"),
        "--resize leaves the blanks out and fills them in: exit %d: %s", rc, out);
  CHECK(strstr(out, "filled in by the resize in 1 object, the first " W "/bad16.npy[0]") != NULL, "naming the object: %s", out);
  rc = cli_lens_output(out, sizeof out, "explain --model " MODEL " --input " W "/bad16.npy --resize --method saliency --out " W "/ex16");
  CHECK(rc == 0 && strstr(out, "2 blank (NaN or infinite) input pixels were left out of the resize") && !strstr(out, "set to 0"),
        "explain --resize says the same: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "explain --model " MODEL " --input " W "/bad.npy --index 2 --method saliency --out " W "/ex2");
  CHECK(rc == 0 && strstr(out, "1 infinite pixels were set to 0"), "explain reports the infinity too: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "train --arch ou66 --data " W "/bad.npy --labels " W "/labels.csv --out " W "/run");
  CHECK(rc == 1 && strstr(out, "bad.npy: 2 non-finite pixels") && strstr(out, "image 1, band 0, row 1, column 1 (nan)"),
        "train refuses them with the file and the first place: exit %d: %s", rc, out);
}

static void test_folder_for_file(void) {
  static const char *const cmds[] = {
    "info " W "/adir",
    "predict --model " W "/adir " W "/bad.npy",
    "predict --model " MODEL " " W "/adir/",
    "train --arch ou66 --data " W "/adir --labels " W "/labels.csv --out " W "/run2",
    "eval --scores " W "/adir --labels " W "/labels.csv --out " W "/ev",
    "plot roc --scores " W "/adir --out " W "/r.png",
    "render " W "/adir --out " W "/r.npy",
    "explain --model " MODEL " --input " W "/adir --method saliency --out " W "/ex3",
  };
  size_t i;
  for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    char out[4096];
    int rc = cli_lens_output(out, sizeof out, "%s", cmds[i]);
    CHECK(rc == 1 && strstr(out, "is a folder, not a file"), "lens %s: exit %d: %s", cmds[i], rc, out);
  }
}

/* --out below a plain file: refused at once, before any simulation, scoring or training. */
static void test_out_unwritable(void) {
  static const char *const cmds[] = {
    "sim --preset euclid-lensfinding --n 4 --out " W "/afile/s",
    "predict --model " MODEL " " W "/bad.npy --csv " W "/afile/p.csv",
    "predict --model " MODEL " " W "/bad.npy --out " W "/afile/p.npy",
    "eval --scores " W "/scores.csv --labels " W "/labels.csv --out " W "/afile/e",
    "explain --model " MODEL " --input " W "/bad.npy --method occlusion --out " W "/afile/x",
    "train --arch ou66 --data " W "/bad.npy --labels " W "/labels.csv --out " W "/afile/t",
    "plot roc --scores " W "/scores.csv --out " W "/afile/r.png",
    "render samples/scene.json --out " W "/afile/r.npy",
  };
  size_t i;
  for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    char out[4096];
    int rc = cli_lens_output(out, sizeof out, "%s", cmds[i]);
    CHECK(rc == 1 && strstr(out, W "/afile") && !strstr(out, "non-finite"), "lens %s: exit %d: %s", cmds[i], rc, out);
  }
  CHECK(cli_shell("test -f " W "/afile && test ! -s " W "/afile") == 0, "the file in the way is untouched");
}

/* A 100-byte file claiming a 16 GiB tensor, read under a 1 GiB address-space limit: refused
 * with the sizes named, not killed for memory. */
static void test_hostile_weights(void) {
  const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[65536,65536],\"data_offsets\":[0,4]}}";
  unsigned char file[256];
  size_t hl = strlen(hdr);
  FILE *f = fopen(W "/huge.safetensors", "wb");
  char out[4096];
  int rc;
  memset(file, 0, sizeof file);
  file[0] = (unsigned char)hl;
  memcpy(file + 8, hdr, hl);
  if (f) { fwrite(file, 1, 8 + hl + 4, f); fclose(f); }
  rc = cli_lens_output(out, sizeof out, "info " W "/huge.safetensors");
  CHECK(rc == 1 && strstr(out, "4 data bytes") && strstr(out, "17179869184"), "lens info: exit %d: %s", rc, out);
  {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh -c 'ulimit -v 1048576; %s info " W "/huge.safetensors' > " W "/ulimit.txt 2>&1", cli_lens_path());
    rc = cli_shell("%s", cmd);
    CHECK(rc == 1 && cli_file_has(W "/ulimit.txt", "17179869184"), "under a 1 GiB limit the same error, no crash: exit %d", rc);
  }
}

int main(void) {
  if (!cli_have_lens()) return check_summary();
  make_inputs();
  TEST("out-of-range numbers are usage errors naming the option") test_numbers_out_of_range();
  TEST("NaN and infinite pixels: counted and reported by predict and explain, refused by train") test_nonfinite_pixels();
  TEST("a folder where a file is expected is named as such") test_folder_for_file();
  TEST("an --out below a plain file is refused before any work") test_out_unwritable();
  TEST("a 100-byte weights file claiming 16 GiB is refused without allocating it") test_hostile_weights();
  cli_shell("rm -rf " W);
  return check_summary();
}
