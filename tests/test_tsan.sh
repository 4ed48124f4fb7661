#!/bin/sh
# ThreadSanitizer: the thread pool's test and the tool built with -fsanitize=thread
# (build/tsan/test_pool, build/tsan/lens), the tool's threaded commands run with --threads 2:
# lens sim, train, predict, eval (its bootstrap), explain (occlusion) and find. A data race or
# other report of TSan fails the test (halt_on_error, its own exit status), and each command's
# output must be that of the plain tool with --threads 1: the tool promises results that do not
# depend on the thread count, and a race would show there too.
# TSan maps its shadow memory at fixed addresses; a kernel whose address randomisation it does not
# accept ("unexpected memory mapping") gets the runs under setarch -R. SKIP only if TSan cannot
# build or run here at all. Prints "N passed, N failed". About 20 s, 50 s with the TSan build.
cd "$(dirname "$0")/.." || exit 1
unset MAKEFLAGS MFLAGS MAKELEVEL
MAKE=${MAKE:-make}
CC=${CC:-cc}
LENS=${LENS:-build/lens}
. tests/check.sh
tsan="-fsanitize=thread -fno-omit-frame-pointer"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lens_test_tsan.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# A probe: two threads and a mutex. If it cannot be built, or cannot run even without address
# randomisation, TSan is not usable here.
cat > "$tmp/probe.c" <<'PROBE'
#include <pthread.h>
static int n;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *work(void *arg) { pthread_mutex_lock(&lock); n++; pthread_mutex_unlock(&lock); return arg; }
int main(void) {
  pthread_t t;
  if (pthread_create(&t, 0, work, 0)) return 1;
  work(0);
  pthread_join(t, 0);
  return n == 2 ? 0 : 1;
}
PROBE
if ! $CC $tsan -o "$tmp/probe" "$tmp/probe.c" -lpthread > "$tmp/probe.log" 2>&1; then
  echo "SKIP: $CC cannot build with -fsanitize=thread: $(head -n 1 "$tmp/probe.log")"
  check_summary; exit
fi
run=
if ! "$tmp/probe" > "$tmp/probe.log" 2>&1; then
  if setarch "$(uname -m)" -R "$tmp/probe" > "$tmp/probe2.log" 2>&1; then
    run="setarch $(uname -m) -R"
    echo "   TSan needs address randomisation off here: the runs go through $run ($(head -n 1 "$tmp/probe.log"))"
  else
    echo "SKIP: a ThreadSanitizer program does not run here: $(head -n 1 "$tmp/probe.log")"
    check_summary; exit
  fi
fi
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1"

echo "-- the TSan builds"
$MAKE -s --no-print-directory BUILD=build/tsan CFLAGS="-O1 -g" CFLAGS_EXTRA="$tsan" build/tsan/lens > "$tmp/make.log" 2>&1; rc=$?
check "make BUILD=build/tsan ... build/tsan/lens succeeds (exit $rc)" [ "$rc" -eq 0 ]
$MAKE -s --no-print-directory build/tsan/test_pool >> "$tmp/make.log" 2>&1; rc2=$?
check "make build/tsan/test_pool succeeds (exit $rc2)" [ "$rc2" -eq 0 ]
if [ "$rc" -ne 0 ] || [ "$rc2" -ne 0 ]; then cat "$tmp/make.log"; check_summary; exit; fi
tl=build/tsan/lens

# clean CMD...: runs CMD with stderr into $tmp/err; passes if it exits 0 and TSan said nothing.
clean() {
  $run "$@" > /dev/null 2> "$tmp/err"; status=$?
  if [ "$status" -ne 0 ] || grep -q "ThreadSanitizer" "$tmp/err"; then
    echo "   status $status: $*"; sed -n '1,40p' "$tmp/err"; return 1
  fi
}

echo "-- the pool's test"
$run build/tsan/test_pool > "$tmp/pool.log" 2>&1; rc=$?
check "build/tsan/test_pool exits 0 without a TSan report (exit $rc)" [ "$rc" -eq 0 ] && ! grep -q "ThreadSanitizer" "$tmp/pool.log"
check "build/tsan/test_pool: $(tail -n 1 "$tmp/pool.log")" grep -q "^[1-9][0-9]* passed, 0 failed$" "$tmp/pool.log"

