/* lens render: a scene in lenstronomy's model and keyword names -> image (.npy or FITS). */
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
  const char *scene_path, *out_path;
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
  LENS_TEXT(T, "SCENE.json", LENS_OPT_REQUIRED | LENS_OPT_POSITIONAL, scene_path, NULL, NULL, NULL),
  LENS_TEXT(T, "out", LENS_OPT_REQUIRED, out_path, NULL, "PATH", "where to write the image: PATH.npy a NumPy array, PATH.fits a FITS primary\n"
            "image; other extensions are refused. Missing folders are created."),
  LENS_CHOICE_AT(T, "band", 0, band, band_at, -1, "NAME", "add that band's noise (Poisson, sky, read noise, gain); a scene\n"
                 "without a 'psf' entry gets the band's PSF"),
  LENS_SEED(T, "seed", seed, 1, "S", "seed of the noise (default 1); the same seed gives the same image"),
  LENS_FLAG(T, "double", use_double, "compute the sub-pixel samples in double precision (about 3x slower;\n"
            "the default float32 samples agree with it to ~1e-5 of the peak)"),
};
#undef T
static const lens_option_section render_sections[] = {{NULL, render_rows, sizeof render_rows / sizeof render_rows[0]}};
static const lens_command_spec render_spec = {
  "render", "usage: lens render SCENE.json --out IMAGE.npy|IMAGE.fits [--band NAME [--seed S]] [--double]\n",
  "\nRenders the scene (lenstronomy model and keyword names; see docs/render.md) to a\n"
  "num_pix x num_pix float32 image in counts/s per pixel, noise-free.\n",
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
  return 0;
}

/* The scene from its file, with --double. NULL after a message. */
static lenssim_json_scene *load_scene(const render_args *a) {
  lenssim_json_scene *sc;
  lenssim_error serr;
  size_t len = 0;
  char *text = read_scene_file(a->scene_path, &len);
  if (!text) return NULL;
  sc = (lenssim_json_scene *)calloc(1, sizeof *sc);
  if (!sc) lens_fail("render: out of memory");
  else if (lenssim_scene_from_json(text, len, sc, &serr) != LENSSIM_OK) {
    lens_fail("%s: %s", a->scene_path, serr.message);
    lenssim_json_scene_free(sc);
    free(sc);
    sc = NULL;
  }
  free(text);
  if (!sc) return NULL;
  sc->scene.double_precision = a->use_double;
  return sc;
}

/* The image as float32 into --out, its format from the extension. */
static int write_image(const char *path, const double *image, size_t side) {
  lensnet_error err;
  lensnet_tensor t;
  size_t k, shape[2];
  int rc = 0;
  shape[0] = shape[1] = side;
  if (lensnet_tensor_alloc(&t, 2, shape, &err) != LENSNET_OK) return lens_fail_err(&err);
  for (k = 0; k < side * side; k++) t.data[k] = (float)image[k];
  if (lens_make_parents(path)) rc = LENS_EXIT_FAIL;
  else if ((lens_format_of(path) == LENS_FMT_FITS ? lensnet_fits_write(path, &t, &err) : lensnet_npy_write(path, &t, &err)) != LENSNET_OK)
    rc = lens_fail_err(&err);
  lensnet_tensor_free(&t);
  return rc;
}

int lens_cmd_render(int argc, char **argv) {
  render_args a;
  lenssim_json_scene *sc;
  lenssim_error serr;
  lenssim_noise noise;
  lenssim_rng rng;
  const lenssim_band *band;
  double *image = NULL;
  size_t side, count;
  int rc = parse_args(argc, argv, &a);
  if (rc) return rc < 0 ? 0 : rc;
  band = a.band >= 0 ? lenssim_band_at((size_t)a.band) : NULL;
  if (!(sc = load_scene(&a))) return LENS_EXIT_FAIL;
  side = (size_t)sc->scene.grid.num_pix;
  count = side * side;
  image = (double *)malloc(count * sizeof *image);
  if (!image) rc = lens_fail("render: out of memory for a %d x %d image", sc->scene.grid.num_pix, sc->scene.grid.num_pix);
  else if (band && lenssim_band_observe(band, &sc->scene, sc->has_psf, &noise, &serr) != LENSSIM_OK)
    rc = lens_fail("%s: %s", a.scene_path, serr.message);
  else if (lenssim_render(&sc->scene, image, NULL, 0, &serr) != LENSSIM_OK) rc = lens_fail("%s: %s", a.scene_path, serr.message);
  else {
    if (band) {
      lenssim_rng_seed(&rng, (uint64_t)a.seed);
      lenssim_add_noise(&noise, image, count, &rng);
    }
    rc = write_image(a.out_path, image, side);
  }
  free(image);
  lenssim_json_scene_free(sc);
  free(sc);
  return rc;
}
