/* lens merge: the shards of a `lens sim --shard`, `lens predict --shard` or `lens find --shard`
 * run joined into the files one run without --shard writes, byte for byte (tools/shard.h).
 *
 * A shard is a folder holding shard.json (lens sim, lens find: every file its manifest lists is
 * merged into OUT/ under the same name) or a file FILE beside FILE.shard.json (lens predict:
 * merged into the file OUT). A find shard's manifest counts fields, and its detections.csv holds
 * any number of rows per field, so its rows are joined in shard order without the row count
 * check; the ranges are checked as for the others. Its maps and overview pictures
 * (pmap_NAME.npy, overview_NAME.png) are not in the manifest and stay in the shard folders: they
 * are one file per field already, named after the field. A sim shard's fits/ and png/ folders
 * (one file per object, named by its number in the run) are copied into OUT/. The manifests must come from one run (command, run id, shard count, object count,
 * files), and their ranges, ordered by `first`, must cover objects 0 to total - 1 once each.
 *   .csv  the header, the same in every shard, once; then each shard's rows, one per object;
 *   .npy  one header for the whole shape, then each shard's data section, copied in chunks.
 * Everything but the CSV row counts is checked before anything is written; the row counts are
 * checked while copying. Each output goes to NAME.tmp beside it and is renamed into place only
 * once every output is complete, so a failed merge leaves an earlier OUT as it was. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include "lens_cmds.h"
#include "cli.h"
#include "options.h"
#include "shard.h"

#define MERGE_PATH_MAX 4200
#define MERGE_CHUNK (1u << 20)          /* bytes per read while copying */
#define MERGE_CSV_HEADER_MAX (1u << 20) /* a longer first line is not a CSV header */
#define MERGE_NPY_HEADER_MAX 65536      /* the most a version 1.0 header can say */

typedef struct {
  const char *out;
  char **shards;
  int nshards;
} merge_args;

static const lens_option merge_rows[] = {
  LENS_TEXT(merge_args, "out", LENS_OPT_REQUIRED, out, NULL, "OUT", "sim and find shards: the folder receiving the merged files (created if missing);\n"
            "predict shards: the merged file, with the shards' extension (.csv or .npy)"),
  LENS_ARGS(merge_args, "SHARD", LENS_OPT_REQUIRED, shards, nshards, "a `lens sim --shard` or `lens find --shard` folder (holding shard.json), or a\n"
            "`lens predict --shard` file FILE (beside FILE.shard.json); every shard of the run, in any order"),
};
static const lens_option_section merge_sections[] = {{NULL, merge_rows, 2}};
static const lens_command_spec merge_spec = {
  "merge", "usage: lens merge --out OUT SHARD...\n",
  "\nJoins the shards of one `lens sim --shard I/N`, `lens predict --shard I/N` or `lens find --shard I/N`\n"
  "run into the files a single run writes, byte for byte: CSV headers once and the rows in object\n"
  "order, .npy data under one header for the whole shape, lens sim's fits/ and png/ files copied.\n"
  "Refused: shards of different runs, a missing or repeated shard, a file whose rows disagree with\n"
  "its manifest (lens find: its detections.csv may hold any number of rows per field; its maps and\n"
  "pictures stay in the shards).\n",
  NULL, merge_sections, 1,
  "Each output is written under a temporary name and renamed once all are complete: a failed\n"
  "merge leaves an existing OUT untouched. Exit status: 0 done, 1 failure (a file), 2 usage error.\n"};

typedef struct {
  const char *path;                  /* as given */
  char manifest_path[MERGE_PATH_MAX];
  lens_shard_manifest m;
} merge_shard;

/* What a .npy header says, and the merged file's header. */
typedef struct {
  char descr[32];                    /* the dtype as written, e.g. <f4 */
  int ndim;
  size_t shape[LENSNET_MAX_DIMS];
  size_t header_bytes, row_bytes;    /* bytes before the data; bytes per index of the first axis */
} merge_npy;

/* One output file: the same name in every shard. */
typedef struct {
  const char *name;                  /* the manifest's file name */
  lens_format fmt;
  char path[MERGE_PATH_MAX], tmp[MERGE_PATH_MAX + 8];
  merge_npy npy;                     /* .npy: the first shard's header */
  size_t npy_min_header;             /* .npy: the longest shard header, the least the merged one takes */
  char *csv_header;                  /* .csv: the first shard's header line, with its '\n' */
  size_t csv_header_len;
  int pending;                       /* complete under tmp, not yet renamed */
} merge_output;

static unsigned long ul(size_t v) { return (unsigned long)v; }

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* The path of output o's file in shard s. */
static const char *shard_file(const merge_shard *s, int folders, const merge_output *o, char *buf, size_t cap) {
  if (folders) snprintf(buf, cap, "%s/%s", s->path, o->name);
  else snprintf(buf, cap, "%s", s->path);
  return buf;
}

/* ---- manifests ------------------------------------------------------------------------------- */

