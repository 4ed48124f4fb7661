# lens toolkit: `make` builds the lens tool, `make test` runs every test, `make bench` the benchmarks.
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

HEADERS   = $(wildcard lens*.h)
TOOL_SRC  = $(wildcard tools/*.c)
TOOL_HDR  = $(wildcard tools/*.h)
TEST_SRC  = $(wildcard tests/test_*.c)
TESTS     = $(TEST_SRC:tests/%.c=build/%)
SAN_TESTS = $(TEST_SRC:tests/%.c=build/san/%)
BENCH_SRC = $(wildcard tests/bench_*.c)
EXAMPLE_SRC = $(wildcard examples/*.c)
EXAMPLES  = $(EXAMPLE_SRC:examples/%.c=build/examples/%)
BENCHES   = $(BENCH_SRC:tests/%.c=build/%)

ORT_DIR  ?= /tmp/ort
.PHONY: all tools examples test test-fast warnings bench bench-setup weights clean
all: tools
tools: build/lens

build/lens: $(TOOL_SRC) $(TOOL_HDR) $(HEADERS) | build
	$(CC) $(ALL_CFLAGS) -o $@ $(TOOL_SRC) $(LDLIBS)

build/test_%: tests/test_%.c tests/check.h $(HEADERS) | build
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS)

build/san/test_%: tests/test_%.c tests/check.h $(HEADERS) | build
	@mkdir -p build/san
	$(CC) $(STRICT) -O1 -g $(ARCHFLAGS) $(CFLAGS_EXTRA) -I. $(SAN) -o $@ $< $(LDLIBS)

build/bench_%: tests/bench_%.c $(HEADERS) | build
	$(CC) $(ALL_CFLAGS) -O3 -o $@ $< $(LDLIBS)

build/examples/%: examples/%.c $(HEADERS) | build
	@mkdir -p build/examples
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS)

examples: $(EXAMPLES)

build/cxx_compile: tests/cxx_compile.cpp $(HEADERS) | build
	$(CXX) -std=c++11 -Wall -Wextra -pedantic -O1 -I. -o $@ $< -lm

build:
	@mkdir -p build

# The promise that the build is warning-free, kept by every `make test`: the tool's sources (which
# hold every header's implementation) under gcc and clang with -Werror, where installed.
warnings:
	@for cc in gcc clang; do \
	  if command -v $$cc >/dev/null 2>&1; then \
	    for f in $(TOOL_SRC); do $$cc $(STRICT) -Werror -O2 $(ARCHFLAGS) -I. -c $$f -o /dev/null || exit 1; done; \
	    echo "warning-free: $$cc $(STRICT) -O2"; \
	  fi; \
	done

# Every test binary prints "N passed, N failed"; tests/run.sh runs them all and sums.
test: warnings build/lens $(EXAMPLES) $(TESTS) $(SAN_TESTS) build/cxx_compile
	@LENS=build/lens SHARED=$(SHARED) sh tests/run.sh $(TESTS) build/cxx_compile $(SAN_TESTS)

test-fast: build/lens $(TESTS)
	@LENS=build/lens SHARED=$(SHARED) sh tests/run.sh $(TESTS)

bench: build/lens $(BENCHES)
	@LENS=build/lens SHARED=$(SHARED) ORT_DIR=$(ORT_DIR) sh tests/bench.sh $(BENCHES)

# The peers `make bench` measures beside the toolkit (Debian; as root or with sudo).
bench-setup:
	apt-get install -y python3-torch python3-numpy libopenblas-dev
	command -v npm >/dev/null || apt-get install -y npm
	npm install --prefix $(ORT_DIR) onnxruntime-node --ignore-scripts

# Retrains the shipped finder weights/ou66-sim.safetensors from simulations (about 12 minutes on
# two cores; weights/ou66-sim.md is its model card). Not part of make test.
WEIGHTS_RUN = build/weights
weights: build/lens
	build/lens sim --preset euclid-lensfinding --n 20000 --seed 1 --out $(WEIGHTS_RUN)/train
	build/lens sim --preset euclid-lensfinding --n 2000 --seed 2 --out $(WEIGHTS_RUN)/test
	build/lens train --arch ou66 --data $(WEIGHTS_RUN)/train/images.npy --labels $(WEIGHTS_RUN)/train/labels.csv \
	  --epochs 10 --batch 32 --lr 1e-3 --schedule cosine --class-weights auto --augment flip,rot90 --minmax --seed 1 \
	  --out $(WEIGHTS_RUN)/run
	build/lens predict --model $(WEIGHTS_RUN)/run/best.safetensors --minmax $(WEIGHTS_RUN)/test/images.npy > $(WEIGHTS_RUN)/test_scores.csv
	build/lens plot roc --scores $(WEIGHTS_RUN)/test_scores.csv --labels $(WEIGHTS_RUN)/test/labels.csv --out $(WEIGHTS_RUN)/roc.png
	cp $(WEIGHTS_RUN)/run/best.safetensors weights/ou66-sim.safetensors

clean:
	rm -rf build
