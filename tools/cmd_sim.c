/* lens sim: labelled datasets of simulated lenses and non-lenses from lenssim.h's presets.
 *
 *   DIR/images.npy   float32 [N, C, H, W], counts/s per pixel, streamed to images.npy.tmp
 *   DIR/labels.csv   a header and one row per image (`label` is the class `lens train` reads)
 *   DIR/fits/NNNNNNN.fits   with --fits: each image as a [C, H, W] FITS primary image
 *   DIR/png/NNNNNNN.png     with --png: an asinh colour composite of each image (Lupton et al. 2004)
 * Both main files are written under temporary names and renamed once complete. Object i depends
 * only on (preset, options, seed, i), so the files are the same whatever the thread count. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include "lens_cmds.h"
#include "lenssim.h"
#include "lensviz.h"
#include "pool.h"
#include "cli.h"

/* objects per parallel round: up to 256, at most ~64 MB of images in memory */
#define SIM_CHUNK_MAX 256

static void sim_usage(FILE *f) {
  int i;
  fprintf(f,
          "usage: lens sim --preset NAME --n N --out DIR [options]\n"
          "\n"
          "Simulates N labelled images (see docs/populations.md) into DIR/images.npy [N,C,H,W]\n"
          "float32 and DIR/labels.csv.\n"
          "presets:");
  for (i = 0; i < LENSSIM_PRESET_COUNT; i++) fprintf(f, " %s", lenssim_preset_name((lenssim_preset)i));
  fprintf(f,
          "\n"
          "  --seed S              random seed (default 1); the same seed gives the same files\n"
          "  --threads T           worker threads (default: the CPUs online)\n"
          "  --layout L            ou66 | ou200 | hsc | hst192 | hst150 (default: the preset's;\n"
          "                        euclid presets: ou66, feeding `lens train --arch ou66`)\n"
          "  --lens-fraction F     share of lenses, 0..1 (euclid presets; default 0.5)\n"
          "  --ratio A:B           lenses to non-lenses, e.g. 1:100 (same as --lens-fraction A/(A+B))\n"
          "  --theta-e-min X, --theta-e-max X   Einstein-radius window in arcsec\n"
          "  --snr-min X           minimum arc S/N in the detection band (default 20)\n"
          "  --mu-min X            minimum total source magnification (default 3)\n"
          "  --clumpy-fraction X   share of clumpy star-forming sources (default 0.5; 0: none)\n"
          "  --substructure-scale X  multiplies subhalo and vortex masses (deeplense; 0: none)\n"
          "  --supersampling S     sub-pixel samples per side (default: per layout)\n"
          "  --noise-free          no noise\n"
          "  --fits                also write DIR/fits/NNNNNNN.fits per image\n"
          "  --png                 also write DIR/png/NNNNNNN.png per image (asinh colour composite)\n"
          "DIR and any missing parent folders are created. A terminal shows a progress line on\n"
          "stderr. Exit status: 0 done, 1 failure (a file), 2 usage error.\n");
}

/* ---- labels.csv ------------------------------------------------------------------------------ */
static const char csv_header[] =
    "index,label,kind,theta_E,theta_E2,e1,e2,center_x,center_y,gamma1,gamma2,sigma_v,z_lens,z_lens2,"
    "z_source,z_source2,source_x,source_y,source_R,source_n,source_clumpy,magnification,magnification2,"
    "n_images,n_images2,arc_snr,mag_source,mag_source2,mag_lens,n_subhalos,substructure_mass,"
    "vortex_length,vortex_angle,vortex_density,attempts\n";

static int csv_write_row(FILE *f, unsigned long long index, const lenssim_label *l) {
  return fprintf(f,
                 "%llu,%d,%s,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%d,"
                 "%.6g,%.6g,%d,%d,%.6g,%.6g,%.6g,%.6g,%d,%.6g,%.6g,%.6g,%.6g,%d\n",
                 index, l->label, lenssim_kind_name(l->kind), l->theta_E, l->theta_E2, l->e1, l->e2, l->center_x,
                 l->center_y, l->gamma1, l->gamma2, l->sigma_v, l->z_lens, l->z_lens2, l->z_source, l->z_source2,
                 l->source_x, l->source_y, l->source_R, l->source_n, l->source_clumpy, l->magnification,
                 l->magnification2, l->n_images, l->n_images2, l->arc_snr, l->mag_source, l->mag_source2, l->mag_lens,
                 l->n_subhalos, l->substructure_mass, l->vortex_length, l->vortex_angle, l->vortex_density,
                 l->attempts) < 0 ? -1 : 0;
}

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

