/* Unit tests of lensnet.h's core: JSON, architecture text, model files, the layers' forward
 * passes against hand-computed values, resizing and normalisation, random numbers. The file
 * formats (.npy, safetensors, FITS) are tested in tests/test_formats.c. */
#include <stdlib.h>
/* An allocator that refuses its Nth call from now (alloc_fail_in = N), so that each allocation of
 * a function can be failed in turn; alloc_calls counts the calls. */
static long alloc_fail_in = 0, alloc_calls = 0;
static void *test_malloc(size_t n) {
  alloc_calls++;
  return alloc_fail_in > 0 && --alloc_fail_in == 0 ? NULL : malloc(n);
}
static void *test_realloc(void *p, size_t n) {
  alloc_calls++;
  return alloc_fail_in > 0 && --alloc_fail_in == 0 ? NULL : realloc(p, n);
}
#define LENSNET_MALLOC(n) test_malloc(n)
#define LENSNET_REALLOC(p, n) test_realloc(p, n)
#define LENSNET_FREE(p) free(p)
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"
#include <string.h>

static int close_to(double a, double b, double tol) { return fabs(a - b) <= tol; }

/* Runs a model built from text on the given input and returns the first output values. */
static int run_arch(const char *arch, const float *in, size_t batch, float *out, lensnet_model **keep) {
  lensnet_model *m;
  lensnet_error err;
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { printf("   arch error: %s\n", err.message); return 0; }
  if (keep) { *keep = m; return 1; }
  lensnet_model_forward(m, batch, in, out, NULL, &err);
  lensnet_model_free(m);
  return 1;
}

static void test_json_values(void) {
  lensnet_error err;
  const char text[] = " {\"a\": [1, -2.5e3, true, false, null], \"s\": \"x\\n\\u00e9\\ud83d\\ude00\\\"\", \"o\": {\"k\": {}}} ";
  lensnet_json *doc = NULL;
  const lensnet_json *a, *s;
  CHECK(lensnet_json_parse(text, sizeof text - 1, &doc, &err) == LENSNET_OK, "parse: %s", err.message);
  a = lensnet_json_get(doc, "a");
  s = lensnet_json_get(doc, "s");
  CHECK(a && a->type == LENSNET_JSON_ARRAY && a->count == 5, "array of 5");
  CHECK(a && a->items[1].number == -2500.0, "number -2.5e3");
  CHECK(a && a->items[2].type == LENSNET_JSON_BOOL && a->items[2].number == 1, "true");
  CHECK(a && a->items[4].type == LENSNET_JSON_NULL, "null");
  CHECK(s && s->string_len == 9 && !memcmp(s->string, "x\n\xc3\xa9\xf0\x9f\x98\x80\"", 9), "escapes decode to UTF-8");
  CHECK(lensnet_json_get(lensnet_json_get(doc, "o"), "k") != NULL, "nested object");
  CHECK(lensnet_json_get(doc, "missing") == NULL, "missing key gives NULL");
  lensnet_json_free(doc);
}

static void test_json_malformed(void) {
  lensnet_error err;
  const char *bad[] = {"", "{", "{\"a\":}", "[1,]", "[1 2]", "\"abc", "{\"a\" 1}", "tru", "01x", "[1]x", "\"\\q\"", "-", "1.", "{\"a\":1,}"};
  size_t i;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    lensnet_json *doc = NULL;
    err.message[0] = 0;
    CHECK(lensnet_json_parse(bad[i], strlen(bad[i]), &doc, &err) == LENSNET_ERR_FORMAT && doc == NULL && err.message[0],
          "'%s' must be refused", bad[i]);
  }
  {
    char deep[300];
    lensnet_json *doc = NULL;
    memset(deep, '[', sizeof deep);
    CHECK(lensnet_json_parse(deep, sizeof deep, &doc, &err) == LENSNET_ERR_FORMAT, "nesting deeper than the limit is refused");
  }
}

static void test_architecture_text(void) {
  lensnet_error err;
  lensnet_model *m = NULL;
  char text[4096];
  CHECK(lensnet_arch_builtin("ou66", 4, text, sizeof text) > 0 && strstr(text, "layer.26"), "ou66 text names layer.26");
  CHECK(lensnet_model_create("ou66(4)", &m, &err) == LENSNET_OK, "ou66(4): %s", err.message);
  /* parameter count of OU-66 with 4 bands, from the layer sizes of Wilde et al. 2022 */
  if (m) CHECK(lensnet_model_parameter_count(m) == 203192, "ou66 has %lu parameters", (unsigned long)lensnet_model_parameter_count(m));
  if (m) CHECK(m->out_features == 2 && m->in_h == 66, "ou66 shapes");
  lensnet_model_free(m);
  CHECK(lensnet_model_create("ou200(1)", &m, &err) == LENSNET_OK && m->layers[m->layer_count - 1].in_c == 350, "ou200(1)");
  lensnet_model_free(m);
  m = NULL;
  CHECK(lensnet_model_create("input 1 8 8\nconv2d name=c out=2 kernel=3\nfrobnicate", &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "line 3") && strstr(err.message, "frobnicate"), "unknown layer named: %s", err.message);
  CHECK(lensnet_model_create("conv2d name=c out=2 kernel=3", &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "input"), "missing input line: %s", err.message);
  /* a comment runs to the end of its line: a ';' inside it does not start another line (it once
   * made tools/ensai-lowdrop.arch unreadable) */
  CHECK(lensnet_model_create("# first; second part of the comment\ninput 1 8 8 # size; still a comment\nconv2d name=c out=2 kernel=3; relu", &m, &err) ==
            LENSNET_OK && m && m->layer_count == 2, "';' inside a comment: %s", err.message);
  lensnet_model_free(m);
  m = NULL;
  { /* the architecture files make ensai-weights and the locator's recipe read */
    static const char *files[] = {"tools/ensai-lowdrop.arch", "tools/locator-nodrop.arch"};
    size_t f;
    for (f = 0; f < 2; f++) {
      char text[8192];
      FILE *fp = fopen(files[f], "rb");
      size_t n = fp ? fread(text, 1, sizeof text - 1, fp) : 0;
      if (fp) fclose(fp);
      text[n] = 0;
      CHECK(n > 0 && lensnet_model_create(text, &m, &err) == LENSNET_OK, "%s builds: %s", files[f], n ? err.message : "cannot read it");
      lensnet_model_free(m);
      m = NULL;
    }
  }
  CHECK(lensnet_model_create("input 1 4 4; conv2d name=c out=2 kernel=7", &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "larger"), "kernel too large: %s", err.message);
  CHECK(lensnet_model_create("input 3 8 8; conv2d name=c out=4 kernel=3 groups=2", &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "groups"), "bad groups: %s", err.message);
  CHECK(lensnet_model_create("input 1 8 8; add name=skip", &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "mark"), "add without mark: %s", err.message);
  CHECK(lensnet_model_create("input 1 8 8; dense name=d out=3 kernel=x", &m, &err) == LENSNET_ERR_ARCH, "non-numeric option");
  CHECK(lensnet_model_create("ou77(4)", &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "ou77"), "unknown built-in: %s", err.message);
  CHECK(lensnet_model_create("ou66(100000000)", &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "100000000 is outside 0..1000000"),
        "a band count out of range is named as such: %s", err.message);
  /* the layers of the DeepLense architectures, and built-ins with a head and a size */
  CHECK(lensnet_model_create("input 1 8 8; restore name=skip", &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "mark name=skip"),
        "restore without mark: %s", err.message);
  CHECK(lensnet_model_create("input 6 8 8; p4_conv name=c out=2 kernel=3", &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "4 orientations"),
        "p4_conv on 6 channels: %s", err.message);
  CHECK(lensnet_model_create("input 1 8 8; p4_lift name=l out=2 kernel=3 groups=2", &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "groups"),
        "groups on a p4 layer: %s", err.message);
  CHECK(lensnet_model_create("input 6 8 8; p4_pool", &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "p4_pool"), "p4_pool on 6 channels: %s",
        err.message);
  CHECK(lensnet_model_create("input 8 8 8; p4_pool mode=median", &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "median"),
        "an unknown p4_pool mode: %s", err.message);
  CHECK(lensnet_model_create("input 6 8 8; batchnorm name=bn orientations=4", &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "orientations=4"),
        "orientations that do not divide the channels: %s", err.message);
  CHECK(lensnet_model_create("resnet18(3,5,64)", &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "height,width"), "three numbers: %s",
        err.message);
  CHECK(lensnet_model_create("p4cnn(1,3,40,40)", &m, &err) == LENSNET_OK && m->in_h == 40 && m->out_features == 3, "p4cnn(1,3,40,40): %s",
        err.message);
  lensnet_model_free(m);
  m = NULL;
  /* two layers of one name would save tensors no model could tell apart: refused when built */
  CHECK(lensnet_model_create("input 1 8 8\nconv2d name=c1 out=2 kernel=3\nrelu\nconv2d name=c1 out=2 kernel=3\nflatten\ndense name=fc out=2", &m,
                             &err) == LENSNET_ERR_ARCH && strstr(err.message, "'c1.weight'") && !m,
        "a layer name used twice: %s", err.message);
  CHECK(lensnet_model_create("input 1 8 8; conv2d name=c out=2 kernel=3 stride=0", &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "stride=0"),
        "stride=0 is refused, not taken as 1: %s", err.message);
  CHECK(lensnet_model_create("ou67", &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "'ou67' is neither a built-in") && strstr(err.message, "ou66(4)"),
        "a mistyped built-in without parentheses says what was expected: %s", err.message);
  CHECK(lensnet_model_create(NULL, &m, &err) == LENSNET_ERR_ARG && !m, "no architecture text: %s", err.message);
  CHECK(lensnet_model_load("weights/OU_66.safetensors", NULL, &err) == LENSNET_ERR_ARG, "nowhere to put the model: %s", err.message);
  CHECK(lensnet_model_load(NULL, &m, &err) == LENSNET_ERR_ARG && strstr(err.message, "NULL") && !m, "no path: %s", err.message);
  /* NULL pointers to the readers and the forward pass: named errors, not crashes */
  {
    lensnet_tensor t;
    lensnet_safetensors st;
    lensnet_csv table;
    lensnet_json *doc = NULL;
    const size_t shape[2] = {2, 3};
    int minmax;
    float x[4] = {0}, y[4];
    CHECK(lensnet_npy_read_memory("abc", 3, NULL, &err) == LENSNET_ERR_ARG, "npy from memory into NULL: %s", err.message);
    CHECK(lensnet_npy_read_memory(NULL, 10, &t, &err) == LENSNET_ERR_ARG, "npy from NULL bytes: %s", err.message);
    CHECK(lensnet_safetensors_read_memory(NULL, 10, &st, &err) == LENSNET_ERR_ARG, "safetensors from NULL bytes: %s", err.message);
    CHECK(lensnet_safetensors_read_memory("abcdefghij", 10, NULL, &err) == LENSNET_ERR_ARG, "safetensors into NULL: %s", err.message);
    CHECK(lensnet_fits_read("x.fits", -1, NULL, &err) == LENSNET_ERR_ARG, "FITS into NULL: %s", err.message);
    CHECK(lensnet_csv_read_memory(NULL, 3, &table, &err) == LENSNET_ERR_ARG, "CSV from NULL bytes: %s", err.message);
    CHECK(lensnet_json_parse(NULL, 5, &doc, &err) == LENSNET_ERR_ARG && lensnet_json_parse("{}", 2, NULL, &err) == LENSNET_ERR_ARG,
          "JSON from NULL or into NULL: %s", err.message);
    CHECK(lensnet_tensor_alloc(NULL, 2, shape, &err) == LENSNET_ERR_ARG && lensnet_tensor_alloc(&t, 2, NULL, &err) == LENSNET_ERR_ARG,
          "tensor_alloc without a tensor or a shape: %s", err.message);
    CHECK(lensnet_tensor_count(NULL) == 0, "tensor_count(NULL) is 0");
    CHECK(lensnet_npy_write("build/null.npy", NULL, &err) == LENSNET_ERR_ARG, "npy_write of NULL: %s", err.message);
    CHECK(lensnet_model_forward(NULL, 1, x, y, NULL, &err) == LENSNET_ERR_ARG, "forward without a model: %s", err.message);
    CHECK(lensnet_model_preprocess(NULL, &minmax, NULL, &err) == LENSNET_ERR_ARG, "preprocess without a model: %s", err.message);
    CHECK(lensnet_model_workspace_floats(NULL, 1) == 0, "workspace_floats(NULL) is 0");
    CHECK(lensnet_safetensors_read("weights/OU_66.safetensors", NULL, &err) == LENSNET_ERR_ARG &&
              lensnet_safetensors_read(NULL, &st, &err) == LENSNET_ERR_ARG,
          "safetensors from a file into NULL, or from no path: %s", err.message);
    CHECK(lensnet_model_save(NULL, "build/null.safetensors", &err) == LENSNET_ERR_ARG && strstr(err.message, "no model"),
          "saving no model: %s", err.message);
    CHECK(lensnet_model_meta(NULL, "classes") == NULL, "the metadata of no model: NULL");
    {
      double arcsec = 1.0;
      lensnet_map_geometry g;
      CHECK(lensnet_model_pixel_scale(NULL, &arcsec, &err) == LENSNET_ERR_ARG && arcsec == 0.0 && strstr(err.message, "no model"),
            "the pixel scale of no model: %s", err.message);
      CHECK(lensnet_receptive_field(NULL, 1, &g, &err) == LENSNET_ERR_ARG && strstr(err.message, "no model"), "the receptive field of no model: %s",
            err.message);
    }
    if (lensnet_model_load("weights/OU_66.safetensors", &m, &err) == LENSNET_OK) {
      /* an image whose bands x h x w floats overflow a size_t: refused before any pixel is read */
      lensnet_cutout_desc d;
      lensnet_cutout_report rep;
      float px[4] = {0}, out[4 * 66 * 66];
      memset(&d, 0, sizeof d);
      d.size = LENSNET_SIZE_RESIZE;
      CHECK(lensnet_cutout_prepare(m, &d, px, 4, (size_t)1 << (4 * sizeof(size_t)), (size_t)1 << (4 * sizeof(size_t)), out, &rep, &err) == LENSNET_ERR_TOO_LARGE &&
                rep.issue == LENSNET_CUTOUT_TOO_LARGE,
            "an image of 2^(half the bits of a size_t) squared pixels: %s", err.message);
      lensnet_model_free(m);
      m = NULL;
    }
    /* the workspace for another target: this build's own for its CPU kind, never more without x86's AVX-512 scratch */
    if (lensnet_model_load("weights/OU_66.safetensors", &m, &err) == LENSNET_OK) {
      size_t own = lensnet_model_workspace_floats(m, 1), x86 = lensnet_model_workspace_floats_target(m, 1, 1),
             other = lensnet_model_workspace_floats_target(m, 1, 0);
#if (defined(__x86_64__) || defined(__i386__)) && !defined(LENSNET_NO_SIMD)
      CHECK(own == x86 && other <= x86, "workspace for x86 (%lu) is this x86 build's (%lu); for other CPUs %lu", (unsigned long)x86,
            (unsigned long)own, (unsigned long)other);
#else
      CHECK(own == other && other <= x86, "workspace for this CPU kind (%lu) is this build's (%lu)", (unsigned long)other, (unsigned long)own);
#endif
      lensnet_model_free(m);
      m = NULL;
    }
  }
  CHECK(lensnet_arch_builtin_sized("ou66", 4, 2, 128, 128, text, sizeof text) > 0 && strstr(text, "input 4 66 66"), "ou66's size is fixed");
  CHECK(lensnet_arch_builtin("resnet34", 3, text, sizeof text) == 0, "a buffer too small gives 0 (resnet34's text is longer than 4096 bytes)");
}