/* Shard s's manifest: DIR/shard.json of a folder, FILE.shard.json of a file. */
static int read_manifest(merge_shard *s, int folder) {
  char why[256];
  int rc;
  if ((size_t)snprintf(s->manifest_path, sizeof s->manifest_path, folder ? "%s/shard.json" : "%s.shard.json", s->path) >= sizeof s->manifest_path)
    return lens_fail("%s: path too long", s->path);
  rc = lens_shard_manifest_read(s->manifest_path, &s->m, why, sizeof why);
  if (rc == 1)
    return lens_fail("%s has no shard manifest (%s): not a --shard output, or its shard did not finish", s->path, s->manifest_path);
  if (rc) return lens_fail("%s: not a shard manifest: %s", s->manifest_path, why);
  if (!folder && (s->m.nfiles != 1 || strcmp(s->m.files[0], base_name(s->path))))
    return lens_fail("%s describes %s%s, not %s", s->manifest_path, s->m.files[0], s->m.nfiles > 1 ? " and more" : "", base_name(s->path));
  return 0;
}

/* Every shard's manifest, each shard of the kind of the first (folder or file). */
static int read_manifests(merge_shard *shards, int n, int folders) {
  struct stat st;
  int i;
  for (i = 0; i < n; i++) {
    if (stat(shards[i].path, &st) != 0) return lens_fail("%s: %s", shards[i].path, strerror(errno));
    if (!S_ISDIR(st.st_mode) != !folders)
      return lens_fail("%s is a %s but %s is a %s: the shards of one run are all folders (lens sim, lens find) or all files (lens predict)",
                       shards[0].path, folders ? "folder" : "file", shards[i].path, folders ? "file" : "folder");
    if (read_manifest(&shards[i], folders)) return LENS_EXIT_FAIL;
  }
  return 0;
}

/* What differs between two shards of what should be one run, or NULL. Folders hold files of the
 * same names; files (named as each job chose) are of the same format. */
static const char *run_difference(const merge_shard *sa, const merge_shard *sb, int folders, char *buf, size_t cap) {
  const lens_shard_manifest *a = &sa->m, *b = &sb->m;
  int k;
  if (strcmp(a->command, b->command)) snprintf(buf, cap, "made by lens %s vs lens %s", a->command, b->command);
  else if (a->shards != b->shards) snprintf(buf, cap, "split into %lu vs %lu shards", ul(a->shards), ul(b->shards));
  else if (a->total != b->total) snprintf(buf, cap, "%lu vs %lu objects in all", ul(a->total), ul(b->total));
  else if (strcmp(a->run, b->run)) snprintf(buf, cap, "run %s vs %s (other options or inputs)", a->run, b->run);
  else if (!folders) {
    if (lens_format_of(sa->path) == lens_format_of(sb->path)) return NULL;
    snprintf(buf, cap, "files of two formats");
  } else if (a->nfiles != b->nfiles) snprintf(buf, cap, "%d vs %d files", a->nfiles, b->nfiles);
  else {
    for (k = 0; k < a->nfiles && !strcmp(a->files[k], b->files[k]); k++) continue;
    if (k == a->nfiles) return NULL;
    snprintf(buf, cap, "file %s vs %s", a->files[k], b->files[k]);
  }
  return buf;
}

/* One run; each shard holding the range --shard I/N gives its number. */
static int check_run(const merge_shard *shards, int n, int folders) {
  char what[256];
  size_t first, end;
  int i;
  for (i = 0; i < n; i++) {
    const lens_shard_manifest *m = &shards[i].m;
    lens_shard s;
    if (i && run_difference(&shards[0], &shards[i], folders, what, sizeof what))
      return lens_fail("%s and %s are not shards of the same run: %s", shards[0].path, shards[i].path, what);
    s.index = m->shard;
    s.count = m->shards;
    lens_shard_range(&s, m->total, &first, &end);
    if (m->first != first || m->end != end)
      return lens_fail("%s: shard %lu/%lu of %lu objects holds objects [%lu, %lu), but its manifest says [%lu, %lu)", shards[i].manifest_path,
                       ul(m->shard), ul(m->shards), ul(m->total), ul(first), ul(end), ul(m->first), ul(m->end));
  }
  return 0;
}

static int by_first(const void *pa, const void *pb) {
  const lens_shard_manifest *a = &((const merge_shard *)pa)->m, *b = &((const merge_shard *)pb)->m;
  if (a->first != b->first) return a->first < b->first ? -1 : 1;
  return a->shard < b->shard ? -1 : a->shard > b->shard;
}

/* Objects [from, to) in no shard: which shards would have held them. */
static int gap(const lens_shard_manifest *m, size_t from, size_t to, const char *where) {
  size_t i, lo = (size_t)-1, hi = 0, first, end;
  char objects[96], missing[96];
  for (i = 0; i < m->shards; i++) {
    lens_shard s;
    s.index = i;
    s.count = m->shards;
    lens_shard_range(&s, m->total, &first, &end);
    if (first < to && end > from) { if (lo == (size_t)-1) lo = i; hi = i; }
  }
  if (to - from == 1) snprintf(objects, sizeof objects, "object %lu is", ul(from));
  else snprintf(objects, sizeof objects, "objects %lu to %lu are", ul(from), ul(to - 1));
  if (lo == hi) snprintf(missing, sizeof missing, "shard %lu/%lu", ul(lo), ul(m->shards));
  else snprintf(missing, sizeof missing, "shards %lu/%lu to %lu/%lu", ul(lo), ul(m->shards), ul(hi), ul(m->shards));
  return lens_fail("%s in no shard (%s): %s missing?", objects, where, missing);
}

