/* test_formats.c - the file formats lensnet.h reads and writes, byte by byte: FITS (reader and
 * writer), .npy (reader, whole-array writer and the streaming atomic writer), safetensors and
 * CSV tables (lensnet_csv_read), with the robustness of their parsers (tests/fuzz/ fuzzes each
 * reader; docs/hardening.md).
 *
 * Expected values come from tests/data/fits/MANIFEST.json (what astropy reads from the
 * same files) or from bytes built by hand in this file, never from the code under test. */
#define _POSIX_C_SOURCE 200809L /* opendir, symlink */
#include <stdlib.h>
/* Every allocation of the library goes through here, so a test can say how large the largest
 * single request was: a hostile header must be refused before its claimed size is allocated. */
static size_t largest_request;
static void *counted_malloc(size_t n) {
  if (n > largest_request) largest_request = n;
  return malloc(n);
}
static void *counted_realloc(void *p, size_t n) {
  if (n > largest_request) largest_request = n;
  return realloc(p, n);
}
#define LENSNET_MALLOC(n) counted_malloc(n)
#define LENSNET_REALLOC(p, n) counted_realloc(p, n)
#define LENSNET_FREE(p) free(p)
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"
#include <string.h>
#include <stdint.h>
#include <dirent.h>
#include <unistd.h>
#include <sys/stat.h> /* mkfifo */

/* ---- helpers ---------------------------------------------------------------------------- */

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf;
  long n;
  *len = 0;
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return NULL; }
  buf = (unsigned char *)malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
  fclose(f);
  if (buf) *len = (size_t)n;
  return buf;
}

/* An exact-size copy, so the sanitizer sees any read past the end. */
static unsigned char *copy_bytes(const unsigned char *b, size_t n) {
  unsigned char *c = (unsigned char *)malloc(n ? n : 1);
  if (c && n) memcpy(c, b, n);
  return c;
}

static int close_rel(double got, double want, double rel) {
  double scale = fabs(want) > 1e-300 ? fabs(want) : 1e-300;
  return fabs(got - want) <= rel * scale;
}

typedef struct { double sum, min, max; size_t nan_count, inf_count; } stats;

static stats tensor_stats(const lensnet_tensor *t) {
  stats s;
  size_t i, n = lensnet_tensor_count(t);
  s.sum = 0; s.min = INFINITY; s.max = -INFINITY; s.nan_count = 0; s.inf_count = 0;
  for (i = 0; i < n; i++) {
    double v = t->data[i];
    if (isnan(v)) { s.nan_count++; continue; }
    if (isinf(v)) s.inf_count++;
    s.sum += v;
    if (v < s.min) s.min = v;
    if (v > s.max) s.max = v;
  }
  return s;
}

/* A deterministic generator for the mutation loops (xorshift64*). */
static uint64_t rng_next(uint64_t *s) {
  *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

/* A result the parsers may return for bad input, with a message naming the problem. */
static int clean_error(lensnet_result r, const lensnet_error *e) {
  return r > LENSNET_OK && r < LENSNET_RESULT_COUNT && e->result == r && e->message[0] != 0;
}

/* ---- building FITS bytes by hand ---------------------------------------------------------- */

typedef struct { unsigned char *b; size_t len, cap; } buf;

static void buf_put(buf *f, const void *p, size_t n) {
  if (f->len + n > f->cap) {
    f->cap = (f->len + n) * 2 + 2880;
    f->b = (unsigned char *)realloc(f->b, f->cap);
    if (!f->b) { printf("out of memory\n"); exit(2); }
  }
  memcpy(f->b + f->len, p, n);
  f->len += n;
}

/* One 80-column card from text, blank-padded (text longer than 80 is cut). */
static void card(buf *f, const char *text) {
  char c[80];
  size_t n = strlen(text);
  memset(c, ' ', 80);
  memcpy(c, text, n < 80 ? n : 80);
  buf_put(f, c, 80);
}

/* END, then blanks to the end of the 2880-byte block. */
static void end_header(buf *f) {
  card(f, "END");
  while (f->len % 2880) card(f, "");
}

static void pad_data(buf *f) {
  static const unsigned char zero[1] = {0};
  while (f->len % 2880) buf_put(f, zero, 1);
}

static void put_be(buf *f, uint64_t v, int nbytes) {
  unsigned char b[8];
  int i;
  for (i = 0; i < nbytes; i++) b[i] = (unsigned char)(v >> (8 * (nbytes - 1 - i)));
  buf_put(f, b, (size_t)nbytes);
}

static void put_f32(buf *f, float v) { uint32_t u; memcpy(&u, &v, 4); put_be(f, u, 4); }
static void put_f64(buf *f, double v) { uint64_t u; memcpy(&u, &v, 8); put_be(f, u, 8); }

static lensnet_result read_buf(const buf *f, int hdu, lensnet_tensor *t, lensnet_error *e) {
  unsigned char *c = copy_bytes(f->b, f->len);
  lensnet_result r = lensnet_fits_read_memory(c, f->len, hdu, t, e);
  free(c);
  return r;
}

/* A primary header with the given BITPIX and a 2-D shape (NAXIS1 = nx, NAXIS2 = ny). */
static void primary_2d(buf *f, int bitpix, int nx, int ny) {
  char line[81];
  card(f, "SIMPLE  =                    T");
  snprintf(line, sizeof line, "BITPIX  = %20d", bitpix); card(f, line);
  card(f, "NAXIS   =                    2");
  snprintf(line, sizeof line, "NAXIS1  = %20d", nx); card(f, line);
  snprintf(line, sizeof line, "NAXIS2  = %20d", ny); card(f, line);
}

/* ---- the files of astropy's test suite, as MANIFEST.json describes them -------------------- */

static double json_num(const lensnet_json *o, const char *key, int *is_null) {
  const lensnet_json *v = lensnet_json_get(o, key);
  *is_null = !v || v->type != LENSNET_JSON_NUMBER;
  return *is_null ? 0.0 : v->number;
}

static void check_manifest_hdu(const char *path, const char *name, const lensnet_json *hd, int *images) {
  int index = (int)lensnet_json_get(hd, "index")->number, is_null, i;
  const char *type = lensnet_json_get(hd, "type")->string;
  const lensnet_json *shape = lensnet_json_get(hd, "shape_numpy_order");
  int naxis = (int)json_num(hd, "NAXIS", &is_null);
  lensnet_tensor t;
  lensnet_error e;
  lensnet_result r;
  char value[96];

  /* The header as astropy sees it. */
  r = lensnet_fits_header_value(path, index, "BITPIX", value, sizeof value, &e);
  if (strcmp(type, "CompImageHDU") != 0) /* astropy reports the compressed image's ZBITPIX */
    CHECK(r == LENSNET_OK && atoi(value) == (int)json_num(hd, "BITPIX", &is_null), "%s HDU %d: BITPIX %s", name, index, value);
  {
    static const char *scaling[] = {"BSCALE", "BZERO", "BLANK"};
    for (i = 0; i < 3; i++) {
      double want = json_num(hd, scaling[i], &is_null);
      if (is_null) continue;
      r = lensnet_fits_header_value(path, index, scaling[i], value, sizeof value, &e);
      CHECK(r == LENSNET_OK && strtod(value, NULL) == want, "%s HDU %d: %s = %s, manifest %g", name, index, scaling[i], value, want);
    }
  }

  if (strcmp(type, "CompImageHDU") == 0) {
    r = lensnet_fits_header_value(path, index, "ZBITPIX", value, sizeof value, &e);
    CHECK(r == LENSNET_OK && atoi(value) == (int)json_num(hd, "BITPIX", &is_null), "%s HDU %d: ZBITPIX %s", name, index, value);
  }
  r = lensnet_fits_read(path, index, &t, &e);
  if (strcmp(type, "CompImageHDU") == 0 && !shape) {
    /* astropy's entry gives no pixels to compare with; test_compressed compares them with
     * funpack's. ZNAXIS is NAXIS as astropy reports it. */
    CHECK(r == LENSNET_OK && t.ndim == naxis, "%s HDU %d: the compressed image must be read: %s", name, index, r ? e.message : "");
    lensnet_tensor_free(&t);
    return;
  }
  if (naxis == 0 || !shape) {
    CHECK(r == LENSNET_ERR_ARG && strstr(e.message, "no data") && strstr(e.message, name),
          "%s HDU %d (no data): want a clear error, got %d: %s", name, index, r, r ? e.message : "");
    lensnet_tensor_free(&t);
    return;
  }
  CHECK(r == LENSNET_OK, "%s HDU %d: %s", name, index, e.message);
  if (r != LENSNET_OK) return;
  (*images)++;
  CHECK(t.ndim == (int)shape->count, "%s HDU %d: ndim %d, manifest %d", name, index, t.ndim, (int)shape->count);
  for (i = 0; i < t.ndim && i < (int)shape->count; i++)
    CHECK(t.shape[i] == (size_t)shape->items[i].number, "%s HDU %d: axis %d is %lu, manifest %g", name, index, i,
          (unsigned long)t.shape[i], shape->items[i].number);
  {
    stats s = tensor_stats(&t);
    size_t n = lensnet_tensor_count(&t);
    double want_min = json_num(hd, "min", &is_null), want;
    /* 1e-6 relative: the values are float32, scaled from integers in double precision. */
    CHECK(close_rel(s.sum, json_num(hd, "sum", &is_null), 1e-6), "%s HDU %d: sum %.17g, manifest %.17g", name, index, s.sum, json_num(hd, "sum", &is_null));
    if (is_null) return;
    if (lensnet_json_get(hd, "min")->type == LENSNET_JSON_NULL) {
      /* astropy's min over nothing but undefined pixels */
      CHECK(s.nan_count == n, "%s HDU %d: all %lu pixels must be NaN, %lu are", name, index, (unsigned long)n, (unsigned long)s.nan_count);
      CHECK(isnan(t.data[0]) && isnan(t.data[n - 1]), "%s HDU %d: first/last must be NaN", name, index);
    } else {
      CHECK(close_rel(s.min, want_min, 1e-6), "%s HDU %d: min %.9g, manifest %.9g", name, index, s.min, want_min);
      want = json_num(hd, "max", &is_null);
      CHECK(close_rel(s.max, want, 1e-6), "%s HDU %d: max %.9g, manifest %.9g", name, index, s.max, want);
      want = json_num(hd, "first", &is_null);
      CHECK(close_rel(t.data[0], want, 1e-6), "%s HDU %d: first %.9g, manifest %.9g", name, index, t.data[0], want);
      want = json_num(hd, "last", &is_null);
      CHECK(close_rel(t.data[n - 1], want, 1e-6), "%s HDU %d: last %.9g, manifest %.9g", name, index, t.data[n - 1], want);
    }
  }
  lensnet_tensor_free(&t);
}

static void test_manifest(void) {
  char path[1024];
  unsigned char *text;
  size_t len, f, h;
  lensnet_json *doc = NULL;
  lensnet_error e;
  int files = 0, hdus = 0, images = 0, with_shape = 0;
  snprintf(path, sizeof path, "%s/fits/MANIFEST.json", check_data_dir());
  text = slurp(path, &len);
  CHECK(text != NULL, "cannot read %s (tests/data, or set LENS_TEST_DATA)", path);
  if (!text) return;
  CHECK(lensnet_json_parse((const char *)text, len, &doc, &e) == LENSNET_OK, "MANIFEST.json: %s", e.message);
  free(text);
  if (!doc) return;
  for (f = 0; f < doc->count; f++) {
    const lensnet_json *list = &doc->items[f];
    int count = -1;
    snprintf(path, sizeof path, "%s/%s", check_data_dir(), list->key);
    CHECK(lensnet_fits_hdu_count(path, &count, &e) == LENSNET_OK && count == (int)list->count,
          "%s: %d HDUs, manifest lists %d (%s)", list->key, count, (int)list->count, count < 0 ? e.message : "");
    for (h = 0; h < list->count; h++) {
      check_manifest_hdu(path, list->key, &list->items[h], &images);
      if (lensnet_json_get(&list->items[h], "shape_numpy_order")) with_shape++;
    }
    files++;
    hdus += (int)list->count;
  }
  printf("   %d files, %d HDUs, %d images compared with astropy\n", files, hdus, images);
  CHECK(files > 0 && images == with_shape, "%d of the %d images the manifest lists were read", images, with_shape);
  lensnet_json_free(doc);
}

/* HDU -1 picks the first HDU with pixels; reading one that holds none names it. */
static void test_first_image(void) {
  char path[1024];
  lensnet_tensor t;
  lensnet_error e;
  snprintf(path, sizeof path, "%s/fits/o4sp040b0_raw.fits", check_data_dir());
  CHECK(lensnet_fits_read(path, -1, &t, &e) == LENSNET_OK, "%s", e.message);
  /* manifest: HDU 1 is the first with data, 44 x 62, first value 1507 */
  CHECK(t.ndim == 2 && t.shape[0] == 44 && t.shape[1] == 62 && t.data[0] == 1507.0f, "HDU -1 must be HDU 1");
  lensnet_tensor_free(&t);
  CHECK(lensnet_fits_read(path, 7, &t, &e) == LENSNET_ERR_ARG && strstr(e.message, "HDU 7") && strstr(e.message, "7 HDUs"),
        "a missing HDU: %s", e.message);
  CHECK(lensnet_fits_read(path, -2, &t, &e) == LENSNET_ERR_ARG, "HDU -2 must be refused");
  CHECK(lensnet_fits_read("/nonexistent/x.fits", 0, &t, &e) == LENSNET_ERR_IO && strstr(e.message, "/nonexistent/x.fits"), "%s", e.message);
  snprintf(path, sizeof path, "%s/fits/compressed_image.fits", check_data_dir());
  /* the first image is a compressed one (HDU 1; HDU 0 holds no pixels) */
  CHECK(lensnet_fits_read(path, -1, &t, &e) == LENSNET_OK && t.ndim == 2 && t.shape[0] == 10 && t.shape[1] == 10, "HDU -1 must be the compressed HDU 1");
  lensnet_tensor_free(&t);
  CHECK(lensnet_fits_read(path, 2, &t, &e) == LENSNET_ERR_ARG, "a missing HDU");
  CHECK(strncmp(e.message, path, 20) == 0, "errors start with the path: %s", e.message);
}

/* ---- the Strong Lens Finding Challenge 1 cutouts ---------------------------------------- */

typedef struct { int files, bad; double sum_all; } bologna_tally;

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

static float median(float *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_float);
  return n % 2 ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2]);
}

static void check_cutout(const char *path, bologna_tally *tally) {
  lensnet_tensor t;
  lensnet_error e;
  lensnet_result r = lensnet_fits_read(path, -1, &t, &e);
  size_t i, j;
  static float centre[21 * 21], border[101 * 101];
  size_t nc = 0, nb = 0;
  stats s;
  tally->files++;
  CHECK(r == LENSNET_OK, "%s", e.message);
  if (r != LENSNET_OK) { tally->bad++; return; }
  CHECK(t.ndim == 2 && t.shape[0] == 101 && t.shape[1] == 101, "%s: shape must be 101 x 101", path);
  if (t.ndim != 2 || t.shape[0] != 101 || t.shape[1] != 101) { lensnet_tensor_free(&t); tally->bad++; return; }
  s = tensor_stats(&t);
  CHECK(s.nan_count == 0 && s.inf_count == 0, "%s: %lu NaN, %lu inf", path, (unsigned long)s.nan_count, (unsigned long)s.inf_count);
  CHECK(s.max > s.min, "%s: the image is constant", path);
  /* Each cutout is centred on a galaxy: the middle 21 x 21 pixels are brighter than a border
   * 10 pixels wide. Medians, because a few cutouts hold masked pixels set to 100. */
  for (i = 0; i < 101; i++)
    for (j = 0; j < 101; j++) {
      float v = t.data[i * 101 + j];
      if (i >= 40 && i <= 60 && j >= 40 && j <= 60) centre[nc++] = v;
      else if (i < 10 || i > 90 || j < 10 || j > 90) border[nb++] = v;
    }
  {
    float mc = median(centre, nc), mb = median(border, nb);
    CHECK(mc > mb, "%s: centre median %g is not above border median %g", path, mc, mb);
  }
  CHECK(s.max > 0 && s.max <= 100 && s.min > -1, "%s: values %g..%g are implausible", path, s.min, s.max);
  tally->sum_all += fabs(s.sum);
  lensnet_tensor_free(&t);
}

