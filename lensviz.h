/* lensviz.h - what a lens finder looks at, and pictures of it - v0.3.0 - MIT licence
 *
 * Interpretability for the CNNs of lensnet.h (occlusion, saliency, guided backprop, Grad-CAM,
 * guided Grad-CAM, integrated gradients, SmoothGrad, class images, deep dream, filter images,
 * per-channel activations) and the pictures around them (colour maps, asinh RGB composites,
 * overlays, titled panel grids with colour bars in a built-in bitmap font, ROC / PR / training
 * curves, confusion matrices, histograms), written as PNG (through stb_image_write.h) or as
 * animated GIF (an encoder of its own).
 *
 * BUILD
 *   lensviz.h needs lensnet.h. In exactly one C or C++ file:
 *     #define LENSNET_IMPLEMENTATION        (unless another file holds it)
 *     #define STB_IMAGE_WRITE_IMPLEMENTATION (unless another file holds it, or LENSVIZ_NO_PNG)
 *     #define LENSVIZ_IMPLEMENTATION
 *     #include "lensviz.h"
 *   elsewhere just #include "lensviz.h"; link with -lm. stb_image_write.h comes from Debian's
 *   libstb-dev (/usr/include/stb/stb_image_write.h, found as <stb/stb_image_write.h>) or from any
 *   copy on the include path ("stb_image_write.h"); LENSVIZ_STB_IMAGE_WRITE names another path.
 *
 * TEN LINES
 *     lensnet_model *m; lensnet_error err; lensnet_map_geometry at;
 *     float cam[4 * 4]; unsigned char rgb[198 * 198 * 3];        // OU-66's last feature map is 4x4
 *     lensviz_image pic = {rgb, 198, 198, 0};
 *     if (lensnet_model_load("weights/OU_66.safetensors", &m, &err) ||
 *         lensviz_gradcam(m, image_4x66x66, -1, 27, NULL, cam, &err) ||  // -1: the lens class;
 *         lensnet_receptive_field(m, 27, &at, &err)) {                   // 27: last conv's ReLU;
 *       puts(err.message); return 1;                                   // at: where its cells lie
 *     }
 *     lensviz_render_map_placed(cam, &at, LENSVIZ_CMAP_MAGMA, 0, 0, 1, &pic);   // 0,0: auto range
 *     if (lensviz_png_write("gradcam.png", &pic, &err)) puts(err.message);
 *
 * WHAT IS IN IT
 *   Methods (image: one sample [C,H,W] in the model's input shape; target: the explained output,
 *   -1 for the lens class: lensnet_model_class_index(m, "lens"), i.e. "lens" in the metadata
 *   "classes", else the last output, which is "lens" for the two-class finders of Wilde et al. 2022):
 *   lensviz_occlusion        P(target | patch filled) - P(target) over a grid of patch positions;
 *                            P by lensnet_lens_probability (softmax; sigmoid for one output), or
 *                            with desc.output_value the output itself (regression models). The
 *                            grid has floor((H - patch) / stride) + 1 rows (likewise columns):
 *                            only whole patches, no partial ones at the edges. Patches are filled
 *                            with `fill` in every band. Each occluded image recomputes only the
 *                            rectangle of every convolution, pool and element-wise layer that its
 *                            patch reaches, from the unoccluded activations (a patch touches few
 *                            outputs of the early, costly layers), up to the first layer that
 *                            mixes all positions; from there the rest of the model runs on
 *                            batches through lensnet_model_forward. desc.cells picks grid cells.
 *   lensviz_saliency         d output_target / d input, signed, shape [C,H,W] (Simonyan et al. 2014).
 *   lensviz_guided_backprop  the same with negative gradients clamped to zero at every ReLU
 *                            (Springenberg et al. 2015).
 *   lensviz_gradcam          ReLU(sum_k alpha_k A_k), alpha_k = mean_ij d output_target / d A_k,
 *                            A = output of layer L, at the feature map's resolution (Selvaraju et
 *                            al. 2017). Layer indices are lensnet layer indices, which for the
 *                            built-in ou66 / ou200 are PyTorch's nn.Sequential indices.
 *   lensviz_guided_gradcam   guided backprop times the Grad-CAM map placed on the image
 *                            (lensviz_map_to_image, bilinear between the cells' centres), [C,H,W].
 *   lensviz_integrated_gradients  (x - x') * mean_{k=1..m} grad(x' + k/m (x - x')), the right
 *                            Riemann sum of Sundararajan et al. 2017; x' = baseline (zeros by default).
 *   lensviz_smoothgrad       mean gradient over `samples` copies of x with Gaussian noise of
 *                            sigma = noise * (max(x) - min(x)) (Smilkov et al. 2017).
 *   lensviz_class_image      gradient ascent on output_target from a noise image (Simonyan et al.
 *                            2014) with optional L2 decay, Gaussian blur every k steps and jitter.
 *   lensviz_dream            gradient ascent on 0.5 mean(A_L^2) from a given image (deep dream,
 *                            Mordvintsev et al. 2015), with octaves and jitter.
 *   lensviz_filter_image     gradient ascent on the mean activation of one channel of layer L
 *                            (of its input when L is a ReLU: a unit that is off passes no gradient).
 *   lensviz_channel_means    mean activation of every channel of layer L for one image.
 *   lensviz_default_layer    the layer L when the caller names none: the ReLU after the last
 *                            convolution (the convolution itself when no ReLU follows it) for
 *                            Grad-CAM, guided Grad-CAM and filter images, the one after the
 *                            middle convolution (the earlier of two) for dreams: 27 and 14 for
 *                            OU-66, 20 and 9 for OU-200. Convolutions include p4_lift and
 *                            p4_conv; batch norm and a residual add may come before the ReLU
 *                            (a ResNet block's output: layer4's for resnet18). LENSNET_ERR_ARG
 *                            without a convolution.
 *   Refused with LENSNET_ERR_ARG before anything runs: an image with a NaN or infinite pixel
 *   (naming the first; the maps of such an image would be zeros or NaN), and settings that would
 *   otherwise fall back to a default or pin every pixel without a word: a NaN or infinite float in
 *   the desc, a negative noise, step, l2 or blur_sigma, an octave_scale in (0, 1], lo above hi.
 *   Where maps lie: a map coarser than the image (Grad-CAM's feature map, an occlusion grid) is
 *   drawn with each cell on the image pixels it stands for, not stretched over the image. A
 *   feature map's cell is centred on its receptive field (lensnet_receptive_field, from the
 *   kernels, strides, padding and pools of the layers up to it); an occlusion cell on its patch
 *   (lensviz_occlusion_grid). Unpadded convolutions and floor pooling lose the image's border, so
 *   OU-66's 4x4 Grad-CAM cells sit within +-1.8" of the centre of its 19.8" image and cover its
 *   middle 4.8" (4 pixels of 0.3" each), not the whole image: lensviz_render_map_placed and
 *   lensviz_overlay_placed draw them there and mark the rest. lensviz_scale_bar adds arcseconds.
 *   Ascent steps are normalised: x += step * g / mean|g|; pixels stay in [lo, hi] (default [0, 1],
 *   the range of min-max normalised cutouts). Dream and filter images run a copy of the model cut
 *   after layer L, which for octaves is rebuilt at each octave's size: that works while layers
 *   0..L are convolutions, pools and activations (a dense layer fixes the size).
 *   Pictures (lensviz_image: RGB8 pixels owned by the caller, row stride in bytes, 0 = 3 * width;
 *   a view into a larger picture is an image too, see lensviz_image_view):
 *   colour maps viridis, magma (matplotlib's tables, sampled), a blue-white-red diverging map
 *   for signed maps, grey; lensviz_render_map scales any float map into any picture size, and
 *   lensviz_render_map_placed draws a map where its cells lie on the image (above).
 *   lensviz_asinh_rgb: Lupton et al. 2004 (PASP 116, 133): I = mean of the bands,
 *   f(I) = asinh(Q I / stretch) / Q, every band scaled by f(I) / I, colours kept when clipping.
 *   Text: a 5x7 bitmap font (ASCII 32..126) in 6x8 cells, drawn at integer scales.
 *   Panels, colour bars, line plots (ROC, PR, training history), histograms, confusion matrices.
 *   Evaluation (what `lens eval` computes; the section "Evaluation" among the declarations
 *   defines every figure): lensviz_eval_binary (Mann-Whitney AUC with a stratified percentile
 *   bootstrap interval, average precision, precision / recall / F1 / accuracy and the confusion
 *   counts at a threshold, precision at fixed recalls, recall at fixed false-positive rates, all
 *   optionally reweighted to a class prior), lensviz_eval_group (a kind or a bin, against the
 *   other class when it holds one), lensviz_eval_curve (ROC and PR points with thresholds),
 *   quantile bins (lensviz_eval_quantile_edges), K classes (lensviz_eval_multiclass) and how far
 *   a locator's positions lie from the true ones (lensviz_eval_positions).
 *   Files: lensviz_png_write (stb_image_write.h; an error saying so under LENSVIZ_NO_PNG) and
 *   lensviz_gif_write (animated, looping; a fixed 256-colour palette: a 6x6x6 colour cube and 40
 *   greys, no dithering). Both write `path.tmp` and rename it, so a reader never sees half a file.
 *
 * ERRORS
 *   The functions that can fail return lensnet_result and fill an optional lensnet_error (the
 *   types of lensnet.h: a result code and a sentence naming the problem); no global error state.
 *
 * CONFIGURATION (macros defined before the implementation is included)
 *   LENSVIZ_MALLOC / LENSVIZ_FREE   both or none (default: libc malloc and free)
 *   LENSVIZ_STATIC                  make every function static
 *   LENSVIZ_NO_PNG                  no stb_image_write.h; lensviz_png_write returns
 *                                   LENSNET_ERR_UNSUPPORTED (LENSVIZ_HAS_PNG is 0)
 *   LENSVIZ_STB_IMAGE_WRITE         the include path of stb_image_write.h, in quotes or <>
 *   LENSVIZ_MAX_PIXELS              largest picture a writer accepts (default 2^26 pixels)
 *
 * MEMORY
 *   Drawing functions draw into the caller's pixels and allocate nothing; lensviz_roc and
 *   lensviz_pr sort a copy of the scores; the evaluation functions allocate O(n) per call (a
 *   sorted copy, weights, bootstrap scratch: the section "Evaluation" gives the sizes) and free
 *   it before returning; the GIF and PNG writers build the file in memory. The
 *   methods allocate their working buffers (a lensnet_trainer, input batches, slices of the
 *   model) per call and free them before returning. Batches default to what fits in about 64 MB.
 *
 * THREADS
 *   No threads of its own and no global mutable state: calls on different models or pictures
 *   may run at once. A model is only read, except by the gradient methods, which run a trainer
 *   over it (its weights are not changed; do not train the same model meanwhile). desc.parallel,
 *   a caller's lensnet_parallel, spreads occlusion batches and the trainer's per-image
 *   convolutions over threads, lensviz_eval_desc.parallel the bootstrap resamples; results do not
 *   depend on the number of threads. Random numbers (noise, jitter, resamples) come from
 *   lensnet_rng seeded with desc.seed, so a call repeats exactly on the same build.
 *
 * LIMITS
 *   One image per call for the methods (batching happens inside); the model must map one image
 *   to a vector of outputs. Pictures up to LENSVIZ_MAX_PIXELS; text is ASCII (other bytes draw as
 *   '?'). No anti-aliased lines, no TrueType, no PNG reading, no GIF transparency.
 *   A gradient through a max pool goes to the largest input of each window (the first of equal
 *   ones, as in PyTorch). Where the two largest differ only by rounding, which one wins depends on
 *   how the convolution below summed, so input gradients of such images differ between float32
 *   implementations: for the 200x200 test image of Wilde et al. (an upsampled cutout, with some
 *   39000 windows of the first pool within 1e-6 of a tie) PyTorch's own float64 saliency is 3%
 *   of the largest value away from its float32 one, and its float32 saliency with oneDNN's AVX2
 *   kernels 2.95e-2 away from the one its AVX-512 kernels give. Grad-CAM and occlusion are not
 *   affected, and on a noisy copy of that image, whose windows are far from ties, saliency and
 *   guided backprop match PyTorch's to 3.4e-7 of the largest value (tests/test_wilde2022.c).
 *
 * LICENCE
 *   MIT, the same text in lensnet.h, lenssim.h, lensviz.h and LICENSE (at the end of this file).
 */
#ifndef LENSVIZ_H
#define LENSVIZ_H

/* The toolkit's version, shared by lensnet.h, lenssim.h and lensviz.h (semantic versioning). */
#define LENSVIZ_VERSION_MAJOR 0
#define LENSVIZ_VERSION_MINOR 3
#define LENSVIZ_VERSION_PATCH 0
#define LENSVIZ_VERSION_STRING "0.3.0"

#include "lensnet.h"

#ifndef LENSVIZ_API
#ifdef LENSVIZ_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define LENSVIZ_API static __attribute__((unused)) /* a subset build uses only some of them */
#else
#define LENSVIZ_API static
#endif
#else
#define LENSVIZ_API extern
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Options shared by the methods: zero means default for every field
 * ------------------------------------------------------------------------------------------- */
typedef struct {
  size_t batch;                 /* images per forward / backward pass (0: what fits in ~64 MB) */
  const lensnet_parallel *parallel; /* occlusion: spread batches over it (NULL: this thread) */
  uint64_t seed;                /* noise and jitter */
  /* occlusion */
  size_t patch;                 /* patch side in pixels (0: 4) */
  size_t stride;                /* step between patches (0: the patch side) */
  float fill;                   /* value written into the patch, every band (default 0) */
  const size_t *cells;          /* compute only these grid cells (row * cols + col), leaving the
                                   rest of the map untouched (NULL: every cell) */
  size_t cell_count;
  int output_value;             /* nonzero: map the change of the target output itself (a regression
                                   model's prediction) rather than of its probability P */
  /* integrated gradients */
  size_t steps;                 /* Riemann steps (0: 32) */
  const float *baseline;        /* [C,H,W] (NULL: zeros) */
  /* SmoothGrad */
  size_t samples;               /* noisy copies (0: 25) */
  float noise;                  /* sigma as a fraction of the image's value range (0: 0.15) */
  /* gradient ascent: class image, dream, filter image */
  size_t iterations;            /* steps (per octave for dreams) (0: 100) */
  float step;                   /* step size in pixel units after normalisation (0: 0.01) */
  float l2;                     /* weight of an L2 penalty 0.5 * l2 * |x|^2 (default 0: none) */
  size_t blur_every;            /* blur the image every this many steps (0: never; lens explain: 4 for class and filter images) */
  float blur_sigma;             /* Gaussian sigma in pixels (0: 0.5) */
  size_t jitter;                /* random circular shift up to this many pixels per step (0: none; lens explain: 2 for dreams) */
  size_t octaves;               /* dream octaves (0: 1; lens explain: 3) */
  float octave_scale;           /* size ratio between octaves (0: 1.4) */
  float lo, hi;                 /* pixel range kept during ascent (lo == hi: [0, 1]) */
  int unclamped;                /* nonzero: do not clamp pixels */
  /* called with the current image every frame_every steps and after the last one (for GIFs);
   * a dream's earlier octaves come at their smaller sizes, given by c, h, w */
  void (*frame)(void *user, size_t iteration, const float *image, size_t c, size_t h, size_t w);
  void *frame_user;
  size_t frame_every;           /* 0: 10 */
} lensviz_desc;

/* The options with every default filled in (desc may be NULL); batch stays 0 (model-dependent). */
LENSVIZ_API lensviz_desc lensviz_desc_resolve(const lensviz_desc *desc);

/* ---------------------------------------------------------------------------------------------
 * Methods (image: one sample [m->in_c, m->in_h, m->in_w]; target: output index, -1 = lens class)
 * ------------------------------------------------------------------------------------------- */
/* Rows and columns of the occlusion grid for this model and these options. */
LENSVIZ_API void lensviz_occlusion_size(const lensnet_model *m, const lensviz_desc *desc, size_t *rows, size_t *cols);
/* Where the occlusion map's cells lie on the image (see lensnet_map_geometry): cell (r, c) is the
 * patch whose top-left pixel is (r * stride, c * stride), so its centre is (patch - 1) / 2 + r *
 * stride, and it stands for the patch (size = patch). */
LENSVIZ_API void lensviz_occlusion_grid(const lensnet_model *m, const lensviz_desc *desc, lensnet_map_geometry *g);
/* map: rows * cols floats (lensviz_occlusion_size). base_probability (may be NULL): P(target)
 * of the unoccluded image (with desc.output_value: the output itself, and the map the change of
 * the output, for a regression model's prediction, which a softmax would make meaningless). */
LENSVIZ_API lensnet_result lensviz_occlusion(const lensnet_model *m, const float *image, int target, const lensviz_desc *desc,
                                             float *map, double *base_probability, lensnet_error *err);
/* grad: C*H*W floats. */
LENSVIZ_API lensnet_result lensviz_saliency(lensnet_model *m, const float *image, int target, const lensviz_desc *desc,
                                            float *grad, lensnet_error *err);
LENSVIZ_API lensnet_result lensviz_guided_backprop(lensnet_model *m, const float *image, int target, const lensviz_desc *desc,
                                                   float *grad, lensnet_error *err);
/* Output shape of layer `layer` (per sample); LENSNET_ERR_ARG if there is no such layer. */
LENSVIZ_API lensnet_result lensviz_layer_shape(const lensnet_model *m, size_t layer, size_t *c, size_t *h, size_t *w, lensnet_error *err);
/* What a layer is wanted for, when the caller names none (lensviz_default_layer). */
typedef enum {
  LENSVIZ_LAYER_FOR_GRADCAM, /* Grad-CAM and guided Grad-CAM */
  LENSVIZ_LAYER_FOR_FILTERS, /* filter images and channel means */
  LENSVIZ_LAYER_FOR_DREAM    /* deep dream */
} lensviz_layer_use;
/* The layer a method looks at by default (see WHAT IS IN IT); LENSNET_ERR_ARG, saying so, for a
 * model without a convolution. */
LENSVIZ_API lensnet_result lensviz_default_layer(const lensnet_model *m, lensviz_layer_use use, size_t *layer, lensnet_error *err);
/* cam: h*w floats of layer `layer`'s output (lensviz_layer_shape). */
LENSVIZ_API lensnet_result lensviz_gradcam(lensnet_model *m, const float *image, int target, size_t layer, const lensviz_desc *desc,
                                           float *cam, lensnet_error *err);
/* out: C*H*W floats. */
LENSVIZ_API lensnet_result lensviz_guided_gradcam(lensnet_model *m, const float *image, int target, size_t layer,
                                                  const lensviz_desc *desc, float *out, lensnet_error *err);
LENSVIZ_API lensnet_result lensviz_integrated_gradients(lensnet_model *m, const float *image, int target, const lensviz_desc *desc,
                                                        float *out, lensnet_error *err);
LENSVIZ_API lensnet_result lensviz_smoothgrad(lensnet_model *m, const float *image, int target, const lensviz_desc *desc,
                                              float *out, lensnet_error *err);
/* image: C*H*W floats, filled with seeded noise and then ascended. */
LENSVIZ_API lensnet_result lensviz_class_image(lensnet_model *m, int target, const lensviz_desc *desc, float *image, lensnet_error *err);
/* image: C*H*W floats, the start image on entry and the dream on return. */
LENSVIZ_API lensnet_result lensviz_dream(const lensnet_model *m, size_t layer, const lensviz_desc *desc, float *image, lensnet_error *err);
/* image: C*H*W floats, filled with seeded noise and then ascended on channel `channel` of layer `layer`. */
LENSVIZ_API lensnet_result lensviz_filter_image(const lensnet_model *m, size_t layer, size_t channel, const lensviz_desc *desc,
                                                float *image, lensnet_error *err);
/* means: one float per channel of layer `layer`'s output. */
LENSVIZ_API lensnet_result lensviz_channel_means(const lensnet_model *m, const float *image, size_t layer, float *means, lensnet_error *err);
/* A copy of m that stops after layer `layer`, taking inputs of h x w (0, 0: the model's size),
 * with m's weights: what dreams and filter images differentiate. Free with lensnet_model_free. */
LENSVIZ_API lensnet_result lensviz_model_cut(const lensnet_model *m, size_t layer, size_t h, size_t w, lensnet_model **out, lensnet_error *err);

/* ---------------------------------------------------------------------------------------------
 * Pictures
 * ------------------------------------------------------------------------------------------- */
typedef struct {
  unsigned char *rgb;           /* 3 bytes per pixel, rows `stride` bytes apart */
  size_t width, height;
  size_t stride;                /* 0 means 3 * width */
} lensviz_image;

typedef struct { unsigned char r, g, b; } lensviz_color;

typedef enum { LENSVIZ_CMAP_VIRIDIS, LENSVIZ_CMAP_MAGMA, LENSVIZ_CMAP_DIVERGING, LENSVIZ_CMAP_GRAY, LENSVIZ_CMAP_COUNT } lensviz_colormap;

/* The largest picture lensviz_image_alloc and the writers accept (see CONFIGURATION). */
#ifndef LENSVIZ_MAX_PIXELS
#define LENSVIZ_MAX_PIXELS ((size_t)1 << 26)
#endif
/* Allocates width*height RGB pixels (LENSVIZ_MALLOC), cleared to black. */
LENSVIZ_API lensnet_result lensviz_image_alloc(lensviz_image *img, size_t width, size_t height, lensnet_error *err);
LENSVIZ_API void lensviz_image_free(lensviz_image *img);
/* The rectangle (x, y, w, h) of img as an image sharing its pixels (clipped to img). */
LENSVIZ_API lensviz_image lensviz_image_view(const lensviz_image *img, size_t x, size_t y, size_t w, size_t h);
LENSVIZ_API lensviz_color lensviz_rgb(unsigned char r, unsigned char g, unsigned char b);

/* Colour of t in [0, 1] (clamped; NaN gives mid grey). */
LENSVIZ_API lensviz_color lensviz_colormap_color(lensviz_colormap cmap, float t);
/* Name ("viridis", "magma", "diverging", "gray") and lookup (-1 if unknown). */
LENSVIZ_API const char *lensviz_colormap_name(lensviz_colormap cmap);
LENSVIZ_API int lensviz_colormap_from_name(const char *name);
/* The range to show a map with: [min, max]; symmetric [-a, a] with a = max |v| when symmetric. */
LENSVIZ_API void lensviz_map_range(const float *map, size_t n, int symmetric, float *lo, float *hi);

/* Drawing primitives, clipped to the picture (a NULL picture, or one without pixels, draws
 * nothing). A line costs what it draws on the picture however far off its ends or however thick
 * it is (ends beyond about 2^52 pixels are placed to within double rounding). */
LENSVIZ_API void lensviz_fill(lensviz_image *img, lensviz_color c);
LENSVIZ_API void lensviz_fill_rect(lensviz_image *img, long x, long y, long w, long h, lensviz_color c);
LENSVIZ_API void lensviz_draw_rect(lensviz_image *img, long x, long y, long w, long h, lensviz_color c);
LENSVIZ_API void lensviz_draw_line(lensviz_image *img, long x0, long y0, long x1, long y1, int thickness, lensviz_color c);
/* Text in the built-in font, top-left corner at (x, y), `scale` pixels per font pixel; '\n'
 * starts a new line. Returns the width drawn. */
LENSVIZ_API size_t lensviz_draw_text(lensviz_image *img, long x, long y, const char *text, int scale, lensviz_color c);
LENSVIZ_API void lensviz_text_size(const char *text, int scale, size_t *width, size_t *height);
/* Copies src into dst at (x, y), clipped. */
LENSVIZ_API void lensviz_blit(lensviz_image *dst, long x, long y, const lensviz_image *src);

/* Renders map [h, w] into the whole of dst (nearest neighbour: each map pixel a block, or
 * bilinear when smooth), values mapped from [lo, hi]; lo == hi takes lensviz_map_range (symmetric
 * for the diverging map). */
LENSVIZ_API void lensviz_render_map(const float *map, size_t h, size_t w, lensviz_colormap cmap, float lo, float hi, int smooth,
                                    lensviz_image *dst);
/* Lupton et al. 2004 composite of three planes [h, w] (red, green, blue) into dst (nearest
 * neighbour scaling). Q (0: 8) softens the stretch; stretch <= 0 picks the brightest pixel of I;
 * minimum is subtracted first. The brightest colour is scaled to 1. */
LENSVIZ_API void lensviz_asinh_rgb(const float *red, const float *green, const float *blue, size_t h, size_t w, float Q,
                                   float stretch, float minimum, lensviz_image *dst);
/* The same for an image [bands, h, w] with bands ordered from blue to red: 1 band is grey,
 * 2 bands (b1, mean, b0), 3 bands (b2, b1, b0), 4 bands (b3, mean of b1 and b2, b0); more
 * bands use the last, middle and first. */
LENSVIZ_API void lensviz_asinh_bands(const float *image, size_t bands, size_t h, size_t w, float Q, float stretch, lensviz_image *dst);
/* Blends map (bilinearly resized to dst) over dst: out = (1 - a) dst + a colour, where
 * a = alpha * t^0.5 for sequential maps (weak values stay see-through) and alpha * |2t - 1| for
 * the diverging map. lo == hi: auto range as in lensviz_render_map. */
LENSVIZ_API void lensviz_overlay(lensviz_image *dst, const float *map, size_t h, size_t w, lensviz_colormap cmap, float lo,
                                 float hi, float alpha);
/* Maps whose cells lie on the image as g says (lensnet_receptive_field for a layer's output,
 * lensviz_occlusion_grid for occlusion): each cell is drawn as a g->stride x g->stride block (in
 * image pixels) centred on its cell's centre, not stretched over the whole image, so a feature
 * map whose layers lost the image's border covers only the middle of it.
 * lensviz_map_to_image: the map at every pixel of the image [g->image_h, g->image_w] into out:
 * the cell whose block holds the pixel (smooth 0), or bilinear between cell centres (smooth 1,
 * which inside the blocks is PyTorch's align_corners=False resize of the map onto them); a pixel
 * outside every block takes the nearest cell's value, and inside (may be NULL) gets 1 for pixels
 * within the blocks and 0 for the others.
 * lensviz_render_map_placed: the map into the whole of dst, which shows the whole image: blocks
 * (or bilinear within them when smooth), and grey hatching where no cell lies. lo == hi: auto
 * range, as lensviz_render_map.
 * lensviz_overlay_placed: lensviz_overlay within the blocks only (bilinear between centres), the
 * picture left as it is elsewhere, and a dashed outline around the blocks when they do not cover
 * the whole picture. */
LENSVIZ_API void lensviz_map_to_image(const float *map, const lensnet_map_geometry *g, int smooth, float *out, unsigned char *inside);
LENSVIZ_API void lensviz_render_map_placed(const float *map, const lensnet_map_geometry *g, lensviz_colormap cmap, float lo, float hi,
                                           int smooth, lensviz_image *dst);
LENSVIZ_API void lensviz_overlay_placed(lensviz_image *dst, const float *map, const lensnet_map_geometry *g, lensviz_colormap cmap,
                                        float lo, float hi, float alpha);
/* A scale bar in the bottom-left corner of a picture of the sky whose pixels are arcsec_per_pixel
 * across: a white bar with a dark outline, labelled above (e.g. 5"), of the longest of 1, 2 or 5
 * times a power of ten arcseconds that is at most a third of the picture's width. Returns its
 * length in arcseconds; 0, drawing nothing, when arcsec_per_pixel is not positive. */
LENSVIZ_API double lensviz_scale_bar(lensviz_image *img, double arcsec_per_pixel);
/* Which bands of the model's input lensviz_asinh_bands shows in red, green and blue, named from
 * the model's metadata (lensnet_model_band_name): "R=VIS G=Y+H B=J" for OU-66's J,Y,H,VIS; the
 * band's name alone for one band. Cut to cap - 1 bytes; returns buf. */
LENSVIZ_API const char *lensviz_composite_legend(const lensnet_model *m, char *buf, size_t cap);
/* A vertical colour bar in the rectangle, with `ticks` labelled values (0: 5) to its right. */
LENSVIZ_API void lensviz_colorbar(lensviz_image *img, long x, long y, long w, long h, lensviz_colormap cmap, float lo, float hi,
                                  int ticks, lensviz_color text);

