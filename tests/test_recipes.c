/* test_recipes.c - the recipes every caller of a finder shares (lensnet.h, section "Recipes"):
 * cutout preparation, class lookup and p(lens), the streaming atomic .npy writer, the label
 * column of labels.csv; and that `lens predict` and `lens explain` prepare cutouts alike. */
#define _POSIX_C_SOURCE 200809L /* symlink, WEXITSTATUS */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DIR "build/recipes"

static int exists(const char *path) { return access(path, F_OK) == 0; }

static lensnet_model *tiny_model(size_t bands, size_t side, size_t outputs, const char *classes) {
  char arch[128];
  lensnet_model *m = NULL;
  lensnet_error err;
  snprintf(arch, sizeof arch, "input %lu %lu %lu\nflatten\ndense name=d out=%lu", (unsigned long)bands, (unsigned long)side,
           (unsigned long)side, (unsigned long)outputs);
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { CHECK(0, "model: %s", err.message); return NULL; }
  lensnet_model_init(m, 3);
  if (classes) lensnet_model_set_meta(m, "classes", classes);
  return m;
}

/* ---- cutouts ---------------------------------------------------------------------------- */

static void test_cutout_selection_and_fit(void) {
  lensnet_model *m = tiny_model(2, 4, 2, NULL);
  float image[3 * 8 * 8], out[2 * 16], want[16];
  size_t chosen[2] = {2, 0}, i, y, x;
  lensnet_cutout_desc d;
  lensnet_cutout_report rep;
  lensnet_error err;
  if (!m) return;
  for (i = 0; i < 3 * 64; i++) image[i] = (float)i;
  memset(&d, 0, sizeof d);
  CHECK(lensnet_cutout_prepare(m, &d, image, 3, 4, 4, out, &rep, &err) == LENSNET_OK, "%s", err.message);
  CHECK(!memcmp(out, image, sizeof out) && rep.unused_bands == 1, "default: the first bands as they are, one band unused");
  d.channels = chosen;
  d.channel_count = 2;
  lensnet_cutout_prepare(m, &d, image, 3, 4, 4, out, &rep, &err);
  CHECK(!memcmp(out, image + 32, 16 * sizeof(float)) && !memcmp(out + 16, image, 16 * sizeof(float)), "channels {2, 0}");
  CHECK(rep.unused_bands == 1 && rep.nan_pixels == 0 && rep.issue == LENSNET_CUTOUT_OK, "report");
  d.size = LENSNET_SIZE_RESIZE;
  CHECK(lensnet_cutout_prepare(m, &d, image, 3, 8, 8, out, &rep, &err) == LENSNET_OK, "resize: %s", err.message);
  lensnet_resize_bilinear(image + 128, 8, 8, want, 4, 4);
  CHECK(!memcmp(out, want, sizeof want), "resize is lensnet_resize_bilinear of the chosen band");
  d.size = LENSNET_SIZE_CROP;
  d.channels = NULL;
  d.channel_count = 0;
  CHECK(lensnet_cutout_prepare(m, &d, image, 2, 6, 7, out, &rep, &err) == LENSNET_OK, "crop: %s", err.message);
  for (y = 0, i = 0; y < 4; y++)
    for (x = 0; x < 4; x++) i += out[16 + y * 4 + x] != image[42 + (1 + y) * 7 + 1 + x];
  CHECK(i == 0, "crop: the central 4x4 of a 6x7 band (offsets 1, 1)");
  lensnet_model_free(m);
}

static void test_cutout_minmax_and_nonfinite(void) {
  lensnet_model *m = tiny_model(1, 2, 2, NULL);
  float image[4] = {2.0f, NAN, 6.0f, INFINITY}, out[4], raw[4] = {1.0f, NAN, -INFINITY, 3.0f};
  lensnet_cutout_desc d;
  lensnet_cutout_report rep;
  lensnet_error err;
  if (!m) return;
  memset(&d, 0, sizeof d);
  d.minmax = 1;
  CHECK(lensnet_cutout_prepare(m, &d, image, 1, 2, 2, out, &rep, &err) == LENSNET_OK, "%s", err.message);
  CHECK(out[0] == 0.0f && out[2] == 1.0f && out[1] == 0.0f && out[3] == 0.0f, "min-max over the finite pixels: %g %g %g %g",
        out[0], out[1], out[2], out[3]);
  CHECK(rep.nan_pixels == 1 && rep.inf_pixels == 1, "one NaN and one infinity counted (%lu, %lu)", (unsigned long)rep.nan_pixels,
        (unsigned long)rep.inf_pixels);
  d.minmax = 0;
  lensnet_cutout_prepare(m, &d, raw, 1, 2, 2, out, &rep, &err);
  CHECK(out[0] == 1.0f && out[1] == 0.0f && out[2] == 0.0f && out[3] == 3.0f && rep.nan_pixels == 1 && rep.inf_pixels == 1,
        "without min-max: non-finite pixels become 0 and are counted");
  CHECK(lensnet_cutout_prepare(m, NULL, raw, 1, 2, 2, out, NULL, NULL) == LENSNET_OK, "desc, report and err may be NULL");
  lensnet_model_free(m);
}

