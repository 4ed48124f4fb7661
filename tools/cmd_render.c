/* lens render: a scene in lenstronomy's model and keyword names -> image (.npy). */
#include "lens_cmds.h"

int lens_cmd_render(int argc, char **argv) {
  (void)argc; (void)argv;
  return lens_fail("render: not built yet");
}
