/* test_lenssim.c - lenssim.h: parity with lenstronomy's reference files, per-profile physics,
 * PSFs, noise statistics, bands, labels.csv text and scene errors (tests/test_cli_render.c runs
 * `lens render`). */
#define _POSIX_C_SOURCE 200809L
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#define LENSSIM_IMPLEMENTATION
#include "lenssim.h"
#include "tests/check.h"
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------------- */
static char *read_text(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf;
  long n;
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return NULL; }
  buf = (char *)malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
  fclose(f);
  if (buf) { buf[n] = 0; *len = (size_t)n; }
  return buf;
}

static lensnet_json *read_json(const char *path) {
  size_t len = 0;
  char *text = read_text(path, &len);
  lensnet_json *doc = NULL;
  lensnet_error err;
  if (!text) return NULL;
  if (lensnet_json_parse(text, len, &doc, &err) != LENSNET_OK) doc = NULL;
  free(text);
  return doc;
}

static double json_number(const lensnet_json *obj, const char *key) {
  const lensnet_json *v = lensnet_json_get(obj, key);
  return v && v->type == LENSNET_JSON_NUMBER ? v->number : NAN;
}

static void ref_path(char *buf, size_t len, const char *file) {
  snprintf(buf, len, "%s/lenstronomy/%s", check_data_dir(), file);
}

static lenssim_mass make_mass(lenssim_mass_kind kind) {
  lenssim_mass m;
  memset(&m, 0, sizeof m);
  m.kind = kind;
  return m;
}

static lenssim_lens_model single_plane(const lenssim_mass *lenses, size_t n) {
  lenssim_lens_model model;
  memset(&model, 0, sizeof model);
  model.lenses = lenses;
  model.num_lenses = n;
  return model;
}

/* alpha of a model at one point */
static void alpha_at(const lenssim_lens_model *model, double x, double y, double *ax, double *ay) {
  lenssim_deflection(model, 1, &x, &y, ax, ay, NULL);
}

static double max_abs(const double *a, size_t n) {
  double m = 0;
  size_t i;
  for (i = 0; i < n; i++) if (fabs(a[i]) > m) m = fabs(a[i]);
  return m;
}

static double sum_of(const double *a, size_t n) {
  double s = 0;
  size_t i;
  for (i = 0; i < n; i++) s += a[i];
  return s;
}

/* ---- reference files ------------------------------------------------------------------------ */
static void test_cosmology(void) {
  char path[512];
  lensnet_json *doc;
  const lensnet_json *cases;
  size_t i;
  ref_path(path, sizeof path, "cosmology.json");
  doc = read_json(path);
  CHECK(doc != NULL, "cannot read %s", path);
  if (!doc) return;
  cases = lensnet_json_get(doc, "cases");
  CHECK(cases && cases->count == 20, "cosmology.json: expected 20 cases");
  for (i = 0; cases && i < cases->count; i++) {
    const lensnet_json *c = &cases->items[i];
    lenssim_cosmology cosmo;
    double ref = json_number(c, "D_A_Mpc"), got;
    cosmo.H0 = json_number(c, "H0");
    cosmo.Om0 = json_number(c, "Om0");
    got = lenssim_angular_diameter_distance(&cosmo, json_number(c, "z1"), json_number(c, "z2"));
    CHECK(fabs(got - ref) <= 1e-6 * ref, "D_A(%g, %g) H0=%g Om0=%g: %.10g vs astropy %.10g (rel %.2e)",
          json_number(c, "z1"), json_number(c, "z2"), cosmo.H0, cosmo.Om0, got, ref, fabs(got - ref) / ref);
  }
  lensnet_json_free(doc);
}

static int load_reference_scene(int index, lenssim_json_scene *sc) {
  char path[512], name[32];
  char *text;
  size_t len = 0;
  lenssim_error err;
  lenssim_result r;
  snprintf(name, sizeof name, "scene_%03d.json", index);
  ref_path(path, sizeof path, name);
  if (!(text = read_text(path, &len))) {
    CHECK(0, "cannot read %s", path);
    return 0;
  }
  r = lenssim_scene_from_json(text, len, sc, &err);
  free(text);
  CHECK(r == LENSSIM_OK, "loading %s: %s", path, err.message);
  return r == LENSSIM_OK;
}

static void test_deflections(void) {
  char path[512];
  lensnet_json *doc;
  int s;
  ref_path(path, sizeof path, "deflections.json");
  doc = read_json(path);
  CHECK(doc != NULL, "cannot read %s", path);
  if (!doc) return;
  for (s = 0; s < 16; s++) {
    char key[32];
    const lensnet_json *entry, *xs, *ys, *axs, *ays;
    lenssim_json_scene sc;
    size_t i;
    snprintf(key, sizeof key, "scene_%03d", s);
    entry = lensnet_json_get(doc, key);
    CHECK(entry != NULL, "deflections.json has no %s", key);
    if (!entry || !load_reference_scene(s, &sc)) continue;
    xs = lensnet_json_get(entry, "x"); ys = lensnet_json_get(entry, "y");
    axs = lensnet_json_get(entry, "alpha_x"); ays = lensnet_json_get(entry, "alpha_y");
    for (i = 0; xs && ys && axs && ays && i < xs->count; i++) {
      double x = xs->items[i].number, y = ys->items[i].number, ax, ay;
      double rx = axs->items[i].number, ry = ays->items[i].number, scale = sqrt(rx * rx + ry * ry);
      alpha_at(&sc.scene.lens, x, y, &ax, &ay);
      CHECK(fabs(ax - rx) <= 1e-6 * scale && fabs(ay - ry) <= 1e-6 * scale,
            "%s (%s) at (%g, %g): alpha (%.12g, %.12g) vs lenstronomy (%.12g, %.12g)", key, sc.kind, x, y, ax, ay, rx, ry);
    }
    lenssim_json_scene_free(&sc);
  }
  lensnet_json_free(doc);
}

static void test_render_parity(void) {
  int s, precision;
  for (s = 0; s < 16; s++) {
    char path[512], name[32];
    lenssim_json_scene sc;
    lensnet_tensor ref;
    lensnet_error err;
    if (!load_reference_scene(s, &sc)) continue;
    snprintf(name, sizeof name, "scene_%03d.npy", s);
    ref_path(path, sizeof path, name);
    if (lensnet_npy_read(path, &ref, &err) != LENSNET_OK) {
      CHECK(0, "reading %s: %s", path, err.message);
      lenssim_json_scene_free(&sc);
      continue;
    }
    for (precision = 0; precision < 2; precision++) {
      int n = sc.scene.grid.num_pix;
      size_t count = (size_t)n * (size_t)n, i;
      double *img = (double *)malloc(count * sizeof *img), ref_max = 0, diff = 0;
      lenssim_error serr;
      sc.scene.double_precision = precision;
      CHECK(ref.ndim == 2 && ref.shape[0] == (size_t)n && ref.shape[1] == (size_t)n, "%s: shape mismatch", name);
      if (lenssim_render(&sc.scene, img, NULL, 0, &serr) != LENSSIM_OK) {
        CHECK(0, "%s: render failed: %s", name, serr.message);
        free(img);
        continue;
      }
      for (i = 0; i < count; i++) {
        if (fabs(ref.data[i]) > ref_max) ref_max = fabs(ref.data[i]);
        if (fabs(img[i] - ref.data[i]) > diff) diff = fabs(img[i] - ref.data[i]);
      }
      CHECK(ref_max > 0 && diff <= 1e-3 * ref_max, "%s (%s, %s): max|ours - lenstronomy| = %.3g, %.3g of the peak",
            name, sc.kind, precision ? "double" : "float", diff, diff / ref_max);
      free(img);
    }
    lensnet_tensor_free(&ref);
    lenssim_json_scene_free(&sc);
  }
}

/* The float render path against the double one, tighter than the parity bar. */
static void test_float_matches_double(void) {
  int s;
  for (s = 0; s < 16; s++) {
    lenssim_json_scene sc;
    int n;
    size_t count, i;
    double *a, *b, diff = 0, peak;
    if (!load_reference_scene(s, &sc)) continue;
    n = sc.scene.grid.num_pix;
    count = (size_t)n * (size_t)n;
    a = (double *)malloc(count * sizeof *a);
    b = (double *)malloc(count * sizeof *b);
    sc.scene.double_precision = 0;
    lenssim_render(&sc.scene, a, NULL, 0, NULL);
    sc.scene.double_precision = 1;
    lenssim_render(&sc.scene, b, NULL, 0, NULL);
    for (i = 0; i < count; i++) if (fabs(a[i] - b[i]) > diff) diff = fabs(a[i] - b[i]);
    peak = max_abs(b, count);
    CHECK(diff <= 1e-4 * peak, "scene %d: float and double renders differ by %.3g of the peak", s, diff / peak);
    free(a); free(b);
    lenssim_json_scene_free(&sc);
  }
}

/* ---- fast math ------------------------------------------------------------------------------ */
static void test_fast_math(void) {
  double worst_exp = 0, worst_log = 0, worst_atan = 0, worst_sqrt = 0, worst_atanh = 0;
  float worst_expf = 0, worst_logf = 0, worst_sqrtf = 0;
  int i;
  for (i = 0; i < 200001; i++) {
    double u = (double)i / 200000.0;
    double xe = -700.0 + 1400.0 * u, xl = exp(-690.0 + 1380.0 * u), xa = tan(-1.5707 + 3.1414 * u);
    double xs = exp(-60.0 + 120.0 * u), xh = -0.999 + 1.998 * u;
    float fe = (float)(-80.0 + 160.0 * u), fl = (float)exp(-80.0 + 160.0 * u);
    double e;
    e = fabs(lenssim__exp(xe) - exp(xe)) / exp(xe); if (e > worst_exp) worst_exp = e;
    e = fabs(lenssim__log(xl) - log(xl)) / fmax(fabs(log(xl)), 1e-300); if (e > worst_log && fabs(log(xl)) > 1e-3) worst_log = e;
    e = fabs(lenssim__atan(xa) - atan(xa)) / fmax(fabs(atan(xa)), 1e-300); if (e > worst_atan) worst_atan = e;
    e = fabs(lenssim__sqrt(xs) - sqrt(xs)) / sqrt(xs); if (e > worst_sqrt) worst_sqrt = e;
    if (xh != 0) { e = fabs(lenssim__atanh(xh) - atanh(xh)) / fabs(atanh(xh)); if (e > worst_atanh) worst_atanh = e; }
    e = fabs((double)lenssim__expf(fe) - exp((double)fe)) / exp((double)fe); if (e > worst_expf) worst_expf = (float)e;
    if (fabs(log((double)fl)) > 1e-2) {
      e = fabs((double)lenssim__logf(fl) - log((double)fl)) / fabs(log((double)fl)); if (e > worst_logf) worst_logf = (float)e;
    }
    e = fabs((double)lenssim__sqrtf(fl) - sqrt((double)fl)) / sqrt((double)fl); if (e > worst_sqrtf) worst_sqrtf = (float)e;
  }
  CHECK(worst_exp < 1e-14, "exp: worst relative error %.3g", worst_exp);
  CHECK(worst_log < 1e-14, "log: worst relative error %.3g", worst_log);
  CHECK(worst_atan < 1e-14, "atan: worst relative error %.3g", worst_atan);
  CHECK(worst_sqrt < 1e-15, "sqrt: worst relative error %.3g", worst_sqrt);
  CHECK(worst_atanh < 1e-13, "atanh: worst relative error %.3g", worst_atanh);
  CHECK(fabs(lenssim__atanh(1e-9) - 1e-9) < 1e-23, "atanh keeps precision near 0");
  CHECK(worst_expf < 1e-6f, "expf: worst relative error %.3g", (double)worst_expf);
  CHECK(worst_logf < 1e-6f, "logf: worst relative error %.3g", (double)worst_logf);
  CHECK(worst_sqrtf < 3e-7f, "sqrtf: worst relative error %.3g", (double)worst_sqrtf);
}

