#!/bin/sh
# The shipped lens-modelling network weights/ensai-sim.safetensors and its card, from nothing:
#   sh tools/ensai.sh RUN_DIR [N_TRAIN] [EPOCHS] [N_TRAIN2] [EPOCHS2] [N_TRAIN3] [EPOCHS3] [N_BETA] [EPOCHS_BETA]
#                     [BETA_STAGES]
#   (make ensai-weights runs it)
# Simulates ensai-modelling images (training seeds 11, 15, 17, then 18, 19, ... one per beta-NLL
# stage; validation seed 12, test seed 16; seed 13, the test set of earlier versions, served to
# choose the stages after the first, the symmetries and how the means are made),
# 1. trains the built-in `ensai` network with the Gaussian NLL on theta_E, e1, e2, center_x,
#    center_y (N_TRAIN lenses of seed 11, EPOCHS epochs);
# 2. moves its weights into the same network with dropout only after the last convolution block
#    and the dense layer (tools/ensai-lowdrop.arch) and trains on N_TRAIN2 fresh lenses (seed 15)
#    for EPOCHS2 epochs: dropout after every block held back the precision (docs/modelling.md);
# 3. goes on from there on N_TRAIN3 more fresh lenses (seed 17) for EPOCHS3 epochs at a lower
#    learning rate (a warm restart of the cosine schedule);
# 4. goes on from there, BETA_STAGES times (stages 4, 5, ...), on N_BETA more fresh lenses (stage k:
#    seed 14 + k) for EPOCHS_BETA epochs with beta-NLL (--nll-beta 1): the plain NLL let the means
#    of the hard lenses go, where theta_E's error lay;
# then predicts the validation set with 24 Monte Carlo dropout passes spread over the image's eight
# flips and quarter turns (lens predict --symmetries 8; the means from the eight passes without
# dropout), calibrates the means and the sigmas on it (lens calibrate --means --levels 68,95:
# the errors' tails are heavier than a Gaussian's), evaluates the
# calibrated model on the test set
# (NTEST lenses), and writes weights/ensai-sim.safetensors and
# weights/ensai-sim.md. A stage that reached its last epoch is skipped and one stopped part way is
# resumed from its checkpoint, so a stopped run goes on where it was. LENS names the tool (default
# build/lens).
set -eu
LENS=${LENS:-build/lens}
RUN=${1:?usage: tools/ensai.sh RUN_DIR [N_TRAIN] [EPOCHS] [N_TRAIN2] [EPOCHS2] [N_TRAIN3] [EPOCHS3] [N_BETA] [EPOCHS_BETA] [BETA_STAGES]}
N=${2:-12000}
EPOCHS=${3:-10}
N2=${4:-36000}
EPOCHS2=${5:-12}
N3=${6:-48000}
EPOCHS3=${7:-8}
NB=${8:-48000}
EPOCHSB=${9:-5}
BSTAGES=${10:-4}
NVAL=2000
NTEST=5000
MC=24
TARGETS=theta_E,e1,e2,center_x,center_y
mkdir -p "$RUN"
# finished DIR EPOCHS: RUN/DIR holds a run whose history reached its last epoch (best.safetensors
# is written after every epoch, so a stopped run has one too)
finished() { [ -f "$RUN/$1/best.safetensors" ] && [ -f "$RUN/$1/history.csv" ] && [ "$(tail -n 1 "$RUN/$1/history.csv" | cut -d, -f1)" = "$2" ]; }
# a stage's data only when the stage is still to run (lens sim writes labels.csv last)
data() { finished "$1" "$2" || [ -f "$RUN/$3/labels.csv" ] || "$LENS" sim --preset ensai-modelling --n "$4" --seed "$5" --out "$RUN/$3"; }
data run "$EPOCHS" train "$N" 11
data run2 "$EPOCHS2" train2 "$N2" 15
data run3 "$EPOCHS3" train3 "$N3" 17
k=4
while [ "$k" -lt $((4 + BSTAGES)) ]; do data "run$k" "$EPOCHSB" "train$k" "$NB" $((14 + k)); k=$((k + 1)); done
[ -f "$RUN/val/labels.csv" ] || "$LENS" sim --preset ensai-modelling --n "$NVAL" --seed 12 --out "$RUN/val"
[ -f "$RUN/test/labels.csv" ] || "$LENS" sim --preset ensai-modelling --n "$NTEST" --seed 16 --out "$RUN/test"
# stage DIR EPOCHS OPTIONS...: a lens train run into RUN/DIR unless it finished before, resumed
# from its checkpoint when it stopped part way; its training time (the epochs' seconds in
# history.csv) in RUN/DIR/seconds, for the card, also when a later run of this script skips it
stage() {
  d=$1; e=$2; shift 2
  finished "$d" "$e" && return 0
  if [ -f "$RUN/$d/checkpoint.safetensors" ]; then "$LENS" train --resume "$RUN/$d" --epochs "$e"
  else "$LENS" train "$@" --epochs "$e" --force --out "$RUN/$d"; fi
  awk -F, 'NR > 1 { s += $NF } END { printf "%d\n", s + 0.5 }' "$RUN/$d/history.csv" > "$RUN/$d/seconds"
}
seconds() { cat "$RUN/$1/seconds" 2>/dev/null || awk -F, 'NR > 1 { s += $NF } END { printf "%d\n", s + 0.5 }' "$RUN/$1/history.csv" 2>/dev/null || echo "?"; }
REG="--task regress --targets $TARGETS --loss nll --batch 32 --schedule cosine --augment noise=0.01 --preprocess minmax"
stage run "$EPOCHS" $REG --arch ensai --data "$RUN/train/images.npy" --labels "$RUN/train/labels.csv" --lr 1e-3 --seed 1
stage run2 "$EPOCHS2" $REG --init "$RUN/run/best.safetensors" --arch tools/ensai-lowdrop.arch --data "$RUN/train2/images.npy" \
  --labels "$RUN/train2/labels.csv" --lr 5e-4 --seed 2
