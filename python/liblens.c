/* liblens.c - the flat entry points of build/liblens.so, for callers through a foreign-function
 * interface (the Python module python/lens calls them with ctypes).
 *
 * `make shared` compiles tools/impl.c (the three headers' implementations) and this file with
 * -fPIC into build/liblens.so, so every public lensnet_, lenssim_ and lensviz_ function is
 * exported too. The functions here exist where the library's own would make a caller mirror an
 * option struct whose layout is a detail (lensnet_cutout_desc, lensviz_desc, lensnet_fit_desc,
 * lenssim_dataset): they take plain numbers, strings and float arrays, fill those structs and
 * call the library's recipes, adding no logic of their own. Every function that can fail returns
 * a lensnet_result and fills an optional lensnet_error (lenssim's errors are copied into one).
 * Arrays are C order float32 and owned by the caller; nothing here keeps a pointer after it
 * returns, except the fit handle, which keeps copies of its settings' text. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "lensnet.h"
#include "lenssim.h"
#include "lensviz.h"

#if defined(__GNUC__) || defined(__clang__)
#define LIBLENS_API __attribute__((visibility("default")))
#else
#define LIBLENS_API
#endif

static lensnet_result liblens__fail(lensnet_error *err, lensnet_result r, const char *message) {
  if (err) {
    err->result = r;
    snprintf(err->message, sizeof err->message, "%s", message);
  }
  return r;
}

/* A lenssim failure as a lensnet_error: the same sentence, a matching result. */
static lensnet_result liblens__sim_fail(lensnet_error *err, const lenssim_error *serr) {
  lensnet_result r = serr->result == LENSSIM_ERR_NOMEM ? LENSNET_ERR_NOMEM
                     : serr->result == LENSSIM_ERR_TOO_LARGE ? LENSNET_ERR_TOO_LARGE
                     : serr->result == LENSSIM_ERR_SYNTAX ? LENSNET_ERR_FORMAT : LENSNET_ERR_ARG;
  return liblens__fail(err, r, serr->message[0] ? serr->message : lenssim_result_string(serr->result));
}

LIBLENS_API const char *liblens_version(void) { return LENSNET_VERSION_STRING; }

/* Whether lensviz_png_write can write PNG in this build (0 under LENSVIZ_NO_PNG). */
LIBLENS_API int liblens_has_png(void) { return LENSVIZ_HAS_PNG; }

/* ---- models ------------------------------------------------------------------------------------ */

/* in_c, in_h, in_w, out_features, layer_count, param_count, meta_count into shape[7]. */
LIBLENS_API void liblens_model_shape(const lensnet_model *m, size_t *shape) {
  shape[0] = m->in_c; shape[1] = m->in_h; shape[2] = m->in_w; shape[3] = m->out_features;
  shape[4] = m->layer_count; shape[5] = m->param_count; shape[6] = m->meta_count;
}

/* Parameter i: its name, shape, and where its values are in m->values; 0 when there is no i. */
LIBLENS_API int liblens_model_param_at(const lensnet_model *m, size_t i, const char **name, size_t *shape, int *ndim,
                                       size_t *offset, size_t *count, int *trainable) {
  const lensnet_param *p;
  int d;
  if (i >= m->param_count) return 0;
  p = &m->params[i];
  *name = p->name;
  *ndim = p->ndim;
  for (d = 0; d < LENSNET_PARAM_MAX_DIMS; d++) shape[d] = d < p->ndim ? p->shape[d] : 0;
  *offset = p->offset;
  *count = p->count;
  *trainable = p->trainable;
  return 1;
}

/* Every parameter value of the model, contiguous (value_count floats); the model owns them. */
LIBLENS_API float *liblens_model_values(lensnet_model *m, size_t *count) {
  *count = m->value_count;
  return m->values;
}

/* Metadata entry i; 0 when there is no i. */
LIBLENS_API int liblens_model_meta_at(const lensnet_model *m, size_t i, const char **key, const char **value) {
  if (i >= m->meta_count) return 0;
  *key = m->meta_keys[i];
  *value = m->meta_values[i];
  return 1;
}

