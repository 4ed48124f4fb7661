/* Shards, run ids and shard manifests (tools/shard.h). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
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

/* ---- reading: a flat JSON object of strings, whole numbers and one array of strings ---------- */
typedef struct { const char *p; char *why; size_t cap; } mreader;

static void skip_ws(mreader *r) { while (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r') r->p++; }

static int bad(mreader *r, const char *what) {
  snprintf(r->why, r->cap, "%s", what);
  return 0;
}

static int read_string(mreader *r, char *out, size_t cap) {
  size_t n = 0;
  skip_ws(r);
  if (*r->p != '"') return bad(r, "expected a string");
  for (r->p++; *r->p && *r->p != '"'; r->p++) {
    char c = *r->p;
    if (c == '\\') {
      r->p++;
      if (*r->p == 'u') { /* only the control characters the writer escapes */
        unsigned v = 0;
        int k;
        /* exactly four hex digits: sscanf's %4x took fewer (or a sign, or blanks) and the skip of
         * four then stepped over the string's end */
        for (k = 1; k <= 4; k++) {
          char h = r->p[k];
          if (h >= '0' && h <= '9') v = v * 16 + (unsigned)(h - '0');
          else if ((h | 0x20) >= 'a' && (h | 0x20) <= 'f') v = v * 16 + (unsigned)((h | 0x20) - 'a' + 10);
          else return bad(r, "unsupported escape");
        }
        if (v >= 0x20) return bad(r, "unsupported escape");
        c = (char)v;
        r->p += 4;
      } else if (*r->p == '"' || *r->p == '\\' || *r->p == '/') c = *r->p;
      else return bad(r, "unsupported escape");
    }
    if (n + 1 >= cap) return bad(r, "string too long");
    out[n++] = c;
  }
  if (*r->p != '"') return bad(r, "unterminated string");
  r->p++;
  out[n] = 0;
  return 1;
}

static int read_size(mreader *r, size_t *out) {
  char *end;
  unsigned long long v;
  skip_ws(r);
  if (*r->p < '0' || *r->p > '9') return bad(r, "expected a whole number");
  errno = 0;
  v = strtoull(r->p, &end, 10);
  if (errno || v > (size_t)-1) return bad(r, "number out of range");
  r->p = end;
  *out = (size_t)v;
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
  char key[64];
  size_t version = 0;
  unsigned seen = 0;
  mreader r;
  memset(m, 0, sizeof *m);
  r.p = text; r.why = why; r.cap = cap;
  skip_ws(&r);
  if (*r.p != '{') { snprintf(why, cap, "not a JSON object"); return 2; }
  r.p++;
  for (;;) {
    skip_ws(&r);
    if (*r.p == '}') break;
    if (!read_string(&r, key, sizeof key)) return 2;
    skip_ws(&r);
    if (*r.p != ':') { snprintf(why, cap, "expected ':' after \"%s\"", key); return 2; }
    r.p++;
    if (!strcmp(key, "lens_shard")) { if (!read_size(&r, &version)) return 2; seen |= 1; }
    else if (!strcmp(key, "command")) { if (!read_string(&r, m->command, sizeof m->command)) return 2; seen |= 2; }
    else if (!strcmp(key, "run")) { if (!read_string(&r, m->run, sizeof m->run)) return 2; seen |= 4; }
    else if (!strcmp(key, "shard")) { if (!read_size(&r, &m->shard)) return 2; seen |= 8; }
    else if (!strcmp(key, "shards")) { if (!read_size(&r, &m->shards)) return 2; seen |= 16; }
    else if (!strcmp(key, "first")) { if (!read_size(&r, &m->first)) return 2; seen |= 32; }
    else if (!strcmp(key, "end")) { if (!read_size(&r, &m->end)) return 2; seen |= 64; }
    else if (!strcmp(key, "total")) { if (!read_size(&r, &m->total)) return 2; seen |= 128; }
    else if (!strcmp(key, "left_out")) { if (!read_size(&r, &m->left_out)) return 2; }
    else if (!strcmp(key, "files")) {
      skip_ws(&r);
      if (*r.p != '[') { snprintf(why, cap, "\"files\" must be an array"); return 2; }
      r.p++;
      skip_ws(&r);
      while (*r.p != ']') {
        if (m->nfiles == LENS_SHARD_MAX_FILES) { snprintf(why, cap, "more than %d files", LENS_SHARD_MAX_FILES); return 2; }
        if (!read_string(&r, m->files[m->nfiles], sizeof m->files[0])) return 2;
        if (!m->files[m->nfiles][0] || strchr(m->files[m->nfiles], '/')) { snprintf(why, cap, "a file name must be plain"); return 2; }
        m->nfiles++;
        skip_ws(&r);
        if (*r.p == ',') { r.p++; skip_ws(&r); }
        else if (*r.p != ']') { snprintf(why, cap, "expected ',' or ']' in \"files\""); return 2; }
      }
      r.p++;
      seen |= 256;
    } else { snprintf(why, cap, "unknown key \"%s\"", key); return 2; }
    skip_ws(&r);
    if (*r.p == ',') r.p++;
    else if (*r.p != '}') { snprintf(why, cap, "expected ',' or '}' after \"%s\"", key); return 2; }
  }
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
