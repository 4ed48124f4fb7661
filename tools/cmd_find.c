/* lens find: lenses in survey fields, not centred cutouts.
 *
 * Each FIELD (a FITS image or cube [C,H,W], or a .npy [C,H,W] / [H,W]) is scanned with the
 * model's input window (lensnet_scan_map: every window scored alone, min-max scaled per window
 * when the model asks for it), and the map's peaks above --threshold, merged within --nms-radius,
 * become detections (lensnet_scan_detect). Written into --out DIR:
 *
 *   DIR/detections.csv       field,x,y,ra,dec,p_lens: one row per detection, fields in the order
 *                            given, strongest first within a field. x, y are field pixels, 0-based,
 *                            pixel centres at integers (x the column, y the row of the array as
 *                            stored: FITS pixel (x + 1, y + 1)); ra, dec in degrees from the
 *                            header's TAN WCS (lensnet_fits_wcs), empty when it has none
 *   DIR/pmap_NAME.npy        the p_lens map [rows, cols] of field NAME (its file name without the
 *                            extension); window (row, col) is centred at (x0 + (win - 1) / 2,
 *                            y0 + (win - 1) / 2), x0 = col S, y0 = row S, but the last column's
 *                            x0 = W - win and the last row's y0 = H - win (flush with the edge)
 *   DIR/overview_NAME.png    an asinh composite of the field with each detection's window drawn
 *
 * --verify V scores each detection again with a second finder on a window centred on its
 * (located) position, drops those below --verify-threshold and adds the column p_verify
 * (lensnet_scan_verify: a finder trained on centred cutouts sees the object centred).
 * --locator L moves each detection to where a locator network puts it (lensnet_scan_locate: a
 * regression model predicting center_x, center_y of the object in its window, trained on `lens sim
 * --windows` lenses) and adds the columns x_sigma, y_sigma (its uncertainty in pixels).
 *
 * --shard I/N scans a contiguous block of the fields ([I n/N, (I+1) n/N) of the n given) and
 * records it in DIR/shard.json (command "find", listing detections.csv); `lens merge` joins the
 * shards' detections.csv in field order. Every file is written under a temporary name and
 * renamed once complete; a run that fails removes the maps and overviews it wrote, and the folders
 * it made for DIR.
 * docs/find.md has the details and measured recovery. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include "lens_cmds.h"
#include "lensviz.h"
#include "pool.h"
#include "cli.h"
#include "shard.h"

typedef struct {
  char **fields;
  int field_count;
  const char *model_path, *out_dir, *locator_path, *verify_path;
  double verify_threshold;
  size_t locate_passes;
  int locate_symmetries;
  size_t stride;
  double threshold, nms_radius;
  int no_refine;
  lens_cutout_options cutout; /* --channels, --preprocess, --minmax, --hdu (no resize or crop: windows are the input size) */
  size_t threads;
  lens_shard shard;
  int skip_done;
} find_options;

static const char *const symmetry_choices[] = {"1", "8", NULL}; /* --locate-symmetries: index 0 or 1 */

