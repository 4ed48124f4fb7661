/* Where is the lens in a window? A locator against the peak of a finder's Grad-CAM map and
 * against the window's centre (docs/find.md, "Positions"):
 *
 *   build/locate_compare FINDER LOCATOR images.npy labels.csv [N]
 *
 * images.npy [N, C, H, W] and labels.csv as `lens sim --windows --lens-fraction 1` writes them
 * (every window holds a lens; its label's center_x, center_y say where, in arcsec from the
 * window's centre). For the first N windows (default all) it prints, for each method, the median,
 * 68th and 90th percentile and rms of the distance from the true centre in arcsec and the share
 * within 0.3" (one OU-66 pixel) and 1":
 *   centre    the window's centre, what a scan's window position says without refinement;
 *   gradcam   the brightest pixel of the finder's Grad-CAM map of the lens class (its default
 *             layer, the ReLU after the last convolution), placed on the image bilinearly
 *             (lensviz_map_to_image), ties to the first in row-major order;
 *   locator   lensnet_cutout_locate: the locator's predicted centre;
 *   locator8  the mean of its predictions on the window's 8 flips and quarter turns, each turned
 *             back (what lens find's last pass does by default, --locate-symmetries 8).
 * The pixel scale is the locator's metadata pixel_scale. Not part of make test. */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#define LENSVIZ_NO_PNG /* numbers only */
#define LENSVIZ_IMPLEMENTATION
#include "lensviz.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, const lensnet_error *err) {
  fprintf(stderr, "locate_compare: %s: %s\n", what, err->message);
  return 1;
}

static void report(const char *name, const double *tx, const double *ty, const double *x, const double *y, size_t n) {
  static const double radii[2] = {0.3, 1.0};
  lensviz_position_result r;
  lensnet_error err;
  if (lensviz_eval_positions(tx, ty, x, y, n, radii, 2, &r, &err) != LENSNET_OK) {
    fail(name, &err);
    return;
  }
  printf("%-8s %6lu %9.3f %9.3f %9.3f %9.3f %10.1f%% %8.1f%%\n", name, (unsigned long)r.n, r.median, r.p68, r.p90, r.rms,
         100 * r.within[0], 100 * r.within[1]);
}

