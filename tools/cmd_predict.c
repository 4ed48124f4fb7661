/* lens predict: lens-finder scores for .npy batches or FITS cutouts.
 *
 * Each input object becomes one row: a .npy file [N,C,H,W] (or [C,H,W], or [N,H,W] for one
 * band) gives N objects; a FITS file gives one object (a cube [C,H,W] or one band [H,W]); with
 * --bands B, B consecutive FITS files make one object, one band each. Objects are numbered in
 * the order given, and --shard I/N keeps a contiguous block of them, [I n/N, (I+1) n/N) of the n
 * objects of all inputs, so a survey can be spread over job arrays with identical command lines:
 * a shard reads only its own rows of a .npy stack and only its own FITS files, and with --out its
 * output gets a manifest FILE.shard.json (tools/shard.h) that `lens merge` and --skip-done read.
 * .npy stacks are read a batch of rows at a time, so memory does not grow with their length.
 *
 * --locator L adds where in each cutout a locator network puts the object (lensnet_cutout_locate:
 * one prediction on the cutout as given, which cannot be re-centred beyond its edges as lens find
 * re-centres its windows): the CSV columns x,y,x_sigma,y_sigma (input pixels) and center_x,center_y
 * (arcsec from the input's centre).
 *
 * --model given several times makes an ensemble of classifiers: each object's class probabilities
 * are the mean over the models (and, with --symmetries, over each model's views), every member a
 * vote of equal weight; the members must take the same input and give the same classes. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <errno.h>
#include <unistd.h>
#include "lens_cmds.h"
#include "pool.h"
#include "cli.h"
#include "shard.h"

/* The most finders an ensemble (--model repeated) may hold. */
#define PREDICT_MAX_MODELS 16

typedef struct {
  const char *models[PREDICT_MAX_MODELS]; /* --model, in order */
  size_t model_count;
  const char *model_path;   /* the first (the one messages name when all agree) */
  const char *list_path, *out_npy, *csv_path;
  const char *locator_path;  /* --locator: positions from a locator network */
  const char *map_path;      /* --map FILE.npy: with --locator, p_lens times each pixel's probability of holding the object */
  int csv_from_out;          /* the CSV file was named by --out FILE.csv */
  char **inputs;            /* the positional arguments */
  int input_count;
  int bands_per_object;     /* --bands: FITS files per object (0: one file per object) */
  lens_cutout_options cutout;
  int minmax;               /* what is applied, once the model is known */
  lens_shard shard;
  int skip_done;
  int skip_bad;             /* --skip-bad: a FITS object that cannot be read or placed is named and skipped */
  size_t batch;
  size_t threads;           /* --threads: images of a batch spread over this many threads (0: the CPUs this process may use) */
  size_t mc;                /* regression: Monte Carlo dropout passes per object (0: one plain pass) */
  unsigned long long seed;  /* the passes' dropout masks */
  const char *samples_path; /* --samples FILE.npy: every pass's means [N, mc, targets] */
  int symmetries;           /* --symmetries: index into symmetry_choices (0: 1, 1: 2, 2: 8) */
  int mc_mean;              /* --mc-mean: the mean of the dropout passes, not of passes without dropout */
  int exact;                /* --exact: direct sums (lensnet_model_pack), not Winograd's (lensnet_model_pack_winograd) */
} predict_options;

static const char *const symmetry_choices[] = {"1", "2", "8", NULL};

#define T predict_options
static const lens_option predict_rows[] = {
  LENS_ARGS(T, "INPUT", 0, inputs, input_count, ".npy batch [N,C,H,W] (or [C,H,W]; [N,H,W] for one band) or FITS file"),
  LENS_LIST_FLAGS(T, "model", LENS_OPT_REQUIRED, models, model_count, PREDICT_MAX_MODELS, "MODEL.safetensors",
                  "the lens finder; repeated (up to 16), an ensemble of classifiers: each object's\n"
                  "class probabilities averaged over the models (with --symmetries, over every\n"
                  "model's views); the models take the same input and give the same classes"),
  LENS_INT(T, "bands", bands_per_object, 1, 64, 0, "B", "B consecutive FITS files form one object, one band each"),
  LENS_TEXT(T, "list", 0, list_path, NULL, "FILE", "read inputs from FILE, one object per line (with --bands, B paths per line)"),
  LENS_CUSTOM(T, "shard", 0, shard, lens_parse_shard, "I/N", "score only shard I of N: objects [I n/N, (I+1) n/N) of the n objects of all\n"
              "inputs; with --out, FILE.shard.json records it (lens merge joins shards)"),
  LENS_FLAG(T, "skip-done", skip_done, "with --shard and --out: do nothing if the output already holds this shard, complete"),
  LENS_FLAG(T, "skip-bad", skip_bad, "a FITS object that cannot be read or does not fit the model (a damaged\n"
            "file, another size without --resize, a missing band) or has a band that\n"
            "holds no image is named on stderr and left out (no row), and the run goes\n"
            "on; a note at the end counts them (if every object is left out, the run\n"
            "fails). Without it the first object that cannot be read or fit stops the\n"
            "run"),
  LENS_CUTOUT_OPTIONS(T, cutout),
  LENS_SIZE(T, "batch", batch, 1, 65536, 32, "B", "objects read and prepared together (default 32; at most 4 per thread are\n"
            "held, so memory is the model's whatever B); each object gets its own forward\n"
            "pass, so scores do not depend on B"),
  LENS_SIZE(T, "threads", threads, 1, 256, 0, "T", "threads sharing each batch (default: the CPUs this process may use); scores do not depend on T"),
  LENS_FLAG(T, "exact", exact, "every convolution as direct sums, the same bits as lensnet_model_forward\n"
            "(and lens explain); by default, on AVX-512 CPUs, 3x3 and 5x5 convolutions\n"
            "run as Winograd's F(2x2,3x3) and F(2x2,5x5), faster, scores equal to\n"
            "rounding (docs/predict.md)"),
  LENS_TEXT(T, "out", 0, out_npy, NULL, "FILE", "FILE.npy: the raw logits [N, classes] as float32 (no CSV on standard output;\n"
            "with --symmetries the logs of the views' mean probabilities);\n"
            "FILE.csv: the CSV there instead of standard output"),
  LENS_TEXT(T, "csv", 0, csv_path, NULL, "FILE.csv", "write the CSV there (beside an --out FILE.npy)"),
  LENS_TEXT(T, "locator", 0, locator_path, NULL, "L.safetensors", "a locator (a regression on center_x, center_y with a pixel_scale)\n"
            "run on each cutout, scaled as its own metadata says: adds x,y,\n"
            "x_sigma,y_sigma (input pixels) and center_x,center_y (arcsec from\n"
            "the centre); one prediction on the cutout as given (docs/predict.md)"),
  LENS_TEXT(T, "map", 0, map_path, NULL, "FILE.npy", "with --locator: a per-pixel lens map [N, H, W] (the model's input grid):\n"
            "p_lens times the probability that the object's position, distributed\n"
            "as the locator says (x, y, x_sigma, y_sigma), falls in each pixel"),
  LENS_SIZE(T, "mc", mc, 2, 100000, 0, "N", "regression models: N passes with dropout on (Monte Carlo dropout); each\n"
            "target's sigma then adds the spread of the passes to the aleatoric part;\n"
            "the means come from the network without dropout (one more pass, or\n"
            "one per view), free of the passes' sampling noise; with --symmetries\n"
            "N must be a multiple of its count"),
  LENS_FLAG(T, "mc-mean", mc_mean, "with --mc: the means are the average of the N dropout passes (as\n"
            "Perreault Levasseur et al. 2017) instead"),
  LENS_SEED(T, "seed", seed, 1, "S", "seed of the --mc dropout masks (default 1); object k's passes depend only on\n"
            "S and k, not on --batch, --threads or --shard"),
  LENS_TEXT(T, "samples", 0, samples_path, NULL, "FILE.npy", "with --mc: every dropout pass's means in physical units, [N, mc, targets]\n"
            "(the model's correction of the means applied; their average is the CSV's\n"
            "mean only with --mc-mean)"),
  LENS_CHOICE(T, "symmetries", 0, symmetries, symmetry_choices, 0, "1|2|8", "test-time symmetries: 8 averages the predictions for the image's 8\n"
              "flips and quarter turns (square inputs), 2 for the image and its half\n"
              "turn (any shape; for data whose only symmetry is a half turn).\n"
              "Classifiers: the views' class probabilities are averaged (the logit\n"
              "columns become the logs of those means). Regression models: each\n"
              "view's prediction is turned back into the image's frame (theta_E\n"
              "unchanged; the centre and e1, e2 follow the image); plain passes,\n"
              "or with --mc N (a multiple of the views) N/views dropout passes per\n"
              "view and the plain ones for the means; --locator's positions come\n"
              "from the image as it is; 1 (default) the image as it is"),
};
#undef T
static const lens_option_section predict_sections[] = {{NULL, predict_rows, sizeof predict_rows / sizeof predict_rows[0]}};
static const lens_command_spec predict_spec = {
  "predict", "usage: lens predict --model MODEL.safetensors [options] INPUT...\n", NULL, NULL, predict_sections, 1,
  "Output CSV: input,p_lens,logit_<class>... one row per object; for a regression model (lens\n"
  "modelling, docs/modelling.md) input,<target>,<target>_sigma... in physical units; with --locator\n"
  "the finder's columns, then x,y,x_sigma,y_sigma,center_x,center_y. Missing folders of output files\n"
  "are created. A terminal shows a progress line on stderr. Exit status: 0 done, 1 failure\n"
  "(a file), 2 usage error.\n"};

