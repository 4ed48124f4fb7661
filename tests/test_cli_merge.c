/* `lens merge` end to end: the shards of a `lens sim --shard` run, given in any order, merge into
 * the very bytes of the run without --shard; predict-style shards (CSV and .npy files with their
 * manifests, made here as lens predict writes them) merge into the single run's file, the .npy
 * header keeping the room a writer with an open row count reserves; and the refusals - a missing
 * shard, a repeated one, another run, no manifest, rows or headers that disagree - name the
 * inputs and leave an existing output as it was. */
#define _POSIX_C_SOURCE 200809L
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "cli_check.h"
#include <sys/stat.h>

#define D "build/cli_merge"
#define SIM "sim --preset euclid-lensfinding --n 10 --threads 1"

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* floor(i total / n): where shard i of n starts (tools/shard.h). */
static size_t edge(size_t i, size_t n, size_t total) { return i * total / n; }

/* FILE.shard.json for a predict-style shard file, in the manifest's one-line format. */
static void write_manifest(const char *file, const char *run, size_t shard, size_t shards, size_t total) {
  char path[512], text[1024];
  const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
  snprintf(path, sizeof path, "%s.shard.json", file);
  snprintf(text, sizeof text,
           "{\"lens_shard\": 1, \"command\": \"predict\", \"run\": \"%s\", \"shard\": %lu, \"shards\": %lu, \"first\": %lu, "
           "\"end\": %lu, \"total\": %lu, \"files\": [\"%s\"]}\n",
           run, (unsigned long)shard, (unsigned long)shards, (unsigned long)edge(shard, shards, total),
           (unsigned long)edge(shard + 1, shards, total), (unsigned long)total, base);
  write_file(path, text);
}

/* ---- lens sim shards ------------------------------------------------------------------------- */

static void make_sim_shards(void) {
  int i, ok = cli_shell("rm -rf " D " && mkdir -p " D) == 0;
  ok = ok && cli_lens(SIM " --seed 5 --out " D "/full 2>/dev/null") == 0;
  for (i = 0; i < 3; i++) ok = ok && cli_lens(SIM " --seed 5 --shard %d/3 --out " D "/p%d 2>/dev/null", i, i) == 0;
  ok = ok && cli_lens(SIM " --seed 6 --shard 1/3 --out " D "/q1 2>/dev/null") == 0;
  CHECK(ok, "lens sim: the whole run, its three shards, and shard 1/3 of another seed");
}

static void test_sim_identical(void) {
  char out[4096];
  int rc = cli_lens_output(out, sizeof out, "merge --out " D "/merged " D "/p2 " D "/p0 " D "/p1");
  CHECK(rc == 0, "merge exits 0 (%d): %s", rc, out);
  CHECK(cli_same_file(D "/merged/images.npy", D "/full/images.npy"), "images.npy byte-identical to the run without --shard");
  CHECK(cli_same_file(D "/merged/labels.csv", D "/full/labels.csv"), "labels.csv byte-identical to the run without --shard");
  CHECK(cli_lines(D "/merged/labels.csv") == 11, "a header and 10 rows (%d lines)", cli_lines(D "/merged/labels.csv"));
  CHECK(strstr(out, "merge: 3 shards, 10 objects -> " D "/merged") != NULL, "the closing line: %s", out);
  CHECK(!exists(D "/merged/shard.json") && !exists(D "/merged/images.npy.tmp") && !exists(D "/merged/labels.csv.tmp"),
        "no manifest and no temporary file in the output");
  /* merged again over the earlier output: replaced by the same bytes */
  CHECK(cli_lens("merge --out " D "/merged " D "/p0 " D "/p1 " D "/p2 2>/dev/null") == 0 &&
        cli_same_file(D "/merged/images.npy", D "/full/images.npy"), "merging over an earlier output");
}

