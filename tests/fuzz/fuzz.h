/* fuzz.h - what every fuzz target in tests/fuzz shares.
 *
 * Each fuzz_NAME.c defines LLVMFuzzerTestOneInput, the libFuzzer entry point, and is built two
 * ways (see the Makefile):
 *   make fuzz   with clang -fsanitize=fuzzer,address,undefined: libFuzzer mutates the inputs of
 *               tests/fuzz/corpus/NAME for FUZZ_TIME seconds (docs/hardening.md);
 *   make test   with replay.c as main() and the project's sanitizers: every committed input of
 *               tests/fuzz/corpus/NAME and tests/fuzz/regressions/NAME is run once.
 *
 * Readers refuse tensors larger than LENSNET_MAX_ELEMENTS; the default (2^32 elements, 16 GiB of
 * float32) is what a real file may need, but under the fuzzer a header that asks for that much
 * would only hit the sanitizer's allocation limit and stop the run. 2^24 elements (64 MiB) keeps
 * the limit checks reachable in a few bytes of input while every valid seed still loads.
 */
#ifndef LENS_FUZZ_H
#define LENS_FUZZ_H
#include <stddef.h>
#include <stdint.h>

#ifndef LENSNET_MAX_ELEMENTS
#define LENSNET_MAX_ELEMENTS ((size_t)1 << 24)
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The architecture the checkpoint target loads into and its seeds were saved from. */
#define FUZZ_SMALL_ARCH \
  "input 2 6 6\nconv2d name=conv out=3 kernel=3 padding=1\nbatchnorm name=bn\nrelu\nmaxpool kernel=2 stride=2\n" \
  "dropout p=0.25\nflatten\ndense name=fc out=2\n"

#endif
