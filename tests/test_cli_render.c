/* `lens render` end to end: a scene of tests/data/lenstronomy rendered by the command matches
 * lenstronomy's image (1e-3 of the peak in float, 1e-6 with --double), noise follows the seed, a
 * scene without a PSF rendered for a band gets the band's, and errors name the problem. */
#define _POSIX_C_SOURCE 200809L
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "cli_check.h"

static char scene[512], reference[512], npy[512], out[4096];

static void lenstronomy_path(char *buf, size_t len, const char *file) {
  snprintf(buf, len, "%s/lenstronomy/%s", check_data_dir(), file);
}

/* Reads the rendered image and lenstronomy's: the largest |reference - rendered| and the
 * reference's largest absolute value (its peak); 0 if either cannot be read. The shape of the
 * rendered image is checked too, when asked. */
static int render_error(int check_shape, double *diff, double *peak) {
  lensnet_tensor img, refimg;
  lensnet_error err;
  size_t i, count;
  if (lensnet_npy_read(npy, &img, &err) != LENSNET_OK) return 0;
  if (lensnet_npy_read(reference, &refimg, &err) != LENSNET_OK) { lensnet_tensor_free(&img); return 0; }
  count = lensnet_tensor_count(&refimg);
  if (check_shape) CHECK(img.ndim == 2 && img.shape[0] == 80 && img.shape[1] == 80, "rendered shape");
  *diff = *peak = 0;
  for (i = 0; i < count && i < lensnet_tensor_count(&img); i++) {
    if (fabs(refimg.data[i]) > *peak) *peak = fabs(refimg.data[i]);
    if (fabs(refimg.data[i] - img.data[i]) > *diff) *diff = fabs(refimg.data[i] - img.data[i]);
  }
  lensnet_tensor_free(&refimg);
  lensnet_tensor_free(&img);
  return 1;
}

static void test_parity(void) {
  int status = cli_lens_output(out, sizeof out, "render %s --out %s", scene, npy);
  double diff, peak;
  CHECK(status == 0, "lens render failed (%d): %s", status, out);
  if (status == 0 && render_error(1, &diff, &peak))
    CHECK(diff <= 1e-3 * peak, "lens render of scene_007: %.3g of the peak from lenstronomy", diff / peak);
  /* --double: the float64 path, as close to lenstronomy as float32 output allows */
  status = cli_lens_output(out, sizeof out, "render %s --out %s --double", scene, npy);
  CHECK(status == 0, "lens render --double failed (%d): %s", status, out);
  if (status == 0 && render_error(0, &diff, &peak))
    CHECK(diff <= 1e-6 * peak, "lens render --double of scene_007: %.3g of the peak from lenstronomy", diff / peak);
}

static void test_noise_seeds(void) {
  lensnet_tensor noisy1, noisy2;
  lensnet_error err;
  char other[600];
  int status;
  snprintf(other, sizeof other, "%s.a", npy);
  status = cli_lens_output(out, sizeof out, "render %s --out %s --band VIS --seed 4 && cp %s %s && %s render %s --out %s --band VIS --seed 4",
                           scene, npy, npy, other, cli_lens_command(), scene, npy);
  CHECK(status == 0, "lens render --band failed: %s", out);
  if (status == 0 && lensnet_npy_read(npy, &noisy1, &err) == LENSNET_OK) {
    if (lensnet_npy_read(other, &noisy2, &err) == LENSNET_OK) {
      CHECK(memcmp(noisy1.data, noisy2.data, lensnet_tensor_count(&noisy1) * sizeof(float)) == 0, "same seed, same noise");
      lensnet_tensor_free(&noisy2);
    }
    if (cli_lens_output(out, sizeof out, "render %s --out %s --band VIS --seed 5", scene, other) == 0 &&
        lensnet_npy_read(other, &noisy2, &err) == LENSNET_OK) {
      CHECK(memcmp(noisy1.data, noisy2.data, lensnet_tensor_count(&noisy1) * sizeof(float)) != 0, "another seed, other noise");
      lensnet_tensor_free(&noisy2);
    }
    lensnet_tensor_free(&noisy1);
  }
  remove(other);
}

