/* cli.c - the conventions every `lens` subcommand follows (see cli.h). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <errno.h>
#include <ctype.h>
#include <math.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"
#include "lens_cmds.h"

static void cli_report(const char *fmt, va_list ap) {
  fputs("lens: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

int lens_usage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cli_report(fmt, ap);
  va_end(ap);
  return LENS_EXIT_USAGE;
}

int lens_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cli_report(fmt, ap);
  va_end(ap);
  return LENS_EXIT_FAIL;
}

int lens_fail_err(const lensnet_error *err) {
  return lens_fail("%s", err->message[0] ? err->message : lensnet_result_string(err->result));
}

static int cutout_run(const char *label, const lensnet_model *m, const lensnet_cutout_desc *d, const float *image, size_t bands,
                      size_t h, size_t w, float *out, lensnet_cutout_report *report, int *note_shown, int place_only) {
  lensnet_error err;
  lensnet_result r = place_only ? lensnet_cutout_place(m, d, image, bands, h, w, out, report, &err)
                                : lensnet_cutout_prepare(m, d, image, bands, h, w, out, report, &err);
  size_t c;
  if (report->unused_bands && !d->channels && !(note_shown && *note_shown)) {
    fprintf(stderr, "lens: note: inputs have %lu bands and the model takes %lu: using bands 0..%lu (choose with --channels)\n",
            (unsigned long)bands, (unsigned long)m->in_c, (unsigned long)m->in_c - 1);
    if (note_shown) *note_shown = 1;
  }
  if (r == LENSNET_OK) {
    static int stretch_noted;
    /* --resize of a cutout whose shape is not the model's: the pixels are no longer square */
    if (d->size == LENSNET_SIZE_RESIZE && !stretch_noted && h && w &&
        fabs((double)m->in_w / (double)w - (double)m->in_h / (double)h) > 0.01 * ((double)m->in_w / (double)w)) {
      fprintf(stderr, "lens: note: --resize scales %s (%lux%lu, height x width) by %.3g down and %.3g across to the model's %lux%lu: "
              "its pixels are stretched (cut it to the model's shape first to keep them square)\n", label, (unsigned long)h,
              (unsigned long)w, (double)m->in_h / (double)h, (double)m->in_w / (double)w, (unsigned long)m->in_h, (unsigned long)m->in_w);
      stretch_noted = 1;
    }
    return 0;
  }
  switch (report->issue) {
    case LENSNET_CUTOUT_EMPTY: return lens_fail("%s: the image is empty (%lux%lu)", label, (unsigned long)h, (unsigned long)w);
    case LENSNET_CUTOUT_CHANNEL_COUNT:
      return lens_usage("--channels lists %d bands but the model takes %lu", (int)d->channel_count, (unsigned long)m->in_c);
    case LENSNET_CUTOUT_CHANNEL_MISSING:
      for (c = 0; c + 1 < d->channel_count && d->channels[c] < bands; c++) continue;
      return lens_usage("%s: --channels asks for band %d but the input has %lu bands", label, (int)d->channels[c], (unsigned long)bands);
    case LENSNET_CUTOUT_TOO_FEW_BANDS:
      return lens_fail("%s: has %lu band(s) but the model takes %lu", label, (unsigned long)bands, (unsigned long)m->in_c);
    case LENSNET_CUTOUT_SIZE: {
      /* a model trained on central crops (lens train --crop) wants them cut the same way, not resampled */
      const char *crop = lensnet_model_meta(m, "train.crop");
      if (crop && atoi(crop) > 0 && h >= m->in_h && w >= m->in_w)
        return lens_fail("%s: image is %lux%lu but the model takes %lux%lu: it was trained on the central %sx%s of its images "
                         "(train.crop); pass --crop to cut them so", label, (unsigned long)h, (unsigned long)w, (unsigned long)m->in_h,
                         (unsigned long)m->in_w, crop, crop);
      return lens_fail("%s: image is %lux%lu but the model takes %lux%lu; pass --resize or --crop", label, (unsigned long)h,
                       (unsigned long)w, (unsigned long)m->in_h, (unsigned long)m->in_w);
    }
    case LENSNET_CUTOUT_CROP_TOO_SMALL:
      return lens_fail("%s: cannot --crop a %lux%lu image to %lux%lu", label, (unsigned long)h, (unsigned long)w,
                       (unsigned long)m->in_h, (unsigned long)m->in_w);
    default: return lens_fail_err(&err);
  }
}

