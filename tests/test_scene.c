/* test_scene.c - lenssim.h's JSON scene reader, built alone (no lensnet.h): bad scenes give the
 * named error and never crash, every cut of a reference scene is a syntax error with its line and
 * column, keywords land in their fields, and scenes built in C meet the same range checks. */
#define LENSSIM_IMPLEMENTATION
#include "lenssim.h"
#include "tests/check.h"
#include <string.h>

#define GRID "\"grid\": {\"num_pix\": 10, \"pixel_scale\": 0.1}"

static lenssim_result load(const char *text, size_t len, lenssim_json_scene *sc, lenssim_error *err) {
  err->message[0] = 0;
  return lenssim_scene_from_json(text, len, sc, err);
}

/* ---- a table of bad scenes ------------------------------------------------------------------ */
typedef struct {
  const char *json;
  lenssim_result result;
  const char *message; /* a part of the message */
} bad_scene;

static const bad_scene bad_scenes[] = {
  /* syntax, with line and column */
  {"", LENSSIM_ERR_SYNTAX, "line 1, column 1: expected a value"},
  {"{\"grid\": {\"num_pix\": 10,\n  \"pixel_scale\": 0.1 \"x\": 1}}", LENSSIM_ERR_SYNTAX, "line 2, column 22: expected ',' or '}'"},
  {"{" GRID ", \"lens\": [{\"type\": \"SIS\", \"theta_E\": 1,]}", LENSSIM_ERR_SYNTAX, "expected a key in double quotes"},
  {"{" GRID "} x", LENSSIM_ERR_SYNTAX, "line 1, column 47: text after the JSON value"},
  {"{" GRID ", \"kind\": \"abc}", LENSSIM_ERR_SYNTAX, "unterminated string"},
  {"{" GRID ", \"kind\": \"a\\qb\"}", LENSSIM_ERR_SYNTAX, "bad escape"},
  {"{" GRID ", \"kind\": \"a\\u12\"}", LENSSIM_ERR_SYNTAX, "bad \\u escape"},
  {"{\"grid\": {\"num_pix\": 0, \"pixel_scale\": 0.1}, \"kind\": 01}", LENSSIM_ERR_SYNTAX, "line 1, column 55: expected ',' or '}'"},
  {"{\"grid\": {\"num_pix\": 1., \"pixel_scale\": 0.1}}", LENSSIM_ERR_SYNTAX, "malformed number"},
  {"{\"grid\": {\"num_pix\": -, \"pixel_scale\": 0.1}}", LENSSIM_ERR_SYNTAX, "malformed number"},
  {"{\"grid\" {}}", LENSSIM_ERR_SYNTAX, "line 1, column 9: expected ':'"},
  {"{\"grid\": {\"num_pix\": 10, \"pixel_scale\": null}}", LENSSIM_ERR_SCENE, "keyword 'pixel_scale' must be a number (got null)"},
  {"{\"grid\": {\"num_pix\": 10, \"pixel_scale\": @}}", LENSSIM_ERR_SYNTAX, "expected a value"},
  /* the document */
  {"[1, 2]", LENSSIM_ERR_SCENE, "a scene must be a JSON object (got an array)"},
  {"{\"lens\": []}", LENSSIM_ERR_SCENE, "missing 'grid'"},
  {"{" GRID ", \"len\": []}", LENSSIM_ERR_SCENE, "scene: unknown keyword 'len' (known: grid, lens,"},
  {"{" GRID ", " GRID "}", LENSSIM_ERR_SCENE, "scene: 'grid' given twice"},
  {"{" GRID ", \"kind\": 3}", LENSSIM_ERR_SCENE, "scene: keyword 'kind' must be a string (got a number)"},
  {"{\"grid\": []}", LENSSIM_ERR_SCENE, "grid must be an object (got an array)"},
  /* unknown models and keys */
  {"{" GRID ", \"lens\": [{\"type\": \"SIE_X\", \"theta_E\": 1}]}", LENSSIM_ERR_UNKNOWN, "lens[0]: unknown lens model 'SIE_X' (known: SIS, SIE,"},
  {"{" GRID ", \"lens_light\": [{\"type\": \"SERSIC_ELIPSE\"}]}", LENSSIM_ERR_UNKNOWN, "lens_light[0]: unknown light model 'SERSIC_ELIPSE'"},
  {"{" GRID ", \"psf\": {\"type\": \"AIRY\"}}", LENSSIM_ERR_UNKNOWN, "psf: unknown type 'AIRY' (known: NONE, GAUSSIAN, MOFFAT, PIXEL)"},
  {"{" GRID ", \"lens\": [{\"theta_e\": 1, \"type\": \"SIS\"}]}", LENSSIM_ERR_SCENE, "lens[0] 'SIS': unknown keyword 'theta_e' (it takes theta_E, center_x, center_y)"},
  {"{" GRID ", \"lens\": [{\"type\": \"SHEAR\", \"gamma1\": 0, \"gamma2\": 0, \"center_x\": 1}]}", LENSSIM_ERR_SCENE, "unknown keyword 'center_x' (it takes gamma1, gamma2, ra_0, dec_0)"},
  {"{" GRID ", \"psf\": {\"type\": \"NONE\", \"fwhm\": 1}}", LENSSIM_ERR_SCENE, "psf 'NONE': unknown keyword 'fwhm'"},
  {"{" GRID ", \"psf\": {\"type\": \"GAUSSIAN\", \"fwhm\": 0.1, \"beta\": 3}}", LENSSIM_ERR_SCENE, "psf 'GAUSSIAN': unknown keyword 'beta'"},
  {"{" GRID ", \"cosmology\": {\"h\": 0.7}}", LENSSIM_ERR_SCENE, "cosmology: unknown keyword 'h' (it takes H0, Om0)"},
  {"{" GRID ", \"lens\": [{\"type\": \"SIS\", \"theta_E\": 1, \"theta_E\": 2}]}", LENSSIM_ERR_SCENE, "lens[0] 'SIS': 'theta_E' given twice"},
  {"{" GRID ", \"lens\": [{\"type\": \"SIS\", \"type\": \"SIS\", \"theta_E\": 1}]}", LENSSIM_ERR_SCENE, "lens[0]: 'type' given twice"},
  /* missing keys */
  {"{" GRID ", \"lens\": [{\"theta_E\": 1}]}", LENSSIM_ERR_SCENE, "lens[0]: missing keyword 'type'"},
  {"{" GRID ", \"lens\": [{\"type\": \"SIE\", \"e1\": 0, \"e2\": 0}]}", LENSSIM_ERR_SCENE, "lens[0] 'SIE': missing keyword 'theta_E'"},
  {"{" GRID ", \"source_light\": [{\"type\": \"CLUMPY\", \"amp\": 1, \"R_sersic\": 1, \"n_sersic\": 1, \"e1\": 0}]}", LENSSIM_ERR_SCENE, "source_light[0] 'CLUMPY': missing keyword 'e2'"},
  {"{\"grid\": {\"num_pix\": 10}}", LENSSIM_ERR_SCENE, "grid: missing keyword 'pixel_scale'"},
  {"{" GRID ", \"psf\": {\"type\": \"PIXEL\"}}", LENSSIM_ERR_SCENE, "psf 'PIXEL': missing keyword 'kernel'"},
  {"{" GRID ", \"lens\": [{\"type\": \"SIS\", \"theta_E\": 1}], \"multi_plane\": {\"lens_redshifts\": [0.5]}}", LENSSIM_ERR_SCENE, "multi_plane: missing keyword 'z_source'"},
  /* out of range */
  {"{" GRID ", \"lens\": [{\"type\": \"SIS\", \"theta_E\": -1}]}", LENSSIM_ERR_RANGE, "lens[0] 'SIS': theta_E = -1 is out of range (must be >= 0 and <= 1000)"},
  {"{" GRID ", \"lens\": [{\"type\": \"SIE\", \"theta_E\": 1, \"e1\": 0.8, \"e2\": 0.8}]}", LENSSIM_ERR_RANGE, "lens[0] 'SIE': sqrt(e1^2 + e2^2) = 1.13137 must be below 1"},
  {"{" GRID ", \"lens\": [{\"type\": \"EPL\", \"theta_E\": 1, \"gamma\": 1, \"e1\": 0, \"e2\": 0}]}", LENSSIM_ERR_RANGE, "gamma = 1 is out of range (must be > 1 and <= 2.9)"},
  {"{" GRID ", \"lens\": [{\"type\": \"SHEAR\", \"gamma1\": 0, \"gamma2\": 0, \"ra_0\": 1e5}]}", LENSSIM_ERR_RANGE, "lens[0] 'SHEAR': ra_0 = 100000 is out of range"},
  {"{" GRID ", \"lens\": [{\"type\": \"SIS\", \"theta_E\": 1e999}]}", LENSSIM_ERR_RANGE, "theta_E = inf is out of range"},
  {"{\"grid\": {\"num_pix\": 10.5, \"pixel_scale\": 0.1}}", LENSSIM_ERR_RANGE, "grid: num_pix = 10.5 is out of range (a whole number 1..8192)"},
  {"{\"grid\": {\"num_pix\": 1e12, \"pixel_scale\": 0.1}}", LENSSIM_ERR_RANGE, "grid: num_pix = 1e+12 is out of range"},
  {"{\"grid\": {\"num_pix\": 10, \"pixel_scale\": 0.1, \"supersampling\": 0}}", LENSSIM_ERR_RANGE, "grid: supersampling = 0 is out of range (a whole number 1..32)"},
  {"{" GRID ", \"cosmology\": {\"H0\": 0}}", LENSSIM_ERR_RANGE, "cosmology: H0 = 0 is out of range (must be > 0 and < 1000)"},
  {"{" GRID ", \"psf\": {\"type\": \"MOFFAT\", \"fwhm\": 0.5, \"beta\": -2}}", LENSSIM_ERR_RANGE, "psf 'MOFFAT': beta = -2 is out of range"},
  {"{" GRID ", \"source_light\": [{\"type\": \"CLUMPY\", \"amp\": 1, \"R_sersic\": 0, \"n_sersic\": 1, \"e1\": 0, \"e2\": 0}]}", LENSSIM_ERR_RANGE, "source_light[0] 'CLUMPY': R_sersic = 0 is out of range"},
  {"{" GRID ", \"source_light\": [{\"type\": \"CLUMPY\", \"amp\": 1, \"R_sersic\": 1, \"n_sersic\": 1, \"e1\": 0, \"e2\": 0, \"seed\": 1.5}]}", LENSSIM_ERR_RANGE, "seed = 1.5 is out of range (a whole number"},
  {"{" GRID ", \"lens\": [{\"type\": \"SIS\", \"theta_E\": 1}], \"multi_plane\": {\"lens_redshifts\": [-1], \"z_source\": 2}}", LENSSIM_ERR_RANGE, "multi_plane: lens_redshifts[0] = -1 is out of range (must be > 0 and < 1100)"},
  {"{" GRID ", \"lens\": [{\"type\": \"SIS\", \"theta_E\": 1}], \"multi_plane\": {\"lens_redshifts\": [2.5], \"z_source\": 2}}", LENSSIM_ERR_RANGE, "lens[0] 'SIS': redshift 2.5 must be above 0 and below z_source_convention 2"},
  {"{\"grid\": {\"num_pix\": 1, \"pixel_scale\": 0.1}, \"psf\": {\"type\": \"PIXEL\", \"kernel\": [[0,0,0,0,0],[0,0,0,0,0],[0,0,1,0,0],[0,0,0,0,0],[0,0,0,0,0]]}}", LENSSIM_ERR_ARG, "no larger than 2 num_pix + 1"},
  /* wrong types */
  {"{" GRID ", \"lens\": [{\"type\": \"SIS\", \"theta_E\": \"big\"}]}", LENSSIM_ERR_SCENE, "lens[0] 'SIS': keyword 'theta_E' must be a number (got a string)"},
  {"{" GRID ", \"lens\": [{\"type\": 3}]}", LENSSIM_ERR_SCENE, "lens[0]: keyword 'type' must be a string (got a number)"},
  {"{" GRID ", \"lens\": {\"type\": \"SIS\"}}", LENSSIM_ERR_SCENE, "scene: keyword 'lens' must be an array of lens model entries (got an object)"},
  {"{" GRID ", \"lens\": [[1]]}", LENSSIM_ERR_SCENE, "lens[0] must be an object (got an array)"},
  {"{" GRID ", \"psf\": {\"type\": \"PIXEL\", \"kernel\": [[1, 2], [3, 4]]}}", LENSSIM_ERR_SCENE, "odd side"},
  {"{" GRID ", \"psf\": {\"type\": \"PIXEL\", \"kernel\": [[0, 1, 0], [1, 1], [0, 1, 0]]}}", LENSSIM_ERR_SCENE, "kernel row 1 must hold 3 numbers"},
  {"{" GRID ", \"psf\": {\"type\": \"PIXEL\", \"kernel\": [1, 2, 3]}}", LENSSIM_ERR_SCENE, "kernel' must be an array of rows of numbers (got a number)"},
  {"{" GRID ", \"lens\": [{\"type\": \"SIS\", \"theta_E\": 1}], \"multi_plane\": {\"lens_redshifts\": 0.5, \"z_source\": 2}}", LENSSIM_ERR_SCENE, "multi_plane: keyword 'lens_redshifts' must be an array of numbers (got a number)"},
  {"{" GRID ", \"lens\": [{\"type\": \"SIS\", \"theta_E\": 1}], \"multi_plane\": {\"lens_redshifts\": [0.5, 0.6], \"z_source\": 2}}", LENSSIM_ERR_SCENE, "multi_plane: 'lens_redshifts' has 2 redshifts but there are 1 lens entries"},
  {"{" GRID ", \"source_light\": [{\"type\": \"GAUSSIAN\", \"amp\": 1, \"sigma\": 1}], \"multi_plane\": {\"lens_redshifts\": [], \"z_source\": 2, \"source_redshifts\": [1, 2]}}", LENSSIM_ERR_SCENE, "'source_redshifts' has 2 redshifts but there are 1 source_light entries"},
};

