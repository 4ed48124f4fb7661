/* lensnet.h - a CNN engine for finding strong gravitational lenses - v0.3.0 - MIT licence
 *
 * Runs and trains convolutional lens finders in plain C99: the released OU-66 / OU-200 finders
 * of Wilde et al. 2022 (MNRAS 512, 3464) load unmodified from safetensors and reproduce
 * PyTorch's logits. No dependencies beyond libc and libm; no threads of its own.
 *
 * BUILD
 *   In exactly one C or C++ file:
 *     #define LENSNET_IMPLEMENTATION
 *     #include "lensnet.h"
 *   elsewhere just #include "lensnet.h". Compile with -O2; link with -lm. No -march flag is
 *   needed: with GCC or Clang on x86 the SIMD GEMM kernels are chosen at run time (below).
 *
 * TEN LINES
 *     lensnet_model *m; lensnet_error err; lensnet_cutout_desc prep = {0}; size_t lens;
 *     float x[4 * 66 * 66], logits[16];              // the model's input; its outputs
 *     if (lensnet_model_load("weights/OU_66.safetensors", &m, &err) ||
 *         lensnet_model_class_index(m, "lens", &lens, &err)) { puts(err.message); return 1; }
 *     prep.minmax = 1;                               // the model's metadata says preprocess=minmax
 *     if (lensnet_cutout_prepare(m, &prep, image, 4, 66, 66, x, NULL, &err) ||   // NCHW float32
 *         lensnet_model_forward(m, 1, x, logits, NULL, &err)) { puts(err.message); return 1; }
 *     printf("p(lens) = %.3f\n", lensnet_lens_probability(logits, m->out_features, lens));
 *     lensnet_model_free(m);
 *
 * WHAT IS IN IT
 *   Tensors     dense float32, C order (NCHW for images), lensnet_tensor.
 *   Layers      conv2d (kernel, stride, padding, groups; PyTorch cross-correlation), dense,
 *               relu, leaky_relu, gelu (exact erf form), sigmoid, tanh, maxpool and avgpool
 *               (floor mode, padding; average counts padding like PyTorch), global_avgpool,
 *               dropout, flatten, batchnorm (also shared over the orientations of p4 maps),
 *               softmax, residual connections through mark/add and projected shortcuts through
 *               restore, and p4 group convolutions (Cohen & Welling 2016: p4_lift, p4_conv,
 *               p4_pool) for networks whose outputs do not change when the image is turned.
 *   Models      a sequence of layers written as text (below), built with lensnet_model_create;
 *               parameter names are PyTorch state_dict names, so weights move both ways.
 *               Built-ins "ou66(bands)" and "ou200(bands)" are the finders of Wilde et al.;
 *               "resnet18" and "resnet34" are torchvision's ResNets (a torchvision state_dict
 *               loads) and "p4cnn" a rotation-invariant classifier, at any input size
 *               (lensnet_arch_builtin_sized).
 *               lensnet_receptive_field says where each cell of a layer's output lies on the
 *               input (centre offset + i * stride, window size), from the kernels, strides,
 *               padding and pools below it: what maps of a layer are drawn with.
 *   Inference   lensnet_model_forward: dropout off, batch norm on running statistics; with no
 *               heap, lensnet_model_init_preallocated (MEMORY, below).
 *   Fitting     lensnet_fit (lensnet_fit_desc: data or a batch callback, validation split,
 *               optimiser, schedule, loss, augmentation, checkpoints) trains a model and writes
 *               checkpoint.safetensors, best.safetensors and history.csv atomically every
 *               epoch; lensnet_fit_resume continues an interrupted run to the same weights, bit
 *               for bit. lensnet_checkpoint_save/_load hold weights, optimiser moments and both
 *               random streams. lensnet_fit_settings is the one table of saved settings.
 *   Adapting    lensnet_adapt (lensnet_adapt_desc: labelled source images, unlabelled target
 *               images, method adda | adamatch | self-ensembling | adabn) adapts a classifier to another
 *               domain (Tzeng et al. 2017; Berthelot et al. 2021; French et al. 2018), with the
 *               same files, checkpoints and exact resume (lensnet_adapt_resume) as lensnet_fit;
 *               lensnet_adapt_settings is its table of saved settings; the section "Domain
 *               adaptation" below says what each method does.
 *   Training    lensnet_trainer (forward keeping activations, backward for every layer),
 *               losses (cross-entropy with class weights, BCE with pos_weight, focal, MSE,
 *               Gaussian NLL on mean + log-variance heads), optimisers (SGD with momentum,
 *               Nesterov and weight decay; Adam; AdamW), schedules (step, cosine, warm-up),
 *               gradient clipping, and a parallel-for hook the caller supplies.
 *               lensnet_trainer_backward takes d loss / d output, lensnet_trainer_backward_from
 *               d loss / d (any layer's output), e.g. a loss on the features below the classifier.
 *               lensnet_trainer_desc settings: input_grad (also d loss / d input, for
 *               saliency), skip_param_grads (input gradients only), capture (keep d loss /
 *               d output of one layer, for Grad-CAM), relu_backward (GUIDED for guided
 *               backprop). Layers that see one image at a time (all but dense and batch
 *               norm) run image by image, a whole run of them per task, so activations stay in
 *               cache and images spread over threads; d input of a stride-1 convolution is a
 *               convolution with flipped weights. Dropout keeps each value with probability
 *               1 - p to a resolution of 2^-16, from a stream per (step, layer, image).
 *   GEMM        lensnet_sgemm: blocked and packed, scalar always built, SSE/AVX2/AVX-512/NEON
 *               micro-kernels chosen from the CPU at run time; convolutions go through it
 *               (implicit GEMM; a ReLU and a 2x2 max pool after a wide one are applied on the
 *               way at inference). lensnet_model_pack packs a model's convolution weights once,
 *               for callers that run many one-image passes (lensnet_model_forward_packed);
 *               lensnet_model_pack_winograd also runs 3x3 and 5x5 layers as Winograd's F(2x2, 3x3)
 *               and F(2x2, 5x5) on AVX-512 (fewer products; equal to rounding, not bit for bit).
 *   int8        lensnet_quantize: convolutions and dense layers with int8 weights (one scale per
 *               output channel) and uint8 inputs calibrated on images, exact int32 sums
 *               (lensnet_i8gemm: scalar, AVX2, AVX-512 VNNI, NEON, the same bits on every path);
 *               quantised models save and load as safetensors (I8 weights) and run through
 *               lensnet_model_forward with float input and output. Float is the default.
 *   Files       .npy read (f4 f8 i1-i8 u1-u8, either byte order) and write (f4); safetensors
 *               read (F32, F16, BF16, F64, I64, I32, I8, U8) and write (F32, I8); FITS images read
 *               (BITPIX 8/16/32/64/-32/-64, BSCALE/BZERO, BLANK, extensions) and write (-32),
 *               header values and extra cards, the pixel scale (PIXSCALE, CD or CDELT), a
 *               simple TAN WCS (lensnet_fits_wcs, lensnet_wcs_pixel_to_world); a small JSON reader;
 *               CSV tables read (RFC 4180 quoting, lensnet_csv_read). Every file is validated
 *               fully when read; writers write a temporary file and rename it, so a reader
 *               never sees half a file.
 *   Cutouts     lensnet_resize_bilinear (PyTorch's bilinear, align_corners=False),
 *               lensnet_minmax_normalize (the paper's per-band min-max scaling).
 *   Recipes     lensnet_cutout_prepare (bands, size, min-max, NaN count), lensnet_model_preprocess
 *               (the scaling a model's metadata asks for), lensnet_model_class_index
 *               and lensnet_lens_probability, band names and pixel scale from the metadata, the
 *               streaming atomic lensnet_npy_writer, lensnet_csv_label_column and the CSV table
 *               reader lensnet_csv_read, scanning fields larger than the input
 *               (lensnet_scan_map: a p_lens map; lensnet_scan_detect: peaks and NMS;
 *               lensnet_scan_locate: positions from a locator network; lensnet_cutout_locate:
 *               the same for one cutout; lensnet_scan_verify: a second finder at the
 *               detections); the section
 *               "Recipes" below the declarations says more.
 *   Architecture text  one layer per line (or separated by ';'), options as key=value, '#'
 *               starts a comment (to the end of the line, ';' included):
 *                 input 4 66 66                      # channels height width, always first
 *                 conv2d name=layer.0 out=50 kernel=3 stride=1 padding=0 groups=1 bias=1
 *                 relu
 *                 maxpool kernel=2                   # stride defaults to the kernel, as in PyTorch
 *                 dropout p=0.2
 *                 batchnorm name=bn eps=1e-5 momentum=0.1
 *                 mark name=skip  ...  add name=skip # residual: add the activation saved at the mark
 *                 restore name=skip                  # continue from the activation saved at the mark
 *                 flatten
 *                 dense name=fc_layer.0 out=500
 *                 p4_lift name=lift out=8 kernel=5 stride=1 padding=2 bias=1   # -> 8 channels x 4 turns
 *                 p4_conv name=conv1 out=16 kernel=3 stride=1 padding=1 bias=1 # p4 map -> p4 map
 *                 batchnorm name=bn1 orientations=4  # statistics per channel over its 4 turns
 *                 p4_pool mode=max                   # max (or mean) over the 4 turns
 *               name= gives the parameter prefix: conv2d and dense own NAME.weight and NAME.bias,
 *               batchnorm NAME.weight, NAME.bias, NAME.running_mean, NAME.running_var. The text
 *               is saved as the safetensors metadata "arch", so a weights file describes itself;
 *               files whose "arch" is a built-in name ("ou66") take the band count from "bands"
 *               or from the first layer's weight, the outputs from fc.weight and the size from
 *               "input_size". Each layer kind is one row of the layer table (the section "the
 *               layer table" says how to add one).
 *               A shortcut with a projection (ResNet's downsample) keeps both ends at marks:
 *                 mark name=b  <main path>  mark name=b.main  restore name=b
 *                 conv2d name=b.downsample.0 out=128 kernel=1 stride=2 bias=0
 *                 batchnorm name=b.downsample.1  add name=b.main  relu
 *               restore's output is the activation saved at its mark (its shape too); the
 *               gradient reaching it goes to that mark, none to its input.
 *               p4 layers: a p4 map holds 4 planes per channel, plane c*4 + r for channel c
 *               turned r quarter turns (PyTorch's [N, C, 4, H, W] viewed as [N, 4C, H, W]).
 *               p4_lift stores NAME.weight [out, in, k, k], p4_conv NAME.weight [out, in, 4, k, k]
 *               (GrouPy's P4ConvP4 shape), each NAME.bias [out] shared by the 4 planes; both run
 *               as a convolution whose weight [4 out, in, k, k] is expanded from these on every
 *               pass, and their weight gradient is summed back onto the stored filters. Turning
 *               is rot(w)[i][j] = w[j][k-1-i] (np.rot90: counterclockwise as displayed with row 0
 *               on top); orientation r of p4_lift uses rot^r(W[c]), of p4_conv
 *               rot^r(W[c][i][(s - r) mod 4]) against input plane i*4 + s (PyTorch:
 *               torch.rot90(W.roll(r, 2), r, (3, 4))). So a quarter turn of the input turns each
 *               output plane and moves plane r to r + 1 mod 4, to rounding, when each strided
 *               layer's (size + 2 padding - kernel) is a multiple of its stride; after p4_pool
 *               and global_avgpool the outputs do not change at all (to rounding).
 *
 * ERRORS
 *   Functions return lensnet_result (lensnet_result_string never returns NULL) and take an
 *   optional lensnet_error* that receives a sentence naming the problem, e.g.
 *   "OU_66.safetensors: 'layer.4.weight' has shape 50x40x3x3 in the weights but the architecture
 *   needs 50x50x3x3". There is no global error state.
 *
 * CONFIGURATION (macros defined before the implementation is included)
 *   LENSNET_MALLOC / LENSNET_REALLOC / LENSNET_FREE   all three or none (default libc)
 *   LENSNET_STATIC            make every function static
 *   LENSNET_NO_SIMD           build only the scalar GEMM
 *   SIMD kernel choice (not a macro): with GCC 4.9+ or Clang 6+ on x86/x86-64 the SSE, AVX2+FMA
 *     and AVX-512 GEMM kernels are always compiled, each with a function target attribute, and
 *     the widest one the CPU runs is used; the CPU is asked once (__builtin_cpu_supports) and the
 *     answer cached in one word. So a build without -march runs on any x86-64 and is as fast as
 *     a -march=native one. Other compilers and architectures build the kernels their target
 *     macros allow (__AVX2__ && __FMA__, __AVX512F__, __ARM_NEON; AArch64 always has NEON).
 *     lensnet_simd_best() names the kernel lensnet_sgemm uses, lensnet_simd_available(s) says
 *     whether one can run, lensnet_sgemm_path(s, ...) runs one explicitly. The environment
 *     variable LENSNET_SIMD=scalar|sse|avx2|avx512|neon, read once, caps the choice (the widest
 *     available kernel no wider than the one named), e.g. to compare kernels from the lens tool.
 *     The int8 kernels of quantised models follow the same rules (target("avx512vnni") for
 *     AVX-512, which also needs the CPU's avx512vnni; no SSE int8 kernel: capped at sse, scalar);
 *     lensnet_i8_simd_best() names the one used.
 *   LENSNET_MAX_ELEMENTS      largest tensor a reader allocates (default 2^32 elements; with a
 *                             32-bit size_t, SIZE_MAX / 4)
 *   LENSNET_JSON_MAX_DEPTH    JSON nesting limit (default 64)
 *   LENSNET_GRADIENT_SLOT_FLOATS  most floats a trainer spends on per-image convolution weight
 *                             gradients (default 2^27, 512 MB); see THREADS
 *
 * MEMORY
 *   lensnet_model_forward takes a caller workspace of lensnet_model_workspace_floats(m, batch)
 *   floats (or NULL to allocate one per call), so inference after loading allocates nothing.
 *   Sizes are size_t and every product is overflow-checked before allocating.
 *   With no heap at all (microcontrollers; docs/embedded.md), in the manner of miniaudio's
 *   get_heap_size / init_preallocated:
 *     lensnet_model_heap_size(arch, &bytes, &err)    bytes of the model's block; the same as
 *         LENSNET_MODEL_HEAP_BYTES(layers, params), a constant expression for static blocks
 *     lensnet_model_init_preallocated(arch, values, value_count, block, bytes, &m, &err)
 *         builds the model inside `block` (aligned to LENSNET_HEAP_ALIGN) with no LENSNET_MALLOC,
 *         reading the parameters in place from the caller's const float array (in flash), in
 *         lensnet_model.values order; `lens export-c` writes that array, the architecture text
 *         and the sizes as C source. arch and values must outlive the model.
 *   then lensnet_model_forward(m, batch, x, y, workspace, &err) with a caller workspace. A block
 *   too small is LENSNET_ERR_NOMEM saying so, never a write past it. lensnet_model_free
 *   on such a model frees neither the block nor the values (they are the caller's).
 *
 * THREADS
 *   The library creates no threads. A loaded model is read-only during inference, so threads
 *   may share it, each with its own workspace. An image's outputs are the same, bit for bit,
 *   whatever batch it is computed in (so `lens predict --threads` cannot change a score). lensnet_trainer splits convolutions by image and
 *   runs them through the lensnet_parallel you pass (the lens tool passes a pthread pool); the
 *   per-image weight gradients are summed in image order, so results are bit-identical for any
 *   number of threads. Large models (ResNets) whose per-image gradients would exceed
 *   LENSNET_GRADIENT_SLOT_FLOATS share fewer slots, image b in slot b % slots in image order:
 *   still bit-identical for any thread count; a backward pass then runs at most `slots` images
 *   at once. Random numbers come from explicit lensnet_rng states (xoshiro256**), never rand();
 *   the same seed gives the same training run on the same build. Scalar and SIMD GEMM paths
 *   agree to rounding (tests/test_gemm.c states the bound), not bit for bit.
 *
 * LIMITS
 *   float32, or int8 convolutions and dense layers in a quantised model (activations between
 *   layers stay float32; no requantisation, no int8 for preallocated models); 2-D convolutions with square kernels; group convolutions for p4 (quarter
 *   turns) only, not p4m (turns and mirrors); no dilation, transposed convolution,
 *   recurrent or attention layers; no ONNX import; of FITS tile compression, HCOMPRESS_1 and
 *   PLIO_1 are refused (run funpack first), and FITS tables are not images; pixels become
 *   float32, so integers beyond 2^24 lose precision.
 *
 * LICENCE
 *   MIT, the same text in lensnet.h, lenssim.h, lensviz.h and LICENSE (at the end of this file).
 */
#ifndef LENSNET_H
#define LENSNET_H

/* The toolkit's version, shared by lensnet.h, lenssim.h and lensviz.h (semantic versioning). */
#define LENSNET_VERSION_MAJOR 0
#define LENSNET_VERSION_MINOR 3
#define LENSNET_VERSION_PATCH 0
#define LENSNET_VERSION_STRING "0.3.0"

#include <stddef.h>
#include <stdint.h>

#ifndef LENSNET_API
#ifdef LENSNET_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define LENSNET_API static __attribute__((unused)) /* a program uses only some of them */
#else
#define LENSNET_API static
#endif
#else
#define LENSNET_API extern
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Results and errors
 * ------------------------------------------------------------------------------------------- */
#define LENSNET_RESULTS(X) \
  X(LENSNET_OK,              "ok") \
  X(LENSNET_ERR_NOMEM,       "out of memory") \
  X(LENSNET_ERR_IO,          "file could not be opened, read or written") \
  X(LENSNET_ERR_FORMAT,      "malformed file or text") \
  X(LENSNET_ERR_UNSUPPORTED, "valid but unsupported feature") \
  X(LENSNET_ERR_SHAPE,       "tensor shapes do not match") \
  X(LENSNET_ERR_ARG,         "invalid argument") \
  X(LENSNET_ERR_ARCH,        "invalid architecture description") \
  X(LENSNET_ERR_WEIGHTS,     "weights missing, extra or of the wrong shape") \
  X(LENSNET_ERR_TOO_LARGE,   "size exceeds the configured limits") \
  X(LENSNET_ERR_DIVERGED,    "training diverged (the loss became NaN)")

typedef enum {
#define LENSNET__ENUM(name, text) name,
  LENSNET_RESULTS(LENSNET__ENUM)
#undef LENSNET__ENUM
  LENSNET_RESULT_COUNT
} lensnet_result;

/* Never returns NULL. */
LENSNET_API const char *lensnet_result_string(lensnet_result r);

/* Detail for a failed call. Every function that can fail on user input takes an optional
 * `lensnet_error *` (NULL is allowed) and writes a sentence naming the problem into it. */
typedef struct {
  lensnet_result result;
  char message[320];
} lensnet_error;

/* ---------------------------------------------------------------------------------------------
 * Tensors: dense float32, C order (NCHW for images)
 * ------------------------------------------------------------------------------------------- */
#define LENSNET_MAX_DIMS 8

typedef struct {
  int ndim;
  size_t shape[LENSNET_MAX_DIMS];
  float *data; /* owned by the tensor when created by lensnet_tensor_* or a reader */
} lensnet_tensor;

/* Number of elements; 0 on overflow (which the allocating functions report as TOO_LARGE). */
LENSNET_API size_t lensnet_tensor_count(const lensnet_tensor *t);
/* Allocates zeroed data for the given shape. */
LENSNET_API lensnet_result lensnet_tensor_alloc(lensnet_tensor *t, int ndim, const size_t *shape, lensnet_error *err);
LENSNET_API void lensnet_tensor_free(lensnet_tensor *t);

/* ---------------------------------------------------------------------------------------------
 * JSON (a small DOM reader, used for safetensors headers and by the tools for scene files)
 * ------------------------------------------------------------------------------------------- */
typedef enum {
  LENSNET_JSON_NULL, LENSNET_JSON_BOOL, LENSNET_JSON_NUMBER,
  LENSNET_JSON_STRING, LENSNET_JSON_ARRAY, LENSNET_JSON_OBJECT
} lensnet_json_type;

typedef struct lensnet_json {
  lensnet_json_type type;
  char *key;                   /* member name when this value sits in an object, else NULL */
  double number;               /* NUMBER; BOOL is 0 or 1 */
  char *string;                /* STRING: decoded UTF-8, NUL-terminated (may hold \u0000 as NUL) */
  size_t string_len;
  size_t count;                /* ARRAY, OBJECT: number of items */
  struct lensnet_json *items;  /* ARRAY, OBJECT: the items, in document order */
} lensnet_json;

/* Parses `len` bytes of JSON text. Depth is limited to LENSNET_JSON_MAX_DEPTH. On success *out
 * is a tree freed with lensnet_json_free. */
LENSNET_API lensnet_result lensnet_json_parse(const char *text, size_t len, lensnet_json **out, lensnet_error *err);
LENSNET_API void lensnet_json_free(lensnet_json *v);
/* Member `key` of an object, or NULL (also NULL if obj is not an object). */
LENSNET_API const lensnet_json *lensnet_json_get(const lensnet_json *obj, const char *key);

/* ---------------------------------------------------------------------------------------------
 * NumPy .npy: read f4, f8, i1/i2/i4/i8, u1/u2/u4/u8 in either byte order (C order), converted to
 * float32; write little-endian f4.
 * ------------------------------------------------------------------------------------------- */
LENSNET_API lensnet_result lensnet_npy_read(const char *path, lensnet_tensor *out, lensnet_error *err);
LENSNET_API lensnet_result lensnet_npy_read_memory(const void *bytes, size_t len, lensnet_tensor *out, lensnet_error *err);
/* What a .npy header says, read without the data: shape, element type, where the data begins.
 * The file must be long enough to hold all the data. */
typedef struct {
  int ndim;
  size_t shape[LENSNET_MAX_DIMS];
  char kind;              /* 'f', 'i' or 'u' */
  int item_size;          /* bytes per element */
  int big_endian;
  size_t data_offset;     /* bytes from the start of the file */
} lensnet_npy_info;
LENSNET_API lensnet_result lensnet_npy_info_read(const char *path, lensnet_npy_info *info, lensnet_error *err);
/* Rows [first, first + count) along the first axis, as float32 [count, shape[1], ...]: a slice of
 * a large stack read without the rest of it (sharded surveys, inputs streamed a batch at a time). */
LENSNET_API lensnet_result lensnet_npy_read_rows(const char *path, size_t first, size_t count, lensnet_tensor *out, lensnet_error *err);
/* Written to `path.tmp` and renamed, so a reader never sees half a file. */
LENSNET_API lensnet_result lensnet_npy_write(const char *path, const lensnet_tensor *t, lensnet_error *err);

/* ---------------------------------------------------------------------------------------------
 * safetensors: read F32 (F16, BF16, F64, I64, I32, I8, U8 are converted to float32), write F32
 * and I8 (quantised weights).
 * Tensor names follow PyTorch state_dict names; `__metadata__` is a string-to-string map.
 * ------------------------------------------------------------------------------------------- */
typedef struct {
  char *name;
  lensnet_tensor tensor;
  char dtype[8];                 /* the file's dtype when read ("F32", "I8", ...); written as I8 when
                                  * "I8" (the values must then be integers in -128..127), else F32 */
  int borrowed;                  /* the data is another's (the library's own writers point at a
                                  * model's values instead of copying them): not freed */
} lensnet_named_tensor;

typedef struct {
  size_t count;                  /* tensors, in file order */
  lensnet_named_tensor *tensors;
  size_t meta_count;             /* __metadata__ entries */
  char **meta_keys, **meta_values;
} lensnet_safetensors;

LENSNET_API lensnet_result lensnet_safetensors_read(const char *path, lensnet_safetensors *out, lensnet_error *err);
LENSNET_API lensnet_result lensnet_safetensors_read_memory(const void *bytes, size_t len, lensnet_safetensors *out, lensnet_error *err);
/* Writes the tensors (F32, or I8 where a tensor's dtype says "I8") and the metadata,
 * atomically (temporary file, then rename). */
LENSNET_API lensnet_result lensnet_safetensors_write(const char *path, const lensnet_safetensors *st, lensnet_error *err);
LENSNET_API void lensnet_safetensors_free(lensnet_safetensors *st);
LENSNET_API const lensnet_tensor *lensnet_safetensors_find(const lensnet_safetensors *st, const char *name);
/* The metadata value for key, or NULL. */
LENSNET_API const char *lensnet_safetensors_meta(const lensnet_safetensors *st, const char *key);
/* Adds (copies) a metadata entry, replacing an existing one with the same key; value NULL removes
 * the key. */
LENSNET_API lensnet_result lensnet_safetensors_set_meta(lensnet_safetensors *st, const char *key, const char *value);
/* Adds a copy of tensor t under name. */
LENSNET_API lensnet_result lensnet_safetensors_add(lensnet_safetensors *st, const char *name, const lensnet_tensor *t);


/* ---------------------------------------------------------------------------------------------
 * FITS images (read: primary HDU, IMAGE extensions and tile-compressed images; write: one float32
 * primary image)
 * ------------------------------------------------------------------------------------------- */
/* Reads the image of HDU `hdu` (0 = primary, 1 = first extension, ...; -1 = the first image HDU
 * that holds pixels, skipping tables and empty HDUs). The tensor's shape is NumPy order
 * (NAXISn, ..., NAXIS1); values are BZERO + BSCALE * stored as float32, BLANK pixels of integer
 * images become NaN and NaN in floating-point images stays NaN. BITPIX 8, 16, 32, 64, -32, -64.
 * Every header up to the HDU read is checked (card syntax, mandatory keywords in their order,
 * PCOUNT/GCOUNT, sizes against the file); an error names the HDU and card. Tile-compressed
 * images (FITS 4.0 section 10; fpack's .fits.fz) are read as the image they hold: RICE_1, GZIP_1,
 * GZIP_2 and NOCOMPRESS tiles of any shape, quantised floating-point images undone with their
 * ZSCALE/ZZERO and dither (NO_DITHER, SUBTRACTIVE_DITHER_1 and _2, ZDITHER0), ZBLANK pixels as
 * NaN, the GZIP_COMPRESSED_DATA and UNCOMPRESSED_DATA tiles a compressor falls back to; the
 * values are CFITSIO's bit for bit. Pan-STARRS1 stack images, whose header holds BSOFTEN and
 * BOFFSET, store an asinh of the flux: their values are returned linear, BOFFSET + 2 BSOFTEN
 * sinh(C / (2.5 log10 e)) of the value C after BSCALE/BZERO (CFITSIO and astropy return C).
 * A gzipped file (.fits.gz, one gzip member, under 4 GiB
 * inflated) is inflated first, by this and every lensnet_fits_* reader. Refused with a message:
 * HCOMPRESS_1 and PLIO_1 (decompress with funpack first), tables, random groups, NAXIS > 8, an
 * HDU without data (LENSNET_ERR_ARG). Errors of lensnet_fits_read start with the path. */
LENSNET_API lensnet_result lensnet_fits_read(const char *path, int hdu, lensnet_tensor *out, lensnet_error *err);
LENSNET_API lensnet_result lensnet_fits_read_memory(const void *bytes, size_t len, int hdu, lensnet_tensor *out, lensnet_error *err);
/* A FITS file's bytes as the _memory readers take them, for a caller that asks several things of
 * one file (the image, its WCS, its pixel scale, its planes' names: lens find): the file read
 * once, a .fits.gz inflated once (the _memory readers would inflate it again at each call). Free
 * *bytes with lensnet_free. */
LENSNET_API lensnet_result lensnet_fits_file_bytes(const char *path, unsigned char **bytes, size_t *len, lensnet_error *err);
/* Frees what a lensnet function allocated for the caller to free (lensnet_fits_file_bytes). */
LENSNET_API void lensnet_free(void *p);
/* Writes t (1 to 8 axes, NumPy order) as a BITPIX -32 primary image, big-endian, header and data
 * padded to 2880-byte blocks; through `path.tmp` and a rename, so a reader never sees half a file. */
LENSNET_API lensnet_result lensnet_fits_write(const char *path, const lensnet_tensor *t, lensnet_error *err);
/* An extra header card for lensnet_fits_write_cards. */
typedef struct {
  const char *key;      /* 1 to 8 characters of A-Z, 0-9, '-' and '_'; not a structural keyword
                           (SIMPLE, BITPIX, NAXIS, NAXISn, EXTEND, END, BSCALE, BZERO, BLANK) */
  const char *value;    /* as it reads in the card: a number ("0.3"), T or F, or a string in single
                           quotes ("'RA---TAN'"); printable ASCII, at most 68 characters */
  const char *comment;  /* NULL: none; cut to what fits in the card */
} lensnet_fits_card;
/* lensnet_fits_write with `count` extra cards after the structural ones, in order (numbers
 * right-justified in columns 11-30, strings from column 11, as FITS's fixed format writes
 * them). A bad key or value is LENSNET_ERR_ARG naming the card, and nothing is written.
 * lensnet_fits_write(path, t, err) is lensnet_fits_write_cards(path, t, NULL, 0, err). */
LENSNET_API lensnet_result lensnet_fits_write_cards(const char *path, const lensnet_tensor *t, const lensnet_fits_card *cards,
                                                    size_t count, lensnet_error *err);

/* A simple celestial WCS: the gnomonic (TAN) projection of Calabretta & Greisen 2002 (A&A 395,
 * 1077, "Representations of celestial coordinates in FITS", sections 2-5), with a linear
 * pixel-to-plane matrix and no distortion terms. */
typedef struct {
  double crpix[2];      /* reference pixel (CRPIX1, CRPIX2), FITS 1-based: pixel (0, 0) of an array is (1, 1) */
  double crval[2];      /* RA and Dec of the reference pixel (CRVAL1, CRVAL2), degrees */
  double cd[2][2];      /* degrees per pixel: CDi_j; or PCi_j times CDELTi; or CDELTi with CROTA2 */
} lensnet_wcs;
/* The WCS of HDU `hdu` (-1: as lensnet_fits_read). Accepted: CTYPE1 'RA---TAN' and CTYPE2
 * 'DEC--TAN', CRVAL1/2 and CRPIX1/2, then CDi_j, else PCi_j (default identity) with CDELT1/2
 * (CROTA2 when there is no PC), CUNIT1/2 deg when given, LONPOLE 180 when given. Anything else
 * (another projection, distortions such as -SIP, axes in another order, a missing keyword) is
 * LENSNET_ERR_ARG saying which, so callers can fall back to pixel positions. */
LENSNET_API lensnet_result lensnet_fits_wcs(const char *path, int hdu, lensnet_wcs *wcs, lensnet_error *err);
LENSNET_API lensnet_result lensnet_fits_wcs_memory(const void *bytes, size_t len, int hdu, lensnet_wcs *wcs, lensnet_error *err);
/* RA and Dec (degrees, RA in [0, 360)) of the array position (x, y): 0-based column and row,
 * pixel centres at integers, so FITS pixel (x + 1, y + 1). Intermediate world coordinates
 * (x', y') = CD (p - CRPIX); native spherical coordinates phi = arg(-y', x'), theta =
 * atan(180 / (pi R)) with R = sqrt(x'^2 + y'^2) (C&G 2002 section 5.1, zenithal projections, and
 * 5.1.3, TAN: R = (180 / pi) cot theta); celestial coordinates by the spherical rotation of
 * section 2.3 (eq. 2) with (alpha_p, delta_p) = CRVAL and phi_p = 180 deg (LONPOLE's default
 * for a zenithal projection, whose reference point is the native pole theta_0 = 90 deg). */
LENSNET_API void lensnet_wcs_pixel_to_world(const lensnet_wcs *wcs, double x, double y, double *ra, double *dec);
/* Sets *count to the number of HDUs (primary included), checking every header on the way. */
LENSNET_API lensnet_result lensnet_fits_hdu_count(const char *path, int *count, lensnet_error *err);
LENSNET_API lensnet_result lensnet_fits_hdu_count_memory(const void *bytes, size_t len, int *count, lensnet_error *err);
/* Copies the value of header keyword `key` of HDU `hdu` into value[cap] as text: a string
 * without its quotes and trailing blanks ('' read as ', CONTINUE cards joined), a number or
 * T/F as written, "" for a keyword without value. `key` is matched without regard to case; a
 * key longer than 8 characters or holding a blank names an ESO HIERARCH keyword, with or
 * without the HIERARCH prefix ("ESO DET CHIPS"). The first card with that keyword wins.
 * LENSNET_ERR_ARG when the HDU lacks the keyword or value[cap] is too small (the message says
 * how many bytes are needed). */
LENSNET_API lensnet_result lensnet_fits_header_value(const char *path, int hdu, const char *key, char *value, size_t cap, lensnet_error *err);
LENSNET_API lensnet_result lensnet_fits_header_value_memory(const void *bytes, size_t len, int hdu, const char *key,
                                                            char *value, size_t cap, lensnet_error *err);
/* Arcseconds per pixel along the image's x axis (NAXIS1) from the header of HDU `hdu` (-1: the
 * first image HDU that holds pixels, as lensnet_fits_read): PIXSCALE (arcsec), else the CD
 * matrix (sqrt(CD1_1^2 + CD2_1^2)), else |CDELT1|, both in CUNIT1 (deg when absent; arcmin
 * and arcsec also understood). *key names the keyword that said (a static string). LENSNET_ERR_ARG
 * when the header says none of them, or in a unit other than those. */
LENSNET_API lensnet_result lensnet_fits_pixel_scale(const char *path, int hdu, double *arcsec, const char **key, lensnet_error *err);
LENSNET_API lensnet_result lensnet_fits_pixel_scale_memory(const void *bytes, size_t len, int hdu, double *arcsec, const char **key,
                                                           lensnet_error *err);


/* ---------------------------------------------------------------------------------------------
 * GEMM and convolution kernels
 *
 * A packed, cache-blocked single-precision matrix product (the structure of Goto & van de Geijn
 * 2008 and BLIS) that every dense and convolution layer runs through. Paths:
 *   scalar   always built (the reference the others are tested against);
 *   SSE      on x86 (SSE2);
 *   AVX2     AVX2 + FMA;
 *   AVX-512  AVX-512F (run-time dispatch also asks for VL, BW and DQ: every AVX-512 CPU since Skylake-X);
 *   NEON     when the compiler targets NEON (__ARM_NEON: every AArch64 compiler, -mfpu=neon on ARMv7).
 * With GCC 4.9+ or Clang 6+ on x86 the three x86 paths are always built, each kernel compiled
 * for its own instruction set (function target attributes), whatever -march says; other
 * compilers build those their flags target (__SSE2__, __AVX2__ && __FMA__, __AVX512F__). Define
 * LENSNET_NO_SIMD to build only the scalar path. A built path is used only if the CPU also
 * reports it (asked once through __builtin_cpu_supports and kept in one cached word; elsewhere
 * the compiler flags are the promise); lensnet_sgemm takes the widest such path, capped by the
 * environment variable LENSNET_SIMD (scalar, sse, avx2, avx512, neon) when set. That cached
 * word is the only state; the user never manages it.
 *
 * Threads: never created; every function here is safe to call from several threads at once on
 * different outputs. Memory: lensnet_sgemm allocates its packing buffers (at most ~150 KB) once
 * per call through LENSNET_MALLOC; if that fails it still computes the product with a slower
 * unblocked loop, so it cannot fail. Products of one or two rows (dense layers at batch 1) are
 * computed directly without packing.
 *
 * Numbers: beta == 0 means C is only written (NaN or garbage in C does not propagate); alpha == 0
 * means A and B are not read. Each path sums over K in a fixed order, so results are
 * deterministic for a given path, build and shape; paths differ only by rounding (FMA or not),
 * within the classical bound gamma_(K+2) * sum|alpha a b| + |beta c| that the tests check.
 * ------------------------------------------------------------------------------------------- */
typedef enum {
  LENSNET_SIMD_SCALAR, LENSNET_SIMD_SSE, LENSNET_SIMD_AVX2, LENSNET_SIMD_AVX512, LENSNET_SIMD_NEON,
  LENSNET_SIMD_COUNT
} lensnet_simd;

/* The path lensnet_sgemm uses: the widest one built into this binary and supported by the CPU,
 * no wider than LENSNET_SIMD names when that environment variable is set. */
LENSNET_API lensnet_simd lensnet_simd_best(void);
/* Nonzero if path `s` is compiled in and the CPU runs it. */
LENSNET_API int lensnet_simd_available(lensnet_simd s);
/* "scalar", "sse", "avx2", "avx512", "neon"; "unknown" for anything else. */
LENSNET_API const char *lensnet_simd_name(lensnet_simd s);

/* C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, all row-major with leading dimensions
 * lda, ldb, ldc; op(X) is X^T when trans_x is nonzero (so A is stored K x M when trans_a is set,
 * B is N x K when trans_b is set). beta == 0 ignores C's old contents. C must not overlap A or B. */
LENSNET_API void lensnet_sgemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
                               const float *A, size_t lda, const float *B, size_t ldb,
                               float beta, float *C, size_t ldc);
/* The same through one chosen path (tests compare paths; an unavailable path falls back to scalar). */
LENSNET_API void lensnet_sgemm_path(lensnet_simd path, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                                    float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                                    float beta, float *C, size_t ldc);

/* The 8-bit product of quantised inference: C[m*ldc + n] = sum_k A[m*lda + k] * B[n*ldb + k],
 * A signed weights in [-127, 127], B unsigned activations in [0, 255], both K-contiguous, exact
 * in int32 (K < 2^16). Paths: scalar (the reference), AVX2 (_mm256_madd_epi16 on widened bytes),
 * AVX-512 VNNI (_mm512_dpbusd_epi32; the CPU must report avx512vnni and avx512bw), NEON
 * (widening vmlal_s16). Every path gives the same bits. There is no SSE int8 kernel. These
 * entry points pack A and B first (allocating); quantised layers keep their weights packed.
 * lensnet_i8_simd_best is the widest int8 path available and no wider than lensnet_simd_best()
 * (so LENSNET_SIMD caps it too); lensnet_i8gemm_path with an unavailable path runs scalar. */
LENSNET_API int lensnet_i8_simd_available(lensnet_simd s);
LENSNET_API lensnet_simd lensnet_i8_simd_best(void);
LENSNET_API void lensnet_i8gemm(size_t M, size_t N, size_t K, const int8_t *A, size_t lda, const uint8_t *B, size_t ldb,
                                int32_t *C, size_t ldc);
LENSNET_API void lensnet_i8gemm_path(lensnet_simd path, size_t M, size_t N, size_t K, const int8_t *A, size_t lda,
                                     const uint8_t *B, size_t ldb, int32_t *C, size_t ldc);


/* ---------------------------------------------------------------------------------------------
 * Random numbers: explicit state, the same stream on every platform (xoshiro256** seeded by
 * splitmix64; Blackman & Vigna 2018)
 * ------------------------------------------------------------------------------------------- */
typedef struct { uint64_t s[4]; } lensnet_rng;
LENSNET_API void lensnet_rng_seed(lensnet_rng *rng, uint64_t seed);
LENSNET_API uint64_t lensnet_rng_next(lensnet_rng *rng);
/* Uniform in [0, 1) with 24 random bits. */
LENSNET_API float lensnet_rng_uniform(lensnet_rng *rng);
/* Standard normal (Box-Muller, both values used in turn is not kept: one value per call). */
LENSNET_API float lensnet_rng_normal(lensnet_rng *rng);

/* ---------------------------------------------------------------------------------------------
 * Models: a sequence of layers described by text, with named parameters
 * ------------------------------------------------------------------------------------------- */
#define LENSNET_LAYER_TYPES(X) \
  X(LENSNET_LAYER_CONV2D,         "conv2d") \
  X(LENSNET_LAYER_DENSE,          "dense") \
  X(LENSNET_LAYER_RELU,           "relu") \
  X(LENSNET_LAYER_LEAKY_RELU,     "leaky_relu") \
  X(LENSNET_LAYER_GELU,           "gelu") \
  X(LENSNET_LAYER_SIGMOID,        "sigmoid") \
  X(LENSNET_LAYER_TANH,           "tanh") \
  X(LENSNET_LAYER_MAXPOOL,        "maxpool") \
  X(LENSNET_LAYER_AVGPOOL,        "avgpool") \
  X(LENSNET_LAYER_GLOBAL_AVGPOOL, "global_avgpool") \
  X(LENSNET_LAYER_DROPOUT,        "dropout") \
  X(LENSNET_LAYER_FLATTEN,        "flatten") \
  X(LENSNET_LAYER_BATCHNORM,      "batchnorm") \
  X(LENSNET_LAYER_SOFTMAX,        "softmax") \
  X(LENSNET_LAYER_MARK,           "mark") \
  X(LENSNET_LAYER_ADD,            "add") \
  X(LENSNET_LAYER_RESTORE,        "restore") \
  X(LENSNET_LAYER_P4_LIFT,        "p4_lift") \
  X(LENSNET_LAYER_P4_CONV,        "p4_conv") \
  X(LENSNET_LAYER_P4_POOL,        "p4_pool")

typedef enum {
#define LENSNET__LAYER_ENUM(name, text) name,
  LENSNET_LAYER_TYPES(LENSNET__LAYER_ENUM)
#undef LENSNET__LAYER_ENUM
  LENSNET_LAYER_TYPE_COUNT
} lensnet_layer_type;

LENSNET_API const char *lensnet_layer_type_name(lensnet_layer_type t);

enum { LENSNET_P4_POOL_MAX, LENSNET_P4_POOL_MEAN };

/* A rectangle of positions in a feature map, bounds inclusive; empty when y0 > y1 or x0 > x1. */
typedef struct { long y0, y1, x0, x1; } lensnet_rect;

/* One named parameter (or buffer, such as batch-norm running statistics) of a model. */
#define LENSNET_PARAM_MAX_DIMS 5 /* p4_conv's weight [out, in, 4, k, k] */
typedef struct {
  char name[96];          /* PyTorch state_dict name, e.g. "layer.0.weight" */
  int ndim;
  size_t shape[LENSNET_PARAM_MAX_DIMS];
  size_t offset, count;   /* where it lives in lensnet_model.values */
  int trainable;          /* 0 for running statistics */
} lensnet_param;

typedef struct {
  lensnet_layer_type type;
  char name[80];          /* parameter prefix (conv2d, dense, batchnorm, p4_*) or label (mark, add, restore) */
  size_t out;             /* conv2d: output channels; dense: output features; p4_lift, p4_conv: channels of 4 orientations */
  size_t kernel, stride, padding, groups;
  int bias;               /* conv2d, dense, p4_lift, p4_conv: 1 if the layer has a bias */
  float value;            /* dropout: p; leaky_relu: negative slope; batchnorm: eps */
  float momentum;         /* batchnorm: running-statistics momentum (PyTorch's convention) */
  size_t orientations;    /* batchnorm: consecutive planes that share one channel's statistics and parameters
                           * (4 after p4 layers); default 1 */
  int mode;               /* p4_pool: LENSNET_P4_POOL_MAX or LENSNET_P4_POOL_MEAN over the 4 orientations */
  /* Resolved when the model is built (per sample): */
  size_t in_c, in_h, in_w, out_c, out_h, out_w;
  int weight, bias_param, mean_param, var_param; /* indices into lensnet_model.params, -1 if none */
  int mark;               /* mark, add, restore: which saved activation */
} lensnet_layer;

/* A layer that runs in 8 bits (lensnet_quantize): x ~ input_scale * (q_x - input_zero_point) with
 * q_x in [0, 255]; w[o] ~ weight_scale[o] * q_w with q_w in [-127, 127]. */
typedef struct {
  int8_t *weight;              /* [out, in * k * k], NULL for a layer that runs in float */
  int8_t *packed;              /* [out, Kp]: the rows padded with zeros to Kp, a multiple of 4 */
  int16_t *packed16;           /* the same as int16 (the AVX2 and NEON kernels') */
  float *weight_scale;         /* [out] */
  int32_t *weight_sum;         /* [out]: sum_k q_w, for the zero point */
  float input_scale;
  int input_zero_point;        /* 0 when the calibration saw no negative input (after a ReLU), else 128 */
} lensnet_quant_layer;

typedef struct {
  char *arch;                  /* the architecture text the model was built from */
  size_t in_c, in_h, in_w;     /* input per sample */
  size_t out_features;         /* output per sample (out_c*out_h*out_w of the last layer) */
  size_t layer_count;
  lensnet_layer *layers;
  size_t param_count;
  lensnet_param *params;
  size_t value_count;
  float *values;               /* every parameter and buffer, contiguous */
  int mark_count;
  size_t meta_count;           /* metadata carried to and from safetensors */
  char **meta_keys, **meta_values;
  /* A model built by lensnet_model_init_preallocated: the unused rest of the caller's block
   * while it is built, and its end (NULL for a model on the heap). */
  unsigned char *prealloc_next, *prealloc_end;
  lensnet_quant_layer *quant;  /* one per layer for a quantised model (lensnet_quantize), else NULL */
} lensnet_model;

/* Architecture text of the built-ins: the lens finders of Wilde et al. 2022, "ou66" (input
 * bands x 66 x 66) and "ou200" (bands x 200 x 200); "ensai" (bands x 192 x 192), a lens
 * modelling network for regression; and, with an input size of the caller's choice, "resnet18"
 * and "resnet34" (ResNets in torchvision's layout and parameter names; 11,689,512 and 21,797,672
 * parameters with 3 bands and 1000 outputs) and "p4cnn" (a rotation-equivariant CNN of p4 group
 * convolutions). Returns 0 if name is unknown or cap too small, else the text length; a buffer
 * of LENSNET_ARCH_TEXT_MAX bytes holds any of them. lensnet_arch_builtin gives the finders' and
 * p4cnn's two outputs, ensai's 10 (the means and log-variances of theta_E, e1, e2, center_x,
 * center_y), the ResNets' 1000 (ImageNet's, so "resnet18(3)" is torchvision's resnet18); _head
 * any number of outputs; _sized also the input height x width of the built-ins whose size is free
 * (0: their default, 224 for the ResNets and 64 for p4cnn; width 0: the height) and ignored by
 * the finders and ensai, whose sizes are fixed. In architecture text and a weights file's "arch",
 * name(bands), name(bands,outputs) and name(bands,outputs,height,width) name them. */
#define LENSNET_ARCH_TEXT_MAX 16384
LENSNET_API size_t lensnet_arch_builtin(const char *name, int bands, char *buf, size_t cap);
LENSNET_API size_t lensnet_arch_builtin_head(const char *name, int bands, int outputs, char *buf, size_t cap);
LENSNET_API size_t lensnet_arch_builtin_sized(const char *name, int bands, int outputs, int height, int width, char *buf, size_t cap);

/* Builds a model from architecture text (see the manual) or a built-in name written "ou66(4)";
 * parameters start at zero. */
LENSNET_API lensnet_result lensnet_model_create(const char *arch, lensnet_model **out, lensnet_error *err);
LENSNET_API void lensnet_model_free(lensnet_model *m);
/* PyTorch's default initialisation (uniform in +-1/sqrt(fan_in) for weights and biases;
 * batch norm weight 1, bias 0, running mean 0, variance 1), from a seeded stream. */
LENSNET_API void lensnet_model_init(lensnet_model *m, uint64_t seed);
/* He et al. 2015's initialisation for ReLU networks: weights uniform in +-sqrt(6/fan_in) (variance
 * 2/fan_in, so activations keep their scale through each ReLU layer), biases 0, batch norm as
 * above. Deep plain stacks such as OU-66 (nine convolutions, no batch norm) can sit at chance for
 * thousands of steps from PyTorch's default, whose variance is a sixth of this. */
LENSNET_API void lensnet_model_init_he(lensnet_model *m, uint64_t seed);
/* Loads a safetensors file: the architecture comes from metadata "arch" (text, or a built-in
 * name with "bands"); every parameter must be present with its exact shape and finite values
 * (LENSNET_ERR_WEIGHTS naming the tensor otherwise). */
LENSNET_API lensnet_result lensnet_model_load(const char *path, lensnet_model **out, lensnet_error *err);
LENSNET_API lensnet_result lensnet_model_from_safetensors(const lensnet_safetensors *st, lensnet_model **out, lensnet_error *err);
/* Saves parameters and metadata (with the architecture text as "arch"), atomically. */
LENSNET_API lensnet_result lensnet_model_save(const lensnet_model *m, const char *path, lensnet_error *err);
LENSNET_API const lensnet_param *lensnet_model_param(const lensnet_model *m, const char *name);
/* Metadata value or NULL; set copies (value NULL removes the key). */
LENSNET_API const char *lensnet_model_meta(const lensnet_model *m, const char *key);
LENSNET_API lensnet_result lensnet_model_set_meta(lensnet_model *m, const char *key, const char *value);
/* Number of trainable parameter values. */
LENSNET_API size_t lensnet_model_parameter_count(const lensnet_model *m);

/* Preallocated models, for inference with no heap (microcontrollers; docs/embedded.md).
 * lensnet_model_init_preallocated builds the model inside the caller's block `heap` (aligned to
 * LENSNET_HEAP_ALIGN bytes) without calling LENSNET_MALLOC, and takes the parameters in place from
 * the caller's `values`: value_count floats, every parameter in architecture order (conv2d and
 * dense: weight, then bias; batchnorm: weight, bias, running_mean, running_var), which is the
 * order of lensnet_model.values and of `lens export-c`. Nothing is copied, so `values` may live
 * in flash; `arch` (architecture text, not a built-in name such as "ou66(4)": expand those with
 * lensnet_arch_builtin) is kept by pointer too. Both must outlive the model, and the model treats
 * `values` as read-only: run it with lensnet_model_forward / _forward_mc; lensnet_model_init
 * leaves it alone and lensnet_trainer_create and lensnet_quantize refuse it. The model has no metadata.
 * The block needs lensnet_model_heap_size(arch) bytes, which is
 * LENSNET_MODEL_HEAP_BYTES(layers, params) for the architecture's layer and parameter counts: a
 * constant expression, so a program can size a static block at compile time (`lens export-c`
 * writes it). A smaller block is LENSNET_ERR_NOMEM saying the block is too small (with the bytes
 * needed once the tables fit), a wrong value_count LENSNET_ERR_WEIGHTS, and nothing is written
 * outside the block.
 * lensnet_model_heap_size itself builds the description on the heap (LENSNET_MALLOC) and frees
 * it. With a caller workspace of lensnet_model_workspace_floats(m, batch) floats,
 * lensnet_model_forward then allocates nothing either. lensnet_model_free on such a model
 * releases only metadata added later with lensnet_model_set_meta, never the block or the
 * values (the caller owns them; dropping the block is enough). */
#define LENSNET_HEAP_ALIGN 8
#define LENSNET_HEAP_ROUND(n) (((size_t)(n) + (LENSNET_HEAP_ALIGN - 1)) & ~(size_t)(LENSNET_HEAP_ALIGN - 1))
#define LENSNET_MODEL_HEAP_BYTES(layers, params) \
  (LENSNET_HEAP_ROUND(sizeof(lensnet_model)) + LENSNET_HEAP_ROUND((size_t)(layers) * sizeof(lensnet_layer)) + \
   LENSNET_HEAP_ROUND((size_t)(params) * sizeof(lensnet_param)))
LENSNET_API lensnet_result lensnet_model_heap_size(const char *arch, size_t *bytes, lensnet_error *err);
LENSNET_API lensnet_result lensnet_model_init_preallocated(const char *arch, const float *values, size_t value_count,
                                                           void *heap, size_t heap_bytes, lensnet_model **out,
                                                           lensnet_error *err);

/* Floats of workspace lensnet_model_forward needs for a batch (0 on overflow). */
LENSNET_API size_t lensnet_model_workspace_floats(const lensnet_model *m, size_t batch);
/* The same for a build of lensnet.h on another target (sizing a static buffer for firmware
 * compiled elsewhere, as lens export-c does): x86 = 0 for every CPU but x86 (ARM, RISC-V, ...)
 * and for LENSNET_NO_SIMD builds; x86 = 1 for x86 builds, which compile the AVX-512 Winograd path
 * and need its scratch too (called from a build without that path, x86 = 1 gives that build's
 * own figure). */
LENSNET_API size_t lensnet_model_workspace_floats_target(const lensnet_model *m, size_t batch, int x86);
/* Inference (dropout off, batch norm with running statistics): input [batch, in_c, in_h, in_w],
 * output [batch, out_features]. workspace: NULL (allocated inside) or
 * lensnet_model_workspace_floats(m, batch) floats, so embedded users can run with no allocation.
 * A model may be used by several threads at once, each with its own workspace. */
LENSNET_API lensnet_result lensnet_model_forward(const lensnet_model *m, size_t batch, const float *input,
                                                 float *output, float *workspace, lensnet_error *err);
/* lensnet_model_forward with dropout kept on: Monte Carlo dropout (Gal & Ghahramani 2016; for lens
 * modelling, Perreault Levasseur, Hezaveh & Wechsler 2017). Batch norm still uses its running
 * statistics. Image b of the batch draws each dropout layer's mask from (seed, layer, b), so a
 * pass is reproducible and independent of threads; N passes of one image are one call with the
 * image repeated N times. */
LENSNET_API lensnet_result lensnet_model_forward_mc(const lensnet_model *m, size_t batch, const float *input, float *output,
                                                    float *workspace, uint64_t seed, lensnet_error *err);
/* Convolution weights packed once into the GEMM's panels, for callers that run many forward
 * passes of a few images each (lens predict runs one image at a time, so that its activations stay
 * in cache): lensnet_model_forward packs every convolution's weights on each call, which costs a
 * few per cent of a one-image pass. lensnet_model_pack makes a snapshot of m's current weights for
 * this CPU's GEMM path; lensnet_model_forward_packed is lensnet_model_forward with those panels
 * (the same results, bit for bit). The snapshot does not follow later changes of m's values:
 * after changing them (training, lensnet_model_init, writing values), pack again. pk must come
 * from m (LENSNET_ERR_ARG otherwise: another model, or one whose layers or parameter count differ
 * from those packed) and must not outlive it: free pk before or with m. Several threads may share
 * one pk. Layers other than plain float conv2d are run as lensnet_model_forward runs them. */
typedef struct lensnet_packed lensnet_packed;
LENSNET_API lensnet_result lensnet_model_pack(const lensnet_model *m, lensnet_packed **out, lensnet_error *err);
LENSNET_API void lensnet_packed_free(lensnet_packed *pk);
LENSNET_API lensnet_result lensnet_model_forward_packed(const lensnet_model *m, const lensnet_packed *pk, size_t batch, const float *input,
                                                        float *output, float *workspace, lensnet_error *err);
/* lensnet_model_pack, and where the AVX-512 path runs, every float 3 x 3 or 5 x 5 stride-1
 * convolution without groups and with at least 8 input channels by Winograd's F(2x2, 3x3) or
 * F(2x2, 5x5) (Lavin & Gray 2016): 2.25 or 2.8 times fewer products (a ReLU and 2 x 2 max pool
 * that inference applies on the way are applied in its output transform). Its outputs differ
 * from lensnet_model_forward's by rounding, not bit for bit (the released finders' logits by up
 * to 3e-6; the transforms add and subtract neighbouring pixels before the products). A NaN or
 * infinity in a layer's input makes whole 2 x 2 blocks of its output NaN, not only the outputs
 * whose window holds it (lens predict sets such pixels to 0 first), and values near FLT_MAX can
 * overflow in the transforms. Elsewhere the same as lensnet_model_pack. lens predict uses it
 * unless given --exact. */
LENSNET_API lensnet_result lensnet_model_pack_winograd(const lensnet_model *m, lensnet_packed **out, lensnet_error *err);

/* int8 inference (Jacob et al. 2018, CVPR, integer-arithmetic-only inference; the section
 * "int8 inference" in the implementation says how). lensnet_quantize runs the float model m on
 * n calibration images [n, in_c, in_h, in_w] (prepared as for inference), records the largest
 * |x| reaching each conv2d (without groups) and dense layer, and returns a new model *out whose
 * such layers run in 8 bits: weights int8 symmetric per output channel (max |w| / 127), the
 * layer's input uint8 with one scale: zero point 0 and scale max / 255 when no calibration input
 * was negative (images scaled to [0, 1], anything after a ReLU), else zero point 128 and scale
 * max |x| / 127; values beyond the calibrated range clip. Sums are exact in int32, each output
 * dequantised to float at once. The rest of the network (activations, pooling, batch norm,
 * dropout) stays float, so input and logits are float and lensnet_model_forward / _forward_mc
 * run it like any model. The first such layer, which reads the image, stays float unless
 * desc->quantize_first: 256 levels of a min-max scaled cutout drown faint arcs under a bright
 * deflector, and on OU-66 that one layer made half the int8 error (docs/performance.md, "int8").
 * The range kept is the maximum by default (a percentile on request): the finders' decisive
 * features are the few largest activations, and clipping even the top 0.1 % of them moved
 * p_lens by up to 0.8 on OU-66. Metadata quantized=int8 and calibration=description (default
 * "N images") are set. lensnet_model_save writes int8 weights as I8 tensors with
 * NAME.weight_scale [out], NAME.input_scale [1] and NAME.input_zero_point [1] (F32) beside them;
 * lensnet_model_load of such a file gives the same model, bit for bit. The float weights of the quantised model (m->values) are the
 * dequantised ones, which trainers and lensnet_layer_forward_rect use; a preallocated model
 * cannot be quantised (and `lens export-c` refuses quantised files). */
typedef struct {
  size_t batch;                /* images per calibration pass; 0: 16 */
  double percentile;           /* range kept of each layer's |input|: this percentile over the
                                * calibration images (0: 100, the maximum) */
  int quantize_first;          /* 1: the first conv2d / dense layer (the one reading the image) runs
                                * in 8 bits too; 0 (default): it stays float */
  const char *description;     /* stored as metadata "calibration"; NULL: "N images" */
} lensnet_quantize_desc;
LENSNET_API lensnet_result lensnet_quantize(const lensnet_model *m, const float *images, size_t n,
                                            const lensnet_quantize_desc *desc, lensnet_model **out, lensnet_error *err);
/* Nonzero when some layer of m runs in int8. */
LENSNET_API int lensnet_model_is_quantized(const lensnet_model *m);

/* A layer's options as text ("layer.0 out=50 kernel=3 stride=1 padding=0 groups=1"), as `lens
 * info` prints them; "" for layers without options. Returns buf. */
LENSNET_API const char *lensnet_layer_describe(const lensnet_layer *L, char *buf, size_t cap);
/* Parts of feature maps (occlusion recomputes only what a patch reaches):
 * lensnet_layer_local: whether lensnet_layer_forward_rect can compute L's outputs in a rectangle
 * from its input alone (convolutions, pools, element-wise layers).
 * lensnet_layer_output_rect: the outputs of L that depend on the inputs in r, clipped to the
 * output (r itself for element-wise layers, the whole output for layers that mix positions).
 * lensnet_layer_forward_rect: L's outputs inside r, every channel, of one image (in: [in_c,
 * in_h, in_w], out: [out_c, out_h, out_w], only r written), with the arithmetic of
 * lensnet_model_forward, except that a convolution sums its taps in the order channel, row,
 * column and then adds the bias (the forward pass's GEMM may round differently). */
LENSNET_API int lensnet_layer_local(const lensnet_layer *L);
LENSNET_API lensnet_rect lensnet_layer_output_rect(const lensnet_layer *L, lensnet_rect r);
LENSNET_API void lensnet_layer_forward_rect(const lensnet_model *m, const lensnet_layer *L, const float *in, float *out, lensnet_rect r);

/* Where the cells of a map lie on the image it explains: cell (i, j) (row i, column j) is centred
 * on input pixel (offset + i * stride, offset + j * stride), pixel k spanning k - 0.5 .. k + 0.5
 * (so the image's centre is ((image_h - 1) / 2, (image_w - 1) / 2)), and stands for the
 * size x size input pixels around that centre. A layer's output has one such grid for all its
 * channels (lensnet_receptive_field: size is the receptive field of one unit); an occlusion map
 * has one too (lensviz_occlusion_grid: size is the patch). Drawn on the image, each cell is a
 * stride x stride block about its centre; the rows x cols blocks cover only part of the image
 * when the layers lose its border (unpadded convolutions, floor pooling). */
typedef struct {
  size_t rows, cols;          /* cells of the map */
  double offset;              /* input row (and column) of cell (0, 0)'s centre */
  double stride;              /* input pixels between neighbouring cells' centres */
  double size;                /* side of the input window one cell stands for (padding included) */
  size_t image_h, image_w;    /* the image the cells lie on (the model's input) */
} lensnet_map_geometry;

/* The geometry of layer `layer`'s output, from the layers 0..layer by the recurrence of receptive
 * fields: starting from (offset 0, stride 1, size 1) at the input, a convolution or pool of kernel
 * k, stride s and padding p makes offset += ((k - 1) / 2 - p) * stride, size += (k - 1) * stride,
 * stride *= s; element-wise layers (activations, dropout, batch norm, mark) keep it; an add keeps
 * it when its branches agree (size: the larger). LENSNET_ERR_ARG when the layer does not exist
 * or comes after a layer that mixes every position (flatten, dense, global_avgpool), whose
 * outputs have no place on the image; LENSNET_ERR_UNSUPPORTED for an add whose branches lay
 * their cells out differently. */
LENSNET_API lensnet_result lensnet_receptive_field(const lensnet_model *m, size_t layer, lensnet_map_geometry *g, lensnet_error *err);



/* ---------------------------------------------------------------------------------------------
 * Parallelism: the library never creates threads; callers hand in a parallel-for
 * ------------------------------------------------------------------------------------------- */
/* A task: do item `index` using per-worker scratch number `worker` (0 <= worker < workers). */
typedef void (*lensnet_task_fn)(void *ctx, size_t index, size_t worker);
typedef struct {
  /* Calls task(ctx, i, worker) once for every i in [0, count) and returns when all are done.
   * NULL runs the items in order on the calling thread. */
  void (*run)(void *user, size_t count, lensnet_task_fn task, void *ctx);
  void *user;
  size_t workers; /* how many tasks may run at once (sizes per-worker scratch); 0 means 1 */
} lensnet_parallel;

/* ---------------------------------------------------------------------------------------------
 * Training: forward with stored activations, backward passes, losses, optimisers
 * ------------------------------------------------------------------------------------------- */
typedef enum { LENSNET_RELU_BACKWARD_NORMAL, LENSNET_RELU_BACKWARD_GUIDED } lensnet_relu_backward;

/* A trainer: every buffer one forward and backward pass needs, for batches up to a capacity.
 * Opaque; what callers need goes through the functions below (parameter gradients through
 * lensnet_trainer_grads, the dropout stream through lensnet_trainer_rng). */
typedef struct lensnet_trainer lensnet_trainer;

/* How a trainer is built. Zero means default for every field. */
typedef struct {
  size_t batch_cap;                    /* most images per forward/backward pass; default 32 */
  const lensnet_parallel *parallel;    /* parallel-for (copied); default NULL: serial, on the calling thread */
  uint64_t seed;                       /* seed of the dropout stream; default 0 (itself a seed) */
  int input_grad;                      /* nonzero: backward also leaves d loss / d input in lensnet_trainer_input_grad
                                        * (saliency needs it, training does not); default 0 */
  int skip_param_grads;                /* nonzero: backward leaves the parameter gradients alone (maps, dreams); default 0 */
  int capture;                         /* nonzero: backward keeps d loss / d (output of layer capture_layer) in
                                        * lensnet_trainer_captured_grad (Grad-CAM); default 0 */
  size_t capture_layer;                /* default 0 (used only with capture) */
  lensnet_relu_backward relu_backward; /* GUIDED clamps negative gradients at every ReLU (Springenberg et al. 2015);
                                        * default NORMAL */
  int no_dropout;                      /* nonzero: dropout layers pass their input unchanged in training mode too
                                        * (batch norm still uses the batch's statistics); ADDA's target
                                        * encoder; default 0 */
  int lean_activations;                /* nonzero: a ReLU right after a convolution or dense layer, and a dropout
                                        * right after one of those or a ReLU, write over their input, and the
                                        * convolution computes its ReLU on the way; a 2x2 max pool after a ReLU
                                        * keeps each window's winner (a byte) so that its backward and the ReLU's
                                        * read neither layer's input, and a convolution at least 64 wide before
                                        * them pools a band of rows at a time, its output never stored; a
                                        * dropout after such a pool (convolution, ReLU, pool) writes over the
                                        * pool's output. No pass needs what is skipped: the results are the same
                                        * bit for bit, and `lens train` on OU-66 peaks at 73 MB instead of 184.
                                        * But lensnet_trainer_activation of a layer written over gives the later
                                        * layer's output, and of one never stored, nothing meaningful, and
                                        * lensnet_trainer_backward_from refuses to start at such a ReLU or pool. Ignored
                                        * with capture. lensnet_fit sets it; default 0 */
  int winograd;                        /* nonzero, on a CPU with AVX-512: every float 3 x 3 or 5 x 5 stride-1
                                        * convolution without groups with 8 or more input channels computes its
                                        * forward (where it is not pooled on the way) and its input gradient
                                        * by Winograd's F(4x4, 3x3) (a 3 x 3 layer with at least 16 tiles of
                                        * 4 x 4 outputs; F(2x2, 3x3) below that) or F(2x2, 5x5): fewer
                                        * products (4 and 2.8 times fewer than direct sums), the same
                                        * results to rounding, not bit for bit (deterministic all the same: a
                                        * run resumes and repeats bit for bit). lensnet_fit sets it unless its
                                        * exact is set; default 0 */
} lensnet_trainer_desc;

/* The desc with its defaults filled in (desc may be NULL: all defaults). */
LENSNET_API lensnet_trainer_desc lensnet_trainer_desc_resolve(const lensnet_trainer_desc *desc);

/* Allocates everything a forward and backward pass of up to desc->batch_cap images needs
 * (desc may be NULL: all defaults). The model is trained in place and must outlive the trainer. */
LENSNET_API lensnet_result lensnet_trainer_create(lensnet_model *m, const lensnet_trainer_desc *desc, lensnet_trainer **out,
                                                  lensnet_error *err);
LENSNET_API void lensnet_trainer_free(lensnet_trainer *t);
/* Forward pass keeping activations. training: dropout active and batch norm on batch statistics
 * (running statistics updated as PyTorch does); 0 gives the inference result. Output
 * [batch, out_features] goes to `output` if not NULL and stays readable through
 * lensnet_trainer_output. */
LENSNET_API lensnet_result lensnet_trainer_forward(lensnet_trainer *t, size_t batch, const float *input, int training,
                                                   float *output, lensnet_error *err);
LENSNET_API const float *lensnet_trainer_output(const lensnet_trainer *t);
/* Output of layer i for the last forward pass (layout [batch, out_c, out_h, out_w]). */
LENSNET_API const float *lensnet_trainer_activation(const lensnet_trainer *t, size_t layer);
LENSNET_API void lensnet_trainer_zero_grad(lensnet_trainer *t);
/* Backward pass from d loss / d output [batch, out_features]: adds parameter gradients into
 * lensnet_trainer_grads (unless skip_param_grads) and, with input_grad, leaves d loss / d input
 * in lensnet_trainer_input_grad. */
LENSNET_API lensnet_result lensnet_trainer_backward(lensnet_trainer *t, size_t batch, const float *output_grad, lensnet_error *err);
/* Backward pass from d loss / d (output of layer `layer`) [batch, out_c, out_h, out_w], as if the
 * layers above it were not there: the same accumulation into lensnet_trainer_grads and
 * lensnet_trainer_input_grad, nothing for the parameters above `layer`. A loss on features
 * (the input of a model's last dense layer, for domain adaptation) trains the layers below
 * them; lensnet_trainer_backward is this with the last layer. LENSNET_ERR_ARG for a layer
 * that does not exist, and, in a lean trainer, for a ReLU whose output was written over or not
 * stored (its backward needs that output). */
LENSNET_API lensnet_result lensnet_trainer_backward_from(lensnet_trainer *t, size_t layer, size_t batch, const float *layer_grad,
                                                         lensnet_error *err);
/* d loss / d parameter in the layout of model->values (what lensnet_optimizer_step takes). */
LENSNET_API float *lensnet_trainer_grads(lensnet_trainer *t);
/* d loss / d input [batch, in_c, in_h, in_w] of the last backward pass; NULL without input_grad. */
LENSNET_API const float *lensnet_trainer_input_grad(const lensnet_trainer *t);
/* d loss / d (output of the captured layer) [batch, ...] of the last backward pass; NULL without capture. */
LENSNET_API const float *lensnet_trainer_captured_grad(const lensnet_trainer *t);
/* The model the trainer trains, and its settings (defaults resolved). */
LENSNET_API lensnet_model *lensnet_trainer_model(const lensnet_trainer *t);
LENSNET_API lensnet_trainer_desc lensnet_trainer_settings(const lensnet_trainer *t);
/* The dropout stream: read it to save a checkpoint, write it to restore one. */
LENSNET_API lensnet_rng *lensnet_trainer_rng(lensnet_trainer *t);

/* Losses: return the mean loss over the batch and write d loss / d logits into grad (if not
 * NULL). Class labels are integers stored as floats. The softmax losses take 1 to
 * LENSNET_MAX_CLASSES classes (more: NaN, grad untouched), and so do lensnet_fit and
 * lensnet_adapt. */
#define LENSNET_MAX_CLASSES 256
/* Softmax cross-entropy; class_weights (NULL = equal) give PyTorch's weighted mean. */
LENSNET_API float lensnet_loss_cross_entropy(const float *logits, const float *labels, size_t batch, size_t classes,
                                             const float *class_weights, float *grad);
/* Binary cross-entropy on logits [batch, k] with targets in [0,1]; pos_weight <= 0 means 1. */
LENSNET_API float lensnet_loss_bce_logits(const float *logits, const float *targets, size_t count, float pos_weight, float *grad);
/* Focal loss (Lin et al. 2017) on softmax logits: -alpha_y (1 - p_y)^gamma log p_y, mean over the
 * batch; class_weights play alpha (NULL = 1). */
LENSNET_API float lensnet_loss_focal(const float *logits, const float *labels, size_t batch, size_t classes, float gamma,
                                     const float *class_weights, float *grad);
/* Mean squared error over all values. */
LENSNET_API float lensnet_loss_mse(const float *pred, const float *targets, size_t count, float *grad);
/* Gaussian negative log-likelihood with a mean head and a log-variance head: outputs
 * [batch, 2k] = (mu_1..mu_k, log s^2_1..log s^2_k), targets [batch, k];
 * loss = mean of 0.5 (log s^2 + (y - mu)^2 / s^2) (the constant 0.5 log 2 pi left out, as PyTorch). */
LENSNET_API float lensnet_loss_gaussian_nll(const float *outputs, const float *targets, size_t batch, size_t k, float *grad);
/* The same with each term's gradient weighted by s^(2 beta), the weight held constant (beta-NLL,
 * Seitzer et al. 2022, ICLR), and here divided by its mean over the batch for each target, so that
 * the targets keep the weight they have in the NLL and only the objects are weighed anew: beta 0 is
 * the plain NLL; beta 1 gives each target's means the gradient of its squared error (scaled by one
 * factor per target), so the objects the network finds hard (large s) pull their means as much as
 * the easy ones, where the plain NLL lets them go. The log-variances still learn the spread. The
 * value returned is the plain NLL either way. */
LENSNET_API float lensnet_loss_gaussian_nll_beta(const float *outputs, const float *targets, size_t batch, size_t k, double beta,
                                                 float *grad);

typedef enum { LENSNET_OPT_SGD, LENSNET_OPT_ADAM, LENSNET_OPT_ADAMW } lensnet_optimizer_type;

/* Zero means default for every field (lr 1e-3, betas 0.9/0.999, eps 1e-8). */
typedef struct {
  lensnet_optimizer_type type;
  float lr, momentum, weight_decay, beta1, beta2, eps;
  int nesterov;
  float clip_norm;               /* > 0: clip the global gradient norm to this first */
  const lensnet_parallel *parallel; /* how the step's pieces run (NULL: on the calling thread;
                                  * copied at create); the same bits either way */
} lensnet_optimizer_desc;

typedef struct {
  lensnet_optimizer_desc desc;   /* defaults resolved */
  size_t count;                  /* values updated (the model's trainable values) */
  uint64_t step;
  float *m, *v;                  /* momentum / first moment, second moment (per model value) */
  size_t *pieces;                /* the step's pieces: [offset, count] pairs of at most 8192 values */
  double *piece_sq;              /* each piece's sum of squared gradients */
  size_t piece_cap;
  lensnet_parallel par;          /* desc.parallel's copy (zero: none) */
} lensnet_optimizer;

LENSNET_API lensnet_result lensnet_optimizer_create(const lensnet_optimizer_desc *desc, const lensnet_model *m,
                                                    lensnet_optimizer **out, lensnet_error *err);
LENSNET_API void lensnet_optimizer_free(lensnet_optimizer *o);
/* One update of the model's trainable parameters from grads (layout of model->values), with
 * learning rate lr (a schedule's value; <= 0 uses desc.lr). Returns the gradient norm before
 * clipping (summed in double, piece by piece: pieces of at most 8192 values of one parameter, in
 * order). */
LENSNET_API float lensnet_optimizer_step(lensnet_optimizer *o, lensnet_model *m, float *grads, float lr);
/* Global L2 norm of the trainable gradients, and in-place clipping to max_norm (PyTorch's
 * clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1). For callers with
 * their own update; lensnet_optimizer_step clips by its desc.clip_norm itself, summing the norm
 * piece by piece, so the two can differ in the last bits of the norm. */
LENSNET_API float lensnet_clip_grad_norm(const lensnet_model *m, float *grads, float max_norm);

typedef enum { LENSNET_SCHEDULE_CONSTANT, LENSNET_SCHEDULE_STEP, LENSNET_SCHEDULE_COSINE } lensnet_schedule_type;
typedef struct {
  lensnet_schedule_type type;
  size_t step_size;              /* STEP: multiply by gamma every step_size epochs */
  float gamma;
  size_t total;                  /* COSINE: epochs to anneal over, to min_lr */
  float min_lr;
  size_t warmup;                 /* linear warm-up over the first `warmup` epochs (from lr/warmup) */
} lensnet_schedule;
/* The learning rate for epoch e (0-based) from base_lr. */
LENSNET_API float lensnet_schedule_lr(const lensnet_schedule *s, float base_lr, size_t epoch);

/* ---------------------------------------------------------------------------------------------
 * Fitting: the training loop, with validation, checkpoints and exact resume (what `lens train`
 * runs). lensnet_fit trains a model on labelled images for some epochs; after each epoch it
 * validates on a held-out share, and, given out_dir, writes atomically
 *   checkpoint.safetensors  the weights, the optimiser's moments (optimizer.m.NAME,
 *                           optimizer.v.NAME) and, in the metadata, every setting (train.NAME),
 *                           the epoch, the optimiser step, both random streams, the best
 *                           validation loss and the history (train.history)
 *   best.safetensors        the weights with the lowest validation loss so far (the last ones
 *                           without validation)
 *   history.csv             epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds (a
 *                           regression run: train_rms, val_rms for the accuracies)
 * Each file's metadata describes its weights: train.epoch made them, train.train_loss,
 * train.train_acc, train.val_loss, train.val_acc are that epoch's row, and "preprocess"
 * (minmax | none) says how inputs were scaled. lensnet_fit_resume(dir) continues from the
 * checkpoint and ends on the same weights, bit for bit, as a run never interrupted (for any
 * thread count: see THREADS AND DETERMINISM). train.data_fingerprint records the data: a 64-bit
 * hash of the images' and labels' values (of the labels alone with fill), as 16 hex digits;
 * lensnet_fit_resume refuses data whose fingerprint differs (LENSNET_ERR_ARG, naming both).
 * ------------------------------------------------------------------------------------------- */
/* Fills images[count, in_c, in_h, in_w] with the samples index[0..count) (0 <= index < N). */
typedef lensnet_result (*lensnet_fit_fill_fn)(void *user, const size_t *index, size_t count, float *images, lensnet_error *err);

/* What the progress callback sees. */
typedef struct {
  int epoch, epochs;              /* the epoch (1-based) running or just finished, of `epochs` */
  int epoch_done;                 /* 0: after a training batch; 1: the epoch is validated and its files written */
  size_t seen;                    /* training images of this epoch so far */
  size_t train_count, val_count;  /* the split */
  double lr;                      /* this epoch's learning rate */
  double train_loss, train_acc;   /* means over the images seen so far (regression: train_acc is the rms
                                   * error in the targets' standard deviations) */
  double val_loss, val_acc;       /* epoch_done: validation results (0 without validation; val_acc the rms likewise) */
  double seconds;                 /* since the epoch started (desc's clock) */
  int best;                       /* epoch_done: these weights became best.safetensors */
} lensnet_fit_progress;
/* Returns nonzero to stop: the run ends after the current epoch and its checkpoint. */
typedef int (*lensnet_fit_progress_fn)(void *user, const lensnet_fit_progress *p);

/* Zero means default for every field. Settings that lensnet_fit_settings lists are saved in
 * checkpoints as train.NAME; the rest (data, callbacks, out_dir) are the caller's. */
typedef struct {
  const lensnet_tensor *images;   /* [N, C, H, W] matching the model's input; default NULL: use fill */
  lensnet_fit_fill_fn fill;       /* used when images is NULL; default NULL */
  void *fill_user;
  size_t count;                   /* N with fill; with images, 0 or images->shape[0] */
  const float *labels;            /* [N] class of each image, 0..classes-1 (classes: the model's outputs); with
                                   * targets > 0, [N, targets] values to regress; required */
  size_t targets;                 /* regression: values per image (loss mse: the model has `targets` outputs; nll:
                                   * 2 x targets, the means then the log-variances); default 0: classification */
  const char *target_names;       /* regression: "theta_E,e1,..." for the metadata; default "t0,t1,..." */
  const char *class_weights;      /* "none" (default) | "auto" (inverse class frequency of the training part) | "w0,w1,..." */
  double val_fraction;            /* share held out for validation (the end of a seeded permutation), 0..0.9; default
                                   * 0.1; negative: none */
  int epochs;                     /* default 10 */
  size_t batch;                   /* images per step; default 32 */
  const char *optimizer;          /* "adam" (default) | "adamw" | "sgd" */
  double lr;                      /* default 1e-3 */
  double momentum;                /* sgd only (a new run refuses it with adam, adamw); default 0 */
  int nesterov;                   /* sgd, with momentum > 0 (a new run refuses it without, as torch.optim.SGD); default 0 */
  double weight_decay;            /* default 0, adamw 0.01 (torch.optim.AdamW's); negative: none. sgd and adam add
                                   * it times the weights to the gradient (L2, as torch.optim.SGD and Adam), adamw
                                   * decays the weights by lr times it (decoupled) */
  double clip_norm;               /* > 0: clip the global gradient norm first; default 0 */
  const char *schedule;           /* "constant" (default) | "step" | "cosine" (over the epochs after warm-up) */
  int step_size;                  /* step only: epochs per decay, required by "step" */
  double gamma;                   /* step only: factor per decay; default 0.1 */
  double min_lr;                  /* cosine only: the floor of the cosine, eta_min of PyTorch's CosineAnnealingLR
                                   * (the last epoch runs a little above it); default 0. A new run refuses
                                   * step_size, gamma or min_lr with another schedule (they would do nothing);
                                   * a resumed one runs as its checkpoint says */
  int warmup;                     /* epochs of linear warm-up; default 0 */
  const char *loss;               /* classification: "ce" (softmax cross-entropy, default) | "focal", validation
                                   * always uses ce; regression: "mse" (default) | "nll" (Gaussian, a mean and a
                                   * log-variance per target), validation with the same loss */
  double focal_gamma;             /* default 2; negative: 0 */
  double nll_beta;                /* loss nll: weight each object's gradient by s^(2 nll_beta), 0..1
                                   * (lensnet_loss_gaussian_nll_beta); default 0, the plain NLL */
  const char *augment;            /* training images only: "flip,rot90,rot180,shift=PIXELS,noise=SIGMA", any
                                   * subset (rot180: half turns alone, for data whose only symmetry is one);
                                   * default none */
  int minmax;                     /* nonzero: scale each image per band to [0,1] first (lensnet_minmax_normalize).
                                   * Default 0: as `preprocess` says, or without it as the model's own
                                   * metadata "preprocess" says (lensnet_model_preprocess), so a finder
                                   * fine-tuned from its file keeps the scaling it was trained with; a
                                   * fresh model has none, and is trained on the values as they are */
  const char *preprocess;         /* "minmax" or "none": that scaling whatever the model says (to fine-tune
                                   * a min-max finder on unscaled images: "none"); default NULL: as
                                   * `minmax` above. Not a saved setting: the run saves the scaling it
                                   * used (train.minmax and "preprocess"), which lensnet_fit_resume takes */
  int exact;                      /* nonzero: every convolution as direct sums; default 0: on a CPU with AVX-512,
                                   * 3x3 and 5x5 ones by Winograd's (lensnet_trainer_desc.winograd), faster,
                                   * equal to rounding. A checkpoint from before this setting resumes exact */
  uint64_t seed;                  /* the split, shuffling, augmentation and dropout; default 0 (itself a seed) */
  const lensnet_parallel *parallel; /* default NULL: serial */
  lensnet_fit_progress_fn progress; /* default NULL: silent */
  void *progress_user;
  double (*seconds)(void *user);  /* a wall clock for history.csv and progress; default NULL: processor time (clock()),
                                   * which counts every thread */
  void *seconds_user;
  const char *out_dir;            /* an existing folder for the files above; default NULL: none written */
} lensnet_fit_desc;

/* The desc with its defaults filled in (desc may be NULL). */
LENSNET_API lensnet_fit_desc lensnet_fit_desc_resolve(const lensnet_fit_desc *desc);
/* Trains m in place, from the weights it holds: a fresh model from lensnet_model_create starts
 * with lensnet_model_init or lensnet_model_init_he (one whose weighted layers are all zero is
 * refused). The metadata "classes" is the caller's to set (lensnet_model_set_meta). Bad settings
 * give LENSNET_ERR_ARG, data that does not fit the model (shapes, a label outside its classes)
 * LENSNET_ERR_SHAPE, an out_dir that cannot be written LENSNET_ERR_IO before any training, a NaN
 * loss LENSNET_ERR_DIVERGED, each with a sentence in err. */
LENSNET_API lensnet_result lensnet_fit(lensnet_model *m, const lensnet_fit_desc *desc, lensnet_error *err);
/* Continues the run whose files are in dir: the model (returned in *out, the caller frees it),
 * every setting and the state come from dir/checkpoint.safetensors. From desc only the data
 * (images, fill, fill_user, count, labels, and for a regression run targets and target_names,
 * which must be given again), parallel, progress, progress_user, seconds, seconds_user and
 * epochs (0: the checkpoint's; more extends the run) are used; files are written to dir. */
LENSNET_API lensnet_result lensnet_fit_resume(const char *dir, const lensnet_fit_desc *desc, lensnet_model **out, lensnet_error *err);

/* The settings lensnet_fit saves in checkpoints, one table: name (train.NAME in the metadata;
 * the lens tool's --NAME with '-' for '_'), type, accepted range and a line of help. */
typedef enum {
  LENSNET_SETTING_TEXT, LENSNET_SETTING_FLAG, LENSNET_SETTING_INT, LENSNET_SETTING_SIZE, LENSNET_SETTING_NUMBER, LENSNET_SETTING_SEED
} lensnet_setting_type;
typedef struct {
  const char *name;
  lensnet_setting_type type;
  size_t offset;                  /* of the field in lensnet_fit_desc */
  double lo, hi;                  /* numbers: the accepted range */
  const char *choices;            /* text: "a|b|c" when only those are accepted, else NULL */
  const char *help;
} lensnet_fit_setting;
LENSNET_API const lensnet_fit_setting *lensnet_fit_settings(size_t *count);
/* The setting called name ('-' and '_' alike), or NULL. */
LENSNET_API const lensnet_fit_setting *lensnet_fit_setting_find(const char *name);
/* Sets one field of desc from text, checked against the setting's range or choices (a flag
 * takes 0 or 1). Text values point into `text`, which must outlive desc. */
LENSNET_API lensnet_result lensnet_fit_setting_parse(lensnet_fit_desc *desc, const lensnet_fit_setting *s, const char *text,
                                                     lensnet_error *err);
/* The resolved value of a setting of desc as filled in (not one resolved already, whose 0 for
 * val_fraction, focal_gamma or weight_decay would read as the default) as text, what checkpoints
 * hold; returns its length. */
LENSNET_API int lensnet_fit_setting_format(const lensnet_fit_desc *desc, const lensnet_fit_setting *s, char *buf, size_t cap);

/* Checkpoints by hand: the model (weights and metadata), the optimiser's moments and step, the
 * trainer's dropout stream and a data stream, in one safetensors file written atomically.
 * opt, t and data_rng may be NULL (not saved / not restored). lensnet_checkpoint_load restores
 * into a model of the same architecture, its weights and metadata included. */
LENSNET_API lensnet_result lensnet_checkpoint_save(const char *path, lensnet_model *m, const lensnet_optimizer *opt, lensnet_trainer *t,
                                                   const lensnet_rng *data_rng, lensnet_error *err);
LENSNET_API lensnet_result lensnet_checkpoint_load(const char *path, lensnet_model *m, lensnet_optimizer *opt, lensnet_trainer *t,
                                                   lensnet_rng *data_rng, lensnet_error *err);

/* ---------------------------------------------------------------------------------------------
 * Domain adaptation: a classifier trained on labelled images of one domain (simulations) made
 * to work on unlabelled images of another (a survey), what `lens adapt` runs. The model's last
 * dense layer is the classifier and everything below it the encoder; its input are the
 * features. Four methods:
 *   "adda"             Tzeng et al. 2017 (CVPR, "Adversarial Discriminative Domain Adaptation"):
 *                      a discriminator (an MLP on the features, dense W - relu - dense W - relu -
 *                      dense 2; the paper's W is 500, default here 128) learns to tell source
 *                      features (the --init encoder, fixed) from target features; the target
 *                      encoder, started from the source one, is trained with inverted labels to
 *                      fool it; steps alternate, one each per batch. Source features come from
 *                      the source model at inference (running statistics, no dropout), target
 *                      features from the target encoder in training mode (batch statistics) but
 *                      with dropout off (trainer desc no_dropout): dropout on one side only
 *                      would let the discriminator tell the sides apart by the noise, which the
 *                      encoder cannot remove; the encoder's
 *                      gradient enters at the features (lensnet_trainer_backward_from). The
 *                      classifier (the last dense layer and anything above it) keeps its source
 *                      values: the result is the target encoder + the source classifier.
 *                      Adam with beta1 0.5, as in the authors' code.
 *   "adamatch"         Berthelot et al. 2021 (ICLR 2022, "AdaMatch"): per step a source batch and
 *                      a target batch, each in a weak view (flips, quarter turns; `views`) and a strong
 *                      one (also a shift and Gaussian noise), passed as one joint batch of 4 x
 *                      batch images; the source loss is the cross-entropy over both source
 *                      views; the source logits are a random
 *                      interpolation (lambda ~ U(0,1) per logit) of a pass over the joint batch
 *                      and a pass over the source batch alone (with no batch norm in the model
 *                      the passes agree and the second is skipped); target pseudo-labels from
 *                      the weak view, distribution-aligned by the ratio of the source to the
 *                      target mean class probabilities; kept where their confidence reaches
 *                      tau (0.9) times the mean source confidence (of the weak source view);
 *                      the target loss is their cross-entropy on the strong view (pseudo-labels
 *                      carry no gradient), weighted mu = 0.5 - cos(min(pi, 2 pi step / steps)) / 2
 *                      over all the run's steps. Both passes update batch-norm running statistics.
 *   "self-ensembling"  French et al. 2018 (ICLR, "Self-ensembling for visual domain adaptation"):
 *                      a student trained by gradient and a teacher following it as an
 *                      exponential moving average (alpha 0.99); the consistency loss is the
 *                      mean squared difference of their class probabilities on two strong views
 *                      of each target image, counted only where the teacher's top probability
 *                      exceeds 0.968, weighted 3, plus cross-entropy on the source batch
 *                      (a weak view); source and target batches pass the student separately
 *                      (so batch norm sees one domain at a time, as in the paper); the teacher
 *                      predicts at inference, and its moving average covers the running
 *                      statistics too. The class-balance loss of the paper is left out. The
 *                      result is the teacher.
 *   "adabn"            Li, Wang, Shi, Hou & Liu 2018 (Pattern Recognition 80, 109, "Adaptive
 *                      Batch Normalization for practical domain adaptation"): no weight moves;
 *                      every batch-norm layer's running mean and variance become those of its
 *                      input over all the target images, layer by layer from the input up (each
 *                      with the layers below already adapted), exactly, whatever the batch. One
 *                      epoch of (batch-norm layers) x ceil(M / batch) steps of inference; no
 *                      source images (source and source_labels are ignored), no random numbers;
 *                      epochs, lr and seed do not apply. A model without batch norm is refused.
 * Labels of target images, when given, are only read to report the accuracy (and, for two
 * classes, the AUC of class 1) after each epoch: they never reach a loss or a choice.
 * Given out_dir, each epoch writes atomically
 *   checkpoint.safetensors  every network's weights (the model's under their names, the
 *                           others as adapt.source.NAME, adapt.teacher.NAME, adapt.disc.NAME), the
 *                           optimisers' moments (adapt.opt.m.NAME, adapt.opt.v.NAME,
 *                           adapt.disc_opt.m.NAME, ...), and in the metadata the settings
 *                           (adapt.NAME), the epoch, the step, the random streams and the history
 *   best.safetensors        the adapted model (the latest: without target labels nothing can
 *                           choose an epoch), its metadata that of the starting model plus adapt.*
 *   history.csv             epoch,<loss 1>,<loss 2>,target_acc,target_auc,seconds; the losses are
 *                           disc_loss,encoder_loss (adda), source_loss,target_loss (adamatch) or
 *                           source_loss,consistency_loss (self-ensembling), means over the epoch,
 *                           or mean_shift,std_change (adabn: the means over the batch-norm
 *                           channels of |target mean - source mean| / source std and
 *                           |ln(target std / source std)|); target_acc and target_auc are empty
 *                           without target labels; target_auc is class 1's AUC against class 0,
 *                           with K > 2 classes the macro one-vs-rest AUC (empty when a class has
 *                           no target image)
 * lensnet_adapt_resume(dir) continues such a run to the same weights, bit for bit, for any
 * thread count, and refuses data other than the run's: adapt.data_fingerprint hashes the source
 * images and labels and the target images (and labels, when given), as train.data_fingerprint.
 * ------------------------------------------------------------------------------------------- */
typedef struct {
  int epoch, epochs;              /* the epoch (1-based) running or just finished, of `epochs` */
  int epoch_done;                 /* 0: after a step; 1: the epoch's files are written */
  size_t step, steps;             /* steps of this epoch done, of `steps` */
  const char *loss_names[2];      /* what the two losses are, as in history.csv */
  double loss[2];                 /* their means over the epoch so far */
  double target_acc, target_auc;  /* epoch_done with target labels (auc: class 1's, or the macro one-vs-rest AUC
                                   * of K > 2 classes); else NaN */
  double seconds;                 /* since the epoch started */
} lensnet_adapt_progress;
/* Returns nonzero to stop: the run ends after the current epoch and its checkpoint. */
typedef int (*lensnet_adapt_progress_fn)(void *user, const lensnet_adapt_progress *p);

/* Zero means default for every field. The settings (method to seed) are saved as adapt.NAME. */
typedef struct {
  const lensnet_tensor *source;   /* labelled images [N, C, H, W] matching the model's input; required (not read by adabn) */
  const float *source_labels;     /* [N] class of each, 0..classes-1; required (not read by adabn) */
  const lensnet_tensor *target;   /* unlabelled images [M, C, H, W]; required */
  const float *target_labels;     /* [M] or NULL: for the report only, never for training */
  const char *method;             /* "adda" (default) | "adamatch" | "self-ensembling" | "adabn" */
  int epochs;                     /* default 10; an epoch is ceil(M / batch) steps (adabn: always 1) */
  size_t batch;                   /* source and target images per step, each; default 32 */
  double lr;                      /* Adam's learning rate; default 2e-4 (adda, Tzeng et al.), 1e-3 (the others) */
  size_t disc_width;              /* adda: the discriminator's hidden width; default 128 */
  double disc_lr;                 /* adda: the discriminator's learning rate; default lr (the target
                                   * encoder's). DeepLense's adaptation code steps the discriminator
                                   * 10x faster than the encoder (1e-5 against 1e-6) */
  double tau;                     /* adamatch: relative confidence threshold; default 0.9 */
  double ema;                     /* self-ensembling: the teacher's alpha; default 0.99 */
  double confidence;              /* self-ensembling: teacher confidence threshold; default 0.968 */
  double consistency_weight;      /* self-ensembling: weight of the consistency loss; default 3 */
  int shift;                      /* strong views: largest shift in pixels; default 2 (negative: none) */
  double noise;                   /* strong views: Gaussian noise, in units of each image's standard deviation;
                                   * default 0.1 (negative: 0) */
  const char *views;              /* adamatch, self-ensembling: the symmetries of the weak and strong views,
                                   * "flip-rot90" (default: random flips and quarter turns, for a sky with
                                   * no preferred direction), "rot180" (half of the images turned half round:
                                   * data whose only symmetry is a half turn, such as DeepLenseSim's Model I)
                                   * or "none" */
  int minmax;                     /* nonzero: scale each image per band to [0,1] first. Default 0: as
                                   * `preprocess` says, or without it as the model's own metadata
                                   * "preprocess" says (lensnet_model_preprocess): the scaling the
                                   * classifier was trained with. The adapted model's "preprocess" says
                                   * which was used (as lensnet_fit's files do) */
  const char *preprocess;         /* "minmax" or "none": that scaling whatever the model says (to adapt a
                                   * min-max model on unscaled images deliberately, "none"); default NULL:
                                   * as `minmax` above. Not used by lensnet_adapt_resume, which takes the
                                   * run's own */
  uint64_t seed;                  /* batches, views, the discriminator's start, dropout; default 0 */
  const lensnet_parallel *parallel; /* default NULL: serial */
  lensnet_adapt_progress_fn progress; /* default NULL: silent */
  void *progress_user;
  double (*seconds)(void *user);  /* a wall clock; default NULL: clock() */
  void *seconds_user;
  const char *out_dir;            /* an existing folder for the files above; default NULL: none written */
} lensnet_adapt_desc;

/* The desc with its defaults filled in (desc may be NULL). */
LENSNET_API lensnet_adapt_desc lensnet_adapt_desc_resolve(const lensnet_adapt_desc *desc);
/* The settings lensnet_adapt saves (method to seed), one table in lensnet_fit_settings' form, its
 * offsets into lensnet_adapt_desc: name (adapt.NAME in the metadata; lens adapt's --NAME with
 * '-' for '_'), type, range, choices, help. _parse sets one field from text (checked; text values
 * point into `text`), _format gives its resolved value as text. */
LENSNET_API const lensnet_fit_setting *lensnet_adapt_settings(size_t *count);
LENSNET_API lensnet_result lensnet_adapt_setting_parse(lensnet_adapt_desc *desc, const lensnet_fit_setting *s, const char *text,
                                                       lensnet_error *err);
LENSNET_API int lensnet_adapt_setting_format(const lensnet_adapt_desc *desc, const lensnet_fit_setting *s, char *buf, size_t cap);
/* The methods that use a setting, a comma-separated list: "adda", "adamatch", "self-ensembling" or
 * "adamatch,self-ensembling" (the strong views' shift and noise), or NULL for a setting every
 * method uses: a caller can refuse, say, disc_width given for adamatch, which would be ignored.
 * lensnet_adapt_setting_applies: whether method uses s. */
LENSNET_API const char *lensnet_adapt_setting_method(const lensnet_fit_setting *s);
LENSNET_API int lensnet_adapt_setting_applies(const lensnet_fit_setting *s, const char *method);
/* Adapts m (a classifier: no regress.* metadata, at least 2 outputs, a dense layer with layers
 * below it) in place; on return m holds the adapted model. Bad settings or an unsuitable model
 * give LENSNET_ERR_ARG, images that do not fit the model or labels out of range
 * LENSNET_ERR_SHAPE, a NaN loss LENSNET_ERR_DIVERGED. */
LENSNET_API lensnet_result lensnet_adapt(lensnet_model *m, const lensnet_adapt_desc *desc, lensnet_error *err);
/* Continues the run in dir from its checkpoint (settings included); from desc only the data,
 * parallel, progress, seconds and epochs (0: the checkpoint's; more extends the run) are used.
 * *out is the adapted model (the caller frees it). */
LENSNET_API lensnet_result lensnet_adapt_resume(const char *dir, const lensnet_adapt_desc *desc, lensnet_model **out, lensnet_error *err);
/* The index of the model's classifier (its last dense layer), or LENSNET_ERR_ARG when it has
 * none or no layer with weights below it (no encoder). */
LENSNET_API lensnet_result lensnet_model_classifier_layer(const lensnet_model *m, size_t *layer, lensnet_error *err);

/* ---------------------------------------------------------------------------------------------
 * Preparing cutouts for a model
 * ------------------------------------------------------------------------------------------- */
/* Bilinear resampling of one plane, PyTorch's F.interpolate(mode="bilinear",
 * align_corners=False, antialias=False) convention. An empty source (h or w 0) gives zeros. */
LENSNET_API void lensnet_resize_bilinear(const float *src, size_t h, size_t w, float *dst, size_t out_h, size_t out_w);
/* Per-band min-max normalisation of one image [bands, hw] to [0, 1] (Wilde et al. 2022); a
 * constant band becomes 0. NaNs are ignored for min and max and set to 0; returns their count.
 * A band whose span overflows a float (values near +-3.4e38) is scaled in double. */
LENSNET_API size_t lensnet_minmax_normalize(float *image, size_t bands, size_t hw);
/* How many of x[0..n) are NaN or infinite; *first (if given) gets the index of the first, n if none. */
LENSNET_API size_t lensnet_count_nonfinite(const float *x, size_t n, size_t *first);
/* Nonzero when a plane of n pixels holds no image: every finite pixel the same value, or none
 * finite (a survey's cutout wholly off its footprint, NaN- or zero-filled). lens predict notes
 * objects fed such a plane; test the pixels as read, before a resize, whose interpolation would
 * leave rounding differences in a constant plane. */
LENSNET_API int lensnet_plane_empty(const float *plane, size_t n);

/* Regression models (lensnet_fit with targets > 0) describe their outputs in the metadata:
 * regress.targets (names), regress.mean and regress.std (each target's standardisation over the
 * training part: the model predicts (y - mean) / std), regress.loss (mse: one output per target;
 * nll: the means, then the log-variances), and after calibration (`lens calibrate`) regress.scale:
 * a factor per target on the standard deviations, so that the intervals cover what they claim;
 * with `lens calibrate --means` also regress.slope and regress.offset: each physical mean m
 * becomes offset + slope x m (lensnet_regression_fit_means). */
#define LENSNET_REGRESSION_MAX 16
typedef struct {
  size_t count;                            /* targets */
  int nll;                                 /* the outputs hold log-variances too */
  char names[LENSNET_REGRESSION_MAX][33];
  double mean[LENSNET_REGRESSION_MAX], std[LENSNET_REGRESSION_MAX];
  double scale[LENSNET_REGRESSION_MAX];    /* regress.scale, 1 without it */
  double slope[LENSNET_REGRESSION_MAX];    /* regress.slope, 1 without it */
  double offset[LENSNET_REGRESSION_MAX];   /* regress.offset, 0 without it */
} lensnet_regression;
/* m's regression description: LENSNET_ERR_ARG when m is not a regression model, LENSNET_ERR_FORMAT
 * when its metadata does not fit its outputs. */
LENSNET_API lensnet_result lensnet_model_regression(const lensnet_model *m, lensnet_regression *r, lensnet_error *err);
/* Each target's mean and standard deviation in physical units from `passes` forward passes of one
 * image (outputs [passes, out_features]; several passes: Monte Carlo dropout). mean: the average
 * of the passes' means (then offset + slope x it, when the model has them). Variance: aleatoric (nll: the average of exp(log-variance); mse: 0) plus
 * epistemic (the variance of the passes' means, 0 for one pass); sigma = sqrt of the sum, times
 * the calibration scale (not the slope: the scale, fitted after the slope, takes it in). Any of
 * sigma, aleatoric, epistemic (standard deviations, the last two before calibration) may be NULL. */
LENSNET_API void lensnet_regression_combine(const lensnet_regression *r, const float *outputs, size_t passes, size_t out_features,
                                            double *mean, double *sigma, double *aleatoric, double *epistemic);
/* As lensnet_regression_combine for the Monte Carlo passes `outputs` (their sigmas, aleatoric and
 * epistemic parts), but each mean is the average of `plain_passes` passes without dropout,
 * `plain` [plain_passes, out_features] (one, or one per symmetry): the network with every unit
 * kept and scaled, the weight-scaling rule of Srivastava et al. 2014 (JMLR 15, 1929), which stands
 * for the average over dropout masks without the sampling noise of a finite number of them.
 * Measured on 1,000 ensai-modelling lenses (weights/ensai-sim, eight symmetries): theta_E rms
 * 0.0200" from the plain passes, 0.0211" from the mean of 24 dropout passes, 0.0204" from 96
 * (docs/modelling.md). plain_passes 0 falls back to the passes' own mean. */
LENSNET_API void lensnet_regression_combine_plain(const lensnet_regression *r, const float *outputs, size_t passes, const float *plain,
                                                  size_t plain_passes, size_t out_features, double *mean, double *sigma,
                                                  double *aleatoric, double *epistemic);
/* The eight symmetries of a square image (the dihedral group of flips and quarter turns): transform
 * t (0..7) of `in` [bands, n, n] into `out` (not overlapping), defined by where each output pixel
 * reads: out[c][i][j] = in[c][row][col] with (row, col) = (j, i) if bit 0 of t is set, else (i, j),
 * then row = n-1-row if bit 2, col = n-1-col if bit 1. As operations on the image that is: reverse
 * the rows (bit 2) and the columns (bit 1) first, then transpose (bit 0); t = 3 and t = 5 are the
 * two quarter turns, 6 the half turn, 1 and 7 the diagonal flips, 2 and 4 the axis flips.
 * Transform 0 copies. */
LENSNET_API void lensnet_dihedral(const float *in, float *out, size_t bands, size_t n, int t);
/* Test-time views, as lens predict --symmetries takes them: view k (0-based; k mod views) of
 * `views` (1, 2 or 8) of an image [bands, h, w] into out (not overlapping). 8 views are
 * lensnet_dihedral's transforms (square images); 2 are the image and its half turn, of any shape
 * (each band's pixels in reverse order). Returns the view's lensnet_dihedral transform (0, or 6
 * for the half turn), for lensnet_regression_turn_back. A classifier's views are averaged with
 * lensnet_logits_average; a regression model's outputs are turned back each, then combined
 * (lensnet_regression_combine_plain). */
LENSNET_API int lensnet_view(const float *in, float *out, size_t bands, size_t h, size_t w, size_t views, size_t k);
/* The lensnet_dihedral transform of view k of `views` (what lensnet_view returns). */
LENSNET_API int lensnet_view_transform(size_t views, size_t k);
/* The Monte Carlo dropout seed of object number `object` in a run seeded `seed`, as lens predict
 * --mc --seed S draws it: a SplitMix64 mix of seed + 0x9E3779B97F4A7C15 (object + 1). Its passes
 * are then lensnet_model_forward_mc(m, passes, the views, ..., this seed), so an object's scores
 * depend on its number, not on the batch or the thread that scores it. */
LENSNET_API uint64_t lensnet_mc_object_seed(uint64_t seed, uint64_t object);
/* Test-time symmetry for a regression model whose targets are known quantities of a lens: what
 * the network predicted for transform t of an image (lensnet_dihedral), turned back into the
 * image's own frame, so that the eight can be averaged with lensnet_regression_combine. Positions
 * in the lenssim frame (x along the columns, y along the rows, from the image centre) follow the
 * image: center_x/center_y and source_x/source_y (each pair only together) change sign with a
 * reversed axis and swap with the transpose. Spin-2 quantities, the ellipticity e1, e2 and the
 * shear gamma1, gamma2 (e1 = (1-q)/(1+q) cos 2phi, e2 = ... sin 2phi): the first changes sign with the
 * transpose (quarter turns, diagonal flips), the second with one reversed axis, not two (quarter
 * turns, axis flips); the half turn changes neither. Invariant: theta_E, theta_E2, sigma_v,
 * z_lens, z_lens2, z_source, z_source2, source_R, source_n, magnification, magnification2, arc_snr,
 * mag_source, mag_source2, mag_lens. lensnet_regression_symmetric says whether every target of r
 * is one of these and each position has both coordinates (LENSNET_ERR_ARG naming the first that
 * is not); lensnet_regression_symmetric_views asks the same for the views a prediction averages:
 * 8 (all eight transforms) as above, 2 (the image and its half turn, which swaps no axes) only
 * that every target is known. lensnet_regression_turn_back
 * maps one pass's outputs in place (the standardised means and, for nll, the log-variances). */
LENSNET_API lensnet_result lensnet_regression_symmetric(const lensnet_regression *r, lensnet_error *err);
LENSNET_API lensnet_result lensnet_regression_symmetric_views(const lensnet_regression *r, int views, lensnet_error *err);
LENSNET_API void lensnet_regression_turn_back(const lensnet_regression *r, int t, float *outputs);
/* Target j's physical mean for a standardised network output z: offset + slope x (mean + std x z). */
LENSNET_API double lensnet_regression_physical(const lensnet_regression *r, size_t j, double z);
/* A linear recalibration of the means, fitted on a validation set: for each target, least squares
 * of the true values on the predicted means, truth ~ offset + slope x mean (the regression of
 * outcomes on forecasts of Mincer & Zarnowitz 1969; an unbiased predictor has offset 0 and slope
 * 1). truth[j] and mean[j] hold target j's n values (the means as the model predicts them now,
 * slope and offset included). What the flips and quarter turns do to a target is kept: a scalar
 * (theta_E, ... as for lensnet_regression_symmetric) gets its own offset and slope; a position
 * pair (center_x and center_y, source_x and source_y) and a spin-2 pair (e1 and e2, gamma1 and
 * gamma2) share one slope, fitted on both components together, and keep offset 0, so that the
 * corrected means still turn with the image; a target this does not know gets its own offset and
 * slope. slope_out and offset_out receive the model's new values (the fit composed with r's
 * present slope and offset), for regress.slope and regress.offset. LENSNET_ERR_ARG when n < 3, a
 * value is not finite, a target's predicted means do not vary, or a fitted slope is not positive
 * (the means are unrelated, or anti-related, to the truth), naming the target. */
LENSNET_API lensnet_result lensnet_regression_fit_means(const lensnet_regression *r, const double *const *truth, const double *const *mean, size_t n,
                                                        double *slope_out, double *offset_out, lensnet_error *err);

/* ---------------------------------------------------------------------------------------------
 * Recipes: what every caller of a lens finder needs, in one place (the lens tool uses these)
 *
 *   Cutouts     lensnet_cutout_prepare turns an image [bands, h, w] into a model input: picks
 *               the bands (lensnet_channels_parse reads "0,2,3"), fits the size (exact, bilinear
 *               resize in PyTorch's convention, or a central crop), optionally min-max scales each
 *               band, and sets NaN and infinite pixels to 0, counting them in the report.
 *               lensnet_cutout_score does that, the forward pass and P(lens) in one call;
 *               lensnet_cutout_locate runs a locator (below, at lensnet_scan_locate) on a
 *               prepared cutout: where in it the object is, in pixels and arcsec.
 *   Classes     lensnet_model_class_index(m, "lens", ...) reads the metadata "classes" (e.g.
 *               "non-lens,lens"); a name it does not list, or lists beyond the model's outputs,
 *               falls back to the last output (the lens class of two-class finders).
 *               lensnet_lens_probability is the softmax (sigmoid for one output) of that class.
 *   Bands, sky  lensnet_model_band_name reads the metadata "band_names" ("J,Y,H,VIS"), and
 *               lensnet_model_pixel_scale "pixel_scale" (arcseconds per input pixel), what
 *               pictures are labelled and scale bars drawn with (lensnet_fits_pixel_scale reads
 *               a cutout's own from its header). lensnet_fits_band_slots puts one-band FITS
 *               files in the model's band order by their FILTER headers, and
 *               lensnet_fits_cube_band_slots a cube's planes by their BAND1, BAND2, ... cards
 *               (lensnet_fits_plane_name reads one; lensnet_band_names_match is the rule);
 *               lensnet_band_pick a stack's planes by a list of their names (a .npy carries
 *               none: lens sim writes them beside its images.npy as bands.txt, "VIS,Y,J,H", and
 *               OU-66 takes J,Y,H,VIS, so lensnet_cutout_desc.channels must follow them).
 *   .npy        lensnet_npy_writer streams rows to `path.tmp` and renames it at finish; the leading
 *               dimension may be left open (LENSNET_NPY_ROWS_UNKNOWN) and is written at finish.
 *               lensnet_npy_write is built on it.
 *   Labels      lensnet_csv_label_column: the class column of a labels.csv header.
 *   Tables      lensnet_csv_read: a whole CSV file as cells, checked row by row.
 * ------------------------------------------------------------------------------------------- */
typedef enum {
  LENSNET_SIZE_EXACT,  /* the image must have the model's height and width */
  LENSNET_SIZE_RESIZE, /* bilinear resampling (lensnet_resize_bilinear) */
  LENSNET_SIZE_CROP    /* the central in_h x in_w region (offsets rounded down) */
} lensnet_size_fit;

/* How an image becomes a model input. Zero means default for every field. */
typedef struct {
  const size_t *channels; /* input band of each model channel, e.g. {0, 2, 3}; NULL: bands 0..in_c-1,
                           * whatever they are: a lens sim stack holds VIS,Y,J,H and OU-66 takes
                           * J,Y,H,VIS, so give {2, 1, 3, 0} (lensnet_band_pick finds it by name) */
  size_t channel_count;   /* entries of channels; must equal the model's in_c when channels is set */
  lensnet_size_fit size;  /* default LENSNET_SIZE_EXACT */
  int minmax;             /* default 0: values as they are; nonzero: lensnet_minmax_normalize per band */
} lensnet_cutout_desc;

/* Why lensnet_cutout_prepare refused an image (tools phrase their own messages from it). */
typedef enum {
  LENSNET_CUTOUT_OK,
  LENSNET_CUTOUT_EMPTY,           /* h or w is 0 (LENSNET_ERR_SHAPE) */
  LENSNET_CUTOUT_CHANNEL_COUNT,   /* channel_count differs from the model's bands (LENSNET_ERR_ARG) */
  LENSNET_CUTOUT_CHANNEL_MISSING, /* channels names a band the image lacks (LENSNET_ERR_ARG) */
  LENSNET_CUTOUT_TOO_FEW_BANDS,   /* no channel list and fewer bands than the model's (SHAPE) */
  LENSNET_CUTOUT_SIZE,            /* another size with LENSNET_SIZE_EXACT (SHAPE) */
  LENSNET_CUTOUT_CROP_TOO_SMALL,  /* LENSNET_SIZE_CROP of an image smaller than the input (SHAPE) */
  LENSNET_CUTOUT_TOO_LARGE        /* bands x h x w floats overflow a size_t (LENSNET_ERR_TOO_LARGE) */
} lensnet_cutout_issue;

typedef struct {
  lensnet_cutout_issue issue;
  size_t nan_pixels, inf_pixels;  /* non-finite pixels of the result, set to 0 (ignored by min-max) */
  size_t unused_bands;            /* image bands not fed to the model */
  size_t filled_pixels;           /* non-finite pixels of the image that a resize left out, the
                                     output pixels around them filled from finite neighbours */
} lensnet_cutout_report;

/* The bands, height and width of an image tensor as lensnet_cutout_prepare takes it (what
 * lensnet_fits_read or lensnet_npy_read gave): [H, W] is one band, [C, H, W] C bands, [1, C, H, W]
 * one image of C bands. LENSNET_ERR_SHAPE for any other shape (a batch of several images: pick
 * one, data + i * C * H * W; fewer than 2 or more than 4 axes), saying which. */
LENSNET_API lensnet_result lensnet_image_dims(const lensnet_tensor *t, size_t *bands, size_t *h, size_t *w, lensnet_error *err);
/* image [bands, h, w] -> out [m->in_c, m->in_h, m->in_w]. Order: band selection, size fit,
 * min-max (if asked), non-finite pixels to 0. desc and report may be NULL. A band with blank
 * (non-finite) pixels is resized leaving them out: an output pixel takes the mean of its finite
 * neighbours with their bilinear weights renormalised, and stays blank (then 0, counted) only
 * when none of its neighbours of positive weight is finite, so a blank area keeps its size; bands
 * without blanks are resized by lensnet_resize_bilinear, bit for bit. */
LENSNET_API lensnet_result lensnet_cutout_prepare(const lensnet_model *m, const lensnet_cutout_desc *desc, const float *image,
                                                  size_t bands, size_t h, size_t w, float *out,
                                                  lensnet_cutout_report *report, lensnet_error *err);
/* The two halves of lensnet_cutout_prepare, for callers that place cutouts on one thread and
 * scale them on several (lens predict scales each cutout in the task that runs its forward pass,
 * while it is in that core's cache). lensnet_cutout_place: the checks, the band selection and the
 * size fit into out (report: issue, unused_bands, filled_pixels). lensnet_cutout_scale, in place on a placed
 * cutout x [in_c, in_h, in_w]: min-max (if desc asks) and non-finite pixels to 0 (report, when not
 * NULL: nan_pixels and inf_pixels set, the other fields untouched). Place then scale gives the
 * bits of lensnet_cutout_prepare. */
LENSNET_API lensnet_result lensnet_cutout_place(const lensnet_model *m, const lensnet_cutout_desc *desc, const float *image,
                                                size_t bands, size_t h, size_t w, float *out,
                                                lensnet_cutout_report *report, lensnet_error *err);
LENSNET_API void lensnet_cutout_scale(const lensnet_model *m, const lensnet_cutout_desc *desc, float *x, lensnet_cutout_report *report);
/* What `lens predict --exact` computes for one cutout (lens predict itself, on a CPU with AVX-512,
 * runs 3x3 and 5x5 convolutions by Winograd's: lensnet_model_pack_winograd): image [bands, h, w] prepared by
 * lensnet_cutout_prepare(desc) into prepared [in_c, in_h, in_w], one forward pass with the
 * caller's workspace (lensnet_model_workspace_floats(m, 1) floats; NULL: one allocation), the
 * outputs into logits [out_features] and, when p_lens is not NULL, P(lens)
 * (lensnet_lens_probability of lensnet_model_class_index(m, "lens")). A finder's score in one
 * call, for callers that score one object at a time (the Python module, the browser page). */
LENSNET_API lensnet_result lensnet_cutout_score(const lensnet_model *m, const lensnet_cutout_desc *desc, const float *image,
                                                size_t bands, size_t h, size_t w, float *prepared, float *workspace,
                                                float *logits, double *p_lens, lensnet_cutout_report *report,
                                                lensnet_error *err);
/* How the model wants its inputs scaled, from its metadata: "preprocess" (minmax or none), or for
 * older files "train.minmax" = 1; nothing stated means none. *minmax gets 1 or 0; *key (may be
 * NULL) names the metadata key that said so, or NULL when none did. An unknown "preprocess"
 * value is LENSNET_ERR_FORMAT naming it. */
LENSNET_API lensnet_result lensnet_model_preprocess(const lensnet_model *m, int *minmax, const char **key, lensnet_error *err);
/* Parses a band list "0,2,3" (numbers 0..4096, at most cap of them) into channels[*count]. */
LENSNET_API lensnet_result lensnet_channels_parse(const char *text, size_t *channels, size_t cap, size_t *count,
                                                  lensnet_error *err);

/* ---------------------------------------------------------------------------------------------
 * Scanning fields: a finder slid over an image larger than its input
 *
 * lensnet_scan_map scores every window of the model's input size (in_h x in_w) whose top-left
 * corner is at (col * stride, row * stride), the last column's (row's) flush with the image's
 * right (bottom) edge, rows * cols of them (lensnet_scan_grid_of), into
 * a p_lens map [rows, cols]. Each window is prepared as lensnet_cutout_prepare prepares a cutout
 * of exactly the input size: the bands picked, min-max scaled per window and band when minmax is
 * set (a model's preprocess=minmax, lensnet_model_preprocess), non-finite pixels set to 0; then
 * scored alone, so a window's score does not depend on the others, the order or the threads.
 * Window (row, col) is centred at x = x0 + (in_w - 1) / 2, y = y0 + (in_h - 1) / 2 with (x0, y0)
 * its top-left corner: field pixels, 0-based, pixel centres at integers. Every pixel is in some
 * window: cols = ceil((w - in_w) / stride) + 1, and when (w - in_w) is not a multiple of the
 * stride the last column starts at w - in_w, nearer the one before it than the stride (rows
 * alike); with a stride wider than the window, the pixels between windows are in none.
 *
 * lensnet_scan_detect turns the map into detections: windows whose p_lens is at least the
 * threshold and a local maximum of the map (at least each of its 8 neighbours; on a plateau the
 * first in row-major order wins), taken in decreasing p_lens, each dropped when a detection
 * already kept lies within nms_radius pixels (non-maximum suppression). Positions are the
 * window centre refined by the p_lens-weighted centroid of the centres of the window and its
 * (up to 8) neighbours in the map, which moves a detection towards where the map says the object
 * is, to within a fraction of the stride; no_refine keeps the window centre. */
typedef struct {
  size_t stride;                    /* window step in pixels; default 0: a quarter of the window width (at least 1) */
  double threshold;                 /* least p_lens of a detection; default 0: 0.5; negative: 0 (every local maximum) */
  double nms_radius;                /* pixels; default 0: half the window width; negative: no suppression (lens find
                                     * with a locator: the stride, as located positions keep close lenses apart) */
  int no_refine;                    /* nonzero: positions are window centres; default 0: the centroid above */
  int minmax;                       /* nonzero: min-max scale each window per band; default 0: values as they are */
  const size_t *channels;           /* input band of each model channel; default NULL: bands 0..in_c-1 */
  size_t channel_count;             /* entries of channels (must equal in_c when channels is set) */
  const lensnet_parallel *parallel; /* parallel-for over rows of windows; default NULL: the calling thread */
} lensnet_scan_desc;

/* The window grid of a scan. */
typedef struct {
  size_t rows, cols;                /* the map's shape */
  size_t stride, win_h, win_w;      /* the step and the window (the model's input) */
  size_t last_x, last_y;            /* the last column's and row's top-left corner: image width (height) minus the window's */
} lensnet_scan_grid;

typedef struct {
  double x, y;                      /* field pixels (0-based, pixel centres at integers) */
  float p_lens;                     /* the map at the peak */
  size_t row, col;                  /* the peak's window */
  double sigma_x, sigma_y;          /* position uncertainty in pixels from a locator (lensnet_scan_locate); else 0 */
  float p_verify;                   /* a second finder's p_lens at the position (lensnet_scan_verify); else NaN */
} lensnet_detection;

/* The grid of scanning an image [bands, h, w]; LENSNET_ERR_SHAPE when the image is smaller than
 * the window or has fewer bands than the model (without channels), LENSNET_ERR_ARG for a
 * channel list that does not fit the model or the image. */
LENSNET_API lensnet_result lensnet_scan_grid_of(const lensnet_model *m, const lensnet_scan_desc *desc, size_t bands, size_t h,
                                                size_t w, lensnet_scan_grid *grid, lensnet_error *err);
/* The p_lens map [rows, cols] of image [bands, h, w] (see above); desc may be NULL. Allocates one
 * window, one output row and one model workspace per worker (LENSNET_MALLOC). */
LENSNET_API lensnet_result lensnet_scan_map(const lensnet_model *m, const lensnet_scan_desc *desc, const float *image, size_t bands,
                                            size_t h, size_t w, float *map, lensnet_error *err);
/* Detections of a map (see above) into out[cap], strongest first; returns how many there are
 * (more than cap: only the first cap written). desc may be NULL. No allocation. */
LENSNET_API size_t lensnet_scan_detect(const float *map, const lensnet_scan_grid *grid, const lensnet_scan_desc *desc,
                                       lensnet_detection *out, size_t cap);

/* lensnet_scan_locate moves detections to where a locator puts them. A locator is a regression
 * model (lensnet_model_regression) with the targets center_x and center_y: an object's position
 * relative to the centre of its input ((in_w - 1) / 2, (in_h - 1) / 2), in arcsec, x along
 * columns and y along rows, as `lens sim --windows` labels its training windows. For each
 * detection, the locator's window centred on the pixel nearest (x, y) (moved inside the image at
 * its edges) is prepared as scan windows are (desc's channels, the locator's minmax) and the
 * position becomes the window's centre plus the predicted centre over pixel_scale; `passes`
 * times, each window centred on the last position, so the last prediction is made with the
 * object near the window's centre. A located detection then within desc's nms_radius of a
 * stronger one is dropped (the order is otherwise kept). sigma_x, sigma_y get the locator's
 * standard deviations in pixels (0 for an mse locator). symmetries 8 makes the last pass predict on
 * the window's eight flips and quarter turns (a square window) and average the eight positions,
 * each turned back: the mean over the dihedral group, for a locator whose training windows had
 * no preferred orientation; its sigma is then the square root of the mean variance plus the
 * variance of the eight means (a mixture of the eight). Returns LENSNET_ERR_ARG when the locator
 * is not a regression model with those targets or pixel_scale is not positive,
 * LENSNET_ERR_SHAPE when the image is smaller than its window or has too few bands. *count is
 * updated. Allocates one window and workspace (LENSNET_MALLOC). */
typedef struct {
  double pixel_scale;               /* arcsec per image pixel (the locator's input pixels); required */
  int minmax;                       /* nonzero: min-max scale each window per band (the locator's preprocess) */
  size_t passes;                    /* predictions per detection; default 0: 2 */
  int symmetries;                   /* the last pass: 1 the window as it is; 8 the mean over its flips and quarter
                                     * turns (square windows; LENSNET_ERR_ARG otherwise); default 0: 1 (lens find: 8
                                     * for a square locator, as the shipped locator was measured) */
} lensnet_locate_desc;
LENSNET_API lensnet_result lensnet_scan_locate(const lensnet_model *locator, const lensnet_locate_desc *locate,
                                               const lensnet_scan_desc *desc, const float *image, size_t bands, size_t h,
                                               size_t w, lensnet_detection *det, size_t *count, lensnet_error *err);

/* lensnet_scan_verify scores each detection again with a second finder, the verifier, on the
 * window of its input size centred on the pixel nearest the detection's position (moved inside
 * the image at its edges), prepared as scan windows are (desc's channels, the given minmax). Its
 * p_lens goes to p_verify, and detections below `threshold` are dropped (the order is kept).
 * After lensnet_scan_locate the window is centred on the object, so a finder trained on centred
 * cutouts sees what it was trained on. LENSNET_ERR_SHAPE when the image is smaller than the
 * verifier's window or has too few bands; *count is updated. Allocates one window and workspace. */
LENSNET_API lensnet_result lensnet_scan_verify(const lensnet_model *verifier, int minmax, double threshold,
                                               const lensnet_scan_desc *desc, const float *image, size_t bands, size_t h,
                                               size_t w, lensnet_detection *det, size_t *count, lensnet_error *err);

/* Where a locator puts the object of one cutout: `prepared` is the locator's input [in_c, in_h,
 * in_w], prepared as lensnet_cutout_prepare prepares it (the locator's minmax); one prediction,
 * with no re-centring, as a cutout cannot be cut again beyond its edges (lensnet_scan_locate
 * re-centres its windows in a larger image). center_x, center_y are the predicted means, x =
 * (in_w - 1) / 2 + center_x / pixel_scale and y likewise, sigma_x, sigma_y the standard deviations
 * over pixel_scale. workspace: lensnet_model_workspace_floats(locator, 1) floats, or NULL for one
 * allocation. LENSNET_ERR_ARG as lensnet_scan_locate's for the locator and the pixel scale. */
typedef struct {
  double x, y;                      /* input pixels (0-based, pixel centres at integers) */
  double sigma_x, sigma_y;          /* pixels; 0 for an mse locator */
  double center_x, center_y;        /* arcsec from the input's centre, x along columns, y along rows */
} lensnet_location;
LENSNET_API lensnet_result lensnet_cutout_locate(const lensnet_model *locator, const float *prepared, double pixel_scale,
                                                 float *workspace, lensnet_location *out, lensnet_error *err);
/* A per-pixel map of where the object is, from a location: map[h][w] (row-major) gets `weight`
 * (a finder's p_lens, say) times the probability that the object's position falls in each pixel,
 * the position distributed as independent Gaussians in x and y about (at->x, at->y) with sigmas
 * at->sigma_x, at->sigma_y (pixel (i, j) spans j - 1/2 .. j + 1/2 in x and i - 1/2 .. i + 1/2 in
 * y). The map sums to `weight` times the share of the distribution inside the image. A sigma of 0
 * (an mse locator) puts the whole weight on the pixel holding the position (none when it lies
 * outside). */
LENSNET_API void lensnet_location_map(const lensnet_location *at, double weight, size_t h, size_t w, float *map);

/* The output index of class `name`, see above; LENSNET_ERR_ARG only for a model without outputs. */
LENSNET_API lensnet_result lensnet_model_class_index(const lensnet_model *m, const char *name, size_t *index,
                                                     lensnet_error *err);
/* The name of output k from the metadata "classes" (blanks trimmed, cut to cap - 1 bytes), or
 * its number when the list has no entry k. LENSNET_ERR_ARG when k is not an output or cap is 0. */
LENSNET_API lensnet_result lensnet_model_class_name(const lensnet_model *m, size_t k, char *buf, size_t cap,
                                                    lensnet_error *err);
/* The name of input band k from the metadata "band_names" (e.g. "J,Y,H,VIS"; blanks trimmed, cut
 * to cap - 1 bytes), or "band k" when the list has no entry k. LENSNET_ERR_ARG when k is not an
 * input band or cap is 0. */
LENSNET_API lensnet_result lensnet_model_band_name(const lensnet_model *m, size_t k, char *buf, size_t cap,
                                                   lensnet_error *err);
/* Where each of `count` one-band FITS files of one object goes among the model's input bands (a
 * survey's cutouts come one file per band, and a listing sorts them by name, not by the model's
 * band order): each file's FILTER keyword (in HDU `hdu` when hdu > 0, else the primary header, then
 * HDU 1, where HST and fpack keep it) is looked up in the metadata "band_names", without regard to
 * case or surrounding blanks, a name after an instrument prefix matching too ("NISP_Y" is "Y"). When count is the model's band count and every file names one of its
 * bands, *by_filter = 1 and slot[i] is file i's band; otherwise (a file without FILTER, a FILTER
 * the model does not list, a model without band_names) *by_filter = 0 and slot[i] = i, the order
 * given. LENSNET_ERR_FORMAT, naming both files, when two files name the same band;
 * LENSNET_ERR_ARG for NULL pointers or count 0. Only headers are read. */
LENSNET_API lensnet_result lensnet_fits_band_slots(const lensnet_model *m, const char *const *paths, size_t count, int hdu,
                                                   size_t *slot, int *by_filter, lensnet_error *err);
/* The same for the `planes` planes of one FITS cube [bands, y, x] whose header names them with
 * BAND1, BAND2, ... (as lens sim --fits writes them: 'VIS', 'Y', 'J', 'H'), read from HDU `hdu`
 * (hdu < 0: the primary header, then HDU 1): slot[p] is plane p's band among the model's when
 * planes is the model's band count and the names are its band_names in some order (*by_name = 1),
 * else slot[p] = p (*by_name = 0). LENSNET_ERR_FORMAT when two planes name the same band. */
LENSNET_API lensnet_result lensnet_fits_cube_band_slots(const lensnet_model *m, const char *path, int hdu, size_t planes, size_t *slot,
                                                        int *by_name, lensnet_error *err);
/* Which of an image's `planes` planes, named in order by `names` (comma-separated, as a
 * bands.txt beside a lens sim images.npy holds them: "VIS,Y,J,H"), feeds each of the model's bands:
 * pick[k] is the plane of the model's band k (in_c entries) and *by_name = 1 when the model has
 * band_names; without them, or with names NULL, pick[k] = k and *by_name = 0. Matched by
 * lensnet_band_names_match. LENSNET_ERR_FORMAT when names lists another number of bands than
 * `planes` or one band twice; LENSNET_ERR_SHAPE, naming both lists, when a band of the model's is
 * not among the names. */
LENSNET_API lensnet_result lensnet_band_pick(const lensnet_model *m, const char *names, size_t planes, size_t *pick, int *by_name,
                                             lensnet_error *err);
/* The band names of such a list as `out` = "VIS,Y,J,H" (*count of them): separated by commas or
 * line ends, blanks around each and a UTF-8 byte-order mark dropped, a trailing comma allowed.
 * LENSNET_ERR_FORMAT for none, an empty name between commas, one band twice, or more than fits. */
LENSNET_API lensnet_result lensnet_band_names_normalize(const char *text, char *out, size_t cap, size_t *count, lensnet_error *err);
/* The name of plane `plane` (0-based) of the image lensnet_fits_read(path, hdu) reads, from its
 * header's BAND<plane + 1> card, into buf: 1 when named. The names are those of the HDU holding the
 * image (hdu >= 0: that one; hdu < 0: the primary when it holds an image, else HDU 1, then the
 * primary header, where a file whose image is in HDU 1 may keep them). */
LENSNET_API int lensnet_fits_plane_name(const char *path, int hdu, size_t plane, char *buf, size_t cap);
LENSNET_API int lensnet_fits_plane_name_memory(const void *bytes, size_t len, int hdu, size_t plane, char *buf, size_t cap);
/* Whether two band names are the same band: without regard to case or surrounding blanks, a
 * name after an instrument prefix matching too ("NISP_Y" is "Y"; "ACS_F814W" is not "WFC3_F814W").
 * The rule by which FILTER and BANDn cards are matched to a model's band_names. */
LENSNET_API int lensnet_band_names_match(const char *a, const char *b);
/* The arcseconds per pixel of the images the model was made for, from the metadata "pixel_scale";
 * *arcsec = 0 when the metadata does not say. LENSNET_ERR_FORMAT, naming the value, when it is not
 * a positive number. */
LENSNET_API lensnet_result lensnet_model_pixel_scale(const lensnet_model *m, double *arcsec, lensnet_error *err);
/* P(class lens_class) from one output vector: softmax over n_outputs (max subtracted, in double),
 * the sigmoid of the only output when n_outputs is 1. NaN when lens_class >= n_outputs. Any class
 * k gives its probability, so k = 0 .. n_outputs - 1 are a multi-class model's probabilities. */
LENSNET_API double lensnet_lens_probability(const float *logits, size_t n_outputs, size_t lens_class);
/* A classifier's outputs for several views of one object (test-time symmetries: `passes` rows of
 * n_outputs logits) averaged as probabilities: out gets logits whose softmax (sigmoid for one
 * output) is the mean of the rows' softmaxes (sigmoids): log of each mean probability (for one
 * output, log(p / (1 - p)) with p and 1 - p averaged apart), kept within +-log(FLT_MIN) so that
 * a class no view gives any chance stays finite. out may be the first row. Nothing is written
 * when passes is 0. */
LENSNET_API void lensnet_logits_average(const float *logits, size_t passes, size_t n_outputs, float *out);

/* Streaming .npy (little-endian f4) writer: begin, append rows, then finish or abort. A row is
 * one index of the leading dimension (shape[1] * ... floats; a 0-d array is one row of one
 * value). Nothing appears at `path` before a successful finish. */
#define LENSNET_NPY_ROWS_UNKNOWN ((size_t)-1)
typedef struct {
  void *file;                      /* the temporary file (FILE *); NULL when not open */
  char *paths;                     /* "path", NUL, "path.tmp", NUL: one allocation */
  int ndim;
  size_t shape[LENSNET_MAX_DIMS];  /* shape[0] is LENSNET_NPY_ROWS_UNKNOWN until finish when left open */
  size_t row_floats, rows;         /* floats per row; rows appended so far */
  size_t header_bytes;             /* bytes before the data */
} lensnet_npy_writer;

/* Opens `path.tmp` and writes the header. shape[0] = LENSNET_NPY_ROWS_UNKNOWN leaves the row count
 * open (the header reserves room for any count). On failure nothing is left behind. */
LENSNET_API lensnet_result lensnet_npy_writer_begin(lensnet_npy_writer *w, const char *path, int ndim, const size_t *shape,
                                                    lensnet_error *err);
/* Appends `count` rows; more rows than a known shape[0] is LENSNET_ERR_ARG. A failed append
 * aborts the writer (the temporary is removed). */
LENSNET_API lensnet_result lensnet_npy_writer_append(lensnet_npy_writer *w, const float *rows, size_t count, lensnet_error *err);
/* Writes the row count into an open header, flushes, fsyncs when sync_to_disk is nonzero
 * (POSIX; elsewhere LENSNET_ERR_UNSUPPORTED) and renames `path.tmp` to `path`. Fewer rows than a
 * known shape[0] is LENSNET_ERR_ARG. The writer is closed afterwards, on success or failure (then
 * nothing is left). */
LENSNET_API lensnet_result lensnet_npy_writer_finish(lensnet_npy_writer *w, int sync_to_disk, lensnet_error *err);
/* Closes and removes the temporary file; safe on a closed or zeroed writer. */
LENSNET_API void lensnet_npy_writer_abort(lensnet_npy_writer *w);

/* The class column of a CSV header line (comma-separated, blanks around names ignored): "label",
 * else "class", else "is_lens", else the only column of a one-column header. LENSNET_ERR_FORMAT
 * when none applies. The rule of `lens train` and `lens plot` for labels.csv. */
LENSNET_API lensnet_result lensnet_csv_label_column(const char *header_line, size_t *column, lensnet_error *err);
/* Index of the column called `name` in a CSV header line; LENSNET_ERR_ARG when there is none. */
LENSNET_API lensnet_result lensnet_csv_column(const char *header_line, const char *name, size_t *column, lensnet_error *err);

/* A CSV table in memory (lensnet_csv_read). Row 0 is the header; every row has `cols` cells.
 * The reader lives here, beside the label-column rule, because lensnet.h owns the toolkit's file
 * formats and the three tools that read tables (train, plot, eval) all include it.
 *   Accepted: RFC 4180 (fields in double quotes may hold commas, newlines and "" for a quote);
 *   '\n' or "\r\n" line ends, the last line with or without one; blanks (spaces, tabs) around
 *   unquoted cells are dropped; blank lines are skipped; a UTF-8 byte-order mark is skipped.
 *   Refused (LENSNET_ERR_FORMAT, naming the line): a row with more or fewer cells than the
 *   header, an unclosed quote, text after a closing quote, a NUL byte, a file without a header.
 * A header with no data rows is a table of one row: callers say whether that is enough.
 * Memory: one block for the text (the file's size + 1) and one for each of cells and lines, all
 * through LENSNET_MALLOC; lensnet_csv_free releases them. Bounded: every cell is read inside the
 * input's `len` bytes, and the sizes are overflow-checked. */
typedef struct {
  char *text;           /* the cells' text, each NUL-terminated, unquoted */
  char **cells;         /* rows * cols pointers into text, row after row */
  size_t *lines;        /* the line of the input where each row starts (1-based), for messages */
  char *header;         /* the header's cells joined by commas, for lensnet_csv_column and
                           lensnet_csv_label_column; a comma inside a (quoted) name is shown as
                           ';', so that column i of this line is always column i of the table */
  size_t rows, cols;    /* rows counts the header */
} lensnet_csv;

LENSNET_API lensnet_result lensnet_csv_read(const char *path, lensnet_csv *table, lensnet_error *err);
LENSNET_API lensnet_result lensnet_csv_read_memory(const void *bytes, size_t len, lensnet_csv *table, lensnet_error *err);
/* Safe on a zeroed or freed table. */
LENSNET_API void lensnet_csv_free(lensnet_csv *table);
/* Cell (row, col), row 0 the header; NULL outside the table. */
LENSNET_API const char *lensnet_csv_cell(const lensnet_csv *table, size_t row, size_t col);
/* Cell (row, col) as a number (strtod, the whole cell; "nan" and "inf" are numbers here, the
 * caller decides about them). LENSNET_ERR_FORMAT naming the line, the column and the text when
 * the cell is not a number, LENSNET_ERR_ARG outside the table. */
LENSNET_API lensnet_result lensnet_csv_number(const lensnet_csv *table, size_t row, size_t col, double *value, lensnet_error *err);
/* The table row of each of n objects (image i of a stack [n, C, H, W]) into row[n]. With a column
 * named `index`, the row whose index is i: every index an integer from 0 to n - 1 on exactly one
 * row, so the rows may come in any order (lens eval matches rows so too); else the rows in order
 * from `first` (1 below a header, 0 for a headerless table). Another count of rows than n is
 * LENSNET_ERR_SHAPE; an index that is not a number, out of range or repeated LENSNET_ERR_FORMAT
 * naming its line. The rule of lens train and lens adapt for labels.csv (messages say "label rows"). */
LENSNET_API lensnet_result lensnet_csv_object_rows(const lensnet_csv *table, size_t first, size_t n, size_t *row, lensnet_error *err);
/* The class of each of n objects from a labels table into labels[n]: the class column
 * (lensnet_csv_label_column; a one-column table whose first cell is a number has no header), its
 * rows matched to the objects by lensnet_csv_object_rows; each class an integer from 0 to
 * classes - 1, else LENSNET_ERR_FORMAT naming the line. */
LENSNET_API lensnet_result lensnet_csv_class_labels(const lensnet_csv *table, size_t n, size_t classes, float *labels, lensnet_error *err);

#ifdef __cplusplus
}
#endif
#endif /* LENSNET_H */

/* =============================================================================================
 * Implementation
 * =========================================================================================== */
#if defined(LENSNET_IMPLEMENTATION) && !defined(LENSNET__IMPLEMENTED)
#define LENSNET__IMPLEMENTED

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <math.h>
#include <float.h>
#include <limits.h>
#include <time.h>
#include <errno.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define LENSNET__HAVE_FSYNC 1
#ifndef __cplusplus /* strict -std=c99 hides these POSIX functions; C++ compilers declare them */
int (fsync)(int fd);
int (fileno)(FILE *stream);
#endif
#endif

#if defined(LENSNET_MALLOC) && defined(LENSNET_FREE) && defined(LENSNET_REALLOC)
/* all three given */
#elif !defined(LENSNET_MALLOC) && !defined(LENSNET_FREE) && !defined(LENSNET_REALLOC)
#define LENSNET_MALLOC(sz) malloc(sz)
#define LENSNET_REALLOC(p, sz) realloc(p, sz)
#define LENSNET_FREE(p) free(p)
#else
#error "lensnet.h: define all of LENSNET_MALLOC, LENSNET_REALLOC and LENSNET_FREE, or none"
#endif

/* Largest tensor a reader will allocate, in elements (a guard against hostile headers). */
#ifndef LENSNET_MAX_ELEMENTS
#if SIZE_MAX > 0xFFFFFFFFu
#define LENSNET_MAX_ELEMENTS ((size_t)1 << 32)
#else /* 32-bit targets (microcontrollers): as many floats as a size_t of bytes counts */
#define LENSNET_MAX_ELEMENTS (SIZE_MAX / sizeof(float))
#endif
#endif
#ifndef LENSNET_JSON_MAX_DEPTH
#define LENSNET_JSON_MAX_DEPTH 64
#endif

#ifdef __cplusplus
#define LENSNET__CAST(type, expr) ((type)(expr))
#else
#define LENSNET__CAST(type, expr) (expr)
#endif
/* GCC 12 at -O2 vectorises only loops that need no peeling; the element-wise helpers marked
 * with this get -O3's vectoriser (they are leaves, so nothing else changes). */
#if defined(__GNUC__) && !defined(__clang__) && !defined(__INTEL_COMPILER)
#define LENSNET__VECTORIZE __attribute__((optimize("O3")))
#else
#define LENSNET__VECTORIZE
#endif

#if defined(__cplusplus)
#define LENSNET__RESTRICT __restrict
#else
#define LENSNET__RESTRICT restrict
#endif

LENSNET_API const char *lensnet_result_string(lensnet_result r) {
  switch (r) {
#define LENSNET__CASE(name, text) case name: return text;
    LENSNET_RESULTS(LENSNET__CASE)
#undef LENSNET__CASE
    default: return "unknown result";
  }
}

/* Records a failure with a formatted sentence; returns r so callers can `return lensnet__fail(...)`. */
static lensnet_result lensnet__fail(lensnet_error *err, lensnet_result r, const char *fmt, ...) {
  if (err) {
    va_list ap;
    err->result = r;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  }
  return r;
}

/* a*b with overflow check: returns 0 when the product overflows. */
static int lensnet__mul_ok(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > (size_t)-1 / a) return 0;
  *out = a * b;
  return 1;
}

/* Puts "path: " in front of an error message written by a memory parser. */
static void lensnet__prefix_path(lensnet_error *err, const char *path) {
  char msg[sizeof err->message];
  if (!err) return;
  snprintf(msg, sizeof msg, "%.120s: %.190s", path, err->message);
  memcpy(err->message, msg, sizeof msg);
}

/* ---- tensors ------------------------------------------------------------------------------ */

LENSNET_API size_t lensnet_tensor_count(const lensnet_tensor *t) {
  size_t n = 1;
  int i;
  if (!t) return 0;
  for (i = 0; i < t->ndim; i++)
    if (!lensnet__mul_ok(n, t->shape[i], &n)) return 0;
  return n;
}

static lensnet_result lensnet__tensor_alloc_as(lensnet_tensor *t, int ndim, const size_t *shape, int zero, lensnet_error *err);

LENSNET_API lensnet_result lensnet_tensor_alloc(lensnet_tensor *t, int ndim, const size_t *shape, lensnet_error *err) {
  return lensnet__tensor_alloc_as(t, ndim, shape, 1, err);
}

/* lensnet_tensor_alloc, leaving the values unset unless zero (for a reader that fills them all). */
static lensnet_result lensnet__tensor_alloc_as(lensnet_tensor *t, int ndim, const size_t *shape, int zero, lensnet_error *err) {
  size_t n = 1, bytes, dims[LENSNET_MAX_DIMS];
  int i;
  if (!t || (ndim > 0 && !shape)) return lensnet__fail(err, LENSNET_ERR_ARG, "tensor: the tensor and its shape are required (NULL given)");
  if (ndim < 0 || ndim > LENSNET_MAX_DIMS) {
    memset(t, 0, sizeof *t);
    return lensnet__fail(err, LENSNET_ERR_ARG, "tensor rank %d is outside 0..%d", ndim, LENSNET_MAX_DIMS);
  }
  for (i = 0; i < ndim; i++) dims[i] = shape[i]; /* before clearing t: shape may be t->shape */
  memset(t, 0, sizeof *t);
  for (i = 0; i < ndim; i++) {
    if (!lensnet__mul_ok(n, dims[i], &n) || n > LENSNET_MAX_ELEMENTS)
      return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "tensor of that shape exceeds %lu elements",
                           (unsigned long)LENSNET_MAX_ELEMENTS);
    t->shape[i] = dims[i];
  }
  t->ndim = ndim;
  if (!lensnet__mul_ok(n, sizeof(float), &bytes)) return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "tensor too large");
  t->data = LENSNET__CAST(float *, LENSNET_MALLOC(bytes ? bytes : 1));
  if (!t->data) return lensnet__fail(err, LENSNET_ERR_NOMEM, "cannot allocate %lu bytes for a tensor", (unsigned long)bytes);
  if (zero) memset(t->data, 0, bytes);
  return LENSNET_OK;
}

LENSNET_API void lensnet_tensor_free(lensnet_tensor *t) {
  if (!t) return;
  if (t->data) LENSNET_FREE(t->data);
  memset(t, 0, sizeof *t);
}

/* ---- whole-file reading and atomic writing ------------------------------------------------- */

/* Reads the rest of an open file into a fresh buffer (with one extra NUL byte), and closes it. */
static lensnet_result lensnet__read_stream(FILE *f, const char *path, unsigned char **out, size_t *len, lensnet_error *err) {
  unsigned char *buf = NULL;
  size_t cap = 0, n = 0;
  *out = NULL;
  *len = 0;
  for (;;) {
    size_t got;
    if (n + 65536 + 1 > cap) {
      size_t ncap = cap ? cap * 2 : 1 << 20;
      unsigned char *nb;
      if (ncap < cap) { fclose(f); LENSNET_FREE(buf); return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "%s: file too large", path); }
      nb = LENSNET__CAST(unsigned char *, LENSNET_REALLOC(buf, ncap));
      if (!nb) { fclose(f); LENSNET_FREE(buf); return lensnet__fail(err, LENSNET_ERR_NOMEM, "%s: out of memory reading the file", path); }
      buf = nb;
      cap = ncap;
    }
    got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0) break;
  }
  if (ferror(f)) {
#ifdef EISDIR
    int dir = errno == EISDIR; /* fopen opens a folder on POSIX systems; reading it fails so */
#else
    int dir = 0;
#endif
    fclose(f);
    LENSNET_FREE(buf);
    return lensnet__fail(err, LENSNET_ERR_IO, dir ? "%s: is a folder, not a file" : "%s: read error", path);
  }
  fclose(f);
  buf[n] = 0;
  *out = buf;
  *len = n;
  return LENSNET_OK;
}

/* Reads a whole file into a fresh buffer (with one extra NUL byte). */
static lensnet_result lensnet__read_file(const char *path, unsigned char **out, size_t *len, lensnet_error *err) {
  FILE *f = path ? fopen(path, "rb") : NULL;
  *out = NULL;
  *len = 0;
  if (!path) return lensnet__fail(err, LENSNET_ERR_ARG, "no file name given (the path is NULL)");
  if (!f) return lensnet__fail(err, LENSNET_ERR_IO, "%s: cannot open for reading: %s", path, strerror(errno));
  return lensnet__read_stream(f, path, out, len, err);
}

/* The file half of every reader that has a _memory twin: reads the file, hands its bytes to
 * parse (with the reader's arguments in args), frees them and names the file in a failure. */
typedef lensnet_result (*lensnet__bytes_parser)(const unsigned char *bytes, size_t len, void *args, lensnet_error *err);
static lensnet_result lensnet__parse_file(const char *path, lensnet__bytes_parser parse, void *args, lensnet_error *err) {
  unsigned char *buf;
  size_t len;
  lensnet_result r = lensnet__read_file(path, &buf, &len, err);
  if (r != LENSNET_OK) return r;
  r = parse(buf, len, args, err);
  LENSNET_FREE(buf);
  if (r != LENSNET_OK) lensnet__prefix_path(err, path);
  return r;
}

/* Files written under `path.tmp` and renamed over `path` once complete, so a reader never sees
 * half a file: *paths holds "path", NUL, "path.tmp", NUL in one allocation. */
static const char *lensnet__tmp_name(const char *paths) { return paths + strlen(paths) + 1; }

static lensnet_result lensnet__atomic_open(const char *path, FILE **f, char **paths, lensnet_error *err) {
  size_t n = path ? strlen(path) : 0;
  *f = NULL;
  *paths = NULL;
  if (!path) return lensnet__fail(err, LENSNET_ERR_ARG, "no file name given (the path is NULL)");
  *paths = n < (size_t)-1 / 2 - 8 ? LENSNET__CAST(char *, LENSNET_MALLOC(2 * n + 6)) : NULL;
  if (!*paths) return lensnet__fail(err, LENSNET_ERR_NOMEM, "%s: out of memory", path);
  memcpy(*paths, path, n + 1);
  memcpy(*paths + n + 1, path, n);
  memcpy(*paths + 2 * n + 1, ".tmp", 5);
  *f = fopen(lensnet__tmp_name(*paths), "wb");
  if (!*f) {
    lensnet__fail(err, LENSNET_ERR_IO, "%s: cannot open for writing: %s", lensnet__tmp_name(*paths), strerror(errno));
    LENSNET_FREE(*paths);
    *paths = NULL;
    return LENSNET_ERR_IO;
  }
  return LENSNET_OK;
}

/* Closes and removes the temporary file; nothing is left behind. */
static void lensnet__atomic_discard(FILE **f, char **paths) {
  if (*f) fclose(*f);
  if (*paths) { remove(lensnet__tmp_name(*paths)); LENSNET_FREE(*paths); }
  *f = NULL;
  *paths = NULL;
}

/* Flushes, syncs when asked, closes and renames into place; discards the file on any failure. */
static lensnet_result lensnet__atomic_commit(FILE **f, char **paths, int sync_to_disk, lensnet_error *err) {
  const char *tmp = lensnet__tmp_name(*paths);
  int ok = fflush(*f) == 0;
  lensnet_result r = LENSNET_OK;
#ifdef LENSNET__HAVE_FSYNC
  if (ok && sync_to_disk && fsync(fileno(*f)) != 0) ok = 0;
#else
  if (sync_to_disk) r = lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "%s: fsync is not available on this system", tmp);
#endif
  ok &= fclose(*f) == 0;
  *f = NULL;
  if (r == LENSNET_OK && !ok) r = lensnet__fail(err, LENSNET_ERR_IO, "%s: write failed (disk full?)", tmp);
  if (r == LENSNET_OK && rename(tmp, *paths) != 0)
    r = lensnet__fail(err, LENSNET_ERR_IO, "%s: cannot rename %s into place: %s", *paths, tmp, strerror(errno));
  if (r != LENSNET_OK) remove(tmp);
  LENSNET_FREE(*paths);
  *paths = NULL;
  return r;
}

/* Writes chunks through an atomic file (above). */
typedef struct { const void *data; size_t len; } lensnet__chunk;

static lensnet_result lensnet__write_atomic(const char *path, const lensnet__chunk *chunks, int nchunks, lensnet_error *err) {
  FILE *f;
  char *paths;
  int i;
  lensnet_result r = lensnet__atomic_open(path, &f, &paths, err);
  if (r != LENSNET_OK) return r;
  for (i = 0; i < nchunks; i++)
    if (chunks[i].len && fwrite(chunks[i].data, 1, chunks[i].len, f) != chunks[i].len) {
      lensnet__fail(err, LENSNET_ERR_IO, "%s: write failed (disk full?)", lensnet__tmp_name(paths));
      lensnet__atomic_discard(&f, &paths);
      return LENSNET_ERR_IO;
    }
  return lensnet__atomic_commit(&f, &paths, 0, err);
}

/* Little-endian float32 store, byte by byte, so files are the same on every host. */
static void lensnet__put_f32le(unsigned char *p, float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  p[0] = (unsigned char)u; p[1] = (unsigned char)(u >> 8); p[2] = (unsigned char)(u >> 16); p[3] = (unsigned char)(u >> 24);
}
/* 64-bit integers as text without printf's %llu and %llx, which small C libraries (newlib-nano, the
 * usual one on microcontrollers) do not have: there the arguments after one would be read askew. */
static const char *lensnet__u64_text(uint64_t v, char *buf) { /* buf: 21 bytes or more */
  char t[24];
  int n = 0, i;
  do { t[n++] = (char)('0' + (int)(v % 10u)); v /= 10u; } while (v);
  for (i = 0; i < n; i++) buf[i] = t[n - 1 - i];
  buf[n] = 0;
  return buf;
}
static const char *lensnet__i64_text(int64_t v, char *buf) { /* buf: 22 bytes or more */
  if (v >= 0) return lensnet__u64_text((uint64_t)v, buf);
  buf[0] = '-';
  lensnet__u64_text((uint64_t)0 - (uint64_t)v, buf + 1);
  return buf;
}
/* v as 16 lower-case hex digits and a NUL into out[17]. */
static void lensnet__u64_hex(uint64_t v, char *out) {
  int k;
  for (k = 15; k >= 0; k--, v >>= 4) out[k] = "0123456789abcdef"[v & 15u];
  out[16] = 0;
}

static uint64_t lensnet__get_le(const unsigned char *p, int nbytes) {
  uint64_t v = 0;
  int i;
  for (i = nbytes - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
static uint64_t lensnet__get_be(const unsigned char *p, int nbytes) {
  uint64_t v = 0;
  int i;
  for (i = 0; i < nbytes; i++) v = (v << 8) | p[i];
  return v;
}
static float lensnet__f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static double lensnet__f64_from_bits(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }

/* ---- JSON ------------------------------------------------------------------------------------ */

typedef struct {
  const char *p, *end;
  lensnet_error *err;
  int depth;
} lensnet__json_parser;

static void lensnet__json_free_items(lensnet_json *v) {
  size_t i;
  if (v->key) LENSNET_FREE(v->key);
  if (v->string) LENSNET_FREE(v->string);
  for (i = 0; i < v->count; i++) lensnet__json_free_items(&v->items[i]);
  if (v->items) LENSNET_FREE(v->items);
}

LENSNET_API void lensnet_json_free(lensnet_json *v) {
  if (!v) return;
  lensnet__json_free_items(v);
  LENSNET_FREE(v);
}

static void lensnet__json_ws(lensnet__json_parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static lensnet_result lensnet__json_error(lensnet__json_parser *ps, const char *what, const char *start) {
  return lensnet__fail(ps->err, LENSNET_ERR_FORMAT, "JSON: %s at byte %ld", what, (long)(ps->p - start));
}

static int lensnet__hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  int i;
  for (i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return 0;
  }
  *out = v;
  return 1;
}

static size_t lensnet__utf8_put(char *o, unsigned cp) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) { o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F)); return 3; }
  o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Parses a string literal at ps->p (which is at the opening quote). */
static lensnet_result lensnet__json_string(lensnet__json_parser *ps, const char *start, char **out, size_t *outlen) {
  const char *q = ps->p + 1;
  size_t cap = 0, n = 0;
  char *s;
  /* The decoded string is never longer than the literal. */
  while (q < ps->end && *q != '"') { if (*q == '\\') q++; q++; }
  if (q >= ps->end) return lensnet__json_error(ps, "unterminated string", start);
  cap = (size_t)(q - ps->p) + 1;
  s = LENSNET__CAST(char *, LENSNET_MALLOC(cap));
  if (!s) return lensnet__fail(ps->err, LENSNET_ERR_NOMEM, "JSON: out of memory");
  ps->p++;
  while (*ps->p != '"') {
    unsigned char c = (unsigned char)*ps->p;
    if (c < 0x20) { LENSNET_FREE(s); return lensnet__json_error(ps, "control character in string", start); }
    if (c != '\\') { s[n++] = (char)c; ps->p++; continue; }
    ps->p++;
    switch (*ps->p) {
      case '"': s[n++] = '"'; break;
      case '\\': s[n++] = '\\'; break;
      case '/': s[n++] = '/'; break;
      case 'b': s[n++] = '\b'; break;
      case 'f': s[n++] = '\f'; break;
      case 'n': s[n++] = '\n'; break;
      case 'r': s[n++] = '\r'; break;
      case 't': s[n++] = '\t'; break;
      case 'u': {
        unsigned cp, lo;
        if (ps->end - ps->p < 5 || !lensnet__hex4(ps->p + 1, &cp)) { LENSNET_FREE(s); return lensnet__json_error(ps, "bad \\u escape", start); }
        ps->p += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && ps->end - ps->p >= 7 && ps->p[1] == '\\' && ps->p[2] == 'u' &&
            lensnet__hex4(ps->p + 3, &lo) && lo >= 0xDC00 && lo < 0xE000) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          ps->p += 6;
        }
        n += lensnet__utf8_put(s + n, cp); /* 6+ literal bytes always cover <= 4 output bytes */
        break;
      }
      default: LENSNET_FREE(s); return lensnet__json_error(ps, "bad escape in string", start);
    }
    ps->p++;
  }
  ps->p++;
  s[n] = 0;
  *out = s;
  *outlen = n;
  return LENSNET_OK;
}

static lensnet_result lensnet__json_value(lensnet__json_parser *ps, const char *start, lensnet_json *v);

static lensnet_result lensnet__json_push(lensnet__json_parser *ps, lensnet_json *v, size_t *cap, lensnet_json **slot) {
  if (v->count == *cap) {
    size_t ncap = *cap ? *cap * 2 : 4, bytes;
    lensnet_json *ni;
    if (!lensnet__mul_ok(ncap, sizeof(lensnet_json), &bytes)) return lensnet__fail(ps->err, LENSNET_ERR_TOO_LARGE, "JSON: too many items");
    ni = LENSNET__CAST(lensnet_json *, LENSNET_REALLOC(v->items, bytes));
    if (!ni) return lensnet__fail(ps->err, LENSNET_ERR_NOMEM, "JSON: out of memory");
    v->items = ni;
    *cap = ncap;
  }
  *slot = &v->items[v->count];
  memset(*slot, 0, sizeof **slot);
  v->count++;
  return LENSNET_OK;
}

static lensnet_result lensnet__json_container(lensnet__json_parser *ps, const char *start, lensnet_json *v, int is_object) {
  char close = is_object ? '}' : ']';
  size_t cap = 0;
  lensnet_result r;
  v->type = is_object ? LENSNET_JSON_OBJECT : LENSNET_JSON_ARRAY;
  if (++ps->depth > LENSNET_JSON_MAX_DEPTH) return lensnet__json_error(ps, "nesting too deep", start);
  ps->p++;
  lensnet__json_ws(ps);
  if (ps->p < ps->end && *ps->p == close) { ps->p++; ps->depth--; return LENSNET_OK; }
  for (;;) {
    lensnet_json *item = NULL;
    char *key = NULL;
    size_t keylen;
    lensnet__json_ws(ps);
    if (is_object) {
      if (ps->p >= ps->end || *ps->p != '"') return lensnet__json_error(ps, "expected a member name", start);
      if ((r = lensnet__json_string(ps, start, &key, &keylen)) != LENSNET_OK) return r;
      lensnet__json_ws(ps);
      if (ps->p >= ps->end || *ps->p != ':') { LENSNET_FREE(key); return lensnet__json_error(ps, "expected ':'", start); }
      ps->p++;
    }
    if ((r = lensnet__json_push(ps, v, &cap, &item)) != LENSNET_OK) { if (key) LENSNET_FREE(key); return r; }
    item->key = key;
    if ((r = lensnet__json_value(ps, start, item)) != LENSNET_OK) return r;
    lensnet__json_ws(ps);
    if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
    if (ps->p < ps->end && *ps->p == close) { ps->p++; break; }
    return lensnet__json_error(ps, is_object ? "expected ',' or '}'" : "expected ',' or ']'", start);
  }
  ps->depth--;
  return LENSNET_OK;
}

static lensnet_result lensnet__json_value(lensnet__json_parser *ps, const char *start, lensnet_json *v) {
  lensnet__json_ws(ps);
  if (ps->p >= ps->end) return lensnet__json_error(ps, "unexpected end of text", start);
  switch (*ps->p) {
    case '{': return lensnet__json_container(ps, start, v, 1);
    case '[': return lensnet__json_container(ps, start, v, 0);
    case '"': v->type = LENSNET_JSON_STRING; return lensnet__json_string(ps, start, &v->string, &v->string_len);
    case 't': if (ps->end - ps->p >= 4 && !memcmp(ps->p, "true", 4)) { v->type = LENSNET_JSON_BOOL; v->number = 1; ps->p += 4; return LENSNET_OK; } break;
    case 'f': if (ps->end - ps->p >= 5 && !memcmp(ps->p, "false", 5)) { v->type = LENSNET_JSON_BOOL; ps->p += 5; return LENSNET_OK; } break;
    case 'n': if (ps->end - ps->p >= 4 && !memcmp(ps->p, "null", 4)) { v->type = LENSNET_JSON_NULL; ps->p += 4; return LENSNET_OK; } break;
    default: {
      /* Numbers: validate the JSON grammar, then convert a bounded copy with strtod. */
      const char *q = ps->p;
      char buf[64];
      if (q < ps->end && *q == '-') q++;
      if (q >= ps->end || *q < '0' || *q > '9') break;
      while (q < ps->end && *q >= '0' && *q <= '9') q++;
      if (q < ps->end && *q == '.') { q++; if (q >= ps->end || *q < '0' || *q > '9') break; while (q < ps->end && *q >= '0' && *q <= '9') q++; }
      if (q < ps->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < ps->end && (*q == '+' || *q == '-')) q++;
        if (q >= ps->end || *q < '0' || *q > '9') break;
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
      }
      if ((size_t)(q - ps->p) >= sizeof buf) return lensnet__json_error(ps, "number too long", start);
      memcpy(buf, ps->p, (size_t)(q - ps->p));
      buf[q - ps->p] = 0;
      v->type = LENSNET_JSON_NUMBER;
      v->number = strtod(buf, NULL);
      ps->p = q;
      return LENSNET_OK;
    }
  }
  return lensnet__json_error(ps, "unexpected character", start);
}

LENSNET_API lensnet_result lensnet_json_parse(const char *text, size_t len, lensnet_json **out, lensnet_error *err) {
  lensnet__json_parser ps;
  lensnet_json *root;
  lensnet_result r;
  if (!out || (!text && len)) return lensnet__fail(err, LENSNET_ERR_ARG, "JSON: the text and the output are required (NULL given)");
  *out = NULL;
  root = LENSNET__CAST(lensnet_json *, LENSNET_MALLOC(sizeof *root));
  if (!root) return lensnet__fail(err, LENSNET_ERR_NOMEM, "JSON: out of memory");
  memset(root, 0, sizeof *root);
  ps.p = text;
  ps.end = text + len;
  ps.err = err;
  ps.depth = 0;
  r = lensnet__json_value(&ps, text, root);
  if (r == LENSNET_OK) {
    lensnet__json_ws(&ps);
    if (ps.p != ps.end) r = lensnet__json_error(&ps, "trailing characters after the value", text);
  }
  if (r != LENSNET_OK) { lensnet_json_free(root); return r; }
  *out = root;
  return LENSNET_OK;
}

LENSNET_API const lensnet_json *lensnet_json_get(const lensnet_json *obj, const char *key) {
  size_t i;
  if (!obj || obj->type != LENSNET_JSON_OBJECT) return NULL;
  for (i = 0; i < obj->count; i++)
    if (obj->items[i].key && strcmp(obj->items[i].key, key) == 0) return &obj->items[i];
  return NULL;
}

/* ---- .npy -------------------------------------------------------------------------------- */

/* Finds 'key': in a NumPy header dictionary and returns a pointer just after the colon. */
static const char *lensnet__npy_field(const char *h, size_t hlen, const char *key) {
  size_t klen = strlen(key), i;
  for (i = 0; i + klen + 2 < hlen; i++) {
    if ((h[i] == '\'' || h[i] == '"') && memcmp(h + i + 1, key, klen) == 0 && h[i + 1 + klen] == h[i]) {
      const char *p = h + i + klen + 2;
      while (p < h + hlen && (*p == ' ' || *p == ':')) p++;
      return p;
    }
  }
  return NULL;
}

/* The header of a .npy held in bytes[0, len): into info, with data_offset. The data itself is
 * not checked here. */
static lensnet_result lensnet__npy_parse_header(const unsigned char *b, size_t len, lensnet_npy_info *info, lensnet_error *err) {
  size_t hlen, off;
  const char *h, *p, *hend;
  char order, kind;
  int size;
  memset(info, 0, sizeof *info);
  if (!len) return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: the file is empty");
  if (memcmp(b, "\x93NUMPY", len < 6 ? len : 6) != 0) return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: missing the \\x93NUMPY magic");
  if (len < 10) return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: truncated header (%lu bytes)", (unsigned long)len);
  if (b[6] == 1) { hlen = (size_t)lensnet__get_le(b + 8, 2); off = 10; }
  else if (b[6] == 2 || b[6] == 3) {
    if (len < 12) return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: truncated header");
    hlen = (size_t)lensnet__get_le(b + 8, 4); off = 12;
  } else return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "npy: format version %d is not supported", b[6]);
  if (hlen > len - off) return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: header length %lu runs past the end of the file", (unsigned long)hlen);
  h = (const char *)b + off;
  hend = h + hlen;
  /* dtype */
  p = lensnet__npy_field(h, hlen, "descr");
  if (!p || p + 4 > hend || (*p != '\'' && *p != '"')) return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: header has no 'descr'");
  order = p[1]; kind = p[2];
  size = 0;
  if (p + 5 <= hend && p[3] >= '1' && p[3] <= '8' && p[4] == p[0]) size = p[3] - '0';
  if (!size || (order != '<' && order != '>' && order != '|' && order != '=')) {
    const char *q = p + 1; /* the dtype's text, to its closing quote */
    while (q < hend && *q != *p && q - p < 40) q++;
    return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "npy: dtype '%.*s' is not supported (use f4, f8, i1-i8, u1-u8)", (int)(q - p - 1), p + 1);
  }
  if (!((kind == 'f' && (size == 4 || size == 8)) || ((kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8))))
    return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "npy: dtype %c%d is not supported (use f4, f8, i1-i8, u1-u8)", kind, size);
  info->kind = kind;
  info->item_size = size;
  info->big_endian = order == '>';
  /* order */
  p = lensnet__npy_field(h, hlen, "fortran_order");
  if (!p) return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: header has no 'fortran_order'");
  if (hend - p >= 4 && memcmp(p, "True", 4) == 0) return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "npy: Fortran-ordered arrays are not supported; save with C order");
  /* shape */
  p = lensnet__npy_field(h, hlen, "shape");
  if (!p || p >= hend || *p != '(') return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: header has no 'shape' tuple");
  p++;
  for (;;) {
    size_t v = 0;
    while (p < hend && (*p == ' ' || *p == ',')) p++;
    if (p >= hend) return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: unterminated shape");
    if (*p == ')') break;
    if (*p < '0' || *p > '9') return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: bad character in shape");
    while (p < hend && *p >= '0' && *p <= '9') {
      if (v > ((size_t)-1 - 9) / 10) return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "npy: dimension too large");
      v = v * 10 + (size_t)(*p - '0');
      p++;
    }
    if (p < hend && *p == 'L') p++;
    if (info->ndim == LENSNET_MAX_DIMS) return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "npy: more than %d dimensions", LENSNET_MAX_DIMS);
    info->shape[info->ndim++] = v;
  }
  info->data_offset = off + hlen;
  return LENSNET_OK;
}

/* Elements in the array, and its data bytes; fails past LENSNET_MAX_ELEMENTS. */
static lensnet_result lensnet__npy_sizes(const lensnet_npy_info *info, size_t *count, size_t *bytes, lensnet_error *err) {
  size_t i;
  *count = 1;
  for (i = 0; i < (size_t)info->ndim; i++)
    if (!lensnet__mul_ok(*count, info->shape[i], count) || *count > LENSNET_MAX_ELEMENTS)
      return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "npy: shape exceeds %lu elements", (unsigned long)LENSNET_MAX_ELEMENTS);
  if (!lensnet__mul_ok(*count, (size_t)info->item_size, bytes)) return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "npy: array too large");
  return LENSNET_OK;
}

/* count elements of the file's type at b, converted to float32 into out */
/* Are the values stored as this host's floats (<f4 on a little-endian host), to be taken as they are? */
static int lensnet__npy_native(const lensnet_npy_info *info) {
  const uint32_t one = 1;
  return info->kind == 'f' && info->item_size == 4 && !info->big_endian && *(const unsigned char *)&one == 1;
}

static void lensnet__npy_convert(const lensnet_npy_info *info, const unsigned char *b, size_t count, float *out) {
  size_t i;
  int size = info->item_size;
  if (lensnet__npy_native(info) && count) {
    memcpy(out, b, count * sizeof(float)); /* <f4 on a little-endian host (IEEE-754 floats): the bytes as they are */
    return;
  }
  for (i = 0; i < count; i++) {
    const unsigned char *e = b + i * (size_t)size;
    uint64_t u = info->big_endian ? lensnet__get_be(e, size) : lensnet__get_le(e, size);
    float v;
    if (info->kind == 'f') v = size == 4 ? lensnet__f32_from_bits((uint32_t)u) : (float)lensnet__f64_from_bits(u);
    else if (info->kind == 'u') v = (float)u;
    else { /* sign-extend */
      int shift = 64 - 8 * size;
      v = (float)((int64_t)(u << shift) >> shift);
    }
    out[i] = v;
  }
}

LENSNET_API lensnet_result lensnet_npy_read_memory(const void *bytes, size_t len, lensnet_tensor *out, lensnet_error *err) {
  const unsigned char *b = LENSNET__CAST(const unsigned char *, bytes);
  lensnet_npy_info info;
  size_t count = 0, need = 0;
  lensnet_result r;
  if (!out || (!bytes && len)) return lensnet__fail(err, LENSNET_ERR_ARG, "npy: the bytes and the output are required (NULL given)");
  memset(out, 0, sizeof *out);
  if ((r = lensnet__npy_parse_header(b, len, &info, err)) != LENSNET_OK) return r;
  /* the data must be all there before anything is allocated for it */
  if ((r = lensnet__npy_sizes(&info, &count, &need, err)) != LENSNET_OK) return r;
  if (need > len - info.data_offset)
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "npy: data is truncated (%lu bytes for %lu elements of %d bytes)",
                         (unsigned long)(len - info.data_offset), (unsigned long)count, info.item_size);
  if ((r = lensnet_tensor_alloc(out, info.ndim, info.shape, err)) != LENSNET_OK) return r;
  lensnet__npy_convert(&info, b + info.data_offset, count, out->data);
  return LENSNET_OK;
}

/* Moves f forward by n bytes from where it is, in steps a long can hold. */
static int lensnet__skip(FILE *f, size_t n) {
  while (n > 0) {
    size_t step = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
    if (fseek(f, (long)step, SEEK_CUR) != 0) return 0;
    n -= step;
  }
  return 1;
}

/* The header of the file at f (left at the start of the data), and the file's size. */
static lensnet_result lensnet__npy_file_header(FILE *f, const char *path, lensnet_npy_info *info, lensnet_error *err) {
  unsigned char head[12], *buf;
  size_t got = fread(head, 1, sizeof head, f), hlen, off, total, count = 0, bytes = 0, file_size = 0;
  lensnet_result r;
  long chunk;
#ifdef EISDIR
  if (got == 0 && ferror(f) && errno == EISDIR) return lensnet__fail(err, LENSNET_ERR_IO, "%s: is a folder, not a file", path);
#endif
  if (!got) return lensnet__fail(err, LENSNET_ERR_FORMAT, "%s: npy: the file is empty", path);
  if (memcmp(head, "\x93NUMPY", got < 6 ? got : 6) != 0) return lensnet__fail(err, LENSNET_ERR_FORMAT, "%s: npy: missing the \\x93NUMPY magic", path);
  if (got < 10) return lensnet__fail(err, LENSNET_ERR_FORMAT, "%s: npy: truncated header (%lu bytes)", path, (unsigned long)got);
  if (head[6] == 1) { hlen = (size_t)lensnet__get_le(head + 8, 2); off = 10; }
  else if ((head[6] == 2 || head[6] == 3) && got == 12) { hlen = (size_t)lensnet__get_le(head + 8, 4); off = 12; }
  else if (head[6] == 2 || head[6] == 3) return lensnet__fail(err, LENSNET_ERR_FORMAT, "%s: npy: truncated header", path);
  else return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "%s: npy: format version %d is not supported", path, head[6]);
  if (hlen > ((size_t)1 << 24)) return lensnet__fail(err, LENSNET_ERR_FORMAT, "%s: npy: header of %lu bytes is not plausible", path, (unsigned long)hlen);
  total = off + hlen;
  buf = LENSNET__CAST(unsigned char *, LENSNET_MALLOC(total));
  if (!buf) return lensnet__fail(err, LENSNET_ERR_NOMEM, "%s: out of memory", path);
  /* the 12 bytes read may run past a header shorter than that (version 1, length 0 or 1) */
  if (got > total) got = total;
  memcpy(buf, head, got);
  if (fread(buf + got, 1, total - got, f) != total - got) {
    LENSNET_FREE(buf);
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "%s: npy: header length %lu runs past the end of the file", path, (unsigned long)hlen);
  }
  r = lensnet__npy_parse_header(buf, total, info, err);
  LENSNET_FREE(buf);
  if (r != LENSNET_OK) { lensnet__prefix_path(err, path); return r; }
  if ((r = lensnet__npy_sizes(info, &count, &bytes, err)) != LENSNET_OK) { lensnet__prefix_path(err, path); return r; }
  /* the file's size, counted in steps from the data's start: the data must all be there */
  if (fseek(f, (long)info->data_offset, SEEK_SET) != 0) return lensnet__fail(err, LENSNET_ERR_IO, "%s: cannot seek", path);
  for (;;) {
    unsigned char probe;
    size_t want = bytes - file_size;
    if (want == 0) break;
    chunk = (long)(want < ((size_t)1 << 30) ? want : ((size_t)1 << 30));
    /* seek to the last byte of the step and read it: fseek alone may pass the end */
    if (fseek(f, chunk - 1, SEEK_CUR) != 0 || fread(&probe, 1, 1, f) != 1)
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "%s: npy: data is truncated (%lu elements of %d bytes expected)", path, (unsigned long)count,
                           info->item_size);
    file_size += (size_t)chunk;
  }
  if (fseek(f, (long)info->data_offset, SEEK_SET) != 0) return lensnet__fail(err, LENSNET_ERR_IO, "%s: cannot seek", path);
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_npy_info_read(const char *path, lensnet_npy_info *info, lensnet_error *err) {
  FILE *f;
  lensnet_result r;
  if (!path || !info) return lensnet__fail(err, LENSNET_ERR_ARG, "lensnet_npy_info_read needs a path and an info to fill");
  f = fopen(path, "rb");
  memset(info, 0, sizeof *info);
  if (!f) return lensnet__fail(err, LENSNET_ERR_IO, "%s: cannot open for reading: %s", path, strerror(errno));
  r = lensnet__npy_file_header(f, path, info, err);
  fclose(f);
  return r;
}

/* Rows [first, first + count) of the array whose header lensnet__npy_file_header has just read
 * from f (left at the start of the data) into a fresh tensor; f stays open. */
static lensnet_result lensnet__npy_rows_from(FILE *f, const char *path, const lensnet_npy_info *info, size_t first, size_t count,
                                            lensnet_tensor *out, lensnet_error *err) {
  lensnet_result r;
  size_t row = 1, i, n, shape[LENSNET_MAX_DIMS], done = 0;
  unsigned char buf[65536];
  if (info->ndim < 1 || first > info->shape[0] || count > info->shape[0] - first)
    return lensnet__fail(err, LENSNET_ERR_ARG, "%s: rows %lu to %lu asked of an array with %lu", path, (unsigned long)first,
                         (unsigned long)(first + count), info->ndim ? (unsigned long)info->shape[0] : 0ul);
  for (i = 1; i < (size_t)info->ndim; i++) row *= info->shape[i]; /* cannot overflow: the whole array was checked */
  memcpy(shape, info->shape, sizeof shape);
  shape[0] = count;
  if ((r = lensnet__tensor_alloc_as(out, info->ndim, shape, 0, err)) != LENSNET_OK) return r;
  n = count * row;
  if (!lensnet__skip(f, first * row * (size_t)info->item_size)) { lensnet_tensor_free(out); return lensnet__fail(err, LENSNET_ERR_IO, "%s: cannot seek", path); }
  while (done < n) { /* this host's floats are read into place; others through buf, converted */
    size_t take = n - done, max = lensnet__npy_native(info) ? ((size_t)1 << 28) : sizeof buf / (size_t)info->item_size;
    if (take > max) take = max;
    if (fread(lensnet__npy_native(info) ? (void *)(out->data + done) : (void *)buf, (size_t)info->item_size, take, f) != take) {
      lensnet_tensor_free(out);
      return lensnet__fail(err, LENSNET_ERR_IO, "%s: read error", path);
    }
    if (!lensnet__npy_native(info)) lensnet__npy_convert(info, buf, take, out->data + done);
    done += take;
  }
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_npy_read_rows(const char *path, size_t first, size_t count, lensnet_tensor *out, lensnet_error *err) {
  FILE *f;
  lensnet_npy_info info;
  lensnet_result r;
  if (!path || !out) return lensnet__fail(err, LENSNET_ERR_ARG, "lensnet_npy_read_rows needs a path and a tensor to fill");
  f = fopen(path, "rb");
  memset(out, 0, sizeof *out);
  if (!f) return lensnet__fail(err, LENSNET_ERR_IO, "%s: cannot open for reading: %s", path, strerror(errno));
  if ((r = lensnet__npy_file_header(f, path, &info, err)) == LENSNET_OK) r = lensnet__npy_rows_from(f, path, &info, first, count, out, err);
  fclose(f);
  return r;
}

static lensnet_result lensnet__npy_parse(const unsigned char *bytes, size_t len, void *out, lensnet_error *err) {
  return lensnet_npy_read_memory(bytes, len, LENSNET__CAST(lensnet_tensor *, out), err);
}
/* A file that can be sought (a regular file) is read once, straight into its tensor (no copy of
 * the whole file in between); anything else (a pipe, a FIFO, /dev/stdin), a 0-d array and a file
 * whose header does not parse go through the whole-file reader, which names the problem. */
LENSNET_API lensnet_result lensnet_npy_read(const char *path, lensnet_tensor *out, lensnet_error *err) {
  FILE *f;
  lensnet_npy_info info;
  lensnet_result r;
  if (!path || !out) return lensnet__fail(err, LENSNET_ERR_ARG, "lensnet_npy_read needs a path and a tensor to fill");
  f = fopen(path, "rb");
  memset(out, 0, sizeof *out);
  if (f && fseek(f, 0, SEEK_END) != 0) {
    /* a pipe or FIFO: read whole from this handle (opening a FIFO again would wait for a writer
     * that has gone) */
    unsigned char *buf;
    size_t len;
    clearerr(f);
    if ((r = lensnet__read_stream(f, path, &buf, &len, err)) != LENSNET_OK) return r;
    r = lensnet__npy_parse(buf, len, out, err);
    LENSNET_FREE(buf);
    if (r != LENSNET_OK) lensnet__prefix_path(err, path);
    return r;
  }
  if (f && fseek(f, 0, SEEK_SET) == 0 && lensnet__npy_file_header(f, path, &info, NULL) == LENSNET_OK &&
      info.ndim >= 1) {
    r = lensnet__npy_rows_from(f, path, &info, 0, info.shape[0], out, err);
    fclose(f);
    return r;
  }
  if (f) fclose(f);
  return lensnet__parse_file(path, lensnet__npy_parse, out, err);
}

/* One writer for .npy: the whole array is the streaming writer's rows (see the recipes). */
LENSNET_API lensnet_result lensnet_npy_write(const char *path, const lensnet_tensor *t, lensnet_error *err) {
  lensnet_npy_writer w;
  lensnet_result r;
  if (!t || (!t->data && lensnet_tensor_count(t)))
    return lensnet__fail(err, LENSNET_ERR_ARG, "%s: the tensor and its data are required (NULL given)", path ? path : "npy");
  r = lensnet_npy_writer_begin(&w, path, t->ndim, t->shape, err);
  if (r == LENSNET_OK) r = lensnet_npy_writer_append(&w, t->data, t->ndim ? t->shape[0] : 1, err);
  if (r == LENSNET_OK) r = lensnet_npy_writer_finish(&w, 0, err);
  return r;
}

/* ---- safetensors -------------------------------------------------------------------------- */

static char *lensnet__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = LENSNET__CAST(char *, LENSNET_MALLOC(n));
  if (d) memcpy(d, s, n);
  return d;
}

LENSNET_API void lensnet_safetensors_free(lensnet_safetensors *st) {
  size_t i;
  if (!st) return;
  for (i = 0; i < st->count; i++) {
    LENSNET_FREE(st->tensors[i].name);
    if (!st->tensors[i].borrowed) lensnet_tensor_free(&st->tensors[i].tensor);
  }
  for (i = 0; i < st->meta_count; i++) { LENSNET_FREE(st->meta_keys[i]); LENSNET_FREE(st->meta_values[i]); }
  if (st->tensors) LENSNET_FREE(st->tensors);
  if (st->meta_keys) LENSNET_FREE(st->meta_keys);
  if (st->meta_values) LENSNET_FREE(st->meta_values);
  memset(st, 0, sizeof *st);
}

LENSNET_API const lensnet_tensor *lensnet_safetensors_find(const lensnet_safetensors *st, const char *name) {
  size_t i;
  for (i = 0; i < st->count; i++)
    if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i].tensor;
  return NULL;
}

LENSNET_API const char *lensnet_safetensors_meta(const lensnet_safetensors *st, const char *key) {
  size_t i;
  for (i = 0; i < st->meta_count; i++)
    if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
  return NULL;
}

LENSNET_API lensnet_result lensnet_safetensors_set_meta(lensnet_safetensors *st, const char *key, const char *value) {
  size_t i;
  char *v, *k, **nk, **nv;
  if (!value) {
    for (i = 0; i < st->meta_count; i++)
      if (strcmp(st->meta_keys[i], key) == 0) {
        LENSNET_FREE(st->meta_keys[i]);
        LENSNET_FREE(st->meta_values[i]);
        memmove(st->meta_keys + i, st->meta_keys + i + 1, (st->meta_count - i - 1) * sizeof(char *));
        memmove(st->meta_values + i, st->meta_values + i + 1, (st->meta_count - i - 1) * sizeof(char *));
        st->meta_count--;
        break;
      }
    return LENSNET_OK;
  }
  v = lensnet__strdup(value);
  if (!v) return LENSNET_ERR_NOMEM;
  for (i = 0; i < st->meta_count; i++)
    if (strcmp(st->meta_keys[i], key) == 0) { LENSNET_FREE(st->meta_values[i]); st->meta_values[i] = v; return LENSNET_OK; }
  k = lensnet__strdup(key);
  nk = LENSNET__CAST(char **, LENSNET_REALLOC(st->meta_keys, (st->meta_count + 1) * sizeof(char *)));
  if (nk) st->meta_keys = nk;
  nv = LENSNET__CAST(char **, LENSNET_REALLOC(st->meta_values, (st->meta_count + 1) * sizeof(char *)));
  if (nv) st->meta_values = nv;
  if (!k || !nk || !nv) { LENSNET_FREE(v); if (k) LENSNET_FREE(k); return LENSNET_ERR_NOMEM; }
  st->meta_keys[st->meta_count] = k;
  st->meta_values[st->meta_count] = v;
  st->meta_count++;
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_safetensors_add(lensnet_safetensors *st, const char *name, const lensnet_tensor *t) {
  lensnet_named_tensor *nt = LENSNET__CAST(lensnet_named_tensor *, LENSNET_REALLOC(st->tensors, (st->count + 1) * sizeof *nt));
  lensnet_named_tensor *slot;
  if (!nt) return LENSNET_ERR_NOMEM;
  st->tensors = nt;
  slot = &st->tensors[st->count];
  memset(slot, 0, sizeof *slot);
  if (lensnet_tensor_alloc(&slot->tensor, t->ndim, t->shape, NULL) != LENSNET_OK) return LENSNET_ERR_NOMEM;
  memcpy(slot->tensor.data, t->data, lensnet_tensor_count(t) * sizeof(float));
  slot->name = lensnet__strdup(name);
  if (!slot->name) { lensnet_tensor_free(&slot->tensor); return LENSNET_ERR_NOMEM; }
  st->count++;
  return LENSNET_OK;
}

/* Adds tensor t under name without copying it: t's data must outlive st (lensnet_safetensors_free
 * leaves it). For writers that save a model as it is. */
static lensnet_result lensnet__safetensors_add_view(lensnet_safetensors *st, const char *name, const lensnet_tensor *t) {
  lensnet_named_tensor *nt = LENSNET__CAST(lensnet_named_tensor *, LENSNET_REALLOC(st->tensors, (st->count + 1) * sizeof *nt));
  lensnet_named_tensor *slot;
  if (!nt) return LENSNET_ERR_NOMEM;
  st->tensors = nt;
  slot = &st->tensors[st->count];
  memset(slot, 0, sizeof *slot);
  slot->tensor = *t;
  slot->borrowed = 1;
  slot->name = lensnet__strdup(name);
  if (!slot->name) return LENSNET_ERR_NOMEM;
  st->count++;
  return LENSNET_OK;
}

/* IEEE half and bfloat16 to float. */
static float lensnet__f16_to_f32(unsigned h) {
  unsigned sign = (h >> 15) & 1, ex = (h >> 10) & 0x1F, man = h & 0x3FF;
  float v;
  if (ex == 0) v = ldexpf((float)man, -24);
  else if (ex == 31) v = man ? NAN : INFINITY;
  else v = ldexpf((float)(man | 0x400), (int)ex - 25);
  return sign ? -v : v;
}

LENSNET_API lensnet_result lensnet_safetensors_read_memory(const void *bytes, size_t len, lensnet_safetensors *out, lensnet_error *err) {
  const unsigned char *b = LENSNET__CAST(const unsigned char *, bytes);
  uint64_t hlen;
  lensnet_json *doc = NULL;
  size_t i, data_len;
  const unsigned char *data;
  lensnet_result r;
  char num[24];
  if (!out || (!bytes && len)) return lensnet__fail(err, LENSNET_ERR_ARG, "safetensors: the bytes and the output are required (NULL given)");
  memset(out, 0, sizeof *out);
  if (len < 8) return lensnet__fail(err, LENSNET_ERR_FORMAT, "safetensors: file shorter than its 8-byte header length");
  hlen = lensnet__get_le(b, 8);
  if (hlen > len - 8)
    return lensnet__fail(err, LENSNET_ERR_FORMAT,
                         "safetensors: not a safetensors file, or a cut one: its first 8 bytes give a header of %s bytes, "
                         "past the end of the %lu-byte file", lensnet__u64_text(hlen, num), (unsigned long)len);
  if ((r = lensnet_json_parse((const char *)b + 8, (size_t)hlen, &doc, err)) != LENSNET_OK) return r;
  if (doc->type != LENSNET_JSON_OBJECT) { lensnet_json_free(doc); return lensnet__fail(err, LENSNET_ERR_FORMAT, "safetensors: header is not a JSON object"); }
  data = b + 8 + hlen;
  data_len = len - 8 - (size_t)hlen;
  out->tensors = LENSNET__CAST(lensnet_named_tensor *, LENSNET_MALLOC((doc->count + 1) * sizeof(lensnet_named_tensor)));
  if (!out->tensors) { lensnet_json_free(doc); return lensnet__fail(err, LENSNET_ERR_NOMEM, "safetensors: out of memory"); }
  for (i = 0; i < doc->count; i++) {
    const lensnet_json *e = &doc->items[i], *dt, *sh, *off;
    lensnet_named_tensor *nt;
    size_t shape[LENSNET_MAX_DIMS], k, count, esize = 0, begin, end, need = 0;
    const char *dtype;
    if (strcmp(e->key, "__metadata__") == 0) {
      if (e->type != LENSNET_JSON_OBJECT) { r = lensnet__fail(err, LENSNET_ERR_FORMAT, "safetensors: __metadata__ is not an object"); goto fail; }
      for (k = 0; k < e->count; k++) {
        if (e->items[k].type != LENSNET_JSON_STRING) { r = lensnet__fail(err, LENSNET_ERR_FORMAT, "safetensors: metadata '%.64s' is not a string", e->items[k].key); goto fail; }
        if (lensnet_safetensors_set_meta(out, e->items[k].key, e->items[k].string) != LENSNET_OK) { r = lensnet__fail(err, LENSNET_ERR_NOMEM, "safetensors: out of memory"); goto fail; }
      }
      continue;
    }
    dt = lensnet_json_get(e, "dtype");
    sh = lensnet_json_get(e, "shape");
    off = lensnet_json_get(e, "data_offsets");
    if (!dt || dt->type != LENSNET_JSON_STRING || !sh || sh->type != LENSNET_JSON_ARRAY || !off || off->type != LENSNET_JSON_ARRAY || off->count != 2 ||
        off->items[0].type != LENSNET_JSON_NUMBER || off->items[1].type != LENSNET_JSON_NUMBER) {
      r = lensnet__fail(err, LENSNET_ERR_FORMAT, "safetensors: tensor '%.64s' lacks a valid dtype, shape or data_offsets", e->key);
      goto fail;
    }
    dtype = dt->string;
    if (!strcmp(dtype, "F32") || !strcmp(dtype, "I32")) esize = 4;
    else if (!strcmp(dtype, "F16") || !strcmp(dtype, "BF16")) esize = 2;
    else if (!strcmp(dtype, "F64") || !strcmp(dtype, "I64")) esize = 8;
    else if (!strcmp(dtype, "U8") || !strcmp(dtype, "I8")) esize = 1;
    else { r = lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "safetensors: tensor '%.64s' has dtype %.16s (supported: F32, F16, BF16, F64, I64, I32, I8, U8)", e->key, dtype); goto fail; }
    if (sh->count > LENSNET_MAX_DIMS) { r = lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "safetensors: tensor '%.64s' has more than %d dimensions", e->key, LENSNET_MAX_DIMS); goto fail; }
    for (k = 0; k < sh->count; k++) {
      double d = sh->items[k].number;
      if (sh->items[k].type != LENSNET_JSON_NUMBER || d < 0 || d != floor(d) || d > (double)LENSNET_MAX_ELEMENTS) {
        r = lensnet__fail(err, LENSNET_ERR_FORMAT, "safetensors: tensor '%.64s' has an invalid shape", e->key);
        goto fail;
      }
      shape[k] = (size_t)d;
    }
    {
      double d0 = off->items[0].number, d1 = off->items[1].number;
      if (d0 < 0 || d1 < d0 || d1 > (double)data_len || d0 != floor(d0) || d1 != floor(d1)) {
        r = lensnet__fail(err, LENSNET_ERR_FORMAT, "safetensors: tensor '%.64s' has data_offsets outside the %lu data bytes", e->key, (unsigned long)data_len);
        goto fail;
      }
      begin = (size_t)d0;
      end = (size_t)d1;
    }
    /* The shape is checked against the bytes the file holds before anything is allocated: a
     * header may claim any shape, the file's length may not lie. */
    count = 1;
    for (k = 0; k < sh->count; k++)
      if (!lensnet__mul_ok(count, shape[k], &count)) count = (size_t)-1;
    if (!lensnet__mul_ok(count, esize, &need) || need != end - begin) {
      if (count == (size_t)-1 || !lensnet__mul_ok(count, esize, &need))
        r = lensnet__fail(err, LENSNET_ERR_FORMAT, "safetensors: tensor '%.64s' has %lu data bytes but its shape overflows a size",
                          e->key, (unsigned long)(end - begin));
      else
        r = lensnet__fail(err, LENSNET_ERR_FORMAT, "safetensors: tensor '%.64s' has %lu data bytes but its shape and dtype need %lu",
                          e->key, (unsigned long)(end - begin), (unsigned long)need);
      goto fail;
    }
    nt = &out->tensors[out->count];
    memset(nt, 0, sizeof *nt);
    if ((r = lensnet_tensor_alloc(&nt->tensor, (int)sh->count, shape, err)) != LENSNET_OK) goto fail;
    nt->name = lensnet__strdup(e->key);
    snprintf(nt->dtype, sizeof nt->dtype, "%s", dtype);
    out->count++;
    if (!nt->name) { r = lensnet__fail(err, LENSNET_ERR_NOMEM, "safetensors: out of memory"); goto fail; }
    for (k = 0; k < count; k++) {
      const unsigned char *p = data + begin + k * esize;
      float v;
      if (esize == 4) { uint32_t u = (uint32_t)lensnet__get_le(p, 4); v = dtype[0] == 'F' ? lensnet__f32_from_bits(u) : (float)(int32_t)u; }
      else if (esize == 8) { uint64_t u = lensnet__get_le(p, 8); v = dtype[0] == 'F' ? (float)lensnet__f64_from_bits(u) : (float)(int64_t)u; }
      else if (esize == 2) { unsigned u = (unsigned)lensnet__get_le(p, 2); v = dtype[0] == 'B' ? lensnet__f32_from_bits((uint32_t)u << 16) : lensnet__f16_to_f32(u); }
      else v = dtype[0] == 'I' ? (float)(int8_t)p[0] : (float)p[0];
      nt->tensor.data[k] = v;
    }
  }
  lensnet_json_free(doc);
  return LENSNET_OK;
fail:
  lensnet_json_free(doc);
  lensnet_safetensors_free(out);
  return r;
}

static lensnet_result lensnet__safetensors_parse(const unsigned char *bytes, size_t len, void *out, lensnet_error *err) {
  return lensnet_safetensors_read_memory(bytes, len, LENSNET__CAST(lensnet_safetensors *, out), err);
}
LENSNET_API lensnet_result lensnet_safetensors_read(const char *path, lensnet_safetensors *out, lensnet_error *err) {
  if (!path || !out) return lensnet__fail(err, LENSNET_ERR_ARG, "lensnet_safetensors_read needs a path and a lensnet_safetensors to fill");
  memset(out, 0, sizeof *out);
  return lensnet__parse_file(path, lensnet__safetensors_parse, out, err);
}

/* A growable text buffer for writing JSON headers. */
typedef struct { char *s; size_t len, cap; int oom; } lensnet__text;

static void lensnet__text_put(lensnet__text *t, const char *s, size_t n) {
  if (t->oom) return;
  if (t->len + n + 1 > t->cap) {
    size_t ncap = (t->cap ? t->cap * 2 : 256);
    char *ns;
    while (ncap < t->len + n + 1) ncap *= 2;
    ns = LENSNET__CAST(char *, LENSNET_REALLOC(t->s, ncap));
    if (!ns) { t->oom = 1; return; }
    t->s = ns;
    t->cap = ncap;
  }
  memcpy(t->s + t->len, s, n);
  t->len += n;
  t->s[t->len] = 0;
}
static void lensnet__text_str(lensnet__text *t, const char *s) { lensnet__text_put(t, s, strlen(s)); }
static void lensnet__text_json_string(lensnet__text *t, const char *s) {
  lensnet__text_put(t, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[8];
    if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; lensnet__text_put(t, esc, 2); }
    else if (c == '\n') lensnet__text_put(t, "\\n", 2);
    else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); lensnet__text_put(t, esc, 6); }
    else lensnet__text_put(t, s, 1);
  }
  lensnet__text_put(t, "\"", 1);
}

/* Bytes of the buffer lensnet_safetensors_write streams the data through. */
#define LENSNET__ST_STAGE ((size_t)1 << 18)

LENSNET_API lensnet_result lensnet_safetensors_write(const char *path, const lensnet_safetensors *st, lensnet_error *err) {
  lensnet__text h;
  size_t i, k, offset = 0;
  unsigned char lenbytes[8], *payload;
  lensnet_result r;
  char num[64], *paths = NULL;
  FILE *f = NULL;
  int ok;
  memset(&h, 0, sizeof h);
  lensnet__text_str(&h, "{");
  if (st->meta_count) {
    lensnet__text_str(&h, "\"__metadata__\":{");
    for (i = 0; i < st->meta_count; i++) {
      if (i) lensnet__text_str(&h, ",");
      lensnet__text_json_string(&h, st->meta_keys[i]);
      lensnet__text_str(&h, ":");
      lensnet__text_json_string(&h, st->meta_values[i]);
    }
    lensnet__text_str(&h, "}");
  }
  for (i = 0; i < st->count; i++) {
    const lensnet_tensor *t = &st->tensors[i].tensor;
    int int8 = strcmp(st->tensors[i].dtype, "I8") == 0;
    size_t bytes = lensnet_tensor_count(t) * (int8 ? 1 : 4);
    for (k = 0; int8 && k < bytes; k++)
      if (!(t->data[k] >= -128.0f && t->data[k] <= 127.0f && t->data[k] == floorf(t->data[k]))) {
        LENSNET_FREE(h.s);
        return lensnet__fail(err, LENSNET_ERR_ARG, "safetensors: tensor '%.64s' is to be written as I8 but holds %g", st->tensors[i].name, (double)t->data[k]);
      }
    if (i || st->meta_count) lensnet__text_str(&h, ",");
    lensnet__text_json_string(&h, st->tensors[i].name);
    lensnet__text_str(&h, int8 ? ":{\"dtype\":\"I8\",\"shape\":[" : ":{\"dtype\":\"F32\",\"shape\":[");
    for (k = 0; k < (size_t)t->ndim; k++) {
      snprintf(num, sizeof num, "%s%lu", k ? "," : "", (unsigned long)t->shape[k]);
      lensnet__text_str(&h, num);
    }
    snprintf(num, sizeof num, "],\"data_offsets\":[%lu,%lu]}", (unsigned long)offset, (unsigned long)(offset + bytes));
    lensnet__text_str(&h, num);
    offset += bytes;
  }
  lensnet__text_str(&h, "}");
  /* the data stays 8-byte aligned (out of memory, the text stops growing: no padding loop) */
  while (h.len % 8 && !h.oom) lensnet__text_str(&h, " ");
  if (h.oom) { LENSNET_FREE(h.s); return lensnet__fail(err, LENSNET_ERR_NOMEM, "safetensors: out of memory writing %s", path); }
  /* the data, a tensor at a time through a small buffer of little-endian bytes (a checkpoint is
   * never built whole in memory) */
  payload = LENSNET__CAST(unsigned char *, LENSNET_MALLOC(LENSNET__ST_STAGE));
  if (!payload) { LENSNET_FREE(h.s); return lensnet__fail(err, LENSNET_ERR_NOMEM, "safetensors: out of memory writing %s", path); }
  for (k = 0; k < 8; k++) lenbytes[k] = (unsigned char)((uint64_t)h.len >> (8 * k));
  if ((r = lensnet__atomic_open(path, &f, &paths, err)) != LENSNET_OK) { LENSNET_FREE(h.s); LENSNET_FREE(payload); return r; }
  ok = fwrite(lenbytes, 1, 8, f) == 8 && fwrite(h.s, 1, h.len, f) == h.len;
  for (i = 0; ok && i < st->count; i++) {
    const lensnet_tensor *t = &st->tensors[i].tensor;
    size_t n = lensnet_tensor_count(t), at, len, per = strcmp(st->tensors[i].dtype, "I8") == 0 ? 1 : 4;
    for (at = 0; ok && at < n; at += len) {
      len = n - at < LENSNET__ST_STAGE / 4 ? n - at : LENSNET__ST_STAGE / 4;
      if (per == 1)
        for (k = 0; k < len; k++) payload[k] = (unsigned char)(int8_t)t->data[at + k];
      else
        for (k = 0; k < len; k++) lensnet__put_f32le(payload + 4 * k, t->data[at + k]);
      ok = fwrite(payload, 1, len * per, f) == len * per;
    }
  }
  LENSNET_FREE(h.s);
  LENSNET_FREE(payload);
  if (!ok) {
    lensnet__fail(err, LENSNET_ERR_IO, "%s: write failed (disk full?)", lensnet__tmp_name(paths));
    lensnet__atomic_discard(&f, &paths);
    return LENSNET_ERR_IO;
  }
  return lensnet__atomic_commit(&f, &paths, 0, err);
}


/* ---- FITS --------------------------------------------------------------------------------- */

/* Section numbers refer to the FITS Standard 4.0 (IAU FITS Working Group, 2016). A file is a
 * sequence of 2880-byte blocks (3.1). Each HDU is a header of 80-character cards ending with an
 * END card and padded with blanks to a whole block, then its data, padded to a whole block (3.3).
 * Numbers in the data are big-endian (5.1). */
#define LENSNET__FITS_BLOCK 2880
#define LENSNET__FITS_CARD 80
#define LENSNET__FITS_CARDS_PER_BLOCK 36

enum {
  LENSNET__FITS_PRIMARY,  /* SIMPLE = T: the primary array */
  LENSNET__FITS_GROUPS,   /* primary array in the random-groups format (6) */
  LENSNET__FITS_IMAGE,    /* XTENSION = 'IMAGE' (7.1) */
  LENSNET__FITS_TABLE,    /* XTENSION = 'TABLE' (7.2) */
  LENSNET__FITS_BINTABLE, /* XTENSION = 'BINTABLE' (7.3) */
  LENSNET__FITS_OTHER     /* any other conforming extension */
};

typedef struct {
  int index;                      /* 0 = primary */
  int kind;                       /* LENSNET__FITS_* */
  int zimage;                     /* BINTABLE with ZIMAGE = T: a tile-compressed image (10.1) */
  int bitpix, naxis;
  size_t axis[LENSNET_MAX_DIMS];  /* NAXIS1, NAXIS2, ... (the first LENSNET_MAX_DIMS of them) */
  size_t elements;                /* NAXIS1 * ... * NAXISn; 0 when NAXIS = 0 */
  const char *cards;              /* the first card of the header */
  size_t ncards;                  /* cards before END */
  size_t data_off, data_bytes;    /* where the data starts, and its size without padding */
  size_t next_off;                /* where the next HDU would start (len if the file ends first) */
  char xtension[72];              /* XTENSION value without quotes and trailing blanks */
} lensnet__fits_hdu;

static const char *lensnet__fits_card_at(const lensnet__fits_hdu *h, size_t i) {
  return h->cards + i * LENSNET__FITS_CARD;
}

/* Nonzero if the keyword field (columns 1-8, 4.1.2.1) holds `key` padded with blanks. */
static int lensnet__fits_keyword_is(const char *card, const char *key) {
  size_t n = strlen(key), i;
  if (n > 8 || memcmp(card, key, n) != 0) return 0;
  for (i = n; i < 8; i++) if (card[i] != ' ') return 0;
  return 1;
}

/* A value card has the value indicator "= " in columns 9-10 (4.1.2.2). */
static int lensnet__fits_has_value(const char *card) { return card[8] == '=' && card[9] == ' '; }

/* Checks the syntax every card shares (4.1.2): printable ASCII only, and a keyword of upper-case
 * letters, digits, '-' and '_', left-justified in columns 1-8 and padded with blanks. Returns
 * NULL when the card is well formed, else a description of the fault. */
static const char *lensnet__fits_card_fault(const char *card, int *column) {
  int i, blank = 0;
  for (i = 0; i < LENSNET__FITS_CARD; i++) {
    unsigned char c = (unsigned char)card[i];
    *column = i + 1;
    if (c < 0x20 || c > 0x7E) return "holds a byte that is not printable ASCII";
  }
  for (i = 0; i < 8; i++) {
    char c = card[i];
    *column = i + 1;
    if (c == ' ') { blank = 1; continue; }
    if (blank) return "has a keyword with a blank inside it";
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return "has a keyword with a character other than A-Z, 0-9, '-' and '_'";
  }
  return NULL;
}

/* Finds the value in the text [p, end): a quoted string (with '' for a quote), a complex
 * "(re, im)", or a token ending at a blank or '/'. What follows it must be blanks or a '/'
 * comment (4.2). Returns 0 when the text is not of that form; an empty span means "no value". */
static int lensnet__fits_value_span(const char *p, const char *end, const char **v, size_t *vlen) {
  while (p < end && *p == ' ') p++;
  *v = p;
  if (p < end && *p == '\'') {
    for (p++;; p++) {
      if (p >= end) return 0; /* the string is not closed */
      if (*p == '\'') {
        if (p + 1 < end && p[1] == '\'') { p++; continue; }
        p++;
        break;
      }
    }
  } else if (p < end && *p == '(') {
    while (p < end && *p != ')') p++;
    if (p >= end) return 0;
    p++;
  } else {
    while (p < end && *p != ' ' && *p != '/') p++;
  }
  *vlen = (size_t)(p - *v);
  while (p < end && *p == ' ') p++;
  return p == end || *p == '/';
}

/* Integer value (4.2.3): optional sign and decimal digits, no overflow. */
static int lensnet__fits_parse_int(const char *v, size_t n, int64_t *out) {
  size_t i = 0;
  int neg = 0;
  uint64_t u = 0, limit;
  if (i < n && (v[i] == '+' || v[i] == '-')) neg = v[i++] == '-';
  if (i == n) return 0;
  limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; i < n; i++) {
    unsigned d;
    if (v[i] < '0' || v[i] > '9') return 0;
    d = (unsigned)(v[i] - '0');
    if (u > (limit - d) / 10) return 0;
    u = u * 10 + d;
  }
  *out = neg ? (u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u) : (int64_t)u;
  return 1;
}

/* Real value (4.2.4): [sign] digits [. digits] [E|D [sign] digits], at least one digit before
 * the exponent. Parsed without strtod so the result does not depend on the C locale; exact for
 * up to 19 significant digits and powers of ten within 1e22 (the usual case), otherwise
 * within a few units in the last place, which is far below float32 resolution. */
static int lensnet__fits_parse_real(const char *v, size_t n, double *out) {
  static const double powers[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  size_t i = 0;
  int neg = 0, digits = 0, sig = 0;
  long exp10 = 0, e = 0;
  uint64_t m = 0;
  double x;
  if (i < n && (v[i] == '+' || v[i] == '-')) neg = v[i++] == '-';
  for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, digits++) {
    if (sig < 19) { m = m * 10 + (uint64_t)(v[i] - '0'); if (m) sig++; }
    else exp10++;
  }
  if (i < n && v[i] == '.') {
    for (i++; i < n && v[i] >= '0' && v[i] <= '9'; i++, digits++)
      if (sig < 19) { m = m * 10 + (uint64_t)(v[i] - '0'); if (m) sig++; exp10--; }
  }
  if (!digits) return 0;
  if (i < n && (v[i] == 'E' || v[i] == 'D' || v[i] == 'e' || v[i] == 'd')) {
    int eneg = 0, edigits = 0;
    i++;
    if (i < n && (v[i] == '+' || v[i] == '-')) eneg = v[i++] == '-';
    for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, edigits++)
      if (e < 100000) e = e * 10 + (v[i] - '0');
    if (!edigits) return 0;
    exp10 += eneg ? -e : e;
  }
  if (i != n) return 0;
  x = (double)m;
  if (m == 0) x = 0.0;
  else if (exp10 > 0) {
    while (exp10 > 22 && x < DBL_MAX) { x *= 1e22; exp10 -= 22; }
    x = exp10 > 22 ? HUGE_VAL : x * powers[exp10];
  } else if (exp10 < 0) {
    while (exp10 < -22 && x > 0.0) { x /= 1e22; exp10 += 22; }
    x /= powers[exp10 < -22 ? 22 : -exp10];
  }
  if (!(x <= DBL_MAX)) return 0; /* out of the double range */
  *out = neg ? -x : x;
  return 1;
}

/* The first value card with this keyword among the header's cards, or NULL. */
static const char *lensnet__fits_find(const lensnet__fits_hdu *h, const char *key) {
  size_t i;
  for (i = 0; i < h->ncards; i++) {
    const char *c = lensnet__fits_card_at(h, i);
    if (lensnet__fits_keyword_is(c, key) && lensnet__fits_has_value(c)) return c;
  }
  return NULL;
}

/* The value span of a standard value card (columns 11-80). */
static int lensnet__fits_card_value(const char *card, const char **v, size_t *n) {
  return lensnet__fits_has_value(card) && lensnet__fits_value_span(card + 10, card + LENSNET__FITS_CARD, v, n);
}

/* The failure of a card whose value is not of the kind its keyword needs (`what`, as the
 * standard's `section` defines it). */
static lensnet_result lensnet__fits_bad_value(const lensnet__fits_hdu *h, const char *card, const char *what, const char *section,
                                              lensnet_error *err) {
  return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: %.8s = %.20s is not %s (FITS 4.0 section %s)", h->index, card,
                       card + 10, what, section);
}

static lensnet_result lensnet__fits_card_int(const lensnet__fits_hdu *h, const char *card, int64_t *out, lensnet_error *err) {
  const char *v;
  size_t n;
  if (!lensnet__fits_card_value(card, &v, &n) || !lensnet__fits_parse_int(v, n, out))
    return lensnet__fits_bad_value(h, card, "an integer value", "4.2.3", err);
  return LENSNET_OK;
}

static lensnet_result lensnet__fits_card_real(const lensnet__fits_hdu *h, const char *card, double *out, lensnet_error *err) {
  const char *v;
  size_t n;
  if (!lensnet__fits_card_value(card, &v, &n) || !lensnet__fits_parse_real(v, n, out))
    return lensnet__fits_bad_value(h, card, "a finite real value", "4.2.4", err);
  return LENSNET_OK;
}

/* Logical value (4.2.2): T or F. Sets *out to 1 or 0. */
static lensnet_result lensnet__fits_card_logical(const lensnet__fits_hdu *h, const char *card, int *out, lensnet_error *err) {
  const char *v;
  size_t n;
  if (!lensnet__fits_card_value(card, &v, &n) || n != 1 || (*v != 'T' && *v != 'F'))
    return lensnet__fits_bad_value(h, card, "a logical value T or F", "4.2.2", err);
  *out = *v == 'T';
  return LENSNET_OK;
}

/* A logical keyword that may be absent (then 0). */
static lensnet_result lensnet__fits_flag(const lensnet__fits_hdu *h, const char *key, int *out, lensnet_error *err) {
  const char *c = lensnet__fits_find(h, key);
  *out = 0;
  return c ? lensnet__fits_card_logical(h, c, out, err) : LENSNET_OK;
}

/* A non-negative integer that must fit a size_t. */
static lensnet_result lensnet__fits_card_size(const lensnet__fits_hdu *h, const char *card, size_t *out, lensnet_error *err) {
  int64_t v = 0;
  char num[24];
  lensnet_result r = lensnet__fits_card_int(h, card, &v, err);
  if (r != LENSNET_OK) return r;
  if (v < 0) return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: %.8s = %s must not be negative", h->index, card, lensnet__i64_text(v, num));
  if ((uint64_t)v > (uint64_t)(size_t)-1) return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "FITS HDU %d: %.8s = %s is too large", h->index, card, lensnet__i64_text(v, num));
  *out = (size_t)v;
  return LENSNET_OK;
}

/* Copies a string value without its quotes, with '' made ' and trailing blanks dropped (4.2.1.1). */
static size_t lensnet__fits_unquote(const char *v, size_t n, char *dst, size_t cap) {
  size_t i, k = 0, keep = 0;
  for (i = 1; i + 1 < n; i++) {
    if (v[i] == '\'') i++; /* the first of a doubled quote */
    if (k + 1 < cap) dst[k] = v[i];
    k++;
    if (v[i] != ' ') keep = k;
  }
  if (cap) dst[(keep < cap ? keep : cap - 1)] = 0;
  return keep;
}

/* Finds the END card of the header that starts at h->cards, checking the syntax of every card
 * and the blank fill after END (4.4.1). Sets h->ncards and h->data_off. */
static lensnet_result lensnet__fits_scan_cards(const unsigned char *b, size_t len, size_t off, lensnet__fits_hdu *h, lensnet_error *err) {
  size_t pos = off, n = 0;
  int found_end = 0, k, col;
  while (!found_end) {
    if (len - pos < LENSNET__FITS_BLOCK)
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: the header is truncated (no END card before the end of the file)", h->index);
    for (k = 0; k < LENSNET__FITS_CARDS_PER_BLOCK; k++) {
      const char *card = (const char *)b + pos + (size_t)k * LENSNET__FITS_CARD, *fault;
      if (found_end) {
        for (col = 0; col < LENSNET__FITS_CARD; col++)
          if (card[col] != ' ')
            return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: the header block after the END card is not blank-filled", h->index);
        continue;
      }
      if ((fault = lensnet__fits_card_fault(card, &col)) != NULL)
        return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d, card %lu: the card %s (column %d)", h->index, (unsigned long)(n + 1), fault, col);
      if (lensnet__fits_keyword_is(card, "END")) {
        for (col = 8; col < LENSNET__FITS_CARD; col++)
          if (card[col] != ' ')
            return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d, card %lu: the END card must be blank after END", h->index, (unsigned long)(n + 1));
        found_end = 1;
      } else {
        n++;
      }
    }
    pos += LENSNET__FITS_BLOCK;
  }
  h->ncards = n;
  h->data_off = pos;
  return LENSNET_OK;
}

/* The first card: SIMPLE = T in the primary header, XTENSION = 'type' in an extension (4.4.1). */
static lensnet_result lensnet__fits_first_card(lensnet__fits_hdu *h, lensnet_error *err) {
  const char *c = h->cards, *val;
  size_t vn;
  lensnet_result r;
  if (h->ncards == 0) return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: the header has no cards before END", h->index);
  if (h->index == 0) {
    int simple;
    if (!lensnet__fits_keyword_is(c, "SIMPLE"))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS: not a FITS file (the first card is %.8s, not SIMPLE)", c);
    if ((r = lensnet__fits_card_logical(h, c, &simple, err)) != LENSNET_OK) return r;
    if (!simple) return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "FITS: SIMPLE = F: the file says it does not conform to the FITS standard");
    h->kind = LENSNET__FITS_PRIMARY;
    return LENSNET_OK;
  }
  if (!lensnet__fits_keyword_is(c, "XTENSION") || !lensnet__fits_card_value(c, &val, &vn) || vn < 2 || *val != '\'')
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: an extension header must begin with XTENSION = 'type' (FITS 4.0 section 4.4.1.2)", h->index);
  lensnet__fits_unquote(val, vn, h->xtension, sizeof h->xtension);
  if (!strcmp(h->xtension, "IMAGE")) h->kind = LENSNET__FITS_IMAGE;
  else if (!strcmp(h->xtension, "BINTABLE")) h->kind = LENSNET__FITS_BINTABLE;
  else if (!strcmp(h->xtension, "TABLE")) h->kind = LENSNET__FITS_TABLE;
  else h->kind = LENSNET__FITS_OTHER;
  return LENSNET_OK;
}

/* Cards 2, 3, 4...: BITPIX, NAXIS, NAXIS1..NAXISn (4.4.1). Sets bitpix, naxis, axis[] and
 * elements, and *rest = NAXIS2 * ... * NAXISn (the size of one random group's array). A
 * product with an axis of length 0 is 0, however large the other axes. */
static lensnet_result lensnet__fits_axes(lensnet__fits_hdu *h, size_t *rest, lensnet_error *err) {
  char lensnet__num[2][24]; /* 64-bit numbers in messages (lensnet__i64_text) */
  int64_t v;
  int k, rest_zero = 0, rest_overflow = 0;
  lensnet_result r;
  *rest = 1;
  if (h->ncards < 3 || !lensnet__fits_keyword_is(lensnet__fits_card_at(h, 1), "BITPIX") ||
      !lensnet__fits_keyword_is(lensnet__fits_card_at(h, 2), "NAXIS"))
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: cards 2 and 3 must be BITPIX and NAXIS (FITS 4.0 section 4.4.1)", h->index);
  if ((r = lensnet__fits_card_int(h, lensnet__fits_card_at(h, 1), &v, err)) != LENSNET_OK) return r;
  if (v != 8 && v != 16 && v != 32 && v != 64 && v != -32 && v != -64)
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: BITPIX = %s is not one of 8, 16, 32, 64, -32, -64 (FITS 4.0 section 4.4.1.1)",
                         h->index, lensnet__i64_text((int64_t)v, lensnet__num[0]));
  h->bitpix = (int)v;
  if ((r = lensnet__fits_card_int(h, lensnet__fits_card_at(h, 2), &v, err)) != LENSNET_OK) return r;
  if (v < 0 || v > 999) return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: NAXIS = %s is outside 0..999", h->index, lensnet__i64_text((int64_t)v, lensnet__num[0]));
  h->naxis = (int)v;
  if (h->ncards < 3 + (size_t)h->naxis)
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: the header ends before NAXIS%d", h->index, (int)(h->ncards - 2));
  for (k = 1; k <= h->naxis; k++) {
    const char *c = lensnet__fits_card_at(h, 2 + (size_t)k);
    char key[16];
    size_t a = 0;
    snprintf(key, sizeof key, "NAXIS%d", k);
    if (!lensnet__fits_keyword_is(c, key))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: card %d must be %s, found %.8s (FITS 4.0 section 4.4.1)", h->index, k + 3, key, c);
    if ((r = lensnet__fits_card_size(h, c, &a, err)) != LENSNET_OK) return r;
    if (k <= LENSNET_MAX_DIMS) h->axis[k - 1] = a;
    if (k == 1) continue;
    if (a == 0) rest_zero = 1;
    else if (!lensnet__mul_ok(*rest, a, rest)) rest_overflow = 1;
  }
  if (rest_zero) *rest = 0;
  h->elements = 0;
  if (h->naxis == 0 || rest_zero || (h->axis[0] == 0 && !rest_overflow)) return LENSNET_OK;
  if (rest_overflow || !lensnet__mul_ok(h->axis[0], *rest, &h->elements))
    return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "FITS HDU %d: the product of NAXIS1..NAXIS%d overflows", h->index, h->naxis);
  return LENSNET_OK;
}

/* The data size (4.4.1.1, 4.4.1.2, 6): |BITPIX|/8 * GCOUNT * (PCOUNT + NAXIS1 * ... * NAXISn),
 * with NAXIS1 left out of the product for random groups; PCOUNT and GCOUNT are mandatory in
 * extensions. Checks the data against the file and finds where the next HDU starts. */
static lensnet_result lensnet__fits_data_size(lensnet__fits_hdu *h, size_t len, size_t rest, lensnet_error *err) {
  size_t pcount = 0, gcount = 1, values = h->elements, pad, end_of_data;
  int groups = 0, bytes_per_value = (h->bitpix < 0 ? -h->bitpix : h->bitpix) / 8;
  lensnet_result r;
  if (h->kind == LENSNET__FITS_PRIMARY) {
    if ((r = lensnet__fits_flag(h, "GROUPS", &groups, err)) != LENSNET_OK) return r;
    if (groups && h->naxis >= 1 && h->axis[0] == 0) {
      h->kind = LENSNET__FITS_GROUPS;
      values = rest;
    }
  }
  if (h->kind != LENSNET__FITS_PRIMARY) {
    const char *pc = lensnet__fits_find(h, "PCOUNT"), *gc = lensnet__fits_find(h, "GCOUNT");
    if (h->kind != LENSNET__FITS_GROUPS && (!pc || !gc))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: the extension header lacks %s (mandatory, FITS 4.0 section 4.4.1.2)",
                           h->index, pc ? "GCOUNT" : "PCOUNT");
    if (pc && (r = lensnet__fits_card_size(h, pc, &pcount, err)) != LENSNET_OK) return r;
    if (gc && (r = lensnet__fits_card_size(h, gc, &gcount, err)) != LENSNET_OK) return r;
    if (h->kind == LENSNET__FITS_IMAGE && (pcount != 0 || gcount != 1))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: an IMAGE extension needs PCOUNT = 0 and GCOUNT = 1 (FITS 4.0 section 7.1.1)", h->index);
  }
  if (h->kind == LENSNET__FITS_BINTABLE && (r = lensnet__fits_flag(h, "ZIMAGE", &h->zimage, err)) != LENSNET_OK) return r;
  if (h->naxis == 0) values = pcount = 0; /* NAXIS = 0: no data */
  if (values > (size_t)-1 - pcount || !lensnet__mul_ok(values + pcount, gcount, &values) ||
      !lensnet__mul_ok(values, (size_t)bytes_per_value, &h->data_bytes))
    return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "FITS HDU %d: the data size overflows", h->index);
  if (h->data_bytes > len - h->data_off)
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: the data needs %lu bytes but the file has only %lu left (truncated file?)",
                         h->index, (unsigned long)h->data_bytes, (unsigned long)(len - h->data_off));
  /* The last HDU's data padding is sometimes missing; that loses nothing, so it is accepted. */
  end_of_data = h->data_off + h->data_bytes;
  pad = (LENSNET__FITS_BLOCK - h->data_bytes % LENSNET__FITS_BLOCK) % LENSNET__FITS_BLOCK;
  h->next_off = pad <= len - end_of_data ? end_of_data + pad : len;
  return LENSNET_OK;
}

/* Reads the header that starts at `off` and checks it: card syntax, the END card and its
 * blank fill, the mandatory keywords in their order, and that the data fits in the file. */
static lensnet_result lensnet__fits_parse_hdu(const unsigned char *b, size_t len, size_t off, int index,
                                              lensnet__fits_hdu *h, lensnet_error *err) {
  size_t rest;
  lensnet_result r;
  memset(h, 0, sizeof *h);
  h->index = index;
  h->cards = (const char *)b + off;
  if ((r = lensnet__fits_scan_cards(b, len, off, h, err)) != LENSNET_OK) return r;
  if ((r = lensnet__fits_first_card(h, err)) != LENSNET_OK) return r;
  if ((r = lensnet__fits_axes(h, &rest, err)) != LENSNET_OK) return r;
  return lensnet__fits_data_size(h, len, rest, err);
}

/* Nonzero if the HDU is an image (or a compressed one) with at least one pixel. */
static int lensnet__fits_holds_image(const lensnet__fits_hdu *h) {
  return (h->kind == LENSNET__FITS_PRIMARY || h->kind == LENSNET__FITS_IMAGE ||
          (h->kind == LENSNET__FITS_BINTABLE && h->zimage)) && h->elements > 0;
}

/* Walks the HDUs from the start, checking each header, until HDU `want` (or, for want = -1,
 * the first image HDU with pixels). With want = INT_MAX it walks them all and *count tells how
 * many there are. An HDU starts only where a block begins with XTENSION; anything else after
 * the last HDU is ignored, as the standard allows (3.5). */
static lensnet_result lensnet__fits_walk(const unsigned char *b, size_t len, int want, lensnet__fits_hdu *h,
                                         int *count, lensnet_error *err) {
  size_t off = 0;
  int index = 0;
  lensnet_result r;
  if (count) *count = 0;
  if (want < -1) return lensnet__fail(err, LENSNET_ERR_ARG, "FITS: HDU %d does not exist (use 0 for the primary HDU, -1 for the first image)", want);
  if (len == 0) return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS: the file is empty");
  if (len >= 2 && b[0] == 0x1f && b[1] == 0x8b) /* the public readers inflate a .fits.gz before walking */
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS: a gzip-compressed file inside a gzip-compressed file");
  if (len < 9 || memcmp(b, "SIMPLE  =", 9) != 0)
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS: not a FITS file (it does not begin with SIMPLE =)");
  for (;;) {
    if ((r = lensnet__fits_parse_hdu(b, len, off, index, h, err)) != LENSNET_OK) return r;
    if (count) *count = index + 1;
    if (index == want || (want == -1 && lensnet__fits_holds_image(h))) return LENSNET_OK;
    off = h->next_off;
    if (len - off >= 8 && len - off < LENSNET__FITS_BLOCK && memcmp(b + off, "XTENSION", 8) == 0)
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS: HDU %d begins at byte %lu but the file ends %lu bytes later, inside its first header block (truncated file?)",
                           index + 1, (unsigned long)off, (unsigned long)(len - off));
    if (len - off < LENSNET__FITS_BLOCK || memcmp(b + off, "XTENSION", 8) != 0 || index == INT_MAX - 1) break;
    index++;
  }
  if (want == INT_MAX) return LENSNET_OK;
  if (want == -1) return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS: none of the %d HDUs holds an image with pixels", index + 1);
  return lensnet__fail(err, LENSNET_ERR_ARG, "FITS: HDU %d does not exist (the file has %d HDU%s)", want, index + 1, index ? "s" : "");
}

/* A signed big-endian integer of nbytes bytes, without relying on implementation-defined shifts. */
static int64_t lensnet__fits_signed(uint64_t u, int nbytes) {
  uint64_t sign = (uint64_t)1 << (8 * nbytes - 1);
  if (u & sign) return -(int64_t)(((sign << 1) - 1) - u) - 1;
  return (int64_t)u;
}

/* ---- Tile-compressed images (FITS 4.0 section 10) ----------------------------------------
 * A compressed image is a binary table (ZIMAGE = T) with one row per tile. The image's own
 * header keywords carry a Z: ZBITPIX, ZNAXIS, ZNAXISn; ZTILEn gives the tile size (default
 * whole rows), ZCMPTYPE the algorithm. Each row's COMPRESSED_DATA (a variable-length array in
 * the heap) holds the tile's compressed bytes; a tile that could not be compressed that way
 * is in GZIP_COMPRESSED_DATA or UNCOMPRESSED_DATA instead. Floating-point images are mostly
 * stored quantized: integers q with a scale and zero per tile (columns or keywords ZSCALE,
 * ZZERO), optionally dithered (ZQUANTIZ, 10.2). Read here: RICE_1 (10.4.1), GZIP_1 and GZIP_2
 * (10.4.2; the DEFLATE of RFC 1951 in a gzip (RFC 1952) or zlib (RFC 1950) wrapper), and
 * NOCOMPRESS; HCOMPRESS_1 and PLIO_1 are refused by name. */

/* The position of the highest one bit of v > 0. */
static int lensnet__high_bit(uint64_t v) {
#if defined(__GNUC__) || defined(__clang__)
  return 63 - __builtin_clzll((unsigned long long)v);
#else
  int high = 0;
  while (v >> 8) { v >>= 8; high += 8; }
  while (v >> 1) { v >>= 1; high++; }
  return high;
#endif
}

/* Rice decoding (White; Pence, Seaman & White 2009, PASP 121, 414; FITS 4.0 section 10.4.1):
 * the first pixel as bytepix bytes, then blocks of `blocksize` pixels, each starting with
 * fsbits bits holding fs + 1. fs = -1: every difference is zero; fs = fsmax: each difference
 * is stored in 8 bytepix bits; otherwise each is a unary count z (zeros ended by a one) then fs
 * bits, d = (z << fs) | bits. A difference d maps back to a signed one as d odd: ~(d >> 1),
 * even: d >> 1 (zigzag), and pixels are running sums modulo 2^(8 bytepix). 1-byte pixels are
 * unsigned, wider ones signed. Bits are read most significant first from a 64-bit buffer that
 * holds `bits` unread ones; returns 0 if the data end before npix pixels. */
static int lensnet__rice_decode(const unsigned char *in, size_t n_in, int bytepix, int blocksize, int64_t *outv, size_t npix) {
  int fsbits = bytepix == 1 ? 3 : bytepix == 2 ? 4 : 5, fsmax = bytepix == 1 ? 6 : bytepix == 2 ? 14 : 25;
  int bbits = 8 * bytepix, bits = 0;
  uint32_t mask = bytepix == 4 ? 0xffffffffu : (((uint32_t)1 << bbits) - 1), last, v;
  uint64_t buf = 0;
  size_t pos = 0, i = 0;
#define LENSNET__RICE_REFILL() while (bits <= 48 && pos < n_in) { buf = (buf << 8) | in[pos++]; bits += 8; }
#define LENSNET__RICE_TAKE(k, out)                                                   \
  do {                                                                              \
    if (bits < (k)) { LENSNET__RICE_REFILL(); if (bits < (k)) return 0; }            \
    bits -= (k);                                                                    \
    (out) = (uint32_t)((buf >> bits) & (((uint64_t)1 << (k)) - 1));                  \
  } while (0)
  LENSNET__RICE_TAKE(bbits, last);
  while (i < npix) {
    size_t end = npix - i < (size_t)blocksize ? npix : i + (size_t)blocksize;
    int fs;
    LENSNET__RICE_TAKE(fsbits, v);
    fs = (int)v - 1;
    for (; i < end; i++) {
      uint32_t d;
      if (fs < 0) {
        d = 0;
      } else if (fs == fsmax) {
        LENSNET__RICE_TAKE(bbits, d);
      } else {
        uint32_t z = 0, low = 0;
        for (;;) {
          uint64_t unread = bits ? buf & (((uint64_t)1 << bits) - 1) : 0;
          if (unread) {
            int high = lensnet__high_bit(unread);
            z += (uint32_t)(bits - 1 - high);
            bits = high;
            break;
          }
          z += (uint32_t)bits;
          bits = 0;
          LENSNET__RICE_REFILL();
          if (!bits) return 0;
        }
        if (fs > 0) LENSNET__RICE_TAKE(fs, low);
        d = (z << fs) | low;
      }
      d = (d & 1) ? ~(d >> 1) : (d >> 1);
      last = (last + d) & mask;
      outv[i] = bytepix == 1 ? (int64_t)last : bytepix == 2 ? (int64_t)(int16_t)(uint16_t)last : (int64_t)(int32_t)last;
    }
  }
#undef LENSNET__RICE_TAKE
#undef LENSNET__RICE_REFILL
  return 1;
}

/* DEFLATE (RFC 1951). Bits are read least significant first; Huffman codes are canonical,
 * decoded one bit at a time against the count of codes of each length. */
typedef struct {
  const unsigned char *in;
  size_t n, pos;
  uint32_t buf;
  int bits;
  unsigned char *out;
  size_t cap, len;
} lensnet__inflater;

#define LENSNET__HUFF_FAST 9 /* codes this long or shorter are decoded by one table lookup */
typedef struct {
  short count[16];   /* codes of each length */
  short symbol[320]; /* symbols in code order */
  /* the next LENSNET__HUFF_FAST bits (as read, least significant first) -> symbol << 4 | length,
   * 0 where the code is longer (decoded bit by bit) */
  unsigned short fast[1 << LENSNET__HUFF_FAST];
} lensnet__huffman;

static int lensnet__inf_bits(lensnet__inflater *s, int k, uint32_t *v) { /* 0 <= k <= 16 */
  while (s->bits < k) {
    if (s->pos >= s->n) return 0;
    s->buf |= (uint32_t)s->in[s->pos++] << s->bits;
    s->bits += 8;
  }
  *v = s->buf & (((uint32_t)1 << k) - 1);
  s->buf = k < 32 ? s->buf >> k : 0;
  s->bits -= k;
  return 1;
}

/* Builds the decoding tables from code lengths; 0 if the lengths over-subscribe the code space.
 * Canonical codes (RFC 1951 section 3.2.2): codes of one length are consecutive in symbol order,
 * and each length's first code follows the last of the length before, doubled. */
static int lensnet__huffman_build(lensnet__huffman *h, const unsigned char *lengths, int n) {
  short offs[16];
  int len, sym, left = 1, code = 0, next[16];
  memset(h->count, 0, sizeof h->count);
  memset(h->fast, 0, sizeof h->fast);
  for (sym = 0; sym < n; sym++) h->count[lengths[sym]]++;
  for (len = 1; len < 16; len++) {
    left = 2 * left - h->count[len];
    if (left < 0) return 0;
  }
  offs[1] = 0;
  for (len = 1; len < 15; len++) offs[len + 1] = (short)(offs[len] + h->count[len]);
  for (sym = 0; sym < n; sym++)
    if (lengths[sym]) h->symbol[offs[lengths[sym]]++] = (short)sym;
  next[0] = 0;
  for (len = 1; len < 16; len++) {
    code = (code + (len > 1 ? h->count[len - 1] : 0)) << 1;
    next[len] = code;
  }
  for (sym = 0; sym < n; sym++) {
    int l = lengths[sym], c, r = 0, k;
    if (!l || l > LENSNET__HUFF_FAST) continue;
    c = next[l]++;
    for (k = 0; k < l; k++) r |= ((c >> k) & 1) << (l - 1 - k); /* the code's bits in reading order */
    for (k = r; k < (1 << LENSNET__HUFF_FAST); k += 1 << l) h->fast[k] = (unsigned short)(sym << 4 | l);
  }
  return 1;
}

/* The next symbol, or -1 (input ended, or a code the table does not have). */
static int lensnet__huffman_decode(lensnet__inflater *s, const lensnet__huffman *h) {
  int code = 0, first = 0, index = 0, len;
  while (s->bits < LENSNET__HUFF_FAST && s->pos < s->n) {
    s->buf |= (uint32_t)s->in[s->pos++] << s->bits;
    s->bits += 8;
  }
  if (s->bits >= LENSNET__HUFF_FAST) {
    unsigned e = h->fast[s->buf & ((1u << LENSNET__HUFF_FAST) - 1)];
    if (e) {
      s->buf >>= e & 15;
      s->bits -= (int)(e & 15);
      return (int)(e >> 4);
    }
  }
  for (len = 1; len < 16; len++) {
    uint32_t b;
    int count = h->count[len];
    if (!lensnet__inf_bits(s, 1, &b)) return -1;
    code |= (int)b;
    if (code - first < count) return h->symbol[index + code - first];
    index += count;
    first = (first + count) << 1;
    code <<= 1;
  }
  return -1;
}

static const short lensnet__inf_len_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                                35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const unsigned char lensnet__inf_len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const unsigned short lensnet__inf_dist_base[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385,
                                                          513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const unsigned char lensnet__inf_dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* Literal/length and distance codes until the end-of-block symbol. */
static int lensnet__inflate_codes(lensnet__inflater *s, const lensnet__huffman *lit, const lensnet__huffman *dist) {
  for (;;) {
    int sym;
    uint32_t extra, buf = s->buf;
    size_t length, distance, i, pos = s->pos, len = s->len;
    int bits = s->bits;
    for (;;) { /* literals with short codes, the state in locals */
      unsigned e;
      while (bits <= 24 && pos < s->n) {
        buf |= (uint32_t)s->in[pos++] << bits;
        bits += 8;
      }
      if (bits < LENSNET__HUFF_FAST) break;
      e = lit->fast[buf & ((1u << LENSNET__HUFF_FAST) - 1)];
      if (!e || (e >> 4) > 255 || len >= s->cap) break;
      s->out[len++] = (unsigned char)(e >> 4);
      buf >>= e & 15;
      bits -= (int)(e & 15);
    }
    s->buf = buf;
    s->bits = bits;
    s->pos = pos;
    s->len = len;
    sym = lensnet__huffman_decode(s, lit);
    if (sym < 0) return 0;
    if (sym < 256) {
      if (s->len >= s->cap) return 0;
      s->out[s->len++] = (unsigned char)sym;
      continue;
    }
    if (sym == 256) return 1;
    sym -= 257;
    if (sym >= 29 || !lensnet__inf_bits(s, lensnet__inf_len_extra[sym], &extra)) return 0;
    length = (size_t)lensnet__inf_len_base[sym] + extra;
    sym = lensnet__huffman_decode(s, dist);
    if (sym < 0 || sym >= 30 || !lensnet__inf_bits(s, lensnet__inf_dist_extra[sym], &extra)) return 0;
    distance = (size_t)lensnet__inf_dist_base[sym] + extra;
    if (distance > s->len || length > s->cap - s->len) return 0;
    for (i = 0; i < length; i++, s->len++) s->out[s->len] = s->out[s->len - distance];
  }
}

/* Inflates a raw DEFLATE stream into out[cap]; returns 1 and sets s->len, or 0 if the stream
 * is malformed or would not fit. */
static int lensnet__inflate(lensnet__inflater *s) {
  static const unsigned char order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
  lensnet__huffman lit, dist;
  unsigned char lengths[320];
  uint32_t last = 0, type, v;
  while (!last) {
    if (!lensnet__inf_bits(s, 1, &last) || !lensnet__inf_bits(s, 2, &type)) return 0;
    if (type == 0) { /* stored: byte-aligned LEN, NLEN, then LEN bytes */
      size_t n;
      s->pos -= (size_t)(s->bits / 8); /* whole bytes read ahead go back; the partial one is padding */
      s->buf = 0;
      s->bits = 0;
      if (s->n - s->pos < 4) return 0;
      n = (size_t)s->in[s->pos] | (size_t)s->in[s->pos + 1] << 8;
      if ((n ^ ((size_t)s->in[s->pos + 2] | (size_t)s->in[s->pos + 3] << 8)) != 0xffff) return 0;
      s->pos += 4;
      if (n > s->n - s->pos || n > s->cap - s->len) return 0;
      memcpy(s->out + s->len, s->in + s->pos, n);
      s->pos += n;
      s->len += n;
    } else if (type == 1) { /* fixed codes (3.2.6) */
      int i;
      for (i = 0; i < 288; i++) lengths[i] = (unsigned char)(i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8);
      lensnet__huffman_build(&lit, lengths, 288);
      for (i = 0; i < 30; i++) lengths[i] = 5;
      lensnet__huffman_build(&dist, lengths, 30);
      if (!lensnet__inflate_codes(s, &lit, &dist)) return 0;
    } else if (type == 2) { /* dynamic codes (3.2.7) */
      uint32_t hlit, hdist, hclen;
      int i, n;
      lensnet__huffman lencode;
      if (!lensnet__inf_bits(s, 5, &hlit) || !lensnet__inf_bits(s, 5, &hdist) || !lensnet__inf_bits(s, 4, &hclen)) return 0;
      hlit += 257;
      hdist += 1;
      hclen += 4;
      if (hlit > 286 || hdist > 30) return 0;
      memset(lengths, 0, 19);
      for (i = 0; i < (int)hclen; i++) {
        if (!lensnet__inf_bits(s, 3, &v)) return 0;
        lengths[order[i]] = (unsigned char)v;
      }
      if (!lensnet__huffman_build(&lencode, lengths, 19)) return 0;
      for (n = 0; n < (int)(hlit + hdist);) {
        int sym = lensnet__huffman_decode(s, &lencode), repeat;
        unsigned char value = 0;
        if (sym < 0) return 0;
        if (sym < 16) { lengths[n++] = (unsigned char)sym; continue; }
        if (sym == 16) {
          if (n == 0 || !lensnet__inf_bits(s, 2, &v)) return 0;
          value = lengths[n - 1];
          repeat = 3 + (int)v;
        } else if (sym == 17) {
          if (!lensnet__inf_bits(s, 3, &v)) return 0;
          repeat = 3 + (int)v;
        } else {
          if (!lensnet__inf_bits(s, 7, &v)) return 0;
          repeat = 11 + (int)v;
        }
        if (n + repeat > (int)(hlit + hdist)) return 0;
        while (repeat--) lengths[n++] = value;
      }
      if (lengths[256] == 0) return 0; /* no end-of-block code */
      if (!lensnet__huffman_build(&lit, lengths, (int)hlit) || !lensnet__huffman_build(&dist, lengths + hlit, (int)hdist)) return 0;
      if (!lensnet__inflate_codes(s, &lit, &dist)) return 0;
    } else {
      return 0;
    }
  }
  return 1;
}

/* CRC-32 of the gzip trailer (RFC 1952 section 8; the polynomial 0xEDB88320, reflected), a byte
 * at a time through a table of the 256 bytes' remainders. */
static void lensnet__crc32_table(uint32_t *table) {
  uint32_t i;
  int k;
  for (i = 0; i < 256; i++) {
    uint32_t t = i;
    for (k = 0; k < 8; k++) t = (t >> 1) ^ (0xedb88320u & (0u - (t & 1)));
    table[i] = t;
  }
}
static uint32_t lensnet__crc32(const uint32_t *table, const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  size_t i;
  for (i = 0; i < n; i++) c = table[(c ^ p[i]) & 255] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

/* Unwraps a gzip member (RFC 1952) or a zlib stream (RFC 1950) and inflates it into out[cap],
 * checking gzip's CRC-32 and length. Returns the bytes written, or (size_t)-1 with *why set. */
static size_t lensnet__gunzip(const unsigned char *in, size_t n, unsigned char *out, size_t cap, const uint32_t *crc_table, const char **why,
                              size_t *used) {
  lensnet__inflater s;
  size_t pos = 0;
  int gzip = 0;
  memset(&s, 0, sizeof s);
  *why = "the compressed bytes are malformed";
  if (n >= 18 && in[0] == 0x1f && in[1] == 0x8b) {
    int flags = in[3];
    if (in[2] != 8) { *why = "the gzip stream is not DEFLATE (CM != 8)"; return (size_t)-1; }
    pos = 10;
    if (flags & 4) { /* FEXTRA */
      size_t xlen;
      if (n - pos < 2) return (size_t)-1;
      xlen = (size_t)in[pos] | (size_t)in[pos + 1] << 8;
      pos += 2;
      if (xlen > n - pos) return (size_t)-1;
      pos += xlen;
    }
    if (flags & 8) { while (pos < n && in[pos]) pos++; pos++; }   /* FNAME */
    if (flags & 16) { while (pos < n && in[pos]) pos++; pos++; }  /* FCOMMENT */
    if (flags & 2) pos += 2;                                      /* FHCRC */
    if (pos > n) return (size_t)-1;
    gzip = 1;
  } else if (n >= 2 && (in[0] & 15) == 8 && ((unsigned)in[0] * 256u + in[1]) % 31u == 0 && !(in[1] & 32)) {
    pos = 2;
  } else {
    *why = "the bytes are neither a gzip nor a zlib stream";
    return (size_t)-1;
  }
  s.in = in + pos;
  s.n = n - pos;
  s.out = out;
  s.cap = cap;
  if (!lensnet__inflate(&s)) { *why = "the DEFLATE stream is malformed or holds more bytes than stated"; return (size_t)-1; }
  if (gzip) { /* whole bytes read ahead into the bit buffer belong to the trailer */
    size_t end = s.pos - (size_t)(s.bits / 8);
    const unsigned char *t = s.in + end;
    if (s.n - end < 8) { *why = "the gzip trailer is missing"; return (size_t)-1; }
    if ((uint32_t)lensnet__get_le(t, 4) != lensnet__crc32(crc_table, out, s.len)) { *why = "the gzip CRC-32 does not match the data"; return (size_t)-1; }
    if ((uint32_t)lensnet__get_le(t + 4, 4) != (uint32_t)s.len) { *why = "the gzip length does not match the data"; return (size_t)-1; }
    if (used) *used = pos + end + 8;
  } else if (used) {
    *used = pos + s.pos - (size_t)(s.bits / 8);
  }
  return s.len;
}

/* Whether the bytes are a gzip file (a .fits.gz, as archives serve FITS files). */
static int lensnet__is_gzip(const void *bytes, size_t len) {
  const unsigned char *b = LENSNET__CAST(const unsigned char *, bytes);
  return len >= 2 && b[0] == 0x1f && b[1] == 0x8b;
}

/* A whole gzip-compressed file inflated into a fresh buffer (*plain, to be freed with
 * LENSNET_FREE). Its size comes from the gzip trailer (ISIZE, the length modulo 2^32), checked
 * against what DEFLATE can make of the compressed bytes (1032 times at most) before it is
 * allocated; one gzip member only. */
static lensnet_result lensnet__fits_gunzip_file(const void *bytes, size_t len, unsigned char **plain, size_t *plain_len, lensnet_error *err) {
  const unsigned char *b = LENSNET__CAST(const unsigned char *, bytes);
  const char *why;
  size_t isize, got, used = 0;
  uint32_t crc[256];
  *plain = NULL;
  *plain_len = 0;
  if (len < 18) return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS: a gzip-compressed file (.fits.gz) of %lu bytes, too short to hold a FITS file (truncated?)", (unsigned long)len);
  isize = (size_t)lensnet__get_le(b + len - 4, 4);
  if (isize == 0 || isize / 1032 > len)
    return lensnet__fail(err, LENSNET_ERR_FORMAT,
                         "FITS: truncated gzip file (.fits.gz): its size field reads %lu, which %lu compressed bytes cannot make "
                         "(over 4 GiB inflated? gunzip it first)", (unsigned long)isize, (unsigned long)len);
  *plain = LENSNET__CAST(unsigned char *, LENSNET_MALLOC(isize));
  if (!*plain) return lensnet__fail(err, LENSNET_ERR_NOMEM, "FITS: out of memory for the %lu bytes of a .fits.gz", (unsigned long)isize);
  lensnet__crc32_table(crc);
  got = lensnet__gunzip(b, len, *plain, isize, crc, &why, &used);
  if (got == (size_t)-1 || used != len) {
    LENSNET_FREE(*plain);
    *plain = NULL;
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS: the gzip-compressed file (.fits.gz) cannot be read: %s; gunzip it first",
                         got == (size_t)-1 ? why : "it holds several gzip members or bytes after its end");
  }
  *plain_len = got;
  return LENSNET_OK;
}

/* A column of the compressed-image table. */
typedef struct {
  int found;
  size_t offset;   /* byte offset within a row */
  char type;       /* TFORM type code: P or Q for a variable-length array, else the value type */
  char elem;       /* the element type of a P or Q column */
  size_t repeat;
} lensnet__fits_column;

/* Bytes of one value of a TFORM type code (7.3.1, table 18); 0 for an unknown code. X is per bit. */
static size_t lensnet__tform_size(char t) {
  switch (t) {
    case 'L': case 'B': case 'A': return 1;
    case 'I': return 2;
    case 'J': case 'E': return 4;
    case 'K': case 'D': case 'C': case 'P': return 8;
    case 'M': case 'Q': return 16;
    default: return 0;
  }
}

/* Finds the columns named in names[] (TTYPEn, case ignored) and their byte offsets. */
static lensnet_result lensnet__fits_columns(const lensnet__fits_hdu *h, const char *const *names, lensnet__fits_column *cols,
                                            int ncols, lensnet_error *err) {
  char lensnet__num[2][24]; /* 64-bit numbers in messages (lensnet__i64_text) */
  const char *c = lensnet__fits_find(h, "TFIELDS");
  int64_t tfields = 0;
  size_t offset = 0;
  int f, k;
  lensnet_result r;
  memset(cols, 0, sizeof *cols * (size_t)ncols);
  if (!c) return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: the compressed image's table lacks TFIELDS (FITS 4.0 section 7.3.1)", h->index);
  if ((r = lensnet__fits_card_int(h, c, &tfields, err)) != LENSNET_OK) return r;
  if (tfields < 0 || tfields > 999)
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: TFIELDS = %s is outside 0..999", h->index, lensnet__i64_text((int64_t)tfields, lensnet__num[0]));
  for (f = 1; f <= (int)tfields; f++) {
    char key[24], form[72], name[72];
    const char *v, *p;
    size_t vn, repeat = 0, width;
    int digits = 0;
    char type, elem = 0;
    snprintf(key, sizeof key, "TFORM%d", f);
    if (!(c = lensnet__fits_find(h, key)) || !lensnet__fits_card_value(c, &v, &vn) || !vn || *v != '\'')
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: %s is missing or not a string (FITS 4.0 section 7.3.1)", h->index, key);
    lensnet__fits_unquote(v, vn, form, sizeof form);
    for (p = form; *p == ' '; p++) {}
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
      if (repeat > 100000000) return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: %s = '%s' has too large a repeat count", h->index, key, form);
      repeat = repeat * 10 + (size_t)(*p - '0');
    }
    if (!digits) repeat = 1;
    type = *p;
    if (type == 'P' || type == 'Q') elem = p[1];
    if (type == 'X') width = (repeat + 7) / 8;
    else if (!lensnet__tform_size(type) || ((type == 'P' || type == 'Q') && !lensnet__tform_size(elem)))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: %s = '%s' is not a binary-table format (FITS 4.0 section 7.3.1)", h->index, key, form);
    else width = repeat * lensnet__tform_size(type);
    snprintf(key, sizeof key, "TTYPE%d", f);
    name[0] = 0;
    if ((c = lensnet__fits_find(h, key)) != NULL && lensnet__fits_card_value(c, &v, &vn) && vn && *v == '\'')
      lensnet__fits_unquote(v, vn, name, sizeof name);
    for (k = 0; k < ncols; k++) {
      const char *a = name, *b = names[k];
      while (*a && *b && (*a == *b || (*a >= 'a' && *a <= 'z' && *a - 32 == *b))) { a++; b++; }
      if (!*a && !*b && !cols[k].found) {
        cols[k].found = 1;
        cols[k].offset = offset;
        cols[k].type = type;
        cols[k].elem = elem;
        cols[k].repeat = repeat;
      }
    }
    offset += width;
  }
  if (offset != h->axis[0])
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: the columns' TFORMs add up to %lu bytes a row but NAXIS1 = %lu",
                         h->index, (unsigned long)offset, (unsigned long)h->axis[0]);
  return LENSNET_OK;
}

/* An optional integer keyword. */
static lensnet_result lensnet__fits_opt_int(const lensnet__fits_hdu *h, const char *key, int64_t *out, int *found, lensnet_error *err) {
  const char *c = lensnet__fits_find(h, key);
  if (found) *found = c != NULL;
  return c ? lensnet__fits_card_int(h, c, out, err) : LENSNET_OK;
}

/* An optional string keyword, without quotes; "" when absent. */
static void lensnet__fits_opt_string(const lensnet__fits_hdu *h, const char *key, char *dst, size_t cap) {
  const char *c = lensnet__fits_find(h, key), *v;
  size_t n;
  dst[0] = 0;
  if (c && lensnet__fits_card_value(c, &v, &n) && n && *v == '\'') lensnet__fits_unquote(v, n, dst, cap);
}

/* A scalar number in a row (ZSCALE, ZZERO, ZBLANK columns). */
static double lensnet__fits_cell_number(const unsigned char *row, const lensnet__fits_column *c) {
  const unsigned char *p = row + c->offset;
  switch (c->type) {
    case 'B': return p[0];
    case 'I': return (double)lensnet__fits_signed(lensnet__get_be(p, 2), 2);
    case 'J': return (double)lensnet__fits_signed(lensnet__get_be(p, 4), 4);
    case 'K': return (double)lensnet__fits_signed(lensnet__get_be(p, 8), 8);
    case 'E': return (double)lensnet__f32_from_bits((uint32_t)lensnet__get_be(p, 4));
    default: return lensnet__f64_from_bits(lensnet__get_be(p, 8));
  }
}

/* The heap bytes of a row's variable-length array, checked against the heap. */
static int lensnet__fits_cell_array(const unsigned char *row, const lensnet__fits_column *c, const unsigned char *heap, size_t heap_bytes,
                                    const unsigned char **p, size_t *count) {
  uint64_t n, off;
  size_t bytes;
  int w = c->type == 'Q' ? 8 : 4;
  n = lensnet__get_be(row + c->offset, w);
  off = lensnet__get_be(row + c->offset + w, w);
  if (w == 4 && (n >> 31 || off >> 31)) return 0; /* negative 32-bit descriptors */
  if (n > (uint64_t)(size_t)-1 || off > (uint64_t)heap_bytes || !lensnet__mul_ok((size_t)n, lensnet__tform_size(c->elem), &bytes) ||
      bytes > heap_bytes - (size_t)off)
    return 0;
  *p = heap + off;
  *count = (size_t)n;
  return 1;
}

/* The dither sequence of FITS 4.0 section 10.2.1: Park & Miller's minimal standard generator
 * (seed 1, a = 16807, m = 2^31 - 1), 10,000 values seed/m as float. */
static void lensnet__fits_randoms(float *r) {
  double seed = 1.0;
  int i;
  for (i = 0; i < 10000; i++) {
    double t = 16807.0 * seed;
    seed = t - 2147483647.0 * (double)(int64_t)(t / 2147483647.0);
    r[i] = (float)(seed / 2147483647.0);
  }
}

enum { LENSNET__FZ_RICE, LENSNET__FZ_GZIP1, LENSNET__FZ_GZIP2, LENSNET__FZ_NONE };

/* The first column of COMPRESSED_DATA, GZIP_COMPRESSED_DATA, UNCOMPRESSED_DATA (cols[0..2])
 * that holds data for this row: *col, its bytes and their count. */
static lensnet_result lensnet__fz_tile_data(const lensnet__fits_hdu *h, const unsigned char *row, const lensnet__fits_column *cols,
                                            const char *const *names, const unsigned char *heap, size_t heap_bytes, size_t t,
                                            int *col, const unsigned char **p, size_t *bytes, lensnet_error *err) {
  int k;
  size_t count;
  for (k = 0; k < 3; k++) {
    if (!cols[k].found) continue;
    if (!lensnet__fits_cell_array(row, &cols[k], heap, heap_bytes, p, &count))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d, tile %lu: the %s descriptor points outside the heap", h->index,
                           (unsigned long)(t + 1), names[k]);
    if (count) {
      *col = k;
      *bytes = count * lensnet__tform_size(cols[k].elem);
      return LENSNET_OK;
    }
  }
  return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d, tile %lu holds no data in any of its columns", h->index, (unsigned long)(t + 1));
}

/* Whether `bytes` of a tile's data can hold npix pixels: Rice needs the first pixel's 8 bytepix
 * bits and fsbits bits a block; DEFLATE expands at most 1032 times (258 bytes from one code of
 * 1 + 1 bits and so on); uncompressed pixels take a byte or more. Checked for every tile before
 * the image is allocated, so a small file cannot claim a huge image. */
static int lensnet__fz_can_hold(int col, int method, size_t bytes, size_t npix, int bytepix, int blocksize) {
  if (col == 0 && method == LENSNET__FZ_RICE) {
    size_t bits, blocks;
    int fsbits = bytepix == 1 ? 3 : bytepix == 2 ? 4 : 5;
    if (bytes > (size_t)-1 / 8) return 1;
    bits = bytes * 8;
    if (bits < (size_t)(8 * bytepix)) return 0;
    blocks = (bits - (size_t)(8 * bytepix)) / (size_t)fsbits;
    return npix / (size_t)blocksize <= blocks;
  }
  if (col == 1 || (col == 0 && method != LENSNET__FZ_NONE)) return npix / 1032 <= bytes;
  return npix <= bytes;
}

static lensnet_result lensnet__fits_compressed(const unsigned char *b, const lensnet__fits_hdu *h, lensnet_tensor *out, lensnet_error *err) {
  char lensnet__num[2][24]; /* 64-bit numbers in messages (lensnet__i64_text) */
  static const char *const names[6] = {"COMPRESSED_DATA", "GZIP_COMPRESSED_DATA", "UNCOMPRESSED_DATA", "ZSCALE", "ZZERO", "ZBLANK"};
  lensnet__fits_column cols[6];
  int64_t zbitpix = 0, znaxis = 0, v, dither0 = 1, blocksize = 32, bytepix = 4, key_blank = 0;
  size_t zaxis[LENSNET_MAX_DIMS], ztile[LENSNET_MAX_DIMS], ntile[LENSNET_MAX_DIMS], shape[LENSNET_MAX_DIMS];
  size_t tiles = 1, tile_max = 1, theap, heap_bytes, t, rows, rowbytes;
  char algo[72], quant[72], key[24];
  double key_scale = 1.0, key_zero = 0.0, bscale = 1.0, bzero = 0.0;
  int k, found, method, has_key_scale = 0, has_key_blank = 0, dither = 0, quantized;
  const char *c;
  const unsigned char *heap;
  int64_t *ints = NULL;
  unsigned char *bytes = NULL;
  float *randoms = NULL, *vals = NULL;
  uint32_t crc[256];
  lensnet_result r;
  lensnet__crc32_table(crc);
  if ((r = lensnet__fits_opt_int(h, "ZBITPIX", &zbitpix, &found, err)) != LENSNET_OK) return r;
  if (!found || (zbitpix != 8 && zbitpix != 16 && zbitpix != 32 && zbitpix != 64 && zbitpix != -32 && zbitpix != -64))
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: a compressed image needs ZBITPIX of 8, 16, 32, 64, -32 or -64 (FITS 4.0 section 10.1.1)", h->index);
  if ((r = lensnet__fits_opt_int(h, "ZNAXIS", &znaxis, &found, err)) != LENSNET_OK) return r;
  if (!found || znaxis < 1 || znaxis > LENSNET_MAX_DIMS)
    return lensnet__fail(err, found ? LENSNET_ERR_UNSUPPORTED : LENSNET_ERR_FORMAT, "FITS HDU %d: ZNAXIS %s (1 to %d axes are read)", h->index,
                         found ? "is outside the supported range" : "is missing", LENSNET_MAX_DIMS);
  for (k = 0; k < (int)znaxis; k++) {
    snprintf(key, sizeof key, "ZNAXIS%d", k + 1);
    if ((r = lensnet__fits_opt_int(h, key, &v, &found, err)) != LENSNET_OK) return r;
    if (!found || v < 1 || v > 1000000000)
      return lensnet__fail(err, found && v == 0 ? LENSNET_ERR_ARG : LENSNET_ERR_FORMAT, "FITS HDU %d: %s is %s", h->index, key,
                           found ? "not a positive image size" : "missing");
    zaxis[k] = (size_t)v;
    snprintf(key, sizeof key, "ZTILE%d", k + 1);
    v = k == 0 ? (int64_t)zaxis[0] : 1; /* the default tile is one row */
    if ((r = lensnet__fits_opt_int(h, key, &v, &found, err)) != LENSNET_OK) return r;
    if (v < 1) return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: %s = %s is not a positive tile size", h->index, key, lensnet__i64_text((int64_t)v, lensnet__num[0]));
    ztile[k] = (size_t)v < zaxis[k] ? (size_t)v : zaxis[k];
    ntile[k] = (zaxis[k] + ztile[k] - 1) / ztile[k];
    if (!lensnet__mul_ok(tiles, ntile[k], &tiles) || !lensnet__mul_ok(tile_max, ztile[k], &tile_max))
      return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "FITS HDU %d: the image size overflows", h->index);
  }
  lensnet__fits_opt_string(h, "ZCMPTYPE", algo, sizeof algo);
  if (!strcmp(algo, "RICE_1") || !strcmp(algo, "RICE_ONE")) method = LENSNET__FZ_RICE;
  else if (!strcmp(algo, "GZIP_1")) method = LENSNET__FZ_GZIP1;
  else if (!strcmp(algo, "GZIP_2")) method = LENSNET__FZ_GZIP2;
  else if (!strcmp(algo, "NOCOMPRESS")) method = LENSNET__FZ_NONE;
  else if (!algo[0]) return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: a compressed image without ZCMPTYPE (FITS 4.0 section 10.1.1)", h->index);
  else return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "FITS HDU %d is compressed with %s, which is not read here (RICE_1, GZIP_1, GZIP_2 and NOCOMPRESS are); decompress it first, e.g. with funpack",
                            h->index, algo);
  /* ZNAMEi / ZVALi: the algorithm's parameters (10.4.1: BLOCKSIZE default 32, BYTEPIX default 4) */
  for (k = 1; k < 1000; k++) {
    char name[72];
    snprintf(key, sizeof key, "ZNAME%d", k);
    if (!lensnet__fits_find(h, key)) break;
    lensnet__fits_opt_string(h, key, name, sizeof name);
    snprintf(key, sizeof key, "ZVAL%d", k);
    if (!strcmp(name, "BLOCKSIZE") && (r = lensnet__fits_opt_int(h, key, &blocksize, NULL, err)) != LENSNET_OK) return r;
    if (!strcmp(name, "BYTEPIX") && (r = lensnet__fits_opt_int(h, key, &bytepix, NULL, err)) != LENSNET_OK) return r;
  }
  /* BLOCKSIZE is 16 or 32 in practice (fpack writes 32); up to 64 is read, so that a few bits a
   * block cannot stand for a huge image */
  if (method == LENSNET__FZ_RICE && (blocksize < 1 || blocksize > 64 || (bytepix != 1 && bytepix != 2 && bytepix != 4)))
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: RICE_1 is read with BLOCKSIZE 1 to 64 and BYTEPIX 1, 2 or 4 (here %s and %s)",
                         h->index, lensnet__i64_text((int64_t)blocksize, lensnet__num[0]), lensnet__i64_text((int64_t)bytepix, lensnet__num[1]));
  lensnet__fits_opt_string(h, "ZQUANTIZ", quant, sizeof quant);
  if (!strcmp(quant, "SUBTRACTIVE_DITHER_1")) dither = 1;
  else if (!strcmp(quant, "SUBTRACTIVE_DITHER_2")) dither = 2;
  else if (quant[0] && strcmp(quant, "NO_DITHER") && strcmp(quant, "NONE"))
    return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "FITS HDU %d: ZQUANTIZ = '%s' is not a known quantisation (NO_DITHER, SUBTRACTIVE_DITHER_1 or _2)", h->index, quant);
  if ((r = lensnet__fits_opt_int(h, "ZDITHER0", &dither0, NULL, err)) != LENSNET_OK) return r; /* checked when a tile is dithered */
  if ((c = lensnet__fits_find(h, "ZSCALE")) != NULL) { if ((r = lensnet__fits_card_real(h, c, &key_scale, err)) != LENSNET_OK) return r; has_key_scale = 1; }
  if ((c = lensnet__fits_find(h, "ZZERO")) != NULL) { if ((r = lensnet__fits_card_real(h, c, &key_zero, err)) != LENSNET_OK) return r; }
  if ((r = lensnet__fits_opt_int(h, "ZBLANK", &key_blank, &has_key_blank, err)) != LENSNET_OK) return r;
  if (!has_key_blank && zbitpix > 0 && (r = lensnet__fits_opt_int(h, "BLANK", &key_blank, &has_key_blank, err)) != LENSNET_OK) return r;
  if ((c = lensnet__fits_find(h, "BSCALE")) != NULL && (r = lensnet__fits_card_real(h, c, &bscale, err)) != LENSNET_OK) return r;
  if ((c = lensnet__fits_find(h, "BZERO")) != NULL && (r = lensnet__fits_card_real(h, c, &bzero, err)) != LENSNET_OK) return r;
  if ((r = lensnet__fits_columns(h, names, cols, 6, err)) != LENSNET_OK) return r;
  for (k = 0; k < 3; k++)
    if (cols[k].found && ((cols[k].type != 'P' && cols[k].type != 'Q') || cols[k].repeat != 1))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: column %s must be a variable-length array (1P or 1Q)", h->index, names[k]);
  for (k = 3; k < 6; k++)
    if (cols[k].found && (cols[k].repeat != 1 || !strchr(k == 5 ? "BIJK" : "BIJKED", cols[k].type)))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: column %s must hold one %s a row", h->index, names[k], k == 5 ? "integer" : "number");
  if (!cols[0].found) return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: a compressed image without a COMPRESSED_DATA column (FITS 4.0 section 10.1.2)", h->index);
  quantized = zbitpix < 0 && strcmp(quant, "NONE") != 0 && (cols[3].found || has_key_scale);
  rowbytes = h->naxis >= 1 ? h->axis[0] : 0;
  rows = h->naxis >= 2 ? h->axis[1] : 0;
  if (rows != tiles)
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: the table has %lu rows for %lu tiles", h->index, (unsigned long)rows, (unsigned long)tiles);
  if (h->bitpix != 8 || h->naxis != 2 || !lensnet__mul_ok(rowbytes, rows, &theap) || theap > h->data_bytes)
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: a binary table needs BITPIX = 8, NAXIS = 2 and its rows within the data (FITS 4.0 section 7.3.1)",
                         h->index);
  if ((r = lensnet__fits_opt_int(h, "THEAP", &v, &found, err)) != LENSNET_OK) return r;
  if (found) {
    if (v < (int64_t)theap || (uint64_t)v > (uint64_t)h->data_bytes)
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: THEAP = %s is outside the data", h->index, lensnet__i64_text((int64_t)v, lensnet__num[0]));
    theap = (size_t)v;
  }
  heap = b + h->data_off + theap;
  heap_bytes = h->data_bytes - theap;
  for (t = 0; t < tiles; t++) { /* every tile's data before anything is allocated */
    const unsigned char *p;
    size_t npix = 1, rest = t, nbytes;
    int col;
    for (k = 0; k < (int)znaxis; k++) {
      size_t start = (rest % ntile[k]) * ztile[k];
      rest /= ntile[k];
      npix *= zaxis[k] - start < ztile[k] ? zaxis[k] - start : ztile[k];
    }
    if ((r = lensnet__fz_tile_data(h, b + h->data_off + t * rowbytes, cols, names, heap, heap_bytes, t, &col, &p, &nbytes, err)) != LENSNET_OK)
      return r;
    if (!lensnet__fz_can_hold(col, method, nbytes, npix, (int)bytepix, (int)blocksize))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d, tile %lu: %lu bytes of %s cannot hold its %lu pixels", h->index,
                           (unsigned long)(t + 1), (unsigned long)nbytes, names[col], (unsigned long)npix);
  }
  for (k = 0; k < (int)znaxis; k++) shape[k] = zaxis[znaxis - 1 - k];
  if ((r = lensnet__tensor_alloc_as(out, (int)znaxis, shape, 0, err)) != LENSNET_OK) return r;
  ints = (int64_t *)LENSNET_MALLOC(tile_max * sizeof *ints);
  vals = (float *)LENSNET_MALLOC(tile_max * sizeof *vals);
  if (dither) randoms = (float *)LENSNET_MALLOC(10000 * sizeof *randoms);
  if (!ints || !vals || (dither && !randoms)) {
    r = lensnet__fail(err, LENSNET_ERR_NOMEM, "FITS HDU %d: out of memory for a tile of %lu pixels", h->index, (unsigned long)tile_max);
    goto done;
  }
  if (dither) lensnet__fits_randoms(randoms);
  for (t = 0; t < tiles; t++) {
    const unsigned char *row = b + h->data_off + t * rowbytes, *p = NULL;
    size_t start[LENSNET_MAX_DIMS], len[LENSNET_MAX_DIMS], idx[LENSNET_MAX_DIMS], npix = 1, rest = t, count = 0, i;
    double scale = cols[3].found ? lensnet__fits_cell_number(row, &cols[3]) : key_scale;
    double zero = cols[4].found ? lensnet__fits_cell_number(row, &cols[4]) : key_zero;
    int has_null = cols[5].found || has_key_blank, as_ints = 1, col = -1, width = 0;
    int64_t null_value = key_blank;
    if (cols[5].found) { /* an integer column (checked above) */
      const unsigned char *z = row + cols[5].offset;
      int zb = cols[5].type == 'B' ? 1 : cols[5].type == 'I' ? 2 : cols[5].type == 'J' ? 4 : 8;
      null_value = zb == 1 ? (int64_t)z[0] : lensnet__fits_signed(lensnet__get_be(z, zb), zb);
    }
    for (k = 0; k < (int)znaxis; k++) {
      start[k] = (rest % ntile[k]) * ztile[k];
      rest /= ntile[k];
      len[k] = zaxis[k] - start[k] < ztile[k] ? zaxis[k] - start[k] : ztile[k];
      npix *= len[k];
    }
    if ((r = lensnet__fz_tile_data(h, row, cols, names, heap, heap_bytes, t, &col, &p, &count, err)) != LENSNET_OK) goto done;
    if (col == 0 && method == LENSNET__FZ_RICE) {
      if (!quantized && zbitpix < 0) {
        r = lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: RICE_1 on floating-point pixels needs their quantisation (ZSCALE, ZZERO)", h->index);
        goto done;
      }
      if (!lensnet__rice_decode(p, count, (int)bytepix, (int)blocksize, ints, npix)) {
        r = lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d, tile %lu: the RICE_1 data end before its %lu pixels", h->index, (unsigned long)(t + 1), (unsigned long)npix);
        goto done;
      }
    } else {
      /* Bytes holding npix big-endian values: gzipped (GZIP_1, GZIP_2 shuffled by byte
       * significance; GZIP_COMPRESSED_DATA), or as they are (NOCOMPRESS, UNCOMPRESSED_DATA). */
      size_t nbytes;
      int gz = col == 1 || (col == 0 && method != LENSNET__FZ_NONE);
      if (!bytes && !(bytes = (unsigned char *)LENSNET_MALLOC(tile_max * 16))) { /* inflated, then unshuffled */
        r = lensnet__fail(err, LENSNET_ERR_NOMEM, "FITS HDU %d: out of memory for a tile of %lu pixels", h->index, (unsigned long)tile_max);
        goto done;
      }
      if (gz) {
        const char *why;
        nbytes = lensnet__gunzip(p, count, bytes, tile_max * 8, crc, &why, NULL);
        if (nbytes == (size_t)-1) {
          r = lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d, tile %lu: %s", h->index, (unsigned long)(t + 1), why);
          goto done;
        }
        p = bytes;
      } else {
        nbytes = count;
      }
      width = npix && nbytes % npix == 0 ? (int)(nbytes / npix) : 0;
      /* quantized tiles hold integers; the others the image's own type */
      as_ints = (col == 0 && quantized) || zbitpix > 0;
      if (!(width == 1 || width == 2 || width == 4 || width == 8) || (!as_ints && width != (zbitpix < 0 ? -zbitpix : zbitpix) / 8)) {
        r = lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d, tile %lu: %lu bytes do not make its %lu pixels", h->index, (unsigned long)(t + 1),
                          (unsigned long)nbytes, (unsigned long)npix);
        goto done;
      }
      if (col == 0 && method == LENSNET__FZ_GZIP2 && width > 1) { /* undo the shuffle */
        unsigned char *dst = bytes + tile_max * 8;
        const unsigned char *src = p;
        for (i = 0; i < npix; i++)
          for (k = 0; k < width; k++) dst[i * (size_t)width + (size_t)k] = src[(size_t)k * npix + i];
        p = dst;
      }
      for (i = 0; i < npix; i++) {
        uint64_t u = lensnet__get_be(p + i * (size_t)width, width);
        if (as_ints) ints[i] = width == 1 ? (int64_t)u : lensnet__fits_signed(u, width);
        else vals[i] = width == 4 ? lensnet__f32_from_bits((uint32_t)u) : (float)lensnet__f64_from_bits(u);
      }
    }
    /* integers to pixel values */
    if (as_ints && quantized && col == 0) {
      int iseed, next;
      if (dither && (dither0 < 1 || dither0 > 10000)) {
        r = lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d: ZDITHER0 = %s is outside 1..10000 (FITS 4.0 section 10.2.1)", h->index, lensnet__i64_text((int64_t)dither0, lensnet__num[0]));
        goto done;
      }
      iseed = (int)((t + (size_t)dither0 - 1) % 10000);
      next = dither ? (int)(randoms[iseed] * 500.0f) : 0;
      for (i = 0; i < npix; i++) {
        if (has_null && ints[i] == null_value) vals[i] = NAN;
        else if (dither == 2 && ints[i] == -2147483646) vals[i] = 0.0f; /* ZERO_VALUE */
        else if (dither) vals[i] = (float)(((double)ints[i] - (double)randoms[next] + 0.5) * scale + zero);
        else vals[i] = (float)((double)ints[i] * scale + zero);
        if (dither && ++next == 10000) {
          if (++iseed == 10000) iseed = 0;
          next = (int)(randoms[iseed] * 500.0f);
        }
      }
    } else if (as_ints) {
      for (i = 0; i < npix; i++)
        vals[i] = has_null && ints[i] == null_value ? NAN
                  : (bscale == 1.0 && bzero == 0.0) ? (float)ints[i] : (float)(bzero + bscale * (double)ints[i]);
    } else if (bscale != 1.0 || bzero != 0.0) {
      for (i = 0; i < npix; i++) vals[i] = (float)(bzero + bscale * (double)vals[i]);
    }
    /* the tile's pixels, first axis fastest, into the image: a run of len[0] a row */
    memset(idx, 0, sizeof idx);
    for (i = 0; i < npix; i += len[0]) {
      size_t at = start[0], stride = zaxis[0];
      for (k = 1; k < (int)znaxis; k++) {
        at += (start[k] + idx[k]) * stride;
        stride *= zaxis[k];
      }
      memcpy(out->data + at, vals + i, len[0] * sizeof *vals);
      for (k = 1; k < (int)znaxis && ++idx[k] == len[k]; k++) idx[k] = 0;
    }
  }
  r = LENSNET_OK;
done:
  LENSNET_FREE(ints);
  LENSNET_FREE(bytes);
  LENSNET_FREE(vals);
  LENSNET_FREE(randoms);
  if (r != LENSNET_OK) lensnet_tensor_free(out);
  return r;
}

/* Converts the pixels of an image HDU into a fresh tensor. */
static lensnet_result lensnet__fits_image(const unsigned char *b, const lensnet__fits_hdu *h, lensnet_tensor *out, lensnet_error *err) {
  double bscale = 1.0, bzero = 0.0;
  int64_t blank = 0;
  int has_blank = 0, nb, k;
  size_t shape[LENSNET_MAX_DIMS], i, count;
  const char *c;
  const unsigned char *p = b + h->data_off;
  lensnet_result r;
  if (h->kind == LENSNET__FITS_BINTABLE && h->zimage) return lensnet__fits_compressed(b, h, out, err);
  if (h->kind == LENSNET__FITS_GROUPS)
    return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "FITS HDU %d holds random groups (GROUPS = T), not an image", h->index);
  if (h->kind == LENSNET__FITS_BINTABLE || h->kind == LENSNET__FITS_TABLE)
    return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "FITS HDU %d is %s table (XTENSION = '%s'), not an image",
                         h->index, h->kind == LENSNET__FITS_TABLE ? "an ASCII" : "a binary", h->xtension);
  if (h->kind == LENSNET__FITS_OTHER)
    return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "FITS HDU %d is an extension of type '%.40s', not an IMAGE", h->index, h->xtension);
  if (h->elements == 0)
    return lensnet__fail(err, LENSNET_ERR_ARG, "FITS HDU %d holds no data (NAXIS = %d%s); pass HDU -1 to read the first HDU with an image",
                         h->index, h->naxis, h->naxis ? " with an axis of length 0" : "");
  if (h->naxis > LENSNET_MAX_DIMS)
    return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "FITS HDU %d has NAXIS = %d; at most %d axes are supported", h->index, h->naxis, LENSNET_MAX_DIMS);
  if ((c = lensnet__fits_find(h, "BSCALE")) != NULL && (r = lensnet__fits_card_real(h, c, &bscale, err)) != LENSNET_OK) return r;
  if ((c = lensnet__fits_find(h, "BZERO")) != NULL && (r = lensnet__fits_card_real(h, c, &bzero, err)) != LENSNET_OK) return r;
  /* BLANK marks undefined integer pixels (5.2.1); for floating-point images NaN does (5.3). */
  if (h->bitpix > 0 && (c = lensnet__fits_find(h, "BLANK")) != NULL) {
    if ((r = lensnet__fits_card_int(h, c, &blank, err)) != LENSNET_OK) return r;
    has_blank = 1;
  }
  for (k = 0; k < h->naxis; k++) shape[k] = h->axis[h->naxis - 1 - k];
  if ((r = lensnet_tensor_alloc(out, h->naxis, shape, err)) != LENSNET_OK) return r;
  count = lensnet_tensor_count(out);
  nb = (h->bitpix < 0 ? -h->bitpix : h->bitpix) / 8;
  for (i = 0; i < count; i++, p += nb) {
    uint64_t u = lensnet__get_be(p, nb);
    double s;
    if (h->bitpix > 0) { /* 8-bit pixels are unsigned, wider ones two's complement (4.4.1.1) */
      int64_t q = h->bitpix == 8 ? (int64_t)u : lensnet__fits_signed(u, nb);
      if (has_blank && q == blank) { out->data[i] = NAN; continue; }
      s = (double)q;
    } else {
      s = nb == 4 ? (double)lensnet__f32_from_bits((uint32_t)u) : lensnet__f64_from_bits(u);
    }
    out->data[i] = (bscale == 1.0 && bzero == 0.0) ? (float)s : (float)(bzero + bscale * s);
  }
  return LENSNET_OK;
}

/* Pan-STARRS1 stack images store C = a asinh((L - BOFFSET) / (2 BSOFTEN)) of the linear flux L,
 * a = 2.5 log10(e) (the PS1 IPP's asinh compression; Waters et al. 2020, ApJS 251, 4; the
 * archive's "PS1 Stack images" page: "check for the presence of the BSOFTEN and BOFFSET keywords
 * ... to determine whether or not the sinh correction is required"). With both keywords present
 * the values read (after BSCALE/BZERO) are turned back into L = BOFFSET + 2 BSOFTEN sinh(C / a);
 * NaN stays NaN. */
static lensnet_result lensnet__fits_asinh_linear(const lensnet__fits_hdu *h, lensnet_tensor *t, lensnet_error *err) {
  const double a = 1.0857362047581294; /* 2.5 log10(e) = 2.5 / ln 10 */
  const char *soften = lensnet__fits_find(h, "BSOFTEN"), *offset = lensnet__fits_find(h, "BOFFSET");
  double bsoften, boffset;
  size_t i, n;
  lensnet_result r;
  if (!soften || !offset) return LENSNET_OK;
  if ((r = lensnet__fits_card_real(h, soften, &bsoften, err)) != LENSNET_OK) return r;
  if ((r = lensnet__fits_card_real(h, offset, &boffset, err)) != LENSNET_OK) return r;
  n = lensnet_tensor_count(t);
  for (i = 0; i < n; i++) {
    double c = t->data[i];
    if (c == c) t->data[i] = (float)(boffset + 2.0 * bsoften * sinh(c / a));
  }
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_fits_read_memory(const void *bytes, size_t len, int hdu, lensnet_tensor *out, lensnet_error *err) {
  lensnet__fits_hdu h;
  lensnet_result r;
  memset(out, 0, sizeof *out);
  if (!bytes && len) return lensnet__fail(err, LENSNET_ERR_ARG, "FITS: no bytes given");
  if (lensnet__is_gzip(bytes, len)) { /* a .fits.gz: the same on its inflated bytes */
    unsigned char *plain;
    size_t plain_len;
    if ((r = lensnet__fits_gunzip_file(bytes, len, &plain, &plain_len, err)) == LENSNET_OK) {
      r = lensnet_fits_read_memory(plain, plain_len, hdu, out, err);
      LENSNET_FREE(plain);
    }
    return r;
  }
  r = lensnet__fits_walk(LENSNET__CAST(const unsigned char *, bytes), len, hdu, &h, NULL, err);
  if (r != LENSNET_OK) return r;
  if ((r = lensnet__fits_image(LENSNET__CAST(const unsigned char *, bytes), &h, out, err)) != LENSNET_OK) return r;
  if ((r = lensnet__fits_asinh_linear(&h, out, err)) != LENSNET_OK) lensnet_tensor_free(out);
  return r;
}

/* The arguments of the FITS readers, for lensnet__parse_file. */
typedef struct {
  int hdu;
  lensnet_tensor *image;
  int *count;
  const char *key;
  char *value;
  size_t cap;
  double *scale;
  const char **scale_key;
  lensnet_wcs *wcs;
} lensnet__fits_args;

static lensnet_result lensnet__fits_image_parse(const unsigned char *bytes, size_t len, void *args, lensnet_error *err) {
  const lensnet__fits_args *a = LENSNET__CAST(const lensnet__fits_args *, args);
  return lensnet_fits_read_memory(bytes, len, a->hdu, a->image, err);
}
LENSNET_API void lensnet_free(void *p) {
  if (p) LENSNET_FREE(p);
}

LENSNET_API lensnet_result lensnet_fits_file_bytes(const char *path, unsigned char **bytes, size_t *len, lensnet_error *err) {
  unsigned char *raw;
  size_t raw_len;
  lensnet_result r;
  if (!bytes || !len) return lensnet__fail(err, LENSNET_ERR_ARG, "FITS: the outputs are required (NULL given)");
  *bytes = NULL;
  *len = 0;
  if ((r = lensnet__read_file(path, &raw, &raw_len, err)) != LENSNET_OK) return r;
  if (!lensnet__is_gzip(raw, raw_len)) {
    *bytes = raw;
    *len = raw_len;
    return LENSNET_OK;
  }
  r = lensnet__fits_gunzip_file(raw, raw_len, bytes, len, err);
  LENSNET_FREE(raw);
  if (r != LENSNET_OK) lensnet__prefix_path(err, path);
  return r;
}

LENSNET_API lensnet_result lensnet_fits_read(const char *path, int hdu, lensnet_tensor *out, lensnet_error *err) {
  lensnet__fits_args a;
  memset(&a, 0, sizeof a);
  a.hdu = hdu;
  a.image = out;
  if (!out || !path) return lensnet__fail(err, LENSNET_ERR_ARG, "FITS: the path and the output are required (NULL given)");
  memset(out, 0, sizeof *out);
  return lensnet__parse_file(path, lensnet__fits_image_parse, &a, err);
}

LENSNET_API lensnet_result lensnet_fits_hdu_count_memory(const void *bytes, size_t len, int *count, lensnet_error *err) {
  lensnet__fits_hdu h;
  lensnet_result r;
  *count = 0;
  if (!bytes && len) return lensnet__fail(err, LENSNET_ERR_ARG, "FITS: no bytes given");
  if (lensnet__is_gzip(bytes, len)) { /* a .fits.gz: the same on its inflated bytes */
    unsigned char *plain;
    size_t plain_len;
    if ((r = lensnet__fits_gunzip_file(bytes, len, &plain, &plain_len, err)) == LENSNET_OK) {
      r = lensnet_fits_hdu_count_memory(plain, plain_len, count, err);
      LENSNET_FREE(plain);
    }
    return r;
  }
  return lensnet__fits_walk(LENSNET__CAST(const unsigned char *, bytes), len, INT_MAX, &h, count, err);
}

static lensnet_result lensnet__fits_count_parse(const unsigned char *bytes, size_t len, void *count, lensnet_error *err) {
  return lensnet_fits_hdu_count_memory(bytes, len, LENSNET__CAST(int *, count), err);
}
LENSNET_API lensnet_result lensnet_fits_hdu_count(const char *path, int *count, lensnet_error *err) {
  *count = 0;
  return lensnet__parse_file(path, lensnet__fits_count_parse, count, err);
}

/* Compares the name of a HIERARCH card (the words between HIERARCH and '=') with `name`,
 * ignoring case and treating runs of blanks as one. */
static int lensnet__fits_hierarch_is(const char *card, const char *eq, const char *name) {
  const char *p = card + 8;
  for (;;) {
    while (p < eq && *p == ' ') p++;
    while (*name == ' ') name++;
    if (p == eq || !*name) break;
    while (p < eq && *p != ' ' && *name && *name != ' ') {
      char a = *p, z = *name;
      if (a >= 'a' && a <= 'z') a = (char)(a - 32);
      if (z >= 'a' && z <= 'z') z = (char)(z - 32);
      if (a != z) return 0;
      p++;
      name++;
    }
    if ((p < eq && *p != ' ') || (*name && *name != ' ')) return 0;
  }
  return p == eq && !*name;
}

/* Appends n bytes to the output value, counting what would not fit. */
static void lensnet__fits_append(char *dst, size_t cap, size_t *used, const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++, (*used)++)
    if (*used + 1 < cap) dst[*used] = s[i];
}

LENSNET_API lensnet_result lensnet_fits_header_value_memory(const void *bytes, size_t len, int hdu, const char *key,
                                                            char *value, size_t cap, lensnet_error *err) {
  lensnet__fits_hdu h;
  lensnet_result r;
  char word[9];
  size_t i, klen = strlen(key), used = 0;
  int hierarch = klen > 8 || strchr(key, ' ') != NULL;
  if (cap) value[0] = 0;
  if (hdu < 0) return lensnet__fail(err, LENSNET_ERR_ARG, "FITS: HDU %d does not exist (use 0 for the primary HDU)", hdu);
  if (!bytes && len) return lensnet__fail(err, LENSNET_ERR_ARG, "FITS: no bytes given");
  if (lensnet__is_gzip(bytes, len)) { /* a .fits.gz: the same on its inflated bytes */
    unsigned char *plain;
    size_t plain_len;
    if ((r = lensnet__fits_gunzip_file(bytes, len, &plain, &plain_len, err)) == LENSNET_OK) {
      r = lensnet_fits_header_value_memory(plain, plain_len, hdu, key, value, cap, err);
      LENSNET_FREE(plain);
    }
    return r;
  }
  if (!hierarch) {
    for (i = 0; i < klen; i++) word[i] = (key[i] >= 'a' && key[i] <= 'z') ? (char)(key[i] - 32) : key[i];
    word[klen] = 0;
  } else if (!strncmp(key, "HIERARCH ", 9) || !strncmp(key, "hierarch ", 9)) {
    key += 9;
  }
  r = lensnet__fits_walk(LENSNET__CAST(const unsigned char *, bytes), len, hdu, &h, NULL, err);
  if (r != LENSNET_OK) return r;
  for (i = 0; i < h.ncards; i++) {
    const char *c = lensnet__fits_card_at(&h, i), *end = c + LENSNET__FITS_CARD, *from, *v;
    size_t vn;
    if (hierarch) {
      const char *eq = (const char *)memchr(c + 8, '=', 72);
      if (!lensnet__fits_keyword_is(c, "HIERARCH") || !eq || !lensnet__fits_hierarch_is(c, eq, key)) continue;
      from = eq + 1;
    } else {
      if (!klen || !lensnet__fits_keyword_is(c, word) || !lensnet__fits_has_value(c)) continue;
      from = c + 10;
    }
    if (!lensnet__fits_value_span(from, end, &v, &vn))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "FITS HDU %d, card %lu: the value of %.40s is malformed (FITS 4.0 section 4.2)",
                           hdu, (unsigned long)(i + 1), key);
    if (vn && *v == '\'') {
      /* A string; a long one goes on in CONTINUE cards while it ends with '&' (4.2.1.2). */
      for (;;) {
        char part[LENSNET__FITS_CARD];
        size_t pn = lensnet__fits_unquote(v, vn, part, sizeof part);
        const char *next = i + 1 < h.ncards ? lensnet__fits_card_at(&h, i + 1) : NULL;
        if (pn > 0 && part[pn - 1] == '&' && next && lensnet__fits_keyword_is(next, "CONTINUE") &&
            lensnet__fits_value_span(next + 10, next + LENSNET__FITS_CARD, &v, &vn) && vn && *v == '\'') {
          lensnet__fits_append(value, cap, &used, part, pn - 1);
          i++;
          continue;
        }
        lensnet__fits_append(value, cap, &used, part, pn);
        break;
      }
    } else {
      lensnet__fits_append(value, cap, &used, v, vn);
    }
    if (used + 1 > cap)
      return lensnet__fail(err, LENSNET_ERR_ARG, "FITS HDU %d: the value of %.40s needs a buffer of %lu bytes", hdu, key, (unsigned long)(used + 1));
    value[used] = 0;
    return LENSNET_OK;
  }
  return lensnet__fail(err, LENSNET_ERR_ARG, "FITS HDU %d has no keyword %.60s", hdu, key);
}

static lensnet_result lensnet__fits_value_parse(const unsigned char *bytes, size_t len, void *args, lensnet_error *err) {
  const lensnet__fits_args *a = LENSNET__CAST(const lensnet__fits_args *, args);
  return lensnet_fits_header_value_memory(bytes, len, a->hdu, a->key, a->value, a->cap, err);
}
LENSNET_API lensnet_result lensnet_fits_header_value(const char *path, int hdu, const char *key, char *value, size_t cap, lensnet_error *err) {
  lensnet__fits_args a;
  memset(&a, 0, sizeof a);
  a.hdu = hdu;
  a.key = key;
  a.value = value;
  a.cap = cap;
  if (cap) value[0] = 0;
  return lensnet__parse_file(path, lensnet__fits_value_parse, &a, err);
}

/* A numeric header value; 0 when the HDU lacks the keyword or its value is not a number. */
static int lensnet__fits_number(const void *bytes, size_t len, int hdu, const char *key, double *v) {
  char text[72], *end;
  if (lensnet_fits_header_value_memory(bytes, len, hdu, key, text, sizeof text, NULL) != LENSNET_OK) return 0;
  *v = strtod(text, &end);
  while (*end == ' ') end++;
  return end != text && !*end && *v == *v;
}

LENSNET_API lensnet_result lensnet_fits_pixel_scale_memory(const void *bytes, size_t len, int hdu, double *arcsec, const char **key,
                                                           lensnet_error *err) {
  lensnet__fits_hdu h;
  lensnet_result r;
  char unit[72];
  double a = 0.0, b = 0.0, per_unit = 3600.0;
  int n;
  *arcsec = 0.0;
  if (key) *key = NULL;
  if (!bytes && len) return lensnet__fail(err, LENSNET_ERR_ARG, "FITS: no bytes given");
  if (lensnet__is_gzip(bytes, len)) { /* a .fits.gz: the same on its inflated bytes */
    unsigned char *plain;
    size_t plain_len;
    if ((r = lensnet__fits_gunzip_file(bytes, len, &plain, &plain_len, err)) == LENSNET_OK) {
      r = lensnet_fits_pixel_scale_memory(plain, plain_len, hdu, arcsec, key, err);
      LENSNET_FREE(plain);
    }
    return r;
  }
  if (hdu < 0) { /* the HDU lensnet_fits_read would read */
    if ((r = lensnet__fits_walk(LENSNET__CAST(const unsigned char *, bytes), len, -1, &h, NULL, err)) != LENSNET_OK) return r;
    hdu = h.index;
  }
  if (lensnet__fits_number(bytes, len, hdu, "PIXSCALE", &a) && a > 0.0) {
    *arcsec = a;
    if (key) *key = "PIXSCALE";
    return LENSNET_OK;
  }
  if (lensnet_fits_header_value_memory(bytes, len, hdu, "CUNIT1", unit, sizeof unit, NULL) == LENSNET_OK && unit[0]) {
    for (n = 0; unit[n]; n++) if (unit[n] >= 'A' && unit[n] <= 'Z') unit[n] = (char)(unit[n] + 32);
    if (!strcmp(unit, "arcmin")) per_unit = 60.0;
    else if (!strcmp(unit, "arcsec")) per_unit = 1.0;
    else if (strcmp(unit, "deg"))
      return lensnet__fail(err, LENSNET_ERR_ARG, "FITS HDU %d: CUNIT1 '%.20s' is not an angle in deg, arcmin or arcsec", hdu, unit);
  }
  n = lensnet__fits_number(bytes, len, hdu, "CD1_1", &a);
  n += lensnet__fits_number(bytes, len, hdu, "CD2_1", &b);
  if (n && (a != 0.0 || b != 0.0)) {
    *arcsec = sqrt(a * a + b * b) * per_unit;
    if (key) *key = "CD1_1";
    return LENSNET_OK;
  }
  if (lensnet__fits_number(bytes, len, hdu, "CDELT1", &a) && a != 0.0) {
    *arcsec = fabs(a) * per_unit;
    if (key) *key = "CDELT1";
    return LENSNET_OK;
  }
  return lensnet__fail(err, LENSNET_ERR_ARG, "FITS HDU %d: no pixel scale in the header (PIXSCALE, CD1_1 or CDELT1)", hdu);
}

static lensnet_result lensnet__fits_scale_parse(const unsigned char *bytes, size_t len, void *args, lensnet_error *err) {
  lensnet__fits_args *a = LENSNET__CAST(lensnet__fits_args *, args);
  return lensnet_fits_pixel_scale_memory(bytes, len, a->hdu, a->scale, a->scale_key, err);
}
LENSNET_API lensnet_result lensnet_fits_pixel_scale(const char *path, int hdu, double *arcsec, const char **key, lensnet_error *err) {
  lensnet__fits_args a;
  memset(&a, 0, sizeof a);
  a.hdu = hdu;
  a.scale = arcsec;
  a.scale_key = key;
  *arcsec = 0.0;
  return lensnet__parse_file(path, lensnet__fits_scale_parse, &a, err);
}

/* One header card: keyword, value right-justified in columns 11-30 (the fixed format of
 * 4.2), optional comment, blank-padded to 80 columns. */
static void lensnet__fits_put_card(char *card, const char *key, const char *value, const char *comment) {
  char text[LENSNET__FITS_CARD + 1];
  int n = snprintf(text, sizeof text, "%-8.8s= %20.20s%s%.47s", key, value, comment ? " / " : "", comment ? comment : "");
  memset(card, ' ', LENSNET__FITS_CARD);
  memcpy(card, text, n < LENSNET__FITS_CARD ? (size_t)n : LENSNET__FITS_CARD);
}

/* A string card: the value from column 11 (its quotes included), then the comment. */
static void lensnet__fits_put_string_card(char *card, const char *key, const char *value, const char *comment) {
  char text[LENSNET__FITS_CARD + 1];
  int n = snprintf(text, sizeof text, "%-8.8s= %-20s%s%s", key, value, comment ? " / " : "", comment ? comment : "");
  memset(card, ' ', LENSNET__FITS_CARD);
  memcpy(card, text, n < LENSNET__FITS_CARD ? (size_t)n : LENSNET__FITS_CARD);
}

/* Whether card c is one lensnet_fits_write_cards may add; why not into err. */
static lensnet_result lensnet__fits_card_check(const char *path, size_t i, const lensnet_fits_card *c, lensnet_error *err) {
  static const char *const structural[] = {"SIMPLE", "BITPIX", "NAXIS", "EXTEND", "END", "BSCALE", "BZERO", "BLANK"};
  size_t k, n = c->key ? strlen(c->key) : 0, v = c->value ? strlen(c->value) : 0;
  if (n == 0 || n > 8) return lensnet__fail(err, LENSNET_ERR_ARG, "%s: extra card %lu: the key must have 1 to 8 characters", path, (unsigned long)i);
  for (k = 0; k < n; k++) {
    char ch = c->key[k];
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
      return lensnet__fail(err, LENSNET_ERR_ARG, "%s: extra card '%.8s': keys hold A-Z, 0-9, '-' and '_'", path, c->key);
  }
  for (k = 0; k < sizeof structural / sizeof structural[0]; k++)
    if (!strcmp(c->key, structural[k]) || (!strncmp(c->key, "NAXIS", 5) && n > 5))
      return lensnet__fail(err, LENSNET_ERR_ARG, "%s: extra card '%s': the writer sets that keyword itself", path, c->key);
  if (v == 0 || v > 68) return lensnet__fail(err, LENSNET_ERR_ARG, "%s: extra card '%s': the value must have 1 to 68 characters", path, c->key);
  for (k = 0; k < v; k++)
    if (c->value[k] < 32 || c->value[k] > 126)
      return lensnet__fail(err, LENSNET_ERR_ARG, "%s: extra card '%s': the value holds a character that is not printable ASCII", path, c->key);
  if (c->value[0] == '\'' && (v < 2 || c->value[v - 1] != '\''))
    return lensnet__fail(err, LENSNET_ERR_ARG, "%s: extra card '%s': a string value ends with a quote", path, c->key);
  if (c->value[0] == '\'') { /* a quote inside a string is written twice (4.2.1.1) */
    for (k = 1; k + 1 < v; k++)
      if (c->value[k] == '\'' && c->value[++k] != '\'')
        return lensnet__fail(err, LENSNET_ERR_ARG, "%s: extra card '%s': a quote inside a string value is written twice ('')", path, c->key);
    if (k + 1 != v) return lensnet__fail(err, LENSNET_ERR_ARG, "%s: extra card '%s': a string value ends with a quote", path, c->key);
  } else {
    double number;
    if (!(v == 1 && (c->value[0] == 'T' || c->value[0] == 'F')) && !lensnet__fits_parse_real(c->value, v, &number))
      return lensnet__fail(err, LENSNET_ERR_ARG, "%s: extra card '%s': the value %.68s is neither a number, T or F, nor a string in single "
                           "quotes ('%.60s')", path, c->key, c->value, c->value);
  }
  for (k = 0; c->comment && c->comment[k]; k++)
    if (c->comment[k] < 32 || c->comment[k] > 126)
      return lensnet__fail(err, LENSNET_ERR_ARG, "%s: extra card '%s': the comment holds a character that is not printable ASCII", path, c->key);
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_fits_write(const char *path, const lensnet_tensor *t, lensnet_error *err) {
  return lensnet_fits_write_cards(path, t, NULL, 0, err);
}

LENSNET_API lensnet_result lensnet_fits_write_cards(const char *path, const lensnet_tensor *t, const lensnet_fits_card *cards,
                                                    size_t ncards, lensnet_error *err) {
  char *header, num[24], key[16];
  size_t count, bytes, padded, i, header_bytes, card = 0;
  unsigned char *data;
  lensnet__chunk chunks[2];
  lensnet_result r;
  int k;
  if (!path || !t) return lensnet__fail(err, LENSNET_ERR_ARG, "lensnet_fits_write needs a path and a tensor (NULL given)");
  if (t->ndim < 1 || t->ndim > LENSNET_MAX_DIMS)
    return lensnet__fail(err, LENSNET_ERR_ARG, "%s: a FITS image needs 1 to %d axes, the tensor has %d", path, LENSNET_MAX_DIMS, t->ndim);
  if (ncards && !cards) return lensnet__fail(err, LENSNET_ERR_ARG, "%s: %lu extra cards but no array of them", path, (unsigned long)ncards);
  if (ncards > 100000) return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "%s: %lu extra cards, at most 100000", path, (unsigned long)ncards);
  for (i = 0; i < ncards; i++)
    if ((r = lensnet__fits_card_check(path, i, &cards[i], err)) != LENSNET_OK) return r;
  count = 1;
  for (k = 0; k < t->ndim; k++)
    if (!lensnet__mul_ok(count, t->shape[k], &count) || count > LENSNET_MAX_ELEMENTS)
      return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "%s: the tensor is too large to write", path);
  if (count && !t->data) return lensnet__fail(err, LENSNET_ERR_ARG, "%s: the tensor has no data", path);
  if (!lensnet__mul_ok(count, 4, &bytes) || bytes > (size_t)-1 - LENSNET__FITS_BLOCK)
    return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "%s: the tensor is too large to write", path);
  padded = (bytes + LENSNET__FITS_BLOCK - 1) / LENSNET__FITS_BLOCK * LENSNET__FITS_BLOCK;
  /* SIMPLE, BITPIX, NAXIS, NAXISn, the extra cards, END: in whole 2880-byte blocks */
  header_bytes = ((4 + (size_t)t->ndim + ncards) * LENSNET__FITS_CARD + LENSNET__FITS_BLOCK - 1) / LENSNET__FITS_BLOCK * LENSNET__FITS_BLOCK;
  header = LENSNET__CAST(char *, LENSNET_MALLOC(header_bytes));
  if (!header) return lensnet__fail(err, LENSNET_ERR_NOMEM, "%s: out of memory writing FITS", path);
  memset(header, ' ', header_bytes);
  lensnet__fits_put_card(header + 80 * card++, "SIMPLE", "T", "conforms to the FITS standard");
  lensnet__fits_put_card(header + 80 * card++, "BITPIX", "-32", "IEEE 754 single precision");
  snprintf(num, sizeof num, "%d", t->ndim);
  lensnet__fits_put_card(header + 80 * card++, "NAXIS", num, "number of axes");
  for (k = 1; k <= t->ndim; k++) { /* NAXIS1 is the fastest-varying axis: the last in NumPy order */
    snprintf(key, sizeof key, "NAXIS%d", k);
    lensnet__u64_text((uint64_t)t->shape[t->ndim - k], num);
    lensnet__fits_put_card(header + 80 * card++, key, num, NULL);
  }
  for (i = 0; i < ncards; i++, card++) {
    if (cards[i].value[0] == '\'') lensnet__fits_put_string_card(header + 80 * card, cards[i].key, cards[i].value, cards[i].comment);
    else if (strlen(cards[i].value) <= 20) lensnet__fits_put_card(header + 80 * card, cards[i].key, cards[i].value, cards[i].comment);
    else lensnet__fits_put_string_card(header + 80 * card, cards[i].key, cards[i].value, cards[i].comment); /* a long number: free format */
  }
  memcpy(header + 80 * card, "END", 3);
  data = LENSNET__CAST(unsigned char *, LENSNET_MALLOC(padded ? padded : 1));
  if (!data) { LENSNET_FREE(header); return lensnet__fail(err, LENSNET_ERR_NOMEM, "%s: out of memory writing FITS", path); }
  memset(data, 0, padded); /* floating-point data are padded with zero bytes (3.3.2) */
  for (i = 0; i < count; i++) {
    uint32_t u;
    memcpy(&u, &t->data[i], 4);
    data[4 * i] = (unsigned char)(u >> 24); data[4 * i + 1] = (unsigned char)(u >> 16);
    data[4 * i + 2] = (unsigned char)(u >> 8); data[4 * i + 3] = (unsigned char)u;
  }
  chunks[0].data = header; chunks[0].len = header_bytes;
  chunks[1].data = data; chunks[1].len = padded;
  r = lensnet__write_atomic(path, chunks, 2, err);
  LENSNET_FREE(data);
  LENSNET_FREE(header);
  return r;
}

/* ---- FITS: a simple TAN WCS ---------------------------------------------------------------- */

/* Keyword key of the HDU as text, upper case, trailing blanks gone; 0 when absent. */
static int lensnet__fits_word(const void *bytes, size_t len, int hdu, const char *key, char *out, size_t cap) {
  size_t n;
  if (lensnet_fits_header_value_memory(bytes, len, hdu, key, out, cap, NULL) != LENSNET_OK) return 0;
  for (n = 0; out[n]; n++) if (out[n] >= 'a' && out[n] <= 'z') out[n] = (char)(out[n] - 32);
  while (n > 0 && out[n - 1] == ' ') out[--n] = 0;
  return 1;
}

/* A CD matrix that maps pixels onto a line or a point (a zero CDELT, CD1_1 = 0 alone) gives every
 * pixel the same sky position: refused rather than written as positions. */
static lensnet_result lensnet__wcs_check(lensnet_wcs *wcs, int hdu, lensnet_error *err) {
  double det = wcs->cd[0][0] * wcs->cd[1][1] - wcs->cd[0][1] * wcs->cd[1][0];
  double scale = fabs(wcs->cd[0][0]) + fabs(wcs->cd[0][1]) + fabs(wcs->cd[1][0]) + fabs(wcs->cd[1][1]);
  if (!isfinite(det) || !(fabs(det) > 1e-12 * scale * scale)) {
    memset(wcs, 0, sizeof *wcs);
    return lensnet__fail(err, LENSNET_ERR_ARG, "FITS HDU %d: the CD matrix (CDi_j, or CDELTi times PCi_j) is singular", hdu);
  }
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_fits_wcs_memory(const void *bytes, size_t len, int hdu, lensnet_wcs *wcs, lensnet_error *err) {
  static const char *const needed[4] = {"CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2"};
  lensnet__fits_hdu h;
  lensnet_result r;
  char text[72], key[32]; /* room for any int in the key's format */
  double v[4], cdelt[2], pc[2][2] = {{1, 0}, {0, 1}}, crota = 0.0;
  int i, j, have_cd = 0, have_pc = 0;
  memset(wcs, 0, sizeof *wcs);
  if (!bytes && len) return lensnet__fail(err, LENSNET_ERR_ARG, "FITS: no bytes given");
  if (lensnet__is_gzip(bytes, len)) { /* a .fits.gz: the same on its inflated bytes */
    unsigned char *plain;
    size_t plain_len;
    if ((r = lensnet__fits_gunzip_file(bytes, len, &plain, &plain_len, err)) == LENSNET_OK) {
      r = lensnet_fits_wcs_memory(plain, plain_len, hdu, wcs, err);
      LENSNET_FREE(plain);
    }
    return r;
  }
  if (hdu < 0) {
    if ((r = lensnet__fits_walk(LENSNET__CAST(const unsigned char *, bytes), len, -1, &h, NULL, err)) != LENSNET_OK) return r;
    hdu = h.index;
  }
  if (!lensnet__fits_word(bytes, len, hdu, "CTYPE1", text, sizeof text) || strcmp(text, "RA---TAN"))
    return lensnet__fail(err, LENSNET_ERR_ARG, "FITS HDU %d: no simple TAN WCS (CTYPE1 is %s%s%s, not 'RA---TAN')", hdu,
                         text[0] && lensnet__fits_word(bytes, len, hdu, "CTYPE1", text, sizeof text) ? "'" : "absent", text, text[0] ? "'" : "");
  if (!lensnet__fits_word(bytes, len, hdu, "CTYPE2", text, sizeof text) || strcmp(text, "DEC--TAN"))
    return lensnet__fail(err, LENSNET_ERR_ARG, "FITS HDU %d: no simple TAN WCS (CTYPE2 is not 'DEC--TAN')", hdu);
  for (i = 0; i < 2; i++) {
    snprintf(key, sizeof key, "CUNIT%d", i + 1);
    if (lensnet__fits_word(bytes, len, hdu, key, text, sizeof text) && text[0] && strcmp(text, "DEG"))
      return lensnet__fail(err, LENSNET_ERR_ARG, "FITS HDU %d: %s is '%.20s'; only deg is understood", hdu, key, text);
  }
  if (lensnet__fits_number(bytes, len, hdu, "LONPOLE", &v[0]) && v[0] != 180.0)
    return lensnet__fail(err, LENSNET_ERR_ARG, "FITS HDU %d: LONPOLE = %g; only the default 180 is understood", hdu, v[0]);
  for (i = 0; i < 4; i++)
    if (!lensnet__fits_number(bytes, len, hdu, needed[i], &v[i]))
      return lensnet__fail(err, LENSNET_ERR_ARG, "FITS HDU %d: no simple TAN WCS (%s missing)", hdu, needed[i]);
  wcs->crval[0] = v[0]; wcs->crval[1] = v[1]; wcs->crpix[0] = v[2]; wcs->crpix[1] = v[3];
  for (i = 0; i < 2; i++)
    for (j = 0; j < 2; j++) {
      snprintf(key, sizeof key, "CD%d_%d", i + 1, j + 1);
      have_cd += lensnet__fits_number(bytes, len, hdu, key, &wcs->cd[i][j]);
      snprintf(key, sizeof key, "PC%d_%d", i + 1, j + 1);
      have_pc += lensnet__fits_number(bytes, len, hdu, key, &pc[i][j]);
    }
  if (!(wcs->crval[1] >= -90.0 && wcs->crval[1] <= 90.0) || !isfinite(wcs->crval[0]) || !isfinite(wcs->crpix[0]) || !isfinite(wcs->crpix[1]))
    return lensnet__fail(err, LENSNET_ERR_ARG, "FITS HDU %d: CRVAL2 = %g is not a declination (or CRVAL1/CRPIX not finite)", hdu, wcs->crval[1]);
  if (have_cd) return lensnet__wcs_check(wcs, hdu, err); /* CDi_j absent from a CD header are 0 (C&G 2002, 2.1.2) */
  if (!lensnet__fits_number(bytes, len, hdu, "CDELT1", &cdelt[0]) || !lensnet__fits_number(bytes, len, hdu, "CDELT2", &cdelt[1]))
    return lensnet__fail(err, LENSNET_ERR_ARG, "FITS HDU %d: no simple TAN WCS (neither CDi_j nor CDELT1 and CDELT2)", hdu);
  if (!have_pc && lensnet__fits_number(bytes, len, hdu, "CROTA2", &crota) && crota != 0.0) {
    double c = cos(crota * 3.14159265358979323846 / 180.0), s = sin(crota * 3.14159265358979323846 / 180.0);
    /* the older CROTA2 convention as C&G 2002 section 6.1 restates it in PCi_j */
    pc[0][0] = c; pc[0][1] = -s * cdelt[1] / cdelt[0]; pc[1][0] = s * cdelt[0] / cdelt[1]; pc[1][1] = c;
  }
  for (i = 0; i < 2; i++)
    for (j = 0; j < 2; j++) wcs->cd[i][j] = cdelt[i] * pc[i][j];
  return lensnet__wcs_check(wcs, hdu, err);
}

static lensnet_result lensnet__fits_wcs_parse(const unsigned char *bytes, size_t len, void *args, lensnet_error *err) {
  lensnet__fits_args *a = LENSNET__CAST(lensnet__fits_args *, args);
  return lensnet_fits_wcs_memory(bytes, len, a->hdu, a->wcs, err);
}
LENSNET_API lensnet_result lensnet_fits_wcs(const char *path, int hdu, lensnet_wcs *wcs, lensnet_error *err) {
  lensnet__fits_args a;
  memset(&a, 0, sizeof a);
  a.hdu = hdu;
  a.wcs = wcs;
  memset(wcs, 0, sizeof *wcs);
  return lensnet__parse_file(path, lensnet__fits_wcs_parse, &a, err);
}

LENSNET_API void lensnet_wcs_pixel_to_world(const lensnet_wcs *w, double x, double y, double *ra, double *dec) {
  const double d2r = 3.14159265358979323846 / 180.0;
  double p1 = x + 1.0 - w->crpix[0], p2 = y + 1.0 - w->crpix[1];
  double xi = w->cd[0][0] * p1 + w->cd[0][1] * p2, eta = w->cd[1][0] * p1 + w->cd[1][1] * p2; /* degrees */
  double r = sqrt(xi * xi + eta * eta), phi = atan2(xi, -eta), theta = r > 0 ? atan2(180.0 / 3.14159265358979323846, r) : 0.5 * 3.14159265358979323846;
  double dp = w->crval[1] * d2r, dphi = phi - 3.14159265358979323846; /* phi - phi_p, phi_p = 180 deg */
  double a = atan2(-cos(theta) * sin(dphi), sin(theta) * cos(dp) - cos(theta) * sin(dp) * cos(dphi));
  double s = sin(theta) * sin(dp) + cos(theta) * cos(dp) * cos(dphi);
  double alpha = w->crval[0] + a / d2r;
  alpha = fmod(alpha, 360.0);
  if (alpha < 0) alpha += 360.0;
  *ra = alpha;
  *dec = asin(s < -1 ? -1 : s > 1 ? 1 : s) / d2r;
}

/* ---- GEMM ---------------------------------------------------------------------------------- */

/* Structure. The product follows Goto & van de Geijn (2008, "Anatomy of high-performance matrix
 * multiplication") as restated by BLIS (Van Zee & van de Geijn 2015): the K dimension is cut into
 * blocks of at most LENSNET__GEMM_KC, M into blocks of at most LENSNET__GEMM_MC rows; each block
 * of op(A) is packed into MR-row panels (k-major, zero-padded to MR rows) that stay in L2, and
 * for every NR-column strip of op(B) a KC x NR micro-panel is packed right before the register
 * micro-kernel sweeps it across all MR-row panels, so it is reused from L1. The micro-kernel
 * keeps an MR x NR tile of C in registers for the whole K block and touches C once per block.
 *
 * Why B is packed one micro-panel at a time (BLIS packs a KC x NC panel): the networks this
 * library serves have few output channels (M = 20..50) and many pixels (N up to 38416), so each
 * packed B element is used only M/MR times and never by a second M block; packing it just
 * before use keeps it in L1 and needs only KC*NR floats of buffer.
 *
 * Micro-tile shapes (MR x NR, NR along the contiguous rows of C):
 *   AVX-512 10 x 32: 20 zmm accumulators; M = 20, 30, 40, 50 (every layer of OU-66 / OU-200)
 *                    are multiples of 10, so no M padding is wasted; N edges use masked loads
 *                    and stores, so no temporary tile either.
 *   AVX2+FMA  6 x 16: 12 ymm accumulators of 16 registers.
 *   SSE       4 x 8 : no FMA; 8 accumulators leave room for the products.
 *   NEON      8 x 8 on AArch64 (32 registers), 4 x 8 on 32-bit ARM (16 registers).
 *   scalar    4 x 8 : portable; the compiler may vectorise it.
 * The epilogue of the last K block applies alpha, beta, and for convolutions the bias and ReLU,
 * while the tile is still in registers.
 *
 * How a path is chosen. With GCC (4.9 or later) or Clang on x86 and x86-64, every x86 path is
 * compiled whatever the compiler flags: each kernel and its packing routines carry a function
 * target attribute (target("avx2,fma"); target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")),
 * so the rest of the program stays baseline x86-64 and a binary built without -march runs on any x86-64 CPU, then uses
 * AVX2 or AVX-512 where the CPU has them. The CPU is asked once (__builtin_cpu_supports, which
 * also checks that the OS saves the wider registers) and the answer kept in one feature word,
 * filled in on first use with relaxed atomic loads and stores (every thread computes the same
 * value, so a race only repeats the work). A path the compiler already targets (__AVX2__ &&
 * __FMA__, __AVX512F__, e.g. -march=native) is taken as given without asking. Elsewhere (other
 * compilers, other architectures) paths are compiled in from the compiler's target macros
 * (__SSE2__, __AVX2__ && __FMA__, __AVX512F__, __ARM_NEON) as the promise the CPU has them.
 * LENSNET_NO_SIMD leaves only the scalar path. The environment variable LENSNET_SIMD (scalar,
 * sse, avx2, avx512, neon), read once, caps the path lensnet_sgemm takes. */

#if !defined(LENSNET_NO_SIMD)
#if (defined(__x86_64__) || defined(__i386__)) && \
    ((defined(__clang__) && __clang_major__ >= 6) || \
     (!defined(__clang__) && defined(__GNUC__) && (__GNUC__ > 4 || (__GNUC__ == 4 && __GNUC_MINOR__ >= 9))))
/* run-time dispatch: every x86 kernel built, each for its own instruction set */
#define LENSNET__X86_DISPATCH 1
#define LENSNET__HAVE_AVX512 1
#define LENSNET__HAVE_AVX2 1
#define LENSNET__HAVE_SSE 1
#define LENSNET__TARGET_SSE __attribute__((target("sse2")))
#define LENSNET__TARGET_AVX2 __attribute__((target("avx2,fma")))
#define LENSNET__TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define LENSNET__HAVE_VNNI 1
#define LENSNET__TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni,avx2")))
#else
/* compile-time selection from the compiler's target macros */
#if defined(__AVX512F__)
#define LENSNET__HAVE_AVX512 1
#endif
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define LENSNET__HAVE_VNNI 1
#endif
#if defined(__AVX2__) && defined(__FMA__)
#define LENSNET__HAVE_AVX2 1
#endif
#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#define LENSNET__HAVE_SSE 1
#endif
#endif
#if defined(__ARM_NEON) || defined(__ARM_NEON__)
#define LENSNET__HAVE_NEON 1
#endif
#endif
#ifndef LENSNET__TARGET_SSE
#define LENSNET__TARGET_SSE
#define LENSNET__TARGET_AVX2
#define LENSNET__TARGET_AVX512
#define LENSNET__TARGET_VNNI
#endif

#if defined(LENSNET__HAVE_AVX512) || defined(LENSNET__HAVE_AVX2) || defined(LENSNET__HAVE_SSE)
#include <immintrin.h>
#endif
#if defined(LENSNET__HAVE_NEON)
#include <arm_neon.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LENSNET__INLINE static inline __attribute__((always_inline))
#define LENSNET__MAYBE_UNUSED __attribute__((unused))
#else
#define LENSNET__INLINE static
#define LENSNET__MAYBE_UNUSED
#endif

/* Cache blocking. KC * NR floats of B (32 KB for AVX-512) stay in the 48 KB L1 while MC * KC
 * floats of A (120 KB) stay in L2. K is cut into equal blocks no longer than KC, so K = 450 runs
 * as 2 x 225 rather than 256 + 194. */
#ifndef LENSNET__GEMM_KC
#define LENSNET__GEMM_KC 256
#endif
#ifndef LENSNET__GEMM_MC
#define LENSNET__GEMM_MC 120
#endif
#define LENSNET__GEMM_MR_MAX 10
#define LENSNET__GEMM_NR_MAX 32
/* Floats of slack to align a packing buffer to 64 bytes. */
#define LENSNET__ALIGN_SLACK 16

/* What to do with a finished accumulator tile: C = act(alpha * AB + beta * C + bias[row]).
 * beta is the caller's on the first K block and 1 after it; bias and relu only on the last. */
typedef struct {
  float alpha, beta;
  const float *bias; /* already offset to the tile's first row; NULL for none */
  int relu;
} lensnet__epilogue;

typedef void (*lensnet__microkernel_fn)(size_t kc, const float *a_panel, const float *b_panel, float *c,
                                        size_t ldc, size_t m_valid, size_t n_valid, const lensnet__epilogue *ep);
/* Where op(B) comes from: a matrix, or (for convolution) an image whose im2col matrix is read
 * on the fly. The image has already been zero-padded, so only the stride remains:
 * op(B)[(c*kh + i)*kw + j][y*ow + x] = img[c*chan_stride + (y*stride + i)*row_stride + x*stride + j]. */
typedef struct {
  const float *data;
  int is_image;
  int trans;                     /* matrix */
  size_t ld;                     /* matrix */
  size_t chan_stride, row_stride; /* image */
  size_t kh, kw, stride, ow;     /* image */
} lensnet__b_source;

typedef void (*lensnet__pack_b_fn)(const lensnet__b_source *s, size_t k0, size_t kc, size_t j0, size_t nv,
                                   size_t nr, float *dst);
typedef void (*lensnet__pack_a_fn)(int trans, const float *A, size_t lda, size_t i0, size_t mc, size_t k0, size_t kc,
                                   size_t mr, float *dst);
typedef void (*lensnet__copy_fn)(float *dst, const float *src, size_t n);

typedef struct {
  size_t mr, nr;
  lensnet__microkernel_fn kernel;
  lensnet__pack_a_fn pack_a;
  lensnet__pack_b_fn pack_b;
  void (*small_m)(int ta, int tb, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc); /* products of M <= 2 rows */
} lensnet__gemm_path;

LENSNET_API const char *lensnet_simd_name(lensnet_simd s) {
  static const char *names[] = {"scalar", "sse", "avx2", "avx512", "neon"};
  return ((unsigned)s < (unsigned)LENSNET_SIMD_COUNT) ? names[s] : "unknown";
}

#if defined(LENSNET__HAVE_SSE) || defined(LENSNET__HAVE_AVX2) || defined(LENSNET__HAVE_AVX512)
/* Does the CPU run compiled-in path s? Under run-time dispatch a path the compiler already
 * targets is taken as given, and the CPU is asked about the others; otherwise the compiler
 * flags that built the path are the promise. */
static int lensnet__cpu_runs(lensnet_simd s) {
#if defined(LENSNET__X86_DISPATCH)
  __builtin_cpu_init(); /* idempotent; needed only when called before constructors run */
  switch (s) {
#if defined(__SSE2__)
    case LENSNET_SIMD_SSE: return 1;
#else
    case LENSNET_SIMD_SSE: return __builtin_cpu_supports("sse2") != 0;
#endif
#if defined(__AVX2__) && defined(__FMA__)
    case LENSNET_SIMD_AVX2: return 1;
#else
    case LENSNET_SIMD_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BW__) && defined(__AVX512DQ__)
    case LENSNET_SIMD_AVX512: return 1;
#else
    case LENSNET_SIMD_AVX512: /* the kernels need only F; the rest (every AVX-512 CPU since Skylake-X)
                                * lets the compiler use them around the intrinsics, a few per cent */
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    default: return 0;
  }
#else
  (void)s;
  return 1;
#endif
}
#endif

/* The feature word: bit s set when path s is compiled in and the CPU runs it; bits 8-11 hold
 * 1 + the path named by the environment variable LENSNET_SIMD (0: unset or unknown); bit 31
 * says the word has been filled in. */
#define LENSNET__SIMD_FILLED 0x80000000u
#define LENSNET__SIMD_VNNI 0x10000u /* the CPU runs AVX-512 VNNI (the int8 kernel) */
static unsigned lensnet__simd_word_compute(void) {
  unsigned w = 1u << LENSNET_SIMD_SCALAR;
  const char *env = getenv("LENSNET_SIMD");
  int s;
#ifdef LENSNET__HAVE_SSE
  if (lensnet__cpu_runs(LENSNET_SIMD_SSE)) w |= 1u << LENSNET_SIMD_SSE;
#endif
#ifdef LENSNET__HAVE_AVX2
  if (lensnet__cpu_runs(LENSNET_SIMD_AVX2)) w |= 1u << LENSNET_SIMD_AVX2;
#endif
#ifdef LENSNET__HAVE_AVX512
  if (lensnet__cpu_runs(LENSNET_SIMD_AVX512)) w |= 1u << LENSNET_SIMD_AVX512;
#endif
#ifdef LENSNET__HAVE_NEON
  w |= 1u << LENSNET_SIMD_NEON;
#endif
#if defined(LENSNET__HAVE_VNNI) && defined(LENSNET__X86_DISPATCH) && !defined(__AVX512VNNI__)
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")) w |= LENSNET__SIMD_VNNI;
#elif defined(LENSNET__HAVE_VNNI)
  w |= LENSNET__SIMD_VNNI;
#endif
  for (s = 0; env && s < LENSNET_SIMD_COUNT; s++)
    if (strcmp(env, lensnet_simd_name((lensnet_simd)s)) == 0) w |= (unsigned)(s + 1) << 8;
  return w | LENSNET__SIMD_FILLED;
}

/* Filled in once and then only read. GCC and Clang use relaxed atomics (every thread computes
 * the same value, so two first calls at once only repeat the work); other compilers recompute
 * it each time, which costs one getenv. */
static unsigned lensnet__simd_word(void) {
#if defined(__GNUC__) || defined(__clang__)
  static unsigned word;
  unsigned w = __atomic_load_n(&word, __ATOMIC_RELAXED);
  if (!(w & LENSNET__SIMD_FILLED)) {
    w = lensnet__simd_word_compute();
    __atomic_store_n(&word, w, __ATOMIC_RELAXED);
  }
  return w;
#else
  return lensnet__simd_word_compute();
#endif
}

LENSNET_API int lensnet_simd_available(lensnet_simd s) {
  return (unsigned)s < (unsigned)LENSNET_SIMD_COUNT && ((lensnet__simd_word() >> s) & 1u);
}

/* Vector width order for the LENSNET_SIMD cap: scalar < sse = neon < avx2 < avx512. */
static int lensnet__simd_rank(lensnet_simd s) {
  static const int rank[] = {0, 1, 2, 3, 1};
  return rank[s];
}

LENSNET_API lensnet_simd lensnet_simd_best(void) {
  static const lensnet_simd widest_first[] = {LENSNET_SIMD_AVX512, LENSNET_SIMD_AVX2, LENSNET_SIMD_NEON, LENSNET_SIMD_SSE};
  unsigned w = lensnet__simd_word(), cap = (w >> 8) & 15u;
  size_t i;
  for (i = 0; i < sizeof widest_first / sizeof widest_first[0]; i++) {
    lensnet_simd s = widest_first[i];
    if (!((w >> s) & 1u)) continue;
    if (cap && lensnet__simd_rank(s) > lensnet__simd_rank((lensnet_simd)(cap - 1))) continue;
    return s;
  }
  return LENSNET_SIMD_SCALAR;
}

/* Rounds p up to a 64-byte boundary; buffers carry LENSNET__ALIGN_SLACK floats for this. */
static float *lensnet__align64(float *p) {
  uintptr_t u = (uintptr_t)p;
  return p + ((64 - (u & 63)) & 63) / sizeof(float);
}

static size_t lensnet__round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

/* K blocks of equal length, none longer than KC. */
static size_t lensnet__k_block(size_t K) {
  size_t blocks = (K + LENSNET__GEMM_KC - 1) / LENSNET__GEMM_KC;
  return blocks ? (K + blocks - 1) / blocks : 0;
}

/* The unblocked product: C = beta*C when alpha or K is zero. Accumulates in float like the
 * blocked paths (but in another order: not a fallback for them, see lensnet__sgemm_stack). */
static void lensnet__sgemm_reference(int ta, int tb, size_t M, size_t N, size_t K, float alpha,
                                     const float *A, size_t lda, const float *B, size_t ldb,
                                     float beta, float *C, size_t ldc) {
  size_t i, j, k;
  for (i = 0; i < M; i++) {
    float *c = C + i * ldc;
    if (beta == 0.0f) for (j = 0; j < N; j++) c[j] = 0.0f;
    else if (beta != 1.0f) for (j = 0; j < N; j++) c[j] *= beta;
    if (alpha == 0.0f) continue;
    for (k = 0; k < K; k++) {
      float a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);
      if (!tb) { const float *b = B + k * ldb; for (j = 0; j < N; j++) c[j] += a * b[j]; }
      else for (j = 0; j < N; j++) c[j] += a * B[j * ldb + k];
    }
  }
}

/* Products with one or two rows (dense layers at batch 1-2: C[1,N] = x W^T): packing would
 * pad M to MR and transpose all of B for a single use, so rows are computed directly. With B
 * transposed each entry is a dot product of two contiguous rows, summed in 16 independent
 * partial sums (compilers map them onto vector lanes without reassociating); otherwise each
 * row of C accumulates alpha*a[k] times row k of B. */
#define LENSNET__SMALL_M 2
#define LENSNET__DOT_LANES 16
LENSNET__INLINE void lensnet__sgemm_small_m_body(int ta, int tb, size_t M, size_t N, size_t K, float alpha,
                                                 const float *A, size_t lda, const float *B, size_t ldb,
                                                 float beta, float *C, size_t ldc) {
  size_t i, j, k, l;
  for (i = 0; i < M; i++) {
    float *c = C + i * ldc;
    if (tb) {
      for (j = 0; j < N; j++) {
        const float *b = B + j * ldb;
        float part[LENSNET__DOT_LANES] = {0}, dot = 0.0f;
        for (k = 0; k + LENSNET__DOT_LANES <= K; k += LENSNET__DOT_LANES)
          for (l = 0; l < LENSNET__DOT_LANES; l++)
            part[l] += (ta ? A[(k + l) * lda + i] : A[i * lda + k + l]) * b[k + l];
        for (; k < K; k++) dot += (ta ? A[k * lda + i] : A[i * lda + k]) * b[k];
        for (l = 0; l < LENSNET__DOT_LANES; l++) dot += part[l];
        c[j] = alpha * dot + (beta == 0.0f ? 0.0f : beta * c[j]);
      }
    } else {
      if (beta == 0.0f) for (j = 0; j < N; j++) c[j] = 0.0f;
      else if (beta != 1.0f) for (j = 0; j < N; j++) c[j] *= beta;
      for (k = 0; k < K; k++) {
        const float *b = B + k * ldb;
        float a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);
        for (j = 0; j + LENSNET__DOT_LANES <= N; j += LENSNET__DOT_LANES)
          for (l = 0; l < LENSNET__DOT_LANES; l++) c[j + l] += a * b[j + l];
        for (; j < N; j++) c[j] += a * b[j];
      }
    }
  }
}

/* The same loops compiled for each path's instruction set (the compiler vectorises them), so a
 * portable build computes GEMV-shaped products as fast as one built with -march=native. */
#define LENSNET__SMALL_M_VARIANT(name, target) \
  target static void name(int ta, int tb, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda, \
                          const float *B, size_t ldb, float beta, float *C, size_t ldc) { \
    lensnet__sgemm_small_m_body(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); \
  }
LENSNET__SMALL_M_VARIANT(lensnet__sgemm_small_m, )
#if defined(LENSNET__X86_DISPATCH)
LENSNET__SMALL_M_VARIANT(lensnet__sgemm_small_m_avx2, LENSNET__TARGET_AVX2)
LENSNET__SMALL_M_VARIANT(lensnet__sgemm_small_m_avx512, LENSNET__TARGET_AVX512)
#else
#define lensnet__sgemm_small_m_avx2 lensnet__sgemm_small_m
#define lensnet__sgemm_small_m_avx512 lensnet__sgemm_small_m
#endif

/* Epilogue of a tile held in memory (acc is m_valid x n_valid inside an nr-wide array): the
 * scalar kernel always, the SIMD kernels for partial tiles. */
static void lensnet__store_tile(const float *acc, size_t nr, float *c, size_t ldc, size_t m_valid,
                                size_t n_valid, const lensnet__epilogue *ep) {
  size_t r, j;
  for (r = 0; r < m_valid; r++) {
    float add = ep->bias ? ep->bias[r] : 0.0f;
    float *crow = c + r * ldc;
    for (j = 0; j < n_valid; j++) {
      float v = ep->alpha * acc[r * nr + j];
      if (ep->beta != 0.0f) v += ep->beta * crow[j];
      v += add;
      if (ep->relu && v < 0.0f) v = 0.0f;
      crow[j] = v;
    }
  }
}

/* ---- packing (the per-path variants sit with their kernels) ---- */

LENSNET__INLINE void lensnet__copy_plain(float *dst, const float *src, size_t n) { memcpy(dst, src, n * sizeof(float)); }

/* Rows [k0, k0+kc) x columns [j0, j0+nv) of op(B) into a KC x NR micro-panel, columns past nv
 * zero (they are computed and dropped, and must stay finite). Each path instantiates this with
 * its own inline `copy` for short contiguous rows, so no call is made per row.
 * From an image (implicit im2col): a micro-panel's nv output pixels fall into runs that share an
 * output row; for stride 1 each run is contiguous in every input row, so the panel is a few
 * short copies per k whose source offsets are found once per panel. */
LENSNET__INLINE void lensnet__pack_b_with(const lensnet__b_source *s, size_t k0, size_t kc, size_t j0, size_t nv,
                                          size_t nr, float *dst, lensnet__copy_fn copy) {
  size_t k, t, lane;
  if (!s->is_image) {
    if (!s->trans) {
      for (k = 0; k < kc; k++) copy(dst + k * nr, s->data + (k0 + k) * s->ld + j0, nv);
    } else {
      for (lane = 0; lane < nv; lane++) {
        const float *src = s->data + (j0 + lane) * s->ld + k0;
        for (k = 0; k < kc; k++) dst[k * nr + lane] = src[k];
      }
    }
  } else {
    size_t run_lane[LENSNET__GEMM_NR_MAX], run_len[LENSNET__GEMM_NR_MAX], run_src[LENSNET__GEMM_NR_MAX];
    size_t runs = 0, y = j0 / s->ow, x = j0 % s->ow;
    size_t khw = s->kh * s->kw, c = k0 / khw, i = k0 % khw / s->kw, j = k0 % s->kw;
    for (lane = 0; lane < nv; runs++, y++, x = 0) {
      size_t len = s->ow - x < nv - lane ? s->ow - x : nv - lane;
      run_lane[runs] = lane;
      run_len[runs] = len;
      run_src[runs] = y * s->stride * s->row_stride + x * s->stride;
      lane += len;
    }
    for (k = 0; k < kc; k++) {
      const float *src = s->data + c * s->chan_stride + i * s->row_stride + j;
      float *d = dst + k * nr;
      if (s->stride == 1) {
        for (t = 0; t < runs; t++) copy(d + run_lane[t], src + run_src[t], run_len[t]);
      } else {
        for (t = 0; t < runs; t++)
          for (lane = 0; lane < run_len[t]; lane++) d[run_lane[t] + lane] = src[run_src[t] + lane * s->stride];
      }
      if (++j == s->kw) {
        j = 0;
        if (++i == s->kh) { i = 0; c++; }
      }
    }
  }
  if (nv < nr)
    for (k = 0; k < kc; k++)
      for (lane = nv; lane < nr; lane++) dst[k * nr + lane] = 0.0f;
}

/* Rows [i0, i0+mc) x columns [k0, k0+kc) of op(A) into MR-row panels: panel p holds, for each k,
 * the MR values of rows i0+p*MR.. (zero past M), so the kernel reads A sequentially. */
static void lensnet__pack_a_plain(int trans, const float *A, size_t lda, size_t i0, size_t mc, size_t k0, size_t kc,
                                  size_t mr, float *dst) {
  size_t p, r, k;
  for (p = 0; p < mc; p += mr, dst += mr * kc) {
    size_t rows = mc - p < mr ? mc - p : mr;
    if (!trans) {
      const float *row[LENSNET__GEMM_MR_MAX];
      for (r = 0; r < rows; r++) row[r] = A + (i0 + p + r) * lda + k0;
      for (k = 0; k < kc; k++) {
        float *d = dst + k * mr;
        for (r = 0; r < rows; r++) d[r] = row[r][k];
        for (; r < mr; r++) d[r] = 0.0f;
      }
    } else {
      for (k = 0; k < kc; k++) {
        const float *src = A + (k0 + k) * lda + i0 + p;
        float *d = dst + k * mr;
        for (r = 0; r < rows; r++) d[r] = src[r];
        for (; r < mr; r++) d[r] = 0.0f;
      }
    }
  }
}

static void lensnet__pack_b_plain(const lensnet__b_source *s, size_t k0, size_t kc, size_t j0, size_t nv, size_t nr,
                                  float *dst) {
  lensnet__pack_b_with(s, k0, kc, j0, nv, nr, dst, lensnet__copy_plain);
}

/* ---- micro-kernels ---- */

#define LENSNET__SCALAR_MR 4
#define LENSNET__SCALAR_NR 8
/* Written as four rows of eight so that compilers that vectorise straight-line code (GCC and
 * Clang at -O2) map each row onto one vector register. GCC 12 at -O3 with AVX-512 instead
 * vectorises across k with permutes and runs ~10x slower; that build has the SIMD paths. */
static void lensnet__kernel_scalar(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                   size_t m_valid, size_t n_valid, const lensnet__epilogue *ep) {
  float tile[LENSNET__SCALAR_MR * LENSNET__SCALAR_NR] = {0};
  size_t k, j;
  for (k = 0; k < kc; k++, a += LENSNET__SCALAR_MR, b += LENSNET__SCALAR_NR) {
    float a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
    for (j = 0; j < LENSNET__SCALAR_NR; j++) {
      float bj = b[j];
      tile[j] += a0 * bj;
      tile[LENSNET__SCALAR_NR + j] += a1 * bj;
      tile[2 * LENSNET__SCALAR_NR + j] += a2 * bj;
      tile[3 * LENSNET__SCALAR_NR + j] += a3 * bj;
    }
  }
  lensnet__store_tile(tile, LENSNET__SCALAR_NR, c, ldc, m_valid, n_valid, ep);
}

#ifdef LENSNET__HAVE_SSE
#define LENSNET__SSE_MR 4
#define LENSNET__SSE_NR 8
LENSNET__TARGET_SSE static void lensnet__kernel_sse(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                size_t m_valid, size_t n_valid, const lensnet__epilogue *ep) {
  __m128 acc[LENSNET__SSE_MR][2];
  size_t k, r;
  for (r = 0; r < LENSNET__SSE_MR; r++) acc[r][0] = acc[r][1] = _mm_setzero_ps();
  for (k = 0; k < kc; k++, a += LENSNET__SSE_MR, b += LENSNET__SSE_NR) {
    __m128 b0 = _mm_load_ps(b), b1 = _mm_load_ps(b + 4);
    for (r = 0; r < LENSNET__SSE_MR; r++) {
      __m128 av = _mm_set1_ps(a[r]);
      acc[r][0] = _mm_add_ps(acc[r][0], _mm_mul_ps(av, b0));
      acc[r][1] = _mm_add_ps(acc[r][1], _mm_mul_ps(av, b1));
    }
  }
  if (m_valid == LENSNET__SSE_MR && n_valid == LENSNET__SSE_NR) {
    __m128 alpha = _mm_set1_ps(ep->alpha), beta = _mm_set1_ps(ep->beta), zero = _mm_setzero_ps();
    for (r = 0; r < LENSNET__SSE_MR; r++) {
      float *cr = c + r * ldc;
      __m128 v0 = _mm_mul_ps(alpha, acc[r][0]), v1 = _mm_mul_ps(alpha, acc[r][1]);
      if (ep->beta != 0.0f) {
        v0 = _mm_add_ps(v0, _mm_mul_ps(beta, _mm_loadu_ps(cr)));
        v1 = _mm_add_ps(v1, _mm_mul_ps(beta, _mm_loadu_ps(cr + 4)));
      }
      if (ep->bias) { __m128 bv = _mm_set1_ps(ep->bias[r]); v0 = _mm_add_ps(v0, bv); v1 = _mm_add_ps(v1, bv); }
      if (ep->relu) { v0 = _mm_max_ps(zero, v0); v1 = _mm_max_ps(zero, v1); } /* max(0, NaN) keeps NaN */
      _mm_storeu_ps(cr, v0);
      _mm_storeu_ps(cr + 4, v1);
    }
  } else {
    float tile[LENSNET__SSE_MR * LENSNET__SSE_NR];
    for (r = 0; r < LENSNET__SSE_MR; r++) {
      _mm_storeu_ps(tile + r * LENSNET__SSE_NR, acc[r][0]);
      _mm_storeu_ps(tile + r * LENSNET__SSE_NR + 4, acc[r][1]);
    }
    lensnet__store_tile(tile, LENSNET__SSE_NR, c, ldc, m_valid, n_valid, ep);
  }
}
#endif

#if defined(LENSNET__HAVE_AVX2) || defined(LENSNET__HAVE_AVX512)
/* One step of the masked B packers down a panel: the patch element (channel, row i, column j)
 * moves on by one, and base, its offset in the image, with it. */
LENSNET__INLINE void lensnet__patch_step(const lensnet__b_source *s, size_t *base, size_t *i, size_t *j) {
  (*base)++;
  if (++*j == s->kw) {
    *j = 0;
    *base += s->row_stride - s->kw;
    if (++*i == s->kh) { *i = 0; *base += s->chan_stride - s->kh * s->row_stride; }
  }
}
#endif

#ifdef LENSNET__HAVE_AVX2
#define LENSNET__AVX2_MR 6
#define LENSNET__AVX2_NR 16
#define LENSNET__AVX2_FMA_ROW(r) \
  av = _mm256_broadcast_ss(a + (r)); \
  c##r##0 = _mm256_fmadd_ps(av, b0, c##r##0); \
  c##r##1 = _mm256_fmadd_ps(av, b1, c##r##1);

LENSNET__INLINE LENSNET__TARGET_AVX2 void lensnet__avx2_store_row(float *c, __m256 v0, __m256 v1, const lensnet__epilogue *ep, size_t r) {
  __m256 alpha = _mm256_set1_ps(ep->alpha);
  v0 = _mm256_mul_ps(alpha, v0);
  v1 = _mm256_mul_ps(alpha, v1);
  if (ep->beta != 0.0f) {
    __m256 beta = _mm256_set1_ps(ep->beta);
    v0 = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c), v0);
    v1 = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c + 8), v1);
  }
  if (ep->bias) { __m256 bv = _mm256_set1_ps(ep->bias[r]); v0 = _mm256_add_ps(v0, bv); v1 = _mm256_add_ps(v1, bv); }
  if (ep->relu) { v0 = _mm256_max_ps(_mm256_setzero_ps(), v0); v1 = _mm256_max_ps(_mm256_setzero_ps(), v1); }
  _mm256_storeu_ps(c, v0);
  _mm256_storeu_ps(c + 8, v1);
}

LENSNET__TARGET_AVX2 static void lensnet__kernel_avx2(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                 size_t m_valid, size_t n_valid, const lensnet__epilogue *ep) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  size_t k;
  for (k = 0; k < kc; k++, a += LENSNET__AVX2_MR, b += LENSNET__AVX2_NR) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), av;
    LENSNET__AVX2_FMA_ROW(0) LENSNET__AVX2_FMA_ROW(1) LENSNET__AVX2_FMA_ROW(2)
    LENSNET__AVX2_FMA_ROW(3) LENSNET__AVX2_FMA_ROW(4) LENSNET__AVX2_FMA_ROW(5)
  }
  if (m_valid == LENSNET__AVX2_MR && n_valid == LENSNET__AVX2_NR) {
    lensnet__avx2_store_row(c, c00, c01, ep, 0);
    lensnet__avx2_store_row(c + ldc, c10, c11, ep, 1);
    lensnet__avx2_store_row(c + 2 * ldc, c20, c21, ep, 2);
    lensnet__avx2_store_row(c + 3 * ldc, c30, c31, ep, 3);
    lensnet__avx2_store_row(c + 4 * ldc, c40, c41, ep, 4);
    lensnet__avx2_store_row(c + 5 * ldc, c50, c51, ep, 5);
  } else {
    float tile[LENSNET__AVX2_MR * LENSNET__AVX2_NR];
    _mm256_storeu_ps(tile, c00); _mm256_storeu_ps(tile + 8, c01);
    _mm256_storeu_ps(tile + 16, c10); _mm256_storeu_ps(tile + 24, c11);
    _mm256_storeu_ps(tile + 32, c20); _mm256_storeu_ps(tile + 40, c21);
    _mm256_storeu_ps(tile + 48, c30); _mm256_storeu_ps(tile + 56, c31);
    _mm256_storeu_ps(tile + 64, c40); _mm256_storeu_ps(tile + 72, c41);
    _mm256_storeu_ps(tile + 80, c50); _mm256_storeu_ps(tile + 88, c51);
    lensnet__store_tile(tile, LENSNET__AVX2_NR, c, ldc, m_valid, n_valid, ep);
  }
}

LENSNET__INLINE LENSNET__TARGET_AVX2 void lensnet__copy_avx2(float *dst, const float *src, size_t n) {
  for (; n >= 8; n -= 8, dst += 8, src += 8) _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
  if (n) {
    /* lanes 0..n-1 on: the mask is the sign bit of (n - 1 - lane) >= 0 */
    __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), lanes);
    _mm256_maskstore_ps(dst, mask, _mm256_maskload_ps(src, mask));
  }
}

/* Lanes [lo, hi) of an 8-lane vector as an AVX2 load/store mask. */
LENSNET__TARGET_AVX2 static __m256i lensnet__avx2_lane_mask(size_t lo, size_t hi) {
  __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)lo), lanes),
                             _mm256_cmpgt_epi32(_mm256_set1_epi32((int)hi), lanes));
}

/* AVX2 packing of B from an image at stride 1: the AVX-512 scheme with 8-lane halves. Images
 * at least 8 pixels wide give each half at most two runs: four masked loads (which never touch
 * masked-off lanes), two blends and two stores per k. Everything else goes the generic way. */
LENSNET__TARGET_AVX2 static void lensnet__pack_b_avx2(const lensnet__b_source *s, size_t k0, size_t kc, size_t j0, size_t nv, size_t nr,
                                 float *dst) {
  __m256i mask[2][2];
  size_t off[2][2] = {{0, 0}, {0, 0}}, segs[2] = {0, 0}, lane = 0, h, k, base, y, x, khw, c, i, j;
  if (!s->is_image || s->stride != 1 || nr != 16 || s->ow < 8) {
    lensnet__pack_b_with(s, k0, kc, j0, nv, nr, dst, lensnet__copy_avx2);
    return;
  }
  khw = s->kh * s->kw;
  c = k0 / khw;
  i = k0 % khw / s->kw;
  j = k0 % s->kw;
  base = c * s->chan_stride + i * s->row_stride + j;
  if (nv == 16 && j0 % s->ow + 16 <= s->ow) {
    /* the 16 pixels lie in one output row: each k is two plain loads (and a prefetch of the next
     * panel's pixels into L2) */
    size_t start = j0 / s->ow * s->row_stride + j0 % s->ow;
    for (k = 0; k < kc; k++, dst += 16) {
      const float *src = s->data + base + start;
      _mm_prefetch((const char *)(src + 16), _MM_HINT_T1);
      _mm_prefetch((const char *)(src + 31), _MM_HINT_T1);
      _mm256_store_ps(dst, _mm256_loadu_ps(src));
      _mm256_store_ps(dst + 8, _mm256_loadu_ps(src + 8));
      lensnet__patch_step(s, &base, &i, &j);
    }
    return;
  }
  mask[0][0] = mask[0][1] = mask[1][0] = mask[1][1] = _mm256_setzero_si256();
  for (y = j0 / s->ow, x = j0 % s->ow; lane < nv; y++, x = 0) {
    size_t len = s->ow - x < nv - lane ? s->ow - x : nv - lane;
    for (h = 0; h < 2; h++) {
      size_t lo = lane > 8 * h ? lane : 8 * h, hi = lane + len < 8 * h + 8 ? lane + len : 8 * h + 8;
      if (lo >= hi) continue;
      mask[h][segs[h]] = lensnet__avx2_lane_mask(lo - 8 * h, hi - 8 * h);
      off[h][segs[h]++] = y * s->row_stride + x - lane + 8 * h;
    }
    lane += len;
  }
  for (h = 0; h < 2; h++)
    if (segs[h] == 1) off[h][1] = off[h][0]; /* an empty second mask still needs a valid address */
  for (k = 0; k < kc; k++, dst += 16) {
    const float *src = s->data + base;
    for (h = 0; h < 2; h++)
      _mm256_store_ps(dst + 8 * h, _mm256_blendv_ps(_mm256_maskload_ps(src + off[h][0], mask[h][0]),
                                                    _mm256_maskload_ps(src + off[h][1], mask[h][1]),
                                                    _mm256_castsi256_ps(mask[h][1])));
    lensnet__patch_step(s, &base, &i, &j);
  }
}
#endif

#ifdef LENSNET__HAVE_AVX512
#define LENSNET__AVX512_MR 10
#define LENSNET__AVX512_NR 32
#define LENSNET__AVX512_FMA_ROW(r, step) \
  av = _mm512_set1_ps(a[(step) * LENSNET__AVX512_MR + (r)]); \
  c##r##0 = _mm512_fmadd_ps(av, b0, c##r##0); \
  c##r##1 = _mm512_fmadd_ps(av, b1, c##r##1);
#define LENSNET__AVX512_FMA_HALF_ROW(r) \
  av = _mm512_set1_ps(a[r]); \
  c##r##0 = _mm512_fmadd_ps(av, b0, c##r##0);
/* One k step: two B vectors times ten broadcast A values into the 20 accumulators. */
#define LENSNET__AVX512_K_STEP(step) { \
    __m512 b0 = _mm512_load_ps(b + (step) * LENSNET__AVX512_NR), b1 = _mm512_load_ps(b + (step) * LENSNET__AVX512_NR + 16), av; \
    LENSNET__AVX512_FMA_ROW(0, step) LENSNET__AVX512_FMA_ROW(1, step) LENSNET__AVX512_FMA_ROW(2, step) \
    LENSNET__AVX512_FMA_ROW(3, step) LENSNET__AVX512_FMA_ROW(4, step) LENSNET__AVX512_FMA_ROW(5, step) \
    LENSNET__AVX512_FMA_ROW(6, step) LENSNET__AVX512_FMA_ROW(7, step) LENSNET__AVX512_FMA_ROW(8, step) \
    LENSNET__AVX512_FMA_ROW(9, step) }
#define LENSNET__AVX512_STORE_ROW(r) \
  if ((r) < m_valid) lensnet__avx512_store_row(c + (r) * ldc, c##r##0, c##r##1, m0, m1, ep, r);

LENSNET__INLINE LENSNET__TARGET_AVX512 void lensnet__avx512_store_row(float *c, __m512 v0, __m512 v1, __mmask16 m0, __mmask16 m1,
                                               const lensnet__epilogue *ep, size_t r) {
  __m512 alpha = _mm512_set1_ps(ep->alpha);
  v0 = _mm512_mul_ps(alpha, v0);
  v1 = _mm512_mul_ps(alpha, v1);
  if (ep->beta != 0.0f) {
    __m512 beta = _mm512_set1_ps(ep->beta);
    v0 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m0, c), v0);
    v1 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m1, c + 16), v1);
  }
  if (ep->bias) { __m512 bv = _mm512_set1_ps(ep->bias[r]); v0 = _mm512_add_ps(v0, bv); v1 = _mm512_add_ps(v1, bv); }
  if (ep->relu) { /* max(0, NaN) keeps NaN; the maskz form avoids GCC 12's C++ warning about
                    * the undefined pass-through vector inside _mm512_max_ps */
    v0 = _mm512_maskz_max_ps((__mmask16)0xFFFF, _mm512_setzero_ps(), v0);
    v1 = _mm512_maskz_max_ps((__mmask16)0xFFFF, _mm512_setzero_ps(), v1);
  }
  _mm512_mask_storeu_ps(c, m0, v0);
  _mm512_mask_storeu_ps(c + 16, m1, v1);
}

/* Mask of the first n (0..16) lanes. */
LENSNET__TARGET_AVX512 static __mmask16 lensnet__avx512_first_lanes(size_t n) {
  return (__mmask16)(n >= 16 ? 0xFFFFu : ((1u << n) - 1u));
}

LENSNET__TARGET_AVX512 static void lensnet__kernel_avx512(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                   size_t m_valid, size_t n_valid, const lensnet__epilogue *ep) {
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  __m512 c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
  __m512 c80 = c00, c81 = c00, c90 = c00, c91 = c00;
  __mmask16 m0 = lensnet__avx512_first_lanes(n_valid);
  __mmask16 m1 = lensnet__avx512_first_lanes(n_valid > 16 ? n_valid - 16 : 0);
  size_t k;
  if (n_valid <= 16) { /* a narrow edge (small images: N = 16, 36, 100): half the work */
    for (k = 0; k < kc; k++, a += LENSNET__AVX512_MR, b += LENSNET__AVX512_NR) {
      __m512 b0 = _mm512_load_ps(b), av;
      LENSNET__AVX512_FMA_HALF_ROW(0) LENSNET__AVX512_FMA_HALF_ROW(1) LENSNET__AVX512_FMA_HALF_ROW(2)
      LENSNET__AVX512_FMA_HALF_ROW(3) LENSNET__AVX512_FMA_HALF_ROW(4) LENSNET__AVX512_FMA_HALF_ROW(5)
      LENSNET__AVX512_FMA_HALF_ROW(6) LENSNET__AVX512_FMA_HALF_ROW(7) LENSNET__AVX512_FMA_HALF_ROW(8)
      LENSNET__AVX512_FMA_HALF_ROW(9)
    }
  } else {
    for (k = 0; k < kc; k++, a += LENSNET__AVX512_MR, b += LENSNET__AVX512_NR) LENSNET__AVX512_K_STEP(0)
  }
  LENSNET__AVX512_STORE_ROW(0) LENSNET__AVX512_STORE_ROW(1) LENSNET__AVX512_STORE_ROW(2)
  LENSNET__AVX512_STORE_ROW(3) LENSNET__AVX512_STORE_ROW(4) LENSNET__AVX512_STORE_ROW(5)
  LENSNET__AVX512_STORE_ROW(6) LENSNET__AVX512_STORE_ROW(7) LENSNET__AVX512_STORE_ROW(8)
  LENSNET__AVX512_STORE_ROW(9)
}

LENSNET__INLINE LENSNET__TARGET_AVX512 void lensnet__copy_avx512(float *dst, const float *src, size_t n) {
  __mmask16 m;
  for (; n >= 16; n -= 16, dst += 16, src += 16) _mm512_storeu_ps(dst, _mm512_loadu_ps(src));
  m = lensnet__avx512_first_lanes(n);
  if (m) _mm512_mask_storeu_ps(dst, m, _mm512_maskz_loadu_ps(m, src));
}

/* AVX-512 packing of A (row-major, the conv weights): one masked gather collects the ten rows'
 * values of column k, one masked store writes them; about twice the speed of element copies. */
LENSNET__TARGET_AVX512 static void lensnet__pack_a_avx512(int trans, const float *A, size_t lda, size_t i0, size_t mc, size_t k0, size_t kc,
                                   size_t mr, float *dst) {
  size_t p, k;
  if (trans || mr != LENSNET__AVX512_MR || lda > (size_t)INT_MAX / LENSNET__AVX512_MR) {
    lensnet__pack_a_plain(trans, A, lda, i0, mc, k0, kc, mr, dst);
    return;
  }
  for (p = 0; p < mc; p += mr, dst += mr * kc) {
    size_t rows = mc - p < mr ? mc - p : mr;
    const float *src = A + (i0 + p) * lda + k0;
    __mmask16 live = lensnet__avx512_first_lanes(rows), store = lensnet__avx512_first_lanes(mr);
    __m512i offsets = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32((int)lda));
    for (k = 0; k < kc; k++) /* rows past M gather nothing and store zero */
      _mm512_mask_storeu_ps(dst + k * mr, store, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, offsets, src + k, 4));
  }
}

/* AVX-512 packing of B. A matrix row is two masked loads (the mask also zeroes columns past N).
 * For an image at stride 1, lane l of a 16-lane half of the panel reads src(k) + off + l, where
 * off is constant within a run of pixels sharing an output row; so each half is one masked load
 * per run it overlaps (runs found once per panel), merged in a register and stored whole. */
LENSNET__TARGET_AVX512 static void lensnet__pack_b_avx512(const lensnet__b_source *s, size_t k0, size_t kc, size_t j0, size_t nv, size_t nr,
                                   float *dst) {
  if (nr != 32 || (s->is_image && s->stride != 1) ||
      (!s->is_image && s->trans && s->ld > (size_t)INT_MAX / LENSNET__AVX512_NR)) {
    lensnet__pack_b_with(s, k0, kc, j0, nv, nr, dst, lensnet__copy_avx512);
  } else if (!s->is_image && s->trans) {
    /* B^T (training's A B^T): column k of the panel is element k of 32 rows, two masked gathers */
    __mmask16 m0 = lensnet__avx512_first_lanes(nv), m1 = lensnet__avx512_first_lanes(nv > 16 ? nv - 16 : 0);
    __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                      _mm512_set1_epi32((int)s->ld));
    const float *src0 = s->data + j0 * s->ld + k0, *src1 = src0 + (nv > 16 ? 16 * s->ld : 0);
    size_t k;
    for (k = 0; k < kc; k++, dst += 32) {
      _mm512_store_ps(dst, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m0, rows, src0 + k, 4));
      _mm512_store_ps(dst + 16, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m1, rows, src1 + k, 4));
    }
  } else if (!s->is_image) {
    __mmask16 m0 = lensnet__avx512_first_lanes(nv), m1 = lensnet__avx512_first_lanes(nv > 16 ? nv - 16 : 0);
    const float *src = s->data + k0 * s->ld + j0;
    size_t k;
    for (k = 0; k < kc; k++, src += s->ld, dst += 32) {
      _mm512_store_ps(dst, _mm512_maskz_loadu_ps(m0, src));
      _mm512_store_ps(dst + 16, _mm512_maskz_loadu_ps(m1, src + 16));
    }
  } else {
    __mmask16 seg_mask[2][16];
    size_t seg_off[2][16], segs[2] = {0, 0}, lane = 0, y = j0 / s->ow, x = j0 % s->ow, h, n, k, base;
    size_t khw = s->kh * s->kw, c = k0 / khw, i = k0 % khw / s->kw, j = k0 % s->kw;
    for (; lane < nv; y++, x = 0) {
      size_t len = s->ow - x < nv - lane ? s->ow - x : nv - lane, off = y * s->row_stride + x - lane;
      for (h = 0; h < 2; h++) {
        size_t lo = lane > 16 * h ? lane : 16 * h, hi = lane + len < 16 * h + 16 ? lane + len : 16 * h + 16;
        if (lo >= hi) continue;
        seg_mask[h][segs[h]] = (__mmask16)(lensnet__avx512_first_lanes(hi - 16 * h) & ~lensnet__avx512_first_lanes(lo - 16 * h));
        seg_off[h][segs[h]++] = off + 16 * h;
      }
      lane += len;
    }
    base = c * s->chan_stride + i * s->row_stride + j;
    if (segs[0] <= 2 && segs[1] <= 2) {
      /* images at least 16 pixels wide: each half has at most two runs, so the row is four
       * masked loads (an empty mask loads nothing) and two stores, without inner loops */
      __mmask16 m00 = 0, m01 = 0, m10 = 0, m11 = 0;
      size_t o00 = 0, o01 = 0, o10 = 0, o11 = 0;
      if (segs[0] > 0) { m00 = seg_mask[0][0]; o00 = o01 = seg_off[0][0]; }
      if (segs[0] > 1) { m01 = seg_mask[0][1]; o01 = seg_off[0][1]; }
      if (segs[1] > 0) { m10 = seg_mask[1][0]; o10 = o11 = seg_off[1][0]; }
      if (segs[1] > 1) { m11 = seg_mask[1][1]; o11 = seg_off[1][1]; }
      if (segs[0] == 1 && segs[1] == 1 && m00 == 0xFFFF && m10 == 0xFFFF && o10 == o00 + 16) {
        /* the 32 pixels lie in one output row: each k is two plain loads */
        for (k = 0; k < kc; k++, dst += 32) {
          const float *src = s->data + base + o00;
          _mm_prefetch((const char *)(src + 32), _MM_HINT_T1); /* the next panel's pixels, into L2 */
          _mm_prefetch((const char *)(src + 47), _MM_HINT_T1);
          _mm512_store_ps(dst, _mm512_loadu_ps(src));
          _mm512_store_ps(dst + 16, _mm512_loadu_ps(src + 16));
          lensnet__patch_step(s, &base, &i, &j);
        }
        return;
      }
      for (k = 0; k < kc; k++, dst += 32) {
        const float *src = s->data + base;
        /* independent zero-masked loads merged by register moves: loads merging into one
         * register would chain their latencies */
        _mm512_store_ps(dst, _mm512_mask_mov_ps(_mm512_maskz_loadu_ps(m00, src + o00), m01,
                                                _mm512_maskz_loadu_ps(m01, src + o01)));
        _mm512_store_ps(dst + 16, _mm512_mask_mov_ps(_mm512_maskz_loadu_ps(m10, src + o10), m11,
                                                     _mm512_maskz_loadu_ps(m11, src + o11)));
        lensnet__patch_step(s, &base, &i, &j);
      }
    } else {
      for (k = 0; k < kc; k++, dst += 32) {
        const float *src = s->data + base;
        for (h = 0; h < 2; h++) {
          __m512 v = segs[h] ? _mm512_maskz_loadu_ps(seg_mask[h][0], src + seg_off[h][0]) : _mm512_setzero_ps();
          for (n = 1; n < segs[h]; n++)
            v = _mm512_mask_mov_ps(v, seg_mask[h][n], _mm512_maskz_loadu_ps(seg_mask[h][n], src + seg_off[h][n]));
          _mm512_store_ps(dst + 16 * h, v);
        }
        lensnet__patch_step(s, &base, &i, &j);
      }
    }
  }
}
#endif

#ifdef LENSNET__HAVE_NEON
#if defined(__aarch64__) || defined(_M_ARM64)
#define LENSNET__NEON_MR 8
#define LENSNET__NEON_FMA(acc, b, a4, lane) vfmaq_laneq_f32(acc, b, a4, lane)
#else
#define LENSNET__NEON_MR 4
#define LENSNET__NEON_FMA(acc, b, a4, lane) \
  vmlaq_lane_f32(acc, b, (lane) < 2 ? vget_low_f32(a4) : vget_high_f32(a4), (lane) & 1)
#endif
#define LENSNET__NEON_NR 8
#define LENSNET__NEON_ROW(row, a4, lane) \
  acc[row][0] = LENSNET__NEON_FMA(acc[row][0], b0, a4, lane); \
  acc[row][1] = LENSNET__NEON_FMA(acc[row][1], b1, a4, lane);

static void lensnet__kernel_neon(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                 size_t m_valid, size_t n_valid, const lensnet__epilogue *ep) {
  float32x4_t acc[LENSNET__NEON_MR][2];
  size_t k, r;
  for (r = 0; r < LENSNET__NEON_MR; r++) acc[r][0] = acc[r][1] = vdupq_n_f32(0.0f);
  for (k = 0; k < kc; k++, a += LENSNET__NEON_MR, b += LENSNET__NEON_NR) {
    float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), a0 = vld1q_f32(a);
    LENSNET__NEON_ROW(0, a0, 0) LENSNET__NEON_ROW(1, a0, 1) LENSNET__NEON_ROW(2, a0, 2) LENSNET__NEON_ROW(3, a0, 3)
#if LENSNET__NEON_MR == 8
    {
      float32x4_t a1 = vld1q_f32(a + 4);
      LENSNET__NEON_ROW(4, a1, 0) LENSNET__NEON_ROW(5, a1, 1) LENSNET__NEON_ROW(6, a1, 2) LENSNET__NEON_ROW(7, a1, 3)
    }
#endif
  }
  if (m_valid == LENSNET__NEON_MR && n_valid == LENSNET__NEON_NR) {
    float32x4_t alpha = vdupq_n_f32(ep->alpha), beta = vdupq_n_f32(ep->beta), zero = vdupq_n_f32(0.0f);
    for (r = 0; r < LENSNET__NEON_MR; r++) {
      float *cr = c + r * ldc;
      float32x4_t v0 = vmulq_f32(alpha, acc[r][0]), v1 = vmulq_f32(alpha, acc[r][1]);
      if (ep->beta != 0.0f) {
        v0 = vaddq_f32(v0, vmulq_f32(beta, vld1q_f32(cr)));
        v1 = vaddq_f32(v1, vmulq_f32(beta, vld1q_f32(cr + 4)));
      }
      if (ep->bias) { float32x4_t bv = vdupq_n_f32(ep->bias[r]); v0 = vaddq_f32(v0, bv); v1 = vaddq_f32(v1, bv); }
      if (ep->relu) { v0 = vmaxq_f32(zero, v0); v1 = vmaxq_f32(zero, v1); }
      vst1q_f32(cr, v0);
      vst1q_f32(cr + 4, v1);
    }
  } else {
    float tile[LENSNET__NEON_MR * LENSNET__NEON_NR];
    for (r = 0; r < LENSNET__NEON_MR; r++) {
      vst1q_f32(tile + r * LENSNET__NEON_NR, acc[r][0]);
      vst1q_f32(tile + r * LENSNET__NEON_NR + 4, acc[r][1]);
    }
    lensnet__store_tile(tile, LENSNET__NEON_NR, c, ldc, m_valid, n_valid, ep);
  }
}
#endif

/* The path's shapes and kernels; an unavailable path resolves to scalar. */
static const lensnet__gemm_path *lensnet__gemm_path_for(lensnet_simd s) {
  static const lensnet__gemm_path scalar = {LENSNET__SCALAR_MR, LENSNET__SCALAR_NR, lensnet__kernel_scalar, lensnet__pack_a_plain, lensnet__pack_b_plain, lensnet__sgemm_small_m};
#ifdef LENSNET__HAVE_SSE
  static const lensnet__gemm_path sse = {LENSNET__SSE_MR, LENSNET__SSE_NR, lensnet__kernel_sse, lensnet__pack_a_plain, lensnet__pack_b_plain, lensnet__sgemm_small_m};
#endif
#ifdef LENSNET__HAVE_AVX2
  static const lensnet__gemm_path avx2 = {LENSNET__AVX2_MR, LENSNET__AVX2_NR, lensnet__kernel_avx2, lensnet__pack_a_plain, lensnet__pack_b_avx2, lensnet__sgemm_small_m_avx2};
#endif
#ifdef LENSNET__HAVE_AVX512
  static const lensnet__gemm_path avx512 = {LENSNET__AVX512_MR, LENSNET__AVX512_NR, lensnet__kernel_avx512, lensnet__pack_a_avx512, lensnet__pack_b_avx512, lensnet__sgemm_small_m_avx512};
#endif
#ifdef LENSNET__HAVE_NEON
  static const lensnet__gemm_path neon = {LENSNET__NEON_MR, LENSNET__NEON_NR, lensnet__kernel_neon, lensnet__pack_a_plain, lensnet__pack_b_plain, lensnet__sgemm_small_m};
#endif
  if (!lensnet_simd_available(s)) return &scalar;
  switch (s) {
#ifdef LENSNET__HAVE_SSE
    case LENSNET_SIMD_SSE: return &sse;
#endif
#ifdef LENSNET__HAVE_AVX2
    case LENSNET_SIMD_AVX2: return &avx2;
#endif
#ifdef LENSNET__HAVE_AVX512
    case LENSNET_SIMD_AVX512: return &avx512;
#endif
#ifdef LENSNET__HAVE_NEON
    case LENSNET_SIMD_NEON: return &neon;
#endif
    default: return &scalar;
  }
}

/* ---- the blocked product ---- */

/* C[0:mc, 0:N] = epilogue(Ap * op(B)[k0:k0+kc, 0:N]) for one packed block Ap of A. */
static void lensnet__macro_kernel(const lensnet__gemm_path *path, size_t mc, size_t N, size_t kc, const float *Ap,
                                  const lensnet__b_source *b, size_t k0, float *C, size_t ldc,
                                  const lensnet__epilogue *ep, float *Bp) {
  size_t j0, i0, mr = path->mr, nr = path->nr;
  lensnet__epilogue tile_ep = *ep;
  for (j0 = 0; j0 < N; j0 += nr) {
    size_t nv = N - j0 < nr ? N - j0 : nr;
    path->pack_b(b, k0, kc, j0, nv, nr, Bp);
    for (i0 = 0; i0 < mc; i0 += mr) {
      tile_ep.bias = ep->bias ? ep->bias + i0 : NULL;
      path->kernel(kc, Ap + i0 * kc, Bp, C + i0 * ldc + j0, ldc, mc - i0 < mr ? mc - i0 : mr, nv, &tile_ep);
    }
  }
}

/* Floats of packing memory for an mc x kc block of A and a kc x NR panel of B, aligned. */
static size_t lensnet__pack_floats(size_t mc, size_t kc, size_t mr, size_t nr) {
  size_t a_floats, b_floats;
  if (!lensnet__mul_ok(lensnet__round_up(mc, mr), kc, &a_floats) || !lensnet__mul_ok(kc, nr, &b_floats) ||
      a_floats > (size_t)-1 - b_floats - 2 * LENSNET__ALIGN_SLACK)
    return (size_t)-1;
  return a_floats + b_floats + 2 * LENSNET__ALIGN_SLACK;
}

/* The blocked product with mc = MR, packed into a buffer on the stack (about 43 KB). */
static void lensnet__sgemm_stack(const lensnet__gemm_path *path, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                                 float alpha, const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                                 size_t ldc) {
  float mem[(LENSNET__GEMM_MR_MAX + LENSNET__GEMM_NR_MAX) * LENSNET__GEMM_KC + 2 * LENSNET__ALIGN_SLACK];
  size_t kc_max = lensnet__k_block(K), mc_max = path->mr, ic, pc;
  float *Ap = lensnet__align64(mem), *Bp = lensnet__align64(Ap + mc_max * kc_max);
  lensnet__b_source bsrc;
  lensnet__epilogue ep;
  memset(&bsrc, 0, sizeof bsrc);
  bsrc.data = B;
  bsrc.trans = trans_b;
  bsrc.ld = ldb;
  ep.alpha = alpha;
  ep.bias = NULL;
  ep.relu = 0;
  for (ic = 0; ic < M; ic += mc_max) {
    size_t mc = M - ic < mc_max ? M - ic : mc_max;
    for (pc = 0; pc < K; pc += kc_max) {
      size_t kc = K - pc < kc_max ? K - pc : kc_max;
      path->pack_a(trans_a, A, lda, ic, mc, pc, kc, path->mr, Ap);
      ep.beta = pc == 0 ? beta : 1.0f;
      lensnet__macro_kernel(path, mc, N, kc, Ap, &bsrc, pc, C + ic * ldc, ldc, &ep, Bp);
    }
  }
}

LENSNET_API void lensnet_sgemm_path(lensnet_simd simd, int trans_a, int trans_b, size_t M, size_t N, size_t K,
                                    float alpha, const float *A, size_t lda, const float *B, size_t ldb,
                                    float beta, float *C, size_t ldc) {
  const lensnet__gemm_path *path = lensnet__gemm_path_for(simd);
  size_t kc_max = lensnet__k_block(K), mc_max = M < LENSNET__GEMM_MC ? M : LENSNET__GEMM_MC;
  size_t floats, bytes, ic, pc;
  lensnet__b_source bsrc;
  lensnet__epilogue ep;
  float *mem, *Ap, *Bp;
  if (M == 0 || N == 0) return;
  if (alpha == 0.0f || K == 0) {
    lensnet__sgemm_reference(trans_a, trans_b, M, N, 0, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (M <= LENSNET__SMALL_M) {
    path->small_m(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  floats = lensnet__pack_floats(mc_max, kc_max, path->mr, path->nr);
  mem = (floats != (size_t)-1 && lensnet__mul_ok(floats, sizeof(float), &bytes))
            ? LENSNET__CAST(float *, LENSNET_MALLOC(bytes)) : NULL;
  if (!mem) {
    /* No memory for packing: blocks of one micro-panel of rows, packed on the stack. The k
     * blocks and the tiles are those of the full blocks, so every element is summed in the same
     * order and the answer is the same to the bit (an unblocked loop would round differently,
     * and a training run would then depend on the memory it was given). */
    lensnet__sgemm_stack(path, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  Ap = lensnet__align64(mem);
  Bp = lensnet__align64(Ap + lensnet__round_up(mc_max, path->mr) * kc_max);
  memset(&bsrc, 0, sizeof bsrc);
  bsrc.data = B;
  bsrc.trans = trans_b;
  bsrc.ld = ldb;
  ep.alpha = alpha;
  ep.bias = NULL;
  ep.relu = 0;
  for (ic = 0; ic < M; ic += mc_max) {
    size_t mc = M - ic < mc_max ? M - ic : mc_max;
    for (pc = 0; pc < K; pc += kc_max) {
      size_t kc = K - pc < kc_max ? K - pc : kc_max;
      path->pack_a(trans_a, A, lda, ic, mc, pc, kc, path->mr, Ap);
      ep.beta = pc == 0 ? beta : 1.0f;
      lensnet__macro_kernel(path, mc, N, kc, Ap, &bsrc, pc, C + ic * ldc, ldc, &ep, Bp);
    }
  }
  LENSNET_FREE(mem);
}

LENSNET_API void lensnet_sgemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
                               const float *A, size_t lda, const float *B, size_t ldb,
                               float beta, float *C, size_t ldc) {
  lensnet_sgemm_path(lensnet_simd_best(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---- int8 product (quantised inference) ---------------------------------------------------- */

/* C[m*ldc + n] = sum_k A[m][k] * B[k][n]: signed weights A in [-127, 127] (symmetric quantisation
 * never produces -128) against unsigned activations B in [0, 255], int32 sums. Every path
 * computes the exact integer sum, so all paths give the same bits; only the speed differs. With
 * K below 2^16 no sum can overflow (255 * 127 * 2^16 < 2^31).
 *
 * Layout (the one VNNI's dot product wants, used by every path): K is padded with zeros to Kp, a
 * multiple of 4; A is M rows of Kp bytes; B is packed as [Kp/4][N][4], the four activations of
 * k = 4q..4q+3 for output position n in one 32-bit word, so one vector holds 16 (AVX-512) or 8
 * (AVX2) output positions and each weight quadruple is broadcast to all of them: no horizontal
 * sums. Convolutions write their im2col matrix straight into this layout.
 *
 * AVX-512 VNNI: _mm512_dpbusd_epi32 multiplies unsigned by signed bytes and adds each word's four
 * products into int32, exactly this product; 8 rows x 32 positions of C stay in 16 registers.
 * AVX2 avoids _mm256_maddubs_epi16, whose int16 pair sums saturate (255 * 127 * 2 > 32767): it
 * widens the activations to int16 and takes the weights pre-widened (A16, int16 copies of A),
 * and _mm256_madd_epi16 sums pairs of products (each at most 255 * 127 = 32385) into int32; the
 * two pairs of a word are added at the end (hadd). NEON has no unsigned-by-signed dot product
 * before the int8 matrix extension, so it widens too and multiplies-adds in int32 (vmlal_s16). */
typedef void (*lensnet__i8_kernel_fn)(size_t M, size_t N, size_t Kq, const int8_t *A, const int16_t *A16, const uint8_t *P,
                                      int32_t *C, size_t ldc);

static void lensnet__i8_kernel_scalar(size_t M, size_t N, size_t Kq, const int8_t *A, const int16_t *A16, const uint8_t *P,
                                      int32_t *C, size_t ldc) {
  size_t m, n, q, j;
  (void)A16;
  for (m = 0; m < M; m++)
    for (n = 0; n < N; n++) {
      const int8_t *a = A + m * 4 * Kq;
      int32_t acc = 0;
      for (q = 0; q < Kq; q++)
        for (j = 0; j < 4; j++) acc += (int32_t)a[4 * q + j] * (int32_t)P[(q * N + n) * 4 + j];
      C[m * ldc + n] = acc;
    }
}

#ifdef LENSNET__HAVE_AVX2
/* 4 rows x 8 positions: per row two accumulators (positions 0-3 and 4-7, two partial sums per
 * word each, named so that they stay in registers), added pairwise and put back in position
 * order at the end. */
#define LENSNET__AVX2_I8_ROW(r) do { \
    int64_t quad_; \
    memcpy(&quad_, a[r] + 4 * q, 8); \
    av = _mm256_set1_epi64x(quad_); \
    lo##r = _mm256_add_epi32(lo##r, _mm256_madd_epi16(b0, av)); \
    hi##r = _mm256_add_epi32(hi##r, _mm256_madd_epi16(b1, av)); \
  } while (0)
LENSNET__TARGET_AVX2 static void lensnet__i8_kernel_avx2(size_t M, size_t N, size_t Kq, const int8_t *A, const int16_t *A16,
                                                          const uint8_t *P, int32_t *C, size_t ldc) {
  size_t m, n, q, r;
  (void)A;
  for (n = 0; n < N; n += 8) {
    size_t cols = N - n < 8 ? N - n : 8;
    for (m = 0; m < M; m += 4) {
      size_t rows = M - m < 4 ? M - m : 4;
      const int16_t *a[4];
      __m256i lo0 = _mm256_setzero_si256(), lo1 = lo0, lo2 = lo0, lo3 = lo0, hi0 = lo0, hi1 = lo0, hi2 = lo0, hi3 = lo0, av, s[4];
      int32_t tail[8];
      for (r = 0; r < 4; r++) a[r] = A16 + (m + (r < rows ? r : 0)) * 4 * Kq;
      for (q = 0; q < Kq; q++) {
        const uint8_t *p = P + (q * N + n) * 4;
        __m256i b0, b1;
        if (cols == 8) {
          b0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
          b1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(p + 16)));
        } else {
          unsigned char part[32] = {0};
          memcpy(part, p, cols * 4);
          b0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)part));
          b1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(part + 16)));
        }
        LENSNET__AVX2_I8_ROW(0); LENSNET__AVX2_I8_ROW(1); LENSNET__AVX2_I8_ROW(2); LENSNET__AVX2_I8_ROW(3);
      }
      s[0] = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo0, hi0), 0xd8);
      s[1] = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo1, hi1), 0xd8);
      s[2] = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo2, hi2), 0xd8);
      s[3] = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo3, hi3), 0xd8);
      for (r = 0; r < rows; r++) {
        if (cols == 8) _mm256_storeu_si256((__m256i *)(C + (m + r) * ldc + n), s[r]);
        else {
          _mm256_storeu_si256((__m256i *)tail, s[r]);
          memcpy(C + (m + r) * ldc + n, tail, cols * sizeof(int32_t));
        }
      }
    }
  }
}
#endif

#ifdef LENSNET__HAVE_VNNI
/* 10 rows x 32 positions in 20 accumulators (the layers of OU-66 and OU-200 have 20 to 50
 * outputs: multiples of 10); the last positions through masks. Positions outside, rows inside:
 * the 32 positions' packed activations (Kp * 32 bytes) stay in L1 for every block of rows. */
#define LENSNET__VNNI_MR 10
/* One row's step: its four weights broadcast, against the 32 positions (accumulators named, so
 * that they stay in registers). */
#define LENSNET__VNNI_ROW(r) do { \
    int32_t quad_; \
    memcpy(&quad_, a[r] + 4 * q, 4); \
    av = _mm512_set1_epi32(quad_); \
    c##r##a = _mm512_dpbusd_epi32(c##r##a, b0, av); \
    c##r##b = _mm512_dpbusd_epi32(c##r##b, b1, av); \
  } while (0)
LENSNET__TARGET_VNNI static void lensnet__i8_kernel_vnni(size_t M, size_t N, size_t Kq, const int8_t *A, const int16_t *A16,
                                                          const uint8_t *P, int32_t *C, size_t ldc) {
  size_t m, n, q, r;
  (void)A16;
  for (n = 0; n < N; n += 32) {
    size_t cols = N - n < 32 ? N - n : 32;
    __mmask16 k0 = (__mmask16)(cols >= 16 ? 0xffffu : ((1u << cols) - 1u));
    __mmask16 k1 = (__mmask16)(cols >= 32 ? 0xffffu : cols <= 16 ? 0u : ((1u << (cols - 16)) - 1u));
    for (m = 0; m < M; m += LENSNET__VNNI_MR) {
      size_t rows = M - m < LENSNET__VNNI_MR ? M - m : LENSNET__VNNI_MR;
      const int8_t *a[LENSNET__VNNI_MR];
      __m512i c0a = _mm512_setzero_si512(), c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a, c3a = c0a, c3b = c0a,
              c4a = c0a, c4b = c0a, c5a = c0a, c5b = c0a, c6a = c0a, c6b = c0a, c7a = c0a, c7b = c0a, c8a = c0a, c8b = c0a,
              c9a = c0a, c9b = c0a, av;
      __m512i out[LENSNET__VNNI_MR][2];
      for (r = 0; r < LENSNET__VNNI_MR; r++) a[r] = A + (m + (r < rows ? r : 0)) * 4 * Kq;
      for (q = 0; q < Kq; q++) {
        const uint8_t *p = P + (q * N + n) * 4;
        __m512i b0 = _mm512_maskz_loadu_epi32(k0, p), b1 = _mm512_maskz_loadu_epi32(k1, p + 64);
        LENSNET__VNNI_ROW(0); LENSNET__VNNI_ROW(1); LENSNET__VNNI_ROW(2); LENSNET__VNNI_ROW(3); LENSNET__VNNI_ROW(4);
        LENSNET__VNNI_ROW(5); LENSNET__VNNI_ROW(6); LENSNET__VNNI_ROW(7); LENSNET__VNNI_ROW(8); LENSNET__VNNI_ROW(9);
      }
      out[0][0] = c0a; out[0][1] = c0b; out[1][0] = c1a; out[1][1] = c1b; out[2][0] = c2a; out[2][1] = c2b;
      out[3][0] = c3a; out[3][1] = c3b; out[4][0] = c4a; out[4][1] = c4b; out[5][0] = c5a; out[5][1] = c5b;
      out[6][0] = c6a; out[6][1] = c6b; out[7][0] = c7a; out[7][1] = c7b; out[8][0] = c8a; out[8][1] = c8b;
      out[9][0] = c9a; out[9][1] = c9b;
      for (r = 0; r < rows; r++) {
        _mm512_mask_storeu_epi32(C + (m + r) * ldc + n, k0, out[r][0]);
        _mm512_mask_storeu_epi32(C + (m + r) * ldc + n + 16, k1, out[r][1]);
      }
    }
  }
}
#endif

#ifdef LENSNET__HAVE_NEON
/* One row x 4 positions: a 16-byte load holds the four words; each position's four products
 * are multiplied-added into its own int32x4 and summed at the end. */
static void lensnet__i8_kernel_neon(size_t M, size_t N, size_t Kq, const int8_t *A, const int16_t *A16, const uint8_t *P,
                                    int32_t *C, size_t ldc) {
  size_t m, n, q, j;
  (void)A;
  for (m = 0; m < M; m++) {
    const int16_t *a = A16 + m * 4 * Kq;
    for (n = 0; n + 4 <= N; n += 4) {
      int32x4_t acc0 = vdupq_n_s32(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
      int32_t lanes[4][4];
      for (q = 0; q < Kq; q++) {
        uint8x16_t b = vld1q_u8(P + (q * N + n) * 4);
        int16x8_t b01 = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(b))), b23 = vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(b)));
        int16x4_t av = vld1_s16(a + 4 * q);
        acc0 = vmlal_s16(acc0, vget_low_s16(b01), av);
        acc1 = vmlal_s16(acc1, vget_high_s16(b01), av);
        acc2 = vmlal_s16(acc2, vget_low_s16(b23), av);
        acc3 = vmlal_s16(acc3, vget_high_s16(b23), av);
      }
      vst1q_s32(lanes[0], acc0); vst1q_s32(lanes[1], acc1); vst1q_s32(lanes[2], acc2); vst1q_s32(lanes[3], acc3);
      for (j = 0; j < 4; j++) C[m * ldc + n + j] = lanes[j][0] + lanes[j][1] + lanes[j][2] + lanes[j][3];
    }
    for (; n < N; n++) {
      int32_t acc = 0;
      for (q = 0; q < Kq; q++)
        for (j = 0; j < 4; j++) acc += (int32_t)a[4 * q + j] * (int32_t)P[(q * N + n) * 4 + j];
      C[m * ldc + n] = acc;
    }
  }
}
#endif

LENSNET_API int lensnet_i8_simd_available(lensnet_simd s) {
  switch (s) {
    case LENSNET_SIMD_SCALAR: return 1;
#ifdef LENSNET__HAVE_AVX2
    case LENSNET_SIMD_AVX2: return lensnet_simd_available(s);
#endif
#ifdef LENSNET__HAVE_VNNI
    case LENSNET_SIMD_AVX512: return lensnet_simd_available(s) && (lensnet__simd_word() & LENSNET__SIMD_VNNI) != 0;
#endif
#ifdef LENSNET__HAVE_NEON
    case LENSNET_SIMD_NEON: return lensnet_simd_available(s);
#endif
    default: return 0;
  }
}

LENSNET_API lensnet_simd lensnet_i8_simd_best(void) {
  static const lensnet_simd widest_first[] = {LENSNET_SIMD_AVX512, LENSNET_SIMD_AVX2, LENSNET_SIMD_NEON};
  lensnet_simd cap = lensnet_simd_best();
  size_t i;
  for (i = 0; i < sizeof widest_first / sizeof widest_first[0]; i++)
    if (lensnet_i8_simd_available(widest_first[i]) && lensnet__simd_rank(widest_first[i]) <= lensnet__simd_rank(cap))
      return widest_first[i];
  return LENSNET_SIMD_SCALAR;
}

static lensnet__i8_kernel_fn lensnet__i8_kernel_for(lensnet_simd s) {
  if (!lensnet_i8_simd_available(s)) return lensnet__i8_kernel_scalar;
  switch (s) {
#ifdef LENSNET__HAVE_AVX2
    case LENSNET_SIMD_AVX2: return lensnet__i8_kernel_avx2;
#endif
#ifdef LENSNET__HAVE_VNNI
    case LENSNET_SIMD_AVX512: return lensnet__i8_kernel_vnni;
#endif
#ifdef LENSNET__HAVE_NEON
    case LENSNET_SIMD_NEON: return lensnet__i8_kernel_neon;
#endif
    default: return lensnet__i8_kernel_scalar;
  }
}

/* Bytes of the packed layout of B: [Kp/4][N][4], Kp = K rounded up to a multiple of 4. */
static size_t lensnet__i8_pad(size_t K) { return (K + 3) & ~(size_t)3; }

/* The unpacked interface (tests, callers with plain matrices): packs A and B into the layout
 * above, or, out of memory, computes the same sums with a plain loop. */
LENSNET_API void lensnet_i8gemm_path(lensnet_simd path, size_t M, size_t N, size_t K, const int8_t *A, size_t lda,
                                     const uint8_t *B, size_t ldb, int32_t *C, size_t ldc) {
  size_t Kp = lensnet__i8_pad(K), m, n, k;
  int8_t *Ap = LENSNET__CAST(int8_t *, LENSNET_MALLOC(M * Kp + 1));
  int16_t *A16 = LENSNET__CAST(int16_t *, LENSNET_MALLOC(M * Kp * sizeof(int16_t) + 2));
  uint8_t *P = LENSNET__CAST(uint8_t *, LENSNET_MALLOC(N * Kp + 1));
  if (Ap && A16 && P) {
    memset(Ap, 0, M * Kp);
    memset(P, 0, N * Kp);
    for (m = 0; m < M; m++)
      for (k = 0; k < K; k++) Ap[m * Kp + k] = A[m * lda + k];
    for (k = 0; k < M * Kp; k++) A16[k] = Ap[k];
    for (n = 0; n < N; n++)
      for (k = 0; k < K; k++) P[((k >> 2) * N + n) * 4 + (k & 3)] = B[n * ldb + k];
    lensnet__i8_kernel_for(path)(M, N, Kp / 4, Ap, A16, P, C, ldc);
  } else
    for (m = 0; m < M; m++)
      for (n = 0; n < N; n++) {
        int32_t acc = 0;
        for (k = 0; k < K; k++) acc += (int32_t)A[m * lda + k] * (int32_t)B[n * ldb + k];
        C[m * ldc + n] = acc;
      }
  if (Ap) LENSNET_FREE(Ap);
  if (A16) LENSNET_FREE(A16);
  if (P) LENSNET_FREE(P);
}

LENSNET_API void lensnet_i8gemm(size_t M, size_t N, size_t K, const int8_t *A, size_t lda, const uint8_t *B, size_t ldb,
                                int32_t *C, size_t ldc) {
  lensnet_i8gemm_path(lensnet_i8_simd_best(), M, N, K, A, lda, B, ldb, C, ldc);
}


/* ---- convolution (forward) ----------------------------------------------------------------- */

/* Convolution runs as C[cout_g, oh*ow] = W[cout_g, K] * col[K, oh*ow] per image and group, with
 * K = cin_g*kh*kw, through the blocked product above. The col matrix is never formed: B
 * micro-panels are packed straight from the image (implicit GEMM), padding is applied once by
 * copying the image into a zero border, and bias + ReLU are applied in the micro-kernel's
 * epilogue while the tile is in registers. The group's weights are packed once per call and
 * reused for every image of the batch.
 *
 * Implicit GEMM or im2col? Measured with tests/bench_gemm.c (AVX-512 path, one core of a
 * Sapphire Rapids machine whose measured FMA peak was 192 GFLOP/s, batch 1, bias + ReLU):
 *                               implicit GEMM            im2col (row copies) + sgemm + bias/ReLU
 *   OU-66  conv2 50->50 @32      268 us (151 GFLOP/s)     398 us (102 GFLOP/s)
 *   OU-66  all nine conv layers  977 us (151 GFLOP/s)    1593 us ( 93 GFLOP/s)
 *   OU-200 all six conv layers  8387 us (157 GFLOP/s)   15061 us ( 87 GFLOP/s)
 * im2col writes kh*kw times the image (1.6 MB for OU-66 conv2, 44 MB for OU-200 conv2) and the
 * packing reads it all back; packing from the image reads the same data once, from L1/L2. So
 * the forward uses implicit GEMM; lensnet__im2col stays for the backward pass's fallback.
 * On the AVX-512 path a stride-1 layer with K <= 4096 and at most an eighth of its lanes on
 * dropped columns (lensnet__direct_conv_ok) goes one step further and packs nothing: its output rows
 * are read straight from the image (lensnet__conv_rows_direct_avx512), and its weight gradient is
 * taken the same way (lensnet__conv_wgrad_direct_avx512). */

/* The geometry of one 2-D convolution layer applied to a batch (PyTorch semantics:
 * cross-correlation, zero padding, oh = (h + 2 pad - kh) / stride + 1). */
typedef struct {
  size_t n, cin, h, w;      /* input [n, cin, h, w] */
  size_t cout, kh, kw;      /* weight [cout, cin/groups, kh, kw] */
  size_t stride, pad, groups;
  size_t oh, ow;            /* output [n, cout, oh, ow] */
  int wino4x4;              /* a trainer's: a 3 x 3 layer with 16 tiles of 4 x 4 or more takes F(4x4, 3x3) (lensnet__wino_m) */
} lensnet__conv_geom;

/* Sizes of the parts of the forward's scratch, in floats (SIZE_MAX on overflow). */
static int lensnet__conv_scratch_parts(const lensnet__conv_geom *g, size_t *a_floats, size_t *b_floats,
                                       size_t *pad_floats) {
  size_t cin_g = g->cin / g->groups, cout_g = g->cout / g->groups, K, hp = g->h + 2 * g->pad, wp = g->w + 2 * g->pad;
  if (!lensnet__mul_ok(cin_g, g->kh, &K) || !lensnet__mul_ok(K, g->kw, &K)) return 0;
  /* every path's MR divides neither necessarily: pad rows up to the largest MR */
  if (!lensnet__mul_ok(cout_g + LENSNET__GEMM_MR_MAX, K, a_floats)) return 0;
  *b_floats = (size_t)LENSNET__GEMM_KC * LENSNET__GEMM_NR_MAX;
  *pad_floats = 0;
  if (g->pad && (!lensnet__mul_ok(cin_g, hp, pad_floats) || !lensnet__mul_ok(*pad_floats, wp, pad_floats))) return 0;
  return 1;
}

/* Floats of scratch the forward alone needs: packed weights, one B micro-panel and, with
 * padding, one padded image-group (about 280 KB for the largest OU-200 layer). SIZE_MAX when the
 * sizes overflow. For inference-only buffers. */
LENSNET__MAYBE_UNUSED static size_t lensnet__conv_forward_scratch_floats(const lensnet__conv_geom *g) {
  size_t a, b, padded;
  if (!lensnet__conv_scratch_parts(g, &a, &b, &padded) || a > (size_t)-1 - b - padded - 3 * LENSNET__ALIGN_SLACK)
    return (size_t)-1;
  return a + b + padded + 3 * LENSNET__ALIGN_SLACK;
}

/* Floats of scratch memory lensnet__conv2d_forward needs for this geometry, raised to one
 * image-group of lensnet__im2col output so that a backward pass can share the buffer (the im2col
 * size is what this function returned before the forward packed from the image; for OU-200's
 * second layer it is 44 MB against 280 KB, so inference can use the function above).
 * SIZE_MAX when the sizes overflow. */
LENSNET__MAYBE_UNUSED static size_t lensnet__conv_scratch_floats(const lensnet__conv_geom *g) {
  size_t total = lensnet__conv_forward_scratch_floats(g), col;
  if (total == (size_t)-1) return total;
  if (!lensnet__mul_ok(g->cin / g->groups, g->kh, &col) || !lensnet__mul_ok(col, g->kw, &col) ||
      !lensnet__mul_ok(col, g->oh, &col) || !lensnet__mul_ok(col, g->ow, &col))
    return (size_t)-1;
  return total > col ? total : col;
}

/* Unrolls one image's group of channels into columns: col[(c*kh + i)*kw + j][y*ow + x]
 * (used by the backward pass; the forward packs the same values straight from the image).
 * At stride 1 each output row is one copy between two zero runs. */
LENSNET__MAYBE_UNUSED static void lensnet__im2col(const lensnet__conv_geom *g, const float *img, size_t cin_g, float *col) {
  size_t c, i, j, y, x, P = g->oh * g->ow;
  for (c = 0; c < cin_g; c++)
    for (i = 0; i < g->kh; i++)
      for (j = 0; j < g->kw; j++) {
        float *dst = col + ((c * g->kh + i) * g->kw + j) * P;
        const float *src = img + c * g->h * g->w;
        /* output columns whose input column x*stride + j - pad lies inside the image */
        size_t x_lo = j >= g->pad ? 0 : (g->pad - j + g->stride - 1) / g->stride;
        size_t x_hi = g->w + g->pad > j ? (g->w + g->pad - j + g->stride - 1) / g->stride : 0;
        if (x_hi > g->ow) x_hi = g->ow;
        if (x_lo > x_hi) x_lo = x_hi;
        for (y = 0; y < g->oh; y++, dst += g->ow) {
          size_t iy = y * g->stride + i;
          const float *row;
          if (iy < g->pad || iy - g->pad >= g->h) {
            memset(dst, 0, g->ow * sizeof(float));
            continue;
          }
          row = src + (iy - g->pad) * g->w;
          memset(dst, 0, x_lo * sizeof(float));
          if (g->stride == 1) {
            if (x_hi > x_lo) memcpy(dst + x_lo, row + x_lo + j - g->pad, (x_hi - x_lo) * sizeof(float));
          } else {
            for (x = x_lo; x < x_hi; x++) dst[x] = row[x * g->stride + j - g->pad];
          }
          memset(dst + x_hi, 0, (g->ow - x_hi) * sizeof(float));
        }
      }
}

/* Copies cin_g channels of an image into a zero border of width pad (a cheap pass compared with
 * the kh*kw-fold reads of packing, and it lets the packer ignore padding). */
static void lensnet__pad_image(const lensnet__conv_geom *g, const float *img, size_t cin_g, float *dst) {
  size_t c, y, hp = g->h + 2 * g->pad, wp = g->w + 2 * g->pad;
  for (c = 0; c < cin_g; c++) {
    float *d = dst + c * hp * wp;
    const float *s = img + c * g->h * g->w;
    memset(d, 0, g->pad * wp * sizeof(float));
    for (y = 0; y < g->h; y++) {
      float *row = d + (y + g->pad) * wp;
      memset(row, 0, g->pad * sizeof(float));
      memcpy(row + g->pad, s + y * g->w, g->w * sizeof(float));
      memset(row + g->pad + g->w, 0, g->pad * sizeof(float));
    }
    memset(d + (g->h + g->pad) * wp, 0, g->pad * wp * sizeof(float));
  }
}

/* Floats of a layer's weights packed for `path` (every group: m_pad x K each), with the slack
 * for aligning them; 0 on overflow. */
static size_t lensnet__conv_packed_floats(const lensnet__gemm_path *path, const lensnet__conv_geom *g) {
  size_t cout_g = g->cout / g->groups, K, per, all;
  if (!lensnet__mul_ok(g->cin / g->groups, g->kh * g->kw, &K) || !lensnet__mul_ok(lensnet__round_up(cout_g, path->mr), K, &per) ||
      !lensnet__mul_ok(per, g->groups, &all) || all > (size_t)-1 - LENSNET__ALIGN_SLACK)
    return 0;
  return all + LENSNET__ALIGN_SLACK;
}

/* Group grp's weights into A panels: K block pc at dst + m_pad * pc. */
static void lensnet__conv_pack_weights(const lensnet__gemm_path *path, const lensnet__conv_geom *g, const float *weight, size_t grp,
                                       float *dst) {
  size_t cout_g = g->cout / g->groups, K = (g->cin / g->groups) * g->kh * g->kw, kc_max = lensnet__k_block(K), pc;
  size_t m_pad = lensnet__round_up(cout_g, path->mr);
  for (pc = 0; pc < K; pc += kc_max) {
    size_t kc = K - pc < kc_max ? K - pc : kc_max;
    path->pack_a(0, weight + grp * cout_g * K, K, 0, cout_g, pc, kc, path->mr, dst + m_pad * pc);
  }
}

/* The forward through one chosen path; prepacked (NULL: pack here) holds every group's panels as
 * lensnet__conv_pack_weights lays them out for this path, group grp at grp * m_pad * K. pool
 * (NULL: none) is a 2x2 stride-2 max pool to apply on the way (inference): out is then the pooled
 * output, and the convolution's rows are made a band at a time (lensnet__pool_band_rows pooled
 * rows) into scratch after the convolution's own parts, pooled while the band is in cache. */
static void lensnet__conv2d_forward_prepacked(lensnet_simd simd, const lensnet__conv_geom *g, const float *in, const float *weight,
                                              const float *prepacked, const float *bias, int fuse_relu, const lensnet_layer *pool,
                                              float *out, float *scratch, unsigned char *pool_arg);
static void lensnet__maxpool2x2(const lensnet_layer *L, size_t planes, const float *in, float *out);
static void lensnet__maxpool2x2_argmax(const lensnet_layer *L, size_t planes, const float *in, float *out, unsigned char *arg);

/* Pooled rows per band when a convolution ow pixels wide is pooled on the way: bands of at least
 * 8 micro-panels of 32 whose length wastes at most 1% of a panel (a partial panel per band), else
 * the least wasteful of 1-16 rows. */
static size_t lensnet__pool_band_rows(size_t ow) {
  size_t br, best = 1;
  double best_waste = 2.0;
  for (br = 1; br <= 16; br++) {
    size_t n = 2 * br * ow, padded = lensnet__round_up(n, LENSNET__GEMM_NR_MAX);
    double waste = (double)(padded - n) / (double)n;
    if (n < 8 * LENSNET__GEMM_NR_MAX) continue;
    if (waste <= 0.01) return br;
    if (waste < best_waste) { best = br; best_waste = waste; }
  }
  return best;
}

/* The forward through one chosen path (tests compare paths). */
LENSNET__MAYBE_UNUSED static void lensnet__conv2d_forward_path(lensnet_simd simd, const lensnet__conv_geom *g, const float *in,
                                         const float *weight, const float *bias, int fuse_relu, float *out,
                                         float *scratch) {
  lensnet__conv2d_forward_prepacked(simd, g, in, weight, NULL, bias, fuse_relu, NULL, out, scratch, NULL);
}

#ifdef LENSNET__HAVE_AVX512
#define LENSNET__DIRECT_K_MAX 4096

/* Can the rows of this convolution be read straight from the image (lensnet__conv_rows_direct_avx512)?
 * Stride 1, at most LENSNET__DIRECT_K_MAX products per output, offsets within 32 bits, and at most
 * an eighth of the lanes spent on the kw - 1 columns between output rows. */
static int lensnet__direct_conv_ok(const lensnet__conv_geom *g, const lensnet__b_source *image) {
  size_t K = (g->cin / g->groups) * g->kh * g->kw, rs = image->row_stride;
  return image->stride == 1 && K > 0 && K <= LENSNET__DIRECT_K_MAX && 8 * (rs - g->ow) <= rs &&
         (g->cin / g->groups) * image->chan_stride < ((size_t)1 << 31);
}

/* Output rows [y0, y1) of one image and group into dst [cout_g, y1 - y0, ow] with no patch
 * packing (AVX-512, stride 1). Output pixel (y, x) is read at img + y * rs + x + off(k), with
 * off(c, i, j) = c * chan_stride + i * rs + j, so counting pixels q = y * rs + x across whole
 * input rows (rs = the padded input width), the 32 pixels of a micro-panel are 32 consecutive
 * floats at every k: two loads, no copy. The kw - 1 lanes per row with x >= ow are computed and
 * dropped; the kept lanes of each half are compressed and stored at their place in dst. The
 * weights, the order of the products and the adding of K blocks (each block's sum, then the
 * total so far plus it) are those of lensnet__conv_rows_packed, so the outputs are the same bit
 * for bit. */
LENSNET__TARGET_AVX512 static void lensnet__conv_rows_direct_avx512(const lensnet__conv_geom *g, const lensnet__b_source *image,
                                                                   const float *A, const float *bias, int fuse_relu, size_t y0,
                                                                   size_t y1, float *dst) {
  size_t cout_g = g->cout / g->groups, K = (g->cin / g->groups) * g->kh * g->kw, kc_max = lensnet__k_block(K);
  size_t m_pad = lensnet__round_up(cout_g, LENSNET__AVX512_MR), rs = image->row_stride, ow = g->ow;
  size_t P = (y1 - y0) * ow, Pw = (y1 - y0 - 1) * rs + ow, q0, i0, pc, k, r, c = 0, i = 0, j = 0;
  uint32_t koff[LENSNET__DIRECT_K_MAX];
  float tile[LENSNET__AVX512_MR * 32]; /* the sums of the K blocks so far */
  const float *img = image->data + y0 * rs;
  for (k = 0; k < K; k++) {
    koff[k] = (uint32_t)(c * image->chan_stride + i * rs + j);
    if (++j == g->kw) {
      j = 0;
      if (++i == g->kh) { i = 0; c++; }
    }
  }
  for (q0 = 0; q0 < Pw; q0 += 32) {
    size_t nq = Pw - q0 < 32 ? Pw - q0 : 32, y = q0 / rs, x = q0 % rs, lane, at[2] = {0, 0}, kept[2] = {0, 0};
    __mmask16 ld0 = lensnet__avx512_first_lanes(nq), ld1 = lensnet__avx512_first_lanes(nq > 16 ? nq - 16 : 0);
    __mmask16 keep[2] = {0, 0};
    for (lane = 0; lane < nq; lane++) { /* which lanes are outputs, and where each half's first one goes */
      if (x < ow) {
        if (!kept[lane / 16]) at[lane / 16] = y * ow + x;
        kept[lane / 16]++;
        keep[lane / 16] |= (__mmask16)(1u << (lane % 16));
      }
      if (++x == rs) { x = 0; y++; }
    }
    for (i0 = 0; i0 < cout_g; i0 += LENSNET__AVX512_MR) {
      size_t m_valid = cout_g - i0 < LENSNET__AVX512_MR ? cout_g - i0 : LENSNET__AVX512_MR;
      for (pc = 0; pc < K; pc += kc_max) {
        size_t kc = K - pc < kc_max ? K - pc : kc_max;
        const float *a = A + m_pad * pc + i0 * kc, *b = img + q0;
        const uint32_t *off = koff + pc;
        __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
        __m512 c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
        __m512 c80 = c00, c81 = c00, c90 = c00, c91 = c00;
        __m512 acc[2 * LENSNET__AVX512_MR];
        if (nq == 32) /* plain loads; masked ones past the end of the image */
          for (k = 0; k < kc; k++, a += LENSNET__AVX512_MR) {
            __m512 b0 = _mm512_loadu_ps(b + off[k]), b1 = _mm512_loadu_ps(b + off[k] + 16), av;
            LENSNET__AVX512_FMA_ROW(0, 0) LENSNET__AVX512_FMA_ROW(1, 0) LENSNET__AVX512_FMA_ROW(2, 0)
            LENSNET__AVX512_FMA_ROW(3, 0) LENSNET__AVX512_FMA_ROW(4, 0) LENSNET__AVX512_FMA_ROW(5, 0)
            LENSNET__AVX512_FMA_ROW(6, 0) LENSNET__AVX512_FMA_ROW(7, 0) LENSNET__AVX512_FMA_ROW(8, 0)
            LENSNET__AVX512_FMA_ROW(9, 0)
          }
        else
          for (k = 0; k < kc; k++, a += LENSNET__AVX512_MR) {
            __m512 b0 = _mm512_maskz_loadu_ps(ld0, b + off[k]), b1 = _mm512_maskz_loadu_ps(ld1, b + off[k] + 16), av;
            LENSNET__AVX512_FMA_ROW(0, 0) LENSNET__AVX512_FMA_ROW(1, 0) LENSNET__AVX512_FMA_ROW(2, 0)
            LENSNET__AVX512_FMA_ROW(3, 0) LENSNET__AVX512_FMA_ROW(4, 0) LENSNET__AVX512_FMA_ROW(5, 0)
            LENSNET__AVX512_FMA_ROW(6, 0) LENSNET__AVX512_FMA_ROW(7, 0) LENSNET__AVX512_FMA_ROW(8, 0)
            LENSNET__AVX512_FMA_ROW(9, 0)
          }
        acc[0] = c00; acc[1] = c01; acc[2] = c10; acc[3] = c11; acc[4] = c20; acc[5] = c21; acc[6] = c30; acc[7] = c31;
        acc[8] = c40; acc[9] = c41; acc[10] = c50; acc[11] = c51; acc[12] = c60; acc[13] = c61; acc[14] = c70;
        acc[15] = c71; acc[16] = c80; acc[17] = c81; acc[18] = c90; acc[19] = c91;
        for (r = 0; r < m_valid; r++) {
          __m512 v0 = acc[2 * r], v1 = acc[2 * r + 1];
          float *out = dst + (i0 + r) * P;
          if (pc > 0) { /* the running total plus this block's sum, as the packed path's beta = 1 */
            v0 = _mm512_fmadd_ps(_mm512_set1_ps(1.0f), _mm512_loadu_ps(tile + 32 * r), v0);
            v1 = _mm512_fmadd_ps(_mm512_set1_ps(1.0f), _mm512_loadu_ps(tile + 32 * r + 16), v1);
          }
          if (pc + kc < K) {
            _mm512_storeu_ps(tile + 32 * r, v0);
            _mm512_storeu_ps(tile + 32 * r + 16, v1);
            continue;
          }
          if (bias) { __m512 bv = _mm512_set1_ps(bias[i0 + r]); v0 = _mm512_add_ps(v0, bv); v1 = _mm512_add_ps(v1, bv); }
          if (fuse_relu) {
            v0 = _mm512_maskz_max_ps((__mmask16)0xFFFF, _mm512_setzero_ps(), v0);
            v1 = _mm512_maskz_max_ps((__mmask16)0xFFFF, _mm512_setzero_ps(), v1);
          }
          if (kept[0]) _mm512_mask_storeu_ps(out + at[0], lensnet__avx512_first_lanes(kept[0]), _mm512_maskz_compress_ps(keep[0], v0));
          if (kept[1]) _mm512_mask_storeu_ps(out + at[1], lensnet__avx512_first_lanes(kept[1]), _mm512_maskz_compress_ps(keep[1], v1));
        }
      }
    }
  }
}
#endif

#ifdef LENSNET__HAVE_AVX512
/* ---- Winograd F(2x2, 3x3) (inference, AVX-512) ---------------------------------------------
 *
 * Lavin & Gray 2016 ("Fast algorithms for convolutional neural networks", CVPR): a 2 x 2 block of
 * a 3 x 3 convolution's outputs is Y = A^T [(G g G^T) (.) (B^T d B)] A over the 4 x 4 input tile d
 * under it, with
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1].
 * Summed over input channels, each of the 16 positions xi of the transformed tile is a product
 * of matrices, M_xi[cout, tiles] = U_xi[cout, cin] V_xi[cin, tiles]: 16 products per 2 x 2
 * outputs and input channel where the direct sum takes 36, 2.25 times fewer. The transforms are
 * additions. Used by lensnet_model_pack_winograd for stride-1 3 x 3 convolutions without groups;
 * the outputs differ from the direct sums by rounding only (the order of the additions differs).
 * A trainer's 3 x 3 layers take F(4x4, 3x3) instead where they have 16 tiles of 4 x 4 or more
 * (lensnet__wino43_conv_avx512, below): 36 products per 16 outputs, 4 times fewer than the
 * direct sums, at a rounding error up to 4.2e-6 of the largest sum of |weight x input| over a
 * window of the tile, against F(2x2, 3x3)'s 6e-7 (the 6 x 6 transforms have coefficients up to
 * 8); inference keeps
 * F(2x2, 3x3), whose logits stay within 3e-6 of the direct sums' on the released finders.
 *
 * Layout. Tiles are counted row by row (tile (ty, tx) covers output rows 2ty, 2ty + 1 and
 * columns 2tx, 2tx + 1; TX = ceil(ow / 2) per row) and taken a band of rows at a time, about a
 * hundred tiles, so that a band's V and M stay in the L2 cache. The input transform makes 16
 * tiles of one tile row at once, one per lane (even and odd columns split by two-source
 * permutes), and stores all 16 lanes at the tile's place in V[xi][c][tile]: the lanes past the
 * row's end are overwritten by the next row's tiles. The product runs the GEMM's 10 x 32
 * register tile over (cout, tiles) with K = cin; the output transform reads one tile row's 16
 * lanes of M, adds the bias, applies the ReLU and interleaves the two columns of each tile into
 * the output rows. U[xi][c][co] is made once by lensnet__wino_weights (co padded to tens). */
#define LENSNET__WINO_BAND_TILES 112
#ifndef LENSNET__WINO6_BAND_TILES
#define LENSNET__WINO6_BAND_TILES 56 /* the same for the 6 x 6 transforms */
#endif

#ifndef LENSNET__WINO43
#define LENSNET__WINO43 1 /* 0: 3 x 3 layers by F(2x2, 3x3) only */
#endif

/* The side of a tile's block of outputs: 4 for a trainer's 3 x 3 layer (wino4x4) with at least
 * 16 tiles of 4 x 4 (F(4x4, 3x3)), else 2 (F(2x2, 3x3), F(2x2, 5x5)). */
static size_t lensnet__wino_m(const lensnet__conv_geom *g) {
  return LENSNET__WINO43 && g->wino4x4 && g->kh == 3 && ((g->oh + 3) / 4) * ((g->ow + 3) / 4) >= 16 ? 4 : 2;
}

/* The side of the transformed tile: 4 for F(2x2, 3x3), 6 for F(4x4, 3x3) and F(2x2, 5x5). */
static size_t lensnet__wino_alpha(const lensnet__conv_geom *g) { return lensnet__wino_m(g) + g->kh - 1; }

/* The products' cost of a band of n tiles, in lanes: 32 a block of 32 tiles, and a last block
 * of 16 or fewer (half the register tile, at about 55% of a whole one's time) 18. */
static size_t lensnet__wino_band_cost(size_t n) {
  return n / 32 * 32 + (n % 32 > 16 ? 32 : n % 32 ? 18 : 0);
}

/* Tile rows per band: at most `most` tiles (one row when a row has more), the least cost of the
 * products over all the bands (the last one often shorter), then the most rows. The bands
 * change only the order in which tiles are computed, never a tile's sums. */
static size_t lensnet__wino_band_rows(size_t tx, size_t ty, size_t most) {
  size_t rows, best = 1, best_cost = (size_t)-1;
  for (rows = 1; rows <= ty && rows * tx <= most; rows++) {
    size_t cost = (ty / rows) * lensnet__wino_band_cost(rows * tx) + lensnet__wino_band_cost((ty % rows) * tx);
    if (cost <= best_cost) { best = rows; best_cost = cost; }
  }
  return best;
}

/* A band's tile rows for geometry g: about a hundred tiles for 3 x 3, half as many for 5 x 5,
 * whose V and M hold 36 values a tile (OU-200's second layer, 47 tiles a row, alone on a core ran
 * 1.67x the direct sums with two rows a band and 1.44x with one, but in lens predict on two
 * threads, where the bands of both leave the L2 caches for the shared L3, one row was faster). */
static size_t lensnet__wino_rows_of(const lensnet__conv_geom *g) {
  size_t m = lensnet__wino_m(g);
  return lensnet__wino_band_rows((g->ow + m - 1) / m, (g->oh + m - 1) / m, lensnet__wino_alpha(g) == 4 ? LENSNET__WINO_BAND_TILES : LENSNET__WINO6_BAND_TILES);
}

/* Floats of U for a layer: alpha^2 x cin x cout rounded up to tens, with alignment slack. */
static size_t lensnet__wino_weight_floats(const lensnet__conv_geom *g) {
  size_t a = lensnet__wino_alpha(g);
  return a * a * g->cin * lensnet__round_up(g->cout, LENSNET__AVX512_MR) + LENSNET__ALIGN_SLACK;
}

/* Floats of a band's V and M (and the padded image when pad > 0) for geometry g, alignment slack
 * included. */
static size_t lensnet__wino_scratch_floats(const lensnet__conv_geom *g) {
  size_t m = lensnet__wino_m(g), tx = (g->ow + m - 1) / m, rows = lensnet__wino_rows_of(g), a = lensnet__wino_alpha(g);
  size_t tiles = rows * tx, vstride = lensnet__round_up(tiles, 16) + 16, mstride = lensnet__round_up(tiles, 16) + 16;
  size_t padded = g->pad ? g->cin * (g->h + 2 * g->pad) * (g->w + 2 * g->pad) : 0;
  return a * a * (g->cin * vstride + lensnet__round_up(g->cout, LENSNET__AVX512_MR) * mstride) + 6 * 96 + padded + 4 * LENSNET__ALIGN_SLACK;
}

/* Does this layer take the Winograd path? 3 x 3 or 5 x 5, stride 1, no groups, at least 8 input
 * channels and at least 16 tiles (an output of about 8 x 8 or more). With fewer channels the
 * transforms cost more than the products save (measured on one core: OU-66's first layer, 4
 * channels in, 0.8 times the direct sums' speed; OU-200's, 4 in and 5 x 5, 0.5 times; 8 in,
 * 1.1-1.3 times). With fewer tiles most of a vector's 16 lanes are empty, and in training the
 * weights' transform, made every step, costs more than a few tiles' products save: ResNet-18 on
 * 64 x 64 images (stages of 4 x 4 and 2 x 2 with 256 and 512 channels) trained 1.4 times slower
 * with them than with the direct sums. */
static int lensnet__wino_ok(const lensnet__conv_geom *g) {
  return g->groups == 1 && g->kh == g->kw && (g->kh == 3 || g->kh == 5) && g->stride == 1 && g->oh >= 1 && g->ow >= 1 && g->cin >= 8 &&
         g->cin <= 4096 && g->cout >= 1 && ((g->oh + 1) / 2) * ((g->ow + 1) / 2) >= 16;
}

/* U[xi][c][co] = (G g G^T)[i][j] with xi = alpha i + j, from weight [cout, cin, k, k] (k = 3, 5);
 * rows co past cout are zero. In float, 16 output channels at a time (it runs once per training
 * step for every layer, so it is written to vectorise). F(2x2, 3x3): G above. F(2x2,
 * 5x5), Toom-Cook on the points 0, 1, -1, 2, -2 and infinity (Lavin & Gray's F(4x4, 3x3) points):
 *   G = [1/4 0 0 0 0; -1/6 (1 1 1 1 1); -1/6 (1 -1 1 -1 1); 1/24 (1 2 4 8 16);
 *        1/24 (1 -2 4 -8 16); 0 0 0 0 1],
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1],
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 1].
 * F(4x4, 3x3) (Lavin & Gray), the same points and the same B^T:
 *   G = [1/4 0 0; -1/6 (1 1 1); -1/6 (1 -1 1); 1/24 (1 2 4); 1/24 (1 -2 4); 0 0 1],
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]. */
LENSNET__VECTORIZE LENSNET__TARGET_AVX512 static void lensnet__wino_weights(const lensnet__conv_geom *g, const float *weight, float *U) {
  static const float G5[6][5] = {{0.25f, 0, 0, 0, 0},
                                 {-1.0f / 6, -1.0f / 6, -1.0f / 6, -1.0f / 6, -1.0f / 6},
                                 {-1.0f / 6, 1.0f / 6, -1.0f / 6, 1.0f / 6, -1.0f / 6},
                                 {1.0f / 24, 2.0f / 24, 4.0f / 24, 8.0f / 24, 16.0f / 24},
                                 {1.0f / 24, -2.0f / 24, 4.0f / 24, -8.0f / 24, 16.0f / 24},
                                 {0, 0, 0, 0, 1}};
  static const float G3[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
  static const float G43[6][3] = {{0.25f, 0, 0},
                                  {-1.0f / 6, -1.0f / 6, -1.0f / 6},
                                  {-1.0f / 6, 1.0f / 6, -1.0f / 6},
                                  {1.0f / 24, 2.0f / 24, 4.0f / 24},
                                  {1.0f / 24, -2.0f / 24, 4.0f / 24},
                                  {0, 0, 1}};
  size_t cin = g->cin, cout = g->cout, k = g->kh, kk = k * k, a = lensnet__wino_alpha(g), co_pad = lensnet__round_up(cout, LENSNET__AVX512_MR);
  size_t c, co0, i, j, q, l;
  for (c = 0; c < cin; c++)
    for (co0 = 0; co0 < co_pad; co0 += 16) {
      float w[25][16], t[30][16], u[16];
      size_t n = co_pad - co0 < 16 ? co_pad - co0 : 16;
      for (q = 0; q < kk; q++) /* the 16 channels' weight q, zero past cout */
        for (l = 0; l < 16; l++) w[q][l] = co0 + l < cout ? weight[((co0 + l) * cin + c) * kk + q] : 0.0f;
      for (i = 0; i < a; i++) /* G g */
        for (j = 0; j < k; j++) {
          for (l = 0; l < 16; l++) t[i * k + j][l] = 0.0f;
          for (q = 0; q < k; q++) {
            float gq = k == 5 ? G5[i][q] : a == 6 ? G43[i][q] : G3[i][q];
            for (l = 0; l < 16; l++) t[i * k + j][l] += gq * w[q * k + j][l];
          }
        }
      for (i = 0; i < a; i++) /* (G g) G^T */
        for (j = 0; j < a; j++) {
          for (l = 0; l < 16; l++) u[l] = 0.0f;
          for (q = 0; q < k; q++) {
            float gq = k == 5 ? G5[j][q] : a == 6 ? G43[j][q] : G3[j][q];
            for (l = 0; l < 16; l++) u[l] += t[i * k + q][l] * gq;
          }
          memcpy(U + ((a * i + j) * cin + c) * co_pad + co0, u, n * sizeof(float));
        }
    }
}

/* d B for one input row y of 16 tiles, one per lane (tiles tx0 .. tx0 + 15, input columns from
 * 2 tx0): x = (d0 - d2, d1 + d2, d2 - d1, d1 - d3); zero outside the h x w image. */
LENSNET__INLINE LENSNET__TARGET_AVX512 void lensnet__wino_in_row(const float *plane, size_t h, size_t w, size_t y, size_t tx0,
                                                                 const __mmask16 mk[4], __m512 x[4]) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  __m512 e, o, e2, o2;
  if (y < h) {
    const float *row = plane + y * w + 2 * tx0;
    __m512 lo = _mm512_maskz_loadu_ps(mk[0], row), hi = _mm512_maskz_loadu_ps(mk[1], row + 16);
    __m512 lo2 = _mm512_maskz_loadu_ps(mk[2], row + 2), hi2 = _mm512_maskz_loadu_ps(mk[3], row + 18);
    e = _mm512_permutex2var_ps(lo, even, hi);
    o = _mm512_permutex2var_ps(lo, odd, hi);
    e2 = _mm512_permutex2var_ps(lo2, even, hi2);
    o2 = _mm512_permutex2var_ps(lo2, odd, hi2);
  } else
    e = o = e2 = o2 = _mm512_setzero_ps();
  x[0] = _mm512_sub_ps(e, e2);
  x[1] = _mm512_add_ps(o, e2);
  x[2] = _mm512_sub_ps(e2, o);
  x[3] = _mm512_sub_ps(o, o2);
}

/* B^T (d B) from the d B of rows 0..3 (x0..x3), the lanes of `keep` stored at dst + xi * xs
 * (xi = 4 i + k). */
LENSNET__INLINE LENSNET__TARGET_AVX512 void lensnet__wino_in_store(const __m512 x0[4], const __m512 x1[4], const __m512 x2[4],
                                                                   const __m512 x3[4], float *dst, size_t xs, __mmask16 keep) {
  size_t k;
  for (k = 0; k < 4; k++) {
    _mm512_mask_storeu_ps(dst + k * xs, keep, _mm512_sub_ps(x0[k], x2[k]));
    _mm512_mask_storeu_ps(dst + (4 + k) * xs, keep, _mm512_add_ps(x1[k], x2[k]));
    _mm512_mask_storeu_ps(dst + (8 + k) * xs, keep, _mm512_sub_ps(x2[k], x1[k]));
    _mm512_mask_storeu_ps(dst + (12 + k) * xs, keep, _mm512_sub_ps(x1[k], x3[k]));
  }
}

/* max_nan(a, b) = (a > b || a is NaN) ? a : b lane by lane, as max pooling defines it. */
LENSNET__INLINE LENSNET__TARGET_AVX512 __m512 lensnet__avx512_max_nan(__m512 a, __m512 b) {
  __mmask16 take_a = _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ) | _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
  return _mm512_mask_blend_ps(take_a, b, a);
}

/* The 2 x 2 outputs of 16 tiles (yv[row][column], one tile per lane; tile row y / 2, tiles tx0..)
 * plus the bias, through the ReLU when fuse_relu: into output rows y, y + 1 (the rows and columns
 * inside the output), or with pool into pooled row y / 2 of the 2 x 2 stride-2 max pool whose
 * windows are the tiles (the pool's order: row 0 left, right, row 1 left, right; tiles cut by the
 * output's edge are no window). */
LENSNET__INLINE LENSNET__TARGET_AVX512 void lensnet__wino_out(__m512 yv[2][2], __m512 bv, int fuse_relu, int pool, const lensnet__conv_geom *g,
                                                             size_t co, size_t y, size_t tx0, float *out) {
  const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi_idx = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  __m512 v[4];
  size_t i, cols;
  for (i = 0; i < 4; i++) {
    v[i] = _mm512_add_ps(yv[i / 2][i % 2], bv);
    if (fuse_relu) v[i] = _mm512_maskz_max_ps((__mmask16)0xFFFF, _mm512_setzero_ps(), v[i]);
  }
  if (pool) {
    size_t ph = g->oh / 2, pw = g->ow / 2;
    if (y / 2 >= ph || tx0 >= pw) return;
    _mm512_mask_storeu_ps(out + (co * ph + y / 2) * pw + tx0, lensnet__avx512_first_lanes(pw - tx0),
                          lensnet__avx512_max_nan(lensnet__avx512_max_nan(v[0], v[1]), lensnet__avx512_max_nan(v[2], v[3])));
    return;
  }
  cols = g->ow - 2 * tx0 < 32 ? g->ow - 2 * tx0 : 32;
  for (i = 0; i < 2 && y + i < g->oh; i++) {
    float *o = out + (co * g->oh + y + i) * g->ow + 2 * tx0;
    _mm512_mask_storeu_ps(o, lensnet__avx512_first_lanes(cols), _mm512_permutex2var_ps(v[2 * i], lo_idx, v[2 * i + 1]));
    if (cols > 16) _mm512_mask_storeu_ps(o + 16, lensnet__avx512_first_lanes(cols - 16), _mm512_permutex2var_ps(v[2 * i], hi_idx, v[2 * i + 1]));
  }
}

/* M[xi][co0 .. co0 + 9][j0 .. j0 + 16 nb) = U_xi[co0.., :] V_xi[:, j0..] for every xi: the GEMM's
 * 10 x 32 register tile (nb = 2) or 10 x 16 (nb = 1), K = cin. V_xi's row c starts at
 * V + xi * vxi + c * vstride. */
LENSNET__TARGET_AVX512 static void lensnet__wino_product(const float *U, const float *V, float *M, size_t cin, size_t co_pad,
                                                         size_t vxi, size_t vstride, size_t mstride, size_t tiles, size_t nxi) {
  size_t xi, co0, c, r, j0;
  for (xi = 0; xi < nxi; xi++)
    for (j0 = 0; j0 < tiles; j0 += 32)
    for (co0 = 0; co0 < co_pad; co0 += LENSNET__AVX512_MR) {
      int nb = tiles - j0 > 16 ? 2 : 1;
      const float *a = U + xi * cin * co_pad + co0, *b = V + xi * vxi + j0;
      float *m = M + (co0 * nxi + xi) * mstride + j0;
      __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
      __m512 c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
      __m512 c80 = c00, c81 = c00, c90 = c00, c91 = c00;
      __m512 acc[2 * LENSNET__AVX512_MR];
      if (nb == 2)
        for (c = 0; c < cin; c++, a += co_pad, b += vstride) {
          __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), av;
          LENSNET__AVX512_FMA_ROW(0, 0) LENSNET__AVX512_FMA_ROW(1, 0) LENSNET__AVX512_FMA_ROW(2, 0)
          LENSNET__AVX512_FMA_ROW(3, 0) LENSNET__AVX512_FMA_ROW(4, 0) LENSNET__AVX512_FMA_ROW(5, 0)
          LENSNET__AVX512_FMA_ROW(6, 0) LENSNET__AVX512_FMA_ROW(7, 0) LENSNET__AVX512_FMA_ROW(8, 0)
          LENSNET__AVX512_FMA_ROW(9, 0)
        }
      else
        for (c = 0; c < cin; c++, a += co_pad, b += vstride) {
          __m512 b0 = _mm512_loadu_ps(b), av;
          LENSNET__AVX512_FMA_HALF_ROW(0) LENSNET__AVX512_FMA_HALF_ROW(1) LENSNET__AVX512_FMA_HALF_ROW(2)
          LENSNET__AVX512_FMA_HALF_ROW(3) LENSNET__AVX512_FMA_HALF_ROW(4) LENSNET__AVX512_FMA_HALF_ROW(5)
          LENSNET__AVX512_FMA_HALF_ROW(6) LENSNET__AVX512_FMA_HALF_ROW(7) LENSNET__AVX512_FMA_HALF_ROW(8)
          LENSNET__AVX512_FMA_HALF_ROW(9)
        }
      acc[0] = c00; acc[1] = c01; acc[2] = c10; acc[3] = c11; acc[4] = c20; acc[5] = c21; acc[6] = c30; acc[7] = c31;
      acc[8] = c40; acc[9] = c41; acc[10] = c50; acc[11] = c51; acc[12] = c60; acc[13] = c61; acc[14] = c70;
      acc[15] = c71; acc[16] = c80; acc[17] = c81; acc[18] = c90; acc[19] = c91;
      for (r = 0; r < LENSNET__AVX512_MR; r++) {
        _mm512_storeu_ps(m + r * nxi * mstride, acc[2 * r]);
        if (nb == 2) _mm512_storeu_ps(m + r * nxi * mstride + 16, acc[2 * r + 1]);
      }
    }
}

/* The input transform of tile rows ty0 .. ty0 + nrows - 1 (tx tiles a row) of the padded input
 * in [cin, h, w] into V[xi][c][tile] (row stride vstride), a block of 16 tiles down the band's
 * tile rows at a time. With one block per row (tx <= 16) all 16 lanes are stored, rows in order:
 * those past a row's end are overwritten by the next row's tiles; else a row's last block keeps
 * its own lanes only. Past the band's last tile, lanes up to the next multiple of 16 (which the
 * products read) are set to zero. */
LENSNET__TARGET_AVX512 static void lensnet__wino3_in_band(const float *in, size_t cin, size_t h, size_t w, size_t tx, size_t ty0,
                                                          size_t nrows, float *V, size_t vstride) {
  size_t tiles = nrows * tx, cover = tx <= 16 ? tiles - tx + 16 : tiles, c, t, xi;
    for (c = 0; c < cin; c++) {
      const float *plane = in + c * h * w;
      size_t tx0;
      for (tx0 = 0; tx0 < tx; tx0 += 16) { /* input rows 2 t, 2 t + 1 are tile row t - 1's last two */
        __mmask16 mk[4], keep = tx <= 16 ? (__mmask16)0xFFFF : lensnet__avx512_first_lanes(tx - tx0);
        __m512 xa[4], xb[4], xc[4], xd[4];
        size_t k, y = 2 * ty0;
        for (k = 0; k < 4; k++) { /* loads at 2 tx0 + 0, 16, 2, 18 */
          size_t at = 2 * tx0 + (k & 1) * 16 + (k >> 1) * 2;
          mk[k] = lensnet__avx512_first_lanes(at < w ? w - at : 0);
        }
        lensnet__wino_in_row(plane, h, w, y, tx0, mk, xa);
        lensnet__wino_in_row(plane, h, w, y + 1, tx0, mk, xb);
        for (t = 0; t < nrows; t++, y += 2) {
          lensnet__wino_in_row(plane, h, w, y + 2, tx0, mk, xc);
          lensnet__wino_in_row(plane, h, w, y + 3, tx0, mk, xd);
          lensnet__wino_in_store(xa, xb, xc, xd, V + c * vstride + t * tx + tx0, cin * vstride, keep);
          for (k = 0; k < 4; k++) { xa[k] = xc[k]; xb[k] = xd[k]; }
        }
      }
      if (cover < lensnet__round_up(tiles, 16))
        for (xi = 0; xi < 16; xi++) _mm512_storeu_ps(V + (xi * cin + c) * vstride + cover, _mm512_setzero_ps());
    }
}

/* One image: out [cout, oh, ow] = conv(in [cin, h, w]) + bias, ReLU when fuse_relu, by F(2x2, 3x3)
 * with U from lensnet__wino_weights; scratch holds lensnet__wino_scratch_floats(g) floats. */
LENSNET__TARGET_AVX512 static void lensnet__wino3_conv_avx512(const lensnet__conv_geom *g, const float *in, const float *U,
                                                              const float *bias, int fuse_relu, int pool, float *out, float *scratch) {
  size_t cin = g->cin, cout = g->cout, co_pad = lensnet__round_up(cout, LENSNET__AVX512_MR);
  size_t tx = (g->ow + 1) / 2, ty = (g->oh + 1) / 2, rows = lensnet__wino_rows_of(g);
  size_t vstride = lensnet__round_up(rows * tx, 16) + 16, mstride = lensnet__round_up(rows * tx, 16) + 16;
  size_t h = g->h + 2 * g->pad, w = g->w + 2 * g->pad, ty0, t, co;
  float *V = lensnet__align64(scratch), *M = lensnet__align64(V + 16 * cin * vstride), *padded = lensnet__align64(M + 16 * co_pad * mstride);
  if (g->pad) {
    lensnet__pad_image(g, in, cin, padded);
    in = padded;
  }
  for (ty0 = 0; ty0 < ty; ty0 += rows) {
    size_t nrows = ty - ty0 < rows ? ty - ty0 : rows, tiles = nrows * tx;
    lensnet__wino3_in_band(in, cin, h, w, tx, ty0, nrows, V, vstride);
    /* the products */
    lensnet__wino_product(U, V, M, cin, co_pad, cin * vstride, vstride, mstride, tiles, 16);
    /* the output transform, bias, ReLU, into the output rows */
    for (co = 0; co < cout; co++) {
      __m512 bv = _mm512_set1_ps(bias ? bias[co] : 0.0f);
      for (t = 0; t < nrows; t++) {
        size_t tx0, y = 2 * (ty0 + t);
        for (tx0 = 0; tx0 < tx; tx0 += 16) {
          const float *m = M + co * 16 * mstride + t * tx + tx0;
          size_t ms = mstride, i;
          __m512 s0[4], s1[4], yv[2][2];
          for (i = 0; i < 4; i++) { /* A^T m: the rows */
            __m512 m0 = _mm512_loadu_ps(m + i * ms), m1 = _mm512_loadu_ps(m + (4 + i) * ms);
            __m512 m2 = _mm512_loadu_ps(m + (8 + i) * ms), m3 = _mm512_loadu_ps(m + (12 + i) * ms);
            s0[i] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
            s1[i] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
          }
          yv[0][0] = _mm512_add_ps(_mm512_add_ps(s0[0], s0[1]), s0[2]);
          yv[0][1] = _mm512_sub_ps(_mm512_sub_ps(s0[1], s0[2]), s0[3]);
          yv[1][0] = _mm512_add_ps(_mm512_add_ps(s1[0], s1[1]), s1[2]);
          yv[1][1] = _mm512_sub_ps(_mm512_sub_ps(s1[1], s1[2]), s1[3]);
          lensnet__wino_out(yv, bv, fuse_relu, pool, g, co, y, tx0, out);
        }
      }
    }
  }
}

/* x[16 k .. 16 k + 15] = row k of B^T (the 6 x 6 one of F(2x2, 5x5) and F(4x4, 3x3)) applied to
 * the six values d0..d5 of 16 tiles' row. */
LENSNET__INLINE LENSNET__TARGET_AVX512 void lensnet__wino6_bt(const __m512 d[6], float *x) {
  const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
  __m512 t1 = _mm512_fnmadd_ps(four, d[2], d[4]); /* d4 - 4 d2 */
  __m512 t2 = _mm512_fnmadd_ps(four, d[1], d[3]); /* d3 - 4 d1 */
  __m512 t3 = _mm512_sub_ps(d[4], d[2]);
  __m512 t4 = _mm512_mul_ps(two, _mm512_sub_ps(d[3], d[1]));
  _mm512_store_ps(x, _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4])));
  _mm512_store_ps(x + 16, _mm512_add_ps(t1, t2));
  _mm512_store_ps(x + 32, _mm512_sub_ps(t1, t2));
  _mm512_store_ps(x + 48, _mm512_add_ps(t3, t4));
  _mm512_store_ps(x + 64, _mm512_sub_ps(t3, t4));
  _mm512_store_ps(x + 80, _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5])));
}

/* d B for one input row y of 16 tiles of F(2x2, 5x5), one per lane (tiles tx0 .. tx0 + 15, input
 * columns 2 tx0 ..): B^T's rows applied to the row's six values d0..d5; zero outside the image. */
LENSNET__INLINE LENSNET__TARGET_AVX512 void lensnet__wino5_in_row(const float *plane, size_t h, size_t w, size_t y, size_t tx0,
                                                                  const __mmask16 mk[6], float *x) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  __m512 d[6];
  size_t k;
  if (y < h) {
    const float *row = plane + y * w + 2 * tx0;
    for (k = 0; k < 3; k++) { /* columns 2k, 2k + 1 of each tile from loads at 2k and 2k + 16 */
      __m512 lo = _mm512_maskz_loadu_ps(mk[2 * k], row + 2 * k), hi = _mm512_maskz_loadu_ps(mk[2 * k + 1], row + 2 * k + 16);
      d[2 * k] = _mm512_permutex2var_ps(lo, even, hi);
      d[2 * k + 1] = _mm512_permutex2var_ps(lo, odd, hi);
    }
  } else
    for (k = 0; k < 6; k++) d[k] = _mm512_setzero_ps();
  lensnet__wino6_bt(d, x);
}

/* B^T (d B) of 16 tiles from the d B of their six input rows (r[0..5], 6 x 16 floats each), the
 * lanes of `keep` stored at dst + xi * xs (xi = 6 i + j). */
LENSNET__INLINE LENSNET__TARGET_AVX512 void lensnet__wino5_in_store(const float *const r[6], float *dst, size_t xs, __mmask16 keep) {
  const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
  size_t j;
  for (j = 0; j < 6; j++) {
    __m512 d0 = _mm512_load_ps(r[0] + 16 * j), d1 = _mm512_load_ps(r[1] + 16 * j), d2 = _mm512_load_ps(r[2] + 16 * j);
    __m512 d3 = _mm512_load_ps(r[3] + 16 * j), d4 = _mm512_load_ps(r[4] + 16 * j), d5 = _mm512_load_ps(r[5] + 16 * j);
    __m512 t1 = _mm512_fnmadd_ps(four, d2, d4), t2 = _mm512_fnmadd_ps(four, d1, d3);
    __m512 t3 = _mm512_sub_ps(d4, d2), t4 = _mm512_mul_ps(two, _mm512_sub_ps(d3, d1));
    _mm512_mask_storeu_ps(dst + j * xs, keep, _mm512_fmadd_ps(four, d0, _mm512_fnmadd_ps(five, d2, d4)));
    _mm512_mask_storeu_ps(dst + (6 + j) * xs, keep, _mm512_add_ps(t1, t2));
    _mm512_mask_storeu_ps(dst + (12 + j) * xs, keep, _mm512_sub_ps(t1, t2));
    _mm512_mask_storeu_ps(dst + (18 + j) * xs, keep, _mm512_add_ps(t3, t4));
    _mm512_mask_storeu_ps(dst + (24 + j) * xs, keep, _mm512_sub_ps(t3, t4));
    _mm512_mask_storeu_ps(dst + (30 + j) * xs, keep, _mm512_fmadd_ps(four, d1, _mm512_fnmadd_ps(five, d3, d5)));
  }
}

/* One image by F(2x2, 5x5), as lensnet__wino3_conv_avx512 with 6 x 6 input tiles (36 products per
 * 2 x 2 outputs and channel pair where the direct sum takes 100). The d B of the six input rows
 * under a tile row stay in a ring of six, four of them shared with the next tile row. */
LENSNET__TARGET_AVX512 static void lensnet__wino5_conv_avx512(const lensnet__conv_geom *g, const float *in, const float *U,
                                                              const float *bias, int fuse_relu, int pool, float *out, float *scratch) {
  const __m512 two = _mm512_set1_ps(2.0f);
  size_t cin = g->cin, cout = g->cout, co_pad = lensnet__round_up(cout, LENSNET__AVX512_MR);
  size_t tx = (g->ow + 1) / 2, ty = (g->oh + 1) / 2, rows = lensnet__wino_rows_of(g);
  size_t vstride = lensnet__round_up(rows * tx, 16) + 16, mstride = lensnet__round_up(rows * tx, 16) + 16;
  size_t h = g->h + 2 * g->pad, w = g->w + 2 * g->pad, ty0, c, xi, t, co;
  float *V = lensnet__align64(scratch), *M = lensnet__align64(V + 36 * cin * vstride), *ring = lensnet__align64(M + 36 * co_pad * mstride);
  float *padded = lensnet__align64(ring + 6 * 96);
  if (g->pad) {
    lensnet__pad_image(g, in, cin, padded);
    in = padded;
  }
  for (ty0 = 0; ty0 < ty; ty0 += rows) {
    size_t nrows = ty - ty0 < rows ? ty - ty0 : rows, tiles = nrows * tx, cover = tx <= 16 ? tiles - tx + 16 : tiles;
    /* the input transform, as lensnet__wino3_conv_avx512's */
    for (c = 0; c < cin; c++) {
      const float *plane = in + c * h * w;
      size_t tx0;
      for (tx0 = 0; tx0 < tx; tx0 += 16) {
        __mmask16 mk[6], keep = tx <= 16 ? (__mmask16)0xFFFF : lensnet__avx512_first_lanes(tx - tx0);
        size_t k, y = 2 * ty0;
        for (k = 0; k < 6; k++) { /* loads at 2 tx0 + 2 (k / 2) + 16 (k % 2) */
          size_t at = 2 * tx0 + 2 * (k / 2) + 16 * (k % 2);
          mk[k] = lensnet__avx512_first_lanes(at < w ? w - at : 0);
        }
        for (k = 0; k < 4; k++) lensnet__wino5_in_row(plane, h, w, y + k, tx0, mk, ring + 96 * k);
        for (t = 0; t < nrows; t++, y += 2) {
          const float *r[6];
          lensnet__wino5_in_row(plane, h, w, y + 4, tx0, mk, ring + 96 * ((2 * t + 4) % 6));
          lensnet__wino5_in_row(plane, h, w, y + 5, tx0, mk, ring + 96 * ((2 * t + 5) % 6));
          for (k = 0; k < 6; k++) r[k] = ring + 96 * ((2 * t + k) % 6);
          lensnet__wino5_in_store(r, V + c * vstride + t * tx + tx0, cin * vstride, keep);
        }
      }
      if (cover < lensnet__round_up(tiles, 16))
        for (xi = 0; xi < 36; xi++) _mm512_storeu_ps(V + (xi * cin + c) * vstride + cover, _mm512_setzero_ps());
    }
    lensnet__wino_product(U, V, M, cin, co_pad, cin * vstride, vstride, mstride, tiles, 36);
    /* the output transform: A^T m A with A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 1], bias, ReLU */
    for (co = 0; co < cout; co++) {
      __m512 bv = _mm512_set1_ps(bias ? bias[co] : 0.0f);
      for (t = 0; t < nrows; t++) {
        size_t tx0, y = 2 * (ty0 + t);
        for (tx0 = 0; tx0 < tx; tx0 += 16) {
          const float *m = M + co * 36 * mstride + t * tx + tx0;
          size_t i;
          __m512 s0[6], s1[6], yv[2][2];
          for (i = 0; i < 6; i++) { /* A^T m: the rows */
            __m512 m0 = _mm512_loadu_ps(m + i * mstride), m1 = _mm512_loadu_ps(m + (6 + i) * mstride);
            __m512 m2 = _mm512_loadu_ps(m + (12 + i) * mstride), m3 = _mm512_loadu_ps(m + (18 + i) * mstride);
            __m512 m4 = _mm512_loadu_ps(m + (24 + i) * mstride), m5 = _mm512_loadu_ps(m + (30 + i) * mstride);
            s0[i] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(m0, m1), _mm512_add_ps(m2, m3)), m4);
            s1[i] = _mm512_add_ps(_mm512_fmadd_ps(two, _mm512_sub_ps(m3, m4), _mm512_sub_ps(m1, m2)), m5);
          }
          yv[0][0] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s0[0], s0[1]), _mm512_add_ps(s0[2], s0[3])), s0[4]);
          yv[0][1] = _mm512_add_ps(_mm512_fmadd_ps(two, _mm512_sub_ps(s0[3], s0[4]), _mm512_sub_ps(s0[1], s0[2])), s0[5]);
          yv[1][0] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s1[0], s1[1]), _mm512_add_ps(s1[2], s1[3])), s1[4]);
          yv[1][1] = _mm512_add_ps(_mm512_fmadd_ps(two, _mm512_sub_ps(s1[3], s1[4]), _mm512_sub_ps(s1[1], s1[2])), s1[5]);
          lensnet__wino_out(yv, bv, fuse_relu, pool, g, co, y, tx0, out);
        }
      }
    }
  }
}

/* d B for one input row y of 16 tiles of F(4x4, 3x3) (tiles tx0 .. tx0 + 15, input columns 4 tx0 ..
 * 4 tx0 + 65); zero outside the image. Columns 0-3 of each tile are every fourth value of four
 * loads (at 4 tx0, + 16, + 32, + 48), gathered by two-source permutes in pairs and a 128-bit
 * shuffle; columns 4 and 5 are the next tile's 0 and 1, the last lane's from a load at 4 tx0 + 64. */
LENSNET__INLINE LENSNET__TARGET_AVX512 void lensnet__wino43_in_row(const float *plane, size_t h, size_t w, size_t y, size_t tx0,
                                                                   const __mmask16 mk[5], float *x) {
  const __m512i c01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
  const __m512i c23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
  const __m512i next0 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
  const __m512i next1 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17);
  __m512 d[6];
  size_t k;
  if (y < h) {
    const float *row = plane + y * w + 4 * tx0;
    __m512 l0 = _mm512_maskz_loadu_ps(mk[0], row), l1 = _mm512_maskz_loadu_ps(mk[1], row + 16);
    __m512 l2 = _mm512_maskz_loadu_ps(mk[2], row + 32), l3 = _mm512_maskz_loadu_ps(mk[3], row + 48);
    __m512 e = _mm512_maskz_loadu_ps(mk[4], row + 64);
    __m512 p01 = _mm512_permutex2var_ps(l0, c01, l1), q01 = _mm512_permutex2var_ps(l2, c01, l3); /* columns 0 | 1 */
    __m512 p23 = _mm512_permutex2var_ps(l0, c23, l1), q23 = _mm512_permutex2var_ps(l2, c23, l3); /* columns 2 | 3 */
    d[0] = _mm512_maskz_shuffle_f32x4(0xFFFF, p01, q01, 0x44);
    d[1] = _mm512_maskz_shuffle_f32x4(0xFFFF, p01, q01, 0xEE);
    d[2] = _mm512_maskz_shuffle_f32x4(0xFFFF, p23, q23, 0x44);
    d[3] = _mm512_maskz_shuffle_f32x4(0xFFFF, p23, q23, 0xEE);
    d[4] = _mm512_permutex2var_ps(d[0], next0, e);
    d[5] = _mm512_permutex2var_ps(d[1], next1, e);
  } else
    for (k = 0; k < 6; k++) d[k] = _mm512_setzero_ps();
  lensnet__wino6_bt(d, x);
}

/* As lensnet__wino43_in_row for two tile rows of at most 8 tiles in one vector: lanes 0 .. tx - 1
 * hold tiles 0 .. tx - 1 of input row y, lanes tx .. 2 tx - 1 those of input row y + 4 (the next
 * tile row's row at the same place); lanes from 2 tx on hold values of the image that nothing
 * keeps. Column k of the tiles: idx[k] (4 l + k for the first tx lanes, 4 (l - tx) + k for the
 * next tx) picks them from each row's first 32 floats and `second` blends the two; with tx = 8 the
 * last tile's columns 4 and 5 (32 and 33) come from a third load. */
LENSNET__INLINE LENSNET__TARGET_AVX512 void lensnet__wino43_in_row2(const float *plane, size_t h, size_t w, size_t y, size_t tx,
                                                                    const __mmask16 mk[3], const __m512i idx[6], __mmask16 second,
                                                                    float *x) {
  __m512 a0, a1, a2, b0, b1, b2, d[6];
  size_t k;
  if (y < h) {
    const float *row = plane + y * w;
    a0 = _mm512_maskz_loadu_ps(mk[0], row); a1 = _mm512_maskz_loadu_ps(mk[1], row + 16); a2 = _mm512_maskz_loadu_ps(mk[2], row + 32);
  } else
    a0 = a1 = a2 = _mm512_setzero_ps();
  if (y + 4 < h) {
    const float *row = plane + (y + 4) * w;
    b0 = _mm512_maskz_loadu_ps(mk[0], row); b1 = _mm512_maskz_loadu_ps(mk[1], row + 16); b2 = _mm512_maskz_loadu_ps(mk[2], row + 32);
  } else
    b0 = b1 = b2 = _mm512_setzero_ps();
  for (k = 0; k < 6; k++)
    d[k] = _mm512_mask_blend_ps(second, _mm512_permutex2var_ps(a0, idx[k], a1), _mm512_permutex2var_ps(b0, idx[k], b1));
  if (tx == 8) { /* columns 32 and 33 of each row */
    d[4] = _mm512_mask_permutexvar_ps(d[4], (__mmask16)0x0080, _mm512_setzero_si512(), a2);
    d[4] = _mm512_mask_permutexvar_ps(d[4], (__mmask16)0x8000, _mm512_setzero_si512(), b2);
    d[5] = _mm512_mask_permutexvar_ps(d[5], (__mmask16)0x0080, _mm512_set1_epi32(1), a2);
    d[5] = _mm512_mask_permutexvar_ps(d[5], (__mmask16)0x8000, _mm512_set1_epi32(1), b2);
  }
  lensnet__wino6_bt(d, x);
}

/* Row r of F(4x4, 3x3)'s A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1] applied to
 * v0..v5, for r = 0..3 into o[r]. */
LENSNET__INLINE LENSNET__TARGET_AVX512 void lensnet__wino43_at(const __m512 v[6], __m512 o[4]) {
  const __m512 two = _mm512_set1_ps(2.0f), four = _mm512_set1_ps(4.0f), eight = _mm512_set1_ps(8.0f);
  __m512 a = _mm512_add_ps(v[1], v[2]), b = _mm512_sub_ps(v[1], v[2]), c = _mm512_add_ps(v[3], v[4]), d = _mm512_sub_ps(v[3], v[4]);
  o[0] = _mm512_add_ps(_mm512_add_ps(v[0], a), c);
  o[1] = _mm512_fmadd_ps(two, d, b);
  o[2] = _mm512_fmadd_ps(four, c, a);
  o[3] = _mm512_add_ps(_mm512_fmadd_ps(eight, d, b), v[5]);
}

/* One image by F(4x4, 3x3) (Lavin & Gray's: 36 products per 4 x 4 outputs and channel pair where
 * the direct sum takes 144, and F(2x2, 3x3) 64), with the 6 x 6 transform of F(2x2, 5x5): the same
 * points, so the same B^T (lensnet__wino6_bt, lensnet__wino5_in_store); tiles of 4 x 4 outputs at
 * a stride of 4, the d B of the six input rows under a tile row in a ring of six, two of them
 * shared with the next tile row. The output transform interleaves each tile's four columns into
 * the output rows; with pool, the 2 x 2 windows inside each tile are pooled before the bias and
 * the ReLU (the same values: both are monotonic, and rounding keeps order) and stored by
 * lensnet__wino_out as a 2 x 2 tile of the pooled output. */
LENSNET__TARGET_AVX512 static void lensnet__wino43_conv_avx512(const lensnet__conv_geom *g, const float *in, const float *U,
                                                               const float *bias, int fuse_relu, int pool, float *out, float *scratch) {
  const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi_idx = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512i pd_lo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), pd_hi = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
  size_t cin = g->cin, cout = g->cout, co_pad = lensnet__round_up(cout, LENSNET__AVX512_MR);
  size_t tx = (g->ow + 3) / 4, ty = (g->oh + 3) / 4, rows = lensnet__wino_rows_of(g);
  size_t vstride = lensnet__round_up(rows * tx, 16) + 16, mstride = lensnet__round_up(rows * tx, 16) + 16;
  size_t h = g->h + 2 * g->pad, w = g->w + 2 * g->pad, ty0, c, xi, t, co;
  float *V = lensnet__align64(scratch), *M = lensnet__align64(V + 36 * cin * vstride), *ring = lensnet__align64(M + 36 * co_pad * mstride);
  float *padded = lensnet__align64(ring + 6 * 96);
  lensnet__conv_geom pooled = *g;
  int paired = tx <= 8 && !pool; /* two tile rows a vector */
  __m512i idx[6];
  __mmask16 mk2[3], second = (__mmask16)(0xFFFFu << tx);
  pooled.oh = g->oh / 2;
  pooled.ow = g->ow / 2;
  if (g->pad) {
    lensnet__pad_image(g, in, cin, padded);
    in = padded;
  }
  if (paired) {
    int32_t v[16];
    size_t k, l;
    for (k = 0; k < 6; k++) {
      for (l = 0; l < 16; l++) v[l] = (int32_t)(l < tx ? 4 * l + k : l < 2 * tx ? 4 * (l - tx) + k : 0) & 31;
      idx[k] = _mm512_loadu_si512((const void *)v);
    }
    for (k = 0; k < 3; k++) mk2[k] = lensnet__avx512_first_lanes(16 * k < w ? w - 16 * k : 0);
  }
  for (ty0 = 0; ty0 < ty; ty0 += rows) {
    size_t nrows = ty - ty0 < rows ? ty - ty0 : rows, tiles = nrows * tx, cover = tx <= 16 ? tiles - tx + 16 : tiles;
    if (paired) cover = ((nrows - 1) / 2 * 2) * tx + 16; /* past the last pair's store */
    for (c = 0; c < cin && paired; c++) { /* the input transform, two tile rows at a time */
      const float *plane = in + c * h * w;
      for (t = 0; t < nrows; t += 2) {
        const float *r[6];
        size_t k;
        for (k = 0; k < 6; k++) {
          lensnet__wino43_in_row2(plane, h, w, 4 * (ty0 + t) + k, tx, mk2, idx, second, ring + 96 * k);
          r[k] = ring + 96 * k;
        }
        lensnet__wino5_in_store(r, V + c * vstride + t * tx, cin * vstride, (__mmask16)0xFFFF);
      }
      if (cover < lensnet__round_up(tiles, 16))
        for (xi = 0; xi < 36; xi++) _mm512_storeu_ps(V + (xi * cin + c) * vstride + cover, _mm512_setzero_ps());
    }
    for (c = 0; c < cin && !paired; c++) { /* the input transform */
      const float *plane = in + c * h * w;
      size_t tx0;
      for (tx0 = 0; tx0 < tx; tx0 += 16) {
        __mmask16 mk[5], keep = tx <= 16 ? (__mmask16)0xFFFF : lensnet__avx512_first_lanes(tx - tx0);
        size_t k, y = 4 * ty0;
        for (k = 0; k < 5; k++) { /* loads at 4 tx0 + 16 k */
          size_t at = 4 * tx0 + 16 * k;
          mk[k] = lensnet__avx512_first_lanes(at < w ? w - at : 0);
        }
        for (k = 0; k < 2; k++) lensnet__wino43_in_row(plane, h, w, y + k, tx0, mk, ring + 96 * k);
        for (t = 0; t < nrows; t++, y += 4) {
          const float *r[6];
          for (k = 2; k < 6; k++) lensnet__wino43_in_row(plane, h, w, y + k, tx0, mk, ring + 96 * ((4 * t + k) % 6));
          for (k = 0; k < 6; k++) r[k] = ring + 96 * ((4 * t + k) % 6);
          lensnet__wino5_in_store(r, V + c * vstride + t * tx + tx0, cin * vstride, keep);
        }
      }
      if (cover < lensnet__round_up(tiles, 16))
        for (xi = 0; xi < 36; xi++) _mm512_storeu_ps(V + (xi * cin + c) * vstride + cover, _mm512_setzero_ps());
    }
    lensnet__wino_product(U, V, M, cin, co_pad, cin * vstride, vstride, mstride, tiles, 36);
    for (co = 0; co < cout; co++) { /* the output transform A^T m A, bias, ReLU */
      __m512 bv = _mm512_set1_ps(bias ? bias[co] : 0.0f);
      for (t = 0; t < nrows && paired; t += 2) { /* two tile rows a vector: lanes < tx the first */
        const float *m = M + co * 36 * mstride + t * tx;
        size_t i, r, k, y = 4 * (ty0 + t);
        __m512 s[4][6], yr[4], q[4];
        for (i = 0; i < 6; i++) {
          __m512 v[6], o[4];
          for (r = 0; r < 6; r++) v[r] = _mm512_loadu_ps(m + (6 * r + i) * mstride);
          lensnet__wino43_at(v, o);
          for (r = 0; r < 4; r++) s[r][i] = o[r];
        }
        for (r = 0; r < 4 && y + r < g->oh; r++) {
          float *oa = out + (co * g->oh + y + r) * g->ow, *ob = out + (co * g->oh + y + 4 + r) * g->ow;
          int second_row = t + 1 < nrows && y + 4 + r < g->oh;
          lensnet__wino43_at(s[r], yr);
          for (k = 0; k < 4; k++) {
            yr[k] = _mm512_add_ps(yr[k], bv);
            if (fuse_relu) yr[k] = _mm512_maskz_max_ps((__mmask16)0xFFFF, _mm512_setzero_ps(), yr[k]);
          }
          q[0] = _mm512_permutex2var_ps(yr[0], lo_idx, yr[1]);
          q[1] = _mm512_permutex2var_ps(yr[0], hi_idx, yr[1]);
          q[2] = _mm512_permutex2var_ps(yr[2], lo_idx, yr[3]);
          q[3] = _mm512_permutex2var_ps(yr[2], hi_idx, yr[3]);
          for (k = 0; k < 4 && 4 * k < 2 * tx; k++) { /* tiles 4k .. 4k + 3, output columns 16k .. of the first row or 16k - 4 tx .. of the second */
            __m512d a = _mm512_castps_pd(q[k / 2]), b = _mm512_castps_pd(q[2 + k / 2]);
            __m512 v = _mm512_castpd_ps(_mm512_permutex2var_pd(a, k % 2 ? pd_hi : pd_lo, b));
            size_t lo = 16 * k, first_end = 4 * tx < g->ow ? 4 * tx : g->ow; /* the first row's columns [0, first_end) */
            if (lo < first_end) _mm512_mask_storeu_ps(oa + lo, lensnet__avx512_first_lanes(first_end - lo), v);
            if (second_row && lo + 16 > 4 * tx) { /* lane L is column lo + L - 4 tx of the second row */
              size_t from = lo < 4 * tx ? 4 * tx - lo : 0, end = 4 * tx + g->ow - lo; /* lanes [from, end) */
              __mmask16 keep = (__mmask16)(lensnet__avx512_first_lanes(end < 16 ? end : 16) & ~lensnet__avx512_first_lanes(from));
              _mm512_mask_storeu_ps(ob + lo - 4 * tx, keep, v);
            }
          }
        }
      }
      for (t = 0; t < nrows && !paired; t++) {
        size_t tx0, y = 4 * (ty0 + t);
        for (tx0 = 0; tx0 < tx; tx0 += 16) {
          const float *m = M + co * 36 * mstride + t * tx + tx0;
          size_t i, r, cols = g->ow - 4 * tx0 < 64 ? g->ow - 4 * tx0 : 64;
          __m512 s[4][6], yr[4];
          for (i = 0; i < 6; i++) { /* A^T over the rows of m, column i */
            __m512 v[6], o[4];
            for (r = 0; r < 6; r++) v[r] = _mm512_loadu_ps(m + (6 * r + i) * mstride);
            lensnet__wino43_at(v, o);
            for (r = 0; r < 4; r++) s[r][i] = o[r];
          }
          if (pool) {
            __m512 y0[4], y1[4], pv[2][2];
            for (r = 0; r < 2; r++) {
              lensnet__wino43_at(s[2 * r], y0);
              lensnet__wino43_at(s[2 * r + 1], y1);
              pv[r][0] = lensnet__avx512_max_nan(lensnet__avx512_max_nan(y0[0], y0[1]), lensnet__avx512_max_nan(y1[0], y1[1]));
              pv[r][1] = lensnet__avx512_max_nan(lensnet__avx512_max_nan(y0[2], y0[3]), lensnet__avx512_max_nan(y1[2], y1[3]));
            }
            lensnet__wino_out(pv, bv, fuse_relu, 0, &pooled, co, y / 2, tx0, out);
            continue;
          }
          for (r = 0; r < 4 && y + r < g->oh; r++) { /* output row y + r: A^T over the columns */
            float *o = out + (co * g->oh + y + r) * g->ow + 4 * tx0;
            __m512 q[4];
            size_t k;
            lensnet__wino43_at(s[r], yr);
            for (k = 0; k < 4; k++) {
              yr[k] = _mm512_add_ps(yr[k], bv);
              if (fuse_relu) yr[k] = _mm512_maskz_max_ps((__mmask16)0xFFFF, _mm512_setzero_ps(), yr[k]);
            }
            q[0] = _mm512_permutex2var_ps(yr[0], lo_idx, yr[1]); /* columns 0, 1 of tiles 0-7 */
            q[1] = _mm512_permutex2var_ps(yr[0], hi_idx, yr[1]); /* of tiles 8-15 */
            q[2] = _mm512_permutex2var_ps(yr[2], lo_idx, yr[3]);
            q[3] = _mm512_permutex2var_ps(yr[2], hi_idx, yr[3]);
            for (k = 0; k < 4 && 16 * k < cols; k++) { /* tiles 4k .. 4k + 3, their four columns each */
              __m512d a = _mm512_castps_pd(q[k / 2]), b = _mm512_castps_pd(q[2 + k / 2]);
              __m512 v = _mm512_castpd_ps(_mm512_permutex2var_pd(a, k % 2 ? pd_hi : pd_lo, b));
              _mm512_mask_storeu_ps(o + 16 * k, lensnet__avx512_first_lanes(cols - 16 * k), v);
            }
          }
        }
      }
    }
  }
}

/* One image by Winograd's F(2x2, 3x3) or F(2x2, 5x5), as g's kernel is (lensnet__wino_ok); with
 * pool, out is the 2 x 2 stride-2 max pool of the output (after the ReLU when fuse_relu),
 * [cout, oh / 2, ow / 2]. */
LENSNET__TARGET_AVX512 static void lensnet__wino_conv_avx512(const lensnet__conv_geom *g, const float *in, const float *U,
                                                             const float *bias, int fuse_relu, int pool, float *out, float *scratch) {
  if (g->kh == 5) lensnet__wino5_conv_avx512(g, in, U, bias, fuse_relu, pool, out, scratch);
  else if (lensnet__wino_m(g) == 4) lensnet__wino43_conv_avx512(g, in, U, bias, fuse_relu, pool, out, scratch);
  else lensnet__wino3_conv_avx512(g, in, U, bias, fuse_relu, pool, out, scratch);
}
#endif

/* Output rows [y0, y1) of one image and group into dst [cout_g, y1 - y0, ow]: every K block of a
 * micro-panel of outputs before the next panel, so that its tiles stay in L1 between blocks instead
 * of the whole output (1.4 MB for OU-200's second layer) being read and written once per block;
 * the sums are added in the same order either way. */
static void lensnet__conv_rows_packed(const lensnet__gemm_path *path, const lensnet__conv_geom *g, const lensnet__b_source *image, const float *A,
                                      const float *bias, int fuse_relu, size_t y0, size_t y1, float *dst, float *Bp) {
  size_t cout_g = g->cout / g->groups, K = (g->cin / g->groups) * g->kh * g->kw, kc_max = lensnet__k_block(K);
  size_t m_pad = lensnet__round_up(cout_g, path->mr), P = (y1 - y0) * g->ow, j0, pc, i0;
  lensnet__b_source src = *image;
  lensnet__epilogue ep;
  src.data = image->data + y0 * g->stride * image->row_stride;
  ep.alpha = 1.0f;
  for (j0 = 0; j0 < P; j0 += path->nr) {
    size_t nv = P - j0 < path->nr ? P - j0 : path->nr;
    for (pc = 0; pc < K; pc += kc_max) {
      size_t kc = K - pc < kc_max ? K - pc : kc_max;
      int last = pc + kc == K;
      ep.beta = pc == 0 ? 0.0f : 1.0f;
      ep.relu = last && fuse_relu;
      path->pack_b(&src, pc, kc, j0, nv, path->nr, Bp);
      for (i0 = 0; i0 < cout_g; i0 += path->mr) {
        ep.bias = last && bias ? bias + i0 : NULL;
        path->kernel(kc, A + m_pad * pc + i0 * kc, Bp, dst + i0 * P + j0, P, cout_g - i0 < path->mr ? cout_g - i0 : path->mr, nv, &ep);
      }
    }
  }
}

/* Output rows [y0, y1) of one image and group: straight from the image where the AVX-512 path
 * can (the same outputs bit for bit), else through packed panels. */
static void lensnet__conv_rows(const lensnet__gemm_path *path, const lensnet__conv_geom *g, const lensnet__b_source *image, const float *A,
                               const float *bias, int fuse_relu, size_t y0, size_t y1, float *dst, float *Bp) {
#ifdef LENSNET__HAVE_AVX512
  if (path->kernel == lensnet__kernel_avx512 && y1 > y0 && lensnet__direct_conv_ok(g, image)) {
    lensnet__conv_rows_direct_avx512(g, image, A, bias, fuse_relu, y0, y1, dst);
    return;
  }
#endif
  lensnet__conv_rows_packed(path, g, image, A, bias, fuse_relu, y0, y1, dst, Bp);
}

static void lensnet__conv2d_forward_prepacked(lensnet_simd simd, const lensnet__conv_geom *g, const float *in, const float *weight,
                                              const float *prepacked, const float *bias, int fuse_relu, const lensnet_layer *pool,
                                              float *out, float *scratch, unsigned char *pool_arg) {
  const lensnet__gemm_path *path = lensnet__gemm_path_for(simd);
  size_t cin_g = g->cin / g->groups, cout_g = g->cout / g->groups;
  size_t K = cin_g * g->kh * g->kw, P = g->oh * g->ow, kc_max = lensnet__k_block(K);
  size_t m_pad = lensnet__round_up(cout_g, path->mr), a_floats = 0, b_floats = 0, pad_floats = 0, b, grp, c, r;
  size_t br = pool ? lensnet__pool_band_rows(g->ow) : 0;
  float *Ap, *Bp, *padded, *band;
  const float *A;
  lensnet__b_source src;
  lensnet_layer band_pool;
  (void)kc_max;
  if (P == 0 || cout_g == 0) return;
  if (K == 0) { /* no inputs: the output is the bias */
    for (b = 0; b < g->n * g->cout; b++) {
      float v = bias ? bias[b % g->cout] : 0.0f;
      size_t p;
      if (fuse_relu && v < 0.0f) v = 0.0f;
      for (p = 0; p < P; p++) out[b * P + p] = v;
    }
    return;
  }
  lensnet__conv_scratch_parts(g, &a_floats, &b_floats, &pad_floats);
  Ap = lensnet__align64(scratch);
  Bp = lensnet__align64(Ap + a_floats);
  padded = lensnet__align64(Bp + b_floats);
  band = lensnet__align64(padded + pad_floats);
  memset(&src, 0, sizeof src);
  src.is_image = 1;
  src.chan_stride = (g->h + 2 * g->pad) * (g->w + 2 * g->pad);
  src.row_stride = g->w + 2 * g->pad;
  src.kh = g->kh;
  src.kw = g->kw;
  src.stride = g->stride;
  src.ow = g->ow;
  for (grp = 0; grp < g->groups; grp++) {
    /* the group's weights, packed once for every image (or before the call): block pc at Ap + m_pad * pc */
    if (prepacked) A = prepacked + grp * m_pad * K;
    else {
      lensnet__conv_pack_weights(path, g, weight, grp, Ap);
      A = Ap;
    }
    for (b = 0; b < g->n; b++) {
      const float *img = in + (b * g->cin + grp * cin_g) * g->h * g->w;
      float *o = out + (b * g->cout + grp * cout_g) * P;
      if (g->pad) {
        lensnet__pad_image(g, img, cin_g, padded);
        img = padded;
      }
      src.data = img;
      if (!pool) {
        lensnet__conv_rows(path, g, &src, A, bias ? bias + grp * cout_g : NULL, fuse_relu, 0, g->oh, o, Bp);
        continue;
      }
      /* pooled on the way: 2 br rows of the convolution, then their br pooled rows, while in cache */
      o = out + (b * g->cout + grp * cout_g) * pool->out_h * pool->out_w;
      band_pool = *pool;
      for (r = 0; r < pool->out_h; r += br) {
        size_t rows = pool->out_h - r < br ? pool->out_h - r : br;
        lensnet__conv_rows(path, g, &src, A, bias ? bias + grp * cout_g : NULL, fuse_relu, 2 * r, 2 * (r + rows), band, Bp);
        band_pool.in_h = 2 * rows;
        band_pool.out_h = rows;
        for (c = 0; c < cout_g; c++) {
          float *pooled = o + c * pool->out_h * pool->out_w + r * pool->out_w;
          if (pool_arg) /* training: also which input of each window won, for the backward */
            lensnet__maxpool2x2_argmax(&band_pool, 1, band + c * 2 * rows * g->ow, pooled, pool_arg + (pooled - out));
          else
            lensnet__maxpool2x2(&band_pool, 1, band + c * 2 * rows * g->ow, pooled);
        }
      }
    }
  }
}

/* out = conv(in, weight) + bias, then ReLU when fuse_relu is set. bias may be NULL.
 * scratch holds lensnet__conv_scratch_floats(g) floats (any alignment). */
LENSNET__MAYBE_UNUSED static void lensnet__conv2d_forward(const lensnet__conv_geom *g, const float *in, const float *weight,
                                                          const float *bias, int fuse_relu, float *out, float *scratch) {
  lensnet__conv2d_forward_path(lensnet_simd_best(), g, in, weight, bias, fuse_relu, out, scratch);
}

/* ---- random numbers ------------------------------------------------------------------------ */

static uint64_t lensnet__splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

LENSNET_API void lensnet_rng_seed(lensnet_rng *rng, uint64_t seed) {
  int i;
  for (i = 0; i < 4; i++) rng->s[i] = lensnet__splitmix64(&seed);
}

/* xoshiro256** */
LENSNET_API uint64_t lensnet_rng_next(lensnet_rng *rng) {
  uint64_t *s = rng->s, result = s[1] * 5, t = s[1] << 17;
  result = ((result << 7) | (result >> 57)) * 9;
  s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
  s[2] ^= t;
  s[3] = (s[3] << 45) | (s[3] >> 19);
  return result;
}

LENSNET_API float lensnet_rng_uniform(lensnet_rng *rng) {
  return (float)(lensnet_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

LENSNET_API float lensnet_rng_normal(lensnet_rng *rng) {
  double u1 = ((double)(lensnet_rng_next(rng) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
  double u2 = (double)(lensnet_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* ---- layer kinds: what every layer type is and does (the table: "the layer table" below) --- */

/* How an output position of a layer depends on input positions (its receptive field). */
typedef enum {
  LENSNET__REACH_POINT,  /* output (y, x) from input (y, x) alone */
  LENSNET__REACH_WINDOW, /* from the kernel x kernel window at (y*stride - padding, x*stride - padding) */
  LENSNET__REACH_ALL     /* from every input position */
} lensnet__reach;

/* A layer being resolved: the model so far, and the shape flowing through (the layer's input;
 * its resolve leaves its output). */
typedef struct {
  lensnet_model *m;
  size_t index, pcap;
  size_t c, h, w;
  lensnet_error *err;
} lensnet__resolver;

/* One layer run over a batch, at inference (t NULL) or in a trainer. */
typedef struct {
  const lensnet_model *m;
  const lensnet_layer *L;
  size_t layer, batch;   /* L's index; images in x and y */
  const float *x;        /* [batch, in] */
  float *y;              /* [batch, out]; the same buffer as x for in-place kinds at inference */
  float *saved;          /* mark, add: the marked activation of the same images */
  float *scratch;        /* the kind's scratch (lensnet__layer_kind.scratch floats) */
  lensnet_trainer *t;    /* NULL at inference */
  size_t image, worker;  /* trainer: the first image of x among the step's images; the worker */
  size_t step_batch;     /* trainer: images in the step (the layout of per-step buffers) */
  uint64_t step_seed;    /* trainer: dropout streams of this step; inference with mc: the caller's seed */
  int mc;                /* inference with dropout on (lensnet_model_forward_mc) */
  int may_fuse, fused;   /* the layer may compute the next one too (conv: its ReLU); it did */
  int accumulate;        /* trainer: add the image's parameter gradients to its slot (not its slot's first image) */
  const float *prepacked; /* inference: conv2d's weights packed by lensnet_model_pack, or NULL */
  const float *wino;     /* inference: the layer's Winograd weights (lensnet_model_pack_winograd), or NULL */
  unsigned char *pool_arg; /* lean trainer: a convolution pools on the way into y (the pool's output) and keeps
                            * the windows' winners here (lensnet__conv_pools_in_training) */
} lensnet__pass;

enum {
  LENSNET__KIND_IN_PLACE = 1,    /* forward works with y == x (inference runs it on the current buffer) */
  LENSNET__KIND_WHOLE_BATCH = 2, /* training needs the whole batch at once, not image by image */
  LENSNET__KIND_MASK = 4,        /* training keeps a byte per output (dropout's mask) */
  LENSNET__KIND_STATS = 8,       /* training keeps a mean and an inverse deviation per channel */
  LENSNET__KIND_SAVES = 16       /* keeps its input for a later layer (mark) */
};

typedef struct {
  lensnet_layer_type type;   /* rows are in LENSNET_LAYER_TYPES order; each says which it is */
  lensnet__reach reach;
  unsigned flags;            /* LENSNET__KIND_* */
  float value_default;       /* lensnet_layer.value when the text gives none (slope, eps, p) */
  /* Checks the options, registers the parameters, sets the output shape; NULL: keeps the shape. */
  lensnet_result (*resolve)(lensnet__resolver *r, lensnet_layer *L);
  /* PyTorch's initial parameters; NULL: none. */
  void (*init)(lensnet_model *m, const lensnet_layer *L, lensnet_rng *rng);
  /* The options `lens info` prints; NULL: none. */
  void (*describe)(const lensnet_layer *L, char *buf, size_t cap);
  void (*forward)(lensnet__pass *p);
  /* dy: d loss / d output; dx: d loss / d input (NULL: only parameter gradients wanted). */
  void (*backward)(const lensnet__pass *p, const float *dy, float *dx);
  /* Kinds whose every output is a function of the input at its own position and channel:
   * y = f(x) over n values of one channel (y may be x). Forward passes and rectangles use it. */
  void (*pointwise)(const lensnet_model *m, const lensnet_layer *L, size_t channel, const float *x, float *y, size_t n);
  /* REACH_WINDOW kinds: the outputs inside r (every channel) of one image. */
  void (*rect)(const lensnet_model *m, const lensnet_layer *L, const float *in, float *out, lensnet_rect r);
  /* Floats of scratch for a batch (training: per worker, for one image); NULL: none. */
  size_t (*scratch)(const lensnet_layer *L, size_t batch, int training);
  /* Kinds whose backward runs image by image into per-image parameter gradients: set up
   * before a backward run (conv: flipped weights), and sum the images' gradients after it. */
  void (*backward_prepare)(lensnet_trainer *t, size_t layer);
  void (*backward_reduce)(lensnet_trainer *t, size_t layer, size_t batch);
} lensnet__layer_kind;

static const lensnet__layer_kind *lensnet__kind(lensnet_layer_type t);
static void lensnet__quant_free(lensnet_model *m);
static size_t lensnet__quant_scratch_floats(const lensnet_layer *L);
static lensnet_result lensnet__quant_set_layer(lensnet_model *m, size_t l, const float *q, const float *scales, float input_scale,
                                               int zero_point);
static int lensnet__layer_quantizable(const lensnet_layer *L);

/* ---- architecture text --------------------------------------------------------------------- */

LENSNET_API const char *lensnet_layer_type_name(lensnet_layer_type t) {
  switch (t) {
#define LENSNET__LAYER_CASE(name, text) case name: return text;
    LENSNET_LAYER_TYPES(LENSNET__LAYER_CASE)
#undef LENSNET__LAYER_CASE
    default: return "unknown";
  }
}

/* Appends formatted text; returns 0 once the buffer is full. */
static int lensnet__appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
  va_list ap;
  int n;
  if (*len >= cap) return 0;
  va_start(ap, fmt);
  n = vsnprintf(buf + *len, cap - *len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= cap - *len) { *len = cap; return 0; }
  *len += (size_t)n;
  return 1;
}

/* The lens finders of Wilde et al. 2022 (MNRAS 512, 3464), layer for layer as the PyTorch
 * nn.Sequential the released weights come from, so parameter names carry PyTorch's indices. */
/* "ensai": five convolution blocks (conv, ReLU, 2x2 max pool, dropout 0.1) halving 192 pixels to
 * 6, then a 256-unit dense layer with dropout and the head. It follows the shape of the networks
 * of Hezaveh, Perreault Levasseur & Marshall 2017 (Nature 548, 555: convolution stacks ending in
 * dense layers, regressing theta_E, the complex ellipticity and the centre) at a size a CPU trains
 * in hours; the dropout after every block is what Monte Carlo dropout needs for the epistemic
 * uncertainty (Perreault Levasseur, Hezaveh & Wechsler 2017, ApJL 850, L7). It is not one of their
 * networks (those are Inception-v4, AlexNet- and OverFeat-like, far larger). */
static size_t lensnet__arch_ensai(int bands, int outputs, char *buf, size_t cap) {
  static const int blocks[5][2] = {{16, 5}, {32, 3}, {64, 3}, {64, 3}, {128, 3}};
  size_t len = 0;
  int i, index = 0;
  lensnet__appendf(buf, cap, &len, "# ensai: lens modelling network (regression)\ninput %d 192 192\n", bands);
  for (i = 0; i < 5; i++) {
    lensnet__appendf(buf, cap, &len, "conv2d name=layer.%d out=%d kernel=%d padding=%d\nrelu\nmaxpool kernel=2 stride=2\ndropout p=0.1\n", index,
                     blocks[i][0], blocks[i][1], blocks[i][1] / 2);
    index += 4;
  }
  lensnet__appendf(buf, cap, &len, "flatten\ndense name=fc_layer.0 out=256\nrelu\ndropout p=0.1\ndense name=fc_layer.3 out=%d\n", outputs);
  return len < cap ? len : 0;
}

/* "resnet18", "resnet34": ResNet-18/34 of He, Zhang, Ren & Sun 2016 ("Deep Residual Learning for
 * Image Recognition", CVPR) in torchvision's layout, so that a torchvision state_dict loads under
 * the same names: a 7x7 stride-2 convolution without bias, batch norm, ReLU, a 3x3 stride-2 max
 * pool with padding 1, four stages of basic blocks (two 3x3 convolutions with batch norm; 64, 128,
 * 256, 512 channels; [2,2,2,2] or [3,4,6,3] blocks) whose first block in stages 2-4 halves the
 * size and projects its shortcut with a 1x1 stride-2 convolution and batch norm ("downsample"),
 * then global average pooling and the dense layer fc. A block is
 *   mark name=B, conv1, bn1, relu, conv2, bn2, add name=B, relu
 * and a projecting block keeps the main path at a second mark and restores the block's input for
 * the shortcut: mark name=B, ..., bn2, mark name=B.main, restore name=B, downsample.0,
 * downsample.1, add name=B.main, relu. The input size is free (any h, w; 224 is ImageNet's). */
static size_t lensnet__arch_resnet(int depth, int bands, int outputs, int height, int width, char *buf, size_t cap) {
  static const int blocks18[4] = {2, 2, 2, 2}, blocks34[4] = {3, 4, 6, 3};
  const int *blocks = depth == 18 ? blocks18 : blocks34;
  size_t len = 0;
  int stage, b, channels = 64;
  lensnet__appendf(buf, cap, &len, "# resnet%d: ResNet-%d of He et al. 2016, torchvision's layout and names\ninput %d %d %d\n"
                   "conv2d name=conv1 out=64 kernel=7 stride=2 padding=3 bias=0\nbatchnorm name=bn1\nrelu\nmaxpool kernel=3 stride=2 padding=1\n",
                   depth, depth, bands, height, width);
  for (stage = 1; stage <= 4; stage++) {
    for (b = 0; b < blocks[stage - 1]; b++) {
      int project = stage > 1 && b == 0;
      char block[32];
      snprintf(block, sizeof block, "layer%d.%d", stage, b);
      lensnet__appendf(buf, cap, &len, "mark name=%s\nconv2d name=%s.conv1 out=%d kernel=3 stride=%d padding=1 bias=0\nbatchnorm name=%s.bn1\nrelu\n"
                       "conv2d name=%s.conv2 out=%d kernel=3 padding=1 bias=0\nbatchnorm name=%s.bn2\n",
                       block, block, channels, project ? 2 : 1, block, block, channels, block);
      if (project)
        lensnet__appendf(buf, cap, &len, "mark name=%s.main\nrestore name=%s\nconv2d name=%s.downsample.0 out=%d kernel=1 stride=2 bias=0\n"
                         "batchnorm name=%s.downsample.1\nadd name=%s.main\nrelu\n", block, block, block, channels, block, block);
      else lensnet__appendf(buf, cap, &len, "add name=%s\nrelu\n", block);
    }
    channels *= 2;
  }
  lensnet__appendf(buf, cap, &len, "global_avgpool\ndense name=fc out=%d\n", outputs);
  return len < cap ? len : 0;
}

/* "p4cnn": a rotation-equivariant classifier of p4 group convolutions (Cohen & Welling 2016): a
 * lifting layer of 5x5 filters, three 3x3 group convolutions, each followed by batch norm that
 * shares its statistics over a channel's 4 orientations, ReLU and (the first three) a max pool
 * halving the size; then max pooling over the orientations (rotation-invariant channels), global
 * average pooling and the dense layer fc. 8, 16, 32, 64 channels of 4 orientations. Each pool
 * samples a grid that a quarter turn maps onto itself (lensnet__p4_source says why that is
 * needed): 2x2 on an even side, 3x3 with stride 2 and padding 1 on an odd one (150 -> 75 -> 38
 * -> 19), so quarter turns of any square input leave the outputs unchanged, to rounding. */
static size_t lensnet__arch_p4cnn(int bands, int outputs, int height, int width, char *buf, size_t cap) {
  static const int channels[4] = {8, 16, 32, 64};
  size_t len = 0;
  int i, side = height;
  lensnet__appendf(buf, cap, &len, "# p4cnn: rotation-equivariant CNN, p4 group convolutions (Cohen & Welling 2016)\ninput %d %d %d\n",
                   bands, height, width);
  for (i = 0; i < 4; i++) {
    if (i == 0) lensnet__appendf(buf, cap, &len, "p4_lift name=lift out=%d kernel=5 padding=2 bias=0\n", channels[0]);
    else lensnet__appendf(buf, cap, &len, "p4_conv name=conv%d out=%d kernel=3 padding=1 bias=0\n", i, channels[i]);
    lensnet__appendf(buf, cap, &len, "batchnorm name=bn%d orientations=4\nrelu\n", i);
    if (i == 3) break;
    lensnet__appendf(buf, cap, &len, "%s", side % 2 ? "maxpool kernel=3 stride=2 padding=1\n" : "maxpool kernel=2\n");
    side = side % 2 ? (side - 1) / 2 + 1 : side / 2;
  }
  lensnet__appendf(buf, cap, &len, "p4_pool mode=max\nglobal_avgpool\ndense name=fc out=%d\n", outputs);
  return len < cap ? len : 0;
}

/* The head a built-in has when none is asked for: the finders' two classes, ensai's five means
 * and log-variances, ImageNet's 1000 classes for the ResNets (so "resnet18(3)" is torchvision's
 * resnet18). */
static int lensnet__builtin_outputs(const char *name) {
  if (!strcmp(name, "ensai")) return 10;
  if (!strcmp(name, "resnet18") || !strcmp(name, "resnet34")) return 1000;
  return 2;
}

LENSNET_API size_t lensnet_arch_builtin(const char *name, int bands, char *buf, size_t cap) {
  return name ? lensnet_arch_builtin_head(name, bands, lensnet__builtin_outputs(name), buf, cap) : 0;
}

LENSNET_API size_t lensnet_arch_builtin_head(const char *name, int bands, int outputs, char *buf, size_t cap) {
  return lensnet_arch_builtin_sized(name, bands, outputs, 0, 0, buf, cap);
}

LENSNET_API size_t lensnet_arch_builtin_sized(const char *name, int bands, int outputs, int height, int width, char *buf, size_t cap) {
  /* conv layers: output channels, kernel, followed by a 2x2 max pool? */
  static const int ou66[9][3] = {{50, 3, 1}, {50, 3, 0}, {50, 3, 0}, {50, 3, 0}, {40, 3, 1}, {40, 3, 0}, {40, 3, 0}, {40, 3, 0}, {30, 3, 1}};
  static const int ou200[6][3] = {{50, 5, 1}, {40, 5, 1}, {30, 3, 1}, {20, 3, 1}, {20, 3, 0}, {20, 3, 0}};
  const int (*convs)[3];
  int nconv, size, hidden, i, index = 0;
  size_t len = 0;
  if (bands < 1 || bands > 1024 || outputs < 1 || outputs > 65536 || height < 0 || height > 65536 || width < 0 || width > 65536 ||
      !buf || !name)
    return 0;
  if (!width) width = height;
  if (!height) height = width;
  if (!strcmp(name, "resnet18") || !strcmp(name, "resnet34"))
    return lensnet__arch_resnet(name[7] == '8' ? 18 : 34, bands, outputs, height ? height : 224, width ? width : 224, buf, cap);
  if (!strcmp(name, "p4cnn")) return lensnet__arch_p4cnn(bands, outputs, height ? height : 64, width ? width : 64, buf, cap);
  if (!strcmp(name, "ensai")) return lensnet__arch_ensai(bands, outputs, buf, cap);
  if (!strcmp(name, "ou66")) { convs = ou66; nconv = 9; size = 66; hidden = 500; }
  else if (!strcmp(name, "ou200")) { convs = ou200; nconv = 6; size = 200; hidden = 350; }
  else return 0;
  lensnet__appendf(buf, cap, &len, "# %s: lens finder of Wilde et al. 2022\ninput %d %d %d\n", name, bands, size, size);
  for (i = 0; i < nconv; i++) {
    lensnet__appendf(buf, cap, &len, "conv2d name=layer.%d out=%d kernel=%d\nrelu\n", index, convs[i][0], convs[i][1]);
    index += 2;
    if (convs[i][2]) { lensnet__appendf(buf, cap, &len, "maxpool kernel=2 stride=2\n"); index++; }
    lensnet__appendf(buf, cap, &len, "dropout p=0.2\n");
    index++;
  }
  lensnet__appendf(buf, cap, &len, "flatten\ndense name=fc_layer.0 out=%d\nrelu\ndense name=fc_layer.2 out=%d\n", hidden, outputs);
  return len < cap ? len : 0;
}

/* Room for more items in a model's growing array (layers while parsing, parameters while
 * resolving), whose capacity is *cap items of `size` bytes: on the heap the capacity doubles
 * (LENSNET_REALLOC); in a preallocated block the array is the last thing placed, so it grows in
 * place by one item, with no gap left behind. NULL when there is no room. */
static void *lensnet__model_grow(lensnet_model *m, void *items, size_t *cap, size_t size) {
  size_t ncap = *cap ? *cap * 2 : 16, bytes;
  if (m->prealloc_end) {
    unsigned char *start = items ? (unsigned char *)items : m->prealloc_next;
    if (!lensnet__mul_ok(*cap + 1, size, &bytes) || bytes > (size_t)(m->prealloc_end - start)) return NULL;
    *cap += 1;
    return start;
  }
  if (!lensnet__mul_ok(ncap, size, &bytes) || !(items = LENSNET_REALLOC(items, bytes))) return NULL;
  *cap = ncap;
  return items;
}

typedef struct {
  const char *text;
  int line;
  lensnet_error *err;
} lensnet__arch_parser;

/* Parses "key=value" words into the layer; unknown keys are errors. */
static lensnet_result lensnet__arch_option(lensnet__arch_parser *ap, lensnet_layer *L, const char *key, const char *val) {
  char *end;
  double d = strtod(val, &end);
  int numeric = (*val && *end == 0);
  if (!strcmp(key, "name")) {
    if (strlen(val) >= sizeof L->name) return lensnet__fail(ap->err, LENSNET_ERR_ARCH, "architecture line %d: name '%.40s...' is too long", ap->line, val);
    strcpy(L->name, val);
    return LENSNET_OK;
  }
  if (!strcmp(key, "mode")) {
    if (!strcmp(val, "max")) L->mode = LENSNET_P4_POOL_MAX;
    else if (!strcmp(val, "mean")) L->mode = LENSNET_P4_POOL_MEAN;
    else return lensnet__fail(ap->err, LENSNET_ERR_ARCH, "architecture line %d: mode=%.40s is neither max nor mean", ap->line, val);
    return LENSNET_OK;
  }
  if (!numeric) return lensnet__fail(ap->err, LENSNET_ERR_ARCH, "architecture line %d: %s=%.40s is not a number", ap->line, key, val);
  if (!strcmp(key, "p") || !strcmp(key, "slope") || !strcmp(key, "eps")) { L->value = (float)d; return LENSNET_OK; }
  if (!strcmp(key, "momentum")) { L->momentum = (float)d; return LENSNET_OK; }
  if (d < 0 || d > 1e9 || d != floor(d)) return lensnet__fail(ap->err, LENSNET_ERR_ARCH, "architecture line %d: %s=%.40s must be a non-negative integer", ap->line, key, val);
  if (d == 0 && (!strcmp(key, "out") || !strcmp(key, "kernel") || !strcmp(key, "stride") || !strcmp(key, "groups")))
    return lensnet__fail(ap->err, LENSNET_ERR_ARCH, "architecture line %d: %s=0: it must be at least 1", ap->line, key);
  if (!strcmp(key, "out")) L->out = (size_t)d;
  else if (!strcmp(key, "kernel")) L->kernel = (size_t)d;
  else if (!strcmp(key, "stride")) L->stride = (size_t)d;
  else if (!strcmp(key, "padding")) L->padding = (size_t)d;
  else if (!strcmp(key, "groups")) L->groups = (size_t)d;
  else if (!strcmp(key, "bias")) L->bias = d != 0;
  else if (!strcmp(key, "orientations")) L->orientations = (size_t)d;
  else return lensnet__fail(ap->err, LENSNET_ERR_ARCH, "architecture line %d: unknown option '%.40s'", ap->line, key);
  return LENSNET_OK;
}

/* Splits the text into lines (newline or ';'), words separated by blanks; fills the model's
 * input shape and layer list (unresolved). */
static lensnet_result lensnet__arch_parse(lensnet_model *m, const char *text, lensnet_error *err) {
  lensnet__arch_parser ap;
  const char *p = text;
  size_t cap = 0;
  int have_input = 0;
  ap.text = text;
  ap.line = 0;
  ap.err = err;
  while (*p) {
    char line[512], *words[32], *save;
    int nw = 0, i;
    size_t n = 0;
    lensnet_layer *L;
    ap.line++;
    while (*p && *p != '\n' && *p != ';') {
      if (*p == '#') { /* a comment runs to the end of the line, ';' and all */
        while (*p && *p != '\n') p++;
        break;
      }
      if (n + 1 >= sizeof line) return lensnet__fail(err, LENSNET_ERR_ARCH, "architecture line %d is longer than %d characters", ap.line, (int)sizeof line - 1);
      line[n++] = *p++;
    }
    if (*p) p++;
    line[n] = 0;
    if ((save = strchr(line, '#')) != NULL) *save = 0;
    save = line;
    while (*save) {
      while (*save == ' ' || *save == '\t' || *save == '\r' || *save == ',') *save++ = 0;
      if (!*save) break;
      if (nw == 32) return lensnet__fail(err, LENSNET_ERR_ARCH, "architecture line %d has more than 32 words", ap.line);
      words[nw++] = save;
      while (*save && *save != ' ' && *save != '\t' && *save != '\r' && *save != ',') save++;
    }
    if (nw == 0) continue;
    if (!strcmp(words[0], "input")) {
      double d[3];
      if (have_input) return lensnet__fail(err, LENSNET_ERR_ARCH, "architecture line %d: a second 'input' line", ap.line);
      if (nw != 4) return lensnet__fail(err, LENSNET_ERR_ARCH, "architecture line %d: 'input' takes channels, height and width", ap.line);
      for (i = 0; i < 3; i++) {
        char *end;
        d[i] = strtod(words[i + 1], &end);
        if (*end || d[i] < 1 || d[i] > 1e6 || d[i] != floor(d[i])) return lensnet__fail(err, LENSNET_ERR_ARCH, "architecture line %d: bad input size '%.20s'", ap.line, words[i + 1]);
      }
      m->in_c = (size_t)d[0]; m->in_h = (size_t)d[1]; m->in_w = (size_t)d[2];
      have_input = 1;
      continue;
    }
    if (!have_input) return lensnet__fail(err, LENSNET_ERR_ARCH, "architecture line %d: the first line must be 'input C H W'", ap.line);
    if (m->layer_count == cap) {
      lensnet_layer *nl = LENSNET__CAST(lensnet_layer *, lensnet__model_grow(m, m->layers, &cap, sizeof *nl));
      if (!nl) return lensnet__fail(err, LENSNET_ERR_NOMEM, "%s building the model", m->prealloc_end ? "the preallocated block is too small" : "out of memory");
      m->layers = nl;
    }
    L = &m->layers[m->layer_count];
    memset(L, 0, sizeof *L);
    L->type = LENSNET_LAYER_TYPE_COUNT;
    for (i = 0; i < LENSNET_LAYER_TYPE_COUNT; i++)
      if (!strcmp(words[0], lensnet_layer_type_name((lensnet_layer_type)i))) L->type = (lensnet_layer_type)i;
    if (L->type == LENSNET_LAYER_TYPE_COUNT) return lensnet__fail(err, LENSNET_ERR_ARCH, "architecture line %d: unknown layer '%.40s'", ap.line, words[0]);
    /* defaults, PyTorch's */
    L->stride = 0; L->groups = 1; L->bias = 1; L->orientations = 1; L->mode = LENSNET_P4_POOL_MAX;
    L->value = lensnet__kind(L->type)->value_default;
    L->momentum = 0.1f;
    L->weight = L->bias_param = L->mean_param = L->var_param = -1;
    L->mark = -1;
    for (i = 1; i < nw; i++) {
      char *eq = strchr(words[i], '=');
      lensnet_result r;
      if (!eq) return lensnet__fail(err, LENSNET_ERR_ARCH, "architecture line %d: expected key=value, got '%.40s'", ap.line, words[i]);
      *eq = 0;
      if ((r = lensnet__arch_option(&ap, L, words[i], eq + 1)) != LENSNET_OK) return r;
    }
    m->layer_count++;
  }
  if (!have_input) return lensnet__fail(err, LENSNET_ERR_ARCH, "architecture has no 'input C H W' line");
  if (m->layer_count == 0) return lensnet__fail(err, LENSNET_ERR_ARCH, "architecture has no layers");
  return LENSNET_OK;
}

/* Registers a parameter of the given shape; returns its index or -1. */
static int lensnet__add_param(lensnet_model *m, size_t *cap, const char *prefix, const char *suffix, int ndim,
                              size_t d0, size_t d1, size_t d2, size_t d3, size_t d4, int trainable) {
  lensnet_param *P;
  size_t count = 1;
  int i;
  if (m->param_count == *cap) {
    lensnet_param *np = LENSNET__CAST(lensnet_param *, lensnet__model_grow(m, m->params, cap, sizeof *np));
    if (!np) return -1;
    m->params = np;
  }
  P = &m->params[m->param_count];
  memset(P, 0, sizeof *P);
  snprintf(P->name, sizeof P->name, "%s.%s", prefix, suffix);
  P->ndim = ndim;
  P->shape[0] = d0; P->shape[1] = d1; P->shape[2] = d2; P->shape[3] = d3; P->shape[4] = d4;
  for (i = 0; i < ndim; i++) if (!lensnet__mul_ok(count, P->shape[i], &count)) return -1;
  P->count = count;
  P->offset = m->value_count;
  P->trainable = trainable;
  if (m->value_count + count < m->value_count || m->value_count + count > LENSNET_MAX_ELEMENTS) return -1;
  m->value_count += count;
  return (int)m->param_count++;
}

/* Each kind's checks, parameters and output shape. */
static lensnet_result lensnet__conv2d_resolve(lensnet__resolver *r, lensnet_layer *L) {
  size_t i = r->index, c = r->c, h = r->h, w = r->w, k = L->kernel, s = L->stride ? L->stride : 1;
  lensnet_error *err = r->err;
  if (!L->name[0]) return lensnet__fail(err, LENSNET_ERR_ARCH, "layer %lu (conv2d) needs name=", (unsigned long)i);
  if (!k || !L->out) return lensnet__fail(err, LENSNET_ERR_ARCH, "layer %lu (conv2d %s) needs out= and kernel=", (unsigned long)i, L->name);
  if (!L->groups || c % L->groups || L->out % L->groups)
    return lensnet__fail(err, LENSNET_ERR_ARCH, "layer %lu (conv2d %s): groups=%lu must divide %lu input and %lu output channels",
                         (unsigned long)i, L->name, (unsigned long)L->groups, (unsigned long)c, (unsigned long)L->out);
  if (h + 2 * L->padding < k || w + 2 * L->padding < k)
    return lensnet__fail(err, LENSNET_ERR_ARCH, "layer %lu (conv2d %s): kernel %lu is larger than the padded %lux%lu input",
                         (unsigned long)i, L->name, (unsigned long)k, (unsigned long)h, (unsigned long)w);
  L->stride = s;
  L->weight = lensnet__add_param(r->m, &r->pcap, L->name, "weight", 4, L->out, c / L->groups, k, k, 1, 1);
  if (L->bias) L->bias_param = lensnet__add_param(r->m, &r->pcap, L->name, "bias", 1, L->out, 1, 1, 1, 1, 1);
  if (L->weight < 0 || (L->bias && L->bias_param < 0)) return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "layer %lu: parameters too large", (unsigned long)i);
  r->c = L->out;
  r->h = (h + 2 * L->padding - k) / s + 1;
  r->w = (w + 2 * L->padding - k) / s + 1;
  return LENSNET_OK;
}

static lensnet_result lensnet__dense_resolve(lensnet__resolver *r, lensnet_layer *L) {
  size_t in = r->c * r->h * r->w;
  if (!L->name[0] || !L->out) return lensnet__fail(r->err, LENSNET_ERR_ARCH, "layer %lu (dense) needs name= and out=", (unsigned long)r->index);
  L->weight = lensnet__add_param(r->m, &r->pcap, L->name, "weight", 2, L->out, in, 1, 1, 1, 1);
  if (L->bias) L->bias_param = lensnet__add_param(r->m, &r->pcap, L->name, "bias", 1, L->out, 1, 1, 1, 1, 1);
  if (L->weight < 0 || (L->bias && L->bias_param < 0)) return lensnet__fail(r->err, LENSNET_ERR_TOO_LARGE, "layer %lu: parameters too large", (unsigned long)r->index);
  r->c = L->out; r->h = 1; r->w = 1;
  return LENSNET_OK;
}

static lensnet_result lensnet__pool_resolve(lensnet__resolver *r, lensnet_layer *L) {
  size_t i = r->index, h = r->h, w = r->w, k = L->kernel, s;
  const char *tn = lensnet_layer_type_name(L->type);
  if (!k) return lensnet__fail(r->err, LENSNET_ERR_ARCH, "layer %lu (%s) needs kernel=", (unsigned long)i, tn);
  s = L->stride ? L->stride : k; /* PyTorch: stride defaults to the kernel size */
  L->stride = s;
  if (2 * L->padding > k) return lensnet__fail(r->err, LENSNET_ERR_ARCH, "layer %lu (%s): padding must be at most half the kernel", (unsigned long)i, tn);
  if (h + 2 * L->padding < k || w + 2 * L->padding < k)
    return lensnet__fail(r->err, LENSNET_ERR_ARCH, "layer %lu (%s): kernel %lu is larger than the %lux%lu input", (unsigned long)i, tn,
                         (unsigned long)k, (unsigned long)h, (unsigned long)w);
  r->h = (h + 2 * L->padding - k) / s + 1; /* floor mode */
  r->w = (w + 2 * L->padding - k) / s + 1;
  return LENSNET_OK;
}

static lensnet_result lensnet__global_avgpool_resolve(lensnet__resolver *r, lensnet_layer *L) {
  (void)L;
  r->h = 1; r->w = 1;
  return LENSNET_OK;
}

static lensnet_result lensnet__flatten_resolve(lensnet__resolver *r, lensnet_layer *L) {
  (void)L;
  r->c = r->c * r->h * r->w; r->h = 1; r->w = 1;
  return LENSNET_OK;
}

static lensnet_result lensnet__batchnorm_resolve(lensnet__resolver *r, lensnet_layer *L) {
  size_t c;
  if (!L->name[0]) return lensnet__fail(r->err, LENSNET_ERR_ARCH, "layer %lu (batchnorm) needs name=", (unsigned long)r->index);
  if (!L->orientations || r->c % L->orientations)
    return lensnet__fail(r->err, LENSNET_ERR_ARCH, "layer %lu (batchnorm %s): orientations=%lu must divide its %lu channels", (unsigned long)r->index,
                         L->name, (unsigned long)L->orientations, (unsigned long)r->c);
  c = r->c / L->orientations;
  L->weight = lensnet__add_param(r->m, &r->pcap, L->name, "weight", 1, c, 1, 1, 1, 1, 1);
  L->bias_param = lensnet__add_param(r->m, &r->pcap, L->name, "bias", 1, c, 1, 1, 1, 1, 1);
  L->mean_param = lensnet__add_param(r->m, &r->pcap, L->name, "running_mean", 1, c, 1, 1, 1, 1, 0);
  L->var_param = lensnet__add_param(r->m, &r->pcap, L->name, "running_var", 1, c, 1, 1, 1, 1, 0);
  if (L->weight < 0 || L->bias_param < 0 || L->mean_param < 0 || L->var_param < 0) return lensnet__fail(r->err, LENSNET_ERR_NOMEM, "out of memory");
  if (!(L->value > 0)) return lensnet__fail(r->err, LENSNET_ERR_ARCH, "layer %lu (batchnorm %s): eps must be positive", (unsigned long)r->index, L->name);
  return LENSNET_OK;
}

static lensnet_result lensnet__dropout_resolve(lensnet__resolver *r, lensnet_layer *L) {
  if (!(L->value >= 0 && L->value < 1)) return lensnet__fail(r->err, LENSNET_ERR_ARCH, "layer %lu (dropout): p must be in [0, 1)", (unsigned long)r->index);
  return LENSNET_OK;
}

static lensnet_result lensnet__mark_resolve(lensnet__resolver *r, lensnet_layer *L) {
  size_t j;
  if (!L->name[0]) return lensnet__fail(r->err, LENSNET_ERR_ARCH, "layer %lu (mark) needs name=", (unsigned long)r->index);
  for (j = 0; j < r->index; j++)
    if (r->m->layers[j].type == LENSNET_LAYER_MARK && !strcmp(r->m->layers[j].name, L->name))
      return lensnet__fail(r->err, LENSNET_ERR_ARCH, "layer %lu: mark '%s' is defined twice", (unsigned long)r->index, L->name);
  L->mark = r->m->mark_count++;
  return LENSNET_OK;
}

static lensnet_result lensnet__add_resolve(lensnet__resolver *r, lensnet_layer *L) {
  const lensnet_model *m = r->m;
  size_t i = r->index, j;
  for (j = 0; j < i; j++)
    if (m->layers[j].type == LENSNET_LAYER_MARK && !strcmp(m->layers[j].name, L->name)) L->mark = m->layers[j].mark;
  if (L->mark < 0) return lensnet__fail(r->err, LENSNET_ERR_ARCH, "layer %lu (add): no earlier 'mark name=%s'", (unsigned long)i, L->name);
  for (j = 0; j < i; j++)
    if (m->layers[j].type == LENSNET_LAYER_MARK && m->layers[j].mark == L->mark &&
        (m->layers[j].in_c != r->c || m->layers[j].in_h != r->h || m->layers[j].in_w != r->w))
      return lensnet__fail(r->err, LENSNET_ERR_ARCH, "layer %lu (add %s): shape %lux%lux%lu differs from the marked %lux%lux%lu", (unsigned long)i, L->name,
                           (unsigned long)r->c, (unsigned long)r->h, (unsigned long)r->w,
                           (unsigned long)m->layers[j].in_c, (unsigned long)m->layers[j].in_h, (unsigned long)m->layers[j].in_w);
  return LENSNET_OK;
}

/* restore: the activation saved at the mark of the same name, its shape and all. */
static lensnet_result lensnet__restore_resolve(lensnet__resolver *r, lensnet_layer *L) {
  const lensnet_model *m = r->m;
  size_t i = r->index, j;
  for (j = 0; j < i; j++)
    if (m->layers[j].type == LENSNET_LAYER_MARK && !strcmp(m->layers[j].name, L->name)) {
      L->mark = m->layers[j].mark;
      r->c = m->layers[j].in_c; r->h = m->layers[j].in_h; r->w = m->layers[j].in_w;
    }
  if (L->mark < 0) return lensnet__fail(r->err, LENSNET_ERR_ARCH, "layer %lu (restore): no earlier 'mark name=%s'", (unsigned long)i, L->name);
  return LENSNET_OK;
}

/* p4_lift and p4_conv: the options of conv2d (groups excepted); 4 out channels, and the stored
 * weight of the p4 layers (the section "p4 group convolutions" below). */
static lensnet_result lensnet__p4_resolve(lensnet__resolver *r, lensnet_layer *L) {
  size_t i = r->index, c = r->c, h = r->h, w = r->w, k = L->kernel, s = L->stride ? L->stride : 1, out_c;
  int lift = L->type == LENSNET_LAYER_P4_LIFT;
  const char *tn = lensnet_layer_type_name(L->type);
  lensnet_error *err = r->err;
  if (!L->name[0]) return lensnet__fail(err, LENSNET_ERR_ARCH, "layer %lu (%s) needs name=", (unsigned long)i, tn);
  if (!k || !L->out) return lensnet__fail(err, LENSNET_ERR_ARCH, "layer %lu (%s %s) needs out= and kernel=", (unsigned long)i, tn, L->name);
  if (L->groups != 1) return lensnet__fail(err, LENSNET_ERR_ARCH, "layer %lu (%s %s): groups= is not an option of p4 layers", (unsigned long)i, tn, L->name);
  if (!lift && c % 4)
    return lensnet__fail(err, LENSNET_ERR_ARCH, "layer %lu (p4_conv %s): its %lu input channels are not channels of 4 orientations "
                         "(a p4_lift or p4_conv comes first)", (unsigned long)i, L->name, (unsigned long)c);
  if (h + 2 * L->padding < k || w + 2 * L->padding < k)
    return lensnet__fail(err, LENSNET_ERR_ARCH, "layer %lu (%s %s): kernel %lu is larger than the padded %lux%lu input",
                         (unsigned long)i, tn, L->name, (unsigned long)k, (unsigned long)h, (unsigned long)w);
  if (!lensnet__mul_ok(L->out, 4, &out_c)) return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "layer %lu: too many channels", (unsigned long)i);
  L->stride = s;
  if (lift) L->weight = lensnet__add_param(r->m, &r->pcap, L->name, "weight", 4, L->out, c, k, k, 1, 1);
  else L->weight = lensnet__add_param(r->m, &r->pcap, L->name, "weight", 5, L->out, c / 4, 4, k, k, 1);
  if (L->bias) L->bias_param = lensnet__add_param(r->m, &r->pcap, L->name, "bias", 1, L->out, 1, 1, 1, 1, 1);
  if (L->weight < 0 || (L->bias && L->bias_param < 0)) return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "layer %lu: parameters too large", (unsigned long)i);
  r->c = out_c;
  r->h = (h + 2 * L->padding - k) / s + 1;
  r->w = (w + 2 * L->padding - k) / s + 1;
  return LENSNET_OK;
}

static lensnet_result lensnet__p4_pool_resolve(lensnet__resolver *r, lensnet_layer *L) {
  (void)L;
  if (r->c % 4)
    return lensnet__fail(r->err, LENSNET_ERR_ARCH, "layer %lu (p4_pool): its %lu channels are not channels of 4 orientations", (unsigned long)r->index,
                         (unsigned long)r->c);
  r->c /= 4;
  return LENSNET_OK;
}

/* Walks the layers, checking shapes and registering parameters. */
static lensnet_result lensnet__model_resolve(lensnet_model *m, lensnet_error *err) {
  lensnet__resolver r;
  size_t i;
  memset(&r, 0, sizeof r);
  r.m = m; r.err = err;
  r.c = m->in_c; r.h = m->in_h; r.w = m->in_w;
  for (i = 0; i < m->layer_count; i++) {
    lensnet_layer *L = &m->layers[i];
    const lensnet__layer_kind *kind = lensnet__kind(L->type);
    size_t per_image;
    lensnet_result res;
    L->in_c = r.c; L->in_h = r.h; L->in_w = r.w;
    r.index = i;
    if (kind->resolve && (res = kind->resolve(&r, L)) != LENSNET_OK) return res;
    if (!lensnet__mul_ok(r.c, r.h, &per_image) || !lensnet__mul_ok(per_image, r.w, &per_image) || per_image == 0 ||
        per_image > LENSNET_MAX_ELEMENTS)
      return lensnet__fail(err, LENSNET_ERR_ARCH, "layer %lu (%s): output %lux%lux%lu is empty or larger than %lu values",
                           (unsigned long)i, lensnet_layer_type_name(L->type), (unsigned long)r.c, (unsigned long)r.h, (unsigned long)r.w,
                           (unsigned long)LENSNET_MAX_ELEMENTS);
    L->out_c = r.c; L->out_h = r.h; L->out_w = r.w;
  }
  m->out_features = r.c * r.h * r.w;
  /* a tensor's name is its layer's name and its role: two layers of one name would save a file
   * whose tensors cannot be told apart, which no model could load again */
  for (i = 0; i < m->param_count; i++) {
    size_t j;
    for (j = i + 1; j < m->param_count; j++)
      if (!strcmp(m->params[i].name, m->params[j].name))
        return lensnet__fail(err, LENSNET_ERR_ARCH, "two layers make a tensor named '%s': each layer's name must be its own, as it "
                             "names the layer's tensors in a weights file", m->params[i].name);
  }
  return LENSNET_OK;
}

LENSNET_API void lensnet_model_free(lensnet_model *m) {
  size_t i;
  int on_heap;
  if (!m) return;
  on_heap = m->prealloc_end == NULL; /* a preallocated model's block and values are the caller's */
  lensnet__quant_free(m);
  if (on_heap && m->arch) LENSNET_FREE(m->arch);
  if (on_heap && m->layers) LENSNET_FREE(m->layers);
  if (on_heap && m->params) LENSNET_FREE(m->params);
  if (on_heap && m->values) LENSNET_FREE(m->values);
  for (i = 0; i < m->meta_count; i++) { LENSNET_FREE(m->meta_keys[i]); LENSNET_FREE(m->meta_values[i]); }
  if (m->meta_keys) LENSNET_FREE(m->meta_keys);
  if (m->meta_values) LENSNET_FREE(m->meta_values);
  if (on_heap) LENSNET_FREE(m);
}

/* "ou66(4)", "resnet18(3,3)", "p4cnn(1,3,150,150)" -> the built-in text (bands, then optionally
 * outputs, then height and width); anything else is taken as architecture text. */
static lensnet_result lensnet__arch_expand(const char *arch, char **out, lensnet_error *err) {
  char name[16];
  int v[4] = {0, 0, 0, 0}, n = 0, consumed = 0;
  *out = NULL;
  if (strlen(arch) < 64 && sscanf(arch, "%15[a-z0-9](%n", name, &consumed) == 1 && consumed > 0) {
    const char *p = arch + consumed;
    char *buf, *end;
    while (n < 4) {
      long x = strtol(p, &end, 10);
      if (end == p) break;
      if (x < 0 || x > 1000000)
        return lensnet__fail(err, LENSNET_ERR_ARCH, "built-in architecture '%s': %ld is outside 0..1000000", arch, x);
      v[n++] = (int)x;
      p = end;
      if (*p != ',') break;
      p++;
    }
    if (*p == ')') /* blanks after the closing parenthesis (a file's last newline) are allowed */
      for (end = (char *)p + 1; *end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'; end++) {}
    if (n == 0 || n == 3 || *p != ')' || *end)
      return lensnet__fail(err, LENSNET_ERR_ARCH, "built-in architecture '%s' is not written name(bands), name(bands,outputs) or "
                           "name(bands,outputs,height,width)", arch);
    if (!(buf = LENSNET__CAST(char *, LENSNET_MALLOC(LENSNET_ARCH_TEXT_MAX)))) return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
    if (!lensnet_arch_builtin_sized(name, v[0], n >= 2 ? v[1] : lensnet__builtin_outputs(name), v[2], v[3], buf, LENSNET_ARCH_TEXT_MAX)) {
      LENSNET_FREE(buf);
      return lensnet__fail(err, LENSNET_ERR_ARCH, "built-in architecture '%s': an unknown name, or a size it cannot take (known: ou66, "
                           "ou200, ensai, resnet18, resnet34, p4cnn; written name(bands), name(bands,outputs) or "
                           "name(bands,outputs,height,width); the layers' outputs must fit LENSNET_MAX_ELEMENTS)", arch);
    }
    *out = buf;
    return LENSNET_OK;
  }
  if (strlen(arch) < 64 && strspn(arch, "abcdefghijklmnopqrstuvwxyz0123456789_-.") == strlen(arch) && arch[0])
    return lensnet__fail(err, LENSNET_ERR_ARCH, "'%s' is neither a built-in architecture (ou66, ou200, ensai, resnet18, resnet34, p4cnn; "
                         "written name(bands), e.g. ou66(4)) nor architecture text (a first line 'input C H W')", arch);
  *out = lensnet__strdup(arch);
  return *out ? LENSNET_OK : lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
}

/* The model's layers and parameter table from the architecture, without the parameter values
 * (m->values stays NULL): what a weights file must hold can be checked before anything the size
 * of the network is allocated. */
static lensnet_result lensnet__model_describe(const char *arch, lensnet_model **out, lensnet_error *err) {
  lensnet_model *m;
  lensnet_result r;
  *out = NULL;
  m = LENSNET__CAST(lensnet_model *, LENSNET_MALLOC(sizeof *m));
  if (!m) return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  memset(m, 0, sizeof *m);
  if ((r = lensnet__arch_expand(arch, &m->arch, err)) != LENSNET_OK ||
      (r = lensnet__arch_parse(m, m->arch, err)) != LENSNET_OK ||
      (r = lensnet__model_resolve(m, err)) != LENSNET_OK) {
    lensnet_model_free(m);
    return r;
  }
  *out = m;
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_model_heap_size(const char *arch, size_t *bytes, lensnet_error *err) {
  lensnet_model *m;
  lensnet_result r;
  if (bytes) *bytes = 0;
  if (!arch || !bytes) return lensnet__fail(err, LENSNET_ERR_ARG, "lensnet_model_heap_size needs the architecture text and somewhere to put the size");
  if (!strchr(arch, '\n') && !strchr(arch, ';'))
    return lensnet__fail(err, LENSNET_ERR_ARG, "lensnet_model_heap_size takes architecture text, not '%.40s' (expand a built-in name with lensnet_arch_builtin)", arch);
  if ((r = lensnet__model_describe(arch, &m, err)) != LENSNET_OK) return r;
  *bytes = LENSNET_MODEL_HEAP_BYTES(m->layer_count, m->param_count);
  lensnet_model_free(m);
  return LENSNET_OK;
}

/* The description of lensnet__model_describe, placed in the caller's block: the model, then its
 * layers, then its parameter table (each LENSNET_HEAP_ROUND-ed, as LENSNET_MODEL_HEAP_BYTES counts). */
LENSNET_API lensnet_result lensnet_model_init_preallocated(const char *arch, const float *values, size_t value_count,
                                                           void *heap, size_t heap_bytes, lensnet_model **out,
                                                           lensnet_error *err) {
  unsigned char *block = (unsigned char *)heap;
  lensnet_model *m;
  lensnet_result r;
  size_t need;
  if (out) *out = NULL;
  if (!arch || !values || !block || !out) return lensnet__fail(err, LENSNET_ERR_ARG, "lensnet_model_init_preallocated needs arch, values, a block and out");
  if ((uintptr_t)block % LENSNET_HEAP_ALIGN) return lensnet__fail(err, LENSNET_ERR_ARG, "the preallocated block must be aligned to %d bytes", LENSNET_HEAP_ALIGN);
  if (!strchr(arch, '\n') && !strchr(arch, ';'))
    return lensnet__fail(err, LENSNET_ERR_ARG, "lensnet_model_init_preallocated takes architecture text, not '%.40s' (expand a built-in name with lensnet_arch_builtin)", arch);
  if (heap_bytes < LENSNET_HEAP_ROUND(sizeof *m))
    return lensnet__fail(err, LENSNET_ERR_NOMEM, "the preallocated block of %lu bytes is too small (lensnet_model_heap_size says what the model needs)", (unsigned long)heap_bytes);
  m = (lensnet_model *)(void *)block;
  memset(m, 0, sizeof *m);
  m->arch = (char *)(uintptr_t)arch; /* kept by pointer, never written */
  m->prealloc_next = block + LENSNET_HEAP_ROUND(sizeof *m);
  m->prealloc_end = block + heap_bytes;
  if ((r = lensnet__arch_parse(m, arch, err)) != LENSNET_OK) return r;
  m->prealloc_next = (unsigned char *)m->layers + LENSNET_HEAP_ROUND(m->layer_count * sizeof *m->layers);
  if (m->prealloc_next > m->prealloc_end) m->prealloc_next = m->prealloc_end;
  if ((r = lensnet__model_resolve(m, err)) != LENSNET_OK) {
    if ((r == LENSNET_ERR_TOO_LARGE || r == LENSNET_ERR_NOMEM) &&
        (size_t)(m->prealloc_end - m->prealloc_next) < (m->param_count + 1) * sizeof *m->params)
      r = lensnet__fail(err, LENSNET_ERR_NOMEM, "the preallocated block of %lu bytes is too small for the parameter table", (unsigned long)heap_bytes);
    return r;
  }
  need = LENSNET_MODEL_HEAP_BYTES(m->layer_count, m->param_count);
  if (heap_bytes < need)
    return lensnet__fail(err, LENSNET_ERR_NOMEM, "the preallocated block of %lu bytes is too small: the model needs %lu", (unsigned long)heap_bytes, (unsigned long)need);
  if (value_count != m->value_count)
    return lensnet__fail(err, LENSNET_ERR_WEIGHTS, "the architecture has %lu parameter values but the array holds %lu", (unsigned long)m->value_count, (unsigned long)value_count);
  m->values = (float *)(uintptr_t)values; /* in place; read-only for inference */
  m->prealloc_next = block + need;
  *out = m;
  return LENSNET_OK;
}

/* The parameter values of a described model, zeroed. */
static lensnet_result lensnet__model_alloc_values(lensnet_model *m, lensnet_error *err) {
  size_t bytes;
  if (!lensnet__mul_ok(m->value_count, sizeof(float), &bytes) ||
      (m->values = LENSNET__CAST(float *, LENSNET_MALLOC(bytes ? bytes : 1))) == NULL)
    return lensnet__fail(err, LENSNET_ERR_NOMEM, "cannot allocate %lu parameters", (unsigned long)m->value_count);
  memset(m->values, 0, bytes);
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_model_create(const char *arch, lensnet_model **out, lensnet_error *err) {
  lensnet_model *m;
  lensnet_result r;
  if (!arch || !out) return lensnet__fail(err, LENSNET_ERR_ARG, "lensnet_model_create needs the architecture text and somewhere to put the model");
  *out = NULL;
  if ((r = lensnet__model_describe(arch, &m, err)) != LENSNET_OK) return r;
  if ((r = lensnet__model_alloc_values(m, err)) != LENSNET_OK) {
    lensnet_model_free(m);
    return r;
  }
  *out = m;
  return LENSNET_OK;
}

/* Convolutions and dense layers: kaiming_uniform(a = sqrt 5) gives bound 1/sqrt(fan_in), the
 * same as the bias's. */
static void lensnet__fan_in_init(lensnet_model *m, const lensnet_layer *L, lensnet_rng *rng) {
  const lensnet_param *W = &m->params[L->weight];
  float bound = 1.0f / sqrtf((float)(W->count / W->shape[0]));
  size_t k;
  for (k = 0; k < W->count; k++) m->values[W->offset + k] = (2.0f * lensnet_rng_uniform(rng) - 1.0f) * bound;
  if (L->bias_param >= 0) {
    const lensnet_param *B = &m->params[L->bias_param];
    for (k = 0; k < B->count; k++) m->values[B->offset + k] = (2.0f * lensnet_rng_uniform(rng) - 1.0f) * bound;
  }
}

static void lensnet__batchnorm_init(lensnet_model *m, const lensnet_layer *L, lensnet_rng *rng) {
  size_t k;
  (void)rng;
  for (k = 0; k < m->params[L->weight].count; k++) {
    m->values[m->params[L->weight].offset + k] = 1.0f;
    m->values[m->params[L->bias_param].offset + k] = 0.0f;
    m->values[m->params[L->mean_param].offset + k] = 0.0f;
    m->values[m->params[L->var_param].offset + k] = 1.0f;
  }
}

LENSNET_API void lensnet_model_init(lensnet_model *m, uint64_t seed) {
  lensnet_rng rng;
  size_t i;
  if (!m || m->prealloc_end) return; /* a preallocated model's values are the caller's, maybe in flash: never written */
  lensnet_rng_seed(&rng, seed);
  for (i = 0; i < m->layer_count; i++) {
    const lensnet__layer_kind *kind = lensnet__kind(m->layers[i].type);
    if (kind->init) kind->init(m, &m->layers[i], &rng);
  }
}

LENSNET_API void lensnet_model_init_he(lensnet_model *m, uint64_t seed) {
  lensnet_rng rng;
  size_t i, k;
  lensnet_model_init(m, seed);
  lensnet_rng_seed(&rng, seed);
  for (i = 0; i < m->layer_count; i++) {
    const lensnet_layer *L = &m->layers[i];
    const lensnet_param *W;
    float bound;
    if (lensnet__kind(L->type)->init != lensnet__fan_in_init) continue; /* convolutions, p4 layers and dense layers */
    W = &m->params[L->weight];
    bound = sqrtf(6.0f / (float)(W->count / W->shape[0]));
    for (k = 0; k < W->count; k++) m->values[W->offset + k] = (2.0f * lensnet_rng_uniform(&rng) - 1.0f) * bound;
    if (L->bias_param >= 0)
      for (k = 0; k < m->params[L->bias_param].count; k++) m->values[m->params[L->bias_param].offset + k] = 0.0f;
  }
}

LENSNET_API const lensnet_param *lensnet_model_param(const lensnet_model *m, const char *name) {
  size_t i;
  for (i = 0; i < m->param_count; i++)
    if (!strcmp(m->params[i].name, name)) return &m->params[i];
  return NULL;
}

LENSNET_API size_t lensnet_model_parameter_count(const lensnet_model *m) {
  size_t i, n = 0;
  for (i = 0; i < m->param_count; i++) if (m->params[i].trainable) n += m->params[i].count;
  return n;
}

LENSNET_API const char *lensnet_model_meta(const lensnet_model *m, const char *key) {
  size_t i;
  if (!m || !key) return NULL;
  for (i = 0; i < m->meta_count; i++)
    if (!strcmp(m->meta_keys[i], key)) return m->meta_values[i];
  return NULL;
}

LENSNET_API lensnet_result lensnet_model_set_meta(lensnet_model *m, const char *key, const char *value) {
  /* the same bookkeeping as safetensors metadata */
  lensnet_safetensors tmp;
  lensnet_result r;
  if (!m || !key) return LENSNET_ERR_ARG; /* value NULL removes the key */
  memset(&tmp, 0, sizeof tmp);
  tmp.meta_count = m->meta_count; tmp.meta_keys = m->meta_keys; tmp.meta_values = m->meta_values;
  r = lensnet_safetensors_set_meta(&tmp, key, value);
  m->meta_count = tmp.meta_count; m->meta_keys = tmp.meta_keys; m->meta_values = tmp.meta_values;
  return r;
}

static int lensnet__ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

static const lensnet_named_tensor *lensnet__safetensors_named(const lensnet_safetensors *st, const char *name) {
  size_t i;
  for (i = 0; i < st->count; i++)
    if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
  return NULL;
}

/* The int8 layers of a file with metadata quantized=int8: for each layer with NAME.input_scale,
 * NAME.weight as I8 in [-127, 127] and NAME.weight_scale [out], all scales positive and finite.
 * A file without that metadata is a float model (its scale tensors, if any, are then unused and
 * refused as such). */
static lensnet_result lensnet__quant_from_safetensors(lensnet_model *m, const lensnet_safetensors *st, lensnet_error *err) {
  const char *kind = lensnet_safetensors_meta(st, "quantized");
  size_t l, k;
  char name[128];
  if (!kind) return LENSNET_OK;
  if (strcmp(kind, "int8") != 0) return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "the weights say quantized=%.16s; only int8 is supported", kind);
  for (l = 0; l < m->layer_count; l++) {
    const lensnet_layer *L = &m->layers[l];
    const lensnet_named_tensor *w, *ws, *xs, *zp;
    if (L->weight < 0) continue;
    w = lensnet__safetensors_named(st, m->params[L->weight].name);
    snprintf(name, sizeof name, "%s.input_scale", L->name);
    xs = lensnet__safetensors_named(st, name);
    if (!xs) {
      if (!strcmp(w->dtype, "I8")) return lensnet__fail(err, LENSNET_ERR_WEIGHTS, "'%s' is int8 but '%s' is missing", w->name, name);
      continue;
    }
    if (!lensnet__layer_quantizable(L)) return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "layer '%s' cannot run in int8 (only conv2d without groups and dense can)", L->name);
    if (strcmp(w->dtype, "I8")) return lensnet__fail(err, LENSNET_ERR_WEIGHTS, "'%s' is %s but a quantised layer's weight must be I8", w->name, w->dtype);
    if (lensnet_tensor_count(&xs->tensor) != 1 || !(xs->tensor.data[0] > 0.0f && xs->tensor.data[0] <= FLT_MAX))
      return lensnet__fail(err, LENSNET_ERR_WEIGHTS, "'%s' must hold one positive finite scale", name);
    snprintf(name, sizeof name, "%s.input_zero_point", L->name);
    zp = lensnet__safetensors_named(st, name);
    if (!zp || lensnet_tensor_count(&zp->tensor) != 1 || (zp->tensor.data[0] != 0.0f && zp->tensor.data[0] != 128.0f))
      return lensnet__fail(err, LENSNET_ERR_WEIGHTS, "'%s' is missing or not one value of 0 or 128", name);
    snprintf(name, sizeof name, "%s.weight_scale", L->name);
    ws = lensnet__safetensors_named(st, name);
    if (!ws || ws->tensor.ndim != 1 || ws->tensor.shape[0] != L->out_c)
      return lensnet__fail(err, LENSNET_ERR_WEIGHTS, "'%s' is missing or not of shape [%lu]", name, (unsigned long)L->out_c);
    for (k = 0; k < L->out_c; k++)
      if (!(ws->tensor.data[k] > 0.0f && ws->tensor.data[k] <= FLT_MAX)) return lensnet__fail(err, LENSNET_ERR_WEIGHTS, "'%s' holds a scale that is not positive and finite", name);
    for (k = 0; k < m->params[L->weight].count; k++)
      if (!(w->tensor.data[k] >= -127.0f && w->tensor.data[k] <= 127.0f && w->tensor.data[k] == floorf(w->tensor.data[k])))
        return lensnet__fail(err, LENSNET_ERR_WEIGHTS, "'%s' holds %g; symmetric int8 weights are integers in [-127, 127]", w->name,
                             (double)w->tensor.data[k]);
    if (lensnet__quant_set_layer(m, l, w->tensor.data, ws->tensor.data, xs->tensor.data[0], (int)zp->tensor.data[0]) != LENSNET_OK)
      return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  }
  if (!m->quant) return lensnet__fail(err, LENSNET_ERR_WEIGHTS, "the weights say quantized=int8 but no layer has an input_scale");
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_model_from_safetensors(const lensnet_safetensors *st, lensnet_model **out, lensnet_error *err) {
  const char *arch = lensnet_safetensors_meta(st, "arch"), *bands_text = lensnet_safetensors_meta(st, "bands");
  char builtin[64];
  lensnet_model *m;
  lensnet_result r;
  size_t i;
  *out = NULL;
  if (!arch) return lensnet__fail(err, LENSNET_ERR_ARCH, "the weights carry no 'arch' metadata; save them with lensnet_model_save or tools/torch2safetensors.py");
  if (!strchr(arch, '\n') && !strchr(arch, ';') && !strchr(arch, '(')) {
    /* a built-in name: the band count comes from "bands" or from the first layer's weight (ou66's
     * layer.0, the ResNets' conv1, p4cnn's lift); the head from fc.weight (ResNets, p4cnn); the
     * input size from "input_size" (the built-ins whose size is free) */
    static const char *const first[3] = {"layer.0.weight", "conv1.weight", "lift.weight"};
    long bands = bands_text ? strtol(bands_text, NULL, 10) : 0, size = 0, outputs = 0;
    const lensnet_tensor *fc = lensnet_safetensors_find(st, "fc.weight");
    const char *size_text = lensnet_safetensors_meta(st, "input_size");
    for (i = 0; i < 3 && bands <= 0; i++) {
      const lensnet_tensor *w0 = lensnet_safetensors_find(st, first[i]);
      if (w0 && w0->ndim == 4) bands = (long)w0->shape[1];
    }
    if (bands <= 0 || bands > 1024) return lensnet__fail(err, LENSNET_ERR_ARCH, "built-in architecture '%.20s' needs a 'bands' metadata entry", arch);
    if (fc && fc->ndim == 2 && fc->shape[0] <= 65536) outputs = (long)fc->shape[0];
    if (size_text) size = strtol(size_text, NULL, 10);
    if (size > 0 && size <= 65536)
      snprintf(builtin, sizeof builtin, "%.20s(%ld,%ld,%ld,%ld)", arch, bands, outputs > 0 ? outputs : (long)lensnet__builtin_outputs(arch), size, size);
    else if (outputs > 0) snprintf(builtin, sizeof builtin, "%.20s(%ld,%ld)", arch, bands, outputs);
    else snprintf(builtin, sizeof builtin, "%.20s(%ld)", arch, bands);
    arch = builtin;
  }
  /* Every parameter is matched against a tensor of the file before the values are allocated, so
   * a file's claim of a huge network costs no more memory than the tensors it actually holds. */
  if ((r = lensnet__model_describe(arch, &m, err)) != LENSNET_OK) return r;
  for (i = 0; i < m->param_count; i++) {
    const lensnet_param *P = &m->params[i];
    const lensnet_tensor *t = lensnet_safetensors_find(st, P->name);
    int d, same;
    if (!t) {
      lensnet__fail(err, LENSNET_ERR_WEIGHTS, "weights lack '%s', which the architecture needs", P->name);
      lensnet_model_free(m);
      return LENSNET_ERR_WEIGHTS;
    }
    same = t->ndim == P->ndim;
    for (d = 0; same && d < P->ndim; d++) same = t->shape[d] == P->shape[d];
    if (!same) {
      char want[96], got[96];
      size_t wl = 0, gl = 0;
      for (d = 0; d < P->ndim; d++) lensnet__appendf(want, sizeof want, &wl, "%s%lu", d ? "x" : "", (unsigned long)P->shape[d]);
      if (!P->ndim) want[0] = 0;
      got[0] = 0;
      for (d = 0; d < t->ndim; d++) lensnet__appendf(got, sizeof got, &gl, "%s%lu", d ? "x" : "", (unsigned long)t->shape[d]);
      lensnet__fail(err, LENSNET_ERR_WEIGHTS, "'%s' has shape %s in the weights but the architecture needs %s", P->name, got, want);
      lensnet_model_free(m);
      return LENSNET_ERR_WEIGHTS;
    }
  }
  if ((r = lensnet__model_alloc_values(m, err)) != LENSNET_OK) {
    lensnet_model_free(m);
    return r;
  }
  for (i = 0; i < m->param_count; i++) {
    const lensnet_param *P = &m->params[i];
    size_t first, bad;
    memcpy(m->values + P->offset, lensnet_safetensors_find(st, P->name)->data, P->count * sizeof(float));
    /* a NaN or infinite parameter would make every output NaN: damaged weights, or a diverged run */
    if ((bad = lensnet_count_nonfinite(m->values + P->offset, P->count, &first)) != 0) {
      lensnet__fail(err, LENSNET_ERR_WEIGHTS, "'%s' holds %lu non-finite value%s (NaN or infinite; the first at flat index %lu, %g): the weights "
                    "are damaged or come from a run that diverged", P->name, (unsigned long)bad, bad == 1 ? "" : "s", (unsigned long)first,
                    (double)m->values[P->offset + first]);
      lensnet_model_free(m);
      return LENSNET_ERR_WEIGHTS;
    }
  }
  if ((r = lensnet__quant_from_safetensors(m, st, err)) != LENSNET_OK) {
    lensnet_model_free(m);
    return r;
  }
  for (i = 0; i < st->count; i++)
    if (!lensnet_model_param(m, st->tensors[i].name) && !lensnet__ends_with(st->tensors[i].name, ".num_batches_tracked") &&
        !(m->quant && (lensnet__ends_with(st->tensors[i].name, ".weight_scale") || lensnet__ends_with(st->tensors[i].name, ".input_scale") ||
                       lensnet__ends_with(st->tensors[i].name, ".input_zero_point"))) &&
        strncmp(st->tensors[i].name, "optimizer.", 10) != 0 &&
        strncmp(st->tensors[i].name, "adapt.", 6) != 0) { /* checkpoints of training (and adaptation) carry optimiser state (and
                                                          * the other networks) */
      lensnet__fail(err, LENSNET_ERR_WEIGHTS, "the weights hold '%s', which the architecture does not use", st->tensors[i].name);
      lensnet_model_free(m);
      return LENSNET_ERR_WEIGHTS;
    }
  for (i = 0; i < st->meta_count; i++)
    if (strcmp(st->meta_keys[i], "arch") && lensnet_model_set_meta(m, st->meta_keys[i], st->meta_values[i]) != LENSNET_OK) {
      lensnet_model_free(m);
      return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
    }
  *out = m;
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_model_load(const char *path, lensnet_model **out, lensnet_error *err) {
  lensnet_safetensors st;
  lensnet_result r;
  if (!out) return lensnet__fail(err, LENSNET_ERR_ARG, "lensnet_model_load needs somewhere to put the model");
  *out = NULL;
  if (!path) return lensnet__fail(err, LENSNET_ERR_ARG, "lensnet_model_load: no file name given (the path is NULL)");
  if ((r = lensnet_safetensors_read(path, &st, err)) != LENSNET_OK) return r;
  r = lensnet_model_from_safetensors(&st, out, err);
  lensnet_safetensors_free(&st);
  if (r != LENSNET_OK) lensnet__prefix_path(err, path);
  return r;
}

/* An int8 layer as safetensors: its weight (already added) becomes I8, and the scales follow. */
static lensnet_result lensnet__quant_to_safetensors(const lensnet_model *m, size_t l, lensnet_safetensors *st) {
  const lensnet_layer *L = &m->layers[l];
  const lensnet_quant_layer *Q = &m->quant[l];
  lensnet_named_tensor *w = (lensnet_named_tensor *)(uintptr_t)lensnet__safetensors_named(st, m->params[L->weight].name);
  lensnet_tensor t;
  char name[128];
  size_t k, n = m->params[L->weight].count;
  float zero_point;
  lensnet_result r;
  for (k = 0; k < n; k++) w->tensor.data[k] = (float)Q->weight[k];
  memcpy(w->dtype, "I8", 3);
  memset(&t, 0, sizeof t);
  t.ndim = 1; t.shape[0] = L->out_c; t.data = Q->weight_scale;
  snprintf(name, sizeof name, "%s.weight_scale", L->name);
  if ((r = lensnet_safetensors_add(st, name, &t)) != LENSNET_OK) return r;
  t.shape[0] = 1; t.data = (float *)(uintptr_t)&Q->input_scale;
  snprintf(name, sizeof name, "%s.input_scale", L->name);
  if ((r = lensnet_safetensors_add(st, name, &t)) != LENSNET_OK) return r;
  zero_point = (float)Q->input_zero_point;
  t.data = &zero_point;
  snprintf(name, sizeof name, "%s.input_zero_point", L->name);
  return lensnet_safetensors_add(st, name, &t);
}

/* The model as safetensors (copies): metadata with the architecture text as "arch", then every
 * parameter (int8 layers: I8 weights and their scales). Returns LENSNET_ERR_NOMEM (st freed) or LENSNET_OK. */
static lensnet_result lensnet__model_to_safetensors(const lensnet_model *m, lensnet_safetensors *st) {
  lensnet_result r = LENSNET_OK;
  size_t i;
  memset(st, 0, sizeof *st);
  for (i = 0; i < m->meta_count && r == LENSNET_OK; i++)
    if (strcmp(m->meta_keys[i], "arch") && strcmp(m->meta_keys[i], "bands")) r = lensnet_safetensors_set_meta(st, m->meta_keys[i], m->meta_values[i]);
  if (r == LENSNET_OK) r = lensnet_safetensors_set_meta(st, "arch", m->arch);
  for (i = 0; i < m->param_count && r == LENSNET_OK; i++) {
    lensnet_tensor t;
    const lensnet_param *P = &m->params[i];
    memset(&t, 0, sizeof t);
    t.ndim = P->ndim;
    memcpy(t.shape, P->shape, sizeof P->shape);
    t.data = m->values + P->offset;
    r = lensnet__safetensors_add_view(st, P->name, &t); /* the model's values, not a copy */
  }
  for (i = 0; m->quant && i < m->layer_count && r == LENSNET_OK; i++)
    if (m->quant[i].weight) r = lensnet__quant_to_safetensors(m, i, st);
  if (r != LENSNET_OK) lensnet_safetensors_free(st);
  return r;
}

LENSNET_API lensnet_result lensnet_model_save(const lensnet_model *m, const char *path, lensnet_error *err) {
  lensnet_safetensors st;
  lensnet_result r;
  if (!m) return lensnet__fail(err, LENSNET_ERR_ARG, "no model to save (NULL)");
  if (!path) return lensnet__fail(err, LENSNET_ERR_ARG, "no file name given (the path is NULL)");
  r = lensnet__model_to_safetensors(m, &st);
  if (r != LENSNET_OK) return lensnet__fail(err, r, "out of memory saving %s", path);
  r = lensnet_safetensors_write(path, &st, err);
  lensnet_safetensors_free(&st);
  return r;
}

/* ---- inference ----------------------------------------------------------------------------- */

/* Dense layer y = W x + b, one fixed-order dot product per output (eight running sums), so an
 * image's scores do not depend on the batch it came in or on how a batch is split over threads.
 * Dense layers are a sliver of a CNN's work, so a GEMM would buy nothing here. */
LENSNET__VECTORIZE static void lensnet__dense_forward(const lensnet_layer *L, size_t batch, size_t in_n, const float *x,
                                                      const float *W, const float *bias, float *y) {
  size_t b, o, i, j;
  for (b = 0; b < batch; b++)
    for (o = 0; o < L->out; o++) {
      const float *w = W + o * in_n, *v = x + b * in_n;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (i = 0; i + 8 <= in_n; i += 8)
        for (j = 0; j < 8; j++) acc[j] += w[i + j] * v[i + j];
      for (; i < in_n; i++) acc[i % 8] += w[i] * v[i];
      y[b * L->out + o] = (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + (bias ? bias[o] : 0.0f);
    }
}

static lensnet__conv_geom lensnet__layer_geom(const lensnet_layer *L, size_t n) {
  lensnet__conv_geom g;
  memset(&g, 0, sizeof g);
  g.n = n; g.cin = L->in_c; g.h = L->in_h; g.w = L->in_w;
  g.cout = L->out_c; g.kh = g.kw = L->kernel; g.stride = L->stride; g.pad = L->padding; g.groups = L->groups;
  g.oh = L->out_h; g.ow = L->out_w;
  return g;
}

/* Floats of the weight a convolution runs with, [out_c, in_c / groups, k, k]: conv2d's own
 * weight; the expanded weight of a p4 layer (four times what it stores). */
static size_t lensnet__conv_weight_floats(const lensnet_layer *L) {
  return L->out_c * (L->in_c / L->groups) * L->kernel * L->kernel;
}

static size_t lensnet__layer_scratch(const lensnet_layer *L, size_t batch) {
  const lensnet__layer_kind *kind = lensnet__kind(L->type);
  return kind->scratch ? kind->scratch(L, batch, 0) : 0;
}

/* Offset, in per-image floats, of a mark's saved activation (and of its gradient in training). */
static size_t lensnet__mark_offset(const lensnet_model *m, int mark) {
  size_t j, off = 0;
  for (j = 0; j < m->layer_count; j++)
    if (lensnet__kind(m->layers[j].type)->flags & LENSNET__KIND_SAVES) {
      if (m->layers[j].mark == mark) break;
      off += m->layers[j].in_c * m->layers[j].in_h * m->layers[j].in_w;
    }
  return off;
}

/* Layout of the forward workspace: two ping-pong activation buffers, the convolution scratch,
 * then one buffer per mark. Returns 0 on overflow. */
/* Inference pools a float conv2d's output on the way (lensnet__conv2d_forward_prepacked) when a
 * ReLU and a 2x2 stride-2 max pool follow it and its rows are at least 64 wide, where its output
 * would leave the caches before the pool read it back (OU-200's first: 7.7 MB). The floats of
 * band that needs beside the convolution's scratch; 0 when layer i is not pooled so. */
static size_t lensnet__conv_pool_band_floats(const lensnet_model *m, size_t i) {
  const lensnet_layer *L = &m->layers[i], *P;
  if (L->type != LENSNET_LAYER_CONV2D || (m->quant && m->quant[i].weight) || i + 2 >= m->layer_count || L->out_w < 64) return 0;
  P = &m->layers[i + 2];
  if (m->layers[i + 1].type != LENSNET_LAYER_RELU || P->type != LENSNET_LAYER_MAXPOOL || P->kernel != 2 || P->stride != 2 ||
      P->padding != 0 || P->out_h == 0 || P->out_w == 0)
    return 0;
  return L->out_c / L->groups * 2 * lensnet__pool_band_rows(L->out_w) * L->out_w + LENSNET__ALIGN_SLACK;
}

/* Layer i of m takes Winograd's path: a float conv2d that lensnet__wino_ok accepts; in a trainer
 * (desc.winograd), not one that pools on the way (whose pool keeps its winners for the backward),
 * while lensnet_model_pack_winograd pools such a layer in Winograd's output transform. */
/* The Winograd scratch of layer i in an AVX-512 build (0 when the layer does not take that path). */
static size_t lensnet__wino_layer_scratch(const lensnet_model *m, size_t i) {
#ifdef LENSNET__HAVE_AVX512
  lensnet__conv_geom g;
  if (m->layers[i].type != LENSNET_LAYER_CONV2D || (m->quant && m->quant[i].weight)) return 0;
  g = lensnet__layer_geom(&m->layers[i], 1);
  return lensnet__wino_ok(&g) ? lensnet__wino_scratch_floats(&g) : 0;
#else
  (void)m; (void)i;
  return 0;
#endif
}

LENSNET__MAYBE_UNUSED static int lensnet__wino_layer(const lensnet_model *m, size_t i, int training) {
#ifdef LENSNET__HAVE_AVX512
  lensnet__conv_geom g;
  if (m->layers[i].type != LENSNET_LAYER_CONV2D || (m->quant && m->quant[i].weight) || (training && lensnet__conv_pool_band_floats(m, i)))
    return 0;
  g = lensnet__layer_geom(&m->layers[i], 1);
  return lensnet__wino_ok(&g);
#else
  (void)m; (void)i; (void)training;
  return 0;
#endif
}

static size_t lensnet__forward_layout_for(const lensnet_model *m, size_t batch, size_t *act, size_t *scratch, size_t *mark, int wino) {
  size_t i, a = m->in_c * m->in_h * m->in_w, s = 0, mk = 0, total;
  for (i = 0; i < m->layer_count; i++) {
    const lensnet_layer *L = &m->layers[i];
    size_t o = L->out_c * L->out_h * L->out_w, ls = lensnet__layer_scratch(L, batch) + lensnet__conv_pool_band_floats(m, i);
    if (m->quant && m->quant[i].weight && lensnet__quant_scratch_floats(L) > ls) ls = lensnet__quant_scratch_floats(L);
    if (wino && lensnet__wino_layer_scratch(m, i) > ls) ls = lensnet__wino_layer_scratch(m, i); /* lensnet_model_pack_winograd's path */
    if (o > a) a = o;
    if (ls > s) s = ls;
    if (lensnet__kind(L->type)->flags & LENSNET__KIND_SAVES) mk += L->in_c * L->in_h * L->in_w;
  }
  if (!lensnet__mul_ok(a, batch, act) || !lensnet__mul_ok(mk, batch, mark)) return 0;
  *scratch = s;
  total = 2 * *act + s + *mark;
  if (total < *act) return 0;
  return total;
}

static size_t lensnet__forward_layout(const lensnet_model *m, size_t batch, size_t *act, size_t *scratch, size_t *mark) {
#ifdef LENSNET__HAVE_AVX512
  return lensnet__forward_layout_for(m, batch, act, scratch, mark, 1);
#else
  return lensnet__forward_layout_for(m, batch, act, scratch, mark, 0);
#endif
}

LENSNET_API size_t lensnet_model_workspace_floats(const lensnet_model *m, size_t batch) {
  size_t a, s, k;
  if (!m) return 0;
  return lensnet__forward_layout(m, batch, &a, &s, &k);
}

LENSNET_API size_t lensnet_model_workspace_floats_target(const lensnet_model *m, size_t batch, int x86) {
  size_t a, s, k;
  if (!m) return 0;
  return lensnet__forward_layout_for(m, batch, &a, &s, &k, x86 != 0);
}

/* max that keeps a NaN, as PyTorch's max pooling does */
static float lensnet__max_nan(float a, float b) { return (a > b || a != a) ? a : b; }

#ifdef LENSNET__HAVE_AVX512
/* One pooled row by AVX-512, 16 outputs a step: even and odd columns of both input rows split by
 * two-source permutes, then max_nan(max_nan(r0 even, r0 odd), max_nan(r1 even, r1 odd)) with
 * max_nan(a, b) = (a > b || a is NaN) ? a : b, the scalar definition lane by lane, so the result
 * (the first NaN among the four, in that order, when there is one) is the same bit for bit
 * (lensnet__avx512_max_nan, with the Winograd code). */
LENSNET__INLINE LENSNET__TARGET_AVX512 void lensnet__maxpool_argmax16_avx512(__m512 ae, __m512 ao, __m512 be, __m512 m,
                                                                           unsigned char *arg, __mmask16 wn);
/* arg: NULL, or where the windows' bytes go (lensnet__maxpool2x2_argmax's), from the same loads. */
LENSNET__TARGET_AVX512 static void lensnet__maxpool_row_avx512(const float *r0, const float *r1, float *o, unsigned char *arg, size_t ow) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  size_t x;
  for (x = 0; x < ow; x += 16) {
    size_t n = ow - x < 16 ? ow - x : 16; /* outputs this step; 2n inputs of each row */
    __mmask16 lo = lensnet__avx512_first_lanes(2 * n), hi = lensnet__avx512_first_lanes(2 * n > 16 ? 2 * n - 16 : 0);
    __m512 a0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * x), a1 = _mm512_maskz_loadu_ps(hi, r0 + 2 * x + 16);
    __m512 b0 = _mm512_maskz_loadu_ps(lo, r1 + 2 * x), b1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * x + 16);
    __m512 ae = _mm512_permutex2var_ps(a0, even, a1), ao = _mm512_permutex2var_ps(a0, odd, a1);
    __m512 be = _mm512_permutex2var_ps(b0, even, b1), bo = _mm512_permutex2var_ps(b0, odd, b1), v;
    if (_mm512_cmp_ps_mask(ae, ao, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(be, bo, _CMP_UNORD_Q))
      v = lensnet__avx512_max_nan(lensnet__avx512_max_nan(ae, ao), lensnet__avx512_max_nan(be, bo));
    else /* no NaN among the inputs: max_nan(a, b) is a > b ? a : b, which is what vmaxps computes */
      v = _mm512_maskz_max_ps((__mmask16)0xFFFF, _mm512_maskz_max_ps((__mmask16)0xFFFF, ae, ao),
                              _mm512_maskz_max_ps((__mmask16)0xFFFF, be, bo)); /* the maskz forms: see the ReLU store */
    _mm512_mask_storeu_ps(o + x, lensnet__avx512_first_lanes(n), v);
    if (arg) lensnet__maxpool_argmax16_avx512(ae, ao, be, v, arg + x, lensnet__avx512_first_lanes(n));
  }
}
#endif

#ifdef LENSNET__HAVE_AVX2
/* The same by AVX2, 8 outputs a step (shuffle within 128-bit lanes, then the 64-bit quarters
 * put in order); a tail of fewer than 8 is left to the scalar loop. Returns the outputs written. */
LENSNET__INLINE LENSNET__TARGET_AVX2 __m256 lensnet__avx2_max_nan(__m256 a, __m256 b) {
  __m256 take_a = _mm256_or_ps(_mm256_cmp_ps(a, b, _CMP_GT_OQ), _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
  return _mm256_blendv_ps(b, a, take_a);
}

LENSNET__TARGET_AVX2 static size_t lensnet__maxpool_row_avx2(const float *r0, const float *r1, float *o, size_t ow) {
  size_t x;
  for (x = 0; x + 8 <= ow; x += 8) {
    __m256 a0 = _mm256_loadu_ps(r0 + 2 * x), a1 = _mm256_loadu_ps(r0 + 2 * x + 8);
    __m256 b0 = _mm256_loadu_ps(r1 + 2 * x), b1 = _mm256_loadu_ps(r1 + 2 * x + 8);
    __m256 ae = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a0, a1, 0x88)), 0xD8));
    __m256 ao = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a0, a1, 0xDD)), 0xD8));
    __m256 be = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(b0, b1, 0x88)), 0xD8));
    __m256 bo = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(b0, b1, 0xDD)), 0xD8));
    _mm256_storeu_ps(o + x, lensnet__avx2_max_nan(lensnet__avx2_max_nan(ae, ao), lensnet__avx2_max_nan(be, bo)));
  }
  return x;
}
#endif

/* The common 2x2, stride 2, unpadded max pool: a row at a time by the widest vector path, else
 * written so compilers vectorise it; every path gives the scalar loop's result bit for bit. */
LENSNET__VECTORIZE static void lensnet__maxpool2x2(const lensnet_layer *L, size_t planes, const float *in, float *out) {
  size_t plane, y, x, ow = L->out_w, iw = L->in_w;
  lensnet_simd simd = lensnet_simd_best();
  (void)simd;
  for (plane = 0; plane < planes; plane++) {
    const float *src = in + plane * L->in_h * iw;
    float *dst = out + plane * L->out_h * ow;
    for (y = 0; y < L->out_h; y++) {
      const float *r0 = src + 2 * y * iw, *r1 = r0 + iw;
      float *o = dst + y * ow, pair[2];
      size_t done = 0;
#ifdef LENSNET__HAVE_AVX512
      if (simd == LENSNET_SIMD_AVX512) { lensnet__maxpool_row_avx512(r0, r1, o, NULL, ow); continue; }
#endif
#ifdef LENSNET__HAVE_AVX2
      if (simd == LENSNET_SIMD_AVX2) done = lensnet__maxpool_row_avx2(r0, r1, o, ow);
#endif
      for (x = done; x < ow; x++) {
        /* max without a NaN test in the hot path; a NaN found afterwards is put back */
        float a = r0[2 * x] > r0[2 * x + 1] ? r0[2 * x] : r0[2 * x + 1];
        float b = r1[2 * x] > r1[2 * x + 1] ? r1[2 * x] : r1[2 * x + 1];
        o[x] = a > b ? a : b;
      }
      for (x = done; x < ow; x++) /* a NaN among the four makes the sum NaN */
        if ((r0[2 * x] + r0[2 * x + 1]) + (r1[2 * x] + r1[2 * x + 1]) != (r0[2 * x] + r0[2 * x + 1]) + (r1[2 * x] + r1[2 * x + 1])) {
          pair[0] = lensnet__max_nan(r0[2 * x], r0[2 * x + 1]);
          pair[1] = lensnet__max_nan(r1[2 * x], r1[2 * x + 1]);
          o[x] = lensnet__max_nan(pair[0], pair[1]);
        }
    }
  }
}

/* Which input of each 2x2 window the backward gives the gradient to, as a byte 0-3 (row 0 left,
 * right, row 1 left, right): the first equal to the window's maximum m, or the first NaN when m is
 * NaN (lensnet__maxpool2x2_backward's rule). */
#ifdef LENSNET__HAVE_AVX512
/* The bytes of a row of 16 windows whose columns are ae, ao (row 0) and be (row 1; the fourth is
 * the winner when none of these is), m their maxima. */
LENSNET__INLINE LENSNET__TARGET_AVX512 void lensnet__maxpool_argmax16_avx512(__m512 ae, __m512 ao, __m512 be, __m512 m,
                                                                           unsigned char *arg, __mmask16 wn) {
  __mmask16 k0 = _mm512_cmp_ps_mask(ae, m, _CMP_EQ_OQ), k1, k2, nan = _mm512_cmp_ps_mask(m, m, _CMP_UNORD_Q);
  __mmask16 q0 = _mm512_cmp_ps_mask(ae, ae, _CMP_UNORD_Q), q1, q2;
  __m512i idx;
  k1 = (__mmask16)(~k0 & _mm512_cmp_ps_mask(ao, m, _CMP_EQ_OQ));
  k2 = (__mmask16)(~k0 & ~k1 & _mm512_cmp_ps_mask(be, m, _CMP_EQ_OQ));
  q1 = (__mmask16)(~q0 & _mm512_cmp_ps_mask(ao, ao, _CMP_UNORD_Q));
  q2 = (__mmask16)(~q0 & ~q1 & _mm512_cmp_ps_mask(be, be, _CMP_UNORD_Q));
  k0 = (__mmask16)((nan & q0) | (~nan & k0));
  k1 = (__mmask16)((nan & q1) | (~nan & k1));
  k2 = (__mmask16)((nan & q2) | (~nan & k2));
  idx = _mm512_mask_mov_epi32(_mm512_set1_epi32(3), k0, _mm512_setzero_si512());
  idx = _mm512_mask_mov_epi32(idx, k1, _mm512_set1_epi32(1));
  idx = _mm512_mask_mov_epi32(idx, k2, _mm512_set1_epi32(2));
  _mm_mask_storeu_epi8(arg, wn, _mm512_maskz_cvtepi32_epi8((__mmask16)0xFFFF, idx));
}

#endif

/* lensnet__maxpool2x2 into out, and each window's byte into arg (from the same loads on AVX-512). */
static void lensnet__maxpool2x2_argmax(const lensnet_layer *L, size_t planes, const float *in, float *out, unsigned char *arg) {
  size_t plane, y, x, iw = L->in_w, ow = L->out_w;
  int avx512 = lensnet_simd_best() == LENSNET_SIMD_AVX512;
  if (avx512) {
#ifdef LENSNET__HAVE_AVX512
    for (plane = 0; plane < planes; plane++)
      for (y = 0; y < L->out_h; y++) {
        const float *r0 = in + (plane * L->in_h + 2 * y) * iw;
        lensnet__maxpool_row_avx512(r0, r0 + iw, out + (plane * L->out_h + y) * ow, arg + (plane * L->out_h + y) * ow, ow);
      }
    return;
#endif
  }
  lensnet__maxpool2x2(L, planes, in, out);
  for (plane = 0; plane < planes; plane++)
    for (y = 0; y < L->out_h; y++) {
      const float *r0 = in + (plane * L->in_h + 2 * y) * iw, *r1 = r0 + iw, *mx = out + (plane * L->out_h + y) * ow;
      unsigned char *a = arg + (plane * L->out_h + y) * ow;
      for (x = 0; x < ow; x++) {
        const float v[4] = {r0[2 * x], r0[2 * x + 1], r1[2 * x], r1[2 * x + 1]};
        float m = mx[x];
        a[x] = m != m ? (v[0] != v[0] ? 0 : v[1] != v[1] ? 1 : v[2] != v[2] ? 2 : 3)
                      : (v[0] == m ? 0 : v[1] == m ? 1 : v[2] == m ? 2 : 3);
      }
    }
}

/* The backward of a ReLU and the 2x2 max pool after it, from the pool's output m and the bytes
 * of lensnet__maxpool2x2_argmax: the window's gradient g goes to its winning input when m > 0
 * (and g > 0 when guided), +0 everywhere else. The ReLU's output at the winner is m, so this is
 * the two backward passes in turn, bit for bit, without reading either layer's input. */
#ifdef LENSNET__HAVE_AVX512
LENSNET__TARGET_AVX512 static void lensnet__maxpool_relu_backward_row_avx512(const float *m_row, const unsigned char *a,
                                                                            const float *g_row, float *d0, float *d1, size_t ow,
                                                                            int guided) {
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  size_t x;
  for (x = 0; x < ow; x += 16) {
    size_t n = ow - x < 16 ? ow - x : 16;
    __mmask16 wn = lensnet__avx512_first_lanes(n), in0 = lensnet__avx512_first_lanes(2 * n),
              in1 = lensnet__avx512_first_lanes(2 * n > 16 ? 2 * n - 16 : 0);
    __m512 m = _mm512_maskz_loadu_ps(wn, m_row + x), g = _mm512_maskz_loadu_ps(wn, g_row + x);
    __m512i idx = _mm512_maskz_cvtepu8_epi32((__mmask16)0xFFFF, _mm_maskz_loadu_epi8(wn, a + x));
    __mmask16 pass = _mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ);
    __m512 v, ge, go, he, ho;
    if (guided) pass &= _mm512_cmp_ps_mask(g, _mm512_setzero_ps(), _CMP_GT_OQ);
    v = _mm512_maskz_mov_ps(pass, g);
    ge = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(idx, _mm512_setzero_si512()), v);
    go = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(idx, _mm512_set1_epi32(1)), v);
    he = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(idx, _mm512_set1_epi32(2)), v);
    ho = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(idx, _mm512_set1_epi32(3)), v);
    _mm512_mask_storeu_ps(d0 + 2 * x, in0, _mm512_permutex2var_ps(ge, lo, go));
    _mm512_mask_storeu_ps(d0 + 2 * x + 16, in1, _mm512_permutex2var_ps(ge, hi, go));
    _mm512_mask_storeu_ps(d1 + 2 * x, in0, _mm512_permutex2var_ps(he, lo, ho));
    _mm512_mask_storeu_ps(d1 + 2 * x + 16, in1, _mm512_permutex2var_ps(he, hi, ho));
  }
}
#endif

static void lensnet__maxpool_relu_backward(const lensnet_layer *L, size_t planes, const float *out, const unsigned char *arg,
                                           const float *dy, float *dx, int guided) {
  size_t plane, y, x, iw = L->in_w, ow = L->out_w;
  int avx512 = lensnet_simd_best() == LENSNET_SIMD_AVX512;
  (void)avx512;
  for (plane = 0; plane < planes; plane++)
    for (y = 0; y < L->out_h; y++) {
      const float *mx = out + (plane * L->out_h + y) * ow, *g = dy + (plane * L->out_h + y) * ow;
      const unsigned char *a = arg + (plane * L->out_h + y) * ow;
      float *d0 = dx + (plane * L->in_h + 2 * y) * iw, *d1 = d0 + iw;
#ifdef LENSNET__HAVE_AVX512
      if (avx512) { lensnet__maxpool_relu_backward_row_avx512(mx, a, g, d0, d1, ow, guided); continue; }
#endif
      for (x = 0; x < ow; x++) {
        float gv = g[x], v = ((mx[x] > 0.0f) & (!guided | (gv > 0.0f))) ? gv : 0.0f;
        d0[2 * x] = a[x] == 0 ? v : 0.0f;
        d0[2 * x + 1] = a[x] == 1 ? v : 0.0f;
        d1[2 * x] = a[x] == 2 ? v : 0.0f;
        d1[2 * x + 1] = a[x] == 3 ? v : 0.0f;
      }
    }
}

/* Pool outputs inside r of one plane. */
static void lensnet__pool_plane(const lensnet_layer *L, const float *src, float *dst, lensnet_rect r) {
  size_t k = L->kernel, s = L->stride, i, j;
  long pad = (long)L->padding, y, x;
  int is_max = L->type == LENSNET_LAYER_MAXPOOL;
  for (y = r.y0; y <= r.y1; y++)
    for (x = r.x0; x <= r.x1; x++) {
      float acc = is_max ? -INFINITY : 0.0f;
      for (i = 0; i < k; i++) {
        long iy = (long)((size_t)y * s + i) - pad;
        if (iy < 0 || iy >= (long)L->in_h) continue;
        for (j = 0; j < k; j++) {
          long ix = (long)((size_t)x * s + j) - pad;
          float v;
          if (ix < 0 || ix >= (long)L->in_w) continue;
          v = src[iy * (long)L->in_w + ix];
          if (is_max) { if (v > acc || v != v) acc = v; } /* NaN propagates, as in PyTorch */
          else acc += v;
        }
      }
      /* average pooling counts the zero padding (PyTorch's count_include_pad=True) */
      dst[y * (long)L->out_w + x] = is_max ? acc : acc / (float)(k * k);
    }
}

static void lensnet__pool_forward(const lensnet_layer *L, size_t batch, const float *in, float *out) {
  size_t plane, planes = batch * L->in_c;
  lensnet_rect whole;
  if (L->type == LENSNET_LAYER_MAXPOOL && L->kernel == 2 && L->stride == 2 && L->padding == 0) { lensnet__maxpool2x2(L, planes, in, out); return; }
  whole.y0 = whole.x0 = 0; whole.y1 = (long)L->out_h - 1; whole.x1 = (long)L->out_w - 1;
  for (plane = 0; plane < planes; plane++)
    lensnet__pool_plane(L, in + plane * L->in_h * L->in_w, out + plane * L->out_h * L->out_w, whole);
}

/* Element-wise activations y = f(x) over n values (y may be x). NaN stays NaN in the ReLUs, as
 * in PyTorch and in the convolution's fused ReLU. */
LENSNET__VECTORIZE static void lensnet__relu_pointwise(const lensnet_model *m, const lensnet_layer *L, size_t channel,
                                                       const float *x, float *y, size_t n) {
  size_t i;
  (void)m; (void)L; (void)channel;
  for (i = 0; i < n; i++) { float v = x[i]; y[i] = (v > 0.0f || v != v) ? v : 0.0f; }
}

LENSNET__VECTORIZE static void lensnet__leaky_relu_pointwise(const lensnet_model *m, const lensnet_layer *L, size_t channel,
                                                             const float *x, float *y, size_t n) {
  size_t i;
  float slope = L->value;
  (void)m; (void)channel;
  for (i = 0; i < n; i++) { float v = x[i]; y[i] = (v > 0.0f || v != v) ? v : v * slope; }
}

LENSNET__VECTORIZE static void lensnet__gelu_pointwise(const lensnet_model *m, const lensnet_layer *L, size_t channel,
                                                       const float *x, float *y, size_t n) {
  size_t i;
  (void)m; (void)L; (void)channel;
  for (i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

LENSNET__VECTORIZE static void lensnet__sigmoid_pointwise(const lensnet_model *m, const lensnet_layer *L, size_t channel,
                                                          const float *x, float *y, size_t n) {
  size_t i;
  (void)m; (void)L; (void)channel;
  for (i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

LENSNET__VECTORIZE static void lensnet__tanh_pointwise(const lensnet_model *m, const lensnet_layer *L, size_t channel,
                                                       const float *x, float *y, size_t n) {
  size_t i;
  (void)m; (void)L; (void)channel;
  for (i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

/* Dropout at inference: the identity. */
static void lensnet__identity_pointwise(const lensnet_model *m, const lensnet_layer *L, size_t channel, const float *x, float *y, size_t n) {
  (void)m; (void)L; (void)channel;
  if (y != x) memcpy(y, x, n * sizeof(float));
}

/* Batch norm with running statistics, folded into a scale and a shift per channel: the one place
 * this arithmetic is written (inference, a trainer out of training, rectangles). `channel` is the
 * input plane; with orientations=G, planes c*G .. c*G+G-1 share channel c's numbers. */
static void lensnet__batchnorm_pointwise(const lensnet_model *m, const lensnet_layer *L, size_t channel, const float *x, float *y, size_t n) {
  const float *w = m->values + m->params[L->weight].offset, *b = m->values + m->params[L->bias_param].offset;
  const float *mean = m->values + m->params[L->mean_param].offset, *var = m->values + m->params[L->var_param].offset;
  size_t c = channel / L->orientations;
  float scale = w[c] / sqrtf(var[c] + L->value), shift = b[c] - mean[c] * scale;
  size_t k;
  for (k = 0; k < n; k++) y[k] = x[k] * scale + shift;
}

/* Softmax over channels at every position (over features for flat data), in place. */
static void lensnet__softmax_forward(float *x, size_t batch, size_t c, size_t hw) {
  size_t b, p, k;
  for (b = 0; b < batch; b++)
    for (p = 0; p < hw; p++) {
      float *v = x + b * c * hw + p, mx = -INFINITY, sum = 0.0f;
      for (k = 0; k < c; k++) if (v[k * hw] > mx) mx = v[k * hw];
      for (k = 0; k < c; k++) { v[k * hw] = expf(v[k * hw] - mx); sum += v[k * hw]; }
      for (k = 0; k < c; k++) v[k * hw] /= sum;
    }
}

/* ---- int8 inference ------------------------------------------------------------------------ */

/* Integer-arithmetic inference in the manner of Jacob et al. 2018 (CVPR, "Quantization and
 * training of neural networks for efficient integer-arithmetic-only inference"), kept simple:
 * weights are int8, symmetric, one scale per output channel (s_w[o] = max_k |w[o][k]| / 127);
 * a layer's input is uint8 with one scale and a zero point: 0 and s_x = max x / 255 when the
 * calibration saw no negative input (min-max scaled cutouts, anything after a ReLU: the full
 * 256 levels), else 128 and s_x = max |x| / 127 (a dense layer after a batch norm, cutouts not
 * min-max scaled). Either way x = 0 is a level, so zero padding stays exact, and the product is
 * unsigned by signed bytes, what VNNI's dpbusd multiplies. Sums are exact in int32, and each
 * output is dequantised at once: y[o] = s_x s_w[o] sum_k (q_x - zero_point) q_w + b[o] in float,
 * so every layer between two quantised ones (ReLU, pooling, dropout, batch norm, flatten) runs
 * unchanged in float and a batch norm needs no folding. Requantising straight to the next
 * layer's scale would save a pass over each activation; it is not done. */

/* round(x * inv_scale) + zero_point within [lo, hi], half away from zero whatever the FPU's
 * rounding mode; NaN becomes the zero point. */
static int lensnet__quantize_value(float x, float inv_scale, int zero_point, int lo, int hi) {
  float q = x * inv_scale;
  int v;
  if (q != q) return zero_point;
  if (q > (float)(hi - zero_point)) return hi;
  if (q < (float)(lo - zero_point)) return lo;
  v = q >= 0.0f ? (int)(q + 0.5f) : -(int)(0.5f - q);
  v += zero_point;
  return v < lo ? lo : v > hi ? hi : v;
}

/* q = floor(x / s + zero_point + 1/2) within [0, 255]: the clamp comes first, so the rounding
 * is of a non-negative number; NaN becomes 0. On x86 16 values a step with SSE2, the same
 * operations in the same order (multiply, add, max, min, truncate), so the same bytes. */
#ifdef LENSNET__HAVE_SSE
LENSNET__TARGET_SSE static size_t lensnet__quantize_input_sse(const float *x, size_t n, float inv, float zp, uint8_t *q) {
  __m128 vi = _mm_set1_ps(inv), vz = _mm_set1_ps(zp), lo = _mm_setzero_ps(), hi = _mm_set1_ps(255.0f);
  size_t i;
  for (i = 0; i + 16 <= n; i += 16) {
    __m128i w[4];
    int t;
    for (t = 0; t < 4; t++) {
      __m128 v = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(x + i + 4 * t), vi), vz);
      v = _mm_min_ps(_mm_max_ps(v, lo), hi); /* maxps(NaN, 0) is 0 */
      w[t] = _mm_cvttps_epi32(v);
    }
    _mm_storeu_si128((__m128i *)(q + i), _mm_packus_epi16(_mm_packs_epi32(w[0], w[1]), _mm_packs_epi32(w[2], w[3])));
  }
  return i;
}
#endif
static void lensnet__quantize_input(const float *x, size_t n, const lensnet_quant_layer *Q, uint8_t *q) {
  float inv = 1.0f / Q->input_scale, zp = (float)Q->input_zero_point + 0.5f;
  size_t i = 0;
#ifdef LENSNET__HAVE_SSE
  if (lensnet_simd_available(LENSNET_SIMD_SSE)) i = lensnet__quantize_input_sse(x, n, inv, zp, q);
#endif
  for (; i < n; i++) {
    float t = x[i] * inv;
    t = t + zp;
    t = t > 0.0f ? t : 0.0f;
    t = t < 255.0f ? t : 255.0f;
    q[i] = (uint8_t)(int)t;
  }
}

/* conv2d without groups and dense, with a fan-in below 2^16 (the product's int32 bound). */
static int lensnet__layer_quantizable(const lensnet_layer *L) {
  size_t fan_in = L->type == LENSNET_LAYER_DENSE ? L->in_c * L->in_h * L->in_w : L->in_c * L->kernel * L->kernel;
  return (L->type == LENSNET_LAYER_DENSE || (L->type == LENSNET_LAYER_CONV2D && L->groups == 1)) && fan_in < 65536;
}

/* y[i] = s_x s_w[o] (sum_k q_x q_w - zero_point sum_k q_w) + b[o] for n sums of output o. The
 * difference is sum_k (q_x - zero_point) q_w, at most 255 * 127 * K in size, so it is exact in
 * int32 for K < 2^16, as are both terms. */
LENSNET__VECTORIZE static void lensnet__dequantize(const lensnet_quant_layer *Q, size_t o, const int32_t *sums, size_t n, float bias,
                                                   float *y) {
  int32_t offset = Q->input_zero_point * Q->weight_sum[o];
  float scale = Q->input_scale * Q->weight_scale[o];
  size_t i;
  for (i = 0; i < n; i++) y[i] = (float)(sums[i] - offset) * scale + bias;
}

/* Bytes of scratch of a quantised layer for one image: the int32 sums, then the zero-bordered
 * int8 image, then its im2col rows (one output position's patch per row, K-contiguous). */
static size_t lensnet__quant_scratch_floats(const lensnet_layer *L) {
  size_t in = L->in_c * L->in_h * L->in_w, k = L->kernel, bytes;
  if (L->type == LENSNET_LAYER_DENSE) bytes = 4 * L->out + lensnet__i8_pad(in);
  else {
    size_t hp = L->in_h + 2 * L->padding, wp = L->in_w + 2 * L->padding, n = L->out_h * L->out_w;
    bytes = 4 * L->out_c * n + L->in_c * hp * wp + n * lensnet__i8_pad(L->in_c * k * k);
  }
  return bytes / sizeof(float) + 2;
}

#ifdef LENSNET__HAVE_SSE
/* dst[4x + t] = src[x + off[t]] for x < n, 16 positions a step (stride 1); returns how many were done. */
LENSNET__TARGET_SSE static size_t lensnet__interleave4_sse(const uint8_t *src, const size_t *off, size_t n, uint8_t *dst) {
  size_t x;
  for (x = 0; x + 16 <= n; x += 16) {
    __m128i a = _mm_loadu_si128((const __m128i *)(src + x + off[0])), b = _mm_loadu_si128((const __m128i *)(src + x + off[1]));
    __m128i c = _mm_loadu_si128((const __m128i *)(src + x + off[2])), d = _mm_loadu_si128((const __m128i *)(src + x + off[3]));
    __m128i ab0 = _mm_unpacklo_epi8(a, b), ab1 = _mm_unpackhi_epi8(a, b), cd0 = _mm_unpacklo_epi8(c, d), cd1 = _mm_unpackhi_epi8(c, d);
    _mm_storeu_si128((__m128i *)(dst + 4 * x), _mm_unpacklo_epi16(ab0, cd0));
    _mm_storeu_si128((__m128i *)(dst + 4 * x + 16), _mm_unpackhi_epi16(ab0, cd0));
    _mm_storeu_si128((__m128i *)(dst + 4 * x + 32), _mm_unpacklo_epi16(ab1, cd1));
    _mm_storeu_si128((__m128i *)(dst + 4 * x + 48), _mm_unpackhi_epi16(ab1, cd1));
  }
  return x;
}
#endif

static void lensnet__quant_conv_image(const lensnet_layer *L, const lensnet_quant_layer *Q, const float *bias,
                                      lensnet_simd simd, const float *x, float *y, float *scratch) {
  size_t hp = L->in_h + 2 * L->padding, wp = L->in_w + 2 * L->padding, n = L->out_h * L->out_w;
  size_t k = L->kernel, K = L->in_c * k * k, Kp = lensnet__i8_pad(K), c, yy, xx, i, j, o;
  int32_t *sums = (int32_t *)(void *)scratch;
  uint8_t *padded = (uint8_t *)(void *)(sums + L->out_c * n), *rows = padded + L->in_c * hp * wp;
  if (L->padding == 0) lensnet__quantize_input(x, L->in_c * L->in_h * L->in_w, Q, padded);
  else {
    memset(padded, Q->input_zero_point, L->in_c * hp * wp); /* padding is x = 0 */
    for (c = 0; c < L->in_c; c++)
      for (yy = 0; yy < L->in_h; yy++)
        lensnet__quantize_input(x + (c * L->in_h + yy) * L->in_w, L->in_w, Q, padded + (c * hp + yy + L->padding) * wp + L->padding);
  }
  /* im2col straight into the packed layout (element k of position p at ((k / 4) * n + p) * 4 +
   * k % 4), a word at a time: the four k of a group are four offsets into the padded image.
   * Rows beyond K read the image's first byte against a zero weight. */
  for (i = 0; i < Kp; i += 4) {
    size_t off[4], t;
    uint8_t *dst = rows + i * n;
    for (t = 0; t < 4; t++) {
      size_t kk = i + t < K ? i + t : 0;
      c = kk / (k * k);
      off[t] = (c * hp + (kk / k) % k) * wp + kk % k;
    }
    for (yy = 0; yy < L->out_h; yy++) {
      const uint8_t *src = padded + yy * L->stride * wp;
      xx = 0;
#ifdef LENSNET__HAVE_SSE
      if (L->stride == 1 && lensnet_simd_available(LENSNET_SIMD_SSE)) xx = lensnet__interleave4_sse(src, off, L->out_w, dst);
      dst += 4 * xx;
#endif
      for (j = xx * L->stride; xx < L->out_w; xx++, j += L->stride, dst += 4) {
        dst[0] = src[j + off[0]]; dst[1] = src[j + off[1]]; dst[2] = src[j + off[2]]; dst[3] = src[j + off[3]];
      }
    }
  }
  lensnet__i8_kernel_for(simd)(L->out_c, n, Kp / 4, Q->packed, Q->packed16, rows, sums, n);
  for (o = 0; o < L->out_c; o++) lensnet__dequantize(Q, o, sums + o * n, n, bias ? bias[o] : 0.0f, y + o * n);
}

static void lensnet__quant_dense_image(const lensnet_layer *L, const lensnet_quant_layer *Q, const float *bias,
                                       lensnet_simd simd, const float *x, float *y, float *scratch) {
  size_t in = L->in_c * L->in_h * L->in_w, o;
  int32_t *sums = (int32_t *)(void *)scratch;
  uint8_t *qx = (uint8_t *)(void *)(sums + L->out);
  lensnet__quantize_input(x, in, Q, qx); /* one position: the packed layout is the vector padded to Kp */
  memset(qx + in, 0, lensnet__i8_pad(in) - in);
  lensnet__i8_kernel_for(simd)(L->out, 1, lensnet__i8_pad(in) / 4, Q->packed, Q->packed16, qx, sums, 1);
  for (o = 0; o < L->out; o++) lensnet__dequantize(Q, o, sums + o, 1, bias ? bias[o] : 0.0f, y + o);
}

/* A quantised layer over a batch, image by image (so an image's outputs do not depend on its
 * batch). */
static void lensnet__quant_layer_forward(lensnet__pass *p) {
  const lensnet_layer *L = p->L;
  const lensnet_quant_layer *Q = &p->m->quant[p->layer];
  const float *bias = L->bias_param >= 0 ? p->m->values + p->m->params[L->bias_param].offset : NULL;
  size_t in = L->in_c * L->in_h * L->in_w, out = L->out_c * L->out_h * L->out_w, b;
  lensnet_simd simd = lensnet_i8_simd_best();
  for (b = 0; b < p->batch; b++) {
    if (L->type == LENSNET_LAYER_DENSE) lensnet__quant_dense_image(L, Q, bias, simd, p->x + b * in, p->y + b * out, p->scratch);
    else lensnet__quant_conv_image(L, Q, bias, simd, p->x + b * in, p->y + b * out, p->scratch);
  }
}

LENSNET_API int lensnet_model_is_quantized(const lensnet_model *m) {
  return m && m->quant != NULL;
}

static void lensnet__quant_free(lensnet_model *m) {
  size_t i;
  if (!m->quant) return;
  for (i = 0; i < m->layer_count; i++) {
    if (m->quant[i].weight) LENSNET_FREE(m->quant[i].weight);
    if (m->quant[i].weight_scale) LENSNET_FREE(m->quant[i].weight_scale);
    if (m->quant[i].weight_sum) LENSNET_FREE(m->quant[i].weight_sum);
    if (m->quant[i].packed) LENSNET_FREE(m->quant[i].packed);
    if (m->quant[i].packed16) LENSNET_FREE(m->quant[i].packed16);
  }
  LENSNET_FREE(m->quant);
  m->quant = NULL;
}

/* Makes layer l of m an int8 layer from int8 weights q (or, q NULL, from its float weights:
 * per-channel scales max |w| / 127), and sets the model's float weights to the dequantised
 * ones, so that the float view of the model (trainers, lensnet_layer_forward_rect) is the same
 * network. */
static lensnet_result lensnet__quant_set_layer(lensnet_model *m, size_t l, const float *q, const float *scales, float input_scale,
                                               int zero_point) {
  const lensnet_layer *L = &m->layers[l];
  lensnet_quant_layer *Q;
  float *w = m->values + m->params[L->weight].offset;
  size_t rows = L->out_c, cols = m->params[L->weight].count / L->out_c, padded = lensnet__i8_pad(cols), o, k;
  if (!m->quant) {
    m->quant = LENSNET__CAST(lensnet_quant_layer *, LENSNET_MALLOC(m->layer_count * sizeof *m->quant));
    if (!m->quant) return LENSNET_ERR_NOMEM;
    memset(m->quant, 0, m->layer_count * sizeof *m->quant);
  }
  Q = &m->quant[l];
  Q->weight = LENSNET__CAST(int8_t *, LENSNET_MALLOC(rows * cols));
  Q->weight_scale = LENSNET__CAST(float *, LENSNET_MALLOC(rows * sizeof(float)));
  Q->weight_sum = LENSNET__CAST(int32_t *, LENSNET_MALLOC(rows * sizeof(int32_t)));
  Q->packed = LENSNET__CAST(int8_t *, LENSNET_MALLOC(rows * padded));
  Q->packed16 = LENSNET__CAST(int16_t *, LENSNET_MALLOC(rows * padded * sizeof(int16_t)));
  if (!Q->weight || !Q->weight_scale || !Q->weight_sum || !Q->packed || !Q->packed16) return LENSNET_ERR_NOMEM;
  memset(Q->packed, 0, rows * padded);
  Q->input_scale = input_scale;
  Q->input_zero_point = zero_point;
  for (o = 0; o < rows; o++) {
    float mx = 0.0f, s;
    if (scales) s = scales[o];
    else {
      for (k = 0; k < cols; k++) if (fabsf(w[o * cols + k]) > mx) mx = fabsf(w[o * cols + k]);
      s = mx > 0.0f ? mx / 127.0f : 1.0f;
    }
    Q->weight_scale[o] = s;
    Q->weight_sum[o] = 0;
    for (k = 0; k < cols; k++) {
      Q->weight[o * cols + k] = (int8_t)(q ? (int)q[o * cols + k] : lensnet__quantize_value(w[o * cols + k], 1.0f / s, 0, -127, 127));
      Q->weight_sum[o] += Q->weight[o * cols + k];
      Q->packed[o * padded + k] = Q->weight[o * cols + k];
      w[o * cols + k] = (float)Q->weight[o * cols + k] * s;
    }
  }
  for (k = 0; k < rows * padded; k++) Q->packed16[k] = Q->packed[k];
  return LENSNET_OK;
}

/* Sees each layer's input during a forward pass (calibration of int8 inference). */
typedef void (*lensnet__observe_fn)(void *ctx, size_t layer, const float *x, size_t n);

static const float *lensnet__param_values(const lensnet_model *m, int index);

struct lensnet_packed {
  const lensnet_model *m;   /* the model packed */
  size_t value_count;       /* its parameter count then */
  lensnet_simd simd;        /* the GEMM path the panels are laid out for */
  size_t count;             /* m->layer_count */
  float **layer;            /* [count]: layer i's panels (aligned), or NULL */
  float **raw;              /* [count]: their allocations */
  unsigned char *wino;      /* [count]: layer[i] holds Winograd's U (lensnet__wino_weights), not panels */
};

static lensnet_result lensnet__model_forward(const lensnet_model *m, size_t batch, const float *input, float *output,
                                             float *workspace, int mc, uint64_t seed, lensnet__observe_fn observe,
                                             void *observe_ctx, const lensnet_packed *pk, lensnet_error *err) {
  size_t act, scratch_n, mark_n, total, i;
  float *ws = workspace, *cur, *other, *scratch, *marks;
  const float *src;
  lensnet__pass p;
  if (!m || (batch && (!input || !output)))
    return lensnet__fail(err, LENSNET_ERR_ARG, "forward: the model, the input and the output are required (NULL given)");
  if (batch == 0) return LENSNET_OK;
  total = lensnet__forward_layout(m, batch, &act, &scratch_n, &mark_n);
  if (!total) return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "batch of %lu is too large for this model", (unsigned long)batch);
  if (!ws) {
    size_t bytes;
    if (!lensnet__mul_ok(total, sizeof(float), &bytes) || !(ws = LENSNET__CAST(float *, LENSNET_MALLOC(bytes))))
      return lensnet__fail(err, LENSNET_ERR_NOMEM, "cannot allocate %lu floats of workspace", (unsigned long)total);
  }
  cur = ws; other = ws + act; scratch = ws + 2 * act; marks = scratch + scratch_n;
  src = input; /* the first layer reads the caller's input directly */
  memset(&p, 0, sizeof p);
  p.m = m; p.batch = batch; p.scratch = scratch; p.may_fuse = 1; p.mc = mc; p.step_seed = seed;
  for (i = 0; i < m->layer_count; i++) {
    const lensnet_layer *L = &m->layers[i];
    const lensnet__layer_kind *kind = lensnet__kind(L->type);
    int in_place = (kind->flags & LENSNET__KIND_IN_PLACE) != 0;
    if (src != cur && in_place) {
      memcpy(cur, src, batch * L->in_c * L->in_h * L->in_w * sizeof(float)); /* in-place layers need a writable copy */
      src = cur;
    }
    p.L = L; p.layer = i; p.x = src; p.fused = 0;
    p.prepacked = pk && !pk->wino[i] ? pk->layer[i] : NULL;
    p.wino = pk && pk->wino[i] ? pk->layer[i] : NULL;
    p.y = (in_place || src != cur) ? cur : other;
    p.saved = L->mark >= 0 ? marks + lensnet__mark_offset(m, L->mark) * batch : NULL;
    if (observe) {
      observe(observe_ctx, i, src, batch * L->in_c * L->in_h * L->in_w);
      p.may_fuse = 0; /* each layer's input is seen */
    }
    if (m->quant && m->quant[i].weight) lensnet__quant_layer_forward(&p);
    else kind->forward(&p);
    i += (size_t)p.fused; /* the next layer (ReLU), or two (and a max pool), are done too */
    if (!in_place) {
      other = (p.y == cur) ? other : cur;
      cur = p.y; src = cur;
    }
  }
  if (src != output) memcpy(output, src, batch * m->out_features * sizeof(float));
  if (!workspace) LENSNET_FREE(ws);
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_model_forward(const lensnet_model *m, size_t batch, const float *input,
                                                 float *output, float *workspace, lensnet_error *err) {
  return lensnet__model_forward(m, batch, input, output, workspace, 0, 0, NULL, NULL, NULL, err);
}

LENSNET_API void lensnet_packed_free(lensnet_packed *pk) {
  size_t i;
  if (!pk) return;
  for (i = 0; pk->raw && i < pk->count; i++)
    if (pk->raw[i]) LENSNET_FREE(pk->raw[i]);
  if (pk->raw) LENSNET_FREE(pk->raw);
  if (pk->layer) LENSNET_FREE(pk->layer);
  if (pk->wino) LENSNET_FREE(pk->wino);
  LENSNET_FREE(pk);
}

static lensnet_result lensnet__model_pack(const lensnet_model *m, int winograd, lensnet_packed **out, lensnet_error *err) {
  lensnet_packed *pk;
  const lensnet__gemm_path *path;
  size_t i, grp;
  *out = NULL;
  if (!m) return lensnet__fail(err, LENSNET_ERR_ARG, "no model to pack");
  pk = LENSNET__CAST(lensnet_packed *, LENSNET_MALLOC(sizeof *pk));
  if (!pk) return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  pk->m = m; pk->simd = lensnet_simd_best(); pk->count = 0; pk->value_count = m->value_count; /* count once raw[] is set */
  pk->layer = LENSNET__CAST(float **, LENSNET_MALLOC((m->layer_count + 1) * sizeof(float *)));
  pk->raw = LENSNET__CAST(float **, LENSNET_MALLOC((m->layer_count + 1) * sizeof(float *)));
  pk->wino = LENSNET__CAST(unsigned char *, LENSNET_MALLOC(m->layer_count + 1));
  if (!pk->layer || !pk->raw || !pk->wino) { lensnet_packed_free(pk); return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory"); }
  for (i = 0; i < m->layer_count; i++) { pk->layer[i] = pk->raw[i] = NULL; pk->wino[i] = 0; }
  pk->count = m->layer_count;
  path = lensnet__gemm_path_for(pk->simd);
  for (i = 0; i < m->layer_count; i++) {
    const lensnet_layer *L = &m->layers[i];
    lensnet__conv_geom g;
    size_t floats, bytes, K, m_pad;
    if (L->type != LENSNET_LAYER_CONV2D || (m->quant && m->quant[i].weight)) continue;
    g = lensnet__layer_geom(L, 1);
#ifdef LENSNET__HAVE_AVX512
    if (winograd && pk->simd == LENSNET_SIMD_AVX512 && lensnet__wino_layer(m, i, 0)) {
      floats = lensnet__wino_weight_floats(&g);
      if (!lensnet__mul_ok(floats, sizeof(float), &bytes) || !(pk->raw[i] = LENSNET__CAST(float *, LENSNET_MALLOC(bytes)))) {
        lensnet_packed_free(pk);
        return lensnet__fail(err, LENSNET_ERR_NOMEM, "cannot allocate %lu floats for the Winograd weights of %s", (unsigned long)floats, L->name);
      }
      pk->layer[i] = lensnet__align64(pk->raw[i]);
      lensnet__wino_weights(&g, lensnet__param_values(m, L->weight), pk->layer[i]);
      pk->wino[i] = 1;
      continue;
    }
#else
    (void)winograd;
#endif
    K = (g.cin / g.groups) * g.kh * g.kw;
    m_pad = lensnet__round_up(g.cout / g.groups, path->mr);
    floats = lensnet__conv_packed_floats(path, &g);
    if (!floats || K == 0) continue; /* nothing to pack: the forward handles it as before */
    if (!lensnet__mul_ok(floats, sizeof(float), &bytes) || !(pk->raw[i] = LENSNET__CAST(float *, LENSNET_MALLOC(bytes)))) {
      lensnet_packed_free(pk);
      return lensnet__fail(err, LENSNET_ERR_NOMEM, "cannot allocate %lu floats for the packed weights of %s", (unsigned long)floats, L->name);
    }
    pk->layer[i] = lensnet__align64(pk->raw[i]);
    for (grp = 0; grp < g.groups; grp++)
      lensnet__conv_pack_weights(path, &g, lensnet__param_values(m, L->weight), grp, pk->layer[i] + grp * m_pad * K);
  }
  *out = pk;
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_model_pack(const lensnet_model *m, lensnet_packed **out, lensnet_error *err) {
  return lensnet__model_pack(m, 0, out, err);
}

LENSNET_API lensnet_result lensnet_model_pack_winograd(const lensnet_model *m, lensnet_packed **out, lensnet_error *err) {
  return lensnet__model_pack(m, 1, out, err);
}

LENSNET_API lensnet_result lensnet_model_forward_packed(const lensnet_model *m, const lensnet_packed *pk, size_t batch, const float *input,
                                                        float *output, float *workspace, lensnet_error *err) {
  if (pk && (pk->m != m || pk->count != m->layer_count || pk->value_count != m->value_count))
    return lensnet__fail(err, LENSNET_ERR_ARG, "the packed weights belong to another model");
  if (pk && pk->simd != lensnet_simd_best()) pk = NULL; /* another path now: pack as usual */
  return lensnet__model_forward(m, batch, input, output, workspace, 0, 0, NULL, NULL, pk, err);
}

LENSNET_API lensnet_result lensnet_model_forward_mc(const lensnet_model *m, size_t batch, const float *input, float *output,
                                                    float *workspace, uint64_t seed, lensnet_error *err) {
  return lensnet__model_forward(m, batch, input, output, workspace, 1, seed, NULL, NULL, NULL, err);
}

/* Calibration, two passes over the images: the largest |x| reaching each layer's input and
 * whether any x was negative; then a histogram of |x| in LENSNET__CAL_BINS bins up to that
 * largest value, whose percentile is the range kept. */
#define LENSNET__CAL_BINS 4096
typedef struct {
  float *range;
  unsigned char *negative;
  size_t *histogram;           /* [layers, LENSNET__CAL_BINS]; NULL in the first pass */
} lensnet__calibration;

static void lensnet__calibration_observe(void *ctx, size_t layer, const float *x, size_t n) {
  lensnet__calibration *c = LENSNET__CAST(lensnet__calibration *, ctx);
  size_t i;
  float mx = c->range[layer];
  if (c->histogram) {
    size_t *h = c->histogram + layer * LENSNET__CAL_BINS;
    float per_bin = mx > 0.0f ? (float)LENSNET__CAL_BINS / mx : 0.0f;
    for (i = 0; i < n; i++) {
      float b = fabsf(x[i]) * per_bin;
      h[b < (float)(LENSNET__CAL_BINS - 1) ? (size_t)b : LENSNET__CAL_BINS - 1]++; /* NaN counts in bin 0 */
    }
    return;
  }
  for (i = 0; i < n; i++) {
    if (fabsf(x[i]) > mx) mx = fabsf(x[i]);
    if (x[i] < 0.0f) c->negative[layer] = 1;
  }
  c->range[layer] = mx;
}

/* The upper edge of the bin where the share `percentile` / 100 of a layer's values is reached. */
static float lensnet__calibration_range(const lensnet__calibration *c, size_t layer, double percentile) {
  const size_t *h = c->histogram + layer * LENSNET__CAL_BINS;
  double total = 0.0, seen = 0.0;
  size_t b;
  if (percentile >= 100.0) return c->range[layer];
  for (b = 0; b < LENSNET__CAL_BINS; b++) total += (double)h[b];
  for (b = 0; b < LENSNET__CAL_BINS; b++) {
    seen += (double)h[b];
    if (seen >= total * percentile / 100.0) break;
  }
  return b >= LENSNET__CAL_BINS ? c->range[layer] : c->range[layer] * (float)(b + 1) / (float)LENSNET__CAL_BINS;
}

LENSNET_API lensnet_result lensnet_quantize(const lensnet_model *m, const float *images, size_t n,
                                            const lensnet_quantize_desc *desc, lensnet_model **out, lensnet_error *err) {
  lensnet_safetensors st;
  lensnet_model *q = NULL;
  lensnet__calibration cal;
  lensnet_result r;
  size_t batch = desc && desc->batch ? desc->batch : 16, per = m->in_c * m->in_h * m->in_w, i, done = 0, pass;
  double percentile = desc && desc->percentile > 0.0 ? desc->percentile : 100.0;
  int first = 1;
  float *logits = NULL;
  char text[160];
  if (!m || !out) return lensnet__fail(err, LENSNET_ERR_ARG, "quantize: the model and out are required (NULL given)");
  *out = NULL;
  if (m->prealloc_end)
    return lensnet__fail(err, LENSNET_ERR_ARG, "quantize: a preallocated model cannot be quantised (load the file with lensnet_model_load)");
  if (!images || n == 0) return lensnet__fail(err, LENSNET_ERR_ARG, "quantising needs at least one calibration image");
  if (m->quant) return lensnet__fail(err, LENSNET_ERR_ARG, "the model is already quantised");
  if (!(percentile <= 100.0)) return lensnet__fail(err, LENSNET_ERR_ARG, "the calibration percentile must lie in (0, 100], not %g", percentile);
  if (lensnet__model_to_safetensors(m, &st) != LENSNET_OK) return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  r = lensnet_model_from_safetensors(&st, &q, err); /* a copy of the float model */
  lensnet_safetensors_free(&st);
  if (r != LENSNET_OK) return r;
  cal.range = LENSNET__CAST(float *, LENSNET_MALLOC(q->layer_count * sizeof(float)));
  cal.negative = LENSNET__CAST(unsigned char *, LENSNET_MALLOC(q->layer_count));
  cal.histogram = NULL;
  logits = LENSNET__CAST(float *, LENSNET_MALLOC(batch * q->out_features * sizeof(float)));
  if (!cal.range || !cal.negative || !logits) { r = lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory"); goto finish; }
  for (i = 0; i < q->layer_count; i++) { cal.range[i] = 0.0f; cal.negative[i] = 0; }
  for (pass = 0; pass < (percentile < 100.0 ? 2u : 1u) && r == LENSNET_OK; pass++) {
    if (pass == 1) {
      size_t bytes;
      if (!lensnet__mul_ok(q->layer_count * LENSNET__CAL_BINS, sizeof(size_t), &bytes) ||
          !(cal.histogram = LENSNET__CAST(size_t *, LENSNET_MALLOC(bytes)))) { r = lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory"); break; }
      memset(cal.histogram, 0, bytes);
    }
    for (done = 0; done < n && r == LENSNET_OK; done += batch) {
      size_t b = n - done < batch ? n - done : batch;
      r = lensnet__model_forward(q, b, images + done * per, logits, NULL, 0, 0, lensnet__calibration_observe, &cal, NULL, err);
    }
  }
  for (i = 0; i < q->layer_count && r == LENSNET_OK && cal.histogram; i++) cal.range[i] = lensnet__calibration_range(&cal, i, percentile);
  for (i = 0; i < q->layer_count && r == LENSNET_OK; i++) {
    if (!lensnet__layer_quantizable(&q->layers[i])) continue;
    if (first && (first = 0, !(desc && desc->quantize_first))) continue;
    if (!(cal.range[i] > 0.0f) || cal.range[i] > FLT_MAX) continue; /* an input always zero (or not finite) stays float */
    if (lensnet__quant_set_layer(q, i, NULL, NULL, cal.range[i] / (cal.negative[i] ? 127.0f : 255.0f), cal.negative[i] ? 128 : 0) != LENSNET_OK)
      r = lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  }
  if (r == LENSNET_OK && !q->quant) r = lensnet__fail(err, LENSNET_ERR_ARG, "the model has no layer that can run in int8 (conv2d without groups, dense)");
  if (r == LENSNET_OK) {
    snprintf(text, sizeof text, "%lu images", (unsigned long)n);
    if (lensnet_model_set_meta(q, "quantized", "int8") != LENSNET_OK ||
        lensnet_model_set_meta(q, "calibration", desc && desc->description ? desc->description : text) != LENSNET_OK)
      r = lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  }
finish:
  if (cal.range) LENSNET_FREE(cal.range);
  if (cal.negative) LENSNET_FREE(cal.negative);
  if (cal.histogram) LENSNET_FREE(cal.histogram);
  if (logits) LENSNET_FREE(logits);
  if (r != LENSNET_OK) { lensnet_model_free(q); return r; }
  *out = q;
  return LENSNET_OK;
}




/* ---- training ------------------------------------------------------------------------------ */

/* Values in a piece of an optimiser step (lensnet_optimizer_step). */
#define LENSNET__OPT_PIECE 8192

static void lensnet__parallel_run(const lensnet_parallel *p, size_t count, lensnet_task_fn task, void *ctx) {
  size_t i;
  if (p && p->run && count > 1) { p->run(p->user, count, task, ctx); return; }
  for (i = 0; i < count; i++) task(ctx, i, 0);
}

/* Most floats of per-image convolution gradients a trainer keeps (default 2^27, 512 MB): beyond
 * that, images share gradient slots (a ResNet-18 at batch 32 would need 1.4 GB). */
#ifndef LENSNET_GRADIENT_SLOT_FLOATS
#define LENSNET_GRADIENT_SLOT_FLOATS ((size_t)1 << 27)
#endif

/* The trainer's state: private (lensnet_trainer is opaque to callers). */
struct lensnet_trainer {
  lensnet_model *model;
  lensnet_trainer_desc desc;     /* as created, defaults resolved (desc.parallel points at `parallel`) */
  size_t batch_cap;
  lensnet_parallel parallel;
  lensnet_rng rng;               /* dropout masks */
  int training;                  /* set by lensnet_trainer_forward: dropout on, batch statistics */
  lensnet_relu_backward relu_backward;
  float *input;                  /* the batch's input, copied */
  float *acts;                   /* every layer's output: layer i at act_offset[i] * batch */
  size_t *act_offset;
  float *grads;                  /* d loss / d parameter, the layout of model->values */
  float *grad_a, *grad_b;        /* ping-pong activation gradients */
  float *input_grad;             /* d loss / d input after lensnet_trainer_backward */
  float *mark_grad;              /* gradients arriving at marks through their adds */
  unsigned char *dropout_mask;   /* 1 = kept, per dropout layer */
  size_t *mask_offset;
  float *bn_mean, *bn_invstd;    /* batch statistics per batch-norm layer */
  size_t *bn_offset;
  float *scratch;                /* per-worker convolution scratch */
  size_t scratch_per_worker;
  float *wgrad_images;           /* per-slot weight gradients of every convolution, reduced in a fixed order */
  size_t grad_slots;             /* slots of wgrad_images, bgrad_images: image b uses slot b % grad_slots */
  int reduce_each_image;         /* one worker: one slot, added to grads as each image's backward ends */
  int compute_input_grad;        /* nonzero: also compute input_grad (saliency needs it; training does not) */
  int skip_param_grads;          /* nonzero: leave t->grads alone (saliency, Grad-CAM and dreams need none) */
  int no_dropout;                /* nonzero: dropout is the identity even when training */
  int lean;                      /* lean_activations in force (not with capture) */
  size_t mark_floats;            /* per image */
  int capture_layer;             /* >= 0: keep d loss / d (output of this layer) in captured_grad */
  float *captured_grad;
  float *flipped_weights;        /* per convolution: W transposed and flipped, for d input */
  size_t *wgrad_offset;          /* per layer: where its weights start among all convolutions' */
  size_t *bgrad_offset;          /* per layer: where its biases start among all convolutions' */
  float *bgrad_images;           /* per-slot bias gradients, reduced in a fixed order */
  float *run_tmp;                /* per worker: two per-image gradient buffers */
  size_t run_tmp_floats;
  float *packed_raw, *packed;    /* conv2d weights packed for the GEMM once per step (forward) and
                                  * once per backward (flipped), instead of once per image */
  size_t *packed_fwd, *packed_bwd; /* per layer: offsets into packed, or (size_t)-1 for none */
  unsigned char *wino_fwd, *wino_bwd; /* per layer: that slot of packed holds Winograd's U (desc.winograd) */
  lensnet_simd packed_simd;      /* the path they are packed for */
};

static size_t lensnet__workers(const lensnet_trainer *t) { return t->parallel.workers ? t->parallel.workers : 1; }

/* Sum with eight running partial sums: vectorisable, and the same order on every run. */
LENSNET__VECTORIZE static float lensnet__sum(const float *x, size_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i, j;
  for (i = 0; i + 8 <= n; i += 8)
    for (j = 0; j < 8; j++) acc[j] += x[i + j];
  for (; i < n; i++) acc[i % 8] += x[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

LENSNET__VECTORIZE static void lensnet__relu_backward(const float *LENSNET__RESTRICT y, const float *LENSNET__RESTRICT dy,
                                   float *LENSNET__RESTRICT dx, size_t n, int guided) {
  size_t k;
  /* loads outside the conditions, so the loops become vector blends */
  if (guided) for (k = 0; k < n; k++) { float g = dy[k], v = y[k]; dx[k] = ((v > 0.0f) & (g > 0.0f)) ? g : 0.0f; }
  else for (k = 0; k < n; k++) { float g = dy[k], v = y[k]; dx[k] = v > 0.0f ? g : 0.0f; }
}

/* y[k] = x[k] * scale where mask[k] is 1, +0.0 where it is 0: the choice made with an integer
 * mask of all ones or all zeros, which compilers vectorise; written as `mask ? v : 0.0f` GCC kept
 * a branch per element, and dropout's two passes took 14% of an OU-66 training step. The same
 * bits as the branch: v, or +0.0 (not -0.0, not NaN, whatever x holds). */
LENSNET__VECTORIZE static void lensnet__masked_scale(const unsigned char *LENSNET__RESTRICT mask, const float *x, float *y, size_t n,
                                                     float scale) { /* y may be x */
  size_t k;
  for (k = 0; k < n; k++) {
    float v = x[k] * scale;
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= 0u - (uint32_t)mask[k];
    memcpy(&y[k], &bits, sizeof bits);
  }
}

static void lensnet__dropout_backward(const unsigned char *LENSNET__RESTRICT mask, const float *LENSNET__RESTRICT dy,
                                      float *LENSNET__RESTRICT dx, size_t n, float scale) {
  lensnet__masked_scale(mask, dy, dx, n, scale);
}

/* Dropout masks from eight xoshiro256** streams side by side, each seeded (lensnet_rng_seed) from
 * one draw of the image's stream: a round draws one 64-bit word per stream, and the word of stream
 * l decides elements 4l .. 4l + 3 of a block of 32 (16 bits each, compared with keep * 2^16: the
 * keep probability is honoured to 2^-16). One stream is a chain of dependent steps; eight
 * independent ones written lane by lane let compilers keep them in vector registers (a fifth
 * of the time of one stream on AVX-512). A block cut short by the end uses the first words. */
#define LENSNET__DROPOUT_LANES 8
LENSNET__VECTORIZE static void lensnet__dropout_masks(lensnet_rng *rng, uint32_t threshold, unsigned char *LENSNET__RESTRICT mask,
                                                      size_t n) {
  uint64_t s0[LENSNET__DROPOUT_LANES], s1[LENSNET__DROPOUT_LANES], s2[LENSNET__DROPOUT_LANES], s3[LENSNET__DROPOUT_LANES];
  uint64_t w[LENSNET__DROPOUT_LANES];
  size_t k, l, e;
  for (l = 0; l < LENSNET__DROPOUT_LANES; l++) {
    lensnet_rng lane;
    lensnet_rng_seed(&lane, lensnet_rng_next(rng));
    s0[l] = lane.s[0]; s1[l] = lane.s[1]; s2[l] = lane.s[2]; s3[l] = lane.s[3];
  }
  for (k = 0; k < n; k += 4 * LENSNET__DROPOUT_LANES) {
    for (l = 0; l < LENSNET__DROPOUT_LANES; l++) { /* lensnet_rng_next, lane by lane */
      uint64_t r = s1[l] * 5, t = s1[l] << 17;
      w[l] = ((r << 7) | (r >> 57)) * 9;
      s2[l] ^= s0[l]; s3[l] ^= s1[l]; s1[l] ^= s2[l]; s0[l] ^= s3[l];
      s2[l] ^= t;
      s3[l] = (s3[l] << 45) | (s3[l] >> 19);
    }
    if (n - k >= 4 * LENSNET__DROPOUT_LANES)
      for (e = 0; e < 4 * LENSNET__DROPOUT_LANES; e++)
        mask[k + e] = (uint32_t)((w[e / 4] >> (16 * (e % 4))) & 0xFFFFu) < threshold;
    else
      for (e = 0; e < n - k; e++) mask[k + e] = (uint32_t)((w[e / 4] >> (16 * (e % 4))) & 0xFFFFu) < threshold;
  }
}

#ifdef LENSNET__HAVE_AVX512
/* lensnet__dropout_masks and lensnet__masked_scale in one pass, the eight streams in the eight
 * 64-bit lanes of four registers: the same masks and the same bits. threshold in 1 .. 65535. */
LENSNET__TARGET_AVX512 static void lensnet__dropout_forward_avx512(lensnet_rng *rng, uint32_t threshold, float scale,
                                                                   const float *x, float *y, unsigned char *mask, size_t n) {
  uint64_t st[4][LENSNET__DROPOUT_LANES];
  __m512i s0, s1, s2, s3, th = _mm512_set1_epi16((short)(unsigned short)threshold);
  __m512 sc = _mm512_set1_ps(scale);
  __m256i one = _mm256_set1_epi8(1);
  size_t k, l;
  for (l = 0; l < LENSNET__DROPOUT_LANES; l++) {
    lensnet_rng lane;
    lensnet_rng_seed(&lane, lensnet_rng_next(rng));
    st[0][l] = lane.s[0]; st[1][l] = lane.s[1]; st[2][l] = lane.s[2]; st[3][l] = lane.s[3];
  }
  s0 = _mm512_loadu_si512(st[0]); s1 = _mm512_loadu_si512(st[1]);
  s2 = _mm512_loadu_si512(st[2]); s3 = _mm512_loadu_si512(st[3]);
  for (k = 0; k < n; k += 32) {
    /* the maskz forms throughout: the plain ones start from an undefined vector, which C++ builds warn of */
    __m512i r = _mm512_maskz_rol_epi64(0xFF, _mm512_add_epi64(_mm512_maskz_slli_epi64(0xFF, s1, 2), s1), 7);
    __m512i t = _mm512_maskz_slli_epi64(0xFF, s1, 17);
    __m512i w = _mm512_add_epi64(_mm512_maskz_slli_epi64(0xFF, r, 3), r);
    __mmask32 keep = _mm512_cmplt_epu16_mask(w, th);
    s2 = _mm512_xor_si512(s2, s0); s3 = _mm512_xor_si512(s3, s1);
    s1 = _mm512_xor_si512(s1, s2); s0 = _mm512_xor_si512(s0, s3);
    s2 = _mm512_xor_si512(s2, t);
    s3 = _mm512_maskz_rol_epi64(0xFF, s3, 45);
    if (n - k >= 32) {
      _mm256_storeu_si256((__m256i *)(void *)(mask + k), _mm256_maskz_mov_epi8(keep, one));
      _mm512_storeu_ps(y + k, _mm512_maskz_mul_ps((__mmask16)keep, _mm512_loadu_ps(x + k), sc));
      _mm512_storeu_ps(y + k + 16, _mm512_maskz_mul_ps((__mmask16)(keep >> 16), _mm512_loadu_ps(x + k + 16), sc));
    } else {
      __mmask32 tail = (__mmask32)((1ull << (n - k)) - 1);
      __mmask16 t0 = (__mmask16)tail, t1 = (__mmask16)(tail >> 16);
      _mm256_mask_storeu_epi8(mask + k, tail, _mm256_maskz_mov_epi8(keep, one));
      _mm512_mask_storeu_ps(y + k, t0, _mm512_maskz_mul_ps((__mmask16)keep, _mm512_maskz_loadu_ps(t0, x + k), sc));
      _mm512_mask_storeu_ps(y + k + 16, t1, _mm512_maskz_mul_ps((__mmask16)(keep >> 16), _mm512_maskz_loadu_ps(t1, x + k + 16), sc));
    }
  }
}
#endif

static void lensnet__dropout_forward(lensnet_rng *rng, float p, const float *x, float *y, unsigned char *LENSNET__RESTRICT mask,
                                     size_t n) { /* y may be x */
  double keep = 1.0 - (double)p;
  uint32_t threshold = (uint32_t)(keep * 65536.0 + 0.5);
  float scale = (float)(1.0 / keep);
#ifdef LENSNET__HAVE_AVX512
  if (threshold >= 1 && threshold <= 65535 && lensnet_simd_best() == LENSNET_SIMD_AVX512) {
    lensnet__dropout_forward_avx512(rng, threshold, scale, x, y, mask, n);
    return;
  }
#endif
  lensnet__dropout_masks(rng, threshold, mask, n);
  lensnet__masked_scale(mask, x, y, n, scale);
}

/* d loss / d input of a stride-1 convolution is itself a convolution: of d output, padded by
 * k - 1 - pad, with the weights transposed (in <-> out channels) and flipped in space. Running
 * it through the implicit-GEMM forward is much faster than col2im. Returns 0 when the layer
 * needs the general path (stride > 1, or padding larger than k - 1). */
static int lensnet__conv_input_grad_geom(const lensnet_layer *L, lensnet__conv_geom *gt) {
  if (L->stride != 1 || L->padding > L->kernel - 1) return 0;
  memset(gt, 0, sizeof *gt);
  gt->n = 1; gt->cin = L->out_c; gt->h = L->out_h; gt->w = L->out_w;
  gt->cout = L->in_c; gt->kh = gt->kw = L->kernel; gt->stride = 1; gt->pad = L->kernel - 1 - L->padding; gt->groups = L->groups;
  gt->oh = L->in_h; gt->ow = L->in_w;
  return 1;
}

/* flipped[g][ci][co][k-1-i][k-1-j] = W[g][co][ci][i][j] within each group. */
static void lensnet__flip_weights(const lensnet_layer *L, const float *w, float *flipped) {
  size_t cin_g = L->in_c / L->groups, cout_g = L->out_c / L->groups, k = L->kernel, kk = k * k, grp, co, ci, i;
  for (grp = 0; grp < L->groups; grp++)
    for (co = 0; co < cout_g; co++)
      for (ci = 0; ci < cin_g; ci++) {
        const float *src = w + ((grp * cout_g + co) * cin_g + ci) * kk;
        float *dst = flipped + ((grp * cin_g + ci) * cout_g + co) * kk;
        for (i = 0; i < kk; i++) dst[i] = src[kk - 1 - i];
      }
}

LENSNET_API void lensnet_trainer_free(lensnet_trainer *t) {
  if (!t) return;
  LENSNET_FREE(t->input); LENSNET_FREE(t->acts); LENSNET_FREE(t->act_offset); LENSNET_FREE(t->grads);
  LENSNET_FREE(t->grad_a); LENSNET_FREE(t->grad_b); LENSNET_FREE(t->input_grad); LENSNET_FREE(t->mark_grad);
  LENSNET_FREE(t->dropout_mask); LENSNET_FREE(t->mask_offset); LENSNET_FREE(t->bn_mean); LENSNET_FREE(t->bn_invstd);
  LENSNET_FREE(t->bn_offset); LENSNET_FREE(t->scratch); LENSNET_FREE(t->wgrad_images); LENSNET_FREE(t->captured_grad);
  LENSNET_FREE(t->flipped_weights); LENSNET_FREE(t->wgrad_offset); LENSNET_FREE(t->bgrad_offset);
  LENSNET_FREE(t->packed_raw); LENSNET_FREE(t->packed_fwd); LENSNET_FREE(t->packed_bwd);
  LENSNET_FREE(t->wino_fwd); LENSNET_FREE(t->wino_bwd);
  LENSNET_FREE(t->bgrad_images); LENSNET_FREE(t->run_tmp);
  LENSNET_FREE(t);
}

/* Room for every conv2d layer's packed weights (forward) and packed flipped weights (d input),
 * each rounded to 16 floats; 0 when out of memory. Layers whose sizes overflow get none. */
static int lensnet__trainer_packed_alloc(lensnet_trainer *t) {
  const lensnet_model *m = t->model;
  const lensnet__gemm_path *path;
  size_t l, total = 0, bytes;
  t->packed_simd = lensnet_simd_best();
  path = lensnet__gemm_path_for(t->packed_simd);
  t->packed_fwd = LENSNET__CAST(size_t *, LENSNET_MALLOC((m->layer_count + 1) * sizeof(size_t)));
  t->packed_bwd = LENSNET__CAST(size_t *, LENSNET_MALLOC((m->layer_count + 1) * sizeof(size_t)));
  t->wino_fwd = LENSNET__CAST(unsigned char *, LENSNET_MALLOC(m->layer_count + 1));
  t->wino_bwd = LENSNET__CAST(unsigned char *, LENSNET_MALLOC(m->layer_count + 1));
  if (!t->packed_fwd || !t->packed_bwd || !t->wino_fwd || !t->wino_bwd) return 0;
  for (l = 0; l < m->layer_count; l++) {
    const lensnet_layer *L = &m->layers[l];
    lensnet__conv_geom g, gt;
    size_t n;
    t->packed_fwd[l] = t->packed_bwd[l] = (size_t)-1;
    t->wino_fwd[l] = t->wino_bwd[l] = 0;
    if (L->type != LENSNET_LAYER_CONV2D) continue;
    g = lensnet__layer_geom(L, 1);
#ifdef LENSNET__HAVE_AVX512
    if (t->desc.winograd && t->packed_simd == LENSNET_SIMD_AVX512 && !(m->quant && m->quant[l].weight)) {
      int fwd = lensnet__wino_layer(m, l, 1), bwd = lensnet__conv_input_grad_geom(L, &gt) && lensnet__wino_ok(&gt);
      g.wino4x4 = gt.wino4x4 = 1;
      if (fwd) {
        t->packed_fwd[l] = total;
        t->wino_fwd[l] = 1;
        total += lensnet__round_up(lensnet__wino_weight_floats(&g), 16);
      }
      if (bwd) {
        t->packed_bwd[l] = total;
        t->wino_bwd[l] = 1;
        total += lensnet__round_up(lensnet__wino_weight_floats(&gt), 16);
      }
      if (fwd && bwd) continue;
      if (fwd || bwd) { /* the other direction keeps its panels */
        if (!fwd && (n = lensnet__conv_packed_floats(path, &g)) != 0 && n < ((size_t)-1 >> 2) - total) {
          t->packed_fwd[l] = total;
          total += lensnet__round_up(n, 16);
        }
        if (!bwd && lensnet__conv_input_grad_geom(L, &gt) && (n = lensnet__conv_packed_floats(path, &gt)) != 0 && n < ((size_t)-1 >> 2) - total) {
          t->packed_bwd[l] = total;
          total += lensnet__round_up(n, 16);
        }
        continue;
      }
    }
#endif
    if ((n = lensnet__conv_packed_floats(path, &g)) != 0 && n < ((size_t)-1 >> 2) - total) {
      t->packed_fwd[l] = total;
      total += lensnet__round_up(n, 16);
    }
    if (lensnet__conv_input_grad_geom(L, &gt) && (n = lensnet__conv_packed_floats(path, &gt)) != 0 && n < ((size_t)-1 >> 2) - total) {
      t->packed_bwd[l] = total;
      total += lensnet__round_up(n, 16);
    }
  }
  if (!total) return 1;
  if (!lensnet__mul_ok(total + LENSNET__ALIGN_SLACK, sizeof(float), &bytes) || !(t->packed_raw = LENSNET__CAST(float *, LENSNET_MALLOC(bytes))))
    return 0;
  t->packed = lensnet__align64(t->packed_raw);
  return 1;
}

/* Packs conv2d layer l's weights W (geometry g) at offset off of the trainer's packed buffer:
 * the GEMM's panels, or Winograd's U when wino is set. */
static void lensnet__trainer_pack(lensnet_trainer *t, const lensnet__conv_geom *g, const float *W, size_t off, int wino) {
  const lensnet__gemm_path *path = lensnet__gemm_path_for(t->packed_simd);
  size_t grp, K = (g->cin / g->groups) * g->kh * g->kw, m_pad = lensnet__round_up(g->cout / g->groups, path->mr);
#ifdef LENSNET__HAVE_AVX512
  if (wino) { lensnet__wino_weights(g, W, t->packed + off); return; }
#else
  (void)wino;
#endif
  for (grp = 0; grp < g->groups; grp++) lensnet__conv_pack_weights(path, g, W, grp, t->packed + off + grp * m_pad * K);
}

/* The packed weights of layer l for this run's path (NULL: none; the convolution packs them). */
static const float *lensnet__trainer_packed(const lensnet_trainer *t, size_t l, int backward) {
  size_t off;
  if (!t->packed || t->packed_simd != lensnet_simd_best() || t->model->layers[l].type != LENSNET_LAYER_CONV2D) return NULL;
  if (backward ? t->wino_bwd[l] : t->wino_fwd[l]) return NULL;
  off = backward ? t->packed_bwd[l] : t->packed_fwd[l];
  return off == (size_t)-1 ? NULL : t->packed + off;
}

/* Winograd's U of layer l for this step (forward) or this backward (flipped weights), or NULL. */
static const float *lensnet__trainer_wino(const lensnet_trainer *t, size_t l, int backward) {
  if (!t->packed || t->packed_simd != lensnet_simd_best() || !(backward ? t->wino_bwd[l] : t->wino_fwd[l])) return NULL;
  return t->packed + (backward ? t->packed_bwd[l] : t->packed_fwd[l]);
}

/* Allocates count elements of size elem, or sets *ok = 0 (on overflow or failure). */
static void *lensnet__alloc_or_flag(size_t count, size_t elem, int *ok) {
  size_t bytes;
  void *p;
  if (!*ok) return NULL;
  if (!lensnet__mul_ok(count ? count : 1, elem, &bytes)) { *ok = 0; return NULL; }
  p = LENSNET_MALLOC(bytes);
  if (!p) *ok = 0;
  else memset(p, 0, bytes);
  return p;
}

LENSNET_API lensnet_trainer_desc lensnet_trainer_desc_resolve(const lensnet_trainer_desc *desc) {
  lensnet_trainer_desc d;
  if (desc) d = *desc;
  else memset(&d, 0, sizeof d);
  if (d.batch_cap == 0) d.batch_cap = 32;
  return d;
}

static int lensnet__pool_keeps_argmax(const lensnet_model *m, size_t i, int lean);

/* May layer i of a lean trainer keep its output in its input's buffer? A ReLU after a convolution
 * or dense layer: the layer below needs only its own input in its backward, never its output,
 * which the ReLU may overwrite (the ReLU's backward reads the ReLU's output). A dropout after one
 * of those or after a ReLU: the ReLU's backward asks only whether its output is positive, which
 * dropout keeps where it keeps a value, and where it drops one the gradient reaching the ReLU is
 * zero anyway. The same for a dropout after a 2x2 max pool that keeps its winners, after a ReLU
 * over a convolution's output: that pool's backward (with the ReLU's, always, in such a chain)
 * asks only whether each window's maximum is positive. Nothing else reads those outputs (marks
 * keep their own copies). */
static int lensnet__writes_over_input(const lensnet_model *m, size_t i) {
  lensnet_layer_type here = m->layers[i].type, before = m->layers[i - 1].type;
  int producer = before == LENSNET_LAYER_CONV2D || before == LENSNET_LAYER_DENSE;
  if (here == LENSNET_LAYER_RELU) return producer;
  if (here == LENSNET_LAYER_DROPOUT)
    return producer || before == LENSNET_LAYER_RELU ||
           (i >= 3 && lensnet__pool_keeps_argmax(m, i - 1, 1) && m->layers[i - 3].type == LENSNET_LAYER_CONV2D);
  return 0;
}

/* Does layer i of a lean trainer (not capturing) keep, per output, which input of its window won?
 * A 2x2 stride-2 max pool of even size right after a ReLU: its backward then needs neither its
 * input nor the ReLU's output, and does the ReLU's backward too (lensnet__maxpool_relu_backward). */
static int lensnet__pool_keeps_argmax(const lensnet_model *m, size_t i, int lean) {
  const lensnet_layer *L = &m->layers[i];
  return lean && i > 0 && L->type == LENSNET_LAYER_MAXPOOL && L->kernel == 2 && L->stride == 2 && L->padding == 0 &&
         L->in_h == 2 * L->out_h && L->in_w == 2 * L->out_w && m->layers[i - 1].type == LENSNET_LAYER_RELU;
}

LENSNET_API lensnet_result lensnet_trainer_create(lensnet_model *m, const lensnet_trainer_desc *desc, lensnet_trainer **out,
                                                  lensnet_error *err) {
  lensnet_trainer *t;
  lensnet_trainer_desc d = lensnet_trainer_desc_resolve(desc);
  size_t i, acts = 0, maxact = m->in_c * m->in_h * m->in_w, masks = 0, bn = 0, marks = 0, scratch = 0, wgrad = 0, bgrad = 0, workers;
  size_t per_image_max, batch_cap = d.batch_cap;
  int ok = 1;
  *out = NULL;
  if (m->prealloc_end)
    return lensnet__fail(err, LENSNET_ERR_ARG, "trainer: a preallocated model's values are the caller's and read-only; train a model from "
                         "lensnet_model_load or lensnet_model_create");
  if (d.relu_backward != LENSNET_RELU_BACKWARD_NORMAL && d.relu_backward != LENSNET_RELU_BACKWARD_GUIDED)
    return lensnet__fail(err, LENSNET_ERR_ARG, "unknown relu_backward mode %d", (int)d.relu_backward);
  if (d.capture && d.capture_layer >= m->layer_count)
    return lensnet__fail(err, LENSNET_ERR_ARG, "capture_layer %lu does not exist: the model has layers 0..%lu",
                         (unsigned long)d.capture_layer, (unsigned long)m->layer_count - 1);
  t = LENSNET__CAST(lensnet_trainer *, lensnet__alloc_or_flag(1, sizeof *t, &ok));
  if (!t) return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  t->model = m;
  t->batch_cap = batch_cap;
  if (d.parallel) t->parallel = *d.parallel;
  d.parallel = &t->parallel;
  t->desc = d;
  workers = lensnet__workers(t);
  t->capture_layer = d.capture ? (int)d.capture_layer : -1;
  t->compute_input_grad = d.input_grad != 0;
  t->skip_param_grads = d.skip_param_grads != 0;
  t->no_dropout = d.no_dropout != 0;
  t->lean = d.lean_activations && !d.capture;
  t->relu_backward = d.relu_backward;
  lensnet_rng_seed(&t->rng, d.seed);
  t->act_offset = LENSNET__CAST(size_t *, lensnet__alloc_or_flag(m->layer_count, sizeof(size_t), &ok));
  t->mask_offset = LENSNET__CAST(size_t *, lensnet__alloc_or_flag(m->layer_count, sizeof(size_t), &ok));
  t->bn_offset = LENSNET__CAST(size_t *, lensnet__alloc_or_flag(m->layer_count, sizeof(size_t), &ok));
  t->wgrad_offset = LENSNET__CAST(size_t *, lensnet__alloc_or_flag(m->layer_count, sizeof(size_t), &ok));
  t->bgrad_offset = LENSNET__CAST(size_t *, lensnet__alloc_or_flag(m->layer_count, sizeof(size_t), &ok));
  if (!ok) { lensnet_trainer_free(t); return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory"); }
  for (i = 0; i < m->layer_count; i++) {
    const lensnet_layer *L = &m->layers[i];
    const lensnet__layer_kind *kind = lensnet__kind(L->type);
    size_t o = L->out_c * L->out_h * L->out_w;
    if (t->lean && i > 0 && lensnet__writes_over_input(m, i)) t->act_offset[i] = t->act_offset[i - 1];
    else {
      t->act_offset[i] = acts;
      acts += o;
    }
    if (o > maxact) maxact = o;
    if ((kind->flags & LENSNET__KIND_MASK) || lensnet__pool_keeps_argmax(m, i, t->lean)) { t->mask_offset[i] = masks; masks += o; }
    if (kind->flags & LENSNET__KIND_STATS) { t->bn_offset[i] = bn; bn += L->in_c; }
    if (kind->flags & LENSNET__KIND_SAVES) marks += o;
    if (kind->scratch) {
      size_t s = kind->scratch(L, 1, 1);
      if (s > scratch) scratch = s;
    }
    if (t->lean && i > 0 && lensnet__pool_keeps_argmax(m, i, 1) && i >= 2 && lensnet__conv_pool_band_floats(m, i - 2) > 0) {
      /* the convolution two layers up may pool on the way: its forward's scratch and a band */
      lensnet__conv_geom g1 = lensnet__layer_geom(&m->layers[i - 2], 1);
      size_t s = lensnet__conv_forward_scratch_floats(&g1) + lensnet__conv_pool_band_floats(m, i - 2);
      if (s > scratch) scratch = s;
    }
    if (kind->backward_reduce) { /* per-image weight and bias gradient slots */
      t->wgrad_offset[i] = wgrad;
      wgrad += lensnet__conv_weight_floats(L);
      t->bgrad_offset[i] = bgrad;
      bgrad += L->out_c;
    }
  }
  per_image_max = maxact;
  t->mark_floats = marks;
  /* One slot of convolution gradients per image, or fewer for large models (ResNets): slot
   * b % slots, filled by its images in order, so the sum is still the same for any threads. */
  t->grad_slots = batch_cap;
  if (wgrad && batch_cap > 1 && wgrad > LENSNET_GRADIENT_SLOT_FLOATS / batch_cap) {
    t->grad_slots = LENSNET_GRADIENT_SLOT_FLOATS / wgrad;
    if (t->grad_slots < 1) t->grad_slots = 1;
  }
  /* One worker adds each image's gradients as soon as its backward ends, in the order the slots'
   * sum would (image 0, 1, ...: the same bits), from one slot that stays in cache. Not for p4
   * layers, whose reduction sums the slots before folding them. */
  t->reduce_each_image = workers == 1 && t->grad_slots == batch_cap && batch_cap > 1;
  for (i = 0; i < m->layer_count; i++)
    if (lensnet__kind(m->layers[i].type)->backward_reduce && m->layers[i].type != LENSNET_LAYER_CONV2D) t->reduce_each_image = 0;
  if (t->reduce_each_image) t->grad_slots = 1;
  /* sizes scale with the batch; check the products once */
  if (!lensnet__mul_ok(acts, batch_cap, &acts) || !lensnet__mul_ok(maxact, batch_cap, &maxact) ||
      !lensnet__mul_ok(masks, batch_cap, &masks) || !lensnet__mul_ok(marks, batch_cap, &marks) ||
      !lensnet__mul_ok(wgrad, t->grad_slots, &i) || !lensnet__mul_ok(bgrad, t->grad_slots, &i) ||
      !lensnet__mul_ok(scratch, workers, &i) || !lensnet__mul_ok(per_image_max, 2 * workers, &i)) {
    lensnet_trainer_free(t);
    return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "a batch of %lu is too large for this model", (unsigned long)batch_cap);
  }
  t->scratch_per_worker = scratch;
  t->run_tmp_floats = per_image_max;
  t->input = LENSNET__CAST(float *, lensnet__alloc_or_flag(batch_cap * m->in_c * m->in_h * m->in_w, sizeof(float), &ok));
  t->input_grad = LENSNET__CAST(float *, lensnet__alloc_or_flag(batch_cap * m->in_c * m->in_h * m->in_w, sizeof(float), &ok));
  t->acts = LENSNET__CAST(float *, lensnet__alloc_or_flag(acts, sizeof(float), &ok));
  t->grads = LENSNET__CAST(float *, lensnet__alloc_or_flag(m->value_count, sizeof(float), &ok));
  t->grad_a = LENSNET__CAST(float *, lensnet__alloc_or_flag(maxact, sizeof(float), &ok));
  t->grad_b = LENSNET__CAST(float *, lensnet__alloc_or_flag(maxact, sizeof(float), &ok));
  t->captured_grad = LENSNET__CAST(float *, lensnet__alloc_or_flag(maxact, sizeof(float), &ok));
  t->mark_grad = LENSNET__CAST(float *, lensnet__alloc_or_flag(marks, sizeof(float), &ok));
  t->dropout_mask = LENSNET__CAST(unsigned char *, lensnet__alloc_or_flag(masks, 1, &ok));
  t->bn_mean = LENSNET__CAST(float *, lensnet__alloc_or_flag(bn, sizeof(float), &ok));
  t->bn_invstd = LENSNET__CAST(float *, lensnet__alloc_or_flag(bn, sizeof(float), &ok));
  t->scratch = LENSNET__CAST(float *, lensnet__alloc_or_flag(scratch * workers, sizeof(float), &ok));
  t->wgrad_images = LENSNET__CAST(float *, lensnet__alloc_or_flag(wgrad * t->grad_slots, sizeof(float), &ok));
  t->bgrad_images = LENSNET__CAST(float *, lensnet__alloc_or_flag(bgrad * t->grad_slots, sizeof(float), &ok));
  t->flipped_weights = LENSNET__CAST(float *, lensnet__alloc_or_flag(wgrad, sizeof(float), &ok));
  t->run_tmp = LENSNET__CAST(float *, lensnet__alloc_or_flag(per_image_max * 2 * workers, sizeof(float), &ok));
  if (ok) ok = lensnet__trainer_packed_alloc(t);
  if (!ok) { lensnet_trainer_free(t); return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory for training buffers (batch %lu)", (unsigned long)batch_cap); }
  *out = t;
  return LENSNET_OK;
}

LENSNET_API const float *lensnet_trainer_activation(const lensnet_trainer *t, size_t layer) {
  return layer < t->model->layer_count ? t->acts + t->act_offset[layer] * t->batch_cap : NULL;
}

LENSNET_API const float *lensnet_trainer_output(const lensnet_trainer *t) {
  return lensnet_trainer_activation(t, t->model->layer_count - 1);
}

LENSNET_API void lensnet_trainer_zero_grad(lensnet_trainer *t) {
  memset(t->grads, 0, t->model->value_count * sizeof(float));
}

LENSNET_API float *lensnet_trainer_grads(lensnet_trainer *t) { return t->grads; }
LENSNET_API const float *lensnet_trainer_input_grad(const lensnet_trainer *t) { return t->compute_input_grad ? t->input_grad : NULL; }
LENSNET_API const float *lensnet_trainer_captured_grad(const lensnet_trainer *t) { return t->capture_layer >= 0 ? t->captured_grad : NULL; }
LENSNET_API lensnet_model *lensnet_trainer_model(const lensnet_trainer *t) { return t->model; }
LENSNET_API lensnet_trainer_desc lensnet_trainer_settings(const lensnet_trainer *t) { return t->desc; }
LENSNET_API lensnet_rng *lensnet_trainer_rng(lensnet_trainer *t) { return &t->rng; }

/* col2im: adds columns back into the image, the transpose of lensnet__im2col. */
static void lensnet__col2im_add(const lensnet__conv_geom *g, const float *col, size_t cin_g, float *img) {
  size_t c, i, j, y, x, P = g->oh * g->ow;
  for (c = 0; c < cin_g; c++)
    for (i = 0; i < g->kh; i++)
      for (j = 0; j < g->kw; j++) {
        const float *src = col + ((c * g->kh + i) * g->kw + j) * P;
        float *dst = img + c * g->h * g->w;
        for (y = 0; y < g->oh; y++) {
          long iy = (long)(y * g->stride + i) - (long)g->pad;
          if (iy < 0 || iy >= (long)g->h) continue;
          for (x = 0; x < g->ow; x++) {
            long ix = (long)(x * g->stride + j) - (long)g->pad;
            if (ix >= 0 && ix < (long)g->w) dst[iy * (long)g->w + ix] += src[y * g->ow + x];
          }
        }
      }
}

/* Max-pool backward: the gradient goes to the first maximum of each window (PyTorch's choice). */
/* 2x2 max-pool backward without branches: the window's first input equal to the pooled value
 * takes the gradient (PyTorch's first-maximum rule); a NaN window takes the general route. */
#ifdef LENSNET__HAVE_AVX512
/* One row of windows of the 2x2 max pool's backward by AVX-512, 16 windows a step, the scalar
 * rule lane by lane: the gradient goes to the first of the four inputs (r0 even, r0 odd, r1 even,
 * r1 odd) equal to the window's maximum m, or, when m is NaN, to the first NaN; +0 elsewhere. */
LENSNET__TARGET_AVX512 static void lensnet__maxpool_backward_row_avx512(const float *r0, const float *r1, const float *m_row,
                                                                       const float *g_row, float *d0, float *d1, size_t ow) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  size_t x;
  for (x = 0; x < ow; x += 16) {
    size_t n = ow - x < 16 ? ow - x : 16;
    __mmask16 wn = lensnet__avx512_first_lanes(n), in0 = lensnet__avx512_first_lanes(2 * n),
              in1 = lensnet__avx512_first_lanes(2 * n > 16 ? 2 * n - 16 : 0);
    __m512 a0 = _mm512_maskz_loadu_ps(in0, r0 + 2 * x), a1 = _mm512_maskz_loadu_ps(in1, r0 + 2 * x + 16);
    __m512 b0 = _mm512_maskz_loadu_ps(in0, r1 + 2 * x), b1 = _mm512_maskz_loadu_ps(in1, r1 + 2 * x + 16);
    __m512 ae = _mm512_permutex2var_ps(a0, even, a1), ao = _mm512_permutex2var_ps(a0, odd, a1);
    __m512 be = _mm512_permutex2var_ps(b0, even, b1); /* r1 odd is what is left */
    __m512 m = _mm512_maskz_loadu_ps(wn, m_row + x), g = _mm512_maskz_loadu_ps(wn, g_row + x);
    __mmask16 k0 = _mm512_cmp_ps_mask(ae, m, _CMP_EQ_OQ), k1, k2, k3, nan = _mm512_cmp_ps_mask(m, m, _CMP_UNORD_Q);
    __mmask16 q0 = _mm512_cmp_ps_mask(ae, ae, _CMP_UNORD_Q), q1, q2;
    k1 = (__mmask16)(~k0 & _mm512_cmp_ps_mask(ao, m, _CMP_EQ_OQ));
    k2 = (__mmask16)(~k0 & ~k1 & _mm512_cmp_ps_mask(be, m, _CMP_EQ_OQ));
    q1 = (__mmask16)(~q0 & _mm512_cmp_ps_mask(ao, ao, _CMP_UNORD_Q));
    q2 = (__mmask16)(~q0 & ~q1 & _mm512_cmp_ps_mask(be, be, _CMP_UNORD_Q));
    k0 = (__mmask16)((nan & q0) | (~nan & k0));
    k1 = (__mmask16)((nan & q1) | (~nan & k1));
    k2 = (__mmask16)((nan & q2) | (~nan & k2));
    k3 = (__mmask16)~(k0 | k1 | k2);
    {
      __m512 ge = _mm512_maskz_mov_ps(k0, g), go = _mm512_maskz_mov_ps(k1, g);
      __m512 he = _mm512_maskz_mov_ps(k2, g), ho = _mm512_maskz_mov_ps(k3, g);
      _mm512_mask_storeu_ps(d0 + 2 * x, in0, _mm512_permutex2var_ps(ge, lo, go));
      _mm512_mask_storeu_ps(d0 + 2 * x + 16, in1, _mm512_permutex2var_ps(ge, hi, go));
      _mm512_mask_storeu_ps(d1 + 2 * x, in0, _mm512_permutex2var_ps(he, lo, ho));
      _mm512_mask_storeu_ps(d1 + 2 * x + 16, in1, _mm512_permutex2var_ps(he, hi, ho));
    }
  }
}
#endif

LENSNET__VECTORIZE static void lensnet__maxpool2x2_backward(const lensnet_layer *L, size_t planes, const float *in, const float *out,
                                                            const float *dy, float *dx) {
  size_t plane, y, x, iw = L->in_w, ow = L->out_w;
  int avx512 = lensnet_simd_best() == LENSNET_SIMD_AVX512;
  (void)avx512;
  if (L->in_h != 2 * L->out_h || iw != 2 * ow) memset(dx, 0, planes * L->in_h * iw * sizeof(float)); /* floor-mode leftovers */
  for (plane = 0; plane < planes; plane++) {
    const float *src = in + plane * L->in_h * iw, *mx = out + plane * L->out_h * ow, *g = dy + plane * L->out_h * ow;
    float *d = dx + plane * L->in_h * iw;
    for (y = 0; y < L->out_h; y++) {
      const float *r0 = src + 2 * y * iw, *r1 = r0 + iw;
      float *d0 = d + 2 * y * iw, *d1 = d0 + iw;
#ifdef LENSNET__HAVE_AVX512
      if (avx512) { lensnet__maxpool_backward_row_avx512(r0, r1, mx + y * ow, g + y * ow, d0, d1, ow); continue; }
#endif
      for (x = 0; x < ow; x++) {
        float m = mx[y * ow + x], gv = g[y * ow + x];
        int e0 = r0[2 * x] == m, e1 = !e0 & (r0[2 * x + 1] == m), e2 = !e0 & !e1 & (r1[2 * x] == m), e3 = !e0 & !e1 & !e2;
        d0[2 * x] = e0 ? gv : 0.0f;
        d0[2 * x + 1] = e1 ? gv : 0.0f;
        d1[2 * x] = e2 ? gv : 0.0f;
        d1[2 * x + 1] = e3 ? gv : 0.0f;
      }
      for (x = 0; x < ow; x++) /* NaN windows: the gradient goes to the first NaN */
        if (mx[y * ow + x] != mx[y * ow + x]) {
          float gv = g[y * ow + x];
          int q = r0[2 * x] != r0[2 * x] ? 0 : r0[2 * x + 1] != r0[2 * x + 1] ? 1 : r1[2 * x] != r1[2 * x] ? 2 : 3;
          d0[2 * x] = q == 0 ? gv : 0.0f;
          d0[2 * x + 1] = q == 1 ? gv : 0.0f;
          d1[2 * x] = q == 2 ? gv : 0.0f;
          d1[2 * x + 1] = q == 3 ? gv : 0.0f;
        }
    }
  }
}

/* Pool backward; y_out (the pooled output, may be NULL) lets 2x2 max pools skip the search. */
static void lensnet__pool_backward(const lensnet_layer *L, size_t batch, const float *in, const float *y_out, const float *dy, float *dx) {
  size_t plane, y, x, i, j, planes = batch * L->in_c, k = L->kernel, s = L->stride;
  long pad = (long)L->padding;
  int is_max = L->type == LENSNET_LAYER_MAXPOOL;
  if (is_max && k == 2 && s == 2 && pad == 0 && y_out) {
    lensnet__maxpool2x2_backward(L, planes, in, y_out, dy, dx);
    return;
  }
  memset(dx, 0, planes * L->in_h * L->in_w * sizeof(float));
  for (plane = 0; plane < planes; plane++) {
    const float *src = in + plane * L->in_h * L->in_w;
    float *d = dx + plane * L->in_h * L->in_w;
    const float *g = dy + plane * L->out_h * L->out_w;
    for (y = 0; y < L->out_h; y++)
      for (x = 0; x < L->out_w; x++) {
        float gv = g[y * L->out_w + x], best = -INFINITY;
        long best_at = -1;
        for (i = 0; i < k; i++) {
          long iy = (long)(y * s + i) - pad;
          if (iy < 0 || iy >= (long)L->in_h) continue;
          for (j = 0; j < k; j++) {
            long ix = (long)(x * s + j) - pad, at;
            if (ix < 0 || ix >= (long)L->in_w) continue;
            at = iy * (long)L->in_w + ix;
            if (is_max) { if (best_at < 0 || src[at] > best || src[at] != src[at]) { best = src[at]; best_at = at; } }
            else d[at] += gv / (float)(k * k);
          }
        }
        if (is_max && best_at >= 0) d[best_at] += gv;
      }
  }
}

/* ---- the layer kinds' passes ----------------------------------------------------------------- */

static const float *lensnet__param_values(const lensnet_model *m, int param) {
  return param >= 0 ? m->values + m->params[param].offset : NULL;
}

static size_t lensnet__layer_in_n(const lensnet_layer *L) { return L->in_c * L->in_h * L->in_w; }
static size_t lensnet__layer_out_n(const lensnet_layer *L) { return L->out_c * L->out_h * L->out_w; }

static void lensnet__named_describe(const lensnet_layer *L, char *buf, size_t cap) { snprintf(buf, cap, "%s", L->name); }

/* Layers that pass their input on unchanged (flatten only renames the shape). */
static void lensnet__copy_forward(lensnet__pass *p) {
  if (p->y != p->x) memcpy(p->y, p->x, p->batch * lensnet__layer_in_n(p->L) * sizeof(float));
}

static void lensnet__copy_backward(const lensnet__pass *p, const float *dy, float *dx) {
  memcpy(dx, dy, p->batch * lensnet__layer_in_n(p->L) * sizeof(float));
}

/* Element-wise kinds run their pointwise function over the whole batch at once. */
static void lensnet__pointwise_forward(lensnet__pass *p) {
  lensnet__kind(p->L->type)->pointwise(p->m, p->L, 0, p->x, p->y, p->batch * lensnet__layer_in_n(p->L));
}

/* conv2d */
static void lensnet__conv2d_describe(const lensnet_layer *L, char *buf, size_t cap) {
  snprintf(buf, cap, "%s out=%lu kernel=%lu stride=%lu padding=%lu groups=%lu", L->name, (unsigned long)L->out,
           (unsigned long)L->kernel, (unsigned long)L->stride, (unsigned long)L->padding, (unsigned long)L->groups);
}

/* Floats of scratch the weight gradient without im2col (lensnet__conv_wgrad_direct) uses: the
 * padded input and the output gradient widened to the input's rows. */
static size_t lensnet__conv_wgrad_direct_floats(const lensnet__conv_geom *g) {
  size_t cin_g = g->cin / g->groups, cout_g = g->cout / g->groups, hp = g->h + 2 * g->pad, rs = g->w + 2 * g->pad;
  size_t pad_floats = g->pad ? lensnet__round_up(cin_g * hp * rs, 16) : 0;
  if (g->oh == 0 || g->ow == 0) return 0;
  return pad_floats + cout_g * lensnet__round_up((g->oh - 1) * rs + g->ow, 16) + LENSNET__ALIGN_SLACK;
}

static size_t lensnet__conv2d_scratch(const lensnet_layer *L, size_t batch, int training) {
  lensnet__conv_geom g = lensnet__layer_geom(L, batch), gt;
  size_t s, col, direct;
  if (!training) return lensnet__conv_forward_scratch_floats(&g); /* inference needs no im2col buffer */
  s = lensnet__conv_scratch_floats(&g);
  col = (L->in_c / L->groups) * L->kernel * L->kernel * L->out_h * L->out_w;
  if (s < col) s = col;
  g = lensnet__layer_geom(L, 1);
  direct = L->stride == 1 ? lensnet__conv_wgrad_direct_floats(&g) : 0; /* within a few of the activation's size */
  if (s < direct) s = direct;
  if (lensnet__conv_input_grad_geom(L, &gt)) {
    size_t st = lensnet__conv_forward_scratch_floats(&gt);
    if (st > s) s = st;
#ifdef LENSNET__HAVE_AVX512
    gt.wino4x4 = 1; /* desc.winograd */
    if (lensnet__wino_ok(&gt) && lensnet__wino_scratch_floats(&gt) > s) s = lensnet__wino_scratch_floats(&gt);
#endif
  }
#ifdef LENSNET__HAVE_AVX512
  g.wino4x4 = 1;
  if (lensnet__wino_ok(&g) && lensnet__wino_scratch_floats(&g) > s) s = lensnet__wino_scratch_floats(&g);
#endif
  return s;
}

/* At inference a ReLU right after the convolution is applied in its epilogue. */
static void lensnet__conv2d_layer_forward(lensnet__pass *p) {
  const lensnet_model *m = p->m;
  const lensnet_layer *L = p->L;
  lensnet__conv_geom g = lensnet__layer_geom(L, p->batch);
  int fuse = p->may_fuse && p->layer + 1 < m->layer_count && m->layers[p->layer + 1].type == LENSNET_LAYER_RELU;
  /* pooled on the way: at inference, and in a lean trainer that keeps the pool's winners (pool_arg) */
  const lensnet_layer *pool = fuse && (!p->t || p->pool_arg) && lensnet__conv_pool_band_floats(m, p->layer) ? &m->layers[p->layer + 2] : NULL;
#ifdef LENSNET__HAVE_AVX512
  if (p->wino && (!pool || !p->t)) { /* lensnet_model_pack_winograd's layers (pooled on the way in its output
                                       * transform); a trainer's (desc.winograd) are never pooled on the way */
    size_t b, in = L->in_c * L->in_h * L->in_w, out = pool ? L->out_c * pool->out_h * pool->out_w : L->out_c * L->out_h * L->out_w;
    const float *bias = lensnet__param_values(m, L->bias_param);
    g.n = 1;
    g.wino4x4 = p->t != NULL; /* a trainer's U is F(4x4, 3x3)'s where that applies */
    for (b = 0; b < p->batch; b++) lensnet__wino_conv_avx512(&g, p->x + b * in, p->wino, bias, fuse, pool != NULL, p->y + b * out, p->scratch);
    p->fused = pool ? 2 : fuse;
    return;
  }
#endif
  lensnet__conv2d_forward_prepacked(lensnet_simd_best(), &g, p->x, lensnet__param_values(m, L->weight), p->prepacked,
                                    lensnet__param_values(m, L->bias_param), fuse, pool, p->y, p->scratch, pool ? p->pool_arg : NULL);
  p->fused = pool ? 2 : fuse;
}

/* One image of a convolution run with weight W (needed only for d input at stride > 1; else the
 * flipped copy of backward_prepare serves): weight and bias gradients of the weight as run into
 * the image's slot (added when p->accumulate), summed by _reduce. */
#ifdef LENSNET__HAVE_AVX512
/* The sum of v's 16 lanes in a fixed order, the same under every compiler: halves, quarters,
 * then (l0 + l2) + (l1 + l3). */
LENSNET__INLINE LENSNET__TARGET_AVX512 float lensnet__avx512_sum(__m512 v) {
  __m256 h = _mm256_add_ps(_mm256_castpd_ps(_mm512_maskz_extractf64x4_pd((__mmask8)0xFF, _mm512_castps_pd(v), 0)),
                           _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd((__mmask8)0xFF, _mm512_castps_pd(v), 1)));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  float l[4];
  _mm_storeu_ps(l, q);
  return (l[0] + l[2]) + (l[1] + l[3]);
}

/* Five output channels by five weights of one K-block step: acc(r, c) += dy row r * x row c. */
#define LENSNET__WG_ROW(r) \
  d = _mm512_loadu_ps(dy##r + q); \
  a##r##0 = _mm512_fmadd_ps(d, x0, a##r##0); a##r##1 = _mm512_fmadd_ps(d, x1, a##r##1); \
  a##r##2 = _mm512_fmadd_ps(d, x2, a##r##2); a##r##3 = _mm512_fmadd_ps(d, x3, a##r##3); \
  a##r##4 = _mm512_fmadd_ps(d, x4, a##r##4);
#define LENSNET__WG_STEP(LOAD) { \
    __m512 x0 = LOAD(xr0 + q), x1 = LOAD(xr1 + q), x2 = LOAD(xr2 + q), x3 = LOAD(xr3 + q), x4 = LOAD(xr4 + q), d; \
    LENSNET__WG_ROW(0) LENSNET__WG_ROW(1) LENSNET__WG_ROW(2) LENSNET__WG_ROW(3) LENSNET__WG_ROW(4) }
#define LENSNET__WG_PLAIN(ptr) _mm512_loadu_ps(ptr)
#define LENSNET__WG_TAIL(ptr) _mm512_maskz_loadu_ps(tail, ptr)
/* The five sums of one row of accumulators, each in lensnet__avx512_sum's order (the same bits),
 * by a transposing tree: four levels of two shuffles and one add, shared between the vectors
 * (C1: halves, C2: quarters, C3: l0 + l2 and l1 + l3, C4: their sum), then a permutation to
 * lanes 0-4: a fifth of the instructions of five separate sums. w[0 .. n - 1] (+)= the sums. */
#define LENSNET__WG_C1(a, b) _mm512_add_ps(_mm512_maskz_shuffle_f32x4(0xFFFF, a, b, 0x44), _mm512_maskz_shuffle_f32x4(0xFFFF, a, b, 0xEE))
#define LENSNET__WG_C2(a, b) _mm512_add_ps(_mm512_maskz_shuffle_f32x4(0xFFFF, a, b, 0x88), _mm512_maskz_shuffle_f32x4(0xFFFF, a, b, 0xDD))
#define LENSNET__WG_C3(a, b) _mm512_add_ps(_mm512_maskz_shuffle_ps(0xFFFF, a, b, 0x44), _mm512_maskz_shuffle_ps(0xFFFF, a, b, 0xEE))
#define LENSNET__WG_C4(a, b) _mm512_add_ps(_mm512_maskz_shuffle_ps(0xFFFF, a, b, 0x88), _mm512_maskz_shuffle_ps(0xFFFF, a, b, 0xDD))
LENSNET__INLINE LENSNET__TARGET_AVX512 void lensnet__avx512_store_sums5(float *w, size_t n, int accumulate, __m512 a0, __m512 a1,
                                                                         __m512 a2, __m512 a3, __m512 a4) {
  __m512 v0 = LENSNET__WG_C1(a0, a1), v1 = LENSNET__WG_C1(a2, a3), v2 = LENSNET__WG_C1(a4, a4);
  __m512 w0 = LENSNET__WG_C2(v0, v1), w1 = LENSNET__WG_C2(v2, v2), r = LENSNET__WG_C3(w0, w1), f = LENSNET__WG_C4(r, r);
  /* lane 4c of f holds the sum of a_c (c < 4), lane 1 that of a4 */
  __mmask16 m = lensnet__avx512_first_lanes(n < 5 ? n : 5);
  __m512 sums = _mm512_maskz_permutexvar_ps(0xFFFF, _mm512_setr_epi32(0, 4, 8, 12, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), f);
  __m512 old = accumulate ? _mm512_maskz_loadu_ps(m, w) : _mm512_setzero_ps();
  _mm512_mask_storeu_ps(w, m, _mm512_add_ps(old, sums));
}
#define LENSNET__WG_STORE_ROW(r) \
  if (co + (r) < cout) lensnet__avx512_store_sums5(dw + (co + (r)) * K + k, K - k, accumulate, a##r##0, a##r##1, a##r##2, a##r##3, a##r##4);

/* One image's weight gradient of a stride-1 convolution without im2col (AVX-512):
 * dw[co][k] (+)= sum over q of dyw[co][q] * x[off(k) + q], with pixels q counted across whole
 * input rows as in lensnet__conv_rows_direct_avx512: dyw is the output gradient laid out with the
 * input's row stride and zeros in the kw - 1 columns between rows and past its end (to a multiple
 * of 16), so that every product a column of im2col would hold is here and no other counts (a
 * product with a dropped column is zero, unless that input is infinite or NaN, when the training
 * has failed anyway). Each of the 5 x 5 sums is 16 lanes of partial sums added at the end. */
LENSNET__TARGET_AVX512 static void lensnet__conv_wgrad_direct_avx512(size_t cout, size_t K, const uint32_t *koff, const float *x,
                                                                    const float *dyw, size_t pw, float *dw, int accumulate) {
  size_t co, k, q, full = pw / 16 * 16, ld = lensnet__round_up(pw, 16); /* ld: dyw's row length */
  __mmask16 tail = lensnet__avx512_first_lanes(pw - full);
  for (co = 0; co < cout; co += 5) { /* rows past cout repeat the last one, and are not stored */
    const float *dy0 = dyw + co * ld, *dy1 = dyw + (co + 1 < cout ? co + 1 : cout - 1) * ld;
    const float *dy2 = dyw + (co + 2 < cout ? co + 2 : cout - 1) * ld, *dy3 = dyw + (co + 3 < cout ? co + 3 : cout - 1) * ld;
    const float *dy4 = dyw + (co + 4 < cout ? co + 4 : cout - 1) * ld;
    for (k = 0; k < K; k += 5) {
      const float *xr0 = x + koff[k], *xr1 = x + koff[k + 1 < K ? k + 1 : K - 1], *xr2 = x + koff[k + 2 < K ? k + 2 : K - 1];
      const float *xr3 = x + koff[k + 3 < K ? k + 3 : K - 1], *xr4 = x + koff[k + 4 < K ? k + 4 : K - 1];
      __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a04 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
      __m512 a14 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a24 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
      __m512 a34 = a00, a40 = a00, a41 = a00, a42 = a00, a43 = a00, a44 = a00;
      for (q = 0; q < full; q += 16) LENSNET__WG_STEP(LENSNET__WG_PLAIN)
      if (full < pw) { q = full; LENSNET__WG_STEP(LENSNET__WG_TAIL) }
      LENSNET__WG_STORE_ROW(0) LENSNET__WG_STORE_ROW(1) LENSNET__WG_STORE_ROW(2) LENSNET__WG_STORE_ROW(3) LENSNET__WG_STORE_ROW(4)
    }
  }
}

/* dyw[c] = channel c of the output gradient dy [cout, oh, ow] with its rows rs apart, zeros in the
 * rs - ow columns after each row and after the last row up to ld; one masked load and store per
 * 16 floats (a memcpy and a memset per row of 30 floats cost more than the copy). With db, db[c]
 * (+)= the channel's sum: the bias gradient, from the same loads (16 lanes of partial sums in
 * row order, then lensnet__avx512_sum). */
LENSNET__TARGET_AVX512 static void lensnet__wgrad_widen_avx512(const float *dy, size_t cout, size_t oh, size_t ow, size_t rs,
                                                               size_t ld, float *dyw, float *db, int accumulate) {
  size_t c, y, v;
  for (c = 0; c < cout; c++) {
    const float *src = dy + c * oh * ow;
    float *dst = dyw + c * ld;
    __m512 sum = _mm512_setzero_ps();
    for (y = 0; y < oh; y++, src += ow, dst += rs) {
      size_t n = y + 1 < oh ? rs : ld - (oh - 1) * rs; /* floats of dyw this row fills */
      for (v = 0; v < n; v += 16) {
        __m512 d = _mm512_maskz_loadu_ps(lensnet__avx512_first_lanes(v < ow ? ow - v : 0), src + v);
        _mm512_mask_storeu_ps(dst + v, lensnet__avx512_first_lanes(n - v), d);
        sum = _mm512_add_ps(sum, d);
      }
    }
    if (db) db[c] = (accumulate ? db[c] : 0.0f) + lensnet__avx512_sum(sum);
  }
}

/* One image-group's weight gradient by lensnet__conv_wgrad_direct_avx512, with the padded input
 * and the widened output gradient in scratch (scratch_floats of it). Returns 0, computing
 * nothing, where that path does not apply (stride > 1, K or the offsets too large, more than half
 * the lanes dropped, not enough scratch): the caller then takes im2col and the GEMM. Small
 * images take it too: the GEMM's alternative gathers op(B) = im2col^T, which cost OU-66's layers
 * of 12 x 12 and below more than a third of lanes spent on dropped columns. */
static int lensnet__conv_wgrad_direct(const lensnet__conv_geom *g, const float *img, const float *dy, float *scratch,
                                      size_t scratch_floats, float *dw, float *db, int accumulate) {
  size_t cin_g = g->cin / g->groups, cout_g = g->cout / g->groups, K = cin_g * g->kh * g->kw;
  size_t hp = g->h + 2 * g->pad, rs = g->w + 2 * g->pad, pw, ld, pad_floats, k, c = 0, i = 0, j = 0;
  uint32_t koff[LENSNET__DIRECT_K_MAX];
  float *dyw;
  const float *x = img;
  if (lensnet_simd_best() != LENSNET_SIMD_AVX512 || g->stride != 1 || K == 0 || K > LENSNET__DIRECT_K_MAX || g->oh == 0 ||
      g->ow == 0 || 2 * (rs - g->ow) > rs || cin_g * hp * rs >= ((size_t)1 << 31))
    return 0;
  pw = (g->oh - 1) * rs + g->ow;
  ld = lensnet__round_up(pw, 16);
  pad_floats = g->pad ? lensnet__round_up(cin_g * hp * rs, 16) : 0;
  if (lensnet__conv_wgrad_direct_floats(g) > scratch_floats) return 0;
  dyw = lensnet__align64(scratch) + pad_floats;
  if (g->pad) {
    lensnet__pad_image(g, img, cin_g, lensnet__align64(scratch));
    x = lensnet__align64(scratch);
  }
  lensnet__wgrad_widen_avx512(dy, cout_g, g->oh, g->ow, rs, ld, dyw, db, accumulate);
  for (c = 0, k = 0; k < K; k++) {
    koff[k] = (uint32_t)(c * hp * rs + i * rs + j);
    if (++j == g->kw) {
      j = 0;
      if (++i == g->kh) { i = 0; c++; }
    }
  }
  lensnet__conv_wgrad_direct_avx512(cout_g, K, koff, x, dyw, pw, dw, accumulate);
  return 1;
}
#endif

static void lensnet__conv_backward_image(const lensnet__pass *p, const float *W, const float *dy, float *dx) {
  lensnet_trainer *t = p->t;
  const lensnet_layer *L = p->L;
  size_t l = p->layer, slot = p->image % t->grad_slots, in_n = lensnet__layer_in_n(L);
  lensnet__conv_geom g = lensnet__layer_geom(L, 1), gt;
  size_t cin_g = L->in_c / L->groups, cout_g = L->out_c / L->groups, K = cin_g * L->kernel * L->kernel, P = L->out_h * L->out_w, grp, co;
  float *col = p->scratch; /* lensnet__conv2d_scratch(L, 1, 1) floats, at least K * P */
  float *dw = t->wgrad_images + t->wgrad_offset[l] * t->grad_slots + slot * lensnet__conv_weight_floats(L);
  float *db = L->bias_param >= 0 ? t->bgrad_images + t->bgrad_offset[l] * t->grad_slots + slot * L->out_c : NULL;
  int flipped = dx && lensnet__conv_input_grad_geom(L, &gt);
  if (dx && !flipped) memset(dx, 0, in_n * sizeof(float));
  for (grp = 0; grp < L->groups; grp++) {
    const float *img = p->x + grp * cin_g * L->in_h * L->in_w, *dyg = dy + grp * cout_g * P;
    if (!t->skip_param_grads) { /* the weight gradient and, with a bias, its gradient: the sums of dy's channels */
      float *dbg = db ? db + grp * cout_g : NULL;
#ifdef LENSNET__HAVE_AVX512
      if (!lensnet__conv_wgrad_direct(&g, img, dyg, col, lensnet__conv2d_scratch(L, 1, 1), dw + grp * cout_g * K, dbg, p->accumulate))
#endif
      {
        lensnet__im2col(&g, img, cin_g, col);
        lensnet_sgemm(0, 1, cout_g, K, P, 1.0f, dyg, P, col, P, p->accumulate ? 1.0f : 0.0f, dw + grp * cout_g * K, K);
        if (dbg)
          for (co = 0; co < cout_g; co++) dbg[co] = (p->accumulate ? dbg[co] : 0.0f) + lensnet__sum(dyg + co * P, P);
      }
    }
    if (dx && !flipped) {
      lensnet_sgemm(1, 0, K, P, cout_g, 1.0f, W + grp * cout_g * K, K, dyg, P, 0.0f, col, P);
      lensnet__col2im_add(&g, col, cin_g, dx + grp * cin_g * L->in_h * L->in_w);
    }
  }
#ifdef LENSNET__HAVE_AVX512
  if (flipped && lensnet__trainer_wino(t, l, 1)) { /* desc.winograd: d input by F(4x4, 3x3) or F(2x2, 3x3) */
    gt.wino4x4 = 1;
    lensnet__wino_conv_avx512(&gt, dy, lensnet__trainer_wino(t, l, 1), NULL, 0, 0, dx, col);
    flipped = 0;
  }
#endif
  if (flipped)
    lensnet__conv2d_forward_prepacked(lensnet_simd_best(), &gt, dy, t->flipped_weights + t->wgrad_offset[l], lensnet__trainer_packed(t, l, 1), NULL, 0,
                                      NULL, dx, col, NULL);
}

static void lensnet__conv2d_backward(const lensnet__pass *p, const float *dy, float *dx) {
  lensnet__conv_backward_image(p, lensnet__param_values(p->m, p->L->weight), dy, dx);
}

static void lensnet__conv2d_backward_prepare(lensnet_trainer *t, size_t l) {
  const lensnet_layer *L = &t->model->layers[l];
  lensnet__conv_geom gt;
  lensnet__flip_weights(L, t->model->values + t->model->params[L->weight].offset, t->flipped_weights + t->wgrad_offset[l]);
  if (t->packed && t->packed_bwd[l] != (size_t)-1 && lensnet__conv_input_grad_geom(L, &gt)) {
    gt.wino4x4 = 1;
    lensnet__trainer_pack(t, &gt, t->flipped_weights + t->wgrad_offset[l], t->packed_bwd[l], t->wino_bwd[l]);
  }
}

LENSNET__VECTORIZE static void lensnet__add_into(float *LENSNET__RESTRICT dst, const float *LENSNET__RESTRICT src, size_t n) {
  size_t k;
  for (k = 0; k < n; k++) dst[k] += src[k];
}

/* Weight and bias gradients summed in slot order: the same for any number of threads. */
static void lensnet__conv2d_backward_reduce(lensnet_trainer *t, size_t l, size_t batch) {
  const lensnet_model *m = t->model;
  const lensnet_layer *C = &m->layers[l];
  float *dW = t->grads + m->params[C->weight].offset;
  size_t wn = lensnet__conv_weight_floats(C), b, k, slots = batch < t->grad_slots ? batch : t->grad_slots;
  for (b = 0; b < slots; b++) lensnet__add_into(dW, t->wgrad_images + t->wgrad_offset[l] * t->grad_slots + b * wn, wn);
  if (C->bias_param >= 0) {
    float *db = t->grads + m->params[C->bias_param].offset;
    for (b = 0; b < slots; b++) {
      const float *g = t->bgrad_images + t->bgrad_offset[l] * t->grad_slots + b * C->out_c;
      for (k = 0; k < C->out_c; k++) db[k] += g[k];
    }
  }
}

/* The outputs inside r by direct summation, taps in the order channel, row, column, then the bias. */
static void lensnet__conv2d_rect(const lensnet_model *m, const lensnet_layer *L, const float *in, float *out, lensnet_rect r) {
  const float *W = m->values + m->params[L->weight].offset, *bias = lensnet__param_values(m, L->bias_param);
  long y, x, ky, kx, iy, ix, k = (long)L->kernel, s = (long)L->stride, p = (long)L->padding, ih = (long)L->in_h, iw = (long)L->in_w;
  long oh = (long)L->out_h, ow = (long)L->out_w;
  size_t c, ci, cin_g = L->in_c / L->groups, cout_g = L->out_c / L->groups;
  for (c = 0; c < L->out_c; c++) {
    const float *plane = in + (c / cout_g) * cin_g * (size_t)(ih * iw);
    for (y = r.y0; y <= r.y1; y++)
      for (x = r.x0; x <= r.x1; x++) {
        float acc = 0.0f;
        for (ci = 0; ci < cin_g; ci++) {
          const float *wk = W + (c * cin_g + ci) * (size_t)(k * k), *src = plane + ci * (size_t)(ih * iw);
          for (ky = 0; ky < k; ky++) {
            iy = y * s - p + ky;
            if (iy < 0 || iy >= ih) continue;
            for (kx = 0; kx < k; kx++) {
              ix = x * s - p + kx;
              if (ix >= 0 && ix < iw) acc += wk[ky * k + kx] * src[iy * iw + ix];
            }
          }
        }
        out[c * (size_t)(oh * ow) + (size_t)(y * ow + x)] = bias ? acc + bias[c] : acc;
      }
  }
}

/* p4 group convolutions (Cohen & Welling 2016, "Group Equivariant Convolutional Networks", ICML).
 * A p4 feature map has 4 planes per channel, one per rotation r = 0..3 (r quarter turns), plane
 * c * 4 + r: PyTorch's [N, C, 4, H, W] viewed as [N, 4C, H, W]. p4_lift correlates an ordinary
 * image with one filter bank turned 4 times; p4_conv correlates a p4 map with filters that live
 * on the group, turned in space and shifted cyclically along their orientation axis. Each layer
 * stores its filters once and expands them, on every pass, into the weight of an ordinary
 * convolution [4 out, in_c, k, k], which the GEMM path then runs like conv2d (expanding costs one
 * read per expanded weight, about 1/(out_h * out_w) of the convolution's multiply-adds); the
 * backward pass computes that convolution's weight gradient and sums it back onto the stored
 * filters (the transpose of the expansion). The bias is one per channel, shared by its 4 planes.
 *
 * Turning: rot(w)[i][j] = w[j][k-1-i], a quarter turn counterclockwise as an array with row 0 on
 * top is displayed (NumPy's np.rot90(w), torch.rot90(w, 1, (-2, -1))). Expanded weights:
 *   p4_lift, stored [out, in, k, k]:     E[c*4+r][i]     = rot^r(W[c][i])
 *   p4_conv, stored [out, in, 4, k, k]:  E[c*4+r][i*4+s] = rot^r(W[c][i][(s - r) mod 4])
 * i.e. PyTorch's torch.rot90(W.roll(r, 2), r, (3, 4)) for orientation r of p4_conv. With those,
 * turning the input a quarter turn (rot) turns every output plane and moves plane r to r + 1:
 *   out'[c*4 + (r+1) mod 4] = rot(out[c*4 + r])
 * for square inputs, up to rounding (the same products are summed in another order): always at
 * stride 1, and at stride s when (h + 2 padding - k) is a multiple of s, so that the sampled
 * grid turns onto itself (the same holds for max and average pools). p4_pool (max or mean over
 * the 4 planes of each channel) turns that into invariance: its output only turns with the
 * input. The stored shapes are GrouPy's P4ConvP4 layout [out, in, 4, k, k] and, for the lift,
 * conv2d's. */

/* Where entry (co, ci, y, x) of a p4 layer's expanded weight comes from in its stored weight. */
static size_t lensnet__p4_source(const lensnet_layer *L, size_t co, size_t ci, size_t y, size_t x) {
  size_t k = L->kernel, c = co / 4, r = co % 4, sy, sx, cin = L->in_c / 4;
  switch (r) { /* rot^r(w)[y][x] = w[sy][sx] */
    case 0: sy = y; sx = x; break;
    case 1: sy = x; sx = k - 1 - y; break;
    case 2: sy = k - 1 - y; sx = k - 1 - x; break;
    default: sy = k - 1 - x; sx = y; break;
  }
  if (L->type == LENSNET_LAYER_P4_LIFT) return ((c * L->in_c + ci) * k + sy) * k + sx;
  return (((c * cin + ci / 4) * 4 + (ci % 4 + 4 - r) % 4) * k + sy) * k + sx;
}

/* The expanded weight E [out_c, in_c, k, k] from the stored W; flipped: in the layout of
 * lensnet__flip_weights instead (E transposed and turned half a turn, for d input). */
static void lensnet__p4_expand(const lensnet_layer *L, const float *W, float *E, int flipped) {
  size_t co, ci, y, x, k = L->kernel, kk = k * k;
  for (co = 0; co < L->out_c; co++)
    for (ci = 0; ci < L->in_c; ci++)
      for (y = 0; y < k; y++)
        for (x = 0; x < k; x++) {
          float v = W[lensnet__p4_source(L, co, ci, y, x)];
          if (flipped) E[(ci * L->out_c + co) * kk + kk - 1 - (y * k + x)] = v;
          else E[(co * L->in_c + ci) * kk + y * k + x] = v;
        }
}

/* The transpose of lensnet__p4_expand: dW += the expanded gradient dE summed onto the stored weights. */
static void lensnet__p4_fold(const lensnet_layer *L, const float *dE, float *dW) {
  size_t co, ci, y, x, k = L->kernel, at = 0;
  for (co = 0; co < L->out_c; co++)
    for (ci = 0; ci < L->in_c; ci++)
      for (y = 0; y < k; y++)
        for (x = 0; x < k; x++) dW[lensnet__p4_source(L, co, ci, y, x)] += dE[at++];
}

static void lensnet__p4_describe(const lensnet_layer *L, char *buf, size_t cap) {
  snprintf(buf, cap, "%s out=%lu kernel=%lu stride=%lu padding=%lu", L->name, (unsigned long)L->out, (unsigned long)L->kernel,
           (unsigned long)L->stride, (unsigned long)L->padding);
}

static size_t lensnet__p4_scratch(const lensnet_layer *L, size_t batch, int training) {
  size_t s = lensnet__conv2d_scratch(L, batch, training), extra = lensnet__conv_weight_floats(L) + L->out_c;
  return s > (size_t)-1 - extra ? (size_t)-1 : s + extra;
}

/* The expanded weight and bias, after the convolution's own scratch (layout of _scratch). */
static float *lensnet__p4_expanded(const lensnet__pass *p) {
  return p->scratch + lensnet__conv2d_scratch(p->L, p->batch, p->t != NULL);
}

static void lensnet__p4_layer_forward(lensnet__pass *p) {
  const lensnet_model *m = p->m;
  const lensnet_layer *L = p->L;
  lensnet__conv_geom g = lensnet__layer_geom(L, p->batch);
  float *w = lensnet__p4_expanded(p), *bias = NULL;
  size_t c;
  int fuse = p->may_fuse && p->layer + 1 < m->layer_count && m->layers[p->layer + 1].type == LENSNET_LAYER_RELU;
  lensnet__p4_expand(L, lensnet__param_values(m, L->weight), w, 0);
  if (L->bias_param >= 0) {
    const float *b = lensnet__param_values(m, L->bias_param);
    bias = w + lensnet__conv_weight_floats(L);
    for (c = 0; c < L->out_c; c++) bias[c] = b[c / 4];
  }
  lensnet__conv2d_forward(&g, p->x, w, bias, fuse, p->y, p->scratch);
  p->fused = fuse;
}

static void lensnet__p4_backward(const lensnet__pass *p, const float *dy, float *dx) {
  lensnet__conv_geom gt;
  float *w = NULL;
  if (dx && !lensnet__conv_input_grad_geom(p->L, &gt)) { /* d input through the weight itself (stride > 1) */
    w = lensnet__p4_expanded(p);
    lensnet__p4_expand(p->L, lensnet__param_values(p->m, p->L->weight), w, 0);
  }
  lensnet__conv_backward_image(p, w, dy, dx);
}

static void lensnet__p4_backward_prepare(lensnet_trainer *t, size_t l) {
  const lensnet_layer *L = &t->model->layers[l];
  lensnet__p4_expand(L, t->model->values + t->model->params[L->weight].offset, t->flipped_weights + t->wgrad_offset[l], 1);
}

/* The slots' gradients of the expanded weight and bias summed in slot order (into slot 0), then
 * onto the stored parameters: the same for any number of threads. */
static void lensnet__p4_backward_reduce(lensnet_trainer *t, size_t l, size_t batch) {
  const lensnet_model *m = t->model;
  const lensnet_layer *L = &m->layers[l];
  size_t wn = lensnet__conv_weight_floats(L), b, k, slots = batch < t->grad_slots ? batch : t->grad_slots;
  float *sum = t->wgrad_images + t->wgrad_offset[l] * t->grad_slots, *bsum = t->bgrad_images + t->bgrad_offset[l] * t->grad_slots;
  for (b = 1; b < slots; b++)
    for (k = 0; k < wn; k++) sum[k] += sum[b * wn + k];
  lensnet__p4_fold(L, sum, t->grads + m->params[L->weight].offset);
  if (L->bias_param >= 0) {
    float *db = t->grads + m->params[L->bias_param].offset;
    for (b = 1; b < slots; b++)
      for (k = 0; k < L->out_c; k++) bsum[k] += bsum[b * L->out_c + k];
    for (k = 0; k < L->out_c; k++) db[k / 4] += bsum[k];
  }
}

/* p4_pool: the offset r * hw of the plane of the 4 at x[0], x[hw], x[2 hw], x[3 hw] that max
 * pooling picks at one position: the first largest, or the first NaN (NaN propagates, as in PyTorch). */
static size_t lensnet__p4_argmax(const float *x, size_t hw) {
  size_t best = 0, at;
  for (at = hw; at < 4 * hw; at += hw)
    if (x[best] == x[best] && (x[at] > x[best] || x[at] != x[at])) best = at;
  return best;
}

static void lensnet__p4_pool_describe(const lensnet_layer *L, char *buf, size_t cap) {
  snprintf(buf, cap, "mode=%s", L->mode == LENSNET_P4_POOL_MEAN ? "mean" : "max");
}

static void lensnet__p4_pool_forward(lensnet__pass *p) {
  const lensnet_layer *L = p->L;
  size_t hw = L->in_h * L->in_w, planes = p->batch * L->out_c, q, k;
  for (q = 0; q < planes; q++) {
    const float *x = p->x + q * 4 * hw;
    float *y = p->y + q * hw;
    if (L->mode == LENSNET_P4_POOL_MEAN)
      for (k = 0; k < hw; k++) y[k] = ((x[k] + x[hw + k]) + (x[2 * hw + k] + x[3 * hw + k])) * 0.25f;
    else
      for (k = 0; k < hw; k++) y[k] = x[k + lensnet__p4_argmax(x + k, hw)];
  }
}

static void lensnet__p4_pool_backward(const lensnet__pass *p, const float *dy, float *dx) {
  const lensnet_layer *L = p->L;
  size_t hw = L->in_h * L->in_w, planes = p->batch * L->out_c, q, k, r;
  for (q = 0; q < planes; q++) {
    const float *x = p->x + q * 4 * hw, *g = dy + q * hw;
    float *d = dx + q * 4 * hw;
    if (L->mode == LENSNET_P4_POOL_MEAN) {
      for (r = 0; r < 4; r++)
        for (k = 0; k < hw; k++) d[r * hw + k] = g[k] * 0.25f;
      continue;
    }
    memset(d, 0, 4 * hw * sizeof(float));
    for (k = 0; k < hw; k++) d[k + lensnet__p4_argmax(x + k, hw)] = g[k];
  }
}

/* dense */
static void lensnet__dense_describe(const lensnet_layer *L, char *buf, size_t cap) {
  snprintf(buf, cap, "%s out=%lu", L->name, (unsigned long)L->out);
}

static void lensnet__dense_layer_forward(lensnet__pass *p) {
  const lensnet_layer *L = p->L;
  lensnet__dense_forward(L, p->batch, lensnet__layer_in_n(L), p->x, lensnet__param_values(p->m, L->weight),
                         lensnet__param_values(p->m, L->bias_param), p->y);
}

static void lensnet__dense_backward(const lensnet__pass *p, const float *dy, float *dx) {
  lensnet_trainer *t = p->t;
  const lensnet_model *m = p->m;
  const lensnet_layer *L = p->L;
  size_t in_n = lensnet__layer_in_n(L), batch = p->batch, b, k;
  const float *W = m->values + m->params[L->weight].offset;
  float *dW = t->grads + m->params[L->weight].offset;
  if (!t->skip_param_grads) lensnet_sgemm(1, 0, L->out, in_n, batch, 1.0f, dy, L->out, p->x, in_n, 1.0f, dW, in_n);
  if (dx) lensnet_sgemm(0, 0, batch, in_n, L->out, 1.0f, dy, L->out, W, in_n, 0.0f, dx, in_n);
  if (L->bias_param >= 0 && !t->skip_param_grads) {
    float *db = t->grads + m->params[L->bias_param].offset;
    for (b = 0; b < batch; b++) for (k = 0; k < L->out; k++) db[k] += dy[b * L->out + k];
  }
}

/* maxpool, avgpool */
static void lensnet__pool_describe(const lensnet_layer *L, char *buf, size_t cap) {
  if (L->padding) snprintf(buf, cap, "kernel=%lu stride=%lu padding=%lu", (unsigned long)L->kernel, (unsigned long)L->stride, (unsigned long)L->padding);
  else snprintf(buf, cap, "kernel=%lu stride=%lu", (unsigned long)L->kernel, (unsigned long)L->stride);
}

static void lensnet__pool_layer_forward(lensnet__pass *p) {
  if (p->t && lensnet__pool_keeps_argmax(p->m, p->layer, p->t->lean))
    lensnet__maxpool2x2_argmax(p->L, p->batch * p->L->in_c, p->x, p->y,
                               p->t->dropout_mask + p->t->mask_offset[p->layer] * p->t->batch_cap +
                                   p->image * lensnet__layer_out_n(p->L));
  else
    lensnet__pool_forward(p->L, p->batch, p->x, p->y);
}

static void lensnet__pool_layer_backward(const lensnet__pass *p, const float *dy, float *dx) {
  lensnet__pool_backward(p->L, p->batch, p->x, p->y, dy, dx);
}

static void lensnet__pool_rect(const lensnet_model *m, const lensnet_layer *L, const float *in, float *out, lensnet_rect r) {
  size_t c;
  (void)m;
  for (c = 0; c < L->in_c; c++) lensnet__pool_plane(L, in + c * L->in_h * L->in_w, out + c * L->out_h * L->out_w, r);
}

/* global_avgpool */
static void lensnet__global_avgpool_forward(lensnet__pass *p) {
  size_t hw = p->L->in_h * p->L->in_w, plane, k;
  for (plane = 0; plane < p->batch * p->L->in_c; plane++) {
    double sum = 0.0;
    for (k = 0; k < hw; k++) sum += p->x[plane * hw + k];
    p->y[plane] = (float)(sum / (double)hw);
  }
}

static void lensnet__global_avgpool_backward(const lensnet__pass *p, const float *dy, float *dx) {
  size_t hw = p->L->in_h * p->L->in_w, plane, k;
  for (plane = 0; plane < p->batch * p->L->in_c; plane++)
    for (k = 0; k < hw; k++) dx[plane * hw + k] = dy[plane] / (float)hw;
}

/* dropout: the identity at inference and in a trainer out of training */
static void lensnet__dropout_describe(const lensnet_layer *L, char *buf, size_t cap) { snprintf(buf, cap, "p=%g", L->value); }

/* A dropout stream for (step, layer, image): masks do not depend on which thread draws them. */
static void lensnet__dropout_stream(lensnet_rng *r, uint64_t step_seed, size_t layer, size_t b) {
  uint64_t x = step_seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(layer + 1)) ^ (0xD1B54A32D192ED03ull * (uint64_t)(b + 1));
  lensnet_rng_seed(r, lensnet__splitmix64(&x));
}

/* Monte Carlo dropout at inference: the training rule (keep with probability 1 - p, scale by
 * 1/(1 - p)) without a mask to keep; x and y may be the same buffer. */
static void lensnet__dropout_mc(lensnet_rng *rng, float p, const float *x, float *y, size_t n) {
  double keep = 1.0 - (double)p;
  uint32_t threshold = (uint32_t)(keep * 65536.0 + 0.5);
  float scale = (float)(1.0 / keep);
  size_t k, q;
  for (k = 0; k < n; k += 4) {
    uint64_t bits = lensnet_rng_next(rng);
    for (q = 0; q < 4 && k + q < n; q++) y[k + q] = (uint32_t)((bits >> (16 * q)) & 0xFFFFu) < threshold ? x[k + q] * scale : 0.0f;
  }
}

static void lensnet__dropout_layer_forward(lensnet__pass *p) {
  lensnet_trainer *t = p->t;
  const lensnet_layer *L = p->L;
  size_t in_n = lensnet__layer_in_n(L), b;
  if (!t && p->mc && L->value > 0.0f) {
    for (b = 0; b < p->batch; b++) {
      lensnet_rng r;
      lensnet__dropout_stream(&r, p->step_seed, p->layer, b);
      lensnet__dropout_mc(&r, L->value, p->x + b * in_n, p->y + b * in_n, in_n);
    }
    return;
  }
  if (!t) { lensnet__copy_forward(p); return; }
  for (b = 0; b < p->batch; b++) {
    unsigned char *mask = t->dropout_mask + t->mask_offset[p->layer] * t->batch_cap + (p->image + b) * in_n;
    const float *x = p->x + b * in_n;
    float *y = p->y + b * in_n;
    lensnet_rng r;
    if (!t->training || t->no_dropout || L->value == 0.0f) {
      if (y != x) memcpy(y, x, in_n * sizeof(float));
      memset(mask, 1, in_n);
      continue;
    }
    lensnet__dropout_stream(&r, p->step_seed, p->layer, p->image + b);
    lensnet__dropout_forward(&r, L->value, x, y, mask, in_n);
  }
}

static float lensnet__dropout_scale(const lensnet_trainer *t, const lensnet_layer *L) {
  return (t->training && !t->no_dropout && L->value != 0.0f) ? (float)(1.0 / (1.0 - (double)L->value)) : 1.0f;
}

static void lensnet__dropout_layer_backward(const lensnet__pass *p, const float *dy, float *dx) {
  const lensnet_trainer *t = p->t;
  const lensnet_layer *L = p->L;
  size_t in_n = lensnet__layer_in_n(L);
  lensnet__dropout_backward(t->dropout_mask + t->mask_offset[p->layer] * t->batch_cap + p->image * in_n, dy, dx, p->batch * in_n,
                            lensnet__dropout_scale(t, L));
}

/* The backward of a dropout written over a ReLU's output (lean), and of that ReLU, in one pass: y
 * is the dropout's output, positive exactly where the ReLU's output was positive and dropout kept
 * it (the scale is at least 1), so dx = y > 0 ? dy * scale : +0 (guided: and dy * scale > 0) is
 * the two passes' result bit for bit, without reading the mask. */
LENSNET__VECTORIZE static void lensnet__relu_dropout_backward(const float *LENSNET__RESTRICT y, const float *LENSNET__RESTRICT dy,
                                                              float *LENSNET__RESTRICT dx, size_t n, float scale, int guided) {
  size_t k;
  for (k = 0; k < n; k++) { /* the choice by an integer mask, as in lensnet__masked_scale, so that it vectorises */
    float g = dy[k] * scale;
    uint32_t bits, keep = guided ? (uint32_t)((y[k] > 0.0f) & (g > 0.0f)) : (uint32_t)(y[k] > 0.0f);
    memcpy(&bits, &g, sizeof bits);
    bits &= 0u - keep;
    memcpy(&dx[k], &bits, sizeof bits);
  }
}

/* element-wise activations */
static void lensnet__relu_layer_backward(const lensnet__pass *p, const float *dy, float *dx) {
  lensnet__relu_backward(p->y, dy, dx, p->batch * lensnet__layer_in_n(p->L), p->t->relu_backward == LENSNET_RELU_BACKWARD_GUIDED);
}

static void lensnet__leaky_relu_backward(const lensnet__pass *p, const float *dy, float *dx) {
  size_t k, n = p->batch * lensnet__layer_in_n(p->L);
  for (k = 0; k < n; k++) dx[k] = p->x[k] > 0.0f ? dy[k] : dy[k] * p->L->value;
}

static void lensnet__gelu_backward(const lensnet__pass *p, const float *dy, float *dx) {
  size_t k, n = p->batch * lensnet__layer_in_n(p->L);
  for (k = 0; k < n; k++) {
    float v = p->x[k], cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752f)), pdf = 0.39894228040143268f * expf(-0.5f * v * v);
    dx[k] = dy[k] * (cdf + v * pdf);
  }
}

static void lensnet__sigmoid_backward(const lensnet__pass *p, const float *dy, float *dx) {
  size_t k, n = p->batch * lensnet__layer_in_n(p->L);
  for (k = 0; k < n; k++) dx[k] = dy[k] * p->y[k] * (1.0f - p->y[k]);
}

static void lensnet__tanh_backward(const lensnet__pass *p, const float *dy, float *dx) {
  size_t k, n = p->batch * lensnet__layer_in_n(p->L);
  for (k = 0; k < n; k++) dx[k] = dy[k] * (1.0f - p->y[k] * p->y[k]);
}

static void lensnet__batchnorm_describe(const lensnet_layer *L, char *buf, size_t cap) {
  if (L->orientations > 1) snprintf(buf, cap, "%s orientations=%lu", L->name, (unsigned long)L->orientations);
  else snprintf(buf, cap, "%s", L->name);
}

/* batchnorm: batch statistics in training, the running ones otherwise. With orientations=G the
 * G planes of a channel lie next to each other (p4 layers' layout), so the layer is batch norm
 * over in_c / G channels of G * h * w values each: PyTorch's BatchNorm3d on [N, C, G, H, W]. */
static void lensnet__batchnorm_forward(lensnet__pass *p) {
  const lensnet_model *m = p->m;
  const lensnet_layer *L = p->L;
  lensnet_trainer *t = p->t;
  size_t C = L->in_c / L->orientations, hw = L->orientations * L->in_h * L->in_w, count = p->batch * hw, c, b, k;
  const float *w = m->values + m->params[L->weight].offset, *bb = m->values + m->params[L->bias_param].offset;
  for (c = 0; c < C; c++) {
    float *mean = t ? t->bn_mean + t->bn_offset[p->layer] : NULL, *invstd = t ? t->bn_invstd + t->bn_offset[p->layer] : NULL;
    if (t) {
      float *rmean = t->model->values + m->params[L->mean_param].offset, *rvar = t->model->values + m->params[L->var_param].offset;
      if (t->training) {
        double s = 0.0, sq = 0.0, mu, var;
        for (b = 0; b < p->batch; b++) for (k = 0; k < hw; k++) s += p->x[(b * C + c) * hw + k];
        mu = s / (double)count;
        for (b = 0; b < p->batch; b++) for (k = 0; k < hw; k++) { double d = p->x[(b * C + c) * hw + k] - mu; sq += d * d; }
        var = sq / (double)count;
        mean[c] = (float)mu;
        invstd[c] = (float)(1.0 / sqrt(var + L->value));
        /* running statistics use the unbiased variance, as PyTorch does */
        rmean[c] = (1.0f - L->momentum) * rmean[c] + L->momentum * (float)mu;
        rvar[c] = (1.0f - L->momentum) * rvar[c] + L->momentum * (float)(count > 1 ? sq / (double)(count - 1) : var);
      } else {
        mean[c] = rmean[c];
        invstd[c] = 1.0f / sqrtf(rvar[c] + L->value);
      }
    }
    for (b = 0; b < p->batch; b++) {
      const float *x = p->x + (b * C + c) * hw;
      float *y = p->y + (b * C + c) * hw;
      if (t && t->training) for (k = 0; k < hw; k++) y[k] = (x[k] - mean[c]) * invstd[c] * w[c] + bb[c];
      else lensnet__batchnorm_pointwise(m, L, c * L->orientations, x, y, hw); /* the channel's first plane */
    }
  }
}

static void lensnet__batchnorm_backward(const lensnet__pass *p, const float *dy, float *dx) {
  lensnet_trainer *t = p->t;
  const lensnet_model *m = p->m;
  const lensnet_layer *L = p->L;
  const float *w = m->values + m->params[L->weight].offset, *x = p->x;
  float *dw = t->grads + m->params[L->weight].offset, *db = t->grads + m->params[L->bias_param].offset;
  const float *mean = t->bn_mean + t->bn_offset[p->layer], *invstd = t->bn_invstd + t->bn_offset[p->layer];
  size_t C = L->in_c / L->orientations, hw = L->orientations * L->in_h * L->in_w, c, b, k, batch = p->batch, count = batch * hw;
  for (c = 0; c < C; c++) {
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (b = 0; b < batch; b++)
      for (k = 0; k < hw; k++) {
        size_t at = (b * C + c) * hw + k;
        double xhat = (x[at] - mean[c]) * invstd[c];
        sum_dy += dy[at];
        sum_dy_xhat += dy[at] * xhat;
      }
    if (!t->skip_param_grads) { dw[c] += (float)sum_dy_xhat; db[c] += (float)sum_dy; }
    if (!dx) continue;
    for (b = 0; b < batch; b++)
      for (k = 0; k < hw; k++) {
        size_t at = (b * C + c) * hw + k;
        if (t->training) {
          double xhat = (x[at] - mean[c]) * invstd[c];
          dx[at] = (float)(w[c] * invstd[c] * (dy[at] - sum_dy / (double)count - xhat * sum_dy_xhat / (double)count));
        } else dx[at] = dy[at] * w[c] * invstd[c];
      }
  }
}

/* softmax */
static void lensnet__softmax_layer_forward(lensnet__pass *p) {
  lensnet__copy_forward(p);
  lensnet__softmax_forward(p->y, p->batch, p->L->in_c, p->L->in_h * p->L->in_w);
}

static void lensnet__softmax_backward(const lensnet__pass *p, const float *dy, float *dx) {
  size_t hw = p->L->in_h * p->L->in_w, n = p->L->in_c * hw, c, q, b;
  for (b = 0; b < p->batch; b++)
    for (q = 0; q < hw; q++) {
      const float *yb = p->y + b * n, *g = dy + b * n;
      float dot = 0.0f;
      for (c = 0; c < p->L->in_c; c++) dot += g[q + c * hw] * yb[q + c * hw];
      for (c = 0; c < p->L->in_c; c++) dx[b * n + q + c * hw] = yb[q + c * hw] * (g[q + c * hw] - dot);
    }
}

/* mark, add: a residual connection; a trainer's saved activation is the mark's own output */
static void lensnet__mark_forward(lensnet__pass *p) {
  lensnet__copy_forward(p);
  if (p->saved && p->saved != p->y) memcpy(p->saved, p->x, p->batch * lensnet__layer_in_n(p->L) * sizeof(float));
}

static void lensnet__add_forward(lensnet__pass *p) {
  size_t k, n = p->batch * lensnet__layer_in_n(p->L);
  for (k = 0; k < n; k++) p->y[k] = p->x[k] + p->saved[k];
}

/* The gradient flows unchanged to both summands; the mark's share waits for it there. mark_n:
 * floats of the marked activation per image. */
static float *lensnet__mark_grad(const lensnet__pass *p, size_t mark_n) {
  return p->t->mark_grad + lensnet__mark_offset(p->m, p->L->mark) * p->step_batch + p->image * mark_n;
}

static void lensnet__add_backward(const lensnet__pass *p, const float *dy, float *dx) {
  float *mg = lensnet__mark_grad(p, lensnet__layer_in_n(p->L));
  size_t k, n = p->batch * lensnet__layer_in_n(p->L);
  for (k = 0; k < n; k++) mg[k] += dy[k];
  memcpy(dx, dy, n * sizeof(float));
}

static void lensnet__mark_backward(const lensnet__pass *p, const float *dy, float *dx) {
  const float *mg = lensnet__mark_grad(p, lensnet__layer_in_n(p->L));
  size_t k, n = p->batch * lensnet__layer_in_n(p->L);
  for (k = 0; k < n; k++) dx[k] = dy[k] + mg[k];
}

/* restore: a second branch from a mark (a residual projection: mark, main path, mark, restore,
 * projection, add). Its output is the marked activation; its input (the end of the main path,
 * kept by the second mark) takes no gradient from here. */
static void lensnet__restore_forward(lensnet__pass *p) {
  memcpy(p->y, p->saved, p->batch * lensnet__layer_out_n(p->L) * sizeof(float));
}

static void lensnet__restore_backward(const lensnet__pass *p, const float *dy, float *dx) {
  float *mg = lensnet__mark_grad(p, lensnet__layer_out_n(p->L));
  size_t k, n = p->batch * lensnet__layer_out_n(p->L);
  for (k = 0; k < n; k++) mg[k] += dy[k];
  if (dx) memset(dx, 0, p->batch * lensnet__layer_in_n(p->L) * sizeof(float));
}

/* ---- the layer table ----------------------------------------------------------------------
 * Everything lensnet (and through lensnet_layer_*, lensviz and `lens info`) knows about a layer
 * type is in its row: shape inference and parameters (resolve), initialisation, the options
 * printed, the forward pass (inference and training alike), the backward pass, the
 * element-wise arithmetic and the receptive field that rectangles (occlusion) use.
 *
 * Adding a layer type: a line in LENSNET_LAYER_TYPES (its enum and its name in architecture
 * text), a row here in the same order (test_lensnet checks the order), and its functions:
 * resolve if it changes the shape or has parameters (register them with lensnet__add_param),
 * init if it has parameters, forward and backward (lensnet__pointwise_forward and a pointwise
 * function for an element-wise layer), describe if it has options. A new option word goes to
 * lensnet__arch_option. A kind that runs as a convolution with a weight of its own making (the
 * p4 layers) gives backward_prepare and backward_reduce and gets per-image gradient slots of
 * lensnet__conv_weight_floats. Nothing else switches on the layer type, apart from the saved
 * activations of mark, add and restore (their resolve and the receptive-field walk). */
static const lensnet__layer_kind lensnet__kinds[LENSNET_LAYER_TYPE_COUNT] = {
  /* type, reach, flags, default value,
   * resolve, init, describe, forward, backward,
   * pointwise, rect, scratch, backward_prepare, backward_reduce */
  {LENSNET_LAYER_CONV2D, LENSNET__REACH_WINDOW, 0, 0.0f,
   lensnet__conv2d_resolve, lensnet__fan_in_init, lensnet__conv2d_describe, lensnet__conv2d_layer_forward, lensnet__conv2d_backward,
   NULL, lensnet__conv2d_rect, lensnet__conv2d_scratch, lensnet__conv2d_backward_prepare, lensnet__conv2d_backward_reduce},
  {LENSNET_LAYER_DENSE, LENSNET__REACH_ALL, LENSNET__KIND_WHOLE_BATCH, 0.0f,
   lensnet__dense_resolve, lensnet__fan_in_init, lensnet__dense_describe, lensnet__dense_layer_forward, lensnet__dense_backward,
   NULL, NULL, NULL, NULL, NULL},
  {LENSNET_LAYER_RELU, LENSNET__REACH_POINT, LENSNET__KIND_IN_PLACE, 0.0f,
   NULL, NULL, NULL, lensnet__pointwise_forward, lensnet__relu_layer_backward,
   lensnet__relu_pointwise, NULL, NULL, NULL, NULL},
  {LENSNET_LAYER_LEAKY_RELU, LENSNET__REACH_POINT, LENSNET__KIND_IN_PLACE, 0.01f,
   NULL, NULL, NULL, lensnet__pointwise_forward, lensnet__leaky_relu_backward,
   lensnet__leaky_relu_pointwise, NULL, NULL, NULL, NULL},
  {LENSNET_LAYER_GELU, LENSNET__REACH_POINT, LENSNET__KIND_IN_PLACE, 0.0f,
   NULL, NULL, NULL, lensnet__pointwise_forward, lensnet__gelu_backward,
   lensnet__gelu_pointwise, NULL, NULL, NULL, NULL},
  {LENSNET_LAYER_SIGMOID, LENSNET__REACH_POINT, LENSNET__KIND_IN_PLACE, 0.0f,
   NULL, NULL, NULL, lensnet__pointwise_forward, lensnet__sigmoid_backward,
   lensnet__sigmoid_pointwise, NULL, NULL, NULL, NULL},
  {LENSNET_LAYER_TANH, LENSNET__REACH_POINT, LENSNET__KIND_IN_PLACE, 0.0f,
   NULL, NULL, NULL, lensnet__pointwise_forward, lensnet__tanh_backward,
   lensnet__tanh_pointwise, NULL, NULL, NULL, NULL},
  {LENSNET_LAYER_MAXPOOL, LENSNET__REACH_WINDOW, 0, 0.0f,
   lensnet__pool_resolve, NULL, lensnet__pool_describe, lensnet__pool_layer_forward, lensnet__pool_layer_backward,
   NULL, lensnet__pool_rect, NULL, NULL, NULL},
  {LENSNET_LAYER_AVGPOOL, LENSNET__REACH_WINDOW, 0, 0.0f,
   lensnet__pool_resolve, NULL, lensnet__pool_describe, lensnet__pool_layer_forward, lensnet__pool_layer_backward,
   NULL, lensnet__pool_rect, NULL, NULL, NULL},
  {LENSNET_LAYER_GLOBAL_AVGPOOL, LENSNET__REACH_ALL, 0, 0.0f,
   lensnet__global_avgpool_resolve, NULL, NULL, lensnet__global_avgpool_forward, lensnet__global_avgpool_backward,
   NULL, NULL, NULL, NULL, NULL},
  {LENSNET_LAYER_DROPOUT, LENSNET__REACH_POINT, LENSNET__KIND_IN_PLACE | LENSNET__KIND_MASK, 0.5f,
   lensnet__dropout_resolve, NULL, lensnet__dropout_describe, lensnet__dropout_layer_forward, lensnet__dropout_layer_backward,
   lensnet__identity_pointwise, NULL, NULL, NULL, NULL},
  {LENSNET_LAYER_FLATTEN, LENSNET__REACH_ALL, LENSNET__KIND_IN_PLACE, 0.0f,
   lensnet__flatten_resolve, NULL, NULL, lensnet__copy_forward, lensnet__copy_backward,
   NULL, NULL, NULL, NULL, NULL},
  {LENSNET_LAYER_BATCHNORM, LENSNET__REACH_POINT, LENSNET__KIND_IN_PLACE | LENSNET__KIND_WHOLE_BATCH | LENSNET__KIND_STATS, 1e-5f,
   lensnet__batchnorm_resolve, lensnet__batchnorm_init, lensnet__batchnorm_describe, lensnet__batchnorm_forward, lensnet__batchnorm_backward,
   lensnet__batchnorm_pointwise, NULL, NULL, NULL, NULL},
  {LENSNET_LAYER_SOFTMAX, LENSNET__REACH_POINT, LENSNET__KIND_IN_PLACE, 0.0f,
   NULL, NULL, NULL, lensnet__softmax_layer_forward, lensnet__softmax_backward,
   NULL, NULL, NULL, NULL, NULL},
  {LENSNET_LAYER_MARK, LENSNET__REACH_POINT, LENSNET__KIND_IN_PLACE | LENSNET__KIND_SAVES, 0.0f,
   lensnet__mark_resolve, NULL, lensnet__named_describe, lensnet__mark_forward, lensnet__mark_backward,
   NULL, NULL, NULL, NULL, NULL},
  {LENSNET_LAYER_ADD, LENSNET__REACH_POINT, LENSNET__KIND_IN_PLACE, 0.0f,
   lensnet__add_resolve, NULL, lensnet__named_describe, lensnet__add_forward, lensnet__add_backward,
   NULL, NULL, NULL, NULL, NULL},
  {LENSNET_LAYER_RESTORE, LENSNET__REACH_POINT, 0, 0.0f,
   lensnet__restore_resolve, NULL, lensnet__named_describe, lensnet__restore_forward, lensnet__restore_backward,
   NULL, NULL, NULL, NULL, NULL},
  {LENSNET_LAYER_P4_LIFT, LENSNET__REACH_WINDOW, 0, 0.0f,
   lensnet__p4_resolve, lensnet__fan_in_init, lensnet__p4_describe, lensnet__p4_layer_forward, lensnet__p4_backward,
   NULL, NULL, lensnet__p4_scratch, lensnet__p4_backward_prepare, lensnet__p4_backward_reduce},
  {LENSNET_LAYER_P4_CONV, LENSNET__REACH_WINDOW, 0, 0.0f,
   lensnet__p4_resolve, lensnet__fan_in_init, lensnet__p4_describe, lensnet__p4_layer_forward, lensnet__p4_backward,
   NULL, NULL, lensnet__p4_scratch, lensnet__p4_backward_prepare, lensnet__p4_backward_reduce},
  {LENSNET_LAYER_P4_POOL, LENSNET__REACH_POINT, 0, 0.0f,
   lensnet__p4_pool_resolve, NULL, lensnet__p4_pool_describe, lensnet__p4_pool_forward, lensnet__p4_pool_backward,
   NULL, NULL, NULL, NULL, NULL}
};

static const lensnet__layer_kind *lensnet__kind(lensnet_layer_type t) { return &lensnet__kinds[t]; }

LENSNET_API const char *lensnet_layer_describe(const lensnet_layer *L, char *buf, size_t cap) {
  const lensnet__layer_kind *kind = lensnet__kind(L->type);
  if (!cap) return buf;
  buf[0] = 0;
  if (kind->describe) kind->describe(L, buf, cap);
  return buf;
}

LENSNET_API int lensnet_layer_local(const lensnet_layer *L) {
  const lensnet__layer_kind *kind = lensnet__kind(L->type);
  return kind->pointwise || (kind->reach == LENSNET__REACH_WINDOW && kind->rect);
}

LENSNET_API lensnet_rect lensnet_layer_output_rect(const lensnet_layer *L, lensnet_rect r) {
  const lensnet__layer_kind *kind = lensnet__kind(L->type);
  lensnet_rect o = r;
  if (r.y0 > r.y1 || r.x0 > r.x1 || kind->reach == LENSNET__REACH_POINT) return r;
  o.y0 = o.x0 = 0;
  o.y1 = (long)L->out_h - 1;
  o.x1 = (long)L->out_w - 1;
  if (kind->reach == LENSNET__REACH_WINDOW) { /* the windows that meet r */
    long k = (long)L->kernel, s = (long)L->stride, p = (long)L->padding, lo;
    lo = r.y0 + p - (k - 1);
    if (lo > 0) o.y0 = (lo + s - 1) / s;
    if ((r.y1 + p) / s < o.y1) o.y1 = (r.y1 + p) / s;
    lo = r.x0 + p - (k - 1);
    if (lo > 0) o.x0 = (lo + s - 1) / s;
    if ((r.x1 + p) / s < o.x1) o.x1 = (r.x1 + p) / s;
  }
  return o;
}

LENSNET_API void lensnet_layer_forward_rect(const lensnet_model *m, const lensnet_layer *L, const float *in, float *out, lensnet_rect r) {
  const lensnet__layer_kind *kind = lensnet__kind(L->type);
  size_t c, ih = L->in_h, iw = L->in_w, oh = L->out_h, ow = L->out_w;
  long y;
  if (r.y0 > r.y1 || r.x0 > r.x1) return;
  if (kind->rect) { kind->rect(m, L, in, out, r); return; }
  if (!kind->pointwise) return;
  for (c = 0; c < L->out_c; c++)
    for (y = r.y0; y <= r.y1; y++)
      kind->pointwise(m, L, c, in + (c * ih + (size_t)y) * iw + (size_t)r.x0, out + (c * oh + (size_t)y) * ow + (size_t)r.x0,
                      (size_t)(r.x1 - r.x0 + 1));
}

/* The receptive-field recurrence over layers 0..last into g's offset, stride and size; an add
 * compares its branch with the walk up to its mark. */
static lensnet_result lensnet__field_walk(const lensnet_model *m, size_t last, lensnet_map_geometry *g, lensnet_error *err) {
  size_t i, j;
  lensnet_result r0;
  g->offset = 0.0;
  g->stride = 1.0;
  g->size = 1.0;
  for (i = 0; i <= last; i++) {
    const lensnet_layer *L = &m->layers[i];
    lensnet__reach reach = lensnet__kind(L->type)->reach;
    if (reach == LENSNET__REACH_ALL)
      return lensnet__fail(err, LENSNET_ERR_ARG, "layer %lu (%s) mixes every position of its input, so layer %lu's outputs have no place on the image",
                           (unsigned long)i, lensnet_layer_type_name(L->type), (unsigned long)last);
    if (reach == LENSNET__REACH_WINDOW) {
      double k = (double)L->kernel;
      g->offset += ((k - 1.0) / 2.0 - (double)L->padding) * g->stride;
      g->size += (k - 1.0) * g->stride;
      g->stride *= (double)L->stride;
    }
    if (L->type == LENSNET_LAYER_RESTORE) { /* the branch starts where its mark is */
      for (j = 0; j < i && !(m->layers[j].type == LENSNET_LAYER_MARK && m->layers[j].mark == L->mark); j++) {}
      if (j == i) return lensnet__fail(err, LENSNET_ERR_ARG, "layer %lu (restore %s) has no mark", (unsigned long)i, L->name);
      if ((r0 = lensnet__field_walk(m, j, g, err)) != LENSNET_OK) return r0;
    }
    if (L->type == LENSNET_LAYER_ADD) {
      lensnet_map_geometry branch;
      lensnet_result r;
      for (j = 0; j < i && !(m->layers[j].type == LENSNET_LAYER_MARK && m->layers[j].mark == L->mark); j++) {}
      if (j == i) return lensnet__fail(err, LENSNET_ERR_ARG, "layer %lu (add %s) has no mark", (unsigned long)i, L->name);
      if ((r = lensnet__field_walk(m, j, &branch, err)) != LENSNET_OK) return r;
      if (branch.offset != g->offset || branch.stride != g->stride)
        return lensnet__fail(err, LENSNET_ERR_UNSUPPORTED, "layer %lu (add %s): its branches lay their cells out differently (offset %g, stride %g against %g, %g)",
                             (unsigned long)i, L->name, g->offset, g->stride, branch.offset, branch.stride);
      if (branch.size > g->size) g->size = branch.size;
    }
  }
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_receptive_field(const lensnet_model *m, size_t layer, lensnet_map_geometry *g, lensnet_error *err) {
  lensnet_result r;
  if (!g) return lensnet__fail(err, LENSNET_ERR_ARG, "lensnet_receptive_field needs a lensnet_map_geometry to fill");
  memset(g, 0, sizeof *g);
  if (!m) return lensnet__fail(err, LENSNET_ERR_ARG, "no model given (NULL)");
  if (layer >= m->layer_count)
    return lensnet__fail(err, LENSNET_ERR_ARG, "layer %lu does not exist: the model has layers 0..%lu", (unsigned long)layer,
                         m && m->layer_count ? (unsigned long)m->layer_count - 1 : 0ul);
  if ((r = lensnet__field_walk(m, layer, g, err)) != LENSNET_OK) {
    memset(g, 0, sizeof *g);
    return r;
  }
  g->rows = m->layers[layer].out_h;
  g->cols = m->layers[layer].out_w;
  g->image_h = m->in_h;
  g->image_w = m->in_w;
  return LENSNET_OK;
}

/* ---- running the layers in a trainer ------------------------------------------------------- */

/* Layers that work on each image alone run image by image, a whole run of them per task, so an
 * image's activations stay in cache from one layer to the next and images spread over threads.
 * Dense layers and batch norm need the whole batch and run between such runs. */
static int lensnet__per_image(const lensnet_layer *L) { return !(lensnet__kind(L->type)->flags & LENSNET__KIND_WHOLE_BATCH); }

/* Image b's part of layer l's output (l = -1: the input). */
static float *lensnet__act(const lensnet_trainer *t, long l, size_t b) {
  if (l < 0) return t->input + b * t->model->in_c * t->model->in_h * t->model->in_w;
  return t->acts + t->act_offset[l] * t->batch_cap + b * lensnet__layer_out_n(&t->model->layers[l]);
}

/* The layer holding the mark an add (or a mark) refers to. */
static size_t lensnet__mark_layer(const lensnet_model *m, int mark) {
  size_t j;
  for (j = 0; j < m->layer_count; j++)
    if ((lensnet__kind(m->layers[j].type)->flags & LENSNET__KIND_SAVES) && m->layers[j].mark == mark) return j;
  return 0;
}

/* Layer l for `batch` images from image b of a step of step_batch images. */
static lensnet__pass lensnet__trainer_pass(lensnet_trainer *t, size_t l, size_t b, size_t batch, size_t step_batch, size_t worker) {
  const lensnet_model *m = t->model;
  lensnet__pass p;
  memset(&p, 0, sizeof p);
  p.m = m; p.L = &m->layers[l]; p.layer = l; p.batch = batch; p.t = t;
  p.image = b; p.worker = worker; p.step_batch = step_batch;
  p.x = lensnet__act(t, (long)l - 1, b);
  p.y = lensnet__act(t, (long)l, b);
  p.scratch = t->scratch + worker * t->scratch_per_worker;
  p.saved = p.L->mark >= 0 ? lensnet__act(t, (long)lensnet__mark_layer(m, p.L->mark), b) : NULL;
  p.prepacked = lensnet__trainer_packed(t, l, 0);
  p.wino = lensnet__trainer_wino(t, l, 0);
  return p;
}

/* Backward of one layer: dy is d loss / d (its output), dx receives d loss / d (its input). */
static void lensnet__backward_layer(const lensnet__pass *p, const float *dy, float *dx) {
  lensnet_trainer *t = p->t;
  size_t out_n = lensnet__layer_out_n(p->L);
  if (t->capture_layer == (int)p->layer) memcpy(t->captured_grad + p->image * out_n, dy, p->batch * out_n * sizeof(float));
  lensnet__kind(p->L->type)->backward(p, dy, dx);
}

typedef struct {
  lensnet_trainer *t;
  size_t first, last;   /* layers [first, last) */
  size_t batch;
  uint64_t step_seed;
  float *dy, *dx;       /* backward: batch gradient into the run's last layer, out of its first */
} lensnet__run_task;

/* Does convolution l of a lean trainer pool on the way (lensnet__conv_pool_band_floats), keeping
 * the pool's winners? Then nothing reads its output or its ReLU's, which are not written. */
static int lensnet__conv_pools_in_training(const lensnet_trainer *t, size_t l) {
  const lensnet_model *m = t->model;
  return t->lean && l + 2 < m->layer_count && lensnet__conv_pool_band_floats(m, l) > 0 &&
         t->act_offset[l + 1] == t->act_offset[l] && lensnet__pool_keeps_argmax(m, l + 2, t->lean);
}

static void lensnet__forward_run_task(void *ctx, size_t b, size_t worker) {
  lensnet__run_task *r = LENSNET__CAST(lensnet__run_task *, ctx);
  lensnet_trainer *t = r->t;
  size_t l;
  for (l = r->first; l < r->last; l++) {
    lensnet__pass p = lensnet__trainer_pass(t, l, b, 1, r->batch, worker);
    p.step_seed = r->step_seed;
    /* lean: a ReLU that writes over a convolution's output is computed by the convolution, and a
     * 2x2 max pool after them too, a band at a time, the convolution's output never stored */
    p.may_fuse = t->lean && l + 1 < r->last && t->act_offset[l + 1] == t->act_offset[l] &&
                 t->model->layers[l + 1].type == LENSNET_LAYER_RELU;
    if (p.may_fuse && l + 2 < r->last && lensnet__conv_pools_in_training(t, l)) {
      p.y = lensnet__act(t, (long)l + 2, b);
      p.pool_arg = t->dropout_mask + t->mask_offset[l + 2] * t->batch_cap + b * lensnet__layer_out_n(&t->model->layers[l + 2]);
    }
    lensnet__kind(p.L->type)->forward(&p);
    l += (size_t)p.fused;
  }
}

static void lensnet__backward_run_image(lensnet__run_task *r, size_t b, size_t worker) {
  lensnet_trainer *t = r->t;
  const lensnet_model *m = t->model;
  float *tmp[2];
  const float *dy = r->dy + b * lensnet__layer_out_n(&m->layers[r->last - 1]);
  size_t l = r->last, flip = 0;
  tmp[0] = t->run_tmp + worker * 2 * t->run_tmp_floats;
  tmp[1] = tmp[0] + t->run_tmp_floats;
  while (l-- > r->first) {
    lensnet__pass p = lensnet__trainer_pass(t, l, b, 1, r->batch, worker);
    float *dx;
    p.accumulate = !t->reduce_each_image && b >= t->grad_slots;
    if (l == r->first) {
      dx = r->dx ? r->dx + b * lensnet__layer_in_n(&m->layers[l]) : NULL;
      if (!dx && !lensnet__kind(m->layers[l].type)->backward_reduce) break; /* nothing left to compute */
    } else { dx = tmp[flip]; flip ^= 1; }
    if (l - 1 > r->first && lensnet__pool_keeps_argmax(m, l, t->lean)) { /* the pool and the ReLU before it */
      lensnet__maxpool_relu_backward(p.L, p.L->in_c, p.y, t->dropout_mask + t->mask_offset[l] * t->batch_cap + b * lensnet__layer_out_n(p.L),
                                     dy, dx, t->relu_backward == LENSNET_RELU_BACKWARD_GUIDED);
      l--;
    } else if (l - 1 > r->first && t->lean && p.L->type == LENSNET_LAYER_DROPOUT && m->layers[l - 1].type == LENSNET_LAYER_RELU &&
               t->act_offset[l] == t->act_offset[l - 1]) { /* the dropout and the ReLU under it */
      lensnet__relu_dropout_backward(p.y, dy, dx, lensnet__layer_in_n(p.L), lensnet__dropout_scale(t, p.L),
                                     t->relu_backward == LENSNET_RELU_BACKWARD_GUIDED);
      l--;
    } else
      lensnet__backward_layer(&p, dy, dx);
    dy = dx;
  }
  if (t->reduce_each_image && !t->skip_param_grads)
    for (l = r->first; l < r->last; l++)
      if (lensnet__kind(m->layers[l].type)->backward_reduce) lensnet__kind(m->layers[l].type)->backward_reduce(t, l, 1);
}

/* Backward of the run for the images of gradient slot `slot` (slot, slot + slots, ...), in order. */
static void lensnet__backward_run_task(void *ctx, size_t slot, size_t worker) {
  lensnet__run_task *r = LENSNET__CAST(lensnet__run_task *, ctx);
  size_t b;
  for (b = slot; b < r->batch; b += r->t->grad_slots) lensnet__backward_run_image(r, b, worker);
}

/* Per-layer work of a step spread over the workers, a layer a task (each writes only its own
 * layer's buffers, so the results do not depend on the workers): what 0 packs layer l's weights
 * for the forward (GEMM panels or Winograd's U), 1 its backward_prepare (the flipped weights of d
 * input), 2 its backward_reduce (the images' gradient slots summed, in slot order). */
typedef struct {
  lensnet_trainer *t;
  size_t first, batch;
  int has_dx, what;
} lensnet__layers_job;

static void lensnet__layers_task(void *ctx, size_t index, size_t worker) {
  lensnet__layers_job *j = LENSNET__CAST(lensnet__layers_job *, ctx);
  lensnet_trainer *t = j->t;
  size_t l = j->first + index;
  const lensnet__layer_kind *kind = lensnet__kind(t->model->layers[l].type);
  (void)worker;
  if (j->what == 0) {
    if (t->packed_fwd[l] != (size_t)-1) {
      lensnet__conv_geom g = lensnet__layer_geom(&t->model->layers[l], 1);
      g.wino4x4 = 1;
      lensnet__trainer_pack(t, &g, lensnet__param_values(t->model, t->model->layers[l].weight), t->packed_fwd[l], t->wino_fwd[l]);
    }
  } else if (j->what == 1) {
    if (kind->backward_prepare && (l > 0 || j->has_dx)) kind->backward_prepare(t, l);
  } else if (kind->backward_reduce)
    kind->backward_reduce(t, l, j->batch);
}

/* The forward pass through layers [0, stop): lensnet_trainer_forward with stop = layer_count. */
static lensnet_result lensnet__trainer_forward_to(lensnet_trainer *t, size_t batch, const float *input, int training, size_t stop,
                                                  lensnet_error *err) {
  lensnet_model *m = t->model;
  size_t i;
  uint64_t step_seed;
  if (batch == 0 || batch > t->batch_cap)
    return lensnet__fail(err, LENSNET_ERR_ARG, "batch of %lu outside the trainer's 1..%lu", (unsigned long)batch, (unsigned long)t->batch_cap);
  t->training = training;
  step_seed = training ? lensnet_rng_next(&t->rng) : 0;
  memcpy(t->input, input, batch * m->in_c * m->in_h * m->in_w * sizeof(float));
  if (t->packed) { /* the weights as they are for this step, packed once for every image, a layer a task */
    lensnet__layers_job job;
    job.t = t; job.first = 0; job.batch = batch; job.has_dx = 0; job.what = 0;
    lensnet__parallel_run(&t->parallel, stop, lensnet__layers_task, &job);
  }
  for (i = 0; i < stop;) {
    lensnet__run_task r;
    lensnet__pass p;
    if (!lensnet__per_image(&m->layers[i])) {
      p = lensnet__trainer_pass(t, i, 0, batch, batch, 0);
      p.step_seed = step_seed;
      lensnet__kind(p.L->type)->forward(&p);
      i++;
      continue;
    }
    memset(&r, 0, sizeof r);
    r.t = t; r.first = i; r.batch = batch; r.step_seed = step_seed;
    for (r.last = i; r.last < stop && lensnet__per_image(&m->layers[r.last]); r.last++) {}
    lensnet__parallel_run(&t->parallel, batch, lensnet__forward_run_task, &r);
    i = r.last;
  }
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_trainer_forward(lensnet_trainer *t, size_t batch, const float *input, int training,
                                                   float *output, lensnet_error *err) {
  lensnet_result r = lensnet__trainer_forward_to(t, batch, input, training, t->model->layer_count, err);
  if (r == LENSNET_OK && output)
    memcpy(output, lensnet__act(t, (long)t->model->layer_count - 1, 0), batch * t->model->out_features * sizeof(float));
  return r;
}

LENSNET_API lensnet_result lensnet_trainer_backward(lensnet_trainer *t, size_t batch, const float *output_grad, lensnet_error *err) {
  return lensnet_trainer_backward_from(t, t->model->layer_count - 1, batch, output_grad, err);
}

LENSNET_API lensnet_result lensnet_trainer_backward_from(lensnet_trainer *t, size_t layer, size_t batch, const float *layer_grad,
                                                         lensnet_error *err) {
  lensnet_model *m = t->model;
  long i;
  float *dy = t->grad_a, *dx = t->grad_b;
  if (batch == 0 || batch > t->batch_cap)
    return lensnet__fail(err, LENSNET_ERR_ARG, "batch of %lu outside the trainer's 1..%lu", (unsigned long)batch, (unsigned long)t->batch_cap);
  if (layer >= m->layer_count)
    return lensnet__fail(err, LENSNET_ERR_ARG, "layer %lu does not exist: the model has layers 0..%lu", (unsigned long)layer,
                         (unsigned long)m->layer_count - 1);
  if (t->lean && (m->layers[layer].type == LENSNET_LAYER_RELU || m->layers[layer].type == LENSNET_LAYER_MAXPOOL) &&
      ((layer + 1 < m->layer_count && t->act_offset[layer + 1] == t->act_offset[layer]) ||
       (m->layers[layer].type == LENSNET_LAYER_RELU && layer > 0 && lensnet__conv_pools_in_training(t, layer - 1))))
    return lensnet__fail(err, LENSNET_ERR_ARG, "layer %lu (%s): a lean trainer writes over its output or does not keep it; "
                         "start from the layer after it, or use a trainer without lean_activations", (unsigned long)layer,
                         lensnet_layer_type_name(m->layers[layer].type));
  /* marks below `layer` whose adds or restores lie above it get no gradient from them: the
   * layers above are outside this pass */
  memcpy(dy, layer_grad, batch * lensnet__layer_out_n(&m->layers[layer]) * sizeof(float));
  memset(t->mark_grad, 0, t->mark_floats * batch * sizeof(float));
  for (i = (long)layer; i >= 0;) {
    float *dst = i > 0 ? dx : t->input_grad; /* the last step lands in input_grad */
    if (lensnet__per_image(&m->layers[i])) {
      lensnet__run_task r;
      long first = i;
      while (first > 0 && lensnet__per_image(&m->layers[first - 1])) first--;
      memset(&r, 0, sizeof r);
      r.t = t; r.first = (size_t)first; r.last = (size_t)i + 1; r.batch = batch; r.dy = dy;
      r.dx = (first == 0 && !t->compute_input_grad) ? NULL : (first > 0 ? dx : t->input_grad);
      lensnet__layers_job job;
      job.t = t; job.first = r.first; job.batch = batch; job.has_dx = r.dx != NULL; job.what = 1;
      lensnet__parallel_run(&t->parallel, r.last - r.first, lensnet__layers_task, &job); /* the layers' flipped weights */
      lensnet__parallel_run(&t->parallel, batch < t->grad_slots ? batch : t->grad_slots, lensnet__backward_run_task, &r);
      if (!t->skip_param_grads && !t->reduce_each_image) { /* each layer's slots summed into its gradients */
        job.what = 2;
        lensnet__parallel_run(&t->parallel, r.last - r.first, lensnet__layers_task, &job);
      }
      i = first - 1;
    } else {
      lensnet__pass p = lensnet__trainer_pass(t, (size_t)i, 0, batch, batch, 0);
      if (i == 0 && !t->compute_input_grad) dst = NULL;
      lensnet__backward_layer(&p, dy, dst);
      i--;
    }
    if (i >= 0) { float *tmp = dy; dy = dx; dx = tmp; }
  }
  return LENSNET_OK;
}

/* ---- losses -------------------------------------------------------------------------------- */

/* log-softmax of one row into out; returns nothing. */
static void lensnet__log_softmax(const float *z, size_t k, double *out) {
  double mx = z[0], sum = 0.0;
  size_t c;
  for (c = 1; c < k; c++) if (z[c] > mx) mx = z[c];
  for (c = 0; c < k; c++) sum += exp((double)z[c] - mx);
  for (c = 0; c < k; c++) out[c] = (double)z[c] - mx - log(sum);
}

/* A class label as an index; one outside 0..classes-1 (or NaN) reads as 0. */
static size_t lensnet__label(float v, size_t classes) {
  return v >= 0 && v < (float)classes ? (size_t)v : 0;
}

LENSNET_API float lensnet_loss_cross_entropy(const float *logits, const float *labels, size_t batch, size_t classes,
                                             const float *class_weights, float *grad) {
  double total = 0.0, wsum = 0.0, lsm[LENSNET_MAX_CLASSES];
  size_t b, c;
  if (classes > LENSNET_MAX_CLASSES || batch == 0) return NAN;
  for (b = 0; b < batch; b++) {
    size_t y = lensnet__label(labels[b], classes);
    double w = class_weights ? class_weights[y] : 1.0;
    lensnet__log_softmax(logits + b * classes, classes, lsm);
    total -= w * lsm[y];
    wsum += w;
  }
  if (!(wsum > 0.0)) { /* every sample weighs nothing: no loss, no gradient (not 0/0) */
    if (grad) memset(grad, 0, batch * classes * sizeof(float));
    return 0.0f;
  }
  if (grad) {
    for (b = 0; b < batch; b++) {
      size_t y = lensnet__label(labels[b], classes);
      double w = class_weights ? class_weights[y] : 1.0;
      lensnet__log_softmax(logits + b * classes, classes, lsm);
      for (c = 0; c < classes; c++) grad[b * classes + c] = (float)(w * (exp(lsm[c]) - (c == y)) / wsum);
    }
  }
  return (float)(total / wsum);
}

LENSNET_API float lensnet_loss_bce_logits(const float *logits, const float *targets, size_t count, float pos_weight, float *grad) {
  double total = 0.0, pw = pos_weight > 0 ? pos_weight : 1.0;
  size_t i;
  for (i = 0; i < count; i++) {
    double z = logits[i], y = targets[i];
    /* log sigma(z) and log(1 - sigma(z)) computed stably */
    double log_sig = -(z > 0 ? log1p(exp(-z)) : -z + log1p(exp(z)));
    double log_one_minus = log_sig - z;
    total -= pw * y * log_sig + (1.0 - y) * log_one_minus;
    if (grad) {
      double s = 1.0 / (1.0 + exp(-z));
      grad[i] = (float)((-pw * y * (1.0 - s) + (1.0 - y) * s) / (double)count);
    }
  }
  return (float)(total / (double)count);
}

LENSNET_API float lensnet_loss_focal(const float *logits, const float *labels, size_t batch, size_t classes, float gamma,
                                     const float *class_weights, float *grad) {
  double total = 0.0, lsm[LENSNET_MAX_CLASSES];
  size_t b, c;
  if (classes > LENSNET_MAX_CLASSES || batch == 0) return NAN;
  for (b = 0; b < batch; b++) {
    size_t y = lensnet__label(labels[b], classes);
    double a = class_weights ? class_weights[y] : 1.0, logp, p, one_minus;
    lensnet__log_softmax(logits + b * classes, classes, lsm);
    logp = lsm[y]; p = exp(logp); one_minus = 1.0 - p;
    total -= a * pow(one_minus, gamma) * logp;
    if (grad) {
      /* d/dz_c of -a (1-p)^g log p, with dp/dz_c = p (delta - p_c) */
      double dldp = a * (gamma * pow(one_minus, gamma - 1.0) * logp - pow(one_minus, gamma) / p);
      if (one_minus <= 0.0) dldp = -a / p;
      for (c = 0; c < classes; c++) {
        double pc = exp(lsm[c]);
        grad[b * classes + c] = (float)(dldp * p * ((c == y) - pc) / (double)batch);
      }
    }
  }
  return (float)(total / (double)batch);
}

LENSNET_API float lensnet_loss_mse(const float *pred, const float *targets, size_t count, float *grad) {
  double total = 0.0;
  size_t i;
  for (i = 0; i < count; i++) {
    double d = (double)pred[i] - targets[i];
    total += d * d;
    if (grad) grad[i] = (float)(2.0 * d / (double)count);
  }
  return (float)(total / (double)count);
}

LENSNET_API float lensnet_loss_gaussian_nll_beta(const float *outputs, const float *targets, size_t batch, size_t k, double beta,
                                                 float *grad) {
  double total = 0.0, n = (double)(batch * k), norm[LENSNET_REGRESSION_MAX], top[LENSNET_REGRESSION_MAX];
  size_t b, j;
  int weigh = beta != 0.0 && grad && k <= LENSNET_REGRESSION_MAX;
  for (j = 0; weigh && j < k; j++) { /* s^(2 beta) relative to the batch's largest, so no exp overflows */
    double sum = 0.0;
    top[j] = -HUGE_VAL;
    for (b = 0; b < batch; b++)
      if (outputs[b * 2 * k + k + j] > top[j]) top[j] = outputs[b * 2 * k + k + j];
    for (b = 0; b < batch; b++) sum += exp(beta * ((double)outputs[b * 2 * k + k + j] - top[j]));
    norm[j] = sum > 0.0 && sum < HUGE_VAL ? (double)batch / sum : 1.0; /* sum >= 1 unless a log-variance is NaN */
  }
  for (b = 0; b < batch; b++)
    for (j = 0; j < k; j++) {
      double mu = outputs[b * 2 * k + j], logvar = outputs[b * 2 * k + k + j], y = targets[b * k + j];
      double inv = exp(-logvar), d = y - mu;
      double w = weigh ? exp(beta * (logvar - top[j])) * norm[j] : 1.0; /* s^(2 beta) / its batch mean */
      total += 0.5 * (logvar + d * d * inv);
      if (grad) {
        grad[b * 2 * k + j] = (float)(-w * d * inv / n);
        grad[b * 2 * k + k + j] = (float)(w * 0.5 * (1.0 - d * d * inv) / n);
      }
    }
  return (float)(total / n);
}

LENSNET_API float lensnet_loss_gaussian_nll(const float *outputs, const float *targets, size_t batch, size_t k, float *grad) {
  return lensnet_loss_gaussian_nll_beta(outputs, targets, batch, k, 0.0, grad);
}

/* ---- optimisers and schedules ---------------------------------------------------------------- */

LENSNET_API lensnet_result lensnet_optimizer_create(const lensnet_optimizer_desc *desc, const lensnet_model *m,
                                                    lensnet_optimizer **out, lensnet_error *err) {
  lensnet_optimizer *o;
  int ok = 1;
  *out = NULL;
  if (m->quant) /* its int8 weights would not follow the float ones */
    return lensnet__fail(err, LENSNET_ERR_ARG, "a quantised model cannot be trained: train the float model, then quantise it again");
  o = LENSNET__CAST(lensnet_optimizer *, lensnet__alloc_or_flag(1, sizeof *o, &ok));
  if (!o) return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  o->desc = *desc;
  if (desc->parallel) o->par = *desc->parallel;
  o->desc.parallel = NULL; /* the copy in o->par is what runs */
  if (o->desc.lr <= 0) o->desc.lr = 1e-3f;
  if (o->desc.beta1 <= 0) o->desc.beta1 = 0.9f;
  if (o->desc.beta2 <= 0) o->desc.beta2 = 0.999f;
  if (o->desc.eps <= 0) o->desc.eps = 1e-8f;
  if (o->desc.type != LENSNET_OPT_SGD && o->desc.type != LENSNET_OPT_ADAM && o->desc.type != LENSNET_OPT_ADAMW) {
    LENSNET_FREE(o);
    return lensnet__fail(err, LENSNET_ERR_ARG, "unknown optimiser type %d", (int)desc->type);
  }
  o->count = m->value_count;
  o->m = LENSNET__CAST(float *, lensnet__alloc_or_flag(m->value_count, sizeof(float), &ok));
  o->v = LENSNET__CAST(float *, lensnet__alloc_or_flag(m->value_count, sizeof(float), &ok));
  { /* room for every parameter's pieces, trainable or not (a caller may unfreeze one later) */
    size_t i;
    for (i = 0; i < m->param_count; i++) o->piece_cap += (m->params[i].count + LENSNET__OPT_PIECE - 1) / LENSNET__OPT_PIECE;
    o->pieces = LENSNET__CAST(size_t *, lensnet__alloc_or_flag(2 * o->piece_cap + 2, sizeof(size_t), &ok));
    o->piece_sq = LENSNET__CAST(double *, lensnet__alloc_or_flag(o->piece_cap + 1, sizeof(double), &ok));
  }
  if (!ok) { lensnet_optimizer_free(o); return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory for optimiser state"); }
  *out = o;
  return LENSNET_OK;
}

LENSNET_API void lensnet_optimizer_free(lensnet_optimizer *o) {
  if (!o) return;
  LENSNET_FREE(o->m);
  LENSNET_FREE(o->v);
  LENSNET_FREE(o->pieces);
  LENSNET_FREE(o->piece_sq);
  LENSNET_FREE(o);
}

LENSNET_API float lensnet_clip_grad_norm(const lensnet_model *m, float *grads, float max_norm) {
  double sq = 0.0, norm;
  size_t i, k;
  for (i = 0; i < m->param_count; i++)
    if (m->params[i].trainable)
      for (k = 0; k < m->params[i].count; k++) { double g = grads[m->params[i].offset + k]; sq += g * g; }
  norm = sqrt(sq);
  if (max_norm > 0 && max_norm / (norm + 1e-6) < 1.0) {
    float scale = (float)(max_norm / (norm + 1e-6));
    for (i = 0; i < m->param_count; i++)
      if (m->params[i].trainable)
        for (k = 0; k < m->params[i].count; k++) grads[m->params[i].offset + k] *= scale;
  }
  return (float)norm;
}

#ifdef LENSNET__HAVE_AVX512
/* Adam without weight decay, 8 values a step, each operation the scalar loop's, rounded the same
 * way (float for the moments, double for the step): the same bits. Returns the values done. */
LENSNET__TARGET_AVX512 static size_t lensnet__adam_update_avx512(float *values, const float *grads, float *m1, float *m2, size_t n,
                                                                 float b1, float b2, float c1, float c2, float lr, double bc1,
                                                                 double bc2, double eps) {
  const __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2), vc1 = _mm256_set1_ps(c1), vc2 = _mm256_set1_ps(c2);
  const __m512d vbc1 = _mm512_set1_pd(bc1), vbc2 = _mm512_set1_pd(bc2), veps = _mm512_set1_pd(eps), vlr = _mm512_set1_pd((double)lr);
  size_t k;
  for (k = 0; k + 8 <= n; k += 8) {
    __m256 g = _mm256_loadu_ps(grads + k);
    /* products and sums rounded separately, as the scalar expression: the full-mask forms, which
     * compilers do not fuse into a multiply-add (GNU C and C++ contract plain mul + add) */
    __m256 m = _mm256_maskz_add_ps(0xFF, _mm256_maskz_mul_ps(0xFF, vb1, _mm256_loadu_ps(m1 + k)), _mm256_maskz_mul_ps(0xFF, vc1, g));
    __m256 v = _mm256_maskz_add_ps(0xFF, _mm256_maskz_mul_ps(0xFF, vb2, _mm256_loadu_ps(m2 + k)),
                                   _mm256_maskz_mul_ps(0xFF, _mm256_maskz_mul_ps(0xFF, vc2, g), g));
    __m512d mhat = _mm512_maskz_div_pd(0xFF, _mm512_maskz_cvtps_pd(0xFF, m), vbc1);
    __m512d vhat = _mm512_maskz_div_pd(0xFF, _mm512_maskz_cvtps_pd(0xFF, v), vbc2);
    __m512d step = _mm512_maskz_div_pd(0xFF, _mm512_maskz_mul_pd(0xFF, vlr, mhat),
                                       _mm512_maskz_add_pd(0xFF, _mm512_maskz_sqrt_pd(0xFF, vhat), veps));
    _mm256_storeu_ps(m1 + k, m);
    _mm256_storeu_ps(m2 + k, v);
    _mm256_storeu_ps(values + k, _mm512_maskz_cvtpd_ps(0xFF, _mm512_maskz_sub_pd(0xFF, _mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(values + k)), step)));
  }
  return k;
}
#endif

/* Adam's and AdamW's update of n values: the branches outside the loop, so that compilers
 * vectorise it (the same operations on each value, so the same bits). */
LENSNET__VECTORIZE static void lensnet__adam_update(float *LENSNET__RESTRICT values, const float *LENSNET__RESTRICT grads,
                                                    float *LENSNET__RESTRICT m1, float *LENSNET__RESTRICT m2, size_t n,
                                                    const lensnet_optimizer_desc *d, float lr, double bc1, double bc2) {
  const float b1 = d->beta1, b2 = d->beta2, c1 = 1.0f - d->beta1, c2 = 1.0f - d->beta2, wd = d->weight_decay;
  const float decay = 1.0f - lr * d->weight_decay;
  const double eps = d->eps;
  size_t k;
#define LENSNET__ADAM_BODY(P, G) \
  for (k = 0; k < n; k++) { \
    float p = P, g = G; \
    double mhat, vhat; \
    m1[k] = b1 * m1[k] + c1 * g; \
    m2[k] = b2 * m2[k] + c2 * g * g; \
    mhat = m1[k] / bc1; \
    vhat = m2[k] / bc2; \
    values[k] = (float)(p - lr * mhat / (sqrt(vhat) + eps)); \
  }
#ifdef LENSNET__HAVE_AVX512
  if (d->type != LENSNET_OPT_ADAMW && wd == 0 && lensnet_simd_best() == LENSNET_SIMD_AVX512) {
    k = lensnet__adam_update_avx512(values, grads, m1, m2, n, b1, b2, c1, c2, lr, bc1, bc2, eps);
    values += k; grads += k; m1 += k; m2 += k; n -= k;
  }
#endif
  if (d->type == LENSNET_OPT_ADAMW) LENSNET__ADAM_BODY(values[k] * decay, grads[k])
  else if (wd != 0) LENSNET__ADAM_BODY(values[k], grads[k] + wd * values[k])
  else LENSNET__ADAM_BODY(values[k], grads[k])
#undef LENSNET__ADAM_BODY
}

/* The step in pieces (o->pieces), each a task: first every piece's sum of squared gradients, then
 * (clipped if asked) every piece's update. Each value's update is its own, so the pieces give the
 * bits of one pass, whoever runs them. */
typedef struct {
  lensnet_optimizer *o;
  lensnet_model *m;
  float *grads, lr, scale;
  double bc1, bc2;
  int update;
} lensnet__opt_job;

static void lensnet__opt_task(void *ctx, size_t index, size_t worker) {
  const lensnet__opt_job *j = (const lensnet__opt_job *)ctx;
  lensnet_optimizer *o = j->o;
  const lensnet_optimizer_desc *d = &o->desc;
  size_t at = o->pieces[2 * index], n = o->pieces[2 * index + 1], k;
  float *g = j->grads + at, *values = j->m->values + at;
  (void)worker;
  if (!j->update) {
    double sq = 0.0;
    for (k = 0; k < n; k++) sq += (double)g[k] * (double)g[k];
    o->piece_sq[index] = sq;
    return;
  }
  if (j->scale != 1.0f)
    for (k = 0; k < n; k++) g[k] *= j->scale;
  if (d->type != LENSNET_OPT_SGD) { lensnet__adam_update(values, g, o->m + at, o->v + at, n, d, j->lr, j->bc1, j->bc2); return; }
  for (k = 0; k < n; k++) {
    float p = values[k], gk = g[k], *mk = o->m + at + k;
    if (d->weight_decay != 0) gk += d->weight_decay * p;
    if (d->momentum != 0) {
      *mk = o->step == 1 ? gk : d->momentum * *mk + gk;
      gk = d->nesterov ? gk + d->momentum * *mk : *mk;
    }
    values[k] = p - j->lr * gk;
  }
}

/* PyTorch's update rules (torch.optim.SGD, Adam, AdamW), applied per trainable value. */
LENSNET_API float lensnet_optimizer_step(lensnet_optimizer *o, lensnet_model *m, float *grads, float lr) {
  const lensnet_optimizer_desc *d = &o->desc;
  lensnet__opt_job job;
  double sq = 0.0, norm;
  size_t i, k, pieces = 0;
  for (i = 0; i < m->param_count; i++) {
    const lensnet_param *P = &m->params[i];
    for (k = 0; P->trainable && k < P->count && pieces < o->piece_cap; k += LENSNET__OPT_PIECE, pieces++) {
      o->pieces[2 * pieces] = P->offset + k;
      o->pieces[2 * pieces + 1] = P->count - k < LENSNET__OPT_PIECE ? P->count - k : LENSNET__OPT_PIECE;
    }
  }
  if (lr <= 0) lr = d->lr;
  o->step++;
  job.o = o; job.m = m; job.grads = grads; job.lr = lr; job.scale = 1.0f; job.update = 0;
  job.bc1 = 1.0 - pow(d->beta1, (double)o->step);
  job.bc2 = 1.0 - pow(d->beta2, (double)o->step);
  lensnet__parallel_run(&o->par, pieces, lensnet__opt_task, &job);
  for (i = 0; i < pieces; i++) sq += o->piece_sq[i];
  norm = sqrt(sq);
  if (d->clip_norm > 0 && d->clip_norm / (norm + 1e-6) < 1.0) job.scale = (float)(d->clip_norm / (norm + 1e-6)); /* clip_grad_norm_'s rule */
  job.update = 1;
  lensnet__parallel_run(&o->par, pieces, lensnet__opt_task, &job);
  return (float)norm;
}

LENSNET_API float lensnet_schedule_lr(const lensnet_schedule *s, float base_lr, size_t epoch) {
  size_t e = epoch;
  if (s->warmup && epoch < s->warmup) return base_lr * (float)(epoch + 1) / (float)s->warmup;
  e -= s->warmup;
  switch (s->type) {
    case LENSNET_SCHEDULE_STEP:
      return s->step_size ? base_lr * powf(s->gamma > 0 ? s->gamma : 0.1f, (float)(e / s->step_size)) : base_lr;
    case LENSNET_SCHEDULE_COSINE: {
      double frac = s->total ? (double)(e < s->total ? e : s->total) / (double)s->total : 1.0;
      return (float)(s->min_lr + (base_lr - s->min_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * frac)));
    }
    default: return base_lr;
  }
}

/* ---- fitting: the training loop with checkpoints and exact resume ---------------------------- */

#define LENSNET__FIT_SETTINGS(X) \
  X(optimizer,     TEXT,   0, 0,     "adam|adamw|sgd",       "optimiser: adam | adamw | sgd (default adam)") \
  X(schedule,      TEXT,   0, 0,     "constant|step|cosine", "learning-rate schedule: constant | step | cosine (default constant)") \
  X(loss,          TEXT,   0, 0,     "ce|focal|mse|nll",     "loss: ce (softmax cross-entropy) | focal | mse | nll (default ce;\nregression mse; nll: see --nll-beta)") \
  X(class_weights, TEXT,   0, 0,     NULL, "auto (inverse class frequency) | none | w0,w1,... (default none)") \
  X(augment,       TEXT,   0, 0,     NULL, "flip,rot90,rot180,shift=PIXELS,noise=SIGMA, any of them (default none)") \
  X(epochs,        INT,    1, 1e6,   NULL, "epochs to train (default 10)") \
  X(nesterov,      FLAG,   0, 1,     NULL, "Nesterov momentum (sgd)") \
  X(minmax,        FLAG,   0, 1,     NULL, "scale each image per band to [0,1] first (default: as the model's own 'preprocess'\nsays: none for a fresh model); saved as the model's 'preprocess'") \
  X(exact,         FLAG,   0, 1,     NULL, "every convolution as direct sums (by default, on AVX-512 CPUs, 3x3 and\n5x5 ones run as Winograd's F(2x2,3x3), F(2x2,5x5): faster, equal to rounding)") \
  X(batch,         SIZE,   1, 65536, NULL, "images per step (default 32)") \
  X(lr,            NUMBER, 1e-12, 100, NULL, "learning rate (default 1e-3)") \
  X(val_fraction,  NUMBER, 0, 0.9,   NULL, "held-out share for validation (default 0.1)") \
  X(momentum,      NUMBER, 0, 1,     NULL, "momentum (sgd; default 0)") \
  X(weight_decay,  NUMBER, 0, 10,    NULL, "weight decay (default 0; adamw 0.01, decoupled, as torch.optim.AdamW;\nsgd and adam: L2 added to the gradient)") \
  X(clip_norm,     NUMBER, 0, 1e9,   NULL, "clip the global gradient norm to this (default 0: no clipping)") \
  X(gamma,         NUMBER, 1e-12, 1, NULL, "step schedule: factor per decay (default 0.1)") \
  X(focal_gamma,   NUMBER, 0, 10,    NULL, "focal loss exponent (default 2)") \
  X(nll_beta,      NUMBER, 0, 1,     NULL, "regression, loss nll: weight each object's gradient by sigma^(2 beta),\n0..1 (beta-NLL; default 0)") \
  X(min_lr,        NUMBER, 0, 100,   NULL, "cosine schedule: the floor of the cosine (PyTorch's eta_min; default 0)") \
  X(step_size,     INT,    0, 1e6,   NULL, "step schedule: epochs per decay (required by --schedule step)") \
  X(warmup,        INT,    0, 1e6,   NULL, "epochs of linear warm-up (default 0)") \
  X(seed,          SEED,   0, 9e15,  NULL, "seed of the split, shuffling, augmentation and dropout (default 0)")

#define LENSNET__FIT_ROW(field, type, lo, hi, choices, help) \
  {#field, LENSNET_SETTING_##type, offsetof(lensnet_fit_desc, field), lo, hi, choices, help},
static const lensnet_fit_setting lensnet__fit_table[] = {LENSNET__FIT_SETTINGS(LENSNET__FIT_ROW)};
#undef LENSNET__FIT_ROW
#define LENSNET__FIT_COUNT (sizeof lensnet__fit_table / sizeof lensnet__fit_table[0])

LENSNET_API const lensnet_fit_setting *lensnet_fit_settings(size_t *count) {
  if (count) *count = LENSNET__FIT_COUNT;
  return lensnet__fit_table;
}

LENSNET_API const lensnet_fit_setting *lensnet_fit_setting_find(const char *name) {
  size_t i, k;
  for (i = 0; i < LENSNET__FIT_COUNT; i++) {
    const char *a = lensnet__fit_table[i].name;
    for (k = 0; a[k] && (name[k] == a[k] || (name[k] == '-' && a[k] == '_')); k++) {}
    if (!a[k] && !name[k]) return &lensnet__fit_table[i];
  }
  return NULL;
}

/* val_fraction, focal_gamma and weight_decay (adamw's) default to nonzero values, so an explicit 0
 * is kept as -1. */
static int lensnet__fit_zero_is_default(const lensnet_fit_setting *s) {
  return !strcmp(s->name, "val_fraction") || !strcmp(s->name, "focal_gamma") || !strcmp(s->name, "weight_decay");
}

LENSNET_API lensnet_fit_desc lensnet_fit_desc_resolve(const lensnet_fit_desc *desc) {
  lensnet_fit_desc d;
  if (desc) d = *desc;
  else memset(&d, 0, sizeof d);
  if (!d.count && d.images && d.images->ndim >= 1) d.count = d.images->shape[0];
  if (!d.class_weights || !d.class_weights[0]) d.class_weights = "none";
  d.val_fraction = d.val_fraction == 0 ? 0.1 : d.val_fraction < 0 ? 0.0 : d.val_fraction;
  if (!d.epochs) d.epochs = 10;
  if (!d.batch) d.batch = 32;
  if (!d.optimizer || !d.optimizer[0]) d.optimizer = "adam";
  d.weight_decay = d.weight_decay == 0 ? (!strcmp(d.optimizer, "adamw") ? 0.01 : 0.0) : d.weight_decay < 0 ? 0.0 : d.weight_decay;
  if (d.lr == 0) d.lr = 1e-3;
  if (!d.schedule || !d.schedule[0]) d.schedule = "constant";
  if (d.gamma == 0) d.gamma = 0.1;
  if (!d.loss || !d.loss[0]) d.loss = d.targets ? "mse" : "ce";
  d.focal_gamma = d.focal_gamma == 0 ? 2.0 : d.focal_gamma < 0 ? 0.0 : d.focal_gamma;
  if (!d.augment || !d.augment[0]) d.augment = "none";
  d.nesterov = d.nesterov != 0;
  d.minmax = d.minmax != 0;
  return d;
}

/* The shortest %g text that reads back (strtod) as v: 0.1, not 0.10000000000000001. */
static int lensnet__double_text(double v, char *buf, size_t cap) {
  int prec, n = 0;
  char t[40];
  for (prec = 1; prec <= 17; prec++) {
    snprintf(t, sizeof t, "%.*g", prec, v);
    if (strtod(t, NULL) == v || v != v) break;
  }
  n = snprintf(buf, cap, "%s", t);
  return n;
}

/* A numeric setting of a desc (lensnet_fit_desc or lensnet_adapt_desc: the table's offsets say
 * where) as a double. */
static double lensnet__setting_number(const void *desc, const lensnet_fit_setting *s) {
  const char *p = (const char *)desc + s->offset;
  switch (s->type) {
    case LENSNET_SETTING_FLAG: case LENSNET_SETTING_INT: return (double)*(const int *)(const void *)p;
    case LENSNET_SETTING_SIZE: return (double)*(const size_t *)(const void *)p;
    case LENSNET_SETTING_SEED: return (double)*(const uint64_t *)(const void *)p;
    case LENSNET_SETTING_NUMBER: return *(const double *)(const void *)p;
    default: return 0.0;
  }
}

/* A setting of a resolved desc as text that parses back to the same value. */
static int lensnet__setting_format(const void *desc, const lensnet_fit_setting *s, char *buf, size_t cap) {
  const char *p = (const char *)desc + s->offset;
  if (s->type == LENSNET_SETTING_TEXT) return snprintf(buf, cap, "%s", *(const char *const *)(const void *)p);
  if (s->type == LENSNET_SETTING_SEED) {
    char t[24];
    return snprintf(buf, cap, "%s", lensnet__u64_text(*(const uint64_t *)(const void *)p, t));
  }
  return lensnet__double_text(lensnet__setting_number(desc, s), buf, cap);
}

/* Whether text is one of the setting's choices ("a|b|c"); a setting without choices takes any. */
static int lensnet__setting_choice(const lensnet_fit_setting *s, const char *text) {
  const char *c = s->choices;
  size_t n = strlen(text);
  if (!c) return 1;
  for (;;) {
    size_t k = strcspn(c, "|");
    if (k == n && !strncmp(c, text, n)) return 1;
    if (!c[k]) return 0;
    c += k + 1;
  }
}

/* A numeric setting from text into desc, checked against its range (whole numbers where the type
 * is); zero_means_none: a 0 is stored as -1, the desc's "none" for settings whose 0 is the default. */
static lensnet_result lensnet__setting_store(void *desc, const lensnet_fit_setting *s, const char *text, int zero_means_none,
                                             lensnet_error *err) {
  char *p = (char *)desc + s->offset, *end = NULL;
  double v = strtod(text, &end);
  if (end == text || *end || !(v >= s->lo && v <= s->hi) || (s->type != LENSNET_SETTING_NUMBER && v != floor(v)))
    return lensnet__fail(err, LENSNET_ERR_ARG, "%s takes %s from %g to %g, got '%s'", s->name,
                         s->type == LENSNET_SETTING_NUMBER ? "a number" : "a whole number", s->lo, s->hi, text);
  if (v == 0 && zero_means_none) v = -1;
  switch (s->type) {
    case LENSNET_SETTING_FLAG: case LENSNET_SETTING_INT: *(int *)(void *)p = (int)v; break;
    case LENSNET_SETTING_SIZE: *(size_t *)(void *)p = (size_t)v; break;
    case LENSNET_SETTING_SEED: *(uint64_t *)(void *)p = (uint64_t)v; break; /* exact: seeds stay below 2^53 */
    default: *(double *)(void *)p = v; break;
  }
  return LENSNET_OK;
}

LENSNET_API int lensnet_fit_setting_format(const lensnet_fit_desc *desc, const lensnet_fit_setting *s, char *buf, size_t cap) {
  lensnet_fit_desc d = lensnet_fit_desc_resolve(desc);
  return lensnet__setting_format(&d, s, buf, cap);
}

/* "flip,rot90,rot180,shift=N,noise=SIGMA" (or "none"). */
typedef struct { int flip, rot90, rot180, shift; float noise; } lensnet__augment;

static lensnet_result lensnet__augment_parse(const char *text, lensnet__augment *a, lensnet_error *err) {
  const char *p = text;
  memset(a, 0, sizeof *a);
  if (!text || !text[0] || !strcmp(text, "none")) return LENSNET_OK;
  while (*p) {
    size_t n = strcspn(p, ",");
    char item[64], *end = NULL;
    double v = 0;
    snprintf(item, sizeof item, "%.*s", (int)(n < 63 ? n : 63), p);
    if (!strcmp(item, "flip")) a->flip = 1;
    else if (!strcmp(item, "rot90")) a->rot90 = 1;
    else if (!strcmp(item, "rot180")) a->rot180 = 1;
    else if (!strncmp(item, "shift=", 6) && (v = strtod(item + 6, &end), end != item + 6 && !*end) && v >= 0 && v <= 64 && v == floor(v))
      a->shift = (int)v;
    else if (!strncmp(item, "noise=", 6) && (v = strtod(item + 6, &end), end != item + 6 && !*end) && v >= 0 && v <= 1e6)
      a->noise = (float)v;
    else return lensnet__fail(err, LENSNET_ERR_ARG, "augment: '%s' is not flip, rot90, rot180, shift=PIXELS (0..64) or noise=SIGMA (>= 0)", item);
    p += n;
    if (*p == ',') p++;
  }
  return LENSNET_OK;
}

/* class_weights text into w[classes]; *use = 0 for none. auto needs the training labels. */
static lensnet_result lensnet__class_weights(const char *text, const float *labels, const size_t *idx, size_t n, size_t classes,
                                             float *w, int *use, lensnet_error *err) {
  const char *p = text;
  size_t c;
  *use = 0;
  if (!text || !text[0] || !strcmp(text, "none")) return LENSNET_OK;
  *use = 1;
  if (!strcmp(text, "auto")) {
    size_t i;
    for (c = 0; c < classes; c++) w[c] = 0.0f;
    for (i = 0; labels && i < n; i++) w[(size_t)labels[idx[i]]] += 1.0f;
    /* inverse class frequency, normalised so a balanced set gets weight 1 */
    for (c = 0; c < classes; c++) w[c] = w[c] > 0 ? (float)((double)n / ((double)classes * (double)w[c])) : 0.0f;
    return LENSNET_OK;
  }
  for (c = 0; c < classes; c++) {
    char *end;
    double v = strtod(p, &end);
    if (end == p || !(v >= 0 && v <= 1e9)) break;
    w[c] = (float)v;
    p = end;
    if (*p == ',' && c + 1 < classes) p++;
  }
  if (c < classes || *p)
    return lensnet__fail(err, LENSNET_ERR_ARG, "class_weights '%s': give auto, none or %lu non-negative numbers, one per class", text,
                         (unsigned long)classes);
  return LENSNET_OK;
}

static lensnet_result lensnet__fit_check_text(const lensnet_fit_setting *s, const char *v, lensnet_error *err) {
  lensnet__augment a;
  if (!lensnet__setting_choice(s, v)) return lensnet__fail(err, LENSNET_ERR_ARG, "%s must be one of %s, got '%s'", s->name, s->choices, v);
  if (s->choices) return LENSNET_OK;
  if (!strcmp(s->name, "augment")) return lensnet__augment_parse(v, &a, err);
  if (!strcmp(s->name, "class_weights") && strcmp(v, "auto") && strcmp(v, "none")) {
    const char *p = v;
    while (*p) {
      char *end;
      double w = strtod(p, &end);
      if (end == p || !(w >= 0 && w <= 1e9) || (*end && *end != ',')) break;
      p = *end ? end + 1 : end;
    }
    if (*p || !*v) return lensnet__fail(err, LENSNET_ERR_ARG, "class_weights '%s': give auto, none or non-negative numbers w0,w1,...", v);
  }
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_fit_setting_parse(lensnet_fit_desc *desc, const lensnet_fit_setting *s, const char *text,
                                                     lensnet_error *err) {
  if (s->type == LENSNET_SETTING_TEXT) {
    lensnet_result r = lensnet__fit_check_text(s, text, err);
    if (r == LENSNET_OK) *(const char **)(void *)((char *)desc + s->offset) = text;
    return r;
  }
  return lensnet__setting_store(desc, s, text, lensnet__fit_zero_is_default(s), err);
}

/* Every setting of a resolved desc within its range and choices. */
static lensnet_result lensnet__fit_check_settings(const lensnet_fit_desc *d, lensnet_error *err) {
  size_t i;
  for (i = 0; i < LENSNET__FIT_COUNT; i++) {
    const lensnet_fit_setting *s = &lensnet__fit_table[i];
    if (s->type == LENSNET_SETTING_TEXT) {
      lensnet_result r = lensnet__fit_check_text(s, *(const char *const *)(const void *)((const char *)d + s->offset), err);
      if (r != LENSNET_OK) return r;
    } else {
      double v = lensnet__setting_number(d, s);
      if (!(v >= s->lo && v <= s->hi)) return lensnet__fail(err, LENSNET_ERR_ARG, "%s = %g is outside %g..%g", s->name, v, s->lo, s->hi);
    }
  }
  return LENSNET_OK;
}

/* A new run's settings that would do nothing, said rather than ignored: raw is the desc as given
 * (gamma's 0 is its default), d resolved. Not applied on resume: a checkpoint written before
 * these were refused resumes as it ran. */
static lensnet_result lensnet__fit_check_effective(const lensnet_fit_desc *raw, const lensnet_fit_desc *d, lensnet_error *err) {
  int step = !strcmp(d->schedule, "step");
  if (d->momentum > 0 && strcmp(d->optimizer, "sgd"))
    return lensnet__fail(err, LENSNET_ERR_ARG, "momentum %g applies to sgd; %s keeps its own average of the gradients (beta1 0.9)", d->momentum,
                         d->optimizer);
  if (d->nesterov && !(d->momentum > 0)) return lensnet__fail(err, LENSNET_ERR_ARG, "nesterov needs sgd with momentum above 0");
  if (step && d->step_size <= 0) return lensnet__fail(err, LENSNET_ERR_ARG, "schedule step needs step_size, the epochs between decays by gamma");
  if (!step && (d->step_size > 0 || raw->gamma != 0))
    return lensnet__fail(err, LENSNET_ERR_ARG, "%s applies to the step schedule, not %s", d->step_size > 0 ? "step_size" : "gamma", d->schedule);
  if (d->min_lr > 0 && strcmp(d->schedule, "cosine"))
    return lensnet__fail(err, LENSNET_ERR_ARG, "min_lr %g applies to the cosine schedule, not %s", d->min_lr, d->schedule);
  return LENSNET_OK;
}

/* ---- checkpoints ---- */

static void lensnet__rng_to_text(const lensnet_rng *r, char *buf, size_t cap) {
  char all[65];
  size_t n;
  int k;
  for (k = 0; k < 4; k++) lensnet__u64_hex(r->s[k], all + 16 * k); /* each ends in a NUL the next overwrites */
  if (!cap) return;
  n = cap - 1 < 64 ? cap - 1 : 64;
  memcpy(buf, all, n);
  buf[n] = 0;
}

static int lensnet__rng_from_text(const char *text, lensnet_rng *r) {
  int i;
  if (!text || strlen(text) != 64 || strspn(text, "0123456789abcdefABCDEF") != 64) return 0;
  for (i = 0; i < 4; i++) {
    char part[17];
    memcpy(part, text + 16 * i, 16);
    part[16] = 0;
    r->s[i] = strtoull(part, NULL, 16);
  }
  return 1;
}

/* The optimiser step and the random streams as metadata of m. */
static lensnet_result lensnet__state_meta(lensnet_model *m, const lensnet_optimizer *opt, lensnet_trainer *t, const lensnet_rng *data_rng) {
  char text[80];
  lensnet_result r = LENSNET_OK;
  if (opt) {
    lensnet__u64_text((uint64_t)opt->step, text);
    r = lensnet_model_set_meta(m, "train.optimizer_step", text);
  }
  if (data_rng && r == LENSNET_OK) {
    lensnet__rng_to_text(data_rng, text, sizeof text);
    r = lensnet_model_set_meta(m, "train.data_rng", text);
  }
  if (t && r == LENSNET_OK) {
    lensnet__rng_to_text(&t->rng, text, sizeof text);
    r = lensnet_model_set_meta(m, "train.dropout_rng", text);
  }
  return r;
}

/* One optimiser moment of a parameter as a tensor viewing `values`. */
static lensnet_tensor lensnet__param_view(const lensnet_param *P, float *values) {
  lensnet_tensor t;
  memset(&t, 0, sizeof t);
  t.ndim = P->ndim;
  memcpy(t.shape, P->shape, sizeof P->shape);
  t.data = values + P->offset;
  return t;
}

/* A network's values (trainable_only: its trainable parameters' values, as optimiser moments are
 * laid out) into st under the names PREFIX + parameter name, as views (values must outlive st). */
static lensnet_result lensnet__values_add(lensnet_safetensors *st, const char *prefix, const lensnet_model *m, float *values,
                                          int trainable_only) {
  size_t i;
  lensnet_result r = LENSNET_OK;
  for (i = 0; i < m->param_count && r == LENSNET_OK; i++) {
    lensnet_tensor t = lensnet__param_view(&m->params[i], values);
    char name[200];
    if (trainable_only && !m->params[i].trainable) continue;
    snprintf(name, sizeof name, "%s%s", prefix, m->params[i].name);
    r = lensnet__safetensors_add_view(st, name, &t);
  }
  return r;
}

/* The values lensnet__values_add stored under PREFIX back into values. */
static lensnet_result lensnet__values_get(const lensnet_safetensors *st, const char *prefix, const lensnet_model *m, float *values,
                                          int trainable_only, lensnet_error *err) {
  size_t i;
  for (i = 0; i < m->param_count; i++) {
    const lensnet_param *P = &m->params[i];
    const lensnet_tensor *t;
    char name[200];
    if (trainable_only && !P->trainable) continue;
    snprintf(name, sizeof name, "%s%s", prefix, P->name);
    if (!(t = lensnet_safetensors_find(st, name)) || lensnet_tensor_count(t) != P->count)
      return lensnet__fail(err, LENSNET_ERR_WEIGHTS, "checkpoint lacks %s", name);
    memcpy(values + P->offset, t->data, P->count * sizeof(float));
  }
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_checkpoint_save(const char *path, lensnet_model *m, const lensnet_optimizer *opt, lensnet_trainer *t,
                                                   const lensnet_rng *data_rng, lensnet_error *err) {
  lensnet_safetensors st;
  lensnet_result r;
  if ((r = lensnet__state_meta(m, opt, t, data_rng)) != LENSNET_OK || (r = lensnet__model_to_safetensors(m, &st)) != LENSNET_OK)
    return lensnet__fail(err, r, "out of memory saving %s", path);
  if (opt) r = lensnet__values_add(&st, "optimizer.m.", m, opt->m, 1);
  if (opt && r == LENSNET_OK) r = lensnet__values_add(&st, "optimizer.v.", m, opt->v, 1);
  if (r != LENSNET_OK) lensnet__fail(err, r, "out of memory saving %s", path);
  else r = lensnet_safetensors_write(path, &st, err);
  lensnet_safetensors_free(&st);
  return r;
}

/* The optimiser's moments and step and the random streams from a checkpoint already read. */
static lensnet_result lensnet__checkpoint_state(const lensnet_safetensors *st, const lensnet_model *m, lensnet_optimizer *opt,
                                                lensnet_trainer *t, lensnet_rng *data_rng, lensnet_error *err) {
  lensnet_rng dropout;
  if ((data_rng && !lensnet__rng_from_text(lensnet_safetensors_meta(st, "train.data_rng"), data_rng)) ||
      (t && !lensnet__rng_from_text(lensnet_safetensors_meta(st, "train.dropout_rng"), &dropout)))
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "checkpoint has no random-stream state");
  if (t) t->rng = dropout;
  if (!opt) return LENSNET_OK;
  {
    const char *v = lensnet_safetensors_meta(st, "train.optimizer_step");
    opt->step = v ? strtoull(v, NULL, 10) : 0;
  }
  {
    lensnet_result r = lensnet__values_get(st, "optimizer.m.", m, opt->m, 1, err);
    return r == LENSNET_OK ? lensnet__values_get(st, "optimizer.v.", m, opt->v, 1, err) : r;
  }
}

/* Copies the weights and metadata of `from` into m of the same architecture. */
static lensnet_result lensnet__model_copy(lensnet_model *m, const lensnet_model *from, lensnet_error *err) {
  size_t i;
  if (strcmp(m->arch, from->arch) || m->value_count != from->value_count)
    return lensnet__fail(err, LENSNET_ERR_ARCH, "the checkpoint's architecture differs from the model's");
  memcpy(m->values, from->values, m->value_count * sizeof(float));
  for (i = 0; i < from->meta_count; i++)
    if (lensnet_model_set_meta(m, from->meta_keys[i], from->meta_values[i]) != LENSNET_OK)
      return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_checkpoint_load(const char *path, lensnet_model *m, lensnet_optimizer *opt, lensnet_trainer *t,
                                                   lensnet_rng *data_rng, lensnet_error *err) {
  lensnet_safetensors st;
  lensnet_model *saved = NULL;
  lensnet_result r;
  if ((r = lensnet_safetensors_read(path, &st, err)) != LENSNET_OK) return r;
  r = lensnet_model_from_safetensors(&st, &saved, err);
  if (r == LENSNET_OK) r = lensnet__model_copy(m, saved, err);
  if (r == LENSNET_OK) r = lensnet__checkpoint_state(&st, m, opt, t, data_rng, err);
  if (r != LENSNET_OK) lensnet__prefix_path(err, path);
  lensnet_model_free(saved);
  lensnet_safetensors_free(&st);
  return r;
}

/* ---- the loop ---- */

typedef struct {
  lensnet_model *m;
  lensnet_fit_desc d;               /* resolved */
  lensnet__augment aug;
  size_t n, per, classes, n_train, n_val;
  size_t targets;                   /* regression: values per image; 0: classification */
  int nll;                          /* regression with the Gaussian NLL (outputs: means, then log-variances) */
  double *t_mean, *t_std;           /* regression: the training part's mean and standard deviation per target */
  size_t *split, *order;            /* the seeded permutation (training part first), this epoch's order */
  float *bx, *by, *logits, *grad, *img, *class_w;
  int use_weights;
  lensnet_trainer *t;
  lensnet_optimizer *opt;
  lensnet_schedule sched;
  lensnet_rng data_rng;
  int epoch;                        /* epochs done */
  double best_val_loss;
  char *history;                    /* history.csv so far */
  size_t history_len;
  char fingerprint[17];             /* train.data_fingerprint (lensnet__fit_scan) */
} lensnet__fit;

/* ---- a run's directory (lensnet_fit, lensnet_adapt) ---- */

/* add appended to a growing text (a run's history). */
static lensnet_result lensnet__text_append(char **text, size_t *len, const char *add, lensnet_error *err) {
  size_t n = strlen(add);
  char *h = LENSNET__CAST(char *, LENSNET_REALLOC(*text, *len + n + 1));
  if (!h) return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  memcpy(h + *len, add, n + 1);
  *text = h;
  *len += n;
  return LENSNET_OK;
}

/* DIR/NAME into path. */
static lensnet_result lensnet__run_file(const char *dir, const char *name, char *path, size_t cap, lensnet_error *err) {
  if ((size_t)snprintf(path, cap, "%s/%s", dir, name) >= cap) return lensnet__fail(err, LENSNET_ERR_ARG, "%s: path too long", dir);
  return LENSNET_OK;
}

/* DIR/history.csv from the history the run holds, replaced whole. */
static lensnet_result lensnet__run_write_history(const char *dir, const char *history, size_t len, lensnet_error *err) {
  char path[4096];
  lensnet__chunk chunk;
  lensnet_result r = lensnet__run_file(dir, "history.csv", path, sizeof path, err);
  if (r != LENSNET_OK) return r;
  chunk.data = history;
  chunk.len = len;
  return lensnet__write_atomic(path, &chunk, 1, err);
}

/* A run's scaling into *minmax: preprocess ("minmax" or "none") when given, else minmax when set,
 * else the model's own (what it was trained on); *preprocess is then cleared. */
static lensnet_result lensnet__run_scaling(const char *who, const char **preprocess, int *minmax, const lensnet_model *m,
                                           lensnet_error *err) {
  if (*preprocess && strcmp(*preprocess, "minmax") != 0 && strcmp(*preprocess, "none") != 0)
    return lensnet__fail(err, LENSNET_ERR_ARG, "%s: preprocess \"%.40s\" is neither \"minmax\" nor \"none\"", who, *preprocess);
  if (*preprocess) *minmax = !strcmp(*preprocess, "minmax");
  else if (!*minmax && m) {
    lensnet_result r = lensnet_model_preprocess(m, minmax, NULL, err);
    if (r != LENSNET_OK) return r;
  }
  *preprocess = NULL;
  return LENSNET_OK;
}

static void lensnet__fit_free(lensnet__fit *f) {
  LENSNET_FREE(f->split); LENSNET_FREE(f->order); LENSNET_FREE(f->bx); LENSNET_FREE(f->by); LENSNET_FREE(f->logits);
  LENSNET_FREE(f->grad); LENSNET_FREE(f->img); LENSNET_FREE(f->class_w); LENSNET_FREE(f->history);
  LENSNET_FREE(f->t_mean); LENSNET_FREE(f->t_std);
  lensnet_trainer_free(f->t);
  lensnet_optimizer_free(f->opt);
}

static int lensnet__list_entry(const char *list, size_t k, const char **start, size_t *len);

/* Regression: the loss, the model's outputs, finite targets, and no augmentation or class weight
 * that would contradict them (a flip or shift moves the lens the targets describe). */
static lensnet_result lensnet__fit_check_targets(const lensnet_model *m, const lensnet_fit_desc *d, lensnet_error *err) {
  size_t want = d->targets * (strcmp(d->loss, "nll") ? 1 : 2), i, first;
  if (strcmp(d->loss, "mse") && strcmp(d->loss, "nll"))
    return lensnet__fail(err, LENSNET_ERR_ARG, "loss %s is for classification; regression takes mse or nll", d->loss);
  if (d->targets > LENSNET_REGRESSION_MAX)
    return lensnet__fail(err, LENSNET_ERR_ARG, "%lu targets; at most %d", (unsigned long)d->targets, LENSNET_REGRESSION_MAX);
  if (d->nll_beta != 0 && strcmp(d->loss, "nll"))
    return lensnet__fail(err, LENSNET_ERR_ARG, "nll_beta weights the Gaussian NLL; loss %s has no sigma to weight by", d->loss);
  if (!(d->nll_beta >= 0 && d->nll_beta <= 1)) return lensnet__fail(err, LENSNET_ERR_ARG, "nll_beta %g is outside 0..1", d->nll_beta);
  if (m->out_features != want)
    return lensnet__fail(err, LENSNET_ERR_SHAPE, "the model has %lu outputs; %lu targets with loss %s need %lu", (unsigned long)m->out_features,
                         (unsigned long)d->targets, d->loss, (unsigned long)want);
  if (strcmp(d->class_weights, "none")) return lensnet__fail(err, LENSNET_ERR_ARG, "class_weights apply to classification, not regression");
  if (strstr(d->augment, "flip") || strstr(d->augment, "rot") || strstr(d->augment, "shift"))
    return lensnet__fail(err, LENSNET_ERR_ARG, "augment %s: flips, turns and shifts move the lens the regression targets describe; "
                         "only noise= applies", d->augment);
  if (lensnet_count_nonfinite(d->labels, d->count * d->targets, &first))
    return lensnet__fail(err, LENSNET_ERR_ARG, "target %lu of image %lu is not finite", (unsigned long)(first % d->targets),
                         (unsigned long)(first / d->targets));
  for (i = 0; d->target_names && i < d->targets; i++) {
    const char *name;
    size_t len;
    if (!lensnet__list_entry(d->target_names, i, &name, &len) || !len)
      return lensnet__fail(err, LENSNET_ERR_ARG, "target_names '%.200s' names fewer than the %lu targets", d->target_names, (unsigned long)d->targets);
  }
  return LENSNET_OK;
}

/* The data against the model: shapes, labels, a source of images. */
static lensnet_result lensnet__fit_check_data(const lensnet_model *m, const lensnet_fit_desc *d, lensnet_error *err) {
  size_t i;
  if (d->images) {
    const lensnet_tensor *x = d->images;
    if (x->ndim != 4 || x->shape[1] != m->in_c || x->shape[2] != m->in_h || x->shape[3] != m->in_w)
      return lensnet__fail(err, LENSNET_ERR_SHAPE, "images are %lux%lux%lu but the model takes %lux%lux%lu",
                           (unsigned long)(x->ndim == 4 ? x->shape[1] : 0), (unsigned long)(x->ndim == 4 ? x->shape[2] : 0),
                           (unsigned long)(x->ndim == 4 ? x->shape[3] : 0), (unsigned long)m->in_c, (unsigned long)m->in_h, (unsigned long)m->in_w);
    if (d->count != x->shape[0]) return lensnet__fail(err, LENSNET_ERR_ARG, "count %lu differs from the %lu images", (unsigned long)d->count, (unsigned long)x->shape[0]);
    /* their pixels: lensnet__fit_scan, once the rest is known to be sound */
  } else if (!d->fill) return lensnet__fail(err, LENSNET_ERR_ARG, "no data: give images or a fill callback");
  if (d->count < 2) return lensnet__fail(err, LENSNET_ERR_ARG, "training needs at least 2 images, got %lu", (unsigned long)d->count);
  if (!d->labels) return lensnet__fail(err, LENSNET_ERR_ARG, "no labels");
  if (d->targets) return lensnet__fit_check_targets(m, d, err);
  if (strcmp(d->loss, "ce") && strcmp(d->loss, "focal"))
    return lensnet__fail(err, LENSNET_ERR_ARG, "loss %s is for regression (targets > 0); classification takes ce or focal", d->loss);
  if (d->nll_beta != 0) return lensnet__fail(err, LENSNET_ERR_ARG, "nll_beta is for regression with loss nll, not classification");
  if (m->out_features < 2 || m->out_features > LENSNET_MAX_CLASSES)
    return lensnet__fail(err, LENSNET_ERR_SHAPE, "the model has %lu output%s; classification takes 2 to %d", (unsigned long)m->out_features,
                         m->out_features == 1 ? "" : "s", LENSNET_MAX_CLASSES);
  for (i = 0; i < d->count; i++) {
    float y = d->labels[i];
    if (!(y >= 0 && y < (float)m->out_features && y == floorf(y)))
      return lensnet__fail(err, LENSNET_ERR_SHAPE, "label %lu is %g; classes are 0..%lu (the model's outputs)", (unsigned long)i, y,
                           (unsigned long)m->out_features - 1);
  }
  return LENSNET_OK;
}

/* An out_dir is written only after an epoch: a folder that is not there, or not writable, is found
 * before any training, by opening (and removing) a temporary file in it. */
static lensnet_result lensnet__probe_out_dir(const char *dir, lensnet_error *err) {
  char path[4200];
  FILE *f;
  char *paths;
  lensnet_result r;
  if (!dir) return LENSNET_OK;
  if ((size_t)snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir) >= sizeof path)
    return lensnet__fail(err, LENSNET_ERR_ARG, "out_dir %.200s: path too long", dir);
  if ((r = lensnet__atomic_open(path, &f, &paths, err)) != LENSNET_OK) {
    lensnet__prefix_path(err, "out_dir (an existing folder, written after each epoch)");
    return r;
  }
  lensnet__atomic_discard(&f, &paths);
  return LENSNET_OK;
}

/* A model whose layers with weights (two or more; batch norm aside) all hold zeros, as
 * lensnet_model_create leaves them: its units are all alike and gradients cannot tell them apart. */
static int lensnet__uninitialised(const lensnet_model *m) {
  size_t l, k, weighted = 0;
  for (l = 0; l < m->layer_count; l++) {
    const lensnet_layer *L = &m->layers[l];
    const lensnet_param *P;
    if (L->weight < 0 || L->type == LENSNET_LAYER_BATCHNORM) continue;
    P = &m->params[L->weight];
    for (k = 0; k < P->count; k++)
      if (m->values[P->offset + k] != 0.0f) return 0;
    weighted++;
  }
  return weighted >= 2;
}

static void lensnet__shuffle(size_t *a, size_t n, lensnet_rng *rng) {
  size_t i;
  for (i = n; i-- > 1;) { size_t j = (size_t)(lensnet_rng_next(rng) % (i + 1)), tmp = a[i]; a[i] = a[j]; a[j] = tmp; }
}

/* Regression targets are learnt standardised: each target's mean and standard deviation over the
 * training part (never the validation part), kept in the metadata to undo it at prediction. A
 * constant target gets a deviation of 1. */
static void lensnet__fit_target_stats(lensnet__fit *f) {
  size_t j, i, T = f->targets;
  for (j = 0; j < T; j++) {
    double sum = 0, sq = 0, mean;
    for (i = 0; i < f->n_train; i++) sum += f->d.labels[f->split[i] * T + j];
    mean = f->n_train ? sum / (double)f->n_train : 0.0;
    for (i = 0; i < f->n_train; i++) {
      double e = f->d.labels[f->split[i] * T + j] - mean;
      sq += e * e;
    }
    f->t_mean[j] = mean;
    f->t_std[j] = f->n_train > 1 && sq > 0 ? sqrt(sq / (double)(f->n_train - 1)) : 1.0;
  }
}

/* A fingerprint of training data: FNV-1a over 32-bit words (the values' bits, so the same on any
 * byte order), four interleaved lanes for speed, each array's length mixed in. Not
 * cryptographic: it tells a resumed run that its files changed, not that someone forged them. */
typedef struct { uint64_t lane[4]; } lensnet__fingerprint;
static void lensnet__fingerprint_start(lensnet__fingerprint *h) {
  int k;
  for (k = 0; k < 4; k++) h->lane[k] = 0xcbf29ce484222325ULL + (uint64_t)k;
}
static void lensnet__fingerprint_add(lensnet__fingerprint *h, const float *x, size_t n) {
  const uint64_t prime = 0x100000001b3ULL;
  uint64_t a = (h->lane[0] ^ (uint64_t)n) * prime, b = h->lane[1], c = h->lane[2], d = h->lane[3]; /* lanes in registers */
  size_t i;
  uint32_t w[4];
  for (i = 0; i + 4 <= n; i += 4) {
    memcpy(w, x + i, sizeof w);
    a = (a ^ w[0]) * prime; b = (b ^ w[1]) * prime; c = (c ^ w[2]) * prime; d = (d ^ w[3]) * prime;
  }
  for (; i < n; i++) {
    memcpy(w, x + i, 4);
    a = (a ^ w[0]) * prime;
  }
  h->lane[0] = a; h->lane[1] = b; h->lane[2] = c; h->lane[3] = d;
}
static void lensnet__fingerprint_text(const lensnet__fingerprint *h, char out[17]) {
  uint64_t v = h->lane[0];
  int k;
  for (k = 1; k < 4; k++) v = (v ^ (h->lane[k] >> 29) ^ h->lane[k]) * 0x9e3779b97f4a7c15ULL;
  lensnet__u64_hex(v, out);
}
/* The data's two passes, one task each (side by side on two workers): the images' non-finite
 * pixels, and the fingerprint of images and labels (train.data_fingerprint). */
typedef struct {
  lensnet__fit *f;
  size_t bad, first;
} lensnet__fit_scan_job;
static void lensnet__fit_scan_task(void *ctx, size_t index, size_t worker) {
  lensnet__fit_scan_job *j = (lensnet__fit_scan_job *)ctx;
  const lensnet__fit *f = j->f;
  (void)worker;
  if (index == 0) {
    if (f->d.images) j->bad = lensnet_count_nonfinite(f->d.images->data, f->n * f->per, &j->first);
  } else {
    lensnet__fingerprint h;
    lensnet__fingerprint_start(&h);
    if (f->d.images) lensnet__fingerprint_add(&h, f->d.images->data, f->n * f->per);
    lensnet__fingerprint_add(&h, f->d.labels, f->n * (f->targets ? f->targets : 1));
    lensnet__fingerprint_text(&h, j->f->fingerprint);
  }
}
static lensnet_result lensnet__fit_scan(lensnet__fit *f, lensnet_error *err) {
  const lensnet_model *m = f->m;
  lensnet__fit_scan_job job;
  size_t hw = m->in_h * m->in_w;
  job.f = f; job.bad = 0; job.first = 0;
  lensnet__parallel_run(f->d.parallel, 2, lensnet__fit_scan_task, &job);
  if (job.bad) /* a NaN or infinite pixel would turn the loss into NaN epochs later; say where it is now */
    return lensnet__fail(err, LENSNET_ERR_ARG, "%lu non-finite pixels (NaN or infinite) in the images; the first is image %lu, band %lu, "
                         "row %lu, column %lu (%g); training needs finite pixels", (unsigned long)job.bad, (unsigned long)(job.first / f->per),
                         (unsigned long)(job.first % f->per / hw), (unsigned long)(job.first % hw / m->in_w), (unsigned long)(job.first % m->in_w),
                         (double)f->d.images->data[job.first]);
  return LENSNET_OK;
}

/* Allocations, the split, class weights, trainer, optimiser and schedule for a resolved desc. */
static lensnet_result lensnet__fit_setup(lensnet__fit *f, lensnet_model *m, const lensnet_fit_desc *desc, lensnet_error *err) {
  lensnet_trainer_desc td;
  lensnet_optimizer_desc od;
  lensnet_rng split;
  lensnet_result r;
  size_t i, bytes;
  int ok = 1;
  memset(f, 0, sizeof *f);
  f->m = m;
  f->d = lensnet_fit_desc_resolve(desc);
  if ((r = lensnet__fit_check_settings(&f->d, err)) != LENSNET_OK || (r = lensnet__fit_check_data(m, &f->d, err)) != LENSNET_OK ||
      (r = lensnet__augment_parse(f->d.augment, &f->aug, err)) != LENSNET_OK || (r = lensnet__probe_out_dir(f->d.out_dir, err)) != LENSNET_OK)
    return r;
  f->n = f->d.count;
  f->per = m->in_c * m->in_h * m->in_w;
  f->classes = m->out_features;
  f->targets = f->d.targets;
  f->nll = f->targets && !strcmp(f->d.loss, "nll");
  if ((r = lensnet__fit_scan(f, err)) != LENSNET_OK) return r;
  f->n_val = (size_t)floor(f->d.val_fraction * (double)f->n);
  f->n_train = f->n - f->n_val;
  if (!lensnet__mul_ok(f->d.batch, f->per, &bytes)) return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "batch too large");
  f->split = LENSNET__CAST(size_t *, lensnet__alloc_or_flag(f->n, sizeof(size_t), &ok));
  f->order = LENSNET__CAST(size_t *, lensnet__alloc_or_flag(f->n, sizeof(size_t), &ok));
  f->bx = LENSNET__CAST(float *, lensnet__alloc_or_flag(bytes, sizeof(float), &ok));
  f->by = LENSNET__CAST(float *, lensnet__alloc_or_flag(f->d.batch * (f->targets ? f->targets : 1), sizeof(float), &ok));
  if (f->targets) {
    f->t_mean = LENSNET__CAST(double *, lensnet__alloc_or_flag(f->targets, sizeof(double), &ok));
    f->t_std = LENSNET__CAST(double *, lensnet__alloc_or_flag(f->targets, sizeof(double), &ok));
  }
  f->logits = LENSNET__CAST(float *, lensnet__alloc_or_flag(f->d.batch * f->classes, sizeof(float), &ok));
  f->grad = LENSNET__CAST(float *, lensnet__alloc_or_flag(f->d.batch * f->classes, sizeof(float), &ok));
  f->img = LENSNET__CAST(float *, lensnet__alloc_or_flag(f->per, sizeof(float), &ok));
  f->class_w = LENSNET__CAST(float *, lensnet__alloc_or_flag(f->classes, sizeof(float), &ok));
  if (!ok) return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory for a batch of %lu", (unsigned long)f->d.batch);
  /* the split: a seeded permutation whose last val_fraction is held out */
  lensnet_rng_seed(&split, f->d.seed ^ 0x5eedULL);
  for (i = 0; i < f->n; i++) f->split[i] = i;
  lensnet__shuffle(f->split, f->n, &split);
  if (f->targets) lensnet__fit_target_stats(f);
  else if ((r = lensnet__class_weights(f->d.class_weights, f->d.labels, f->split, f->n_train, f->classes, f->class_w, &f->use_weights, err)) != LENSNET_OK)
    return r;
  memset(&td, 0, sizeof td);
  td.batch_cap = f->d.batch; td.parallel = f->d.parallel; td.seed = f->d.seed + 17;
  td.lean_activations = 1;
  td.winograd = !f->d.exact;
  if ((r = lensnet_trainer_create(m, &td, &f->t, err)) != LENSNET_OK) return r;
  memset(&od, 0, sizeof od);
  od.type = !strcmp(f->d.optimizer, "sgd") ? LENSNET_OPT_SGD : !strcmp(f->d.optimizer, "adamw") ? LENSNET_OPT_ADAMW : LENSNET_OPT_ADAM;
  od.lr = (float)f->d.lr; od.momentum = (float)f->d.momentum; od.nesterov = f->d.nesterov;
  od.weight_decay = (float)f->d.weight_decay; od.clip_norm = (float)f->d.clip_norm;
  od.parallel = f->d.parallel;
  if ((r = lensnet_optimizer_create(&od, m, &f->opt, err)) != LENSNET_OK) return r;
  f->sched.type = !strcmp(f->d.schedule, "step") ? LENSNET_SCHEDULE_STEP : !strcmp(f->d.schedule, "cosine") ? LENSNET_SCHEDULE_COSINE
                                                                                                            : LENSNET_SCHEDULE_CONSTANT;
  f->sched.step_size = (size_t)f->d.step_size; f->sched.gamma = (float)f->d.gamma; f->sched.min_lr = (float)f->d.min_lr;
  f->sched.total = (size_t)(f->d.epochs > f->d.warmup ? f->d.epochs - f->d.warmup : 1); f->sched.warmup = (size_t)f->d.warmup;
  f->best_val_loss = INFINITY;
  lensnet_rng_seed(&f->data_rng, f->d.seed * 2654435761ULL + 1);
  return LENSNET_OK;
}

/* The stored fingerprint of a checkpoint against the data a resumed run was given. */
static lensnet_result lensnet__fingerprint_check(const lensnet_safetensors *st, const char *key, const lensnet_model *m, lensnet_error *err) {
  const char *was = lensnet_safetensors_meta(st, key), *now = lensnet_model_meta(m, key);
  if (!was || !now || !strcmp(was, now)) return LENSNET_OK; /* a checkpoint from before fingerprints: nothing to compare */
  return lensnet__fail(err, LENSNET_ERR_ARG, "the data differ from those the run started with (%s %s, now %s): resume with the same "
                       "images and labels, or start a new run", key, was, now);
}

/* Every setting and "preprocess" into the model's metadata (so each saved file carries them). */
static lensnet_result lensnet__fit_settings_meta(lensnet__fit *f) {
  size_t i;
  lensnet_result r = LENSNET_OK;
  for (i = 0; i < LENSNET__FIT_COUNT && r == LENSNET_OK; i++) {
    char key[64], value[512];
    snprintf(key, sizeof key, "train.%s", lensnet__fit_table[i].name);
    /* f->d is resolved already: resolving it again would turn an asked-for 0 (val_fraction,
     * focal_gamma, weight_decay: stored as -1, resolved to 0) into the default */
    lensnet__setting_format(&f->d, &lensnet__fit_table[i], value, sizeof value);
    r = lensnet_model_set_meta(f->m, key, value);
  }
  if (r == LENSNET_OK) r = lensnet_model_set_meta(f->m, "preprocess", f->d.minmax ? "minmax" : "none");
  if (r == LENSNET_OK) r = lensnet_model_set_meta(f->m, "train.data_fingerprint", f->fingerprint);
  if (r == LENSNET_OK && f->targets) { /* what lensnet_model_regression reads back */
    char names[LENSNET_REGRESSION_MAX * 40], means[LENSNET_REGRESSION_MAX * 28], stds[LENSNET_REGRESSION_MAX * 28];
    size_t j, nl = 0, ml = 0, sl = 0;
    for (j = 0; j < f->targets; j++) {
      const char *name = NULL;
      size_t len = 0;
      if (f->d.target_names && lensnet__list_entry(f->d.target_names, j, &name, &len) && len)
        lensnet__appendf(names, sizeof names, &nl, "%s%.*s", j ? "," : "", (int)(len < 32 ? len : 32), name);
      else lensnet__appendf(names, sizeof names, &nl, "%st%lu", j ? "," : "", (unsigned long)j);
      lensnet__appendf(means, sizeof means, &ml, "%s%.9g", j ? "," : "", f->t_mean[j]);
      lensnet__appendf(stds, sizeof stds, &sl, "%s%.9g", j ? "," : "", f->t_std[j]);
    }
    r = lensnet_model_set_meta(f->m, "regress.targets", names);
    if (r == LENSNET_OK) r = lensnet_model_set_meta(f->m, "regress.mean", means);
    if (r == LENSNET_OK) r = lensnet_model_set_meta(f->m, "regress.std", stds);
    if (r == LENSNET_OK) r = lensnet_model_set_meta(f->m, "regress.loss", f->nll ? "nll" : "mse");
    /* a calibration (lens calibrate) of the weights this run started from does not hold for its own */
    if (r == LENSNET_OK) r = lensnet_model_set_meta(f->m, "regress.scale", NULL);
    if (r == LENSNET_OK) r = lensnet_model_set_meta(f->m, "regress.slope", NULL);
    if (r == LENSNET_OK) r = lensnet_model_set_meta(f->m, "regress.offset", NULL);
    if (r == LENSNET_OK) r = lensnet_model_set_meta(f->m, "regress.calibration_objects", NULL);
    if (r == LENSNET_OK) r = lensnet_model_set_meta(f->m, "regress.calibration_scores", NULL);
    if (r == LENSNET_OK) r = lensnet_model_set_meta(f->m, "regress.calibration_predict", NULL);
  }
  return r;
}

/* One image [c, h, w] transformed into dst: random flips, a quarter turn (square images; with
 * rot180 alone, a half turn or none, any shape), an integer shift with zero fill, and Gaussian
 * noise. The draws, in this order: flip x, flip y, turns (0-3), shift x, shift y, half turn,
 * then one normal per pixel; rot180 draws last, so the others' draws do not depend on it.
 * dst(y, x) = src(T(y - dy, x - dx)), zero where (y - dy, x - dx) lies outside, where T applies to
 * a position (row ty, column tx) the turns (each (ty, tx) -> (tx, w - 1 - ty)), then the half
 * turn, then the flips (tx -> w - 1 - tx, ty -> h - 1 - ty). */
static void lensnet__augment_image(const lensnet__augment *a, lensnet_rng *rng, const float *src, float *dst, size_t c, size_t h, size_t w) {
  int fx = a->flip && (lensnet_rng_next(rng) & 1), fy = a->flip && (lensnet_rng_next(rng) & 1);
  int turns = (a->rot90 && h == w) ? (int)(lensnet_rng_next(rng) % 4) : 0;
  long dx = a->shift ? (long)(lensnet_rng_next(rng) % (unsigned)(2 * a->shift + 1)) - a->shift : 0;
  long dy = a->shift ? (long)(lensnet_rng_next(rng) % (unsigned)(2 * a->shift + 1)) - a->shift : 0;
  int half = a->rot180 && !(a->rot90 && h == w) && (lensnet_rng_next(rng) & 1);
  size_t ch, y, x;
  for (ch = 0; ch < c; ch++)
    for (y = 0; y < h; y++)
      for (x = 0; x < w; x++) {
        long sy = (long)y - dy, sx = (long)x - dx, ty, tx, r;
        float v = 0.0f;
        if (sy >= 0 && sy < (long)h && sx >= 0 && sx < (long)w) {
          ty = sy; tx = sx;
          for (r = 0; r < turns; r++) { long tmp = ty; ty = tx; tx = (long)w - 1 - tmp; }
          if (half) { ty = (long)h - 1 - ty; tx = (long)w - 1 - tx; }
          if (fx) tx = (long)w - 1 - tx;
          if (fy) ty = (long)h - 1 - ty;
          v = src[(ch * h + (size_t)ty) * w + (size_t)tx];
        }
        if (a->noise > 0) v += a->noise * lensnet_rng_normal(rng);
        dst[(ch * h + y) * w + x] = v;
      }
}

/* The samples idx[0..bs) into bx/by: read, scaled (minmax) and, for training, augmented. */
static lensnet_result lensnet__fit_batch(lensnet__fit *f, const size_t *idx, size_t bs, int augment, lensnet_error *err) {
  const lensnet_model *m = f->m;
  size_t k;
  int aug = augment && (f->aug.flip || f->aug.rot90 || f->aug.rot180 || f->aug.shift || f->aug.noise > 0);
  if (f->d.images) {
    for (k = 0; k < bs; k++) memcpy(f->bx + k * f->per, f->d.images->data + idx[k] * f->per, f->per * sizeof(float));
  } else {
    lensnet_result r = f->d.fill(f->d.fill_user, idx, bs, f->bx, err);
    if (r != LENSNET_OK) return r;
  }
  for (k = 0; k < bs; k++) {
    float *x = f->bx + k * f->per;
    if (f->targets) {
      size_t j;
      for (j = 0; j < f->targets; j++)
        f->by[k * f->targets + j] = (float)((f->d.labels[idx[k] * f->targets + j] - f->t_mean[j]) / f->t_std[j]);
    } else f->by[k] = f->d.labels[idx[k]];
    if (f->d.minmax) lensnet_minmax_normalize(x, m->in_c, m->in_h * m->in_w);
    if (aug) {
      memcpy(f->img, x, f->per * sizeof(float));
      lensnet__augment_image(&f->aug, &f->data_rng, f->img, x, m->in_c, m->in_h, m->in_w);
    }
  }
  return LENSNET_OK;
}

/* Regression: the loss of the batch (gradient into f->grad when asked) and the sum of squared
 * errors of the predicted means, in standard deviations of the targets. */
static float lensnet__fit_regress_loss(const lensnet__fit *f, size_t bs, float *grad, double *sq) {
  size_t k, j, T = f->targets;
  for (k = 0; k < bs; k++)
    for (j = 0; j < T; j++) {
      double e = f->logits[k * f->classes + j] - f->by[k * T + j];
      *sq += e * e;
    }
  return f->nll ? lensnet_loss_gaussian_nll_beta(f->logits, f->by, bs, T, f->d.nll_beta, grad)
                : lensnet_loss_mse(f->logits, f->by, bs * T, grad);
}

static size_t lensnet__fit_correct(const lensnet__fit *f, size_t bs) {
  size_t k, c, correct = 0;
  for (k = 0; k < bs; k++) {
    size_t best = 0;
    for (c = 1; c < f->classes; c++) if (f->logits[k * f->classes + c] > f->logits[k * f->classes + best]) best = c;
    correct += best == (size_t)f->by[k];
  }
  return correct;
}

/* Seconds from the caller's clock, else processor time. */
static double lensnet__fit_seconds(const lensnet__fit *f) {
  return f->d.seconds ? f->d.seconds(f->d.seconds_user) : (double)clock() / CLOCKS_PER_SEC;
}

/* One training epoch: shuffled batches, forward, loss, backward, an optimiser step. */
static lensnet_result lensnet__fit_train_epoch(lensnet__fit *f, lensnet_fit_progress *p, double t0, int *stop, lensnet_error *err) {
  size_t b, correct = 0;
  double loss_sum = 0, sq = 0;
  lensnet_result r;
  const float *w = f->use_weights ? f->class_w : NULL;
  /* shuffled afresh from the split, so an epoch depends only on the data stream (which the
   * checkpoint keeps) */
  memcpy(f->order, f->split, f->n_train * sizeof(size_t));
  lensnet__shuffle(f->order, f->n_train, &f->data_rng);
  for (b = 0; b < f->n_train; b += f->d.batch) {
    size_t bs = f->n_train - b < f->d.batch ? f->n_train - b : f->d.batch;
    float loss;
    if ((r = lensnet__fit_batch(f, f->order + b, bs, 1, err)) != LENSNET_OK) return r;
    if ((r = lensnet_trainer_forward(f->t, bs, f->bx, 1, f->logits, err)) != LENSNET_OK) return r;
    loss = f->targets ? lensnet__fit_regress_loss(f, bs, f->grad, &sq)
           : !strcmp(f->d.loss, "focal") ? lensnet_loss_focal(f->logits, f->by, bs, f->classes, (float)f->d.focal_gamma, w, f->grad)
                                         : lensnet_loss_cross_entropy(f->logits, f->by, bs, f->classes, w, f->grad);
    if (loss != loss) return lensnet__fail(err, LENSNET_ERR_DIVERGED, "the loss became NaN at epoch %d", p->epoch);
    lensnet_trainer_zero_grad(f->t);
    if ((r = lensnet_trainer_backward(f->t, bs, f->grad, err)) != LENSNET_OK) return r;
    /* lensnet_optimizer_step reads lr <= 0 as its desc's rate; a schedule decayed to 0 (a step
     * schedule's powf underflows after enough steps) moves by the least rate instead */
    lensnet_optimizer_step(f->opt, f->m, f->t->grads, p->lr > 0 ? (float)p->lr : FLT_MIN);
    loss_sum += loss * (double)bs;
    if (!f->targets) correct += lensnet__fit_correct(f, bs);
    p->seen = b + bs;
    p->train_loss = loss_sum / (double)p->seen;
    p->train_acc = f->targets ? sqrt(sq / (double)(p->seen * f->targets)) : (double)correct / (double)p->seen;
    p->seconds = lensnet__fit_seconds(f) - t0;
    if (f->d.progress && f->d.progress(f->d.progress_user, p)) *stop = 1;
  }
  return LENSNET_OK;
}

/* Validation in inference mode: cross-entropy with the class weights, or the regression loss. */
static lensnet_result lensnet__fit_validate(lensnet__fit *f, lensnet_fit_progress *p, lensnet_error *err) {
  size_t b, correct = 0;
  double sum = 0, sq = 0;
  lensnet_result r;
  for (b = f->n_train; b < f->n; b += f->d.batch) {
    size_t bs = f->n - b < f->d.batch ? f->n - b : f->d.batch;
    if ((r = lensnet__fit_batch(f, f->split + b, bs, 0, err)) != LENSNET_OK) return r;
    if ((r = lensnet_trainer_forward(f->t, bs, f->bx, 0, f->logits, err)) != LENSNET_OK) return r;
    if (f->targets) sum += lensnet__fit_regress_loss(f, bs, NULL, &sq) * (double)bs;
    else {
      sum += lensnet_loss_cross_entropy(f->logits, f->by, bs, f->classes, f->use_weights ? f->class_w : NULL, NULL) * (double)bs;
      correct += lensnet__fit_correct(f, bs);
    }
  }
  p->val_loss = f->n_val ? sum / (double)f->n_val : 0.0;
  p->val_acc = !f->n_val ? 0.0 : f->targets ? sqrt(sq / (double)(f->n_val * f->targets)) : (double)correct / (double)f->n_val;
  return LENSNET_OK;
}

/* The epoch's state into the metadata (epoch, losses, best loss, history, streams), then the
 * files: best.safetensors if asked, checkpoint.safetensors, history.csv. */
static lensnet_result lensnet__fit_save(lensnet__fit *f, const lensnet_fit_progress *p, int best, lensnet_error *err) {
  static const char *const keys[4] = {"train.train_loss", "train.train_acc", "train.val_loss", "train.val_acc"};
  double values[4];
  char text[64], path[4096];
  lensnet_result r = LENSNET_OK;
  int k;
  values[0] = p->train_loss; values[1] = p->train_acc; values[2] = p->val_loss; values[3] = p->val_acc;
  snprintf(text, sizeof text, "%d", f->epoch);
  if (lensnet_model_set_meta(f->m, "train.epoch", text) != LENSNET_OK) r = LENSNET_ERR_NOMEM;
  snprintf(text, sizeof text, "%.17g", f->best_val_loss);
  if (lensnet_model_set_meta(f->m, "train.best_val_loss", text) != LENSNET_OK) r = LENSNET_ERR_NOMEM;
  if (lensnet_model_set_meta(f->m, "train.history", f->history) != LENSNET_OK) r = LENSNET_ERR_NOMEM;
  for (k = 0; k < 4 && p->epoch_done; k++) {
    snprintf(text, sizeof text, "%.6f", values[k]);
    if (lensnet_model_set_meta(f->m, keys[k], text) != LENSNET_OK) r = LENSNET_ERR_NOMEM;
  }
  if (r == LENSNET_OK) r = lensnet__state_meta(f->m, f->opt, f->t, &f->data_rng);
  if (r != LENSNET_OK) return lensnet__fail(err, r, "out of memory");
  if (!f->d.out_dir) return LENSNET_OK;
  if (best && ((r = lensnet__run_file(f->d.out_dir, "best.safetensors", path, sizeof path, err)) != LENSNET_OK ||
               (r = lensnet_model_save(f->m, path, err)) != LENSNET_OK)) return r;
  if (!p->epoch_done) return LENSNET_OK;
  if ((r = lensnet__run_file(f->d.out_dir, "checkpoint.safetensors", path, sizeof path, err)) != LENSNET_OK ||
      (r = lensnet_checkpoint_save(path, f->m, f->opt, f->t, &f->data_rng, err)) != LENSNET_OK) return r;
  return lensnet__run_write_history(f->d.out_dir, f->history, f->history_len, err);
}

/* The epochs from f->epoch to the end, or until the progress callback asks to stop. */
static lensnet_result lensnet__fit_run(lensnet__fit *f, lensnet_error *err) {
  lensnet_result r = LENSNET_OK;
  int stop = 0;
  while (f->epoch < f->d.epochs && !stop) {
    lensnet_fit_progress p;
    double t0 = lensnet__fit_seconds(f);
    char row[256];
    memset(&p, 0, sizeof p);
    p.epoch = f->epoch + 1; p.epochs = f->d.epochs; p.train_count = f->n_train; p.val_count = f->n_val;
    p.lr = lensnet_schedule_lr(&f->sched, (float)f->d.lr, (size_t)f->epoch);
    if ((r = lensnet__fit_train_epoch(f, &p, t0, &stop, err)) != LENSNET_OK || (r = lensnet__fit_validate(f, &p, err)) != LENSNET_OK) return r;
    p.seconds = lensnet__fit_seconds(f) - t0;
    snprintf(row, sizeof row, "%d,%.6g,%.6f,%.6f,%.6f,%.6f,%.2f\n", p.epoch, p.lr, p.train_loss, p.train_acc, p.val_loss, p.val_acc, p.seconds);
    if ((r = lensnet__text_append(&f->history, &f->history_len, row, err)) != LENSNET_OK) return r;
    f->epoch = p.epoch;
    p.epoch_done = 1;
    p.best = f->n_val && p.val_loss < f->best_val_loss;
    if (p.best) f->best_val_loss = p.val_loss;
    if ((r = lensnet__fit_save(f, &p, p.best, err)) != LENSNET_OK) return r;
    if (f->d.progress && f->d.progress(f->d.progress_user, &p)) stop = 1;
  }
  if (!f->n_val && f->epoch >= f->d.epochs) { /* no validation: the last weights are the best */
    lensnet_fit_progress p;
    memset(&p, 0, sizeof p);
    r = lensnet__fit_save(f, &p, 1, err);
  }
  return r;
}

LENSNET_API lensnet_result lensnet_fit(lensnet_model *m, const lensnet_fit_desc *desc, lensnet_error *err) {
  lensnet__fit f;
  lensnet_fit_desc d;
  lensnet_result r;
  if (!m) return lensnet__fail(err, LENSNET_ERR_ARG, "fit: no model (NULL)");
  if (m->values && lensnet__uninitialised(m))
    return lensnet__fail(err, LENSNET_ERR_ARG, "every weight of the model is 0, as lensnet_model_create leaves them: start it with "
                         "lensnet_model_init or lensnet_model_init_he, or load weights");
  memset(&d, 0, sizeof d);
  if (desc) d = *desc;
  if ((r = lensnet__run_scaling("fit", &d.preprocess, &d.minmax, m, err)) != LENSNET_OK) return r;
  {
    lensnet_fit_desc resolved = lensnet_fit_desc_resolve(&d);
    if ((r = lensnet__fit_check_settings(&resolved, err)) != LENSNET_OK || (r = lensnet__fit_check_effective(&d, &resolved, err)) != LENSNET_OK)
      return r;
  }
  r = lensnet__fit_setup(&f, m, &d, err);
  if (r == LENSNET_OK && lensnet__fit_settings_meta(&f) != LENSNET_OK) r = lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  if (r == LENSNET_OK)
    r = lensnet__text_append(&f.history, &f.history_len, f.targets ? "epoch,lr,train_loss,train_rms,val_loss,val_rms,seconds\n"
                                               : "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds\n", err);
  if (r == LENSNET_OK) r = lensnet__fit_run(&f, err);
  lensnet__fit_free(&f);
  return r;
}

/* The settings of a checkpoint into d, each checked against its range. */
static lensnet_result lensnet__fit_desc_from_meta(const lensnet_safetensors *st, lensnet_fit_desc *d, lensnet_error *err) {
  size_t i;
  for (i = 0; i < LENSNET__FIT_COUNT; i++) {
    const lensnet_fit_setting *s = &lensnet__fit_table[i];
    char key[64];
    const char *v;
    lensnet_result r;
    snprintf(key, sizeof key, "train.%s", s->name);
    /* settings added later: a checkpoint from before them ran with their default (zero) */
    if (!(v = lensnet_safetensors_meta(st, key)) && !strcmp(s->name, "nll_beta")) continue;
    if (!v && !strcmp(s->name, "exact")) { d->exact = 1; continue; } /* it ran with direct sums: so it goes on */
    if (!v) return lensnet__fail(err, LENSNET_ERR_FORMAT, "checkpoint lacks %s", key);
    if ((r = lensnet_fit_setting_parse(d, s, v, err)) != LENSNET_OK) {
      lensnet__prefix_path(err, "checkpoint: train.*");
      if (err) err->result = LENSNET_ERR_FORMAT;
      return LENSNET_ERR_FORMAT;
    }
  }
  return LENSNET_OK;
}

/* The loop state of a checkpoint: epoch, best loss, history, optimiser, streams. */
static lensnet_result lensnet__fit_restore(lensnet__fit *f, const lensnet_safetensors *st, lensnet_error *err) {
  const char *v = lensnet_safetensors_meta(st, "train.epoch");
  long epoch = v ? strtol(v, NULL, 10) : -1;
  lensnet_result r;
  if (epoch < 0 || epoch > 1000000) return lensnet__fail(err, LENSNET_ERR_FORMAT, "checkpoint: train.epoch is missing or not a count of epochs");
  f->epoch = (int)epoch;
  v = lensnet_safetensors_meta(st, "train.best_val_loss");
  f->best_val_loss = v ? strtod(v, NULL) : INFINITY;
  v = lensnet_safetensors_meta(st, "train.history");
  if ((r = lensnet__text_append(&f->history, &f->history_len, v ? v : "", err)) != LENSNET_OK) return r;
  return lensnet__checkpoint_state(st, f->m, f->opt, f->t, &f->data_rng, err);
}

LENSNET_API lensnet_result lensnet_fit_resume(const char *dir, const lensnet_fit_desc *desc, lensnet_model **out, lensnet_error *err) {
  lensnet_safetensors st;
  lensnet_fit_desc d;
  lensnet__fit f;
  lensnet_model *m = NULL;
  lensnet_result r;
  char path[4096];
  *out = NULL;
  memset(&f, 0, sizeof f);
  if ((size_t)snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir) >= sizeof path) return lensnet__fail(err, LENSNET_ERR_ARG, "%s: path too long", dir);
  if ((r = lensnet_safetensors_read(path, &st, err)) != LENSNET_OK) return r;
  memset(&d, 0, sizeof d);
  r = lensnet__fit_desc_from_meta(&st, &d, err);
  if (r == LENSNET_OK) r = lensnet_model_from_safetensors(&st, &m, err);
  if (r == LENSNET_OK && desc) {
    d.images = desc->images; d.fill = desc->fill; d.fill_user = desc->fill_user; d.count = desc->count; d.labels = desc->labels;
    d.targets = desc->targets; d.target_names = desc->target_names;
    d.parallel = desc->parallel; d.progress = desc->progress; d.progress_user = desc->progress_user;
    d.seconds = desc->seconds; d.seconds_user = desc->seconds_user;
    if (desc->epochs) d.epochs = desc->epochs;
  }
  d.out_dir = dir;
  if (r == LENSNET_OK) r = lensnet__fit_setup(&f, m, &d, err);
  if (r == LENSNET_OK && lensnet__fit_settings_meta(&f) != LENSNET_OK) r = lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  if (r == LENSNET_OK) r = lensnet__fingerprint_check(&st, "train.data_fingerprint", m, err);
  if (r == LENSNET_OK) r = lensnet__fit_restore(&f, &st, err);
  if (r != LENSNET_OK) lensnet__prefix_path(err, path);
  /* history.csv again from the checkpoint's history: a run stopped between renaming its last
   * checkpoint and its history has an older history.csv, and no epoch is left to rewrite it */
  else if ((r = lensnet__run_write_history(f.d.out_dir, f.history, f.history_len, err)) == LENSNET_OK) r = lensnet__fit_run(&f, err);
  lensnet__fit_free(&f);
  lensnet_safetensors_free(&st);
  if (r == LENSNET_OK) *out = m;
  else lensnet_model_free(m);
  return r;
}

/* ---- domain adaptation --------------------------------------------------------------------- */

enum { LENSNET__ADAPT_ADDA, LENSNET__ADAPT_ADAMATCH, LENSNET__ADAPT_SELF_ENSEMBLING, LENSNET__ADAPT_ADABN, LENSNET__ADAPT_METHODS };
static const char *const lensnet__adapt_methods[LENSNET__ADAPT_METHODS] = {"adda", "adamatch", "self-ensembling", "adabn"};
static const char *const lensnet__adapt_losses[LENSNET__ADAPT_METHODS][2] = {
  {"disc_loss", "encoder_loss"}, {"source_loss", "target_loss"}, {"source_loss", "consistency_loss"}, {"mean_shift", "std_change"}};

/* The saved settings (adapt.NAME in the metadata): the one description of their ranges and
 * defaults, which lens adapt's options are made from. A zero in a desc field means its default;
 * the ranges, which a setting given as text must meet, therefore start above 0 wherever a 0 would
 * silently become the default (shift and noise say in their help that 0 is the default). */
#define LENSNET__ADAPT_ROW(name, type, field, lo, hi, choices, help) \
  {name, type, offsetof(lensnet_adapt_desc, field), lo, hi, choices, help}
static const lensnet_fit_setting lensnet__adapt_table[] = {
  LENSNET__ADAPT_ROW("method", LENSNET_SETTING_TEXT, method, 0, 0, "adda|adamatch|self-ensembling|adabn",
                     "adda (Tzeng et al. 2017, default) | adamatch (Berthelot et al. 2021) |\nself-ensembling (French et al. 2018) | "
                     "adabn (Li et al. 2018: batch-norm statistics\nof the target, one pass, no source images)"),
  LENSNET__ADAPT_ROW("epochs", LENSNET_SETTING_INT, epochs, 1, 1000000, NULL, "epochs of ceil(target images / batch) steps (default 10)"),
  LENSNET__ADAPT_ROW("batch", LENSNET_SETTING_SIZE, batch, 1, 4096, NULL, "source and target images per step, each (default 32); adabn: target\nimages passed at once"),
  LENSNET__ADAPT_ROW("lr", LENSNET_SETTING_NUMBER, lr, 1e-12, 10, NULL, "Adam's learning rate (default 2e-4 for adda, 1e-3 for the others)"),
  LENSNET__ADAPT_ROW("disc_width", LENSNET_SETTING_SIZE, disc_width, 1, 65536, NULL,
                     "adda: the discriminator's hidden width (default 128; the paper's 500)"),
  LENSNET__ADAPT_ROW("disc_lr", LENSNET_SETTING_NUMBER, disc_lr, 1e-12, 10, NULL,
                     "adda: the discriminator's learning rate (default: --lr, the encoder's)"),
  LENSNET__ADAPT_ROW("tau", LENSNET_SETTING_NUMBER, tau, 1e-6, 1, NULL, "adamatch: relative confidence threshold (default 0.9)"),
  LENSNET__ADAPT_ROW("ema", LENSNET_SETTING_NUMBER, ema, 1e-6, 0.999999, NULL, "self-ensembling: the teacher's moving-average alpha (default 0.99)"),
  LENSNET__ADAPT_ROW("confidence", LENSNET_SETTING_NUMBER, confidence, 1e-6, 1, NULL,
                     "self-ensembling: teacher confidence threshold (default 0.968)"),
  LENSNET__ADAPT_ROW("consistency_weight", LENSNET_SETTING_NUMBER, consistency_weight, 1e-6, 1e6, NULL,
                     "self-ensembling: weight of the consistency loss (default 3)"),
  LENSNET__ADAPT_ROW("shift", LENSNET_SETTING_INT, shift, -1, 64, NULL, "adamatch, self-ensembling: strong views' largest shift in pixels\n(0 or unset: 2; -1: none)"),
  LENSNET__ADAPT_ROW("noise", LENSNET_SETTING_NUMBER, noise, -1, 1e6, NULL,
                     "adamatch, self-ensembling: strong views' Gaussian noise in standard\ndeviations of each image (0 or unset: 0.1; -1: none)"),
  LENSNET__ADAPT_ROW("views", LENSNET_SETTING_TEXT, views, 0, 0, "flip-rot90|rot180|none",
                     "adamatch, self-ensembling: the views' symmetries: flip-rot90 (default:\nflips and quarter turns) | rot180 (half turns) | none"),
  LENSNET__ADAPT_ROW("minmax", LENSNET_SETTING_FLAG, minmax, 0, 1, NULL, "scale each image per band to [0,1] first (default 0)"),
  LENSNET__ADAPT_ROW("seed", LENSNET_SETTING_SEED, seed, 0, 9007199254740992.0, NULL,
                     "batches, views, the discriminator's start, dropout (default 0)"),
};
#define LENSNET__ADAPT_COUNT (sizeof lensnet__adapt_table / sizeof lensnet__adapt_table[0])

LENSNET_API const lensnet_fit_setting *lensnet_adapt_settings(size_t *count) {
  if (count) *count = LENSNET__ADAPT_COUNT;
  return lensnet__adapt_table;
}

LENSNET_API const char *lensnet_adapt_setting_method(const lensnet_fit_setting *s) {
  static const struct { const char *name, *methods; } own[] = {
    {"disc_width", "adda"}, {"disc_lr", "adda"}, {"tau", "adamatch"}, {"ema", "self-ensembling"}, {"confidence", "self-ensembling"},
    {"consistency_weight", "self-ensembling"}, {"shift", "adamatch,self-ensembling"}, {"noise", "adamatch,self-ensembling"},
    {"views", "adamatch,self-ensembling"}, {"epochs", "adda,adamatch,self-ensembling"}, {"lr", "adda,adamatch,self-ensembling"},
    {"seed", "adda,adamatch,self-ensembling"}};
  size_t i;
  for (i = 0; s && i < sizeof own / sizeof own[0]; i++)
    if (!strcmp(s->name, own[i].name)) return own[i].methods;
  return NULL;
}

LENSNET_API int lensnet_adapt_setting_applies(const lensnet_fit_setting *s, const char *method) {
  const char *list = lensnet_adapt_setting_method(s), *start;
  size_t k = 0, len;
  if (!list) return 1;
  while (lensnet__list_entry(list, k++, &start, &len))
    if (method && strlen(method) == len && !strncmp(start, method, len)) return 1;
  return 0;
}

LENSNET_API lensnet_result lensnet_adapt_setting_parse(lensnet_adapt_desc *desc, const lensnet_fit_setting *s, const char *text,
                                                       lensnet_error *err) {
  if (s->type == LENSNET_SETTING_TEXT) {
    if (!lensnet__setting_choice(s, text)) return lensnet__fail(err, LENSNET_ERR_ARG, "%s must be one of %s, got '%s'", s->name, s->choices, text);
    *(const char **)(void *)((char *)desc + s->offset) = text;
    return LENSNET_OK;
  }
  return lensnet__setting_store(desc, s, text, 0, err);
}

LENSNET_API int lensnet_adapt_setting_format(const lensnet_adapt_desc *desc, const lensnet_fit_setting *s, char *buf, size_t cap) {
  lensnet_adapt_desc d = lensnet_adapt_desc_resolve(desc);
  return lensnet__setting_format(&d, s, buf, cap);
}

LENSNET_API lensnet_adapt_desc lensnet_adapt_desc_resolve(const lensnet_adapt_desc *desc) {
  lensnet_adapt_desc d;
  if (desc) d = *desc;
  else memset(&d, 0, sizeof d);
  if (!d.method || !d.method[0]) d.method = "adda";
  if (d.epochs <= 0 || !strcmp(d.method, "adabn")) d.epochs = !strcmp(d.method, "adabn") ? 1 : 10; /* adabn: one pass */
  if (!d.batch) d.batch = 32;
  if (!(d.lr > 0)) d.lr = !strcmp(d.method, "adda") ? 2e-4 : 1e-3;
  if (!d.disc_width) d.disc_width = 128;
  if (!(d.disc_lr > 0)) d.disc_lr = d.lr;
  if (!(d.tau > 0)) d.tau = 0.9;
  if (!(d.ema > 0)) d.ema = 0.99;
  if (!(d.confidence > 0)) d.confidence = 0.968;
  if (!(d.consistency_weight > 0)) d.consistency_weight = 3.0;
  /* negative shift and noise stay negative (none), so that a checkpoint records what was asked
   * and a resumed run reads back the same; the views read them as 0 */
  if (d.shift == 0) d.shift = 2;
  if (d.shift < 0) d.shift = -1;
  if (d.noise == 0) d.noise = 0.1;
  if (d.noise < 0) d.noise = -1;
  if (!d.views || !d.views[0]) d.views = "flip-rot90";
  return d;
}

LENSNET_API lensnet_result lensnet_model_classifier_layer(const lensnet_model *m, size_t *layer, lensnet_error *err) {
  size_t l = m->layer_count;
  while (l-- > 0)
    if (m->layers[l].type == LENSNET_LAYER_DENSE) {
      size_t below;
      for (below = 0; below < l && m->layers[below].weight < 0; below++) {}
      if (below == l) break;
      *layer = l;
      return LENSNET_OK;
    }
  return lensnet__fail(err, LENSNET_ERR_ARG, "the model has no dense layer with trainable layers below it: no classifier on features to adapt");
}

typedef struct {
  lensnet_model *m;                 /* trained: the target encoder + classifier (adda), the model, the student */
  lensnet_model *aux;               /* adda: the source model, fixed; self-ensembling: the teacher */
  lensnet_model *disc;              /* adda: the discriminator */
  lensnet_trainer *t, *t2, *ta, *td; /* on m; on m for adamatch's source-only pass; on aux; on disc */
  lensnet_optimizer *opt, *dopt;
  lensnet_adapt_desc d;             /* resolved */
  int method, has_bn;
  size_t classifier, feature, classes, per, feat_n, steps;
  size_t *src_order, *tgt_order;
  size_t *bn, bn_count;             /* adabn: the batch-norm layers, in order */
  double *bn_sum, *bn_sq, *bn_ref, bn_shift, bn_change; /* adabn: the layer's sums per channel about bn_ref; the changes so far, summed */
  size_t bn_channels;               /* adabn: channels adapted so far */
  float *x, *logits, *logits2, *grad, *grad2, *lambda, *feats, *dlogits, *dgrad, *dlabels, *keep, *work, *img;
  lensnet_rng data_rng;
  int epoch;                        /* epochs done */
  uint64_t step;                    /* steps done over the run */
  char *history;
  size_t history_len;
} lensnet__adapt;

static void lensnet__adapt_free(lensnet__adapt *a) {
  lensnet_trainer_free(a->t); lensnet_trainer_free(a->t2); lensnet_trainer_free(a->ta); lensnet_trainer_free(a->td);
  lensnet_optimizer_free(a->opt); lensnet_optimizer_free(a->dopt);
  lensnet_model_free(a->aux); lensnet_model_free(a->disc);
  LENSNET_FREE(a->src_order); LENSNET_FREE(a->tgt_order); LENSNET_FREE(a->x); LENSNET_FREE(a->logits); LENSNET_FREE(a->logits2);
  LENSNET_FREE(a->grad); LENSNET_FREE(a->grad2); LENSNET_FREE(a->lambda); LENSNET_FREE(a->feats); LENSNET_FREE(a->dlogits);
  LENSNET_FREE(a->dgrad); LENSNET_FREE(a->dlabels); LENSNET_FREE(a->keep); LENSNET_FREE(a->work); LENSNET_FREE(a->img);
  LENSNET_FREE(a->history); LENSNET_FREE(a->bn); LENSNET_FREE(a->bn_sum); LENSNET_FREE(a->bn_sq); LENSNET_FREE(a->bn_ref);
}

/* The data against the model: shapes, label ranges, finite settings. */
static lensnet_result lensnet__adapt_check(const lensnet_model *m, const lensnet_adapt_desc *d, lensnet_error *err) {
  const lensnet_tensor *sets[2];
  const char *names[2] = {"source", "target"};
  size_t k, i;
  int adabn = !strcmp(d->method, "adabn");
  sets[0] = d->source; sets[1] = d->target;
  if (lensnet_model_meta(m, "regress.targets"))
    return lensnet__fail(err, LENSNET_ERR_ARG, "the model is a regression model (regress.targets); domain adaptation needs a classifier");
  if (m->out_features < 2 || m->out_features > LENSNET_MAX_CLASSES)
    return lensnet__fail(err, LENSNET_ERR_ARG, "the model has %lu outputs; a classifier needs 2 to %d", (unsigned long)m->out_features,
                         LENSNET_MAX_CLASSES);
  for (k = 0; k < 2; k++) {
    const lensnet_tensor *t = sets[k];
    if (k == 0 && adabn && !t) continue; /* adabn reads no source images */
    if (!t || !t->data) return lensnet__fail(err, LENSNET_ERR_ARG, "no %s images", names[k]);
    if (t->ndim != 4 || t->shape[0] == 0 || t->shape[1] != m->in_c || t->shape[2] != m->in_h || t->shape[3] != m->in_w)
      return lensnet__fail(err, LENSNET_ERR_SHAPE, "the %s images are %lux%lux%lu but the model takes %lux%lux%lu", names[k],
                           (unsigned long)(t->ndim == 4 ? t->shape[1] : 0), (unsigned long)(t->ndim == 4 ? t->shape[2] : 0),
                           (unsigned long)(t->ndim == 4 ? t->shape[3] : 0), (unsigned long)m->in_c, (unsigned long)m->in_h, (unsigned long)m->in_w);
  }
  if (!d->source_labels && !(adabn && !d->source)) return lensnet__fail(err, LENSNET_ERR_ARG, "no source labels");
  for (k = 0; k < 2; k++) {
    const float *labels = k ? d->target_labels : d->source_labels;
    for (i = 0; labels && sets[k] && i < sets[k]->shape[0]; i++)
      if (!(labels[i] >= 0 && labels[i] < (float)m->out_features) || labels[i] != floorf(labels[i]))
        return lensnet__fail(err, LENSNET_ERR_SHAPE, "%s label %lu is %g; the model's classes are 0..%lu", names[k], (unsigned long)i,
                             (double)labels[i], (unsigned long)m->out_features - 1);
  }
  for (k = 0; k < LENSNET__ADAPT_METHODS && strcmp(d->method, lensnet__adapt_methods[k]); k++) {}
  if (k == LENSNET__ADAPT_METHODS) return lensnet__fail(err, LENSNET_ERR_ARG, "method '%s' is not adda, adamatch, self-ensembling or adabn", d->method);
  if (strcmp(d->views, "flip-rot90") && strcmp(d->views, "rot180") && strcmp(d->views, "none"))
    return lensnet__fail(err, LENSNET_ERR_ARG, "views '%.40s' is not flip-rot90, rot180 or none", d->views);
  for (k = 0; k < LENSNET__ADAPT_COUNT; k++) {
    const lensnet_fit_setting *s = &lensnet__adapt_table[k];
    double v = lensnet__setting_number(d, s);
    if (s->type != LENSNET_SETTING_TEXT && !(v >= s->lo && v <= s->hi))
      return lensnet__fail(err, LENSNET_ERR_ARG, "%s = %g is outside %g..%g", s->name, v, s->lo, s->hi);
  }
  return LENSNET_OK;
}

static lensnet_result lensnet__adapt_alloc(float **p, size_t n, lensnet_error *err) {
  if (n > LENSNET_MAX_ELEMENTS || !(*p = LENSNET__CAST(float *, LENSNET_MALLOC((n ? n : 1) * sizeof(float)))))
    return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  memset(*p, 0, (n ? n : 1) * sizeof(float));
  return LENSNET_OK;
}

/* A model of m's architecture holding m's values. */
static lensnet_result lensnet__adapt_clone(const lensnet_model *m, lensnet_model **out, lensnet_error *err) {
  lensnet_result r = lensnet_model_create(m->arch, out, err);
  if (r == LENSNET_OK) memcpy((*out)->values, m->values, m->value_count * sizeof(float));
  return r;
}

/* Networks, trainers, optimisers and buffers for the resolved desc in a->d. */
static lensnet_result lensnet__adapt_setup(lensnet__adapt *a, lensnet_model *m, const lensnet_adapt_desc *desc, lensnet_error *err) {
  lensnet_trainer_desc td;
  lensnet_optimizer_desc od;
  lensnet_result r;
  size_t B, l, cap;
  memset(a, 0, sizeof *a);
  a->m = m;
  a->d = lensnet_adapt_desc_resolve(desc);
  if (!strcmp(a->d.method, "adabn")) a->d.source = NULL, a->d.source_labels = NULL; /* it reads no source images */
  if ((r = lensnet__adapt_check(m, &a->d, err)) != LENSNET_OK || (r = lensnet_model_classifier_layer(m, &a->classifier, err)) != LENSNET_OK ||
      (r = lensnet__probe_out_dir(a->d.out_dir, err)) != LENSNET_OK)
    return r;
  for (a->method = 0; strcmp(a->d.method, lensnet__adapt_methods[a->method]); a->method++) {}
  a->d.method = lensnet__adapt_methods[a->method]; /* static text: the caller's may not outlive the run */
  a->d.views = !strcmp(a->d.views, "rot180") ? "rot180" : !strcmp(a->d.views, "none") ? "none" : "flip-rot90"; /* (checked above) */
  a->feature = a->classifier - 1;
  a->feat_n = lensnet__layer_out_n(&m->layers[a->feature]);
  a->classes = m->out_features;
  a->per = m->in_c * m->in_h * m->in_w;
  for (l = 0; l < m->layer_count; l++) a->has_bn |= m->layers[l].type == LENSNET_LAYER_BATCHNORM;
  B = a->d.batch;
  a->steps = (a->d.target->shape[0] + B - 1) / B;
  if (a->method == LENSNET__ADAPT_ADABN) { /* a pass over the target images for each batch-norm layer of the encoder */
    size_t widest = 1;
    if (!(a->bn = LENSNET__CAST(size_t *, LENSNET_MALLOC(m->layer_count * sizeof(size_t))))) return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
    for (l = 0; l < a->classifier; l++) /* the classifier and the layers above it keep theirs, as in adda */
      if (m->layers[l].type == LENSNET_LAYER_BATCHNORM) {
        const lensnet_layer *L = &m->layers[l];
        size_t values = a->d.target->shape[0] * L->orientations * L->in_h * L->in_w;
        if (values < 2)
          return lensnet__fail(err, LENSNET_ERR_SHAPE, "adabn: batch-norm layer %s sees 1 value per channel in 1 target image; a variance needs at least 2 (give more target images)",
                               L->name[0] ? L->name : "(unnamed)");
        a->bn[a->bn_count++] = l;
        if (L->in_c > widest) widest = L->in_c;
      }
    if (!a->bn_count)
      return lensnet__fail(err, LENSNET_ERR_ARG, "adabn: the model has no batch norm layer below its classifier (the last dense layer), so no "
                                                 "statistics to adapt; adda, adamatch and self-ensembling adapt models without it");
    a->bn_sum = LENSNET__CAST(double *, LENSNET_MALLOC(widest * sizeof(double)));
    a->bn_sq = LENSNET__CAST(double *, LENSNET_MALLOC(widest * sizeof(double)));
    a->bn_ref = LENSNET__CAST(double *, LENSNET_MALLOC(widest * sizeof(double)));
    if (!a->bn_sum || !a->bn_sq || !a->bn_ref) return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
    a->steps *= a->bn_count;
  }
  cap = a->method == LENSNET__ADAPT_ADAMATCH ? 4 * B : B;
  memset(&td, 0, sizeof td);
  td.batch_cap = cap; td.parallel = a->d.parallel; td.seed = a->d.seed * 6364136223846793005ULL + 7;
  /* ADDA: dropout only on the target side would tell the discriminator which side a feature
   * came from (source features are taken at inference), a cue the encoder cannot remove */
  td.no_dropout = a->method == LENSNET__ADAPT_ADDA;
  if ((r = lensnet_trainer_create(m, &td, &a->t, err)) != LENSNET_OK) return r;
  td.no_dropout = 0;
  if (a->method == LENSNET__ADAPT_ADAMATCH && a->has_bn) {
    td.batch_cap = 2 * B; td.seed += 1;
    if ((r = lensnet_trainer_create(m, &td, &a->t2, err)) != LENSNET_OK) return r;
  }
  memset(&od, 0, sizeof od);
  od.type = LENSNET_OPT_ADAM; od.lr = (float)a->d.lr;
  od.parallel = td.parallel;
  if (a->method == LENSNET__ADAPT_ADDA) od.beta1 = 0.5f;
  if ((r = lensnet_optimizer_create(&od, m, &a->opt, err)) != LENSNET_OK) return r;
  if ((a->method == LENSNET__ADAPT_ADDA || a->method == LENSNET__ADAPT_SELF_ENSEMBLING) && (r = lensnet__adapt_clone(m, &a->aux, err)) != LENSNET_OK)
    return r;
  if (a->method == LENSNET__ADAPT_ADDA) {
    char arch[512];
    snprintf(arch, sizeof arch, "input %lu 1 1\ndense name=disc.0 out=%lu\nrelu\ndense name=disc.1 out=%lu\nrelu\ndense name=disc.2 out=2",
             (unsigned long)a->feat_n, (unsigned long)a->d.disc_width, (unsigned long)a->d.disc_width);
    if ((r = lensnet_model_create(arch, &a->disc, err)) != LENSNET_OK) return r;
    lensnet_model_init(a->disc, a->d.seed + 11);
    td.batch_cap = 2 * B; td.seed = a->d.seed + 13; td.input_grad = 1;
    if ((r = lensnet_trainer_create(a->disc, &td, &a->td, err)) != LENSNET_OK) return r;
    td.batch_cap = B; td.input_grad = 0; td.skip_param_grads = 1;
    if ((r = lensnet_trainer_create(a->aux, &td, &a->ta, err)) != LENSNET_OK) return r;
    od.lr = (float)a->d.disc_lr;
    if ((r = lensnet_optimizer_create(&od, a->disc, &a->dopt, err)) != LENSNET_OK) return r;
    /* the values before an encoder step: the classifier's are put back after it */
    if ((r = lensnet__adapt_alloc(&a->keep, m->value_count, err)) != LENSNET_OK) return r;
  }
  if ((r = lensnet__adapt_alloc(&a->x, 4 * B * a->per, err)) != LENSNET_OK || (r = lensnet__adapt_alloc(&a->logits, 4 * B * a->classes, err)) != LENSNET_OK ||
      (r = lensnet__adapt_alloc(&a->logits2, 4 * B * a->classes, err)) != LENSNET_OK || (r = lensnet__adapt_alloc(&a->grad, 4 * B * a->classes, err)) != LENSNET_OK ||
      (r = lensnet__adapt_alloc(&a->grad2, 4 * B * a->classes, err)) != LENSNET_OK || (r = lensnet__adapt_alloc(&a->lambda, 2 * B * a->classes, err)) != LENSNET_OK ||
      (r = lensnet__adapt_alloc(&a->feats, 2 * B * a->feat_n, err)) != LENSNET_OK || (r = lensnet__adapt_alloc(&a->dlogits, 4 * B, err)) != LENSNET_OK ||
      (r = lensnet__adapt_alloc(&a->dgrad, 4 * B, err)) != LENSNET_OK || (r = lensnet__adapt_alloc(&a->dlabels, 2 * B, err)) != LENSNET_OK ||
      (r = lensnet__adapt_alloc(&a->img, a->per, err)) != LENSNET_OK ||
      (r = lensnet__adapt_alloc(&a->work, lensnet_model_workspace_floats(m, B), err)) != LENSNET_OK)
    return r;
  a->src_order = LENSNET__CAST(size_t *, LENSNET_MALLOC((a->d.source ? a->d.source->shape[0] : 1) * sizeof(size_t)));
  a->tgt_order = LENSNET__CAST(size_t *, LENSNET_MALLOC(a->d.target->shape[0] * sizeof(size_t)));
  if (!a->src_order || !a->tgt_order) return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  lensnet_rng_seed(&a->data_rng, a->d.seed * 2654435761ULL + 5);
  return LENSNET_OK;
}

/* Views of an image: 0 as it is, 1 weak (the `views` symmetries: flips and quarter turns, half
 * turns, or none), 2 strong (also a shift and noise of `noise` standard deviations of the image). */
static void lensnet__adapt_view(lensnet__adapt *a, const float *src, float *dst, int view) {
  const lensnet_model *m = a->m;
  lensnet__augment aug;
  memcpy(dst, src, a->per * sizeof(float));
  if (a->d.minmax) lensnet_minmax_normalize(dst, m->in_c, m->in_h * m->in_w);
  if (view == 0) return;
  memset(&aug, 0, sizeof aug);
  if (!strcmp(a->d.views, "flip-rot90")) aug.flip = aug.rot90 = 1;
  else if (!strcmp(a->d.views, "rot180")) aug.rot180 = 1;
  if (view == 2) {
    double s = 0, s2 = 0, var;
    size_t i;
    for (i = 0; i < a->per; i++) { s += dst[i]; s2 += (double)dst[i] * dst[i]; }
    var = s2 / (double)a->per - (s / (double)a->per) * (s / (double)a->per);
    aug.shift = a->d.shift > 0 ? a->d.shift : 0;
    aug.noise = a->d.noise > 0 ? (float)(a->d.noise * sqrt(var > 0 ? var : 0)) : 0.0f;
  }
  memcpy(a->img, dst, a->per * sizeof(float));
  lensnet__augment_image(&aug, &a->data_rng, a->img, dst, m->in_c, m->in_h, m->in_w);
}

/* B images of a set, positions step * B .. of its order (cycling), in a view, into dst. */
static void lensnet__adapt_batch(lensnet__adapt *a, const lensnet_tensor *set, const size_t *order, size_t step, int view, float *dst,
                                 float *labels, const float *set_labels) {
  size_t k, n = set->shape[0], B = a->d.batch;
  for (k = 0; k < B; k++) {
    size_t i = order[(step * B + k) % n];
    lensnet__adapt_view(a, set->data + i * a->per, dst + k * a->per, view);
    if (labels) labels[k] = set_labels[i];
  }
}

static void lensnet__softmax_row(const float *z, size_t k, double *p) {
  size_t c;
  lensnet__log_softmax(z, k, p);
  for (c = 0; c < k; c++) p[c] = exp(p[c]);
}

/* ADDA: a discriminator step on source and target features, then a target-encoder step against
 * the updated discriminator with inverted labels. */
static lensnet_result lensnet__adapt_step_adda(lensnet__adapt *a, size_t step, double *loss, lensnet_error *err) {
  size_t B = a->d.batch, F = a->feat_n, k, c;
  float *xs = a->x, *xt = a->x + B * a->per;
  const float *in_grad;
  lensnet_result r;
  lensnet__adapt_batch(a, a->d.source, a->src_order, step, 0, xs, NULL, NULL);
  lensnet__adapt_batch(a, a->d.target, a->tgt_order, step, 0, xt, NULL, NULL);
  if ((r = lensnet_trainer_forward(a->ta, B, xs, 0, NULL, err)) != LENSNET_OK || (r = lensnet_trainer_forward(a->t, B, xt, 1, NULL, err)) != LENSNET_OK)
    return r;
  memcpy(a->feats, lensnet_trainer_activation(a->ta, a->feature), B * F * sizeof(float));
  memcpy(a->feats + B * F, lensnet_trainer_activation(a->t, a->feature), B * F * sizeof(float));
  for (k = 0; k < 2 * B; k++) a->dlabels[k] = k < B ? 1.0f : 0.0f; /* 1: source */
  if ((r = lensnet_trainer_forward(a->td, 2 * B, a->feats, 1, a->dlogits, err)) != LENSNET_OK) return r;
  loss[0] = lensnet_loss_cross_entropy(a->dlogits, a->dlabels, 2 * B, 2, NULL, a->dgrad);
  lensnet_trainer_zero_grad(a->td);
  if ((r = lensnet_trainer_backward(a->td, 2 * B, a->dgrad, err)) != LENSNET_OK) return r;
  lensnet_optimizer_step(a->dopt, a->disc, lensnet_trainer_grads(a->td), 0);
  /* the encoder: target features labelled source */
  if ((r = lensnet_trainer_forward(a->td, B, a->feats + B * F, 1, a->dlogits, err)) != LENSNET_OK) return r;
  loss[1] = lensnet_loss_cross_entropy(a->dlogits, a->dlabels, B, 2, NULL, a->dgrad);
  if ((r = lensnet_trainer_backward(a->td, B, a->dgrad, err)) != LENSNET_OK) return r;
  in_grad = lensnet_trainer_input_grad(a->td);
  lensnet_trainer_zero_grad(a->t);
  if ((r = lensnet_trainer_backward_from(a->t, a->feature, B, in_grad, err)) != LENSNET_OK) return r;
  memcpy(a->keep, a->m->values, a->m->value_count * sizeof(float));
  lensnet_optimizer_step(a->opt, a->m, lensnet_trainer_grads(a->t), 0);
  /* the classifier (the last dense layer and any layers above it) keeps its source values */
  for (c = 0; c < a->m->param_count; c++) {
    const lensnet_param *P = &a->m->params[c];
    for (k = a->classifier; k < a->m->layer_count; k++) {
      const lensnet_layer *L = &a->m->layers[k];
      if ((L->weight >= 0 && (size_t)L->weight == c) || (L->bias_param >= 0 && (size_t)L->bias_param == c) ||
          (L->mean_param >= 0 && (size_t)L->mean_param == c) || (L->var_param >= 0 && (size_t)L->var_param == c))
        memcpy(a->m->values + P->offset, a->keep + P->offset, P->count * sizeof(float));
    }
  }
  return LENSNET_OK;
}

/* AdaBN (Li, Wang, Shi, Hou & Liu 2018, Pattern Recognition 80, 109): each batch-norm layer's
 * running statistics become those of its input over every target image. Step s passes batch
 * s % per of the target images (per batches in all) through the model at inference and adds each
 * channel's sum and sum of squares of the input of batch-norm layer s / per (in double, image by
 * image in order: the result does not depend on the batch size; about the channel's mean in the
 * first target image, so that a mean far from zero does not cancel the variance's digits); the
 * layer's last batch sets its
 * mean and unbiased variance (PyTorch's convention for running_var). Layers are done from the
 * input up, so each sees the layers below it already adapted. loss[0] and loss[1] are the means
 * over the channels adapted so far of |mean_target - mean_source| / std_source and
 * |ln(std_target / std_source)| (std including the layer's epsilon): how far the target moved them.
 * Only the layers below the classifier are adapted (it and the layers above it keep their source
 * values, as in adda); a statistic beyond float's range (pixels of 1e30, blank-pixel markers) is
 * refused, naming the layer, rather than saved. */
static lensnet_result lensnet__adapt_step_adabn(lensnet__adapt *a, size_t step, double *loss, lensnet_error *err) {
  lensnet_model *m = a->m;
  size_t nt = a->d.target->shape[0], B = a->d.batch, per = (nt + B - 1) / B, j = step / per, first = (step % per) * B;
  size_t l = a->bn[j], bs = nt - first < B ? nt - first : B, k, c, q;
  const lensnet_layer *L = &m->layers[l];
  size_t C = L->in_c / L->orientations, hw = L->orientations * L->in_h * L->in_w;
  float *rmean = m->values + m->params[L->mean_param].offset, *rvar = m->values + m->params[L->var_param].offset;
  const float *x;
  lensnet_result r;
  for (k = 0; k < bs; k++) lensnet__adapt_view(a, a->d.target->data + (first + k) * a->per, a->x + k * a->per, 0);
  if (l > 0 && (r = lensnet__trainer_forward_to(a->t, bs, a->x, 0, l, err)) != LENSNET_OK) return r; /* up to the layer */
  x = l > 0 ? lensnet_trainer_activation(a->t, l - 1) : a->x; /* the layer's input */
  if (first == 0)
    for (c = 0; c < C; c++) {
      double s = 0.0;
      for (q = 0; q < hw; q++) s += x[c * hw + q];
      a->bn_sum[c] = a->bn_sq[c] = 0.0;
      a->bn_ref[c] = s / (double)hw;
    }
  for (k = 0; k < bs; k++)
    for (c = 0; c < C; c++) {
      const float *v = x + (k * C + c) * hw;
      double s = 0.0, sq = 0.0, ref = a->bn_ref[c];
      for (q = 0; q < hw; q++) {
        double dv = (double)v[q] - ref;
        s += dv, sq += dv * dv;
      }
      a->bn_sum[c] += s; a->bn_sq[c] += sq;
    }
  if (first + bs == nt) { /* the layer's statistics are complete */
    double n = (double)nt * (double)hw;
    for (c = 0; c < C; c++) {
      double dmu = a->bn_sum[c] / n, mu = a->bn_ref[c] + dmu, var = n > 1 ? (a->bn_sq[c] - n * dmu * dmu) / (n - 1) : 0.0;
      double sd_old = sqrt((double)rvar[c] + L->value), sd_new;
      float fm = (float)mu, fv;
      uint32_t bm, bv;
      if (var < 0) var = 0; /* rounding of a constant channel */
      fv = (float)var;
      memcpy(&bm, &fm, sizeof bm);
      memcpy(&bv, &fv, sizeof bv);
      if ((bm & 0x7f800000u) == 0x7f800000u || (bv & 0x7f800000u) == 0x7f800000u) /* by the bits: -ffast-math folds isfinite away */
        return lensnet__fail(err, LENSNET_ERR_FORMAT, "adabn: the target images give batch-norm layer %s channel %lu a %s of %g, beyond float's "
                                                      "range (pixels of 1e30 or so? blank-pixel markers want masking first); nothing was saved",
                             L->name[0] ? L->name : "(unnamed)", (unsigned long)c, (bm & 0x7f800000u) == 0x7f800000u ? "mean" : "variance",
                             (bm & 0x7f800000u) == 0x7f800000u ? mu : var);
      sd_new = sqrt(var + L->value);
      a->bn_shift += fabs(mu - (double)rmean[c]) / sd_old;
      a->bn_change += fabs(log(sd_new / sd_old));
      rmean[c] = (float)mu;
      rvar[c] = (float)var;
    }
    a->bn_channels += C;
  }
  loss[0] = a->bn_channels ? a->bn_shift / (double)a->bn_channels : 0.0;
  loss[1] = a->bn_channels ? a->bn_change / (double)a->bn_channels : 0.0;
  return LENSNET_OK;
}

/* AdaMatch: source cross-entropy on randomly interpolated logits, plus the ramped loss of the
 * aligned, relatively thresholded pseudo-labels on the strong target view. */
/* One AdaMatch step. The joint batch a->x holds four blocks of B images: source weak, source
 * strong, target weak, target strong (rows 0..B-1, B..2B-1, 2B..3B-1, 3B..4B-1 of a->logits and
 * a->grad). zs (a->logits2) is the source logits the source loss sees, [2B, K]: the joint pass's
 * interpolated per logit with a pass over the source blocks alone (through a->t2) by lambda
 * (a->lambda); the source loss's gradient is split between the two passes by lambda (a->grad for
 * the joint pass, a->grad2 for the source-only one). The target loss reaches only the strong
 * target block. Labels: ys, one per source image of both views (batch <= 4096, the table's
 * limit). The optimiser steps at its own rate (lr 0: its desc's). */
static lensnet_result lensnet__adapt_step_adamatch(lensnet__adapt *a, size_t step, uint64_t total_steps, double *loss, lensnet_error *err) {
  size_t B = a->d.batch, K = a->classes, P = a->per, k, c;
  float ys[2 * 4096];
  double ps[LENSNET_MAX_CLASSES], pt[LENSNET_MAX_CLASSES], mean_s[LENSNET_MAX_CLASSES], mean_t[LENSNET_MAX_CLASSES], conf = 0, mu;
  float *zs = a->logits2; /* the source logits used: [2B, K] */
  lensnet_result r;
  const double pi = 3.14159265358979323846;
  lensnet__adapt_batch(a, a->d.source, a->src_order, step, 1, a->x, ys, a->d.source_labels);
  lensnet__adapt_batch(a, a->d.source, a->src_order, step, 2, a->x + B * P, ys + B, a->d.source_labels);
  lensnet__adapt_batch(a, a->d.target, a->tgt_order, step, 1, a->x + 2 * B * P, NULL, NULL);
  lensnet__adapt_batch(a, a->d.target, a->tgt_order, step, 2, a->x + 3 * B * P, NULL, NULL);
  if ((r = lensnet_trainer_forward(a->t, 4 * B, a->x, 1, a->logits, err)) != LENSNET_OK) return r;
  if (a->t2) {
    if ((r = lensnet_trainer_forward(a->t2, 2 * B, a->x, 1, NULL, err)) != LENSNET_OK) return r;
    for (k = 0; k < 2 * B * K; k++) {
      float lam = lensnet_rng_uniform(&a->data_rng);
      a->lambda[k] = lam;
      zs[k] = lam * a->logits[k] + (1.0f - lam) * lensnet_trainer_output(a->t2)[k];
    }
  } else memcpy(zs, a->logits, 2 * B * K * sizeof(float));
  loss[0] = lensnet_loss_cross_entropy(zs, ys, 2 * B, K, NULL, a->grad2);
  /* distribution alignment and the relative threshold, from the weak views */
  for (c = 0; c < K; c++) mean_s[c] = mean_t[c] = 0;
  for (k = 0; k < B; k++) {
    double mx = 0;
    lensnet__softmax_row(zs + k * K, K, ps);
    lensnet__softmax_row(a->logits + (2 * B + k) * K, K, pt);
    for (c = 0; c < K; c++) { mean_s[c] += ps[c] / (double)B; mean_t[c] += pt[c] / (double)B; if (ps[c] > mx) mx = ps[c]; }
    conf += mx / (double)B;
  }
  conf *= a->d.tau;
  mu = 0.5 - 0.5 * cos((double)a->step < (double)total_steps / 2 ? 2.0 * pi * (double)a->step / (double)total_steps : pi);
  memset(a->grad, 0, 4 * B * K * sizeof(float));
  loss[1] = 0;
  for (k = 0; k < B; k++) {
    double sum = 0, best = -1, q[LENSNET_MAX_CLASSES];
    size_t y = 0;
    const float *zt = a->logits + (3 * B + k) * K;
    lensnet__softmax_row(a->logits + (2 * B + k) * K, K, pt);
    for (c = 0; c < K; c++) { pt[c] *= mean_s[c] / (mean_t[c] > 1e-12 ? mean_t[c] : 1e-12); sum += pt[c]; }
    for (c = 0; c < K; c++) { pt[c] /= sum; if (pt[c] > best) { best = pt[c]; y = c; } }
    if (best < conf) continue;
    lensnet__softmax_row(zt, K, q);
    loss[1] -= log(q[y] > 1e-30 ? q[y] : 1e-30) / (double)B;
    for (c = 0; c < K; c++) a->grad[(3 * B + k) * K + c] = (float)(mu * (q[c] - (c == y)) / (double)B);
  }
  for (k = 0; k < 2 * B * K; k++) {
    float lam = a->t2 ? a->lambda[k] : 1.0f;
    a->grad[k] = lam * a->grad2[k];
    a->grad2[k] *= 1.0f - lam;
  }
  lensnet_trainer_zero_grad(a->t);
  if ((r = lensnet_trainer_backward(a->t, 4 * B, a->grad, err)) != LENSNET_OK) return r;
  if (a->t2) {
    float *g = lensnet_trainer_grads(a->t), *g2 = lensnet_trainer_grads(a->t2);
    lensnet_trainer_zero_grad(a->t2);
    if ((r = lensnet_trainer_backward(a->t2, 2 * B, a->grad2, err)) != LENSNET_OK) return r;
    for (k = 0; k < a->m->value_count; k++) g[k] += g2[k];
  }
  lensnet_optimizer_step(a->opt, a->m, lensnet_trainer_grads(a->t), 0);
  return LENSNET_OK;
}

/* Self-ensembling: source cross-entropy, then the thresholded consistency between student and
 * teacher on two strong views of the target batch; the teacher follows the student. */
static lensnet_result lensnet__adapt_step_self(lensnet__adapt *a, size_t step, double *loss, lensnet_error *err) {
  size_t B = a->d.batch, K = a->classes, P = a->per, k, c;
  float ys[4096];
  double p[LENSNET_MAX_CLASSES], q[LENSNET_MAX_CLASSES], w = a->d.consistency_weight, alpha = a->d.ema;
  lensnet_result r;
  lensnet__adapt_batch(a, a->d.source, a->src_order, step, 1, a->x, ys, a->d.source_labels);
  if ((r = lensnet_trainer_forward(a->t, B, a->x, 1, a->logits, err)) != LENSNET_OK) return r;
  loss[0] = lensnet_loss_cross_entropy(a->logits, ys, B, K, NULL, a->grad);
  lensnet_trainer_zero_grad(a->t);
  if ((r = lensnet_trainer_backward(a->t, B, a->grad, err)) != LENSNET_OK) return r;
  lensnet__adapt_batch(a, a->d.target, a->tgt_order, step, 2, a->x, NULL, NULL);
  lensnet__adapt_batch(a, a->d.target, a->tgt_order, step, 2, a->x + B * P, NULL, NULL);
  if ((r = lensnet_model_forward(a->aux, B, a->x + B * P, a->logits2, a->work, err)) != LENSNET_OK ||
      (r = lensnet_trainer_forward(a->t, B, a->x, 1, a->logits, err)) != LENSNET_OK) return r;
  loss[1] = 0;
  for (k = 0; k < B; k++) {
    double mx = 0, dp[LENSNET_MAX_CLASSES];
    lensnet__softmax_row(a->logits + k * K, K, p);
    lensnet__softmax_row(a->logits2 + k * K, K, q);
    for (c = 0; c < K; c++) if (q[c] > mx) mx = q[c];
    for (c = 0; c < K; c++) a->grad[k * K + c] = 0.0f;
    if (mx <= a->d.confidence) continue;
    /* L = mean over the batch of (1/K) sum (p - q)^2; dL/dz_j = sum_c dL/dp_c p_c (delta_cj - p_j) */
    for (c = 0; c < K; c++) { loss[1] += (p[c] - q[c]) * (p[c] - q[c]) / (double)(K * B); dp[c] = 2.0 * (p[c] - q[c]) / (double)(K * B); }
    {
      double s = 0;
      for (c = 0; c < K; c++) s += dp[c] * p[c];
      for (c = 0; c < K; c++) a->grad[k * K + c] = (float)(w * p[c] * (dp[c] - s));
    }
  }
  if ((r = lensnet_trainer_backward(a->t, B, a->grad, err)) != LENSNET_OK) return r;
  lensnet_optimizer_step(a->opt, a->m, lensnet_trainer_grads(a->t), 0);
  for (k = 0; k < a->m->value_count; k++) a->aux->values[k] = (float)(alpha * a->aux->values[k] + (1.0 - alpha) * a->m->values[k]);
  return LENSNET_OK;
}

/* The model the run gives: the teacher (self-ensembling), else m. */
static lensnet_model *lensnet__adapt_result(const lensnet__adapt *a) {
  return a->method == LENSNET__ADAPT_SELF_ENSEMBLING ? a->aux : a->m;
}

typedef struct { float score; float label; } lensnet__scored;
static int lensnet__scored_cmp(const void *x, const void *y) {
  const lensnet__scored *a = (const lensnet__scored *)x, *b = (const lensnet__scored *)y;
  return a->score < b->score ? -1 : a->score > b->score ? 1 : (a->label > b->label) - (a->label < b->label);
}

/* The Mann-Whitney AUC of n scored objects (label > 0.5 positive): the share of (positive,
 * negative) pairs ranked right, ties half; NaN without both. Sorts sc. */
static double lensnet__auc_mw(lensnet__scored *sc, size_t n) {
  double pos = 0, neg = 0, above = 0;
  size_t i, j;
  qsort(sc, n, sizeof *sc, lensnet__scored_cmp);
  for (i = 0; i < n; i = j) {
    double tp = 0, tn = 0;
    for (j = i; j < n && sc[j].score == sc[i].score; j++) { if (sc[j].label > 0.5f) tp++; else tn++; }
    above += tp * (neg + 0.5 * tn);
    pos += tp; neg += tn;
  }
  return pos > 0 && neg > 0 ? above / (pos * neg) : NAN;
}

/* Accuracy and AUC of the adapted model on the target images, for the report: with two classes
 * the AUC of class 1 against class 0; with K the macro one-vs-rest AUC (the mean over the classes
 * of each one's probability ranking it against all others, as lens eval's macro AUC; NaN when a
 * class has no target images). */
static lensnet_result lensnet__adapt_report(lensnet__adapt *a, lensnet_adapt_progress *p, lensnet_error *err) {
  const lensnet_model *m = lensnet__adapt_result(a);
  size_t n = a->d.target->shape[0], B = a->d.batch, K = a->classes, i, k, c, correct = 0;
  lensnet__scored *sc;
  float *prob;
  lensnet_result r = LENSNET_OK;
  p->target_acc = p->target_auc = NAN;
  if (!a->d.target_labels) return LENSNET_OK;
  sc = LENSNET__CAST(lensnet__scored *, LENSNET_MALLOC(n * sizeof *sc));
  prob = LENSNET__CAST(float *, LENSNET_MALLOC(n * K * sizeof(float)));
  if (!sc || !prob) {
    LENSNET_FREE(sc);
    LENSNET_FREE(prob);
    return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  }
  for (i = 0; i < n && r == LENSNET_OK; i += B) {
    size_t bs = n - i < B ? n - i : B;
    for (k = 0; k < bs; k++) lensnet__adapt_view(a, a->d.target->data + (i + k) * a->per, a->x + k * a->per, 0);
    if ((r = lensnet_model_forward(m, bs, a->x, a->logits, a->work, err)) != LENSNET_OK) break;
    for (k = 0; k < bs; k++) {
      size_t best = 0;
      for (c = 1; c < K; c++) if (a->logits[k * K + c] > a->logits[k * K + best]) best = c;
      correct += best == (size_t)a->d.target_labels[i + k];
      for (c = 0; c < K; c++) prob[(i + k) * K + c] = (float)lensnet_lens_probability(a->logits + k * K, K, c);
    }
  }
  if (r == LENSNET_OK) {
    double sum = 0.0;
    p->target_acc = (double)correct / (double)n;
    for (c = K == 2 ? 1 : 0; c < K; c++) {
      for (i = 0; i < n; i++) {
        sc[i].score = prob[i * K + c];
        sc[i].label = a->d.target_labels[i] == (float)c ? 1.0f : 0.0f;
      }
      sum += lensnet__auc_mw(sc, n);
    }
    p->target_auc = K == 2 ? sum : sum / (double)K;
  }
  LENSNET_FREE(sc);
  LENSNET_FREE(prob);
  return r;
}

static double lensnet__adapt_seconds(const lensnet__adapt *a) {
  return a->d.seconds ? a->d.seconds(a->d.seconds_user) : (double)clock() / CLOCKS_PER_SEC;
}

/* The settings into m's metadata (adapt.NAME). */
static lensnet_result lensnet__adapt_settings_meta(lensnet__adapt *a, lensnet_model *m) {
  size_t i;
  lensnet_result r = LENSNET_OK;
  for (i = 0; i < LENSNET__ADAPT_COUNT && r == LENSNET_OK; i++) {
    char key[64], value[128];
    /* only the settings the method uses (and epochs, the run's length, which resuming reads) */
    if (!lensnet_adapt_setting_applies(&lensnet__adapt_table[i], a->d.method) && strcmp(lensnet__adapt_table[i].name, "epochs")) continue;
    snprintf(key, sizeof key, "adapt.%s", lensnet__adapt_table[i].name);
    lensnet_adapt_setting_format(&a->d, &lensnet__adapt_table[i], value, sizeof value);
    r = lensnet_model_set_meta(m, key, value);
  }
  if (r == LENSNET_OK) r = lensnet_model_set_meta(m, "preprocess", a->d.minmax ? "minmax" : "none");
  if (r == LENSNET_OK) {
    lensnet__fingerprint h;
    char text[17];
    lensnet__fingerprint_start(&h);
    if (a->d.source) lensnet__fingerprint_add(&h, a->d.source->data, lensnet_tensor_count(a->d.source));
    if (a->d.source) lensnet__fingerprint_add(&h, a->d.source_labels, a->d.source->shape[0]);
    lensnet__fingerprint_add(&h, a->d.target->data, lensnet_tensor_count(a->d.target));
    if (a->d.target_labels) lensnet__fingerprint_add(&h, a->d.target_labels, a->d.target->shape[0]);
    lensnet__fingerprint_text(&h, text);
    r = lensnet_model_set_meta(m, "adapt.data_fingerprint", text);
  }
  return r;
}

/* The settings of a checkpoint into d, each checked against its range; text values point into st. */
static lensnet_result lensnet__adapt_desc_from_meta(const lensnet_safetensors *st, lensnet_adapt_desc *d, lensnet_error *err) {
  size_t i;
  for (i = 0; i < LENSNET__ADAPT_COUNT; i++) {
    char key[64];
    const char *v;
    snprintf(key, sizeof key, "adapt.%s", lensnet__adapt_table[i].name);
    if (!(v = lensnet_safetensors_meta(st, key))) {
      /* runs from before these settings: the encoder's rate; flips and quarter turns. A setting
       * the run's method does not use is not saved (method comes first in the table) */
      if (!strcmp(lensnet__adapt_table[i].name, "disc_lr") || !strcmp(lensnet__adapt_table[i].name, "views")) continue;
      if (i > 0 && d->method && !lensnet_adapt_setting_applies(&lensnet__adapt_table[i], d->method)) continue;
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "checkpoint lacks %s", key);
    }
    if (lensnet_adapt_setting_parse(d, &lensnet__adapt_table[i], v, err) != LENSNET_OK) {
      lensnet__prefix_path(err, "checkpoint: adapt.*");
      if (err) err->result = LENSNET_ERR_FORMAT;
      return LENSNET_ERR_FORMAT;
    }
  }
  return LENSNET_OK;
}

/* The run's state into m's metadata (so every file of the epoch carries it, as lensnet_fit's do):
 * the epoch, the step, the optimisers' steps, the streams, the history. */
static lensnet_result lensnet__adapt_state_meta(const lensnet__adapt *a, lensnet_model *m) {
  char text[80];
  lensnet_result r;
  snprintf(text, sizeof text, "%d", a->epoch);
  r = lensnet_model_set_meta(m, "adapt.epoch", text);
  lensnet__u64_text((uint64_t)a->step, text);
  if (r == LENSNET_OK) r = lensnet_model_set_meta(m, "adapt.step", text);
  lensnet__u64_text((uint64_t)a->opt->step, text);
  if (r == LENSNET_OK) r = lensnet_model_set_meta(m, "adapt.optimizer_step", text);
  lensnet__u64_text((uint64_t)(a->dopt ? a->dopt->step : 0), text);
  if (r == LENSNET_OK) r = lensnet_model_set_meta(m, "adapt.disc_optimizer_step", text);
  lensnet__rng_to_text(&a->data_rng, text, sizeof text);
  if (r == LENSNET_OK) r = lensnet_model_set_meta(m, "adapt.data_rng", text);
  lensnet__rng_to_text(&a->t->rng, text, sizeof text);
  if (r == LENSNET_OK) r = lensnet_model_set_meta(m, "adapt.dropout_rng", text);
  if (a->t2) lensnet__rng_to_text(&a->t2->rng, text, sizeof text);
  if (r == LENSNET_OK && a->t2) r = lensnet_model_set_meta(m, "adapt.dropout_rng2", text);
  if (a->td) lensnet__rng_to_text(&a->td->rng, text, sizeof text);
  if (r == LENSNET_OK && a->td) r = lensnet_model_set_meta(m, "adapt.disc_rng", text);
  if (r == LENSNET_OK) r = lensnet_model_set_meta(m, "adapt.history", a->history);
  return r;
}

/* best.safetensors, then checkpoint.safetensors (every network, optimiser and stream), then history.csv. */
static lensnet_result lensnet__adapt_save(lensnet__adapt *a, lensnet_error *err) {
  lensnet_safetensors st;
  lensnet_model *res = lensnet__adapt_result(a);
  char path[4096];
  const char *aux = a->method == LENSNET__ADAPT_ADDA ? "adapt.source." : "adapt.teacher.";
  lensnet_result r = lensnet__adapt_state_meta(a, a->m);
  size_t i;
  for (i = 0; res != a->m && i < a->m->meta_count && r == LENSNET_OK; i++) /* the teacher carries the run's metadata too */
    if (lensnet_model_set_meta(res, a->m->meta_keys[i], a->m->meta_values[i]) != LENSNET_OK) r = LENSNET_ERR_NOMEM;
  if (r != LENSNET_OK) return lensnet__fail(err, r, "out of memory");
  if (!a->d.out_dir) return LENSNET_OK;
  if ((r = lensnet__run_file(a->d.out_dir, "best.safetensors", path, sizeof path, err)) != LENSNET_OK || (r = lensnet_model_save(res, path, err)) != LENSNET_OK)
    return r;
  if ((r = lensnet__model_to_safetensors(a->m, &st)) != LENSNET_OK) return lensnet__fail(err, r, "out of memory");
  if (a->aux) r = lensnet__values_add(&st, aux, a->aux, a->aux->values, 0);
  if (r == LENSNET_OK) r = lensnet__values_add(&st, "adapt.opt.m.", a->m, a->opt->m, 1);
  if (r == LENSNET_OK) r = lensnet__values_add(&st, "adapt.opt.v.", a->m, a->opt->v, 1);
  if (r == LENSNET_OK && a->disc) r = lensnet__values_add(&st, "adapt.disc.", a->disc, a->disc->values, 0);
  if (r == LENSNET_OK && a->disc) r = lensnet__values_add(&st, "adapt.disc_opt.m.", a->disc, a->dopt->m, 1);
  if (r == LENSNET_OK && a->disc) r = lensnet__values_add(&st, "adapt.disc_opt.v.", a->disc, a->dopt->v, 1);
  if (r != LENSNET_OK) lensnet__fail(err, r, "out of memory");
  else if ((r = lensnet__run_file(a->d.out_dir, "checkpoint.safetensors", path, sizeof path, err)) == LENSNET_OK)
    r = lensnet_safetensors_write(path, &st, err);
  lensnet_safetensors_free(&st);
  return r == LENSNET_OK ? lensnet__run_write_history(a->d.out_dir, a->history, a->history_len, err) : r;
}

/* The state of a checkpoint already read: networks, optimisers, streams, epoch, step, history. */
static lensnet_result lensnet__adapt_restore(lensnet__adapt *a, const lensnet_safetensors *st, lensnet_error *err) {
  const char *v = lensnet_safetensors_meta(st, "adapt.epoch");
  const char *aux = a->method == LENSNET__ADAPT_ADDA ? "adapt.source." : "adapt.teacher.";
  long epoch = v ? strtol(v, NULL, 10) : -1;
  lensnet_result r = LENSNET_OK;
  if (epoch < 0 || epoch > 1000000) return lensnet__fail(err, LENSNET_ERR_FORMAT, "checkpoint: adapt.epoch is missing or not a count of epochs");
  a->epoch = (int)epoch;
  v = lensnet_safetensors_meta(st, "adapt.step");
  a->step = v ? strtoull(v, NULL, 10) : 0;
  v = lensnet_safetensors_meta(st, "adapt.optimizer_step");
  a->opt->step = v ? strtoull(v, NULL, 10) : 0;
  if (a->dopt) {
    v = lensnet_safetensors_meta(st, "adapt.disc_optimizer_step");
    a->dopt->step = v ? strtoull(v, NULL, 10) : 0;
  }
  if (!lensnet__rng_from_text(lensnet_safetensors_meta(st, "adapt.data_rng"), &a->data_rng) ||
      !lensnet__rng_from_text(lensnet_safetensors_meta(st, "adapt.dropout_rng"), &a->t->rng) ||
      (a->t2 && !lensnet__rng_from_text(lensnet_safetensors_meta(st, "adapt.dropout_rng2"), &a->t2->rng)) ||
      (a->td && !lensnet__rng_from_text(lensnet_safetensors_meta(st, "adapt.disc_rng"), &a->td->rng)))
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "checkpoint has no random-stream state");
  if (a->aux) r = lensnet__values_get(st, aux, a->aux, a->aux->values, 0, err);
  if (r == LENSNET_OK) r = lensnet__values_get(st, "adapt.opt.m.", a->m, a->opt->m, 1, err);
  if (r == LENSNET_OK) r = lensnet__values_get(st, "adapt.opt.v.", a->m, a->opt->v, 1, err);
  if (r == LENSNET_OK && a->disc) r = lensnet__values_get(st, "adapt.disc.", a->disc, a->disc->values, 0, err);
  if (r == LENSNET_OK && a->disc) r = lensnet__values_get(st, "adapt.disc_opt.m.", a->disc, a->dopt->m, 1, err);
  if (r == LENSNET_OK && a->disc) r = lensnet__values_get(st, "adapt.disc_opt.v.", a->disc, a->dopt->v, 1, err);
  v = lensnet_safetensors_meta(st, "adapt.history");
  if (r == LENSNET_OK) r = lensnet__text_append(&a->history, &a->history_len, v ? v : "", err);
  return r;
}

/* The epochs from a->epoch to the end, or until the progress callback asks to stop. */
static lensnet_result lensnet__adapt_run(lensnet__adapt *a, lensnet_error *err) {
  size_t ns = a->d.source ? a->d.source->shape[0] : 0, nt = a->d.target->shape[0], i, s;
  uint64_t total = (uint64_t)a->steps * (uint64_t)a->d.epochs;
  lensnet_result r = LENSNET_OK;
  int stop = 0;
  while (a->epoch < a->d.epochs && !stop) {
    lensnet_adapt_progress p;
    double t0 = lensnet__adapt_seconds(a), sum[2] = {0, 0};
    char row[256], acc[32] = "", auc[32] = "";
    memset(&p, 0, sizeof p);
    p.epoch = a->epoch + 1; p.epochs = a->d.epochs; p.steps = a->steps;
    p.loss_names[0] = lensnet__adapt_losses[a->method][0]; p.loss_names[1] = lensnet__adapt_losses[a->method][1];
    p.target_acc = p.target_auc = NAN;
    /* both orders drawn afresh each epoch from the data stream, which the checkpoint keeps */
    for (i = 0; i < ns; i++) a->src_order[i] = i;
    for (i = 0; i < nt; i++) a->tgt_order[i] = i;
    lensnet__shuffle(a->src_order, ns, &a->data_rng);
    lensnet__shuffle(a->tgt_order, nt, &a->data_rng);
    for (s = 0; s < a->steps; s++) {
      double loss[2] = {0, 0};
      r = a->method == LENSNET__ADAPT_ADDA       ? lensnet__adapt_step_adda(a, s, loss, err)
          : a->method == LENSNET__ADAPT_ADAMATCH ? lensnet__adapt_step_adamatch(a, s, total, loss, err)
          : a->method == LENSNET__ADAPT_ADABN    ? lensnet__adapt_step_adabn(a, s, loss, err)
                                                 : lensnet__adapt_step_self(a, s, loss, err);
      if (r != LENSNET_OK) return r;
      if (loss[0] != loss[0] || loss[1] != loss[1]) return lensnet__fail(err, LENSNET_ERR_DIVERGED, "the loss became NaN at epoch %d", p.epoch);
      a->step++;
      sum[0] += loss[0]; sum[1] += loss[1];
      p.step = s + 1;
      p.loss[0] = sum[0] / (double)p.step; p.loss[1] = sum[1] / (double)p.step;
      if (a->method == LENSNET__ADAPT_ADABN) p.loss[0] = loss[0], p.loss[1] = loss[1]; /* already means over the channels done */
      p.seconds = lensnet__adapt_seconds(a) - t0;
      if (a->d.progress && a->d.progress(a->d.progress_user, &p)) stop = 1;
    }
    if ((r = lensnet__adapt_report(a, &p, err)) != LENSNET_OK) return r;
    p.seconds = lensnet__adapt_seconds(a) - t0;
    if (p.target_acc == p.target_acc) snprintf(acc, sizeof acc, "%.6f", p.target_acc);
    if (p.target_auc == p.target_auc) snprintf(auc, sizeof auc, "%.6f", p.target_auc);
    snprintf(row, sizeof row, "%d,%.6f,%.6f,%s,%s,%.2f\n", p.epoch, p.loss[0], p.loss[1], acc, auc, p.seconds);
    if ((r = lensnet__text_append(&a->history, &a->history_len, row, err)) != LENSNET_OK) return r;
    a->epoch = p.epoch;
    if ((r = lensnet__adapt_save(a, err)) != LENSNET_OK) return r;
    p.epoch_done = 1;
    if (a->d.progress && a->d.progress(a->d.progress_user, &p)) stop = 1;
  }
  return r;
}

/* The adapted model into m (the teacher's values for self-ensembling). */
static void lensnet__adapt_finish(lensnet__adapt *a) {
  if (a->method == LENSNET__ADAPT_SELF_ENSEMBLING) memcpy(a->m->values, a->aux->values, a->m->value_count * sizeof(float));
}

LENSNET_API lensnet_result lensnet_adapt(lensnet_model *m, const lensnet_adapt_desc *desc, lensnet_error *err) {
  lensnet__adapt a;
  lensnet_adapt_desc d;
  char header[128];
  lensnet_result r;
  if (!m) return lensnet__fail(err, LENSNET_ERR_ARG, "adapt: no model (NULL)");
  memset(&d, 0, sizeof d);
  if (desc) d = *desc;
  if ((r = lensnet__run_scaling("adapt", &d.preprocess, &d.minmax, m, err)) != LENSNET_OK) return r;
  r = lensnet__adapt_setup(&a, m, &d, err);
  if (r == LENSNET_OK && lensnet__adapt_settings_meta(&a, m) != LENSNET_OK) r = lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  if (r == LENSNET_OK) {
    snprintf(header, sizeof header, "epoch,%s,%s,target_acc,target_auc,seconds\n", lensnet__adapt_losses[a.method][0], lensnet__adapt_losses[a.method][1]);
    r = lensnet__text_append(&a.history, &a.history_len, header, err);
  }
  if (r == LENSNET_OK) r = lensnet__adapt_run(&a, err);
  if (r == LENSNET_OK) lensnet__adapt_finish(&a);
  lensnet__adapt_free(&a);
  return r;
}

LENSNET_API lensnet_result lensnet_adapt_resume(const char *dir, const lensnet_adapt_desc *desc, lensnet_model **out, lensnet_error *err) {
  lensnet_safetensors st;
  lensnet_adapt_desc d;
  lensnet__adapt a;
  lensnet_model *m = NULL;
  lensnet_result r;
  char path[4096];
  *out = NULL;
  memset(&a, 0, sizeof a);
  if ((size_t)snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir) >= sizeof path) return lensnet__fail(err, LENSNET_ERR_ARG, "%s: path too long", dir);
  if ((r = lensnet_safetensors_read(path, &st, err)) != LENSNET_OK) return r;
  memset(&d, 0, sizeof d);
  r = lensnet__adapt_desc_from_meta(&st, &d, err);
  if (r == LENSNET_OK) r = lensnet_model_from_safetensors(&st, &m, err);
  if (r == LENSNET_OK && desc) {
    d.source = desc->source; d.source_labels = desc->source_labels; d.target = desc->target; d.target_labels = desc->target_labels;
    d.parallel = desc->parallel; d.progress = desc->progress; d.progress_user = desc->progress_user;
    d.seconds = desc->seconds; d.seconds_user = desc->seconds_user;
    if (desc->epochs) d.epochs = desc->epochs;
  }
  d.out_dir = dir;
  if (r == LENSNET_OK) r = lensnet__adapt_setup(&a, m, &d, err);
  if (r == LENSNET_OK && lensnet__adapt_settings_meta(&a, m) != LENSNET_OK) r = lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory");
  if (r == LENSNET_OK) r = lensnet__fingerprint_check(&st, "adapt.data_fingerprint", m, err);
  if (r == LENSNET_OK) r = lensnet__adapt_restore(&a, &st, err);
  if (r != LENSNET_OK) lensnet__prefix_path(err, path);
  else if ((r = lensnet__run_write_history(a.d.out_dir, a.history, a.history_len, err)) == LENSNET_OK) r = lensnet__adapt_run(&a, err);
  if (r == LENSNET_OK) lensnet__adapt_finish(&a);
  lensnet__adapt_free(&a);
  lensnet_safetensors_free(&st);
  if (r == LENSNET_OK) *out = m;
  else lensnet_model_free(m);
  return r;
}

/* ---- preparing cutouts --------------------------------------------------------------------- */

/* Source coordinate of output index i (align_corners=False), clamped at 0 as PyTorch does. */
static void lensnet__bilinear_index(size_t i, size_t in, size_t out, size_t *i0, size_t *i1, float *frac) {
  float scale = (float)in / (float)out, s = ((float)i + 0.5f) * scale - 0.5f;
  if (s < 0) s = 0;
  *i0 = (size_t)s;
  if (*i0 > in - 1) *i0 = in - 1;
  *i1 = *i0 + (*i0 < in - 1 ? 1 : 0);
  *frac = s - (float)*i0;
}

LENSNET_API void lensnet_resize_bilinear(const float *src, size_t h, size_t w, float *dst, size_t out_h, size_t out_w) {
  size_t y, x;
  if (h == 0 || w == 0) { /* nothing to sample: an empty picture resizes to zeros */
    for (y = 0; y < out_h * out_w; y++) dst[y] = 0.0f;
    return;
  }
  for (y = 0; y < out_h; y++) {
    size_t y0, y1;
    float fy;
    lensnet__bilinear_index(y, h, out_h, &y0, &y1, &fy);
    for (x = 0; x < out_w; x++) {
      size_t x0, x1;
      float fx, top, bottom;
      lensnet__bilinear_index(x, w, out_w, &x0, &x1, &fx);
      top = (1.0f - fx) * src[y0 * w + x0] + fx * src[y0 * w + x1];
      bottom = (1.0f - fx) * src[y1 * w + x0] + fx * src[y1 * w + x1];
      dst[y * out_w + x] = (1.0f - fy) * top + fy * bottom;
    }
  }
}

/* Whether a float is NaN or infinite, NaN alone, from its bits: comparisons such as v != v are
 * folded away by -ffast-math (-ffinite-math-only), which would let blank pixels through unseen. */
static int lensnet__blank(float v) {
  uint32_t u;
  memcpy(&u, &v, sizeof u);
  return (u & 0x7f800000u) == 0x7f800000u;
}
static int lensnet__nan_bits(float v) {
  uint32_t u;
  memcpy(&u, &v, sizeof u);
  return (u & 0x7fffffffu) > 0x7f800000u;
}

/* lensnet_resize_bilinear for a plane with blank (non-finite) pixels: each output is the weighted
 * mean of its finite neighbours, the bilinear weights renormalised over them, so a blank pixel
 * does not blank the outputs it shares with finite ones. An output none of whose neighbours of
 * positive weight is finite takes the value of the heaviest of them (NaN stays NaN, an infinity
 * stays infinite), so blank areas keep their size instead of growing by the interpolation. */
static void lensnet__resize_bilinear_blanks(const float *src, size_t h, size_t w, float *dst, size_t out_h, size_t out_w) {
  size_t y, x, k;
  for (y = 0; y < out_h; y++) {
    size_t y0, y1;
    float fy;
    lensnet__bilinear_index(y, h, out_h, &y0, &y1, &fy);
    for (x = 0; x < out_w; x++) {
      size_t x0, x1;
      float fx, v[4], wt[4], sum = 0.0f, total = 0.0f, heaviest = -1.0f, fallback = 0.0f;
      int blank = 0;
      lensnet__bilinear_index(x, w, out_w, &x0, &x1, &fx);
      v[0] = src[y0 * w + x0], v[1] = src[y0 * w + x1], v[2] = src[y1 * w + x0], v[3] = src[y1 * w + x1];
      wt[0] = (1.0f - fy) * (1.0f - fx), wt[1] = (1.0f - fy) * fx, wt[2] = fy * (1.0f - fx), wt[3] = fy * fx;
      for (k = 0; k < 4; k++) {
        if (wt[k] <= 0.0f) continue;
        if (!lensnet__blank(v[k])) sum += wt[k] * v[k], total += wt[k];
        else if (wt[k] > heaviest) heaviest = wt[k], fallback = v[k];
      }
      for (k = 0; k < 4; k++) blank |= lensnet__blank(v[k]); /* weight 0 times NaN is NaN too */
      if (!blank) { /* all four finite: the bits of lensnet_resize_bilinear */
        float top = (1.0f - fx) * v[0] + fx * v[1], bottom = (1.0f - fx) * v[2] + fx * v[3];
        dst[y * out_w + x] = (1.0f - fy) * top + fy * bottom;
      } else dst[y * out_w + x] = total > 0.0f ? sum / total : fallback;
    }
  }
}

/* A comma-separated list of exactly `count` numbers into v. */
static int lensnet__number_list(const char *text, size_t count, double *v) {
  size_t k;
  const char *p = text;
  for (k = 0; k < count; k++) {
    char *end;
    v[k] = strtod(p, &end);
    if (end == p || !(v[k] - v[k] == 0.0) || (k + 1 < count ? *end != ',' : *end != 0)) return 0;
    p = end + 1;
  }
  return 1;
}

LENSNET_API lensnet_result lensnet_model_regression(const lensnet_model *m, lensnet_regression *r, lensnet_error *err) {
  const char *names = lensnet_model_meta(m, "regress.targets"), *loss = lensnet_model_meta(m, "regress.loss");
  const char *means = lensnet_model_meta(m, "regress.mean"), *stds = lensnet_model_meta(m, "regress.std");
  const char *scales = lensnet_model_meta(m, "regress.scale");
  const char *slopes = lensnet_model_meta(m, "regress.slope"), *offsets = lensnet_model_meta(m, "regress.offset");
  size_t k;
  memset(r, 0, sizeof *r);
  if (!names) return lensnet__fail(err, LENSNET_ERR_ARG, "not a regression model (no regress.targets metadata)");
  if (!loss || !means || !stds) return lensnet__fail(err, LENSNET_ERR_FORMAT, "regression metadata incomplete (regress.loss, .mean, .std)");
  r->count = 1;
  for (k = 0; names[k]; k++) r->count += names[k] == ',';
  r->nll = !strcmp(loss, "nll");
  if (r->count > LENSNET_REGRESSION_MAX || (!r->nll && strcmp(loss, "mse")))
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "regress.targets/regress.loss '%.40s' not understood", loss);
  if (m->out_features != r->count * (r->nll ? 2 : 1))
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "%lu regression targets with loss %s, but the model has %lu outputs", (unsigned long)r->count,
                         loss, (unsigned long)m->out_features);
  if (!lensnet__number_list(means, r->count, r->mean) || !lensnet__number_list(stds, r->count, r->std))
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "regress.mean or regress.std is not %lu finite numbers", (unsigned long)r->count);
  for (k = 0; k < r->count; k++) r->scale[k] = r->slope[k] = 1.0;
  if (scales && !lensnet__number_list(scales, r->count, r->scale))
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "regress.scale is not %lu finite numbers", (unsigned long)r->count);
  if (slopes && !lensnet__number_list(slopes, r->count, r->slope))
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "regress.slope is not %lu finite numbers", (unsigned long)r->count);
  if (offsets && !lensnet__number_list(offsets, r->count, r->offset))
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "regress.offset is not %lu finite numbers", (unsigned long)r->count);
  for (k = 0; k < r->count; k++) {
    if (!(r->scale[k] > 0)) return lensnet__fail(err, LENSNET_ERR_FORMAT, "regress.scale of target %lu is not positive", (unsigned long)k);
    if (!(r->slope[k] > 0)) return lensnet__fail(err, LENSNET_ERR_FORMAT, "regress.slope of target %lu is not positive", (unsigned long)k);
    const char *name;
    size_t len;
    if (!(r->std[k] > 0)) return lensnet__fail(err, LENSNET_ERR_FORMAT, "regress.std of target %lu is not positive", (unsigned long)k);
    if (!lensnet__list_entry(names, k, &name, &len) || !len || len > 32)
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "regress.targets: name %lu is empty or longer than 32", (unsigned long)k);
    memcpy(r->names[k], name, len);
    r->names[k][len] = 0;
  }
  return LENSNET_OK;
}

LENSNET_API double lensnet_regression_physical(const lensnet_regression *r, size_t j, double z) {
  return r->offset[j] + r->slope[j] * (r->mean[j] + r->std[j] * z);
}

LENSNET_API void lensnet_regression_combine(const lensnet_regression *r, const float *outputs, size_t passes, size_t out_features,
                                            double *mean, double *sigma, double *aleatoric, double *epistemic) {
  size_t j, s;
  for (j = 0; j < r->count; j++) {
    double sum = 0, sq = 0, avar = 0, mu, evar;
    for (s = 0; s < passes; s++) sum += outputs[s * out_features + j];
    mu = passes ? sum / (double)passes : 0.0;
    for (s = 0; s < passes; s++) {
      double d = outputs[s * out_features + j] - mu;
      sq += d * d;
      if (r->nll) avar += exp(outputs[s * out_features + r->count + j]);
    }
    evar = passes > 1 ? sq / (double)passes : 0.0; /* the spread of the passes, as Gal's predictive variance */
    avar = passes ? avar / (double)passes : 0.0;
    mean[j] = lensnet_regression_physical(r, j, mu);
    if (sigma) sigma[j] = r->scale[j] * r->std[j] * sqrt(avar + evar);
    if (aleatoric) aleatoric[j] = r->std[j] * sqrt(avar);
    if (epistemic) epistemic[j] = r->std[j] * sqrt(evar);
  }
}

LENSNET_API void lensnet_regression_combine_plain(const lensnet_regression *r, const float *outputs, size_t passes, const float *plain,
                                                  size_t plain_passes, size_t out_features, double *mean, double *sigma,
                                                  double *aleatoric, double *epistemic) {
  size_t j, s;
  lensnet_regression_combine(r, outputs, passes, out_features, mean, sigma, aleatoric, epistemic);
  for (j = 0; plain_passes && j < r->count; j++) {
    double sum = 0;
    for (s = 0; s < plain_passes; s++) sum += plain[s * out_features + j];
    mean[j] = lensnet_regression_physical(r, j, sum / (double)plain_passes);
  }
}

LENSNET_API int lensnet_view_transform(size_t views, size_t k) { return views == 8 ? (int)(k % 8) : views == 2 ? (int)(k % 2) * 6 : 0; }

LENSNET_API int lensnet_view(const float *in, float *out, size_t bands, size_t h, size_t w, size_t views, size_t k) {
  size_t hw = h * w, c, p;
  int t = lensnet_view_transform(views, k);
  if (t == 0) memcpy(out, in, bands * hw * sizeof(float));
  else if (h == w) lensnet_dihedral(in, out, bands, w, t);
  else
    for (c = 0; c < bands; c++)
      for (p = 0; p < hw; p++) out[c * hw + p] = in[c * hw + hw - 1 - p];
  return t;
}

LENSNET_API uint64_t lensnet_mc_object_seed(uint64_t seed, uint64_t object) {
  uint64_t x = seed + 0x9E3779B97F4A7C15ull * (object + 1);
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

LENSNET_API void lensnet_dihedral(const float *in, float *out, size_t bands, size_t n, int t) {
  size_t hw = n * n, c, i, j;
  int tr = t & 1, rev_cols = (t >> 1) & 1, rev_rows = (t >> 2) & 1;
  for (c = 0; c < bands; c++)
    for (i = 0; i < n; i++)
      for (j = 0; j < n; j++) {
        size_t row = tr ? j : i, col = tr ? i : j;
        if (rev_rows) row = n - 1 - row;
        if (rev_cols) col = n - 1 - col;
        out[c * hw + i * n + j] = in[c * hw + row * n + col];
      }
}

/* How target `name` behaves under the flips and quarter turns: 's' invariant, 'x'/'y' a position's
 * coordinates, '1'/'2' a spin-2 pair's components; 0 for a name this does not know. */
static char lensnet__target_kind(const char *name) {
  static const char *const scalars[] = {"theta_E", "theta_E2", "sigma_v", "z_lens", "z_lens2", "z_source", "z_source2", "source_R",
                                        "source_n", "magnification", "magnification2", "arc_snr", "mag_source", "mag_source2", "mag_lens"};
  size_t k;
  for (k = 0; k < sizeof scalars / sizeof *scalars; k++)
    if (!strcmp(name, scalars[k])) return 's';
  if (!strcmp(name, "center_x") || !strcmp(name, "source_x")) return 'x';
  if (!strcmp(name, "center_y") || !strcmp(name, "source_y")) return 'y';
  if (!strcmp(name, "e1") || !strcmp(name, "gamma1")) return '1';
  if (!strcmp(name, "e2") || !strcmp(name, "gamma2")) return '2';
  return 0;
}

/* The index of the other coordinate of position target j (center_x <-> center_y, source_x <->
 * source_y), r->count if r lacks it. */
static size_t lensnet__target_partner(const lensnet_regression *r, size_t j) {
  char want[33];
  size_t k, len = strlen(r->names[j]);
  memcpy(want, r->names[j], len + 1);
  want[len - 1] = want[len - 1] == 'x' ? 'y' : 'x';
  for (k = 0; k < r->count && strcmp(r->names[k], want); k++) {}
  return k;
}

LENSNET_API lensnet_result lensnet_regression_symmetric(const lensnet_regression *r, lensnet_error *err) {
  return lensnet_regression_symmetric_views(r, 8, err);
}

LENSNET_API lensnet_result lensnet_regression_symmetric_views(const lensnet_regression *r, int views, lensnet_error *err) {
  size_t j;
  if (views != 2 && views != 8) return lensnet__fail(err, LENSNET_ERR_ARG, "symmetric views: %d views; 2 or 8", views);
  for (j = 0; j < r->count; j++) {
    char kind = lensnet__target_kind(r->names[j]);
    if (!kind)
      return lensnet__fail(err, LENSNET_ERR_ARG, "target '%s' has no known behaviour under flips and quarter turns "
                           "(known: theta_E and other scalars, e1/e2, gamma1/gamma2, center_x/center_y, source_x/source_y)", r->names[j]);
    if (views == 8 && (kind == 'x' || kind == 'y') && lensnet__target_partner(r, j) == r->count)
      return lensnet__fail(err, LENSNET_ERR_ARG, "target '%s' without its other coordinate: a quarter turn swaps the two", r->names[j]);
  }
  return LENSNET_OK;
}

LENSNET_API void lensnet_regression_turn_back(const lensnet_regression *r, int t, float *outputs) {
  int tr = t & 1, rev_cols = (t >> 1) & 1, rev_rows = (t >> 2) & 1;
  double mu[LENSNET_REGRESSION_MAX], lv[LENSNET_REGRESSION_MAX];
  size_t j, n = r->count;
  /* physical means and log-variances in the turned frame */
  for (j = 0; j < n; j++) {
    mu[j] = r->mean[j] + r->std[j] * outputs[j];
    lv[j] = r->nll ? outputs[n + j] + 2.0 * log(r->std[j]) : 0.0;
  }
  for (j = 0; j < n; j++) {
    char kind = lensnet__target_kind(r->names[j]);
    double m = mu[j], v = lv[j];
    if (kind == '1' && tr) m = -m;
    else if (kind == '2' && rev_cols != rev_rows) m = -m;
    else if (kind == 'x' || kind == 'y') {
      /* the original x is the turned y when transposed (reversed with the columns), else the turned x */
      size_t k = tr ? lensnet__target_partner(r, j) : j;
      int reversed = kind == 'x' ? rev_cols : rev_rows;
      if (k == n) continue;
      m = reversed ? -mu[k] : mu[k];
      v = lv[k];
    }
    outputs[j] = (float)((m - r->mean[j]) / r->std[j]);
    if (r->nll) outputs[n + j] = (float)(v - 2.0 * log(r->std[j]));
  }
}

LENSNET_API lensnet_result lensnet_regression_fit_means(const lensnet_regression *r, const double *const *truth, const double *const *mean, size_t n,
                                                        double *slope_out, double *offset_out, lensnet_error *err) {
  size_t j, k, i;
  if (n < 3) return lensnet__fail(err, LENSNET_ERR_ARG, "fit means: %lu objects; at least 3 are needed", (unsigned long)n);
  for (j = 0; j < r->count; j++)
    for (i = 0; i < n; i++)
      if (!(truth[j][i] - truth[j][i] == 0.0) || !(mean[j][i] - mean[j][i] == 0.0))
        return lensnet__fail(err, LENSNET_ERR_ARG, "fit means: %s of object %lu is not finite", r->names[j], (unsigned long)i);
  for (j = 0; j < r->count; j++) {
    char kind = lensnet__target_kind(r->names[j]);
    double a = 0.0, b;
    if (kind == 0 || kind == 's') { /* offset and slope: least squares about the means */
      double mx = 0, my = 0, sxx = 0, sxy = 0;
      for (i = 0; i < n; i++) { mx += mean[j][i]; my += truth[j][i]; }
      mx /= (double)n; my /= (double)n;
      for (i = 0; i < n; i++) {
        sxx += (mean[j][i] - mx) * (mean[j][i] - mx);
        sxy += (mean[j][i] - mx) * (truth[j][i] - my);
      }
      if (!(sxx > 0)) return lensnet__fail(err, LENSNET_ERR_ARG, "fit means: the predicted %s does not vary", r->names[j]);
      b = sxy / sxx;
      a = my - b * mx;
    } else { /* a slope through 0, shared with the pair's other component when the model has it */
      double sxx = 0, sxy = 0;
      size_t other = r->count, members[2];
      if (kind == 'x' || kind == 'y') other = lensnet__target_partner(r, j);
      else /* e1 <-> e2, gamma1 <-> gamma2: the same name with the last digit swapped */
        for (k = 0; k < r->count; k++) {
          size_t len = strlen(r->names[j]);
          if (k != j && strlen(r->names[k]) == len && !strncmp(r->names[k], r->names[j], len - 1) && lensnet__target_kind(r->names[k]) != kind &&
              lensnet__target_kind(r->names[k]) != 0) other = k;
        }
      members[0] = j; members[1] = other;
      for (k = 0; k < (other < r->count ? 2u : 1u); k++)
        for (i = 0; i < n; i++) {
          sxx += mean[members[k]][i] * mean[members[k]][i];
          sxy += mean[members[k]][i] * truth[members[k]][i];
        }
      if (!(sxx > 0)) return lensnet__fail(err, LENSNET_ERR_ARG, "fit means: the predicted %s is 0 throughout", r->names[j]);
      b = sxy / sxx;
    }
    if (!(b > 0) || !(b < HUGE_VAL))
      return lensnet__fail(err, LENSNET_ERR_ARG, "fit means: the true %s does not rise with the predicted one (slope %g): no correction fits",
                           r->names[j], b);
    /* the means given are offset + slope x m: the new ones a + b (offset + slope x m) */
    slope_out[j] = b * r->slope[j];
    offset_out[j] = a + b * r->offset[j];
  }
  return LENSNET_OK;
}

/* How many of x[0:n] are NaN or infinite: x - x is 0 for finite x, NaN for NaN and infinities.
 * Counted branch-free so that compilers vectorise it (training checks every pixel it is given). */
LENSNET__VECTORIZE static size_t lensnet__count_nonfinite_run(const float *x, size_t n) {
  size_t k, i, count = 0;
  for (k = 0; k < n; k += (size_t)1 << 20) { /* 32-bit counts in the lanes, a block at a time */
    size_t end = n - k < ((size_t)1 << 20) ? n : k + ((size_t)1 << 20);
    uint32_t c = 0;
    for (i = k; i < end; i++) c += x[i] - x[i] != 0.0f;
    count += c;
  }
  return count;
}
LENSNET_API size_t lensnet_count_nonfinite(const float *x, size_t n, size_t *first) {
  size_t count = lensnet__count_nonfinite_run(x, n), at = n;
  if (count)
    for (at = 0; at < n && x[at] - x[at] == 0.0f; at++) {}
  if (first) *first = at;
  return count;
}

LENSNET_API int lensnet_plane_empty(const float *plane, size_t n) {
  size_t p;
  float first = 0.0f;
  int seen = 0;
  for (p = 0; p < n; p++) {
    if (!(plane[p] - plane[p] == 0.0f)) continue; /* NaN or infinite */
    if (!seen) { first = plane[p]; seen = 1; }
    else if (plane[p] != first) return 0;
  }
  return 1;
}

/* The first value of x[0:n] that equals zero (there is one): a running minimum or maximum that
 * ends at zero took the first zero it met, +0 or -0, and lane-wise minima may hold another. */
static float lensnet__first_zero(const float *x, size_t n) {
  size_t i;
  for (i = 0; i < n && x[i] != 0.0f; i++) {}
  return i < n ? x[i] : 0.0f;
}

/* Smallest and largest non-NaN values of x[0:n] (+inf and -inf if none), as the sequential
 * `v < lo` / `v > hi` scan finds them, in 16 independent lanes that compilers vectorise. */
LENSNET__VECTORIZE static void lensnet__range_skip_nan(const float *x, size_t n, float *lo_out, float *hi_out) {
  float lo16[16], hi16[16], lo = INFINITY, hi = -INFINITY;
  size_t i, j;
  for (j = 0; j < 16; j++) { lo16[j] = INFINITY; hi16[j] = -INFINITY; }
  for (i = 0; i + 16 <= n; i += 16)
    for (j = 0; j < 16; j++) { /* a NaN changes nothing (tested by its bits: -ffast-math) */
      float v = x[i + j];
      int ok = !lensnet__nan_bits(v);
      lo16[j] = ok && v < lo16[j] ? v : lo16[j];
      hi16[j] = ok && v > hi16[j] ? v : hi16[j];
    }
  for (; i < n; i++) {
    if (lensnet__nan_bits(x[i])) continue;
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
  }
  for (j = 0; j < 16; j++) {
    if (lo16[j] < lo) lo = lo16[j];
    if (hi16[j] > hi) hi = hi16[j];
  }
  if (lo == 0.0f) lo = lensnet__first_zero(x, n);
  if (hi == 0.0f) hi = lensnet__first_zero(x, n);
  *lo_out = lo;
  *hi_out = hi;
}

/* x = (x - lo) / span, NaN to 0 (counted); span <= 0 (a constant band) makes every value 0. */
LENSNET__VECTORIZE static size_t lensnet__rescale_band(float *x, size_t n, float lo, float span, int constant) {
  size_t i, nans = 0;
  if (constant)
    for (i = 0; i < n; i++) { nans += (size_t)lensnet__nan_bits(x[i]); x[i] = 0.0f; }
  else
    for (i = 0; i < n; i++) {
      float v = x[i];
      int is_nan = lensnet__nan_bits(v);
      nans += (size_t)is_nan;
      x[i] = is_nan ? 0.0f : (v - lo) / span;
    }
  return nans;
}

LENSNET_API size_t lensnet_minmax_normalize(float *image, size_t bands, size_t hw) {
  size_t b, i, nans = 0;
  for (b = 0; b < bands; b++) {
    float *x = image + b * hw, lo, hi, span;
    lensnet__range_skip_nan(x, hw, &lo, &hi);
    span = hi - lo; /* a float: +inf when the span overflows, whatever precision the compiler evaluates in (s390x: double) */
    if (lensnet__blank(span) && !lensnet__blank(hi) && !lensnet__blank(lo)) {
      /* finite values whose span overflows a float (beyond ~3.4e38): the same in double */
      double dlo = lo, dspan = (double)hi - (double)lo;
      for (i = 0; i < hw; i++) {
        if (lensnet__nan_bits(x[i])) { x[i] = 0.0f; nans++; }
        else x[i] = (float)(((double)x[i] - dlo) / dspan);
      }
      continue;
    }
    nans += lensnet__rescale_band(x, hw, lo, span, !(hi > lo));
  }
  return nans;
}

/* ---- recipes: cutouts, classes, the streaming .npy writer, label columns ------------------- */

static lensnet_result lensnet__cutout_refuse(lensnet_cutout_report *rep, lensnet_cutout_issue issue) {
  rep->issue = issue;
  if (issue == LENSNET_CUTOUT_TOO_LARGE) return LENSNET_ERR_TOO_LARGE;
  return issue == LENSNET_CUTOUT_CHANNEL_COUNT || issue == LENSNET_CUTOUT_CHANNEL_MISSING ? LENSNET_ERR_ARG : LENSNET_ERR_SHAPE;
}

/* The checks of lensnet_cutout_prepare, in the order a user meets them; fills rep. */
static lensnet_result lensnet__cutout_check(const lensnet_model *m, const lensnet_cutout_desc *d, size_t bands, size_t h,
                                            size_t w, lensnet_cutout_report *rep, lensnet_error *err) {
  size_t c, b, used = 0;
  lensnet_result r;
  if (d->size != LENSNET_SIZE_EXACT && d->size != LENSNET_SIZE_RESIZE && d->size != LENSNET_SIZE_CROP)
    return lensnet__fail(err, LENSNET_ERR_ARG, "cutout: size %d is not LENSNET_SIZE_EXACT, _RESIZE or _CROP", (int)d->size);
  if (h == 0 || w == 0) {
    r = lensnet__cutout_refuse(rep, LENSNET_CUTOUT_EMPTY);
    return lensnet__fail(err, r, "the image is empty (%lux%lu)", (unsigned long)h, (unsigned long)w);
  }
  {
    size_t hw, all;
    if (!lensnet__mul_ok(h, w, &hw) || !lensnet__mul_ok(hw, bands, &all) || all > (size_t)-1 / sizeof(float))
      return lensnet__fail(err, lensnet__cutout_refuse(rep, LENSNET_CUTOUT_TOO_LARGE), "an image of %lu bands of %lux%lu pixels is larger than memory can address",
                           (unsigned long)bands, (unsigned long)h, (unsigned long)w);
  }
  if (d->channels && d->channel_count != m->in_c) {
    r = lensnet__cutout_refuse(rep, LENSNET_CUTOUT_CHANNEL_COUNT);
    return lensnet__fail(err, r, "the channel list names %lu bands but the model takes %lu", (unsigned long)d->channel_count,
                         (unsigned long)m->in_c);
  }
  for (c = 0; d->channels && c < m->in_c; c++)
    if (d->channels[c] >= bands) {
      r = lensnet__cutout_refuse(rep, LENSNET_CUTOUT_CHANNEL_MISSING);
      return lensnet__fail(err, r, "the channel list asks for band %lu but the image has %lu bands", (unsigned long)d->channels[c],
                           (unsigned long)bands);
    }
  if (!d->channels && bands < m->in_c) {
    r = lensnet__cutout_refuse(rep, LENSNET_CUTOUT_TOO_FEW_BANDS);
    return lensnet__fail(err, r, "the image has %lu band(s) but the model takes %lu", (unsigned long)bands, (unsigned long)m->in_c);
  }
  for (b = 0; b < bands; b++) {
    int is_used = !d->channels && b < m->in_c;
    for (c = 0; d->channels && c < m->in_c && !is_used; c++) is_used = d->channels[c] == b;
    used += is_used != 0;
  }
  rep->unused_bands = bands - used;
  if ((h != m->in_h || w != m->in_w) && d->size == LENSNET_SIZE_EXACT) {
    r = lensnet__cutout_refuse(rep, LENSNET_CUTOUT_SIZE);
    return lensnet__fail(err, r, "the image is %lux%lu but the model takes %lux%lu; resize or crop it", (unsigned long)h,
                         (unsigned long)w, (unsigned long)m->in_h, (unsigned long)m->in_w);
  }
  if (d->size == LENSNET_SIZE_CROP && (h < m->in_h || w < m->in_w)) {
    r = lensnet__cutout_refuse(rep, LENSNET_CUTOUT_CROP_TOO_SMALL);
    return lensnet__fail(err, r, "cannot crop a %lux%lu image to %lux%lu", (unsigned long)h, (unsigned long)w,
                         (unsigned long)m->in_h, (unsigned long)m->in_w);
  }
  return LENSNET_OK;
}

/* Counts the infinities of x[0:n] (returned) and NaNs (*nans), and replaces each infinity by
 * `inf_to`; x - x is 0 for finite x and NaN for NaN and infinities. Written so compilers
 * vectorise it. */
LENSNET__VECTORIZE static size_t lensnet__count_non_finite(float *x, size_t n, float inf_to, size_t *nans) {
  size_t k, infs = 0, nan_count = 0;
  for (k = 0; k < n; k++) {
    float v = x[k];
    int bad = lensnet__blank(v), is_nan = lensnet__nan_bits(v), is_inf = bad & !is_nan;
    infs += (size_t)is_inf;
    nan_count += (size_t)is_nan;
    x[k] = is_inf ? inf_to : v;
  }
  *nans = nan_count;
  return infs;
}

LENSNET_API lensnet_result lensnet_cutout_place(const lensnet_model *m, const lensnet_cutout_desc *desc, const float *image,
                                                size_t bands, size_t h, size_t w, float *out,
                                                lensnet_cutout_report *report, lensnet_error *err) {
  lensnet_cutout_desc d;
  lensnet_cutout_report rep;
  size_t hw, c, y;
  lensnet_result r;
  memset(&d, 0, sizeof d);
  memset(&rep, 0, sizeof rep);
  if (desc) d = *desc;
  if (report) *report = rep;
  if (!m || !image || !out) return lensnet__fail(err, LENSNET_ERR_ARG, "cutout: the model, image and output are required");
  r = lensnet__cutout_check(m, &d, bands, h, w, &rep, err);
  if (report) *report = rep;
  if (r != LENSNET_OK) return r;
  hw = m->in_h * m->in_w;
  for (c = 0; c < m->in_c; c++) {
    const float *band = image + (d.channels ? d.channels[c] : c) * h * w;
    float *dst = out + c * hw;
    if (h == m->in_h && w == m->in_w) memcpy(dst, band, hw * sizeof(float));
    else if (d.size == LENSNET_SIZE_CROP) {
      size_t y0 = (h - m->in_h) / 2, x0 = (w - m->in_w) / 2;
      for (y = 0; y < m->in_h; y++) memcpy(dst + y * m->in_w, band + (y0 + y) * w + x0, m->in_w * sizeof(float));
    } else {
      size_t k, blanks = 0;
      for (k = 0; k < h * w; k++) blanks += (size_t)lensnet__blank(band[k]);
      if (blanks) lensnet__resize_bilinear_blanks(band, h, w, dst, m->in_h, m->in_w);
      else lensnet_resize_bilinear(band, h, w, dst, m->in_h, m->in_w);
      if (report) report->filled_pixels += blanks;
    }
  }
  return LENSNET_OK;
}

LENSNET_API void lensnet_cutout_scale(const lensnet_model *m, const lensnet_cutout_desc *desc, float *x, lensnet_cutout_report *report) {
  size_t n = m->in_c * m->in_h * m->in_w, k, nan_pixels = 0, inf_pixels;
  if (desc && desc->minmax) { /* min-max skips NaN: infinities become NaN first */
    inf_pixels = lensnet__count_non_finite(x, n, (float)NAN, &nan_pixels);
    nan_pixels = lensnet_minmax_normalize(x, m->in_c, m->in_h * m->in_w) - inf_pixels;
  } else {
    inf_pixels = lensnet__count_non_finite(x, n, 0.0f, &nan_pixels);
    for (k = 0; k < n; k++) x[k] = lensnet__nan_bits(x[k]) ? 0.0f : x[k];
  }
  if (report) { report->nan_pixels = nan_pixels; report->inf_pixels = inf_pixels; }
}

LENSNET_API lensnet_result lensnet_image_dims(const lensnet_tensor *t, size_t *bands, size_t *h, size_t *w, lensnet_error *err) {
  size_t c = 1, y, x;
  if (!t || !bands || !h || !w) return lensnet__fail(err, LENSNET_ERR_ARG, "lensnet_image_dims needs a tensor and three sizes to fill (NULL given)");
  *bands = *h = *w = 0;
  if (t->ndim == 4 && t->shape[0] != 1)
    return lensnet__fail(err, LENSNET_ERR_SHAPE, "a batch of %lu images [%lu, %lu, %lu, %lu] is not one image: pick one", (unsigned long)t->shape[0],
                         (unsigned long)t->shape[0], (unsigned long)t->shape[1], (unsigned long)t->shape[2], (unsigned long)t->shape[3]);
  if (t->ndim < 2 || t->ndim > 4)
    return lensnet__fail(err, LENSNET_ERR_SHAPE, "an image has 2 axes [H, W], 3 [C, H, W] or 4 [1, C, H, W]; this tensor has %d", t->ndim);
  if (t->ndim >= 3) c = t->shape[t->ndim - 3];
  y = t->shape[t->ndim - 2];
  x = t->shape[t->ndim - 1];
  *bands = c, *h = y, *w = x;
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_cutout_prepare(const lensnet_model *m, const lensnet_cutout_desc *desc, const float *image,
                                                  size_t bands, size_t h, size_t w, float *out,
                                                  lensnet_cutout_report *report, lensnet_error *err) {
  lensnet_cutout_report rep;
  lensnet_result r = lensnet_cutout_place(m, desc, image, bands, h, w, out, &rep, err);
  if (r == LENSNET_OK) lensnet_cutout_scale(m, desc, out, &rep);
  if (report) *report = rep;
  return r;
}

/* ---- recipes: scanning fields ----------------------------------------------------------------- */

static lensnet_scan_desc lensnet__scan_resolve(const lensnet_scan_desc *desc, size_t win_w) {
  lensnet_scan_desc d;
  memset(&d, 0, sizeof d);
  if (desc) d = *desc;
  if (!d.stride) d.stride = win_w / 4 ? win_w / 4 : 1;
  if (d.threshold == 0.0) d.threshold = 0.5;
  if (d.threshold < 0.0) d.threshold = 0.0;
  if (d.nms_radius == 0.0) d.nms_radius = 0.5 * (double)win_w;
  return d;
}


LENSNET_API lensnet_result lensnet_cutout_score(const lensnet_model *m, const lensnet_cutout_desc *desc, const float *image,
                                                size_t bands, size_t h, size_t w, float *prepared, float *workspace,
                                                float *logits, double *p_lens, lensnet_cutout_report *report,
                                                lensnet_error *err) {
  lensnet_result r;
  size_t lens = 0;
  if (!m || !prepared || !logits) return lensnet__fail(err, LENSNET_ERR_ARG, "cutout_score: NULL %s", !m ? "model" : !prepared ? "prepared" : "logits");
  if ((r = lensnet_cutout_prepare(m, desc, image, bands, h, w, prepared, report, err)) != LENSNET_OK) return r;
  if ((r = lensnet_model_forward(m, 1, prepared, logits, workspace, err)) != LENSNET_OK) return r;
  if (p_lens) {
    lensnet_model_class_index(m, "lens", &lens, NULL); /* cannot fail: the model has outputs */
    *p_lens = lensnet_lens_probability(logits, m->out_features, lens);
  }
  return LENSNET_OK;
}
LENSNET_API lensnet_result lensnet_scan_grid_of(const lensnet_model *m, const lensnet_scan_desc *desc, size_t bands, size_t h,
                                                size_t w, lensnet_scan_grid *g, lensnet_error *err) {
  lensnet_scan_desc d;
  size_t c;
  memset(g, 0, sizeof *g);
  if (!m) return lensnet__fail(err, LENSNET_ERR_ARG, "scan: no model");
  d = lensnet__scan_resolve(desc, m->in_w);
  if (d.channels && d.channel_count != m->in_c)
    return lensnet__fail(err, LENSNET_ERR_ARG, "scan: the channel list names %lu bands but the model takes %lu", (unsigned long)d.channel_count,
                         (unsigned long)m->in_c);
  for (c = 0; d.channels && c < m->in_c; c++)
    if (d.channels[c] >= bands)
      return lensnet__fail(err, LENSNET_ERR_ARG, "scan: the channel list asks for band %lu but the image has %lu bands",
                           (unsigned long)d.channels[c], (unsigned long)bands);
  if (!d.channels && bands < m->in_c)
    return lensnet__fail(err, LENSNET_ERR_SHAPE, "scan: the image has %lu band(s) but the model takes %lu", (unsigned long)bands,
                         (unsigned long)m->in_c);
  if (h < m->in_h || w < m->in_w)
    return lensnet__fail(err, LENSNET_ERR_SHAPE, "scan: the image is %lux%lu, smaller than the model's %lux%lu window", (unsigned long)h,
                         (unsigned long)w, (unsigned long)m->in_h, (unsigned long)m->in_w);
  g->stride = d.stride;
  g->win_h = m->in_h;
  g->win_w = m->in_w;
  g->rows = (h - m->in_h + d.stride - 1) / d.stride + 1; /* the last flush with the edge */
  g->cols = (w - m->in_w + d.stride - 1) / d.stride + 1;
  g->last_x = w - m->in_w;
  g->last_y = h - m->in_h;
  return LENSNET_OK;
}

/* The top-left corner of column c (row r) of a grid: c * stride, the last flush with the edge. */
static size_t lensnet__scan_x0(const lensnet_scan_grid *g, size_t c) { return c + 1 >= g->cols ? g->last_x : c * g->stride; }
static size_t lensnet__scan_y0(const lensnet_scan_grid *g, size_t r) { return r + 1 >= g->rows ? g->last_y : r * g->stride; }

/* What the workers of a scan share. */
typedef struct {
  const lensnet_model *m;
  lensnet_scan_desc d;
  lensnet_scan_grid g;
  const float *image;
  size_t h, w, lens_class, per_worker;
  float *scratch;        /* per worker: window, outputs, model workspace */
  float *map;
  int failed;
} lensnet__scan;

/* The window of m's input size with top-left pixel (x0, y0) of image [.., h, w] as m's input in
 * `in`, prepared as lensnet_cutout_prepare would. */
static void lensnet__window_cut(const lensnet_model *m, const size_t *channels, int minmax, const float *image, size_t h,
                                size_t w, size_t x0, size_t y0, float *in) {
  size_t hw = m->in_h * m->in_w, c, y, k;
  for (c = 0; c < m->in_c; c++) {
    const float *band = image + (channels ? channels[c] : c) * h * w;
    for (y = 0; y < m->in_h; y++) memcpy(in + c * hw + y * m->in_w, band + (y0 + y) * w + x0, m->in_w * sizeof(float));
  }
  for (k = 0; k < m->in_c * hw; k++) /* x - x is 0 for finite x: infinities become NaN, which min-max skips */
    if (in[k] - in[k] != 0.0f) in[k] = minmax ? (float)NAN : 0.0f;
  if (minmax) lensnet_minmax_normalize(in, m->in_c, hw);
}

/* Window (row, col) of a scan as the model's input in `in`. */
static void lensnet__scan_window(const lensnet__scan *s, size_t row, size_t col, float *in) {
  lensnet__window_cut(s->m, s->d.channels, s->d.minmax, s->image, s->h, s->w, lensnet__scan_x0(&s->g, col), lensnet__scan_y0(&s->g, row), in);
}

/* One row of windows, each scored alone. */
static void lensnet__scan_row(void *ctx, size_t row, size_t worker) {
  lensnet__scan *s = LENSNET__CAST(lensnet__scan *, ctx);
  const lensnet_model *m = s->m;
  float *in = s->scratch + worker * s->per_worker, *out = in + m->in_c * m->in_h * m->in_w, *ws = out + m->out_features;
  size_t col;
  for (col = 0; col < s->g.cols; col++) {
    lensnet__scan_window(s, row, col, in);
    if (lensnet_model_forward(m, 1, in, out, ws, NULL) != LENSNET_OK) { s->failed = 1; return; }
    s->map[row * s->g.cols + col] = (float)lensnet_lens_probability(out, m->out_features, s->lens_class);
  }
}

LENSNET_API lensnet_result lensnet_scan_map(const lensnet_model *m, const lensnet_scan_desc *desc, const float *image, size_t bands,
                                            size_t h, size_t w, float *map, lensnet_error *err) {
  lensnet__scan s;
  size_t workers, total, row;
  lensnet_result r;
  if (!m || !image || !map) return lensnet__fail(err, LENSNET_ERR_ARG, "scan: the model, image and map are required");
  memset(&s, 0, sizeof s);
  if ((r = lensnet_scan_grid_of(m, desc, bands, h, w, &s.g, err)) != LENSNET_OK) return r;
  s.m = m;
  s.d = lensnet__scan_resolve(desc, m->in_w);
  s.image = image;
  s.h = h;
  s.w = w;
  s.map = map;
  lensnet_model_class_index(m, "lens", &s.lens_class, NULL);
  workers = s.d.parallel && s.d.parallel->run && s.d.parallel->workers ? s.d.parallel->workers : 1;
  s.per_worker = m->in_c * m->in_h * m->in_w + m->out_features + lensnet_model_workspace_floats(m, 1);
  s.per_worker = (s.per_worker + 15) / 16 * 16; /* each worker's block on its own cache lines */
  if (!lensnet__mul_ok(s.per_worker, workers, &total) || !lensnet__mul_ok(total, sizeof(float), &total) ||
      !(s.scratch = LENSNET__CAST(float *, LENSNET_MALLOC(total))))
    return lensnet__fail(err, LENSNET_ERR_NOMEM, "scan: out of memory for %lu workers", (unsigned long)workers);
  if (workers > 1) s.d.parallel->run(s.d.parallel->user, s.g.rows, lensnet__scan_row, &s);
  else for (row = 0; row < s.g.rows && !s.failed; row++) lensnet__scan_row(&s, row, 0);
  LENSNET_FREE(s.scratch);
  if (s.failed) return lensnet__fail(err, LENSNET_ERR_ARG, "scan: a forward pass failed");
  return LENSNET_OK;
}

/* Whether map cell (r, c) is a local maximum: >= its neighbours, > those before it in row-major
 * order (so a plateau gives one peak). */
static int lensnet__scan_peak(const float *map, const lensnet_scan_grid *g, size_t r, size_t c) {
  float v = map[r * g->cols + c];
  long dr, dc;
  for (dr = -1; dr <= 1; dr++)
    for (dc = -1; dc <= 1; dc++) {
      long rr = (long)r + dr, cc = (long)c + dc;
      float u;
      if ((!dr && !dc) || rr < 0 || cc < 0 || rr >= (long)g->rows || cc >= (long)g->cols) continue;
      u = map[(size_t)rr * g->cols + (size_t)cc];
      if (u > v || (u == v && (dr < 0 || (dr == 0 && dc < 0)))) return 0;
    }
  return 1;
}

/* The position of window (r, c): its centre, or the p_lens-weighted centroid of its and its
 * neighbours' centres. */
static void lensnet__scan_position(const float *map, const lensnet_scan_grid *g, size_t r, size_t c, int refine, double *x, double *y) {
  double sx = 0, sy = 0, sw = 0, half_w = 0.5 * ((double)g->win_w - 1), half_h = 0.5 * ((double)g->win_h - 1);
  long dr, dc;
  *x = (double)lensnet__scan_x0(g, c) + half_w;
  *y = (double)lensnet__scan_y0(g, r) + half_h;
  if (!refine) return;
  for (dr = -1; dr <= 1; dr++)
    for (dc = -1; dc <= 1; dc++) {
      long rr = (long)r + dr, cc = (long)c + dc;
      double p;
      if (rr < 0 || cc < 0 || rr >= (long)g->rows || cc >= (long)g->cols) continue;
      p = map[(size_t)rr * g->cols + (size_t)cc];
      if (!(p > 0)) continue;
      sx += p * ((double)lensnet__scan_x0(g, (size_t)cc) + half_w);
      sy += p * ((double)lensnet__scan_y0(g, (size_t)rr) + half_h);
      sw += p;
    }
  if (sw > 0) { *x = sx / sw; *y = sy / sw; }
}

LENSNET_API size_t lensnet_scan_detect(const float *map, const lensnet_scan_grid *g, const lensnet_scan_desc *desc,
                                       lensnet_detection *out, size_t cap) {
  lensnet_scan_desc d = lensnet__scan_resolve(desc, g->win_w);
  size_t found = 0, r, c, k;
  double r2 = d.nms_radius * d.nms_radius;
  /* strongest first, by repeated selection: each round takes the best peak not yet considered
   * (peaks are few; no allocation) */
  float last = 2.0f;
  size_t last_index = 0;
  int have_last = 0;
  for (;;) {
    size_t best = (size_t)-1;
    float bv = -1.0f;
    double x, y;
    int kept = 1;
    for (r = 0; r < g->rows; r++)
      for (c = 0; c < g->cols; c++) {
        size_t i = r * g->cols + c;
        float v = map[i];
        if (!(v >= d.threshold) || !(v > bv || (v == bv && i < best))) continue;
        /* after the previous pick (v, index) in the order: larger v first, then smaller index */
        if (have_last && (v > last || (v == last && i <= last_index))) continue;
        if (!lensnet__scan_peak(map, g, r, c)) continue;
        best = i;
        bv = v;
      }
    if (best == (size_t)-1) break;
    last = bv;
    last_index = best;
    have_last = 1;
    lensnet__scan_position(map, g, best / g->cols, best % g->cols, !d.no_refine, &x, &y);
    for (k = 0; k < found && k < cap && d.nms_radius >= 0; k++) {
      double dx = out[k].x - x, dy = out[k].y - y;
      if (dx * dx + dy * dy <= r2) { kept = 0; break; }
    }
    if (!kept) continue;
    if (found < cap) {
      out[found].x = x;
      out[found].y = y;
      out[found].p_lens = bv;
      out[found].row = best / g->cols;
      out[found].col = best % g->cols;
      out[found].sigma_x = out[found].sigma_y = 0.0;
      out[found].p_verify = (float)NAN;
    }
    found++;
  }
  return found;
}

/* The locator's regression description and the outputs of center_x (*ix) and center_y (*iy);
 * LENSNET_ERR_ARG when it has no such targets or pixel_scale is not positive. */
static lensnet_result lensnet__locator_targets(const lensnet_model *locator, double pixel_scale, lensnet_regression *reg, size_t *ix,
                                               size_t *iy, lensnet_error *err) {
  lensnet_result r;
  size_t k;
  int have_x = 0, have_y = 0;
  if ((r = lensnet_model_regression(locator, reg, err)) != LENSNET_OK) {
    if (r == LENSNET_ERR_ARG) return lensnet__fail(err, LENSNET_ERR_ARG, "locate: the locator is not a regression model with targets center_x, center_y");
    return r;
  }
  for (k = 0; k < reg->count; k++) {
    if (!strcmp(reg->names[k], "center_x")) { *ix = k; have_x = 1; }
    if (!strcmp(reg->names[k], "center_y")) { *iy = k; have_y = 1; }
  }
  if (!have_x || !have_y) return lensnet__fail(err, LENSNET_ERR_ARG, "locate: the locator's targets do not include center_x and center_y");
  if (!(pixel_scale > 0)) return lensnet__fail(err, LENSNET_ERR_ARG, "locate: the pixel scale must be positive");
  return LENSNET_OK;
}

/* One prediction of a checked locator (lensnet__locator_targets) on its prepared input. */
static lensnet_result lensnet__locate_prepared(const lensnet_model *locator, const lensnet_regression *reg, size_t ix, size_t iy,
                                               const float *prepared, double pixel_scale, float *workspace, lensnet_location *out,
                                               lensnet_error *err) {
  float z[2 * LENSNET_REGRESSION_MAX]; /* lensnet_model_regression checked out_features: the targets, or twice them */
  double mean[LENSNET_REGRESSION_MAX], sigma[LENSNET_REGRESSION_MAX];
  lensnet_result r;
  if ((r = lensnet_model_forward(locator, 1, prepared, z, workspace, err)) != LENSNET_OK) return r;
  lensnet_regression_combine(reg, z, 1, locator->out_features, mean, sigma, NULL, NULL);
  out->center_x = mean[ix];
  out->center_y = mean[iy];
  out->x = 0.5 * ((double)locator->in_w - 1) + mean[ix] / pixel_scale;
  out->y = 0.5 * ((double)locator->in_h - 1) + mean[iy] / pixel_scale;
  out->sigma_x = sigma[ix] / pixel_scale;
  out->sigma_y = sigma[iy] / pixel_scale;
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_cutout_locate(const lensnet_model *locator, const float *prepared, double pixel_scale,
                                                 float *workspace, lensnet_location *out, lensnet_error *err) {
  lensnet_regression reg;
  lensnet_result r;
  size_t ix = 0, iy = 0;
  if (!locator || !prepared || !out) return lensnet__fail(err, LENSNET_ERR_ARG, "locate: NULL argument");
  if ((r = lensnet__locator_targets(locator, pixel_scale, &reg, &ix, &iy, err)) != LENSNET_OK) return r;
  return lensnet__locate_prepared(locator, &reg, ix, iy, prepared, pixel_scale, workspace, out, err);
}

/* The probability that N(mu, sigma) falls in [k - 1/2, k + 1/2] for k = 0 .. n - 1 into p[k]. */
static void lensnet__pixel_probabilities(double mu, double sigma, size_t n, double *p) {
  size_t k;
  if (!(sigma > 0)) {
    for (k = 0; k < n; k++) p[k] = (mu >= (double)k - 0.5 && mu < (double)k + 0.5) ? 1.0 : 0.0;
    return;
  }
  for (k = 0; k < n; k++) {
    double a = ((double)k - 0.5 - mu) / (sigma * sqrt(2.0)), b = ((double)k + 0.5 - mu) / (sigma * sqrt(2.0));
    /* the difference of two erfc on the far side keeps its precision in the tails */
    p[k] = a > 0 ? 0.5 * (erfc(a) - erfc(b)) : b < 0 ? 0.5 * (erfc(-b) - erfc(-a)) : 0.5 * (erf(b) - erf(a));
  }
}

LENSNET_API void lensnet_location_map(const lensnet_location *at, double weight, size_t h, size_t w, float *map) {
  double px[1024], py[1024];
  size_t i, j;
  if (!at || !map) return;
  for (i = 0; i < h; i++) {
    double yi;
    if (i % 1024 == 0) lensnet__pixel_probabilities(at->y - (double)i, at->sigma_y, h - i < 1024 ? h - i : 1024, py);
    yi = weight * py[i % 1024];
    for (j = 0; j < w; j++) {
      if (j % 1024 == 0) lensnet__pixel_probabilities(at->x - (double)j, at->sigma_x, w - j < 1024 ? w - j : 1024, px);
      map[i * w + j] = (float)(yi * px[j % 1024]);
    }
  }
}

/* The top-left pixel of a window of side `win` centred as near position `pos` as the image
 * (side `len`) allows. */
static size_t lensnet__window_start(double pos, size_t win, size_t len) {
  double start = floor(pos - 0.5 * ((double)win - 1) + 0.5);
  if (start < 0) start = 0;
  if (start > (double)(len - win)) start = (double)(len - win);
  return (size_t)start;
}

LENSNET_API lensnet_result lensnet_scan_verify(const lensnet_model *verifier, int minmax, double threshold,
                                               const lensnet_scan_desc *desc, const float *image, size_t bands, size_t h,
                                               size_t w, lensnet_detection *det, size_t *count, lensnet_error *err) {
  lensnet_scan_grid g;
  lensnet_scan_desc d;
  lensnet_result r;
  size_t k, kept = 0, lens = 0, floats;
  float *in, *out, *ws;
  if (!verifier || !image || !det || !count) return lensnet__fail(err, LENSNET_ERR_ARG, "verify: NULL argument");
  if ((r = lensnet_scan_grid_of(verifier, desc, bands, h, w, &g, err)) != LENSNET_OK) return r;
  d = lensnet__scan_resolve(desc, verifier->in_w);
  lensnet_model_class_index(verifier, "lens", &lens, NULL);
  floats = verifier->in_c * verifier->in_h * verifier->in_w + verifier->out_features + lensnet_model_workspace_floats(verifier, 1);
  if (!(in = LENSNET__CAST(float *, LENSNET_MALLOC(floats * sizeof(float))))) return lensnet__fail(err, LENSNET_ERR_NOMEM, "verify: out of memory");
  out = in + verifier->in_c * verifier->in_h * verifier->in_w;
  ws = out + verifier->out_features;
  for (k = 0; k < *count; k++) {
    size_t x0 = lensnet__window_start(det[k].x, verifier->in_w, w), y0 = lensnet__window_start(det[k].y, verifier->in_h, h);
    double p;
    lensnet__window_cut(verifier, d.channels, minmax, image, h, w, x0, y0, in);
    if ((r = lensnet_model_forward(verifier, 1, in, out, ws, err)) != LENSNET_OK) { LENSNET_FREE(in); return r; }
    p = lensnet_lens_probability(out, verifier->out_features, lens);
    if (!(p >= threshold)) continue;
    det[kept] = det[k];
    det[kept].p_verify = (float)p;
    kept++;
  }
  LENSNET_FREE(in);
  *count = kept;
  return LENSNET_OK;
}

/* The locator's prediction averaged over the 8 symmetries of its square input: transform t
 * (lensnet_dihedral) of `prepared` into `turned`, one
 * prediction, its offsets turned back (a reversed axis negates its offset, the transpose swaps
 * them). Means averaged; variances combined as a mixture of the eight. */
static lensnet_result lensnet__locate_symmetric(const lensnet_model *locator, const lensnet_regression *reg, size_t ix, size_t iy,
                                                const float *prepared, double pixel_scale, float *turned, float *workspace,
                                                lensnet_location *out, lensnet_error *err) {
  double mx = 0, my = 0, mxx = 0, myy = 0, vx = 0, vy = 0;
  int t;
  for (t = 0; t < 8; t++) {
    int tr = t & 1, rev_cols = (t >> 1) & 1, rev_rows = (t >> 2) & 1;
    lensnet_location at;
    double dx, dy, sx, sy;
    lensnet_result r;
    lensnet_dihedral(prepared, turned, locator->in_c, locator->in_w, t);
    if ((r = lensnet__locate_prepared(locator, reg, ix, iy, turned, pixel_scale, workspace, &at, err)) != LENSNET_OK) return r;
    /* untransposed: a reversed axis negates its offset; transposed: the turned image's columns are
     * the original's rows (reversed when the rows were) and its rows the original's columns */
    dx = tr ? (rev_cols ? -at.center_y : at.center_y) : (rev_cols ? -at.center_x : at.center_x);
    dy = tr ? (rev_rows ? -at.center_x : at.center_x) : (rev_rows ? -at.center_y : at.center_y);
    sx = tr ? at.sigma_y : at.sigma_x;
    sy = tr ? at.sigma_x : at.sigma_y;
    mx += dx / 8; my += dy / 8; mxx += dx * dx / 8; myy += dy * dy / 8;
    vx += sx * sx / 8; vy += sy * sy / 8;
  }
  out->center_x = mx;
  out->center_y = my;
  out->x = 0.5 * ((double)locator->in_w - 1) + mx / pixel_scale;
  out->y = 0.5 * ((double)locator->in_h - 1) + my / pixel_scale;
  /* sigma in pixels already; the spread of the means in arcsec, over the pixel scale */
  out->sigma_x = sqrt(vx + (mxx - mx * mx > 0 ? mxx - mx * mx : 0) / (pixel_scale * pixel_scale));
  out->sigma_y = sqrt(vy + (myy - my * my > 0 ? myy - my * my : 0) / (pixel_scale * pixel_scale));
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_scan_locate(const lensnet_model *locator, const lensnet_locate_desc *locate,
                                               const lensnet_scan_desc *desc, const float *image, size_t bands, size_t h,
                                               size_t w, lensnet_detection *det, size_t *count, lensnet_error *err) {
  lensnet_regression reg;
  lensnet_scan_grid g;
  lensnet_scan_desc d;
  lensnet_result r;
  size_t ix = 0, iy = 0, k, j, pass, passes, kept = 0, floats, per;
  int sym;
  float *in, *ws, *turned;
  if (!locator || !locate || !image || !det || !count) return lensnet__fail(err, LENSNET_ERR_ARG, "locate: NULL argument");
  if ((r = lensnet__locator_targets(locator, locate->pixel_scale, &reg, &ix, &iy, err)) != LENSNET_OK) return r;
  if ((r = lensnet_scan_grid_of(locator, desc, bands, h, w, &g, err)) != LENSNET_OK) return r;
  d = lensnet__scan_resolve(desc, locator->in_w);
  passes = locate->passes ? locate->passes : 2;
  sym = locate->symmetries ? locate->symmetries : 1;
  if (sym != 1 && sym != 8) return lensnet__fail(err, LENSNET_ERR_ARG, "locate: symmetries is 1 or 8, not %d", sym);
  if (sym == 8 && locator->in_w != locator->in_h)
    return lensnet__fail(err, LENSNET_ERR_ARG, "locate: 8 symmetries need a square window; the locator's is %lux%lu", (unsigned long)locator->in_h,
                         (unsigned long)locator->in_w);
  per = locator->in_c * locator->in_h * locator->in_w;
  floats = per * (sym == 8 ? 2 : 1) + lensnet_model_workspace_floats(locator, 1);
  if (!(in = LENSNET__CAST(float *, LENSNET_MALLOC(floats * sizeof(float))))) return lensnet__fail(err, LENSNET_ERR_NOMEM, "locate: out of memory");
  turned = in + per;
  ws = in + per * (sym == 8 ? 2 : 1);
  for (k = 0; k < *count; k++) {
    double x = det[k].x, y = det[k].y;
    lensnet_location at;
    int dup = 0;
    memset(&at, 0, sizeof at);
    for (pass = 0; pass < passes; pass++) {
      size_t x0 = lensnet__window_start(x, locator->in_w, w), y0 = lensnet__window_start(y, locator->in_h, h);
      lensnet__window_cut(locator, d.channels, locate->minmax, image, h, w, x0, y0, in);
      r = sym == 8 && pass == passes - 1 ? lensnet__locate_symmetric(locator, &reg, ix, iy, in, locate->pixel_scale, turned, ws, &at, err)
                                         : lensnet__locate_prepared(locator, &reg, ix, iy, in, locate->pixel_scale, ws, &at, err);
      if (r != LENSNET_OK) {
        LENSNET_FREE(in);
        return r;
      }
      x = (double)x0 + at.x;
      y = (double)y0 + at.y;
    }
    for (j = 0; j < kept && d.nms_radius >= 0; j++) {
      double dx = det[j].x - x, dy = det[j].y - y;
      if (dx * dx + dy * dy <= d.nms_radius * d.nms_radius) { dup = 1; break; }
    }
    if (dup) continue;
    det[kept] = det[k];
    det[kept].x = x;
    det[kept].y = y;
    det[kept].sigma_x = at.sigma_x;
    det[kept].sigma_y = at.sigma_y;
    kept++;
  }
  LENSNET_FREE(in);
  *count = kept;
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_model_preprocess(const lensnet_model *m, int *minmax, const char **key, lensnet_error *err) {
  const char *v, *legacy;
  if (!m || !minmax) return lensnet__fail(err, LENSNET_ERR_ARG, "preprocess: the model and minmax are required (NULL given)");
  v = lensnet_model_meta(m, "preprocess");
  legacy = lensnet_model_meta(m, "train.minmax");
  *minmax = 0;
  if (key) *key = NULL;
  if (v) {
    if (strcmp(v, "none") && strcmp(v, "minmax"))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "the model asks for preprocess=%.64s, which is neither minmax nor none", v);
    *minmax = !strcmp(v, "minmax");
    if (key) *key = "preprocess";
  } else if (legacy && atof(legacy) == 1.0) {
    *minmax = 1;
    if (key) *key = "train.minmax";
  }
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_channels_parse(const char *text, size_t *channels, size_t cap, size_t *count,
                                                  lensnet_error *err) {
  const char *p = text;
  size_t n = 0;
  *count = 0;
  while (p && *p) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || v < 0 || v > 4096)
      return lensnet__fail(err, LENSNET_ERR_ARG, "channels '%.64s': expected band numbers 0..4096 such as 0,2,3", text);
    if (n == cap) return lensnet__fail(err, LENSNET_ERR_ARG, "channels '%.64s': more than %lu bands", text, (unsigned long)cap);
    channels[n++] = (size_t)v;
    p = end;
    if (*p == ',') p++;
    else if (*p) return lensnet__fail(err, LENSNET_ERR_ARG, "channels '%.64s': expected band numbers such as 0,2,3", text);
  }
  if (!n) return lensnet__fail(err, LENSNET_ERR_ARG, "channels: the list is empty");
  *count = n;
  return LENSNET_OK;
}

/* Entry k of a comma-separated list, blanks trimmed; 0 when the list has fewer entries. */
static int lensnet__list_entry(const char *list, size_t k, const char **start, size_t *len) {
  const char *p = list, *end;
  size_t i;
  for (i = 0; i < k; i++) {
    p = strchr(p, ',');
    if (!p) return 0;
    p++;
  }
  end = p + strcspn(p, ",\r\n");
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  while (end > p && (end[-1] == ' ' || end[-1] == '\t')) end--;
  *start = p;
  *len = (size_t)(end - p);
  return 1;
}

/* Index of the entry equal to name, or (size_t)-1. */
static size_t lensnet__list_find(const char *list, const char *name) {
  const char *s;
  size_t k, n, len = strlen(name);
  for (k = 0; list && lensnet__list_entry(list, k, &s, &n); k++)
    if (n == len && !memcmp(s, name, n)) return k;
  return (size_t)-1;
}

/* Entry k of a metadata list into buf, else the fallback text. */
static void lensnet__meta_entry(const lensnet_model *m, const char *key, size_t k, char *buf, size_t cap, const char *fallback) {
  const char *list = lensnet_model_meta(m, key), *s;
  size_t n;
  if (list && lensnet__list_entry(list, k, &s, &n) && n) {
    if (n > cap - 1) n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = 0;
  } else snprintf(buf, cap, fallback, (unsigned long)k);
}

LENSNET_API lensnet_result lensnet_model_class_index(const lensnet_model *m, const char *name, size_t *index,
                                                     lensnet_error *err) {
  size_t k;
  if (!m || !name || !index) return lensnet__fail(err, LENSNET_ERR_ARG, "class index: the model, the class name and index are required (NULL given)");
  if (!m->out_features) return lensnet__fail(err, LENSNET_ERR_ARG, "class '%.64s': the model has no outputs", name);
  k = lensnet__list_find(lensnet_model_meta(m, "classes"), name);
  *index = k < m->out_features ? k : m->out_features - 1;
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_model_class_name(const lensnet_model *m, size_t k, char *buf, size_t cap,
                                                    lensnet_error *err) {
  if (!m || k >= m->out_features || !buf || !cap)
    return lensnet__fail(err, LENSNET_ERR_ARG, "class %lu: not an output of the model", (unsigned long)k);
  lensnet__meta_entry(m, "classes", k, buf, cap, "%lu");
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_model_band_name(const lensnet_model *m, size_t k, char *buf, size_t cap,
                                                   lensnet_error *err) {
  if (!m || k >= m->in_c || !buf || !cap)
    return lensnet__fail(err, LENSNET_ERR_ARG, "band %lu: not an input band of the model", (unsigned long)k);
  lensnet__meta_entry(m, "band_names", k, buf, cap, "band %lu");
  return LENSNET_OK;
}

/* Equality of two band names, ASCII case and surrounding blanks ignored, of a[0, na) and b[0, nb). */
static int lensnet__same_text(const char *a, size_t na, const char *b, size_t nb) {
  size_t k;
  if (na != nb) return 0;
  for (k = 0; k < na; k++) {
    char x = a[k], y = b[k];
    if (x >= 'a' && x <= 'z') x = (char)(x - 32);
    if (y >= 'a' && y <= 'z') y = (char)(y - 32);
    if (x != y) return 0;
  }
  return 1;
}

/* Whether two band names name one band: equal (ASCII case and surrounding blanks aside), or one is
 * the other's part after an instrument prefix ("NISP_Y" and "Y", "HSC_g" and "g"). */
static int lensnet__same_band(const char *a, const char *b) {
  size_t na, nb, k;
  while (*a == ' ') a++;
  while (*b == ' ') b++;
  for (na = strlen(a); na && a[na - 1] == ' '; na--) continue;
  for (nb = strlen(b); nb && b[nb - 1] == ' '; nb--) continue;
  if (lensnet__same_text(a, na, b, nb)) return 1;
  for (k = na; k > 0 && a[k - 1] != '_'; k--) continue;
  if (k > 0 && lensnet__same_text(a + k, na - k, b, nb)) return 1;
  for (k = nb; k > 0 && b[k - 1] != '_'; k--) continue;
  return k > 0 && lensnet__same_text(a, na, b + k, nb - k);
}

/* The name of item i (a file's FILTER or a plane's BANDi) into buf; 0 when it has none. */
typedef int (*lensnet__band_name_fn)(const void *ctx, size_t i, char *buf, size_t cap);

static lensnet_result lensnet__band_slots(const lensnet_model *m, size_t count, lensnet__band_name_fn name_of, const void *ctx,
                                          const char *what, const char *const *items, const char *cube, size_t *slot, int *by_name,
                                          lensnet_error *err) {
  char given[72], name[72];
  size_t i, k, *item_of = NULL;
  int named;
  for (i = 0; i < count; i++) slot[i] = i;
  *by_name = 0;
  named = count == m->in_c && lensnet_model_meta(m, "band_names") != NULL;
  if (!named) return LENSNET_OK;
  if (!(item_of = (size_t *)LENSNET_MALLOC(count * sizeof *item_of))) return lensnet__fail(err, LENSNET_ERR_NOMEM, "band names: out of memory");
  for (k = 0; k < count; k++) item_of[k] = count;
  for (i = 0; named && i < count; i++) {
    named = name_of(ctx, i, given, sizeof given) && given[0];
    for (k = 0; named && k < count; k++) {
      lensnet_model_band_name(m, k, name, sizeof name, NULL);
      if (lensnet__same_band(given, name)) break;
    }
    if (!named || k == count) { named = 0; break; }
    if (item_of[k] < count) {
      lensnet_result r;
      if (items)
        r = lensnet__fail(err, LENSNET_ERR_FORMAT, "%s and %s both have %s = '%s'; the model takes %lu bands, each once", items[item_of[k]],
                          items[i], what, given, (unsigned long)count);
      else
        r = lensnet__fail(err, LENSNET_ERR_FORMAT, "%s: planes %lu and %lu are both band '%s' (BAND%lu, BAND%lu); the model takes %lu bands, "
                          "each once", cube, (unsigned long)item_of[k] + 1, (unsigned long)i + 1, given,
                          (unsigned long)item_of[k] + 1, (unsigned long)i + 1, (unsigned long)count);
      LENSNET_FREE(item_of);
      return r;
    }
    item_of[k] = i;
    slot[i] = k;
  }
  LENSNET_FREE(item_of);
  if (!named)
    for (i = 0; i < count; i++) slot[i] = i;
  *by_name = named;
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_band_names_normalize(const char *text, char *out, size_t cap, size_t *count, lensnet_error *err) {
  const char *p = text;
  size_t n = 0, at = 0, k;
  if (!text || !out || !cap) return lensnet__fail(err, LENSNET_ERR_ARG, "band names: the text and somewhere to write them are required");
  out[0] = 0;
  if (count) *count = 0;
  if ((unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF) p += 3; /* a UTF-8 byte-order mark */
  while (*p) { /* names separated by commas or line ends, blanks around each dropped */
    const char *e = p, *q;
    size_t len;
    while (*e && *e != ',' && *e != '\n' && *e != '\r') e++;
    while (p < e && (*p == ' ' || *p == '\t')) p++;
    len = (size_t)(e - p);
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
    if (len) {
      if (n == 64 || len > 71) return lensnet__fail(err, LENSNET_ERR_FORMAT, "band names: more than 64, or one longer than 71 characters");
      /* the same band twice (by lensnet_band_names_match) */
      for (q = out, k = 0; k < n; k++) {
        char prev[72];
        size_t pl = strcspn(q, ",");
        memcpy(prev, q, pl);
        prev[pl] = 0;
        {
          char cur[72];
          memcpy(cur, p, len);
          cur[len] = 0;
          if (lensnet__same_band(prev, cur))
            return lensnet__fail(err, LENSNET_ERR_FORMAT, "band names %.120s,%s: bands %lu and %lu are both '%s'", out, cur, (unsigned long)k + 1,
                                 (unsigned long)n + 1, cur);
        }
        q += pl + (q[pl] == ',');
      }
      if (at + len + 2 > cap) return lensnet__fail(err, LENSNET_ERR_FORMAT, "band names: longer than %lu characters", (unsigned long)cap - 1);
      at += (size_t)snprintf(out + at, cap - at, "%s%.*s", n ? "," : "", (int)len, p);
      n++;
    } else if (*e == ',') {
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "band names %.120s: band %lu has no name (two commas, or one first)", n ? out : "''",
                           (unsigned long)n + 1);
    }
    p = *e ? e + 1 : e;
    if (*e == ',' && !*p) break; /* a trailing comma */
  }
  if (!n) return lensnet__fail(err, LENSNET_ERR_FORMAT, "band names: none given (the text is empty)");
  if (count) *count = n;
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_band_pick(const lensnet_model *m, const char *names, size_t planes, size_t *pick, int *by_name,
                                             lensnet_error *err) {
  char list[64 * 72 + 64], want[72], got[72];
  size_t n = 0, k, j;
  lensnet_result r;
  if (!m || !pick || !by_name) return lensnet__fail(err, LENSNET_ERR_ARG, "band pick: the model, pick and by_name are required");
  *by_name = 0;
  for (k = 0; k < m->in_c; k++) pick[k] = k;
  if (!names || !lensnet_model_meta(m, "band_names")) return LENSNET_OK;
  if ((r = lensnet_band_names_normalize(names, list, sizeof list, &n, err)) != LENSNET_OK) return r;
  if (n != planes)
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "%lu band name%s (%.120s) for an image of %lu plane%s", (unsigned long)n, n == 1 ? "" : "s",
                         list, (unsigned long)planes, planes == 1 ? "" : "s");
  for (k = 0; k < m->in_c; k++) {
    const char *q = list;
    lensnet_model_band_name(m, k, want, sizeof want, NULL);
    for (j = 0; j < k; j++) { /* a model naming one band twice cannot be fed by name */
      lensnet_model_band_name(m, j, got, sizeof got, NULL);
      if (lensnet__same_band(got, want))
        return lensnet__fail(err, LENSNET_ERR_FORMAT, "the model's band_names %.80s name band '%s' twice", lensnet_model_meta(m, "band_names"), want);
    }
    for (j = 0; j < n; j++) {
      size_t len = strcspn(q, ",");
      memcpy(got, q, len);
      got[len] = 0;
      if (lensnet__same_band(got, want)) break;
      q += len + 1;
    }
    if (j == n)
      return lensnet__fail(err, LENSNET_ERR_SHAPE, "the model's band '%s' (band_names %.60s) is not among the image's planes, %.120s", want,
                           lensnet_model_meta(m, "band_names"), list);
    pick[k] = j;
  }
  *by_name = 1;
  return LENSNET_OK;
}

typedef struct { const char *const *paths; int hdu; } lensnet__filter_ctx;

static int lensnet__file_filter(const void *ctx, size_t i, char *buf, size_t cap) {
  const lensnet__filter_ctx *c = (const lensnet__filter_ctx *)ctx;
  /* the image's own HDU, else the primary header (HST and others keep FILTER there; fpack moves a
   * primary image's cards to HDU 1) */
  return lensnet_fits_header_value(c->paths[i], c->hdu > 0 ? c->hdu : 0, "FILTER", buf, cap, NULL) == LENSNET_OK ||
         lensnet_fits_header_value(c->paths[i], c->hdu > 0 ? 0 : 1, "FILTER", buf, cap, NULL) == LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_fits_band_slots(const lensnet_model *m, const char *const *paths, size_t count, int hdu,
                                                   size_t *slot, int *by_filter, lensnet_error *err) {
  lensnet__filter_ctx c;
  size_t i;
  if (!m || !paths || !slot || !by_filter || !count)
    return lensnet__fail(err, LENSNET_ERR_ARG, "band files: the model, the paths, slot, by_filter and a count above 0 are required");
  for (i = 0; i < count; i++)
    if (!paths[i]) return lensnet__fail(err, LENSNET_ERR_ARG, "band files: path %lu is NULL", (unsigned long)i);
  c.paths = paths;
  c.hdu = hdu;
  return lensnet__band_slots(m, count, lensnet__file_filter, &c, "FILTER", paths, NULL, slot, by_filter, err);
}

typedef struct { const char *path; int hdu; } lensnet__plane_ctx;

LENSNET_API int lensnet_fits_plane_name_memory(const void *bytes, size_t len, int hdu, size_t plane, char *buf, size_t cap) {
  char key[24], naxis[24];
  if (!bytes || !buf || !cap) return 0;
  snprintf(key, sizeof key, "BAND%lu", (unsigned long)plane + 1);
  if (hdu >= 0) return lensnet_fits_header_value_memory(bytes, len, hdu, key, buf, cap, NULL) == LENSNET_OK;
  /* the first HDU with pixels: the primary when its NAXIS > 0, else (an extension image, or a
   * tile-compressed one, whose cards fpack moves to HDU 1) HDU 1, then the primary's cards */
  if (lensnet_fits_header_value_memory(bytes, len, 0, "NAXIS", naxis, sizeof naxis, NULL) == LENSNET_OK && atoi(naxis) > 0)
    return lensnet_fits_header_value_memory(bytes, len, 0, key, buf, cap, NULL) == LENSNET_OK;
  return lensnet_fits_header_value_memory(bytes, len, 1, key, buf, cap, NULL) == LENSNET_OK ||
         lensnet_fits_header_value_memory(bytes, len, 0, key, buf, cap, NULL) == LENSNET_OK;
}

LENSNET_API int lensnet_fits_plane_name(const char *path, int hdu, size_t plane, char *buf, size_t cap) {
  unsigned char *bytes;
  size_t len;
  int named;
  if (!path || !buf || !cap || lensnet_fits_file_bytes(path, &bytes, &len, NULL) != LENSNET_OK) return 0;
  named = lensnet_fits_plane_name_memory(bytes, len, hdu, plane, buf, cap);
  LENSNET_FREE(bytes);
  return named;
}

LENSNET_API int lensnet_band_names_match(const char *a, const char *b) { return a && b && lensnet__same_band(a, b); }

static int lensnet__plane_band(const void *ctx, size_t i, char *buf, size_t cap) {
  const lensnet__plane_ctx *c = (const lensnet__plane_ctx *)ctx;
  return lensnet_fits_plane_name(c->path, c->hdu, i, buf, cap);
}

LENSNET_API lensnet_result lensnet_fits_cube_band_slots(const lensnet_model *m, const char *path, int hdu, size_t planes, size_t *slot,
                                                        int *by_name, lensnet_error *err) {
  lensnet__plane_ctx c;
  if (!m || !path || !slot || !by_name || !planes)
    return lensnet__fail(err, LENSNET_ERR_ARG, "cube bands: the model, the path, slot, by_name and planes above 0 are required");
  c.path = path;
  c.hdu = hdu;
  return lensnet__band_slots(m, planes, lensnet__plane_band, &c, "BAND", NULL, path, slot, by_name, err);
}

LENSNET_API lensnet_result lensnet_model_pixel_scale(const lensnet_model *m, double *arcsec, lensnet_error *err) {
  const char *text = m ? lensnet_model_meta(m, "pixel_scale") : NULL;
  char *end;
  double v;
  if (!arcsec) return lensnet__fail(err, LENSNET_ERR_ARG, "lensnet_model_pixel_scale needs a double to fill");
  *arcsec = 0.0;
  if (!m) return lensnet__fail(err, LENSNET_ERR_ARG, "no model given (NULL)");
  if (!text) return LENSNET_OK;
  v = strtod(text, &end);
  while (*end == ' ') end++;
  if (end == text || *end || !(v > 0.0) || v > 1e6)
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "metadata pixel_scale '%.40s' is not a positive number of arcseconds", text);
  *arcsec = v;
  return LENSNET_OK;
}

LENSNET_API double lensnet_lens_probability(const float *logits, size_t n_outputs, size_t lens_class) {
  double mx, sum = 0.0;
  size_t k;
  if (!logits || lens_class >= n_outputs) return NAN;
  if (n_outputs == 1) return 1.0 / (1.0 + exp(-(double)logits[0]));
  mx = logits[0];
  for (k = 1; k < n_outputs; k++) if (logits[k] > mx) mx = logits[k];
  for (k = 0; k < n_outputs; k++) sum += exp((double)logits[k] - mx);
  return exp((double)logits[lens_class] - mx) / sum;
}

LENSNET_API void lensnet_logits_average(const float *logits, size_t passes, size_t n_outputs, float *out) {
  double local[16], *mean = local, floor_log = log((double)FLT_MIN), rest = 0.0;
  size_t k, j;
  if (!passes || !n_outputs) return;
  if (n_outputs > 16 && !(mean = (double *)LENSNET_MALLOC(n_outputs * sizeof(double)))) {
    for (j = 0; j < n_outputs; j++) out[j] = NAN; /* out of memory */
    return;
  }
  for (j = 0; j < n_outputs; j++) mean[j] = 0.0;
  for (k = 0; k < passes; k++) {
    const float *z = logits + k * n_outputs;
    double mx = z[0], sum = 0.0;
    if (n_outputs == 1) { /* p and 1 - p summed apart, so that a logit of 40 is not lost to 1 - p rounding to 0 */
      mean[0] += 1.0 / (1.0 + exp(-(double)z[0]));
      rest += 1.0 / (1.0 + exp((double)z[0]));
      continue;
    }
    for (j = 1; j < n_outputs; j++) if (z[j] > mx) mx = z[j];
    for (j = 0; j < n_outputs; j++) sum += exp((double)z[j] - mx);
    for (j = 0; j < n_outputs; j++) mean[j] += exp((double)z[j] - mx) / sum;
  }
  for (j = 0; j < n_outputs; j++) {
    double p = mean[j] / (double)passes, v;
    if (n_outputs == 1) v = log(p) - log(rest / (double)passes);
    else v = log(p);
    out[j] = v != v ? (float)v : (float)(v > floor_log ? (v < -floor_log ? v : -floor_log) : floor_log); /* NaN stays NaN */
  }
  if (mean != local) LENSNET_FREE(mean);
}

/* Decimal digits of v into out (at least 21 bytes), whatever the width of unsigned long. */
static size_t lensnet__size_text(size_t v, char *out) {
  char rev[24];
  size_t n = 0, i;
  do { rev[n++] = (char)('0' + v % 10); v /= 10; } while (v);
  for (i = 0; i < n; i++) out[i] = rev[n - 1 - i];
  out[n] = 0;
  return n;
}

/* The .npy v1.0 header for a float32 array of this shape: magic, version, length, dictionary,
 * blanks to a multiple of 64 bytes (and to at least min_bytes, itself a multiple of 64), '\n'.
 * Returns its length. */
static size_t lensnet__npy_header(unsigned char *buf, int ndim, const size_t *shape, size_t min_bytes) {
  static const char head[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  size_t n = 10, total;
  int i;
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  memcpy(buf + n, head, sizeof head - 1);
  n += sizeof head - 1;
  for (i = 0; i < ndim; i++) {
    n += lensnet__size_text(shape[i], (char *)buf + n);
    if (ndim == 1 || i + 1 < ndim) { buf[n++] = ','; buf[n++] = ' '; }
  }
  memcpy(buf + n, "), }", 4);
  n += 4;
  total = (n + 1 + 63) / 64 * 64;
  if (total < min_bytes) total = min_bytes;
  while (n + 1 < total) buf[n++] = ' ';
  buf[n++] = '\n';
  buf[8] = (unsigned char)((n - 10) & 0xFF);
  buf[9] = (unsigned char)((n - 10) >> 8);
  return n;
}
/* Bytes a header may need: the dictionary with LENSNET_MAX_DIMS 20-digit sizes, rounded to 64. */
#define LENSNET__NPY_HEADER_CAP 320

LENSNET_API lensnet_result lensnet_npy_writer_begin(lensnet_npy_writer *w, const char *path, int ndim, const size_t *shape,
                                                    lensnet_error *err) {
  unsigned char header[LENSNET__NPY_HEADER_CAP];
  /* shown is zeroed: a 0-axis array reads none of it, but gcc 12 -O2 for aarch64 and s390x warns */
  size_t row_floats = 1, bytes, shown[LENSNET_MAX_DIMS] = {0};
  int i, open_rows;
  FILE *f;
  lensnet_result r;
  memset(w, 0, sizeof *w);
  if (ndim < 0 || ndim > LENSNET_MAX_DIMS || (ndim && !shape))
    return lensnet__fail(err, LENSNET_ERR_ARG, "%s: an .npy array needs 0 to %d dimensions, not %d", path, LENSNET_MAX_DIMS, ndim);
  open_rows = ndim > 0 && shape[0] == LENSNET_NPY_ROWS_UNKNOWN;
  for (i = 0; i < ndim; i++) shown[i] = shape[i];
  for (i = 1; i < ndim; i++)
    if (!lensnet__mul_ok(row_floats, shape[i], &row_floats))
      return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "%s: the array's shape overflows a size", path);
  if (!lensnet__mul_ok(row_floats, 4, &bytes) || (!open_rows && ndim && !lensnet__mul_ok(bytes, shape[0], &bytes)))
    return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "%s: the array's shape overflows a size", path);
  if (open_rows) shown[0] = LENSNET_NPY_ROWS_UNKNOWN; /* the widest count, so that any fits later */
  w->header_bytes = lensnet__npy_header(header, ndim, shown, 0);
  if (open_rows) { shown[0] = 0; w->header_bytes = lensnet__npy_header(header, ndim, shown, w->header_bytes); }
  if ((r = lensnet__atomic_open(path, &f, &w->paths, err)) != LENSNET_OK) return r;
  w->file = f;
  w->ndim = ndim;
  for (i = 0; i < ndim; i++) w->shape[i] = shape[i];
  w->row_floats = row_floats;
  if (fwrite(header, 1, w->header_bytes, f) != w->header_bytes || fflush(f) != 0) { /* a full disk shows at once */
    lensnet_npy_writer_abort(w);
    return lensnet__fail(err, LENSNET_ERR_IO, "%s.tmp: write failed (disk full?)", path);
  }
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_npy_writer_append(lensnet_npy_writer *w, const float *rows, size_t count, lensnet_error *err) {
  unsigned char buf[4096];
  size_t limit = w->ndim ? w->shape[0] : 1, floats, bytes, i, used = 0;
  FILE *f = (FILE *)w->file;
  if (!f) return lensnet__fail(err, LENSNET_ERR_ARG, "npy: the writer is not open");
  if (count > limit - w->rows || (count && !rows) || !lensnet__mul_ok(count, w->row_floats, &floats) ||
      !lensnet__mul_ok(floats, 4, &bytes)) {
    lensnet__fail(err, LENSNET_ERR_ARG, "%s: %lu more rows do not fit (%lu written%s)", w->paths, (unsigned long)count,
                  (unsigned long)w->rows, limit == LENSNET_NPY_ROWS_UNKNOWN ? "" : " of the shape's rows");
    lensnet_npy_writer_abort(w);
    return LENSNET_ERR_ARG;
  }
  for (i = 0; i < floats; i++) {
    lensnet__put_f32le(buf + used, rows[i]);
    used += 4;
    if (used == sizeof buf || i + 1 == floats) {
      if (fwrite(buf, 1, used, f) != used) {
        lensnet__fail(err, LENSNET_ERR_IO, "%s: write failed (disk full?)", lensnet__tmp_name(w->paths));
        lensnet_npy_writer_abort(w);
        return LENSNET_ERR_IO;
      }
      used = 0;
    }
  }
  w->rows += count;
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_npy_writer_finish(lensnet_npy_writer *w, int sync_to_disk, lensnet_error *err) {
  FILE *f = (FILE *)w->file;
  lensnet_result r;
  if (!f) return lensnet__fail(err, LENSNET_ERR_ARG, "npy: the writer is not open");
  if (w->ndim && w->shape[0] == LENSNET_NPY_ROWS_UNKNOWN) {
    unsigned char header[LENSNET__NPY_HEADER_CAP];
    size_t n;
    w->shape[0] = w->rows;
    n = lensnet__npy_header(header, w->ndim, w->shape, w->header_bytes);
    if (n != w->header_bytes || fseek(f, 0, SEEK_SET) != 0 || fwrite(header, 1, n, f) != n) {
      lensnet__fail(err, LENSNET_ERR_IO, "%s: cannot write the final header", lensnet__tmp_name(w->paths));
      lensnet_npy_writer_abort(w);
      return LENSNET_ERR_IO;
    }
  } else if (w->rows != (w->ndim ? w->shape[0] : 1)) {
    r = lensnet__fail(err, LENSNET_ERR_ARG, "%s: %lu rows written but the shape says %lu", w->paths, (unsigned long)w->rows,
                      (unsigned long)(w->ndim ? w->shape[0] : 1));
    lensnet_npy_writer_abort(w);
    return r;
  }
  r = lensnet__atomic_commit(&f, &w->paths, sync_to_disk, err);
  w->file = NULL;
  return r;
}

LENSNET_API void lensnet_npy_writer_abort(lensnet_npy_writer *w) {
  FILE *f;
  if (!w) return;
  f = (FILE *)w->file;
  lensnet__atomic_discard(&f, &w->paths);
  w->file = NULL;
}

LENSNET_API lensnet_result lensnet_csv_column(const char *header_line, const char *name, size_t *column, lensnet_error *err) {
  size_t k = header_line && name ? lensnet__list_find(header_line, name) : (size_t)-1;
  if (k == (size_t)-1) return lensnet__fail(err, LENSNET_ERR_ARG, "the CSV header has no column '%.64s'", name ? name : "");
  *column = k;
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_csv_label_column(const char *header_line, size_t *column, lensnet_error *err) {
  static const char *names[] = {"label", "class", "is_lens"};
  const char *s;
  size_t i, n;
  for (i = 0; i < 3; i++)
    if (lensnet_csv_column(header_line, names[i], column, NULL) == LENSNET_OK) return LENSNET_OK;
  if (header_line && !strchr(header_line, ',') && lensnet__list_entry(header_line, 0, &s, &n) && n) { *column = 0; return LENSNET_OK; }
  return lensnet__fail(err, LENSNET_ERR_FORMAT, "no column named label, class or is_lens in the header; columns found: %.400s",
                       header_line ? header_line : "");
}

/* ---- CSV tables ------------------------------------------------------------------------------ */

/* The parser's state: the input, read once from start to end, and the output text, which never
 * outgrows the input (each cell loses at least its separator to its NUL, except the last, which
 * takes the one extra byte). Cells are recorded as offsets and become pointers at the end. */
typedef struct {
  const unsigned char *in;
  size_t len, pos, line;
  char *out;
  size_t w;
  size_t *cell_at, cell_count, cell_cap; /* offsets of the cells' starts in out */
  size_t *lines, line_cap;
} lensnet__csv_parser;

static int lensnet__csv_push(size_t **list, size_t *count, size_t *cap, size_t value) {
  if (*count == *cap) {
    size_t ncap = *cap ? *cap * 2 : 256, bytes;
    size_t *n;
    if (ncap < *cap || !lensnet__mul_ok(ncap, sizeof(size_t), &bytes)) return 0;
    n = LENSNET__CAST(size_t *, LENSNET_REALLOC(*list, bytes));
    if (!n) return 0;
    *list = n;
    *cap = ncap;
  }
  (*list)[(*count)++] = value;
  return 1;
}

static int lensnet__csv_blank(int c) { return c == ' ' || c == '\t'; }

/* Whether the line starting at pos holds nothing but blanks (and a '\r'). */
static int lensnet__csv_blank_line(const lensnet__csv_parser *p) {
  size_t i;
  for (i = p->pos; i < p->len && p->in[i] != '\n'; i++)
    if (!lensnet__csv_blank(p->in[i]) && p->in[i] != '\r') return 0;
  return 1;
}

/* One cell from pos, up to (not past) the ',' or '\n' that ends it, or the end of the input. */
static lensnet_result lensnet__csv_cell(lensnet__csv_parser *p, lensnet_error *err) {
  size_t start = p->w, quote_line = p->line;
  while (p->pos < p->len && lensnet__csv_blank(p->in[p->pos])) p->pos++;
  if (p->pos < p->len && p->in[p->pos] == '"') {
    p->pos++;
    for (;;) {
      unsigned char c;
      if (p->pos >= p->len) return lensnet__fail(err, LENSNET_ERR_FORMAT, "line %lu: a quote opened here is never closed", (unsigned long)quote_line);
      c = p->in[p->pos++];
      if (c == 0) return lensnet__fail(err, LENSNET_ERR_FORMAT, "line %lu: a NUL byte (not a text file?)", (unsigned long)p->line);
      if (c == '"') {
        if (p->pos < p->len && p->in[p->pos] == '"') { p->out[p->w++] = '"'; p->pos++; continue; }
        break;
      }
      if (c == '\n') p->line++;
      p->out[p->w++] = (char)c;
    }
    while (p->pos < p->len && (lensnet__csv_blank(p->in[p->pos]) || p->in[p->pos] == '\r')) p->pos++;
    if (p->pos < p->len && p->in[p->pos] != ',' && p->in[p->pos] != '\n')
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "line %lu: text after the closing quote of a cell", (unsigned long)p->line);
  } else {
    while (p->pos < p->len && p->in[p->pos] != ',' && p->in[p->pos] != '\n') {
      if (p->in[p->pos] == 0) return lensnet__fail(err, LENSNET_ERR_FORMAT, "line %lu: a NUL byte (not a text file?)", (unsigned long)p->line);
      p->out[p->w++] = (char)p->in[p->pos++];
    }
    while (p->w > start && (lensnet__csv_blank((unsigned char)p->out[p->w - 1]) || p->out[p->w - 1] == '\r')) p->w--;
  }
  p->out[p->w++] = 0;
  if (!lensnet__csv_push(&p->cell_at, &p->cell_count, &p->cell_cap, start))
    return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory after %lu cells", (unsigned long)p->cell_count);
  return LENSNET_OK;
}

/* The rows, one per non-blank line (or more lines, when a quoted cell holds newlines). */
static lensnet_result lensnet__csv_rows(lensnet__csv_parser *p, size_t *rows, size_t *cols, lensnet_error *err) {
  lensnet_result r;
  size_t line_count = 0;
  *rows = *cols = 0;
  if (p->len >= 3 && p->in[0] == 0xEF && p->in[1] == 0xBB && p->in[2] == 0xBF) p->pos = 3;
  while (p->pos < p->len) {
    size_t first = p->cell_count, row_line = p->line, n;
    if (lensnet__csv_blank_line(p)) {
      while (p->pos < p->len && p->in[p->pos] != '\n') p->pos++;
      if (p->pos < p->len) { p->pos++; p->line++; }
      continue;
    }
    for (;;) {
      if ((r = lensnet__csv_cell(p, err)) != LENSNET_OK) return r;
      if (p->pos < p->len && p->in[p->pos] == ',') { p->pos++; continue; }
      break;
    }
    if (p->pos < p->len) { p->pos++; p->line++; } /* the '\n' */
    n = p->cell_count - first;
    if (*rows == 0) *cols = n;
    else if (n != *cols)
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "line %lu: %lu cell%s but the header has %lu", (unsigned long)row_line,
                           (unsigned long)n, n == 1 ? "" : "s", (unsigned long)*cols);
    if (!lensnet__csv_push(&p->lines, &line_count, &p->line_cap, row_line))
      return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory after %lu rows", (unsigned long)*rows);
    (*rows)++;
  }
  if (*rows == 0) return lensnet__fail(err, LENSNET_ERR_FORMAT, "empty: no header line");
  return LENSNET_OK;
}

LENSNET_API void lensnet_csv_free(lensnet_csv *table) {
  if (!table) return;
  if (table->text) LENSNET_FREE(table->text);
  if (table->cells) LENSNET_FREE(table->cells);
  if (table->lines) LENSNET_FREE(table->lines);
  if (table->header) LENSNET_FREE(table->header);
  memset(table, 0, sizeof *table);
}

LENSNET_API lensnet_result lensnet_csv_read_memory(const void *bytes, size_t len, lensnet_csv *table, lensnet_error *err) {
  lensnet__csv_parser p;
  lensnet_result r;
  size_t rows = 0, cols = 0, i, header_len = 1, at = 0, cell_bytes = 0;
  if (!table || (!bytes && len)) return lensnet__fail(err, LENSNET_ERR_ARG, "CSV: the bytes and the table are required (NULL given)");
  memset(table, 0, sizeof *table);
  memset(&p, 0, sizeof p);
  if (!bytes && len) return lensnet__fail(err, LENSNET_ERR_ARG, "csv: NULL input");
  if (len > (size_t)-1 - 1) return lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "csv: input too large");
  p.in = LENSNET__CAST(const unsigned char *, bytes);
  p.len = len;
  p.line = 1;
  p.out = LENSNET__CAST(char *, LENSNET_MALLOC(len + 1));
  if (!p.out) return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory for a %lu-byte table", (unsigned long)len);
  r = lensnet__csv_rows(&p, &rows, &cols, err);
  if (r == LENSNET_OK && !lensnet__mul_ok(p.cell_count, sizeof(char *), &cell_bytes))
    r = lensnet__fail(err, LENSNET_ERR_TOO_LARGE, "too many cells");
  if (r == LENSNET_OK && !(table->cells = LENSNET__CAST(char **, LENSNET_MALLOC(cell_bytes ? cell_bytes : 1))))
    r = lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory for %lu cells", (unsigned long)p.cell_count);
  if (r != LENSNET_OK) {
    LENSNET_FREE(p.out);
    if (p.cell_at) LENSNET_FREE(p.cell_at);
    if (p.lines) LENSNET_FREE(p.lines);
    memset(table, 0, sizeof *table);
    return r;
  }
  for (i = 0; i < p.cell_count; i++) table->cells[i] = p.out + p.cell_at[i];
  LENSNET_FREE(p.cell_at);
  table->text = p.out;
  table->lines = p.lines;
  table->rows = rows;
  table->cols = cols;
  for (i = 0; i < cols; i++) header_len += strlen(table->cells[i]) + 1;
  if (!(table->header = LENSNET__CAST(char *, LENSNET_MALLOC(header_len)))) {
    lensnet_csv_free(table);
    return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory for the header");
  }
  for (i = 0; i < cols; i++) {
    size_t n = strlen(table->cells[i]), k;
    if (i) table->header[at++] = ',';
    /* a comma inside a quoted name would split it into two columns of the joined line, and
     * every column after it would be found one place too far: it is shown as ';' here */
    for (k = 0; k < n; k++) table->header[at + k] = table->cells[i][k] == ',' ? ';' : table->cells[i][k];
    at += n;
  }
  table->header[at] = 0;
  return LENSNET_OK;
}

static lensnet_result lensnet__csv_parse(const unsigned char *bytes, size_t len, void *args, lensnet_error *err) {
  return lensnet_csv_read_memory(bytes, len, LENSNET__CAST(lensnet_csv *, args), err);
}

LENSNET_API lensnet_result lensnet_csv_read(const char *path, lensnet_csv *table, lensnet_error *err) {
  memset(table, 0, sizeof *table);
  return lensnet__parse_file(path, lensnet__csv_parse, table, err);
}

LENSNET_API const char *lensnet_csv_cell(const lensnet_csv *table, size_t row, size_t col) {
  if (!table || row >= table->rows || col >= table->cols) return NULL;
  return table->cells[row * table->cols + col];
}

LENSNET_API lensnet_result lensnet_csv_number(const lensnet_csv *table, size_t row, size_t col, double *value, lensnet_error *err) {
  const char *cell = lensnet_csv_cell(table, row, col);
  char *end;
  if (!cell) return lensnet__fail(err, LENSNET_ERR_ARG, "csv: no cell (%lu, %lu)", (unsigned long)row, (unsigned long)col);
  *value = strtod(cell, &end);
  if (end == cell || *end)
    return lensnet__fail(err, LENSNET_ERR_FORMAT, "line %lu: '%.40s' in column %.64s is not a number", (unsigned long)table->lines[row],
                         cell, table->cells[col]);
  return LENSNET_OK;
}

LENSNET_API lensnet_result lensnet_csv_object_rows(const lensnet_csv *table, size_t first, size_t n, size_t *row, lensnet_error *err) {
  size_t col = 0, r, rows;
  if (!table || !row || first > table->rows) return lensnet__fail(err, LENSNET_ERR_ARG, "csv: no table");
  rows = table->rows - first;
  if (rows != n)
    return lensnet__fail(err, LENSNET_ERR_SHAPE, "%lu label rows for %lu images", (unsigned long)rows, (unsigned long)n);
  if (first == 0 || lensnet_csv_column(table->header, "index", &col, NULL) != LENSNET_OK) {
    for (r = 0; r < n; r++) row[r] = first + r;
    return LENSNET_OK;
  }
  for (r = 0; r < n; r++) row[r] = (size_t)-1;
  for (r = first; r < table->rows; r++) {
    const char *cell = table->cells[r * table->cols + col];
    char *end;
    double v = strtod(cell, &end);
    size_t i;
    if (end == cell || *end || !(v >= 0 && v < (double)n) || v != floor(v))
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "line %lu: index '%.40s' is not an image of the %lu (0 to %lu); the index column "
                           "names the image of each row", (unsigned long)table->lines[r], cell, (unsigned long)n, (unsigned long)(n ? n - 1 : 0));
    i = (size_t)v;
    if (row[i] != (size_t)-1)
      return lensnet__fail(err, LENSNET_ERR_FORMAT, "line %lu: index %lu again (line %lu has it)", (unsigned long)table->lines[r],
                           (unsigned long)i, (unsigned long)table->lines[row[i]]);
    row[i] = r;
  }
  return LENSNET_OK; /* n distinct indices below n on n rows: every image has its row */
}

LENSNET_API lensnet_result lensnet_csv_class_labels(const lensnet_csv *table, size_t n, size_t classes, float *labels, lensnet_error *err) {
  size_t column = 0, first = 1, i, *row;
  lensnet_result r = LENSNET_OK;
  const char *c0 = lensnet_csv_cell(table, 0, 0);
  char *end;
  if (!c0 || !labels) return lensnet__fail(err, LENSNET_ERR_ARG, "csv: no table");
  strtod(c0, &end);
  if (table->cols == 1 && end != c0 && *end == 0) first = 0; /* a number, not a name: no header */
  else if ((r = lensnet_csv_label_column(table->header, &column, err)) != LENSNET_OK) return r;
  if (!(row = LENSNET__CAST(size_t *, LENSNET_MALLOC((n ? n : 1) * sizeof(size_t)))))
    return lensnet__fail(err, LENSNET_ERR_NOMEM, "out of memory for %lu labels", (unsigned long)n);
  if ((r = lensnet_csv_object_rows(table, first, n, row, err)) == LENSNET_OK)
    for (i = 0; i < n; i++) {
      double v = 0;
      if (lensnet_csv_number(table, row[i], column, &v, NULL) != LENSNET_OK || v != floor(v) || !(v >= 0 && v < (double)classes)) {
        r = lensnet__fail(err, LENSNET_ERR_FORMAT, "line %lu: class '%.40s' is not an integer from 0 to %lu", (unsigned long)table->lines[row[i]],
                          table->cells[row[i] * table->cols + column], (unsigned long)(classes ? classes - 1 : 0));
        break;
      }
      labels[i] = (float)v;
    }
  LENSNET_FREE(row);
  return r;
}

#endif /* LENSNET_IMPLEMENTATION */

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