static int walk_cutouts(const char *dir, bologna_tally *tally, int depth) {
  DIR *d = opendir(dir);
  struct dirent *ent;
  int found = 0;
  if (!d) return 0;
  while ((ent = readdir(d)) != NULL) {
    char path[1024];
    size_t n = strlen(ent->d_name);
    if (ent->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
    if (n > 5 && strcmp(ent->d_name + n - 5, ".fits") == 0) { check_cutout(path, tally); found++; }
    else if (depth < 4) found += walk_cutouts(path, tally, depth + 1);
  }
  closedir(d);
  return found;
}

static void test_bologna(void) {
  static const char *folders[] = {
    "space_based/lens", "space_based/nolens",
    "ground_based/lens/Band1", "ground_based/lens/Band2", "ground_based/lens/Band3", "ground_based/lens/Band4",
    "ground_based/nolens/Band1", "ground_based/nolens/Band2", "ground_based/nolens/Band3", "ground_based/nolens/Band4"};
  bologna_tally tally = {0, 0, 0.0};
  char path[1024];
  int i, total = 0;
  for (i = 0; i < (int)(sizeof folders / sizeof folders[0]); i++) {
    int n;
    snprintf(path, sizeof path, "%s/bologna-challenge1/%s", check_data_dir(), folders[i]);
    n = walk_cutouts(path, &tally, 3);
    CHECK(n > 0, "%s holds no cutouts", path);
    total += n;
  }
  printf("   %d cutouts read, %d unreadable\n", tally.files, tally.bad);
  /* the subset in tests/data: 2 + 2 space-based, 3 per ground-based lens band folder, 1 per
   * non-lens band folder */
  CHECK(total == 20, "expected 20 cutouts, found %d", total);
  CHECK(tally.bad == 0 && tally.sum_all > 0, "%d cutouts failed", tally.bad);
}

/* ---- hand-made files: every BITPIX, scaling, BLANK, long headers, extensions --------------- */

static void test_bitpix_and_scaling(void) {
  lensnet_tensor t;
  lensnet_error e;
  buf f = {0, 0, 0};

  /* BITPIX 8: unsigned bytes, BLANK = 255 */
  primary_2d(&f, 8, 3, 1); card(&f, "BLANK   =                  255"); end_header(&f);
  put_be(&f, 0, 1); put_be(&f, 200, 1); put_be(&f, 255, 1); pad_data(&f);
  CHECK(read_buf(&f, 0, &t, &e) == LENSNET_OK && t.data[0] == 0.0f && t.data[1] == 200.0f && isnan(t.data[2]), "BITPIX 8: %s", e.message);
  lensnet_tensor_free(&t); f.len = 0;

  /* BITPIX 16 with BZERO 32768 (unsigned 16-bit) and BSCALE with a D exponent */
  primary_2d(&f, 16, 2, 2);
  card(&f, "BZERO   =                32768");
  card(&f, "BSCALE  =                0.5D1 / five");
  end_header(&f);
  put_be(&f, 0x8000, 2); put_be(&f, 0x0000, 2); put_be(&f, 0x7FFF, 2); put_be(&f, 0xFFFF, 2); pad_data(&f);
  /* stored -32768, 0, 32767, -1 -> 32768 + 5 * stored */
  CHECK(read_buf(&f, 0, &t, &e) == LENSNET_OK && t.ndim == 2 && t.shape[0] == 2 && t.shape[1] == 2, "BITPIX 16: %s", e.message);
  if (t.data) CHECK(t.data[0] == -131072.0f && t.data[1] == 32768.0f && t.data[2] == 196603.0f && t.data[3] == 32763.0f,
                    "BITPIX 16 scaled: %g %g %g %g", t.data[0], t.data[1], t.data[2], t.data[3]);
  lensnet_tensor_free(&t); f.len = 0;

  /* BITPIX 32 with BLANK, negative values */
  primary_2d(&f, 32, 3, 1); card(&f, "BLANK   =          -2147483648"); end_header(&f);
  put_be(&f, 0xFFFFFFFEu, 4); put_be(&f, 0x80000000u, 4); put_be(&f, 123456, 4); pad_data(&f);
  CHECK(read_buf(&f, 0, &t, &e) == LENSNET_OK && t.data[0] == -2.0f && isnan(t.data[1]) && t.data[2] == 123456.0f, "BITPIX 32: %s", e.message);
  lensnet_tensor_free(&t); f.len = 0;

  /* BITPIX 64, free-format values */
  primary_2d(&f, 64, 2, 1); card(&f, "BZERO   = 9223372036854775808"); card(&f, "BLANK   = 1"); end_header(&f);
  put_be(&f, 0, 8); put_be(&f, 0xFFFFFFFFFFFFFFFFull, 8); pad_data(&f);
  /* BZERO 2^63 makes unsigned 64-bit: stored 0 -> 2^63, stored -1 -> 2^63 - 1 (float32 rounds) */
  CHECK(read_buf(&f, 0, &t, &e) == LENSNET_OK && t.data[0] == 9223372036854775808.0f && t.data[1] == 9223372036854775808.0f,
        "BITPIX 64: %s", e.message);
  lensnet_tensor_free(&t); f.len = 0;

  /* BITPIX -32: NaN stays NaN, BLANK is ignored for floating point, -0 and infinities kept */
  primary_2d(&f, -32, 5, 1); card(&f, "BLANK   =                    0"); end_header(&f);
  put_f32(&f, 1.5f); put_f32(&f, NAN); put_f32(&f, -0.0f); put_f32(&f, -INFINITY); put_f32(&f, 3.0e-40f); pad_data(&f);
  CHECK(read_buf(&f, 0, &t, &e) == LENSNET_OK, "BITPIX -32: %s", e.message);
  /* (float)3.0e-40f: with FLT_EVAL_METHOD 1 (s390x under -std=c99) the constant keeps double
   * precision until a cast rounds it to the float the file holds */
  if (t.data) CHECK(t.data[0] == 1.5f && isnan(t.data[1]) && t.data[2] == 0.0f && signbit(t.data[2]) && isinf(t.data[3]) && t.data[3] < 0 &&
                    t.data[4] == (float)3.0e-40f, "BITPIX -32 values");
  lensnet_tensor_free(&t); f.len = 0;

  /* BITPIX -64 with scaling; NaN survives scaling */
  primary_2d(&f, -64, 2, 1); card(&f, "BSCALE  =                  2.0"); card(&f, "BZERO   =                 -1.0"); end_header(&f);
  put_f64(&f, 0.25); put_f64(&f, NAN); pad_data(&f);
  CHECK(read_buf(&f, 0, &t, &e) == LENSNET_OK && t.data[0] == -0.5f && isnan(t.data[1]), "BITPIX -64: %s", e.message);
  lensnet_tensor_free(&t); f.len = 0;

  /* 1-D and 8-D images; the data of the last HDU may lack its padding */
  card(&f, "SIMPLE  = T"); card(&f, "BITPIX  = 16"); card(&f, "NAXIS   = 8");
  {
    int k;
    char line[81];
    for (k = 1; k <= 8; k++) { snprintf(line, sizeof line, "NAXIS%d  = %d", k, k == 1 ? 2 : 1); card(&f, line); }
  }
  end_header(&f); put_be(&f, 7, 2); put_be(&f, 0xFFF9, 2); /* no padding */
  CHECK(read_buf(&f, 0, &t, &e) == LENSNET_OK && t.ndim == 8 && t.shape[7] == 2 && t.shape[0] == 1 && t.data[0] == 7.0f && t.data[1] == -7.0f,
        "8-D image without padding: %s", e.message);
  lensnet_tensor_free(&t);
  free(f.b);
}

/* A long header over several blocks, with HIERARCH, CONTINUE, commentary and quoted strings. */
static void test_long_header(void) {
  lensnet_tensor t;
  lensnet_error e;
  buf f = {0, 0, 0};
  char value[200], line[81];
  int i;
  unsigned char *c;
  primary_2d(&f, 16, 2, 1);
  card(&f, "COMMENT   a comment card; = signs and 'quotes' do not matter here");
  card(&f, "        / a blank keyword");
  card(&f, "HISTORY written by hand for the tests");
  card(&f, "OBJECT  = 'It''s a lens'       / quotes doubled inside strings");
  card(&f, "LONGSTR = 'This value is longer than one card can hold, so it goes on in&'");
  card(&f, "CONTINUE  ' a CONTINUE card, and then &'");
  card(&f, "CONTINUE  'one more.' / the end");
  card(&f, "HIERARCH ESO DET CHIPS =            4 / ESO convention");
  card(&f, "HIERARCH range x = 4.89661817911E-05 / radians");
  card(&f, "EXPTIME =                 50.0 / seconds");
  card(&f, "FLAG    =                    T");
  card(&f, "NOVALUE =                      / undefined value");
  card(&f, "CPLX    =          (1.5, -2.0)");
  for (i = 0; i < 60; i++) { snprintf(line, sizeof line, "KEY%03d  = %20d", i, i); card(&f, line); }
  card(&f, "BZERO   =                  100");
  end_header(&f);
  CHECK(f.len == 3 * 2880, "the hand-made header spans three blocks (%lu bytes)", (unsigned long)f.len);
  put_be(&f, 1, 2); put_be(&f, 2, 2); pad_data(&f);
  c = copy_bytes(f.b, f.len);
  CHECK(lensnet_fits_read_memory(c, f.len, -1, &t, &e) == LENSNET_OK && t.data[0] == 101.0f && t.data[1] == 102.0f,
        "BZERO after two blocks of cards: %s", e.message);
  lensnet_tensor_free(&t);
#define VALUE_IS(key, want) \
  CHECK(lensnet_fits_header_value_memory(c, f.len, 0, key, value, sizeof value, &e) == LENSNET_OK && strcmp(value, want) == 0, \
        "%s: got [%s], want [%s] %s", key, value, want, e.message)
  VALUE_IS("OBJECT", "It's a lens");
  VALUE_IS("LONGSTR", "This value is longer than one card can hold, so it goes on in a CONTINUE card, and then one more.");
  VALUE_IS("ESO DET CHIPS", "4");
  VALUE_IS("HIERARCH ESO DET CHIPS", "4");
  VALUE_IS("range x", "4.89661817911E-05");
  VALUE_IS("exptime", "50.0");
  VALUE_IS("FLAG", "T");
  VALUE_IS("NOVALUE", "");
  VALUE_IS("CPLX", "(1.5, -2.0)");
  VALUE_IS("KEY059", "59");
  VALUE_IS("NAXIS1", "2");
#undef VALUE_IS
  CHECK(lensnet_fits_header_value_memory(c, f.len, 0, "COMMENT", value, sizeof value, &e) == LENSNET_ERR_ARG, "COMMENT has no value");
  CHECK(lensnet_fits_header_value_memory(c, f.len, 0, "MISSING", value, sizeof value, &e) == LENSNET_ERR_ARG && strstr(e.message, "MISSING"),
        "a missing keyword is named: %s", e.message);
  CHECK(lensnet_fits_header_value_memory(c, f.len, 0, "OBJECT", value, 5, &e) == LENSNET_ERR_ARG && strstr(e.message, "12 bytes"),
        "a short buffer says how much is needed: %s", e.message);
  CHECK(lensnet_fits_header_value_memory(c, f.len, 1, "OBJECT", value, sizeof value, &e) == LENSNET_ERR_ARG, "HDU 1 does not exist");
  free(c);
  free(f.b);
}

/* An empty primary, a binary table with a heap (PCOUNT), an ASCII table, random groups are
 * skipped by their sizes; the image after them is found. */
/* The pixel scale from a header: PIXSCALE, else the CD matrix, else CDELT1, in CUNIT1. */
static double scale_of(const char *const *cards, size_t n, int extension, const char **key, lensnet_result *r, lensnet_error *e) {
  buf f = {0, 0, 0};
  double scale = -1.0;
  size_t i;
  unsigned char *c;
  if (extension) { /* an empty primary HDU, then the image: HDU -1 finds it */
    card(&f, "SIMPLE  =                    T"); card(&f, "BITPIX  =                    8"); card(&f, "NAXIS   =                    0");
    end_header(&f);
    card(&f, "XTENSION= 'IMAGE   '"); card(&f, "BITPIX  =                  -32"); card(&f, "NAXIS   =                    2");
    card(&f, "NAXIS1  =                    1"); card(&f, "NAXIS2  =                    1"); card(&f, "PCOUNT  =                    0");
    card(&f, "GCOUNT  =                    1");
  } else primary_2d(&f, -32, 1, 1);
  for (i = 0; i < n; i++) card(&f, cards[i]);
  end_header(&f);
  put_f32(&f, 1.0f);
  pad_data(&f);
  c = copy_bytes(f.b, f.len);
  *r = lensnet_fits_pixel_scale_memory(c, f.len, -1, &scale, key, e);
  free(c);
  free(f.b);
  return scale;
}

static void test_pixel_scale(void) {
  static const char *pixscale[] = {"PIXSCALE=                  0.3 / arcsec per pixel", "CDELT1  =               -0.001"};
  static const char *cd[] = {"CDELT1  =               -0.001", "CD1_1   =                  0.0", "CD2_1   =               1.0E-4"};
  static const char *arcmin[] = {"CUNIT1  = 'arcmin  '", "CDELT1  =                 -0.5"};
  static const char *metres[] = {"CUNIT1  = 'm       '", "CDELT1  =                  0.5"};
  static const char *none[] = {"OBJECT  = 'no scale'"};
  char path[1024];
  const char *key = NULL;
  double scale = 0.0;
  lensnet_result r;
  lensnet_error e;
  scale = scale_of(pixscale, 2, 0, &key, &r, &e);
  CHECK(r == LENSNET_OK && scale == 0.3 && key && !strcmp(key, "PIXSCALE"), "PIXSCALE first: %g from %s", scale, key ? key : "?");
  /* a rotated CD matrix: the x axis runs along declination, 1e-4 deg = 0.36" per pixel */
  scale = scale_of(cd, 3, 1, &key, &r, &e);
  CHECK(r == LENSNET_OK && fabs(scale - 0.36) < 1e-12 && key && !strcmp(key, "CD1_1"), "CD before CDELT, in the extension: %.15g", scale);
  scale = scale_of(arcmin, 2, 0, &key, &r, &e);
  CHECK(r == LENSNET_OK && scale == 30.0 && key && !strcmp(key, "CDELT1"), "|CDELT1| in arcmin: %g", scale);
  scale = scale_of(metres, 2, 0, &key, &r, &e);
  CHECK(r == LENSNET_ERR_ARG && strstr(e.message, "'m'"), "CUNIT1 m is no angle: %s", e.message);
  scale = scale_of(none, 1, 0, &key, &r, &e);
  CHECK(r == LENSNET_ERR_ARG && scale == 0.0 && key == NULL && strstr(e.message, "no pixel scale"), "%s", e.message);
  /* the challenge's VIS cutouts: CD1_1 = -2.7777774714293E-05 deg, i.e. 0.1" per pixel */
  snprintf(path, sizeof path, "%s/bologna-challenge1/space_based/lens/imageEUC_VIS-100002.fits", check_data_dir());
  CHECK(lensnet_fits_pixel_scale(path, -1, &scale, &key, &e) == LENSNET_OK && fabs(scale - 2.7777774714293e-5 * 3600.0) < 1e-15 &&
        !strcmp(key, "CD1_1"), "challenge cutout: %.12g\" from %s (%s)", scale, key ? key : "?", e.message);
  CHECK(lensnet_fits_pixel_scale("build/no/such.fits", -1, &scale, &key, &e) == LENSNET_ERR_IO && strstr(e.message, "no/such.fits"), "%s", e.message);
}

static void test_extensions(void) {
  lensnet_tensor t;
  lensnet_error e;
  buf f = {0, 0, 0};
  int count = 0, i;
  unsigned char *c;
  card(&f, "SIMPLE  =                    T"); card(&f, "BITPIX  =                    8"); card(&f, "NAXIS   =                    0");
  card(&f, "EXTEND  =                    T"); end_header(&f);
  /* binary table: 3 rows of 4 bytes and a 2900-byte heap: 2912 bytes of data, two blocks */
  card(&f, "XTENSION= 'BINTABLE'"); card(&f, "BITPIX  =                    8"); card(&f, "NAXIS   =                    2");
  card(&f, "NAXIS1  =                    4"); card(&f, "NAXIS2  =                    3");
  card(&f, "PCOUNT  =                 2900"); card(&f, "GCOUNT  =                    1"); card(&f, "TFIELDS =                    1");
  card(&f, "TFORM1  = '1J      '"); end_header(&f);
  for (i = 0; i < 2912; i++) { unsigned char x = (unsigned char)'X'; buf_put(&f, &x, 1); }
  pad_data(&f);
  /* ASCII table */
  card(&f, "XTENSION= 'TABLE   '"); card(&f, "BITPIX  =                    8"); card(&f, "NAXIS   =                    2");
  card(&f, "NAXIS1  =                   10"); card(&f, "NAXIS2  =                    2"); card(&f, "PCOUNT  =                    0");
  card(&f, "GCOUNT  =                    1"); card(&f, "TFIELDS =                    0"); end_header(&f);
  buf_put(&f, "0123456789abcdefghij", 20); pad_data(&f);
  /* the image */
  card(&f, "XTENSION= 'IMAGE   '"); card(&f, "BITPIX  =                  -32"); card(&f, "NAXIS   =                    1");
  card(&f, "NAXIS1  =                    3"); card(&f, "PCOUNT  =                    0"); card(&f, "GCOUNT  =                    1");
  card(&f, "EXTNAME = 'SCI     '"); end_header(&f);
  put_f32(&f, 1.0f); put_f32(&f, 2.0f); put_f32(&f, 4.0f); pad_data(&f);
  c = copy_bytes(f.b, f.len);
  CHECK(lensnet_fits_hdu_count_memory(c, f.len, &count, &e) == LENSNET_OK && count == 4, "4 HDUs, counted %d: %s", count, e.message);
  CHECK(lensnet_fits_read_memory(c, f.len, -1, &t, &e) == LENSNET_OK && t.ndim == 1 && t.shape[0] == 3 && t.data[2] == 4.0f,
        "the image after two tables: %s", e.message);
  lensnet_tensor_free(&t);
  CHECK(lensnet_fits_read_memory(c, f.len, 1, &t, &e) == LENSNET_ERR_UNSUPPORTED && strstr(e.message, "binary table"), "%s", e.message);
  CHECK(lensnet_fits_read_memory(c, f.len, 2, &t, &e) == LENSNET_ERR_UNSUPPORTED && strstr(e.message, "ASCII table"), "%s", e.message);
  CHECK(lensnet_fits_read_memory(c, f.len, 0, &t, &e) == LENSNET_ERR_ARG && strstr(e.message, "HDU 0 holds no data"), "%s", e.message);
  {
    char v[32];
    CHECK(lensnet_fits_header_value_memory(c, f.len, 3, "EXTNAME", v, sizeof v, &e) == LENSNET_OK && !strcmp(v, "SCI"), "EXTNAME %s", v);
  }
  free(c);

  /* random groups: NAXIS1 = 0, GROUPS = T; 2 groups of (1 parameter + 2x1 values) of 2 bytes */
  f.len = 0;
  card(&f, "SIMPLE  =                    T"); card(&f, "BITPIX  =                   16"); card(&f, "NAXIS   =                    3");
  card(&f, "NAXIS1  =                    0"); card(&f, "NAXIS2  =                    2"); card(&f, "NAXIS3  =                    1");
  card(&f, "GROUPS  =                    T"); card(&f, "PCOUNT  =                    1"); card(&f, "GCOUNT  =                 1000");
  end_header(&f);
  for (i = 0; i < 6000; i++) { unsigned char x = 1; buf_put(&f, &x, 1); }
  pad_data(&f); /* 6000 bytes: 3 blocks */
  card(&f, "XTENSION= 'IMAGE   '"); card(&f, "BITPIX  =                    8"); card(&f, "NAXIS   =                    1");
  card(&f, "NAXIS1  =                    1"); card(&f, "PCOUNT  =                    0"); card(&f, "GCOUNT  =                    1");
  end_header(&f); put_be(&f, 42, 1); pad_data(&f);
  c = copy_bytes(f.b, f.len);
  CHECK(lensnet_fits_read_memory(c, f.len, 0, &t, &e) == LENSNET_ERR_UNSUPPORTED && strstr(e.message, "random groups"), "%s", e.message);
  CHECK(lensnet_fits_read_memory(c, f.len, -1, &t, &e) == LENSNET_OK && t.data[0] == 42.0f, "the image after random groups: %s", e.message);
  lensnet_tensor_free(&t);
  free(c);
  free(f.b);
}

/* ---- malformed files: each gives an error naming the problem ------------------------------ */

typedef struct { const char *name; const char *cards[12]; lensnet_result want; const char *words; } bad_header;

/* Files that are something else say what they are: a gzip archive, an empty file, a text file
 * given as weights. */
static void test_not_the_format(void) {
  static const unsigned char gz[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 'x'};
  static const char text[] = "# OU-66 model card\n\nA lens finder of Wilde et al. 2022.\n";
  lensnet_tensor t;
  lensnet_safetensors st;
  lensnet_error err;
  err.message[0] = 0;
  CHECK(lensnet_fits_read_memory(gz, sizeof gz, -1, &t, &err) == LENSNET_ERR_FORMAT && strstr(err.message, "gzip-compressed") &&
            strstr(err.message, "too short"), "a gzip header and nothing else: %s", err.message);
  err.message[0] = 0;
  CHECK(lensnet_fits_read_memory(gz, 0, -1, &t, &err) == LENSNET_ERR_FORMAT && strstr(err.message, "empty"), "an empty file: %s",
        err.message);
  err.message[0] = 0;
  CHECK(lensnet_safetensors_read_memory(text, sizeof text - 1, &st, &err) == LENSNET_ERR_FORMAT &&
            strstr(err.message, "not a safetensors file") && strstr(err.message, "56-byte file"),
        "a text file as weights: %s", err.message);
}

static void test_malformed(void) {
  static const bad_header cases[] = {
    {"BITPIX 12", {"SIMPLE  = T", "BITPIX  = 12", "NAXIS   = 0"}, LENSNET_ERR_FORMAT, "BITPIX = 12"},
    {"NAXIS before BITPIX", {"SIMPLE  = T", "NAXIS   = 0", "BITPIX  = 8"}, LENSNET_ERR_FORMAT, "BITPIX and NAXIS"},
    {"NAXIS2 before NAXIS1", {"SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 2", "NAXIS2  = 1", "NAXIS1  = 1"}, LENSNET_ERR_FORMAT, "must be NAXIS1"},
    {"NAXIS 1000", {"SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 1000"}, LENSNET_ERR_FORMAT, "NAXIS = 1000"},
    {"NAXIS negative", {"SIMPLE  = T", "BITPIX  = 8", "NAXIS   = -1"}, LENSNET_ERR_FORMAT, "NAXIS = -1"},
    {"NAXIS1 negative", {"SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 1", "NAXIS1  = -5"}, LENSNET_ERR_FORMAT, "negative"},
    {"NAXIS1 not a number", {"SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 1", "NAXIS1  = 'ten'"}, LENSNET_ERR_FORMAT, "not an integer"},
    {"NAXIS1 beyond int64", {"SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 1", "NAXIS1  = 99999999999999999999"}, LENSNET_ERR_FORMAT, "not an integer"},
    {"axes overflow", {"SIMPLE  = T", "BITPIX  = 64", "NAXIS   = 3", "NAXIS1  = 4000000000", "NAXIS2  = 4000000000", "NAXIS3  = 4000000000"},
     LENSNET_ERR_TOO_LARGE, "overflows"},
    {"size overflow", {"SIMPLE  = T", "BITPIX  = 64", "NAXIS   = 2", "NAXIS1  = 4294967296", "NAXIS2  = 1073741824"}, LENSNET_ERR_TOO_LARGE, "overflows"},
    {"data far beyond the file", {"SIMPLE  = T", "BITPIX  = -32", "NAXIS   = 2", "NAXIS1  = 100000", "NAXIS2  = 100000"}, LENSNET_ERR_FORMAT, "truncated"},
    {"NAXIS 9", {"SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 9", "NAXIS1  = 1", "NAXIS2  = 1", "NAXIS3  = 1", "NAXIS4  = 1", "NAXIS5  = 1",
                 "NAXIS6  = 1", "NAXIS7  = 1", "NAXIS8  = 1", "NAXIS9  = 1"}, LENSNET_ERR_UNSUPPORTED, "NAXIS = 9"},
    {"SIMPLE = F", {"SIMPLE  = F", "BITPIX  = 8", "NAXIS   = 0"}, LENSNET_ERR_UNSUPPORTED, "SIMPLE = F"},
    {"SIMPLE not logical", {"SIMPLE  = 1", "BITPIX  = 8", "NAXIS   = 0"}, LENSNET_ERR_FORMAT, "logical"},
    {"lower-case keyword", {"SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 0", "exptime = 1"}, LENSNET_ERR_FORMAT, "card 4"},
    {"blank inside keyword", {"SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 0", "EXP TIME= 1"}, LENSNET_ERR_FORMAT, "blank inside"},
    {"tab in a card", {"SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 0", "COMMENT \t"}, LENSNET_ERR_FORMAT, "printable ASCII"},
    {"END with text after it", {"SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 0", "END     x"}, LENSNET_ERR_FORMAT, "END"},
    {"BSCALE a string", {"SIMPLE  = T", "BITPIX  = 16", "NAXIS   = 1", "NAXIS1  = 1", "BSCALE  = 'two'"}, LENSNET_ERR_FORMAT, "BSCALE"},
    {"BZERO garbage", {"SIMPLE  = T", "BITPIX  = 16", "NAXIS   = 1", "NAXIS1  = 1", "BZERO   = 1.0.0"}, LENSNET_ERR_FORMAT, "BZERO"},
    {"BZERO beyond double", {"SIMPLE  = T", "BITPIX  = 16", "NAXIS   = 1", "NAXIS1  = 1", "BZERO   = 1E999"}, LENSNET_ERR_FORMAT, "BZERO"},
    {"BLANK real", {"SIMPLE  = T", "BITPIX  = 16", "NAXIS   = 1", "NAXIS1  = 1", "BLANK   = 1.5"}, LENSNET_ERR_FORMAT, "BLANK"},
    {"not FITS", {"SIMPLX  = T"}, LENSNET_ERR_FORMAT, "not a FITS file"},
    {"no cards", {"SIMPLE  = T"}, LENSNET_ERR_FORMAT, "cards 2 and 3"},
  };
  lensnet_tensor t;
  lensnet_error e;
  size_t k;
  int i;
  for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    buf f = {0, 0, 0};
    lensnet_result r;
    for (i = 0; i < 12 && cases[k].cards[i]; i++) card(&f, cases[k].cards[i]);
    end_header(&f);
    if (strcmp(cases[k].name, "END with text after it") == 0) { f.len = 0; for (i = 0; i < 4; i++) card(&f, cases[k].cards[i]); while (f.len % 2880) card(&f, ""); }
    put_be(&f, 1, 2); /* data for the cases that get as far as the pixels */
    pad_data(&f);
    r = read_buf(&f, 0, &t, &e);
    CHECK(r == cases[k].want && clean_error(r, &e) && strstr(e.message, cases[k].words),
          "%s: got %d (%s), want %d mentioning '%s'", cases[k].name, r, r ? e.message : "ok", cases[k].want, cases[k].words);
    CHECK(t.data == NULL && t.ndim == 0, "%s: the tensor stays empty on error", cases[k].name);
    lensnet_tensor_free(&t);
    free(f.b);
  }
  {
    /* a missing END: a full block of cards and then the file ends */
    buf f = {0, 0, 0};
    card(&f, "SIMPLE  = T"); card(&f, "BITPIX  = 8"); card(&f, "NAXIS   = 0");
    while (f.len % 2880) card(&f, "COMMENT no END here");
    CHECK(read_buf(&f, 0, &t, &e) == LENSNET_ERR_FORMAT && strstr(e.message, "no END"), "missing END: %s", e.message);
    /* fill after END that is not blank */
    f.len = 0;
    card(&f, "SIMPLE  = T"); card(&f, "BITPIX  = 8"); card(&f, "NAXIS   = 0"); card(&f, "END");
    while (f.len % 2880) card(&f, "COMMENT after END");
    CHECK(read_buf(&f, 0, &t, &e) == LENSNET_ERR_FORMAT && strstr(e.message, "blank-filled"), "fill after END: %s", e.message);
    /* extensions: missing PCOUNT, IMAGE with GCOUNT 2, a first card that is not XTENSION */
    f.len = 0;
    card(&f, "SIMPLE  = T"); card(&f, "BITPIX  = 8"); card(&f, "NAXIS   = 0"); end_header(&f);
    card(&f, "XTENSION= 'IMAGE'"); card(&f, "BITPIX  = 8"); card(&f, "NAXIS   = 1"); card(&f, "NAXIS1  = 1"); card(&f, "GCOUNT  = 1"); end_header(&f);
    put_be(&f, 1, 1); pad_data(&f);
    CHECK(read_buf(&f, 1, &t, &e) == LENSNET_ERR_FORMAT && strstr(e.message, "PCOUNT"), "missing PCOUNT: %s", e.message);
    CHECK(read_buf(&f, 0, &t, &e) == LENSNET_ERR_ARG, "the primary HDU is still reached: %s", e.message);
    memcpy(f.b + 2880 + 4 * 80, "PCOUNT  = 0", 11); /* now GCOUNT is missing */
    CHECK(read_buf(&f, 1, &t, &e) == LENSNET_ERR_FORMAT && strstr(e.message, "GCOUNT"), "missing GCOUNT: %s", e.message);
    f.len = 0;
    card(&f, "SIMPLE  = T"); card(&f, "BITPIX  = 8"); card(&f, "NAXIS   = 0"); end_header(&f);
    card(&f, "XTENSION= 'IMAGE'"); card(&f, "BITPIX  = 8"); card(&f, "NAXIS   = 1"); card(&f, "NAXIS1  = 1");
    card(&f, "PCOUNT  = 0"); card(&f, "GCOUNT  = 2"); end_header(&f); put_be(&f, 1, 1); pad_data(&f);
    CHECK(read_buf(&f, 1, &t, &e) == LENSNET_ERR_FORMAT && strstr(e.message, "GCOUNT = 1"), "IMAGE with GCOUNT 2: %s", e.message);
    memcpy(f.b + 2880 + 5 * 80, "GCOUNT  = 1 2", 13);
    CHECK(read_buf(&f, 1, &t, &e) == LENSNET_ERR_FORMAT && strstr(e.message, "not an integer"), "junk after GCOUNT's value: %s", e.message);
    memcpy(f.b + 2880, "XTENSION= 17      ", 18);
    CHECK(read_buf(&f, 1, &t, &e) == LENSNET_ERR_FORMAT && strstr(e.message, "XTENSION"), "XTENSION not a string: %s", e.message);
    free(f.b);
  }
}

