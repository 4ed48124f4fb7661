/* split_bands: writes the bands of one `lens sim --fits` cube [C, H, W] as one-band FITS files,
 * each with a header naming the band, pixel scale and units. `make samples` uses it.
 *
 *   split_bands CUBE.fits STEM SCALE NAME...
 *
 * NAME i names band i (in the cube's order) and writes STEM_NAME.fits; a NAME of "-" skips
 * that band. SCALE is the pixel scale in arcsec of the cube (every band shares the grid). */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 2880

/* One 80-character header card: KEY = VALUE / COMMENT. */
static void card(char *h, int *n, const char *key, const char *value, const char *comment) {
  char line[81];
  if (comment) snprintf(line, sizeof line, "%-8s= %20s / %s", key, value, comment);
  else snprintf(line, sizeof line, "%-8s= %20s", key, value);
  memcpy(h + 80 * (*n)++, line, strlen(line));
}

static int write_band(const char *path, const float *plane, size_t height, size_t width,
                      const char *band, const char *scale) {
  char h[BLOCK], num[32], text[32];
  int n = 0;
  size_t i, count = height * width, bytes = count * 4, padded = (bytes + BLOCK - 1) / BLOCK * BLOCK;
  unsigned char *data = (unsigned char *)calloc(padded, 1);
  FILE *f;
  if (!data) return 1;
  memset(h, ' ', sizeof h);
  card(h, &n, "SIMPLE", "T", "conforms to the FITS standard");
  card(h, &n, "BITPIX", "-32", "IEEE 754 single precision");
  card(h, &n, "NAXIS", "2", "number of axes");
  snprintf(num, sizeof num, "%lu", (unsigned long)width);
  card(h, &n, "NAXIS1", num, "pixels along x");
  snprintf(num, sizeof num, "%lu", (unsigned long)height);
  card(h, &n, "NAXIS2", num, "pixels along y");
  snprintf(text, sizeof text, "'%-8s'", band);
  card(h, &n, "FILTER", text, "Euclid-like band (lens sim)");
  card(h, &n, "PIXSCALE", scale, "arcsec per pixel");
  card(h, &n, "BUNIT", "'electron/s'", "sky-subtracted e-/s per pixel");
  card(h, &n, "ORIGIN", "'lens sim'", "simulated; see samples/README.md");
  memcpy(h + 80 * n, "END", 3);
  for (i = 0; i < count; i++) { /* FITS is big-endian */
    unsigned int u;
    memcpy(&u, &plane[i], 4);
    data[4 * i] = (unsigned char)(u >> 24); data[4 * i + 1] = (unsigned char)(u >> 16);
    data[4 * i + 2] = (unsigned char)(u >> 8); data[4 * i + 3] = (unsigned char)u;
  }
  f = fopen(path, "wb");
  if (!f || fwrite(h, 1, sizeof h, f) != sizeof h || fwrite(data, 1, padded, f) != padded) {
    if (f) fclose(f);
    free(data);
    fprintf(stderr, "split_bands: cannot write %s\n", path);
    return 1;
  }
  free(data);
  return fclose(f) != 0;
}

int main(int argc, char **argv) {
  lensnet_tensor cube;
  lensnet_error err;
  size_t bands, plane;
  int i, rc = 0;
  char path[1024];
  if (argc < 5) {
    fprintf(stderr, "usage: split_bands CUBE.fits STEM SCALE NAME...\n");
    return 2;
  }
  if (lensnet_fits_read(argv[1], -1, &cube, &err) != LENSNET_OK) {
    fprintf(stderr, "split_bands: %s\n", err.message);
    return 1;
  }
  bands = cube.ndim == 3 ? cube.shape[0] : 1;
  if (cube.ndim < 2 || cube.ndim > 3 || (size_t)(argc - 4) != bands) {
    fprintf(stderr, "split_bands: %s has %lu band(s); give one NAME per band\n", argv[1], (unsigned long)bands);
    lensnet_tensor_free(&cube);
    return 1;
  }
  plane = cube.shape[cube.ndim - 2] * cube.shape[cube.ndim - 1];
  for (i = 4; i < argc && !rc; i++) {
    if (!strcmp(argv[i], "-")) continue;
    snprintf(path, sizeof path, "%s_%s.fits", argv[2], argv[i]);
    rc = write_band(path, cube.data + (size_t)(i - 4) * plane, cube.shape[cube.ndim - 2],
                    cube.shape[cube.ndim - 1], argv[i], argv[3]);
  }
  lensnet_tensor_free(&cube);
  return rc;
}
