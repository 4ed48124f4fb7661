/* Finding lenses in fields, the library half: the TAN WCS (lensnet_fits_wcs,
 * lensnet_wcs_pixel_to_world) against the gnomonic formulas written out independently here,
 * FITS files with extra cards, the scan (lensnet_scan_map / lensnet_scan_detect) with a tiny
 * model whose score peaks on a bright blob, the locator (lensnet_scan_locate, lensnet_cutout_locate)
 * with a linear centroid network, and the field simulator (lenssim_field_*). */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#define LENSSIM_IMPLEMENTATION
#include "lenssim.h"
#include "check.h"
#include <string.h>

#define PI 3.14159265358979323846
#define W "build/test_find"

/* RA, Dec of the tangent-plane point (xi, eta) (degrees, east and north) about (ra0, dec0): the
 * inverse gnomonic projection as map-projection texts state it (Snyder 1987, eq. 22-14, 22-15
 * with rho = |(xi, eta)| in radians, c = atan(rho)), not the native-spherical route of the library. */
static void gnomonic_inverse(double ra0, double dec0, double xi, double eta, double *ra, double *dec) {
  double x = xi * PI / 180, y = eta * PI / 180, rho = sqrt(x * x + y * y), c = atan(rho), d0 = dec0 * PI / 180;
  if (rho == 0) { *ra = ra0; *dec = dec0; return; }
  *dec = asin(cos(c) * sin(d0) + y * sin(c) * cos(d0) / rho) * 180 / PI;
  *ra = ra0 + atan2(x * sin(c), rho * cos(d0) * cos(c) - y * sin(d0) * sin(c)) * 180 / PI;
  *ra = fmod(*ra + 360.0, 360.0);
}

/* The angle between two directions, arcsec. */
static double separation(double ra1, double dec1, double ra2, double dec2) {
  double a1 = ra1 * PI / 180, d1 = dec1 * PI / 180, a2 = ra2 * PI / 180, d2 = dec2 * PI / 180;
  double c = sin(d1) * sin(d2) + cos(d1) * cos(d2) * cos(a1 - a2);
  return acos(c > 1 ? 1 : c) * 180 / PI * 3600;
}

static void test_gnomonic(void) {
  lensnet_wcs w;
  double ra, dec, want_ra, want_dec;
  TEST("the reference pixel maps to CRVAL") {
    memset(&w, 0, sizeof w);
    w.crpix[0] = 300.5; w.crpix[1] = 300.5; w.crval[0] = 150.0; w.crval[1] = 2.2;
    w.cd[0][0] = -0.3 / 3600; w.cd[1][1] = 0.3 / 3600;
    lensnet_wcs_pixel_to_world(&w, 299.5, 299.5, &ra, &dec); /* 0-based: FITS pixel (300.5, 300.5) */
    CHECK(fabs(ra - 150.0) < 1e-12 && fabs(dec - 2.2) < 1e-12, "CRPIX -> (%.12f, %.12f)", ra, dec);
  }
  TEST("a known offset: 1 degree north of (10, 0) on the tangent plane is atan(pi/180) of arc") {
    memset(&w, 0, sizeof w);
    w.crpix[0] = 1; w.crpix[1] = 1; w.crval[0] = 10; w.crval[1] = 0;
    w.cd[0][0] = -1.0 / 3600; w.cd[1][1] = 1.0 / 3600;
    lensnet_wcs_pixel_to_world(&w, 0, 3600, &ra, &dec);
    /* hand-computed: atan(0.0174532925) = 0.01745152 rad = 0.99989846 deg */
    CHECK(fabs(ra - 10) < 1e-9 && fabs(dec - 0.99989846) < 1e-7, "(%.9f, %.9f)", ra, dec);
    lensnet_wcs_pixel_to_world(&w, 3600, 0, &ra, &dec); /* +x is west with CD1_1 < 0 */
    CHECK(fabs(ra - (10 - 0.99989846)) < 1e-7 && fabs(dec) < 1e-12, "(%.9f, %.9f)", ra, dec);
  }
  TEST("a rotated CD matrix at declination 75 agrees with the textbook inverse gnomonic") {
    double rot = 30 * PI / 180, s = 0.3 / 3600, px = 1234.0, py = -456.0, xi, eta, sep;
    memset(&w, 0, sizeof w);
    w.crpix[0] = 100; w.crpix[1] = 200; w.crval[0] = 359.9; w.crval[1] = 75;
    w.cd[0][0] = -s * cos(rot); w.cd[0][1] = s * sin(rot); w.cd[1][0] = s * sin(rot); w.cd[1][1] = s * cos(rot);
    lensnet_wcs_pixel_to_world(&w, px - 1, py - 1, &ra, &dec);
    xi = w.cd[0][0] * (px - w.crpix[0]) + w.cd[0][1] * (py - w.crpix[1]);
    eta = w.cd[1][0] * (px - w.crpix[0]) + w.cd[1][1] * (py - w.crpix[1]);
    gnomonic_inverse(w.crval[0], w.crval[1], xi, eta, &want_ra, &want_dec); /* x' runs east, as xi */
    sep = separation(ra, dec, want_ra, want_dec);
    CHECK(sep < 1e-6, "(%.9f, %.9f) vs (%.9f, %.9f): %.3g arcsec", ra, dec, want_ra, want_dec, sep);
    CHECK(ra >= 0 && ra < 360, "RA wrapped into [0, 360): %.9f", ra);
  }
  TEST("the pole: a field at declination 89.99 across the pole") {
    memset(&w, 0, sizeof w);
    w.crpix[0] = 1; w.crpix[1] = 1; w.crval[0] = 45; w.crval[1] = 89.99;
    w.cd[0][0] = -1.0 / 3600; w.cd[1][1] = 1.0 / 3600;
    lensnet_wcs_pixel_to_world(&w, 0, 72, &ra, &dec); /* 72 arcsec north: 0.01 deg past... on the pole */
    gnomonic_inverse(45, 89.99, 0, 72.0 / 3600, &want_ra, &want_dec);
    CHECK(fabs(dec - want_dec) < 1e-9, "dec %.9f vs %.9f", dec, want_dec);
    CHECK(separation(ra, dec, want_ra, want_dec) < 1e-6, "on the sky: %.3g arcsec", separation(ra, dec, want_ra, want_dec));
  }
}

