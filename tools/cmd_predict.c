/* lens predict: lens-finder scores for .npy batches or FITS cutouts.
 *
 * Each input object becomes one row: a .npy file [N,C,H,W] (or [C,H,W], or [N,H,W] for one
 * band) gives N objects; a FITS file gives one object (a cube [C,H,W] or one band [H,W]); with
 * --bands B, B consecutive FITS files make one object, one band each. Objects are numbered in
 * the order given, and --shard I/N keeps those whose number is I modulo N, so a survey can be
 * spread over job arrays with identical command lines. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "lens_cmds.h"
#include "pool.h"
#include "cli.h"

typedef struct {
  const char *model_path, *list_path, *out_npy, *csv_path;
  char **inputs;            /* the positional arguments */
  int input_count;
  int bands_per_object;     /* --bands: FITS files per object (0: one file per object) */
  lens_cutout_options cutout;
  int minmax;               /* what is applied, once the model is known */
  size_t shard_index, shard_count, batch;
  size_t threads;           /* --threads: images of a batch spread over this many threads (0: the CPUs online) */
} predict_options;

/* --shard I/N. */
static int parse_shard(const lens_option *row, const char *label, const char *v, void *opts) {
  predict_options *o = (predict_options *)opts;
  const char *slash = strchr(v, '/');
  char first[32];
  (void)row;
  if (slash && (size_t)(slash - v) < sizeof first) {
    memcpy(first, v, (size_t)(slash - v));
    first[slash - v] = 0;
    if (lens_parse_size(first, &o->shard_index) && lens_parse_size(slash + 1, &o->shard_count) && o->shard_index < o->shard_count) return 0;
  }
  return lens_usage("%s takes I/N with 0 <= I < N, e.g. 3/16, got '%s'", label, v);
}

#define T predict_options
static const lens_option predict_rows[] = {
  LENS_ARGS(T, "INPUT", 0, inputs, input_count, ".npy batch [N,C,H,W] (or [C,H,W]; [N,H,W] for one band) or FITS file"),
  LENS_TEXT(T, "model", LENS_OPT_REQUIRED, model_path, NULL, "MODEL.safetensors", "the lens finder"),
  LENS_INT(T, "bands", bands_per_object, 1, 64, 0, "B", "B consecutive FITS files form one object, one band each"),
  LENS_TEXT(T, "list", 0, list_path, NULL, "FILE", "read inputs from FILE, one object per line (with --bands, B paths per line)"),
  LENS_CUSTOM(T, "shard", 0, shard_index, parse_shard, "I/N", "score only objects whose number is I modulo N (0 <= I < N)"),
  LENS_CUTOUT_OPTIONS(T, cutout),
  LENS_SIZE(T, "batch", batch, 1, 65536, 32, "B", "objects per forward pass (default 32)"),
  LENS_SIZE(T, "threads", threads, 1, 256, 0, "T", "threads sharing each batch (default: the CPUs online); scores do not depend on T"),
  LENS_TEXT(T, "out", 0, out_npy, NULL, "FILE", "FILE.npy: the raw logits [N, classes] as float32 (no CSV on standard output);\n"
            "FILE.csv: the CSV there instead of standard output"),
  LENS_TEXT(T, "csv", 0, csv_path, NULL, "FILE.csv", "write the CSV there (beside an --out FILE.npy)"),
};
#undef T
static const lens_option_section predict_sections[] = {{NULL, predict_rows, sizeof predict_rows / sizeof predict_rows[0]}};
static const lens_command_spec predict_spec = {
  "predict", "usage: lens predict --model MODEL.safetensors [options] INPUT...\n", NULL, NULL, predict_sections, 1,
  "Output CSV: input,p_lens,logit_<class>... one row per object. Missing folders of output files\n"
  "are created. A terminal shows a progress line on stderr. Exit status: 0 done, 1 failure\n"
  "(a file), 2 usage error.\n"};

/* One object waiting to be scored: its pixels already in the model's input shape. */
typedef struct {
  char label[512];
  float *pixels;
} predict_object;

