/* The DeepLense architectures of lensnet.h: p4 group convolutions (p4_lift, p4_conv, p4_pool;
 * Cohen & Welling 2016) turn their outputs with the input, p4cnn's outputs do not change when the
 * input turns, the ResNets have torchvision's parameters and train, shared gradient slots give
 * the gradients of image-by-image backward passes for any thread count, and, where PyTorch is
 * installed, resnet18 and p4cnn compute what PyTorch computes (tests/torch_parity.py).
 * The backward passes of the new layers are checked against finite differences in test_train. */
#define _POSIX_C_SOURCE 200809L /* WEXITSTATUS for tests/torch_parity.py's exit status; tools/pool.c's value */
/* A small budget of gradient slots, so that the small models below share them (lensnet.h's
 * default is 2^27 floats, which only ResNets exceed). */
#define LENSNET_GRADIENT_SLOT_FLOATS 10000
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"
#include "../tools/pool.c"
#include <string.h>
#include <sys/wait.h>

#define DIR "build/tequivariant"

/* ---- turning images ------------------------------------------------------------------------ */

/* y = x turned `turns` quarter turns counterclockwise, plane by plane (np.rot90(x, turns, (-2, -1))). */
static void turn_planes(const float *x, float *y, size_t planes, size_t n, int turns) {
  size_t p, i, j;
  int t;
  for (p = 0; p < planes; p++)
    for (i = 0; i < n; i++)
      for (j = 0; j < n; j++) {
        size_t si = i, sj = j, tmp;
        for (t = 0; t < turns; t++) { tmp = si; si = sj; sj = n - 1 - tmp; } /* rot(a)[i][j] = a[j][n-1-i] */
        y[(p * n + i) * n + j] = x[(p * n + si) * n + sj];
      }
}

/* A p4 map turned: every plane turned, and plane c*4 + r moved to c*4 + (r + turns) mod 4. */
static void turn_p4(const float *x, float *y, size_t planes, size_t n, int turns) {
  size_t p;
  for (p = 0; p < planes; p++) turn_planes(x + p * n * n, y + ((p / 4) * 4 + (p % 4 + (size_t)turns) % 4) * n * n, 1, n, turns);
}

static float *random_floats(size_t n, uint64_t seed) {
  float *x = (float *)malloc(n * sizeof(float));
  lensnet_rng rng;
  size_t i;
  lensnet_rng_seed(&rng, seed);
  for (i = 0; i < n; i++) x[i] = lensnet_rng_normal(&rng);
  return x;
}

/* Batch-norm parameters and running statistics away from their identity start, so that they matter. */
static void randomise_batchnorm(lensnet_model *m, uint64_t seed) {
  lensnet_rng rng;
  size_t i, k;
  lensnet_rng_seed(&rng, seed);
  for (i = 0; i < m->param_count; i++) {
    const lensnet_param *P = &m->params[i];
    int var = strstr(P->name, "running_var") != NULL, bn = var || strstr(P->name, "running_mean") || strstr(P->name, "bn") ||
                                                      strstr(P->name, "downsample.1");
    if (!bn || P->ndim != 1) continue;
    for (k = 0; k < P->count; k++) {
      float u = lensnet_rng_uniform(&rng);
      m->values[P->offset + k] = var ? 0.5f + u : strstr(P->name, "weight") ? 0.5f + u : 0.4f * (u - 0.5f);
    }
  }
}

/* ---- p4 layers: the expansion, equivariance ---------------------------------------------------- */

/* The documented orientation order by hand: a valid 3x3 correlation of a one-hot image reads one
 * tap of each expanded filter, and orientation r's filter is np.rot90(W, r). */
