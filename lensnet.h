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
/* Reads the image of HDU `hdu` (0 = primary, 1 = first extension, ...; -1 = the first image HDU
 * that holds pixels, skipping tables and empty HDUs). The tensor's shape is NumPy order
 * (NAXISn, ..., NAXIS1); values are BZERO + BSCALE * stored as float32, BLANK pixels of integer
 * images become NaN and NaN in floating-point images stays NaN. BITPIX 8, 16, 32, 64, -32, -64.
 * Every header up to the HDU read is checked (card syntax, mandatory keywords in their order,
 * PCOUNT/GCOUNT, sizes against the file); an error names the HDU and card. Refused with a
 * message: tile-compressed images (decompress with funpack first), tables, random groups,
 * NAXIS > 8, an HDU without data (LENSNET_ERR_ARG). Errors of lensnet_fits_read start with the path. */
LENSNET_API lensnet_result lensnet_fits_read(const char *path, int hdu, lensnet_tensor *out, lensnet_error *err);
LENSNET_API lensnet_result lensnet_fits_read_memory(const void *bytes, size_t len, int hdu, lensnet_tensor *out, lensnet_error *err);
/* Writes t (1 to 8 axes, NumPy order) as a BITPIX -32 primary image, big-endian, header and data
 * padded to 2880-byte blocks; through `path.tmp` and a rename, so a reader never sees half a file. */
LENSNET_API lensnet_result lensnet_fits_write(const char *path, const lensnet_tensor *t, lensnet_error *err);
/* Sets *count to the number of HDUs (primary included), checking every header on the way. */
LENSNET_API lensnet_result lensnet_fits_hdu_count(const char *path, int *count, lensnet_error *err);
LENSNET_API lensnet_result lensnet_fits_hdu_count_memory(const void *bytes, size_t len, int *count, lensnet_error *err);
/* Copies the value of header keyword `key` of HDU `hdu` into value[cap] as text: a string
 * without its quotes and trailing blanks ('' read as ', CONTINUE cards joined), a number or
 * T/F as written, "" for a keyword without value. `key` is matched without regard to case; a
 * key longer than 8 characters or holding a blank names an ESO HIERARCH keyword, with or
 * without the HIERARCH prefix ("ESO DET CHIPS"). The first card with that keyword wins.
 * LENSNET_ERR_ARG when the HDU lacks the keyword or value[cap] is too small (the message says
 * how many bytes are needed). */
LENSNET_API lensnet_result lensnet_fits_header_value(const char *path, int hdu, const char *key, char *value, size_t cap, lensnet_error *err);
LENSNET_API lensnet_result lensnet_fits_header_value_memory(const void *bytes, size_t len, int hdu, const char *key,
                                                            char *value, size_t cap, lensnet_error *err);


/* ---------------------------------------------------------------------------------------------
 * GEMM and convolution kernels
 * ------------------------------------------------------------------------------------------- */
typedef enum {
  LENSNET_SIMD_SCALAR, LENSNET_SIMD_SSE, LENSNET_SIMD_AVX2, LENSNET_SIMD_AVX512, LENSNET_SIMD_NEON,
  LENSNET_SIMD_COUNT
} lensnet_simd;

/* The path lensnet_sgemm uses (the widest one built into this binary and supported by the CPU). */
LENSNET_API lensnet_simd lensnet_simd_best(void);
/* Nonzero if path `s` is compiled in and the CPU runs it. */
LENSNET_API int lensnet_simd_available(lensnet_simd s);
LENSNET_API const char *lensnet_simd_name(lensnet_simd s);

/* C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, all row-major with leading dimensions
 * lda, ldb, ldc; op(X) is X^T when trans_x is nonzero. beta == 0 ignores C's old contents. */
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

/* Section numbers refer to the FITS Standard 4.0 (IAU FITS Working Group, 2016). A file is a
 * sequence of 2880-byte blocks (3.1). Each HDU is a header of 80-character cards ending with an
 * END card and padded with blanks to a whole block, then its data, padded to a whole block (3.3).
 * Numbers in the data are big-endian (5.1). */
#define LENSNET__FITS_BLOCK 2880
#define LENSNET__FITS_CARD 80
#define LENSNET__FITS_CARDS_PER_BLOCK 36

enum {
  LENSNET__FITS_PRIMARY,  /* SIMPLE = T: the primary array */
  LENSNET__FITS_GROUPS,   /* primary array in the random-groups format (6) */
  LENSNET__FITS_IMAGE,    /* XTENSION = 'IMAGE' (7.1) */
  LENSNET__FITS_TABLE,    /* XTENSION = 'TABLE' (7.2) */
  LENSNET__FITS_BINTABLE, /* XTENSION = 'BINTABLE' (7.3) */
  LENSNET__FITS_OTHER     /* any other conforming extension */
};

typedef struct {
  int index;                      /* 0 = primary */
  int kind;                       /* LENSNET__FITS_* */
  int zimage;                     /* BINTABLE with ZIMAGE = T: a tile-compressed image (10.1) */
  int bitpix, naxis;
  size_t axis[LENSNET_MAX_DIMS];  /* NAXIS1, NAXIS2, ... (the first LENSNET_MAX_DIMS of them) */
  size_t elements;                /* NAXIS1 * ... * NAXISn; 0 when NAXIS = 0 */
  const char *cards;              /* the first card of the header */
  size_t ncards;                  /* cards before END */
  size_t data_off, data_bytes;    /* where the data starts, and its size without padding */
  size_t next_off;                /* where the next HDU would start (len if the file ends first) */
  char xtension[72];              /* XTENSION value without quotes and trailing blanks */
} lensnet__fits_hdu;

static const char *lensnet__fits_card_at(const lensnet__fits_hdu *h, size_t i) {
  return h->cards + i * LENSNET__FITS_CARD;
}

