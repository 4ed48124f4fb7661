#!/bin/sh
# The shifted-sky domain-adaptation benchmark of docs/deeplense.md ("A shifted sky"):
#   sh tools/shift_bench.sh RUN_DIR [N_SOURCE] [N_TARGET] [EPOCHS] [ADAPT_EPOCHS]   (make shift-bench)
# Source: `lens sim --preset euclid-lensfinding` (OU-66 layout), labelled. Target: the same
# population seen through a PSF twice as wide, a quarter of the exposure, clumpy star-forming
# sources only and twice the line-of-sight galaxies: an unlabelled training split and a labelled
# test split (other seeds). Two encoders, the `ou66` CNN and the rotation-invariant `p4cnn`, are
# trained on the source; each is adapted to the target's unlabelled split by ADDA, AdaMatch and
# self-ensembling; every model is scored on the source test split and the target test split.
# The CNN is the shipped finder weights/ou66-sim (trained on 24,000 source images, 15 epochs;
# CNN_MODEL names another); p4cnn is trained here on N_SOURCE images for EPOCHS epochs.
# No target label reaches training: `lens adapt` is not given --target-labels. As the bound the
# methods are measured against, each encoder is also trained with the labels of other target
# images (rows "trained with target labels"). Writes
# RUN_DIR/results.csv and RUN_DIR/results.md. A finished step is skipped and a stopped training or
# adaptation resumed, so a stopped run continues; RUN_DIR/settings holds the sizes, and a RUN_DIR
# made with other sizes is refused. LENS names the tool (default build/lens); THREADS the threads
# (default: all); CNN_MODEL the CNN; CUTOUTS, CMODEL and CEPOCHS the challenge part (below).
set -eu
LENS=${LENS:-build/lens}
RUN=${1:?usage: tools/shift_bench.sh RUN_DIR [N_SOURCE] [N_TARGET] [EPOCHS] [ADAPT_EPOCHS]}
NSRC=${2:-8000}
NTGT=${3:-3000}
EPOCHS=${4:-8}
AEPOCHS=${5:-3}
NTEST=${NTEST:-1000}
SHIFT="--psf-scale 2 --exposure-scale 0.25 --snr-min 10 --clumpy-fraction 1 --neighbours 60"
T=""
if [ -n "${THREADS:-}" ]; then T="--threads $THREADS"; fi
CNN_MODEL=${CNN_MODEL:-weights/ou66-sim.safetensors}
CUTOUTS=${CUTOUTS:-../shared/data/bologna-challenge1/space_based}
CMODEL=${CMODEL:-weights/challenge1-vis-sim.safetensors}
CEPOCHS=${CEPOCHS:-40}
mkdir -p "$RUN"
settings="$NSRC $NTGT $EPOCHS $AEPOCHS $CNN_MODEL $CMODEL $CEPOCHS"
if [ -f "$RUN/settings" ] && [ "$(cat "$RUN/settings")" != "$settings" ]; then
  echo "shift_bench: $RUN holds a run with other settings ($(cat "$RUN/settings")); give another RUN_DIR" >&2
  exit 2
fi
echo "$settings" > "$RUN/settings"
# done DIR EPOCHS: DIR holds a finished run of EPOCHS epochs (history.csv: a header and a row each)
done_run() { [ -f "$1/history.csv" ] && [ "$(wc -l < "$1/history.csv")" -eq $(($2 + 1)) ]; }
# fit COMMAND DIR EPOCHS ARGS...: lens train or lens adapt into DIR, resumed when it was stopped
fit() {
  cmd=$1; dir=$2; ep=$3; shift 3
  if done_run "$dir" "$ep"; then return 0; fi
  start=$(date +%s)
  if [ -f "$dir/checkpoint.safetensors" ]; then "$LENS" "$cmd" $T --resume "$dir"
  else "$LENS" "$cmd" $T "$@" --epochs "$ep" --force --out "$dir"; fi
  echo "$(basename "$dir"),$(( $(date +%s) - start ))" >> "$RUN/seconds.csv"
}
sim() { # DIR ARGS...: simulate unless DIR holds images
  d=$1; shift
  [ -f "$RUN/$d/labels.csv" ] || "$LENS" sim --preset euclid-lensfinding $T "$@" --out "$RUN/$d"
}
sim source --n "$NSRC" --seed 101
sim source_test --n "$NTEST" --seed 102
# shellcheck disable=SC2086
sim target --n "$NTGT" --seed 201 $SHIFT
# shellcheck disable=SC2086
sim target_test --n "$NTEST" --seed 202 $SHIFT