/* Every truncation of a real file is an error unless the image's data is complete. */
static void test_truncations(void) {
  /* layouts worked out from the headers: arange.fits has one 2880-byte header and 7*10*11*4 =
   * 3080 bytes of data; test0.fits has a 4-block primary header, then extensions of 2 header
   * blocks and 2 data blocks each, the data being 40*40*2 = 3200 bytes */
  static const struct { const char *file; int hdu; size_t need; } files[] = {
    {"arange.fits", 0, 2880 + 3080}, {"test0.fits", 1, 6 * 2880 + 3200}, {"test0.fits", 4, 18 * 2880 + 3200}};
  size_t k, cut;
  for (k = 0; k < sizeof files / sizeof files[0]; k++) {
    char path[1024];
    size_t len;
    unsigned char *whole;
    lensnet_tensor full;
    lensnet_error e;
    int wrong = 0, tried = 0;
    snprintf(path, sizeof path, "%s/fits/%s", check_data_dir(), files[k].file);
    whole = slurp(path, &len);
    CHECK(whole != NULL, "cannot read %s", path);
    if (!whole) continue;
    CHECK(lensnet_fits_read_memory(whole, len, files[k].hdu, &full, &e) == LENSNET_OK, "%s", e.message);
    for (cut = 0; cut < len; cut += (cut % 2880 < 3 || cut % 2880 > 2877) ? 1 : 97) {
      unsigned char *c = copy_bytes(whole, cut);
      lensnet_tensor t;
      lensnet_result r = lensnet_fits_read_memory(c, cut, files[k].hdu, &t, &e);
      tried++;
      if (cut < files[k].need) {
        if (!clean_error(r, &e)) { wrong++; printf("   %s cut at %lu: result %d\n", files[k].file, (unsigned long)cut, r); }
      } else if (r != LENSNET_OK || memcmp(t.data, full.data, lensnet_tensor_count(&full) * 4) != 0) {
        wrong++;
        printf("   %s cut at %lu (data complete): %s\n", files[k].file, (unsigned long)cut, e.message);
      }
      lensnet_tensor_free(&t);
      free(c);
    }
    CHECK(wrong == 0, "%s: %d of %d truncations misread", files[k].file, wrong, tried);
    lensnet_tensor_free(&full);
    free(whole);
  }
}

/* Random byte mutations of real files: each read succeeds or fails cleanly (run under the
 * sanitizer build, this finds out-of-bounds reads). */
static void test_mutations(void) {
  static const char *names[] = {"test0.fits", "fixed-1890.fits", "compressed_image.fits", "blank.fits", "scale.fits",
                                "compressed/rice_float_dither1.fits.fz", "compressed/gzip2_int32_tiles.fits.fz"};
  uint64_t seed = 0x9E3779B97F4A7C15ull;
  size_t k;
  int bad = 0, ok = 0, failed = 0;
  for (k = 0; k < sizeof names / sizeof names[0]; k++) {
    char path[1024];
    size_t len;
    unsigned char *whole;
    int iter;
    snprintf(path, sizeof path, "%s/fits/%s", check_data_dir(), names[k]);
    whole = slurp(path, &len);
    if (!whole) { CHECK(0, "cannot read %s", path); continue; }
    for (iter = 0; iter < 600; iter++) {
      size_t n = len, m, nmut = 1 + rng_next(&seed) % 8;
      unsigned char *c;
      lensnet_tensor t;
      lensnet_error e;
      lensnet_result r;
      int hdu = (int)(rng_next(&seed) % 8) - 1, count;
      char v[64];
      if (rng_next(&seed) % 4 == 0) n = (size_t)(rng_next(&seed) % len); /* and truncate */
      c = copy_bytes(whole, n);
      for (m = 0; m < nmut && n; m++) {
        uint64_t x = rng_next(&seed);
        /* mostly headers (cards, digits, quotes), sometimes anywhere */
        size_t at = (x & 1) ? (size_t)((x >> 8) % n) : (size_t)((x >> 8) % (n < 5760 ? n : 5760));
        static const char alphabet[] = "0123456789 -+'=/&TFEDXN.\x80\t";
        c[at] = (x >> 40) % 3 ? (unsigned char)alphabet[(x >> 48) % (sizeof alphabet - 1)] : (unsigned char)(x >> 56);
      }
      r = lensnet_fits_read_memory(c, n, hdu, &t, &e);
      if (r == LENSNET_OK) {
        ok++;
        if (!t.data || t.ndim < 1 || lensnet_tensor_count(&t) == 0) bad++;
      } else {
        failed++;
        if (!clean_error(r, &e) || t.data) bad++;
      }
      lensnet_tensor_free(&t);
      r = lensnet_fits_hdu_count_memory(c, n, &count, &e);
      if (r != LENSNET_OK && !clean_error(r, &e)) bad++;
      r = lensnet_fits_header_value_memory(c, n, hdu < 0 ? 0 : hdu, "BZERO", v, sizeof v, &e);
      if (r != LENSNET_OK && !clean_error(r, &e)) bad++;
      free(c);
    }
    free(whole);
  }
  printf("   %d mutated files read, %d refused\n", ok, failed);
  CHECK(bad == 0, "%d mutated inputs gave an unclean result", bad);
  CHECK(ok > 0 && failed > 0, "the mutations should produce both outcomes (%d ok, %d refused)", ok, failed);
}

/* ---- tile-compressed images --------------------------------------------------------------- */

/* Writes a FITS primary image of BITPIX bitpix (8, 16, 32, -32, -64), nx x ny x nz, big-endian,
 * with a sky of Gaussian noise around 100, a bright source, and for the floating-point types NaN
 * pixels, a row of zeros and a constant row (the tiles a compressor treats specially); 16-bit
 * images hold a few -32768 pixels, 32-bit ones a column near -2^31. bzero, if nonzero, is
 * written as BZERO (with BSCALE 1) and subtracted from the stored integers. */
static int write_image_fits(const char *path, int bitpix, int nx, int ny, int nz, uint64_t seed, double bzero) {
  FILE *f = fopen(path, "wb");
  char card[81], block[2880];
  int ncards = 0, nb = abs(bitpix) / 8, k;
  long i, np = (long)nx * ny * nz, bytes = np * nb;
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  if (!f) return 0;
#define PUT_CARD(...) do { memset(card, ' ', 80); snprintf(card, sizeof card, __VA_ARGS__); card[strlen(card)] = ' '; fwrite(card, 1, 80, f); ncards++; } while (0)
  PUT_CARD("SIMPLE  = %20s", "T");
  PUT_CARD("BITPIX  = %20d", bitpix);
  PUT_CARD("NAXIS   = %20d", nz > 1 ? 3 : 2);
  PUT_CARD("NAXIS1  = %20d", nx);
  PUT_CARD("NAXIS2  = %20d", ny);
  if (nz > 1) PUT_CARD("NAXIS3  = %20d", nz);
  if (bzero != 0.0) { PUT_CARD("BSCALE  = %20d", 1); PUT_CARD("BZERO   = %20.0f", bzero); }
  PUT_CARD("END");
#undef PUT_CARD
  memset(block, ' ', sizeof block);
  fwrite(block, 1, (size_t)((36 - ncards % 36) % 36) * 80, f);
  for (i = 0; i < np; i++) {
    int x = (int)(i % nx), y = (int)((i / nx) % ny);
    double u1 = (double)((rng_next(&s) >> 11) + 1) / 9007199254740993.0, u2 = (double)(rng_next(&s) >> 11) / 9007199254740992.0;
    double dx = x - nx / 2.0, dy = y - ny / 3.0;
    double v = 100.0 + 10.0 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2) + 3000.0 * exp(-(dx * dx + dy * dy) / 20.0);
    unsigned char b[8];
    uint64_t u = 0;
    if (bitpix == 8) {
      long q = lround(v / 16.0);
      u = (uint64_t)(q > 255 ? 255 : q);
    } else if (bitpix == 16) {
      long q = lround(v) - (long)bzero;
      if (y == 3 && x < 5) q = -32768;
      u = (uint16_t)(int16_t)(q > 32767 ? 32767 : q);
    } else if (bitpix == 32) {
      long q = lround(v * 1000.0) - (long)bzero;
      if (x == 7) q = -2000000000L + y;
      u = (uint32_t)(int32_t)q;
    } else if (bitpix == -32) {
      float fv = (float)(v * 0.01 - 1.0);
      uint32_t w;
      if ((x * 7 + y * 3) % 97 == 0) fv = NAN;
      if (y == 5) fv = 0.0f;
      if (y == 9) fv = 1.5f;
      memcpy(&w, &fv, 4);
      u = w;
    } else {
      double dv = v * 0.01 - 1.0;
      if ((x + y) % 53 == 0) dv = NAN;
      memcpy(&u, &dv, 8);
    }
    for (k = 0; k < nb; k++) b[k] = (unsigned char)(u >> (8 * (nb - 1 - k)));
    fwrite(b, 1, (size_t)nb, f);
  }
  memset(block, 0, sizeof block);
  fwrite(block, 1, (size_t)((2880 - bytes % 2880) % 2880), f);
  return fclose(f) == 0;
}

