/* lensviz.h: every method's properties on small models, where maps lie on the image (receptive
 * fields and occlusion patches, drawn as blocks about their centres), the pictures (colour maps,
 * font, composites, scale bars, curves), the PNG and GIF writers (decoded again with
 * stb_image.h) and a golden hash of one rendered panel. The maps of the released finders of
 * Wilde et al. 2022 are compared with PyTorch's in tests/test_wilde2022.c; `lens explain` and
 * `lens plot` are tested end to end in tests/test_cli_explain.c and tests/test_cli_plot.c. */
#define LENSNET_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define LENSVIZ_IMPLEMENTATION
#include "lensviz.h"
#include "check.h"
#include <string.h>

#include "decode_image.h"

static char path[1024];

/* PyTorch's inputs and maps, in tests/data/wilde2022 */
static const char *ref_path(const char *name) {
  snprintf(path, sizeof path, "%s/wilde2022/%s", check_data_dir(), name);
  return path;
}

/* the released finders themselves, in weights/ */
static const char *weights_path(const char *model) {
  snprintf(path, sizeof path, "weights/%s.safetensors", model);
  return path;
}

/* A small model: conv, tanh, conv, relu (or tanh), global pool, dense: every method runs on it
 * in milliseconds. Layer 3 is the last spatial layer (8x8), layer 6 the dense output. */
static lensnet_model *small_model(int smooth, uint64_t seed) {
  char arch[512];
  lensnet_model *m = NULL;
  lensnet_error err;
  snprintf(arch, sizeof arch,
           "input 2 10 10\nconv2d name=c1 out=3 kernel=3 padding=1\ntanh\nconv2d name=c2 out=4 kernel=3\n%s\n"
           "global_avgpool\nflatten\ndense name=fc out=2\n", smooth ? "tanh" : "relu");
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { printf("small model: %s\n", err.message); return NULL; }
  lensnet_model_init(m, seed);
  return m;
}

static void small_image(float *x, uint64_t seed) {
  lensnet_rng rng;
  size_t i;
  lensnet_rng_seed(&rng, seed);
  for (i = 0; i < 200; i++) x[i] = lensnet_rng_uniform(&rng);
}

static float logit(const lensnet_model *m, const float *x, int k) {
  float out[8];
  lensnet_error err;
  lensnet_model_forward(m, 1, x, out, NULL, &err);
  return out[k];
}

/* ---- methods on small models -------------------------------------------------------------- */

/* A parallel-for that runs the items backwards, as if by three workers, to show the map does
 * not depend on the order or the worker. */
static void reverse_run(void *user, size_t count, lensnet_task_fn task, void *ctx) {
  size_t i;
  (void)user;
  for (i = count; i-- > 0;) task(ctx, i, i % 3);
}

static void capture_first(void *user, size_t iteration, const float *image, size_t c, size_t h, size_t w) {
  float *keep = (float *)user;
  if (iteration == 1) memcpy(keep, image, c * h * w * sizeof(float));
}

static const float xs_map[4] = {0.0f, 1.0f, 2.0f, 3.0f};

