/* Parity with PyTorch for the released lens finders of Wilde et al. 2022: every model in
 * weights/ must reproduce PyTorch's logits on the inputs in tests/data/wilde2022 within 1e-4,
 * through the library and through `lens predict`. */
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

/* The text of a small file (a command's error output), or "" if it cannot be read. */
static const char *read_text(const char *path, char *text, size_t cap) {
  FILE *f = fopen(path, "r");
  size_t got = f ? fread(text, 1, cap - 1, f) : 0;
  text[got] = 0;
  if (f) fclose(f);
  return text;
}

static const char *lens_binary(void) {
  const char *l = getenv("LENS");
  return l && *l ? l : "build/lens";
}

int main(void) {
  char path[1024], cmd[4096];
  const char *dir = check_data_dir();
  size_t i;
  for (i = 0; i < sizeof models / sizeof models[0]; i++) {
    const reference_model *rm = &models[i];
    lensnet_model *m = NULL;
    lensnet_tensor x, ref, got;
    lensnet_error err;
    float *in, *out;
    size_t n, hw, b;
    printf("-- %s\n", rm->name);
    snprintf(path, sizeof path, "weights/%s.safetensors", rm->name);
    CHECK(lensnet_model_load(path, &m, &err) == LENSNET_OK, "load %s: %s", rm->name, err.message);
    if (!m) continue;
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
      double d = max_abs_diff(out, ref.data, n * m->out_features);
      printf("   library: max |ours - PyTorch| = %.3g over %lu logits\n", d, (unsigned long)(n * m->out_features));
      CHECK(d <= 1e-4, "%s library logits differ from PyTorch by %g", rm->name, d);
    }
    /* the same through the command line, exactly as a user runs it */
    snprintf(cmd, sizeof cmd, "%s predict --model weights/%s.safetensors --preprocess none %s/wilde2022/%s --out build/parity_%s.npy 2>/dev/null",
             lens_binary(), rm->name, dir, rm->inputs, rm->name);
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

  TEST("lens predict refuses mismatched inputs with a clear message") {
    snprintf(cmd, sizeof cmd, "%s predict --model weights/OU_200.safetensors %s/wilde2022/inputs_66.npy > build/predict_err.txt 2>&1",
             lens_binary(), dir);
    CHECK(system(cmd) != 0, "a 66x66 input to OU_200 must fail");
    {
      char text[2048];
      read_text("build/predict_err.txt", text, sizeof text);
      CHECK(strstr(text, "66x66") && strstr(text, "200x200"), "message names both sizes: %s", text);
    }
    snprintf(cmd, sizeof cmd, "%s predict --model weights/OU_66.safetensors --preprocess none %s/wilde2022/inputs_66.npy --batch 4 > build/pred_t1.csv 2>/dev/null && "
             "%s predict --model weights/OU_66.safetensors --preprocess none %s/wilde2022/inputs_66.npy --batch 4 --threads 3 > build/pred_t3.csv 2>/dev/null && "
             "cmp -s build/pred_t1.csv build/pred_t3.csv", lens_binary(), dir, lens_binary(), dir);
    CHECK(system(cmd) == 0, "--threads 3 gives the same scores as one thread");
    remove("build/pred_t1.csv"); remove("build/pred_t3.csv");
    snprintf(cmd, sizeof cmd, "%s predict --model weights/OU_66.safetensors --channels 0,1 %s/wilde2022/inputs_66.npy > /dev/null 2>&1",
             lens_binary(), dir);
    CHECK(system(cmd) != 0, "two channels for a four-band model must fail");
    snprintf(cmd, sizeof cmd, "%s predict --model /nonexistent.safetensors x.npy > /dev/null 2>&1", lens_binary());
    CHECK(system(cmd) != 0, "a missing model must fail");
  }
  remove("build/predict_err.txt");

  TEST("lens predict refuses empty images and oversized band counts, and survives odd class metadata") {
    lensnet_tensor t;
    lensnet_error err;
    lensnet_model *m = NULL;
    size_t empty_shape[4] = {1, 4, 0, 66}, wide_shape[4] = {1, 100, 4, 4}, img_shape[4] = {1, 4, 66, 66};
    char text[2048];
    lensnet_tensor_alloc(&t, 4, empty_shape, &err);
    lensnet_npy_write("build/pe_empty.npy", &t, &err);
    lensnet_tensor_free(&t);
    snprintf(cmd, sizeof cmd, "%s predict --model weights/OU_66.safetensors --resize build/pe_empty.npy > /dev/null 2> build/pe_err.txt",
             lens_binary());
    CHECK(system(cmd) != 0, "an empty image must fail");
    read_text("build/pe_err.txt", text, sizeof text);
    CHECK(strstr(text, "empty") != NULL, "the message says the image is empty: %s", text);
    if (lensnet_model_create("input 100 4 4\nflatten\ndense name=d out=2", &m, &err) == LENSNET_OK) {
      lensnet_model_save(m, "build/pe_wide.safetensors", &err);
      lensnet_model_free(m);
    }
    lensnet_tensor_alloc(&t, 4, wide_shape, &err);
    lensnet_npy_write("build/pe_wide.npy", &t, &err);
    lensnet_tensor_free(&t);
    snprintf(cmd, sizeof cmd, "%s predict --model build/pe_wide.safetensors build/pe_wide.npy > /dev/null 2> build/pe_err.txt", lens_binary());
    CHECK(system(cmd) != 0, "a 100-band model must be refused");
    read_text("build/pe_err.txt", text, sizeof text);
    CHECK(strstr(text, "64") != NULL, "the message names the limit: %s", text);
    snprintf(cmd, sizeof cmd, "weights/OU_66.safetensors");
    if (lensnet_model_load(cmd, &m, &err) == LENSNET_OK) {
      lensnet_model_set_meta(m, "classes", "a,b,c,d,e,f,g,lens");
      lensnet_model_save(m, "build/pe_classes.safetensors", &err);
      lensnet_model_free(m);
    }
    lensnet_tensor_alloc(&t, 4, img_shape, &err);
    lensnet_npy_write("build/pe_img.npy", &t, &err);
    lensnet_tensor_free(&t);
    snprintf(cmd, sizeof cmd, "%s predict --model build/pe_classes.safetensors --batch 1 build/pe_img.npy > /dev/null 2>&1", lens_binary());
    CHECK(system(cmd) == 0, "class names that outnumber the outputs fall back to the last output");
    remove("build/pe_empty.npy"); remove("build/pe_wide.npy"); remove("build/pe_wide.safetensors");
    remove("build/pe_classes.safetensors"); remove("build/pe_img.npy"); remove("build/pe_err.txt");
  }

  TEST("lens predict on FITS cutouts: resize, min-max, --bands, --list and --shard") {
    const char *B = "bologna-challenge1";
    FILE *f;
    char line[2048];
    int rows = 0, rows0 = 0, rows1 = 0, probabilities_ok = 1;
    snprintf(cmd, sizeof cmd, "%s predict --model weights/OU_VIS.safetensors --resize --minmax %s/%s/space_based/lens/*.fits %s/%s/space_based/nolens/*.fits > build/pred_fits.csv 2>/dev/null",
             lens_binary(), dir, B, dir, B);
    CHECK(system(cmd) == 0, "OU_VIS on the space-based cutouts");
    f = fopen("build/pred_fits.csv", "r");
    while (f && fgets(line, sizeof line, f)) {
      char *comma = strchr(line, ',');
      if (rows++ == 0) { CHECK(!strncmp(line, "input,p_lens,logit_non-lens,logit_lens", 38), "CSV header: %s", line); continue; }
      if (comma) { double p = atof(comma + 1); probabilities_ok &= p >= 0.0 && p <= 1.0; }
    }
    if (f) fclose(f);
    CHECK(rows == 5, "4 cutouts scored (%d rows with the header)", rows);
    CHECK(probabilities_ok, "p_lens within [0, 1]");
    /* ground-based: four bands in four folders, one object per four files, listed in a file */
    f = fopen("build/pred_list.txt", "w");
    if (f) {
      const char *ids[] = {"100002", "100003", "100014"};
      int k;
      for (k = 0; k < 3; k++)
        fprintf(f, "%s/%s/ground_based/lens/Band1/imageSDSS_R-%s.fits %s/%s/ground_based/lens/Band2/imageSDSS_I-%s.fits "
                   "%s/%s/ground_based/lens/Band3/imageSDSS_G-%s.fits %s/%s/ground_based/lens/Band4/imageSDSS_U-%s.fits\n",
                dir, B, ids[k], dir, B, ids[k], dir, B, ids[k], dir, B, ids[k]);
      fclose(f);
    }
    snprintf(cmd, sizeof cmd, "%s predict --model weights/OU_66.safetensors --bands 4 --list build/pred_list.txt --resize --minmax > build/pred_all.csv 2>build/pred_err.txt",
             lens_binary());
    CHECK(system(cmd) == 0, "four-band objects from a list");
    snprintf(cmd, sizeof cmd, "%s predict --model weights/OU_66.safetensors --bands 4 --list build/pred_list.txt --resize --minmax --shard 0/2 > build/pred_s0.csv 2>/dev/null",
             lens_binary());
    CHECK(system(cmd) == 0, "shard 0/2");
    snprintf(cmd, sizeof cmd, "%s predict --model weights/OU_66.safetensors --bands 4 --list build/pred_list.txt --resize --minmax --shard 1/2 > build/pred_s1.csv 2>/dev/null",
             lens_binary());
    CHECK(system(cmd) == 0, "shard 1/2");
    rows = 0;
    f = fopen("build/pred_all.csv", "r");
    while (f && fgets(line, sizeof line, f)) rows++;
    if (f) fclose(f);
    f = fopen("build/pred_s0.csv", "r");
    while (f && fgets(line, sizeof line, f)) rows0++;
    if (f) fclose(f);
    f = fopen("build/pred_s1.csv", "r");
    while (f && fgets(line, sizeof line, f)) rows1++;
    if (f) fclose(f);
    CHECK(rows == 4 && rows0 == 3 && rows1 == 2, "3 objects split 2 + 1 over the shards (rows %d, %d, %d with headers)", rows, rows0, rows1);
    snprintf(cmd, sizeof cmd, "%s predict --model weights/OU_66.safetensors --bands 4 %s/%s/space_based/lens/imageEUC_VIS-100002.fits > /dev/null 2>&1",
             lens_binary(), dir, B);
    CHECK(system(cmd) != 0, "--bands 4 with one file must fail");
    snprintf(cmd, sizeof cmd, "%s predict --model weights/OU_66.safetensors %s/%s/space_based/lens/imageEUC_VIS-100002.fits > /dev/null 2> build/pred_err.txt",
             lens_binary(), dir, B);
    CHECK(system(cmd) != 0, "a one-band cutout for a four-band model must fail");
    {
      char text[1024];
      read_text("build/pred_err.txt", text, sizeof text);
      CHECK(strstr(text, "1 band") && strstr(text, "takes 4"), "the message counts bands: %s", text);
    }
    remove("build/pred_fits.csv"); remove("build/pred_list.txt"); remove("build/pred_all.csv");
    remove("build/pred_s0.csv"); remove("build/pred_s1.csv"); remove("build/pred_err.txt");
  }
  return check_summary();
}