/* Layer i's type name and its options as text (lensnet_layer_describe); 0 when there is no i. */
LIBLENS_API int liblens_model_layer_at(const lensnet_model *m, size_t i, const char **type, char *describe, size_t cap) {
  if (i >= m->layer_count) return 0;
  *type = lensnet_layer_type_name(m->layers[i].type);
  lensnet_layer_describe(&m->layers[i], describe, cap);
  return 1;
}

/* A fresh model: arch is a built-in name (ou66, ou200, ensai, resnet18, resnet34, p4cnn: lensnet_arch_builtin_head with
 * `bands` inputs and `outputs` outputs) or architecture text; initialised from seed with He et
 * al.'s initialisation when he is nonzero, else PyTorch's default. */
LIBLENS_API lensnet_result liblens_model_new(const char *arch, int bands, int outputs, int he, unsigned long long seed,
                                             lensnet_model **out, lensnet_error *err) {
  char builtin[LENSNET_ARCH_TEXT_MAX];
  const char *text = arch;
  lensnet_result r;
  *out = NULL;
  if (!arch) return liblens__fail(err, LENSNET_ERR_ARG, "no architecture given");
  if (bands < 1 || outputs < 1) {
    char message[160];
    snprintf(message, sizeof message, "a model takes at least one band and gives at least one output (bands %d, outputs %d)", bands, outputs);
    return liblens__fail(err, LENSNET_ERR_ARG, message);
  }
  if (lensnet_arch_builtin_head(arch, bands, outputs, builtin, sizeof builtin)) text = builtin;
  if ((r = lensnet_model_create(text, out, err)) != LENSNET_OK) return r;
  if (he) lensnet_model_init_he(*out, (uint64_t)seed);
  else lensnet_model_init(*out, (uint64_t)seed);
  return LENSNET_OK;
}

/* ---- cutouts and predictions ------------------------------------------------------------------- */

static lensnet_cutout_desc liblens__cutout(const size_t *channels, size_t channel_count, int size_fit, int minmax) {
  lensnet_cutout_desc d;
  memset(&d, 0, sizeof d);
  d.channels = channel_count ? channels : NULL;
  d.channel_count = channel_count;
  d.size = size_fit == 2 ? LENSNET_SIZE_CROP : size_fit == 1 ? LENSNET_SIZE_RESIZE : LENSNET_SIZE_EXACT;
  d.minmax = minmax != 0;
  return d;
}

/* "image K: " before a message about image k of a batch of more than one. */
static void liblens__prefix(lensnet_error *err, size_t n, size_t k) {
  char text[sizeof err->message];
  if (!err || n < 2) return;
  snprintf(text, sizeof text, "image %lu: %.290s", (unsigned long)k, err->message);
  memcpy(err->message, text, sizeof text);
}

/* images [n, bands, h, w] -> out [n, in_c, in_h, in_w] by lensnet_cutout_prepare (size_fit: 0
 * exact, 1 bilinear resize, 2 central crop; channels: the input band of each model channel, or
 * none). counts (may be NULL) gets NaN pixels, infinite pixels, unused bands and the blank input
 * pixels a resize filled in from their neighbours. */
LIBLENS_API lensnet_result liblens_prepare(const lensnet_model *m, const float *images, size_t n, size_t bands, size_t h, size_t w,
                                           const size_t *channels, size_t channel_count, int size_fit, int minmax, float *out,
                                           size_t *counts, lensnet_error *err) {
  lensnet_cutout_desc d = liblens__cutout(channels, channel_count, size_fit, minmax);
  size_t k, per_in = bands * h * w, per_out = m->in_c * m->in_h * m->in_w;
  if (counts) counts[0] = counts[1] = counts[2] = counts[3] = 0;
  for (k = 0; k < n; k++) {
    lensnet_cutout_report rep;
    if (lensnet_cutout_prepare(m, &d, images + k * per_in, bands, h, w, out + k * per_out, &rep, err) != LENSNET_OK) {
      liblens__prefix(err, n, k);
      return err ? err->result : LENSNET_ERR_ARG;
    }
    if (counts) { counts[0] += rep.nan_pixels; counts[1] += rep.inf_pixels; counts[2] = rep.unused_bands; counts[3] += rep.filled_pixels; }
  }
  return LENSNET_OK;
}