static void test_methods(void) {
  lensnet_model *relu = small_model(0, 11), *smooth = small_model(1, 12);
  lensnet_error err;
  float x[200], g[200], g2[200], fd, base_x[200];
  size_t i;
  if (!relu || !smooth) { CHECK(0, "small models"); return; }
  small_image(x, 5);

  TEST("saliency matches central differences on a smooth model") {
    double worst = 0.0;
    CHECK(lensviz_saliency(smooth, x, 1, NULL, g, &err) == LENSNET_OK, "%s", err.message);
    for (i = 0; i < 200; i += 13) {
      float keep = x[i], h = 1e-2f;
      double e;
      x[i] = keep + h; fd = logit(smooth, x, 1);
      x[i] = keep - h; fd -= logit(smooth, x, 1);
      x[i] = keep;
      fd /= 2 * h;
      e = fabs(fd - g[i]);
      if (e > worst) worst = e;
    }
    CHECK(worst < 1e-3, "saliency vs finite differences: %g", worst);
  }
  TEST("guided backprop equals saliency without ReLUs, and target -1 is the last output") {
    CHECK(lensviz_guided_backprop(smooth, x, -1, NULL, g2, &err) == LENSNET_OK, "%s", err.message);
    CHECK(!memcmp(g, g2, sizeof g), "guided backprop of a ReLU-free model is its gradient");
    CHECK(lensviz_saliency(smooth, x, 2, NULL, g, &err) == LENSNET_ERR_ARG && strstr(err.message, "2 outputs"), "%s", err.message);
  }
  TEST("Grad-CAM before a global pool and a dense layer is the CAM of Zhou et al. 2016") {
    float cam[64], act[4 * 64], expect[64];
    const lensnet_param *W = lensnet_model_param(relu, "fc.weight");
    lensnet_model *cut = NULL;
    size_t c = 0, h = 0, w = 0, k, p;
    double worst = 0.0;
    CHECK(lensviz_layer_shape(relu, 3, &c, &h, &w, &err) == LENSNET_OK && c == 4 && h == 8 && w == 8, "layer 3 is 4x8x8");
    CHECK(lensviz_gradcam(relu, x, 1, 3, NULL, cam, &err) == LENSNET_OK, "%s", err.message);
    CHECK(lensviz_model_cut(relu, 3, 0, 0, &cut, &err) == LENSNET_OK, "%s", err.message);
    if (cut && W) {
      lensnet_model_forward(cut, 1, x, act, NULL, &err);
      for (p = 0; p < 64; p++) {
        double s = 0.0;
        for (k = 0; k < 4; k++) s += relu->values[W->offset + 1 * 4 + k] / 64.0 * act[k * 64 + p];
        expect[p] = s > 0 ? (float)s : 0.0f;
        if (fabs(expect[p] - cam[p]) > worst) worst = fabs(expect[p] - cam[p]);
      }
      CHECK(worst < 1e-6, "Grad-CAM vs sum_k w_k A_k / 64: %g", worst);
    }
    lensnet_model_free(cut);
    CHECK(lensviz_gradcam(relu, x, 1, 99, NULL, cam, &err) == LENSNET_ERR_ARG, "layer 99 is refused");
    /* layers 5-7 (global pool, flatten, dense) have no place on the image */
    for (k = 5; k < 8; k++)
      CHECK(lensviz_gradcam(relu, x, 1, k, NULL, cam, &err) != LENSNET_OK, "Grad-CAM at layer %lu (after the convolutions) is refused: %s",
            (unsigned long)k, err.message);
  }
  TEST("bad targets and NULL buffers are refused, naming the problem") {
    float cam[64], map[200];
    CHECK(lensviz_gradcam(relu, x, -2, 3, NULL, cam, &err) == LENSNET_ERR_ARG && strstr(err.message, "target -2"), "target -2: %s", err.message);
    CHECK(lensviz_saliency(relu, x, -7, NULL, g, &err) == LENSNET_ERR_ARG && strstr(err.message, "-1 for the lens class"), "target -7: %s",
          err.message);
    CHECK(lensviz_gradcam(relu, NULL, 1, 3, NULL, cam, &err) == LENSNET_ERR_ARG && strstr(err.message, "NULL"), "no image: %s", err.message);
    CHECK(lensviz_gradcam(relu, x, 1, 3, NULL, NULL, &err) == LENSNET_ERR_ARG, "no map: %s", err.message);
    CHECK(lensviz_occlusion(relu, NULL, 1, NULL, map, NULL, &err) == LENSNET_ERR_ARG, "occlusion without an image: %s", err.message);
    CHECK(lensviz_saliency(relu, x, 1, NULL, NULL, &err) == LENSNET_ERR_ARG, "saliency without a map: %s", err.message);
    CHECK(lensviz_smoothgrad(relu, NULL, 1, NULL, g, &err) == LENSNET_ERR_ARG, "SmoothGrad without an image: %s", err.message);
    CHECK(lensviz_guided_gradcam(relu, x, 1, 3, NULL, NULL, &err) == LENSNET_ERR_ARG, "guided Grad-CAM without a map: %s", err.message);
    CHECK(lensviz_filter_image(relu, 3, 9, NULL, map, &err) == LENSNET_ERR_ARG && strstr(err.message, "there is no channel 9"),
          "a channel past the end: %s", err.message);
    { /* a non-finite pixel and settings that would become defaults or pin the pixels: refused, naming them */
      float keep = x[57], one[200];
      double base = 0.0;
      lensviz_desc d;
      x[57] = NAN;
      CHECK(lensviz_saliency(relu, x, 1, NULL, g, &err) == LENSNET_ERR_ARG && strstr(err.message, "1 non-finite pixel"),
            "saliency of an image with a NaN pixel: %s", err.message);
      CHECK(lensviz_gradcam(relu, x, 1, 3, NULL, cam, &err) == LENSNET_ERR_ARG && strstr(err.message, "non-finite"), "Grad-CAM: %s", err.message);
      CHECK(lensviz_occlusion(relu, x, 1, NULL, map, &base, &err) == LENSNET_ERR_ARG && strstr(err.message, "non-finite"), "occlusion: %s",
            err.message);
      CHECK(lensviz_integrated_gradients(relu, x, 1, NULL, g, &err) == LENSNET_ERR_ARG, "integrated gradients: %s", err.message);
      CHECK(lensviz_channel_means(relu, x, 3, one, &err) == LENSNET_ERR_ARG, "channel means: %s", err.message);
      x[57] = INFINITY;
      CHECK(lensviz_smoothgrad(relu, x, 1, NULL, g, &err) == LENSNET_ERR_ARG && strstr(err.message, "non-finite"), "an infinite pixel: %s",
            err.message);
      x[57] = keep;
      memset(&d, 0, sizeof d);
      d.lo = 1.0f; d.hi = 0.0f;
      CHECK(lensviz_class_image(relu, 1, &d, one, &err) == LENSNET_ERR_ARG && strstr(err.message, "lo 1 is above hi 0"), "lo > hi: %s",
            err.message);
      memset(&d, 0, sizeof d);
      d.noise = NAN;
      CHECK(lensviz_smoothgrad(relu, x, 1, &d, g, &err) == LENSNET_ERR_ARG && strstr(err.message, "noise"), "NaN noise: %s", err.message);
      memset(&d, 0, sizeof d);
      d.step = -0.5f;
      CHECK(lensviz_dream(relu, 3, &d, one, &err) == LENSNET_ERR_ARG && strstr(err.message, "step is -0.5"), "a negative step: %s",
            err.message);
      memset(&d, 0, sizeof d);
      d.fill = NAN;
      CHECK(lensviz_occlusion(relu, x, 1, &d, map, &base, &err) == LENSNET_ERR_ARG && strstr(err.message, "fill"), "NaN fill: %s", err.message);
      memset(&d, 0, sizeof d);
      d.fill = -3.0f; /* a negative fill is a value like any other */
      CHECK(lensviz_occlusion(relu, x, 1, &d, map, &base, &err) == LENSNET_OK, "a negative fill: %s", err.message);
    }
    {
      lensviz_image none;
      memset(&none, 0, sizeof none);
      none.width = none.height = 4; /* a size, but no pixels */
      CHECK(lensviz_png_write("build/viz_none.png", &none, &err) == LENSNET_ERR_ARG && !check_file_exists("build/viz_none.png"),
            "a picture without pixels is refused: %s", err.message);
      CHECK(lensviz_png_write(NULL, &none, &err) == LENSNET_ERR_ARG, "no path: %s", err.message);
    }
    { /* NULL models, pictures and frames: named errors or nothing drawn, never a crash */
      lensviz_image img, frames[2];
      lensnet_model *cut = NULL;
      size_t layer = 0;
      float lo = 1.0f, hi = 2.0f;
      unsigned char *gif = NULL;
      size_t len = 0;
      CHECK(lensviz_default_layer(NULL, LENSVIZ_LAYER_FOR_GRADCAM, &layer, &err) == LENSNET_ERR_ARG, "default layer of no model: %s", err.message);
      CHECK(lensviz_model_cut(NULL, 1, 0, 0, &cut, &err) == LENSNET_ERR_ARG && !cut && strstr(err.message, "no model"), "cut of no model: %s",
            err.message);
      CHECK(lensviz_image_alloc(NULL, 2, 2, &err) == LENSNET_ERR_ARG, "alloc into NULL: %s", err.message);
      CHECK(lensviz_image_alloc(&img, 0, 0, &err) == LENSNET_ERR_ARG && strstr(err.message, "empty"), "a 0x0 picture: %s", err.message);
      CHECK(lensviz_gif_write("build/viz_null.gif", NULL, 3, 5, &err) == LENSNET_ERR_ARG && !check_file_exists("build/viz_null.gif"),
            "a GIF of NULL frames: %s", err.message);
      memset(frames, 0, sizeof frames);
      frames[0].width = frames[0].height = frames[1].width = frames[1].height = 2;
      CHECK(lensviz_gif_encode(frames, 2, 5, &gif, &len, &err) == LENSNET_ERR_ARG && !gif && strstr(err.message, "no pixels"),
            "GIF frames without pixels: %s", err.message);
      lensviz_map_range(NULL, 4, 1, &lo, &hi);
      CHECK(lo == 0.0f && hi == 0.0f, "the range of no map: [%g, %g]", lo, hi);
      lensviz_fill(NULL, lensviz_rgb(1, 2, 3));
      lensviz_fill(&frames[0], lensviz_rgb(1, 2, 3)); /* a size but no pixels */
      if (lensviz_image_alloc(&img, 4, 2, &err) == LENSNET_OK) {
        lensviz_image narrow = img;
        lensviz_render_map(NULL, 2, 2, LENSVIZ_CMAP_VIRIDIS, 0, 0, 0, &img);
        lensviz_render_map(xs_map, 2, 2, LENSVIZ_CMAP_VIRIDIS, 0, 0, 0, NULL);
        CHECK(img.rgb[0] == 0, "no map drawn from NULL");
        narrow.stride = 6; /* rows of 2 pixels for a width of 4 */
        CHECK(lensviz_png_write("build/viz_narrow.png", &narrow, &err) == LENSNET_ERR_ARG && strstr(err.message, "stride") &&
                  !check_file_exists("build/viz_narrow.png"),
              "rows shorter than the width: %s", err.message);
        frames[0] = narrow;
        CHECK(lensviz_gif_encode(frames, 1, 5, &gif, &len, &err) == LENSNET_ERR_ARG && strstr(err.message, "stride"), "a GIF of them: %s",
              err.message);
        lensviz_image_free(&img);
      }
    }
  }
  TEST("guided Grad-CAM is guided backprop times the Grad-CAM map placed on its cells' centres") {
    /* layer 3's 8x8 cells: the padded first convolution keeps offset 0, the unpadded second one
     * moves it to 1, so cell k is centred on pixel k + 1 of 0..9; pixels 0 and 9 lie beyond the
     * cells and take the nearest cell's value (bilinear between centres 1 pixel apart is exact) */
    float cam[64], up[100], ggc[200], gb[200];
    double worst = 0.0, largest = 0.0;
    size_t k, y, xx;
    int target;
    for (target = 0; target < 2 && largest == 0.0; target++) {
      CHECK(lensviz_guided_gradcam(relu, x, target, 3, NULL, ggc, &err) == LENSNET_OK, "%s", err.message);
      lensviz_gradcam(relu, x, target, 3, NULL, cam, &err);
      lensviz_guided_backprop(relu, x, target, NULL, gb, &err);
      for (y = 0; y < 10; y++)
        for (xx = 0; xx < 10; xx++) up[y * 10 + xx] = cam[(y == 0 ? 0 : y == 9 ? 7 : y - 1) * 8 + (xx == 0 ? 0 : xx == 9 ? 7 : xx - 1)];
      for (k = 0; k < 200; k++) {
        /* the float product, as the library stores it (with FLT_EVAL_METHOD 1, s390x under
         * -std=c99, gb * up alone keeps double precision) */
        double e = fabs((float)(gb[k] * up[k % 100]) - ggc[k]);
        if (e > worst) worst = e;
        if (fabs(ggc[k]) > largest) largest = fabs(ggc[k]);
      }
    }
    CHECK(largest > 0.0, "a target with a nonzero map");
    CHECK(worst == 0.0, "guided Grad-CAM: %g", worst);
  }
  TEST("integrated gradients add up to f(x) - f(baseline) (completeness)") {
    lensviz_desc d;
    float baseline[200], sum = 0.0f, delta;
    memset(&d, 0, sizeof d);
    for (i = 0; i < 200; i++) baseline[i] = 0.25f;
    d.steps = 400;
    d.baseline = baseline;
    d.batch = 7; /* a batch that does not divide the steps */
    CHECK(lensviz_integrated_gradients(smooth, x, 1, &d, g, &err) == LENSNET_OK, "%s", err.message);
    for (i = 0; i < 200; i++) sum += g[i];
    delta = logit(smooth, x, 1) - logit(smooth, baseline, 1);
    printf("   sum of attributions %.6f, f(x) - f(x') %.6f\n", sum, delta);
    CHECK(fabsf(sum - delta) <= 0.01f * fabsf(delta), "completeness within 1%% with 400 right Riemann steps");
  }
  TEST("SmoothGrad with vanishing noise is the saliency; the same seed repeats, the batch size does not matter") {
    lensviz_desc d;
    float sg[200], sg2[200];
    memset(&d, 0, sizeof d);
    d.noise = 1e-7f;
    d.samples = 5;
    CHECK(lensviz_smoothgrad(smooth, x, 1, &d, sg, &err) == LENSNET_OK, "%s", err.message);
    lensviz_saliency(smooth, x, 1, NULL, g, &err);
    CHECK(check_rel_diff(sg, g, 200) < 1e-4, "SmoothGrad(noise -> 0) vs saliency: %g", check_rel_diff(sg, g, 200));
    d.noise = 0.2f;
    d.seed = 3;
    d.batch = 2;
    lensviz_smoothgrad(relu, x, 1, &d, sg, &err);
    d.batch = 5;
    lensviz_smoothgrad(relu, x, 1, &d, sg2, &err);
    CHECK(check_rel_diff(sg, sg2, 200) < 1e-5, "batch 2 vs 5: %g", check_rel_diff(sg, sg2, 200));
  }
  TEST("occlusion equals patch-by-patch forward passes; whole patches only; any order of batches") {
    lensviz_desc d;
    lensnet_parallel par;
    size_t rows = 0, cols = 0, r, c, k, y, xx;
    float map[9], map2[9], occluded[200], out[2], base_out[2];
    double base = 0.0, worst = 0.0;
    memset(&d, 0, sizeof d);
    d.patch = 3; d.stride = 3; d.fill = 0.25f; d.batch = 2;
    lensviz_occlusion_size(relu, &d, &rows, &cols);
    CHECK(rows == 3 && cols == 3, "10 pixels, patch 3, stride 3: floor(7 / 3) + 1 = 3 positions (got %lux%lu)", (unsigned long)rows, (unsigned long)cols);
    CHECK(lensviz_occlusion(relu, x, 1, &d, map, &base, &err) == LENSNET_OK, "%s", err.message);
    lensnet_model_forward(relu, 1, x, base_out, NULL, &err);
    CHECK(fabs(base - lensnet_lens_probability(base_out, 2, 1)) < 1e-7, "base probability");
    for (r = 0; r < 3; r++)
      for (c = 0; c < 3; c++) {
        memcpy(occluded, x, sizeof occluded);
        for (k = 0; k < 2; k++)
          for (y = r * 3; y < r * 3 + 3; y++)
            for (xx = c * 3; xx < c * 3 + 3; xx++) occluded[k * 100 + y * 10 + xx] = 0.25f;
        lensnet_model_forward(relu, 1, occluded, out, NULL, &err);
        if (fabs(lensnet_lens_probability(out, 2, 1) - base - map[r * 3 + c]) > worst) worst = fabs(lensnet_lens_probability(out, 2, 1) - base - map[r * 3 + c]);
      }
    CHECK(worst < 1e-6, "occlusion vs direct: %g", worst);
    par.run = reverse_run; par.user = NULL; par.workers = 3;
    d.parallel = &par;
    CHECK(lensviz_occlusion(relu, x, 1, &d, map2, NULL, &err) == LENSNET_OK, "%s", err.message);
    CHECK(!memcmp(map, map2, sizeof map), "three workers, reversed order: the same map");
    {
      size_t cells[2] = {4, 8};
      for (k = 0; k < 9; k++) map2[k] = 99.0f;
      d.cells = cells; d.cell_count = 2;
      CHECK(lensviz_occlusion(relu, x, 1, &d, map2, NULL, &err) == LENSNET_OK, "%s", err.message);
      CHECK(map2[4] == map[4] && map2[8] == map[8] && map2[0] == 99.0f && map2[7] == 99.0f, "cells: only the asked ones written");
      cells[1] = 9;
      CHECK(lensviz_occlusion(relu, x, 1, &d, map2, NULL, &err) == LENSNET_ERR_ARG, "cell 9 of a 3x3 grid is refused");
    }
    d.cells = NULL; d.patch = 11;
    CHECK(lensviz_occlusion(relu, x, 1, &d, map2, NULL, &err) == LENSNET_ERR_ARG && strstr(err.message, "does not fit"), "%s", err.message);
  }
  TEST("occlusion through strided and padded convolutions, pools, batch norm and activations") {
    /* every layer kind that occlusion recomputes by rectangles, against whole forward passes */
    static const char arch[] =
      "input 3 13 13\nconv2d name=a out=6 kernel=3 stride=2 padding=1\nbatchnorm name=bn\nleaky_relu slope=0.1\n"
      "conv2d name=g out=6 kernel=3 padding=1 groups=2\ngelu\nmaxpool kernel=3 stride=2 padding=1\nsigmoid\n"
      "avgpool kernel=2\ntanh\ndropout p=0.5\nflatten\ndense name=fc out=3\n";
    lensnet_model *mm = NULL;
    lensviz_desc d;
    float img[3 * 169], occluded[3 * 169], map[64], out[3];
    double base = 0.0, worst = 0.0, p0;
    size_t rows = 0, cols = 0, r, c, k, y, xx;
    CHECK(lensnet_model_create(arch, &mm, &err) == LENSNET_OK, "%s", err.message);
    if (mm) {
      const lensnet_param *mean = lensnet_model_param(mm, "bn.running_mean"), *var = lensnet_model_param(mm, "bn.running_var");
      lensnet_rng rng;
      lensnet_model_init(mm, 4);
      for (k = 0; k < 6; k++) { mm->values[mean->offset + k] = 0.1f * (float)k; mm->values[var->offset + k] = 0.5f + 0.2f * (float)k; }
      lensnet_rng_seed(&rng, 8);
      for (k = 0; k < 3 * 169; k++) img[k] = lensnet_rng_uniform(&rng);
      memset(&d, 0, sizeof d);
      d.patch = 2; d.stride = 3; d.fill = -0.5f;
      lensviz_occlusion_size(mm, &d, &rows, &cols);
      CHECK(rows == 4 && cols == 4, "13 pixels, patch 2, stride 3: floor(11 / 3) + 1 = 4 (got %lu)", (unsigned long)rows);
      CHECK(lensviz_occlusion(mm, img, 2, &d, map, &base, &err) == LENSNET_OK, "%s", err.message);
      lensnet_model_forward(mm, 1, img, out, NULL, &err);
      p0 = lensnet_lens_probability(out, 3, 2);
      CHECK(fabs(p0 - base) < 1e-6, "base probability %g vs %g", base, p0);
      for (r = 0; r < rows; r++)
        for (c = 0; c < cols; c++) {
          memcpy(occluded, img, sizeof occluded);
          for (k = 0; k < 3; k++)
            for (y = r * 3; y < r * 3 + 2; y++)
              for (xx = c * 3; xx < c * 3 + 2; xx++) occluded[k * 169 + y * 13 + xx] = -0.5f;
          lensnet_model_forward(mm, 1, occluded, out, NULL, &err);
          if (fabs(lensnet_lens_probability(out, 3, 2) - p0 - map[r * cols + c]) > worst) worst = fabs(lensnet_lens_probability(out, 3, 2) - p0 - map[r * cols + c]);
        }
      CHECK(worst < 1e-6, "occlusion vs whole forward passes: %g", worst);
      lensnet_model_free(mm);
    }
  }
  TEST("occlusion of a model whose architecture text has ';' in its comments; desc.output_value maps the output itself") {
    /* lensnet's parser runs a comment to the end of the line, ';' included: the slice of the
     * layers after the local ones must read the text alike (a comment's ';' once shifted the
     * slice by a layer and the tail wrote past its buffer); a regression model's prediction is
     * mapped as the change of the output, not of a softmax probability */
    static const char arch[] =
      "# a network for the test; its comments hold ';' as the shipped ensai-sim's did\n"
      "input 2 12 12\nconv2d name=a out=4 kernel=3 padding=1 # first block; a comment\nrelu\nmaxpool kernel=2\n"
      "dropout p=0.1 # kept; off at inference\nflatten\ndense name=fc out=8\nrelu\ndropout p=0.1\ndense name=out out=3\n";
    lensnet_model *mm = NULL;
    lensviz_desc d;
    float img[288], occluded[288], map[36], vmap[36], out[3], base_out[3];
    double base = 0.0, vbase = 0.0, worst = 0.0, vworst = 0.0;
    size_t rows = 0, cols = 0, r, c, k, y, xx;
    CHECK(lensnet_model_create(arch, &mm, &err) == LENSNET_OK && mm->layer_count == 9, "%s", err.message);
    if (mm && mm->layer_count == 9) {
      lensnet_rng rng;
      lensnet_model_init(mm, 5);
      lensnet_rng_seed(&rng, 12);
      for (k = 0; k < 288; k++) img[k] = lensnet_rng_uniform(&rng);
      memset(&d, 0, sizeof d);
      d.patch = 2; d.stride = 2; d.fill = 0.5f;
      lensviz_occlusion_size(mm, &d, &rows, &cols);
      CHECK(lensviz_occlusion(mm, img, 1, &d, map, &base, &err) == LENSNET_OK, "%s", err.message);
      d.output_value = 1;
      CHECK(lensviz_occlusion(mm, img, 1, &d, vmap, &vbase, &err) == LENSNET_OK, "output_value: %s", err.message);
      lensnet_model_forward(mm, 1, img, base_out, NULL, &err);
      CHECK(fabs(base - lensnet_lens_probability(base_out, 3, 1)) < 1e-6 && fabs(vbase - base_out[1]) < 1e-6,
            "unoccluded: P %g vs %g, output %g vs %g", base, lensnet_lens_probability(base_out, 3, 1), vbase, base_out[1]);
      for (r = 0; r < rows; r++)
        for (c = 0; c < cols; c++) {
          memcpy(occluded, img, sizeof occluded);
          for (k = 0; k < 2; k++)
            for (y = r * 2; y < r * 2 + 2; y++)
              for (xx = c * 2; xx < c * 2 + 2; xx++) occluded[k * 144 + y * 12 + xx] = 0.5f;
          lensnet_model_forward(mm, 1, occluded, out, NULL, &err);
          if (fabs(lensnet_lens_probability(out, 3, 1) - base - map[r * cols + c]) > worst)
            worst = fabs(lensnet_lens_probability(out, 3, 1) - base - map[r * cols + c]);
          if (fabs(out[1] - base_out[1] - vmap[r * cols + c]) > vworst) vworst = fabs(out[1] - base_out[1] - vmap[r * cols + c]);
        }
      CHECK(rows == 6 && cols == 6 && worst < 1e-6, "occlusion vs whole forward passes: %g", worst);
      CHECK(vworst < 1e-5, "output_value: the change of output 1 itself, vs whole forward passes: %g", vworst);
      lensnet_model_free(mm);
    }
  }
  TEST("occlusion's rectangles compute batch norm, pools and activations bit for bit as lensnet_model_forward") {
    /* no convolution (its GEMM sums in an order of its own): every value must be the same */
    static const char arch[] =
      "input 3 9 9\nbatchnorm name=bn\nleaky_relu slope=0.1\nmaxpool kernel=3 stride=2 padding=1\nbatchnorm name=bn2\n"
      "gelu\navgpool kernel=2\nsigmoid\ndropout p=0.3\nrelu\ntanh\n";
    lensnet_model *mm = NULL;
    CHECK(lensnet_model_create(arch, &mm, &err) == LENSNET_OK, "%s", err.message);
    if (mm) {
      float img[243], a[243], b[243], out[12];
      double base = 0.0;
      lensnet_rng rng;
      lensviz_desc d;
      size_t k;
      lensnet_rng_seed(&rng, 21);
      for (k = 0; k < mm->value_count; k++) mm->values[k] = 0.3f + 1.7f * lensnet_rng_uniform(&rng); /* variances > 0 */
      for (k = 0; k < 243; k++) img[k] = 3.0f * lensnet_rng_normal(&rng);
      memcpy(a, img, sizeof img);
      for (k = 0; k < mm->layer_count; k++) {
        const lensnet_layer *L = &mm->layers[k];
        lensnet_rect whole;
        whole.y0 = whole.x0 = 0; whole.y1 = (long)L->out_h - 1; whole.x1 = (long)L->out_w - 1;
        lensviz__layer_rect(mm, L, NULL, a, b, whole);
        memcpy(a, b, L->out_c * L->out_h * L->out_w * sizeof(float));
      }
      CHECK(mm->out_features == 12 && lensnet_model_forward(mm, 1, img, out, NULL, &err) == LENSNET_OK, "%s", err.message);
      CHECK(!memcmp(a, out, sizeof out), "layer by layer through rectangles = the forward pass: %.9g vs %.9g", a[0], out[0]);
      memset(&d, 0, sizeof d);
      d.patch = 3; d.stride = 3;
      CHECK(lensviz_occlusion(mm, img, -1, &d, b, &base, &err) == LENSNET_OK, "%s", err.message);
      CHECK(base == lensnet_lens_probability(out, 12, 11), "occlusion's unoccluded P %.17g = the forward pass's %.17g", base, lensnet_lens_probability(out, 12, 11));
      lensnet_model_free(mm);
    }
  }
  TEST("class image: the ascent raises the target output; one seed, one image") {
    lensviz_desc d;
    float a[200], b[200], first[200];
    memset(&d, 0, sizeof d);
    d.iterations = 40; d.step = 0.02f; d.seed = 9;
    d.frame = capture_first; d.frame_user = first; d.frame_every = 1;
    CHECK(lensviz_class_image(relu, 1, &d, a, &err) == LENSNET_OK, "%s", err.message);
    CHECK(logit(relu, a, 1) > logit(relu, first, 1), "logit after 40 steps %g > after 1 %g", logit(relu, a, 1), logit(relu, first, 1));
    /* with the regularisers (which trade the output for smoothness and size) */
    d.frame = NULL; d.jitter = 1; d.blur_every = 5; d.l2 = 0.01f;
    CHECK(lensviz_class_image(relu, 1, &d, a, &err) == LENSNET_OK, "%s", err.message);
    lensviz_class_image(relu, 1, &d, b, &err);
    CHECK(!memcmp(a, b, sizeof a), "same seed, same image");
    for (i = 0; i < 200; i++) CHECK(a[i] >= 0.0f && a[i] <= 1.0f, "pixel %lu = %g outside [0, 1]", (unsigned long)i, a[i]);
    d.seed = 10;
    lensviz_class_image(relu, 1, &d, b, &err);
    CHECK(memcmp(a, b, sizeof a) != 0, "another seed, another image");
  }
  TEST("filter image raises its channel's mean; channel means match the trainer's activations") {
    lensviz_desc d;
    float img[200], first[200], before[4], after[4], means[4];
    lensnet_trainer *t = NULL;
    size_t k, p;
    memset(&d, 0, sizeof d);
    d.iterations = 30; d.seed = 2; d.frame = capture_first; d.frame_user = first; d.frame_every = 1;
    CHECK(lensviz_filter_image(relu, 2, 1, &d, img, &err) == LENSNET_OK, "%s", err.message);
    lensviz_channel_means(relu, first, 2, before, &err);
    CHECK(lensviz_channel_means(relu, img, 2, after, &err) == LENSNET_OK, "%s", err.message);
    CHECK(after[1] > before[1], "channel 1 mean %g > %g", after[1], before[1]);
    CHECK(lensviz_filter_image(relu, 2, 4, &d, img, &err) == LENSNET_ERR_ARG, "channel 4 of 4 is refused");
    CHECK(lensnet_trainer_create(relu, NULL, &t, &err) == LENSNET_OK, "%s", err.message);
    if (t) {
      const float *A;
      double worst = 0.0;
      lensnet_trainer_forward(t, 1, x, 0, NULL, &err);
      A = lensnet_trainer_activation(t, 3);
      lensviz_channel_means(relu, x, 3, means, &err);
      for (k = 0; k < 4; k++) {
        double s = 0.0;
        for (p = 0; p < 64; p++) s += A[k * 64 + p];
        if (fabs(s / 64.0 - means[k]) > worst) worst = fabs(s / 64.0 - means[k]);
      }
      CHECK(worst < 1e-6, "channel means vs activations: %g", worst);
      lensnet_trainer_free(t);
    }
  }
  TEST("deep dream with octaves raises the layer's energy and keeps the image size") {
    lensviz_desc d;
    float dream[200], act[256];
    double e0 = 0.0, e1 = 0.0;
    lensnet_model *cut = NULL;
    memcpy(dream, x, sizeof dream);
    memcpy(base_x, x, sizeof base_x);
    memset(&d, 0, sizeof d);
    d.iterations = 15; d.octaves = 2; d.octave_scale = 1.25f; d.jitter = 1;
    CHECK(lensviz_dream(relu, 3, &d, dream, &err) == LENSNET_OK, "%s", err.message);
    CHECK(lensviz_model_cut(relu, 3, 0, 0, &cut, &err) == LENSNET_OK, "%s", err.message);
    if (cut) {
      lensnet_model_forward(cut, 1, base_x, act, NULL, &err);
      for (i = 0; i < 256; i++) e0 += act[i] * act[i];
      lensnet_model_forward(cut, 1, dream, act, NULL, &err);
      for (i = 0; i < 256; i++) e1 += act[i] * act[i];
      CHECK(e1 > e0, "energy %g > %g", e1, e0);
      lensnet_model_free(cut);
    }
    {
      lensnet_model *flat = NULL;
      CHECK(lensnet_model_create("input 1 6 6\nconv2d name=c out=2 kernel=3\nflatten\ndense name=d out=2", &flat, &err) == LENSNET_OK, "%s", err.message);
      if (flat) CHECK(lensviz_model_cut(flat, 2, 8, 8, &cut, &err) == LENSNET_ERR_SHAPE && strstr(err.message, "d.weight"), "a dense layer after a flatten fixes the size: %s", err.message);
      lensnet_model_free(flat);
    }
    CHECK(lensviz_model_cut(relu, 3, 8, 8, &cut, &err) == LENSNET_OK && cut->layers[3].out_h == 6, "conv layers take 8x8");
    lensnet_model_free(cut);
    { /* a deep layer that the full image reaches and the smallest octave does not: the message says which octave and what to do */
      lensnet_model *deep = NULL;
      float img[64];
      CHECK(lensnet_model_create("input 1 8 8\nconv2d name=a out=1 kernel=3\nconv2d name=b out=1 kernel=3\nconv2d name=c out=1 kernel=3", &deep,
                                 &err) == LENSNET_OK, "%s", err.message);
      if (deep) {
        lensnet_model_init(deep, 3);
        for (i = 0; i < 64; i++) img[i] = (float)(i % 7) / 7.0f;
        memset(&d, 0, sizeof d);
        d.iterations = 2; d.octaves = 3;
        CHECK(lensviz_dream(deep, 2, &d, img, &err) != LENSNET_OK && strstr(err.message, "octave 1 of 3 is 4x4") &&
                  strstr(err.message, "fewer octaves"), "an octave too small for the layer is named: %s", err.message);
        d.octaves = 1;
        CHECK(lensviz_dream(deep, 2, &d, img, &err) == LENSNET_OK, "one octave works: %s", err.message);
      }
      lensnet_model_free(deep);
    }
  }
  lensnet_model_free(relu);
  lensnet_model_free(smooth);
}

