/* lens export-c: a model as C source for firmware - its architecture text, its parameters as a
 * const float array in lensnet_model.values order (what lensnet_model_init_preallocated takes in
 * place, from flash), its metadata, and a header with the sizes (docs/embedded.md). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "lens_cmds.h"
#include "cli.h"
#include "options.h"

typedef struct {
  const char *model, *out, *name;
} export_args;
static const lens_option export_rows[] = {
  LENS_TEXT(export_args, "MODEL.safetensors", LENS_OPT_REQUIRED | LENS_OPT_POSITIONAL, model, NULL, NULL, "the model to export"),
  LENS_TEXT(export_args, "out", LENS_OPT_REQUIRED, out, NULL, "FILE.c", "the C file to write; FILE.h is written beside it"),
  LENS_TEXT(export_args, "name", 0, name, "model", "NAME", "prefix of the C names (an identifier): NAME_arch, NAME_values, NAME_HEAP_BYTES, ..."),
};
static const lens_option_section export_sections[] = {{NULL, export_rows, 3}};
static const lens_command_spec export_spec = {
  "export-c", "usage: lens export-c MODEL.safetensors --out FILE.c [--name NAME]\n",
  "Writes FILE.c (NAME_arch, NAME_values, NAME_meta) and FILE.h (declarations and sizes). The floats are\n"
  "exact hexadecimal literals, so the compiler stores them in the target's byte order.\n", NULL, export_sections, 1, NULL};

/* A C string literal of s: escapes for quotes, backslashes, control bytes and '?' (so that no
 * "??=" is read as a trigraph); a newline in s also ends the source line, so architecture text
 * reads one layer a line. */