/* Whether two images are the same: shape, and every value bit for bit (any NaN equals any NaN:
 * funpack writes NaN with its sign bit set). With skip_nan, a NaN of a is not compared (imcopy
 * writes an undefined pixel of a quantised image as the number it was stored as). */
static int same_image(const lensnet_tensor *a, const lensnet_tensor *b, int skip_nan, size_t *differ) {
  size_t i, n;
  int k;
  *differ = 0;
  if (a->ndim != b->ndim) return 0;
  for (k = 0; k < a->ndim; k++)
    if (a->shape[k] != b->shape[k]) return 0;
  n = lensnet_tensor_count(a);
  for (i = 0; i < n; i++) {
    uint32_t p, q;
    if (isnan(a->data[i]) && (isnan(b->data[i]) || skip_nan)) continue;
    memcpy(&p, &a->data[i], 4);
    memcpy(&q, &b->data[i], 4);
    if (p != q) (*differ)++;
  }
  return *differ == 0;
}

/* Compares the compressed file with its decompression by CFITSIO (funpack's output, or with
 * skip_nan imcopy's); returns 1 when they match. */
static int compare_with_cfitsio(const char *packed, const char *unpacked, int skip_nan) {
  lensnet_tensor a, b;
  lensnet_error e;
  size_t differ = 0;
  int ok;
  if (lensnet_fits_read(packed, -1, &a, &e) != LENSNET_OK) { CHECK(0, "%s", e.message); return 0; }
  if (lensnet_fits_read(unpacked, -1, &b, &e) != LENSNET_OK) { CHECK(0, "%s", e.message); lensnet_tensor_free(&a); return 0; }
  ok = same_image(&a, &b, skip_nan, &differ);
  CHECK(ok, "%s: %lu of %lu values differ from CFITSIO's (or the shapes do)", packed, (unsigned long)differ, (unsigned long)lensnet_tensor_count(&b));
  lensnet_tensor_free(&a);
  lensnet_tensor_free(&b);
  return ok;
}

/* The files of tests/data/fits/compressed (README.md there): fpack's output, read against
 * CFITSIO's decompression of it (funpack's or imcopy's, written uncompressed, which
 * test_manifest's reader reads as astropy does), every value bit for bit. */
static void test_compressed(void) {
  static const char *pairs[] = {"rice_int16_tiles", "rice_uint8", "rice_cube", "rice_float_dither1", "rice_float_dither2",
                                "gzip2_int32_tiles", "gzip1_float64", "compressed_image", "rice_float_tiles2d"};
  char packed[1024], unpacked[1024], value[80];
  lensnet_tensor t;
  lensnet_error e;
  size_t k;
  int count = 0, k_imcopy;
  for (k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
    snprintf(packed, sizeof packed, "%s/fits/%s%s", check_data_dir(), strcmp(pairs[k], "compressed_image") ? "compressed/" : "",
             strcmp(pairs[k], "compressed_image") ? pairs[k] : "compressed_image");
    if (strcmp(pairs[k], "compressed_image")) strcat(packed, ".fits.fz");
    else strcat(packed, ".fits");
    /* funpack 1.7.0 unpacks quantised floats with NaN pixels in tiles narrower than the image
     * wrongly (README.md here); that file's reference is imcopy's */
    k_imcopy = !strcmp(pairs[k], "rice_float_tiles2d");
    snprintf(unpacked, sizeof unpacked, "%s/fits/compressed/%s.%s.fits", check_data_dir(), pairs[k], k_imcopy ? "imcopy" : "funpack");
    count += compare_with_cfitsio(packed, unpacked, k_imcopy);
  }
  printf("   %d of %d compressed files match CFITSIO's decompression\n", count, (int)(sizeof pairs / sizeof pairs[0]));
  /* two more of astropy's test files, against CFITSIO's imcopy of them (funpack 1.7.0 refuses
   * both: "Extension doesn't start with SIMPLE or XTENSION") */
  snprintf(packed, sizeof packed, "%s/fits/comp.fits", check_data_dir());
  if (lensnet_fits_read(packed, -1, &t, &e) == LENSNET_OK) {
    stats st = tensor_stats(&t);
    CHECK(t.ndim == 2 && t.shape[0] == 300 && t.shape[1] == 440 && st.sum == 34417871.0 && st.min == 0.0 && st.max == 1037.0 &&
              t.data[0] == 7.0f && t.data[150 * 440 + 220] == 962.0f && t.data[300 * 440 - 1] == 65.0f,
          "comp.fits: sum %.0f, min %g, max %g", st.sum, st.min, st.max);
    lensnet_tensor_free(&t);
  } else {
    CHECK(0, "%s", e.message);
  }
  snprintf(packed, sizeof packed, "%s/fits/compressed_float_bzero.fits", check_data_dir());
  CHECK(lensnet_fits_read(packed, -1, &t, &e) == LENSNET_OK && t.ndim == 1 && t.shape[0] == 3 && t.data[0] == 1.0f && t.data[1] == 2.0f &&
            t.data[2] == 3.0f,
        "compressed_float_bzero.fits: [1, 2, 3] (ZBITPIX 16, BZERO 32768)");
  lensnet_tensor_free(&t);
  /* the compressed HDU by number, and its header */
  snprintf(packed, sizeof packed, "%s/fits/compressed/rice_int16_tiles.fits.fz", check_data_dir());
  CHECK(lensnet_fits_read(packed, 1, &t, &e) == LENSNET_OK && t.ndim == 2 && t.shape[0] == 47 && t.shape[1] == 61, "HDU 1 by number");
  lensnet_tensor_free(&t);
  CHECK(lensnet_fits_read(packed, 0, &t, &e) == LENSNET_ERR_ARG && strstr(e.message, "no data"), "HDU 0 of an fpack file is empty: %s", e.message);
  CHECK(lensnet_fits_header_value(packed, 1, "ZCMPTYPE", value, sizeof value, &e) == LENSNET_OK && !strcmp(value, "RICE_1"), "ZCMPTYPE %s", value);
  /* HCOMPRESS_1 is named and refused */
  snprintf(packed, sizeof packed, "%s/fits/compressed/hcompress_float.fits.fz", check_data_dir());
  CHECK(lensnet_fits_read(packed, -1, &t, &e) == LENSNET_ERR_UNSUPPORTED && strstr(e.message, "HCOMPRESS_1") && strstr(e.message, "funpack") &&
            strstr(e.message, "hcompress_float.fits.fz") && !t.data,
        "HCOMPRESS_1 must be refused by name: %s", e.message);
}

/* .fits.gz: files gzipped by gzip(1) read as the files themselves, every HDU, header value, pixel
 * scale and WCS; damaged ones refused naming the problem, a huge claimed size before allocating. */
static void test_gzip_files(void) {
  static const char *names[] = {"test0.fits", "arange.fits", "o4sp040b0_raw.fits", "compressed/rice_float_dither1.fits.fz"};
  char path[1024], gz[256], cmd[1400], a[80], b[80];
  size_t k, len;
  unsigned char *whole, *c;
  lensnet_tensor x, y;
  lensnet_error e;
  lensnet_result r;
  double s1, s2;
  const char *key;
  int n1, n2, hdu, same = 1, compared = 0;
  if (system("command -v gzip >/dev/null 2>&1") != 0) { SKIP("gzip is not installed"); return; }
  for (k = 0; k < sizeof names / sizeof names[0]; k++) {
    snprintf(path, sizeof path, "%s/fits/%s", check_data_dir(), names[k]);
    snprintf(gz, sizeof gz, "build/formats/gz%lu.fits.gz", (unsigned long)k);
    snprintf(cmd, sizeof cmd, "gzip -c %s > %s", path, gz);
    if (system(cmd) != 0) { CHECK(0, "%s failed", cmd); continue; }
    CHECK(lensnet_fits_hdu_count(path, &n1, &e) == LENSNET_OK && lensnet_fits_hdu_count(gz, &n2, &e) == LENSNET_OK && n1 == n2,
          "%s: %d HDUs, gzipped %d", names[k], n1, n2);
    for (hdu = -1; hdu < n1; hdu++) {
      lensnet_result r1 = lensnet_fits_read(path, hdu, &x, &e), r2 = lensnet_fits_read(gz, hdu, &y, &e);
      size_t differ = 0;
      same &= r1 == r2 && (r1 != LENSNET_OK || same_image(&x, &y, 0, &differ));
      compared += r1 == LENSNET_OK;
      lensnet_tensor_free(&x);
      lensnet_tensor_free(&y);
      if (hdu >= 0) {
        r1 = lensnet_fits_header_value(path, hdu, "NAXIS", a, sizeof a, &e);
        r2 = lensnet_fits_header_value(gz, hdu, "NAXIS", b, sizeof b, &e);
        same &= r1 == r2 && (r1 != LENSNET_OK || !strcmp(a, b));
      }
    }
  }
  CHECK(same && compared >= 8, "every HDU of the gzipped files reads as the file itself (%d images compared)", compared);
  /* a file whose gzip stream holds coded blocks and then stored ones (zeros, then random bits
   * that DEFLATE cannot shrink) */
  {
    size_t shape[2] = {512, 512}, i, differ = 0;
    uint64_t seed = 77;
    CHECK(lensnet_tensor_alloc(&x, 2, shape, &e) == LENSNET_OK, "alloc");
    for (i = 256 * 512; i < 512 * 512; i++) {
      uint32_t u = (uint32_t)rng_next(&seed); /* any bits: NaN and infinities too */
      memcpy(&x.data[i], &u, 4);
    }
    CHECK(lensnet_fits_write("build/formats/mixed.fits", &x, &e) == LENSNET_OK && system("gzip -c build/formats/mixed.fits > build/formats/mixed.fits.gz") == 0,
          "write and gzip");
    CHECK(lensnet_fits_read("build/formats/mixed.fits.gz", -1, &y, &e) == LENSNET_OK && same_image(&x, &y, 0, &differ),
          "coded then stored blocks: %s (%lu values differ)", e.message, (unsigned long)differ);
    lensnet_tensor_free(&x);
    lensnet_tensor_free(&y);
  }
  /* the pixel scale and WCS of a file with a TAN WCS */
  {
    lensnet_wcs w1, w2;
    snprintf(path, sizeof path, "tests/fuzz/corpus/fits/wcs.fits");
    snprintf(cmd, sizeof cmd, "gzip -c %s > build/formats/wcs.fits.gz", path);
    CHECK(system(cmd) == 0, "gzip wcs.fits");
    CHECK(lensnet_fits_pixel_scale(path, -1, &s1, &key, &e) == LENSNET_OK && lensnet_fits_pixel_scale("build/formats/wcs.fits.gz", -1, &s2, &key, &e) == LENSNET_OK &&
              s1 == s2, "pixel scale %g and %g", s1, s2);
    CHECK(lensnet_fits_wcs(path, -1, &w1, &e) == LENSNET_OK && lensnet_fits_wcs("build/formats/wcs.fits.gz", -1, &w2, &e) == LENSNET_OK &&
              !memcmp(&w1, &w2, sizeof w1), "the same WCS");    {
      /* lensnet_fits_file_bytes: the file's bytes once, a .gz inflated: the plain file's bytes */
      unsigned char *b1 = NULL, *b2 = NULL;
      size_t n1 = 0, n2 = 0, plain_len = 0;
      unsigned char *plain = slurp(path, &plain_len);
      CHECK(lensnet_fits_file_bytes(path, &b1, &n1, &e) == LENSNET_OK && lensnet_fits_file_bytes("build/formats/wcs.fits.gz", &b2, &n2, &e) == LENSNET_OK &&
                plain && n1 == plain_len && n2 == plain_len && !memcmp(b1, plain, n1) && !memcmp(b2, plain, n2),
            "lensnet_fits_file_bytes: the file's bytes, inflated from its .gz alike: %s", e.message);
      CHECK(b2 && lensnet_fits_wcs_memory(b2, n2, -1, &w2, &e) == LENSNET_OK && !memcmp(&w1, &w2, sizeof w1), "and the WCS read from them");
      lensnet_free(b1);
      lensnet_free(b2);
      free(plain);
      CHECK(lensnet_fits_file_bytes("build/formats/no_such.fits", &b1, &n1, &e) == LENSNET_ERR_IO && !b1 && strstr(e.message, "no_such.fits"),
            "a missing file named: %s", e.message);
    }
  }
  whole = slurp("build/formats/gz0.fits.gz", &len);
  if (!whole) { CHECK(0, "cannot read build/formats/gz0.fits.gz"); return; }
  /* cut short */
  c = copy_bytes(whole, len - 100);
  r = lensnet_fits_read_memory(c, len - 100, -1, &x, &e);
  CHECK(r == LENSNET_ERR_FORMAT && strstr(e.message, "gzip") && strstr(e.message, "gunzip it first)"), "a cut .fits.gz, the whole message: %s",
        e.message);
  free(c);
  /* a byte changed in the compressed data: the CRC or the stream says so */
  c = copy_bytes(whole, len);
  c[len / 2] ^= 0x10;
  r = lensnet_fits_read_memory(c, len, -1, &x, &e);
  CHECK(r == LENSNET_ERR_FORMAT && strstr(e.message, "gzip") && !x.data, "a damaged .fits.gz: %s", e.message);
  free(c);
  /* a trailer claiming 4 GB: refused before allocating */
  c = copy_bytes(whole, len);
  c[len - 1] = 0xff;
  largest_request = 0;
  r = lensnet_fits_read_memory(c, len, -1, &x, &e);
  CHECK(r == LENSNET_ERR_FORMAT && strstr(e.message, "cannot make") && largest_request < 64 * 1024, "a claimed size of 4 GB: %s (largest allocation %lu)",
        e.message, (unsigned long)largest_request);
  free(c);
  /* two gzip members, as `cat a.gz b.gz` makes */
  c = (unsigned char *)malloc(2 * len);
  if (c) {
    memcpy(c, whole, len);
    memcpy(c + len, whole, len);
    r = lensnet_fits_read_memory(c, 2 * len, -1, &x, &e);
    CHECK(r == LENSNET_ERR_FORMAT && strstr(e.message, "several gzip members"), "two members: %s", e.message);
    free(c);
  }
  free(whole);
}

/* Sets the integer value of header card `key` (the first one) in a copy of a file. */
static int set_card_int(unsigned char *b, size_t len, const char *key, long long v) {
  size_t i, k = strlen(key);
  char text[32];
  for (i = 0; i + 80 <= len; i += 80)
    if (!memcmp(b + i, key, k) && b[i + k] == ' ' && b[i + 8] == '=') {
      snprintf(text, sizeof text, "%20lld", v);
      memcpy(b + i + 10, text, 20);
      return 1;
    }
  return 0;
}

/* A header claiming a far larger image than its compressed data can hold (the same number of
 * tiles, each 10^5 times larger) is refused before the image is allocated. */
static void test_compressed_claims(void) {
  char path[1024];
  size_t len;
  unsigned char *whole, *c;
  lensnet_tensor t;
  lensnet_error e;
  lensnet_result r;
  snprintf(path, sizeof path, "%s/fits/compressed/rice_int16_tiles.fits.fz", check_data_dir());
  whole = slurp(path, &len);
  if (!whole) { CHECK(0, "cannot read %s", path); return; }
  c = copy_bytes(whole, len);
  /* 61 x 47 in 16 x 16 tiles (4 x 3) becomes 6,100,000 x 4,700,000 in 1,600,000 x 1,600,000 */
  CHECK(set_card_int(c, len, "ZNAXIS1", 6100000) && set_card_int(c, len, "ZNAXIS2", 4700000) && set_card_int(c, len, "ZTILE1", 1600000) &&
            set_card_int(c, len, "ZTILE2", 1600000), "the cards to change are in the file");
  largest_request = 0;
  r = lensnet_fits_read_memory(c, len, -1, &t, &e);
  CHECK(r == LENSNET_ERR_FORMAT && strstr(e.message, "cannot hold") && strstr(e.message, "tile 1"), "a huge claimed image: %d %s", r, e.message);
  CHECK(largest_request < 64 * 1024, "largest allocation %lu bytes for a %lu-byte file", (unsigned long)largest_request, (unsigned long)len);
  lensnet_tensor_free(&t);
  free(c);
  /* a Rice BLOCKSIZE far beyond the 16 or 32 of practice, which would let a few bits stand for
   * millions of pixels */
  c = copy_bytes(whole, len);
  CHECK(set_card_int(c, len, "ZVAL1", 1000000), "the BLOCKSIZE card is ZVAL1");
  r = lensnet_fits_read_memory(c, len, -1, &t, &e);
  CHECK(r == LENSNET_ERR_FORMAT && strstr(e.message, "BLOCKSIZE"), "BLOCKSIZE 1000000: %s", e.message);
  lensnet_tensor_free(&t);
  free(c);
  /* a download cut inside the compressed image's header says so */
  r = lensnet_fits_read_memory(whole, 3000, -1, &t, &e);
  CHECK(r == LENSNET_ERR_FORMAT && strstr(e.message, "truncated") && strstr(e.message, "HDU 1"), "cut at 3000 bytes: %s", e.message);
  lensnet_tensor_free(&t);
  /* more tiles than table rows */
  c = copy_bytes(whole, len);
  set_card_int(c, len, "ZNAXIS1", 6100000);
  r = lensnet_fits_read_memory(c, len, -1, &t, &e);
  CHECK(r == LENSNET_ERR_FORMAT && strstr(e.message, "12 rows for 1143750 tiles"), "tiles against rows: %s", e.message);
  lensnet_tensor_free(&t);
  free(c);
  free(whole);
}

