/* The lens tool's option parser (tools/options.c): each type, ranges, choices, lists, positional
 * arguments, unknown and repeated options, missing values, --opt=value and the generated help. */
#include "../tools/cli.c"
#include "../tools/options.c"
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "check.h"
#include <string.h>

typedef struct {
  int flag, count, choice, nargs;
  size_t size, nlist;
  unsigned long long seed;
  double number;
  float small;
  const char *text, *list[3];
  char **args;
  int pair[2];
} demo_options;

static const char *const colours[] = {"red", "green", "blue", NULL};

/* A custom row: "A:B". */
static int parse_pair(const lens_option *o, const char *label, const char *text, void *opts) {
  demo_options *d = (demo_options *)opts;
  (void)o;
  if (sscanf(text, "%d:%d", &d->pair[0], &d->pair[1]) != 2) return lens_usage("%s takes A:B, got '%s'", label, text);
  return 0;
}

#define T demo_options
static const lens_option demo_rows[] = {
  LENS_ARGS(T, "FILE", 0, args, nargs, "input files"),
  LENS_FLAG(T, "verbose", flag, "say more"),
  LENS_INT(T, "count", count, 1, 10, 3, "N", "how many (default 3)"),
  LENS_SIZE(T, "batch-size", size, 1, 64, 32, "B", "objects per batch"),
  LENS_SEED(T, "seed", seed, 1, "S", "the seed"),
  LENS_DOUBLE(T, "fraction", number, 0, 1, 0.5, "F", "a share\nof the whole"),
  LENS_FLOAT(T, "scale", small, -2, 2, 1, "X", "a factor"),
  LENS_TEXT(T, "out", LENS_OPT_REQUIRED, text, NULL, "DIR", "where"),
  LENS_CHOICE(T, "colour", 0, choice, colours, -1, "C", "red | green | blue"),
  LENS_LIST(T, "name", list, nlist, 3, "TEXT", "a name, repeatable"),
  LENS_CUSTOM(T, "pair", 0, pair, parse_pair, "A:B", "two numbers"),
  LENS_INT(T, "hidden", count, 0, 5, 3, NULL, NULL),
};
#undef T
static const lens_option_section demo_sections[] = {{NULL, demo_rows, sizeof demo_rows / sizeof demo_rows[0]}};
static const lens_command_spec demo = {"demo", "usage: lens demo --out DIR [options] FILE...\n", NULL, NULL, demo_sections, 1, "the end\n"};

/* Parses the words of `line` (split at spaces) with stderr in build/options_err.txt. */
static int parse(const char *line, demo_options *d, lens_options_given *g) {
  static char text[1024];
  char *argv[32];
  int argc = 0, rc;
  char *p;
  snprintf(text, sizeof text, "demo %s", line);
  for (p = strtok(text, " "); p && argc < 32; p = strtok(NULL, " ")) argv[argc++] = p;
  memset(d, 0, sizeof *d);
  fflush(stderr);
  if (!freopen("build/options_err.txt", "w", stderr)) return -99;
  rc = lens_options_parse(&demo, argc, argv, d, g);
  fflush(stderr);
  return rc;
}

static int said(const char *needle) {
  static char text[4096];
  FILE *f = fopen("build/options_err.txt", "r");
  size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
  if (f) fclose(f);
  text[n] = 0;
  return strstr(text, needle) != NULL;
}

static void test_types(void) {
  demo_options d;
  lens_options_given g;
  TEST("each type: defaults, values, --opt=value, '-' and '_' alike") {
    CHECK(parse("--out x", &d, NULL) == 0 && d.count == 3 && d.size == 32 && d.seed == 1 && d.number == 0.5 && d.small == 1.0f &&
          d.choice == -1 && !d.flag && d.nlist == 0 && d.nargs == 0 && !strcmp(d.text, "x"), "defaults");
    CHECK(parse("--out=x --verbose --count 7 --batch-size=5 --seed 18446744073709551615 --fraction 0.25 --scale=-1.5 --colour BLUE "
                "--pair 2:3 a b", &d, &g) == 0, "every type parses");
    CHECK(d.flag == 1 && d.count == 7 && d.size == 5 && d.seed == 18446744073709551615ULL && d.number == 0.25 && d.small == -1.5f &&
          d.choice == 2 && d.pair[0] == 2 && d.pair[1] == 3, "the values");
    CHECK(d.nargs == 2 && !strcmp(d.args[0], "a") && !strcmp(d.args[1], "b"), "positional arguments in order");
    CHECK(lens_options_was_given(&demo, &g, "count") && !lens_options_was_given(&demo, &g, "name"), "which were given");
    CHECK(parse("--out x --batch_size 4", &d, NULL) == 0 && d.size == 4, "_ for -");
    CHECK(parse("a --out x b --name p --name q c", &d, NULL) == 0 && d.nargs == 3 && !strcmp(d.args[2], "c") && d.nlist == 2 &&
          !strcmp(d.list[1], "q"), "options between positional arguments; a repeated list");
  }
}

