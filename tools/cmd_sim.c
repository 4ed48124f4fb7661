/* lens sim: labelled datasets of simulated lenses and non-lenses from lenssim.h's presets.
 *
 *   DIR/images.npy   float32 [N, C, H, W], counts/s per pixel, streamed to images.npy.tmp
 *   DIR/labels.csv   a header and one row per image (`label` is the class `lens train` reads)
 *   DIR/fits/NNNNNNN.fits   with --fits: each image as a [C, H, W] FITS primary image
 *   DIR/png/NNNNNNN.png     with --png: an asinh colour composite of each image (Lupton et al. 2004)
 * Both main files are written under temporary names and renamed once complete. Object i depends
 * only on (preset, options, seed, i), so the files are the same whatever the thread count.
 *
 * With --shard I/N only objects [I n/N, (I+1) n/N) are made, numbered as in the whole run (the
 * index column, FITS and PNG names), and DIR/shard.json records the shard once both files are in
 * place (tools/shard.h); `lens merge` joins shards into the files a single run writes, byte for
 * byte, and --skip-done skips a shard whose output is complete.
 *
 * With --field SIZE one survey field instead (lenssim_field_*): DIR/field.fits, a [C, SIZE, SIZE]
 * cube with a TAN WCS centred on --ra, --dec, and DIR/truth.csv, one row per placed object: its
 * field position x, y (0-based pixels, pixel centres at integers) and its labels.csv columns.
 * Stamps render on the threads and are added in order, so the files do not depend on --threads.
 *
 * With --windows N, N training windows cut from simulated fields instead (lenssim_field_windows):
 * DIR/images.npy [N, C, stamp, stamp] and DIR/labels.csv as for cutouts, written the same way.
 * Field k (of --field SIZE, default 600, with --lenses and --others) has a seed of its own from
 * (--seed, k), is rendered as --field renders one, and gives its lenses over --lens-fraction
 * windows (two per lens at 0.5) until N are cut. The windows are numbered 0..N-1 across the fields
 * (the index column), so the share of positives holds over the whole set. The files do not depend
 * on --threads either. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <math.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>
#include "lens_cmds.h"
#include "lenssim.h"
#include "lensviz.h"
#include "pool.h"
#include "cli.h"
#include "options.h"
#include "shard.h"

/* objects per parallel round: up to 256, at most ~64 MB of images in memory */
#define SIM_CHUNK_MAX 256

/* ---- the parallel chunk ---------------------------------------------------------------------- */
typedef struct {
  const lenssim_dataset *ds;
  unsigned long long first;
  float *images;
  lenssim_label *labels;
  void **workspaces;
  size_t per_image;
  lenssim_result *results;
  lenssim_error *errors;   /* one per item */
} sim_chunk;

static void sim_task(void *ctx, size_t item, size_t worker) {
  sim_chunk *c = (sim_chunk *)ctx;
  c->results[item] = lenssim_dataset_sample(c->ds, c->first + item, c->images + item * c->per_image, &c->labels[item],
                                            c->workspaces[worker], lenssim_dataset_workspace_bytes(c->ds),
                                            &c->errors[item]);
}

/* ---- options --------------------------------------------------------------------------------- */
typedef struct {
  int preset, layout;      /* lenssim_preset, lenssim_layout */
  size_t n;
  unsigned long long seed;
  int threads, fits, png, noise_free, supersampling;
  const char *out_dir;
  lens_shard shard;        /* --shard I/N */
  int skip_done;
  /* negative: not given (the preset's); 0 and more are given values */
  double lens_fraction, theta_e_min, theta_e_max, snr_min, mu_min, clumpy_fraction, substructure_scale, neighbours;
  double psf_scale, exposure_scale; /* 0: not given */
  int field, lenses, others; /* --field SIZE: one survey field instead of cutouts; -1: not given */
  double ra, dec;            /* the field's centre */
  size_t windows;            /* --windows N: training windows cut from fields instead of cutouts */
  double window_offset, window_clear, centred_negatives; /* -1: not given */
} sim_args;

static const char *preset_at(size_t i) { return i < LENSSIM_PRESET_COUNT ? lenssim_preset_name((lenssim_preset)i) : NULL; }
static const char *layout_at(size_t i) { return i < LENSSIM_LAYOUT_COUNT ? lenssim_layout_name((lenssim_layout)i) : NULL; }

static void list_presets(FILE *f) {
  size_t i;
  fprintf(f, "presets:");
  for (i = 0; preset_at(i); i++) fprintf(f, " %s", preset_at(i));
  fprintf(f, "\n");
}

/* --ratio A:B, the same as --lens-fraction A/(A+B). */
static int parse_ratio(const lens_option *o, const char *label, const char *v, void *opts) {
  double x, y = -1;
  char *end;
  (void)o;
  x = strtod(v, &end);
  if (end != v && *end == ':' && x >= 0 && x < 1e300) {
    const char *b = end + 1;
    y = strtod(b, &end);
    if (end == b) y = -1;
  }
  if (!(y >= 0 && y < 1e300) || *end || !(x + y > 0)) return lens_usage("%s takes A:B (lenses:non-lenses, e.g. 1:100), got '%s'", label, v);
  ((sim_args *)opts)->lens_fraction = x / (x + y);
  return 0;
}

