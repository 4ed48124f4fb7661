/* test_recipes.c - the recipes every caller of a finder shares (lensnet.h, section "Recipes"):
 * cutout preparation, channel lists, class lookup and p(lens), band names and pixel scale from the
 * metadata, the label column of labels.csv.
 * The streaming .npy writer is tested with the formats (tests/test_formats.c); that `lens
 * predict` and `lens explain` prepare cutouts alike, in tests/test_cli_explain.c. */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static lensnet_model *tiny_model(size_t bands, size_t side, size_t outputs, const char *classes) {
  char arch[128];
  lensnet_model *m = NULL;
  lensnet_error err;
  snprintf(arch, sizeof arch, "input %lu %lu %lu\nflatten\ndense name=d out=%lu", (unsigned long)bands, (unsigned long)side,
           (unsigned long)side, (unsigned long)outputs);
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { CHECK(0, "model: %s", err.message); return NULL; }
  lensnet_model_init(m, 3);
  if (classes) lensnet_model_set_meta(m, "classes", classes);
  return m;
}

/* ---- cutouts ---------------------------------------------------------------------------- */

static void test_cutout_selection_and_fit(void) {
  lensnet_model *m = tiny_model(2, 4, 2, NULL);
  float image[3 * 8 * 8], out[2 * 16], want[16];
  size_t chosen[2] = {2, 0}, i, y, x;
  lensnet_cutout_desc d;
  lensnet_cutout_report rep;
  lensnet_error err;
  if (!m) return;
  for (i = 0; i < 3 * 64; i++) image[i] = (float)i;
  memset(&d, 0, sizeof d);
  CHECK(lensnet_cutout_prepare(m, &d, image, 3, 4, 4, out, &rep, &err) == LENSNET_OK, "%s", err.message);
  CHECK(!memcmp(out, image, sizeof out) && rep.unused_bands == 1 && rep.filled_pixels == 0, "default: the first bands as they are, one band unused");
  d.channels = chosen;
  d.channel_count = 2;
  lensnet_cutout_prepare(m, &d, image, 3, 4, 4, out, &rep, &err);
  CHECK(!memcmp(out, image + 32, 16 * sizeof(float)) && !memcmp(out + 16, image, 16 * sizeof(float)), "channels {2, 0}");
  CHECK(rep.unused_bands == 1 && rep.nan_pixels == 0 && rep.issue == LENSNET_CUTOUT_OK, "report");
  d.size = LENSNET_SIZE_RESIZE;
  CHECK(lensnet_cutout_prepare(m, &d, image, 3, 8, 8, out, &rep, &err) == LENSNET_OK, "resize: %s", err.message);
  lensnet_resize_bilinear(image + 128, 8, 8, want, 4, 4);
  CHECK(!memcmp(out, want, sizeof want), "resize is lensnet_resize_bilinear of the chosen band");
  d.size = LENSNET_SIZE_CROP;
  d.channels = NULL;
  d.channel_count = 0;
  CHECK(lensnet_cutout_prepare(m, &d, image, 2, 6, 7, out, &rep, &err) == LENSNET_OK, "crop: %s", err.message);
  for (y = 0, i = 0; y < 4; y++)
    for (x = 0; x < 4; x++) i += out[16 + y * 4 + x] != image[42 + (1 + y) * 7 + 1 + x];
  CHECK(i == 0, "crop: the central 4x4 of a 6x7 band (offsets 1, 1)");
  d.size = (lensnet_size_fit)7;
  CHECK(lensnet_cutout_prepare(m, &d, image, 2, 4, 4, out, &rep, &err) == LENSNET_ERR_ARG && strstr(err.message, "size 7"),
        "a size fit that is none of the three is refused: %s", err.message);
  lensnet_model_free(m);
}

