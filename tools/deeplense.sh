#!/bin/sh
# The shipped substructure classifier weights/deeplense-p4-sim.safetensors and the figures of its
# card weights/deeplense-p4-sim.md, from nothing:
#   sh tools/deeplense.sh RUN_DIR [N_TRAIN] [EPOCHS]          (make deeplense-weights runs it)
# Simulates deeplense-substructure images (DeepLenseSim Model I classes: no substructure, subhalos,
# vortex; training seed 1, test seed 2), trains the rotation-equivariant built-in p4cnn on them
# (flips and quarter turns; min-max scaled), and evaluates it on the test set with lens eval
# (one-vs-rest ROC per class, macro AUC, confusion matrix; docs/deeplense.md).
set -eu
LENS=${LENS:-build/lens}
RUN=${1:?usage: tools/deeplense.sh RUN_DIR [N_TRAIN] [EPOCHS]}
N=${2:-8000}
EPOCHS=${3:-12}
NTEST=1500
mkdir -p "$RUN"
[ -f "$RUN/train/labels.csv" ] || "$LENS" sim --preset deeplense-substructure --n "$N" --seed 1 --out "$RUN/train"
[ -f "$RUN/test/labels.csv" ] || "$LENS" sim --preset deeplense-substructure --n "$NTEST" --seed 2 --out "$RUN/test"
start=$(date +%s)
"$LENS" train --arch p4cnn --classes no_substructure,subhalos,vortex --data "$RUN/train/images.npy" \
  --labels "$RUN/train/labels.csv" --epochs "$EPOCHS" --batch 32 --lr 1e-3 --schedule cosine --augment flip,rot90 \
  --minmax --seed 1 --force --out "$RUN/run"
seconds=$(( $(date +%s) - start ))
"$LENS" info "$RUN/run/best.safetensors" --set band_names=F160W --set pixel_scale=0.05 \
  --set source=lens-toolkit-sim-deeplense-substructure --out weights/deeplense-p4-sim.safetensors
"$LENS" predict --model weights/deeplense-p4-sim.safetensors "$RUN/test/images.npy" --csv "$RUN/test_scores.csv"
"$LENS" eval --scores "$RUN/test_scores.csv" --labels "$RUN/test/labels.csv" --out "$RUN/eval" | tee "$RUN/eval.txt"
echo "deeplense-weights: trained in $seconds s of wall time -> weights/deeplense-p4-sim.safetensors; figures in $RUN/eval.txt"
