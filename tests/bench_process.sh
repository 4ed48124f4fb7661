#!/bin/sh
# What a user runs, measured as a process: `lens predict` and `lens train` on one thread, their
# CPU time (user + system, from /usr/bin/time or the shell's `times`) and peak RSS, beside the
# peers measured in the same run:
#   onnxruntime  tests/peer_ort_predict.js: the CPU time spent inside session.run only, on the
#                same images at the same batch (starting node, reading the .npy and creating the
#                session are not counted for the peer, but are for us);
#   PyTorch      tests/peer_torch_train.py: one epoch of Adam at batch 32 on the same images
#                (the loop only; importing torch and reading the data not counted).
#
#   make bench                     (runs tests/bench.sh, then this)
#   LENS=build/lens SHARED=../shared sh tests/bench_process.sh
#
# Prints "ours WORKLOAD: X img/s" / "peer WORKLOAD: X img/s" lines and a table with the ratio.
# Every workload, ours and the peers', is measured in ROUNDS rounds (default 3), one after the
# other within a round, so that both sides meet the same spells of a shared machine. The table
# takes each side's best round (its least CPU time: other tenants of the machine only ever add
# time, through the caches and memory they share) and also shows the ratio of every round, lowest
# to highest. Only ratios from one run mean anything; nothing here checks a time. Missing peers
# are skipped with a note. Environment: LENS, SHARED, ORT_DIR (default /tmp/ort), PYTHON (default
# /usr/bin/python3), LENS_BENCH_SCALE (scales the image counts: 0.25 for a quick look),
# LENS_BENCH_ROUNDS (the rounds: 1 for a quick look).

LENS=${LENS:-build/lens}
SHARED=${SHARED:-../shared}
ORT_DIR=${ORT_DIR:-/tmp/ort}
PYTHON=${PYTHON:-/usr/bin/python3}
SCALE=${LENS_BENCH_SCALE:-1}
ROUNDS=${LENS_BENCH_ROUNDS:-3}
here=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

