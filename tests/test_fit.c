/* lensnet_fit, the training recipe of lensnet.h: defaults, the settings table, an interrupted and
 * resumed run that ends on the same weights bit for bit (with another thread count), images from
 * a callback, checkpoints by hand (optimiser and random streams), and clear errors. */
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"
#include "../tools/pool.c"
#include <string.h>

#define N_IMAGES 96
#define ARCH "input 1 8 8\nconv2d name=c1 out=4 kernel=3 padding=1\nbatchnorm name=bn\nrelu\nmaxpool kernel=2\n" \
             "flatten\ndropout p=0.2\ndense name=d1 out=8\nrelu\ndense name=d2 out=2"

static float images_data[N_IMAGES * 64], labels[N_IMAGES];
static lensnet_tensor images;

/* rings (1) and discs (0), 1 x 8 x 8, with noise */
static void make_data(void) {
  lensnet_rng rng;
  size_t i;
  int y, x;
  lensnet_rng_seed(&rng, 12);
  for (i = 0; i < N_IMAGES; i++) {
    int ring = (int)(i % 2);
    float r = 1.8f + lensnet_rng_uniform(&rng);
    labels[i] = (float)ring;
    for (y = 0; y < 8; y++)
      for (x = 0; x < 8; x++) {
        float d = sqrtf((x - 3.5f) * (x - 3.5f) + (y - 3.5f) * (y - 3.5f));
        images_data[i * 64 + (size_t)(y * 8 + x)] = (ring ? fabsf(d - r) < 0.7f : d < 0.6f * r) + 0.1f * lensnet_rng_normal(&rng);
      }
  }
  memset(&images, 0, sizeof images);
  images.ndim = 4;
  images.shape[0] = N_IMAGES; images.shape[1] = 1; images.shape[2] = 8; images.shape[3] = 8;
  images.data = images_data;
}

static lensnet_model *new_model_of(const char *arch) {
  lensnet_model *m = NULL;
  lensnet_error err;
  if (lensnet_model_create(arch, &m, &err) != LENSNET_OK) { printf("   %s\n", err.message); return NULL; }
  lensnet_model_init(m, 3);
  return m;
}

static lensnet_model *new_model(void) { return new_model_of(ARCH); }

/* ARCH with a second convolution of 8 channels in (Winograd's path takes 8 or more) */
#define ARCH_WINO "input 1 8 8\nconv2d name=c1 out=8 kernel=3 padding=1\nrelu\nconv2d name=c2 out=4 kernel=3 padding=1\n" \
                  "batchnorm name=bn\nrelu\nmaxpool kernel=2\nflatten\ndropout p=0.2\ndense name=d1 out=8\nrelu\ndense name=d2 out=2"

/* Settings exercising every part of the loop: augmentation, dropout, class weights, a schedule. */
static lensnet_fit_desc base_desc(const char *dir) {
  lensnet_fit_desc d;
  memset(&d, 0, sizeof d);
  d.images = &images;
  d.labels = labels;
  d.epochs = 4;
  d.batch = 16;
  d.lr = 0.01;
  d.val_fraction = 0.25;
  d.augment = "flip,rot90,shift=1,noise=0.02";
  d.class_weights = "auto";
  d.schedule = "cosine";
  d.warmup = 1;
  d.minmax = 1;
  d.seed = 7;
  d.out_dir = dir;
  return d;
}

static int stop_after(void *user, const lensnet_fit_progress *p) {
  return p->epoch_done && p->epoch == *(const int *)user;
}

/* Every tensor of file a is in file b with the same bytes; *count of them. */
static int same_files(const char *pa, const char *pb, size_t *count) {
  lensnet_safetensors a, b;
  lensnet_error err;
  size_t i;
  int same;
  *count = 0;
  if (lensnet_safetensors_read(pa, &a, &err) != LENSNET_OK) { printf("   %s\n", err.message); return 0; }
  if (lensnet_safetensors_read(pb, &b, &err) != LENSNET_OK) { printf("   %s\n", err.message); lensnet_safetensors_free(&a); return 0; }
  same = a.count == b.count;
  for (i = 0; same && i < a.count; i++) {
    const lensnet_tensor *t = lensnet_safetensors_find(&b, a.tensors[i].name);
    size_t n = lensnet_tensor_count(&a.tensors[i].tensor);
    same = t && lensnet_tensor_count(t) == n && !memcmp(t->data, a.tensors[i].tensor.data, n * sizeof(float));
    if (!same) printf("   %s differs\n", a.tensors[i].name);
    (*count)++;
  }
  lensnet_safetensors_free(&a);
  lensnet_safetensors_free(&b);
  return same;
}