/* A scene without a psf rendered for a band gets the band's PSF (HSC: Moffat) and noise: the
 * same image as the scene with HSC_g's PSF written into it, for the same seed. */
static void test_band_psf(void) {
  static char text[1 << 16];
  lensnet_tensor img;
  lensnet_error err;
  char nopsf[512], withpsf[600], other[620];
  const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  int status;
  FILE *f;
  lenstronomy_path(nopsf, sizeof nopsf, "scene_004.json");
  status = cli_lens_output(out, sizeof out, "render %s --out %s --band HSC_g --seed 1", nopsf, npy);
  CHECK(status == 0, "lens render --band HSC_g failed: %s", out);
  if (status == 0 && lensnet_npy_read(npy, &img, &err) == LENSNET_OK) {
    size_t i, finite = 1;
    for (i = 0; i < lensnet_tensor_count(&img); i++) if (!(img.data[i] == img.data[i])) finite = 0;
    CHECK(finite && img.shape[0] == 80, "HSC_g render: finite 80x80 image");
    lensnet_tensor_free(&img);
  }
  snprintf(withpsf, sizeof withpsf, "%s/test_cli_render_psf_%d.json", tmp, (int)getpid());
  snprintf(other, sizeof other, "%s.b.npy", withpsf);
  cli_text(nopsf, text, sizeof text);
  f = strchr(text, '{') ? fopen(withpsf, "w") : NULL;
  if (f) {
    fprintf(f, "{\"psf\": {\"type\": \"MOFFAT\", \"fwhm\": 0.77, \"beta\": 3.5}, %s", strchr(text, '{') + 1);
    fclose(f);
  }
  status = cli_lens_output(out, sizeof out, "render %s --out %s --band HSC_g --seed 1", withpsf, other);
  CHECK(status == 0 && cli_same_file(npy, other), "the band's PSF is HSC_g's Moffat 0.77\", beta 3.5 (exit %d): %s", status, out);
  remove(withpsf);
  remove(other);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f) { fputs(text, f); fclose(f); }
}

static void test_errors(void) {
  const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  char bad[600];
  int status;
  snprintf(bad, sizeof bad, "%s/test_cli_render_bad_%d.json", tmp, (int)getpid());
  write_text(bad, "{\"grid\": {\"num_pix\": 8, \"pixel_scale\": 0.1}, \"lens\": [{\"type\": \"SIE\", \"e1\": 0, \"e2\": 0}]}");
  status = cli_lens_output(out, sizeof out, "render %s --out %s", bad, npy);
  CHECK(status != 0 && strstr(out, "lens[0] 'SIE': missing keyword 'theta_E'") != NULL, "bad scene: status %d, said: %s", status, out);
  write_text(bad, "{\"grid\": {\"num_pix\": 8,");
  status = cli_lens_output(out, sizeof out, "render %s --out %s", bad, npy);
  CHECK(status != 0 && strstr(out, bad) != NULL, "truncated JSON: status %d, said: %s", status, out);
  status = cli_lens_output(out, sizeof out, "render %s --out %s --band NOPE", scene, npy);
  CHECK(status != 0 && strstr(out, "unknown band 'NOPE'") != NULL, "unknown band: %s", out);
  status = cli_lens_output(out, sizeof out, "render %s", scene);
  CHECK(status != 0 && strstr(out, "no --out") != NULL, "missing --out: %s", out);
  status = cli_lens_output(out, sizeof out, "render /nonexistent/scene.json --out %s", npy);
  CHECK(status != 0 && strstr(out, "cannot open") != NULL, "missing file: %s", out);
  remove(bad);
}

