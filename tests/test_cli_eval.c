/* `lens eval` end to end: the figures of hand-made score and label files (worked out by hand in
 * the comments), the joins (by index, by lens predict's input[i], by input names, by row order) and their
 * refusals, the errors that name the problem, the outputs (metrics.json parses, metrics.csv and
 * curve.csv read back, the PNGs decode), K classes, several score files as one table (shards),
 * the lenses' position errors from a locator's center_x, center_y, and a `lens sim` +
 * `lens predict` run. The
 * figures themselves are tested in tests/test_eval.c. */
#define _POSIX_C_SOURCE 200809L
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "cli_check.h"
#include "decode_image.h"

#define D "build/cli_eval"
#define NEAR(a, b) (fabs((double)(a) - (double)(b)) <= 1e-5)

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

/* metrics.csv of a run: cell (row, column name) as a number; NaN when missing or empty. */
static double metric(const char *dir, size_t row, const char *column) {
  char path[512];
  lensnet_csv t;
  size_t col;
  double v = NAN;
  snprintf(path, sizeof path, "%s/metrics.csv", dir);
  if (lensnet_csv_read(path, &t, NULL) != LENSNET_OK) return NAN;
  if (lensnet_csv_column(t.header, column, &col, NULL) == LENSNET_OK && row < t.rows && lensnet_csv_cell(&t, row, col)[0])
    lensnet_csv_number(&t, row, col, &v, NULL);
  lensnet_csv_free(&t);
  return v;
}

static const char *metric_text(const char *dir, size_t row, const char *column, char *buf, size_t cap) {
  char path[512];
  lensnet_csv t;
  size_t col;
  buf[0] = 0;
  snprintf(path, sizeof path, "%s/metrics.csv", dir);
  if (lensnet_csv_read(path, &t, NULL) != LENSNET_OK) return buf;
  if (lensnet_csv_column(t.header, column, &col, NULL) == LENSNET_OK && row < t.rows) snprintf(buf, cap, "%s", lensnet_csv_cell(&t, row, col));
  lensnet_csv_free(&t);
  return buf;
}

/* The six objects of tests/test_eval.c: lenses 0.9 0.8 0.4, non-lenses 0.7 0.4 0.2, as scores
 * and labels files with their rows in different orders, the labels' last line without a newline. */
static void write_six(void) {
  write_file(D "/six_scores.csv", "index,p_lens\n5,0.2\n0,0.9\n3,0.7\n1,0.8\n4,0.4\n2,0.4\n");
  write_file(D "/six_labels.csv", "index,label,kind,theta_E\n0,1,compound_arc,1.5\n1,1,galaxy_galaxy,0.6\n2,1,compound_arc,0.8\n"
                                  "3,0,elliptical,0\n4,0,ring_galaxy,0\n5,0,elliptical,0");
}

static void test_figures(void) {
  char out[8192], buf[64];
  int rc = cli_lens_output(out, sizeof out, "eval --scores " D "/six_scores.csv --labels " D "/six_labels.csv --by kind --prior 1:10 "
                                            "--bootstrap 200 --out " D "/six");
  CHECK(rc == 0, "lens eval runs: %s", out);
  /* pairs won 7.5 of 9 */
  CHECK(NEAR(metric(D "/six", 1, "auc"), 7.5 / 9.0), "AUC 7.5/9 in metrics.csv: %g", metric(D "/six", 1, "auc"));
  CHECK(strstr(out, "AUC 0.8333") && strstr(out, "200 resamples"), "the summary states the AUC and the resamples: %s", out);
  CHECK(metric(D "/six", 1, "auc_lo") <= 7.5 / 9.0 && metric(D "/six", 1, "auc_hi") >= 7.5 / 9.0, "the interval holds the AUC");
  /* AP = 1/3 + 1/3 + 1/3 * 3/5 = 13/15; at 0.5: TP 2, FP 1, FN 1 */
  CHECK(NEAR(metric(D "/six", 1, "ap"), 13.0 / 15.0), "AP 13/15");
  CHECK(metric(D "/six", 1, "tp") == 2 && metric(D "/six", 1, "fp") == 1 && metric(D "/six", 1, "fn") == 1 && metric(D "/six", 1, "tn") == 2,
        "confusion at 0.5");
  CHECK(NEAR(metric(D "/six", 1, "precision"), 2.0 / 3) && NEAR(metric(D "/six", 1, "f1"), 2.0 / 3), "precision and F1 2/3");
  /* 1:10 with 3 lenses and 3 non-lenses: each non-lens weighs 10 -> precision 2/(2 + 10) */
  CHECK(NEAR(metric(D "/six", 1, "precision_1to10"), 2.0 / 12.0), "precision at 1:10: 1/6, got %g", metric(D "/six", 1, "precision_1to10"));
  /* groups, lens kinds first: compound_arc {0.9, 0.4} vs all non-lenses {0.7, 0.4, 0.2}: 3 + 1.5 of 6 */
  CHECK(!strcmp(metric_text(D "/six", 2, "group", buf, sizeof buf), "kind=compound_arc"), "row 2: kind=compound_arc, got %s", buf);
  CHECK(!strcmp(metric_text(D "/six", 2, "members", buf, sizeof buf), "lenses") && metric(D "/six", 2, "n_neg") == 3 &&
        NEAR(metric(D "/six", 2, "auc"), 4.5 / 6.0) && NEAR(metric(D "/six", 2, "recall"), 0.5), "compound_arc: against all 3 non-lenses, AUC 0.75, recall 1/2");
  /* elliptical {0.7, 0.2} against all lenses {0.9, 0.8, 0.4}: 2 + 3 = 5 of 6; FPR at 0.5: 1/2 */
  CHECK(!strcmp(metric_text(D "/six", 4, "group", buf, sizeof buf), "kind=elliptical") && NEAR(metric(D "/six", 4, "auc"), 5.0 / 6.0) &&
        NEAR(metric(D "/six", 4, "fpr"), 0.5) && metric(D "/six", 4, "n_pos") == 3, "elliptical: against all 3 lenses, AUC 5/6, FPR 1/2");
  CHECK(cli_lines(D "/six/metrics.csv") == 1 + 1 + 4, "a header, all and four kinds");
  /* curve.csv: a header, the +inf point, five distinct scores */
  CHECK(cli_lines(D "/six/curve.csv") == 7, "curve.csv: 7 lines, got %d", cli_lines(D "/six/curve.csv"));
}

