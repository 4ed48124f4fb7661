#!/bin/sh
# The lens-finding challenge 1 recipe (tools/challenge1/recipe.sh, make challenge-weights and
# challenge-score) on a tiny scale: `train` simulates, trains tools/challenge1/vis101.arch and
# evaluates it on its test objects; `score` scores the challenge cutouts of tests/data with it and
# with the released OU_VIS (resampled to 200 x 200), one row per cutout, labels from the folders,
# and evaluates the scores with lens eval. Prints "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
unset MAKEFLAGS MFLAGS MAKELEVEL
. tests/check.sh
lens=${LENS:-build/lens}
out=$(mktemp -d "${TMPDIR:-/tmp}/lens-challenge1.XXXXXX") || exit 1
trap 'rm -rf "$out"' EXIT INT TERM
cutouts=tests/data/bologna-challenge1/space_based

${MAKE:-make} -s --no-print-directory "$lens" >"$out/make.log" 2>&1; rc=$?
check "make builds $lens (exit $rc: $(tail -n 2 "$out/make.log"))" [ "$rc" -eq 0 ]
export LENS="$lens"

echo "-- recipe.sh train (40 objects, 1 epoch)"
sh tools/challenge1/recipe.sh train "$out/run" 40 1 2 >"$out/train.log" 2>&1; rc=$?
check "train exits 0 (got $rc: $(tail -n 2 "$out/train.log"))" [ "$rc" -eq 0 ]
check "it leaves the finder" [ -f "$out/run/run/best.safetensors" ]
check "and its AUC with an interval on the simulated test objects" grep -q '^AUC [01]\.[0-9]*, 95% interval \[' "$out/run/test_eval.txt"
check "and by kind" grep -q '^kind=galaxy_galaxy ' "$out/run/test_eval.txt"
check "the finder reads 1 x 101 x 101 inputs" sh -c '"$1" info "$2" | grep -q "^input: *1 x 101 x 101"' - "$lens" "$out/run/run/best.safetensors"

echo "-- recipe.sh score (the 4 cutouts of tests/data)"
for model in "$out/run/run/best.safetensors" weights/OU_VIS.safetensors; do
  name=$(basename "$model" .safetensors)
  sh tools/challenge1/recipe.sh score "$model" "$cutouts" "$out/$name" 2 >"$out/$name.log" 2>&1; rc=$?
  check "score with $name exits 0 (got $rc: $(tail -n 2 "$out/$name.log"))" [ "$rc" -eq 0 ]
  check "labels.csv: 2 lenses then 2 non-lenses from the folders" \
    [ "$(cut -d, -f2 "$out/$name/labels.csv" 2>/dev/null | tr '\n' ' ')" = "label 1 1 0 0 " ]
  rows=$(awk -F, 'NR > 1 && $2 >= 0 && $2 <= 1 { n++ } END { print n + 0 }' "$out/$name/scores.csv" 2>/dev/null)
  check "scores.csv: p_lens in [0, 1] for the 4 cutouts (got $rows)" [ "${rows:-0}" -eq 4 ]
  check "scores.csv rows follow labels.csv" \
    [ "$(cut -d, -f1 "$out/$name/scores.csv" 2>/dev/null | tail -n +2)" = "$(cut -d, -f1 "$out/$name/labels.csv" | tail -n +2)" ]
  check "eval.txt: 4 objects, 2 lenses and 2 non-lenses, joined in order" has "$out/$name/eval.txt" "4 objects, 2 lenses and 2 non-lenses"
  check "eval.txt: the AUC with its interval" grep -q '^AUC [01]\.[0-9]*, 95% interval \[' "$out/$name/eval.txt"
  check "eval/metrics.json" [ -s "$out/$name/eval/metrics.json" ]
done
sh tools/challenge1/recipe.sh score "$out/missing.safetensors" "$cutouts" "$out/none" >"$out/none.log" 2>&1; rc=$?
check "a missing model: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "naming the model" has "$out/none.log" "no model $out/missing.safetensors"

check_summary