static void test_sim_refusals(void) {
  char out[4096];
  int rc;
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/m_gap " D "/p2 " D "/p0");
  CHECK(rc == 1 && strstr(out, "objects 3 to 5 are in no shard") && strstr(out, "shard 1/3 missing?") && strstr(out, D "/p0") &&
        strstr(out, D "/p2"), "a missing shard: exit %d, the gap named: %s", rc, out);
  CHECK(!exists(D "/m_gap"), "nothing written for a refused merge");
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/m_gap " D "/p0 " D "/p1");
  CHECK(rc == 1 && strstr(out, "objects 6 to 9 are in no shard") && strstr(out, "shard 2/3 missing?"), "the last shard missing: %s", out);
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/m_gap " D "/p1 " D "/p2");
  CHECK(rc == 1 && strstr(out, "objects 0 to 2 are in no shard") && strstr(out, "shard 0/3 missing?"), "the first shard missing: %s", out);
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/m_dup " D "/p0 " D "/p1 " D "/p2 " D "/p1");
  CHECK(rc == 1 && strstr(out, D "/p1 and " D "/p1 overlap") && strstr(out, "shard 1/3"), "a shard given twice: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/m_run " D "/p0 " D "/q1 " D "/p2");
  CHECK(rc == 1 && strstr(out, D "/p0 and " D "/q1 are not shards of the same run") && strstr(out, "run "),
        "shards of two runs (--seed 5 and 6): exit %d: %s", rc, out);
  CHECK(cli_shell("mkdir -p " D "/bare && cp " D "/p1/images.npy " D "/p1/labels.csv " D "/bare/") == 0, "a shard folder without shard.json");
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/m_bare " D "/p0 " D "/bare " D "/p2");
  CHECK(rc == 1 && strstr(out, D "/bare has no shard manifest (" D "/bare/shard.json): not a --shard output, or its shard did not finish"),
        "a folder without shard.json: exit %d: %s", rc, out);
  /* an edited manifest: a key misspelt, then the file cut short; each named */
  CHECK(cli_shell("mkdir -p " D "/edited && cp " D "/p1/images.npy " D "/p1/labels.csv " D "/edited/ && sed 's/\"total\"/\"totl\"/' " D
                  "/p1/shard.json > " D "/edited/shard.json") == 0, "a shard whose manifest says totl");
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/m_ed " D "/p0 " D "/edited " D "/p2");
  CHECK(rc == 1 && strstr(out, D "/edited/shard.json: not a shard manifest: unknown key \"totl\""), "a misspelt key: exit %d: %s", rc, out);
  CHECK(cli_shell("head -c 30 " D "/p1/shard.json > " D "/edited/shard.json") == 0, "the manifest cut short");
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/m_ed " D "/p0 " D "/edited " D "/p2");
  CHECK(rc == 1 && strstr(out, D "/edited/shard.json: not a shard manifest: JSON"), "a cut manifest: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/m.npy " D "/p0 " D "/p1 " D "/p2");
  CHECK(rc == 2 && strstr(out, "folder"), "sim shards into a file name: exit %d: %s", rc, out);
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/p0 " D "/p0 " D "/p1 " D "/p2");
  CHECK(rc == 2 && strstr(out, "is the shard"), "into one of the shards: exit %d: %s", rc, out);
  CHECK(!exists(D "/m_dup") && !exists(D "/m_run") && !exists(D "/m_bare") && !exists(D "/m.npy"), "nothing written for refused merges");
}

/* A failing merge leaves an earlier output untouched: labels.csv of shard 1 with a row too
 * many is found while copying, after other shards' rows went to the temporary file. */
static void test_sim_untouched(void) {
  char out[4096];
  int rc;
  CHECK(cli_shell("rm -rf " D "/keep " D "/b1 && mkdir -p " D "/keep && echo old > " D "/keep/images.npy && echo old > " D "/keep/labels.csv"
                  " && cp -r " D "/p1 " D "/b1 && tail -n 1 " D "/p1/labels.csv >> " D "/b1/labels.csv") == 0, "fixtures");
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/keep " D "/p0 " D "/b1 " D "/p2");
  CHECK(rc == 1 && strstr(out, D "/b1/labels.csv: 4 rows") && strstr(out, D "/b1/shard.json") && strstr(out, "[3, 6): 3 rows"),
        "a labels.csv with a row too many: exit %d: %s", rc, out);
  CHECK(file_size(D "/keep/images.npy") == 4 && file_size(D "/keep/labels.csv") == 4, "the earlier output untouched");
  CHECK(!exists(D "/keep/labels.csv.tmp") && !exists(D "/keep/images.npy.tmp"), "no temporary file left");
}