/* Sorted by first object, the shards must hold objects 0 to total - 1 once each. Their ranges
 * are those of their numbers (check_run), so two overlap only when they are the same shard. */
static int check_cover(merge_shard *shards, int n) {
  char where[MERGE_PATH_MAX + 64];
  size_t next = 0, total = shards[0].m.total;
  int i;
  qsort(shards, (size_t)n, sizeof *shards, by_first);
  for (i = 0; i < n; i++) {
    const lens_shard_manifest *m = &shards[i].m;
    if (i && m->shard == shards[i - 1].m.shard)
      return lens_fail("%s and %s overlap: both are shard %lu/%lu, objects [%lu, %lu) (a shard given twice?)", shards[i - 1].path,
                       shards[i].path, ul(m->shard), ul(m->shards), ul(m->first), ul(m->end));
    if (m->first > next) {
      if (i) snprintf(where, sizeof where, "between %s and %s", shards[i - 1].path, shards[i].path);
      else snprintf(where, sizeof where, "the first shard given, %s, holds objects [%lu, %lu)", shards[i].path, ul(m->first), ul(m->end));
      return gap(m, next, m->first, where);
    }
    next = m->end;
  }
  if (next < total) {
    snprintf(where, sizeof where, "the last shard given, %s, holds objects [%lu, %lu)", shards[n - 1].path, ul(shards[n - 1].m.first), ul(next));
    return gap(&shards[n - 1].m, next, total, where);
  }
  return 0;
}

/* ---- .npy headers ---------------------------------------------------------------------------- */

/* Just after 'key': in a header dictionary, or NULL. */
static const char *npy_field(const char *dict, const char *key) {
  size_t k = strlen(key);
  const char *p;
  for (p = dict; (p = strstr(p, key)) != NULL; p += k)
    if (p > dict && (p[-1] == '\'' || p[-1] == '"') && p[k] == p[-1]) {
      p += k + 1;
      while (*p == ' ' || *p == ':') p++;
      return p;
    }
  return NULL;
}

/* Bytes per element of a plain dtype such as <f4, |u1, <U10 or <M8[ns]; 0 for others (objects,
 * structured dtypes). */
static size_t npy_item_bytes(const char *descr) {
  const char *p = descr;
  size_t n = 0;
  char kind;
  if (*p == '<' || *p == '>' || *p == '|' || *p == '=') p++;
  kind = *p;
  if (!kind || !strchr("biufcmMSUV", kind)) return 0;
  for (p++; *p >= '0' && *p <= '9' && n < 100000; p++) n = n * 10 + (size_t)(*p - '0');
  if (*p && *p != '[') return 0;
  return kind == 'U' ? 4 * n : n; /* U: UCS-4 characters */
}

static int npy_bad(const char *path, const char *what) { return lens_fail("%s: not a .npy file this can merge: %s", path, what); }

/* The header dictionary of the .npy file path (versions 1 to 3), malloc'd into *dict, and the
 * bytes before the data into h->header_bytes. */
static int npy_read_dict(const char *path, merge_npy *h, char **dict) {
  unsigned char pre[12];
  size_t len;
  int wide, rc = 0;
  FILE *f = fopen(path, "rb");
  *dict = NULL;
  if (!f) return lens_fail("%s: %s", path, strerror(errno));
  if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) || pre[6] < 1 || pre[6] > 3) rc = npy_bad(path, "no .npy header");
  wide = !rc && pre[6] > 1;
  if (wide && fread(pre + 10, 1, 2, f) != 2) rc = npy_bad(path, "truncated header");
  len = rc ? 0 : wide ? (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24 : (size_t)pre[8] | (size_t)pre[9] << 8;
  if (!rc && len >= MERGE_NPY_HEADER_MAX) rc = npy_bad(path, "header longer than 64 KiB");
  if (!rc && !(*dict = (char *)malloc(len + 1))) rc = lens_fail("out of memory");
  if (!rc && fread(*dict, 1, len, f) != len) rc = npy_bad(path, "truncated header");
  fclose(f);
  if (rc) { free(*dict); *dict = NULL; return rc; }
  (*dict)[len] = 0;
  h->header_bytes = (wide ? 12 : 10) + len;
  return 0;
}

/* The dictionary's dtype (a plain one, kept as written), C order and shape (at least one axis),
 * and the bytes of a row. */