static void test_bad_scenes(void) {
  size_t i;
  for (i = 0; i < sizeof bad_scenes / sizeof bad_scenes[0]; i++) {
    lenssim_json_scene sc;
    lenssim_error err;
    lenssim_result r = load(bad_scenes[i].json, strlen(bad_scenes[i].json), &sc, &err);
    CHECK(r == bad_scenes[i].result && strstr(err.message, bad_scenes[i].message) != NULL,
          "bad scene %lu: expected %s \"%s\", got %s \"%s\"", (unsigned long)i, lenssim_result_string(bad_scenes[i].result),
          bad_scenes[i].message, lenssim_result_string(r), err.message);
    CHECK(sc.psf_kernel == NULL, "bad scene %lu: a failed load holds nothing", (unsigned long)i);
    lenssim_json_scene_free(&sc);
  }
}

/* ---- huge inputs ---------------------------------------------------------------------------- */
/* text = head + `count` copies of item (joined by sep) + tail */
static char *repeat(const char *head, const char *item, const char *sep, size_t count, const char *tail, size_t *len) {
  size_t h = strlen(head), n = strlen(item), s = strlen(sep), t = strlen(tail), i, at = 0;
  char *text = (char *)malloc(h + count * (n + s) + t + 1);
  if (!text) return NULL;
  memcpy(text, head, h); at = h;
  for (i = 0; i < count; i++) {
    if (i) { memcpy(text + at, sep, s); at += s; }
    memcpy(text + at, item, n); at += n;
  }
  memcpy(text + at, tail, t); at += t;
  text[at] = 0;
  *len = at;
  return text;
}

