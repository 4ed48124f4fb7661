/* lens render: scenes in lenstronomy's model and keyword names -> an image, or a stack of images
 * from many scene files or a JSON-lines file (.npy or FITS), in one process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include "lens_cmds.h"
#include "lensnet.h"
#include "lenssim.h"
#include "cli.h"
#include "options.h"

typedef struct {
  char **scenes;           /* the scene files (a .jsonl file holds one scene per line) */
  int scene_count;
  const char *out_path;
  int band;                /* index of lenssim_band_at, -1: no noise */
  unsigned long long seed;
  int use_double;
} render_args;

static const char *band_at(size_t i) { return i < lenssim_band_count() ? lenssim_band_at(i)->name : NULL; }

static void list_bands(FILE *f) {
  size_t i;
  fprintf(f, "bands:");
  for (i = 0; band_at(i); i++) fprintf(f, " %s", band_at(i));
  fprintf(f, "\n");
}

#define T render_args
static const lens_option render_rows[] = {
  LENS_ARGS(T, "SCENE", LENS_OPT_REQUIRED, scenes, scene_count, "a scene file (.json), or a JSON-lines file (.jsonl: one scene per line)"),
  LENS_TEXT(T, "out", LENS_OPT_REQUIRED, out_path, NULL, "PATH", "where to write: PATH.npy a NumPy array, PATH.fits a FITS primary image;\n"
            "other extensions are refused. Missing folders are created. One .json scene\n"
            "gives an image [num_pix, num_pix]; several scenes or a .jsonl file a stack\n"
            "[N, num_pix, num_pix] in the order given (all scenes of one num_pix)."),
  LENS_CHOICE_AT(T, "band", 0, band, band_at, -1, "NAME", "add that band's noise (Poisson, sky, read noise, gain); a scene\n"
                 "without a 'psf' entry gets the band's PSF"),
  LENS_SEED(T, "seed", seed, 1, "S", "seed of the noise (default 1); the same seed gives the same image;\n"
            "scene i of a stack (from 0) takes seed S + i, as if rendered alone"),
  LENS_FLAG(T, "double", use_double, "compute the sub-pixel samples in double precision (about 3x slower;\n"
            "the default float32 samples agree with it to ~1e-5 of the peak)"),
};
#undef T
static const lens_option_section render_sections[] = {{NULL, render_rows, sizeof render_rows / sizeof render_rows[0]}};
static const lens_command_spec render_spec = {
  "render", "usage: lens render SCENE.json --out IMAGE.npy|IMAGE.fits [--band NAME [--seed S]] [--double]\n"
  "       lens render SCENE.json SCENE2.json ... | SCENES.jsonl --out STACK.npy|STACK.fits [options]\n",
  "\nRenders the scene (lenstronomy model and keyword names; see docs/render.md) to a\n"
  "num_pix x num_pix float32 image in counts/s per pixel, noise-free; many scenes to a stack.\n",
  list_bands, render_sections, 1, "Exit status: 0 done, 1 failure (a file), 2 usage error.\n"};

/* The scene file's text (NUL-terminated, *len bytes), or NULL after printing why. Read to its
 * end in steps rather than sized with fseek/ftell, which on a folder report LONG_MAX. */
static char *read_scene_file(const char *path, size_t *len) {
  const size_t limit = (size_t)64 * 1024 * 1024;
  FILE *f = fopen(path, "rb");
  char *text = NULL;
  size_t n = 0, cap = 0, got;
  if (!f) { lens_fail("%s: cannot open the scene file", path); return NULL; }
  do {
    if (n + 65536 + 1 > cap) {
      char *grown;
      cap = cap ? 2 * cap : 65536 + 1;
      if (!(grown = (char *)realloc(text, cap))) { fclose(f); free(text); lens_fail("%s: out of memory", path); return NULL; }
      text = grown;
    }
    got = fread(text + n, 1, cap - n - 1, f);
    n += got;
    if (n > limit) { fclose(f); free(text); lens_fail("%s: scene file larger than 64 MiB", path); return NULL; }
  } while (got > 0);
  if (ferror(f)) {
    int dir = errno == EISDIR; /* fopen opens a folder on POSIX systems; reading it fails so */
    fclose(f);
    free(text);
    lens_fail(dir ? "%s: is a folder, not a file" : "%s: cannot read the scene file", path);
    return NULL;
  }
  fclose(f);
  text[n] = 0;
  *len = n;
  return text;
}