/* What lens predict computes for each of images [n, bands, h, w]: the image prepared as
 * liblens_prepare does, one forward pass (with the weights packed as lens predict packs them:
 * lensnet_model_pack_winograd, or with exact lensnet_model_pack, lens predict --exact), the
 * logits into logits [n, out_features] and, when p_lens is not NULL, P(lens)
 * (lensnet_lens_probability of the class named "lens") into p_lens[n]. */
LIBLENS_API lensnet_result liblens_predict(const lensnet_model *m, const float *images, size_t n, size_t bands, size_t h, size_t w,
                                           const size_t *channels, size_t channel_count, int size_fit, int minmax, int exact,
                                           float *logits, double *p_lens, size_t *counts, lensnet_error *err) {
  lensnet_cutout_desc d = liblens__cutout(channels, channel_count, size_fit, minmax);
  size_t per = m->in_c * m->in_h * m->in_w, ws = lensnet_model_workspace_floats(m, 1), k, lens = 0;
  float *input = (float *)malloc((per + ws) * sizeof(float));
  lensnet_packed *pk = NULL;
  lensnet_result r = LENSNET_OK;
  if (counts) counts[0] = counts[1] = counts[2] = counts[3] = 0;
  if (!ws || !input) { free(input); return liblens__fail(err, LENSNET_ERR_NOMEM, "out of memory for the model's workspace"); }
  if ((r = exact ? lensnet_model_pack(m, &pk, err) : lensnet_model_pack_winograd(m, &pk, err)) != LENSNET_OK) { free(input); return r; }
  lensnet_model_class_index(m, "lens", &lens, NULL); /* cannot fail: the model has outputs */
  for (k = 0; k < n && r == LENSNET_OK; k++) {
    lensnet_cutout_report rep;
    float *out = logits + k * m->out_features;
    r = lensnet_cutout_prepare(m, &d, images + k * bands * h * w, bands, h, w, input, &rep, err);
    if (r == LENSNET_OK) r = lensnet_model_forward_packed(m, pk, 1, input, out, input + per, err);
    if (r != LENSNET_OK) liblens__prefix(err, n, k);
    else {
      if (p_lens) p_lens[k] = lensnet_lens_probability(out, m->out_features, lens);
      if (counts) { counts[0] += rep.nan_pixels; counts[1] += rep.inf_pixels; counts[2] = rep.unused_bands; counts[3] += rep.filled_pixels; }
    }
  }
  lensnet_packed_free(pk);
  free(input);
  return r;
}

/* A regression model's outputs [n, out_features] (liblens_predict's logits) as each target's mean
 * and sigma in physical units, [n, targets] each, by lensnet_model_regression and
 * lensnet_regression_combine (one pass per object: what lens predict writes without --mc).
 * *targets gets the target count; with mean NULL only that. */
LIBLENS_API lensnet_result liblens_regress(const lensnet_model *m, const float *outputs, size_t n, double *mean, double *sigma,
                                           size_t *targets, lensnet_error *err) {
  lensnet_regression r;
  lensnet_result res = lensnet_model_regression(m, &r, err);
  size_t k;
  if (res != LENSNET_OK) return res;
  *targets = r.count;
  for (k = 0; mean && k < n; k++)
    lensnet_regression_combine(&r, outputs + k * m->out_features, 1, m->out_features, mean + k * r.count, sigma + k * r.count, NULL, NULL);
  return LENSNET_OK;
}

/* ---- explanations ------------------------------------------------------------------------------ */

/* The methods lens explain runs on one image, by its names there. */
static const char *const liblens__methods[] = {"occlusion", "saliency", "guided", "gradcam", "guided-gradcam", "ig", "smoothgrad", NULL};

/* One method of lensviz.h on one prepared image [in_c, in_h, in_w] (liblens_prepare), with the
 * settings lens explain gives it: patch, stride and fill (occlusion), steps (ig), samples and
 * noise (smoothgrad), 0 meaning lensviz's default, and the seed. target -1: the lens class;
 * layer -1: lensviz_default_layer's (Grad-CAM and guided Grad-CAM). The map's shape goes to
 * shape[*ndim] (occlusion [rows, cols], gradcam [h, w] of the layer, the others [C, H, W]) and
 * the layer used to *layer_used; with out NULL nothing is computed, else out holds cap floats.
 * *base (may be NULL) gets P(target) of the image for occlusion. */
