/* scene.c - lens scene JSON -> lenssim structs, with errors that name the entry at fault. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <math.h>
#include "scene.h"

typedef struct {
  const char *name; /* file name, first word of every message */
  char *msg;
  size_t msg_len;
} scene_reader;

static int scene_fail(scene_reader *rd, const char *fmt, ...) {
  va_list ap;
  int used;
  if (!rd->msg || !rd->msg_len) return -1;
  used = snprintf(rd->msg, rd->msg_len, "%s: ", rd->name);
  if (used < 0 || (size_t)used >= rd->msg_len) return -1;
  va_start(ap, fmt);
  vsnprintf(rd->msg + used, rd->msg_len - (size_t)used, fmt, ap);
  va_end(ap);
  return -1;
}

/* The keywords each model takes, as in lenstronomy; the first `required` of them must be present,
 * the others default to 0. */
typedef struct {
  const char *type;
  int required;
  const char *keys[12];
} scene_model_keys;

static const scene_model_keys mass_keys[] = {
  {"SIS", 1, {"theta_E", "center_x", "center_y"}},
  {"SIE", 3, {"theta_E", "e1", "e2", "center_x", "center_y"}},
  {"EPL", 4, {"theta_E", "gamma", "e1", "e2", "center_x", "center_y"}},
  {"NFW", 2, {"Rs", "alpha_Rs", "center_x", "center_y"}},
  {"POINT_MASS", 1, {"theta_E", "center_x", "center_y"}},
  {"SHEAR", 2, {"gamma1", "gamma2", "ra_0", "dec_0"}},
  {"CONVERGENCE", 1, {"kappa", "ra_0", "dec_0"}},
};

static const scene_model_keys light_keys[] = {
  {"SERSIC", 3, {"amp", "R_sersic", "n_sersic", "center_x", "center_y"}},
  {"SERSIC_ELLIPSE", 5, {"amp", "R_sersic", "n_sersic", "e1", "e2", "center_x", "center_y"}},
  {"GAUSSIAN", 2, {"amp", "sigma", "center_x", "center_y"}},
  {"GAUSSIAN_ELLIPSE", 4, {"amp", "sigma", "e1", "e2", "center_x", "center_y"}},
  {"CLUMPY", 5, {"amp", "R_sersic", "n_sersic", "e1", "e2", "center_x", "center_y", "num_clumps",
                 "clump_fraction", "clump_sigma", "seed"}},
};

static const scene_model_keys *scene_find_model(const scene_model_keys *table, size_t count, const char *type) {
  size_t i;
  for (i = 0; i < count; i++)
    if (!strcmp(table[i].type, type)) return &table[i];
  return NULL;
}

static void scene_list_models(const scene_model_keys *table, size_t count, char *buf, size_t len) {
  size_t i, used = 0;
  buf[0] = 0;
  for (i = 0; i < count && used < len; i++) {
    int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", table[i].type);
    if (w < 0) break;
    used += (size_t)w;
  }
}

/* Reads the keywords of one entry into values[] (same order as the table's keys); rejects unknown
 * keywords (usually typos) and non-numbers. */
static int scene_read_entry(scene_reader *rd, const lensnet_json *entry, const char *where, const scene_model_keys *model,
                            double *values) {
  size_t i;
  int k;
  for (k = 0; k < 12 && model->keys[k]; k++) values[k] = 0.0;
  for (i = 0; i < entry->count; i++) {
    const lensnet_json *item = &entry->items[i];
    int found = -1;
    if (!strcmp(item->key, "type")) continue;
    for (k = 0; k < 12 && model->keys[k]; k++)
      if (!strcmp(item->key, model->keys[k])) found = k;
    if (found < 0) {
      char known[256];
      size_t used = 0;
      known[0] = 0;
      for (k = 0; k < 12 && model->keys[k] && used < sizeof known; k++) {
        int w = snprintf(known + used, sizeof known - used, "%s%s", k ? ", " : "", model->keys[k]);
        if (w < 0) break;
        used += (size_t)w;
      }
      return scene_fail(rd, "%s '%s': unknown keyword '%s' (it takes %s)", where, model->type, item->key, known);
    }
    if (item->type != LENSNET_JSON_NUMBER)
      return scene_fail(rd, "%s '%s': keyword '%s' must be a number", where, model->type, item->key);
    values[found] = item->number;
  }
  for (k = 0; k < model->required; k++)
    if (!lensnet_json_get(entry, model->keys[k]))
      return scene_fail(rd, "%s '%s': missing keyword '%s'", where, model->type, model->keys[k]);
  return 0;
}

