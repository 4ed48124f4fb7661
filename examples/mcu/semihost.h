/* semihost.h - the few ARM semihosting calls the firmware needs (text out, the host's clock, exit
 * with a status), made directly with BKPT 0xAB: no C library I/O, no heap. */
#ifndef MCU_SEMIHOST_H
#define MCU_SEMIHOST_H
void semihost_write(const char *text);      /* SYS_WRITE0 */
unsigned long semihost_clock_cs(void);      /* SYS_CLOCK: centiseconds since the program started */
void semihost_exit(int status) __attribute__((noreturn)); /* SYS_EXIT_EXTENDED */
#endif
