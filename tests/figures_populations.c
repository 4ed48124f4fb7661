/* figures_populations.c - the numbers and pictures of docs/populations.md.
 *   build/figures_populations stats N     distributions of N selected galaxy-galaxy lenses
 *                                         (euclid-lensfinding, OU-66), of the compound kinds,
 *                                         and the lenses per square degree they imply
 *   build/figures_populations pictures DIR   one PPM montage per preset (the central 100 x 100
 *                                         pixels, asinh stretch; Euclid (OU-200) in colour: H,
 *                                         (Y+J)/2, VIS)
 * tests/ppm_to_png.py turns the PPMs into the committed PNGs. Not part of `make test`. */
#define LENSSIM_IMPLEMENTATION
#include "lenssim.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void percentiles(const char *name, double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  printf("  %-22s p5 %7.3f  p16 %7.3f  median %7.3f  p84 %7.3f  p95 %7.3f\n", name, v[n * 5 / 100], v[n * 16 / 100],
         v[n / 2], v[n * 84 / 100], v[n * 95 / 100]);
}

/* Lenses per square degree the population implies. The sampler draws (z_l, sigma, z_s) with
 * weight w = min(1, (theta_E/3")^2) and a source uniform within 1.2 theta_E, then applies the
 * selection, which passes a fraction p_sel of those draws (1 / draws per lens). With deflectors of
 * surface density N_d (the VDF over the comoving volume, per deg^2) and sources of surface density
 * S (per arcsec^2), the lenses per deg^2 are N_d S E[pi (1.2 theta_E)^2 sel] = N_d S 1.44 pi 9 A p_sel,
 * A = E[w] over unweighted draws (draws with theta_E > 3", w capped at 1, are a fraction ~1e-4
 * and counted as if weighted: a small underestimate). S is not set by lenssim's source model (its
 * magnitudes are conditional on z): it is taken as 0.066 per arcsec^2, the density of the simulated
 * LSST catalogue Collett 2015 draws sources from (to its depth, about 27.5). */
static void lens_counts(const lenssim_dataset *ds, double p_sel) {
  const double h = 0.7, S = 0.066, deg2_sr = (LENSSIM__PI / 180.0) * (LENSSIM__PI / 180.0);
  double H0, Om0, dh, nd = 0.0, phi = 0.0, A = 0.0;
  int k, M = 2000000;
  lenssim_rng rng;
  lenssim__cosmo_defaults(&ds->config.cosmology, &H0, &Om0);
  dh = LENSSIM__C_KM_S / H0;
  for (k = 0; k < 3700; k++) { /* the VDF over 80-450 km/s, h^3 Mpc^-3 */
    double sg = 80.0 + (k + 0.5) * 0.1;
    phi += lenssim_velocity_dispersion_function(sg) * 0.1;
  }
  phi *= h * h * h;
  for (k = 0; k < 1950; k++) { /* dV/dz/dOmega = D_H D_C^2 / E(z), 0.05 < z < 2 */
    double z = 0.05 + (k + 0.5) * 0.001, dc = lenssim__dc(ds, z);
    nd += dh * dc * dc * lenssim__inv_E(Om0, z) * 0.001;
  }
  nd *= phi * deg2_sr;
  lenssim_rng_seed(&rng, 7);
  for (k = 0; k < M; k++) {
    double zl = lenssim__icdf_draw(ds->zl_icdf, lenssim_rng_uniform(&rng));
    double sg = lenssim__icdf_draw(ds->sigma_icdf, lenssim_rng_uniform(&rng));
    double zs = lenssim__icdf_draw(ds->zs_icdf, lenssim_rng_uniform(&rng)), th;
    if (zs < zl + 0.1) continue;
    th = lenssim__theta_E(ds, sg, zl, zs);
    A += th * th / 9.0 < 1.0 ? th * th / 9.0 : 1.0;
  }
  A /= M;
  printf("  deflectors %.3g per deg^2 (VDF, 0.05 < z < 2); E[w] = %.4g; selection passes %.4f of the draws;\n"
         "  with 0.066 sources per arcsec^2: %.1f lenses per deg^2, %.0f over 15 000 deg^2\n",
         nd, A, p_sel, nd * S * 1.44 * LENSSIM__PI * 9.0 * A * p_sel, 15000.0 * nd * S * 1.44 * LENSSIM__PI * 9.0 * A * p_sel);
}

