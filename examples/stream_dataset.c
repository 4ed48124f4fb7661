/* stream_dataset.c - stream a simulated lens-finding data set to disk, one object at a time.
 *
 *   build/examples/stream_dataset [OUT_DIR [COUNT]]     (defaults: build/examples-out 16)
 *
 * Writes OUT_DIR/images.npy [COUNT, 4, 66, 66] (Euclid VIS, Y, J, H as the OU-66 finder takes
 * them) and OUT_DIR/labels.csv, the data set `lens train` reads. Only one image is in memory at
 * any time, so COUNT may be far larger than RAM:
 *   - lenssim_dataset_sample renders object i alone; it depends only on (preset, seed, i), so
 *     objects can be drawn in any order or on any number of threads and come out the same;
 *   - lensnet_npy_writer appends each image to images.npy.tmp and renames it at the end, so a
 *     reader never sees a half-written file (LENSNET_NPY_ROWS_UNKNOWN would leave COUNT open).
 * labels.csv gets the same treatment by hand: written as labels.csv.tmp, renamed when complete.
 * Its lines come from lenssim_label_csv_header and lenssim_label_csv_row, the columns of
 * `lens sim`'s labels.csv (every label field; docs/populations.md says what each holds). */
#define _POSIX_C_SOURCE 200809L /* mkdir */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#define LENSSIM_IMPLEMENTATION
#include "lenssim.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int main(int argc, char **argv) {
  const char *out_dir = argc > 1 ? argv[1] : "build/examples-out";
  unsigned long count = argc > 2 ? strtoul(argv[2], NULL, 10) : 16, i;
  char npy_path[1024], csv_path[1024], csv_tmp[1040];
  lenssim_dataset_config config = {0}; /* zero means the preset's default everywhere */
  lenssim_dataset *ds = malloc(sizeof *ds); /* ~42 KB of tables: heap rather than stack */
  lenssim_error serr;
  lensnet_npy_writer writer = {0};
  lensnet_error err;
  float *image;
  void *workspace;
  FILE *csv;
  size_t shape[4];

  if (count == 0) { fprintf(stderr, "stream_dataset: COUNT must be a positive number\n"); return 2; }
  mkdir(out_dir, 0777); /* may exist already; a real failure shows up when the files are opened */
  snprintf(npy_path, sizeof npy_path, "%s/images.npy", out_dir);
  snprintf(csv_path, sizeof csv_path, "%s/labels.csv", out_dir);
  snprintf(csv_tmp, sizeof csv_tmp, "%s.tmp", csv_path);

  /* The population of Wilde et al.'s Euclid lens-finding challenge, rendered as OU-66 inputs. */
  config.preset = LENSSIM_PRESET_EUCLID_LENSFINDING;
  config.layout = LENSSIM_LAYOUT_OU66;
  if (!ds || lenssim_dataset_init(ds, &config, 2024, &serr) != LENSSIM_OK) {
    fprintf(stderr, "stream_dataset: %s\n", ds ? serr.message : "out of memory");
    return 1;
  }
  /* One image and one rendering workspace, reused for every object. */
  image = malloc(lenssim_dataset_image_floats(ds) * sizeof(float));
  workspace = malloc(lenssim_dataset_workspace_bytes(ds));
  if (!image || !workspace) { fprintf(stderr, "stream_dataset: out of memory\n"); return 1; }

  shape[0] = count; shape[1] = (size_t)ds->channels; shape[2] = shape[3] = (size_t)ds->num_pix;
  if (lensnet_npy_writer_begin(&writer, npy_path, 4, shape, &err) != LENSNET_OK) {
    fprintf(stderr, "stream_dataset: %s\n", err.message);
    return 1;
  }
  csv = fopen(csv_tmp, "w");
  if (!csv) {
    fprintf(stderr, "stream_dataset: cannot write %s\n", csv_tmp);
    lensnet_npy_writer_abort(&writer);
    return 1;
  }
  /* `label` is the class column lens train looks for (lensnet_csv_label_column). A failed
   * write to csv is remembered by stdio: ferror below sees it. */
  fputs(lenssim_label_csv_header(), csv);

  for (i = 0; i < count; i++) {
    lenssim_label label;
    char row[LENSSIM_LABEL_CSV_MAX]; /* always large enough for a row */
    if (lenssim_dataset_sample(ds, i, image, &label, workspace, lenssim_dataset_workspace_bytes(ds), &serr) != LENSSIM_OK) {
      fprintf(stderr, "stream_dataset: object %lu: %s\n", i, serr.message);
      break;
    }
    if (lensnet_npy_writer_append(&writer, image, 1, &err) != LENSNET_OK) { /* a failed append aborts the writer */
      fprintf(stderr, "stream_dataset: %s\n", err.message);
      break;
    }
    lenssim_label_csv_row(&label, i, row, sizeof row, NULL);
    fputs(row, csv);
  }

  /* Finish both files only when every object made it; otherwise leave nothing behind. */
  if (i < count || ferror(csv)) {
    if (i == count) fprintf(stderr, "stream_dataset: cannot write %s\n", csv_tmp);
    lensnet_npy_writer_abort(&writer);
    fclose(csv);
    remove(csv_tmp);
    return 1;
  }
  if (fclose(csv) != 0 || rename(csv_tmp, csv_path) != 0) {
    fprintf(stderr, "stream_dataset: cannot finish %s\n", csv_path);
    lensnet_npy_writer_abort(&writer);
    return 1;
  }
  if (lensnet_npy_writer_finish(&writer, 0, &err) != LENSNET_OK) {
    fprintf(stderr, "stream_dataset: %s\n", err.message);
    return 1;
  }
  printf("%lu objects [%d, %d, %d] -> %s, %s\n", count, ds->channels, ds->num_pix, ds->num_pix, npy_path, csv_path);
  free(workspace);
  free(image);
  free(ds);
  return 0;
}
