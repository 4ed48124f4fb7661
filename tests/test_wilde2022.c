/* Parity with PyTorch for the released lens finders of Wilde et al. 2022: every model in
 * weights/ must reproduce PyTorch's logits on the inputs in tests/data/wilde2022 within 1e-4
 * through the library (tests/test_cli_predict.c checks the same through `lens predict`), and a
 * batch must not change an image's logits. */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"
#include <string.h>

typedef struct { const char *name, *inputs; size_t bands; } reference_model;

static const reference_model models[] = {
  {"OU_66", "inputs_66.npy", 4}, {"OU_J", "inputs_66.npy", 1}, {"OU_Y", "inputs_66.npy", 1},
  {"OU_H", "inputs_66.npy", 1},  {"OU_JYH", "inputs_66.npy", 3}, {"OU_200", "inputs_200.npy", 4},
  {"OU_VIS", "inputs_200.npy", 1},
};

/* One model's logits on the shared inputs against PyTorch's. */
static void check_model(const reference_model *rm) {
  char path[1024];
  const char *dir = check_data_dir();
  lensnet_model *m = NULL;
  lensnet_tensor x, ref;
  lensnet_error err;
  float *in, *out;
  size_t n, hw, b;
  snprintf(path, sizeof path, "weights/%s.safetensors", rm->name);
  CHECK(lensnet_model_load(path, &m, &err) == LENSNET_OK, "load %s: %s", rm->name, err.message);
  if (!m) return;
  CHECK(m->in_c == rm->bands, "%s takes %lu bands, expected %lu", rm->name, (unsigned long)m->in_c, (unsigned long)rm->bands);
  snprintf(path, sizeof path, "%s/wilde2022/%s", dir, rm->inputs);
  CHECK(lensnet_npy_read(path, &x, &err) == LENSNET_OK, "read inputs: %s", err.message);
  snprintf(path, sizeof path, "%s/wilde2022/logits_%s.npy", dir, rm->name);
  CHECK(lensnet_npy_read(path, &ref, &err) == LENSNET_OK, "read logits: %s", err.message);
  n = x.shape[0];
  hw = x.shape[2] * x.shape[3];
  /* the reference fed the first `bands` bands of the shared inputs */
  in = (float *)malloc(n * m->in_c * hw * sizeof(float));
  out = (float *)malloc(n * m->out_features * sizeof(float));
  for (b = 0; b < n; b++) memcpy(in + b * m->in_c * hw, x.data + b * x.shape[1] * hw, m->in_c * hw * sizeof(float));
  CHECK(lensnet_model_forward(m, n, in, out, NULL, &err) == LENSNET_OK, "forward: %s", err.message);
  CHECK(ref.shape[0] == n && ref.shape[1] == m->out_features, "reference logits shape");
  {
    double d = check_max_abs_diff(out, ref.data, n * m->out_features);
    printf("   library: max |ours - PyTorch| = %.3g over %lu logits\n", d, (unsigned long)(n * m->out_features));
    CHECK(d <= 1e-4, "%s library logits differ from PyTorch by %g", rm->name, d);
  }
  free(in); free(out);
  lensnet_tensor_free(&x); lensnet_tensor_free(&ref);
  lensnet_model_free(m);
}

static void test_parity(void) {
  size_t i;
  for (i = 0; i < sizeof models / sizeof models[0]; i++) {
    printf("   %s\n", models[i].name);
    check_model(&models[i]);
  }
}

static void test_batch_independence(void) {
  char path[1024];
  const char *dir = check_data_dir();
  lensnet_model *m;
  lensnet_tensor x;
  lensnet_error err;
  float all[12], one[2];
  size_t b, per;
  snprintf(path, sizeof path, "weights/OU_66.safetensors");
  if (lensnet_model_load(path, &m, &err) == LENSNET_OK) {
    snprintf(path, sizeof path, "%s/wilde2022/inputs_66.npy", dir);
    CHECK(lensnet_npy_read(path, &x, &err) == LENSNET_OK, "%s", err.message);
    per = 4 * 66 * 66;
    lensnet_model_forward(m, 6, x.data, all, NULL, &err);
    for (b = 0; b < 6; b++) {
      lensnet_model_forward(m, 1, x.data + b * per, one, NULL, &err);
      CHECK(!memcmp(one, all + 2 * b, sizeof one), "image %lu alone differs from in a batch (scores must not depend on the batch)", (unsigned long)b);
    }
    lensnet_tensor_free(&x);
    lensnet_model_free(m);
  } else CHECK(0, "%s", err.message);
}

int main(void) {
  TEST("every released finder reproduces PyTorch's logits") test_parity();
  TEST("batch size does not change the logits") test_batch_independence();
  return check_summary();
}