/* A FITS cube with WCS cards written and read back. */
/* The names of a cube's planes (BANDn) and the rule that matches them to a model's bands. */
static void test_plane_names(void) {
  float data[2 * 2 * 2] = {0};
  lensnet_tensor t;
  lensnet_fits_card cards[2] = {{"BAND1", "'NISP_Y'", NULL}, {"BAND2", "' h '", NULL}};
  lensnet_error err;
  char v[72];
  memset(&t, 0, sizeof t);
  t.ndim = 3; t.shape[0] = 2; t.shape[1] = 2; t.shape[2] = 2; t.data = data;
  TEST("lensnet_band_names_match: case, blanks and an instrument prefix aside; two prefixes are two bands") {
    CHECK(lensnet_band_names_match("NISP_Y", "Y") && lensnet_band_names_match(" y ", "Y") && lensnet_band_names_match("VIS", "Euclid_vis"),
          "the same band");
    CHECK(!lensnet_band_names_match("ACS_F814W", "WFC3_F814W") && !lensnet_band_names_match("J", "H") && !lensnet_band_names_match(NULL, "H"),
          "other bands");
  }
  TEST("lensnet_fits_plane_name: BANDn of the HDU holding the image; none for a plane the header does not name") {
    CHECK(lensnet_fits_write_cards("build/test_find_planes.fits", &t, cards, 2, &err) == LENSNET_OK, "write: %s", err.message);
    CHECK(lensnet_fits_plane_name("build/test_find_planes.fits", -1, 0, v, sizeof v) && !strcmp(v, "NISP_Y"), "plane 0: %s", v);
    CHECK(lensnet_fits_plane_name("build/test_find_planes.fits", 0, 1, v, sizeof v) && lensnet_band_names_match(v, "H"), "plane 1 of HDU 0: '%s'", v);
    CHECK(!lensnet_fits_plane_name("build/test_find_planes.fits", -1, 2, v, sizeof v), "no BAND3");
    CHECK(!lensnet_fits_plane_name("build/test_find_planes.fits", 1, 0, v, sizeof v), "no HDU 1: no name");
  }
}

static void test_fits_cards(void) {
  float data[2 * 3 * 4];
  lensnet_tensor t, back;
  lensnet_fits_card cards[10];
  lensnet_wcs w;
  lensnet_error err;
  char v[80];
  size_t i;
  double ra, dec, ra2, dec2;
  for (i = 0; i < 24; i++) data[i] = (float)i * 0.5f;
  memset(&t, 0, sizeof t);
  t.ndim = 3; t.shape[0] = 2; t.shape[1] = 3; t.shape[2] = 4; t.data = data;
  cards[0].key = "CTYPE1"; cards[0].value = "'RA---TAN'"; cards[0].comment = "gnomonic";
  cards[1].key = "CTYPE2"; cards[1].value = "'DEC--TAN'"; cards[1].comment = NULL;
  cards[2].key = "CRPIX1"; cards[2].value = "2.5"; cards[2].comment = NULL;
  cards[3].key = "CRPIX2"; cards[3].value = "2"; cards[3].comment = NULL;
  cards[4].key = "CRVAL1"; cards[4].value = "210.25"; cards[4].comment = NULL;
  cards[5].key = "CRVAL2"; cards[5].value = "-60.5"; cards[5].comment = NULL;
  cards[6].key = "CDELT1"; cards[6].value = "-8.333333333333E-05"; cards[6].comment = NULL;
  cards[7].key = "CDELT2"; cards[7].value = "8.333333333333E-05"; cards[7].comment = NULL;
  cards[8].key = "CROTA2"; cards[8].value = "20"; cards[8].comment = NULL;
  cards[9].key = "OBJECT"; cards[9].value = "'a test field with a long name'"; cards[9].comment = "free text";
  TEST("lensnet_fits_write_cards: the cube and every card read back") {
    CHECK(lensnet_fits_write_cards(W "_cards.fits", &t, cards, 10, &err) == LENSNET_OK, "write: %s", err.message);
    CHECK(lensnet_fits_read(W "_cards.fits", -1, &back, &err) == LENSNET_OK, "read: %s", err.message);
    CHECK(back.ndim == 3 && back.shape[0] == 2 && back.shape[1] == 3 && back.shape[2] == 4 && !memcmp(back.data, data, sizeof data), "the cube");
    lensnet_tensor_free(&back);
    CHECK(lensnet_fits_header_value(W "_cards.fits", 0, "CTYPE2", v, sizeof v, &err) == LENSNET_OK && !strcmp(v, "DEC--TAN"), "CTYPE2 '%s'", v);
    CHECK(lensnet_fits_header_value(W "_cards.fits", 0, "OBJECT", v, sizeof v, &err) == LENSNET_OK && !strcmp(v, "a test field with a long name"), "OBJECT '%s'", v);
    CHECK(lensnet_fits_header_value(W "_cards.fits", 0, "CDELT1", v, sizeof v, &err) == LENSNET_OK && atof(v) == -8.333333333333E-05, "CDELT1 '%s'", v);
  }
  TEST("lensnet_fits_wcs: CDELT with CROTA2 becomes the rotated CD matrix") {
    double s = 8.333333333333E-05, r = 20 * PI / 180;
    CHECK(lensnet_fits_wcs(W "_cards.fits", -1, &w, &err) == LENSNET_OK, "wcs: %s", err.message);
    CHECK(fabs(w.cd[0][0] + s * cos(r)) < 1e-15 && fabs(w.cd[0][1] + s * sin(r)) < 1e-15 && fabs(w.cd[1][0] + s * sin(r)) < 1e-15 &&
          fabs(w.cd[1][1] - s * cos(r)) < 1e-15, "CD = [[%g %g] [%g %g]]", w.cd[0][0], w.cd[0][1], w.cd[1][0], w.cd[1][1]);
    lensnet_wcs_pixel_to_world(&w, 1.5, 1, &ra, &dec);
    CHECK(fabs(ra - 210.25) < 1e-12 && fabs(dec + 60.5) < 1e-12, "CRPIX (2.5, 2) is array (1.5, 1): (%.12f, %.12f)", ra, dec);
    lensnet_wcs_pixel_to_world(&w, 3, 2, &ra, &dec);
    {
      double xi = w.cd[0][0] * 1.5 + w.cd[0][1] * 1, eta = w.cd[1][0] * 1.5 + w.cd[1][1] * 1;
      gnomonic_inverse(210.25, -60.5, xi, eta, &ra2, &dec2);
    }
    CHECK(separation(ra, dec, ra2, dec2) < 1e-6, "off the reference pixel: %.3g arcsec", separation(ra, dec, ra2, dec2));
  }
  TEST("bad cards are refused and nothing is written") {
    lensnet_fits_card bad = {"NAXIS1", "5", NULL};
    remove(W "_bad.fits");
    CHECK(lensnet_fits_write_cards(W "_bad.fits", &t, &bad, 1, &err) == LENSNET_ERR_ARG && strstr(err.message, "NAXIS1"), "NAXIS1: %s", err.message);
    bad.key = "ctype1"; bad.value = "'x'";
    CHECK(lensnet_fits_write_cards(W "_bad.fits", &t, &bad, 1, &err) == LENSNET_ERR_ARG, "a lower-case key");
    bad.key = "OBJECT"; bad.value = "'unterminated";
    CHECK(lensnet_fits_write_cards(W "_bad.fits", &t, &bad, 1, &err) == LENSNET_ERR_ARG, "an unterminated string");
    bad.value = "my lens"; /* text without quotes: the reader could not read it back */
    CHECK(lensnet_fits_write_cards(W "_bad.fits", &t, &bad, 1, &err) == LENSNET_ERR_ARG && strstr(err.message, "neither a number"),
          "a string without quotes: %s", err.message);
    bad.value = "'it's'";
    CHECK(lensnet_fits_write_cards(W "_bad.fits", &t, &bad, 1, &err) == LENSNET_ERR_ARG && strstr(err.message, "written twice"),
          "a lone quote inside a string: %s", err.message);
    bad.value = "'it''s'";
    CHECK(lensnet_fits_write_cards(W "_bad.fits", &t, &bad, 1, &err) == LENSNET_OK &&
              lensnet_fits_header_value(W "_bad.fits", 0, "OBJECT", v, sizeof v, &err) == LENSNET_OK && !strcmp(v, "it's"),
          "a doubled quote reads back as one: '%s'", v);
    remove(W "_bad.fits");
    bad.value = "1.5e3x";
    CHECK(lensnet_fits_write_cards(W "_bad.fits", &t, &bad, 1, &err) == LENSNET_ERR_ARG, "a number with trailing text: %s", err.message);
    CHECK(!check_file_exists(W "_bad.fits"), "no file");
  }
  TEST("a file without a TAN WCS says so") {
    CHECK(lensnet_fits_write(W "_plain.fits", &t, &err) == LENSNET_OK, "write");
    CHECK(lensnet_fits_wcs(W "_plain.fits", -1, &w, &err) == LENSNET_ERR_ARG && strstr(err.message, "CTYPE1"), "%s", err.message);
    cards[1].value = "'DEC--SIN'";
    CHECK(lensnet_fits_write_cards(W "_sin.fits", &t, cards, 10, &err) == LENSNET_OK, "write");
    CHECK(lensnet_fits_wcs(W "_sin.fits", -1, &w, &err) == LENSNET_ERR_ARG && strstr(err.message, "CTYPE2"), "%s", err.message);
    cards[1].value = "'DEC--TAN'";
  }
  TEST("a degenerate WCS is refused, not turned into one sky position for every pixel") {
    /* CDELT1 = 0: every pixel of a row at the same RA (the CD matrix singular) */
    cards[6].value = "0.0";
    CHECK(lensnet_fits_write_cards(W "_sing.fits", &t, cards, 10, &err) == LENSNET_OK, "write");
    CHECK(lensnet_fits_wcs(W "_sing.fits", -1, &w, &err) == LENSNET_ERR_ARG && strstr(err.message, "singular"), "CDELT1 = 0: %s", err.message);
    cards[6].value = "-8.333333333333E-05";
    cards[5].value = "95"; /* not a declination */
    CHECK(lensnet_fits_write_cards(W "_sing.fits", &t, cards, 10, &err) == LENSNET_OK, "write");
    CHECK(lensnet_fits_wcs(W "_sing.fits", -1, &w, &err) == LENSNET_ERR_ARG && strstr(err.message, "CRVAL2 = 95"), "CRVAL2 = 95: %s", err.message);
    cards[5].value = "-60.5";
    remove(W "_sing.fits");
  }
}