/* ---- predict-style shards -------------------------------------------------------------------- */

#define RUN "0123456789abcdef"
#define NOBJ 7

/* Rows of `lens predict` CSV for objects [first, end); one input name holds a quoted line break,
 * which does not end the row. */
static void predict_csv(const char *path, size_t first, size_t end) {
  FILE *f = fopen(path, "wb");
  size_t i;
  if (!f) return;
  fputs("input,p_lens,logit_non-lens,logit_lens\n", f);
  for (i = first; i < end; i++) {
    if (i == 4) fprintf(f, "\"odd\nname.fits\",0.5,0,0\n");
    else fprintf(f, "x.npy[%lu],%.7g,%.7g,%.7g\n", (unsigned long)i, 0.1 * (double)i, -0.5 * (double)i, 0.25 * (double)i);
  }
  fclose(f);
}

/* A .npy of objects [first, end) written as lens predict writes logits: the row count left open
 * (LENSNET_NPY_ROWS_UNKNOWN) or, with known_rows, given up front. */
static void predict_npy(const char *path, size_t first, size_t end, int ndim, const size_t *row_shape, int known_rows) {
  lensnet_npy_writer w;
  lensnet_error err;
  size_t shape[LENSNET_MAX_DIMS], per = 1, i, k;
  float row[64];
  int d;
  shape[0] = known_rows ? end - first : LENSNET_NPY_ROWS_UNKNOWN;
  for (d = 1; d < ndim; d++) per *= (shape[d] = row_shape[d - 1]);
  if (lensnet_npy_writer_begin(&w, path, ndim, shape, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); return; }
  for (i = first; i < end; i++) {
    for (k = 0; k < per && k < 64; k++) row[k] = (float)i + 0.125f * (float)k;
    if (lensnet_npy_writer_append(&w, row, 1, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); return; }
  }
  CHECK(lensnet_npy_writer_finish(&w, 0, &err) == LENSNET_OK, "%s", err.message);
}

/* The whole run in `full` and its three shards as D/pred/s<i><ext> with manifests. */
static void predict_run(const char *ext, const char *full, int ndim, const size_t *row_shape, int known_rows) {
  char path[256];
  size_t i;
  if (!strcmp(ext, ".csv")) predict_csv(full, 0, NOBJ);
  else predict_npy(full, 0, NOBJ, ndim, row_shape, known_rows);
  for (i = 0; i < 3; i++) {
    snprintf(path, sizeof path, D "/pred/s%lu%s", (unsigned long)i, ext);
    if (!strcmp(ext, ".csv")) predict_csv(path, edge(i, 3, NOBJ), edge(i + 1, 3, NOBJ));
    else predict_npy(path, edge(i, 3, NOBJ), edge(i + 1, 3, NOBJ), ndim, row_shape, known_rows);
    write_manifest(path, RUN, i, 3, NOBJ);
  }
}

