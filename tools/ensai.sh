#!/bin/sh
# The shipped lens-modelling network weights/ensai-sim.safetensors and its card, from nothing:
#   sh tools/ensai.sh RUN_DIR [N_TRAIN] [EPOCHS]          (make ensai-weights runs it)
# Simulates ensai-modelling images (training seed 11, validation seed 12, test seed 13), trains the
# built-in `ensai` network with the Gaussian NLL on theta_E, e1, e2, center_x, center_y, predicts
# the validation set with 20 Monte Carlo dropout passes, calibrates the sigmas on it, evaluates
# the calibrated model on the test set, and writes weights/ensai-sim.safetensors and
# weights/ensai-sim.md (docs/modelling.md). LENS names the tool (default build/lens).
set -eu
LENS=${LENS:-build/lens}
RUN=${1:?usage: tools/ensai.sh RUN_DIR [N_TRAIN] [EPOCHS]}
N=${2:-12000}
EPOCHS=${3:-10}
NVAL=1000
NTEST=1000
MC=20
TARGETS=theta_E,e1,e2,center_x,center_y
mkdir -p "$RUN"
"$LENS" sim --preset ensai-modelling --n "$N" --seed 11 --out "$RUN/train"
"$LENS" sim --preset ensai-modelling --n "$NVAL" --seed 12 --out "$RUN/val"
"$LENS" sim --preset ensai-modelling --n "$NTEST" --seed 13 --out "$RUN/test"
start=$(date +%s)
"$LENS" train --task regress --targets "$TARGETS" --loss nll --arch ensai --data "$RUN/train/images.npy" \
  --labels "$RUN/train/labels.csv" --epochs "$EPOCHS" --batch 32 --lr 1e-3 --schedule cosine --augment noise=0.01 \
  --preprocess minmax --seed 1 --force --out "$RUN/run"
seconds=$(( $(date +%s) - start ))
"$LENS" predict --model "$RUN/run/best.safetensors" "$RUN/test/images.npy" --mc "$MC" --csv "$RUN/test_raw.csv"
"$LENS" eval --task regress --scores "$RUN/test_raw.csv" --labels "$RUN/test/labels.csv" --out "$RUN/eval_raw" > "$RUN/eval_raw.txt"
"$LENS" predict --model "$RUN/run/best.safetensors" "$RUN/val/images.npy" --mc "$MC" --csv "$RUN/val.csv"
"$LENS" calibrate --model "$RUN/run/best.safetensors" --scores "$RUN/val.csv" --labels "$RUN/val/labels.csv" \
  --out "$RUN/calibrated.safetensors" > "$RUN/calibrate.txt"
"$LENS" predict --model "$RUN/calibrated.safetensors" "$RUN/test/images.npy" --mc "$MC" --csv "$RUN/test.csv"
"$LENS" eval --task regress --scores "$RUN/test.csv" --labels "$RUN/test/labels.csv" --out "$RUN/eval" > "$RUN/eval.txt"
"$LENS" info "$RUN/calibrated.safetensors" --set source=lens-toolkit-sim-ensai-modelling --set pixel_scale=0.04 \
  --set "train.data=train/images.npy (lens sim --preset ensai-modelling --n $N --seed 11)" --set train.labels=train/labels.csv \
  --set band_names=F160W --out weights/ensai-sim.safetensors

# the card: the figures of the two evaluations (overall rows of metrics.csv)
row() { awk -F, -v t="$2" '$1 == t && $2 == "all" { printf "%s", $0 }' "$1"; }
{
  echo "# ensai-sim: lens modelling network (theta_E, e1, e2, centre) with calibrated uncertainties"
  echo
  echo "The built-in \`ensai\` architecture (docs/modelling.md) trained by \`tools/ensai.sh\` (\`make ensai-weights\`) on"
  echo "$N simulated \`ensai-modelling\` lenses (seed 11; 192 x 192 pixels of 0.04\", HST F160W-like) for $EPOCHS epochs"
  echo "with the Gaussian NLL (a mean and a log-variance per target), min-max scaled inputs; $seconds s of wall time."
  echo "Predictions use $MC Monte Carlo dropout passes (\`lens predict --mc $MC\`): sigma combines the aleatoric"
  echo "and the epistemic parts. The sigmas are calibrated on $NVAL validation lenses (seed 12, \`lens calibrate\`)."
  echo
  echo "Test set: $NTEST lenses of seed 13, never seen in training or calibration (\`lens eval --task regress\`)."
  echo
  echo "| target | rms error | bias | scatter | median abs | 68% coverage before -> after calibration | 95% coverage before -> after |"
  echo "|---|---|---|---|---|---|---|"
  for t in theta_E e1 e2 center_x center_y; do
    a=$(row "$RUN/eval/metrics.csv" "$t"); b=$(row "$RUN/eval_raw/metrics.csv" "$t")
    echo "$a|$b" | awk -F'[,|]' '{ printf "| %s | %.4g | %.3g | %.4g | %.4g | %.1f%% -> %.1f%% | %.1f%% -> %.1f%% |\n", $1, $7, $6, $8, $9, 100*$25, 100*$12, 100*$26, 100*$13 }'
  done
  echo
  echo "Units: arcsec for theta_E and the centre; e1, e2 dimensionless. For comparison, Hezaveh,"
  echo "Perreault Levasseur & Marshall 2017 (Nature 548, 555) report errors of order 0.01-0.02\" on theta_E for"
  echo "their networks on their own simulations (HST-like, 192 x 192 pixels of 0.04\"); the simulations differ,"
  echo "so the comparison is of orders of magnitude only."
  echo
  echo "Reproduce: \`make ensai-weights\` (or \`sh tools/ensai.sh RUN $N $EPOCHS\`). Trained and evaluated on simulations"
  echo "only: real HST images differ (PSF, noise, lens light, substructure, line-of-sight structure)."
} > weights/ensai-sim.md
cat "$RUN/eval.txt"