typedef struct {
  const predict_options *opt;
  lensnet_model *model;
  size_t lens_class;        /* which output is "lens" */
  predict_object *pending;
  size_t pending_count, object_number, scored, nan_pixels, inf_pixels;
  lensnet_npy_writer logits; /* --out FILE.npy: every scored row, streamed */
  FILE *csv;
  float *input, *output, *workspace; /* one workspace per thread, ws_floats each */
  size_t ws_floats, chunk;
  lens_pool *pool;
  int channel_note_shown;
  int failed;
  lens_progress progress;
  size_t total_objects;     /* for the progress line: grows as .npy files reveal their length */
  int show_progress;
} predict_state;

static void forward_chunk(void *ctx, size_t index, size_t worker) {
  predict_state *s = (predict_state *)ctx;
  const lensnet_model *m = s->model;
  size_t first = index * s->chunk, count = s->pending_count - first < s->chunk ? s->pending_count - first : s->chunk;
  lensnet_error err;
  if (lensnet_model_forward(m, count, s->input + first * m->in_c * m->in_h * m->in_w, s->output + first * m->out_features,
                            s->workspace + worker * s->ws_floats, &err) != LENSNET_OK)
    s->failed = 1;
}

static int run_batch(predict_state *s) {
  const lensnet_model *m = s->model;
  size_t per = m->in_c * m->in_h * m->in_w, b, k;
  lensnet_error err;
  if (!s->pending_count) return 0;
  for (b = 0; b < s->pending_count; b++) memcpy(s->input + b * per, s->pending[b].pixels, per * sizeof(float));
  if (s->opt->threads > 1 && s->pending_count > 1) {
    /* the batch in chunks, one forward pass each; every image's scores are its own */
    lensnet_parallel par = lens_pool_parallel(s->pool);
    size_t chunks = (s->pending_count + s->chunk - 1) / s->chunk;
    s->failed = 0;
    par.run(par.user, chunks, forward_chunk, s);
    if (s->failed) return lens_fail("forward pass failed");
  } else if (lensnet_model_forward(m, s->pending_count, s->input, s->output, s->workspace, &err) != LENSNET_OK) return lens_fail_err(&err);
  for (b = 0; b < s->pending_count; b++) {
    const float *z = s->output + b * m->out_features;
    double p = lensnet_lens_probability(z, m->out_features, s->lens_class);
    if (s->csv) {
      fprintf(s->csv, "%s,%.7g", s->pending[b].label, p);
      for (k = 0; k < m->out_features; k++) fprintf(s->csv, ",%.7g", z[k]);
      fputc('\n', s->csv);
    }
    if (s->opt->out_npy && lensnet_npy_writer_append(&s->logits, z, 1, &err) != LENSNET_OK) return lens_fail_err(&err);
    s->scored++;
    free(s->pending[b].pixels);
  }
  s->pending_count = 0;
  if (s->show_progress)
    lens_progress_show(&s->progress, "predict", s->object_number, s->total_objects > s->object_number ? s->total_objects : s->object_number,
                       "obj", -1.0, NULL);
  return 0;
}

/* Takes one object's image [bands, h, w], prepares it for the model (lensnet_cutout_prepare) and
 * queues it. `image` stays the caller's. */
