#!/bin/sh
# The shipped scanning finder weights/ou66-scan.safetensors and locator
# weights/ou66-locator.safetensors, from nothing but weights/ou66-sim.safetensors:
#   sh tools/scan_weights.sh RUN_DIR [N_FINDER] [N_LOCATOR] [EPOCHS]     (make scan-weights runs it)
# 1. Training windows cut from simulated fields as a scan sees them (`lens sim --windows`, docs/find.md):
#    N_FINDER windows (seed 21), half of them with a lens within 8 pixels of the centre, half with
#    none within 16 (hard negatives centred on other galaxies, and blank-ish sky); N_LOCATOR
#    windows of lenses only (seed 22). Fields of 600 x 600 pixels with 20 lenses and 60 others.
# 2. The finder: weights/ou66-sim fine-tuned on the windows (flips and quarter turns, min-max).
# 3. The locator: OU-66 with a head of four outputs, trained from scratch on the lens windows
#    to predict center_x, center_y (arcsec from the window's centre) with the Gaussian NLL.
# 4. Both get their metadata (bands, pixel scale, source) and are written to weights/.
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
start=$(date +%s)
"$LENS" train --arch ou66 --init weights/ou66-sim.safetensors --data "$RUN/finder_data/images.npy" \
  --labels "$RUN/finder_data/labels.csv" --epochs "$EPOCHS" --batch 32 --lr 3e-4 --schedule cosine --augment flip,rot90 \
  --minmax --seed 1 --force --out "$RUN/finder"
finder_seconds=$(( $(date +%s) - start ))
start=$(date +%s)
"$LENS" train --task regress --targets center_x,center_y --loss nll --arch ou66 --weight-init he \
  --data "$RUN/locator_data/images.npy" --labels "$RUN/locator_data/labels.csv" --epochs "$EPOCHS" --batch 32 --lr 1e-3 \
  --schedule cosine --minmax --seed 1 --force --out "$RUN/locator"
locator_seconds=$(( $(date +%s) - start ))
"$LENS" info "$RUN/finder/best.safetensors" --set band_names=VIS,Y,J,H --set pixel_scale=0.3 \
  --set "train.data=finder_data/images.npy (lens sim $FIELDS --windows $NF --seed 21)" --set train.labels=finder_data/labels.csv \
  --set source=lens-toolkit-sim-euclid-lensfinding-windows --out weights/ou66-scan.safetensors
"$LENS" info "$RUN/locator/best.safetensors" --set band_names=VIS,Y,J,H --set pixel_scale=0.3 \
  --set "train.data=locator_data/images.npy (lens sim $FIELDS --windows $NL --lens-fraction 1 --seed 22)" \
  --set train.labels=locator_data/labels.csv \
  --set source=lens-toolkit-sim-euclid-lensfinding-windows --out weights/ou66-locator.safetensors
echo "scan-weights: finder $finder_seconds s, locator $locator_seconds s of wall time -> weights/ou66-scan.safetensors, weights/ou66-locator.safetensors"
