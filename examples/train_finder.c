/* train_finder.c - train a small lens finder on simulated images, all in memory.
 *
 *   build/examples/train_finder [OUT_DIR [COUNT [EPOCHS]]]   (defaults: build/examples-out 512 3)
 *
 * lenssim's dataset API draws COUNT labelled lenses and non-lenses (Euclid VIS, Y, J, H at
 * 66 x 66, half of them lenses); lensnet_fit owns the training loop: it holds out a share for
 * validation, shuffles, scales each image to [0, 1] (minmax), runs the epochs and reports each
 * one through a callback. The weights go to OUT_DIR/finder.safetensors with their metadata
 * (architecture, class names, preprocess=minmax), so find_lenses.c and `lens predict` can use
 * them as they are. Setting desc.out_dir would add checkpoints that lensnet_fit_resume
 * continues from. A few hundred images only show the mechanics: a finder worth using needs
 * tens of thousands (`make weights` trains weights/ou66-sim on 20000). */
#define _POSIX_C_SOURCE 200809L /* mkdir */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#define LENSSIM_IMPLEMENTATION
#include "lenssim.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Called by lensnet_fit after every batch; we print only finished epochs and keep the last
 * validation accuracy. Returning nonzero would stop training after this epoch. */
static int show_epoch(void *user, const lensnet_fit_progress *p) {
  if (!p->epoch_done) return 0;
  printf("epoch %d/%d: train loss %.3f acc %.3f, validation loss %.3f acc %.3f\n", p->epoch, p->epochs, p->train_loss,
         p->train_acc, p->val_loss, p->val_acc);
  *(double *)user = p->val_acc;
  return 0;
}

int main(int argc, char **argv) {
  const char *out_dir = argc > 1 ? argv[1] : "build/examples-out";
  unsigned long count = argc > 2 ? strtoul(argv[2], NULL, 10) : 512, i;
  int epochs = argc > 3 ? atoi(argv[3]) : 3;
  lenssim_dataset_config config = {0}; /* zero means the preset's default everywhere */
  lenssim_dataset *ds = malloc(sizeof *ds);
  lenssim_error serr;
  lensnet_tensor images;
  lensnet_fit_desc fit = {0};
  lensnet_model *model;
  lensnet_error err;
  char arch[512], path[1024];
  size_t shape[4], per_image;
  float *labels;
  double val_acc = 0;

  if (count < 20 || epochs < 1) { fprintf(stderr, "usage: %s [OUT_DIR [COUNT >= 20 [EPOCHS >= 1]]]\n", argv[0]); return 2; }
  config.preset = LENSSIM_PRESET_EUCLID_LENSFINDING;
  config.layout = LENSSIM_LAYOUT_OU66;
  if (!ds || lenssim_dataset_init(ds, &config, 1, &serr) != LENSSIM_OK) {
    fprintf(stderr, "train_finder: %s\n", ds ? serr.message : "out of memory");
    return 1;
  }

  /* 1. The data: images [COUNT, 4, 66, 66] and one class per image (0 non-lens, 1 lens). */
  shape[0] = count; shape[1] = (size_t)ds->channels; shape[2] = shape[3] = (size_t)ds->num_pix;
  per_image = lenssim_dataset_image_floats(ds);
  labels = malloc(count * sizeof(float));
  if (!labels || lensnet_tensor_alloc(&images, 4, shape, &err) != LENSNET_OK) {
    fprintf(stderr, "train_finder: %s\n", labels ? err.message : "out of memory");
    return 1;
  }
  for (i = 0; i < count; i++) {
    lenssim_label label;
    if (lenssim_dataset_sample(ds, i, images.data + i * per_image, &label, NULL, 0, &serr) != LENSSIM_OK) {
      fprintf(stderr, "train_finder: object %lu: %s\n", i, serr.message);
      return 1;
    }
    labels[i] = (float)label.label;
  }

  /* 2. A small CNN, one output per class. The "classes" metadata names the outputs, as the
   *    preset names its classes ("non-lens,lens"), so that lensnet_model_class_index(m, "lens")
   *    finds the lens output of the saved file. */
  snprintf(arch, sizeof arch,
           "input %d %d %d\n"
           "conv2d name=conv1 out=8 kernel=3 padding=1\nrelu\nmaxpool kernel=2\n"
           "conv2d name=conv2 out=16 kernel=3 padding=1\nrelu\nmaxpool kernel=2\n"
           "conv2d name=conv3 out=32 kernel=3 padding=1\nrelu\nglobal_avgpool\nflatten\n"
           "dense name=fc out=%d\n",
           ds->channels, ds->num_pix, ds->num_pix, ds->classes);
  if (lensnet_model_create(arch, &model, &err) != LENSNET_OK ||
      lensnet_model_set_meta(model, "classes", lenssim_preset_class_names(config.preset)) != LENSNET_OK) {
    fprintf(stderr, "train_finder: %s\n", err.message);
    return 1;
  }
  lensnet_model_init(model, 42); /* PyTorch's default initialisation, seeded */

  /* 3. Train: zero means default for every field of lensnet_fit_desc. */
  fit.images = &images;
  fit.labels = labels;
  fit.epochs = epochs;
  fit.val_fraction = 0.2; /* the last 20% of a seeded permutation is never trained on */
  fit.lr = 3e-3;
  fit.minmax = 1;         /* saved as the model's "preprocess" */
  fit.augment = "flip,rot90";
  fit.seed = 7;
  fit.progress = show_epoch;
  fit.progress_user = &val_acc;
  if (lensnet_fit(model, &fit, &err) != LENSNET_OK) { fprintf(stderr, "train_finder: %s\n", err.message); return 1; }
  printf("validation accuracy after %d epochs: %.1f%%\n", epochs, 100 * val_acc);

  /* 4. Save the weights, with the architecture and metadata, atomically. */
  mkdir(out_dir, 0777); /* may exist already; lensnet_model_save reports a real failure */
  snprintf(path, sizeof path, "%s/finder.safetensors", out_dir);
  if (lensnet_model_save(model, path, &err) != LENSNET_OK) { fprintf(stderr, "train_finder: %s\n", err.message); return 1; }
  printf("saved %s\n", path);
  lensnet_model_free(model);
  lensnet_tensor_free(&images);
  free(labels);
  free(ds);
  return 0;
}
