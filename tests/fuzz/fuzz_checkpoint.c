/* fuzz_checkpoint.c - training checkpoints: lensnet_checkpoint_load (weights, metadata, the
 * optimiser's moments and train.optimizer_step, the random streams train.data_rng and
 * train.dropout_rng) and what `lens train --resume` reads besides (lensnet_fit_resume): every
 * train.SETTING, train.epoch, train.best_val_loss and train.history.
 *
 * lensnet_checkpoint_load takes a path, so the input is written to a file first (fuzz_file.h). The
 * resume path trains right after reading, so its two reading steps (static functions of
 * lensnet.h's implementation, which this file includes) are called on their own. The model is
 * FUZZ_SMALL_ARCH, as the seeds in tests/fuzz/corpus/checkpoint were saved (make_corpus.c).
 * A refusal must come with a message.
 */
#define _POSIX_C_SOURCE 200809L /* mkstemp */
#include "fuzz.h"
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "fuzz_model.h"
#include "fuzz_file.h"

/* What lensnet_fit_resume reads before it trains. */
static void resume_state(const uint8_t *data, size_t size, lensnet_model *m, lensnet_optimizer *opt, lensnet_trainer *t) {
  lensnet_safetensors st;
  lensnet_fit_desc d;
  lensnet__fit f;
  lensnet_error err;
  if (lensnet_safetensors_read_memory(data, size, &st, &err) != LENSNET_OK) return;
  memset(&d, 0, sizeof d);
  if (lensnet__fit_desc_from_meta(&st, &d, &err) == LENSNET_OK) {
    /* the settings read are in their ranges: format gives them back */
    size_t i, n;
    const lensnet_fit_setting *s = lensnet_fit_settings(&n);
    char text[512];
    for (i = 0; i < n; i++) lensnet_fit_setting_format(&d, &s[i], text, sizeof text);
  } else if (!err.message[0]) {
    abort();
  }
  memset(&f, 0, sizeof f);
  f.m = m; f.opt = opt; f.t = t;
  if (lensnet__fit_restore(&f, &st, &err) == LENSNET_OK) {
    if (f.epoch < 0 || !f.history || strlen(f.history) != f.history_len) abort();
  } else if (!err.message[0]) {
    abort();
  }
  LENSNET_FREE(f.history);
  lensnet_safetensors_free(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lensnet_model *m = NULL;
  lensnet_optimizer *opt = NULL;
  lensnet_trainer *t = NULL;
  lensnet_optimizer_desc od;
  lensnet_trainer_desc td;
  lensnet_rng data_rng;
  lensnet_error err;
  const char *path;
  memset(&od, 0, sizeof od);
  od.type = LENSNET_OPT_ADAM;
  memset(&td, 0, sizeof td);
  td.batch_cap = 1;
  /* a fresh model each time: a checkpoint's metadata is copied into it */
  if (lensnet_model_create(FUZZ_SMALL_ARCH, &m, &err) != LENSNET_OK || lensnet_optimizer_create(&od, m, &opt, &err) != LENSNET_OK ||
      lensnet_trainer_create(m, &td, &t, &err) != LENSNET_OK)
    abort();
  if ((path = fuzz_input_file(data, size)) != NULL) {
    if (lensnet_checkpoint_load(path, m, opt, t, &data_rng, &err) == LENSNET_OK) {
      if (opt->count != m->value_count) abort();
      (void)fuzz_model_run(m, opt->step);
    } else if (!err.message[0]) {
      abort();
    }
  }
  resume_state(data, size, m, opt, t);
  lensnet_trainer_free(t);
  lensnet_optimizer_free(opt);
  lensnet_model_free(m);
  return 0;
}