/* Nonzero if the keyword field (columns 1-8, 4.1.2.1) holds `key` padded with blanks. */
static int lensnet__fits_keyword_is(const char *card, const char *key) {
  size_t n = strlen(key), i;
  if (n > 8 || memcmp(card, key, n) != 0) return 0;
  for (i = n; i < 8; i++) if (card[i] != ' ') return 0;
  return 1;
}

/* A value card has the value indicator "= " in columns 9-10 (4.1.2.2). */
static int lensnet__fits_has_value(const char *card) { return card[8] == '=' && card[9] == ' '; }

/* Checks the syntax every card shares (4.1.2): printable ASCII only, and a keyword of upper-case
 * letters, digits, '-' and '_', left-justified in columns 1-8 and padded with blanks. Returns
 * NULL when the card is well formed, else a description of the fault. */
static const char *lensnet__fits_card_fault(const char *card, int *column) {
  int i, blank = 0;
  for (i = 0; i < LENSNET__FITS_CARD; i++) {
    unsigned char c = (unsigned char)card[i];
    *column = i + 1;
    if (c < 0x20 || c > 0x7E) return "holds a byte that is not printable ASCII";
  }
  for (i = 0; i < 8; i++) {
    char c = card[i];
    *column = i + 1;
    if (c == ' ') { blank = 1; continue; }
    if (blank) return "has a keyword with a blank inside it";
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return "has a keyword with a character other than A-Z, 0-9, '-' and '_'";
  }
  return NULL;
}

/* Finds the value in the text [p, end): a quoted string (with '' for a quote), a complex
 * "(re, im)", or a token ending at a blank or '/'. What follows it must be blanks or a '/'
 * comment (4.2). Returns 0 when the text is not of that form; an empty span means "no value". */
static int lensnet__fits_value_span(const char *p, const char *end, const char **v, size_t *vlen) {
  while (p < end && *p == ' ') p++;
  *v = p;
  if (p < end && *p == '\'') {
    for (p++;; p++) {
      if (p >= end) return 0; /* the string is not closed */
      if (*p == '\'') {
        if (p + 1 < end && p[1] == '\'') { p++; continue; }
        p++;
        break;
      }
    }
  } else if (p < end && *p == '(') {
    while (p < end && *p != ')') p++;
    if (p >= end) return 0;
    p++;
  } else {
    while (p < end && *p != ' ' && *p != '/') p++;
  }
  *vlen = (size_t)(p - *v);
  while (p < end && *p == ' ') p++;
  return p == end || *p == '/';
}

/* Integer value (4.2.3): optional sign and decimal digits, no overflow. */
static int lensnet__fits_parse_int(const char *v, size_t n, int64_t *out) {
  size_t i = 0;
  int neg = 0;
  uint64_t u = 0, limit;
  if (i < n && (v[i] == '+' || v[i] == '-')) neg = v[i++] == '-';
  if (i == n) return 0;
  limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; i < n; i++) {
    unsigned d;
    if (v[i] < '0' || v[i] > '9') return 0;
    d = (unsigned)(v[i] - '0');
    if (u > (limit - d) / 10) return 0;
    u = u * 10 + d;
  }
  *out = neg ? (u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u) : (int64_t)u;
  return 1;
}

/* Real value (4.2.4): [sign] digits [. digits] [E|D [sign] digits], at least one digit before
 * the exponent. Parsed without strtod so the result does not depend on the C locale; exact for
 * up to 19 significant digits and powers of ten within 1e22 (the usual case), otherwise
 * within a few units in the last place, which is far below float32 resolution. */
static int lensnet__fits_parse_real(const char *v, size_t n, double *out) {
  static const double powers[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  size_t i = 0;
  int neg = 0, digits = 0, sig = 0;
  long exp10 = 0, e = 0;
  uint64_t m = 0;
  double x;
  if (i < n && (v[i] == '+' || v[i] == '-')) neg = v[i++] == '-';
  for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, digits++) {
    if (sig < 19) { m = m * 10 + (uint64_t)(v[i] - '0'); if (m) sig++; }
    else exp10++;
  }
  if (i < n && v[i] == '.') {
    for (i++; i < n && v[i] >= '0' && v[i] <= '9'; i++, digits++)
      if (sig < 19) { m = m * 10 + (uint64_t)(v[i] - '0'); if (m) sig++; exp10--; }
  }
  if (!digits) return 0;
  if (i < n && (v[i] == 'E' || v[i] == 'D' || v[i] == 'e' || v[i] == 'd')) {
    int eneg = 0, edigits = 0;
    i++;
    if (i < n && (v[i] == '+' || v[i] == '-')) eneg = v[i++] == '-';
    for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, edigits++)
      if (e < 100000) e = e * 10 + (v[i] - '0');
    if (!edigits) return 0;
    exp10 += eneg ? -e : e;
  }
  if (i != n) return 0;
  x = (double)m;
  if (m == 0) x = 0.0;
  else if (exp10 > 0) {
    while (exp10 > 22 && x < DBL_MAX) { x *= 1e22; exp10 -= 22; }
    x = exp10 > 22 ? HUGE_VAL : x * powers[exp10];
  } else if (exp10 < 0) {
    while (exp10 < -22 && x > 0.0) { x /= 1e22; exp10 += 22; }
    x /= powers[exp10 < -22 ? 22 : -exp10];
  }
  if (!(x <= DBL_MAX)) return 0; /* out of the double range */
  *out = neg ? -x : x;
  return 1;
}

/* The first value card with this keyword among the header's cards, or NULL. */
static const char *lensnet__fits_find(const lensnet__fits_hdu *h, const char *key) {
  size_t i;
  for (i = 0; i < h->ncards; i++) {
    const char *c = lensnet__fits_card_at(h, i);
    if (lensnet__fits_keyword_is(c, key) && lensnet__fits_has_value(c)) return c;
  }
  return NULL;
}

/* The value span of a standard value card (columns 11-80). */
static int lensnet__fits_card_value(const char *card, const char **v, size_t *n) {
  return lensnet__fits_has_value(card) && lensnet__fits_value_span(card + 10, card + LENSNET__FITS_CARD, v, n);
}

