/* Regression in lensnet.h: lensnet_fit with targets (mse and Gaussian NLL) learns a known
 * quantity of an image, standardises the targets over the training part and records that in the
 * metadata; lensnet_model_regression reads it back; lensnet_regression_combine turns passes into
 * physical means and standard deviations (checked against numbers worked by hand); Monte Carlo
 * dropout (lensnet_model_forward_mc) is reproducible and is plain inference without dropout;
 * lensnet_dihedral and lensnet_regression_turn_back agree with the centroid and the second moments
 * measured on an elliptical blob's eight flips and quarter turns.
 *
 * The data: a Gaussian blob of 12 x 12 pixels whose width and x position are the two targets, so
 * what the network must learn is known exactly. */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"
#include <string.h>

#define N 320
#define SIDE 12
#define ARCH "input 1 12 12\nconv2d name=c1 out=8 kernel=3 padding=1\nrelu\nmaxpool kernel=2\n" \
             "conv2d name=c2 out=16 kernel=3 padding=1\nrelu\nmaxpool kernel=2\nflatten\ndropout p=0.1\n" \
             "dense name=d1 out=32\nrelu\ndense name=d2 out=%d"

static float pixels[N * SIDE * SIDE], targets[N * 2];          /* training */
static float test_pixels[N * SIDE * SIDE], test_targets[N * 2]; /* held out: another seed */
static lensnet_tensor images;

static void make_set(uint64_t seed, float *pixels, float *targets) {
  lensnet_rng rng;
  size_t i;
  int y, x;
  lensnet_rng_seed(&rng, seed);
  for (i = 0; i < N; i++) {
    double width = 1.0 + 1.5 * lensnet_rng_uniform(&rng), cx = 3.5 + 4.0 * lensnet_rng_uniform(&rng), cy = 5.5;
    targets[i * 2] = (float)width;
    targets[i * 2 + 1] = (float)cx;
    for (y = 0; y < SIDE; y++)
      for (x = 0; x < SIDE; x++) {
        double r2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
        pixels[i * SIDE * SIDE + (size_t)(y * SIDE + x)] = (float)(exp(-0.5 * r2 / (width * width)) + 0.02 * lensnet_rng_normal(&rng));
      }
  }
}

static void make_data(void) {
  make_set(21, pixels, targets);
  make_set(22, test_pixels, test_targets);
  memset(&images, 0, sizeof images);
  images.ndim = 4;
  images.shape[0] = N; images.shape[1] = 1; images.shape[2] = SIDE; images.shape[3] = SIDE;
  images.data = pixels;
}

static lensnet_model *new_model(int outputs) {
  char arch[512];
  lensnet_model *m = NULL;
  lensnet_error err;
  snprintf(arch, sizeof arch, ARCH, outputs);
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { printf("   %s\n", err.message); return NULL; }
  lensnet_model_init(m, 4);
  return m;
}

static lensnet_fit_desc regress_desc(const char *loss) {
  lensnet_fit_desc d;
  memset(&d, 0, sizeof d);
  d.images = &images;
  d.labels = targets;
  d.targets = 2;
  d.target_names = "width,center_x";
  d.loss = loss;
  d.epochs = 25;
  d.batch = 16;
  d.lr = 3e-3;
  d.val_fraction = 0.25;
  d.seed = 5;
  return d;
}

/* The rms error of the model's means on the held-out set, in units of each target's standard
 * deviation there (predicting the mean would score 1). */
static void rms_error(const lensnet_model *m, double *rms) {
  lensnet_regression r;
  lensnet_error err;
  float out[4];
  size_t i, j;
  double sq[2] = {0, 0}, mean[2], var[2] = {0, 0};
  for (j = 0; j < 2; j++) {
    double s = 0;
    for (i = 0; i < N; i++) s += test_targets[i * 2 + j];
    mean[j] = s / N;
    for (i = 0; i < N; i++) var[j] += (test_targets[i * 2 + j] - mean[j]) * (test_targets[i * 2 + j] - mean[j]) / N;
  }
  if (lensnet_model_regression(m, &r, &err) != LENSNET_OK) { rms[0] = rms[1] = 9; return; }
  for (i = 0; i < N; i++) {
    double mu[2];
    lensnet_model_forward(m, 1, test_pixels + i * SIDE * SIDE, out, NULL, NULL);
    lensnet_regression_combine(&r, out, 1, m->out_features, mu, NULL, NULL, NULL);
    for (j = 0; j < 2; j++) sq[j] += (mu[j] - test_targets[i * 2 + j]) * (mu[j] - test_targets[i * 2 + j]);
  }
  for (j = 0; j < 2; j++) rms[j] = sqrt(sq[j] / N / var[j]);
}

