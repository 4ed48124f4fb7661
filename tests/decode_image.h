/* decode_image.h - stb_image.h (Debian: libstb-dev) for reading back the PNG and GIF files the
 * tests write: its implementation, compiled once per test program with the warnings of a
 * third-party header silenced, and png_size(). */
#ifndef LENS_DECODE_IMAGE_H
#define LENS_DECODE_IMAGE_H
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wunused-function"
#pragma clang diagnostic ignored "-Wsign-compare"
#pragma clang diagnostic ignored "-Wunused-parameter"
#pragma clang diagnostic ignored "-Wunused-but-set-variable"
#elif defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#endif
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#if defined(__clang__)
#pragma clang diagnostic pop
#elif defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* Whether a PNG file decodes, and its size. */
#if defined(__GNUC__)
__attribute__((unused))
#endif
static int png_size(const char *file, int *w, int *h) {
  int n;
  unsigned char *p = stbi_load(file, w, h, &n, 3);
  if (!p) return 0;
  stbi_image_free(p);
  return 1;
}
#endif