static void test_cutout_minmax_and_nonfinite(void) {
  lensnet_model *m = tiny_model(1, 2, 2, NULL);
  float image[4] = {2.0f, NAN, 6.0f, INFINITY}, out[4], raw[4] = {1.0f, NAN, -INFINITY, 3.0f};
  lensnet_cutout_desc d;
  lensnet_cutout_report rep;
  lensnet_error err;
  if (!m) return;
  memset(&d, 0, sizeof d);
  d.minmax = 1;
  CHECK(lensnet_cutout_prepare(m, &d, image, 1, 2, 2, out, &rep, &err) == LENSNET_OK, "%s", err.message);
  CHECK(out[0] == 0.0f && out[2] == 1.0f && out[1] == 0.0f && out[3] == 0.0f, "min-max over the finite pixels: %g %g %g %g",
        out[0], out[1], out[2], out[3]);
  CHECK(rep.nan_pixels == 1 && rep.inf_pixels == 1, "one NaN and one infinity counted (%lu, %lu)", (unsigned long)rep.nan_pixels,
        (unsigned long)rep.inf_pixels);
  d.minmax = 0;
  lensnet_cutout_prepare(m, &d, raw, 1, 2, 2, out, &rep, &err);
  CHECK(out[0] == 1.0f && out[1] == 0.0f && out[2] == 0.0f && out[3] == 3.0f && rep.nan_pixels == 1 && rep.inf_pixels == 1,
        "without min-max: non-finite pixels become 0 and are counted");
  CHECK(lensnet_cutout_prepare(m, NULL, raw, 1, 2, 2, out, NULL, NULL) == LENSNET_OK, "desc, report and err may be NULL");
  lensnet_model_free(m);
}

/* lensnet_image_dims: [H, W], [C, H, W] and [1, C, H, W] are one image; a batch and other axes
 * are refused. */
static void test_image_dims(void) {
  lensnet_tensor t;
  lensnet_error err;
  size_t b = 9, h = 9, w = 9;
  memset(&t, 0, sizeof t);
  t.ndim = 2; t.shape[0] = 5; t.shape[1] = 7;
  CHECK(lensnet_image_dims(&t, &b, &h, &w, &err) == LENSNET_OK && b == 1 && h == 5 && w == 7, "[5, 7]: 1 x 5 x 7");
  t.ndim = 3; t.shape[0] = 4; t.shape[1] = 66; t.shape[2] = 60;
  CHECK(lensnet_image_dims(&t, &b, &h, &w, &err) == LENSNET_OK && b == 4 && h == 66 && w == 60, "[4, 66, 60]");
  t.ndim = 4; t.shape[0] = 1; t.shape[1] = 3; t.shape[2] = 8; t.shape[3] = 9;
  CHECK(lensnet_image_dims(&t, &b, &h, &w, &err) == LENSNET_OK && b == 3 && h == 8 && w == 9, "[1, 3, 8, 9]");
  t.shape[0] = 2;
  CHECK(lensnet_image_dims(&t, &b, &h, &w, &err) == LENSNET_ERR_SHAPE && strstr(err.message, "batch of 2") && b == 0, "a batch: %s", err.message);
  t.ndim = 1;
  CHECK(lensnet_image_dims(&t, &b, &h, &w, &err) == LENSNET_ERR_SHAPE && strstr(err.message, "has 1"), "one axis: %s", err.message);
  CHECK(lensnet_image_dims(NULL, &b, &h, &w, &err) == LENSNET_ERR_ARG, "no tensor: %s", err.message);
}

/* Resizing a band with blank pixels: they are left out of the interpolation, so a blank area
 * keeps its size instead of growing by the interpolation's reach. The expected values are worked
 * out by hand from PyTorch's bilinear convention (source coordinate s = (i + 0.5) in / out - 0.5,
 * clamped at 0). */