score() { # MODEL NAME: AUC on both test splits, appended to results.csv
  for split in source_test target_test; do
    "$LENS" predict $T --model "$1" --csv "$RUN/scores_$2_$split.csv" "$RUN/$split/images.npy"
    "$LENS" eval --scores "$RUN/scores_$2_$split.csv" --labels "$RUN/$split/labels.csv" --out "$RUN/eval_$2_$split" > /dev/null
  done
  awk -F, -v name="$2" 'FNR == 2 && $1 == "all" { v[++k] = sprintf("%.4f,%.4f,%.4f", $9, $10, $11) }
    END { printf "%s,%s,%s\n", name, v[1], v[2] }' "$RUN/eval_$2_source_test/metrics.csv" "$RUN/eval_$2_target_test/metrics.csv" >> "$RUN/results.csv"
}
echo "model,source_auc,source_lo,source_hi,target_auc,target_lo,target_hi" > "$RUN/results.csv"
for arch in ou66 p4cnn; do
  if [ "$arch" = ou66 ]; then
    mkdir -p "$RUN/train_$arch"
    cp "$CNN_MODEL" "$RUN/train_$arch/best.safetensors"
  else
    fit train "$RUN/train_$arch" "$EPOCHS" --arch "$arch" --weight-init he --data "$RUN/source/images.npy" \
      --labels "$RUN/source/labels.csv" --batch 32 --lr 1e-3 --schedule cosine --augment flip,rot90 --minmax --seed 1
  fi
  score "$RUN/train_$arch/best.safetensors" "$arch"
  for method in adda adamatch self-ensembling; do
    fit adapt "$RUN/adapt_${arch}_$method" "$AEPOCHS" --method "$method" --init "$RUN/train_$arch/best.safetensors" \
      --source-data "$RUN/source/images.npy" --source-labels "$RUN/source/labels.csv" \
      --target-data "$RUN/target/images.npy" --batch 32 --seed 1
    score "$RUN/adapt_${arch}_$method/best.safetensors" "${arch}+$method"
  done
  # adabn (batch-norm statistics of the target; one pass, no source images): p4cnn has batch
  # norm, the OU-66 CNN has none
  if [ "$arch" = p4cnn ]; then
    if ! done_run "$RUN/adapt_${arch}_adabn" 1; then
      start=$(date +%s)
      "$LENS" adapt $T --method adabn --init "$RUN/train_$arch/best.safetensors" --target-data "$RUN/target/images.npy" \
        --batch 32 --force --out "$RUN/adapt_${arch}_adabn"
      echo "adapt_${arch}_adabn,$(( $(date +%s) - start ))" >> "$RUN/seconds.csv"
    fi
    score "$RUN/adapt_${arch}_adabn/best.safetensors" "${arch}+adabn"
  fi
done

# the upper bound no adaptation may use: each encoder trained with target labels (8,000 labelled
# target images of seed 203): p4cnn from scratch by the same recipe, the CNN fine-tuned from its
# source weights for 3 epochs at a tenth of the learning rate
# shellcheck disable=SC2086
sim target_labelled --n "$NSRC" --seed 203 $SHIFT
fit train "$RUN/oracle_p4cnn" "$EPOCHS" --arch p4cnn --weight-init he --data "$RUN/target_labelled/images.npy" \
  --labels "$RUN/target_labelled/labels.csv" --batch 32 --lr 1e-3 --schedule cosine --augment flip,rot90 --minmax --seed 1