static void test_outputs(void) {
  char text[1 << 16];
  lensnet_json *j = NULL;
  const lensnet_json *groups, *first, *by;
  int w = 0, h = 0;
  cli_text(D "/six/metrics.json", text, sizeof text);
  CHECK(lensnet_json_parse(text, strlen(text), &j, NULL) == LENSNET_OK, "metrics.json parses");
  if (!j) return;
  groups = lensnet_json_get(j, "groups");
  first = groups && groups->count ? &groups->items[0] : NULL;
  CHECK(groups && groups->count == 5, "five groups in metrics.json");
  CHECK(first && lensnet_json_get(first, "auc") && NEAR(lensnet_json_get(first, "auc")->number, 7.5 / 9.0), "the AUC in metrics.json");
  CHECK(lensnet_json_get(j, "join") && !strcmp(lensnet_json_get(j, "join")->string, "index"), "joined by index");
  by = lensnet_json_get(j, "bootstrap");
  CHECK(by && lensnet_json_get(by, "resamples") && lensnet_json_get(by, "resamples")->number == 200, "the resamples stated");
  lensnet_json_free(j);
  CHECK(png_size(D "/six/roc.png", &w, &h) && w == 640 && h == 480, "roc.png 640x480");
  CHECK(png_size(D "/six/pr.png", &w, &h) && w == 640 && h == 480, "pr.png 640x480");
  CHECK(!check_file_exists(D "/six/metrics.json.tmp") && !check_file_exists(D "/six/metrics.csv.tmp"), "no temporary files left");
  /* the same seed, the same files; threads do not matter */
  CHECK(cli_lens("eval --scores " D "/six_scores.csv --labels " D "/six_labels.csv --by kind --prior 1:10 --bootstrap 200 --threads 1 "
                 "--out " D "/six2 > /dev/null 2>&1") == 0 &&
        cli_same_file(D "/six/metrics.json", D "/six2/metrics.json") && cli_same_file(D "/six/metrics.csv", D "/six2/metrics.csv"),
        "a second run on one thread writes the same metrics");
}

