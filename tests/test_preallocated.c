/* test_preallocated.c - models built in a caller's block with the parameters taken in place
 * (lensnet_model_heap_size, lensnet_model_init_preallocated): the same logits as a loaded model,
 * the size exact to the byte, no allocation during init and inference, clear errors. */
#include <string.h>
#include <stdlib.h>
#include <stdint.h>

/* Every allocation the library makes is counted, so a test can say "none happened here". */
static size_t allocations, releases;
static void *counted_malloc(size_t n) { allocations++; return malloc(n); }
static void *counted_realloc(void *p, size_t n) { allocations++; return realloc(p, n); }
static void counted_free(void *p) { if (p) releases++; free(p); }
#define LENSNET_MALLOC(n) counted_malloc(n)
#define LENSNET_REALLOC(p, n) counted_realloc(p, n)
#define LENSNET_FREE(p) counted_free(p)
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"

#define CANARY 0xA5

/* A block of `bytes` followed by canary bytes, aligned to LENSNET_HEAP_ALIGN (malloc's are). */
static unsigned char *block_with_canary(size_t bytes, size_t canary) {
  unsigned char *b = (unsigned char *)malloc(bytes + canary);
  if (b) memset(b, CANARY, bytes + canary);
  return b;
}

static int canary_intact(const unsigned char *b, size_t from, size_t to) {
  size_t i;
  for (i = from; i < to; i++) if (b[i] != CANARY) return 0;
  return 1;
}

/* Runs `m` (loaded the ordinary way) and the same network preallocated on the inputs; checks the
 * outputs are identical to the bit, and that init + forward allocate nothing. */
static void check_same_outputs(const char *what, const lensnet_model *m, const float *x, size_t batch) {
  lensnet_error err;
  lensnet_model *p = NULL;
  size_t bytes = 0, ws_floats = lensnet_model_workspace_floats(m, batch), n = batch * m->out_features;
  unsigned char *block;
  float *ws = (float *)malloc(ws_floats * sizeof(float)), *want = (float *)malloc(n * sizeof(float)),
        *got = (float *)malloc(n * sizeof(float));
  lensnet_result r = lensnet_model_heap_size(m->arch, &bytes, &err);
  CHECK(r == LENSNET_OK && bytes > 0, "%s: heap size: %s", what, err.message);
  block = block_with_canary(bytes, 64);
  if (!ws || !want || !got || !block) { CHECK(0, "%s: test memory", what); free(ws); free(want); free(got); free(block); return; }
  CHECK(lensnet_model_forward(m, batch, x, want, ws, &err) == LENSNET_OK, "%s: loaded model runs: %s", what, err.message);
  allocations = releases = 0;
  r = lensnet_model_init_preallocated(m->arch, m->values, m->value_count, block, bytes, &p, &err);
  CHECK(r == LENSNET_OK && p != NULL, "%s: init in exactly %lu bytes: %s", what, (unsigned long)bytes, err.message);
  if (p) {
    CHECK((void *)p == (void *)block && p->values == m->values, "%s: the model sits in the block and reads the values in place", what);
    CHECK(lensnet_model_workspace_floats(p, batch) == ws_floats, "%s: the same workspace size", what);
    memset(got, 0, n * sizeof(float));
    CHECK(lensnet_model_forward(p, batch, x, got, ws, &err) == LENSNET_OK, "%s: preallocated model runs: %s", what, err.message);
    CHECK(allocations == 0, "%s: init_preallocated + forward with a workspace made %lu allocations", what, (unsigned long)allocations);
    CHECK(memcmp(want, got, n * sizeof(float)) == 0, "%s: logits identical to the bit (max |diff| %g)", what, check_max_abs_diff(got, want, n));
    CHECK(canary_intact(block, bytes, bytes + 64), "%s: nothing written after the block", what);
    lensnet_model_free(p);
    CHECK(releases == 0, "%s: lensnet_model_free released %lu of the caller's pointers", what, (unsigned long)releases);
  }
  free(ws); free(want); free(got); free(block);
}

