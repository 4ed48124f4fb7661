/* check.h - the tests' tiny harness: CHECK counts, SKIP explains, check_summary() prints "N passed, N failed". */
#ifndef LENS_CHECK_H
#define LENS_CHECK_H
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

static int check__passed = 0, check__failed = 0;

#define CHECK(cond, ...) do { \
    if (cond) { check__passed++; } \
    else { check__failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } \
  } while (0)

/* A named sub-test: prints its name and whether every CHECK inside passed. */
#define TEST(name) for (int check__once = (printf("-- %s\n", name), 1); check__once; check__once = 0)

/* Where the reference files live: $LENS_TEST_DATA, else tests/data of this repository (make
 * runs the tests from the repository root). tests/data/README.md lists what is there. */
static const char *check_data_dir(void);
static const char *check_data_dir(void) {
  const char *s = getenv("LENS_TEST_DATA");
  return s && *s ? s : "tests/data";
}

/* Whether a file can be opened: an optional reference that is missing is a SKIP, not a FAIL. */
static int check_file_exists(const char *path);
static int check_file_exists(const char *path) {
  FILE *f = fopen(path, "rb");
  int found = f != NULL;
  if (f) fclose(f);
  return found;
}

/* max |a - b| over n values; NaN if either holds a NaN there (so that `<= tol` fails). */
static double check_max_abs_diff(const float *a, const float *b, size_t n);
static double check_max_abs_diff(const float *a, const float *b, size_t n) {
  double d = 0;
  size_t i;
  for (i = 0; i < n; i++) {
    double e = fabs((double)a[i] - (double)b[i]);
    if (e > d || e != e) d = e;
  }
  return d;
}

/* check_max_abs_diff over the largest |b| (b is the reference), or the plain difference if b is 0. */
static double check_rel_diff(const float *a, const float *b, size_t n);
static double check_rel_diff(const float *a, const float *b, size_t n) {
  double mx = 0.0;
  size_t i;
  for (i = 0; i < n; i++) if (fabs((double)b[i]) > mx) mx = fabs((double)b[i]);
  return mx > 0.0 ? check_max_abs_diff(a, b, n) / mx : check_max_abs_diff(a, b, n);
}

/* A check that cannot run here, with the reason; it counts neither as passed nor as failed. */
#define SKIP(...) do { printf("SKIP "); printf(__VA_ARGS__); printf("\n"); } while (0)

static int check_summary(void) {
  (void)check_data_dir;
  (void)check_file_exists;
  (void)check_rel_diff;
  printf("%d passed, %d failed\n", check__passed, check__failed);
  return check__failed ? 1 : 0;
}
#endif