/* ---- mass profiles -------------------------------------------------------------------------- */
static void test_sis(void) {
  lenssim_mass m = make_mass(LENSSIM_MASS_SIS);
  lenssim_lens_model model;
  double angles[5] = {0.1, 1.0, 2.0, 3.5, 5.9}, radii[5] = {0.05, 0.7, 1.3, 2.0, 9.0};
  int i;
  m.theta_E = 1.3; m.center_x = 0.2; m.center_y = -0.1;
  model = single_plane(&m, 1);
  for (i = 0; i < 5; i++) {
    double x = 0.2 + radii[i] * cos(angles[i]), y = -0.1 + radii[i] * sin(angles[i]), ax, ay;
    alpha_at(&model, x, y, &ax, &ay);
    CHECK(fabs(sqrt(ax * ax + ay * ay) - 1.3) < 1e-12, "SIS |alpha| = %.15g, expected theta_E = 1.3", sqrt(ax * ax + ay * ay));
    CHECK(fabs(ax * sin(angles[i]) - ay * cos(angles[i])) < 1e-12, "SIS deflection is not radial");
  }
  /* Einstein ring: every point at r = theta_E maps to the lens centre */
  for (i = 0; i < 5; i++) {
    double x = 0.2 + 1.3 * cos(angles[i]), y = -0.1 + 1.3 * sin(angles[i]), bx, by;
    lenssim_ray_shoot(&model, 0, 1, &x, &y, &bx, &by, NULL);
    CHECK(fabs(bx - 0.2) < 1e-12 && fabs(by + 0.1) < 1e-12, "SIS ring point maps to (%g, %g)", bx, by);
  }
  /* convergence kappa = theta_E / (2 r) */
  CHECK(fabs(lenssim_convergence(&model, 0.2 + 0.65, -0.1) - 1.0) < 1e-12, "SIS kappa at theta_E/2 must be 1");
}

static void test_point_mass(void) {
  lenssim_mass m = make_mass(LENSSIM_MASS_POINT_MASS);
  lenssim_lens_model model;
  double r, mu;
  m.theta_E = 0.8;
  model = single_plane(&m, 1);
  for (r = 0.3; r < 3.0; r += 0.37) {
    double x = r * cos(0.4), y = r * sin(0.4), ax, ay, expected;
    alpha_at(&model, x, y, &ax, &ay);
    CHECK(fabs(sqrt(ax * ax + ay * ay) - 0.64 / r) < 1e-12, "point mass |alpha| at r=%g", r);
    /* magnification of a point source against the Jacobian: mu = 1 / (1 - (theta_E/r)^4) */
    mu = lenssim_magnification(&model, x, y);
    expected = 1.0 / (1.0 - pow(0.8 / r, 4));
    CHECK(fabs(mu - expected) < 1e-5 * fabs(expected), "point mass mu(r=%g) = %.8g, expected %.8g", r, mu, expected);
  }
}

static void test_sie_symmetries(void) {
  lenssim_mass m = make_mass(LENSSIM_MASS_SIE), sis = make_mass(LENSSIM_MASS_SIS), rot;
  lenssim_lens_model model, sis_model, rot_model;
  double pts[4][2] = {{0.7, 0.2}, {-0.3, 1.1}, {1.5, -0.9}, {0.05, 0.02}};
  int i;
  m.theta_E = 1.1; m.e1 = 0.2; m.e2 = 0.0;
  model = single_plane(&m, 1);
  for (i = 0; i < 4; i++) {
    double x = pts[i][0], y = pts[i][1], a1x, a1y, a2x, a2y, a3x, a3y;
    alpha_at(&model, x, y, &a1x, &a1y);
    alpha_at(&model, -x, -y, &a2x, &a2y);
    CHECK(fabs(a1x + a2x) < 1e-12 && fabs(a1y + a2y) < 1e-12, "SIE alpha(-x) != -alpha(x) at (%g, %g)", x, y);
    /* e2 = 0: the major axis is x, so mirroring y mirrors alpha_y */
    alpha_at(&model, x, -y, &a3x, &a3y);
    CHECK(fabs(a1x - a3x) < 1e-12 && fabs(a1y + a3y) < 1e-12, "SIE mirror symmetry about its axis at (%g, %g)", x, y);
  }
  /* rotating (e1, e2) by 2 phi and the point by phi rotates alpha by phi */
  rot = m;
  rot.e1 = 0.2 * cos(2 * 0.6);
  rot.e2 = 0.2 * sin(2 * 0.6);
  rot_model = single_plane(&rot, 1);
  for (i = 0; i < 4; i++) {
    double x = pts[i][0], y = pts[i][1], c = cos(0.6), s = sin(0.6), ax, ay, bx, by;
    alpha_at(&model, x, y, &ax, &ay);
    alpha_at(&rot_model, c * x - s * y, s * x + c * y, &bx, &by);
    CHECK(fabs(bx - (c * ax - s * ay)) < 1e-12 && fabs(by - (s * ax + c * ay)) < 1e-12, "SIE rotation covariance at (%g, %g)", x, y);
  }
  /* a round SIE is the SIS */
  m.e1 = 0; m.e2 = 0;
  sis.theta_E = 1.1;
  model = single_plane(&m, 1);
  sis_model = single_plane(&sis, 1);
  for (i = 0; i < 4; i++) {
    double ax, ay, bx, by;
    alpha_at(&model, pts[i][0], pts[i][1], &ax, &ay);
    alpha_at(&sis_model, pts[i][0], pts[i][1], &bx, &by);
    CHECK(fabs(ax - bx) < 1e-7 && fabs(ay - by) < 1e-7, "round SIE (%.9g, %.9g) vs SIS (%.9g, %.9g)", ax, ay, bx, by);
  }
}

static void test_epl(void) {
  lenssim_mass epl = make_mass(LENSSIM_MASS_EPL), sie = make_mass(LENSSIM_MASS_SIE);
  lenssim_lens_model me, ms;
  double pts[4][2] = {{0.7, 0.2}, {-0.3, 1.1}, {1.5, -0.9}, {0.05, 0.4}}, gammas[3] = {1.6, 2.0, 2.4};
  int i, g;
  /* gamma = 2 is the SIE */
  epl.theta_E = sie.theta_E = 1.2;
  epl.gamma = 2.0;
  epl.e1 = sie.e1 = 0.15; epl.e2 = sie.e2 = -0.1;
  epl.center_x = sie.center_x = 0.1;
  me = single_plane(&epl, 1);
  ms = single_plane(&sie, 1);
  for (i = 0; i < 4; i++) {
    double ax, ay, bx, by;
    alpha_at(&me, pts[i][0], pts[i][1], &ax, &ay);
    alpha_at(&ms, pts[i][0], pts[i][1], &bx, &by);
    CHECK(fabs(ax - bx) < 1e-9 && fabs(ay - by) < 1e-9, "EPL(gamma=2) (%.12g, %.12g) vs SIE (%.12g, %.12g)", ax, ay, bx, by);
  }
  /* round power law: |alpha| = theta_E^(gamma-1) r^(2-gamma) */
  epl.e1 = epl.e2 = 0;
  epl.center_x = 0;
  for (g = 0; g < 3; g++) {
    epl.gamma = gammas[g];
    me = single_plane(&epl, 1);
    for (i = 0; i < 4; i++) {
      double ax, ay, r = sqrt(pts[i][0] * pts[i][0] + pts[i][1] * pts[i][1]);
      double expected = pow(1.2, gammas[g] - 1) * pow(r, 2 - gammas[g]);
      alpha_at(&me, pts[i][0], pts[i][1], &ax, &ay);
      CHECK(fabs(sqrt(ax * ax + ay * ay) - expected) < 1e-10 * expected, "round EPL gamma=%g: |alpha| %.12g vs %.12g",
            gammas[g], sqrt(ax * ax + ay * ay), expected);
    }
  }
}

/* kappa must be half the divergence of alpha: checks each profile's convergence against its
 * deflection by central differences. */
static void test_convergence_matches_deflection(void) {
  lenssim_mass ms[5];
  const char *names[5] = {"SIS", "SIE", "EPL", "NFW", "CONVERGENCE"};
  double pts[3][2] = {{0.7, 0.3}, {-0.4, 1.2}, {1.6, -0.8}};
  int k, i;
  for (k = 0; k < 5; k++) ms[k] = make_mass(LENSSIM_MASS_SIS);
  ms[0].theta_E = 1.0;
  ms[1].kind = LENSSIM_MASS_SIE; ms[1].theta_E = 1.1; ms[1].e1 = 0.2; ms[1].e2 = -0.1; ms[1].center_x = 0.05;
  ms[2].kind = LENSSIM_MASS_EPL; ms[2].theta_E = 1.1; ms[2].gamma = 2.2; ms[2].e1 = -0.1; ms[2].e2 = 0.25;
  ms[3].kind = LENSSIM_MASS_NFW; ms[3].Rs = 3.0; ms[3].alpha_Rs = 0.9; ms[3].center_y = 0.1;
  ms[4].kind = LENSSIM_MASS_CONVERGENCE; ms[4].kappa = 0.07;
  for (k = 0; k < 5; k++) {
    lenssim_lens_model model = single_plane(&ms[k], 1);
    for (i = 0; i < 3; i++) {
      double x = pts[i][0], y = pts[i][1], h = 1e-5, a1, a2, b1, b2, dummy, div, kappa;
      alpha_at(&model, x + h, y, &a1, &dummy);
      alpha_at(&model, x - h, y, &a2, &dummy);
      alpha_at(&model, x, y + h, &dummy, &b1);
      alpha_at(&model, x, y - h, &dummy, &b2);
      div = 0.5 * ((a1 - a2) / (2 * h) + (b1 - b2) / (2 * h));
      kappa = lenssim_convergence(&model, x, y);
      CHECK(fabs(kappa - div) < 1e-6, "%s at (%g, %g): kappa %.10g, half the divergence of alpha %.10g", names[k], x, y, kappa, div);
    }
  }
  /* NFW: the deflection at R = Rs is alpha_Rs */
  {
    lenssim_lens_model model = single_plane(&ms[3], 1);
    double ax, ay;
    alpha_at(&model, 3.0 * cos(0.3), 0.1 + 3.0 * sin(0.3), &ax, &ay);
    CHECK(fabs(sqrt(ax * ax + ay * ay) - 0.9) < 1e-12, "NFW |alpha(Rs)| = %.15g, expected alpha_Rs = 0.9", sqrt(ax * ax + ay * ay));
  }
  /* NFW beside R = Rs, where the closed forms of F and g are 0/0: kappa and |alpha| against
   * values computed with mpmath at 50 digits (Rs = 1, alpha_Rs = 1; Golse & Kneib 2002's F and g) */
  {
    static const double ref[6][3] = {{0.999999999, 0.54314855953026651, 0.99999999991370288},
                                     {0.999999, 0.54314921065736412, 0.99999991370268732},
                                     {0.9995, 0.54347459938417276, 0.99995680268892041},
                                     {1.0000000001, 0.54314855881331042, 1.0000000000086297},
                                     {1.000001, 0.54314790710082281, 1.0000000862969228},
                                     {1.0004, 0.54288794437276016, 1.0000344876692959}};
    lenssim_mass nfw = make_mass(LENSSIM_MASS_NFW);
    lenssim_lens_model model;
    nfw.Rs = 1.0; nfw.alpha_Rs = 1.0; nfw.center_x = 0.0; nfw.center_y = 0.0;
    model = single_plane(&nfw, 1);
    for (i = 0; i < 6; i++) {
      double ax, ay, kappa = lenssim_convergence(&model, ref[i][0], 0.0);
      alpha_at(&model, ref[i][0], 0.0, &ax, &ay);
      CHECK(fabs(kappa - ref[i][1]) < 1e-12 * ref[i][1], "NFW kappa at R/Rs = %.10g: %.17g, mpmath %.17g", ref[i][0], kappa, ref[i][1]);
      CHECK(fabs(ax - ref[i][2]) < 1e-12 && fabs(ay) < 1e-15, "NFW alpha at R/Rs = %.10g: (%.17g, %g), mpmath (%.17g, 0)", ref[i][0], ax, ay, ref[i][2]);
    }
  }
}

