/* find_lenses.c - find lenses in FITS cutouts with a trained lens finder.
 *
 *   build/examples/find_lenses [MODEL.safetensors [CUTOUT.fits ...]]
 *   (defaults: weights/OU_VIS.safetensors and samples/vis/000000[0-3]_VIS.fits)
 *
 * Prints p(lens) for each cutout. A weights file describes itself: its metadata holds the
 * architecture, the class names ("non-lens,lens") and how inputs were scaled ("preprocess":
 * minmax for the finders of Wilde et al. 2022). So the program asks the model instead of
 * assuming: lensnet_cutout_prepare fits any cutout to the model's input (bands, bilinear
 * resize, min-max scaling as lensnet_model_preprocess reads it from the metadata),
 * lensnet_model_class_index finds the output
 * called "lens", and lensnet_lens_probability turns the outputs into its probability. */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include <stdio.h>
#include <stdlib.h>

static const char *default_cutouts[] = {"samples/vis/0000000_VIS.fits", "samples/vis/0000001_VIS.fits",
                                        "samples/vis/0000002_VIS.fits", "samples/vis/0000003_VIS.fits"};

int main(int argc, char **argv) {
  const char *model_path = argc > 1 ? argv[1] : "weights/OU_VIS.safetensors";
  const char **cutouts = argc > 2 ? (const char **)argv + 2 : default_cutouts;
  int i, count = argc > 2 ? argc - 2 : 4, failures = 0;
  lensnet_model *model;
  lensnet_cutout_desc prep = {0}; /* zero means default: bands 0..in_c-1, exact size, no scaling */
  lensnet_error err;
  size_t lens_class;
  float *input, *outputs;

  /* How the finder was trained to see its inputs (its metadata "preprocess": each band scaled to
   * [0, 1], or as they are) goes straight into the cutout recipe. */
  if (lensnet_model_load(model_path, &model, &err) != LENSNET_OK ||
      lensnet_model_class_index(model, "lens", &lens_class, &err) != LENSNET_OK ||
      lensnet_model_preprocess(model, &prep.minmax, NULL, &err) != LENSNET_OK) {
    fprintf(stderr, "find_lenses: %s: %s\n", model_path, err.message);
    return 1;
  }
  prep.size = LENSNET_SIZE_RESIZE; /* cutouts of another size are resampled bilinearly */

  /* One model input [in_c, in_h, in_w] and one output vector, reused for every cutout. */
  input = malloc(model->in_c * model->in_h * model->in_w * sizeof *input);
  outputs = malloc(model->out_features * sizeof *outputs);
  if (!input || !outputs) { fprintf(stderr, "find_lenses: out of memory\n"); return 1; }

  for (i = 0; i < count; i++) {
    lensnet_tensor cutout; /* a FITS image [h, w] or cube [bands, h, w] */
    lensnet_cutout_report report;
    size_t bands;
    if (lensnet_fits_read(cutouts[i], -1, &cutout, &err) != LENSNET_OK) {
      fprintf(stderr, "find_lenses: %s\n", err.message); /* the message starts with the path */
      failures++;
      continue;
    }
    bands = cutout.ndim == 3 ? cutout.shape[0] : 1;
    if (cutout.ndim != 2 && cutout.ndim != 3) {
      fprintf(stderr, "find_lenses: %s: a %d-axis FITS image is neither an image nor a cube of bands\n", cutouts[i], cutout.ndim);
      failures++;
    } else if (lensnet_cutout_prepare(model, &prep, cutout.data, bands, cutout.shape[cutout.ndim - 2],
                                      cutout.shape[cutout.ndim - 1], input, &report, &err) != LENSNET_OK ||
               lensnet_model_forward(model, 1, input, outputs, NULL, &err) != LENSNET_OK) {
      fprintf(stderr, "find_lenses: %s: %s\n", cutouts[i], err.message);
      failures++;
    } else {
      printf("%s p_lens=%.4f", cutouts[i], lensnet_lens_probability(outputs, model->out_features, lens_class));
      if (report.nan_pixels + report.inf_pixels) printf(" (%lu blank pixels set to 0)", (unsigned long)(report.nan_pixels + report.inf_pixels));
      printf("\n");
    }
    lensnet_tensor_free(&cutout);
  }
  free(input);
  free(outputs);
  lensnet_model_free(model);
  return failures ? 1 : 0; /* every cutout is tried; any that failed makes the exit status 1 */
}
