/* cli.h - the conventions every `lens` subcommand follows, in one place.
 *
 * Exit status: 0 success; 1 a failure (a file cannot be read or written, its content is wrong,
 * the computation failed); 2 a usage error (an unknown, missing or repeated option, a value out
 * of range or not among the accepted ones, including values the loaded model or file rejects
 * such as --layer, --target, --index, --channels).
 *
 * --out: missing parent directories are created. A file's format follows its extension, and
 * an extension the subcommand does not write is refused (exit 2) with the accepted ones named.
 * Subcommands whose --out is a folder (sim, train, explain) refuse a name with a file extension.
 *
 * Progress: a line with the rate and the time left, redrawn on stderr at most four times a
 * second, only when stderr is a terminal.
 *
 * Preprocessing: a model's metadata "preprocess" (minmax | none; older files: train.minmax = 1)
 * is applied unless --preprocess says otherwise, with a note on stderr. */
#ifndef LENS_CLI_H
#define LENS_CLI_H
#include <stddef.h>
#include <stdio.h>
#include "lensnet.h"
#include "options.h"

#define LENS_EXIT_OK 0
#define LENS_EXIT_FAIL 1
#define LENS_EXIT_USAGE 2

/* Prints "lens: <message>" to stderr and returns LENS_EXIT_USAGE. */
int lens_usage(const char *fmt, ...);

/* Creates `path` and any missing parent directories (mkdir -p). 0, or prints and returns 1. */
int lens_make_dirs(const char *path);
/* lens_make_dirs for a command's --out folder, noting in *made how much of `path` it created: the
 * length of the first folder it made (0: none, the folder was there). */
int lens_make_dirs_noted(const char *path, size_t *made);
/* After a failed run: removes the folders lens_make_dirs_noted made for `path`, innermost first,
 * each only if it is still empty (rmdir), so that a run that wrote nothing leaves nothing behind
 * and a folder that was there before, or holds a file, is never touched. */
void lens_remove_made_dirs(const char *path, size_t made);
/* --resume DIR of a run that has done `done` of its `total` epochs, asked for `asked` (0: not
 * given): 0 to go on; -1 when no epoch is left (the run is complete: the command writes its
 * history.csv again from the checkpoint and exits 0); LENS_EXIT_USAGE when --epochs is fewer than done. */
int lens_resume_epochs(const char *dir, int done, int total, int asked);
/* The line a resumed run prints ("resuming DIR after epoch N of M", or, complete, that there was
 * nothing to train: `total` is the run's own epochs, which --epochs N = done may be fewer than),
 * into buf. It is printed once the library has accepted the checkpoint and the data (the first
 * progress report, or the run's end), so that a refused resume says only why. */
void lens_resume_note(char *buf, size_t cap, const char *dir, int done, int total, int complete);
/* Creates the missing parent directories of the file `path`. 0, or prints and returns 1. */
int lens_make_parents(const char *path);
/* The same, noting in *made how much of the folder part it created (lens_make_dirs_noted), which
 * lens_remove_made_parents(path, made) takes away again (only folders this run made, if empty). */
int lens_make_parents_noted(const char *path, size_t *made);
void lens_remove_made_parents(const char *path, size_t made);

/* Output formats an --out name can ask for. */
typedef enum { LENS_FMT_NONE = 0, LENS_FMT_NPY = 1, LENS_FMT_FITS = 2, LENS_FMT_CSV = 4, LENS_FMT_PNG = 8 } lens_format;
/* The format named by the extension of `path` (.npy, .fits/.fit/.fts, .csv, .png; any case), or
 * LENS_FMT_NONE. */
lens_format lens_format_of(const char *path);
/* The format of `path` if it is among `accepted` (an OR of lens_format); otherwise prints
 * "<flag> PATH: ... accepted: .npy, .fits" and returns LENS_FMT_NONE (the caller exits 2). */