static lensnet_result lensnet__fits_card_int(const lensnet__fits_hdu *h, const char *card, int64_t *out, lensnet_error *err) {
  const char *v;
  size_t n;
  if (!lensnet__fits_card_value(card, &v, &n) || !lensnet__fits_parse_int(v, n, out))
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: %.8s = %.20s is not an integer value (FITS 4.0 section 4.2.3)",
                         h->index, card, card + 10);
  return LENSNET_OK;
}

static lensnet_result lensnet__fits_card_real(const lensnet__fits_hdu *h, const char *card, double *out, lensnet_error *err) {
  const char *v;
  size_t n;
  if (!lensnet__fits_card_value(card, &v, &n) || !lensnet__fits_parse_real(v, n, out))
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: %.8s = %.20s is not a finite real value (FITS 4.0 section 4.2.4)",
                         h->index, card, card + 10);
  return LENSNET_OK;
}

/* Logical value (4.2.2): T or F. Sets *out to 1 or 0. */
static lensnet_result lensnet__fits_card_logical(const lensnet__fits_hdu *h, const char *card, int *out, lensnet_error *err) {
  const char *v;
  size_t n;
  if (!lensnet__fits_card_value(card, &v, &n) || n != 1 || (*v != 'T' && *v != 'F'))
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: %.8s = %.20s is not a logical value T or F (FITS 4.0 section 4.2.2)",
                         h->index, card, card + 10);
  *out = *v == 'T';
  return LENSNET_OK;
}

/* A logical keyword that may be absent (then 0). */
static lensnet_result lensnet__fits_flag(const lensnet__fits_hdu *h, const char *key, int *out, lensnet_error *err) {
  const char *c = lensnet__fits_find(h, key);
  *out = 0;
  return c ? lensnet__fits_card_logical(h, c, out, err) : LENSNET_OK;
}

/* A non-negative integer that must fit a size_t. */
static lensnet_result lensnet__fits_card_size(const lensnet__fits_hdu *h, const char *card, size_t *out, lensnet_error *err) {
  int64_t v;
  lensnet_result r = lensnet__fits_card_int(h, card, &v, err);
  if (r != LENSNET_OK) return r;
  if (v < 0) return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: %.8s = %lld must not be negative", h->index, card, (long long)v);
  if ((uint64_t)v > (uint64_t)(size_t)-1) return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "FITS HDU %d: %.8s = %lld is too large", h->index, card, (long long)v);
  *out = (size_t)v;
  return LENSNET_OK;
}

/* Copies a string value without its quotes, with '' made ' and trailing blanks dropped (4.2.1.1). */
static size_t lensnet__fits_unquote(const char *v, size_t n, char *dst, size_t cap) {
  size_t i, k = 0, keep = 0;
  for (i = 1; i + 1 < n; i++) {
    if (v[i] == '\'') i++; /* the first of a doubled quote */
    if (k + 1 < cap) dst[k] = v[i];
    k++;
    if (v[i] != ' ') keep = k;
  }
  if (cap) dst[(keep < cap ? keep : cap - 1)] = 0;
  return keep;
}

/* Finds the END card of the header that starts at h->cards, checking the syntax of every card
 * and the blank fill after END (4.4.1). Sets h->ncards and h->data_off. */
static lensnet_result lensnet__fits_scan_cards(const unsigned char *b, size_t len, size_t off, lensnet__fits_hdu *h, lensnet_error *err) {
  size_t pos = off, n = 0;
  int found_end = 0, k, col;
  while (!found_end) {
    if (len - pos < LENSNET__FITS_BLOCK)
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: the header is truncated (no END card before the end of the file)", h->index);
    for (k = 0; k < LENSNET__FITS_CARDS_PER_BLOCK; k++) {
      const char *card = (const char *)b + pos + (size_t)k * LENSNET__FITS_CARD, *fault;
      if (found_end) {
        for (col = 0; col < LENSNET__FITS_CARD; col++)
          if (card[col] != ' ')
            return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: the header block after the END card is not blank-filled", h->index);
        continue;
      }
      if ((fault = lensnet__fits_card_fault(card, &col)) != NULL)
        return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d, card %lu: the card %s (column %d)", h->index, (unsigned long)(n + 1), fault, col);
      if (lensnet__fits_keyword_is(card, "END")) {
        for (col = 8; col < LENSNET__FITS_CARD; col++)
          if (card[col] != ' ')
            return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d, card %lu: the END card must be blank after END", h->index, (unsigned long)(n + 1));
        found_end = 1;
      } else {
        n++;
      }
    }
    pos += LENSNET__FITS_BLOCK;
  }
  h->ncards = n;
  h->data_off = pos;
  return LENSNET_OK;
}

/* The first card: SIMPLE = T in the primary header, XTENSION = 'type' in an extension (4.4.1). */
static lensnet_result lensnet__fits_first_card(lensnet__fits_hdu *h, lensnet_error *err) {
  const char *c = h->cards, *val;
  size_t vn;
  lensnet_result r;
  if (h->ncards == 0) return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: the header has no cards before END", h->index);
  if (h->index == 0) {
    int simple;
    if (!lensnet__fits_keyword_is(c, "SIMPLE"))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS: not a FITS file (the first card is %.8s, not SIMPLE)", c);
    if ((r = lensnet__fits_card_logical(h, c, &simple, err)) != LENSNET_OK) return r;
    if (!simple) return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "FITS: SIMPLE = F: the file says it does not conform to the FITS standard");
    h->kind = LENSNET__FITS_PRIMARY;
    return LENSNET_OK;
  }
  if (!lensnet__fits_keyword_is(c, "XTENSION") || !lensnet__fits_card_value(c, &val, &vn) || vn < 2 || *val != '\'')
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: an extension header must begin with XTENSION = 'type' (FITS 4.0 section 4.4.1.2)", h->index);
  lensnet__fits_unquote(val, vn, h->xtension, sizeof h->xtension);
  if (!strcmp(h->xtension, "IMAGE")) h->kind = LENSNET__FITS_IMAGE;
  else if (!strcmp(h->xtension, "BINTABLE")) h->kind = LENSNET__FITS_BINTABLE;
  else if (!strcmp(h->xtension, "TABLE")) h->kind = LENSNET__FITS_TABLE;
  else h->kind = LENSNET__FITS_OTHER;
  return LENSNET_OK;
}

