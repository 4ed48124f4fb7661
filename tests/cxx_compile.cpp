// Compiles the headers as C++ (with their implementations) and runs a tiny smoke check.
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#define LENSSIM_IMPLEMENTATION
#include "lenssim.h"
#include <cstdio>

int main() {
  lensnet_json *doc = 0;
  lensnet_error err;
  const char text[] = "{\"a\": [1, 2.5, true]}";
  int ok = lensnet_json_parse(text, sizeof text - 1, &doc, &err) == LENSNET_OK &&
           lensnet_json_get(doc, "a") && lensnet_json_get(doc, "a")->count == 3;
  lensnet_json_free(doc);
  std::printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
  return ok ? 0 : 1;
}