static const char *scene_entry_type(scene_reader *rd, const lensnet_json *entry, const char *where) {
  const lensnet_json *type;
  if (entry->type != LENSNET_JSON_OBJECT) {
    scene_fail(rd, "%s must be an object", where);
    return NULL;
  }
  type = lensnet_json_get(entry, "type");
  if (!type) {
    scene_fail(rd, "%s: missing keyword 'type'", where);
    return NULL;
  }
  if (type->type != LENSNET_JSON_STRING) {
    scene_fail(rd, "%s: 'type' must be a string", where);
    return NULL;
  }
  return type->string;
}

static int scene_read_lenses(scene_reader *rd, const lensnet_json *list, lens_scene *out) {
  size_t i;
  if (list->type != LENSNET_JSON_ARRAY) return scene_fail(rd, "'lens' must be an array of lens model entries");
  if (list->count > LENSSIM_MAX_PROFILES)
    return scene_fail(rd, "'lens' has %lu entries, at most %d are supported", (unsigned long)list->count, LENSSIM_MAX_PROFILES);
  for (i = 0; i < list->count; i++) {
    char where[32], known[256];
    const char *type;
    const scene_model_keys *model;
    double v[12];
    lenssim_mass *m = &out->lenses[i];
    snprintf(where, sizeof where, "lens[%lu]", (unsigned long)i);
    if (!(type = scene_entry_type(rd, &list->items[i], where))) return -1;
    model = scene_find_model(mass_keys, sizeof mass_keys / sizeof mass_keys[0], type);
    if (!model) {
      scene_list_models(mass_keys, sizeof mass_keys / sizeof mass_keys[0], known, sizeof known);
      return scene_fail(rd, "%s: unknown lens model '%s' (known: %s)", where, type, known);
    }
    if (scene_read_entry(rd, &list->items[i], where, model, v)) return -1;
    memset(m, 0, sizeof *m);
    m->kind = (lenssim_mass_kind)lenssim_mass_kind_from_name(type);
    switch (m->kind) {
      case LENSSIM_MASS_SIS: case LENSSIM_MASS_POINT_MASS:
        m->theta_E = v[0]; m->center_x = v[1]; m->center_y = v[2]; break;
      case LENSSIM_MASS_SIE:
        m->theta_E = v[0]; m->e1 = v[1]; m->e2 = v[2]; m->center_x = v[3]; m->center_y = v[4]; break;
      case LENSSIM_MASS_EPL:
        m->theta_E = v[0]; m->gamma = v[1]; m->e1 = v[2]; m->e2 = v[3]; m->center_x = v[4]; m->center_y = v[5]; break;
      case LENSSIM_MASS_NFW:
        m->Rs = v[0]; m->alpha_Rs = v[1]; m->center_x = v[2]; m->center_y = v[3]; break;
      case LENSSIM_MASS_SHEAR:
        m->gamma1 = v[0]; m->gamma2 = v[1]; m->center_x = v[2]; m->center_y = v[3]; break;
      case LENSSIM_MASS_CONVERGENCE:
        m->kappa = v[0]; m->center_x = v[1]; m->center_y = v[2]; break;
      default: return scene_fail(rd, "%s: unsupported lens model '%s'", where, type);
    }
  }
  out->scene.lens.num_lenses = list->count;
  return 0;
}

