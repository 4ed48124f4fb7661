/* Parity with PyTorch for the released lens finders of Wilde et al. 2022: every model in
 * ../shared/reference/wilde2022 must reproduce PyTorch's logits within 1e-4, through the
 * library and through `lens predict`. */
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

static double max_abs_diff(const float *a, const float *b, size_t n) {
  double d = 0;
  size_t i;
  for (i = 0; i < n; i++) {
    double e = fabs((double)a[i] - (double)b[i]);
    if (e > d || e != e) d = e;
  }
  return d;
}

static const char *lens_binary(void) {
  const char *l = getenv("LENS");
  return l && *l ? l : "build/lens";
}

int main(void) {
  char path[1024], cmd[4096];
  const char *dir = check_shared_dir();
  size_t i;
  for (i = 0; i < sizeof models / sizeof models[0]; i++) {
    const reference_model *rm = &models[i];
    lensnet_model *m = NULL;
    lensnet_tensor x, ref, got;
    lensnet_error err;
    float *in, *out;
    size_t n, hw, b;
    printf("-- %s\n", rm->name);
    snprintf(path, sizeof path, "%s/reference/wilde2022/%s.safetensors", dir, rm->name);
    CHECK(lensnet_model_load(path, &m, &err) == LENSNET_OK, "load %s: %s", rm->name, err.message);
    if (!m) continue;
    CHECK(m->in_c == rm->bands, "%s takes %lu bands, expected %lu", rm->name, (unsigned long)m->in_c, (unsigned long)rm->bands);
    snprintf(path, sizeof path, "%s/reference/wilde2022/%s", dir, rm->inputs);
    CHECK(lensnet_npy_read(path, &x, &err) == LENSNET_OK, "read inputs: %s", err.message);
    snprintf(path, sizeof path, "%s/reference/wilde2022/logits_%s.npy", dir, rm->name);
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
      double d = max_abs_diff(out, ref.data, n * m->out_features);
      printf("   library: max |ours - PyTorch| = %.3g over %lu logits\n", d, (unsigned long)(n * m->out_features));
      CHECK(d <= 1e-4, "%s library logits differ from PyTorch by %g", rm->name, d);
    }
    /* the same through the command line, exactly as a user runs it */
    snprintf(cmd, sizeof cmd, "%s predict --model %s/reference/wilde2022/%s.safetensors %s/reference/wilde2022/%s --out build/parity_%s.npy 2>/dev/null",
             lens_binary(), dir, rm->name, dir, rm->inputs, rm->name);
    CHECK(system(cmd) == 0, "command failed: %s", cmd);
    snprintf(path, sizeof path, "build/parity_%s.npy", rm->name);
    if (lensnet_npy_read(path, &got, &err) == LENSNET_OK) {
      double d;
      CHECK(got.ndim == 2 && got.shape[0] == n && got.shape[1] == m->out_features, "lens predict --out shape");
      d = got.shape[0] == n ? max_abs_diff(got.data, ref.data, n * m->out_features) : 1e30;
      printf("   lens predict: max |ours - PyTorch| = %.3g\n", d);
      CHECK(d <= 1e-4, "%s lens predict logits differ from PyTorch by %g", rm->name, d);
      lensnet_tensor_free(&got);
    } else CHECK(0, "lens predict wrote no readable logits: %s", err.message);
    remove(path);
    free(in); free(out);
    lensnet_tensor_free(&x); lensnet_tensor_free(&ref);
    lensnet_model_free(m);
  }

  TEST("batch size does not change the logits") {
    lensnet_model *m;
    lensnet_tensor x;
    lensnet_error err;
    float all[12], one[2];
    size_t b, per;
    snprintf(path, sizeof path, "%s/reference/wilde2022/OU_66.safetensors", dir);
    if (lensnet_model_load(path, &m, &err) == LENSNET_OK) {
      snprintf(path, sizeof path, "%s/reference/wilde2022/inputs_66.npy", dir);
      CHECK(lensnet_npy_read(path, &x, &err) == LENSNET_OK, "%s", err.message);
      per = 4 * 66 * 66;
      lensnet_model_forward(m, 6, x.data, all, NULL, &err);
      for (b = 0; b < 6; b++) {
        lensnet_model_forward(m, 1, x.data + b * per, one, NULL, &err);
        CHECK(max_abs_diff(one, all + 2 * b, 2) < 1e-5, "image %lu alone differs from in a batch", (unsigned long)b);
      }
      lensnet_tensor_free(&x);
      lensnet_model_free(m);
    } else CHECK(0, "%s", err.message);
  }

  TEST("lens predict refuses mismatched inputs with a clear message") {
    snprintf(cmd, sizeof cmd, "%s predict --model %s/reference/wilde2022/OU_200.safetensors %s/reference/wilde2022/inputs_66.npy > build/predict_err.txt 2>&1",
             lens_binary(), dir, dir);
    CHECK(system(cmd) != 0, "a 66x66 input to OU_200 must fail");
    {
      FILE *f = fopen("build/predict_err.txt", "r");
      char text[2048] = "";
      size_t got = f ? fread(text, 1, sizeof text - 1, f) : 0;
      text[got] = 0;
      if (f) fclose(f);
      CHECK(strstr(text, "66x66") && strstr(text, "200x200"), "message names both sizes: %s", text);
    }
    snprintf(cmd, sizeof cmd, "%s predict --model %s/reference/wilde2022/OU_66.safetensors --channels 0,1 %s/reference/wilde2022/inputs_66.npy > /dev/null 2>&1",
             lens_binary(), dir, dir);
    CHECK(system(cmd) != 0, "two channels for a four-band model must fail");
    snprintf(cmd, sizeof cmd, "%s predict --model /nonexistent.safetensors x.npy > /dev/null 2>&1", lens_binary());
    CHECK(system(cmd) != 0, "a missing model must fail");
  }
  remove("build/predict_err.txt");
  return check_summary();
}
