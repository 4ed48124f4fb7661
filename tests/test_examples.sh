#!/bin/sh
# The programs of examples/ run on tiny inputs (a few seconds in all) and leave sane outputs:
# find_lenses scores the sample cutouts in [0, 1] and exits 1 with the library's message on a
# bad file; render_scene writes an .npy and a FITS image of the scene's size, the same image
# `lens render` makes with the same band and seed; stream_dataset writes images.npy and
# labels.csv of the count asked for, and nothing else, the same files `lens sim` writes for its
# preset, layout and seed; train_finder reports its epochs and a
# validation accuracy and saves weights that describe themselves; explain_prediction writes a
# PNG panel (or, built without PNG, says why not and exits 1). Prints "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
unset MAKEFLAGS MFLAGS MAKELEVEL
. tests/check.sh
lens=${LENS:-build/lens}
out=$(mktemp -d "${TMPDIR:-/tmp}/lens-examples.XXXXXX") || exit 1
trap 'rm -rf "$out"' EXIT INT TERM
is_png() { [ "$(head -c 8 "$1" 2>/dev/null | od -An -c | tr -d ' \n')" = '211PNG\r\n032\n' ]; }
# npy_shape FILE: the shape in an .npy header, e.g. "(6, 4, 66, 66)".
npy_shape() { head -c 256 "$1" 2>/dev/null | tr -d '\000' | LC_ALL=C sed -n "s/.*'shape': \(([0-9, ]*)\).*/\1/p"; }
# run NAME ARGS...: runs build/examples/NAME with stdout and stderr in $out/NAME.log; sets rc.
run() { name=$1; shift; build/examples/"$name" "$@" >"$out/$name.log" 2>&1; rc=$?; }

${MAKE:-make} -s --no-print-directory examples >"$out/make.log" 2>&1; rc=$?
check "make examples builds every example (exit $rc: $(tail -n 3 "$out/make.log"))" [ "$rc" -eq 0 ]

echo "-- find_lenses"
run find_lenses
check "find_lenses with its defaults exits 0 (got $rc)" [ "$rc" -eq 0 ]
scores=$(awk '/p_lens=/ { sub(/.*p_lens=/, ""); if ($1 >= 0 && $1 <= 1) n++ } END { print n + 0 }' "$out/find_lenses.log")
check "find_lenses prints p_lens in [0, 1] for the 4 sample cutouts (got $scores)" [ "$scores" -eq 4 ]
run find_lenses weights/OU_VIS.safetensors "$out/missing.fits" samples/vis/0000002_VIS.fits
check "a missing cutout makes find_lenses exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "it prints the library's message for it" has "$out/find_lenses.log" "$out/missing.fits: cannot open"
check "and still scores the other cutout" has "$out/find_lenses.log" "samples/vis/0000002_VIS.fits p_lens="

echo "-- render_scene"
run render_scene samples/scene.json "$out/render" VIS
check "render_scene exits 0 (got $rc: $(tail -n 1 "$out/render_scene.log"))" [ "$rc" -eq 0 ]
check "scene.npy is an 80 x 80 image" [ "$(npy_shape "$out/render/scene.npy")" = "(80, 80)" ]
check "scene.fits is a FITS file of whole 2880-byte blocks" \
  sh -c '[ "$(head -c 6 "$1")" = SIMPLE ] && [ $(($(wc -c <"$1") % 2880)) -eq 0 ]' - "$out/render/scene.fits"
if [ -x "$lens" ]; then
  "$lens" render samples/scene.json --out "$out/lens-scene.npy" --band VIS --seed 7 >/dev/null 2>&1
  check "render_scene's image is lens render's (band VIS, seed 7), byte for byte" cmp -s "$out/render/scene.npy" "$out/lens-scene.npy"
fi
printf '{"grid": {"num_pix": 10, "pixel_scale": 0.1}, "lens": [{"type": "SIE"}]}' >"$out/bad.json"
run render_scene "$out/bad.json" "$out/render"
check "a scene lacking theta_E makes render_scene exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "with the library's message naming the entry" has "$out/render_scene.log" "missing keyword 'theta_E'"