/* Every byte of the compressed data of a file changed, one at a time, and the file cut short
 * at every 97th byte: each read succeeds or fails with a message, never reading outside the
 * file (run under the sanitizer build). */
static void test_compressed_damage(void) {
  static const char *names[] = {"rice_int16_tiles.fits.fz", "rice_float_dither1.fits.fz", "gzip2_int32_tiles.fits.fz", "gzip1_float64.fits.fz"};
  size_t k, i;
  int ok = 0, refused = 0, bad = 0;
  for (k = 0; k < sizeof names / sizeof names[0]; k++) {
    char path[1024];
    size_t len;
    unsigned char *whole;
    snprintf(path, sizeof path, "%s/fits/compressed/%s", check_data_dir(), names[k]);
    whole = slurp(path, &len);
    if (!whole) { CHECK(0, "cannot read %s", path); continue; }
    for (i = 5760; i < len; i++) { /* the table and heap start after the two headers */
      unsigned char *c = copy_bytes(whole, len);
      lensnet_tensor t;
      lensnet_error e;
      lensnet_result r;
      c[i] ^= (unsigned char)(1u << (i % 8));
      r = lensnet_fits_read_memory(c, len, -1, &t, &e);
      if (r == LENSNET_OK) ok++;
      else if (clean_error(r, &e) && !t.data) refused++;
      else bad++;
      lensnet_tensor_free(&t);
      free(c);
    }
    for (i = 0; i < len; i += 97) {
      unsigned char *c = copy_bytes(whole, i);
      lensnet_tensor t;
      lensnet_error e;
      lensnet_result r = lensnet_fits_read_memory(c, i, -1, &t, &e);
      /* refused, unless only the last block's padding is gone (which the reader accepts) */
      if (r == LENSNET_OK ? i + 2880 < len : !clean_error(r, &e)) bad++;
      lensnet_tensor_free(&t);
      free(c);
    }
    free(whole);
  }
  printf("   %d damaged files read, %d refused\n", ok, refused);
  CHECK(bad == 0, "%d damaged inputs gave an unclean result", bad);
  CHECK(refused > 0, "flipped bits in the compressed data must be found (a gzip CRC, a descriptor, a short stream)");
}

/* fpack, funpack and imcopy (Debian's libcfitsio-bin), when installed: images made here in every
 * BITPIX, compressed with each algorithm and tiling and quantisation fpack offers, read against
 * CFITSIO's decompression of the same file. */
static void test_compressed_fpack(void) {
  static const struct { int bitpix, nx, ny, nz; double bzero; const char *opts; } cases[] = { /* quantised floats last */
      {16, 61, 47, 1, 32768.0, ""},         {16, 61, 47, 1, 0.0, "-t 16,16"},   {16, 33, 20, 1, 0.0, "-w"},
      {32, 40, 33, 1, 0.0, ""},             {32, 40, 33, 1, 0.0, "-t 7,5"},      {8, 37, 29, 1, 0.0, ""},
      {-32, 64, 50, 1, 0.0, "-q 4"},         {-32, 64, 50, 1, 0.0, "-qz 4"},       {-32, 64, 50, 1, 0.0, "-q0 4"},
      {-32, 64, 50, 1, 0.0, "-q 1 -t 20,20"}, {-32, 64, 50, 1, 0.0, "-g -q 0"},    {-32, 64, 50, 1, 0.0, "-g2"},
      {-64, 30, 20, 1, 0.0, "-q 2"},         {-64, 30, 20, 1, 0.0, "-g -q 0"},    {16, 61, 47, 1, 32768.0, "-g"},
      {16, 61, 47, 1, 0.0, "-g2 -t 9,9"},    {32, 40, 33, 1, 0.0, "-g2 -t 8,8"},  {16, 20, 18, 4, 0.0, "-t 8,8,2"},
      {16, 20, 18, 4, 0.0, "-g2"},          {-32, 20, 18, 3, 0.0, "-q 4 -t 20,18,1"}, {16, 300, 2, 1, 0.0, "-t 300,1"},
      {-32, 64, 50, 1, 0.0, "-d -q 4"},       {16, 1, 1, 1, 0.0, ""},             {-32, 1, 200, 1, 0.0, "-q 4"},
  };
  size_t k;
  int matched = 0, tiles2d;
  if (system("command -v fpack >/dev/null 2>&1 && command -v funpack >/dev/null 2>&1 && command -v imcopy >/dev/null 2>&1") != 0) {
    SKIP("fpack, funpack and imcopy are not installed (Debian: libcfitsio-bin); the stored files of test_compressed still ran");
    return;
  }
  for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char raw[256], packed[256], unpacked[256], cmd[1200];
    snprintf(raw, sizeof raw, "build/formats/fpack%lu.fits", (unsigned long)k);
    snprintf(packed, sizeof packed, "build/formats/fpack%lu.fits.fz", (unsigned long)k);
    snprintf(unpacked, sizeof unpacked, "build/formats/fpack%lu.funpack.fits", (unsigned long)k);
    remove(packed);
    remove(unpacked);
    if (!write_image_fits(raw, cases[k].bitpix, cases[k].nx, cases[k].ny, cases[k].nz, 100 + k, cases[k].bzero)) { CHECK(0, "cannot write %s", raw); continue; }
    /* quantised floats in tiles narrower than the image: imcopy, as funpack 1.7.0 gets those with NaN pixels wrong */
    tiles2d = cases[k].bitpix < 0 && strstr(cases[k].opts, "-t ") && !strstr(cases[k].opts, "-q 0");
    snprintf(cmd, sizeof cmd, "fpack %s -O %s %s >/dev/null 2>&1 && %s %s %s >/dev/null 2>&1", cases[k].opts, packed, raw,
             tiles2d ? "imcopy" : "funpack -O", tiles2d ? packed : unpacked, tiles2d ? unpacked : packed);
    if (system(cmd) != 0) { CHECK(0, "%s failed", cmd); continue; }
    if (compare_with_cfitsio(packed, unpacked, tiles2d)) matched++;
    else printf("   (fpack %s, BITPIX %d)\n", cases[k].opts, cases[k].bitpix);
  }
  printf("   %d of %d fpack files match CFITSIO's decompression\n", matched, (int)(sizeof cases / sizeof cases[0]));
}

/* Pan-STARRS1 stack images store C = a asinh((L - BOFFSET) / (2 BSOFTEN)) of the flux L, a = 2.5
 * log10(e), as 16-bit integers with BSCALE and BZERO (the PS1 IPP's asinh compression). The file
 * here is made by that formula from chosen fluxes L; reading must give L back, within what the
 * integers' step in C allows: |dL/dC| BSCALE / 2, dL/dC = 2 BSOFTEN cosh(C / a) / a. */
static void test_ps1_asinh(void) {
  const double a = 2.5 / log(10.0), boffset = 12.5, bsoften = 3.25, bscale = 1.0e-3;
  const double flux[6] = {-40.0, 0.0, 12.5, 250.0, 1.0e4, 3.0e5};
  lensnet_tensor t, t2;
  lensnet_error e;
  buf f = {0, 0, 0};
  char line[81];
  size_t k, bad = 0;
  FILE *out;
  primary_2d(&f, 16, 7, 1);
  snprintf(line, sizeof line, "BSCALE  = %20.6g", bscale); card(&f, line);
  card(&f, "BZERO   =                  0.0");
  card(&f, "BLANK   =               -32768");
  snprintf(line, sizeof line, "BSOFTEN = %20.6g / asinh softening", bsoften); card(&f, line);
  snprintf(line, sizeof line, "BOFFSET = %20.6g / asinh offset", boffset); card(&f, line);
  end_header(&f);
  for (k = 0; k < 6; k++) {
    double c = a * asinh((flux[k] - boffset) / (2.0 * bsoften));
    put_be(&f, (uint64_t)(uint16_t)(int16_t)lround(c / bscale), 2);
  }
  put_be(&f, 0x8000, 2); /* BLANK */
  pad_data(&f);
  CHECK(read_buf(&f, 0, &t, &e) == LENSNET_OK && t.shape[1] == 7, "a PS1 stack image reads: %s", e.message);
  if (t.data) {
    for (k = 0; k < 6; k++) {
      double c = a * asinh((flux[k] - boffset) / (2.0 * bsoften)), step = 2.0 * bsoften * cosh(c / a) / a * bscale / 2.0;
      double tol = step * 1.01 + 1e-6 * fabs(flux[k]) + 1e-6;
      if (!(fabs(t.data[k] - flux[k]) <= tol)) { bad++; printf("   flux %g read as %.9g (within %g)\n", flux[k], t.data[k], tol); }
    }
    CHECK(bad == 0 && isnan(t.data[6]), "linear fluxes back from the asinh values, BLANK still NaN (%lu off)", (unsigned long)bad);
  }
  /* the same image through fpack: the keywords ride in the compressed header and are used there */
  out = fopen("build/formats/ps1.fits", "wb");
  if (out) { fwrite(f.b, 1, f.len, out); fclose(out); }
  if (system("command -v fpack >/dev/null 2>&1") != 0) SKIP("fpack is not installed (Debian: libcfitsio-bin): the .fits.fz form of a PS1 image was not made");
  else if (system("rm -f build/formats/ps1.fits.fz && fpack build/formats/ps1.fits >/dev/null 2>&1") != 0) CHECK(0, "fpack build/formats/ps1.fits failed");
  else {
    CHECK(lensnet_fits_read("build/formats/ps1.fits.fz", 1, &t2, &e) == LENSNET_OK, "ps1.fits.fz: %s", e.message);
    if (t.data && t2.data) CHECK(same_image(&t, &t2, 0, &bad), "fpack's lossless copy reads as the same linear fluxes (%lu differ)", (unsigned long)bad);
    lensnet_tensor_free(&t2);
  }
  lensnet_tensor_free(&t);
  /* BSOFTEN alone is not the PS1 scaling: values as stored (after BSCALE) */
  f.len = 0;
  primary_2d(&f, -32, 1, 1); card(&f, "BSOFTEN =                  3.0"); end_header(&f);
  put_f32(&f, 2.0f); pad_data(&f);
  CHECK(read_buf(&f, 0, &t, &e) == LENSNET_OK && t.data[0] == 2.0f, "BSOFTEN without BOFFSET: the value as stored: %s", e.message);
  lensnet_tensor_free(&t);
  f.len = 0;
  primary_2d(&f, -32, 1, 1); card(&f, "BSOFTEN = 'soft'"); card(&f, "BOFFSET =                  1.0"); end_header(&f);
  put_f32(&f, 2.0f); pad_data(&f);
  CHECK(read_buf(&f, 0, &t, &e) == LENSNET_ERR_FORMAT && strstr(e.message, "BSOFTEN") && !t.data, "a BSOFTEN that is not a number is named: %s", e.message);
  free(f.b);
}

/* ---- writing ------------------------------------------------------------------------------ */

static void test_write_roundtrip(void) {
  static const float specials[] = {0.0f, -0.0f, 1.0f, -2.5f, 3.0e38f, -1.0e-45f, 1.17549435e-38f};
  const char *path = "build/test_fits_roundtrip.fits";
  lensnet_tensor t, back;
  lensnet_error e;
  size_t shape[3] = {3, 5, 7}, i, len;
  unsigned char *bytes;
  char v[32];
  int count = 0, same = 1;
  FILE *tmp;
  CHECK(lensnet_tensor_alloc(&t, 3, shape, &e) == LENSNET_OK, "%s", e.message);
  for (i = 0; i < 105; i++) t.data[i] = (float)i * 0.25f - 7.0f;
  for (i = 0; i < sizeof specials / sizeof specials[0]; i++) t.data[10 + i] = specials[i];
  t.data[0] = NAN; t.data[50] = INFINITY; t.data[104] = -INFINITY;
  t.data[1] = 1.0f; /* bytes 3F 80 00 00 big-endian */
  CHECK(lensnet_fits_write(path, &t, &e) == LENSNET_OK, "%s", e.message);
  bytes = slurp(path, &len);
  CHECK(bytes && len == 2 * 2880, "a header block and a data block: %lu bytes", (unsigned long)len);
  if (bytes && len == 2 * 2880) {
    CHECK(memcmp(bytes, "SIMPLE  =                    T", 30) == 0, "first card: %.30s", bytes);
    CHECK(memcmp(bytes + 80, "BITPIX  =                  -32", 30) == 0, "second card: %.30s", bytes + 80);
    CHECK(memcmp(bytes + 160, "NAXIS   =                    3", 30) == 0, "third card: %.30s", bytes + 160);
    CHECK(memcmp(bytes + 240, "NAXIS1  =                    7", 30) == 0, "NAXIS1 is the last NumPy axis: %.30s", bytes + 240);
    CHECK(memcmp(bytes + 320, "NAXIS2  =                    5", 30) == 0, "NAXIS2: %.30s", bytes + 320);
    CHECK(memcmp(bytes + 400, "NAXIS3  =                    3", 30) == 0, "NAXIS3: %.30s", bytes + 400);
    CHECK(memcmp(bytes + 480, "END     ", 8) == 0, "END card: %.8s", bytes + 480);
    for (i = 483; i < 2880; i++) if (bytes[i] != ' ') break;
    CHECK(i == 2880, "the header is blank-padded (byte %lu is 0x%02x)", (unsigned long)i, i < 2880 ? bytes[i] : 0);
    CHECK(bytes[2884] == 0x3F && bytes[2885] == 0x80 && bytes[2886] == 0 && bytes[2887] == 0, "1.0f is stored big-endian");
    for (i = 2880 + 420; i < len; i++) if (bytes[i] != 0) break;
    CHECK(i == len, "the data is zero-padded");
  }
  free(bytes);
  CHECK(lensnet_fits_read(path, 0, &back, &e) == LENSNET_OK && back.ndim == 3 && back.shape[0] == 3 && back.shape[1] == 5 && back.shape[2] == 7,
        "read back: %s", e.message);
  for (i = 0; back.data && i < 105; i++)
    if (!(isnan(t.data[i]) ? isnan(back.data[i]) : memcmp(&t.data[i], &back.data[i], 4) == 0)) same = 0;
  CHECK(same, "every value, NaN, infinities, -0 and subnormals included, reads back bit for bit");
  CHECK(lensnet_fits_hdu_count(path, &count, &e) == LENSNET_OK && count == 1, "one HDU");
  CHECK(lensnet_fits_header_value(path, 0, "NAXIS3", v, sizeof v, &e) == LENSNET_OK && !strcmp(v, "3"), "NAXIS3 %s", v);
  tmp = fopen("build/test_fits_roundtrip.fits.tmp", "rb");
  CHECK(tmp == NULL, "no temporary file is left behind");
  if (tmp) fclose(tmp);
  lensnet_tensor_free(&back);
  lensnet_tensor_free(&t);

  /* 1-D, a whole block of data exactly (720 floats) */
  shape[0] = 720;
  CHECK(lensnet_tensor_alloc(&t, 1, shape, &e) == LENSNET_OK, "%s", e.message);
  for (i = 0; i < 720; i++) t.data[i] = (float)i;
  CHECK(lensnet_fits_write(path, &t, &e) == LENSNET_OK, "%s", e.message);
  bytes = slurp(path, &len);
  CHECK(len == 2 * 2880, "720 floats fill one block exactly: %lu bytes", (unsigned long)len);
  free(bytes);
  CHECK(lensnet_fits_read(path, -1, &back, &e) == LENSNET_OK && back.ndim == 1 && back.shape[0] == 720 && back.data[719] == 719.0f, "1-D: %s", e.message);
  lensnet_tensor_free(&back);
  /* refused: a tensor without axes, a path that cannot be written */
  t.ndim = 0;
  CHECK(lensnet_fits_write(path, &t, &e) == LENSNET_ERR_ARG, "a 0-D tensor is refused");
  t.ndim = 1;
  CHECK(lensnet_fits_write("/nonexistent/dir/x.fits", &t, &e) == LENSNET_ERR_IO, "an unwritable path: %s", e.message);
  lensnet_tensor_free(&t);
  remove(path);
}

/* ---- .npy: hand-made files in both byte orders, and malformed ones -------------------------- */

/* A version-1 .npy file: magic, header length, the header text padded with blanks and a newline
 * to a multiple of `align` bytes (64 as numpy writes today, 16 as older numpy wrote), the data. */
static void npy_build_aligned(buf *f, const char *header, const void *data, size_t n, size_t align) {
  char h[256];
  size_t hl;
  snprintf(h, sizeof h, "%s", header);
  hl = strlen(h);
  while ((10 + hl + 1) % align) h[hl++] = ' ';
  h[hl++] = '\n';
  f->len = 0;
  buf_put(f, "\x93NUMPY\x01\x00", 8);
  {
    unsigned char l[2];
    l[0] = (unsigned char)(hl & 0xFF); l[1] = (unsigned char)(hl >> 8);
    buf_put(f, l, 2);
  }
  buf_put(f, h, hl);
  if (n) buf_put(f, data, n);
}

static void npy_build(buf *f, const char *header, const void *data, size_t n) { npy_build_aligned(f, header, data, n, 64); }

/* The header of a dtype (descr, which may carry its own fortran_order) and a shape, 16-aligned. */
static void npy_build_descr(buf *f, const char *descr, const char *shape, const void *data, size_t n) {
  char header[200];
  if (strstr(descr, "fortran_order")) snprintf(header, sizeof header, "{'descr': %s, 'shape': %s, }", descr, shape);
  else snprintf(header, sizeof header, "{'descr': %s, 'fortran_order': False, 'shape': %s, }", descr, shape);
  npy_build_aligned(f, header, data, n, 16);
}