static void test_joins(void) {
  char out[4096];
  /* lens predict's input column "FILE.npy[i]" gives the index */
  write_file(D "/input_scores.csv", "input,p_lens\nx.npy[5],0.2\nx.npy[0],0.9\nx.npy[3],0.7\nx.npy[1],0.8\nx.npy[4],0.4\nx.npy[2],0.4\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/input_scores.csv --labels " D "/six_labels.csv --bootstrap 0 --out " D "/in") == 0 &&
        NEAR(metric(D "/in", 1, "auc"), 7.5 / 9.0) && strstr(out, "input column"), "joined through input[i]: %s", out);
  /* labels without an index: rows in order, with a note that the scores' [i] say otherwise */
  write_file(D "/noindex_labels.csv", "label\n1\n1\n1\n0\n0\n0\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/input_scores.csv --labels " D "/noindex_labels.csv --bootstrap 0 --out " D "/in") == 0 &&
            strstr(out, "out of row order (line 2 is not object 0)") && strstr(out, "rows were matched in order"),
        "scores numbered out of row order, labels without an index: a note: %s", out);
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/six_scores.csv --labels " D "/noindex_labels.csv --bootstrap 0 --join order --out " D
                        "/in") == 0 && !strstr(out, "out of row order"),
        "--join order: no note: %s", out);
  /* lens sim's FITS names "DIR/fits/NNNNNNN.fits" give the index too, whatever order the files were scored in */
  write_file(D "/fits_scores.csv", "input,p_lens\nsim/fits/0000005.fits,0.2\nsim/fits/0000000.fits,0.9\nsim/fits/0000003.fits.gz,0.7\n"
                                   "sim/fits/0000001.fits,0.8\nsim/fits/0000004.fits,0.4\nsim/fits/0000002.fits,0.4\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/fits_scores.csv --labels " D "/six_labels.csv --bootstrap 0 --out " D "/in") == 0 &&
        NEAR(metric(D "/in", 1, "auc"), 7.5 / 9.0) && strstr(out, "fits/NNNNNNN.fits"), "joined through lens sim's FITS names: %s", out);
  /* other names (or two folders) are not indices: row order */
  write_file(D "/fits2_scores.csv", "input,p_lens\na/fits/0000005.fits,0.2\nb/fits/0000000.fits,0.9\na/fits/0000003.fits,0.7\n"
                                    "a/fits/0000001.fits,0.8\na/fits/0000004.fits,0.4\na/fits/0000002.fits,0.4\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/fits2_scores.csv --labels " D "/six_labels.csv --bootstrap 0 --out " D "/in") == 0 &&
        strstr(out, "row order"), "FITS names from two folders are not taken as one run's indices: %s", out);
  /* no index in the scores: row order, counts must agree */
  write_file(D "/rows.csv", "p_lens\n0.9\n0.8\n0.4\n0.7\n0.4\n0.2\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/rows.csv --labels " D "/six_labels.csv --bootstrap 0 --out " D "/rows") == 0 &&
        NEAR(metric(D "/rows", 1, "auc"), 7.5 / 9.0) && strstr(out, "row order"), "joined by row order: %s", out);
  write_file(D "/rows5.csv", "p_lens\n0.9\n0.8\n0.4\n0.7\n0.4\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/rows5.csv --labels " D "/six_labels.csv --out " D "/x") == 1 &&
        strstr(out, "5 rows") && strstr(out, "6"), "row counts that differ are refused: %s", out);
  /* indices that differ, named */
  write_file(D "/other.csv", "index,p_lens\n0,0.9\n1,0.8\n2,0.4\n3,0.7\n4,0.4\n9,0.2\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/other.csv --labels " D "/six_labels.csv --out " D "/x") == 1 &&
        strstr(out, "only in " D "/other.csv (9)") && strstr(out, "(5)"), "differing indices named: %s", out);
  write_file(D "/dup.csv", "index,p_lens\n0,0.9\n1,0.8\n2,0.4\n3,0.7\n3,0.4\n5,0.2\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/dup.csv --labels " D "/six_labels.csv --out " D "/x") == 1 &&
        strstr(out, "index 3 on lines 5 and 6"), "a duplicate index named with its lines: %s", out);
  /* both files name their objects in an input column (FITS cutouts and a label list of them):
   * joined by those names, whatever the order; by file name when the list lacks the folders */
  write_file(D "/named_scores.csv", "input,p_lens\ncut/f.fits,0.2\ncut/a.fits,0.9\ncut/d.fits,0.7\ncut/b.fits,0.8\ncut/e.fits,0.4\ncut/c.fits,0.4\n");
  write_file(D "/named_labels.csv", "input,label\ncut/d.fits,0\ncut/c.fits,1\ncut/b.fits,1\ncut/a.fits,1\ncut/f.fits,0\ncut/e.fits,0\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/named_scores.csv --labels " D "/named_labels.csv --bootstrap 0 --out " D "/named") == 0 &&
            NEAR(metric(D "/named", 1, "auc"), 7.5 / 9.0) && strstr(out, "rows joined by input)"),
        "joined by the input names (AUC %g; in row order it would be 1): %s", metric(D "/named", 1, "auc"), out);
  write_file(D "/base_labels.csv", "input,label\nd.fits,0\nc.fits,1\nb.fits,1\na.fits,1\nf.fits,0\ne.fits,0\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/named_scores.csv --labels " D "/base_labels.csv --bootstrap 0 --out " D "/named") == 0 &&
            NEAR(metric(D "/named", 1, "auc"), 7.5 / 9.0) && strstr(out, "rows joined by input (the file names)"),
        "joined by file names when the list has no folders: %s", out);
  write_file(D "/miss_labels.csv", "input,label\ncut/d.fits,0\ncut/c.fits,1\ncut/b.fits,1\ncut/a.fits,1\ncut/f.fits,0\ncut/g.fits,0\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/named_scores.csv --labels " D "/miss_labels.csv --out " D "/x") == 1 &&
            strstr(out, "1 only in " D "/named_scores.csv (cut/e.fits)") && strstr(out, "1 only in " D "/miss_labels.csv (cut/g.fits)") &&
            strstr(out, "--join order"),
        "names that differ are refused, named, not joined in order: %s", out);
  /* a list without folders that differs by one name: the refusal counts by file name (1 and 1),
   * not by whole name (6 and 6, every row) */
  write_file(D "/basemiss_labels.csv", "input,label\nd.fits,0\nc.fits,1\nb.fits,1\na.fits,1\nf.fits,0\ng.fits,0\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/named_scores.csv --labels " D "/basemiss_labels.csv --out " D "/x") == 1 &&
            strstr(out, "compared by file name") && strstr(out, "1 only in " D "/named_scores.csv (e.fits)") &&
            strstr(out, "1 only in " D "/basemiss_labels.csv (g.fits)"),
        "names that differ by file name are counted by file name: %s", out);
  write_file(D "/twice_labels.csv", "input,label\ncut/d.fits,0\ncut/c.fits,1\ncut/b.fits,1\ncut/a.fits,1\ncut/f.fits,0\ncut/d.fits,0\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/named_scores.csv --labels " D "/twice_labels.csv --out " D "/x") == 1 &&
            strstr(out, "'cut/d.fits' is on lines 2 and 7"),
        "a name given twice is refused with its lines: %s", out);
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/named_scores.csv --labels " D "/named_labels.csv --join order --bootstrap 0 --out " D "/named") == 0 &&
            NEAR(metric(D "/named", 1, "auc"), 1.0) && strstr(out, "rows joined by row order"), /* labels 0,1,1,1,0,0 on 0.2 0.9 0.7 0.8 0.4 0.4 */
        "--join order matches row by row, as asked (AUC %g): %s", metric(D "/named", 1, "auc"), out);
  /* without --out: the summary alone, nothing written */
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/six_scores.csv --labels " D "/six_labels.csv --bootstrap 0") == 0 &&
            strstr(out, "AUC 0.8333") && strstr(out, "no --out: nothing written"),
        "without --out: the figures, printed: %s", out);
  /* labels from the scores file itself */
  write_file(D "/one.csv", "p_lens,label\n0.9,1\n0.8,1\n0.4,1\n0.7,0\n0.4,0\n0.2,0");
  CHECK(cli_lens("eval --scores " D "/one.csv --bootstrap 0 --out " D "/one > /dev/null 2>&1") == 0 && NEAR(metric(D "/one", 1, "auc"), 7.5 / 9.0),
        "labels from the scores file");
}

