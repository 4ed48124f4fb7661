/* `lens sim` end to end: the files do not depend on the thread count, labels.csv has the
 * columns docs/populations.md lists, --fits writes one file per object, --ratio sets the class ratio, --png writes
 * previews, --shard I/N makes the whole run's objects in blocks (with manifests and --skip-done),
 * --windows cuts training windows from fields, an unknown preset fails, and a failed run leaves
 * no folder it made behind. */
#define _POSIX_C_SOURCE 200809L
#include "cli_check.h"

#define T1 "/tmp/lens_popsim_t1"
#define T3 "/tmp/lens_popsim_t3"

/* The column list of docs/populations.md ("labels.csv columns", the first `...` span) without
 * its spaces and line breaks; "" if not found. */
static void documented_columns(char *out, size_t cap) {
  static char text[1 << 16];
  const char *p = strstr(cli_text("docs/populations.md", text, sizeof text), "## labels.csv columns"), *q;
  size_t n = 0;
  out[0] = 0;
  if (!p || !(p = strchr(p, '`')) || !(q = strchr(++p, '`'))) return;
  for (; p < q && n + 1 < cap; p++)
    if (*p != ' ' && *p != '\n') out[n++] = *p;
  out[n] = 0;
}

static void test_threads_and_columns(void) {
  FILE *f;
  char line[2048], docs[2048];
  int rc1, rc2;
  rc1 = cli_shell("rm -rf " T1 " " T3) == 0 ? cli_lens("sim --preset euclid-compound --n 10 --seed 8 --threads 1 --out " T1 " 2>/dev/null") : 1;
  rc2 = cli_lens("sim --preset euclid-compound --n 10 --seed 8 --threads 3 --fits --out " T3 " 2>/dev/null");
  CHECK(rc1 == 0 && rc2 == 0, "both runs succeed");
  CHECK(cli_same_file(T1 "/images.npy", T3 "/images.npy") && cli_same_file(T1 "/labels.csv", T3 "/labels.csv"), "identical files");
  f = fopen(T1 "/labels.csv", "r");
  CHECK(f && fgets(line, sizeof line, f) && !strncmp(line, "index,label,kind,theta_E", 24) && strstr(line, "z_source2") && strstr(line, "arc_snr"),
        "header");
  if (f) fclose(f);
  documented_columns(docs, sizeof docs);
  line[strcspn(line, "\n")] = 0;
  CHECK(docs[0] && strcmp(line, docs) == 0, "the header is the column list of docs/populations.md:\n  %s\n  %s", line, docs);
  f = fopen(T3 "/fits/0000009.fits", "rb");
  CHECK(f != NULL, "FITS per object");
  if (f) fclose(f);
}

/* A smaller run with --fits into T3 (10 objects' FITS files there): the files of objects 6-9 go,
 * files lens sim did not name stay; without --fits, a note says what fits/ holds. */
static void test_rerun_fewer(void) {
  CHECK(cli_shell("touch " T3 "/fits/notes.txt " T3 "/fits/12.fits") == 0 &&
            cli_lens("sim --preset euclid-compound --n 6 --seed 9 --fits --out " T3 " 2> " T3 "/err.txt") == 0,
        "a run of 6 into the folder of 10");
  CHECK(cli_file_has(T3 "/err.txt", "removed 4 fits files of an earlier run with more objects"), "it says what it removed");
  CHECK(cli_file_has(T3 "/err.txt", "this replaced the data set " T3 " held before (10 images)"), "and that it replaced a data set of 10");
  CHECK(cli_shell("test -e " T3 "/fits/0000005.fits && ! test -e " T3 "/fits/0000006.fits && ! test -e " T3 "/fits/0000009.fits") == 0,
        "objects 0-5 have their files, 6-9 none");
  CHECK(cli_shell("test -e " T3 "/fits/notes.txt && test -e " T3 "/fits/12.fits") == 0, "other files stay");
  CHECK(cli_lens("sim --preset euclid-compound --n 2 --seed 9 --out " T3 " 2> " T3 "/err.txt") == 0 &&
            cli_file_has(T3 "/err.txt", "fits holds 6 fits files of an earlier run (this one wrote none: --fits writes them)") &&
            cli_shell("test -e " T3 "/fits/0000005.fits") == 0,
        "without --fits: a note, nothing removed");
}

