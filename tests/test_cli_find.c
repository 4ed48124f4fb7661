/* `lens sim --field` and `lens find` end to end: a simulated field is reproducible whatever the
 * thread count; the shipped finder (weights/ou66-sim.safetensors) scans it into detections, a map
 * and an overview, with sky positions from the field's WCS; --shard and lens merge give one
 * process's detections; bad fields are refused with clear messages; the shipped scanning finder
 * and locator place lenses within a pixel. */
#define _POSIX_C_SOURCE 200809L
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "cli_check.h"

#define W "build/cli_find"
#define MODEL "weights/ou66-sim.safetensors"

/* The rows of a CSV file into cells (lensnet_csv_read); 0 when it cannot be read. */
static int read_csv(const char *path, lensnet_csv *t) {
  lensnet_error err;
  if (lensnet_csv_read(path, t, &err) == LENSNET_OK) return 1;
  printf("   %s: %s\n", path, err.message);
  return 0;
}

static void test_sim_field(void) {
  TEST("lens sim --field: field.fits [4, 264, 264] with a TAN WCS and truth.csv, the same for 1 and 2 threads") {
    lensnet_tensor t;
    lensnet_error err;
    lensnet_csv truth;
    char v[80];
    CHECK(cli_lens("sim --preset euclid-lensfinding --field 264 --lenses 2 --others 10 --seed 101 --threads 1 --out " W "/f1 2>/dev/null") == 0, "sim --field");
    CHECK(cli_lens("sim --preset euclid-lensfinding --field 264 --lenses 2 --others 10 --seed 101 --threads 2 --out " W "/f1b 2>/dev/null") == 0, "again");
    CHECK(cli_same_file(W "/f1/field.fits", W "/f1b/field.fits") && cli_same_file(W "/f1/truth.csv", W "/f1b/truth.csv"), "thread count changed the files");
    CHECK(lensnet_fits_read(W "/f1/field.fits", -1, &t, &err) == LENSNET_OK && t.ndim == 3 && t.shape[0] == 4 && t.shape[1] == 264 && t.shape[2] == 264,
          "field.fits shape");
    lensnet_tensor_free(&t);
    CHECK(lensnet_fits_header_value(W "/f1/field.fits", 0, "CTYPE1", v, sizeof v, &err) == LENSNET_OK && !strcmp(v, "RA---TAN"), "CTYPE1 %s", v);
    CHECK(lensnet_fits_header_value(W "/f1/field.fits", 0, "CRPIX1", v, sizeof v, &err) == LENSNET_OK && atof(v) == 132.5, "CRPIX1 %s", v);
    CHECK(lensnet_fits_header_value(W "/f1/field.fits", 0, "CD2_2", v, sizeof v, &err) == LENSNET_OK && fabs(atof(v) * 3600 - 0.3) < 1e-9, "CD2_2 %s", v);
    if (read_csv(W "/f1/truth.csv", &truth)) {
      CHECK(truth.rows == 13 && !strcmp(truth.cells[0], "x") && !strcmp(truth.cells[2], "index") && !strcmp(truth.cells[3], "label"),
            "truth.csv: %lu rows, header %s,%s,%s", (unsigned long)truth.rows, truth.cells[0], truth.cells[1], truth.cells[2]);
      lensnet_csv_free(&truth);
    } else CHECK(0, "truth.csv");
    CHECK(cli_lens("sim --preset euclid-lensfinding --field 264 --lenses 2 --others 10 --seed 102 --out " W "/f2 2>/dev/null") == 0, "another seed");
    CHECK(!cli_same_file(W "/f1/field.fits", W "/f2/field.fits"), "another seed, another field");
  }
  TEST("lens sim --field: usage errors") {
    CHECK(cli_lens("sim --preset euclid-lensfinding --field 264 --n 5 --out " W "/bad 2>/dev/null") == 2, "--field with --n");
    CHECK(cli_lens("sim --preset euclid-lensfinding --lenses 3 --n 5 --out " W "/bad 2>/dev/null") == 2, "--lenses without --field");
    CHECK(cli_lens("sim --preset euclid-lensfinding --field 40 --out " W "/bad 2>/dev/null") == 2, "a field smaller than a stamp");
    CHECK(cli_lens("sim --preset euclid-lensfinding --field 100 --lenses 20 --out " W "/bad 2>" W "/err.txt") == 2 && cli_file_has(W "/err.txt", "no room"),
          "too many lenses");
    CHECK(cli_lens("sim --preset euclid-lensfinding --out " W "/bad 2>" W "/err.txt") == 2 && cli_file_has(W "/err.txt", "--n"), "neither --n nor --field");
  }
}

