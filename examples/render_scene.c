/* render_scene.c - render a lens scene written in JSON, add a survey band's noise, save it.
 *
 *   build/examples/render_scene [SCENE.json [OUT_DIR [BAND]]]
 *   (defaults: samples/scene.json build/examples-out VIS)
 *
 * A scene uses lenstronomy's model and keyword names ("SIE", "theta_E", "SERSIC_ELLIPSE", ...),
 * so a lenstronomy model moves over unchanged. lenssim.h does no file I/O: we read the text,
 * lenssim_scene_from_json checks it and builds the scene, lenssim_band_observe readies it and
 * the noise for the band, lenssim_render ray-traces it into a noise-free image in counts/s, and
 * lenssim_add_noise adds the band's sky, Poisson and read noise. lensnet.h writes the result as
 * OUT_DIR/scene.npy and OUT_DIR/scene.fits (float32). */
#define _POSIX_C_SOURCE 200809L /* mkdir */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#define LENSSIM_IMPLEMENTATION
#include "lenssim.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* The whole file as text in *len bytes (malloc'd), or NULL. */
static char *read_text(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *text = NULL;
  long size;
  if (f && fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
      (text = malloc((size_t)size + 1)) != NULL && fread(text, 1, (size_t)size, f) != (size_t)size) {
    free(text);
    text = NULL;
  }
  if (text) *len = (size_t)size;
  if (f) fclose(f);
  return text;
}

int main(int argc, char **argv) {
  const char *scene_path = argc > 1 ? argv[1] : "samples/scene.json";
  const char *out_dir = argc > 2 ? argv[2] : "build/examples-out";
  const lenssim_band *band = lenssim_band_find(argc > 3 ? argv[3] : "VIS");
  lenssim_json_scene *sc = malloc(sizeof *sc); /* ~20 KB: heap rather than stack */
  lenssim_error serr;
  lenssim_noise noise;
  lenssim_rng rng;
  lensnet_tensor out;
  lensnet_error err;
  size_t len, n, i, shape[2];
  double *image, scale, total = 0;
  char *text = read_text(scene_path, &len), path[1024];

  if (!band) { fprintf(stderr, "render_scene: unknown band '%s'\n", argv[3]); return 2; }
  if (!text) { fprintf(stderr, "render_scene: cannot read %s\n", scene_path); return 1; }
  if (!sc || lenssim_scene_from_json(text, len, sc, &serr) != LENSSIM_OK) {
    fprintf(stderr, "render_scene: %s: %s\n", scene_path, sc ? serr.message : "out of memory");
    return 1;
  }
  free(text);
  n = (size_t)sc->scene.grid.num_pix;
  scale = sc->scene.grid.pixel_scale;
  /* As the band sees it: a scene without a "psf" entry gets the band's PSF, and the band's sky,
   * given per band pixel, is scaled to this scene's pixels (smaller or larger) by their area. */
  if (lenssim_band_observe(band, &sc->scene, sc->has_psf, &noise, &serr) != LENSSIM_OK) {
    fprintf(stderr, "render_scene: %s: %s\n", scene_path, serr.message);
    return 1;
  }

  /* Noise-free image, num_pix x num_pix doubles in counts/s per pixel (NULL: lenssim allocates
   * its workspace itself; lenssim_render_workspace_bytes sizes one to pass instead). */
  image = malloc(n * n * sizeof *image);
  if (!image) { fprintf(stderr, "render_scene: out of memory\n"); return 1; }
  if (lenssim_render(&sc->scene, image, NULL, 0, &serr) != LENSSIM_OK) {
    fprintf(stderr, "render_scene: %s\n", serr.message);
    return 1;
  }
  for (i = 0; i < n * n; i++) total += image[i];

  /* The band's noise; the seed fixes it. */
  lenssim_rng_seed(&rng, 7);
  lenssim_add_noise(&noise, image, n * n, &rng);

  /* lensnet's files hold float32 tensors; a 2-D image has shape [rows, columns]. */
  shape[0] = shape[1] = n;
  if (lensnet_tensor_alloc(&out, 2, shape, &err) != LENSNET_OK) { fprintf(stderr, "render_scene: %s\n", err.message); return 1; }
  for (i = 0; i < n * n; i++) out.data[i] = (float)image[i];
  mkdir(out_dir, 0777); /* may exist already; the writers report a real failure */
  snprintf(path, sizeof path, "%s/scene.npy", out_dir);
  if (lensnet_npy_write(path, &out, &err) != LENSNET_OK) { fprintf(stderr, "render_scene: %s\n", err.message); return 1; }
  snprintf(path, sizeof path, "%s/scene.fits", out_dir);
  if (lensnet_fits_write(path, &out, &err) != LENSNET_OK) { fprintf(stderr, "render_scene: %s\n", err.message); return 1; }

  printf("%s (%s): %lux%lu pixels of %.3g\", %.1f counts/s before noise, %s noise -> %s/scene.npy, %s/scene.fits\n",
         scene_path, sc->kind[0] ? sc->kind : "no kind", (unsigned long)n, (unsigned long)n, scale, total, band->name,
         out_dir, out_dir);
  lensnet_tensor_free(&out);
  free(image);
  lenssim_json_scene_free(sc);
  free(sc);
  return 0;
}