static int npy_parse_dict(const char *path, const char *dict, merge_npy *h) {
  const char *p = npy_field(dict, "descr"), *q = p && (*p == '\'' || *p == '"') ? strchr(p + 1, *p) : NULL;
  size_t i;
  if (!q || (size_t)(q - p - 1) >= sizeof h->descr) return npy_bad(path, "no plain 'descr' (structured dtypes are not merged)");
  memcpy(h->descr, p + 1, (size_t)(q - p - 1));
  if (!(h->row_bytes = npy_item_bytes(h->descr))) return npy_bad(path, "a dtype without a fixed size (objects)");
  if (!(p = npy_field(dict, "fortran_order")) || strncmp(p, "False", 5)) return npy_bad(path, "Fortran order (rows are not contiguous)");
  if (!(p = npy_field(dict, "shape")) || *p++ != '(') return npy_bad(path, "no 'shape'");
  for (;;) {
    char *end;
    unsigned long long v;
    while (*p == ' ' || *p == ',') p++;
    if (*p == ')') break;
    if (*p < '0' || *p > '9' || h->ndim == LENSNET_MAX_DIMS) return npy_bad(path, "a shape this cannot read");
    errno = 0;
    v = strtoull(p, &end, 10);
    if (errno || v > (size_t)-1) return npy_bad(path, "a dimension out of range");
    h->shape[h->ndim++] = (size_t)v;
    p = *end == 'L' ? end + 1 : end;
  }
  if (!h->ndim) return npy_bad(path, "a 0-d array has no rows to join");
  for (i = 1; i < (size_t)h->ndim; i++) {
    if (h->shape[i] && h->row_bytes > (size_t)-1 / h->shape[i]) return npy_bad(path, "shape too large");
    h->row_bytes *= h->shape[i];
  }
  return 0;
}

/* The header of the .npy file path, and whether the file holds exactly the data it announces. */
static int npy_read_header(const char *path, merge_npy *h) {
  char *dict;
  size_t want;
  struct stat st;
  int rc;
  memset(h, 0, sizeof *h);
  if ((rc = npy_read_dict(path, h, &dict)) != 0) return rc;
  rc = npy_parse_dict(path, dict, h);
  free(dict);
  if (rc) return rc;
  if (h->shape[0] && h->row_bytes > ((size_t)-1 - h->header_bytes) / h->shape[0]) return npy_bad(path, "shape too large");
  want = h->header_bytes + h->shape[0] * h->row_bytes;
  if (stat(path, &st) != 0) return lens_fail("%s: %s", path, strerror(errno));
  if ((unsigned long long)st.st_size != (unsigned long long)want)
    return lens_fail("%s: %llu bytes, but its header announces %lu (%lu rows of %lu bytes after a %lu-byte header): %s", path,
                     (unsigned long long)st.st_size, ul(want), ul(h->shape[0]), ul(h->row_bytes), ul(h->header_bytes),
                     (unsigned long long)st.st_size < (unsigned long long)want ? "cut short" : "extra bytes");
  return 0;
}

/* "<f4 [3, 4, 66, 66]" */
static const char *npy_describe(const merge_npy *h, char *buf, size_t cap) {
  size_t n = (size_t)snprintf(buf, cap, "%s [", h->descr);
  int i;
  for (i = 0; i < h->ndim && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, "%s%lu", i ? ", " : "", ul(h->shape[i]));
  if (n < cap) snprintf(buf + n, cap - n, "]");
  return buf;
}

/* The merged header in the layout of lensnet.h's writer (lensnet_npy_writer_begin/finish):
 * version 1.0, "{'descr': '<f4', 'fortran_order': False, 'shape': (10, 4, 66, 66), }" (a
 * 1-d shape as "(10, )"), blanks up to a multiple of 64 bytes with the closing '\n'. And at least
 * min_bytes long: a writer that left the row count open (lens predict --out FILE.npy) reserved
 * room for any count, in every shard's header as in a single run's, and the merge keeps it.
 * Returns the length. */
static size_t npy_make_header(char *buf, const merge_npy *h, size_t rows, size_t min_bytes) {
  size_t n = 10, total;
  int i;
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  n += (size_t)sprintf(buf + n, "{'descr': '%s', 'fortran_order': False, 'shape': (", h->descr);
  for (i = 0; i < h->ndim; i++) {
    n += (size_t)sprintf(buf + n, "%lu", ul(i ? h->shape[i] : rows));
    if (h->ndim == 1 || i + 1 < h->ndim) n += (size_t)sprintf(buf + n, ", ");
  }
  n += (size_t)sprintf(buf + n, "), }");
  total = (n + 1 + 63) / 64 * 64;
  if (total < min_bytes && min_bytes <= MERGE_NPY_HEADER_MAX) total = min_bytes;
  while (n + 1 < total) buf[n++] = ' ';
  buf[n++] = '\n';
  buf[8] = (char)((n - 10) & 0xFF);
  buf[9] = (char)((n - 10) >> 8);
  return n;
}

/* ---- CSV headers ----------------------------------------------------------------------------- */

/* The first line of a CSV file (a '\n' inside quotes does not end it), with its '\n'; malloc'd. */
static int csv_read_header(const char *path, char **out, size_t *len) {
  size_t n = 0, cap = 256;
  int c = 0, quoted = 0;
  char *buf = (char *)malloc(cap), *grown;
  FILE *f = fopen(path, "rb");
  *out = NULL;
  if (!f || !buf) {
    free(buf);
    if (f) fclose(f);
    return f ? lens_fail("out of memory") : lens_fail("%s: %s", path, strerror(errno));
  }
  while ((c = getc(f)) != EOF) {
    if (n + 2 > cap) {
      if (cap >= MERGE_CSV_HEADER_MAX || !(grown = (char *)realloc(buf, 2 * cap))) break;
      buf = grown;
      cap *= 2;
    }
    buf[n++] = (char)c;
    if (c == '"') quoted = !quoted;
    if (c == '\n' && !quoted) break;
  }
  fclose(f);
  if (!n || buf[n - 1] != '\n' || quoted) {
    free(buf);
    return lens_fail("%s: no complete header line (empty, cut short, longer than 1 MiB, or not a CSV file)", path);
  }
  buf[n] = 0;
  *out = buf;
  *len = n;
  return 0;
}