echo "-- stream_dataset"
run stream_dataset "$out/stream" 6
check "stream_dataset exits 0 (got $rc: $(tail -n 1 "$out/stream_dataset.log"))" [ "$rc" -eq 0 ]
check "images.npy holds 6 images [4, 66, 66]" [ "$(npy_shape "$out/stream/images.npy")" = "(6, 4, 66, 66)" ]
rows=$(awk -F, 'NR > 1 && ($2 == 0 || $2 == 1) { n++ } END { print n + 0 }' "$out/stream/labels.csv" 2>/dev/null || echo 0)
check "labels.csv has a label of 0 or 1 for each of the 6 images (got $rows)" [ "$rows" -eq 6 ]
check "labels.csv starts with the index and label columns" [ "$(head -c 12 "$out/stream/labels.csv")" = "index,label," ]
fields=$(awk -F, 'NR == 1 { n = NF } NF != n { bad++ } END { print (n > 3 && !bad) ? n : 0 }' "$out/stream/labels.csv" 2>/dev/null)
check "every row of labels.csv has the header's columns (got ${fields:-0}, 0: a row differs)" [ "${fields:-0}" -gt 3 ]
if [ -x "$lens" ]; then
  "$lens" sim --preset euclid-lensfinding --layout ou66 --seed 2024 --n 6 --out "$out/sim" >/dev/null 2>&1
  check "its labels.csv is lens sim's (same preset, layout, seed), byte for byte" cmp -s "$out/stream/labels.csv" "$out/sim/labels.csv"
  check "and so is its images.npy" cmp -s "$out/stream/images.npy" "$out/sim/images.npy"
fi
check "no temporary file is left behind" [ "$(ls "$out/stream")" = "$(printf 'images.npy\nlabels.csv')" ]

echo "-- train_finder"
run train_finder "$out/train" 40 2
check "train_finder exits 0 (got $rc: $(tail -n 1 "$out/train_finder.log"))" [ "$rc" -eq 0 ]
check "it reports 2 epochs" [ "$(grep -c '^epoch [12]/2' "$out/train_finder.log")" -eq 2 ]
acc=$(sed -n 's/^validation accuracy after 2 epochs: \([0-9.]*\)%$/\1/p' "$out/train_finder.log")
check "it reports a validation accuracy in [0, 100] (got '$acc')" awk -v a="${acc:-x}" 'BEGIN { exit !(a ~ /^[0-9.]+$/ && a >= 0 && a <= 100) }'
check "finder.safetensors names its classes" has "$out/train/finder.safetensors" '"classes":"non-lens,lens"'
check "finder.safetensors says its inputs are min-max scaled" has "$out/train/finder.safetensors" '"preprocess":"minmax"'
if [ -x "$lens" ]; then
  "$lens" predict --model "$out/train/finder.safetensors" "$out/stream/images.npy" >"$out/scores.csv" 2>/dev/null; rc=$?
  check "lens predict scores the streamed images with the trained finder (exit $rc, $(wc -l <"$out/scores.csv") lines)" \
    [ "$rc" -eq 0 -a "$(wc -l <"$out/scores.csv")" -eq 7 ]
fi

echo "-- explain_prediction"
run explain_prediction weights/OU_VIS.safetensors samples/vis/0000002_VIS.fits "$out/explain"
if grep -q "built without PNG support" "$out/explain_prediction.log"; then
  check "built without PNG, explain_prediction says so and exits 1 (got $rc)" [ "$rc" -eq 1 ]
else
  check "explain_prediction exits 0 (got $rc: $(tail -n 1 "$out/explain_prediction.log"))" [ "$rc" -eq 0 ]
  check "occlusion.png is a PNG" is_png "$out/explain/occlusion.png"
fi
check "it reports p_lens of the cutout" has "$out/explain_prediction.log" "0000002_VIS.fits: p_lens=0."

check_summary