/* ---- pictures ----------------------------------------------------------------------------- */

static int color_is(lensviz_color c, int r, int g, int b, int tol) {
  return abs(c.r - r) <= tol && abs(c.g - g) <= tol && abs(c.b - b) <= tol;
}

static const unsigned char *pixel(const lensviz_image *img, size_t x, size_t y) {
  return img->rgb + y * (img->stride ? img->stride : 3 * img->width) + 3 * x;
}

/* The panel whose pixels are pinned by a golden hash: a ramp under viridis with a colour bar,
 * titles in the built-in font, and a magma map beside it. */
static uint64_t golden_panel(lensviz_image *grid) {
  float ramp[16 * 16], bump[8 * 8];
  lensviz_image a, b;
  lensviz_panel p[2];
  size_t i, w, h;
  lensnet_error err;
  uint64_t hash = 0;
  for (i = 0; i < 256; i++) ramp[i] = (float)(i % 16) / 15.0f - (float)(i / 16) / 30.0f;
  for (i = 0; i < 64; i++) bump[i] = (float)exp(-0.1 * (double)(((long)(i % 8) - 3) * ((long)(i % 8) - 3) + ((long)(i / 8) - 4) * ((long)(i / 8) - 4)));
  if (lensviz_image_alloc(&a, 96, 96, &err) || lensviz_image_alloc(&b, 96, 96, &err)) return 0;
  lensviz_render_map(ramp, 16, 16, LENSVIZ_CMAP_VIRIDIS, -0.5f, 1.0f, 0, &a);
  lensviz_render_map(bump, 8, 8, LENSVIZ_CMAP_MAGMA, 0.0f, 1.0f, 1, &b);
  p[0].image = &a; p[0].title = "ramp (viridis)"; p[0].colorbar = 1; p[0].cmap = LENSVIZ_CMAP_VIRIDIS; p[0].lo = -0.5f; p[0].hi = 1.0f;
  p[1].image = &b; p[1].title = "bump (magma)"; p[1].colorbar = 0; p[1].cmap = LENSVIZ_CMAP_MAGMA; p[1].lo = 0; p[1].hi = 1;
  lensviz_grid_size(p, 2, 2, "Golden panel 0.1", &w, &h);
  if (lensviz_image_alloc(grid, w, h, &err) == LENSNET_OK) {
    lensviz_grid_render(p, 2, 2, "Golden panel 0.1", grid);
    hash = lensviz_image_hash(grid);
  }
  lensviz_image_free(&a);
  lensviz_image_free(&b);
  return hash;
}

