/* `lens train` end to end: an interrupted and resumed run reaches the same weights as an
 * uninterrupted one (with augmentation, dropout, class weights and a different thread count
 * after the resume), the files it promises exist, and bad input gets clear errors. */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"
#include <string.h>

static const char *lens_binary(void) {
  const char *l = getenv("LENS");
  return l && *l ? l : "build/lens";
}

static int run(const char *args) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s %s", lens_binary(), args);
  return system(cmd);
}

static int file_contains(const char *path, const char *needle) {
  FILE *f = fopen(path, "r");
  char text[8192];
  size_t n;
  if (!f) return 0;
  n = fread(text, 1, sizeof text - 1, f);
  text[n] = 0;
  fclose(f);
  return strstr(text, needle) != NULL;
}

/* rings (1) and discs (0), 1 x 12 x 12, with noise */
static void make_dataset(void) {
  lensnet_tensor t;
  lensnet_error err;
  lensnet_rng rng;
  size_t shape[4] = {240, 1, 12, 12}, i;
  FILE *f = fopen("build/tcli_labels.csv", "w");
  lensnet_tensor_alloc(&t, 4, shape, &err);
  lensnet_rng_seed(&rng, 3);
  if (f) fprintf(f, "id,label,theta_E\n");
  for (i = 0; i < 240; i++) {
    int ring = (int)(i % 2), y, x;
    float cx = 5.5f + 2.0f * (lensnet_rng_uniform(&rng) - 0.5f), cy = 5.5f + 2.0f * (lensnet_rng_uniform(&rng) - 0.5f);
    float r = 2.5f + 1.5f * lensnet_rng_uniform(&rng);
    for (y = 0; y < 12; y++)
      for (x = 0; x < 12; x++) {
        float d = sqrtf((x - cx) * (x - cx) + (y - cy) * (y - cy));
        float v = ring ? (fabsf(d - r) < 0.8f) : (d < 0.6f * r);
        t.data[i * 144 + (size_t)(y * 12 + x)] = v + 0.1f * lensnet_rng_normal(&rng);
      }
    if (f) fprintf(f, "%lu,%d,%.2f\n", (unsigned long)i, ring, ring ? r * 0.1 : 0.0);
  }
  if (f) fclose(f);
  lensnet_npy_write("build/tcli_images.npy", &t, &err);
  lensnet_tensor_free(&t);
  f = fopen("build/tcli_arch.txt", "w");
  if (f) {
    fputs("input 1 12 12\nconv2d name=c1 out=6 kernel=3 padding=1\nbatchnorm name=bn\nrelu\nmaxpool kernel=2\n"
          "conv2d name=c2 out=8 kernel=3\nrelu\ndropout p=0.2\nflatten\ndense name=d1 out=16\nrelu\ndense name=d2 out=2\n", f);
    fclose(f);
  }
}

/* Every tensor of a must be in b with the same bytes (weights, running statistics, moments). */
static int same_tensors(const char *pa, const char *pb, size_t *compared) {
  lensnet_safetensors a, b;
  lensnet_error err;
  size_t i;
  int same = 1;
  *compared = 0;
  if (lensnet_safetensors_read(pa, &a, &err) != LENSNET_OK) { printf("   %s\n", err.message); return 0; }
  if (lensnet_safetensors_read(pb, &b, &err) != LENSNET_OK) { printf("   %s\n", err.message); lensnet_safetensors_free(&a); return 0; }
  same = a.count == b.count;
  for (i = 0; same && i < a.count; i++) {
    const lensnet_tensor *tb = lensnet_safetensors_find(&b, a.tensors[i].name);
    size_t n = lensnet_tensor_count(&a.tensors[i].tensor);
    if (!tb || lensnet_tensor_count(tb) != n || memcmp(tb->data, a.tensors[i].tensor.data, n * sizeof(float))) {
      printf("   tensor %s differs\n", a.tensors[i].name);
      same = 0;
    }
    (*compared)++;
  }
  lensnet_safetensors_free(&a);
  lensnet_safetensors_free(&b);
  return same;
}

