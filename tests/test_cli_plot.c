/* `lens plot` end to end: ROC, PR, confusion, score and history pictures from CSV files decode
 * at their sizes, the ROC prints its AUC, and a missing label column fails. */
#define _POSIX_C_SOURCE 200809L
#include "cli_check.h"
#include "decode_image.h"

/* 200 scored objects, every other one a lens, and a 12-epoch training history. */
static void write_inputs(void) {
  FILE *f = fopen("build/plot_scores.csv", "w");
  int i;
  if (f) {
    fprintf(f, "input,p_lens,logit_0,logit_1,label\n");
    for (i = 0; i < 200; i++) fprintf(f, "obj%d,%.4f,0,0,%d\n", i, (i % 2 ? 0.35 : 0.0) + 0.6 * ((i * 37) % 101) / 100.0, i % 2);
    fclose(f);
  }
  f = fopen("build/plot_history.csv", "w");
  if (f) {
    fprintf(f, "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds\n");
    for (i = 1; i <= 12; i++) fprintf(f, "%d,0.001,%.4f,%.4f,%.4f,%.4f,3.5\n", i, 0.7 / i, 1 - 0.4 / i, 0.75 / i + 0.02, 1 - 0.45 / i);
    fclose(f);
  }
}

static void test_roc(void) {
  char text[1024];
  int w = 0, h = 0;
  CHECK(cli_lens("plot roc --scores build/plot_scores.csv --scores build/plot_scores.csv --name a --name b --out build/plot_roc.png > build/plot_out.txt 2>&1") == 0,
        "plot roc");
  CHECK(png_size("build/plot_roc.png", &w, &h) && w == 640 && h == 480, "roc.png 640x480");
  cli_text("build/plot_out.txt", text, sizeof text);
  CHECK(strstr(text, "AUC") != NULL, "prints the AUC: %s", text);
}

static void test_other_plots(void) {
  int w = 0, h = 0;
  CHECK(cli_lens("plot pr --scores build/plot_scores.csv --out build/plot_pr.png --width 400 --height 300 > /dev/null 2>&1") == 0 &&
        png_size("build/plot_pr.png", &w, &h) && w == 400 && h == 300, "pr.png 400x300");
  CHECK(cli_lens("plot confusion --scores build/plot_scores.csv --threshold 0.5 --out build/plot_conf.png > /dev/null 2>&1") == 0 &&
        png_size("build/plot_conf.png", &w, &h) && w == 640 && h == 480, "confusion.png");
  CHECK(cli_lens("plot scores --scores build/plot_scores.csv --out build/plot_hist.png > /dev/null 2>&1") == 0 &&
        png_size("build/plot_hist.png", &w, &h) && w == 640, "scores.png");
  CHECK(cli_lens("plot history --history build/plot_history.csv --out build/plot_hist2.png > /dev/null 2>&1") == 0 &&
        png_size("build/plot_hist2.png", &w, &h) && w == 960 && h == 400, "history.png 960x400");  { /* --val-fraction 0: every validation figure 0; training curves only, and a note says why */
    FILE *f = fopen("build/plot_noval.csv", "w");
    char text[1024];
    int i;
    if (f) {
      fprintf(f, "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds\n");
      for (i = 1; i <= 5; i++) fprintf(f, "%d,0.001,%.4f,%.4f,0.000000,0.000000,3.5\n", i, 0.7 / i, 1 - 0.4 / i);
      fclose(f);
    }
    CHECK(cli_lens("plot history --history build/plot_noval.csv --out build/plot_noval.png > /dev/null 2> build/plot_noval.txt") == 0 &&
              png_size("build/plot_noval.png", &w, &h) && w == 960, "a history without validation is drawn");
    cli_text("build/plot_noval.txt", text, sizeof text);
    CHECK(strstr(text, "no validation figures") != NULL, "a note says there are no validation figures: %s", text);
    remove("build/plot_noval.csv"); remove("build/plot_noval.png"); remove("build/plot_noval.txt");
  }
}

/* A CSV whose last line has no newline is read whole (it once made the reader run past the end
 * of its buffer); a short row is named by its line. */
static void test_csv_edges(void) {
  char text[1024];
  FILE *f = fopen("build/plot_nonl.csv", "w");
  if (f) { fputs("input,p_lens,label\na,0.9,1\nb,0.1,0\nc,0.8,1\nd,0.85,0", f); fclose(f); }
  CHECK(cli_lens("plot roc --scores build/plot_nonl.csv --out build/plot_nonl.png > build/plot_out.txt 2>&1") == 0, "read");
  cli_text("build/plot_out.txt", text, sizeof text);
  /* lenses 0.9, 0.8 against non-lenses 0.1, 0.85: three of four pairs ordered, AUC 0.75; without
   * the last row it would be 1 */
  CHECK(strstr(text, "0.750") != NULL, "the last row counts (AUC 0.75 with it, 1 without): %s", text);
  f = fopen("build/plot_short.csv", "w");
  if (f) { fputs("input,p_lens,label\na,0.9,1\nb,0.1\n", f); fclose(f); }
  CHECK(cli_lens("plot roc --scores build/plot_short.csv --out build/plot_nonl.png > build/plot_out.txt 2>&1") == 1, "a short row fails");
  cli_text("build/plot_out.txt", text, sizeof text);
  CHECK(strstr(text, "line 3") != NULL || strstr(text, ":3") != NULL, "and its line is named: %s", text);
  /* NaN or infinite scores cannot be placed on a curve: refused, naming the row, no picture */
  remove("build/plot_nonl.png");
  f = fopen("build/plot_nan.csv", "w");
  if (f) { fputs("input,p_lens,label\na,0.9,1\nb,nan,0\nc,0.2,0\n", f); fclose(f); }
  CHECK(cli_lens("plot roc --scores build/plot_nan.csv --out build/plot_nonl.png > build/plot_out.txt 2>&1") == 1 && !check_file_exists("build/plot_nonl.png"),
        "a NaN score fails, drawing nothing");
  cli_text("build/plot_out.txt", text, sizeof text);
  CHECK(strstr(text, "line 3") && strstr(text, "not a finite number"), "and names the line: %s", text);
  f = fopen("build/plot_nan.csv", "w");
  if (f) { fputs("input,p_lens,label\na,inf,1\nb,0.1,0\n", f); fclose(f); }
  CHECK(cli_lens("plot pr --scores build/plot_nan.csv --out build/plot_nonl.png > /dev/null 2>&1") == 1, "an infinite score fails");
  remove("build/plot_nonl.csv"); remove("build/plot_short.csv"); remove("build/plot_nonl.png"); remove("build/plot_nan.csv");
}