static int add_object(predict_state *s, const char *label, const float *image, size_t bands, size_t h, size_t w) {
  const predict_options *o = s->opt;
  const lensnet_model *m = s->model;
  lensnet_cutout_desc desc;
  lensnet_cutout_report report;
  float *pix;
  predict_object *obj;
  size_t number = s->object_number++;
  int rc;
  if (o->shard_count && number % o->shard_count != o->shard_index) return 0;
  desc = lens_cutout_desc(&o->cutout, o->minmax);
  pix = (float *)malloc(m->in_c * m->in_h * m->in_w * sizeof(float));
  if (!pix) return lens_fail("out of memory");
  if ((rc = lens_cutout(label, m, &desc, image, bands, h, w, pix, &report, &s->channel_note_shown)) != 0) { free(pix); return rc; }
  s->nan_pixels += report.nan_pixels;
  s->inf_pixels += report.inf_pixels;
  obj = &s->pending[s->pending_count++];
  snprintf(obj->label, sizeof obj->label, "%s", label);
  obj->pixels = pix;
  if (s->pending_count == o->batch) return run_batch(s);
  return 0;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

static int add_npy(predict_state *s, const char *path) {
  lensnet_tensor t;
  lensnet_error err;
  size_t n, c, h, w, i;
  int rc = 0;
  if (lensnet_npy_read(path, &t, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (t.ndim == 4) { n = t.shape[0]; c = t.shape[1]; h = t.shape[2]; w = t.shape[3]; }
  else if (t.ndim == 3 && s->model->in_c == 1 && t.shape[0] != 1) { n = t.shape[0]; c = 1; h = t.shape[1]; w = t.shape[2]; }
  else if (t.ndim == 3) { n = 1; c = t.shape[0]; h = t.shape[1]; w = t.shape[2]; }
  else if (t.ndim == 2) { n = 1; c = 1; h = t.shape[0]; w = t.shape[1]; }
  else {
    int ndim = t.ndim;
    lensnet_tensor_free(&t);
    return lens_fail("%s: expected an array [N,C,H,W], [C,H,W] or [H,W], got %d dimensions", path, ndim);
  }
  if (s->total_objects) s->total_objects--; /* counted as one object until now */
  s->total_objects += n;
  for (i = 0; i < n && rc == 0; i++) {
    char label[512];
    snprintf(label, sizeof label, "%s[%lu]", path, (unsigned long)i);
    rc = add_object(s, label, t.data + i * c * h * w, c, h, w);
  }
  lensnet_tensor_free(&t);
  return rc;
}

/* One object from `count` FITS files (one band each), or from one file (a cube or one band). */
static int add_fits(predict_state *s, char **paths, int count) {
  lensnet_tensor t[64];
  lensnet_error err;
  size_t h = 0, w = 0, bands = 0, b, hw;
  float *image;
  char label[512];
  size_t len = 0;
  int i, rc;
  for (i = 0; i < count; i++) {
    size_t nb, th, tw;
    if (lensnet_fits_read(paths[i], s->opt->cutout.hdu, &t[i], &err) != LENSNET_OK) {
      while (i-- > 0) lensnet_tensor_free(&t[i]);
      return lens_fail_err(&err);
    }
    if (t[i].ndim == 2) { nb = 1; th = t[i].shape[0]; tw = t[i].shape[1]; }
    else if (t[i].ndim == 3) { nb = t[i].shape[0]; th = t[i].shape[1]; tw = t[i].shape[2]; }
    else nb = th = tw = 0;
    if (!nb || (count > 1 && nb != 1) || (i > 0 && (th != h || tw != w))) {
      rc = lens_fail("%s: %s", paths[i], !nb ? "expected a 2-D image or a 3-D cube [bands, y, x]"
                                      : (count > 1 && nb != 1) ? "with --bands each file must hold one band (a 2-D image)"
                                                               : "its size differs from the other bands of the object");
      for (; i >= 0; i--) lensnet_tensor_free(&t[i]);
      return rc;
    }
    h = th; w = tw; bands += nb;
    if (len < sizeof label) len += (size_t)snprintf(label + len, sizeof label - len, "%s%s", i ? "+" : "", paths[i]);
  }
  hw = h * w;
  image = (float *)malloc(bands * hw * sizeof(float));
  if (!image) { for (i = 0; i < count; i++) lensnet_tensor_free(&t[i]); return lens_fail("out of memory"); }
  for (i = 0, b = 0; i < count; i++) {
    size_t nb = t[i].ndim == 3 ? t[i].shape[0] : 1;
    memcpy(image + b * hw, t[i].data, nb * hw * sizeof(float));
    b += nb;
    lensnet_tensor_free(&t[i]);
  }
  rc = add_object(s, label, image, bands, h, w);
  free(image);
  return rc;
}

/* Dispatches a group of paths that form one object (FITS) or one file of many (npy). */
static int add_paths(predict_state *s, char **paths, int count) {
  if (count == 1 && ends_with(paths[0], ".npy")) return add_npy(s, paths[0]);
  return add_fits(s, paths, count);
}

static int add_list_file(predict_state *s, const char *list_path) {
  FILE *f = fopen(list_path, "r");
  char line[8192];
  int line_no = 0, rc = 0;
  if (!f) return lens_fail("%s: cannot open the list", list_path);
  while (rc == 0 && fgets(line, sizeof line, f)) {
    char *words[64], *p = line;
    int n = 0, want = s->opt->bands_per_object ? s->opt->bands_per_object : 1;
    line_no++;
    if (!strchr(line, '\n') && !feof(f)) { rc = lens_fail("%s:%d: line too long", list_path, line_no); break; }
    while (*p && n < 64) {
      while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\n' || *p == '\r') *p++ = 0;
      if (!*p || *p == '#') break;
      words[n++] = p;
      while (*p && *p != ' ' && *p != '\t' && *p != ',' && *p != '\n' && *p != '\r') p++;
    }
    if (n == 0) continue;
    if (n != want) { rc = lens_fail("%s:%d: expected %d path(s) per line, found %d", list_path, line_no, want, n); break; }
    rc = add_paths(s, words, n);
  }
  fclose(f);
  return rc;
}

/* Objects a list file names (its non-blank lines), for the progress line's total. */
static size_t count_list_lines(const char *path) {
  FILE *f = fopen(path, "r");
  char line[8192];
  size_t n = 0;
  if (!f) return 0;
  while (fgets(line, sizeof line, f)) {
    const char *p = line;
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    n += *p && *p != '\n' && *p != '\r' && *p != '#';
  }
  fclose(f);
  return n;
}

/* The command line into o, with the checks that involve several options. 0, -1 after --help, or
 * the exit status. */
static int parse_options(int argc, char **argv, predict_options *o) {
  int rc;
  memset(o, 0, sizeof *o);
  if ((rc = lens_options_parse(&predict_spec, argc, argv, o, NULL)) != 0) return rc;
  if (!o->input_count && !o->list_path) return lens_usage("no inputs: give .npy or FITS files, or --list FILE");
  if (lens_cutout_check(&o->cutout)) return LENS_EXIT_USAGE;
  if (o->bands_per_object && o->input_count % o->bands_per_object)
    return lens_usage("--bands %d needs the number of input files (%d) to be a multiple of %d", o->bands_per_object, o->input_count,
                      o->bands_per_object);
  /* --out: the format follows the extension; a .csv --out is the CSV file */
  if (o->out_npy) {
    lens_format f = lens_out_format("--out", o->out_npy, LENS_FMT_NPY | LENS_FMT_CSV);
    if (f == LENS_FMT_NONE) return LENS_EXIT_USAGE;
    if (f == LENS_FMT_CSV) {
      if (o->csv_path) return lens_usage("--out %s and --csv %s both ask for the CSV; give one", o->out_npy, o->csv_path);
      o->csv_path = o->out_npy;
      o->out_npy = NULL;
    }
  }
  if (o->csv_path && lens_out_format("--csv", o->csv_path, LENS_FMT_CSV) == LENS_FMT_NONE) return LENS_EXIT_USAGE;
  if ((o->out_npy && lens_make_parents(o->out_npy)) || (o->csv_path && lens_make_parents(o->csv_path))) return LENS_EXIT_FAIL;
  return 0;
}

/* The model, its normalisation and the buffers of one batch. */
static int open_model(predict_options *o, predict_state *s) {
  lensnet_error err;
  size_t per, ws;
  if (lensnet_model_load(o->model_path, &s->model, &err) != LENSNET_OK) return lens_fail_err(&err);
  s->opt = o;
  if ((o->minmax = lens_preprocess_resolve(s->model, o->cutout.preprocess)) < 0) return LENS_EXIT_FAIL;
  if (s->model->in_c > 64)
    return lens_fail("%s: the model takes %lu bands; lens predict handles up to 64", o->model_path, (unsigned long)s->model->in_c);
  lensnet_model_class_index(s->model, "lens", &s->lens_class, NULL); /* cannot fail: the model has outputs */
  per = s->model->in_c * s->model->in_h * s->model->in_w;
  if (!o->threads) o->threads = lens_pool_default_threads();
  s->chunk = (o->batch + o->threads - 1) / o->threads;
  ws = lensnet_model_workspace_floats(s->model, o->threads > 1 ? s->chunk : o->batch);
  s->ws_floats = ws;
  if (!ws || ws > ((size_t)-1 / sizeof(float)) / o->threads) ws = 0; /* reported as out of memory below */
  ws *= o->threads;
  s->pool = lens_pool_create(o->threads);
  s->pending = (predict_object *)calloc(o->batch, sizeof *s->pending);
  s->input = (float *)malloc(o->batch * per * sizeof(float));
  s->output = (float *)malloc(o->batch * s->model->out_features * sizeof(float));
  s->workspace = ws ? (float *)malloc(ws * sizeof(float)) : NULL;
  if (!s->pending || !s->input || !s->output || !s->workspace) return lens_fail("out of memory for a batch of %lu", (unsigned long)o->batch);
  return 0;
}

/* The CSV (on standard output, unless --out alone asks for the logits only; --csv names a file)
 * with its header, and the .npy of the logits. */
static int open_outputs(const predict_options *o, predict_state *s) {
  lensnet_error err;
  if (o->csv_path && !(s->csv = fopen(o->csv_path, "w"))) return lens_fail("%s: cannot open for writing", o->csv_path);
  if (!o->csv_path && !o->out_npy) s->csv = stdout;
  if (s->csv) {
    char name[64];
    size_t k;
    fprintf(s->csv, "input,p_lens");
    for (k = 0; k < s->model->out_features; k++) {
      lensnet_model_class_name(s->model, k, name, sizeof name, NULL);
      fprintf(s->csv, ",logit_%s", name);
    }
    fputc('\n', s->csv);
  }
  if (o->out_npy) {
    size_t shape[2];
    shape[0] = LENSNET_NPY_ROWS_UNKNOWN;
    shape[1] = s->model->out_features;
    if (lensnet_npy_writer_begin(&s->logits, o->out_npy, 2, shape, &err) != LENSNET_OK) return lens_fail_err(&err);
  }
  return 0;
}

/* Every input, then the last batch and the notes. */
static int score_inputs(const predict_options *o, predict_state *s) {
  lensnet_error err;
  int step = o->bands_per_object ? o->bands_per_object : 1, i, rc = 0;
  /* progress on a terminal, unless the CSV goes to the same terminal */
  lens_progress_start(&s->progress);
  s->show_progress = s->progress.enabled && !(s->csv == stdout && isatty(1));
  s->total_objects = (size_t)(o->input_count / step) + (o->list_path ? count_list_lines(o->list_path) : 0);
  for (i = 0; i < o->input_count && rc == 0; i += step) rc = add_paths(s, o->inputs + i, step);
  if (rc == 0 && o->list_path) rc = add_list_file(s, o->list_path);
  if (rc == 0) rc = run_batch(s);
  lens_progress_end(&s->progress);
  if (rc == 0) lens_cutout_note(s->nan_pixels, s->inf_pixels);
  if (rc == 0 && o->out_npy && lensnet_npy_writer_finish(&s->logits, 0, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  return rc;
}

int lens_cmd_predict(int argc, char **argv) {
  predict_options o;
  predict_state s;
  size_t i;
  int rc = parse_options(argc, argv, &o);
  if (rc) return rc < 0 ? 0 : rc;
  memset(&s, 0, sizeof s);
  rc = open_model(&o, &s);
  if (rc == 0) rc = open_outputs(&o, &s);
  if (rc == 0) rc = score_inputs(&o, &s);
  lensnet_npy_writer_abort(&s.logits); /* after a failure: nothing is left behind */
  if (s.csv && s.csv != stdout && fclose(s.csv) != 0 && rc == 0) rc = lens_fail("%s: write failed", o.csv_path);
  for (i = 0; i < s.pending_count; i++) free(s.pending[i].pixels);
  free(s.pending); free(s.input); free(s.output); free(s.workspace);
  lensnet_model_free(s.model);
  lens_pool_free(s.pool);
  return rc;
}