static void test_predict_csv(void) {
  char out[4096];
  int rc;
  CHECK(cli_shell("rm -rf " D "/pred && mkdir -p " D "/pred") == 0, "folder");
  predict_run(".csv", D "/pred/full.csv", 0, NULL, 0);
  write_file(D "/pred/out.csv", "old\n");
  /* s1 with a row too many for its manifest: refused, the earlier out.csv kept */
  predict_csv(D "/pred/s1.csv", edge(1, 3, NOBJ), edge(2, 3, NOBJ) + 1);
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/pred/out.csv " D "/pred/s0.csv " D "/pred/s1.csv " D "/pred/s2.csv");
  CHECK(rc == 1 && strstr(out, D "/pred/s1.csv: 3 rows, but " D "/pred/s1.csv.shard.json says objects [2, 4): 2 rows"),
        "a CSV shard whose rows disagree with its manifest: exit %d: %s", rc, out);
  CHECK(file_size(D "/pred/out.csv") == 4 && !exists(D "/pred/out.csv.tmp"), "the earlier out.csv untouched, no temporary left");
  predict_csv(D "/pred/s1.csv", edge(1, 3, NOBJ), edge(2, 3, NOBJ));
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/pred/out.csv " D "/pred/s2.csv " D "/pred/s0.csv " D "/pred/s1.csv");
  CHECK(rc == 0 && cli_same_file(D "/pred/out.csv", D "/pred/full.csv"), "CSV shards merged into the single run's file: %s", out);
  CHECK(strstr(out, "merge: 3 shards, 7 objects -> " D "/pred/out.csv") && !exists(D "/pred/out.csv.shard.json"), "the closing line, no manifest");
  /* a shard with another header */
  write_file(D "/pred/s1.csv", "input,p_lens,logit_0,logit_1\nx.npy[2],0,0,0\nx.npy[3],0,0,0\n");
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/pred/out2.csv " D "/pred/s0.csv " D "/pred/s1.csv " D "/pred/s2.csv");
  CHECK(rc == 1 && strstr(out, "different CSV headers") && strstr(out, "column 3 is 'logit_non-lens' vs 'logit_0'"), "another header: %s", out);
  /* a last row cut short */
  write_file(D "/pred/s1.csv", "input,p_lens,logit_non-lens,logit_lens\nx.npy[2],0,0,0\nx.npy[3],0,0");
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/pred/out2.csv " D "/pred/s0.csv " D "/pred/s1.csv " D "/pred/s2.csv");
  CHECK(rc == 1 && strstr(out, D "/pred/s1.csv: the last line has no end"), "a row cut short: %s", out);
  CHECK(!exists(D "/pred/out2.csv") && !exists(D "/pred/out2.csv.tmp"), "nothing written for refused merges");
  /* the wrong extension, and a manifest missing */
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/pred/out.npy " D "/pred/s0.csv " D "/pred/s2.csv");
  CHECK(rc == 2 && strstr(out, "the shards are .csv files"), "--out .npy for CSV shards: exit %d: %s", rc, out);
  remove(D "/pred/s2.csv.shard.json");
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/pred/out2.csv " D "/pred/s0.csv " D "/pred/s1.csv " D "/pred/s2.csv");
  CHECK(rc == 1 && strstr(out, D "/pred/s2.csv has no shard manifest (" D "/pred/s2.csv.shard.json)"), "a file without manifest: %s", out);
}

static void test_predict_npy(void) {
  static const size_t logits[] = {2};
  /* a row of zero floats whose shape text puts the open row count's header past 128 bytes */
  static const size_t wide[] = {0, 100000, 100000, 100000, 100000, 100000, 100000};
  char out[4096];
  int rc;
  CHECK(cli_shell("rm -rf " D "/pred && mkdir -p " D "/pred") == 0, "folder");
  predict_run(".npy", D "/pred/full.npy", 2, logits, 0);
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/pred/out.npy " D "/pred/s1.npy " D "/pred/s2.npy " D "/pred/s0.npy");
  CHECK(rc == 0 && cli_same_file(D "/pred/out.npy", D "/pred/full.npy"), ".npy [7, 2] shards merged into the single run's file: %s", out);
  /* the header's room: 192 bytes as lens predict reserves it, 128 for a known row count */
  predict_run(".npy", D "/pred/full.npy", 8, wide, 0);
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/pred/out.npy " D "/pred/s1.npy " D "/pred/s2.npy " D "/pred/s0.npy");
  CHECK(rc == 0 && cli_same_file(D "/pred/out.npy", D "/pred/full.npy") && file_size(D "/pred/out.npy") == 192,
        "an open row count's header room kept (%ld bytes): %s", file_size(D "/pred/out.npy"), out);
  predict_run(".npy", D "/pred/full.npy", 8, wide, 1);
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/pred/out.npy " D "/pred/s1.npy " D "/pred/s2.npy " D "/pred/s0.npy");
  CHECK(rc == 0 && cli_same_file(D "/pred/out.npy", D "/pred/full.npy") && file_size(D "/pred/out.npy") == 128,
        "a known row count's header (%ld bytes): %s", file_size(D "/pred/out.npy"), out);
  /* refusals: rows against the manifest, another row shape, a file cut short */
  predict_run(".npy", D "/pred/full.npy", 2, logits, 0);
  predict_npy(D "/pred/s1.npy", 2, 5, 2, logits, 0);
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/pred/out2.npy " D "/pred/s0.npy " D "/pred/s1.npy " D "/pred/s2.npy");
  CHECK(rc == 1 && strstr(out, D "/pred/s1.npy: 3 rows (<f4 [3, 2]), but " D "/pred/s1.npy.shard.json says objects [2, 4): 2 rows"),
        "a .npy shard whose rows disagree with its manifest: %s", out);
  predict_npy(D "/pred/s1.npy", 2, 4, 2, wide, 0);
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/pred/out2.npy " D "/pred/s0.npy " D "/pred/s1.npy " D "/pred/s2.npy");
  CHECK(rc == 1 && strstr(out, "hold different arrays: <f4 [2, 2] vs <f4 [2, 0]"), "another row shape: %s", out);
  predict_npy(D "/pred/s1.npy", 2, 4, 2, logits, 0);
  CHECK(truncate(D "/pred/s1.npy", file_size(D "/pred/s1.npy") - 4) == 0, "truncate");
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/pred/out2.npy " D "/pred/s0.npy " D "/pred/s1.npy " D "/pred/s2.npy");
  CHECK(rc == 1 && strstr(out, D "/pred/s1.npy") && strstr(out, "cut short"), "a .npy cut short: %s", out);
  CHECK(!exists(D "/pred/out2.npy") && !exists(D "/pred/out2.npy.tmp"), "nothing written for refused merges");
  /* folders and files mixed */
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/pred/out2.npy " D "/pred/s0.npy " D "/p1");
  CHECK(rc == 1 && strstr(out, "is a file but " D "/p1 is a folder"), "a folder among files: %s", out);
}

