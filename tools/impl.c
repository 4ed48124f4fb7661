/* The one translation unit of the tool that holds the headers' implementations (and
 * stb_image_write's, which lensviz.h uses for PNG). */
#if defined(__linux__)
/* Large buffers (a trainer's activations and gradient slots, data sets) on transparent huge
 * pages where the kernel offers them on request (THP "madvise" mode): a short lens train spent
 * about 4% of its CPU on page faults of 4 KB pages. Only the 2 MB-aligned interior is advised. */
#define _DEFAULT_SOURCE /* madvise under -std=c99 */
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
static void lens_advise_large(void *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  const uintptr_t huge = (uintptr_t)1 << 21;
  uintptr_t first = ((uintptr_t)p + huge - 1) & ~(huge - 1), end = ((uintptr_t)p + bytes) & ~(huge - 1);
  if (end > first) (void)madvise((void *)first, (size_t)(end - first), MADV_HUGEPAGE);
#else
  (void)p; (void)bytes;
#endif
}
#define LENSNET_ADVISE_LARGE(p, bytes) lens_advise_large(p, bytes)
#endif
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#define LENSSIM_IMPLEMENTATION
#include "lenssim.h"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define LENSVIZ_IMPLEMENTATION
#include "lensviz.h"