LIBLENS_API lensnet_result liblens_explain(lensnet_model *m, const char *method, const float *image, int target, long layer,
                                           size_t patch, size_t stride, float fill, size_t steps, size_t samples, float noise,
                                           unsigned long long seed, float *out, size_t cap, size_t *shape, int *ndim,
                                           long *layer_used, double *base, lensnet_error *err) {
  lensviz_desc d, resolved;
  lensnet_map_geometry cells;
  size_t k, c, h, w, need;
  int which = -1;
  lensnet_result r;
  char msg[200];
  for (k = 0; liblens__methods[k]; k++)
    if (method && !strcmp(method, liblens__methods[k])) which = (int)k;
  if (which < 0) {
    snprintf(msg, sizeof msg, "unknown method '%.60s' (known: occlusion, saliency, guided, gradcam, guided-gradcam, ig, smoothgrad)",
             method ? method : "");
    return liblens__fail(err, LENSNET_ERR_ARG, msg);
  }
  if (target >= 0 && (size_t)target >= m->out_features) {
    snprintf(msg, sizeof msg, "target %d: the model has %lu outputs", target, (unsigned long)m->out_features);
    return liblens__fail(err, LENSNET_ERR_ARG, msg);
  }
  memset(&d, 0, sizeof d);
  d.seed = (uint64_t)seed;
  d.patch = patch; d.stride = stride; d.fill = fill;
  d.steps = steps; d.samples = samples; d.noise = noise;
  resolved = lensviz_desc_resolve(&d); /* d goes to the methods as given, which refuse a NaN or negative setting */
  *layer_used = -1;
  if (which == 3 || which == 4) {
    size_t L;
    if (layer < 0) {
      if ((r = lensviz_default_layer(m, LENSVIZ_LAYER_FOR_GRADCAM, &L, err)) != LENSNET_OK) return r;
    } else L = (size_t)layer;
    if ((r = lensviz_layer_shape(m, L, &c, &h, &w, err)) != LENSNET_OK) return r;
    if (lensnet_receptive_field(m, L, &cells, err) != LENSNET_OK) { /* as lens explain: a layer whose cells lie on the image */
      snprintf(msg, sizeof msg, "layer %lu: %.120s; Grad-CAM needs a layer before it", (unsigned long)L, err ? err->message : "no place on the image");
      return liblens__fail(err, LENSNET_ERR_ARG, msg);
    }
    *layer_used = (long)L;
  }
  if (which == 0) {
    lensviz_occlusion_size(m, &resolved, &h, &w);
    if (!h || !w) {
      snprintf(msg, sizeof msg, "patch %lu does not fit the %lux%lu input", (unsigned long)resolved.patch, (unsigned long)m->in_h,
               (unsigned long)m->in_w);
      return liblens__fail(err, LENSNET_ERR_ARG, msg);
    }
    *ndim = 2; shape[0] = h; shape[1] = w;
  } else if (which == 3) {
    *ndim = 2; shape[0] = h; shape[1] = w;
  } else {
    *ndim = 3; shape[0] = m->in_c; shape[1] = m->in_h; shape[2] = m->in_w;
  }
  need = shape[0] * shape[1] * (*ndim == 3 ? shape[2] : 1);
  if (!out) return LENSNET_OK;
  if (!image) return liblens__fail(err, LENSNET_ERR_ARG, "no image given");
  if (cap < need) return liblens__fail(err, LENSNET_ERR_ARG, "the output array is smaller than the map");
  switch (which) {
    case 0: return lensviz_occlusion(m, image, target, &d, out, base, err);
    case 1: return lensviz_saliency(m, image, target, &d, out, err);
    case 2: return lensviz_guided_backprop(m, image, target, &d, out, err);
    case 3: return lensviz_gradcam(m, image, target, (size_t)*layer_used, &d, out, err);
    case 4: return lensviz_guided_gradcam(m, image, target, (size_t)*layer_used, &d, out, err);
    case 5: return lensviz_integrated_gradients(m, image, target, &d, out, err);
    default: return lensviz_smoothgrad(m, image, target, &d, out, err);
  }
}