/* Several scenes and a JSON-lines file in one process: a stack whose image i is scene i rendered
 * alone with seed S + i, byte for byte; noise-free images match lenstronomy; scenes of another
 * num_pix, bad lines and empty files are refused naming the scene, leaving no output. */
static void test_stacks(const char *tmp) {
  char s0[512], s1[512], s2[512], r0[512], r1[512], r2[512], jsonl[600], stack[600], alone[600], fits[600];
  const char *scenes[3];
  const char *refs[3];
  lensnet_tensor t, a, ref;
  lensnet_error err;
  size_t i, k;
  int status;
  lenstronomy_path(s0, sizeof s0, "scene_001.json"); lenstronomy_path(r0, sizeof r0, "scene_001.npy");
  lenstronomy_path(s1, sizeof s1, "scene_002.json"); lenstronomy_path(r1, sizeof r1, "scene_002.npy");
  lenstronomy_path(s2, sizeof s2, "scene_003.json"); lenstronomy_path(r2, sizeof r2, "scene_003.npy");
  scenes[0] = s0; scenes[1] = s1; scenes[2] = s2; refs[0] = r0; refs[1] = r1; refs[2] = r2;
  snprintf(jsonl, sizeof jsonl, "%s/test_cli_render_%d.jsonl", tmp, (int)getpid());
  snprintf(stack, sizeof stack, "%s/test_cli_render_stack_%d.npy", tmp, (int)getpid());
  snprintf(alone, sizeof alone, "%s/test_cli_render_alone_%d.npy", tmp, (int)getpid());
  snprintf(fits, sizeof fits, "%s/test_cli_render_stack_%d.fits", tmp, (int)getpid());
  /* the JSON-lines file: each scene on one line, a blank line between the first two */
  CHECK(cli_shell("(tr -d '\\n' < %s; printf '\\n\\n'; tr -d '\\n' < %s; printf '\\n'; tr -d '\\n' < %s; printf '\\n') > %s", s0, s1, s2, jsonl) == 0,
        "write the .jsonl file");
  status = cli_lens_output(out, sizeof out, "render %s %s %s --out %s", s0, s1, s2, stack);
  CHECK(status == 0 && strstr(out, "3 scenes [3, 48, 48]"), "three scene files: exit %d: %s", status, out);
  if (lensnet_npy_read(stack, &t, &err) == LENSNET_OK) {
    CHECK(t.ndim == 3 && t.shape[0] == 3 && t.shape[1] == 48 && t.shape[2] == 48, "a [3, 48, 48] stack");
    for (i = 0; i < 3 && t.ndim == 3 && t.shape[0] == 3; i++)
      if (lensnet_npy_read(refs[i], &ref, &err) == LENSNET_OK) {
        double diff = 0, peak = 0;
        for (k = 0; k < 48 * 48 && lensnet_tensor_count(&ref) == 48 * 48; k++) {
          if (fabs(ref.data[k]) > peak) peak = fabs(ref.data[k]);
          if (fabs(ref.data[k] - t.data[i * 48 * 48 + k]) > diff) diff = fabs(ref.data[k] - t.data[i * 48 * 48 + k]);
        }
        CHECK(lensnet_tensor_count(&ref) == 48 * 48 && diff <= 1e-3 * peak, "stack image %lu within %.2g of lenstronomy's peak", (unsigned long)i,
              peak > 0 ? diff / peak : 1.0);
        lensnet_tensor_free(&ref);
      }
    lensnet_tensor_free(&t);
  } else CHECK(0, "read the stack: %s", err.message);
  /* with noise: image i is the scene alone with seed 7 + i; from the .jsonl file the same bytes */
  status = cli_lens_output(out, sizeof out, "render %s --band VIS --seed 7 --out %s", jsonl, stack);
  CHECK(status == 0 && strstr(out, "3 scenes"), "the .jsonl file (a blank line skipped): exit %d: %s", status, out);
  if (status == 0 && lensnet_npy_read(stack, &t, &err) == LENSNET_OK) {
    for (i = 0; i < 3; i++) {
      int same = 0;
      if (cli_lens("render %s --band VIS --seed %lu --out %s 2>/dev/null", scenes[i], (unsigned long)(7 + i), alone) == 0 &&
          lensnet_npy_read(alone, &a, &err) == LENSNET_OK) {
        same = lensnet_tensor_count(&a) == 48 * 48 && t.shape[0] == 3 && !memcmp(a.data, t.data + i * 48 * 48, 48 * 48 * sizeof(float));
        lensnet_tensor_free(&a);
      }
      CHECK(same, "stack image %lu = scene %lu alone with --seed %lu, bit for bit", (unsigned long)i, (unsigned long)i, (unsigned long)(7 + i));
    }
    lensnet_tensor_free(&t);
  }
  /* FITS: a cube NAXIS3 = 3 holding the same floats as the .npy stack */
  status = cli_lens_output(out, sizeof out, "render %s --band VIS --seed 7 --out %s", jsonl, fits);
  if (status == 0 && lensnet_fits_read(fits, 0, &a, &err) == LENSNET_OK) {
    int same = 0;
    if (lensnet_npy_read(stack, &t, &err) == LENSNET_OK) {
      same = a.ndim == 3 && a.shape[0] == 3 && lensnet_tensor_count(&a) == lensnet_tensor_count(&t) &&
             !memcmp(a.data, t.data, lensnet_tensor_count(&t) * sizeof(float));
      lensnet_tensor_free(&t);
    }
    CHECK(same, "the FITS cube holds the .npy stack's floats");
    lensnet_tensor_free(&a);
  } else CHECK(0, "FITS stack: exit %d: %s", status, out);
  /* refusals: another num_pix, a bad line (named file:line), an empty file; no output left */
  remove(stack);
  status = cli_lens_output(out, sizeof out, "render %s %s --out %s", s0, scene, stack);
  CHECK(status == 1 && strstr(out, "scene_007.json") && strstr(out, "num_pix 80"), "a scene of another size named: exit %d: %s", status, out);
  CHECK(cli_shell("printf '\\n{\"grid\": 3}\\n' >> %s", jsonl) == 0, "append a bad line");
  status = cli_lens_output(out, sizeof out, "render %s --out %s", jsonl, stack);
  CHECK(status == 1 && strstr(out, ".jsonl:6:"), "the bad scene named by file and line: exit %d: %s", status, out);
  CHECK(cli_shell("printf '\\n \\n' > %s", jsonl) == 0, "an empty .jsonl file");
  status = cli_lens_output(out, sizeof out, "render %s --out %s", jsonl, stack);
  CHECK(status == 1 && strstr(out, "no scene"), "a file without scenes refused: exit %d: %s", status, out);
  CHECK(access(stack, F_OK) != 0 && cli_shell("ls %s.tmp* >/dev/null 2>&1", stack) != 0, "and no stack or temporary file left");
  remove(jsonl); remove(alone); remove(fits);
}

int main(void) {
  const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  FILE *f = fopen(cli_lens_path(), "rb");
  if (!f) {
    CHECK(0, "the lens tool is not at %s (set LENS)", cli_lens_path());
    return check_summary();
  }
  fclose(f);
  lenstronomy_path(scene, sizeof scene, "scene_007.json");
  lenstronomy_path(reference, sizeof reference, "scene_007.npy");
  snprintf(npy, sizeof npy, "%s/test_cli_render_%d.npy", tmp, (int)getpid());
  TEST("lens render matches lenstronomy, in float and with --double") test_parity();
  TEST("lens render --band --seed: noise follows the seed") test_noise_seeds();
  TEST("lens render --band gives a scene without a PSF the band's") test_band_psf();
  TEST("lens render errors name the problem and fail") test_errors();
  TEST("lens render of many scenes or a .jsonl file: a stack, each image as if rendered alone") test_stacks(tmp);
  remove(npy);
  return check_summary();
}