static void test_find(void) {
  TEST("lens find: detections.csv, pmap_field.npy and overview_field.png; sky positions from the WCS") {
    lensnet_csv det, truth;
    lensnet_tensor map;
    lensnet_wcs wcs;
    lensnet_error err;
    size_t r, found = 0;
    CHECK(cli_lens("find --model " MODEL " --threads 1 --out " W "/o1 " W "/f1/field.fits 2>" W "/err.txt") == 0, "find");
    CHECK(cli_file_has(W "/err.txt", "preprocess=minmax"), "says it applies the model's min-max");
    CHECK(lensnet_npy_read(W "/o1/pmap_field.npy", &map, &err) == LENSNET_OK && map.ndim == 2 && map.shape[0] == 14 && map.shape[1] == 14,
          "map [14, 14] for ceil((264 - 66) / 16) + 1, the last window flush with the edge");
    lensnet_tensor_free(&map);
#ifndef LENSVIZ_NO_PNG
    CHECK(check_file_exists(W "/o1/overview_field.png"), "overview");
#endif
    lensnet_fits_wcs(W "/f1/field.fits", -1, &wcs, &err);
    if (read_csv(W "/o1/detections.csv", &det) && read_csv(W "/f1/truth.csv", &truth)) {
      CHECK(det.cols == 6 && !strcmp(det.cells[0], "field") && !strcmp(det.cells[3], "ra") && !strcmp(det.cells[5], "p_lens"), "header");
      for (r = 1; r < det.rows; r++) {
        const char *const *c = (const char *const *)det.cells + r * det.cols;
        double ra, dec, x = atof(c[1]), y = atof(c[2]);
        size_t k;
        lensnet_wcs_pixel_to_world(&wcs, x, y, &ra, &dec);
        CHECK(!strcmp(c[0], W "/f1/field.fits") && fabs(atof(c[3]) - ra) < 1e-6 && fabs(atof(c[4]) - dec) < 1e-6 && atof(c[5]) >= 0.5,
              "row %lu: %s,%s,%s,%s,%s", (unsigned long)r, c[0], c[1], c[2], c[3], c[4]);
        for (k = 1; k < truth.rows; k++) {
          const char *const *tc = (const char *const *)truth.cells + k * truth.cols;
          double dx = atof(tc[0]) - x, dy = atof(tc[1]) - y;
          found += !strcmp(tc[3], "1") && dx * dx + dy * dy < 33.0 * 33.0;
        }
      }
      printf("   %lu detections, %lu within half a window of a true lens (of 2)\n", (unsigned long)(det.rows - 1), (unsigned long)found);
      CHECK(found >= 1, "the shipped finder finds at least one of the two lenses");
      lensnet_csv_free(&det);
      lensnet_csv_free(&truth);
    } else CHECK(0, "detections.csv");
  }
  TEST("lens find: the same files for 1 and 2 threads; a .npy field gives the same detections without ra, dec") {
    lensnet_tensor t;
    lensnet_error err;
    lensnet_csv a, b;
    size_t r;
    CHECK(cli_lens("find --model " MODEL " --threads 2 --out " W "/o2 " W "/f1/field.fits 2>/dev/null") == 0, "find --threads 2");
    CHECK(cli_same_file(W "/o1/detections.csv", W "/o2/detections.csv") && cli_same_file(W "/o1/pmap_field.npy", W "/o2/pmap_field.npy"), "differ");
    if (lensnet_fits_read(W "/f1/field.fits", -1, &t, &err) == LENSNET_OK) {
      lensnet_npy_write(W "/field.npy", &t, &err);
      lensnet_tensor_free(&t);
    }
    CHECK(cli_lens("find --model " MODEL " --out " W "/o3 " W "/field.npy 2>/dev/null") == 0, "find on .npy");
    CHECK(cli_same_file(W "/o1/pmap_field.npy", W "/o3/pmap_field.npy"), "the same map");
    if (read_csv(W "/o1/detections.csv", &a) && read_csv(W "/o3/detections.csv", &b)) {
      CHECK(a.rows == b.rows, "rows %lu vs %lu", (unsigned long)a.rows, (unsigned long)b.rows);
      for (r = 1; r < a.rows && r < b.rows; r++)
        CHECK(!strcmp(a.cells[r * 6 + 1], b.cells[r * 6 + 1]) && !strcmp(a.cells[r * 6 + 5], b.cells[r * 6 + 5]) && !b.cells[r * 6 + 3][0],
              "row %lu", (unsigned long)r);
      lensnet_csv_free(&a);
      lensnet_csv_free(&b);
    }
  }
  TEST("lens find on the field tile-compressed losslessly (fpack -g -q 0): the same map and detections, named field") {
    if (cli_shell("command -v fpack >/dev/null 2>&1") != 0) {
      SKIP("fpack is not installed (Debian: libcfitsio-bin)");
    } else {
      CHECK(cli_shell("rm -rf " W "/fz && mkdir -p " W "/fz && fpack -g -q 0 -O " W "/fz/field.fits.fz " W "/f1/field.fits") == 0, "fpack");
      CHECK(cli_lens("find --model " MODEL " --out " W "/o4 " W "/fz/field.fits.fz 2>/dev/null") == 0, "find on field.fits.fz");
      CHECK(cli_same_file(W "/o1/pmap_field.npy", W "/o4/pmap_field.npy"), "the same map, under the field's name");
      CHECK(cli_shell("cut -d, -f2- " W "/o1/detections.csv > " W "/o1/d.txt && cut -d, -f2- " W "/o4/detections.csv > " W "/o4/d.txt") == 0 &&
                cli_same_file(W "/o1/d.txt", W "/o4/d.txt"),
            "the same detections and sky positions");
    }
  }
  TEST("lens find: --threshold, --stride and --nms-radius act") {
    CHECK(cli_lens("find --model " MODEL " --threshold 1 --out " W "/o4 " W "/f1/field.fits 2>/dev/null") == 0 && cli_lines(W "/o4/detections.csv") == 1,
          "nothing reaches 1");
    CHECK(cli_lens("find --model " MODEL " --stride 33 --out " W "/o5 " W "/f1/field.fits 2>/dev/null") == 0, "--stride 33");
    {
      lensnet_tensor map;
      lensnet_error err;
      CHECK(lensnet_npy_read(W "/o5/pmap_field.npy", &map, &err) == LENSNET_OK && map.shape[0] == 7 && map.shape[1] == 7, "7x7 map");
      lensnet_tensor_free(&map);
    }
    CHECK(cli_lens("find --model " MODEL " --threshold 0.01 --nms-radius 1000 --out " W "/o6 " W "/f1/field.fits 2>/dev/null") == 0 &&
          cli_lines(W "/o6/detections.csv") <= 2, "one detection at most with a radius wider than the field");
  }
  TEST("lens find feeds a field's named planes by the model's band names; a pixel scale not the model's gets a note") {
    lensnet_tensor t, r;
    lensnet_error err;
    char v[80];
    size_t k, hw = 264 * 264, order[4] = {2, 1, 3, 0}; /* OU_66 reads J, Y, H, VIS: planes 2, 1, 3, 0 of VIS, Y, J, H */
    static const char *const want[4] = {"VIS", "Y", "J", "H"};
    static const char *const keys[4] = {"BAND1", "BAND2", "BAND3", "BAND4"};
    int named = 1;
    for (k = 0; k < 4; k++)
      named &= lensnet_fits_header_value(W "/f1/field.fits", 0, keys[k], v, sizeof v, &err) == LENSNET_OK && !strcmp(v, want[k]);
    CHECK(named, "lens sim --field names its planes BAND1..BAND4 = VIS, Y, J, H");
    memset(&r, 0, sizeof r);
    if (lensnet_fits_read(W "/f1/field.fits", -1, &t, &err) == LENSNET_OK && lensnet_tensor_alloc(&r, 3, t.shape, &err) == LENSNET_OK) {
      for (k = 0; k < 4; k++) memcpy(r.data + k * hw, t.data + order[k] * hw, hw * sizeof(float));
      lensnet_npy_write(W "/field_jyhvis.npy", &r, &err);
      lensnet_tensor_free(&r);
      lensnet_tensor_free(&t);
    }
    CHECK(cli_lens("find --model weights/OU_66.safetensors --threads 1 --out " W "/ou66 " W "/f1/field.fits 2>" W "/ou66.err") == 0 &&
              cli_file_has(W "/ou66.err", "read from planes 2,1,3,0"),
          "OU_66 on the FITS field: its bands read by name, with a note");
    CHECK(cli_lens("find --model weights/OU_66.safetensors --threads 1 --out " W "/ou66n " W "/field_jyhvis.npy 2>" W "/ou66n.err") == 0 &&
              cli_file_has(W "/ou66n.err", "does not name its planes"),
          "OU_66 on the planes put in its order by hand (.npy): a note that nothing names them");
    {
      lensnet_tensor a, b;
      int same = lensnet_npy_read(W "/ou66/pmap_field.npy", &a, &err) == LENSNET_OK && lensnet_npy_read(W "/ou66n/pmap_field_jyhvis.npy", &b, &err) == LENSNET_OK &&
                 lensnet_tensor_count(&a) == lensnet_tensor_count(&b) && !memcmp(a.data, b.data, lensnet_tensor_count(&a) * sizeof(float));
      CHECK(same, "the same map, bit for bit");
      lensnet_tensor_free(&a);
      lensnet_tensor_free(&b);
    }
    CHECK(cli_lens("find --model weights/ou66-h-sim.safetensors --threads 1 --out " W "/hsim " W "/f1/field.fits 2>" W "/hsim.err") == 0 &&
              cli_lens("find --model weights/ou66-h-sim.safetensors --channels 3 --threads 1 --out " W "/hsim3 " W "/f1/field.fits 2>/dev/null") == 0 &&
              cli_same_file(W "/hsim/pmap_field.npy", W "/hsim3/pmap_field.npy") && cli_file_has(W "/hsim.err", "band H is read from plane 3"),
          "a one-band finder (H) on the four-band field reads plane 3, as --channels 3 does");
    if (lensnet_fits_read(W "/f1/field.fits", -1, &t, &err) == LENSNET_OK) {
      lensnet_fits_card cards[4] = {{"CD1_1", "-1.6666666667E-04", NULL}, {"CD2_2", "1.6666666667E-04", NULL},
                                    {"CTYPE1", "'RA---TAN'", NULL}, {"CTYPE2", "'DEC--TAN'", NULL}};
      lensnet_fits_write_cards(W "/coarse.fits", &t, cards, 4, &err);
      cards[0].value = "-2.7777777778E-05"; cards[1].value = "2.7777777778E-05";
      lensnet_fits_write_cards(W "/fine.fits", &t, cards, 4, &err);
      lensnet_tensor_free(&t);
    }
    CHECK(cli_lens("find --model " MODEL " --threads 1 --out " W "/coarse " W "/coarse.fits 2>" W "/coarse.err") == 0 &&
              cli_file_has(W "/coarse.err", "0.6\"/pixel") && cli_file_has(W "/coarse.err", "made for 0.3\""),
          "a field at 0.6\"/pixel: scanned, with a note naming both scales");
    /* fields at two scales not the model's, in one run: a note for each (it was once the first only) */
    CHECK(cli_lens("find --model " MODEL " --threads 1 --out " W "/scales " W "/coarse.fits " W "/fine.fits 2>" W "/scales.err") == 0 &&
              cli_file_has(W "/scales.err", "coarse.fits has 0.6\"/pixel") && cli_file_has(W "/scales.err", "fine.fits has 0.1\"/pixel"),
          "fields at 0.6\" and 0.1\" per pixel: a note for each");
    CHECK(cli_shell("mkdir -p " W "/again && cp " W "/coarse.fits " W "/again/coarse2.fits") == 0 &&
              cli_lens("find --model " MODEL " --threads 1 --out " W "/scales2 " W "/coarse.fits " W "/f1/field.fits " W "/again/coarse2.fits 2>" W
                       "/scales2.err") == 0 &&
              cli_file_has(W "/scales2.err", "coarse.fits has 0.6\"/pixel") && cli_file_has(W "/scales2.err", "coarse2.fits has 0.6\"/pixel"),
          "0.6\", then the model's 0.3\", then 0.6\" again: the third noted too");
    /* a .npy field whose planes are named beside it (field.bands.txt): fed by name, as the FITS field */
    CHECK(cli_shell("printf 'VIS,Y,J,H\\n' > " W "/field.bands.txt") == 0 &&
              cli_lens("find --model weights/OU_66.safetensors --threads 1 --out " W "/ou66b " W "/field.npy 2>" W "/ou66b.err") == 0 &&
              cli_file_has(W "/ou66b.err", "names its planes (its bands.txt)") && cli_file_has(W "/ou66b.err", "read from planes 2,1,3,0") &&
              cli_same_file(W "/ou66/pmap_field.npy", W "/ou66b/pmap_field.npy"),
          "OU_66 on the .npy field with field.bands.txt: read by name, the FITS field's map bit for bit");
    CHECK(cli_shell("printf 'VIS,Y\\n' > " W "/field.bands.txt") == 0 &&
              cli_lens("find --model weights/OU_66.safetensors --threads 1 --out " W "/ou66c " W "/field.npy 2>" W "/ou66c.err") == 1 &&
              cli_file_has(W "/ou66c.err", "names 2 bands"),
          "a field.bands.txt naming two bands for four planes: refused");
    remove(W "/field.bands.txt");
    /* one run, two fields named otherwise: a note for each way of feeding them */
    CHECK(cli_lens("find --model weights/OU_66.safetensors --threads 1 --out " W "/mixed " W "/f1/field.fits " W "/field_jyhvis.npy 2>" W
                   "/mixed.err") == 0 &&
              cli_file_has(W "/mixed.err", "field.fits names its planes") && cli_file_has(W "/mixed.err", "field_jyhvis.npy does not name its planes"),
          "a run of a named and an unnamed field: a note for each");
    if (lensnet_fits_read(W "/f1/field.fits", -1, &t, &err) == LENSNET_OK) {
      size_t shape5[3] = {5, 264, 264};
      if (lensnet_tensor_alloc(&r, 3, shape5, &err) == LENSNET_OK) {
        lensnet_fits_card five[5] = {{"BAND1", "'VIS'", NULL}, {"BAND2", "'Y'", NULL}, {"BAND3", "'J'", NULL}, {"BAND4", "'H'", NULL}, {"BAND5", "'H'", NULL}};
        memcpy(r.data, t.data, 4 * hw * sizeof(float));
        memcpy(r.data + 4 * hw, t.data, hw * sizeof(float));
        lensnet_fits_write_cards(W "/five_dup.fits", &r, five, 5, &err); /* two planes named H */
        lensnet_fits_write_cards(W "/five_part.fits", &r, five, 4, &err); /* the fifth plane unnamed */
        lensnet_tensor_free(&r);
      }
      lensnet_tensor_free(&t);
    }
    CHECK(cli_lens("find --model weights/OU_66.safetensors --threads 1 --out " W "/dup " W "/five_dup.fits 2>" W "/dup.err") == 1 &&
              cli_file_has(W "/dup.err", "planes 3 and 4 are both band 'H'"),
          "two planes named as one band the model reads: refused, naming them");
    CHECK(cli_lens("find --model weights/OU_66.safetensors --threads 1 --out " W "/part " W "/five_part.fits 2>/dev/null") == 0 &&
              cli_same_file(W "/ou66/pmap_field.npy", W "/part/pmap_five_part.npy"),
          "four of five planes named, the model's four among them: fed by name (the map of the named field)");
    CHECK(cli_lens("find --model " MODEL " --stride 100 --threads 1 --out " W "/wide " W "/f1/field.fits 2>" W "/wide.err") == 0 &&
              cli_file_has(W "/wide.err", "a stride of 100 is wider than the 66-pixel window"),
          "a stride wider than the window: a note that pixels between windows are in none");
  }
}