lens_format lens_out_format(const char *flag, const char *path, int accepted);
/* For --out options naming a folder: 0, or prints why a name with a file extension is refused
 * and returns LENS_EXIT_USAGE. */
int lens_out_folder(const char *flag, const char *path);
/* Writes one CSV cell: as it is, or, when it holds a comma, a double quote or a line break (a
 * file name may), in double quotes with each quote doubled (RFC 4180, as lensnet_csv_read reads). */
void lens_csv_cell(FILE *f, const char *cell);
/* Writes s as a JSON string: quoted, with " and \\ escaped and control characters as \\u00XX. */
void lens_json_string(FILE *f, const char *s);
/* For --out options writing a model: 0, or (usage error, LENS_EXIT_USAGE) why `path` is refused:
 * it does not end in .safetensors, or it is one of the `count` input files in `inputs` (NULL
 * entries skipped; the same name or, for files that exist, the same file) other than `may_be`
 * (an input the command may rewrite, or NULL). */
int lens_out_model(const char *flag, const char *path, const char *const *inputs, size_t count, const char *may_be);
/* lens_out_model's second test alone, for an output file of any kind: 0, or (usage error) `path`
 * is one of the inputs (the same name or the same existing file), which it would overwrite. */
int lens_out_not_input(const char *flag, const char *path, const char *const *inputs, size_t count, const char *may_be);
/* For --out folders: 0, or (usage error) why DIR/NAME, for one of the `nnames` files a command
 * writes there, is one of the `count` inputs (NULL entries skipped; the same name or the same file):
 * writing it would destroy that input. */
int lens_out_dir_inputs(const char *flag, const char *dir, const char *const *names, size_t nnames, const char *const *inputs, size_t count);
/* --resume DIR: 0 when DIR is a folder holding checkpoint.safetensors; else says what DIR is
 * instead (missing, a file, a folder without a checkpoint) and returns LENS_EXIT_FAIL. */
int lens_resume_dir(const char *dir);

/* A text file written atomically: lens_text_open opens `path.tmp` (its name into tmp, cap bytes),
 * lens_text_commit closes it and renames it over path, lens_text_discard closes and removes it.
 * Open and commit print why they failed and return NULL / LENS_EXIT_FAIL (the temporary is gone). */
FILE *lens_text_open(const char *path, char *tmp, size_t cap);
int lens_text_commit(FILE *f, const char *tmp, const char *path);
void lens_text_discard(FILE *f, const char *tmp);

/* --preprocess minmax|none (and --minmax): -1 not given, 0 none, 1 minmax. */
#define LENS_PREPROCESS_UNSET (-1)
/* The normalisation to apply: the flag if given, else the model's metadata (preprocess, or
 * train.minmax = 1 for older files), saying once on stderr when the model's choice is applied.
 * Returns 0 (none) or 1 (minmax), or -1 after printing an error (an unknown metadata value). */
/* lens_preprocess_resolve for a model called `whose` in the note ("the locator's", "the verifier's"). */
int lens_preprocess_resolve_of(const lensnet_model *m, int flag, const char *whose);
int lens_preprocess_resolve(const lensnet_model *m, int flag);

/* --locator PATH (lens find, lens predict): the locator loaded and checked as lensnet_scan_locate
 * and lensnet_cutout_locate need it (a regression model with the targets center_x and center_y,
 * a pixel_scale in its metadata: usage errors naming PATH), its pixel scale and its own
 * preprocessing (lens_preprocess_resolve of its metadata). Returns 0 or the exit status; *m is
 * the caller's to free, after a failure too. */
int lens_locator_open(const char *path, lensnet_model **m, double *pixel_scale, int *minmax);

/* The options of commands that read cutouts for a model (predict, explain): the same rows,
 * defaults and help in each (LENS_CUTOUT_OPTIONS). */