/* --labels are matched to the scores as lens eval matches them: scores of x.npy[3], [2], [1], [0]
 * (lens predict on a reversed list) against labels indexed 0..3. Joined by index the lenses (0, 2:
 * 0.8, 0.9) lie above the non-lenses (1, 3: 0.1, 0.2), AUC 1; joined row by row it would be 0. */
static void test_labels_joined(void) {
  char text[1024];
  FILE *f = fopen("build/plot_rev.csv", "w");
  if (f) { fputs("input,p_lens\nx.npy[3],0.2\nx.npy[2],0.9\nx.npy[1],0.1\nx.npy[0],0.8\n", f); fclose(f); }
  f = fopen("build/plot_rev_labels.csv", "w");
  if (f) { fputs("index,label\n0,1\n1,0\n2,1\n3,0\n", f); fclose(f); }
  CHECK(cli_lens("plot roc --scores build/plot_rev.csv --labels build/plot_rev_labels.csv --out build/plot_rev.png > build/plot_out.txt 2>&1") == 0,
        "plot roc runs");
  cli_text("build/plot_out.txt", text, sizeof text);
  CHECK(strstr(text, "AUC 1 ") || strstr(text, "AUC 1.000"), "joined by index: AUC 1 (0 row by row): %s", text);
  CHECK(cli_lens("plot confusion --scores build/plot_rev.csv --labels build/plot_rev_labels.csv --out build/plot_rev.png > build/plot_out.txt 2>&1") == 0,
        "plot confusion runs");
  CHECK(cli_file_has("build/plot_out.txt", "TN 2 FP 0 FN 0 TP 2"), "and its matrix is by index");
  /* a label that is neither 0 nor 1 is refused, as lens eval refuses it (it once counted as a lens) */
  f = fopen("build/plot_rev_labels.csv", "w");
  if (f) { fputs("index,label\n0,1\n1,0\n2,2\n3,0\n", f); fclose(f); }
  CHECK(cli_lens("plot roc --scores build/plot_rev.csv --labels build/plot_rev_labels.csv --out build/plot_rev.png > build/plot_out.txt 2>&1") == 1,
        "a label of 2 fails");
  CHECK(cli_file_has("build/plot_out.txt", "label '2'") && !cli_file_has("build/plot_out.txt", "K classes"),
        "naming it, without lens eval's advice on K classes");
  f = fopen("build/plot_rev_labels.csv", "w"); /* named inputs, one of them twice */
  if (f) { fputs("input,label\nx.npy[3],0\nx.npy[2],1\nx.npy[2],0\nx.npy[0],1\n", f); fclose(f); }
  CHECK(cli_lens("plot roc --scores build/plot_rev.csv --labels build/plot_rev_labels.csv --out build/plot_rev.png > build/plot_out.txt 2>&1") == 1 &&
            cli_file_has("build/plot_out.txt", "is on lines") && !cli_file_has("build/plot_out.txt", "--join"),
        "an input named twice: refused, without offering --join, which lens plot has not");
  remove("build/plot_rev.csv"); remove("build/plot_rev_labels.csv"); remove("build/plot_rev.png");
}

int main(void) {
  write_inputs();
  TEST("lens plot roc draws two curves and prints the AUC") test_roc();
  TEST("lens plot draws PR, confusion, score and history pictures") test_other_plots();
  TEST("lens plot reads a CSV without a final newline, names a short row and a NaN score") test_csv_edges();
  TEST("lens plot matches --labels to the scores by index, as lens eval does") test_labels_joined();
  TEST("lens plot fails without its label column")
    CHECK(cli_lens("plot roc --scores build/plot_scores.csv --label-column truth --out build/plot_x.png > build/plot_out.txt 2>&1") != 0,
          "a missing label column fails");
  CHECK(cli_file_has("build/plot_out.txt", "label column truth") &&
            cli_file_has("build/plot_out.txt", "columns found: input, p_lens, logit_0, logit_1, label"),
        "the message names the column asked for and lists the columns found");
  remove("build/plot_scores.csv"); remove("build/plot_history.csv"); remove("build/plot_roc.png"); remove("build/plot_pr.png");
  remove("build/plot_conf.png"); remove("build/plot_hist.png"); remove("build/plot_hist2.png"); remove("build/plot_out.txt");
  return check_summary();
}