static void expect_huge(const char *head, const char *item, const char *sep, size_t count, const char *tail,
                        lenssim_result result, const char *message) {
  size_t len = 0;
  char *text = repeat(head, item, sep, count, tail, &len);
  lenssim_json_scene sc;
  lenssim_error err;
  lenssim_result r;
  if (!text) { CHECK(0, "out of memory"); return; }
  r = load(text, len, &sc, &err);
  CHECK(r == result && strstr(err.message, message), "%lu x '%s': expected \"%s\", got %s \"%s\"", (unsigned long)count,
        item, message, lenssim_result_string(r), err.message);
  lenssim_json_scene_free(&sc);
  free(text);
}

static void test_huge_inputs(void) {
  expect_huge("{" GRID ", \"lens\": [", "{\"type\": \"SIS\", \"theta_E\": 1}", ", ", 100000, "]}", LENSSIM_ERR_TOO_LARGE,
              "lens[64]: at most 64 lens entries");
  expect_huge("{" GRID ", \"source_light\": [", "{\"type\": \"CLUMPY\", \"amp\": 1, \"R_sersic\": 1, \"n_sersic\": 1, \"e1\": 0, \"e2\": 0}",
              ", ", 20, "]}", LENSSIM_ERR_TOO_LARGE, "source_light[10] 'CLUMPY': too many profiles in 'source_light' (at most 64)");
  expect_huge("{" GRID ", \"lens\": [{\"type\": \"SIS\", \"theta_E\": ", "[", "", 200000, "", LENSSIM_ERR_SYNTAX, "nested deeper than 64 levels");
  expect_huge("{" GRID ", \"kind\": ", "[", "", 200000, "", LENSSIM_ERR_SYNTAX, "line 1, column 118: nested deeper than 64 levels");
  expect_huge("", "{\"grid\": ", "", 200000, "", LENSSIM_ERR_SYNTAX, "nested deeper than 64 levels");
  expect_huge("{" GRID ", \"kind\": ", "[", "", 60, "", LENSSIM_ERR_SYNTAX, "expected a value");
  expect_huge("{" GRID ", \"kind\": ", "[", "", 60, "1", LENSSIM_ERR_SYNTAX, "expected ',' or ']'");
  expect_huge("{" GRID ", \"psf\": {\"type\": \"PIXEL\", \"kernel\": [[", "0", ", ", 1003, "]]}}", LENSSIM_ERR_SCENE,
              "got 1 rows of 1003");
  expect_huge("{" GRID ", \"psf\": {\"type\": \"PIXEL\", \"kernel\": [", "[1]", ", ", 5000, "]}}", LENSSIM_ERR_SCENE,
              "square array of rows with an odd side");
  expect_huge("{" GRID ", \"multi_plane\": {\"z_source\": 2, \"lens_redshifts\": [", "0.5", ", ", 100000, "]}}", LENSSIM_ERR_SCENE,
              "'lens_redshifts' has 100000 redshifts but there are 0 lens entries");
  expect_huge("{" GRID ", \"kind\": \"", "x", "", 100000, "\"}", LENSSIM_OK, "");
  expect_huge("{" GRID ", \"lens\": [{\"type\": \"SIS\", \"theta_E\": 1", "0", "", 200, "}]}", LENSSIM_ERR_SYNTAX,
              "number longer than 127 characters");
  expect_huge("{" GRID ", \"lens\": [{\"type\": \"SIS\", \"", "theta_E", "", 50, "\": 1}]}", LENSSIM_ERR_SCENE, "unknown keyword 'theta_Etheta_E");
}