static void test_shear_sheet_magnification(void) {
  lenssim_mass ms[2];
  lenssim_lens_model model;
  double mu, expected, g1 = 0.05, g2 = -0.03, kappa = 0.1;
  ms[0] = make_mass(LENSSIM_MASS_SHEAR);
  ms[0].gamma1 = g1; ms[0].gamma2 = g2;
  ms[1] = make_mass(LENSSIM_MASS_CONVERGENCE);
  ms[1].kappa = kappa;
  model = single_plane(ms, 2);
  mu = lenssim_magnification(&model, 0.3, -1.2);
  expected = 1.0 / ((1 - kappa) * (1 - kappa) - g1 * g1 - g2 * g2);
  CHECK(fabs(mu - expected) < 1e-8, "shear + sheet: mu %.12g, expected %.12g", mu, expected);
}

/* A scene of one lens and one source on an n x n grid: what the property tests below render. */
static void one_lens_scene(lenssim_scene *scene, int n, double pixel_scale, int supersampling, lenssim_mass *lens,
                           lenssim_light *source) {
  memset(scene, 0, sizeof *scene);
  scene->grid.num_pix = n;
  scene->grid.pixel_scale = pixel_scale;
  scene->grid.supersampling = supersampling;
  scene->lens.lenses = lens;
  scene->lens.num_lenses = 1;
  scene->source_light = source;
  scene->num_source_light = 1;
}

/* The magnification of a point source, against the Jacobian: a tiny Gaussian source behind a
 * SIS has two images of magnification 1 + theta_E/beta and theta_E/beta - 1; the rendered flux
 * over the source's flux is their sum 2 theta_E / beta. */
static void test_point_source_magnification(void) {
  lenssim_mass m = make_mass(LENSSIM_MASS_SIS);
  lenssim_light src;
  lenssim_scene scene;
  lenssim_lens_model model;
  int n = 200;
  double *img = (double *)malloc(sizeof(double) * (size_t)n * (size_t)n), flux, beta = 0.4, theta_E = 1.0;
  double mu_plus, mu_minus;
  m.theta_E = theta_E;
  memset(&src, 0, sizeof src);
  src.kind = LENSSIM_LIGHT_GAUSSIAN;
  src.amp = 1.0;
  src.sigma = 0.004;
  src.center_x = beta;
  one_lens_scene(&scene, n, 0.015, 5, &m, &src);
  scene.double_precision = 1;
  CHECK(lenssim_render(&scene, img, NULL, 0, NULL) == LENSSIM_OK, "render");
  flux = sum_of(img, (size_t)n * (size_t)n);
  CHECK(fabs(flux - 2 * theta_E / beta) < 0.01 * 2 * theta_E / beta, "lensed point source flux %.5g, expected 2 theta_E/beta = %.5g",
        flux, 2 * theta_E / beta);
  model = single_plane(&m, 1);
  mu_plus = lenssim_magnification(&model, beta + theta_E, 0.0);
  mu_minus = lenssim_magnification(&model, beta - theta_E, 0.0);
  CHECK(fabs(mu_plus - (1 + theta_E / beta)) < 1e-6, "mu at the outer image %.9g, expected %.9g", mu_plus, 1 + theta_E / beta);
  CHECK(fabs(mu_minus - (1 - theta_E / beta)) < 1e-6, "mu at the inner image %.9g, expected %.9g", mu_minus, 1 - theta_E / beta);
  free(img);
}

/* The Einstein ring of a circular lens: a round source on the axis makes a ring whose brightest
 * pixels sit at r = theta_E. */
static void test_einstein_ring(void) {
  lenssim_mass m = make_mass(LENSSIM_MASS_SIS);
  lenssim_light src;
  lenssim_scene scene;
  int n = 81, i, j, ring = 0, off = 0;
  double *img = (double *)malloc(sizeof(double) * (size_t)n * (size_t)n), peak;
  m.theta_E = 1.5;
  memset(&src, 0, sizeof src);
  src.kind = LENSSIM_LIGHT_SERSIC;
  src.amp = 10; src.R_sersic = 0.05; src.n_sersic = 1;
  one_lens_scene(&scene, n, 0.05, 3, &m, &src);
  lenssim_render(&scene, img, NULL, 0, NULL);
  peak = max_abs(img, (size_t)n * (size_t)n);
  for (i = 0; i < n; i++)
    for (j = 0; j < n; j++) {
      double x = (j - 40) * 0.05, y = (i - 40) * 0.05, r = sqrt(x * x + y * y);
      if (img[i * n + j] > 0.5 * peak) {
        if (fabs(r - 1.5) <= 0.075) ring++;
        else off++;
      }
    }
  CHECK(ring > 50 && off == 0, "ring: %d bright pixels on r = theta_E, %d elsewhere", ring, off);
  free(img);
}

/* Surface brightness conservation: the lensed image at theta equals the source at beta(theta),
 * so a lens that only shifts the source (a constant deflection) moves but does not change it. */
static void test_surface_brightness_conservation(void) {
  lenssim_mass m = make_mass(LENSSIM_MASS_SIS);
  lenssim_light src;
  lenssim_lens_model model;
  double x[6] = {0.3, -1.2, 0.9, 2.0, -0.5, 1.4}, y[6] = {0.1, 0.4, -1.1, 0.3, -0.6, 1.9}, bx[6], by[6], lensed[6] = {0}, direct[6] = {0};
  int i;
  lenssim_scene scene;
  m.theta_E = 1.0;
  memset(&src, 0, sizeof src);
  src.kind = LENSSIM_LIGHT_SERSIC_ELLIPSE;
  src.amp = 3; src.R_sersic = 0.3; src.n_sersic = 2.5; src.e1 = 0.2; src.e2 = 0.1; src.center_x = 0.05;
  model = single_plane(&m, 1);
  lenssim_ray_shoot(&model, 0, 6, x, y, bx, by, NULL);
  lenssim_light_surface_brightness(&src, 1, 6, bx, by, direct);
  for (i = 0; i < 6; i++) {
    /* a one-sample "image" at x[i] through the renderer */
    lenssim_scene one;
    double value;
    memset(&one, 0, sizeof one);
    one.grid.num_pix = 1;
    one.grid.pixel_scale = 1.0;
    one.lens.lenses = &m;
    one.lens.num_lenses = 1;
    m.center_x = -x[i]; m.center_y = -y[i]; /* move the lens so that the pixel centre sits at x[i] relative to it */
    src.center_x = 0.05 - x[i]; src.center_y = -y[i];
    one.source_light = &src;
    one.num_source_light = 1;
    one.double_precision = 1;
    lenssim_render(&one, &value, NULL, 0, NULL);
    lensed[i] = value;
    m.center_x = 0; m.center_y = 0;
    src.center_x = 0.05; src.center_y = 0;
    CHECK(fabs(lensed[i] - direct[i]) <= 1e-12 * fabs(direct[i]) + 1e-300, "SB at theta %g vs source at beta %g", lensed[i], direct[i]);
  }
  /* a mass sheet maps beta = (1 - kappa) theta: the lensed source looks exactly like the
   * unlensed source enlarged by 1/(1 - kappa), same surface brightness, flux times 1/(1-kappa)^2 */
  {
    lenssim_mass sheet = make_mass(LENSSIM_MASS_CONVERGENCE);
    lenssim_light big = src;
    double lensed_img[41 * 41], plain_img[41 * 41], peak, diff = 0, flux_ratio;
    const double kappa = 0.3;
    sheet.kappa = kappa;
    one_lens_scene(&scene, 41, 0.05, 2, &sheet, &src);
    scene.double_precision = 1;
    lenssim_render(&scene, lensed_img, NULL, 0, NULL);
    big.R_sersic = src.R_sersic / (1 - kappa);
    big.center_x = src.center_x / (1 - kappa);
    big.center_y = src.center_y / (1 - kappa);
    scene.lens.num_lenses = 0;
    scene.source_light = &big;
    lenssim_render(&scene, plain_img, NULL, 0, NULL);
    peak = max_abs(plain_img, 41 * 41);
    for (i = 0; i < 41 * 41; i++) if (fabs(lensed_img[i] - plain_img[i]) > diff) diff = fabs(lensed_img[i] - plain_img[i]);
    CHECK(diff <= 1e-12 * peak, "mass sheet: lensed vs enlarged source differ by %.3g of the peak", diff / peak);
    /* the flux, with a compact source whose images stay inside the grid */
    big = src;
    big.kind = LENSSIM_LIGHT_GAUSSIAN;
    big.sigma = 0.1;
    scene.source_light = &big;
    lenssim_render(&scene, plain_img, NULL, 0, NULL); /* unlensed */
    scene.lens.num_lenses = 1;
    lenssim_render(&scene, lensed_img, NULL, 0, NULL);
    flux_ratio = sum_of(lensed_img, 41 * 41) / sum_of(plain_img, 41 * 41);
    CHECK(fabs(flux_ratio - 1 / ((1 - kappa) * (1 - kappa))) < 0.01 * flux_ratio, "mass sheet magnifies the flux by %.5g, expected %.5g",
          flux_ratio, 1 / ((1 - kappa) * (1 - kappa)));
  }
}

/* The caller's workspace gives the same image as the internal allocation; too small a one is
 * refused before anything is written. */
static void test_workspace(void) {
  lenssim_json_scene sc;
  size_t bytes, count, i;
  double *a, *b;
  void *work;
  lenssim_error err;
  if (!load_reference_scene(7, &sc)) return;
  bytes = lenssim_render_workspace_bytes(&sc.scene);
  count = (size_t)sc.scene.grid.num_pix * (size_t)sc.scene.grid.num_pix;
  a = (double *)malloc(count * sizeof *a);
  b = (double *)malloc(count * sizeof *b);
  work = malloc(bytes);
  CHECK(bytes > 0, "workspace size");
  CHECK(lenssim_render(&sc.scene, a, NULL, 0, NULL) == LENSSIM_OK, "render with internal workspace");
  CHECK(lenssim_render(&sc.scene, b, work, bytes, NULL) == LENSSIM_OK, "render with the caller's workspace");
  for (i = 0; i < count; i++) if (a[i] != b[i]) break;
  CHECK(i == count, "the two renders differ at pixel %lu", (unsigned long)i);
  CHECK(lenssim_render(&sc.scene, b, work, bytes - 1, &err) == LENSSIM_ERR_WORKSPACE && strstr(err.message, "workspace"),
        "a short workspace is refused");
  CHECK(strcmp(lenssim_result_string(LENSSIM_ERR_WORKSPACE), "workspace too small") == 0 &&
        lenssim_result_string((lenssim_result)999) != NULL, "result strings");
  free(work); free(a); free(b);
  lenssim_json_scene_free(&sc);
}

