/* Shards, run ids and shard manifests (tools/shard.h). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <math.h>
#include "shard.h"
#include "cli.h"
#include "lens_cmds.h"

int lens_parse_shard(const lens_option *row, const char *label, const char *v, void *opts) {
  lens_shard *s = (lens_shard *)((char *)opts + row->offset);
  const char *slash = strchr(v, '/');
  char first[32];
  if (slash && (size_t)(slash - v) < sizeof first) {
    memcpy(first, v, (size_t)(slash - v));
    first[slash - v] = 0;
    if (lens_parse_size(first, &s->index) && lens_parse_size(slash + 1, &s->count) && s->count > 0 && s->index < s->count) return 0;
  }
  s->count = 0;
  return lens_usage("%s takes I/N with 0 <= I < N, e.g. 3/16 (Slurm: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT), got '%s'", label, v);
}

/* floor(i * total / n) without overflow for any size_t total and i <= n */
static size_t shard_edge(size_t i, size_t n, size_t total) {
  return (total / n) * i + (total % n) * i / n;
}

void lens_shard_range(const lens_shard *s, size_t total, size_t *first, size_t *end) {
  if (!s || !s->count) { *first = 0; *end = total; return; }
  *first = shard_edge(s->index, s->count, total);
  *end = shard_edge(s->index + 1, s->count, total);
}

/* Options that change where or how fast a shard is made, not which objects it holds. */
static int skipped_option(const char *arg, int *takes_value) {
  static const char *const with_value[] = {"--shard", "--out", "--csv", "--threads", "--batch"};
  size_t i, n;
  *takes_value = 0;
  if (!strcmp(arg, "--skip-done") || !strcmp(arg, "--skip-bad")) return 1; /* the rows a shard has do not depend on them */
  for (i = 0; i < sizeof with_value / sizeof *with_value; i++) {
    n = strlen(with_value[i]);
    if (!strncmp(arg, with_value[i], n) && (arg[n] == 0 || arg[n] == '=')) {
      *takes_value = arg[n] == 0;
      return 1;
    }
  }
  return 0;
}

void lens_shard_run_id(int argc, char **argv, char out[17]) {
  unsigned long long h = 1469598103934665603ull; /* FNV-1a 64 offset basis */
  int i, value;
  for (i = 0; i < argc; i++) {
    const char *p;
    if (i > 0 && skipped_option(argv[i], &value)) { i += value; continue; }
    for (p = argv[i];; p++) { /* each argument with its terminating NUL */
      h ^= (unsigned char)*p;
      h *= 1099511628211ull;
      if (!*p) break;
    }
  }
  snprintf(out, 17, "%016llx", h);
}

int lens_shard_manifest_write(const char *path, const lens_shard_manifest *m) {
  char tmp[4200];
  FILE *f = lens_text_open(path, tmp, sizeof tmp);
  int i;
  if (!f) return LENS_EXIT_FAIL;
  fprintf(f, "{\"lens_shard\": 1, \"command\": ");
  lens_json_string(f, m->command);
  fprintf(f, ", \"run\": \"%s\", \"shard\": %lu, \"shards\": %lu, \"first\": %lu, \"end\": %lu, \"total\": %lu, \"files\": [", m->run,
          (unsigned long)m->shard, (unsigned long)m->shards, (unsigned long)m->first, (unsigned long)m->end, (unsigned long)m->total);
  for (i = 0; i < m->nfiles; i++) {
    if (i) fputs(", ", f);
    lens_json_string(f, m->files[i]);
  }
  fputs("]", f);
  if (m->left_out) fprintf(f, ", \"left_out\": %lu", (unsigned long)m->left_out);
  fputs("}\n", f);
  return lens_text_commit(f, tmp, path);
}

/* ---- reading (lensnet_json_parse): an object of strings, whole numbers and one array of strings ---- */

/* A member's text into out (at most cap - 1 bytes, no NUL inside); 0 with a reason otherwise. */
static int member_string(const lensnet_json *v, const char *key, char *out, size_t cap, char *why, size_t why_cap) {
  if (v->type != LENSNET_JSON_STRING) { snprintf(why, why_cap, "\"%s\" must be a string", key); return 0; }
  if (v->string_len >= cap || strlen(v->string) != v->string_len) { snprintf(why, why_cap, "\"%s\": string too long or holding a NUL", key); return 0; }
  memcpy(out, v->string, v->string_len + 1);
  return 1;
}

/* A member's whole number (0 to 2^53) into out; 0 with a reason otherwise. */
static int member_size(const lensnet_json *v, const char *key, size_t *out, char *why, size_t why_cap) {
  if (v->type != LENSNET_JSON_NUMBER || !(v->number >= 0 && v->number <= 9007199254740992.0) || v->number != floor(v->number) ||
      v->number > (double)(size_t)-1) {
    snprintf(why, why_cap, "\"%s\" must be a whole number", key);
    return 0;
  }
  *out = (size_t)v->number;
  return 1;
}