/* ---- every cut of a valid scene is refused, with the place -------------------------------- */
static const char *corpus_scene =
  "{\"grid\": {\"num_pix\": 12, \"pixel_scale\": 0.1},\n"
  " \"lens\": [{\"type\": \"EPL\", \"theta_E\": 1, \"gamma\": 2.1, \"e1\": 0, \"e2\": 0.1}, {\"type\": \"NFW\", \"Rs\": 1, \"alpha_Rs\": 0.2},\n"
  "          {\"type\": \"SIS\", \"theta_E\": 0.3, \"center_x\": 0.2}],\n"
  " \"source_light\": [{\"type\": \"CLUMPY\", \"amp\": 5, \"R_sersic\": 0.2, \"n_sersic\": 1, \"e1\": 0, \"e2\": 0, \"num_clumps\": 3, \"seed\": 7},\n"
  "                  {\"type\": \"GAUSSIAN_ELLIPSE\", \"amp\": 3, \"sigma\": 0.1, \"e1\": 0.2, \"e2\": 0}],\n"
  " \"psf\": {\"type\": \"PIXEL\", \"kernel\": [[0, 1, 0], [1, 4, 1], [0, 1, 0]]},\n"
  " \"cosmology\": {\"H0\": 67.7, \"Om0\": 0.31},\n"
  " \"multi_plane\": {\"lens_redshifts\": [0.5, 0.5, 1.2], \"z_source\": 2.5, \"z_source_convention\": 2.5, \"source_redshifts\": [1.5, 2.5]},\n"
  " \"kind\": \"compound \\u0041rc\"}\n";