#define T sim_args
static const lens_option sim_rows[] = {
  LENS_CHOICE_AT(T, "preset", LENS_OPT_REQUIRED, preset, preset_at, 0, "NAME", "the population (see presets above)"),
  LENS_ROW("n", LENS_OPT_SIZE, 0, T, n, 1, 1e8, 0, "N", "images to simulate (required, unless --field or --windows)"),
  LENS_TEXT(T, "out", LENS_OPT_REQUIRED, out_dir, NULL, "DIR", "folder for images.npy and labels.csv"),
  LENS_SEED(T, "seed", seed, 1, "S", "random seed (default 1); the same seed gives the same files"),
  LENS_INT(T, "threads", threads, 1, 1024, 0, "T", "worker threads (default: the CPUs this process may use)"),
  LENS_CHOICE_AT(T, "layout", 0, layout, layout_at, 0, "L", "ou66 | ou200 | hsc | hst192 | hst150 | challenge1-vis (default: the preset's;\n"
                 "euclid presets: ou66, feeding `lens train --arch ou66`)"),
  LENS_DOUBLE(T, "lens-fraction", lens_fraction, 0, 1, -1, "F", "share of lenses, 0..1 (euclid presets; default 0.5); with --windows,\n"
              "share of the windows that are positives (1: lenses only)"),
  LENS_CUSTOM(T, "ratio", 0, lens_fraction, parse_ratio, "A:B", "lenses to non-lenses, e.g. 1:100 (same as --lens-fraction A/(A+B))"),
  LENS_DOUBLE(T, "theta-e-min", theta_e_min, 0, 100, -1, "X", "Einstein-radius window in arcsec: its lower end"),
  LENS_DOUBLE(T, "theta-e-max", theta_e_max, 0, 100, -1, "X", "Einstein-radius window in arcsec: its upper end"),
  LENS_DOUBLE(T, "snr-min", snr_min, 0, 1e5, -1, "X", "minimum arc S/N in the detection band (default 20)"),
  LENS_DOUBLE(T, "mu-min", mu_min, 0, 1e3, -1, "X", "minimum total source magnification (default 3)"),
  LENS_DOUBLE(T, "clumpy-fraction", clumpy_fraction, 0, 1, -1, "X", "share of clumpy star-forming sources (default 0.5; 0: none)"),
  LENS_DOUBLE(T, "substructure-scale", substructure_scale, 0, 100, -1, "X", "multiplies subhalo and vortex masses (deeplense; 0: none)"),
  LENS_DOUBLE(T, "neighbours", neighbours, 0, 1000, -1, "X", "line-of-sight galaxies per arcmin^2 to VIS 24.5 (euclid; default 30; 0: none)"),
  LENS_DOUBLE(T, "psf-scale", psf_scale, 0.1, 10, 0, "F", "multiplies every band's PSF FWHM (0.1-10, default 1): worse seeing,\n"
              "another instrument; a shifted sky for `lens adapt` (docs/deeplense.md)"),
  LENS_DOUBLE(T, "exposure-scale", exposure_scale, 0.001, 1000, 0, "F", "multiplies every band's exposure time (0.001-1000, default 1; at 0.25\n"
              "the noise relative to the light grows 2 (sky) to 4 (read noise) times)"),
  LENS_INT(T, "supersampling", supersampling, 1, 8, 0, "S", "sub-pixel samples per side (default: per layout)"),
  LENS_FLAG(T, "noise-free", noise_free, "no noise"),
  LENS_FLAG(T, "fits", fits, "also write DIR/fits/NNNNNNN.fits per image"),
  LENS_FLAG(T, "png", png, "also write DIR/png/NNNNNNN.png per image (asinh colour composite)"),
  LENS_CUSTOM(T, "shard", 0, shard, lens_parse_shard, "I/N", "only shard I of N: objects [I N_obj/N, (I+1) N_obj/N), numbered as in the whole run;\n"
              "DIR/shard.json records it (lens merge joins shards; docs/survey.md)"),
  LENS_FLAG(T, "skip-done", skip_done, "with --shard: do nothing if DIR already holds this shard of this run, complete"),
  LENS_INT(T, "field", field, 1, 8192, 0, "SIZE", "instead of cutouts, one survey field of SIZE x SIZE pixels: DIR/field.fits\n"
           "[C,SIZE,SIZE] with a TAN WCS and DIR/truth.csv (docs/find.md); with --windows,\n"
           "the side of its fields (default 600)"),
  LENS_INT(T, "lenses", lenses, 0, 100000, -1, "N", "with --field or --windows: lenses placed per field, at least a stamp apart (default 8)"),
  LENS_INT(T, "others", others, 0, 100000, -1, "N", "with --field or --windows: non-lenses placed per field (default 100)"),
  LENS_DOUBLE(T, "ra", ra, 0, 360, 150.0, "DEG", "with --field: right ascension of the field's centre (default 150)"),
  LENS_DOUBLE(T, "dec", dec, -90, 90, 2.2, "DEG", "with --field: declination of the field's centre (default 2.2)"),
  LENS_SIZE(T, "windows", windows, 1, 1e8, 0, "N", "instead of cutouts, N training windows cut from simulated fields of --field SIZE\n"
            "(default 600), --lenses and --others: what a scan of `lens find` sees (docs/find.md)"),
  LENS_DOUBLE(T, "window-offset", window_offset, 0, 1e4, -1, "R", "with --windows: a positive's lens lies within R pixels of the window's\n"
              "centre in x and in y (default 8, half the scan stride)"),
  LENS_DOUBLE(T, "window-clear", window_clear, 0, 1e5, -1, "D", "with --windows: no lens in the square of half-side D pixels about a\n"
              "negative's centre (default 2R)"),
  LENS_DOUBLE(T, "centred-negatives", centred_negatives, 0, 1, -1, "F", "with --windows: share of the negatives centred, within R, on a\n"
              "non-lens (default 0.5); the others lie anywhere in the field"),
};
#undef T
static const lens_option_section sim_sections[] = {{NULL, sim_rows, sizeof sim_rows / sizeof sim_rows[0]}};
static const lens_command_spec sim_spec = {
  "sim", "usage: lens sim --preset NAME --n N --out DIR [options]\n"
         "       lens sim --preset NAME --field SIZE [--lenses N] [--others N] --out DIR [options]\n"
         "       lens sim --preset NAME --windows N [--field SIZE] [--lenses N] [--others N] --out DIR [options]\n",
  "\nSimulates N labelled images (see docs/populations.md) into DIR/images.npy [N,C,H,W]\nfloat32 and DIR/labels.csv.\n",
  list_presets, sim_sections, 1,
  "DIR and any missing parent folders are created. A terminal shows a progress line on\n"
  "stderr. Exit status: 0 done, 1 failure (a file), 2 usage error.\n"};

/* A given value for a config field where 0 means the preset's default: 0 itself becomes `zero`. */
static double given_value(double v, double zero) { return v > 0 ? v : zero; }

