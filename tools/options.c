/* options.c - the table-driven option parser of the `lens` subcommands (see options.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include "options.h"
#include "cli.h"

/* "val-fraction" matches "val_fraction"; `len` characters of text against the whole name. */
static int options__name_is(const char *text, size_t len, const char *name) {
  size_t k;
  for (k = 0; k < len && name[k]; k++)
    if (text[k] != name[k] && !((text[k] == '-' || text[k] == '_') && (name[k] == '-' || name[k] == '_'))) return 0;
  return k == len && !name[k];
}

static int options__iequal(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
  return !*a && !*b;
}

/* How the option is called in messages: "--val-fraction", or source + name. */
static void options__label(const lens_option *o, const char *source, char *buf, size_t cap) {
  size_t k;
  if (o->flags & LENS_OPT_POSITIONAL) { snprintf(buf, cap, "%s", o->name); return; }
  snprintf(buf, cap, "%s%s", source ? source : "--", o->name);
  for (k = source ? strlen(source) : 2; buf[k]; k++)
    if (buf[k] == '_' && !source) buf[k] = '-';
}

const char *lens_option_choice(const lens_option *o, size_t i) {
  if (o->choice_at) return o->choice_at(i);
  return o->choices ? o->choices[i] : NULL;
}

static void *options__field(const lens_option *o, void *opts) { return (char *)opts + o->offset; }

static int options__number(const lens_option *o, const char *label, const char *text, void *field) {
  char *end;
  double v;
  int whole = o->type != LENS_OPT_DOUBLE && o->type != LENS_OPT_FLOAT;
  errno = 0;
  v = strtod(text, &end);
  if (end == text || *end || errno || !(v >= o->lo && v <= o->hi) || (whole && v != floor(v)))
    return lens_usage("%s takes %s from %g to %g, got '%s'", label, whole ? "a whole number" : "a number", o->lo, o->hi, text);
  if (o->type == LENS_OPT_INT) *(int *)field = (int)v;
  else if (o->type == LENS_OPT_SIZE) *(size_t *)field = (size_t)v;
  else if (o->type == LENS_OPT_FLOAT) *(float *)field = (float)v;
  else *(double *)field = v;
  return 0;
}

static int options__seed(const char *label, const char *text, unsigned long long *field) {
  char *end;
  unsigned long long v;
  errno = 0;
  v = strtoull(text, &end, 10);
  if (!isdigit((unsigned char)text[0]) || *end || errno)
    return lens_usage("%s takes a whole number from 0 to %llu, got '%s'", label, ~0ULL, text);
  *field = v;
  return 0;
}

static int options__choice(const lens_option *o, const char *label, const char *text, int *field) {
  char list[512];
  size_t i, at = 0;
  const char *c;
  for (i = 0; (c = lens_option_choice(o, i)) != NULL; i++)
    if (options__iequal(text, c)) { *field = (int)i; return 0; }
  list[0] = 0;
  for (i = 0; (c = lens_option_choice(o, i)) != NULL && at < sizeof list; i++)
    at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", c);
  return lens_usage("unknown %s '%s' (%s takes one of %s)", label + strspn(label, "-"), text, label, list);
}

static int options__list(const lens_option *o, const char *label, const char *text, void *opts) {
  size_t *count = (size_t *)(void *)((char *)opts + o->count_offset);
  if (*count >= (size_t)o->hi) return lens_usage("%s may be given at most %g times", label, o->hi);
  ((const char **)options__field(o, opts))[(*count)++] = text;
  return 0;
}