static void test_learns(const char *loss, int outputs) {
  lensnet_model *m = new_model(outputs);
  lensnet_fit_desc d = regress_desc(loss);
  lensnet_error err;
  lensnet_regression r;
  double rms[2];
  CHECK(m && lensnet_fit(m, &d, &err) == LENSNET_OK, "fit with loss %s: %s", loss, m ? err.message : "no model");
  if (!m) return;
  CHECK(lensnet_model_regression(m, &r, &err) == LENSNET_OK, "regression metadata: %s", err.message);
  CHECK(r.count == 2 && !strcmp(r.names[0], "width") && !strcmp(r.names[1], "center_x") && r.nll == !strcmp(loss, "nll"),
        "names and loss read back (%lu targets)", (unsigned long)r.count);
  rms_error(m, rms);
  /* predicting the mean scores 1.0; a network that sees the blob does far better */
  CHECK(rms[0] < 0.3 && rms[1] < 0.3, "loss %s: rms error %.3f (width), %.3f (centre) standard deviations", loss, rms[0], rms[1]);
  printf("   loss %s: rms error %.3f and %.3f of the targets' spread\n", loss, rms[0], rms[1]);
  lensnet_model_free(m);
}

/* With no validation part the standardisation is over every image: mean and sample deviation. */
static void test_standardisation(void) {
  lensnet_model *m = new_model(2);
  lensnet_fit_desc d = regress_desc("mse");
  lensnet_error err;
  lensnet_regression r;
  size_t i, j;
  d.val_fraction = -1;
  d.epochs = 1;
  d.target_names = NULL;
  CHECK(m && lensnet_fit(m, &d, &err) == LENSNET_OK, "fit: %s", m ? err.message : "no model");
  if (!m) return;
  CHECK(lensnet_model_regression(m, &r, &err) == LENSNET_OK && !strcmp(r.names[0], "t0") && !strcmp(r.names[1], "t1"),
        "default names t0, t1: %s", err.message);
  for (j = 0; j < 2; j++) {
    double s = 0, sq = 0, mean;
    for (i = 0; i < N; i++) s += targets[i * 2 + j];
    mean = s / N;
    for (i = 0; i < N; i++) sq += (targets[i * 2 + j] - mean) * (targets[i * 2 + j] - mean);
    CHECK(fabs(r.mean[j] - mean) < 1e-6 * fabs(mean) && fabs(r.std[j] - sqrt(sq / (N - 1))) < 1e-6 * sqrt(sq / (N - 1)),
          "target %lu: mean %.7g (want %.7g), std %.7g (want %.7g)", (unsigned long)j, r.mean[j], mean, r.std[j], sqrt(sq / (N - 1)));
  }
  CHECK(lensnet_model_meta(m, "regress.loss") && !strcmp(lensnet_model_meta(m, "regress.loss"), "mse"), "regress.loss = mse");
  lensnet_model_free(m);
}

/* Three passes of a two-target NLL model, worked by hand. Standardised means (0, 1, 2) and
 * (1, 1, 1); log-variances log 1, log 4, log 1 and 0 throughout. Target 0: mean 1, aleatoric
 * variance (1 + 4 + 1) / 3 = 2, epistemic ((1 + 0 + 1) / 3) = 2/3; with mean 10 and std 2 the
 * physical mean is 12 and sigma 2 sqrt(8/3). Target 1: mean 1 (physical -5 + 0.5 = -4.5),
 * aleatoric 1, epistemic 0: sigma 0.5. */
