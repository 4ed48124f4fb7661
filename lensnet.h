/* lensnet.h - a CNN engine for finding strong gravitational lenses - v0.1 - public domain or MIT
 *
 * (the full manual is written below, after the section markers; see "MANUAL")
 */
#ifndef LENSNET_H
#define LENSNET_H

#include <stddef.h>
#include <stdint.h>

#ifndef LENSNET_API
#ifdef LENSNET_STATIC
#define LENSNET_API static
#else
#define LENSNET_API extern
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Results and errors
 * ------------------------------------------------------------------------------------------- */
#define LENSNET_RESULTS(X) \
  X(LENSNET_OK,              "ok") \
  X(LENSNET_ERR_NOMEM,       "out of memory") \
  X(LENSNET_ERR_IO,          "file could not be opened, read or written") \
  X(LENSNET_ERR_FORMAT,      "malformed file or text") \
  X(LENSNET_ERR_UNSUPPORTED, "valid but unsupported feature") \
  X(LENSNET_ERR_SHAPE,       "tensor shapes do not match") \
  X(LENSNET_ERR_ARG,         "invalid argument") \
  X(LENSNET_ERR_ARCH,        "invalid architecture description") \
  X(LENSNET_ERR_WEIGHTS,     "weights missing, extra or of the wrong shape") \
  X(LENSNET_ERR_TOO_LARGE,   "size exceeds the configured limits")

typedef enum {
#define LENSNET__ENUM(name, text) name,
  LENSNET_RESULTS(LENSNET__ENUM)
#undef LENSNET__ENUM
  LENSNET_RESULT_COUNT
} lensnet_result;

/* Never returns NULL. */
LENSNET_API const char *lensnet_result_string(lensnet_result r);

/* Detail for a failed call. Every function that can fail on user input takes an optional
 * `lensnet_error *` (NULL is allowed) and writes a sentence naming the problem into it. */
typedef struct {
  lensnet_result result;
  char message[320];
} lensnet_error;

/* ---------------------------------------------------------------------------------------------
 * Tensors: dense float32, C order (NCHW for images)
 * ------------------------------------------------------------------------------------------- */
#define LENSNET_MAX_DIMS 8

typedef struct {
  int ndim;
  size_t shape[LENSNET_MAX_DIMS];
  float *data; /* owned by the tensor when created by lensnet_tensor_* or a reader */
} lensnet_tensor;

/* Number of elements; 0 on overflow (which the allocating functions report as TOO_LARGE). */
LENSNET_API size_t lensnet_tensor_count(const lensnet_tensor *t);
/* Allocates zeroed data for the given shape. */
LENSNET_API lensnet_result lensnet_tensor_alloc(lensnet_tensor *t, int ndim, const size_t *shape, lensnet_error *err);
LENSNET_API void lensnet_tensor_free(lensnet_tensor *t);

/* ---------------------------------------------------------------------------------------------
 * JSON (a small DOM reader, used for safetensors headers and by the tools for scene files)
 * ------------------------------------------------------------------------------------------- */
typedef enum {
  LENSNET_JSON_NULL, LENSNET_JSON_BOOL, LENSNET_JSON_NUMBER,
  LENSNET_JSON_STRING, LENSNET_JSON_ARRAY, LENSNET_JSON_OBJECT
} lensnet_json_type;

typedef struct lensnet_json {
  lensnet_json_type type;
  char *key;                   /* member name when this value sits in an object, else NULL */
  double number;               /* NUMBER; BOOL is 0 or 1 */
  char *string;                /* STRING: decoded UTF-8, NUL-terminated (may hold \u0000 as NUL) */
  size_t string_len;
  size_t count;                /* ARRAY, OBJECT: number of items */
  struct lensnet_json *items;  /* ARRAY, OBJECT: the items, in document order */
} lensnet_json;

/* Parses `len` bytes of JSON text. Depth is limited to LENSNET_JSON_MAX_DEPTH. On success *out
 * is a tree freed with lensnet_json_free. */
LENSNET_API lensnet_result lensnet_json_parse(const char *text, size_t len, lensnet_json **out, lensnet_error *err);
LENSNET_API void lensnet_json_free(lensnet_json *v);
/* Member `key` of an object, or NULL (also NULL if obj is not an object). */
LENSNET_API const lensnet_json *lensnet_json_get(const lensnet_json *obj, const char *key);

/* ---------------------------------------------------------------------------------------------
 * NumPy .npy: read f4, f8, i1/i2/i4/i8, u1/u2/u4/u8 in either byte order (C order), converted to
 * float32; write little-endian f4.
 * ------------------------------------------------------------------------------------------- */
LENSNET_API lensnet_result lensnet_npy_read(const char *path, lensnet_tensor *out, lensnet_error *err);
LENSNET_API lensnet_result lensnet_npy_read_memory(const void *bytes, size_t len, lensnet_tensor *out, lensnet_error *err);
/* Written to `path.tmp` and renamed, so a reader never sees half a file. */
LENSNET_API lensnet_result lensnet_npy_write(const char *path, const lensnet_tensor *t, lensnet_error *err);

/* @@SECTION-DECL-SAFETENSORS@@ */

/* ---------------------------------------------------------------------------------------------
 * FITS images (read: primary HDU and IMAGE extensions; write: one float32 primary image)
 * ------------------------------------------------------------------------------------------- */
/* Reads the image of HDU `hdu` (0 = primary, 1 = first extension, ...; -1 = the first HDU that
 * holds data). The tensor's shape is NumPy order (NAXISn, ..., NAXIS1); values are
 * BZERO + BSCALE * stored, and BLANK pixels become NaN. */
LENSNET_API lensnet_result lensnet_fits_read(const char *path, int hdu, lensnet_tensor *out, lensnet_error *err);
LENSNET_API lensnet_result lensnet_fits_read_memory(const void *bytes, size_t len, int hdu, lensnet_tensor *out, lensnet_error *err);
/* Writes t as a BITPIX -32 primary image (NumPy shape order), atomically. */
LENSNET_API lensnet_result lensnet_fits_write(const char *path, const lensnet_tensor *t, lensnet_error *err);


/* ---------------------------------------------------------------------------------------------
 * GEMM and convolution kernels
 *
 * A packed, cache-blocked single-precision matrix product (the structure of Goto & van de Geijn
 * 2008 and BLIS) that every dense and convolution layer runs through. Paths:
 *   scalar   always built (the reference the others are tested against);
 *   SSE      built when the compiler targets SSE2 (__SSE2__, every x86-64 compiler);
 *   AVX2     built when it targets AVX2 and FMA (__AVX2__ && __FMA__, e.g. -mavx2 -mfma);
 *   AVX-512  built when it targets AVX-512F (__AVX512F__, e.g. -march=native on such a CPU);
 *   NEON     built when it targets NEON (__ARM_NEON: every AArch64 compiler, -mfpu=neon on ARMv7).
 * Define LENSNET_NO_SIMD to build only the scalar path. A built path is used only if the CPU
 * also reports it (GCC/Clang on x86 ask __builtin_cpu_supports; elsewhere the compiler flags are
 * the promise); lensnet_sgemm takes the widest such path. There is no global state and no cache.
 *
 * Threads: never created; every function here is safe to call from several threads at once on
 * different outputs. Memory: lensnet_sgemm allocates its packing buffers (at most ~150 KB) once
 * per call through LENSNET_MALLOC; if that fails it still computes the product with a slower
 * unblocked loop, so it cannot fail. Products of one or two rows (dense layers at batch 1) are
 * computed directly without packing.
 *
 * Numbers: beta == 0 means C is only written (NaN or garbage in C does not propagate); alpha == 0
 * means A and B are not read. Each path sums over K in a fixed order, so results are
 * deterministic for a given path, build and shape; paths differ only by rounding (FMA or not),
 * within the classical bound gamma_(K+2) * sum|alpha a b| + |beta c| that the tests check.
 * ------------------------------------------------------------------------------------------- */
typedef enum {
  LENSNET_SIMD_SCALAR, LENSNET_SIMD_SSE, LENSNET_SIMD_AVX2, LENSNET_SIMD_AVX512, LENSNET_SIMD_NEON,
  LENSNET_SIMD_COUNT
} lensnet_simd;

/* The path lensnet_sgemm uses (the widest one built into this binary and supported by the CPU). */
LENSNET_API lensnet_simd lensnet_simd_best(void);
/* Nonzero if path `s` is compiled in and the CPU runs it. */
LENSNET_API int lensnet_simd_available(lensnet_simd s);
/* "scalar", "sse", "avx2", "avx512", "neon"; "unknown" for anything else. */
LENSNET_API const char *lensnet_simd_name(lensnet_simd s);

/* C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, all row-major with leading dimensions
 * lda, ldb, ldc; op(X) is X^T when trans_x is nonzero (so A is stored K x M when trans_a is set,
 * B is N x K when trans_b is set). beta == 0 ignores C's old contents. C must not overlap A or B. */
LENSNET_API void lensnet_sgemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
                               const float *A, size_t lda, const float *B, size_t ldb,
                               float beta, float *C, size_t ldc);
/* The same through one chosen path (tests compare paths; an unavailable path falls back to scalar). */
LENSNET_API void lensnet_sgemm_path(lensnet_simd path, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                                    float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                                    float beta, float *C, size_t ldc);


/* @@SECTION-DECL-MODEL@@ */

#ifdef __cplusplus
}
#endif
#endif /* LENSNET_H */

/* =============================================================================================
 * Implementation
 * =========================================================================================== */
#if defined(LENSNET_IMPLEMENTATION) && !defined(LENSNET__IMPLEMENTED)
#define LENSNET__IMPLEMENTED

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <math.h>
#include <float.h>
#include <limits.h>

#if defined(LENSNET_MALLOC) && defined(LENSNET_FREE) && defined(LENSNET_REALLOC)
/* all three given */
#elif !defined(LENSNET_MALLOC) && !defined(LENSNET_FREE) && !defined(LENSNET_REALLOC)
#define LENSNET_MALLOC(sz) malloc(sz)
#define LENSNET_REALLOC(p, sz) realloc(p, sz)
#define LENSNET_FREE(p) free(p)
#else
#error "lensnet.h: define all of LENSNET_MALLOC, LENSNET_REALLOC and LENSNET_FREE, or none"
#endif

/* Largest tensor a reader will allocate, in elements (a guard against hostile headers). */
#ifndef LENSNET_MAX_ELEMENTS
#define LENSNET_MAX_ELEMENTS ((size_t)1 << 32)
#endif
#ifndef LENSNET_JSON_MAX_DEPTH
#define LENSNET_JSON_MAX_DEPTH 64
#endif

#ifdef __cplusplus
#define LENSNET__CAST(type, expr) ((type)(expr))
#else
#define LENSNET__CAST(type, expr) (expr)
#endif

LENSNET_API const char *lensnet_result_string(lensnet_result r) {
  switch (r) {
#define LENSNET__CASE(name, text) case name: return text;
    LENSNET_RESULTS(LENSNET__CASE)
#undef LENSNET__CASE
    default: return "unknown result";
  }
}

/* Records a failure with a formatted sentence; returns r so callers can `return lensnet__fail(...)`. */
static lensnet_result lensnet__fail(lensnet_error *err, lensnet_result r, const char *fmt, ...) {
  if (err) {
    va_list ap;
    err->result = r;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  }
  return r;
}

/* a*b with overflow check: returns 0 when the product overflows. */
static int lensnet__mul_ok(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > (size_t)-1 / a) return 0;
  *out = a * b;
  return 1;
}

/* Puts "path: " in front of an error message written by a memory parser. */
static void lensnet__prefix_path(lensnet_error *err, const char *path) {
  char msg[sizeof err->message];
  if (!err) return;
  snprintf(msg, sizeof msg, "%.120s: %.190s", path, err->message);
  memcpy(err->message, msg, sizeof msg);
}

/* ---- tensors ------------------------------------------------------------------------------ */

LENSNET_API size_t lensnet_tensor_count(const lensnet_tensor *t) {
  size_t n = 1;
  int i;
  for (i = 0; i < t->ndim; i++)
    if (!lensnet__mul_ok(n, t->shape[i], &n)) return 0;
  return n;
}

