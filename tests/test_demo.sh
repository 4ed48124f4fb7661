#!/bin/sh
# make demo, the README's first command: it runs from the repository alone and leaves what it
# promises (scores.csv with one row per object, a ROC curve, an occlusion panel) and a table whose
# AUCs are numbers in [0, 1]. Prints "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
. tests/check.sh
lens=${LENS:-build/lens}
case "$lens" in /*) ;; *) lens="$root/$lens" ;; esac
out=$(mktemp -d "${TMPDIR:-/tmp}/lens-demo.XXXXXX")
trap 'rm -rf "$out"' EXIT INT TERM
is_png() { [ "$(head -c 8 "$1" 2>/dev/null | od -An -c | tr -d ' \n')" = '211PNG\r\n032\n' ]; }

sh tools/demo.sh "$lens" "$out" >"$out/log.txt" 2>&1; rc=$?
check "tools/demo.sh exits 0 (status $rc; log: $(tail -n 3 "$out/log.txt"))" [ "$rc" -eq 0 ]

rows=$(wc -l <"$out/scores.csv" 2>/dev/null || echo 0)
check "scores.csv has a header and 400 rows (has $rows lines)" [ "$rows" -eq 401 ]
check "scores.csv header" [ "$(head -n 1 "$out/scores.csv" 2>/dev/null)" = "index,label,kind,p_lens_OU_66,p_lens_ou66_sim" ]
bad=$(awk -F, 'NR > 1 && !($4 >= 0 && $4 <= 1 && $5 >= 0 && $5 <= 1 && ($2 == 0 || $2 == 1)) { n++ } END { print n + 0 }' "$out/scores.csv" 2>/dev/null)
check "every score in [0, 1] and every label 0 or 1 ($bad bad rows)" [ "${bad:-1}" -eq 0 ]
lenses=$(awk -F, 'NR > 1 && $2 == 1 { n++ } END { print n + 0 }' "$out/scores.csv" 2>/dev/null)
check "half of the sample are lenses ($lenses of 400)" [ "${lenses:-0}" -eq 200 ]

check "roc.png is a PNG" is_png "$out/roc.png"
check "explain/occlusion.png is a PNG" is_png "$out/explain/occlusion.png"

for name in "OU_66, released" "ou66-sim, trained"; do
  auc=$(grep "$name" "$out/log.txt" | awk '{ print $NF }')
  check "the table gives an AUC in [0, 1] for $name (got '${auc:-}')" \
    awk -v a="${auc:-x}" 'BEGIN { exit !(a ~ /^0\.[0-9]+$|^1\.000$/) }'
done
# The shipped finder is scored on a seed it was not trained on; its measured AUC is 0.978.
auc=$(grep "ou66-sim, trained" "$out/log.txt" | awk '{ print $NF }')
check "ou66-sim separates lenses on held-out seed 2026 (AUC ${auc:-?} > 0.9)" awk -v a="${auc:-0}" 'BEGIN { exit !(a > 0.9) }'
check "the top candidates are listed" has "$out/log.txt" "top 5 candidates"
check "the demo says where the explanation is" has "$out/log.txt" "$out/explain/occlusion.png"

check_summary
