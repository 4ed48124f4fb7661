/* lens - the command-line face of the lens toolkit, one subcommand per job, like git. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lens_cmds.h"
#include "lenssim.h"
#include "lensviz.h"

/* The tool's version: the toolkit's, which the three headers share. */
#define LENS_TOOL_VERSION LENSNET_VERSION_STRING

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} lens_command;

static const lens_command commands[] = {
  {"info",    lens_cmd_info,    "describe a model file: architecture, input shape, parameters, metadata"},
  {"predict", lens_cmd_predict, "score images (.npy batches or FITS cutouts) with a lens finder"},
  {"find",    lens_cmd_find,    "find lenses in survey fields: slide a finder over large images, detections + maps"},
  {"train",   lens_cmd_train,   "train a lens finder (or, --task regress, a modelling network) on images.npy + labels.csv"},
  {"adapt",   lens_cmd_adapt,   "adapt a lens finder to unlabelled images of another domain: ADDA, AdaMatch, self-ensembling"},
  {"render",  lens_cmd_render,  "render lens scenes (JSON, or JSON lines) to an image or a stack"},
  {"explain", lens_cmd_explain, "show what a lens finder looks at: occlusion, saliency, Grad-CAM, dreams"},
  {"eval",    lens_cmd_eval,    "score a finder against labels: AUC with intervals, PR, thresholds, by kind, at priors;\n"
   "            --task regress: a modelling network's errors and interval coverage"},
  {"calibrate", lens_cmd_calibrate, "calibrate a modelling network's sigmas (and with --means its means) on a validation set"},
  {"plot",    lens_cmd_plot,    "draw ROC, precision-recall, score, history and confusion pictures from CSV"},
  {"sim",     lens_cmd_sim,     "simulate labelled lenses and non-lenses: images.npy + labels.csv"},
  {"merge",   lens_cmd_merge,   "join the shards of a sim, predict or find --shard run into one run's files"},
  {"export-c", lens_cmd_export_c, "write a model as C source (const arrays + sizes) for firmware: lensnet_model_init_preallocated"},
  {"quantize", lens_cmd_quantize, "make a model run in 8 bits (int8 weights, calibrated inputs); report its agreement and speed"},
};

int lens_parse_size(const char *text, size_t *out) {
  size_t v = 0;
  const char *p = text;
  if (!*p) return 0;
  for (; *p; p++) { /* digits only, and no wrap past SIZE_MAX (strtoul would take " +7" and clamp) */
    if (*p < '0' || *p > '9' || v > ((size_t)-1 - (size_t)(*p - '0')) / 10) return 0;
    v = v * 10 + (size_t)(*p - '0');
  }
  *out = v;
  return 1;
}

static void usage(FILE *f) {
  size_t i;
  fprintf(f, "usage: lens <command> [options]   (lens <command> --help for its options)\n"
             "       lens --version\n\ncommands:\n");
  for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
}

static void version(void) {
  printf("lens %s\n", LENS_TOOL_VERSION);
  printf("lensnet.h %s\n", LENSNET_VERSION_STRING);
  printf("lenssim.h %s\n", LENSSIM_VERSION_STRING);
  printf("lensviz.h %s\n", LENSVIZ_VERSION_STRING);
  printf("PNG output: %s\n", LENSVIZ_HAS_PNG ? "yes (stb_image_write.h)" : "no (built with NO_PNG=1 / LENSVIZ_NO_PNG)");
}

/* A build without stb_image_write.h (make NO_PNG=1) cannot write PNG: the commands and options
 * that would are refused up front, before any work, rather than failing at their first picture.
 * Returns the use that needs PNG ("lens plot", "lens sim --png"), or NULL. */
static const char *png_use(int argc, char **argv) {
  int i;
  if (LENSVIZ_HAS_PNG) return NULL;
  for (i = 2; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return NULL;
  if (!strcmp(argv[1], "explain")) return "lens explain";
  if (!strcmp(argv[1], "plot")) return "lens plot";
  if (!strcmp(argv[1], "sim"))
    for (i = 2; i < argc; i++)
      if (!strcmp(argv[i], "--png")) return "lens sim --png";
  return NULL;
}

int main(int argc, char **argv) {
  size_t i;
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) {
    version();
    return 0;
  }
  if (png_use(argc, argv))
    return lens_fail("%s writes PNG, but this lens was built without PNG support (make NO_PNG=1: no stb_image_write.h).\n"
                     "To rebuild with it: install stb_image_write.h (Debian/Ubuntu: sudo apt-get install libstb-dev, or make deps),\n"
                     "then run make (see docs/install.md)",
                     png_use(argc, argv));
  for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "lens: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