/* ---- light profiles ------------------------------------------------------------------------- */
static void test_light_flux(void) {
  lenssim_light l;
  lenssim_scene scene;
  int n = 301;
  double *img = (double *)malloc(sizeof(double) * (size_t)n * (size_t)n), flux, expected;
  memset(&l, 0, sizeof l);
  l.kind = LENSSIM_LIGHT_SERSIC_ELLIPSE;
  l.R_sersic = 0.3; l.n_sersic = 1.0; l.e1 = 0.2; l.e2 = -0.1;
  l.amp = lenssim_sersic_amp_from_counts(100.0, l.R_sersic, l.n_sersic);
  memset(&scene, 0, sizeof scene);
  scene.grid.num_pix = n;
  scene.grid.pixel_scale = 0.03;
  scene.grid.supersampling = 3;
  scene.source_light = &l;
  scene.num_source_light = 1;
  lenssim_render(&scene, img, NULL, 0, NULL);
  flux = sum_of(img, (size_t)n * (size_t)n);
  CHECK(fabs(flux - 100.0) < 0.2, "Sersic n=1 with amp for 100 counts renders %.5g counts", flux);
  /* the half-light radius: half the flux inside the product-average ellipse R < R_sersic */
  {
    int i, j;
    double inside = 0, q, phi, c, s;
    lenssim__phi_q(l.e1, l.e2, &phi, &q);
    c = cos(phi); s = sin(phi);
    for (i = 0; i < n; i++)
      for (j = 0; j < n; j++) {
        double x = (j - 150) * 0.03, y = (i - 150) * 0.03, xr = x * c + y * s, yr = -x * s + y * c;
        if (q * xr * xr + yr * yr / q < 0.09) inside += img[i * n + j];
      }
    CHECK(fabs(inside / flux - 0.5) < 0.01, "flux inside R_sersic: %.4f of the total", inside / flux);
  }
  /* Gaussian amp is the total flux */
  memset(&l, 0, sizeof l);
  l.kind = LENSSIM_LIGHT_GAUSSIAN;
  l.amp = 7.0; l.sigma = 0.2;
  lenssim_render(&scene, img, NULL, 0, NULL);
  flux = sum_of(img, (size_t)n * (size_t)n);
  CHECK(fabs(flux - 7.0) < 1e-6, "Gaussian of amp 7 renders %.9g", flux);
  expected = lenssim_magnitude_to_counts(24.0, 24.0);
  CHECK(fabs(expected - 1.0) < 1e-15, "a source at the zero point gives 1 count/s");
  CHECK(fabs(lenssim_magnitude_to_counts(21.5, 24.0) - 10.0) < 1e-12, "2.5 magnitudes brighter is 10 times the counts");
  free(img);
}

static void test_clumpy(void) {
  lenssim_clumpy c;
  lenssim_light out[16], again[16];
  lenssim_rng rng;
  size_t made, i;
  double disc_total, total = 0;
  memset(&c, 0, sizeof c);
  c.amp = 5; c.R_sersic = 0.3; c.n_sersic = 1; c.e1 = 0.1; c.num_clumps = 6; c.clump_fraction = 0.4;
  lenssim_rng_seed(&rng, 11);
  made = lenssim_clumpy_source(&c, &rng, out, 16);
  CHECK(made == 7, "clumpy source made %lu profiles, expected 7", (unsigned long)made);
  disc_total = 5.0 / lenssim_sersic_amp_from_counts(1.0, 0.3, 1.0);
  total = out[0].amp / lenssim_sersic_amp_from_counts(1.0, 0.3, 1.0);
  for (i = 1; i < made; i++) {
    double dx = out[i].center_x - c.center_x, dy = out[i].center_y - c.center_y;
    total += out[i].amp;
    CHECK(out[i].kind == LENSSIM_LIGHT_GAUSSIAN && out[i].amp > 0 && out[i].sigma > 0, "clump %lu is a positive Gaussian", (unsigned long)i);
    CHECK(sqrt(dx * dx + dy * dy) < 2.0 * 0.3 / sqrt(0.8), "clump %lu lies on the disc", (unsigned long)i);
  }
  CHECK(fabs(total - disc_total) < 1e-9 * disc_total, "clumps and disc share the flux: %.12g vs %.12g", total, disc_total);
  lenssim_rng_seed(&rng, 11);
  lenssim_clumpy_source(&c, &rng, again, 16);
  CHECK(memcmp(out, again, sizeof(lenssim_light) * made) == 0, "the same seed gives the same clumps");
  CHECK(lenssim_clumpy_source(&c, &rng, out, 3) == 0, "too small an output is refused");
}

/* ---- ray tracing ---------------------------------------------------------------------------- */
static void test_multi_plane_reductions(void) {
  lenssim_mass ms[3];
  lenssim_lens_model single, multi;
  double x[3] = {0.4, -1.1, 0.8}, y[3] = {0.9, 0.3, -0.7}, b1x[3], b1y[3], b2x[3], b2y[3];
  int i;
  ms[0] = make_mass(LENSSIM_MASS_SIE);
  ms[0].theta_E = 1.0; ms[0].e1 = 0.1; ms[0].redshift = 0.5;
  ms[1] = make_mass(LENSSIM_MASS_SHEAR);
  ms[1].gamma1 = 0.04; ms[1].redshift = 0.5;
  ms[2] = make_mass(LENSSIM_MASS_SIS);
  ms[2].theta_E = 0.3; ms[2].center_x = 0.5; ms[2].redshift = 0.5;
  single = single_plane(ms, 3);
  multi = single;
  multi.multi_plane = 1;
  multi.z_source = 2.0;
  multi.z_source_convention = 2.0;
  lenssim_ray_shoot(&single, 0, 3, x, y, b1x, b1y, NULL);
  lenssim_ray_shoot(&multi, 0, 3, x, y, b2x, b2y, NULL);
  for (i = 0; i < 3; i++)
    CHECK(fabs(b1x[i] - b2x[i]) < 1e-12 && fabs(b1y[i] - b2y[i]) < 1e-12, "one plane traced as multi-plane differs at %d", i);
  /* a source in front of every lens is not lensed */
  lenssim_ray_shoot(&multi, 0.3, 3, x, y, b2x, b2y, NULL);
  for (i = 0; i < 3; i++)
    CHECK(fabs(b2x[i] - x[i]) < 1e-14 && fabs(b2y[i] - y[i]) < 1e-14, "a source at z=0.3 before the lenses at 0.5 is lensed");
  /* a source beyond the convention redshift is deflected more: D_ls/D_s grows with z_s */
  {
    double bx, by, ax1, ax2;
    lenssim_ray_shoot(&multi, 3.0, 1, &x[0], &y[0], &bx, &by, NULL);
    ax2 = x[0] - bx;
    ax1 = x[0] - b1x[0];
    CHECK(ax2 > ax1, "deflection for z_s = 3 (%g) not above that for z_s = 2 (%g)", ax2, ax1);
  }
}

/* ---- PSF ------------------------------------------------------------------------------------ */
static void test_psf(void) {
  int n = 41, i, j;
  double img[41 * 41], scratch[41 * 41 * 3 + 1000], flux;
  lenssim_psf psf;
  double kernel[9] = {0, 1, 0, 1, 4, 1, 0, 1, 0};
  memset(&psf, 0, sizeof psf);
  /* Gaussian: unit flux kept, symmetric, and the scipy kernel: values at 1 pixel over the centre
   * equal exp(-1/(2 sigma^2)) */
  for (i = 0; i < n * n; i++) img[i] = 0;
  img[20 * n + 20] = 1.0;
  psf.kind = LENSSIM_PSF_GAUSSIAN;
  psf.fwhm = 0.3;
  CHECK(lenssim_psf_scratch_doubles(&psf, n, 0.1) <= sizeof scratch / sizeof scratch[0], "scratch size");
  lenssim_psf_convolve(&psf, n, 0.1, img, scratch, NULL);
  flux = sum_of(img, (size_t)(n * n));
  CHECK(fabs(flux - 1.0) < 1e-12, "Gaussian PSF flux %.15g", flux);
  {
    double sigma = 0.3 / (2 * sqrt(2 * log(2.0))) / 0.1;
    CHECK(fabs(img[20 * n + 21] / img[20 * n + 20] - exp(-0.5 / (sigma * sigma))) < 1e-12, "Gaussian PSF profile");
    CHECK(fabs(img[19 * n + 20] - img[21 * n + 20]) < 1e-15 && fabs(img[20 * n + 19] - img[19 * n + 20]) < 1e-15, "Gaussian PSF symmetry");
    /* truncated at radius int(5 sigma + 0.5) */
    CHECK(img[20 * n + 20 + (int)(5 * sigma + 0.5)] > 0 && img[20 * n + 20 + (int)(5 * sigma + 0.5) + 1] == 0, "Gaussian PSF truncation");
  }
  /* edges replicated: a constant image stays constant */
  for (i = 0; i < n * n; i++) img[i] = 2.5;
  lenssim_psf_convolve(&psf, n, 0.1, img, scratch, NULL);
  for (i = 0; i < n * n; i++) if (fabs(img[i] - 2.5) > 1e-12) break;
  CHECK(i == n * n, "a constant image is not constant after the Gaussian PSF (pixel %d)", i);
  /* Moffat: flux kept, half maximum at fwhm/2 */
  for (i = 0; i < n * n; i++) img[i] = 0;
  img[20 * n + 20] = 1.0;
  psf.kind = LENSSIM_PSF_MOFFAT;
  psf.fwhm = 0.4; /* kernel half-width 3 fwhm = 12 pixels, inside the image */
  psf.moffat_beta = 3.0;
  lenssim_psf_convolve(&psf, n, 0.1, img, scratch, NULL);
  flux = sum_of(img, (size_t)(n * n));
  CHECK(fabs(flux - 1.0) < 1e-12, "Moffat PSF flux %.15g", flux);
  CHECK(fabs(img[20 * n + 22] / img[20 * n + 20] - 0.5) < 1e-12, "Moffat half maximum at fwhm/2: %.15g", img[20 * n + 22] / img[20 * n + 20]);
  /* pixel kernel: a delta becomes the normalised kernel */
  for (i = 0; i < n * n; i++) img[i] = 0;
  img[10 * n + 30] = 1.0;
  psf.kind = LENSSIM_PSF_PIXEL;
  psf.kernel = kernel;
  psf.kernel_size = 3;
  lenssim_psf_convolve(&psf, n, 0.1, img, scratch, NULL);
  for (i = -1; i <= 1; i++)
    for (j = -1; j <= 1; j++)
      CHECK(fabs(img[(10 + i) * n + 30 + j] - kernel[(i + 1) * 3 + j + 1] / 8.0) < 1e-15, "pixel kernel at (%d, %d)", i, j);
  {
    lenssim_error err;
    psf.kernel_size = 2;
    CHECK(lenssim_psf_convolve(&psf, n, 0.1, img, scratch, &err) == LENSSIM_ERR_ARG && strstr(err.message, "odd"),
          "an even kernel is refused");
  }
}

