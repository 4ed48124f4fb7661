/* fuzz_safetensors.c - the safetensors reader (lensnet_safetensors_read_memory) and loading a
 * model from it (lensnet_model_from_safetensors): what `lens predict --model FILE` and every
 * other command given weights do with a user's file. The metadata "arch" builds the model, and
 * each of its parameters must be found in the file with its shape.
 *
 * A file that reads must be consistent (every tensor found by its name, every metadata key by
 * its key); a model that loads must hold the file's values and, when cheap, run forward.
 * A refusal must come with a message.
 */
#include "fuzz.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Loading a model allocates no more than the file holds: its values are the file's tensors, and
 * its layer and parameter tables grow with the "arch" text, which is in the file too. A larger
 * block means the "arch" of a few bytes was believed before the weights were checked (a network
 * of millions of parameters with none in the file): abort, so that the fuzzer reports it, even
 * below LENSNET_MAX_ELEMENTS. Only allocations inside lensnet_model_from_safetensors are held to
 * this (limit nonzero): the reader's own, of tensors whose shape the header states, are bounded by
 * LENSNET_MAX_ELEMENTS. */
static size_t limit, input_size;
static void check_size(size_t n) {
  if (limit && n > limit) {
    fprintf(stderr, "fuzz_safetensors: %lu bytes allocated loading a model from a %lu-byte file\n", (unsigned long)n,
            (unsigned long)input_size);
    abort();
  }
}
static void *bounded_malloc(size_t n) { check_size(n); return malloc(n); }
static void *bounded_realloc(void *p, size_t n) { check_size(n); return realloc(p, n); }
#define LENSNET_MALLOC(n) bounded_malloc(n)
#define LENSNET_REALLOC(p, n) bounded_realloc(p, n)
#define LENSNET_FREE(p) free(p)
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "fuzz_model.h"

/* The int8 layer whose weight is parameter i, or NULL. */
static const lensnet_quant_layer *int8_weight(const lensnet_model *m, size_t i) {
  size_t l;
  for (l = 0; m->quant && l < m->layer_count; l++)
    if (m->layers[l].weight == (int)i && m->quant[l].weight) return &m->quant[l];
  return NULL;
}

static void check_model(const lensnet_model *m, const lensnet_safetensors *st) {
  size_t i, k;
  for (i = 0; i < m->param_count; i++) {
    const lensnet_param *P = &m->params[i];
    const lensnet_tensor *t = lensnet_safetensors_find(st, P->name);
    const lensnet_quant_layer *Q = int8_weight(m, i);
    if (!t || lensnet_tensor_count(t) != P->count) abort();
    /* the values are the file's, bit for bit (memcmp: NaN payloads included); an int8 layer's
     * float weights are its I8 values times the output's scale */
    if (Q) {
      size_t rows = P->shape[0], cols = rows ? P->count / rows : 0;
      for (k = 0; k < P->count; k++)
        if (m->values[P->offset + k] != t->data[k] * Q->weight_scale[k / cols] || Q->weight[k] != (int8_t)t->data[k]) abort();
    } else if (P->count && memcmp(m->values + P->offset, t->data, P->count * sizeof(float)))
      abort();
  }
  (void)fuzz_model_run(m, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lensnet_safetensors st;
  lensnet_model *m = NULL;
  lensnet_error err;
  lensnet_result r;
  size_t i;
  input_size = size;
  if (lensnet_safetensors_read_memory(data, size, &st, &err) != LENSNET_OK) {
    if (!err.message[0]) abort();
    return 0;
  }
  for (i = 0; i < st.count; i++) {
    size_t n = lensnet_tensor_count(&st.tensors[i].tensor);
    volatile float last = n ? st.tensors[i].tensor.data[n - 1] : 0.0f;
    (void)last;
    if (!lensnet_safetensors_find(&st, st.tensors[i].name)) abort();
  }
  for (i = 0; i < st.meta_count; i++)
    if (!lensnet_safetensors_meta(&st, st.meta_keys[i])) abort();
  {
    size_t floats = 0;
    for (i = 0; i < st.count; i++) floats += lensnet_tensor_count(&st.tensors[i].tensor);
    limit = ((size_t)1 << 20) + 64 * size + floats * sizeof(float);
  }
  r = lensnet_model_from_safetensors(&st, &m, &err);
  limit = 0;
  if (r == LENSNET_OK) {
    check_model(m, &st);
    lensnet_model_free(m);
  } else if (!err.message[0] || m) {
    abort();
  }
  lensnet_safetensors_free(&st);
  return 0;
}