/* The command line into a and the simulator's configuration. 0, -1 after --help, or the exit status. */
static int parse_args(int argc, char **argv, sim_args *a, lenssim_dataset_config *cfg) {
  lens_options_given given;
  int rc;
  memset(a, 0, sizeof *a);
  memset(cfg, 0, sizeof *cfg);
  if ((rc = lens_options_parse(&sim_spec, argc, argv, a, &given)) != 0) return rc;
  if (strlen(a->out_dir) > 1000) return lens_usage("sim: --out path is too long");
  if (!a->field && !a->windows && !a->n)
    return lens_usage("sim: --n N is required (or --field SIZE for a survey field, --windows N for windows cut from fields); see lens sim --help");
  if (a->windows && (a->n || a->shard.count || a->fits || a->png || lens_options_was_given(&sim_spec, &given, "ra") ||
                     lens_options_was_given(&sim_spec, &given, "dec")))
    return lens_usage("sim: --windows cuts N windows from fields of --field SIZE, --lenses and --others into images.npy and labels.csv; "
                      "--n, --shard, --fits, --png, --ra and --dec do not apply");
  if (!a->windows && (a->window_offset >= 0 || a->window_clear >= 0 || a->centred_negatives >= 0))
    return lens_usage("sim: --window-offset, --window-clear and --centred-negatives shape the windows of --windows N: give --windows");
  if (!a->field && !a->windows && (a->lenses >= 0 || a->others >= 0 || lens_options_was_given(&sim_spec, &given, "ra") ||
                                   lens_options_was_given(&sim_spec, &given, "dec")))
    return lens_usage("sim: --lenses, --others, --ra and --dec describe a field: give --field SIZE");
  if (a->field && !a->windows && (a->n || a->shard.count || a->fits || a->png))
    return lens_usage("sim: --field makes one image, DIR/field.fits, from --lenses and --others; --n, --shard, --fits and --png are for cutouts");
  if (lens_out_folder("--out", a->out_dir)) return LENS_EXIT_USAGE;
  if (a->skip_done && !a->shard.count) return lens_usage("sim: --skip-done needs --shard I/N (a shard's manifest says when it is done)");
  if (a->preset == LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE) {
    /* DeepLenseSim's Model I: one fixed lens and source, no selection, no other galaxies */
    static const char *fixed[] = {"theta-e-min", "theta-e-max", "snr-min", "mu-min", "clumpy-fraction", "neighbours", "lens-fraction", "ratio"};
    size_t k;
    for (k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
      if (lens_options_was_given(&sim_spec, &given, fixed[k]))
        return lens_usage("sim: --%s does not apply to --preset deeplense-substructure (DeepLenseSim's Model I: one lens, "
                          "one source shape, no selection; docs/populations.md)", fixed[k]);
  }
  if (lens_options_was_given(&sim_spec, &given, "ratio") && lens_options_was_given(&sim_spec, &given, "lens-fraction"))
    return lens_usage("sim: --ratio and --lens-fraction both set the share of lenses; give one");
  if (a->preset == LENSSIM_PRESET_ENSAI_MODELLING) { /* every object a lens, smooth */
    static const char *unused[] = {"lens-fraction", "ratio", "substructure-scale"};
    size_t k;
    for (k = 0; k < sizeof unused / sizeof unused[0]; k++)
      if (lens_options_was_given(&sim_spec, &given, unused[k]))
        return lens_usage("sim: --%s does not apply to --preset ensai-modelling (every object is a smooth lens)", unused[k]);
  }
  if (a->preset != LENSSIM_PRESET_DEEPLENSE_SUBSTRUCTURE && lens_options_was_given(&sim_spec, &given, "substructure-scale"))
    return lens_usage("sim: --substructure-scale is for --preset deeplense-substructure (its subhalos and vortices)");
  cfg->preset = (lenssim_preset)a->preset;
  cfg->layout = (lenssim_layout)a->layout;
  cfg->noise_free = a->noise_free;
  cfg->supersampling = a->supersampling;
  if (a->theta_e_min >= 0) cfg->theta_E_min = a->theta_e_min;
  if (a->theta_e_max == 0) /* the library reads 0 as "no upper end" */
    return lens_usage("sim: --theta-e-max 0 leaves no Einstein radius to draw (the window is min <= theta_E <= max, max above 0)");
  if (a->theta_e_max >= 0) cfg->theta_E_max = a->theta_e_max;
  /* with --windows the share is the windows' (sim_windows); the fields keep the preset's */
  if (a->lens_fraction >= 0 && !a->windows) cfg->lens_fraction = given_value(a->lens_fraction, 1e-300);
  if (a->snr_min >= 0) cfg->snr_min = given_value(a->snr_min, 1e-300);
  if (a->mu_min >= 0) cfg->magnification_min = given_value(a->mu_min, 1e-300);
  if (a->clumpy_fraction >= 0) cfg->clumpy_fraction = given_value(a->clumpy_fraction, -1.0);
  if (a->substructure_scale >= 0) cfg->substructure_scale = given_value(a->substructure_scale, -1.0);
  if (a->neighbours >= 0) cfg->neighbour_density = given_value(a->neighbours, -1.0);
  cfg->psf_scale = a->psf_scale;
  cfg->exposure_scale = a->exposure_scale;
  return 0;
}

/* ---- the run ---------------------------------------------------------------------------------- */
typedef struct {
  const sim_args *a;
  lenssim_dataset *ds;
  size_t replaced;          /* 1 + the images of the data set DIR held before this run, 0: none */
  char npy_path[1200], csv_path[1200], csv_tmp[1210], fits_dir[1200], png_dir[1200], manifest_path[1200];
  size_t first, end;       /* the objects this run makes: all, or its shard's */
  lens_shard_manifest manifest;
  lensviz_image preview;
  lensnet_npy_writer npy;  /* images.npy, streamed through images.npy.tmp */
  FILE *csv;
  lens_pool *pool;
  sim_chunk chunk;
  size_t nworkers, per_image, chunk_size;
  size_t out_made, fits_made, png_made; /* how much of each folder this run created (lens_make_dirs_noted) */
  lensnet_fits_card cards[7];  /* of each FITS cutout: BAND1.., PIXSCALE, BUNIT */
  char card_text[6][32];
  size_t ncards;
} sim_run;

/* The header cards of the FITS cutouts: each plane's band (BAND1 = 'VIS', ...; lens predict feeds
 * the planes to a model by these names), the pixel scale and the unit. */
static void fits_cards(sim_run *r) {
  static const char *const keys[4] = {"BAND1", "BAND2", "BAND3", "BAND4"};
  int ch;
  r->ncards = 0;
  for (ch = 0; ch < r->ds->channels && ch < 4; ch++) {
    const char *name = r->ds->band[ch]->name, *under = strrchr(name, '_');
    snprintf(r->card_text[ch], sizeof r->card_text[ch], "'%.20s'", under ? under + 1 : name); /* NISP_Y as Y */
    r->cards[r->ncards].key = keys[ch];
    r->cards[r->ncards].value = r->card_text[ch];
    r->cards[r->ncards++].comment = "band of this plane";
  }
  snprintf(r->card_text[4], sizeof r->card_text[4], "%.6g", r->ds->pixel_scale);
  r->cards[r->ncards].key = "PIXSCALE";
  r->cards[r->ncards].value = r->card_text[4];
  r->cards[r->ncards++].comment = "arcsec per pixel";
  r->cards[r->ncards].key = "BUNIT";
  r->cards[r->ncards].value = "'counts/s'";
  r->cards[r->ncards++].comment = "per pixel";
}

/* The folders, the preview picture and the file names. */
static int prepare_outputs(sim_run *r) {
  const sim_args *a = r->a;
  fits_cards(r);
  snprintf(r->fits_dir, sizeof r->fits_dir, "%s/fits", a->out_dir);
  snprintf(r->png_dir, sizeof r->png_dir, "%s/png", a->out_dir);
  if (lens_make_dirs_noted(a->out_dir, &r->out_made)) return LENS_EXIT_FAIL;
  if (a->fits && lens_make_dirs_noted(r->fits_dir, &r->fits_made)) return LENS_EXIT_FAIL;
  if (a->png && lens_make_dirs_noted(r->png_dir, &r->png_made)) return LENS_EXIT_FAIL;
  if (a->png) {
    /* previews at least ~200 pixels across, each image pixel a block */
    size_t side = (size_t)r->ds->num_pix, scale = side >= 200 ? 1 : (200 + side - 1) / side;
    lensnet_error verr;
    if (lensviz_image_alloc(&r->preview, side * scale, side * scale, &verr) != LENSNET_OK) return lens_fail_err(&verr);
  }
  snprintf(r->npy_path, sizeof r->npy_path, "%s/images.npy", a->out_dir);
  snprintf(r->csv_path, sizeof r->csv_path, "%s/labels.csv", a->out_dir);
  snprintf(r->csv_tmp, sizeof r->csv_tmp, "%s.tmp", r->csv_path);
  { /* an earlier run's data set here is replaced: said when the run ends, with its size */
    lensnet_npy_info info;
    lensnet_error nerr;
    if (lensnet_npy_info_read(r->npy_path, &info, &nerr) == LENSNET_OK && info.ndim >= 1) r->replaced = info.shape[0] + 1;
  }
  return 0;
}

/* The threads and one round's buffers: up to SIM_CHUNK_MAX objects, at most ~64 MB of images. */
static int prepare_workers(sim_run *r) {
  sim_chunk *c = &r->chunk;
  size_t w;
  r->nworkers = r->a->threads ? (size_t)r->a->threads : lens_pool_default_threads();
  r->pool = lens_pool_create(r->nworkers);
  if (!r->pool) return lens_fail("sim: cannot start threads");
  r->per_image = lenssim_dataset_image_floats(r->ds);
  r->chunk_size = (size_t)(64u << 20) / (r->per_image * sizeof(float));
  if (r->chunk_size > SIM_CHUNK_MAX) r->chunk_size = SIM_CHUNK_MAX;
  if (r->chunk_size < 2 * r->nworkers) r->chunk_size = 2 * r->nworkers;
  c->ds = r->ds;
  c->per_image = r->per_image;
  c->images = (float *)malloc(r->chunk_size * r->per_image * sizeof(float));
  c->labels = (lenssim_label *)malloc(r->chunk_size * sizeof(lenssim_label));
  c->results = (lenssim_result *)malloc(r->chunk_size * sizeof(lenssim_result));
  c->errors = (lenssim_error *)malloc(r->chunk_size * sizeof(lenssim_error));
  c->workspaces = (void **)calloc(r->nworkers, sizeof(void *));
  if (!c->images || !c->labels || !c->results || !c->errors || !c->workspaces) return lens_fail("sim: out of memory");
  for (w = 0; w < r->nworkers; w++)
    if (!(c->workspaces[w] = malloc(lenssim_dataset_workspace_bytes(r->ds)))) return lens_fail("sim: out of memory");
  return 0;
}

/* images.npy (streamed) and labels.csv (under its temporary name) with its header. */
static int open_files(sim_run *r) {
  lensnet_error nerr;
  size_t shape[4];
  shape[0] = r->end - r->first;
  shape[1] = (size_t)r->ds->channels;
  shape[2] = shape[3] = (size_t)r->ds->num_pix;
  if (lensnet_npy_writer_begin(&r->npy, r->npy_path, 4, shape, &nerr) != LENSNET_OK) return lens_fail("sim: %s", nerr.message);
  if (!(r->csv = fopen(r->csv_tmp, "w"))) return lens_fail("sim: cannot write in '%s': %s", r->a->out_dir, strerror(errno));
  if (fputs(lenssim_label_csv_header(), r->csv) < 0) return lens_fail("sim: write failed in '%s'", r->a->out_dir);
  return 0;
}

/* Object `index` (k-th of the round): its labels.csv row, and its FITS file and PNG preview if asked. */
static int write_object(sim_run *r, size_t k, unsigned long long index) {
  const float *image = r->chunk.images + k * r->per_image;
  lensnet_error err;
  lenssim_error serr;
  char path[1300], row[LENSSIM_LABEL_CSV_MAX];
  if (!lenssim_label_csv_row(&r->chunk.labels[k], index, row, sizeof row, &serr)) return lens_fail("sim: %s", serr.message);
  if (fputs(row, r->csv) < 0) return lens_fail("sim: %s: write failed", r->csv_tmp);
  if (r->a->fits) {
    lensnet_tensor t;
    memset(&t, 0, sizeof t);
    t.ndim = 3;
    t.shape[0] = (size_t)r->ds->channels;
    t.shape[1] = t.shape[2] = (size_t)r->ds->num_pix;
    t.data = (float *)image;
    snprintf(path, sizeof path, "%s/%07llu.fits", r->fits_dir, index);
    if (lensnet_fits_write_cards(path, &t, r->cards, r->ncards, &err) != LENSNET_OK) return lens_fail_err(&err);
  }
  if (r->a->png) {
    /* bands run from blue to red in every preset (VIS, Y, J, H; g, r, i) */
    lensviz_asinh_bands(image, (size_t)r->ds->channels, (size_t)r->ds->num_pix, (size_t)r->ds->num_pix, 8.0f, 0.0f, &r->preview);
    snprintf(path, sizeof path, "%s/%07llu.png", r->png_dir, index);
    if (lensviz_png_write(path, &r->preview, &err) != LENSNET_OK) return lens_fail_err(&err);
  }
  return 0;
}

/* Every object, a round at a time: simulated in parallel, written in order. */
static int simulate(sim_run *r) {
  lensnet_parallel par = lens_pool_parallel(r->pool);
  lensnet_error nerr;
  lens_progress progress;
  unsigned long long start, n = r->end;
  char label[64];
  int rc = 0;
  snprintf(label, sizeof label, "sim %s", lenssim_preset_name((lenssim_preset)r->a->preset));
  lens_progress_start(&progress);
  for (start = r->first; start < n && rc == 0; start += r->chunk_size) {
    size_t count = n - start < r->chunk_size ? (size_t)(n - start) : r->chunk_size, k;
    r->chunk.first = start;
    par.run(par.user, count, sim_task, &r->chunk);
    for (k = 0; k < count && rc == 0; k++)
      if (r->chunk.results[k] != LENSSIM_OK) rc = lens_fail("sim: object %llu: %s", start + k, r->chunk.errors[k].message);
    if (rc == 0 && lensnet_npy_writer_append(&r->npy, r->chunk.images, count, &nerr) != LENSNET_OK) rc = lens_fail("sim: %s", nerr.message);
    for (k = 0; k < count && rc == 0; k++) rc = write_object(r, k, start + k);
    if (rc == 0) lens_progress_show(&progress, label, (size_t)(start + count - r->first), (size_t)(n - r->first), "img", -1.0, NULL);
  }
  lens_progress_end(&progress);
  return rc;
}

/* DIR/bands.txt: the names of images.npy's planes in order, one line ("VIS,Y,J,H"), as its FITS
 * cutouts' BANDn cards name them; a .npy has no header of its own to hold them, and lens predict
 * feeds the planes to a model by these names (OU-66 takes J,Y,H,VIS). Written whole under
 * `tmp` here; finish_files renames it with the other two. */
static int write_bands(sim_run *r, const char *tmp) {
  FILE *f;
  int ch, bad;
  if (!(f = fopen(tmp, "w"))) return lens_fail("sim: cannot write %s: %s", tmp, strerror(errno));
  for (ch = 0; ch < r->ds->channels; ch++) {
    const char *name = r->ds->band[ch]->name, *under = strrchr(name, '_');
    fprintf(f, "%s%s", ch ? "," : "", under ? under + 1 : name); /* NISP_Y as Y, as in the FITS cards */
  }
  fputc('\n', f);
  bad = fflush(f) != 0 || ferror(f);
  bad |= fclose(f) != 0;
  return bad ? lens_fail("sim: %s: write failed (disk full?)", tmp) : 0;
}

/* Both files complete under their own names. A previous run's labels.csv goes before the new
 * images.npy takes its place, so no reader ever pairs new images with old labels: between the two
 * renames it finds images without labels, and says so. */
static int finish_files(sim_run *r) {
  lensnet_error nerr;
  char bands[sizeof r->npy_path + 16], bands_tmp[sizeof r->npy_path + 24];
  int rc = 0, bad = fflush(r->csv) != 0 || ferror(r->csv);
  bad |= fclose(r->csv) != 0;
  r->csv = NULL;
  snprintf(bands, sizeof bands, "%s/bands.txt", r->a->out_dir);
  snprintf(bands_tmp, sizeof bands_tmp, "%s.tmp", bands);
  if (bad) rc = lens_fail("sim: %s: write failed (disk full?)", r->csv_tmp);
  else if ((rc = write_bands(r, bands_tmp)) != 0) {}
  else if (remove(r->csv_path) != 0 && errno != ENOENT) rc = lens_fail("sim: cannot replace %s: %s", r->csv_path, strerror(errno));
  else if (lensnet_npy_writer_finish(&r->npy, 0, &nerr) != LENSNET_OK)
    rc = lens_fail("sim: %s; '%s' holds no labels.csv until lens sim runs again", nerr.message, r->a->out_dir);
  else if (rename(bands_tmp, bands) != 0)
    rc = lens_fail("sim: cannot rename %s into place: %s; '%s' holds no labels.csv until lens sim runs again", bands_tmp,
                   strerror(errno), r->a->out_dir);
  else if (rename(r->csv_tmp, r->csv_path) != 0)
    rc = lens_fail("sim: cannot rename %s into place: %s; '%s' holds no labels.csv until lens sim runs again", r->csv_tmp,
                   strerror(errno), r->a->out_dir);
  if (rc) { remove(r->csv_tmp); remove(bands_tmp); } /* (the writer removes its own on failure) */
  return rc;
}

static void free_run(sim_run *r) {
  size_t w;
  lensnet_npy_writer_abort(&r->npy);
  if (r->csv) { fclose(r->csv); remove(r->csv_tmp); }
  if (r->chunk.workspaces) for (w = 0; w < r->nworkers; w++) free(r->chunk.workspaces[w]);
  free(r->chunk.workspaces); free(r->chunk.images); free(r->chunk.labels); free(r->chunk.results); free(r->chunk.errors);
  lens_pool_free(r->pool);
  lensviz_image_free(&r->preview);
  free(r->ds);
}

/* The per-object files lens sim names NNNNNNN.ext in `dir` (seven digits or more, the object's
 * index) from index `from` on: with `remove_them`, removed (an earlier run into the same folder
 * made more objects; their files would sit beside this run's as if they were of it), else only
 * counted. Other files are left alone. Returns how many. */
static size_t stale_object_files(const char *dir, const char *ext, unsigned long long from, int remove_them) {
  DIR *d = opendir(dir);
  struct dirent *e;
  size_t count = 0, el = strlen(ext);
  if (!d) return 0;
  while ((e = readdir(d)) != NULL) {
    const char *name = e->d_name;
    size_t n = strlen(name), digits = 0;
    char path[2400];
    while (digits < n && name[digits] >= '0' && name[digits] <= '9') digits++;
    if (digits < 7 || n != digits + el || strcmp(name + digits, ext) || strtoull(name, NULL, 10) < from) continue;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!remove_them || remove(path) == 0) count++;
  }
  closedir(d);
  return count;
}