static int options__store(const lens_option *o, const char *label, const char *text, void *opts) {
  void *field = options__field(o, opts);
  switch (o->type) {
    case LENS_OPT_FLAG: *(int *)field = 1; return 0;
    case LENS_OPT_INT: case LENS_OPT_SIZE: case LENS_OPT_DOUBLE: case LENS_OPT_FLOAT: return options__number(o, label, text, field);
    case LENS_OPT_SEED: return options__seed(label, text, (unsigned long long *)field);
    case LENS_OPT_TEXT: *(const char **)field = text; return 0;
    case LENS_OPT_CHOICE: return options__choice(o, label, text, (int *)field);
    case LENS_OPT_LIST: return options__list(o, label, text, opts);
    case LENS_OPT_CUSTOM: return o->parse(o, label, text, opts);
    default: return lens_usage("%s cannot be set", label);
  }
}

int lens_option_set(const lens_option *o, void *opts, const char *text, const char *source) {
  char label[96];
  options__label(o, source, label, sizeof label);
  return options__store(o, label, text, opts);
}

int lens_option_format(const lens_option *o, const void *opts, char *buf, size_t cap) {
  const void *field = (const char *)opts + o->offset;
  const char *c;
  switch (o->type) {
    case LENS_OPT_FLAG: case LENS_OPT_INT: return snprintf(buf, cap, "%d", *(const int *)field);
    case LENS_OPT_SIZE: return snprintf(buf, cap, "%lu", (unsigned long)*(const size_t *)field);
    case LENS_OPT_SEED: return snprintf(buf, cap, "%llu", *(const unsigned long long *)field);
    case LENS_OPT_DOUBLE: { /* the shortest text that reads back as the value: 0.1, not 0.10000000000000001 */
      double v = *(const double *)field;
      char t[40];
      int prec;
      for (prec = 1; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, v);
        if (strtod(t, NULL) == v || v != v) break;
      }
      return snprintf(buf, cap, "%s", t);
    }
    case LENS_OPT_FLOAT: return snprintf(buf, cap, "%.9g", (double)*(const float *)field);
    case LENS_OPT_TEXT: return snprintf(buf, cap, "%s", *(const char *const *)field ? *(const char *const *)field : "");
    case LENS_OPT_CHOICE:
      c = *(const int *)field >= 0 ? lens_option_choice(o, (size_t)*(const int *)field) : NULL;
      return snprintf(buf, cap, "%s", c ? c : "");
    default: return snprintf(buf, cap, "%s", "");
  }
}

#define OPTIONS__EACH(c, s, r) \
  for (s = 0; s < (c)->section_count; s++) \
    for (r = 0; r < (c)->sections[s].count; r++)

void lens_options_defaults(const lens_command_spec *c, void *opts) {
  size_t s, r;
  OPTIONS__EACH(c, s, r) {
    const lens_option *o = &c->sections[s].rows[r];
    void *field = options__field(o, opts);
    switch (o->type) {
      case LENS_OPT_INT: case LENS_OPT_CHOICE: *(int *)field = (int)o->def; break;
      case LENS_OPT_SIZE: *(size_t *)field = (size_t)o->def; break;
      case LENS_OPT_SEED: *(unsigned long long *)field = (unsigned long long)o->def; break;
      case LENS_OPT_DOUBLE: *(double *)field = o->def; break;
      case LENS_OPT_FLOAT: *(float *)field = (float)o->def; break;
      case LENS_OPT_TEXT: *(const char **)field = o->text_def; break;
      default: break; /* flags (which may share a field with another row), lists and custom rows keep the caller's value */
    }
  }
}

const lens_option *lens_options_find(const lens_command_spec *c, const char *name, size_t *index) {
  size_t s, r, n = 0;
  OPTIONS__EACH(c, s, r) {
    const lens_option *o = &c->sections[s].rows[r];
    if (!(o->flags & LENS_OPT_POSITIONAL) && options__name_is(name, strlen(name), o->name)) {
      if (index) *index = n;
      return o;
    }
    n++;
  }
  return NULL;
}

int lens_options_was_given(const lens_command_spec *c, const lens_options_given *g, const char *name) {
  size_t i;
  return lens_options_find(c, name, &i) && i < LENS_OPTIONS_MAX && g->row[i];
}