static void test_defaults(void) {
  lensnet_fit_desc d = lensnet_fit_desc_resolve(NULL);
  lensnet_trainer_desc td = lensnet_trainer_desc_resolve(NULL);
  CHECK(d.epochs == 10 && d.batch == 32 && d.lr == 1e-3 && d.val_fraction == 0.1, "epochs %d batch %lu lr %g val %g", d.epochs,
        (unsigned long)d.batch, d.lr, d.val_fraction);
  CHECK(!strcmp(d.optimizer, "adam") && !strcmp(d.schedule, "constant") && !strcmp(d.loss, "ce"), "optimizer, schedule, loss");
  CHECK(!strcmp(d.class_weights, "none") && !strcmp(d.augment, "none") && d.gamma == 0.1 && d.focal_gamma == 2.0, "weights, augment, gammas");
  CHECK(d.seed == 0 && d.minmax == 0 && d.out_dir == NULL && d.progress == NULL, "seed 0, no files, silent");
  CHECK(td.batch_cap == 32 && td.parallel == NULL && !td.input_grad && !td.capture, "trainer defaults");
  d.val_fraction = -1;
  d.focal_gamma = -1;
  d = lensnet_fit_desc_resolve(&d);
  CHECK(d.val_fraction == 0 && d.focal_gamma == 0, "negative means none: %g %g", d.val_fraction, d.focal_gamma);
}

static void test_settings_table(void) {
  size_t count = 0, i;
  const lensnet_fit_setting *all = lensnet_fit_settings(&count), *s;
  lensnet_fit_desc d, back;
  lensnet_error err;
  char text[128];
  int round_trips = 1;
  CHECK(count == 22 && all, "%lu settings", (unsigned long)count);
  CHECK(lensnet_fit_setting_find("val-fraction") == lensnet_fit_setting_find("val_fraction") && lensnet_fit_setting_find("val-fraction"),
        "'-' and '_' name the same setting");
  CHECK(lensnet_fit_setting_find("arch") == NULL, "arch is not a fit setting");
  d = base_desc(NULL);
  memset(&back, 0, sizeof back);
  static char texts[64][128];
  CHECK(count <= 64, "the table fits the test's buffer");
  if (count > 64) count = 64;
  for (i = 0; i < count; i++) {
    lensnet_fit_setting_format(&d, &all[i], texts[i], sizeof texts[i]);
    if (lensnet_fit_setting_parse(&back, &all[i], texts[i], &err) != LENSNET_OK) { round_trips = 0; printf("   %s\n", err.message); }
  }
  for (i = 0; i < count; i++) {
    lensnet_fit_setting_format(&back, &all[i], text, sizeof text);
    if (strcmp(text, texts[i])) { round_trips = 0; printf("   %s: %s then %s\n", all[i].name, texts[i], text); }
  }
  CHECK(round_trips, "format then parse gives every setting back");
  s = lensnet_fit_setting_find("val_fraction");
  CHECK(lensnet_fit_setting_parse(&back, s, "0", &err) == LENSNET_OK && lensnet_fit_desc_resolve(&back).val_fraction == 0.0,
        "val_fraction 0 holds nothing out");
  CHECK(lensnet_fit_setting_parse(&back, s, "2", &err) == LENSNET_ERR_ARG && strstr(err.message, "val_fraction") && strstr(err.message, "0.9"),
        "val_fraction 2 refused: %s", err.message);
  CHECK(lensnet_fit_setting_parse(&back, lensnet_fit_setting_find("optimizer"), "rmsprop", &err) == LENSNET_ERR_ARG &&
        strstr(err.message, "adam|adamw|sgd"), "optimizer rmsprop refused: %s", err.message);
  CHECK(lensnet_fit_setting_parse(&back, lensnet_fit_setting_find("augment"), "twirl", &err) == LENSNET_ERR_ARG && strstr(err.message, "twirl"),
        "augment twirl refused: %s", err.message);
  CHECK(lensnet_fit_setting_parse(&back, lensnet_fit_setting_find("batch"), "2.5", &err) == LENSNET_ERR_ARG, "batch 2.5 refused");
  CHECK(lensnet_fit_setting_parse(&back, lensnet_fit_setting_find("class_weights"), "1,x", &err) == LENSNET_ERR_ARG, "class weights 1,x refused");
}

/* Weights of a whole run against a run stopped after epoch 2 and resumed with 2 threads. */
static void test_resume(void) {
  lensnet_fit_desc d = base_desc("build/tfit_full");
  lensnet_model *m = new_model(), *resumed = NULL;
  lensnet_error err;
  lens_pool *pool = lens_pool_create(2);
  lensnet_parallel par = lens_pool_parallel(pool);
  int stop = 2;
  size_t compared = 0;
  const char *ep;
  if (system("rm -rf build/tfit_full build/tfit_cut && mkdir -p build/tfit_full build/tfit_cut") != 0) CHECK(0, "make folders");
  CHECK(m && lensnet_fit(m, &d, &err) == LENSNET_OK, "uninterrupted run: %s", err.message);
  lensnet_model_free(m);
  m = new_model();
  d = base_desc("build/tfit_cut");
  d.progress = stop_after;
  d.progress_user = &stop;
  CHECK(m && lensnet_fit(m, &d, &err) == LENSNET_OK, "run stopped after epoch 2: %s", err.message);
  ep = lensnet_model_meta(m, "train.epoch");
  CHECK(ep && !strcmp(ep, "2"), "stopped after epoch %s", ep ? ep : "(none)");
  lensnet_model_free(m);
  memset(&d, 0, sizeof d);
  d.images = &images;
  d.labels = labels;
  d.parallel = &par;
  CHECK(lensnet_fit_resume("build/tfit_cut", &d, &resumed, &err) == LENSNET_OK && resumed, "resume: %s", err.message);
  CHECK(same_files("build/tfit_full/checkpoint.safetensors", "build/tfit_cut/checkpoint.safetensors", &compared),
        "the resumed run's checkpoint differs");
  CHECK(compared > 10, "weights, statistics and moments compared (%lu tensors)", (unsigned long)compared);
  CHECK(same_files("build/tfit_full/best.safetensors", "build/tfit_cut/best.safetensors", &compared), "best weights differ");
  ep = resumed ? lensnet_model_meta(resumed, "train.epoch") : NULL;
  CHECK(ep && !strcmp(ep, "4"), "the resumed model ends at epoch %s", ep ? ep : "(none)");
  lensnet_model_free(resumed);
  lens_pool_free(pool);
}