/* A grid of titled panels, each optionally with a colour bar. */
typedef struct {
  const lensviz_image *image;   /* the panel's picture */
  const char *title;            /* above the picture (may be NULL) */
  int colorbar;                 /* nonzero: a colour bar of cmap over [lo, hi] at the right */
  lensviz_colormap cmap;
  float lo, hi;
} lensviz_panel;
/* Size of the grid of n panels in `cols` columns under a title (may be NULL). */
LENSVIZ_API void lensviz_grid_size(const lensviz_panel *panels, size_t n, size_t cols, const char *title, size_t *width, size_t *height);
/* Draws the grid into dst (at least lensviz_grid_size), white background, black text. */
LENSVIZ_API void lensviz_grid_render(const lensviz_panel *panels, size_t n, size_t cols, const char *title, lensviz_image *dst);

/* Line plots */
typedef struct {
  const float *x, *y;           /* n points */
  size_t n;
  const char *label;            /* legend text (NULL: none) */
  lensviz_color color;
  int dashed;
} lensviz_series;

typedef struct {
  const char *title, *xlabel, *ylabel;
  float x0, x1, y0, y1;         /* axis ranges; x0 == x1 (or y0 == y1) fits the data */
  int diagonal;                 /* nonzero: a dotted y = x line (ROC chance line) */
  int legend_bottom;            /* nonzero: legend at the bottom right instead of the top right */
} lensviz_plot_desc;

/* A line plot of n series filling dst: white background, axes with ticks, legend. */
LENSVIZ_API void lensviz_plot_lines(lensviz_image *dst, const lensviz_series *series, size_t n, const lensviz_plot_desc *desc);
/* Histograms of n series (their y is ignored) with `bins` bins over [desc->x0, desc->x1] (auto if
 * equal), drawn as outlined steps. */
LENSVIZ_API void lensviz_plot_histogram(lensviz_image *dst, const lensviz_series *series, size_t n, size_t bins,
                                        const lensviz_plot_desc *desc);
/* Confusion matrix counts[k*k] (row: true class, column: predicted), cells coloured by the row
 * fraction, each showing its count and percentage; names may be NULL. */
LENSVIZ_API void lensviz_plot_confusion(lensviz_image *dst, const double *counts, size_t k, const char *const *names,
                                        const char *title);

/* ROC curve of scores (higher = more positive) against labels (nonzero = positive): fpr and tpr
 * of n + 1 points (thresholds from +inf down, ties taken together; fewer points with ties: the
 * count is returned). auc (may be NULL) by the trapezoid rule. Returns 0 if either class is absent.
 * A NaN score ranks below every other score (as -inf). */
LENSVIZ_API size_t lensviz_roc(const float *scores, const int *labels, size_t n, float *fpr, float *tpr, double *auc);
/* Precision-recall curve: recall and precision of up to n + 1 points; average precision
 * (sum over thresholds of (R_k - R_{k-1}) P_k) in *ap. Returns the point count, 0 without positives. */
LENSVIZ_API size_t lensviz_pr(const float *scores, const int *labels, size_t n, float *recall, float *precision, double *ap);

/* ---------------------------------------------------------------------------------------------
 * Evaluation: how well scores tell lenses from non-lenses (the recipes under `lens eval`)
 *
 *   Objects have a score (higher = more lens-like; NaN is refused, +-inf rank as extremes), a
 *   label (nonzero = lens) and optionally a weight (NULL: 1 each; negative or NaN refused). At a
 *   threshold t an object is called a lens when its score >= t.
 *   AUC        the Mann-Whitney statistic: the weighted fraction of (lens, non-lens) pairs in which
 *              the lens scores higher, a tie counting one half, i.e. the area under the ROC curve
 *              that takes tied scores in one step (lensviz_roc's trapezoids). NaN without both
 *              classes.
 *   Interval   percentile bootstrap, stratified by class: each resample draws as many lenses from
 *              the lenses, and non-lenses from the non-lenses, as the sample holds, with
 *              replacement (pROC's default), so no resample lacks a class. Resample b draws from
 *              a lensnet_rng seeded from (seed, b), so the interval does not depend on threads.
 *              Its ends are the (1 - level)/2 and (1 + level)/2 quantiles of the resampled AUCs,
 *              interpolated linearly between order statistics (numpy's default quantile).
 *   AP         average precision: the sum over distinct scores, high to low, of (R_k - R_{k-1}) P_k,
 *              without interpolation (scikit-learn's average_precision_score). NaN without lenses.
 *   Threshold  TP, FP, TN, FN (weighted), precision TP/(TP+FP), recall TP/(TP+FN), FPR FP/(FP+TN),
 *              F1 2TP/(2TP+FP+FN), accuracy (TP+TN)/(all); NaN where a denominator is 0.
 *   Precision at recall r: at the highest threshold (a distinct score) whose recall is at least
 *              r: the operating point of a search that must find the fraction r of the lenses
 *              with the fewest candidates. Its threshold is reported beside it.
 *   Recall at FPR f: at the lowest threshold whose FPR is at most f; recall 0 and threshold +inf
 *              when the objects of the highest score already give an FPR above f. With fewer
 *              than 1/f non-lenses that means no false positive at all.
 *   Prior      desc.prior = B/A for a prior A:B (lenses : non-lenses) multiplies every non-lens's
 *              weight by prior * W_lens / W_non-lens, so that the non-lenses weigh `prior` times
 *              the lenses, as in a survey with that prior. Precision, F1, accuracy, AP and
 *              precision at recall change; recall, FPR and AUC cannot (one factor for every
 *              non-lens). Without both classes the prior is not applied.
 *   Groups     lensviz_eval_group evaluates the objects of a group (a kind, a bin); a group that
 *              holds one class only is evaluated against every object of the other class:
 *              compound-arc lenses against all non-lenses (what matters is their recall), ring
 *              galaxies against all lenses (their FPR).
 *   Bins       lensviz_eval_binned_class: a numeric column that holds one value for every object
 *              of one class (theta_E and arc_snr are 0 for every non-lens) describes the other
 *              class, whose objects alone are binned; lensviz_eval_quantile_edges puts edges at
 *              quantiles of the binned objects' values; lensviz_eval_bin finds a value's bin.
 *   Classes    lensviz_eval_multiclass: K classes with a probability each (softmax them first: the
 *              one-vs-rest ranking of logits differs); one-vs-rest AUC per class and their mean
 *              (macro), with bootstrap intervals stratified by class (the macro AUC from the
 *              same resamples), a K x K confusion matrix at the argmax (the first of equal
 *              probabilities), per-class precision, recall and F1, and accuracy.
 *   Memory: each call allocates O(n) and frees it before returning: a sorted copy and weights,
 *   about 24 bytes per object (16 more per class for K classes), and with resamples n doubles per
 *   worker of desc.parallel and 8 bytes per resample and statistic.
 * ------------------------------------------------------------------------------------------- */
#define LENSVIZ_EVAL_MAX_LEVELS 8   /* recalls and false-positive rates asked for */
#define LENSVIZ_EVAL_MAX_CLASSES 32

/* What to compute besides the fixed figures; zero means default for every field. */
typedef struct {
  size_t resamples;               /* bootstrap resamples for the AUC intervals (default 0: none) */
  double level;                   /* the intervals' coverage, in (0, 1) (0: 0.95) */
  uint64_t seed;                  /* of the resamples (0 is a seed like any other) */
  double prior;                   /* non-lenses per lens to weigh the sample to, e.g. 100 for
                                     1:100 (default 0: the sample as it is) */
  size_t recall_count;            /* precision at these recalls, each in (0, 1] (0: 0.9, 0.95) */
  double recalls[LENSVIZ_EVAL_MAX_LEVELS];
  size_t fpr_count;               /* recall at these FPRs, each in (0, 1] (0: 1e-2, 1e-3) */
  double fprs[LENSVIZ_EVAL_MAX_LEVELS];
  const lensnet_parallel *parallel; /* resamples spread over it (NULL: this thread) */
  /* called after every 64 resamples or so and after the last (NULL: never) */
  void (*progress)(void *user, size_t done, size_t total);
  void *progress_user;
} lensviz_eval_desc;

/* The options with every default filled in (desc may be NULL). */
LENSVIZ_API lensviz_eval_desc lensviz_eval_desc_resolve(const lensviz_eval_desc *desc);

/* The figures of one two-class evaluation. NaN marks what is undefined (see above). */
typedef struct {
  size_t count_pos, count_neg;    /* lenses and non-lenses */
  double weight_pos, weight_neg;  /* their total weights, the prior included (the counts if neither) */
  double negative_weight;         /* the factor the prior gave every non-lens (1: none) */
  double auc, auc_lo, auc_hi;     /* the interval is NaN without resamples */
  size_t resamples;               /* behind the interval */
  double level;
  double ap;
  double threshold;               /* as given */
  double tp, fp, tn, fn;
  double precision, recall, fpr, f1, accuracy;
  size_t recall_count;            /* as resolved from the desc */
  double recalls[LENSVIZ_EVAL_MAX_LEVELS], precision_at_recall[LENSVIZ_EVAL_MAX_LEVELS],
         threshold_at_recall[LENSVIZ_EVAL_MAX_LEVELS];
  size_t fpr_count;
  double fprs[LENSVIZ_EVAL_MAX_LEVELS], recall_at_fpr[LENSVIZ_EVAL_MAX_LEVELS],
         threshold_at_fpr[LENSVIZ_EVAL_MAX_LEVELS];
} lensviz_eval_result;

/* Every figure above for n objects. LENSNET_ERR_ARG for a NaN score, a bad weight or a desc value
 * out of range (naming it); a missing class is not an error (its figures are NaN). */
LENSVIZ_API lensnet_result lensviz_eval_binary(const float *scores, const int *labels, const float *weights, size_t n, double threshold,
                                               const lensviz_eval_desc *desc, lensviz_eval_result *out, lensnet_error *err);

/* What a group held, and so what it was evaluated against. */
typedef enum {
  LENSVIZ_EVAL_MEMBERS_NONE,       /* no object: nothing evaluated (counts 0, figures NaN) */
  LENSVIZ_EVAL_MEMBERS_BOTH,       /* lenses and non-lenses: its own objects */
  LENSVIZ_EVAL_MEMBERS_LENSES,     /* lenses only: against every non-lens */
  LENSVIZ_EVAL_MEMBERS_NON_LENSES  /* non-lenses only: against every lens */
} lensviz_eval_members;

/* The objects the rule above evaluates for a group (in_group[i] nonzero): their indices into
 * pick (room for n), their number into *count, what the group held into *members. */
LENSVIZ_API void lensviz_eval_group_objects(const int *labels, size_t n, const unsigned char *in_group, size_t *pick, size_t *count,
                                            lensviz_eval_members *members);
/* lensviz_eval_binary on those objects; members may be NULL. */
LENSVIZ_API lensnet_result lensviz_eval_group(const float *scores, const int *labels, const float *weights, size_t n,
                                              const unsigned char *in_group, double threshold, const lensviz_eval_desc *desc,
                                              lensviz_eval_result *out, lensviz_eval_members *members, lensnet_error *err);

/* One point of the ROC and precision-recall curves: objects scoring >= threshold called lenses. */
typedef struct {
  double threshold, tp, fp;       /* weighted counts, the prior included */
  double tpr, fpr, precision;     /* tpr is the recall */
} lensviz_eval_point;
/* The curves: a first point at threshold +inf (nothing called a lens; precision 1 by convention,
 * as lensviz_pr), then one per distinct score from the highest down; points holds n + 1, *count
 * gets the number written. prior as desc.prior. LENSNET_ERR_ARG as lensviz_eval_binary. */
LENSVIZ_API lensnet_result lensviz_eval_curve(const float *scores, const int *labels, const float *weights, size_t n, double prior,
                                              lensviz_eval_point *points, size_t *count, lensnet_error *err);

/* Which objects a numeric column is binned over (see Bins above). */
typedef enum { LENSVIZ_EVAL_BIN_ALL, LENSVIZ_EVAL_BIN_LENSES, LENSVIZ_EVAL_BIN_NON_LENSES } lensviz_eval_binned;
/* LENSVIZ_EVAL_BIN_LENSES when every non-lens holds one value and the lenses more than one,
 * _NON_LENSES the other way round, else _ALL. NaN values are left out. */
LENSVIZ_API lensviz_eval_binned lensviz_eval_binned_class(const double *values, const int *labels, size_t n);
/* Edges at the k/bins quantiles (k = 0..bins; linear interpolation) of the finite values of the
 * binned objects, equal edges merged: edges holds bins + 1, *edge_count gets at least 2 (a single
 * value v gives [v, v]) or 0 when no object has a finite value. */
LENSVIZ_API lensnet_result lensviz_eval_quantile_edges(const double *values, const int *labels, size_t n, lensviz_eval_binned which,
                                                       size_t bins, double *edges, size_t *edge_count, lensnet_error *err);
/* The bin i with edges[i] <= v < edges[i + 1], the last bin closed at its top; -1 for a value
 * outside, NaN, or fewer than 2 edges. */
LENSVIZ_API long lensviz_eval_bin(double v, const double *edges, size_t edge_count);

/* The figures of a K-class evaluation. */
typedef struct {
  size_t classes;                                   /* K */
  size_t count[LENSVIZ_EVAL_MAX_CLASSES];           /* objects of each class */
  double auc[LENSVIZ_EVAL_MAX_CLASSES];             /* one-vs-rest; NaN when the class or the rest is absent */
  double auc_lo[LENSVIZ_EVAL_MAX_CLASSES], auc_hi[LENSVIZ_EVAL_MAX_CLASSES];
  double macro_auc, macro_lo, macro_hi;             /* the mean over classes; NaN if any class's is */
  size_t resamples;
  double level;
  double confusion[LENSVIZ_EVAL_MAX_CLASSES * LENSVIZ_EVAL_MAX_CLASSES]; /* row: true class, column: argmax */
  double precision[LENSVIZ_EVAL_MAX_CLASSES], recall[LENSVIZ_EVAL_MAX_CLASSES], f1[LENSVIZ_EVAL_MAX_CLASSES];
  double accuracy;
} lensviz_eval_classes;

/* probs: n rows of k values (2 <= k <= LENSVIZ_EVAL_MAX_CLASSES); labels in 0..k-1. desc gives
 * the resamples, level, seed and parallel; prior, recalls and FPRs do not apply. LENSNET_ERR_ARG
 * for a NaN value or a label out of range, naming the object. */
LENSVIZ_API lensnet_result lensviz_eval_multiclass(const float *probs, const int *labels, size_t n, size_t k, const lensviz_eval_desc *desc,
                                                   lensviz_eval_classes *out, lensnet_error *err);

/* Regression (lens modelling): predicted means and standard deviations of one target against the
 * true values. error = mean - truth. The 68% and 95% intervals are the central intervals of the
 * Gaussian N(mean, sigma): mean +- 0.9945 sigma and mean +- 1.96 sigma. An object's level
 * (lensviz_regress_level) is that of the narrowest such interval holding its true value,
 * erf(|error| / (sigma sqrt 2)); the coverage at level p is the share of objects whose level is
 * at most p, which calibrated Gaussian sigmas make p. */
typedef struct {
  size_t n;
  double bias;                  /* mean error */
  double rms;                   /* sqrt(mean error^2) */
  double scatter;               /* standard deviation of the errors (n - 1); NaN for n < 2 */
  double median_abs;            /* median |error| */
  double mean_sigma;
  double z_rms;                 /* rms of error / sigma: 1 for calibrated Gaussian sigmas */
  double coverage68, coverage95;
} lensviz_regress_result;

/* The figures above for n objects; LENSNET_ERR_ARG for a non-finite value or a negative sigma,
 * naming the object. */
LENSVIZ_API lensnet_result lensviz_eval_regress(const double *truth, const double *mean, const double *sigma, size_t n,
                                                lensviz_regress_result *out, lensnet_error *err);
/* The level defined above: in [0, 1]; sigma 0 gives 0 for an exact mean, else 1. */
LENSVIZ_API double lensviz_regress_level(double truth, double mean, double sigma);
/* The factor s to multiply every sigma by so that the 68% interval holds 68% of these objects:
 * the 68th percentile of |error| / sigma divided by 0.9945 (objects with sigma 0 are left out;
 * NaN if none is left). A variance calibration in the spirit of Perreault Levasseur et al. 2017,
 * who tuned the dropout rate instead. */
LENSVIZ_API double lensviz_regress_calibration(const double *truth, const double *mean, const double *sigma, size_t n);
/* One factor for both intervals: the s that minimises (c68(s) - 0.68)^2 + (c95(s) - 0.95)^2, where
 * c68 and c95 are the shares of these objects inside mean +- 0.9945 s sigma and mean +- 1.96 s
 * sigma (the smallest such s when several tie; objects with sigma 0 left out; NaN if none is
 * left). With errors whose tails are heavier than a Gaussian's, the 68% factor above leaves the
 * 95% interval short; this one trades a little of the first for the second. */
LENSVIZ_API double lensviz_regress_calibration_levels(const double *truth, const double *mean, const double *sigma, size_t n);

/* Positions (a locator's centres against the true ones): the distance d = hypot(x - true_x,
 * y - true_y) of each of n objects, in the unit of the inputs (`lens eval`: arcsec), and its
 * quantiles interpolated linearly between order statistics (numpy's default), its rms and the
 * share of objects within each of up to LENSVIZ_EVAL_MAX_RADII radii (d <= radius). For n = 0 the
 * figures are NaN. LENSNET_ERR_ARG for a non-finite value, naming the object, or too many radii.
 * Allocates n doubles and frees them before returning. */
#define LENSVIZ_EVAL_MAX_RADII 8
typedef struct {
  size_t n;
  double median, p68, p90;      /* the 0.5, 0.68 and 0.9 quantiles of d */
  double rms;                   /* sqrt(mean d^2) */
  size_t radius_count;
  double radii[LENSVIZ_EVAL_MAX_RADII];
  double within[LENSVIZ_EVAL_MAX_RADII]; /* the share with d <= radii[k] */
} lensviz_position_result;
LENSVIZ_API lensnet_result lensviz_eval_positions(const double *true_x, const double *true_y, const double *x, const double *y, size_t n,
                                                  const double *radii, size_t radius_count, lensviz_position_result *out,
                                                  lensnet_error *err);

/* ---------------------------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------------------------- */
/* PNG (RGB8), through path.tmp and a rename. Built with LENSVIZ_NO_PNG it writes nothing and
 * returns LENSNET_ERR_UNSUPPORTED with a message saying so; LENSVIZ_HAS_PNG tells which build it is. */
#ifdef LENSVIZ_NO_PNG
#define LENSVIZ_HAS_PNG 0
#else
#define LENSVIZ_HAS_PNG 1
#endif
LENSVIZ_API lensnet_result lensviz_png_write(const char *path, const lensviz_image *img, lensnet_error *err);
/* Animated GIF of `count` frames of equal size, delay in hundredths of a second, looping forever. */
LENSVIZ_API lensnet_result lensviz_gif_write(const char *path, const lensviz_image *frames, size_t count, int delay_cs,
                                             lensnet_error *err);
/* The same into memory: *out (LENSVIZ_MALLOC, free with LENSVIZ_FREE or lensviz_free) of *len bytes. */
LENSVIZ_API lensnet_result lensviz_gif_encode(const lensviz_image *frames, size_t count, int delay_cs, unsigned char **out,
                                              size_t *len, lensnet_error *err);
LENSVIZ_API void lensviz_free(void *p);
/* 64-bit FNV-1a hash of a picture's pixels (row by row, stride ignored): for regression tests. */
LENSVIZ_API uint64_t lensviz_image_hash(const lensviz_image *img);

#ifdef __cplusplus
}
#endif
#endif /* LENSVIZ_H */

/* =============================================================================================
 * Implementation
 * =========================================================================================== */
#if defined(LENSVIZ_IMPLEMENTATION) && !defined(LENSVIZ__IMPLEMENTED)
#define LENSVIZ__IMPLEMENTED

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <math.h>
#include <limits.h>

#if defined(LENSVIZ_MALLOC) && defined(LENSVIZ_FREE)
/* both given */
#elif !defined(LENSVIZ_MALLOC) && !defined(LENSVIZ_FREE)
#define LENSVIZ_MALLOC(sz) malloc(sz)
#define LENSVIZ_FREE(p) free(p)
#else
#error "lensviz.h: define both LENSVIZ_MALLOC and LENSVIZ_FREE, or neither"
#endif

#ifdef __cplusplus
#define LENSVIZ__CAST(type, expr) ((type)(expr))
#else
#define LENSVIZ__CAST(type, expr) (expr)
#endif

#ifndef LENSVIZ_NO_PNG
#if defined(LENSVIZ_IMPLEMENTATION) && defined(STB_IMAGE_WRITE_IMPLEMENTATION) && !defined(STBIW_MALLOC) && \
    !defined(STBIW_REALLOC) && !defined(STBIW_REALLOC_SIZED) && !defined(STBIW_FREE)
/* stb_image_write's PNG compressor asserts that each allocation succeeded and then writes through
 * the pointer anyway: out of memory, it aborts the program (or, built with NDEBUG, corrupts the
 * heap). When its implementation is compiled here, beside lensviz's, its allocations come to the
 * functions below instead: every block is linked into the list of the encoding under way, and one
 * that cannot be had jumps back to lensviz_png_write, which frees the list and reports the failure.
 * (A program that compiles stb's implementation in another file keeps stb's own behaviour.) */
#include <setjmp.h>
#define LENSVIZ__STBIW_GUARDED 1
#if defined(__GNUC__) || defined(__clang__)
#define LENSVIZ__THREAD_LOCAL __thread
#elif defined(_MSC_VER)
#define LENSVIZ__THREAD_LOCAL __declspec(thread)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L && !defined(__STDC_NO_THREADS__)
#define LENSVIZ__THREAD_LOCAL _Thread_local
#else
#define LENSVIZ__THREAD_LOCAL /* one encoding at a time */
#endif
/* A block's header: the list's links, padded to malloc's alignment. */
typedef union lensviz__stbiw_block {
  struct { union lensviz__stbiw_block *prev, *next; } link;
  long double align;
} lensviz__stbiw_block;
typedef struct {
  jmp_buf escape;
  lensviz__stbiw_block head; /* the blocks of the encoding under way, a ring */
  int active;
} lensviz__stbiw_state;
static LENSVIZ__THREAD_LOCAL lensviz__stbiw_state lensviz__stbiw;

static void lensviz__stbiw_link(lensviz__stbiw_block *b) {
  b->link.prev = b->link.next = NULL;
  if (!lensviz__stbiw.active) return;
  b->link.next = lensviz__stbiw.head.link.next;
  b->link.prev = &lensviz__stbiw.head;
  b->link.next->link.prev = b;
  lensviz__stbiw.head.link.next = b;
}
static void lensviz__stbiw_unlink(lensviz__stbiw_block *b) {
  if (!b->link.next) return;
  b->link.prev->link.next = b->link.next;
  b->link.next->link.prev = b->link.prev;
  b->link.prev = b->link.next = NULL;
}
/* Out of memory: back to lensviz_png_write, or NULL (stb's own handling) outside it. */
static void *lensviz__stbiw_failed(void) {
  if (lensviz__stbiw.active) longjmp(lensviz__stbiw.escape, 1);
  return NULL;
}
static void *lensviz__stbiw_realloc(void *p, size_t n) {
  lensviz__stbiw_block *old = p ? (lensviz__stbiw_block *)p - 1 : NULL, *b;
  if (n > (size_t)-1 - sizeof *b) return lensviz__stbiw_failed();
  if (old) lensviz__stbiw_unlink(old);
  if (!(b = (lensviz__stbiw_block *)realloc(old, sizeof *b + n))) {
    if (old) lensviz__stbiw_link(old); /* still allocated: freed with the rest */
    return lensviz__stbiw_failed();
  }
  lensviz__stbiw_link(b);
  return b + 1;
}
static void *lensviz__stbiw_malloc(size_t n) { return lensviz__stbiw_realloc(NULL, n); }
static void lensviz__stbiw_free(void *p) {
  lensviz__stbiw_block *b = p ? (lensviz__stbiw_block *)p - 1 : NULL;
  if (!b) return;
  lensviz__stbiw_unlink(b);
  free(b);
}
#define STBIW_MALLOC(n) lensviz__stbiw_malloc(n)
#define STBIW_REALLOC(p, n) lensviz__stbiw_realloc(p, n)
#define STBIW_FREE(p) lensviz__stbiw_free(p)
#endif
/* stb_image_write.h is third-party code; its own warnings are not ours to fix. */
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wunused-function"
#pragma clang diagnostic ignored "-Wsign-compare"
#pragma clang diagnostic ignored "-Wmissing-field-initializers"
#pragma clang diagnostic ignored "-Wunused-parameter"
#elif defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#endif
#if defined(LENSVIZ_STB_IMAGE_WRITE)
#include LENSVIZ_STB_IMAGE_WRITE
#elif defined(__has_include)
#if __has_include(<stb/stb_image_write.h>)
#include <stb/stb_image_write.h>
#else
#include "stb_image_write.h"
#endif
#else
#include <stb/stb_image_write.h>
#endif
#if defined(__clang__)
#pragma clang diagnostic pop
#elif defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#endif

/* Records a failure with a formatted sentence and returns r. */
static lensnet_result lensviz__fail(lensnet_error *err, lensnet_result r, const char *fmt, ...) {
  if (err) {
    va_list ap;
    err->result = r;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  }
  return r;
}

static int lensviz__mul_ok(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > (size_t)-1 / a) return 0;
  *out = a * b;
  return 1;
}

/* count * size bytes, overflow-checked; NULL on failure. */
static void *lensviz__alloc(size_t count, size_t size) {
  size_t bytes;
  if (!lensviz__mul_ok(count ? count : 1, size, &bytes)) return NULL;
  return LENSVIZ_MALLOC(bytes);
}

static float *lensviz__floats(size_t count) { return LENSVIZ__CAST(float *, lensviz__alloc(count, sizeof(float))); }

LENSVIZ_API void lensviz_free(void *p) {
  if (p) LENSVIZ_FREE(p);
}

LENSVIZ_API lensviz_desc lensviz_desc_resolve(const lensviz_desc *desc) {
  lensviz_desc d;
  if (desc) d = *desc;
  else memset(&d, 0, sizeof d);
  if (!d.patch) d.patch = 4;
  if (!d.stride) d.stride = d.patch;
  if (!d.steps) d.steps = 32;
  if (!d.samples) d.samples = 25;
  if (!(d.noise > 0.0f)) d.noise = 0.15f;
  if (!d.iterations) d.iterations = 100;
  if (!(d.step > 0.0f)) d.step = 0.01f;
  if (!(d.blur_sigma > 0.0f)) d.blur_sigma = 0.5f;
  if (!d.octaves) d.octaves = 1;
  if (!(d.octave_scale > 1.0f)) d.octave_scale = 1.4f;
  if (d.lo == d.hi) { d.lo = 0.0f; d.hi = 1.0f; }
  if (!d.frame_every) d.frame_every = 10;
  return d;
}

/* Resolves target (-1 = the lens class, lensnet_model_class_index) or reports an error. */
static lensnet_result lensviz__target(const lensnet_model *m, int target, size_t *out, lensnet_error *err) {
  if (!m) return lensviz__fail(err, LENSNET_ERR_ARG, "no model given (NULL)");
  if (target < -1)
    return lensviz__fail(err, LENSNET_ERR_ARG, "target %d is not an output: give 0 to %lu, or -1 for the lens class", target,
                         (unsigned long)m->out_features - 1);
  if (target < 0) return lensnet_model_class_index(m, "lens", out, err);
  if ((size_t)target >= m->out_features)
    return lensviz__fail(err, LENSNET_ERR_ARG, "target output %d does not exist: the model has %lu outputs", target,
                         (unsigned long)m->out_features);
  *out = (size_t)target;
  return LENSNET_OK;
}

/* The settings a method is given and its image, before anything runs: a NaN or negative number
 * would otherwise become a default without a word (0 is the default, as the fields say), an
 * inverted pixel range pin every pixel to one value, and a non-finite pixel give maps of zeros
 * or NaN that read as "nothing matters". image may be NULL (a method that starts from noise). */