static void test_save_and_load(void) {
  lensnet_error err;
  lensnet_model *m = NULL, *back = NULL;
  const char *arch = "input 2 6 6\nconv2d name=conv out=3 kernel=3 padding=1\nbatchnorm name=bn\nrelu\nmark name=skip\nconv2d name=conv2 out=3 kernel=3 padding=1\nadd name=skip\nglobal_avgpool\nflatten\ndense name=head out=2";
  float in[72], out1[2], out2[2];
  size_t i;
  CHECK(lensnet_model_create(arch, &m, &err) == LENSNET_OK, "create: %s", err.message);
  if (m) {
    lensnet_model_init(m, 7);
    for (i = 0; i < 72; i++) in[i] = (float)((i * 37) % 11) / 11.0f - 0.4f;
    lensnet_model_set_meta(m, "classes", "non-lens,lens");
    CHECK(lensnet_model_save(m, "build/t_model.safetensors", &err) == LENSNET_OK, "save: %s", err.message);
    CHECK(lensnet_model_load("build/t_model.safetensors", &back, &err) == LENSNET_OK, "load: %s", err.message);
    if (back) {
      lensnet_model_forward(m, 1, in, out1, NULL, &err);
      lensnet_model_forward(back, 1, in, out2, NULL, &err);
      CHECK(out1[0] == out2[0] && out1[1] == out2[1], "same outputs after the round trip");
      CHECK(lensnet_model_meta(back, "classes") && !strcmp(lensnet_model_meta(back, "classes"), "non-lens,lens"), "metadata kept");
      CHECK(!strcmp(back->arch, m->arch), "architecture text kept");
      lensnet_model_free(back);
    }
    lensnet_model_free(m);
  }
  remove("build/t_model.safetensors");
}

static void test_load_mismatches(void) {
  lensnet_error err;
  lensnet_safetensors st;
  lensnet_model *m = NULL;
  lensnet_tensor w, b;
  size_t ws[4] = {2, 1, 3, 3}, bs[1] = {2}, bad[1] = {3};
  memset(&st, 0, sizeof st);
  lensnet_tensor_alloc(&w, 4, ws, &err);
  lensnet_tensor_alloc(&b, 1, bs, &err);
  lensnet_safetensors_set_meta(&st, "arch", "input 1 5 5\nconv2d name=c out=2 kernel=3");
  lensnet_safetensors_add(&st, "c.weight", &w);
  CHECK(lensnet_model_from_safetensors(&st, &m, &err) == LENSNET_ERR_WEIGHTS && strstr(err.message, "c.bias"), "missing bias named: %s", err.message);
  lensnet_tensor_free(&b);
  lensnet_tensor_alloc(&b, 1, bad, &err);
  lensnet_safetensors_add(&st, "c.bias", &b);
  CHECK(lensnet_model_from_safetensors(&st, &m, &err) == LENSNET_ERR_WEIGHTS && strstr(err.message, "3") && strstr(err.message, "c.bias"), "wrong shape named: %s", err.message);
  lensnet_safetensors_free(&st);
  memset(&st, 0, sizeof st);
  lensnet_tensor_free(&b);
  lensnet_tensor_alloc(&b, 1, bs, &err);
  lensnet_safetensors_set_meta(&st, "arch", "input 1 5 5\nconv2d name=c out=2 kernel=3");
  lensnet_safetensors_add(&st, "c.weight", &w);
  lensnet_safetensors_add(&st, "c.bias", &b);
  lensnet_safetensors_add(&st, "stray.weight", &b);
  CHECK(lensnet_model_from_safetensors(&st, &m, &err) == LENSNET_ERR_WEIGHTS && strstr(err.message, "stray.weight"), "extra tensor named: %s", err.message);
  lensnet_safetensors_free(&st);
  /* an arch of a few bytes for 2e9 parameters (8 GB) and no weights: refused for the missing
   * weights before the values are allocated (they were allocated and zeroed first) */
  memset(&st, 0, sizeof st);
  lensnet_safetensors_set_meta(&st, "arch", "input 1 1 1\ndense name=d out=1000000000");
  CHECK(lensnet_model_from_safetensors(&st, &m, &err) == LENSNET_ERR_WEIGHTS && strstr(err.message, "d.weight") && !m,
        "a huge network without weights: %s", err.message);
  lensnet_safetensors_free(&st);
  lensnet_tensor_free(&w); lensnet_tensor_free(&b);
}

static void test_convolution(void) {
  lensnet_error err;
  lensnet_model *m = NULL;
  /* 1 input channel 3x3 = 1..9; kernel all ones 2x2 stride 1 padding 0: sums of 2x2 blocks */
  float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, out[16];
  size_t i;
  if (run_arch("input 1 3 3\nconv2d name=c out=1 kernel=2 bias=0", in, 1, out, &m)) {
    for (i = 0; i < 4; i++) m->values[i] = 1.0f;
    lensnet_model_forward(m, 1, in, out, NULL, &err);
    CHECK(out[0] == 12 && out[1] == 16 && out[2] == 24 && out[3] == 28, "2x2 box sums: %g %g %g %g", out[0], out[1], out[2], out[3]);
    lensnet_model_free(m);
  }
  /* stride 2, padding 1, kernel 3 of ones, bias 0.5: window sums at (-1,-1) and (1,1) centres */
  if (run_arch("input 1 3 3\nconv2d name=c out=1 kernel=3 stride=2 padding=1", in, 1, out, &m)) {
    for (i = 0; i < 9; i++) m->values[i] = 1.0f;
    m->values[9] = 0.5f;
    lensnet_model_forward(m, 1, in, out, NULL, &err);
    CHECK(m->layers[0].out_h == 2 && out[0] == 12.5f && out[1] == 16.5f && out[2] == 24.5f && out[3] == 28.5f, "stride 2 pad 1: %g %g %g %g", out[0], out[1], out[2], out[3]);
    lensnet_model_free(m);
  }
  /* depthwise (groups = 2): each channel scaled by its own 1x1 weight */
  {
    float in2[8] = {1, 2, 3, 4, 10, 20, 30, 40};
    if (run_arch("input 2 2 2\nconv2d name=c out=2 kernel=1 groups=2 bias=0", in2, 1, out, &m)) {
      m->values[0] = 2.0f; m->values[1] = -1.0f;
      lensnet_model_forward(m, 1, in2, out, NULL, &err);
      CHECK(out[0] == 2 && out[3] == 8 && out[4] == -10 && out[7] == -40, "depthwise: %g %g %g %g", out[0], out[3], out[4], out[7]);
      lensnet_model_free(m);
    }
  }
}