int lens_cutout(const char *label, const lensnet_model *m, const lensnet_cutout_desc *d, const float *image, size_t bands,
                size_t h, size_t w, float *out, lensnet_cutout_report *report, int *note_shown) {
  return cutout_run(label, m, d, image, bands, h, w, out, report, note_shown, 0);
}

int lens_cutout_place(const char *label, const lensnet_model *m, const lensnet_cutout_desc *d, const float *image, size_t bands,
                      size_t h, size_t w, float *out, lensnet_cutout_report *report, int *note_shown) {
  return cutout_run(label, m, d, image, bands, h, w, out, report, note_shown, 1);
}

int lens_read_band_files(const lensnet_model *m, char **paths, int count, int hdu, int by_filter, float **image, size_t *h, size_t *w,
                         char *label, size_t cap, int *note_shown, size_t *plane_of) {
  char names[64][72];
  size_t slot[64];
  int i, named = 0;
  size_t len = 0, hw = 0;
  lensnet_error err;
  *image = NULL;
  if (label && cap) label[0] = 0;
  if (count < 1 || count > 64) return lens_usage("--bands takes 1 to 64 files per object, got %d", count);
  for (i = 0; i < count; i++) {
    slot[i] = (size_t)i;
    if (label && len < cap) len += (size_t)snprintf(label + len, cap - len, "%s%s", i ? "+" : "", paths[i]);
  }
  /* the files go where their FILTER headers say among the model's bands */
  if (by_filter && lensnet_fits_band_slots(m, (const char *const *)paths, (size_t)count, hdu, slot, &named, &err) != LENSNET_OK)
    return lens_fail("%s: %s", label && label[0] ? label : paths[0], err.message);
  if (named) {
    int moved = 0;
    for (i = 0; i < count; i++) {
      lensnet_model_band_name(m, (size_t)i, names[i], sizeof names[i], NULL);
      moved |= slot[i] != (size_t)i;
    }
    if (moved && note_shown && !*note_shown) {
      char given[512] = "", model[512] = "";
      size_t a = 0, b = 0;
      for (i = 0; i < count; i++) {
        if (a < sizeof given) a += (size_t)snprintf(given + a, sizeof given - a, "%s%s", i ? "," : "", names[slot[i]]);
        if (b < sizeof model) b += (size_t)snprintf(model + b, sizeof model - b, "%s%s", i ? "," : "", names[i]);
      }
      fprintf(stderr, "lens: note: the files of an object come in the order %s (their FILTER headers); they are fed to the model in its "
              "band order %s\n", given, model);
      *note_shown = 1;
    }
  }
  for (i = 0; i < count; i++) {
    lensnet_tensor t;
    if (lensnet_fits_read(paths[i], hdu, &t, &err) != LENSNET_OK) { free(*image); *image = NULL; return lens_fail_err(&err); }
    if (t.ndim != 2 || (i > 0 && (t.shape[0] != *h || t.shape[1] != *w))) {
      int rc = lens_fail("%s: %s", paths[i], t.ndim != 2 ? "with --bands each file must hold one band (a 2-D image)"
                                                          : "its size differs from the other bands of the object");
      lensnet_tensor_free(&t);
      free(*image);
      *image = NULL;
      return rc;
    }
    if (i == 0) {
      *h = t.shape[0];
      *w = t.shape[1];
      hw = *h * *w;
      if (!(*image = (float *)malloc((size_t)count * hw * sizeof(float)))) { lensnet_tensor_free(&t); return lens_fail("out of memory"); }
    }
    memcpy(*image + (size_t)slot[i] * hw, t.data, hw * sizeof(float));
    if (plane_of) plane_of[i] = slot[i];
    lensnet_tensor_free(&t);
  }
  return 0;
}