/* After a complete run: what an earlier run left in fits/ and png/ that is not this run's. */
static void tidy_object_files(const sim_run *r) {
  static const char *const ext[2] = {".fits", ".png"};
  const char *dirs[2];
  int wrote[2], k;
  dirs[0] = r->fits_dir; dirs[1] = r->png_dir;
  wrote[0] = r->a->fits; wrote[1] = r->a->png;
  for (k = 0; k < 2; k++) {
    size_t n = stale_object_files(dirs[k], ext[k], wrote[k] ? (unsigned long long)r->a->n : 0, wrote[k]);
    if (n && wrote[k])
      fprintf(stderr, "sim: removed %lu %s file%s of an earlier run with more objects from %s (this run has %lu)\n", (unsigned long)n, ext[k] + 1,
              n == 1 ? "" : "s", dirs[k], (unsigned long)r->a->n);
    else if (n)
      fprintf(stderr, "sim: note: %s holds %lu %s file%s of an earlier run (this one wrote none: --%s writes them)\n", dirs[k], (unsigned long)n,
              ext[k] + 1, n == 1 ? "" : "s", ext[k] + 1);
  }
}

/* After a failed run, once free_run has removed its .tmp files: the folders it made, if still
 * empty; a folder that was there before, or holds a file, stays. */
