/* Parity with PyTorch for the released lens finders of Wilde et al. 2022 (weights/; PyTorch's
 * outputs in tests/data/wilde2022, whose README gives their provenance):
 *  - every model reproduces PyTorch's logits on the shared inputs within 1e-4, through the
 *    library (tests/test_cli_predict.c checks the same through `lens predict`), also with its 3x3
 *    convolutions by Winograd's F(2x2, 3x3) (lensnet_model_pack_winograd, within 2e-5 of the
 *    direct sums, relative to the largest logit), and a batch does not change an image's logits;
 *  - OU-66's and OU-200's interpretability maps of input 0 (saliency, guided backprop, Grad-CAM,
 *    occlusion) and their input gradients of a noisy copy of it are each within 1e-4 of
 *    PyTorch's, as max |ours - PyTorch| / max |PyTorch| over the whole map (the absolute figure is
 *    printed beside it). The optimised build checks every map; the sanitizer build and the
 *    emulated one of make test-cross (LENS_TEST_EMULATED), slower, skip OU-200's occlusion and
 *    check a few cells of OU-66's; LENS_TEST_EMULATED=2 (make test-cross on s390x, which has no
 *    SIMD kernel and emulates several times slower) checks the logits alone. */
#define LENSNET_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define LENSVIZ_IMPLEMENTATION
#include "lensviz.h"
#include "check.h"
#include <string.h>
#include <math.h>