/* A map of liblens_explain on the pixels of the model's input [in_h, in_w] (lensviz_map_to_image):
 * Grad-CAM's cells where the layer's receptive fields lie (lensnet_receptive_field), occlusion's on
 * their patches (lensviz_occlusion_grid), nearest cell (smooth 0) or bilinear between cell centres
 * (smooth 1); inside (may be NULL) gets 1 for pixels a cell covers, 0 elsewhere. The map is
 * [rows, cols], checked against the cells; layer, patch and stride as liblens_explain took them;
 * maps of the other methods are already on the pixels. */
LIBLENS_API lensnet_result liblens_map_on_image(const lensnet_model *m, const char *method, long layer, size_t patch, size_t stride,
                                                const float *map, size_t rows, size_t cols, int smooth, float *out, unsigned char *inside,
                                                lensnet_error *err) {
  char msg[200];
  lensnet_map_geometry g;
  lensnet_result r;
  if (method && !strcmp(method, "gradcam")) {
    size_t L = (size_t)layer;
    if (layer < 0 && (r = lensviz_default_layer(m, LENSVIZ_LAYER_FOR_GRADCAM, &L, err)) != LENSNET_OK) return r;
    if ((r = lensnet_receptive_field(m, L, &g, err)) != LENSNET_OK) return r;
  } else if (method && !strcmp(method, "occlusion")) {
    lensviz_desc d;
    memset(&d, 0, sizeof d);
    d.patch = patch;
    d.stride = stride;
    d = lensviz_desc_resolve(&d);
    lensviz_occlusion_grid(m, &d, &g);
    if (!g.rows || !g.cols) return liblens__fail(err, LENSNET_ERR_ARG, "the occlusion patch does not fit the input");
  } else
    return liblens__fail(err, LENSNET_ERR_ARG, "only gradcam and occlusion maps have cells to place; the others are on the pixels already");
  if (rows != g.rows || cols != g.cols) {
    snprintf(msg, sizeof msg, "the map is %lux%lu but the %s cells are %lux%lu", (unsigned long)rows, (unsigned long)cols, method,
             (unsigned long)g.rows, (unsigned long)g.cols);
    return liblens__fail(err, LENSNET_ERR_SHAPE, msg);
  }
  lensviz_map_to_image(map, &g, smooth, out, inside);
  return LENSNET_OK;
}

/* ---- pictures ---------------------------------------------------------------------------------- */

static lensviz_image liblens__picture(unsigned char *rgb, size_t width, size_t height) {
  lensviz_image img;
  img.rgb = rgb; img.width = width; img.height = height; img.stride = 0;
  return img;
}

/* lensviz_asinh_bands of image [bands, h, w] into rgb [height, width, 3]. */
LIBLENS_API void liblens_asinh(const float *image, size_t bands, size_t h, size_t w, float Q, unsigned char *rgb, size_t width,
                               size_t height) {
  lensviz_image img = liblens__picture(rgb, width, height);
  lensviz_asinh_bands(image, bands, h, w, Q, 0.0f, &img);
}

/* lensviz_render_map of map [h, w] into rgb [height, width, 3] with the colour map named cmap
 * (viridis, magma, diverging, gray); lo == hi: the automatic range. */
LIBLENS_API lensnet_result liblens_render_map(const float *map, size_t h, size_t w, const char *cmap, float lo, float hi, int smooth,
                                              unsigned char *rgb, size_t width, size_t height, lensnet_error *err) {
  lensviz_image img = liblens__picture(rgb, width, height);
  int c = lensviz_colormap_from_name(cmap ? cmap : "");
  if (c < 0) return liblens__fail(err, LENSNET_ERR_ARG, "unknown colour map (known: viridis, magma, diverging, gray)");
  lensviz_render_map(map, h, w, (lensviz_colormap)c, lo, hi, smooth, &img);
  return LENSNET_OK;
}