static void test_cutout_resize_blanks(void) {
  lensnet_model *m = tiny_model(1, 8, 2, NULL), *big = tiny_model(1, 60, 2, NULL);
  float image[16], out[64], *field = NULL, *wide = NULL;
  size_t y, x, nan_out, differ;
  lensnet_cutout_desc d;
  lensnet_cutout_report rep;
  lensnet_error err;
  if (!m || !big) goto done;
  memset(&d, 0, sizeof d);
  d.size = LENSNET_SIZE_RESIZE;
  /* A plane 10 y + x on 4 x 4 with a blank at (1, 1), doubled to 8 x 8. Output (2, 2) samples
   * s = 0.75 on both axes: weights 1/16, 3/16, 3/16 and 9/16 on (0,0), (0,1), (1,0) and the blank
   * (1,1), so its value is (3/16 * 1 + 3/16 * 10) / (7/16) = 33/7. No output is left blank: every
   * output near (1, 1) has a finite neighbour of positive weight. */
  for (y = 0; y < 4; y++)
    for (x = 0; x < 4; x++) image[y * 4 + x] = (float)(10 * y + x);
  image[5] = NAN;
  CHECK(lensnet_cutout_place(m, &d, image, 1, 4, 4, out, &rep, &err) == LENSNET_OK, "%s", err.message);
  CHECK(fabsf(out[2 * 8 + 2] - 33.0f / 7.0f) < 1e-5f, "output (2,2) is the renormalised mean of its finite neighbours: %.7g, want %.7g",
        out[2 * 8 + 2], 33.0 / 7.0);
  for (y = 0, nan_out = 0; y < 64; y++) nan_out += out[y] != out[y];
  CHECK(nan_out == 0, "one interior blank blanks no output when doubled (%lu did)", (unsigned long)nan_out);
  /* Outputs whose four neighbours are finite are lensnet_resize_bilinear's, bit for bit: output
   * row (column) i samples s = i / 2 - 0.25 between source rows floor(s) and floor(s) + 1, which
   * leaves out row 1, the blank's, from i = 5 on. */
  image[5] = 11.0f;
  {
    float plain[64];
    lensnet_resize_bilinear(image, 4, 4, plain, 8, 8);
    for (y = 0, differ = 0; y < 8; y++)
      for (x = 0; x < 8; x++)
        if ((y >= 5 || x >= 5) && out[y * 8 + x] != plain[y * 8 + x]) differ++;
    CHECK(differ == 0, "away from the blank the bits of lensnet_resize_bilinear (%lu differ)", (unsigned long)differ);
  }
  /* A blank corner (0, 0): outputs (0, 0) samples s = 0 on both axes (clamped), weight 1 on the
   * corner alone, and stays blank; outputs (0..1, 0..1) would all be NaN by plain interpolation. */
  image[0] = NAN;
  lensnet_cutout_prepare(m, &d, image, 1, 4, 4, out, &rep, &err);
  CHECK(rep.nan_pixels == 1 && out[0] == 0.0f, "a blank corner stays one blank pixel (%lu), set to 0", (unsigned long)rep.nan_pixels);
  CHECK(rep.filled_pixels == 1, "the report counts the one blank input pixel left out (%lu)", (unsigned long)rep.filled_pixels);
  image[0] = INFINITY;
  lensnet_cutout_prepare(m, &d, image, 1, 4, 4, out, &rep, &err);
  CHECK(rep.nan_pixels == 0 && rep.inf_pixels == 1, "an infinite corner stays one infinite pixel (%lu NaN, %lu infinite)",
        (unsigned long)rep.nan_pixels, (unsigned long)rep.inf_pixels);
  for (y = 0; y < 16; y++) image[y] = NAN;
  lensnet_cutout_prepare(m, &d, image, 1, 4, 4, out, &rep, &err);
  CHECK(rep.nan_pixels == 64, "an all-blank band stays all blank (%lu of 64)", (unsigned long)rep.nan_pixels);
  /* A 4 x 4 blank block (rows and columns 5..8) in a 20 x 20 band, tripled to 60 x 60: an output
   * stays blank when both its source samples fall inside the block, s = (i + 0.5) / 3 - 0.5 in
   * [5, 8], i.e. i in 16..25 on each axis: 100 outputs (the block's own area is 144). Plain
   * interpolation blanks every output with the block among its four neighbours, even at weight 0
   * (0 x NaN is NaN): floor(s) in 4..8, i in 13..27 on each axis, 225 outputs. */
  field = (float *)malloc(400 * sizeof(float));
  wide = (float *)malloc(3600 * sizeof(float));
  if (!field || !wide) { CHECK(0, "out of memory"); goto done; }
  for (y = 0; y < 20; y++)
    for (x = 0; x < 20; x++) field[y * 20 + x] = (y >= 5 && y <= 8 && x >= 5 && x <= 8) ? NAN : (float)(y + x);
  lensnet_cutout_prepare(big, &d, field, 1, 20, 20, wide, &rep, &err);
  CHECK(rep.nan_pixels == 100 && rep.filled_pixels == 16, "a 4x4 blank block tripled leaves 100 blank outputs (%lu), 16 input blanks (%lu)",
        (unsigned long)rep.nan_pixels, (unsigned long)rep.filled_pixels);
  lensnet_resize_bilinear(field, 20, 20, wide, 60, 60);
  for (y = 0, nan_out = 0; y < 3600; y++) nan_out += wide[y] != wide[y];
  CHECK(nan_out == 225, "plain bilinear interpolation would have blanked 225 (%lu)", (unsigned long)nan_out);
done:
  free(field);
  free(wide);
  lensnet_model_free(m);
  lensnet_model_free(big);
}