/* Cards 2, 3, 4...: BITPIX, NAXIS, NAXIS1..NAXISn (4.4.1). Sets bitpix, naxis, axis[] and
 * elements, and *rest = NAXIS2 * ... * NAXISn (the size of one random group's array). A
 * product with an axis of length 0 is 0, however large the other axes. */
static lensnet_result lensnet__fits_axes(lensnet__fits_hdu *h, size_t *rest, lensnet_error *err) {
  int64_t v;
  int k, rest_zero = 0, rest_overflow = 0;
  lensnet_result r;
  *rest = 1;
  if (h->ncards < 3 || !lensnet__fits_keyword_is(lensnet__fits_card_at(h, 1), "BITPIX") ||
      !lensnet__fits_keyword_is(lensnet__fits_card_at(h, 2), "NAXIS"))
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: cards 2 and 3 must be BITPIX and NAXIS (FITS 4.0 section 4.4.1)", h->index);
  if ((r = lensnet__fits_card_int(h, lensnet__fits_card_at(h, 1), &v, err)) != LENSNET_OK) return r;
  if (v != 8 && v != 16 && v != 32 && v != 64 && v != -32 && v != -64)
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: BITPIX = %lld is not one of 8, 16, 32, 64, -32, -64 (FITS 4.0 section 4.4.1.1)",
                         h->index, (long long)v);
  h->bitpix = (int)v;
  if ((r = lensnet__fits_card_int(h, lensnet__fits_card_at(h, 2), &v, err)) != LENSNET_OK) return r;
  if (v < 0 || v > 999) return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: NAXIS = %lld is outside 0..999", h->index, (long long)v);
  h->naxis = (int)v;
  if (h->ncards < 3 + (size_t)h->naxis)
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: the header ends before NAXIS%d", h->index, (int)(h->ncards - 2));
  for (k = 1; k <= h->naxis; k++) {
    const char *c = lensnet__fits_card_at(h, 2 + (size_t)k);
    char key[16];
    size_t a = 0;
    snprintf(key, sizeof key, "NAXIS%d", k);
    if (!lensnet__fits_keyword_is(c, key))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: card %d must be %s, found %.8s (FITS 4.0 section 4.4.1)", h->index, k + 3, key, c);
    if ((r = lensnet__fits_card_size(h, c, &a, err)) != LENSNET_OK) return r;
    if (k <= LENSNET_MAX_DIMS) h->axis[k - 1] = a;
    if (k == 1) continue;
    if (a == 0) rest_zero = 1;
    else if (!lensnet__mul_ok(*rest, a, rest)) rest_overflow = 1;
  }
  if (rest_zero) *rest = 0;
  h->elements = 0;
  if (h->naxis == 0 || rest_zero || (h->axis[0] == 0 && !rest_overflow)) return LENSNET_OK;
  if (rest_overflow || !lensnet__mul_ok(h->axis[0], *rest, &h->elements))
    return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "FITS HDU %d: the product of NAXIS1..NAXIS%d overflows", h->index, h->naxis);
  return LENSNET_OK;
}

/* The data size (4.4.1.1, 4.4.1.2, 6): |BITPIX|/8 * GCOUNT * (PCOUNT + NAXIS1 * ... * NAXISn),
 * with NAXIS1 left out of the product for random groups; PCOUNT and GCOUNT are mandatory in
 * extensions. Checks the data against the file and finds where the next HDU starts. */
static lensnet_result lensnet__fits_data_size(lensnet__fits_hdu *h, size_t len, size_t rest, lensnet_error *err) {
  size_t pcount = 0, gcount = 1, values = h->elements, pad, end_of_data;
  int groups = 0, bytes_per_value = (h->bitpix < 0 ? -h->bitpix : h->bitpix) / 8;
  lensnet_result r;
  if (h->kind == LENSNET__FITS_PRIMARY) {
    if ((r = lensnet__fits_flag(h, "GROUPS", &groups, err)) != LENSNET_OK) return r;
    if (groups && h->naxis >= 1 && h->axis[0] == 0) {
      h->kind = LENSNET__FITS_GROUPS;
      values = rest;
    }
  }
  if (h->kind != LENSNET__FITS_PRIMARY) {
    const char *pc = lensnet__fits_find(h, "PCOUNT"), *gc = lensnet__fits_find(h, "GCOUNT");
    if (h->kind != LENSNET__FITS_GROUPS && (!pc || !gc))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: the extension header lacks %s (mandatory, FITS 4.0 section 4.4.1.2)",
                           h->index, pc ? "GCOUNT" : "PCOUNT");
    if (pc && (r = lensnet__fits_card_size(h, pc, &pcount, err)) != LENSNET_OK) return r;
    if (gc && (r = lensnet__fits_card_size(h, gc, &gcount, err)) != LENSNET_OK) return r;
    if (h->kind == LENSNET__FITS_IMAGE && (pcount != 0 || gcount != 1))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: an IMAGE extension needs PCOUNT = 0 and GCOUNT = 1 (FITS 4.0 section 7.1.1)", h->index);
  }
  if (h->kind == LENSNET__FITS_BINTABLE && (r = lensnet__fits_flag(h, "ZIMAGE", &h->zimage, err)) != LENSNET_OK) return r;
  if (h->naxis == 0) values = pcount = 0; /* NAXIS = 0: no data */
  if (values > (size_t)-1 - pcount || !lensnet__mul_ok(values + pcount, gcount, &values) ||
      !lensnet__mul_ok(values, (size_t)bytes_per_value, &h->data_bytes))
    return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "FITS HDU %d: the data size overflows", h->index);
  if (h->data_bytes > len - h->data_off)
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: the data needs %lu bytes but the file has only %lu left (truncated file?)",
                         h->index, (unsigned long)h->data_bytes, (unsigned long)(len - h->data_off));
  /* The last HDU's data padding is sometimes missing; that loses nothing, so it is accepted. */
  end_of_data = h->data_off + h->data_bytes;
  pad = (LENSNET__FITS_BLOCK - h->data_bytes % LENSNET__FITS_BLOCK) % LENSNET__FITS_BLOCK;
  h->next_off = pad <= len - end_of_data ? end_of_data + pad : len;
  return LENSNET_OK;
}