static void test_expansion_by_hand(void) {
  /* np.rot90(np.arange(9).reshape(3, 3), r) for r = 0..3 */
  static const float want[4][9] = {{0, 1, 2, 3, 4, 5, 6, 7, 8}, {2, 5, 8, 1, 4, 7, 0, 3, 6},
                                   {8, 7, 6, 5, 4, 3, 2, 1, 0}, {6, 3, 0, 7, 4, 1, 8, 5, 2}};
  lensnet_model *m;
  lensnet_error err;
  float x[9], y[4];
  size_t tap, r, s, same = 0;
  if (lensnet_model_create("input 1 3 3\np4_lift name=l out=1 kernel=3 bias=0", &m, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); return; }
  CHECK(m->param_count == 1 && m->params[0].ndim == 4 && m->params[0].shape[0] == 1 && m->params[0].shape[1] == 1 && m->params[0].shape[2] == 3 &&
        m->params[0].count == 9 && m->out_features == 4, "p4_lift stores l.weight [1, 1, 3, 3] once and gives 4 planes");
  for (tap = 0; tap < 9; tap++) m->values[tap] = (float)tap;
  for (tap = 0; tap < 9; tap++) {
    memset(x, 0, sizeof x);
    x[tap] = 1.0f;
    lensnet_model_forward(m, 1, x, y, NULL, &err);
    for (r = 0; r < 4; r++) same += y[r] == want[r][tap];
  }
  CHECK(same == 36, "orientation r of p4_lift correlates with np.rot90(W, r): %lu of 36 taps", (unsigned long)same);
  lensnet_model_free(m);
  /* p4_conv with 1x1 filters: orientation r reads input plane s through W[(s - r) mod 4] */
  if (lensnet_model_create("input 4 1 1\np4_conv name=c out=1 kernel=1 bias=1", &m, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); return; }
  CHECK(m->params[0].ndim == 5 && m->params[0].shape[1] == 1 && m->params[0].shape[2] == 4 && m->params[0].shape[3] == 1 &&
        m->params[1].count == 1, "p4_conv stores c.weight [1, 1, 4, 1, 1] and one bias per channel");
  for (s = 0; s < 4; s++) m->values[s] = (float)(10 * (s + 1));
  m->values[4] = 0.5f;
  same = 0;
  for (s = 0; s < 4; s++) {
    memset(x, 0, sizeof x);
    x[s] = 1.0f;
    lensnet_model_forward(m, 1, x, y, NULL, &err);
    for (r = 0; r < 4; r++) same += y[r] == 10.0f * (float)((s + 4 - r) % 4 + 1) + 0.5f;
  }
  CHECK(same == 16, "orientation r of p4_conv takes input plane s through W[(s - r) mod 4], the bias shared: %lu of 16", (unsigned long)same);
  lensnet_model_free(m);
}

/* max |f(turned x) - turned f(x)| over max |f(x)|, for the model's input and output as p4 maps
 * (p4_in, p4_out) or ordinary ones. Square inputs and outputs. */
static double equivariance_error(const char *arch, int p4_in, int p4_out, int turns) {
  lensnet_model *m;
  lensnet_error err;
  float *x, *xt, *y, *yt, *want;
  size_t in_n, out_n, n, on, planes;
  double d;
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); return 1.0; }
  lensnet_model_init(m, 7);
  randomise_batchnorm(m, 8);
  n = m->in_h;
  on = m->layers[m->layer_count - 1].out_h;
  planes = m->layers[m->layer_count - 1].out_c;
  in_n = m->in_c * n * n;
  out_n = m->out_features;
  x = random_floats(in_n, 9);
  xt = (float *)malloc(in_n * sizeof(float));
  y = (float *)malloc(out_n * sizeof(float));
  yt = (float *)malloc(out_n * sizeof(float));
  want = (float *)malloc(out_n * sizeof(float));
  if (p4_in) turn_p4(x, xt, m->in_c, n, turns);
  else turn_planes(x, xt, m->in_c, n, turns);
  lensnet_model_forward(m, 1, x, y, NULL, &err);
  lensnet_model_forward(m, 1, xt, yt, NULL, &err);
  if (p4_out) turn_p4(y, want, planes, on, turns);
  else turn_planes(y, want, planes, on, turns);
  d = check_rel_diff(yt, want, out_n);
  free(x); free(xt); free(y); free(yt); free(want);
  lensnet_model_free(m);
  return d;
}

/* Float rounding only: the turned input's products are summed in another order, a few units of
 * 2^-24 of each sum's terms; 1e-5 of the largest output leaves room for sums of a few hundred. */
#define TURN_TOL 1e-5

static void test_p4_equivariance(void) {
  static const struct { const char *label, *arch; int p4_in; } cases[] = {
    {"p4_lift 3x3, 9x9", "input 3 9 9\np4_lift name=l out=4 kernel=3", 0},
    {"p4_lift 5x5 padding 2", "input 2 8 8\np4_lift name=l out=3 kernel=5 padding=2", 0},
    {"p4_lift 4x4 (an even kernel)", "input 1 9 9\np4_lift name=l out=2 kernel=4 bias=0", 0},
    {"p4_lift stride 2 padding 1, 9x9", "input 2 9 9\np4_lift name=l out=3 kernel=3 stride=2 padding=1", 0},
    {"p4_conv 3x3 padding 1", "input 12 9 9\np4_conv name=c out=4 kernel=3 padding=1", 1},
    {"p4_conv stride 2 padding 1, 9x9", "input 8 9 9\np4_conv name=c out=3 kernel=3 stride=2 padding=1", 1},
    {"lift, batch norm over orientations, ReLU, max pool, p4_conv", "input 1 8 8\np4_lift name=l out=4 kernel=3 padding=1\n"
     "batchnorm name=bn orientations=4\nrelu\nmaxpool kernel=2\np4_conv name=c out=4 kernel=3 padding=1", 0}
  };
  size_t i;
  int turns;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    double worst = 0.0;
    for (turns = 1; turns <= 3; turns++) {
      double d = equivariance_error(cases[i].arch, cases[i].p4_in, 1, turns);
      if (!(d <= worst)) worst = d;
    }
    printf("   %-58s turned output differs by %.1e\n", cases[i].label, worst);
    CHECK(worst <= TURN_TOL, "%s: a turned input gives outputs %g away from the turned outputs", cases[i].label, worst);
  }
}