static void test_shards(void) {
  TEST("lens find --shard over 3 fields, joined by lens merge, is one process's detections.csv") {
    const char *fields = W "/f1/field.fits " W "/f2/field.fits " W "/f3/field.fits";
    CHECK(cli_lens("sim --preset euclid-lensfinding --field 200 --lenses 1 --others 6 --seed 103 --out " W "/f3 2>/dev/null") == 0, "third field");
    /* distinct names for the maps: one folder per field is the common case, so copy under new names */
    CHECK(cli_lens("find --model " MODEL " --threshold 0.2 --out " W "/all %s 2>" W "/err.txt", fields) == 2 && cli_file_has(W "/err.txt", "distinct"),
          "fields of the same file name are refused");
    CHECK(cli_shell("cp " W "/f1/field.fits " W "/a.fits && cp " W "/f2/field.fits " W "/b.fits && cp " W "/f3/field.fits " W "/c.fits") == 0, "copies");
    CHECK(cli_lens("find --model " MODEL " --threshold 0.2 --out " W "/all " W "/a.fits " W "/b.fits " W "/c.fits 2>/dev/null") == 0, "one process");
    CHECK(cli_lens("find --model " MODEL " --threshold 0.2 --shard 0/2 --out " W "/s0 " W "/a.fits " W "/b.fits " W "/c.fits 2>/dev/null") == 0, "shard 0");
    CHECK(cli_lens("find --model " MODEL " --threshold 0.2 --shard 1/2 --threads 1 --out " W "/s1 " W "/a.fits " W "/b.fits " W "/c.fits 2>/dev/null") == 0, "shard 1");
    CHECK(cli_file_has(W "/s0/shard.json", "\"command\": \"find\"") && cli_file_has(W "/s0/shard.json", "detections.csv"), "manifest");
    CHECK(check_file_exists(W "/s0/pmap_a.npy") && !check_file_exists(W "/s0/pmap_b.npy") && check_file_exists(W "/s1/pmap_c.npy"), "contiguous blocks: [0,1) and [1,3)");
    CHECK(cli_lens("merge --out " W "/merged " W "/s1 " W "/s0 2>/dev/null") == 0, "merge");
    CHECK(cli_same_file(W "/all/detections.csv", W "/merged/detections.csv"), "merged detections differ from one process's");
    CHECK(cli_lens("merge --out " W "/merged2 " W "/s1 2>" W "/err.txt") == 1 && cli_file_has(W "/err.txt", "shard 0/2"), "a missing shard is named");
    CHECK(cli_lens("find --model " MODEL " --threshold 0.2 --shard 1/2 --skip-done --out " W "/s1 " W "/a.fits " W "/b.fits " W "/c.fits 2>" W "/err.txt") == 0 &&
          cli_file_has(W "/err.txt", "already done"), "--skip-done");
    CHECK(cli_lens("find --model " MODEL " --threshold 0.3 --shard 0/2 --out " W "/s0x " W "/a.fits " W "/b.fits " W "/c.fits 2>/dev/null") == 0 &&
          cli_lens("merge --out " W "/merged3 " W "/s0x " W "/s1 2>" W "/err.txt") == 1 && cli_file_has(W "/err.txt", "same run"), "shards of other options are refused");
  }
}

