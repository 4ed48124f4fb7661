/* `lens quantize` end to end on a small `lens sim` sample: it writes a quantised model that
 * `lens info` and `lens predict` read, reports agreement, AUC and speed, and bad input gets
 * clear errors with exit status 1 or 2 and no file, nothing of the user's overwritten. */
#define _POSIX_C_SOURCE 200809L
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "cli_check.h"

#define W "build/tcli_quantize"
#define MODEL "weights/ou66-sim.safetensors"

static void test_quantize_and_predict(void) {
  char out[8192];
  lensnet_model *q = NULL;
  lensnet_error err;
  int rc = cli_lens_output(out, sizeof out, "quantize --model " MODEL " --calibration " W "/sim/images.npy --n 16 --out " W "/q.safetensors "
                                            "--test " W "/sim/images.npy --labels " W "/sim/labels.csv 2>/dev/null");
  double worst = 1.0, auc_f = 0.0, auc_q = 0.0;
  const char *s;
  CHECK(rc == 0, "lens quantize exits 0 (%d):\n%s", rc, out);
  CHECK(strstr(out, "9 layers in 8 bits") || strstr(out, "10 layers in 8 bits"), "says how many layers run in 8 bits:\n%s", out);
  s = strstr(out, "max |p_lens difference| ");
  CHECK(s && sscanf(s, "max |p_lens difference| %lf", &worst) == 1 && worst < 0.1, "max |p_lens difference| reported and small:\n%s", out);
  s = strstr(out, "AUC: float ");
  CHECK(s && sscanf(s, "AUC: float %lf, int8 %lf", &auc_f, &auc_q) == 2 && fabs(auc_f - auc_q) < 0.05, "AUC of both:\n%s", out);
  CHECK(strstr(out, "img/s") != NULL, "speed reported:\n%s", out);
  CHECK(lensnet_model_load(W "/q.safetensors", &q, &err) == LENSNET_OK && lensnet_model_is_quantized(q), "the file is a quantised model");
  if (q) CHECK(strcmp(lensnet_model_meta(q, "calibration"), "16 images of images.npy") == 0, "calibration described: %s", lensnet_model_meta(q, "calibration"));
  lensnet_model_free(q);
  CHECK(cli_lens_output(out, sizeof out, "info " W "/q.safetensors") == 0 && strstr(out, "quantized: int8") && strstr(out, "(int8)"),
        "lens info shows quantized and the int8 layers:\n%s", out);
  CHECK(cli_lens("predict --model " W "/q.safetensors " W "/sim/images.npy > " W "/scores.csv 2>/dev/null") == 0, "lens predict runs it");
  cli_text(W "/scores.csv", out, sizeof out);
  CHECK(strchr(out, '\n') && strstr(out, "p_lens"), "scores written:\n%.200s", out);
  CHECK(cli_lens("quantize --model " MODEL " --calibration " W "/sim/images.npy --n 8 --out " W "/q1.safetensors --quantize-first > /dev/null 2>&1") == 0,
        "--quantize-first runs");
  /* OU-66 (J,Y,H,VIS) calibrated and tested on lens sim's stack (VIS,Y,J,H, named in its bands.txt):
   * fed by name, as lens predict feeds it, so the float AUC is lens eval's of lens predict's scores */
  rc = cli_lens_output(out, sizeof out, "quantize --model weights/OU_66.safetensors --calibration " W "/sim/images.npy --n 8 --out " W
                                        "/q66.safetensors --test " W "/sim/images.npy --labels " W "/sim/labels.csv");
  CHECK(rc == 0 && strstr(out, "holds VIS,Y,J,H") && strstr(out, "fed by name"), "lens quantize feeds a named stack by name: %s", out);
}

static void test_bad_input(void) {
  CHECK(cli_lens("quantize --calibration " W "/sim/images.npy --out " W "/x.safetensors 2>/dev/null") == 2, "missing --model: 2");
  CHECK(cli_lens("quantize --model " MODEL " --calibration " W "/sim/images.npy --out " W "/x.safetensors --labels " W "/sim/labels.csv 2>/dev/null") == 2,
        "--labels without --test: 2");
  CHECK(cli_lens("quantize --model " MODEL " --calibration " W "/missing.npy --out " W "/x.safetensors 2>/dev/null") == 1, "missing images: 1");
  CHECK(cli_lens("quantize --model " MODEL " --calibration " W "/small/images.npy --out " W "/x.safetensors 2>" W "/err.txt") == 1, "wrong image size: 1");
  {
    char text[2048];
    cli_text(W "/err.txt", text, sizeof text);
    CHECK(strstr(text, "[N, 4, 66, 66]") != NULL, "the message names the shape wanted: %s", text);
  }
  CHECK(cli_lens("quantize --model " W "/q.safetensors --calibration " W "/sim/images.npy --out " W "/x.safetensors 2>/dev/null") == 1,
        "a quantised model again: 1");
  CHECK(cli_lens("export-c " W "/q.safetensors --out " W "/q.c 2>/dev/null") == 1, "export-c refuses a quantised model");
  CHECK(cli_shell("test -e " W "/x.safetensors") != 0, "no file written by a failed run");
}