static void test_cutout_refusals(void) {
  lensnet_model *m = tiny_model(2, 4, 2, NULL);
  float image[3 * 64], out[32];
  size_t one[1] = {0}, far[2] = {0, 5};
  lensnet_cutout_desc d;
  lensnet_cutout_report rep;
  lensnet_error err;
  if (!m) return;
  memset(image, 0, sizeof image);
  memset(&d, 0, sizeof d);
  CHECK(lensnet_cutout_prepare(m, &d, image, 2, 0, 4, out, &rep, &err) == LENSNET_ERR_SHAPE && rep.issue == LENSNET_CUTOUT_EMPTY &&
        strstr(err.message, "empty"), "empty: %s", err.message);
  CHECK(lensnet_cutout_prepare(m, &d, image, 1, 4, 4, out, &rep, &err) == LENSNET_ERR_SHAPE &&
        rep.issue == LENSNET_CUTOUT_TOO_FEW_BANDS, "too few bands: %s", err.message);
  CHECK(lensnet_cutout_prepare(m, &d, image, 2, 8, 8, out, &rep, &err) == LENSNET_ERR_SHAPE && rep.issue == LENSNET_CUTOUT_SIZE &&
        strstr(err.message, "8x8") && strstr(err.message, "4x4"), "another size: %s", err.message);
  d.size = LENSNET_SIZE_CROP;
  CHECK(lensnet_cutout_prepare(m, &d, image, 2, 3, 8, out, &rep, &err) == LENSNET_ERR_SHAPE &&
        rep.issue == LENSNET_CUTOUT_CROP_TOO_SMALL, "crop of a smaller image: %s", err.message);
  d.size = LENSNET_SIZE_EXACT;
  d.channels = one;
  d.channel_count = 1;
  CHECK(lensnet_cutout_prepare(m, &d, image, 3, 4, 4, out, &rep, &err) == LENSNET_ERR_ARG && rep.issue == LENSNET_CUTOUT_CHANNEL_COUNT,
        "a channel list of the wrong length: %s", err.message);
  d.channels = far;
  d.channel_count = 2;
  CHECK(lensnet_cutout_prepare(m, &d, image, 3, 4, 4, out, &rep, &err) == LENSNET_ERR_ARG &&
        rep.issue == LENSNET_CUTOUT_CHANNEL_MISSING && strstr(err.message, "band 5"), "a band the image lacks: %s", err.message);
  lensnet_model_free(m);
}

static void test_channels_parse(void) {
  size_t ch[4], n = 99;
  lensnet_error err;
  CHECK(lensnet_channels_parse("0,2,3", ch, 4, &n, &err) == LENSNET_OK && n == 3 && ch[0] == 0 && ch[1] == 2 && ch[2] == 3, "0,2,3");
  CHECK(lensnet_channels_parse("", ch, 4, &n, &err) == LENSNET_ERR_ARG && n == 0, "empty");
  CHECK(lensnet_channels_parse("1,x", ch, 4, &n, &err) == LENSNET_ERR_ARG, "not a number");
  CHECK(lensnet_channels_parse("-1", ch, 4, &n, &err) == LENSNET_ERR_ARG, "negative");
  CHECK(lensnet_channels_parse("4097", ch, 4, &n, &err) == LENSNET_ERR_ARG, "beyond 4096");
  CHECK(lensnet_channels_parse("0,1,2,3,4", ch, 4, &n, &err) == LENSNET_ERR_ARG, "more than cap");
}

/* ---- classes and p(lens) ---------------------------------------------------------------- */

static size_t class_of(const char *classes, size_t outputs, const char *name) {
  lensnet_model *m = tiny_model(1, 2, outputs, classes);
  size_t k = 999;
  lensnet_error err;
  if (!m) return k;
  if (lensnet_model_class_index(m, name, &k, &err) != LENSNET_OK) k = 998;
  lensnet_model_free(m);
  return k;
}