LENSNET_API lensnet_result lensnet_tensor_alloc(lensnet_tensor *t, int ndim, const size_t *shape, lensnet_error *err) {
  size_t n = 1, bytes;
  int i;
  memset(t, 0, sizeof *t);
  if (ndim < 0 || ndim > LENSNET_MAX_DIMS)
    return lensnet__fail(err, LENSNET_ERR_ARG, "tensor rank %d is outside 0..%d", ndim, LENSNET_MAX_DIMS);
  for (i = 0; i < ndim; i++) {
    if (!lensnet__mul_ok(n, shape[i], &n) || n > LENSNET_MAX_ELEMENTS)
      return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "tensor of that shape exceeds %lu elements",
                           (unsigned long)LENSNET_MAX_ELEMENTS);
    t->shape[i] = shape[i];
  }
  t->ndim = ndim;
  if (!lensnet__mul_ok(n, sizeof(float), &bytes)) return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "tensor too large");
  t->data = LENSNET__CAST(float *, LENSNET_MALLOC(bytes ? bytes : 1));
  if (!t->data) return lensnet__fail(err, LENSNET_ERR_NOMEM, "cannot allocate %lu bytes for a tensor", (unsigned long)bytes);
  memset(t->data, 0, bytes);
  return LENSNET_OK;
}

LENSNET_API void lensnet_tensor_free(lensnet_tensor *t) {
  if (!t) return;
  if (t->data) LENSNET_FREE(t->data);
  memset(t, 0, sizeof *t);
}

/* ---- whole-file reading and atomic writing ------------------------------------------------- */

/* Reads a whole file into a fresh buffer (with one extra NUL byte). */
static lensnet_result lensnet__read_file(const char *path, unsigned char **out, size_t *len, lensnet_error *err) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf = NULL;
  size_t cap = 0, n = 0;
  *out = NULL;
  *len = 0;
  if (!f) return lensnet__fail(err, LENSNET_ERR_IO, "%s: cannot open for reading", path);
  for (;;) {
    size_t got;
    if (n + 65536 + 1 > cap) {
      size_t ncap = cap ? cap * 2 : 1 << 20;
      unsigned char *nb;
      if (ncap < cap) { fclose(f); LENSNET_FREE(buf); return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "%s: file too large", path); }
      nb = LENSNET__CAST(unsigned char *, LENSNET_REALLOC(buf, ncap));
      if (!nb) { fclose(f); LENSNET_FREE(buf); return lensnet__fail(err, LENSNET_ERR_NOMEM, "%s: out of memory reading the file", path); }
      buf = nb;
      cap = ncap;
    }
    got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0) break;
  }
  if (ferror(f)) { fclose(f); LENSNET_FREE(buf); return lensnet__fail(err, LENSNET_ERR_IO, "%s: read error", path); }
  fclose(f);
  buf[n] = 0;
  *out = buf;
  *len = n;
  return LENSNET_OK;
}

/* Writes chunks to path.tmp, flushes, closes and renames over `path`; removes the temporary
 * file on any failure so nothing half-written is left behind. */
typedef struct { const void *data; size_t len; } lensnet__chunk;

static lensnet_result lensnet__write_atomic(const char *path, const lensnet__chunk *chunks, int nchunks, lensnet_error *err) {
  char tmp[4096];
  FILE *f;
  int i, ok = 1;
  if (strlen(path) + 5 > sizeof tmp) return lensnet__fail(err, LENSNET_ERR_ARG, "%s: path too long", path);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  f = fopen(tmp, "wb");
  if (!f) return lensnet__fail(err, LENSNET_ERR_IO, "%s: cannot open for writing", tmp);
  for (i = 0; i < nchunks && ok; i++)
    if (chunks[i].len && fwrite(chunks[i].data, 1, chunks[i].len, f) != chunks[i].len) ok = 0;
  if (fflush(f) != 0) ok = 0;
  if (fclose(f) != 0) ok = 0;
  if (!ok) { remove(tmp); return lensnet__fail(err, LENSNET_ERR_IO, "%s: write failed (disk full?)", tmp); }
  if (rename(tmp, path) != 0) { remove(tmp); return lensnet__fail(err, LENSNET_ERR_IO, "%s: cannot rename %s into place", path, tmp); }
  return LENSNET_OK;
}

/* Little-endian float32 store, byte by byte, so files are the same on every host. */
static void lensnet__put_f32le(unsigned char *p, float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  p[0] = (unsigned char)u; p[1] = (unsigned char)(u >> 8); p[2] = (unsigned char)(u >> 16); p[3] = (unsigned char)(u >> 24);
}
static uint64_t lensnet__get_le(const unsigned char *p, int nbytes) {
  uint64_t v = 0;
  int i;
  for (i = nbytes - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
static uint64_t lensnet__get_be(const unsigned char *p, int nbytes) {
  uint64_t v = 0;
  int i;
  for (i = 0; i < nbytes; i++) v = (v << 8) | p[i];
  return v;
}
static float lensnet__f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static double lensnet__f64_from_bits(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }

/* ---- JSON ------------------------------------------------------------------------------------ */

typedef struct {
  const char *p, *end;
  lensnet_error *err;
  int depth;
} lensnet__json_parser;

static void lensnet__json_free_items(lensnet_json *v) {
  size_t i;
  if (v->key) LENSNET_FREE(v->key);
  if (v->string) LENSNET_FREE(v->string);
  for (i = 0; i < v->count; i++) lensnet__json_free_items(&v->items[i]);
  if (v->items) LENSNET_FREE(v->items);
}

LENSNET_API void lensnet_json_free(lensnet_json *v) {
  if (!v) return;
  lensnet__json_free_items(v);
  LENSNET_FREE(v);
}

static void lensnet__json_ws(lensnet__json_parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static lensnet_result lensnet__json_error(lensnet__json_parser *ps, const char *what, const char *start) {
  return lensnet__fail(ps->err, LENSNET_ERR_FORMAT, "JSON: %s at byte %ld", what, (long)(ps->p - start));
}

static int lensnet__hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  int i;
  for (i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return 0;
  }
  *out = v;
  return 1;
}

static size_t lensnet__utf8_put(char *o, unsigned cp) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) { o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F)); return 3; }
  o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Parses a string literal at ps->p (which is at the opening quote). */
static lensnet_result lensnet__json_string(lensnet__json_parser *ps, const char *start, char **out, size_t *outlen) {
  const char *q = ps->p + 1;
  size_t cap = 0, n = 0;
  char *s;
  /* The decoded string is never longer than the literal. */
  while (q < ps->end && *q != '"') { if (*q == '\\') q++; q++; }
  if (q >= ps->end) return lensnet__json_error(ps, "unterminated string", start);
  cap = (size_t)(q - ps->p) + 1;
  s = LENSNET__CAST(char *, LENSNET_MALLOC(cap));
  if (!s) return lensnet__fail(ps->err, LENSNET_ERR_NOMEM, "JSON: out of memory");
  ps->p++;
  while (*ps->p != '"') {
    unsigned char c = (unsigned char)*ps->p;
    if (c < 0x20) { LENSNET_FREE(s); return lensnet__json_error(ps, "control character in string", start); }
    if (c != '\\') { s[n++] = (char)c; ps->p++; continue; }
    ps->p++;
    switch (*ps->p) {
      case '"': s[n++] = '"'; break;
      case '\\': s[n++] = '\\'; break;
      case '/': s[n++] = '/'; break;
      case 'b': s[n++] = '\b'; break;
      case 'f': s[n++] = '\f'; break;
      case 'n': s[n++] = '\n'; break;
      case 'r': s[n++] = '\r'; break;
      case 't': s[n++] = '\t'; break;
      case 'u': {
        unsigned cp, lo;
        if (ps->end - ps->p < 5 || !lensnet__hex4(ps->p + 1, &cp)) { LENSNET_FREE(s); return lensnet__json_error(ps, "bad \\u escape", start); }
        ps->p += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && ps->end - ps->p >= 7 && ps->p[1] == '\\' && ps->p[2] == 'u' &&
            lensnet__hex4(ps->p + 3, &lo) && lo >= 0xDC00 && lo < 0xE000) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          ps->p += 6;
        }
        n += lensnet__utf8_put(s + n, cp); /* 6+ literal bytes always cover <= 4 output bytes */
        break;
      }
      default: LENSNET_FREE(s); return lensnet__json_error(ps, "bad escape in string", start);
    }
    ps->p++;
  }
  ps->p++;
  s[n] = 0;
  *out = s;
  *outlen = n;
  return LENSNET_OK;
}

static lensnet_result lensnet__json_value(lensnet__json_parser *ps, const char *start, lensnet_json *v);

static lensnet_result lensnet__json_push(lensnet__json_parser *ps, lensnet_json *v, size_t *cap, lensnet_json **slot) {
  if (v->count == *cap) {
    size_t ncap = *cap ? *cap * 2 : 4, bytes;
    lensnet_json *ni;
    if (!lensnet__mul_ok(ncap, sizeof(lensnet_json), &bytes)) return lensnet__fail(ps->err, LENSNET_ERR_TOO_LARGE, "JSON: too many items");
    ni = LENSNET__CAST(lensnet_json *, LENSNET_REALLOC(v->items, bytes));
    if (!ni) return lensnet__fail(ps->err, LENSNET_ERR_NOMEM, "JSON: out of memory");
    v->items = ni;
    *cap = ncap;
  }
  *slot = &v->items[v->count];
  memset(*slot, 0, sizeof **slot);
  v->count++;
  return LENSNET_OK;
}

static lensnet_result lensnet__json_container(lensnet__json_parser *ps, const char *start, lensnet_json *v, int is_object) {
  char close = is_object ? '}' : ']';
  size_t cap = 0;
  lensnet_result r;
  v->type = is_object ? LENSNET_JSON_OBJECT : LENSNET_JSON_ARRAY;
  if (++ps->depth > LENSNET_JSON_MAX_DEPTH) return lensnet__json_error(ps, "nesting too deep", start);
  ps->p++;
  lensnet__json_ws(ps);
  if (ps->p < ps->end && *ps->p == close) { ps->p++; ps->depth--; return LENSNET_OK; }
  for (;;) {
    lensnet_json *item = NULL;
    char *key = NULL;
    size_t keylen;
    lensnet__json_ws(ps);
    if (is_object) {
      if (ps->p >= ps->end || *ps->p != '"') return lensnet__json_error(ps, "expected a member name", start);
      if ((r = lensnet__json_string(ps, start, &key, &keylen)) != LENSNET_OK) return r;
      lensnet__json_ws(ps);
      if (ps->p >= ps->end || *ps->p != ':') { LENSNET_FREE(key); return lensnet__json_error(ps, "expected ':'", start); }
      ps->p++;
    }
    if ((r = lensnet__json_push(ps, v, &cap, &item)) != LENSNET_OK) { if (key) LENSNET_FREE(key); return r; }
    item->key = key;
    if ((r = lensnet__json_value(ps, start, item)) != LENSNET_OK) return r;
    lensnet__json_ws(ps);
    if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
    if (ps->p < ps->end && *ps->p == close) { ps->p++; break; }
    return lensnet__json_error(ps, is_object ? "expected ',' or '}'" : "expected ',' or ']'", start);
  }
  ps->depth--;
  return LENSNET_OK;
}