/* The condition is needed: at stride 2 on 8x8 with kernel 3 and padding 1, (8 + 2 - 3) is odd, the
 * sampled grid does not turn onto itself, and the outputs are far from turned ones. */
static void test_stride_condition(void) {
  double d = equivariance_error("input 8 8 8\np4_conv name=c out=3 kernel=3 stride=2 padding=1", 1, 1, 1);
  printf("   8x8, stride 2, (8 + 2 - 3) odd: turned output differs by %.2f\n", d);
  CHECK(d > 0.1, "an odd (size + 2 padding - kernel) at stride 2 should break equivariance, differs by only %g", d);
  d = equivariance_error("input 1 8 8\np4_lift name=l out=3 kernel=3 padding=1\np4_pool mode=max", 0, 0, 1);
  CHECK(d <= TURN_TOL, "p4_pool after p4_lift is only turned with the input (%g)", d);
  d = equivariance_error("input 1 8 8\np4_lift name=l out=3 kernel=3 padding=1\np4_pool mode=mean", 0, 0, 1);
  CHECK(d <= TURN_TOL, "p4_pool mode=mean after p4_lift is only turned with the input (%g)", d);
}

/* p4cnn: the four turns of a random image give the same outputs, at inference and in a
 * training-mode forward pass of the four as one batch (batch statistics over every orientation of
 * a channel do not change either); at 64x64 (2x2 pools: 32, 16, 8) and at 50x50, whose pools meet
 * odd sides (25, 13, 7) and take 3x3 windows with stride 2 and padding 1 there. */
static void p4cnn_invariance(size_t n) {
  lensnet_model *m;
  lensnet_trainer *t;
  lensnet_trainer_desc desc;
  lensnet_error err;
  float *x = random_floats(4 * n * n, 21), y[4][3];
  const float *yt;
  double worst = 0.0, worst_train = 0.0;
  int turns;
  char arch[64];
  snprintf(arch, sizeof arch, "p4cnn(1,3,%lu,%lu)", (unsigned long)n, (unsigned long)n);
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); free(x); return; }
  lensnet_model_init(m, 5);
  randomise_batchnorm(m, 6);
  CHECK(lensnet_model_parameter_count(m) == 97403, "p4cnn(1,3) has %lu parameters, not 97,403", (unsigned long)lensnet_model_parameter_count(m));
  for (turns = 1; turns < 4; turns++) turn_planes(x, x + (size_t)turns * n * n, 1, n, turns);
  lensnet_model_forward(m, 4, x, &y[0][0], NULL, &err);
  for (turns = 1; turns < 4; turns++) {
    double d = check_rel_diff(y[turns], y[0], 3);
    if (!(d <= worst)) worst = d;
  }
  memset(&desc, 0, sizeof desc);
  desc.batch_cap = 4;
  if (lensnet_trainer_create(m, &desc, &t, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); free(x); lensnet_model_free(m); return; }
  lensnet_trainer_forward(t, 4, x, 1, NULL, &err);
  yt = lensnet_trainer_output(t);
  for (turns = 1; turns < 4; turns++) {
    double d = check_rel_diff(yt + 3 * turns, yt, 3);
    if (!(d <= worst_train)) worst_train = d;
  }
  printf("   %lux%lu: outputs of the four turns differ by %.1e (inference), %.1e (training mode)\n", (unsigned long)n, (unsigned long)n,
         worst, worst_train);
  CHECK(worst <= TURN_TOL, "%s: the outputs change by %g when the input turns", arch, worst);
  CHECK(worst_train <= TURN_TOL, "%s: the training-mode outputs change by %g when the input turns", arch, worst_train);
  lensnet_trainer_free(t);
  lensnet_model_free(m);
  free(x);
}

static void test_p4cnn_invariance(void) {
  p4cnn_invariance(64);
  p4cnn_invariance(50);
}

/* ---- ResNets --------------------------------------------------------------------------------- */

/* torchvision.models.resnet18()'s state_dict (3 bands, 1000 classes), num_batches_tracked left out,
 * in its order: name and shape. */