int lens_shard_manifest_read(const char *path, lens_shard_manifest *m, char *why, size_t cap) {
  char text[LENS_SHARD_MANIFEST_MAX];
  size_t len;
  FILE *f = fopen(path, "r");
  memset(m, 0, sizeof *m);
  if (!f) return 1;
  len = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[len] = 0;
  if (len == sizeof text - 1) { snprintf(why, cap, "too long for a shard manifest"); return 2; }
  return lens_shard_manifest_parse(text, m, why, cap);
}

int lens_shard_manifest_parse(const char *text, lens_shard_manifest *m, char *why, size_t cap) {
  static const char *const keys[] = {"lens_shard", "command", "run", "shard", "shards", "first", "end", "total", "files", "left_out"};
  lensnet_json *doc = NULL;
  lensnet_error err;
  size_t version = 0, i, k;
  unsigned seen = 0;
  int ok = 1;
  memset(m, 0, sizeof *m);
  if (lensnet_json_parse(text, strlen(text), &doc, &err) != LENSNET_OK) { snprintf(why, cap, "%s", err.message); return 2; }
  if (doc->type != LENSNET_JSON_OBJECT) { lensnet_json_free(doc); snprintf(why, cap, "not a JSON object"); return 2; }
  for (i = 0; i < doc->count && ok; i++) {
    const lensnet_json *v = &doc->items[i];
    for (k = 0; k < sizeof keys / sizeof keys[0] && strcmp(v->key, keys[k]); k++) continue;
    if (k < 9) seen |= 1u << k;
    switch (k) {
      case 0: ok = member_size(v, v->key, &version, why, cap); break;
      case 1: ok = member_string(v, v->key, m->command, sizeof m->command, why, cap); break;
      case 2: ok = member_string(v, v->key, m->run, sizeof m->run, why, cap); break;
      case 3: ok = member_size(v, v->key, &m->shard, why, cap); break;
      case 4: ok = member_size(v, v->key, &m->shards, why, cap); break;
      case 5: ok = member_size(v, v->key, &m->first, why, cap); break;
      case 6: ok = member_size(v, v->key, &m->end, why, cap); break;
      case 7: ok = member_size(v, v->key, &m->total, why, cap); break;
      case 9: ok = member_size(v, v->key, &m->left_out, why, cap); break;
      case 8: {
        size_t f;
        if (v->type != LENSNET_JSON_ARRAY) { snprintf(why, cap, "\"files\" must be an array"); ok = 0; break; }
        if (v->count > LENS_SHARD_MAX_FILES) { snprintf(why, cap, "more than %d files", LENS_SHARD_MAX_FILES); ok = 0; break; }
        for (f = 0; f < v->count && ok; f++) {
          ok = member_string(&v->items[f], "files", m->files[f], sizeof m->files[0], why, cap);
          if (ok && (!m->files[f][0] || strchr(m->files[f], '/'))) { snprintf(why, cap, "a file name must be plain"); ok = 0; }
        }
        m->nfiles = (int)v->count;
        break;
      }
      default: snprintf(why, cap, "unknown key \"%.40s\"", v->key); ok = 0;
    }
  }
  lensnet_json_free(doc);
  if (!ok) return 2;
  if (seen != 511) { snprintf(why, cap, "a key is missing (lens_shard, command, run, shard, shards, first, end, total, files)"); return 2; }
  if (version != 1) { snprintf(why, cap, "version %lu (this build reads 1)", (unsigned long)version); return 2; }
  if (strlen(m->run) != 16 || strspn(m->run, "0123456789abcdef") != 16) { snprintf(why, cap, "\"run\" is not 16 hex digits"); return 2; }
  if (!m->shards || m->shard >= m->shards || m->first > m->end || m->end > m->total || !m->nfiles || m->left_out > m->end - m->first) {
    snprintf(why, cap, "inconsistent shard %lu/%lu, objects %lu-%lu of %lu%s", (unsigned long)m->shard, (unsigned long)m->shards,
             (unsigned long)m->first, (unsigned long)m->end, (unsigned long)m->total,
             m->left_out > m->end - m->first ? ", more left out than it holds" : "");
    return 2;
  }
  return 0;
}

int lens_shard_done(const char *manifest_path, const char *dir, const lens_shard_manifest *want) {
  lens_shard_manifest have;
  char why[256], path[4400];
  struct stat st;
  int i;
  if (lens_shard_manifest_read(manifest_path, &have, why, sizeof why) != 0) return 0;
  if (strcmp(have.command, want->command) || strcmp(have.run, want->run) || have.shard != want->shard || have.shards != want->shards ||
      have.first != want->first || have.end != want->end || have.total != want->total || have.nfiles != want->nfiles)
    return 0;
  for (i = 0; i < have.nfiles; i++) {
    if (strcmp(have.files[i], want->files[i])) return 0;
    snprintf(path, sizeof path, "%s/%s", dir, have.files[i]);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  }
  return 1;
}