static void test_combine(void) {
  lensnet_regression r;
  float outputs[3 * 4] = {0, 1, 0, 0, 1, 1, (float)log(4.0), 0, 2, 1, 0, 0};
  double mean[2], sigma[2], alea[2], epi[2];
  memset(&r, 0, sizeof r);
  r.count = 2; r.nll = 1;
  r.mean[0] = 10; r.std[0] = 2; r.mean[1] = -5; r.std[1] = 0.5;
  r.scale[0] = r.scale[1] = 1;
  r.slope[0] = r.slope[1] = 1;
  lensnet_regression_combine(&r, outputs, 3, 4, mean, sigma, alea, epi);
  CHECK(fabs(mean[0] - 12) < 1e-6 && fabs(sigma[0] - 2 * sqrt(8.0 / 3)) < 1e-6 && fabs(alea[0] - 2 * sqrt(2.0)) < 1e-6 &&
            fabs(epi[0] - 2 * sqrt(2.0 / 3)) < 1e-6,
        "target 0: mean %.7g sigma %.7g aleatoric %.7g epistemic %.7g", mean[0], sigma[0], alea[0], epi[0]);
  CHECK(fabs(mean[1] + 4.5) < 1e-6 && fabs(sigma[1] - 0.5) < 1e-6 && fabs(epi[1]) < 1e-12, "target 1: mean %.7g sigma %.7g", mean[1], sigma[1]);
  r.scale[1] = 3; /* a calibration scale multiplies sigma, not the parts */
  lensnet_regression_combine(&r, outputs, 3, 4, mean, sigma, alea, epi);
  CHECK(fabs(sigma[1] - 1.5) < 1e-6 && fabs(alea[1] - 0.5) < 1e-6 && fabs(sigma[0] - 2 * sqrt(8.0 / 3)) < 1e-6, "scale 3 on target 1: sigma %.7g",
        sigma[1]);
  {
    /* the means from two passes without dropout, standardised (3, -1) and (1, 1): physical 10 + 2 x 2
     * = 14 and -5 + 0.5 x 0 = -5; the sigmas and their parts the three dropout passes' */
    float plain[2 * 4] = {3, -1, 9, 9, 1, 1, 9, 9};
    double m2[2], s2[2], a2[2], e2[2];
    lensnet_regression_combine_plain(&r, outputs, 3, plain, 2, 4, m2, s2, a2, e2);
    CHECK(fabs(m2[0] - 14) < 1e-9 && fabs(m2[1] + 5) < 1e-9, "combine_plain: means %.7g %.7g (want 14, -5)", m2[0], m2[1]);
    CHECK(s2[0] == sigma[0] && s2[1] == sigma[1] && a2[0] == alea[0] && e2[0] == epi[0] && e2[1] == epi[1],
          "combine_plain: the dropout passes' sigmas, aleatoric and epistemic parts");
    lensnet_regression_combine_plain(&r, outputs, 3, plain, 0, 4, m2, s2, NULL, NULL);
    CHECK(fabs(m2[0] - 12) < 1e-6 && fabs(m2[1] + 4.5) < 1e-6, "combine_plain without plain passes: the passes' own means");
  }
  r.nll = 0; /* mse: no aleatoric part; one pass: no epistemic part */
  lensnet_regression_combine(&r, outputs, 1, 4, mean, sigma, alea, epi);
  CHECK(fabs(mean[0] - 10) < 1e-9 && sigma[0] == 0 && alea[0] == 0 && epi[0] == 0, "mse, one pass: sigma 0");
}

/* lensnet_regression_fit_means on four objects, worked by hand. theta_E (a scalar; the model's
 * present slope 2 and offset 0.5): means 1..4, truths 1.1, 2.3, 3.2, 4.6: about the means (2.5,
 * 2.8), sxx = 5, sxy = 5.7, so b = 1.14 and a = -0.05, composed: slope 2.28, offset -0.05 + 1.14 x
 * 0.5 = 0.52. e1, e2 (a spin-2 pair, one slope through 0): sum m y = 0.151 + 0.156, sum m^2 = 0.14 +
 * 0.15, b = 0.307 / 0.29. center_x without center_y: 6.5 / 6. width (unknown): truths 2m + 1
 * exactly, b = 2, a = 1. */