static void remove_made_folders(sim_run *r) {
  lens_remove_made_dirs(r->png_dir, r->png_made);
  lens_remove_made_dirs(r->fits_dir, r->fits_made);
  lens_remove_made_dirs(r->a->out_dir, r->out_made);
}

/* --shard: the manifest this run will write, and whether --skip-done finds it already there. A
 * stale manifest goes before any output is touched, so it never describes half-written files. */
static int shard_start(sim_run *r, int argc, char **argv, int *done) {
  lens_shard_manifest *m = &r->manifest;
  *done = 0;
  lens_shard_range(&r->a->shard, r->a->n, &r->first, &r->end);
  if (!r->a->shard.count) return 0;
  snprintf(r->manifest_path, sizeof r->manifest_path, "%s/shard.json", r->a->out_dir);
  snprintf(m->command, sizeof m->command, "sim");
  lens_shard_run_id(argc, argv, m->run);
  m->shard = r->a->shard.index;
  m->shards = r->a->shard.count;
  m->first = r->first;
  m->end = r->end;
  m->total = r->a->n;
  m->nfiles = 2;
  snprintf(m->files[0], sizeof m->files[0], "images.npy");
  snprintf(m->files[1], sizeof m->files[1], "labels.csv");
  if (r->a->skip_done && lens_shard_done(r->manifest_path, r->a->out_dir, m)) {
    fprintf(stderr, "sim: shard %lu/%lu (objects [%lu, %lu)) already done in %s, skipped\n", (unsigned long)m->shard,
            (unsigned long)m->shards, (unsigned long)m->first, (unsigned long)m->end, r->a->out_dir);
    *done = 1;
    return 0;
  }
  if (remove(r->manifest_path) != 0 && errno != ENOENT) return lens_fail("sim: cannot remove the old %s: %s", r->manifest_path, strerror(errno));
  return 0;
}

