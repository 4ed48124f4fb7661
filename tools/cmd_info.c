/* lens info: what a model file holds - architecture, input shape, parameter count, metadata,
 * which layers run in int8 - and, with --set, a copy with metadata added or changed (band names,
 * pixel scale, provenance). Given a FITS file (.fits, .fits.fz, .fits.gz, any name not ending in
 * .safetensors), the HDUs it holds: which are images, their shapes and compression, the one the
 * other commands read by default, the pixel scale and whether a TAN WCS is there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lens_cmds.h"
#include "cli.h"
#include "options.h"

#define INFO_MAX_SET 32

typedef struct {
  const char *model, *out;
  const char *set[INFO_MAX_SET];
  size_t nset;
  int full;
} info_args;
/* a metadata value of more lines than this shows its first and last lines (--full: all) */
#define INFO_MAX_LINES 24
#define INFO_HEAD_LINES 8
#define INFO_TAIL_LINES 8
static const lens_option info_rows[] = {
  LENS_TEXT(info_args, "MODEL.safetensors", LENS_OPT_REQUIRED | LENS_OPT_POSITIONAL, model, NULL, NULL,
            "the model file to describe (or a FITS file: its HDUs)"),
  LENS_LIST(info_args, "set", set, nset, INFO_MAX_SET, "KEY=VALUE",
            "set a metadata entry (repeatable), e.g. band_names=VIS,Y,J,H or pixel_scale=0.3; needs --out"),
  LENS_TEXT(info_args, "out", 0, out, NULL, "FILE.safetensors", "where --set writes the model (may be MODEL itself: written whole, then renamed)"),
  LENS_FLAG(info_args, "full", full, "print every metadata value whole (otherwise a one-line value longer than 160 characters\n"
                                     "shows its first 140 and its length, and one of more than 24 lines its first\n"
                                     "and last 8)"),
};
static const lens_option_section info_sections[] = {{NULL, info_rows, 4}};
static const lens_command_spec info_spec = {"info",
                                            "usage: lens info MODEL.safetensors [--full] [--set KEY=VALUE ... --out FILE.safetensors]\n"
                                            "       lens info FILE.fits   (also .fits.fz, .fits.gz: the HDUs it holds)\n",
                                            NULL, NULL, info_sections, 1, NULL};

static int info_ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

/* A header value of HDU hdu, or "" when it has none. */
static const char *info_fits_value(const char *path, int hdu, const char *key, char *buf, size_t cap) {
  lensnet_error err;
  if (lensnet_fits_header_value(path, hdu, key, buf, cap, &err) != LENSNET_OK) buf[0] = 0;
  return buf;
}

/* One line per HDU: what it is, the image's shape in NumPy order (bands x height x width for a
 * cube, as lens predict reads it), BITPIX and compression, and which HDU --hdu -1 reads. */
