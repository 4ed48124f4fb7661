/* lens explain: what a lens finder looks at in one image, as PNG panels and raw maps.
 *
 * Loads one object (a .npy batch [N,C,H,W] with --index, or a FITS image or cube), runs one
 * method of lensviz.h and writes into --out DIR:
 *   DIR/<method>.npy           the raw result, float32: occlusion at its grid resolution,
 *                              Grad-CAM at the feature map's, gradients [C,H,W], images [C,H,W]
 *   DIR/<method>.png           the panels side by side with titles and colour bars
 *   DIR/image.png, DIR/<method>_map.png, DIR/<method>_overlay.png   the panels one by one
 *   DIR/<method>.gif           occlusion sweeps and gradient ascents, frame by frame
 * DIR is created if it does not exist, with any missing parent folders. Every file is written as
 * NAME.pending and renamed over NAME only once the method has succeeded: a run that fails leaves
 * neither a partial set nor a mix with an earlier run's files. Maps coarser than the
 * image are drawn with each cell on the pixels it stands for (Grad-CAM's at its receptive field,
 * occlusion's at its patch), and pictures of the sky carry an arcsecond scale bar when the pixel
 * scale is known (--pixel-scale, the FITS header, or the model's metadata). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include "lens_cmds.h"
#include "pool.h"
#include "cli.h"
#include "options.h"
#include "lensviz.h"

static const char *const explain_methods[] = {"occlusion", "saliency", "guided", "gradcam", "guided-gradcam", "ig", "smoothgrad",
                                              "dream", "class-image", "filters", NULL};

typedef struct {
  const char *model_path, *input, *out;
  int method_index;         /* in explain_methods */
  const char *method;       /* its name */
  size_t index, patch, stride, steps, samples, iterations, octaves, count, threads, frames;
  int jitter, channel, blur_every; /* -1: not given */
  int layer, target;        /* -1: the default */
  lens_cutout_options cutout;
  int minmax, scale;
  float l2, noise, step, fill;
  double pixel_scale;       /* -1: not given */
  unsigned long long seed;
} explain_options;

#define T explain_options
static const lens_option explain_rows[] = {
  LENS_TEXT(T, "model", LENS_OPT_REQUIRED, model_path, NULL, "M.safetensors", "the lens finder"),
  LENS_TEXT(T, "input", LENS_OPT_REQUIRED, input, NULL, "X", ".npy [N,C,H,W] (pick one with --index I, default 0) or a FITS image or cube;\n"
            "or one FITS file a band, A.fits,B.fits,... (as lens predict --bands: put in\n"
            "the model's band order by their FILTER headers when those name its bands);\n"
            "'-' for none (class-image; filters then draws channels 0, 1, ...)"),
  LENS_SIZE(T, "index", index, 0, 1e9, 0, "I", "which image of a .npy batch (default 0)"),
  LENS_CHOICE(T, "method", LENS_OPT_REQUIRED, method_index, explain_methods, -1, "METHOD",
              "occlusion | saliency | guided | gradcam | guided-gradcam | ig | smoothgrad |\ndream | class-image | filters"),
  LENS_TEXT(T, "out", LENS_OPT_REQUIRED, out, NULL, "DIR", "folder for the maps and pictures (created)"),
  LENS_ROW("target", LENS_OPT_INT, 0, T, target, 0, 1e6, -1, "K", "output to explain (default: the 'lens' class from the metadata, else the last;\n"
          "for a regression model output 0, the prediction of its first target)"),
  LENS_ROW("layer", LENS_OPT_INT, 0, T, layer, 0, 1e6, -1, "L", "layer index for gradcam, guided-gradcam, dream and filters (default: the\n"
           "ReLU after the last convolution; for dream the one after the middle one)"),
  LENS_SIZE(T, "patch", patch, 1, 1e6, 0, "P", "occlusion patch side (default 4)"),
  LENS_SIZE(T, "stride", stride, 1, 1e6, 0, "S", "occlusion step (default: the patch)"),
  LENS_FLOAT(T, "fill", fill, -1e30, 1e30, 0, "V", "occlusion fill value (default 0)"),
  LENS_SIZE(T, "steps", steps, 1, 1e6, 0, "N", "integrated-gradient steps (default 32)"),
  LENS_SIZE(T, "samples", samples, 1, 1e6, 0, "N", "SmoothGrad samples (default 25)"),
  LENS_FLOAT(T, "noise", noise, 1e-6, 1e3, 0, "F", "SmoothGrad noise fraction (default 0.15)"),
  LENS_SIZE(T, "iterations", iterations, 1, 1e7, 0, "N", "ascent steps (default 100)"),
  LENS_FLOAT(T, "step", step, 1e-9, 1e6, 0, "F", "ascent step size (default 0.01)"),
  LENS_SIZE(T, "octaves", octaves, 1, 100, 0, "N", "dream octaves (default 3)"),
  LENS_INT(T, "jitter", jitter, 0, 1000000, -1, "J", "jitter in pixels (default 2 for dreams)"),
  LENS_INT(T, "blur-every", blur_every, 0, 1000000, -1, "K", "blur every K steps (0: never; default 4 for class and filter images,\nnever for dreams)"),
  LENS_FLOAT(T, "l2", l2, 0, 1e6, 0, "W", "L2 weight of the ascent (default 0)"),
  LENS_INT(T, "channel", channel, 0, 1000000, -1, "C", "filters: draw only this channel"),
  LENS_SIZE(T, "count", count, 1, 20, 8, "N", "filters: channels drawn (default 8, at most 20)"),
  LENS_SEED(T, "seed", seed, 1, "S", "noise and jitter seed (default 1)"),
  LENS_SIZE(T, "frames", frames, 1, 1e6, 0, "N", "frames of the GIF of an occlusion sweep or an ascent (default 60 / 40)"),
  LENS_CUTOUT_OPTIONS(T, cutout),
  LENS_INT(T, "scale", scale, 1, 10000, 0, "Z", "display pixels per image pixel (default: about 200 pixels across)"),
  LENS_DOUBLE(T, "pixel-scale", pixel_scale, 0, 1e6, -1, "ARCSEC", "arcseconds per pixel of the model's input, for the scale bar (default:\n"
              "the FITS header of --input, else the model's metadata pixel_scale; 0: no bar)"),
  LENS_SIZE(T, "threads", threads, 0, 1024, 0, "T", "threads (default: the CPUs this process may use)"),
};
#undef T
static const lens_option_section explain_sections[] = {{NULL, explain_rows, sizeof explain_rows / sizeof explain_rows[0]}};
static const lens_command_spec explain_spec = {
  "explain", "usage: lens explain --model M.safetensors --input X --method METHOD --out DIR [options]\n", NULL, NULL, explain_sections, 1,
  "DIR and any missing parent folders are created. Exit status: 0 done, 1 failure, 2 usage error.\n"};

/* Reads the object into image[in_c, in_h, in_w]: picks the batch entry and prepares it like
 * lens predict does (lensnet_cutout_prepare). A FITS header's pixel scale goes to *arcsec (per
 * pixel of the model's input: per resized pixel with --resize) and the keyword to *key. */