/* Reads light entries; CLUMPY entries expand into several profiles. first_of[i] records where
 * entry i starts in the output, so that per-entry redshifts can be applied afterwards. */
static int scene_read_lights(scene_reader *rd, const lensnet_json *list, const char *section, lenssim_light *out,
                             size_t *count, size_t *first_of, size_t *entries) {
  size_t i, used = 0;
  if (list->type != LENSNET_JSON_ARRAY) return scene_fail(rd, "'%s' must be an array of light model entries", section);
  if (list->count > LENSSIM_MAX_PROFILES)
    return scene_fail(rd, "'%s' has %lu entries, at most %d are supported", section, (unsigned long)list->count,
                      LENSSIM_MAX_PROFILES);
  for (i = 0; i < list->count; i++) {
    char where[48], known[256];
    const char *type;
    const scene_model_keys *model;
    double v[12];
    lenssim_light *l;
    snprintf(where, sizeof where, "%s[%lu]", section, (unsigned long)i);
    if (!(type = scene_entry_type(rd, &list->items[i], where))) return -1;
    model = scene_find_model(light_keys, sizeof light_keys / sizeof light_keys[0], type);
    if (!model) {
      scene_list_models(light_keys, sizeof light_keys / sizeof light_keys[0], known, sizeof known);
      return scene_fail(rd, "%s: unknown light model '%s' (known: %s)", where, type, known);
    }
    if (scene_read_entry(rd, &list->items[i], where, model, v)) return -1;
    first_of[i] = used;
    if (!strcmp(type, "CLUMPY")) {
      lenssim_clumpy c;
      lenssim_rng rng;
      size_t made;
      lenssim_light probe;
      lenssim_error err;
      memset(&c, 0, sizeof c);
      c.amp = v[0]; c.R_sersic = v[1]; c.n_sersic = v[2]; c.e1 = v[3]; c.e2 = v[4];
      c.center_x = v[5]; c.center_y = v[6];
      if (v[7] < 0 || v[7] > 32 || v[7] != floor(v[7]))
        return scene_fail(rd, "%s 'CLUMPY': num_clumps = %g is out of range (a whole number 0..32)", where, v[7]);
      if (v[8] < 0 || v[8] > 1)
        return scene_fail(rd, "%s 'CLUMPY': clump_fraction = %g is out of range (0..1)", where, v[8]);
      if (v[9] < 0 || !(v[9] < 1e3))
        return scene_fail(rd, "%s 'CLUMPY': clump_sigma = %g is out of range (>= 0)", where, v[9]);
      c.num_clumps = (int)v[7];
      c.clump_fraction = v[8];
      c.clump_sigma = v[9];
      /* check the disc before using its numbers */
      memset(&probe, 0, sizeof probe);
      probe.kind = LENSSIM_LIGHT_SERSIC_ELLIPSE;
      probe.amp = c.amp; probe.R_sersic = c.R_sersic; probe.n_sersic = c.n_sersic; probe.e1 = c.e1; probe.e2 = c.e2;
      probe.center_x = c.center_x; probe.center_y = c.center_y;
      if (lenssim_light_check(&probe, where, &err) != LENSSIM_OK) {
        char *p = strstr(err.message, "'SERSIC_ELLIPSE'");
        if (p) memcpy(p, "'CLUMPY'        ", 16);
        return scene_fail(rd, "%s", err.message);
      }
      lenssim_rng_seed(&rng, (uint64_t)(v[10] >= 0 && v[10] < 1.8e19 ? v[10] : 0));
      made = lenssim_clumpy_source(&c, &rng, out + used, (size_t)LENSSIM_MAX_PROFILES - used);
      if (!made) return scene_fail(rd, "%s 'CLUMPY': too many profiles in '%s' (at most %d)", where, section, LENSSIM_MAX_PROFILES);
      used += made;
      continue;
    }
    if (used >= LENSSIM_MAX_PROFILES) return scene_fail(rd, "too many profiles in '%s' (at most %d)", section, LENSSIM_MAX_PROFILES);
    l = &out[used++];
    memset(l, 0, sizeof *l);
    l->kind = (lenssim_light_kind)lenssim_light_kind_from_name(type);
    switch (l->kind) {
      case LENSSIM_LIGHT_SERSIC:
        l->amp = v[0]; l->R_sersic = v[1]; l->n_sersic = v[2]; l->center_x = v[3]; l->center_y = v[4]; break;
      case LENSSIM_LIGHT_SERSIC_ELLIPSE:
        l->amp = v[0]; l->R_sersic = v[1]; l->n_sersic = v[2]; l->e1 = v[3]; l->e2 = v[4];
        l->center_x = v[5]; l->center_y = v[6]; break;
      case LENSSIM_LIGHT_GAUSSIAN:
        l->amp = v[0]; l->sigma = v[1]; l->center_x = v[2]; l->center_y = v[3]; break;
      case LENSSIM_LIGHT_GAUSSIAN_ELLIPSE:
        l->amp = v[0]; l->sigma = v[1]; l->e1 = v[2]; l->e2 = v[3]; l->center_x = v[4]; l->center_y = v[5]; break;
      default: return scene_fail(rd, "%s: unsupported light model '%s'", where, type);
    }
  }
  first_of[list->count] = used;
  *count = used;
  *entries = list->count;
  return 0;
}