/* Whether row o is named in names (NULL-terminated). */
static int options__listed(const lens_option *o, const char *const *names) {
  for (; *names; names++)
    if (options__name_is(*names, strlen(*names), o->name)) return 1;
  return 0;
}

int lens_options_only_with(const lens_command_spec *c, const lens_options_given *g, const char *mode, const char *const *allowed,
                           const char *why) {
  const lens_option *m = lens_options_find(c, mode, NULL), *bad = NULL, *shown[8];
  char label[96], mode_label[96], list[512];
  size_t s, r, n = 0, k, count = 0, at = 0;
  if (!m || !lens_options_was_given(c, g, mode)) return 0;
  OPTIONS__EACH(c, s, r) {
    const lens_option *o = &c->sections[s].rows[r];
    if (!bad && n < LENS_OPTIONS_MAX && g->row[n] && o != m && !options__listed(o, allowed)) bad = o;
    n++;
  }
  if (!bad) return 0;
  /* "--epochs and --threads": the allowed options --help shows, in the order given (hidden test
   * hooks go unsaid) */
  for (k = 0; allowed[k] && count < sizeof shown / sizeof *shown; k++) {
    const lens_option *o = lens_options_find(c, allowed[k], NULL);
    if (o && o != m && o->help) shown[count++] = o;
  }
  list[0] = 0;
  for (k = 0; k < count && at < sizeof list; k++) {
    options__label(shown[k], NULL, label, sizeof label);
    at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", !k ? "" : k + 1 == count ? " and " : ", ", label);
  }
  options__label(bad, NULL, label, sizeof label);
  options__label(m, NULL, mode_label, sizeof mode_label);
  if (!count) return lens_usage("%s: %s does not apply with %s (%s; no other option may be given with it)", c->name, label, mode_label, why);
  return lens_usage("%s: %s does not apply with %s (%s; only %s may be given with it)", c->name, label, mode_label, why, list);
}

/* The row numbered n over the sections, or NULL. */
static const lens_option *options__row(const lens_command_spec *c, size_t n) {
  size_t s;
  for (s = 0; s < c->section_count; s++) {
    if (n < c->sections[s].count) return &c->sections[s].rows[n];
    n -= c->sections[s].count;
  }
  return NULL;
}

static int options__takes_value(const lens_option *o) {
  return o->type != LENS_OPT_FLAG && !(o->type == LENS_OPT_CUSTOM && (o->flags & LENS_OPT_NO_VALUE));
}

/* The option at argv[*i], with its value after '=' or in the next argument. */
static int options__one(const lens_command_spec *c, int argc, char **argv, int *i, void *opts, lens_options_given *g) {
  const char *arg = argv[*i], *eq = strchr(arg, '='), *value;
  size_t len = eq ? (size_t)(eq - arg) - 2 : strlen(arg) - 2, n, s, r;
  const lens_option *o = NULL;
  char label[96];
  n = 0;
  OPTIONS__EACH(c, s, r) {
    const lens_option *row = &c->sections[s].rows[r];
    if (!o && arg[1] == '-' && !(row->flags & LENS_OPT_POSITIONAL) && options__name_is(arg + 2, len, row->name)) o = row;
    if (!o) n++;
  }
  if (!o) return lens_usage("unknown option '%s' (see lens %s --help)", arg, c->name);
  options__label(o, NULL, label, sizeof label);
  if (o->type != LENS_OPT_LIST && g->row[n]) return lens_usage("%s is given more than once (see lens %s --help)", label, c->name);
  g->row[n] = 1;
  if (!options__takes_value(o)) {
    if (eq) return lens_usage("%s takes no value, got '%s'", label, arg);
    value = "1";
  } else if (eq) value = eq + 1;
  else if (*i + 1 < argc) value = argv[++*i];
  else return lens_usage("%s needs a value (see lens %s --help)", label, c->name);
  return options__store(o, label, value, opts);
}