/* ---- noise ---------------------------------------------------------------------------------- */
static void test_rng_and_poisson(void) {
  lenssim_rng a, b;
  double means[5] = {0.5, 5.0, 50.0, 5000.0, 1e7};
  int i, k, N = 200000;
  lenssim_rng_seed(&a, 42);
  lenssim_rng_seed(&b, 42);
  for (i = 0; i < 100; i++) if (lenssim_rng_next(&a) != lenssim_rng_next(&b)) break;
  CHECK(i == 100, "the same seed gives the same sequence");
  lenssim_rng_seed(&b, 43);
  CHECK(lenssim_rng_next(&a) != lenssim_rng_next(&b), "different seeds differ");
  for (k = 0; k < 5; k++) {
    double sum = 0, sum2 = 0, mean, var, lam = means[k];
    int whole = 1;
    for (i = 0; i < N; i++) {
      double v = lenssim_rng_poisson(&a, lam);
      if (v != floor(v) || v < 0) whole = 0;
      sum += v; sum2 += v * v;
    }
    mean = sum / N;
    var = sum2 / N - mean * mean;
    CHECK(whole, "Poisson(%g) gave a non-integer or negative value", lam);
    /* 5 standard errors: the mean's is sqrt(lam/N), the variance's about lam sqrt(2/N) */
    CHECK(fabs(mean - lam) < 5 * sqrt(lam / N), "Poisson(%g): mean %.6g", lam, mean);
    CHECK(fabs(var - lam) < 5 * lam * sqrt(2.0 / N) + 5 * sqrt(lam / N), "Poisson(%g): variance %.6g", lam, var);
  }
  /* degenerate means end, never hang */
  CHECK(lenssim_rng_poisson(&a, -3.0) == 0.0 && lenssim_rng_poisson(&a, NAN) == 0.0, "non-positive means give 0");
  CHECK(isinf(lenssim_rng_poisson(&a, INFINITY)), "an infinite mean passes through");
  CHECK(fabs(lenssim_rng_poisson(&a, 1e18) - 1e18) < 1e10, "a huge mean stays near its mean");
  {
    double sum = 0, sum2 = 0, sum3 = 0;
    for (i = 0; i < N; i++) { double z = lenssim_rng_normal(&a); sum += z; sum2 += z * z; sum3 += z * z * z; }
    CHECK(fabs(sum / N) < 5 / sqrt((double)N), "normal mean %.5g", sum / N);
    CHECK(fabs(sum2 / N - 1) < 5 * sqrt(2.0 / N), "normal variance %.5g", sum2 / N);
    CHECK(fabs(sum3 / N) < 5 * sqrt(15.0 / N), "normal skewness %.5g", sum3 / N);
  }
}

static void test_noise_statistics(void) {
  lenssim_noise nz;
  lenssim_rng rng;
  int N = 200000, i, k;
  double *img = (double *)malloc(sizeof(double) * (size_t)N), *again = (double *)malloc(sizeof(double) * (size_t)N);
  double levels[3] = {0.0, 0.05, 3.0};
  memset(&nz, 0, sizeof nz);
  nz.exposure_time = 600.0;
  nz.sky_rate = 0.2;
  nz.read_noise = 5.0;
  nz.num_exposures = 1;
  nz.ccd_gain = 0; /* no quantisation: the variance is exactly Poisson + read */
  for (k = 0; k < 3; k++) {
    double c = levels[k], sum = 0, sum2 = 0, mean, var, expected;
    for (i = 0; i < N; i++) img[i] = c;
    lenssim_rng_seed(&rng, 5 + (uint64_t)k);
    lenssim_add_noise(&nz, img, (size_t)N, &rng);
    for (i = 0; i < N; i++) { sum += img[i]; sum2 += img[i] * img[i]; }
    mean = sum / N;
    var = sum2 / N - mean * mean;
    expected = ((c + 0.2) * 600.0 + 25.0) / (600.0 * 600.0);
    CHECK(fabs(mean - c) < 5 * sqrt(expected / N), "noise on %g counts/s: mean %.6g", c, mean);
    CHECK(fabs(var / expected - 1) < 5 * sqrt(2.0 / N), "noise on %g counts/s: variance %.6g, expected %.6g", c, var, expected);
    for (i = 0; i < N; i++) again[i] = c;
    lenssim_rng_seed(&rng, 5 + (uint64_t)k);
    lenssim_add_noise(&nz, again, (size_t)N, &rng);
    CHECK(memcmp(img, again, sizeof(double) * (size_t)N) == 0, "the same seed gives the same noise");
  }
  /* gain quantises the electrons to whole ADU */
  nz.ccd_gain = 3.0;
  for (i = 0; i < 1000; i++) img[i] = 0.7;
  lenssim_rng_seed(&rng, 9);
  lenssim_add_noise(&nz, img, 1000, &rng);
  for (i = 0; i < 1000; i++) {
    double adu = (img[i] * 600.0 + 0.2 * 600.0) / 3.0;
    if (fabs(adu - floor(adu + 0.5)) > 1e-6) break;
  }
  CHECK(i == 1000, "pixel %d is not a whole number of ADU", i);
  free(img);
  free(again);
}

static void test_bands(void) {
  const char *names[9] = {"VIS", "NISP_Y", "NISP_J", "NISP_H", "HSC_g", "HSC_r", "HSC_i", "HST_F160W", "CHALLENGE1_VIS"};
  int i;
  CHECK(lenssim_band_count() == 9, "9 bands");
  for (i = 0; i < 9; i++) {
    const lenssim_band *b = lenssim_band_find(names[i]);
    CHECK(b != NULL, "band %s missing", names[i]);
    if (b) CHECK(b->pixel_scale > 0 && b->exposure_time > 0 && b->zero_point > 20 && b->psf_fwhm > 0 && b->read_noise > 0,
                 "band %s has a missing figure", names[i]);
  }
  CHECK(lenssim_band_find("vis") == lenssim_band_find("VIS"), "band names are case-insensitive");
  CHECK(lenssim_band_find("VIS")->pixel_scale == 0.1 && lenssim_band_find("NISP_H")->pixel_scale == 0.3, "VIS 0.1\"/px, NISP 0.3\"/px");
  CHECK(lenssim_band_find("nope") == NULL, "unknown band");
  {
    lenssim_noise nz = lenssim_noise_from_band(lenssim_band_find("VIS"));
    /* sky of 22.35 mag/arcsec^2 with zero point 24: 10^(0.4 1.65) counts/s/arcsec^2 on 0.01 arcsec^2 */
    CHECK(fabs(nz.sky_rate - pow(10.0, 0.4 * 1.65) * 0.01) < 1e-12, "VIS sky rate %.8g", nz.sky_rate);
    CHECK(nz.exposure_time == 565.0 * 4, "VIS exposure");
  }
}

/* A scene seen through a band: the band's PSF unless the scene keeps its own, and the band's sky
 * per arcsec^2 (from its magnitude and zero point) over the scene's pixel area. */
static void test_band_observe(void) {
  const lenssim_band *hsc = lenssim_band_find("HSC_g"), *vis = lenssim_band_find("VIS");
  const char *bare = "{\"grid\": {\"num_pix\": 20, \"pixel_scale\": 0.05}}";
  const char *no_psf = "{\"grid\": {\"num_pix\": 20, \"pixel_scale\": 0.05}, \"psf\": {\"type\": \"NONE\"}}";
  lenssim_scene scene;
  lenssim_json_scene *js = (lenssim_json_scene *)malloc(sizeof *js);
  lenssim_noise nz;
  lenssim_error err;
  double sky;
  if (!hsc || !vis || !js) { CHECK(0, "bands HSC_g and VIS, memory"); free(js); return; }

  /* no PSF of its own: HSC_g's Moffat; pixels of 0.05" where the band's are 0.168" */
  memset(&scene, 0, sizeof scene);
  scene.grid.num_pix = 20;
  scene.grid.pixel_scale = 0.05;
  CHECK(lenssim_band_observe(hsc, &scene, scene.psf.kind != LENSSIM_PSF_NONE, &nz, &err) == LENSSIM_OK, "HSC_g: %s", err.message);
  CHECK(scene.psf.kind == LENSSIM_PSF_MOFFAT && scene.psf.fwhm == 0.77 && scene.psf.moffat_beta == 3.5,
        "a scene without a PSF gets HSC_g's Moffat 0.77\", beta 3.5 (kind %d, %g, %g)", (int)scene.psf.kind,
        scene.psf.fwhm, scene.psf.moffat_beta);
  CHECK(scene.grid.num_pix == 20 && scene.grid.pixel_scale == 0.05, "the grid is left alone");
  sky = pow(10.0, -0.4 * (hsc->sky_brightness - hsc->zero_point)) * 0.05 * 0.05;
  CHECK(fabs(nz.sky_rate - sky) <= 1e-12 * sky, "HSC_g sky on 0.05\" pixels: %.15g, expected %.15g", nz.sky_rate, sky);
  CHECK(nz.exposure_time == 4 * 150.0 && nz.num_exposures == 4 && nz.read_noise == 4.5 && nz.ccd_gain == 3.0,
        "HSC_g's exposure, read noise and gain");

  /* a PSF of its own is kept; VIS's 22.35 mag/arcsec^2 at zero point 24 on pixels of 0.2" */
  memset(&scene, 0, sizeof scene);
  scene.grid.num_pix = 20;
  scene.grid.pixel_scale = 0.2;
  scene.psf.kind = LENSSIM_PSF_GAUSSIAN;
  scene.psf.fwhm = 0.3;
  CHECK(lenssim_band_observe(vis, &scene, scene.psf.kind != LENSSIM_PSF_NONE, &nz, &err) == LENSSIM_OK, "VIS: %s", err.message);
  CHECK(scene.psf.kind == LENSSIM_PSF_GAUSSIAN && scene.psf.fwhm == 0.3, "the scene's own PSF is kept (fwhm %g)", scene.psf.fwhm);
  sky = pow(10.0, 0.4 * 1.65) * 0.04;
  CHECK(fabs(nz.sky_rate - sky) <= 1e-12 * sky, "VIS sky on 0.2\" pixels: %.15g, expected %.15g (4 VIS pixels)", nz.sky_rate, sky);
  CHECK(nz.exposure_time == 4 * 565.0 && nz.read_noise == 4.2 && nz.ccd_gain == 3.1, "VIS's exposure, read noise and gain");
  CHECK(lenssim_band_observe(vis, &scene, 0, NULL, NULL) == LENSSIM_OK && scene.psf.fwhm == 0.16,
        "keep_psf 0 replaces it, and the noise may be left out");

  /* JSON scenes: has_psf says whether the text has a "psf" entry, even an explicit NONE */
  if (lenssim_scene_from_json(bare, strlen(bare), js, &err) == LENSSIM_OK) {
    CHECK(lenssim_band_observe(vis, &js->scene, js->has_psf, NULL, &err) == LENSSIM_OK &&
              js->scene.psf.kind == LENSSIM_PSF_MOFFAT && js->scene.psf.fwhm == 0.16 && js->scene.psf.moffat_beta == 2.5,
          "a JSON scene without \"psf\" gets VIS's Moffat (FWHM 0.16\", beta 2.5)");
    lenssim_json_scene_free(js);
  } else CHECK(0, "bare scene: %s", err.message);
  if (lenssim_scene_from_json(no_psf, strlen(no_psf), js, &err) == LENSSIM_OK) {
    CHECK(lenssim_band_observe(vis, &js->scene, js->has_psf, NULL, &err) == LENSSIM_OK &&
              js->scene.psf.kind == LENSSIM_PSF_NONE, "a JSON scene's \"psf\": NONE stays without a PSF");
    lenssim_json_scene_free(js);
  } else CHECK(0, "scene with psf NONE: %s", err.message);

  memset(&scene, 0, sizeof scene);
  CHECK(lenssim_band_observe(vis, &scene, 0, &nz, &err) == LENSSIM_ERR_RANGE && strstr(err.message, "pixel_scale"),
        "a scene without a pixel scale is refused (%s)", err.message);
  CHECK(lenssim_band_observe(NULL, &scene, 0, &nz, &err) == LENSSIM_ERR_ARG && strstr(err.message, "band"), "NULL band");
  free(js);
}

