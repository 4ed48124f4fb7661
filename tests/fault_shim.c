/* fault_shim.c - fault injection for the tests: an LD_PRELOAD library that makes one chosen call
 * of the C library fail the way a full disk, a broken disk or an exhausted heap would.
 *
 *   LD_PRELOAD=build/fault_shim.so LENS_FAULT=write:17 build/lens sim ...
 *
 * LENS_FAULT=CLASS:N fails the Nth call (from 1) of CLASS, and only that one; CLASS:N+ fails the
 * Nth and every later one (a disk that stays full). The classes and how their calls fail:
 *   write   write(2) on a descriptor above 2, and stdio output to a stream other than stdout and
 *           stderr (fwrite, fputs, fputc, putc, fprintf, vfprintf, fflush): ENOSPC, nothing
 *           written, the stream's error flag set (as glibc does when its buffer cannot be written)
 *   rename  rename, renameat: EIO, nothing renamed
 *   fsync   fsync, fdatasync: EIO
 *   malloc  malloc, calloc, realloc, posix_memalign, aligned_alloc: NULL (an error for
 *           posix_memalign), ENOMEM
 *   open    fopen, open, openat (any mode): NULL or -1, ENOSPC when creating or writing, else EIO
 *   close   fclose, close on a descriptor above 2: the stream or descriptor is closed (its data
 *           flushed) but EIO is returned, as NFS does when the server reports a late error
 *   remove  remove, unlink: EIO, nothing removed
 * LENS_FAULT_TRACE=1 prints the call stack of the failed call on stderr (addr2line -e PROGRAM names
 * the +0x offsets of a program built with -g): where a failure went unnoticed.
 * LENS_FAULT_COUNT=FILE writes at exit one line per class, "CLASS CALLS", so that a test can count
 * the calls of a command before choosing which to fail.
 *
 * Calls are counted from the library's constructor, which runs before the program's main and after
 * the C library has started, so a given command line makes the same calls in the same order every
 * time (with one thread: a pool of several interleaves its workers' allocations). Output to stdout
 * and stderr is never failed, so the program's message about the failure gets out. The library is
 * glibc-specific (it allocates through __libc_malloc and sets a stream's _IO_ERR_SEEN flag); it is
 * a test tool, not part of the toolkit. Built by make as build/fault_shim.so (-fPIC -shared -ldl). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { C_WRITE, C_RENAME, C_FSYNC, C_MALLOC, C_OPEN, C_CLOSE, C_REMOVE, C_COUNT };
static const char *const class_names[C_COUNT] = {"write", "rename", "fsync", "malloc", "open", "close", "remove"};

static unsigned long calls[C_COUNT];
static int fault_class = -1, fault_onward, fault_trace, started;
static unsigned long fault_at;

/* glibc's allocator under its own names: no dlsym (which allocates) on the way to malloc. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

__attribute__((constructor)) static void shim_start(void) {
  const char *spec = getenv("LENS_FAULT");
  int c;
  if (spec && *spec)
    for (c = 0; c < C_COUNT; c++) {
      size_t n = strlen(class_names[c]);
      if (!strncmp(spec, class_names[c], n) && spec[n] == ':') {
        char *end;
        fault_at = strtoul(spec + n + 1, &end, 10);
        fault_onward = *end == '+';
        fault_class = fault_at ? c : -1;
      }
    }
  spec = getenv("LENS_FAULT_TRACE");
  fault_trace = spec && *spec && strcmp(spec, "0");
  memset(calls, 0, sizeof calls);
  __atomic_store_n(&started, 1, __ATOMIC_SEQ_CST);
}

/* Counts a call of class c; whether it is to fail. */
static int shim_fail(int c) {
  unsigned long n;
  if (!__atomic_load_n(&started, __ATOMIC_SEQ_CST)) return 0;
  n = __atomic_add_fetch(&calls[c], 1, __ATOMIC_SEQ_CST);
  if (c != fault_class || !(n == fault_at || (fault_onward && n > fault_at))) return 0;
  if (fault_trace) {
    void *frames[32];
    int depth;
    /* backtrace() allocates on its first call: not counted, and not failed */
    __atomic_store_n(&started, 0, __ATOMIC_SEQ_CST);
    depth = backtrace(frames, 32);
    backtrace_symbols_fd(frames, depth, 2);
    __atomic_store_n(&started, 1, __ATOMIC_SEQ_CST);
  }
  return 1;
}

