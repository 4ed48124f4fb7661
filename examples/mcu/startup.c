/* startup.c - what runs before main on a Cortex-M: the vector table (initial stack pointer, reset
 * and fault handlers), copying .data from flash, zeroing .bss, turning the FPU on. Then main's
 * status goes back to the host through semihosting. */
#include <stdint.h>
#include <string.h>
#include "semihost.h"

extern uint32_t __data_start[], __data_end[], __data_load[], __bss_start[], __bss_end[], __stack_limit[], __stack_top[];
int main(void);
unsigned long mcu_stack_used(void);
void mcu_reset(void);
static void mcu_fault(void);
static void paint_stack(void);

/* Cortex-M: word 0 is the initial stack pointer, then the handlers (reset, NMI, hard fault,
 * memory management, bus fault, usage fault). */
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
  (void (*)(void))(uintptr_t)__stack_top, mcu_reset, mcu_fault, mcu_fault, mcu_fault, mcu_fault, mcu_fault,
};

void mcu_reset(void) {
  volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u; /* Coprocessor Access Control */
  memcpy(__data_start, __data_load, (size_t)((char *)__data_end - (char *)__data_start));
  memset(__bss_start, 0, (size_t)((char *)__bss_end - (char *)__bss_start));
  *cpacr |= 0xFu << 20; /* full access to CP10 and CP11: the single-precision FPU */
  __asm__ volatile("dsb\n\tisb");
  paint_stack();
  semihost_exit(main());
}

/* The stack below this frame is painted with a pattern, so the program can say how deep it went
 * (the deepest word no longer holding the pattern). */
#define STACK_PAINT 0x57AC57ACu
static void paint_stack(void) {
  uint32_t *p = __stack_limit, *sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  while (p < sp - 64) *p++ = STACK_PAINT;
}

unsigned long mcu_stack_used(void) {
  const uint32_t *p = __stack_limit;
  while (p < __stack_top && *p == STACK_PAINT) p++;
  return (unsigned long)((const char *)__stack_top - (const char *)p);
}

static void mcu_fault(void) {
  semihost_write("fault: the firmware stopped on a processor exception\n");
  semihost_exit(99);
}
