/* fuzz_manifest.c - the shard manifests `lens merge` and `--skip-done` read (tools/shard.c,
 * lens_shard_manifest_parse): FILE.shard.json and DIR/shard.json, which a user may carry between
 * machines and edit.
 *
 * The tool's source is compiled in (tools/shard.c, with lensnet.h's implementation, whose JSON
 * reader it uses), with stand-ins for the few functions of the rest of the tool it refers to: none of them is reached from the parser, and each aborts if it
 * is. A manifest that parses must be consistent (shard < shards, first <= end <= total, 1 to
 * LENS_SHARD_MAX_FILES plain file names); a refusal must say why.
 */
#include "fuzz.h"
#define LENSNET_IMPLEMENTATION /* the parser reads the manifest with lensnet_json_parse */
#include "../../tools/shard.c"

int lens_parse_size(const char *text, size_t *out) { (void)text; (void)out; abort(); }
int lens_usage(const char *fmt, ...) { (void)fmt; abort(); }
FILE *lens_text_open(const char *path, char *tmp, size_t cap) { (void)path; (void)tmp; (void)cap; abort(); }
int lens_text_commit(FILE *f, const char *tmp, const char *path) { (void)f; (void)tmp; (void)path; abort(); }
void lens_json_string(FILE *f, const char *s) { (void)f; (void)s; abort(); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text, why[128];
  lens_shard_manifest m;
  int i;
  /* as lens_shard_manifest_read hands it over (at most its buffer, NUL-terminated), in a block
   * of exactly that size, so that ASan sees a read past the NUL */
  if (size > LENS_SHARD_MANIFEST_MAX - 1) size = LENS_SHARD_MANIFEST_MAX - 1;
  if (!(text = (char *)malloc(size + 1))) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  why[0] = 0;
  if (lens_shard_manifest_parse(text, &m, why, sizeof why) == 0) {
    if (m.shard >= m.shards || m.first > m.end || m.end > m.total || m.nfiles < 1 || m.nfiles > LENS_SHARD_MAX_FILES) abort();
    for (i = 0; i < m.nfiles; i++)
      if (!m.files[i][0] || strchr(m.files[i], '/')) abort();
  } else if (!why[0]) {
    abort();
  }
  free(text);
  return 0;
}