/* lensviz_overlay of map [h, w] over rgb [height, width, 3]. */
LIBLENS_API lensnet_result liblens_overlay(unsigned char *rgb, size_t width, size_t height, const float *map, size_t h, size_t w,
                                           const char *cmap, float lo, float hi, float alpha, lensnet_error *err) {
  lensviz_image img = liblens__picture(rgb, width, height);
  int c = lensviz_colormap_from_name(cmap ? cmap : "");
  if (c < 0) return liblens__fail(err, LENSNET_ERR_ARG, "unknown colour map (known: viridis, magma, diverging, gray)");
  lensviz_overlay(&img, map, h, w, (lensviz_colormap)c, lo, hi, alpha);
  return LENSNET_OK;
}

/* lensviz_png_write of rgb [height, width, 3]. */
LIBLENS_API lensnet_result liblens_png_write(const char *path, const unsigned char *rgb, size_t width, size_t height, lensnet_error *err) {
  lensviz_image img = liblens__picture((unsigned char *)rgb, width, height);
  return lensviz_png_write(path, &img, err);
}

/* ---- scenes ------------------------------------------------------------------------------------ */

/* What lens render does with one scene (lenssim_render_json): JSON text (lenstronomy's model and
 * keyword names) rendered noise-free, or seen through the band named `band` with its noise drawn
 * from `seed`, into out [side, side] as float32. *side gets num_pix; with out NULL the scene is
 * only read and checked. */
LIBLENS_API lensnet_result liblens_render(const char *json, size_t len, const char *band_name, unsigned long long seed, int use_double,
                                          float *out, size_t cap, size_t *side, lensnet_error *err) {
  lenssim_error serr;
  const lenssim_band *band = NULL;
  size_t k;
  char msg[200];
  if (band_name && *band_name && !(band = lenssim_band_find(band_name))) {
    snprintf(msg, sizeof msg, "unknown band '%.40s' (known:", band_name);
    for (k = 0; k < lenssim_band_count() && strlen(msg) + 20 < sizeof msg; k++)
      snprintf(msg + strlen(msg), sizeof msg - strlen(msg), " %s", lenssim_band_at(k)->name);
    snprintf(msg + strlen(msg), sizeof msg - strlen(msg), ")");
    return liblens__fail(err, LENSNET_ERR_ARG, msg);
  }
  /* the scene read and checked first, for its size */
  if (lenssim_render_json(json, len, band, (uint64_t)seed, use_double, NULL, 0, side, &serr) != LENSSIM_OK)
    return liblens__sim_fail(err, &serr);
  if (!out) return LENSNET_OK;
  if (cap < *side * *side) return liblens__fail(err, LENSNET_ERR_ARG, "the output array is smaller than num_pix x num_pix");
  if (lenssim_render_json(json, len, band, (uint64_t)seed, use_double, out, cap, side, &serr) != LENSSIM_OK)
    return liblens__sim_fail(err, &serr);
  return LENSNET_OK;
}

/* ---- simulated data sets ----------------------------------------------------------------------- */

/* A data set of a preset (lenssim_dataset), as lens sim makes it. */
typedef struct {
  lenssim_dataset ds;
  void *workspace;
} liblens_sim;

/* Opens preset `preset` (a lenssim_preset_from_name name) in layout `layout` (NULL or "": the
 * preset's) with the seed; lens_fraction < 0 and supersampling 0 keep the preset's. info[4]
 * gets channels, num_pix, classes, the detection channel; *pixel_scale arcsec per pixel. */