static void test_bad_input(void) {
  TEST("bad fields: one band for a 4-band model, smaller than the window, missing; usage errors") {
    lensnet_tensor t;
    lensnet_error err;
    float *z = (float *)calloc(4 * 100 * 100, sizeof(float));
    memset(&t, 0, sizeof t);
    t.ndim = 2; t.shape[0] = 100; t.shape[1] = 100; t.data = z;
    lensnet_npy_write(W "/flat.npy", &t, &err);
    lensnet_fits_write(W "/flat.fits", &t, &err);
    t.ndim = 3; t.shape[0] = 4; t.shape[1] = 40; t.shape[2] = 40;
    lensnet_npy_write(W "/small.npy", &t, &err);
    free(z);
    cli_shell("rm -rf " W "/bad");
    CHECK(cli_lens("find --model " MODEL " --out " W "/bad " W "/flat.npy 2>" W "/err.txt") == 1 && cli_file_has(W "/err.txt", "flat.npy") &&
          cli_file_has(W "/err.txt", "1 band(s) but the model takes 4"), "a 2-D field");
    CHECK(cli_lens("find --model " MODEL " --out " W "/bad " W "/flat.fits 2>" W "/err.txt") == 1 && cli_file_has(W "/err.txt", "1 band(s)"), "a 2-D FITS field");
    CHECK(cli_lens("find --model " MODEL " --out " W "/bad " W "/small.npy 2>" W "/err.txt") == 1 && cli_file_has(W "/err.txt", "smaller than the model's 66x66 window"),
          "a field smaller than the window");
    CHECK(cli_lens("find --model " MODEL " --out " W "/bad " W "/missing.fits 2>" W "/err.txt") == 1 && cli_file_has(W "/err.txt", "missing.fits"), "a missing file");
    CHECK(!check_file_exists(W "/bad/detections.csv") && !check_file_exists(W "/bad/detections.csv.tmp"), "nothing left behind");
    CHECK(cli_lens("find --model " W "/missing.safetensors --out " W "/bad " W "/a.fits 2>/dev/null") == 1, "a missing model");
    CHECK(cli_lens("find --out " W "/bad " W "/a.fits 2>/dev/null") == 2, "no --model");
    CHECK(cli_lens("find --model " MODEL " --out " W "/bad 2>/dev/null") == 2, "no field");
    CHECK(cli_lens("find --model " MODEL " --stride 0 --out " W "/bad " W "/a.fits 2>/dev/null") == 2, "--stride 0");
    CHECK(cli_lens("find --model " MODEL " --threshold 2 --out " W "/bad " W "/a.fits 2>/dev/null") == 2, "--threshold 2");
    CHECK(cli_lens("find --model " MODEL " --channels 0,1 --out " W "/bad " W "/a.fits 2>" W "/err.txt") == 2 && cli_file_has(W "/err.txt", "channel"), "--channels of 2 for 4");
    CHECK(cli_lens("find --model " MODEL " --skip-done --out " W "/bad " W "/a.fits 2>/dev/null") == 2, "--skip-done without --shard");
    CHECK(cli_lens("find --model " MODEL " --out " W "/bad.csv " W "/a.fits 2>/dev/null") == 2, "--out with an extension");
    CHECK(access(W "/bad", F_OK) != 0, "none of the failed runs left an empty --out folder");
  }
  TEST("a failed run takes away the --out folders it made, and only those") {
    FILE *f = fopen(W "/garbage.fits", "wb");
    if (f) { fputs("not a FITS file", f); fclose(f); }
    CHECK(cli_lens("find --model " MODEL " --out " W "/made/a/b " W "/garbage.fits 2>" W "/err.txt") == 1 && cli_file_has(W "/err.txt", "garbage.fits") &&
              access(W "/made", F_OK) != 0,
          "an unreadable FITS: no folder of --out " W "/made/a/b left");
    CHECK(cli_lens("find --model weights/ou66-locator.safetensors --out " W "/made " W "/f1/field.fits 2>/dev/null") == 2 && access(W "/made", F_OK) != 0,
          "a regression network as the finder: no folder left");
    CHECK(cli_shell("mkdir -p " W "/kept") == 0 && cli_lens("find --model " MODEL " --out " W "/kept " W "/garbage.fits 2>/dev/null") == 1 &&
              access(W "/kept", F_OK) == 0,
          "an --out folder that was there before stays");
    /* a field that fails after others were scanned: their maps and overviews go too, as no
     * detections.csv holds their rows; the folder's other files stay */
    CHECK(cli_lens("find --model " MODEL " --out " W "/partial " W "/f1/field.fits " W "/garbage.fits 2>" W "/err.txt") == 1 &&
              cli_file_has(W "/err.txt", "garbage.fits") && access(W "/partial", F_OK) != 0,
          "a good field then an unreadable one: exit 1, no folder --out " W "/partial left");
    CHECK(cli_shell("mkdir -p " W "/kept2 && echo note > " W "/kept2/note.txt") == 0 &&
              cli_lens("find --model " MODEL " --out " W "/kept2 " W "/f1/field.fits " W "/garbage.fits 2>" W "/err.txt") == 1 &&
              access(W "/kept2/note.txt", F_OK) == 0 && access(W "/kept2/pmap_field.npy", F_OK) != 0 &&
              access(W "/kept2/detections.csv", F_OK) != 0 && cli_file_has(W "/err.txt", "removed the") &&
              cli_shell("ls " W "/kept2 | grep -qv note.txt") != 0,
          "in a folder that was there: the run's maps and overviews are removed, saying so, and the note stays");
    /* a run that fails before its first field (a model that cannot be read) touches none of an
     * earlier run's files */
    CHECK(cli_lens("find --model " MODEL " --out " W "/earlier " W "/f1/field.fits 2>/dev/null") == 0 &&
              access(W "/earlier/pmap_field.npy", F_OK) == 0, "a complete run");
    CHECK(cli_lens("find --model " W "/no_such_model.safetensors --out " W "/earlier " W "/f1/field.fits 2>" W "/err.txt") == 1 &&
              !cli_file_has(W "/err.txt", "removed") && access(W "/earlier/pmap_field.npy", F_OK) == 0 &&
              access(W "/earlier/detections.csv", F_OK) == 0,
          "a later run failing on its model leaves the earlier run's map and detections");
    CHECK(cli_lens("find --model weights/ensai-sim.safetensors --out " W "/earlier " W "/f1/field.fits 2>/dev/null") == 2 &&
              access(W "/earlier/pmap_field.npy", F_OK) == 0, "and so does one refused for its model (exit 2)");
    /* one failing on a field after scanning the earlier run's field again: the earlier run's map
     * and overview are kept as they were (they were once replaced, then removed), and no
     * .pending file is left */
    CHECK(cli_shell("cp " W "/earlier/pmap_field.npy " W "/earlier_map.npy && cp " W "/earlier/overview_field.png " W "/earlier_ov.png") == 0 &&
              cli_lens("find --model " MODEL " --stride 32 --out " W "/earlier " W "/f1/field.fits " W "/garbage.fits 2>/dev/null") == 1 &&
              cli_shell("cmp -s " W "/earlier/pmap_field.npy " W "/earlier_map.npy && cmp -s " W "/earlier/overview_field.png " W "/earlier_ov.png") == 0 &&
              cli_shell("ls " W "/earlier | grep -q pending") != 0,
          "a later run failing on its second field leaves the earlier run's map and overview as they were");
  }
}