/* ---- labels.csv, class names ------------------------------------------------------------------ */
static void test_label_csv(void) {
  static const char header[] =
      "index,label,kind,theta_E,theta_E2,e1,e2,center_x,center_y,gamma1,gamma2,sigma_v,z_lens,z_lens2,"
      "z_source,z_source2,source_x,source_y,source_R,source_n,source_clumpy,magnification,magnification2,"
      "n_images,n_images2,arc_snr,mag_source,mag_source2,mag_lens,n_subhalos,substructure_mass,"
      "vortex_length,vortex_angle,vortex_density,attempts,arc_snr1,arc_snr2,n_neighbours\n";
  static const char row[] =
      "12345678901,2,vortex,1.25,0,0.1,-0.05,0.01,-0.02,0.03,-0.01,250,0.5,0,1,0,0.1,0.2,0.3,1.5,1,"
      "4.5,0,2,-1,26.5,24.123,0,0,0,0.0123457,2,1.5,0.02,7,26.5,0,12\n";
  lenssim_label l;
  lenssim_error err;
  char buf[LENSSIM_LABEL_CSV_MAX];
  size_t n;
  CHECK(strcmp(lenssim_label_csv_header(), header) == 0, "header: %s", lenssim_label_csv_header());
  memset(&l, 0, sizeof l);
  l.label = 2; l.kind = LENSSIM_KIND_VORTEX; l.theta_E = 1.25; l.e1 = 0.1; l.e2 = -0.05; l.center_x = 0.01;
  l.center_y = -0.02; l.gamma1 = 0.03; l.gamma2 = -0.01; l.sigma_v = 250; l.z_lens = 0.5; l.z_source = 1;
  l.source_x = 0.1; l.source_y = 0.2; l.source_R = 0.3; l.source_n = 1.5; l.source_clumpy = 1; l.magnification = 4.5;
  l.n_images = 2; l.n_images2 = -1; l.arc_snr = 26.5; l.mag_source = 24.123; l.substructure_mass = 0.012345678;
  l.vortex_length = 2; l.vortex_angle = 1.5; l.vortex_density = 0.02; l.attempts = 7;
  l.arc_snr1 = 26.5; l.n_neighbours = 12;
  n = lenssim_label_csv_row(&l, 12345678901ULL, buf, sizeof buf, &err);
  CHECK(n == strlen(row) && strcmp(buf, row) == 0, "row (%lu bytes): %s", (unsigned long)n, buf);
  CHECK(lenssim_label_csv_row(&l, 12345678901ULL, buf, strlen(row), &err) == 0 && buf[0] == 0 &&
            err.result == LENSSIM_ERR_ARG && strstr(err.message, "bytes"),
        "a buffer one byte short is refused, empty (%s)", err.message);
  CHECK(lenssim_label_csv_row(&l, 12345678901ULL, buf, strlen(row) + 1, NULL) == strlen(row), "an exact buffer holds it");
  l.theta_E = -1.5e300; l.arc_snr = 1e-300; l.mag_lens = -123456.0; l.n_subhalos = -2147483647 - 1;
  n = lenssim_label_csv_row(&l, 18446744073709551615ULL, buf, sizeof buf, &err);
  CHECK(n > 0 && n < sizeof buf, "extreme values fit LENSSIM_LABEL_CSV_MAX (%lu bytes)", (unsigned long)n);
  CHECK(lenssim_label_csv_row(NULL, 0, buf, sizeof buf, &err) == 0 && err.result == LENSSIM_ERR_ARG, "NULL label");
}

static void test_preset_classes(void) {
  lenssim_dataset *ds = (lenssim_dataset *)malloc(sizeof *ds);
  lenssim_dataset_config cfg;
  char names[128];
  int p;
  CHECK(strcmp(lenssim_preset_class_names(LENSSIM_PRESET_EUCLID_LENSFINDING), "non-lens,lens") == 0, "euclid-lensfinding");
  snprintf(names, sizeof names, "%s,%s,%s", lenssim_kind_name(LENSSIM_KIND_NO_SUBSTRUCTURE),
           lenssim_kind_name(LENSSIM_KIND_SUBHALOS), lenssim_kind_name(LENSSIM_KIND_VORTEX));
  CHECK(strcmp(lenssim_preset_class_names(LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE), names) == 0,
        "deeplense-substructure: its kinds in class order (%s)", lenssim_preset_class_names(LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE));
  CHECK(strcmp(lenssim_preset_class_names(LENSSIM_PRESET_COUNT), "?") == 0, "unknown preset");
  for (p = 0; ds && p < LENSSIM_PRESET_COUNT; p++) {
    const char *c = lenssim_preset_class_names((lenssim_preset)p);
    int commas = 0;
    for (; *c; c++) commas += *c == ',';
    memset(&cfg, 0, sizeof cfg);
    cfg.preset = (lenssim_preset)p;
    CHECK(lenssim_dataset_init(ds, &cfg, 1, NULL) == LENSSIM_OK && ds->classes == commas + 1,
          "%s: %d classes, %d names", lenssim_preset_name((lenssim_preset)p), ds->classes, commas + 1);
  }
  CHECK(ds != NULL, "out of memory");
  free(ds);
}

/* ---- scene files and errors ----------------------------------------------------------------- */
static int scene_error(const char *json, char *msg, size_t len) {
  lenssim_json_scene sc;
  lenssim_error err;
  lenssim_result r = lenssim_scene_from_json(json, strlen(json), &sc, &err);
  snprintf(msg, len, "%s", r == LENSSIM_OK ? "" : err.message);
  lenssim_json_scene_free(&sc);
  return r == LENSSIM_OK ? 0 : -1;
}

static void expect_error(const char *json, const char *needle) {
  char msg[512] = "";
  int rc = scene_error(json, msg, sizeof msg);
  CHECK(rc != 0 && strstr(msg, needle) != NULL, "expected an error containing \"%s\", got \"%s\"", needle, msg);
}

static void test_scene_errors(void) {
  char msg[512];
  const char *grid = "\"grid\": {\"num_pix\": 10, \"pixel_scale\": 0.1}";
  char buf[1024];
  CHECK(scene_error("{\"grid\": {\"num_pix\": 10, \"pixel_scale\": 0.1, \"supersampling\": 2}, \"lens\": [{\"type\": \"SIS\", \"theta_E\": 1}]}",
                    msg, sizeof msg) == 0, "a valid scene: %s", msg);
  snprintf(buf, sizeof buf, "{%s, \"lens\": [{\"type\": \"SIS\", \"theta_E\": 1}, {\"type\": \"SIE\", \"e1\": 0.1, \"e2\": 0}]}", grid);
  expect_error(buf, "lens[1] 'SIE': missing keyword 'theta_E'");
  snprintf(buf, sizeof buf, "{%s, \"lens\": [{\"type\": \"SIE_X\", \"theta_E\": 1}]}", grid);
  expect_error(buf, "lens[0]: unknown lens model 'SIE_X'");
  snprintf(buf, sizeof buf, "{%s, \"source_light\": [{\"type\": \"SERSIC_ELIPSE\", \"amp\": 1}]}", grid);
  expect_error(buf, "unknown light model 'SERSIC_ELIPSE'");
  snprintf(buf, sizeof buf, "{%s, \"lens\": [{\"type\": \"SIE\", \"theta_E\": 1, \"e1\": 1.5, \"e2\": 0}]}", grid);
  expect_error(buf, "lens[0] 'SIE': e1 = 1.5 is out of range");
  snprintf(buf, sizeof buf, "{%s, \"lens\": [{\"type\": \"SIS\", \"theta_E\": -1}]}", grid);
  expect_error(buf, "lens[0] 'SIS': theta_E = -1 is out of range");
  snprintf(buf, sizeof buf, "{%s, \"lens\": [{\"type\": \"SIS\", \"theta_e\": 1}]}", grid);
  expect_error(buf, "lens[0] 'SIS': unknown keyword 'theta_e'");
  snprintf(buf, sizeof buf, "{%s, \"lens_light\": [{\"type\": \"SERSIC\", \"amp\": 1, \"R_sersic\": 0, \"n_sersic\": 2}]}", grid);
  expect_error(buf, "lens_light[0] 'SERSIC': R_sersic = 0 is out of range");
  snprintf(buf, sizeof buf, "{%s, \"lens\": [{\"type\": \"SIS\", \"theta_E\": \"big\"}]}", grid);
  expect_error(buf, "keyword 'theta_E' must be a number");
  expect_error("{\"grid\": {\"num_pix\": 0, \"pixel_scale\": 0.1}}", "num_pix = 0 is out of range");
  expect_error("{\"grid\": {\"num_pix\": 10.5, \"pixel_scale\": 0.1}}", "num_pix = 10.5 is out of range");
  expect_error("{\"grid\": {\"num_pix\": 10}}", "grid: missing keyword 'pixel_scale'");
  expect_error("{\"lens\": []}", "missing 'grid'");
  expect_error("[1, 2]", "a scene must be a JSON object");
  snprintf(buf, sizeof buf, "{%s, \"len\": []}", grid);
  expect_error(buf, "unknown keyword 'len'");
  snprintf(buf, sizeof buf, "{%s, \"lens\": [{\"type\": \"SIS\", \"theta_E\": 1}], \"multi_plane\": {\"lens_redshifts\": [0.5, 0.6], \"z_source\": 2}}", grid);
  expect_error(buf, "'lens_redshifts' has 2 redshifts but there are 1 lens entries");
  snprintf(buf, sizeof buf, "{%s, \"lens\": [{\"type\": \"SIS\", \"theta_E\": 1}], \"multi_plane\": {\"lens_redshifts\": [2.5], \"z_source\": 2}}", grid);
  expect_error(buf, "redshift 2.5 must be above 0 and below z_source_convention 2");
  snprintf(buf, sizeof buf, "{%s, \"psf\": {\"type\": \"GAUSSIAN\"}}", grid);
  expect_error(buf, "psf 'GAUSSIAN': missing keyword 'fwhm'");
  snprintf(buf, sizeof buf, "{%s, \"psf\": {\"type\": \"AIRY\", \"fwhm\": 0.1}}", grid);
  expect_error(buf, "psf: unknown type 'AIRY'");
  snprintf(buf, sizeof buf, "{%s, \"psf\": {\"type\": \"PIXEL\", \"kernel\": [[1, 2], [3, 4]]}}", grid);
  expect_error(buf, "odd side");
  snprintf(buf, sizeof buf, "{%s, \"source_light\": [{\"type\": \"CLUMPY\", \"amp\": 1, \"R_sersic\": 0.2, \"n_sersic\": 1, \"e1\": 0, \"e2\": 0, \"num_clumps\": 100}]}", grid);
  expect_error(buf, "source_light[0] 'CLUMPY': num_clumps = 100 is out of range");
  /* a clumpy source expands into a disc and its clumps */
  {
    lenssim_json_scene sc;
    lenssim_error err;
    snprintf(buf, sizeof buf, "{%s, \"source_light\": [{\"type\": \"CLUMPY\", \"amp\": 1, \"R_sersic\": 0.2, \"n_sersic\": 1, \"e1\": 0, \"e2\": 0, \"num_clumps\": 4, \"seed\": 3}]}", grid);
    err.message[0] = 0;
    CHECK(lenssim_scene_from_json(buf, strlen(buf), &sc, &err) == LENSSIM_OK && sc.scene.num_source_light == 5,
          "CLUMPY expands to 5 profiles (%s)", err.message);
    lenssim_json_scene_free(&sc);
  }
  /* every reference scene loads */
  {
    int s;
    for (s = 0; s < 16; s++) {
      lenssim_json_scene sc;
      if (load_reference_scene(s, &sc)) lenssim_json_scene_free(&sc);
    }
  }
}