static const char *const resnet18_torchvision[] = {
  "conv1.weight 64x3x7x7", "bn1.weight 64", "bn1.bias 64", "bn1.running_mean 64", "bn1.running_var 64",
  "layer1.0.conv1.weight 64x64x3x3", "layer1.0.bn1.weight 64", "layer1.0.bn1.bias 64",
  "layer1.0.bn1.running_mean 64", "layer1.0.bn1.running_var 64", "layer1.0.conv2.weight 64x64x3x3",
  "layer1.0.bn2.weight 64", "layer1.0.bn2.bias 64", "layer1.0.bn2.running_mean 64",
  "layer1.0.bn2.running_var 64", "layer1.1.conv1.weight 64x64x3x3", "layer1.1.bn1.weight 64",
  "layer1.1.bn1.bias 64", "layer1.1.bn1.running_mean 64", "layer1.1.bn1.running_var 64",
  "layer1.1.conv2.weight 64x64x3x3", "layer1.1.bn2.weight 64", "layer1.1.bn2.bias 64",
  "layer1.1.bn2.running_mean 64", "layer1.1.bn2.running_var 64", "layer2.0.conv1.weight 128x64x3x3",
  "layer2.0.bn1.weight 128", "layer2.0.bn1.bias 128", "layer2.0.bn1.running_mean 128",
  "layer2.0.bn1.running_var 128", "layer2.0.conv2.weight 128x128x3x3", "layer2.0.bn2.weight 128",
  "layer2.0.bn2.bias 128", "layer2.0.bn2.running_mean 128", "layer2.0.bn2.running_var 128",
  "layer2.0.downsample.0.weight 128x64x1x1", "layer2.0.downsample.1.weight 128",
  "layer2.0.downsample.1.bias 128", "layer2.0.downsample.1.running_mean 128",
  "layer2.0.downsample.1.running_var 128", "layer2.1.conv1.weight 128x128x3x3", "layer2.1.bn1.weight 128",
  "layer2.1.bn1.bias 128", "layer2.1.bn1.running_mean 128", "layer2.1.bn1.running_var 128",
  "layer2.1.conv2.weight 128x128x3x3", "layer2.1.bn2.weight 128", "layer2.1.bn2.bias 128",
  "layer2.1.bn2.running_mean 128", "layer2.1.bn2.running_var 128", "layer3.0.conv1.weight 256x128x3x3",
  "layer3.0.bn1.weight 256", "layer3.0.bn1.bias 256", "layer3.0.bn1.running_mean 256",
  "layer3.0.bn1.running_var 256", "layer3.0.conv2.weight 256x256x3x3", "layer3.0.bn2.weight 256",
  "layer3.0.bn2.bias 256", "layer3.0.bn2.running_mean 256", "layer3.0.bn2.running_var 256",
  "layer3.0.downsample.0.weight 256x128x1x1", "layer3.0.downsample.1.weight 256",
  "layer3.0.downsample.1.bias 256", "layer3.0.downsample.1.running_mean 256",
  "layer3.0.downsample.1.running_var 256", "layer3.1.conv1.weight 256x256x3x3", "layer3.1.bn1.weight 256",
  "layer3.1.bn1.bias 256", "layer3.1.bn1.running_mean 256", "layer3.1.bn1.running_var 256",
  "layer3.1.conv2.weight 256x256x3x3", "layer3.1.bn2.weight 256", "layer3.1.bn2.bias 256",
  "layer3.1.bn2.running_mean 256", "layer3.1.bn2.running_var 256", "layer4.0.conv1.weight 512x256x3x3",
  "layer4.0.bn1.weight 512", "layer4.0.bn1.bias 512", "layer4.0.bn1.running_mean 512",
  "layer4.0.bn1.running_var 512", "layer4.0.conv2.weight 512x512x3x3", "layer4.0.bn2.weight 512",
  "layer4.0.bn2.bias 512", "layer4.0.bn2.running_mean 512", "layer4.0.bn2.running_var 512",
  "layer4.0.downsample.0.weight 512x256x1x1", "layer4.0.downsample.1.weight 512",
  "layer4.0.downsample.1.bias 512", "layer4.0.downsample.1.running_mean 512",
  "layer4.0.downsample.1.running_var 512", "layer4.1.conv1.weight 512x512x3x3", "layer4.1.bn1.weight 512",
  "layer4.1.bn1.bias 512", "layer4.1.bn1.running_mean 512", "layer4.1.bn1.running_var 512",
  "layer4.1.conv2.weight 512x512x3x3", "layer4.1.bn2.weight 512", "layer4.1.bn2.bias 512",
  "layer4.1.bn2.running_mean 512", "layer4.1.bn2.running_var 512", "fc.weight 1000x512", "fc.bias 1000"
};

