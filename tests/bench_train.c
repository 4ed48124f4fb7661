/* bench_train.c - single-thread training throughput of lensnet.h: OU-66 and OU-200, batch 32,
 * Adam, softmax cross-entropy (the workload of ../shared/peers/torch_bench.py), in images/s:
 *   ours OU-66 train batch=32: 250.1 img/s
 * tests/bench.sh pairs these lines with PyTorch's, measured in the same run. No assertions. */
#define _POSIX_C_SOURCE 200112L
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Best time of one training step (forward, loss, backward, Adam) over `samples` steps. */
static double train_step_seconds(const char *arch, int samples) {
  const size_t batch = 32;
  lensnet_model *m;
  lensnet_trainer *t;
  lensnet_optimizer *o;
  lensnet_optimizer_desc desc;
  lensnet_trainer_desc tdesc;
  lensnet_error err;
  lensnet_rng rng;
  float *x, labels[32], logits[64], grad[64];
  size_t i, n;
  double best = 1e30;
  int s;
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { printf("%s\n", err.message); return -1; }
  lensnet_model_init(m, 1);
  memset(&tdesc, 0, sizeof tdesc);
  tdesc.batch_cap = batch;
  tdesc.seed = 2;
  if (lensnet_trainer_create(m, &tdesc, &t, &err) != LENSNET_OK) { printf("%s\n", err.message); return -1; }
  memset(&desc, 0, sizeof desc);
  desc.type = LENSNET_OPT_ADAM;
  desc.lr = 3e-4f;
  lensnet_optimizer_create(&desc, m, &o, &err);
  n = batch * m->in_c * m->in_h * m->in_w;
  x = (float *)malloc(n * sizeof(float));
  lensnet_rng_seed(&rng, 3);
  for (i = 0; i < n; i++) x[i] = lensnet_rng_uniform(&rng);
  for (i = 0; i < batch; i++) labels[i] = (float)(lensnet_rng_next(&rng) & 1);
  for (s = 0; s < samples + 1; s++) {
    double t0 = now_seconds(), dt;
    lensnet_trainer_forward(t, batch, x, 1, logits, &err);
    lensnet_loss_cross_entropy(logits, labels, batch, 2, NULL, grad);
    lensnet_trainer_zero_grad(t);
    lensnet_trainer_backward(t, batch, grad, &err);
    lensnet_optimizer_step(o, m, lensnet_trainer_grads(t), 0);
    dt = now_seconds() - t0;
    if (s > 0 && dt < best) best = dt; /* the first step warms up */
  }
  free(x);
  lensnet_optimizer_free(o);
  lensnet_trainer_free(t);
  lensnet_model_free(m);
  return best;
}

int main(void) {
  const char *scale_text = getenv("LENS_BENCH_SCALE");
  double scale = scale_text ? atof(scale_text) : 1.0, t66, t200;
  int n66 = (int)(8 * scale) + 2, n200 = (int)(2 * scale) + 1;
  printf("ours training runs on one thread (batch 32, Adam)\n");
  t66 = train_step_seconds("ou66(4)", n66);
  if (t66 > 0) printf("ours OU-66 train batch=32: %.1f img/s\n", 32.0 / t66);
  fflush(stdout);
  t200 = train_step_seconds("ou200(4)", n200);
  if (t200 > 0) printf("ours OU-200 train batch=32: %.1f img/s\n", 32.0 / t200);
  return 0;
}