static lensnet_result lensviz__check(const lensnet_model *m, const float *image, const lensviz_desc *desc, lensnet_error *err) {
  if (desc) {
    const float v[7] = {desc->fill, desc->noise, desc->step, desc->l2, desc->blur_sigma, desc->octave_scale, desc->lo};
    static const char *const names[7] = {"fill", "noise", "step", "l2", "blur_sigma", "octave_scale", "lo"};
    size_t i;
    for (i = 0; i < 7; i++)
      if (!(v[i] == v[i]) || v[i] - v[i] != 0.0f) return lensviz__fail(err, LENSNET_ERR_ARG, "lensviz_desc.%s is %g: not a finite number", names[i], (double)v[i]);
    if (!(desc->hi - desc->hi == 0.0f)) return lensviz__fail(err, LENSNET_ERR_ARG, "lensviz_desc.hi is %g: not a finite number", (double)desc->hi);
    for (i = 1; i < 6; i++)
      if (v[i] < 0.0f) return lensviz__fail(err, LENSNET_ERR_ARG, "lensviz_desc.%s is %g: it cannot be negative (0 means the default)", names[i], (double)v[i]);
    if (desc->octave_scale != 0.0f && desc->octave_scale <= 1.0f)
      return lensviz__fail(err, LENSNET_ERR_ARG, "lensviz_desc.octave_scale is %g: octaves grow, so above 1 (0 means 1.4)", (double)desc->octave_scale);
    if (desc->lo > desc->hi)
      return lensviz__fail(err, LENSNET_ERR_ARG, "lensviz_desc.lo %g is above hi %g: the pixel range is [lo, hi] (lo == hi means [0, 1])",
                           (double)desc->lo, (double)desc->hi);
  }
  if (m && image) {
    size_t first = 0, hw = m->in_h * m->in_w, bad = lensnet_count_nonfinite(image, m->in_c * hw, &first);
    if (bad)
      return lensviz__fail(err, LENSNET_ERR_ARG, "the image has %lu non-finite pixel%s (NaN or infinite; the first in band %lu, row %lu, "
                           "column %lu): fill or mask them first", (unsigned long)bad, bad == 1 ? "" : "s", (unsigned long)(first / hw),
                           (unsigned long)(first % hw / m->in_w), (unsigned long)(first % m->in_w));
  }
  return LENSNET_OK;
}

static size_t lensviz__image_floats(const lensnet_model *m) { return m->in_c * m->in_h * m->in_w; }

/* Images per batch: desc's choice, else what keeps `per_image` floats per image near 2^24
 * (64 MB), at most `cap` and at least 1. */
static size_t lensviz__batch(const lensviz_desc *d, size_t per_image, size_t cap) {
  size_t b = d->batch ? d->batch : ((size_t)1 << 24) / (per_image ? per_image : 1);
  if (b > cap) b = cap;
  return b ? b : 1;
}

/* ---- slices of a model ------------------------------------------------------------------- */

/* A model of layers first..last of m, taking inputs [c, h, w], with m's weights. The lines are
 * those lensnet's parser sees: split at newlines and ';', '#' starts a comment that runs to the
 * end of the line, ';' and all. */
static lensnet_result lensviz__slice(const lensnet_model *m, size_t first, size_t last, size_t c, size_t h, size_t w,
                                     lensnet_model **out, lensnet_error *err) {
  const char *p = m->arch;
  char *text, line[512];
  size_t cap, len = 0, index = 0, i;
  int have_input = 0;
  lensnet_model *cut;
  lensnet_result r;
  *out = NULL;
  cap = strlen(m->arch) + 128;
  if (!(text = LENSVIZ__CAST(char *, LENSVIZ_MALLOC(cap)))) return lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  len += (size_t)snprintf(text, cap, "input %lu %lu %lu\n", (unsigned long)c, (unsigned long)h, (unsigned long)w);
  while (*p && index <= last) {
    size_t n = 0, k;
    int blank = 1;
    while (*p && *p != '\n' && *p != ';') {
      if (*p == '#') { /* a comment: to the end of the line, past any ';' in it */
        while (*p && *p != '\n') p++;
        break;
      }
      if (n + 1 < sizeof line) line[n++] = *p;
      p++;
    }
    if (*p) p++;
    line[n] = 0;
    for (k = 0; line[k]; k++) if (line[k] != ' ' && line[k] != '\t' && line[k] != '\r' && line[k] != ',') blank = 0;
    if (blank) continue;
    if (!have_input) { have_input = 1; continue; } /* the model's own input line */
    if (index++ < first) continue;
    if (len + strlen(line) + 2 > cap) break;
    len += (size_t)snprintf(text + len, cap - len, "%s\n", line);
  }
  r = lensnet_model_create(text, &cut, err);
  LENSVIZ_FREE(text);
  if (r != LENSNET_OK) {
    if (err) {
      char msg[sizeof err->message];
      snprintf(msg, sizeof msg, "layers %lu..%lu at %lux%lu: %.200s", (unsigned long)first, (unsigned long)last, (unsigned long)h,
               (unsigned long)w, err->message);
      memcpy(err->message, msg, sizeof msg);
    }
    return r;
  }
  for (i = 0; i < cut->layer_count && first + i <= last && cut->layers[i].type == m->layers[first + i].type; i++) {}
  if (cut->layer_count != last - first + 1 || i != cut->layer_count) {
    lensnet_model_free(cut);
    return lensviz__fail(err, LENSNET_ERR_ARCH, "slicing layers %lu..%lu of the model gave %lu layers%s", (unsigned long)first,
                         (unsigned long)last, (unsigned long)cut->layer_count,
                         i != cut->layer_count ? " of other kinds than the model's (its architecture text does not match its layers)" : "");
  }
  for (i = 0; i < cut->param_count; i++) {
    const lensnet_param *P = &cut->params[i], *S = lensnet_model_param(m, P->name);
    if (!S || S->count != P->count) {
      r = lensviz__fail(err, LENSNET_ERR_SHAPE, "'%s' depends on the input size, so layers %lu..%lu cannot take %lux%lu inputs",
                        P->name, (unsigned long)first, (unsigned long)last, (unsigned long)h, (unsigned long)w);
      lensnet_model_free(cut);
      return r;
    }
    memcpy(cut->values + P->offset, m->values + S->offset, P->count * sizeof(float));
  }
  *out = cut;
  return LENSNET_OK;
}

/* ---- occlusion ----------------------------------------------------------------------------- */

LENSVIZ_API void lensviz_occlusion_size(const lensnet_model *m, const lensviz_desc *desc, size_t *rows, size_t *cols) {
  lensviz_desc d = lensviz_desc_resolve(desc);
  *rows = m->in_h >= d.patch ? (m->in_h - d.patch) / d.stride + 1 : 0;
  *cols = m->in_w >= d.patch ? (m->in_w - d.patch) / d.stride + 1 : 0;
}

LENSVIZ_API void lensviz_occlusion_grid(const lensnet_model *m, const lensviz_desc *desc, lensnet_map_geometry *g) {
  lensviz_desc d = lensviz_desc_resolve(desc);
  memset(g, 0, sizeof *g);
  lensviz_occlusion_size(m, &d, &g->rows, &g->cols);
  g->offset = ((double)d.patch - 1.0) / 2.0;
  g->stride = (double)d.stride;
  g->size = (double)d.patch;
  g->image_h = m->in_h;
  g->image_w = m->in_w;
}

/* Occlusion changes a patch, and a convolution, pool or element-wise layer changes only the
 * outputs whose window meets a changed input. So each occluded image recomputes, layer by layer,
 * just the rectangle its patch reaches, on top of the unoccluded image's activations, up to the
 * first layer that mixes every position (flatten, dense, global pool, ...); from there a slice
 * of the model runs on whole batches through lensnet_model_forward. */
/* A convolution's weights reordered [in channel][row][column][out channel], so that one input
 * value meets every output channel in a row of memory; NULL when that does not apply. */
#define LENSVIZ__MAX_CHANNELS 1024
static float *lensviz__conv_taps(const lensnet_model *m, const lensnet_layer *L) {
  const float *W;
  float *t;
  size_t c, j, taps;
  if (L->type != LENSNET_LAYER_CONV2D || L->groups != 1 || L->out_c > LENSVIZ__MAX_CHANNELS) return NULL;
  W = m->values + m->params[L->weight].offset;
  taps = L->in_c * L->kernel * L->kernel;
  if (!(t = lensviz__floats(taps * L->out_c))) return NULL;
  for (c = 0; c < L->out_c; c++)
    for (j = 0; j < taps; j++) t[j * L->out_c + c] = W[c * taps + j];
  return t;
}

/* Layer L's outputs inside r (every channel), from its input `in`, as lensnet_layer_forward_rect
 * computes them; a convolution with taps (lensviz__conv_taps) goes eight output channels at a
 * time, with the same order of summation: channel, row, column, then the bias. */
static void lensviz__layer_rect(const lensnet_model *m, const lensnet_layer *L, const float *taps, const float *in, float *out,
                                lensnet_rect r) {
  long y, x, ky, kx, iy, ix, k = (long)L->kernel, s = (long)L->stride, p = (long)L->padding, ih = (long)L->in_h, iw = (long)L->in_w;
  long oh = (long)L->out_h, ow = (long)L->out_w;
  size_t c, ci;
  if (r.y0 > r.y1 || r.x0 > r.x1) return;
  if (taps) {
    const float *bias = L->bias_param >= 0 ? m->values + m->params[L->bias_param].offset : NULL;
    size_t oc = L->out_c;
    float acc[LENSVIZ__MAX_CHANNELS];
    for (y = r.y0; y <= r.y1; y++)
      for (x = r.x0; x <= r.x1; x++) {
        for (c = 0; c < oc; c++) acc[c] = 0.0f;
        for (ci = 0; ci < L->in_c; ci++)
          for (ky = 0; ky < k; ky++) {
            iy = y * s - p + ky;
            if (iy < 0 || iy >= ih) continue;
            for (kx = 0; kx < k; kx++) {
              const float *trow = taps + ((ci * (size_t)k + (size_t)ky) * (size_t)k + (size_t)kx) * oc;
              float v;
              ix = x * s - p + kx;
              if (ix < 0 || ix >= iw) continue;
              v = in[(ci * (size_t)ih + (size_t)iy) * (size_t)iw + (size_t)ix];
              for (c = 0; c + 8 <= oc; c += 8) { /* eight channels at a time: straight-line code that vectorises */
                acc[c] += trow[c] * v; acc[c + 1] += trow[c + 1] * v; acc[c + 2] += trow[c + 2] * v; acc[c + 3] += trow[c + 3] * v;
                acc[c + 4] += trow[c + 4] * v; acc[c + 5] += trow[c + 5] * v; acc[c + 6] += trow[c + 6] * v; acc[c + 7] += trow[c + 7] * v;
              }
              for (; c < oc; c++) acc[c] += trow[c] * v;
            }
          }
        for (c = 0; c < oc; c++) out[c * (size_t)(oh * ow) + (size_t)(y * ow + x)] = bias ? acc[c] + bias[c] : acc[c];
      }
    return;
  }
  lensnet_layer_forward_rect(m, L, in, out, r);
}

typedef struct {
  const lensnet_model *m;
  const float *image;
  lensviz_desc d;
  size_t rows, cols, total, batch, target;
  size_t prefix;                       /* layers 0..prefix-1 recomputed by rectangles */
  lensnet_model *tail;                 /* layers prefix..end (NULL when prefix covers the model) */
  size_t *act_offset, act_floats;      /* activation k (0: the input, k: layer k-1's output) */
  float **taps;                        /* per local layer: lensviz__conv_taps or NULL */
  float *base;                         /* the unoccluded activations */
  float *acts;                         /* per worker: a working copy of base */
  float *inputs, *outputs, *workspace; /* per worker: the tail's batch */
  size_t tail_in, workspace_floats;
  float *map;
  double base_probability;
  lensnet_result *results;             /* per worker: the first failure */
} lensviz__occlusion_job;

static size_t lensviz__act_size(const lensviz__occlusion_job *j, size_t k) {
  const lensnet_model *m = j->m;
  if (k == 0) return m->in_c * m->in_h * m->in_w;
  return m->layers[k - 1].out_c * m->layers[k - 1].out_h * m->layers[k - 1].out_w;
}

/* Copies rectangle r of every channel of activation k from src to dst. */
static void lensviz__copy_rect(const lensviz__occlusion_job *j, size_t k, lensnet_rect r, const float *src, float *dst) {
  const lensnet_model *m = j->m;
  size_t c, ch = k ? m->layers[k - 1].out_c : m->in_c, h = k ? m->layers[k - 1].out_h : m->in_h, w = k ? m->layers[k - 1].out_w : m->in_w;
  long y;
  if (r.y0 > r.y1 || r.x0 > r.x1) return;
  for (c = 0; c < ch; c++)
    for (y = r.y0; y <= r.y1; y++) {
      size_t at = j->act_offset[k] + (c * h + (size_t)y) * w + (size_t)r.x0;
      memcpy(dst + at, src + at, (size_t)(r.x1 - r.x0 + 1) * sizeof(float));
    }
}

/* One batch of patch positions: fill the patch, push its rectangle through the local layers,
 * hand the result to the tail, and put the touched rectangles back. */
static void lensviz__occlusion_task(void *ctx, size_t index, size_t worker) {
  lensviz__occlusion_job *j = LENSVIZ__CAST(lensviz__occlusion_job *, ctx);
  const lensnet_model *m = j->m;
  size_t first = index * j->batch, n = j->total - first, b, k, c, outs = m->out_features;
  float *acts = j->acts + worker * j->act_floats, *in = j->inputs + worker * j->batch * j->tail_in;
  float *out = j->outputs + worker * j->batch * outs;
  lensnet_rect rects[256];
  if (n > j->batch) n = j->batch;
  for (b = 0; b < n; b++) {
    size_t pos = j->d.cells ? j->d.cells[first + b] : first + b;
    lensnet_rect r;
    long y;
    r.y0 = (long)((pos / j->cols) * j->d.stride);
    r.x0 = (long)((pos % j->cols) * j->d.stride);
    r.y1 = r.y0 + (long)j->d.patch - 1;
    r.x1 = r.x0 + (long)j->d.patch - 1;
    rects[0] = r;
    for (c = 0; c < m->in_c; c++)
      for (y = r.y0; y <= r.y1; y++) {
        float *row = acts + (c * m->in_h + (size_t)y) * m->in_w;
        long x;
        for (x = r.x0; x <= r.x1; x++) row[x] = j->d.fill;
      }
    for (k = 0; k < j->prefix; k++) {
      rects[k + 1] = lensnet_layer_output_rect(&m->layers[k], rects[k]);
      lensviz__layer_rect(m, &m->layers[k], j->taps[k], acts + j->act_offset[k], acts + j->act_offset[k + 1], rects[k + 1]);
    }
    if (j->tail) memcpy(in + b * j->tail_in, acts + j->act_offset[j->prefix], j->tail_in * sizeof(float));
    else memcpy(out + b * outs, acts + j->act_offset[j->prefix], outs * sizeof(float));
    for (k = 0; k <= j->prefix; k++) lensviz__copy_rect(j, k, rects[k], j->base, acts);
  }
  if (j->tail && lensnet_model_forward(j->tail, n, in, out, j->workspace + worker * j->workspace_floats, NULL) != LENSNET_OK) {
    j->results[worker] = LENSNET_ERR_NOMEM;
    return;
  }
  for (b = 0; b < n; b++)
    j->map[j->d.cells ? j->d.cells[first + b] : first + b] =
      (float)((j->d.output_value ? (double)out[b * outs + j->target] : lensnet_lens_probability(out + b * outs, outs, j->target)) -
              j->base_probability);
}

LENSVIZ_API lensnet_result lensviz_occlusion(const lensnet_model *m, const float *image, int target, const lensviz_desc *desc,
                                             float *map, double *base_probability, lensnet_error *err) {
  lensviz__occlusion_job j;
  lensnet_result r = LENSNET_OK;
  size_t workers = 1, tasks, w, k, slots;
  lensnet_rect whole;
  memset(&j, 0, sizeof j);
  j.d = lensviz_desc_resolve(desc);
  if ((r = lensviz__target(m, target, &j.target, err)) != LENSNET_OK) return r;
  if (!image || !map) return lensviz__fail(err, LENSNET_ERR_ARG, "occlusion needs an image and a map to write (NULL given)");
  if ((r = lensviz__check(m, image, desc, err)) != LENSNET_OK) return r;
  lensviz_occlusion_size(m, &j.d, &j.rows, &j.cols);
  if (!j.rows || !j.cols)
    return lensviz__fail(err, LENSNET_ERR_ARG, "occlusion patch of %lu pixels does not fit the %lux%lu input",
                         (unsigned long)j.d.patch, (unsigned long)m->in_h, (unsigned long)m->in_w);
  j.m = m;
  j.image = image;
  j.map = map;
  j.total = j.rows * j.cols;
  if (j.d.cells) {
    for (k = 0; k < j.d.cell_count; k++)
      if (j.d.cells[k] >= j.total)
        return lensviz__fail(err, LENSNET_ERR_ARG, "occlusion cell %lu is outside the %lux%lu grid", (unsigned long)j.d.cells[k],
                             (unsigned long)j.rows, (unsigned long)j.cols);
    j.total = j.d.cell_count;
  }
  while (j.prefix < m->layer_count && j.prefix < 255 && lensnet_layer_local(&m->layers[j.prefix])) j.prefix++;
  if (j.prefix < m->layer_count) {
    const lensnet_layer *L = &m->layers[j.prefix];
    if ((r = lensviz__slice(m, j.prefix, m->layer_count - 1, L->in_c, L->in_h, L->in_w, &j.tail, err)) != LENSNET_OK) return r;
  }
  j.act_offset = LENSVIZ__CAST(size_t *, lensviz__alloc(j.prefix + 1, sizeof(size_t)));
  j.taps = LENSVIZ__CAST(float **, lensviz__alloc(j.prefix + 1, sizeof(float *)));
  if (!j.act_offset || !j.taps) {
    lensviz_free(j.act_offset); lensviz_free(j.taps); lensnet_model_free(j.tail);
    return lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  }
  for (k = 0; k < j.prefix; k++) j.taps[k] = lensviz__conv_taps(m, &m->layers[k]); /* NULL (plain loop) if it cannot */
  for (k = 0; k <= j.prefix; k++) { j.act_offset[k] = j.act_floats; j.act_floats += lensviz__act_size(&j, k); }
  j.tail_in = lensviz__act_size(&j, j.prefix);
  j.batch = lensviz__batch(&j.d, j.tail ? lensnet_model_workspace_floats(j.tail, 1) + j.tail_in : 1, j.total ? j.total : 1);
  j.workspace_floats = j.tail ? lensnet_model_workspace_floats(j.tail, j.batch) : 0;
  if (j.d.parallel && j.d.parallel->run && j.d.parallel->workers > 1) workers = j.d.parallel->workers;
  j.base = lensviz__floats(j.act_floats);
  j.acts = lensviz__mul_ok(workers, j.act_floats, &slots) ? lensviz__floats(slots) : NULL;
  j.inputs = lensviz__mul_ok(workers, j.batch * j.tail_in, &slots) ? lensviz__floats(slots) : NULL;
  j.outputs = lensviz__floats(workers * j.batch * m->out_features);
  j.workspace = lensviz__mul_ok(workers, j.workspace_floats, &slots) ? lensviz__floats(slots ? slots : 1) : NULL;
  j.results = LENSVIZ__CAST(lensnet_result *, lensviz__alloc(workers, sizeof(lensnet_result)));
  if (!j.base || !j.acts || !j.inputs || !j.outputs || !j.workspace || !j.results)
    r = lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory for occlusion (batches of %lu)", (unsigned long)j.batch);
  if (r == LENSNET_OK) {
    /* the unoccluded activations, and P(target) through the same arithmetic */
    whole.y0 = whole.x0 = 0;
    memcpy(j.base, image, lensviz__act_size(&j, 0) * sizeof(float));
    for (k = 0; k < j.prefix; k++) {
      whole.y1 = (long)m->layers[k].out_h - 1;
      whole.x1 = (long)m->layers[k].out_w - 1;
      lensviz__layer_rect(m, &m->layers[k], j.taps[k], j.base + j.act_offset[k], j.base + j.act_offset[k + 1], whole);
    }
    if (j.tail) r = lensnet_model_forward(j.tail, 1, j.base + j.act_offset[j.prefix], j.outputs, j.workspace, err);
    else memcpy(j.outputs, j.base + j.act_offset[j.prefix], m->out_features * sizeof(float));
  }
  if (r == LENSNET_OK) {
    j.base_probability = j.d.output_value ? (double)j.outputs[j.target] : lensnet_lens_probability(j.outputs, m->out_features, j.target);
    if (base_probability) *base_probability = j.base_probability;
    for (w = 0; w < workers; w++) {
      memcpy(j.acts + w * j.act_floats, j.base, j.act_floats * sizeof(float));
      j.results[w] = LENSNET_OK;
    }
    tasks = (j.total + j.batch - 1) / j.batch;
    if (workers > 1) j.d.parallel->run(j.d.parallel->user, tasks, lensviz__occlusion_task, &j);
    else for (w = 0; w < tasks; w++) lensviz__occlusion_task(&j, w, 0);
    for (w = 0; w < workers && r == LENSNET_OK; w++)
      if (j.results[w] != LENSNET_OK) r = lensviz__fail(err, j.results[w], "occlusion: a forward pass failed");
  }
  for (k = 0; k < j.prefix; k++) lensviz_free(j.taps[k]);
  lensviz_free(j.taps);
  lensviz_free(j.act_offset); lensviz_free(j.base); lensviz_free(j.acts); lensviz_free(j.inputs);
  lensviz_free(j.outputs); lensviz_free(j.workspace); lensviz_free(j.results);
  lensnet_model_free(j.tail);
  return r;
}

/* ---- gradients ----------------------------------------------------------------------------- */

static size_t lensviz__activation_floats(const lensnet_model *m) {
  size_t i, n = lensviz__image_floats(m);
  for (i = 0; i < m->layer_count; i++) n += m->layers[i].out_c * m->layers[i].out_h * m->layers[i].out_w;
  return n;
}

/* A trainer of input gradients for up to `want` images at once (fewer if the activations would
 * be large): ReLUs pass gradients back as `mode` says; capture >= 0 keeps that layer's gradient. */
static lensnet_result lensviz__trainer(lensnet_model *m, const lensviz_desc *d, size_t want, lensnet_relu_backward mode, long capture,
                                       lensnet_trainer **t, size_t *batch, lensnet_error *err) {
  lensnet_trainer_desc td;
  memset(&td, 0, sizeof td);
  *batch = lensviz__batch(d, 3 * lensviz__activation_floats(m), want ? want : 1);
  td.batch_cap = *batch;
  td.parallel = d->parallel;
  td.seed = d->seed;
  td.input_grad = 1;
  td.skip_param_grads = 1; /* maps and dreams need input gradients only */
  td.relu_backward = mode;
  td.capture = capture >= 0;
  td.capture_layer = capture >= 0 ? (size_t)capture : 0;
  return lensnet_trainer_create(m, &td, t, err);
}

/* Gradients of output `target` with respect to each of n inputs, into grads (n images). */
static lensnet_result lensviz__gradients(lensnet_trainer *t, const float *inputs, size_t n, size_t target, float *grads,
                                         lensnet_error *err) {
  lensnet_model *m = lensnet_trainer_model(t);
  size_t k, outs = m->out_features;
  lensnet_result r;
  float *dl = lensviz__floats(n * outs);
  if (!dl) return lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  r = lensnet_trainer_forward(t, n, inputs, 0, NULL, err);
  if (r == LENSNET_OK) {
    memset(dl, 0, n * outs * sizeof(float));
    for (k = 0; k < n; k++) dl[k * outs + target] = 1.0f;
    lensnet_trainer_zero_grad(t);
    r = lensnet_trainer_backward(t, n, dl, err);
  }
  if (r == LENSNET_OK) memcpy(grads, lensnet_trainer_input_grad(t), n * lensviz__image_floats(m) * sizeof(float));
  lensviz_free(dl);
  return r;
}

/* One image's gradient through a fresh trainer. */
static lensnet_result lensviz__one_gradient(lensnet_model *m, const float *image, int target, const lensviz_desc *desc,
                                            lensnet_relu_backward mode, float *grad, lensnet_error *err) {
  lensviz_desc d = lensviz_desc_resolve(desc);
  lensnet_trainer *t;
  size_t tg = 0, b = 0;
  lensnet_result r;
  if ((r = lensviz__target(m, target, &tg, err)) != LENSNET_OK) return r;
  if (!image || !grad) return lensviz__fail(err, LENSNET_ERR_ARG, "a gradient map needs an image and a map to write (NULL given)");
  if ((r = lensviz__check(m, image, desc, err)) != LENSNET_OK) return r;
  if ((r = lensviz__trainer(m, &d, 1, mode, -1, &t, &b, err)) != LENSNET_OK) return r;
  r = lensviz__gradients(t, image, 1, tg, grad, err);
  lensnet_trainer_free(t);
  return r;
}

LENSVIZ_API lensnet_result lensviz_saliency(lensnet_model *m, const float *image, int target, const lensviz_desc *desc,
                                            float *grad, lensnet_error *err) {
  return lensviz__one_gradient(m, image, target, desc, LENSNET_RELU_BACKWARD_NORMAL, grad, err);
}

LENSVIZ_API lensnet_result lensviz_guided_backprop(lensnet_model *m, const float *image, int target, const lensviz_desc *desc,
                                                   float *grad, lensnet_error *err) {
  return lensviz__one_gradient(m, image, target, desc, LENSNET_RELU_BACKWARD_GUIDED, grad, err);
}

LENSVIZ_API lensnet_result lensviz_layer_shape(const lensnet_model *m, size_t layer, size_t *c, size_t *h, size_t *w, lensnet_error *err) {
  if (!m || !c || !h || !w) return lensviz__fail(err, LENSNET_ERR_ARG, "lensviz_layer_shape needs a model and three sizes to fill (NULL given)");
  if (layer >= m->layer_count)
    return lensviz__fail(err, LENSNET_ERR_ARG, "layer %lu does not exist: the model has layers 0..%lu", (unsigned long)layer,
                         (unsigned long)m->layer_count - 1);
  *c = m->layers[layer].out_c;
  *h = m->layers[layer].out_h;
  *w = m->layers[layer].out_w;
  return LENSNET_OK;
}

/* Convolutions for the default layer: conv2d and the p4 group convolutions. */
static int lensviz__is_convolution(const lensnet_layer *L) {
  return L->type == LENSNET_LAYER_CONV2D || L->type == LENSNET_LAYER_P4_LIFT || L->type == LENSNET_LAYER_P4_CONV;
}

LENSVIZ_API lensnet_result lensviz_default_layer(const lensnet_model *m, lensviz_layer_use use, size_t *layer, lensnet_error *err) {
  size_t i, j, convs = 0, seen = 0, wanted;
  if (!m || !layer) return lensviz__fail(err, LENSNET_ERR_ARG, "lensviz_default_layer needs a model and a layer index to fill (NULL given)");
  for (i = 0; i < m->layer_count; i++) convs += lensviz__is_convolution(&m->layers[i]);
  if (!convs) return lensviz__fail(err, LENSNET_ERR_ARG, "no default layer: the model has no convolution");
  /* maps and filters: the last convolution, whose features are the most specific to the classes
   * (Selvaraju et al. 2017); dreams: the middle one, whose patterns stay at the scale of details */
  wanted = use == LENSVIZ_LAYER_FOR_DREAM ? (convs + 1) / 2 : convs;
  for (i = 0; seen < wanted; i++) seen += lensviz__is_convolution(&m->layers[i]);
  /* i is one past that convolution: its ReLU if one follows, after batch norm and a residual add
   * (a ResNet block's output), else the convolution itself */
  for (j = i; j < m->layer_count && (m->layers[j].type == LENSNET_LAYER_BATCHNORM || m->layers[j].type == LENSNET_LAYER_ADD); j++) {}
  *layer = j < m->layer_count && m->layers[j].type == LENSNET_LAYER_RELU ? j : i - 1;
  return LENSNET_OK;
}

