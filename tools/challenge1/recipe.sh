#!/bin/sh
# Lens-finding challenge 1, space-based (Metcalf et al. 2019; docs/challenge.md): train a one-band
# finder on `lens sim` images of the challenge1-vis layout, and score the challenge's own cutouts.
#
#   sh tools/challenge1/recipe.sh train OUT N EPOCHS [THREADS]
#       OUT/train, OUT/test: N and N/10 simulated objects (seeds 1 and 2, half lenses);
#       OUT/run: lens train with tools/challenge1/vis101.arch; OUT/run/best.safetensors is the
#       finder; OUT/test_eval.txt and OUT/test_eval/ how it does on the simulated test objects,
#       overall and by kind (lens eval).
#   sh tools/challenge1/recipe.sh score MODEL CUTOUTS OUT [THREADS]
#       CUTOUTS: a folder with lens/ and nolens/ FITS cutouts (the challenge's space_based);
#       OUT/labels.csv (input,label), OUT/scores.csv (lens predict), OUT/eval.txt (the AUC with
#       its 95% bootstrap interval, AP, ...) and OUT/eval/ (lens eval: metrics, roc.png, pr.png).
#
# LENS (default build/lens) is the tool. Run from the repository root (make challenge-weights,
# make challenge-score).
set -eu
lens=${LENS:-build/lens}
arch=tools/challenge1/vis101.arch

usage() {
  echo "usage: sh tools/challenge1/recipe.sh train OUT N EPOCHS [THREADS]" >&2
  echo "       sh tools/challenge1/recipe.sh score MODEL CUTOUTS OUT [THREADS]" >&2
  exit 2
}

need() { [ -x "$1" ] || { echo "challenge1: $1 not found; run make first" >&2; exit 1; }; }

train() {
  out=$1 n=$2 epochs=$3 threads=${4:-}
  need "$lens"
  t=${threads:+--threads $threads}
  mkdir -p "$out"
  echo "1. simulating $n training and $((n / 10)) test objects, layout challenge1-vis (half lenses)"
  "$lens" sim --preset euclid-lensfinding --layout challenge1-vis --n "$n" --seed 1 $t --out "$out/train"
  "$lens" sim --preset euclid-lensfinding --layout challenge1-vis --n $((n / 10)) --seed 2 $t --out "$out/test"
  echo "2. training $arch for $epochs epochs"
  "$lens" train --arch "$arch" --weight-init he --data "$out/train/images.npy" --labels "$out/train/labels.csv" \
    --epochs "$epochs" --batch 32 --lr 1e-3 --schedule cosine --class-weights auto --augment flip,rot90 \
    --minmax --seed 1 $t --force --out "$out/run"
  echo "3. scoring the $((n / 10)) simulated test objects"
  "$lens" predict --model "$out/run/best.safetensors" $t "$out/test/images.npy" >"$out/test_scores.csv"
  "$lens" eval --scores "$out/test_scores.csv" --labels "$out/test/labels.csv" --by kind $t --out "$out/test_eval" |
    tee "$out/test_eval.txt"
}

score() {
  model=$1 cutouts=$2 out=$3 threads=${4:-}
  need "$lens"
  t=${threads:+--threads $threads}
  [ -f "$model" ] || { echo "challenge1: no model $model (make challenge-weights trains one)" >&2; exit 1; }
  [ -d "$cutouts/lens" ] && [ -d "$cutouts/nolens" ] || { echo "challenge1: $cutouts lacks lens/ and nolens/" >&2; exit 1; }
  mkdir -p "$out"
  # one row per cutout, lenses first, in the order lens predict scores them
  {
    echo "input,label"
    for f in "$cutouts"/lens/*.fits; do [ -f "$f" ] && echo "$f,1"; done
    for f in "$cutouts"/nolens/*.fits; do [ -f "$f" ] && echo "$f,0"; done
  } >"$out/labels.csv"
  tail -n +2 "$out/labels.csv" | cut -d, -f1 >"$out/cutouts.txt"
  echo "scoring $(wc -l <"$out/cutouts.txt" | tr -d ' ') cutouts of $cutouts with $model"
  # --resize: bilinear to the model's input size; nothing changes for a 101 x 101 model
  "$lens" predict --model "$model" --resize --list "$out/cutouts.txt" $t >"$out/scores.csv"
  # rows of scores.csv and labels.csv are joined by their input names
  "$lens" eval --scores "$out/scores.csv" --labels "$out/labels.csv" $t --out "$out/eval" | tee "$out/eval.txt"
}

[ $# -ge 1 ] || usage
cmd=$1; shift
case "$cmd" in
  train) [ $# -ge 3 ] && [ $# -le 4 ] || usage; train "$@" ;;
  score) [ $# -ge 3 ] && [ $# -le 4 ] || usage; score "$@" ;;
  *) usage ;;
esac