static int scene_number(scene_reader *rd, const lensnet_json *obj, const char *section, const char *key, int required,
                        double fallback, double *out) {
  const lensnet_json *v = lensnet_json_get(obj, key);
  if (!v) {
    if (required) return scene_fail(rd, "%s: missing keyword '%s'", section, key);
    *out = fallback;
    return 0;
  }
  if (v->type != LENSNET_JSON_NUMBER) return scene_fail(rd, "%s: '%s' must be a number", section, key);
  *out = v->number;
  return 0;
}

static int scene_only_keys(scene_reader *rd, const lensnet_json *obj, const char *section, const char *const *keys) {
  size_t i;
  for (i = 0; i < obj->count; i++) {
    const char *const *k;
    int ok = 0;
    for (k = keys; *k; k++)
      if (!strcmp(obj->items[i].key, *k)) ok = 1;
    if (!ok) return scene_fail(rd, "%s: unknown keyword '%s'", section, obj->items[i].key);
  }
  return 0;
}

static int scene_whole(scene_reader *rd, const char *section, const char *key, double v, double lo, double hi, int *out) {
  if (!(v >= lo && v <= hi) || v != floor(v))
    return scene_fail(rd, "%s: %s = %g is out of range (a whole number %g..%g)", section, key, v, lo, hi);
  *out = (int)v;
  return 0;
}

static int scene_read_grid(scene_reader *rd, const lensnet_json *g, lens_scene *out) {
  static const char *const keys[] = {"num_pix", "pixel_scale", "supersampling", NULL};
  double n = 0, pix = 0, ss = 1;
  if (g->type != LENSNET_JSON_OBJECT) return scene_fail(rd, "'grid' must be an object");
  if (scene_only_keys(rd, g, "grid", keys) || scene_number(rd, g, "grid", "num_pix", 1, 0, &n) ||
      scene_number(rd, g, "grid", "pixel_scale", 1, 0, &pix) || scene_number(rd, g, "grid", "supersampling", 0, 1, &ss))
    return -1;
  if (scene_whole(rd, "grid", "num_pix", n, 1, LENSSIM_MAX_PIXELS, &out->scene.grid.num_pix)) return -1;
  if (scene_whole(rd, "grid", "supersampling", ss, 1, LENSSIM_MAX_SUPERSAMPLING, &out->scene.grid.supersampling)) return -1;
  if (!(pix > 0 && pix < 1e4)) return scene_fail(rd, "grid: pixel_scale = %g is out of range (must be > 0)", pix);
  out->scene.grid.pixel_scale = pix;
  return 0;
}

