/* replay.c - a main() for a fuzz target without libFuzzer: runs the target once on each input
 * file, for `make test` (the Makefile links it with tests/fuzz/fuzz_NAME.c, built with the
 * sanitizers, so an input that once crashed is caught again if the bug comes back).
 *
 *   build/san/fuzz_NAME [FILE|FOLDER]...
 *
 * Without arguments it replays tests/fuzz/corpus/NAME (NAME is FUZZ_NAME, set by the Makefile),
 * which must hold at least one input, and tests/fuzz/regressions/NAME when there is one (a target
 * that never crashed has none). Each
 * input is read into a buffer of exactly its size, so a read past its end is an ASan report.
 * One pass per input replayed (and per folder found), then "N passed, N failed"; a crash stops
 * the program, which tests/run.sh counts as a failure.
 */
#define _POSIX_C_SOURCE 200809L /* opendir */
#include "fuzz.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef FUZZ_NAME
#error "build with -DFUZZ_NAME='\"name\"' (the Makefile does)"
#endif

static int passed, failed;

static void fail(const char *what, const char *path) {
  printf("FAIL %s: %s\n", path, what);
  failed++;
}

/* Runs the target on the file at path. */
static void replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf = NULL;
  long size = -1;
  if (f && fseek(f, 0, SEEK_END) == 0) size = ftell(f);
  if (!f || size < 0 || fseek(f, 0, SEEK_SET) != 0 || !(buf = (unsigned char *)malloc(size ? (size_t)size : 1)) ||
      fread(buf, 1, (size_t)size, f) != (size_t)size) {
    fail("cannot read", path);
  } else if (LLVMFuzzerTestOneInput(buf, (size_t)size) != 0) {
    fail("the target returned nonzero", path);
  } else {
    passed++;
  }
  free(buf);
  if (f) fclose(f);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every regular file of a folder, in name order (so that runs are alike); returns how many. */
static size_t replay_folder(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char **names = NULL, path[4096];
  size_t n = 0, cap = 0, i, done = 0;
  struct stat st;
  if (!d) return 0;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue; /* ., .. and hidden files such as .gitkeep */
    if (n == cap) {
      char **grown = (char **)realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names);
      if (!grown) break;
      names = grown;
    }
    if (!(names[n] = (char *)malloc(strlen(e->d_name) + 1))) break;
    strcpy(names[n++], e->d_name);
  }
  closedir(d);
  if (n) qsort(names, n, sizeof *names, by_name);
  for (i = 0; i < n; i++) {
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, names[i]) < sizeof path && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
      replay_file(path);
      done++;
    }
    free(names[i]);
  }
  free(names);
  return done;
}

static int is_folder(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void replay(const char *path) {
  struct stat st;
  size_t n;
  if (stat(path, &st) != 0) { fail("no such file or folder", path); return; }
  if (!S_ISDIR(st.st_mode)) { replay_file(path); return; }
  n = replay_folder(path);
  printf("%s: %lu inputs replayed\n", path, (unsigned long)n);
  if (n) passed++;
  else fail("no inputs in the folder", path);
}

int main(int argc, char **argv) {
  int i;
  if (argc > 1) {
    for (i = 1; i < argc; i++) replay(argv[i]);
  } else {
    replay("tests/fuzz/corpus/" FUZZ_NAME);
    if (is_folder("tests/fuzz/regressions/" FUZZ_NAME)) replay("tests/fuzz/regressions/" FUZZ_NAME);
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
