#!/bin/sh
# The shipped scanning finder weights/ou66-scan.safetensors and locator
# weights/ou66-locator.safetensors, from nothing but weights/ou66-sim.safetensors:
#   sh tools/scan_weights.sh RUN_DIR [N_FINDER] [N_LOCATOR] [EPOCHS]     (make scan-weights runs it)
# 1. Training windows cut from simulated fields as a scan sees them (`lens sim --windows`, docs/find.md):
#    N_FINDER windows (seed 21), half of them with a lens within 8 pixels of the centre, half with
#    none within 16 (hard negatives centred on other galaxies, and blank-ish sky); N_LOCATOR
#    windows of lenses only (seed 22). Fields of 600 x 600 pixels with 20 lenses and 60 others.
# 2. The finder: weights/ou66-sim fine-tuned on the windows (flips and quarter turns, min-max),
#    then on fresh windows (seed 26, N_FINDER of them) at a lower learning rate.
# 3. The locator: OU-66 with a head of four outputs, trained from scratch on the lens windows
#    to predict center_x, center_y (arcsec from the window's centre) with the Gaussian NLL; then
#    fine-tuned on 2 x N_LOCATOR fresh lens windows (seed 25); then its weights moved into the
#    same network without dropout (tools/locator-nodrop.arch) and fine-tuned twice more: dropout's
#    noise, not the data, had limited its precision (docs/find.md, "Measured").
# 4. Both get their metadata (bands, pixel scale, source) and are written to weights/.
# Data are simulated once and kept in RUN_DIR; a stage that reached its last epoch is skipped and
# one stopped part way is resumed, so a stopped run continues where it was.
# tools/find_recovery.sh measures what they do on held-out fields (docs/find.md, "Measured").
set -eu
LENS=${LENS:-build/lens}
RUN=${1:?usage: tools/scan_weights.sh RUN_DIR [N_FINDER] [N_LOCATOR] [EPOCHS]}
NF=${2:-24000}
NL=${3:-12000}
EPOCHS=${4:-8}
mkdir -p "$RUN"
FIELDS="--preset euclid-lensfinding --field 600 --lenses 20 --others 60"
[ -f "$RUN/finder_data/labels.csv" ] || "$LENS" sim $FIELDS --windows "$NF" --seed 21 --out "$RUN/finder_data"
[ -f "$RUN/locator_data/labels.csv" ] || "$LENS" sim $FIELDS --windows "$NL" --lens-fraction 1 --seed 22 --out "$RUN/locator_data"
[ -f "$RUN/finder_data2/labels.csv" ] || "$LENS" sim $FIELDS --windows "$NF" --seed 26 --out "$RUN/finder_data2"
[ -f "$RUN/locator_data2/labels.csv" ] || "$LENS" sim $FIELDS --windows $((2 * NL)) --lens-fraction 1 --seed 25 --out "$RUN/locator_data2"
# stage DIR OPTIONS...: a lens train run into RUN/DIR unless its history reached its --epochs
# (best.safetensors is written after every epoch, so a stopped run has one too); a run stopped
# part way is resumed from its checkpoint
stage() {
  d=$1; shift
  e=; prev=
  for x; do [ "$prev" = "--epochs" ] && e=$x; prev=$x; done
  if [ -f "$RUN/$d/history.csv" ] && [ "$(tail -n 1 "$RUN/$d/history.csv" | cut -d, -f1)" = "$e" ]; then return 0; fi
  if [ -f "$RUN/$d/checkpoint.safetensors" ]; then "$LENS" train --resume "$RUN/$d" --epochs "$e"
  else "$LENS" train "$@" --force --out "$RUN/$d"; fi
}
start=$(date +%s)
stage finder --arch ou66 --init weights/ou66-sim.safetensors --data "$RUN/finder_data/images.npy" \
  --labels "$RUN/finder_data/labels.csv" --epochs "$EPOCHS" --batch 32 --lr 3e-4 --schedule cosine --augment flip,rot90 \
  --minmax --seed 1
stage finder2 --init "$RUN/finder/best.safetensors" --data "$RUN/finder_data2/images.npy" --labels "$RUN/finder_data2/labels.csv" \
  --epochs 3 --batch 32 --lr 1e-4 --schedule cosine --augment flip,rot90 --minmax --seed 2
finder_seconds=$(( $(date +%s) - start ))
start=$(date +%s)
REG="--task regress --targets center_x,center_y --loss nll --batch 32 --schedule cosine --minmax"
stage locator $REG --arch ou66 --weight-init he --data "$RUN/locator_data/images.npy" --labels "$RUN/locator_data/labels.csv" \
  --epochs "$EPOCHS" --lr 1e-3 --seed 1
stage locator2 $REG --init "$RUN/locator/best.safetensors" --data "$RUN/locator_data2/images.npy" --labels "$RUN/locator_data2/labels.csv" \
  --epochs 4 --lr 3e-4 --seed 2
stage locator3 $REG --init "$RUN/locator2/best.safetensors" --arch tools/locator-nodrop.arch --data "$RUN/locator_data2/images.npy" \
  --labels "$RUN/locator_data2/labels.csv" --epochs 2 --lr 1e-4 --seed 3
stage locator4 $REG --init "$RUN/locator3/best.safetensors" --data "$RUN/locator_data2/images.npy" --labels "$RUN/locator_data2/labels.csv" \
  --epochs 6 --lr 1e-4 --seed 4
locator_seconds=$(( $(date +%s) - start ))
"$LENS" info "$RUN/finder2/best.safetensors" --set band_names=VIS,Y,J,H --set pixel_scale=0.3 \
  --set "train.data=finder_data2/images.npy (lens sim $FIELDS --windows $NF --seed 26; before it finder_data, --seed 21)" \
  --set train.labels=finder_data2/labels.csv --set "train.init=weights/ou66-sim.safetensors, fine-tuned twice" \
  --set source=lens-toolkit-sim-euclid-lensfinding-windows --out weights/ou66-scan.safetensors
"$LENS" info "$RUN/locator4/best.safetensors" --set band_names=VIS,Y,J,H --set pixel_scale=0.3 \
  --set "train.data=locator_data2/images.npy (lens sim $FIELDS --windows $((2 * NL)) --lens-fraction 1 --seed 25; before it locator_data, --seed 22)" \
  --set train.labels=locator_data2/labels.csv --set "train.init=the locator of locator_data, fine-tuned, then without dropout, then fine-tuned again" \
  --set train.arch=tools/locator-nodrop.arch \
  --set source=lens-toolkit-sim-euclid-lensfinding-windows --out weights/ou66-locator.safetensors
echo "scan-weights: finder $finder_seconds s, locator $locator_seconds s of wall time -> weights/ou66-scan.safetensors, weights/ou66-locator.safetensors"