echo "-- lens sim --threads 2"
check "lens sim under TSan" clean $tl sim --preset euclid-lensfinding --n 8 --seed 3 --threads 2 --out "$tmp/sim2"
"$LENS" sim --preset euclid-lensfinding --n 8 --seed 3 --threads 1 --out "$tmp/sim1" > /dev/null 2>&1
check "the same images.npy as one thread" cmp -s "$tmp/sim1/images.npy" "$tmp/sim2/images.npy"
check "the same labels.csv as one thread" cmp -s "$tmp/sim1/labels.csv" "$tmp/sim2/labels.csv"

echo "-- lens train --threads 2"
printf 'input 4 66 66\nmaxpool kernel=3\nconv2d name=c1 out=6 kernel=3 padding=1\nbatchnorm name=bn\nrelu\nmaxpool kernel=2\nflatten\ndense name=d1 out=2\n' > "$tmp/arch.txt"
train="train --arch $tmp/arch.txt --data $tmp/sim1/images.npy --labels $tmp/sim1/labels.csv --epochs 2 --batch 4 --lr 0.01 --val-fraction 0.25 --minmax --augment flip --seed 2"
check "lens train under TSan" clean $tl $train --threads 2 --out "$tmp/run2"
"$LENS" $train --threads 1 --out "$tmp/run1" > /dev/null 2>&1
# the same weights: the scores of the two checkpoints, by the plain tool
"$LENS" predict --threads 1 --model "$tmp/run1/checkpoint.safetensors" "$tmp/sim1/images.npy" --out "$tmp/w1.csv" > /dev/null 2>&1
"$LENS" predict --threads 1 --model "$tmp/run2/checkpoint.safetensors" "$tmp/sim1/images.npy" --out "$tmp/w2.csv" > /dev/null 2>&1
check "the weights of one thread (the checkpoints score alike)" cmp -s "$tmp/w1.csv" "$tmp/w2.csv"
check "the checkpoints score something" [ "$(wc -l < "$tmp/w1.csv")" -eq 9 ]

echo "-- lens predict --threads 2"
check "lens predict under TSan" clean $tl predict --threads 2 --batch 4 --model "$tmp/run1/checkpoint.safetensors" "$tmp/sim1/images.npy" --out "$tmp/p2.csv"
check "the scores of one thread" cmp -s "$tmp/w1.csv" "$tmp/p2.csv"

echo "-- lens eval --threads 2"
check "lens eval under TSan" clean $tl eval --scores "$tmp/w1.csv" --labels "$tmp/sim1/labels.csv" --bootstrap 200 --threads 2 --out "$tmp/e2"
"$LENS" eval --scores "$tmp/w1.csv" --labels "$tmp/sim1/labels.csv" --bootstrap 200 --threads 1 --out "$tmp/e1" > /dev/null 2>&1
check "the metrics of one thread (the bootstrap interval included)" cmp -s "$tmp/e1/metrics.csv" "$tmp/e2/metrics.csv"

echo "-- lens explain --threads 2 (occlusion)"
explain="explain --model $tmp/run1/checkpoint.safetensors --input $tmp/sim1/images.npy --index 1 --method occlusion --patch 11 --frames 8"
check "lens explain under TSan" clean $tl $explain --threads 2 --out "$tmp/x2"
"$LENS" $explain --threads 1 --out "$tmp/x1" > /dev/null 2>&1
same=1; n=0
for f in "$tmp"/x1/*; do n=$((n + 1)); cmp -s "$f" "$tmp/x2/$(basename "$f")" || { same=0; echo "   differs: $(basename "$f")"; }; done
check "the maps and pictures of one thread ($n files)" [ "$same" -eq 1 ] && [ "$n" -gt 0 ]

echo "-- lens find --threads 2"
"$LENS" sim --preset euclid-lensfinding --field 160 --lenses 2 --others 3 --seed 4 --threads 1 --out "$tmp/field" > /dev/null 2>&1
find="find --model $tmp/run1/checkpoint.safetensors --stride 16 --threshold 0 $tmp/field/field.fits"
check "lens find under TSan" clean $tl $find --threads 2 --out "$tmp/f2"
"$LENS" $find --threads 1 --out "$tmp/f1" > /dev/null 2>&1
check "the detections of one thread" cmp -s "$tmp/f1/detections.csv" "$tmp/f2/detections.csv"

check_summary
