/* `lens explain` end to end: every method writes decodable panels, raw maps and GIFs, its
 * Grad-CAM matches PyTorch's (tests/data/wilde2022) within 1e-4 and is drawn where its cells lie,
 * scale bars follow the pixel scale, FITS cutouts are explained at the model's size, bad arguments fail naming the problem, and --channels picks bands exactly as
 * in `lens predict` (the cutout recipe both share). */
#define _POSIX_C_SOURCE 200809L
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "cli_check.h"
#include "decode_image.h"

#define OUT "build/explain_test"
#define LOG "build/explain_test_log.txt"
/* OU_66 on PyTorch's inputs, the start of most commands here */
#define OU66_INPUTS "explain --model weights/OU_66.safetensors --input %s/wilde2022/inputs_66.npy"

static int npy_shape(const char *file, int ndim, const size_t *shape) {
  lensnet_tensor t;
  lensnet_error err;
  int ok, d;
  if (lensnet_npy_read(file, &t, &err) != LENSNET_OK) return 0;
  ok = t.ndim == ndim;
  for (d = 0; ok && d < ndim; d++) ok = t.shape[d] == shape[d];
  lensnet_tensor_free(&t);
  return ok;
}

static void check_gradcam_parity(void) {
  lensnet_tensor mine, ref;
  lensnet_error err;
  char path[1024];
  snprintf(path, sizeof path, "%s/wilde2022/gradcam_OU_66_layer27.npy", check_data_dir());
  if (lensnet_npy_read(OUT "/gradcam.npy", &mine, &err) == LENSNET_OK) {
    if (lensnet_npy_read(path, &ref, &err) == LENSNET_OK) {
      double d = check_rel_diff(mine.data, ref.data, 16);
      CHECK(d <= 1e-4, "lens explain Grad-CAM vs PyTorch: %g", d);
      lensnet_tensor_free(&ref);
    }
    lensnet_tensor_free(&mine);
  } else CHECK(0, "%s", err.message);
}

static void test_methods(void) {
  static const char *methods[] = {"gradcam", "saliency", "occlusion", "class-image"};
  static const char *singles[] = {"gradcam_map", "gradcam_overlay", "saliency_map", "saliency_overlay", "occlusion_map",
                                  "occlusion_overlay", "class-image_map"};
  size_t s2[2] = {4, 4}, s3[3] = {4, 66, 66}, so[2] = {6, 6}, k;
  int w = 0, h = 0;
  CHECK(cli_shell("rm -rf " OUT) == 0, "a fresh folder, which lens explain creates");
  for (k = 0; k < 4; k++)
    CHECK(cli_lens(OU66_INPUTS " --method %s --patch 11 --iterations 4 --threads 2 --preprocess none --out " OUT " > " LOG " 2>&1",
                   check_data_dir(), methods[k]) == 0, "lens explain --method %s", methods[k]);
  CHECK(png_size(OUT "/image.png", &w, &h) && w == 264 && h == 264, "image.png 264x264 (got %dx%d)", w, h);
  for (k = 0; k < sizeof singles / sizeof singles[0]; k++) {
    char file[256];
    snprintf(file, sizeof file, OUT "/%s.png", singles[k]);
    w = h = 0;
    CHECK(png_size(file, &w, &h) && w == 264 && h == 264, "%s decodes as 264x264 (got %dx%d)", file, w, h);
  }
  CHECK(png_size(OUT "/gradcam.png", &w, &h) && w > 3 * 264 && h > 264, "gradcam.png panel %dx%d", w, h);
  CHECK(png_size(OUT "/saliency.png", &w, &h) && w > 3 * 264 && h > 2 * 264, "saliency.png panels %dx%d", w, h);
  CHECK(png_size(OUT "/occlusion.png", &w, &h) && w > 3 * 264, "occlusion.png %dx%d", w, h);
  CHECK(png_size(OUT "/class-image.png", &w, &h) && w >= 264, "class-image.png %dx%d", w, h);
  CHECK(npy_shape(OUT "/gradcam.npy", 2, s2), "gradcam.npy [4,4] (feature map)");
  CHECK(npy_shape(OUT "/saliency.npy", 3, s3), "saliency.npy [4,66,66]");
  CHECK(npy_shape(OUT "/occlusion.npy", 2, so), "occlusion.npy [6,6]: patch 11 over 66");
  CHECK(npy_shape(OUT "/class-image.npy", 3, s3), "class-image.npy [4,66,66]");
  check_gradcam_parity();
  {
    static unsigned char buf[1 << 20];
    FILE *f = fopen(OUT "/occlusion.gif", "rb");
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    int *delays = NULL, z = 0, comp = 0;
    unsigned char *frames = n ? stbi_load_gif_from_memory(buf, (int)n, &delays, &w, &h, &z, &comp, 3) : NULL;
    if (f) fclose(f);
    CHECK(frames && w == 2 * 264 && h == 264 && z == 36, "occlusion.gif: %dx%d, %d frames (one per cell)", w, h, z);
    stbi_image_free(frames);
    free(delays);
  }
}

