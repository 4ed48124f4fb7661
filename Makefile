# lens toolkit: `make` builds the lens tool (build/lens), `make test` runs every test, `make bench`
# the benchmarks, `make install PREFIX=...` installs; docs/install.md has the prerequisites.
CC       ?= cc
CFLAGS   ?= -O2
STRICT   := -std=c99 -Wall -Wextra -pedantic
# Portable by default (baseline x86-64): lensnet.h picks its SIMD GEMM kernels from the CPU at
# run time, so the binaries run on any x86-64 and are as fast as a -march=native build.
# ARCHFLAGS=-march=native (or -mavx2 -mfma ...) still works and ties the binaries to such CPUs.
ARCHFLAGS ?=
CFLAGS_EXTRA ?=
ALL_CFLAGS = $(STRICT) $(CFLAGS) $(ARCHFLAGS) $(CFLAGS_EXTRA) -I.
LDLIBS   = -lm -lpthread
SAN      = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
SHARED  ?= ../shared

# Where `make` puts the tool (the tests keep their files in build/).
BUILD   ?= build

# PNG output goes through stb_image_write.h (Debian: libstb-dev). STB_INCLUDE=DIR takes it from DIR
# (DIR/stb_image_write.h or DIR/stb/stb_image_write.h) and only from there; NO_PNG=1 builds without
# it (lensviz.h's LENSVIZ_NO_PNG): every command that would write PNG then says so and exits 1.
NO_PNG      ?=
STB_INCLUDE ?=
ifneq ($(filter-out 0 no,$(NO_PNG)),)
PNG_CFLAGS = -DLENSVIZ_NO_PNG
else ifneq ($(STB_INCLUDE),)
PNG_CFLAGS = -I$(STB_INCLUDE) $(if $(wildcard $(STB_INCLUDE)/stb_image_write.h),-DLENSVIZ_STB_IMAGE_WRITE='"stb_image_write.h"')
else
PNG_CFLAGS =
endif
ALL_CFLAGS += $(PNG_CFLAGS)
# The PNG choice is recorded in $(PNG_STAMP), so switching it rebuilds what depends on it.
PNG_STAMP = $(BUILD)/png-config

# The toolkit's version, from lensnet.h (lenssim.h and lensviz.h carry the same).
VERSION := $(shell sed -n 's/^.define LENSNET_VERSION_STRING "\(.*\)"$$/\1/p' lensnet.h)