/* ---- --field: one survey field --------------------------------------------------------------- */
typedef struct {
  const lenssim_field *f;
  lenssim_field_object *objects;
  lenssim_label *labels;
  size_t first;             /* the round's first object */
  float *stamps;            /* one per object of the round */
  void **workspaces;
  lenssim_result *results;
  lenssim_error *errors;
} field_round;

static void field_task(void *ctx, size_t item, size_t worker) {
  field_round *r = (field_round *)ctx;
  size_t k = r->first + item, per = lenssim_dataset_image_floats(&r->f->population);
  r->results[item] = lenssim_field_render_object(r->f, &r->objects[k], r->stamps + item * per, &r->labels[k], r->workspaces[worker],
                                                 lenssim_dataset_workspace_bytes(&r->f->population), &r->errors[item]);
}

/* The WCS cards of a field: TAN about (ra, dec) at the central pixel, north up, east left. */
static void field_wcs_cards(const lenssim_field *f, double ra, double dec, char text[8][32], lensnet_fits_card *cards) {
  static const char *const keys[8] = {"CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD2_2"};
  int k;
  snprintf(text[0], 32, "'RA---TAN'");
  snprintf(text[1], 32, "'DEC--TAN'");
  snprintf(text[2], 32, "%.1f", 0.5 * (f->size + 1)); /* FITS pixels are 1-based */
  snprintf(text[3], 32, "%.1f", 0.5 * (f->size + 1));
  snprintf(text[4], 32, "%.10g", ra);
  snprintf(text[5], 32, "%.10g", dec);
  snprintf(text[6], 32, "%.10E", -f->pixel_scale / 3600.0);
  snprintf(text[7], 32, "%.10E", f->pixel_scale / 3600.0);
  for (k = 0; k < 8; k++) {
    cards[k].key = keys[k];
    cards[k].value = text[k];
    cards[k].comment = k < 2 ? "gnomonic projection" : k < 4 ? "reference pixel: the field centre" : k < 6 ? "deg" : "deg per pixel";
  }
  cards[8].key = "CUNIT1"; cards[8].value = "'deg'"; cards[8].comment = NULL;
  cards[9].key = "CUNIT2"; cards[9].value = "'deg'"; cards[9].comment = NULL;
  cards[10].key = "RADESYS"; cards[10].value = "'ICRS'"; cards[10].comment = NULL;
  cards[11].key = "BUNIT"; cards[11].value = "'counts/s'"; cards[11].comment = "per pixel";
}

/* DIR/truth.csv: x, y, then the labels.csv columns of each object, in the field's order. */
static int field_truth(const char *dir, const lenssim_field *f, const lenssim_field_object *objects, const lenssim_label *labels) {
  char path[1200], tmp[1210], row[LENSSIM_LABEL_CSV_MAX];
  lenssim_error serr;
  size_t k;
  FILE *csv;
  snprintf(path, sizeof path, "%s/truth.csv", dir);
  if (!(csv = lens_text_open(path, tmp, sizeof tmp))) return LENS_EXIT_FAIL;
  fprintf(csv, "x,y,%s", lenssim_label_csv_header());
  for (k = 0; k < f->object_count; k++) {
    if (!lenssim_label_csv_row(&labels[k], objects[k].index, row, sizeof row, &serr)) {
      lens_text_discard(csv, tmp);
      return lens_fail("sim: %s", serr.message);
    }
    fprintf(csv, "%.3f,%.3f,%s", objects[k].x, objects[k].y, row);
  }
  return lens_text_commit(csv, tmp, path);
}

/* Renders the objects a round at a time on the threads, adding them to sum in order. */
static int field_render(const lenssim_field *f, lens_pool *pool, size_t workers, lenssim_field_object *objects, lenssim_label *labels,
                        double *sum) {
  lensnet_parallel par = lens_pool_parallel(pool);
  size_t per = lenssim_dataset_image_floats(&f->population), round = 4 * workers, start, k;
  field_round r;
  int rc = 0;
  memset(&r, 0, sizeof r);
  r.f = f; r.objects = objects; r.labels = labels;
  r.stamps = (float *)malloc(round * per * sizeof(float));
  r.workspaces = (void **)calloc(workers, sizeof(void *));
  r.results = (lenssim_result *)malloc(round * sizeof(lenssim_result));
  r.errors = (lenssim_error *)malloc(round * sizeof(lenssim_error));
  if (!r.stamps || !r.workspaces || !r.results || !r.errors) rc = lens_fail("sim: out of memory");
  for (k = 0; k < workers && !rc; k++)
    if (!(r.workspaces[k] = malloc(lenssim_dataset_workspace_bytes(&f->population)))) rc = lens_fail("sim: out of memory");
  for (start = 0; start < f->object_count && !rc; start += round) {
    size_t count = f->object_count - start < round ? f->object_count - start : round;
    r.first = start;
    par.run(par.user, count, field_task, &r);
    for (k = 0; k < count && !rc; k++) {
      if (r.results[k] != LENSSIM_OK) rc = lens_fail("sim: field object %lu: %s", (unsigned long)(start + k), r.errors[k].message);
      else lenssim_field_add(f, &objects[start + k], r.stamps + k * per, sum);
    }
  }
  for (k = 0; r.workspaces && k < workers; k++) free(r.workspaces[k]);
  free(r.workspaces); free(r.stamps); free(r.results); free(r.errors);
  return rc;
}