/* The nearest detection of detections.csv (columns field,x,y,...) to (x, y), in pixels. */
static double nearest(const lensnet_csv *d, double x, double y) {
  double best = 1e30;
  size_t r;
  for (r = 1; r < d->rows; r++) {
    double dx = atof(d->cells[r * d->cols + 1]) - x, dy = atof(d->cells[r * d->cols + 2]) - y, dist = sqrt(dx * dx + dy * dy);
    if (dist < best) best = dist;
  }
  return best;
}

/* The shipped scanning finder with the shipped locator on three small fields of 3 lenses and 12
 * others (seeds 101-103, none used in training): measured, 8 of the 9 lenses get a detection
 * within 0.5 pixel, against 1-4 pixels from the scan's own positions (docs/find.md has the figures
 * on 160 lenses: 82% within one pixel). The floor is 7 of 9 within one pixel, and the located
 * positions must beat the scan's. */
static void test_locator(void) {
  TEST("lens find --locator: the shipped finder and locator put lenses within a pixel of their truth") {
    int seed, near = 0, lenses = 0, closer = 0;
    for (seed = 101; seed <= 103; seed++) {
      lensnet_csv truth, located, plain;
      size_t r;
      CHECK(cli_lens("sim --preset euclid-lensfinding --field 264 --lenses 3 --others 12 --seed %d --out " W "/loc%d 2>/dev/null", seed, seed) == 0 &&
                cli_lens("find --model weights/ou66-scan.safetensors --locator weights/ou66-locator.safetensors --out " W "/loc%d/on "
                         W "/loc%d/field.fits 2>/dev/null", seed, seed) == 0 &&
                cli_lens("find --model weights/ou66-scan.safetensors --out " W "/loc%d/off " W "/loc%d/field.fits 2>/dev/null", seed, seed) == 0,
            "sim and find, seed %d", seed);
      {
        char a[128], b[128], c[128];
        snprintf(a, sizeof a, W "/loc%d/truth.csv", seed);
        snprintf(b, sizeof b, W "/loc%d/on/detections.csv", seed);
        snprintf(c, sizeof c, W "/loc%d/off/detections.csv", seed);
        if (!read_csv(a, &truth)) continue;
        if (!read_csv(b, &located)) { lensnet_csv_free(&truth); continue; }
        if (!read_csv(c, &plain)) { lensnet_csv_free(&truth); lensnet_csv_free(&located); continue; }
      }
      CHECK(located.cols == 8 && !strcmp(located.cells[6], "x_sigma") && !strcmp(located.cells[7], "y_sigma"), "columns x_sigma, y_sigma");
      for (r = 1; r < truth.rows; r++) {
        double x = atof(truth.cells[r * truth.cols]), y = atof(truth.cells[r * truth.cols + 1]), dl, dp;
        if (atoi(truth.cells[r * truth.cols + 3]) != 1) continue;
        lenses++;
        dl = nearest(&located, x, y);
        dp = nearest(&plain, x, y);
        printf("   seed %d lens at (%.1f, %.1f): located %.2f px, scan %.2f px\n", seed, x, y, dl, dp);
        near += dl <= 1.0;
        closer += dl < dp;
      }
      lensnet_csv_free(&truth);
      lensnet_csv_free(&located);
      lensnet_csv_free(&plain);
    }
    CHECK(lenses == 9 && near >= 7, "%d of %d lenses within a pixel", near, lenses);
    CHECK(closer >= 7, "located closer than the scan's positions for %d of %d", closer, lenses);
  }
  TEST("lens find --verify: p_verify after the locator's columns; every kept detection has p_verify >= the threshold") {
    lensnet_csv d;
    size_t r;
    CHECK(cli_lens("find --model weights/ou66-scan.safetensors --locator weights/ou66-locator.safetensors --verify " MODEL
                   " --verify-threshold 0.3 --out " W "/loc101/ver " W "/loc101/field.fits 2>/dev/null") == 0, "find --verify");
    if (read_csv(W "/loc101/ver/detections.csv", &d)) {
      CHECK(d.cols == 9 && !strcmp(d.cells[8], "p_verify"), "columns");
      for (r = 1; r < d.rows; r++) CHECK(atof(d.cells[r * d.cols + 8]) >= 0.3, "row %lu: p_verify %s", (unsigned long)r, d.cells[r * d.cols + 8]);
      lensnet_csv_free(&d);
    } else CHECK(0, "detections.csv");
  }
  TEST("lens find --locator, --verify: a finder as locator, a regression as verifier, lone options refused") {
    CHECK(cli_lens("find --model " MODEL " --locator " MODEL " --out " W "/badloc " W "/loc101/field.fits 2>/dev/null") == 2, "a finder is no locator");
    CHECK(cli_lens("find --model " MODEL " --locate-passes 3 --out " W "/badloc " W "/loc101/field.fits 2>/dev/null") == 2, "--locate-passes alone");
    CHECK(cli_lens("find --model " MODEL " --locate-symmetries 8 --out " W "/badloc " W "/loc101/field.fits 2>/dev/null") == 2, "--locate-symmetries alone");
    CHECK(cli_lens("find --model " MODEL " --locator weights/ou66-locator.safetensors --locate-symmetries 4 --out " W "/badloc " W
                   "/loc101/field.fits 2>" W "/err.txt") == 2 && cli_file_has(W "/err.txt", "one of 1, 8"),
          "--locate-symmetries 4 refused, naming 1 and 8");
    CHECK(cli_lens("find --model " MODEL " --verify weights/ou66-locator.safetensors --out " W "/badloc " W "/loc101/field.fits 2>/dev/null") == 2,
          "a regression network as verifier");
    CHECK(cli_lens("find --model " MODEL " --verify-threshold 0.3 --out " W "/badloc " W "/loc101/field.fits 2>/dev/null") == 2, "--verify-threshold alone");
    /* a second network that reads other pixels or bands than the finder */
    CHECK(cli_lens("find --model weights/ou66-scan.safetensors --verify weights/OU_200.safetensors --out " W "/badloc " W
                   "/loc101/field.fits 2>" W "/err.txt") == 2 && cli_file_has(W "/err.txt", "0.1\"/pixel but the finder"),
          "a verifier at another pixel scale refused");
    CHECK(cli_lens("find --model weights/ou66-scan.safetensors --verify weights/OU_66.safetensors --out " W "/badloc " W
                   "/loc101/field.fits 2>" W "/err.txt") == 2 && cli_file_has(W "/err.txt", "takes the bands J,Y,H,VIS"),
          "a verifier with the bands in another order refused");
  }
}

int main(void) {
  if (!cli_have_lens()) return check_summary();
  cli_shell("rm -rf " W " && mkdir -p " W);
  test_sim_field();
  test_find();
  test_shards();
  test_bad_input();
  test_locator();
  return check_summary();
}