static void test_errors(void) {
  demo_options d;
  TEST("ranges, choices, unknown, missing and repeated options: exit status 2 and a message naming them") {
    CHECK(parse("--out x --count 11", &d, NULL) == LENS_EXIT_USAGE && said("--count") && said("11") && said("1 to 10"), "out of range");
    CHECK(parse("--out x --count 2.5", &d, NULL) == LENS_EXIT_USAGE && said("whole number"), "not whole");
    CHECK(parse("--out x --fraction abc", &d, NULL) == LENS_EXIT_USAGE && said("'abc'") && said("0 to 1"), "not a number");
    CHECK(parse("--out x --seed -1", &d, NULL) == LENS_EXIT_USAGE && said("--seed") && said("'-1'"), "negative seed");
    CHECK(parse("--out x --colour mauve", &d, NULL) == LENS_EXIT_USAGE && said("unknown colour 'mauve'") && said("red, green, blue"), "choices listed");
    CHECK(parse("--out x --frobnicate", &d, NULL) == LENS_EXIT_USAGE && said("unknown option '--frobnicate'") && said("lens demo --help"),
          "unknown option");
    CHECK(parse("--out x -q", &d, NULL) == LENS_EXIT_USAGE && said("'-q'"), "a single-dash option");
    CHECK(parse("--out x --count", &d, NULL) == LENS_EXIT_USAGE && said("--count needs a value"), "missing value");
    CHECK(parse("--out x --count 2 --count 3", &d, NULL) == LENS_EXIT_USAGE && said("--count is given more than once"), "repeated");
    CHECK(parse("--out x --verbose --verbose", &d, NULL) == LENS_EXIT_USAGE, "a repeated flag");
    CHECK(parse("--out x --verbose=1", &d, NULL) == LENS_EXIT_USAGE && said("takes no value"), "a flag with a value");
    CHECK(parse("--out x --name a --name b --name c --name d", &d, NULL) == LENS_EXIT_USAGE && said("at most 3"), "a full list");
    CHECK(parse("--count 2", &d, NULL) == LENS_EXIT_USAGE && said("no --out given"), "required");
    CHECK(parse("--out x --pair 2-3", &d, NULL) == LENS_EXIT_USAGE && said("--pair takes A:B"), "a custom row's message");
  }
}

/* lens_options_only_with after parsing `line`; stderr in build/options_err.txt. */
static int only_with(const char *line, const char *mode, const char *const *allowed) {
  demo_options d;
  lens_options_given g;
  int rc = parse(line, &d, &g);
  if (rc == 0) rc = lens_options_only_with(&demo, &g, mode, allowed, "it says so");
  fflush(stderr);
  return rc;
}

static void test_only_with(void) {
  static const char *const allowed[] = {"out", "count", "hidden", NULL};
  TEST("lens_options_only_with: beside a mode only the options allowed, the first other named with the visible allowed ones") {
    CHECK(only_with("--out x --verbose --count 2 --hidden 1", "verbose", allowed) == 0, "allowed options, hidden ones too");
    CHECK(only_with("--out x --batch-size 4", "verbose", allowed) == 0, "anything without the mode");
    CHECK(only_with("--out x --verbose --count 2 --batch_size 4", "verbose", allowed) == LENS_EXIT_USAGE &&
              said("demo: --batch-size does not apply with --verbose (it says so; only --out and --count may be given with it)"),
          "another option refused, named as --help names it");
  }
}

static void test_set_and_format(void) {
  demo_options d;
  char text[64];
  TEST("lens_option_set and lens_option_format: a value back from its text, with the source named") {
    const lens_option *count = lens_options_find(&demo, "count", NULL), *colour = lens_options_find(&demo, "colour", NULL);
    memset(&d, 0, sizeof d);
    lens_options_defaults(&demo, &d);
    CHECK(count && colour && !lens_options_find(&demo, "FILE", NULL), "rows found by name, positional ones not");
    CHECK(lens_option_set(count, &d, "9", "checkpoint: train.") == 0 && d.count == 9, "set");
    lens_option_format(count, &d, text, sizeof text);
    CHECK(!strcmp(text, "9"), "format: %s", text);
    CHECK(lens_option_set(colour, &d, "green", NULL) == 0 && (lens_option_format(colour, &d, text, sizeof text), !strcmp(text, "green")),
          "a choice by its name");
    fflush(stderr);
    if (freopen("build/options_err.txt", "w", stderr)) {
      CHECK(lens_option_set(count, &d, "99", "checkpoint: train.") == LENS_EXIT_USAGE, "out of range");
      fflush(stderr);
      CHECK(said("checkpoint: train.count takes"), "the source is named");
    }
  }
}

static void test_help(void) {
  TEST("--help: generated from the table, aligned, hidden rows left out; exit through LENS_OPTIONS_HELP") {
    char text[4096];
    size_t n;
    FILE *f = fopen("build/options_help.txt", "w");
    demo_options d;
    if (!f) { CHECK(0, "cannot write build/options_help.txt"); break; }
    lens_options_help(&demo, f);
    fclose(f);
    f = fopen("build/options_help.txt", "r");
    n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    text[n] = 0;
    CHECK(!strncmp(text, "usage: lens demo", 16) && strstr(text, "the end\n"), "usage and epilog: %s", text);
    CHECK(strstr(text, "\n  --count N      how many (default 3)\n") != NULL, "aligned: %s", text);
    CHECK(strstr(text, "\n  --fraction F   a share\n                 of the whole\n") != NULL, "continuation lines: %s", text);
    CHECK(strstr(text, "\n  FILE           input files\n") && strstr(text, "--batch-size B") && strstr(text, "--verbose "), "every row");
    CHECK(!strstr(text, "hidden"), "hidden rows stay hidden");
    fflush(stdout);
    CHECK(parse("--count 99 --help", &d, NULL) == LENS_OPTIONS_HELP, "--help wins");
  }
}

int main(void) {
  test_types();
  test_errors();
  test_set_and_format();
  test_only_with();
  test_help();
  return check_summary();
}
