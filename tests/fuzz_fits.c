/* fuzz_fits.c - libFuzzer entry point for the FITS, .npy and CSV readers (not part of `make test`).
 *
 * Build and run (clang with the libFuzzer runtime, Debian package libclang-rt-14-dev or newer):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. tests/fuzz_fits.c -o build/fuzz_fits -lm
 *   mkdir -p build/fuzz_corpus && cp tests/data/fits/arange.fits tests/data/fits/test0.fits build/fuzz_corpus/
 *   ./build/fuzz_fits -max_len=65536 -max_total_time=120 build/fuzz_corpus
 *
 * Add -DFUZZ_FITS_ONLY to leave the .npy and CSV readers out. Each input is read as a FITS file
 * (the HDU chosen from the input length, and HDU -1), its HDUs are counted, a keyword and the
 * pixel scale are looked up, and the same bytes are read as a .npy file and as a CSV table. Any
 * crash, sanitizer report or leak is a bug;
 * an error result is the expected answer to most inputs.
 */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lensnet_tensor t;
  lensnet_error err;
  char value[64];
  int count;
  double scale;
  const char *key;
  if (lensnet_fits_read_memory(data, size, -1, &t, &err) == LENSNET_OK) lensnet_tensor_free(&t);
  if (lensnet_fits_read_memory(data, size, (int)(size % 5), &t, &err) == LENSNET_OK) lensnet_tensor_free(&t);
  (void)lensnet_fits_hdu_count_memory(data, size, &count, &err);
  (void)lensnet_fits_header_value_memory(data, size, (int)(size % 3), size % 2 ? "BZERO" : "ESO DET CHIPS", value, sizeof value, &err);
  (void)lensnet_fits_pixel_scale_memory(data, size, (int)(size % 3) - 1, &scale, &key, &err);
#ifndef FUZZ_FITS_ONLY
  if (lensnet_npy_read_memory(data, size, &t, &err) == LENSNET_OK) lensnet_tensor_free(&t);
  {
    lensnet_csv table;
    double v;
    if (lensnet_csv_read_memory(data, size, &table, &err) == LENSNET_OK) {
      (void)lensnet_csv_number(&table, table.rows - 1, table.cols - 1, &v, &err);
      lensnet_csv_free(&table);
    }
  }
#endif
  return 0;
}