/* Settings whose default is not 0, asked for as 0 (stored as -1: no validation split, a focal
 * exponent of 0, adamw without weight decay): saved as 0 and resumed as 0, so that a stopped and
 * resumed run ends on the uninterrupted run's weights (they were saved as their defaults, and a
 * resumed run held out a tenth of the images it had trained on). */
static void test_resume_zeros(void) {
  lensnet_fit_desc d = base_desc("build/tfit_zero_full");
  lensnet_model *m = new_model(), *resumed = NULL;
  lensnet_error err;
  int stop = 1;
  size_t compared = 0;
  const char *v;
  if (system("rm -rf build/tfit_zero_full build/tfit_zero_cut && mkdir -p build/tfit_zero_full build/tfit_zero_cut") != 0) CHECK(0, "make folders");
  d.epochs = 2; d.val_fraction = -1; d.optimizer = "adamw"; d.weight_decay = -1; d.loss = "focal"; d.focal_gamma = -1;
  CHECK(m && lensnet_fit(m, &d, &err) == LENSNET_OK, "uninterrupted run: %s", err.message);
  v = m ? lensnet_model_meta(m, "train.val_fraction") : NULL;
  CHECK(v && !strcmp(v, "0"), "train.val_fraction saved as %s", v ? v : "(none)");
  v = m ? lensnet_model_meta(m, "train.weight_decay") : NULL;
  CHECK(v && !strcmp(v, "0"), "train.weight_decay (adamw, asked for as 0) saved as %s", v ? v : "(none)");
  v = m ? lensnet_model_meta(m, "train.focal_gamma") : NULL;
  CHECK(v && !strcmp(v, "0"), "train.focal_gamma saved as %s", v ? v : "(none)");
  lensnet_model_free(m);
  m = new_model();
  d.out_dir = "build/tfit_zero_cut";
  d.progress = stop_after;
  d.progress_user = &stop;
  CHECK(m && lensnet_fit(m, &d, &err) == LENSNET_OK, "run stopped after epoch 1: %s", err.message);
  lensnet_model_free(m);
  memset(&d, 0, sizeof d);
  d.images = &images;
  d.labels = labels;
  CHECK(lensnet_fit_resume("build/tfit_zero_cut", &d, &resumed, &err) == LENSNET_OK && resumed, "resume: %s", err.message);
  CHECK(same_files("build/tfit_zero_full/checkpoint.safetensors", "build/tfit_zero_cut/checkpoint.safetensors", &compared),
        "the resumed run ends on the uninterrupted run's weights and moments (%lu tensors)", (unsigned long)compared);
  lensnet_model_free(resumed);
  d = lensnet_fit_desc_resolve(NULL);
  CHECK(d.weight_decay == 0.0, "adam's weight decay defaults to 0");
  memset(&d, 0, sizeof d);
  d.optimizer = "adamw";
  CHECK(lensnet_fit_desc_resolve(&d).weight_decay == 0.01, "adamw's to 0.01, torch.optim.AdamW's");
}

/* Settings that would do nothing are refused for a new run, naming them; a checkpoint that holds
 * such a combination (written before they were refused: adam with momentum 0.9, step_size with a
 * cosine schedule) resumes as it ran. */