static void test_fit_means(void) {
  static const double m0[4] = {1, 2, 3, 4}, y0[4] = {1.1, 2.3, 3.2, 4.6};
  static const double m1[4] = {0.1, -0.2, 0.3, 0}, y1[4] = {0.12, -0.2, 0.33, 0.01};
  static const double m2[4] = {0.2, 0.1, -0.1, -0.3}, y2[4] = {0.22, 0.1, -0.12, -0.3};
  static const double m3[4] = {1, -1, 2, 0}, y3[4] = {1.5, -1, 2, 1};
  static const double m4[4] = {0.5, 1, 1.5, 3}, y4[4] = {2, 3, 4, 7};
  static const double flat[4] = {1, 1, 1, 1}, falling[4] = {4, 3, 2, 1}, nan4[4] = {1, 2, NAN, 4};
  const double *means[5] = {m0, m1, m2, m3, m4}, *truth[5] = {y0, y1, y2, y3, y4};
  double slope[5], offset[5];
  lensnet_regression r;
  lensnet_error err;
  size_t j;
  memset(&r, 0, sizeof r);
  r.count = 5;
  strcpy(r.names[0], "theta_E"); strcpy(r.names[1], "e1"); strcpy(r.names[2], "e2"); strcpy(r.names[3], "center_x"); strcpy(r.names[4], "width");
  for (j = 0; j < 5; j++) { r.std[j] = r.scale[j] = r.slope[j] = 1; }
  r.slope[0] = 2; r.offset[0] = 0.5;
  CHECK(lensnet_regression_fit_means(&r, truth, means, 4, slope, offset, &err) == LENSNET_OK, "fit: %s", err.message);
  CHECK(fabs(slope[0] - 2.28) < 1e-12 && fabs(offset[0] - 0.52) < 1e-12, "theta_E: slope %.15g offset %.15g (want 2.28, 0.52)", slope[0], offset[0]);
  CHECK(fabs(slope[1] - 0.307 / 0.29) < 1e-12 && slope[2] == slope[1] && offset[1] == 0 && offset[2] == 0, "e1, e2: one slope %.15g (want %.15g), offsets 0",
        slope[1], 0.307 / 0.29);
  CHECK(fabs(slope[3] - 6.5 / 6) < 1e-12 && offset[3] == 0, "center_x alone: slope %.15g (want %.15g), offset 0", slope[3], 6.5 / 6);
  CHECK(fabs(slope[4] - 2) < 1e-12 && fabs(offset[4] - 1) < 1e-12, "width (no known symmetry): slope %.15g offset %.15g (want 2, 1)", slope[4], offset[4]);
  /* the model's means then: offset + slope x (mean + std z) */
  r.mean[0] = 1; r.std[0] = 0.5;
  CHECK(fabs(lensnet_regression_physical(&r, 0, 2.0) - (0.5 + 2 * (1 + 0.5 * 2))) < 1e-12, "physical: offset + slope x (mean + std z)");
  CHECK(lensnet_regression_fit_means(&r, truth, means, 2, slope, offset, &err) == LENSNET_ERR_ARG && strstr(err.message, "at least 3"), "two objects: %s",
        err.message);
  means[4] = flat;
  CHECK(lensnet_regression_fit_means(&r, truth, means, 4, slope, offset, &err) == LENSNET_ERR_ARG && strstr(err.message, "width does not vary"),
        "constant means: %s", err.message);
  means[4] = m4; truth[0] = falling;
  CHECK(lensnet_regression_fit_means(&r, truth, means, 4, slope, offset, &err) == LENSNET_ERR_ARG && strstr(err.message, "theta_E does not rise"),
        "truths falling as the means rise: %s", err.message);
  truth[0] = y0; means[3] = nan4;
  CHECK(lensnet_regression_fit_means(&r, truth, means, 4, slope, offset, &err) == LENSNET_ERR_ARG && strstr(err.message, "center_x of object 2"),
        "a NaN named: %s", err.message);
  { /* the metadata: read back, and refused when it is not numbers or a slope is not positive */
    lensnet_model *m = new_model(2);
    lensnet_regression q;
    if (!m) { CHECK(0, "model"); return; }
    lensnet_model_set_meta(m, "regress.targets", "a,b"); lensnet_model_set_meta(m, "regress.loss", "mse");
    lensnet_model_set_meta(m, "regress.mean", "0,0"); lensnet_model_set_meta(m, "regress.std", "1,1");
    CHECK(lensnet_model_regression(m, &q, &err) == LENSNET_OK && q.slope[0] == 1 && q.slope[1] == 1 && q.offset[0] == 0 && q.offset[1] == 0,
          "without them: slope 1, offset 0");
    lensnet_model_set_meta(m, "regress.slope", "2,3"); lensnet_model_set_meta(m, "regress.offset", "0.5,-1");
    CHECK(lensnet_model_regression(m, &q, &err) == LENSNET_OK && q.slope[0] == 2 && q.slope[1] == 3 && q.offset[0] == 0.5 && q.offset[1] == -1,
          "regress.slope and regress.offset read back");
    lensnet_model_set_meta(m, "regress.slope", "2,x");
    CHECK(lensnet_model_regression(m, &q, &err) == LENSNET_ERR_FORMAT && strstr(err.message, "regress.slope"), "a slope that is not a number: %s",
          err.message);
    lensnet_model_set_meta(m, "regress.slope", "0,1");
    CHECK(lensnet_model_regression(m, &q, &err) == LENSNET_ERR_FORMAT && strstr(err.message, "not positive"), "a slope of 0: %s", err.message);
    lensnet_model_set_meta(m, "regress.slope", NULL); lensnet_model_set_meta(m, "regress.offset", "1");
    CHECK(lensnet_model_regression(m, &q, &err) == LENSNET_ERR_FORMAT && strstr(err.message, "regress.offset"), "one offset for two targets: %s",
          err.message);
    lensnet_model_free(m);
  }
}