/* lensnet_cutout_place leaves the values as they are; lensnet_cutout_scale then does the rest. */
static void test_cutout_halves(void) {
  lensnet_model *m = tiny_model(1, 2, 2, NULL);
  float image[2 * 4] = {2.0f, NAN, 6.0f, INFINITY, 9.0f, 9.0f, 9.0f, 9.0f}, out[4];
  lensnet_cutout_desc d;
  lensnet_cutout_report rep;
  lensnet_error err;
  if (!m) return;
  memset(&d, 0, sizeof d);
  d.minmax = 1;
  CHECK(lensnet_cutout_place(m, &d, image, 2, 2, 2, out, &rep, &err) == LENSNET_OK, "%s", err.message);
  CHECK(out[0] == 2.0f && out[1] != out[1] && out[2] == 6.0f && out[3] == INFINITY, "placed: the first band as it is, NaN and infinity kept");
  CHECK(rep.nan_pixels == 0 && rep.inf_pixels == 0 && rep.unused_bands == 1 && rep.issue == LENSNET_CUTOUT_OK, "placing counts nothing");
  rep.unused_bands = 7;
  lensnet_cutout_scale(m, &d, out, &rep);
  CHECK(out[0] == 0.0f && out[1] == 0.0f && out[2] == 1.0f && out[3] == 0.0f, "scaled: %g %g %g %g", out[0], out[1], out[2], out[3]);
  CHECK(rep.nan_pixels == 1 && rep.inf_pixels == 1 && rep.unused_bands == 7, "scaling counts one NaN, one infinity, and leaves the rest");
  d.minmax = 0;
  lensnet_cutout_place(m, &d, image, 2, 2, 2, out, NULL, &err);
  lensnet_cutout_scale(m, &d, out, NULL);
  CHECK(out[0] == 2.0f && out[1] == 0.0f && out[2] == 6.0f && out[3] == 0.0f, "without min-max: non-finite pixels to 0");
  CHECK(lensnet_cutout_place(m, &d, image, 1, 4, 2, out, &rep, &err) == LENSNET_ERR_SHAPE && rep.issue == LENSNET_CUTOUT_SIZE,
        "placing refuses what preparing refuses: %s", err.message);
  lensnet_model_free(m);
}

/* lensnet_plane_empty: a plane holds no image when its finite pixels are all one value, or none
 * is finite; one pixel that differs makes it an image. */
static void test_plane_empty(void) {
  float p[6] = {0, 0, 0, 0, 0, 0};
  CHECK(lensnet_plane_empty(p, 6), "zeros: empty");
  p[2] = NAN; p[4] = INFINITY;
  CHECK(lensnet_plane_empty(p, 6), "zeros with NaN and infinity: empty");
  p[0] = p[1] = p[3] = p[5] = NAN;
  CHECK(lensnet_plane_empty(p, 6), "nothing finite: empty");
  p[5] = 3.0f;
  CHECK(lensnet_plane_empty(p, 6), "one finite pixel: empty (every finite pixel the same)");
  p[1] = 3.0f;
  CHECK(lensnet_plane_empty(p, 6), "two equal finite pixels among NaNs: empty");
  p[3] = 3.0f + 1e-6f;
  CHECK(!lensnet_plane_empty(p, 6), "a pixel that differs by a rounding step: an image");
  CHECK(lensnet_plane_empty(p, 0), "no pixels: empty");
}