static lensnet_result npy_read_buf(const buf *f, size_t n, lensnet_tensor *t, lensnet_error *e) {
  unsigned char *c = copy_bytes(f->b, n);
  lensnet_result r = lensnet_npy_read_memory(c, n, t, e);
  free(c);
  return r;
}

static int write_buf(const char *path, const buf *f, size_t n);

static void test_npy(void) {
  /* 1.5 and -2.0 as IEEE doubles: 3FF8000000000000, C000000000000000 */
  static const unsigned char f8le[] = {0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0, 0, 0, 0, 0, 0, 0, 0xC0};
  static const unsigned char f8be[] = {0x3F, 0xF8, 0, 0, 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0};
  /* -3 and 5 as 64-bit integers */
  static const unsigned char i8le[] = {0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 5, 0, 0, 0, 0, 0, 0, 0};
  static const unsigned char i8be[] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFD, 0, 0, 0, 0, 0, 0, 0, 5};
  static const unsigned char u1[] = {0, 255, 7, 128, 1, 2};
  /* 0.5 as a big-endian float32: 3F000000 */
  static const unsigned char f4be[] = {0x3F, 0, 0, 0};
  static const struct { const char *header; const unsigned char *data; size_t n; int ndim; size_t s0, s1; float v[6]; } good[] = {
    {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", f8le, 16, 1, 2, 0, {1.5f, -2.0f}},
    {"{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", f8be, 16, 1, 2, 0, {1.5f, -2.0f}},
    {"{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }", i8le, 16, 2, 1, 2, {-3.0f, 5.0f}},
    {"{'descr': '>i8', 'fortran_order': False, 'shape': (2, 1), }", i8be, 16, 2, 2, 1, {-3.0f, 5.0f}},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", u1, 6, 2, 2, 3, {0, 255, 7, 128, 1, 2}},
    {"{'descr': '>f4', 'fortran_order': False, 'shape': (), }", f4be, 4, 0, 0, 0, {0.5f}},
  };
  static const char *bad_headers[] = {
    "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }",
    "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2x,), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': 2, }",
    "{'descr': '<f4', 'fortran_order': False, }",
    "{'fortran_order': False, 'shape': (2,), }",
    "{'descr': '<f4', 'shape': (2,), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2,",
    "{'descr': 'f4', 'fortran_order': False, 'shape': (2,), }",
    "{'descr': '<f3', 'fortran_order': False, 'shape': (2,), }",
  };
  buf f = {0, 0, 0};
  lensnet_tensor t;
  lensnet_error e;
  size_t k, cut;
  int i, wrong = 0;
  for (k = 0; k < sizeof good / sizeof good[0]; k++) {
    lensnet_result r;
    size_t n;
    npy_build(&f, good[k].header, good[k].data, good[k].n);
    r = npy_read_buf(&f, f.len, &t, &e);
    CHECK(r == LENSNET_OK && t.ndim == good[k].ndim, "npy %s: %s", good[k].header, r ? e.message : "wrong rank");
    if (r != LENSNET_OK) continue;
    if (t.ndim >= 1) CHECK(t.shape[0] == good[k].s0, "npy %s: shape[0] %lu", good[k].header, (unsigned long)t.shape[0]);
    if (t.ndim >= 2) CHECK(t.shape[1] == good[k].s1, "npy %s: shape[1] %lu", good[k].header, (unsigned long)t.shape[1]);
    n = lensnet_tensor_count(&t);
    for (i = 0; i < (int)n; i++) CHECK(t.data[i] == good[k].v[i], "npy %s: value %d is %g, want %g", good[k].header, i, t.data[i], good[k].v[i]);
    lensnet_tensor_free(&t);
    /* every shorter file is an error */
    for (cut = 0; cut < f.len; cut++) {
      r = npy_read_buf(&f, cut, &t, &e);
      if (!clean_error(r, &e)) { wrong++; printf("   npy %s cut at %lu: result %d\n", good[k].header, (unsigned long)cut, r); }
      lensnet_tensor_free(&t);
    }
  }
  CHECK(wrong == 0, "%d truncated .npy files were not refused", wrong);
  for (k = 0; k < sizeof bad_headers / sizeof bad_headers[0]; k++) {
    lensnet_result r;
    npy_build(&f, bad_headers[k], f8le, 16);
    r = npy_read_buf(&f, f.len, &t, &e);
    CHECK(clean_error(r, &e) && t.data == NULL, "npy %s: result %d", bad_headers[k], r);
    lensnet_tensor_free(&t);
  }
  /* wrong magic, unknown version, header length past the end */
  npy_build(&f, good[0].header, f8le, 16);
  f.b[1] = 'X';
  CHECK(clean_error(npy_read_buf(&f, f.len, &t, &e), &e), "npy: bad magic");
  f.b[1] = 'N'; f.b[6] = 9;
  CHECK(clean_error(npy_read_buf(&f, f.len, &t, &e), &e), "npy: version 9");
  f.b[6] = 1; f.b[8] = 0xFF; f.b[9] = 0xFF;
  CHECK(clean_error(npy_read_buf(&f, f.len, &t, &e), &e), "npy: header length past the end");
  /* the messages say what is wrong: an empty file, a header cut short, the dtype as written */
  npy_build(&f, good[0].header, f8le, 16);
  CHECK(npy_read_buf(&f, 0, &t, &e) == LENSNET_ERR_FORMAT && strstr(e.message, "empty"), "an empty .npy: %s", e.message);
  CHECK(npy_read_buf(&f, 9, &t, &e) == LENSNET_ERR_FORMAT && strstr(e.message, "truncated") && !strstr(e.message, "magic"),
        "9 bytes of a .npy: %s", e.message);
  {
    static const char *const dtypes[][2] = {{"{'descr': '<c16', 'fortran_order': False, 'shape': (2,), }", "'<c16'"},
                                             {"{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", "'|O'"},
                                             {"{'descr': '<U12', 'fortran_order': False, 'shape': (2,), }", "'<U12'"}};
    for (k = 0; k < 3; k++) {
      npy_build(&f, dtypes[k][0], f8le, 16);
      CHECK(npy_read_buf(&f, f.len, &t, &e) == LENSNET_ERR_UNSUPPORTED && strstr(e.message, dtypes[k][1]) && !strstr(e.message, "', '"),
            "dtype %s named as written: %s", dtypes[k][1], e.message);
      lensnet_tensor_free(&t);
    }
  }
  npy_build(&f, good[0].header, f8le, 16);
  if (write_buf("build/npy_empty.npy", &f, 0) && write_buf("build/npy_cut9.npy", &f, 9)) {
    CHECK(lensnet_npy_read("build/npy_empty.npy", &t, &e) == LENSNET_ERR_FORMAT && strstr(e.message, "empty"), "an empty .npy file: %s", e.message);
    CHECK(lensnet_npy_read("build/npy_cut9.npy", &t, &e) == LENSNET_ERR_FORMAT && strstr(e.message, "truncated") && !strstr(e.message, "magic"),
          "a .npy file of 9 bytes: %s", e.message);
    remove("build/npy_empty.npy");
    remove("build/npy_cut9.npy");
  } else CHECK(0, "writing build/npy_empty.npy");
  free(f.b);
}

/* ---- .npy from a file by rows: lensnet_npy_info_read and lensnet_npy_read_rows ---------------- */

static int write_buf(const char *path, const buf *f, size_t n) {
  FILE *o = fopen(path, "wb");
  int ok = o && fwrite(f->b, 1, n, o) == n;
  if (o) ok &= fclose(o) == 0;
  return ok;
}

static void test_npy_rows(void) {
  /* [5, 3, 2] big-endian int16 holding 0..29, and [4, 2] little-endian float64 */
  unsigned char i2be[60], f8le[64];
  buf f = {0, 0, 0};
  lensnet_npy_info info;
  lensnet_tensor t;
  lensnet_error e;
  size_t first, count, i, cut;
  int wrong = 0;
  for (i = 0; i < 30; i++) { i2be[2 * i] = 0; i2be[2 * i + 1] = (unsigned char)i; }
  for (i = 0; i < 8; i++) {
    double d = -1.5 + (double)i;
    uint64_t u;
    int b;
    memcpy(&u, &d, 8);
    for (b = 0; b < 8; b++) f8le[8 * i + b] = (unsigned char)(u >> (8 * b)); /* little-endian on any host */
  }
  npy_build(&f, "{'descr': '>i2', 'fortran_order': False, 'shape': (5, 3, 2), }", i2be, sizeof i2be);
  CHECK(write_buf("build/t_rows.npy", &f, f.len), "write build/t_rows.npy");
  CHECK(lensnet_npy_info_read("build/t_rows.npy", &info, &e) == LENSNET_OK, "info: %s", e.message);
  CHECK(info.ndim == 3 && info.shape[0] == 5 && info.shape[1] == 3 && info.shape[2] == 2 && info.kind == 'i' && info.item_size == 2 &&
        info.big_endian && info.data_offset == f.len - sizeof i2be, "info of [5,3,2] >i2: ndim %d, offset %lu", info.ndim, (unsigned long)info.data_offset);
  /* every slice, against the values themselves */
  for (first = 0; first <= 5; first++)
    for (count = 0; first + count <= 5; count++) {
      if (lensnet_npy_read_rows("build/t_rows.npy", first, count, &t, &e) != LENSNET_OK) { wrong++; continue; }
      if (t.ndim != 3 || t.shape[0] != count || t.shape[1] != 3 || t.shape[2] != 2) wrong++;
      for (i = 0; i < count * 6; i++)
        if (t.data[i] != (float)(first * 6 + i)) wrong++;
      lensnet_tensor_free(&t);
    }
  CHECK(wrong == 0, "%d wrong row slices of [5,3,2]", wrong);
  CHECK(lensnet_npy_read_rows("build/t_rows.npy", 4, 2, &t, &e) == LENSNET_ERR_ARG && t.data == NULL && strstr(e.message, "rows 4 to 6"),
        "rows past the end refused: %s", e.message);
  /* a truncated file: every cut refused by both, cleanly */
  wrong = 0;
  for (cut = 0; cut < f.len; cut++) {
    write_buf("build/t_rows.npy", &f, cut);
    if (lensnet_npy_info_read("build/t_rows.npy", &info, &e) == LENSNET_OK || !e.message[0]) wrong++;
    if (lensnet_npy_read_rows("build/t_rows.npy", 0, 1, &t, &e) == LENSNET_OK || t.data != NULL) wrong++;
  }
  CHECK(wrong == 0, "%d truncated files read", wrong);
  /* doubles, converted, from the middle */
  npy_build(&f, "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 2), }", f8le, sizeof f8le);
  write_buf("build/t_rows.npy", &f, f.len);
  CHECK(lensnet_npy_read_rows("build/t_rows.npy", 1, 2, &t, &e) == LENSNET_OK && t.shape[0] == 2 && t.data[0] == 0.5f && t.data[3] == 3.5f,
        "f8 rows 1-2: %s", e.message);
  lensnet_tensor_free(&t);
  CHECK(lensnet_npy_info_read("build/missing.npy", &info, &e) == LENSNET_ERR_IO && strstr(e.message, "missing.npy"), "a missing file named");
  CHECK(lensnet_npy_info_read("build", &info, &e) == LENSNET_ERR_IO && strstr(e.message, "is a folder"), "a folder named as one: %s", e.message);
  CHECK(lensnet_npy_read("build", &t, &e) == LENSNET_ERR_IO && strstr(e.message, "is a folder"), "a folder named as one (whole read): %s", e.message);
  remove("build/t_rows.npy");
  free(f.b);
}

/* ---- .npy: the whole-array writer and reader, types of older writers ------------------------ */

static void test_npy_round_trip_and_types(void) {
  buf f = {0, 0, 0};
  lensnet_error err;
  lensnet_tensor t, r;
  size_t shape[3] = {2, 3, 4}, i;
  CHECK(lensnet_tensor_alloc(&t, 3, shape, &err) == LENSNET_OK, "alloc");
  for (i = 0; i < 24; i++) t.data[i] = (float)i * 0.5f - 3.0f;
  CHECK(lensnet_npy_write("build/t_roundtrip.npy", &t, &err) == LENSNET_OK, "write: %s", err.message);
  CHECK(lensnet_npy_read("build/t_roundtrip.npy", &r, &err) == LENSNET_OK, "read: %s", err.message);
  CHECK(r.ndim == 3 && r.shape[0] == 2 && r.shape[1] == 3 && r.shape[2] == 4, "shape survives");
  CHECK(r.data && !memcmp(r.data, t.data, 24 * sizeof(float)), "values survive");
  lensnet_tensor_free(&r);
#if defined(__unix__) || defined(__APPLE__)
  { /* from a FIFO (a pipe, /dev/stdin): a file that cannot be sought is read whole, not by rows */
    FILE *writer;
    remove("build/t_fifo.npy");
    if (mkfifo("build/t_fifo.npy", 0600) != 0 || !(writer = popen("cat build/t_roundtrip.npy > build/t_fifo.npy", "r")))
      printf("SKIP: no FIFO here\n");
    else {
      CHECK(lensnet_npy_read("build/t_fifo.npy", &r, &err) == LENSNET_OK && r.ndim == 3 && r.shape[0] == 2 && r.data &&
                !memcmp(r.data, t.data, 24 * sizeof(float)),
            "read from a FIFO: %s", err.message);
      lensnet_tensor_free(&r);
      pclose(writer);
    }
    remove("build/t_fifo.npy");
  }
#endif
  lensnet_tensor_free(&t);
  remove("build/t_roundtrip.npy");
  {
    /* big-endian float64 [2]: 1.5, -2.0 */
    static const unsigned char f8be[] = {0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0};
    /* little-endian int64 [2]: -3, 7 */
    static const unsigned char i8le[] = {0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0, 0, 0, 0, 0};
    /* little-endian int16 [2]: -2, 300 */
    static const unsigned char i2le[] = {0xfe, 0xff, 0x2c, 0x01};
    /* uint8 [1, 3]: 0, 128, 255 */
    static const unsigned char u1[] = {0x00, 0x80, 0xff};
    npy_build_descr(&f, "'>f8'", "(2,)", f8be, sizeof f8be);
    CHECK(npy_read_buf(&f, f.len, &r, &err) == LENSNET_OK && r.data[0] == 1.5f && r.data[1] == -2.0f, ">f8: %s", err.message);
    lensnet_tensor_free(&r);
    npy_build_descr(&f, "'<i8'", "(2,)", i8le, sizeof i8le);
    CHECK(npy_read_buf(&f, f.len, &r, &err) == LENSNET_OK && r.data[0] == -3.0f && r.data[1] == 7.0f, "<i8: %s", err.message);
    lensnet_tensor_free(&r);
    npy_build_descr(&f, "'<i2'", "(2,)", i2le, sizeof i2le);
    CHECK(npy_read_buf(&f, f.len, &r, &err) == LENSNET_OK && r.data[0] == -2.0f && r.data[1] == 300.0f, "<i2: %s", err.message);
    lensnet_tensor_free(&r);
    npy_build_descr(&f, "'|u1'", "(1, 3)", u1, sizeof u1);
    CHECK(npy_read_buf(&f, f.len, &r, &err) == LENSNET_OK && r.ndim == 2 && r.data[1] == 128.0f && r.data[2] == 255.0f, "|u1: %s", err.message);
    lensnet_tensor_free(&r);
    npy_build_descr(&f, "'<f4'", "()", (const unsigned char *)"\0\0\x80\x3f", 4);
    CHECK(npy_read_buf(&f, f.len, &r, &err) == LENSNET_OK && r.ndim == 0 && r.data[0] == 1.0f, "0-d array: %s", err.message);
    lensnet_tensor_free(&r);
  }
  {
    npy_build_descr(&f, "'<f4', 'fortran_order': True", "(1,)", (const unsigned char *)"\0\0\0\0", 4);
    CHECK(npy_read_buf(&f, f.len, &r, &err) == LENSNET_ERR_UNSUPPORTED && strstr(err.message, "Fortran"), "Fortran order refused: %s", err.message);
    npy_build_descr(&f, "'<c8'", "(1,)", (const unsigned char *)"\0\0\0\0\0\0\0\0", 8);
    CHECK(npy_read_buf(&f, f.len, &r, &err) == LENSNET_ERR_UNSUPPORTED, "complex refused");
    npy_build_descr(&f, "'<f4'", "(9,)", (const unsigned char *)"\0\0\0\0", 4);
    CHECK(npy_read_buf(&f, f.len, &r, &err) == LENSNET_ERR_FORMAT && strstr(err.message, "truncated"), "truncation named: %s", err.message);
    npy_build_descr(&f, "'<f4'", "(99999999999, 99999999999)", (const unsigned char *)"\0\0\0\0", 4);
    CHECK(npy_read_buf(&f, f.len, &r, &err) == LENSNET_ERR_TOO_LARGE, "absurd shape refused: %s", err.message);
    CHECK(lensnet_npy_read("build/does-not-exist.npy", &r, &err) == LENSNET_ERR_IO && strstr(err.message, "does-not-exist"), "missing file named");
  }
  free(f.b);
}

/* ---- the streaming .npy writer (and lensnet_npy_write, which it serves) ----------------------- */

#define DIR "build/formats"

static int exists(const char *path) { return access(path, F_OK) == 0; }

static size_t read_bytes(const char *path, unsigned char *buf, size_t cap) {
  FILE *f = fopen(path, "rb");
  size_t n;
  if (!f) return 0;
  n = fread(buf, 1, cap, f);
  fclose(f);
  return n;
}

/* The header's dictionary (NUL-terminated in buf) and its total length, checked for form. */
static size_t header_of(unsigned char *buf, size_t n) {
  size_t len;
  if (n < 10 || memcmp(buf, "\x93NUMPY\x01\x00", 8)) return 0;
  len = 10 + (size_t)buf[8] + 256 * (size_t)buf[9];
  if (len > n || len % 64 || buf[len - 1] != '\n') return 0;
  buf[len - 1] = 0;
  return len;
}