int main(void) {
  const char *common = "train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_labels.csv "
                       "--epochs 4 --batch 16 --lr 0.005 --augment flip,rot90,shift=1,noise=0.02 --class-weights auto --minmax --seed 5";
  char args[2048];
  make_dataset();
  system("rm -rf build/tcli_full build/tcli_resumed");

  TEST("an interrupted run resumed reaches the same weights") {
    size_t compared = 0;
    snprintf(args, sizeof args, "%s --out build/tcli_full --threads 1 2> build/tcli_full.log", common);
    CHECK(run(args) == 0, "uninterrupted run");
    snprintf(args, sizeof args, "%s --out build/tcli_resumed --threads 2 --interrupt-after 2 2> build/tcli_interrupted.log", common);
    CHECK(run(args) != 0, "the interrupted run stops with a failure status");
    CHECK(file_contains("build/tcli_resumed/history.csv", "\n2,") && !file_contains("build/tcli_resumed/history.csv", "\n3,"), "history holds epochs 1-2 only");
    CHECK(run("train --resume build/tcli_resumed --threads 1 2> build/tcli_resume.log") == 0, "resume");
    CHECK(file_contains("build/tcli_resume.log", "resuming"), "resume says so");
    CHECK(same_tensors("build/tcli_full/checkpoint.safetensors", "build/tcli_resumed/checkpoint.safetensors", &compared),
          "checkpoints differ after resuming");
    printf("   %lu tensors (weights, batch-norm statistics, Adam moments) identical\n", (unsigned long)compared);
    CHECK(compared > 10, "the checkpoint holds weights and optimiser state (%lu tensors)", (unsigned long)compared);
    CHECK(file_contains("build/tcli_full/history.csv", "epoch,lr,train_loss,train_acc,val_loss,val_acc") &&
          file_contains("build/tcli_full/history.csv", "\n4,"), "history.csv has a header and 4 epochs");
    CHECK(run("info build/tcli_full/best.safetensors > /dev/null") == 0, "best.safetensors loads");
    CHECK(run("predict --model build/tcli_full/checkpoint.safetensors build/tcli_images.npy --out build/tcli_pred.npy") == 0,
          "the checkpoint scores images");
  }

  TEST("bad input gets a clear error") {
    FILE *f = fopen("build/tcli_short.csv", "w");
    if (f) { fputs("label\n0\n1\n", f); fclose(f); }
    CHECK(run("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_short.csv --out build/tcli_bad 2> build/tcli_err.log") != 0,
          "too few labels must fail");
    CHECK(file_contains("build/tcli_err.log", "2 label rows for 240 images"), "the message counts rows and images");
    f = fopen("build/tcli_badclass.csv", "w");
    if (f) { int i; fputs("label\n", f); for (i = 0; i < 240; i++) fputs(i == 7 ? "5\n" : "1\n", f); fclose(f); }
    CHECK(run("train --arch build/tcli_arch.txt --data build/tcli_images.npy --labels build/tcli_badclass.csv --out build/tcli_bad 2> build/tcli_err.log") != 0,
          "class 5 of 2 must fail");
    CHECK(file_contains("build/tcli_err.log", ":9:"), "the message names the line");
    CHECK(run("train --arch ou66 --data build/tcli_images.npy --labels build/tcli_labels.csv --out build/tcli_bad 2> build/tcli_err.log") != 0,
          "12x12 images for OU-66 must fail");
    CHECK(file_contains("build/tcli_err.log", "1x12x12") && file_contains("build/tcli_err.log", "66"), "the message names both shapes");
    CHECK(run("train --frobnicate 3 2> build/tcli_err.log") != 0 && file_contains("build/tcli_err.log", "--frobnicate"), "unknown option named");
    CHECK(run("train --resume build/does-not-exist 2> build/tcli_err.log") != 0 && file_contains("build/tcli_err.log", "does-not-exist"), "missing checkpoint named");
    {
      /* a damaged checkpoint: an option out of its range must be refused, not obeyed */
      lensnet_safetensors st;
      lensnet_error err;
      if (lensnet_safetensors_read("build/tcli_full/checkpoint.safetensors", &st, &err) == LENSNET_OK) {
        system("mkdir -p build/tcli_bad");
        lensnet_safetensors_set_meta(&st, "train.val_fraction", "2");
        lensnet_safetensors_write("build/tcli_bad/checkpoint.safetensors", &st, &err);
        lensnet_safetensors_free(&st);
        CHECK(run("train --resume build/tcli_bad 2> build/tcli_err.log") != 0 && file_contains("build/tcli_err.log", "val_fraction"),
              "an out-of-range option in a checkpoint is named");
      } else CHECK(0, "read the checkpoint: %s", err.message);
    }
  }
  system("rm -rf build/tcli_*");
  return check_summary();
}
