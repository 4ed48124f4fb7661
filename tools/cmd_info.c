/* lens info: what a model file holds. */
#include "lens_cmds.h"

int lens_cmd_info(int argc, char **argv) {
  (void)argc; (void)argv;
  return lens_fail("info: not built yet");
}