int lens_cube_by_band_names(const lensnet_model *m, const char *path, int hdu, float *planes, size_t count, size_t hw, int *last) {
  size_t slot[64], p;
  int named = 0, how, prev;
  lensnet_error err;
  float *copy;
  const char *bands = lensnet_model_meta(m, "band_names");
  if (count < 2 || count > 64) return 0;
  if (lensnet_fits_cube_band_slots(m, path, hdu, count, slot, &named, &err) != LENSNET_OK) return lens_fail_err(&err);
  for (p = 0; p < count && slot[p] == p; p++) continue;
  /* how this cube is fed: 0 as it is (named in the model's order, or a model without band names),
   * 1 by name out of file order, 2 in file order for want of names; a note when that is not how
   * the cube before was fed (the first: when it is not 0) */
  how = !named ? (bands ? 2 : 0) : p == count ? 0 : 1;
  prev = last && *last ? *last - 1 : 0;
  if (last && how != prev) {
    if (how == 2)
      fprintf(stderr, "lens: note: %s names no planes (no BAND1, BAND2, ... cards): they are fed in file order as the model's %s "
              "(--channels picks them by number)\n", path, bands);
    else if (how == 1)
      fprintf(stderr, "lens: note: %s names its planes (BAND1, BAND2, ...) in another order than the model's bands; they are fed to "
              "the model by name (--channels takes them as given)\n", path);
    else
      fprintf(stderr, "lens: note: %s names its planes in the model's band order (%s): they are fed as they are\n", path, bands);
  }
  if (last) *last = how + 1;
  if (how != 1) return 0;
  if (!(copy = (float *)malloc(count * hw * sizeof(float)))) return lens_fail("out of memory");
  memcpy(copy, planes, count * hw * sizeof(float));
  for (p = 0; p < count; p++) memcpy(planes + slot[p] * hw, copy + p * hw, hw * sizeof(float));
  free(copy);
  return 0;
}

int lens_npy_band_names(const char *npy_path, char *names, size_t cap, size_t *count, char *file, size_t file_cap, int *found) {
  char text[4096];
  const char *slash = strrchr(npy_path, '/'), *base = slash ? slash + 1 : npy_path;
  size_t got, stem = strlen(npy_path);
  lensnet_error err;
  FILE *f;
  int bad;
  *found = 0;
  *count = 0;
  names[0] = 0;
  if (stem > 4 && lens_format_of(npy_path) == LENS_FMT_NPY) stem -= 4; /* X.npy or X.NPY: X */
  snprintf(file, file_cap, "%.*s.bands.txt", (int)stem, npy_path); /* X.bands.txt for X.npy */
  if (!(f = fopen(file, "rb")) && errno == ENOENT && !strncmp(base, "images", 6) && lens_format_of(base) == LENS_FMT_NPY &&
      strlen(base) == 10) { /* images.npy, or images.NPY */
    snprintf(file, file_cap, "%.*sbands.txt", (int)(base - npy_path), npy_path); /* lens sim's, beside its images.npy */
    f = fopen(file, "rb");
  }
  if (!f) return errno == ENOENT ? 0 : lens_fail("%s: cannot read it (%s), so the planes of %s have no names", file, strerror(errno), npy_path);
  got = fread(text, 1, sizeof text - 1, f);
  bad = ferror(f);
  fclose(f);
  if (bad) return lens_fail("%s: cannot read it (a folder?), so the planes of %s have no names", file, npy_path);
  text[got] = 0;
  if (lensnet_band_names_normalize(text, names, cap, count, &err) != LENSNET_OK) return lens_fail("%s: %s", file, err.message);
  *found = 1;
  return 0;
}