/* Mistakes that once cost data or printed garbage: an --out that is not a model name or is an
 * input, a bad or short labels file (checked before anything is written, the bad value quoted),
 * non-finite pixels (set to 0 with a note, as lens predict does) and calibration images with no
 * signal (refused). */
static void test_hostile_files(void) {
  char text[4096];
  lensnet_tensor x, y;
  lensnet_error err;
  size_t i, per = 4 * 66 * 66;
  memset(&y, 0, sizeof y);
  CHECK(lensnet_npy_read(W "/sim/images.npy", &x, &err) == LENSNET_OK, "read the sample: %s", err.message);
  if (x.data) {
    x.data[5] = (float)INFINITY; /* one pixel of image 0 */
    CHECK(lensnet_npy_write(W "/inf.npy", &x, &err) == LENSNET_OK, "write inf.npy");
    for (i = 0; i < 4 * per; i++) x.data[i] = 0.0f;
    x.shape[0] = 4;
    CHECK(lensnet_npy_write(W "/const.npy", &x, &err) == LENSNET_OK, "write const.npy");
    lensnet_tensor_free(&x);
  }
  cli_shell("cp " W "/sim/images.npy " W "/cal.npy && cp " MODEL " " W "/m.safetensors");
  cli_shell("awk -F, 'NR==1{print \"label\";next}{print (NR==3)?\"x\":$2}' " W "/sim/labels.csv > " W "/bad_labels.csv");
  cli_shell("head -10 " W "/sim/labels.csv > " W "/short_labels.csv");

  CHECK(cli_lens("quantize --model " MODEL " --calibration " W "/cal.npy --n 16 --out " W "/cal.npy 2>" W "/err.txt") == 2,
        "--out with another extension: 2");
  CHECK(strstr(cli_text(W "/err.txt", text, sizeof text), ".safetensors") != NULL, "says a model is a .safetensors file: %s", text);
  CHECK(lensnet_npy_read(W "/cal.npy", &y, &err) == LENSNET_OK && y.shape[0] == 32, "the images are untouched");
  lensnet_tensor_free(&y);
  CHECK(cli_lens("quantize --model " W "/m.safetensors --calibration " W "/cal.npy --n 16 --out ./" W "/m.safetensors 2>" W "/err.txt") == 2,
        "--out naming the model (another spelling): 2");
  CHECK(strstr(cli_text(W "/err.txt", text, sizeof text), "is also an input") != NULL, "says it is an input: %s", text);
  CHECK(cli_shell("cmp -s " MODEL " " W "/m.safetensors") == 0, "the model is untouched");
  CHECK(cli_lens("info " W "/m.safetensors --set x=1 --out " W "/lab.csv 2>/dev/null") == 2 && cli_shell("test -e " W "/lab.csv") != 0,
        "lens info --set --out FILE.csv: 2, nothing written");

  CHECK(cli_lens("quantize --model " MODEL " --calibration " W "/cal.npy --n 16 --out " W "/y.safetensors --test " W "/sim/images.npy "
                 "--labels " W "/bad_labels.csv 2>" W "/err.txt") == 1, "a label that is not 0 or 1: 1");
  CHECK(strstr(cli_text(W "/err.txt", text, sizeof text), "line 3: class 'x' is not an integer from 0 to 1") != NULL, "the bad value quoted, with its line: %s", text);
  CHECK(cli_shell("test -e " W "/y.safetensors") != 0, "nothing written when the labels are bad");
  CHECK(cli_lens("quantize --model " MODEL " --calibration " W "/cal.npy --n 16 --out " W "/y.safetensors --test " W "/sim/images.npy "
                 "--labels " W "/short_labels.csv 2>" W "/err.txt") == 1, "too few labels: 1");
  CHECK(strstr(cli_text(W "/err.txt", text, sizeof text), "9 label rows for 32 images") != NULL, "the counts named: %s", text);
  CHECK(cli_shell("test -e " W "/y.safetensors") != 0, "nothing written when labels are short");
  CHECK(cli_lens("quantize --model " MODEL " --calibration " W "/cal.npy --n 16 --out " W "/y.safetensors --test " W "/no_such.npy "
                 "2>" W "/err.txt") == 1 && strstr(cli_text(W "/err.txt", text, sizeof text), "no_such.npy") != NULL &&
            cli_shell("test -e " W "/y.safetensors") != 0,
        "a --test file that cannot be read: 1, named, and nothing written (it was written first): %s", text);
  /* the other commands that write one file refuse to write it over an input, whatever its extension */
  cli_shell("cp " MODEL " " W "/m_as.c && cp " MODEL " " W "/m_as.h && printf 'index,p_lens\n0,0.5\n' > " W "/s_as.png");
  CHECK(cli_lens("export-c " W "/m_as.c --out " W "/m_as.c 2>" W "/err.txt") == 2 && cli_shell("cmp -s " MODEL " " W "/m_as.c") == 0,
        "export-c --out naming the model: 2, the model untouched");
  CHECK(cli_lens("export-c " W "/m_as.h --out " W "/m_as.c 2>" W "/err.txt") == 2 && cli_shell("cmp -s " MODEL " " W "/m_as.h") == 0,
        "export-c whose header would be the model: 2, the model untouched");
  CHECK(cli_lens("plot roc --scores " W "/s_as.png --labels " W "/sim/labels.csv --out " W "/s_as.png 2>" W "/err.txt") == 2 &&
            strstr(cli_text(W "/err.txt", text, sizeof text), "is also an input") != NULL && cli_shell("grep -q p_lens " W "/s_as.png") == 0,
        "plot --out naming the scores: 2, the scores untouched");
  cli_shell("cp samples/scene.json " W "/scene_as.npy");
  CHECK(cli_lens("render " W "/scene_as.npy --out " W "/scene_as.npy 2>" W "/err.txt") == 2 && cli_shell("cmp -s samples/scene.json " W "/scene_as.npy") == 0,
        "render --out naming the scene: 2, the scene untouched");

  /* labels read as lens train reads them: rows matched by their index column, in any order */
  cli_shell("(head -1 " W "/sim/labels.csv; tail -n +2 " W "/sim/labels.csv | tac) > " W "/rev_labels.csv");
  {
    char a[4096], b[4096];
    CHECK(cli_lens_output(a, sizeof a, "quantize --model " MODEL " --calibration " W "/cal.npy --n 16 --out " W "/y1.safetensors --test " W
                          "/sim/images.npy --labels " W "/sim/labels.csv 2>/dev/null") == 0 &&
              cli_lens_output(b, sizeof b, "quantize --model " MODEL " --calibration " W "/cal.npy --n 16 --out " W "/y2.safetensors --test " W
                              "/sim/images.npy --labels " W "/rev_labels.csv 2>/dev/null") == 0 &&
              strstr(a, "AUC: float") && strstr(b, "AUC: float") &&
              !strncmp(strstr(a, "AUC: float"), strstr(b, "AUC: float"), 40),
          "labels in reverse row order, matched by index: the same AUC:\n%s\n%s", a, b);
    cli_shell("rm -f " W "/y1.safetensors " W "/y2.safetensors " W "/rev_labels.csv");
  }
  CHECK(cli_lens("quantize --model " MODEL " --calibration " W "/cal.npy --n 16 --out " W "/y.safetensors --test " W "/inf.npy "
                 "--labels " W "/sim/labels.csv > " W "/out.txt 2>" W "/err.txt") == 0, "an infinite pixel in the test images: runs");
  CHECK(strstr(cli_text(W "/err.txt", text, sizeof text), "inf.npy: 1 infinite pixels were set to 0") != NULL, "a note names it: %s", text);
  CHECK(strstr(cli_text(W "/out.txt", text, sizeof text), "nan") == NULL, "no NaN in the report:\n%s", text);
  CHECK(cli_lens("quantize --model " MODEL " --calibration " W "/const.npy --out " W "/z.safetensors 2>" W "/err.txt") == 1,
        "calibration images of one value: 1");
  CHECK(strstr(cli_text(W "/err.txt", text, sizeof text), "one value throughout") != NULL, "says why: %s", text);
  CHECK(cli_shell("test -e " W "/z.safetensors") != 0, "nothing written from blank calibration images");
}

int main(void) {
  if (!cli_have_lens()) return check_summary();
  cli_shell("rm -rf " W " && mkdir -p " W);
  if (cli_lens("sim --preset euclid-lensfinding --n 32 --seed 3 --threads 2 --out " W "/sim > /dev/null 2>&1") ||
      cli_lens("sim --preset deeplense-substructure --n 2 --seed 3 --threads 1 --out " W "/small > /dev/null 2>&1")) {
    CHECK(0, "lens sim for the test data");
    return check_summary();
  }
  TEST("lens quantize writes a model lens predict runs, and reports agreement, AUC and speed") test_quantize_and_predict();
  TEST("bad input: exit 2 for usage, 1 for failures, no file") test_bad_input();
  TEST("hostile files: --out an input or not a model name, bad labels, non-finite pixels, blank calibration") test_hostile_files();
  return check_summary();
}