/* Two different header lines: the first column where they part. */
static int csv_header_differs(const char *path_a, const char *a, const char *path_b, const char *b) {
  size_t i = 0, col = 0, start = 0, la, lb;
  for (; a[i] && a[i] == b[i]; i++)
    if (a[i] == ',') { col++; start = i + 1; }
  la = strcspn(a + start, ",\r\n");
  lb = strcspn(b + start, ",\r\n");
  return lens_fail("%s and %s have different CSV headers: column %lu is '%.*s' vs '%.*s'", path_a, path_b, ul(col + 1),
                   (int)(la < 60 ? la : 60), a + start, (int)(lb < 60 ? lb : 60), b + start);
}

/* ---- checking and writing the outputs -------------------------------------------------------- */

/* Output o across the shards: every file there, of the kind its extension says, and alike
 * (the same CSV header; the same dtype and shape but for the rows, as many as the manifest's). */
static int check_output(merge_output *o, const merge_shard *shards, int n, int folders) {
  char path[MERGE_PATH_MAX + 300], first_path[MERGE_PATH_MAX + 300], a[160], b[160];
  int i, k;
  o->fmt = lens_format_of(o->name);
  if (o->fmt != LENS_FMT_CSV && o->fmt != LENS_FMT_NPY)
    return lens_fail("%s: lens merge joins .csv and .npy files", shard_file(&shards[0], folders, o, path, sizeof path));
  shard_file(&shards[0], folders, o, first_path, sizeof first_path);
  for (i = 0; i < n; i++) {
    const lens_shard_manifest *m = &shards[i].m;
    shard_file(&shards[i], folders, o, path, sizeof path);
    if (o->fmt == LENS_FMT_CSV) {
      char *header;
      size_t len = 0;
      if (csv_read_header(path, &header, &len)) return LENS_EXIT_FAIL;
      if (!i) { o->csv_header = header; o->csv_header_len = len; continue; }
      k = len != o->csv_header_len || memcmp(header, o->csv_header, len);
      if (k) csv_header_differs(first_path, o->csv_header, path, header);
      free(header);
      if (k) return LENS_EXIT_FAIL;
    } else {
      merge_npy h;
      if (npy_read_header(path, &h)) return LENS_EXIT_FAIL;
      if (h.shape[0] != m->end - m->first - m->left_out)
        return lens_fail("%s: %lu rows (%s), but %s says objects [%lu, %lu)%s: %lu rows", path, ul(h.shape[0]), npy_describe(&h, a, sizeof a),
                         shards[i].manifest_path, ul(m->first), ul(m->end), m->left_out ? " less those left out" : "", ul(m->end - m->first - m->left_out));
      if (i && (strcmp(h.descr, o->npy.descr) || h.ndim != o->npy.ndim || memcmp(h.shape + 1, o->npy.shape + 1, (size_t)(h.ndim - 1) * sizeof(size_t))))
        return lens_fail("%s and %s hold different arrays: %s vs %s (only the first axis may differ)", first_path, path,
                         npy_describe(&o->npy, a, sizeof a), npy_describe(&h, b, sizeof b));
      if (!i) o->npy = h;
      if (h.header_bytes > o->npy_min_header) o->npy_min_header = h.header_bytes;
    }
  }
  return 0;
}

/* Copies from `in` (at its position) to `out` until EOF, counting the lines ('\n' outside
 * quotes) into *rows and keeping the last byte copied. */
static int copy_csv_rows(FILE *in, FILE *out, char *buf, size_t *rows, int *last) {
  size_t got, i;
  int quoted = 0;
  *rows = 0;
  *last = '\n';
  while ((got = fread(buf, 1, MERGE_CHUNK, in)) > 0) {
    for (i = 0; i < got; i++) {
      if (buf[i] == '"') quoted = !quoted;
      else if (buf[i] == '\n' && !quoted) ++*rows;
    }
    *last = (unsigned char)buf[got - 1];
    if (fwrite(buf, 1, got, out) != got) return -1;
  }
  return ferror(in) ? -2 : 0;
}

/* Copies `bytes` bytes from in (at its position) to out. */
static int copy_bytes(FILE *in, FILE *out, char *buf, size_t bytes) {
  while (bytes) {
    size_t want = bytes < MERGE_CHUNK ? bytes : MERGE_CHUNK;
    if (fread(buf, 1, want, in) != want) return -2;
    if (fwrite(buf, 1, want, out) != want) return -1;
    bytes -= want;
  }
  return 0;
}

/* Shard s's part of output o appended to f: its CSV rows, checked against its manifest, or its
 * .npy data section. */