/* lensnet_count_nonfinite: how many, and the first, wherever they fall in a vector's lanes. */
static void test_count_nonfinite(void) {
  float x[70];
  size_t n, p, first, bad = 0;
  for (n = 1; n <= 70; n++)
    for (p = 0; p < n; p++) {
      size_t i, q = (p * 7 + 3) % n;
      for (i = 0; i < n; i++) x[i] = (float)i - 30.0f;
      first = 99;
      bad += lensnet_count_nonfinite(x, n, &first) != 0 || first != n;
      x[p] = NAN;
      x[q] = q % 2 ? INFINITY : -INFINITY;
      bad += lensnet_count_nonfinite(x, n, &first) != (p == q ? 1u : 2u) || first != (p < q ? p : q);
    }
  CHECK(bad == 0, "%lu wrong counts or first positions", (unsigned long)bad);
  { /* across the 2^20-value blocks the count is taken in */
    size_t big = ((size_t)1 << 20) + 37, i;
    float *y = (float *)malloc(big * sizeof(float));
    if (y) {
      for (i = 0; i < big; i++) y[i] = 1.0f;
      y[((size_t)1 << 20) + 5] = NAN;
      first = 0;
      CHECK(lensnet_count_nonfinite(y, big, &first) == 1 && first == ((size_t)1 << 20) + 5, "one NaN past the first block");
      y[3] = INFINITY; y[((size_t)1 << 20) - 1] = -INFINITY;
      CHECK(lensnet_count_nonfinite(y, big, &first) == 3 && first == 3, "three in two blocks");
      free(y);
    }
  }
  x[0] = FLT_MAX; x[1] = -FLT_MAX; x[2] = FLT_MIN;
  CHECK(lensnet_count_nonfinite(x, 3, NULL) == 0, "the largest and smallest floats are finite");
}

static void test_cutout_refusals(void) {
  lensnet_model *m = tiny_model(2, 4, 2, NULL);
  float image[3 * 64], out[32];
  size_t one[1] = {0}, far[2] = {0, 5};
  lensnet_cutout_desc d;
  lensnet_cutout_report rep;
  lensnet_error err;
  if (!m) return;
  memset(image, 0, sizeof image);
  memset(&d, 0, sizeof d);
  CHECK(lensnet_cutout_prepare(m, &d, image, 2, 0, 4, out, &rep, &err) == LENSNET_ERR_SHAPE && rep.issue == LENSNET_CUTOUT_EMPTY &&
        strstr(err.message, "empty"), "empty: %s", err.message);
  CHECK(lensnet_cutout_prepare(m, &d, image, 1, 4, 4, out, &rep, &err) == LENSNET_ERR_SHAPE &&
        rep.issue == LENSNET_CUTOUT_TOO_FEW_BANDS, "too few bands: %s", err.message);
  CHECK(lensnet_cutout_prepare(m, &d, image, 2, 8, 8, out, &rep, &err) == LENSNET_ERR_SHAPE && rep.issue == LENSNET_CUTOUT_SIZE &&
        strstr(err.message, "8x8") && strstr(err.message, "4x4"), "another size: %s", err.message);
  d.size = LENSNET_SIZE_CROP;
  CHECK(lensnet_cutout_prepare(m, &d, image, 2, 3, 8, out, &rep, &err) == LENSNET_ERR_SHAPE &&
        rep.issue == LENSNET_CUTOUT_CROP_TOO_SMALL, "crop of a smaller image: %s", err.message);
  d.size = LENSNET_SIZE_EXACT;
  d.channels = one;
  d.channel_count = 1;
  CHECK(lensnet_cutout_prepare(m, &d, image, 3, 4, 4, out, &rep, &err) == LENSNET_ERR_ARG && rep.issue == LENSNET_CUTOUT_CHANNEL_COUNT,
        "a channel list of the wrong length: %s", err.message);
  d.channels = far;
  d.channel_count = 2;
  CHECK(lensnet_cutout_prepare(m, &d, image, 3, 4, 4, out, &rep, &err) == LENSNET_ERR_ARG &&
        rep.issue == LENSNET_CUTOUT_CHANNEL_MISSING && strstr(err.message, "band 5"), "a band the image lacks: %s", err.message);
  lensnet_model_free(m);
}

static void test_channels_parse(void) {
  size_t ch[4], n = 99;
  lensnet_error err;
  CHECK(lensnet_channels_parse("0,2,3", ch, 4, &n, &err) == LENSNET_OK && n == 3 && ch[0] == 0 && ch[1] == 2 && ch[2] == 3, "0,2,3");
  CHECK(lensnet_channels_parse("", ch, 4, &n, &err) == LENSNET_ERR_ARG && n == 0, "empty");
  CHECK(lensnet_channels_parse("1,x", ch, 4, &n, &err) == LENSNET_ERR_ARG, "not a number");
  CHECK(lensnet_channels_parse("-1", ch, 4, &n, &err) == LENSNET_ERR_ARG, "negative");
  CHECK(lensnet_channels_parse("4097", ch, 4, &n, &err) == LENSNET_ERR_ARG, "beyond 4096");
  CHECK(lensnet_channels_parse("0,1,2,3,4", ch, 4, &n, &err) == LENSNET_ERR_ARG, "more than cap");
}