#define T find_options
static const lens_option find_rows[] = {
  LENS_ARGS(T, "FIELD", LENS_OPT_REQUIRED, fields, field_count, "a field: FITS image or cube [C,H,W], or .npy [C,H,W] ([H,W] for one band)"),
  LENS_TEXT(T, "model", LENS_OPT_REQUIRED, model_path, NULL, "MODEL.safetensors", "the lens finder; its input size is the window"),
  LENS_TEXT(T, "out", LENS_OPT_REQUIRED, out_dir, NULL, "DIR", "folder for detections.csv, pmap_NAME.npy and overview_NAME.png"),
  LENS_SIZE(T, "stride", stride, 1, 100000, 0, "S", "window step in pixels (default: a quarter of the window)"),
  LENS_DOUBLE(T, "threshold", threshold, 0, 1, 0.5, "T", "least p_lens of a detection (default 0.5)"),
  LENS_DOUBLE(T, "nms-radius", nms_radius, 0, 1e6, 0, "R", "detections closer than R pixels are merged into the strongest\n"
              "(default: half the window; with --locator, the stride)"),
  LENS_TEXT(T, "locator", 0, locator_path, NULL, "L.safetensors", "a locator (regression on center_x, center_y) that moves each\n"
            "detection to the object's centre and gives x_sigma, y_sigma (docs/find.md)"),
  LENS_TEXT(T, "verify", 0, verify_path, NULL, "V.safetensors", "a second finder that scores each detection again on a window\n"
            "centred on its position (after --locator: on the object); column p_verify"),
  LENS_DOUBLE(T, "verify-threshold", verify_threshold, 0, 1, 0.5, "T", "with --verify: least p_verify of a detection (default 0.5)"),
  LENS_SIZE(T, "locate-passes", locate_passes, 1, 16, 0, "K", "with --locator: predictions per detection, each window\n"
            "centred on the last position (default 2)"),
  LENS_CHOICE(T, "locate-symmetries", 0, locate_symmetries, symmetry_choices, -1, "S", "with --locator: 8 averages the last pass over the window's\n"
           "flips and quarter turns, 1 uses the window as it is (default 8 for\n"
           "a square window)"),
  LENS_FLAG(T, "no-refine", no_refine, "positions at window centres (default: the p_lens-weighted centroid of the peak\n"
            "window and its neighbours)"),
  LENS_CUSTOM(T, "channels", 0, cutout.channels, lens_parse_channels, "LIST", "field planes to feed the model, e.g. 0,2,3 (default: by the model's\n"
              "band names when the field's header names its planes, BAND1, ...; else the first ones)"),
  LENS_CHOICE(T, "preprocess", 0, cutout.preprocess, lens_preprocess_choices, LENS_PREPROCESS_UNSET, "P",
              "minmax (each window scaled per band to [0,1]) or none;\n"
              "default: the model's metadata 'preprocess', said on stderr"),
  LENS_FLAG(T, "minmax", cutout.preprocess, "the same as --preprocess minmax"),
  LENS_INT(T, "hdu", cutout.hdu, -1, 100000, -1, "K", "FITS HDU to read (default -1: the first holding an image; fpack's .fits.fz\n"
           "keeps a primary image in HDU 1)"),
  LENS_SIZE(T, "threads", threads, 1, 256, 0, "N", "threads sharing the windows (default: the CPUs this process may use);\n"
            "results do not depend on N"),
  LENS_CUSTOM(T, "shard", 0, shard, lens_parse_shard, "I/N", "scan only shard I of N: fields [I n/N, (I+1) n/N) of the n given;\n"
              "DIR/shard.json records it (lens merge joins shards)"),
  LENS_FLAG(T, "skip-done", skip_done, "with --shard: do nothing if DIR already holds this shard, complete"),
};
#undef T
static const lens_option_section find_sections[] = {{NULL, find_rows, sizeof find_rows / sizeof find_rows[0]}};
static const lens_command_spec find_spec = {
  "find", "usage: lens find --model MODEL.safetensors --out DIR [options] FIELD...\n",
  "\nSlides the model's window over each field with step S, scores every window, and reports the\n"
  "peaks of the p_lens map above T, merged within R pixels (docs/find.md).\n",
  NULL, find_sections, 1,
  "Output: DIR/detections.csv (field,x,y,ra,dec,p_lens, then x_sigma,y_sigma with --locator and\n"
  "p_verify with --verify; x, y 0-based pixels, pixel centres at\n"
  "integers; ra, dec in degrees from a TAN WCS in the FITS header, else empty), DIR/pmap_NAME.npy\n"
  "(the map) and DIR/overview_NAME.png for each field NAME. Exit status: 0 done, 1 failure\n"
  "(a file), 2 usage error.\n"};

typedef struct {
  const find_options *o;
  lensnet_model *model, *locator, *verifier;
  int minmax, locator_minmax, verifier_minmax;
  double locator_scale;
  lens_pool *pool;
  lensnet_parallel par;
  FILE *csv;
  char csv_path[4200], csv_tmp[4210], manifest_path[4200];
  size_t first, end, detections;
  lens_shard_manifest manifest;
  int channel_note_shown, png_note_shown, stride_note_shown;
  double scale_noted;       /* the pixel scale of the field before, when it was noted as not the model's (0: none) */
  char band_note[600];       /* the last note on how a field's planes were fed (another field's may differ) */
  int field_wrote;                /* the field being scanned: 1 its map written, 2 its overview */
} find_state;

/* The field's name in output file names: its file name without folder and extension (both of
 * fpack's ".fits.fz" and of gzip's ".fits.gz"). */
static void field_name(const char *path, char *name, size_t cap) {
  const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path, *dot = strrchr(base, '.');
  size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
  if (dot && dot != base && strlen(dot) == 3 && (dot[1] == 'f' || dot[1] == 'F' || dot[1] == 'g' || dot[1] == 'G') &&
      (dot[2] == 'z' || dot[2] == 'Z')) { /* .fz or .gz, in either case */
    const char *end = dot;
    for (dot = end - 1; dot > base && *dot != '.'; dot--) {}
    if (dot > base) n = (size_t)(dot - base);
  }
  snprintf(name, cap, "%.*s", (int)(n < cap ? n : cap - 1), base);
}

/* Maps and overviews are written under their names + PENDING and renamed into place once every
 * field is scanned (publish_field_files). */
#define PENDING ".pending"

/* The command line into o, with the checks that involve several options. 0, -1 after --help,
 * or the exit status. */