/* A positional argument into the next positional row; ARGS rows collect the rest. */
static int options__positional(const lens_command_spec *c, char **argv, int i, void *opts, lens_options_given *g) {
  size_t n;
  const lens_option *o;
  for (n = 0; (o = options__row(c, n)) != NULL; n++) {
    if (!(o->flags & LENS_OPT_POSITIONAL)) continue;
    if (o->type == LENS_OPT_ARGS) {
      int *k = (int *)(void *)((char *)opts + o->count_offset);
      char ***first = (char ***)options__field(o, opts);
      /* the positional arguments are gathered at the front of argv, in order */
      if (!g->row[n]) { *first = argv + 1; *k = 0; g->row[n] = 1; }
      (*first)[(*k)++] = argv[i];
      return 0;
    }
    if (!g->row[n]) { g->row[n] = 1; return options__store(o, o->name, argv[i], opts); }
  }
  return lens_usage("unexpected argument '%s' (see lens %s --help)", argv[i], c->name);
}

static int options__required(const lens_command_spec *c, const lens_options_given *g) {
  size_t n;
  const lens_option *o;
  char label[96];
  for (n = 0; (o = options__row(c, n)) != NULL; n++)
    if ((o->flags & LENS_OPT_REQUIRED) && !g->row[n]) {
      options__label(o, NULL, label, sizeof label);
      return lens_usage("no %s given (see lens %s --help)", label, c->name);
    }
  return 0;
}

int lens_options_parse(const lens_command_spec *c, int argc, char **argv, void *opts, lens_options_given *given) {
  lens_options_given local;
  int i, rc;
  if (!given) given = &local;
  memset(given, 0, sizeof *given);
  lens_options_defaults(c, opts);
  for (i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { lens_options_help(c, stdout); return LENS_OPTIONS_HELP; }
  for (i = 1; i < argc; i++) {
    rc = argv[i][0] == '-' && argv[i][1] ? options__one(c, argc, argv, &i, opts, given) : options__positional(c, argv, i, opts, given);
    if (rc) return rc;
  }
  return options__required(c, given);
}

/* The widest left column of --help; a longer "--name METAVAR" has its help on the next line. */
#define OPTIONS__HELP_WIDTH 21

/* "--name METAVAR", dashes for underscores. */
static void options__left(const lens_option *o, char *buf, size_t cap) {
  size_t k;
  if (o->flags & LENS_OPT_POSITIONAL) snprintf(buf, cap, "%s", o->name);
  else snprintf(buf, cap, "--%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
  for (k = 0; buf[k] && buf[k] != ' '; k++) if (buf[k] == '_') buf[k] = '-';
}

void lens_options_help(const lens_command_spec *c, FILE *f) {
  size_t s, r, width = 0;
  char left[96];
  OPTIONS__EACH(c, s, r) {
    const lens_option *o = &c->sections[s].rows[r];
    options__left(o, left, sizeof left);
    if (o->help && strlen(left) > width && strlen(left) <= OPTIONS__HELP_WIDTH) width = strlen(left);
  }
  fputs(c->usage, f);
  if (c->intro) fputs(c->intro, f);
  if (c->more) c->more(f);
  for (s = 0; s < c->section_count; s++) {
    if (c->sections[s].heading) fprintf(f, "%s\n", c->sections[s].heading);
    for (r = 0; r < c->sections[s].count; r++) {
      const lens_option *o = &c->sections[s].rows[r];
      const char *h = o->help;
      if (!h) continue;
      options__left(o, left, sizeof left);
      if (strlen(left) > width) fprintf(f, "  %s\n  %-*s ", left, (int)width, "");
      else fprintf(f, "  %-*s ", (int)width, left);
      for (; *h; h++) {
        fputc(*h, f);
        if (*h == '\n') fprintf(f, "  %-*s ", (int)width, "");
      }
      fputc('\n', f);
    }
  }
  if (c->epilog) fputs(c->epilog, f);
}