static void test_settings_that_do_nothing(void) {
  static const struct { const char *optimizer, *schedule; double momentum, gamma, min_lr; int nesterov, step_size; const char *says; } bad[] = {
    {"adam", "constant", 0.9, 0, 0, 0, 0, "momentum 0.9 applies to sgd"},
    {"sgd", "constant", 0, 0, 0, 1, 0, "nesterov needs sgd with momentum"},
    {"adam", "step", 0, 0, 0, 0, 0, "schedule step needs step_size"},
    {"adam", "cosine", 0, 0, 0, 0, 3, "step_size applies to the step schedule, not cosine"},
    {"adam", "constant", 0, 0.5, 0, 0, 0, "gamma applies to the step schedule, not constant"},
    {"adam", "step", 0, 0, 1e-4, 0, 2, "min_lr 0.0001 applies to the cosine schedule, not step"}};
  size_t k, refused = 0;
  lensnet_error err;
  lensnet_model *m = new_model(), *resumed = NULL;
  int stop = 1;
  for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    lensnet_fit_desc d = base_desc(NULL);
    d.optimizer = bad[k].optimizer; d.schedule = bad[k].schedule; d.momentum = bad[k].momentum; d.gamma = bad[k].gamma;
    d.min_lr = bad[k].min_lr; d.nesterov = bad[k].nesterov; d.step_size = bad[k].step_size; d.warmup = 0;
    if (m && lensnet_fit(m, &d, &err) == LENSNET_ERR_ARG && strstr(err.message, bad[k].says)) refused++;
    else printf("   case %lu: %s\n", (unsigned long)k, err.message);
  }
  CHECK(refused == sizeof bad / sizeof bad[0], "%lu of 6 settings that would do nothing refused, each named", (unsigned long)refused);
  { /* an older checkpoint with adam and momentum 0.9, cosine and step_size 3: resumed */
    lensnet_fit_desc d = base_desc("build/tfit_old");
    lensnet_safetensors st;
    if (system("rm -rf build/tfit_old && mkdir -p build/tfit_old") != 0) CHECK(0, "make the folder");
    d.epochs = 2;
    d.progress = stop_after;
    d.progress_user = &stop;
    CHECK(m && lensnet_fit(m, &d, &err) == LENSNET_OK, "a run stopped after epoch 1: %s", err.message);
    CHECK(lensnet_safetensors_read("build/tfit_old/checkpoint.safetensors", &st, &err) == LENSNET_OK, "read the checkpoint: %s", err.message);
    if (st.count) {
      CHECK(lensnet_safetensors_set_meta(&st, "train.momentum", "0.9") == LENSNET_OK &&
                lensnet_safetensors_set_meta(&st, "train.step_size", "3") == LENSNET_OK &&
                lensnet_safetensors_write("build/tfit_old/checkpoint.safetensors", &st, &err) == LENSNET_OK,
            "the checkpoint as an older version could write it");
      lensnet_safetensors_free(&st);
    }
    memset(&d, 0, sizeof d);
    d.images = &images;
    d.labels = labels;
    CHECK(lensnet_fit_resume("build/tfit_old", &d, &resumed, &err) == LENSNET_OK && resumed, "it resumes: %s",
          resumed ? "" : err.message);
    lensnet_model_free(resumed);
  }
  lensnet_model_free(m);
}

/* exact: every convolution as direct sums. By default, on AVX-512, the 3x3 convolution runs as
 * Winograd's F(2x2, 3x3) (lensnet_trainer_desc.winograd): another run, as good; elsewhere
 * the same bits. train.exact is saved; a checkpoint from before the setting (no train.exact) ran
 * with direct sums and resumes so, ending on the exact run's weights bit for bit. */
static void test_exact(void) {
  lensnet_fit_desc d = base_desc("build/tfit_exact_full");
  lensnet_model *exact = new_model_of(ARCH_WINO), *fast = new_model_of(ARCH_WINO), *m = NULL, *resumed = NULL;
  lensnet_safetensors st;
  lensnet_error err;
  int stop = 1, avx512 = lensnet_simd_best() == LENSNET_SIMD_AVX512;
  size_t compared = 0, i;
  const char *v;
  if (system("rm -rf build/tfit_exact_full build/tfit_exact_cut && mkdir -p build/tfit_exact_full build/tfit_exact_cut") != 0)
    CHECK(0, "make folders");
  d.epochs = 2;
  d.exact = 1;
  CHECK(exact && lensnet_fit(exact, &d, &err) == LENSNET_OK, "exact run: %s", err.message);
  v = exact ? lensnet_model_meta(exact, "train.exact") : NULL;
  CHECK(v && !strcmp(v, "1"), "train.exact = %s", v ? v : "(none)");
  d.out_dir = NULL;
  d.exact = 0;
  CHECK(fast && lensnet_fit(fast, &d, &err) == LENSNET_OK, "default run: %s", err.message);
  if (exact && fast) {
    double most = 0.0, scale = 0.0;
    for (i = 0; i < exact->value_count; i++) {
      double e = fabs((double)exact->values[i] - fast->values[i]);
      if (e > most) most = e;
      if (fabs(exact->values[i]) > scale) scale = fabs(exact->values[i]);
    }
    const char *le = lensnet_model_meta(exact, "train.val_loss"), *lf = lensnet_model_meta(fast, "train.val_loss");
    double ve = le ? strtod(le, NULL) : -1.0, vf = lf ? strtod(lf, NULL) : -1.0;
    printf("   after 2 epochs: max |default - exact| = %.3g (weights up to %.3g; AVX-512 %d), validation loss %.4f and %.4f\n", most,
           scale, avx512, vf, ve);
    /* rounding apart in the first step (tests/test_train.c checks one step's gradients); Adam's
     * steps of about lr whatever the gradient's size let such differences grow over a run */
    if (avx512) CHECK(most > 0.0 && ve > 0.0 && fabs(vf - ve) < 0.1 * ve, "the default (Winograd) run is another run, as good: %g", most);
    else CHECK(most == 0.0, "no AVX-512: the default run is the exact one, bit for bit");
  }
  /* a run of the exact settings stopped after epoch 1, its checkpoint stripped of train.exact */
  d = base_desc("build/tfit_exact_cut");
  d.epochs = 2;
  d.exact = 1;
  d.progress = stop_after;
  d.progress_user = &stop;
  m = new_model_of(ARCH_WINO);
  CHECK(m && lensnet_fit(m, &d, &err) == LENSNET_OK, "run stopped after epoch 1: %s", err.message);
  lensnet_model_free(m);
  if (lensnet_safetensors_read("build/tfit_exact_cut/checkpoint.safetensors", &st, &err) == LENSNET_OK) {
    CHECK(lensnet_safetensors_meta(&st, "train.exact") != NULL, "the checkpoint holds train.exact");
    lensnet_safetensors_set_meta(&st, "train.exact", NULL);
    CHECK(lensnet_safetensors_write("build/tfit_exact_cut/checkpoint.safetensors", &st, &err) == LENSNET_OK, "rewrite: %s", err.message);
    lensnet_safetensors_free(&st);
  } else CHECK(0, "read the checkpoint: %s", err.message);
  memset(&d, 0, sizeof d);
  d.images = &images;
  d.labels = labels;
  CHECK(lensnet_fit_resume("build/tfit_exact_cut", &d, &resumed, &err) == LENSNET_OK && resumed, "resume: %s", err.message);
  CHECK(same_files("build/tfit_exact_full/checkpoint.safetensors", "build/tfit_exact_cut/checkpoint.safetensors", &compared),
        "without train.exact: resumed with direct sums, the exact run's checkpoint bit for bit");
  lensnet_model_free(resumed);
  lensnet_model_free(exact);
  lensnet_model_free(fast);
}