static lensnet_result lensnet__json_value(lensnet__json_parser *ps, const char *start, lensnet_json *v) {
  lensnet__json_ws(ps);
  if (ps->p >= ps->end) return lensnet__json_error(ps, "unexpected end of text", start);
  switch (*ps->p) {
    case '{': return lensnet__json_container(ps, start, v, 1);
    case '[': return lensnet__json_container(ps, start, v, 0);
    case '"': v->type = LENSNET_JSON_STRING; return lensnet__json_string(ps, start, &v->string, &v->string_len);
    case 't': if (ps->end - ps->p >= 4 && !memcmp(ps->p, "true", 4)) { v->type = LENSNET_JSON_BOOL; v->number = 1; ps->p += 4; return LENSNET_OK; } break;
    case 'f': if (ps->end - ps->p >= 5 && !memcmp(ps->p, "false", 5)) { v->type = LENSNET_JSON_BOOL; ps->p += 5; return LENSNET_OK; } break;
    case 'n': if (ps->end - ps->p >= 4 && !memcmp(ps->p, "null", 4)) { v->type = LENSNET_JSON_NULL; ps->p += 4; return LENSNET_OK; } break;
    default: {
      /* Numbers: validate the JSON grammar, then convert a bounded copy with strtod. */
      const char *q = ps->p;
      char buf[64];
      if (q < ps->end && *q == '-') q++;
      if (q >= ps->end || *q < '0' || *q > '9') break;
      while (q < ps->end && *q >= '0' && *q <= '9') q++;
      if (q < ps->end && *q == '.') { q++; if (q >= ps->end || *q < '0' || *q > '9') break; while (q < ps->end && *q >= '0' && *q <= '9') q++; }
      if (q < ps->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < ps->end && (*q == '+' || *q == '-')) q++;
        if (q >= ps->end || *q < '0' || *q > '9') break;
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
      }
      if ((size_t)(q - ps->p) >= sizeof buf) return lensnet__json_error(ps, "number too long", start);
      memcpy(buf, ps->p, (size_t)(q - ps->p));
      buf[q - ps->p] = 0;
      v->type = LENSNET_JSON_NUMBER;
      v->number = strtod(buf, NULL);
      ps->p = q;
      return LENSNET_OK;
    }
  }
  return lensnet__json_error(ps, "unexpected character", start);
}

LENSNET_API lensnet_result lensnet_json_parse(const char *text, size_t len, lensnet_json **out, lensnet_error *err) {
  lensnet__json_parser ps;
  lensnet_json *root;
  lensnet_result r;
  *out = NULL;
  root = LENSNET__CAST(lensnet_json *, LENSNET_MALLOC(sizeof *root));
  if (!root) return lensnet__fail(err, LENSNET_ERR_NOMEM, "JSON: out of memory");
  memset(root, 0, sizeof *root);
  ps.p = text;
  ps.end = text + len;
  ps.err = err;
  ps.depth = 0;
  r = lensnet__json_value(&ps, text, root);
  if (r == LENSNET_OK) {
    lensnet__json_ws(&ps);
    if (ps.p != ps.end) r = lensnet__json_error(&ps, "trailing characters after the value", text);
  }
  if (r != LENSNET_OK) { lensnet_json_free(root); return r; }
  *out = root;
  return LENSNET_OK;
}

LENSNET_API const lensnet_json *lensnet_json_get(const lensnet_json *obj, const char *key) {
  size_t i;
  if (!obj || obj->type != LENSNET_JSON_OBJECT) return NULL;
  for (i = 0; i < obj->count; i++)
    if (obj->items[i].key && strcmp(obj->items[i].key, key) == 0) return &obj->items[i];
  return NULL;
}

/* ---- .npy -------------------------------------------------------------------------------- */

/* Finds 'key': in a NumPy header dictionary and returns a pointer just after the colon. */
static const char *lensnet__npy_field(const char *h, size_t hlen, const char *key) {
  size_t klen = strlen(key), i;
  for (i = 0; i + klen + 2 < hlen; i++) {
    if ((h[i] == '\'' || h[i] == '"') && memcmp(h + i + 1, key, klen) == 0 && h[i + 1 + klen] == h[i]) {
      const char *p = h + i + klen + 2;
      while (p < h + hlen && (*p == ' ' || *p == ':')) p++;
      return p;
    }
  }
  return NULL;
}

LENSNET_API lensnet_result lensnet_npy_read_memory(const void *bytes, size_t len, lensnet_tensor *out, lensnet_error *err) {
  const unsigned char *b = LENSNET__CAST(const unsigned char *, bytes);
  size_t hlen, off, count, i, need;
  const char *h, *p, *hend;
  char order, kind;
  int size, ndim = 0;
  size_t shape[LENSNET_MAX_DIMS];
  lensnet_result r;
  memset(out, 0, sizeof *out);
  if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0) return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: missing the \\x93NUMPY magic");
  if (b[6] == 1) { hlen = (size_t)lensnet__get_le(b + 8, 2); off = 10; }
  else if (b[6] == 2 || b[6] == 3) {
    if (len < 12) return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: truncated header");
    hlen = (size_t)lensnet__get_le(b + 8, 4); off = 12;
  } else return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "npy: format version %d is not supported", b[6]);
  if (hlen > len - off) return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: header length %lu runs past the end of the file", (unsigned long)hlen);
  h = (const char *)b + off;
  hend = h + hlen;
  /* dtype */
  p = lensnet__npy_field(h, hlen, "descr");
  if (!p || p + 4 > hend || (*p != '\'' && *p != '"')) return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: header has no 'descr'");
  order = p[1]; kind = p[2];
  size = 0;
  if (p + 5 <= hend && p[3] >= '1' && p[3] <= '8' && p[4] == p[0]) size = p[3] - '0';
  if (!size || (order != '<' && order != '>' && order != '|' && order != '='))
    return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "npy: dtype %.8s is not supported (use f4, f8, i1-i8, u1-u8)", p);
  if (!((kind == 'f' && (size == 4 || size == 8)) || ((kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8))))
    return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "npy: dtype %c%d is not supported (use f4, f8, i1-i8, u1-u8)", kind, size);
  if (order == '=') order = '<';
  /* order */
  p = lensnet__npy_field(h, hlen, "fortran_order");
  if (!p) return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: header has no 'fortran_order'");
  if (hend - p >= 4 && memcmp(p, "True", 4) == 0) return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "npy: Fortran-ordered arrays are not supported; save with C order");
  /* shape */
  p = lensnet__npy_field(h, hlen, "shape");
  if (!p || *p != '(') return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: header has no 'shape' tuple");
  p++;
  for (;;) {
    size_t v = 0;
    while (p < hend && (*p == ' ' || *p == ',')) p++;
    if (p >= hend) return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: unterminated shape");
    if (*p == ')') break;
    if (*p < '0' || *p > '9') return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: bad character in shape");
    while (p < hend && *p >= '0' && *p <= '9') {
      if (v > ((size_t)-1 - 9) / 10) return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "npy: dimension too large");
      v = v * 10 + (size_t)(*p - '0');
      p++;
    }
    if (p < hend && *p == 'L') p++;
    if (ndim == LENSNET_MAX_DIMS) return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "npy: more than %d dimensions", LENSNET_MAX_DIMS);
    shape[ndim++] = v;
  }
  if ((r = lensnet_tensor_alloc(out, ndim, shape, err)) != LENSNET_OK) return r;
  count = lensnet_tensor_count(out);
  off += hlen;
  if (!lensnet__mul_ok(count, (size_t)size, &need) || need > len - off) {
    lensnet_tensor_free(out);
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: data is truncated (%lu bytes for %lu elements of %d bytes)",
                         (unsigned long)(len - off), (unsigned long)count, size);
  }
  b += off;
  for (i = 0; i < count; i++) {
    const unsigned char *e = b + i * (size_t)size;
    uint64_t u = (order == '>') ? lensnet__get_be(e, size) : lensnet__get_le(e, size);
    float v;
    if (kind == 'f') v = size == 4 ? lensnet__f32_from_bits((uint32_t)u) : (float)lensnet__f64_from_bits(u);
    else if (kind == 'u') v = (float)u;
    else { /* sign-extend */
      int shift = 64 - 8 * size;
      v = (float)((int64_t)(u << shift) >> shift);
    }
    out->data[i] = v;
  }
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_npy_read(const char *path, lensnet_tensor *out, lensnet_error *err) {
  unsigned char *buf;
  size_t len;
  lensnet_result r = lensnet__read_file(path, &buf, &len, err);
  memset(out, 0, sizeof *out);
  if (r != LENSNET_OK) return r;
  r = lensnet_npy_read_memory(buf, len, out, err);
  LENSNET_FREE(buf);
  if (r != LENSNET_OK) lensnet__prefix_path(err, path);
  return r;
}

LENSNET_API lensnet_result lensnet_npy_write(const char *path, const lensnet_tensor *t, lensnet_error *err) {
  char header[512];
  int n, i;
  size_t count = lensnet_tensor_count(t), bytes, k;
  unsigned char *payload;
  lensnet__chunk chunks[2];
  lensnet_result r;
  n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
  for (i = 0; i < t->ndim; i++)
    n += snprintf(header + n, sizeof header - (size_t)n, "%lu%s", (unsigned long)t->shape[i], (t->ndim == 1 || i + 1 < t->ndim) ? ", " : "");
  n += snprintf(header + n, sizeof header - (size_t)n, "), }");
  /* pad so magic(6)+version(2)+len(2)+header is a multiple of 64, ending in '\n' */
  while ((10 + n + 1) % 64 != 0) header[n++] = ' ';
  header[n++] = '\n';
  if (!lensnet__mul_ok(count, 4, &bytes)) return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "npy: tensor too large");
  payload = LENSNET__CAST(unsigned char *, LENSNET_MALLOC(10 + (size_t)n + bytes));
  if (!payload) return lensnet__fail(err, LENSNET_ERR_NOMEM, "npy: out of memory writing %s", path);
  memcpy(payload, "\x93NUMPY\x01\x00", 8);
  payload[8] = (unsigned char)(n & 0xFF);
  payload[9] = (unsigned char)(n >> 8);
  memcpy(payload + 10, header, (size_t)n);
  for (k = 0; k < count; k++) lensnet__put_f32le(payload + 10 + n + 4 * k, t->data[k]);
  chunks[0].data = payload;
  chunks[0].len = 10 + (size_t)n + bytes;
  r = lensnet__write_atomic(path, chunks, 1, err);
  LENSNET_FREE(payload);
  return r;
}

/* @@SECTION-IMPL-SAFETENSORS@@ */

/* ---- FITS --------------------------------------------------------------------------------- */

LENSNET_API lensnet_result lensnet_fits_read_memory(const void *bytes, size_t len, int hdu, lensnet_tensor *out, lensnet_error *err) {
  (void)bytes; (void)len; (void)hdu;
  memset(out, 0, sizeof *out);
  return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "FITS: reader not built yet");
}

LENSNET_API lensnet_result lensnet_fits_read(const char *path, int hdu, lensnet_tensor *out, lensnet_error *err) {
  unsigned char *buf;
  size_t len;
  lensnet_result r = lensnet__read_file(path, &buf, &len, err);
  memset(out, 0, sizeof *out);
  if (r != LENSNET_OK) return r;
  r = lensnet_fits_read_memory(buf, len, hdu, out, err);
  LENSNET_FREE(buf);
  return r;
}

LENSNET_API lensnet_result lensnet_fits_write(const char *path, const lensnet_tensor *t, lensnet_error *err) {
  (void)path; (void)t;
  return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "FITS: writer not built yet");
}


/* ---- GEMM ---------------------------------------------------------------------------------- */

/* Structure. The product follows Goto & van de Geijn (2008, "Anatomy of high-performance matrix
 * multiplication") as restated by BLIS (Van Zee & van de Geijn 2015): the K dimension is cut into
 * blocks of at most LENSNET__GEMM_KC, M into blocks of at most LENSNET__GEMM_MC rows; each block
 * of op(A) is packed into MR-row panels (k-major, zero-padded to MR rows) that stay in L2, and
 * for every NR-column strip of op(B) a KC x NR micro-panel is packed right before the register
 * micro-kernel sweeps it across all MR-row panels, so it is reused from L1. The micro-kernel
 * keeps an MR x NR tile of C in registers for the whole K block and touches C once per block.
 *
 * Why B is packed one micro-panel at a time (BLIS packs a KC x NC panel): the networks this
 * library serves have few output channels (M = 20..50) and many pixels (N up to 38416), so each
 * packed B element is used only M/MR times and never by a second M block; packing it just
 * before use keeps it in L1 and needs only KC*NR floats of buffer.
 *
 * Micro-tile shapes (MR x NR, NR along the contiguous rows of C):
 *   AVX-512 10 x 32: 20 zmm accumulators; M = 20, 30, 40, 50 (every layer of OU-66 / OU-200)
 *                    are multiples of 10, so no M padding is wasted; N edges use masked loads
 *                    and stores, so no temporary tile either.
 *   AVX2+FMA  6 x 16: 12 ymm accumulators of 16 registers.
 *   SSE       4 x 8 : no FMA; 8 accumulators leave room for the products.
 *   NEON      8 x 8 on AArch64 (32 registers), 4 x 8 on 32-bit ARM (16 registers).
 *   scalar    4 x 8 : portable; the compiler may vectorise it.
 * The epilogue of the last K block applies alpha, beta, and for convolutions the bias and ReLU,
 * while the tile is still in registers.
 *
 * Paths are compiled in from the compiler's target macros (__SSE2__, __AVX2__ && __FMA__,
 * __AVX512F__, __ARM_NEON); LENSNET_NO_SIMD leaves only the scalar path. A compiled path is used
 * only if the CPU also reports it (__builtin_cpu_supports under GCC/Clang on x86; elsewhere the
 * compiler flags are taken as the promise). There is no run-time cache: the query reads the
 * feature words the compiler runtime filled in at start-up. */