static void test_layers_by_hand(void) {
  lensnet_error err;
  float in[16], out[16];
  size_t i;
  for (i = 0; i < 16; i++) in[i] = (float)i - 5.0f; /* 4x4: -5..10 */
  run_arch("input 1 4 4\nmaxpool kernel=2", in, 1, out, NULL);
  CHECK(out[0] == 0 && out[1] == 2 && out[2] == 8 && out[3] == 10, "max pool 2x2: %g %g %g %g", out[0], out[1], out[2], out[3]);
  {
    float with_nan[16];
    memcpy(with_nan, in, sizeof with_nan);
    with_nan[5] = NAN; /* row 1, column 1: inside the first 2x2 window */
    run_arch("input 1 4 4\nmaxpool kernel=2", with_nan, 1, out, NULL);
    CHECK(out[0] != out[0] && out[1] == 2 && out[3] == 10, "a NaN propagates through max pooling, as in PyTorch: %g %g", out[0], out[1]);
  }
  run_arch("input 1 4 4\navgpool kernel=2", in, 1, out, NULL);
  CHECK(out[0] == -2.5f && out[3] == 7.5f, "avg pool 2x2: %g %g", out[0], out[3]);
  /* floor mode: 4x4 with kernel 3 stride 3 gives 1x1 */
  run_arch("input 1 4 4\nmaxpool kernel=3 stride=3", in, 1, out, NULL);
  CHECK(out[0] == 5.0f, "floor-mode max pool: %g", out[0]);
  /* average pool with padding counts the zeros (count_include_pad) */
  run_arch("input 1 4 4\navgpool kernel=2 stride=2 padding=1", in, 1, out, NULL);
  CHECK(close_to(out[0], -5.0 / 4.0, 1e-6), "avg pool counts padding: %g", out[0]);
  run_arch("input 1 4 4\nglobal_avgpool", in, 1, out, NULL);
  CHECK(close_to(out[0], 2.5, 1e-6), "global average: %g", out[0]);
  run_arch("input 1 1 4\nleaky_relu slope=0.1", in, 1, out, NULL);
  CHECK(close_to(out[0], -0.5, 1e-6) && close_to(out[1], -0.4, 1e-6), "leaky relu: %g %g", out[0], out[1]);
  {
    float x[4] = {-1.0f, 0.0f, 1.0f, 2.0f};
    run_arch("input 1 1 4\ngelu", x, 1, out, NULL);
    /* exact GELU x*Phi(x): Phi(1) = 0.841344746, Phi(-1) = 0.158655254 */
    CHECK(close_to(out[0], -0.158655254, 1e-6) && close_to(out[2], 0.841344746, 1e-6) && close_to(out[3], 1.954499736, 1e-6), "gelu: %g %g %g", out[0], out[2], out[3]);
    run_arch("input 1 1 4\nsigmoid", x, 1, out, NULL);
    CHECK(close_to(out[1], 0.5, 1e-7) && close_to(out[2], 0.731058579, 1e-6), "sigmoid");
    run_arch("input 1 1 4\ntanh", x, 1, out, NULL);
    CHECK(close_to(out[2], 0.761594156, 1e-6), "tanh");
    run_arch("input 4 1 1\nsoftmax", x, 1, out, NULL);
    /* softmax(-1,0,1,2): e^k / sum */
    CHECK(close_to(out[3], 0.643914260, 1e-6) && close_to(out[0], 0.032058604, 1e-6), "softmax: %g %g", out[0], out[3]);
  }
  {
    lensnet_model *m = NULL;
    float x[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    if (run_arch("input 2 1 2\nbatchnorm name=bn eps=1e-30", x, 1, out, &m)) {
      /* weight, bias, running_mean, running_var for 2 channels */
      const float vals[8] = {2, 1, 0.5f, -1, 1, 3, 4, 16};
      memcpy(m->values, vals, sizeof vals);
      lensnet_model_forward(m, 1, x, out, NULL, &err);
      /* channel 0: 2 (x - 1)/2 + 0.5 ; channel 1: (x - 3)/4 - 1 */
      CHECK(out[0] == 0.5f && out[1] == 1.5f && out[2] == -1.0f && out[3] == -0.75f, "batch norm: %g %g %g %g", out[0], out[1], out[2], out[3]);
      lensnet_model_free(m);
    }
  }
  {
    lensnet_model *m = NULL;
    float x[3] = {1.0f, -2.0f, 0.5f};
    if (run_arch("input 3 1 1\nflatten\ndense name=d out=2", x, 1, out, &m)) {
      const float vals[8] = {1, 2, 3, -1, 0, 4, 0.25f, -0.5f}; /* W[2,3], b[2] */
      memcpy(m->values, vals, sizeof vals);
      lensnet_model_forward(m, 1, x, out, NULL, &err);
      CHECK(out[0] == 1 - 4 + 1.5f + 0.25f && out[1] == -1 + 2 - 0.5f, "dense: %g %g", out[0], out[1]);
      lensnet_model_free(m);
    }
  }
}

static void test_resize_and_minmax(void) {
  /* F.interpolate([[1,2],[3,4]], size=4, mode='bilinear', align_corners=False) row 0 and row 1 */
  const float src[4] = {1, 2, 3, 4};
  float dst[16], img[6] = {2, 4, 6, 5, 5, NAN};
  lensnet_resize_bilinear(src, 2, 2, dst, 4, 4);
  CHECK(dst[0] == 1.0f && dst[1] == 1.25f && dst[2] == 1.75f && dst[3] == 2.0f, "row 0: %g %g %g %g", dst[0], dst[1], dst[2], dst[3]);
  CHECK(dst[4] == 1.5f && dst[5] == 1.75f && dst[6] == 2.25f && dst[7] == 2.5f, "row 1: %g %g %g %g", dst[4], dst[5], dst[6], dst[7]);
  CHECK(lensnet_minmax_normalize(img, 2, 3) == 1, "one NaN counted");
  CHECK(img[0] == 0.0f && img[1] == 0.5f && img[2] == 1.0f, "band 0 scaled to [0,1]");
  CHECK(img[3] == 0.0f && img[4] == 0.0f && img[5] == 0.0f, "constant band and NaN become 0");
  { /* finite values whose span overflows a float: 0, 1/2 and 1, not NaN */
    float wide[3] = {-3e38f, 0.0f, 3e38f};
    CHECK(lensnet_minmax_normalize(wide, 1, 3) == 0 && wide[0] == 0.0f && wide[1] == 0.5f && wide[2] == 1.0f,
          "a span beyond a float's range: %g %g %g", wide[0], wide[1], wide[2]);
  }
  { /* 37 values (the vector lanes and a tail): min 0 (+0 at 10 comes before -0 at 20), max 9
     * at 30, a NaN at 33 and an infinity-free rest between; the result is the sequential scan's */
    float band[37];
    size_t i, bad = 0;
    for (i = 0; i < 37; i++) band[i] = 1.0f + (float)(i % 7);
    band[10] = 0.0f; band[20] = -0.0f; band[30] = 9.0f; band[33] = NAN;
    CHECK(lensnet_minmax_normalize(band, 1, 37) == 1, "one NaN in 37 counted");
    for (i = 0; i < 37; i++) {
      float want = i == 33 ? 0.0f : i == 20 ? -0.0f / 9.0f : ((i == 10 ? 0.0f : 1.0f + (float)(i % 7)) - 0.0f) / 9.0f;
      if (i == 30) want = 1.0f;
      bad += memcmp(&band[i], &want, sizeof want) != 0;
    }
    CHECK(bad == 0 && signbit(band[20]), "min-max over lanes: the first zero is the minimum (-0 - +0 = -0 at 20): %lu differ, %g",
          (unsigned long)bad, band[20]);
  }
}

static void test_edge_cases(void) {
  lensnet_error err;
  float src[1] = {5.0f}, dst[9], nan_in[2] = {NAN, -1.0f}, out2[2];
  char longline[700];
  lensnet_model *m = NULL;
  size_t i;
  for (i = 0; i < 9; i++) dst[i] = 7.0f;
  lensnet_resize_bilinear(src, 0, 5, dst, 3, 3);
  for (i = 0; i < 9 && dst[i] == 0.0f; i++) {}
  CHECK(i == 9, "a 0x5 picture resizes to zeros");
  run_arch("input 1 1 2\nrelu", nan_in, 1, out2, NULL);
  CHECK(out2[0] != out2[0] && out2[1] == 0.0f, "relu(NaN) is NaN as in PyTorch: %g %g", out2[0], out2[1]);
  memset(longline, 'x', sizeof longline);
  memcpy(longline, "input 1 4 4\nrelu ", 17);
  longline[sizeof longline - 1] = 0;
  CHECK(lensnet_model_create(longline, &m, &err) == LENSNET_ERR_ARCH && strstr(err.message, "longer"), "long line: %s", err.message);
  CHECK(lensnet_model_create("input 1 4 4\nconv2d name=c out=2 kernel=1 a=1 b=1 c=1 d=1 e=1 f=1 g=1 h=1 i=1 j=1 k=1 l=1 m=1 n=1 o=1 p=1 q=1 r=1 s=1 t=1 u=1 v=1 w=1 x=1 y=1 z=1 aa=1 bb=1 cc=1 dd=1 ee=1 ff=1", &m, &err) == LENSNET_ERR_ARCH &&
        strstr(err.message, "32 words"), "too many words: %s", err.message);
  CHECK(lensnet_model_create("input 1 1 1\nconv2d name=c out=16 kernel=2 padding=536870912\nflatten\ndense name=d out=2", &m, &err) == LENSNET_ERR_ARCH &&
        strstr(err.message, "larger than"), "an output too large to count is refused: %s", err.message);
}

static void test_random_numbers(void) {
  lensnet_rng a, b;
  double sum = 0, sq = 0;
  int i, same = 1;
  lensnet_rng_seed(&a, 42);
  lensnet_rng_seed(&b, 42);
  for (i = 0; i < 1000; i++) same &= lensnet_rng_next(&a) == lensnet_rng_next(&b);
  CHECK(same, "same seed, same stream");
  for (i = 0; i < 100000; i++) sum += lensnet_rng_uniform(&a);
  CHECK(close_to(sum / 100000, 0.5, 0.005), "uniform mean %g", sum / 100000);
  sum = 0;
  for (i = 0; i < 100000; i++) { double v = lensnet_rng_normal(&a); sum += v; sq += v * v; }
  CHECK(close_to(sum / 100000, 0.0, 0.02) && close_to(sq / 100000, 1.0, 0.02), "normal mean %g variance %g", sum / 100000, sq / 100000);
}

static void test_layer_table(void) {
  int t;
  for (t = 0; t < LENSNET_LAYER_TYPE_COUNT; t++) {
    const lensnet__layer_kind *kind = lensnet__kind((lensnet_layer_type)t);
    CHECK(kind->type == (lensnet_layer_type)t && kind->forward && kind->backward, "row %d (%s)", t, lensnet_layer_type_name((lensnet_layer_type)t));
  }
}

static void test_trainer_inference(void) {
  lensnet_error err;
  lensnet_model *m = NULL;
  lensnet_trainer *t = NULL;
  float x[3 * 2 * 8 * 8], a[3 * 3], b[3 * 3];
  lensnet_rng rng;
  size_t i;
  CHECK(lensnet_model_create("input 2 8 8\nconv2d name=c out=4 kernel=3 padding=1\nbatchnorm name=bn\nrelu\nmark name=s\n"
                             "leaky_relu\nadd name=s\nmaxpool kernel=2\ndropout p=0.4\nbatchnorm name=bn2\nsoftmax\nflatten\n"
                             "dense name=d out=3\nsigmoid", &m, &err) == LENSNET_OK, "%s", err.message);
  if (m) {
    lensnet_rng_seed(&rng, 5);
    for (i = 0; i < m->value_count; i++) m->values[i] = 0.2f + lensnet_rng_uniform(&rng);
    for (i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = lensnet_rng_normal(&rng);
    lensnet_trainer_desc td;
    memset(&td, 0, sizeof td);
    td.batch_cap = 3; td.seed = 1;
    CHECK(lensnet_trainer_create(m, &td, &t, &err) == LENSNET_OK, "%s", err.message);
    if (t) {
      lensnet_trainer_forward(t, 3, x, 0, a, &err);
      lensnet_model_forward(m, 3, x, b, NULL, &err);
      CHECK(!memcmp(a, b, sizeof a), "trainer %.9g vs forward %.9g", a[0], b[0]);
      lensnet_trainer_free(t);
    }
    lensnet_model_free(m);
  }
}

/* A tensor reallocated with its own shape array as the shape (lensnet_tensor_alloc clears the
 * tensor, so it must read the shape first). */
static void test_tensor_realloc_own_shape(void) {
  lensnet_tensor t;
  lensnet_error err;
  size_t shape[3] = {2, 3, 4};
  CHECK(lensnet_tensor_alloc(&t, 3, shape, &err) == LENSNET_OK, "%s", err.message);
  {
    lensnet_tensor u = t; /* the same shape, read from the tensor about to be filled */
    CHECK(lensnet_tensor_alloc(&t, u.ndim, u.shape, &err) == LENSNET_OK, "%s", err.message);
    CHECK(t.ndim == 3 && t.shape[0] == 2 && t.shape[1] == 3 && t.shape[2] == 4, "shape kept: %lu %lu %lu",
          (unsigned long)t.shape[0], (unsigned long)t.shape[1], (unsigned long)t.shape[2]);
    lensnet_tensor_free(&u);
  }
  {
    lensnet_tensor v, old;
    CHECK(lensnet_tensor_alloc(&v, 2, shape, &err) == LENSNET_OK, "%s", err.message);
    old = v; /* lensnet_tensor_alloc does not free what the tensor held */
    CHECK(lensnet_tensor_alloc(&v, v.ndim, v.shape, &err) == LENSNET_OK && v.shape[0] == 2 && v.shape[1] == 3 && v.data,
          "t->shape passed as the shape of t itself: %lu x %lu", (unsigned long)v.shape[0], (unsigned long)v.shape[1]);
    lensnet_tensor_free(&old);
    lensnet_tensor_free(&v);
  }
  lensnet_tensor_free(&t);
}

/* ---- receptive fields: where a layer's cells lie on the image ------------------------------- */

static int geometry_is(const lensnet_model *m, size_t layer, double offset, double stride, double size, size_t rows) {
  lensnet_map_geometry g;
  lensnet_error err;
  if (lensnet_receptive_field(m, layer, &g, &err) != LENSNET_OK) { printf("   layer %lu: %s\n", (unsigned long)layer, err.message); return 0; }
  if (g.offset == offset && g.stride == stride && g.size == size && g.rows == rows && g.cols == rows && g.image_h == m->in_h &&
      g.image_w == m->in_w) return 1;
  printf("   layer %lu: offset %g stride %g size %g, %lux%lu cells; expected %g %g %g, %lu\n", (unsigned long)layer, g.offset, g.stride,
         g.size, (unsigned long)g.rows, (unsigned long)g.cols, offset, stride, size, (unsigned long)rows);
  return 0;
}

/* The recurrence, by hand, from the architecture table of the built-ins (lensnet_arch_builtin):
 * the input has offset 0, stride 1, size 1; a window layer of kernel k, padding p, stride s sets
 *   offset += ((k - 1) / 2 - p) * stride,  size += (k - 1) * stride,  stride *= s,
 * and rows = floor((rows + 2p - k) / s) + 1. Every convolution of OU-66 and OU-200 is unpadded
 * with stride 1 and every pool is 2x2 with stride 2.
 *
 * OU-66 (66x66; layers: conv 0, pool 2, conv 4, 7, 10, 13, pool 15, conv 17, 20, 23, 26, pool 28):
 *   conv 0  k3:  offset 0 + 1*1 = 1      size 1 + 2*1 = 3    stride 1   rows 64
 *   pool 2  k2:  1 + 0.5*1 = 1.5         3 + 1*1 = 4         2          32
 *   conv 4:      1.5 + 1*2 = 3.5         4 + 2*2 = 8         2          30
 *   conv 7:      5.5                     12                  2          28
 *   conv 10:     7.5                     16                  2          26
 *   conv 13:     9.5                     20                  2          24
 *   pool 15:     9.5 + 0.5*2 = 10.5      20 + 1*2 = 22       4          12
 *   conv 17:     10.5 + 1*4 = 14.5       22 + 2*4 = 30       4          10
 *   conv 20:     18.5                    38                  4          8
 *   conv 23:     22.5                    46                  4          6
 *   conv 26:     26.5                    54                  4          4    (and its ReLU, layer 27)
 *   pool 28:     26.5 + 0.5*4 = 28.5     54 + 1*4 = 58       8          2
 * So the 4x4 cells of Grad-CAM's layer 27 are centred on pixels 26.5, 30.5, 34.5, 38.5 of 0..65,
 * i.e. -6, -2, +2, +6 pixels from the centre 32.5 (+-1.8" and +-0.6" at 0.3"/pixel), and their
 * 4-pixel blocks cover pixels 25..40, a 4.8" square of the 19.8" image.
 *
 * OU-200 (200x200; conv 0 pool 2, conv 4 pool 6, conv 8 pool 10, conv 12 pool 14, conv 16, conv 19):
 *   conv 0  k5:  0 + 2*1 = 2             1 + 4*1 = 5         1          196
 *   pool 2:      2 + 0.5*1 = 2.5         5 + 1 = 6           2          98
 *   conv 4  k5:  2.5 + 2*2 = 6.5         6 + 4*2 = 14        2          94
 *   pool 6:      6.5 + 0.5*2 = 7.5       14 + 2 = 16         4          47
 *   conv 8  k3:  7.5 + 1*4 = 11.5        16 + 2*4 = 24       4          45
 *   pool 10:     11.5 + 0.5*4 = 13.5     24 + 4 = 28         8          22   (floor: row 44 dropped)
 *   conv 12 k3:  13.5 + 1*8 = 21.5       28 + 16 = 44        8          20
 *   pool 14:     21.5 + 0.5*8 = 25.5     44 + 8 = 52         16         10
 *   conv 16 k3:  25.5 + 16 = 41.5        52 + 32 = 84        16         8
 *   conv 19 k3:  41.5 + 16 = 57.5        84 + 32 = 116       16         6    (and its ReLU, layer 20)
 * So layer 20's 6x6 cells sit at 57.5 + 16 i, i.e. -42 .. +38 pixels from the centre 99.5
 * (-4.2" .. +3.8" at 0.1"/pixel): the dropped row makes the grid 2 pixels off centre. */
static void test_receptive_field_builtins(void) {
  lensnet_model *m = NULL;
  lensnet_map_geometry g;
  lensnet_error err;
  CHECK(lensnet_model_create("ou66(4)", &m, &err) == LENSNET_OK, "%s", err.message);
  if (m) {
    CHECK(geometry_is(m, 0, 1.0, 1.0, 3.0, 64) && geometry_is(m, 1, 1.0, 1.0, 3.0, 64), "OU-66 conv 0 and its ReLU");
    CHECK(geometry_is(m, 2, 1.5, 2.0, 4.0, 32) && geometry_is(m, 3, 1.5, 2.0, 4.0, 32), "OU-66 pool 2, dropout 3");
    CHECK(geometry_is(m, 4, 3.5, 2.0, 8.0, 30) && geometry_is(m, 7, 5.5, 2.0, 12.0, 28), "OU-66 conv 4, 7");
    CHECK(geometry_is(m, 10, 7.5, 2.0, 16.0, 26) && geometry_is(m, 13, 9.5, 2.0, 20.0, 24), "OU-66 conv 10, 13");
    CHECK(geometry_is(m, 14, 9.5, 2.0, 20.0, 24), "OU-66 layer 14 (dreams' default)");
    CHECK(geometry_is(m, 15, 10.5, 4.0, 22.0, 12), "OU-66 pool 15");
    CHECK(geometry_is(m, 17, 14.5, 4.0, 30.0, 10) && geometry_is(m, 20, 18.5, 4.0, 38.0, 8) && geometry_is(m, 23, 22.5, 4.0, 46.0, 6),
          "OU-66 conv 17, 20, 23");
    CHECK(geometry_is(m, 26, 26.5, 4.0, 54.0, 4) && geometry_is(m, 27, 26.5, 4.0, 54.0, 4), "OU-66 conv 26 and layer 27 (Grad-CAM's)");
    CHECK(geometry_is(m, 28, 28.5, 8.0, 58.0, 2) && geometry_is(m, 29, 28.5, 8.0, 58.0, 2), "OU-66 pool 28, dropout 29");
    CHECK(lensnet_receptive_field(m, 30, &g, &err) == LENSNET_ERR_ARG && strstr(err.message, "flatten") && g.rows == 0,
          "flatten mixes every position: %s", err.message);
    CHECK(lensnet_receptive_field(m, 33, &g, &err) == LENSNET_ERR_ARG && strstr(err.message, "layer 30 (flatten)"), "%s", err.message);
    CHECK(lensnet_receptive_field(m, 34, &g, &err) == LENSNET_ERR_ARG && strstr(err.message, "0..33"), "%s", err.message);
    lensnet_model_free(m);
  }
  CHECK(lensnet_model_create("ou200(4)", &m, &err) == LENSNET_OK, "%s", err.message);
  if (m) {
    CHECK(geometry_is(m, 0, 2.0, 1.0, 5.0, 196) && geometry_is(m, 2, 2.5, 2.0, 6.0, 98), "OU-200 conv 0, pool 2");
    CHECK(geometry_is(m, 4, 6.5, 2.0, 14.0, 94) && geometry_is(m, 6, 7.5, 4.0, 16.0, 47), "OU-200 conv 4, pool 6");
    CHECK(geometry_is(m, 8, 11.5, 4.0, 24.0, 45) && geometry_is(m, 9, 11.5, 4.0, 24.0, 45), "OU-200 conv 8 and layer 9 (dreams')");
    CHECK(geometry_is(m, 10, 13.5, 8.0, 28.0, 22), "OU-200 pool 10 (floor)");
    CHECK(geometry_is(m, 12, 21.5, 8.0, 44.0, 20) && geometry_is(m, 14, 25.5, 16.0, 52.0, 10), "OU-200 conv 12, pool 14");
    CHECK(geometry_is(m, 16, 41.5, 16.0, 84.0, 8) && geometry_is(m, 19, 57.5, 16.0, 116.0, 6), "OU-200 conv 16, 19");
    CHECK(geometry_is(m, 20, 57.5, 16.0, 116.0, 6) && geometry_is(m, 21, 57.5, 16.0, 116.0, 6), "OU-200 layer 20 (Grad-CAM's), 21");
    lensnet_model_free(m);
  }
}

/* A small model with what the built-ins lack: a strided and padded convolution, a residual
 * branch, a padded average pool, an even kernel. By hand (9x9 input):
 *   0 conv k3 s2 p1:  offset 0 + (1 - 1)*1 = 0     size 3            stride 2   rows (9+2-3)/2+1 = 5
 *   2 mark:           (0, 2, 3)
 *   3 conv k3 p1:     0 + (1 - 1)*2 = 0            3 + 2*2 = 7       2          5
 *   4 add:            branches (0, 2, 3) and (0, 2, 7) agree: size 7
 *   5 avgpool k3 p1:  0                            7 + 2*2 = 11      2          5
 *   6 conv k2:        0 + 0.5*2 = 1                11 + 1*2 = 13     2          4
 * and the same from the forward pass alone: nudging one input pixel changes exactly the cells
 * whose window (clipped to the image) holds it. */
static void test_receptive_field_small(void) {
  const char *arch = "input 1 9 9\nconv2d name=a out=2 kernel=3 stride=2 padding=1\ntanh\nmark name=s\n"
                     "conv2d name=b out=2 kernel=3 padding=1\nadd name=s\navgpool kernel=3 stride=1 padding=1\n";
  char text[512];
  lensnet_model *m = NULL;
  lensnet_map_geometry g;
  lensnet_error err;
  lensnet_rng rng;
  size_t i;
  CHECK(lensnet_model_create(arch, &m, &err) == LENSNET_OK, "%s", err.message);
  if (m) {
    CHECK(geometry_is(m, 0, 0.0, 2.0, 3.0, 5) && geometry_is(m, 2, 0.0, 2.0, 3.0, 5), "strided padded conv, mark");
    CHECK(geometry_is(m, 3, 0.0, 2.0, 7.0, 5) && geometry_is(m, 4, 0.0, 2.0, 7.0, 5), "branch and add: the larger size");
    CHECK(geometry_is(m, 5, 0.0, 2.0, 11.0, 5), "padded average pool");
    {
      /* rows of the input whose nudge changes output cell (r, 0), channel 0 */
      float x[81], base[50], out[50];
      long lo[5], hi[5];
      size_t p, r;
      int agree = 1;
      lensnet_rng_seed(&rng, 3);
      for (i = 0; i < m->value_count; i++) m->values[i] = 0.05f + 0.05f * lensnet_rng_uniform(&rng);
      memset(x, 0, sizeof x);
      lensnet_model_forward(m, 1, x, base, NULL, &err);
      for (r = 0; r < 5; r++) { lo[r] = 99; hi[r] = -1; }
      for (p = 0; p < 81; p++) {
        x[p] = 1.0f;
        lensnet_model_forward(m, 1, x, out, NULL, &err);
        x[p] = 0.0f;
        for (r = 0; r < 5; r++)
          if (out[r * 5] != base[r * 5]) {
            if ((long)(p / 9) < lo[r]) lo[r] = (long)(p / 9);
            if ((long)(p / 9) > hi[r]) hi[r] = (long)(p / 9);
          }
      }
      for (r = 0; r < 5; r++) { /* centre 2r, half-width (11 - 1) / 2 = 5, clipped to rows 0..8 */
        long c = 2 * (long)r, want_lo = c - 5 < 0 ? 0 : c - 5, want_hi = c + 5 > 8 ? 8 : c + 5;
        if (lo[r] != want_lo || hi[r] != want_hi) {
          agree = 0;
          printf("   cell row %lu: input rows %ld..%ld change it, the window says %ld..%ld\n", (unsigned long)r, lo[r], hi[r], want_lo, want_hi);
        }
      }
      CHECK(agree, "the forward pass depends on the input rows the receptive field names");
    }
    lensnet_model_free(m);
  }
  snprintf(text, sizeof text, "%sconv2d name=c out=1 kernel=2\nglobal_avgpool\nflatten\ndense name=d out=2\n", arch);
  CHECK(lensnet_model_create(text, &m, &err) == LENSNET_OK, "%s", err.message);
  if (m) {
    CHECK(geometry_is(m, 6, 1.0, 2.0, 13.0, 4), "even kernel: half a step");
    CHECK(lensnet_receptive_field(m, 7, &g, &err) == LENSNET_ERR_ARG && strstr(err.message, "global_avgpool"), "%s", err.message);
    lensnet_model_free(m);
  }
  /* a projected shortcut (ResNet's downsample): restore starts the branch where its mark is */
  CHECK(lensnet_model_create("input 1 9 9\nmark name=a\nconv2d name=c out=2 kernel=3 stride=2 padding=1\nmark name=b\nrestore name=a\n"
                             "conv2d name=p out=2 kernel=1 stride=2\nadd name=b\n", &m, &err) == LENSNET_OK, "%s", err.message);
  if (m) {
    CHECK(m->layers[3].out_c == 1 && m->layers[3].out_h == 9, "restore gives the marked shape");
    CHECK(geometry_is(m, 1, 0.0, 2.0, 3.0, 5) && geometry_is(m, 3, 0.0, 1.0, 1.0, 9) && geometry_is(m, 4, 0.0, 2.0, 1.0, 5) &&
          geometry_is(m, 5, 0.0, 2.0, 3.0, 5), "main path, restore, projection, add");
    lensnet_model_free(m);
  }
  /* a branch that moves the grid: the strided padded convolution shifts it by half a pixel */
  CHECK(lensnet_model_create("input 1 2 2\nmark name=s\nconv2d name=a out=1 kernel=2 stride=2 padding=1\nadd name=s\n", &m, &err) == LENSNET_OK,
        "%s", err.message);
  if (m) {
    CHECK(lensnet_receptive_field(m, 2, &g, &err) == LENSNET_ERR_UNSUPPORTED && strstr(err.message, "add s"), "%s", err.message);
    lensnet_model_free(m);
  }
}

static void test_result_strings(void) {
  int r;
  for (r = -1; r <= LENSNET_RESULT_COUNT; r++) CHECK(lensnet_result_string((lensnet_result)r) != NULL, "result %d", r);
}

/* He initialisation: weights uniform in +-sqrt(6/fan_in), so variance 2/fan_in (the uniform on
 * [-b, b] has variance b^2/3); biases zero; the same seed gives the same weights. */
static void test_init_he(void) {
  lensnet_model *m = NULL, *m2 = NULL;
  lensnet_error err;
  const lensnet_param *w, *b;
  double sum2 = 0.0, bound, var;
  size_t k, fan_in;
  int inside = 1, zero = 1;
  if (lensnet_model_create("input 8 10 10\nconv2d name=c out=64 kernel=5\nrelu\nflatten\ndense name=d out=3\n", &m, &err) != LENSNET_OK ||
      lensnet_model_create("input 8 10 10\nconv2d name=c out=64 kernel=5\nrelu\nflatten\ndense name=d out=3\n", &m2, &err) != LENSNET_OK) {
    CHECK(0, "create: %s", err.message);
    return;
  }
  lensnet_model_init_he(m, 11);
  lensnet_model_init_he(m2, 11);
  w = lensnet_model_param(m, "c.weight");
  b = lensnet_model_param(m, "c.bias");
  fan_in = 8 * 5 * 5;
  bound = sqrt(6.0 / fan_in);
  for (k = 0; k < w->count; k++) {
    double v = m->values[w->offset + k];
    sum2 += v * v;
    inside &= fabs(v) <= bound;
  }
  for (k = 0; k < b->count; k++) zero &= m->values[b->offset + k] == 0.0f;
  var = sum2 / w->count;
  CHECK(inside, "every weight within +-sqrt(6/fan_in) = %.4f", bound);
  /* 12800 draws: the sample variance has a relative standard error of sqrt(0.8/12800) = 0.8 % */
  CHECK(fabs(var / (2.0 / fan_in) - 1) < 0.04, "variance %.5f, 2/fan_in = %.5f", var, 2.0 / fan_in);
  CHECK(zero, "biases zero");
  CHECK(!memcmp(m->values, m2->values, m->value_count * sizeof(float)), "same seed, same weights");
  lensnet_model_free(m);
  lensnet_model_free(m2);
}

/* lensnet_logits_average by hand: softmax rows [0, 0] and [ln 3, 0] are (1/2, 1/2) and (3/4, 1/4),
 * mean (5/8, 3/8); sigmoids of 0 and ln 3 are 1/2 and 3/4, mean 5/8, logit ln(5/3); a class no
 * row gives a chance is floored at ln FLT_MIN; 20 equal logits give ln(1/20) each; NaN stays. */
static void test_logits_average(void) {
  float two[4] = {0.0f, 0.0f, (float)log(3.0), 0.0f}, out[20], one[2] = {0.0f, (float)log(3.0)}, wide[40], gone[4] = {0.0f, -1e30f, 0.0f, -1e30f};
  float bad[4] = {NAN, 0.0f, 0.0f, 0.0f};
  size_t j, right = 0;
  lensnet_logits_average(two, 2, 2, out);
  CHECK(fabs(out[0] - log(0.625)) < 1e-6 && fabs(out[1] - log(0.375)) < 1e-6, "softmax mean: %g %g", out[0], out[1]);
  lensnet_logits_average(two, 2, 2, two); /* in place, into the first row */
  CHECK(fabs(two[0] - log(0.625)) < 1e-6 && fabs(two[1] - log(0.375)) < 1e-6, "in place: %g %g", two[0], two[1]);
  lensnet_logits_average(one, 2, 1, out);
  CHECK(fabs(out[0] - log(5.0 / 3.0)) < 1e-6, "sigmoid mean: %g", out[0]);
  { /* a confident sigmoid keeps its logit: 1 - p averaged apart from p (1 - p ~ e^-45, below a double's spacing at 1) */
    float sure[2] = {45.0f, 45.0f}, mixed[2] = {45.0f, 43.0f};
    lensnet_logits_average(sure, 2, 1, out);
    CHECK(fabs(out[0] - 45.0) < 1e-4, "two views at 45: %g", out[0]);
    lensnet_logits_average(mixed, 2, 1, out);
    CHECK(fabs(out[0] - -log((exp(-45.0) + exp(-43.0)) / 2)) < 1e-4, "views at 45 and 43: %g (want %g)", out[0], -log((exp(-45.0) + exp(-43.0)) / 2));
  }
  lensnet_logits_average(gone, 2, 2, out);
  CHECK(fabs(out[0]) < 1e-7 && out[1] == (float)log((double)FLT_MIN), "a class without a chance: %g %g", out[0], out[1]);
  for (j = 0; j < 40; j++) wide[j] = j < 20 ? 1.5f : -2.0f;
  lensnet_logits_average(wide, 2, 20, out);
  for (j = 0; j < 20; j++) right += fabs(out[j] - log(1.0 / 20.0)) < 1e-6;
  CHECK(right == 20, "20 outputs: %lu of 20 at ln(1/20)", (unsigned long)right);
  lensnet_logits_average(bad, 2, 2, out);
  CHECK(out[0] != out[0] && out[1] != out[1], "NaN propagates: %g %g", out[0], out[1]);
}

/* lensnet_model_forward_packed gives lensnet_model_forward's outputs bit for bit (padding,
 * stride, groups, a 1 x 1 convolution, a batch of 3); packed weights are a snapshot; packs of
 * another model are refused. */
static void test_forward_packed(void) {
  const char *arch = "input 3 11 13\nconv2d name=a out=12 kernel=3 padding=1\nrelu\nconv2d name=b out=6 kernel=3 stride=2 groups=2\n"
                     "maxpool kernel=2\nconv2d name=c out=5 kernel=1\nflatten\ndense name=d out=3";
  lensnet_model *m = NULL, *other = NULL;
  lensnet_packed *pk = NULL;
  lensnet_error err;
  lensnet_rng rng;
  float x[3 * 3 * 11 * 13], plain[9], packed[9], before[9];
  size_t i;
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK || lensnet_model_create(arch, &other, &err) != LENSNET_OK) {
    CHECK(0, "models: %s", err.message);
    return;
  }
  lensnet_model_init(m, 5);
  lensnet_model_init(other, 6);
  lensnet_rng_seed(&rng, 8);
  for (i = 0; i < sizeof x / sizeof *x; i++) x[i] = lensnet_rng_normal(&rng);
  CHECK(lensnet_model_pack(m, &pk, &err) == LENSNET_OK, "pack: %s", err.message);
  CHECK(lensnet_model_forward(m, 3, x, plain, NULL, &err) == LENSNET_OK &&
            lensnet_model_forward_packed(m, pk, 3, x, packed, NULL, &err) == LENSNET_OK && !memcmp(plain, packed, sizeof plain),
        "packed and unpacked forward passes agree bit for bit");
  CHECK(lensnet_model_forward_packed(m, NULL, 3, x, packed, NULL, &err) == LENSNET_OK && !memcmp(plain, packed, sizeof plain),
        "no pack: the plain forward pass");
  memcpy(before, plain, sizeof before);
  lensnet_model_init(m, 9); /* new weights: the pack still holds the old convolutions */
  lensnet_model_forward(m, 3, x, plain, NULL, &err);
  lensnet_model_forward_packed(m, pk, 3, x, packed, NULL, &err);
  CHECK(memcmp(plain, packed, sizeof plain) != 0 && memcmp(before, packed, sizeof plain) != 0, "a pack is a snapshot of the weights it was made from");
  lensnet_packed_free(pk);
  lensnet_model_pack(m, &pk, &err);
  lensnet_model_forward_packed(m, pk, 3, x, packed, NULL, &err);
  CHECK(!memcmp(plain, packed, sizeof plain), "packed again: agrees again");
  CHECK(lensnet_model_forward_packed(other, pk, 3, x, packed, NULL, &err) == LENSNET_ERR_ARG && strstr(err.message, "another model"),
        "another model's pack refused: %s", err.message);
  lensnet_packed_free(pk);
  lensnet_packed_free(NULL);
  lensnet_model_free(m);
  lensnet_model_free(other);
}

/* lensnet_model_pack and lensnet_model_pack_winograd with each of their allocations refused in
 * turn: every one is needed, so each gives LENSNET_ERR_NOMEM and no pack, with nothing freed that
 * was not allocated and nothing leaked (the sanitizer build checks both); then a pack is made
 * again and agrees with the plain forward pass. */
static void test_pack_out_of_memory(void) {
  const char *arch = "input 3 11 13\nconv2d name=a out=12 kernel=3 padding=1\nrelu\nconv2d name=b out=6 kernel=3 stride=2 groups=2\n"
                     "maxpool kernel=2\nconv2d name=c out=5 kernel=1\nflatten\ndense name=d out=3";
  lensnet_model *m = NULL;
  lensnet_packed *pk = NULL;
  lensnet_error err;
  float x[3 * 11 * 13], plain[3], packed[3];
  int winograd;
  size_t i;
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) {
    CHECK(0, "model: %s", err.message);
    return;
  }
  lensnet_model_init(m, 3);
  for (i = 0; i < sizeof x / sizeof *x; i++) x[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
  for (winograd = 0; winograd < 2; winograd++) {
    const char *name = winograd ? "lensnet_model_pack_winograd" : "lensnet_model_pack";
    long calls, k, refused = 0;
    int all_refused = 1;
    lensnet_result rc;
    alloc_calls = 0;
    rc = winograd ? lensnet_model_pack_winograd(m, &pk, &err) : lensnet_model_pack(m, &pk, &err);
    calls = alloc_calls;
    lensnet_packed_free(pk);
    CHECK(rc == LENSNET_OK && calls >= 6, "%s: %ld allocations (a pack, three tables and one per convolution)", name, calls);
    for (k = 1; k <= calls; k++) {
      pk = NULL;
      alloc_fail_in = k;
      rc = winograd ? lensnet_model_pack_winograd(m, &pk, &err) : lensnet_model_pack(m, &pk, &err);
      alloc_fail_in = 0;
      if (rc == LENSNET_ERR_NOMEM && pk == NULL && (strstr(err.message, "out of memory") || strstr(err.message, "cannot allocate")))
        refused++;
      else
        all_refused = 0;
      lensnet_packed_free(pk);
    }
    CHECK(all_refused && refused == calls, "%s: each of its %ld allocations refused in turn gives LENSNET_ERR_NOMEM and no pack (%ld did)",
          name, calls, refused);
    rc = winograd ? lensnet_model_pack_winograd(m, &pk, &err) : lensnet_model_pack(m, &pk, &err);
    CHECK(rc == LENSNET_OK && lensnet_model_forward(m, 1, x, plain, NULL, &err) == LENSNET_OK &&
              lensnet_model_forward_packed(m, pk, 1, x, packed, NULL, &err) == LENSNET_OK &&
              (winograd || !memcmp(plain, packed, sizeof plain)) && fabsf(plain[0] - packed[0]) <= 1e-5f * (1.0f + fabsf(plain[0])),
          "%s: packed again afterwards, its forward pass agrees with the plain one", name);
    lensnet_packed_free(pk);
    pk = NULL;
  }
  lensnet_model_free(m);
}

/* Winograd's F(2x2, 3x3), F(4x4, 3x3) and F(2x2, 5x5) (lensnet__wino_conv_avx512: the 3x3 and 5x5
 * layers of lensnet_model_pack_winograd, and a trainer's 3x3 layers, wino4x4, F(4x4, 3x3) where
 * they have 16 tiles of 4 x 4) against sums in double on random geometries, 40 of each kernel,
 * each 3x3 one both ways: 1-45 pixels a side (one to three 16-tile blocks per tile row, two tile
 * rows a vector for F(4x4, 3x3) with 8 tiles a row or fewer, one or several bands, odd and even
 * sizes; one 90 wide, one with 32 outputs a row, one with 3, one of a single tile row), 1-60 input channels (5x5: 8-60) and 1-23 output channels, padding 0-2,
 * with and without bias and ReLU, a quarter of them (and OU-200's second layer) pooled 2 x 2 in
 * the output transform, as inference pools a wide layer on the way. Each output within 4e-6 of the
 * largest sum of |weight x input| over a window among the outputs of its tile (the transforms mix
 * all of a tile's inputs, so an output whose own window is nearly empty, at a corner with padding
 * 2, carries the rounding of its neighbours') for F(2x2, 3x3)'s 4 x 4 transforms, and 1e-5 for the
 * 6 x 6 ones of F(4x4, 3x3) and F(2x2, 5x5), whose coefficients are larger (float rounding of the
 * transforms and products, measured here up to 2e-7 of it for F(2x2, 3x3) and 2e-6 for F(4x4, 3x3),
 * 4.2e-6 at worst over 13,000 F(4x4, 3x3) geometries checked once;
 * a wrong tile, lane or transform coefficient is off by a whole term, 0.01 or more), nothing
 * written past the output, the scratch exactly lensnet__wino_scratch_floats (the sanitizer build
 * checks the reads and writes). */
static void test_winograd_layer(void) {
#ifdef LENSNET__HAVE_AVX512
  lensnet_rng rng;
  size_t trial, worst_trial = 0, worst4_trial = 0;
  double worst = 0.0, worst4 = 0.0;
  int bad = 0;
  if (!lensnet_simd_available(LENSNET_SIMD_AVX512)) { printf("   SKIP: AVX-512 is not available here\n"); return; }
  lensnet_rng_seed(&rng, 41);
  for (trial = 0; trial < 80 && !bad; trial++) {
    lensnet__conv_geom g;
    size_t nin, nw, nout, nref, i, co, y, x, c, ky, kx;
    float *in, *w, *b, *out, *scratch, *U, *Ua;
    double *ref, *mag;
    int four;
    int relu = (int)(trial % 2), with_bias = trial % 3 != 0, pool = trial % 4 == 3 || trial == 40;
    memset(&g, 0, sizeof g);
    size_t k = trial < 40 ? 3 : 5;
    g.n = 1; g.kh = g.kw = k; g.stride = 1; g.groups = 1;
    g.pad = trial % 3;
    g.h = 1 + (size_t)(45.0f * lensnet_rng_uniform(&rng));
    g.w = 1 + (size_t)(45.0f * lensnet_rng_uniform(&rng));
    if (g.h + 2 * g.pad < k) g.h = k - 2 * g.pad;
    if (g.w + 2 * g.pad < k) g.w = k - 2 * g.pad;
    g.cin = (k == 5 ? 8 : 1) + (size_t)(53.0f * lensnet_rng_uniform(&rng));
    g.cout = 1 + (size_t)(23.0f * lensnet_rng_uniform(&rng));
    if (trial == 0) { g.h = 32; g.w = 32; g.pad = 0; g.cin = 50; g.cout = 50; }  /* OU-66's second layer */
    if (trial == 1) { g.h = 47; g.w = 47; g.pad = 0; g.cin = 40; g.cout = 30; }  /* OU-200's third: 23 tiles a row */
    if (trial == 2) { g.h = 20; g.w = 90; }                                         /* 22 tiles of 4 x 4 a row */
    if (trial == 4) { g.h = 18; g.w = 32; }    /* padding 1: 32 outputs a row, 8 tiles of 4 x 4 reading to column 33 */
    if (trial == 5) { g.h = 64; g.w = 1; }     /* padding 2: 3 outputs a row, one tile of 4 x 4 a row, 16 rows of them */
    if (trial == 6) { g.h = 6; g.w = 66; g.pad = 0; } /* one tile row of exactly 16 tiles of 4 x 4 */
    if (trial == 40) { g.h = 98; g.w = 98; g.pad = 0; g.cin = 50; g.cout = 40; } /* OU-200's second, 5x5: 47 tiles a row */
    g.oh = g.h + 2 * g.pad - (k - 1); g.ow = g.w + 2 * g.pad - (k - 1);
    nin = g.cin * g.h * g.w; nw = g.cout * g.cin * k * k; nref = g.cout * g.oh * g.ow;
    nout = pool ? g.cout * (g.oh / 2) * (g.ow / 2) : nref;
    ref = (double *)malloc(nref * sizeof(double)); mag = (double *)malloc(nref * sizeof(double));
    in = (float *)malloc(nin * sizeof(float)); w = (float *)malloc(nw * sizeof(float)); b = (float *)malloc(g.cout * sizeof(float));
    out = (float *)malloc((nout + 16) * sizeof(float));
    for (i = 0; i < nin; i++) in[i] = 2.0f * lensnet_rng_uniform(&rng) - 0.5f;
    for (i = 0; i < nw; i++) w[i] = lensnet_rng_normal(&rng) * 0.3f;
    for (i = 0; i < g.cout; i++) b[i] = lensnet_rng_normal(&rng);
    CHECK(lensnet__wino_ok(&g) == (g.cin >= 8 && ((g.oh + 1) / 2) * ((g.ow + 1) / 2) >= 16), "trial %lu: Winograd's path for %lu input "
          "channels, %lux%lu out: %d", (unsigned long)trial, (unsigned long)g.cin, (unsigned long)g.oh, (unsigned long)g.ow,
          lensnet__wino_ok(&g)); /* it computes any; it pays from 8 channels and 16 tiles */
    for (co = 0; co < g.cout && !bad; co++)
      for (y = 0; y < g.oh; y++)
        for (x = 0; x < g.ow; x++) {
          double sum = with_bias ? b[co] : 0.0, sm = with_bias ? fabs(b[co]) : 0.0;
          for (c = 0; c < g.cin; c++)
            for (ky = 0; ky < k; ky++)
              for (kx = 0; kx < k; kx++) {
                long iy = (long)(y + ky) - (long)g.pad, ix = (long)(x + kx) - (long)g.pad;
                double v, wk = w[((co * g.cin + c) * k + ky) * k + kx];
                if (iy < 0 || ix < 0 || iy >= (long)g.h || ix >= (long)g.w) continue;
                v = in[(c * g.h + (size_t)iy) * g.w + (size_t)ix];
                sum += wk * v; sm += fabs(wk * v);
              }
          if (relu && sum < 0.0) sum = 0.0;
          ref[(co * g.oh + y) * g.ow + x] = sum;
          mag[(co * g.oh + y) * g.ow + x] = sm;
        }
    for (four = 0; four < (k == 3 ? 2 : 1) && !bad; four++) {
    double run = 0.0, *wst;
    size_t *wtr;
    g.wino4x4 = four;
    wst = lensnet__wino_m(&g) == 4 ? &worst4 : &worst; /* a geometry with too few tiles of 4 x 4 takes F(2x2, 3x3) */
    wtr = lensnet__wino_m(&g) == 4 ? &worst4_trial : &worst_trial;
    scratch = (float *)malloc(lensnet__wino_scratch_floats(&g) * sizeof(float));
    U = (float *)malloc(lensnet__wino_weight_floats(&g) * sizeof(float));
    Ua = (float *)lensnet__align64(U);
    for (i = 0; i < nout + 16; i++) out[i] = 12345.0f;
    lensnet__wino_weights(&g, w, Ua);
    lensnet__wino_conv_avx512(&g, in, Ua, with_bias ? b : NULL, relu, pool, out, scratch);
    for (i = 0; i < 16; i++) bad |= out[nout + i] != 12345.0f;
    if (bad) printf("   trial %lu (%s): written past the output\n", (unsigned long)trial, lensnet__wino_m(&g) == 4 ? "F(4x4, 3x3)" : "F(2x2)");
    for (co = 0; co < g.cout && !bad; co++) /* each output, or each 2 x 2 window's largest (pool) */
      for (y = 0; y < (pool ? g.oh / 2 : g.oh); y++)
        for (x = 0; x < (pool ? g.ow / 2 : g.ow); x++) {
          size_t tm = lensnet__wino_m(&g), oy = pool ? 2 * y : y, ox = pool ? 2 * x : x, ty0 = oy - oy % tm, tx0 = ox - ox % tm, a, bb;
          double want, scale = 0.0, e;
          for (a = ty0; a < ty0 + tm && a < g.oh; a++) /* the largest window sum of the output's tile: the transforms mix the tile's inputs */
            for (bb = tx0; bb < tx0 + tm && bb < g.ow; bb++) scale = fmax(scale, mag[(co * g.oh + a) * g.ow + bb]);
          if (pool) {
            size_t at = (co * g.oh + 2 * y) * g.ow + 2 * x;
            want = fmax(fmax(ref[at], ref[at + 1]), fmax(ref[at + g.ow], ref[at + g.ow + 1]));
            e = fabs(out[(co * (g.oh / 2) + y) * (g.ow / 2) + x] - want) / (scale + 1e-30);
          } else
            e = fabs(out[(co * g.oh + y) * g.ow + x] - ref[(co * g.oh + y) * g.ow + x]) / (scale + 1e-30);
          if (e > run) run = e;
        }
    if (run > *wst) { *wst = run; *wtr = trial; }
    if (run > (lensnet__wino_alpha(&g) == 4 ? 4e-6 : 1e-5) && !bad) {
      bad = 1;
      printf("   trial %lu (%s): %lux%lu kernel %lu pad %lu, %lu -> %lu channels: error %.3g of the tile's largest |w x| sum\n", (unsigned long)trial,
             lensnet__wino_m(&g) == 4 ? "F(4x4, 3x3)" : "F(2x2)", (unsigned long)g.h, (unsigned long)g.w, (unsigned long)k,
             (unsigned long)g.pad, (unsigned long)g.cin, (unsigned long)g.cout, run);
    }
    free(scratch); free(U);
    }
    if (trial == 39) {
      printf("   3x3 by F(2x2, 3x3): largest error %.3g of the tile's largest window sum of |w x| (trial %lu)\n", worst, (unsigned long)worst_trial);
      printf("   3x3 by F(4x4, 3x3) where it applies: largest error %.3g (trial %lu)\n", worst4, (unsigned long)worst4_trial);
      worst = 0.0;
    }
    free(in); free(w); free(b); free(out); free(ref); free(mag);
  }
  printf("   5x5: largest error %.3g of the tile's largest window sum of |w x| (trial %lu)\n", worst, (unsigned long)worst_trial);
  CHECK(!bad, "Winograd's outputs agree with sums in double on 80 geometries (the 3x3 ones by both tile sizes)");
#endif
}

/* lensnet_model_pack_winograd: the 3x3 and 5x5 stride-1 convolutions without groups with 8 input
 * channels or more take Winograd's path on AVX-512 (others keep their panels), pooled on the way in
 * its output transform where inference pools so, batches agree with lensnet_model_forward to
 * rounding, and without AVX-512 the pack is lensnet_model_pack's (the same bits). */
static void test_forward_winograd(void) {
  const char *arch = "input 3 37 41\nconv2d name=a out=12 kernel=3 padding=1\nrelu\nconv2d name=b out=23 kernel=3\n"
                     "conv2d name=c out=7 kernel=3 padding=1\nrelu\nmaxpool kernel=2\nconv2d name=d out=8 kernel=3 stride=2\n"
                     "conv2d name=e out=6 kernel=3 groups=2\nconv2d name=f out=5 kernel=1\nflatten\ndense name=g out=3";
  static const unsigned char expect[] = {0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0}; /* a: 3 input channels, too few */
  lensnet_model *m = NULL;
  lensnet_packed *pk = NULL;
  lensnet_error err;
  lensnet_rng rng;
  float x[3 * 3 * 37 * 41], plain[9], fast[9];
  size_t i, wino = 0, right = 0;
  double d = 0.0, scale = 1.0;
  int avx512 = lensnet_simd_best() == LENSNET_SIMD_AVX512;
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { CHECK(0, "model: %s", err.message); return; }
  lensnet_model_init(m, 5);
  lensnet_rng_seed(&rng, 8);
  for (i = 0; i < sizeof x / sizeof *x; i++) x[i] = lensnet_rng_normal(&rng);
  CHECK(lensnet_model_pack_winograd(m, &pk, &err) == LENSNET_OK, "pack_winograd: %s", err.message);
  if (!pk) { lensnet_model_free(m); return; }
  CHECK(m->layer_count == sizeof expect, "%lu layers", (unsigned long)m->layer_count);
  for (i = 0; i < m->layer_count && i < sizeof expect; i++) {
    wino += pk->wino[i];
    right += pk->wino[i] == (avx512 ? expect[i] : 0);
  }
  CHECK(right == m->layer_count, "Winograd's layers: %lu of %lu as expected (%lu Winograd; AVX-512 %d)", (unsigned long)right,
        (unsigned long)m->layer_count, (unsigned long)wino, avx512);
  CHECK(lensnet_model_forward(m, 3, x, plain, NULL, &err) == LENSNET_OK &&
            lensnet_model_forward_packed(m, pk, 3, x, fast, NULL, &err) == LENSNET_OK, "forward: %s", err.message);
  for (i = 0; i < 9; i++) {
    if (fabs(fast[i] - plain[i]) > d) d = fabs(fast[i] - plain[i]);
    if (fabs(plain[i]) > scale) scale = fabs(plain[i]);
  }
  printf("   max |Winograd - direct| = %.3g (outputs up to %.3g)\n", d, scale);
  if (avx512) CHECK(d <= 1e-5 * scale, "Winograd's outputs within 1e-5 of the direct sums' (%g)", d);
  else CHECK(!memcmp(plain, fast, sizeof plain), "no AVX-512: the plain pack, the same bits");
  lensnet_packed_free(pk);
  lensnet_model_free(m);
  /* a layer that inference pools on the way (rows of 64 and more, ReLU and a 2x2 pool after it)
   * is Winograd's, pooled in its output transform; a 5x5 layer too, unless it has fewer than 8
   * input channels */
  m = NULL; pk = NULL;
  if (lensnet_model_create("input 3 9 68\nconv2d name=a out=12 kernel=5 padding=1\nrelu\nconv2d name=b out=9 kernel=3 padding=1\nrelu\n"
                           "maxpool kernel=2\nconv2d name=c out=4 kernel=5 padding=2\nflatten\ndense name=d out=2", &m, &err) != LENSNET_OK) {
    CHECK(0, "model: %s", err.message);
    return;
  }
  lensnet_model_init(m, 6);
  {
    float x2[2 * 3 * 9 * 68], p2[4], f2[4];
    double d2 = 0.0, s2 = 1.0;
    for (i = 0; i < sizeof x2 / sizeof *x2; i++) x2[i] = lensnet_rng_normal(&rng);
    CHECK(lensnet_model_pack_winograd(m, &pk, &err) == LENSNET_OK && pk, "pack_winograd: %s", err.message);
    if (pk) {
      CHECK(avx512 ? !pk->wino[0] && pk->wino[2] && pk->wino[5] : !pk->wino[0] && !pk->wino[2] && !pk->wino[5],
            "a: 3 input channels, direct; b (pooled on the way) and c (5x5, 9 channels): Winograd's (AVX-512 %d)", avx512);
      CHECK(lensnet_model_forward(m, 2, x2, p2, NULL, &err) == LENSNET_OK && lensnet_model_forward_packed(m, pk, 2, x2, f2, NULL, &err) == LENSNET_OK,
            "forward: %s", err.message);
      for (i = 0; i < 4; i++) {
        if (fabs(f2[i] - p2[i]) > d2) d2 = fabs(f2[i] - p2[i]);
        if (fabs(p2[i]) > s2) s2 = fabs(p2[i]);
      }
      printf("   pooled and 5x5: max |Winograd - direct| = %.3g (outputs up to %.3g)\n", d2, s2);
      CHECK(avx512 ? d2 <= 1e-5 * s2 : !memcmp(p2, f2, sizeof p2), "pooled on the way and 5x5: the direct sums' outputs to rounding (%g)", d2);
    }
  }
  lensnet_packed_free(pk);
  lensnet_model_free(m);
}

static void observe_nothing(void *ctx, size_t layer, const float *x, size_t n) { (void)ctx; (void)layer; (void)x; (void)n; }

/* A convolution 64 or more wide followed by ReLU and a 2x2 max pool is pooled on the way at
 * inference, band by band; the outputs equal those of the layers run one by one (an observer
 * turns every fusion off) bit for bit: padding, groups, stride 2, an odd number of rows (the last
 * not pooled), a last band shorter than the others, and NaN inputs. */
static void test_pooled_on_the_way(void) {
  static const char *const archs[2] = {
      "input 4 25 70\nconv2d name=a out=6 kernel=3 padding=1 groups=2\nrelu\nmaxpool kernel=2\nflatten\ndense name=d out=3",
      "input 3 27 141\nconv2d name=a out=5 kernel=5 stride=2\nrelu\nmaxpool kernel=2 stride=2\nconv2d name=b out=4 kernel=3\nflatten\ndense name=d out=2"};
  int k;
  for (k = 0; k < 2; k++) {
    lensnet_model *m = NULL;
    lensnet_error err;
    lensnet_rng rng;
    float *x, fused[6], plain[6];
    size_t i, n, per;
    if (lensnet_model_create(archs[k], &m, &err) != LENSNET_OK) { CHECK(0, "model %d: %s", k, err.message); continue; }
    lensnet_model_init(m, 11 + (uint64_t)k);
    per = m->in_c * m->in_h * m->in_w;
    n = 2;
    x = (float *)malloc(n * per * sizeof(float));
    lensnet_rng_seed(&rng, 4);
    for (i = 0; i < n * per; i++) x[i] = lensnet_rng_normal(&rng);
    x[per + 7 * m->in_w + 30] = NAN; /* image 1 */
    CHECK(lensnet__conv_pool_band_floats(m, 0) > 0, "model %d: the first convolution is pooled on the way", k);
    CHECK(lensnet_model_forward(m, n, x, fused, NULL, &err) == LENSNET_OK &&
              lensnet__model_forward(m, n, x, plain, NULL, 0, 0, observe_nothing, NULL, NULL, &err) == LENSNET_OK &&
              !memcmp(fused, plain, n * m->out_features * sizeof(float)),
          "model %d: pooled on the way = layer by layer, bit for bit (%g %g / %g %g)", k, fused[0], fused[m->out_features],
          plain[0], plain[m->out_features]);
    free(x);
    lensnet_model_free(m);
  }
}

/* The first NaN of a, b in that order, else the larger (b when they compare equal). */
static float ref_max_nan(float a, float b) { return a != a ? a : b != b ? b : a > b ? a : b; }

/* 2x2 max pooling rows by each vector path against the definition, bit for bit: widths 1-40
 * (vector steps and tails), ties of +0 and -0, infinities and NaNs with distinct payloads in
 * every position of a window (the first NaN of the window in reading order comes out). */
static void test_maxpool_rows(void) {
  static const lensnet_simd paths[2] = {LENSNET_SIMD_AVX512, LENSNET_SIMD_AVX2};
  lensnet_rng rng;
  float r0[80], r1[80], got[41], want[41];
  size_t ow, x, p, trial;
  int tested = 0;
  lensnet_rng_seed(&rng, 21);
  for (p = 0; p < 2; p++) {
    if (!lensnet_simd_available(paths[p])) { printf("   %s not available here: not tested\n", lensnet_simd_name(paths[p])); continue; }
    for (trial = 0; trial < 20; trial++)
      for (ow = 1; ow <= 40; ow++) {
        size_t done = 0, bad = 0;
        for (x = 0; x < 2 * ow; x++) {
          float u = lensnet_rng_uniform(&rng), v = (float)(int)(8.0f * lensnet_rng_uniform(&rng)) - 4.0f;
          uint32_t bits = 0x7FC00000u | (uint32_t)(x + 1) | (uint32_t)(trial << 12);
          float val;
          memcpy(&val, &bits, sizeof val);
          r0[x] = u < 0.05f ? val : u < 0.08f ? INFINITY : u < 0.1f ? -INFINITY : u < 0.2f ? 0.0f : u < 0.3f ? -0.0f : v;
          u = lensnet_rng_uniform(&rng);
          bits ^= 0x100u;
          memcpy(&val, &bits, sizeof val);
          r1[x] = u < 0.05f ? val : u < 0.2f ? -0.0f : u < 0.3f ? 0.0f : (float)(int)(8.0f * lensnet_rng_uniform(&rng)) - 4.0f;
        }
        for (x = 0; x < ow; x++) {
          want[x] = ref_max_nan(ref_max_nan(r0[2 * x], r0[2 * x + 1]), ref_max_nan(r1[2 * x], r1[2 * x + 1]));
          got[x] = 12345.0f;
        }
        got[ow] = 777.0f;
#ifdef LENSNET__HAVE_AVX512
        if (paths[p] == LENSNET_SIMD_AVX512) { lensnet__maxpool_row_avx512(r0, r1, got, NULL, ow); done = ow; }
#endif
#ifdef LENSNET__HAVE_AVX2
        if (paths[p] == LENSNET_SIMD_AVX2) done = lensnet__maxpool_row_avx2(r0, r1, got, ow);
#endif
        for (x = 0; x < done; x++) bad += memcmp(&got[x], &want[x], sizeof(float)) != 0;
        CHECK(bad == 0 && got[ow] == 777.0f && done + (paths[p] == LENSNET_SIMD_AVX2 ? 8 : 1) > ow,
              "%s, width %lu: %lu outputs differ from the definition (first: %g vs %g), %lu done", lensnet_simd_name(paths[p]),
              (unsigned long)ow, (unsigned long)bad, got[0], want[0], (unsigned long)done);
        if (bad) return;
      }
    tested++;
  }
  if (!tested) printf("   SKIP: no vector pooling path on this machine\n");
}

/* The 2x2 max pool's backward by AVX-512 against the rule, bit for bit: the gradient goes to the
 * first input of the window (row 0 left, right, row 1 left, right) equal to its maximum, or to the
 * first NaN when there is one; +0 elsewhere. Small integers make ties common; widths 1-40. */
static void test_maxpool_backward_rows(void) {
#ifdef LENSNET__HAVE_AVX512
  lensnet_rng rng;
  float r0[80], r1[80], m[40], g[40], d0[81], d1[81], w0[80], w1[80];
  size_t ow, x, trial, bad = 0;
  if (!lensnet_simd_available(LENSNET_SIMD_AVX512)) { printf("   SKIP: AVX-512 is not available here\n"); return; }
  lensnet_rng_seed(&rng, 33);
  for (trial = 0; trial < 20; trial++)
    for (ow = 1; ow <= 40; ow++) {
      for (x = 0; x < 2 * ow; x++) {
        r0[x] = lensnet_rng_uniform(&rng) < 0.04f ? NAN : (float)(int)(4.0f * lensnet_rng_uniform(&rng));
        r1[x] = lensnet_rng_uniform(&rng) < 0.04f ? NAN : (float)(int)(4.0f * lensnet_rng_uniform(&rng));
      }
      for (x = 0; x < ow; x++) {
        const float v[4] = {r0[2 * x], r0[2 * x + 1], r1[2 * x], r1[2 * x + 1]};
        int q, first = -1;
        m[x] = ref_max_nan(ref_max_nan(v[0], v[1]), ref_max_nan(v[2], v[3]));
        g[x] = lensnet_rng_uniform(&rng) - 0.5f;
        for (q = 0; q < 4 && first < 0; q++)
          if (m[x] != m[x] ? v[q] != v[q] : v[q] == m[x]) first = q;
        w0[2 * x] = first == 0 ? g[x] : 0.0f;
        w0[2 * x + 1] = first == 1 ? g[x] : 0.0f;
        w1[2 * x] = first == 2 ? g[x] : 0.0f;
        w1[2 * x + 1] = first == 3 ? g[x] : 0.0f;
      }
      d0[2 * ow] = d1[2 * ow] = 777.0f;
      lensnet__maxpool_backward_row_avx512(r0, r1, m, g, d0, d1, ow);
      bad += memcmp(d0, w0, 2 * ow * sizeof(float)) != 0 || memcmp(d1, w1, 2 * ow * sizeof(float)) != 0 || d0[2 * ow] != 777.0f ||
             d1[2 * ow] != 777.0f;
    }
  CHECK(bad == 0, "%lu of 800 rows of windows differ from the rule", (unsigned long)bad);
  { /* the winners a lean trainer keeps (lensnet__maxpool2x2_argmax), by AVX-512 against the same
     * rule, computed with the pooled row from the same loads (which must be the maxima bit for bit) */
    unsigned char arg[40];
    float o[41];
    size_t wrong = 0, maxima = 0;
    for (trial = 0; trial < 20; trial++)
      for (ow = 1; ow <= 40; ow++) {
        for (x = 0; x < 2 * ow; x++) {
          r0[x] = lensnet_rng_uniform(&rng) < 0.04f ? NAN : (float)(int)(4.0f * lensnet_rng_uniform(&rng));
          r1[x] = lensnet_rng_uniform(&rng) < 0.04f ? NAN : (float)(int)(4.0f * lensnet_rng_uniform(&rng));
        }
        for (x = 0; x < ow; x++) m[x] = ref_max_nan(ref_max_nan(r0[2 * x], r0[2 * x + 1]), ref_max_nan(r1[2 * x], r1[2 * x + 1]));
        arg[ow < 40 ? ow : 39] = 99;
        o[ow] = 777.0f;
        lensnet__maxpool_row_avx512(r0, r1, o, arg, ow);
        maxima += memcmp(o, m, ow * sizeof(float)) != 0 || o[ow] != 777.0f;
        for (x = 0; x < ow; x++) {
          const float v[4] = {r0[2 * x], r0[2 * x + 1], r1[2 * x], r1[2 * x + 1]};
          int q, first = 3;
          for (q = 3; q >= 0; q--)
            if (m[x] != m[x] ? v[q] != v[q] : v[q] == m[x]) first = q;
          wrong += arg[x] != first;
        }
        wrong += ow < 40 && arg[ow] != 99;
      }
    CHECK(wrong == 0, "%lu winners of 2x2 windows differ from the rule", (unsigned long)wrong);
    CHECK(maxima == 0, "%lu of 800 rows pooled with their winners differ from the maxima", (unsigned long)maxima);
  }
#else
  printf("   SKIP: this build has no AVX-512 path\n");
#endif
}

int main(void) {
  TEST("JSON: values, nesting, escapes") test_json_values();
  TEST("He initialisation: the documented bound and variance, zero biases") test_init_he();
  TEST("JSON: malformed text is refused with a message") test_json_malformed();
  TEST("architecture text: built-ins and errors that name the line") test_architecture_text();
  TEST("model save and load keep architecture, weights and metadata") test_save_and_load();
  TEST("model load names missing, extra and misshapen weights") test_load_mismatches();
  TEST("convolution with stride, padding and groups against hand values") test_convolution();
  TEST("pooling, activations, batch norm and softmax against hand values") test_layers_by_hand();
  TEST("resize follows PyTorch's bilinear convention; min-max normalisation") test_resize_and_minmax();
  TEST("edge cases: an empty picture resizes to zeros, ReLU keeps NaN, overlong architecture lines are refused") test_edge_cases();
  TEST("random numbers: reproducible, uniform mean, normal variance") test_random_numbers();
  TEST("lensnet_logits_average: the logits of the views' mean probabilities") test_logits_average();
  TEST("lensnet_model_forward_packed: the same outputs with weights packed once") test_forward_packed();
  TEST("Winograd F(2x2, 3x3), F(4x4, 3x3) and F(2x2, 5x5) layers against sums in double") test_winograd_layer();
  TEST("lensnet_model_pack and _winograd: each allocation refused in turn") test_pack_out_of_memory();
  TEST("lensnet_model_pack_winograd: which layers, and the outputs to rounding") test_forward_winograd();
  TEST("convolution, ReLU and 2x2 max pool in bands: the same outputs as layer by layer") test_pooled_on_the_way();
  TEST("2x2 max pooling rows by the vector paths: the definition bit for bit, NaNs included") test_maxpool_rows();
  TEST("2x2 max pooling's backward by AVX-512: the rule bit for bit, ties and NaNs included") test_maxpool_backward_rows();
  TEST("the layer table has one row per layer type, in LENSNET_LAYER_TYPES order") test_layer_table();
  TEST("a trainer out of training computes what lensnet_model_forward computes, bit for bit") test_trainer_inference();
  TEST("a tensor allocated with its own shape array keeps that shape") test_tensor_realloc_own_shape();
  TEST("receptive fields of OU-66 and OU-200, derived by hand") test_receptive_field_builtins();
  TEST("receptive fields through strides, padding, residual branches and even kernels") test_receptive_field_small();
  TEST("result strings are never NULL") test_result_strings();
  return check_summary();
}