/* Trainable parameters of torchvision's ResNet with basic blocks, by its definition: conv1 7x7
 * without bias and bn1; per block two 3x3 convolutions without bias, two batch norms (weight and
 * bias) and, where the block changes stride or width, a 1x1 projection with its batch norm; fc. */
static size_t resnet_parameters(const int blocks[4], size_t bands, size_t classes) {
  size_t n = 64 * bands * 49 + 2 * 64, in = 64, planes = 64;
  int stage, b;
  for (stage = 0; stage < 4; stage++, planes *= 2)
    for (b = 0; b < blocks[stage]; b++) {
      n += planes * in * 9 + 2 * planes + planes * planes * 9 + 2 * planes;
      if (in != planes) n += planes * in + 2 * planes;
      in = planes;
    }
  return n + 512 * classes + classes;
}

static void test_resnet_parameters(void) {
  static const int r18[4] = {2, 2, 2, 2}, r34[4] = {3, 4, 6, 3};
  static const struct { const char *arch; const int *blocks; size_t bands, classes; } cases[] = {
    {"resnet18(3)", r18, 3, 1000}, {"resnet18(1,3,64,64)", r18, 1, 3}, {"resnet34(3)", r34, 3, 1000}, {"resnet34(4,2,96,96)", r34, 4, 2}};
  lensnet_model *m;
  lensnet_error err;
  size_t i, k, listed = sizeof resnet18_torchvision / sizeof resnet18_torchvision[0], same = 0;
  CHECK(resnet_parameters(r18, 3, 1000) == 11689512 && resnet_parameters(r34, 3, 1000) == 21797672,
        "the formula gives torchvision's counts: %lu, %lu", (unsigned long)resnet_parameters(r18, 3, 1000),
        (unsigned long)resnet_parameters(r34, 3, 1000));
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (lensnet_model_create(cases[i].arch, &m, &err) != LENSNET_OK) { CHECK(0, "%s: %s", cases[i].arch, err.message); continue; }
    printf("   %-22s %10lu parameters, input %lux%lux%lu, %lu outputs\n", cases[i].arch, (unsigned long)lensnet_model_parameter_count(m),
           (unsigned long)m->in_c, (unsigned long)m->in_h, (unsigned long)m->in_w, (unsigned long)m->out_features);
    CHECK(lensnet_model_parameter_count(m) == resnet_parameters(cases[i].blocks, cases[i].bands, cases[i].classes),
          "%s: %lu parameters, the definition says %lu", cases[i].arch, (unsigned long)lensnet_model_parameter_count(m),
          (unsigned long)resnet_parameters(cases[i].blocks, cases[i].bands, cases[i].classes));
    lensnet_model_free(m);
  }
  if (lensnet_model_create("resnet18(3)", &m, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); return; }
  CHECK(m->param_count == listed, "resnet18 has %lu tensors, torchvision %lu", (unsigned long)m->param_count, (unsigned long)listed);
  for (k = 0; k < m->param_count && k < listed; k++) {
    char got[128];
    size_t len = (size_t)snprintf(got, sizeof got, "%s ", m->params[k].name);
    int d;
    for (d = 0; d < m->params[k].ndim; d++) len += (size_t)snprintf(got + len, sizeof got - len, "%s%lu", d ? "x" : "", (unsigned long)m->params[k].shape[d]);
    if (!strcmp(got, resnet18_torchvision[k]) && m->params[k].trainable == (strstr(got, "running_") == NULL)) same++;
    else printf("   tensor %lu: '%s', torchvision '%s'\n", (unsigned long)k, got, resnet18_torchvision[k]);
  }
  CHECK(same == listed, "%lu of %lu tensors have torchvision's name, shape and order", (unsigned long)same, (unsigned long)listed);
  CHECK(m->in_h == 224 && m->in_w == 224 && m->out_features == 1000, "resnet18(3) is torchvision's resnet18 (224 x 224, 1000 classes)");
  lensnet_model_free(m);
}

/* A 3x64x64 input through resnet18 with 3 outputs (DeepLense's substructure classes); the layer
 * shapes on the way: 64x32x32 after conv1, 64x16x16 after the max pool, 512x2x2 before pooling. */