#if !defined(LENSNET_NO_SIMD)
#if defined(__AVX512F__)
#define LENSNET__HAVE_AVX512 1
#endif
#if defined(__AVX2__) && defined(__FMA__)
#define LENSNET__HAVE_AVX2 1
#endif
#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#define LENSNET__HAVE_SSE 1
#endif
#if defined(__ARM_NEON) || defined(__ARM_NEON__)
#define LENSNET__HAVE_NEON 1
#endif
#endif

#if defined(LENSNET__HAVE_AVX512) || defined(LENSNET__HAVE_AVX2) || defined(LENSNET__HAVE_SSE)
#include <immintrin.h>
#endif
#if defined(LENSNET__HAVE_NEON)
#include <arm_neon.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LENSNET__INLINE static inline __attribute__((always_inline))
#define LENSNET__MAYBE_UNUSED __attribute__((unused))
#else
#define LENSNET__INLINE static
#define LENSNET__MAYBE_UNUSED
#endif

/* Cache blocking. KC * NR floats of B (32 KB for AVX-512) stay in the 48 KB L1 while MC * KC
 * floats of A (120 KB) stay in L2. K is cut into equal blocks no longer than KC, so K = 450 runs
 * as 2 x 225 rather than 256 + 194. */
#ifndef LENSNET__GEMM_KC
#define LENSNET__GEMM_KC 256
#endif
#ifndef LENSNET__GEMM_MC
#define LENSNET__GEMM_MC 120
#endif
#define LENSNET__GEMM_MR_MAX 10
#define LENSNET__GEMM_NR_MAX 32
/* Floats of slack to align a packing buffer to 64 bytes. */
#define LENSNET__ALIGN_SLACK 16

/* What to do with a finished accumulator tile: C = act(alpha * AB + beta * C + bias[row]).
 * beta is the caller's on the first K block and 1 after it; bias and relu only on the last. */
typedef struct {
  float alpha, beta;
  const float *bias; /* already offset to the tile's first row; NULL for none */
  int relu;
} lensnet__epilogue;

typedef void (*lensnet__microkernel_fn)(size_t kc, const float *a_panel, const float *b_panel, float *c,
                                        size_t ldc, size_t m_valid, size_t n_valid, const lensnet__epilogue *ep);
/* Where op(B) comes from: a matrix, or (for convolution) an image whose im2col matrix is read
 * on the fly. The image has already been zero-padded, so only the stride remains:
 * op(B)[(c*kh + i)*kw + j][y*ow + x] = img[c*chan_stride + (y*stride + i)*row_stride + x*stride + j]. */
typedef struct {
  const float *data;
  int is_image;
  int trans;                     /* matrix */
  size_t ld;                     /* matrix */
  size_t chan_stride, row_stride; /* image */
  size_t kh, kw, stride, ow;     /* image */
} lensnet__b_source;

typedef void (*lensnet__pack_b_fn)(const lensnet__b_source *s, size_t k0, size_t kc, size_t j0, size_t nv,
                                   size_t nr, float *dst);
typedef void (*lensnet__pack_a_fn)(int trans, const float *A, size_t lda, size_t i0, size_t mc, size_t k0, size_t kc,
                                   size_t mr, float *dst);
typedef void (*lensnet__copy_fn)(float *dst, const float *src, size_t n);

typedef struct {
  size_t mr, nr;
  lensnet__microkernel_fn kernel;
  lensnet__pack_a_fn pack_a;
  lensnet__pack_b_fn pack_b;
} lensnet__gemm_path;

LENSNET_API const char *lensnet_simd_name(lensnet_simd s) {
  static const char *names[] = {"scalar", "sse", "avx2", "avx512", "neon"};
  return ((int)s >= 0 && s < LENSNET_SIMD_COUNT) ? names[s] : "unknown";
}

#if defined(LENSNET__HAVE_SSE) || defined(LENSNET__HAVE_AVX2) || defined(LENSNET__HAVE_AVX512)
/* Does the CPU run path s? Only asked about paths that are compiled in. */
static int lensnet__cpu_runs(lensnet_simd s) {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  switch (s) {
    case LENSNET_SIMD_SSE: return __builtin_cpu_supports("sse2") != 0;
    case LENSNET_SIMD_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case LENSNET_SIMD_AVX512: return __builtin_cpu_supports("avx512f") != 0;
    default: return 1;
  }
#else
  (void)s;
  return 1;
#endif
}
#endif

LENSNET_API int lensnet_simd_available(lensnet_simd s) {
  switch (s) {
    case LENSNET_SIMD_SCALAR: return 1;
#ifdef LENSNET__HAVE_SSE
    case LENSNET_SIMD_SSE: return lensnet__cpu_runs(s);
#endif
#ifdef LENSNET__HAVE_AVX2
    case LENSNET_SIMD_AVX2: return lensnet__cpu_runs(s);
#endif
#ifdef LENSNET__HAVE_AVX512
    case LENSNET_SIMD_AVX512: return lensnet__cpu_runs(s);
#endif
#ifdef LENSNET__HAVE_NEON
    case LENSNET_SIMD_NEON: return 1;
#endif
    default: return 0;
  }
}

LENSNET_API lensnet_simd lensnet_simd_best(void) {
  static const lensnet_simd widest_first[] = {LENSNET_SIMD_AVX512, LENSNET_SIMD_AVX2, LENSNET_SIMD_NEON, LENSNET_SIMD_SSE};
  size_t i;
  for (i = 0; i < sizeof widest_first / sizeof widest_first[0]; i++)
    if (lensnet_simd_available(widest_first[i])) return widest_first[i];
  return LENSNET_SIMD_SCALAR;
}

/* Rounds p up to a 64-byte boundary; buffers carry LENSNET__ALIGN_SLACK floats for this. */
static float *lensnet__align64(float *p) {
  uintptr_t u = (uintptr_t)p;
  return p + ((64 - (u & 63)) & 63) / sizeof(float);
}

static size_t lensnet__round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

/* K blocks of equal length, none longer than KC. */
static size_t lensnet__k_block(size_t K) {
  size_t blocks = (K + LENSNET__GEMM_KC - 1) / LENSNET__GEMM_KC;
  return blocks ? (K + blocks - 1) / blocks : 0;
}

/* The unblocked product: the fallback when no packing memory can be had, and C = beta*C when
 * alpha or K is zero. Accumulates in float like the blocked paths. */
static void lensnet__sgemm_reference(int ta, int tb, size_t M, size_t N, size_t K, float alpha,
                                     const float *A, size_t lda, const float *B, size_t ldb,
                                     float beta, float *C, size_t ldc) {
  size_t i, j, k;
  for (i = 0; i < M; i++) {
    float *c = C + i * ldc;
    if (beta == 0.0f) for (j = 0; j < N; j++) c[j] = 0.0f;
    else if (beta != 1.0f) for (j = 0; j < N; j++) c[j] *= beta;
    if (alpha == 0.0f) continue;
    for (k = 0; k < K; k++) {
      float a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);
      if (!tb) { const float *b = B + k * ldb; for (j = 0; j < N; j++) c[j] += a * b[j]; }
      else for (j = 0; j < N; j++) c[j] += a * B[j * ldb + k];
    }
  }
}

/* Products with one or two rows (dense layers at batch 1-2: C[1,N] = x W^T): packing would
 * pad M to MR and transpose all of B for a single use, so rows are computed directly. With B
 * transposed each entry is a dot product of two contiguous rows, summed in 16 independent
 * partial sums (compilers map them onto vector lanes without reassociating); otherwise each
 * row of C accumulates alpha*a[k] times row k of B. */
#define LENSNET__SMALL_M 2
#define LENSNET__DOT_LANES 16
static void lensnet__sgemm_small_m(int ta, int tb, size_t M, size_t N, size_t K, float alpha,
                                   const float *A, size_t lda, const float *B, size_t ldb,
                                   float beta, float *C, size_t ldc) {
  size_t i, j, k, l;
  for (i = 0; i < M; i++) {
    float *c = C + i * ldc;
    if (tb) {
      for (j = 0; j < N; j++) {
        const float *b = B + j * ldb;
        float part[LENSNET__DOT_LANES] = {0}, dot = 0.0f;
        for (k = 0; k + LENSNET__DOT_LANES <= K; k += LENSNET__DOT_LANES)
          for (l = 0; l < LENSNET__DOT_LANES; l++)
            part[l] += (ta ? A[(k + l) * lda + i] : A[i * lda + k + l]) * b[k + l];
        for (; k < K; k++) dot += (ta ? A[k * lda + i] : A[i * lda + k]) * b[k];
        for (l = 0; l < LENSNET__DOT_LANES; l++) dot += part[l];
        c[j] = alpha * dot + (beta == 0.0f ? 0.0f : beta * c[j]);
      }
    } else {
      if (beta == 0.0f) for (j = 0; j < N; j++) c[j] = 0.0f;
      else if (beta != 1.0f) for (j = 0; j < N; j++) c[j] *= beta;
      for (k = 0; k < K; k++) {
        const float *b = B + k * ldb;
        float a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);
        for (j = 0; j + LENSNET__DOT_LANES <= N; j += LENSNET__DOT_LANES)
          for (l = 0; l < LENSNET__DOT_LANES; l++) c[j + l] += a * b[j + l];
        for (; j < N; j++) c[j] += a * b[j];
      }
    }
  }
}

/* Epilogue of a tile held in memory (acc is m_valid x n_valid inside an nr-wide array): the
 * scalar kernel always, the SIMD kernels for partial tiles. */
static void lensnet__store_tile(const float *acc, size_t nr, float *c, size_t ldc, size_t m_valid,
                                size_t n_valid, const lensnet__epilogue *ep) {
  size_t r, j;
  for (r = 0; r < m_valid; r++) {
    float add = ep->bias ? ep->bias[r] : 0.0f;
    float *crow = c + r * ldc;
    for (j = 0; j < n_valid; j++) {
      float v = ep->alpha * acc[r * nr + j];
      if (ep->beta != 0.0f) v += ep->beta * crow[j];
      v += add;
      if (ep->relu && v < 0.0f) v = 0.0f;
      crow[j] = v;
    }
  }
}

/* ---- packing (the per-path variants sit with their kernels) ---- */

LENSNET__INLINE void lensnet__copy_plain(float *dst, const float *src, size_t n) { memcpy(dst, src, n * sizeof(float)); }

/* Rows [k0, k0+kc) x columns [j0, j0+nv) of op(B) into a KC x NR micro-panel, columns past nv
 * zero (they are computed and dropped, and must stay finite). Each path instantiates this with
 * its own inline `copy` for short contiguous rows, so no call is made per row.
 * From an image (implicit im2col): a micro-panel's nv output pixels fall into runs that share an
 * output row; for stride 1 each run is contiguous in every input row, so the panel is a few
 * short copies per k whose source offsets are found once per panel. */