/* A FITS cutout of the Bologna challenge, resized to OU_VIS's 200x200. */
static void test_fits_cutout(void) {
  size_t s6[2] = {6, 6};
  int w = 0, h = 0;
  CHECK(cli_lens("explain --model weights/OU_VIS.safetensors --input %s/bologna-challenge1/space_based/lens/imageEUC_VIS-100002.fits "
                 "--resize --minmax --method gradcam --scale 1 --out " OUT " > " LOG " 2>&1", check_data_dir()) == 0,
        "lens explain on a FITS cutout");
  CHECK(npy_shape(OUT "/gradcam.npy", 2, s6), "OU_VIS Grad-CAM at layer 20: 6x6");
  CHECK(cli_file_has(LOG, "scale bar: 0.0505\"/pixel (FITS CD1_1, resized)"), "the header's 0.1\" per pixel, over 200 / 101 after --resize");
  CHECK(png_size(OUT "/image.png", &w, &h) && w == 200 && h == 200, "image.png 200x200 at --scale 1");
}

/* One FITS file a band (samples/ou66: FILTER J, Y, H, VIS, OU-66's band_names): the same map
 * whether the files come in the model's order or a glob's (a note says so); a count of files that
 * is not the model's bands is refused. */
static void test_band_files(void) {
  CHECK(cli_lens("explain --model weights/OU_66.safetensors --input samples/ou66/0000002_J.fits,samples/ou66/0000002_Y.fits,"
                 "samples/ou66/0000002_H.fits,samples/ou66/0000002_VIS.fits --method saliency --out " OUT "/bands_a > " LOG " 2>&1") == 0 &&
            !cli_file_has(LOG, "FILTER"),
        "four files a band, in the model's order");
  CHECK(cli_lens("explain --model weights/OU_66.safetensors --input samples/ou66/0000002_H.fits,samples/ou66/0000002_J.fits,"
                 "samples/ou66/0000002_VIS.fits,samples/ou66/0000002_Y.fits --method saliency --out " OUT "/bands_b > " LOG " 2>&1") == 0 &&
            cli_file_has(LOG, "fed to the model in its band order J,Y,H,VIS"),
        "in a glob's order, with a note");
  CHECK(cli_same_file(OUT "/bands_a/saliency.npy", OUT "/bands_b/saliency.npy"), "the same saliency map, bit for bit");
  CHECK(cli_lens("explain --model weights/OU_66.safetensors --input samples/ou66/0000002_H.fits,samples/ou66/0000002_J.fits "
                 "--method saliency --out " OUT "/bands_c > " LOG " 2>&1") == 1 &&
            cli_file_has(LOG, "--input lists 2 files, one a band, but the model takes 4 bands"),
        "two files for a four-band model are refused");
}

/* ---- where maps are drawn, scale bars, names from the metadata ----------------------------- */

/* White pixels of one row of a PNG, and whether pixel (x, y) is the grey hatching that marks
 * where no cell lies. */
static long white_in_row(const unsigned char *rgb, int w, int y) {
  long n = 0;
  int x;
  for (x = 0; x < w; x++) n += rgb[3 * ((size_t)y * w + x)] == 255 && rgb[3 * ((size_t)y * w + x) + 1] == 255 && rgb[3 * ((size_t)y * w + x) + 2] == 255;
  return n;
}
static int hatched(const unsigned char *rgb, int w, int x, int y) {
  const unsigned char *p = rgb + 3 * ((size_t)y * w + x);
  return p[0] == p[1] && p[1] == p[2] && (p[0] == 200 || p[0] == 238);
}