/* The command line into a. 0, -1 after --help, or the exit status. */
static int parse_args(int argc, char **argv, render_args *a) {
  lens_options_given given;
  int rc;
  memset(a, 0, sizeof *a);
  if ((rc = lens_options_parse(&render_spec, argc, argv, a, &given)) != 0) return rc;
  if (lens_options_was_given(&render_spec, &given, "seed") && a->band < 0)
    return lens_usage("render: --seed needs --band (noise comes from a band)");
  if (lens_out_format("--out", a->out_path, LENS_FMT_NPY | LENS_FMT_FITS) == LENS_FMT_NONE) return LENS_EXIT_USAGE;
  return lens_out_not_input("--out", a->out_path, (const char *const *)a->scenes, (size_t)a->scene_count, NULL);
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

static int is_jsonl(const char *path) { return ends_with(path, ".jsonl") || ends_with(path, ".ndjson"); }

/* The scenes of the command line, one at a time: each .json file is a scene, each non-blank line
 * of a .jsonl file is one. label names the scene in messages ("file" or "file:line"). */
typedef struct {
  const render_args *a;
  int file;            /* the file being read */
  char *text;          /* its text, NULL before it is read */
  size_t len, pos, line;
  char label[4200];
} scene_reader;

/* The next scene's text into *scene, *len; 1, 0 after the last, -1 after a message. */
static int next_scene(scene_reader *r, const char **scene, size_t *len) {
  while (r->file < r->a->scene_count) {
    const char *path = r->a->scenes[r->file];
    if (!r->text) {
      if (!(r->text = read_scene_file(path, &r->len))) return -1;
      r->pos = 0;
      r->line = 0;
      if (!is_jsonl(path)) { /* the whole file is the scene */
        snprintf(r->label, sizeof r->label, "%s", path);
        r->pos = r->len;
        *scene = r->text;
        *len = r->len;
        return 1;
      }
    }
    while (r->pos < r->len) {
      size_t start = r->pos, end = start, k;
      int blank = 1;
      while (end < r->len && r->text[end] != '\n') end++;
      r->pos = end < r->len ? end + 1 : end;
      r->line++;
      for (k = start; k < end && blank; k++) blank = r->text[k] == ' ' || r->text[k] == '\t' || r->text[k] == '\r';
      if (blank) continue;
      snprintf(r->label, sizeof r->label, "%s:%lu", path, (unsigned long)r->line);
      *scene = r->text + start;
      *len = end - start;
      return 1;
    }
    free(r->text);
    r->text = NULL;
    r->file++;
  }
  return 0;
}

/* Where the images go: one image (.npy or FITS), or a stack streamed to .npy, or gathered for a
 * FITS cube (FITS writes its axis lengths first). */
typedef struct {
  const char *path;
  int stack, fits, open;
  size_t side, count;
  lensnet_npy_writer npy;
  float *cube;         /* FITS stacks: every image so far */
  size_t cube_cap;     /* in images */
} image_sink;

static int sink_add(image_sink *k, const float *image, size_t side, const char *label) {
  lensnet_error err;
  if (k->count == 0) {
    k->side = side;
    if (lens_make_parents(k->path)) return LENS_EXIT_FAIL;
    if (k->stack && !k->fits) {
      size_t shape[3];
      shape[0] = LENSNET_NPY_ROWS_UNKNOWN; shape[1] = shape[2] = side;
      if (lensnet_npy_writer_begin(&k->npy, k->path, 3, shape, &err) != LENSNET_OK) return lens_fail_err(&err);
      k->open = 1;
    }
  } else if (side != k->side)
    return lens_fail("%s: num_pix %lu differs from the stack's %lu (a stack holds images of one size)", label, (unsigned long)side,
                     (unsigned long)k->side);
  if (!k->stack) {
    lensnet_tensor t;
    lensnet_result r;
    memset(&t, 0, sizeof t);
    t.ndim = 2; t.shape[0] = t.shape[1] = side; t.data = (float *)image;
    r = k->fits ? lensnet_fits_write(k->path, &t, &err) : lensnet_npy_write(k->path, &t, &err);
    if (r != LENSNET_OK) return lens_fail_err(&err);
  } else if (!k->fits) {
    if (lensnet_npy_writer_append(&k->npy, image, 1, &err) != LENSNET_OK) return lens_fail_err(&err);
  } else {
    if (k->count == k->cube_cap) {
      size_t cap = k->cube_cap ? 2 * k->cube_cap : 16;
      float *grown = cap / 2 >= k->cube_cap && cap < ((size_t)-1) / (side * side * sizeof(float))
                         ? (float *)realloc(k->cube, cap * side * side * sizeof(float)) : NULL;
      if (!grown) return lens_fail("render: out of memory for %lu images of %lu x %lu", (unsigned long)cap, (unsigned long)side, (unsigned long)side);
      k->cube = grown;
      k->cube_cap = cap;
    }
    memcpy(k->cube + k->count * side * side, image, side * side * sizeof(float));
  }
  k->count++;
  return 0;
}

/* The stack's file, complete, in place (renamed from its temporary name). */
static int sink_finish(image_sink *k) {
  lensnet_error err;
  if (k->stack && !k->fits && k->open) {
    k->open = 0;
    if (lensnet_npy_writer_finish(&k->npy, 0, &err) != LENSNET_OK) return lens_fail_err(&err);
  } else if (k->stack && k->fits && k->count) {
    lensnet_tensor t;
    memset(&t, 0, sizeof t);
    t.ndim = 3; t.shape[0] = k->count; t.shape[1] = t.shape[2] = k->side; t.data = k->cube;
    if (lensnet_fits_write(k->path, &t, &err) != LENSNET_OK) return lens_fail_err(&err);
  }
  return 0;
}

static void sink_free(image_sink *k) {
  if (k->open) lensnet_npy_writer_abort(&k->npy);
  free(k->cube);
}

/* Scene `index` of the run from its text: rendered, with the band's noise seeded S + index, into
 * *image (float32, reallocated to its size); *side its num_pix. */
static int render_scene(const render_args *a, const char *text, size_t len, const char *label, size_t index, float **image,
                        size_t *cap, size_t *side) {
  lenssim_error serr;
  const lenssim_band *band = a->band >= 0 ? lenssim_band_at((size_t)a->band) : NULL;
  size_t count;
  /* read the scene for its size, grow the image, then render (lenssim_render_json) */
  if (lenssim_render_json(text, len, band, 0, a->use_double, NULL, 0, side, &serr) != LENSSIM_OK)
    return lens_fail("%s: %s", label, serr.message);
  count = *side * *side;
  if (count > *cap) {
    float *grown = (float *)realloc(*image, count * sizeof(float));
    if (!grown) return lens_fail("%s: out of memory for a %lu x %lu image", label, (unsigned long)*side, (unsigned long)*side);
    *image = grown;
    *cap = count;
  }
  if (lenssim_render_json(text, len, band, (uint64_t)(a->seed + index), a->use_double, *image, *cap, side, &serr) != LENSSIM_OK)
    return lens_fail("%s: %s", label, serr.message);
  return 0;
}

int lens_cmd_render(int argc, char **argv) {
  render_args a;
  scene_reader reader;
  image_sink sink;
  lens_progress progress;
  const char *text;
  float *image = NULL;
  size_t len, cap = 0, side = 0;
  double t0 = lens_seconds();
  int rc = parse_args(argc, argv, &a), got, i, any_jsonl = 0;
  if (rc) return rc < 0 ? 0 : rc;
  memset(&reader, 0, sizeof reader);
  memset(&sink, 0, sizeof sink);
  reader.a = &a;
  sink.path = a.out_path;
  sink.fits = lens_format_of(a.out_path) == LENS_FMT_FITS;
  for (i = 0; i < a.scene_count; i++) any_jsonl |= is_jsonl(a.scenes[i]);
  sink.stack = a.scene_count > 1 || any_jsonl;
  lens_progress_start(&progress);
  while (rc == 0 && (got = next_scene(&reader, &text, &len)) != 0) {
    if (got < 0) rc = LENS_EXIT_FAIL;
    else if ((rc = render_scene(&a, text, len, reader.label, sink.count, &image, &cap, &side)) == 0) rc = sink_add(&sink, image, side, reader.label);
    if (rc == 0 && sink.stack && !any_jsonl) /* a .jsonl file's scene count is known only at its end */
      lens_progress_show(&progress, "render", sink.count, (size_t)a.scene_count, "scene", -1.0, NULL);
  }
  lens_progress_end(&progress);
  if (rc == 0 && sink.count == 0) rc = lens_fail("render: the scene files hold no scene");
  if (rc == 0) rc = sink_finish(&sink);
  if (rc == 0 && sink.stack)
    fprintf(stderr, "render: %lu scene%s [%lu, %lu, %lu] in %.1f s -> %s\n", (unsigned long)sink.count, sink.count == 1 ? "" : "s",
            (unsigned long)sink.count,
            (unsigned long)side, (unsigned long)side, lens_seconds() - t0, a.out_path);
  sink_free(&sink);
  free(reader.text);
  free(image);
  return rc;
}
