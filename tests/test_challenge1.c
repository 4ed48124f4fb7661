/* The challenge1-vis layout against the space-based cutouts of lens-finding challenge 1
 * (Metcalf et al. 2019, A&A 625, A119) kept in tests/data/bologna-challenge1: the geometry the
 * paper and the FITS headers give, the zero point of the challenge's simulator (GLAMER's
 * Euclid_VIS) from its aperture and throughput, and the blank-sky noise of `lens sim`'s images
 * against the noise measured on the cutouts. docs/challenge.md has the sources and figures. */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#define LENSSIM_IMPLEMENTATION
#include "lenssim.h"
#include "check.h"
#include <string.h>

#define SIDE 101
#define CORNER 15                           /* the four 15 x 15 corners: blank sky, 900 pixels */
#define CORNER_PIXELS (4 * CORNER * CORNER)
#define SIMULATED 32

/* The space-based cutouts of tests/data (tests/data/bologna-challenge1/README.md). */
static const char *const cutouts[] = {
  "space_based/lens/imageEUC_VIS-100002.fits", "space_based/lens/imageEUC_VIS-100003.fits",
  "space_based/nolens/imageEUC_VIS-100004.fits", "space_based/nolens/imageEUC_VIS-100012.fits"};
#define CUTOUTS (sizeof cutouts / sizeof cutouts[0])

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The pixels of the four corners of a SIDE x SIDE image, times scale. */
static void corners(const float *image, double scale, double *out) {
  size_t k = 0;
  int c, i, j;
  for (c = 0; c < 4; c++)
    for (i = 0; i < CORNER; i++)
      for (j = 0; j < CORNER; j++) {
        int row = (c & 1) ? SIDE - 1 - i : i, col = (c & 2) ? SIDE - 1 - j : j;
        out[k++] = image[row * SIDE + col] * scale;
      }
}

/* Blank-sky sigma: the standard deviation after 3-sigma clipping (start: 1.4826 MAD), divided by
 * 0.98659, the standard deviation of a unit normal cut at +-3, so that it estimates the sigma of
 * Gaussian noise while a stray neighbour's light in a corner is clipped away. */
static double sky_sigma(const double *v, size_t n) {
  static double work[CORNER_PIXELS];
  double centre, sigma;
  size_t i;
  int iter;
  memcpy(work, v, n * sizeof *v);
  centre = median(work, n);
  for (i = 0; i < n; i++) work[i] = fabs(v[i] - centre);
  sigma = 1.4826 * median(work, n);
  for (iter = 0; iter < 10; iter++) {
    double s = 0, s2 = 0;
    size_t kept = 0;
    for (i = 0; i < n; i++)
      if (fabs(v[i] - centre) < 3 * sigma) { s += v[i]; s2 += v[i] * v[i]; kept++; }
    if (kept < 2) break;
    centre = s / kept;
    sigma = sqrt(s2 / kept - centre * centre) / 0.98659;
  }
  return sigma;
}

/* The correlation of horizontally adjacent pixels within the corners (the sky is subtracted in
 * both data sets: mean 0), from 4 x 15 x 14 = 840 pairs. */
#define NEIGHBOUR_PAIRS (4 * CORNER * (CORNER - 1))
static double neighbour_correlation(const float *image) {
  double sxy = 0, sxx = 0;
  int c, i, j;
  for (c = 0; c < 4; c++)
    for (i = 0; i < CORNER; i++)
      for (j = 0; j + 1 < CORNER; j++) {
        int row = (c & 1) ? SIDE - 1 - i : i, col = (c & 2) ? SIDE - 2 - j : j;
        double a = image[row * SIDE + col], b = image[row * SIDE + col + 1];
        sxy += a * b;
        sxx += 0.5 * (a * a + b * b);
      }
  return sxx > 0 ? sxy / sxx : 0.0;
}

/* The pixel scale a cutout's header gives (CDELT2, degrees), in arcsec; 0 if absent. The header
 * is the first 2880-byte block of 80-character cards. */