static void test_classes(void) {
  lensnet_model *m = tiny_model(1, 2, 3, "non-lens, lens ,other-name-that-is-long");
  char name[8];
  lensnet_error err;
  CHECK(class_of(NULL, 2, "lens") == 1, "no metadata: the last output");
  CHECK(class_of("non-lens,lens", 2, "lens") == 1 && class_of("lens,non-lens", 2, "lens") == 0, "from the metadata");
  CHECK(class_of("a,b,c,d,e,f,g,lens", 2, "lens") == 1, "named beyond the outputs: the last output");
  CHECK(class_of("a,b", 2, "lens") == 1 && class_of("lenses,b,c", 3, "lens") == 2, "not named (whole names only): the last output");
  CHECK(class_of("a, lens ,c", 3, "lens") == 1, "blanks around names are ignored");
  if (!m) return;
  CHECK(lensnet_model_class_name(m, 1, name, sizeof name, &err) == LENSNET_OK && !strcmp(name, "lens"), "name of output 1: '%s'", name);
  lensnet_model_class_name(m, 2, name, sizeof name, &err);
  CHECK(!strcmp(name, "other-n"), "cut to the buffer: '%s'", name);
  lensnet_model_set_meta(m, "classes", "x");
  lensnet_model_class_name(m, 2, name, sizeof name, &err);
  CHECK(!strcmp(name, "2"), "no entry: the number ('%s')", name);
  CHECK(lensnet_model_class_name(m, 3, name, sizeof name, &err) == LENSNET_ERR_ARG, "not an output");
  lensnet_model_free(m);
}

static void test_lens_probability(void) {
  float two[2] = {0.3f, 1.7f}, big[3] = {1000.0f, -1000.0f, 999.0f}, one[1] = {-2.0f};
  double p = lensnet_lens_probability(two, 2, 1), sum;
  CHECK(fabs(p - 1.0 / (1.0 + exp((double)two[0] - (double)two[1]))) < 1e-12, "two outputs: the sigmoid of the difference (%.15g)", p);
  sum = lensnet_lens_probability(big, 3, 0) + lensnet_lens_probability(big, 3, 1) + lensnet_lens_probability(big, 3, 2);
  CHECK(fabs(sum - 1.0) < 1e-12 && fabs(lensnet_lens_probability(big, 3, 0) - 1.0 / (1.0 + exp(-1.0))) < 1e-12,
        "logits of 1000 do not overflow (sum %.15g)", sum);
  CHECK(fabs(lensnet_lens_probability(one, 1, 0) - 1.0 / (1.0 + exp(2.0))) < 1e-15, "one output: its sigmoid");
  p = lensnet_lens_probability(two, 2, 2);
  CHECK(p != p, "a class beyond the outputs gives NaN");
}

/* ---- the .npy writer -------------------------------------------------------------------- */

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

/* ---- label columns ---------------------------------------------------------------------- */

static long label_col(const char *header) {
  size_t c;
  return lensnet_csv_label_column(header, &c, NULL) == LENSNET_OK ? (long)c : -1;
}

static void test_label_columns(void) {
  size_t c = 0;
  lensnet_error err;
  CHECK(label_col("index,label,kind,theta_E") == 1, "label (lens sim's labels.csv)");
  CHECK(label_col("is_lens,class,label") == 2, "label before class before is_lens, wherever they stand");
  CHECK(label_col("is_lens , class\r\n") == 1 && label_col("x,is_lens") == 1, "class, then is_lens; blanks and line ends ignored");
  CHECK(label_col("y\n") == 0, "a one-column header: that column");
  CHECK(lensnet_csv_label_column("a,b", &c, &err) == LENSNET_ERR_FORMAT && strstr(err.message, "label, class or is_lens"), "%s", err.message);
  CHECK(label_col("") == -1 && label_col(" \n") == -1, "an empty header has no label column");
  CHECK(lensnet_csv_column("input,p_lens,logit_lens", "p_lens", &c, &err) == LENSNET_OK && c == 1, "a named column");
  CHECK(lensnet_csv_column("input,p_lens", "score", &c, &err) == LENSNET_ERR_ARG, "a missing column: %s", err.message);
}

/* ---- the tools use the recipes ---------------------------------------------------------- */