/* A 2-band 9x9 model whose logit is k (matched filter of band 0 with a centred Gaussian) - b:
 * it scores high when a blob sits at the window's centre. */
static lensnet_model *blob_model(void) {
  lensnet_model *m = NULL;
  lensnet_error err;
  const lensnet_param *cw = NULL, *cb, *dw, *db;
  int c, y, x;
  if (lensnet_model_create("input 2 9 9\nconv2d name=c out=1 kernel=9\nflatten\ndense name=d out=1", &m, &err) != LENSNET_OK) {
    CHECK(0, "model: %s", err.message);
    return NULL;
  }
  cw = lensnet_model_param(m, "c.weight"); cb = lensnet_model_param(m, "c.bias");
  dw = lensnet_model_param(m, "d.weight"); db = lensnet_model_param(m, "d.bias");
  for (c = 0; c < 2; c++)
    for (y = 0; y < 9; y++)
      for (x = 0; x < 9; x++)
        m->values[cw->offset + (size_t)(c * 81 + y * 9 + x)] = c == 0 ? (float)exp(-((x - 4) * (x - 4) + (y - 4) * (y - 4)) / 4.0) : 0.0f;
  m->values[cb->offset] = 0;
  m->values[dw->offset] = 1.0f;
  m->values[db->offset] = -15.0f;
  return m;
}

/* A blob of peak `amp` at (x0, y0) added to band 0 of a [2, h, w] image. */
static void add_blob(float *img, size_t h, size_t w, double x0, double y0, double amp) {
  size_t y, x;
  for (y = 0; y < h; y++)
    for (x = 0; x < w; x++) img[y * w + x] += (float)(amp * exp(-((x - x0) * (x - x0) + (y - y0) * (y - y0)) / 4.0));
}

/* A parallel-for that runs the items backwards, spread over 3 workers: a different order and
 * worker for every item than the serial run. */
static void reverse_run(void *user, size_t count, lensnet_task_fn task, void *ctx) {
  size_t i;
  (void)user;
  for (i = count; i-- > 0;) task(ctx, i, i % 3);
}