/* lens sim --field SIZE: DIR/field.fits and DIR/truth.csv. */
static int sim_field(const sim_args *a, const lenssim_dataset_config *cfg) {
  lenssim_field_config fc;
  lenssim_field *f = (lenssim_field *)malloc(sizeof *f);
  lenssim_field_object *objects = NULL;
  lenssim_label *labels = NULL;
  lenssim_error serr;
  lensnet_error nerr;
  lensnet_fits_card cards[16];
  lensnet_tensor t;
  char text[8][32], band_text[4][32], path[1200];
  double *sum = NULL, t0 = lens_seconds();
  float *image = NULL;
  size_t workers = a->threads ? (size_t)a->threads : lens_pool_default_threads(), floats, k, lenses = 0, made = 0, ncards;
  lens_pool *pool = NULL;
  int rc = 0;
  memset(&fc, 0, sizeof fc);
  fc.population = *cfg;
  fc.size = a->field;
  fc.lenses = a->lenses < 0 ? 0 : a->lenses ? a->lenses : -1;
  fc.others = a->others < 0 ? 0 : a->others ? a->others : -1;
  if (!f) return lens_fail("sim: out of memory");
  if (lenssim_field_init(f, &fc, (uint64_t)a->seed, &serr) != LENSSIM_OK) { free(f); return lens_usage("sim: %s", serr.message); }
  floats = lenssim_field_image_floats(f);
  objects = (lenssim_field_object *)calloc(f->object_count + 1, sizeof *objects);
  labels = (lenssim_label *)calloc(f->object_count + 1, sizeof *labels);
  sum = (double *)calloc(floats, sizeof *sum);
  image = (float *)malloc(floats * sizeof *image);
  if (!objects || !labels || !sum || !image) rc = lens_fail("sim: out of memory for a %dx%d field", f->size, f->size);
  if (!rc && lenssim_field_place(f, objects, &serr) != LENSSIM_OK) rc = lens_usage("sim: %s", serr.message);
  if (!rc && lens_make_dirs_noted(a->out_dir, &made)) rc = LENS_EXIT_FAIL;
  if (!rc && !(pool = lens_pool_create(workers))) rc = lens_fail("sim: cannot start threads");
  if (!rc) rc = field_render(f, pool, workers, objects, labels, sum);
  if (!rc) {
    lenssim_field_finish(f, sum, image);
    memset(&t, 0, sizeof t);
    t.ndim = 3;
    t.shape[0] = (size_t)f->channels;
    t.shape[1] = t.shape[2] = (size_t)f->size;
    t.data = image;
    field_wcs_cards(f, a->ra, a->dec, text, cards);
    ncards = 12;
    for (k = 0; k < (size_t)f->channels && k < 4; k++) { /* each plane's band, as the cutouts name theirs: lens find feeds them by name */
      static const char *const keys[4] = {"BAND1", "BAND2", "BAND3", "BAND4"};
      const char *name = f->population.band[k]->name, *under = strrchr(name, '_');
      snprintf(band_text[k], sizeof band_text[k], "'%.20s'", under ? under + 1 : name); /* NISP_Y as Y */
      cards[ncards].key = keys[k];
      cards[ncards].value = band_text[k];
      cards[ncards++].comment = "band of this plane";
    }
    snprintf(path, sizeof path, "%s/field.fits", a->out_dir);
    if (lensnet_fits_write_cards(path, &t, cards, ncards, &nerr) != LENSNET_OK) rc = lens_fail_err(&nerr);
  }
  if (!rc) rc = field_truth(a->out_dir, f, objects, labels);
  for (k = 0; k < f->object_count; k++) lenses += objects[k].label == 1;
  if (!rc)
    fprintf(stderr, "sim: field %dx%d [%d bands, %.3g\"/px] of %s, %lu lenses and %lu others in %.1f s (%lu thread%s) -> %s\n", f->size,
            f->size, f->channels, f->pixel_scale, lenssim_preset_name(cfg->preset), (unsigned long)lenses,
            (unsigned long)(f->object_count - lenses), lens_seconds() - t0, (unsigned long)workers, workers == 1 ? "" : "s", a->out_dir);
  else lens_remove_made_dirs(a->out_dir, made); /* only if the failure left it empty (truth.csv.tmp is discarded) */
  lens_pool_free(pool);
  free(objects); free(labels); free(sum); free(image); free(f);
  return rc;
}

/* ---- --windows: training windows cut from fields --------------------------------------------- */
/* Field k of a --windows run: a seed of its own, a splitmix64 step from (--seed, k). */
static uint64_t windows_field_seed(unsigned long long seed, size_t k) {
  lenssim_rng rng;
  lenssim_rng_seed(&rng, (uint64_t)seed ^ (0x9e3779b97f4a7c15ULL * ((uint64_t)k + 1)));
  return lenssim_rng_next(&rng);
}

/* Windows cut from each field: its lenses over the share of positives (two per lens at 0.5, one
 * at 1), or two per lens (16 in fields without lenses) when every window is a negative; at most
 * ~64 MB of windows (a few of a tiny share's positives then wait for the next field). */
static size_t windows_per_field(const lenssim_field *f, const lenssim_window_config *wc) {
  double lenses = f->config.lenses, n = wc->lens_fraction > 0 ? floor(lenses / wc->lens_fraction + 0.5) : 2 * lenses;
  size_t most = (size_t)(64u << 20) / (lenssim_dataset_image_floats(&f->population) * sizeof(float));
  if (n < 1) n = 16;
  if (most < 1) most = 1;
  return n < (double)most ? (size_t)n : most;
}

/* The window options into the library's configuration: not given is the default (0), a given 0
 * is "none" (negative). */
static lenssim_window_config windows_config(const sim_args *a) {
  lenssim_window_config wc;
  memset(&wc, 0, sizeof wc);
  if (a->window_offset >= 0) wc.max_offset = given_value(a->window_offset, -1.0);
  if (a->lens_fraction >= 0) wc.lens_fraction = given_value(a->lens_fraction, -1.0);
  if (a->window_clear >= 0) wc.clear = given_value(a->window_clear, -1.0);
  if (a->centred_negatives >= 0) wc.centred_fraction = given_value(a->centred_negatives, -1.0);
  return wc;
}

/* One field of a --windows run: placed, rendered on the threads, its windows cut and written. */
static int windows_field(sim_run *r, lenssim_field *f, const lenssim_field_config *fc, const lenssim_window_config *wc, size_t k,
                         size_t count, size_t first, lenssim_field_object *objects, lenssim_label *labels, double *sum, float *image,
                         float *windows, lenssim_label *window_labels, size_t *positives) {
  lenssim_error serr;
  lensnet_error nerr;
  char row[LENSSIM_LABEL_CSV_MAX];
  size_t j;
  int rc;
  if (lenssim_field_init(f, fc, windows_field_seed(r->a->seed, k), &serr) != LENSSIM_OK) return lens_usage("sim: %s", serr.message);
  if (lenssim_field_place(f, objects, &serr) != LENSSIM_OK) return lens_usage("sim: field %lu: %s", (unsigned long)k, serr.message);
  memset(sum, 0, lenssim_field_image_floats(f) * sizeof *sum);
  if ((rc = field_render(f, r->pool, r->nworkers, objects, labels, sum)) != 0) return rc;
  lenssim_field_finish(f, sum, image);
  /* one seed and one numbering for the whole set: the share of positives holds over all of it */
  if (lenssim_field_windows(f, image, objects, labels, wc, (uint64_t)r->a->seed, first, count, windows, window_labels, NULL, &serr) != LENSSIM_OK)
    return lens_fail("sim: field %lu: %s", (unsigned long)k, serr.message);
  if (lensnet_npy_writer_append(&r->npy, windows, count, &nerr) != LENSNET_OK) return lens_fail("sim: %s", nerr.message);
  for (j = 0; j < count; j++) {
    if (!lenssim_label_csv_row(&window_labels[j], first + j, row, sizeof row, &serr)) return lens_fail("sim: %s", serr.message);
    if (fputs(row, r->csv) < 0) return lens_fail("sim: %s: write failed", r->csv_tmp);
    *positives += window_labels[j].label == 1;
  }
  return 0;
}