LENSNET__INLINE void lensnet__pack_b_with(const lensnet__b_source *s, size_t k0, size_t kc, size_t j0, size_t nv,
                                          size_t nr, float *dst, lensnet__copy_fn copy) {
  size_t k, t, lane;
  if (!s->is_image) {
    if (!s->trans) {
      for (k = 0; k < kc; k++) copy(dst + k * nr, s->data + (k0 + k) * s->ld + j0, nv);
    } else {
      for (lane = 0; lane < nv; lane++) {
        const float *src = s->data + (j0 + lane) * s->ld + k0;
        for (k = 0; k < kc; k++) dst[k * nr + lane] = src[k];
      }
    }
  } else {
    size_t run_lane[LENSNET__GEMM_NR_MAX], run_len[LENSNET__GEMM_NR_MAX], run_src[LENSNET__GEMM_NR_MAX];
    size_t runs = 0, y = j0 / s->ow, x = j0 % s->ow;
    size_t khw = s->kh * s->kw, c = k0 / khw, i = k0 % khw / s->kw, j = k0 % s->kw;
    for (lane = 0; lane < nv; runs++, y++, x = 0) {
      size_t len = s->ow - x < nv - lane ? s->ow - x : nv - lane;
      run_lane[runs] = lane;
      run_len[runs] = len;
      run_src[runs] = y * s->stride * s->row_stride + x * s->stride;
      lane += len;
    }
    for (k = 0; k < kc; k++) {
      const float *src = s->data + c * s->chan_stride + i * s->row_stride + j;
      float *d = dst + k * nr;
      if (s->stride == 1) {
        for (t = 0; t < runs; t++) copy(d + run_lane[t], src + run_src[t], run_len[t]);
      } else {
        for (t = 0; t < runs; t++)
          for (lane = 0; lane < run_len[t]; lane++) d[run_lane[t] + lane] = src[run_src[t] + lane * s->stride];
      }
      if (++j == s->kw) {
        j = 0;
        if (++i == s->kh) { i = 0; c++; }
      }
    }
  }
  if (nv < nr)
    for (k = 0; k < kc; k++)
      for (lane = nv; lane < nr; lane++) dst[k * nr + lane] = 0.0f;
}

/* Rows [i0, i0+mc) x columns [k0, k0+kc) of op(A) into MR-row panels: panel p holds, for each k,
 * the MR values of rows i0+p*MR.. (zero past M), so the kernel reads A sequentially. */
static void lensnet__pack_a_plain(int trans, const float *A, size_t lda, size_t i0, size_t mc, size_t k0, size_t kc,
                                  size_t mr, float *dst) {
  size_t p, r, k;
  for (p = 0; p < mc; p += mr, dst += mr * kc) {
    size_t rows = mc - p < mr ? mc - p : mr;
    if (!trans) {
      const float *row[LENSNET__GEMM_MR_MAX];
      for (r = 0; r < rows; r++) row[r] = A + (i0 + p + r) * lda + k0;
      for (k = 0; k < kc; k++) {
        float *d = dst + k * mr;
        for (r = 0; r < rows; r++) d[r] = row[r][k];
        for (; r < mr; r++) d[r] = 0.0f;
      }
    } else {
      for (k = 0; k < kc; k++) {
        const float *src = A + (k0 + k) * lda + i0 + p;
        float *d = dst + k * mr;
        for (r = 0; r < rows; r++) d[r] = src[r];
        for (; r < mr; r++) d[r] = 0.0f;
      }
    }
  }
}

static void lensnet__pack_b_plain(const lensnet__b_source *s, size_t k0, size_t kc, size_t j0, size_t nv, size_t nr,
                                  float *dst) {
  lensnet__pack_b_with(s, k0, kc, j0, nv, nr, dst, lensnet__copy_plain);
}

/* ---- micro-kernels ---- */

#define LENSNET__SCALAR_MR 4
#define LENSNET__SCALAR_NR 8
/* Written as four rows of eight so that compilers that vectorise straight-line code (GCC and
 * Clang at -O2) map each row onto one vector register. GCC 12 at -O3 with AVX-512 instead
 * vectorises across k with permutes and runs ~10x slower; that build has the SIMD paths. */
static void lensnet__kernel_scalar(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                   size_t m_valid, size_t n_valid, const lensnet__epilogue *ep) {
  float tile[LENSNET__SCALAR_MR * LENSNET__SCALAR_NR] = {0};
  size_t k, j;
  for (k = 0; k < kc; k++, a += LENSNET__SCALAR_MR, b += LENSNET__SCALAR_NR) {
    float a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
    for (j = 0; j < LENSNET__SCALAR_NR; j++) {
      float bj = b[j];
      tile[j] += a0 * bj;
      tile[LENSNET__SCALAR_NR + j] += a1 * bj;
      tile[2 * LENSNET__SCALAR_NR + j] += a2 * bj;
      tile[3 * LENSNET__SCALAR_NR + j] += a3 * bj;
    }
  }
  lensnet__store_tile(tile, LENSNET__SCALAR_NR, c, ldc, m_valid, n_valid, ep);
}

#ifdef LENSNET__HAVE_SSE
#define LENSNET__SSE_MR 4
#define LENSNET__SSE_NR 8
static void lensnet__kernel_sse(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                size_t m_valid, size_t n_valid, const lensnet__epilogue *ep) {
  __m128 acc[LENSNET__SSE_MR][2];
  size_t k, r;
  for (r = 0; r < LENSNET__SSE_MR; r++) acc[r][0] = acc[r][1] = _mm_setzero_ps();
  for (k = 0; k < kc; k++, a += LENSNET__SSE_MR, b += LENSNET__SSE_NR) {
    __m128 b0 = _mm_load_ps(b), b1 = _mm_load_ps(b + 4);
    for (r = 0; r < LENSNET__SSE_MR; r++) {
      __m128 av = _mm_set1_ps(a[r]);
      acc[r][0] = _mm_add_ps(acc[r][0], _mm_mul_ps(av, b0));
      acc[r][1] = _mm_add_ps(acc[r][1], _mm_mul_ps(av, b1));
    }
  }
  if (m_valid == LENSNET__SSE_MR && n_valid == LENSNET__SSE_NR) {
    __m128 alpha = _mm_set1_ps(ep->alpha), beta = _mm_set1_ps(ep->beta), zero = _mm_setzero_ps();
    for (r = 0; r < LENSNET__SSE_MR; r++) {
      float *cr = c + r * ldc;
      __m128 v0 = _mm_mul_ps(alpha, acc[r][0]), v1 = _mm_mul_ps(alpha, acc[r][1]);
      if (ep->beta != 0.0f) {
        v0 = _mm_add_ps(v0, _mm_mul_ps(beta, _mm_loadu_ps(cr)));
        v1 = _mm_add_ps(v1, _mm_mul_ps(beta, _mm_loadu_ps(cr + 4)));
      }
      if (ep->bias) { __m128 bv = _mm_set1_ps(ep->bias[r]); v0 = _mm_add_ps(v0, bv); v1 = _mm_add_ps(v1, bv); }
      if (ep->relu) { v0 = _mm_max_ps(zero, v0); v1 = _mm_max_ps(zero, v1); } /* max(0, NaN) keeps NaN */
      _mm_storeu_ps(cr, v0);
      _mm_storeu_ps(cr + 4, v1);
    }
  } else {
    float tile[LENSNET__SSE_MR * LENSNET__SSE_NR];
    for (r = 0; r < LENSNET__SSE_MR; r++) {
      _mm_storeu_ps(tile + r * LENSNET__SSE_NR, acc[r][0]);
      _mm_storeu_ps(tile + r * LENSNET__SSE_NR + 4, acc[r][1]);
    }
    lensnet__store_tile(tile, LENSNET__SSE_NR, c, ldc, m_valid, n_valid, ep);
  }
}
#endif

#ifdef LENSNET__HAVE_AVX2
#define LENSNET__AVX2_MR 6
#define LENSNET__AVX2_NR 16
#define LENSNET__AVX2_FMA_ROW(r) \
  av = _mm256_broadcast_ss(a + (r)); \
  c##r##0 = _mm256_fmadd_ps(av, b0, c##r##0); \
  c##r##1 = _mm256_fmadd_ps(av, b1, c##r##1);

LENSNET__INLINE void lensnet__avx2_store_row(float *c, __m256 v0, __m256 v1, const lensnet__epilogue *ep, size_t r) {
  __m256 alpha = _mm256_set1_ps(ep->alpha);
  v0 = _mm256_mul_ps(alpha, v0);
  v1 = _mm256_mul_ps(alpha, v1);
  if (ep->beta != 0.0f) {
    __m256 beta = _mm256_set1_ps(ep->beta);
    v0 = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c), v0);
    v1 = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c + 8), v1);
  }
  if (ep->bias) { __m256 bv = _mm256_set1_ps(ep->bias[r]); v0 = _mm256_add_ps(v0, bv); v1 = _mm256_add_ps(v1, bv); }
  if (ep->relu) { v0 = _mm256_max_ps(_mm256_setzero_ps(), v0); v1 = _mm256_max_ps(_mm256_setzero_ps(), v1); }
  _mm256_storeu_ps(c, v0);
  _mm256_storeu_ps(c + 8, v1);
}

static void lensnet__kernel_avx2(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                 size_t m_valid, size_t n_valid, const lensnet__epilogue *ep) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  size_t k;
  for (k = 0; k < kc; k++, a += LENSNET__AVX2_MR, b += LENSNET__AVX2_NR) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), av;
    LENSNET__AVX2_FMA_ROW(0) LENSNET__AVX2_FMA_ROW(1) LENSNET__AVX2_FMA_ROW(2)
    LENSNET__AVX2_FMA_ROW(3) LENSNET__AVX2_FMA_ROW(4) LENSNET__AVX2_FMA_ROW(5)
  }
  if (m_valid == LENSNET__AVX2_MR && n_valid == LENSNET__AVX2_NR) {
    lensnet__avx2_store_row(c, c00, c01, ep, 0);
    lensnet__avx2_store_row(c + ldc, c10, c11, ep, 1);
    lensnet__avx2_store_row(c + 2 * ldc, c20, c21, ep, 2);
    lensnet__avx2_store_row(c + 3 * ldc, c30, c31, ep, 3);
    lensnet__avx2_store_row(c + 4 * ldc, c40, c41, ep, 4);
    lensnet__avx2_store_row(c + 5 * ldc, c50, c51, ep, 5);
  } else {
    float tile[LENSNET__AVX2_MR * LENSNET__AVX2_NR];
    _mm256_storeu_ps(tile, c00); _mm256_storeu_ps(tile + 8, c01);
    _mm256_storeu_ps(tile + 16, c10); _mm256_storeu_ps(tile + 24, c11);
    _mm256_storeu_ps(tile + 32, c20); _mm256_storeu_ps(tile + 40, c21);
    _mm256_storeu_ps(tile + 48, c30); _mm256_storeu_ps(tile + 56, c31);
    _mm256_storeu_ps(tile + 64, c40); _mm256_storeu_ps(tile + 72, c41);
    _mm256_storeu_ps(tile + 80, c50); _mm256_storeu_ps(tile + 88, c51);
    lensnet__store_tile(tile, LENSNET__AVX2_NR, c, ldc, m_valid, n_valid, ep);
  }
}

LENSNET__INLINE void lensnet__copy_avx2(float *dst, const float *src, size_t n) {
  for (; n >= 8; n -= 8, dst += 8, src += 8) _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
  if (n) {
    /* lanes 0..n-1 on: the mask is the sign bit of (n - 1 - lane) >= 0 */
    __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), lanes);
    _mm256_maskstore_ps(dst, mask, _mm256_maskload_ps(src, mask));
  }
}

/* Lanes [lo, hi) of an 8-lane vector as an AVX2 load/store mask. */
static __m256i lensnet__avx2_lane_mask(size_t lo, size_t hi) {
  __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)lo), lanes),
                             _mm256_cmpgt_epi32(_mm256_set1_epi32((int)hi), lanes));
}

/* AVX2 packing of B from an image at stride 1: the AVX-512 scheme with 8-lane halves. Images
 * at least 8 pixels wide give each half at most two runs: four masked loads (which never touch
 * masked-off lanes), two blends and two stores per k. Everything else goes the generic way. */