static lensnet_result fill_from_array(void *user, const size_t *index, size_t count, float *out, lensnet_error *err) {
  size_t k;
  (void)user; (void)err;
  for (k = 0; k < count; k++) memcpy(out + k * 64, images_data + index[k] * 64, 64 * sizeof(float));
  return LENSNET_OK;
}

static void test_fill_callback(void) {
  lensnet_fit_desc d = base_desc(NULL);
  lensnet_model *a = new_model(), *b = new_model();
  lensnet_error err;
  d.epochs = 2;
  CHECK(a && lensnet_fit(a, &d, &err) == LENSNET_OK, "%s", err.message);
  d.images = NULL;
  d.fill = fill_from_array;
  d.count = N_IMAGES;
  CHECK(b && lensnet_fit(b, &d, &err) == LENSNET_OK, "%s", err.message);
  CHECK(a && b && !memcmp(a->values, b->values, a->value_count * sizeof(float)), "images from a callback train the same weights");
  lensnet_model_free(a);
  lensnet_model_free(b);
}

/* A few steps of an optimiser, the data stream drawn from, through a checkpoint and back. */
static void test_checkpoint_round_trip(void) {
  lensnet_model *m = new_model(), *m2 = new_model();
  lensnet_optimizer *o = NULL, *o2 = NULL;
  lensnet_trainer *t = NULL, *t2 = NULL;
  lensnet_optimizer_desc od;
  lensnet_trainer_desc td;
  lensnet_error err;
  lensnet_rng data, data2;
  float logits[32], grad[32];
  int step, ok = m && m2;
  memset(&od, 0, sizeof od);
  od.type = LENSNET_OPT_ADAM;
  memset(&td, 0, sizeof td);
  td.batch_cap = 16;
  td.seed = 4;
  ok = ok && lensnet_optimizer_create(&od, m, &o, &err) == LENSNET_OK && lensnet_trainer_create(m, &td, &t, &err) == LENSNET_OK;
  td.seed = 99; /* restored from the file */
  ok = ok && lensnet_optimizer_create(&od, m2, &o2, &err) == LENSNET_OK && lensnet_trainer_create(m2, &td, &t2, &err) == LENSNET_OK;
  CHECK(ok, "setup: %s", err.message);
  if (!ok) return;
  lensnet_rng_seed(&data, 5);
  for (step = 0; step < 3; step++) {
    CHECK(lensnet_trainer_forward(t, 16, images_data, 1, logits, &err) == LENSNET_OK, "%s", err.message);
    lensnet_loss_cross_entropy(logits, labels, 16, 2, NULL, grad);
    lensnet_trainer_zero_grad(t);
    CHECK(lensnet_trainer_backward(t, 16, grad, &err) == LENSNET_OK, "%s", err.message);
    lensnet_optimizer_step(o, m, lensnet_trainer_grads(t), 0);
    lensnet_rng_next(&data);
  }
  CHECK(lensnet_checkpoint_save("build/tfit_ckpt.safetensors", m, o, t, &data, &err) == LENSNET_OK, "save: %s", err.message);
  CHECK(lensnet_checkpoint_load("build/tfit_ckpt.safetensors", m2, o2, t2, &data2, &err) == LENSNET_OK, "load: %s", err.message);
  CHECK(!memcmp(m->values, m2->values, m->value_count * sizeof(float)), "weights restored");
  CHECK(o2->step == 3 && !memcmp(o->m, o2->m, m->value_count * sizeof(float)) && !memcmp(o->v, o2->v, m->value_count * sizeof(float)),
        "optimiser step %llu and moments restored", (unsigned long long)o2->step);
  CHECK(!memcmp(&data, &data2, sizeof data) && !memcmp(lensnet_trainer_rng(t), lensnet_trainer_rng(t2), sizeof data), "both streams restored");
  CHECK(lensnet_model_meta(m2, "train.optimizer_step") && !strcmp(lensnet_model_meta(m2, "train.optimizer_step"), "3"), "metadata restored");
  /* one more step each: the same weights */
  lensnet_trainer_forward(t, 16, images_data, 1, logits, &err);
  lensnet_loss_cross_entropy(logits, labels, 16, 2, NULL, grad);
  lensnet_trainer_zero_grad(t);
  lensnet_trainer_backward(t, 16, grad, &err);
  lensnet_optimizer_step(o, m, lensnet_trainer_grads(t), 0);
  lensnet_trainer_forward(t2, 16, images_data, 1, logits, &err);
  lensnet_loss_cross_entropy(logits, labels, 16, 2, NULL, grad);
  lensnet_trainer_zero_grad(t2);
  lensnet_trainer_backward(t2, 16, grad, &err);
  lensnet_optimizer_step(o2, m2, lensnet_trainer_grads(t2), 0);
  CHECK(!memcmp(m->values, m2->values, m->value_count * sizeof(float)), "the next step is the same (dropout included)");
  {
    lensnet_model *other = NULL;
    lensnet_model_create("input 1 8 8\nflatten\ndense name=d out=2", &other, &err);
    CHECK(other && lensnet_checkpoint_load("build/tfit_ckpt.safetensors", other, NULL, NULL, NULL, &err) == LENSNET_ERR_ARCH &&
          strstr(err.message, "architecture"), "another architecture refused: %s", err.message);
    lensnet_model_free(other);
  }
  lensnet_optimizer_free(o); lensnet_optimizer_free(o2);
  lensnet_trainer_free(t); lensnet_trainer_free(t2);
  lensnet_model_free(m); lensnet_model_free(m2);
}