static int parse_options(int argc, char **argv, find_options *o) {
  lens_options_given given;
  int rc, i, j;
  memset(o, 0, sizeof *o);
  if ((rc = lens_options_parse(&find_spec, argc, argv, o, &given)) != 0) return rc;
  if (lens_out_folder("--out", o->out_dir)) return LENS_EXIT_USAGE;
  if (strlen(o->out_dir) > 4000) return lens_usage("find: --out path is too long");
  if (o->locate_passes && !o->locator_path) return lens_usage("find: --locate-passes needs --locator");
  if (o->locate_symmetries >= 0 && !o->locator_path) return lens_usage("find: --locate-symmetries needs --locator");
  if (!o->verify_path && lens_options_was_given(&find_spec, &given, "verify-threshold")) return lens_usage("find: --verify-threshold needs --verify");
  if (o->skip_done && !o->shard.count) return lens_usage("find: --skip-done needs --shard I/N (a shard's manifest says when it is done)");
  for (i = 0; i < o->field_count; i++) {
    char a[512], b[512];
    field_name(o->fields[i], a, sizeof a);
    if (!a[0]) return lens_usage("find: %s: a field needs a file name", o->fields[i]);
    for (j = 0; j < i; j++) {
      field_name(o->fields[j], b, sizeof b);
      if (!strcmp(a, b))
        return lens_usage("find: %s and %s would both write pmap_%s.npy; give fields distinct file names", o->fields[j], o->fields[i], a);
    }
  }
  if (!o->threads) o->threads = lens_pool_default_threads();
  return 0;
}

/* Field `path` as [bands, h, w] into t (FITS: the --hdu image of the file's bytes; .npy: [C,H,W],
 * [H,W] or [1,C,H,W]). */