static int stats(lenssim_preset preset, lenssim_kind kind, int n) {
  lenssim_dataset *ds = (lenssim_dataset *)malloc(sizeof *ds);
  lenssim_dataset_config c;
  double *th = malloc(n * sizeof(double)), *ms = malloc(n * sizeof(double)), *zl = malloc(n * sizeof(double));
  double *zs = malloc(n * sizeof(double)), *mu = malloc(n * sizeof(double)), *snr = malloc(n * sizeof(double));
  double *ml = malloc(n * sizeof(double)), *sig = malloc(n * sizeof(double)), *rs = malloc(n * sizeof(double));
  double *s1 = malloc(n * sizeof(double)), *s2 = malloc(n * sizeof(double)), *dth = malloc(n * sizeof(double));
  float *img;
  int i, quads = 0, in_03_15 = 0;
  long attempts = 0;
  memset(&c, 0, sizeof c);
  c.preset = preset;
  c.noise_free = 1;
  if (lenssim_dataset_init(ds, &c, 2026, NULL) != LENSSIM_OK) return 1;
  img = malloc(lenssim_dataset_image_floats(ds) * sizeof(float));
  for (i = 0; i < n; i++) {
    lenssim_label l;
    lenssim_error err;
    if (lenssim_dataset_sample_kind(ds, (uint64_t)i, kind, img, &l, NULL, 0, &err) != LENSSIM_OK) { printf("%s\n", err.message); return 1; }
    th[i] = l.theta_E; ms[i] = l.mag_source; zl[i] = l.z_lens; zs[i] = l.z_source; mu[i] = l.magnification;
    snr[i] = l.arc_snr; ml[i] = l.mag_lens; sig[i] = l.sigma_v; rs[i] = l.source_R;
    s1[i] = l.arc_snr1; s2[i] = l.arc_snr2; dth[i] = l.theta_E2 - l.theta_E;
    quads += l.n_images >= 4;
    in_03_15 += l.theta_E >= 0.3 && l.theta_E <= 1.5;
    attempts += l.attempts;
  }
  printf("%s / %s: %d selected lenses, %.1f draws per lens, %.1f%% with 4+ images, %.1f%% with 0.3\" <= theta_E <= 1.5\"\n",
         lenssim_preset_name(preset), lenssim_kind_name(kind), n, (double)attempts / n, 100.0 * quads / n, 100.0 * in_03_15 / n);
  if (kind == LENSSIM_KIND_GALAXY_GALAXY) lens_counts(ds, (double)n / attempts);
  percentiles("theta_E (arcsec)", th, n);
  percentiles("sigma_v (km/s)", sig, n);
  percentiles("z_lens", zl, n);
  percentiles("z_source", zs, n);
  percentiles("source mag (det.)", ms, n);
  percentiles("lens mag (det.)", ml, n);
  percentiles("magnification", mu, n);
  percentiles("arc S/N", snr, n);
  percentiles("source R_e (arcsec)", rs, n);
  if (kind != LENSSIM_KIND_GALAXY_GALAXY) {
    percentiles("arc S/N, plane 1", s1, n);
    percentiles("arc S/N, plane 2", s2, n);
    percentiles("theta_E2 - theta_E", dth, n);
  }
  free(rs); free(s1); free(s2); free(dth);
  free(th); free(ms); free(zl); free(zs); free(mu); free(snr); free(ml); free(sig); free(img); free(ds);
  return 0;
}