static int scene_read_psf(scene_reader *rd, const lensnet_json *p, lens_scene *out) {
  const char *type = scene_entry_type(rd, p, "psf");
  lenssim_psf *psf = &out->scene.psf;
  if (!type) return -1;
  out->has_psf = 1;
  if (!strcmp(type, "NONE")) {
    static const char *const keys[] = {"type", NULL};
    psf->kind = LENSSIM_PSF_NONE;
    return scene_only_keys(rd, p, "psf 'NONE'", keys);
  }
  if (!strcmp(type, "GAUSSIAN")) {
    static const char *const keys[] = {"type", "fwhm", NULL};
    psf->kind = LENSSIM_PSF_GAUSSIAN;
    return scene_only_keys(rd, p, "psf 'GAUSSIAN'", keys) || scene_number(rd, p, "psf 'GAUSSIAN'", "fwhm", 1, 0, &psf->fwhm);
  }
  if (!strcmp(type, "MOFFAT")) {
    static const char *const keys[] = {"type", "fwhm", "beta", NULL};
    psf->kind = LENSSIM_PSF_MOFFAT;
    return scene_only_keys(rd, p, "psf 'MOFFAT'", keys) || scene_number(rd, p, "psf 'MOFFAT'", "fwhm", 1, 0, &psf->fwhm) ||
           scene_number(rd, p, "psf 'MOFFAT'", "beta", 0, 3.5, &psf->moffat_beta);
  }
  if (!strcmp(type, "PIXEL")) {
    static const char *const keys[] = {"type", "kernel", NULL};
    const lensnet_json *k = lensnet_json_get(p, "kernel");
    size_t side, i, j;
    if (scene_only_keys(rd, p, "psf 'PIXEL'", keys)) return -1;
    if (!k) return scene_fail(rd, "psf 'PIXEL': missing keyword 'kernel'");
    if (k->type != LENSNET_JSON_ARRAY || k->count == 0 || k->count % 2 == 0 || k->count > 1001)
      return scene_fail(rd, "psf 'PIXEL': 'kernel' must be a square array of rows with an odd side (at most 1001)");
    side = k->count;
    out->psf_kernel = (double *)malloc(side * side * sizeof(double));
    if (!out->psf_kernel) return scene_fail(rd, "psf 'PIXEL': out of memory");
    for (i = 0; i < side; i++) {
      const lensnet_json *rowv = &k->items[i];
      if (rowv->type != LENSNET_JSON_ARRAY || rowv->count != side)
        return scene_fail(rd, "psf 'PIXEL': kernel row %lu must hold %lu numbers", (unsigned long)i, (unsigned long)side);
      for (j = 0; j < side; j++) {
        if (rowv->items[j].type != LENSNET_JSON_NUMBER)
          return scene_fail(rd, "psf 'PIXEL': kernel[%lu][%lu] must be a number", (unsigned long)i, (unsigned long)j);
        out->psf_kernel[i * side + j] = rowv->items[j].number;
      }
    }
    psf->kind = LENSSIM_PSF_PIXEL;
    psf->kernel = out->psf_kernel;
    psf->kernel_size = (int)side;
    return 0;
  }
  return scene_fail(rd, "psf: unknown type '%s' (known: NONE, GAUSSIAN, MOFFAT, PIXEL)", type);
}

