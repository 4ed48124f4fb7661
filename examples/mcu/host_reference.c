/* host_reference.c - the host side of the firmware example: writes the first N images of an .npy
 * stack as a C header for the firmware (mcu_inputs.h: exact hexadecimal float literals, and the
 * workspace size the model needs at batch 1), and prints the logits the ordinary host build
 * (lensnet_model_load + lensnet_model_forward) computes for them, in the firmware's format:
 *   host_reference MODEL.safetensors IMAGES.npy N OUT.h */
#include <stdio.h>
#include <stdlib.h>
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"

static int write_header(const char *path, const lensnet_tensor *t, size_t n, size_t workspace_floats) {
  size_t per = t->shape[1] * t->shape[2] * t->shape[3], i, k;
  char tmp[4096];
  FILE *f;
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  if (!(f = fopen(tmp, "w"))) { fprintf(stderr, "host_reference: cannot write %s\n", tmp); return 1; }
  fprintf(f, "/* %s - %lu input images for the firmware (examples/mcu/host_reference.c). */\n", path, (unsigned long)n);
  fprintf(f, "#define MCU_IMAGES %lu\n#define MCU_WORKSPACE_FLOATS %lu\n", (unsigned long)n, (unsigned long)workspace_floats);
  fprintf(f, "static const float mcu_images[%lu][%lu] = {\n", (unsigned long)n, (unsigned long)per);
  for (i = 0; i < n; i++) {
    fprintf(f, "  {");
    for (k = 0; k < per; k++) fprintf(f, "%s%af,", k % 6 ? " " : "\n   ", (double)t->data[i * per + k]);
    fprintf(f, "\n  },\n");
  }
  fprintf(f, "};\n");
  if (ferror(f) | fclose(f) || rename(tmp, path)) { fprintf(stderr, "host_reference: writing %s failed\n", path); remove(tmp); return 1; }
  return 0;
}

int main(int argc, char **argv) {
  lensnet_model *m;
  lensnet_tensor t;
  lensnet_error err;
  float logits[64];
  size_t n, i, k, per;
  if (argc != 5 || atoi(argv[3]) < 1) {
    fprintf(stderr, "usage: host_reference MODEL.safetensors IMAGES.npy N OUT.h\n");
    return 2;
  }
  n = (size_t)atoi(argv[3]);
  if (lensnet_model_load(argv[1], &m, &err) != LENSNET_OK || lensnet_npy_read(argv[2], &t, &err) != LENSNET_OK) {
    fprintf(stderr, "host_reference: %s\n", err.message);
    return 1;
  }
  per = m->in_c * m->in_h * m->in_w;
  if (t.ndim != 4 || t.shape[0] < n || t.shape[1] * t.shape[2] * t.shape[3] != per || m->out_features > 64) {
    fprintf(stderr, "host_reference: %s does not hold %lu images of the model's input shape\n", argv[2], (unsigned long)n);
    return 1;
  }
  /* the firmware's CPU (a Cortex-M) compiles no AVX-512 path: the workspace of a build without it */
  if (write_header(argv[4], &t, n, lensnet_model_workspace_floats_target(m, 1, 0))) return 1;
  for (i = 0; i < n; i++) {
    if (lensnet_model_forward(m, 1, t.data + i * per, logits, NULL, &err) != LENSNET_OK) {
      fprintf(stderr, "host_reference: %s\n", err.message);
      return 1;
    }
    printf("image %lu logits", (unsigned long)i);
    for (k = 0; k < m->out_features; k++) printf(" %.7f", logits[k]);
    printf("\n");
  }
  lensnet_tensor_free(&t);
  lensnet_model_free(m);
  return 0;
}
