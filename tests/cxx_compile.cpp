// Compiles the headers as C++ (with their implementations) and runs a tiny smoke check.
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#define LENSSIM_IMPLEMENTATION
#include "lenssim.h"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define LENSVIZ_IMPLEMENTATION
#include "lensviz.h"
#include <cstdio>

int main() {
  lensnet_json *doc = 0;
  lensnet_error err;
  const char text[] = "{\"a\": [1, 2.5, true]}";
  int ok = lensnet_json_parse(text, sizeof text - 1, &doc, &err) == LENSNET_OK &&
           lensnet_json_get(doc, "a") && lensnet_json_get(doc, "a")->count == 3;
  lensnet_json_free(doc);
  // lensviz: a colour, a line of text and a GIF in memory
  {
    unsigned char pixels[24 * 10 * 3] = {0}, *gif = 0;
    size_t len = 0;
    lensviz_image img = {pixels, 24, 10, 0};
    lensviz_color c = lensviz_colormap_color(LENSVIZ_CMAP_VIRIDIS, 1.0f);
    ok = ok && c.r == 253 && c.g == 231 && c.b == 37;
    ok = ok && lensviz_draw_text(&img, 0, 0, "ok", 1, c) == 12;
    ok = ok && lensviz_gif_encode(&img, 1, 10, &gif, &len, &err) == LENSNET_OK && len > 800;
    lensviz_free(gif);
  }
  std::printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
  return ok ? 0 : 1;
}