static int scene_redshift_list(scene_reader *rd, const lensnet_json *mp, const char *key, size_t expected,
                               const char *what, double *out) {
  const lensnet_json *list = lensnet_json_get(mp, key);
  size_t i;
  if (!list) return scene_fail(rd, "multi_plane: missing keyword '%s'", key);
  if (list->type != LENSNET_JSON_ARRAY) return scene_fail(rd, "multi_plane: '%s' must be an array of numbers", key);
  if (list->count != expected)
    return scene_fail(rd, "multi_plane: '%s' has %lu redshifts but there are %lu %s entries", key,
                      (unsigned long)list->count, (unsigned long)expected, what);
  for (i = 0; i < list->count; i++) {
    if (list->items[i].type != LENSNET_JSON_NUMBER) return scene_fail(rd, "multi_plane: %s[%lu] must be a number", key, (unsigned long)i);
    out[i] = list->items[i].number;
    if (!(out[i] > 0 && out[i] < 1100))
      return scene_fail(rd, "multi_plane: %s[%lu] = %g is out of range (0, 1100)", key, (unsigned long)i, out[i]);
  }
  return 0;
}

int lens_scene_from_json(const lensnet_json *root, const char *name, lens_scene *out, char *msg, size_t msg_len) {
  static const char *const top_keys[] = {"grid", "lens", "lens_light", "source_light", "psf", "cosmology",
                                         "multi_plane", "kind", NULL};
  scene_reader rd;
  const lensnet_json *v, *mp;
  size_t first_of_source[LENSSIM_MAX_PROFILES + 1], first_of_lens_light[LENSSIM_MAX_PROFILES + 1];
  size_t source_entries = 0, lens_light_entries = 0;
  lenssim_error err;
  rd.name = name ? name : "scene";
  rd.msg = msg;
  rd.msg_len = msg_len;
  memset(out, 0, sizeof *out);
  if (!root || root->type != LENSNET_JSON_OBJECT) return scene_fail(&rd, "a scene must be a JSON object");
  if (scene_only_keys(&rd, root, "scene", top_keys)) return -1;
  if (!(v = lensnet_json_get(root, "grid"))) return scene_fail(&rd, "missing 'grid' (num_pix, pixel_scale, supersampling)");
  if (scene_read_grid(&rd, v, out)) return -1;
  if ((v = lensnet_json_get(root, "lens")) && scene_read_lenses(&rd, v, out)) return -1;
  if ((v = lensnet_json_get(root, "lens_light")) &&
      scene_read_lights(&rd, v, "lens_light", out->lens_light, &out->scene.num_lens_light, first_of_lens_light,
                        &lens_light_entries))
    return -1;
  if ((v = lensnet_json_get(root, "source_light")) &&
      scene_read_lights(&rd, v, "source_light", out->source_light, &out->scene.num_source_light, first_of_source,
                        &source_entries))
    return -1;
  if ((v = lensnet_json_get(root, "psf")) && scene_read_psf(&rd, v, out)) return -1;
  if ((v = lensnet_json_get(root, "kind")) && v->type == LENSNET_JSON_STRING)
    snprintf(out->kind, sizeof out->kind, "%s", v->string);
  if ((v = lensnet_json_get(root, "cosmology"))) {
    static const char *const keys[] = {"H0", "Om0", NULL};
    if (v->type != LENSNET_JSON_OBJECT) return scene_fail(&rd, "'cosmology' must be an object");
    if (scene_only_keys(&rd, v, "cosmology", keys) ||
        scene_number(&rd, v, "cosmology", "H0", 0, 70.0, &out->scene.lens.cosmology.H0) ||
        scene_number(&rd, v, "cosmology", "Om0", 0, 0.3, &out->scene.lens.cosmology.Om0))
      return -1;
    if (!(out->scene.lens.cosmology.H0 > 0 && out->scene.lens.cosmology.H0 < 1000))
      return scene_fail(&rd, "cosmology: H0 = %g is out of range (0, 1000)", out->scene.lens.cosmology.H0);
    if (!(out->scene.lens.cosmology.Om0 > 0 && out->scene.lens.cosmology.Om0 <= 1))
      return scene_fail(&rd, "cosmology: Om0 = %g is out of range (0, 1]", out->scene.lens.cosmology.Om0);
  }
  if ((mp = lensnet_json_get(root, "multi_plane"))) {
    static const char *const keys[] = {"lens_redshifts", "z_source", "z_source_convention", "source_redshifts", NULL};
    double z[LENSSIM_MAX_PROFILES];
    size_t i, k;
    lenssim_lens_model *lm = &out->scene.lens;
    if (mp->type != LENSNET_JSON_OBJECT) return scene_fail(&rd, "'multi_plane' must be an object");
    if (scene_only_keys(&rd, mp, "multi_plane", keys)) return -1;
    lm->multi_plane = 1;
    if (scene_number(&rd, mp, "multi_plane", "z_source", 1, 0, &lm->z_source)) return -1;
    if (!(lm->z_source > 0 && lm->z_source < 1100))
      return scene_fail(&rd, "multi_plane: z_source = %g is out of range (0, 1100)", lm->z_source);
    if (scene_number(&rd, mp, "multi_plane", "z_source_convention", 0, lm->z_source, &lm->z_source_convention)) return -1;
    if (!(lm->z_source_convention > 0 && lm->z_source_convention < 1100))
      return scene_fail(&rd, "multi_plane: z_source_convention = %g is out of range (0, 1100)", lm->z_source_convention);
    if (scene_redshift_list(&rd, mp, "lens_redshifts", lm->num_lenses, "lens", z)) return -1;
    for (i = 0; i < lm->num_lenses; i++) out->lenses[i].redshift = z[i];
    if (lensnet_json_get(mp, "source_redshifts")) {
      if (scene_redshift_list(&rd, mp, "source_redshifts", source_entries, "source_light", z)) return -1;
      for (i = 0; i < source_entries; i++)
        for (k = first_of_source[i]; k < first_of_source[i + 1]; k++) out->source_light[k].redshift = z[i];
    }
  }
  out->scene.lens.lenses = out->lenses;
  out->scene.lens_light = out->lens_light;
  out->scene.source_light = out->source_light;
  if (lenssim_scene_check(&out->scene, &err) != LENSSIM_OK) return scene_fail(&rd, "%s", err.message);
  return 0;
}