static void lensnet__pack_b_avx2(const lensnet__b_source *s, size_t k0, size_t kc, size_t j0, size_t nv, size_t nr,
                                 float *dst) {
  __m256i mask[2][2];
  size_t off[2][2] = {{0, 0}, {0, 0}}, segs[2] = {0, 0}, lane = 0, h, k, base, y, x, khw, c, i, j;
  if (!s->is_image || s->stride != 1 || nr != 16 || s->ow < 8) {
    lensnet__pack_b_with(s, k0, kc, j0, nv, nr, dst, lensnet__copy_avx2);
    return;
  }
  mask[0][0] = mask[0][1] = mask[1][0] = mask[1][1] = _mm256_setzero_si256();
  for (y = j0 / s->ow, x = j0 % s->ow; lane < nv; y++, x = 0) {
    size_t len = s->ow - x < nv - lane ? s->ow - x : nv - lane;
    for (h = 0; h < 2; h++) {
      size_t lo = lane > 8 * h ? lane : 8 * h, hi = lane + len < 8 * h + 8 ? lane + len : 8 * h + 8;
      if (lo >= hi) continue;
      mask[h][segs[h]] = lensnet__avx2_lane_mask(lo - 8 * h, hi - 8 * h);
      off[h][segs[h]++] = y * s->row_stride + x - lane + 8 * h;
    }
    lane += len;
  }
  for (h = 0; h < 2; h++)
    if (segs[h] == 1) off[h][1] = off[h][0]; /* an empty second mask still needs a valid address */
  khw = s->kh * s->kw;
  c = k0 / khw;
  i = k0 % khw / s->kw;
  j = k0 % s->kw;
  base = c * s->chan_stride + i * s->row_stride + j;
  for (k = 0; k < kc; k++, dst += 16) {
    const float *src = s->data + base;
    for (h = 0; h < 2; h++)
      _mm256_store_ps(dst + 8 * h, _mm256_blendv_ps(_mm256_maskload_ps(src + off[h][0], mask[h][0]),
                                                    _mm256_maskload_ps(src + off[h][1], mask[h][1]),
                                                    _mm256_castsi256_ps(mask[h][1])));
    base++;
    if (++j == s->kw) {
      j = 0;
      base += s->row_stride - s->kw;
      if (++i == s->kh) { i = 0; base += s->chan_stride - s->kh * s->row_stride; }
    }
  }
}
#endif

#ifdef LENSNET__HAVE_AVX512
#define LENSNET__AVX512_MR 10
#define LENSNET__AVX512_NR 32
#define LENSNET__AVX512_FMA_ROW(r, step) \
  av = _mm512_set1_ps(a[(step) * LENSNET__AVX512_MR + (r)]); \
  c##r##0 = _mm512_fmadd_ps(av, b0, c##r##0); \
  c##r##1 = _mm512_fmadd_ps(av, b1, c##r##1);
#define LENSNET__AVX512_FMA_HALF_ROW(r) \
  av = _mm512_set1_ps(a[r]); \
  c##r##0 = _mm512_fmadd_ps(av, b0, c##r##0);
/* One k step: two B vectors times ten broadcast A values into the 20 accumulators. */
#define LENSNET__AVX512_K_STEP(step) { \
    __m512 b0 = _mm512_load_ps(b + (step) * LENSNET__AVX512_NR), b1 = _mm512_load_ps(b + (step) * LENSNET__AVX512_NR + 16), av; \
    LENSNET__AVX512_FMA_ROW(0, step) LENSNET__AVX512_FMA_ROW(1, step) LENSNET__AVX512_FMA_ROW(2, step) \
    LENSNET__AVX512_FMA_ROW(3, step) LENSNET__AVX512_FMA_ROW(4, step) LENSNET__AVX512_FMA_ROW(5, step) \
    LENSNET__AVX512_FMA_ROW(6, step) LENSNET__AVX512_FMA_ROW(7, step) LENSNET__AVX512_FMA_ROW(8, step) \
    LENSNET__AVX512_FMA_ROW(9, step) }
#define LENSNET__AVX512_STORE_ROW(r) \
  if ((r) < m_valid) lensnet__avx512_store_row(c + (r) * ldc, c##r##0, c##r##1, m0, m1, ep, r);

LENSNET__INLINE void lensnet__avx512_store_row(float *c, __m512 v0, __m512 v1, __mmask16 m0, __mmask16 m1,
                                               const lensnet__epilogue *ep, size_t r) {
  __m512 alpha = _mm512_set1_ps(ep->alpha);
  v0 = _mm512_mul_ps(alpha, v0);
  v1 = _mm512_mul_ps(alpha, v1);
  if (ep->beta != 0.0f) {
    __m512 beta = _mm512_set1_ps(ep->beta);
    v0 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m0, c), v0);
    v1 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m1, c + 16), v1);
  }
  if (ep->bias) { __m512 bv = _mm512_set1_ps(ep->bias[r]); v0 = _mm512_add_ps(v0, bv); v1 = _mm512_add_ps(v1, bv); }
  if (ep->relu) { /* max(0, NaN) keeps NaN; the maskz form avoids GCC 12's C++ warning about
                    * the undefined pass-through vector inside _mm512_max_ps */
    v0 = _mm512_maskz_max_ps((__mmask16)0xFFFF, _mm512_setzero_ps(), v0);
    v1 = _mm512_maskz_max_ps((__mmask16)0xFFFF, _mm512_setzero_ps(), v1);
  }
  _mm512_mask_storeu_ps(c, m0, v0);
  _mm512_mask_storeu_ps(c + 16, m1, v1);
}

/* Mask of the first n (0..16) lanes. */
static __mmask16 lensnet__avx512_first_lanes(size_t n) {
  return (__mmask16)(n >= 16 ? 0xFFFFu : ((1u << n) - 1u));
}

static void lensnet__kernel_avx512(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                   size_t m_valid, size_t n_valid, const lensnet__epilogue *ep) {
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  __m512 c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
  __m512 c80 = c00, c81 = c00, c90 = c00, c91 = c00;
  __mmask16 m0 = lensnet__avx512_first_lanes(n_valid);
  __mmask16 m1 = lensnet__avx512_first_lanes(n_valid > 16 ? n_valid - 16 : 0);
  size_t k;
  if (n_valid <= 16) { /* a narrow edge (small images: N = 16, 36, 100): half the work */
    for (k = 0; k < kc; k++, a += LENSNET__AVX512_MR, b += LENSNET__AVX512_NR) {
      __m512 b0 = _mm512_load_ps(b), av;
      LENSNET__AVX512_FMA_HALF_ROW(0) LENSNET__AVX512_FMA_HALF_ROW(1) LENSNET__AVX512_FMA_HALF_ROW(2)
      LENSNET__AVX512_FMA_HALF_ROW(3) LENSNET__AVX512_FMA_HALF_ROW(4) LENSNET__AVX512_FMA_HALF_ROW(5)
      LENSNET__AVX512_FMA_HALF_ROW(6) LENSNET__AVX512_FMA_HALF_ROW(7) LENSNET__AVX512_FMA_HALF_ROW(8)
      LENSNET__AVX512_FMA_HALF_ROW(9)
    }
  } else {
    for (k = 0; k < kc; k++, a += LENSNET__AVX512_MR, b += LENSNET__AVX512_NR) LENSNET__AVX512_K_STEP(0)
  }
  LENSNET__AVX512_STORE_ROW(0) LENSNET__AVX512_STORE_ROW(1) LENSNET__AVX512_STORE_ROW(2)
  LENSNET__AVX512_STORE_ROW(3) LENSNET__AVX512_STORE_ROW(4) LENSNET__AVX512_STORE_ROW(5)
  LENSNET__AVX512_STORE_ROW(6) LENSNET__AVX512_STORE_ROW(7) LENSNET__AVX512_STORE_ROW(8)
  LENSNET__AVX512_STORE_ROW(9)
}

LENSNET__INLINE void lensnet__copy_avx512(float *dst, const float *src, size_t n) {
  __mmask16 m;
  for (; n >= 16; n -= 16, dst += 16, src += 16) _mm512_storeu_ps(dst, _mm512_loadu_ps(src));
  m = lensnet__avx512_first_lanes(n);
  if (m) _mm512_mask_storeu_ps(dst, m, _mm512_maskz_loadu_ps(m, src));
}

/* AVX-512 packing of A (row-major, the conv weights): one masked gather collects the ten rows'
 * values of column k, one masked store writes them; about twice the speed of element copies. */
static void lensnet__pack_a_avx512(int trans, const float *A, size_t lda, size_t i0, size_t mc, size_t k0, size_t kc,
                                   size_t mr, float *dst) {
  size_t p, k;
  if (trans || mr != LENSNET__AVX512_MR || lda > (size_t)INT_MAX / LENSNET__AVX512_MR) {
    lensnet__pack_a_plain(trans, A, lda, i0, mc, k0, kc, mr, dst);
    return;
  }
  for (p = 0; p < mc; p += mr, dst += mr * kc) {
    size_t rows = mc - p < mr ? mc - p : mr;
    const float *src = A + (i0 + p) * lda + k0;
    __mmask16 live = lensnet__avx512_first_lanes(rows), store = lensnet__avx512_first_lanes(mr);
    __m512i offsets = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32((int)lda));
    for (k = 0; k < kc; k++) /* rows past M gather nothing and store zero */
      _mm512_mask_storeu_ps(dst + k * mr, store, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, offsets, src + k, 4));
  }
}

/* AVX-512 packing of B. A matrix row is two masked loads (the mask also zeroes columns past N).
 * For an image at stride 1, lane l of a 16-lane half of the panel reads src(k) + off + l, where
 * off is constant within a run of pixels sharing an output row; so each half is one masked load
 * per run it overlaps (runs found once per panel), merged in a register and stored whole. */
