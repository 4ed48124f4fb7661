/* fuzz_npy.c - the .npy readers: lensnet_npy_read_memory (what lensnet_npy_read does once the
 * file is read: `lens train`, `lens explain`), and the ones that read a file piece by piece,
 * lensnet_npy_info_read and lensnet_npy_read_rows (`lens predict` streams image stacks a batch of
 * rows at a time), on the input written to a file (fuzz_file.h).
 *
 * A read that succeeds must give a tensor of 0 to LENSNET_MAX_DIMS axes whose values are all
 * readable, and the three readers must agree on the shape and the values; a refusal must come
 * with a message.
 */
#define _POSIX_C_SOURCE 200809L /* mkstemp, in fuzz_file.h */
#include "fuzz.h"
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "fuzz_file.h"

/* Rows [first, first + count) read from the file equal those of the whole array t. */
static void check_rows(const char *path, const lensnet_tensor *t, size_t first, size_t count) {
  lensnet_tensor rows;
  lensnet_error err;
  size_t per = 1, i;
  int d;
  if (lensnet_npy_read_rows(path, first, count, &rows, &err) != LENSNET_OK) abort();
  for (d = 1; d < t->ndim; d++) per *= t->shape[d];
  if (rows.ndim != t->ndim || rows.shape[0] != count || lensnet_tensor_count(&rows) != count * per) abort();
  /* bit for bit: NaN payloads included */
  if (count && per && memcmp(rows.data, t->data + first * per, count * per * sizeof(float))) abort();
  for (i = 1; i < (size_t)t->ndim; i++) if (rows.shape[i] != t->shape[i]) abort();
  lensnet_tensor_free(&rows);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lensnet_tensor t;
  lensnet_npy_info info;
  lensnet_error err;
  lensnet_result r = lensnet_npy_read_memory(data, size, &t, &err), ri;
  const char *path = fuzz_input_file(data, size);
  if (r != LENSNET_OK && !err.message[0]) abort();
  if (r == LENSNET_OK) {
    size_t n = lensnet_tensor_count(&t);
    volatile float sum = 0.0f;
    if (t.ndim < 0 || t.ndim > LENSNET_MAX_DIMS || n > LENSNET_MAX_ELEMENTS) abort();
    if (n) sum = t.data[0] + t.data[n - 1];
    (void)sum;
  }
  if (path) {
    ri = lensnet_npy_info_read(path, &info, &err);
    if (ri != LENSNET_OK && !err.message[0]) abort();
    if (ri == LENSNET_OK && r == LENSNET_OK) {
      int d;
      if (info.ndim != t.ndim) abort();
      for (d = 0; d < t.ndim; d++) if (info.shape[d] != t.shape[d]) abort();
      if (t.ndim >= 1 && t.shape[0]) {
        check_rows(path, &t, 0, t.shape[0]);
        check_rows(path, &t, t.shape[0] / 2, t.shape[0] - t.shape[0] / 2);
      }
    }
    /* rows past the end are refused */
    if (ri == LENSNET_OK && info.ndim >= 1) {
      lensnet_tensor rows;
      if (lensnet_npy_read_rows(path, info.shape[0], 1, &rows, &err) != LENSNET_ERR_ARG) abort();
    }
  }
  if (r == LENSNET_OK) lensnet_tensor_free(&t);
  return 0;
}
