/* fuzz_npy.c - the .npy reader (lensnet_npy_read_memory), what `lens predict`, `lens train` and
 * `lens explain` read image stacks with.
 *
 * A read that succeeds must give a tensor of 0 to LENSNET_MAX_DIMS axes whose values are all
 * readable; a refusal must come with a message.
 */
#include "fuzz.h"
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lensnet_tensor t;
  lensnet_error err;
  if (lensnet_npy_read_memory(data, size, &t, &err) == LENSNET_OK) {
    size_t n = lensnet_tensor_count(&t);
    volatile float sum = 0.0f;
    if (t.ndim < 0 || t.ndim > LENSNET_MAX_DIMS || n > LENSNET_MAX_ELEMENTS) abort();
    if (n) sum = t.data[0] + t.data[n - 1];
    (void)sum;
    lensnet_tensor_free(&t);
  } else if (!err.message[0]) {
    abort();
  }
  return 0;
}
