/* make_corpus.c - writes the generated seeds of tests/fuzz/corpus (not part of `make test`):
 * small valid files of each format, made with lensnet.h's own writers where there is one, by
 * hand where a variant (another dtype, byte order, header version) needs it. The FITS and
 * scene seeds are copies of files in tests/data. Run from the repository root:
 *
 *   cc -std=c99 -I. tests/fuzz/make_corpus.c -o build/make_corpus -lm -lpthread && build/make_corpus
 *
 * Seeds stay small (a few KB each): libFuzzer mutates short inputs much faster.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "tests/fuzz/fuzz.h"
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(const char *what, const lensnet_error *err) {
  fprintf(stderr, "make_corpus: %s%s%s\n", what, err ? ": " : "", err ? err->message : "");
  exit(1);
}

static void put(const char *target, const char *name, const void *bytes, size_t len) {
  char path[512];
  FILE *f;
  snprintf(path, sizeof path, "tests/fuzz/corpus/%s/%s", target, name);
  if (!(f = fopen(path, "wb")) || fwrite(bytes, 1, len, f) != len || fclose(f) != 0) die(path, NULL);
}

static void put_text(const char *target, const char *name, const char *text) { put(target, name, text, strlen(text)); }

/* A file's bytes into the corpus under another name. */
static void copy(const char *from, const char *target, const char *name) {
  lensnet_error err;
  unsigned char *buf;
  size_t len;
  if (lensnet__read_file(from, &buf, &len, &err) != LENSNET_OK) die(from, &err);
  put(target, name, buf, len);
  free(buf);
}

/* A .npy file by hand: version 1 (2-byte header length) or 2 (4-byte), the dictionary padded to
 * 16 bytes with its closing newline, then `data`. */
static void npy(const char *name, int version, const char *dict, const void *data, size_t n) {
  unsigned char buf[1024];
  size_t pre = version == 1 ? 10 : 12, d = strlen(dict), total = (pre + d + 1 + 15) / 16 * 16, h = total - pre;
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (unsigned char)version;
  buf[7] = 0;
  memset(buf + 8, 0, 4);
  buf[8] = (unsigned char)(h & 0xFF);
  buf[9] = (unsigned char)(h >> 8);
  memcpy(buf + pre, dict, d);
  memset(buf + pre + d, ' ', h - d - 1);
  buf[total - 1] = '\n';
  memcpy(buf + total, data, n);
  put("npy", name, buf, total + n);
}

/* A safetensors file by hand: header text, then `data`. */
static void safetensors(const char *target, const char *name, const char *header, const void *data, size_t n) {
  unsigned char buf[2048];
  size_t h = strlen(header), i;
  for (i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
  memcpy(buf + 8, header, h);
  memcpy(buf + 8 + h, data, n);
  put(target, name, buf, 8 + h + n);
}

/* A file the library wrote into a temporary folder, moved into the corpus. */
static char tmp_dir[64];
static const char *tmp_file(const char *name) {
  static char path[128];
  snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
  return path;
}

static lensnet_model *small_model(const char *arch, uint64_t seed) {
  lensnet_model *m;
  lensnet_error err;
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) die(arch, &err);
  lensnet_model_init(m, seed);
  return m;
}

