/* fuzz_arch.c - the architecture text parser (lensnet_model_create): `lens train --arch FILE`
 * reads it from a user's file, and every safetensors file carries it as metadata "arch".
 *
 * The input is the text (NUL-terminated here, as the API takes it; a NUL inside ends it early).
 * A model that builds must be consistent: its parameters lie inside its values, each layer's
 * input is the previous layer's output, and it must describe itself, initialise and, when
 * cheap, run forward. A refusal must come with a message.
 */
#include "fuzz.h"
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "fuzz_model.h"
#include <stdlib.h>
#include <string.h>

static void check_model(lensnet_model *m, uint64_t seed) {
  size_t i;
  char buf[256];
  if (!m->layer_count || !m->out_features) abort();
  for (i = 0; i < m->param_count; i++)
    if (m->params[i].offset > m->value_count || m->params[i].count > m->value_count - m->params[i].offset) abort();
  for (i = 0; i < m->layer_count; i++) {
    const lensnet_layer *L = &m->layers[i];
    if (i && (L->in_c != m->layers[i - 1].out_c || L->in_h != m->layers[i - 1].out_h || L->in_w != m->layers[i - 1].out_w)) abort();
    (void)lensnet_layer_describe(L, buf, sizeof buf);
  }
  lensnet_model_init(m, seed);
  (void)fuzz_model_run(m, seed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = (char *)malloc(size + 1);
  lensnet_model *m = NULL;
  lensnet_error err;
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  if (lensnet_model_create(text, &m, &err) == LENSNET_OK) {
    check_model(m, size);
    lensnet_model_free(m);
  } else if (!err.message[0] || m) {
    abort();
  }
  free(text);
  return 0;
}