/* ---- classes and p(lens) ---------------------------------------------------------------- */

static size_t class_of(const char *classes, size_t outputs, const char *name) {
  lensnet_model *m = tiny_model(1, 2, outputs, classes);
  size_t k = 999;
  lensnet_error err;
  if (!m) return k;
  if (lensnet_model_class_index(m, name, &k, &err) != LENSNET_OK) k = 998;
  lensnet_model_free(m);
  return k;
}

static void test_classes(void) {
  lensnet_model *m = tiny_model(1, 2, 3, "non-lens, lens ,other-name-that-is-long");
  char name[8];
  lensnet_error err;
  CHECK(class_of(NULL, 2, "lens") == 1, "no metadata: the last output");
  CHECK(class_of("non-lens,lens", 2, "lens") == 1 && class_of("lens,non-lens", 2, "lens") == 0, "from the metadata");
  CHECK(class_of("a,b,c,d,e,f,g,lens", 2, "lens") == 1, "named beyond the outputs: the last output");
  CHECK(class_of("a,b", 2, "lens") == 1 && class_of("lenses,b,c", 3, "lens") == 2, "not named (whole names only): the last output");
  CHECK(class_of("a, lens ,c", 3, "lens") == 1, "blanks around names are ignored");
  if (!m) return;
  CHECK(lensnet_model_class_name(m, 1, name, sizeof name, &err) == LENSNET_OK && !strcmp(name, "lens"), "name of output 1: '%s'", name);
  lensnet_model_class_name(m, 2, name, sizeof name, &err);
  CHECK(!strcmp(name, "other-n"), "cut to the buffer: '%s'", name);
  lensnet_model_set_meta(m, "classes", "x");
  lensnet_model_class_name(m, 2, name, sizeof name, &err);
  CHECK(!strcmp(name, "2"), "no entry: the number ('%s')", name);
  CHECK(lensnet_model_class_name(m, 3, name, sizeof name, &err) == LENSNET_ERR_ARG, "not an output");
  lensnet_model_free(m);
}

static void test_bands_and_pixel_scale(void) {
  lensnet_model *m = tiny_model(4, 2, 2, NULL);
  char name[6];
  double scale = -1.0;
  lensnet_error err;
  if (!m) return;
  CHECK(lensnet_model_band_name(m, 3, name, sizeof name, &err) == LENSNET_OK && !strcmp(name, "band "), "no band_names: 'band 3' cut to 5 bytes ('%s')", name);
  lensnet_model_set_meta(m, "band_names", "J, Y ,H,VIS");
  CHECK(lensnet_model_band_name(m, 1, name, sizeof name, &err) == LENSNET_OK && !strcmp(name, "Y"), "entry 1, blanks trimmed: '%s'", name);
  CHECK(lensnet_model_band_name(m, 3, name, sizeof name, &err) == LENSNET_OK && !strcmp(name, "VIS"), "entry 3: '%s'", name);
  CHECK(lensnet_model_band_name(m, 4, name, sizeof name, &err) == LENSNET_ERR_ARG && strstr(err.message, "band 4"), "not a band: %s", err.message);
  lensnet_model_set_meta(m, "band_names", "J,,H");
  lensnet_model_band_name(m, 1, name, sizeof name, &err);
  CHECK(!strcmp(name, "band "), "an empty entry: the number ('%s')", name);
  CHECK(lensnet_model_pixel_scale(m, &scale, &err) == LENSNET_OK && scale == 0.0, "no pixel_scale: 0");
  lensnet_model_set_meta(m, "pixel_scale", "0.3");
  CHECK(lensnet_model_pixel_scale(m, &scale, &err) == LENSNET_OK && scale == 0.3, "pixel_scale 0.3: %g", scale);
  lensnet_model_set_meta(m, "pixel_scale", "-1");
  CHECK(lensnet_model_pixel_scale(m, &scale, &err) == LENSNET_ERR_FORMAT && scale == 0.0 && strstr(err.message, "'-1'"), "%s", err.message);
  lensnet_model_set_meta(m, "pixel_scale", "0.1 arcsec");
  CHECK(lensnet_model_pixel_scale(m, &scale, &err) == LENSNET_ERR_FORMAT, "a unit after the number is refused");
  lensnet_model_free(m);
}