static void test_npy_round_trip(void) {
  const char *path = DIR "/rt.npy", *tmp = DIR "/rt.npy.tmp";
  float values[12], more[5 * 3];
  size_t shape[3] = {3, 2, 2}, open_shape[2] = {LENSNET_NPY_ROWS_UNKNOWN, 3}, i;
  lensnet_npy_writer w;
  lensnet_tensor t;
  lensnet_error err;
  for (i = 0; i < 12; i++) values[i] = (float)i * 0.5f - 2.0f;
  for (i = 0; i < 15; i++) more[i] = (float)i;
  remove(path);
  CHECK(lensnet_npy_writer_begin(&w, path, 3, shape, &err) == LENSNET_OK, "begin: %s", err.message);
  CHECK(lensnet_npy_writer_append(&w, values, 1, &err) == LENSNET_OK && lensnet_npy_writer_append(&w, values + 4, 2, &err) == LENSNET_OK,
        "append: %s", err.message);
  CHECK(exists(tmp) && !exists(path), "until finish only the temporary name exists");
  CHECK(lensnet_npy_writer_finish(&w, 1, &err) == LENSNET_OK, "finish with fsync: %s", err.message);
  CHECK(exists(path) && !exists(tmp), "after finish only the final name exists");
  CHECK(lensnet_npy_read(path, &t, &err) == LENSNET_OK && t.ndim == 3 && t.shape[0] == 3 && t.shape[2] == 2 &&
        !memcmp(t.data, values, sizeof values), "read back");
  lensnet_tensor_free(&t);
  /* rows left open: the header is written again at finish, in the room reserved */
  CHECK(lensnet_npy_writer_begin(&w, path, 2, open_shape, &err) == LENSNET_OK, "begin with open rows: %s", err.message);
  for (i = 0; i < 5; i++) lensnet_npy_writer_append(&w, more + 3 * i, 1, &err);
  CHECK(lensnet_npy_writer_finish(&w, 0, &err) == LENSNET_OK, "finish: %s", err.message);
  CHECK(lensnet_npy_read(path, &t, &err) == LENSNET_OK && t.ndim == 2 && t.shape[0] == 5 && t.shape[1] == 3 &&
        !memcmp(t.data, more, sizeof more), "5 rows read back: %s", err.message);
  lensnet_tensor_free(&t);
  CHECK(lensnet_npy_writer_begin(&w, path, 2, open_shape, &err) == LENSNET_OK && lensnet_npy_writer_finish(&w, 0, &err) == LENSNET_OK &&
        lensnet_npy_read(path, &t, &err) == LENSNET_OK && t.shape[0] == 0 && t.shape[1] == 3, "no rows: shape (0, 3)");
  lensnet_tensor_free(&t);
  remove(path);
}

static void test_npy_whole_array_bytes(void) {
  static const char dict2[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  static const char dict1[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (5, ), }";
  unsigned char buf[256];
  float v[6] = {1, 2, 3, 4, 5, 6};
  size_t n, len;
  lensnet_tensor t;
  lensnet_error err;
  memset(&t, 0, sizeof t);
  t.ndim = 2; t.shape[0] = 2; t.shape[1] = 3; t.data = v;
  CHECK(lensnet_npy_write(DIR "/w.npy", &t, &err) == LENSNET_OK, "%s", err.message);
  n = read_bytes(DIR "/w.npy", buf, sizeof buf);
  len = header_of(buf, n);
  CHECK(len == 128 && !strncmp((char *)buf + 10, dict2, sizeof dict2 - 1) && n == 128 + 24, "header (2, 3) in 128 bytes, then 24 data bytes");
  CHECK(buf[128] == 0x00 && buf[129] == 0x00 && buf[130] == 0x80 && buf[131] == 0x3f, "little-endian 1.0f");
  t.ndim = 1; t.shape[0] = 5;
  lensnet_npy_write(DIR "/w.npy", &t, &err);
  n = read_bytes(DIR "/w.npy", buf, sizeof buf);
  CHECK(header_of(buf, n) == 128 && !strncmp((char *)buf + 10, dict1, sizeof dict1 - 1), "1-d header as before: (5, )");
  remove(DIR "/w.npy");
}

static void test_npy_abort_and_misuse(void) {
  const char *path = DIR "/ab.npy", *tmp = DIR "/ab.npy.tmp";
  size_t shape[2] = {2, 2};
  float v[8] = {0};
  lensnet_npy_writer w;
  lensnet_error err;
  lensnet_npy_writer_begin(&w, path, 2, shape, &err);
  lensnet_npy_writer_append(&w, v, 1, &err);
  lensnet_npy_writer_abort(&w);
  CHECK(!exists(path) && !exists(tmp), "abort leaves nothing");
  lensnet_npy_writer_abort(&w);
  CHECK(1, "a second abort is harmless");
  lensnet_npy_writer_begin(&w, path, 2, shape, &err);
  CHECK(lensnet_npy_writer_append(&w, v, 3, &err) == LENSNET_ERR_ARG && !exists(tmp), "more rows than the shape: %s", err.message);
  CHECK(lensnet_npy_writer_append(&w, v, 1, &err) == LENSNET_ERR_ARG, "the aborted writer refuses more");
  lensnet_npy_writer_begin(&w, path, 2, shape, &err);
  lensnet_npy_writer_append(&w, v, 1, &err);
  CHECK(lensnet_npy_writer_finish(&w, 0, &err) == LENSNET_ERR_ARG && !exists(path) && !exists(tmp), "fewer rows: %s", err.message);
  CHECK(lensnet_npy_writer_begin(&w, DIR "/no/such/folder/x.npy", 2, shape, &err) == LENSNET_ERR_IO, "an unwritable path: %s", err.message);
}

/* Headers of arrays far beyond 2 GiB, checked without writing their data. */
static void test_npy_large_headers(void) {
  const char *path = DIR "/big.npy", *tmp = DIR "/big.npy.tmp";
  unsigned char buf[512];
  size_t n, len, reserved;
  lensnet_npy_writer w;
  lensnet_error err;
  if (sizeof(size_t) < 8) { SKIP("large shapes need a 64-bit size_t"); return; }
  {
    size_t shape[4] = {(size_t)3000000000u, 4, 66, 66};
    CHECK(lensnet_npy_writer_begin(&w, path, 4, shape, &err) == LENSNET_OK, "begin [3e9, 4, 66, 66] (209 TB): %s", err.message);
    n = read_bytes(tmp, buf, sizeof buf);
    len = header_of(buf, n);
    CHECK(len == 128 && strstr((char *)buf + 10, "'shape': (3000000000, 4, 66, 66), }"), "header: %s", (char *)buf + 10);
    lensnet_npy_writer_abort(&w);
  }
  {
    size_t shape[2] = {LENSNET_NPY_ROWS_UNKNOWN, 1000000};
    float row[4] = {0};
    CHECK(lensnet_npy_writer_begin(&w, path, 2, shape, &err) == LENSNET_OK, "open rows: %s", err.message);
    reserved = w.header_bytes;
    n = read_bytes(tmp, buf, sizeof buf);
    CHECK(header_of(buf, n) == reserved && reserved % 64 == 0, "the reserved header is valid (%lu bytes)", (unsigned long)reserved);
    w.rows = (size_t)-2; /* as if 2^64 - 2 rows had been written: the final count's digits must fit */
    w.shape[0] = LENSNET_NPY_ROWS_UNKNOWN;
    CHECK(lensnet_npy_writer_append(&w, row, 5, &err) == LENSNET_ERR_ARG, "row count overflow refused");
    lensnet_npy_writer_abort(&w);
  }
  {
    size_t shape[2] = {(size_t)-1 / 4, 8};
    CHECK(lensnet_npy_writer_begin(&w, path, 2, shape, &err) == LENSNET_ERR_TOO_LARGE && !exists(tmp), "a size overflow: %s", err.message);
  }
  {
    /* the widest count rewritten into the room reserved for it */
    unsigned char header[LENSNET__NPY_HEADER_CAP];
    size_t widest[2] = {(size_t)-2, 1000000}, open_shape[2] = {LENSNET_NPY_ROWS_UNKNOWN, 1000000};
    size_t room = lensnet__npy_header(header, 2, open_shape, 0);
    CHECK(lensnet__npy_header(header, 2, widest, room) == room, "any row count fits the reserved header");
  }
  CHECK(!exists(path) && !exists(tmp), "nothing left behind");
}

static void test_npy_write_errors(void) {
  const char *path = DIR "/full.npy", *tmp = DIR "/full.npy.tmp";
  static float rows[64 * 1024];
  size_t shape[2] = {16, 64 * 1024};
  lensnet_npy_writer w;
  lensnet_error err;
  lensnet_result r;
  int i;
  if (!exists("/dev/full")) { SKIP("no /dev/full"); return; }
  remove(tmp);
  if (symlink("/dev/full", tmp) != 0) { SKIP("cannot link to /dev/full"); return; }
  /* the writer opens path.tmp, which now leads to a device that is always full */
  r = lensnet_npy_writer_begin(&w, path, 2, shape, &err);
  for (i = 0; i < 16 && r == LENSNET_OK; i++) r = lensnet_npy_writer_append(&w, rows, 1, &err);
  if (r == LENSNET_OK) r = lensnet_npy_writer_finish(&w, 0, &err);
  CHECK(r == LENSNET_ERR_IO && strstr(err.message, "write failed"), "a full disk is reported: %s", err.message);
  CHECK(!exists(path) && !exists(tmp), "and nothing is left behind");
  remove(tmp);
}

/* ---- safetensors ------------------------------------------------------------------------------ */

/* Tensors larger than the buffer the writer streams through (2^18 bytes: 65536 floats), with an
 * I8 tensor between, read back bit for bit; the file is 8 + header + 4 bytes a float. */
static void test_safetensors_large(void) {
  lensnet_safetensors st, back;
  lensnet_tensor big, small, q;
  lensnet_error err;
  size_t shape1[1] = {150001}, shape2[2] = {3, 5}, shape3[1] = {70000}, i, wrong = 0;
  FILE *f;
  long size = -1;
  memset(&st, 0, sizeof st);
  lensnet_tensor_alloc(&big, 1, shape1, NULL);
  lensnet_tensor_alloc(&small, 2, shape2, NULL);
  lensnet_tensor_alloc(&q, 1, shape3, NULL);
  for (i = 0; i < shape1[0]; i++) big.data[i] = (float)i * 0.37f - 1e4f + (i % 3 ? 0.0f : 1e-30f);
  for (i = 0; i < 15; i++) small.data[i] = -(float)i;
  for (i = 0; i < shape3[0]; i++) q.data[i] = (float)((int)(i % 256) - 128);
  lensnet_safetensors_add(&st, "big", &big);
  lensnet_safetensors_add(&st, "q", &q);
  snprintf(st.tensors[1].dtype, sizeof st.tensors[1].dtype, "I8");
  lensnet_safetensors_add(&st, "small", &small);
  CHECK(lensnet_safetensors_write("build/tf_large.safetensors", &st, &err) == LENSNET_OK, "write: %s", err.message);
  if ((f = fopen("build/tf_large.safetensors", "rb")) != NULL) {
    unsigned char b[8];
    unsigned long long hl = 0;
    if (fread(b, 1, 8, f) == 8)
      for (i = 0; i < 8; i++) hl |= (unsigned long long)b[i] << (8 * i);
    fseek(f, 0, SEEK_END);
    size = ftell(f) - 8 - (long)hl;
    fclose(f);
  }
  CHECK(size == (long)(4 * 150001 + 70000 + 4 * 15), "data bytes: %ld", size);
  CHECK(lensnet_safetensors_read("build/tf_large.safetensors", &back, &err) == LENSNET_OK, "read: %s", err.message);
  if (back.count == 3) {
    const lensnet_tensor *a = lensnet_safetensors_find(&back, "big"), *b = lensnet_safetensors_find(&back, "small"),
                         *c = lensnet_safetensors_find(&back, "q");
    CHECK(a && b && c && !memcmp(a->data, big.data, shape1[0] * sizeof(float)) && !memcmp(b->data, small.data, 15 * sizeof(float)) &&
              !memcmp(c->data, q.data, shape3[0] * sizeof(float)),
          "every value back bit for bit");
    for (i = 0; a && i < shape1[0]; i++) wrong += a->data[i] != big.data[i];
    CHECK(wrong == 0, "%lu values differ", (unsigned long)wrong);
    lensnet_safetensors_free(&back);
  } else CHECK(0, "3 tensors read back, got %lu", (unsigned long)back.count);
  lensnet_safetensors_free(&st);
  lensnet_tensor_free(&big); lensnet_tensor_free(&small); lensnet_tensor_free(&q);
  remove("build/tf_large.safetensors");
}

static void test_safetensors(void) {
  lensnet_error err;
  lensnet_safetensors st, back;
  lensnet_tensor t;
  size_t shape[2] = {2, 3}, i;
  memset(&st, 0, sizeof st);
  lensnet_tensor_alloc(&t, 2, shape, &err);
  for (i = 0; i < 6; i++) t.data[i] = (float)i - 2.5f;
  CHECK(lensnet_safetensors_add(&st, "layer.0.weight", &t) == LENSNET_OK, "add");
  CHECK(lensnet_safetensors_set_meta(&st, "note", "quote \" and newline\n") == LENSNET_OK, "meta");
  CHECK(lensnet_safetensors_write("build/t.safetensors", &st, &err) == LENSNET_OK, "write: %s", err.message);
  CHECK(lensnet_safetensors_read("build/t.safetensors", &back, &err) == LENSNET_OK, "read: %s", err.message);
  CHECK(back.count == 1 && lensnet_safetensors_find(&back, "layer.0.weight") && !memcmp(lensnet_safetensors_find(&back, "layer.0.weight")->data, t.data, 24), "tensor survives");
  CHECK(lensnet_safetensors_meta(&back, "note") && !strcmp(lensnet_safetensors_meta(&back, "note"), "quote \" and newline\n"), "metadata survives escaping");
  /* a NULL value removes the key and keeps the others */
  lensnet_safetensors_set_meta(&back, "a", "1");
  lensnet_safetensors_set_meta(&back, "b", "2");
  CHECK(lensnet_safetensors_set_meta(&back, "note", NULL) == LENSNET_OK && lensnet_safetensors_set_meta(&back, "absent", NULL) == LENSNET_OK,
        "removing keys");
  CHECK(!lensnet_safetensors_meta(&back, "note") && lensnet_safetensors_meta(&back, "a") && !strcmp(lensnet_safetensors_meta(&back, "b"), "2"),
        "a removed key is gone, the others stay");
  {
    /* the bytes on disk, whatever the host's byte order: a little-endian u64 header length, the
     * header, then F32 little-endian (-2.5f is 0xC0200000: 00 00 20 C0) */
    size_t len = 0, hl = 0;
    unsigned char *bytes = slurp("build/t.safetensors", &len), want[24];
    int b;
    if (bytes) bytes[len] = 0; /* slurp leaves room for it: strstr below stops there at the latest */
    for (b = 7; bytes && len >= 8 && b >= 0; b--) hl = hl << 8 | bytes[b];
    CHECK(bytes && len >= 8 + 24 && hl == len - 8 - 24, "the header length is a little-endian u64: %lu of %lu bytes", (unsigned long)hl,
          (unsigned long)len);
    for (i = 0; i < 6; i++) {
      uint32_t u;
      memcpy(&u, &t.data[i], 4);
      for (b = 0; b < 4; b++) want[4 * i + (size_t)b] = (unsigned char)(u >> (8 * b));
    }
    CHECK(want[0] == 0x00 && want[1] == 0x00 && want[2] == 0x20 && want[3] == 0xC0, "-2.5f encoded by hand");
    CHECK(bytes && len >= 8 + 24 && hl == len - 8 - 24 && strstr((const char *)bytes + 8, "\"F32\"") &&
          !memcmp(bytes + len - 24, want, 24), "F32 data stored little-endian");
    free(bytes);
  }
  lensnet_safetensors_free(&st); lensnet_safetensors_free(&back); lensnet_tensor_free(&t);
  remove("build/t.safetensors");
  {
    /* F16 [1.0, -2.0, 65504] and BF16 [1.0] made by hand */
    const char hdr[] = "{\"a\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[6,8]}}";
    unsigned char file[256];
    size_t hl = sizeof hdr - 1, n = 0;
    memset(file, 0, sizeof file);
    file[0] = (unsigned char)hl;
    memcpy(file + 8, hdr, hl);
    n = 8 + hl;
    file[n++] = 0x00; file[n++] = 0x3c; file[n++] = 0x00; file[n++] = 0xc0; file[n++] = 0xff; file[n++] = 0x7b;
    file[n++] = 0x80; file[n++] = 0x3f;
    CHECK(lensnet_safetensors_read_memory(file, n, &back, &err) == LENSNET_OK, "read F16/BF16: %s", err.message);
    if (back.count == 2) {
      CHECK(back.tensors[0].tensor.data[0] == 1.0f && back.tensors[0].tensor.data[1] == -2.0f && back.tensors[0].tensor.data[2] == 65504.0f, "F16 values");
      CHECK(back.tensors[1].tensor.data[0] == 1.0f, "BF16 value");
    }
    lensnet_safetensors_free(&back);
    CHECK(lensnet_safetensors_read_memory(file, n - 1, &back, &err) == LENSNET_ERR_FORMAT, "truncated data refused");
  }
  {
    /* I8 [-128, 127, 0, -1] and U8 [255] made by hand; I8 written back byte for byte */
    const char hdr[] = "{\"q\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[0,4]},\"u\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[4,5]}}";
    unsigned char file[256], *again;
    size_t hl = sizeof hdr - 1, n = 0, len = 0;
    memset(file, 0, sizeof file);
    file[0] = (unsigned char)hl;
    memcpy(file + 8, hdr, hl);
    n = 8 + hl;
    file[n++] = 0x80; file[n++] = 0x7f; file[n++] = 0x00; file[n++] = 0xff; file[n++] = 0xff;
    CHECK(lensnet_safetensors_read_memory(file, n, &back, &err) == LENSNET_OK, "read I8/U8: %s", err.message);
    if (back.count == 2) {
      CHECK(back.tensors[0].tensor.data[0] == -128.0f && back.tensors[0].tensor.data[1] == 127.0f && back.tensors[0].tensor.data[2] == 0.0f &&
            back.tensors[0].tensor.data[3] == -1.0f && !strcmp(back.tensors[0].dtype, "I8"), "I8 values and dtype");
      CHECK(back.tensors[1].tensor.data[0] == 255.0f && !strcmp(back.tensors[1].dtype, "U8"), "U8 value and dtype");
      CHECK(lensnet_safetensors_write("build/t_i8.safetensors", &back, &err) == LENSNET_OK, "write: %s", err.message);
      again = slurp("build/t_i8.safetensors", &len);
      if (again) again[len] = 0;
      CHECK(again && len >= 8 + 4 + 4 && strstr((const char *)again + 8, "\"I8\"") && !memcmp(again + len - 8, "\x80\x7f\x00\xff", 4),
            "I8 written as bytes; U8 as F32 (the writer's other dtype)");
      free(again);
      remove("build/t_i8.safetensors");
    }
    lensnet_safetensors_free(&back);
  }
  {
    const char *bad[] = {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}",  /* size mismatch */
                         "{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}",  /* dtype */
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,400]}}", /* past the end */
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
                         "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "[1,2]", "{"};
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      unsigned char file[512];
      size_t hl = strlen(bad[i]);
      memset(file, 0, sizeof file);
      file[0] = (unsigned char)hl;
      memcpy(file + 8, bad[i], hl);
      err.message[0] = 0;
      CHECK(lensnet_safetensors_read_memory(file, 8 + hl + 8, &back, &err) != LENSNET_OK && err.message[0], "header %lu refused", (unsigned long)i);
    }
    {
      unsigned char huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
      CHECK(lensnet_safetensors_read_memory(huge, sizeof huge, &back, &err) == LENSNET_ERR_FORMAT, "absurd header length refused");
    }
  }
}