static int info_fits(const char *path) {
  lensnet_error err;
  int count, hdu, first = -1; /* first: the HDU read without --hdu, the first image with pixels */
  if (lensnet_fits_hdu_count(path, &count, &err) != LENSNET_OK) return lens_fail_err(&err);
  printf("file:       %s\n", path);
  printf("HDUs:       %d\n", count);
  for (hdu = 0; hdu < count; hdu++) {
    char xt[80], zimage[80], v[80], key[32], name[80], shape[160] = "", algo[80], quant[80];
    const char *kind;
    int naxis, k, compressed, image, empty = 0;
    info_fits_value(path, hdu, "XTENSION", xt, sizeof xt);
    compressed = !strcmp(xt, "BINTABLE") && !strcmp(info_fits_value(path, hdu, "ZIMAGE", zimage, sizeof zimage), "T");
    image = hdu == 0 || !strcmp(xt, "IMAGE") || compressed;
    naxis = atoi(info_fits_value(path, hdu, compressed ? "ZNAXIS" : "NAXIS", v, sizeof v));
    for (k = naxis; image && k >= 1; k--) {
      size_t n = strlen(shape);
      snprintf(key, sizeof key, "%s%d", compressed ? "ZNAXIS" : "NAXIS", k);
      info_fits_value(path, hdu, key, v, sizeof v);
      if (atol(v) <= 0) empty = 1;
      snprintf(shape + n, sizeof shape - n, "%s%s", n ? " x " : "", v);
    }
    if (!image) kind = !strcmp(xt, "BINTABLE") ? "binary table" : !strcmp(xt, "TABLE") ? "ASCII table" : "extension";
    else if (naxis == 0 || empty) kind = hdu == 0 ? "primary, no pixels" : "image, no pixels";
    else kind = compressed ? "compressed image" : hdu == 0 ? "primary image" : "image";
    printf("  HDU %d: %s", hdu, kind);
    if (!image && !strcmp(kind, "extension")) printf(" '%s'", xt);
    if (image && naxis > 0 && !empty) {
      printf(" %s, BITPIX %s", shape, info_fits_value(path, hdu, compressed ? "ZBITPIX" : "BITPIX", v, sizeof v));
      if (compressed) {
        info_fits_value(path, hdu, "ZCMPTYPE", algo, sizeof algo);
        info_fits_value(path, hdu, "ZQUANTIZ", quant, sizeof quant);
        printf(", %s%s%s", algo, quant[0] && atoi(info_fits_value(path, hdu, "ZBITPIX", v, sizeof v)) < 0 ? " " : "",
               quant[0] && atoi(v) < 0 ? quant : "");
      }
    }
    if (info_fits_value(path, hdu, "EXTNAME", name, sizeof name)[0]) printf(" (EXTNAME %s)", name);
    if (image && naxis > 0 && !empty && info_fits_value(path, hdu, "BSOFTEN", v, sizeof v)[0] &&
        info_fits_value(path, hdu, "BOFFSET", v, sizeof v)[0])
      printf(", asinh-scaled (Pan-STARRS1 BSOFTEN, BOFFSET): read as linear flux");
    if (image && naxis > 0 && !empty && first < 0) {
      double arcsec;
      const char *scale_key;
      lensnet_wcs wcs;
      first = hdu;
      printf("  <- read by default");
      if (lensnet_fits_pixel_scale(path, hdu, &arcsec, &scale_key, &err) == LENSNET_OK) printf("; %.4g\"/pixel (%s)", arcsec, scale_key);
      if (lensnet_fits_wcs(path, hdu, &wcs, &err) == LENSNET_OK) printf("; TAN WCS");
    }
    printf("\n");
  }
  if (first < 0) printf("no HDU holds an image with pixels\n");
  return 0;
}

/* keys that describe the network itself: changing them would make the file describe other weights */
static int info_key_structural(const char *key, size_t n) {
  return (n == 4 && !strncmp(key, "arch", 4)) || (n == 5 && !strncmp(key, "bands", 5)) || (n == 10 && !strncmp(key, "input_size", 10));
}

/* Keys that other commands read as facts about the network, checked by the rules that read them:
 * classes (one name per output of a classifier), band_names (one per input band, as
 * lensnet_band_names_normalize reads them: no name twice), pixel_scale (as lensnet_model_pixel_scale
 * reads it). *store gets the text to store: the value, or for band_names the names as the readers
 * read them, written into names[cap]. The model is changed only on the way to being saved: a
 * refusal saves nothing. */