static void test_geometry_and_scale(void) {
  const char *dir = check_data_dir();
  unsigned char *rgb;
  int w = 0, h = 0, n;
  /* OU-66, 4 display pixels per image pixel (264 across). Layer 27's cells (tests/test_lensnet.c
   * derives them by hand) cover image pixels 25..40, display pixels 100..163. */
  CHECK(cli_lens(OU66_INPUTS " --method gradcam --preprocess none --threads 1 --out " OUT " > " LOG " 2>&1", dir) == 0, "lens explain gradcam");
  CHECK(cli_file_has(LOG, "layer 27: 4x4 cells 4 pixels apart, centred on pixels 26.5 to 38.5 of 0..65, each seeing 54 x 54 pixels"),
        "the geometry is said");
  CHECK(cli_file_has(LOG, "scale bar: 0.3\"/pixel (model metadata)"), "the pixel scale and where it came from are said");
  rgb = stbi_load(OUT "/gradcam_map.png", &w, &h, &n, 3);
  CHECK(rgb && w == 264 && h == 264, "gradcam_map.png decodes");
  if (rgb && w == 264 && h == 264) {
    CHECK(hatched(rgb, w, 99, 132) && hatched(rgb, w, 132, 99) && hatched(rgb, w, 164, 132) && hatched(rgb, w, 40, 40),
          "no cell at display pixels 99 and 164 (image pixels 24 and 41), nor in the corners");
    CHECK(!hatched(rgb, w, 100, 132) && !hatched(rgb, w, 163, 132) && !hatched(rgb, w, 132, 100), "cells at display pixels 100 to 163");
  }
  stbi_image_free(rgb);
  /* 19.8" over 264 pixels: 0.075" each; a third of the width is 6.6", so 5", 66.7 -> 67 pixels, on
   * row 264 - 264/40 - 1 = 257 */
  rgb = stbi_load(OUT "/image.png", &w, &h, &n, 3);
  if (rgb && w == 264) CHECK(white_in_row(rgb, w, 257) == 67, "a 5\" bar of 67 pixels on image.png (got %ld)", white_in_row(rgb, w, 257));
  else CHECK(0, "image.png decodes");
  stbi_image_free(rgb);
  CHECK(cli_lens(OU66_INPUTS " --method saliency --preprocess none --pixel-scale 0.15 --threads 1 --out " OUT " > " LOG " 2>&1", dir) == 0 &&
        cli_file_has(LOG, "scale bar: 0.15\"/pixel (--pixel-scale)") && cli_file_has(LOG, "model was made for 0.3\""),
        "--pixel-scale wins, and a scale unlike the model's is noted");
  /* 9.9" over 264 pixels: a third is 3.3", so 2" = 53.3 -> 53 pixels */
  rgb = stbi_load(OUT "/saliency_map.png", &w, &h, &n, 3);
  if (rgb && w == 264) CHECK(white_in_row(rgb, w, 257) == 53, "a 2\" bar of 53 pixels (got %ld)", white_in_row(rgb, w, 257));
  else CHECK(0, "saliency_map.png decodes");
  stbi_image_free(rgb);
  CHECK(cli_lens(OU66_INPUTS " --method gradcam --layer 30 --out " OUT " > " LOG " 2>&1", dir) == 2 && cli_file_has(LOG, "mixes every position"),
        "Grad-CAM of a layer after the flatten is a usage error saying why");
}

