/* check.h - the tests' tiny harness: CHECK counts, check_summary() prints "N passed, N failed". */
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

static const char *check_shared_dir(void);
static const char *check_shared_dir(void) {
  const char *s = getenv("SHARED");
  return s && *s ? s : "../shared";
}

static int check_summary(void) {
  (void)check_shared_dir;
  printf("%d passed, %d failed\n", check__passed, check__failed);
  return check__failed ? 1 : 0;
}
#endif
