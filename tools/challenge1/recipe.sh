#!/bin/sh
# Lens-finding challenge 1, space-based (Metcalf et al. 2019; docs/challenge.md): train a one-band
# finder on `lens sim` images of the challenge1-vis layout, and score the challenge's own cutouts.
#
#   sh tools/challenge1/recipe.sh train OUT N EPOCHS [THREADS]
#       OUT/train, OUT/test: N and N/10 simulated objects (seeds 1 and 2, half lenses);
#       OUT/run: lens train with tools/challenge1/vis101.arch; OUT/run/best.safetensors is the
#       finder; OUT/test_auc.txt its AUC on the simulated test objects.
#   sh tools/challenge1/recipe.sh score MODEL CUTOUTS OUT [THREADS]
#       CUTOUTS: a folder with lens/ and nolens/ FITS cutouts (the challenge's space_based);
#       OUT/labels.csv (input,label), OUT/scores.csv (lens predict), OUT/auc.txt, OUT/roc.png.
#
# LENS (default build/lens) is the tool; AUC_TOOL (default build/auc_interval) prints the AUC with
# a bootstrap interval. Run from the repository root (make challenge-weights, make challenge-score).
set -eu
lens=${LENS:-build/lens}
auc_tool=${AUC_TOOL:-build/auc_interval}
arch=tools/challenge1/vis101.arch

# The AUC of SCORES.csv (p_lens) against LABELS.csv (label), with a 95% bootstrap interval; the
# one line to change for `lens eval --scores SCORES --labels LABELS` once that command exists.
auc_with_interval() { "$auc_tool" --scores "$1" --labels "$2"; }

usage() {
  echo "usage: sh tools/challenge1/recipe.sh train OUT N EPOCHS [THREADS]" >&2
  echo "       sh tools/challenge1/recipe.sh score MODEL CUTOUTS OUT [THREADS]" >&2
  exit 2
}

need() { [ -x "$1" ] || { echo "challenge1: $1 not found; run make first" >&2; exit 1; }; }

train() {
  out=$1 n=$2 epochs=$3 threads=${4:-}
  need "$lens"; need "$auc_tool"
  t=${threads:+--threads $threads}
  mkdir -p "$out"
  echo "1. simulating $n training and $((n / 10)) test objects, layout challenge1-vis (half lenses)"
  "$lens" sim --preset euclid-lensfinding --layout challenge1-vis --n "$n" --seed 1 $t --out "$out/train"
  "$lens" sim --preset euclid-lensfinding --layout challenge1-vis --n $((n / 10)) --seed 2 $t --out "$out/test"
  echo "2. training $arch for $epochs epochs"
  "$lens" train --arch "$arch" --data "$out/train/images.npy" --labels "$out/train/labels.csv" \
    --epochs "$epochs" --batch 32 --lr 1e-3 --schedule cosine --class-weights auto --augment flip,rot90 \
    --minmax --seed 1 $t --out "$out/run"
  echo "3. scoring the $((n / 10)) simulated test objects"
  "$lens" predict --model "$out/run/best.safetensors" $t "$out/test/images.npy" >"$out/test_scores.csv"
  auc_with_interval "$out/test_scores.csv" "$out/test/labels.csv" | tee "$out/test_auc.txt"
}

score() {
  model=$1 cutouts=$2 out=$3 threads=${4:-}
  need "$lens"; need "$auc_tool"
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
  auc_with_interval "$out/scores.csv" "$out/labels.csv" | tee "$out/auc.txt"
  "$lens" plot roc --scores "$out/scores.csv" --labels "$out/labels.csv" --name "$(basename "$model")" \
    --title "challenge 1 space-based cutouts" --out "$out/roc.png" >/dev/null 2>&1 ||
    echo "(no ROC picture: lens plot could not write $out/roc.png)"
}

[ $# -ge 1 ] || usage
cmd=$1; shift
case "$cmd" in
  train) [ $# -ge 3 ] && [ $# -le 4 ] || usage; train "$@" ;;
  score) [ $# -ge 3 ] && [ $# -le 4 ] || usage; score "$@" ;;
  *) usage ;;
esac