LIBLENS_API lensnet_result liblens_sim_open(const char *preset, const char *layout, double lens_fraction, int noise_free,
                                            int supersampling, unsigned long long seed, liblens_sim **out, size_t *info,
                                            double *pixel_scale, lensnet_error *err) {
  lenssim_dataset_config cfg;
  lenssim_error serr;
  liblens_sim *s;
  int p = lenssim_preset_from_name(preset ? preset : ""), l = layout && *layout ? lenssim_layout_from_name(layout) : 0, k;
  char msg[300];
  *out = NULL;
  if (p < 0 || l < 0) {
    size_t n = (size_t)snprintf(msg, sizeof msg, "unknown %s '%.40s' (known:", p < 0 ? "preset" : "layout", p < 0 ? preset : layout);
    for (k = 0; p < 0 ? k < LENSSIM_PRESET_COUNT : k < LENSSIM_LAYOUT_COUNT; k++)
      if (n < sizeof msg) n += (size_t)snprintf(msg + n, sizeof msg - n, " %s", p < 0 ? lenssim_preset_name((lenssim_preset)k) : lenssim_layout_name((lenssim_layout)k));
    if (n < sizeof msg) snprintf(msg + n, sizeof msg - n, ")");
    return liblens__fail(err, LENSNET_ERR_ARG, msg);
  }
  memset(&cfg, 0, sizeof cfg);
  cfg.preset = (lenssim_preset)p;
  cfg.layout = (lenssim_layout)l;
  cfg.noise_free = noise_free != 0;
  cfg.supersampling = supersampling;
  if (lens_fraction >= 0) cfg.lens_fraction = lens_fraction > 0 ? lens_fraction : 1e-300; /* as lens sim: 0 given means none */
  if (!(s = (liblens_sim *)calloc(1, sizeof *s))) return liblens__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  if (lenssim_dataset_init(&s->ds, &cfg, (uint64_t)seed, &serr) != LENSSIM_OK) { free(s); return liblens__sim_fail(err, &serr); }
  if (!(s->workspace = malloc(lenssim_dataset_workspace_bytes(&s->ds) + 1))) { free(s); return liblens__fail(err, LENSNET_ERR_NOMEM, "out of memory"); }
  info[0] = (size_t)s->ds.channels; info[1] = (size_t)s->ds.num_pix; info[2] = (size_t)s->ds.classes; info[3] = (size_t)s->ds.detection_channel;
  *pixel_scale = s->ds.pixel_scale;
  *out = s;
  return LENSNET_OK;
}

/* The class names of the set's preset ("non-lens,lens"). */
LIBLENS_API const char *liblens_sim_class_names(const liblens_sim *s) { return lenssim_preset_class_names(s->ds.config.preset); }

/* Objects [first, first + count): images [count, channels, num_pix, num_pix] and their rows of
 * labels.csv (lenssim_label_csv_row, LENSSIM_LABEL_CSV_MAX bytes each) one after another into
 * csv[cap]. Object i depends only on the set and i, as in lens sim. */
LIBLENS_API lensnet_result liblens_sim_sample(liblens_sim *s, unsigned long long first, size_t count, float *images, char *csv,
                                              size_t cap, lensnet_error *err) {
  size_t per = lenssim_dataset_image_floats(&s->ds), k, used = 0;
  lenssim_error serr;
  if (cap) csv[0] = 0;
  for (k = 0; k < count; k++) {
    lenssim_label label;
    size_t n;
    if (lenssim_dataset_sample(&s->ds, (uint64_t)(first + k), images + k * per, &label, s->workspace, lenssim_dataset_workspace_bytes(&s->ds),
                               &serr) != LENSSIM_OK)
      return liblens__sim_fail(err, &serr);
    if (used >= cap || !(n = lenssim_label_csv_row(&label, (uint64_t)(first + k), csv + used, cap - used, &serr)))
      return liblens__fail(err, LENSNET_ERR_ARG, "the label buffer is too small");
    used += n;
  }
  return LENSNET_OK;
}

LIBLENS_API void liblens_sim_close(liblens_sim *s) {
  if (!s) return;
  free(s->workspace);
  free(s);
}

/* ---- training ---------------------------------------------------------------------------------- */

/* The settings of a training run (lensnet_fit_desc) and the text they point into. */
typedef struct {
  lensnet_fit_desc desc;
  char *texts[64];
  size_t text_count;
} liblens_fit;

/* What the progress callback gets: lensnet_fit_progress's fields as plain numbers. Return nonzero
 * to stop after the current epoch. */
typedef int (*liblens_progress_fn)(void *user, int epoch, int epochs, int epoch_done, double seen, double train_count, double val_count,
                                   double lr, double train_loss, double train_acc, double val_loss, double val_acc, double seconds,
                                   int best);

typedef struct {
  liblens_progress_fn fn;
  void *user;
  int every_batch;
} liblens__progress;

static int liblens__on_progress(void *user, const lensnet_fit_progress *p) {
  liblens__progress *g = (liblens__progress *)user;
  if (!p->epoch_done && !g->every_batch) return 0;
  return g->fn(g->user, p->epoch, p->epochs, p->epoch_done, (double)p->seen, (double)p->train_count, (double)p->val_count, p->lr,
               p->train_loss, p->train_acc, p->val_loss, p->val_acc, p->seconds, p->best);
}