static void lensnet__pack_b_avx512(const lensnet__b_source *s, size_t k0, size_t kc, size_t j0, size_t nv, size_t nr,
                                   float *dst) {
  if (nr != 32 || (s->is_image && s->stride != 1) ||
      (!s->is_image && s->trans && s->ld > (size_t)INT_MAX / LENSNET__AVX512_NR)) {
    lensnet__pack_b_with(s, k0, kc, j0, nv, nr, dst, lensnet__copy_avx512);
  } else if (!s->is_image && s->trans) {
    /* B^T (training's A B^T): column k of the panel is element k of 32 rows, two masked gathers */
    __mmask16 m0 = lensnet__avx512_first_lanes(nv), m1 = lensnet__avx512_first_lanes(nv > 16 ? nv - 16 : 0);
    __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                      _mm512_set1_epi32((int)s->ld));
    const float *src0 = s->data + j0 * s->ld + k0, *src1 = src0 + (nv > 16 ? 16 * s->ld : 0);
    size_t k;
    for (k = 0; k < kc; k++, dst += 32) {
      _mm512_store_ps(dst, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m0, rows, src0 + k, 4));
      _mm512_store_ps(dst + 16, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m1, rows, src1 + k, 4));
    }
  } else if (!s->is_image) {
    __mmask16 m0 = lensnet__avx512_first_lanes(nv), m1 = lensnet__avx512_first_lanes(nv > 16 ? nv - 16 : 0);
    const float *src = s->data + k0 * s->ld + j0;
    size_t k;
    for (k = 0; k < kc; k++, src += s->ld, dst += 32) {
      _mm512_store_ps(dst, _mm512_maskz_loadu_ps(m0, src));
      _mm512_store_ps(dst + 16, _mm512_maskz_loadu_ps(m1, src + 16));
    }
  } else {
    __mmask16 seg_mask[2][16];
    size_t seg_off[2][16], segs[2] = {0, 0}, lane = 0, y = j0 / s->ow, x = j0 % s->ow, h, n, k, base;
    size_t khw = s->kh * s->kw, c = k0 / khw, i = k0 % khw / s->kw, j = k0 % s->kw;
    for (; lane < nv; y++, x = 0) {
      size_t len = s->ow - x < nv - lane ? s->ow - x : nv - lane, off = y * s->row_stride + x - lane;
      for (h = 0; h < 2; h++) {
        size_t lo = lane > 16 * h ? lane : 16 * h, hi = lane + len < 16 * h + 16 ? lane + len : 16 * h + 16;
        if (lo >= hi) continue;
        seg_mask[h][segs[h]] = (__mmask16)(lensnet__avx512_first_lanes(hi - 16 * h) & ~lensnet__avx512_first_lanes(lo - 16 * h));
        seg_off[h][segs[h]++] = off + 16 * h;
      }
      lane += len;
    }
    base = c * s->chan_stride + i * s->row_stride + j;
    if (segs[0] <= 2 && segs[1] <= 2) {
      /* images at least 16 pixels wide: each half has at most two runs, so the row is four
       * masked loads (an empty mask loads nothing) and two stores, without inner loops */
      __mmask16 m00 = 0, m01 = 0, m10 = 0, m11 = 0;
      size_t o00 = 0, o01 = 0, o10 = 0, o11 = 0;
      if (segs[0] > 0) { m00 = seg_mask[0][0]; o00 = o01 = seg_off[0][0]; }
      if (segs[0] > 1) { m01 = seg_mask[0][1]; o01 = seg_off[0][1]; }
      if (segs[1] > 0) { m10 = seg_mask[1][0]; o10 = o11 = seg_off[1][0]; }
      if (segs[1] > 1) { m11 = seg_mask[1][1]; o11 = seg_off[1][1]; }
      for (k = 0; k < kc; k++, dst += 32) {
        const float *src = s->data + base;
        /* independent zero-masked loads merged by register moves: loads merging into one
         * register would chain their latencies */
        _mm512_store_ps(dst, _mm512_mask_mov_ps(_mm512_maskz_loadu_ps(m00, src + o00), m01,
                                                _mm512_maskz_loadu_ps(m01, src + o01)));
        _mm512_store_ps(dst + 16, _mm512_mask_mov_ps(_mm512_maskz_loadu_ps(m10, src + o10), m11,
                                                     _mm512_maskz_loadu_ps(m11, src + o11)));
        base++;
        if (++j == s->kw) {
          j = 0;
          base += s->row_stride - s->kw;
          if (++i == s->kh) { i = 0; base += s->chan_stride - s->kh * s->row_stride; }
        }
      }
    } else {
      for (k = 0; k < kc; k++, dst += 32) {
        const float *src = s->data + base;
        for (h = 0; h < 2; h++) {
          __m512 v = segs[h] ? _mm512_maskz_loadu_ps(seg_mask[h][0], src + seg_off[h][0]) : _mm512_setzero_ps();
          for (n = 1; n < segs[h]; n++)
            v = _mm512_mask_mov_ps(v, seg_mask[h][n], _mm512_maskz_loadu_ps(seg_mask[h][n], src + seg_off[h][n]));
          _mm512_store_ps(dst + 16 * h, v);
        }
        base++;
        if (++j == s->kw) {
          j = 0;
          base += s->row_stride - s->kw;
          if (++i == s->kh) { i = 0; base += s->chan_stride - s->kh * s->row_stride; }
        }
      }
    }
  }
}
#endif

#ifdef LENSNET__HAVE_NEON
#if defined(__aarch64__) || defined(_M_ARM64)
#define LENSNET__NEON_MR 8
#define LENSNET__NEON_FMA(acc, b, a4, lane) vfmaq_laneq_f32(acc, b, a4, lane)
#else
#define LENSNET__NEON_MR 4
#define LENSNET__NEON_FMA(acc, b, a4, lane) \
  vmlaq_lane_f32(acc, b, (lane) < 2 ? vget_low_f32(a4) : vget_high_f32(a4), (lane) & 1)
#endif
#define LENSNET__NEON_NR 8
#define LENSNET__NEON_ROW(row, a4, lane) \
  acc[row][0] = LENSNET__NEON_FMA(acc[row][0], b0, a4, lane); \
  acc[row][1] = LENSNET__NEON_FMA(acc[row][1], b1, a4, lane);

static void lensnet__kernel_neon(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                 size_t m_valid, size_t n_valid, const lensnet__epilogue *ep) {
  float32x4_t acc[LENSNET__NEON_MR][2];
  size_t k, r;
  for (r = 0; r < LENSNET__NEON_MR; r++) acc[r][0] = acc[r][1] = vdupq_n_f32(0.0f);
  for (k = 0; k < kc; k++, a += LENSNET__NEON_MR, b += LENSNET__NEON_NR) {
    float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), a0 = vld1q_f32(a);
    LENSNET__NEON_ROW(0, a0, 0) LENSNET__NEON_ROW(1, a0, 1) LENSNET__NEON_ROW(2, a0, 2) LENSNET__NEON_ROW(3, a0, 3)
#if LENSNET__NEON_MR == 8
    {
      float32x4_t a1 = vld1q_f32(a + 4);
      LENSNET__NEON_ROW(4, a1, 0) LENSNET__NEON_ROW(5, a1, 1) LENSNET__NEON_ROW(6, a1, 2) LENSNET__NEON_ROW(7, a1, 3)
    }
#endif
  }
  if (m_valid == LENSNET__NEON_MR && n_valid == LENSNET__NEON_NR) {
    float32x4_t alpha = vdupq_n_f32(ep->alpha), beta = vdupq_n_f32(ep->beta), zero = vdupq_n_f32(0.0f);
    for (r = 0; r < LENSNET__NEON_MR; r++) {
      float *cr = c + r * ldc;
      float32x4_t v0 = vmulq_f32(alpha, acc[r][0]), v1 = vmulq_f32(alpha, acc[r][1]);
      if (ep->beta != 0.0f) {
        v0 = vaddq_f32(v0, vmulq_f32(beta, vld1q_f32(cr)));
        v1 = vaddq_f32(v1, vmulq_f32(beta, vld1q_f32(cr + 4)));
      }
      if (ep->bias) { float32x4_t bv = vdupq_n_f32(ep->bias[r]); v0 = vaddq_f32(v0, bv); v1 = vaddq_f32(v1, bv); }
      if (ep->relu) { v0 = vmaxq_f32(zero, v0); v1 = vmaxq_f32(zero, v1); }
      vst1q_f32(cr, v0);
      vst1q_f32(cr + 4, v1);
    }
  } else {
    float tile[LENSNET__NEON_MR * LENSNET__NEON_NR];
    for (r = 0; r < LENSNET__NEON_MR; r++) {
      vst1q_f32(tile + r * LENSNET__NEON_NR, acc[r][0]);
      vst1q_f32(tile + r * LENSNET__NEON_NR + 4, acc[r][1]);
    }
    lensnet__store_tile(tile, LENSNET__NEON_NR, c, ldc, m_valid, n_valid, ep);
  }
}
#endif

/* The path's shapes and kernels; an unavailable path resolves to scalar. */
static const lensnet__gemm_path *lensnet__gemm_path_for(lensnet_simd s) {
  static const lensnet__gemm_path scalar = {LENSNET__SCALAR_MR, LENSNET__SCALAR_NR, lensnet__kernel_scalar, lensnet__pack_a_plain, lensnet__pack_b_plain};
#ifdef LENSNET__HAVE_SSE
  static const lensnet__gemm_path sse = {LENSNET__SSE_MR, LENSNET__SSE_NR, lensnet__kernel_sse, lensnet__pack_a_plain, lensnet__pack_b_plain};
#endif
#ifdef LENSNET__HAVE_AVX2
  static const lensnet__gemm_path avx2 = {LENSNET__AVX2_MR, LENSNET__AVX2_NR, lensnet__kernel_avx2, lensnet__pack_a_plain, lensnet__pack_b_avx2};
#endif
#ifdef LENSNET__HAVE_AVX512
  static const lensnet__gemm_path avx512 = {LENSNET__AVX512_MR, LENSNET__AVX512_NR, lensnet__kernel_avx512, lensnet__pack_a_avx512, lensnet__pack_b_avx512};
#endif
#ifdef LENSNET__HAVE_NEON
  static const lensnet__gemm_path neon = {LENSNET__NEON_MR, LENSNET__NEON_NR, lensnet__kernel_neon, lensnet__pack_a_plain, lensnet__pack_b_plain};
#endif
  if (!lensnet_simd_available(s)) return &scalar;
  switch (s) {
#ifdef LENSNET__HAVE_SSE
    case LENSNET_SIMD_SSE: return &sse;
#endif
#ifdef LENSNET__HAVE_AVX2
    case LENSNET_SIMD_AVX2: return &avx2;
#endif
#ifdef LENSNET__HAVE_AVX512
    case LENSNET_SIMD_AVX512: return &avx512;
#endif
#ifdef LENSNET__HAVE_NEON
    case LENSNET_SIMD_NEON: return &neon;
#endif
    default: return &scalar;
  }
}

/* ---- the blocked product ---- */

/* C[0:mc, 0:N] = epilogue(Ap * op(B)[k0:k0+kc, 0:N]) for one packed block Ap of A. */
static void lensnet__macro_kernel(const lensnet__gemm_path *path, size_t mc, size_t N, size_t kc, const float *Ap,
                                  const lensnet__b_source *b, size_t k0, float *C, size_t ldc,
                                  const lensnet__epilogue *ep, float *Bp) {
  size_t j0, i0, mr = path->mr, nr = path->nr;
  lensnet__epilogue tile_ep = *ep;
  for (j0 = 0; j0 < N; j0 += nr) {
    size_t nv = N - j0 < nr ? N - j0 : nr;
    path->pack_b(b, k0, kc, j0, nv, nr, Bp);
    for (i0 = 0; i0 < mc; i0 += mr) {
      tile_ep.bias = ep->bias ? ep->bias + i0 : NULL;
      path->kernel(kc, Ap + i0 * kc, Bp, C + i0 * ldc + j0, ldc, mc - i0 < mr ? mc - i0 : mr, nv, &tile_ep);
    }
  }
}

/* Floats of packing memory for an mc x kc block of A and a kc x NR panel of B, aligned. */
static size_t lensnet__pack_floats(size_t mc, size_t kc, size_t mr, size_t nr) {
  size_t a_floats, b_floats;
  if (!lensnet__mul_ok(lensnet__round_up(mc, mr), kc, &a_floats) || !lensnet__mul_ok(kc, nr, &b_floats) ||
      a_floats > (size_t)-1 - b_floats - 2 * LENSNET__ALIGN_SLACK)
    return (size_t)-1;
  return a_floats + b_floats + 2 * LENSNET__ALIGN_SLACK;
}

