/* fuzz_model.h - running a model the fuzz targets built (include after lensnet.h).
 *
 * A model built from fuzzed text or weights is checked further by running it on one input, but
 * only when that is cheap: the architecture text can describe networks whose forward pass takes
 * minutes, which would stall the fuzzer without finding anything the cheap ones do not.
 */
#ifndef LENS_FUZZ_MODEL_H
#define LENS_FUZZ_MODEL_H
#include <math.h>
#include <stdlib.h>

/* A bound on the multiply-adds of one forward pass: each layer's weights times its output
 * positions, and its input times its window for layers without weights. 0 when past `limit`. */
static size_t fuzz_forward_cost(const lensnet_model *m, size_t limit) {
  size_t i, cost = 0;
  for (i = 0; i < m->layer_count; i++) {
    const lensnet_layer *L = &m->layers[i];
    double positions = (double)L->out_h * (double)L->out_w, window = (double)(L->kernel + 1) * (double)(L->kernel + 1);
    double c = L->weight >= 0 ? (double)m->params[L->weight].count * positions
                              : (double)L->in_c * (double)L->in_h * (double)L->in_w * window;
    c += (double)L->out_c * positions;
    if ((double)cost + c > (double)limit) return 0;
    cost += (size_t)c;
  }
  return cost ? cost : 1;
}

/* One forward pass of a random input when cheap; the outputs must be written (a NaN is a
 * number the network may compute, so only their presence is checked: ASan flags reads past the
 * workspace). Returns whether it ran. */
static int fuzz_model_run(const lensnet_model *m, uint64_t seed) {
  size_t n = m->in_c * m->in_h * m->in_w, ws = lensnet_model_workspace_floats(m, 1), i;
  float *in, *out, *work;
  lensnet_rng rng;
  lensnet_error err;
  int ran = 0;
  if (!n || n > 4096 || !ws || ws > ((size_t)1 << 20) || m->out_features > 4096 || !fuzz_forward_cost(m, (size_t)1 << 22)) return 0;
  in = (float *)malloc(n * sizeof *in);
  out = (float *)malloc(m->out_features * sizeof *out);
  work = (float *)malloc(ws * sizeof *work);
  if (in && out && work) {
    lensnet_rng_seed(&rng, seed);
    for (i = 0; i < n; i++) in[i] = lensnet_rng_uniform(&rng);
    if (lensnet_model_forward(m, 1, in, out, work, &err) != LENSNET_OK && !err.message[0]) abort();
    ran = 1;
  }
  free(in);
  free(out);
  free(work);
  return ran;
}
#endif