/* Reads the header that starts at `off` and checks it: card syntax, the END card and its
 * blank fill, the mandatory keywords in their order, and that the data fits in the file. */
static lensnet_result lensnet__fits_parse_hdu(const unsigned char *b, size_t len, size_t off, int index,
                                              lensnet__fits_hdu *h, lensnet_error *err) {
  size_t rest;
  lensnet_result r;
  memset(h, 0, sizeof *h);
  h->index = index;
  h->cards = (const char *)b + off;
  if ((r = lensnet__fits_scan_cards(b, len, off, h, err)) != LENSNET_OK) return r;
  if ((r = lensnet__fits_first_card(h, err)) != LENSNET_OK) return r;
  if ((r = lensnet__fits_axes(h, &rest, err)) != LENSNET_OK) return r;
  return lensnet__fits_data_size(h, len, rest, err);
}

/* Nonzero if the HDU is an image (or a compressed one) with at least one pixel. */
static int lensnet__fits_holds_image(const lensnet__fits_hdu *h) {
  return (h->kind == LENSNET__FITS_PRIMARY || h->kind == LENSNET__FITS_IMAGE ||
          (h->kind == LENSNET__FITS_BINTABLE && h->zimage)) && h->elements > 0;
}

/* Walks the HDUs from the start, checking each header, until HDU `want` (or, for want = -1,
 * the first image HDU with pixels). With want = INT_MAX it walks them all and *count tells how
 * many there are. An HDU starts only where a block begins with XTENSION; anything else after
 * the last HDU is ignored, as the standard allows (3.5). */
static lensnet_result lensnet__fits_walk(const unsigned char *b, size_t len, int want, lensnet__fits_hdu *h,
                                         int *count, lensnet_error *err) {
  size_t off = 0;
  int index = 0;
  lensnet_result r;
  if (count) *count = 0;
  if (want < -1) return lensnet__fail(err, LENSNET_ERR_ARG, "FITS: HDU %d does not exist (use 0 for the primary HDU, -1 for the first image)", want);
  if (len < 9 || memcmp(b, "SIMPLE  =", 9) != 0)
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS: not a FITS file (it does not begin with SIMPLE =)");
  for (;;) {
    if ((r = lensnet__fits_parse_hdu(b, len, off, index, h, err)) != LENSNET_OK) return r;
    if (count) *count = index + 1;
    if (index == want || (want == -1 && lensnet__fits_holds_image(h))) return LENSNET_OK;
    off = h->next_off;
    if (len - off < LENSNET__FITS_BLOCK || memcmp(b + off, "XTENSION", 8) != 0 || index == INT_MAX - 1) break;
    index++;
  }
  if (want == INT_MAX) return LENSNET_OK;
  if (want == -1) return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS: none of the %d HDUs holds an image with pixels", index + 1);
  return lensnet__fail(err, LENSNET_ERR_ARG, "FITS: HDU %d does not exist (the file has %d HDU%s)", want, index + 1, index ? "s" : "");
}

/* A signed big-endian integer of nbytes bytes, without relying on implementation-defined shifts. */
static int64_t lensnet__fits_signed(uint64_t u, int nbytes) {
  uint64_t sign = (uint64_t)1 << (8 * nbytes - 1);
  if (u & sign) return -(int64_t)(((sign << 1) - 1) - u) - 1;
  return (int64_t)u;
}