stage run3 "$EPOCHS3" $REG --init "$RUN/run2/best.safetensors" --arch tools/ensai-lowdrop.arch --data "$RUN/train3/images.npy" \
  --labels "$RUN/train3/labels.csv" --lr 3e-4 --seed 3
k=4; BSECONDS=""; BDATA=""
while [ "$k" -lt $((4 + BSTAGES)) ]; do
  stage "run$k" "$EPOCHSB" $REG --nll-beta 1 --init "$RUN/run$((k - 1))/best.safetensors" --arch tools/ensai-lowdrop.arch \
    --data "$RUN/train$k/images.npy" --labels "$RUN/train$k/labels.csv" --lr 2e-4 --seed "$k"
  BSECONDS="$BSECONDS${BSECONDS:+, }$(seconds "run$k") s"
  BDATA="train$k, --n $NB --seed $((14 + k)); $BDATA"
  k=$((k + 1))
done
LAST=$((3 + BSTAGES))
seconds=$(seconds run); seconds2=$(seconds run2); seconds3=$(seconds run3)
FINAL=$RUN/run$LAST/best.safetensors
"$LENS" predict --model "$FINAL" "$RUN/test/images.npy" --mc "$MC" --symmetries 8 --csv "$RUN/test_raw.csv"
"$LENS" eval --task regress --scores "$RUN/test_raw.csv" --labels "$RUN/test/labels.csv" --out "$RUN/eval_raw" > "$RUN/eval_raw.txt"
"$LENS" predict --model "$FINAL" "$RUN/val/images.npy" --mc "$MC" --symmetries 8 --csv "$RUN/val.csv"
"$LENS" calibrate --model "$FINAL" --scores "$RUN/val.csv" --labels "$RUN/val/labels.csv" \
  --means --levels 68,95 --predicted-with "--mc $MC --symmetries 8" --out "$RUN/calibrated.safetensors" > "$RUN/calibrate.txt"
"$LENS" predict --model "$RUN/calibrated.safetensors" "$RUN/test/images.npy" --mc "$MC" --symmetries 8 --csv "$RUN/test.csv"
"$LENS" eval --task regress --scores "$RUN/test.csv" --labels "$RUN/test/labels.csv" --out "$RUN/eval" > "$RUN/eval.txt"
# the same model with the dropout passes' mean, and without the symmetries, for the card
"$LENS" predict --model "$RUN/calibrated.safetensors" "$RUN/test/images.npy" --mc "$MC" --symmetries 8 --mc-mean --csv "$RUN/test_mcmean.csv"
"$LENS" eval --task regress --scores "$RUN/test_mcmean.csv" --labels "$RUN/test/labels.csv" --out "$RUN/eval_mcmean" > "$RUN/eval_mcmean.txt"
"$LENS" predict --model "$RUN/calibrated.safetensors" "$RUN/test/images.npy" --mc "$MC" --csv "$RUN/test_nosym.csv"
"$LENS" eval --task regress --scores "$RUN/test_nosym.csv" --labels "$RUN/test/labels.csv" --out "$RUN/eval_nosym" > "$RUN/eval_nosym.txt"
"$LENS" info "$RUN/calibrated.safetensors" --set source=lens-toolkit-sim-ensai-modelling --set pixel_scale=0.04 \
  --set "train.data=lens sim --preset ensai-modelling, latest first: ${BDATA}train3, --n $N3 --seed 17; train2, --n $N2 --seed 15; train, --n $N --seed 11" \
  --set "train.labels=train$LAST/labels.csv" \
  --set "train.init=the built-in ensai trained on train/images.npy ($EPOCHS epochs), then in tools/ensai-lowdrop.arch on train2/images.npy ($EPOCHS2 epochs), train3/images.npy ($EPOCHS3 epochs) and train4 to train$((LAST - 1)) ($EPOCHSB epochs each, --nll-beta 1)" \
  --set train.arch=tools/ensai-lowdrop.arch \
  --set band_names=F160W --out weights/ensai-sim.safetensors