static void test_errors(void) {
  char out[4096];
  write_file(D "/nan.csv", "index,p_lens\n0,0.9\n1,0.8\n2,nan\n3,0.7\n4,0.4\n5,0.2\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/nan.csv --labels " D "/six_labels.csv --out " D "/x") == 1 &&
        strstr(out, "line 4") && strstr(out, "'nan'"), "a NaN score is refused with its line: %s", out);
  write_file(D "/inf.csv", "index,p_lens\n0,0.9\n1,0.8\n2,0.4\n3,-inf\n4,0.4\n5,0.2\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/inf.csv --labels " D "/six_labels.csv --out " D "/x") == 1 &&
        strstr(out, "line 5") && strstr(out, "finite"), "an infinite score is refused: %s", out);
  write_file(D "/nocol.csv", "index,score\n0,1\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/nocol.csv --labels " D "/six_labels.csv --out " D "/x") == 1 &&
        strstr(out, "p_lens") && strstr(out, "columns found: index, score"), "a missing column, with the columns found: %s", out);
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/six_scores.csv --labels " D "/six_labels.csv --by arc_snr --out " D "/x") == 1 &&
        strstr(out, "arc_snr") && strstr(out, "index, label, kind, theta_E"), "a missing --by column: %s", out);
  write_file(D "/twice.csv", "index,p_lens,p_lens\n0,0.9,0.1\n1,0.8,0.2\n2,0.4,0.3\n3,0.3,0.4\n4,0.4,0.5\n5,0.2,0.6\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/twice.csv --labels " D "/six_labels.csv --out " D "/x") == 1 &&
        strstr(out, "appears 2 times"), "a score column named twice is refused: %s", out);
  write_file(D "/empty.csv", "");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/empty.csv --labels " D "/six_labels.csv --out " D "/x") == 1 &&
        strstr(out, "empty"), "an empty file: %s", out);
  write_file(D "/header.csv", "index,p_lens\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/header.csv --labels " D "/six_labels.csv --out " D "/x") == 1 &&
        strstr(out, "no data rows"), "a header alone: %s", out);
  write_file(D "/ragged.csv", "index,p_lens\n0,0.9\n1\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/ragged.csv --labels " D "/six_labels.csv --out " D "/x") == 1 &&
        strstr(out, "line 3: 1 cell but the header has 2"), "a short row: %s", out);
  write_file(D "/three.csv", "index,label\n0,1\n1,2\n2,0\n3,0\n4,0\n5,0\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/six_scores.csv --labels " D "/three.csv --out " D "/x") == 1 &&
        strstr(out, "label '2'") && strstr(out, "0 (non-lens) and 1 (lens)"), "label 2 in a two-class evaluation: %s", out);
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/missing.csv --out " D "/x") == 1 && strstr(out, "missing.csv"),
        "a missing file: %s", out);
  /* usage errors: exit 2 */
  CHECK(cli_lens("eval --scores " D "/six_scores.csv --out " D "/x > /dev/null 2>&1") == 1, "no label column and no --labels: a failure");
  CHECK(cli_lens("eval --scores " D "/six_scores.csv --labels " D "/six_labels.csv --out " D "/x.csv > /dev/null 2>&1") == 2, "--out x.csv");
  CHECK(cli_lens("eval --scores " D "/six_scores.csv --labels " D "/six_labels.csv --out " D "/x --prior 1-100 > /dev/null 2>&1") == 2, "--prior 1-100");
  CHECK(cli_lens("eval --scores " D "/six_scores.csv --labels " D "/six_labels.csv --out " D "/x --by theta_E:1 > /dev/null 2>&1") == 2,
        "--by with one edge");
  CHECK(cli_lens("eval --scores " D "/six_scores.csv --labels " D "/six_labels.csv --out " D "/x --by kind --by kind > /dev/null 2>&1") == 2,
        "--by naming a column twice");
  CHECK(cli_lens("eval --scores " D "/six_scores.csv --labels " D "/six_labels.csv --out " D "/x --at-recall 1.5 > /dev/null 2>&1") == 2,
        "--at-recall 1.5");
  CHECK(cli_lens("eval --labels " D "/six_labels.csv --out " D "/x > /dev/null 2>&1") == 2, "no --scores");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/six_scores.csv --labels " D "/six_labels.csv --prior 1:100,1:100 --out " D
                        "/x") == 2 && strstr(out, "names 1:100 twice"), "a prior named twice: %s", out);
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/six_scores.csv --labels " D "/six_labels.csv --prior '1:100, 1:1000' "
                        "--bootstrap 0") == 0 && strstr(out, "at prior 1:1000:") && !strstr(out, "prior  1:1000"),
        "spaces in a list of priors dropped: %s", out);
  /* a threshold at a score's own value (0.7 is not a float; the scores are): that score is a lens */
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/six_scores.csv --labels " D "/six_labels.csv --threshold 0.7 --bootstrap 0") == 0 &&
            strstr(out, "TP 2, FP 1, TN 2, FN 1"),
        "--threshold 0.7 calls the object scoring 0.7 a lens: %s", out);
  CHECK(cli_lens_output(out, sizeof out, "eval --help") == 0 && strstr(out, "--prior") && strstr(out, "--by") && strstr(out, "--bootstrap") &&
            strstr(out, "--task classify|regress"),
        "--help lists the options, --task among them");
  CHECK(cli_lens_output(out, sizeof out, "eval --task regression --scores " D "/six_scores.csv --out " D "/x") == 2 &&
            strstr(out, "unknown task 'regression'"), "a wrong --task value is named as such: %s", out);
  /* an --out folder where an output would replace an input: refused, the inputs intact */
  cli_shell("mkdir -p " D "/ow && cp " D "/six_scores.csv " D "/ow/metrics.csv && cp " D "/six_labels.csv " D "/ow/curve.csv");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/ow/metrics.csv --labels " D "/ow/curve.csv --out ./" D "/ow/") == 2 &&
            strstr(out, "would overwrite the input"), "outputs over the inputs refused: %s", out);
  CHECK(cli_shell("cmp -s " D "/six_scores.csv " D "/ow/metrics.csv && cmp -s " D "/six_labels.csv " D "/ow/curve.csv") == 0, "the inputs intact");
}

/* One class only: the AUC is undefined, said so, not a number. */
static void test_one_class(void) {
  char out[4096], text[1 << 14];
  write_file(D "/lenses.csv", "index,label\n0,1\n1,1\n2,1\n3,1\n4,1\n5,1\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/six_scores.csv --labels " D "/lenses.csv --out " D "/onec") == 0 &&
        strstr(out, "AUC undefined: no non-lenses"), "the summary says why: %s", out);
  CHECK(metric(D "/onec", 1, "auc") != metric(D "/onec", 1, "auc") && NEAR(metric(D "/onec", 1, "recall"), 3.0 / 6.0), "an empty AUC cell, recall 1/2");
  cli_text(D "/onec/metrics.json", text, sizeof text);
  CHECK(strstr(text, "\"auc\": null") && strstr(text, "\"auc_undefined\": \"no non-lenses\""), "null in metrics.json, with the reason");
  CHECK(!check_file_exists(D "/onec/roc.png") && strstr(out, "roc.png not drawn"), "no ROC picture without non-lenses");
}