/* fit on a broken desc: the result and a message that names the problem. */
static void expect_error(lensnet_fit_desc d, lensnet_result want, const char *needle) {
  lensnet_model *m = new_model();
  lensnet_error err;
  lensnet_result r;
  memset(&err, 0, sizeof err);
  r = m ? lensnet_fit(m, &d, &err) : LENSNET_ERR_NOMEM;
  CHECK(r == want && strstr(err.message, needle), "want %s naming '%s', got %s: %s", lensnet_result_string(want), needle,
        lensnet_result_string(r), err.message);
  lensnet_model_free(m);
}

static void test_errors(void) {
  static float bad_labels[N_IMAGES], nan_images[N_IMAGES * 64];
  lensnet_tensor wrong = images, with_nan = images;
  size_t i;
  lensnet_fit_desc d = base_desc(NULL);
  lensnet_error err;
  d.epochs = 1;
  d.optimizer = "rmsprop"; expect_error(d, LENSNET_ERR_ARG, "optimizer");
  d = base_desc(NULL); d.val_fraction = 2; expect_error(d, LENSNET_ERR_ARG, "val_fraction");
  d = base_desc(NULL); d.epochs = -3; expect_error(d, LENSNET_ERR_ARG, "epochs");
  d = base_desc(NULL); d.augment = "twirl"; expect_error(d, LENSNET_ERR_ARG, "twirl");
  d = base_desc(NULL); d.class_weights = "1,2,3"; expect_error(d, LENSNET_ERR_ARG, "class_weights");
  d = base_desc(NULL); d.nll_beta = 0.5; expect_error(d, LENSNET_ERR_ARG, "nll_beta is for regression");
  memcpy(bad_labels, labels, sizeof bad_labels);
  bad_labels[9] = 2;
  d = base_desc(NULL); d.labels = bad_labels; expect_error(d, LENSNET_ERR_SHAPE, "label 9"); /* as lensnet_adapt says it */
  d = base_desc(NULL); d.labels = NULL; expect_error(d, LENSNET_ERR_ARG, "labels");
  d = base_desc(NULL); d.images = NULL; expect_error(d, LENSNET_ERR_ARG, "fill");
  wrong.shape[2] = 4; wrong.shape[0] = N_IMAGES * 2;
  d = base_desc(NULL); d.images = &wrong; expect_error(d, LENSNET_ERR_SHAPE, "1x4x8");
  memcpy(nan_images, images_data, sizeof nan_images);
  nan_images[3 * 64 + 2 * 8 + 5] = INFINITY;
  nan_images[7 * 64] = NAN;
  with_nan.data = nan_images;
  /* a non-finite pixel is refused before training starts, with its place, not as a NaN loss later */
  d = base_desc(NULL); d.images = &with_nan;
  expect_error(d, LENSNET_ERR_ARG, "2 non-finite pixels (NaN or infinite) in the images; the first is image 3, band 0, row 2, column 5 (inf)");
  /* finite pixels of +-3e38 (near FLT_MAX) overflow the activations: the loss becomes NaN and the run stops saying so */
  for (i = 0; i < N_IMAGES * 64; i++) nan_images[i] = 3e38f * (images_data[i] > 0.5f ? 1.0f : -1.0f);
  d = base_desc(NULL); d.images = &with_nan; d.minmax = 0; d.augment = NULL; d.val_fraction = -1; d.batch = N_IMAGES;
  expect_error(d, LENSNET_ERR_DIVERGED, "NaN");
  d = base_desc("build/tfit_missing_folder/x");
  d.epochs = 1;
  expect_error(d, LENSNET_ERR_IO, "tfit_missing_folder");
  {
    /* found before any training: the model keeps its weights */
    lensnet_model *m = new_model(), *m0 = new_model();
    CHECK(m && m0 && lensnet_fit(m, &d, &err) == LENSNET_ERR_IO && strstr(err.message, "out_dir") &&
              !memcmp(m->values, m0->values, m->value_count * sizeof(float)),
          "a missing out_dir is refused before training, the weights untouched: %s", err.message);
    lensnet_model_free(m);
    lensnet_model_free(m0);
  }
  {
    /* a model straight from lensnet_model_create, never initialised: refused, not trained in vain */
    lensnet_model *m = NULL;
    d = base_desc(NULL);
    d.epochs = 1;
    CHECK(lensnet_model_create(ARCH, &m, &err) == LENSNET_OK && lensnet_fit(m, &d, &err) == LENSNET_ERR_ARG &&
              strstr(err.message, "every weight of the model is 0") && strstr(err.message, "lensnet_model_init"),
          "an uninitialised model is refused: %s", err.message);
    lensnet_model_free(m);
    /* one dense layer from zeros is a sound start (a convex problem): it trains */
    CHECK(lensnet_model_create("input 1 8 8\nflatten\ndense name=d out=2", &m, &err) == LENSNET_OK && lensnet_fit(m, &d, &err) == LENSNET_OK,
          "a single dense layer from zeros trains: %s", err.message);
    lensnet_model_free(m);
  }
  {
    lensnet_model *m = NULL;
    CHECK(lensnet_fit_resume("build/tfit_nowhere", NULL, &m, &err) == LENSNET_ERR_IO && strstr(err.message, "tfit_nowhere") && !m,
          "a missing checkpoint is named: %s", err.message);
  }
  {
    /* more classes than the softmax losses take: refused before training, not a NaN loss */
    lensnet_model *m = new_model_of("input 1 8 8\nflatten\ndense name=d out=300");
    d = base_desc(NULL);
    d.epochs = 1;
    CHECK(m && lensnet_fit(m, &d, &err) == LENSNET_ERR_SHAPE && strstr(err.message, "300 outputs") && strstr(err.message, "2 to 256"),
          "a 300-output classifier is refused up front: %s", err.message);
    lensnet_model_free(m);
    CHECK(lensnet_fit(NULL, &d, &err) == LENSNET_ERR_ARG && strstr(err.message, "no model"), "no model: %s", err.message);
  }
}