int lens_scene_load(const char *path, lens_scene *out, char *msg, size_t msg_len) {
  FILE *f;
  char *text;
  long len;
  size_t got;
  lensnet_json *root = NULL;
  lensnet_error jerr;
  int rc;
  memset(out, 0, sizeof *out);
  f = fopen(path, "rb");
  if (!f) { snprintf(msg, msg_len, "%s: cannot open the scene file", path); return -1; }
  if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    snprintf(msg, msg_len, "%s: cannot read the scene file", path);
    return -1;
  }
  if (len > 64L * 1024 * 1024) {
    fclose(f);
    snprintf(msg, msg_len, "%s: scene file too large (%ld bytes, at most 64 MiB)", path, len);
    return -1;
  }
  text = (char *)malloc((size_t)len + 1);
  if (!text) { fclose(f); snprintf(msg, msg_len, "%s: out of memory", path); return -1; }
  got = fread(text, 1, (size_t)len, f);
  fclose(f);
  if (got != (size_t)len) {
    free(text);
    snprintf(msg, msg_len, "%s: short read of the scene file", path);
    return -1;
  }
  if (lensnet_json_parse(text, (size_t)len, &root, &jerr) != LENSNET_OK) {
    free(text);
    snprintf(msg, msg_len, "%s: %s", path, jerr.message[0] ? jerr.message : lensnet_result_string(jerr.result));
    return -1;
  }
  free(text);
  rc = lens_scene_from_json(root, path, out, msg, msg_len);
  lensnet_json_free(root);
  return rc;
}

void lens_scene_free(lens_scene *s) {
  if (!s) return;
  free(s->psf_kernel);
  s->psf_kernel = NULL;
  s->scene.psf.kernel = NULL;
}