LENSVIZ_API lensnet_result lensviz_gradcam(lensnet_model *m, const float *image, int target, size_t layer, const lensviz_desc *desc,
                                           float *cam, lensnet_error *err) {
  lensviz_desc d = lensviz_desc_resolve(desc);
  lensnet_trainer *t;
  size_t tg = 0, b = 0, c = 0, h = 0, w = 0, k, p;
  lensnet_result r;
  float *grad;
  lensnet_map_geometry g;
  if ((r = lensviz__target(m, target, &tg, err)) != LENSNET_OK) return r;
  if (!image || !cam) return lensviz__fail(err, LENSNET_ERR_ARG, "Grad-CAM needs an image and a map to write (NULL given)");
  if ((r = lensviz__check(m, image, desc, err)) != LENSNET_OK) return r;
  if ((r = lensviz_layer_shape(m, layer, &c, &h, &w, err)) != LENSNET_OK) return r;
  /* a layer after a flatten, a dense layer or a global pool has no place on the image */
  if ((r = lensnet_receptive_field(m, layer, &g, err)) != LENSNET_OK) return r;
  if (!(grad = lensviz__floats(lensviz__image_floats(m)))) return lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  if ((r = lensviz__trainer(m, &d, 1, LENSNET_RELU_BACKWARD_NORMAL, (long)layer, &t, &b, err)) != LENSNET_OK) { lensviz_free(grad); return r; }
  r = lensviz__gradients(t, image, 1, tg, grad, err);
  if (r == LENSNET_OK) {
    const float *A = lensnet_trainer_activation(t, layer), *G = lensnet_trainer_captured_grad(t);
    double *acc = LENSVIZ__CAST(double *, lensviz__alloc(h * w, sizeof(double)));
    if (!acc) r = lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory");
    else {
      memset(acc, 0, h * w * sizeof(double));
      for (k = 0; k < c; k++) {
        double alpha = 0.0;
        for (p = 0; p < h * w; p++) alpha += G[k * h * w + p];
        alpha /= (double)(h * w);
        for (p = 0; p < h * w; p++) acc[p] += alpha * A[k * h * w + p];
      }
      for (p = 0; p < h * w; p++) cam[p] = acc[p] > 0.0 ? (float)acc[p] : 0.0f;
      lensviz_free(acc);
    }
  }
  lensnet_trainer_free(t);
  lensviz_free(grad);
  return r;
}

LENSVIZ_API lensnet_result lensviz_guided_gradcam(lensnet_model *m, const float *image, int target, size_t layer,
                                                  const lensviz_desc *desc, float *out, lensnet_error *err) {
  size_t c = 0, h = 0, w = 0, k, p, hw;
  lensnet_map_geometry g;
  lensnet_result r;
  float *cam, *up;
  if (!m || !image || !out) return lensviz__fail(err, LENSNET_ERR_ARG, "guided Grad-CAM needs a model, an image and a map to write (NULL given)");
  hw = m->in_h * m->in_w;
  if ((r = lensviz_layer_shape(m, layer, &c, &h, &w, err)) != LENSNET_OK) return r;
  cam = lensviz__floats(h * w);
  up = lensviz__floats(hw);
  if (!cam || !up) r = lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  if (r == LENSNET_OK) r = lensnet_receptive_field(m, layer, &g, err);
  if (r == LENSNET_OK) r = lensviz_gradcam(m, image, target, layer, desc, cam, err);
  if (r == LENSNET_OK) r = lensviz_guided_backprop(m, image, target, desc, out, err);
  if (r == LENSNET_OK) {
    lensviz_map_to_image(cam, &g, 1, up, NULL);
    for (k = 0; k < m->in_c; k++)
      for (p = 0; p < hw; p++) out[k * hw + p] *= up[p];
  }
  lensviz_free(cam);
  lensviz_free(up);
  return r;
}

/* Shared by integrated gradients and SmoothGrad: the mean gradient over `count` inputs that
 * make(ctx, i, dst) writes, `batch` at a time. */
typedef void (*lensviz__input_fn)(void *ctx, size_t i, float *dst);

static lensnet_result lensviz__mean_gradient(lensnet_model *m, const lensviz_desc *d, size_t tg, size_t count, lensviz__input_fn make,
                                             void *ctx, float *mean, lensnet_error *err) {
  size_t per = lensviz__image_floats(m), b, s, k, p;
  lensnet_trainer *t;
  lensnet_result r;
  float *in = NULL, *g = NULL;
  double *acc = NULL;
  if ((r = lensviz__trainer(m, d, count, LENSNET_RELU_BACKWARD_NORMAL, -1, &t, &b, err)) != LENSNET_OK) return r;
  in = lensviz__floats(b * per);
  g = lensviz__floats(b * per);
  acc = LENSVIZ__CAST(double *, lensviz__alloc(per, sizeof(double)));
  if (!in || !g || !acc) r = lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory for a batch of %lu", (unsigned long)b);
  else memset(acc, 0, per * sizeof(double));
  for (s = 0; r == LENSNET_OK && s < count; s += b) {
    size_t n = count - s < b ? count - s : b;
    for (k = 0; k < n; k++) make(ctx, s + k, in + k * per);
    r = lensviz__gradients(t, in, n, tg, g, err);
    for (k = 0; r == LENSNET_OK && k < n; k++)
      for (p = 0; p < per; p++) acc[p] += g[k * per + p];
  }
  if (r == LENSNET_OK)
    for (p = 0; p < per; p++) mean[p] = (float)(acc[p] / (double)count);
  lensnet_trainer_free(t);
  lensviz_free(in); lensviz_free(g); lensviz_free(acc);
  return r;
}

typedef struct { const float *x, *x0; size_t per, steps; } lensviz__ig_ctx;

static void lensviz__ig_input(void *ctx, size_t i, float *dst) {
  lensviz__ig_ctx *c = LENSVIZ__CAST(lensviz__ig_ctx *, ctx);
  float a = (float)(i + 1) / (float)c->steps;
  size_t p;
  for (p = 0; p < c->per; p++) {
    float base = c->x0 ? c->x0[p] : 0.0f;
    dst[p] = base + a * (c->x[p] - base);
  }
}

LENSVIZ_API lensnet_result lensviz_integrated_gradients(lensnet_model *m, const float *image, int target, const lensviz_desc *desc,
                                                        float *out, lensnet_error *err) {
  lensviz_desc d = lensviz_desc_resolve(desc);
  lensviz__ig_ctx c;
  size_t tg = 0, p;
  lensnet_result r;
  if ((r = lensviz__target(m, target, &tg, err)) != LENSNET_OK) return r;
  if (!image || !out) return lensviz__fail(err, LENSNET_ERR_ARG, "integrated gradients need an image and a map to write (NULL given)");
  if ((r = lensviz__check(m, image, desc, err)) != LENSNET_OK) return r;
  if (d.baseline && lensnet_count_nonfinite(d.baseline, lensviz__image_floats(m), NULL))
    return lensviz__fail(err, LENSNET_ERR_ARG, "integrated gradients: the baseline has non-finite pixels (NaN or infinite)");
  c.x = image; c.x0 = d.baseline; c.per = lensviz__image_floats(m); c.steps = d.steps;
  if ((r = lensviz__mean_gradient(m, &d, tg, d.steps, lensviz__ig_input, &c, out, err)) != LENSNET_OK) return r;
  for (p = 0; p < c.per; p++) out[p] *= image[p] - (c.x0 ? c.x0[p] : 0.0f);
  return LENSNET_OK;
}

typedef struct { const float *x; size_t per; float sigma; lensnet_rng rng; } lensviz__noise_ctx;

/* Noisy copies are drawn in order from one stream, so the batch size does not change them. */
static void lensviz__noise_input(void *ctx, size_t i, float *dst) {
  lensviz__noise_ctx *c = LENSVIZ__CAST(lensviz__noise_ctx *, ctx);
  size_t p;
  (void)i;
  for (p = 0; p < c->per; p++) dst[p] = c->x[p] + c->sigma * lensnet_rng_normal(&c->rng);
}

LENSVIZ_API lensnet_result lensviz_smoothgrad(lensnet_model *m, const float *image, int target, const lensviz_desc *desc,
                                              float *out, lensnet_error *err) {
  lensviz_desc d = lensviz_desc_resolve(desc);
  lensviz__noise_ctx c;
  size_t tg = 0, p;
  float lo, hi;
  lensnet_result r;
  if ((r = lensviz__target(m, target, &tg, err)) != LENSNET_OK) return r;
  if (!image || !out) return lensviz__fail(err, LENSNET_ERR_ARG, "SmoothGrad needs an image and a map to write (NULL given)");
  if ((r = lensviz__check(m, image, desc, err)) != LENSNET_OK) return r;
  lo = hi = image[0];
  c.x = image; c.per = lensviz__image_floats(m);
  for (p = 1; p < c.per; p++) { if (image[p] < lo) lo = image[p]; if (image[p] > hi) hi = image[p]; }
  c.sigma = d.noise * (hi - lo);
  lensnet_rng_seed(&c.rng, d.seed);
  return lensviz__mean_gradient(m, &d, tg, d.samples, lensviz__noise_input, &c, out, err);
}

/* ---- cut models, gradient ascent ----------------------------------------------------------- */

LENSVIZ_API lensnet_result lensviz_model_cut(const lensnet_model *m, size_t layer, size_t h, size_t w, lensnet_model **out,
                                             lensnet_error *err) {
  if (!out) return lensviz__fail(err, LENSNET_ERR_ARG, "lensviz_model_cut needs somewhere to put the model (NULL given)");
  *out = NULL;
  if (!m) return lensviz__fail(err, LENSNET_ERR_ARG, "no model given (NULL)");
  if (layer >= m->layer_count)
    return lensviz__fail(err, LENSNET_ERR_ARG, "layer %lu does not exist: the model has layers 0..%lu", (unsigned long)layer,
                         (unsigned long)m->layer_count - 1);
  return lensviz__slice(m, 0, layer, m->in_c, h ? h : m->in_h, w ? w : m->in_w, out, err);
}

typedef enum { LENSVIZ__ASCEND_OUTPUT, LENSVIZ__ASCEND_ENERGY, LENSVIZ__ASCEND_CHANNEL } lensviz__ascent_goal;

/* One pass of the separable blur: `lines` lines of n samples, a line `line_step` floats after the
 * previous and a sample `sample_step` after the previous, convolved with k[0..2r] from src into
 * dst, the edge samples repeated outwards. */
static void lensviz__blur_pass(const float *src, float *dst, long lines, long n, long line_step, long sample_step,
                               const float *k, long r) {
  long l, t, i;
  for (l = 0; l < lines; l++)
    for (t = 0; t < n; t++) {
      float acc = 0.0f;
      for (i = -r; i <= r; i++) {
        long s = t + i;
        s = s < 0 ? 0 : s >= n ? n - 1 : s;
        acc += k[i + r] * src[l * line_step + s * sample_step];
      }
      dst[l * line_step + t * sample_step] = acc;
    }
}

/* Separable Gaussian blur of each plane in place; tmp holds h*w floats. */
static void lensviz__blur(float *x, size_t planes, size_t h, size_t w, float sigma, float *tmp) {
  float k[33], sum = 0.0f;
  long r = (long)ceil(3.0 * sigma), i, pl;
  if (r > 16) r = 16;
  if (r < 1) return;
  for (i = -r; i <= r; i++) { k[i + r] = expf(-0.5f * (float)(i * i) / (sigma * sigma)); sum += k[i + r]; }
  for (i = 0; i <= 2 * r; i++) k[i] /= sum;
  for (pl = 0; pl < (long)planes; pl++) {
    float *p = x + (size_t)pl * h * w;
    lensviz__blur_pass(p, tmp, (long)h, (long)w, (long)w, 1, k, r); /* along rows */
    lensviz__blur_pass(tmp, p, (long)w, (long)h, 1, (long)w, k, r); /* along columns */
  }
}

/* Circular shift of [c, h, w] by (dy, dx): dst[y + dy][x + dx] = src[y][x]; back = 1 undoes it. */
static void lensviz__roll(const float *src, float *dst, size_t c, size_t h, size_t w, long dy, long dx, int back) {
  size_t k, y, x;
  if (back) { dy = -dy; dx = -dx; }
  dy = ((dy % (long)h) + (long)h) % (long)h;
  dx = ((dx % (long)w) + (long)w) % (long)w;
  for (k = 0; k < c; k++)
    for (y = 0; y < h; y++)
      for (x = 0; x < w; x++)
        dst[(k * h + (y + (size_t)dy) % h) * w + (x + (size_t)dx) % w] = src[(k * h + y) * w + x];
}

/* Gradient ascent of x ([in_c, in_h, in_w] of net) on the goal, `iterations` normalised steps. */
static lensnet_result lensviz__ascend(lensnet_model *net, lensviz__ascent_goal goal, size_t index, const lensviz_desc *d,
                                      lensnet_rng *rng, float *x, size_t *counter, lensnet_error *err) {
  size_t per = lensviz__image_floats(net), outs = net->out_features, it, p, batch = 1;
  const lensnet_layer *last = &net->layers[net->layer_count - 1];
  size_t hw_out = last->out_h * last->out_w;
  lensnet_trainer *t;
  lensnet_result r;
  float *shifted = lensviz__floats(per), *g = lensviz__floats(per), *dl = lensviz__floats(outs), *tmp = lensviz__floats(net->in_h * net->in_w);
  if (!shifted || !g || !dl || !tmp) {
    lensviz_free(shifted); lensviz_free(g); lensviz_free(dl); lensviz_free(tmp);
    return lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  }
  r = lensviz__trainer(net, d, 1, LENSNET_RELU_BACKWARD_NORMAL, -1, &t, &batch, err);
  for (it = 0; r == LENSNET_OK && it < d->iterations; it++) {
    long dy = 0, dx = 0;
    double mean_abs = 0.0;
    if (d->jitter) {
      long span = 2 * (long)d->jitter + 1;
      dy = (long)(lensnet_rng_next(rng) % (uint64_t)span) - (long)d->jitter;
      dx = (long)(lensnet_rng_next(rng) % (uint64_t)span) - (long)d->jitter;
    }
    lensviz__roll(x, shifted, net->in_c, net->in_h, net->in_w, dy, dx, 0);
    if ((r = lensnet_trainer_forward(t, 1, shifted, 0, NULL, err)) != LENSNET_OK) break;
    {
      const float *y = lensnet_trainer_output(t);
      memset(dl, 0, outs * sizeof(float));
      if (goal == LENSVIZ__ASCEND_OUTPUT) dl[index] = 1.0f;
      else if (goal == LENSVIZ__ASCEND_ENERGY) for (p = 0; p < outs; p++) dl[p] = y[p] / (float)outs;
      else for (p = 0; p < hw_out; p++) dl[index * hw_out + p] = 1.0f / (float)hw_out;
    }
    lensnet_trainer_zero_grad(t);
    if ((r = lensnet_trainer_backward(t, 1, dl, err)) != LENSNET_OK) break;
    lensviz__roll(lensnet_trainer_input_grad(t), g, net->in_c, net->in_h, net->in_w, dy, dx, 1);
    for (p = 0; p < per; p++) {
      g[p] -= d->l2 * x[p];
      mean_abs += fabs((double)g[p]);
    }
    mean_abs /= (double)per;
    if (mean_abs > 0.0) {
      float s = (float)(d->step / mean_abs);
      for (p = 0; p < per; p++) x[p] += s * g[p];
    }
    if (d->blur_every && (it + 1) % d->blur_every == 0) lensviz__blur(x, net->in_c, net->in_h, net->in_w, d->blur_sigma, tmp);
    if (!d->unclamped)
      for (p = 0; p < per; p++) x[p] = x[p] < d->lo ? d->lo : x[p] > d->hi ? d->hi : x[p];
    (*counter)++;
    if (d->frame && *counter % d->frame_every == 0) d->frame(d->frame_user, *counter, x, net->in_c, net->in_h, net->in_w);
  }
  lensnet_trainer_free(t);
  lensviz_free(shifted); lensviz_free(g); lensviz_free(dl); lensviz_free(tmp);
  return r;
}

/* A start image: mid-range grey with seeded Gaussian noise of a tenth of the range. */
static void lensviz__noise_image(float *x, size_t n, const lensviz_desc *d, lensnet_rng *rng) {
  size_t p;
  float mid = 0.5f * (d->lo + d->hi), s = 0.1f * (d->hi - d->lo);
  for (p = 0; p < n; p++) {
    float v = mid + s * lensnet_rng_normal(rng);
    x[p] = d->unclamped ? v : v < d->lo ? d->lo : v > d->hi ? d->hi : v;
  }
}

static void lensviz__final_frame(const lensviz_desc *d, size_t counter, const float *x, size_t c, size_t h, size_t w) {
  if (d->frame && counter % d->frame_every != 0) d->frame(d->frame_user, counter, x, c, h, w);
}

LENSVIZ_API lensnet_result lensviz_class_image(lensnet_model *m, int target, const lensviz_desc *desc, float *image, lensnet_error *err) {
  lensviz_desc d = lensviz_desc_resolve(desc);
  lensnet_rng rng;
  size_t tg = 0, counter = 0;
  lensnet_result r;
  if ((r = lensviz__target(m, target, &tg, err)) != LENSNET_OK) return r;
  if (!image) return lensviz__fail(err, LENSNET_ERR_ARG, "a class image needs an image to write (NULL given)");
  if ((r = lensviz__check(m, NULL, desc, err)) != LENSNET_OK) return r;
  lensnet_rng_seed(&rng, d.seed);
  lensviz__noise_image(image, lensviz__image_floats(m), &d, &rng);
  r = lensviz__ascend(m, LENSVIZ__ASCEND_OUTPUT, tg, &d, &rng, image, &counter, err);
  if (r == LENSNET_OK) lensviz__final_frame(&d, counter, image, m->in_c, m->in_h, m->in_w);
  return r;
}

/* Resizes every plane of [c, h, w] to [c, oh, ow] (bilinear, PyTorch's align_corners=False). */
static void lensviz__resize_planes(const float *src, size_t c, size_t h, size_t w, float *dst, size_t oh, size_t ow) {
  size_t k;
  for (k = 0; k < c; k++) lensnet_resize_bilinear(src + k * h * w, h, w, dst + k * oh * ow, oh, ow);
}

LENSVIZ_API lensnet_result lensviz_dream(const lensnet_model *m, size_t layer, const lensviz_desc *desc, float *image, lensnet_error *err) {
  lensviz_desc d = lensviz_desc_resolve(desc);
  lensnet_rng rng;
  size_t C, H, W, counter = 0, ph = 0, pw = 0, p;
  long k;
  lensnet_result r = LENSNET_OK;
  float *base, *x, *detail, *scaled;
  if (!m || !image) return lensviz__fail(err, LENSNET_ERR_ARG, "a dream needs a model and a start image (NULL given)");
  if ((r = lensviz__check(m, image, desc, err)) != LENSNET_OK) return r;
  C = m->in_c, H = m->in_h, W = m->in_w;
  base = lensviz__floats(C * H * W), x = lensviz__floats(C * H * W), detail = lensviz__floats(C * H * W), scaled = lensviz__floats(C * H * W);
  if (!base || !x || !detail || !scaled) r = lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  else memcpy(base, image, C * H * W * sizeof(float));
  lensnet_rng_seed(&rng, d.seed);
  /* octaves from the smallest up; the detail the ascent adds carries over, resized */
  for (k = (long)d.octaves - 1; r == LENSNET_OK && k >= 0; k--) {
    double f = pow((double)d.octave_scale, (double)k);
    size_t h = (size_t)floor((double)H / f + 0.5), w = (size_t)floor((double)W / f + 0.5);
    lensnet_model *cut;
    if (h < 1) h = 1;
    if (w < 1) w = 1;
    if ((r = lensviz_model_cut(m, layer, h, w, &cut, err)) != LENSNET_OK) {
      if (k > 0 && err) { /* the image would do; a smaller octave does not */
        char why[sizeof err->message];
        snprintf(why, sizeof why, "%s", err->message);
        lensviz__fail(err, r, "dream: octave %ld of %lu is %lux%lu, too small for layer %lu (%s): use fewer octaves or an earlier layer",
                      (long)(d.octaves - (size_t)k), (unsigned long)d.octaves, (unsigned long)h, (unsigned long)w, (unsigned long)layer, why);
      }
      break;
    }
    lensviz__resize_planes(base, C, H, W, x, h, w);
    if (ph) {
      lensviz__resize_planes(detail, C, ph, pw, scaled, h, w);
      for (p = 0; p < C * h * w; p++) x[p] += scaled[p];
    }
    r = lensviz__ascend(cut, LENSVIZ__ASCEND_ENERGY, 0, &d, &rng, x, &counter, err);
    lensnet_model_free(cut);
    if (r != LENSNET_OK) break;
    lensviz__resize_planes(base, C, H, W, scaled, h, w);
    for (p = 0; p < C * h * w; p++) detail[p] = x[p] - scaled[p];
    ph = h; pw = w;
  }
  if (r == LENSNET_OK) {
    memcpy(image, x, C * H * W * sizeof(float));
    lensviz__final_frame(&d, counter, image, C, H, W);
  }
  lensviz_free(base); lensviz_free(x); lensviz_free(detail); lensviz_free(scaled);
  return r;
}

LENSVIZ_API lensnet_result lensviz_filter_image(const lensnet_model *m, size_t layer, size_t channel, const lensviz_desc *desc,
                                                float *image, lensnet_error *err) {
  lensviz_desc d = lensviz_desc_resolve(desc);
  lensnet_rng rng;
  lensnet_model *cut;
  size_t counter = 0;
  lensnet_result r;
  size_t at = layer;
  if (!m || !image) return lensviz__fail(err, LENSNET_ERR_ARG, "a filter image needs a model and an image to write (NULL given)");
  if ((r = lensviz__check(m, NULL, desc, err)) != LENSNET_OK) return r;
  /* a ReLU that is off everywhere passes no gradient: ascend its input instead, which has the
   * same maximiser wherever the unit is on */
  if (layer > 0 && layer < m->layer_count && m->layers[layer].type == LENSNET_LAYER_RELU) at = layer - 1;
  if ((r = lensviz_model_cut(m, at, 0, 0, &cut, err)) != LENSNET_OK) return r;
  if (channel >= cut->layers[at].out_c) {
    r = lensviz__fail(err, LENSNET_ERR_ARG, "layer %lu has %lu channels (0 to %lu): there is no channel %lu", (unsigned long)layer,
                      (unsigned long)cut->layers[at].out_c, (unsigned long)cut->layers[at].out_c - 1, (unsigned long)channel);
  } else {
    lensnet_rng_seed(&rng, d.seed);
    lensviz__noise_image(image, lensviz__image_floats(m), &d, &rng);
    r = lensviz__ascend(cut, LENSVIZ__ASCEND_CHANNEL, channel, &d, &rng, image, &counter, err);
    if (r == LENSNET_OK) lensviz__final_frame(&d, counter, image, m->in_c, m->in_h, m->in_w);
  }
  lensnet_model_free(cut);
  return r;
}

LENSVIZ_API lensnet_result lensviz_channel_means(const lensnet_model *m, const float *image, size_t layer, float *means, lensnet_error *err) {
  lensnet_model *cut;
  lensnet_result r;
  size_t c = 0, h = 0, w = 0, k, p;
  float *out;
  if ((r = lensviz_layer_shape(m, layer, &c, &h, &w, err)) != LENSNET_OK) return r;
  if (!image || !means) return lensviz__fail(err, LENSNET_ERR_ARG, "channel means need an image and room for the means (NULL given)");
  if ((r = lensviz__check(m, image, NULL, err)) != LENSNET_OK) return r;
  if ((r = lensviz_model_cut(m, layer, 0, 0, &cut, err)) != LENSNET_OK) return r;
  if (!(out = lensviz__floats(c * h * w))) r = lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  if (r == LENSNET_OK) r = lensnet_model_forward(cut, 1, image, out, NULL, err);
  if (r == LENSNET_OK)
    for (k = 0; k < c; k++) {
      double s = 0.0;
      for (p = 0; p < h * w; p++) s += out[k * h * w + p];
      means[k] = (float)(s / (double)(h * w));
    }
  lensviz_free(out);
  lensnet_model_free(cut);
  return r;
}

/* ---- colour maps --------------------------------------------------------------------------- */

/* Control points: position (0..255) and colour. Viridis and magma are samples (every 16th entry
 * and the last) of the 256-entry tables of matplotlib's _cm_listed.py (van der Walt and Smith,
 * 2015; CC0); between points the colour is interpolated linearly, within 0.01 of the full
 * tables. The diverging map runs through the cool-warm ends of Moreland (2009, "Diverging Color
 * Maps for Scientific Visualization") and a light grey centre. */
typedef struct { float pos, r, g, b; } lensviz__cpoint;

static const lensviz__cpoint lensviz__viridis[17] = {
  {0, 0.267004f, 0.004874f, 0.329415f},   {16, 0.282327f, 0.094955f, 0.417331f},  {32, 0.278826f, 0.175490f, 0.483397f},
  {48, 0.258965f, 0.251537f, 0.524736f},  {64, 0.229739f, 0.322361f, 0.545706f},  {80, 0.199430f, 0.387607f, 0.554642f},
  {96, 0.172719f, 0.448791f, 0.557885f},  {112, 0.149039f, 0.508051f, 0.557250f}, {128, 0.127568f, 0.566949f, 0.550556f},
  {144, 0.120638f, 0.625828f, 0.533488f}, {160, 0.157851f, 0.683765f, 0.501686f}, {176, 0.246070f, 0.738910f, 0.452024f},
  {192, 0.369214f, 0.788888f, 0.382914f}, {208, 0.515992f, 0.831158f, 0.294279f}, {224, 0.678489f, 0.863742f, 0.189503f},
  {240, 0.845561f, 0.887322f, 0.099702f}, {255, 0.993248f, 0.906157f, 0.143936f}};

static const lensviz__cpoint lensviz__magma[17] = {
  {0, 0.001462f, 0.000466f, 0.013866f},   {16, 0.039608f, 0.031090f, 0.133515f},  {32, 0.113094f, 0.065492f, 0.276784f},
  {48, 0.211718f, 0.061992f, 0.418647f},  {64, 0.316654f, 0.071690f, 0.485380f},  {80, 0.414709f, 0.110431f, 0.504662f},
  {96, 0.512831f, 0.148179f, 0.507648f},  {112, 0.613617f, 0.181811f, 0.498536f}, {128, 0.716387f, 0.214982f, 0.475290f},
  {144, 0.816914f, 0.255895f, 0.436461f}, {160, 0.904281f, 0.319610f, 0.388137f}, {176, 0.960949f, 0.418323f, 0.359630f},
  {192, 0.986700f, 0.535582f, 0.382210f}, {208, 0.996096f, 0.653659f, 0.446213f}, {224, 0.996898f, 0.769591f, 0.534892f},
  {240, 0.992440f, 0.884330f, 0.640099f}, {255, 0.987053f, 0.991438f, 0.749504f}};

static const lensviz__cpoint lensviz__diverging[5] = {
  {0, 0.230f, 0.299f, 0.754f}, {63.75f, 0.553f, 0.690f, 0.996f}, {127.5f, 0.865f, 0.865f, 0.865f},
  {191.25f, 0.957f, 0.604f, 0.486f}, {255, 0.706f, 0.016f, 0.150f}};

static const lensviz__cpoint lensviz__gray[2] = {{0, 0.0f, 0.0f, 0.0f}, {255, 1.0f, 1.0f, 1.0f}};

static unsigned char lensviz__byte(float v) {
  v = v * 255.0f + 0.5f;
  return (unsigned char)(v <= 0.0f ? 0 : v >= 255.0f ? 255 : (int)v);
}

LENSVIZ_API lensviz_color lensviz_rgb(unsigned char r, unsigned char g, unsigned char b) {
  lensviz_color c;
  c.r = r; c.g = g; c.b = b;
  return c;
}

LENSVIZ_API lensviz_color lensviz_colormap_color(lensviz_colormap cmap, float t) {
  const lensviz__cpoint *pts;
  size_t n, i;
  float pos, f;
  if (t != t) return lensviz_rgb(128, 128, 128);
  switch (cmap) {
    case LENSVIZ_CMAP_MAGMA: pts = lensviz__magma; n = 17; break;
    case LENSVIZ_CMAP_DIVERGING: pts = lensviz__diverging; n = 5; break;
    case LENSVIZ_CMAP_GRAY: pts = lensviz__gray; n = 2; break;
    default: pts = lensviz__viridis; n = 17; break;
  }
  pos = (t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t) * 255.0f;
  for (i = 1; i < n - 1 && pts[i].pos < pos; i++) {}
  f = (pos - pts[i - 1].pos) / (pts[i].pos - pts[i - 1].pos);
  return lensviz_rgb(lensviz__byte(pts[i - 1].r + f * (pts[i].r - pts[i - 1].r)), lensviz__byte(pts[i - 1].g + f * (pts[i].g - pts[i - 1].g)),
                     lensviz__byte(pts[i - 1].b + f * (pts[i].b - pts[i - 1].b)));
}

LENSVIZ_API const char *lensviz_colormap_name(lensviz_colormap cmap) {
  switch (cmap) {
    case LENSVIZ_CMAP_VIRIDIS: return "viridis";
    case LENSVIZ_CMAP_MAGMA: return "magma";
    case LENSVIZ_CMAP_DIVERGING: return "diverging";
    case LENSVIZ_CMAP_GRAY: return "gray";
    default: return "unknown";
  }
}