int lens_npy_band_pick(const lensnet_model *m, const char *npy_path, size_t planes, size_t *pick, int *by_name, lens_band_notes *notes) {
  char names[4096], file[4096], how[512];
  size_t k, count = 0;
  int found = 0, rc, moved;
  lensnet_error err;
  lensnet_result r;
  *by_name = 0;
  for (k = 0; k < m->in_c; k++) pick[k] = k;
  if (!lensnet_model_meta(m, "band_names")) return 0;
  if ((rc = lens_npy_band_names(npy_path, names, sizeof names, &count, file, sizeof file, &found)) != 0) return rc;
  if (found) {
    if ((r = lensnet_band_pick(m, names, planes, pick, by_name, &err)) == LENSNET_ERR_SHAPE)
      return lens_usage("%s: %s (%s); give --channels to feed planes by number", npy_path, err.message, file);
    if (r != LENSNET_OK) return lens_fail("%s: %s (%s)", npy_path, err.message, file);
  }
  for (k = 0; k < m->in_c && pick[k] == k; k++) continue;
  moved = k < m->in_c || planes != m->in_c;
  how[0] = 0; /* the planes fed, in the model's order: what a change of is noted */
  if (*by_name)
    for (k = 0; k < m->in_c && strlen(how) + 24 < sizeof how; k++) snprintf(how + strlen(how), sizeof how - strlen(how), "%lu,", (unsigned long)pick[k]);
  else snprintf(how, sizeof how, "in order");
  if (notes) {
    int first = notes->inputs++ == 0;
    if (first && !found && m->in_c > 1)
      fprintf(stderr, "lens: note: %s names no bands (no %s): its planes are fed in file order as the model's %s (name them there, "
              "one line, or pick them by number with --channels)\n", npy_path, file, lensnet_model_meta(m, "band_names"));
    else if (first ? (*by_name && moved) : strcmp(how, notes->last) != 0) {
      if (*by_name)
        fprintf(stderr, "lens: note: %s holds %s (%s); the model takes %s: its planes are fed by name (--channels takes them by number)\n",
                npy_path, names, file, lensnet_model_meta(m, "band_names"));
      else
        fprintf(stderr, "lens: note: %s names no bands (no %s): its planes are fed in file order as the model's %s, unlike the input "
                "before it\n", npy_path, file, lensnet_model_meta(m, "band_names"));
    }
    memcpy(notes->last, how, sizeof how);
  }
  return 0;
}

int lens_npy_planes_by_name(const lensnet_model *m, const char *npy_path, float *data, size_t n, size_t hw, lens_band_notes *notes) {
  size_t pick[64], i, k;
  int by_name = 0, rc;
  float *tmp;
  if (m->in_c > 64) return 0;
  if ((rc = lens_npy_band_pick(m, npy_path, m->in_c, pick, &by_name, notes)) != 0) return rc;
  for (k = 0; k < m->in_c && pick[k] == k; k++) continue;
  if (!by_name || k == m->in_c) return 0;
  if (!(tmp = (float *)malloc(m->in_c * hw * sizeof(float)))) return lens_fail("out of memory");
  for (i = 0; i < n; i++) {
    float *x = data + i * m->in_c * hw;
    memcpy(tmp, x, m->in_c * hw * sizeof(float));
    for (k = 0; k < m->in_c; k++) memcpy(x + k * hw, tmp + pick[k] * hw, hw * sizeof(float));
  }
  free(tmp);
  return 0;
}

void lens_option_from_setting(lens_option *o, const lensnet_fit_setting *s, size_t offset, lens_option_parse_fn parse,
                              const char *tool_default, char *help, size_t cap) {
  const char *d = tool_default ? strstr(s->help, "(default ") : NULL, *end = d ? strchr(d, ')') : NULL;
  if (!tool_default) snprintf(help, cap, "%s", s->help);
  else if (d && end) snprintf(help, cap, "%.*s(default %s)%s", (int)(d - s->help), s->help, tool_default, end + 1);
  else snprintf(help, cap, "%s (default %s)", s->help, tool_default);
  memset(o, 0, sizeof *o);
  o->name = s->name;
  o->type = LENS_OPT_CUSTOM;
  o->flags = s->type == LENSNET_SETTING_FLAG ? LENS_OPT_NO_VALUE : 0;
  o->offset = offset;
  o->lo = s->lo;
  o->hi = s->hi;
  o->parse = parse;
  o->data = s;
  o->metavar = s->type == LENSNET_SETTING_FLAG ? NULL : s->type == LENSNET_SETTING_TEXT ? "TEXT" : "N";
  o->help = help;
}