static void test_refusals(void) {
  const char *dir = check_data_dir();
  char text[1024];
  CHECK(cli_lens(OU66_INPUTS " --method gradcam --layer 99 --out " OUT " > " LOG " 2>&1", dir) != 0, "--layer 99 fails");
  CHECK(cli_lens(OU66_INPUTS " --method nothing --out " OUT " > " LOG " 2>&1", dir) != 0, "an unknown method fails");
  CHECK(cli_lens(OU66_INPUTS " --index 6 --method saliency --out " OUT " > " LOG " 2>&1", dir) != 0, "--index 6 of 6 images fails");
  cli_text(LOG, text, sizeof text);
  CHECK(strstr(text, "--index 6") && strstr(text, "6 image"), "the message names the index: %s", text);
  cli_shell("rm -rf build/explain_made");
  CHECK(cli_lens(OU66_INPUTS " --index 6 --method saliency --out build/explain_made/a/b > " LOG " 2>&1", dir) != 0 &&
            access("build/explain_made", F_OK) != 0,
        "a failure found after the --out folders were made takes them away");
  /* a method refusing its settings (a patch larger than the input) writes nothing: no folder of a
   * lone image.png, and an earlier run's image.png is kept */
  CHECK(cli_lens(OU66_INPUTS " --method occlusion --patch 100 --out build/explain_made > " LOG " 2>&1", dir) == 2 &&
            access("build/explain_made", F_OK) != 0,
        "--patch 100 on 66 pixels fails as a usage error and leaves no folder");
  cli_shell("mkdir -p build/explain_made && echo earlier > build/explain_made/image.png");
  CHECK(cli_lens(OU66_INPUTS " --method occlusion --patch 100 --out build/explain_made > " LOG " 2>&1", dir) == 2 &&
            cli_file_has("build/explain_made/image.png", "earlier"),
        "and an earlier run's image.png stays as it was");
  /* a failure once the method has written some files (the panels side by side too large for a
   * picture: the map and the overlay come first): nothing of the run is left, an earlier run's
   * files stay, and no .pending file remains */
  cli_shell("rm -rf build/explain_made && mkdir -p build/explain_made && echo earlier > build/explain_made/gradcam.npy");
  CHECK(cli_lens(OU66_INPUTS " --method gradcam --scale 90 --out build/explain_made > " LOG " 2>&1", dir) == 1 &&
            cli_file_has(LOG, "LENSVIZ_MAX_PIXELS") && cli_file_has("build/explain_made/gradcam.npy", "earlier") &&
            access("build/explain_made/gradcam_map.png", F_OK) != 0 && access("build/explain_made/gradcam_map.png.pending", F_OK) != 0 &&
            access("build/explain_made/image.png", F_OK) != 0,
        "a run failing after its first files: nothing of it left, the earlier gradcam.npy kept");
  CHECK(cli_lens(OU66_INPUTS " --method gradcam --scale 200 --out build/explain_made > " LOG " 2>&1", dir) == 2 &&
            cli_file_has(LOG, "at most --scale 124"), "a picture larger than LENSVIZ_MAX_PIXELS: the largest --scale named");
  cli_shell("rm -rf build/explain_made");
  /* an --out that would replace the input, and an empty --out, are refused before anything runs */
  cli_shell("mkdir -p build/explain_made && cp %s/wilde2022/inputs_66.npy build/explain_made/saliency.npy", dir);
  CHECK(cli_lens("explain --model weights/OU_66.safetensors --input build/explain_made/saliency.npy --method saliency "
                 "--out build/explain_made > " LOG " 2>&1") == 2 && cli_file_has(LOG, "would overwrite the input") &&
            access("build/explain_made/image.png", F_OK) != 0,
        "--out holding the input as saliency.npy: refused");
  {
    lensnet_tensor t;
    lensnet_error err;
    memset(&t, 0, sizeof t);
    CHECK(lensnet_npy_read("build/explain_made/saliency.npy", &t, &err) == LENSNET_OK && t.ndim == 4, "and the input is untouched");
    if (t.data) lensnet_tensor_free(&t);
  }
  CHECK(cli_lens(OU66_INPUTS " --method saliency --out '' > " LOG " 2>&1", dir) == 2 && cli_file_has(LOG, "an empty path"),
        "an empty --out is a usage error (it wrote into /)");
  CHECK(cli_lens(OU66_INPUTS " --method ig --steps 0 --out build/explain_made > " LOG " 2>&1", dir) == 2 && cli_file_has(LOG, "--steps") &&
            access("build/explain_made/ig.npy", F_OK) != 0,
        "--steps 0 (which meant the default, 32) is a usage error");
  CHECK(cli_lens(OU66_INPUTS " --method smoothgrad --noise 0 --out build/explain_made > " LOG " 2>&1", dir) == 2,
        "--noise 0 (which meant the default, 0.15) is a usage error");
  cli_shell("rm -rf build/explain_made");
}

/* ---- --channels: the cutout recipe lens predict and lens explain share ---------------------- */

#define CH "build/cli_channels"

