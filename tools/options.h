/* options.h - the one option parser of every `lens` subcommand, driven by a table.
 *
 * Each subcommand writes each option once, as a row: its name, type, accepted range or choices,
 * default, metavar, help and the field of the command's options struct it fills. From that row
 * come the parsing (`--name value` and `--name=value`), the defaults, the --help text, the
 * validation messages (exit status 2, naming the option, the value and what is accepted) and,
 * for `lens train`, the read-back of saved options from a checkpoint (lens_option_set).
 *
 * Rules the parser applies to every subcommand:
 *   - --help or -h anywhere prints the help on standard output (the caller exits 0);
 *   - an argument starting with '-' (other than "-" alone) is an option; '-' and '_' in a name
 *     are alike (--val-fraction and --val_fraction);
 *   - an option given twice is refused, except lists (LENS_OPT_LIST), which may repeat;
 *   - the other arguments fill the positional rows in table order; an ARGS row takes the rest;
 *   - rows marked LENS_OPT_REQUIRED must be given. */
#ifndef LENS_OPTIONS_H
#define LENS_OPTIONS_H
#include <stdio.h>
#include <stddef.h>

typedef enum {
  LENS_OPT_FLAG,   /* int: 1 when given; takes no value */
  LENS_OPT_INT,    /* int: a whole number from lo to hi */
  LENS_OPT_SIZE,   /* size_t: a whole number from lo to hi */
  LENS_OPT_SEED,   /* unsigned long long: any whole number from 0 to 2^64 - 1 */
  LENS_OPT_DOUBLE, /* double: a number from lo to hi */
  LENS_OPT_FLOAT,  /* float: a number from lo to hi */
  LENS_OPT_TEXT,   /* const char *: the text itself (it points into argv) */
  LENS_OPT_CHOICE, /* int: the index of the value among the choices (any case); -1 when not given */
  LENS_OPT_LIST,   /* const char *[hi] and a size_t count: repeatable, at most hi times */
  LENS_OPT_ARGS,   /* positional, char ** and an int count: the positional arguments left, in order */
  LENS_OPT_CUSTOM  /* the row's parse function checks and stores the text */
} lens_opt_type;

#define LENS_OPT_REQUIRED 1u       /* must be given */
#define LENS_OPT_POSITIONAL 2u     /* a positional argument (name is its metavar); TEXT, CHOICE or ARGS */
#define LENS_OPT_SAVED 4u          /* lens train: saved in checkpoints as train.NAME and read back */
#define LENS_OPT_SAVED_OPTIONAL 8u /* saved; a checkpoint without it keeps the default */
#define LENS_OPT_NO_VALUE 16u      /* CUSTOM: takes no value; the parse function gets "1" */

typedef struct lens_option lens_option;
/* Checks `text` and stores it into opts; 0, or prints why (naming `label`, the option as the
 * user wrote it) and returns LENS_EXIT_USAGE. */
typedef int (*lens_option_parse_fn)(const lens_option *o, const char *label, const char *text, void *opts);

struct lens_option {
  const char *name;                 /* --name without the dashes; a positional's metavar */
  lens_opt_type type;
  unsigned flags;                   /* LENS_OPT_REQUIRED, ... */
  size_t offset;                    /* of the field in the command's options struct */
  size_t count_offset;              /* LIST: of its size_t count; ARGS: of its int count */
  double lo, hi;                    /* numbers: the accepted range; LIST: hi is the most values */
  double def;                       /* numbers, flags and choices (an index, -1: none): the default */
  const char *text_def;             /* TEXT: the default (NULL: none) */
  const char *const *choices;       /* CHOICE: the accepted values, NULL-terminated ... */
  const char *(*choice_at)(size_t i); /* ... or, for lists a header owns, the i-th (NULL past the end) */
  lens_option_parse_fn parse;       /* CUSTOM */
  const void *data;                 /* CUSTOM: whatever parse needs */
  const char *metavar;              /* the value's name in --help (NULL: flags) */
  const char *help;                 /* lines separated by '\n'; NULL hides the row from --help */
};

/* Rows, by type. T is the command's options struct. */
#define LENS_ROW(name, type, flags, T, field, lo, hi, def, metavar, help) \
  {name, type, flags, offsetof(T, field), 0, lo, hi, def, NULL, NULL, NULL, NULL, NULL, metavar, help}
#define LENS_FLAG(T, name, field, help) LENS_ROW(name, LENS_OPT_FLAG, 0, T, field, 0, 1, 0, NULL, help)
#define LENS_INT(T, name, field, lo, hi, def, metavar, help) LENS_ROW(name, LENS_OPT_INT, 0, T, field, lo, hi, def, metavar, help)
#define LENS_SIZE(T, name, field, lo, hi, def, metavar, help) LENS_ROW(name, LENS_OPT_SIZE, 0, T, field, lo, hi, def, metavar, help)
#define LENS_SEED(T, name, field, def, metavar, help) LENS_ROW(name, LENS_OPT_SEED, 0, T, field, 0, 0, def, metavar, help)
#define LENS_DOUBLE(T, name, field, lo, hi, def, metavar, help) LENS_ROW(name, LENS_OPT_DOUBLE, 0, T, field, lo, hi, def, metavar, help)
#define LENS_FLOAT(T, name, field, lo, hi, def, metavar, help) LENS_ROW(name, LENS_OPT_FLOAT, 0, T, field, lo, hi, def, metavar, help)
#define LENS_TEXT(T, name, flags, field, def, metavar, help) \
  {name, LENS_OPT_TEXT, flags, offsetof(T, field), 0, 0, 0, 0, def, NULL, NULL, NULL, NULL, metavar, help}
