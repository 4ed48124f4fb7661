/* lens_cmds.h - the subcommands of the `lens` tool, one source file each. */
#ifndef LENS_CMDS_H
#define LENS_CMDS_H
#include "lensnet.h"

int lens_cmd_info(int argc, char **argv);
int lens_cmd_predict(int argc, char **argv);
int lens_cmd_render(int argc, char **argv);
int lens_cmd_sim(int argc, char **argv);
int lens_cmd_train(int argc, char **argv);
int lens_cmd_adapt(int argc, char **argv);
int lens_cmd_explain(int argc, char **argv);
int lens_cmd_plot(int argc, char **argv);
int lens_cmd_eval(int argc, char **argv);
int lens_cmd_merge(int argc, char **argv);
int lens_cmd_find(int argc, char **argv);
int lens_cmd_export_c(int argc, char **argv);
int lens_cmd_quantize(int argc, char **argv);
/* tools/cmd_regress.c: lens eval --task regress (lens_cmd_eval hands it over), lens calibrate */
int lens_cmd_eval_regress(int argc, char **argv);
int lens_cmd_calibrate(int argc, char **argv);
/* tools/cmd_eval.c: the data rows (1-based) of a table of predictions and of one of labels that
 * hold the same objects, matched as lens eval matches them (by index, by input names, else in row
 * order, with its checks and notes); labels_may_hold_more: matched by index, the labels may name
 * objects the predictions lack. *how says which rule matched them. */
int lens_eval_join(const lensnet_csv *st, const char *spath, const lensnet_csv *lt, const char *lpath, int labels_may_hold_more,
                   size_t **srow, size_t **lrow, size_t *n, const char **how);
/* tools/cmd_eval.c: one score file's scores and 0/1 labels joined as lens eval joins them (lens plot) */
int lens_eval_scored(const char *scores_path, const char *labels_path, const char *score_column, const char *label_column,
                     float **scores, int **labels, size_t *n);

/* A non-negative decimal count ("12"); 0 if the text is anything else. */
int lens_parse_size(const char *text, size_t *out);

/* Prints "lens: <message>" to stderr and returns 1 (the tools' exit status for a failure). */
int lens_fail(const char *fmt, ...);
/* Same, for a failed library call: "lens: <detail>". */
int lens_fail_err(const lensnet_error *err);
#endif