/* Converts the pixels of an image HDU into a fresh tensor. */
static lensnet_result lensnet__fits_image(const unsigned char *b, const lensnet__fits_hdu *h, lensnet_tensor *out, lensnet_error *err) {
  double bscale = 1.0, bzero = 0.0;
  int64_t blank = 0;
  int has_blank = 0, nb, k;
  size_t shape[LENSNET_MAX_DIMS], i, count;
  const char *c;
  const unsigned char *p = b + h->data_off;
  lensnet_result r;
  if (h->kind == LENSNET__FITS_BINTABLE && h->zimage)
    return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "FITS HDU %d is a tile-compressed image (ZIMAGE = T); decompress it first, e.g. with funpack", h->index);
  if (h->kind == LENSNET__FITS_GROUPS)
    return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "FITS HDU %d holds random groups (GROUPS = T), not an image", h->index);
  if (h->kind == LENSNET__FITS_BINTABLE || h->kind == LENSNET__FITS_TABLE)
    return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "FITS HDU %d is %s table (XTENSION = '%s'), not an image",
                         h->index, h->kind == LENSNET__FITS_TABLE ? "an ASCII" : "a binary", h->xtension);
  if (h->kind == LENSNET__FITS_OTHER)
    return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "FITS HDU %d is an extension of type '%.40s', not an IMAGE", h->index, h->xtension);
  if (h->elements == 0)
    return lensnet__fail(err, LENSNET_ERR_ARG, "FITS HDU %d holds no data (NAXIS = %d%s); pass HDU -1 to read the first HDU with an image",
                         h->index, h->naxis, h->naxis ? " with an axis of length 0" : "");
  if (h->naxis > LENSNET_MAX_DIMS)
    return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "FITS HDU %d has NAXIS = %d; at most %d axes are supported", h->index, h->naxis, LENSNET_MAX_DIMS);
  if ((c = lensnet__fits_find(h, "BSCALE")) != NULL && (r = lensnet__fits_card_real(h, c, &bscale, err)) != LENSNET_OK) return r;
  if ((c = lensnet__fits_find(h, "BZERO")) != NULL && (r = lensnet__fits_card_real(h, c, &bzero, err)) != LENSNET_OK) return r;
  /* BLANK marks undefined integer pixels (5.2.1); for floating-point images NaN does (5.3). */
  if (h->bitpix > 0 && (c = lensnet__fits_find(h, "BLANK")) != NULL) {
    if ((r = lensnet__fits_card_int(h, c, &blank, err)) != LENSNET_OK) return r;
    has_blank = 1;
  }
  for (k = 0; k < h->naxis; k++) shape[k] = h->axis[h->naxis - 1 - k];
  if ((r = lensnet_tensor_alloc(out, h->naxis, shape, err)) != LENSNET_OK) return r;
  count = lensnet_tensor_count(out);
  nb = (h->bitpix < 0 ? -h->bitpix : h->bitpix) / 8;
  for (i = 0; i < count; i++, p += nb) {
    uint64_t u = lensnet__get_be(p, nb);
    double s;
    if (h->bitpix > 0) { /* 8-bit pixels are unsigned, wider ones two's complement (4.4.1.1) */
      int64_t q = h->bitpix == 8 ? (int64_t)u : lensnet__fits_signed(u, nb);
      if (has_blank && q == blank) { out->data[i] = NAN; continue; }
      s = (double)q;
    } else {
      s = nb == 4 ? (double)lensnet__f32_from_bits((uint32_t)u) : lensnet__f64_from_bits(u);
    }
    out->data[i] = (bscale == 1.0 && bzero == 0.0) ? (float)s : (float)(bzero + bscale * s);
  }
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_fits_read_memory(const void *bytes, size_t len, int hdu, lensnet_tensor *out, lensnet_error *err) {
  lensnet__fits_hdu h;
  lensnet_result r;
  memset(out, 0, sizeof *out);
  if (!bytes && len) return lensnet__fail(err, LENSNET_ERR_ARG, "FITS: no bytes given");
  r = lensnet__fits_walk(LENSNET__CAST(const unsigned char *, bytes), len, hdu, &h, NULL, err);
  if (r != LENSNET_OK) return r;
  return lensnet__fits_image(LENSNET__CAST(const unsigned char *, bytes), &h, out, err);
}

LENSNET_API lensnet_result lensnet_fits_read(const char *path, int hdu, lensnet_tensor *out, lensnet_error *err) {
  unsigned char *buf;
  size_t len;
  lensnet_result r = lensnet__read_file(path, &buf, &len, err);
  memset(out, 0, sizeof *out);
  if (r != LENSNET_OK) return r;
  r = lensnet_fits_read_memory(buf, len, hdu, out, err);
  LENSNET_FREE(buf);
  if (r != LENSNET_OK) lensnet__prefix_path(err, path);
  return r;
}

LENSNET_API lensnet_result lensnet_fits_hdu_count_memory(const void *bytes, size_t len, int *count, lensnet_error *err) {
  lensnet__fits_hdu h;
  *count = 0;
  if (!bytes && len) return lensnet__fail(err, LENSNET_ERR_ARG, "FITS: no bytes given");
  return lensnet__fits_walk(LENSNET__CAST(const unsigned char *, bytes), len, INT_MAX, &h, count, err);
}

LENSNET_API lensnet_result lensnet_fits_hdu_count(const char *path, int *count, lensnet_error *err) {
  unsigned char *buf;
  size_t len;
  lensnet_result r = lensnet__read_file(path, &buf, &len, err);
  *count = 0;
  if (r != LENSNET_OK) return r;
  r = lensnet_fits_hdu_count_memory(buf, len, count, err);
  LENSNET_FREE(buf);
  if (r != LENSNET_OK) lensnet__prefix_path(err, path);
  return r;
}

/* Compares the name of a HIERARCH card (the words between HIERARCH and '=') with `name`,
 * ignoring case and treating runs of blanks as one. */
static int lensnet__fits_hierarch_is(const char *card, const char *eq, const char *name) {
  const char *p = card + 8;
  for (;;) {
    while (p < eq && *p == ' ') p++;
    while (*name == ' ') name++;
    if (p == eq || !*name) break;
    while (p < eq && *p != ' ' && *name && *name != ' ') {
      char a = *p, z = *name;
      if (a >= 'a' && a <= 'z') a = (char)(a - 32);
      if (z >= 'a' && z <= 'z') z = (char)(z - 32);
      if (a != z) return 0;
      p++;
      name++;
    }
    if ((p < eq && *p != ' ') || (*name && *name != ' ')) return 0;
  }
  return p == eq && !*name;
}

/* Appends n bytes to the output value, counting what would not fit. */
static void lensnet__fits_append(char *dst, size_t cap, size_t *used, const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++, (*used)++)
    if (*used + 1 < cap) dst[*used] = s[i];
}