__attribute__((destructor)) static void shim_report(void) {
  const char *path = getenv("LENS_FAULT_COUNT");
  char text[512];
  int c, fd, len = 0;
  /* counting stops first: the report's own calls are not the program's */
  __atomic_store_n(&started, 0, __ATOMIC_SEQ_CST);
  if (!path || !*path) return;
  for (c = 0; c < C_COUNT; c++) len += snprintf(text + len, sizeof text - (size_t)len, "%s %lu\n", class_names[c], calls[c]);
  if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0) {
    if (write(fd, text, (size_t)len) != len) { /* a short file: the test reads no counts */ }
    close(fd);
  }
}

/* The C library's own function under our name: `REAL(name, return type, (parameters))` declares
 * real_name and looks it up once (memcpy: ISO C has no cast from dlsym's object pointer). */
#define REAL(name, ret, params) \
  static ret(*real_##name) params; \
  if (!real_##name) { void *sym_ = dlsym(RTLD_NEXT, #name); memcpy(&real_##name, &sym_, sizeof sym_); }

/* ---- malloc ----------------------------------------------------------------------------------- */

void *malloc(size_t n) {
  if (shim_fail(C_MALLOC)) { errno = ENOMEM; return NULL; }
  return __libc_malloc(n);
}
void *calloc(size_t k, size_t n) {
  if (shim_fail(C_MALLOC)) { errno = ENOMEM; return NULL; }
  return __libc_calloc(k, n);
}
void *realloc(void *p, size_t n) {
  if (shim_fail(C_MALLOC)) { errno = ENOMEM; return NULL; }
  return __libc_realloc(p, n);
}
int posix_memalign(void **out, size_t align, size_t n) {
  void *p;
  if (shim_fail(C_MALLOC)) return ENOMEM;
  if (!(p = __libc_memalign(align, n))) return ENOMEM;
  *out = p;
  return 0;
}
void *aligned_alloc(size_t align, size_t n) {
  if (shim_fail(C_MALLOC)) { errno = ENOMEM; return NULL; }
  return __libc_memalign(align, n);
}

/* ---- write ------------------------------------------------------------------------------------ */

/* A stdio stream the shim may fail: not stdout or stderr. */
static int file_stream(FILE *f) { return f && f != stdout && f != stderr; }

/* A failed stdio write: the stream's error flag, as glibc sets it, and ENOSPC. */
static void stream_failed(FILE *f) {
  f->_flags |= 0x20; /* _IO_ERR_SEEN, what ferror() reads */
  errno = ENOSPC;
}

ssize_t write(int fd, const void *buf, size_t n) {
  REAL(write, ssize_t, (int, const void *, size_t));
  if (fd > 2 && shim_fail(C_WRITE)) { errno = ENOSPC; return -1; }
  return real_write(fd, buf, n);
}
size_t fwrite(const void *buf, size_t size, size_t n, FILE *f) {
  REAL(fwrite, size_t, (const void *, size_t, size_t, FILE *));
  if (file_stream(f) && size && n && shim_fail(C_WRITE)) { stream_failed(f); return 0; }
  return real_fwrite(buf, size, n, f);
}
int fputs(const char *s, FILE *f) {
  REAL(fputs, int, (const char *, FILE *));
  if (file_stream(f) && shim_fail(C_WRITE)) { stream_failed(f); return EOF; }
  return real_fputs(s, f);
}
int fputc(int c, FILE *f) {
  REAL(fputc, int, (int, FILE *));
  if (file_stream(f) && shim_fail(C_WRITE)) { stream_failed(f); return EOF; }
  return real_fputc(c, f);
}
int putc(int c, FILE *f) {
  REAL(putc, int, (int, FILE *));
  if (file_stream(f) && shim_fail(C_WRITE)) { stream_failed(f); return EOF; }
  return real_putc(c, f);
}
int vfprintf(FILE *f, const char *fmt, va_list ap) {
  REAL(vfprintf, int, (FILE *, const char *, va_list));
  if (file_stream(f) && shim_fail(C_WRITE)) { stream_failed(f); return -1; }
  return real_vfprintf(f, fmt, ap);
}
int fprintf(FILE *f, const char *fmt, ...) {
  va_list ap;
  int r;
  va_start(ap, fmt);
  r = vfprintf(f, fmt, ap);
  va_end(ap);
  return r;
}
int fflush(FILE *f) {
  REAL(fflush, int, (FILE *));
  if (file_stream(f) && shim_fail(C_WRITE)) { stream_failed(f); return EOF; }
  return real_fflush(f);
}

/* ---- rename, fsync, remove -------------------------------------------------------------------- */

int rename(const char *from, const char *to) {
  REAL(rename, int, (const char *, const char *));
  if (shim_fail(C_RENAME)) { errno = EIO; return -1; }
  return real_rename(from, to);
}
int renameat(int fd_from, const char *from, int fd_to, const char *to) {
  REAL(renameat, int, (int, const char *, int, const char *));
  if (shim_fail(C_RENAME)) { errno = EIO; return -1; }
  return real_renameat(fd_from, from, fd_to, to);
}
int fsync(int fd) {
  REAL(fsync, int, (int));
  if (shim_fail(C_FSYNC)) { errno = EIO; return -1; }
  return real_fsync(fd);
}
int fdatasync(int fd) {
  REAL(fdatasync, int, (int));
  if (shim_fail(C_FSYNC)) { errno = EIO; return -1; }
  return real_fdatasync(fd);
}
int remove(const char *path) {
  REAL(remove, int, (const char *));
  if (shim_fail(C_REMOVE)) { errno = EIO; return -1; }
  return real_remove(path);
}
int unlink(const char *path) {
  REAL(unlink, int, (const char *));
  if (shim_fail(C_REMOVE)) { errno = EIO; return -1; }
  return real_unlink(path);
}

/* ---- open, close ------------------------------------------------------------------------------ */

static int open_errno(int flags) { return (flags & (O_CREAT | O_WRONLY | O_RDWR)) ? ENOSPC : EIO; }

FILE *fopen(const char *path, const char *mode) {
  REAL(fopen, FILE *, (const char *, const char *));
  if (shim_fail(C_OPEN)) { errno = strpbrk(mode, "wa+") ? ENOSPC : EIO; return NULL; }
  return real_fopen(path, mode);
}
FILE *fopen64(const char *path, const char *mode) {
  REAL(fopen64, FILE *, (const char *, const char *));
  if (shim_fail(C_OPEN)) { errno = strpbrk(mode, "wa+") ? ENOSPC : EIO; return NULL; }
  return real_fopen64(path, mode);
}
int open(const char *path, int flags, ...) {
  mode_t mode = 0;
  REAL(open, int, (const char *, int, ...));
  if (flags & O_CREAT) { va_list ap; va_start(ap, flags); mode = (mode_t)va_arg(ap, int); va_end(ap); }
  if (shim_fail(C_OPEN)) { errno = open_errno(flags); return -1; }
  return real_open(path, flags, mode);
}
int open64(const char *path, int flags, ...) {
  mode_t mode = 0;
  REAL(open64, int, (const char *, int, ...));
  if (flags & O_CREAT) { va_list ap; va_start(ap, flags); mode = (mode_t)va_arg(ap, int); va_end(ap); }
  if (shim_fail(C_OPEN)) { errno = open_errno(flags); return -1; }
  return real_open64(path, flags, mode);
}
int openat(int dir, const char *path, int flags, ...) {
  mode_t mode = 0;
  REAL(openat, int, (int, const char *, int, ...));
  if (flags & O_CREAT) { va_list ap; va_start(ap, flags); mode = (mode_t)va_arg(ap, int); va_end(ap); }
  if (shim_fail(C_OPEN)) { errno = open_errno(flags); return -1; }
  return real_openat(dir, path, flags, mode);
}
int fclose(FILE *f) {
  int fail, r;
  REAL(fclose, int, (FILE *));
  fail = file_stream(f) && shim_fail(C_CLOSE);
  r = real_fclose(f);
  if (fail) { errno = EIO; return EOF; }
  return r;
}
int close(int fd) {
  int fail, r;
  REAL(close, int, (int));
  fail = fd > 2 && shim_fail(C_CLOSE);
  r = real_close(fd);
  if (fail) { errno = EIO; return -1; }
  return r;
}
