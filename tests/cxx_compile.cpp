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
  // a CSV table and an evaluation: lenses 0.9 0.4 against non-lenses 0.4 0.1 win 1 + 1 + 0.5 + 1 of 4
  {
    lensnet_csv table;
    const char csv[] = "index,p_lens,label\n0,0.9,1\n1,0.4,1\n2,0.4,0\n3,0.1,0";
    float scores[4];
    int labels[4];
    size_t r;
    double v;
    lensviz_eval_result res;
    ok = ok && lensnet_csv_read_memory(csv, sizeof csv - 1, &table, &err) == LENSNET_OK && table.rows == 5;
    for (r = 1; ok && r < table.rows; r++) {
      ok = lensnet_csv_number(&table, r, 1, &v, &err) == LENSNET_OK;
      scores[r - 1] = (float)v;
      ok = ok && lensnet_csv_number(&table, r, 2, &v, &err) == LENSNET_OK;
      labels[r - 1] = (int)v;
    }
    lensnet_csv_free(&table);
    ok = ok && lensviz_eval_binary(scores, labels, 0, 4, 0.5, 0, &res, &err) == LENSNET_OK && res.auc == 0.875;
  }
  std::printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
  return ok ? 0 : 1;
}
