#!/bin/sh
# tools/paper.sh (make paper) end to end at toy size: one model, a few dozen images, one epoch.
# It runs, writes the results table with a row of numbers, and a second run keeps what exists.
# Prints "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
. tests/check.sh
lens=${LENS:-build/lens}
out=$(mktemp -d "${TMPDIR:-/tmp}/lens-paper.XXXXXX")
trap 'rm -rf "$out"' EXIT INT TERM
export LENS="$lens" PAPER="$out" THREADS=2 N66=96 NTEST=60 NCOMPOUND=9 EPOCHS66=1 MODELS=OU_J
sh tools/paper.sh > "$out/log1.txt" 2>&1; rc=$?
check "tools/paper.sh exits 0 (status $rc; $(tail -n 2 "$out/log1.txt"))" [ "$rc" -eq 0 ]
row=$(grep '^| OU_J |' "$out/results.md" 2>/dev/null)
check "results.md has the OU_J row ($row)" [ -n "$row" ]
check "the row holds an AUC in [0, 1]" awk -v r="$row" 'BEGIN { split(r, f, "|"); a = f[4] + 0; exit !(f[4] ~ /[0-9]/ && a >= 0 && a <= 1) }'
check "the model was trained on one band" sh -c "'$lens' info '$out/run_OU_J/best.safetensors' | grep -q 'input: *1 x 66 x 66'"
check "the shipped copy names its band and pixel scale" sh -c "'$lens' info '$out/OU_J/finder.safetensors' | grep -q 'band_names: J\$' && '$lens' info '$out/OU_J/finder.safetensors' | grep -q 'pixel_scale: 0.3\$'"
check "the bright-elliptical subset holds only lenses and ellipticals" \
  sh -c "awk -F, 'NR > 1 && \$3 != \"galaxy_galaxy\" && \$3 != \"elliptical\" { bad = 1 } END { exit bad }' '$out/OU_J/bright.labels.csv'"
sh tools/paper.sh > "$out/log2.txt" 2>&1; rc=$?
check "a second run succeeds (status $rc)" [ "$rc" -eq 0 ]
check "and keeps the data and the trained model" sh -c "grep -q 'train66 exists, kept' '$out/log2.txt' && grep -q 'run_OU_J trained, kept' '$out/log2.txt'"
check_summary