static void npy_seeds(void) {
  float f4[6] = {0, 1, 2.5f, -3, 1e30f, 0.125f};
  double f8[2] = {1.5, -2};
  unsigned char u1[4] = {0, 1, 128, 255}, i2be[4] = {0x80, 0x00, 0x00, 0x01};
  lensnet_tensor t;
  size_t shape[2] = {2, 3};
  lensnet_error err;
  if (lensnet_tensor_alloc(&t, 2, shape, &err) != LENSNET_OK) die("tensor", &err);
  memcpy(t.data, f4, sizeof f4);
  if (lensnet_npy_write(tmp_file("f4.npy"), &t, &err) != LENSNET_OK) die("npy", &err);
  lensnet_tensor_free(&t);
  copy(tmp_file("f4.npy"), "npy", "f4_2x3.npy");
  npy("f8_2.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", f8, sizeof f8);
  npy("u1_2x2_v2.npy", 2, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", u1, sizeof u1);
  npy("i2_big_endian.npy", 1, "{'descr': '>i2', 'fortran_order': False, 'shape': (1, 2), }", i2be, sizeof i2be);
  npy("scalar_f4.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", f4, 4);
  npy("empty_4d.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1, 2, 2), }", f4, 0);
}

static void safetensors_seeds(void) {
  static const char *const archs[] = {
    FUZZ_SMALL_ARCH,
    ("input 2 6 6\nconv2d name=conv out=3 kernel=3 padding=1\nbatchnorm name=bn\nrelu\nmark name=skip\n"
     "conv2d name=conv2 out=3 kernel=3 padding=1\nadd name=skip\nglobal_avgpool\nflatten\ndense name=head out=2"),
    "input 1 5 5; conv2d name=c out=2 kernel=2 stride=2 bias=0; leaky_relu slope=0.1; avgpool kernel=2; flatten; dense name=d out=3; softmax",
  };
  static const char *const names[] = {"small_model.safetensors", "residual_model.safetensors", "avgpool_model.safetensors"};
  float f32[2] = {1.0f, -2.0f};
  unsigned char f16[4] = {0x00, 0x3c, 0x00, 0xc0}, i64[16] = {1, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  size_t i;
  lensnet_error err;
  for (i = 0; i < sizeof archs / sizeof *archs; i++) {
    lensnet_model *m = small_model(archs[i], i + 1);
    if (lensnet_model_set_meta(m, "classes", "nonlens,lens") != LENSNET_OK || lensnet_model_save(m, tmp_file(names[i]), &err) != LENSNET_OK)
      die(names[i], &err);
    copy(tmp_file(names[i]), "safetensors", names[i]);
    lensnet_model_free(m);
  }
  { /* the residual model quantised (lens quantize): I8 weights, scales, zero points 0 and 128 */
    lensnet_model *m = small_model(archs[1], 2), *q = NULL;
    lensnet_quantize_desc desc;
    float x[4 * 2 * 6 * 6];
    lensnet_rng rng;
    lensnet_rng_seed(&rng, 3);
    for (i = 0; i < sizeof x / sizeof *x; i++) x[i] = lensnet_rng_normal(&rng);
    memset(&desc, 0, sizeof desc);
    desc.quantize_first = 1;
    if (lensnet_quantize(m, x, 4, &desc, &q, &err) != LENSNET_OK || lensnet_model_save(q, tmp_file("quantized.safetensors"), &err) != LENSNET_OK)
      die("quantized.safetensors", &err);
    copy(tmp_file("quantized.safetensors"), "safetensors", "quantized_model.safetensors");
    lensnet_model_free(m);
    lensnet_model_free(q);
  }
  safetensors("safetensors", "f32_meta.safetensors",
              "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", f32, sizeof f32);
  safetensors("safetensors", "f16_bf16.safetensors",
              "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[0,4]}}",
              f16, sizeof f16);
  safetensors("safetensors", "i64_u8.safetensors",
              "{\"n\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},\"u\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}",
              i64, sizeof i64);
  safetensors("safetensors", "builtin_name.safetensors", "{\"__metadata__\":{\"arch\":\"ou66\",\"bands\":\"1\"}}", NULL, 0);
}

static void arch_seeds(void) {
  char buf[4096];
  put_text("arch", "small.arch", FUZZ_SMALL_ARCH);
  put_text("arch", "residual.arch",
           "input 2 8 8\nconv2d name=c out=4 kernel=3 padding=1\nbatchnorm name=bn eps=1e-5 momentum=0.1\nrelu\nmark name=s\n"
           "conv2d name=c2 out=4 kernel=3 padding=1 groups=2\nadd name=s\nglobal_avgpool\nflatten\ndense name=h out=2\n");
  put_text("arch", "activations.arch",
           "# every element-wise layer\ninput 3 4 4; gelu; sigmoid; tanh; leaky_relu slope=0.2; dropout p=0.5\n"
           "maxpool kernel=3 stride=1 padding=1; avgpool kernel=2 stride=2; flatten; dense name=d out=2 bias=0; softmax\n");
  put_text("arch", "builtin_call.arch", "ou66(4)");
  if (!lensnet_arch_builtin("ou66", 1, buf, sizeof buf)) die("ou66 text", NULL);
  put_text("arch", "ou66_text.arch", buf);
  copy("tools/challenge1/vis101.arch", "arch", "vis101.arch");
}

static void fits_seeds(void) {
  static const lensnet_fits_card cards[] = {
    {"CTYPE1", "'RA---TAN'", NULL}, {"CTYPE2", "'DEC--TAN'", NULL}, {"CRVAL1", "150.1", NULL}, {"CRVAL2", "2.2", "degrees"},
    {"CRPIX1", "2.0", NULL},        {"CRPIX2", "2.0", NULL},        {"CD1_1", "-2.7e-5", NULL}, {"CD1_2", "0", NULL},
    {"CD2_1", "0", NULL},           {"CD2_2", "2.7e-5", NULL},      {"PIXSCALE", "0.1", NULL},  {"OBJECT", "'a ''quoted'' name'", NULL},
  };
  lensnet_tensor t;
  size_t shape[2] = {3, 3}, i;
  lensnet_error err;
  copy("tests/data/fits/arange.fits", "fits", "arange.fits");
  copy("tests/data/fits/blank.fits", "fits", "blank.fits");
  copy("tests/data/fits/scale.fits", "fits", "scale.fits");
  copy("tests/data/fits/compressed_image.fits", "fits", "compressed_image.fits");
  if (lensnet_tensor_alloc(&t, 2, shape, &err) != LENSNET_OK) die("tensor", &err);
  for (i = 0; i < 9; i++) t.data[i] = (float)i;
  if (lensnet_fits_write_cards(tmp_file("wcs.fits"), &t, cards, sizeof cards / sizeof *cards, &err) != LENSNET_OK) die("fits", &err);
  lensnet_tensor_free(&t);
  copy(tmp_file("wcs.fits"), "fits", "wcs.fits");
}

static void csv_seeds(void) {
  put_text("csv", "labels.csv", "index,label,kind,z_lens\n0,1,lens,0.5\n1,0,nonlens,nan\n2,1,lens,0.71\n");
  put_text("csv", "scores.csv", "index,score,p_lens\n0,0.93,0.93\n1,0.02,0.02\n2,0.5,0.5\n");
  put_text("csv", "history.csv", "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds\n1,0.001,0.693147,0.5,0.69,0.52,1.25\n"
                                 "2,0.001,0.52,0.75,0.6,0.7,1.31\n");
  put_text("csv", "quoted_crlf.csv", "\xEF\xBB\xBF\"name, with comma\",\"class\"\r\n\"a \"\"b\"\"\",1\r\n\r\n\"multi\nline\",0\r\n");
  put_text("csv", "one_column_no_newline.csv", "is_lens\n1\n0");
}

/* Checkpoints of FUZZ_SMALL_ARCH: one from lensnet_checkpoint_save, one from a run of
 * lensnet_fit (every train.* key, the history). */
static void checkpoint_seeds(void) {
  lensnet_model *m = small_model(FUZZ_SMALL_ARCH, 7);
  lensnet_optimizer *opt;
  lensnet_trainer *t;
  lensnet_optimizer_desc od;
  lensnet_trainer_desc td;
  lensnet_fit_desc fd;
  lensnet_tensor images;
  size_t shape[4] = {4, 2, 6, 6}, i;
  float labels[4] = {0, 1, 0, 1};
  lensnet_rng rng;
  lensnet_error err;
  memset(&od, 0, sizeof od);
  memset(&td, 0, sizeof td);
  td.batch_cap = 1;
  if (lensnet_optimizer_create(&od, m, &opt, &err) != LENSNET_OK || lensnet_trainer_create(m, &td, &t, &err) != LENSNET_OK) die("trainer", &err);
  opt->step = 12;
  for (i = 0; i < opt->count; i++) { opt->m[i] = 0.001f * (float)i; opt->v[i] = 1e-6f * (float)i; }
  lensnet_rng_seed(&rng, 99);
  if (lensnet_checkpoint_save(tmp_file("saved.safetensors"), m, opt, t, &rng, &err) != LENSNET_OK) die("checkpoint", &err);
  copy(tmp_file("saved.safetensors"), "checkpoint", "saved.safetensors");
  lensnet_trainer_free(t);
  lensnet_optimizer_free(opt);
  if (lensnet_tensor_alloc(&images, 4, shape, &err) != LENSNET_OK) die("tensor", &err);
  for (i = 0; i < lensnet_tensor_count(&images); i++) images.data[i] = lensnet_rng_uniform(&rng);
  memset(&fd, 0, sizeof fd);
  fd.images = &images;
  fd.labels = labels;
  fd.epochs = 1;
  fd.batch = 2;
  fd.val_fraction = 0.25;
  fd.augment = "flip";
  fd.out_dir = tmp_dir;
  if (lensnet_fit(m, &fd, &err) != LENSNET_OK) die("fit", &err);
  copy(tmp_file("checkpoint.safetensors"), "checkpoint", "fit.safetensors");
  lensnet_tensor_free(&images);
  lensnet_model_free(m);
}

int main(void) {
  static const char *const names[] = {"checkpoint.safetensors", "best.safetensors", "history.csv", "f4.npy", "wcs.fits",
                                      "saved.safetensors", "small_model.safetensors", "residual_model.safetensors",
                                      "avgpool_model.safetensors", "quantized.safetensors"};
  size_t i;
  strcpy(tmp_dir, "/tmp/make_corpus_XXXXXX");
  if (!mkdtemp(tmp_dir)) die("mkdtemp", NULL);
  npy_seeds();
  safetensors_seeds();
  arch_seeds();
  fits_seeds();
  csv_seeds();
  checkpoint_seeds();
  for (i = 0; i < sizeof names / sizeof *names; i++) remove(tmp_file(names[i]));
  rmdir(tmp_dir);
  return 0;
}