LENSVIZ_API int lensviz_colormap_from_name(const char *name) {
  int i;
  for (i = 0; i < (int)LENSVIZ_CMAP_COUNT; i++)
    if (!strcmp(name, lensviz_colormap_name((lensviz_colormap)i))) return i;
  return -1;
}

LENSVIZ_API void lensviz_map_range(const float *map, size_t n, int symmetric, float *lo, float *hi) {
  size_t i;
  float mn = 0.0f, mx = 0.0f;
  int any = 0;
  if (!map) n = 0;
  for (i = 0; i < n; i++) {
    float v = map[i];
    if (v != v) continue;
    if (!any || v < mn) mn = v;
    if (!any || v > mx) mx = v;
    any = 1;
  }
  if (symmetric) {
    float a = fabsf(mn) > fabsf(mx) ? fabsf(mn) : fabsf(mx);
    mn = -a;
    mx = a;
  }
  *lo = mn;
  *hi = mx;
}

/* ---- drawing ------------------------------------------------------------------------------- */

static size_t lensviz__stride(const lensviz_image *img) { return img->stride ? img->stride : 3 * img->width; }

static void lensviz__put(lensviz_image *img, long x, long y, lensviz_color c) {
  unsigned char *p;
  if (x < 0 || y < 0 || (size_t)x >= img->width || (size_t)y >= img->height) return;
  p = img->rgb + (size_t)y * lensviz__stride(img) + (size_t)x * 3;
  p[0] = c.r; p[1] = c.g; p[2] = c.b;
}

/* out = (1 - a) out + a c */
static void lensviz__blend(lensviz_image *img, long x, long y, lensviz_color c, float a) {
  unsigned char *p;
  if (x < 0 || y < 0 || (size_t)x >= img->width || (size_t)y >= img->height) return;
  p = img->rgb + (size_t)y * lensviz__stride(img) + (size_t)x * 3;
  p[0] = lensviz__byte(((1.0f - a) * p[0] + a * c.r) / 255.0f);
  p[1] = lensviz__byte(((1.0f - a) * p[1] + a * c.g) / 255.0f);
  p[2] = lensviz__byte(((1.0f - a) * p[2] + a * c.b) / 255.0f);
}

LENSVIZ_API lensnet_result lensviz_image_alloc(lensviz_image *img, size_t width, size_t height, lensnet_error *err) {
  size_t n;
  if (!img) return lensviz__fail(err, LENSNET_ERR_ARG, "lensviz_image_alloc needs a lensviz_image to fill (NULL given)");
  memset(img, 0, sizeof *img);
  if (!width || !height)
    return lensviz__fail(err, LENSNET_ERR_ARG, "a %lux%lu picture is empty", (unsigned long)width, (unsigned long)height);
  if (!lensviz__mul_ok(width, height, &n) || n > LENSVIZ_MAX_PIXELS)
    return lensviz__fail(err, LENSNET_ERR_TOO_LARGE, "a %lux%lu picture is larger than LENSVIZ_MAX_PIXELS",
                         (unsigned long)width, (unsigned long)height);
  img->rgb = LENSVIZ__CAST(unsigned char *, lensviz__alloc(n, 3));
  if (!img->rgb) return lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory for a %lux%lu picture", (unsigned long)width, (unsigned long)height);
  memset(img->rgb, 0, n * 3);
  img->width = width;
  img->height = height;
  img->stride = 3 * width;
  return LENSNET_OK;
}

LENSVIZ_API void lensviz_image_free(lensviz_image *img) {
  if (img->rgb) LENSVIZ_FREE(img->rgb);
  memset(img, 0, sizeof *img);
}

LENSVIZ_API lensviz_image lensviz_image_view(const lensviz_image *img, size_t x, size_t y, size_t w, size_t h) {
  lensviz_image v;
  memset(&v, 0, sizeof v);
  if (x >= img->width || y >= img->height) return v;
  if (w > img->width - x) w = img->width - x;
  if (h > img->height - y) h = img->height - y;
  v.rgb = img->rgb + y * lensviz__stride(img) + x * 3;
  v.width = w;
  v.height = h;
  v.stride = lensviz__stride(img);
  return v;
}

LENSVIZ_API void lensviz_fill_rect(lensviz_image *img, long x, long y, long w, long h, lensviz_color c) {
  long i, j, x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y, x1, y1;
  if (!img || !img->rgb || w <= 0 || h <= 0) return;
  x1 = x > LONG_MAX - w ? LONG_MAX : x + w; /* no overflow for any corner and size */
  y1 = y > LONG_MAX - h ? LONG_MAX : y + h;
  if (x1 > (long)img->width) x1 = (long)img->width;
  if (y1 > (long)img->height) y1 = (long)img->height;
  for (j = y0; j < y1; j++) {
    unsigned char *p = img->rgb + (size_t)j * lensviz__stride(img) + (size_t)x0 * 3;
    for (i = x0; i < x1; i++, p += 3) { p[0] = c.r; p[1] = c.g; p[2] = c.b; }
  }
}

LENSVIZ_API void lensviz_fill(lensviz_image *img, lensviz_color c) {
  if (img) lensviz_fill_rect(img, 0, 0, (long)img->width, (long)img->height, c);
}

LENSVIZ_API void lensviz_draw_rect(lensviz_image *img, long x, long y, long w, long h, lensviz_color c) {
  lensviz_fill_rect(img, x, y, w, 1, c);
  lensviz_fill_rect(img, x, y + h - 1, w, 1, c);
  lensviz_fill_rect(img, x, y, 1, h, c);
  lensviz_fill_rect(img, x + w - 1, y, 1, h, c);
}

/* A line in unit steps along its longer axis; dash: draw 5 of every 8 steps, counting on
 * from *phase so that a polyline keeps its pattern. */
/* Clips the segment (x0,y0)-(x1,y1) to the rectangle [lo_x, hi_x] x [lo_y, hi_y] (Liang & Barsky
 * 1984): *t0 and *t1 are the ends of the part inside, as fractions of the way from (x0,y0); 0
 * when no part of it lies inside. */
static int lensviz__clip(double x0, double y0, double x1, double y1, double lo_x, double lo_y, double hi_x, double hi_y, double *t0,
                         double *t1) {
  double dx = x1 - x0, dy = y1 - y0, p[4], q[4];
  int k;
  p[0] = -dx; q[0] = x0 - lo_x;
  p[1] = dx;  q[1] = hi_x - x0;
  p[2] = -dy; q[2] = y0 - lo_y;
  p[3] = dy;  q[3] = hi_y - y0;
  *t0 = 0.0;
  *t1 = 1.0;
  for (k = 0; k < 4; k++) {
    double r;
    if (p[k] == 0.0) {
      if (q[k] < 0.0) return 0;
      continue;
    }
    r = q[k] / p[k];
    if (p[k] < 0.0) {
      if (r > *t1) return 0;
      if (r > *t0) *t0 = r;
    } else {
      if (r < *t0) return 0;
      if (r < *t1) *t1 = r;
    }
  }
  return 1;
}

/* The nearest long to v, within +-2^30 (a coordinate far off any picture stays far off). */
static long lensviz__coord(double v) {
  if (!(v > -1073741824.0)) return -1073741824L; /* and NaN */
  if (v > 1073741824.0) return 1073741824L;
  return (long)floor(v + 0.5);
}

/* A line of squares of side `thick` centred on the points of a digital line from (x0,y0) to
 * (x1,y1), dashed 5 on, 3 off with `dash` (*phase carries the dash pattern from one call to the
 * next). Only the points whose squares can reach the picture are visited, and only the part of
 * each square on it, so a line with far-off ends or a huge thickness costs what it draws. */
static void lensviz__line(lensviz_image *img, long x0, long y0, long x1, long y1, int thick, lensviz_color c, int dash, long *phase) {
  const double far = 1073741824.0; /* 2^30: beyond it dx * i could overflow */
  long W = (long)img->width, H = (long)img->height, dx, dy, n, i, a, b, lo = -(thick - 1) / 2, first, last;
  double margin = (double)thick / 2.0 + 1.0, t0, t1;
  if (!img->rgb || !W || !H) return;
  if (fabs((double)x0) > far || fabs((double)y0) > far || fabs((double)x1) > far || fabs((double)y1) > far) {
    /* coordinates this far out: cut the segment to the picture first, in double */
    double ax = (double)x0, ay = (double)y0, ddx = (double)x1 - (double)x0, ddy = (double)y1 - (double)y0;
    if (!lensviz__clip(ax, ay, (double)x1, (double)y1, -margin, -margin, (double)W - 1.0 + margin, (double)H - 1.0 + margin, &t0, &t1)) return;
    x0 = lensviz__coord(ax + t0 * ddx); y0 = lensviz__coord(ay + t0 * ddy);
    x1 = lensviz__coord(ax + t1 * ddx); y1 = lensviz__coord(ay + t1 * ddy);
  }
  dx = x1 - x0;
  dy = y1 - y0;
  n = labs(dx) > labs(dy) ? labs(dx) : labs(dy);
  first = 0;
  last = n;
  if (n > 0 && (x0 < 0 || y0 < 0 || x1 < 0 || y1 < 0 || x0 >= W || x1 >= W || y0 >= H || y1 >= H)) {
    /* the same points as the whole line, from the first that can reach the picture to the last */
    if (!lensviz__clip((double)x0, (double)y0, (double)x1, (double)y1, -margin, -margin, (double)W - 1.0 + margin, (double)H - 1.0 + margin,
                       &t0, &t1)) {
      if (dash) *phase += n + 1;
      return;
    }
    first = (long)floor(t0 * (double)n) - 1;
    last = (long)ceil(t1 * (double)n) + 1;
    if (first < 0) first = 0;
    if (last > n) last = n;
  }
  if (dash) *phase += first;
  for (i = first; i <= last; i++) {
    long x = n ? x0 + (dx * i + (dx >= 0 ? n / 2 : -n / 2)) / n : x0;
    long y = n ? y0 + (dy * i + (dy >= 0 ? n / 2 : -n / 2)) / n : y0;
    long a0 = x + lo < 0 ? -(x + lo) : 0, b0 = y + lo < 0 ? -(y + lo) : 0; /* the part of the square on the picture */
    long a1 = W - (x + lo) < thick ? W - (x + lo) : thick, b1 = H - (y + lo) < thick ? H - (y + lo) : thick;
    if (dash) {
      long ph = (*phase)++;
      if (ph % 8 >= 5) continue;
    }
    if (!dash && x + lo <= 0 && y + lo <= 0 && x + lo + thick >= W && y + lo + thick >= H) {
      lensviz_fill_rect(img, 0, 0, W, H, c); /* the square covers the picture: nothing more can change */
      return;
    }
    for (a = a0; a < a1; a++)
      for (b = b0; b < b1; b++) lensviz__put(img, x + lo + a, y + lo + b, c);
  }
  if (dash) *phase += n - last;
}

LENSVIZ_API void lensviz_draw_line(lensviz_image *img, long x0, long y0, long x1, long y1, int thickness, lensviz_color c) {
  long phase = 0;
  if (!img) return;
  lensviz__line(img, x0, y0, x1, y1, thickness < 1 ? 1 : thickness, c, 0, &phase);
}

LENSVIZ_API void lensviz_blit(lensviz_image *dst, long x, long y, const lensviz_image *src) {
  size_t j, i, ss = lensviz__stride(src);
  for (j = 0; j < src->height; j++)
    for (i = 0; i < src->width; i++) {
      const unsigned char *p = src->rgb + j * ss + i * 3;
      lensviz__put(dst, x + (long)i, y + (long)j, lensviz_rgb(p[0], p[1], p[2]));
    }
}

/* ---- the font ------------------------------------------------------------------------------ */

/* 5x7 glyphs for ASCII 32..126, drawn for this library: seven rows of five pixels, '#' on. */
static const char lensviz__font[95][36] = {
  /*           */ "....." "....." "....." "....." "....." "....." ".....",
  /* !         */ "..#.." "..#.." "..#.." "..#.." "..#.." "....." "..#..",
  /* "         */ ".#.#." ".#.#." "....." "....." "....." "....." ".....",
  /* #         */ ".#.#." ".#.#." "#####" ".#.#." "#####" ".#.#." ".#.#.",
  /* $         */ "..#.." ".####" "#.#.." ".###." "..#.#" "####." "..#..",
  /* %         */ "##..." "##..#" "...#." "..#.." ".#..." "#..##" "...##",
  /* &         */ ".##.." "#..#." "#.#.." ".#..." "#.#.#" "#..#." ".##.#",
  /* '         */ "..#.." "..#.." "....." "....." "....." "....." ".....",
  /* (         */ "...#." "..#.." ".#..." ".#..." ".#..." "..#.." "...#.",
  /* )         */ ".#..." "..#.." "...#." "...#." "...#." "..#.." ".#...",
  /* star      */ "....." "..#.." "#.#.#" ".###." "#.#.#" "..#.." ".....",
  /* +         */ "....." "..#.." "..#.." "#####" "..#.." "..#.." ".....",
  /* ,         */ "....." "....." "....." "....." ".##.." "..#.." ".#...",
  /* -         */ "....." "....." "....." "#####" "....." "....." ".....",
  /* .         */ "....." "....." "....." "....." "....." ".##.." ".##..",
  /* slash     */ "....." "....#" "...#." "..#.." ".#..." "#...." ".....",
  /* 0         */ ".###." "#...#" "#..##" "#.#.#" "##..#" "#...#" ".###.",
  /* 1         */ "..#.." ".##.." "..#.." "..#.." "..#.." "..#.." ".###.",
  /* 2         */ ".###." "#...#" "....#" "...#." "..#.." ".#..." "#####",
  /* 3         */ "#####" "...#." "..#.." "...#." "....#" "#...#" ".###.",
  /* 4         */ "...#." "..##." ".#.#." "#..#." "#####" "...#." "...#.",
  /* 5         */ "#####" "#...." "####." "....#" "....#" "#...#" ".###.",
  /* 6         */ "..##." ".#..." "#...." "####." "#...#" "#...#" ".###.",
  /* 7         */ "#####" "....#" "...#." "..#.." ".#..." ".#..." ".#...",
  /* 8         */ ".###." "#...#" "#...#" ".###." "#...#" "#...#" ".###.",
  /* 9         */ ".###." "#...#" "#...#" ".####" "....#" "...#." ".##..",
  /* :         */ "....." ".##.." ".##.." "....." ".##.." ".##.." ".....",
  /* ;         */ "....." ".##.." ".##.." "....." ".##.." "..#.." ".#...",
  /* <         */ "...#." "..#.." ".#..." "#...." ".#..." "..#.." "...#.",
  /* =         */ "....." "....." "#####" "....." "#####" "....." ".....",
  /* >         */ ".#..." "..#.." "...#." "....#" "...#." "..#.." ".#...",
  /* ?         */ ".###." "#...#" "....#" "...#." "..#.." "....." "..#..",
  /* @         */ ".###." "#...#" "....#" ".##.#" "#.#.#" "#.#.#" ".###.",
  /* A         */ ".###." "#...#" "#...#" "#####" "#...#" "#...#" "#...#",
  /* B         */ "####." "#...#" "#...#" "####." "#...#" "#...#" "####.",
  /* C         */ ".###." "#...#" "#...." "#...." "#...." "#...#" ".###.",
  /* D         */ "###.." "#..#." "#...#" "#...#" "#...#" "#..#." "###..",
  /* E         */ "#####" "#...." "#...." "####." "#...." "#...." "#####",
  /* F         */ "#####" "#...." "#...." "####." "#...." "#...." "#....",
  /* G         */ ".###." "#...#" "#...." "#.###" "#...#" "#...#" ".####",
  /* H         */ "#...#" "#...#" "#...#" "#####" "#...#" "#...#" "#...#",
  /* I         */ ".###." "..#.." "..#.." "..#.." "..#.." "..#.." ".###.",
  /* J         */ "..###" "...#." "...#." "...#." "...#." "#..#." ".##..",
  /* K         */ "#...#" "#..#." "#.#.." "##..." "#.#.." "#..#." "#...#",
  /* L         */ "#...." "#...." "#...." "#...." "#...." "#...." "#####",
  /* M         */ "#...#" "##.##" "#.#.#" "#.#.#" "#...#" "#...#" "#...#",
  /* N         */ "#...#" "#...#" "##..#" "#.#.#" "#..##" "#...#" "#...#",
  /* O         */ ".###." "#...#" "#...#" "#...#" "#...#" "#...#" ".###.",
  /* P         */ "####." "#...#" "#...#" "####." "#...." "#...." "#....",
  /* Q         */ ".###." "#...#" "#...#" "#...#" "#.#.#" "#..#." ".##.#",
  /* R         */ "####." "#...#" "#...#" "####." "#.#.." "#..#." "#...#",
  /* S         */ ".####" "#...." "#...." ".###." "....#" "....#" "####.",
  /* T         */ "#####" "..#.." "..#.." "..#.." "..#.." "..#.." "..#..",
  /* U         */ "#...#" "#...#" "#...#" "#...#" "#...#" "#...#" ".###.",
  /* V         */ "#...#" "#...#" "#...#" "#...#" "#...#" ".#.#." "..#..",
  /* W         */ "#...#" "#...#" "#...#" "#.#.#" "#.#.#" "#.#.#" ".#.#.",
  /* X         */ "#...#" "#...#" ".#.#." "..#.." ".#.#." "#...#" "#...#",
  /* Y         */ "#...#" "#...#" ".#.#." "..#.." "..#.." "..#.." "..#..",
  /* Z         */ "#####" "....#" "...#." "..#.." ".#..." "#...." "#####",
  /* [         */ ".###." ".#..." ".#..." ".#..." ".#..." ".#..." ".###.",
  /* backslash */ "....." "#...." ".#..." "..#.." "...#." "....#" ".....",
  /* ]         */ ".###." "...#." "...#." "...#." "...#." "...#." ".###.",
  /* ^         */ "..#.." ".#.#." "#...#" "....." "....." "....." ".....",
  /* _         */ "....." "....." "....." "....." "....." "....." "#####",
  /* `         */ ".#..." "..#.." "....." "....." "....." "....." ".....",
  /* a         */ "....." "....." ".###." "....#" ".####" "#...#" ".####",
  /* b         */ "#...." "#...." "#.##." "##..#" "#...#" "#...#" "####.",
  /* c         */ "....." "....." ".###." "#...." "#...." "#...#" ".###.",
  /* d         */ "....#" "....#" ".##.#" "#..##" "#...#" "#...#" ".####",
  /* e         */ "....." "....." ".###." "#...#" "#####" "#...." ".###.",
  /* f         */ "..##." ".#..#" ".#..." "###.." ".#..." ".#..." ".#...",
  /* g         */ "....." ".####" "#...#" "#...#" ".####" "....#" ".###.",
  /* h         */ "#...." "#...." "#.##." "##..#" "#...#" "#...#" "#...#",
  /* i         */ "..#.." "....." ".##.." "..#.." "..#.." "..#.." ".###.",
  /* j         */ "...#." "....." "..##." "...#." "...#." "#..#." ".##..",
  /* k         */ "#...." "#...." "#..#." "#.#.." "##..." "#.#.." "#..#.",
  /* l         */ ".##.." "..#.." "..#.." "..#.." "..#.." "..#.." ".###.",
  /* m         */ "....." "....." "##.#." "#.#.#" "#.#.#" "#...#" "#...#",
  /* n         */ "....." "....." "#.##." "##..#" "#...#" "#...#" "#...#",
  /* o         */ "....." "....." ".###." "#...#" "#...#" "#...#" ".###.",
  /* p         */ "....." "....." "#.##." "##..#" "####." "#...." "#....",
  /* q         */ "....." "....." ".##.#" "#..##" ".####" "....#" "....#",
  /* r         */ "....." "....." "#.##." "##..#" "#...." "#...." "#....",
  /* s         */ "....." "....." ".####" "#...." ".###." "....#" "####.",
  /* t         */ ".#..." ".#..." "###.." ".#..." ".#..." ".#..#" "..##.",
  /* u         */ "....." "....." "#...#" "#...#" "#...#" "#..##" ".##.#",
  /* v         */ "....." "....." "#...#" "#...#" "#...#" ".#.#." "..#..",
  /* w         */ "....." "....." "#...#" "#...#" "#.#.#" "#.#.#" ".#.#.",
  /* x         */ "....." "....." "#...#" ".#.#." "..#.." ".#.#." "#...#",
  /* y         */ "....." "....." "#...#" "#...#" ".####" "....#" ".###.",
  /* z         */ "....." "....." "#####" "...#." "..#.." ".#..." "#####",
  /* {         */ "...#." "..#.." "..#.." ".#..." "..#.." "..#.." "...#.",
  /* |         */ "..#.." "..#.." "..#.." "..#.." "..#.." "..#.." "..#..",
  /* }         */ ".#..." "..#.." "..#.." "...#." "..#.." "..#.." ".#...",
  /* ~         */ "....." "....." ".#..." "#.#.#" "...#." "....." ".....",
};

#define LENSVIZ__CELL_W 6
#define LENSVIZ__CELL_H 8

LENSVIZ_API void lensviz_text_size(const char *text, int scale, size_t *width, size_t *height) {
  size_t line = 0, longest = 0, lines = 1;
  const char *p;
  if (scale < 1) scale = 1;
  for (p = text; *p; p++) {
    if (*p == '\n') { lines++; line = 0; continue; }
    if (++line > longest) longest = line;
  }
  *width = longest * LENSVIZ__CELL_W * (size_t)scale;
  *height = lines * LENSVIZ__CELL_H * (size_t)scale;
}

LENSVIZ_API size_t lensviz_draw_text(lensviz_image *img, long x, long y, const char *text, int scale, lensviz_color c) {
  long cx = x, cy = y, widest = 0;
  const char *p;
  if (scale < 1) scale = 1;
  for (p = text; *p; p++) {
    unsigned char ch = (unsigned char)*p;
    const char *glyph;
    int row, col;
    if (ch == '\n') { cx = x; cy += LENSVIZ__CELL_H * scale; continue; }
    glyph = lensviz__font[(ch >= 32 && ch <= 126 ? ch : '?') - 32];
    for (row = 0; row < 7; row++)
      for (col = 0; col < 5; col++)
        if (glyph[row * 5 + col] == '#') lensviz_fill_rect(img, cx + col * scale, cy + row * scale, scale, scale, c);
    cx += LENSVIZ__CELL_W * scale;
    if (cx - x > widest) widest = cx - x;
  }
  return (size_t)widest;
}

/* ---- maps and composites ------------------------------------------------------------------- */

/* Bilinear sample of map [h, w] at the centre of output pixel (X, Y) of an oh x ow grid, with
 * PyTorch's align_corners=False convention. */
static float lensviz__sample(const float *map, size_t h, size_t w, size_t X, size_t Y, size_t oh, size_t ow) {
  float sy = ((float)Y + 0.5f) * (float)h / (float)oh - 0.5f, sx = ((float)X + 0.5f) * (float)w / (float)ow - 0.5f, fy, fx;
  size_t y0, x0, y1, x1;
  if (sy < 0.0f) sy = 0.0f;
  if (sx < 0.0f) sx = 0.0f;
  y0 = (size_t)sy; x0 = (size_t)sx;
  if (y0 > h - 1) y0 = h - 1;
  if (x0 > w - 1) x0 = w - 1;
  y1 = y0 + 1 < h ? y0 + 1 : y0;
  x1 = x0 + 1 < w ? x0 + 1 : x0;
  fy = sy - (float)y0; fx = sx - (float)x0;
  return (1.0f - fy) * ((1.0f - fx) * map[y0 * w + x0] + fx * map[y0 * w + x1]) + fy * ((1.0f - fx) * map[y1 * w + x0] + fx * map[y1 * w + x1]);
}

static void lensviz__auto_range(const float *map, size_t n, lensviz_colormap cmap, float *lo, float *hi) {
  if (*lo == *hi) lensviz_map_range(map, n, cmap == LENSVIZ_CMAP_DIVERGING, lo, hi);
  if (!(*hi > *lo)) *hi = *lo + 1.0f;
}

LENSVIZ_API void lensviz_render_map(const float *map, size_t h, size_t w, lensviz_colormap cmap, float lo, float hi, int smooth,
                                    lensviz_image *dst) {
  size_t X, Y;
  if (!h || !w || !map || !dst || !dst->rgb) return;
  lensviz__auto_range(map, h * w, cmap, &lo, &hi);
  for (Y = 0; Y < dst->height; Y++)
    for (X = 0; X < dst->width; X++) {
      float v = smooth ? lensviz__sample(map, h, w, X, Y, dst->height, dst->width) : map[(Y * h / dst->height) * w + X * w / dst->width];
      lensviz__put(dst, (long)X, (long)Y, lensviz_colormap_color(cmap, (v - lo) / (hi - lo)));
    }
}

/* Lupton et al. 2004 with the green plane optionally the mean of two planes (g2 != NULL). */
static void lensviz__asinh(const float *r, const float *g, const float *g2, const float *b, size_t h, size_t w, float Q, float stretch,
                           float minimum, lensviz_image *dst) {
  size_t X, Y, p, n = h * w;
  float brightest = 0.0f, norm;
  if (!n) return;
  if (!(Q > 0.0f)) Q = 8.0f;
  if (!(stretch > 0.0f)) {
    for (p = 0; p < n; p++) {
      float I = ((r[p] - minimum) + ((g2 ? 0.5f * (g[p] + g2[p]) : g[p]) - minimum) + (b[p] - minimum)) / 3.0f;
      if (I > stretch) stretch = I;
    }
    if (!(stretch > 0.0f)) stretch = 1.0f;
  }
  /* the brightest scaled colour maps to 1, which keeps every colour's hue */
  for (p = 0; p < n; p++) {
    float R = r[p] - minimum, G = (g2 ? 0.5f * (g[p] + g2[p]) : g[p]) - minimum, B = b[p] - minimum, I, f, m;
    R = R > 0.0f ? R : 0.0f; G = G > 0.0f ? G : 0.0f; B = B > 0.0f ? B : 0.0f;
    I = (R + G + B) / 3.0f;
    f = I > 0.0f ? asinhf(Q * I / stretch) / Q / I : 0.0f;
    m = (R > G ? (R > B ? R : B) : (G > B ? G : B)) * f;
    if (m > brightest) brightest = m;
  }
  norm = brightest > 0.0f ? 1.0f / brightest : 1.0f;
  for (Y = 0; Y < dst->height; Y++)
    for (X = 0; X < dst->width; X++) {
      size_t q = (Y * h / dst->height) * w + X * w / dst->width;
      float R = r[q] - minimum, G = (g2 ? 0.5f * (g[q] + g2[q]) : g[q]) - minimum, B = b[q] - minimum, I, f;
      R = R > 0.0f ? R : 0.0f; G = G > 0.0f ? G : 0.0f; B = B > 0.0f ? B : 0.0f;
      I = (R + G + B) / 3.0f;
      f = I > 0.0f ? asinhf(Q * I / stretch) / Q / I * norm : 0.0f;
      lensviz__put(dst, (long)X, (long)Y, lensviz_rgb(lensviz__byte(R * f), lensviz__byte(G * f), lensviz__byte(B * f)));
    }
}

LENSVIZ_API void lensviz_asinh_rgb(const float *red, const float *green, const float *blue, size_t h, size_t w, float Q,
                                   float stretch, float minimum, lensviz_image *dst) {
  lensviz__asinh(red, green, NULL, blue, h, w, Q, stretch, minimum, dst);
}

/* The bands a composite shows: red, green (the mean of two when they differ), blue. */
static void lensviz__composite_bands(size_t bands, size_t out[4]) {
  out[3] = 0;
  if (bands <= 1) { out[0] = out[1] = out[2] = 0; }
  else if (bands == 2) { out[0] = 1; out[1] = 0; out[2] = 1; }
  else if (bands == 3) { out[0] = 2; out[1] = out[2] = 1; }
  else if (bands == 4) { out[0] = 3; out[1] = 1; out[2] = 2; }
  else { out[0] = bands - 1; out[1] = out[2] = bands / 2; }
}