int lens_predict_settings(const char *text, char *out, size_t cap) {
  unsigned long mc = 0, sym = 1;
  int mean = 0;
  char buf[256], *tok, *save = NULL;
  if (!text || strlen(text) >= sizeof buf) return 0;
  if (!strcmp(text, "one plain pass")) { snprintf(out, cap, "%s", text); return 1; } /* what it writes for the defaults */
  strcpy(buf, text);
  for (tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
    char *end, *v;
    if (!strcmp(tok, "--mc-mean")) { mean = 1; continue; }
    if (strcmp(tok, "--mc") && strcmp(tok, "--symmetries")) return 0;
    if (!(v = strtok_r(NULL, " \t", &save))) return 0;
    if (!strcmp(tok, "--mc")) { mc = strtoul(v, &end, 10); if (*end || mc == 1 || mc > 100000) return 0; }
    else { sym = strtoul(v, &end, 10); if (*end || (sym != 1 && sym != 2 && sym != 8)) return 0; }
  }
  out[0] = 0;
  if (mc) snprintf(out, cap, "--mc %lu", mc);
  if (sym != 1) snprintf(out + strlen(out), cap - strlen(out), "%s--symmetries %lu", out[0] ? " " : "", sym);
  if (mean) snprintf(out + strlen(out), cap - strlen(out), "%s--mc-mean", out[0] ? " " : "");
  if (!out[0]) snprintf(out, cap, "one plain pass");
  return 1;
}

void lens_cutout_note(size_t nan_pixels, size_t inf_pixels, size_t filled_pixels) {
  if (filled_pixels)
    fprintf(stderr, "lens: note: %lu blank (NaN or infinite) input pixels were left out of the resize and filled in from the pixels around them\n",
            (unsigned long)filled_pixels);
  if (nan_pixels) fprintf(stderr, "lens: note: %lu NaN (blank) pixels were set to 0\n", (unsigned long)nan_pixels);
  if (inf_pixels) fprintf(stderr, "lens: note: %lu infinite pixels were set to 0\n", (unsigned long)inf_pixels);
}

static int cli_fail(const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "lens: ");
  fprintf(stderr, fmt, a, b);
  fputc('\n', stderr);
  return LENS_EXIT_FAIL;
}

int lens_make_dirs(const char *path) { return lens_make_dirs_noted(path, NULL); }

int lens_make_dirs_noted(const char *path, size_t *made) {
  struct stat st;
  char buf[4096];
  size_t i, len = strlen(path);
  if (made) *made = 0;
  if (!len) return 0;
  if (stat(path, &st) == 0) return S_ISDIR(st.st_mode) ? 0 : cli_fail("%s: exists and is not a folder%s", path, "");
  if (len >= sizeof buf) return cli_fail("%s: path too long%s", path, "");
  memcpy(buf, path, len + 1);
  for (i = 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != 0) continue;
    buf[i] = 0;
    if (stat(buf, &st) != 0) {
      if (mkdir(buf, 0777) == 0) {
        if (made && !*made) *made = i;
      } else if (errno != EEXIST) {
        int rc = cli_fail("%s: cannot create the folder: %s", buf, strerror(errno));
        if (made) { lens_remove_made_dirs(buf, *made); *made = 0; } /* no half-made path left behind */
        return rc;
      }
    }
    if (i < len) buf[i] = '/';
  }
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return cli_fail("%s: cannot create the folder%s", path, "");
  return 0;
}

void lens_remove_made_dirs(const char *path, size_t made) {
  char buf[4096];
  size_t len = strlen(path);
  if (!made || len >= sizeof buf) return;
  memcpy(buf, path, len + 1);
  /* the folders made are the path cut at each '/' at or after `made`: for "a/b/c" made from "a/b"
   * on (made 3), a/b/c and a/b, never a */
  for (;;) {
    char *slash;
    while (len > 1 && buf[len - 1] == '/') buf[--len] = 0;
    if (len < made || (rmdir(buf) != 0 && errno != ENOENT)) return;
    if (!(slash = strrchr(buf, '/'))) return;
    len = (size_t)(slash - buf);
    buf[len] = 0;
  }
}

int lens_resume_epochs(const char *dir, int done, int total, int asked) {
  if (asked && asked < done)
    return lens_usage("--epochs %d: the run in %s has done %d epochs and cannot be shortened (--epochs M with M > %d extends it)",
                      asked, dir, done, done);
  return (asked ? asked : total) > done ? 0 : -1;
}

void lens_resume_note(char *buf, size_t cap, const char *dir, int done, int total, int complete) {
  if (complete && done < total)
    snprintf(buf, cap, "lens: %s: nothing to train: --epochs %d asks for no more than the %d done (the run is set for %d); "
             "history.csv was written again from the checkpoint; --resume without --epochs finishes the run\n", dir, done, done, total);
  else if (complete)
    snprintf(buf, cap, "lens: %s: the run is complete (%d of %d epochs): history.csv was written again from the checkpoint; "
             "--epochs M with M > %d extends it\n", dir, done, done, done);
  else snprintf(buf, cap, "lens: resuming %s after epoch %d of %d\n", dir, done, total);
}