static double header_pixel_scale(const char *path) {
  char block[2880 + 1];
  FILE *f = fopen(path, "rb");
  size_t got, k;
  double deg = 0;
  if (!f) return 0;
  got = fread(block, 1, 2880, f);
  fclose(f);
  block[got] = 0;
  for (k = 0; k + 80 <= got; k += 80)
    if (strncmp(block + k, "CDELT2  =", 9) == 0) deg = strtod(block + k + 10, NULL);
  return deg * 3600.0;
}

static struct {
  double sigma[CUTOUTS];        /* blank-sky sigma of each cutout */
  double correlation[CUTOUTS];  /* neighbour correlation in its corners */
  int read;
} challenge;

static void measure_cutouts(void) {
  size_t i;
  static double pix[CORNER_PIXELS];
  for (i = 0; i < CUTOUTS; i++) {
    char path[1024];
    lensnet_tensor t;
    lensnet_error e;
    snprintf(path, sizeof path, "%s/bologna-challenge1/%s", check_data_dir(), cutouts[i]);
    if (lensnet_fits_read(path, -1, &t, &e) != LENSNET_OK) { CHECK(0, "%s", e.message); continue; }
    if (t.ndim == 2 && t.shape[0] == SIDE && t.shape[1] == SIDE) {
      corners(t.data, 1.0, pix);
      challenge.correlation[challenge.read] = neighbour_correlation(t.data);
      challenge.sigma[challenge.read++] = sky_sigma(pix, CORNER_PIXELS);
    } else {
      CHECK(0, "%s is not %d x %d", path, SIDE, SIDE);
    }
    /* Metcalf et al. 2019, section 3.1: "the pixel size was set to 0.1 arcsec" */
    CHECK(fabs(header_pixel_scale(path) - 0.1) < 1e-6, "%s: CDELT2 gives %.7f\"/px, not 0.1", path, header_pixel_scale(path));
    lensnet_tensor_free(&t);
  }
}

/* GLAMER's zero point (SLsimLib, Observation: 2.5 log10(D^2 T pi / 4 / h) - 48.6, the AB
 * magnitude of one count per second) for the Euclid_VIS settings the challenge's simulator had,
 * aperture D = 119 cm and throughput T = 0.30. */
static double glamer_vis_zero_point(void) {
  const double pi = 3.14159265358979323846, h = 6.626068e-27; /* GLAMER's hplanck, erg s */
  return 2.5 * log10(119.0 * 119.0 * 0.30 * pi / 4.0 / h) - 48.6;
}

static void test_geometry(void) {
  lenssim_dataset *ds = (lenssim_dataset *)malloc(sizeof *ds);
  lenssim_dataset_config c;
  lenssim_error err;
  const lenssim_band *band = lenssim_band_find("CHALLENGE1_VIS");
  memset(&c, 0, sizeof c);
  c.preset = LENSSIM_PRESET_EUCLID_LENSFINDING;
  c.layout = (lenssim_layout)lenssim_layout_from_name("challenge1-vis");
  CHECK(lenssim_layout_from_name("challenge1-vis") == LENSSIM_LAYOUT_CHALLENGE1_VIS, "layout name");
  CHECK(ds && lenssim_dataset_init(ds, &c, 1, &err) == LENSSIM_OK, "init: %s", ds ? err.message : "no memory");
  /* section 2: "Each image was 101x101 pixels"; section 3.1: one band, 0.1"/px */
  if (ds) CHECK(ds->channels == 1 && ds->num_pix == SIDE && ds->pixel_scale == 0.1 && ds->band[0] == band,
                "challenge1-vis is %d x %d x %d at %g\"", ds->channels, ds->num_pix, ds->num_pix, ds->pixel_scale);
  CHECK(band != NULL, "band CHALLENGE1_VIS");
  if (band) {
    /* section 3.1: "a Gaussian PSF was applied with a FWHM of 0.18 arcsec" */
    CHECK(band->psf_kind == LENSSIM_PSF_GAUSSIAN && band->psf_fwhm == 0.18, "PSF: Gaussian of FWHM 0.18\"");
    CHECK(fabs(band->zero_point - glamer_vis_zero_point()) < 5e-4, "zero point %.4f, GLAMER's Euclid_VIS gives %.4f",
          band->zero_point, glamer_vis_zero_point());
  }
  free(ds);
}