LENSVIZ_API void lensviz_asinh_bands(const float *image, size_t bands, size_t h, size_t w, float Q, float stretch, lensviz_image *dst) {
  size_t hw = h * w, b[4], p;
  float mn = 0.0f;
  int have = 0;
  if (!bands || !hw) return;
  /* the least finite pixel: a NaN (blank, masked) or infinite first pixel must not set it */
  for (p = 0; p < bands * hw; p++)
    if (isfinite(image[p]) && (!have || image[p] < mn)) { mn = image[p]; have = 1; }
  lensviz__composite_bands(bands, b);
  lensviz__asinh(image + b[0] * hw, image + b[1] * hw, b[2] != b[1] ? image + b[2] * hw : NULL, image + b[3] * hw, h, w, Q, stretch,
                 mn, dst);
}

LENSVIZ_API void lensviz_overlay(lensviz_image *dst, const float *map, size_t h, size_t w, lensviz_colormap cmap, float lo,
                                 float hi, float alpha) {
  size_t X, Y;
  if (!h || !w) return;
  lensviz__auto_range(map, h * w, cmap, &lo, &hi);
  for (Y = 0; Y < dst->height; Y++)
    for (X = 0; X < dst->width; X++) {
      float t = (lensviz__sample(map, h, w, X, Y, dst->height, dst->width) - lo) / (hi - lo), a;
      t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
      a = alpha * (cmap == LENSVIZ_CMAP_DIVERGING ? fabsf(2.0f * t - 1.0f) : sqrtf(t));
      lensviz__blend(dst, (long)X, (long)Y, lensviz_colormap_color(cmap, t), a);
    }
}

/* ---- maps placed on the image ------------------------------------------------------------- */

/* Where pixel X of n_pic pixels across a picture of n_img image pixels lies among cells laid out
 * by offset and stride, in cells: cell i's centre is at i, its block from i - 0.5 to i + 0.5. */
static double lensviz__cell_coord(const lensnet_map_geometry *g, size_t n_img, size_t n_pic, size_t X) {
  double u = ((double)X + 0.5) * (double)n_img / (double)n_pic - 0.5;
  return (u - g->offset) / g->stride;
}

static int lensviz__in_cells(double t, size_t n) { return t >= -0.5 && t < (double)n - 0.5; }

/* The cell nearest t (clamped to the map), or the two around it and the weight of the second. */
static size_t lensviz__nearest_cell(double t, size_t n) {
  double i = floor(t + 0.5);
  return i < 0.0 ? 0 : i > (double)(n - 1) ? n - 1 : (size_t)i;
}
static void lensviz__cell_pair(double t, size_t n, size_t *i0, size_t *i1, float *f) {
  if (t < 0.0) t = 0.0;
  if (t > (double)(n - 1)) t = (double)(n - 1);
  *i0 = (size_t)t;
  *i1 = *i0 + 1 < n ? *i0 + 1 : *i0;
  *f = (float)(t - (double)*i0);
}

/* The map at cell coordinates (ty, tx): the nearest cell, or bilinear between the four around. */
static float lensviz__placed_value(const float *map, const lensnet_map_geometry *g, double ty, double tx, int smooth) {
  size_t y0, y1, x0, x1, w = g->cols;
  float fy, fx;
  if (!smooth) return map[lensviz__nearest_cell(ty, g->rows) * w + lensviz__nearest_cell(tx, g->cols)];
  lensviz__cell_pair(ty, g->rows, &y0, &y1, &fy);
  lensviz__cell_pair(tx, g->cols, &x0, &x1, &fx);
  return (1.0f - fy) * ((1.0f - fx) * map[y0 * w + x0] + fx * map[y0 * w + x1]) + fy * ((1.0f - fx) * map[y1 * w + x0] + fx * map[y1 * w + x1]);
}

static int lensviz__placed_ok(const lensnet_map_geometry *g) {
  return g && g->rows && g->cols && g->image_h && g->image_w && g->stride > 0.0;
}

LENSVIZ_API void lensviz_map_to_image(const float *map, const lensnet_map_geometry *g, int smooth, float *out, unsigned char *inside) {
  size_t X, Y, W, H;
  if (!lensviz__placed_ok(g)) return;
  W = g->image_w;
  H = g->image_h;
  for (Y = 0; Y < H; Y++) {
    double ty = lensviz__cell_coord(g, H, H, Y);
    for (X = 0; X < W; X++) {
      double tx = lensviz__cell_coord(g, W, W, X);
      out[Y * W + X] = lensviz__placed_value(map, g, ty, tx, smooth);
      if (inside) inside[Y * W + X] = (unsigned char)(lensviz__in_cells(ty, g->rows) && lensviz__in_cells(tx, g->cols));
    }
  }
}

LENSVIZ_API void lensviz_render_map_placed(const float *map, const lensnet_map_geometry *g, lensviz_colormap cmap, float lo, float hi,
                                           int smooth, lensviz_image *dst) {
  size_t X, Y;
  if (!lensviz__placed_ok(g)) return;
  lensviz__auto_range(map, g->rows * g->cols, cmap, &lo, &hi);
  for (Y = 0; Y < dst->height; Y++) {
    double ty = lensviz__cell_coord(g, g->image_h, dst->height, Y);
    for (X = 0; X < dst->width; X++) {
      double tx = lensviz__cell_coord(g, g->image_w, dst->width, X);
      lensviz_color c;
      if (lensviz__in_cells(ty, g->rows) && lensviz__in_cells(tx, g->cols))
        c = lensviz_colormap_color(cmap, (lensviz__placed_value(map, g, ty, tx, smooth) - lo) / (hi - lo));
      else /* no cell here: light grey hatching, in no colour map */
        c = (X + Y) % 6 < 2 ? lensviz_rgb(200, 200, 200) : lensviz_rgb(238, 238, 238);
      lensviz__put(dst, (long)X, (long)Y, c);
    }
  }
}

/* The picture pixel where cell coordinate t's edge falls (the edge between pixels, rounded). */
static long lensviz__cell_edge(const lensnet_map_geometry *g, size_t n_img, size_t n_pic, double t) {
  return (long)floor((g->offset + t * g->stride + 0.5) * (double)n_pic / (double)n_img + 0.5);
}

LENSVIZ_API void lensviz_overlay_placed(lensviz_image *dst, const float *map, const lensnet_map_geometry *g, lensviz_colormap cmap,
                                        float lo, float hi, float alpha) {
  size_t X, Y;
  long x0, x1, y0, y1, phase = 0;
  lensviz_color white = lensviz_rgb(255, 255, 255);
  if (!lensviz__placed_ok(g)) return;
  lensviz__auto_range(map, g->rows * g->cols, cmap, &lo, &hi);
  for (Y = 0; Y < dst->height; Y++) {
    double ty = lensviz__cell_coord(g, g->image_h, dst->height, Y);
    if (!lensviz__in_cells(ty, g->rows)) continue;
    for (X = 0; X < dst->width; X++) {
      double tx = lensviz__cell_coord(g, g->image_w, dst->width, X);
      float t, a;
      if (!lensviz__in_cells(tx, g->cols)) continue;
      t = (lensviz__placed_value(map, g, ty, tx, 1) - lo) / (hi - lo);
      t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
      a = alpha * (cmap == LENSVIZ_CMAP_DIVERGING ? fabsf(2.0f * t - 1.0f) : sqrtf(t));
      lensviz__blend(dst, (long)X, (long)Y, lensviz_colormap_color(cmap, t), a);
    }
  }
  /* the blocks' outline, just outside them (clipped away where they reach the picture's edge) */
  x0 = lensviz__cell_edge(g, g->image_w, dst->width, -0.5) - 1;
  x1 = lensviz__cell_edge(g, g->image_w, dst->width, (double)g->cols - 0.5);
  y0 = lensviz__cell_edge(g, g->image_h, dst->height, -0.5) - 1;
  y1 = lensviz__cell_edge(g, g->image_h, dst->height, (double)g->rows - 0.5);
  lensviz__line(dst, x0, y0, x1, y0, 1, white, 1, &phase);
  lensviz__line(dst, x1, y0, x1, y1, 1, white, 1, &phase);
  lensviz__line(dst, x1, y1, x0, y1, 1, white, 1, &phase);
  lensviz__line(dst, x0, y1, x0, y0, 1, white, 1, &phase);
}

LENSVIZ_API double lensviz_scale_bar(lensviz_image *img, double arcsec_per_pixel) {
  double width = (double)img->width * arcsec_per_pixel, step, length = 0.0;
  static const double mantissa[3] = {5.0, 2.0, 1.0};
  long margin, thick, len, x, y, k;
  int scale, i;
  char label[32];
  size_t tw, th;
  if (!(arcsec_per_pixel > 0.0) || !img->width || !img->height) return 0.0;
  /* the longest 1, 2 or 5 x 10^k arcsec within a third of the width */
  step = pow(10.0, floor(log10(width / 3.0)));
  for (i = 0; i < 3 && length == 0.0; i++)
    if (mantissa[i] * step <= width / 3.0 * (1.0 + 1e-9)) length = mantissa[i] * step;
  if (length == 0.0) length = step;
  len = (long)floor(length / arcsec_per_pixel + 0.5);
  margin = (long)img->width / 40 > 3 ? (long)img->width / 40 : 3;
  thick = (long)img->width / 100 > 2 ? (long)img->width / 100 : 2;
  scale = img->width >= 400 ? 2 : 1;
  x = margin;
  y = (long)img->height - margin - thick;
  lensviz_fill_rect(img, x - 1, y - 1, len + 2, thick + 2, lensviz_rgb(0, 0, 0));
  lensviz_fill_rect(img, x, y, len, thick, lensviz_rgb(255, 255, 255));
  snprintf(label, sizeof label, "%g\"", length);
  lensviz_text_size(label, scale, &tw, &th);
  k = x + (len - (long)tw) / 2;
  if (k < x) k = x;
  lensviz_draw_text(img, k + 1, y - 2 - (long)th + 1, label, scale, lensviz_rgb(0, 0, 0)); /* a shadow */
  lensviz_draw_text(img, k, y - 2 - (long)th, label, scale, lensviz_rgb(255, 255, 255));
  return length;
}

LENSVIZ_API const char *lensviz_composite_legend(const lensnet_model *m, char *buf, size_t cap) {
  size_t bands[4], k, used = 0;
  static const char *colour[3] = {"R=", " G=", " B="};
  char name[64];
  if (!cap) return buf;
  buf[0] = 0;
  if (!m || !m->in_c) return buf;
  lensviz__composite_bands(m->in_c, bands);
  if (m->in_c == 1) {
    lensnet_model_band_name(m, 0, buf, cap, NULL);
    return buf;
  }
  for (k = 0; k < 4; k++) {
    int n;
    if (k == 2 && bands[2] == bands[1]) continue; /* green is one band */
    lensnet_model_band_name(m, bands[k], name, sizeof name, NULL);
    n = snprintf(buf + used, cap - used, "%s%s", k == 2 ? "+" : colour[k < 2 ? k : 2], name);
    if (n < 0 || (size_t)n >= cap - used) { buf[cap - 1] = 0; break; }
    used += (size_t)n;
  }
  return buf;
}

/* ---- axes, ticks, colour bars -------------------------------------------------------------- */

/* A "nice" tick step (1, 2 or 5 times a power of ten) for about `want` ticks over the span. */
static double lensviz__tick_step(double span, int want) {
  double raw = span / (want > 1 ? want : 1), mag, f;
  if (!(raw > 0.0)) return 1.0;
  mag = pow(10.0, floor(log10(raw)));
  f = raw / mag;
  return (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0) * mag;
}

/* A tick label with as many decimals as the step needs; exponent form for extreme values. */
static void lensviz__tick_label(double v, double step, char *buf, size_t cap) {
  int decimals = step >= 1.0 ? 0 : (int)ceil(-log10(step) - 1e-9);
  double a = fabs(v);
  if (fabs(v) < step * 1e-6) v = 0.0;
  if (decimals > 6 || a >= 1e6) snprintf(buf, cap, "%.1e", v);
  else snprintf(buf, cap, "%.*f", decimals, v);
}

LENSVIZ_API void lensviz_colorbar(lensviz_image *img, long x, long y, long w, long h, lensviz_colormap cmap, float lo, float hi,
                                  int ticks, lensviz_color text) {
  long j;
  double step, v;
  if (h < 2 || w < 1) return;
  if (!(hi > lo)) hi = lo + 1.0f;
  for (j = 0; j < h; j++) lensviz_fill_rect(img, x, y + j, w, 1, lensviz_colormap_color(cmap, 1.0f - (float)j / (float)(h - 1)));
  lensviz_draw_rect(img, x - 1, y - 1, w + 2, h + 2, text);
  step = lensviz__tick_step((double)hi - lo, ticks > 0 ? ticks : 5);
  for (v = ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    long ty = y + (long)floor((hi - v) / ((double)hi - lo) * (double)(h - 1) + 0.5);
    char label[32];
    lensviz__tick_label(v, step, label, sizeof label);
    lensviz_fill_rect(img, x + w, ty, 3, 1, text);
    lensviz_draw_text(img, x + w + 5, ty - 3, label, 1, text);
  }
}

/* ---- panel grids --------------------------------------------------------------------------- */

#define LENSVIZ__PAD 8
#define LENSVIZ__BAR_W 12
#define LENSVIZ__BAR_SPACE (LENSVIZ__BAR_W + 8 + 8 * LENSVIZ__CELL_W)

static void lensviz__cell_size(const lensviz_panel *panels, size_t n, size_t *cw, size_t *ch) {
  size_t i;
  *cw = *ch = 0;
  for (i = 0; i < n; i++) {
    size_t w = panels[i].image ? panels[i].image->width : 0, h = panels[i].image ? panels[i].image->height : 0, tw = 0, th = 0;
    if (panels[i].colorbar) w += LENSVIZ__BAR_SPACE;
    if (panels[i].title) lensviz_text_size(panels[i].title, 1, &tw, &th);
    if (tw > w) w = tw;
    if (w > *cw) *cw = w;
    if (h + th + 4 > *ch) *ch = h + th + 4;
  }
}

LENSVIZ_API void lensviz_grid_size(const lensviz_panel *panels, size_t n, size_t cols, const char *title, size_t *width, size_t *height) {
  size_t cw, ch, rows, tw = 0, th = 0;
  if (!cols) cols = 1;
  if (cols > n) cols = n ? n : 1;
  rows = (n + cols - 1) / cols;
  lensviz__cell_size(panels, n, &cw, &ch);
  if (title) lensviz_text_size(title, 2, &tw, &th);
  *width = LENSVIZ__PAD + cols * (cw + LENSVIZ__PAD);
  if (tw + 2 * LENSVIZ__PAD > *width) *width = tw + 2 * LENSVIZ__PAD;
  *height = LENSVIZ__PAD + (title ? th + LENSVIZ__PAD : 0) + rows * (ch + LENSVIZ__PAD);
}

LENSVIZ_API void lensviz_grid_render(const lensviz_panel *panels, size_t n, size_t cols, const char *title, lensviz_image *dst) {
  size_t cw, ch, i, top = LENSVIZ__PAD;
  lensviz_color black = lensviz_rgb(0, 0, 0);
  if (!cols) cols = 1;
  lensviz_fill(dst, lensviz_rgb(255, 255, 255));
  lensviz__cell_size(panels, n, &cw, &ch);
  if (title) {
    size_t tw, th;
    lensviz_text_size(title, 2, &tw, &th);
    lensviz_draw_text(dst, LENSVIZ__PAD, LENSVIZ__PAD, title, 2, black);
    top += th + LENSVIZ__PAD;
  }
  for (i = 0; i < n; i++) {
    const lensviz_panel *P = &panels[i];
    long x = (long)(LENSVIZ__PAD + (i % cols) * (cw + LENSVIZ__PAD)), y = (long)(top + (i / cols) * (ch + LENSVIZ__PAD));
    size_t th = 0, tw = 0;
    if (P->title) {
      lensviz_text_size(P->title, 1, &tw, &th);
      lensviz_draw_text(dst, x, y, P->title, 1, black);
      th += 4;
    }
    if (P->image) {
      lensviz_blit(dst, x, y + (long)th, P->image);
      if (P->colorbar)
        lensviz_colorbar(dst, x + (long)P->image->width + 6, y + (long)th + 1, LENSVIZ__BAR_W, (long)P->image->height - 2, P->cmap,
                         P->lo, P->hi, 5, black);
    }
  }
}

/* ---- plots --------------------------------------------------------------------------------- */

typedef struct {
  long left, top, right, bottom;  /* plot area in pixels */
  double x0, x1, y0, y1;          /* data ranges */
} lensviz__axes;

/* A value's pixel on the axes; far beyond them (1e30, inf) it is still a long, far off the picture. */
static long lensviz__px(const lensviz__axes *a, double x) { return a->left + lensviz__coord((x - a->x0) / (a->x1 - a->x0) * (double)(a->right - a->left)); }
static long lensviz__py(const lensviz__axes *a, double y) { return a->bottom - lensviz__coord((y - a->y0) / (a->y1 - a->y0) * (double)(a->bottom - a->top)); }

/* The ticks of the x axis (y_axis 0) or the y axis: about `want` of them over [lo, hi], each with
 * its grid line, tick mark and label. */
static void lensviz__axis_ticks(lensviz_image *dst, const lensviz__axes *a, int y_axis, double lo, double hi, int want) {
  lensviz_color black = lensviz_rgb(0, 0, 0), grid = lensviz_rgb(225, 225, 225);
  double step = lensviz__tick_step(hi - lo, want), v;
  for (v = ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    char label[32];
    size_t tw, th;
    lensviz__tick_label(v, step, label, sizeof label);
    lensviz_text_size(label, 1, &tw, &th);
    if (!y_axis) {
      long px = lensviz__px(a, v);
      lensviz_fill_rect(dst, px, a->top, 1, a->bottom - a->top, grid);
      lensviz_fill_rect(dst, px, a->bottom, 1, 4, black);
      lensviz_draw_text(dst, px - (long)tw / 2, a->bottom + 7, label, 1, black);
    } else {
      long py = lensviz__py(a, v);
      lensviz_fill_rect(dst, a->left, py, a->right - a->left, 1, grid);
      lensviz_fill_rect(dst, a->left - 4, py, 4, 1, black);
      lensviz_draw_text(dst, a->left - 8 - (long)tw, py - 3, label, 1, black);
    }
  }
}

/* Clears dst and draws title, frame, ticks with labels, axis labels and a light grid. */
static lensviz__axes lensviz__draw_axes(lensviz_image *dst, const lensviz_plot_desc *desc, double x0, double x1, double y0, double y1) {
  lensviz__axes a;
  lensviz_color black = lensviz_rgb(0, 0, 0);
  int title_scale = dst->width >= 420 ? 2 : 1;
  memset(&a, 0, sizeof a);
  lensviz_fill(dst, lensviz_rgb(255, 255, 255));
  if (!(x1 > x0)) x1 = x0 + 1.0;
  if (!(y1 > y0)) y1 = y0 + 1.0;
  a.x0 = x0; a.x1 = x1; a.y0 = y0; a.y1 = y1;
  a.left = 62;
  a.right = (long)dst->width - 18;
  a.top = (desc && desc->title ? 12 + 8 * title_scale : 8) + (desc && desc->ylabel ? 12 : 0);
  a.bottom = (long)dst->height - (desc && desc->xlabel ? 38 : 24);
  if (a.right <= a.left + 10) a.right = a.left + 10;
  if (a.bottom <= a.top + 10) a.bottom = a.top + 10;
  if (desc && desc->title) {
    size_t tw, th;
    lensviz_text_size(desc->title, title_scale, &tw, &th);
    lensviz_draw_text(dst, ((long)dst->width - (long)tw) / 2, 6, desc->title, title_scale, black);
  }
  lensviz__axis_ticks(dst, &a, 0, x0, x1, (int)((a.right - a.left) / 70 + 1));
  lensviz__axis_ticks(dst, &a, 1, y0, y1, (int)((a.bottom - a.top) / 45 + 1));
  lensviz_draw_rect(dst, a.left, a.top, a.right - a.left + 1, a.bottom - a.top + 1, black);
  if (desc && desc->xlabel) {
    size_t tw, th;
    lensviz_text_size(desc->xlabel, 1, &tw, &th);
    lensviz_draw_text(dst, (a.left + a.right - (long)tw) / 2, a.bottom + 22, desc->xlabel, 1, black);
  }
  if (desc && desc->ylabel) lensviz_draw_text(dst, 6, a.top - 14, desc->ylabel, 1, black);
  return a;
}

static void lensviz__legend(lensviz_image *dst, const lensviz__axes *a, const lensviz_series *s, size_t n, int bottom) {
  size_t i, widest = 0, rows = 0;
  long x, y, w, h;
  for (i = 0; i < n; i++)
    if (s[i].label) {
      size_t tw, th;
      lensviz_text_size(s[i].label, 1, &tw, &th);
      if (tw > widest) widest = tw;
      rows++;
    }
  if (!rows) return;
  w = (long)widest + 34;
  h = (long)rows * 12 + 6;
  x = a->right - w - 6;
  y = bottom ? a->bottom - h - 6 : a->top + 6;
  lensviz_fill_rect(dst, x, y, w, h, lensviz_rgb(255, 255, 255));
  lensviz_draw_rect(dst, x, y, w, h, lensviz_rgb(160, 160, 160));
  for (i = 0, rows = 0; i < n; i++)
    if (s[i].label) {
      long ly = y + 4 + (long)rows * 12, phase = 0;
      lensviz__line(dst, x + 5, ly + 3, x + 23, ly + 3, 2, s[i].color, s[i].dashed, &phase);
      lensviz_draw_text(dst, x + 28, ly, s[i].label, 1, lensviz_rgb(0, 0, 0));
      rows++;
    }
}

static void lensviz__range(const float *v, size_t n, double *lo, double *hi, int *any) {
  size_t i;
  for (i = 0; v && i < n; i++) {
    if (v[i] != v[i] || fabsf(v[i]) == INFINITY) continue;
    if (!*any || v[i] < *lo) *lo = v[i];
    if (!*any || v[i] > *hi) *hi = v[i];
    *any = 1;
  }
}

LENSVIZ_API void lensviz_plot_lines(lensviz_image *dst, const lensviz_series *series, size_t n, const lensviz_plot_desc *desc) {
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1, pad;
  int anyx = 0, anyy = 0;
  size_t i, k;
  lensviz__axes a;
  if (desc && desc->x0 != desc->x1) { x0 = desc->x0; x1 = desc->x1; }
  else {
    for (i = 0; i < n; i++) lensviz__range(series[i].x, series[i].n, &x0, &x1, &anyx);
  }
  if (desc && desc->y0 != desc->y1) { y0 = desc->y0; y1 = desc->y1; }
  else {
    for (i = 0; i < n; i++) lensviz__range(series[i].y, series[i].n, &y0, &y1, &anyy);
    pad = 0.05 * (y1 - y0);
    if (!(pad > 0.0)) pad = 0.5;
    y0 -= pad; y1 += pad;
  }
  a = lensviz__draw_axes(dst, desc, x0, x1, y0, y1);
  if (desc && desc->diagonal) {
    long phase = 0;
    lensviz__line(dst, lensviz__px(&a, a.x0 > a.y0 ? a.x0 : a.y0), lensviz__py(&a, a.x0 > a.y0 ? a.x0 : a.y0),
                  lensviz__px(&a, a.x1 < a.y1 ? a.x1 : a.y1), lensviz__py(&a, a.x1 < a.y1 ? a.x1 : a.y1), 1, lensviz_rgb(150, 150, 150), 1, &phase);
  }
  for (i = 0; i < n; i++) {
    long phase = 0, px = 0, py = 0;
    int have = 0;
    for (k = 0; k < series[i].n; k++) {
      long qx, qy;
      if (series[i].x[k] != series[i].x[k] || series[i].y[k] != series[i].y[k]) { have = 0; continue; }
      qx = lensviz__px(&a, series[i].x[k]);
      qy = lensviz__py(&a, series[i].y[k]);
      if (qx < a.left - 2 || qx > a.right + 2 || qy < a.top - 2 || qy > a.bottom + 2) { have = 0; continue; }
      if (have) lensviz__line(dst, px, py, qx, qy, 2, series[i].color, series[i].dashed, &phase);
      else if (series[i].n == 1) lensviz_fill_rect(dst, qx - 2, qy - 2, 5, 5, series[i].color);
      px = qx; py = qy; have = 1;
    }
  }
  lensviz__legend(dst, &a, series, n, desc ? desc->legend_bottom : 0);
}

/* counts[0..bins) of the series' finite values in [x0, x1], in bins `width` wide (x1 in the last). */
static void lensviz__histogram_counts(const lensviz_series *s, double x0, double x1, double width, size_t bins, size_t *counts) {
  size_t k, b;
  memset(counts, 0, bins * sizeof *counts);
  for (k = 0; k < s->n; k++) {
    double v = s->x[k];
    if (v != v || v < x0 || v > x1) continue;
    b = (size_t)((v - x0) / width);
    counts[b < bins ? b : bins - 1]++;
  }
}

LENSVIZ_API void lensviz_plot_histogram(lensviz_image *dst, const lensviz_series *series, size_t n, size_t bins,
                                        const lensviz_plot_desc *desc) {
  double x0 = 0, x1 = 1, top = 0, width;
  int any = 0;
  size_t i, b;
  lensviz__axes a;
  size_t counts[512];
  if (!bins) bins = 20;
  if (bins > 512) bins = 512;
  if (desc && desc->x0 != desc->x1) { x0 = desc->x0; x1 = desc->x1; }
  else for (i = 0; i < n; i++) lensviz__range(series[i].x, series[i].n, &x0, &x1, &any);
  if (!(x1 > x0)) x1 = x0 + 1.0;
  width = (x1 - x0) / (double)bins;
  for (i = 0; i < n; i++) {
    lensviz__histogram_counts(&series[i], x0, x1, width, bins, counts);
    for (b = 0; b < bins; b++) if ((double)counts[b] > top) top = (double)counts[b];
  }
  a = lensviz__draw_axes(dst, desc, x0, x1, 0.0, top > 0 ? top * 1.08 : 1.0);
  for (i = 0; i < n; i++) {
    long phase = 0, prev_y = lensviz__py(&a, 0.0);
    lensviz__histogram_counts(&series[i], x0, x1, width, bins, counts);
    for (b = 0; b < bins; b++) {
      long xa = lensviz__px(&a, x0 + (double)b * width), xb = lensviz__px(&a, x0 + (double)(b + 1) * width), y = lensviz__py(&a, (double)counts[b]), X, Y;
      for (Y = y; Y < a.bottom; Y++)
        for (X = xa; X < xb; X++) lensviz__blend(dst, X, Y, series[i].color, 0.25f);
      lensviz__line(dst, xa, prev_y, xa, y, 2, series[i].color, 0, &phase);
      lensviz__line(dst, xa, y, xb, y, 2, series[i].color, 0, &phase);
      prev_y = y;
    }
    lensviz__line(dst, lensviz__px(&a, x1), prev_y, lensviz__px(&a, x1), a.bottom, 2, series[i].color, 0, &phase);
  }
  lensviz__legend(dst, &a, series, n, desc ? desc->legend_bottom : 0);
}

LENSVIZ_API void lensviz_plot_confusion(lensviz_image *dst, const double *counts, size_t k, const char *const *names, const char *title) {
  lensviz_color black = lensviz_rgb(0, 0, 0);
  long left = 70, top = title ? 40 : 16, size, cell;
  size_t i, j;
  lensviz_fill(dst, lensviz_rgb(255, 255, 255));
  if (!k) return;
  if (title) {
    size_t tw, th;
    int s = dst->width >= 420 ? 2 : 1;
    lensviz_text_size(title, s, &tw, &th);
    lensviz_draw_text(dst, ((long)dst->width - (long)tw) / 2, 8, title, s, black);
  }
  size = (long)dst->width - left - 16;
  if ((long)dst->height - top - 40 < size) size = (long)dst->height - top - 40;
  cell = size / (long)k;
  if (cell < 8) return;
  for (i = 0; i < k; i++) {
    double row = 0.0;
    char label[64];
    for (j = 0; j < k; j++) row += counts[i * k + j];
    for (j = 0; j < k; j++) {
      double f = row > 0 ? counts[i * k + j] / row : 0.0;
      long x = left + (long)j * cell, y = top + (long)i * cell;
      size_t tw, th;
      lensviz_fill_rect(dst, x, y, cell, cell, lensviz_colormap_color(LENSVIZ_CMAP_VIRIDIS, (float)f));
      lensviz_draw_rect(dst, x, y, cell, cell, lensviz_rgb(255, 255, 255));
      {
        lensviz_color ink = f > 0.6 ? black : lensviz_rgb(255, 255, 255);
        int s = cell >= 120 ? 2 : 1;
        snprintf(label, sizeof label, "%.0f", counts[i * k + j]);
        lensviz_text_size(label, s, &tw, &th);
        lensviz_draw_text(dst, x + (cell - (long)tw) / 2, y + cell / 2 - (long)th, label, s, ink);
        snprintf(label, sizeof label, "%.1f%%", 100.0 * f);
        lensviz_text_size(label, 1, &tw, &th);
        lensviz_draw_text(dst, x + (cell - (long)tw) / 2, y + cell / 2 + 4, label, 1, ink);
      }
    }
    if (names && names[i]) snprintf(label, sizeof label, "%.10s", names[i]);
    else snprintf(label, sizeof label, "%lu", (unsigned long)i);
    lensviz_draw_text(dst, 6, top + (long)i * cell + cell / 2 - 4, label, 1, black);
    lensviz_draw_text(dst, left + (long)i * cell + 2, top + (long)k * cell + 6, label, 1, black);
  }
  lensviz_draw_text(dst, 6, top - 12, "true", 1, black);
  lensviz_draw_text(dst, left + (long)k * cell / 2 - 27, top + (long)k * cell + 20, "predicted", 1, black);
}