static void test_truncations(void) {
  size_t len = strlen(corpus_scene), cut;
  int all_syntax = 1;
  lenssim_json_scene sc;
  lenssim_error err;
  CHECK(load(corpus_scene, len, &sc, &err) == LENSSIM_OK, "the scene loads: %s", err.message);
  lenssim_json_scene_free(&sc);
  for (cut = 0; cut + 1 < len; cut++) {
    lenssim_result r = load(corpus_scene, cut, &sc, &err);
    if (r != LENSSIM_ERR_SYNTAX || strncmp(err.message, "line ", 5) != 0) {
      if (all_syntax) CHECK(0, "cut at %lu: %s \"%s\"", (unsigned long)cut, lenssim_result_string(r), err.message);
      all_syntax = 0;
    }
    lenssim_json_scene_free(&sc);
  }
  CHECK(all_syntax, "every cut is a syntax error with its line and column");
  load(corpus_scene, 60, &sc, &err);
  CHECK(strstr(err.message, "line 2, column 15: unterminated string") != NULL, "cut in line 2: %s", err.message);
}

/* ---- keywords land in their fields ---------------------------------------------------------- */
static void test_fields(void) {
  lenssim_json_scene sc;
  lenssim_error err;
  size_t k;
  int z_ok = 1;
  if (load(corpus_scene, strlen(corpus_scene), &sc, &err) != LENSSIM_OK) { CHECK(0, "%s", err.message); return; }
  CHECK(sc.scene.grid.num_pix == 12 && sc.scene.grid.pixel_scale == 0.1 && sc.scene.grid.supersampling == 0, "grid");
  CHECK(sc.scene.lens.num_lenses == 3 && sc.scene.lens.lenses == sc.lenses, "lens count");
  CHECK(sc.lenses[0].kind == LENSSIM_MASS_EPL && sc.lenses[0].theta_E == 1 && sc.lenses[0].gamma == 2.1 &&
        sc.lenses[0].e1 == 0 && sc.lenses[0].e2 == 0.1 && sc.lenses[0].redshift == 0.5, "EPL");
  CHECK(sc.lenses[1].kind == LENSSIM_MASS_NFW && sc.lenses[1].Rs == 1 && sc.lenses[1].alpha_Rs == 0.2, "NFW");
  CHECK(sc.lenses[2].kind == LENSSIM_MASS_SIS && sc.lenses[2].center_x == 0.2 && sc.lenses[2].redshift == 1.2, "SIS");
  /* CLUMPY with 3 clumps: a disc and 3 Gaussians at the first source redshift, then the Gaussian */
  CHECK(sc.scene.num_source_light == 5 && sc.source_light[0].kind == LENSSIM_LIGHT_SERSIC_ELLIPSE &&
        sc.source_light[4].kind == LENSSIM_LIGHT_GAUSSIAN_ELLIPSE && sc.source_light[4].sigma == 0.1, "sources");
  for (k = 0; k < 5; k++) z_ok &= sc.source_light[k].redshift == (k < 4 ? 1.5 : 2.5);
  CHECK(z_ok, "source_redshifts follow the entries, CLUMPY counted once");
  CHECK(sc.scene.psf.kind == LENSSIM_PSF_PIXEL && sc.scene.psf.kernel_size == 3 && sc.scene.psf.kernel[4] == 4 &&
        sc.scene.psf.kernel[3] == 1 && sc.has_psf, "PIXEL kernel");
  CHECK(sc.scene.lens.multi_plane && sc.scene.lens.z_source == 2.5 && sc.scene.lens.cosmology.H0 == 67.7 &&
        sc.scene.lens.cosmology.Om0 == 0.31, "multi_plane and cosmology");
  CHECK(!strcmp(sc.kind, "compound Arc"), "kind: %s", sc.kind);
  lenssim_json_scene_free(&sc);
  lenssim_json_scene_free(&sc); /* twice is harmless */
  {
    const char *shear = "{" GRID ", \"lens\": [{\"type\": \"SHEAR\", \"gamma1\": 0.1, \"gamma2\": -0.2, \"ra_0\": 0.3, \"dec_0\": 0.4},"
                        " {\"type\": \"LINE_MASS\", \"line_density\": 0.1, \"length\": 2, \"angle\": 0.5}],"
                        " \"psf\": {\"type\": \"MOFFAT\", \"fwhm\": 0.7}}";
    CHECK(load(shear, strlen(shear), &sc, &err) == LENSSIM_OK && sc.lenses[0].center_x == 0.3 && sc.lenses[0].center_y == 0.4 &&
          sc.lenses[0].gamma2 == -0.2 && sc.lenses[1].length == 2 && sc.lenses[1].angle == 0.5 &&
          sc.scene.psf.kind == LENSSIM_PSF_MOFFAT && sc.scene.psf.moffat_beta == 0, "SHEAR ra_0/dec_0, LINE_MASS, MOFFAT: %s",
          err.message);
    lenssim_json_scene_free(&sc);
  }
}

