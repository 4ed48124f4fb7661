/* lens - the command-line face of the lens toolkit, one subcommand per job, like git. */
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include "lens_cmds.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} lens_command;

static const lens_command commands[] = {
  {"info",    lens_cmd_info,    "describe a model file: architecture, input shape, parameters, metadata"},
  {"predict", lens_cmd_predict, "score images (.npy batches or FITS cutouts) with a lens finder"},
  {"train",   lens_cmd_train,   "train a lens finder on images.npy + labels.csv, resumable"},
  {"render",  lens_cmd_render,  "render a lens scene (JSON) to an image"},
  {"explain", lens_cmd_explain, "show what a lens finder looks at: occlusion, saliency, Grad-CAM, dreams"},
  {"plot",    lens_cmd_plot,    "draw ROC, precision-recall, score, history and confusion pictures from CSV"},
  {"sim",     lens_cmd_sim,     "simulate labelled lenses and non-lenses: images.npy + labels.csv"},
};

int lens_parse_size(const char *text, size_t *out) {
  char *end;
  unsigned long v = strtoul(text, &end, 10);
  if (!*text || *end || text[0] == '-') return 0;
  *out = (size_t)v;
  return 1;
}

int lens_fail(const char *fmt, ...) {
  va_list ap;
  fputs("lens: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return 1;
}

int lens_fail_err(const lensnet_error *err) {
  return lens_fail("%s", err->message[0] ? err->message : lensnet_result_string(err->result));
}

static void usage(FILE *f) {
  size_t i;
  fprintf(f, "usage: lens <command> [options]   (lens <command> --help for its options)\n\ncommands:\n");
  for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
  size_t i;
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "lens: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