static void export_string(FILE *f, const char *s, const char *indent) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\' || c == '?') fprintf(f, "\\%c", c);
    else if (c == '\n') { fputs("\\n", f); if (s[1]) fprintf(f, "\"\n%s\"", indent); }
    else if (c < 32 || c >= 127) fprintf(f, "\\%03o", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

/* s (a path, a tensor name) for the inside of a comment: a '*' followed by '/' would end the
 * comment, so a space goes between them; control bytes become '?'. Returns a static buffer (one
 * of two, so that two calls can share a printf; cut at 1000 bytes). */
static const char *export_comment(const char *s) {
  static char buf[2][1024];
  static int which;
  char *out = buf[which ^= 1];
  size_t n = 0;
  for (; *s && n + 3 < sizeof buf[0]; s++) {
    unsigned char c = (unsigned char)*s;
    out[n++] = c < 32 || c == 127 ? '?' : (char)c;
    if (c == '*' && s[1] == '/') out[n++] = ' ';
  }
  out[n] = 0;
  return out;
}

static int export_identifier(const char *s) {
  const char *p;
  if (!*s || isdigit((unsigned char)*s) || strlen(s) > 48) return 0;
  for (p = s; *p; p++) if (!isalnum((unsigned char)*p) && *p != '_') return 0;
  return 1;
}

static void export_upper(const char *s, char *out, size_t cap) {
  size_t i;
  for (i = 0; s[i] && i + 1 < cap; i++) out[i] = (char)toupper((unsigned char)s[i]);
  out[i] = 0;
}

static int export_header(const export_args *a, const lensnet_model *m, const char *path) {
  char tmp[4096], up[64];
  FILE *f = lens_text_open(path, tmp, sizeof tmp);
  if (!f) return LENS_EXIT_FAIL;
  export_upper(a->name, up, sizeof up);
  fprintf(f, "/* %s - declarations of the model exported by `lens export-c` from %s. */\n", export_comment(path), export_comment(a->model));
  fprintf(f, "#ifndef %s_MODEL_H\n#define %s_MODEL_H\n#include <stddef.h>\n\n", up, up);
  fprintf(f, "#define %s_LAYERS %lu\n#define %s_PARAMS %lu\n#define %s_VALUE_COUNT %lu\n", up, (unsigned long)m->layer_count, up,
          (unsigned long)m->param_count, up, (unsigned long)m->value_count);
  fprintf(f, "#define %s_IN_C %lu\n#define %s_IN_H %lu\n#define %s_IN_W %lu\n#define %s_OUT %lu\n", up, (unsigned long)m->in_c, up,
          (unsigned long)m->in_h, up, (unsigned long)m->in_w, up, (unsigned long)m->out_features);
  fprintf(f, "/* Bytes of the block lensnet_model_init_preallocated needs, for the target it is compiled for\n"
             " * (include lensnet.h before this header to use it). */\n");
  fprintf(f, "#define %s_HEAP_BYTES LENSNET_MODEL_HEAP_BYTES(%s_LAYERS, %s_PARAMS)\n", up, up, up);
  fprintf(f, "/* Floats of the workspace lensnet_model_forward needs for one image (lensnet_model_workspace_floats(m, 1)):\n"
             " * x86 builds compile lensnet.h's AVX-512 Winograd path and need its scratch too; other CPUs do not. */\n");
  fprintf(f, "#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)\n");
  fprintf(f, "#define %s_WORKSPACE_FLOATS %lu\n#else\n", up, (unsigned long)lensnet_model_workspace_floats_target(m, 1, 1));
  fprintf(f, "#define %s_WORKSPACE_FLOATS %lu\n#endif\n\n", up, (unsigned long)lensnet_model_workspace_floats_target(m, 1, 0));
  fprintf(f, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n");
  fprintf(f, "extern const char %s_arch[];\n", a->name);
  fprintf(f, "extern const float %s_values[%s_VALUE_COUNT];\n", a->name, up);
  fprintf(f, "/* metadata: {key, value} pairs (classes, band_names, preprocess, ...) */\n");
  fprintf(f, "extern const char *const %s_meta[][2];\nextern const size_t %s_meta_count;\n", a->name, a->name);
  fprintf(f, "#ifdef __cplusplus\n}\n#endif\n#endif\n");
  return lens_text_commit(f, tmp, path);
}

static int export_source(const export_args *a, const lensnet_model *m, const char *header) {
  char tmp[4096], up[64];
  const char *base = strrchr(header, '/');
  size_t i;
  FILE *f = lens_text_open(a->out, tmp, sizeof tmp);
  if (!f) return LENS_EXIT_FAIL;
  export_upper(a->name, up, sizeof up);
  fprintf(f, "/* %s - the model %s as C arrays for lensnet_model_init_preallocated (`lens export-c`).\n"
             " * %lu float32 parameter values in lensnet_model.values order, written as exact hexadecimal\n"
             " * literals: the compiler stores them in the target's byte order. Const, so they stay in flash. */\n",
          export_comment(a->out), export_comment(a->model), (unsigned long)m->value_count);
  fprintf(f, "#include \"%s\"\n\n", base ? base + 1 : header);
  fprintf(f, "#if defined(__GNUC__) || defined(__clang__)\n#define %s_ALIGNED __attribute__((aligned(16)))\n#else\n#define %s_ALIGNED\n#endif\n\n", up, up);
  fprintf(f, "const char %s_arch[] =\n  ", a->name);
  export_string(f, m->arch, "  ");
  fprintf(f, ";\n\nconst char *const %s_meta[][2] = {\n", a->name);
  for (i = 0; i < m->meta_count; i++) {
    fprintf(f, "  {");
    export_string(f, m->meta_keys[i], "   ");
    fprintf(f, ", ");
    export_string(f, m->meta_values[i], "   ");
    fprintf(f, "},\n");
  }
  if (!m->meta_count) fprintf(f, "  {\"\", \"\"}\n");
  fprintf(f, "};\nconst size_t %s_meta_count = %lu;\n\n", a->name, (unsigned long)m->meta_count);
  fprintf(f, "%s_ALIGNED const float %s_values[%s_VALUE_COUNT] = {\n", up, a->name, up);
  for (i = 0; i < m->param_count; i++) {
    const lensnet_param *P = &m->params[i];
    size_t k;
    fprintf(f, "  /* %s */\n ", export_comment(P->name));
    for (k = 0; k < P->count; k++) {
      fprintf(f, " %af,", (double)m->values[P->offset + k]);
      if (k % 6 == 5 && k + 1 < P->count) fprintf(f, "\n ");
    }
    fprintf(f, "\n");
  }
  fprintf(f, "};\n");
  return lens_text_commit(f, tmp, a->out);
}

int lens_cmd_export_c(int argc, char **argv) {
  export_args a;
  lensnet_model *m;
  lensnet_error err;
  char header[4096];
  size_t n, i;
  int rc;
  memset(&a, 0, sizeof a);
  rc = lens_options_parse(&export_spec, argc, argv, &a, NULL);
  if (rc) return rc < 0 ? 0 : rc;
  n = strlen(a.out);
  if (n < 3 || strcmp(a.out + n - 2, ".c") || n + 1 > sizeof header)
    return lens_usage("--out %s: the C file's name must end in .c (its header FILE.h is written beside it)", a.out);
  if (!export_identifier(a.name)) return lens_usage("--name %s: must be a C identifier (letters, digits, '_'; not starting with a digit; at most 48)", a.name);
  memcpy(header, a.out, n + 1);
  header[n - 1] = 'h';
  if ((rc = lens_out_not_input("--out", a.out, &a.model, 1, NULL)) != 0 ||
      (rc = lens_out_not_input("--out (its header)", header, &a.model, 1, NULL)) != 0)
    return rc;
  if (lensnet_model_load(a.model, &m, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (lensnet_model_is_quantized(m)) {
    lensnet_model_free(m);
    return lens_fail("%s is quantised (lens quantize); export-c writes float models for lensnet_model_init_preallocated: export the float model", a.model);
  }
  for (i = 0; i < m->value_count; i++)
    if (!isfinite(m->values[i])) {
      lensnet_model_free(m);
      return lens_fail("%s: parameter value %lu is not finite; firmware would compute NaN", a.model, (unsigned long)i);
    }
  rc = lens_make_parents(a.out);
  if (!rc) rc = export_header(&a, m, header);
  if (!rc) rc = export_source(&a, m, header);
  if (!rc) printf("wrote %s and %s: %lu layers, %lu parameter values (%lu bytes of flash)\n", a.out, header, (unsigned long)m->layer_count,
                  (unsigned long)m->value_count, (unsigned long)(m->value_count * sizeof(float)));
  lensnet_model_free(m);
  return rc;
}