/* ---- scenes built in C meet the same checks ------------------------------------------------- */
static void test_c_scenes(void) {
  lenssim_mass lenses[2];
  lenssim_light source;
  lenssim_scene scene;
  lenssim_error err;
  double kernel[9] = {0, 1, 0, 1, 4, 1, 0, 1, 0};
  memset(lenses, 0, sizeof lenses);
  memset(&source, 0, sizeof source);
  memset(&scene, 0, sizeof scene);
  scene.grid.num_pix = 10;
  scene.grid.pixel_scale = 0.1;
  lenses[0].kind = LENSSIM_MASS_SIE;
  lenses[0].theta_E = 1;
  lenses[1].kind = LENSSIM_MASS_SHEAR;
  source.kind = LENSSIM_LIGHT_SERSIC;
  source.amp = 1; source.R_sersic = 0.3; source.n_sersic = 1;
  scene.lens.lenses = lenses;
  scene.lens.num_lenses = 2;
  scene.source_light = &source;
  scene.num_source_light = 1;
#define EXPECT(result, text) do { \
    err.message[0] = 0; \
    CHECK(lenssim_scene_check(&scene, &err) == (result) && strstr(err.message, text), "expected \"%s\", got \"%s\"", \
          text, err.message); \
  } while (0)
  EXPECT(LENSSIM_OK, "");
  lenses[0].e1 = 1.5;
  EXPECT(LENSSIM_ERR_RANGE, "lens[0] 'SIE': e1 = 1.5 is out of range (must be >= -1 and <= 1)");
  lenses[0].e1 = 0.8; lenses[0].e2 = 0.8;
  EXPECT(LENSSIM_ERR_RANGE, "lens[0] 'SIE': sqrt(e1^2 + e2^2)");
  lenses[0].e1 = lenses[0].e2 = 0;
  lenses[1].center_x = 2e4;
  EXPECT(LENSSIM_ERR_RANGE, "lens[1] 'SHEAR': ra_0 = 20000 is out of range");
  lenses[1].center_x = 0;
  source.n_sersic = 0;
  EXPECT(LENSSIM_ERR_RANGE, "source_light[0] 'SERSIC': n_sersic = 0 is out of range (must be > 0 and <= 20)");
  source.n_sersic = 1;
  source.redshift = -1;
  EXPECT(LENSSIM_ERR_RANGE, "source_light[0] 'SERSIC': redshift = -1 is out of range");
  source.redshift = 0;
  scene.grid.supersampling = 33;
  EXPECT(LENSSIM_ERR_RANGE, "grid: supersampling = 33 is out of range (a whole number 1..32)");
  scene.grid.supersampling = 0;
  scene.grid.num_pix = 0;
  EXPECT(LENSSIM_ERR_RANGE, "grid: num_pix = 0 is out of range");
  scene.grid.num_pix = 10;
  scene.psf.kind = LENSSIM_PSF_GAUSSIAN;
  EXPECT(LENSSIM_ERR_RANGE, "psf 'GAUSSIAN': fwhm = 0 is out of range");
  scene.psf.kind = LENSSIM_PSF_MOFFAT;
  scene.psf.fwhm = 0.3;
  EXPECT(LENSSIM_OK, ""); /* beta 0 means 3.5 */
  scene.psf.moffat_beta = -1;
  EXPECT(LENSSIM_ERR_RANGE, "psf 'MOFFAT': beta = -1 is out of range");
  scene.psf.kind = (lenssim_psf_kind)9;
  EXPECT(LENSSIM_ERR_UNKNOWN, "psf: unknown kind 9");
  scene.psf.kind = LENSSIM_PSF_PIXEL;
  scene.psf.kernel = kernel;
  scene.psf.kernel_size = 3;
  EXPECT(LENSSIM_OK, "");
  scene.lens.multi_plane = 1;
  EXPECT(LENSSIM_ERR_RANGE, "multi_plane: z_source = 0 is out of range (must be > 0 and < 1100)");
  scene.lens.z_source = 2;
  lenses[0].redshift = lenses[1].redshift = 0.5;
  EXPECT(LENSSIM_OK, "");
  scene.lens.cosmology.Om0 = 1.5;
  EXPECT(LENSSIM_ERR_RANGE, "cosmology: Om0 = 1.5 is out of range (must be > 0 and <= 1)");
  scene.lens.cosmology.Om0 = 0;
  scene.lens.z_source_convention = 0.4;
  EXPECT(LENSSIM_ERR_RANGE, "lens[0] 'SIE': redshift 0.5 must be above 0 and below z_source_convention 0.4");