static void test_resnet_forward(void) {
  lensnet_model *m;
  lensnet_error err;
  float *x = random_floats(2 * 3 * 64 * 64, 31), y[6];
  size_t i, finite = 0;
  if (lensnet_model_create("resnet18(3,3,64,64)", &m, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); free(x); return; }
  lensnet_model_init(m, 3);
  CHECK(m->out_features == 3, "3 outputs, got %lu", (unsigned long)m->out_features);
  CHECK(m->layers[0].out_c == 64 && m->layers[0].out_h == 32 && m->layers[3].out_h == 16 && m->layers[3].padding == 1,
        "conv1 gives 64x32x32 and the padded max pool 64x16x16 (%lux%lu)", (unsigned long)m->layers[0].out_h, (unsigned long)m->layers[3].out_h);
  CHECK(m->layers[m->layer_count - 2].in_c == 512 && m->layers[m->layer_count - 2].in_h == 2, "layer4 ends in 512x2x2");
  CHECK(lensnet_model_forward(m, 2, x, y, NULL, &err) == LENSNET_OK, "forward: %s", err.message);
  for (i = 0; i < 6; i++) finite += y[i] == y[i] && fabsf(y[i]) < 1e6f;
  CHECK(finite == 6, "finite outputs");
  lensnet_model_free(m);
  free(x);
}

/* One Adam step on four images of 3x32x32 (batch norm on batch statistics) lowers their loss. */
static void test_resnet_training_step(void) {
  static const float labels[4] = {0, 1, 2, 1};
  lensnet_model *m;
  lensnet_trainer *t;
  lensnet_trainer_desc desc;
  lensnet_optimizer *opt;
  lensnet_optimizer_desc od;
  lensnet_error err;
  float *x = random_floats(4 * 3 * 32 * 32, 41), grad[12], loss[3];
  int step;
  if (lensnet_model_create("resnet18(3,3,32,32)", &m, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); free(x); return; }
  lensnet_model_init(m, 4);
  memset(&desc, 0, sizeof desc);
  desc.batch_cap = 4;
  memset(&od, 0, sizeof od);
  od.type = LENSNET_OPT_ADAM;
  od.lr = 1e-3f;
  if (lensnet_trainer_create(m, &desc, &t, &err) != LENSNET_OK || lensnet_optimizer_create(&od, m, &opt, &err) != LENSNET_OK) {
    CHECK(0, "%s", err.message);
    free(x);
    lensnet_model_free(m);
    return;
  }
  for (step = 0; step < 3; step++) {
    lensnet_trainer_forward(t, 4, x, 1, NULL, &err);
    loss[step] = lensnet_loss_cross_entropy(lensnet_trainer_output(t), labels, 4, 3, NULL, grad);
    if (step == 2) break;
    lensnet_trainer_zero_grad(t);
    lensnet_trainer_backward(t, 4, grad, &err);
    lensnet_optimizer_step(opt, m, lensnet_trainer_grads(t), 0.0f);
  }
  printf("   cross-entropy %.4f -> %.4f -> %.4f\n", loss[0], loss[1], loss[2]);
  CHECK(loss[1] < loss[0] && loss[2] < loss[1], "the loss did not fall: %g, %g, %g", loss[0], loss[1], loss[2]);
  lensnet_optimizer_free(opt);
  lensnet_trainer_free(t);
  lensnet_model_free(m);
  free(x);
}

/* What tools/torch2safetensors.py writes for a torchvision state_dict: the bare name "resnet18",
 * input_size, and num_batches_tracked beside the batch norms. It loads: bands from conv1.weight,
 * outputs from fc.weight. */
static void test_state_dict_load(void) {
  lensnet_model *m, *back = NULL;
  lensnet_safetensors st;
  lensnet_tensor nbt;
  lensnet_error err;
  size_t one = 1;
  float *x = random_floats(1 * 48 * 48, 51), y[2][5];
  if (lensnet_model_create("resnet18(1,5,48,48)", &m, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); free(x); return; }
  lensnet_model_init(m, 9);
  randomise_batchnorm(m, 10);
  if (lensnet_model_save(m, DIR "/resnet_full.safetensors", &err) != LENSNET_OK ||
      lensnet_safetensors_read(DIR "/resnet_full.safetensors", &st, &err) != LENSNET_OK) {
    CHECK(0, "%s", err.message);
    lensnet_model_free(m);
    free(x);
    return;
  }
  lensnet_safetensors_set_meta(&st, "arch", "resnet18");
  lensnet_safetensors_set_meta(&st, "input_size", "48");
  if (lensnet_tensor_alloc(&nbt, 1, &one, &err) == LENSNET_OK) {
    nbt.data[0] = 3.0f;
    lensnet_safetensors_add(&st, "bn1.num_batches_tracked", &nbt);
    lensnet_safetensors_add(&st, "layer2.0.downsample.1.num_batches_tracked", &nbt);
    lensnet_tensor_free(&nbt);
  }
  CHECK(lensnet_safetensors_write(DIR "/resnet_sd.safetensors", &st, &err) == LENSNET_OK, "write: %s", err.message);
  lensnet_safetensors_free(&st);
  CHECK(lensnet_model_load(DIR "/resnet_sd.safetensors", &back, &err) == LENSNET_OK, "load: %s", err.message);
  if (back) {
    CHECK(back->in_c == 1 && back->in_h == 48 && back->out_features == 5 && back->value_count == m->value_count &&
          !memcmp(back->values, m->values, m->value_count * sizeof(float)), "the same model: 1x48x48 in, 5 out, the same values");
    lensnet_model_forward(m, 1, x, y[0], NULL, &err);
    lensnet_model_forward(back, 1, x, y[1], NULL, &err);
    CHECK(!memcmp(y[0], y[1], sizeof y[0]), "the same outputs");
    lensnet_model_free(back);
  }
  lensnet_model_free(m);
  free(x);
}