static void test_lens_probability(void) {
  float two[2] = {0.3f, 1.7f}, big[3] = {1000.0f, -1000.0f, 999.0f}, one[1] = {-2.0f};
  double p = lensnet_lens_probability(two, 2, 1), sum;
  CHECK(fabs(p - 1.0 / (1.0 + exp((double)two[0] - (double)two[1]))) < 1e-12, "two outputs: the sigmoid of the difference (%.15g)", p);
  sum = lensnet_lens_probability(big, 3, 0) + lensnet_lens_probability(big, 3, 1) + lensnet_lens_probability(big, 3, 2);
  CHECK(fabs(sum - 1.0) < 1e-12 && fabs(lensnet_lens_probability(big, 3, 0) - 1.0 / (1.0 + exp(-1.0))) < 1e-12,
        "logits of 1000 do not overflow (sum %.15g)", sum);
  CHECK(fabs(lensnet_lens_probability(one, 1, 0) - 1.0 / (1.0 + exp(2.0))) < 1e-15, "one output: its sigmoid");
  p = lensnet_lens_probability(two, 2, 2);
  CHECK(p != p, "a class beyond the outputs gives NaN");
}

/* ---- label columns ---------------------------------------------------------------------- */

static long label_col(const char *header) {
  size_t c;
  return lensnet_csv_label_column(header, &c, NULL) == LENSNET_OK ? (long)c : -1;
}

static void test_label_columns(void) {
  size_t c = 0;
  lensnet_error err;
  CHECK(label_col("index,label,kind,theta_E") == 1, "label (lens sim's labels.csv)");
  CHECK(label_col("is_lens,class,label") == 2, "label before class before is_lens, wherever they stand");
  CHECK(label_col("is_lens , class\r\n") == 1 && label_col("x,is_lens") == 1, "class, then is_lens; blanks and line ends ignored");
  CHECK(label_col("y\n") == 0, "a one-column header: that column");
  CHECK(lensnet_csv_label_column("a,b", &c, &err) == LENSNET_ERR_FORMAT && strstr(err.message, "label, class or is_lens"), "%s", err.message);
  CHECK(label_col("") == -1 && label_col(" \n") == -1, "an empty header has no label column");
  CHECK(lensnet_csv_column("input,p_lens,logit_lens", "p_lens", &c, &err) == LENSNET_OK && c == 1, "a named column");
  CHECK(lensnet_csv_column("input,p_lens", "score", &c, &err) == LENSNET_ERR_ARG, "a missing column: %s", err.message);
}

/* The scaling a model's metadata asks for: preprocess=minmax|none, else the older train.minmax=1. */
static void test_model_preprocess(void) {
  static const struct { const char *preprocess, *legacy; lensnet_result result; int minmax; const char *key; } cases[] = {
    {NULL, NULL, LENSNET_OK, 0, NULL},
    {"minmax", NULL, LENSNET_OK, 1, "preprocess"},
    {"none", "1", LENSNET_OK, 0, "preprocess"},     /* preprocess wins over the older key */
    {NULL, "1", LENSNET_OK, 1, "train.minmax"},
    {NULL, "0", LENSNET_OK, 0, NULL},
    {"zscore", NULL, LENSNET_ERR_FORMAT, 0, NULL},
  };
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    lensnet_model *m = tiny_model(1, 4, 2, NULL);
    lensnet_error err;
    const char *key = "unset";
    int minmax = -1;
    lensnet_result r;
    if (!m) return;
    if (cases[i].preprocess) lensnet_model_set_meta(m, "preprocess", cases[i].preprocess);
    if (cases[i].legacy) lensnet_model_set_meta(m, "train.minmax", cases[i].legacy);
    r = lensnet_model_preprocess(m, &minmax, &key, &err);
    CHECK(r == cases[i].result, "case %lu: result %d", (unsigned long)i, (int)r);
    CHECK(minmax == cases[i].minmax, "case %lu: minmax %d, expected %d", (unsigned long)i, minmax, cases[i].minmax);
    CHECK(r != LENSNET_OK || (key == NULL) == (cases[i].key == NULL), "case %lu: key %s", (unsigned long)i, key ? key : "none");
    CHECK(r != LENSNET_OK || !key || !strcmp(key, cases[i].key), "case %lu: key %s, expected %s", (unsigned long)i, key, cases[i].key);
    CHECK(r == LENSNET_OK || strstr(err.message, "zscore"), "case %lu: the message names the value: %s", (unsigned long)i, err.message);
    lensnet_model_free(m);
  }
}