static int info_value_check(lensnet_model *m, const char *key, const char *value, const char **store, char *names, size_t cap) {
  size_t items = 1;
  const char *c;
  lensnet_regression reg;
  lensnet_error err;
  for (c = value; *c; c++) items += *c == ',';
  if (!strcmp(key, "classes") && lensnet_model_regression(m, &reg, NULL) != LENSNET_OK && items != m->out_features)
    return lens_usage("--set classes=%s: %lu names for a model of %lu outputs", value, (unsigned long)items, (unsigned long)m->out_features);
  *store = value;
  if (!strcmp(key, "band_names")) { /* stored as the readers read it: "J,Y,H,VIS" for " J , Y,H,VIS," */
    size_t count = 0;
    if (lensnet_band_names_normalize(value, names, cap, &count, &err) != LENSNET_OK)
      return lens_usage("--set band_names=%s: %s", value, err.message);
    if (count != m->in_c)
      return lens_usage("--set band_names=%s: %lu names for a model of %lu input bands", value, (unsigned long)count, (unsigned long)m->in_c);
    *store = names;
  }
  if (!strcmp(key, "pixel_scale")) {
    double v;
    if (lensnet_model_set_meta(m, "pixel_scale", value) != LENSNET_OK) return lens_fail("out of memory");
    if (lensnet_model_pixel_scale(m, &v, &err) != LENSNET_OK) return lens_usage("--set pixel_scale=%s: %s", value, err.message);
  }
  return 0;
}

static int info_set(const info_args *a, lensnet_model *m) {
  lensnet_error err;
  size_t i;
  int rc;
  for (i = 0; i < a->nset; i++) {
    const char *eq = strchr(a->set[i], '='), *value = NULL;
    char key[256], names[4096];
    size_t n = eq ? (size_t)(eq - a->set[i]) : 0;
    if (!eq || n == 0) return lens_usage("--set needs KEY=VALUE, got '%s'", a->set[i]);
    if (n >= sizeof key) return lens_usage("--set: key too long (%lu characters, at most %lu)", (unsigned long)n, (unsigned long)sizeof key - 1);
    if (info_key_structural(a->set[i], n))
      return lens_usage("--set: '%.*s' describes the network itself and cannot be changed here", (int)n, a->set[i]);
    memcpy(key, a->set[i], n);
    key[n] = 0;
    if ((rc = info_value_check(m, key, eq + 1, &value, names, sizeof names)) != 0) return rc;
    if (lensnet_model_set_meta(m, key, value) != LENSNET_OK) return lens_fail("out of memory setting %s", key);
  }
  for (i = 0; i < a->nset; i++) /* regress.* must leave a model lens predict can read */
    if (!strncmp(a->set[i], "regress.", 8)) {
      lensnet_regression reg;
      if (lensnet_model_regression(m, &reg, &err) != LENSNET_OK)
        return lens_usage("--set %.*s: the regression metadata would not be readable: %s", (int)(strchr(a->set[i], '=') - a->set[i]), a->set[i],
                          err.message);
      break;
    }
  if (lens_make_parents(a->out)) return LENS_EXIT_FAIL;
  if (lensnet_model_save(m, a->out, &err) != LENSNET_OK) return lens_fail_err(&err);
  return 0;
}

/* Text as it is, but with control characters (and DEL) as \t, \r or \xNN, and a backslash as two,
 * so that an escape printed cannot be told apart from text that spells one. */
static void print_text(const char *p, size_t n) {
  size_t k;
  for (k = 0; k < n; k++) {
    unsigned char c = (unsigned char)p[k];
    if (c == '\\') fputs("\\\\", stdout);
    else if (c == '\t') fputs("\\t", stdout);
    else if (c == '\r') fputs("\\r", stdout);
    else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
    else putchar(c);
  }
}