work=$(mktemp -d "${TMPDIR:-/tmp}/lens-bench-process.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
note() { echo "-- $*"; }
count() { awk -v n="$1" -v s="$SCALE" 'BEGIN { c = int(n * s + 0.5); if (c < 8) c = 8; print c }'; }
: >"$work/lines.txt"

# cpu_of CMD...: runs CMD, sets CPU (seconds, user + system) and RSS (peak, MB) of it.
cpu_of() {
  if /usr/bin/time -f '%U %S %M' -o "$work/time.txt" "$@" >"$work/out.txt" 2>"$work/err.txt"; then
    CPU=$(awk '{ printf "%.3f", $1 + $2 }' "$work/time.txt")
    RSS=$(awk '{ printf "%.0f", $3 / 1024 }' "$work/time.txt")
    return 0
  fi
  echo "!! failed: $*"; tail -n 3 "$work/err.txt"
  return 1
}
rate() { awk -v n="$1" -v t="$2" 'BEGIN { if (t > 0) printf "%.1f", n / t; else print "0" }'; }

if [ ! -x /usr/bin/time ]; then note "skipped: /usr/bin/time is missing (apt-get install -y time)"; exit 0; fi
if [ ! -x "$LENS" ]; then echo "!! $LENS is not built (make tools)"; exit 1; fi

# /usr/bin/time counts CPU in hundredths of a second: each file is given REPEAT times so that
# a run takes over a second of CPU.
n66=$(count 256); n200=$(count 32); ntrain=$(count 320); repeat66=8; repeat200=4
echo "== whole process, one thread: lens predict on $n66 OU-66 images x $repeat66 and $n200 OU-200 images x $repeat200 (.npy, default --batch 32), lens train 1 epoch on $ntrain OU-66 images"
"$LENS" sim --preset euclid-lensfinding --layout ou66 --n "$n66" --seed 101 --threads 2 --out "$work/s66" >/dev/null 2>&1 &&
  "$LENS" sim --preset euclid-lensfinding --layout ou200 --n "$n200" --seed 102 --threads 2 --out "$work/s200" >/dev/null 2>&1 &&
  "$LENS" sim --preset euclid-lensfinding --layout ou66 --n "$ntrain" --seed 103 --threads 2 --out "$work/t66" >/dev/null 2>&1 ||
  { echo "!! lens sim failed to make the inputs"; exit 1; }

measure() {
# ---- ours --------------------------------------------------------------------------------
for m in 66 200; do
  n=$(eval echo "\$n$m"); repeat=$(eval echo "\$repeat$m")
  inputs=""; k=0
  while [ "$k" -lt "$repeat" ]; do inputs="$inputs $work/s$m/images.npy"; k=$((k + 1)); done
  n=$((n * repeat))
  # shellcheck disable=SC2086 # $inputs: the same file, REPEAT times
  if cpu_of "$LENS" predict --threads 1 --model weights/OU_$m.safetensors --out "$work/p$m.csv" $inputs; then
    echo "ours OU-$m predict process: $(rate "$n" "$CPU") img/s (CPU $CPU s for $n images, peak RSS $RSS MB)" | tee -a "$work/lines.txt" | sed "s/^/[round $round] /"
  fi
done
if cpu_of "$LENS" train --threads 1 --arch ou66 --epochs 1 --val-fraction 0 --seed 1 \
     --data "$work/t66/images.npy" --labels "$work/t66/labels.csv" --out "$work/train66.$round"; then
  echo "ours OU-66 train process: $(rate "$ntrain" "$CPU") img/s (CPU $CPU s for 1 epoch of $ntrain images, batch 32, Adam, peak RSS $RSS MB)" | tee -a "$work/lines.txt" | sed "s/^/[round $round] /"
fi

# ---- onnxruntime -------------------------------------------------------------------------
if ! command -v node >/dev/null 2>&1; then note "onnxruntime skipped: node is not installed"
elif [ ! -d "$ORT_DIR/node_modules/onnxruntime-node" ]; then
  note "onnxruntime skipped: no $ORT_DIR/node_modules/onnxruntime-node (make bench-setup)"
elif ! "$PYTHON" -c 'import torch' >/dev/null 2>&1; then note "onnxruntime skipped: exporting the models needs PyTorch"
elif [ ! -f "$work/onnx/ou66.onnx" ] && ! "$PYTHON" "$SHARED/peers/export_onnx.py" "$work/onnx" >"$work/export.txt" 2>&1; then
  note "onnxruntime skipped: export_onnx.py failed: $(tail -n 1 "$work/export.txt")"
else
  for m in 66 200; do
    NODE_PATH=$ORT_DIR/node_modules node "$here/peer_ort_predict.js" "$work/onnx/ou$m.onnx" "$work/s$m/images.npy" 32 \
      "OU-$m predict process" "$(eval echo "\$repeat$m")" 2>&1 | sed 's/^onnxruntime /peer /' | tee -a "$work/lines.txt" | sed "s/^/[round $round] /"
  done
fi

# ---- PyTorch -----------------------------------------------------------------------------
if "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
  "$PYTHON" "$here/peer_torch_train.py" "$SHARED/peers" "$work/t66/images.npy" "$work/t66/labels.csv" \
    "OU-66 train process" 2>&1 | sed 's/^pytorch /peer /' | tee -a "$work/lines.txt" | sed "s/^/[round $round] /"
else
  note "PyTorch skipped: '$PYTHON -c \"import torch\"' fails (make bench-setup)"
fi
}

round=1
while [ "$round" -le "$ROUNDS" ]; do
  echo "-- round $round of $ROUNDS"
  measure
  round=$((round + 1))
done

# ---- the table ---------------------------------------------------------------------------
echo
echo "== whole process vs peers (1 thread; ratio > 1: ours faster; best of $ROUNDS rounds, each side)"
awk '
  /^(ours|peer) / {
    i = index($0, ": "); key = substr($0, 6, i - 6); split(substr($0, i + 2), f, " ")
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    v = f[1] + 0
    if ($1 == "ours") { k = ++no[key]; o[key, k] = v; if (v > ours[key]) ours[key] = v }
    else { k = ++np[key]; p[key, k] = v; if (v > peer[key]) peer[key] = v }
  }
  END {
    printf "%-28s | %12s | %12s | %17s | %s\n", "workload", "ours img/s", "peer img/s", "ratio (ours/peer)", "each round"
    for (j = 1; j <= n; j++) {
      key = order[j]; lo = ""; hi = ""
      for (k = 1; k <= no[key] && k <= np[key]; k++)
        if (p[key, k] > 0) {
          r = o[key, k] / p[key, k]
          if (lo == "" || r < lo) lo = r
          if (hi == "" || r > hi) hi = r
        }
      a = (key in ours) ? sprintf("%.1f", ours[key]) : "-"
      b = (key in peer) ? sprintf("%.1f", peer[key]) : "-"
      r = (a != "-" && b != "-" && peer[key] > 0) ? sprintf("%.2f", ours[key] / peer[key]) : "-"
      e = (lo != "") ? sprintf("%.2f-%.2f", lo, hi) : "-"
      printf "%-28s | %12s | %12s | %17s | %s\n", key, a, b, r, e
    }
  }' "$work/lines.txt"