/* A step schedule decayed until powf underflows to 0 (gamma 0.1 each epoch) moves the weights no
 * more: lensnet_optimizer_step reads lr 0 as its default rate, so such epochs once trained at the
 * full base rate again. A model without batch norm, whose running statistics move at any rate. */
static void test_schedule_to_zero(void) {
  const char *arch = "input 1 8 8\nflatten\ndense name=a out=8\nrelu\ndense name=d out=2";
  lensnet_model *a = new_model_of(arch), *b = new_model_of(arch);
  lensnet_fit_desc d = base_desc(NULL);
  lensnet_error err;
  int e0 = 0;
  while (e0 < 200 && (float)d.lr * powf(0.1f, (float)e0) > 0) e0++; /* the first epoch (0-based) the step schedule gives 0 */
  CHECK(e0 > 10 && e0 < 200, "the rate reaches 0 at epoch %d", e0);
  d.schedule = "step"; d.step_size = 1; d.gamma = 0.1; d.val_fraction = -1; d.augment = NULL;
  d.epochs = e0;
  CHECK(a && b && lensnet_fit(a, &d, &err) == LENSNET_OK, "%d epochs: %s", e0, err.message);
  d.epochs = e0 + 4;
  CHECK(b && lensnet_fit(b, &d, &err) == LENSNET_OK, "%d epochs: %s", e0 + 4, err.message);
  CHECK(a && b && !memcmp(a->values, b->values, a->value_count * sizeof(float)), "four epochs at a rate of 0 leave the weights as they were");
  lensnet_model_free(a);
  lensnet_model_free(b);
}

/* Augmentation of single images: rot180 gives each image as it is or turned half round (h-1-y,
 * w-1-x; any shape), both over 64 draws; with rot90 on a square image it adds nothing (the same
 * draws and images as without it). */