static float *read_inputs(size_t *batch) {
  char path[512];
  lensnet_tensor t;
  lensnet_error err;
  snprintf(path, sizeof path, "%s/wilde2022/inputs_66.npy", check_data_dir());
  if (lensnet_npy_read(path, &t, &err) != LENSNET_OK) { CHECK(0, "inputs: %s", err.message); return NULL; }
  *batch = t.shape[0];
  return t.data;
}

static void test_ou66(void) {
  lensnet_error err;
  lensnet_model *m = NULL;
  size_t batch = 0;
  float *x;
  if (lensnet_model_load("weights/OU_66.safetensors", &m, &err) != LENSNET_OK) { CHECK(0, "OU_66 loads: %s", err.message); return; }
  if ((x = read_inputs(&batch)) != NULL) {
    check_same_outputs("OU-66, six reference images", m, x, batch);
    check_same_outputs("OU-66, one image", m, x, 1);
    free(x);
  }
  lensnet_model_free(m);
}

/* Batch norm (four parameters a layer), a residual connection, pooling and a dense head, with
 * random parameters: the in-place values follow lensnet_model.values' order for every kind. */
static void test_other_kinds(void) {
  const char *arch = "input 2 12 12\nconv2d name=c1 out=6 kernel=3 padding=1\nbatchnorm name=bn1\nrelu\nmark name=skip\n"
                     "conv2d name=c2 out=6 kernel=3 padding=1 bias=0\nadd name=skip\nleaky_relu slope=0.1\navgpool kernel=2\n"
                     "dropout p=0.5\nflatten\ndense name=head out=3\nsoftmax";
  lensnet_error err;
  lensnet_model *m = NULL;
  lensnet_rng rng;
  float x[3 * 2 * 12 * 12];
  size_t i;
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { CHECK(0, "model: %s", err.message); return; }
  lensnet_model_init(m, 7);
  lensnet_rng_seed(&rng, 11);
  for (i = 0; i < m->value_count; i++) m->values[i] += 0.1f * lensnet_rng_normal(&rng); /* batch norm too */
  for (i = 0; i < m->param_count; i++)
    if (strstr(m->params[i].name, "running_var")) {
      size_t k;
      for (k = 0; k < m->params[i].count; k++) m->values[m->params[i].offset + k] = 0.5f + lensnet_rng_uniform(&rng);
    }
  for (i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = lensnet_rng_normal(&rng);
  check_same_outputs("batch norm, residual, pooling", m, x, 3);
  lensnet_model_free(m);
}

/* lensnet_model_heap_size is exact: one byte fewer is a clean NOMEM naming the need, inside the
 * block; wrong arguments are named errors. */
static void test_sizes_and_errors(void) {
  lensnet_error err;
  lensnet_model *m = NULL, *p = (lensnet_model *)1;
  size_t bytes = 0, cut;
  unsigned char *block;
  lensnet_result r;
  if (lensnet_model_load("weights/OU_66.safetensors", &m, &err) != LENSNET_OK) { CHECK(0, "OU_66 loads: %s", err.message); return; }
  CHECK(lensnet_model_heap_size(m->arch, &bytes, &err) == LENSNET_OK, "heap size: %s", err.message);
  CHECK(bytes == LENSNET_MODEL_HEAP_BYTES(m->layer_count, m->param_count), "heap size %lu is the macro's for %lu layers and %lu parameters",
        (unsigned long)bytes, (unsigned long)m->layer_count, (unsigned long)m->param_count);
  block = block_with_canary(bytes + 16, 0);
  if (!block) { lensnet_model_free(m); return; }
  /* too small by 1 byte, and by the size of a parameter entry or a layer: refused, nothing written beyond */
  for (cut = 1; cut <= sizeof(lensnet_layer) + 1; cut += sizeof(lensnet_param) - 1) {
    memset(block, CANARY, bytes + 16);
    err.message[0] = 0;
    r = lensnet_model_init_preallocated(m->arch, m->values, m->value_count, block, bytes - cut, &p, &err);
    CHECK(r == LENSNET_ERR_NOMEM && p == NULL && strstr(err.message, "too small"), "%lu bytes short: %s (%s)", (unsigned long)cut,
          lensnet_result_string(r), err.message);
    CHECK(canary_intact(block, bytes - cut, bytes + 16), "%lu bytes short: nothing written past the block", (unsigned long)cut);
  }
  r = lensnet_model_init_preallocated(m->arch, m->values, m->value_count, block, bytes, &p, &err);
  CHECK(r == LENSNET_OK, "exactly %lu bytes: %s", (unsigned long)bytes, err.message);
  r = lensnet_model_init_preallocated(m->arch, m->values, m->value_count, block + 1, bytes, &p, &err);
  CHECK(r == LENSNET_ERR_ARG && strstr(err.message, "aligned"), "a misaligned block: %s", err.message);
  r = lensnet_model_init_preallocated(m->arch, m->values, m->value_count - 1, block, bytes, &p, &err);
  CHECK(r == LENSNET_ERR_WEIGHTS && strstr(err.message, "parameter values"), "one value short: %s", err.message);
  r = lensnet_model_init_preallocated("ou66(4)", m->values, m->value_count, block, bytes, &p, &err);
  CHECK(r == LENSNET_ERR_ARG && strstr(err.message, "lensnet_arch_builtin"), "a built-in name: %s", err.message);
  r = lensnet_model_init_preallocated("input 4 66 66\nconv2d name=a out=5 kernel=99", m->values, 1, block, bytes, &p, &err);
  CHECK(r == LENSNET_ERR_ARCH && strstr(err.message, "kernel"), "a bad architecture: %s", err.message);
  r = lensnet_model_init_preallocated(m->arch, m->values, m->value_count, block, 4, &p, &err);
  CHECK(r == LENSNET_ERR_NOMEM, "a 4-byte block: %s", err.message);
  r = lensnet_model_init_preallocated(m->arch, NULL, 0, block, bytes, &p, &err);
  CHECK(r == LENSNET_ERR_ARG, "no values: %s", err.message);
  CHECK(lensnet_model_heap_size("input 1 2 2\nfoo", &bytes, &err) == LENSNET_ERR_ARCH && strstr(err.message, "foo"),
        "heap size of bad text: %s", err.message);
  CHECK(lensnet_model_heap_size("ou66(4)", &bytes, &err) == LENSNET_ERR_ARG && strstr(err.message, "lensnet_arch_builtin"),
        "heap size of a built-in name is refused, as init_preallocated refuses it: %s", err.message);
  /* its values are the caller's (maybe flash): nothing that writes parameters takes the model */
  r = lensnet_model_init_preallocated(m->arch, m->values, m->value_count, block, bytes, &p, &err);
  if (r == LENSNET_OK) {
    lensnet_trainer *t = NULL;
    lensnet_model *q = NULL;
    float first = m->values[0];
    CHECK(lensnet_trainer_create(p, NULL, &t, &err) == LENSNET_ERR_ARG && t == NULL && strstr(err.message, "preallocated"),
          "a trainer on a preallocated model is refused: %s", err.message);
    CHECK(lensnet_quantize(p, NULL, 0, NULL, &q, &err) == LENSNET_ERR_ARG && q == NULL && strstr(err.message, "preallocated"),
          "quantising a preallocated model is refused: %s", err.message);
    lensnet_model_init(p, 7);
    CHECK(m->values[0] == first, "lensnet_model_init leaves a preallocated model's values alone");
  }
  free(block);
  lensnet_model_free(m);
}

int main(void) {
  TEST("OU-66 preallocated: the loaded model's logits to the bit, no allocation, nothing freed") test_ou66();
  TEST("batch norm, residual and pooling layers preallocated: the same outputs") test_other_kinds();
  TEST("heap size exact to the byte; short blocks, misalignment, wrong counts are named errors") test_sizes_and_errors();
  return check_summary();
}