LENSNET_API void lensnet_sgemm_path(lensnet_simd simd, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                                    float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                                    float beta, float *C, size_t ldc) {
  const lensnet__gemm_path *path = lensnet__gemm_path_for(simd);
  size_t kc_max = lensnet__k_block(K), mc_max = M < LENSNET__GEMM_MC ? M : LENSNET__GEMM_MC;
  size_t floats, bytes, ic, pc;
  lensnet__b_source bsrc;
  lensnet__epilogue ep;
  float *mem, *Ap, *Bp;
  if (M == 0 || N == 0) return;
  if (alpha == 0.0f || K == 0) {
    lensnet__sgemm_reference(trans_a, trans_b, M, N, 0, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (M <= LENSNET__SMALL_M) {
    lensnet__sgemm_small_m(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  floats = lensnet__pack_floats(mc_max, kc_max, path->mr, path->nr);
  mem = (floats != (size_t)-1 && lensnet__mul_ok(floats, sizeof(float), &bytes))
            ? LENSNET__CAST(float *, LENSNET_MALLOC(bytes)) : NULL;
  if (!mem) { /* no memory for packing: the unblocked loop still gives the answer */
    lensnet__sgemm_reference(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  Ap = lensnet__align64(mem);
  Bp = lensnet__align64(Ap + lensnet__round_up(mc_max, path->mr) * kc_max);
  memset(&bsrc, 0, sizeof bsrc);
  bsrc.data = B;
  bsrc.trans = trans_b;
  bsrc.ld = ldb;
  ep.alpha = alpha;
  ep.bias = NULL;
  ep.relu = 0;
  for (ic = 0; ic < M; ic += mc_max) {
    size_t mc = M - ic < mc_max ? M - ic : mc_max;
    for (pc = 0; pc < K; pc += kc_max) {
      size_t kc = K - pc < kc_max ? K - pc : kc_max;
      path->pack_a(trans_a, A, lda, ic, mc, pc, kc, path->mr, Ap);
      ep.beta = pc == 0 ? beta : 1.0f;
      lensnet__macro_kernel(path, mc, N, kc, Ap, &bsrc, pc, C + ic * ldc, ldc, &ep, Bp);
    }
  }
  LENSNET_FREE(mem);
}

LENSNET_API void lensnet_sgemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
                               const float *A, size_t lda, const float *B, size_t ldb,
                               float beta, float *C, size_t ldc) {
  lensnet_sgemm_path(lensnet_simd_best(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---- convolution (forward) ----------------------------------------------------------------- */

/* Convolution runs as C[cout_g, oh*ow] = W[cout_g, K] * col[K, oh*ow] per image and group, with
 * K = cin_g*kh*kw, through the blocked product above. The col matrix is never formed: B
 * micro-panels are packed straight from the image (implicit GEMM), padding is applied once by
 * copying the image into a zero border, and bias + ReLU are applied in the micro-kernel's
 * epilogue while the tile is in registers. The group's weights are packed once per call and
 * reused for every image of the batch.
 *
 * Implicit GEMM or im2col? Measured with tests/bench_gemm.c (AVX-512 path, one core of a
 * Sapphire Rapids machine whose measured FMA peak was 192 GFLOP/s, batch 1, bias + ReLU):
 *                               implicit GEMM            im2col (row copies) + sgemm + bias/ReLU
 *   OU-66  conv2 50->50 @32      268 us (151 GFLOP/s)     398 us (102 GFLOP/s)
 *   OU-66  all nine conv layers  977 us (151 GFLOP/s)    1593 us ( 93 GFLOP/s)
 *   OU-200 all six conv layers  8387 us (157 GFLOP/s)   15061 us ( 87 GFLOP/s)
 * im2col writes kh*kw times the image (1.6 MB for OU-66 conv2, 44 MB for OU-200 conv2) and the
 * packing reads it all back; packing from the image reads the same data once, from L1/L2. So
 * the forward uses implicit GEMM; lensnet__im2col stays for the backward pass. */

/* The geometry of one 2-D convolution layer applied to a batch (PyTorch semantics:
 * cross-correlation, zero padding, oh = (h + 2 pad - kh) / stride + 1). */
typedef struct {
  size_t n, cin, h, w;      /* input [n, cin, h, w] */
  size_t cout, kh, kw;      /* weight [cout, cin/groups, kh, kw] */
  size_t stride, pad, groups;
  size_t oh, ow;            /* output [n, cout, oh, ow] */
} lensnet__conv_geom;

/* Sizes of the parts of the forward's scratch, in floats (SIZE_MAX on overflow). */
static int lensnet__conv_scratch_parts(const lensnet__conv_geom *g, size_t *a_floats, size_t *b_floats,
                                       size_t *pad_floats) {
  size_t cin_g = g->cin / g->groups, cout_g = g->cout / g->groups, K, hp = g->h + 2 * g->pad, wp = g->w + 2 * g->pad;
  if (!lensnet__mul_ok(cin_g, g->kh, &K) || !lensnet__mul_ok(K, g->kw, &K)) return 0;
  /* every path's MR divides neither necessarily: pad rows up to the largest MR */
  if (!lensnet__mul_ok(cout_g + LENSNET__GEMM_MR_MAX, K, a_floats)) return 0;
  *b_floats = (size_t)LENSNET__GEMM_KC * LENSNET__GEMM_NR_MAX;
  *pad_floats = 0;
  if (g->pad && (!lensnet__mul_ok(cin_g, hp, pad_floats) || !lensnet__mul_ok(*pad_floats, wp, pad_floats))) return 0;
  return 1;
}

/* Floats of scratch the forward alone needs: packed weights, one B micro-panel and, with
 * padding, one padded image-group (about 280 KB for the largest OU-200 layer). SIZE_MAX when the
 * sizes overflow. For inference-only buffers. */
LENSNET__MAYBE_UNUSED static size_t lensnet__conv_forward_scratch_floats(const lensnet__conv_geom *g) {
  size_t a, b, padded;
  if (!lensnet__conv_scratch_parts(g, &a, &b, &padded) || a > (size_t)-1 - b - padded - 3 * LENSNET__ALIGN_SLACK)
    return (size_t)-1;
  return a + b + padded + 3 * LENSNET__ALIGN_SLACK;
}

/* Floats of scratch memory lensnet__conv2d_forward needs for this geometry, raised to one
 * image-group of lensnet__im2col output so that a backward pass can share the buffer (the im2col
 * size is what this function returned before the forward packed from the image; for OU-200's
 * second layer it is 44 MB against 280 KB, so inference can use the function above).
 * SIZE_MAX when the sizes overflow. */
LENSNET__MAYBE_UNUSED static size_t lensnet__conv_scratch_floats(const lensnet__conv_geom *g) {
  size_t total = lensnet__conv_forward_scratch_floats(g), col;
  if (total == (size_t)-1) return total;
  if (!lensnet__mul_ok(g->cin / g->groups, g->kh, &col) || !lensnet__mul_ok(col, g->kw, &col) ||
      !lensnet__mul_ok(col, g->oh, &col) || !lensnet__mul_ok(col, g->ow, &col))
    return (size_t)-1;
  return total > col ? total : col;
}

/* Unrolls one image's group of channels into columns: col[(c*kh + i)*kw + j][y*ow + x]
 * (used by the backward pass; the forward packs the same values straight from the image).
 * At stride 1 each output row is one copy between two zero runs. */
LENSNET__MAYBE_UNUSED static void lensnet__im2col(const lensnet__conv_geom *g, const float *img, size_t cin_g, float *col) {
  size_t c, i, j, y, x, P = g->oh * g->ow;
  for (c = 0; c < cin_g; c++)
    for (i = 0; i < g->kh; i++)
      for (j = 0; j < g->kw; j++) {
        float *dst = col + ((c * g->kh + i) * g->kw + j) * P;
        const float *src = img + c * g->h * g->w;
        /* output columns whose input column x*stride + j - pad lies inside the image */
        size_t x_lo = j >= g->pad ? 0 : (g->pad - j + g->stride - 1) / g->stride;
        size_t x_hi = g->w + g->pad > j ? (g->w + g->pad - j + g->stride - 1) / g->stride : 0;
        if (x_hi > g->ow) x_hi = g->ow;
        if (x_lo > x_hi) x_lo = x_hi;
        for (y = 0; y < g->oh; y++, dst += g->ow) {
          size_t iy = y * g->stride + i;
          const float *row;
          if (iy < g->pad || iy - g->pad >= g->h) {
            memset(dst, 0, g->ow * sizeof(float));
            continue;
          }
          row = src + (iy - g->pad) * g->w;
          memset(dst, 0, x_lo * sizeof(float));
          if (g->stride == 1) {
            if (x_hi > x_lo) memcpy(dst + x_lo, row + x_lo + j - g->pad, (x_hi - x_lo) * sizeof(float));
          } else {
            for (x = x_lo; x < x_hi; x++) dst[x] = row[x * g->stride + j - g->pad];
          }
          memset(dst + x_hi, 0, (g->ow - x_hi) * sizeof(float));
        }
      }
}

/* Copies cin_g channels of an image into a zero border of width pad (a cheap pass compared with
 * the kh*kw-fold reads of packing, and it lets the packer ignore padding). */
static void lensnet__pad_image(const lensnet__conv_geom *g, const float *img, size_t cin_g, float *dst) {
  size_t c, y, hp = g->h + 2 * g->pad, wp = g->w + 2 * g->pad;
  for (c = 0; c < cin_g; c++) {
    float *d = dst + c * hp * wp;
    const float *s = img + c * g->h * g->w;
    memset(d, 0, g->pad * wp * sizeof(float));
    for (y = 0; y < g->h; y++) {
      float *row = d + (y + g->pad) * wp;
      memset(row, 0, g->pad * sizeof(float));
      memcpy(row + g->pad, s + y * g->w, g->w * sizeof(float));
      memset(row + g->pad + g->w, 0, g->pad * sizeof(float));
    }
    memset(d + (g->h + g->pad) * wp, 0, g->pad * wp * sizeof(float));
  }
}

/* The forward through one chosen path (tests compare paths). */
LENSNET__MAYBE_UNUSED static void lensnet__conv2d_forward_path(lensnet_simd simd, const lensnet__conv_geom *g, const float *in,
                                         const float *weight, const float *bias, int fuse_relu, float *out,
                                         float *scratch) {
  const lensnet__gemm_path *path = lensnet__gemm_path_for(simd);
  size_t cin_g = g->cin / g->groups, cout_g = g->cout / g->groups;
  size_t K = cin_g * g->kh * g->kw, P = g->oh * g->ow, kc_max = lensnet__k_block(K);
  size_t m_pad = lensnet__round_up(cout_g, path->mr), a_floats = 0, b_floats = 0, pad_floats = 0, b, grp, pc;
  float *Ap, *Bp, *padded;
  lensnet__b_source src;
  lensnet__epilogue ep;
  if (P == 0 || cout_g == 0) return;
  if (K == 0) { /* no inputs: the output is the bias */
    for (b = 0; b < g->n * g->cout; b++) {
      float v = bias ? bias[b % g->cout] : 0.0f;
      size_t p;
      if (fuse_relu && v < 0.0f) v = 0.0f;
      for (p = 0; p < P; p++) out[b * P + p] = v;
    }
    return;
  }
  lensnet__conv_scratch_parts(g, &a_floats, &b_floats, &pad_floats);
  Ap = lensnet__align64(scratch);
  Bp = lensnet__align64(Ap + a_floats);
  padded = lensnet__align64(Bp + b_floats);
  memset(&src, 0, sizeof src);
  src.is_image = 1;
  src.chan_stride = (g->h + 2 * g->pad) * (g->w + 2 * g->pad);
  src.row_stride = g->w + 2 * g->pad;
  src.kh = g->kh;
  src.kw = g->kw;
  src.stride = g->stride;
  src.ow = g->ow;
  ep.alpha = 1.0f;
  for (grp = 0; grp < g->groups; grp++) {
    /* the group's weights, packed once for every image: block pc at Ap + m_pad * pc */
    for (pc = 0; pc < K; pc += kc_max) {
      size_t kc = K - pc < kc_max ? K - pc : kc_max;
      path->pack_a(0, weight + grp * cout_g * K, K, 0, cout_g, pc, kc, path->mr, Ap + m_pad * pc);
    }
    for (b = 0; b < g->n; b++) {
      const float *img = in + (b * g->cin + grp * cin_g) * g->h * g->w;
      float *o = out + (b * g->cout + grp * cout_g) * P;
      if (g->pad) {
        lensnet__pad_image(g, img, cin_g, padded);
        img = padded;
      }
      src.data = img;
      for (pc = 0; pc < K; pc += kc_max) {
        size_t kc = K - pc < kc_max ? K - pc : kc_max;
        int last = pc + kc == K;
        ep.beta = pc == 0 ? 0.0f : 1.0f;
        ep.bias = last && bias ? bias + grp * cout_g : NULL;
        ep.relu = last && fuse_relu;
        lensnet__macro_kernel(path, cout_g, P, kc, Ap + m_pad * pc, &src, pc, o, P, &ep, Bp);
      }
    }
  }
}

/* out = conv(in, weight) + bias, then ReLU when fuse_relu is set. bias may be NULL.
 * scratch holds lensnet__conv_scratch_floats(g) floats (any alignment). */
LENSNET__MAYBE_UNUSED static void lensnet__conv2d_forward(const lensnet__conv_geom *g, const float *in, const float *weight,
                                                          const float *bias, int fuse_relu, float *out, float *scratch) {
  lensnet__conv2d_forward_path(lensnet_simd_best(), g, in, weight, bias, fuse_relu, out, scratch);
}

/* @@SECTION-IMPL-MODEL@@ */

#endif /* LENSNET_IMPLEMENTATION */
