/* ou66_firmware.c - the released lens finder OU-66 (Wilde et al. 2022) on a Cortex-M4F (or M7) with no
 * heap: the model is built in a static block with lensnet_model_init_preallocated, its 203,192
 * parameters are read in place from flash (ou66_model.c, written by `lens export-c`), and
 * inference runs in a static workspace. Prints each embedded image's logits through semihosting
 * and exits with 0 when all went well. `make mcu` builds it; docs/embedded.md explains it. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "semihost.h"

unsigned long mcu_stack_used(void); /* startup.c: the stack's high-water mark, in bytes */

/* The library's allocator: a firmware without a heap. Any call is counted and fails, so a
 * path that would allocate shows up as an error and in the count printed at the end. */
static unsigned long library_allocations;
static void *no_malloc(size_t n) { (void)n; library_allocations++; return NULL; }
static void *no_realloc(void *p, size_t n) { (void)p; (void)n; library_allocations++; return NULL; }
static void no_free(void *p) { (void)p; }
#define LENSNET_MALLOC(n) no_malloc(n)
#define LENSNET_REALLOC(p, n) no_realloc(p, n)
#define LENSNET_FREE(p) no_free(p)
#define LENSNET_NO_SIMD    /* the scalar GEMM (Cortex-M4 has no NEON) */
#define LENSNET_STATIC     /* every function static: the compiler drops those never used */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "ou66_model.h"   /* OU66_HEAP_BYTES, ou66_arch, ou66_values (lens export-c) */
#include "mcu_inputs.h"   /* MCU_IMAGES images of OU66_IN_C x OU66_IN_H x OU66_IN_W, MCU_WORKSPACE_FLOATS */

/* The C library's heap, watched from outside the library too: the link wraps malloc, calloc,
 * realloc and free (--wrap), and _sbrk (where newlib's allocator gets memory) always refuses. */
static unsigned long libc_allocations;
void *__wrap_malloc(size_t n) { (void)n; libc_allocations++; return NULL; }
void *__wrap_calloc(size_t n, size_t k) { (void)n; (void)k; libc_allocations++; return NULL; }
void *__wrap_realloc(void *p, size_t n) { (void)p; (void)n; libc_allocations++; return NULL; }
void __wrap_free(void *p) { (void)p; }
void *_sbrk(ptrdiff_t increment) { (void)increment; libc_allocations++; return (void *)-1; }

/* The RAM the model uses: its block and the inference workspace (batch 1), both static. */
static uint64_t model_block[(OU66_HEAP_BYTES + 7) / 8]; /* 8-byte aligned: LENSNET_HEAP_ALIGN */
static float workspace[MCU_WORKSPACE_FLOATS];
static float logits[OU66_OUT];

/* Text without printf (newlib's printf of floats allocates). */
static void put_unsigned(char **p, unsigned long v) {
  char digits[24];
  int n = 0;
  do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v);
  while (n) *(*p)++ = digits[--n];
}
static void put_text(char **p, const char *s) { while (*s) *(*p)++ = *s++; }
/* v with 7 decimals (round to nearest), then its IEEE-754 bits: enough to compare at 1e-4, and exact. */
static void put_float(char **p, float v) {
  static const char hex[] = "0123456789abcdef";
  double a = v < 0 ? -(double)v : (double)v;
  uint64_t scaled = (uint64_t)(a * 1e7 + 0.5);
  uint32_t bits;
  char frac[8];
  int i;
  memcpy(&bits, &v, sizeof bits);
  if (v != v || a > 1e9) { put_text(p, "nan-or-huge"); return; }
  if (v < 0) *(*p)++ = '-';
  put_unsigned(p, (unsigned long)(scaled / 10000000u));
  for (i = 6; i >= 0; i--) { frac[i] = (char)('0' + scaled % 10); scaled /= 10; }
  *(*p)++ = '.';
  for (i = 0; i < 7; i++) *(*p)++ = frac[i];
  put_text(p, " (0x");
  for (i = 7; i >= 0; i--) *(*p)++ = hex[(bits >> (4 * i)) & 15u];
  *(*p)++ = ')';
}

static int fail(const char *what, const lensnet_error *err) {
  semihost_write(what);
  semihost_write(err ? err->message : "");
  semihost_write("\n");
  return 1;
}

int main(void) {
  lensnet_model *m;
  lensnet_error err;
  char line[256], *p;
  size_t i, k;
  unsigned long start, elapsed = 0;
  semihost_write("ou66 firmware: OU-66 (Wilde et al. 2022) on a Cortex-M (ARMv7E-M, FPU), no heap\n");
  if (lensnet_model_init_preallocated(ou66_arch, ou66_values, OU66_VALUE_COUNT, model_block, sizeof model_block, &m, &err) != LENSNET_OK)
    return fail("init: ", &err);
  if (lensnet_model_workspace_floats(m, 1) > MCU_WORKSPACE_FLOATS) return fail("the static workspace is too small for this model", NULL);
  p = line;
  put_text(&p, "model block ");
  put_unsigned(&p, (unsigned long)sizeof model_block);
  put_text(&p, " bytes, workspace ");
  put_unsigned(&p, (unsigned long)(lensnet_model_workspace_floats(m, 1) * sizeof(float)));
  put_text(&p, " bytes, parameters in flash ");
  put_unsigned(&p, (unsigned long)(OU66_VALUE_COUNT * sizeof(float)));
  put_text(&p, " bytes\n");
  *p = 0;
  semihost_write(line);
  for (i = 0; i < MCU_IMAGES; i++) {
    start = semihost_clock_cs();
    if (lensnet_model_forward(m, 1, mcu_images[i], logits, workspace, &err) != LENSNET_OK) return fail("forward: ", &err);
    elapsed += semihost_clock_cs() - start;
    p = line;
    put_text(&p, "image ");
    put_unsigned(&p, (unsigned long)i);
    put_text(&p, " logits");
    for (k = 0; k < OU66_OUT; k++) { *p++ = ' '; put_float(&p, logits[k]); }
    *p++ = '\n';
    *p = 0;
    semihost_write(line);
  }
  p = line;
  put_text(&p, "forward passes: ");
  put_unsigned(&p, (unsigned long)MCU_IMAGES);
  put_text(&p, " in ");
  put_unsigned(&p, elapsed * 10);
  put_text(&p, " ms of host time (emulated)\nallocations: library ");
  put_unsigned(&p, library_allocations);
  put_text(&p, ", C library ");
  put_unsigned(&p, libc_allocations);
  put_text(&p, "\nstack used ");
  put_unsigned(&p, mcu_stack_used());
  put_text(&p, " bytes");
  *p++ = '\n';
  *p = 0;
  semihost_write(line);
  lensnet_model_free(m); /* releases nothing: the block and the values are ours */
  return library_allocations || libc_allocations ? 2 : 0;
}