static void test_channels(void) {
  lensnet_model *m = NULL;
  lensnet_tensor three, two;
  lensnet_error err;
  size_t s3[4] = {2, 3, 6, 6}, s2[4] = {2, 2, 6, 6}, i, b;
  if (cli_shell("mkdir -p " CH) != 0) { CHECK(0, "cannot create " CH); return; }
  if (lensnet_model_create("input 2 6 6\nflatten\ndense name=d out=2", &m, &err) != LENSNET_OK) { CHECK(0, "model: %s", err.message); return; }
  lensnet_model_init(m, 3);
  lensnet_model_set_meta(m, "classes", "non-lens,lens");
  lensnet_model_save(m, CH "/m.safetensors", &err);
  lensnet_tensor_alloc(&three, 4, s3, &err);
  lensnet_tensor_alloc(&two, 4, s2, &err);
  for (i = 0; i < three.shape[0] * 3 * 36; i++) three.data[i] = (float)((i * 7919) % 101) - 30.0f;
  for (b = 0; b < 2; b++) { /* bands 2 and 0 of each image */
    memcpy(two.data + (b * 2) * 36, three.data + (b * 3 + 2) * 36, 36 * sizeof(float));
    memcpy(two.data + (b * 2 + 1) * 36, three.data + (b * 3) * 36, 36 * sizeof(float));
  }
  lensnet_npy_write(CH "/three.npy", &three, &err);
  lensnet_npy_write(CH "/two.npy", &two, &err);
  CHECK(cli_lens("predict --model " CH "/m.safetensors --minmax --channels 2,0 " CH "/three.npy --out " CH "/p3.npy 2>/dev/null") == 0 &&
        cli_lens("predict --model " CH "/m.safetensors --minmax " CH "/two.npy --out " CH "/p2.npy 2>/dev/null") == 0 &&
        cli_same_file(CH "/p3.npy", CH "/p2.npy"), "predict --channels 2,0 scores bands 2 and 0");
  CHECK(cli_lens("explain --model " CH "/m.safetensors --minmax --channels 2,0 --input " CH "/three.npy --index 1 --method saliency "
                 "--threads 1 --out " CH "/e3 2>/dev/null") == 0 &&
        cli_lens("explain --model " CH "/m.safetensors --minmax --input " CH "/two.npy --index 1 --method saliency --threads 1 --out " CH
                 "/e2 2>/dev/null") == 0 &&
        cli_same_file(CH "/e3/saliency.npy", CH "/e2/saliency.npy"), "explain --channels 2,0 explains the same input");
  CHECK(cli_lens("explain --model " CH "/m.safetensors --channels 0 --input " CH "/three.npy --method saliency --out " CH "/e1 2>/dev/null") == 2,
        "explain --channels of the wrong length is a usage error, as in predict");
  CHECK(cli_lens("explain --model " CH "/m.safetensors --channels 0,x --input " CH "/three.npy --method saliency --out " CH "/e1 2>/dev/null") == 2,
        "explain --channels 0,x is a usage error");
  CHECK(cli_lens("explain --model " CH "/m.safetensors --input " CH "/two.npy --method gradcam --out " CH "/e4 2> " CH "/err.txt") == 2 &&
        cli_file_has(CH "/err.txt", "no convolution") && cli_file_has(CH "/err.txt", "--layer"),
        "gradcam without --layer on a model without a convolution is a usage error saying so");
  CHECK(cli_lens("explain --model " CH "/m.safetensors --input - --method saliency --out " CH "/e5 2> " CH "/err.txt") == 2 &&
            cli_file_has(CH "/err.txt", "is for class-image and filters"),
        "--input - with a method that explains an image is a usage error (it ran on a blank image)");
  lensnet_tensor_free(&three);
  lensnet_tensor_free(&two);
  lensnet_model_free(m);
  cli_shell("rm -rf " CH);
}

/* theta_E from the first row of lens predict's CSV of a regression model (input,theta_E,...) */
static double predicted_theta_e(const char *csv) {
  char text[4096];
  const char *row;
  double v = -1e9;
  if (cli_text(csv, text, sizeof text) && (row = strchr(text, '\n')) != NULL && (row = strchr(row, ',')) != NULL) v = atof(row + 1);
  return v;
}

/* A regression model (the shipped lens-modelling network) explained: its first target by default
 * with a note, occlusion as the change of the predicted theta_E in arcsec, which lens predict on
 * the occluded image confirms. The image is min-max scaled, so a patch of the raw image set to
 * its minimum is the patch --fill 0 makes after scaling (the maximum kept outside the patch). */