/* ---- ROC and precision-recall -------------------------------------------------------------- */

/* lensviz_eval_curve's points (unweighted, no prior) with NaN scores ranked lowest (as -inf), and
 * the class totals; NULL when out of memory. */
static lensviz_eval_point *lensviz__curve(const float *scores, const int *labels, size_t n, size_t *count, double *pos, double *neg) {
  float *s = lensviz__floats(n);
  lensviz_eval_point *p = LENSVIZ__CAST(lensviz_eval_point *, lensviz__alloc(n + 1, sizeof(lensviz_eval_point)));
  size_t i;
  *count = 0;
  *pos = *neg = 0.0;
  if (s && p) {
    for (i = 0; i < n; i++) s[i] = scores[i] == scores[i] ? scores[i] : -INFINITY;
    if (lensviz_eval_curve(s, labels, NULL, n, 0.0, p, count, NULL) != LENSNET_OK) *count = 0;
  }
  lensviz_free(s);
  if (!*count) { lensviz_free(p); return NULL; }
  *pos = p[*count - 1].tp; /* the last point calls every object a lens */
  *neg = p[*count - 1].fp;
  return p;
}

LENSVIZ_API size_t lensviz_roc(const float *scores, const int *labels, size_t n, float *fpr, float *tpr, double *auc) {
  size_t count = 0, k;
  double pos, neg, area = 0.0;
  lensviz_eval_point *p = lensviz__curve(scores, labels, n, &count, &pos, &neg);
  if (auc) *auc = 0.0;
  if (!p || pos <= 0.0 || neg <= 0.0) { lensviz_free(p); return 0; }
  for (k = 0; k < count; k++) {
    fpr[k] = (float)p[k].fpr;
    tpr[k] = (float)p[k].tpr;
    if (k) area += (p[k].fpr - p[k - 1].fpr) * (p[k].tpr + p[k - 1].tpr) * 0.5; /* trapezoids */
  }
  if (auc) *auc = area;
  lensviz_free(p);
  return count;
}

LENSVIZ_API size_t lensviz_pr(const float *scores, const int *labels, size_t n, float *recall, float *precision, double *ap) {
  size_t count = 0, k;
  double pos, neg, sum = 0.0;
  lensviz_eval_point *p = lensviz__curve(scores, labels, n, &count, &pos, &neg);
  if (ap) *ap = 0.0;
  if (!p || pos <= 0.0) { lensviz_free(p); return 0; }
  for (k = 0; k < count; k++) {
    recall[k] = (float)p[k].tpr;
    precision[k] = (float)p[k].precision;
    if (k) sum += (p[k].tpr - p[k - 1].tpr) * p[k].precision;
  }
  if (ap) *ap = sum;
  lensviz_free(p);
  return count;
}

/* ---- evaluation ---------------------------------------------------------------------------- */

LENSVIZ_API lensviz_eval_desc lensviz_eval_desc_resolve(const lensviz_eval_desc *desc) {
  lensviz_eval_desc d;
  if (desc) d = *desc;
  else memset(&d, 0, sizeof d);
  if (d.level == 0.0) d.level = 0.95;
  if (!d.recall_count) { d.recall_count = 2; d.recalls[0] = 0.9; d.recalls[1] = 0.95; }
  if (!d.fpr_count) { d.fpr_count = 2; d.fprs[0] = 1e-2; d.fprs[1] = 1e-3; }
  return d;
}

static lensnet_result lensviz__eval_check_desc(const lensviz_eval_desc *d, lensnet_error *err) {
  size_t i;
  if (!(d->level > 0.0 && d->level < 1.0)) return lensviz__fail(err, LENSNET_ERR_ARG, "eval: level %g is outside (0, 1)", d->level);
  if (!(d->prior >= 0.0) || d->prior > 1e300) return lensviz__fail(err, LENSNET_ERR_ARG, "eval: prior %g is not a ratio >= 0", d->prior);
  if (d->recall_count > LENSVIZ_EVAL_MAX_LEVELS || d->fpr_count > LENSVIZ_EVAL_MAX_LEVELS)
    return lensviz__fail(err, LENSNET_ERR_ARG, "eval: at most %d recalls and %d false-positive rates", LENSVIZ_EVAL_MAX_LEVELS,
                         LENSVIZ_EVAL_MAX_LEVELS);
  for (i = 0; i < d->recall_count; i++)
    if (!(d->recalls[i] > 0.0 && d->recalls[i] <= 1.0)) return lensviz__fail(err, LENSNET_ERR_ARG, "eval: recall %g is outside (0, 1]", d->recalls[i]);
  for (i = 0; i < d->fpr_count; i++)
    if (!(d->fprs[i] > 0.0 && d->fprs[i] <= 1.0))
      return lensviz__fail(err, LENSNET_ERR_ARG, "eval: false-positive rate %g is outside (0, 1]", d->fprs[i]);
  return LENSNET_OK;
}

/* NaN scores cannot be ranked; weights must be finite and >= 0. */
static lensnet_result lensviz__eval_check_inputs(const float *scores, const float *weights, size_t n, size_t stride, lensnet_error *err) {
  size_t i, c;
  for (i = 0; i < n; i++) {
    for (c = 0; c < stride; c++)
      if (scores[i * stride + c] != scores[i * stride + c])
        return lensviz__fail(err, LENSNET_ERR_ARG, "eval: the score of object %lu is NaN", (unsigned long)i);
    if (weights && !(weights[i] >= 0.0f && weights[i] <= 3.4e38f))
      return lensviz__fail(err, LENSNET_ERR_ARG, "eval: the weight of object %lu is %g (weights are finite and >= 0)", (unsigned long)i,
                           (double)weights[i]);
  }
  return LENSNET_OK;
}

/* Objects in score order, each with its class and its place in the caller's arrays. */
typedef struct { float score; int positive; size_t index; } lensviz__ranked;

static int lensviz__by_score_asc(const void *a, const void *b) {
  float x = ((const lensviz__ranked *)a)->score, y = ((const lensviz__ranked *)b)->score;
  return x < y ? -1 : x > y ? 1 : 0;
}

/* scores[i * stride] and (label == positive_label, or nonzero when positive_label < 0), sorted
 * from the lowest score up. */
static lensviz__ranked *lensviz__rank(const float *scores, size_t stride, const int *labels, int positive_label, size_t n) {
  lensviz__ranked *r = LENSVIZ__CAST(lensviz__ranked *, lensviz__alloc(n, sizeof(lensviz__ranked)));
  size_t i;
  if (!r) return NULL;
  for (i = 0; i < n; i++) {
    r[i].score = scores[i * stride];
    r[i].positive = positive_label < 0 ? labels[i] != 0 : labels[i] == positive_label;
    r[i].index = i;
  }
  qsort(r, n, sizeof *r, lensviz__by_score_asc);
  return r;
}

/* The Mann-Whitney AUC over ranked objects, object i weighing weight[i] * times[i] (either may be
 * NULL: 1); ties between a lens and a non-lens count one half. NaN without both classes. */
static double lensviz__auc(const lensviz__ranked *r, size_t n, const double *weight, const double *times) {
  double below = 0.0, sum = 0.0, wp = 0.0, wn = 0.0;
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    double gp = 0.0, gn = 0.0;
    for (; j < n && r[j].score == r[i].score; j++) {
      double w = (weight ? weight[r[j].index] : 1.0) * (times ? times[r[j].index] : 1.0);
      if (r[j].positive) gp += w;
      else gn += w;
    }
    sum += gp * (below + 0.5 * gn);
    below += gn;
    wp += gp;
    wn += gn;
    i = j;
  }
  return wp > 0.0 && wn > 0.0 ? sum / (wp * wn) : NAN;
}

/* The q-quantile of sorted values, linearly interpolated between order statistics. */
static double lensviz__quantile(const double *sorted, size_t n, double q) {
  double pos = q * (double)(n - 1), frac;
  size_t i = (size_t)pos;
  if (i >= n - 1) return sorted[n - 1];
  frac = pos - (double)i;
  return sorted[i] + frac * (sorted[i + 1] - sorted[i]);
}

static int lensviz__by_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y ? 1 : 0;
}

/* The stratified bootstrap of one or more AUCs computed over the same resampled objects: one
 * ranked order per AUC, and with `macro` their mean as one more statistic. */
typedef struct {
  const lensviz__ranked *const *orders;
  size_t order_count, n, stats;
  int macro;
  const double *weight;
  const size_t *members, *stratum_start; /* objects grouped by stratum */
  size_t strata;
  uint64_t seed;
  size_t first;                          /* the first resample of this run */
  double *times;                         /* per worker: n multiplicities */
  double *values;                        /* resamples x stats */
} lensviz__boot;

static void lensviz__boot_one(void *ctx, size_t index, size_t worker) {
  lensviz__boot *b = (lensviz__boot *)ctx;
  size_t resample = b->first + index, s, k, o;
  double *times = b->times + worker * b->n, *out = b->values + resample * b->stats, sum = 0.0;
  lensnet_rng rng;
  lensnet_rng_seed(&rng, b->seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(resample + 1)));
  memset(times, 0, b->n * sizeof *times);
  for (s = 0; s < b->strata; s++) {
    size_t start = b->stratum_start[s], m = b->stratum_start[s + 1] - start;
    for (k = 0; k < m; k++) times[b->members[start + (size_t)(lensnet_rng_next(&rng) % m)]] += 1.0;
  }
  for (o = 0; o < b->order_count; o++) {
    out[o] = lensviz__auc(b->orders[o], b->n, b->weight, times);
    sum += out[o];
  }
  if (b->macro) out[b->order_count] = sum / (double)b->order_count;
}

/* Runs the resamples and puts each statistic's interval into lo[s], hi[s]. stratum[i] in
 * 0..strata-1 is object i's class. */
static lensnet_result lensviz__bootstrap(const lensviz__ranked *const *orders, size_t order_count, int macro, const double *weight,
                                         const int *stratum, size_t strata, size_t n, const lensviz_eval_desc *d, double *lo,
                                         double *hi, lensnet_error *err) {
  lensviz__boot b;
  size_t workers = d->parallel && d->parallel->run && d->parallel->workers > 1 ? d->parallel->workers : 1, i, s, done;
  size_t *members, *start, *fill;
  double *column;
  lensnet_result r = LENSNET_OK;
  memset(&b, 0, sizeof b);
  b.orders = orders;
  b.order_count = order_count;
  b.n = n;
  b.macro = macro;
  b.stats = order_count + (macro ? 1 : 0);
  b.weight = weight;
  b.strata = strata;
  b.seed = d->seed;
  members = LENSVIZ__CAST(size_t *, lensviz__alloc(n, sizeof(size_t)));
  start = LENSVIZ__CAST(size_t *, lensviz__alloc(strata + 1, sizeof(size_t)));
  fill = LENSVIZ__CAST(size_t *, lensviz__alloc(strata + 1, sizeof(size_t)));
  column = LENSVIZ__CAST(double *, lensviz__alloc(d->resamples, sizeof(double)));
  if (n <= (size_t)-1 / sizeof(double)) b.times = LENSVIZ__CAST(double *, lensviz__alloc(workers, n * sizeof(double)));
  if (b.stats <= (size_t)-1 / sizeof(double)) b.values = LENSVIZ__CAST(double *, lensviz__alloc(d->resamples, b.stats * sizeof(double)));
  if (!members || !start || !fill || !column || !b.times || !b.values) {
    r = lensviz__fail(err, LENSNET_ERR_NOMEM, "eval: out of memory for %lu resamples of %lu objects", (unsigned long)d->resamples,
                      (unsigned long)n);
  } else {
    /* the objects of each stratum side by side: members[start[s] .. start[s + 1]) */
    memset(start, 0, (strata + 1) * sizeof(size_t));
    for (i = 0; i < n; i++) start[stratum[i] + 1]++;
    for (s = 0; s < strata; s++) start[s + 1] += start[s];
    memcpy(fill, start, (strata + 1) * sizeof(size_t));
    for (i = 0; i < n; i++) members[fill[stratum[i]]++] = i;
    b.members = members;
    b.stratum_start = start;
    for (done = 0; done < d->resamples;) {
      size_t chunk = d->resamples - done < 64 ? d->resamples - done : 64;
      b.first = done;
      if (workers > 1 && chunk > 1) d->parallel->run(d->parallel->user, chunk, lensviz__boot_one, &b);
      else for (i = 0; i < chunk; i++) lensviz__boot_one(&b, i, 0);
      done += chunk;
      if (d->progress) d->progress(d->progress_user, done, d->resamples);
    }
    for (s = 0; s < b.stats; s++) {
      for (i = 0; i < d->resamples; i++) column[i] = b.values[i * b.stats + s];
      qsort(column, d->resamples, sizeof *column, lensviz__by_double);
      lo[s] = lensviz__quantile(column, d->resamples, 0.5 * (1.0 - d->level));
      hi[s] = lensviz__quantile(column, d->resamples, 0.5 * (1.0 + d->level));
    }
  }
  lensviz_free(members);
  lensviz_free(start);
  lensviz_free(fill);
  lensviz_free(column);
  lensviz_free(b.times);
  lensviz_free(b.values);
  return r;
}

/* Each object's weight with the prior applied, and the class totals. */
static double *lensviz__eval_weights(const int *labels, const float *weights, size_t n, double prior, lensviz_eval_result *out) {
  double *w = LENSVIZ__CAST(double *, lensviz__alloc(n, sizeof(double)));
  double wp = 0.0, wn = 0.0, factor = 1.0;
  size_t i;
  if (!w) return NULL;
  out->count_pos = out->count_neg = 0;
  for (i = 0; i < n; i++) {
    w[i] = weights ? (double)weights[i] : 1.0;
    if (labels[i]) { wp += w[i]; out->count_pos++; }
    else { wn += w[i]; out->count_neg++; }
  }
  if (prior > 0.0 && wp > 0.0 && wn > 0.0) factor = prior * wp / wn;
  for (i = 0; i < n; i++)
    if (!labels[i]) w[i] *= factor;
  out->negative_weight = factor;
  out->weight_pos = wp;
  out->weight_neg = wn * factor;
  return w;
}

static double lensviz__ratio(double a, double b) { return b > 0.0 ? a / b : NAN; }

/* The figures at the threshold. */
static void lensviz__eval_threshold(const float *scores, const int *labels, const double *w, size_t n, double threshold,
                                    lensviz_eval_result *out) {
  size_t i;
  out->threshold = threshold;
  out->tp = out->fp = out->tn = out->fn = 0.0;
  for (i = 0; i < n; i++) {
    int called = scores[i] >= (float)threshold; /* at the scores' precision: --threshold 0.7 takes a score of 0.7f */
    if (labels[i]) { if (called) out->tp += w[i]; else out->fn += w[i]; }
    else { if (called) out->fp += w[i]; else out->tn += w[i]; }
  }
  out->precision = lensviz__ratio(out->tp, out->tp + out->fp);
  out->recall = lensviz__ratio(out->tp, out->tp + out->fn);
  out->fpr = lensviz__ratio(out->fp, out->fp + out->tn);
  out->f1 = lensviz__ratio(2.0 * out->tp, 2.0 * out->tp + out->fp + out->fn);
  out->accuracy = lensviz__ratio(out->tp + out->tn, out->tp + out->fp + out->tn + out->fn);
}

/* Walks the distinct scores from the highest down: AP, precision at recall, recall at FPR. */
static void lensviz__eval_sweep(const lensviz__ranked *r, size_t n, const double *w, lensviz_eval_result *out) {
  double tp = 0.0, fp = 0.0, prev_recall = 0.0, ap = 0.0;
  size_t i = n, k;
  int have_pos = out->weight_pos > 0.0, have_neg = out->weight_neg > 0.0;
  for (k = 0; k < out->recall_count; k++) out->precision_at_recall[k] = out->threshold_at_recall[k] = NAN;
  for (k = 0; k < out->fpr_count; k++) {
    out->recall_at_fpr[k] = have_pos && have_neg ? 0.0 : NAN;
    out->threshold_at_fpr[k] = have_pos && have_neg ? INFINITY : NAN;
  }
  while (i > 0) {
    size_t j = i;
    double recall, precision, fpr, score = (double)r[i - 1].score;
    for (; j > 0 && r[j - 1].score == r[i - 1].score; j--) {
      if (r[j - 1].positive) tp += w[r[j - 1].index];
      else fp += w[r[j - 1].index];
    }
    recall = lensviz__ratio(tp, out->weight_pos);
    precision = lensviz__ratio(tp, tp + fp);
    fpr = lensviz__ratio(fp, out->weight_neg);
    if (have_pos) {
      if (tp + fp > 0.0) ap += (recall - prev_recall) * precision;
      prev_recall = recall;
      for (k = 0; k < out->recall_count; k++)
        if (out->threshold_at_recall[k] != out->threshold_at_recall[k] && recall >= out->recalls[k] * (1.0 - 1e-12)) {
          out->precision_at_recall[k] = precision;
          out->threshold_at_recall[k] = score;
        }
    }
    if (have_pos && have_neg)
      for (k = 0; k < out->fpr_count; k++)
        if (fpr <= out->fprs[k] * (1.0 + 1e-12)) {
          out->recall_at_fpr[k] = recall;
          out->threshold_at_fpr[k] = score;
        }
    i = j;
  }
  out->ap = have_pos ? ap : NAN;
}

LENSVIZ_API lensnet_result lensviz_eval_binary(const float *scores, const int *labels, const float *weights, size_t n, double threshold,
                                               const lensviz_eval_desc *desc, lensviz_eval_result *out, lensnet_error *err) {
  lensviz_eval_desc d = lensviz_eval_desc_resolve(desc);
  lensviz__ranked *r = NULL;
  double *w = NULL;
  lensnet_result res;
  size_t k;
  memset(out, 0, sizeof *out);
  out->auc = out->auc_lo = out->auc_hi = out->ap = NAN;
  if ((res = lensviz__eval_check_desc(&d, err)) != LENSNET_OK) return res;
  if ((res = lensviz__eval_check_inputs(scores, weights, n, 1, err)) != LENSNET_OK) return res;
  out->level = d.level;
  out->recall_count = d.recall_count;
  out->fpr_count = d.fpr_count;
  for (k = 0; k < d.recall_count; k++) out->recalls[k] = d.recalls[k];
  for (k = 0; k < d.fpr_count; k++) out->fprs[k] = d.fprs[k];
  w = lensviz__eval_weights(labels, weights, n, d.prior, out);
  r = lensviz__rank(scores, 1, labels, -1, n);
  if (!w || !r) {
    lensviz_free(w);
    lensviz_free(r);
    return lensviz__fail(err, LENSNET_ERR_NOMEM, "eval: out of memory for %lu objects", (unsigned long)n);
  }
  lensviz__eval_threshold(scores, labels, w, n, threshold, out);
  lensviz__eval_sweep(r, n, w, out);
  out->auc = lensviz__auc(r, n, w, NULL);
  if (d.resamples && out->auc == out->auc) {
    const lensviz__ranked *orders[1];
    int *stratum = LENSVIZ__CAST(int *, lensviz__alloc(n, sizeof(int)));
    orders[0] = r;
    if (!stratum) res = lensviz__fail(err, LENSNET_ERR_NOMEM, "eval: out of memory for %lu objects", (unsigned long)n);
    else {
      for (k = 0; k < n; k++) stratum[k] = labels[k] != 0;
      res = lensviz__bootstrap(orders, 1, 0, w, stratum, 2, n, &d, &out->auc_lo, &out->auc_hi, err);
      if (res == LENSNET_OK) out->resamples = d.resamples;
    }
    lensviz_free(stratum);
  }
  lensviz_free(w);
  lensviz_free(r);
  return res;
}

LENSVIZ_API void lensviz_eval_group_objects(const int *labels, size_t n, const unsigned char *in_group, size_t *pick, size_t *count,
                                            lensviz_eval_members *members) {
  size_t i, m = 0;
  int has_pos = 0, has_neg = 0;
  lensviz_eval_members mem;
  for (i = 0; i < n; i++)
    if (in_group[i]) { if (labels[i]) has_pos = 1; else has_neg = 1; }
  mem = has_pos && has_neg ? LENSVIZ_EVAL_MEMBERS_BOTH : has_pos ? LENSVIZ_EVAL_MEMBERS_LENSES
        : has_neg ? LENSVIZ_EVAL_MEMBERS_NON_LENSES : LENSVIZ_EVAL_MEMBERS_NONE;
  /* the group, and every object of the class it lacks */
  for (i = 0; i < n; i++)
    if (in_group[i] || (mem == LENSVIZ_EVAL_MEMBERS_LENSES && !labels[i]) || (mem == LENSVIZ_EVAL_MEMBERS_NON_LENSES && labels[i]))
      pick[m++] = i;
  *count = m;
  if (members) *members = mem;
}

LENSVIZ_API lensnet_result lensviz_eval_group(const float *scores, const int *labels, const float *weights, size_t n,
                                              const unsigned char *in_group, double threshold, const lensviz_eval_desc *desc,
                                              lensviz_eval_result *out, lensviz_eval_members *members, lensnet_error *err) {
  size_t i, m = 0, *pick = LENSVIZ__CAST(size_t *, lensviz__alloc(n, sizeof(size_t)));
  float *s = lensviz__floats(n), *wt = weights ? lensviz__floats(n) : NULL;
  int *l = LENSVIZ__CAST(int *, lensviz__alloc(n, sizeof(int)));
  lensnet_result r;
  if (!pick || !s || !l || (weights && !wt)) {
    memset(out, 0, sizeof *out);
    r = lensviz__fail(err, LENSNET_ERR_NOMEM, "eval: out of memory for %lu objects", (unsigned long)n);
  } else {
    lensviz_eval_group_objects(labels, n, in_group, pick, &m, members);
    for (i = 0; i < m; i++) {
      s[i] = scores[pick[i]];
      l[i] = labels[pick[i]] != 0;
      if (wt) wt[i] = weights[pick[i]];
    }
    r = lensviz_eval_binary(s, l, wt, m, threshold, desc, out, err);
  }
  lensviz_free(pick);
  lensviz_free(s);
  lensviz_free(l);
  lensviz_free(wt);
  return r;
}

LENSVIZ_API lensnet_result lensviz_eval_curve(const float *scores, const int *labels, const float *weights, size_t n, double prior,
                                              lensviz_eval_point *points, size_t *count, lensnet_error *err) {
  lensviz_eval_result totals;
  lensviz__ranked *r;
  double *w, tp = 0.0, fp = 0.0;
  size_t i = n, c = 1;
  lensnet_result res;
  *count = 0;
  if ((res = lensviz__eval_check_inputs(scores, weights, n, 1, err)) != LENSNET_OK) return res;
  if (!(prior >= 0.0)) return lensviz__fail(err, LENSNET_ERR_ARG, "eval: prior %g is not a ratio >= 0", prior);
  w = lensviz__eval_weights(labels, weights, n, prior, &totals);
  r = lensviz__rank(scores, 1, labels, -1, n);
  if (!w || !r) {
    lensviz_free(w);
    lensviz_free(r);
    return lensviz__fail(err, LENSNET_ERR_NOMEM, "eval: out of memory for %lu objects", (unsigned long)n);
  }
  points[0].threshold = INFINITY;
  points[0].tp = points[0].fp = points[0].tpr = points[0].fpr = 0.0;
  points[0].precision = 1.0;
  if (totals.weight_pos <= 0.0) points[0].tpr = NAN;
  if (totals.weight_neg <= 0.0) points[0].fpr = NAN;
  while (i > 0) {
    size_t j = i;
    for (; j > 0 && r[j - 1].score == r[i - 1].score; j--) {
      if (r[j - 1].positive) tp += w[r[j - 1].index];
      else fp += w[r[j - 1].index];
    }
    points[c].threshold = (double)r[i - 1].score;
    points[c].tp = tp;
    points[c].fp = fp;
    points[c].tpr = lensviz__ratio(tp, totals.weight_pos);
    points[c].fpr = lensviz__ratio(fp, totals.weight_neg);
    points[c].precision = lensviz__ratio(tp, tp + fp);
    c++;
    i = j;
  }
  *count = c;
  lensviz_free(w);
  lensviz_free(r);
  return LENSNET_OK;
}

LENSVIZ_API lensviz_eval_binned lensviz_eval_binned_class(const double *values, const int *labels, size_t n) {
  double first[2];
  int seen[2] = {0, 0}, varies[2] = {0, 0};
  size_t i;
  for (i = 0; i < n; i++) {
    int c = labels[i] != 0;
    if (values[i] != values[i]) continue;
    if (!seen[c]) { first[c] = values[i]; seen[c] = 1; }
    else if (values[i] != first[c]) varies[c] = 1;
  }
  if (seen[0] && !varies[0] && varies[1]) return LENSVIZ_EVAL_BIN_LENSES;
  if (seen[1] && !varies[1] && varies[0]) return LENSVIZ_EVAL_BIN_NON_LENSES;
  return LENSVIZ_EVAL_BIN_ALL;
}

LENSVIZ_API lensnet_result lensviz_eval_quantile_edges(const double *values, const int *labels, size_t n, lensviz_eval_binned which,
                                                       size_t bins, double *edges, size_t *edge_count, lensnet_error *err) {
  double *v;
  size_t i, m = 0, k, c = 0;
  *edge_count = 0;
  if (!bins) return lensviz__fail(err, LENSNET_ERR_ARG, "eval: at least one bin");
  if (!(v = LENSVIZ__CAST(double *, lensviz__alloc(n, sizeof(double)))))
    return lensviz__fail(err, LENSNET_ERR_NOMEM, "eval: out of memory for %lu values", (unsigned long)n);
  for (i = 0; i < n; i++) {
    if (!isfinite(values[i])) continue;
    if ((which == LENSVIZ_EVAL_BIN_LENSES && !labels[i]) || (which == LENSVIZ_EVAL_BIN_NON_LENSES && labels[i])) continue;
    v[m++] = values[i];
  }
  if (m) {
    qsort(v, m, sizeof *v, lensviz__by_double);
    for (k = 0; k <= bins; k++) {
      double e = k == bins ? v[m - 1] : lensviz__quantile(v, m, (double)k / (double)bins);
      if (c == 0 || e > edges[c - 1]) edges[c++] = e;
    }
    if (c == 1) edges[c++] = edges[0];
  }
  *edge_count = c;
  lensviz_free(v);
  return LENSNET_OK;
}

LENSVIZ_API long lensviz_eval_bin(double v, const double *edges, size_t edge_count) {
  size_t lo = 0, hi;
  if (edge_count < 2 || !(v >= edges[0] && v <= edges[edge_count - 1])) return -1;
  hi = edge_count - 1; /* edges[lo] <= v, and v < edges[hi] or v is the top edge */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (v >= edges[mid]) lo = mid;
    else hi = mid;
  }
  return (long)lo;
}