/* --ratio 1:100 over 202 objects: two lenses (give or take one). */
static void test_ratio(void) {
  FILE *f;
  char line[2048];
  CHECK(cli_lens("sim --preset euclid-lensfinding --ratio 1:100 --n 202 --threads 2 --out /tmp/lens_popsim_r 2>/dev/null") == 0, "--ratio run");
  f = fopen("/tmp/lens_popsim_r/labels.csv", "r");
  if (f) {
    int rows = 0, lenses = 0;
    while (fgets(line, sizeof line, f)) {
      const char *comma = strchr(line, ',');
      if (rows++ == 0 || !comma) continue;
      lenses += comma[1] == '1' && comma[2] == ',';
    }
    fclose(f);
    CHECK(rows == 203 && lenses >= 1 && lenses <= 3, "%d rows, %d lenses", rows, lenses);
  } else {
    CHECK(0, "labels.csv of the --ratio run");
  }
  {
    /* ratios that name no fraction are usage errors, not a NaN share of lenses */
    static const char *const bad[] = {"inf:1", "1:inf", "1:1e400", "nan:1", "0:0", "-1:3", "1:", "1/100"};
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
      CHECK(cli_lens("sim --preset euclid-lensfinding --ratio %s --n 2 --out /tmp/lens_popsim_bad 2>/dev/null", bad[i]) == 2,
            "--ratio %s refused with exit status 2", bad[i]);
  }
  CHECK(cli_lens("sim --preset euclid-lensfinding --n 2 --shard 0/18446744073709551617 --out /tmp/lens_popsim_bad 2>/dev/null") == 2,
        "a shard count past 2^64 refused, not wrapped");
  /* a shifted sky: in range it runs, out of range it is a usage error */
  CHECK(cli_lens("sim --preset euclid-lensfinding --n 2 --psf-scale 2 --exposure-scale 0.25 --out /tmp/lens_popsim_shift 2>/dev/null") == 0,
        "--psf-scale 2 --exposure-scale 0.25 run");
  CHECK(cli_lens("sim --preset euclid-lensfinding --n 2 --psf-scale 20 --out /tmp/lens_popsim_bad 2>/dev/null") == 2, "--psf-scale 20 refused");
  CHECK(cli_lens("sim --preset euclid-lensfinding --n 2 --exposure-scale 0 --out /tmp/lens_popsim_bad 2>/dev/null") == 2,
        "--exposure-scale 0 refused");
}

/* Every preview is a PNG (signature and IHDR) of the preview size: 66 x 4 = 264 pixels. */
static void test_png_previews(void) {
  int k, good = 0;
  CHECK(cli_lens("sim --preset euclid-lensfinding --n 2 --out /tmp/lens_popsim_p --png 2>/dev/null") == 0, "--png run");
  for (k = 0; k < 2; k++) {
    unsigned char head[24];
    char path[128];
    FILE *pf;
    snprintf(path, sizeof path, "/tmp/lens_popsim_p/png/%07d.png", k);
    pf = fopen(path, "rb");
    if (pf && fread(head, 1, 24, pf) == 24 && !memcmp(head, "\x89PNG\r\n\x1a\n", 8) && !memcmp(head + 12, "IHDR", 4) &&
        ((unsigned)head[18] << 8 | head[19]) == 264 && ((unsigned)head[22] << 8 | head[23]) == 264)
      good++;
    if (pf) fclose(pf);
  }
  CHECK(good == 2, "%d of 2 PNG previews of 264x264", good);
}

#define TS "/tmp/lens_popsim_s"

/* Three shards of a 10-object run: [0, 3), [3, 6), [6, 10). Their labels rows and image data,
 * joined in order, are the whole run's byte for byte; each folder has its manifest. */
static void test_shards(void) {
  char text[1024];
  int k, ok = 1;
  CHECK(cli_shell("rm -rf " TS) == 0 && cli_lens("sim --preset euclid-lensfinding --n 10 --seed 4 --threads 1 --out " TS "/all 2>/dev/null") == 0,
        "the whole run");
  for (k = 0; k < 3; k++) ok &= cli_lens("sim --preset euclid-lensfinding --n 10 --seed 4 --threads 2 --shard %d/3 --out " TS "/p%d 2>/dev/null", k, k) == 0;
  CHECK(ok, "three shards");
  CHECK(cli_shell("cd " TS " && (cat p0/labels.csv; tail -n +2 p1/labels.csv; tail -n +2 p2/labels.csv) | cmp -s - all/labels.csv") == 0,
        "labels joined = the whole run's (global index column)");
  CHECK(cli_shell("cd " TS " && (tail -c +129 p0/images.npy; tail -c +129 p1/images.npy; tail -c +129 p2/images.npy) | cmp -s - all/images.npy -i 0:128") == 0,
        "images joined = the whole run's");
  cli_text(TS "/p2/shard.json", text, sizeof text);
  CHECK(strstr(text, "\"command\": \"sim\"") && strstr(text, "\"shard\": 2, \"shards\": 3, \"first\": 6, \"end\": 10, \"total\": 10") &&
            strstr(text, "[\"images.npy\", \"labels.csv\"]"), "manifest: %s", text);
  CHECK(!check_file_exists(TS "/all/shard.json"), "no manifest for a whole run");
  CHECK(cli_lens("sim --preset euclid-lensfinding --n 10 --seed 4 --shard 1/3 --threads 1 --skip-done --out " TS "/p1 2> " TS "/err.txt") == 0 &&
            cli_file_has(TS "/err.txt", "already done"), "--skip-done skips a finished shard");
  CHECK(cli_lens("sim --preset euclid-lensfinding --n 10 --seed 5 --shard 1/3 --skip-done --out " TS "/p1 2> " TS "/err.txt") == 0 &&
            !cli_file_has(TS "/err.txt", "already done"), "--skip-done redoes a shard of another run (seed)");
  CHECK(cli_lens("sim --preset euclid-lensfinding --n 10 --seed 5 --skip-done --out " TS "/x 2>/dev/null") == 2, "--skip-done without --shard");
  CHECK(cli_lens("sim --preset euclid-lensfinding --n 10 --shard 3/3 --out " TS "/x 2>/dev/null") == 2, "--shard 3/3 refused");
  cli_shell("rm -rf " TS);
}

