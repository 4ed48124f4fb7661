/* fuzz_file.h - an input as a file, for readers that take a path (lensnet_checkpoint_load, the
 * .npy readers that stream rows from disk). Define _POSIX_C_SOURCE 200809L (mkstemp) before
 * any include.
 *
 * One temporary file per process, rewritten for every input and removed at exit; under /dev/shm
 * where there is such a folder (in memory: several times the executions per second of /tmp).
 */
#ifndef LENS_FUZZ_FILE_H
#define LENS_FUZZ_FILE_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_tmp_path[64];

static void fuzz_remove_tmp(void) {
  if (fuzz_tmp_path[0]) remove(fuzz_tmp_path);
}

/* The input as a file; its path, or NULL when the file cannot be written. */
static const char *fuzz_input_file(const uint8_t *data, size_t size) {
  FILE *f;
  int ok;
  if (!fuzz_tmp_path[0]) {
    int fd;
    strcpy(fuzz_tmp_path, "/dev/shm/lens_fuzz_XXXXXX");
    if ((fd = mkstemp(fuzz_tmp_path)) < 0) {
      strcpy(fuzz_tmp_path, "/tmp/lens_fuzz_XXXXXX");
      if ((fd = mkstemp(fuzz_tmp_path)) < 0) { fuzz_tmp_path[0] = 0; return NULL; }
    }
    close(fd);
    atexit(fuzz_remove_tmp);
  }
  if (!(f = fopen(fuzz_tmp_path, "wb"))) return NULL;
  ok = fwrite(data, 1, size, f) == size;
  return fclose(f) == 0 && ok ? fuzz_tmp_path : NULL;
}
#endif
