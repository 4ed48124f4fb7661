/* bench_fits.c - reading tile-compressed FITS images (fpack's .fits.fz) with lensnet_fits_read,
 * beside CFITSIO's funpack on the same files, CPU time of one thread each.
 *
 * Two 2048 x 2048 images made here: a float32 sky (Gaussian noise on a smooth background, a
 * hundred sources) and the same quantised to 16-bit integers. fpack compresses them as a survey
 * would: the float image with its defaults (RICE_1, quantised at q = 4 with subtractive dither,
 * tiles of one row), losslessly (GZIP_2 and GZIP_1, -q 0), and the integer one with RICE_1. Ours reads each
 * file REPEAT times in this process (getrusage: user + system of this process); funpack is run
 * REPEAT times on it, writing to /dev/null (getrusage of the children; funpack also writes the
 * 16 MB it unpacks, which /dev/null takes for free). Lines: "ours fits.fz WORKLOAD: X Mpix/s",
 * "funpack fits.fz WORKLOAD: Y Mpix/s" and the ratio. Needs fpack and funpack (Debian's
 * libcfitsio-bin); without them it says so and exits 0. LENS_BENCH_SCALE scales REPEAT. */
#define _POSIX_C_SOURCE 200809L
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/resource.h>

#define SIDE 2048

static double cpu_seconds(int who) {
  struct rusage u;
  getrusage(who, &u);
  return (double)u.ru_utime.tv_sec + 1e-6 * (double)u.ru_utime.tv_usec + (double)u.ru_stime.tv_sec + 1e-6 * (double)u.ru_stime.tv_usec;
}

static uint64_t rng = 88172645463325252ull;
static double uniform(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}

/* A 16-bit image: the header by hand, big-endian pixels. */
static int write_int16(const char *path, const float *v) {
  FILE *f = fopen(path, "wb");
  char block[2880];
  size_t i, n = (size_t)SIDE * SIDE;
  if (!f) return 0;
  memset(block, ' ', sizeof block);
  snprintf(block, 81, "%-80s", "SIMPLE  =                    T");
  snprintf(block + 80, 81, "%-80s", "BITPIX  =                   16");
  snprintf(block + 160, 81, "%-80s", "NAXIS   =                    2");
  snprintf(block + 240, 81, "NAXIS1  = %20d%50s", SIDE, "");
  snprintf(block + 320, 81, "NAXIS2  = %20d%50s", SIDE, "");
  snprintf(block + 400, 81, "%-80s", "END");
  block[480] = ' ';
  fwrite(block, 1, sizeof block, f);
  for (i = 0; i < n; i++) {
    long q = lround(v[i] * 100.0);
    unsigned char b[2];
    if (q > 32767) q = 32767;
    if (q < -32768) q = -32768;
    b[0] = (unsigned char)((uint16_t)(int16_t)q >> 8);
    b[1] = (unsigned char)((uint16_t)(int16_t)q & 255);
    fwrite(b, 1, 2, f);
  }
  memset(block, 0, sizeof block);
  fwrite(block, 1, (2880 - (n * 2) % 2880) % 2880, f);
  return fclose(f) == 0;
}

static void bench(const char *dir, const char *name, const char *raw, const char *options, int repeat) {
  char packed[512], cmd[1400];
  double t0, ours, peer, mpix = (double)SIDE * SIDE * repeat / 1e6;
  lensnet_tensor t;
  lensnet_error err;
  int k;
  snprintf(packed, sizeof packed, "%s/%s.fits.fz", dir, name);
  snprintf(cmd, sizeof cmd, "fpack %s -O %s %s", options, packed, raw);
  if (system(cmd) != 0) { printf("-- %s: fpack failed\n", name); return; }
  t0 = cpu_seconds(RUSAGE_SELF);
  for (k = 0; k < repeat; k++) {
    if (lensnet_fits_read(packed, -1, &t, &err) != LENSNET_OK) { printf("-- %s: %s\n", name, err.message); return; }
    lensnet_tensor_free(&t);
  }
  ours = cpu_seconds(RUSAGE_SELF) - t0;
  snprintf(cmd, sizeof cmd, "i=0; while [ $i -lt %d ]; do funpack -S %s > /dev/null || exit 1; i=$((i + 1)); done", repeat, packed);
  t0 = cpu_seconds(RUSAGE_CHILDREN);
  if (system(cmd) != 0) { printf("-- %s: funpack failed\n", name); return; }
  peer = cpu_seconds(RUSAGE_CHILDREN) - t0;
  printf("ours fits.fz %s: %.1f Mpix/s (CPU %.2f s for %d reads)\n", name, mpix / ours, ours, repeat);
  printf("funpack fits.fz %s: %.1f Mpix/s (CPU %.2f s for %d runs)\n", name, mpix / peer, peer, repeat);
  printf("   ratio (ours / funpack, > 1: ours faster): %.2f\n", peer / ours);
}

int main(void) {
  const char *s = getenv("LENS_BENCH_SCALE");
  double scale = s ? atof(s) : 1.0;
  int repeat = (int)(8 * (scale > 0 ? scale : 1) + 0.5);
  char dir[] = "/tmp/lens-bench-fits.XXXXXX", raw[256], raw16[256], cmd[300];
  size_t shape[2] = {SIDE, SIDE}, i, k;
  lensnet_tensor sky;
  lensnet_error err;
  if (repeat < 1) repeat = 1;
  if (system("command -v fpack >/dev/null 2>&1 && command -v funpack >/dev/null 2>&1") != 0) {
    printf("-- fits.fz: skipped, fpack and funpack are not installed (Debian: apt-get install libcfitsio-bin)\n");
    return 0;
  }
  if (!mkdtemp(dir) || lensnet_tensor_alloc(&sky, 2, shape, &err) != LENSNET_OK) return 1;
  for (i = 0; i < (size_t)SIDE * SIDE; i++) /* noise of sigma 1 on a background of 10 */
    sky.data[i] = (float)(10.0 + sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform()));
  for (k = 0; k < 100; k++) { /* sources: exponential discs a few pixels across */
    double x0 = uniform() * SIDE, y0 = uniform() * SIDE, r0 = 1.0 + 4.0 * uniform(), a = 50.0 + 500.0 * uniform();
    long x, y;
    for (y = (long)(y0 - 8 * r0); y <= (long)(y0 + 8 * r0); y++)
      for (x = (long)(x0 - 8 * r0); x <= (long)(x0 + 8 * r0); x++)
        if (x >= 0 && y >= 0 && x < SIDE && y < SIDE) sky.data[(size_t)y * SIDE + (size_t)x] += (float)(a * exp(-hypot(x - x0, y - y0) / r0));
  }
  snprintf(raw, sizeof raw, "%s/sky.fits", dir);
  snprintf(raw16, sizeof raw16, "%s/sky16.fits", dir);
  if (lensnet_fits_write(raw, &sky, &err) != LENSNET_OK || !write_int16(raw16, sky.data)) { printf("cannot write the images\n"); return 1; }
  lensnet_tensor_free(&sky);
  printf("== FITS tile-compressed reads, %d x %d, one thread, %d reads each\n", SIDE, SIDE, repeat);
  bench(dir, "float32-rice-q4", raw, "", repeat);
  bench(dir, "float32-gzip2-lossless", raw, "-g2 -q 0", repeat);
  bench(dir, "float32-gzip1-lossless", raw, "-g -q 0", repeat);
  bench(dir, "int16-rice", raw16, "", repeat);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : 1;
}