#undef EXPECT
}

/* The same bad value, in JSON and in C, gives the same message. */
static void test_json_and_c_agree(void) {
  const char *json = "{" GRID ", \"lens_light\": [{\"type\": \"GAUSSIAN_ELLIPSE\", \"amp\": 1, \"sigma\": -0.5, \"e1\": 0, \"e2\": 0}]}";
  lenssim_json_scene sc;
  lenssim_error from_json, from_c;
  lenssim_light l;
  memset(&l, 0, sizeof l);
  l.kind = LENSSIM_LIGHT_GAUSSIAN_ELLIPSE;
  l.amp = 1;
  l.sigma = -0.5;
  load(json, strlen(json), &sc, &from_json);
  lenssim_light_check(&l, "lens_light[0]", &from_c);
  CHECK(!strcmp(from_json.message, from_c.message), "JSON \"%s\", C \"%s\"", from_json.message, from_c.message);
}

/* ---- lenssim_render_json: the recipe `lens render` runs ----------------------------------- */
static void test_render_json(void) {
  static const char *json = "{" GRID ", \"lens\": [{\"type\": \"SIE\", \"theta_E\": 0.3, \"e1\": 0.1, \"e2\": 0, "
                            "\"center_x\": 0, \"center_y\": 0}], \"source_light\": [{\"type\": \"SERSIC\", \"amp\": 20, "
                            "\"R_sersic\": 0.1, \"n_sersic\": 1, \"center_x\": 0.02, \"center_y\": 0}]}";
  const lenssim_band *vis = lenssim_band_find("VIS");
  float img[100], noisy[100], again[100], other[100];
  double want[100];
  lenssim_json_scene sc;
  lenssim_noise noise;
  lenssim_rng rng;
  lenssim_error err;
  size_t side = 0, k, same = 0, untouched = 1;
  int exact = 1;
  CHECK(lenssim_render_json(json, strlen(json), NULL, 0, 0, NULL, 0, &side, &err) == LENSSIM_OK && side == 10,
        "image NULL: the scene is read and its size given (%lu)", (unsigned long)side);
  for (k = 0; k < 100; k++) img[k] = -7.0f;
  CHECK(lenssim_render_json(json, strlen(json), NULL, 0, 0, img, 99, &side, &err) == LENSSIM_ERR_RANGE &&
            strstr(err.message, "holds 99 floats") != NULL, "an image too small is refused: %s", err.message);
  for (k = 0; k < 100; k++) untouched &= img[k] == -7.0f;
  CHECK(untouched, "and nothing is written");
  CHECK(lenssim_render_json("{\"grid\": 3}", 11, NULL, 0, 0, img, 100, &side, &err) != LENSSIM_OK && err.message[0],
        "a bad scene gives the reader's message: %s", err.message);
  /* noise-free: what lenssim_scene_from_json + lenssim_render give, as float */
  CHECK(lenssim_render_json(json, strlen(json), NULL, 0, 0, img, 100, &side, &err) == LENSSIM_OK, "renders: %s", err.message);
  CHECK(load(json, strlen(json), &sc, &err) == LENSSIM_OK && lenssim_render(&sc.scene, want, NULL, 0, &err) == LENSSIM_OK, "reference");
  for (k = 0; k < 100; k++) exact &= img[k] == (float)want[k];
  CHECK(exact, "noise-free pixels are the scene's render");
  lenssim_json_scene_free(&sc);
  /* through VIS with seed 5: the band's PSF and noise, from a generator seeded with 5 */
  CHECK(vis != NULL, "the VIS band exists");
  if (!vis) return;
  CHECK(lenssim_render_json(json, strlen(json), vis, 5, 0, noisy, 100, &side, &err) == LENSSIM_OK &&
            lenssim_render_json(json, strlen(json), vis, 5, 0, again, 100, &side, &err) == LENSSIM_OK &&
            lenssim_render_json(json, strlen(json), vis, 6, 0, other, 100, &side, &err) == LENSSIM_OK, "renders through VIS");
  CHECK(!memcmp(noisy, again, sizeof noisy), "the same seed, the same image");
  for (k = 0; k < 100; k++) same += noisy[k] == other[k];
  CHECK(same < 50, "another seed, other noise (%lu of 100 pixels equal)", (unsigned long)same);
  CHECK(load(json, strlen(json), &sc, &err) == LENSSIM_OK && lenssim_band_observe(vis, &sc.scene, sc.has_psf, &noise, &err) == LENSSIM_OK &&
            lenssim_render(&sc.scene, want, NULL, 0, &err) == LENSSIM_OK, "reference through VIS");
  lenssim_rng_seed(&rng, 5);
  lenssim_add_noise(&noise, want, 100, &rng);
  exact = 1;
  for (k = 0; k < 100; k++) exact &= noisy[k] == (float)want[k];
  CHECK(exact, "through VIS: lenssim_band_observe, lenssim_render, lenssim_add_noise with the seed");
  lenssim_json_scene_free(&sc);
}

int main(void) {
  TEST("bad scenes give the named error") test_bad_scenes();
  TEST("huge arrays, strings, numbers and nesting are refused with a message") test_huge_inputs();
  TEST("every cut of a scene is a syntax error with its line and column") test_truncations();
  TEST("keywords land in their fields") test_fields();
  TEST("scenes built in C: lenssim_scene_check") test_c_scenes();
  TEST("JSON and C scenes meet the same checks") test_json_and_c_agree();
  TEST("lenssim_render_json: a scene to an image, noise-free or through a band") test_render_json();
  return check_summary();
}