/* bins with fixed edges over the lenses (theta_E is 0 for every non-lens) */
static void test_bins(void) {
  char buf[64];
  CHECK(cli_lens("eval --scores " D "/six_scores.csv --labels " D "/six_labels.csv --by theta_E:0,1,2 --bootstrap 0 --out " D "/bins > /dev/null 2>&1") == 0,
        "--by theta_E:0,1,2");
  /* [0, 1): lenses 0.8 (theta 0.6), 0.4 (0.8) vs all non-lenses: 3 + 1.5 of 6; [1, 2]: 0.9 vs all: 3 of 3 */
  CHECK(!strcmp(metric_text(D "/bins", 2, "group", buf, sizeof buf), "theta_E[0:1)") && metric(D "/bins", 2, "n_pos") == 2 &&
        metric(D "/bins", 2, "n_neg") == 3 && NEAR(metric(D "/bins", 2, "auc"), 4.5 / 6.0), "theta_E[0:1): 2 lenses vs 3 non-lenses, AUC 0.75");
  CHECK(!strcmp(metric_text(D "/bins", 3, "group", buf, sizeof buf), "theta_E[1:2]") && NEAR(metric(D "/bins", 3, "auc"), 1.0) &&
        NEAR(metric(D "/bins", 3, "lo"), 1) && NEAR(metric(D "/bins", 3, "hi"), 2), "theta_E[1:2]: AUC 1, edges in lo, hi");
}

/* K classes from logit columns: softmax, one-vs-rest AUC, macro AUC, confusion. */
static void test_classes(void) {
  char out[8192], buf[64];
  /* logits chosen so that softmax keeps each column's order: class c's logit alone varies */
  write_file(D "/k_scores.csv", "index,p_lens,logit_a,logit_b,logit_c\n"
                                "0,0,2,0,0\n1,0,1,0,0\n2,0,0,2,0\n3,0,0,0.5,0\n4,0,0,0,2\n5,0,0,0,3\n");
  write_file(D "/k_labels.csv", "index,label\n0,0\n1,1\n2,1\n3,0\n4,2\n5,2\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/k_scores.csv --labels " D "/k_labels.csv --bootstrap 50 --out " D "/k") == 0,
        "three classes: %s", out);
  CHECK(!strstr(out, "no objects"), "labels of every class: no note");
  {
    char note[8192];
    write_file(D "/k_labels2.csv", "index,label\n0,0\n1,1\n2,1\n3,0\n4,1\n5,1\n");
    CHECK(cli_lens_output(note, sizeof note, "eval --scores " D "/k_scores.csv --labels " D "/k_labels2.csv --bootstrap 0") == 0 &&
              strstr(note, "the labels go up to class 1 of the scores' 3 (a ... c): class 2 (c) has no objects"),
          "two-class labels for three-class scores: a note: %s", note);
  }
  /* argmax: a, a, b, b, c, c -> accuracy 4/6. P(a) ranks 0 (2) > 1 (1) > rest: class a = {0, 3}:
   * 0 beats all 4; 3 (P(a) = 1/(2 + e^0.5)) beats only 2, 4, 5 (1/(2 + e^2), 1/(2 + e^2), 1/(2 + e^3)): 3 of 4 -> 7/8 */
  CHECK(!strcmp(metric_text(D "/k", 1, "class", buf, sizeof buf), "macro") && NEAR(metric(D "/k", 1, "accuracy"), 4.0 / 6.0),
        "macro row, accuracy 4/6");
  CHECK(!strcmp(metric_text(D "/k", 2, "class", buf, sizeof buf), "a") && NEAR(metric(D "/k", 2, "auc"), 7.0 / 8.0), "class a: AUC 7/8, got %g",
        metric(D "/k", 2, "auc"));
  CHECK(strstr(out, "macro AUC") && strstr(out, "confusion"), "the summary has the macro AUC and the confusion matrix");
  CHECK(cli_lens("eval --scores " D "/k_scores.csv --labels " D "/k_labels.csv --prior 1:10 --out " D "/k > /dev/null 2>&1") == 2,
        "--prior with K classes is a usage error");
  CHECK(cli_lens("eval --scores " D "/k_scores.csv --labels " D "/k_labels.csv --threshold 0.9 --out " D "/k > /dev/null 2>&1") == 2,
        "--threshold with K classes is a usage error (it was ignored)");
  { /* labels whose kind column names the classes (lens sim's deeplense-substructure): kinds that agree are scored;
     * scores whose columns number the classes otherwise are refused, with nothing written */
    char msg[8192];
    write_file(D "/k_kinds.csv", "index,label,kind\n0,0,a\n1,1,b\n2,1,b\n3,0,a\n4,2,c\n5,2,c\n");
    CHECK(cli_lens_output(msg, sizeof msg, "eval --scores " D "/k_scores.csv --labels " D "/k_kinds.csv --bootstrap 0 --out " D "/kk") == 0 &&
              NEAR(metric(D "/kk", 2, "auc"), 7.0 / 8.0), "kinds that name the scores' classes in their order: scored as without them: %s", msg);
    write_file(D "/k_swapped.csv", "index,p_lens,logit_b,logit_a,logit_c\n"
                                   "0,0,2,0,0\n1,0,1,0,0\n2,0,0,2,0\n3,0,0,0.5,0\n4,0,0,0,2\n5,0,0,0,3\n");
    CHECK(cli_lens_output(msg, sizeof msg, "eval --scores " D "/k_swapped.csv --labels " D "/k_kinds.csv --bootstrap 0 --out " D "/ks") == 1 &&
              strstr(msg, "label 0 is kind 'a', but the scores' class 0 is 'b'") && access(D "/ks", F_OK) != 0,
          "scores with the classes in another order than the labels' kinds: refused: %s", msg);
    write_file(D "/k_otherkinds.csv", "index,label,kind\n0,0,x\n1,1,b\n2,1,b\n3,0,a\n4,2,c\n5,2,c\n");
    CHECK(cli_lens_output(msg, sizeof msg, "eval --scores " D "/k_swapped.csv --labels " D "/k_otherkinds.csv --bootstrap 0") == 0,
          "a kind that is no class name: kinds are something else, not checked: %s", msg);
  }
  { /* a two-class model's scores with labels of three classes: the message says what the scores are */
    char msg[8192];
    write_file(D "/k_two.csv", "index,p_lens,logit_non-lens,logit_lens\n0,0.1,1,0\n1,0.9,0,1\n2,0.5,0,0\n");
    write_file(D "/k_three.csv", "index,label\n0,0\n1,1\n2,2\n");
    CHECK(cli_lens_output(msg, sizeof msg, "eval --scores " D "/k_two.csv --labels " D "/k_three.csv --bootstrap 0") == 1 &&
              strstr(msg, "the scores are a two-class model's (non-lens, lens), so labels are 0 and 1"),
          "two-class scores, a label 2: %s", msg);
  }
}