static void test_mc_dropout(void) {
  lensnet_model *m = new_model(2), *plain = NULL;
  lensnet_error err;
  float a[8 * 2], b[8 * 2], one[2], det[2], batch[8 * SIDE * SIDE];
  size_t k;
  int differ = 0;
  if (!m) { CHECK(0, "model"); return; }
  for (k = 0; k < 8; k++) memcpy(batch + k * SIDE * SIDE, pixels, SIDE * SIDE * sizeof(float));
  CHECK(lensnet_model_forward_mc(m, 8, batch, a, NULL, 99, &err) == LENSNET_OK && lensnet_model_forward_mc(m, 8, batch, b, NULL, 99, &err) == LENSNET_OK,
        "eight passes: %s", err.message);
  CHECK(!memcmp(a, b, sizeof a), "the same seed gives the same passes");
  for (k = 1; k < 8; k++) differ += a[k * 2] != a[0];
  CHECK(differ == 7, "each pass draws its own masks (%d of 7 differ from the first)", differ);
  lensnet_model_forward_mc(m, 1, pixels, one, NULL, 99, &err);
  CHECK(one[0] == a[0] && one[1] == a[1], "pass 0 of a batch is the single pass with that seed");
  lensnet_model_forward_mc(m, 8, batch, b, NULL, 100, &err);
  CHECK(memcmp(a, b, sizeof a) != 0, "another seed, other passes");
  /* without dropout layers Monte Carlo inference is inference */
  if (lensnet_model_create("input 1 12 12\nconv2d name=c1 out=4 kernel=3\nrelu\nflatten\ndense name=d out=2", &plain, &err) == LENSNET_OK) {
    lensnet_model_init(plain, 3);
    lensnet_model_forward(plain, 1, pixels, det, NULL, &err);
    lensnet_model_forward_mc(plain, 1, pixels, one, NULL, 7, &err);
    CHECK(det[0] == one[0] && det[1] == one[1], "no dropout: forward_mc equals forward");
    lensnet_model_free(plain);
  }
  lensnet_model_free(m);
}

