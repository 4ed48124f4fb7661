/* lens_web.c: the toolkit's functions behind web/index.html, compiled to WebAssembly (make web).
 *
 * A few flat functions the page calls through emscripten's ccall: load a finder from the bytes of
 * its safetensors file, score a FITS file (or pixels the page decoded from a PNG), explain the
 * score with Grad-CAM or occlusion, and simulate an object. Each does what the lens command does
 * with the same input, through the same library recipes:
 *   scoring    lensnet_fits_read_memory, lensnet_model_preprocess (the model's metadata says
 *              whether to min-max scale), lensnet_cutout_prepare with a bilinear resize (as
 *              `lens predict --resize`), lensnet_model_forward, lensnet_model_class_index and
 *              lensnet_lens_probability;
 *   explaining lensviz_gradcam at lensviz_default_layer, placed by lensnet_receptive_field, or
 *              lensviz_occlusion placed by lensviz_occlusion_grid, drawn as `lens explain` draws
 *              them (lensviz_asinh_bands, lensviz_render_map_placed, lensviz_overlay_placed);
 *   simulating lenssim_dataset_init and lenssim_dataset_sample (as `lens sim`), its label by
 *              lenssim_label_csv_row (a row of `lens sim`'s labels.csv).
 * Results go back to the page as JSON text, pictures as RGB bytes. One page, one state: the
 * functions keep the last object and its pictures in `web` below. Nothing here does I/O. */
#define LENSNET_IMPLEMENTATION
#define LENSSIM_IMPLEMENTATION
#define LENSVIZ_IMPLEMENTATION
#define LENSVIZ_NO_PNG
#include <stdint.h>
/* Tensors of up to 2^28 floats (1 GiB): a file that claims more is refused with a message before
 * anything is allocated, rather than exhausting the page's memory (wasm32 addresses 4 GiB). */
#if SIZE_MAX <= 0xFFFFFFFFu && !defined(LENSNET_MAX_ELEMENTS)
#define LENSNET_MAX_ELEMENTS ((size_t)1 << 28)
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lensnet.h"
#include "lenssim.h"
#include "lensviz.h"

#ifdef __EMSCRIPTEN__
#include <emscripten.h>
#define WEB_EXPORT EMSCRIPTEN_KEEPALIVE
#else
#define WEB_EXPORT
#endif

/* The finders: slot 0 takes one band (OU_VIS), slot 1 several (OU_66). An image with at least as
 * many bands as slot 1's model goes there; any other to slot 0, which uses its first band. */
#define WEB_SLOTS 2
#define WEB_PICTURES 3 /* the image, the map, the map over the image */

typedef struct {
  lensnet_model *model[WEB_SLOTS];
  char model_name[WEB_SLOTS][64];
  int current;                 /* slot of the object scored last; -1 before any */
  float *input;                /* the object as the model takes it [in_c, in_h, in_w] */
  float *image;                /* the last simulated object [bands, h, w] */
  double arcsec;               /* arcseconds per pixel of the model's input; 0: unknown */
  lensviz_image picture[WEB_PICTURES];
  char text[8192];             /* the last JSON answer */
  char message[400];           /* why the last call failed */
} web_state;

static web_state web = {{NULL, NULL}, {"", ""}, -1, NULL, NULL, 0.0, {{NULL, 0, 0, 0}}, "", ""};

/* Records a failure for lensweb_message; returns 1. */
static int web_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(web.message, sizeof web.message, fmt, ap);
  va_end(ap);
  return 1;
}

static int web_fail_err(const lensnet_error *err) {
  return web_fail("%s", err->message[0] ? err->message : lensnet_result_string(err->result));
}

/* Why the last call returned nonzero. */
WEB_EXPORT const char *lensweb_message(void) { return web.message; }

/* Loads slot `slot`'s finder from the bytes of a safetensors file. 0 on success. */
WEB_EXPORT int lensweb_load_model(int slot, const unsigned char *bytes, size_t len, const char *name) {
  lensnet_safetensors st;
  lensnet_error err;
  lensnet_model *m;
  lensnet_result r;
  if (slot < 0 || slot >= WEB_SLOTS) return web_fail("no model slot %d", slot);
  if (lensnet_safetensors_read_memory(bytes, len, &st, &err) != LENSNET_OK) return web_fail_err(&err);
  r = lensnet_model_from_safetensors(&st, &m, &err);
  lensnet_safetensors_free(&st);
  if (r != LENSNET_OK) return web_fail_err(&err);
  lensnet_model_free(web.model[slot]);
  web.model[slot] = m;
  snprintf(web.model_name[slot], sizeof web.model_name[slot], "%s", name);
  return 0;
}