/* Several --scores files read as one table: the six objects split as lens predict --shard I/3
 * splits them (object i in shard i mod 3), in order, shuffled, with an empty shard; refusals of a
 * header that differs and of an index in two shards. */
static void test_shards(void) {
  char out[8192], text[1 << 16], buf[64];
  lensnet_json *j = NULL;
  const lensnet_json *files;
  const char *by = "--labels " D "/six_labels.csv --by kind --prior 1:10 --bootstrap 200 --out";
  write_file(D "/sh_all.csv", "input,p_lens\nx.npy[5],0.2\nx.npy[0],0.9\nx.npy[3],0.7\nx.npy[1],0.8\nx.npy[4],0.4\nx.npy[2],0.4\n");
  write_file(D "/sh_0.csv", "input,p_lens\nx.npy[0],0.9\nx.npy[3],0.7\n");
  write_file(D "/sh_1.csv", "input,p_lens\nx.npy[1],0.8\nx.npy[4],0.4\n");
  write_file(D "/sh_2.csv", "input,p_lens\nx.npy[2],0.4\nx.npy[5],0.2");
  write_file(D "/sh_empty.csv", "input,p_lens\n");
  CHECK(cli_lens("eval --scores " D "/sh_all.csv %s " D "/sh1 > /dev/null 2>&1", by) == 0, "one file");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/sh_0.csv --scores " D "/sh_1.csv --scores " D "/sh_2.csv %s " D "/sh3", by) == 0,
        "three shards: %s", out);
  CHECK(cli_same_file(D "/sh1/metrics.csv", D "/sh3/metrics.csv") && cli_same_file(D "/sh1/curve.csv", D "/sh3/curve.csv"),
        "three shards write the metrics.csv and curve.csv of the one file");
  /* the figures of test_figures: AUC 7.5/9, AP 13/15, 3 lenses and 3 non-lenses, precision 1/6 at 1:10 */
  CHECK(NEAR(metric(D "/sh3", 1, "auc"), 7.5 / 9.0) && NEAR(metric(D "/sh3", 1, "ap"), 13.0 / 15.0) && metric(D "/sh3", 1, "n_pos") == 3 &&
        metric(D "/sh3", 1, "n_neg") == 3 && NEAR(metric(D "/sh3", 1, "precision_1to10"), 2.0 / 12.0), "the six objects' figures");
  CHECK(!strcmp(metric_text(D "/sh3", 2, "group", buf, sizeof buf), "kind=compound_arc") && NEAR(metric(D "/sh3", 2, "auc"), 4.5 / 6.0),
        "--by kind over the shards: compound_arc AUC 0.75");
  CHECK(strstr(out, "score p_lens of 3 score files (" D "/sh_0.csv, " D "/sh_1.csv, " D "/sh_2.csv)") && strstr(out, "input column"),
        "the summary names the three files: %s", out);
  /* joined by index: the order of the files does not matter, nor does an empty shard */
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/sh_2.csv --scores " D "/sh_empty.csv --scores " D "/sh_0.csv --scores " D
                        "/sh_1.csv %s " D "/sh4", by) == 0 &&
        cli_same_file(D "/sh1/metrics.csv", D "/sh4/metrics.csv") && cli_same_file(D "/sh1/curve.csv", D "/sh4/curve.csv"),
        "shuffled, with an empty shard: the same metrics.csv: %s", out);
  CHECK(strstr(out, "4 score files (" D "/sh_2.csv, ..., " D "/sh_1.csv)") && strstr(out, "6 objects, 3 lenses and 3 non-lenses"),
        "four files named by the first and the last: %s", out);
  /* metrics.json: every file in order under score_files; "scores" names one file only */
  cli_text(D "/sh4/metrics.json", text, sizeof text);
  CHECK(lensnet_json_parse(text, strlen(text), &j, NULL) == LENSNET_OK, "metrics.json parses");
  files = j ? lensnet_json_get(j, "score_files") : NULL;
  CHECK(files && files->count == 4 && !strcmp(files->items[0].string, D "/sh_2.csv") && !strcmp(files->items[1].string, D "/sh_empty.csv") &&
        !strcmp(files->items[3].string, D "/sh_1.csv"), "score_files lists the four files in order");
  CHECK(j && lensnet_json_get(j, "scores") && lensnet_json_get(j, "scores")->type == LENSNET_JSON_NULL, "scores is null for several files");
  lensnet_json_free(j);
  j = NULL;
  cli_text(D "/sh1/metrics.json", text, sizeof text);
  CHECK(lensnet_json_parse(text, strlen(text), &j, NULL) == LENSNET_OK && lensnet_json_get(j, "scores") &&
        !strcmp(lensnet_json_get(j, "scores")->string, D "/sh_all.csv") && (files = lensnet_json_get(j, "score_files")) != NULL &&
        files->count == 1 && !strcmp(files->items[0].string, D "/sh_all.csv"), "one file: scores is its path, score_files holds it");
  lensnet_json_free(j);
  /* headers that differ: refused, naming the file and the difference */
  write_file(D "/sh_renamed.csv", "input,score\nx.npy[2],0.4\nx.npy[5],0.2\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/sh_0.csv --scores " D "/sh_1.csv --scores " D "/sh_renamed.csv %s " D "/x", by) == 1 &&
        strstr(out, D "/sh_renamed.csv: the header differs from that of " D "/sh_0.csv: column 2 is 'score' where " D "/sh_0.csv has 'p_lens'"),
        "a renamed column: %s", out);
  write_file(D "/sh_wider.csv", "input,p_lens,label\nx.npy[2],0.4,1\nx.npy[5],0.2,0\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/sh_0.csv --scores " D "/sh_wider.csv --scores " D "/sh_renamed.csv %s " D "/x", by) == 1 &&
        strstr(out, D "/sh_wider.csv: the header differs") && strstr(out, "3 columns (input, p_lens, label) where " D "/sh_0.csv has 2 (input, p_lens)") &&
        !strstr(out, "sh_renamed"), "an extra column, the first such file named: %s", out);
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/sh_empty.csv --scores " D "/sh_empty.csv %s " D "/x", by) == 2 &&
        strstr(out, "--scores " D "/sh_empty.csv is given twice"), "a file given twice: a usage error: %s", out);
  write_file(D "/sh_empty2.csv", "input,p_lens\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/sh_empty.csv --scores " D "/sh_empty2.csv %s " D "/x", by) == 1 &&
        strstr(out, "2 score files (" D "/sh_empty.csv, " D "/sh_empty2.csv): no data rows"), "only empty shards: %s", out);
  /* an index in two shards: refused as in one file, with the line and the file of each */
  write_file(D "/sh_overlap.csv", "input,p_lens\nx.npy[2],0.4\nx.npy[3],0.7\nx.npy[5],0.2\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/sh_0.csv --scores " D "/sh_1.csv --scores " D "/sh_overlap.csv %s " D "/x", by) == 1 &&
        strstr(out, "1 duplicate object index: index 3 on line 3 of " D "/sh_0.csv and line 3 of " D "/sh_overlap.csv"),
        "an index in two shards: %s", out);
  write_file(D "/sh_twice.csv", "input,p_lens\nx.npy[2],0.4\nx.npy[5],0.2\nx.npy[2],0.4\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/sh_0.csv --scores " D "/sh_1.csv --scores " D "/sh_twice.csv %s " D "/x", by) == 1 &&
        strstr(out, "index 2 on lines 2 and 4 of " D "/sh_twice.csv"), "an index twice in one shard: %s", out);
  /* a missing shard: the objects differ, counted as for one file */
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/sh_0.csv --scores " D "/sh_2.csv %s " D "/x", by) == 1 &&
        strstr(out, "2 only in " D "/six_labels.csv (1, 4)"), "a missing shard: %s", out);
  /* scores files carrying their own labels: rows in the order given, as one file */
  write_file(D "/own_a.csv", "p_lens,label\n0.9,1\n0.8,1\n");
  write_file(D "/own_b.csv", "p_lens,label\n0.4,1\n0.7,0\n0.4,0\n0.2,0\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/own_a.csv --scores " D "/own_b.csv --bootstrap 0 --out " D "/own") == 0 &&
        NEAR(metric(D "/own", 1, "auc"), 7.5 / 9.0) && metric(D "/own", 1, "n_pos") == 3, "labels from the score files: %s", out);
  /* K classes over two shards: the metrics.csv of one file */
  write_file(D "/k_all.csv", "index,p_lens,logit_a,logit_b,logit_c\n0,0,2,0,0\n1,0,1,0,0\n2,0,0,2,0\n3,0,0,0.5,0\n4,0,0,0,2\n5,0,0,0,3\n");
  write_file(D "/k_0.csv", "index,p_lens,logit_a,logit_b,logit_c\n4,0,0,0,2\n1,0,1,0,0\n5,0,0,0,3\n");
  write_file(D "/k_1.csv", "index,p_lens,logit_a,logit_b,logit_c\n0,0,2,0,0\n3,0,0,0.5,0\n2,0,0,2,0\n");
  write_file(D "/k_lab.csv", "index,label\n0,0\n1,1\n2,1\n3,0\n4,2\n5,2\n");
  CHECK(cli_lens("eval --scores " D "/k_all.csv --labels " D "/k_lab.csv --bootstrap 50 --out " D "/k1 > /dev/null 2>&1") == 0 &&
        cli_lens("eval --scores " D "/k_0.csv --scores " D "/k_1.csv --labels " D "/k_lab.csv --bootstrap 50 --out " D "/k2 > /dev/null 2>&1") == 0 &&
        cli_same_file(D "/k1/metrics.csv", D "/k2/metrics.csv") && NEAR(metric(D "/k2", 2, "auc"), 7.0 / 8.0),
        "K classes over two shards: the same metrics.csv, class a AUC 7/8");
  CHECK(cli_lens_output(out, sizeof out, "eval --help") == 0 && strstr(out, "--shard I/N") && strstr(out, "[--scores S2.csv ...]"),
        "--help says --scores repeats");
}