# make install PREFIX=... [DESTDIR=...]
PREFIX       ?= /usr/local
DESTDIR      ?=
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(PREFIX)/lib/pkgconfig
CMAKEDIR     ?= $(PREFIX)/lib/cmake/lens
DATADIR      ?= $(PREFIX)/share/lens
INSTALL_HEADERS = lensnet.h lenssim.h lensviz.h
INSTALL_WEIGHTS = $(wildcard weights/*.safetensors) $(wildcard weights/*.md)

HEADERS   = $(wildcard lens*.h)
TOOL_SRC  = $(wildcard tools/*.c)
TOOL_HDR  = $(wildcard tools/*.h)
TEST_SRC  = $(wildcard tests/test_*.c)
# The tests' shared headers: check.h (the harness), cli_check.h (running the tool), decode_image.h
TEST_HDR  = $(wildcard tests/*.h)
TESTS     = $(TEST_SRC:tests/%.c=build/%)
# (test_faults runs the tool hundreds of times under a fault-injection library: once is enough)
SAN_TESTS = $(filter-out build/san/test_faults,$(TEST_SRC:tests/%.c=build/san/%))
BENCH_SRC = $(wildcard tests/bench_*.c)
EXAMPLE_SRC = $(wildcard examples/*.c)
EXAMPLES  = $(EXAMPLE_SRC:examples/%.c=build/examples/%)
BENCHES   = $(BENCH_SRC:tests/%.c=build/%)

ORT_DIR  ?= /tmp/ort
.PHONY: all tools shared examples test test-slurm test-cross test-fast mcu mcu-toolchain fuzz warnings bench bench-setup weights paper demo samples clean check-stb deps install uninstall FORCE
.PHONY: challenge challenge-weights challenge-score ensai-weights scan-weights shift-bench bench-process bench-threads web deeplense-weights deeplense-resnet deeplense-lensfinding
all: tools
tools: $(BUILD)/lens

# One object per tools/*.c: the three implementations compile once, in tools/impl.c, and editing
# one subcommand recompiles that file alone (-MMD records what each object includes).
TOOL_OBJ = $(TOOL_SRC:tools/%.c=$(BUILD)/obj/%.o)
$(BUILD)/lens: $(TOOL_OBJ) | $(BUILD)
	$(CC) $(ALL_CFLAGS) -o $@ $(TOOL_OBJ) $(LDLIBS)

$(BUILD)/obj/%.o: tools/%.c $(PNG_STAMP) | check-stb $(BUILD)
	@mkdir -p $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

-include $(TOOL_OBJ:.o=.d)

# The shared library for other languages (the Python module python/lens, through ctypes):
# build/liblens.so holds the three implementations (tools/impl.c) and python/liblens.c, the flat
# entry points that take plain numbers and arrays where the headers take option structs.
# docs/python.md says how the module finds it.
SHARED_SRC = tools/impl.c python/liblens.c
SHARED_OBJ = $(SHARED_SRC:%.c=$(BUILD)/pic/%.o)
shared: $(BUILD)/liblens.so
$(BUILD)/liblens.so: $(SHARED_OBJ) | $(BUILD)
	$(CC) $(ALL_CFLAGS) -shared -o $@ $(SHARED_OBJ) -lm

$(BUILD)/pic/%.o: %.c $(PNG_STAMP) | check-stb $(BUILD)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -MMD -MP -c -o $@ $<

-include $(SHARED_OBJ:.o=.d)

build/test_%: tests/test_%.c $(TEST_HDR) $(HEADERS) $(PNG_STAMP) | check-stb build
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS)

SAN_CFLAGS = $(STRICT) -O1 -g $(ARCHFLAGS) $(CFLAGS_EXTRA) $(PNG_CFLAGS) -I. $(SAN)
# The tests that compile the whole implementation in (TEST_OWN_IMPL, below) do so at -O0 under
# the sanitizers: a third of -O1's compile time, and they run for seconds either way.
build/san/test_%: tests/test_%.c $(TEST_HDR) $(HEADERS) $(PNG_STAMP) | check-stb build
	@mkdir -p build/san
	$(CC) $(SAN_CFLAGS) -O0 -o $@ $< $(LDLIBS)

# Most tests use the headers' public API alone. They link the three implementations compiled
# once (tools/impl.c: the tool's $(BUILD)/obj/impl.o, and build/san/impl.o for the sanitizer
# builds) instead of compiling them again in each program, which was most of make test's build
# time: the headers' own guards against a second implementation (LENSNET__IMPLEMENTED and its
# siblings) are set on the command line. TEST_OWN_IMPL: the tests that configure the
# implementation (allocators, sizes) or reach its internals compile it themselves, as every test
# does when built alone or for another CPU (make test-cross).
TEST_OWN_IMPL = adapt equivariant fit formats gemm lensnet lenssim lensviz preallocated train
IMPL_LINKED   = -DLENSNET__IMPLEMENTED -DLENSSIM__IMPLEMENTED -DLENSVIZ__IMPLEMENTED
TESTS_LINKED  = $(filter-out $(TEST_OWN_IMPL:%=build/test_%),$(TESTS))
SAN_LINKED    = $(filter-out $(TEST_OWN_IMPL:%=build/san/test_%),$(SAN_TESTS))
$(TESTS_LINKED): build/test_%: tests/test_%.c $(BUILD)/obj/impl.o $(TEST_HDR) $(HEADERS) $(PNG_STAMP) | check-stb build
	$(CC) $(ALL_CFLAGS) $(IMPL_LINKED) -o $@ $< $(BUILD)/obj/impl.o $(LDLIBS)
$(SAN_LINKED): build/san/test_%: tests/test_%.c build/san/impl.o $(TEST_HDR) $(HEADERS) $(PNG_STAMP) | check-stb build
	$(CC) $(SAN_CFLAGS) $(IMPL_LINKED) -o $@ $< build/san/impl.o $(LDLIBS)
build/san/impl.o: tools/impl.c $(HEADERS) $(PNG_STAMP) | check-stb build
	@mkdir -p build/san
	$(CC) $(SAN_CFLAGS) -c -o $@ $<

# ThreadSanitizer builds, made and run by tests/test_tsan.sh: the pool's test here, the tool as
# make BUILD=build/tsan CFLAGS='-O1 -g' CFLAGS_EXTRA='$(TSAN)' build/tsan/lens.
TSAN = -fsanitize=thread -fno-omit-frame-pointer
build/tsan/test_pool: tests/test_pool.c tools/pool.c tools/pool.h $(TEST_HDR) $(HEADERS) | build
	@mkdir -p build/tsan
	$(CC) $(STRICT) -O1 -g $(ARCHFLAGS) -I. $(TSAN) -o $@ $< $(LDLIBS)

# The fault-injection library tests/test_faults.c preloads into the tool (glibc; a test tool).
build/fault_shim.so: tests/fault_shim.c | build
	$(CC) $(STRICT) -O2 -fPIC -shared -o $@ $< -ldl
build/test_faults: build/fault_shim.so

build/bench_%: tests/bench_%.c $(HEADERS) | build
	$(CC) $(ALL_CFLAGS) -O3 -o $@ $< $(LDLIBS)

build/examples/%: examples/%.c $(HEADERS) $(PNG_STAMP) | check-stb build
	@mkdir -p build/examples
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS)

examples: $(EXAMPLES)

build/cxx_compile: tests/cxx_compile.cpp $(HEADERS) $(PNG_STAMP) | check-stb build
	$(CXX) -std=c++11 -Wall -Wextra -pedantic -O1 $(PNG_CFLAGS) -I. -o $@ $< -lm

$(sort build $(BUILD)):
	@mkdir -p $@

# Rewritten only when NO_PNG or STB_INCLUDE change, so that a switch rebuilds the tool.
$(PNG_STAMP): FORCE | $(BUILD)
	@c='NO_PNG=$(NO_PNG) STB_INCLUDE=$(STB_INCLUDE)'; [ "$$(cat $@ 2>/dev/null)" = "$$c" ] || echo "$$c" > $@
FORCE:

# stb_image_write.h, looked for before anything compiles: in STB_INCLUDE when given, else where the
# compiler finds it (<stb/stb_image_write.h>, as Debian installs it, or "stb_image_write.h").
check-stb:
ifeq ($(PNG_CFLAGS),-DLENSVIZ_NO_PNG)
	@:
else
ifneq ($(STB_INCLUDE),)
	@if [ ! -f '$(STB_INCLUDE)/stb_image_write.h' ] && [ ! -f '$(STB_INCLUDE)/stb/stb_image_write.h' ]; then \
	  $(call stb_missing,in STB_INCLUDE=$(STB_INCLUDE) (as stb_image_write.h or stb/stb_image_write.h)); fi
else
	@for h in '<stb/stb_image_write.h>' '"stb_image_write.h"'; do \
	  printf '#include %s\n' "$$h" | $(CC) $(ALL_CFLAGS) -E -x c - -o /dev/null >/dev/null 2>&1 && exit 0; \
	done; \
	$(call stb_missing,on the compiler's include path (as <stb/stb_image_write.h> or "stb_image_write.h"))
endif
endif
define stb_missing
printf '%s\n' \
  "" \
  "Missing stb_image_write.h: not found $(subst ",\",$(1))." \
  "The lens tool writes PNG pictures through it (lens explain, lens plot, lens sim --png)." \
  "Install it with one of:" \
  "  Debian/Ubuntu:  sudo apt-get install libstb-dev     (or: make deps)" \
  "  Fedora:         sudo dnf install stb_image_write-devel" \
  "  vcpkg:          vcpkg install stb, then: make STB_INCLUDE=<vcpkg root>/installed/<triplet>/include" \
  "  macOS/Homebrew, or anywhere: copy the single header into a folder DIR, e.g." \
  "                  mkdir -p DIR && curl -Lo DIR/stb_image_write.h https://raw.githubusercontent.com/nothings/stb/master/stb_image_write.h" \
  "                  then: make STB_INCLUDE=DIR" \
  "or build without PNG output (everything else works):  make NO_PNG=1" \
  "See docs/install.md." "" >&2; exit 1
endef

# Installs stb_image_write.h on Debian-like systems (apt-get; through sudo when not root).
deps:
	@if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make deps: no apt-get here (it installs Debian's libstb-dev); see docs/install.md for other systems" >&2; exit 1; \
	fi; \
	sudo=; if [ "$$(id -u)" -ne 0 ]; then \
	  if command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	  else echo "make deps: not root and no sudo; as root run: apt-get install libstb-dev" >&2; exit 1; fi; \
	fi; \
	echo "$${sudo:+$$sudo }apt-get install -y libstb-dev"; \
	$$sudo apt-get install -y libstb-dev || { $$sudo apt-get update && $$sudo apt-get install -y libstb-dev; }

# The promise that the build is warning-free, kept by every `make test`: the tool's sources (which
# hold every header's implementation) and liblens.so's python/liblens.c under gcc and clang with
# -Werror, and the headers compiled as C++ under g++ and clang++, where installed.
# One stamp per compiler, so that make -j checks them side by side and a second make test
# skips what the sources have not changed since; a compiler not installed is not checked (no
# stamp, so it is once it is). gcc checks the headers at every level, since some of its warnings
# (-Wmaybe-uninitialized, -Warray-bounds, -Wstringop-overflow) come from its optimiser and change
# with the level; clang's come from its front end (all but a few back-end ones such as
# -Wframe-larger-than, not asked for here), the same at any level, so it checks once.
WARN_C    = gcc clang
WARN_CXX  = g++ clang++
WARN_DEPS = $(HEADERS) $(TOOL_SRC) $(TOOL_HDR) python/liblens.c tests/cxx_compile.cpp $(PNG_STAMP)
# (a compiler named otherwise, WARN_C=gcc-12 say, is checked at every level)
WARN_IMPL_clang     = -O2
WARN_LEVELS_clang++ = -O2
warn_impl   = $(or $(WARN_IMPL_$(1)),-O2 -O3)
warn_levels = $(or $(WARN_LEVELS_$(1)),-O1 -O2 -O3)
warnings: $(WARN_C:%=build/warnings/c-%) $(WARN_CXX:%=build/warnings/cxx-%)
$(WARN_C:%=build/warnings/c-%): build/warnings/c-%: $(WARN_DEPS) | check-stb
	@if command -v $* >/dev/null 2>&1; then \
	  for f in $(filter-out tools/impl.c,$(TOOL_SRC)) python/liblens.c; do $* $(STRICT) -Wshadow -Werror -O2 $(ARCHFLAGS) $(PNG_CFLAGS) -I. -c $$f -o /dev/null || exit 1; done; \
	  for o in $(call warn_impl,$*); do $* $(STRICT) -Wshadow -Werror $$o $(ARCHFLAGS) $(PNG_CFLAGS) -I. -c tools/impl.c -o /dev/null || exit 1; done; \
	  echo "warning-free: $* $(STRICT) -Wshadow -O2 (and the headers at $(call warn_impl,$*))"; \
	  mkdir -p $(@D) && touch $@; \
	fi
$(WARN_CXX:%=build/warnings/cxx-%): build/warnings/cxx-%: $(WARN_DEPS) | check-stb
	@if command -v $* >/dev/null 2>&1; then \
	  for o in $(call warn_levels,$*); do $* -std=c++11 -Wall -Wextra -pedantic -Wshadow -Werror $$o $(ARCHFLAGS) $(PNG_CFLAGS) -I. -c tests/cxx_compile.cpp -o /dev/null || exit 1; done; \
	  echo "warning-free: the headers as C++11 with $* -Wall -Wextra -pedantic -Wshadow at $(call warn_levels,$*)"; \
	  mkdir -p $(@D) && touch $@; \
	fi

# Fuzzing (docs/hardening.md): one libFuzzer target per file format a user's file reaches,
# tests/fuzz/fuzz_NAME.c, with seeds in tests/fuzz/corpus/NAME and every input that once crashed it
# in tests/fuzz/regressions/NAME. `make test` replays those (build/san/fuzz_NAME: the target with
# tests/fuzz/replay.c as main, under the sanitizers, at -O0: they run for a second and compile in a
# third of -O1's time); `make fuzz` fuzzes each target for FUZZ_TIME
# seconds, one after another, and fails if any crashed. It needs clang with libFuzzer
# (-fsanitize=fuzzer; Debian's clang-14 has it): FUZZ_CC=clang-14 names another.
# make fuzz FUZZ_TARGETS="csv npy" FUZZ_TIME=600 fuzzes some targets longer.
FUZZ_TARGETS ?= $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TIME    ?= 60
FUZZ_CC      ?= clang
FUZZ_HDR      = tests/fuzz/fuzz.h tests/fuzz/fuzz_model.h tests/fuzz/fuzz_file.h
FUZZ_REPLAY   = $(patsubst tests/fuzz/fuzz_%.c,build/san/fuzz_%,$(wildcard tests/fuzz/fuzz_*.c))

build/san/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(FUZZ_HDR) $(HEADERS) | build
	@mkdir -p build/san
	$(CC) $(STRICT) -O0 -g $(ARCHFLAGS) $(CFLAGS_EXTRA) -I. $(SAN) -DFUZZ_NAME='"$*"' -o $@ $< tests/fuzz/replay.c $(LDLIBS)

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_HDR) $(HEADERS) | build
	@mkdir -p build/fuzz
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I. -o $@ $< $(LDLIBS)

# The manifest target compiles the tool's tools/shard.c in.
build/san/fuzz_manifest build/fuzz/fuzz_manifest: tools/shard.c tools/shard.h

fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@nice -n 10 sh tests/fuzz/fuzz.sh $(FUZZ_TIME) $(FUZZ_TARGETS)

# Every test binary prints "N passed, N failed"; tests/run.sh runs them all and sums.
# The shell tests (tests/test_*.sh) run make themselves, with the same compiler and flags.
TEST_SH   = $(filter-out tests/test_slurm.sh,$(wildcard tests/test_*.sh))
TEST_ENV  = LENS=$(BUILD)/lens SHARED=$(SHARED) CC='$(CC)' CFLAGS='$(CFLAGS)' ARCHFLAGS='$(ARCHFLAGS)' CFLAGS_EXTRA='$(CFLAGS_EXTRA)'
# TEST_JOBS programs at once (tests/run.sh; by default one per CPU), the slowest started first
# (TEST_SLOW: about a minute each on one core); the outputs are shown in that order.
TEST_JOBS ?= $(shell nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
TEST_SLOW  = tests/test_cmake.sh build/test_faults tests/test_readme.sh build/san/test_populations \
             tests/test_tsan.sh tests/test_build.sh build/san/test_quantize
TEST_ALL   = $(TEST_SLOW) $(filter-out $(TEST_SLOW),$(TEST_SH) $(TESTS) build/cxx_compile $(SAN_TESTS) $(FUZZ_REPLAY))
test: warnings $(BUILD)/lens $(BUILD)/liblens.so $(EXAMPLES) $(TESTS) $(SAN_TESTS) $(FUZZ_REPLAY) build/cxx_compile
	@$(TEST_ENV) LENS_TEST_JOBS=$(TEST_JOBS) sh tests/run.sh $(TEST_ALL)

# The Slurm job arrays of tools/slurm on a one-node cluster started for the test (Debian's
# slurm-wlm and munge; SKIP without them); .ci/run installs them and runs this after make test.
test-slurm: $(BUILD)/lens
	@$(TEST_ENV) sh tests/test_slurm.sh

# The tests on other CPUs, built with Debian's cross compilers and run under qemu-user: aarch64
# (the NEON kernels) and s390x (big-endian: every file format). Not part of make test; SKIP
# without the compiler or qemu. docs/hardening.md ("Other CPUs") has the subset and its times.
CROSS_ARCHES ?= aarch64 s390x
CROSS_TESTS  ?= test_formats test_gemm test_lensnet test_scene test_lensviz test_lenssim test_train test_fit test_adapt test_wilde2022 \
                test_cli_merge
# Static, so that qemu-user needs no target libraries at run time. LENS_TEST_EMULATED: the slowest
# checks take their sampled form; =2 on s390x (no SIMD kernel, the slowest to emulate) leaves
# test_wilde2022's interpretability maps to the aarch64 run (tests/test_wilde2022.c).
CROSS_CFLAGS  = $(STRICT) -O2 -static $(CROSS_PNG_CFLAGS) -I.
CROSS_CFLAGS_aarch64 = -DLENS_TEST_EMULATED
CROSS_CFLAGS_s390x   = -DLENS_TEST_EMULATED=2
# NO_PNG and STB_INCLUDE as for make; otherwise Debian's libstb-dev, which the cross compilers do not
# find by themselves (they do not search /usr/include), else no PNG.
CROSS_PNG_CFLAGS = $(or $(PNG_CFLAGS),$(if $(wildcard /usr/include/stb/stb_image_write.h),-I/usr/include/stb \
                   -DLENSVIZ_STB_IMAGE_WRITE='"stb_image_write.h"',-DLENSVIZ_NO_PNG))
define cross_rules
build/cross/$(1)/test_%: tests/test_%.c $$(TEST_HDR) $$(HEADERS) $$(PNG_STAMP)
	@mkdir -p $$(@D)
	$(1)-linux-gnu-gcc $$(CROSS_CFLAGS) $$(CROSS_CFLAGS_$(1)) -o $$@ $$< $$(LDLIBS)
build/cross/$(1)/lens: $$(TOOL_SRC) $$(TOOL_HDR) $$(HEADERS) $$(PNG_STAMP)
	@mkdir -p $$(@D)
	$(1)-linux-gnu-gcc $$(CROSS_CFLAGS) -o $$@ $$(TOOL_SRC) $$(LDLIBS)
endef
$(foreach a,$(CROSS_ARCHES),$(eval $(call cross_rules,$(a))))
test-cross:
	@SHARED=$(SHARED) MAKE='$(MAKE)' sh tests/cross.sh '$(CROSS_ARCHES)' '$(CROSS_TESTS)'

# Firmware for a Cortex-M4F with no heap (docs/embedded.md): OU-66 built in static memory with
# lensnet_model_init_preallocated, its weights in flash (lens export-c), MCU_IMAGES images of
# tests/data/wilde2022/inputs_66.npy, for QEMU's mps2-an386 board. make mcu builds
# build/mcu/fw.elf with Debian's gcc-arm-none-eabi and libnewlib-arm-none-eabi; tests/test_mcu.sh
# (part of make test) runs it under qemu-system-arm and compares it with the host's logits.
MCU_CC      ?= arm-none-eabi-gcc
MCU_BUILD    = build/mcu
MCU_IMAGES  ?= 3
MCU_CPU     ?= -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
MCU_CFLAGS   = $(MCU_CPU) -std=c99 -Wall -Wextra -pedantic -O2 -ffunction-sections -fdata-sections -I. -I$(MCU_BUILD) -Iexamples/mcu
# no start files (examples/mcu/startup.c), newlib-nano without system calls; the C library's
# allocator is wrapped so that the firmware can count (and refuse) any call
MCU_LDFLAGS  = -nostartfiles -T examples/mcu/mps2_an386.ld --specs=nano.specs --specs=nosys.specs -Wl,--gc-sections \
               -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free -Wl,-Map=$(MCU_BUILD)/fw.map
MCU_SRC      = examples/mcu/startup.c examples/mcu/semihost.c examples/mcu/ou66_firmware.c
mcu: $(MCU_BUILD)/fw.elf
# The compiler and its flags (MCU_CPU among them), rewritten only when they change, so that
# make mcu after a build for another CPU builds the firmware again, and only then.
$(MCU_BUILD)/cpu.flags: FORCE
	@mkdir -p $(@D)
	@c='$(MCU_CC) $(MCU_CFLAGS) $(MCU_LDFLAGS)'; [ "$$(cat $@ 2>/dev/null)" = "$$c" ] || echo "$$c" > $@
# MCU_IMAGES likewise: make mcu MCU_IMAGES=5 after a build of 3 makes the inputs and firmware again
$(MCU_BUILD)/images.count: FORCE
	@mkdir -p $(@D)
	@[ "$$(cat $@ 2>/dev/null)" = "$(MCU_IMAGES)" ] || echo "$(MCU_IMAGES)" > $@
# the compiler and newlib, looked for first, so that their absence is a sentence naming the packages
mcu-toolchain:
	@command -v $(MCU_CC) >/dev/null 2>&1 && [ -f "$$($(MCU_CC) -print-file-name=nano.specs)" ] || { \
	  echo "make mcu needs $(MCU_CC) with newlib; Debian/Ubuntu: sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi" \
	       "(and qemu-system-arm to run the firmware; docs/embedded.md)" >&2; exit 1; }
$(MCU_BUILD)/fw.elf: $(MCU_SRC) examples/mcu/semihost.h examples/mcu/mps2_an386.ld lensnet.h $(MCU_BUILD)/ou66_model.c $(MCU_BUILD)/mcu_inputs.h \
                  $(MCU_BUILD)/cpu.flags | mcu-toolchain
	$(MCU_CC) $(MCU_CFLAGS) $(MCU_LDFLAGS) -o $@ $(MCU_SRC) $(MCU_BUILD)/ou66_model.c -lm
	@$(patsubst %gcc,%size,$(MCU_CC)) $@ 2>/dev/null || true
$(MCU_BUILD)/ou66_model.c: weights/OU_66.safetensors $(BUILD)/lens
	@mkdir -p $(@D)
	$(BUILD)/lens export-c $< --out $@ --name ou66
# The inputs as a C header, and the logits of the ordinary host build for them (the reference)
$(MCU_BUILD)/host_logits.txt: $(MCU_BUILD)/host_reference weights/OU_66.safetensors tests/data/wilde2022/inputs_66.npy $(MCU_BUILD)/images.count
	$(MCU_BUILD)/host_reference weights/OU_66.safetensors tests/data/wilde2022/inputs_66.npy $(MCU_IMAGES) $(MCU_BUILD)/mcu_inputs.h > $@.tmp
	mv $@.tmp $@
$(MCU_BUILD)/mcu_inputs.h: $(MCU_BUILD)/host_logits.txt
$(MCU_BUILD)/host_reference: examples/mcu/host_reference.c lensnet.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS)

test-fast: $(BUILD)/lens $(TESTS)
	@$(TEST_ENV) LENS_TEST_JOBS=$(TEST_JOBS) sh tests/run.sh $(TESTS)

bench: $(BUILD)/lens $(BENCHES)
	@LENS=$(BUILD)/lens SHARED=$(SHARED) ORT_DIR=$(ORT_DIR) sh tests/bench.sh $(BENCHES)
	@LENS=$(BUILD)/lens SHARED=$(SHARED) ORT_DIR=$(ORT_DIR) sh tests/bench_process.sh
	@LENS=$(BUILD)/lens sh tests/bench_threads.sh

# Only the whole-process figures (lens predict, lens train beside onnxruntime and PyTorch).
bench-process: $(BUILD)/lens
	@LENS=$(BUILD)/lens SHARED=$(SHARED) ORT_DIR=$(ORT_DIR) sh tests/bench_process.sh

# Two threads against one, wall time of lens predict and lens train (an idle machine: see the script).
bench-threads: $(BUILD)/lens
	@LENS=$(BUILD)/lens sh tests/bench_threads.sh

# The peers `make bench` measures beside the toolkit (Debian; as root or with sudo).
bench-setup:
	apt-get install -y python3-torch python3-numpy libopenblas-dev time libcfitsio-bin
	command -v npm >/dev/null || apt-get install -y npm
	npm install --prefix $(ORT_DIR) onnxruntime-node --ignore-scripts

# Retrains the shipped finder weights/ou66-sim.safetensors from simulations (about 12 minutes on
# two cores; weights/ou66-sim.md is its model card). Not part of make test.
WEIGHTS_RUN = build/weights
# The paper's table (docs/paper.md): seven finders trained and evaluated on held-out seeds; hours
# of CPU, restartable (tools/paper.sh says how to run parts of it). Not part of `make test`.
paper: build/lens
	sh tools/paper.sh

weights: build/lens
	build/lens sim --preset euclid-lensfinding --n 24000 --seed 1 --out $(WEIGHTS_RUN)/train
	build/lens sim --preset euclid-lensfinding --n 4000 --seed 2 --out $(WEIGHTS_RUN)/test
	build/lens train --arch ou66 --weight-init he --data $(WEIGHTS_RUN)/train/images.npy --labels $(WEIGHTS_RUN)/train/labels.csv \
	  --epochs 15 --batch 32 --lr 1e-3 --schedule cosine --class-weights auto --augment flip,rot90 --minmax --seed 1 \
	  --force --out $(WEIGHTS_RUN)/run
	build/lens predict --model $(WEIGHTS_RUN)/run/best.safetensors $(WEIGHTS_RUN)/test/images.npy --out $(WEIGHTS_RUN)/test_scores.csv
	build/lens eval --scores $(WEIGHTS_RUN)/test_scores.csv --labels $(WEIGHTS_RUN)/test/labels.csv --by kind --prior 1:100 --out $(WEIGHTS_RUN)/eval
	cp $(WEIGHTS_RUN)/run/best.safetensors weights/ou66-sim.safetensors

# The lens-modelling network weights/ensai-sim.safetensors and its card weights/ensai-sim.md
# (docs/modelling.md): ENSAI_N training lenses for ENSAI_EPOCHS epochs, then ENSAI_N2 fresh ones
# for ENSAI_EPOCHS2 epochs with less dropout, then ENSAI_N3 more for ENSAI_EPOCHS3 epochs at a lower
# rate, then ENSAI_BETA_STAGES stages of ENSAI_NBETA more for ENSAI_EPOCHS_BETA epochs each with
# beta-NLL, calibrated and evaluated on lenses of other seeds. Not part of make test (about 5 h 15
# min on 2 idle cores; 43 GB of simulated images in ENSAI_RUN).
ENSAI_RUN     ?= build/ensai
ENSAI_N       ?= 12000
ENSAI_EPOCHS  ?= 10
ENSAI_N2      ?= 36000
ENSAI_EPOCHS2 ?= 12
ENSAI_N3      ?= 48000
ENSAI_EPOCHS3 ?= 8
ENSAI_NBETA   ?= 48000
ENSAI_EPOCHS_BETA ?= 5
ENSAI_BETA_STAGES ?= 4
ensai-weights: $(BUILD)/lens
	LENS=$(BUILD)/lens sh tools/ensai.sh $(ENSAI_RUN) $(ENSAI_N) $(ENSAI_EPOCHS) $(ENSAI_N2) $(ENSAI_EPOCHS2) $(ENSAI_N3) $(ENSAI_EPOCHS3) \
	  $(ENSAI_NBETA) $(ENSAI_EPOCHS_BETA) $(ENSAI_BETA_STAGES)

# The scanning finder weights/ou66-scan.safetensors and the locator weights/ou66-locator.safetensors
# (docs/find.md): trained on windows cut from simulated fields. Not part of make test (about
# 1 h 45 min on 2 cores, half of it simulating windows; a stopped run continues
# with its next stage); tools/find_recovery.sh measures them on held-out fields.
SCAN_RUN ?= build/scan
scan-weights: $(BUILD)/lens
	LENS=$(BUILD)/lens sh tools/scan_weights.sh $(SCAN_RUN)

# The substructure classifier weights/deeplense-sim.safetensors and its card weights/deeplense-sim.md
# (docs/deeplense.md): DEEPLENSE_N objects of --preset deeplense-substructure (DeepLenseSim's Model
# I), DEEPLENSE_EPOCHS epochs of tools/deeplense/substructure.arch, evaluated on DEEPLENSE_N/5
# objects of another seed. Not part of make test (about 2 hours on 2 cores, 204,000 simulated
# images, 18 GB of disk with the default N); a stopped run continues where it stopped.
DEEPLENSE_RUN     ?= build/deeplense
DEEPLENSE_N       ?= 30000
DEEPLENSE_EPOCHS  ?= 2
DEEPLENSE_THREADS ?=
deeplense-weights: $(BUILD)/lens
	LENS=$(BUILD)/lens sh tools/deeplense/recipe.sh $(DEEPLENSE_RUN) $(DEEPLENSE_N) $(DEEPLENSE_EPOCHS) $(DEEPLENSE_THREADS)
# The same task with ResNet-18 on the central 96 x 96 (tools/deeplense/resnet.sh; docs/deeplense.md):
# about 2.5 hours on 2 cores with the default N, 94,000 simulated images, 9 GB of disk.
DEEPLENSE_RESNET_RUN ?= build/deeplense-resnet
# DEEPLENSE_RESNET_MORE=K: K more one-epoch stages on fresh sets of 4N/3 (each about an hour).
DEEPLENSE_RESNET_MORE ?= 0
deeplense-resnet: $(BUILD)/lens
	LENS=$(BUILD)/lens sh tools/deeplense/resnet.sh $(DEEPLENSE_RESNET_RUN) $(DEEPLENSE_N) "$(DEEPLENSE_THREADS)" $(DEEPLENSE_RESNET_MORE)

# The DeepLense lens-finding task (docs/deeplense.md): HSC-like finders trained at 1:16, tested at
# 1:100. Not part of make test (about 45 minutes on 2 cores: 5 to simulate, 40 to train 20 epochs;
# the better finder: LENSFINDING_ARCH=resnet18 LENSFINDING_N=68000 LENSFINDING_EPOCHS=6
# LENSFINDING_SYMMETRIES=8, about 2 hours to train on 2 cores; AUC 0.9927 on the test seed 2,
# 0.9906 on seed 4, 0.9916 over both; with LENSFINDING_ENSEMBLE=2, two such finders trained apart,
# about 4 hours: 0.9949, 0.9936, 0.9943 over both).
LENSFINDING_RUN    ?= build/deeplense-lensfinding
LENSFINDING_N      ?= 34000
LENSFINDING_EPOCHS ?= 20
LENSFINDING_ARCH   ?= tools/deeplense/hsc64.arch
LENSFINDING_SYMMETRIES ?= 1
# LENSFINDING_MORE: a second stage on that many new objects (2 epochs); LENSFINDING_TEST_SEED: the
# seed of the test objects (2; another is a second held-out sky). See tools/deeplense/lensfinding.sh.
LENSFINDING_MORE      ?= 0
LENSFINDING_TEST_SEED ?= 2
# LENSFINDING_ENSEMBLE: K finders trained apart on objects of their own, the test scored by all K
LENSFINDING_ENSEMBLE  ?= 1
deeplense-lensfinding: $(BUILD)/lens
	LENS=$(BUILD)/lens ARCH=$(LENSFINDING_ARCH) SYMMETRIES=$(LENSFINDING_SYMMETRIES) MORE=$(LENSFINDING_MORE) TEST_SEED=$(LENSFINDING_TEST_SEED) ENSEMBLE=$(LENSFINDING_ENSEMBLE) sh tools/deeplense/lensfinding.sh $(LENSFINDING_RUN) $(LENSFINDING_N) $(LENSFINDING_EPOCHS) $(DEEPLENSE_THREADS)

# The shifted-sky domain-adaptation benchmark (docs/deeplense.md, "A shifted sky"): two encoders
# trained on simulated Euclid-like images, adapted by ADDA, AdaMatch and self-ensembling to a sky
# with a wider PSF, a quarter of the exposure and other sources, scored on held-out images of both.
# Not part of make test (about an hour on 2 cores).
SHIFT_RUN ?= build/shift
shift-bench: $(BUILD)/lens
	LENS=$(BUILD)/lens sh tools/shift_bench.sh $(SHIFT_RUN)

# build/locate_compare FINDER LOCATOR images.npy labels.csv: a locator against a Grad-CAM peak
# and the window's centre on lens windows (docs/find.md, "Positions").
$(BUILD)/locate_compare: tests/locate_compare.c $(HEADERS) | $(BUILD)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS)

# Lens-finding challenge 1, space-based (Metcalf et al. 2019; docs/challenge.md). Not part of make
# test. make challenge-weights simulates CHALLENGE_N objects of the challenge1-vis layout and trains
# the one-band finder tools/challenge1/vis101.arch on them for CHALLENGE_EPOCHS epochs (the full
# run: 20000 and 10); make challenge-score scores the challenge's space-based cutouts
# (../shared/data/bologna-challenge1/space_based, or the few in tests/data without ../shared)
# with CHALLENGE_MODEL and evaluates it (lens eval: the AUC with a 95% bootstrap interval, ...).
# A short pipeline check:
#   make challenge CHALLENGE_N=6000 CHALLENGE_EPOCHS=5 (docs/challenge.md has its figures)
CHALLENGE_RUN     ?= build/challenge1
CHALLENGE_N       ?= 20000
CHALLENGE_EPOCHS  ?= 10
CHALLENGE_THREADS ?=
CHALLENGE_MODEL   ?= $(CHALLENGE_RUN)/run/best.safetensors
CHALLENGE_CUTOUTS ?= $(if $(wildcard $(SHARED)/data/bologna-challenge1/space_based/lens),$(SHARED)/data/bologna-challenge1/space_based,tests/data/bologna-challenge1/space_based)
challenge: challenge-weights challenge-score
challenge-weights: $(BUILD)/lens
	LENS=$(BUILD)/lens sh tools/challenge1/recipe.sh train $(CHALLENGE_RUN) $(CHALLENGE_N) $(CHALLENGE_EPOCHS) $(CHALLENGE_THREADS)
challenge-score: $(BUILD)/lens
	LENS=$(BUILD)/lens sh tools/challenge1/recipe.sh score $(CHALLENGE_MODEL) $(CHALLENGE_CUTOUTS) $(CHALLENGE_RUN)/score $(CHALLENGE_THREADS)

# The tool, the headers, the shared library (for the Python module), a pkg-config file (lens.pc)
# and the released weights with their cards: $(PREFIX)/bin/lens, $(PREFIX)/include/lens{net,sim,viz}.h,
# $(LIBDIR)/liblens.so, $(PKGCONFIGDIR)/lens.pc, $(PREFIX)/share/lens/weights/. DESTDIR is prepended
# to every path (for packaging).
install: $(BUILD)/lens $(BUILD)/liblens.so
	install -d '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(INCLUDEDIR)' '$(DESTDIR)$(LIBDIR)' '$(DESTDIR)$(PKGCONFIGDIR)' '$(DESTDIR)$(DATADIR)/weights'
	install -m 755 $(BUILD)/lens '$(DESTDIR)$(BINDIR)/lens'
	install -m 755 $(BUILD)/liblens.so '$(DESTDIR)$(LIBDIR)/liblens.so'
	install -m 644 $(INSTALL_HEADERS) '$(DESTDIR)$(INCLUDEDIR)/'
	install -m 644 $(INSTALL_WEIGHTS) '$(DESTDIR)$(DATADIR)/weights/'
	@printf '%s\n' \
	  'prefix=$(PREFIX)' \
	  'includedir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))' \
	  'weightsdir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(DATADIR)/weights)' \
	  '' \
	  'Name: lens' \
	  'Description: single-header C99 lens toolkit: lensnet.h (CNN lens finders), lenssim.h (lens simulator), lensviz.h (interpretability)' \
	  'Version: $(VERSION)' \
	  'Cflags: -I$${includedir}$(if $(STB_INCLUDE), -I$(abspath $(STB_INCLUDE)))$(if $(filter -DLENSVIZ_NO_PNG,$(PNG_CFLAGS)), -DLENSVIZ_NO_PNG)' \
	  'Libs: -lm -lpthread' > '$(DESTDIR)$(PKGCONFIGDIR)/lens.pc'
	install -d '$(DESTDIR)$(CMAKEDIR)'
	sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@INCLUDE_DIRS@|$(INCLUDEDIR)$(if $(STB_INCLUDE),;$(abspath $(STB_INCLUDE)))|' \
	  -e 's|@NO_PNG@|$(if $(filter -DLENSVIZ_NO_PNG,$(PNG_CFLAGS)),1)|' \
	  -e 's|@STB_FLAT@|$(if $(and $(STB_INCLUDE),$(wildcard $(STB_INCLUDE)/stb_image_write.h)),1)|' \
	  -e 's|@WEIGHTS_DIR@|$(DATADIR)/weights|' cmake/lensConfig.cmake.in > '$(DESTDIR)$(CMAKEDIR)/lensConfig.cmake'
	sed -e 's|@VERSION@|$(VERSION)|g' cmake/lensConfigVersion.cmake.in > '$(DESTDIR)$(CMAKEDIR)/lensConfigVersion.cmake'
	@echo "installed lens $(VERSION) under $(DESTDIR)$(PREFIX) (pkg-config: $(DESTDIR)$(PKGCONFIGDIR)/lens.pc; CMake: $(DESTDIR)$(CMAKEDIR))"

uninstall:
	rm -f '$(DESTDIR)$(BINDIR)/lens' '$(DESTDIR)$(LIBDIR)/liblens.so' $(addprefix '$(DESTDIR)$(INCLUDEDIR)/,$(addsuffix ',$(INSTALL_HEADERS))) '$(DESTDIR)$(PKGCONFIGDIR)/lens.pc'
	rm -f '$(DESTDIR)$(CMAKEDIR)/lensConfig.cmake' '$(DESTDIR)$(CMAKEDIR)/lensConfigVersion.cmake'
	rmdir '$(DESTDIR)$(CMAKEDIR)' 2>/dev/null || true
	rm -f $(addprefix '$(DESTDIR)$(DATADIR)/weights/,$(addsuffix ',$(notdir $(INSTALL_WEIGHTS))))
	rmdir '$(DESTDIR)$(DATADIR)/weights' '$(DESTDIR)$(DATADIR)' 2>/dev/null || true

clean:
	rm -rf build

# The first thing to run: simulate a small Euclid-like sample, score it with a released finder of
# Wilde et al. 2022 and the finder trained here, and write scores, a ROC curve and an explanation
# into build/demo (about 25 seconds on two cores, the build included).
demo: build/lens
	@sh tools/demo.sh build/lens build/demo

# The teaching page (docs/web.md): web/ compiled with emscripten into build/web/, which opens from
# the folder (file://) with nothing to download: the WebAssembly inside lens_web.js, the finders'
# weights and two sample cutouts as base64 in lens_data.js. EMCC=... names another emcc. Debian's
# emcc runs a JavaScript optimiser that needs Debian's node modules (/usr/share/nodejs), which a
# node from elsewhere does not search: hence NODE_PATH.
EMCC      ?= emcc
WEB_DATA   = weights/OU_VIS.safetensors weights/OU_66.safetensors samples/vis/0000002_VIS.fits samples/vis/0000001_VIS.fits
WEB_PAGE   = $(addprefix build/web/,index.html app.js style.css)
WEB_EMFLAGS = -sSINGLE_FILE=1 -sMODULARIZE=1 -sEXPORT_NAME=LensWeb -sALLOW_MEMORY_GROWTH=1 -sENVIRONMENT=web \
              -sEXPORTED_RUNTIME_METHODS=ccall,UTF8ToString
web: build/web/lens_web.js build/web/lens_data.js $(WEB_PAGE)
	@echo "make web: open build/web/index.html ($$(du -ck build/web/*.js build/web/*.html build/web/*.css | tail -n 1 | cut -f1) kB)"

build/web/lens_web.js: web/lens_web.c $(HEADERS) | build
	@mkdir -p build/web
	NODE_PATH=$${NODE_PATH:+$$NODE_PATH:}/usr/share/nodejs $(EMCC) $(STRICT) -O2 -I. $(WEB_EMFLAGS) -o $@.tmp.js web/lens_web.c
	mv $@.tmp.js $@

# var LENS_DATA = {"NAME": "base64", ...}: read by web/app.js (a script, so file:// pages may load it)
build/web/lens_data.js: $(WEB_DATA) | build
	@mkdir -p build/web
	@{ echo '/* the finders and sample cutouts of web/app.js, base64 (make web) */'; echo 'var LENS_DATA = {'; \
	  for f in $(WEB_DATA); do printf '"%s": "' "$$(basename $$f)"; base64 < $$f | tr -d '\n'; echo '",'; done; \
	  echo '};'; } > $@.tmp && mv $@.tmp $@

build/web/%: web/% | build
	@mkdir -p build/web
	cp $< $@

# Regenerates samples/ (samples/README.md says what they are) from the simulator with fixed seeds:
# objects 0-3 of seed 2022 (two lenses, two non-lenses), as one-band VIS cutouts at 0.1"/px for
# OU_VIS and as four one-band files at 0.3"/px per object, listed in samples/objects.txt, for OU_66.
SAMPLES_RUN = build/samples
samples: build/lens build/split_bands
	rm -rf $(SAMPLES_RUN) samples/vis samples/ou66
	mkdir -p samples/vis samples/ou66
	build/lens sim --preset euclid-lensfinding --layout ou200 --n 4 --seed 2022 --threads 1 --fits --out $(SAMPLES_RUN)/vis
	build/lens sim --preset euclid-lensfinding --layout ou66 --n 4 --seed 2022 --threads 1 --fits --out $(SAMPLES_RUN)/ou66
	for i in 0 1 2 3; do \
	  build/split_bands $(SAMPLES_RUN)/vis/fits/000000$$i.fits samples/vis/000000$$i 0.1 VIS - - - && \
	  build/split_bands $(SAMPLES_RUN)/ou66/fits/000000$$i.fits samples/ou66/000000$$i 0.3 VIS Y J H || exit 1; \
	done
	cp $(SAMPLES_RUN)/vis/labels.csv samples/vis/labels.csv
	cp $(SAMPLES_RUN)/ou66/labels.csv samples/ou66/labels.csv
	for i in 0 1 2 3; do \
	  echo "samples/ou66/000000$${i}_J.fits samples/ou66/000000$${i}_Y.fits samples/ou66/000000$${i}_H.fits samples/ou66/000000$${i}_VIS.fits"; \
	done > samples/objects.txt

build/split_bands: samples/split_bands.c $(HEADERS) | build
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS)