LENSNET_API lensnet_result lensnet_fits_header_value_memory(const void *bytes, size_t len, int hdu, const char *key,
                                                            char *value, size_t cap, lensnet_error *err) {
  lensnet__fits_hdu h;
  lensnet_result r;
  char word[9];
  size_t i, klen = strlen(key), used = 0;
  int hierarch = klen > 8 || strchr(key, ' ') != NULL;
  if (cap) value[0] = 0;
  if (hdu < 0) return lensnet__fail(err, LENSNET_ERR_ARG, "FITS: HDU %d does not exist (use 0 for the primary HDU)", hdu);
  if (!bytes && len) return lensnet__fail(err, LENSNET_ERR_ARG, "FITS: no bytes given");
  if (!hierarch) {
    for (i = 0; i < klen; i++) word[i] = (key[i] >= 'a' && key[i] <= 'z') ? (char)(key[i] - 32) : key[i];
    word[klen] = 0;
  } else if (!strncmp(key, "HIERARCH ", 9) || !strncmp(key, "hierarch ", 9)) {
    key += 9;
  }
  r = lensnet__fits_walk(LENSNET__CAST(const unsigned char *, bytes), len, hdu, &h, NULL, err);
  if (r != LENSNET_OK) return r;
  for (i = 0; i < h.ncards; i++) {
    const char *c = lensnet__fits_card_at(&h, i), *end = c + LENSNET__FITS_CARD, *from, *v;
    size_t vn;
    if (hierarch) {
      const char *eq = (const char *)memchr(c + 8, '=', 72);
      if (!lensnet__fits_keyword_is(c, "HIERARCH") || !eq || !lensnet__fits_hierarch_is(c, eq, key)) continue;
      from = eq + 1;
    } else {
      if (!klen || !lensnet__fits_keyword_is(c, word) || !lensnet__fits_has_value(c)) continue;
      from = c + 10;
    }
    if (!lensnet__fits_value_span(from, end, &v, &vn))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d, card %lu: the value of %.40s is malformed (FITS 4.0 section 4.2)",
                           hdu, (unsigned long)(i + 1), key);
    if (vn && *v == '\'') {
      /* A string; a long one goes on in CONTINUE cards while it ends with '&' (4.2.1.2). */
      for (;;) {
        char part[LENSNET__FITS_CARD];
        size_t pn = lensnet__fits_unquote(v, vn, part, sizeof part);
        const char *next = i + 1 < h.ncards ? lensnet__fits_card_at(&h, i + 1) : NULL;
        if (pn > 0 && part[pn - 1] == '&' && next && lensnet__fits_keyword_is(next, "CONTINUE") &&
            lensnet__fits_value_span(next + 10, next + LENSNET__FITS_CARD, &v, &vn) && vn && *v == '\'') {
          lensnet__fits_append(value, cap, &used, part, pn - 1);
          i++;
          continue;
        }
        lensnet__fits_append(value, cap, &used, part, pn);
        break;
      }
    } else {
      lensnet__fits_append(value, cap, &used, v, vn);
    }
    if (used + 1 > cap)
      return lensnet__fail(err, LENSNET_ERR_ARG, "FITS HDU %d: the value of %.40s needs a buffer of %lu bytes", hdu, key, (unsigned long)(used + 1));
    value[used] = 0;
    return LENSNET_OK;
  }
  return lensnet__fail(err, LENSNET_ERR_ARG, "FITS HDU %d has no keyword %.60s", hdu, key);
}

LENSNET_API lensnet_result lensnet_fits_header_value(const char *path, int hdu, const char *key, char *value, size_t cap, lensnet_error *err) {
  unsigned char *buf;
  size_t len;
  lensnet_result r;
  if (cap) value[0] = 0;
  r = lensnet__read_file(path, &buf, &len, err);
  if (r != LENSNET_OK) return r;
  r = lensnet_fits_header_value_memory(buf, len, hdu, key, value, cap, err);
  LENSNET_FREE(buf);
  if (r != LENSNET_OK) lensnet__prefix_path(err, path);
  return r;
}

/* One header card: keyword, value right-justified in columns 11-30 (the fixed format of
 * 4.2), optional comment, blank-padded to 80 columns. */
static void lensnet__fits_put_card(char *card, const char *key, const char *value, const char *comment) {
  char text[LENSNET__FITS_CARD + 1];
  int n = snprintf(text, sizeof text, "%-8.8s= %20.20s%s%.47s", key, value, comment ? " / " : "", comment ? comment : "");
  memset(card, ' ', LENSNET__FITS_CARD);
  memcpy(card, text, n < LENSNET__FITS_CARD ? (size_t)n : LENSNET__FITS_CARD);
}

LENSNET_API lensnet_result lensnet_fits_write(const char *path, const lensnet_tensor *t, lensnet_error *err) {
  char header[LENSNET__FITS_BLOCK], num[24], key[16];
  size_t count, bytes, padded, i;
  unsigned char *data;
  lensnet__chunk chunks[2];
  lensnet_result r;
  int k;
  if (t->ndim < 1 || t->ndim > LENSNET_MAX_DIMS)
    return lensnet__fail(err, LENSNET_ERR_ARG, "%s: a FITS image needs 1 to %d axes, the tensor has %d", path, LENSNET_MAX_DIMS, t->ndim);
  count = 1;
  for (k = 0; k < t->ndim; k++)
    if (!lensnet__mul_ok(count, t->shape[k], &count) || count > LENSNET_MAX_ELEMENTS)
      return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "%s: the tensor is too large to write", path);
  if (count && !t->data) return lensnet__fail(err, LENSNET_ERR_ARG, "%s: the tensor has no data", path);
  if (!lensnet__mul_ok(count, 4, &bytes) || bytes > (size_t)-1 - LENSNET__FITS_BLOCK)
    return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "%s: the tensor is too large to write", path);
  padded = (bytes + LENSNET__FITS_BLOCK - 1) / LENSNET__FITS_BLOCK * LENSNET__FITS_BLOCK;
  memset(header, ' ', sizeof header);
  lensnet__fits_put_card(header, "SIMPLE", "T", "conforms to the FITS standard");
  lensnet__fits_put_card(header + 80, "BITPIX", "-32", "IEEE 754 single precision");
  snprintf(num, sizeof num, "%d", t->ndim);
  lensnet__fits_put_card(header + 160, "NAXIS", num, "number of axes");
  for (k = 1; k <= t->ndim; k++) { /* NAXIS1 is the fastest-varying axis: the last in NumPy order */
    snprintf(key, sizeof key, "NAXIS%d", k);
    snprintf(num, sizeof num, "%llu", (unsigned long long)t->shape[t->ndim - k]);
    lensnet__fits_put_card(header + 80 * (2 + k), key, num, NULL);
  }
  memcpy(header + 80 * (3 + t->ndim), "END", 3);
  data = LENSNET__CAST(unsigned char *, LENSNET_MALLOC(padded ? padded : 1));
  if (!data) return lensnet__fail(err, LENSNET_ERR_NOMEM, "%s: out of memory writing FITS", path);
  memset(data, 0, padded); /* floating-point data are padded with zero bytes (3.3.2) */
  for (i = 0; i < count; i++) {
    uint32_t u;
    memcpy(&u, &t->data[i], 4);
    data[4 * i] = (unsigned char)(u >> 24); data[4 * i + 1] = (unsigned char)(u >> 16);
    data[4 * i + 2] = (unsigned char)(u >> 8); data[4 * i + 3] = (unsigned char)u;
  }
  chunks[0].data = header; chunks[0].len = sizeof header;
  chunks[1].data = data; chunks[1].len = padded;
  r = lensnet__write_atomic(path, chunks, 2, err);
  LENSNET_FREE(data);
  return r;
}