static int read_field(const find_state *s, const char *path, const unsigned char *bytes, size_t len, lensnet_tensor *t, size_t *bands,
                      size_t *h, size_t *w) {
  lensnet_error err;
  if (!bytes && lensnet_npy_read(path, t, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (bytes && lensnet_fits_read_memory(bytes, len, s->o->cutout.hdu, t, &err) != LENSNET_OK) return lens_fail("%s: %s", path, err.message);
  if (t->ndim == 2) { *bands = 1; *h = t->shape[0]; *w = t->shape[1]; }
  else if (t->ndim == 3) { *bands = t->shape[0]; *h = t->shape[1]; *w = t->shape[2]; }
  else if (t->ndim == 4 && t->shape[0] == 1) { *bands = t->shape[1]; *h = t->shape[2]; *w = t->shape[3]; }
  else {
    int ndim = t->ndim;
    lensnet_tensor_free(t);
    return lens_fail("%s: a field is an image [H,W] or a cube [C,H,W]; this array has %d dimensions", path, ndim);
  }
  return 0;
}

/* "plane 3" or "planes 2,1,3,0"; "band H" or "bands J,Y,H,VIS". */
static void plane_list(const size_t *chan, size_t n, char *buf, size_t cap) {
  size_t k, at = (size_t)snprintf(buf, cap, "plane%s ", n == 1 ? "" : "s");
  for (k = 0; k < n && at + 24 < cap; k++) at += (size_t)snprintf(buf + at, cap - at, "%s%lu", k ? "," : "", (unsigned long)chan[k]);
}

/* A note about how field `path`'s planes are fed, shown when it says something else than the last
 * note did (each field of a run may name its planes otherwise). */
static void band_note(find_state *s, const char *path, const char *text) {
  if (!strcmp(s->band_note, text)) return;
  snprintf(s->band_note, sizeof s->band_note, "%s", text);
  fprintf(stderr, "find: note: %s %s\n", path, text);
}

/* Without --channels, the planes of a FITS field that names them (BAND1, BAND2, ..., as lens sim
 * writes them, in the header of the HDU that holds the image) are fed to the model by its
 * band_names (lensnet_band_names_match, the rule lens predict uses): chan[k] is the plane of model
 * band k. Returns 1 when chan is set, 0 for the planes as they are (the first in_c), or the exit
 * status (negated) of a refusal: a band the model reads named by two planes. bytes, nbytes: a FITS
 * field's file (NULL for a .npy, whose names are in its bands.txt). */
static int field_channels(find_state *s, const char *path, const unsigned char *bytes, size_t nbytes, size_t bands, size_t *chan) {
  const lensnet_model *m = s->model;
  char plane[64][72], want[72], text[600], list[300];
  int is_named[64];
  size_t k, p, named = 0, found = 0;
  int moved = 0;
  const char *model_bands = lensnet_model_meta(m, "band_names");
  const char *cards = "BAND1, BAND2, ...";
  if (s->o->cutout.channel_count || bands > 64 || !model_bands || bands < m->in_c) return 0;
  if ((lens_format_of(path) == LENS_FMT_NPY)) { /* a stack's names: X.bands.txt, or lens sim's bands.txt beside its images.npy */
    char names[4096], file[4096];
    const char *q = names;
    size_t count = 0;
    int have = 0, rc = lens_npy_band_names(path, names, sizeof names, &count, file, sizeof file, &have);
    if (rc) return -rc;
    if (have && count != bands)
      return -lens_fail("%s names %lu bands (%s) for the %lu planes of %s", file, (unsigned long)count, names, (unsigned long)bands, path);
    for (p = 0; p < bands; p++) {
      size_t len = have ? strcspn(q, ",") : 0;
      is_named[p] = have && len < sizeof plane[p];
      if (is_named[p]) { memcpy(plane[p], q, len); plane[p][len] = 0; q += len + (q[len] == ','); }
      named += (size_t)is_named[p];
    }
    cards = "its bands.txt";
  } else
    for (p = 0; p < bands; p++) {
      is_named[p] = lensnet_fits_plane_name_memory(bytes, nbytes, s->o->cutout.hdu, p, plane[p], sizeof plane[p]);
      named += (size_t)is_named[p];
    }
  for (k = 0; k < m->in_c && named; k++) {
    size_t hits = 0, first = 0;
    lensnet_model_band_name(m, k, want, sizeof want, NULL);
    for (p = 0; p < bands; p++)
      if (is_named[p] && lensnet_band_names_match(plane[p], want)) {
        if (hits++ == 0) first = p;
        else return -lens_fail("%s: planes %lu and %lu are both band '%s' (BAND%lu, BAND%lu), which the model reads once; --channels picks "
                               "the planes", path, (unsigned long)first, (unsigned long)p, want, (unsigned long)first + 1, (unsigned long)p + 1);
      }
    if (hits) chan[k] = first, found++, moved |= first != k;
  }
  plane_list(chan, m->in_c, list, sizeof list);
  if (found == m->in_c) { /* every band the model reads is named */
    if (moved)
      snprintf(text, sizeof text, "names its planes (%s): the model's band%s %s %s read from %s (--channels takes planes as "
               "given)", cards, m->in_c == 1 ? "" : "s", model_bands, m->in_c == 1 ? "is" : "are", list);
    else snprintf(text, sizeof text, "names its planes: the model's bands are its first planes, in order");
    if (moved || s->band_note[0]) band_note(s, path, text); /* in order after another order: said too */
    return moved;
  }
  for (k = 0; k < m->in_c; k++) chan[k] = k;
  plane_list(chan, m->in_c, list, sizeof list);
  if (named)
    snprintf(text, sizeof text, "names %lu of its %lu planes (BAND1, ...), not every band the model reads (%s): %s %s "
             "(--channels chooses)", (unsigned long)named, (unsigned long)bands, model_bands, list, m->in_c == 1 ? "is used as it is" : "are used as they are");
  else if (m->in_c > 1 || bands > 1)
    snprintf(text, sizeof text, "does not name its planes (%s): the model, which reads %s, is fed %s in that order "
             "(--channels chooses)", (lens_format_of(path) == LENS_FMT_NPY) ? "no bands.txt" : cards, model_bands, list);
  else return 0; /* one unnamed plane for a one-band model: nothing to choose */
  band_note(s, path, text);
  return 0;
}

/* The scan's settings from the options and the model. */
static lensnet_scan_desc scan_desc(const find_state *s) {
  lensnet_scan_desc d;
  memset(&d, 0, sizeof d);
  d.stride = s->o->stride;
  d.threshold = s->o->threshold > 0 ? s->o->threshold : -1.0; /* --threshold 0: every peak */
  d.nms_radius = s->o->nms_radius;
  /* located positions are good to about a pixel: a peak a stride away is another object */
  if (!d.nms_radius && s->locator) d.nms_radius = (double)(d.stride ? d.stride : (s->model->in_w / 4 ? s->model->in_w / 4 : 1));
  d.no_refine = s->o->no_refine;
  d.minmax = s->minmax;
  d.channels = s->o->cutout.channel_count ? s->o->cutout.channels : NULL;
  d.channel_count = s->o->cutout.channel_count;
  d.parallel = s->o->threads > 1 ? &s->par : NULL;
  return d;
}

/* DIR/overview_NAME.png: the field in asinh colours, each detection's window outlined. */
static int write_overview(find_state *s, const char *name, const float *image, size_t bands, size_t h, size_t w,
                          const lensnet_scan_grid *g, const lensnet_detection *det, size_t n) {
  static const lensviz_color mark = {60, 255, 60};
  lensviz_image pic;
  lensnet_error err;
  char path[4400];
  size_t k;
  int rc = 0;
  if (!LENSVIZ_HAS_PNG) {
    if (!s->png_note_shown) fprintf(stderr, "find: built without PNG support: no overview pictures\n");
    s->png_note_shown = 1;
    return 0;
  }
  if (lensviz_image_alloc(&pic, w, h, &err) != LENSNET_OK) return lens_fail("%s: overview: %s", name, err.message);
  /* bands run from blue to red in lens sim's cubes (VIS, Y, J, H) */
  lensviz_asinh_bands(image, bands, h, w, 8.0f, 0.0f, &pic);
  for (k = 0; k < n; k++) {
    char text[16];
    long x0 = (long)(det[k].x - 0.5 * (double)(g->win_w - 1) + 0.5), y0 = (long)(det[k].y - 0.5 * (double)(g->win_h - 1) + 0.5);
    lensviz_draw_rect(&pic, x0, y0, (long)g->win_w, (long)g->win_h, mark);
    snprintf(text, sizeof text, "%.2f", det[k].p_lens);
    lensviz_draw_text(&pic, x0 + 2, y0 + 2, text, 1, mark);
  }
  snprintf(path, sizeof path, "%s/overview_%s.png" PENDING, s->o->out_dir, name);
  if (lensviz_png_write(path, &pic, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  else s->field_wrote |= 2;
  lensviz_image_free(&pic);
  return rc;
}

/* One detections.csv row per detection; ra, dec when the field has a TAN WCS (wcs not NULL). */
static int write_rows(find_state *s, const char *path, const lensnet_wcs *wcs, const lensnet_detection *det, size_t n) {
  size_t k;
  for (k = 0; k < n; k++) {
    lens_csv_cell(s->csv, path);
    fprintf(s->csv, ",%.3f,%.3f,", det[k].x, det[k].y);
    if (wcs) {
      double ra, dec;
      lensnet_wcs_pixel_to_world(wcs, det[k].x, det[k].y, &ra, &dec);
      fprintf(s->csv, "%.7f,%.7f,", ra, dec);
    } else fputs(",,", s->csv);
    fprintf(s->csv, "%.6f", det[k].p_lens);
    if (s->locator) fprintf(s->csv, ",%.3f,%.3f", det[k].sigma_x, det[k].sigma_y);
    if (s->verifier) fprintf(s->csv, ",%.6f", det[k].p_verify);
    fputc('\n', s->csv);
  }
  return ferror(s->csv) ? lens_fail("%s: write failed (disk full?)", s->csv_tmp) : 0;
}

/* A scan failure: shape problems are the field's (exit 1), channel lists the user's (exit 2). */
static int scan_failure(const find_state *s, const char *path, const lensnet_error *err) {
  if (err->result == LENSNET_ERR_ARG && strstr(err->message, "channel list")) return lens_usage("%s: --channels: %s", path, err->message);
  if (err->result == LENSNET_ERR_SHAPE && !(lens_format_of(path) == LENS_FMT_NPY)) { /* which image of the file was read */
    int count = 0;
    lensnet_fits_hdu_count(path, &count, NULL);
    if (count > 1 && s->o->cutout.hdu >= 0)
      return lens_fail("%s: %s (HDU %d of the file's %d; --hdu picks another)", path, err->message, s->o->cutout.hdu, count);
    if (count > 1)
      return lens_fail("%s: %s (the first of the file's %d HDUs that holds an image; --hdu picks another)", path, err->message, count);
  }
  return lens_fail("%s: %s", path, err->message);
}

/* Field `path`: its map, detections, rows and pictures. */
static int find_in_field(find_state *s, const char *path) {
  lensnet_tensor t;
  lensnet_error err;
  lensnet_scan_desc d = scan_desc(s);
  lensnet_scan_grid g;
  lensnet_detection *det = NULL;
  float *map = NULL;
  size_t bands = 0, h = 0, w = 0, n = 0, chan[64], len = 0;
  char name[512], map_path[4600];
  unsigned char *bytes = NULL; /* a FITS field's bytes, read once for its image and header (lensnet_fits_file_bytes) */
  lensnet_wcs wcs;
  int rc, has_wcs = 0;
  s->field_wrote = 0;
  if (lens_format_of(path) != LENS_FMT_NPY && lensnet_fits_file_bytes(path, &bytes, &len, &err) != LENSNET_OK) return lens_fail_err(&err);
  if ((rc = read_field(s, path, bytes, len, &t, &bands, &h, &w)) != 0) { lensnet_free(bytes); return rc; }
  field_name(path, name, sizeof name);
  if (bytes) { /* the field's sky positions (a note when it has none), and its pixels against the model's, as lens predict checks */
    double model_scale = 0.0, scale = 0.0;
    const char *key = NULL;
    if (!(has_wcs = lensnet_fits_wcs_memory(bytes, len, s->o->cutout.hdu, &wcs, &err) == LENSNET_OK))
      fprintf(stderr, "find: %s: ra, dec left empty (%s)\n", path, err.message);
    int off = lensnet_model_pixel_scale(s->model, &model_scale, NULL) == LENSNET_OK && model_scale > 0.0 &&
              lensnet_fits_pixel_scale_memory(bytes, len, s->o->cutout.hdu, &scale, &key, NULL) == LENSNET_OK &&
              fabs(scale / model_scale - 1.0) > 0.01;
    if (!off) s->scale_noted = 0.0; /* at the model's scale (or none said): the next field off it is noted again */
    else if (scale != s->scale_noted) { /* a field off the model's scale, unless the field before was noted at this one */
      fprintf(stderr, "find: note: %s has %.4g\"/pixel (FITS %s), the model was made for %.4g\"; a finder sees lenses at the size it was "
              "trained on only at its own scale\n", path, scale, key, model_scale);
      s->scale_noted = scale;
    }
  } else s->scale_noted = 0.0; /* a .npy field says no scale */
  if (s->model->in_c <= 64) { /* the planes by their names */
    int by_name = field_channels(s, path, bytes, len, bands, chan);
    if (by_name < 0) {
      lensnet_free(bytes);
      lensnet_tensor_free(&t);
      return -by_name;
    }
    if (by_name) {
      d.channels = chan;
      d.channel_count = s->model->in_c;
    }
  }
  lensnet_free(bytes); /* the header has said all it has to: the scan holds the pixels alone */
  {
    size_t k, blank = 0;
    for (k = 0; k < bands * h * w; k++) blank += !isfinite(t.data[k]);
    if (blank)
      fprintf(stderr, "find: note: %s has %lu blank (NaN or infinite) pixels; each window that holds some sets them to 0%s\n", path,
              (unsigned long)blank, s->minmax ? " (after min-max scaling of the rest)" : "");
  }
  if (lensnet_scan_grid_of(s->model, &d, bands, h, w, &g, &err) != LENSNET_OK) rc = scan_failure(s, path, &err);
  if (!rc && g.stride > g.win_w && (g.cols > 1 || g.rows > 1) && !s->stride_note_shown) {
    fprintf(stderr, "find: note: a stride of %lu is wider than the %lu-pixel window: the pixels between windows are in none\n",
            (unsigned long)g.stride, (unsigned long)g.win_w);
    s->stride_note_shown = 1;
  }
  if (!rc && !d.channels && bands > s->model->in_c && !s->channel_note_shown && !s->band_note[0]) {
    fprintf(stderr, "find: the fields have %lu bands and the model takes %lu: bands 0-%lu are used (--channels chooses)\n",
            (unsigned long)bands, (unsigned long)s->model->in_c, (unsigned long)s->model->in_c - 1);
    s->channel_note_shown = 1;
  }
  if (!rc && (!(map = (float *)malloc(g.rows * g.cols * sizeof(float))) || !(det = (lensnet_detection *)malloc(g.rows * g.cols * sizeof *det))))
    rc = lens_fail("%s: out of memory for a %lux%lu map", path, (unsigned long)g.rows, (unsigned long)g.cols);
  if (!rc && lensnet_scan_map(s->model, &d, t.data, bands, h, w, map, &err) != LENSNET_OK) rc = scan_failure(s, path, &err);
  if (!rc) n = lensnet_scan_detect(map, &g, &d, det, g.rows * g.cols);
  if (!rc && s->locator) {
    lensnet_locate_desc ld;
    memset(&ld, 0, sizeof ld);
    ld.pixel_scale = s->locator_scale;
    ld.minmax = s->locator_minmax;
    ld.passes = s->o->locate_passes;
    ld.symmetries = s->o->locate_symmetries >= 0 ? (s->o->locate_symmetries ? 8 : 1) : s->locator->in_w == s->locator->in_h ? 8 : 1;
    if (lensnet_scan_locate(s->locator, &ld, &d, t.data, bands, h, w, det, &n, &err) != LENSNET_OK) rc = scan_failure(s, path, &err);
  }
  if (!rc && s->verifier &&
      lensnet_scan_verify(s->verifier, s->verifier_minmax, s->o->verify_threshold, &d, t.data, bands, h, w, det, &n, &err) != LENSNET_OK)
    rc = scan_failure(s, path, &err);
  if (!rc) {
    lensnet_tensor m;
    memset(&m, 0, sizeof m);
    m.ndim = 2;
    m.shape[0] = g.rows;
    m.shape[1] = g.cols;
    m.data = map;
    snprintf(map_path, sizeof map_path, "%s/pmap_%s.npy" PENDING, s->o->out_dir, name);
    if (lensnet_npy_write(map_path, &m, &err) != LENSNET_OK) rc = lens_fail_err(&err);
    else s->field_wrote |= 1;
  }
  if (!rc) rc = write_rows(s, path, has_wcs ? &wcs : NULL, det, n);
  if (!rc) rc = write_overview(s, name, t.data, bands, h, w, &g, det, n);
  if (!rc) {
    s->detections += n;
    fprintf(stderr, "find: %s: %lux%lu (height x width), %lu window%s (stride %lu), %lu detection%s\n", path, (unsigned long)h, (unsigned long)w,
            (unsigned long)(g.rows * g.cols), g.rows * g.cols == 1 ? "" : "s", (unsigned long)g.stride, (unsigned long)n, n == 1 ? "" : "s");
  }
  free(map);
  free(det);
  lensnet_tensor_free(&t);
  return rc;
}

/* Maps and overviews are written as NAME.pending and renamed over the final names only once every
 * field is scanned, so that a failed run never replaces (and then removes) an earlier run's files. */
static int publish_field_files(const find_state *s) {
  size_t i;
  int k;
  for (i = s->first; i < s->end; i++) {
    char name[512], from[4720], to[4700];
    field_name(s->o->fields[i], name, sizeof name);
    for (k = 0; k < 2; k++) {
      snprintf(to, sizeof to, k ? "%s/overview_%s.png" : "%s/pmap_%s.npy", s->o->out_dir, name);
      snprintf(from, sizeof from, "%s" PENDING, to);
      if (rename(from, to) != 0 && errno != ENOENT) return lens_fail("find: cannot rename %s to %s: %s", from, to, strerror(errno));
    }
  }
  return 0;
}

/* A failed run removes the maps and overviews it wrote: those of the fields it finished before
 * field `failed`, and what the failing field wrote. Without detections.csv they would look like a
 * finished scan. */
static void remove_field_files(const find_state *s, size_t failed) {
  size_t i, k = 0;
  for (i = s->first; i <= failed && i < s->end; i++) {
    char name[512], path[4600];
    int wrote = i < failed ? 3 : s->field_wrote;
    field_name(s->o->fields[i], name, sizeof name);
    snprintf(path, sizeof path, "%s/pmap_%s.npy" PENDING, s->o->out_dir, name);
    k += (wrote & 1) && remove(path) == 0;
    snprintf(path, sizeof path, "%s/overview_%s.png" PENDING, s->o->out_dir, name);
    k += (wrote & 2) && remove(path) == 0;
  }
  if (k) fprintf(stderr, "find: removed the %lu map and overview file%s this run wrote (detections.csv is written only when every field is scanned)\n",
                 (unsigned long)k, k == 1 ? "" : "s");
}

/* --shard: the manifest this run will write, and whether --skip-done finds it there already. A
 * stale manifest goes before any output is touched. */
static int shard_start(find_state *s, int argc, char **argv, int *done) {
  lens_shard_manifest *m = &s->manifest;
  *done = 0;
  lens_shard_range(&s->o->shard, (size_t)s->o->field_count, &s->first, &s->end);
  if (!s->o->shard.count) return 0;
  snprintf(s->manifest_path, sizeof s->manifest_path, "%s/shard.json", s->o->out_dir);
  snprintf(m->command, sizeof m->command, "find");
  lens_shard_run_id(argc, argv, m->run);
  m->shard = s->o->shard.index;
  m->shards = s->o->shard.count;
  m->first = s->first;
  m->end = s->end;
  m->total = (size_t)s->o->field_count;
  m->nfiles = 1;
  snprintf(m->files[0], sizeof m->files[0], "detections.csv");
  if (s->o->skip_done && lens_shard_done(s->manifest_path, s->o->out_dir, m)) {
    fprintf(stderr, "find: shard %lu/%lu (fields [%lu, %lu)) already done in %s, skipped\n", (unsigned long)m->shard,
            (unsigned long)m->shards, (unsigned long)m->first, (unsigned long)m->end, s->o->out_dir);
    *done = 1;
    return 0;
  }
  if (remove(s->manifest_path) != 0 && errno != ENOENT) return lens_fail("find: cannot remove the old %s: %s", s->manifest_path, strerror(errno));
  return 0;
}

/* A second network (--locator, --verify) must see the sky as the finder does: when both files say
 * their pixel scale or their bands' names, these agree (a verifier at 0.1"/pixel on a field the
 * finder reads at 0.3" scores a window three times the size it was trained on). */
static int same_sky(const char *flag, const char *path, const lensnet_model *other, const find_state *s) {
  const char *a = lensnet_model_meta(s->model, "pixel_scale"), *b = lensnet_model_meta(other, "pixel_scale");
  const char *na = lensnet_model_meta(s->model, "band_names"), *nb = lensnet_model_meta(other, "band_names");
  if (a && b) {
    double x = atof(a), y = atof(b);
    if (x > 0 && y > 0 && fabs(x - y) > 1e-6 * (x > y ? x : y))
      return lens_usage("%s %s reads %s\"/pixel but the finder %s reads %s\"/pixel; they must read the same pixels", flag, path, b,
                        s->o->model_path, a);
  }
  if (na && nb && strcmp(na, nb))
    return lens_usage("%s %s takes the bands %s but the finder %s takes %s; they must read the same bands in the same order", flag, path, nb,
                      s->o->model_path, na);
  return 0;
}

/* The model, its normalisation, the threads. */
static int open_model(find_state *s) {
  lensnet_error err;
  if (lensnet_model_load(s->o->model_path, &s->model, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (lensnet_model_meta(s->model, "regress.targets"))
    return lens_usage("%s is a lens-modelling (regression) network; lens find scans with a finder", s->o->model_path);
  if ((s->minmax = lens_preprocess_resolve(s->model, s->o->cutout.preprocess)) < 0) return LENS_EXIT_FAIL;
  if (s->o->locator_path) {
    int rc = lens_locator_open(s->o->locator_path, &s->locator, &s->locator_scale, &s->locator_minmax);
    if (rc) return rc;
    if (s->locator->in_c != s->model->in_c)
      return lens_usage("--locator %s takes %lu bands but the finder %lu; they must read the same bands", s->o->locator_path,
                        (unsigned long)s->locator->in_c, (unsigned long)s->model->in_c);
    if ((rc = same_sky("--locator", s->o->locator_path, s->locator, s)) != 0) return rc;
  }
  if (s->o->verify_path) {
    if (lensnet_model_load(s->o->verify_path, &s->verifier, &err) != LENSNET_OK) return lens_fail_err(&err);
    if (lensnet_model_meta(s->verifier, "regress.targets"))
      return lens_usage("--verify %s is a regression network; the verifier is a finder (two classes)", s->o->verify_path);
    if (s->verifier->in_c != s->model->in_c)
      return lens_usage("--verify %s takes %lu bands but the finder %lu; they must read the same bands", s->o->verify_path,
                        (unsigned long)s->verifier->in_c, (unsigned long)s->model->in_c);
    {
      int rc = same_sky("--verify", s->o->verify_path, s->verifier, s);
      if (rc) return rc;
    }
    if ((s->verifier_minmax = lens_preprocess_resolve_of(s->verifier, LENS_PREPROCESS_UNSET, "the verifier's")) < 0) return LENS_EXIT_FAIL;
  }
  if (s->o->threads > 1) {
    if (!(s->pool = lens_pool_create(s->o->threads))) return lens_fail("find: cannot start threads");
    s->par = lens_pool_parallel(s->pool);
  }
  return 0;
}

int lens_cmd_find(int argc, char **argv) {
  find_options o;
  find_state s;
  size_t i, made;
  double t0 = lens_seconds();
  int done = 0, scanned = 0, rc = parse_options(argc, argv, &o);
  if (rc) return rc < 0 ? 0 : rc;
  memset(&s, 0, sizeof s);
  s.o = &o;
  rc = lens_make_dirs_noted(o.out_dir, &made) ? LENS_EXIT_FAIL : 0;
  if (!rc) rc = shard_start(&s, argc, argv, &done);
  if (!rc && !done) rc = open_model(&s);
  if (!rc && !done) {
    snprintf(s.csv_path, sizeof s.csv_path, "%s/detections.csv", o.out_dir);
    if (!(s.csv = lens_text_open(s.csv_path, s.csv_tmp, sizeof s.csv_tmp))) rc = LENS_EXIT_FAIL;
    else fprintf(s.csv, "field,x,y,ra,dec,p_lens%s%s\n", o.locator_path ? ",x_sigma,y_sigma" : "", o.verify_path ? ",p_verify" : "");
  }
  for (i = s.first; i < s.end && !rc && !done; i++) {
    scanned = 1;
    rc = find_in_field(&s, o.fields[i]);
  }
  /* the run's files go with it (detections.csv needs every field); a run that failed before its
   * first field wrote none, and the folder's maps are an earlier run's */
  if (rc && !done && scanned) remove_field_files(&s, i - 1);
  if (s.csv) {
    if (!rc && !done) rc = publish_field_files(&s);
    if (!rc) rc = lens_text_commit(s.csv, s.csv_tmp, s.csv_path);
    else lens_text_discard(s.csv, s.csv_tmp);
  }
  if (!rc && !done && o.shard.count) rc = lens_shard_manifest_write(s.manifest_path, &s.manifest);
  if (!rc && !done)
    fprintf(stderr, "find: %lu field%s, %lu detection%s in %.1f s (%lu thread%s) -> %s\n", (unsigned long)(s.end - s.first),
            s.end - s.first == 1 ? "" : "s", (unsigned long)s.detections, s.detections == 1 ? "" : "s", lens_seconds() - t0,
            (unsigned long)o.threads, o.threads == 1 ? "" : "s", o.out_dir);
  /* a failure before anything was written leaves no empty folder of its own making behind */
  if (rc) lens_remove_made_dirs(o.out_dir, made);
  lensnet_model_free(s.model);
  lensnet_model_free(s.locator);
  lensnet_model_free(s.verifier);
  lens_pool_free(s.pool);
  return rc;
}