static int append_shard(const merge_output *o, const merge_shard *s, int folders, FILE *f, char *buf) {
  char path[MERGE_PATH_MAX + 300];
  size_t rows, want = s->m.end - s->m.first - s->m.left_out;
  int last, rc;
  FILE *in = fopen(shard_file(s, folders, o, path, sizeof path), "rb");
  if (!in) return lens_fail("%s: %s", path, strerror(errno));
  if (o->fmt == LENS_FMT_CSV) {
    rc = fseek(in, (long)o->csv_header_len, SEEK_SET) != 0 ? -2 : copy_csv_rows(in, f, buf, &rows, &last);
    if (!rc && last != '\n') rc = lens_fail("%s: the last line has no end (cut short?)", path);
    else if (!rc && rows != want && strcmp(s->m.command, "find")) /* find: rows are detections, not fields */
      rc = lens_fail("%s: %lu rows, but %s says objects [%lu, %lu)%s: %lu rows", path, ul(rows), s->manifest_path, ul(s->m.first), ul(s->m.end),
                     s->m.left_out ? " less those left out" : "", ul(want));
  } else {
    rc = fseek(in, (long)o->npy.header_bytes, SEEK_SET) != 0 ? -2 : copy_bytes(in, f, buf, want * o->npy.row_bytes);
  }
  fclose(in);
  if (rc == -1) return lens_fail("%s: write failed (disk full?)", o->tmp);
  if (rc == -2) return lens_fail("%s: read failed (changed while merging?)", path);
  return rc;
}

/* Output o, complete under its temporary name. */
static int write_output(merge_output *o, const merge_shard *shards, int n, int folders, char *buf) {
  char header[MERGE_NPY_HEADER_MAX + 64];
  size_t len;
  int i, rc = 0;
  FILE *f = lens_text_open(o->path, o->tmp, sizeof o->tmp); /* binary and text are alike on POSIX */
  if (!f) return LENS_EXIT_FAIL;
  if (o->fmt == LENS_FMT_CSV) {
    if (fwrite(o->csv_header, 1, o->csv_header_len, f) != o->csv_header_len) rc = lens_fail("%s: write failed (disk full?)", o->tmp);
  } else {
    size_t rows = shards[0].m.total;
    for (i = 0; i < n; i++) rows -= shards[i].m.left_out; /* lens predict --skip-bad: objects without a row */
    len = npy_make_header(header, &o->npy, rows, o->npy_min_header);
    if (fwrite(header, 1, len, f) != len) rc = lens_fail("%s: write failed (disk full?)", o->tmp);
  }
  for (i = 0; i < n && !rc; i++) rc = append_shard(o, &shards[i], folders, f, buf);
  if (rc) {
    fclose(f);
    remove(o->tmp);
    return rc;
  }
  rc = ferror(f) != 0;
  rc |= fclose(f) != 0;
  if (rc) {
    remove(o->tmp);
    return lens_fail("%s: write failed (disk full?)", o->tmp);
  }
  o->pending = 1;
  return 0;
}

/* ---- the command ----------------------------------------------------------------------------- */

/* --out against the kind of shards: a folder for folders, else a file of the shards' extension;
 * never one of the shards, nor a shard output itself (its manifest would describe other files). */
static int check_out(const merge_args *a, const merge_shard *shards, int folders) {
  char manifest[MERGE_PATH_MAX];
  struct stat out_st, st;
  int i;
  if (folders ? lens_out_folder("--out", a->out) != 0 : lens_format_of(a->out) != lens_format_of(shards[0].path))
    return folders ? LENS_EXIT_USAGE
                   : lens_usage("--out %s: the shards are %s files; the merged file takes their extension", a->out, strrchr(shards[0].path, '.'));
  if (stat(a->out, &out_st) == 0)
    for (i = 0; i < a->nshards; i++)
      if (stat(shards[i].path, &st) == 0 && st.st_dev == out_st.st_dev && st.st_ino == out_st.st_ino)
        return lens_usage("--out %s is the shard %s itself; merge into another %s", a->out, shards[i].path, folders ? "folder" : "file");
  snprintf(manifest, sizeof manifest, folders ? "%s/shard.json" : "%s.shard.json", a->out);
  if (stat(manifest, &st) == 0)
    return lens_usage("--out %s holds a shard's output (%s is there); merge into another %s", a->out, manifest, folders ? "folder" : "file");
  return 0;
}

/* The outputs: each file the manifests list, under OUT/ (folders) or as OUT; CSV files first,
 * as their rows are counted while copying and they are small beside the images. */
static int plan_outputs(const merge_args *a, const merge_shard *shards, int folders, merge_output *outs, int *nout) {
  const lens_shard_manifest *m = &shards[0].m;
  int pass, k;
  *nout = 0;
  for (pass = 0; pass < 2; pass++)
    for (k = 0; k < m->nfiles; k++) {
      merge_output *o = &outs[*nout];
      if ((lens_format_of(m->files[k]) == LENS_FMT_CSV) != (pass == 0)) continue;
      o->name = m->files[k];
      if ((size_t)snprintf(o->path, sizeof o->path, folders ? "%s/%s" : "%s", a->out, o->name) >= sizeof o->path)
        return lens_fail("%s: path too long", a->out);
      ++*nout;
    }
  return 0;
}

/* ---- lens sim --fits / --png: one file per object ------------------------------------------- */

/* DIR/fits/NNNNNNN.fits and DIR/png/NNNNNNN.png are named by the object's number in the whole
 * run, so merging copies each shard's into OUT/fits and OUT/png. The folders are not in the
 * manifest: a folder some shards have and others lack, or a file missing from a shard's range,
 * is refused before anything is written. */