static void expect_error(lensnet_fit_desc d, int outputs, lensnet_result want, const char *needle) {
  lensnet_model *m = new_model(outputs);
  lensnet_error err;
  lensnet_result r;
  memset(&err, 0, sizeof err);
  d.epochs = 1;
  r = m ? lensnet_fit(m, &d, &err) : LENSNET_ERR_NOMEM;
  CHECK(r == want && strstr(err.message, needle), "want %s naming '%s', got %s: %s", lensnet_result_string(want), needle,
        lensnet_result_string(r), err.message);
  lensnet_model_free(m);
}

static void test_errors(void) {
  static float bad[N * 2];
  lensnet_fit_desc d = regress_desc("nll");
  expect_error(d, 2, LENSNET_ERR_SHAPE, "need 4");
  d = regress_desc("ce"); expect_error(d, 2, LENSNET_ERR_ARG, "classification");
  d = regress_desc("mse"); d.augment = "flip,noise=0.01"; expect_error(d, 2, LENSNET_ERR_ARG, "flip");
  d = regress_desc("mse"); d.augment = "rot180"; expect_error(d, 2, LENSNET_ERR_ARG, "rot180");
  d = regress_desc("mse"); d.class_weights = "auto"; expect_error(d, 2, LENSNET_ERR_ARG, "class_weights");
  d = regress_desc("mse"); d.target_names = "width"; expect_error(d, 2, LENSNET_ERR_ARG, "fewer");
  memcpy(bad, targets, sizeof bad);
  bad[2 * 17 + 1] = NAN;
  d = regress_desc("mse"); d.labels = bad; expect_error(d, 2, LENSNET_ERR_ARG, "target 1 of image 17");
  d = regress_desc("mse"); d.targets = 0; d.loss = "mse"; expect_error(d, 2, LENSNET_ERR_ARG, "regression");
  {
    lensnet_model *m = new_model(2);
    lensnet_regression r;
    lensnet_error err;
    CHECK(m && lensnet_model_regression(m, &r, &err) == LENSNET_ERR_ARG && strstr(err.message, "not a regression model"),
          "a classifier is not a regression model");
    lensnet_model_free(m);
  }
}

/* Centroid (x along the columns, y along the rows, from the centre; pixels) and the ellipticity
 * from the second moments, chi = (Qxx - Qyy, 2 Qxy) / (Qxx + Qyy): the direction of (e1, e2), the
 * position angle measured from x towards y, whatever the profile. */
static void measure(const float *im, int n, double *cx, double *cy, double *chi1, double *chi2) {
  double s = 0, sx = 0, sy = 0, qxx = 0, qyy = 0, qxy = 0, c = 0.5 * (n - 1);
  int i, j;
  for (i = 0; i < n; i++)
    for (j = 0; j < n; j++) { s += im[i * n + j]; sx += im[i * n + j] * (j - c); sy += im[i * n + j] * (i - c); }
  *cx = sx / s; *cy = sy / s;
  for (i = 0; i < n; i++)
    for (j = 0; j < n; j++) {
      double dx = j - c - *cx, dy = i - c - *cy;
      qxx += im[i * n + j] * dx * dx; qyy += im[i * n + j] * dy * dy; qxy += im[i * n + j] * dx * dy;
    }
  *chi1 = (qxx - qyy) / (qxx + qyy);
  *chi2 = 2 * qxy / (qxx + qyy);
}