#define RG "build/explain_regress"
static void test_regression(void) {
  lensnet_tensor t, map;
  lensnet_error err;
  char out[8192];
  size_t k, r, c, best = 0, hw, argmax = 0;
  int rc;
  float lo;
  CHECK(cli_shell("rm -rf " RG) == 0 && cli_lens("sim --preset ensai-modelling --n 1 --seed 5 --out " RG "/sim > /dev/null 2>&1") == 0, "simulated");
  rc = cli_lens_output(out, sizeof out, "explain --model weights/ensai-sim.safetensors --input " RG "/sim/images.npy --method occlusion --patch 32 "
                                        "--out " RG "/occ");
  CHECK(rc == 0 && strstr(out, "is a regression model; explaining output 0, its prediction of theta_E") && strstr(out, "5..9 their log-variances"),
        "a regression model: output 0 (theta_E) by default, with a note naming the others: exit %d: %s", rc, out);
  if (rc != 0 || lensnet_npy_read(RG "/occ/occlusion.npy", &map, &err) != LENSNET_OK) {
    CHECK(0, "occlusion.npy: %s", rc ? out : err.message);
    return;
  }
  CHECK(map.ndim == 2 && map.shape[0] == 6 && map.shape[1] == 6, "6 x 6 patches of 32 on 192 pixels");
  if (lensnet_npy_read(RG "/sim/images.npy", &t, &err) != LENSNET_OK) {
    CHECK(0, "%s", err.message);
    lensnet_tensor_free(&map);
    return;
  }
  hw = 192 * 192;
  for (k = 1; k < hw; k++) if (t.data[k] > t.data[argmax]) argmax = k;
  for (k = 0; k < 36; k++) { /* the patch that moves theta_E most, the brightest pixel outside it */
    size_t y = argmax / 192, x = argmax % 192;
    if (y / 32 == k / 6 && x / 32 == k % 6) continue;
    if (fabsf(map.data[k]) > fabsf(map.data[best])) best = k;
  }
  lo = t.data[0];
  for (k = 1; k < hw; k++) if (t.data[k] < lo) lo = t.data[k];
  CHECK(cli_lens("predict --model weights/ensai-sim.safetensors " RG "/sim/images.npy --csv " RG "/plain.csv 2> /dev/null") == 0, "predicted");
  for (r = (best / 6) * 32; r < (best / 6) * 32 + 32; r++)
    for (c = (best % 6) * 32; c < (best % 6) * 32 + 32; c++) t.data[r * 192 + c] = lo;
  CHECK(lensnet_npy_write(RG "/occluded.npy", &t, &err) == LENSNET_OK, "%s", err.message);
  CHECK(cli_lens("predict --model weights/ensai-sim.safetensors " RG "/occluded.npy --csv " RG "/occluded.csv 2> /dev/null") == 0, "predicted");
  {
    double before = predicted_theta_e(RG "/plain.csv"), after = predicted_theta_e(RG "/occluded.csv");
    CHECK(fabs(after - before) > 1e-3 && fabs(map.data[best] - (after - before)) < 1e-4 + 1e-3 * fabs(after - before),
          "patch %lu: the map's %.6f arcsec = lens predict's theta_E %.6f -> %.6f (%.6f)", (unsigned long)best, map.data[best], before, after,
          after - before);
  }
  lensnet_tensor_free(&t);
  lensnet_tensor_free(&map);
  rc = cli_lens_output(out, sizeof out, "explain --model weights/ensai-sim.safetensors --input " RG "/sim/images.npy --method saliency --target 0 "
                                        "--out " RG "/s0");
  CHECK(rc == 0 && !strstr(out, "is a regression model"), "--target given: no note: %s", out);
  CHECK(cli_lens("explain --model weights/ensai-sim.safetensors --input " RG "/sim/images.npy --method saliency --out " RG "/sd > /dev/null 2>&1") == 0 &&
            cli_same_file(RG "/s0/saliency.npy", RG "/sd/saliency.npy"),
        "the default target of a regression model is output 0");
  rc = cli_lens_output(out, sizeof out, "explain --model weights/ensai-sim.safetensors --input " RG "/sim/images.npy --method saliency --target 10 "
                                        "--out " RG "/s10");
  CHECK(rc == 2 && strstr(out, "10 outputs"), "--target past the outputs: exit %d: %s", rc, out);
  cli_shell("rm -rf " RG);
}

int main(void) {
  TEST("lens explain writes decodable panels, raw maps and GIFs") test_methods();
  TEST("lens explain on a FITS cutout, resized to the model") test_fits_cutout();
  TEST("lens explain on one FITS file a band, put in the model's band order by FILTER") test_band_files();
  TEST("lens explain draws cells where they lie, with scale bars from the metadata or --pixel-scale") test_geometry_and_scale();
  TEST("lens explain refuses a missing layer, an unknown method and an index past the end") test_refusals();
  CHECK(cli_shell("rm -rf " OUT) == 0, "clean up");
  remove(LOG);
  if (cli_have_lens()) TEST("lens predict and lens explain share the cutout recipe and --channels") test_channels();
  if (cli_have_lens()) TEST("lens explain of a regression model: its first target, occlusion in arcsec as lens predict sees it") test_regression();
  return check_summary();
}