typedef struct {
  int preprocess;                     /* --preprocess / --minmax: LENS_PREPROCESS_UNSET, 0 none, 1 minmax */
  int resize, crop;                   /* --resize, --crop */
  int hdu;                            /* --hdu: -1 the first holding an image */
  size_t channels[64], channel_count; /* --channels: which input bands feed the model */
} lens_cutout_options;
extern const char *const lens_preprocess_choices[];
/* --channels LIST (lensnet_channels_parse) into a lens_cutout_options' channels. */
int lens_parse_channels(const lens_option *o, const char *label, const char *text, void *opts);
#define LENS_CUTOUT_OPTIONS(T, m) \
  LENS_CUSTOM(T, "channels", 0, m.channels, lens_parse_channels, "LIST", "input bands to feed the model, e.g. 0,2,3 (default: the first ones, or by\n" \
              "name for a FITS cube's BANDn cards and a .npy's bands.txt, which lens sim writes)"), \
  LENS_CHOICE(T, "preprocess", 0, m.preprocess, lens_preprocess_choices, LENS_PREPROCESS_UNSET, "P", \
              "minmax (per-image, per-band scaling to [0,1], Wilde et al. 2022) or none;\n" \
              "default: the model's metadata 'preprocess' (or train.minmax), said on stderr"), \
  LENS_FLAG(T, "minmax", m.preprocess, "the same as --preprocess minmax"), \
  LENS_FLAG(T, "resize", m.resize, "resample cutouts to the model's input size (bilinear, PyTorch convention)"), \
  LENS_FLAG(T, "crop", m.crop, "cut the central region of the model's input size instead"), \
  LENS_INT(T, "hdu", m.hdu, -1, 100000, -1, "K", "FITS HDU to read (default -1: the first holding an image; fpack's .fits.fz\n" \
           "keeps a primary image in HDU 1)")
/* The cutout desc the options ask for, with the normalisation `minmax` resolved. */
lensnet_cutout_desc lens_cutout_desc(const lens_cutout_options *o, int minmax);
/* 0, or LENS_EXIT_USAGE after saying that --resize and --crop exclude each other. */
int lens_cutout_check(const lens_cutout_options *o);

/* Cutouts (lensnet_cutout_prepare) with the tool's messages: problems with --channels are usage
 * errors (exit 2), the rest failures (exit 1); `label` names the object. When the input has more
 * bands than the model and no --channels was given, a note says which are used, once per
 * *note_shown (NULL: every time). Returns 0 or the exit status. */
int lens_cutout(const char *label, const lensnet_model *m, const lensnet_cutout_desc *d, const float *image, size_t bands,
                size_t h, size_t w, float *out, lensnet_cutout_report *report, int *note_shown);
/* The same checks and messages, but only lensnet_cutout_place: the caller scales the cutout
 * (lensnet_cutout_scale) later, e.g. in the task that runs its forward pass. */
int lens_cutout_place(const char *label, const lensnet_model *m, const lensnet_cutout_desc *d, const float *image, size_t bands,
                      size_t h, size_t w, float *out, lensnet_cutout_report *report, int *note_shown);
/* The note on stderr about NaN (blank) and infinite pixels set to 0, if there were any. */
void lens_cutout_note(size_t nan_pixels, size_t inf_pixels, size_t filled_pixels);
/* The lens predict settings that shape a regression model's sigmas, "--mc N --symmetries K
 * --mc-mean" (any order; defaults left out), written canonically into out[cap] ("one plain pass"
 * when all are defaults): what lens calibrate records (--predicted-with) and lens predict compares
 * with its own. 0 when text holds anything else. */
int lens_predict_settings(const char *text, char *out, size_t cap);
/* One object from `count` FITS files, one band each (lens predict --bands, lens explain --bands),
 * HDU `hdu` of each: *image [count, *h, *w] (malloc'd, the caller frees it). With by_filter, when
 * every file's FILTER header names one of the model's band_names (its metadata; case and blanks
 * aside), each once, the files go to the bands they name, whatever their order (a note says so
 * once, through *note_shown, when that order is not the given one); a FILTER named by two files
 * is refused; otherwise the files are taken in the order given. label[cap] gets "a+b+c";
 * plane_of (NULL or `count` entries) the plane each file went to. Returns 0 or the exit status,
 * the message said. */
