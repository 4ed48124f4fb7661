#!/bin/sh
# Two-thread speed-up of what a user runs: `lens predict` and `lens train` as whole processes,
# --threads 1 against --threads 2, WALL time (the one figure threads change: CPU time stays
# about the same). Each workload runs ROUNDS times per thread count, one- and two-thread runs
# alternating so both meet the same spells of a shared machine; the table takes each side's
# fastest run (other tenants only ever add time) and shows every round's ratio too. Meaningful
# only on an otherwise idle machine with two free cores: the load average at the start is
# printed; nothing here checks a time. Needs GNU date (+%s.%N) for sub-second times.
#
#   make bench-threads
#   LENS=build/lens sh tests/bench_threads.sh
#
# Workloads (the same as tests/bench_process.sh, larger where a run would be too short to time):
# lens predict on 2048 OU-66 images (256 x 8) and 256 OU-200 images (32 x 8) from .npy at the
# default --batch; lens train, 1 epoch of 640 OU-66 images, batch 32, Adam.
# Environment: LENS, LENS_BENCH_ROUNDS (default 3), LENS_BENCH_EXACT=1 adds --exact (direct sums).

LENS=${LENS:-build/lens}
ROUNDS=${LENS_BENCH_ROUNDS:-3}
EXACT=""
[ "${LENS_BENCH_EXACT:-0}" = 1 ] && EXACT=--exact
if [ ! -x "$LENS" ]; then echo "!! $LENS is not built (make tools)"; exit 1; fi
work=$(mktemp -d "${TMPDIR:-/tmp}/lens-bench-threads.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
echo "== two threads against one, wall time of the whole process${EXACT:+ ($EXACT)}; load average at the start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
"$LENS" sim --preset euclid-lensfinding --layout ou66 --n 256 --seed 101 --threads 2 --out "$work/s66" >/dev/null 2>&1 &&
  "$LENS" sim --preset euclid-lensfinding --layout ou200 --n 32 --seed 102 --threads 2 --out "$work/s200" >/dev/null 2>&1 &&
  "$LENS" sim --preset euclid-lensfinding --layout ou66 --n 640 --seed 103 --threads 2 --out "$work/t66" >/dev/null 2>&1 ||
  { echo "!! lens sim failed to make the inputs"; exit 1; }

# run WORKLOAD THREADS: the command's wall seconds into T (empty when it failed)
run() {
  case $1 in
    predict66) set -- predict --threads "$2" --model weights/OU_66.safetensors --out "$work/p.csv" \
                 "$work/s66/images.npy" "$work/s66/images.npy" "$work/s66/images.npy" "$work/s66/images.npy" \
                 "$work/s66/images.npy" "$work/s66/images.npy" "$work/s66/images.npy" "$work/s66/images.npy" ;;
    predict200) set -- predict --threads "$2" --model weights/OU_200.safetensors --out "$work/p.csv" \
                 "$work/s200/images.npy" "$work/s200/images.npy" "$work/s200/images.npy" "$work/s200/images.npy" \
                 "$work/s200/images.npy" "$work/s200/images.npy" "$work/s200/images.npy" "$work/s200/images.npy" ;;
    train66) rm -rf "$work/run"
             set -- train --threads "$2" --arch ou66 --epochs 1 --val-fraction 0 --seed 1 --data "$work/t66/images.npy" \
                 --labels "$work/t66/labels.csv" --out "$work/run" ;;
  esac
  cmd=$1; shift
  s=$(now)
  # shellcheck disable=SC2086 # EXACT: empty or one word
  if "$LENS" "$cmd" $EXACT "$@" >/dev/null 2>"$work/err.txt"; then T=$(awk -v a="$s" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
  else T=""; echo "!! failed: lens $cmd $*"; tail -n 3 "$work/err.txt"; fi
}

: >"$work/lines.txt"
for w in predict66 predict200 train66; do
  r=1
  while [ "$r" -le "$ROUNDS" ]; do
    run "$w" 1; t1=$T
    run "$w" 2; t2=$T
    [ -n "$t1" ] && [ -n "$t2" ] && echo "$w $t1 $t2" | tee -a "$work/lines.txt" | awk '{ printf "[round %s] %-10s 1 thread %s s, 2 threads %s s, %.2fx\n", r, $1, $2, $3, $2 / $3 }' r="$r"
    r=$((r + 1))
  done
done

echo
awk '
  { k = $1; if (!(k in b1)) { order[++n] = k; b1[k] = $2; b2[k] = $3; lo[k] = hi[k] = $2 / $3 }
    if ($2 < b1[k]) b1[k] = $2; if ($3 < b2[k]) b2[k] = $3
    r = $2 / $3; if (r < lo[k]) lo[k] = r; if (r > hi[k]) hi[k] = r }
  END {
    name["predict66"] = "lens predict, 2048 OU-66"; name["predict200"] = "lens predict, 256 OU-200"; name["train66"] = "lens train, 640 OU-66"
    printf "%-26s | %10s | %10s | %8s | %s\n", "workload (wall, best)", "1 thread", "2 threads", "speed-up", "each round"
    for (j = 1; j <= n; j++) { k = order[j]
      printf "%-26s | %9.3fs | %9.3fs | %7.2fx | %.2f-%.2f\n", name[k], b1[k], b2[k], b1[k] / b2[k], lo[k], hi[k] }
  }' "$work/lines.txt"