static const char *const merge_object_kinds[2] = {"fits", "png"};

static int object_files_check(const merge_shard *shards, int n, int has[2]) {
  char path[MERGE_PATH_MAX];
  struct stat st;
  int d, i, with;
  size_t k;
  for (d = 0; d < 2; d++) {
    const char *kind = merge_object_kinds[d];
    has[d] = 0;
    if (strcmp(shards[0].m.command, "sim")) continue;
    for (i = 0, with = 0; i < n; i++) {
      snprintf(path, sizeof path, "%s/%s", shards[i].path, kind);
      with += stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    }
    if (!with) continue;
    for (i = 0; i < n; i++) {
      snprintf(path, sizeof path, "%s/%s", shards[i].path, kind);
      if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return lens_fail("%s has no %s/ but %d of the shards have one (lens sim --%s): run every shard with the same options", shards[i].path,
                         kind, with, kind);
      for (k = shards[i].m.first; k < shards[i].m.end; k++) {
        snprintf(path, sizeof path, "%s/%s/%07lu.%s", shards[i].path, kind, ul(k), kind);
        if (stat(path, &st) != 0) return lens_fail("%s: missing (object %lu of the shard's range)", path, ul(k));
      }
    }
    has[d] = 1;
  }
  return 0;
}

/* Copies the per-object files into OUT/fits and OUT/png, each under NAME.tmp and then renamed. */
static int object_files_copy(const merge_args *a, const merge_shard *shards, int n, const int has[2], char *buf) {
  char src[MERGE_PATH_MAX], dst[MERGE_PATH_MAX], tmp[MERGE_PATH_MAX + 8];
  int d, i, rc = 0;
  size_t k;
  for (d = 0; d < 2 && !rc; d++) {
    const char *kind = merge_object_kinds[d];
    if (!has[d]) continue;
    snprintf(dst, sizeof dst, "%s/%s", a->out, kind);
    if ((rc = lens_make_dirs(dst)) != 0) break;
    for (i = 0; i < n && !rc; i++)
      for (k = shards[i].m.first; k < shards[i].m.end && !rc; k++) {
        FILE *in, *out;
        size_t got;
        snprintf(src, sizeof src, "%s/%s/%07lu.%s", shards[i].path, kind, ul(k), kind);
        snprintf(dst, sizeof dst, "%s/%s/%07lu.%s", a->out, kind, ul(k), kind);
        snprintf(tmp, sizeof tmp, "%s.tmp", dst);
        if (!(in = fopen(src, "rb"))) { rc = lens_fail("%s: %s", src, strerror(errno)); break; }
        if (!(out = fopen(tmp, "wb"))) { fclose(in); rc = lens_fail("%s: cannot open for writing: %s", tmp, strerror(errno)); break; }
        while ((got = fread(buf, 1, MERGE_CHUNK, in)) > 0)
          if (fwrite(buf, 1, got, out) != got) { rc = lens_fail("%s: write failed: %s", tmp, strerror(errno)); break; }
        if (!rc && ferror(in)) rc = lens_fail("%s: read failed", src);
        fclose(in);
        if (fclose(out) != 0 && !rc) rc = lens_fail("%s: write failed: %s", tmp, strerror(errno));
        if (!rc && rename(tmp, dst) != 0) rc = lens_fail("%s: cannot rename %s into place: %s", dst, tmp, strerror(errno));
        if (rc) remove(tmp);
      }
  }
  return rc;
}

/* lens sim's bands.txt (the names of images.npy's planes): the same in every shard (checked before
 * anything is written), copied once. Shards made before lens sim wrote it have none, and then
 * neither has the merged folder (an older OUT/bands.txt is removed). */
typedef struct { int have; size_t len; char text[1024]; } merge_bands;

static int bands_check(const merge_shard *shards, int n, merge_bands *b) {
  char path[MERGE_PATH_MAX], text[1024];
  size_t len;
  int i;
  FILE *f;
  b->have = 0;
  if (strcmp(shards[0].m.command, "sim")) return 0;
  for (i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/bands.txt", shards[i].path);
    f = fopen(path, "rb");
    if (!f && errno != ENOENT) return lens_fail("%s: cannot read it: %s", path, strerror(errno));
    if ((f != NULL) != (i == 0 ? (f != NULL) : b->have)) {
      if (f) fclose(f);
      return lens_fail("%s/bands.txt %s, but %s/bands.txt %s: the shards of one run name their bands alike", shards[i].path,
                       f ? "is there" : "is missing", shards[0].path, b->have ? "is there" : "is missing");
    }
    if (!f) continue;
    len = fread(i ? text : b->text, 1, sizeof text, f);
    fclose(f);
    if (i == 0) { b->have = 1; b->len = len; }
    else if (len != b->len || memcmp(text, b->text, len))
      return lens_fail("%s/bands.txt and %s/bands.txt name other bands: the shards of one run name the same bands", shards[i].path,
                       shards[0].path);
  }
  return 0;
}