/* ---- GEMM ---------------------------------------------------------------------------------- */

LENSNET_API const char *lensnet_simd_name(lensnet_simd s) {
  static const char *names[] = {"scalar", "sse", "avx2", "avx512", "neon"};
  return (s >= 0 && s < LENSNET_SIMD_COUNT) ? names[s] : "unknown";
}

LENSNET_API int lensnet_simd_available(lensnet_simd s) { return s == LENSNET_SIMD_SCALAR; }
LENSNET_API lensnet_simd lensnet_simd_best(void) { return LENSNET_SIMD_SCALAR; }

/* Reference kernel: correct for every transpose combination; the blocked kernels replace it. */
static void lensnet__sgemm_scalar(int ta, int tb, size_t M, size_t N, size_t K, float alpha,
                                  const float *A, size_t lda, const float *B, size_t ldb,
                                  float beta, float *C, size_t ldc) {
  size_t i, j, k;
  for (i = 0; i < M; i++) {
    float *c = C + i * ldc;
    if (beta == 0.0f) for (j = 0; j < N; j++) c[j] = 0.0f;
    else if (beta != 1.0f) for (j = 0; j < N; j++) c[j] *= beta;
    for (k = 0; k < K; k++) {
      float a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);
      if (!tb) { const float *b = B + k * ldb; for (j = 0; j < N; j++) c[j] += a * b[j]; }
      else for (j = 0; j < N; j++) c[j] += a * B[j * ldb + k];
    }
  }
}

LENSNET_API void lensnet_sgemm_path(lensnet_simd path, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                                    float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                                    float beta, float *C, size_t ldc) {
  (void)path;
  lensnet__sgemm_scalar(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

LENSNET_API void lensnet_sgemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
                               const float *A, size_t lda, const float *B, size_t ldb,
                               float beta, float *C, size_t ldc) {
  lensnet_sgemm_path(lensnet_simd_best(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---- convolution (forward) ----------------------------------------------------------------- */

/* The geometry of one 2-D convolution layer applied to a batch (PyTorch semantics:
 * cross-correlation, zero padding, oh = (h + 2 pad - kh) / stride + 1). */
typedef struct {
  size_t n, cin, h, w;      /* input [n, cin, h, w] */
  size_t cout, kh, kw;      /* weight [cout, cin/groups, kh, kw] */
  size_t stride, pad, groups;
  size_t oh, ow;            /* output [n, cout, oh, ow] */
} lensnet__conv_geom;

/* Floats of scratch memory lensnet__conv2d_forward needs for this geometry. */
static size_t lensnet__conv_scratch_floats(const lensnet__conv_geom *g) {
  return (g->cin / g->groups) * g->kh * g->kw * g->oh * g->ow;
}

/* Unrolls one image's group of channels into columns: col[(c*kh + i)*kw + j][y*ow + x]. */
static void lensnet__im2col(const lensnet__conv_geom *g, const float *img, size_t cin_g, float *col) {
  size_t c, i, j, y, x, P = g->oh * g->ow;
  for (c = 0; c < cin_g; c++)
    for (i = 0; i < g->kh; i++)
      for (j = 0; j < g->kw; j++) {
        float *dst = col + ((c * g->kh + i) * g->kw + j) * P;
        const float *src = img + c * g->h * g->w;
        for (y = 0; y < g->oh; y++) {
          long iy = (long)(y * g->stride + i) - (long)g->pad;
          for (x = 0; x < g->ow; x++) {
            long ix = (long)(x * g->stride + j) - (long)g->pad;
            dst[y * g->ow + x] = (iy >= 0 && iy < (long)g->h && ix >= 0 && ix < (long)g->w) ? src[iy * (long)g->w + ix] : 0.0f;
          }
        }
      }
}

/* out = conv(in, weight) + bias, then ReLU when fuse_relu is set. bias may be NULL.
 * scratch holds lensnet__conv_scratch_floats(g) floats. */
static void lensnet__conv2d_forward(const lensnet__conv_geom *g, const float *in, const float *weight,
                                    const float *bias, int fuse_relu, float *out, float *scratch) {
  size_t b, grp, co, p, cin_g = g->cin / g->groups, cout_g = g->cout / g->groups;
  size_t K = cin_g * g->kh * g->kw, P = g->oh * g->ow;
  for (b = 0; b < g->n; b++) {
    for (grp = 0; grp < g->groups; grp++) {
      const float *img = in + (b * g->cin + grp * cin_g) * g->h * g->w;
      float *o = out + (b * g->cout + grp * cout_g) * P;
      lensnet__im2col(g, img, cin_g, scratch);
      lensnet_sgemm(0, 0, cout_g, P, K, 1.0f, weight + grp * cout_g * K, K, scratch, P, 0.0f, o, P);
    }
    for (co = 0; co < g->cout; co++) {
      float *o = out + (b * g->cout + co) * P;
      float bv = bias ? bias[co] : 0.0f;
      if (fuse_relu) for (p = 0; p < P; p++) { float v = o[p] + bv; o[p] = v > 0.0f ? v : 0.0f; }
      else for (p = 0; p < P; p++) o[p] += bv;
    }
  }
}


/* @@SECTION-IMPL-MODEL@@ */

#endif /* LENSNET_IMPLEMENTATION */
