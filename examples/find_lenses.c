/* find_lenses.c - score FITS cutouts with a released lens finder of Wilde et al. 2022.
 *
 *   cc -O2 -march=native -I.. find_lenses.c -lm -o find_lenses
 *   ./find_lenses OU_VIS.safetensors cutout1.fits cutout2.fits ...
 *
 * Each cutout is resized to the model's input and min-max normalised per band, as in the paper
 * (lensnet_cutout_prepare), and scored; p(lens) is the softmax of the logits at the output the
 * model's metadata calls "lens" (lensnet_model_class_index, lensnet_lens_probability). */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  lensnet_model *model;
  lensnet_error err;
  lensnet_cutout_desc prep;
  size_t lens_class;
  int i;
  if (argc < 3) { fprintf(stderr, "usage: %s MODEL.safetensors CUTOUT.fits...\n", argv[0]); return 2; }
  if (lensnet_model_load(argv[1], &model, &err) != LENSNET_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
  if (lensnet_model_class_index(model, "lens", &lens_class, &err) != LENSNET_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
  memset(&prep, 0, sizeof prep); /* zero means default: the first bands, values as they are */
  prep.size = LENSNET_SIZE_RESIZE;
  prep.minmax = 1;
  for (i = 2; i < argc; i++) {
    lensnet_tensor cutout;
    float *x = malloc(model->in_c * model->in_h * model->in_w * sizeof(float)), *logits = malloc(model->out_features * sizeof(float));
    if (x && logits && lensnet_fits_read(argv[i], -1, &cutout, &err) == LENSNET_OK) {
      size_t bands = cutout.ndim == 3 ? cutout.shape[0] : 1;
      if (cutout.ndim != 2 && cutout.ndim != 3) fprintf(stderr, "%s: not an image or a cube\n", argv[i]);
      else if (lensnet_cutout_prepare(model, &prep, cutout.data, bands, cutout.shape[cutout.ndim - 2], cutout.shape[cutout.ndim - 1],
                                      x, NULL, &err) != LENSNET_OK ||
               lensnet_model_forward(model, 1, x, logits, NULL, &err) != LENSNET_OK)
        fprintf(stderr, "%s: %s\n", argv[i], err.message);
      else printf("%s p_lens=%.4f\n", argv[i], lensnet_lens_probability(logits, model->out_features, lens_class));
      lensnet_tensor_free(&cutout);
    } else fprintf(stderr, "%s\n", x && logits ? err.message : "out of memory");
    free(x);
    free(logits);
  }
  lensnet_model_free(model);
  return 0;
}
