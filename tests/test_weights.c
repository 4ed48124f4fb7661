/* The shipped weights: weights/ou66-sim.safetensors loads and is the OU-66 architecture with its
 * metadata. tests/test_cli_predict.c checks that it still finds lenses in a fresh simulated
 * sample it never saw. */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"
#include <string.h>

static void test_shipped_ou66(void) {
  lensnet_model *m = NULL;
  lensnet_error err;
  CHECK(lensnet_model_load("weights/ou66-sim.safetensors", &m, &err) == LENSNET_OK, "%s", err.message);
  if (m) {
    CHECK(m->in_c == 4 && m->in_h == 66 && m->in_w == 66 && m->out_features == 2, "OU-66 shapes");
    CHECK(lensnet_model_parameter_count(m) == 203192, "OU-66 parameter count");
    CHECK(lensnet_model_meta(m, "classes") && !strcmp(lensnet_model_meta(m, "classes"), "non-lens,lens"), "class names");
    lensnet_model_free(m);
  }
}

int main(void) {
  TEST("the shipped OU-66 loads with its architecture and metadata") test_shipped_ou66();
  return check_summary();
}