/* A file of a few dozen bytes that claims a 16 GiB tensor, or an architecture of gigabytes of
 * parameters, is refused with no allocation beyond the size of the file itself. */
static void test_hostile_sizes(void) {
  lensnet_error err;
  lensnet_safetensors st;
  lensnet_model *m = NULL;
  unsigned char file[1024];
  const char *tensor = "{\"w\":{\"dtype\":\"F32\",\"shape\":[65536,65536],\"data_offsets\":[0,4]}}";
  const char *overflow = "{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}";
  /* two 512-channel 64x64 convolutions: 512*64*64 + 512*512*64*64 floats, about 4.3 GB,
   * announced by a file that holds one float */
  const char *arch = "{\"__metadata__\":{\"arch\":\"input 1 256 256\\nconv2d name=a out=512 kernel=64\\nconv2d name=b out=512 kernel=64\"},"
                     "\"a.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
  const char *texts[3];
  size_t i;
  texts[0] = tensor; texts[1] = overflow; texts[2] = arch;
  for (i = 0; i < 3; i++) {
    size_t hl = strlen(texts[i]), n = 8 + hl + 8;
    lensnet_result r;
    memset(file, 0, sizeof file);
    file[0] = (unsigned char)hl;
    memcpy(file + 8, texts[i], hl);
    largest_request = 0;
    err.message[0] = 0;
    r = lensnet_safetensors_read_memory(file, n, &st, &err);
    if (i < 2) {
      CHECK(r == LENSNET_ERR_FORMAT && strstr(err.message, "data bytes"), "claimed tensor %lu refused: %s", (unsigned long)i, err.message);
    } else {
      CHECK(r == LENSNET_OK, "the architecture file parses: %s", err.message);
      if (r == LENSNET_OK) {
        r = lensnet_model_from_safetensors(&st, &m, &err);
        CHECK(r == LENSNET_ERR_WEIGHTS && strstr(err.message, "a.weight") && strstr(err.message, "shape"),
              "a network larger than its weights refused, naming the tensor: %s", err.message);
        if (m) lensnet_model_free(m);
        lensnet_safetensors_free(&st);
      }
    }
    CHECK(largest_request < 64 * 1024, "case %lu: largest allocation %lu bytes for a %lu-byte file", (unsigned long)i,
          (unsigned long)largest_request, (unsigned long)n);
  }
}

/* ---- CSV tables ---------------------------------------------------------------------------- */

/* The cells of a table as "a|b;c|d" (rows by ';', cells by '|'), or "ERROR: message". */
static const char *csv_shape(const char *text, size_t len, char *out, size_t cap) {
  lensnet_csv t;
  lensnet_error e;
  size_t r, c, at = 0;
  if (lensnet_csv_read_memory(text, len, &t, &e) != LENSNET_OK) {
    snprintf(out, cap, "ERROR: %s", e.message);
    return out;
  }
  out[0] = 0;
  for (r = 0; r < t.rows; r++)
    for (c = 0; c < t.cols; c++)
      at += (size_t)snprintf(out + at, at < cap ? cap - at : 0, "%s%s", r + c == 0 ? "" : c ? "|" : ";", lensnet_csv_cell(&t, r, c));
  lensnet_csv_free(&t);
  return out;
}

static void test_csv(void) {
  char buf[512];
  static const struct { const char *text, *want; } cases[] = {
    {"a,b\n1,2\n3,4\n", "a|b;1|2;3|4"},
    {"a,b\n1,2\n3,4", "a|b;1|2;3|4"},                          /* no newline at the end */
    {"a,b\r\n1,2\r\n3,4", "a|b;1|2;3|4"},                      /* CRLF, none at the end */
    {"a, b \n 1 ,\t2\n", "a|b;1|2"},                          /* blanks around cells */
    {"\n\na,b\n\n1,2\n  \n", "a|b;1|2"},                      /* blank lines */
    {"\xEF\xBB\xBFindex\n7", "index;7"},                       /* byte-order mark */
    {"a,b\n\"x,y\",\"say \"\"hi\"\"\"\n", "a|b;x,y|say \"hi\""},  /* RFC 4180 quoting */
    {"a,b\n\"two\nlines\",2\n", "a|b;two\nlines|2"},
    {"a,b,\n1,2,", "a|b|;1|2|"},                               /* a trailing empty cell */
    {"x\n", "x"},                                              /* a header alone */
    {"a,b\n1\n", "ERROR: line 2: 1 cell but the header has 2"},
    {"a\n1\n2,3\n", "ERROR: line 3: 2 cells but the header has 1"},
    {"a\n\"open\n1\n", "ERROR: line 2: a quote opened here is never closed"},
    {"a\n\"x\"y\n", "ERROR: line 2: text after the closing quote of a cell"},
    {"", "ERROR: empty: no header line"},
    {" \r\n\n", "ERROR: empty: no header line"},
  };
  size_t k;
  lensnet_csv t;
  lensnet_error e;
  double v;
  size_t col;
  for (k = 0; k < sizeof cases / sizeof cases[0]; k++)
    CHECK(!strcmp(csv_shape(cases[k].text, strlen(cases[k].text), buf, sizeof buf), cases[k].want), "csv case %lu: got '%s', want '%s'",
          (unsigned long)k, buf, cases[k].want);
  CHECK(!strcmp(csv_shape("a\nx\0y\n", 6, buf, sizeof buf), "ERROR: line 2: a NUL byte (not a text file?)"), "a NUL byte: %s", buf);
  /* numbers, lines and the header line */
  {
    static const char text[] = "index,p_lens\n\n0,0.25\n1,abc\n2,nan";
    CHECK(lensnet_csv_read_memory(text, sizeof text - 1, &t, &e) == LENSNET_OK && t.rows == 4 && t.cols == 2, "read: %s", e.message);
  }
  if (t.rows != 4) return;
  CHECK(t.lines[0] == 1 && t.lines[1] == 3 && t.lines[3] == 5, "rows know their lines");
  CHECK(lensnet_csv_column(t.header, "p_lens", &col, NULL) == LENSNET_OK && col == 1, "the header line finds columns");
  CHECK(lensnet_csv_number(&t, 1, 1, &v, NULL) == LENSNET_OK && v == 0.25, "0.25");
  CHECK(lensnet_csv_number(&t, 2, 1, &v, &e) == LENSNET_ERR_FORMAT && strstr(e.message, "line 4") && strstr(e.message, "'abc'") &&
        strstr(e.message, "p_lens"), "not a number names line, text and column: %s", e.message);
  CHECK(lensnet_csv_number(&t, 3, 1, &v, NULL) == LENSNET_OK && v != v, "nan is a number to the reader");
  CHECK(lensnet_csv_cell(&t, 4, 0) == NULL && lensnet_csv_cell(&t, 0, 2) == NULL, "cells outside the table: NULL");
  lensnet_csv_free(&t);
  /* a comma inside a quoted name does not shift the columns after it (found by fuzzing) */
  {
    static const char text[] = "\"name, with comma\",label,p_lens\nx,1,0.5\n";
    CHECK(lensnet_csv_read_memory(text, sizeof text - 1, &t, &e) == LENSNET_OK && t.cols == 3, "quoted comma: %s", e.message);
    CHECK(!strcmp(lensnet_csv_cell(&t, 0, 0), "name, with comma") && !strcmp(t.header, "name; with comma,label,p_lens"),
          "the cell keeps its comma, the header line shows ';': %s", t.header);
    CHECK(lensnet_csv_label_column(t.header, &col, NULL) == LENSNET_OK && col == 1, "label is column 1, got %lu", (unsigned long)col);
    CHECK(lensnet_csv_column(t.header, "p_lens", &col, NULL) == LENSNET_OK && col == 2, "p_lens is column 2, got %lu", (unsigned long)col);
    lensnet_csv_free(&t);
  }
  lensnet_csv_free(&t); /* twice is safe */
  CHECK(lensnet_csv_read("build/formats/no-such.csv", &t, &e) == LENSNET_ERR_IO && strstr(e.message, "no-such.csv"), "a missing file: %s",
        e.message);
  {
    /* a file whose last line lacks its newline, read from disk */
    FILE *f = fopen(DIR "/last_line.csv", "wb");
    if (f) { fputs("index,label\n0,1\n1,0", f); fclose(f); }
    CHECK(lensnet_csv_read(DIR "/last_line.csv", &t, &e) == LENSNET_OK && t.rows == 3 && !strcmp(lensnet_csv_cell(&t, 2, 1), "0"),
          "the last line without a newline is read");
    lensnet_csv_free(&t);
    remove(DIR "/last_line.csv");
  }
}

/* The labels of a stack from a table: rows matched to images by an index column in any order,
 * else in order; a headerless column of numbers; every bad index or class named by its line. */
static void test_csv_labels(void) {
  static const struct { const char *text; size_t n, classes; const char *want; } cases[] = {
    {"index,label\n0,1\n1,0\n2,2\n", 3, 3, "1 0 2"},
    {"index,kind,label\n2,x,2\n0,y,1\n1,z,0\n", 3, 3, "1 0 2"},    /* the same labels, the rows in another order */
    {"label,index\n0,1\n1,2\n1,0\n", 3, 2, "1 0 1"},                /* the index column anywhere */
    {"id,label\n2,1\n0,0\n1,0\n", 3, 2, "1 0 0"},                  /* no index column: rows in order */
    {"1\n0\n1\n", 3, 2, "1 0 1"},                                    /* one column of numbers: no header */
    {"is_lens\n1\n0\n1\n", 3, 2, "1 0 1"},
    {"index,label\n0,1\n2,0\n2,1\n", 3, 2, "ERROR: line 4: index 2 again (line 3 has it)"},
    {"index,label\n0,1\n1,0\n3,1\n", 3, 2, "ERROR: line 4: index '3' is not an image of the 3 (0 to 2)"},
    {"index,label\n0,1\n1.5,0\n2,1\n", 3, 2, "ERROR: line 3: index '1.5' is not an image"},
    {"index,label\n0,1\nx,0\n2,1\n", 3, 2, "ERROR: line 3: index 'x' is not an image"},
    {"index,label\n0,1\n1,0\n", 3, 2, "ERROR: 2 label rows for 3 images"},
    {"label\n0\n1\n0\n1\n", 3, 2, "ERROR: 4 label rows for 3 images"},
    {"index,label\n1,1\n0,2\n2,0\n", 3, 2, "ERROR: line 3: class '2' is not an integer from 0 to 1"},
    {"index,label\n1,1\n0,0.5\n2,0\n", 3, 2, "ERROR: line 3: class '0.5' is not an integer"},
    {"index,label\n1,1\n0,-1\n2,0\n", 3, 2, "ERROR: line 3: class '-1' is not an integer"},
    {"index,label\n1,1\n0,nan\n2,0\n", 3, 2, "ERROR: line 3: class 'nan' is not an integer"},
    {"id,kind\n0,1\n", 1, 2, "ERROR: no column named label, class or is_lens"},
  };
  size_t k;
  for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    lensnet_csv t;
    lensnet_error e;
    float labels[8];
    char got[400];
    size_t i, at = 0;
    e.message[0] = 0;
    if (lensnet_csv_read_memory(cases[k].text, strlen(cases[k].text), &t, &e) != LENSNET_OK) {
      CHECK(0, "case %lu: the table reads: %s", (unsigned long)k, e.message);
      continue;
    }
    if (lensnet_csv_class_labels(&t, cases[k].n, cases[k].classes, labels, &e) != LENSNET_OK) snprintf(got, sizeof got, "ERROR: %s", e.message);
    else
      for (i = 0; i < cases[k].n; i++) at += (size_t)snprintf(got + at, sizeof got - at, "%s%g", i ? " " : "", (double)labels[i]);
    CHECK(!strncmp(got, cases[k].want, strlen(cases[k].want)), "labels case %lu: got '%s', want '%s'", (unsigned long)k, got, cases[k].want);
    lensnet_csv_free(&t);
  }
}

/* Random bytes and mutated tables: never a crash (the sanitizer build checks the bounds). */
static void test_csv_mutations(void) {
  static const char base[] = "index,label,kind\n0,1,\"galaxy,galaxy\"\n1,0,elliptical\r\n2,1,\"a \"\"b\"\"\"\n";
  static const char alphabet[] = ",\"\n\r \t0a\xEF\xBB\xBF";
  uint64_t seed = 12345;
  int iter, bad = 0;
  for (iter = 0; iter < 3000; iter++) {
    size_t n = sizeof base - 1, m;
    unsigned char *c;
    lensnet_csv t;
    lensnet_error e;
    lensnet_result r;
    if (rng_next(&seed) % 3 == 0) n = (size_t)(rng_next(&seed) % n);
    c = copy_bytes((const unsigned char *)base, n);
    for (m = 0; m < 1 + rng_next(&seed) % 6 && n; m++) {
      uint64_t x = rng_next(&seed);
      c[(x >> 8) % n] = (x & 3) ? (unsigned char)alphabet[(x >> 32) % (sizeof alphabet - 1)] : (unsigned char)(x >> 56);
    }
    r = lensnet_csv_read_memory(c, n, &t, &e);
    if (r == LENSNET_OK) {
      size_t row, col;
      for (row = 0; row < t.rows; row++)
        for (col = 0; col < t.cols; col++)
          if (!lensnet_csv_cell(&t, row, col)) bad++;
    } else if (!e.message[0] || t.cells || t.text) bad++;
    lensnet_csv_free(&t);
    free(c);
  }
  CHECK(bad == 0, "%d mutated tables read wrongly", bad);
}

int main(int argc, char **argv) {
  /* test_formats --write-image PATH BITPIX NX NY NZ SEED BZERO: the images of
   * tests/data/fits/compressed/make.sh */
  if (argc == 9 && !strcmp(argv[1], "--write-image"))
    return write_image_fits(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), (uint64_t)atoi(argv[7]), atof(argv[8])) ? 0 : 1;
  if (argc != 1) { printf("usage: test_formats, or test_formats --write-image PATH BITPIX NX NY NZ SEED BZERO\n"); return 2; }
  if (system("mkdir -p " DIR) != 0) { printf("cannot create " DIR "\n"); return 1; }
  TEST("FITS files of astropy's test suite match MANIFEST.json") test_manifest();
  TEST("HDU -1, missing HDUs, errors name the file") test_first_image();
  TEST("Strong Lens Finding Challenge cutouts") test_bologna();
  TEST("BITPIX 8/16/32/64/-32/-64, BSCALE, BZERO, BLANK, NaN") test_bitpix_and_scaling();
  TEST("multi-block header, HIERARCH, CONTINUE, keyword values") test_long_header();
  TEST("extensions: tables, heaps and random groups are skipped by size") test_extensions();
  TEST("pixel scale from PIXSCALE, the CD matrix or CDELT1") test_pixel_scale();
  TEST("malformed headers give errors naming the problem") test_malformed();
  TEST("a gzip file, an empty file and a text file say what they are") test_not_the_format();
  TEST(".fits.gz files read as the files they hold; damaged ones refused") test_gzip_files();
  TEST("truncated files") test_truncations();
  TEST("mutated files never crash") test_mutations();
  TEST("tile-compressed images (RICE_1, GZIP_1, GZIP_2, quantised floats) match CFITSIO bit for bit") test_compressed();
  TEST("tile-compressed images: flipped bits and cut files are read or refused cleanly") test_compressed_damage();
  TEST("tile-compressed images: a header claiming more pixels than its data holds is refused before allocating") test_compressed_claims();
  TEST("tile-compressed images made by fpack in every BITPIX and tiling match CFITSIO") test_compressed_fpack();
  TEST("Pan-STARRS1 asinh-scaled images (BSOFTEN, BOFFSET) read as linear fluxes") test_ps1_asinh();
  TEST("write and read back a float image") test_write_roundtrip();
  TEST(".npy in both byte orders, truncated and malformed") test_npy();
  TEST(".npy: write then read, and hand-made files of other types") test_npy_round_trip_and_types();
  TEST(".npy by rows from a file: header, every slice, truncated files") test_npy_rows();
  TEST(".npy writer: round trip, temporary name until finish, open row count") test_npy_round_trip();
  TEST(".npy writer: lensnet_npy_write keeps its bytes") test_npy_whole_array_bytes();
  TEST(".npy writer: abort and misuse leave nothing behind") test_npy_abort_and_misuse();
  TEST(".npy writer: headers of arrays beyond 2 GiB") test_npy_large_headers();
  TEST(".npy writer: write errors are reported") test_npy_write_errors();
  TEST("safetensors: round trip with metadata, F16/BF16 conversion, I8 read and write, malformed headers") test_safetensors();
  TEST("safetensors: claimed sizes checked against the file before any allocation") test_hostile_sizes();
  TEST("safetensors: tensors larger than the writer's buffer, F32 and I8, back bit for bit") test_safetensors_large();
  TEST("CSV tables: quoting, line ends, a last line without newline, errors naming the line") test_csv();
  TEST("labels from a table: by index in any order, else in order; bad indices and classes named") test_csv_labels();
  TEST("CSV tables: mutated and truncated text never crashes") test_csv_mutations();
  return check_summary();
}