fit train "$RUN/oracle_ou66" 3 --init "$CNN_MODEL" --data "$RUN/target_labelled/images.npy" \
  --labels "$RUN/target_labelled/labels.csv" --batch 32 --lr 1e-4 --schedule cosine --augment flip,rot90 --minmax --seed 1
score "$RUN/oracle_ou66/best.safetensors" "ou66+target-labels"
score "$RUN/oracle_p4cnn/best.safetensors" "p4cnn+target-labels"

# the table: AUC on the source and target test splits; the share of the lost AUC recovered
awk -F, 'NR > 1 {
    split($1, p, "+"); enc = p[1]; m = (2 in p) ? p[2] : "none (source only)"
    if (m == "target-labels") m = "none: trained with target labels (the upper bound)"
    if (!(2 in p)) { src[enc] = $2; before[enc] = $5 }
    gain = $5 - before[enc]; lost = src[enc] - before[enc]
    rec = m == "none (source only)" ? "" : lost > 0 ? sprintf("%.0f%%", 100 * gain / lost) : "n/a"
    printf "| %s | %s | %.3f [%.3f, %.3f] | %.3f [%.3f, %.3f] | %s |\n", enc, m, $2, $3, $4, $5, $6, $7, rec
  }
  BEGIN { print "| encoder | adaptation | source AUC [95%] | target AUC [95%] | share of the lost AUC recovered |"
          print "|---|---|---|---|---|" }' "$RUN/results.csv" > "$RUN/results.md"
cat "$RUN/results.md"

# (b) another group's simulator: the space-based cutouts of lens-finding challenge 1 (CUTOUTS, default
# ../shared/data/bologna-challenge1/space_based; skipped when absent) as the target, unlabelled in
# adaptation and labelled only to score. The encoder is the shipped weights/challenge1-vis-sim
# (docs/challenge.md), the source its own layout (challenge1-vis, seed 1: its training seed).
if ls "$CUTOUTS"/lens/*.fits "$CUTOUTS"/nolens/*.fits > /dev/null 2>&1 && [ -f "$CMODEL" ]; then
  C="$RUN/challenge"
  mkdir -p "$C"
  [ -f "$C/source/labels.csv" ] || "$LENS" sim --preset euclid-lensfinding --layout challenge1-vis $T --n 4000 --seed 1 --out "$C/source"
  { echo "input,label"
    for f in "$CUTOUTS"/lens/*.fits; do echo "$f,1"; done
    for f in "$CUTOUTS"/nolens/*.fits; do echo "$f,0"; done; } > "$C/labels.csv"
  tail -n +2 "$C/labels.csv" | cut -d, -f1 > "$C/cutouts.txt"
  list=$(paste -sd, "$C/cutouts.txt")
  echo "model,auc,auc_lo,auc_hi" > "$C/results.csv"
  cscore() { # MODEL NAME
    "$LENS" predict $T --model "$1" --list "$C/cutouts.txt" > "$C/scores_$2.csv"
    "$LENS" eval --scores "$C/scores_$2.csv" --labels "$C/labels.csv" --out "$C/eval_$2" > /dev/null
    awk -F, -v name="$2" 'FNR == 2 && $1 == "all" { printf "%s,%.4f,%.4f,%.4f\n", name, $9, $10, $11 }' "$C/eval_$2/metrics.csv" >> "$C/results.csv"
  }
  cscore "$CMODEL" none
  for method in adda adamatch self-ensembling; do
    fit adapt "$C/adapt_$method" "$CEPOCHS" --method "$method" --init "$CMODEL" \
      --source-data "$C/source/images.npy" --source-labels "$C/source/labels.csv" --target-data "$list" --batch 16 --seed 1
    cscore "$C/adapt_$method/best.safetensors" "$method"
  done
  awk -F, -v n="$(wc -l < "$C/cutouts.txt")" 'NR > 1 { printf "| %s | %.3f [%.3f, %.3f] |\n", $1, $2, $3, $4 }
    BEGIN { printf "| adaptation | AUC on the %d challenge cutouts [95%%] |\n", n; print "|---|---|" }' "$C/results.csv" > "$C/results.md"
  cat "$C/results.md"
fi
