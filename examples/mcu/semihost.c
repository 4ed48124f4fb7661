/* semihost.c - ARM semihosting (the "Semihosting for AArch32 and AArch64" specification): the
 * operation number in r0, its argument in r1, BKPT 0xAB on M-profile cores, the result in r0. */
#include "semihost.h"

#define SYS_WRITE0 0x04
#define SYS_CLOCK 0x10
#define SYS_EXIT 0x18
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

static long semihost_call(long op, const void *arg) {
  register long r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void semihost_write(const char *text) { semihost_call(SYS_WRITE0, text); }

unsigned long semihost_clock_cs(void) { return (unsigned long)semihost_call(SYS_CLOCK, 0); }

void semihost_exit(int status) {
  long block[2];
  block[0] = ADP_STOPPED_APPLICATION_EXIT;
  block[1] = status;
  semihost_call(SYS_EXIT_EXTENDED, block);
  semihost_call(SYS_EXIT, (const void *)ADP_STOPPED_APPLICATION_EXIT); /* a host without the extension */
  for (;;) {}
}