/* lens sim's images in counts/s at the band's zero point; the cutouts' pixels are 10^(-0.4 m_AB)
 * (GLAMER's flux unit), so a simulated pixel times 10^(-0.4 zp) is in the cutouts' unit. The
 * expected sigma is the one measured here on the cutouts. Tolerance 5%: on the 16 space-based
 * cutouts of ../shared the per-cutout sigma of this estimator scatters by 2.4% (900 pixels
 * each, as expected for Gaussian noise: 1/sqrt(2 x 900)), so the median of 4 is good to about
 * 1.5% and the median of 32 simulated images to 0.5%; 5% is over 3 times their combined error,
 * and a sky off by 0.1 mag/arcsec^2 moves sigma by 4%. */
static void test_sky_noise(void) {
  lenssim_dataset *ds = (lenssim_dataset *)malloc(sizeof *ds);
  lenssim_dataset_config c;
  lenssim_error err;
  static float image[SIDE * SIDE];
  static double pix[CORNER_PIXELS];
  double sim_sigma[SIMULATED], sim_correlation[SIMULATED], scale = pow(10.0, -0.4 * glamer_vis_zero_point());
  double measured, simulated, r_sim, r_chal, se_one = 1 / sqrt((double)NEIGHBOUR_PAIRS);
  size_t i, ws;
  void *work;
  lenssim_label label;
  if (challenge.read < (int)CUTOUTS) { SKIP("only %d of the %d cutouts could be read", challenge.read, (int)CUTOUTS); free(ds); return; }
  memset(&c, 0, sizeof c);
  c.preset = LENSSIM_PRESET_EUCLID_LENSFINDING;
  c.layout = LENSSIM_LAYOUT_CHALLENGE1_VIS;
  if (!ds || lenssim_dataset_init(ds, &c, 2019, &err) != LENSSIM_OK) { CHECK(0, "init"); free(ds); return; }
  ws = lenssim_dataset_workspace_bytes(ds);
  work = malloc(ws);
  for (i = 0; work && i < SIMULATED; i++) {
    if (lenssim_dataset_sample(ds, i, image, &label, work, ws, &err) != LENSSIM_OK) { CHECK(0, "object %lu: %s", (unsigned long)i, err.message); break; }
    corners(image, scale, pix);
    sim_sigma[i] = sky_sigma(pix, CORNER_PIXELS);
    sim_correlation[i] = neighbour_correlation(image);
  }
  free(work);
  free(ds);
  if (i < SIMULATED) return;
  measured = median(challenge.sigma, CUTOUTS);
  simulated = median(sim_sigma, SIMULATED);
  printf("   blank-sky sigma: cutouts %.4g, lens sim %.4g (10^(-0.4 m_AB) per pixel; ratio %.3f)\n", measured, simulated,
         simulated / measured);
  CHECK(fabs(simulated / measured - 1) < 0.05, "sky sigma %.4g against %.4g measured on the cutouts", simulated, measured);
  /* Section 3.1: the noise "is uncorrelated between pixels", and so is lens sim's (added after
   * the PSF). One image's correlation from 840 pairs has a standard error of 1/sqrt(840) = 0.035;
   * the median over n images (robust to a neighbour's light in a corner) about 1.25 times that
   * over sqrt(n). Bound: 4 of those standard errors. */
  r_chal = median(challenge.correlation, CUTOUTS);
  r_sim = median(sim_correlation, SIMULATED);
  printf("   neighbour correlation in the corners (median): cutouts %.3f, lens sim %.3f\n", r_chal, r_sim);
  CHECK(fabs(r_chal) < 4 * 1.25 * se_one / sqrt((double)CUTOUTS), "cutouts: neighbour correlation %.3f", r_chal);
  CHECK(fabs(r_sim) < 4 * 1.25 * se_one / sqrt((double)SIMULATED), "lens sim: neighbour correlation %.3f", r_sim);
}

int main(void) {
  measure_cutouts();
  TEST("challenge1-vis: 1 x 101 x 101 at 0.1\", Gaussian PSF of 0.18\", GLAMER's zero point") test_geometry();
  TEST("lens sim's blank-sky noise is the one measured on the challenge's cutouts") test_sky_noise();
  return check_summary();
}