static void test_scan(void) {
  enum { H = 100, WD = 120 };
  static float img[2 * H * WD], scaled[2 * H * WD];
  lensnet_model *m = blob_model();
  lensnet_scan_desc d;
  lensnet_scan_grid g;
  lensnet_detection det[64];
  lensnet_error err;
  lensnet_parallel par;
  float *map, *map2;
  size_t n, k, i;
  if (!m) return;
  memset(img, 0, sizeof img);
  add_blob(img, H, WD, 30, 40, 3.0);
  add_blob(img, H, WD, 90, 71, 3.0);
  add_blob(img, H, WD, 60, 20, 1.0); /* too faint to pass 0.5 (p ~ 1.6e-4) */
  for (i = 0; i < H * WD; i++) img[H * WD + i] = 1.0f; /* band 1 ignored by the model */
  memset(&d, 0, sizeof d);
  d.stride = 1;
  TEST("the grid: ceil((h - 9) / stride) + 1 windows a side, the last flush with the edge; smaller images and missing bands are refused") {
    CHECK(lensnet_scan_grid_of(m, &d, 2, H, WD, &g, &err) == LENSNET_OK && g.rows == H - 8 && g.cols == WD - 8, "%lux%lu", (unsigned long)g.rows, (unsigned long)g.cols);
    d.stride = 0;
    /* 91 = 45 strides of 2 and 1 pixel: 46 windows from 0 to 90, and one at 91 */
    CHECK(lensnet_scan_grid_of(m, &d, 2, H, WD, &g, &err) == LENSNET_OK && g.stride == 2 && g.rows == 47 && g.cols == 57 && g.last_y == 91 &&
              g.last_x == 111,
          "default stride %lu: %lux%lu, the last at (%lu, %lu)", (unsigned long)g.stride, (unsigned long)g.rows, (unsigned long)g.cols,
          (unsigned long)g.last_x, (unsigned long)g.last_y);
    CHECK(lensnet_scan_grid_of(m, &d, 2, 8, WD, &g, &err) == LENSNET_ERR_SHAPE && strstr(err.message, "smaller"), "%s", err.message);
    CHECK(lensnet_scan_grid_of(m, &d, 1, H, WD, &g, &err) == LENSNET_ERR_SHAPE && strstr(err.message, "band"), "%s", err.message);
    d.stride = 1;
  }
  lensnet_scan_grid_of(m, &d, 2, H, WD, &g, &err);
  map = (float *)malloc(g.rows * g.cols * sizeof(float));
  map2 = (float *)malloc(g.rows * g.cols * sizeof(float));
  TEST("detections at the blobs, strongest first, the faint one under the threshold") {
    CHECK(lensnet_scan_map(m, &d, img, 2, H, WD, map, &err) == LENSNET_OK, "map: %s", err.message);
    n = lensnet_scan_detect(map, &g, &d, det, 64);
    CHECK(n == 2, "%lu detections", (unsigned long)n);
    for (k = 0; k < n && k < 2; k++) {
      double ex = det[k].x < 60 ? 30 : 90, ey = det[k].x < 60 ? 40 : 71;
      CHECK(fabs(det[k].x - ex) < 0.5 && fabs(det[k].y - ey) < 0.5, "detection %lu at (%.2f, %.2f), blob at (%g, %g)", (unsigned long)k, det[k].x, det[k].y, ex, ey);
      CHECK(det[k].p_lens >= 0.5f, "threshold respected: %g", det[k].p_lens);
    }
    CHECK(n < 2 || det[0].p_lens >= det[1].p_lens, "strongest first");
    /* the map's own window centres: window (row, col) centred at (col + 4, row + 4) */
    CHECK(det[0].row + 4 == (size_t)(det[0].y + 0.5) && det[0].col + 4 == (size_t)(det[0].x + 0.5), "window of the peak");
  }
  TEST("the threshold: none above 0.999, the faint blob too with 1e-5") {
    d.threshold = 0.999;
    CHECK(lensnet_scan_detect(map, &g, &d, det, 64) == 0, "none above 0.999");
    d.threshold = 1e-5;
    n = lensnet_scan_detect(map, &g, &d, det, 64);
    CHECK(n == 3, "%lu detections at 1e-5", (unsigned long)n);
    for (k = 0; k < n; k++) CHECK(det[k].p_lens >= 1e-5f, "p %g", det[k].p_lens);
    d.threshold = 0;
  }
  TEST("non-maximum suppression: a radius wider than the blobs' distance keeps one") {
    d.nms_radius = 100;
    n = lensnet_scan_detect(map, &g, &d, det, 64);
    CHECK(n == 1 && det[0].p_lens >= 0.5f, "%lu detections", (unsigned long)n);
    d.nms_radius = 0;
  }
  TEST("a stride of 4: the centroid refines positions between window centres; --no-refine keeps them") {
    lensnet_scan_grid g4;
    float map4[40 * 40];
    d.stride = 4;
    d.threshold = 1e-3; /* windows miss the blobs by up to 2 px each way: lower peaks */
    CHECK(lensnet_scan_grid_of(m, &d, 2, H, WD, &g4, &err) == LENSNET_OK && g4.rows * g4.cols <= 40 * 40, "grid");
    CHECK(lensnet_scan_map(m, &d, img, 2, H, WD, map4, &err) == LENSNET_OK, "map");
    n = lensnet_scan_detect(map4, &g4, &d, det, 64);
    CHECK(n == 2, "%lu detections", (unsigned long)n);
    for (k = 0; k < n && k < 2; k++) {
      double ex = det[k].x < 60 ? 30 : 90, ey = det[k].x < 60 ? 40 : 71;
      CHECK(fabs(det[k].x - ex) <= 1.5 && fabs(det[k].y - ey) <= 1.5, "refined (%.2f, %.2f) vs (%g, %g)", det[k].x, det[k].y, ex, ey);
    }
    d.no_refine = 1;
    n = lensnet_scan_detect(map4, &g4, &d, det, 64);
    for (k = 0; k < n; k++) CHECK(fmod(det[k].x - 4, 4) == 0 && fmod(det[k].y - 4, 4) == 0, "window centre (%g, %g)", det[k].x, det[k].y);
    d.no_refine = 0;
    d.stride = 1;
    d.threshold = 0;
  }
  TEST("the right and bottom edges are scanned: a blob in the last 3 pixels, which no stride of 4 from 0 reaches") {
    static float corner[2 * H * WD];
    lensnet_scan_grid g4;
    float map4[40 * 40];
    memset(corner, 0, sizeof corner);
    add_blob(corner, H, WD, 117, 97, 3.0); /* windows at x0 = 0, 4, ..., 108 end at 116; the last, at 111, ends at 119 */
    d.stride = 4;
    d.no_refine = 1;
    d.threshold = 1e-4; /* the blob 2 px off the window's centre each way: a low peak of this sharp model */
    CHECK(lensnet_scan_grid_of(m, &d, 2, H, WD, &g4, &err) == LENSNET_OK && g4.cols == 29 && g4.rows == 24, "grid %lux%lu",
          (unsigned long)g4.rows, (unsigned long)g4.cols);
    CHECK(lensnet_scan_map(m, &d, corner, 2, H, WD, map4, &err) == LENSNET_OK, "map");
    n = lensnet_scan_detect(map4, &g4, &d, det, 64);
    CHECK(n == 1 && det[0].x == 115 && det[0].y == 95, "one detection, at the last window's centre (115, 95): %lu at (%g, %g)",
          (unsigned long)n, n ? det[0].x : -1.0, n ? det[0].y : -1.0);
    printf("   p_lens %.4f in the last window (the nearest of a grid without it, centred at (112, 92): %.2g)\n", map4[23 * 29 + 28], map4[22 * 29 + 27]);
    d.no_refine = 0;
    d.threshold = 0;
    d.stride = 1;
  }
  TEST("the map does not depend on the order of windows or the workers") {
    par.run = reverse_run; par.user = NULL; par.workers = 3;
    d.parallel = &par;
    CHECK(lensnet_scan_map(m, &d, img, 2, H, WD, map2, &err) == LENSNET_OK, "map: %s", err.message);
    CHECK(!memcmp(map, map2, g.rows * g.cols * sizeof(float)), "maps differ");
    d.parallel = NULL;
  }
  TEST("minmax: each window scaled on its own, so the map ignores a gain and an offset of the field") {
    float a[2 * 9 * 9];
    d.minmax = 1;
    for (i = 0; i < 2 * H * WD; i++) scaled[i] = img[i] * 7.0f + 3.0f;
    CHECK(lensnet_scan_map(m, &d, img, 2, H, WD, map, &err) == LENSNET_OK && lensnet_scan_map(m, &d, scaled, 2, H, WD, map2, &err) == LENSNET_OK, "maps");
    /* float rounding of 7x + 3 before the scaling: ~1e-7 relative, times a logit slope of up to ~80 */
    CHECK(check_max_abs_diff(map, map2, g.rows * g.cols) < 1e-4, "diff %g", check_max_abs_diff(map, map2, g.rows * g.cols));
    /* window (31, 21) through lensnet_cutout_prepare gives the same score */
    {
      lensnet_cutout_desc cd;
      float win[2 * 9 * 9], out;
      size_t c, y;
      memset(&cd, 0, sizeof cd);
      cd.minmax = 1;
      for (c = 0; c < 2; c++)
        for (y = 0; y < 9; y++) memcpy(win + c * 81 + y * 9, img + c * H * WD + (31 + y) * WD + 21, 9 * sizeof(float));
      CHECK(lensnet_cutout_prepare(m, &cd, win, 2, 9, 9, a, NULL, &err) == LENSNET_OK, "cutout");
      lensnet_model_forward(m, 1, a, &out, NULL, &err);
      CHECK(fabsf((float)lensnet_lens_probability(&out, 1, 0) - map[31 * g.cols + 21]) < 1e-6f, "same as a prepared cutout");
    }
    d.minmax = 0;
  }
  free(map);
  free(map2);
  lensnet_model_free(m);
}