LENSVIZ_API lensnet_result lensviz_eval_multiclass(const float *probs, const int *labels, size_t n, size_t k, const lensviz_eval_desc *desc,
                                                   lensviz_eval_classes *out, lensnet_error *err) {
  lensviz_eval_desc d = lensviz_eval_desc_resolve(desc);
  lensviz__ranked *orders[LENSVIZ_EVAL_MAX_CLASSES];
  lensnet_result res;
  size_t i, c, j;
  double right = 0.0; /* objects whose highest probability is their class */
  int all_defined = 1;
  memset(out, 0, sizeof *out);
  memset(orders, 0, sizeof orders);
  out->macro_auc = out->macro_lo = out->macro_hi = out->accuracy = NAN;
  if (k < 2 || k > LENSVIZ_EVAL_MAX_CLASSES)
    return lensviz__fail(err, LENSNET_ERR_ARG, "eval: %lu classes (2 to %d are evaluated)", (unsigned long)k, LENSVIZ_EVAL_MAX_CLASSES);
  if ((res = lensviz__eval_check_desc(&d, err)) != LENSNET_OK) return res;
  if ((res = lensviz__eval_check_inputs(probs, NULL, n, k, err)) != LENSNET_OK) return res;
  for (i = 0; i < n; i++)
    if (labels[i] < 0 || (size_t)labels[i] >= k)
      return lensviz__fail(err, LENSNET_ERR_ARG, "eval: object %lu has label %d (classes are 0..%lu)", (unsigned long)i, labels[i],
                           (unsigned long)k - 1);
  out->classes = k;
  out->level = d.level;
  for (c = 0; c < k; c++) out->auc[c] = out->auc_lo[c] = out->auc_hi[c] = NAN;
  for (i = 0; i < n; i++) {
    const float *p = probs + i * k;
    size_t best = 0;
    for (c = 1; c < k; c++)
      if (p[c] > p[best]) best = c;
    out->count[labels[i]]++;
    out->confusion[(size_t)labels[i] * k + best] += 1.0;
  }
  for (c = 0; c < k; c++) {
    double tp = out->confusion[c * k + c], called = 0.0, truth = 0.0;
    for (j = 0; j < k; j++) {
      called += out->confusion[j * k + c];
      truth += out->confusion[c * k + j];
    }
    out->precision[c] = lensviz__ratio(tp, called);
    out->recall[c] = lensviz__ratio(tp, truth);
    out->f1[c] = lensviz__ratio(2.0 * tp, called + truth);
    right += tp;
  }
  out->accuracy = lensviz__ratio(right, (double)n);
  for (c = 0; c < k && res == LENSNET_OK; c++) {
    if (!(orders[c] = lensviz__rank(probs + c, k, labels, (int)c, n)))
      res = lensviz__fail(err, LENSNET_ERR_NOMEM, "eval: out of memory for %lu objects", (unsigned long)n);
    else {
      out->auc[c] = lensviz__auc(orders[c], n, NULL, NULL);
      if (out->auc[c] != out->auc[c]) all_defined = 0;
    }
  }
  if (res == LENSNET_OK && all_defined) {
    double sum = 0.0;
    for (c = 0; c < k; c++) sum += out->auc[c];
    out->macro_auc = sum / (double)k;
    if (d.resamples) {
      double lo[LENSVIZ_EVAL_MAX_CLASSES + 1], hi[LENSVIZ_EVAL_MAX_CLASSES + 1];
      res = lensviz__bootstrap((const lensviz__ranked *const *)orders, k, 1, NULL, labels, k, n, &d, lo, hi, err);
      if (res == LENSNET_OK) {
        for (c = 0; c < k; c++) { out->auc_lo[c] = lo[c]; out->auc_hi[c] = hi[c]; }
        out->macro_lo = lo[k];
        out->macro_hi = hi[k];
        out->resamples = d.resamples;
      }
    }
  } else if (res == LENSNET_OK && d.resamples) {
    /* intervals for the classes whose AUC is defined, one class at a time */
    for (c = 0; c < k && res == LENSNET_OK; c++) {
      int *stratum;
      const lensviz__ranked *one[1];
      if (out->auc[c] != out->auc[c]) continue;
      if (!(stratum = LENSVIZ__CAST(int *, lensviz__alloc(n, sizeof(int))))) {
        res = lensviz__fail(err, LENSNET_ERR_NOMEM, "eval: out of memory for %lu objects", (unsigned long)n);
        break;
      }
      for (i = 0; i < n; i++) stratum[i] = labels[i] == (int)c;
      one[0] = orders[c];
      res = lensviz__bootstrap(one, 1, 0, NULL, stratum, 2, n, &d, &out->auc_lo[c], &out->auc_hi[c], err);
      lensviz_free(stratum);
      out->resamples = d.resamples;
    }
  }
  for (c = 0; c < k; c++) lensviz_free(orders[c]);
  return res;
}

/* ---- regression ---- */

/* z of the central 68% interval of a Gaussian: Phi^-1(0.84) */
#define LENSVIZ__Z68 0.9944578832097535

LENSVIZ_API double lensviz_regress_level(double truth, double mean, double sigma) {
  double e = fabs(mean - truth);
  if (!(sigma > 0)) return e == 0 ? 0.0 : 1.0;
  return erf(e / (sigma * 1.4142135623730951));
}

/* The q-quantile of v[0..n) (sorted in place); NaN for none. */
static double lensviz__quantile_of(double *v, size_t n, double q) {
  if (!n) return NAN;
  qsort(v, n, sizeof *v, lensviz__by_double);
  return lensviz__quantile(v, n, q);
}

LENSVIZ_API lensnet_result lensviz_eval_regress(const double *truth, const double *mean, const double *sigma, size_t n,
                                                lensviz_regress_result *out, lensnet_error *err) {
  double sum = 0, sq = 0, zsq = 0, ssum = 0, c68 = 0, c95 = 0, *abs_err;
  size_t i, zn = 0;
  memset(out, 0, sizeof *out);
  out->n = n;
  for (i = 0; i < n; i++)
    if (!(truth[i] - truth[i] == 0) || !(mean[i] - mean[i] == 0) || !(sigma[i] >= 0 && sigma[i] - sigma[i] == 0))
      return lensviz__fail(err, LENSNET_ERR_ARG, "object %lu: truth %g, mean %g, sigma %g (finite values and sigma >= 0 needed)", (unsigned long)i,
                           truth[i], mean[i], sigma[i]);
  if (!n) {
    out->bias = out->rms = out->scatter = out->median_abs = out->mean_sigma = out->z_rms = out->coverage68 = out->coverage95 = NAN;
    return LENSNET_OK;
  }
  if (!(abs_err = LENSVIZ__CAST(double *, lensviz__alloc(n, sizeof(double))))) return lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  for (i = 0; i < n; i++) {
    double e = mean[i] - truth[i], u = lensviz_regress_level(truth[i], mean[i], sigma[i]);
    sum += e;
    sq += e * e;
    ssum += sigma[i];
    abs_err[i] = fabs(e);
    if (sigma[i] > 0) { zsq += (e / sigma[i]) * (e / sigma[i]); zn++; }
    c68 += u <= 0.68;
    c95 += u <= 0.95;
  }
  out->bias = sum / (double)n;
  out->rms = sqrt(sq / (double)n);
  out->scatter = n > 1 ? sqrt(fmax(0.0, sq - (double)n * out->bias * out->bias) / (double)(n - 1)) : NAN;
  out->median_abs = lensviz__quantile_of(abs_err, n, 0.5);
  out->mean_sigma = ssum / (double)n;
  out->z_rms = zn ? sqrt(zsq / (double)zn) : NAN;
  out->coverage68 = c68 / (double)n;
  out->coverage95 = c95 / (double)n;
  LENSVIZ_FREE(abs_err);
  return LENSNET_OK;
}

LENSVIZ_API double lensviz_regress_calibration(const double *truth, const double *mean, const double *sigma, size_t n) {
  double *z = LENSVIZ__CAST(double *, LENSVIZ_MALLOC((n ? n : 1) * sizeof(double))), q;
  size_t i, m = 0;
  if (!z) return NAN;
  for (i = 0; i < n; i++)
    if (sigma[i] > 0 && mean[i] - mean[i] == 0 && truth[i] - truth[i] == 0) z[m++] = fabs(mean[i] - truth[i]) / sigma[i];
  q = lensviz__quantile_of(z, m, 0.68);
  LENSVIZ_FREE(z);
  return q / LENSVIZ__Z68;
}

/* z of the central 95% interval of a Gaussian: Phi^-1(0.975) */
#define LENSVIZ__Z95 1.959963984540054

/* How many of the sorted v[0..n) are <= x. */
static size_t lensviz__count_le(const double *v, size_t n, double x) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

LENSVIZ_API double lensviz_regress_calibration_levels(const double *truth, const double *mean, const double *sigma, size_t n) {
  double *z = LENSVIZ__CAST(double *, LENSVIZ_MALLOC((n ? n : 1) * sizeof(double))), best = HUGE_VAL, s_best = NAN;
  size_t i, m = 0;
  int level;
  if (!z) return NAN;
  for (i = 0; i < n; i++)
    if (sigma[i] > 0 && mean[i] - mean[i] == 0 && truth[i] - truth[i] == 0) z[m++] = fabs(mean[i] - truth[i]) / sigma[i];
  qsort(z, m, sizeof *z, lensviz__by_double);
  /* the shares change only where an object enters an interval: s = z / 0.9945 or z / 1.96 */
  for (i = 0; i < m; i++)
    for (level = 0; level < 2; level++) {
      double s = z[i] / (level ? LENSVIZ__Z95 : LENSVIZ__Z68), tol = 1 + 1e-12, c68, c95, e;
      if (!(s > 0)) continue;
      c68 = (double)lensviz__count_le(z, m, LENSVIZ__Z68 * s * tol) / (double)m;
      c95 = (double)lensviz__count_le(z, m, LENSVIZ__Z95 * s * tol) / (double)m;
      e = (c68 - 0.68) * (c68 - 0.68) + (c95 - 0.95) * (c95 - 0.95);
      if (e < best * (1 - 1e-12) || (e <= best * (1 + 1e-12) && s < s_best)) { best = e; s_best = s; }
    }
  LENSVIZ_FREE(z);
  return s_best;
}

LENSVIZ_API lensnet_result lensviz_eval_positions(const double *true_x, const double *true_y, const double *x, const double *y, size_t n,
                                                  const double *radii, size_t radius_count, lensviz_position_result *out,
                                                  lensnet_error *err) {
  double *d, sq = 0;
  size_t i, k;
  memset(out, 0, sizeof *out);
  out->n = n;
  if (radius_count > LENSVIZ_EVAL_MAX_RADII)
    return lensviz__fail(err, LENSNET_ERR_ARG, "%lu radii; at most %d", (unsigned long)radius_count, LENSVIZ_EVAL_MAX_RADII);
  out->radius_count = radius_count;
  for (k = 0; k < radius_count; k++) out->radii[k] = radii[k];
  for (i = 0; i < n; i++) /* x - x is 0 for finite x */
    if (!(true_x[i] - true_x[i] == 0 && true_y[i] - true_y[i] == 0 && x[i] - x[i] == 0 && y[i] - y[i] == 0))
      return lensviz__fail(err, LENSNET_ERR_ARG, "object %lu: true (%g, %g), predicted (%g, %g) (finite values needed)", (unsigned long)i,
                           true_x[i], true_y[i], x[i], y[i]);
  if (!n) {
    out->median = out->p68 = out->p90 = out->rms = NAN;
    for (k = 0; k < radius_count; k++) out->within[k] = NAN;
    return LENSNET_OK;
  }
  if (!(d = LENSVIZ__CAST(double *, lensviz__alloc(n, sizeof(double))))) return lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  for (i = 0; i < n; i++) {
    d[i] = hypot(x[i] - true_x[i], y[i] - true_y[i]);
    sq += d[i] * d[i];
    for (k = 0; k < radius_count; k++) out->within[k] += d[i] <= radii[k];
  }
  for (k = 0; k < radius_count; k++) out->within[k] /= (double)n;
  out->rms = sqrt(sq / (double)n);
  qsort(d, n, sizeof *d, lensviz__by_double);
  out->median = lensviz__quantile(d, n, 0.5);
  out->p68 = lensviz__quantile(d, n, 0.68);
  out->p90 = lensviz__quantile(d, n, 0.9);
  LENSVIZ_FREE(d);
  return LENSNET_OK;
}

/* ---- files: GIF, PNG ----------------------------------------------------------------------- */

typedef struct { unsigned char *data; size_t len, cap; int failed; } lensviz__bytes;

static void lensviz__append(lensviz__bytes *b, const void *p, size_t n) {
  if (b->failed) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    unsigned char *d;
    while (cap < b->len + n) {
      if (cap > (size_t)-1 / 2) { b->failed = 1; return; }
      cap *= 2;
    }
    d = LENSVIZ__CAST(unsigned char *, LENSVIZ_MALLOC(cap));
    if (!d) { b->failed = 1; return; }
    if (b->len) memcpy(d, b->data, b->len);
    if (b->data) LENSVIZ_FREE(b->data);
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void lensviz__byte_out(lensviz__bytes *b, unsigned v) {
  unsigned char c = (unsigned char)v;
  lensviz__append(b, &c, 1);
}

static void lensviz__u16(lensviz__bytes *b, unsigned v) {
  lensviz__byte_out(b, v & 255);
  lensviz__byte_out(b, (v >> 8) & 255);
}

/* The fixed palette: a 6x6x6 colour cube (0..215) and 40 greys between its black and white. */
static void lensviz__palette_color(unsigned i, unsigned char rgb[3]) {
  if (i < 216) { rgb[0] = (unsigned char)(i / 36 * 51); rgb[1] = (unsigned char)(i / 6 % 6 * 51); rgb[2] = (unsigned char)(i % 6 * 51); }
  else rgb[0] = rgb[1] = rgb[2] = (unsigned char)((i - 215) * 255 / 41);
}

static unsigned lensviz__palette_index(const unsigned char *p) {
  unsigned r = (p[0] + 25u) / 51u, g = (p[1] + 25u) / 51u, b = (p[2] + 25u) / 51u, cube = r * 36 + g * 6 + b, grey;
  int mean = (p[0] + p[1] + p[2]) / 3, gi = (mean * 41 + 127) / 255, dc, dg, e;
  unsigned char c[3];
  if (gi < 1) gi = 1;
  if (gi > 40) gi = 40;
  grey = 215u + (unsigned)gi;
  lensviz__palette_color(cube, c);
  e = p[0] - c[0]; dc = e * e; e = p[1] - c[1]; dc += e * e; e = p[2] - c[2]; dc += e * e;
  lensviz__palette_color(grey, c);
  e = p[0] - c[0]; dg = e * e; e = p[1] - c[1]; dg += e * e; e = p[2] - c[2]; dg += e * e;
  return dg < dc ? grey : cube;
}

/* LZW codes packed least-significant bit first into data sub-blocks of up to 255 bytes. */
typedef struct {
  lensviz__bytes *out;
  unsigned char block[255];
  size_t block_len;
  unsigned long acc;
  int bits;
} lensviz__bitwriter;

static void lensviz__bits_byte(lensviz__bitwriter *w, unsigned char v) {
  w->block[w->block_len++] = v;
  if (w->block_len == 255) {
    lensviz__byte_out(w->out, 255);
    lensviz__append(w->out, w->block, 255);
    w->block_len = 0;
  }
}

static void lensviz__bits_code(lensviz__bitwriter *w, unsigned code, int size) {
  w->acc |= (unsigned long)code << w->bits;
  w->bits += size;
  while (w->bits >= 8) {
    lensviz__bits_byte(w, (unsigned char)(w->acc & 255));
    w->acc >>= 8;
    w->bits -= 8;
  }
}

static void lensviz__bits_finish(lensviz__bitwriter *w) {
  if (w->bits > 0) lensviz__bits_byte(w, (unsigned char)(w->acc & 255));
  if (w->block_len) {
    lensviz__byte_out(w->out, (unsigned)w->block_len);
    lensviz__append(w->out, w->block, w->block_len);
  }
  lensviz__byte_out(w->out, 0);
}

#define LENSVIZ__LZW_HASH 8191u

/* Compresses n palette indices with GIF's LZW (8-bit roots, codes of 9 to 12 bits). The
 * dictionary maps (prefix code, next index) to a code through an open-addressed hash table;
 * when all 4096 codes are taken a clear code starts a fresh dictionary. */
static int lensviz__lzw(lensviz__bytes *out, const unsigned char *idx, size_t n) {
  const unsigned clear = 256, end = 257;
  unsigned long *keys = LENSVIZ__CAST(unsigned long *, lensviz__alloc(LENSVIZ__LZW_HASH + 1, sizeof(unsigned long)));
  unsigned short *codes = LENSVIZ__CAST(unsigned short *, lensviz__alloc(LENSVIZ__LZW_HASH + 1, sizeof(unsigned short)));
  lensviz__bitwriter w;
  unsigned next = 258, prefix;
  int size = 9;
  size_t i;
  if (!keys || !codes) { lensviz_free(keys); lensviz_free(codes); return 0; }
  memset(&w, 0, sizeof w);
  w.out = out;
  memset(keys, 0, (LENSVIZ__LZW_HASH + 1) * sizeof(unsigned long));
  lensviz__byte_out(out, 8); /* minimum code size */
  lensviz__bits_code(&w, clear, size);
  prefix = n ? idx[0] : 0;
  for (i = 1; i < n; i++) {
    unsigned long key = ((unsigned long)prefix << 8 | idx[i]) + 1; /* 0 marks an empty slot */
    unsigned h = (unsigned)((key * 2654435761ul) >> 7) & LENSVIZ__LZW_HASH;
    while (keys[h] && keys[h] != key) h = (h + 1) & LENSVIZ__LZW_HASH;
    if (keys[h]) { prefix = codes[h]; continue; }
    lensviz__bits_code(&w, prefix, size);
    if (next < 4096) {
      keys[h] = key;
      codes[h] = (unsigned short)next++;
      /* the decoder's table runs one entry behind, so widen once code 2^size exists */
      if (next > (1u << size) && size < 12) size++;
    } else {
      lensviz__bits_code(&w, clear, size);
      memset(keys, 0, (LENSVIZ__LZW_HASH + 1) * sizeof(unsigned long));
      next = 258;
      size = 9;
    }
    prefix = idx[i];
  }
  if (n) lensviz__bits_code(&w, prefix, size);
  lensviz__bits_code(&w, end, size);
  lensviz__bits_finish(&w);
  lensviz_free(keys);
  lensviz_free(codes);
  return !out->failed;
}

LENSVIZ_API lensnet_result lensviz_gif_encode(const lensviz_image *frames, size_t count, int delay_cs, unsigned char **out,
                                              size_t *len, lensnet_error *err) {
  lensviz__bytes b;
  size_t f, W, H, x, y, pixels;
  unsigned i;
  unsigned char *idx;
  if (!out || !len) return lensviz__fail(err, LENSNET_ERR_ARG, "lensviz_gif_encode needs somewhere to put the bytes and their length");
  *out = NULL;
  *len = 0;
  if (!count) return lensviz__fail(err, LENSNET_ERR_ARG, "a GIF needs at least one frame");
  if (!frames) return lensviz__fail(err, LENSNET_ERR_ARG, "no frames given (NULL) for %lu", (unsigned long)count);
  for (f = 0; f < count; f++)
    if (!frames[f].rgb || (frames[f].stride && frames[f].stride < 3 * frames[f].width))
      return lensviz__fail(err, LENSNET_ERR_ARG, "GIF frame %lu %s", (unsigned long)f,
                           frames[f].rgb ? "has rows shorter than its width (stride < 3 x width)" : "has no pixels (NULL)");
  W = frames[0].width;
  H = frames[0].height;
  if (!W || !H || W > 65535 || H > 65535 || !lensviz__mul_ok(W, H, &pixels) || pixels > LENSVIZ_MAX_PIXELS)
    return lensviz__fail(err, LENSNET_ERR_TOO_LARGE, "a %lux%lu GIF frame is empty or too large", (unsigned long)W, (unsigned long)H);
  for (f = 1; f < count; f++)
    if (frames[f].width != W || frames[f].height != H)
      return lensviz__fail(err, LENSNET_ERR_SHAPE, "GIF frame %lu is %lux%lu but frame 0 is %lux%lu", (unsigned long)f,
                           (unsigned long)frames[f].width, (unsigned long)frames[f].height, (unsigned long)W, (unsigned long)H);
  if (!(idx = LENSVIZ__CAST(unsigned char *, lensviz__alloc(pixels, 1)))) return lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  memset(&b, 0, sizeof b);
  lensviz__append(&b, "GIF89a", 6);
  lensviz__u16(&b, (unsigned)W);
  lensviz__u16(&b, (unsigned)H);
  lensviz__byte_out(&b, 0xF7); /* global colour table of 256 entries, 8 bits per primary */
  lensviz__byte_out(&b, 0);
  lensviz__byte_out(&b, 0);
  for (i = 0; i < 256; i++) {
    unsigned char c[3];
    lensviz__palette_color(i, c);
    lensviz__append(&b, c, 3);
  }
  /* NETSCAPE2.0 application extension: loop forever */
  lensviz__append(&b, "\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00", 19);
  for (f = 0; f < count; f++) {
    size_t s = lensviz__stride(&frames[f]);
    for (y = 0; y < H; y++)
      for (x = 0; x < W; x++) idx[y * W + x] = (unsigned char)lensviz__palette_index(frames[f].rgb + y * s + x * 3);
    lensviz__append(&b, "\x21\xF9\x04\x04", 4); /* graphic control: keep the frame, no transparency */
    lensviz__u16(&b, (unsigned)(delay_cs < 0 ? 0 : delay_cs > 65535 ? 65535 : delay_cs));
    lensviz__byte_out(&b, 0);
    lensviz__byte_out(&b, 0);
    lensviz__byte_out(&b, 0x2C); /* image descriptor: the whole screen, no local table */
    lensviz__u16(&b, 0);
    lensviz__u16(&b, 0);
    lensviz__u16(&b, (unsigned)W);
    lensviz__u16(&b, (unsigned)H);
    lensviz__byte_out(&b, 0);
    if (!lensviz__lzw(&b, idx, pixels)) b.failed = 1;
  }
  lensviz__byte_out(&b, 0x3B);
  LENSVIZ_FREE(idx);
  if (b.failed) {
    lensviz_free(b.data);
    return lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory encoding a GIF");
  }
  *out = b.data;
  *len = b.len;
  return LENSNET_OK;
}

/* Writes path.tmp, then renames it to path. */
static lensnet_result lensviz__write_file(const char *path, const unsigned char *data, size_t len, lensnet_error *err) {
  size_t n = path ? strlen(path) : 0;
  char *tmp = path ? LENSVIZ__CAST(char *, LENSVIZ_MALLOC(n + 5)) : NULL;
  FILE *f;
  int ok;
  if (!path) return lensviz__fail(err, LENSNET_ERR_ARG, "no file name given (the path is NULL)");
  if (!tmp) return lensviz__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  memcpy(tmp, path, n);
  memcpy(tmp + n, ".tmp", 5);
  if (!(f = fopen(tmp, "wb"))) {
    int e = errno;
    LENSVIZ_FREE(tmp);
    return lensviz__fail(err, LENSNET_ERR_IO, "%.200s: cannot open for writing: %s", path, strerror(e));
  }
  errno = 0;
  ok = fwrite(data, 1, len, f) == len;
  ok = (fclose(f) == 0) && ok;
  if (ok && rename(tmp, path) != 0) {
    int e = errno;
    remove(tmp);
    LENSVIZ_FREE(tmp);
    return lensviz__fail(err, LENSNET_ERR_IO, "%.200s: cannot rename the finished file into place: %s", path, strerror(e));
  }
  if (!ok) {
    int e = errno;
    remove(tmp);
    LENSVIZ_FREE(tmp);
    return lensviz__fail(err, LENSNET_ERR_IO, "%.200s: write failed%s%s", path, e ? ": " : "", e ? strerror(e) : "");
  }
  LENSVIZ_FREE(tmp);
  return LENSNET_OK;
}

LENSVIZ_API lensnet_result lensviz_gif_write(const char *path, const lensviz_image *frames, size_t count, int delay_cs,
                                             lensnet_error *err) {
  unsigned char *data;
  size_t len;
  lensnet_result r = lensviz_gif_encode(frames, count, delay_cs, &data, &len, err);
  if (r != LENSNET_OK) return r;
  r = lensviz__write_file(path, data, len, err);
  lensviz_free(data);
  return r;
}

#ifndef LENSVIZ_NO_PNG
static void lensviz__png_sink(void *ctx, void *data, int size) {
  if (size > 0) lensviz__append(LENSVIZ__CAST(lensviz__bytes *, ctx), data, (size_t)size);
}

#ifdef LENSVIZ__STBIW_GUARDED
/* The encoder's output into *b; 0 if it failed, out of memory included (the escape above: what
 * the encoder held is freed here). Nothing of this frame changes between setjmp and longjmp. */
static int lensviz__png_encode(lensviz__bytes *b, const lensviz_image *img, size_t stride) {
  int ok;
  lensviz__stbiw.head.link.prev = lensviz__stbiw.head.link.next = &lensviz__stbiw.head;
  lensviz__stbiw.active = 1;
  if (setjmp(lensviz__stbiw.escape)) {
    while (lensviz__stbiw.head.link.next != &lensviz__stbiw.head) {
      lensviz__stbiw_block *k = lensviz__stbiw.head.link.next;
      lensviz__stbiw_unlink(k);
      free(k);
    }
    lensviz__stbiw.active = 0;
    b->failed = 1;
    return 0;
  }
  ok = stbi_write_png_to_func(lensviz__png_sink, b, (int)img->width, (int)img->height, 3, img->rgb, (int)stride);
  while (lensviz__stbiw.head.link.next != &lensviz__stbiw.head) lensviz__stbiw_unlink(lensviz__stbiw.head.link.next);
  lensviz__stbiw.active = 0;
  return ok;
}
#else
static int lensviz__png_encode(lensviz__bytes *b, const lensviz_image *img, size_t stride) {
  return stbi_write_png_to_func(lensviz__png_sink, b, (int)img->width, (int)img->height, 3, img->rgb, (int)stride);
}
#endif

LENSVIZ_API lensnet_result lensviz_png_write(const char *path, const lensviz_image *img, lensnet_error *err) {
  lensviz__bytes b;
  size_t pixels, stride;
  lensnet_result r;
  if (!path || !img || !img->rgb) return lensviz__fail(err, LENSNET_ERR_ARG, "lensviz_png_write needs a path and a picture with pixels (NULL given)");
  if (img->stride && img->stride < 3 * img->width)
    return lensviz__fail(err, LENSNET_ERR_ARG, "%.200s: the picture's rows (stride %lu bytes) are shorter than its %lu pixels of 3 bytes", path,
                         (unsigned long)img->stride, (unsigned long)img->width);
  stride = lensviz__stride(img);
  if (!img->width || !img->height || img->width > 0x7fffffff / 3 || img->height > 0x7fffffff ||
      !lensviz__mul_ok(img->width, img->height, &pixels) || pixels > LENSVIZ_MAX_PIXELS || stride > 0x7fffffff)
    return lensviz__fail(err, LENSNET_ERR_TOO_LARGE, "%.200s: a %lux%lu picture is empty or too large", path,
                         (unsigned long)img->width, (unsigned long)img->height);
  memset(&b, 0, sizeof b);
  if (!lensviz__png_encode(&b, img, stride) || b.failed) {
    lensviz_free(b.data);
    return lensviz__fail(err, LENSNET_ERR_NOMEM, "%.200s: PNG encoding failed (out of memory?)", path);
  }
  r = lensviz__write_file(path, b.data, b.len, err);
  lensviz_free(b.data);
  return r;
}
#else
LENSVIZ_API lensnet_result lensviz_png_write(const char *path, const lensviz_image *img, lensnet_error *err) {
  if (!path || !img || !img->rgb) return lensviz__fail(err, LENSNET_ERR_ARG, "lensviz_png_write needs a path and a picture with pixels (NULL given)");
  return lensviz__fail(err, LENSNET_ERR_UNSUPPORTED,
                       "%.120s: cannot write PNG: built without PNG support (LENSVIZ_NO_PNG, no stb_image_write.h); "
                       "rebuild with stb_image_write.h to write PNG", path);
}
#endif

LENSVIZ_API uint64_t lensviz_image_hash(const lensviz_image *img) {
  uint64_t h = 14695981039346656037ull;
  size_t y, x, s = lensviz__stride(img);
  for (y = 0; y < img->height; y++)
    for (x = 0; x < 3 * img->width; x++) {
      h ^= img->rgb[y * s + x];
      h *= 1099511628211ull;
    }
  return h;
}

#endif /* LENSVIZ_IMPLEMENTATION */

/*
----------------------------------------------------------------------------------------------
LICENCE (lensnet.h, lenssim.h and lensviz.h share it; it is the repository's LICENSE file)

MIT License

Copyright (c) 2026 The lens toolkit authors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
----------------------------------------------------------------------------------------------
*/