/* Malformed scenes never crash: the reference scenes with bytes deleted, duplicated or replaced
 * (digits, signs, exponents, quotes, brackets) either load and render, or fail with a message. */
static void test_scene_mutations(void) {
  char path[512];
  size_t len = 0, trial;
  char *text;
  lenssim_rng rng;
  const char replacements[] = "0123456789-+.eE\"[]{},:9";
  int loaded = 0, refused = 0, crashed_free = 1, json_agrees = 1;
  ref_path(path, sizeof path, "scene_015.json");
  text = read_text(path, &len);
  CHECK(text != NULL, "cannot read %s", path);
  if (!text) return;
  lenssim_rng_seed(&rng, 2024);
  for (trial = 0; trial < 400; trial++) {
    char *copy = (char *)malloc(len + 8);
    size_t n = len, pos, edits = 1 + lenssim_rng_next(&rng) % 3, e;
    lensnet_json *doc = NULL;
    lensnet_error jerr;
    memcpy(copy, text, len);
    for (e = 0; e < edits; e++) {
      unsigned kind = (unsigned)(lenssim_rng_next(&rng) % 3);
      pos = (size_t)(lenssim_rng_next(&rng) % n);
      if (kind == 0 && n > 1) { memmove(copy + pos, copy + pos + 1, n - pos - 1); n--; }
      else if (kind == 1) { memmove(copy + pos + 1, copy + pos, n - pos); n++; }
      else copy[pos] = replacements[lenssim_rng_next(&rng) % (sizeof replacements - 1)];
    }
    {
      lenssim_json_scene sc;
      lenssim_error serr;
      if (lenssim_scene_from_json(copy, n, &sc, &serr) == LENSSIM_OK) {
        int np = sc.scene.grid.num_pix, ss = sc.scene.grid.supersampling;
        loaded++;
        /* what the scene reader accepts is JSON to lensnet's reader too */
        if (lensnet_json_parse(copy, n, &doc, &jerr) == LENSNET_OK) lensnet_json_free(doc);
        else json_agrees = 0;
        if (np <= 96 && ss <= 4) {
          double *img = (double *)malloc(sizeof(double) * (size_t)np * (size_t)np);
          lenssim_result r = lenssim_render(&sc.scene, img, NULL, 0, &serr);
          if (r != LENSSIM_OK && serr.message[0] == 0) crashed_free = 0;
          free(img);
        }
      } else {
        refused++;
        if (strlen(serr.message) < 12) crashed_free = 0;
      }
      lenssim_json_scene_free(&sc);
    }
    free(copy);
  }
  CHECK(crashed_free, "a refused scene had no message");
  CHECK(json_agrees, "the scene reader accepted text that is not JSON");
  CHECK(loaded > 0 && refused > 0, "mutations: %d loaded, %d refused (both kinds expected)", loaded, refused);
  free(text);
}

/* ---- training windows cut from a field ------------------------------------------------------ */
/* A small field (200 px, 2 lenses, 10 others), rendered once, shared by the window tests. */
typedef struct {
  lenssim_field f;
  lenssim_field_object objects[12];
  lenssim_label labels[12];
  float *image;
} window_field;

static int window_field_make(window_field *w, int lenses, int others, int noise_free, uint64_t seed) {
  lenssim_field_config c;
  lenssim_error err;
  memset(&c, 0, sizeof c);
  c.size = 200; c.lenses = lenses; c.others = others; c.population.noise_free = noise_free;
  if (lenssim_field_init(&w->f, &c, seed, &err) != LENSSIM_OK || w->f.object_count > 12) return 0;
  w->image = (float *)malloc(lenssim_field_image_floats(&w->f) * sizeof(float));
  return w->image && lenssim_field_render(&w->f, w->image, w->objects, w->labels, &err) == LENSSIM_OK;
}

/* Positives: the lens lies where the row says, within R; the pixels are the field's; the rest of
 * the row is the lens's. */
static void test_windows_positives(const window_field *w) {
  enum { N = 16 };
  const lenssim_field *f = &w->f;
  lenssim_window_config wc;
  lenssim_label wl[N];
  lenssim_field_window at[N];
  lenssim_error err;
  size_t per = lenssim_dataset_image_floats(&f->population), i, positives = 0, differ = 0, ch, row, col;
  float *win = (float *)malloc(N * per * sizeof(float));
  double half = 0.5 * (f->stamp - 1), worst = 0, widest = 0;
  memset(&wc, 0, sizeof wc);
  CHECK(lenssim_field_windows(f, w->image, w->objects, w->labels, &wc, 5, 0, N, win, wl, at, &err) == LENSSIM_OK, "cut: %s", err.message);
  for (i = 0; i < N; i++) {
    const lenssim_field_object *o;
    CHECK(at[i].x >= 0 && at[i].y >= 0 && at[i].x + f->stamp <= f->size && at[i].y + f->stamp <= f->size, "window %lu inside", (unsigned long)i);
    for (ch = 0; ch < (size_t)f->channels; ch++)
      for (row = 0; row < (size_t)f->stamp; row++)
        for (col = 0; col < (size_t)f->stamp; col++)
          differ += win[i * per + (ch * f->stamp + row) * f->stamp + col] !=
                    w->image[(ch * f->size + at[i].y + row) * f->size + at[i].x + col];
    if (at[i].label != 1) continue;
    positives++;
    CHECK(at[i].object >= 0, "window %lu: a positive names its lens", (unsigned long)i);
    if (at[i].object < 0) continue;
    o = &w->objects[at[i].object];
    CHECK(wl[i].label == 1 && o->label == 1 && wl[i].kind == w->labels[at[i].object].kind &&
          wl[i].theta_E == w->labels[at[i].object].theta_E, "window %lu: the lens's row", (unsigned long)i);
    /* the convention of the field: object x = window x + (side - 1) / 2 + center_x / pixel_scale */
    if (fabs(at[i].x + half + wl[i].center_x / f->pixel_scale - o->x) > worst) worst = fabs(at[i].x + half + wl[i].center_x / f->pixel_scale - o->x);
    if (fabs(at[i].y + half + wl[i].center_y / f->pixel_scale - o->y) > worst) worst = fabs(at[i].y + half + wl[i].center_y / f->pixel_scale - o->y);
    if (fabs(wl[i].center_x) > widest) widest = fabs(wl[i].center_x);
    if (fabs(wl[i].center_y) > widest) widest = fabs(wl[i].center_y);
    /* the source keeps its place relative to the deflector */
    CHECK(fabs((wl[i].source_x - wl[i].center_x) - (w->labels[at[i].object].source_x - w->labels[at[i].object].center_x)) < 1e-9 &&
          fabs((wl[i].source_y - wl[i].center_y) - (w->labels[at[i].object].source_y - w->labels[at[i].object].center_y)) < 1e-9,
          "window %lu: the source moves with the lens", (unsigned long)i);
  }
  CHECK(positives == N / 2, "%lu positives of %d at the default share 0.5", (unsigned long)positives, N);
  CHECK(worst < 1e-9, "lens position from the row: off by %g px", worst);
  CHECK(widest <= 8 * f->pixel_scale + 1e-12 && widest > 2 * f->pixel_scale, "offsets up to R = 8 px: largest %g\"", widest);
  CHECK(differ == 0, "%lu window pixels differ from the field's", (unsigned long)differ);
  free(win);
}

/* The sign of the convention, from the pixels: in a noise-free field with one lens and nothing
 * else, a positive's brightest VIS pixel is where its row puts the lens (column x, row y), give or
 * take the arc's pull (2 px, as for the field's truth in tests/test_find.c), and at the same place
 * relative to it in every window, whatever the window's offset. */
static void test_windows_convention(void) {
  window_field one;
  lenssim_window_config wc;
  lenssim_label wl[6];
  lenssim_field_window at[6];
  lenssim_error err;
  size_t per, i, k, best;
  double first_dx = 0, first_dy = 0, spread = 0;
  float *win;
  memset(&wc, 0, sizeof wc);
  wc.lens_fraction = 1;
  CHECK(window_field_make(&one, 1, -1, 1, 23), "a field of one lens");
  per = lenssim_dataset_image_floats(&one.f.population);
  win = (float *)malloc(6 * per * sizeof(float));
  CHECK(lenssim_field_windows(&one.f, one.image, one.objects, one.labels, &wc, 9, 0, 6, win, wl, at, &err) == LENSSIM_OK, "cut: %s", err.message);
  for (i = 0; i < 6; i++) {
    double half = 0.5 * (one.f.stamp - 1), px = half + wl[i].center_x / one.f.pixel_scale, py = half + wl[i].center_y / one.f.pixel_scale;
    const float *vis = win + i * per;
    for (best = 0, k = 1; k < (size_t)(one.f.stamp * one.f.stamp); k++) if (vis[k] > vis[best]) best = k;
    CHECK(at[i].label == 1 && wl[i].label == 1, "lens_fraction 1: window %lu a positive", (unsigned long)i);
    CHECK(fabs((double)(best % one.f.stamp) - px) <= 2 && fabs((double)(best / one.f.stamp) - py) <= 2,
          "window %lu: brightest VIS pixel (col %lu, row %lu), the row says (%.2f, %.2f)", (unsigned long)i,
          (unsigned long)(best % one.f.stamp), (unsigned long)(best / one.f.stamp), px, py);
    if (i == 0) { first_dx = (double)(best % one.f.stamp) - px; first_dy = (double)(best / one.f.stamp) - py; }
    spread = fmax(spread, fmax(fabs((double)(best % one.f.stamp) - px - first_dx), fabs((double)(best / one.f.stamp) - py - first_dy)));
  }
  CHECK(spread < 1e-9, "the brightest pixel moves with the row's centre: spread %g px over 6 offsets", spread);
  free(win);
  free(one.image);
}

/* Negatives: label 0, no lens within D (Chebyshev); centred ones within R of a non-lens whose row
 * they carry; uniform ones the row of the nearest non-lens in the window, or empty sky. */