/* Positions: a locator's center_x, center_y (lens predict --locator) against the labels'. The
 * five lenses are off by 3-4-5, 5-12-13 and 6-8-10 triangles: 0.1, 0.2, 0.5, 1.3 and 2.0 arcsec;
 * the non-lenses' far-off positions do not count. */
static void test_positions(void) {
  char out[8192], text[1 << 14];
  lensnet_json *j = NULL;
  const lensnet_json *p, *w;
  write_file(D "/pos_scores.csv", "index,p_lens,center_x,center_y\n4,0.6,1.3,0.5\n0,0.9,0.16,0.28\n5,0.3,-9,9\n1,0.8,-0.32,0.04\n"
                                  "2,0.4,0.4,0.6\n3,0.7,5,5\n6,0.95,1.2,1.1\n");
  write_file(D "/pos_labels.csv", "index,label,center_x,center_y\n0,1,0.1,0.2\n1,1,-0.2,0.2\n2,1,0.7,0.2\n3,0,0,0\n4,1,0.1,0\n5,0,0,0\n"
                                  "6,1,0,-0.5\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/pos_scores.csv --labels " D "/pos_labels.csv --bootstrap 0 --out " D "/pos") == 0,
        "lens eval with positions: %s", out);
  /* sorted 0.1 0.2 0.5 1.3 2.0: the median 0.5; the 68th percentile at 0.68 * 4 = 2.72, 0.5 + 0.72 * 0.8
   * = 1.076; the 90th at 3.6, 1.3 + 0.6 * 0.7 = 1.72; rms sqrt((0.01 + 0.04 + 0.25 + 1.69 + 4) / 5) =
   * sqrt(1.198); within 0.3": 2 of 5, within 1": 3 of 5 */
  CHECK(strstr(out, "position error of the 5 lenses") && strstr(out, "median 0.5000\"") && strstr(out, "68% 1.0760\"") &&
            strstr(out, "90% 1.7200\"") && strstr(out, "rms 1.0945\"") && strstr(out, "within 0.3\" 0.4000, within 1\" 0.6000"),
        "the summary: %s", out);
  cli_text(D "/pos/metrics.json", text, sizeof text);
  CHECK(lensnet_json_parse(text, strlen(text), &j, NULL) == LENSNET_OK, "metrics.json parses");
  if (!j) return;
  p = lensnet_json_get(j, "positions");
  w = p ? lensnet_json_get(p, "within") : NULL;
  CHECK(p && lensnet_json_get(p, "n") && lensnet_json_get(p, "n")->number == 5 && NEAR(lensnet_json_get(p, "median")->number, 0.5) &&
            NEAR(lensnet_json_get(p, "p68")->number, 1.076) && NEAR(lensnet_json_get(p, "p90")->number, 1.72) &&
            NEAR(lensnet_json_get(p, "rms")->number, sqrt(1.198)),
        "metrics.json: positions n, median, p68, p90, rms");
  CHECK(w && w->count == 2 && NEAR(lensnet_json_get(&w->items[0], "radius")->number, 0.3) &&
            NEAR(lensnet_json_get(&w->items[0], "share")->number, 0.4) && NEAR(lensnet_json_get(&w->items[1], "radius")->number, 1) &&
            NEAR(lensnet_json_get(&w->items[1], "share")->number, 0.6),
        "metrics.json: the shares within 0.3\" and 1\"");
  lensnet_json_free(j);
  /* no true positions: a note, and null */
  write_file(D "/pos_plain.csv", "index,label\n0,1\n1,1\n2,1\n3,0\n4,1\n5,0\n6,1\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/pos_scores.csv --labels " D "/pos_plain.csv --bootstrap 0 --out " D "/pos2") == 0 &&
            strstr(out, "no position errors") && !strstr(out, "position error of") && cli_file_has(D "/pos2/metrics.json", "\"positions\": null"),
        "labels without center_x, center_y: %s", out);
  write_file(D "/pos_nan.csv", "index,p_lens,center_x,center_y\n4,0.6,1.3,0.5\n0,0.9,0.16,nan\n5,0.3,-9,9\n1,0.8,-0.32,0.04\n"
                               "2,0.4,0.4,0.6\n3,0.7,5,5\n6,0.95,1.2,1.1\n");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/pos_nan.csv --labels " D "/pos_labels.csv --bootstrap 0 --out " D "/pos3") == 1 &&
            strstr(out, "line 3") && strstr(out, "center_y"), "a lens without a finite position is refused, naming its line: %s", out);
}