#define TW "/tmp/lens_popsim_w"
#define WINDOWS "sim --preset euclid-lensfinding --field 200 --lenses 2 --others 10 --seed 3"

/* Rows of a labels.csv after its header, and how many have label 1; -1 rows if unreadable. */
static void label_counts(const char *path, int *rows, int *lenses) {
  FILE *f = fopen(path, "r");
  char line[2048];
  *rows = f ? 0 : -1;
  *lenses = 0;
  if (f && fgets(line, sizeof line, f))
    while (fgets(line, sizeof line, f)) {
      const char *comma = strchr(line, ',');
      (*rows)++;
      *lenses += comma && comma[1] == '1' && comma[2] == ',';
    }
  if (f) fclose(f);
}

/* --windows: images.npy [N, 4, 66, 66] and labels.csv with the cutouts' columns, the share of
 * positives asked for, the same bytes whatever --threads; options that do not apply are refused. */
static void test_windows(void) {
  char head[129], line[2048], cut[2048];
  int rows, lenses;
  FILE *f;
  CHECK(cli_shell("rm -rf " TW) == 0 && cli_lens(WINDOWS " --windows 16 --threads 1 --out " TW "/a 2>/dev/null") == 0 &&
        cli_lens(WINDOWS " --windows 16 --threads 2 --out " TW "/b 2>/dev/null") == 0, "two --windows runs");
  CHECK(cli_same_file(TW "/a/images.npy", TW "/b/images.npy") && cli_same_file(TW "/a/labels.csv", TW "/b/labels.csv"),
        "the same files with 1 and 2 threads");
  cli_text(TW "/a/images.npy", head, sizeof head); /* the header's text starts after the magic and two lengths */
  CHECK(strstr(head + 10, "'shape': (16, 4, 66, 66)") != NULL, "images.npy shape: %s", head + 10);
  f = fopen(TW "/a/images.npy", "rb");
  CHECK(f && fseek(f, 0, SEEK_END) == 0 && ftell(f) == 128 + 16L * 4 * 66 * 66 * 4, "images.npy holds 16 windows and nothing more");
  if (f) fclose(f);
  label_counts(TW "/a/labels.csv", &rows, &lenses);
  CHECK(rows == 16 && lenses == 8, "%d rows, %d positives at the default share 0.5", rows, lenses);
  cli_text(TW "/a/labels.csv", line, sizeof line);
  line[strcspn(line, "\n")] = 0;
  CHECK(cli_lens("sim --preset euclid-lensfinding --n 1 --out " TW "/cut 2>/dev/null") == 0, "a cutout run");
  cli_text(TW "/cut/labels.csv", cut, sizeof cut);
  cut[strcspn(cut, "\n")] = 0;
  CHECK(cut[0] && strcmp(line, cut) == 0, "labels.csv has the cutouts' columns");
  CHECK(cli_file_has(TW "/a/labels.csv", "\n15,"), "index numbers the windows");
  CHECK(cli_lens(WINDOWS " --windows 6 --lens-fraction 1 --threads 2 --out " TW "/pos 2>/dev/null") == 0, "--lens-fraction 1");
  label_counts(TW "/pos/labels.csv", &rows, &lenses);
  CHECK(rows == 6 && lenses == 6, "lenses only: %d rows, %d positives", rows, lenses);
  CHECK(cli_lens(WINDOWS " --windows 5 --lens-fraction 0 --window-offset 4 --window-clear 20 --centred-negatives 1 --out " TW "/neg 2>/dev/null") == 0,
        "negatives only, every option given");
  label_counts(TW "/neg/labels.csv", &rows, &lenses);
  CHECK(rows == 5 && lenses == 0, "negatives only: %d rows, %d positives", rows, lenses);
  {
    static const char *const bad[] = {
      WINDOWS " --windows 4 --n 4", WINDOWS " --windows 4 --shard 0/2", WINDOWS " --windows 4 --fits", WINDOWS " --windows 4 --ra 10",
      "sim --preset deeplense-substructure --windows 4", "sim --preset euclid-lensfinding --n 4 --window-offset 2",
      WINDOWS " --windows 4 --window-offset 40", WINDOWS " --windows 4 --window-offset 8 --window-clear 4",
      "sim --preset euclid-lensfinding --field 200 --lenses 0 --windows 4",
      "sim --preset euclid-lensfinding --field 200 --lenses 1 --others 2 --lens-fraction 1",
      /* DeepLenseSim's Model I has one lens and source shape and no selection */
      "sim --preset deeplense-substructure --n 3 --theta-e-min 1", "sim --preset deeplense-substructure --n 3 --snr-min 5",
      "sim --preset deeplense-substructure --n 3 --mu-min 2", "sim --preset deeplense-substructure --n 3 --neighbours 10",
      "sim --preset deeplense-substructure --n 3 --lens-fraction 0.5", "sim --preset deeplense-substructure --n 3 --clumpy-fraction 1",
      /* options the preset does not use, and two that set the same thing (they were ignored, or the last won) */
      "sim --preset deeplense-substructure --n 3 --ratio 1:3", "sim --preset ensai-modelling --n 3 --ratio 1:3",
      "sim --preset ensai-modelling --n 3 --lens-fraction 0", "sim --preset euclid-lensfinding --n 3 --substructure-scale 5",
      "sim --preset euclid-lensfinding --n 3 --ratio 1:3 --lens-fraction 0.9", "sim --preset euclid-lensfinding --n 3 --theta-e-min 0 --theta-e-max 0"};
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
      CHECK(cli_lens("%s --out " TW "/bad 2>/dev/null", bad[i]) == 2, "refused with exit status 2: lens %s", bad[i]);
  }
  /* the heaviest substructure the option allows: a vortex of 3 M_E on a rod as short as 0.06" */
  CHECK(cli_lens("sim --preset deeplense-substructure --n 9 --substructure-scale 100 --threads 1 --out " TW "/heavy 2>/dev/null") == 0,
        "--substructure-scale 100 simulates");
  cli_shell("rm -rf " TW);
}