/* lenssim_field: reproducible, objects where the truth says, lenses apart. */
static void test_field(void) {
  lenssim_field f;
  lenssim_field_config c;
  lenssim_field_object objects[16], again[16];
  lenssim_label labels[16];
  lenssim_error err;
  float *a, *b, *stamp;
  double *sum;
  size_t k, j, n, plane;
  memset(&c, 0, sizeof c);
  c.size = 240; c.lenses = 3; c.others = 9;
  TEST("lenssim_field_init: defaults and refusals") {
    lenssim_field_config bad = c;
    CHECK(lenssim_field_init(&f, &c, 11, &err) == LENSSIM_OK && f.object_count == 12 && f.stamp == 66 && f.channels == 4 && fabs(f.pixel_scale - 0.3) < 1e-12,
          "init: %s", err.message);
    bad.size = 50;
    CHECK(lenssim_field_init(&f, &bad, 11, &err) == LENSSIM_ERR_RANGE, "smaller than a stamp");
    bad = c;
    bad.population.preset = LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE;
    CHECK(lenssim_field_init(&f, &bad, 11, &err) == LENSSIM_ERR_ARG, "a preset without non-lenses");
    bad = c;
    bad.lenses = 30;
    lenssim_field_init(&f, &bad, 11, &err);
    {
      lenssim_field_object *many = (lenssim_field_object *)malloc(f.object_count * sizeof *many);
      CHECK(lenssim_field_place(&f, many, &err) == LENSSIM_ERR_RANGE && strstr(err.message, "no room"), "30 lenses in 240 px: %s", err.message);
      free(many);
    }
  }
  lenssim_field_init(&f, &c, 11, &err);
  n = f.object_count;
  plane = (size_t)f.size * f.size;
  a = (float *)malloc(lenssim_field_image_floats(&f) * sizeof(float));
  b = (float *)malloc(lenssim_field_image_floats(&f) * sizeof(float));
  TEST("the same seed gives the same field; stamps rendered out of order, added in order, too") {
    CHECK(lenssim_field_render(&f, a, objects, labels, &err) == LENSSIM_OK, "render: %s", err.message);
    sum = (double *)calloc(lenssim_field_image_floats(&f), sizeof(double));
    stamp = (float *)malloc(n * lenssim_dataset_image_floats(&f.population) * sizeof(float));
    CHECK(lenssim_field_place(&f, again, &err) == LENSSIM_OK, "place");
    for (k = n; k-- > 0;) lenssim_field_render_object(&f, &again[k], stamp + k * lenssim_dataset_image_floats(&f.population), NULL, NULL, 0, &err);
    for (k = 0; k < n; k++) lenssim_field_add(&f, &again[k], stamp + k * lenssim_dataset_image_floats(&f.population), sum);
    lenssim_field_finish(&f, sum, b);
    CHECK(!memcmp(a, b, lenssim_field_image_floats(&f) * sizeof(float)), "fields differ");
    CHECK(!memcmp(objects, again, n * sizeof *objects), "truth differs");
    free(sum);
    free(stamp);
  }
  TEST("lenses first, at least a stamp apart; non-lenses half a stamp from lenses; all inside") {
    size_t lenses = 0;
    for (k = 0; k < n; k++) {
      lenses += objects[k].label == 1;
      CHECK((objects[k].label == 1) == (k < 3) && (labels[k].label == 1) == (k < 3), "object %lu's class", (unsigned long)k);
      CHECK(objects[k].stamp_x >= 0 && objects[k].stamp_y >= 0 && objects[k].stamp_x + 66 <= 240 && objects[k].stamp_y + 66 <= 240, "inside");
      for (j = 0; j < k && j < 3; j++) {
        double dx = objects[k].stamp_x - objects[j].stamp_x, dy = objects[k].stamp_y - objects[j].stamp_y;
        CHECK(sqrt(dx * dx + dy * dy) >= (k < 3 ? 66 : 33), "objects %lu and %lu %.1f px apart", (unsigned long)j, (unsigned long)k, sqrt(dx * dx + dy * dy));
      }
    }
    CHECK(lenses == 3, "%lu lenses", (unsigned long)lenses);
  }
  TEST("the truth position is where the object's flux is: one lens alone, noise-free") {
    lenssim_field_config one = c;
    lenssim_field g;
    lenssim_field_object o;
    lenssim_label l;
    float *field, *st;
    size_t s, y, x, best = 0, ch, differ = 0;
    double total = 0, stamp_total = 0;
    one.lenses = 1; one.others = -1; one.population.noise_free = 1;
    lenssim_field_init(&g, &one, 23, &err);
    field = (float *)malloc(lenssim_field_image_floats(&g) * sizeof(float));
    st = (float *)malloc(lenssim_dataset_image_floats(&g.population) * sizeof(float));
    CHECK(g.object_count == 1 && lenssim_field_render(&g, field, &o, &l, &err) == LENSSIM_OK, "render: %s", err.message);
    s = (size_t)g.stamp;
    lenssim_dataset_sample(&g.population, o.index, st, &l, NULL, 0, &err);
    for (ch = 0; ch < 4; ch++)
      for (y = 0; y < s; y++)
        for (x = 0; x < s; x++) {
          float v = field[ch * plane + (o.stamp_y + y) * g.size + o.stamp_x + x];
          differ += v != st[(ch * s + y) * s + x];
          stamp_total += st[(ch * s + y) * s + x];
        }
    CHECK(differ == 0, "%lu pixels differ from the stamp at (stamp_x, stamp_y)", (unsigned long)differ);
    for (k = 0; k < lenssim_field_image_floats(&g); k++) total += field[k];
    CHECK(fabs(total - stamp_total) <= 1e-6 * fabs(stamp_total), "all the flux is the stamp's: %g vs %g", total, stamp_total);
    for (k = 1; k < plane; k++) if (field[k] > field[best]) best = k; /* VIS */
    CHECK(fabs((double)(best % g.size) - o.x) <= 2 && fabs((double)(best / g.size) - o.y) <= 2,
          "brightest VIS pixel (%lu, %lu), truth (%.2f, %.2f)", (unsigned long)(best % g.size), (unsigned long)(best / g.size), o.x, o.y);
    CHECK(fabs(o.x - (o.stamp_x + 32.5 + l.center_x / 0.3)) < 1e-9 && fabs(o.y - (o.stamp_y + 32.5 + l.center_y / 0.3)) < 1e-9, "the convention");
    free(field);
    free(st);
  }
  TEST("noise once over the field: the empty sky has the band's spread") {
    lenssim_field_config empty = c;
    lenssim_field g;
    lenssim_field_object dummy;
    double m = 0, v = 0;
    float *field;
    empty.lenses = -1; empty.others = -1;
    lenssim_field_init(&g, &empty, 5, &err);
    field = (float *)malloc(lenssim_field_image_floats(&g) * sizeof(float));
    CHECK(g.object_count == 0 && lenssim_field_render(&g, field, &dummy, NULL, &err) == LENSSIM_OK, "render");
    for (k = 0; k < plane; k++) m += field[k];
    m /= (double)plane;
    for (k = 0; k < plane; k++) v += (field[k] - m) * (field[k] - m);
    v /= (double)plane;
    CHECK(fabs(m) < 0.05 * sqrt(v) && v > 0, "VIS sky: mean %g, sd %g", m, sqrt(v));
    free(field);
  }
  free(a);
  free(b);
}


