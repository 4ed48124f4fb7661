/* find_lenses.c - score FITS cutouts with a released lens finder of Wilde et al. 2022.
 *
 *   cc -O2 -march=native -I.. find_lenses.c -lm -o find_lenses
 *   ./find_lenses OU_VIS.safetensors cutout1.fits cutout2.fits ...
 *
 * Each cutout is resized to the model's input, min-max normalised per band (as in the paper)
 * and scored; the probability of "lens" is the softmax of the two logits. */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  lensnet_model *model;
  lensnet_error err;
  int i;
  if (argc < 3) { fprintf(stderr, "usage: %s MODEL.safetensors CUTOUT.fits...\n", argv[0]); return 2; }
  if (lensnet_model_load(argv[1], &model, &err) != LENSNET_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
  for (i = 2; i < argc; i++) {
    lensnet_tensor cutout;
    size_t bands, h, w, b, hw = model->in_h * model->in_w;
    float *x = malloc(model->in_c * hw * sizeof(float)), logits[2];
    if (lensnet_fits_read(argv[i], -1, &cutout, &err) != LENSNET_OK) { fprintf(stderr, "%s\n", err.message); free(x); continue; }
    if (cutout.ndim != 2 && cutout.ndim != 3) { fprintf(stderr, "%s: not an image or a cube\n", argv[i]); lensnet_tensor_free(&cutout); free(x); continue; }
    bands = cutout.ndim == 3 ? cutout.shape[0] : 1;
    h = cutout.shape[cutout.ndim - 2];
    w = cutout.shape[cutout.ndim - 1];
    if (bands < model->in_c) { fprintf(stderr, "%s: %lu bands, the model needs %lu\n", argv[i], (unsigned long)bands, (unsigned long)model->in_c); }
    else {
      for (b = 0; b < model->in_c; b++) lensnet_resize_bilinear(cutout.data + b * h * w, h, w, x + b * hw, model->in_h, model->in_w);
      lensnet_minmax_normalize(x, model->in_c, hw);
      lensnet_model_forward(model, 1, x, logits, NULL, &err);
      printf("%s p_lens=%.4f\n", argv[i], 1.0 / (1.0 + exp(logits[0] - logits[1])));
    }
    lensnet_tensor_free(&cutout);
    free(x);
  }
  lensnet_model_free(model);
  return 0;
}