/* Objects held at once per thread: enough to keep each thread busy between reads, few enough that
 * the memory is the model's, not the batch's (OU-200: 0.64 MB an object). */
#define PREDICT_PER_THREAD 4

/* One object waiting to be scored (its pixels, in the model's input shape, are its slot of the
 * state's input buffer: placed there when it arrives, scaled by the task that runs its forward
 * pass, while they are in that core's cache). */
typedef struct {
  char label[512];
  size_t number;            /* the object's number among all inputs' objects (seeds its --mc passes) */
  size_t nan_pixels, inf_pixels; /* its non-finite pixels, counted when it is scaled */
} predict_object;

typedef struct {
  const predict_options *opt;
  lensnet_model *model;     /* the finder, the first of an ensemble (members[0]) */
  lensnet_model *members[PREDICT_MAX_MODELS]; /* --model repeated: the ensemble */
  lensnet_packed *member_packed[PREDICT_MAX_MODELS];
  size_t member_count;      /* 1 without an ensemble */
  size_t rows;              /* output rows per object: passes for each member, then plain */
  size_t model_ws;          /* the largest member's workspace for `passes` images (the copies follow it) */
  size_t lens_class;        /* which output is "lens" */
  predict_object *pending;
  size_t pending_count, object_number, scored, nan_pixels, inf_pixels, filled_pixels;
  int filter_note_shown;    /* the note that --bands files were put in the model's band order by FILTER */
  int cube_fed;             /* how the last FITS cube's planes were fed (lens_cube_by_band_names; 0: none yet) */
  lens_band_notes npy_notes; /* how each .npy's planes were fed (by the names of its bands.txt), for the notes */
  size_t scale_off;         /* FITS objects whose pixels, as the model sees them, differ from its pixel_scale */
  char scale_first[700];    /* the first of them, for the note */
  size_t blank_objects, filled_objects; /* objects with pixels set to 0, and with blanks a resize filled in */
  char blank_first[512], filled_first[512]; /* the first of each, for the notes */
  size_t empty_objects, empty_fits; /* objects scored with a plane that holds no image (empty_plane), FITS ones */
  char empty_first[760];    /* the first of them and its plane, for the note */
  int regress;              /* the model regresses (lensnet_model_regression) */
  lensnet_regression reg;
  size_t passes;            /* forward passes per object: --mc, else one per view (--symmetries) */
  size_t plain;             /* --mc without --mc-mean: passes without dropout for the means, after the
                             * --mc ones (one per view); 0 otherwise */
  size_t views;             /* --symmetries: 1, 2 or 8; pass k sees view k mod views (lensnet_view) */
  lensnet_npy_writer samples; /* --samples */
  size_t first, end;        /* the objects this run scores (by number): all, or its shard's */
  lensnet_npy_writer logits; /* --out FILE.npy: every scored row, streamed */
  lensnet_npy_writer map;   /* --map: one [H, W] plane per scored object */
  float *map_plane;
  lensnet_packed *packed;   /* the model's convolution weights, packed once (lensnet_model_pack) */
  lensnet_model *locator;   /* --locator */
  double locator_scale;     /* its pixel_scale, arcsec per input pixel */
  int locator_minmax;       /* its own preprocessing */
  float *locator_input;     /* the cutouts prepared for the locator: the finder's input when both scale alike */
  lensnet_location *located; /* each pending object's position */
  FILE *csv;
  int csv_header_done;      /* the header is written with the first row (or at the end): a run that
                               fails before scoring anything leaves no header-only CSV */
  char csv_tmp[4200];       /* the CSV file's temporary name until it is complete */
  float *input, *output, *workspace; /* one workspace per thread, ws_floats each */
  size_t ws_floats, chunk;
  size_t group;             /* objects held at once: --batch, at most PREDICT_PER_THREAD per thread */
  lens_pool *pool;
  int channel_note_shown;
  int failed;
  int not_the_object;       /* the last failure was not the object's own (a forward pass, memory): never skipped */
  size_t bad_objects;       /* --skip-bad: objects left out */
  char bad_first[512];      /* the first of them, for the note */
  lens_progress progress;
  int show_progress;
} predict_state;

/* Images [first, first + count) of the batch, one forward pass each: an image's activations stay
 * in cache and the workspace is one image's whatever --batch is (scores are each image's own, so
 * they are the same as a batched pass would give; measured: no slower for OU-66 or OU-200). */
static int forward_images(predict_state *s, size_t first, size_t count, float *workspace, lensnet_error *err) {
  const lensnet_model *m = s->model;
  size_t per = m->in_c * m->in_h * m->in_w, i, k;
  lensnet_cutout_desc desc = lens_cutout_desc(&s->opt->cutout, s->opt->minmax);
  for (i = first; i < first + count; i++) {
    lensnet_cutout_report report;
    lensnet_cutout_scale(m, &desc, s->input + i * per, &report); /* the placed cutout, scaled as the model wants */
    s->pending[i].nan_pixels = report.nan_pixels;
    s->pending[i].inf_pixels = report.inf_pixels;
    if (s->locator && s->locator_input != s->input) { /* the locator's copy, scaled as it wants */
      desc.minmax = s->locator_minmax;
      lensnet_cutout_scale(s->locator, &desc, s->locator_input + i * per, NULL);
      desc.minmax = s->opt->minmax;
    }
    if (s->passes > 1 || s->member_count > 1) {
      /* --mc, --symmetries or an ensemble: the object repeated once per pass after the workspace (pass
       * k turned to view k mod views); with --mc pass k draws its masks from (the object's seed, k) */
      float *copies = workspace + s->model_ws;
      float *out = s->output + i * s->rows * m->out_features;
      lensnet_result r;
      for (k = 0; k < s->passes; k++) lensnet_view(s->input + i * per, copies + k * per, m->in_c, m->in_h, m->in_w, (size_t)s->views, k);
      r = s->opt->mc ? lensnet_model_forward_mc(m, s->passes, copies, out, workspace,
                                                lensnet_mc_object_seed((uint64_t)s->opt->seed, (uint64_t)s->pending[i].number), err)
                     : lensnet_model_forward_packed(m, s->packed, s->passes, copies, out, workspace, err);
      /* an ensemble's other members: the same views, their rows after the first's (classifiers: no --mc) */
      for (k = 1; r == LENSNET_OK && k < s->member_count; k++)
        r = lensnet_model_forward_packed(s->members[k], s->member_packed[k], s->passes, copies, out + k * s->passes * m->out_features,
                                         workspace, err);
      /* the means' passes, dropout off: copies 0..views-1 are the views (copy 0 the image) */
      if (r == LENSNET_OK && s->plain) r = lensnet_model_forward_packed(m, s->packed, s->plain, copies, out + s->passes * m->out_features, workspace, err);
      if (r != LENSNET_OK) return 0;
      if (!s->regress) lensnet_logits_average(out, s->member_count * s->passes, m->out_features, out); /* into the first row */
      for (k = 0; s->regress && s->views > 1 && k < s->passes + s->plain; k++)
        lensnet_regression_turn_back(&s->reg, lensnet_view_transform(s->views, k), out + k * m->out_features);
    } else if (lensnet_model_forward_packed(m, s->packed, 1, s->input + i * per, s->output + i * m->out_features, workspace, err) != LENSNET_OK)
      return 0;
    if (s->locator && lensnet_cutout_locate(s->locator, s->locator_input + i * per, s->locator_scale, workspace, &s->located[i], err) != LENSNET_OK)
      return 0;
  }
  return 1;
}