static void test_pictures(void) {
  lensnet_error err;
  TEST("colour maps: matplotlib's end points, the diverging centre, names") {
    CHECK(color_is(lensviz_colormap_color(LENSVIZ_CMAP_VIRIDIS, 0.0f), 68, 1, 84, 0), "viridis(0)");
    CHECK(color_is(lensviz_colormap_color(LENSVIZ_CMAP_VIRIDIS, 1.0f), 253, 231, 37, 0), "viridis(1)");
    CHECK(color_is(lensviz_colormap_color(LENSVIZ_CMAP_VIRIDIS, 0.5f), 33, 145, 140, 1), "viridis(0.5)");
    CHECK(color_is(lensviz_colormap_color(LENSVIZ_CMAP_MAGMA, 0.0f), 0, 0, 4, 0), "magma(0)");
    CHECK(color_is(lensviz_colormap_color(LENSVIZ_CMAP_MAGMA, 1.0f), 252, 253, 191, 0), "magma(1)");
    CHECK(color_is(lensviz_colormap_color(LENSVIZ_CMAP_MAGMA, 2.0f), 252, 253, 191, 0), "clamped above");
    {
      lensviz_color c = lensviz_colormap_color(LENSVIZ_CMAP_DIVERGING, 0.5f), lo = lensviz_colormap_color(LENSVIZ_CMAP_DIVERGING, 0.0f),
                    hi = lensviz_colormap_color(LENSVIZ_CMAP_DIVERGING, 1.0f);
      CHECK(c.r == c.g && c.g == c.b, "diverging centre is grey");
      CHECK(lo.b > lo.r && hi.r > hi.b, "blue below, red above");
    }
    CHECK(lensviz_colormap_from_name("magma") == LENSVIZ_CMAP_MAGMA && lensviz_colormap_from_name("jet") == -1, "names");
  }
  TEST("font: every printable glyph is drawn and distinct") {
    lensviz_image img;
    size_t w = 0, h = 0;
    int ch, other, distinct = 1, drawn = 1;
    unsigned char glyphs[95][35];
    if (lensviz_image_alloc(&img, 6, 8, &err) == LENSNET_OK) {
      for (ch = 32; ch < 127; ch++) {
        char s[2];
        int k, any = 0;
        s[0] = (char)ch; s[1] = 0;
        lensviz_fill(&img, lensviz_rgb(0, 0, 0));
        lensviz_draw_text(&img, 0, 0, s, 1, lensviz_rgb(255, 255, 255));
        for (k = 0; k < 35; k++) { glyphs[ch - 32][k] = pixel(&img, (size_t)(k % 5), (size_t)(k / 5))[0]; any |= glyphs[ch - 32][k]; }
        if (ch != ' ' && !any) drawn = 0;
        if (ch == ' ' && any) drawn = 0;
      }
      for (ch = 0; ch < 95; ch++)
        for (other = ch + 1; other < 95; other++)
          if (!memcmp(glyphs[ch], glyphs[other], 35)) { distinct = 0; printf("   glyphs '%c' and '%c' are the same\n", ch + 32, other + 32); }
      CHECK(drawn, "every glyph but the space has pixels");
      CHECK(distinct, "no two glyphs alike");
      lensviz_image_free(&img);
    }
    lensviz_text_size("lens\nfinder", 2, &w, &h);
    CHECK(w == 6 * 6 * 2 && h == 2 * 8 * 2, "text size %lux%lu", (unsigned long)w, (unsigned long)h);
  }
  TEST("drawing is clipped, views draw into their parent only") {
    lensviz_image img, v;
    if (lensviz_image_alloc(&img, 20, 10, &err) == LENSNET_OK) {
      v = lensviz_image_view(&img, 5, 2, 100, 100);
      CHECK(v.width == 15 && v.height == 8, "view clipped to 15x8");
      lensviz_fill(&v, lensviz_rgb(1, 2, 3));
      CHECK(pixel(&img, 4, 2)[0] == 0 && pixel(&img, 5, 1)[0] == 0 && pixel(&img, 5, 2)[0] == 1 && pixel(&img, 19, 9)[2] == 3, "only the view is filled");
      lensviz_draw_line(&img, -50, -50, 70, 70, 3, lensviz_rgb(9, 9, 9));
      lensviz_draw_text(&img, -3, 8, "clipped text", 3, lensviz_rgb(7, 7, 7));
      CHECK(pixel(&img, 3, 3)[0] == 9, "the line passes (3, 3)");
      lensviz_image_free(&img);
    }
  }
  TEST("a line reaching off the picture draws the pixels the whole line draws there, solid and dashed; far-off ends cost nothing") {
    /* lines of 5..9 squares' thickness between points up to 200 pixels off a 20 x 10 picture,
     * against the same lines drawn whole on a 420 x 410 picture holding it at (200, 200) */
    lensviz_image small, big;
    unsigned s = 7;
    int t, bad = 0, dashed;
    if (lensviz_image_alloc(&small, 20, 10, &err) == LENSNET_OK && lensviz_image_alloc(&big, 420, 410, &err) == LENSNET_OK) {
      for (dashed = 0; dashed < 2; dashed++)
        for (t = 0; t < 400; t++) {
          long c4[4], phase_small = 3, phase_big = 3;
          size_t x, y, k;
          int th;
          for (k = 0; k < 4; k++) { s = s * 1103515245u + 12345u; c4[k] = (long)((s >> 8) % 400) - 200; }
          th = 1 + (int)((s >> 4) % 9);
          lensviz_fill(&small, lensviz_rgb(0, 0, 0));
          lensviz_fill(&big, lensviz_rgb(0, 0, 0));
          if (dashed) {
            lensviz__line(&small, c4[0], c4[1], c4[2], c4[3], th, lensviz_rgb(255, 255, 255), 1, &phase_small);
            lensviz__line(&big, c4[0] + 200, c4[1] + 200, c4[2] + 200, c4[3] + 200, th, lensviz_rgb(255, 255, 255), 1, &phase_big);
            if (phase_small != phase_big) bad++;
          } else {
            lensviz_draw_line(&small, c4[0], c4[1], c4[2], c4[3], th, lensviz_rgb(255, 255, 255));
            lensviz_draw_line(&big, c4[0] + 200, c4[1] + 200, c4[2] + 200, c4[3] + 200, th, lensviz_rgb(255, 255, 255));
          }
          for (y = 0; y < 10; y++)
            for (x = 0; x < 20; x++)
              if (pixel(&small, x, y)[0] != pixel(&big, x + 200, y + 200)[0]) { bad++; y = 10; break; }
        }
      CHECK(bad == 0, "%d of 800 lines differ from the whole line", bad);
      /* ends 5e9 pixels away, a thickness of 2e9: drawn at once, the picture covered */
      lensviz_fill(&small, lensviz_rgb(0, 0, 0));
      lensviz_draw_line(&small, -5000000000L, 4, 5000000000L, 5, 50, lensviz_rgb(1, 2, 3));
      CHECK(pixel(&small, 0, 0)[0] == 1 && pixel(&small, 19, 9)[2] == 3, "a line 1e10 pixels long and 50 thick covers the picture");
      lensviz_fill(&small, lensviz_rgb(0, 0, 0));
      lensviz_draw_line(&small, 0, 0, 1, 1, 2000000000, lensviz_rgb(4, 5, 6));
      CHECK(pixel(&small, 19, 0)[0] == 4 && pixel(&small, 0, 9)[1] == 5, "a thickness of 2e9 fills the picture");
      lensviz_fill(&small, lensviz_rgb(0, 0, 0));
      lensviz_draw_line(&small, -5000000000L, -300, 5000000000L, -300, 3, lensviz_rgb(7, 7, 7));
      lensviz_draw_line(&small, -3000000000L, -3000000000L, 3000000000L, 3000000000L, 1, lensviz_rgb(8, 8, 8));
      CHECK(pixel(&small, 5, 0)[0] == 0 && pixel(&small, 5, 5)[0] == 8 && pixel(&small, 9, 9)[0] == 8 && pixel(&small, 6, 5)[0] == 0,
            "a far line above the picture draws nothing; the diagonal through it from 3e9 pixels away does, exactly");
      lensviz_draw_line(&small, LONG_MIN, LONG_MIN, LONG_MAX, LONG_MAX, 1, lensviz_rgb(8, 8, 8)); /* the extremes: no overflow, no wait */
      lensviz_draw_line(NULL, 0, 0, 1, 1, 1, lensviz_rgb(1, 1, 1)); /* nothing to draw on: no crash */
      lensviz_image_free(&small);
      lensviz_image_free(&big);
    }
  }
  TEST("maps, overlays and asinh composites") {
    lensviz_image img;
    float map[4] = {0.0f, 1.0f, 2.0f, 3.0f}, band[3 * 4];
    size_t i;
    if (lensviz_image_alloc(&img, 4, 4, &err) == LENSNET_OK) {
      lensviz_color c3 = lensviz_colormap_color(LENSVIZ_CMAP_VIRIDIS, 1.0f);
      lensviz_render_map(map, 2, 2, LENSVIZ_CMAP_VIRIDIS, 0, 0, 0, &img);
      CHECK(pixel(&img, 3, 3)[0] == c3.r && pixel(&img, 2, 2)[1] == c3.g, "nearest blocks, auto range to the maximum");
      CHECK(color_is(lensviz_rgb(pixel(&img, 0, 0)[0], pixel(&img, 0, 0)[1], pixel(&img, 0, 0)[2]), 68, 1, 84, 0), "minimum");
      lensviz_fill(&img, lensviz_rgb(10, 20, 30));
      lensviz_overlay(&img, map, 2, 2, LENSVIZ_CMAP_MAGMA, 0, 3, 0.0f);
      CHECK(pixel(&img, 1, 1)[0] == 10 && pixel(&img, 3, 0)[2] == 30, "alpha 0 leaves the picture");
      for (i = 0; i < 4; i++) band[i] = band[4 + i] = band[8 + i] = (float)i;
      lensviz_asinh_bands(band, 3, 2, 2, 8.0f, 0.0f, &img);
      CHECK(pixel(&img, 3, 3)[0] == 255 && pixel(&img, 3, 3)[1] == 255 && pixel(&img, 0, 0)[0] == 0, "equal bands: grey, brightest white");
      CHECK(pixel(&img, 2, 0)[0] > 0 && pixel(&img, 2, 0)[0] < 255, "asinh middle values");
      for (i = 0; i < 4; i++) { band[i] = 0.5f * (float)i; band[4 + i] = 0.5f * (float)i; band[8 + i] = (float)i; }
      lensviz_asinh_bands(band, 3, 2, 2, 8.0f, 0.0f, &img); /* red = band 2 = twice the others */
      CHECK(abs(2 * pixel(&img, 2, 2)[1] - pixel(&img, 2, 2)[0]) <= 2 && pixel(&img, 2, 2)[1] == pixel(&img, 2, 2)[2], "colour ratios kept");
      {
        /* a NaN first pixel (a masked border) leaves the others drawn as without it: the least
         * finite pixel sets the black level (a NaN one once made the whole picture black) */
        unsigned char keep[3];
        for (i = 0; i < 4; i++) band[i] = band[4 + i] = band[8 + i] = (float)i;
        band[0] = band[4] = band[8] = 1.0f; /* the least is 1 ... */
        lensviz_asinh_bands(band, 3, 2, 2, 8.0f, 0.0f, &img);
        memcpy(keep, pixel(&img, 3, 3), 3);
        band[0] = band[4] = band[8] = NAN;  /* ... as it is with the first pixel NaN */
        lensviz_asinh_bands(band, 3, 2, 2, 8.0f, 0.0f, &img);
        CHECK(pixel(&img, 3, 3)[0] == keep[0] && keep[0] > 0 && pixel(&img, 2, 0)[0] == 0,
              "a NaN first pixel: the brightest pixel as with the least finite at 1 (%d, %d), not black", pixel(&img, 3, 3)[0], keep[0]);
      }
      lensviz_image_free(&img);
    }
  }
  TEST("ROC, AUC, precision-recall and average precision on a worked example") {
    float s[6] = {0.9f, 0.8f, 0.7f, 0.6f, 0.55f, 0.4f}, fpr[7], tpr[7], same[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    int y[6] = {1, 1, 0, 1, 0, 0}, y4[4] = {1, 0, 1, 0}, none[3] = {0, 0, 0};
    double auc = 0, ap = 0;
    size_t n = lensviz_roc(s, y, 6, fpr, tpr, &auc);
    CHECK(n == 7 && fabs(auc - 8.0 / 9.0) < 1e-9, "AUC 8/9 (got %g over %lu points)", auc, (unsigned long)n);
    CHECK(fpr[6] == 1.0f && tpr[6] == 1.0f && tpr[2] == (float)(2.0f / 3.0f) && fpr[2] == 0.0f, "curve points"); /* (float): FLT_EVAL_METHOD 1 */
    n = lensviz_pr(s, y, 6, fpr, tpr, &ap);
    CHECK(n == 7 && fabs(ap - (1.0 / 3 + 1.0 / 3 + 0.25)) < 1e-6, "AP 11/12 (got %g)", ap);
    n = lensviz_roc(same, y4, 4, fpr, tpr, &auc);
    CHECK(n == 2 && fabs(auc - 0.5) < 1e-12, "ties: one step, AUC 0.5");
    CHECK(lensviz_roc(s, none, 3, fpr, tpr, &auc) == 0, "no positives: no curve");
    {
      /* a NaN score ranks lowest: (nan, lens), (0.2, not), (0.5, lens) rank as 0.5 > 0.2 > nan */
      float sn[3] = {NAN, 0.2f, 0.5f};
      int yn[3] = {1, 0, 1};
      n = lensviz_roc(sn, yn, 3, fpr, tpr, &auc);
      CHECK(n == 4 && fabs(auc - 0.5) < 1e-12, "NaN scores: 4 points, AUC 0.5 (got %lu, %g)", (unsigned long)n, auc);
      n = lensviz_pr(sn, yn, 3, fpr, tpr, &ap);
      CHECK(n == 4, "NaN scores: 4 precision-recall points (got %lu)", (unsigned long)n);
    }
  }
  TEST("one calibration factor for the 68% and 95% intervals together, worked by hand") {
    /* |error|/sigma of 1, 1, 1 and 10 (and one object with sigma 0, left out). The shares (c68, c95)
     * are (0, 3/4) for s in [1/1.96, 1/0.9945), (3/4, 3/4) up to 10/1.96, (3/4, 1) up to 10/0.9945,
     * then (1, 1); squared distances from (0.68, 0.95): 0.5024, 0.0449, 0.0074, 0.1049. The best
     * interval starts at s = 10/1.95996. */
    double truth[5] = {0, 0, 0, 0, 0}, mean[5] = {1, -1, 1, 10, 3}, sigma[5] = {1, 1, 1, 1, 0}, zero[2] = {0, 0};
    double s = lensviz_regress_calibration_levels(truth, mean, sigma, 5);
    CHECK(fabs(s - 10 / 1.959963984540054) < 1e-9, "factor %.12g (want %.12g)", s, 10 / 1.959963984540054);
    CHECK(isnan(lensviz_regress_calibration_levels(truth, mean, zero, 2)), "no object with a sigma: NaN");
    mean[3] = 1.5; /* (0, 3/4) from 1/1.96, (0, 1) from 1.5/1.96, (3/4, 1) from 1/0.9945, (1, 1) from 1.5/0.9945:
                    * 0.5024, 0.4649, 0.0074, 0.1049; the best starts at 1/0.9945 */
    s = lensviz_regress_calibration_levels(truth, mean, sigma, 5);
    CHECK(fabs(s - 1 / 0.9944578832097535) < 1e-9, "factor %.12g (want %.12g)", s, 1 / 0.9944578832097535);
  }
  TEST("plots fill their picture and draw the data") {
    lensviz_image img;
    float xs[3] = {0.0f, 0.5f, 1.0f}, ys[3] = {0.0f, 0.8f, 1.0f};
    lensviz_series s;
    lensviz_plot_desc pd;
    double counts[4] = {50, 5, 3, 42};
    memset(&s, 0, sizeof s);
    memset(&pd, 0, sizeof pd);
    s.x = xs; s.y = ys; s.n = 3; s.label = "model"; s.color = lensviz_rgb(200, 0, 0);
    pd.title = "ROC"; pd.xlabel = "fpr"; pd.ylabel = "tpr"; pd.diagonal = 1;
    if (lensviz_image_alloc(&img, 320, 240, &err) == LENSNET_OK) {
      size_t red = 0, i;
      lensviz_plot_lines(&img, &s, 1, &pd);
      for (i = 0; i < 320 * 240; i++) red += img.rgb[3 * i] == 200 && img.rgb[3 * i + 1] == 0;
      CHECK(red > 200, "the curve is drawn (%lu red pixels)", (unsigned long)red);
      { /* values far beyond fixed axes (1e30, infinity): drawn off the axes, no overflow */
        float far_y[3] = {0.5f, 1e30f, (float)INFINITY}, far_x[3] = {0.0f, 0.5f, -1e30f};
        lensviz_series f = s;
        lensviz_plot_desc fixed = pd;
        f.x = far_x; f.y = far_y;
        fixed.x0 = 0.0f; fixed.x1 = 1.0f; fixed.y0 = 0.0f; fixed.y1 = 1.0f;
        lensviz_plot_lines(&img, &f, 1, &fixed);
        CHECK(img.rgb[0] == 255, "a plot of values far beyond its axes is drawn");
      }
      lensviz_plot_histogram(&img, &s, 1, 4, &pd);
      lensviz_plot_confusion(&img, counts, 2, NULL, "confusion");
      CHECK(img.rgb[0] == 255, "white background");
      lensviz_image_free(&img);
    }
  }
  TEST("golden hash of a rendered panel") {
    lensviz_image grid;
    uint64_t h = golden_panel(&grid);
    printf("   panel %lux%lu hash %016llx\n", (unsigned long)grid.width, (unsigned long)grid.height, (unsigned long long)h);
    CHECK(grid.width == 352 && grid.height == 148, "panel size %lux%lu", (unsigned long)grid.width, (unsigned long)grid.height);
    CHECK(h == 0x3e17ac51a35704d7ull, "panel pixels changed: hash %016llx", (unsigned long long)h);
    lensviz_image_free(&grid);
  }
  TEST("PNG: written atomically, decodes to the same pixels") {
    lensviz_image grid;
    int w = 0, h = 0, n = 0;
    unsigned char *back;
    FILE *f;
    golden_panel(&grid);
    CHECK(lensviz_png_write("build/test_lensviz_panel.png", &grid, &err) == LENSNET_OK, "%s", err.message);
    back = stbi_load("build/test_lensviz_panel.png", &w, &h, &n, 3);
    CHECK(back && (size_t)w == grid.width && (size_t)h == grid.height, "decodes as %dx%d", w, h);
    if (back && (size_t)w == grid.width && (size_t)h == grid.height) CHECK(!memcmp(back, grid.rgb, grid.width * grid.height * 3), "same pixels");
    stbi_image_free(back);
    CHECK(lensviz_png_write("build/no/such/dir/x.png", &grid, &err) == LENSNET_ERR_IO && strstr(err.message, "x.png"), "%s", err.message);
    f = fopen("build/test_lensviz_panel.png.tmp", "rb");
    CHECK(f == NULL, "no temporary file left");
    if (f) fclose(f);
    remove("build/test_lensviz_panel.png");
    lensviz_image_free(&grid);
  }
  TEST("GIF: LZW with full dictionaries decodes exactly (stb_image), frames and size kept") {
    lensviz_image frames[3];
    lensnet_rng rng;
    unsigned char *gif = NULL, *back;
    size_t len = 0, f, i, W = 301, H = 187;
    int *delays = NULL, w = 0, h = 0, z = 0, comp = 0, same = 1;
    lensnet_rng_seed(&rng, 77);
    for (f = 0; f < 3; f++) {
      lensviz_image_alloc(&frames[f], W, H, &err);
      for (i = 0; i < W * H; i++) {
        /* palette colours: cube corners in noisy patches, smooth runs, and greys */
        unsigned v = (unsigned)(lensnet_rng_next(&rng) % 216u);
        if (f == 1) v = (unsigned)((i / 7) % 216u);
        frames[f].rgb[3 * i] = (unsigned char)(v / 36 * 51);
        frames[f].rgb[3 * i + 1] = (unsigned char)(v / 6 % 6 * 51);
        frames[f].rgb[3 * i + 2] = (unsigned char)(v % 6 * 51);
        if (f == 2 && i % 3 == 0) frames[f].rgb[3 * i] = frames[f].rgb[3 * i + 1] = frames[f].rgb[3 * i + 2] = (unsigned char)((i % 40 + 1) * 255 / 41);
      }
    }
    CHECK(lensviz_gif_encode(frames, 3, 7, &gif, &len, &err) == LENSNET_OK, "%s", err.message);
    back = gif ? stbi_load_gif_from_memory(gif, (int)len, &delays, &w, &h, &z, &comp, 3) : NULL;
    CHECK(back && w == (int)W && h == (int)H && z == 3, "decodes as %dx%d, %d frames", w, h, z);
    if (back && w == (int)W && h == (int)H && z == 3) {
      for (f = 0; f < 3; f++) same &= !memcmp(back + f * W * H * 3, frames[f].rgb, W * H * 3);
      CHECK(same, "every pixel of every frame back");
      CHECK(delays && delays[1] == 70, "delay 7 cs = 70 ms (got %d)", delays ? delays[1] : -1);
    }
    stbi_image_free(back);
    free(delays);
    lensviz_free(gif);
    lensviz_image_free(&frames[2]);
    lensviz_image_alloc(&frames[2], 10, 10, &err);
    CHECK(lensviz_gif_encode(frames, 3, 7, &gif, &len, &err) == LENSNET_ERR_SHAPE, "frames of another size are refused");
    for (f = 0; f < 3; f++) lensviz_image_free(&frames[f]);
  }
}

/* ---- maps on the sky: where each cell is drawn --------------------------------------------- */

/* OU-66's Grad-CAM layer (27) by hand (tests/test_lensnet.c derives it): 4x4 cells centred on
 * pixels 26.5 + 4 i of the 66x66 image, each a 4-pixel block: rows and columns 25..40. */
static lensnet_map_geometry ou66_layer27(void) {
  lensnet_map_geometry g;
  memset(&g, 0, sizeof g);
  g.rows = g.cols = 4;
  g.offset = 26.5;
  g.stride = 4.0;
  g.size = 54.0;
  g.image_h = g.image_w = 66;
  return g;
}

static void test_geometry(void) {
  lensnet_error err;
  TEST("occlusion cells sit at their patches' centres") {
    lensnet_model *m = small_model(0, 1);
    lensviz_desc d;
    lensnet_map_geometry g;
    memset(&d, 0, sizeof d);
    if (m) {
      /* 10 pixels, patch 3, stride 3: patches 0-2, 3-5, 6-8 (pixel 9 in none), centres 1, 4, 7 */
      d.patch = 3; d.stride = 3;
      lensviz_occlusion_grid(m, &d, &g);
      CHECK(g.rows == 3 && g.cols == 3 && g.offset == 1.0 && g.stride == 3.0 && g.size == 3.0 && g.image_h == 10 && g.image_w == 10,
            "patch 3 stride 3: %lux%lu at %g + %g i, size %g", (unsigned long)g.rows, (unsigned long)g.cols, g.offset, g.stride, g.size);
      /* patch 4, stride 2: patches 0-3, 2-5, 4-7, 6-9, centres 1.5 + 2 i */
      d.patch = 4; d.stride = 2;
      lensviz_occlusion_grid(m, &d, &g);
      CHECK(g.rows == 4 && g.offset == 1.5 && g.stride == 2.0 && g.size == 4.0, "patch 4 stride 2: %lu at %g + %g i", (unsigned long)g.rows, g.offset, g.stride);
      lensnet_model_free(m);
    }
  }
  TEST("a map on the image: blocks about the cells' centres, bilinear between them, nothing beyond") {
    lensnet_map_geometry g = ou66_layer27();
    float map[16], out[66 * 66];
    unsigned char inside[66 * 66];
    size_t i, n = 0;
    for (i = 0; i < 16; i++) map[i] = (float)(10 * (i / 4) + i % 4); /* cell (r, c) holds 10 r + c */
    lensviz_map_to_image(map, &g, 0, out, inside);
    CHECK(out[25 * 66 + 25] == 0.0f && inside[25 * 66 + 25], "pixel (25, 25): cell (0, 0), inside");
    CHECK(out[28 * 66 + 28] == 0.0f && out[29 * 66 + 28] == 10.0f, "rows 25-28 are cell row 0, row 29 starts row 1");
    CHECK(out[29 * 66 + 33] == 12.0f, "pixel (29, 33): (29 - 26.5) / 4 = 0.625 -> row 1, (33 - 26.5) / 4 = 1.625 -> column 2");
    CHECK(out[40 * 66 + 40] == 33.0f && inside[40 * 66 + 40], "pixel (40, 40): cell (3, 3), inside");
    CHECK(!inside[24 * 66 + 30] && out[24 * 66 + 30] == 1.0f, "pixel (24, 30): beyond the blocks, the nearest cell (0, 1)");
    CHECK(!inside[41 * 66 + 41] && !inside[0] && !inside[65 * 66 + 65] && out[0] == 0.0f, "the corners are beyond the blocks");
    for (i = 0; i < 66 * 66; i++) n += inside[i];
    CHECK(n == 16 * 16, "the blocks cover 16 x 16 pixels (got %lu)", (unsigned long)n);
    lensviz_map_to_image(map, &g, 1, out, NULL);
    CHECK(fabsf(out[32 * 66 + 32] - 15.125f) < 1e-5f, "bilinear at pixel (32, 32): cell (1.375, 1.375) -> 15.125 (got %g)", out[32 * 66 + 32]);
    CHECK(out[26 * 66 + 26] == 0.0f && out[10 * 66 + 60] == 3.0f, "bilinear clamps beyond the outer centres");
  }
  TEST("a placed map drawn: its blocks where they belong, hatching elsewhere; the overlay leaves the rest alone") {
    lensnet_map_geometry g = ou66_layer27();
    float ones[16];
    lensviz_image img;
    lensviz_color top = lensviz_colormap_color(LENSVIZ_CMAP_MAGMA, 1.0f);
    size_t i;
    for (i = 0; i < 16; i++) ones[i] = 1.0f;
    if (lensviz_image_alloc(&img, 198, 198, &err) == LENSNET_OK) { /* 3 display pixels per image pixel */
      const unsigned char *p;
      lensviz_render_map_placed(ones, &g, LENSVIZ_CMAP_MAGMA, 0.0f, 1.0f, 0, &img);
      /* image pixels 25..40 are display pixels 75..122 */
      p = pixel(&img, 75, 100);
      CHECK(p[0] == top.r && p[1] == top.g && p[2] == top.b, "display (75, 100) is in cell column 0");
      p = pixel(&img, 122, 122);
      CHECK(p[0] == top.r && p[1] == top.g && p[2] == top.b, "display (122, 122) is in cell (3, 3)");
      p = pixel(&img, 74, 100);
      CHECK(p[0] == p[1] && p[1] == p[2] && (p[0] == 200 || p[0] == 238), "display (74, 100): hatching (%d %d %d)", p[0], p[1], p[2]);
      p = pixel(&img, 123, 100);
      CHECK(p[0] == p[1] && (p[0] == 200 || p[0] == 238), "display (123, 100): hatching");
      lensviz_fill(&img, lensviz_rgb(0, 0, 0));
      lensviz_overlay_placed(&img, ones, &g, LENSVIZ_CMAP_MAGMA, 0.0f, 1.0f, 1.0f);
      p = pixel(&img, 100, 100);
      CHECK(p[0] == top.r && p[1] == top.g && p[2] == top.b, "the overlay colours the blocks");
      p = pixel(&img, 50, 50);
      CHECK(p[0] == 0 && p[1] == 0 && p[2] == 0, "and leaves the picture alone beyond them");
      {
        size_t left = 0, right = 0, y;
        for (y = 80; y < 120; y++) { left += pixel(&img, 74, y)[0] == 255; right += pixel(&img, 123, y)[0] == 255; }
        CHECK(left >= 20 && left <= 30 && right >= 20 && right <= 30, "a dashed outline (5 of every 8 pixels) on display columns 74 and 123: "
              "%lu and %lu of 40 rows white", (unsigned long)left, (unsigned long)right);
      }
      lensviz_image_free(&img);
    }
  }
  TEST("scale bars: 1, 2 or 5 times a power of ten arcseconds, at most a third of the width") {
    lensviz_image img;
    static const struct { size_t width; double scale, length; long pixels; } bars[] = {
      {198, 0.1, 5.0, 50},  /* OU-66 shown 3x: 19.8" across, a third is 6.6": 5" = 50 display pixels */
      {66, 0.3, 5.0, 17},   /* OU-66 at its own pixels: 5" / 0.3 = 16.7 -> 17 pixels */
      {200, 0.1, 5.0, 50},  /* OU-200: 20" across */
      {101, 0.1, 2.0, 20},  /* a 101-pixel challenge cutout: 10.1", a third is 3.37": 2" */
      {400, 0.005, 0.5, 100}, /* 2" across: 0.5" */
    };
    size_t i;
    for (i = 0; i < sizeof bars / sizeof bars[0]; i++)
      if (lensviz_image_alloc(&img, bars[i].width, bars[i].width, &err) == LENSNET_OK) {
        double length = lensviz_scale_bar(&img, bars[i].scale);
        long margin = (long)bars[i].width / 40 > 3 ? (long)bars[i].width / 40 : 3, thick = (long)bars[i].width / 100 > 2 ? (long)bars[i].width / 100 : 2;
        long row = (long)bars[i].width - margin - 1, white = 0, x;
        for (x = 0; x < (long)bars[i].width; x++) white += pixel(&img, (size_t)x, (size_t)row)[0] == 255;
        CHECK(length == bars[i].length && white == bars[i].pixels, "%lu pixels at %g\"/pixel: %g\" over %ld pixels (want %g\" over %ld; bar %ld thick)",
              (unsigned long)bars[i].width, bars[i].scale, length, white, bars[i].length, bars[i].pixels, thick);
        lensviz_image_free(&img);
      }
    if (lensviz_image_alloc(&img, 10, 10, &err) == LENSNET_OK) {
      uint64_t before = lensviz_image_hash(&img);
      CHECK(lensviz_scale_bar(&img, 0.0) == 0.0 && lensviz_image_hash(&img) == before, "no pixel scale: no bar");
      lensviz_image_free(&img);
    }
  }
  TEST("the composite's legend names the bands from the metadata") {
    static const struct { const char *arch, *names, *legend; } cases[] = {
      {"input 4 4 4\nflatten\ndense name=d out=2", "J,Y,H,VIS", "R=VIS G=Y+H B=J"},
      {"input 3 4 4\nflatten\ndense name=d out=2", "J,Y,H", "R=H G=Y B=J"},
      {"input 2 4 4\nflatten\ndense name=d out=2", "g,r", "R=r G=g+r B=g"},
      {"input 1 4 4\nflatten\ndense name=d out=2", "VIS", "VIS"},
      {"input 3 4 4\nflatten\ndense name=d out=2", NULL, "R=band 2 G=band 1 B=band 0"},
    };
    char legend[64];
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
      lensnet_model *m = NULL;
      if (lensnet_model_create(cases[i].arch, &m, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); continue; }
      if (cases[i].names) lensnet_model_set_meta(m, "band_names", cases[i].names);
      lensviz_composite_legend(m, legend, sizeof legend);
      CHECK(!strcmp(legend, cases[i].legend), "%s: '%s', want '%s'", cases[i].names ? cases[i].names : "no names", legend, cases[i].legend);
      lensnet_model_free(m);
    }
  }
}