/* Appends to web.text (cut at its end). */
static void web_append(size_t *at, const char *fmt, ...) {
  va_list ap;
  int n;
  if (*at >= sizeof web.text) return;
  va_start(ap, fmt);
  n = vsnprintf(web.text + *at, sizeof web.text - *at, fmt, ap);
  va_end(ap);
  if (n > 0) *at += (size_t)n;
}

/* A JSON string of text (quotes, backslashes and control bytes escaped). */
static void web_append_string(size_t *at, const char *s) {
  web_append(at, "\"");
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') web_append(at, "\\%c", *s);
    else if ((unsigned char)*s < 0x20) web_append(at, "\\u%04x", (unsigned)(unsigned char)*s);
    else web_append(at, "%c", *s);
  }
  web_append(at, "\"");
}

/* Why lensnet_cutout_prepare refused an image, as lens predict says it. */
static int web_cutout_failure(const lensnet_model *m, const lensnet_cutout_report *report, size_t bands, const lensnet_error *err) {
  switch (report->issue) {
    case LENSNET_CUTOUT_EMPTY: return web_fail("the image is empty");
    case LENSNET_CUTOUT_TOO_FEW_BANDS:
      return web_fail("the image has %lu band(s) but the model takes %lu", (unsigned long)bands, (unsigned long)m->in_c);
    default: return web_fail_err(err);
  }
}

/* What the score cannot know: the cutout's pixels resampled by count, not by arcseconds, to a
 * field the finder was not trained on; a cutout blown up many times; a blank one. JSON strings
 * appended to the answer's "warnings" (the page shows them beside the score). */
static void web_warnings(size_t *at, const lensnet_model *m, const float *image, size_t bands, size_t h, size_t w,
                         double arcsec, double model_scale) {
  double field = arcsec * (double)w, model_field = model_scale * (double)m->in_w, ratio;
  size_t k;
  int first = 1;
  char text[400];
  if (arcsec > 0.0 && model_scale > 0.0 && (ratio = field / model_field) > 0.0 && (ratio > 1.05 || ratio < 0.95)) {
    snprintf(text, sizeof text,
             "the cutout covers %.1f\" (%.3g\"/pixel); %s was trained on %.1f\" (%.3g\"/pixel). It is resampled by pixel "
             "count, as lens predict --resize does, so to the finder its arcs look %.2f times their size on the sky: "
             "cut a %.1f\" cutout for a fair score",
             field, arcsec, web.model_name[web.current], model_field, model_scale, 1.0 / ratio, model_field);
    web_append(at, "%s", first ? "" : ",");
    web_append_string(at, text);
    first = 0;
  }
  if (h * 4 <= m->in_h || w * 4 <= m->in_w) {
    snprintf(text, sizeof text, "a %lu x %lu cutout is blown up to %lu x %lu: little is left to score", (unsigned long)h,
             (unsigned long)w, (unsigned long)m->in_h, (unsigned long)m->in_w);
    web_append(at, "%s", first ? "" : ",");
    web_append_string(at, text);
    first = 0;
  }
  for (k = 0; k < bands; k++) /* as lens predict notes it: the first plane that holds no image */
    if (lensnet_plane_empty(image + k * h * w, h * w)) {
      char where[48] = "";
      if (bands > 1) snprintf(where, sizeof where, " of plane %lu of %lu", (unsigned long)k, (unsigned long)bands);
      snprintf(text, sizeof text, "every finite pixel%s has the same value (or none is finite): the score says nothing about "
               "this cutout", where);
      web_append(at, "%s", first ? "" : ",");
      web_append_string(at, text);
      break;
    }
}

/* Scores image [bands, h, w] with the finder its band count calls for, resized to the model's
 * input and scaled as its metadata asks: lens predict --resize. arcsec: the image's pixel scale
 * (0: unknown, then the model's). The answer (JSON) is in lensweb_text. */
