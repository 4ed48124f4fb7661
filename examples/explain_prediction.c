/* explain_prediction.c - which part of a cutout makes a finder say "lens"? An occlusion map.
 *
 *   build/examples/explain_prediction [MODEL.safetensors [CUTOUT.fits [OUT_DIR]]]
 *   (defaults: weights/OU_VIS.safetensors samples/vis/0000002_VIS.fits build/examples-out)
 *
 * Occlusion (Zeiler & Fergus 2014) hides one square patch of the image at a time and records
 * how p(lens) changes: where hiding the patch lowers p(lens) (blue), the finder relied on what
 * was there, an arc if it is right for the right reason. lensviz_occlusion computes the map;
 * lensviz draws the cutout and the map side by side with a colour bar into OUT_DIR/occlusion.png,
 * each map cell over the patch it stands for (lensviz_occlusion_grid), with an arcsecond scale
 * bar when the FITS header gives the pixel scale. The cutout is prepared as find_lenses.c does
 * it, from the model's metadata. */
#define _POSIX_C_SOURCE 200809L /* mkdir */
#define LENSNET_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define LENSVIZ_IMPLEMENTATION
#include "lensviz.h" /* includes lensnet.h */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define SIDE 200 /* pixels of each picture in the panel */

int main(int argc, char **argv) {
  const char *model_path = argc > 1 ? argv[1] : "weights/OU_VIS.safetensors";
  const char *cutout_path = argc > 2 ? argv[2] : "samples/vis/0000002_VIS.fits";
  const char *out_dir = argc > 3 ? argv[3] : "build/examples-out";
  lensnet_model *model;
  lensnet_tensor cutout;
  lensnet_cutout_desc prep = {0};
  lensnet_error err;
  lensviz_desc occ = {0}; /* zero means default for every option */
  lensviz_image pics[2], panel = {0};
  lensviz_panel panels[2];
  lensnet_map_geometry cells;
  size_t lens_class, rows, cols, k, top = 0, w, h;
  float *input, *map, lo, hi;
  double p_lens, arcsec = 0.0;
  char title[160], path[1024];

  /* 1. The finder and the cutout, prepared as the metadata says (see find_lenses.c). */
  if (lensnet_model_load(model_path, &model, &err) != LENSNET_OK ||
      lensnet_model_class_index(model, "lens", &lens_class, &err) != LENSNET_OK ||
      lensnet_model_preprocess(model, &prep.minmax, NULL, &err) != LENSNET_OK ||
      lensnet_fits_read(cutout_path, -1, &cutout, &err) != LENSNET_OK) {
    fprintf(stderr, "explain_prediction: %s\n", err.message);
    return 1;
  }
  prep.size = LENSNET_SIZE_RESIZE;
  input = malloc(model->in_c * model->in_h * model->in_w * sizeof *input);
  if (!input) { fprintf(stderr, "explain_prediction: out of memory\n"); return 1; }
  if (cutout.ndim != 2 && cutout.ndim != 3) { fprintf(stderr, "explain_prediction: %s is not an image\n", cutout_path); return 1; }
  if (lensnet_cutout_prepare(model, &prep, cutout.data, cutout.ndim == 3 ? cutout.shape[0] : 1, cutout.shape[cutout.ndim - 2],
                             cutout.shape[cutout.ndim - 1], input, NULL, &err) != LENSNET_OK) {
    fprintf(stderr, "explain_prediction: %s: %s\n", cutout_path, err.message);
    return 1;
  }

  /* 2. The occlusion map: a patch a tenth of the image wide, moved by its own width, filled
   *    with 0 (the darkest value after min-max scaling). p_lens is the unoccluded p(lens). */
  occ.patch = model->in_h / 10 ? model->in_h / 10 : 1;
  lensviz_occlusion_size(model, &occ, &rows, &cols);
  map = malloc(rows * cols * sizeof *map);
  if (!map) { fprintf(stderr, "explain_prediction: out of memory\n"); return 1; }
  if (lensviz_occlusion(model, input, (int)lens_class, &occ, map, &p_lens, &err) != LENSNET_OK) {
    fprintf(stderr, "explain_prediction: %s\n", err.message);
    return 1;
  }
  for (k = 1; k < rows * cols; k++) if (fabsf(map[k]) > fabsf(map[top])) top = k;
  printf("%s: p_lens=%.4f; hiding patch (row %lu, col %lu) of %lux%lu changes it most, by %+.4f\n", cutout_path, p_lens,
         (unsigned long)(top / cols), (unsigned long)(top % cols), (unsigned long)rows, (unsigned long)cols, map[top]);

  /* 3. The picture: the cutout (asinh stretch) and the map (blue: p falls, red: p rises) with
   *    a colour bar, under a title, as one PNG. */
  for (k = 0; k < 2; k++)
    if (lensviz_image_alloc(&pics[k], SIDE, SIDE, &err) != LENSNET_OK) { fprintf(stderr, "explain_prediction: %s\n", err.message); return 1; }
  lensviz_asinh_bands(input, model->in_c, model->in_h, model->in_w, 8.0f, 0.0f, &pics[0]);
  lensviz_map_range(map, rows * cols, 1, &lo, &hi); /* symmetric about 0 */
  lensviz_occlusion_grid(model, &occ, &cells);       /* each cell over its patch */
  lensviz_render_map_placed(map, &cells, LENSVIZ_CMAP_DIVERGING, lo, hi, 0, &pics[1]);
  /* arcseconds per picture pixel: the cutout's, times its width over the model's, times the
   * model's width over the picture's (no scale bar when the header does not say) */
  if (lensnet_fits_pixel_scale(cutout_path, -1, &arcsec, NULL, NULL) == LENSNET_OK)
    for (k = 0; k < 2; k++) lensviz_scale_bar(&pics[k], arcsec * (double)cutout.shape[cutout.ndim - 1] / SIDE);
  memset(panels, 0, sizeof panels);
  panels[0].image = &pics[0];
  panels[0].title = "cutout";
  panels[1].image = &pics[1];
  panels[1].title = "p(occluded) - p";
  panels[1].colorbar = 1;
  panels[1].cmap = LENSVIZ_CMAP_DIVERGING;
  panels[1].lo = lo;
  panels[1].hi = hi;
  snprintf(title, sizeof title, "Occlusion: p(lens) = %.3f", p_lens);
  lensviz_grid_size(panels, 2, 2, title, &w, &h);
  if (lensviz_image_alloc(&panel, w, h, &err) != LENSNET_OK) { fprintf(stderr, "explain_prediction: %s\n", err.message); return 1; }
  lensviz_grid_render(panels, 2, 2, title, &panel);
  mkdir(out_dir, 0777); /* may exist already; lensviz_png_write reports a real failure */
  snprintf(path, sizeof path, "%s/occlusion.png", out_dir);
  if (lensviz_png_write(path, &panel, &err) != LENSNET_OK) { fprintf(stderr, "explain_prediction: %s\n", err.message); return 1; }
  printf("wrote %s\n", path);

  lensviz_image_free(&panel);
  for (k = 0; k < 2; k++) lensviz_image_free(&pics[k]);
  free(map);
  free(input);
  lensnet_tensor_free(&cutout);
  lensnet_model_free(model);
  return 0;
}