static void test_windows_negatives(const window_field *w) {
  enum { N = 40 };
  const lenssim_field *f = &w->f;
  lenssim_window_config wc;
  lenssim_label wl[N];
  lenssim_field_window at[N];
  lenssim_error err;
  double half = 0.5 * (f->stamp - 1);
  size_t i, k, centred = 0, uniform = 0, empty = 0, negatives = 0;
  memset(&wc, 0, sizeof wc);
  wc.lens_fraction = -1; /* none: negatives only */
  wc.clear = 30;
  CHECK(lenssim_field_windows(f, NULL, w->objects, w->labels, &wc, 7, 0, N, NULL, wl, at, &err) == LENSSIM_OK, "cut: %s", err.message);
  for (i = 0; i < N; i++) {
    double cx = at[i].x + half, cy = at[i].y + half;
    int clear = 1;
    negatives += at[i].label == 0 && wl[i].label == 0;
    for (k = 0; k < f->object_count; k++)
      if (w->objects[k].label == 1 && fabs(w->objects[k].x - cx) <= 30 && fabs(w->objects[k].y - cy) <= 30) clear = 0;
    CHECK(clear, "negative %lu at (%d, %d) keeps lenses beyond D = 30 px", (unsigned long)i, at[i].x, at[i].y);
    if (at[i].object < 0) {
      empty++;
      CHECK(wl[i].kind == LENSSIM_KIND_EMPTY && wl[i].center_x == 0 && wl[i].theta_E == 0 && wl[i].n_images2 == -1, "empty sky's row");
      continue;
    }
    {
      const lenssim_field_object *o = &w->objects[at[i].object];
      double dx = o->x - cx, dy = o->y - cy;
      CHECK(o->label == 0 && wl[i].kind == w->labels[at[i].object].kind, "negative %lu carries a non-lens's row", (unsigned long)i);
      CHECK(fabs(cx + wl[i].center_x / f->pixel_scale - o->x) < 1e-9 && fabs(cy + wl[i].center_y / f->pixel_scale - o->y) < 1e-9,
            "negative %lu: the object where its row says", (unsigned long)i);
      if (fabs(dx) <= 8 && fabs(dy) <= 8) centred++;
      else uniform++;
      CHECK(fabs(dx) <= half + 0.5 && fabs(dy) <= half + 0.5, "negative %lu: its object lies in it", (unsigned long)i);
    }
  }
  CHECK(negatives == N, "%lu of %d negatives labelled 0", (unsigned long)negatives, N);
  /* half are centred by construction; a uniform one can land near a non-lens too */
  CHECK(centred >= N / 2 && uniform + empty >= 1, "%lu within R of a non-lens, %lu farther, %lu on empty sky", (unsigned long)centred,
        (unsigned long)uniform, (unsigned long)empty);
  memset(&wc, 0, sizeof wc);
  wc.lens_fraction = -1;
  wc.centred_fraction = 1;
  CHECK(lenssim_field_windows(f, NULL, w->objects, w->labels, &wc, 7, 0, N, NULL, wl, at, &err) == LENSSIM_OK, "cut: %s", err.message);
  for (i = 0, centred = 0; i < N; i++)
    centred += at[i].object >= 0 && fabs(w->objects[at[i].object].x - at[i].x - half) <= 8 && fabs(w->objects[at[i].object].y - at[i].y - half) <= 8;
  CHECK(centred == N, "centred_fraction 1: %lu of %d centred on a non-lens", (unsigned long)centred, N);
}

/* The same (field, configuration, seed) gives the same windows; fewer are the first of more, and
 * a later block cut alone (first > 0) is the same block; another seed gives others; the share of
 * positives holds across calls. */
static void test_windows_determinism(const window_field *w) {
  enum { N = 12 };
  const lenssim_field *f = &w->f;
  lenssim_window_config wc;
  lenssim_label la[N], lb[N];
  lenssim_field_window pa[N], pb[N];
  lenssim_error err;
  size_t per = lenssim_dataset_image_floats(&f->population);
  float *a = (float *)malloc(N * per * sizeof(float)), *b = (float *)malloc(N * per * sizeof(float));
  memset(&wc, 0, sizeof wc);
  memset(la, 0, sizeof la); memset(lb, 0, sizeof lb); memset(pa, 0, sizeof pa); memset(pb, 0, sizeof pb);
  lenssim_field_windows(f, w->image, w->objects, w->labels, &wc, 3, 0, N, a, la, pa, &err);
  lenssim_field_windows(f, w->image, w->objects, w->labels, &wc, 3, 0, N, b, lb, pb, &err);
  CHECK(!memcmp(a, b, N * per * sizeof(float)) && !memcmp(la, lb, sizeof la) && !memcmp(pa, pb, sizeof pa), "same seed, same windows");
  memset(lb, 0, sizeof lb); memset(pb, 0, sizeof pb);
  lenssim_field_windows(f, w->image, w->objects, w->labels, &wc, 3, 0, 5, b, lb, pb, &err);
  CHECK(!memcmp(a, b, 5 * per * sizeof(float)) && !memcmp(la, lb, 5 * sizeof *la) && !memcmp(pa, pb, 5 * sizeof *pa), "5 windows are the first 5 of 12");
  memset(lb, 0, sizeof lb); memset(pb, 0, sizeof pb);
  lenssim_field_windows(f, w->image, w->objects, w->labels, &wc, 3, 5, N - 5, b, lb, pb, &err);
  CHECK(!memcmp(a + 5 * per, b, (N - 5) * per * sizeof(float)) && !memcmp(la + 5, lb, (N - 5) * sizeof *la) &&
        !memcmp(pa + 5, pb, (N - 5) * sizeof *pa), "windows 5..11 cut alone (first = 5) are those of the 12");
  lenssim_field_windows(f, w->image, w->objects, w->labels, &wc, 4, 0, N, b, lb, pb, &err);
  CHECK(memcmp(pa, pb, sizeof pa) != 0, "another seed, other windows");
  {
    /* a share of 0.3 over 20 windows cut in four calls: exactly 6 positives */
    size_t k, positives = 0;
    wc.lens_fraction = 0.3;
    for (k = 0; k < 4; k++) {
      size_t i;
      lenssim_field_windows(f, NULL, w->objects, w->labels, &wc, 8, 5 * k, 5, NULL, NULL, pb, &err);
      for (i = 0; i < 5; i++) positives += pb[i].label == 1;
    }
    CHECK(positives == 6, "%lu positives in 20 windows at 0.3, cut 5 at a time", (unsigned long)positives);
  }
  free(a);
  free(b);
}

/* Configurations that cannot be met are refused with a sentence. */
static void test_windows_errors(const window_field *w) {
  const lenssim_field *f = &w->f;
  lenssim_window_config wc, got;
  lenssim_label wl[4];
  lenssim_error err;
  window_field none;
  memset(&wc, 0, sizeof wc);
  CHECK(lenssim_field_windows_resolve(f, &wc, &got, &err) == LENSSIM_OK && got.max_offset == 8 && got.lens_fraction == 0.5 &&
        got.clear == 16 && got.centred_fraction == 0.5, "defaults: R %g, share %g, D %g, centred %g", got.max_offset, got.lens_fraction,
        got.clear, got.centred_fraction);
  wc.max_offset = -1; wc.lens_fraction = -1; wc.centred_fraction = -1;
  CHECK(lenssim_field_windows_resolve(f, &wc, &got, &err) == LENSSIM_OK && got.max_offset == 0 && got.lens_fraction == 0 && got.clear == 0 &&
        got.centred_fraction == 0, "negative means 0");
  wc.max_offset = 0; wc.lens_fraction = 1.5; wc.centred_fraction = 0;
  CHECK(lenssim_field_windows(f, w->image, w->objects, w->labels, &wc, 1, 0, 4, NULL, wl, NULL, &err) == LENSSIM_ERR_RANGE &&
        strstr(err.message, "lens_fraction"), "lens_fraction 1.5: %s", err.message);
  wc.lens_fraction = 0; wc.max_offset = 40;
  CHECK(lenssim_field_windows_resolve(f, &wc, &got, &err) == LENSSIM_ERR_RANGE && strstr(err.message, "max_offset"), "R = 40 leaves the window: %s", err.message);
  wc.max_offset = 8; wc.clear = 4;
  CHECK(lenssim_field_windows_resolve(f, &wc, &got, &err) == LENSSIM_ERR_RANGE && strstr(err.message, "clear"), "D < R: %s", err.message);
  wc.clear = 500; wc.lens_fraction = -1;
  CHECK(lenssim_field_windows(f, w->image, w->objects, w->labels, &wc, 1, 0, 4, NULL, wl, NULL, &err) == LENSSIM_ERR_RANGE &&
        strstr(err.message, "10000 draws"), "no negative 500 px clear of every lens in 200 px: %s", err.message);
  CHECK(lenssim_field_windows(f, NULL, w->objects, w->labels, &wc, 1, 0, 4, (float *)wl, wl, NULL, &err) == LENSSIM_ERR_ARG, "windows without the image");
  memset(&wc, 0, sizeof wc);
  CHECK(window_field_make(&none, -1, 3, 1, 2), "a field without lenses");
  CHECK(lenssim_field_windows(&none.f, none.image, none.objects, none.labels, &wc, 1, 0, 4, NULL, wl, NULL, &err) == LENSSIM_ERR_RANGE &&
        strstr(err.message, "need lenses"), "positives without lenses: %s", err.message);
  wc.lens_fraction = -1;
  CHECK(lenssim_field_windows(&none.f, none.image, none.objects, none.labels, &wc, 1, 0, 4, NULL, wl, NULL, &err) == LENSSIM_OK,
        "negatives only from a field without lenses: %s", err.message);
  free(none.image);
  {
    /* a field's counts come from its config: a population share of 1 has no non-lenses to place */
    lenssim_field_config c;
    lenssim_field g;
    memset(&c, 0, sizeof c);
    c.size = 200; c.lenses = 1; c.others = 2; c.population.lens_fraction = 1;
    CHECK(lenssim_field_init(&g, &c, 1, &err) == LENSSIM_ERR_RANGE && strstr(err.message, "non-lenses"), "lens_fraction 1 with others: %s", err.message);
  }
}

static void test_field_windows(void) {
  window_field w;
  memset(&w, 0, sizeof w);
  if (!window_field_make(&w, 2, 10, 0, 31)) {
    CHECK(0, "a 200 px field of 2 lenses and 10 others");
    free(w.image);
    return;
  }
  TEST("field windows: a positive's lens lies where its row says, within R; pixels are the field's") test_windows_positives(&w);
  TEST("field windows: the row's centre is the lens's place in the pixels (x column, y row)") test_windows_convention();
  TEST("field windows: negatives keep lenses beyond D; centred on non-lenses; their rows") test_windows_negatives(&w);
  TEST("field windows: deterministic from (field, configuration, seed, number); blocks agree") test_windows_determinism(&w);
  TEST("field windows: defaults, and configurations that cannot be met") test_windows_errors(&w);
  free(w.image);
}

int main(void) {
  TEST("cosmology: distances match astropy to 1e-6") test_cosmology();
  TEST("deflections match lenstronomy to 1e-6") test_deflections();
  TEST("reference images match lenstronomy to 1e-3 of the peak") test_render_parity();
  TEST("float render path agrees with double") test_float_matches_double();
  TEST("fast exp/log/atan/sqrt agree with libm") test_fast_math();
  TEST("SIS: |alpha| = theta_E, radial, Einstein ring maps to the centre") test_sis();
  TEST("point mass: deflection and magnification") test_point_mass();
  TEST("SIE: point and mirror symmetry, rotation, round limit") test_sie_symmetries();
  TEST("EPL: gamma = 2 is the SIE; round power law") test_epl();
  TEST("convergence is half the divergence of the deflection") test_convergence_matches_deflection();
  TEST("shear and mass sheet magnification") test_shear_sheet_magnification();
  TEST("point-source magnification against the Jacobian") test_point_source_magnification();
  TEST("Einstein ring of a circular lens") test_einstein_ring();
  TEST("surface brightness conservation") test_surface_brightness_conservation();
  TEST("render workspace") test_workspace();
  TEST("light profiles: total flux, half-light radius, magnitudes") test_light_flux();
  TEST("clumpy star-forming sources") test_clumpy();
  TEST("multi-plane tracing reduces to one plane") test_multi_plane_reductions();
  TEST("PSFs: Gaussian, Moffat, pixel kernel") test_psf();
  TEST("RNG, Poisson and normal deviates") test_rng_and_poisson();
  TEST("noise: mean, variance, seeds, gain") test_noise_statistics();
  TEST("bands") test_bands();
  TEST("a scene seen through a band: its PSF, its sky per scene pixel") test_band_observe();
  TEST("labels.csv header and rows; short buffers are refused") test_label_csv();
  TEST("class names per preset, and the dataset's class count") test_preset_classes();
  TEST("scene errors name the entry") test_scene_errors();
  TEST("malformed scenes are refused with a message, never a crash") test_scene_mutations();
  test_field_windows();
  return check_summary();
}
