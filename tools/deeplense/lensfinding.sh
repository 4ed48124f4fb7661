#!/bin/sh
# The DeepLense lens-finding task (docs/deeplense.md): a finder trained where lenses are 1 in 17
# objects (1:16) and tested where they are 1 in 101 (1:100), as a survey meets them. HSC-like
# cutouts (g, r, i; 64 x 64 at 0.168") of `lens sim --preset euclid-lensfinding --layout hsc`,
# whose non-lenses are the hard ones a search preselects (docs/populations.md).
#
#   sh tools/deeplense/lensfinding.sh OUT N EPOCHS [THREADS]
#       OUT/train: N objects at 1:16 (seed 1); OUT/test: 20,200 at 1:100 (seed 2, 200 lenses);
#       OUT/run: lens train with ARCH; OUT/test_eval.txt and OUT/test_eval/ (lens eval: AUC,
#       precision at recall 0.9, by kind).
#
# LENS (default build/lens) is the tool; ARCH (default tools/deeplense/hsc64.arch) the network,
# any --arch of lens train (resnet18 takes its size from the data); SYMMETRIES (1, 2 or 8; default
# 1) is lens predict's --symmetries for the test objects. Run from the repository root (make
# deeplense-lensfinding, LENSFINDING_ARCH=resnet18 for the residual network).
#
# MORE (default 0): a second stage. MORE new objects at 1:16 (seed 3, OUT/train-more), on which
# the finder of OUT/run goes on for 2 epochs (--init its best weights, learning rate 2e-4 falling
# on a cosine to 0, the same augmentation and class weights; OUT/run-more); the test objects are
# scored by that finder. TEST_SEED (default 2) is the seed of the 20,200 test objects; another
# seed goes to OUT/test-seedS and OUT/test-seedS_eval.txt (a second held-out sky).
#
# ENSEMBLE (default 1): K finders trained apart, the same recipe each: finder j (2..K) on N objects
# of its own (seed 2j-1: OUT/train-seed3, OUT/train-seed5, ...; its initial weights from the same
# seed) into OUT/run2, OUT/run3, ...; the test objects are scored by the ensemble (lens predict
# --model repeated: the class probabilities averaged over the finders and their views). The test
# seed must be none of the training seeds. MORE and ENSEMBLE are alternatives.
set -eu
lens=${LENS:-build/lens}
arch=${ARCH:-tools/deeplense/hsc64.arch}
symmetries=${SYMMETRIES:-1}
more=${MORE:-0}
test_seed=${TEST_SEED:-2}
ensemble=${ENSEMBLE:-1}

[ $# -ge 3 ] && [ $# -le 4 ] || { echo "usage: sh tools/deeplense/lensfinding.sh OUT N EPOCHS [THREADS]" >&2; exit 2; }
out=$1 n=$2 epochs=$3 threads=${4:-}
[ -x "$lens" ] || { echo "deeplense: $lens not found; run make first" >&2; exit 1; }
t=${threads:+--threads $threads}
case $ensemble in ''|*[!0-9]*|0) echo "deeplense: ENSEMBLE=$ensemble: give the number of finders, 1 or more" >&2; exit 2 ;; esac
[ "$ensemble" -eq 1 ] || [ "$more" -eq 0 ] || { echo "deeplense: MORE and ENSEMBLE are alternatives: give one" >&2; exit 2; }
j=1
while [ "$j" -le "$ensemble" ]; do
  [ "$test_seed" -ne $((2 * j - 1)) ] || { echo "deeplense: TEST_SEED=$test_seed is the training seed of finder $j: choose another" >&2; exit 2; }
  j=$((j + 1))
done
[ "$more" -eq 0 ] || [ "$test_seed" -ne 3 ] || { echo "deeplense: TEST_SEED=3 is the seed of MORE's objects: choose another" >&2; exit 2; }
mkdir -p "$out"
sim() { # seed count lens-fraction folder
  if [ -f "$4/images.npy" ] && [ "$(($(wc -l <"$4/labels.csv") - 1))" -eq "$2" ]; then
    echo "   $4: $2 objects already simulated"
  else
    "$lens" sim --preset euclid-lensfinding --layout hsc --lens-fraction "$3" --n "$2" --seed "$1" $t --out "$4"
  fi
}
echo "1. simulating $n training objects at 1:16 and 20,200 test objects at 1:100 (HSC-like g, r, i)"
sim 1 "$n" 0.0588235294 "$out/train"
test=$out/test
[ "$test_seed" = 2 ] || test=$out/test-seed$test_seed
sim "$test_seed" 20200 0.00990099 "$test"
echo "2. training $arch for $epochs epochs (classes weighted by their inverse frequency)"
if [ -f "$out/run/checkpoint.safetensors" ]; then
  "$lens" train --resume "$out/run" --epochs "$epochs" $t
else
  "$lens" train --arch "$arch" --weight-init he --data "$out/train/images.npy" --labels "$out/train/labels.csv" \
    --epochs "$epochs" --batch 32 --lr 1e-3 --schedule cosine --class-weights auto --augment flip,rot90 \
    --minmax --seed 1 $t --out "$out/run"
fi
model=$out/run/best.safetensors
set -- --model "$model" # the finders that score the test objects
j=2
while [ "$j" -le "$ensemble" ]; do
  seed=$((2 * j - 1))
  echo "2.$j. finder $j of $ensemble: $n objects at 1:16 (seed $seed), the same recipe from its own initial weights"
  sim "$seed" "$n" 0.0588235294 "$out/train-seed$seed"
  if [ -f "$out/run$j/checkpoint.safetensors" ]; then
    "$lens" train --resume "$out/run$j" --epochs "$epochs" $t
  else
    "$lens" train --arch "$arch" --weight-init he --data "$out/train-seed$seed/images.npy" --labels "$out/train-seed$seed/labels.csv" \
      --epochs "$epochs" --batch 32 --lr 1e-3 --schedule cosine --class-weights auto --augment flip,rot90 \
      --minmax --seed "$seed" $t --out "$out/run$j"
  fi
  set -- "$@" --model "$out/run$j/best.safetensors"
  j=$((j + 1))
done
if [ "$more" -gt 0 ]; then
  echo "2b. $more more objects at 1:16 (seed 3); 2 more epochs on them from $model"
  sim 3 "$more" 0.0588235294 "$out/train-more"
  if [ -f "$out/run-more/checkpoint.safetensors" ]; then
    "$lens" train --resume "$out/run-more" --epochs 2 $t
  else
    "$lens" train --init "$model" --data "$out/train-more/images.npy" --labels "$out/train-more/labels.csv" \
      --epochs 2 --batch 32 --lr 2e-4 --schedule cosine --class-weights auto --augment flip,rot90 \
      --minmax --seed 3 $t --out "$out/run-more"
  fi
  model=$out/run-more/best.safetensors
  set -- --model "$model"
fi
echo "3. scoring the test objects ($test) with $*"
"$lens" predict "$@" --symmetries "$symmetries" $t "$test/images.npy" >"${test}_scores.csv"
"$lens" eval --scores "${test}_scores.csv" --labels "$test/labels.csv" --by kind --at-recall 0.9 $t \
  --out "${test}_eval" | tee "${test}_eval.txt"
