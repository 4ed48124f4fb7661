# lens toolkit: `make` builds the lens tool, `make test` runs every test, `make bench` the benchmarks.
CC       ?= cc
CFLAGS   ?= -O2
STRICT   := -std=c99 -Wall -Wextra -pedantic
ARCHFLAGS ?= -march=native
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
BENCHES   = $(BENCH_SRC:tests/%.c=build/%)

.PHONY: all tools test test-fast test-san bench clean
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

build/cxx_compile: tests/cxx_compile.cpp $(HEADERS) | build
	$(CXX) -std=c++11 -Wall -Wextra -pedantic -O1 -I. -o $@ $< -lm

build:
	@mkdir -p build

# Every test binary prints "N passed, N failed"; tests/run.sh runs them all and sums.
test: build/lens $(TESTS) $(SAN_TESTS) build/cxx_compile
	@LENS=build/lens SHARED=$(SHARED) sh tests/run.sh $(TESTS) build/cxx_compile $(SAN_TESTS)

test-fast: build/lens $(TESTS)
	@LENS=build/lens SHARED=$(SHARED) sh tests/run.sh $(TESTS)

bench: build/lens $(BENCHES)
	@LENS=build/lens SHARED=$(SHARED) sh tests/bench.sh $(BENCHES)

clean:
	rm -rf build