/* The layers lensviz_default_layer picks: those of PyTorch's references for the released finders,
 * and on small models the rule itself. */
static void test_default_layer(void) {
  static const struct { const char *name; size_t gradcam, dream; } finders[] = {{"OU_66", 27, 14}, {"OU_200", 20, 9}};
  lensnet_model *m = NULL;
  lensnet_error err;
  size_t i, layer = 0;
  char name[128];
  TEST("default layer of the released finders: the ReLU after the last convolution, the one after the middle one for dreams") {
    for (i = 0; i < sizeof finders / sizeof finders[0]; i++) {
      CHECK(lensnet_model_load(weights_path(finders[i].name), &m, &err) == LENSNET_OK, "%s", err.message);
      if (!m) continue;
      CHECK(lensviz_default_layer(m, LENSVIZ_LAYER_FOR_GRADCAM, &layer, &err) == LENSNET_OK && layer == finders[i].gradcam,
            "%s Grad-CAM: layer %lu, expected %lu", finders[i].name, (unsigned long)layer, (unsigned long)finders[i].gradcam);
      snprintf(name, sizeof name, "gradcam_%s_layer%lu.npy", finders[i].name, (unsigned long)layer);
      CHECK(check_file_exists(ref_path(name)), "PyTorch's Grad-CAM reference is of that layer: %s", path);
      CHECK(lensviz_default_layer(m, LENSVIZ_LAYER_FOR_FILTERS, &layer, &err) == LENSNET_OK && layer == finders[i].gradcam,
            "%s filters: layer %lu", finders[i].name, (unsigned long)layer);
      CHECK(lensviz_default_layer(m, LENSVIZ_LAYER_FOR_DREAM, &layer, &err) == LENSNET_OK && layer == finders[i].dream &&
            m->layers[layer].type == LENSNET_LAYER_RELU, "%s dream: layer %lu, expected %lu", finders[i].name, (unsigned long)layer,
            (unsigned long)finders[i].dream);
      lensnet_model_free(m);
      m = NULL;
    }
  }
  TEST("default layer: the convolution itself when no ReLU follows; a clear error without a convolution") {
    /* conv, tanh, conv, relu: the last convolution's ReLU is 3; the middle (first) convolution has a tanh after it */
    if ((m = small_model(0, 1)) != NULL) {
      CHECK(lensviz_default_layer(m, LENSVIZ_LAYER_FOR_GRADCAM, &layer, &err) == LENSNET_OK && layer == 3, "Grad-CAM: layer %lu", (unsigned long)layer);
      CHECK(lensviz_default_layer(m, LENSVIZ_LAYER_FOR_DREAM, &layer, &err) == LENSNET_OK && layer == 0, "dream: layer %lu", (unsigned long)layer);
      lensnet_model_free(m);
    }
    CHECK(lensnet_model_create("input 2 6 6\nmaxpool kernel=2\nrelu\nflatten\ndense name=d out=2", &m, &err) == LENSNET_OK, "%s", err.message);
    if (m) {
      layer = 99;
      CHECK(lensviz_default_layer(m, LENSVIZ_LAYER_FOR_GRADCAM, &layer, &err) == LENSNET_ERR_ARG && layer == 99 &&
            strstr(err.message, "no convolution"), "no convolution: %s", err.message);
      lensnet_model_free(m);
    }
  }
}

int main(void) {
  test_default_layer();
  test_methods();
  test_geometry();
  test_pictures();
  return check_summary();
}