static void test_symmetries(void) {
  enum { S = 32 };
  static float image[S * S], turned[S * S];
  const double phi = 0.5, q = 0.5, x0 = 3.2, y0 = -2.1, c = 0.5 * (S - 1);
  lensnet_regression r;
  lensnet_error err;
  double cx0, cy0, chi10, chi20;
  int i, j, t, bad = 0;
  for (i = 0; i < S; i++) /* an elliptical Gaussian: major axis at phi from x towards y, axis ratio q */
    for (j = 0; j < S; j++) {
      double dx = j - c - x0, dy = i - c - y0, u = dx * cos(phi) + dy * sin(phi), v = -dx * sin(phi) + dy * cos(phi);
      image[i * S + j] = (float)exp(-0.5 * (u * u + v * v / (q * q)) / 9.0);
    }
  measure(image, S, &cx0, &cy0, &chi10, &chi20);
  CHECK(fabs(cx0 - x0) < 1e-3 && fabs(cy0 - y0) < 1e-3 && chi10 > 0 && chi20 > 0 && fabs(atan2(chi20, chi10) - 2 * phi) < 1e-3,
        "the blob as drawn: centre (%.4f, %.4f), chi (%.4f, %.4f)", cx0, cy0, chi10, chi20);
  memset(&r, 0, sizeof r);
  r.count = 6; r.nll = 1;
  strcpy(r.names[0], "center_x"); strcpy(r.names[1], "e1"); strcpy(r.names[2], "theta_E");
  strcpy(r.names[3], "e2"); strcpy(r.names[4], "center_y"); strcpy(r.names[5], "magnification");
  for (j = 0; j < 6; j++) { r.mean[j] = 0.1 * (j + 1); r.std[j] = 0.5 + 0.25 * j; r.scale[j] = 1; r.slope[j] = 1; }
  CHECK(lensnet_regression_symmetric(&r, &err) == LENSNET_OK, "positions, spin-2 pairs and scalars are all known");
  for (t = 0; t < 8; t++) {
    /* what a perfect network would say on the turned image: its own measurements, with a distinct
     * variance per target (log-variance j + t, standardised) */
    double phys[6], cx, cy, ch1, ch2, back[6], var[6];
    float out[12];
    lensnet_dihedral(image, turned, 1, S, t);
    measure(turned, S, &cx, &cy, &ch1, &ch2);
    phys[0] = cx; phys[1] = ch1; phys[2] = 1.25; phys[3] = ch2; phys[4] = cy; phys[5] = 7.0;
    for (j = 0; j < 6; j++) {
      out[j] = (float)((phys[j] - r.mean[j]) / r.std[j]);
      out[6 + j] = (float)(0.1 * (j + t) - 2 * log(r.std[j]));
    }
    lensnet_regression_turn_back(&r, t, out);
    for (j = 0; j < 6; j++) {
      back[j] = r.mean[j] + r.std[j] * out[j];
      var[j] = exp(out[6 + j]) * r.std[j] * r.std[j];
    }
    if (fabs(back[0] - cx0) > 1e-4 || fabs(back[4] - cy0) > 1e-4 || fabs(back[1] - chi10) > 1e-4 || fabs(back[3] - chi20) > 1e-4 ||
        fabs(back[2] - 1.25) > 1e-5 || fabs(back[5] - 7.0) > 1e-5) {
      bad++;
      fprintf(stderr, "  transform %d: back (%.5f, %.5f) e (%.5f, %.5f) theta_E %.5f magnification %.5f\n", t, back[0], back[4], back[1], back[3],
              back[2], back[5]);
    }
    /* the centre's variances follow the coordinates: swapped by the transpose, the others stay */
    if (fabs(log(var[0]) - 0.1 * ((t & 1 ? 4 : 0) + t)) > 1e-5 || fabs(log(var[4]) - 0.1 * ((t & 1 ? 0 : 4) + t)) > 1e-5 ||
        fabs(log(var[1]) - 0.1 * (1 + t)) > 1e-5 || fabs(log(var[2]) - 0.1 * (2 + t)) > 1e-5) {
      bad++;
      fprintf(stderr, "  transform %d: log-variances %.5f %.5f %.5f %.5f\n", t, log(var[0]), log(var[4]), log(var[1]), log(var[2]));
    }
  }
  CHECK(bad == 0, "every transform turned back onto the blob's own centre and ellipticity (%d wrong)", bad);
  lensnet_dihedral(image, turned, 1, S, 0);
  CHECK(!memcmp(image, turned, sizeof image), "transform 0 copies");
  strcpy(r.names[5], "phi");
  CHECK(lensnet_regression_symmetric(&r, &err) == LENSNET_ERR_ARG && strstr(err.message, "'phi'"), "an unknown target is refused by name: %s",
        err.message);
  strcpy(r.names[5], "magnification");
  strcpy(r.names[4], "theta_E2");
  CHECK(lensnet_regression_symmetric(&r, &err) == LENSNET_ERR_ARG && strstr(err.message, "center_x") && strstr(err.message, "other coordinate"),
        "center_x without center_y is refused: %s", err.message);
  CHECK(lensnet_regression_symmetric_views(&r, 8, &err) == LENSNET_ERR_ARG && strstr(err.message, "center_x"),
        "... for the eight views: %s", err.message);
  CHECK(lensnet_regression_symmetric_views(&r, 2, &err) == LENSNET_OK, "... but not for the half turn, which swaps no axes");
  { /* the half turn of a lone coordinate: x -> -x, turned back */
    float out[2 * LENSNET_REGRESSION_MAX];
    size_t k;
    for (k = 0; k < r.count; k++) { out[k] = (float)((0.25 - r.mean[k]) / r.std[k]); out[r.count + k] = 0.0f; }
    lensnet_regression_turn_back(&r, 6, out);
    CHECK(fabs(r.mean[0] + r.std[0] * out[0] + 0.25) < 1e-6, "a lone center_x under the half turn comes back as -x: %g",
          r.mean[0] + r.std[0] * out[0]);
  }
}