#define LENS_CHOICE(T, name, flags, field, choices, def, metavar, help) \
  {name, LENS_OPT_CHOICE, flags, offsetof(T, field), 0, 0, 0, def, NULL, choices, NULL, NULL, NULL, metavar, help}
#define LENS_CHOICE_AT(T, name, flags, field, choice_at, def, metavar, help) \
  {name, LENS_OPT_CHOICE, flags, offsetof(T, field), 0, 0, 0, def, NULL, NULL, choice_at, NULL, NULL, metavar, help}
#define LENS_LIST(T, name, field, count_field, most, metavar, help) LENS_LIST_FLAGS(T, name, 0, field, count_field, most, metavar, help)
/* A list with flags: LENS_OPT_REQUIRED, to be given at least once. */
#define LENS_LIST_FLAGS(T, name, flags, field, count_field, most, metavar, help) \
  {name, LENS_OPT_LIST, flags, offsetof(T, field), offsetof(T, count_field), 0, most, 0, NULL, NULL, NULL, NULL, NULL, metavar, help}
#define LENS_ARGS(T, name, flags, field, count_field, help) \
  {name, LENS_OPT_ARGS, (flags) | LENS_OPT_POSITIONAL, offsetof(T, field), offsetof(T, count_field), 0, 0, 0, NULL, NULL, NULL, NULL, \
   NULL, NULL, help}
#define LENS_CUSTOM(T, name, flags, field, parse, metavar, help) \
  {name, LENS_OPT_CUSTOM, flags, offsetof(T, field), 0, 0, 0, 0, NULL, NULL, NULL, parse, NULL, metavar, help}

typedef struct {
  const char *heading;              /* a line above the rows in --help, or NULL */
  const lens_option *rows;
  size_t count;
} lens_option_section;

typedef struct {
  const char *name;                 /* "predict": messages point to `lens predict --help` */
  const char *usage;                /* the usage line(s) */
  const char *intro;                /* text between the usage and the options, or NULL */
  void (*more)(FILE *f);            /* text after the intro known only at run time (a header's names), or NULL */
  const lens_option_section *sections;
  size_t section_count;
  const char *epilog;               /* text after the options, or NULL */
} lens_command_spec;

/* The most rows a command has, over all its sections. */
#define LENS_OPTIONS_MAX 64
/* Which rows were given, numbered over the sections in order. */
typedef struct { unsigned char row[LENS_OPTIONS_MAX]; } lens_options_given;

/* lens_options_parse after --help. */
#define LENS_OPTIONS_HELP (-1)

/* Sets every row's default (flags, lists and custom rows keep the caller's value: zero opts
 * first), then parses argv[1..argc-1] into opts. Returns 0, LENS_OPTIONS_HELP
 * after printing the help, or LENS_EXIT_USAGE after printing why. given may be NULL. */
int lens_options_parse(const lens_command_spec *c, int argc, char **argv, void *opts, lens_options_given *given);
/* Every row's default into opts (not flags, lists and custom rows). */
void lens_options_defaults(const lens_command_spec *c, void *opts);
/* The help: usage, intro, one aligned line per visible row (more lines for '\n' in its help),
 * headings, epilog. */
void lens_options_help(const lens_command_spec *c, FILE *f);
/* The row called name ('-' and '_' alike), or NULL; *index its number for lens_options_given. */
const lens_option *lens_options_find(const lens_command_spec *c, const char *name, size_t *index);
/* Whether the row called name was given. */
int lens_options_was_given(const lens_command_spec *c, const lens_options_given *g, const char *name);
/* When the option called mode was given (e.g. "resume"), the rows named in allowed (a
 * NULL-terminated list, '-' and '_' alike) are the only others that may be given with it. 0, or
 * LENS_EXIT_USAGE after a message naming the first other option given (in table order), saying
 * why (e.g. "the run's options come from its checkpoint") and which visible options are allowed. */
int lens_options_only_with(const lens_command_spec *c, const lens_options_given *g, const char *mode, const char *const *allowed,
                           const char *why);
/* One row's value from text, checked as on the command line. Messages name the option as
 * "--name", or as source + name when source is given (e.g. "checkpoint: train."). 0, or
 * LENS_EXIT_USAGE after printing why. */
int lens_option_set(const lens_option *o, void *opts, const char *text, const char *source);
/* One row's value as text (what lens_option_set reads back); returns its length. */
int lens_option_format(const lens_option *o, const void *opts, char *buf, size_t cap);
/* The i-th choice of a CHOICE row, or NULL past the end. */
const char *lens_option_choice(const lens_option *o, size_t i);
#endif