#if defined(__SANITIZE_ADDRESS__) || defined(LENS_TEST_EMULATED)
#define SAMPLED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SAMPLED 1
#endif
#endif
#ifndef SAMPLED
#define SAMPLED 0
#endif
#if defined(LENS_TEST_EMULATED) && LENS_TEST_EMULATED > 1
#define LOGITS_ONLY 1
#else
#define LOGITS_ONLY 0
#endif

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
  if (lensnet_simd_best() != LENSNET_SIMD_AVX512)
    printf("   Winograd: not on this CPU (no AVX-512): its pack is the plain one (tests/test_lensnet.c checks the bits)\n");
  else { /* the 3x3 and 5x5 convolutions by Winograd's (lensnet_model_pack_winograd; lens predict's default) */
    lensnet_packed *pk = NULL;
    float *fast = (float *)malloc(n * m->out_features * sizeof(float));
    CHECK(lensnet_model_pack_winograd(m, &pk, &err) == LENSNET_OK, "pack_winograd: %s", err.message);
    CHECK(lensnet_model_forward_packed(m, pk, n, in, fast, NULL, &err) == LENSNET_OK, "forward_packed: %s", err.message);
    {
      double d = check_max_abs_diff(fast, ref.data, n * m->out_features), e = check_max_abs_diff(fast, out, n * m->out_features);
      double scale = 1.0;
      for (b = 0; b < n * m->out_features; b++) scale = fabs(out[b]) > scale ? fabs(out[b]) : scale;
      printf("   Winograd: max |ours - PyTorch| = %.3g, max |Winograd - direct| = %.3g (logits up to %.3g)\n", d, e, scale);
      CHECK(d <= 1e-4, "%s Winograd logits differ from PyTorch by %g", rm->name, d);
      CHECK(e <= 1e-5 * scale, "%s Winograd logits differ from the direct sums' by %g", rm->name, e);
    }
    lensnet_packed_free(pk);
    free(fast);
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

/* ---- interpretability maps --------------------------------------------------------------- */

/* One model on one input (image 0 of tests/data/wilde2022/<inputs>) and PyTorch's maps of it,
 * named <method>_<model><suffix>.npy. */
typedef struct {
  const char *model, *inputs, *suffix;
  int gradients;        /* saliency_ and guidedbp_: d logit_lens / d input, [C,H,W] */
  size_t gradcam_layer; /* gradcam_<model>_layer<L>.npy at feature-map resolution; 0: none */
  size_t patch;         /* occlusion_<model>_p<P>s<P>.npy, patch P stride P; 0: none */
  int heavy;            /* the occlusion only in the optimised build */
} map_case;

/* OU-200's input gradients are compared on the noisy copy only. Its clean test image is an
 * upsampled cutout: of the 480,200 windows of its first 2x2 max pool, 39,682 hold two inputs
 * within 1e-6 (relative) of each other, so which one receives the gradient is decided by the
 * last bit of the convolution's rounding, and every float32 implementation finds its own
 * saliency (PyTorch's own with oneDNN's AVX2 kernels is 2.95e-2 of the largest value away from
 * the reference, made with its AVX-512 kernels). On the noisy copy the two largest inputs of any
 * window with a positive one differ by 2.9e-6 or more (relative; 1e-4 or more in all but 14
 * windows), far beyond rounding.
 * Grad-CAM and occlusion do not go through those choices and are compared on the clean image. */
static const map_case map_cases[] = {
  {"OU_66", "inputs_66.npy", "", 1, 27, 1, 0},
  {"OU_66", "inputs_66_noisy.npy", "_noisy", 1, 0, 0, 0},
  {"OU_200", "inputs_200.npy", "", 0, 20, 4, 1},
  {"OU_200", "inputs_200_noisy.npy", "_noisy", 1, 0, 0, 0},
};

static const char *ref_path(const char *name) {
  static char file[1024];
  snprintf(file, sizeof file, "%s/wilde2022/%s", check_data_dir(), name);
  return file;
}

/* max |ours - PyTorch| / max |PyTorch| (and the absolute difference) of one map. */
static double map_error(const float *ours, const lensnet_tensor *ref, size_t n, const char *what) {
  double rel = check_rel_diff(ours, ref->data, n);
  printf("   %s: max |ours - PyTorch| / max |PyTorch| = %.3g (absolute %.3g)\n", what, rel, check_max_abs_diff(ours, ref->data, n));
  return rel;
}

/* Saliency or guided backprop of the lens logit against the reference file `name`. */
static void gradient_parity(lensnet_model *m, const float *x, const char *name, int guided) {
  size_t per = m->in_c * m->in_h * m->in_w;
  lensnet_tensor ref;
  lensnet_error err;
  float *g = (float *)malloc(per * sizeof(float));
  if (lensnet_npy_read(ref_path(name), &ref, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); free(g); return; }
  CHECK(lensnet_tensor_count(&ref) == per, "%s has %lu values, the model's input %lu", name, (unsigned long)lensnet_tensor_count(&ref),
        (unsigned long)per);
  if (g && lensnet_tensor_count(&ref) == per) {
    lensnet_result r = guided ? lensviz_guided_backprop(m, x, 1, NULL, g, &err) : lensviz_saliency(m, x, 1, NULL, g, &err);
    CHECK(r == LENSNET_OK, "%s", err.message);
    CHECK(map_error(g, &ref, per, name) <= 1e-4, "%s differs from PyTorch's by more than 1e-4 of its largest value", name);
  }
  lensnet_tensor_free(&ref);
  free(g);
}

/* Grad-CAM of the lens logit at `layer`, at the feature map's resolution. */
static void gradcam_parity(lensnet_model *m, const float *x, const char *model, size_t layer) {
  char name[128];
  lensnet_tensor ref;
  lensnet_error err;
  size_t c = 0, h = 0, w = 0;
  float cam[64];
  snprintf(name, sizeof name, "gradcam_%s_layer%lu.npy", model, (unsigned long)layer);
  CHECK(m->layers[layer].type == LENSNET_LAYER_RELU, "layer %lu is the ReLU after the last convolution", (unsigned long)layer);
  if (lensnet_npy_read(ref_path(name), &ref, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); return; }
  CHECK(lensviz_layer_shape(m, layer, &c, &h, &w, &err) == LENSNET_OK, "%s", err.message);
  CHECK(ref.ndim == 2 && ref.shape[0] == h && ref.shape[1] == w, "Grad-CAM is %lux%lu like the reference", (unsigned long)h, (unsigned long)w);
  if (h * w <= 64 && ref.ndim == 2 && ref.shape[0] == h && ref.shape[1] == w) {
    CHECK(lensviz_gradcam(m, x, 1, layer, NULL, cam, &err) == LENSNET_OK, "%s", err.message);
    CHECK(map_error(cam, &ref, h * w, name) <= 1e-4, "%s differs from PyTorch's by more than 1e-4 of its largest value", name);
  }
  lensnet_tensor_free(&ref);
}

/* Occlusion, P(lens | patch zeroed in all bands) - P(lens) on a grid floor((H - P) / S) + 1: the
 * whole map in the optimised build; when SAMPLED (sanitizers, emulation) the four strongest cells
 * of the reference and four around the strongest. */
static void occlusion_parity(const lensnet_model *m, const float *x, const char *model, size_t patch) {
  char name[128];
  lensnet_tensor ref;
  lensnet_error err;
  lensviz_desc desc;
  size_t rows = 0, cols = 0, cells[16], n = 0, top[4] = {0, 0, 0, 0}, i, k;
  double mx = 0.0, dd = 0.0, base = 0.0;
  float *map;
  snprintf(name, sizeof name, "occlusion_%s_p%lus%lu.npy", model, (unsigned long)patch, (unsigned long)patch);
  if (lensnet_npy_read(ref_path(name), &ref, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); return; }
  memset(&desc, 0, sizeof desc);
  desc.patch = desc.stride = patch;
  lensviz_occlusion_size(m, &desc, &rows, &cols);
  CHECK(ref.ndim == 2 && ref.shape[0] == rows && ref.shape[1] == cols, "occlusion grid %lux%lu like the reference", (unsigned long)rows,
        (unsigned long)cols);
  for (i = 0; i < lensnet_tensor_count(&ref); i++) {
    mx = fabs(ref.data[i]) > mx ? fabs(ref.data[i]) : mx;
    for (k = 0; k < 4; k++)
      if (fabs(ref.data[i]) > fabs(ref.data[top[k]]) || (i == 0 && k == 0)) {
        memmove(top + k + 1, top + k, (3 - k) * sizeof top[0]);
        top[k] = i;
        break;
      }
  }
  if (SAMPLED) {
    for (k = 0; k < 4; k++) cells[n++] = top[k];
    for (i = 0; i < 4; i++) {
      size_t near = top[0] + (i < 2 ? i + 1 : cols + i - 2);
      cells[n++] = near < rows * cols ? near : 0;
    }
    desc.cells = cells;
    desc.cell_count = n;
  } else n = rows * cols;
  map = (float *)calloc(rows * cols > 0 ? rows * cols : 1, sizeof(float));
  if (map && ref.ndim == 2 && ref.shape[0] == rows && ref.shape[1] == cols) {
    CHECK(lensviz_occlusion(m, x, 1, &desc, map, &base, &err) == LENSNET_OK, "%s", err.message);
    for (k = 0; k < n; k++) {
      size_t cell = SAMPLED ? cells[k] : k;
      double e = fabs((double)map[cell] - (double)ref.data[cell]);
      if (e > dd || e != e) dd = e;
    }
    printf("   %s: %lu of %lu cells, max |ours - PyTorch| / max |PyTorch| = %.3g (absolute %.3g; P(lens) = %.4f)\n", name, (unsigned long)n,
           (unsigned long)(rows * cols), dd / mx, dd, base);
    CHECK(dd / mx <= 1e-4, "%s differs from PyTorch's by %g of its largest value", name, dd / mx);
  }
  free(map);
  lensnet_tensor_free(&ref);
}

static void map_parity(const map_case *mc) {
  char path_w[256], name[128];
  lensnet_model *m = NULL;
  lensnet_tensor x;
  lensnet_error err;
  printf("   %s on %s\n", mc->model, mc->inputs);
  snprintf(path_w, sizeof path_w, "weights/%s.safetensors", mc->model);
  CHECK(lensnet_model_load(path_w, &m, &err) == LENSNET_OK, "%s", err.message);
  if (!m) return;
  if (lensnet_npy_read(ref_path(mc->inputs), &x, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); lensnet_model_free(m); return; }
  CHECK(lensnet_tensor_count(&x) >= m->in_c * m->in_h * m->in_w && x.ndim == 4 && x.shape[1] == m->in_c, "%s holds [N,%lu,%lu,%lu]",
        mc->inputs, (unsigned long)m->in_c, (unsigned long)m->in_h, (unsigned long)m->in_w);
  if (mc->gradients) {
    snprintf(name, sizeof name, "saliency_%s%s.npy", mc->model, mc->suffix);
    gradient_parity(m, x.data, name, 0);
    snprintf(name, sizeof name, "guidedbp_%s%s.npy", mc->model, mc->suffix);
    gradient_parity(m, x.data, name, 1);
  }
  if (mc->gradcam_layer) gradcam_parity(m, x.data, mc->model, mc->gradcam_layer);
  if (mc->patch && !(mc->heavy && SAMPLED)) occlusion_parity(m, x.data, mc->model, mc->patch);
  lensnet_tensor_free(&x);
  lensnet_model_free(m);
}

static void test_maps(void) {
  size_t i;
  for (i = 0; i < sizeof map_cases / sizeof map_cases[0]; i++) map_parity(&map_cases[i]);
}

int main(void) {
  TEST("every released finder reproduces PyTorch's logits") test_parity();
  TEST("batch size does not change the logits") test_batch_independence();
  if (LOGITS_ONLY) SKIP("the interpretability maps (LENS_TEST_EMULATED=2: the logits alone)");
  else TEST("OU-66 and OU-200 saliency, guided backprop, Grad-CAM and occlusion match PyTorch's within 1e-4") test_maps();
  return check_summary();
}