/* lensnet_view: 8 views are lensnet_dihedral's transforms; 2 views the image and its half turn,
 * of any shape (a 2 x 3 band: pixel (r, c) goes to (1 - r, 2 - c)); 1 view the image. */
static void test_views(void) {
  float sq[2 * 9], out[2 * 9], ref[2 * 9], rect[2 * 6], rout[2 * 6];
  size_t i, k, r, c;
  int t;
  for (i = 0; i < 18; i++) sq[i] = (float)i;
  for (k = 0; k < 16; k++) {
    t = lensnet_view(sq, out, 2, 3, 3, 8, k);
    lensnet_dihedral(sq, ref, 2, 3, (int)(k % 8));
    CHECK(t == (int)(k % 8) && !memcmp(out, ref, sizeof out) && t == lensnet_view_transform(8, k), "8 views, view %lu: transform %d", (unsigned long)k, t);
  }
  for (i = 0; i < 12; i++) rect[i] = (float)(i * i);
  CHECK(lensnet_view(rect, rout, 2, 2, 3, 2, 0) == 0 && !memcmp(rout, rect, sizeof rect), "2 views, view 0: the image");
  t = lensnet_view(rect, rout, 2, 2, 3, 2, 3);
  for (i = 0, k = 0; i < 2; i++)
    for (r = 0; r < 2; r++)
      for (c = 0; c < 3; c++) k += rout[i * 6 + (1 - r) * 3 + (2 - c)] != rect[i * 6 + r * 3 + c];
  CHECK(t == 6 && k == 0 && lensnet_view_transform(2, 3) == 6, "2 views, view 3 of a 2 x 3 image: its half turn (transform %d, %lu pixels off)", t,
        (unsigned long)k);
  CHECK(lensnet_view(sq, out, 2, 3, 3, 1, 5) == 0 && !memcmp(out, sq, sizeof sq), "1 view: the image, whatever k");
}

int main(void) {
  make_data();
  TEST("test-time views: lensnet_view and lensnet_view_transform") test_views();
  TEST("regression with mse learns a blob's width and position") test_learns("mse", 2);
  TEST("regression with the Gaussian NLL (means and log-variances) learns them too") test_learns("nll", 4);
  TEST("targets standardised over the training part, recorded in the metadata") test_standardisation();
  TEST("passes combined into physical means and standard deviations (by hand)") test_combine();
  TEST("means recalibrated by least squares, symmetries kept (by hand)") test_fit_means();
  TEST("Monte Carlo dropout: reproducible, a pass per image, inference without dropout") test_mc_dropout();
  TEST("regression settings that contradict the targets are refused") test_errors();
  TEST("test-time symmetries: the eight transforms turned back onto a blob's centre and ellipticity") test_symmetries();
  return check_summary();
}
