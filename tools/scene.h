/* scene.h - reads a lens scene (JSON in lenstronomy's model and keyword names) into lenssim structs.
 *
 * The format is described in docs/lenssim.md; the reference scenes are in
 * ../shared/reference/lenstronomy. Used by `lens render` and reusable by any tool that simulates.
 * Needs lensnet.h (JSON reader) and lenssim.h. */
#ifndef LENS_SCENE_H
#define LENS_SCENE_H
#include "lensnet.h"
#include "lenssim.h"

typedef struct {
  lenssim_scene scene;                              /* points into the arrays below */
  lenssim_mass lenses[LENSSIM_MAX_PROFILES];
  lenssim_light lens_light[LENSSIM_MAX_PROFILES];
  lenssim_light source_light[LENSSIM_MAX_PROFILES];
  double *psf_kernel;                               /* PIXEL PSF kernel, owned (free with lens_scene_free) */
  int has_psf;                                      /* the scene had a "psf" entry */
  char kind[64];                                    /* the informative "kind" string, if any */
} lens_scene;

/* Fills *out from a parsed JSON document. `name` (for example the file name) starts every error
 * message, which names the entry at fault: "scene.json: lens[1] 'SIE': missing keyword 'theta_E'".
 * Returns 0 on success, -1 with msg filled on failure. Values are range-checked
 * (lenssim_scene_check). *out needs lens_scene_free even after a failure. */
int lens_scene_from_json(const lensnet_json *root, const char *name, lens_scene *out, char *msg, size_t msg_len);
/* Reads and parses a file, then lens_scene_from_json. */
int lens_scene_load(const char *path, lens_scene *out, char *msg, size_t msg_len);
void lens_scene_free(lens_scene *s);
#endif