/* A locator for one blob of known flux F on a dark sky: center_x = pixel_scale * sum((x - c) I) / F,
 * the blob's centroid relative to the window's centre c in arcsec, one linear dense layer (mse
 * regression metadata, mean 0, std 1). A window that holds the whole blob gives its true centre. */
static lensnet_model *centroid_locator(size_t side, double flux, double pixel_scale) {
  lensnet_model *m = NULL;
  lensnet_error err;
  char arch[128];
  const lensnet_param *dw, *db;
  size_t y, x, n = side * side;
  double c = 0.5 * ((double)side - 1);
  snprintf(arch, sizeof arch, "input 1 %lu %lu\nflatten\ndense name=d out=2", (unsigned long)side, (unsigned long)side);
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) {
    CHECK(0, "locator: %s", err.message);
    return NULL;
  }
  dw = lensnet_model_param(m, "d.weight");
  db = lensnet_model_param(m, "d.bias");
  for (y = 0; y < side; y++)
    for (x = 0; x < side; x++) {
      m->values[dw->offset + y * side + x] = (float)(pixel_scale * ((double)x - c) / flux);
      m->values[dw->offset + n + y * side + x] = (float)(pixel_scale * ((double)y - c) / flux);
    }
  m->values[db->offset] = m->values[db->offset + 1] = 0.0f;
  lensnet_model_set_meta(m, "regress.targets", "center_x,center_y");
  lensnet_model_set_meta(m, "regress.loss", "mse");
  lensnet_model_set_meta(m, "regress.mean", "0,0");
  lensnet_model_set_meta(m, "regress.std", "1,1");
  return m;
}