static int bands_write(const merge_args *a, const merge_bands *b) {
  char tmp[MERGE_PATH_MAX + 16];
  FILE *f;
  int rc = 0;
  if (!b->have) return 0;
  snprintf(tmp, sizeof tmp, "%s/bands.txt.tmp", a->out);
  if (!(f = fopen(tmp, "wb"))) return lens_fail("%s: cannot open for writing: %s", tmp, strerror(errno));
  if (fwrite(b->text, 1, b->len, f) != b->len) rc = lens_fail("%s: write failed: %s", tmp, strerror(errno));
  if (fclose(f) != 0 && !rc) rc = lens_fail("%s: write failed: %s", tmp, strerror(errno));
  if (rc) remove(tmp);
  return rc;
}

/* Into place with the other outputs (rename), or an older one taken away; on failure the .tmp goes. */
static int bands_finish(const merge_args *a, const merge_bands *b, int failed) {
  char path[MERGE_PATH_MAX], tmp[MERGE_PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/bands.txt", a->out);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  if (failed) {
    if (b->have) remove(tmp);
    return 0;
  }
  if (b->have && rename(tmp, path) != 0) {
    remove(tmp);
    return lens_fail("%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
  }
  if (!b->have && remove(path) != 0 && errno != ENOENT) return lens_fail("%s: an older file, cannot remove it: %s", path, strerror(errno));
  return 0;
}

/* Checks everything, writes every output under its temporary name, then renames them all. */
static int merge(const merge_args *a, merge_shard *shards, int folders) {
  merge_output outs[LENS_SHARD_MAX_FILES];
  char *buf = NULL;
  int n = a->nshards, nout = 0, k, rc, objects[2] = {0, 0};
  merge_bands bands;
  memset(outs, 0, sizeof outs);
  memset(&bands, 0, sizeof bands);
  rc = check_out(a, shards, folders);
  if (!rc) rc = read_manifests(shards, n, folders);
  if (!rc) rc = check_run(shards, n, folders);
  if (!rc) rc = check_cover(shards, n);
  if (!rc) { /* a shard of lens predict --skip-bad may leave out all its objects; the whole run may not */
    size_t left = 0;
    for (k = 0; k < n; k++) left += shards[k].m.left_out;
    if (left && left == shards[0].m.total)
      rc = lens_fail("lens predict --skip-bad left out every object of the run (%lu of %lu): a reason shared by all is more likely an "
                     "option or the model than the files; the shards' messages say why", ul(left), ul(shards[0].m.total));
  }
  if (!rc) rc = plan_outputs(a, shards, folders, outs, &nout);
  for (k = 0; k < nout && !rc; k++) rc = check_output(&outs[k], shards, n, folders);
  if (!rc && folders) rc = object_files_check(shards, n, objects);
  if (!rc && folders) rc = bands_check(shards, n, &bands);
  if (!rc) rc = folders ? lens_make_dirs(a->out) : lens_make_parents(a->out);
  if (!rc && !(buf = (char *)malloc(MERGE_CHUNK))) rc = lens_fail("out of memory");
  for (k = 0; k < nout && !rc; k++) rc = write_output(&outs[k], shards, n, folders, buf);
  if (!rc) rc = object_files_copy(a, shards, n, objects, buf);
  if (!rc && folders) rc = bands_write(a, &bands);
  for (k = 0; k < nout; k++) {
    if (outs[k].pending && !rc && rename(outs[k].tmp, outs[k].path) != 0)
      rc = lens_fail("%s: cannot rename %s into place: %s", outs[k].path, outs[k].tmp, strerror(errno));
    if (outs[k].pending && rc) remove(outs[k].tmp);
    free(outs[k].csv_header);
  }
  free(buf);
  if (folders) {
    int b = bands_finish(a, &bands, rc != 0);
    if (!rc) rc = b;
  }
  if (!rc) {
    size_t left = 0;
    int j;
    for (j = 0; j < n; j++) left += shards[j].m.left_out;
    fprintf(stderr, "merge: %d shards, %lu %s -> %s", n, ul(shards[0].m.total), strcmp(shards[0].m.command, "find") ? "objects" : "fields", a->out);
    if (left) fprintf(stderr, " (%lu left out by lens predict --skip-bad, without rows)", ul(left));
    fputc('\n', stderr);
  }
  return rc;
}

int lens_cmd_merge(int argc, char **argv) {
  merge_args a;
  merge_shard *shards;
  struct stat st;
  int i, rc;
  memset(&a, 0, sizeof a);
  rc = lens_options_parse(&merge_spec, argc, argv, &a, NULL);
  if (rc) return rc < 0 ? 0 : rc;
  /* the kind of the first shard says what --out must be */
  if (stat(a.shards[0], &st) != 0) return lens_fail("%s: %s", a.shards[0], strerror(errno));
  if (!S_ISDIR(st.st_mode) && lens_format_of(a.shards[0]) != LENS_FMT_CSV && lens_format_of(a.shards[0]) != LENS_FMT_NPY)
    return lens_fail("%s: a shard is a lens sim folder or a lens predict .csv or .npy file", a.shards[0]);
  if (!(shards = (merge_shard *)calloc((size_t)a.nshards, sizeof *shards))) return lens_fail("out of memory");
  for (i = 0; i < a.nshards; i++) shards[i].path = a.shards[i];
  rc = merge(&a, shards, S_ISDIR(st.st_mode));
  free(shards);
  return rc;
}