static int parse_double(const char *flag, const char *text, double lo, double hi, double *out) {
  char *end;
  double d;
  errno = 0;
  d = strtod(text, &end);
  if (end == text || *end || errno || !(d >= lo && d <= hi))
    return lens_usage("sim: %s takes a number from %g to %g, got '%s'", flag, lo, hi, text);
  *out = d;
  return 0;
}

static int parse_count(const char *flag, const char *text, unsigned long long lo, unsigned long long hi,
                       unsigned long long *out) {
  char *end;
  errno = 0;
  if (!text || !*text || *text == '-') return lens_usage("sim: %s takes a whole number, got '%s'", flag, text ? text : "");
  *out = strtoull(text, &end, 10);
  if (*end || errno || *out < lo || *out > hi)
    return lens_usage("sim: %s takes a whole number from %llu to %llu, got '%s'", flag, lo, hi, text);
  return 0;
}

int lens_cmd_sim(int argc, char **argv) {
  lenssim_dataset_config cfg;
  lenssim_dataset *ds = NULL;
  lenssim_error serr;
  const char *out_dir = NULL;
  unsigned long long n = 0, seed = 1, threads = 0, ull;
  int i, fits = 0, png = 0, rc = 1, preset_given = 0, n_given = 0;
  char npy_path[1200], csv_path[1200], csv_tmp[1210], fits_dir[1200], png_dir[1200];
  lensviz_image preview = {NULL, 0, 0, 0};
  lensnet_npy_writer npy; /* images.npy, streamed through images.npy.tmp */
  lensnet_error nerr;
  FILE *csv = NULL;
  lens_pool *pool = NULL;
  sim_chunk chunk;
  size_t w, nworkers = 0, per_image, chunk_size = 0;
  double t0;
  lens_progress progress;

  memset(&cfg, 0, sizeof cfg);
  memset(&chunk, 0, sizeof chunk);
  memset(&npy, 0, sizeof npy);
  for (i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    double d;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { sim_usage(stdout); return 0; }
    if (!strcmp(a, "--fits")) { fits = 1; continue; }
    if (!strcmp(a, "--png")) { png = 1; continue; }
    if (!strcmp(a, "--noise-free")) { cfg.noise_free = 1; continue; }
    if (a[0] != '-') { sim_usage(stderr); return lens_usage("sim: unexpected argument '%s'", a); }
    if (!v) return lens_usage("sim: %s needs a value", a);
    i++;
    if (!strcmp(a, "--preset")) {
      int p = lenssim_preset_from_name(v);
      if (p < 0) { sim_usage(stderr); return lens_usage("sim: unknown preset '%s'", v); }
      cfg.preset = (lenssim_preset)p;
      preset_given = 1;
    } else if (!strcmp(a, "--layout")) {
      int l = lenssim_layout_from_name(v);
      if (l < 0) return lens_usage("sim: unknown layout '%s' (ou66, ou200, hsc, hst192, hst150)", v);
      cfg.layout = (lenssim_layout)l;
    } else if (!strcmp(a, "--n")) {
      if (parse_count(a, v, 1, 100000000ULL, &n)) return LENS_EXIT_USAGE;
      n_given = 1;
    } else if (!strcmp(a, "--seed")) {
      if (parse_count(a, v, 0, ~0ULL, &seed)) return LENS_EXIT_USAGE;
    } else if (!strcmp(a, "--threads")) {
      if (parse_count(a, v, 1, 1024, &threads)) return LENS_EXIT_USAGE;
    } else if (!strcmp(a, "--out")) {
      out_dir = v;
    } else if (!strcmp(a, "--lens-fraction")) {
      if (parse_double(a, v, 0.0, 1.0, &d)) return LENS_EXIT_USAGE;
      cfg.lens_fraction = d > 0 ? d : 1e-300; /* 0 would mean the default */
    } else if (!strcmp(a, "--ratio")) {
      double x, y;
      char *end;
      x = strtod(v, &end);
      if (end == v || *end != ':' || !(x >= 0)) return lens_usage("sim: --ratio takes A:B (lenses:non-lenses), got '%s'", v);
      y = strtod(end + 1, &end);
      if (*end || !(y >= 0) || !(x + y > 0)) return lens_usage("sim: --ratio takes A:B (lenses:non-lenses), got '%s'", v);
      cfg.lens_fraction = x > 0 ? x / (x + y) : 1e-300;
    } else if (!strcmp(a, "--theta-e-min")) {
      if (parse_double(a, v, 0.0, 100.0, &cfg.theta_E_min)) return LENS_EXIT_USAGE;
    } else if (!strcmp(a, "--theta-e-max")) {
      if (parse_double(a, v, 0.0, 100.0, &cfg.theta_E_max)) return LENS_EXIT_USAGE;
    } else if (!strcmp(a, "--snr-min")) {
      if (parse_double(a, v, 0.0, 1e5, &d)) return LENS_EXIT_USAGE;
      cfg.snr_min = d > 0 ? d : 1e-300;
    } else if (!strcmp(a, "--mu-min")) {
      if (parse_double(a, v, 0.0, 1e3, &d)) return LENS_EXIT_USAGE;
      cfg.magnification_min = d > 0 ? d : 1e-300;
    } else if (!strcmp(a, "--clumpy-fraction")) {
      if (parse_double(a, v, 0.0, 1.0, &d)) return LENS_EXIT_USAGE;
      cfg.clumpy_fraction = d > 0 ? d : -1.0;
    } else if (!strcmp(a, "--substructure-scale")) {
      if (parse_double(a, v, 0.0, 100.0, &d)) return LENS_EXIT_USAGE;
      cfg.substructure_scale = d > 0 ? d : -1.0;
    } else if (!strcmp(a, "--supersampling")) {
      if (parse_count(a, v, 1, 8, &ull)) return LENS_EXIT_USAGE;
      cfg.supersampling = (int)ull;
    } else {
      sim_usage(stderr);
      return lens_usage("sim: unknown option '%s'", a);
    }
  }
  if (!preset_given || !n_given || !out_dir) {
    sim_usage(stderr);
    return lens_usage("sim: %s", !preset_given ? "no --preset given" : (!n_given ? "no --n given" : "no --out given"));
  }
  if (strlen(out_dir) > 1000) return lens_usage("sim: --out path is too long");
  if (lens_out_folder("--out", out_dir)) return LENS_EXIT_USAGE;

  ds = (lenssim_dataset *)malloc(sizeof *ds);
  if (!ds) return lens_fail("sim: out of memory");
  /* the simulator refuses only inconsistent options (a window, a fraction) */
  if (lenssim_dataset_init(ds, &cfg, (uint64_t)seed, &serr) != LENSSIM_OK) { rc = lens_usage("sim: %s", serr.message); goto done; }
  if (lens_make_dirs(out_dir)) goto done;
  snprintf(fits_dir, sizeof fits_dir, "%s/fits", out_dir);
  if (fits && lens_make_dirs(fits_dir)) goto done;
  snprintf(png_dir, sizeof png_dir, "%s/png", out_dir);
  if (png && lens_make_dirs(png_dir)) goto done;
  if (png) {
    /* previews at least ~200 pixels across, each image pixel a block */
    size_t scale = ds->num_pix >= 200 ? 1 : (200 + (size_t)ds->num_pix - 1) / (size_t)ds->num_pix;
    lensnet_error verr;
    if (lensviz_image_alloc(&preview, (size_t)ds->num_pix * scale, (size_t)ds->num_pix * scale, &verr) != LENSNET_OK) { lens_fail_err(&verr); goto done; }
  }
  snprintf(npy_path, sizeof npy_path, "%s/images.npy", out_dir);
  snprintf(csv_path, sizeof csv_path, "%s/labels.csv", out_dir);
  snprintf(csv_tmp, sizeof csv_tmp, "%s.tmp", csv_path);

  nworkers = threads ? (size_t)threads : lens_pool_default_threads();
  pool = lens_pool_create(nworkers);
  if (!pool) { lens_fail("sim: cannot start threads"); goto done; }
  per_image = lenssim_dataset_image_floats(ds);
  chunk_size = (size_t)(64u << 20) / (per_image * sizeof(float));
  if (chunk_size > SIM_CHUNK_MAX) chunk_size = SIM_CHUNK_MAX;
  if (chunk_size < 2 * nworkers) chunk_size = 2 * nworkers;
  chunk.ds = ds;
  chunk.per_image = per_image;
  chunk.images = (float *)malloc(chunk_size * per_image * sizeof(float));
  chunk.labels = (lenssim_label *)malloc(chunk_size * sizeof(lenssim_label));
  chunk.results = (lenssim_result *)malloc(chunk_size * sizeof(lenssim_result));
  chunk.errors = (lenssim_error *)malloc(chunk_size * sizeof(lenssim_error));
  chunk.workspaces = (void **)calloc(nworkers, sizeof(void *));
  if (!chunk.images || !chunk.labels || !chunk.results || !chunk.errors || !chunk.workspaces) { lens_fail("sim: out of memory"); goto done; }
  for (w = 0; w < nworkers; w++)
    if (!(chunk.workspaces[w] = malloc(lenssim_dataset_workspace_bytes(ds)))) { lens_fail("sim: out of memory"); goto done; }

  {
    size_t shape[4];
    shape[0] = (size_t)n;
    shape[1] = (size_t)ds->channels;
    shape[2] = shape[3] = (size_t)ds->num_pix;
    if (lensnet_npy_writer_begin(&npy, npy_path, 4, shape, &nerr) != LENSNET_OK) { lens_fail("sim: %s", nerr.message); goto done; }
  }
  csv = fopen(csv_tmp, "w");
  if (!csv) { lens_fail("sim: cannot write in '%s': %s", out_dir, strerror(errno)); goto done; }
  if (fputs(csv_header, csv) < 0) {
    lens_fail("sim: write failed in '%s'", out_dir);
    goto done;
  }
  t0 = lens_seconds();
  lens_progress_start(&progress);
  {
    lensnet_parallel par = lens_pool_parallel(pool);
    unsigned long long start;
    for (start = 0; start < n; start += chunk_size) {
      size_t count = n - start < chunk_size ? (size_t)(n - start) : chunk_size, k;
      chunk.first = start;
      par.run(par.user, count, sim_task, &chunk);
      for (k = 0; k < count; k++)
        if (chunk.results[k] != LENSSIM_OK) { lens_fail("sim: object %llu: %s", start + k, chunk.errors[k].message); goto done; }
      if (lensnet_npy_writer_append(&npy, chunk.images, count, &nerr) != LENSNET_OK) { lens_fail("sim: %s", nerr.message); goto done; }
      for (k = 0; k < count; k++) {
        if (csv_write_row(csv, start + k, &chunk.labels[k])) { lens_fail("sim: %s: write failed", csv_tmp); goto done; }
        if (fits) {
          lensnet_tensor t;
          char path[1300];
          memset(&t, 0, sizeof t);
          t.ndim = 3;
          t.shape[0] = (size_t)ds->channels;
          t.shape[1] = t.shape[2] = (size_t)ds->num_pix;
          t.data = chunk.images + k * per_image;
          snprintf(path, sizeof path, "%s/%07llu.fits", fits_dir, start + k);
          if (lensnet_fits_write(path, &t, &nerr) != LENSNET_OK) { lens_fail_err(&nerr); goto done; }
        }
        if (png) {
          lensnet_error verr;
          char path[1300];
          /* bands run from blue to red in every preset (VIS, Y, J, H; g, r, i) */
          lensviz_asinh_bands(chunk.images + k * per_image, (size_t)ds->channels, (size_t)ds->num_pix, (size_t)ds->num_pix, 8.0f, 0.0f, &preview);
          snprintf(path, sizeof path, "%s/%07llu.png", png_dir, start + k);
          if (lensviz_png_write(path, &preview, &verr) != LENSNET_OK) { lens_fail_err(&verr); goto done; }
        }
      }
      {
        char label[64];
        snprintf(label, sizeof label, "sim %s", lenssim_preset_name(cfg.preset));
        lens_progress_show(&progress, label, (size_t)(start + count), (size_t)n, "img", -1.0, NULL);
      }
    }
  }
  lens_progress_end(&progress);
  {
    int bad = fflush(csv) != 0;
    bad |= fclose(csv) != 0;
    csv = NULL;
    if (bad) { lens_fail("sim: cannot finish the files in '%s'", out_dir); goto done; }
    if (lensnet_npy_writer_finish(&npy, 0, &nerr) != LENSNET_OK) { lens_fail("sim: %s", nerr.message); goto done; }
    if (rename(csv_tmp, csv_path) != 0) { lens_fail("sim: cannot finish the files in '%s'", out_dir); goto done; }
  }
  {
    double el = lens_seconds() - t0;
    fprintf(stderr, "sim: %llu images [%d, %d, %d] of %s in %.1f s (%.0f img/s, %lu threads) -> %s\n", n, ds->channels,
            ds->num_pix, ds->num_pix, lenssim_preset_name(cfg.preset), el, el > 0 ? (double)n / el : 0.0,
            (unsigned long)nworkers, out_dir);
  }
  rc = 0;
done:
  lensnet_npy_writer_abort(&npy);
  if (csv) { fclose(csv); remove(csv_tmp); }
  if (chunk.workspaces) for (w = 0; w < nworkers; w++) free(chunk.workspaces[w]);
  free(chunk.workspaces); free(chunk.images); free(chunk.labels); free(chunk.results); free(chunk.errors);
  lens_pool_free(pool);
  lensviz_image_free(&preview);
  free(ds);
  return rc;
}
