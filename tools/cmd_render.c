/* lens render: a scene in lenstronomy's model and keyword names -> image (.npy or FITS). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include "lens_cmds.h"
#include "lensnet.h"
#include "lenssim.h"
#include "cli.h"

static void render_usage(FILE *f) {
  size_t i;
  fprintf(f,
          "usage: lens render SCENE.json --out IMAGE.npy|IMAGE.fits [--band NAME [--seed S]] [--double]\n"
          "\n"
          "Renders the scene (lenstronomy model and keyword names; see docs/render.md) to a\n"
          "num_pix x num_pix float32 image in counts/s per pixel, noise-free.\n"
          "  --out PATH    where to write the image: PATH.npy a NumPy array, PATH.fits a FITS primary\n"
          "                image; other extensions are refused. Missing folders are created.\n"
          "  --band NAME   add that band's noise (Poisson, sky, read noise, gain); a scene\n"
          "                without a 'psf' entry gets the band's PSF\n"
          "  --seed S      seed of the noise (default 1); the same seed gives the same image\n"
          "  --double      compute the sub-pixel samples in double precision (about 3x slower;\n"
          "                the default float32 samples agree with it to ~1e-5 of the peak)\n"
          "bands:");
  for (i = 0; i < lenssim_band_count(); i++) fprintf(f, " %s", lenssim_band_at(i)->name);
  fprintf(f, "\nExit status: 0 done, 1 failure (a file), 2 usage error.\n");
}

static int parse_seed(const char *text, unsigned long long *out) {
  char *end;
  if (!text || !*text || *text == '-') return 0;
  errno = 0;
  *out = strtoull(text, &end, 10);
  return errno == 0 && *end == 0;
}

/* The scene file's text (NUL-terminated, *len bytes), or NULL after printing why. */
static char *read_scene_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *text;
  long size;
  if (!f) { lens_fail("%s: cannot open the scene file", path); return NULL; }
  if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    lens_fail("%s: cannot read the scene file", path);
    return NULL;
  }
  if (size > 64L * 1024 * 1024) {
    fclose(f);
    lens_fail("%s: scene file too large (%ld bytes, at most 64 MiB)", path, size);
    return NULL;
  }
  text = (char *)malloc((size_t)size + 1);
  if (!text) { fclose(f); lens_fail("%s: out of memory", path); return NULL; }
  if (fread(text, 1, (size_t)size, f) != (size_t)size) {
    fclose(f);
    free(text);
    lens_fail("%s: short read of the scene file", path);
    return NULL;
  }
  fclose(f);
  text[size] = 0;
  *len = (size_t)size;
  return text;
}

int lens_cmd_render(int argc, char **argv) {
  const char *scene_path = NULL, *out_path = NULL, *band_name = NULL;
  unsigned long long seed = 1;
  int i, seed_given = 0, use_double = 0, rc = 1;
  char *text;
  lenssim_json_scene *sc;
  lenssim_error serr;
  lensnet_error nerr;
  lensnet_tensor t;
  double *image = NULL;
  size_t count, k, shape[2], len = 0;
  const lenssim_band *band = NULL;
  lens_format format = LENS_FMT_NONE;

  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { render_usage(stdout); return 0; }
    if (!strcmp(argv[i], "--double")) { use_double = 1; continue; }
    if (!strcmp(argv[i], "--out") || !strcmp(argv[i], "--band") || !strcmp(argv[i], "--seed")) {
      if (i + 1 >= argc) return lens_usage("render: %s needs a value", argv[i]);
      if (!strcmp(argv[i], "--out")) out_path = argv[++i];
      else if (!strcmp(argv[i], "--band")) band_name = argv[++i];
      else {
        if (!parse_seed(argv[i + 1], &seed)) return lens_usage("render: --seed '%s' is not a whole number >= 0", argv[i + 1]);
        seed_given = 1;
        i++;
      }
    } else if (argv[i][0] == '-' && argv[i][1]) {
      render_usage(stderr);
      return lens_usage("render: unknown option '%s'", argv[i]);
    } else if (!scene_path) {
      scene_path = argv[i];
    } else {
      return lens_usage("render: more than one scene given ('%s' and '%s')", scene_path, argv[i]);
    }
  }
  if (!scene_path || !out_path) {
    render_usage(stderr);
    return lens_usage("render: %s", !scene_path ? "no scene file given" : "no --out given");
  }
  if (seed_given && !band_name) return lens_usage("render: --seed needs --band (noise comes from a band)");
  if (band_name && !(band = lenssim_band_find(band_name))) {
    render_usage(stderr);
    return lens_usage("render: unknown band '%s'", band_name);
  }
  if ((format = lens_out_format("--out", out_path, LENS_FMT_NPY | LENS_FMT_FITS)) == LENS_FMT_NONE) return LENS_EXIT_USAGE;

  if (!(text = read_scene_file(scene_path, &len))) return LENS_EXIT_FAIL;
  sc = (lenssim_json_scene *)malloc(sizeof *sc);
  if (!sc) { free(text); return lens_fail("render: out of memory"); }
  if (lenssim_scene_from_json(text, len, sc, &serr) != LENSSIM_OK) {
    free(text);
    lens_fail("%s: %s", scene_path, serr.message);
    goto done;
  }
  free(text);
  sc->scene.double_precision = use_double;
  if (band && !sc->has_psf) {
    sc->scene.psf.kind = band->psf_kind;
    sc->scene.psf.fwhm = band->psf_fwhm;
    sc->scene.psf.moffat_beta = band->moffat_beta;
  }
  count = (size_t)sc->scene.grid.num_pix * (size_t)sc->scene.grid.num_pix;
  image = (double *)malloc(count * sizeof *image);
  if (!image) { lens_fail("render: out of memory for a %d x %d image", sc->scene.grid.num_pix, sc->scene.grid.num_pix); goto done; }
  if (lenssim_render(&sc->scene, image, NULL, 0, &serr) != LENSSIM_OK) {
    lens_fail("%s: %s", scene_path, serr.message);
    goto done;
  }
  if (band) {
    lenssim_rng rng;
    lenssim_noise noise = lenssim_noise_from_band(band);
    /* the sky per pixel follows the scene's pixels, whatever the band's native scale */
    noise.sky_rate *= (sc->scene.grid.pixel_scale * sc->scene.grid.pixel_scale) / (band->pixel_scale * band->pixel_scale);
    lenssim_rng_seed(&rng, (uint64_t)seed);
    lenssim_add_noise(&noise, image, count, &rng);
  }
  shape[0] = shape[1] = (size_t)sc->scene.grid.num_pix;
  if (lensnet_tensor_alloc(&t, 2, shape, &nerr) != LENSNET_OK) { lens_fail_err(&nerr); goto done; }
  for (k = 0; k < count; k++) t.data[k] = (float)image[k];
  if (lens_make_parents(out_path)) { lensnet_tensor_free(&t); goto done; }
  if ((format == LENS_FMT_FITS ? lensnet_fits_write(out_path, &t, &nerr) : lensnet_npy_write(out_path, &t, &nerr)) != LENSNET_OK) lens_fail_err(&nerr);
  else rc = 0;
  lensnet_tensor_free(&t);
done:
  free(image);
  lenssim_json_scene_free(sc);
  free(sc);
  return rc;
}