/* The whole pipeline on a small simulated sample: lens sim, lens predict, lens eval --by kind. */
static void test_pipeline(void) {
  char out[16384];
  CHECK(cli_lens("sim --preset euclid-compound --n 60 --seed 5 --threads 2 --out " D "/sim > /dev/null 2>&1") == 0, "lens sim");
  CHECK(cli_lens("predict --model weights/ou66-sim.safetensors " D "/sim/images.npy > " D "/sim_scores.csv 2>/dev/null") == 0, "lens predict");
  CHECK(cli_lens_output(out, sizeof out, "eval --scores " D "/sim_scores.csv --labels " D "/sim/labels.csv --by kind,theta_E,mag_lens "
                                         "--prior 1:100 --bootstrap 100 --out " D "/pipe") == 0, "lens eval: %s", out);
  CHECK(strstr(out, "kind=compound_arc") && strstr(out, "kind=double_ring") && strstr(out, "theta_E["), "groups by kind and theta_E bins");
  CHECK(metric(D "/pipe", 1, "auc") > 0.8, "the shipped finder separates the sample: AUC %g", metric(D "/pipe", 1, "auc"));
  CHECK(metric(D "/pipe", 1, "precision_1to100") < metric(D "/pipe", 1, "precision"), "precision falls at 1:100");
}

/* A lens-modelling network's predictions given without --task regress: the message says so. */
static void test_regression_hint(void) {
  char out[2048];
  int rc;
  cli_shell("printf 'input,theta_E,theta_E_sigma\\nx.npy[0],1.1,0.02\\nx.npy[1],0.9,0.03\\n' > " D "/reg_pred.csv && "
            "printf 'index,label,theta_E\\n0,1,1.0\\n1,1,0.95\\n' > " D "/reg_labels.csv");
  rc = cli_lens_output(out, sizeof out, "eval --scores " D "/reg_pred.csv --labels " D "/reg_labels.csv");
  CHECK(rc == 1 && strstr(out, "no score column p_lens") && strstr(out, "--task regress"), "points at --task regress: %s", out);
}

int main(void) {
  if (!cli_have_lens()) return check_summary();
  if (cli_shell("rm -rf " D " && mkdir -p " D) != 0) { CHECK(0, "cannot create " D); return check_summary(); }
  write_six();
  TEST("figures of six objects by hand: AUC, AP, confusion, a prior, kinds") test_figures();
  TEST("a lens-modelling network's predictions without --task regress: named") test_regression_hint();
  TEST("metrics.json parses, PNGs decode, runs repeat") test_outputs();
  TEST("joins by index, by input[i], by input names, by row order; differing sets and duplicates refused") test_joins();
  TEST("errors name the problem: NaN, missing columns, empty files, bad labels, usage") test_errors();
  TEST("one class: the AUC undefined, said so") test_one_class();
  TEST("fixed bins over the lenses") test_bins();
  TEST("K classes: softmax, one-vs-rest AUC, macro, confusion") test_classes();
  TEST("several --scores files as one table: shards in any order, empty shards; headers and overlaps refused") test_shards();
  TEST("positions: the lenses' distances from a locator's centres, by hand; no true positions, a NaN") test_positions();
  TEST("lens sim + lens predict + lens eval") test_pipeline();
  cli_shell("rm -rf " D);
  return check_summary();
}