static int load_object(const explain_options *o, const lensnet_model *m, float *image, double *arcsec, const char **key) {
  lensnet_tensor t;
  lensnet_error err;
  lensnet_cutout_desc desc;
  lensnet_cutout_report report;
  size_t n = 1, c, h, w, pick[64];
  int rc, cube_note = 0;
  if (strchr(o->input, ',')) { /* one FITS file a band */
    char list[8192], *paths[64], *p, label[1024];
    float *bands = NULL;
    int count = 0, note = 0;
    if (strlen(o->input) >= sizeof list) return lens_usage("--input: the list of files is longer than %lu characters", (unsigned long)sizeof list - 1);
    strcpy(list, o->input);
    for (p = strtok(list, ","); p && count < 64; p = strtok(NULL, ",")) paths[count++] = p;
    if (p) return lens_usage("--input: at most 64 files, one a band");
    if ((size_t)count != m->in_c)
      return lens_fail("--input lists %d files, one a band, but the model takes %lu bands", count, (unsigned long)m->in_c);
    if ((rc = lens_read_band_files(m, paths, count, o->cutout.hdu, o->cutout.channel_count == 0, &bands, &h, &w, label, sizeof label, &note, NULL)) != 0)
      return rc;
    desc = lens_cutout_desc(&o->cutout, o->minmax);
    rc = lens_cutout(label, m, &desc, bands, (size_t)count, h, w, image, &report, NULL);
    free(bands);
    if (lensnet_fits_pixel_scale(paths[0], o->cutout.hdu, arcsec, key, NULL) == LENSNET_OK && desc.size == LENSNET_SIZE_RESIZE)
      *arcsec *= (double)w / (double)m->in_w;
    if (rc == 0) lens_cutout_note(report.nan_pixels, report.inf_pixels, report.filled_pixels);
    return rc;
  }
  if ((lens_format_of(o->input) == LENS_FMT_NPY)) {
    if (lensnet_npy_read(o->input, &t, &err) != LENSNET_OK) return lens_fail_err(&err);
  } else if (lensnet_fits_read(o->input, o->cutout.hdu, &t, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (t.ndim == 4) { n = t.shape[0]; c = t.shape[1]; h = t.shape[2]; w = t.shape[3]; }
  else if (t.ndim == 3 && m->in_c == 1 && t.shape[0] != 1 && (lens_format_of(o->input) == LENS_FMT_NPY)) { n = t.shape[0]; c = 1; h = t.shape[1]; w = t.shape[2]; }
  else if (t.ndim == 3) { c = t.shape[0]; h = t.shape[1]; w = t.shape[2]; }
  else if (t.ndim == 2) { c = 1; h = t.shape[0]; w = t.shape[1]; }
  else { lensnet_tensor_free(&t); return lens_fail("%s: expected [N,C,H,W], [C,H,W] or [H,W], got %d dimensions", o->input, t.ndim); }
  if (o->index >= n) { lensnet_tensor_free(&t); return lens_usage("%s: --index %lu but the file holds %lu image(s)", o->input, (unsigned long)o->index, (unsigned long)n); }
  if (!(lens_format_of(o->input) == LENS_FMT_NPY) && n == 1 && o->cutout.channel_count == 0 &&
      (rc = lens_cube_by_band_names(m, o->input, o->cutout.hdu, t.data, c, h * w, &cube_note)) != 0) {
    lensnet_tensor_free(&t);
    return rc;
  }
  desc = lens_cutout_desc(&o->cutout, o->minmax);
  if ((lens_format_of(o->input) == LENS_FMT_NPY) && o->cutout.channel_count == 0 && m->in_c <= 64) {
    /* the planes by the names of a bands.txt beside the file (lens sim's), as lens predict feeds them */
    int by_name = 0;
    lens_band_notes notes;
    memset(&notes, 0, sizeof notes);
    if ((rc = lens_npy_band_pick(m, o->input, c, pick, &by_name, &notes)) != 0) {
      lensnet_tensor_free(&t);
      return rc;
    }
    if (by_name) {
      desc.channels = pick;
      desc.channel_count = m->in_c;
    }
  }
  rc = lens_cutout(o->input, m, &desc, t.data + o->index * c * h * w, c, h, w, image, &report, NULL);
  lensnet_tensor_free(&t);
  if (!(lens_format_of(o->input) == LENS_FMT_NPY) && lensnet_fits_pixel_scale(o->input, o->cutout.hdu, arcsec, key, NULL) == LENSNET_OK &&
      desc.size == LENSNET_SIZE_RESIZE)
    *arcsec *= (double)w / (double)m->in_w;
  if (rc == 0) lens_cutout_note(report.nan_pixels, report.inf_pixels, report.filled_pixels);
  return rc;
}

/* The files of a run, each written as DIR/NAME.pending: renamed over DIR/NAME when the method has
 * succeeded (staged_publish), removed when it failed (staged_discard). */
#define STAGED_MAX 16
#define STAGED_PENDING ".pending"
typedef struct {
  const char *dir;
  char names[STAGED_MAX][64]; /* "gradcam.npy", ... */
  size_t count;
} staged_files;

/* DIR/NAME.EXT.pending into path, NAME.EXT recorded; a path that does not fit is an error, never
 * a shortened name. */
static int staged_path(staged_files *f, const char *name, const char *ext, char *path, size_t cap) {
  char file[64];
  size_t i;
  if ((size_t)snprintf(file, sizeof file, "%s.%s", name, ext) >= sizeof file) return lens_fail("explain: the file name %s.%s is too long", name, ext);
  if ((size_t)snprintf(path, cap, "%s/%s" STAGED_PENDING, f->dir, file) >= cap)
    return lens_fail("--out %s: the path of %s in it is longer than %lu characters", f->dir, file, (unsigned long)cap - 1);
  for (i = 0; i < f->count && strcmp(f->names[i], file); i++) {}
  if (i == f->count) {
    if (f->count == STAGED_MAX) return lens_fail("explain: more than %d files", STAGED_MAX);
    memcpy(f->names[f->count++], file, strlen(file) + 1);
  }
  return 0;
}

static int staged_publish(const staged_files *f) {
  size_t i;
  for (i = 0; i < f->count; i++) {
    char from[4300], to[4200];
    snprintf(to, sizeof to, "%s/%s", f->dir, f->names[i]);
    snprintf(from, sizeof from, "%s" STAGED_PENDING, to);
    if (rename(from, to) != 0) return lens_fail("explain: cannot rename %s to %s: %s", from, to, strerror(errno));
  }
  return 0;
}

static void staged_discard(const staged_files *f) {
  size_t i;
  for (i = 0; i < f->count; i++) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s" STAGED_PENDING, f->dir, f->names[i]);
    remove(path);
  }
}

static int write_npy(staged_files *f, const char *name, int ndim, const size_t *shape, float *data) {
  char path[4200];
  lensnet_tensor t;
  lensnet_error err;
  int d, rc;
  memset(&t, 0, sizeof t);
  t.ndim = ndim;
  for (d = 0; d < ndim; d++) t.shape[d] = shape[d];
  t.data = data;
  if ((rc = staged_path(f, name, "npy", path, sizeof path)) != 0) return rc;
  if (lensnet_npy_write(path, &t, &err) != LENSNET_OK) return lens_fail_err(&err);
  return 0;
}

static int write_png(staged_files *f, const char *name, const lensviz_image *img) {
  char path[4200];
  lensnet_error err;
  int rc;
  if ((rc = staged_path(f, name, "png", path, sizeof path)) != 0) return rc;
  if (lensviz_png_write(path, img, &err) != LENSNET_OK) return lens_fail_err(&err);
  return 0;
}

/* Pictures of the size the image is shown at. */
typedef struct {
  size_t w, h;
  lensviz_image pics[24];
  size_t count;
} picture_set;

static lensviz_image *new_picture(picture_set *s, size_t w, size_t h) {
  lensnet_error err;
  if (s->count == sizeof s->pics / sizeof s->pics[0]) return NULL;
  if (lensviz_image_alloc(&s->pics[s->count], w, h, &err) != LENSNET_OK) return NULL;
  return &s->pics[s->count++];
}

static void free_pictures(picture_set *s) {
  size_t i;
  for (i = 0; i < s->count; i++) lensviz_image_free(&s->pics[i]);
  s->count = 0;
}

/* Writes the grid of panels as DIR/<name>.png. */
static int write_grid(staged_files *f, const char *name, const lensviz_panel *panels, size_t n, size_t cols, const char *title) {
  lensviz_image grid;
  lensnet_error err;
  size_t w, h;
  int rc;
  lensviz_grid_size(panels, n, cols, title, &w, &h);
  if (lensviz_image_alloc(&grid, w, h, &err) != LENSNET_OK) return lens_fail_err(&err);
  lensviz_grid_render(panels, n, cols, title, &grid);
  rc = write_png(f, name, &grid);
  lensviz_image_free(&grid);
  return rc;
}

static lensviz_panel panel(const lensviz_image *img, const char *title, int bar, lensviz_colormap cmap, float lo, float hi) {
  lensviz_panel p;
  p.image = img; p.title = title; p.colorbar = bar; p.cmap = cmap; p.lo = lo; p.hi = hi;
  return p;
}

/* Frames for GIFs, all of one size. */
typedef struct {
  lensviz_image frames[128];
  size_t count, w, h, bands, total; /* total: steps of the whole ascent, for the progress line */
  float Q;
  lens_progress progress;
} frame_set;

static void add_frame_from_image(void *user, size_t iteration, const float *image, size_t c, size_t h, size_t w) {
  frame_set *fs = (frame_set *)user;
  lensnet_error err;
  char label[32];
  (void)c;
  if (fs->count == sizeof fs->frames / sizeof fs->frames[0]) return;
  if (lensviz_image_alloc(&fs->frames[fs->count], fs->w, fs->h, &err) != LENSNET_OK) return;
  lensviz_asinh_bands(image, fs->bands, h, w, fs->Q, 0.0f, &fs->frames[fs->count]);
  snprintf(label, sizeof label, "step %lu", (unsigned long)iteration);
  lensviz_draw_text(&fs->frames[fs->count], 3, 3, label, 1, lensviz_rgb(255, 255, 255));
  fs->count++;
  if (fs->total) lens_progress_show(&fs->progress, "explain", iteration, fs->total, "step", -1.0, NULL);
}

static void free_frames(frame_set *fs) {
  size_t i;
  for (i = 0; i < fs->count; i++) lensviz_image_free(&fs->frames[i]);
  fs->count = 0;
}

static int write_frames(staged_files *f, const char *name, frame_set *fs, int delay) {
  char path[4200];
  lensnet_error err;
  int rc = fs->count ? staged_path(f, name, "gif", path, sizeof path) : 0;
  if (!rc && fs->count && lensviz_gif_write(path, fs->frames, fs->count, delay, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  free_frames(fs);
  return rc;
}

/* The occlusion sweep: the patch moving over the image while the map fills in. */
static int occlusion_gif(staged_files *out, const explain_options *o, const lensnet_model *m, const float *image, const float *map,
                         const lensnet_map_geometry *g, float lo, float hi, size_t W, size_t H, size_t patch, size_t stride) {
  frame_set fs;
  size_t cols = g->cols, cells = g->rows * cols, most = o->frames ? (o->frames < 128 ? o->frames : 128) : 60;
  size_t frames = cells < most ? cells : most, f, k;
  lensnet_error err;
  float *partial = (float *)malloc(cells * sizeof(float));
  double sx = (double)W / (double)m->in_w;
  if (!partial) return lens_fail("out of memory");
  memset(&fs, 0, sizeof fs);
  for (f = 0; f < frames; f++) {
    size_t upto = (f + 1) * cells / frames, last = upto - 1;
    lensviz_image *fr = &fs.frames[fs.count], half;
    if (lensviz_image_alloc(fr, 2 * W, H, &err) != LENSNET_OK) break;
    fs.count++;
    half = lensviz_image_view(fr, 0, 0, W, H);
    lensviz_asinh_bands(image, m->in_c, m->in_h, m->in_w, 8.0f, 0.0f, &half);
    lensviz_draw_rect(&half, (long)((last % cols) * stride * sx), (long)((last / cols) * stride * sx), (long)(patch * sx + 0.5) + 1,
                      (long)(patch * sx + 0.5) + 1, lensviz_rgb(255, 255, 0));
    for (k = 0; k < cells; k++) partial[k] = k < upto ? map[k] : 0.0f;
    half = lensviz_image_view(fr, W, 0, W, H);
    lensviz_render_map_placed(partial, g, LENSVIZ_CMAP_DIVERGING, lo, hi, 0, &half);
  }
  free(partial);
  return write_frames(out, "occlusion", &fs, 8);
}

/* What every method needs: the options, the model, the image and its picture (ps.pics[0]), and
 * room for a result of one image's size. */
typedef struct {
  const explain_options *o;
  lensnet_model *m;
  lensviz_desc d;
  int target;
  float *image, *result;
  size_t W, H, per;
  picture_set ps;
  double arcsec;            /* arcseconds per pixel of the model's input; 0: not known */
  char image_title[160];    /* the composite's bands and the pixel scale */
  char class_name[64];      /* the target's name from the metadata "classes" (a regression model: its
                             * target's, "log-variance of NAME" for a variance output) */
  int regress;              /* a regression model (metadata regress.targets) */
  lensnet_regression reg;
  double unit;              /* a regression model's physical units per unit of the target output
                             * (std x slope for a mean, 1 for a log-variance); 1 for a classifier */
  char band_names[8][64];   /* the first bands' names from the metadata "band_names" */
  size_t made;              /* how much of --out this run created (lens_make_dirs_noted) */
  staged_files files;       /* what the run writes into --out */
} explain_ctx;

/* The scale bar on a picture of the image (none when the pixel scale is not known). */
static void scale_bar(const explain_ctx *x, lensviz_image *pic) {
  if (x->arcsec > 0.0 && pic) lensviz_scale_bar(pic, x->arcsec * (double)x->m->in_w / (double)pic->width);
}

/* The object's picture, first in every grid of an object. */
static lensviz_panel image_panel(explain_ctx *x) { return panel(&x->ps.pics[0], x->image_title, 0, LENSVIZ_CMAP_GRAY, 0, 1); }

/* A map's picture and the object's picture to lay the map over; 0 when out of memory. */
static int map_pictures(explain_ctx *x, lensviz_image **map_pic, lensviz_image **over) {
  *map_pic = new_picture(&x->ps, x->W, x->H);
  *over = new_picture(&x->ps, x->W, x->H);
  if (*over) lensviz_blit(*over, 0, 0, &x->ps.pics[0]);
  return *map_pic && *over;
}

/* DIR/<name>_map.png, DIR/<name>_overlay.png, then the grid of panels as DIR/<name>.png. */
static int write_panels(explain_ctx *x, const char *name, const lensviz_image *map_pic, const lensviz_image *over,
                        const lensviz_panel *p, size_t n, size_t cols, const char *title) {
  char mapname[64], overname[64];
  int rc;
  snprintf(mapname, sizeof mapname, "%s_map", name);
  snprintf(overname, sizeof overname, "%s_overlay", name);
  if ((rc = write_png(&x->files, mapname, map_pic)) || (rc = write_png(&x->files, overname, over))) return rc;
  return write_grid(&x->files, name, p, n, cols, title);
}

/* Occlusion map, its panels and the sweep as a GIF. */
static int explain_occlusion(explain_ctx *x) {
  const lensnet_model *m = x->m;
  size_t shape[2];
  double base;
  float lo, hi, *map = x->result; /* rows * cols <= in_h * in_w */
  char title[256], label[128];
  lensnet_error err;
  lensnet_map_geometry cells;
  lensviz_image *map_pic, *over;
  lensviz_panel p[3];
  int have = map_pictures(x, &map_pic, &over), rc;
  lensviz_occlusion_grid(m, &x->d, &cells);
  if (!cells.rows || !cells.cols)
    return lens_usage("--patch %lu does not fit the %lux%lu input", (unsigned long)x->d.patch, (unsigned long)m->in_h, (unsigned long)m->in_w);
  if (!have) return lens_fail("out of memory");
  fprintf(stderr, "lens: occlusion: %lu x %lu patch positions\n", (unsigned long)cells.rows, (unsigned long)cells.cols);
  x->d.output_value = x->regress;
  if (lensviz_occlusion(m, x->image, x->target, &x->d, map, &base, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (x->regress) { /* the change of the prediction, in the target's physical units */
    size_t i;
    for (i = 0; i < cells.rows * cells.cols; i++) map[i] = (float)((double)map[i] * x->unit);
    if ((size_t)x->target < x->reg.count) base = lensnet_regression_physical(&x->reg, (size_t)x->target, base);
  }
  shape[0] = cells.rows; shape[1] = cells.cols;
  if ((rc = write_npy(&x->files, "occlusion", 2, shape, map)) != 0) return rc;
  lensviz_map_range(map, cells.rows * cells.cols, 1, &lo, &hi);
  lensviz_render_map_placed(map, &cells, LENSVIZ_CMAP_DIVERGING, lo, hi, 0, map_pic);
  lensviz_overlay_placed(over, map, &cells, LENSVIZ_CMAP_DIVERGING, lo, hi, 0.8f);
  scale_bar(x, map_pic);
  scale_bar(x, over);
  if (x->regress) {
    snprintf(title, sizeof title, "Occlusion, patch %lu stride %lu: predicted %s = %.4g", (unsigned long)x->d.patch, (unsigned long)x->d.stride,
             x->class_name, base);
    snprintf(label, sizeof label, "%.40s(occluded) - %.40s, at each patch", x->class_name, x->class_name);
  } else {
    snprintf(title, sizeof title, "Occlusion, patch %lu stride %lu: P(%s) = %.3f", (unsigned long)x->d.patch, (unsigned long)x->d.stride,
             x->class_name, base);
    snprintf(label, sizeof label, "P(occluded) - P, at each patch");
  }
  p[0] = image_panel(x);
  p[1] = panel(map_pic, label, 1, LENSVIZ_CMAP_DIVERGING, lo, hi);
  p[2] = panel(over, "overlay", 0, LENSVIZ_CMAP_GRAY, 0, 1);
  if ((rc = write_panels(x, "occlusion", map_pic, over, p, 3, 3, title)) != 0) return rc;
  return occlusion_gif(&x->files, x->o, m, x->image, map, &cells, lo, hi, x->W, x->H, x->d.patch, x->d.stride);
}

/* Grad-CAM at the feature map's resolution, its panels: each cell drawn over its receptive
 * field's centre. */
static int explain_gradcam(explain_ctx *x) {
  int layer = x->o->layer, rc = 0;
  size_t c, h, w, shape[2];
  float lo, hi, *cam;
  char title[256], map_title[96];
  lensnet_error err;
  lensnet_map_geometry cells;
  lensviz_image *map_pic, *over;
  lensviz_panel p[3];
  if (lensviz_layer_shape(x->m, (size_t)layer, &c, &h, &w, &err) != LENSNET_OK ||
      lensnet_receptive_field(x->m, (size_t)layer, &cells, &err) != LENSNET_OK)
    return lens_fail_err(&err);
  if (!map_pictures(x, &map_pic, &over) || !(cam = (float *)malloc(h * w * sizeof(float)))) return lens_fail("out of memory");
  if (lensviz_gradcam(x->m, x->image, x->target, (size_t)layer, &x->d, cam, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  shape[0] = h; shape[1] = w;
  if (rc == 0) rc = write_npy(&x->files, "gradcam", 2, shape, cam);
  if (rc == 0) {
    lensviz_map_range(cam, h * w, 0, &lo, &hi);
    lo = 0.0f;
    if (!(hi > lo)) hi = 1.0f;
    lensviz_render_map_placed(cam, &cells, LENSVIZ_CMAP_MAGMA, lo, hi, 0, map_pic);
    lensviz_overlay_placed(over, cam, &cells, LENSVIZ_CMAP_MAGMA, lo, hi, 0.7f);
    scale_bar(x, map_pic);
    scale_bar(x, over);
    snprintf(title, sizeof title, "Grad-CAM of %s (output %d), layer %d", x->class_name, x->target, layer);
    snprintf(map_title, sizeof map_title, "%lux%lu cells, %g px apart", (unsigned long)h, (unsigned long)w, cells.stride);
    p[0] = image_panel(x);
    p[1] = panel(map_pic, map_title, 1, LENSVIZ_CMAP_MAGMA, lo, hi);
    p[2] = panel(over, "overlay (bilinear)", 0, LENSVIZ_CMAP_GRAY, 0, 1);
    rc = write_panels(x, "gradcam", map_pic, over, p, 3, 3, title);
  }
  free(cam);
  return rc;
}

/* A panel per band of grad (at most 8) after p[*np], on a shared symmetric range, titled with the
 * bands' names. */
static void band_panels(explain_ctx *x, const float *grad, lensviz_panel *p, size_t *np) {
  const lensnet_model *m = x->m;
  size_t hw = m->in_h * m->in_w, k;
  float lo, hi;
  lensviz_map_range(grad, m->in_c * hw, 1, &lo, &hi);
  for (k = 0; k < m->in_c && k < 8; k++) {
    lensviz_image *bp = new_picture(&x->ps, x->W, x->H);
    if (!bp) break;
    lensviz_render_map(grad + k * hw, m->in_h, m->in_w, LENSVIZ_CMAP_DIVERGING, lo, hi, 0, bp);
    scale_bar(x, bp);
    lensnet_model_band_name(m, k, x->band_names[k], sizeof x->band_names[k], NULL);
    p[(*np)++] = panel(bp, x->band_names[k], k + 1 == m->in_c || k == 7, LENSVIZ_CMAP_DIVERGING, lo, hi);
  }
}

/* The gradient method of the options into grad [C,H,W]. */
static lensnet_result gradient_map(explain_ctx *x, float *grad, lensnet_error *err) {
  const char *method = x->o->method;
  if (!strcmp(method, "saliency")) return lensviz_saliency(x->m, x->image, x->target, &x->d, grad, err);
  if (!strcmp(method, "guided")) return lensviz_guided_backprop(x->m, x->image, x->target, &x->d, grad, err);
  if (!strcmp(method, "guided-gradcam")) return lensviz_guided_gradcam(x->m, x->image, x->target, (size_t)x->o->layer, &x->d, grad, err);
  if (!strcmp(method, "ig")) return lensviz_integrated_gradients(x->m, x->image, x->target, &x->d, grad, err);
  return lensviz_smoothgrad(x->m, x->image, x->target, &x->d, grad, err);
}

/* Integrated gradients add up to the output's change from the baseline (a black image) to the
 * image only as the steps grow: both are said, so that a map of too few steps is not taken for an
 * exact account. */
static int ig_completeness(explain_ctx *x, const float *attr) {
  const lensnet_model *m = x->m;
  size_t i, outs = m->out_features;
  double sum = 0.0, change;
  float *out = (float *)malloc(2 * outs * sizeof(float)), *black = (float *)calloc(x->per, sizeof(float));
  lensnet_error err;
  int rc = 0;
  if (!out || !black) rc = lens_fail("out of memory");
  else if (lensnet_model_forward(m, 1, x->image, out, NULL, &err) != LENSNET_OK ||
           lensnet_model_forward(m, 1, black, out + outs, NULL, &err) != LENSNET_OK)
    rc = lens_fail_err(&err);
  if (rc == 0) {
    for (i = 0; i < x->per; i++) sum += attr[i];
    change = ((double)out[x->target] - (double)out[outs + (size_t)x->target]) * x->unit;
    fprintf(stderr, "lens: integrated gradients: the map sums to %.4g; the %s of %s changes by %.4g from a black image to the "
            "image (%lu steps: more --steps bring the two closer)\n", sum, x->regress ? "prediction" : "logit", x->class_name, change,
            (unsigned long)x->d.steps);
  }
  free(out);
  free(black);
  return rc;
}

/* Saliency, guided backprop, guided Grad-CAM, integrated gradients, SmoothGrad: [C,H,W] maps. */
static int explain_gradients(explain_ctx *x) {
  const lensnet_model *m = x->m;
  const char *name = x->o->method;
  size_t shape[3], hw = m->in_h * m->in_w, k, i, np = 0, cols;
  float lo, hi, *grad = x->result, *sum = (float *)calloc(hw, sizeof(float)), *mag = (float *)calloc(hw, sizeof(float));
  char title[256];
  lensnet_error err;
  lensviz_image *map_pic, *over;
  lensviz_panel p[16];
  int rc = 0;
  if (!map_pictures(x, &map_pic, &over) || !sum || !mag) rc = lens_fail("out of memory");
  else if (gradient_map(x, grad, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  if (rc == 0 && x->unit != 1.0) /* a regression model's prediction: per unit of its target */
    for (i = 0; i < m->in_c * hw; i++) grad[i] = (float)((double)grad[i] * x->unit);
  shape[0] = m->in_c; shape[1] = m->in_h; shape[2] = m->in_w;
  if (rc == 0 && !strcmp(name, "ig")) rc = ig_completeness(x, grad);
  if (rc == 0) rc = write_npy(&x->files, name, 3, shape, grad);
  if (rc == 0) {
    for (k = 0; k < m->in_c; k++)
      for (i = 0; i < hw; i++) { sum[i] += grad[k * hw + i]; mag[i] += fabsf(grad[k * hw + i]); }
    lensviz_map_range(sum, hw, 1, &lo, &hi);
    lensviz_render_map(sum, m->in_h, m->in_w, LENSVIZ_CMAP_DIVERGING, lo, hi, 0, map_pic);
    lensviz_overlay(over, mag, m->in_h, m->in_w, LENSVIZ_CMAP_MAGMA, 0, 0, 0.8f);
    scale_bar(x, map_pic);
    scale_bar(x, over);
    snprintf(title, sizeof title, "%s of %s (output %d)", !strcmp(name, "ig") ? "Integrated gradients" : !strcmp(name, "smoothgrad") ? "SmoothGrad" :
             !strcmp(name, "guided") ? "Guided backprop" : !strcmp(name, "guided-gradcam") ? "Guided Grad-CAM" : "Saliency", x->class_name, x->target);
    p[np++] = image_panel(x);
    p[np++] = panel(map_pic, "sum over bands", 1, LENSVIZ_CMAP_DIVERGING, lo, hi);
    p[np++] = panel(over, "overlay of |map|", 0, LENSVIZ_CMAP_GRAY, 0, 1);
    cols = m->in_c > 3 ? (m->in_c < 8 ? m->in_c : 8) : 3;
    while (m->in_c > 1 && np < cols) p[np++] = panel(NULL, NULL, 0, LENSVIZ_CMAP_GRAY, 0, 1); /* bands start a row */
    if (m->in_c > 1) band_panels(x, grad, p, &np);
    rc = write_panels(x, name, map_pic, over, p, np, cols, title);
  }
  free(sum);
  free(mag);
  return rc;
}

/* The picture of a dream beside its image, or of a class image with its probability. */
static int ascent_panels(explain_ctx *x, const lensviz_image *result_pic) {
  const char *method = x->o->method;
  char title[256];
  lensviz_panel p[2];
  lensnet_error err;
  int rc;
  if (!strcmp(method, "dream")) {
    snprintf(title, sizeof title, "Deep dream, layer %d, %lu octave(s) x %lu steps", x->o->layer, (unsigned long)x->d.octaves,
             (unsigned long)x->d.iterations);
    p[0] = image_panel(x);
    p[1] = panel(result_pic, "dream", 0, LENSVIZ_CMAP_GRAY, 0, 1);
    rc = write_grid(&x->files, "dream", p, 2, 2, title);
  } else {
    double prob = -1.0;
    float logits[64];
    int have = x->m->out_features <= 64 && lensnet_model_forward(x->m, 1, x->result, logits, NULL, &err) == LENSNET_OK;
    if (have && x->regress) /* the prediction it drives up, not a probability */
      snprintf(title, sizeof title, "Image maximising %s (output %d): predicted %.4g", x->class_name, x->target,
               (size_t)x->target < x->reg.count ? lensnet_regression_physical(&x->reg, (size_t)x->target, logits[x->target]) : logits[x->target]);
    else {
      if (have) prob = lensnet_lens_probability(logits, x->m->out_features, (size_t)x->target);
      snprintf(title, sizeof title, "Class image of %s (output %d): P = %.3f", x->class_name, x->target, prob);
    }
    p[0] = panel(result_pic, "class image", 0, LENSVIZ_CMAP_GRAY, 0, 1);
    rc = write_grid(&x->files, "class-image", p, 1, 1, title);
  }
  if (!rc) rc = write_png(&x->files, !strcmp(method, "dream") ? "dream_map" : "class-image_map", result_pic);
  return rc;
}

/* Deep dream of the image, or a class image grown from noise, with the ascent as a GIF. */
static int explain_ascent(explain_ctx *x) {
  const lensnet_model *m = x->m;
  const char *method = x->o->method;
  lensviz_desc d = x->d;
  frame_set fs;
  size_t shape[3], want = x->o->frames ? (x->o->frames < 120 ? x->o->frames : 120) : 40;
  lensviz_image *result_pic = new_picture(&x->ps, x->W, x->H);
  lensnet_error err;
  lensnet_result r;
  int rc;
  memset(&fs, 0, sizeof fs);
  fs.w = x->W; fs.h = x->H; fs.bands = m->in_c; fs.Q = 8.0f; fs.total = d.iterations * d.octaves;
  lens_progress_start(&fs.progress);
  d.frame = add_frame_from_image;
  d.frame_user = &fs;
  d.frame_every = (d.iterations * d.octaves + want - 1) / want;
  if (!result_pic) return lens_fail("out of memory");
  if (!strcmp(method, "dream")) {
    memcpy(x->result, x->image, x->per * sizeof(float));
    add_frame_from_image(&fs, 0, x->image, m->in_c, m->in_h, m->in_w);
    r = lensviz_dream(m, (size_t)x->o->layer, &d, x->result, &err);
  } else r = lensviz_class_image(x->m, x->target, &d, x->result, &err);
  lens_progress_end(&fs.progress);
  if (r != LENSNET_OK) {
    free_frames(&fs);
    return lens_fail_err(&err);
  }
  shape[0] = m->in_c; shape[1] = m->in_h; shape[2] = m->in_w;
  if ((rc = write_npy(&x->files, method, 3, shape, x->result)) == 0) {
    lensviz_asinh_bands(x->result, m->in_c, m->in_h, m->in_w, 8.0f, 0.0f, result_pic);
    scale_bar(x, result_pic);
    rc = ascent_panels(x, result_pic);
  }
  if (!rc) rc = write_frames(&x->files, method, &fs, 10);
  else free_frames(&fs);
  return rc;
}

/* chosen[*n...]: the channels the image excites most (means), strongest first, up to --count. */
static void rank_channels(const explain_options *o, const float *means, size_t c, size_t *chosen, size_t *n) {
  while (!*n || (o->channel < 0 && *n < o->count && *n < c && *n < 64)) {
    size_t best = 0, j, k;
    int found = 0;
    for (k = 0; k < c; k++) {
      int used = 0;
      for (j = 0; j < *n; j++) used |= chosen[j] == k;
      if (!used && (!found || means[k] > means[best])) { best = k; found = 1; }
    }
    if (!found) break;
    chosen[(*n)++] = best;
  }
}

/* The channels to draw: --channel, and with an image the ones it excites most (their means
 * written as channel_means.npy); without one, channels 0, 1, ... */
static int choose_channels(explain_ctx *x, size_t c, float *means, size_t *chosen, size_t *n) {
  const explain_options *o = x->o;
  lensnet_error err;
  *n = 0;
  if (o->channel >= 0) {
    if ((size_t)o->channel >= c) return lens_usage("--channel %lu: layer %d has %lu channels", (unsigned long)o->channel, o->layer, (unsigned long)c);
    chosen[(*n)++] = (size_t)o->channel;
  }
  if (strcmp(o->input, "-")) {
    int rc;
    if (lensviz_channel_means(x->m, x->image, (size_t)o->layer, means, &err) != LENSNET_OK) return lens_fail_err(&err);
    if ((rc = write_npy(&x->files, "channel_means", 1, &c, means)) != 0) return rc;
    rank_channels(o, means, c, chosen, n);
  } else
    while (*n < o->count && *n < c && *n < 64 && o->channel < 0) { chosen[*n] = *n; (*n)++; }
  return 0;
}

/* Filter images of the channels the image excites most (or of --channel), and the channel means. */
static int explain_filters(explain_ctx *x) {
  const explain_options *o = x->o;
  const lensnet_model *m = x->m;
  size_t c, h, w, k, chosen[64], nchosen = 0, shape[4], per = x->per;
  float *means = NULL, *images = NULL;
  lensviz_panel p[64];
  char titles[64][32], title[256];
  lensnet_error err;
  int rc;
  if (lensviz_layer_shape(m, (size_t)o->layer, &c, &h, &w, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (!(means = (float *)malloc(c * sizeof(float)))) return lens_fail("out of memory");
  rc = choose_channels(x, c, means, chosen, &nchosen);
  if (rc == 0 && !(images = (float *)malloc(nchosen * per * sizeof(float)))) rc = lens_fail("out of memory");
  for (k = 0; k < nchosen && rc == 0; k++) {
    lensviz_image *pic = new_picture(&x->ps, x->W, x->H);
    fprintf(stderr, "lens: filter image for channel %lu of layer %d\n", (unsigned long)chosen[k], o->layer);
    if (lensviz_filter_image(m, (size_t)o->layer, chosen[k], &x->d, images + k * per, &err) != LENSNET_OK) { rc = lens_fail_err(&err); break; }
    if (!pic) { rc = lens_fail("out of memory"); break; }
    lensviz_asinh_bands(images + k * per, m->in_c, m->in_h, m->in_w, 8.0f, 0.0f, pic);
    scale_bar(x, pic);
    if (strcmp(o->input, "-")) snprintf(titles[k], sizeof titles[k], "ch %lu: %.3g", (unsigned long)chosen[k], means[chosen[k]]);
    else snprintf(titles[k], sizeof titles[k], "channel %lu", (unsigned long)chosen[k]);
    p[k] = panel(pic, titles[k], 0, LENSVIZ_CMAP_GRAY, 0, 1);
  }
  if (rc == 0) {
    shape[0] = nchosen; shape[1] = m->in_c; shape[2] = m->in_h; shape[3] = m->in_w;
    rc = write_npy(&x->files, "filters", 4, shape, images);
  }
  if (rc == 0) {
    snprintf(title, sizeof title, "Filter images, layer %d%s", o->layer, strcmp(o->input, "-") ? " (mean activation on the image)" : "");
    rc = write_grid(&x->files, "filters", p, nchosen, 4, title);
  }
  free(means);
  free(images);
  return rc;
}

/* What each method runs and needs, in the order of explain_methods. */
typedef struct {
  int (*run)(explain_ctx *x);
  int layer_use;  /* the lensviz_layer_use of its --layer, or -1: it looks at no layer */
  int object;     /* 1: it explains the --input object; 0: it starts from noise */
} explain_method;
static const explain_method method_table[] = {
  {explain_occlusion, -1, 1}, {explain_gradients, -1, 1}, {explain_gradients, -1, 1}, {explain_gradcam, LENSVIZ_LAYER_FOR_GRADCAM, 1},
  {explain_gradients, LENSVIZ_LAYER_FOR_GRADCAM, 1}, {explain_gradients, -1, 1}, {explain_gradients, -1, 1},
  {explain_ascent, LENSVIZ_LAYER_FOR_DREAM, 1}, {explain_ascent, -1, 0}, {explain_filters, LENSVIZ_LAYER_FOR_FILTERS, 1},
};
typedef char method_table_matches_names[sizeof method_table / sizeof method_table[0] + 1 ==
                                        sizeof explain_methods / sizeof explain_methods[0] ? 1 : -1];

/* --out must not hold the model or the input under a name the method writes (the input would be
 * read, then replaced by a map). */
static int out_spares_inputs(const explain_options *o) {
  char names[7][96], list[8192], *p;
  const char *outs[7], *inputs[66];
  size_t k, n = 0;
  static const char *const patterns[5] = {"%s.npy", "%s.png", "%s_map.png", "%s_overlay.png", "%s.gif"};
  for (k = 0; k < 5; k++) snprintf(names[k], sizeof names[k], patterns[k], o->method);
  snprintf(names[5], sizeof names[5], "image.png");
  snprintf(names[6], sizeof names[6], "channel_means.npy");
  for (k = 0; k < 7; k++) outs[k] = names[k];
  inputs[n++] = o->model_path;
  if (strcmp(o->input, "-") && strlen(o->input) < sizeof list) { /* one file, or one a band separated by commas */
    strcpy(list, o->input);
    for (p = strtok(list, ","); p && n < 66; p = strtok(NULL, ",")) inputs[n++] = p;
  }
  return lens_out_dir_inputs("--out", o->out, outs, 7, inputs, n);
}

/* The command line into o. 0, -1 after --help, or the exit status. */
static int parse_options(int argc, char **argv, explain_options *o) {
  int rc;
  memset(o, 0, sizeof *o);
  if ((rc = lens_options_parse(&explain_spec, argc, argv, o, NULL)) != 0) return rc;
  o->method = explain_methods[o->method_index];
  if (!strcmp(o->input, "-") && strcmp(o->method, "class-image") && strcmp(o->method, "filters"))
    return lens_usage("--input - (no image) is for class-image and filters; --method %s explains an image: give one", o->method);
  if (lens_cutout_check(&o->cutout)) return LENS_EXIT_USAGE;
  if ((rc = lens_out_folder("--out", o->out)) != 0) return rc;
  return out_spares_inputs(o);
}

static int method_is(const explain_options *o, const char *name) { return !strcmp(o->method, name); }

/* Whether there is an object to read: class images start from noise, and filter images need one
 * only to rank channels (--input -). */
static int has_object(const explain_options *o) { return method_table[o->method_index].object && strcmp(o->input, "-"); }

/* The model, its normalisation, the target and the layer, checked against each other. */
static int open_model(explain_options *o, explain_ctx *x) {
  int use = method_table[o->method_index].layer_use;
  lensnet_error err;
  if (lensnet_model_load(o->model_path, &x->m, &err) != LENSNET_OK) return lens_fail_err(&err);
  o->minmax = lens_preprocess_resolve(x->m, has_object(o) ? o->cutout.preprocess : 0);
  if (o->minmax < 0) return LENS_EXIT_FAIL;
  x->unit = 1.0;
  if (lensnet_model_meta(x->m, "regress.targets")) {
    if (lensnet_model_regression(x->m, &x->reg, &err) != LENSNET_OK) return lens_fail("%s: %s", o->model_path, err.message);
    x->regress = 1;
  }
  if (o->target < 0 && x->regress) { /* its first target's predicted value, not a softmax "class" */
    char list[LENSNET_REGRESSION_MAX * 40];
    size_t j, n = 0;
    list[0] = 0;
    for (j = 0; j < x->reg.count; j++) n += (size_t)snprintf(list + n, sizeof list - n, "%s%lu %s", j ? ", " : "", (unsigned long)j, x->reg.names[j]);
    if (x->reg.nll)
      snprintf(list + n, sizeof list - n, "; %lu..%lu their log-variances", (unsigned long)x->reg.count, (unsigned long)(2 * x->reg.count - 1));
    if (strcmp(o->method, "dream") && strcmp(o->method, "filters")) /* those look at a layer, not an output */
      fprintf(stderr, "lens: note: %s is a regression model; explaining output 0, its prediction of %s (--target K for another: %s)\n",
              o->model_path, x->reg.names[0], list);
    o->target = 0;
  } else if (o->target < 0) {
    size_t lens = 0;
    char name[64];
    lensnet_model_class_index(x->m, "lens", &lens, NULL); /* the model has outputs: cannot fail */
    o->target = (int)lens;
    lensnet_model_class_name(x->m, lens, name, sizeof name, NULL);
    if (x->m->out_features > 2 && strcmp(name, "lens")) /* a K-class model without a lens class (DeepLense's substructure) */
      fprintf(stderr, "lens: note: %s has no class called 'lens'; explaining its last output, %lu (%s) (--target K for another)\n",
              o->model_path, (unsigned long)lens, name);
  }
  x->target = (int)o->target;
  if ((size_t)x->target >= x->m->out_features)
    return lens_usage("--target %d: the model has %lu outputs", x->target, (unsigned long)x->m->out_features);
  if (x->regress && (size_t)x->target < x->reg.count) {
    snprintf(x->class_name, sizeof x->class_name, "%s", x->reg.names[x->target]);
    x->unit = x->reg.std[x->target] * x->reg.slope[x->target];
  } else if (x->regress)
    snprintf(x->class_name, sizeof x->class_name, "log-variance of %s", x->reg.names[(size_t)x->target - x->reg.count]);
  else
    lensnet_model_class_name(x->m, (size_t)x->target, x->class_name, sizeof x->class_name, NULL);
  if (use < 0) return 0; /* the method looks at no layer */
  if (o->layer < 0) {
    size_t layer;
    if (lensviz_default_layer(x->m, (lensviz_layer_use)use, &layer, &err) != LENSNET_OK) return lens_usage("%s; name one with --layer", err.message);
    o->layer = (int)layer;
  }
  if ((size_t)o->layer >= x->m->layer_count)
    return lens_usage("--layer %d does not exist: the model has layers 0..%lu", o->layer, (unsigned long)x->m->layer_count - 1);
  if (use == LENSVIZ_LAYER_FOR_GRADCAM) { /* its map is drawn where the layer's cells lie */
    lensnet_map_geometry cells;
    if (lensnet_receptive_field(x->m, (size_t)o->layer, &cells, &err) != LENSNET_OK)
      return lens_usage("--layer %d: %s; Grad-CAM needs a layer before it", o->layer, err.message);
    fprintf(stderr, "lens: layer %d: %lux%lu cells %g pixels apart, centred on pixels %g to %g of 0..%lu, each seeing %g x %g pixels\n",
            o->layer, (unsigned long)cells.rows, (unsigned long)cells.cols, cells.stride, cells.offset,
            cells.offset + (double)(cells.cols - 1) * cells.stride, (unsigned long)x->m->in_w - 1, cells.size, cells.size);
  }
  return 0;
}

/* Arcseconds per pixel of the model's input, for the scale bars: --pixel-scale, else the input's
 * FITS header (data_scale, from keyword data_key), else the model's metadata; said on stderr
 * with where it came from, and noted when the input's pixels differ from the model's. */
static void resolve_pixel_scale(explain_ctx *x, double data_scale, const char *data_key, char *from, size_t cap) {
  const explain_options *o = x->o;
  double model_scale = 0.0;
  lensnet_error err;
  if (lensnet_model_pixel_scale(x->m, &model_scale, &err) != LENSNET_OK) fprintf(stderr, "lens: note: %s (ignored)\n", err.message);
  from[0] = 0;
  if (o->pixel_scale >= 0.0) {
    x->arcsec = o->pixel_scale;
    snprintf(from, cap, "--pixel-scale");
  } else if (data_scale > 0.0) {
    x->arcsec = data_scale;
    snprintf(from, cap, "FITS %s%s", data_key, o->cutout.resize ? ", resized" : "");
  } else if (model_scale > 0.0) {
    x->arcsec = model_scale;
    snprintf(from, cap, "model metadata");
  }
  if (x->arcsec > 0.0)
    fprintf(stderr, "lens: scale bar: %.4g\"/pixel (%s)\n", x->arcsec, from);
  else if (o->pixel_scale < 0.0)
    fprintf(stderr, "lens: note: no scale bar: neither the model's metadata nor the input give the pixel scale (--pixel-scale ARCSEC does)\n");
  if (x->arcsec > 0.0 && model_scale > 0.0 && fabs(x->arcsec / model_scale - 1.0) > 0.01)
    fprintf(stderr, "lens: note: the input's pixels are %.4g\" across, the model was made for %.4g\" (its metadata pixel_scale)\n",
            x->arcsec, model_scale);
}

/* The methods' settings: the options, with the defaults that depend on the method. */
static lensviz_desc method_desc(const explain_options *o, const lensnet_parallel *par) {
  lensviz_desc d;
  memset(&d, 0, sizeof d);
  d.parallel = par;
  d.seed = o->seed;
  d.patch = o->patch; d.stride = o->stride; d.fill = o->fill;
  d.steps = o->steps; d.samples = o->samples; d.noise = o->noise;
  d.iterations = o->iterations; d.step = o->step; d.l2 = o->l2;
  /* images grown from noise look cleaner with a little blur */
  d.blur_every = o->blur_every >= 0 ? (size_t)o->blur_every : (method_is(o, "class-image") || method_is(o, "filters")) ? 4 : 0;
  d.jitter = o->jitter >= 0 ? (size_t)o->jitter : (method_is(o, "dream") ? 2 : 0);
  d = lensviz_desc_resolve(&d);
  d.octaves = method_is(o, "dream") ? (o->octaves ? o->octaves : 3) : 1;
  return d;
}

/* The object's picture (ps.pics[0]) with its scale bar, and its title: the bands in red, green and
 * blue and the pixel scale. */
static int image_picture(const explain_options *o, explain_ctx *x, const char *scale_from) {
  lensviz_image *pic;
  char legend[96];
  size_t n;
  x->H = (size_t)(o->scale > 0 ? o->scale : (int)((200 + x->m->in_h - 1) / x->m->in_h)) * x->m->in_h;
  x->W = x->H * x->m->in_w / x->m->in_h;
  if ((double)x->W * (double)x->H > (double)LENSVIZ_MAX_PIXELS) {
    unsigned long most = (unsigned long)floor(sqrt((double)LENSVIZ_MAX_PIXELS / ((double)x->m->in_h * (double)x->m->in_w)));
    return lens_usage("--scale %d: a %lux%lu picture of the image is larger than LENSVIZ_MAX_PIXELS (%lu pixels): at most --scale %lu "
                      "for this model's %lux%lu input, less for the panels side by side", o->scale, (unsigned long)x->W, (unsigned long)x->H,
                      (unsigned long)LENSVIZ_MAX_PIXELS, most, (unsigned long)x->m->in_h, (unsigned long)x->m->in_w);
  }
  if (!(pic = new_picture(&x->ps, x->W, x->H))) return lens_fail("out of memory for pictures");
  lensviz_asinh_bands(x->image, x->m->in_c, x->m->in_h, x->m->in_w, 8.0f, 0.0f, pic);
  scale_bar(x, pic);
  n = (size_t)snprintf(x->image_title, sizeof x->image_title, "%s", lensviz_composite_legend(x->m, legend, sizeof legend));
  if (x->arcsec > 0.0 && n < sizeof x->image_title)
    snprintf(x->image_title + n, sizeof x->image_title - n, "\n%.4g\"/pixel (%s)", x->arcsec, scale_from);
  return 0; /* written as image.png once the method has succeeded (lens_cmd_explain) */
}

/* Everything the methods share, into x: the model, the folder, the object, the settings and the
 * picture of the object. 0 or the exit status. */
static int prepare(explain_options *o, explain_ctx *x, lens_pool **pool, lensnet_parallel *par) {
  double data_scale = 0.0;
  const char *data_key = NULL;
  char scale_from[64];
  int rc;
  memset(x, 0, sizeof *x);
  x->o = o;
  x->files.dir = o->out;
  if ((rc = open_model(o, x)) != 0) return rc;
  if (lens_make_dirs_noted(o->out, &x->made)) return LENS_EXIT_FAIL;
  x->per = x->m->in_c * x->m->in_h * x->m->in_w;
  x->image = (float *)calloc(x->per, sizeof(float));
  x->result = (float *)malloc(x->per * sizeof(float));
  if (!x->image || !x->result) return lens_fail("out of memory");
  if (has_object(o) && (rc = load_object(o, x->m, x->image, &data_scale, &data_key)) != 0) return rc;
  resolve_pixel_scale(x, data_scale, data_key, scale_from, sizeof scale_from);
  *pool = lens_pool_create(o->threads ? o->threads : lens_pool_default_threads());
  *par = lens_pool_parallel(*pool);
  x->d = method_desc(o, par);
  return image_picture(o, x, scale_from);
}

int lens_cmd_explain(int argc, char **argv) {
  explain_options o;
  explain_ctx x;
  lens_pool *pool = NULL;
  lensnet_parallel par;
  int rc = parse_options(argc, argv, &o);
  if (rc) return rc < 0 ? 0 : rc;
  rc = prepare(&o, &x, &pool, &par);
  if (rc == 0) rc = method_table[o.method_index].run(&x);
  if (rc == 0 && has_object(&o)) rc = write_png(&x.files, "image", &x.ps.pics[0]);
  if (rc == 0) rc = staged_publish(&x.files);
  if (rc) {
    staged_discard(&x.files);
    lens_remove_made_dirs(o.out, x.made); /* a folder this run made, left empty by a failure */
  }
  free_pictures(&x.ps);
  free(x.image);
  free(x.result);
  if (pool) lens_pool_free(pool);
  lensnet_model_free(x.m);
  return rc;
}