static int web_predict(const float *image, size_t bands, size_t h, size_t w, double arcsec) {
  lensnet_cutout_desc desc;
  lensnet_cutout_report report;
  lensnet_error err;
  lensnet_model *m;
  const char *key = NULL;
  float logits[64];
  char name[64];
  double p, model_scale = 0.0;
  size_t k, at = 0;
  int slot = web.model[1] && bands >= web.model[1]->in_c ? 1 : 0, minmax;
  if (!(m = web.model[slot])) return web_fail("the finder is not loaded");
  if (m->out_features > sizeof logits / sizeof logits[0]) return web_fail("%s: too many outputs", web.model_name[slot]);
  if (lensnet_model_preprocess(m, &minmax, &key, &err) != LENSNET_OK) return web_fail_err(&err);
  free(web.input);
  web.current = -1;
  if (!(web.input = (float *)malloc(m->in_c * m->in_h * m->in_w * sizeof(float)))) return web_fail("out of memory");
  memset(&desc, 0, sizeof desc);
  desc.size = LENSNET_SIZE_RESIZE;
  desc.minmax = minmax;
  memset(&report, 0, sizeof report);
  if (lensnet_cutout_score(m, &desc, image, bands, h, w, web.input, NULL, logits, &p, &report, &err) != LENSNET_OK)
    return report.issue != LENSNET_CUTOUT_OK ? web_cutout_failure(m, &report, bands, &err) : web_fail_err(&err);
  web.current = slot;
  lensnet_model_pixel_scale(m, &model_scale, NULL);
  web.arcsec = arcsec > 0.0 ? arcsec * (double)w / (double)m->in_w : model_scale;
  web_append(&at, "{\"model\":");
  web_append_string(&at, web.model_name[slot]);
  web_append(&at, ",\"p_lens\":%.9g,\"logits\":[", p);
  for (k = 0; k < m->out_features; k++) web_append(&at, "%s%.9g", k ? "," : "", logits[k]);
  web_append(&at, "],\"classes\":[");
  for (k = 0; k < m->out_features; k++) {
    lensnet_model_class_name(m, k, name, sizeof name, NULL);
    web_append(&at, "%s", k ? "," : "");
    web_append_string(&at, name);
  }
  web_append(&at, "],\"bands_in\":%lu,\"height\":%lu,\"width\":%lu,\"model_bands\":[", (unsigned long)bands, (unsigned long)h, (unsigned long)w);
  for (k = 0; k < m->in_c; k++) {
    lensnet_model_band_name(m, k, name, sizeof name, NULL);
    web_append(&at, "%s", k ? "," : "");
    web_append_string(&at, name);
  }
  web_append(&at, "],\"input\":[%lu,%lu,%lu],\"minmax\":%d,\"unused_bands\":%lu,\"nan_pixels\":%lu,\"inf_pixels\":%lu,"
             "\"filled_pixels\":%lu,\"arcsec\":%.6g",
             (unsigned long)m->in_c, (unsigned long)m->in_h, (unsigned long)m->in_w, minmax, (unsigned long)report.unused_bands,
             (unsigned long)report.nan_pixels, (unsigned long)report.inf_pixels, (unsigned long)report.filled_pixels, web.arcsec);
  web_append(&at, ",\"warnings\":[");
  web_warnings(&at, m, image, bands, h, w, arcsec, model_scale);
  web_append(&at, "]}");
  return 0;
}

/* Scores a FITS file's image (the first HDU holding one: a band [y, x] or a cube [bands, y, x]). */
WEB_EXPORT int lensweb_predict_fits(const unsigned char *bytes, size_t len) {
  lensnet_tensor t;
  lensnet_error err;
  size_t bands, h, w;
  double arcsec = 0.0;
  int rc;
  if (lensnet_fits_read_memory(bytes, len, -1, &t, &err) != LENSNET_OK) return web_fail_err(&err);
  if (t.ndim == 2) { bands = 1; h = t.shape[0]; w = t.shape[1]; }
  else if (t.ndim == 3) { bands = t.shape[0]; h = t.shape[1]; w = t.shape[2]; }
  else {
    lensnet_tensor_free(&t);
    return web_fail("expected a 2-D image or a 3-D cube [bands, y, x]");
  }
  if (lensnet_fits_pixel_scale_memory(bytes, len, -1, &arcsec, NULL, NULL) != LENSNET_OK) arcsec = 0.0;
  rc = web_predict(t.data, bands, h, w, arcsec);
  lensnet_tensor_free(&t);
  return rc;
}