static int run(const char *args) {
  const char *lens = getenv("LENS");
  char cmd[2048];
  int st;
  snprintf(cmd, sizeof cmd, "%s %s", lens && *lens ? lens : "build/lens", args);
  st = system(cmd);
  return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int same_file(const char *a, const char *b) {
  static unsigned char x[1 << 16], y[1 << 16];
  size_t n = read_bytes(a, x, sizeof x);
  return n > 0 && n == read_bytes(b, y, sizeof y) && !memcmp(x, y, n);
}

static void test_tools_channels(void) {
  lensnet_model *m = tiny_model(2, 6, 2, "non-lens,lens");
  lensnet_tensor three, two;
  lensnet_error err;
  size_t s3[4] = {2, 3, 6, 6}, s2[4] = {2, 2, 6, 6}, i, b;
  const char *lens = getenv("LENS");
  if (!exists(lens && *lens ? lens : "build/lens")) { SKIP("no lens binary (make builds build/lens)"); lensnet_model_free(m); return; }
  if (!m) return;
  lensnet_model_save(m, DIR "/m.safetensors", &err);
  lensnet_tensor_alloc(&three, 4, s3, &err);
  lensnet_tensor_alloc(&two, 4, s2, &err);
  for (i = 0; i < three.shape[0] * 3 * 36; i++) three.data[i] = (float)((i * 7919) % 101) - 30.0f;
  for (b = 0; b < 2; b++) { /* bands 2 and 0 of each image */
    memcpy(two.data + (b * 2) * 36, three.data + (b * 3 + 2) * 36, 36 * sizeof(float));
    memcpy(two.data + (b * 2 + 1) * 36, three.data + (b * 3) * 36, 36 * sizeof(float));
  }
  lensnet_npy_write(DIR "/three.npy", &three, &err);
  lensnet_npy_write(DIR "/two.npy", &two, &err);
  CHECK(run("predict --model " DIR "/m.safetensors --minmax --channels 2,0 " DIR "/three.npy --out " DIR "/p3.npy 2>/dev/null") == 0 &&
        run("predict --model " DIR "/m.safetensors --minmax " DIR "/two.npy --out " DIR "/p2.npy 2>/dev/null") == 0 &&
        same_file(DIR "/p3.npy", DIR "/p2.npy"), "predict --channels 2,0 scores bands 2 and 0");
  CHECK(run("explain --model " DIR "/m.safetensors --minmax --channels 2,0 --input " DIR "/three.npy --index 1 --method saliency "
            "--threads 1 --out " DIR "/e3 2>/dev/null") == 0 &&
        run("explain --model " DIR "/m.safetensors --minmax --input " DIR "/two.npy --index 1 --method saliency --threads 1 --out " DIR
            "/e2 2>/dev/null") == 0 &&
        same_file(DIR "/e3/saliency.npy", DIR "/e2/saliency.npy"), "explain --channels 2,0 explains the same input");
  CHECK(run("explain --model " DIR "/m.safetensors --channels 0 --input " DIR "/three.npy --method saliency --out " DIR "/e1 2>/dev/null") == 2,
        "explain --channels of the wrong length is a usage error, as in predict");
  CHECK(run("explain --model " DIR "/m.safetensors --channels 0,x --input " DIR "/three.npy --method saliency --out " DIR "/e1 2>/dev/null") == 2,
        "explain --channels 0,x is a usage error");
  lensnet_tensor_free(&three);
  lensnet_tensor_free(&two);
  lensnet_model_free(m);
}

int main(void) {
  if (system("mkdir -p " DIR) != 0) { printf("cannot create " DIR "\n"); return 1; }
  TEST("cutouts: band selection, exact size, resize, crop") test_cutout_selection_and_fit();
  TEST("cutouts: min-max and non-finite pixels") test_cutout_minmax_and_nonfinite();
  TEST("cutouts: refusals name the problem") test_cutout_refusals();
  TEST("channel lists: 0,2,3 and what is refused") test_channels_parse();
  TEST("class lookup from the 'classes' metadata, with the last output as fallback") test_classes();
  TEST("p(lens): a stable softmax") test_lens_probability();
  TEST(".npy writer: round trip, temporary name until finish, open row count") test_npy_round_trip();
  TEST(".npy writer: lensnet_npy_write keeps its bytes") test_npy_whole_array_bytes();
  TEST(".npy writer: abort and misuse leave nothing behind") test_npy_abort_and_misuse();
  TEST(".npy writer: headers of arrays beyond 2 GiB") test_npy_large_headers();
  TEST(".npy writer: write errors are reported") test_npy_write_errors();
  TEST("label column of labels.csv: label, class, is_lens") test_label_columns();
  TEST("lens predict and lens explain share the cutout recipe and --channels") test_tools_channels();
  return check_summary();
}
