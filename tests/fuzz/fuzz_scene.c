/* fuzz_scene.c - lenssim.h's JSON scene reader (lenssim_scene_from_json), what `lens render
 * SCENE.json` reads.
 *
 * Each input is read as a scene; a scene that loads is checked again and rendered when small.
 * Any crash, sanitizer report or leak is a bug; an error result is the expected answer to most
 * inputs, and it must come with a message.
 */
#include "fuzz.h"
#define LENSSIM_IMPLEMENTATION
#include "lenssim.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static lenssim_json_scene sc;
  lenssim_error err;
  if (lenssim_scene_from_json((const char *)data, size, &sc, &err) != LENSSIM_OK) {
    if (!err.message[0]) abort();
    return 0;
  }
  if (lenssim_scene_check(&sc.scene, &err) != LENSSIM_OK) abort();
  if (sc.scene.grid.num_pix <= 32 && (sc.scene.grid.supersampling <= 4)) {
    double image[32 * 32];
    if (lenssim_render(&sc.scene, image, NULL, 0, &err) != LENSSIM_OK && !err.message[0]) abort();
  }
  lenssim_json_scene_free(&sc);
  return 0;
}