/* Scores pixels the page holds: image [bands, h, w] (a decoded PNG, one band). */
WEB_EXPORT int lensweb_predict_pixels(const float *image, int bands, int h, int w, double arcsec) {
  if (bands < 1 || h < 1 || w < 1) return web_fail("the image is empty");
  return web_predict(image, (size_t)bands, (size_t)h, (size_t)w, arcsec);
}

/* The JSON answer of the last successful call. */
WEB_EXPORT const char *lensweb_text(void) { return web.text; }

/* Picture k (0 the image, 1 the map, 2 the map over the image) of the last explanation: RGB bytes,
 * rows of lensweb_picture_width pixels, lensweb_picture_height of them. */
WEB_EXPORT const unsigned char *lensweb_picture(int k) { return k >= 0 && k < WEB_PICTURES ? web.picture[k].rgb : NULL; }
WEB_EXPORT int lensweb_picture_width(void) { return (int)web.picture[0].width; }
WEB_EXPORT int lensweb_picture_height(void) { return (int)web.picture[0].height; }

static void web_scale_bar(lensviz_image *pic, const lensnet_model *m) {
  if (web.arcsec > 0.0) lensviz_scale_bar(pic, web.arcsec * (double)m->in_w / (double)pic->width);
}

/* Explains the last score: method 0 Grad-CAM at the default layer, 1 occlusion (patch and stride
 * in pixels of the model's input; 0: a tenth of its width, and half the patch). Draws the three
 * pictures at size ~`display` pixels (a whole multiple of the input's width) and answers with the
 * map's numbers (JSON). */
WEB_EXPORT int lensweb_explain(int method, int display, int patch, int stride) {
  lensnet_model *m = web.current >= 0 ? web.model[web.current] : NULL;
  lensnet_map_geometry cells;
  lensnet_error err;
  lensviz_desc d;
  size_t layer = 0, c = 0, h = 0, w = 0, n, k, side, at = 0;
  float lo, hi, *map;
  double base = 0.0;
  if (!m || !web.input) return web_fail("nothing scored yet");
  memset(&d, 0, sizeof d);
  if (method == 0) {
    if (lensviz_default_layer(m, LENSVIZ_LAYER_FOR_GRADCAM, &layer, &err) != LENSNET_OK ||
        lensviz_layer_shape(m, layer, &c, &h, &w, &err) != LENSNET_OK || lensnet_receptive_field(m, layer, &cells, &err) != LENSNET_OK)
      return web_fail_err(&err);
  } else {
    d.patch = patch > 0 ? (size_t)patch : (m->in_w + 9) / 10;
    d.stride = stride > 0 ? (size_t)stride : (d.patch + 1) / 2;
    lensviz_occlusion_grid(m, &d, &cells);
    if (!cells.rows || !cells.cols) return web_fail("the occlusion patch does not fit the input");
    h = cells.rows; w = cells.cols;
  }
  n = h * w;
  if (!(map = (float *)malloc(n * sizeof(float)))) return web_fail("out of memory");
  if (method == 0 ? lensviz_gradcam(m, web.input, -1, layer, &d, map, &err) != LENSNET_OK
                  : lensviz_occlusion(m, web.input, -1, &d, map, &base, &err) != LENSNET_OK) {
    free(map);
    return web_fail_err(&err);
  }
  side = m->in_w * (display > (int)m->in_w ? (size_t)display / m->in_w : 1);
  for (k = 0; k < WEB_PICTURES; k++) {
    lensviz_image_free(&web.picture[k]);
    if (lensviz_image_alloc(&web.picture[k], side, side * m->in_h / m->in_w, &err) != LENSNET_OK) { free(map); return web_fail_err(&err); }
  }
  lensviz_asinh_bands(web.input, m->in_c, m->in_h, m->in_w, 8.0f, 0.0f, &web.picture[0]);
  lensviz_blit(&web.picture[2], 0, 0, &web.picture[0]);
  if (method == 0) { /* as lens explain draws Grad-CAM: magma from 0 */
    lensviz_map_range(map, n, 0, &lo, &hi);
    lo = 0.0f;
    if (!(hi > lo)) hi = 1.0f;
    lensviz_render_map_placed(map, &cells, LENSVIZ_CMAP_MAGMA, lo, hi, 0, &web.picture[1]);
    lensviz_overlay_placed(&web.picture[2], map, &cells, LENSVIZ_CMAP_MAGMA, lo, hi, 0.7f);
  } else { /* occlusion: the diverging map, symmetric about 0 */
    lensviz_map_range(map, n, 1, &lo, &hi);
    lensviz_render_map_placed(map, &cells, LENSVIZ_CMAP_DIVERGING, lo, hi, 0, &web.picture[1]);
    lensviz_overlay_placed(&web.picture[2], map, &cells, LENSVIZ_CMAP_DIVERGING, lo, hi, 0.8f);
  }
  for (k = 0; k < WEB_PICTURES; k++) web_scale_bar(&web.picture[k], m);
  web_append(&at, "{\"method\":\"%s\",\"rows\":%lu,\"cols\":%lu,\"lo\":%.6g,\"hi\":%.6g,\"offset\":%g,\"stride\":%g,\"cell\":%g",
             method == 0 ? "gradcam" : "occlusion", (unsigned long)h, (unsigned long)w, lo, hi, cells.offset, cells.stride, cells.size);
  if (method == 0) web_append(&at, ",\"layer\":%lu}", (unsigned long)layer);
  else web_append(&at, ",\"patch\":%lu,\"patch_stride\":%lu,\"p_base\":%.9g}", (unsigned long)d.patch, (unsigned long)d.stride, base);
  free(map);
  return 0;
}