/* lens sim --fits --png: the per-object files (named by the object's number in the run) come
 * along, the same bytes as the run without --shard; a shard without them is refused. */
static void test_sim_object_files(void) {
  char out[4096];
  int i, ok = 1, rc, same = 1;
  const char *SIM4 = "sim --preset euclid-lensfinding --n 4 --threads 1 --seed 3 --fits --png";
  ok = cli_lens("%s --out " D "/fp_full 2>/dev/null", SIM4) == 0;
  for (i = 0; i < 2; i++) ok = ok && cli_lens("%s --shard %d/2 --out " D "/fp%d 2>/dev/null", SIM4, i, i) == 0;
  CHECK(ok, "lens sim --fits --png: the whole run and two shards");
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/fp_merged " D "/fp1 " D "/fp0");
  CHECK(rc == 0, "merge exits 0: %s", out);
  for (i = 0; i < 4; i++) {
    char a[256], b[256];
    snprintf(a, sizeof a, D "/fp_merged/fits/%07d.fits", i);
    snprintf(b, sizeof b, D "/fp_full/fits/%07d.fits", i);
    same = same && cli_same_file(a, b);
    snprintf(a, sizeof a, D "/fp_merged/png/%07d.png", i);
    snprintf(b, sizeof b, D "/fp_full/png/%07d.png", i);
    same = same && cli_same_file(a, b);
  }
  CHECK(same, "fits/ and png/ hold the run's files, byte for byte");
  CHECK(cli_shell("ls " D "/fp_merged/fits " D "/fp_merged/png | grep -c tmp > /dev/null") != 0, "no temporary file left");
  cli_shell("rm -rf " D "/fp1/png");
  rc = cli_lens_output(out, sizeof out, "merge --out " D "/fp_merged2 " D "/fp0 " D "/fp1");
  CHECK(rc == 1 && strstr(out, D "/fp1 has no png/"), "a shard without png/ is refused: %s", out);
  CHECK(!exists(D "/fp_merged2/images.npy"), "nothing written for the refused merge");
}

int main(void) {
  if (cli_have_lens()) {
    make_sim_shards();
    TEST("lens merge: sim shards in any order give the bytes of the run without --shard") test_sim_identical();
    TEST("lens merge refuses a missing shard, a repeated one, another run's, one without manifest") test_sim_refusals();
    TEST("lens merge: a failing merge leaves an earlier output untouched") test_sim_untouched();
    TEST("lens merge: sim --fits --png shards bring their per-object files") test_sim_object_files();
    TEST("lens merge: predict-style CSV shards; their refusals") test_predict_csv();
    TEST("lens merge: predict-style .npy shards, the header's room; their refusals") test_predict_npy();
    if (check__failed == 0) cli_shell("rm -rf " D);
  }
  return check_summary();
}
