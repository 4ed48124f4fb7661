/* Survey-scale runs split over job arrays (docs/survey.md).
 *
 * --shard I/N gives shard I of N a contiguous block of the objects: of `total` objects, indices
 * [floor(I total / N), floor((I+1) total / N)), so shards differ in size by at most one object and
 * their outputs, joined in shard order, are the objects in index order.
 *
 * A sharded output carries a manifest, written last and atomically once the output files are
 * complete under their own names: DIR/shard.json for `lens sim --out DIR`, FILE.shard.json for
 * `lens predict --out FILE`. One line of JSON:
 *
 *   {"lens_shard": 1, "command": "sim", "run": "9f0c3e2a51d4b7c8", "shard": 2, "shards": 4,
 *    "first": 50, "end": 75, "total": 100, "files": ["images.npy", "labels.csv"]}
 *
 * A `lens predict --skip-bad` shard that left objects out adds "left_out": K (its files then hold
 * end - first - K rows).
 *
 * `run` names the run the shard belongs to: a 64-bit FNV-1a hash of the command and its
 * arguments, leaving out those that do not change the objects (--shard, --out, --csv, --threads,
 * --batch, --skip-done, --skip-bad: a shard rerun with --skip-bad after a damaged file stopped it
 * joins the others). `files` are relative to the manifest's folder. `lens merge` reads manifests to
 * join shards in order, refusing gaps, overlaps and mixed runs; --skip-done reads them to skip a
 * shard whose output is complete. */
#ifndef LENS_SHARD_H
#define LENS_SHARD_H
#include <stddef.h>
#include "options.h"

typedef struct {
  size_t index, count; /* --shard I/N; count 0: not given */
} lens_shard;

/* LENS_CUSTOM parse function for --shard I/N into the lens_shard at the row's offset. */
int lens_parse_shard(const lens_option *row, const char *label, const char *text, void *opts);

/* Shard s's objects among `total`: [*first, *end). Without a shard: all of them. */
void lens_shard_range(const lens_shard *s, size_t total, size_t *first, size_t *end);

/* The run id of a command line (argv[0] is the command's name): 16 lowercase hex digits. */
void lens_shard_run_id(int argc, char **argv, char out[17]);

#define LENS_SHARD_MAX_FILES 4
typedef struct {
  char command[32], run[17];
  size_t shard, shards, first, end, total;
  size_t left_out;   /* objects of [first, end) with no row (lens predict --skip-bad); written only when not 0 */
  char files[LENS_SHARD_MAX_FILES][256];
  int nfiles;
} lens_shard_manifest;

/* Writes m to path atomically (path.tmp, then rename); 0 or LENS_EXIT_FAIL, said on stderr. */
int lens_shard_manifest_write(const char *path, const lens_shard_manifest *m);
/* Reads path into m: 0; 1 when there is no such file; 2 when it is not a manifest (why says
 * what is wrong, cap bytes). */
int lens_shard_manifest_read(const char *path, lens_shard_manifest *m, char *why, size_t cap);
/* The manifest in NUL-terminated text (what lens_shard_manifest_read does once the file is
 * read; the fuzz target tests/fuzz/fuzz_manifest.c calls it): 0, or 2 with why. Files longer
 * than LENS_SHARD_MANIFEST_MAX - 1 bytes are not manifests. */
#define LENS_SHARD_MANIFEST_MAX 8192
int lens_shard_manifest_parse(const char *text, lens_shard_manifest *m, char *why, size_t cap);

/* --skip-done: 1 when `manifest_path` describes exactly `want` (command, run, shard, range) and
 * every file it names exists in `dir`; 0 otherwise. */
int lens_shard_done(const char *manifest_path, const char *dir, const lens_shard_manifest *want);

#endif
