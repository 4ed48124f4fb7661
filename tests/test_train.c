/* Training in lensnet.h: every layer's backward pass against finite differences, losses and
 * optimisers against PyTorch's numbers (tests/reference, made by make_train_reference.py),
 * thread-count independence, and a small CNN that learns rings from discs. */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"
#include "../tools/pool.c"
#include <math.h>
#include <string.h>

#ifndef GC_EPS
#define GC_EPS 1e-3f
#endif
/* ---- finite-difference gradient checks ------------------------------------------------------ */

/* A trainer for batches of up to `batch`, with dropout seed `seed`; input_grad as the desc's. */
static lensnet_trainer *make_trainer(lensnet_model *m, size_t batch, const lensnet_parallel *par, uint64_t seed, int input_grad,
                                     int skip_param_grads) {
  lensnet_trainer_desc d;
  lensnet_trainer *t = NULL;
  lensnet_error err;
  memset(&d, 0, sizeof d);
  d.batch_cap = batch; d.parallel = par; d.seed = seed; d.input_grad = input_grad; d.skip_param_grads = skip_param_grads;
  if (lensnet_trainer_create(m, &d, &t, &err) != LENSNET_OK) printf("   trainer: %s\n", err.message);
  return t;
}

/* L = sum(output * R) in double; the trainer's RNG is restored first so dropout draws the same mask. */
static double probe_loss(lensnet_trainer *t, size_t batch, const float *x, const float *R, const lensnet_rng *rng) {
  lensnet_error err;
  const float *y;
  double L = 0.0;
  size_t i, n = batch * lensnet_trainer_model(t)->out_features;
  *lensnet_trainer_rng(t) = *rng;
  lensnet_trainer_forward(t, batch, x, 1, NULL, &err);
  y = lensnet_trainer_output(t);
  for (i = 0; i < n; i++) L += (double)y[i] * R[i];
  return L;
}

/* Central differences with eps = 1e-3 on float32 forward passes: the loss's rounding noise is
 * about 1e-6, i.e. ~5e-4 after dividing by 2 eps, so analytic and numeric gradients must agree
 * within 2e-3 + 1e-2 relative. Finite differences are meaningless across a kink (ReLU at 0, a
 * max-pool tie), so inputs are a shuffled grid spaced 0.02 apart that keeps 0.01 from zero.
 * Checks up to 60 parameters and 60 inputs chosen at random. */
static void gradient_check(const char *label, const char *arch, size_t batch) {
  lensnet_model *m = NULL;
  lensnet_trainer *t = NULL;
  lensnet_error err;
  lensnet_rng pick, saved;
  float *x, *R;
  size_t in_n, out_n, i, checked = 0, bad = 0;
  double worst = 0.0;
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { CHECK(0, "%s: %s", label, err.message); return; }
  lensnet_model_init(m, 11);
  lensnet_rng_seed(&pick, 5);
  /* batch-norm parameters away from their identity start, so their gradients are exercised */
  for (i = 0; i < m->param_count; i++)
    if (strstr(m->params[i].name, "bn") && m->params[i].trainable) {
      size_t k;
      for (k = 0; k < m->params[i].count; k++) m->values[m->params[i].offset + k] = 0.5f + lensnet_rng_uniform(&pick);
    }
  if ((t = make_trainer(m, batch, NULL, 3, 1, 0)) == NULL) { CHECK(0, "%s: no trainer", label); lensnet_model_free(m); return; }
  in_n = batch * m->in_c * m->in_h * m->in_w;
  out_n = batch * m->out_features;
  x = (float *)malloc(in_n * sizeof(float));
  R = (float *)malloc(out_n * sizeof(float));
  for (i = 0; i < in_n; i++) x[i] = ((float)i - (float)(in_n / 2) + 0.5f) * 0.02f;
  for (i = in_n; i-- > 1;) { /* Fisher-Yates shuffle */
    size_t j = (size_t)(lensnet_rng_next(&pick) % (i + 1));
    float tmp = x[i]; x[i] = x[j]; x[j] = tmp;
  }
  for (i = 0; i < out_n; i++) R[i] = lensnet_rng_normal(&pick);
  saved = *lensnet_trainer_rng(t);
  probe_loss(t, batch, x, R, &saved);
  lensnet_trainer_zero_grad(t);
  lensnet_trainer_backward(t, batch, R, &err);
  {
    /* parameters (trainable only) */
    size_t total = 0, tries;
    for (i = 0; i < m->param_count; i++) if (m->params[i].trainable) total += m->params[i].count;
    for (tries = 0; tries < 60 && total; tries++) {
      size_t pick_index = (size_t)(lensnet_rng_next(&pick) % total), p = 0, k = 0;
      double plus, minus, numeric, analytic, diff;
      float keep;
      for (i = 0; i < m->param_count; i++) {
        if (!m->params[i].trainable) continue;
        if (pick_index < m->params[i].count) { p = i; k = m->params[i].offset + pick_index; break; }
        pick_index -= m->params[i].count;
      }
      (void)p;
      keep = m->values[k];
      m->values[k] = keep + GC_EPS; plus = probe_loss(t, batch, x, R, &saved);
      m->values[k] = keep - GC_EPS; minus = probe_loss(t, batch, x, R, &saved);
      m->values[k] = keep;
      numeric = (plus - minus) / (2 * GC_EPS);
      analytic = lensnet_trainer_grads(t)[k];
      diff = fabs(numeric - analytic);
      if (diff > worst) worst = diff;
      if (diff > 2e-3 + 1e-2 * fabs(numeric)) { bad++; printf("   %s: parameter value %lu analytic %g numeric %g\n", label, (unsigned long)k, analytic, numeric); }
      checked++;
    }
  }
  {
    float *input_grad = (float *)malloc(in_n * sizeof(float));
    size_t tries;
    memcpy(input_grad, lensnet_trainer_input_grad(t), in_n * sizeof(float));
    for (tries = 0; tries < 60; tries++) {
      size_t k = (size_t)(lensnet_rng_next(&pick) % in_n);
      double plus, minus, numeric, diff;
      float keep = x[k];
      x[k] = keep + GC_EPS; plus = probe_loss(t, batch, x, R, &saved);
      x[k] = keep - GC_EPS; minus = probe_loss(t, batch, x, R, &saved);
      x[k] = keep;
      numeric = (plus - minus) / (2 * GC_EPS);
      diff = fabs(numeric - input_grad[k]);
      if (diff > worst) worst = diff;
      if (diff > 2e-3 + 1e-2 * fabs(numeric)) { bad++; printf("   %s: input %lu (x=%g) analytic %g numeric %g\n", label, (unsigned long)k, x[k], input_grad[k], numeric); }
      checked++;
    }
    free(input_grad);
  }
  printf("   %-34s %3lu gradients checked, largest difference %.2e\n", label, (unsigned long)checked, worst);
  CHECK(bad == 0, "%s: %lu of %lu gradients differ from finite differences", label, (unsigned long)bad, (unsigned long)checked);
  free(x); free(R);
  lensnet_trainer_free(t);
  lensnet_model_free(m);
}

/* ---- reference arrays ------------------------------------------------------------------------ */

static lensnet_tensor load_ref(const char *name) {
  lensnet_tensor t;
  lensnet_error err;
  char path[512];
  snprintf(path, sizeof path, "tests/reference/train_%s.npy", name);
  if (lensnet_npy_read(path, &t, &err) != LENSNET_OK) { printf("   cannot read %s: %s\n", path, err.message); memset(&t, 0, sizeof t); }
  return t;
}

/* One model "input 10 1 1; flatten" gives ten trainable values? No: use a dense layer's bias as
 * the ten parameters, so the optimiser sees an ordinary model. */
