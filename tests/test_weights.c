/* The shipped weights: every finder trained here (weights/ *-sim, ou66-scan) loads, is the
 * architecture its card names, and carries the metadata lens predict and lens explain use: classes,
 * preprocess, band names and pixel scale. tests/test_cli_predict.c checks that they still find
 * lenses in a fresh simulated sample none of them saw. */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"
#include <string.h>

typedef struct {
  const char *file;
  size_t bands, side, params;
  const char *band_names, *pixel_scale;
} shipped;

static const shipped finders[] = {
  {"weights/ou66-sim.safetensors", 4, 66, 203192, "VIS,Y,J,H", "0.3"},
  {"weights/ou66-jyh-sim.safetensors", 3, 66, 202742, "J,Y,H", "0.3"},
  {"weights/ou66-j-sim.safetensors", 1, 66, 201842, "J", "0.3"},
  {"weights/ou66-y-sim.safetensors", 1, 66, 201842, "Y", "0.3"},
  {"weights/ou66-h-sim.safetensors", 1, 66, 201842, "H", "0.3"},
  {"weights/ou200-sim.safetensors", 4, 200, 331632, "VIS,Y,J,H", "0.1"},
  {"weights/ou200-vis-sim.safetensors", 1, 200, 327882, "VIS", "0.1"},
  {"weights/challenge1-vis-sim.safetensors", 1, 101, 324262, "VIS", "0.1"},
  {"weights/ou66-scan.safetensors", 4, 66, 203192, "VIS,Y,J,H", "0.3"},
};

/* The regression networks shipped: lens modelling (ensai-sim, calibrated) and the locator that
 * lens find and lens predict --locator use. */
typedef struct {
  const char *file;
  size_t bands, side, params;
  const char *targets, *band_names, *pixel_scale;
  int calibrated;
} shipped_regression;

static const shipped_regression regressions[] = {
  {"weights/ensai-sim.safetensors", 1, 192, 1316810, "theta_E,e1,e2,center_x,center_y", "F160W", "0.04", 1},
  {"weights/ou66-locator.safetensors", 4, 66, 204194, "center_x,center_y", "VIS,Y,J,H", "0.3", 0},
};

static int meta_is(const lensnet_model *m, const char *key, const char *want) {
  const char *v = lensnet_model_meta(m, key);
  return v && !strcmp(v, want);
}

static void test_shipped(void) {
  size_t i;
  for (i = 0; i < sizeof finders / sizeof *finders; i++) {
    const shipped *s = &finders[i];
    lensnet_model *m = NULL;
    lensnet_error err;
    CHECK(lensnet_model_load(s->file, &m, &err) == LENSNET_OK, "%s: %s", s->file, err.message);
    if (!m) continue;
    CHECK(m->in_c == s->bands && m->in_h == s->side && m->in_w == s->side && m->out_features == 2, "%s: shapes", s->file);
    CHECK(lensnet_model_parameter_count(m) == s->params, "%s: parameter count %lu", s->file, (unsigned long)lensnet_model_parameter_count(m));
    CHECK(meta_is(m, "classes", "non-lens,lens"), "%s: class names", s->file);
    CHECK(meta_is(m, "preprocess", "minmax"), "%s: preprocess minmax", s->file);
    CHECK(meta_is(m, "band_names", s->band_names), "%s: band_names %s", s->file, s->band_names);
    CHECK(meta_is(m, "pixel_scale", s->pixel_scale), "%s: pixel_scale %s", s->file, s->pixel_scale);
    lensnet_model_free(m);
  }
}

static void test_shipped_regressions(void) {
  size_t i, k;
  for (i = 0; i < sizeof regressions / sizeof *regressions; i++) {
    const shipped_regression *s = &regressions[i];
    lensnet_model *m = NULL;
    lensnet_regression r;
    lensnet_error err;
    CHECK(lensnet_model_load(s->file, &m, &err) == LENSNET_OK, "%s: %s", s->file, err.message);
    if (!m) continue;
    CHECK(lensnet_model_regression(m, &r, &err) == LENSNET_OK, "%s: %s", s->file, err.message);
    CHECK(r.nll && m->out_features == 2 * r.count, "%s: a mean and a log-variance per target", s->file);
    CHECK(m->in_c == s->bands && m->in_h == s->side && m->in_w == s->side, "%s: input shape", s->file);
    CHECK(lensnet_model_parameter_count(m) == s->params, "%s: parameter count %lu", s->file, (unsigned long)lensnet_model_parameter_count(m));
    CHECK(meta_is(m, "regress.targets", s->targets), "%s: targets %s", s->file, s->targets);
    CHECK(meta_is(m, "preprocess", "minmax"), "%s: preprocess minmax", s->file);
    CHECK(meta_is(m, "band_names", s->band_names), "%s: band_names %s", s->file, s->band_names);
    CHECK(meta_is(m, "pixel_scale", s->pixel_scale), "%s: pixel_scale %s", s->file, s->pixel_scale);
    for (k = 0; k < r.count; k++) CHECK(r.std[k] > 0 && r.scale[k] > 0, "%s: target %lu standardisation", s->file, (unsigned long)k);
    CHECK(!s->calibrated || (lensnet_model_meta(m, "regress.scale") && lensnet_model_meta(m, "regress.slope") && lensnet_model_meta(m, "regress.offset")),
          "%s: calibrated, means (regress.slope, regress.offset) and sigmas (regress.scale)", s->file);
    lensnet_model_free(m);
  }
}

int main(void) {
  TEST("every shipped finder trained here loads with its architecture and metadata") test_shipped();
  TEST("the shipped regression networks load with their targets, standardisation and metadata") test_shipped_regressions();
  return check_summary();
}