int lens_make_parents(const char *path) { return lens_make_parents_noted(path, NULL); }

/* The folder part of path into buf ("" for none). 0, or 1 when it does not fit. */
static int parent_of(const char *path, char *buf, size_t cap) {
  const char *slash = strrchr(path, '/');
  size_t n = slash && slash != path ? (size_t)(slash - path) : 0;
  if (n >= cap) return 1;
  memcpy(buf, path, n);
  buf[n] = 0;
  return 0;
}

int lens_make_parents_noted(const char *path, size_t *made) {
  char buf[4096];
  if (made) *made = 0;
  if (parent_of(path, buf, sizeof buf)) return cli_fail("%s: path too long%s", path, "");
  return buf[0] ? lens_make_dirs_noted(buf, made) : 0;
}

void lens_remove_made_parents(const char *path, size_t made) {
  char buf[4096];
  if (made && !parent_of(path, buf, sizeof buf) && buf[0]) lens_remove_made_dirs(buf, made);
}

static int ends_with_nocase(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix), i;
  if (n < k) return 0;
  for (i = 0; i < k; i++)
    if (tolower((unsigned char)s[n - k + i]) != suffix[i]) return 0;
  return 1;
}

lens_format lens_format_of(const char *path) {
  if (ends_with_nocase(path, ".npy")) return LENS_FMT_NPY;
  if (ends_with_nocase(path, ".fits") || ends_with_nocase(path, ".fit") || ends_with_nocase(path, ".fts")) return LENS_FMT_FITS;
  if (ends_with_nocase(path, ".csv")) return LENS_FMT_CSV;
  if (ends_with_nocase(path, ".png")) return LENS_FMT_PNG;
  return LENS_FMT_NONE;
}

lens_format lens_out_format(const char *flag, const char *path, int accepted) {
  static const struct { int fmt; const char *ext; } names[] = {
    {LENS_FMT_NPY, ".npy"}, {LENS_FMT_FITS, ".fits"}, {LENS_FMT_CSV, ".csv"}, {LENS_FMT_PNG, ".png"}};
  lens_format f = lens_format_of(path);
  char list[64] = "";
  size_t i;
  if (f != LENS_FMT_NONE && (accepted & (int)f)) return f;
  for (i = 0; i < sizeof names / sizeof names[0]; i++)
    if (accepted & names[i].fmt) {
      if (list[0]) strcat(list, ", ");
      strcat(list, names[i].ext);
    }
  lens_usage("%s %s: the format follows the extension; this command writes %s", flag, path, list);
  return LENS_FMT_NONE;
}

void lens_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

void lens_csv_cell(FILE *f, const char *cell) {
  const char *p;
  if (!strpbrk(cell, ",\"\n\r")) { fputs(cell, f); return; }
  fputc('"', f);
  for (p = cell; *p; p++) {
    if (*p == '"') fputc('"', f);
    fputc(*p, f);
  }
  fputc('"', f);
}

int lens_out_folder(const char *flag, const char *path) {
  if (!path[0]) return lens_usage("%s: an empty path (name the folder to write into; . for this one)", flag);
  if (lens_format_of(path) != LENS_FMT_NONE || ends_with_nocase(path, ".safetensors"))
    return lens_usage("%s %s: names a folder (the command writes several files into it), not a file", flag, path);
  return 0;
}

int lens_out_not_input(const char *flag, const char *path, const char *const *inputs, size_t count, const char *may_be) {
  struct stat out_st, st;
  int out_exists = stat(path, &out_st) == 0;
  size_t i;
  for (i = 0; i < count; i++) {
    if (!inputs[i] || (may_be && inputs[i] == may_be)) continue;
    if (!strcmp(inputs[i], path) ||
        (out_exists && stat(inputs[i], &st) == 0 && st.st_dev == out_st.st_dev && st.st_ino == out_st.st_ino))
      return lens_usage("%s %s is also an input (%s): it would be overwritten", flag, path, inputs[i]);
  }
  return 0;
}