LIBLENS_API liblens_fit *liblens_fit_new(void) { return (liblens_fit *)calloc(1, sizeof(liblens_fit)); }

LIBLENS_API void liblens_fit_free(liblens_fit *f) {
  size_t k;
  if (!f) return;
  for (k = 0; k < f->text_count; k++) free(f->texts[k]);
  free(f);
}

/* One setting of lensnet_fit_settings() by name ('-' or '_'), from text, checked against its range
 * or choices (lensnet_fit_setting_parse); the text is copied. */
LIBLENS_API lensnet_result liblens_fit_set(liblens_fit *f, const char *name, const char *value, lensnet_error *err) {
  const lensnet_fit_setting *s = lensnet_fit_setting_find(name ? name : "");
  char *copy, msg[200];
  size_t len;
  lensnet_result r;
  if (!s) {
    snprintf(msg, sizeof msg, "unknown training setting '%.60s'", name ? name : "");
    return liblens__fail(err, LENSNET_ERR_ARG, msg);
  }
  if (f->text_count == sizeof f->texts / sizeof f->texts[0]) return liblens__fail(err, LENSNET_ERR_ARG, "too many settings");
  len = strlen(value ? value : "");
  if (!(copy = (char *)malloc(len + 1))) return liblens__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  memcpy(copy, value ? value : "", len + 1);
  f->texts[f->text_count++] = copy;
  if ((r = lensnet_fit_setting_parse(&f->desc, s, copy, err)) != LENSNET_OK) return r;
  /* minmax given, true or false, is the caller's choice; not given, lensnet_fit takes the model's own */
  if (!strcmp(s->name, "minmax")) f->desc.preprocess = f->desc.minmax ? "minmax" : "none";
  return LENSNET_OK;
}

/* The resolved value of setting `name` as text (what a checkpoint holds); -1 when unknown. */
LIBLENS_API int liblens_fit_get(const liblens_fit *f, const char *name, char *buf, size_t cap) {
  const lensnet_fit_setting *s = lensnet_fit_setting_find(name ? name : "");
  if (!s) return -1;
  return lensnet_fit_setting_format(&f->desc, s, buf, cap);
}

/* Names of the training settings, one at a time (NULL past the last), with their help line. */
LIBLENS_API const char *liblens_fit_setting_at(size_t i, const char **help) {
  size_t n;
  const lensnet_fit_setting *s = lensnet_fit_settings(&n);
  if (i >= n) return NULL;
  if (help) *help = s[i].help;
  return s[i].name;
}

/* lensnet_fit of m on images [n, c, h, w] with labels [n] (classes) or [n, targets] (regression,
 * target_names "theta_E,e1,..."), writing checkpoint.safetensors, best.safetensors and
 * history.csv into out_dir when it is not NULL. progress (may be NULL) is called after every
 * epoch, and after every batch too when every_batch is nonzero. Serial: the results are those of
 * lens train, which are the same for any number of threads. */
LIBLENS_API lensnet_result liblens_fit_run(liblens_fit *f, lensnet_model *m, const float *images, size_t n, size_t c, size_t h,
                                           size_t w, const float *labels, size_t targets, const char *target_names, const char *out_dir,
                                           liblens_progress_fn progress, void *user, int every_batch, lensnet_error *err) {
  lensnet_tensor t;
  lensnet_fit_desc d = f->desc;
  liblens__progress g;
  memset(&t, 0, sizeof t);
  t.ndim = 4; t.shape[0] = n; t.shape[1] = c; t.shape[2] = h; t.shape[3] = w;
  t.data = (float *)images; /* lensnet_fit only reads it */
  g.fn = progress; g.user = user; g.every_batch = every_batch;
  d.images = &t;
  d.count = n;
  d.labels = labels;
  d.targets = targets;
  d.target_names = targets ? target_names : NULL;
  d.out_dir = out_dir;
  d.progress = progress ? liblens__on_progress : NULL;
  d.progress_user = &g;
  return lensnet_fit(m, &d, err);
}
