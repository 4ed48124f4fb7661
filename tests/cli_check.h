/* cli_check.h - what the tests of the `lens` tool share: running it and reading what it wrote.
 *
 * The tool is $LENS (make test sets it to build/lens), else build/lens, run through
 * $LENS_TEST_RUNNER when that is set; the tests run from the repository root. Commands go
 * through the shell, so redirections work as typed:
 *   CHECK(cli_lens("predict --model %s x.npy > out.csv 2>/dev/null", model) == 0, "...");
 * The result is the exit status, or -1 if the command did not exit (system() or popen() failed,
 * a signal): `== 0` means success and `!= 0` failure, exactly as system()'s result did. */
#ifndef LENS_CLI_CHECK_H
#define LENS_CLI_CHECK_H
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#error "cli_check.h needs popen(): define _POSIX_C_SOURCE 200809L before including anything"
#endif
#include "check.h"
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__GNUC__)
#define CLI__PRINTF(f, a) __attribute__((format(printf, f, a)))
#define CLI__UNUSED __attribute__((unused))
#else
#define CLI__PRINTF(f, a)
#define CLI__UNUSED
#endif

static const char *cli_lens_path(void) {
  const char *l = getenv("LENS");
  return l && *l ? l : "build/lens";
}

static int cli__status(int st) { return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1; }

/* A command line: prefix, then fmt filled in with ap, then suffix. */
static void cli__command(char *cmd, size_t cap, const char *prefix, const char *fmt, va_list ap, const char *suffix) {
  size_t n = (size_t)snprintf(cmd, cap, "%s", prefix);
  if (n < cap) n += (size_t)vsnprintf(cmd + n, cap - n, fmt, ap);
  if (n < cap) snprintf(cmd + n, cap - n, "%s", suffix);
}

/* The tool as a shell command: $LENS_TEST_RUNNER, when set, runs it (make test-cross sets it to
 * qemu-aarch64 or qemu-s390x, as the tool is built for another CPU). */
static const char *cli_lens_command(void) {
  static char command[4000];
  const char *runner = getenv("LENS_TEST_RUNNER");
  snprintf(command, sizeof command, "%s%s%s", runner && *runner ? runner : "", runner && *runner ? " " : "", cli_lens_path());
  return command;
}

/* `lens ` with its trailing blank: the start of every command that runs the tool. */
static const char *cli__lens_prefix(void) {
  static char prefix[4096];
  snprintf(prefix, sizeof prefix, "%s ", cli_lens_command());
  return prefix;
}

/* Runs a shell command made from fmt; its exit status. */
static int cli_shell(const char *fmt, ...) CLI__PRINTF(1, 2);
static int cli_shell(const char *fmt, ...) {
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  cli__command(cmd, sizeof cmd, "", fmt, ap, "");
  va_end(ap);
  return cli__status(system(cmd));
}

/* Runs `lens ARGS` (ARGS made from fmt, redirections included); its exit status. */
static int cli_lens(const char *fmt, ...) CLI__PRINTF(1, 2);
static int cli_lens(const char *fmt, ...) {
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  cli__command(cmd, sizeof cmd, cli__lens_prefix(), fmt, ap, "");
  va_end(ap);
  return cli__status(system(cmd));
}

/* Runs `lens ARGS` with standard output and error captured into out (NUL-terminated, cut at
 * cap - 1 bytes); its exit status. */
static int cli_lens_output(char *out, size_t cap, const char *fmt, ...) CLI__PRINTF(3, 4);
static int cli_lens_output(char *out, size_t cap, const char *fmt, ...) {
  char cmd[8192];
  FILE *p;
  size_t got;
  va_list ap;
  va_start(ap, fmt);
  cli__command(cmd, sizeof cmd, cli__lens_prefix(), fmt, ap, " 2>&1");
  va_end(ap);
  out[0] = 0;
  p = popen(cmd, "r");
  if (!p) return -1;
  got = fread(out, 1, cap - 1, p);
  out[got] = 0;
  return cli__status(pclose(p));
}

/* Whether the tool is there; if not, says so as a SKIP (for tests that cannot run without it). */
static int cli_have_lens(void) {
  if (access(cli_lens_path(), X_OK) == 0) return 1;
  SKIP("no lens tool at %s (make builds build/lens; LENS names another)", cli_lens_path());
  return 0;
}

/* The text of a small file (NUL-terminated, cut at cap - 1 bytes), "" if it cannot be read. */
static const char *cli_text(const char *path, char *text, size_t cap) {
  FILE *f = fopen(path, "rb");
  size_t got = f ? fread(text, 1, cap - 1, f) : 0;
  text[got] = 0;
  if (f) fclose(f);
  return text;
}

/* Whether the first 64 KiB of a file hold needle. */
static int cli_file_has(const char *path, const char *needle) {
  static char text[1 << 16];
  return strstr(cli_text(path, text, sizeof text), needle) != NULL;
}

/* The number of lines of a text file (a CSV with its header), 0 if it cannot be read. */
static int cli_lines(const char *path) {
  FILE *f = fopen(path, "r");
  char line[4096];
  int n = 0;
  while (f && fgets(line, sizeof line, f)) n++;
  if (f) fclose(f);
  return n;
}

/* Whether two files hold the same bytes (as `cmp -s`). */
static int cli_same_file(const char *a, const char *b) {
  FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
  int same = fa && fb, ca, cb;
  while (same) {
    ca = getc(fa);
    cb = getc(fb);
    if (ca != cb) same = 0;
    if (ca == EOF) break;
  }
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  return same;
}

/* Keeps -Wunused-function quiet in programs that use only some of the helpers. */
static void cli__unused(void) CLI__UNUSED;
static void cli__unused(void) {
  (void)cli_lens; (void)cli_lens_command; (void)cli_lens_output; (void)cli_shell; (void)cli_have_lens; (void)cli_text;
  (void)cli_file_has; (void)cli_lines; (void)cli_same_file;
}
#endif