int lens_read_band_files(const lensnet_model *m, char **paths, int count, int hdu, int by_filter, float **image, size_t *h, size_t *w,
                         char *label, size_t cap, int *note_shown, size_t *plane_of);
/* A FITS cube's `count` planes of hw pixels each, read from `path`, put in place into the model's
 * band order when its BAND1, BAND2, ... cards name the model's bands in another order
 * (lensnet_fits_cube_band_slots), with a note for each cube fed otherwise than the one before (by
 * name, in file order for want of names, as it is): *last (0 before the first cube) keeps how the
 * last was fed. 0, or the exit status (two planes naming one band). */
int lens_cube_by_band_names(const lensnet_model *m, const char *path, int hdu, float *planes, size_t count, size_t hw, int *last);
/* The names of a .npy stack's planes: X.bands.txt beside X.npy, else bands.txt beside an
 * images.npy (lens sim writes one: "VIS,Y,J,H"), normalised (lensnet_band_names_normalize) into
 * names; *found = 0 when there is none. 0, or the exit status (1: unreadable or malformed). */
int lens_npy_band_names(const char *npy_path, char *names, size_t cap, size_t *count, char *file, size_t file_cap, int *found);
/* How the planes of successive .npy inputs were fed, so that each input fed otherwise than the
 * one before gets a note. */
typedef struct { int inputs; char last[512]; } lens_band_notes;
/* The planes of a .npy stack of `planes` bands that feed the model's bands, by their names
 * (lens_npy_band_names; lensnet_band_pick): pick[k] is the plane of model band k, *by_name = 1
 * when the file and the model both name their bands. A note for the first input fed by name out
 * of file order and for each input fed otherwise than the one before (notes: NULL for none). 0,
 * or the exit status: a names file that cannot be read or does not fit the stack (1), a model band
 * the stack lacks (2, naming --channels). */
int lens_npy_band_pick(const lensnet_model *m, const char *npy_path, size_t planes, size_t *pick, int *by_name, lens_band_notes *notes);
/* The n images [in_c, hw] of a .npy stack with the model's band count put in place into the
 * model's band order by their names (lens_npy_band_pick), for the commands that read whole stacks
 * of the model's shape (lens quantize, lens adapt). 0 or the exit status. */
int lens_npy_planes_by_name(const lensnet_model *m, const char *npy_path, float *data, size_t n, size_t hw, lens_band_notes *notes);

/* An option row for the library setting s (lensnet_fit_settings, lensnet_adapt_settings) stored at
 * byte `offset` of the command's options and read by `parse` (which hands the text to the
 * library's parser); a flag takes no value. tool_default, when not NULL, replaces the library's
 * "(default X)" in the help, which is written into help[cap]. */
void lens_option_from_setting(lens_option *o, const lensnet_fit_setting *s, size_t offset, lens_option_parse_fn parse,
                              const char *tool_default, char *help, size_t cap);

/* Progress line. */
typedef struct {
  double start, last;   /* seconds (monotonic) */
  int enabled, shown;   /* stderr is a terminal; a line is on screen */
} lens_progress;
void lens_progress_start(lens_progress *p);
/* Redraws "LABEL [====    ] DONE/TOTAL RATE UNIT/s ETA M:SS EXTRA" when due (or when done ==
 * total). eta < 0: from the rate and total - done; the rate is done / elapsed. */
void lens_progress_show(lens_progress *p, const char *label, size_t done, size_t total, const char *unit, double eta,
                        const char *extra);
/* Ends the line (a newline) if one is on screen. */
void lens_progress_end(lens_progress *p);
/* The line itself, without "\r": what lens_progress_show prints. Returns the length. */
int lens_progress_format(char *buf, size_t cap, const char *label, size_t done, size_t total, const char *unit,
                         double elapsed, double eta, const char *extra);
double lens_seconds(void);
#endif