int lens_out_model(const char *flag, const char *path, const char *const *inputs, size_t count, const char *may_be) {
  if (!ends_with_nocase(path, ".safetensors")) return lens_usage("%s %s: a model is written as a .safetensors file", flag, path);
  return lens_out_not_input(flag, path, inputs, count, may_be);
}

int lens_out_dir_inputs(const char *flag, const char *dir, const char *const *names, size_t nnames, const char *const *inputs, size_t count) {
  char path[4200];
  struct stat out_st, st;
  size_t i, k, len = strlen(dir);
  while (len > 1 && dir[len - 1] == '/') len--;
  for (k = 0; k < nnames; k++) {
    int exists;
    if ((size_t)snprintf(path, sizeof path, "%.*s/%s", (int)len, dir, names[k]) >= sizeof path) continue;
    exists = stat(path, &out_st) == 0;
    for (i = 0; i < count; i++) {
      if (!inputs[i]) continue;
      if (!strcmp(inputs[i], path) || (exists && stat(inputs[i], &st) == 0 && st.st_dev == out_st.st_dev && st.st_ino == out_st.st_ino))
        return lens_usage("%s %s would overwrite the input %s (as %s): write into another folder", flag, dir, inputs[i], names[k]);
    }
  }
  return 0;
}

int lens_resume_dir(const char *dir) {
  char path[4200];
  struct stat st;
  if (stat(dir, &st) != 0) return lens_fail("--resume %s: %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return lens_fail("--resume %s is a file; it takes the folder of a run (holding checkpoint.safetensors)", dir);
  snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
  if (stat(path, &st) != 0)
    return lens_fail("--resume %s holds no checkpoint.safetensors: not the folder of a run, or one stopped before its first epoch ended", dir);
  return 0;
}

FILE *lens_text_open(const char *path, char *tmp, size_t cap) {
  FILE *f;
  if ((size_t)snprintf(tmp, cap, "%s.tmp", path) >= cap) {
    lens_fail("%s: path too long", path);
    return NULL;
  }
  if (!(f = fopen(tmp, "w"))) lens_fail("%s: cannot open for writing: %s", tmp, strerror(errno));
  return f;
}

int lens_text_commit(FILE *f, const char *tmp, const char *path) {
  int ok = !ferror(f);
  ok &= fclose(f) == 0;
  if (!ok) {
    remove(tmp);
    return lens_fail("%s: write failed (disk full?)", tmp);
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    remove(tmp);
    return lens_fail("%s: cannot rename %s into place: %s", path, tmp, strerror(e));
  }
  return 0;
}

void lens_text_discard(FILE *f, const char *tmp) {
  if (f) fclose(f);
  remove(tmp);
}

const char *const lens_preprocess_choices[] = {"none", "minmax", NULL};

int lens_parse_channels(const lens_option *o, const char *label, const char *text, void *opts) {
  lens_cutout_options *c = (lens_cutout_options *)(void *)((char *)opts + o->offset - offsetof(lens_cutout_options, channels));
  if (lensnet_channels_parse(text, c->channels, 64, &c->channel_count, NULL))
    return lens_usage("%s takes band numbers such as 0,2,3, got '%s'", label, text);
  return 0;
}

lensnet_cutout_desc lens_cutout_desc(const lens_cutout_options *o, int minmax) {
  lensnet_cutout_desc d;
  memset(&d, 0, sizeof d);
  d.channels = o->channel_count ? o->channels : NULL;
  d.channel_count = o->channel_count;
  d.size = o->crop ? LENSNET_SIZE_CROP : o->resize ? LENSNET_SIZE_RESIZE : LENSNET_SIZE_EXACT;
  d.minmax = minmax;
  return d;
}

int lens_cutout_check(const lens_cutout_options *o) {
  size_t i, j;
  if (o->resize && o->crop) return lens_usage("--resize and --crop exclude each other");
  for (i = 0; i < o->channel_count; i++)
    for (j = i + 1; j < o->channel_count; j++)
      if (o->channels[i] == o->channels[j]) {
        fprintf(stderr, "lens: note: --channels gives input band %lu more than once (as the model's bands %lu and %lu): the same "
                "image feeds both\n", (unsigned long)o->channels[i], (unsigned long)i, (unsigned long)j);
        return 0;
      }
  return 0;
}

int lens_preprocess_resolve_of(const lensnet_model *m, int flag, const char *whose) {
  lensnet_error err;
  const char *key;
  int minmax;
  if (flag != LENS_PREPROCESS_UNSET) return flag;
  if (lensnet_model_preprocess(m, &minmax, &key, &err) != LENSNET_OK) {
    fprintf(stderr, "lens: %s; choose with --preprocess minmax|none\n", err.message);
    return -1;
  }
  if (minmax)
    fprintf(stderr, "lens: applying %s min-max normalisation (metadata %s)%s\n", whose,
            !strcmp(key, "preprocess") ? "preprocess=minmax" : "train.minmax=1",
            !strcmp(whose, "the model's") ? "; --preprocess none to skip" : "");
  return minmax;
}

int lens_preprocess_resolve(const lensnet_model *m, int flag) { return lens_preprocess_resolve_of(m, flag, "the model's"); }

int lens_locator_open(const char *path, lensnet_model **m, double *pixel_scale, int *minmax) {
  lensnet_regression reg;
  lensnet_error err;
  size_t k, named = 0;
  if (lensnet_model_load(path, m, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (lensnet_model_regression(*m, &reg, &err) != LENSNET_OK)
    return lens_usage("--locator %s: %s; a locator predicts center_x and center_y", path, err.message);
  for (k = 0; k < reg.count; k++) named += !strcmp(reg.names[k], "center_x") || !strcmp(reg.names[k], "center_y");
  if (named < 2) return lens_usage("--locator %s: its targets (regress.targets) do not include center_x and center_y", path);
  if (lensnet_model_pixel_scale(*m, pixel_scale, &err) != LENSNET_OK) return lens_usage("--locator %s: %s", path, err.message);
  if (!(*pixel_scale > 0))
    return lens_usage("--locator %s has no pixel_scale metadata; its centres are in arcsec, so it needs one: lens info %s "
                      "--set pixel_scale=ARCSEC --out ...", path, path);
  if ((*minmax = lens_preprocess_resolve_of(*m, LENS_PREPROCESS_UNSET, "the locator's")) < 0) return LENS_EXIT_FAIL;
  return 0;
}

double lens_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void lens_progress_start(lens_progress *p) {
  memset(p, 0, sizeof *p);
  p->start = lens_seconds();
  p->last = -1.0;
  p->enabled = isatty(2);
}

int lens_progress_format(char *buf, size_t cap, const char *label, size_t done, size_t total, const char *unit,
                         double elapsed, double eta, const char *extra) {
  static const char bar[] = "==============================";
  int filled = total ? (int)(30.0 * (double)(done < total ? done : total) / (double)total) : 30;
  double rate = elapsed > 0 ? (double)done / elapsed : 0.0;
  long left;
  if (elapsed < 1.0 && done < total && eta < 0) /* too early to tell: a first step's rate says nothing */
    return snprintf(buf, cap, "%s [%.*s%*s] %lu/%lu - %s/s ETA -%s%s", label, filled, bar, 30 - filled, "", (unsigned long)done,
                    (unsigned long)total, unit, extra && *extra ? " " : "", extra ? extra : "");
  if (eta < 0) eta = rate > 0 && total > done ? (double)(total - done) / rate : 0.0;
  left = (long)(eta + 0.5);
  return snprintf(buf, cap, "%s [%.*s%*s] %lu/%lu %.0f %s/s ETA %ld:%02ld%s%s", label, filled, bar, 30 - filled, "",
                  (unsigned long)done, (unsigned long)total, rate, unit, left / 60, left % 60, extra && *extra ? " " : "",
                  extra ? extra : "");
}

void lens_progress_show(lens_progress *p, const char *label, size_t done, size_t total, const char *unit, double eta,
                        const char *extra) {
  char line[512];
  double now;
  if (!p->enabled) return;
  now = lens_seconds();
  if (p->last >= 0 && now - p->last < 0.25 && done != total) return;
  p->last = now;
  lens_progress_format(line, sizeof line, label, done, total, unit, now - p->start, eta, extra);
  fprintf(stderr, "\r%s   ", line);
  fflush(stderr);
  p->shown = 1;
}

void lens_progress_end(lens_progress *p) {
  if (p->shown) fputc('\n', stderr);
  p->shown = 0;
}