int lens_cmd_info(int argc, char **argv) {
  info_args a;
  lensnet_model *m;
  lensnet_error err;
  size_t i;
  int rc;
  memset(&a, 0, sizeof a);
  rc = lens_options_parse(&info_spec, argc, argv, &a, NULL);
  if (rc) return rc < 0 ? 0 : rc;
  if (info_ends_with(a.model, ".npy")) return lens_usage("lens info describes a model (.safetensors) or a FITS file; %s is a .npy array", a.model);
  if (!info_ends_with(a.model, ".safetensors")) {
    if (a.nset || a.out || a.full) return lens_usage("--set, --out and --full are for model files; %s is read as a FITS file", a.model);
    return info_fits(a.model);
  }
  if (a.nset && !a.out) return lens_usage("--set needs --out FILE.safetensors (the same path as MODEL rewrites it)");
  if (a.out && !a.nset) return lens_usage("--out writes the model with --set entries; give at least one --set KEY=VALUE");
  if (a.out && (rc = lens_out_model("--out", a.out, NULL, 0, NULL)) != 0) return rc;
  if (lensnet_model_load(a.model, &m, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (a.nset) {
    rc = info_set(&a, m);
    lensnet_model_free(m);
    if (!rc) printf("wrote %s (%lu metadata entries set)\n", a.out, (unsigned long)a.nset);
    return rc;
  }
  printf("model:      %s\n", a.model);
  printf("input:      %lu x %lu x %lu (bands x height x width)\n", (unsigned long)m->in_c, (unsigned long)m->in_h, (unsigned long)m->in_w);
  printf("output:     %lu\n", (unsigned long)m->out_features);
  printf("parameters: %lu trainable\n", (unsigned long)lensnet_model_parameter_count(m));
  printf("layers:\n");
  for (i = 0; i < m->layer_count; i++) {
    const lensnet_layer *L = &m->layers[i];
    char extra[128];
    printf("  %3lu %-15s %-48s -> %lu x %lu x %lu%s\n", (unsigned long)i, lensnet_layer_type_name(L->type), lensnet_layer_describe(L, extra, sizeof extra),
           (unsigned long)L->out_c, (unsigned long)L->out_h, (unsigned long)L->out_w, m->quant && m->quant[i].weight ? "  (int8)" : "");
  }
  if (m->meta_count) printf("metadata:\n");
  /* keys and values are printed with control characters escaped (\x1b, \t, ...): a downloaded
   * model's metadata must not reach the terminal as escape sequences */
  for (i = 0; i < m->meta_count; i++) {
    const char *v = m->meta_values[i];
    size_t n = 0, k, cut = 0;
    /* characters, not bytes: UTF-8 continuation bytes (10xxxxxx) do not start one; the cut after
     * 140 characters falls between two of them */
    for (k = 0; v[k]; k++)
      if (((unsigned char)v[k] & 0xC0) != 0x80 && n++ == 140) cut = k;
    /* a long one-line value (a list of input files, say) is cut; layer text keeps its lines */
    if (strchr(v, '\n')) {
      /* several lines (a training history, an architecture's text): each indented under its key;
       * more than INFO_MAX_LINES show their first and last lines, unless --full */
      size_t lines = 0, line = 0;
      const char *p = v, *e;
      for (e = v; *e; e++) lines += *e == '\n' && e[1];
      lines++;
      printf("  ");
      print_text(m->meta_keys[i], strlen(m->meta_keys[i]));
      printf(": (%lu line%s)\n", (unsigned long)lines, lines == 1 ? "" : "s");
      for (; *p; p = *e ? e + 1 : e, line++) {
        e = strchr(p, '\n');
        if (!e) e = p + strlen(p);
        if (!a.full && lines > INFO_MAX_LINES && line >= INFO_HEAD_LINES && line < lines - INFO_TAIL_LINES) {
          if (line == INFO_HEAD_LINES)
            printf("    ... (%lu more lines; --full prints them all)\n", (unsigned long)(lines - INFO_HEAD_LINES - INFO_TAIL_LINES));
          continue;
        }
        printf("    ");
        print_text(p, (size_t)(e - p));
        printf("\n");
      }
    } else {
      int shorten = !a.full && n > 160;
      printf("  ");
      print_text(m->meta_keys[i], strlen(m->meta_keys[i]));
      printf(": ");
      print_text(v, shorten ? cut : strlen(v));
      if (shorten) printf(" ... (%lu characters; --full prints it whole)", (unsigned long)n);
      printf("\n");
    }
  }
  lensnet_model_free(m);
  return 0;
}
