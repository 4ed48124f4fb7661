/* train_rings.c - train a small CNN to tell rings (Einstein-ring-like) from discs, with the
 * training API of lensnet.h: trainer, loss, optimiser.
 *
 *   cc -O2 -march=native -I.. train_rings.c -lm -o train_rings && ./train_rings */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include <stdio.h>
#include <math.h>

#define N 1024
#define BATCH 32

static void draw(lensnet_rng *rng, int ring, float *img) {
  float cx = 7.5f + 3 * (lensnet_rng_uniform(rng) - 0.5f), cy = 7.5f + 3 * (lensnet_rng_uniform(rng) - 0.5f);
  float r = 3.5f + 2 * lensnet_rng_uniform(rng);
  int y, x;
  for (y = 0; y < 16; y++)
    for (x = 0; x < 16; x++) {
      float d = sqrtf((x - cx) * (x - cx) + (y - cy) * (y - cy));
      img[y * 16 + x] = (ring ? fabsf(d - r) < 0.9f : d < 0.6f * r) + 0.15f * lensnet_rng_normal(rng);
    }
}

int main(void) {
  static float images[N * 256], labels[N];
  float logits[BATCH * 2], grad[BATCH * 2];
  lensnet_model *m;
  lensnet_trainer *t;
  lensnet_optimizer *opt;
  lensnet_optimizer_desc desc = {LENSNET_OPT_ADAM, 3e-3f, 0, 0, 0, 0, 0, 0, 0};
  lensnet_trainer_desc tdesc = {0, NULL, 0, 0, 0, 0, 0, LENSNET_RELU_BACKWARD_NORMAL};
  lensnet_error err;
  lensnet_rng rng;
  int i, epoch, correct = 0;
  lensnet_rng_seed(&rng, 1);
  for (i = 0; i < N; i++) { labels[i] = (float)(i % 2); draw(&rng, i % 2, images + i * 256); }
  if (lensnet_model_create("input 1 16 16\nconv2d name=c1 out=8 kernel=3 padding=1\nrelu\nmaxpool kernel=2\n"
                           "conv2d name=c2 out=16 kernel=3 padding=1\nrelu\nmaxpool kernel=2\nflatten\n"
                           "dense name=d1 out=32\nrelu\ndense name=d2 out=2", &m, &err) != LENSNET_OK) { puts(err.message); return 1; }
  lensnet_model_init(m, 42);
  tdesc.batch_cap = BATCH;
  tdesc.seed = 7;
  lensnet_trainer_create(m, &tdesc, &t, &err);
  lensnet_optimizer_create(&desc, m, &opt, &err);
  for (epoch = 0; epoch < 5; epoch++) {
    double loss = 0;
    for (i = 0; i + BATCH <= N * 3 / 4; i += BATCH) {
      lensnet_trainer_forward(t, BATCH, images + i * 256, 1, logits, &err);
      loss += lensnet_loss_cross_entropy(logits, labels + i, BATCH, 2, NULL, grad);
      lensnet_trainer_zero_grad(t);
      lensnet_trainer_backward(t, BATCH, grad, &err);
      lensnet_optimizer_step(opt, m, lensnet_trainer_grads(t), 0);
    }
    printf("epoch %d: mean loss %.4f\n", epoch + 1, loss / (N * 3 / 4 / BATCH));
  }
  for (i = N * 3 / 4; i < N; i++) {
    lensnet_model_forward(m, 1, images + i * 256, logits, NULL, &err);
    correct += (logits[1] > logits[0]) == (labels[i] > 0.5f);
  }
  printf("held-out accuracy: %.1f%%\n", 100.0 * correct / (N / 4));
  lensnet_model_save(m, "rings.safetensors", &err);
  lensnet_optimizer_free(opt); lensnet_trainer_free(t); lensnet_model_free(m);
  return 0;
}