#define TF "/tmp/lens_popsim_f"
#define FAILING "sim --preset euclid-lensfinding --n 4 --exposure-scale 0.001 --fits --png" /* the selection accepts no lens */

/* A run that fails: the folders it made go (its .tmp files first), one that was there stays. */
static void test_failure_cleans_up(void) {
  cli_shell("rm -rf " TF);
  CHECK(cli_lens(FAILING " --out " TF "/new/deeper 2>/dev/null") == 1, "the run fails");
  CHECK(cli_shell("test -e " TF) != 0, "no folder made by the failed run is left");
  CHECK(cli_shell("mkdir -p " TF "/old") == 0 && cli_lens(FAILING " --out " TF "/old 2>/dev/null") == 1, "fails into a folder that exists");
  CHECK(cli_shell("test -d " TF "/old && test -z \"$(ls -A " TF "/old)\"") == 0, "the existing folder stays, empty (no .tmp, fits/ or png/)");
  cli_shell("rm -rf " TF);
}

int main(void) {
  if (cli_have_lens()) {
    TEST("lens sim: same files with 1 and 3 threads; labels.csv has the documented columns") test_threads_and_columns();
    TEST("lens sim again into a folder with more objects' FITS files: those go") test_rerun_fewer();
    TEST("lens sim --ratio 1:100") test_ratio();
    TEST("lens sim --png writes previews") test_png_previews();
    TEST("lens sim --shard I/N: blocks of the whole run, manifests, --skip-done") test_shards();
    TEST("lens sim --windows: shapes, shares, columns, threads, refusals") test_windows();
    TEST("lens sim: a failed run leaves no folder it made") test_failure_cleans_up();
    TEST("lens sim --preset nonsense fails") CHECK(cli_lens("sim --preset nonsense --n 2 --out " T1 " 2>/dev/null") != 0, "unknown preset fails");
    CHECK(cli_shell("rm -rf " T1 " " T3 " /tmp/lens_popsim_r /tmp/lens_popsim_p") == 0, "clean up");
  }
  return check_summary();
}