static void optimizer_check(const char *name, lensnet_optimizer_desc desc) {
  lensnet_tensor p0 = load_ref("opt_p0"), grads = load_ref("opt_grads"), want;
  lensnet_model *m = NULL;
  lensnet_optimizer *o = NULL;
  lensnet_error err;
  float *g, got[60];
  size_t step;
  char ref_name[64];
  snprintf(ref_name, sizeof ref_name, "opt_%s%s", name, desc.clip_norm > 0 ? "_clip" : "");
  want = load_ref(ref_name);
  if (!p0.data || !grads.data || !want.data) { CHECK(0, "reference arrays for %s", ref_name); return; }
  lensnet_model_create("input 1 1 1\ndense name=d out=10 bias=1", &m, &err);
  lensnet_optimizer_create(&desc, m, &o, &err);
  g = (float *)calloc(m->value_count, sizeof(float));
  memcpy(m->values + m->params[1].offset, p0.data, 10 * sizeof(float));
  for (step = 0; step < 6; step++) {
    memset(g, 0, m->value_count * sizeof(float));
    memcpy(g + m->params[1].offset, grads.data + step * 10, 10 * sizeof(float));
    /* the dense weight has zero gradient; with weight decay it moves, but it is not compared */
    lensnet_optimizer_step(o, m, g, 0);
    memcpy(got + step * 10, m->values + m->params[1].offset, 10 * sizeof(float));
  }
  {
    double d = check_max_abs_diff(got, want.data, 60);
    printf("   %-26s max |ours - PyTorch| over 6 steps = %.2e\n", ref_name, d);
    CHECK(d <= 1e-5, "%s differs from PyTorch by %g", ref_name, d);
  }
  free(g);
  lensnet_optimizer_free(o);
  lensnet_model_free(m);
  lensnet_tensor_free(&p0); lensnet_tensor_free(&grads); lensnet_tensor_free(&want);
}

static void loss_check(const char *label, float loss, const float *grad, size_t n, const char *ref_name) {
  lensnet_tensor want = load_ref(ref_name);
  if (!want.data) { CHECK(0, "reference %s", ref_name); return; }
  CHECK(fabs(loss - want.data[0]) <= 1e-5 * (1 + fabs(want.data[0])), "%s loss %g, PyTorch %g", label, loss, want.data[0]);
  CHECK(check_max_abs_diff(grad, want.data + 1, n) <= 1e-6, "%s gradient differs from PyTorch by %g", label, check_max_abs_diff(grad, want.data + 1, n));
  printf("   %-26s loss %.6f (PyTorch %.6f), gradient max diff %.1e\n", label, loss, want.data[0], check_max_abs_diff(grad, want.data + 1, n));
  lensnet_tensor_free(&want);
}

/* ---- rings and discs ------------------------------------------------------------------------ */

/* A 16x16 image of a ring (label 1) or a filled disc (label 0) with a random centre, radius and
 * noise; both have comparable total brightness, so the network must see the shape. */
static void ring_or_disc(lensnet_rng *rng, int ring, float *img) {
  float cx = 7.5f + 3.0f * (lensnet_rng_uniform(rng) - 0.5f), cy = 7.5f + 3.0f * (lensnet_rng_uniform(rng) - 0.5f);
  float r = 3.5f + 2.0f * lensnet_rng_uniform(rng);
  int y, x;
  for (y = 0; y < 16; y++)
    for (x = 0; x < 16; x++) {
      float d = sqrtf((x - cx) * (x - cx) + (y - cy) * (y - cy)), v;
      if (ring) v = fabsf(d - r) < 0.9f ? 1.0f : 0.0f;
      else v = d < r * 0.6f ? 1.0f : 0.0f;
      img[y * 16 + x] = v + 0.15f * lensnet_rng_normal(rng);
    }
}

static double train_rings(lensnet_parallel *par, int epochs, float *final_weights_checksum) {
  const size_t n_train = 1024, n_val = 256, batch = 32;
  lensnet_model *m = NULL;
  lensnet_trainer *t = NULL;
  lensnet_optimizer *o = NULL;
  lensnet_optimizer_desc desc;
  lensnet_error err;
  lensnet_rng rng;
  float *images = (float *)malloc((n_train + n_val) * 256 * sizeof(float)), *labels = (float *)malloc((n_train + n_val) * sizeof(float));
  float logits[64], grad[64];
  size_t i, b, correct = 0;
  int e;
  lensnet_rng_seed(&rng, 99);
  for (i = 0; i < n_train + n_val; i++) {
    labels[i] = (float)(i % 2);
    ring_or_disc(&rng, (int)(i % 2), images + i * 256);
  }
  lensnet_model_create("input 1 16 16\nconv2d name=c1 out=8 kernel=3 padding=1\nrelu\nmaxpool kernel=2\n"
                       "conv2d name=c2 out=16 kernel=3 padding=1\nrelu\nmaxpool kernel=2\nflatten\ndropout p=0.1\n"
                       "dense name=d1 out=32\nrelu\ndense name=d2 out=2", &m, &err);
  lensnet_model_init(m, 1);
  t = make_trainer(m, batch, par, 7, 0, 0);
  memset(&desc, 0, sizeof desc);
  desc.type = LENSNET_OPT_ADAM;
  desc.lr = GC_EPS;
  lensnet_optimizer_create(&desc, m, &o, &err);
  for (e = 0; e < epochs; e++)
    for (b = 0; b + batch <= n_train; b += batch) {
      lensnet_trainer_forward(t, batch, images + b * 256, 1, logits, &err);
      lensnet_loss_cross_entropy(logits, labels + b, batch, 2, NULL, grad);
      lensnet_trainer_zero_grad(t);
      lensnet_trainer_backward(t, batch, grad, &err);
      lensnet_optimizer_step(o, m, lensnet_trainer_grads(t), 0);
    }
  for (b = n_train; b < n_train + n_val; b += batch) {
    lensnet_trainer_forward(t, batch, images + b * 256, 0, logits, &err);
    for (i = 0; i < batch; i++) correct += (logits[2 * i + 1] > logits[2 * i]) == (labels[b + i] > 0.5f);
  }
  if (final_weights_checksum) {
    double s = 0;
    for (i = 0; i < m->value_count; i++) s += m->values[i] * (double)((i % 7) + 1);
    *final_weights_checksum = (float)s;
  }
  free(images); free(labels);
  lensnet_optimizer_free(o); lensnet_trainer_free(t); lensnet_model_free(m);
  return (double)correct / (double)n_val;
}