/* ---- shared gradient slots ---------------------------------------------------------------------- */

/* d sum(outputs * R) / d parameters of a batch, threads from par (NULL: serial); into g. */
static size_t batch_gradient(lensnet_model *m, size_t batch, const float *x, const float *R, const lensnet_parallel *par, float *g) {
  lensnet_trainer *t;
  lensnet_trainer_desc desc;
  lensnet_error err;
  size_t slots;
  memset(&desc, 0, sizeof desc);
  desc.batch_cap = batch;
  desc.parallel = par;
  if (lensnet_trainer_create(m, &desc, &t, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); return 0; }
  lensnet_trainer_forward(t, batch, x, 1, NULL, &err);
  lensnet_trainer_zero_grad(t);
  lensnet_trainer_backward(t, batch, R, &err);
  memcpy(g, lensnet_trainer_grads(t), m->value_count * sizeof(float));
  slots = t->grad_slots;
  lensnet_trainer_free(t);
  return slots;
}

/* A model whose convolutions (p4, strided p4, plain, a residual) need more than
 * LENSNET_GRADIENT_SLOT_FLOATS for five images: images share two slots. Its gradient equals the
 * sum of the images' own (no batch norm couples them), to rounding, and is the same, bit for bit,
 * with one, two or three threads. */
static void test_shared_slots(void) {
  const char *arch = "input 1 9 9\np4_lift name=l out=4 kernel=3 padding=1\ntanh\np4_conv name=c out=4 kernel=3 stride=2 padding=1\ntanh\n"
                     "mark name=m\nconv2d name=d out=16 kernel=3 padding=1\ntanh\nadd name=m\np4_pool mode=mean\nglobal_avgpool\ndense name=fc out=3";
  lensnet_model *m;
  lensnet_error err;
  float *x = random_floats(5 * 81, 61), *R = random_floats(5 * 3, 62), *g, *g2, *g3, *one;
  double *sum;
  size_t b, k, slots;
  lens_pool *p2 = lens_pool_create(2), *p3 = lens_pool_create(3);
  lensnet_parallel par2 = lens_pool_parallel(p2), par3 = lens_pool_parallel(p3);
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); return; }
  lensnet_model_init(m, 12);
  g = (float *)malloc(m->value_count * sizeof(float));
  g2 = (float *)malloc(m->value_count * sizeof(float));
  g3 = (float *)malloc(m->value_count * sizeof(float));
  one = (float *)malloc(m->value_count * sizeof(float));
  sum = (double *)calloc(m->value_count, sizeof(double));
  slots = batch_gradient(m, 5, x, R, NULL, g);
  CHECK(slots == 2, "five images share %lu gradient slots, expected 2", (unsigned long)slots);
  for (b = 0; b < 5; b++) {
    batch_gradient(m, 1, x + b * 81, R + b * 3, NULL, one);
    for (k = 0; k < m->value_count; k++) sum[k] += one[k];
  }
  for (k = 0; k < m->value_count; k++) one[k] = (float)sum[k];
  printf("   shared slots against image by image: %.1e relative\n", check_rel_diff(g, one, m->value_count));
  CHECK(check_rel_diff(g, one, m->value_count) <= 1e-5, "the batch gradient differs from the images' sum by %g", check_rel_diff(g, one, m->value_count));
  batch_gradient(m, 5, x, R, &par2, g2);
  batch_gradient(m, 5, x, R, &par3, g3);
  CHECK(!memcmp(g, g2, m->value_count * sizeof(float)) && !memcmp(g, g3, m->value_count * sizeof(float)),
        "2 and 3 threads give the same gradient bit for bit");
  free(g); free(g2); free(g3); free(one); free(sum); free(x); free(R);
  lensnet_model_free(m);
  lens_pool_free(p2); lens_pool_free(p3);
}

/* ---- PyTorch parity ----------------------------------------------------------------------------- */

/* The outputs of a built-in for a random batch against PyTorch's (tests/torch_parity.py). Deep
 * float32 networks sum in other orders than PyTorch's: 1e-4 of the largest output. */