/* asinh stretch of v with the tile's own scale (99.5th percentile of the stretched values) */
static void stretch(const float *v, int n, double scale, unsigned char *out, int stride) {
  int i;
  for (i = 0; i < n; i++) {
    double x = asinh(v[i] / scale) / asinh(30.0);
    x = x < 0 ? 0 : (x > 1 ? 1 : x);
    out[(size_t)i * stride] = (unsigned char)(255.0 * x + 0.5);
  }
}

/* the asinh softening: the brighter of twice the noise (from the median absolute deviation) and
 * the 99.9th percentile / 30 */
static double tile_scale(const float *v, int n) {
  double s, med, mad, top;
  int i;
  double *d = malloc(n * sizeof(double));
  for (i = 0; i < n; i++) d[i] = v[i];
  qsort(d, (size_t)n, sizeof *d, cmp_double);
  med = d[n / 2];
  top = d[n * 999 / 1000];
  for (i = 0; i < n; i++) d[i] = fabs(v[i] - med);
  qsort(d, (size_t)n, sizeof *d, cmp_double);
  mad = 1.4826 * d[n / 2];
  s = 2.0 * mad > top / 30.0 ? 2.0 * mad : top / 30.0;
  free(d);
  return s > 0 ? s : 1e-6;
}

static int montage(const char *path, lenssim_preset preset, lenssim_layout layout, const lenssim_kind *kinds, int count, uint64_t first) {
  lenssim_dataset *ds = (lenssim_dataset *)malloc(sizeof *ds);
  lenssim_dataset_config c;
  int T = 100, k, N, C, i, j, ch;
  unsigned char *pix;
  float *img, *tile;
  FILE *f;
  memset(&c, 0, sizeof c);
  c.preset = preset;
  c.layout = layout;
  if (lenssim_dataset_init(ds, &c, 7, NULL) != LENSSIM_OK) return 1;
  N = ds->num_pix; C = ds->channels;
  img = malloc(lenssim_dataset_image_floats(ds) * sizeof(float));
  tile = malloc((size_t)C * T * T * sizeof(float));
  pix = calloc((size_t)count * T * T * 3, 1);
  for (k = 0; k < count; k++) {
    lenssim_label l;
    lenssim_error err;
    /* the central 100 x 100 pixels */
    uint64_t index = preset == LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE ? first : first + 100 * (uint64_t)k; /* one object, three classes */
    for (;;) {
      if (lenssim_dataset_sample_kind(ds, index, kinds[k], img, &l, NULL, 0, &err) != LENSSIM_OK) { printf("%s\n", err.message); return 1; }
      /* the Euclid lenses shown are bright ones (arc S/N > 100), so that the arcs show at this size */
      if (preset == LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE || preset == LENSSIM_PRESET_ENSAI_MODELLING || l.label == 0 || l.arc_snr > 100) break;
      index++;
    }
    for (ch = 0; ch < C; ch++)
      for (i = 0; i < T; i++)
        for (j = 0; j < T; j++) {
          int o = (N - T) / 2;
          double s = img[(size_t)ch * N * N + (size_t)(i + o) * N + (j + o)];
          tile[(size_t)ch * T * T + (size_t)(T - 1 - i) * T + j] = (float)s; /* row 0 at the top: north up */
        }
    if (C == 4) {
      double sc = tile_scale(tile, T * T);
      float *g = malloc(T * T * sizeof(float));
      for (i = 0; i < T * T; i++) g[i] = 0.5f * (tile[T * T + i] + tile[2 * T * T + i]);
      for (i = 0; i < T; i++) {
        stretch(tile + 3 * T * T + i * T, T, 3.0 * sc, pix + ((size_t)i * count * T + (size_t)k * T) * 3 + 0, 3);
        stretch(g + i * T, T, 2.0 * sc, pix + ((size_t)i * count * T + (size_t)k * T) * 3 + 1, 3);
        stretch(tile + i * T, T, sc, pix + ((size_t)i * count * T + (size_t)k * T) * 3 + 2, 3);
      }
      free(g);
    } else {
      double sc = tile_scale(tile, T * T);
      for (i = 0; i < T; i++)
        for (ch = 0; ch < 3; ch++) stretch(tile + i * T, T, sc, pix + ((size_t)i * count * T + (size_t)k * T) * 3 + ch, 3);
    }
    printf("%s tile %d: %s (theta_E %.2f\", label %d)\n", path, k, lenssim_kind_name(kinds[k]), l.theta_E, l.label);
  }
  f = fopen(path, "wb");
  if (!f) return 1;
  fprintf(f, "P6\n%d %d\n255\n", count * T, T);
  fwrite(pix, 1, (size_t)count * T * T * 3, f);
  fclose(f);
  free(pix); free(img); free(tile); free(ds);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "stats")) {
    int n = atoi(argv[2]);
    return stats(LENSSIM_PRESET_EUCLID_LENSFINDING, LENSSIM_KIND_GALAXY_GALAXY, n) ||
           stats(LENSSIM_PRESET_EUCLID_COMPOUND, LENSSIM_KIND_DOUBLE_RING, n / 4) ||
           stats(LENSSIM_PRESET_EUCLID_COMPOUND, LENSSIM_KIND_COMPOUND_ARC, n / 4);
  }
  if (argc >= 3 && !strcmp(argv[1], "pictures")) {
    char p[1024];
    static const lenssim_kind lf[10] = {LENSSIM_KIND_GALAXY_GALAXY, LENSSIM_KIND_GALAXY_GALAXY, LENSSIM_KIND_ELLIPTICAL,
                                        LENSSIM_KIND_DISC, LENSSIM_KIND_SPIRAL, LENSSIM_KIND_EDGE_ON_DISC, LENSSIM_KIND_PAIR,
                                        LENSSIM_KIND_RING_GALAXY, LENSSIM_KIND_MERGER, LENSSIM_KIND_STAR};
    static const lenssim_kind cp[4] = {LENSSIM_KIND_COMPOUND_ARC, LENSSIM_KIND_COMPOUND_ARC, LENSSIM_KIND_DOUBLE_RING, LENSSIM_KIND_DOUBLE_RING};
    static const lenssim_kind dl[3] = {LENSSIM_KIND_NO_SUBSTRUCTURE, LENSSIM_KIND_SUBHALOS, LENSSIM_KIND_VORTEX};
    static const lenssim_kind en[4] = {LENSSIM_KIND_GALAXY_GALAXY, LENSSIM_KIND_GALAXY_GALAXY, LENSSIM_KIND_GALAXY_GALAXY, LENSSIM_KIND_GALAXY_GALAXY};
    int bad = 0;
    snprintf(p, sizeof p, "%s/euclid_lensfinding.ppm", argv[2]);
    bad |= montage(p, LENSSIM_PRESET_EUCLID_LENSFINDING, LENSSIM_LAYOUT_OU200, lf, 10, 0);
    snprintf(p, sizeof p, "%s/euclid_compound.ppm", argv[2]);
    bad |= montage(p, LENSSIM_PRESET_EUCLID_COMPOUND, LENSSIM_LAYOUT_OU200, cp, 4, 0);
    snprintf(p, sizeof p, "%s/deeplense_substructure.ppm", argv[2]);
    {
      /* the three classes of one object: same lens, source and noise */
      static const lenssim_kind one[3] = {LENSSIM_KIND_NO_SUBSTRUCTURE, LENSSIM_KIND_SUBHALOS, LENSSIM_KIND_VORTEX};
      (void)dl;
      bad |= montage(p, LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE, LENSSIM_LAYOUT_DEFAULT, one, 3, 0);
    }
    snprintf(p, sizeof p, "%s/ensai_modelling.ppm", argv[2]);
    bad |= montage(p, LENSSIM_PRESET_ENSAI_MODELLING, LENSSIM_LAYOUT_DEFAULT, en, 4, 0);
    return bad;
  }
  fprintf(stderr, "usage: figures_populations stats N | pictures DIR\n");
  return 2;
}