/* lensnet_cutout_score on the released OU-66 and the reference inputs (tests/data/wilde2022,
 * 4 x 66 x 66, no scaling: how the references were made): PyTorch's logits, and the softmax of
 * them as P(lens); a refused cutout says why in the report. */
static void test_cutout_score(void) {
  lensnet_model *m = NULL;
  lensnet_tensor in, ref;
  lensnet_error err;
  lensnet_cutout_report rep;
  float prepared[4 * 66 * 66], logits[2];
  size_t k, n;
  double p, worst = 0.0, worst_p = 0.0;
  if (lensnet_model_load("weights/OU_66.safetensors", &m, &err) != LENSNET_OK ||
      lensnet_npy_read("tests/data/wilde2022/inputs_66.npy", &in, &err) != LENSNET_OK ||
      lensnet_npy_read("tests/data/wilde2022/logits_OU_66.npy", &ref, &err) != LENSNET_OK) {
    CHECK(0, "inputs: %s", err.message);
    lensnet_model_free(m);
    return;
  }
  n = in.shape[0];
  for (k = 0; k < n; k++) {
    const float *want = ref.data + 2 * k;
    double e0, e1, pw;
    CHECK(lensnet_cutout_score(m, NULL, in.data + k * 4 * 66 * 66, 4, 66, 66, prepared, NULL, logits, &p, &rep, &err) == LENSNET_OK,
          "image %lu: %s", (unsigned long)k, err.message);
    e0 = fabs(logits[0] - want[0]); e1 = fabs(logits[1] - want[1]);
    if (e0 > worst) worst = e0;
    if (e1 > worst) worst = e1;
    pw = 1.0 / (1.0 + exp((double)want[0] - (double)want[1])); /* softmax of PyTorch's logits, class 1 = lens */
    if (fabs(p - pw) > worst_p) worst_p = fabs(p - pw);
  }
  CHECK(worst <= 1e-4, "logits within 1e-4 of PyTorch's (largest difference %g)", worst);
  CHECK(worst_p <= 1e-5, "P(lens) within 1e-5 of the softmax of PyTorch's logits (largest difference %g)", worst_p);
  CHECK(lensnet_cutout_score(m, NULL, in.data, 4, 60, 60, prepared, NULL, logits, &p, &rep, &err) == LENSNET_ERR_SHAPE &&
            rep.issue == LENSNET_CUTOUT_SIZE, "a 60 x 60 cutout without a size fit is refused (%s)", err.message);
  CHECK(lensnet_cutout_score(m, NULL, in.data, 4, 66, 66, NULL, NULL, logits, &p, &rep, &err) == LENSNET_ERR_ARG, "no buffer: refused");
  lensnet_tensor_free(&in);
  lensnet_tensor_free(&ref);
  lensnet_model_free(m);
}

int main(void) {
  TEST("cutouts: band selection, exact size, resize, crop") test_cutout_selection_and_fit();
  TEST("cutouts: min-max and non-finite pixels") test_cutout_minmax_and_nonfinite();
  TEST("cutouts: placed, then scaled") test_cutout_halves();
  TEST("cutouts: resizing around blank pixels") test_cutout_resize_blanks();
  TEST("image dimensions of a tensor: [H, W], [C, H, W], [1, C, H, W]") test_image_dims();
  TEST("non-finite pixels: how many and the first") test_count_nonfinite();
  TEST("a plane that holds no image") test_plane_empty();
  TEST("cutouts: refusals name the problem") test_cutout_refusals();
  TEST("channel lists: 0,2,3 and what is refused") test_channels_parse();
  TEST("class lookup from the 'classes' metadata, with the last output as fallback") test_classes();
  TEST("band names and pixel scale from the metadata") test_bands_and_pixel_scale();
  TEST("p(lens): a stable softmax") test_lens_probability();
  TEST("a cutout scored in one call: OU-66 against PyTorch") test_cutout_score();
  TEST("the scaling a model's metadata asks for") test_model_preprocess();
  TEST("label column of labels.csv: label, class, is_lens") test_label_columns();
  return check_summary();
}
