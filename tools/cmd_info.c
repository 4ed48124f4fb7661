/* lens info: what a model file holds - architecture, input shape, parameter count, metadata. */
#include <stdio.h>
#include <string.h>
#include "lens_cmds.h"

int lens_cmd_info(int argc, char **argv) {
  lensnet_model *m;
  lensnet_error err;
  size_t i;
  if (argc != 2 || !strcmp(argv[1], "--help")) {
    fprintf(argc == 2 ? stdout : stderr, "usage: lens info MODEL.safetensors\n");
    return argc == 2 ? 0 : 2;
  }
  if (lensnet_model_load(argv[1], &m, &err) != LENSNET_OK) return lens_fail_err(&err);
  printf("model:      %s\n", argv[1]);
  printf("input:      %lu x %lu x %lu (bands x height x width)\n", (unsigned long)m->in_c, (unsigned long)m->in_h, (unsigned long)m->in_w);
  printf("output:     %lu\n", (unsigned long)m->out_features);
  printf("parameters: %lu trainable\n", (unsigned long)lensnet_model_parameter_count(m));
  printf("layers:\n");
  for (i = 0; i < m->layer_count; i++) {
    const lensnet_layer *L = &m->layers[i];
    char extra[128];
    printf("  %3lu %-15s %-48s -> %lu x %lu x %lu\n", (unsigned long)i, lensnet_layer_type_name(L->type), lensnet_layer_describe(L, extra, sizeof extra),
           (unsigned long)L->out_c, (unsigned long)L->out_h, (unsigned long)L->out_w);
  }
  if (m->meta_count) printf("metadata:\n");
  for (i = 0; i < m->meta_count; i++) printf("  %s: %s\n", m->meta_keys[i], m->meta_values[i]);
  lensnet_model_free(m);
  return 0;
}
