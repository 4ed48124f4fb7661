/* bench_sim.c - images per second of lenssim_dataset_sample per preset and layout, one thread.
 * Each image is a full object as `lens sim` makes it: population draws, the selection's image
 * counts and detection-band renders (repeated until a lens passes), every channel rendered with
 * its PSF, noise, binning or resampling. Objects 0, 1, 2, ... of seed 1, timed in batches; the
 * fastest batch's rate is printed (the machines are shared). LENS_BENCH_SCALE scales the time. */
#define _POSIX_C_SOURCE 199309L
#define LENSSIM_IMPLEMENTATION
#include "lenssim.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench(lenssim_preset preset, lenssim_layout layout, const char *name, double seconds) {
  lenssim_dataset *ds = (lenssim_dataset *)malloc(sizeof *ds);
  lenssim_dataset_config c;
  lenssim_error err;
  float *img;
  void *ws;
  double best = 0, start = now_seconds();
  uint64_t index = 0;
  memset(&c, 0, sizeof c);
  c.preset = preset;
  c.layout = layout;
  if (!ds || lenssim_dataset_init(ds, &c, 1, &err) != LENSSIM_OK) { printf("%s: init failed\n", name); free(ds); return 1; }
  img = (float *)malloc(lenssim_dataset_image_floats(ds) * sizeof(float));
  ws = malloc(lenssim_dataset_workspace_bytes(ds));
  if (!img || !ws) return 1;
  while (now_seconds() - start < seconds) {
    double t0 = now_seconds(), rate;
    int k;
    /* batches of 40 hold a mix of kinds close to the preset's */
    for (k = 0; k < 40; k++, index++) {
      lenssim_label l;
      if (lenssim_dataset_sample(ds, index, img, &l, ws, lenssim_dataset_workspace_bytes(ds), &err) != LENSSIM_OK) {
        printf("%s: %s\n", name, err.message);
        return 1;
      }
    }
    rate = 40.0 / (now_seconds() - t0);
    if (rate > best) best = rate;
  }
  printf("ours sim %s: %.1f img/s\n", name, best);
  free(img); free(ws); free(ds);
  return 0;
}

int main(void) {
  const char *s = getenv("LENS_BENCH_SCALE");
  double scale = s ? atof(s) : 1.0, secs = 2.0 * (scale > 0 ? scale : 1.0);
  int bad = 0;
  bad |= bench(LENSSIM_PRESET_EUCLID_LENSFINDING, LENSSIM_LAYOUT_OU66, "euclid-lensfinding", secs);
  bad |= bench(LENSSIM_PRESET_EUCLID_LENSFINDING, LENSSIM_LAYOUT_OU200, "euclid-lensfinding ou200", secs);
  bad |= bench(LENSSIM_PRESET_EUCLID_COMPOUND, LENSSIM_LAYOUT_OU66, "euclid-compound", secs);
  bad |= bench(LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE, LENSSIM_LAYOUT_DEFAULT, "deeplense-substructure", secs);
  bad |= bench(LENSSIM_PRESET_ENSAI_MODELLING, LENSSIM_LAYOUT_DEFAULT, "ensai-modelling", secs);
  bad |= bench(LENSSIM_PRESET_EUCLID_LENSFINDING, LENSSIM_LAYOUT_HSC, "euclid-lensfinding hsc", secs);
  return bad;
}