static void test_locate(void) {
  enum { H = 48, WD = 56, SIDE = 17 };
  static float img[H * WD];
  lensnet_model *loc = centroid_locator(SIDE, 0, 1), *blob = blob_model();
  lensnet_locate_desc ld;
  lensnet_detection det[3];
  lensnet_error err;
  size_t n, y, x;
  double flux = 0, ps = 0.3;
  /* the blob's flux, summed over a grid wide enough to hold all of it */
  for (y = 0; y < 200; y++)
    for (x = 0; x < 200; x++) flux += 5.0 * exp(-(((double)x - 100.3) * ((double)x - 100.3) + ((double)y - 99.6) * ((double)y - 99.6)) / 4.0);
  lensnet_model_free(loc);
  loc = centroid_locator(SIDE, flux, ps);
  if (!loc || !blob) return;
  memset(img, 0, sizeof img);
  add_blob(img, H, WD, 30.3, 21.6, 5.0);
  memset(&ld, 0, sizeof ld);
  ld.pixel_scale = ps;
  TEST("a locator moves a detection 7.6 pixels off onto the blob's centre") {
    double e1, e2;
    memset(det, 0, sizeof det);
    det[0].x = 24.0; det[0].y = 26.0; det[0].p_lens = 0.9f;
    n = 1;
    ld.passes = 1;
    CHECK(lensnet_scan_locate(loc, &ld, NULL, img, 1, H, WD, det, &n, &err) == LENSNET_OK && n == 1, "locate: %s", err.message);
    e1 = hypot(det[0].x - 30.3, det[0].y - 21.6);
    det[0].x = 24.0; det[0].y = 26.0;
    ld.passes = 0; /* default: 2 */
    CHECK(lensnet_scan_locate(loc, &ld, NULL, img, 1, H, WD, det, &n, &err) == LENSNET_OK && n == 1, "locate: %s", err.message);
    e2 = hypot(det[0].x - 30.3, det[0].y - 21.6);
    /* the first window cuts the blob's far side (its centroid lies short of the centre); the
     * second, centred within half a pixel of the blob, holds all of it */
    CHECK(e1 > 0.02 && e1 < 1.0, "one pass: %.4f px off (the window truncates the blob)", e1);
    CHECK(e2 < 1e-3, "two passes: (%.5f, %.5f), %.2e px off", det[0].x, det[0].y, e2);
    CHECK(det[0].sigma_x == 0 && det[0].sigma_y == 0 && det[0].p_lens == 0.9f, "an mse locator has no sigma; p_lens kept");
  }
  TEST("a window at the image's edge is moved inside; the position stays right") {
    memset(img, 0, sizeof img);
    add_blob(img, H, WD, 9.2, 38.7, 5.0); /* 8 pixels from the left edge, 9 from the bottom: SIDE / 2 = 8 */
    memset(det, 0, sizeof det);
    det[0].x = 3.0; det[0].y = 46.0;
    n = 1;
    ld.passes = 3;
    CHECK(lensnet_scan_locate(loc, &ld, NULL, img, 1, H, WD, det, &n, &err) == LENSNET_OK && n == 1, "locate: %s", err.message);
    CHECK(hypot(det[0].x - 9.2, det[0].y - 38.7) < 1e-3, "(%.4f, %.4f)", det[0].x, det[0].y);
  }
  TEST("two detections of one blob become one, the stronger; a distant one stays, in order") {
    memset(img, 0, sizeof img);
    add_blob(img, H, WD, 20.0, 20.0, 5.0);
    add_blob(img, H, WD, 44.0, 30.0, 5.0);
    memset(det, 0, sizeof det);
    det[0].x = 17.0; det[0].y = 18.0; det[0].p_lens = 0.9f;
    det[1].x = 24.0; det[1].y = 22.0; det[1].p_lens = 0.8f;
    det[2].x = 43.0; det[2].y = 31.0; det[2].p_lens = 0.7f;
    n = 3;
    ld.passes = 2;
    {
      lensnet_scan_desc d;
      memset(&d, 0, sizeof d);
      d.nms_radius = 5.0;
      CHECK(lensnet_scan_locate(loc, &ld, &d, img, 1, H, WD, det, &n, &err) == LENSNET_OK, "locate: %s", err.message);
    }
    CHECK(n == 2 && det[0].p_lens == 0.9f && det[1].p_lens == 0.7f, "%lu kept", (unsigned long)n);
    CHECK(n == 2 && hypot(det[0].x - 20, det[0].y - 20) < 1e-2 && hypot(det[1].x - 44, det[1].y - 30) < 1e-2, "(%.3f, %.3f) (%.3f, %.3f)",
          det[0].x, det[0].y, det[1].x, det[1].y);
  }
  TEST("symmetries 8: a locator biased one way is unbiased on average over the window's flips and turns") {
    /* the centroid locator plus a constant (0.3, -0.2) arcsec: on the window as it is every
     * prediction is that far off; over the 8 symmetries the bias, turned back, averages to zero
     * (the dihedral group has no fixed vector), and the spread of the 8 means is sqrt((0.3^2 +
     * 0.2^2) / 2) arcsec in x and in y, the sigma of an mse locator's mixture */
    const lensnet_param *db = lensnet_model_param(loc, "d.bias");
    double want = sqrt((0.09 + 0.04) / 2) / ps;
    loc->values[db->offset] = 0.3f;
    loc->values[db->offset + 1] = -0.2f;
    memset(img, 0, sizeof img);
    add_blob(img, H, WD, 30.3, 21.6, 5.0);
    memset(det, 0, sizeof det);
    det[0].x = 27.0; det[0].y = 24.0;
    n = 1;
    ld.passes = 3;
    ld.symmetries = 1;
    CHECK(lensnet_scan_locate(loc, &ld, NULL, img, 1, H, WD, det, &n, &err) == LENSNET_OK && n == 1, "locate: %s", err.message);
    CHECK(fabs(det[0].x - (30.3 + 1.0)) < 1e-3 && fabs(det[0].y - (21.6 - 0.2 / 0.3)) < 1e-3, "as it is: the bias, (%.4f, %.4f)", det[0].x, det[0].y);
    det[0].x = 27.0; det[0].y = 24.0;
    ld.symmetries = 8;
    CHECK(lensnet_scan_locate(loc, &ld, NULL, img, 1, H, WD, det, &n, &err) == LENSNET_OK && n == 1, "locate: %s", err.message);
    CHECK(hypot(det[0].x - 30.3, det[0].y - 21.6) < 1e-3, "8 symmetries: the blob's centre, (%.5f, %.5f)", det[0].x, det[0].y);
    CHECK(fabs(det[0].sigma_x - want) < 1e-4 && fabs(det[0].sigma_y - want) < 1e-4, "sigma (%.5f, %.5f) px, the spread %.5f", det[0].sigma_x,
          det[0].sigma_y, want);
    ld.symmetries = 3;
    CHECK(lensnet_scan_locate(loc, &ld, NULL, img, 1, H, WD, det, &n, &err) == LENSNET_ERR_ARG && strstr(err.message, "1 or 8"), "%s", err.message);
    ld.symmetries = 0;
    ld.passes = 0;
    loc->values[db->offset] = loc->values[db->offset + 1] = 0.0f;
  }
  TEST("symmetries 8 need a square window") {
    lensnet_model *wide = centroid_locator(SIDE, flux, ps), *rect = NULL;
    char arch[64];
    lensnet_model_free(wide);
    snprintf(arch, sizeof arch, "input 1 %d %d\nflatten\ndense name=d out=2", SIDE, SIDE + 2);
    CHECK(lensnet_model_create(arch, &rect, &err) == LENSNET_OK, "%s", err.message);
    if (rect) {
      lensnet_model_set_meta(rect, "regress.targets", "center_x,center_y");
      lensnet_model_set_meta(rect, "regress.loss", "mse");
      lensnet_model_set_meta(rect, "regress.mean", "0,0");
      lensnet_model_set_meta(rect, "regress.std", "1,1");
      n = 1;
      det[0].x = det[0].y = 20;
      ld.symmetries = 8;
      CHECK(lensnet_scan_locate(rect, &ld, NULL, img, 1, H, WD, det, &n, &err) == LENSNET_ERR_ARG && strstr(err.message, "square"), "%s", err.message);
      ld.symmetries = 1;
      CHECK(lensnet_scan_locate(rect, &ld, NULL, img, 1, H, WD, det, &n, &err) == LENSNET_OK, "one symmetry: any window (%s)", err.message);
      ld.symmetries = 0;
    }
    lensnet_model_free(rect);
  }
  TEST("lensnet_cutout_locate: one prediction on a cutout, in pixels and arcsec") {
    static float cut[SIDE * SIDE];
    lensnet_location at;
    memset(cut, 0, sizeof cut);
    add_blob(cut, SIDE, SIDE, 9.3, 7.4, 5.0); /* (1.3, -0.6) pixels from the centre (8, 8): (0.39, -0.18) arcsec */
    CHECK(lensnet_cutout_locate(loc, cut, ps, NULL, &at, &err) == LENSNET_OK, "%s", err.message);
    CHECK(fabs(at.x - 9.3) < 1e-3 && fabs(at.y - 7.4) < 1e-3 && fabs(at.center_x - 0.39) < 3e-4 && fabs(at.center_y + 0.18) < 3e-4,
          "(%.4f, %.4f), (%.5f, %.5f)\"", at.x, at.y, at.center_x, at.center_y);
    CHECK(at.sigma_x == 0 && at.sigma_y == 0, "mse: no sigma");
    CHECK(lensnet_cutout_locate(loc, cut, 0, NULL, &at, &err) == LENSNET_ERR_ARG && strstr(err.message, "pixel scale"), "%s", err.message);
    CHECK(lensnet_cutout_locate(blob, cut, ps, NULL, &at, &err) == LENSNET_ERR_ARG && strstr(err.message, "center_x"), "%s", err.message);
  }
  TEST("locate refuses a finder, a locator without centres, no pixel scale, a small image") {
    n = 1;
    det[0].x = det[0].y = 20;
    CHECK(lensnet_scan_locate(blob, &ld, NULL, img, 2, H, WD, det, &n, &err) == LENSNET_ERR_ARG && strstr(err.message, "center_x"), "%s", err.message);
    lensnet_model_set_meta(loc, "regress.targets", "theta_E,center_y");
    CHECK(lensnet_scan_locate(loc, &ld, NULL, img, 1, H, WD, det, &n, &err) == LENSNET_ERR_ARG && strstr(err.message, "center_x"), "%s", err.message);
    lensnet_model_set_meta(loc, "regress.targets", "center_x,center_y");
    ld.pixel_scale = 0;
    CHECK(lensnet_scan_locate(loc, &ld, NULL, img, 1, H, WD, det, &n, &err) == LENSNET_ERR_ARG && strstr(err.message, "pixel scale"), "%s", err.message);
    ld.pixel_scale = ps;
    CHECK(lensnet_scan_locate(loc, &ld, NULL, img, 1, 10, 10, det, &n, &err) == LENSNET_ERR_SHAPE, "%s", err.message);
    CHECK(n == 1, "the count is untouched on failure");
  }
  lensnet_model_free(loc);
  lensnet_model_free(blob);
}