/* The CSV's header, once, before its first row. */
static void csv_header(predict_state *s) {
  if (!s->csv || s->csv_header_done) return;
  s->csv_header_done = 1;
  if (s->regress) {
    size_t j;
    fprintf(s->csv, "input");
    for (j = 0; j < s->reg.count; j++) fprintf(s->csv, ",%s,%s_sigma", s->reg.names[j], s->reg.names[j]);
    fputc('\n', s->csv);
  } else {
    char name[64];
    size_t k;
    fprintf(s->csv, "input,p_lens");
    for (k = 0; k < s->model->out_features; k++) {
      lensnet_model_class_name(s->model, k, name, sizeof name, NULL);
      fprintf(s->csv, ",logit_%s", name);
    }
    if (s->locator) fputs(",x,y,x_sigma,y_sigma,center_x,center_y", s->csv);
    fputc('\n', s->csv);
  }
}

/* A regression model's row: each target's physical mean and sigma (CSV, --out .npy), and with
 * --samples every pass's means. */
static int write_regression(predict_state *s, size_t b) {
  const lensnet_model *m = s->model;
  const float *z = s->output + b * s->rows * m->out_features;
  double mean[LENSNET_REGRESSION_MAX], sigma[LENSNET_REGRESSION_MAX];
  float row[2 * LENSNET_REGRESSION_MAX];
  size_t j, k, T = s->reg.count;
  lensnet_error err;
  lensnet_regression_combine_plain(&s->reg, z, s->passes, z + s->passes * m->out_features, s->plain, m->out_features, mean, sigma,
                                   NULL, NULL);
  if (s->csv) {
    csv_header(s);
    lens_csv_cell(s->csv, s->pending[b].label);
    for (j = 0; j < T; j++) fprintf(s->csv, ",%.7g,%.7g", mean[j], sigma[j]);
    fputc('\n', s->csv);
  }
  for (j = 0; j < T; j++) { row[j] = (float)mean[j]; row[T + j] = (float)sigma[j]; }
  if (s->opt->out_npy && lensnet_npy_writer_append(&s->logits, row, 1, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (s->opt->samples_path) { /* one row [passes, targets] per object */
    float *passes = (float *)malloc(s->passes * T * sizeof(float));
    lensnet_result r;
    if (!passes) return lens_fail("out of memory");
    for (k = 0; k < s->passes; k++)
      for (j = 0; j < T; j++) passes[k * T + j] = (float)lensnet_regression_physical(&s->reg, j, z[k * m->out_features + j]);
    r = lensnet_npy_writer_append(&s->samples, passes, 1, &err);
    free(passes);
    if (r != LENSNET_OK) return lens_fail_err(&err);
  }
  return 0;
}

static void forward_chunk(void *ctx, size_t index, size_t worker) {
  predict_state *s = (predict_state *)ctx;
  size_t first = index * s->chunk, count = s->pending_count - first < s->chunk ? s->pending_count - first : s->chunk;
  lensnet_error err;
  if (!forward_images(s, first, count, s->workspace + worker * s->ws_floats, &err)) s->failed = 1;
}

static int run_batch(predict_state *s) {
  const lensnet_model *m = s->model;
  size_t b, k;
  lensnet_error err;
  if (!s->pending_count) return 0;
  if (s->opt->threads > 1 && s->pending_count > 1) {
    /* the batch in chunks, one forward pass each; every image's scores are its own */
    lensnet_parallel par = lens_pool_parallel(s->pool);
    size_t chunks = (s->pending_count + s->chunk - 1) / s->chunk;
    s->failed = 0;
    par.run(par.user, chunks, forward_chunk, s);
    if (s->failed) return lens_fail("forward pass failed");
  } else if (!forward_images(s, 0, s->pending_count, s->workspace, &err)) return lens_fail_err(&err);
  for (b = 0; b < s->pending_count; b++) {
    const float *z = s->output + b * s->rows * m->out_features; /* several passes (or models): averaged into the first */
    double p;
    if ((s->pending[b].nan_pixels || s->pending[b].inf_pixels) && s->blank_objects++ == 0)
      snprintf(s->blank_first, sizeof s->blank_first, "%s", s->pending[b].label);
    s->nan_pixels += s->pending[b].nan_pixels;
    s->inf_pixels += s->pending[b].inf_pixels;
    if (s->regress) {
      int rc = write_regression(s, b);
      if (rc) return rc;
      s->scored++;
      continue;
    }
    p = lensnet_lens_probability(z, m->out_features, s->lens_class);
    if (s->csv) {
      csv_header(s);
      lens_csv_cell(s->csv, s->pending[b].label);
      fprintf(s->csv, ",%.7g", p);
      for (k = 0; k < m->out_features; k++) fprintf(s->csv, ",%.7g", z[k]);
      if (s->locator) {
        const lensnet_location *at = &s->located[b];
        fprintf(s->csv, ",%.7g,%.7g,%.7g,%.7g,%.7g,%.7g", at->x, at->y, at->sigma_x, at->sigma_y, at->center_x, at->center_y);
      }
      fputc('\n', s->csv);
    }
    if (s->opt->out_npy && lensnet_npy_writer_append(&s->logits, z, 1, &err) != LENSNET_OK) return lens_fail_err(&err);
    if (s->opt->map_path) {
      lensnet_location_map(&s->located[b], p, m->in_h, m->in_w, s->map_plane);
      if (lensnet_npy_writer_append(&s->map, s->map_plane, 1, &err) != LENSNET_OK) return lens_fail_err(&err);
    }
    s->scored++;
  }
  s->pending_count = 0;
  if (s->show_progress)
    lens_progress_show(&s->progress, "predict", s->scored, s->end - s->first, "obj", -1.0, NULL);
  return 0;
}

/* Whether object `number` is this run's to score. */
static int in_range(const predict_state *s, size_t number) { return number >= s->first && number < s->end; }

/* The first input plane the model is fed (--channels, else the first in_c) that holds no image,
 * and the model band it feeds in *band; -1 when none. */
static int empty_plane(const predict_state *s, const float *image, size_t bands, size_t hw, size_t *band) {
  const lens_cutout_options *o = &s->opt->cutout;
  size_t c;
  for (c = 0; c < s->model->in_c; c++) {
    size_t p = o->channel_count ? o->channels[c] : c;
    if (p < bands && lensnet_plane_empty(image + p * hw, hw)) { *band = c; return (int)p; }
  }
  return -1;
}

/* Takes one object's image [bands, h, w], places it in its slot (lensnet_cutout_place: bands and
 * size; forward_images scales it) and queues it. `image` stays the caller's. An object with an
 * input plane that holds no image (empty_plane) is scored and counted for a note; with
 * --skip-bad, a FITS object (fits 1) is refused instead, so that add_paths leaves it out.
 * plane_files: with --bands, the file of each plane (else NULL), to name it. */
static int add_object(predict_state *s, size_t number, const char *label, const float *image, size_t bands, size_t h, size_t w,
                      int fits, char *const *plane_files) {
  const predict_options *o = s->opt;
  const lensnet_model *m = s->model;
  lensnet_cutout_desc desc;
  lensnet_cutout_report report;
  float *pix;
  predict_object *obj;
  int rc, empty;
  size_t band = 0;
  desc = lens_cutout_desc(&o->cutout, o->minmax);
  pix = s->input + s->pending_count * m->in_c * m->in_h * m->in_w; /* prepared in place, in its slot */
  if ((rc = lens_cutout_place(label, m, &desc, image, bands, h, w, pix, &report, &s->channel_note_shown)) != 0) return rc;
  if ((empty = empty_plane(s, image, bands, h * w, &band)) >= 0) {
    char name[64], where[760];
    lensnet_model_band_name(m, band, name, sizeof name, NULL);
    if (plane_files) snprintf(where, sizeof where, "%.600s (fed as the model's %s)", plane_files[empty], name);
    else if (bands > 1) snprintf(where, sizeof where, "%.600s, plane %d (fed as the model's %s)", label, empty, name);
    else snprintf(where, sizeof where, "%.600s (fed as the model's %s)", label, name);
    if (fits && o->skip_bad) return lens_fail("%s holds no image (every finite pixel the same value, or none finite)", where);
    if (s->empty_objects++ == 0) snprintf(s->empty_first, sizeof s->empty_first, "%s", where);
    if (fits) s->empty_fits++;
  }
  if (report.filled_pixels && s->filled_objects++ == 0) snprintf(s->filled_first, sizeof s->filled_first, "%s", label);
  s->filled_pixels += report.filled_pixels;
  if (s->locator && s->locator_input != s->input) { /* the same cutout for the locator (already checked: no note) */
    pix = s->locator_input + s->pending_count * m->in_c * m->in_h * m->in_w;
    if ((rc = lens_cutout_place(label, s->locator, &desc, image, bands, h, w, pix, &report, &s->channel_note_shown)) != 0) return rc;
  }
  obj = &s->pending[s->pending_count++];
  snprintf(obj->label, sizeof obj->label, "%s", label);
  obj->number = number; /* among all inputs' objects, those --skip-bad left out included: it seeds --mc */
  if (s->pending_count == s->group && (rc = run_batch(s)) != 0) s->not_the_object = 1;
  return rc;
}

/* How a .npy array holds objects: n of [c, h, w]; 0 and a message for a shape it cannot hold. */
static int npy_layout(const predict_state *s, const char *path, const lensnet_npy_info *in, size_t *n, size_t *c, size_t *h, size_t *w) {
  if (in->ndim == 4) { *n = in->shape[0]; *c = in->shape[1]; *h = in->shape[2]; *w = in->shape[3]; }
  else if (in->ndim == 3 && s->model->in_c == 1 && in->shape[0] != 1) { *n = in->shape[0]; *c = 1; *h = in->shape[1]; *w = in->shape[2]; }
  else if (in->ndim == 3) { *n = 1; *c = in->shape[0]; *h = in->shape[1]; *w = in->shape[2]; }
  else if (in->ndim == 2) { *n = 1; *c = 1; *h = in->shape[0]; *w = in->shape[1]; }
  else return !lens_fail("%s: expected an array [N,C,H,W], [C,H,W] or [H,W], got %d dimensions", path, in->ndim);
  return 1;
}

/* The objects of a .npy file in this run's range, read a batch of rows at a time. */
static int add_npy(predict_state *s, const char *path) {
  lensnet_npy_info info;
  lensnet_tensor t;
  lensnet_error err;
  size_t n = 0, c = 0, h = 0, w = 0, base = s->object_number, lo, hi, at, step = s->group, i, pick[64], k;
  int rc = 0, by_name = 0;
  float *picked = NULL;
  if (lensnet_npy_info_read(path, &info, &err) != LENSNET_OK) return lens_fail_err(&err);
  if (!npy_layout(s, path, &info, &n, &c, &h, &w)) return LENS_EXIT_FAIL;
  /* the planes by the names of a bands.txt beside the file (lens sim's), unless --channels says */
  if (!s->opt->cutout.channel_count && s->model->in_c <= 64 && (rc = lens_npy_band_pick(s->model, path, c, pick, &by_name, &s->npy_notes)) != 0)
    return rc;
  if (by_name && !(picked = (float *)malloc(s->model->in_c * h * w * sizeof(float)))) return lens_fail("out of memory");
  s->object_number = base + n;
  lo = s->first > base ? s->first : base;
  hi = s->end < base + n ? s->end : base + n;
  for (at = lo; at < hi && rc == 0; at += step) {
    size_t count = hi - at < step ? hi - at : step;
    /* one object in the whole file ([C,H,W] or [H,W]), or rows of the stack */
    lensnet_result r = n == 1 && info.ndim < 4 ? lensnet_npy_read(path, &t, &err) : lensnet_npy_read_rows(path, at - base, count, &t, &err);
    if (r != LENSNET_OK) { free(picked); return lens_fail_err(&err); }
    for (i = 0; i < count && rc == 0; i++) {
      char label[512];
      snprintf(label, sizeof label, "%s[%lu]", path, (unsigned long)(at - base + i));
      if (by_name) { /* the model's bands, in its order */
        for (k = 0; k < s->model->in_c; k++) memcpy(picked + k * h * w, t.data + (i * c + pick[k]) * h * w, h * w * sizeof(float));
        rc = add_object(s, at + i, label, picked, s->model->in_c, h, w, 0, NULL);
      } else
        rc = add_object(s, at + i, label, t.data + i * c * h * w, c, h, w, 0, NULL);
    }
    lensnet_tensor_free(&t);
  }
  free(picked);
  return rc;
}

/* Whether a FITS object's pixels, as the model sees them (per input pixel: times w / in_w with
 * --resize), are those of the model's metadata pixel_scale, to 1 %; those that are not are
 * counted, the first kept for the note at the end. Nothing without a scale in both. */
static void check_pixel_scale(predict_state *s, const char *path, size_t w) {
  const lensnet_model *m = s->model;
  double model_scale = 0.0, scale;
  const char *key;
  if (lensnet_model_pixel_scale(m, &model_scale, NULL) != LENSNET_OK || !(model_scale > 0.0) ||
      lensnet_fits_pixel_scale(path, s->opt->cutout.hdu, &scale, &key, NULL) != LENSNET_OK)
    return;
  if (s->opt->cutout.resize && w != m->in_w) scale *= (double)w / (double)m->in_w;
  if (fabs(scale / model_scale - 1.0) <= 0.01) return;
  if (s->scale_off++ == 0)
    snprintf(s->scale_first, sizeof s->scale_first, "%.400s has %.4g\"/pixel (FITS %s%s), the model was made for %.4g\"", path, scale, key,
             s->opt->cutout.resize && w != m->in_w ? ", resized" : "", model_scale);
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
  if (!in_range(s, s->object_number++)) return 0; /* another shard's: not even read */
  if (count > 1) { /* one band a file, in the model's order when their FILTER headers say it */
    size_t plane_of[64];
    char *files[64];
    if ((rc = lens_read_band_files(s->model, paths, count, s->opt->cutout.hdu, s->opt->cutout.channel_count == 0, &image, &h, &w, label,
                                   sizeof label, &s->filter_note_shown, plane_of)) != 0)
      return rc;
    for (i = 0; i < count; i++) files[plane_of[i]] = paths[i];
    rc = add_object(s, s->object_number - 1, label, image, (size_t)count, h, w, 1, files);
    if (rc == 0) check_pixel_scale(s, paths[0], w);
    free(image);
    return rc;
  }
  for (i = 0; i < count; i++) {
    size_t nb, th, tw;
    if (lensnet_fits_read(paths[i], s->opt->cutout.hdu, &t[i], &err) != LENSNET_OK) {
      while (i-- > 0) lensnet_tensor_free(&t[i]);
      return lens_fail_err(&err);
    }
    if (t[i].ndim == 2) { nb = 1; th = t[i].shape[0]; tw = t[i].shape[1]; }
    else if (t[i].ndim == 3) { nb = t[i].shape[0]; th = t[i].shape[1]; tw = t[i].shape[2]; }
    else if (t[i].ndim == 4 && t[i].shape[0] == 1) { nb = t[i].shape[1]; th = t[i].shape[2]; tw = t[i].shape[3]; } /* [1, bands, y, x] */
    else nb = th = tw = 0;
    if (!nb || (count > 1 && nb != 1) || (i > 0 && (th != h || tw != w))) {
      char shape[160];
      size_t at = 0;
      int d;
      for (d = 0; d < t[i].ndim && at < sizeof shape; d++)
        at += (size_t)snprintf(shape + at, sizeof shape - at, "%s%lu", d ? ", " : "[", (unsigned long)t[i].shape[d]);
      if (at < sizeof shape) snprintf(shape + at, sizeof shape - at, "]");
      rc = lens_fail("%s: %s%s", paths[i], !nb ? "expected a 2-D image or a 3-D cube [bands, y, x], got " : "",
                     !nb ? shape : (count > 1 && nb != 1) ? "with --bands each file must hold one band (a 2-D image)"
                                                          : "its size differs from the other bands of the object");
      for (; i >= 0; i--) lensnet_tensor_free(&t[i]);
      return rc;
    }
    h = th; w = tw; bands += nb;
    if (len < sizeof label) len += (size_t)snprintf(label + len, sizeof label - len, "%s%s", i ? "+" : "", paths[i]);
  }
  hw = h * w;
  image = (float *)malloc(bands * hw * sizeof(float));
  if (!image) {
    for (i = 0; i < count; i++) lensnet_tensor_free(&t[i]);
    s->not_the_object = 1;
    return lens_fail("out of memory");
  }
  for (i = 0, b = 0; i < count; i++) {
    size_t nb = t[i].ndim == 3 ? t[i].shape[0] : t[i].ndim == 4 ? t[i].shape[1] : 1;
    memcpy(image + b * hw, t[i].data, nb * hw * sizeof(float));
    /* a cube whose BAND1, BAND2, ... cards name the model's bands in another order: fed by name */
    if (count == 1 && s->opt->cutout.channel_count == 0 &&
        (rc = lens_cube_by_band_names(s->model, paths[i], s->opt->cutout.hdu, image + b * hw, nb, hw, &s->cube_fed)) != 0) {
      free(image);
      for (; i < count; i++) lensnet_tensor_free(&t[i]);
      return rc;
    }
    b += nb;
    lensnet_tensor_free(&t[i]);
  }
  rc = add_object(s, s->object_number - 1, label, image, bands, h, w, 1, NULL);
  if (rc == 0) check_pixel_scale(s, paths[0], w);
  free(image);
  return rc;
}

/* Dispatches a group of paths that form one object (FITS) or one file of many (npy). */
static int add_paths(predict_state *s, char **paths, int count) {
  int rc;
  if (count == 1 && (lens_format_of(paths[0]) == LENS_FMT_NPY)) return add_npy(s, paths[0]);
  s->not_the_object = 0;
  errno = 0;
  rc = add_fits(s, paths, count);
  /* --skip-bad: the object's own failure (its message already on stderr: a damaged or missing
     file, a size or band count that does not fit) leaves it out. What is not the object's stops
     the run: a failed forward pass of the batch it completed, memory, the process's open files,
     the disk. */
  if (rc != 0 && (errno == ENOMEM || errno == EMFILE || errno == ENFILE || errno == EIO)) s->not_the_object = 1;
  if (rc != 0 && s->opt->skip_bad && !s->not_the_object) {
    if (s->bad_objects++ == 0) snprintf(s->bad_first, sizeof s->bad_first, "%s", paths[0]);
    fprintf(stderr, "lens: --skip-bad: %s%s left out\n", paths[0], count > 1 ? " and its other bands" : "");
    rc = 0;
  }
  return rc;
}

/* The paths of one --list line, in place: their count (0 for a blank line or a comment), at most
 * max. A UTF-8 byte-order mark at the start is dropped. A '#' at the start of the line or after a
 * blank, tab or comma begins a comment. The separators: tabs and commas when the line has any,
 * else blanks; with one path per object (want 1) a line without tabs or commas is one path, so
 * a name may hold spaces. Blanks (and a carriage return) at each path's ends are dropped.
 * add_list_file and count_list_lines both read lines through it, so they agree. */
static int list_line_paths(char *line, int want, char **words, int max) {
  const char *seps;
  char *p = line, *q;
  int n = 0;
  if ((unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF) p += 3;
  for (q = p; *q; q++)
    if (*q == '#' && (q == p || q[-1] == ' ' || q[-1] == '\t' || q[-1] == ',' || q[-1] == '\r')) { *q = 0; break; }
  seps = strpbrk(p, "\t,") ? "\t,\r\n" : want == 1 ? "\r\n" : " \r\n";
  while (*p && n < max) {
    char *end;
    while (*p == ' ' || *p == '\r' || (*p && strchr(seps, *p))) *p++ = 0;
    if (!*p) break;
    words[n++] = p;
    p += strcspn(p, seps);
    for (end = p; end > words[n - 1] && (end[-1] == ' ' || end[-1] == '\r'); end--) end[-1] = 0;
  }
  return n;
}

static int add_list_file(predict_state *s, const char *list_path) {
  FILE *f = fopen(list_path, "r");
  char line[8192];
  int line_no = 0, rc = 0, want = s->opt->bands_per_object ? s->opt->bands_per_object : 1;
  if (!f) return lens_fail("%s: cannot open the list: %s", list_path, strerror(errno));
  while (rc == 0 && fgets(line, sizeof line, f)) {
    char *words[64];
    int n;
    line_no++;
    if (!strchr(line, '\n') && !feof(f)) { rc = lens_fail("%s:%d: line too long", list_path, line_no); break; }
    if ((n = list_line_paths(line, want, words, 64)) == 0) continue;
    if (n != want) { rc = lens_fail("%s:%d: expected %d path(s) per line, found %d (paths are separated by tabs or commas where a line has any, else by blanks)", list_path, line_no, want, n); break; }
    if ((s->opt->out_npy && lens_out_not_input("--out", s->opt->out_npy, (const char *const *)words, (size_t)n, NULL)) ||
        (s->opt->csv_path && lens_out_not_input(s->opt->csv_from_out ? "--out" : "--csv", s->opt->csv_path, (const char *const *)words, (size_t)n, NULL)) ||
        (s->opt->map_path && lens_out_not_input("--map", s->opt->map_path, (const char *const *)words, (size_t)n, NULL))) {
      rc = LENS_EXIT_USAGE;
      break;
    }
    rc = add_paths(s, words, n);
  }
  if (rc == 0 && ferror(f)) rc = lens_fail("%s: cannot read the list: %s", list_path, strerror(errno));
  fclose(f);
  return rc;
}

/* Objects a list file names: its lines that hold paths, as add_list_file reads them (which says
 * why when the list cannot be read). */
static size_t count_list_lines(const char *path, int want) {
  FILE *f = fopen(path, "r");
  char line[8192];
  char *words[64];
  size_t n = 0;
  if (!f) return 0;
  while (fgets(line, sizeof line, f)) n += list_line_paths(line, want, words, 64) > 0;
  fclose(f);
  return n;
}

/* Objects in all inputs, in order: a .npy's from its header, one per FITS file or group. Counted
 * before any is scored, so that a shard knows its range. */
static int count_objects(const predict_options *o, const predict_state *s, size_t *total) {
  int step = o->bands_per_object ? o->bands_per_object : 1, i;
  *total = 0;
  for (i = 0; i < o->input_count; i += step) {
    if (step == 1 && (lens_format_of(o->inputs[i]) == LENS_FMT_NPY)) {
      lensnet_npy_info info;
      lensnet_error err;
      size_t n = 0, c, h, w;
      if (lensnet_npy_info_read(o->inputs[i], &info, &err) != LENSNET_OK) return lens_fail_err(&err);
      if (!npy_layout(s, o->inputs[i], &info, &n, &c, &h, &w)) return LENS_EXIT_FAIL;
      *total += n;
    } else (*total)++;
  }
  if (o->list_path) {
    FILE *f = fopen(o->list_path, "r");
    if (!f) return lens_fail("%s: cannot open the list", o->list_path);
    fclose(f);
    *total += count_list_lines(o->list_path, o->bands_per_object ? o->bands_per_object : 1);
  }
  return 0;
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
      o->csv_from_out = 1;
    }
  }
  if (o->csv_path && lens_out_format("--csv", o->csv_path, LENS_FMT_CSV) == LENS_FMT_NONE) return LENS_EXIT_USAGE;
  if (o->locator_path && o->out_npy && !o->csv_path)
    return lens_usage("--locator adds columns to the CSV, and --out %s writes the logits alone; add --csv FILE.csv", o->out_npy);
  if (o->map_path && !o->locator_path)
    return lens_usage("--map %s draws where a locator puts each object: give --locator L.safetensors", o->map_path);
  if (o->map_path && lens_out_format("--map", o->map_path, LENS_FMT_NPY) == LENS_FMT_NONE) return LENS_EXIT_USAGE;
  if (o->map_path && o->shard.count)
    return lens_usage("--map writes one file for all objects and lens merge does not join maps: score the whole input, without --shard");
  if (o->map_path && ((o->out_npy && !strcmp(o->map_path, o->out_npy)) || (o->csv_path && !strcmp(o->map_path, o->csv_path))))
    return lens_usage("--map %s is also the --out or --csv file: give each output its own name", o->map_path);
  {
    /* no output may be an input: the images, the list, a model (the same name or the same file) */
    const char *outs[3], *flags[3] = {"--out", NULL, "--map"};
    int k;
    outs[0] = o->out_npy; outs[1] = o->csv_path; outs[2] = o->map_path;
    flags[1] = o->csv_from_out ? "--out" : "--csv";
    for (k = 0; k < 3; k++) {
      if (!outs[k]) continue;
      if (lens_out_not_input(flags[k], outs[k], (const char *const *)o->inputs, (size_t)o->input_count, NULL) ||
          lens_out_not_input(flags[k], outs[k], o->models, (size_t)o->model_count, NULL) ||
          lens_out_not_input(flags[k], outs[k], &o->list_path, 1, NULL) || lens_out_not_input(flags[k], outs[k], &o->locator_path, 1, NULL))
        return LENS_EXIT_USAGE;
    }
  }
  if (o->skip_done && (!o->shard.count || (!o->out_npy && !o->csv_path)))
    return lens_usage("--skip-done needs --shard I/N and an output file (--out FILE.csv or FILE.npy): its manifest says when it is done");
  return 0;
}

/* ---- shards: manifests beside the output files ---------------------------------------------- */

/* The manifest of output `file`: its path, and what it says (the folder of `file` into dir). */
static void shard_manifest_of(const predict_state *s, const char *file, const char *run, lens_shard_manifest *m, char *path, size_t cap,
                              char *dir, size_t dcap) {
  const char *slash = strrchr(file, '/');
  memset(m, 0, sizeof *m);
  snprintf(path, cap, "%s.shard.json", file);
  if (slash) snprintf(dir, dcap, "%.*s", (int)(slash - file), file);
  else snprintf(dir, dcap, ".");
  snprintf(m->command, sizeof m->command, "predict");
  snprintf(m->run, sizeof m->run, "%s", run);
  m->shard = s->opt->shard.index;
  m->shards = s->opt->shard.count;
  m->first = s->first;
  m->end = s->end;
  m->total = s->object_number;
  m->left_out = s->bad_objects;
  m->nfiles = 1;
  snprintf(m->files[0], sizeof m->files[0], "%s", slash ? slash + 1 : file);
}

/* what = 0: 1 when every output already holds this shard (--skip-done), else 0;
 * what = 1: removes stale manifests before the outputs are touched; what = 2: writes them. */
static int shard_manifests(const predict_state *s, int argc, char **argv, int what) {
  const char *files[2];
  char run[17], path[4400], dir[4200];
  int i, n = 0, done = 1;
  if (!s->opt->shard.count) return 0;
  if (s->opt->out_npy) files[n++] = s->opt->out_npy;
  if (s->opt->csv_path) files[n++] = s->opt->csv_path;
  if (!n) return 0; /* the CSV on standard output: nothing to record */
  lens_shard_run_id(argc, argv, run);
  if (s->plain) {
    /* --mc's means changed (from the dropout passes' average to passes without dropout): shards of
     * the two kinds carry different run ids, so that --skip-done and lens merge never mix them */
    unsigned long long h = strtoull(run, NULL, 16);
    const char *p;
    for (p = "mc means without dropout"; *p; p++) { h ^= (unsigned char)*p; h *= 1099511628211ull; }
    snprintf(run, sizeof run, "%016llx", h);
  }
  for (i = 0; i < n; i++) {
    lens_shard_manifest m;
    shard_manifest_of(s, files[i], run, &m, path, sizeof path, dir, sizeof dir);
    if (what == 0) done &= lens_shard_done(path, dir, &m);
    else if (what == 1) remove(path);
    else if (lens_shard_manifest_write(path, &m)) return LENS_EXIT_FAIL;
  }
  return what == 0 ? done : 0;
}

/* --locator: a locator (lens_locator_open) for the finder's cutouts, so with its input's size. */
static int open_locator(const predict_options *o, predict_state *s) {
  const lensnet_model *m = s->model, *l;
  int rc;
  if (s->regress)
    return lens_usage("--locator gives positions beside a finder's scores; %s is a lens-modelling (regression) network, whose "
                      "targets may include center_x, center_y themselves", o->model_path);
  if ((rc = lens_locator_open(o->locator_path, &s->locator, &s->locator_scale, &s->locator_minmax)) != 0) return rc;
  l = s->locator;
  if (l->in_c != m->in_c || l->in_h != m->in_h || l->in_w != m->in_w)
    return lens_usage("--locator %s takes %lux%lux%lu inputs (bands x height x width) but the finder %s takes %lux%lux%lu; the locator "
                      "reads the finder's cutouts, so they must agree", o->locator_path, (unsigned long)l->in_c, (unsigned long)l->in_h,
                      (unsigned long)l->in_w, o->model_path, (unsigned long)m->in_c, (unsigned long)m->in_h, (unsigned long)m->in_w);
  return 0;
}

/* An ensemble's members after the first (--model repeated): loaded, packed and checked against the
 * first, whose input, classes and preprocessing they must share (the cutouts are prepared once). */
static int open_members(predict_options *o, predict_state *s) {
  const lensnet_model *m = s->model;
  lensnet_error err;
  size_t j, k;
  int minmax;
  const char *key;
  s->members[0] = s->model;
  s->member_packed[0] = s->packed;
  s->member_count = 1;
  if (o->model_count < 2) return 0;
  if (s->regress)
    return lens_usage("--model given %lu times: an ensemble averages classifiers' probabilities; %s is a lens-modelling (regression) "
                      "network", (unsigned long)o->model_count, o->model_path);
  if (o->locator_path || o->map_path)
    return lens_usage("--locator with several --model: give one finder (the locator's positions sit beside one finder's scores)");
  for (j = 1; j < o->model_count; j++) {
    const char *path = o->models[j];
    lensnet_model *e;
    char a[64], b[64];
    if (lensnet_model_load(path, &s->members[j], &err) != LENSNET_OK) return lens_fail_err(&err);
    e = s->members[j];
    s->member_count = j + 1; /* freed by the caller from here on */
    if ((o->exact ? lensnet_model_pack(e, &s->member_packed[j], &err) : lensnet_model_pack_winograd(e, &s->member_packed[j], &err)) != LENSNET_OK)
      return lens_fail_err(&err);
    if (lensnet_model_meta(e, "regress.targets"))
      return lens_usage("--model %s is a lens-modelling (regression) network; an ensemble averages classifiers' probabilities", path);
    if (e->in_c != m->in_c || e->in_h != m->in_h || e->in_w != m->in_w)
      return lens_usage("--model %s takes %lux%lux%lu inputs (bands x height x width) but %s takes %lux%lux%lu; an ensemble's models "
                        "read the same cutouts, so they must agree", path, (unsigned long)e->in_c, (unsigned long)e->in_h,
                        (unsigned long)e->in_w, o->model_path, (unsigned long)m->in_c, (unsigned long)m->in_h, (unsigned long)m->in_w);
    if (e->out_features != m->out_features)
      return lens_usage("--model %s gives %lu outputs but %s gives %lu; an ensemble's models give the same classes", path,
                        (unsigned long)e->out_features, o->model_path, (unsigned long)m->out_features);
    for (k = 0; k < m->out_features; k++) {
      lensnet_model_class_name(m, k, a, sizeof a, NULL);
      lensnet_model_class_name(e, k, b, sizeof b, NULL);
      if (strcmp(a, b))
        return lens_usage("--model %s calls output %lu '%s' but %s calls it '%s'; an ensemble's models give the same classes in the "
                          "same order", path, (unsigned long)k, b, o->model_path, a);
    }
    /* the cutouts are scaled once, as the first model says (or as --preprocess says for all) */
    if (o->cutout.preprocess == LENS_PREPROCESS_UNSET) {
      if (lensnet_model_preprocess(e, &minmax, &key, &err) != LENSNET_OK)
        return lens_fail("%s: %s; choose with --preprocess minmax|none", path, err.message);
      if (minmax != o->minmax)
        return lens_usage("--model %s %s min-max normalisation but %s %s; an ensemble's models read the same cutouts (--preprocess "
                          "minmax|none sets it for all)", path, minmax ? "applies" : "does not apply", o->model_path,
                          o->minmax ? "does" : "does not");
    }
  }
  fprintf(stderr, "lens: an ensemble of %lu finders: each object's class probabilities averaged over them\n",
          (unsigned long)s->member_count);
  return 0;
}

/* The model, its normalisation and the buffers of one batch. */
static int open_model(predict_options *o, predict_state *s) {
  lensnet_error err;
  size_t per, ws, j;
  int rc;
  o->model_path = o->models[0];
  if (lensnet_model_load(o->model_path, &s->model, &err) != LENSNET_OK) return lens_fail_err(&err);
  s->members[0] = s->model;
  s->member_count = 1;
  s->opt = o;
  if (s->model->in_c > 64)
    return lens_fail("%s: the model takes %lu bands; lens predict handles up to 64", o->model_path, (unsigned long)s->model->in_c);
  lensnet_model_class_index(s->model, "lens", &s->lens_class, NULL); /* cannot fail: the model has outputs */
  if ((o->exact ? lensnet_model_pack(s->model, &s->packed, &err) : lensnet_model_pack_winograd(s->model, &s->packed, &err)) != LENSNET_OK)
    return lens_fail_err(&err);
  if (lensnet_model_meta(s->model, "regress.targets")) {
    if (lensnet_model_regression(s->model, &s->reg, &err) != LENSNET_OK) return lens_fail("%s: %s", o->model_path, err.message);
    s->regress = 1;
  } else if (o->mc || o->samples_path || o->mc_mean)
    return lens_usage("--mc, --mc-mean and --samples are for regression models; %s is a classifier", o->model_path);
  if (!s->regress) {
    /* what p_lens is, when the names do not say it plainly */
    const char *names = lensnet_model_meta(s->model, "classes"), *c;
    size_t listed = names ? 1 : 0, k;
    int has_lens = 0;
    char name[64];
    for (c = names; c && *c; c++) listed += *c == ',';
    for (k = 0; k < s->model->out_features; k++) {
      lensnet_model_class_name(s->model, k, name, sizeof name, NULL);
      has_lens |= !strcmp(name, "lens");
    }
    lensnet_model_class_name(s->model, s->lens_class, name, sizeof name, NULL);
    if (names && listed != s->model->out_features)
      fprintf(stderr, "lens: note: %s names %lu classes (metadata classes=%s) for its %lu outputs; p_lens is output %lu's probability\n",
              o->model_path, (unsigned long)listed, names, (unsigned long)s->model->out_features, (unsigned long)s->lens_class);
    else if (names && s->model->out_features > 2 && !has_lens)
      fprintf(stderr, "lens: note: %s has no class named lens: p_lens is the probability of its last class, %s (the logit_ columns "
              "give every class)\n", o->model_path, name);
  }
  if (o->samples_path && !o->mc) return lens_usage("--samples needs --mc N");
  if (o->mc_mean && !o->mc) return lens_usage("--mc-mean chooses how --mc N's means are made; give --mc N");
  s->views = o->symmetries == 2 ? 8 : o->symmetries == 1 ? 2 : 1;
  if (s->views == 8 && s->model->in_h != s->model->in_w)
    return lens_usage("--symmetries 8 needs a square input; %s takes %lu x %lu (--symmetries 2, the half turn, takes any shape)",
                      o->model_path, (unsigned long)s->model->in_h, (unsigned long)s->model->in_w);
  if (s->views > 1 && o->mc % s->views)
    return lens_usage("--symmetries %lu with --mc %lu: N must be a multiple of %lu (each view gets N/%lu passes)", (unsigned long)s->views,
                      (unsigned long)o->mc, (unsigned long)s->views, (unsigned long)s->views);
  if (s->views > 1 && s->regress && lensnet_regression_symmetric_views(&s->reg, (int)s->views, &err) != LENSNET_OK)
    return lens_usage("--symmetries %lu: %s: %s", (unsigned long)s->views, o->model_path, err.message);
  if (o->locator_path && (rc = open_locator(o, s)) != 0) return rc;
  /* the sigmas' calibration holds for the settings it was fitted with (after the checks of the
   * options, so that a usage error is not preceded by this note) */
  if (s->regress) {
    const char *calibrated = lensnet_model_meta(s->model, "regress.calibration_predict");
    char own[96], then[256], now[256];
    own[0] = 0;
    if (o->mc) snprintf(own, sizeof own, "--mc %lu ", (unsigned long)o->mc);
    snprintf(own + strlen(own), sizeof own - strlen(own), "--symmetries %s%s", symmetry_choices[o->symmetries], o->mc_mean ? " --mc-mean" : "");
    if (calibrated && lensnet_model_meta(s->model, "regress.scale") && lens_predict_settings(calibrated, then, sizeof then) &&
        lens_predict_settings(own, now, sizeof now) && strcmp(now, then))
      fprintf(stderr, "lens: note: %s's sigmas were calibrated on predictions made with %s (regress.calibration_predict); these are made "
              "with %s, so their intervals may not hold what they say (lens calibrate again for these settings)\n", o->model_path, then, now);
  }
  if (s->regress && !s->reg.nll && !o->mc && s->views == 1)
    fprintf(stderr, "lens: note: %s was trained with mse and has no variance output: without --mc the _sigma columns are 0\n", o->model_path);
  /* after the checks of the options, so that a usage error is not preceded by this note */
  if ((o->minmax = lens_preprocess_resolve(s->model, o->cutout.preprocess)) < 0) return LENS_EXIT_FAIL;
  if ((rc = open_members(o, s)) != 0) return rc;
  s->passes = o->mc ? o->mc : s->views;
  s->plain = o->mc && !o->mc_mean ? s->views : 0; /* <= passes: --mc is a multiple of the views */
  s->rows = s->member_count * s->passes + s->plain;
  per = s->model->in_c * s->model->in_h * s->model->in_w;
  if (!o->threads) o->threads = lens_pool_default_threads();
  /* Every object gets its own forward pass, so how many are held at once changes only the memory,
   * never a score: at most PREDICT_PER_THREAD per thread, whatever --batch asks. */
  s->group = o->batch < PREDICT_PER_THREAD * o->threads ? o->batch : PREDICT_PER_THREAD * o->threads;
  s->chunk = (s->group + o->threads - 1) / o->threads;
  /* one image at a time, per thread (--mc: its passes, and their copies of the image) */
  for (j = 0, ws = 0; j < s->member_count; j++) {
    size_t need = lensnet_model_workspace_floats(s->members[j], s->passes);
    if (!need) { ws = 0; break; } /* reported as out of memory below */
    if (need > ws) ws = need;
  }
  s->model_ws = ws;
  if (ws && s->rows > 1) ws += s->passes * per;
  if (s->locator && ws < lensnet_model_workspace_floats(s->locator, 1)) ws = lensnet_model_workspace_floats(s->locator, 1); /* run after the finder */
  s->ws_floats = ws;
  if (!ws || ws > ((size_t)-1 / sizeof(float)) / o->threads) ws = 0; /* reported as out of memory below */
  ws *= o->threads;
  s->pool = lens_pool_create(o->threads);
  s->pending = (predict_object *)calloc(s->group, sizeof *s->pending);
  s->input = (float *)malloc(s->group * per * sizeof(float));
  s->output = (float *)malloc(s->group * s->rows * s->model->out_features * sizeof(float));
  s->workspace = ws ? (float *)malloc(ws * sizeof(float)) : NULL;
  if (!s->pending || !s->input || !s->output || !s->workspace) return lens_fail("out of memory for a batch of %lu", (unsigned long)s->group);
  if (s->locator) {
    s->locator_input = s->locator_minmax == o->minmax ? s->input : (float *)malloc(s->group * per * sizeof(float));
    s->located = (lensnet_location *)calloc(s->group, sizeof *s->located);
    if (!s->locator_input || !s->located) return lens_fail("out of memory for a batch of %lu", (unsigned long)s->group);
  }
  return 0;
}

/* The CSV (on standard output, unless --out alone asks for the logits only; --csv names a file)
 * and the .npy of the logits. */
static int open_outputs(const predict_options *o, predict_state *s) {
  lensnet_error err;
  if (o->csv_path && !(s->csv = lens_text_open(o->csv_path, s->csv_tmp, sizeof s->csv_tmp))) return LENS_EXIT_FAIL;
  if (!o->csv_path && !o->out_npy) s->csv = stdout;
  if (o->out_npy) {
    size_t shape[2];
    shape[0] = LENSNET_NPY_ROWS_UNKNOWN;
    shape[1] = s->regress ? 2 * s->reg.count : s->model->out_features; /* regression: the means, then the sigmas */
    if (lensnet_npy_writer_begin(&s->logits, o->out_npy, 2, shape, &err) != LENSNET_OK) return lens_fail_err(&err);
  }
  if (o->samples_path) {
    size_t shape[3];
    shape[0] = LENSNET_NPY_ROWS_UNKNOWN; shape[1] = s->passes; shape[2] = s->reg.count;
    if (lensnet_npy_writer_begin(&s->samples, o->samples_path, 3, shape, &err) != LENSNET_OK) return lens_fail_err(&err);
  }
  if (o->map_path) {
    size_t shape[3];
    shape[0] = LENSNET_NPY_ROWS_UNKNOWN; shape[1] = s->model->in_h; shape[2] = s->model->in_w;
    if (!(s->map_plane = (float *)malloc(shape[1] * shape[2] * sizeof(float)))) return lens_fail("out of memory for the --map plane");
    if (lensnet_npy_writer_begin(&s->map, o->map_path, 3, shape, &err) != LENSNET_OK) return lens_fail_err(&err);
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
  for (i = 0; i < o->input_count && rc == 0; i += step) rc = add_paths(s, o->inputs + i, step);
  if (rc == 0 && o->list_path) rc = add_list_file(s, o->list_path);
  /* every object left out: in a whole run, a reason shared by all (an option, the model) is likelier
     than so many bad files; a shard's objects may all be bad (cutouts off a survey's footprint come
     together when objects are listed by position), so a shard goes on and lens merge checks the run */
  if (rc == 0 && s->bad_objects && s->bad_objects == s->end - s->first && !o->shard.count)
    rc = lens_fail("--skip-bad left out every object (%lu of %lu), the first %s: a reason shared by all is more likely an option or the "
                   "model than the files", (unsigned long)s->bad_objects, (unsigned long)(s->end - s->first), s->bad_first);
  if (rc == 0) rc = run_batch(s);
  if (rc == 0) csv_header(s); /* no rows: the header alone */
  lens_progress_end(&s->progress);
  if (rc == 0) lens_cutout_note(s->nan_pixels, s->inf_pixels, s->filled_pixels);
  if (rc == 0 && s->blank_objects)
    fprintf(stderr, "lens: note: pixels set to 0 in %lu object%s, the first %s\n", (unsigned long)s->blank_objects,
            s->blank_objects == 1 ? "" : "s", s->blank_first);
  if (rc == 0 && s->filled_objects)
    fprintf(stderr, "lens: note: blank pixels filled in by the resize in %lu object%s, the first %s\n", (unsigned long)s->filled_objects,
            s->filled_objects == 1 ? "" : "s", s->filled_first);
  if (rc == 0 && s->empty_objects)
    fprintf(stderr, "lens: note: %lu object%s scored with an input plane that holds no image (every finite pixel the same value, "
            "or none finite), which the model never saw in training: the first %s%s\n", (unsigned long)s->empty_objects,
            s->empty_objects == 1 ? "" : "s", s->empty_first,
            s->empty_fits && !s->opt->skip_bad ? "; --skip-bad leaves such FITS objects out"
            : s->opt->skip_bad ? " (--skip-bad leaves out FITS objects, not the rows of a .npy stack)" : "");
  if (rc == 0 && s->bad_objects)
    fprintf(stderr, "lens: note: %lu object%s left out (--skip-bad), the first %s; the messages above say why\n", (unsigned long)s->bad_objects,
            s->bad_objects == 1 ? "" : "s", s->bad_first);
  if (rc == 0 && s->scale_off)
    fprintf(stderr, "lens: note: %lu FITS object%s not at the model's pixel scale: %s; %s\n", (unsigned long)s->scale_off,
            s->scale_off == 1 ? " is" : "s are", s->scale_first,
            lensnet_model_meta(s->model, "regress.targets")
                ? "a regression model's angles (theta_E, centres, in arcsec) assume its own scale, so these are off by the ratio of the scales"
                : "a finder sees lenses at the size it was trained on only at its own scale");
  if (rc == 0 && o->out_npy && lensnet_npy_writer_finish(&s->logits, 0, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  if (rc == 0 && o->samples_path && lensnet_npy_writer_finish(&s->samples, 0, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  if (rc == 0 && o->map_path && lensnet_npy_writer_finish(&s->map, 0, &err) != LENSNET_OK) rc = lens_fail_err(&err);
  return rc;
}

int lens_cmd_predict(int argc, char **argv) {
  predict_options o;
  predict_state s;
  size_t total = 0;
  const char *outs[3];
  size_t made[3] = {0, 0, 0}, k;
  int skipped = 0, rc = parse_options(argc, argv, &o);
  if (rc) return rc < 0 ? 0 : rc;
  memset(&s, 0, sizeof s);
  /* the output files' folders; those made here go again if the run fails */
  outs[0] = o.map_path; outs[1] = o.out_npy; outs[2] = o.csv_path;
  for (k = 0; k < 3 && rc == 0; k++)
    if (outs[k] && lens_make_parents_noted(outs[k], &made[k])) rc = LENS_EXIT_FAIL;
  if (rc == 0) rc = open_model(&o, &s);
  if (rc == 0) rc = count_objects(&o, &s, &total);
  if (rc == 0) {
    lens_shard_range(&o.shard, total, &s.first, &s.end);
    s.object_number = total; /* what the manifests say; counted again as the inputs are read */
    if (o.skip_done && shard_manifests(&s, argc, argv, 0)) {
      fprintf(stderr, "predict: shard %lu/%lu (objects [%lu, %lu) of %lu) already done, skipped\n", (unsigned long)o.shard.index,
              (unsigned long)o.shard.count, (unsigned long)s.first, (unsigned long)s.end, (unsigned long)total);
      skipped = 1;
    } else shard_manifests(&s, argc, argv, 1);
    s.object_number = 0;
  }
  if (rc == 0 && !skipped) rc = open_outputs(&o, &s);
  if (rc == 0 && !skipped) rc = score_inputs(&o, &s);
  if (rc == 0 && !skipped && s.object_number != total) rc = lens_fail("the inputs changed while they were read (%lu objects, then %lu)", (unsigned long)total,
                                                          (unsigned long)s.object_number);
  lensnet_npy_writer_abort(&s.logits); /* after a failure: nothing is left behind */
  lensnet_npy_writer_abort(&s.samples);
  lensnet_npy_writer_abort(&s.map);
  free(s.map_plane);
  if (s.csv && s.csv != stdout) {
    if (rc == 0) rc = lens_text_commit(s.csv, s.csv_tmp, o.csv_path);
    else lens_text_discard(s.csv, s.csv_tmp);
    s.csv = NULL;
  }
  /* the CSV on standard output: a full disk or a closed pipe is a failure, not a silent success */
  if (rc == 0 && s.csv == stdout && (fflush(stdout) != 0 || ferror(stdout))) rc = lens_fail("standard output: write failed (disk full?)");
  if (rc == 0 && !skipped) rc = shard_manifests(&s, argc, argv, 2);
  for (k = 3; rc != 0 && k-- > 0;) lens_remove_made_parents(outs[k], made[k]);
  if (s.locator_input != s.input) free(s.locator_input);
  free(s.pending); free(s.input); free(s.output); free(s.workspace); free(s.located);
  lensnet_packed_free(s.packed);
  lensnet_model_free(s.model);
  { /* an ensemble's other members */
    size_t j;
    for (j = 1; j < s.member_count; j++) { lensnet_packed_free(s.member_packed[j]); lensnet_model_free(s.members[j]); }
  }
  lensnet_model_free(s.locator);
  lens_pool_free(s.pool);
  return rc;
}
