#!/bin/sh
# The lens-finding challenge 1 recipe (tools/challenge1/recipe.sh, make challenge-weights and
# challenge-score) on a tiny scale: auc_interval gives the AUC counted by hand and a repeatable
# interval around it; `train` simulates, trains tools/challenge1/vis101.arch and scores its test
# objects; `score` scores the challenge cutouts of tests/data with it and with the released OU_VIS
# (resampled to 200 x 200), one row per cutout, labels from the folders. Prints "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
unset MAKEFLAGS MFLAGS MAKELEVEL
. tests/check.sh
lens=${LENS:-build/lens}
out=$(mktemp -d "${TMPDIR:-/tmp}/lens-challenge1.XXXXXX") || exit 1
trap 'rm -rf "$out"' EXIT INT TERM
cutouts=tests/data/bologna-challenge1/space_based

${MAKE:-make} -s --no-print-directory build/auc_interval "$lens" >"$out/make.log" 2>&1; rc=$?
check "make builds build/auc_interval (exit $rc: $(tail -n 2 "$out/make.log"))" [ "$rc" -eq 0 ]
export LENS="$lens" AUC_TOOL=build/auc_interval

echo "-- auc_interval"
# lenses score 0.9, 0.8, 0.3 and non-lenses 0.6, 0.2, 0.7: 7 of the 9 lens/non-lens pairs are
# ordered right, AUC 7/9
printf 'input,p_lens\na,0.9\nb,0.8\nc,0.3\nd,0.6\ne,0.2\nf,0.7\n' >"$out/s.csv"
printf 'input,label\na,1\nb,1\nc,1\nd,0\ne,0\nf,0\n' >"$out/l.csv"
build/auc_interval --scores "$out/s.csv" --labels "$out/l.csv" >"$out/auc1.txt" 2>&1; rc=$?
check "auc_interval exits 0 (got $rc: $(cat "$out/auc1.txt"))" [ "$rc" -eq 0 ]
check "it prints AUC 0.7778 for 7 of 9 pairs in order" has "$out/auc1.txt" "AUC 0.7778 95% "
check "the interval holds the AUC and lies in [0, 1]" awk '{ split($4, b, "-"); exit !(b[1] >= 0 && b[1] <= $2 && $2 <= b[2] && b[2] <= 1) }' "$out/auc1.txt"
build/auc_interval --scores "$out/s.csv" --labels "$out/l.csv" >"$out/auc2.txt" 2>&1
check "the same seed gives the same interval" cmp -s "$out/auc1.txt" "$out/auc2.txt"
printf 'input,label\na,1\nb,0\n' >"$out/short.csv"
build/auc_interval --scores "$out/s.csv" --labels "$out/short.csv" >"$out/auc3.txt" 2>&1; rc=$?
check "6 scores against 2 labels: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "with a message saying so" has "$out/auc3.txt" "6 scores but 2 labels"

echo "-- recipe.sh train (40 objects, 1 epoch)"
sh tools/challenge1/recipe.sh train "$out/run" 40 1 2 >"$out/train.log" 2>&1; rc=$?
check "train exits 0 (got $rc: $(tail -n 2 "$out/train.log"))" [ "$rc" -eq 0 ]
check "it leaves the finder" [ -f "$out/run/run/best.safetensors" ]
check "and its AUC on the simulated test objects" grep -q '^AUC [01]\.[0-9]* 95% ' "$out/run/test_auc.txt"
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
  check "auc.txt: the AUC over 2 lenses and 2 non-lenses" has "$out/$name/auc.txt" "2 lenses, 2 non-lenses)"
done
sh tools/challenge1/recipe.sh score "$out/missing.safetensors" "$cutouts" "$out/none" >"$out/none.log" 2>&1; rc=$?
check "a missing model: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "naming the model" has "$out/none.log" "no model $out/missing.safetensors"

check_summary