static void parity(const char *python, const char *name, const char *arch, size_t bands, size_t size) {
  lensnet_model *m;
  lensnet_tensor in, ref;
  lensnet_error err;
  size_t shape[4], n = 2, i;
  float *y;
  char cmd[1024];
  int rc;
  shape[0] = n; shape[1] = bands; shape[2] = size; shape[3] = size;
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); return; }
  lensnet_model_init(m, 71);
  randomise_batchnorm(m, 72);
  if (lensnet_tensor_alloc(&in, 4, shape, &err) != LENSNET_OK) { CHECK(0, "%s", err.message); lensnet_model_free(m); return; }
  {
    float *x = random_floats(n * bands * size * size, 73);
    memcpy(in.data, x, n * bands * size * size * sizeof(float));
    free(x);
  }
  y = (float *)malloc(n * m->out_features * sizeof(float));
  if (lensnet_model_save(m, DIR "/parity.safetensors", &err) != LENSNET_OK || lensnet_npy_write(DIR "/parity_in.npy", &in, &err) != LENSNET_OK) {
    CHECK(0, "%s", err.message);
  } else {
    snprintf(cmd, sizeof cmd, "%s tests/torch_parity.py %s " DIR "/parity.safetensors " DIR "/parity_in.npy " DIR "/parity_out.npy 2>" DIR "/parity_err.txt",
             python, name);
    fflush(stdout); /* the script's line after ours */
    rc = system(cmd);
    if (rc != 0 && (!WIFEXITED(rc) || WEXITSTATUS(rc) == 3)) SKIP("%s: %s has no PyTorch (" DIR "/parity_err.txt)", name, python);
    else if (rc != 0) CHECK(0, "%s: tests/torch_parity.py failed (" DIR "/parity_err.txt)", name);
    else if (lensnet_npy_read(DIR "/parity_out.npy", &ref, &err) != LENSNET_OK) CHECK(0, "%s", err.message);
    else {
      lensnet_model_forward(m, n, in.data, y, NULL, &err);
      CHECK(ref.ndim == 2 && ref.shape[0] == n && ref.shape[1] == m->out_features, "%s: PyTorch's output has another shape", name);
      if (ref.ndim == 2 && ref.shape[0] * ref.shape[1] == n * m->out_features) {
        double d = check_rel_diff(y, ref.data, n * m->out_features);
        printf("   %-8s %lu outputs against PyTorch: %.1e relative (", name, (unsigned long)(n * m->out_features), d);
        for (i = 0; i < 3; i++) printf("%s%.5f/%.5f", i ? " " : "", y[i], ref.data[i]);
        printf(" ...)\n");
        CHECK(d <= 1e-4, "%s differs from PyTorch by %g", name, d);
      }
      lensnet_tensor_free(&ref);
    }
  }
  free(y);
  lensnet_tensor_free(&in);
  lensnet_model_free(m);
}

static void test_torch_parity(void) {
  const char *python = getenv("LENS_PYTHON");
  FILE *f;
  if (!python || !*python) python = "/usr/bin/python3";
  if (!(f = fopen(python, "rb"))) { SKIP("no %s (LENS_PYTHON names another): PyTorch parity not checked", python); return; }
  fclose(f);
  parity(python, "resnet18", "resnet18(3,5,64,64)", 3, 64);
  parity(python, "p4cnn", "p4cnn(2,3,30,30)", 2, 30); /* pools: 30 -> 15 -> 8 -> 4 */
}

int main(void) {
  if (system("mkdir -p " DIR) != 0) { printf("cannot create " DIR "\n"); return 1; }
  TEST("p4 layers: stored once, expanded with np.rot90 and the cyclic shift documented") test_expansion_by_hand();
  TEST("p4_lift and p4_conv: a quarter turn of the input turns each output plane and shifts the orientations") test_p4_equivariance();
  TEST("the stride condition matters; p4_pool outputs only turn") test_stride_condition();
  TEST("p4cnn: quarter turns of a random input leave the outputs unchanged (1e-5)") test_p4cnn_invariance();
  TEST("ResNets: torchvision's tensors, names, shapes and parameter counts") test_resnet_parameters();
  TEST("resnet18: a 3x64x64 input gives 3 outputs through the expected shapes") test_resnet_forward();
  TEST("resnet18: training steps on a tiny batch lower the loss") test_resnet_training_step();
  TEST("a torchvision state_dict converted with a bare arch name and num_batches_tracked loads") test_state_dict_load();
  TEST("shared gradient slots: the images' summed gradient, the same for any thread count") test_shared_slots();
  TEST("resnet18 and p4cnn compute what PyTorch computes (SKIP without PyTorch)") test_torch_parity();
  return check_summary();
}