/* lens sim --windows N: DIR/images.npy and DIR/labels.csv of windows cut from fields. */
static int sim_windows(const sim_args *a, const lenssim_dataset_config *cfg) {
  lenssim_field_config fc;
  lenssim_window_config wc = windows_config(a), resolved;
  lenssim_field *f = (lenssim_field *)malloc(sizeof *f);
  sim_run *r = (sim_run *)calloc(1, sizeof *r);
  lenssim_field_object *objects = NULL;
  lenssim_label *labels = NULL, *window_labels = NULL;
  lenssim_error serr;
  lens_progress progress;
  double *sum = NULL, t0 = lens_seconds();
  float *image = NULL, *windows = NULL;
  size_t per_field = 0, fields = 0, done = 0, positives = 0, k;
  char label[64];
  int rc = 0;
  memset(&fc, 0, sizeof fc);
  fc.population = *cfg;
  fc.size = a->field;
  fc.lenses = a->lenses < 0 ? 0 : a->lenses ? a->lenses : -1;
  fc.others = a->others < 0 ? 0 : a->others ? a->others : -1;
  if (!f || !r || !(r->ds = (lenssim_dataset *)malloc(sizeof *r->ds))) rc = lens_fail("sim: out of memory");
  if (!rc && lenssim_field_init(f, &fc, windows_field_seed(a->seed, 0), &serr) != LENSSIM_OK) rc = lens_usage("sim: %s", serr.message);
  if (!rc && lenssim_field_windows_resolve(f, &wc, &resolved, &serr) != LENSSIM_OK)
    rc = lens_usage("sim: --windows: %s (max_offset is --window-offset, clear --window-clear, centred_fraction --centred-negatives)",
                    serr.message);
  if (!rc) {
    per_field = windows_per_field(f, &resolved);
    if (per_field > a->windows) per_field = a->windows;
    fields = (a->windows + per_field - 1) / per_field;
    *r->ds = f->population; /* the windows' shape: channels and stamp side */
    r->a = a;
    r->first = 0;
    r->end = a->windows;
    r->nworkers = a->threads ? (size_t)a->threads : lens_pool_default_threads();
    objects = (lenssim_field_object *)calloc(f->object_count + 1, sizeof *objects);
    labels = (lenssim_label *)calloc(f->object_count + 1, sizeof *labels);
    sum = (double *)malloc(lenssim_field_image_floats(f) * sizeof *sum);
    image = (float *)malloc(lenssim_field_image_floats(f) * sizeof *image);
    windows = (float *)malloc(per_field * lenssim_dataset_image_floats(&f->population) * sizeof *windows);
    window_labels = (lenssim_label *)malloc(per_field * sizeof *window_labels);
    if (!objects || !labels || !sum || !image || !windows || !window_labels) rc = lens_fail("sim: out of memory for a %dx%d field", f->size, f->size);
  }
  if (!rc && !(r->pool = lens_pool_create(r->nworkers))) rc = lens_fail("sim: cannot start threads");
  if (!rc) rc = prepare_outputs(r);
  if (!rc) rc = open_files(r);
  snprintf(label, sizeof label, "sim --windows %s", lenssim_preset_name(cfg->preset));
  lens_progress_start(&progress);
  for (k = 0; k < fields && !rc; k++) {
    size_t count = a->windows - done < per_field ? a->windows - done : per_field;
    rc = windows_field(r, f, &fc, &wc, k, count, done, objects, labels, sum, image, windows, window_labels, &positives);
    done += count;
    if (!rc) lens_progress_show(&progress, label, done, a->windows, "win", -1.0, NULL);
  }
  lens_progress_end(&progress);
  if (!rc) rc = finish_files(r);
  if (!rc)
    fprintf(stderr, "sim: %lu windows [%d, %d, %d] of %s (%lu positives) from %lu fields of %dx%d in %.1f s (%lu thread%s) -> %s\n",
            (unsigned long)a->windows, f->channels, f->stamp, f->stamp, lenssim_preset_name(cfg->preset), (unsigned long)positives,
            (unsigned long)fields, f->size, f->size, lens_seconds() - t0, (unsigned long)r->nworkers, r->nworkers == 1 ? "" : "s", a->out_dir);
  if (r) free_run(r); /* (frees r->ds and the threads) */
  if (r && rc && r->a) remove_made_folders(r);
  free(r); free(f); free(objects); free(labels); free(sum); free(image); free(windows); free(window_labels);
  return rc;
}

int lens_cmd_sim(int argc, char **argv) {
  sim_args a;
  lenssim_dataset_config cfg;
  lenssim_error serr;
  sim_run *r;
  double t0;
  int done = 0, rc = parse_args(argc, argv, &a, &cfg);
  if (rc) return rc < 0 ? 0 : rc;
  if (a.windows) return sim_windows(&a, &cfg);
  if (a.field) return sim_field(&a, &cfg);
  if (!(r = (sim_run *)calloc(1, sizeof *r)) || !(r->ds = (lenssim_dataset *)malloc(sizeof *r->ds))) { free(r); return lens_fail("sim: out of memory"); }
  r->a = &a;
  /* the simulator refuses only inconsistent options (a window, a fraction) */
  if (lenssim_dataset_init(r->ds, &cfg, (uint64_t)a.seed, &serr) != LENSSIM_OK) rc = lens_usage("sim: %s", serr.message);
  if (rc == 0 && (rc = shard_start(r, argc, argv, &done)) == 0 && done) { free_run(r); free(r); return 0; }
  if (rc == 0) rc = prepare_outputs(r);
  if (rc == 0) rc = prepare_workers(r);
  if (rc == 0) rc = open_files(r);
  t0 = lens_seconds();
  if (rc == 0) rc = simulate(r);
  if (rc == 0) rc = finish_files(r);
  if (rc == 0 && a.shard.count) rc = lens_shard_manifest_write(r->manifest_path, &r->manifest);
  if (rc == 0) tidy_object_files(r);
  if (rc == 0) {
    double el = lens_seconds() - t0;
    size_t made = r->end - r->first;
    fprintf(stderr, "sim: %lu images [%d, %d, %d] of %s in %.1f s (%.0f img/s, %lu thread%s) -> %s\n", (unsigned long)made, r->ds->channels,
            r->ds->num_pix, r->ds->num_pix, lenssim_preset_name(cfg.preset), el, el > 0 ? (double)made / el : 0.0,
            (unsigned long)r->nworkers, r->nworkers == 1 ? "" : "s", a.out_dir);
    if (r->replaced)
      fprintf(stderr, "sim: note: this replaced the data set %s held before (%lu images); the same command, seed and options make it again\n",
              a.out_dir, (unsigned long)r->replaced - 1);
  }
  free_run(r);
  if (rc) remove_made_folders(r);
  free(r);
  return rc;
}