/* Simulates object `index` of `lens sim --preset euclid-lensfinding --layout ou200 --seed SEED`
 * (with --lens-fraction 1 when lens_only: every object a lens) and scores its VIS band (band 0,
 * 200 x 200 at 0.1"), as lens predict scores the FITS file lens sim --fits writes of it. The
 * answer is the score's JSON with "label" added: the header and row of lens sim's labels.csv. */
WEB_EXPORT int lensweb_simulate(unsigned seed, unsigned index, int lens_only) {
  lenssim_dataset *ds = (lenssim_dataset *)malloc(sizeof *ds);
  lenssim_dataset_config cfg;
  lenssim_label label;
  lenssim_error serr;
  char row[LENSSIM_LABEL_CSV_MAX], *hw = NULL;
  size_t at;
  int rc = 0;
  if (!ds) return web_fail("out of memory");
  memset(&cfg, 0, sizeof cfg);
  cfg.preset = LENSSIM_PRESET_EUCLID_LENSFINDING;
  cfg.layout = LENSSIM_LAYOUT_OU200;
  if (lens_only) cfg.lens_fraction = 1.0;
  if (lenssim_dataset_init(ds, &cfg, seed, &serr) != LENSSIM_OK) rc = web_fail("%s", serr.message);
  free(web.image);
  web.image = NULL;
  if (!rc && !(web.image = (float *)malloc(lenssim_dataset_image_floats(ds) * sizeof(float)))) rc = web_fail("out of memory");
  if (!rc && lenssim_dataset_sample(ds, index, web.image, &label, NULL, 0, &serr) != LENSSIM_OK) rc = web_fail("%s", serr.message);
  if (!rc && !lenssim_label_csv_row(&label, index, row, sizeof row, &serr)) rc = web_fail("%s", serr.message);
  if (!rc) rc = web_predict(web.image, 1, (size_t)ds->num_pix, (size_t)ds->num_pix, ds->pixel_scale);
  if (!rc) { /* the score's JSON, its closing brace replaced by the label */
    at = strlen(web.text) - 1;
    if ((hw = strchr(row, '\n')) != NULL) *hw = 0;
    web_append(&at, ",\"label_header\":");
    hw = (char *)malloc(strlen(lenssim_label_csv_header()) + 1);
    if (hw) {
      strcpy(hw, lenssim_label_csv_header());
      if (strchr(hw, '\n')) *strchr(hw, '\n') = 0;
      web_append_string(&at, hw);
      free(hw);
    } else web_append(&at, "\"\"");
    web_append(&at, ",\"label_row\":");
    web_append_string(&at, row);
    web_append(&at, ",\"seed\":%u,\"index\":%u,\"lens_only\":%d}", seed, index, lens_only);
    if (at >= sizeof web.text) rc = web_fail("the answer is too long");
  }
  free(ds);
  return rc;
}

/* Memory the page fills before a call (file bytes, pixels) and frees after it. */
WEB_EXPORT void *lensweb_alloc(size_t bytes) { return malloc(bytes ? bytes : 1); }
WEB_EXPORT void lensweb_free(void *p) { free(p); }
