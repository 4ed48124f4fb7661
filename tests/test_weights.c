/* The shipped weights: weights/ou66-sim.safetensors loads, is the OU-66 architecture, and still
 * finds lenses in a fresh simulated sample it never saw (its model card reports accuracy 0.931 on
 * 2000 objects; 200 objects here, so the bar of 0.85 leaves room for sampling noise, about 0.02). */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"
#include <string.h>

static const char *lens_binary(void) {
  const char *l = getenv("LENS");
  return l && *l ? l : "build/lens";
}

int main(void) {
  lensnet_model *m = NULL;
  lensnet_error err;
  char cmd[2048];
  TEST("the shipped OU-66 loads with its architecture and metadata") {
    CHECK(lensnet_model_load("weights/ou66-sim.safetensors", &m, &err) == LENSNET_OK, "%s", err.message);
    if (m) {
      CHECK(m->in_c == 4 && m->in_h == 66 && m->in_w == 66 && m->out_features == 2, "OU-66 shapes");
      CHECK(lensnet_model_parameter_count(m) == 203192, "OU-66 parameter count");
      CHECK(lensnet_model_meta(m, "classes") && !strcmp(lensnet_model_meta(m, "classes"), "non-lens,lens"), "class names");
      lensnet_model_free(m);
    }
  }
  TEST("it finds lenses in a fresh simulated sample") {
    FILE *scores, *labels;
    char a[4096], b[4096];
    int n = 0, correct = 0;
    snprintf(cmd, sizeof cmd, "rm -rf build/tw && %s sim --preset euclid-lensfinding --n 200 --seed 3 --out build/tw 2>/dev/null && "
             "%s predict --model weights/ou66-sim.safetensors --minmax build/tw/images.npy > build/tw/scores.csv 2>/dev/null",
             lens_binary(), lens_binary());
    CHECK(system(cmd) == 0, "lens sim and lens predict");
    scores = fopen("build/tw/scores.csv", "r");
    labels = fopen("build/tw/labels.csv", "r");
    if (scores && labels && fgets(a, sizeof a, scores) && fgets(b, sizeof b, labels)) {
      while (fgets(a, sizeof a, scores) && fgets(b, sizeof b, labels)) {
        const char *pa = strchr(a, ','), *pb = strchr(b, ',');
        if (!pa || !pb) break;
        correct += (atof(pa + 1) >= 0.5) == (atoi(pb + 1) == 1);
        n++;
      }
    }
    if (scores) fclose(scores);
    if (labels) fclose(labels);
    printf("   accuracy %.3f on %d objects\n", n ? (double)correct / n : 0.0, n);
    CHECK(n == 200 && correct >= 170, "accuracy %d/%d below 0.85", correct, n);
    system("rm -rf build/tw");
  }
  return check_summary();
}
