/* lens info: what a model file holds - architecture, input shape, parameter count, metadata. */
#include <stdio.h>
#include <string.h>
#include "lens_cmds.h"
#include "options.h"

typedef struct { const char *model; } info_args;
static const lens_option info_rows[] = {
  LENS_TEXT(info_args, "MODEL.safetensors", LENS_OPT_REQUIRED | LENS_OPT_POSITIONAL, model, NULL, NULL, "the model file to describe"),
};
static const lens_option_section info_sections[] = {{NULL, info_rows, 1}};
static const lens_command_spec info_spec = {"info", "usage: lens info MODEL.safetensors\n", NULL, NULL, info_sections, 1, NULL};

int lens_cmd_info(int argc, char **argv) {
  info_args a;
  lensnet_model *m;
  lensnet_error err;
  size_t i;
  int rc = lens_options_parse(&info_spec, argc, argv, &a, NULL);
  if (rc) return rc < 0 ? 0 : rc;
  if (lensnet_model_load(a.model, &m, &err) != LENSNET_OK) return lens_fail_err(&err);
  printf("model:      %s\n", a.model);
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
