/* lens predict: lens-finder scores for .npy batches or FITS cutouts. */
#include "lens_cmds.h"

int lens_cmd_predict(int argc, char **argv) {
  (void)argc; (void)argv;
  return lens_fail("predict: not built yet");
}