static void test_augment_half_turn(void) {
  enum { C = 2, H = 3, W = 5 };
  float src[C * H * W], dst[C * H * W], a_img[4 * 4], b_img[4 * 4], sq[4 * 4];
  lensnet__augment aug;
  lensnet_rng rng, rng2;
  lensnet_error err;
  size_t i;
  int k, same = 0, turned = 0, other = 0, c, y, x, equal = 1;
  for (i = 0; i < C * H * W; i++) src[i] = (float)(i * 7 % 31) + 0.5f;
  CHECK(lensnet__augment_parse("rot180", &aug, &err) == LENSNET_OK && aug.rot180 && !aug.rot90 && !aug.flip, "rot180 parsed alone");
  lensnet_rng_seed(&rng, 4);
  for (k = 0; k < 64; k++) {
    int is_same = 1, is_turned = 1;
    lensnet__augment_image(&aug, &rng, src, dst, C, H, W);
    for (c = 0; c < C; c++)
      for (y = 0; y < H; y++)
        for (x = 0; x < W; x++) {
          float v = dst[(c * H + y) * W + x];
          if (v != src[(c * H + y) * W + x]) is_same = 0;
          if (v != src[(c * H + (H - 1 - y)) * W + (W - 1 - x)]) is_turned = 0;
        }
    same += is_same; turned += is_turned; other += !is_same && !is_turned;
  }
  CHECK(other == 0 && same > 16 && turned > 16, "rot180 on 2 x 3 x 5: %d as they were, %d half turns, %d other", same, turned, other);
  for (i = 0; i < 16; i++) sq[i] = (float)i;
  lensnet_rng_seed(&rng, 9);
  lensnet_rng_seed(&rng2, 9);
  for (k = 0; k < 16; k++) {
    lensnet__augment with, without;
    lensnet__augment_parse("flip,rot90,rot180,shift=1", &with, &err);
    lensnet__augment_parse("flip,rot90,shift=1", &without, &err);
    lensnet__augment_image(&with, &rng, sq, a_img, 1, 4, 4);
    lensnet__augment_image(&without, &rng2, sq, b_img, 1, 4, 4);
    if (memcmp(a_img, b_img, sizeof a_img)) equal = 0;
  }
  CHECK(equal, "rot180 beside rot90 on square images: the same images as rot90 alone");
}

/* Which scaling a run uses: desc.preprocess, else desc.minmax, else the model's own metadata
 * "preprocess" (a finder fine-tuned from its file keeps the scaling it was trained with). Each
 * pair of runs starts from the same weights with the same settings, so equal scaling gives equal
 * weights bit for bit and another scaling other weights. */
static void test_preprocess_from_model(void) {
  lensnet_model *m[5];
  lensnet_fit_desc d;
  lensnet_error err;
  const char *v;
  int k;
  for (k = 0; k < 5; k++) m[k] = new_model();
  for (k = 0; k < 5; k++)
    if (!m[k]) goto done;
  lensnet_model_set_meta(m[0], "preprocess", "minmax"); /* the model asks for min-max; desc says nothing */
  lensnet_model_set_meta(m[2], "preprocess", "minmax"); /* the same, but desc.preprocess = "none" */
  d = base_desc(NULL);
  d.epochs = 1;
  d.minmax = 0;
  CHECK(lensnet_fit(m[0], &d, &err) == LENSNET_OK, "%s", err.message);
  d.minmax = 1;
  CHECK(lensnet_fit(m[1], &d, &err) == LENSNET_OK, "%s", err.message); /* a fresh model, min-max asked */
  CHECK(!memcmp(m[0]->values, m[1]->values, m[0]->value_count * sizeof(float)), "a min-max model is fine-tuned on min-max scaled images");
  CHECK((v = lensnet_model_meta(m[0], "preprocess")) && !strcmp(v, "minmax"), "and says so: preprocess=%s", v ? v : "(none)");
  d.minmax = 0;
  d.preprocess = "none";
  CHECK(lensnet_fit(m[2], &d, &err) == LENSNET_OK, "%s", err.message);
  d.preprocess = NULL;
  CHECK(lensnet_fit(m[3], &d, &err) == LENSNET_OK, "%s", err.message); /* a fresh model, nothing asked: none */
  CHECK(!memcmp(m[2]->values, m[3]->values, m[2]->value_count * sizeof(float)), "preprocess \"none\" overrides the model's min-max");
  CHECK((v = lensnet_model_meta(m[2], "preprocess")) && !strcmp(v, "none"), "and the model says none: %s", v ? v : "(none)");
  CHECK(memcmp(m[0]->values, m[3]->values, m[0]->value_count * sizeof(float)) != 0, "the two scalings train differently");
  d.preprocess = "zscore";
  CHECK(lensnet_fit(m[4], &d, &err) == LENSNET_ERR_ARG && strstr(err.message, "zscore"), "an unknown preprocess is named: %s", err.message);
done:
  for (k = 0; k < 5; k++) lensnet_model_free(m[k]);
}

int main(void) {
  make_data();
  TEST("desc defaults resolve as stated") test_defaults();
  TEST("the settings table parses, formats and refuses bad values") test_settings_table();
  TEST("a run stopped after epoch 2 and resumed ends on the same weights") test_resume();
  TEST("0 for a setting whose default is not 0 is saved and resumed as 0") test_resume_zeros();
  TEST("settings that would do nothing: refused for a new run, resumed from an older checkpoint") test_settings_that_do_nothing();
  TEST("exact: direct sums; the default (Winograd) run another as good; old checkpoints resume exact") test_exact();
  TEST("images from a fill callback train as from an array") test_fill_callback();
  TEST("a checkpoint restores weights, optimiser moments and step, and both random streams") test_checkpoint_round_trip();
  TEST("bad settings and data give lensnet_error results that name the problem") test_errors();
  TEST("the scaling: desc.preprocess, else desc.minmax, else the model's own metadata") test_preprocess_from_model();
  TEST("a step schedule decayed to 0 moves the weights no more") test_schedule_to_zero();
  TEST("rot180 turns images half round or not at all, and leaves rot90's draws alone") test_augment_half_turn();
  if (system("rm -rf build/tfit_*") != 0) printf("   could not remove build/tfit_*\n");
  return check_summary();
}