/* Weights after a few steps, for comparing thread counts bit for bit. */
static void few_steps(lensnet_parallel *par, float *weights_out, size_t *count) {
  lensnet_model *m = NULL;
  lensnet_trainer *t = NULL;
  lensnet_optimizer *o = NULL;
  lensnet_optimizer_desc desc;
  lensnet_error err;
  lensnet_rng rng;
  float x[8 * 2 * 12 * 12], labels[8], logits[16], grad[16];
  size_t i;
  int step;
  lensnet_rng_seed(&rng, 4);
  for (i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = lensnet_rng_normal(&rng);
  for (i = 0; i < 8; i++) labels[i] = (float)(i % 2);
  lensnet_model_create("input 2 12 12\nconv2d name=c1 out=6 kernel=3\nbatchnorm name=bn\nrelu\nconv2d name=c2 out=4 kernel=3 stride=2 groups=2\n"
                       "relu\ndropout p=0.3\nflatten\ndense name=d out=2", &m, &err);
  lensnet_model_init(m, 2);
  t = make_trainer(m, 8, par, 9, 0, 0);
  memset(&desc, 0, sizeof desc);
  desc.type = LENSNET_OPT_ADAMW;
  desc.weight_decay = 0.01f;
  desc.parallel = par;
  lensnet_optimizer_create(&desc, m, &o, &err);
  for (step = 0; step < 3; step++) {
    lensnet_trainer_forward(t, 8, x, 1, logits, &err);
    lensnet_loss_cross_entropy(logits, labels, 8, 2, NULL, grad);
    lensnet_trainer_zero_grad(t);
    lensnet_trainer_backward(t, 8, grad, &err);
    lensnet_optimizer_step(o, m, lensnet_trainer_grads(t), 0);
  }
  memcpy(weights_out, m->values, m->value_count * sizeof(float));
  *count = m->value_count;
  lensnet_optimizer_free(o); lensnet_trainer_free(t); lensnet_model_free(m);
}

/* A parallel-for that runs items in reverse order with changing worker slots: results must not
 * depend on the order or on which slot does what. */
static void reverse_run(void *user, size_t count, lensnet_task_fn task, void *ctx) {
  size_t i;
  (void)user;
  for (i = count; i-- > 0;) task(ctx, i, i % 3);
}

static void test_gradients(void) {
  gradient_check("conv2d", "input 2 7 7\nconv2d name=c out=3 kernel=3", 2);
  gradient_check("conv2d stride 2 padding 1", "input 3 8 8\nconv2d name=c out=4 kernel=3 stride=2 padding=1", 2);
  gradient_check("conv2d groups 2, no bias", "input 4 6 6\nconv2d name=c out=6 kernel=3 groups=2 bias=0", 2);
  gradient_check("conv2d depthwise 5x5 padding 2", "input 3 7 7\nconv2d name=c out=3 kernel=5 padding=2 groups=3", 2);
  gradient_check("dense", "input 3 2 2\nflatten\ndense name=d out=5", 3);
  gradient_check("max pool", "input 2 6 6\nmaxpool kernel=2", 2);
  gradient_check("max pool on an odd size (floor mode)", "input 2 7 5\nmaxpool kernel=2", 2);
  gradient_check("max pool 3 stride 2 padding 1", "input 2 7 7\nmaxpool kernel=3 stride=2 padding=1", 2);
  gradient_check("max pool 3 stride 2 padding 1, even (ResNet)", "input 2 8 8\nmaxpool kernel=3 stride=2 padding=1", 2);
  gradient_check("average pool with padding", "input 2 6 6\navgpool kernel=3 stride=2 padding=1", 2);
  gradient_check("global average pool", "input 3 5 5\nglobal_avgpool", 2);
  gradient_check("relu", "input 2 4 4\nrelu", 2);
  gradient_check("leaky relu", "input 2 4 4\nleaky_relu slope=0.2", 2);
  gradient_check("gelu", "input 2 4 4\ngelu", 2);
  gradient_check("sigmoid", "input 2 4 4\nsigmoid", 2);
  gradient_check("tanh", "input 2 4 4\ntanh", 2);
  gradient_check("softmax", "input 5 2 2\nsoftmax", 2);
  gradient_check("batch norm (training)", "input 3 4 4\nbatchnorm name=bn", 3);
  gradient_check("dropout (training, fixed mask)", "input 2 4 4\ndropout p=0.5", 2);
  gradient_check("residual add", "input 2 5 5\nmark name=skip\nconv2d name=c out=2 kernel=3 padding=1\ntanh\nadd name=skip", 2);
  gradient_check("residual projection (restore)",
                 "input 2 6 6\nmark name=in\nconv2d name=c1 out=3 kernel=3 stride=2 padding=1\ntanh\nmark name=main\nrestore name=in\n"
                 "conv2d name=proj out=3 kernel=1 stride=2 bias=0\nbatchnorm name=proj_bn\nadd name=main", 3);
  /* Networks: tanh where they have ReLU (batch norm centres values on the kink, where finite
   * differences mean nothing; ReLU and max pooling are checked alone above). */
  gradient_check("ResNet basic block with projection",
                 "input 3 7 7\nmark name=b\nconv2d name=b.conv1 out=4 kernel=3 stride=2 padding=1 bias=0\nbatchnorm name=b.bn1\ntanh\n"
                 "conv2d name=b.conv2 out=4 kernel=3 padding=1 bias=0\nbatchnorm name=b.bn2\nmark name=b.main\nrestore name=b\n"
                 "conv2d name=b.downsample.0 out=4 kernel=1 stride=2 bias=0\nbatchnorm name=b.downsample.1\nadd name=b.main\ntanh", 3);
  gradient_check("batch norm over orientations", "input 8 3 3\nbatchnorm name=bn orientations=4", 3);
  gradient_check("p4_lift", "input 2 6 6\np4_lift name=l out=2 kernel=3", 2);
  gradient_check("p4_lift stride 2 padding 1, no bias", "input 2 7 7\np4_lift name=l out=2 kernel=3 stride=2 padding=1 bias=0", 2);
  gradient_check("p4_conv", "input 8 5 5\np4_conv name=c out=2 kernel=3 padding=1", 2);
  gradient_check("p4_conv stride 2", "input 8 7 7\np4_conv name=c out=2 kernel=3 stride=2", 2);
  gradient_check("p4_pool max", "input 8 3 3\np4_pool mode=max", 2);
  gradient_check("p4_pool mean", "input 8 3 3\np4_pool mode=mean", 2);
  gradient_check("small p4 network",
                 "input 1 8 8\np4_lift name=lift out=2 kernel=3 padding=1 bias=0\nbatchnorm name=bn0 orientations=4\ntanh\navgpool kernel=2\n"
                 "p4_conv name=conv1 out=3 kernel=3 padding=1\ntanh\np4_pool mode=mean\nglobal_avgpool\ndense name=fc out=3", 2);
  gradient_check("whole small network",
                 "input 2 12 12\nconv2d name=c1 out=4 kernel=3 stride=2 padding=1\nbatchnorm name=bn1\nrelu\n"
                 "conv2d name=c2 out=4 kernel=3 padding=1 groups=2\nleaky_relu\nmark name=s\nconv2d name=c3 out=4 kernel=3 padding=1\n"
                 "gelu\nadd name=s\nmaxpool kernel=2\ndropout p=0.25\nflatten\ndense name=d1 out=6\ntanh\ndense name=d2 out=3", 2);
}

static void test_input_gradients_alone(void) {
  lensnet_model *m = NULL;
  lensnet_trainer *t = NULL;
  lensnet_error err;
  lensnet_rng rng;
  float x[2 * 2 * 9 * 9], dout[6], full[2 * 2 * 9 * 9];
  size_t i, nonzero = 0;
  lensnet_model_create("input 2 9 9\nconv2d name=c1 out=4 kernel=3\nrelu\nconv2d name=c2 out=3 kernel=3 stride=2\ntanh\nflatten\ndense name=d out=3", &m, &err);
  lensnet_model_init(m, 3);
  lensnet_trainer *only = NULL;
  t = make_trainer(m, 2, NULL, 1, 1, 0);
  only = make_trainer(m, 2, NULL, 1, 1, 1);
  lensnet_rng_seed(&rng, 8);
  for (i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = lensnet_rng_normal(&rng);
  for (i = 0; i < 6; i++) dout[i] = lensnet_rng_normal(&rng);
  CHECK(t && only, "trainers");
  if (t && only) {
    lensnet_trainer_forward(t, 2, x, 0, NULL, &err);
    lensnet_trainer_zero_grad(t);
    lensnet_trainer_backward(t, 2, dout, &err);
    memcpy(full, lensnet_trainer_input_grad(t), sizeof full);
    lensnet_trainer_forward(only, 2, x, 0, NULL, &err);
    lensnet_trainer_zero_grad(only);
    lensnet_trainer_backward(only, 2, dout, &err);
    for (i = 0; i < m->value_count; i++) nonzero += lensnet_trainer_grads(only)[i] != 0.0f;
    CHECK(!memcmp(full, lensnet_trainer_input_grad(only), sizeof full), "input gradients differ when parameter gradients are skipped");
    CHECK(nonzero == 0, "%lu parameter gradients were written although skipped", (unsigned long)nonzero);
  }
  lensnet_trainer_free(t);
  lensnet_trainer_free(only);
  lensnet_model_free(m);
}

static void test_dropout(void) {
  lensnet_model *m = NULL;
  lensnet_trainer *t = NULL;
  lensnet_error err;
  static float x[4 * 64 * 64], y[4 * 64 * 64];
  size_t i, zeros = 0, scaled = 0, n = sizeof x / sizeof x[0];
  for (i = 0; i < n; i++) x[i] = 1.0f;
  lensnet_model_create("input 4 64 64\ndropout p=0.3", &m, &err);
  t = make_trainer(m, 1, NULL, 5, 0, 0);
  lensnet_trainer_forward(t, 1, x, 1, y, &err);
  for (i = 0; i < n; i++) { zeros += y[i] == 0.0f; scaled += fabsf(y[i] - 1.0f / 0.7f) < 1e-6f; }
  /* 16384 draws: the share of zeros has a standard deviation of 0.0036 */
  CHECK(fabs((double)zeros / n - 0.3) < 0.02, "dropped share %.4f, asked 0.3", (double)zeros / n);
  CHECK(zeros + scaled == n, "kept values are scaled by 1/0.7");
  lensnet_trainer_forward(t, 1, x, 0, y, &err);
  for (i = 0, zeros = 0; i < n; i++) zeros += y[i] != 1.0f;
  CHECK(zeros == 0, "inference leaves every value");
  lensnet_trainer_free(t);
  lensnet_model_free(m);
}

/* Dropout's masks: the AVX-512 pass (eight streams in vector lanes, the scale applied on the way)
 * gives the masks and the bits of the portable definition (lensnet__dropout_masks, then
 * lensnet__masked_scale) at every length, blocks cut short included, and each of the 32
 * positions of a block (stream l, 16-bit part q) keeps its share. */
static void test_dropout_lanes(void) {
  static float x[4099], y0[4099], y1[4099];
  static unsigned char m0[4099], m1[4099];
  static const size_t lens[] = {1, 3, 31, 32, 33, 64, 95, 1000, 4099};
  static const float ps[] = {0.2f, 0.5f, 0.9999f, 1e-5f, 0.3f};
  size_t i, a, b, same = 0, total = 0, kept[32], draws = 0;
  lensnet_rng r;
  lensnet_rng_seed(&r, 7);
  for (i = 0; i < 4099; i++) x[i] = lensnet_rng_uniform(&r) * 4.0f - 2.0f;
  x[5] = NAN; x[6] = INFINITY; x[7] = -0.0f; x[40] = -INFINITY;
#ifdef LENSNET__HAVE_AVX512
  if (lensnet_simd_best() != LENSNET_SIMD_AVX512) { printf("SKIP: AVX-512 is not available on this CPU: dropout lanes\n"); return; }
  for (a = 0; a < sizeof lens / sizeof lens[0]; a++)
    for (b = 0; b < sizeof ps / sizeof ps[0]; b++) {
      lensnet_rng r0, r1;
      double keep = 1.0 - (double)ps[b];
      lensnet_rng_seed(&r0, 100 + a * 10 + b);
      r1 = r0;
      lensnet__dropout_masks(&r0, (uint32_t)(keep * 65536.0 + 0.5), m0, lens[a]);
      lensnet__masked_scale(m0, x, y0, lens[a], (float)(1.0 / keep));
      lensnet__dropout_forward(&r1, ps[b], x, y1, m1, lens[a]);
      total++;
      same += !memcmp(m0, m1, lens[a]) && !memcmp(y0, y1, lens[a] * sizeof(float)) && !memcmp(&r0, &r1, sizeof r0);
    }
  CHECK(same == total, "%lu of %lu lengths and rates give the portable masks and bits", (unsigned long)same, (unsigned long)total);
#else
  printf("SKIP: this build has no AVX-512 path: dropout lanes\n");
  (void)a; (void)b; (void)same; (void)total; (void)y0; (void)y1; (void)m1;
#endif
  memset(kept, 0, sizeof kept);
  for (a = 0; a < 200; a++) {
    lensnet_rng_seed(&r, 1000 + a);
    lensnet__dropout_masks(&r, (uint32_t)(0.7 * 65536.0 + 0.5), m0, 4096);
    for (i = 0; i < 4096; i++) kept[i % 32] += m0[i];
    draws += 4096 / 32;
  }
  /* 25,600 draws per position: the kept share has a standard deviation of 0.0029 */
  for (i = 0, same = 0; i < 32; i++) same += fabs((double)kept[i] / draws - 0.7) < 0.015;
  CHECK(same == 32, "%lu of 32 positions of a block keep 0.7 of their elements", (unsigned long)same);
}

/* Adam's vector update (AVX-512 where the CPU has it) gives the bits of PyTorch's rule written out
 * value by value here: moments in float, the step in double. 37 values: vectors and a tail. */
static void test_adam_vector_bits(void) {
  enum { N = 37 };
  float p[N], g[N], m1[N], m2[N], wp[N], wm1[N], wm2[N];
  lensnet_optimizer_desc d;
  lensnet_rng r;
  size_t k, step, same = 0;
  if (lensnet_simd_best() != LENSNET_SIMD_AVX512) { printf("SKIP: the vector Adam update is AVX-512's; this CPU runs the scalar loop\n"); return; }
  memset(&d, 0, sizeof d);
  d.type = LENSNET_OPT_ADAM; d.beta1 = 0.9f; d.beta2 = 0.999f; d.eps = 1e-8f;
  lensnet_rng_seed(&r, 11);
  for (k = 0; k < N; k++) { wp[k] = p[k] = lensnet_rng_uniform(&r) - 0.5f; wm1[k] = m1[k] = 0.0f; wm2[k] = m2[k] = 0.0f; }
  for (step = 1; step <= 3; step++) {
    double bc1 = 1.0 - pow(0.9f, (double)step), bc2 = 1.0 - pow(0.999f, (double)step);
    for (k = 0; k < N; k++) g[k] = (lensnet_rng_uniform(&r) - 0.5f) * (k % 5 == 0 ? 1e-6f : 1.0f);
    lensnet__adam_update(p, g, m1, m2, N, &d, 3e-3f, bc1, bc2);
    for (k = 0; k < N; k++) { /* volatile: each product rounded to float, never fused */
      volatile float a = 0.9f * wm1[k], b = (1.0f - 0.9f) * g[k], c = 0.999f * wm2[k], e = (1.0f - 0.999f) * g[k];
      double mhat, vhat;
      wm1[k] = a + b;
      e = e * g[k];
      wm2[k] = c + e;
      mhat = (double)wm1[k] / bc1;
      vhat = (double)wm2[k] / bc2;
      wp[k] = (float)((double)wp[k] - (double)3e-3f * mhat / (sqrt(vhat) + (double)1e-8f));
    }
    same += !memcmp(p, wp, sizeof p) && !memcmp(m1, wm1, sizeof m1) && !memcmp(m2, wm2, sizeof m2);
  }
  CHECK(same == 3, "%lu of 3 steps give the rule's bits (path %s)", (unsigned long)same, lensnet_simd_name(lensnet_simd_best()));
}

static void test_zero_class_weights(void) {
  float z[4] = {0.3f, -1.0f, 2.0f, 0.5f}, y[2] = {0.0f, 0.0f}, w[2] = {0.0f, 1.0f}, g[4] = {9, 9, 9, 9};
  float loss = lensnet_loss_cross_entropy(z, y, 2, 2, w, g);
  CHECK(loss == 0.0f && g[0] == 0.0f && g[1] == 0.0f && g[2] == 0.0f && g[3] == 0.0f, "loss %g, gradient %g %g", loss, g[0], g[1]);
}

static void test_losses(void) {
  lensnet_tensor z = load_ref("loss_logits"), y = load_ref("loss_labels"), w = load_ref("loss_weights");
  float grad[64], loss;
  if (z.data && y.data && w.data) {
    loss = lensnet_loss_cross_entropy(z.data, y.data, 8, 3, NULL, grad);
    loss_check("cross-entropy", loss, grad, 24, "loss_ce");
    loss = lensnet_loss_cross_entropy(z.data, y.data, 8, 3, w.data, grad);
    loss_check("weighted cross-entropy", loss, grad, 24, "loss_ce_weighted");
    loss = lensnet_loss_focal(z.data, y.data, 8, 3, 2.0f, w.data, grad);
    loss_check("focal (gamma 2, alpha)", loss, grad, 24, "loss_focal");
  } else CHECK(0, "loss reference arrays");
  lensnet_tensor_free(&z); lensnet_tensor_free(&y); lensnet_tensor_free(&w);
  z = load_ref("loss_bce_logits"); y = load_ref("loss_bce_targets");
  if (z.data && y.data) { loss = lensnet_loss_bce_logits(z.data, y.data, 12, 4.0f, grad); loss_check("BCE with pos_weight 4", loss, grad, 12, "loss_bce"); }
  lensnet_tensor_free(&z); lensnet_tensor_free(&y);
  z = load_ref("loss_mse_pred"); y = load_ref("loss_mse_target");
  if (z.data && y.data) { loss = lensnet_loss_mse(z.data, y.data, 10, grad); loss_check("MSE", loss, grad, 10, "loss_mse"); }
  lensnet_tensor_free(&z); lensnet_tensor_free(&y);
  z = load_ref("loss_gnll_outputs"); y = load_ref("loss_gnll_targets");
  if (z.data && y.data) { loss = lensnet_loss_gaussian_nll(z.data, y.data, 4, 3, grad); loss_check("Gaussian NLL", loss, grad, 24, "loss_gnll"); }
  lensnet_tensor_free(&z); lensnet_tensor_free(&y);
}

/* beta-NLL by hand: two objects, one target, mu 0, variances 1 and 4, targets 1 and 4. With beta 1
 * the weights are s^2 over their mean (2.5): 0.4 and 1.6, so the means' gradients are -w d / s^2 / 2
 * = -0.2 and -0.8, in the ratio of the errors (1 : 4) as with the squared error, where the plain NLL
 * gives -0.5 and -0.5; the log-variances' 0 and w (1 - d^2 / s^2) / 4 = -1.2. The value is the plain
 * NLL, (0.5 (0 + 1) + 0.5 (ln 4 + 4)) / 2, whatever beta. */
static void test_beta_nll(void) {
  float out[4] = {0.0f, 0.0f, 0.0f, 0.0f}, y[2] = {1.0f, 4.0f}, g[24], g0[24];
  lensnet_tensor z = load_ref("loss_gnll_outputs"), t = load_ref("loss_gnll_targets");
  double want = (0.5 * 1.0 + 0.5 * (log(4.0) + 4.0)) / 2.0;
  float loss;
  int i, same = 1;
  out[3] = (float)log(4.0); /* per object (k = 1): mu, log s^2 */
  loss = lensnet_loss_gaussian_nll_beta(out, y, 2, 1, 1.0, g);
  CHECK(fabs(loss - want) < 1e-6, "beta 1: the value is the plain NLL, %.7f (want %.7f)", loss, want);
  CHECK(fabs(g[0] + 0.2) < 1e-6 && fabs(g[2] + 0.8) < 1e-6, "beta 1: the means' gradients %.6f %.6f (want -0.2 -0.8)", g[0], g[2]);
  CHECK(fabs(g[1]) < 1e-6 && fabs(g[3] + 1.2) < 1e-6, "beta 1: the log-variances' gradients %.6f %.6f (want 0 -1.2)", g[1], g[3]);
  loss = lensnet_loss_gaussian_nll_beta(out, y, 2, 1, 0.0, g);
  CHECK(fabs(loss - want) < 1e-6 && fabs(g[0] + 0.5) < 1e-6 && fabs(g[2] + 0.5) < 1e-6, "beta 0: means' gradients %.6f %.6f (want -0.5 -0.5)",
        g[0], g[2]);
  { /* a log-variance far beyond exp's range (a diverging head) leaves the weights finite */
    float big[4] = {0.0f, 800.0f, 0.0f, 0.0f};
    lensnet_loss_gaussian_nll_beta(big, y, 2, 1, 1.0, g);
    CHECK(g[0] == g[0] && g[2] == g[2] && fabsf(g[0]) < 1e30f && fabsf(g[1]) < 1e30f && fabsf(g[2]) < 1e30f && fabsf(g[3]) < 1e30f,
          "log-variance 800: gradients %g %g %g %g", g[0], g[1], g[2], g[3]);
  }
  if (z.data && t.data) {
    float l1 = lensnet_loss_gaussian_nll(z.data, t.data, 4, 3, g0), l2 = lensnet_loss_gaussian_nll_beta(z.data, t.data, 4, 3, 0.0, g);
    for (i = 0; i < 24; i++) same &= g[i] == g0[i];
    CHECK(l1 == l2 && same, "beta 0 is the plain NLL, bit for bit");
    l2 = lensnet_loss_gaussian_nll_beta(z.data, t.data, 4, 3, 0.5, g);
    CHECK(l1 == l2, "beta 0.5: the value is the plain NLL (%g, %g)", l1, l2);
  } else CHECK(0, "Gaussian NLL reference arrays");
  lensnet_tensor_free(&z); lensnet_tensor_free(&t);
}

static void test_optimisers(void) {
  lensnet_optimizer_desc d;
  int clip;
  for (clip = 0; clip < 2; clip++) {
    float c = clip ? 0.5f : 0.0f;
    memset(&d, 0, sizeof d); d.type = LENSNET_OPT_SGD; d.lr = 0.1f; d.clip_norm = c; optimizer_check("sgd", d);
    memset(&d, 0, sizeof d); d.type = LENSNET_OPT_SGD; d.lr = 0.1f; d.momentum = 0.9f; d.weight_decay = 0.01f; d.clip_norm = c; optimizer_check("sgd_momentum_wd", d);
    memset(&d, 0, sizeof d); d.type = LENSNET_OPT_SGD; d.lr = 0.05f; d.momentum = 0.8f; d.nesterov = 1; d.weight_decay = 0.001f; d.clip_norm = c; optimizer_check("sgd_nesterov", d);
    memset(&d, 0, sizeof d); d.type = LENSNET_OPT_ADAM; d.lr = 0.01f; d.clip_norm = c; optimizer_check("adam", d);
    memset(&d, 0, sizeof d); d.type = LENSNET_OPT_ADAM; d.lr = 0.02f; d.beta1 = 0.8f; d.beta2 = 0.99f; d.weight_decay = 0.05f; d.clip_norm = c; optimizer_check("adam_wd", d);
    memset(&d, 0, sizeof d); d.type = LENSNET_OPT_ADAMW; d.lr = 0.01f; d.weight_decay = 0.1f; d.clip_norm = c; optimizer_check("adamw", d);
  }
}

static void test_schedules(void) {
  lensnet_tensor step_ref = load_ref("sched_step"), cos_ref = load_ref("sched_cosine");
  lensnet_schedule s;
  size_t e;
  double worst_step = 0, worst_cos = 0;
  memset(&s, 0, sizeof s);
  s.type = LENSNET_SCHEDULE_STEP; s.step_size = 3; s.gamma = 0.5f;
  for (e = 0; step_ref.data && e < 12; e++) { double d = fabs(lensnet_schedule_lr(&s, 0.1f, e) - step_ref.data[e]); if (d > worst_step) worst_step = d; }
  memset(&s, 0, sizeof s);
  s.type = LENSNET_SCHEDULE_COSINE; s.total = 10; s.min_lr = 0.001f;
  /* PyTorch's cosine rises again after T_max; ours holds min_lr, so compare epochs 0..10 */
  for (e = 0; cos_ref.data && e <= 10; e++) { double d = fabs(lensnet_schedule_lr(&s, 0.1f, e) - cos_ref.data[e]); if (d > worst_cos) worst_cos = d; }
  CHECK(step_ref.data && worst_step < 1e-7, "StepLR differs by %g", worst_step);
  CHECK(cos_ref.data && worst_cos < 1e-6, "CosineAnnealingLR differs by %g", worst_cos);
  memset(&s, 0, sizeof s);
  s.warmup = 4;
  CHECK(fabs(lensnet_schedule_lr(&s, 0.1f, 0) - 0.025) < 1e-7 && fabs(lensnet_schedule_lr(&s, 0.1f, 3) - 0.1) < 1e-7, "linear warm-up");
  lensnet_tensor_free(&step_ref); lensnet_tensor_free(&cos_ref);
}

static void test_thread_independence(void) {
  /* few_steps runs its optimiser over the same workers as its trainer */
  static float serial[4096], reversed[4096], two[4096], three[4096];
  size_t n1, n2, n3, n4;
  lensnet_parallel rev;
  lens_pool *p2 = lens_pool_create(2), *p3 = lens_pool_create(3);
  lensnet_parallel par2 = lens_pool_parallel(p2), par3 = lens_pool_parallel(p3);
  rev.run = reverse_run; rev.user = NULL; rev.workers = 3;
  few_steps(NULL, serial, &n1);
  few_steps(&rev, reversed, &n2);
  few_steps(&par2, two, &n3);
  few_steps(&par3, three, &n4);
  CHECK(n1 < 4096 && n1 == n2 && n1 == n3 && n1 == n4, "same model");
  CHECK(!memcmp(serial, reversed, n1 * sizeof(float)), "reverse order gives the same weights bit for bit");
  CHECK(!memcmp(serial, two, n1 * sizeof(float)), "2 threads give the same weights bit for bit");
  CHECK(!memcmp(serial, three, n1 * sizeof(float)), "3 threads give the same weights bit for bit");
  lens_pool_free(p2); lens_pool_free(p3);
}

/* An optimiser step in pieces over workers: the bits of the serial step for every rule, with and
 * without clipping, on a parameter of several pieces (10100 values); the norm it returns against
 * the norm summed here in long double. */
static void optimizer_pieces(lensnet_optimizer_type type, float clip, float momentum, float wd, const lensnet_parallel *par, float *out,
                             double *norm_err) {
  lensnet_model *m = NULL;
  lensnet_optimizer *o = NULL;
  lensnet_optimizer_desc desc;
  lensnet_error err;
  lensnet_rng rng;
  float *g;
  size_t i;
  int step;
  lensnet_model_create("input 100 1 1\nflatten\ndense name=d out=101", &m, &err);
  lensnet_model_init(m, 5);
  memset(&desc, 0, sizeof desc);
  desc.type = type; desc.lr = 0.01f; desc.clip_norm = clip; desc.momentum = momentum; desc.weight_decay = wd; desc.parallel = par;
  lensnet_optimizer_create(&desc, m, &o, &err);
  g = (float *)malloc(m->value_count * sizeof(float));
  lensnet_rng_seed(&rng, 12);
  *norm_err = 0;
  for (step = 0; step < 4; step++) {
    long double sq = 0;
    float norm;
    for (i = 0; i < m->value_count; i++) { g[i] = 0.1f * lensnet_rng_normal(&rng); sq += (long double)g[i] * g[i]; }
    norm = lensnet_optimizer_step(o, m, g, 0);
    if (fabs(norm - (double)sqrtl(sq)) / (double)sqrtl(sq) > *norm_err) *norm_err = fabs(norm - (double)sqrtl(sq)) / (double)sqrtl(sq);
  }
  memcpy(out, m->values, m->value_count * sizeof(float));
  free(g);
  lensnet_optimizer_free(o);
  lensnet_model_free(m);
}

static void test_optimizer_pieces(void) {
  static float serial[10201], reversed[10201], two[10201];
  lens_pool *p2 = lens_pool_create(2);
  lensnet_parallel rev, par2 = lens_pool_parallel(p2);
  const lensnet_optimizer_type types[3] = {LENSNET_OPT_SGD, LENSNET_OPT_ADAM, LENSNET_OPT_ADAMW};
  size_t n = 100 * 101 + 101, bad = 0;
  double worst = 0, e;
  int t, c;
  rev.run = reverse_run; rev.user = NULL; rev.workers = 3;
  for (t = 0; t < 3; t++)
    for (c = 0; c < 2; c++) {
      float clip = c ? 1.0f : 0.0f; /* the gradients' norm is about 10: clipped to 1 */
      optimizer_pieces(types[t], clip, 0.9f, 0.01f, NULL, serial, &e);
      worst = e > worst ? e : worst;
      optimizer_pieces(types[t], clip, 0.9f, 0.01f, &rev, reversed, &e);
      optimizer_pieces(types[t], clip, 0.9f, 0.01f, &par2, two, &e);
      bad += memcmp(serial, reversed, n * sizeof(float)) != 0;
      bad += memcmp(serial, two, n * sizeof(float)) != 0;
    }
  CHECK(bad == 0, "%lu of 12 runs in pieces over workers differ from the serial step", (unsigned long)bad);
  { /* plain SGD, replayed here value by value: every piece updated once a step, none twice (a
     * missed or doubled update is off by about 1e-3; compilers that fuse p - lr g into one
     * multiply-add, as on s390x, round differently by about 1e-9: hence 1e-6) */
    lensnet_model *m = NULL;
    lensnet_error err;
    lensnet_rng rng;
    size_t i, wrong = 0;
    int step;
    optimizer_pieces(LENSNET_OPT_SGD, 0.0f, 0.0f, 0.0f, &par2, two, &e);
    lensnet_model_create("input 100 1 1\nflatten\ndense name=d out=101", &m, &err);
    lensnet_model_init(m, 5);
    memcpy(serial, m->values, n * sizeof(float));
    lensnet_rng_seed(&rng, 12);
    for (step = 0; step < 4; step++)
      for (i = 0; i < n; i++) serial[i] = serial[i] - 0.01f * (0.1f * lensnet_rng_normal(&rng));
    for (i = 0; i < n; i++) wrong += !(fabs((double)serial[i] - (double)two[i]) <= 1e-6);
    CHECK(m->value_count == n && wrong == 0, "plain SGD: %lu of %lu values differ from p - lr g, step by step, by more than 1e-6",
          (unsigned long)wrong, (unsigned long)n);
    lensnet_model_free(m);
  }
  CHECK(worst < 1e-6, "the returned norm is the gradients' norm (relative error %.2e)", worst);
  lens_pool_free(p2);
}

static void test_learns_rings(void) {
  float sum1, sum2;
  lens_pool *pool = lens_pool_create(2);
  lensnet_parallel par = lens_pool_parallel(pool);
  double acc = train_rings(NULL, 6, &sum1);
  printf("   validation accuracy after 6 epochs: %.1f%%\n", 100 * acc);
  CHECK(acc >= 0.95, "accuracy %.3f below 0.95", acc);
  CHECK(train_rings(&par, 6, &sum2) == acc && sum1 == sum2, "the 2-thread run ends on the same weights");
  lens_pool_free(pool);
}

/* Dropout's select (lensnet__masked_scale, forward and backward alike) against the plain
 * `mask ? x * scale : 0` on the values that tell selects apart: a dropped negative, zero, infinite
 * or NaN value gives +0.0, a kept one x * scale, bit for bit. */
static void test_dropout_select(void) {
  static const float x[12] = {1.5f, -2.25f, 0.0f, -0.0f, INFINITY, -INFINITY, NAN, 3e38f, -1e-40f, 7.0f, -7.0f, 0.1f};
  unsigned char mask[12];
  float y[12], want[12];
  size_t k, round, same = 0;
  for (round = 0; round < 2; round++) {
    for (k = 0; k < 12; k++) mask[k] = (unsigned char)((k + round) % 2);
    lensnet__masked_scale(mask, x, y, 12, 1.25f);
    for (k = 0; k < 12; k++) {
      want[k] = mask[k] ? x[k] * 1.25f : 0.0f;
      same += !memcmp(&y[k], &want[k], sizeof(float));
    }
  }
  CHECK(same == 24, "%lu of 24 values have the bits of the plain select", (unsigned long)same);
}

/* A lean trainer (ReLU and dropout over their inputs, the convolution's ReLU on the way, a max
 * pool after a ReLU keeping its windows' winners, a convolution 64 or more wide pooling on the
 * way) gives what a plain one gives, bit for bit: outputs, parameter and input gradients of a
 * batch with dropout on, with normal and with guided ReLU backward, over conv-ReLU-dropout,
 * conv-ReLU-pool-dropout, BN-ReLU-pool-dropout and dense-ReLU-dropout chains; its ReLU and dropout
 * outputs share their input's buffer. */
static void test_lean_activations(void) {
  static const char *archs[3] = {
      "input 2 14 14\nconv2d name=a out=6 kernel=3\nrelu\ndropout p=0.3\nconv2d name=b out=5 kernel=3 padding=1\n"
      "relu\nmaxpool kernel=2\ndropout p=0.2\nflatten\ndense name=d out=9\nrelu\ndropout p=0.5\ndense name=e out=3",
      "input 2 66 68\nconv2d name=a out=7 kernel=3\nrelu\nmaxpool kernel=2\ndropout p=0.3\nconv2d name=b out=4 kernel=3\n"
      "relu\nmaxpool kernel=2\nflatten\ndense name=e out=3",
      /* batch norm runs over the batch, so the ReLU starts a run: its pool keeps its own output */
      "input 2 10 10\nconv2d name=a out=4 kernel=3\nbatchnorm name=n\nrelu\nmaxpool kernel=2\ndropout p=0.4\nflatten\n"
      "dense name=e out=3"};
  static const size_t refusals[3] = {3, 2, 0}; /* ReLUs and pools the lean trainer writes over or does not keep */
  size_t a;
  for (a = 0; a < 3; a++) {
    lensnet_model *m = NULL;
    lensnet_error err;
    lensnet_rng rng;
    float *x, R[4 * 3];
    size_t i, n, mode, per;
    if (lensnet_model_create(archs[a], &m, &err) != LENSNET_OK) { CHECK(0, "model: %s", err.message); return; }
    lensnet_model_init(m, 5);
    per = m->in_c * m->in_h * m->in_w;
    x = (float *)malloc(4 * per * sizeof(float));
    lensnet_rng_seed(&rng, 6);
    for (i = 0; i < 4 * per; i++) x[i] = lensnet_rng_normal(&rng);
    for (i = 0; i < sizeof R / sizeof R[0]; i++) R[i] = lensnet_rng_normal(&rng);
    n = m->value_count;
    for (mode = 0; mode < 2; mode++) {
      lensnet_trainer *t[2];
      lensnet_trainer_desc d;
      float *grads[2], *out[2], *dx[2];
      int k, same;
      for (k = 0; k < 2; k++) {
        memset(&d, 0, sizeof d);
        d.batch_cap = 4; d.seed = 9; d.input_grad = 1; d.lean_activations = k;
        d.relu_backward = mode ? LENSNET_RELU_BACKWARD_GUIDED : LENSNET_RELU_BACKWARD_NORMAL;
        t[k] = NULL;
        if (lensnet_trainer_create(m, &d, &t[k], &err) != LENSNET_OK) { CHECK(0, "trainer: %s", err.message); return; }
        lensnet_trainer_zero_grad(t[k]);
        CHECK(lensnet_trainer_forward(t[k], 4, x, 1, NULL, &err) == LENSNET_OK && lensnet_trainer_backward(t[k], 4, R, &err) == LENSNET_OK,
              "forward and backward: %s", err.message);
        grads[k] = lensnet_trainer_grads(t[k]);
        out[k] = (float *)lensnet_trainer_output(t[k]);
        dx[k] = (float *)lensnet_trainer_input_grad(t[k]);
      }
      same = !memcmp(grads[0], grads[1], n * sizeof(float)) && !memcmp(out[0], out[1], 4 * 3 * sizeof(float)) &&
             !memcmp(dx[0], dx[1], 4 * per * sizeof(float));
      CHECK(same, "model %lu, %s ReLU backward: the lean trainer's outputs and gradients equal the plain one's bit for bit",
            (unsigned long)a, mode ? "guided" : "normal");
      { /* lensnet_trainer_backward_from each layer: the same, or refused at a ReLU the lean trainer does not keep */
        size_t l, refused = 0, differ = 0, most = 0;
        float *g;
        for (l = 0; l < m->layer_count; l++)
          if (lensnet__layer_out_n(&m->layers[l]) > most) most = lensnet__layer_out_n(&m->layers[l]);
        g = (float *)malloc(4 * most * sizeof(float));
        for (l = 0; l < m->layer_count; l++) {
          size_t on = 4 * lensnet__layer_out_n(&m->layers[l]), q;
          lensnet_result res[2];
          for (q = 0; q < on; q++) g[q] = lensnet_rng_normal(&rng);
          for (k = 0; k < 2; k++) {
            lensnet_trainer_zero_grad(t[k]);
            res[k] = lensnet_trainer_backward_from(t[k], l, 4, g, &err);
          }
          if (res[0] != LENSNET_OK) differ++;
          else if (res[1] != LENSNET_OK)
            refused += m->layers[l].type == LENSNET_LAYER_RELU || m->layers[l].type == LENSNET_LAYER_MAXPOOL ? 1 : 100;
          else
            differ += memcmp(grads[0], grads[1], n * sizeof(float)) != 0 || memcmp(dx[0], dx[1], 4 * per * sizeof(float)) != 0;
        }
        CHECK(differ == 0 && refused == refusals[a],
              "model %lu: backward from each layer: %lu differ, %lu refused (only ReLUs and pools written over or not kept: %lu)",
              (unsigned long)a, (unsigned long)differ, (unsigned long)refused, (unsigned long)refusals[a]);
        free(g);
      }
      if (a == 0)
        CHECK(lensnet_trainer_activation(t[1], 1) == lensnet_trainer_activation(t[1], 0) &&
                  lensnet_trainer_activation(t[1], 2) == lensnet_trainer_activation(t[1], 0) &&
                  lensnet_trainer_activation(t[1], 4) == lensnet_trainer_activation(t[1], 3) &&
                  lensnet_trainer_activation(t[1], 6) == lensnet_trainer_activation(t[1], 5) &&
                  lensnet_trainer_activation(t[1], 5) != lensnet_trainer_activation(t[1], 4) &&
                  lensnet_trainer_activation(t[1], 9) == lensnet_trainer_activation(t[1], 8) &&
                  lensnet_trainer_activation(t[1], 10) == lensnet_trainer_activation(t[1], 8) &&
                  lensnet_trainer_activation(t[0], 1) != lensnet_trainer_activation(t[0], 0),
              "ReLU and dropout share their input's buffer in the lean trainer only (a pool's input stays its own)");
      else if (a == 2)
        CHECK(lensnet_trainer_activation(t[1], 5) != lensnet_trainer_activation(t[1], 4),
              "a dropout after a pool whose ReLU starts a run keeps its own buffer");
      else
        CHECK(lensnet__conv_pools_in_training(t[1], 0) && !lensnet__conv_pools_in_training(t[1], 5) &&
                  !lensnet__conv_pools_in_training(t[0], 0),
              "the 64-wide convolution pools on the way in the lean trainer, the narrow one does not");
      lensnet_trainer_free(t[0]);
      lensnet_trainer_free(t[1]);
    }
    free(x);
    lensnet_model_free(m);
  }
}

/* desc.winograd: on AVX-512 the 3x3 and 5x5 stride-1 convolutions without groups, 8 input channels
 * or more, take Winograd's F(2x2, 3x3) or F(2x2, 5x5) for their forward (not the one pooled on the way) and their input gradient, and a
 * training step (dropout on, lean activations; the second of two, with new weights) gives the
 * exact trainer's outputs, parameter gradients and input gradients to rounding: each within 1e-5 of the largest of its kind (a
 * wrong transform or tile is off by whole terms). Without AVX-512: the same bits. */
static void test_winograd_trainer(void) {
  const char *arch = "input 2 30 66\nconv2d name=a out=8 kernel=3\nrelu\nmaxpool kernel=2\nconv2d name=b out=12 kernel=3 padding=1\n"
                     "relu\ndropout p=0.3\nconv2d name=c out=11 kernel=3\nrelu\nmaxpool kernel=2\nconv2d name=e out=9 kernel=5 padding=2\n"
                     "conv2d name=d out=5 kernel=3 stride=2\nflatten\ndense name=f out=3";
  /* a (2 input channels, 64 wide, ReLU and pool after it: pooled on the way) has the direct sums
   * forward and Winograd's input gradient (8 channels in); b, c (3x3) and e (5x5) Winograd's both
   * ways; d (stride 2) neither */
  lensnet_model *m = NULL;
  lensnet_error err;
  lensnet_rng rng;
  lensnet_trainer *t[2] = {NULL, NULL};
  float *x, R[4 * 3];
  size_t i, per, n, fwd = 0, bwd = 0;
  int k, avx512 = lensnet_simd_best() == LENSNET_SIMD_AVX512;
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { CHECK(0, "model: %s", err.message); return; }
  lensnet_model_init(m, 5);
  per = m->in_c * m->in_h * m->in_w;
  n = m->value_count;
  x = (float *)malloc(4 * per * sizeof(float));
  lensnet_rng_seed(&rng, 6);
  for (i = 0; i < 4 * per; i++) x[i] = lensnet_rng_normal(&rng);
  for (i = 0; i < sizeof R / sizeof R[0]; i++) R[i] = lensnet_rng_normal(&rng);
  for (k = 0; k < 2; k++) {
    lensnet_trainer_desc d;
    memset(&d, 0, sizeof d);
    d.batch_cap = 4; d.seed = 9; d.input_grad = 1; d.lean_activations = 1; d.winograd = k;
    if (lensnet_trainer_create(m, &d, &t[k], &err) != LENSNET_OK) { CHECK(0, "trainer: %s", err.message); break; }
    lensnet_trainer_zero_grad(t[k]);
    CHECK(lensnet_trainer_forward(t[k], 4, x, 1, NULL, &err) == LENSNET_OK && lensnet_trainer_backward(t[k], 4, R, &err) == LENSNET_OK,
          "forward and backward: %s", err.message);
  }
  if (t[0] && t[1]) { /* a second step with other weights: U made again for them, forward and backward */
    for (i = 0; i < n; i++) m->values[i] = m->values[i] * 0.75f + 0.01f * lensnet_rng_normal(&rng);
    for (k = 0; k < 2; k++) {
      lensnet_trainer_zero_grad(t[k]);
      CHECK(lensnet_trainer_forward(t[k], 4, x, 1, NULL, &err) == LENSNET_OK && lensnet_trainer_backward(t[k], 4, R, &err) == LENSNET_OK,
            "second step: %s", err.message);
    }
  }
  if (t[0] && t[1]) {
    const float *a[3], *b[3];
    size_t len[3], j;
    static const char *what[3] = {"outputs", "parameter gradients", "input gradients"};
    for (i = 0; i < m->layer_count; i++) { fwd += t[1]->wino_fwd[i]; bwd += t[1]->wino_bwd[i]; }
    CHECK(avx512 ? fwd == 3 && bwd == 4 && t[1]->wino_fwd[3] && t[1]->wino_fwd[6] && t[1]->wino_fwd[9] && !t[1]->wino_fwd[0] && t[1]->wino_bwd[0] : fwd == 0 && bwd == 0,
          "Winograd's layers: %lu forward, %lu input gradients (AVX-512 %d)", (unsigned long)fwd, (unsigned long)bwd, avx512);
    a[0] = lensnet_trainer_output(t[0]); b[0] = lensnet_trainer_output(t[1]); len[0] = 4 * 3;
    a[1] = lensnet_trainer_grads(t[0]); b[1] = lensnet_trainer_grads(t[1]); len[1] = n;
    a[2] = lensnet_trainer_input_grad(t[0]); b[2] = lensnet_trainer_input_grad(t[1]); len[2] = 4 * per;
    for (j = 0; j < 3; j++) {
      double most = 0.0, scale = 0.0;
      for (i = 0; i < len[j]; i++) {
        if (fabs(a[j][i] - b[j][i]) > most) most = fabs(a[j][i] - b[j][i]);
        if (fabs(a[j][i]) > scale) scale = fabs(a[j][i]);
      }
      printf("   %s: max |Winograd - exact| = %.3g of %.3g\n", what[j], most, scale);
      if (avx512) CHECK(most <= 1e-5 * scale && scale > 0.0, "%s within 1e-5 of the largest (%g of %g)", what[j], most, scale);
      else CHECK(most == 0.0, "no AVX-512: %s the same bits", what[j]);
    }
  }
  lensnet_trainer_free(t[0]);
  lensnet_trainer_free(t[1]);
  free(x);
  lensnet_model_free(m);
}

int main(void) {
  TEST("backward passes against finite differences") test_gradients();
  TEST("input gradients alone (skip_param_grads) equal those of a full backward pass") test_input_gradients_alone();
  TEST("dropout drops the asked share and scales the rest by 1/(1-p); inference passes all") test_dropout();
  TEST("dropout keeps x / (1-p) or gives +0.0, bit for bit, whatever x holds") test_dropout_select();
  TEST("dropout's vector masks are the portable definition's, and every lane keeps its share") test_dropout_lanes();
  TEST("Adam's vector update gives the bits of the rule value by value") test_adam_vector_bits();
  TEST("a batch whose class weights sum to zero has loss 0 and no gradient, not NaN") test_zero_class_weights();
  TEST("losses against PyTorch (value and gradient)") test_losses();
  TEST("beta-NLL: the hard objects' means keep their pull, the value stays the NLL") test_beta_nll();
  TEST("optimisers against PyTorch") test_optimisers();
  TEST("learning-rate schedules against PyTorch") test_schedules();
  TEST("results do not depend on the number of threads") test_thread_independence();
  TEST("an optimiser step in pieces over workers: the serial bits") test_optimizer_pieces();
  TEST("a lean trainer (ReLU and dropout over their inputs) computes what a plain one does") test_lean_activations();
  TEST("desc.winograd: one step's outputs and gradients equal the exact trainer's to rounding") test_winograd_trainer();
  TEST("a small CNN learns rings from discs (>= 95% validation accuracy)") test_learns_rings();
  return check_summary();
}