int main(int argc, char **argv) {
  lensnet_model *finder = NULL, *locator = NULL;
  lensnet_tensor images;
  lensnet_csv labels;
  lensnet_error err;
  lensnet_map_geometry geo;
  size_t n, k, cx_col, cy_col, layer, chw, hw, cam_n;
  double ps, *tx, *ty, *px[4], *py[4];
  lensnet_regression reg;
  size_t ix = 0, iy = 0;
  float *turned, *ws;
  float *in, *cam, *placed;
  int finder_minmax, locator_minmax;
  if (argc < 5) {
    fprintf(stderr, "usage: locate_compare FINDER LOCATOR images.npy labels.csv [N]\n");
    return 2;
  }
  if (lensnet_model_load(argv[1], &finder, &err) != LENSNET_OK) return fail(argv[1], &err);
  if (lensnet_model_load(argv[2], &locator, &err) != LENSNET_OK) return fail(argv[2], &err);
  if (lensnet_npy_read(argv[3], &images, &err) != LENSNET_OK) return fail(argv[3], &err);
  if (lensnet_csv_read(argv[4], &labels, &err) != LENSNET_OK) return fail(argv[4], &err);
  if (lensnet_model_pixel_scale(locator, &ps, &err) != LENSNET_OK || !(ps > 0)) {
    fprintf(stderr, "locate_compare: %s has no pixel_scale metadata\n", argv[2]);
    return 1;
  }
  if (lensnet_model_preprocess(finder, &finder_minmax, NULL, &err) != LENSNET_OK) return fail(argv[1], &err);
  if (lensnet_model_preprocess(locator, &locator_minmax, NULL, &err) != LENSNET_OK) return fail(argv[2], &err);
  if (images.ndim != 4 || images.shape[1] != finder->in_c || images.shape[2] != finder->in_h || images.shape[3] != finder->in_w ||
      locator->in_c != finder->in_c || locator->in_h != finder->in_h || locator->in_w != finder->in_w) {
    fprintf(stderr, "locate_compare: the images, the finder and the locator must have one input shape\n");
    return 1;
  }
  if (lensnet_csv_column(labels.header, "center_x", &cx_col, &err) != LENSNET_OK ||
      lensnet_csv_column(labels.header, "center_y", &cy_col, &err) != LENSNET_OK)
    return fail(argv[4], &err);
  n = images.shape[0] < labels.rows - 1 ? images.shape[0] : labels.rows - 1;
  if (argc > 5 && (size_t)atol(argv[5]) < n) n = (size_t)atol(argv[5]);
  if (lensviz_default_layer(finder, LENSVIZ_LAYER_FOR_GRADCAM, &layer, &err) != LENSNET_OK) return fail(argv[1], &err);
  if (lensnet_receptive_field(finder, layer, &geo, &err) != LENSNET_OK) return fail(argv[1], &err);
  hw = finder->in_h * finder->in_w;
  chw = finder->in_c * hw;
  cam_n = geo.rows * geo.cols;
  tx = (double *)malloc(10 * n * sizeof(double));
  in = (float *)malloc((chw + cam_n + hw) * sizeof(float));
  turned = (float *)malloc(chw * sizeof(float));
  ws = NULL; /* lensnet_model_forward allocates its own */
  if (!turned || lensnet__locator_targets(locator, ps, &reg, &ix, &iy, &err) != LENSNET_OK) return fail(argv[2], &err);
  if (!tx || !in) return 1;
  ty = tx + n;
  for (k = 0; k < 4; k++) {
    px[k] = tx + (2 + 2 * k) * n;
    py[k] = px[k] + n;
  }
  cam = in + chw;
  placed = cam + cam_n;
  for (k = 0; k < n; k++) {
    lensnet_location loc;
    size_t i, best = 0;
    tx[k] = atof(labels.cells[(k + 1) * labels.cols + cx_col]);
    ty[k] = atof(labels.cells[(k + 1) * labels.cols + cy_col]);
    px[0][k] = py[0][k] = 0.0;
    memcpy(in, images.data + k * chw, chw * sizeof(float));
    if (finder_minmax) lensnet_minmax_normalize(in, finder->in_c, hw);
    if (lensviz_gradcam(finder, in, -1, layer, NULL, cam, &err) != LENSNET_OK) return fail("gradcam", &err);
    lensviz_map_to_image(cam, &geo, 1, placed, NULL);
    for (i = 1; i < hw; i++)
      if (placed[i] > placed[best]) best = i;
    px[1][k] = ((double)(best % finder->in_w) - 0.5 * ((double)finder->in_w - 1)) * ps;
    py[1][k] = ((double)(best / finder->in_w) - 0.5 * ((double)finder->in_h - 1)) * ps;
    memcpy(in, images.data + k * chw, chw * sizeof(float));
    if (locator_minmax) lensnet_minmax_normalize(in, locator->in_c, hw);
    if (lensnet_cutout_locate(locator, in, ps, NULL, &loc, &err) != LENSNET_OK) return fail("locator", &err);
    px[2][k] = loc.center_x;
    py[2][k] = loc.center_y;
    if (lensnet__locate_symmetric(locator, &reg, ix, iy, in, ps, turned, ws, &loc, &err) != LENSNET_OK) return fail("locator", &err);
    px[3][k] = loc.center_x;
    py[3][k] = loc.center_y;
  }
  printf("%lu windows of %s; distance from the true centre, arcsec (%.2f\" per pixel)\n", (unsigned long)n, argv[3], ps);
  printf("%-8s %6s %9s %9s %9s %9s %11s %9s\n", "method", "n", "median", "p68", "p90", "rms", "<=0.3\"", "<=1\"");
  report("centre", tx, ty, px[0], py[0], n);
  report("gradcam", tx, ty, px[1], py[1], n);
  report("locator", tx, ty, px[2], py[2], n);
  report("locator8", tx, ty, px[3], py[3], n);
  free(tx);
  free(in);
  free(turned);
  lensnet_csv_free(&labels);
  lensnet_tensor_free(&images);
  lensnet_model_free(finder);
  lensnet_model_free(locator);
  return 0;
}
