/* fuzz_fits.c - the FITS reader (lensnet_fits_*_memory): images, HDU count, header values, pixel
 * scale, WCS. What `lens predict`, `lens find` and `lens render` read from a user's .fits file.
 *
 * Each input is read as a FITS file: the first image HDU, an HDU chosen from the input length,
 * the HDU count, a keyword (a plain one or an ESO HIERARCH one), the pixel scale and the WCS.
 * Any crash or sanitizer report is a bug; an error result is the expected answer to most inputs,
 * and it must come with a message. A tensor read must have as many values as its shape says.
 */
#include "fuzz.h"
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include <stdlib.h>
#include <string.h>

/* The tensor's values are all readable (ASan checks the last) and it is freed. */
static void check_tensor(lensnet_tensor *t) {
  size_t n = lensnet_tensor_count(t);
  volatile float last = n ? t->data[n - 1] : 0.0f;
  (void)last;
  lensnet_tensor_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lensnet_tensor t;
  lensnet_error err;
  lensnet_wcs wcs;
  char value[64];
  int count;
  double scale, ra, dec;
  const char *key;
  if (lensnet_fits_read_memory(data, size, -1, &t, &err) == LENSNET_OK) check_tensor(&t);
  else if (!err.message[0]) abort();
  if (lensnet_fits_read_memory(data, size, (int)(size % 5), &t, &err) == LENSNET_OK) check_tensor(&t);
  if (lensnet_fits_hdu_count_memory(data, size, &count, &err) == LENSNET_OK && count < 1) abort();
  if (lensnet_fits_header_value_memory(data, size, (int)(size % 3), size % 2 ? "BZERO" : "ESO DET CHIPS", value, sizeof value, &err) ==
          LENSNET_OK &&
      !memchr(value, 0, sizeof value))
    abort();
  (void)lensnet_fits_pixel_scale_memory(data, size, (int)(size % 3) - 1, &scale, &key, &err);
  if (lensnet_fits_wcs_memory(data, size, -1, &wcs, &err) == LENSNET_OK) lensnet_wcs_pixel_to_world(&wcs, 0.0, 0.0, &ra, &dec);
  return 0;
}
