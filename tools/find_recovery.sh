#!/bin/sh
# How well `lens find` recovers simulated lenses (docs/find.md, "Measured"): simulates fields with
# `lens sim --field`, scans them, and matches detections to the truth tables.
#   tools/find_recovery.sh [OUT [MODEL [FIELDS [FIND OPTIONS...]]]]
# OUT (default build/find_recovery) receives field_K/ (field.fits, truth.csv) and found_sS/
# (detections.csv, maps, overviews of stride S). FIELDS fields (default 5) of 600 x 600 pixels at
# 0.3"/px, 8 lenses and 100 non-lenses each, seeds 9001, 9002, ... (the tests use others).
# Prints the share of lenses with a detection within 0.3" (1 pixel), within one stride and within
# half a window (33 pixels, the default merging radius: found at all), and the detections
# farther than half a window from every lens (false detections: no lens they could be; lenses
# lie a whole window apart) per square arcminute.
set -e
LENS=${LENS:-build/lens}
OUT=${1:-build/find_recovery}
MODEL=${2:-weights/ou66-sim.safetensors}
FIELDS=${3:-5}
[ $# -gt 3 ] && shift 3 || set --
mkdir -p "$OUT"
list=""
k=1
while [ "$k" -le "$FIELDS" ]; do
  seed=$((9000 + k))
  [ -f "$OUT/field_$k/truth.csv" ] || "$LENS" sim --preset euclid-lensfinding --field 600 --lenses 8 --others 100 --seed "$seed" --out "$OUT/field_$k" 2>/dev/null
  cp "$OUT/field_$k/field.fits" "$OUT/field_$k.fits"
  list="$list $OUT/field_$k.fits"
  k=$((k + 1))
done
# the stride the scan uses: the model's input width / 4 unless --stride is given
stride=$(echo "$@" | sed -n 's/.*--stride[ =]\([0-9]*\).*/\1/p')
[ -n "$stride" ] || stride=16
found="$OUT/found_s$stride"
"$LENS" find --model "$MODEL" "$@" --out "$found" $list
k=1
{
  while [ "$k" -le "$FIELDS" ]; do
    awk -F, -v f="$OUT/field_$k.fits" 'NR > 1 && $4 == 1 { print "T", f, $1, $2 }' "$OUT/field_$k/truth.csv"
    k=$((k + 1))
  done
  awk -F, 'NR > 1 { print "D", $1, $2, $3, $6 }' "$found/detections.csv"
} | awk -v stride="$stride" -v fields="$FIELDS" '
  $1 == "T" { nt++; tf[nt] = $2; tx[nt] = $3; ty[nt] = $4 }
  $1 == "D" { nd++; df[nd] = $2; dx[nd] = $3; dy[nd] = $4 }
  END {
    for (i = 1; i <= nt; i++) {
      best = 1e30
      for (j = 1; j <= nd; j++) if (df[j] == tf[i]) { d = sqrt((dx[j] - tx[i])^2 + (dy[j] - ty[i])^2); if (d < best) best = d }
      if (best <= 1.0) near++
      if (best <= stride) within++
      if (best <= 33) found++
      sum += best <= stride ? best : 0
    }
    for (j = 1; j <= nd; j++) {
      best = 1e30
      for (i = 1; i <= nt; i++) if (df[j] == tf[i]) { d = sqrt((dx[j] - tx[i])^2 + (dy[j] - ty[i])^2); if (d < best) best = d }
      if (best > 33) false_det++
    }
    area = fields * (600 * 0.3 / 60)^2
    printf "lenses %d, detections %d, fields %d (%.0f arcmin^2)\n", nt, nd, fields, area
    printf "recovered within 0.3\" (1 px): %d/%d = %.1f%%\n", near, nt, 100 * near / nt
    printf "recovered within one stride (%d px = %.1f\"): %d/%d = %.1f%%\n", stride, stride * 0.3, within, nt, 100 * within / nt
    if (within) printf "mean offset of those: %.2f px = %.2f\"\n", sum / within, 0.3 * sum / within
    printf "found within half a window (33 px = 9.9\"): %d/%d = %.1f%%\n", found, nt, 100 * found / nt
    printf "false detections (farther than 33 px from every lens): %d = %.2f per arcmin^2\n", false_det, false_det / area
  }'