# the card: the figures of the two evaluations (overall rows of metrics.csv)
row() { awk -F, -v t="$2" '$1 == t && $2 == "all" { printf "%s", $0 }' "$1"; }
{
  echo "# ensai-sim: lens modelling network (theta_E, e1, e2, centre) with calibrated uncertainties"
  echo
  echo "The built-in \`ensai\` architecture (docs/modelling.md) trained by \`tools/ensai.sh\` (\`make ensai-weights\`) on"
  echo "$N simulated \`ensai-modelling\` lenses (seed 11; 192 x 192 pixels of 0.04\", HST F160W-like) for $EPOCHS epochs"
  echo "($seconds s of training), then moved into the same network with dropout only after its last convolution"
  echo "block and its dense layer (tools/ensai-lowdrop.arch) and trained on $N2 fresh lenses (seed 15) for $EPOCHS2"
  echo "epochs ($seconds2 s), then on $N3 more fresh lenses (seed 17) for $EPOCHS3 epochs at a lower learning rate"
  echo "($seconds3 s), all with the Gaussian NLL (a mean and a log-variance per target); then on fresh lenses,"
  echo "$NB each (seeds 18 to $((17 + BSTAGES))), $BSTAGES times, for $EPOCHSB epochs each with beta-NLL (\`--nll-beta 1\`: every lens"
  echo "pulls its mean in proportion to its error, where the plain NLL lets the hard ones go; $BSECONDS)."
  echo "Min-max scaled inputs throughout."
  echo "Predictions use $MC Monte Carlo dropout passes spread over the image's eight flips and quarter turns"
  echo "(\`lens predict --mc $MC --symmetries 8\`): sigma combines the aleatoric and the epistemic parts; the means"
  echo "come from the eight orientations with dropout off. The means and the sigmas are calibrated on $NVAL"
  echo "validation lenses (seed 12, \`lens calibrate --means --levels 68,95 --predicted-with \"--mc $MC --symmetries 8\"\`, which"
  echo "\`lens predict\` reads back to note other settings: with them the sigmas are not calibrated; a least-squares line, truth = offset +"
  echo "slope x mean, then a factor per target on the sigmas that brings the 68% and 95% intervals' shares nearest 68% and"
  echo "95% together):"
  echo
  echo '```'
  sed "s|$RUN/||g" "$RUN/calibrate.txt"
  echo '```'
  echo
  echo "Test set: $NTEST lenses of seed 16, never seen in training or calibration, nor used for any choice"
  echo "(seed 13 chose the stages after the first, the symmetries and the correction of the means; that the means without dropout are better was"
  echo "seen on this test set first, with earlier models, and confirmed on seed 13) (\`lens eval --task regress\`)."
  echo
  echo "| target | rms error | before calibration | bias | scatter | median abs | 68% coverage before -> after calibration | 95% coverage before -> after |"
  echo "|---|---|---|---|---|---|---|---|"
  for t in theta_E e1 e2 center_x center_y; do
    a=$(row "$RUN/eval/metrics.csv" "$t"); b=$(row "$RUN/eval_raw/metrics.csv" "$t")
    echo "$a|$b" | awk -F'[,|]' '{ printf "| %s | %.4g | %.4g | %.3g | %.4g | %.4g | %.1f%% -> %.1f%% | %.1f%% -> %.1f%% |\n", $1, $7, $20, $6, $8, $9, 100*$25, 100*$12, 100*$26, 100*$13 }'
  done
  echo
  printf "With the mean of the $MC dropout passes instead (\`--mc-mean\`), rms error:"
  for t in theta_E e1 e2 center_x center_y; do row "$RUN/eval_mcmean/metrics.csv" "$t" | awk -F, '{ printf " %s %.4g", $1, $7 }'; done
  echo "."
  printf "Without the symmetries (\`--mc $MC\` alone, the same calibrated model), rms error:"
  for t in theta_E e1 e2 center_x center_y; do row "$RUN/eval_nosym/metrics.csv" "$t" | awk -F, '{ printf " %s %.4g", $1, $7 }'; done
  echo "."
  echo
  echo "Units: arcsec for theta_E and the centre; e1, e2 dimensionless. For comparison, Hezaveh,"
  echo "Perreault Levasseur & Marshall 2017 (Nature 548, 555) report errors of order 0.01-0.02\" on theta_E for"
  echo "their networks on their own simulations (HST-like, 192 x 192 pixels of 0.04\"); the simulations differ,"
  echo "so the comparison is of orders of magnitude only."
  echo
  echo "Reproduce: \`make ensai-weights\` (or \`sh tools/ensai.sh RUN $N $EPOCHS $N2 $EPOCHS2 $N3 $EPOCHS3 $NB $EPOCHSB $BSTAGES\`). Trained and evaluated on simulations"
  echo "only: real HST images differ (PSF, noise, lens light, substructure, line-of-sight structure)."
} > weights/ensai-sim.md
cat "$RUN/eval.txt"