static void test_verify(void) {
  enum { H = 40, WD = 50 };
  static float img[2 * H * WD], win[2 * 81];
  lensnet_model *blob = blob_model();
  lensnet_detection det[3];
  lensnet_error err;
  float logit;
  size_t n, c, y;
  double want;
  if (!blob) return;
  memset(img, 0, sizeof img);
  add_blob(img, H, WD, 12.0, 20.0, 5.0);
  /* the expected score: the 9x9 window centred on pixel (12, 20), cut by hand, through the model */
  for (c = 0; c < 2; c++)
    for (y = 0; y < 9; y++) memcpy(win + c * 81 + y * 9, img + c * H * WD + (16 + y) * WD + 8, 9 * sizeof(float));
  lensnet_model_forward(blob, 1, win, &logit, NULL, NULL);
  want = 1.0 / (1.0 + exp(-(double)logit));
  TEST("verify: a detection on the blob keeps the verifier's score, one on empty sky is dropped") {
    memset(det, 0, sizeof det);
    det[0].x = 40; det[0].y = 10; det[0].p_lens = 0.9f; /* empty sky */
    det[1].x = 12.3; det[1].y = 19.8; det[1].p_lens = 0.8f; /* nearest pixel (12, 20): the blob */
    n = 2;
    CHECK(lensnet_scan_verify(blob, 0, 0.5, NULL, img, 2, H, WD, det, &n, &err) == LENSNET_OK, "verify: %s", err.message);
    CHECK(n == 1 && det[0].p_lens == 0.8f && det[0].x == 12.3, "%lu kept", (unsigned long)n);
    CHECK(want > 0.5 && fabs(det[0].p_verify - want) < 1e-6, "p_verify %.6f, by hand %.6f", det[0].p_verify, want);
  }
  TEST("verify: threshold 0 keeps all; a small image is refused") {
    det[0].x = 40; det[0].y = 10; det[1].x = 12; det[1].y = 20;
    n = 2;
    CHECK(lensnet_scan_verify(blob, 0, 0.0, NULL, img, 2, H, WD, det, &n, &err) == LENSNET_OK && n == 2, "kept %lu", (unsigned long)n);
    CHECK(det[0].p_verify < 0.5 && det[1].p_verify > 0.5, "%.3f %.3f", det[0].p_verify, det[1].p_verify);
    CHECK(lensnet_scan_verify(blob, 0, 0.5, NULL, img, 2, 8, 8, det, &n, &err) == LENSNET_ERR_SHAPE, "%s", err.message);
  }
  lensnet_model_free(blob);
}

int main(void) {
  test_gnomonic();
  test_fits_cards();
  test_plane_names();
  test_scan();
  test_field();
  test_locate();
  test_verify();
  return check_summary();
}
