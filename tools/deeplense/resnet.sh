#!/bin/sh
# DeepLense substructure classification with ResNet-18 (docs/deeplense.md): the three classes of
# `lens sim --preset deeplense-substructure` (DeepLenseSim's Model I) learnt by `--arch resnet18`
# on the central 96 x 96 pixels of each 150 x 150 image (`--crop 96`: the ring and every subhalo
# that moves it lie within 2.4" of the centre), with the curriculum of recipe.sh in fewer passes.
#
#   sh tools/deeplense/resnet.sh OUT N [THREADS [MORE]]
#       OUT/scale5, OUT/scale2: N/5 and 2N/5 objects with the substructure masses 5 and 2 times
#       Model I's (seeds 11, 12); OUT/train, OUT/train2: N and 4N/3 objects as Model I (seeds 1, 3);
#       OUT/test: N/5 (seed 2). OUT/stage5, OUT/stage2, OUT/stage1, OUT/half: lens train.
#       MORE (default 0) stages after those, OUT/more1 ... OUT/moreMORE: one epoch each on a
#       fresh set of 4N/3 objects as Model I (OUT/trainK, seed 20 + K) with half turns, at 10^-4
#       with a cosine schedule, each from the previous stage's best.safetensors.
#       The last stage's best.safetensors is the classifier (input 1 x 96 x 96: score 150 x 150
#       images with lens predict --crop). OUT/test_eval.txt and OUT/test_eval/: lens eval of the
#       test objects, each scored with its half turn (--symmetries 2).
#
# LENS (default build/lens) is the tool. A stopped run continues: finished sets and stages are
# kept, a stopped stage resumes from its checkpoint. With N = 30000, about 2.5 hours on two cores.
set -eu
lens=${LENS:-build/lens}
classes=no_substructure,subhalos,vortex
[ $# -ge 2 ] && [ $# -le 4 ] || { echo "usage: sh tools/deeplense/resnet.sh OUT N [THREADS [MORE]]" >&2; exit 2; }
out=$1 n=$2 threads=${3:-} more=${4:-0}
case $more in '' | *[!0-9]*) echo "deeplense: MORE must be a count of stages, not '$more'" >&2; exit 2 ;; esac
[ -x "$lens" ] || { echo "deeplense: $lens not found; run make first" >&2; exit 1; }
t=${threads:+--threads $threads}
mkdir -p "$out"
sim() { # seed count folder [options]
  if [ -f "$3/images.npy" ] && [ "$(($(wc -l <"$3/labels.csv") - 1))" -eq "$2" ]; then
    echo "   $3: $2 objects already simulated"
  else
    seed=$1 count=$2 dir=$3
    shift 3
    "$lens" sim --preset deeplense-substructure --n "$count" --seed "$seed" "$@" $t --out "$dir"
  fi
}
echo "1. simulating: $((n / 5)) objects with 5 times Model I's substructure masses (seed 11), $((2 * n / 5))"
echo "   with 2 times (seed 12), $n and $((4 * n / 3)) as Model I (seeds 1, 3), $((n / 5)) test objects (seed 2)"
sim 11 $((n / 5)) "$out/scale5" --substructure-scale 5
sim 12 $((2 * n / 5)) "$out/scale2" --substructure-scale 2
sim 1 "$n" "$out/train"
sim 3 $((4 * n / 3)) "$out/train2"
sim 2 $((n / 5)) "$out/test"
# The curriculum (recipe.sh says why): heavier substructure first, then Model I's. One epoch per
# set after the first: each pass over 96 x 96 images costs ResNet-18 about 0.35 G multiply-adds an
# image, and fresh images did more than repeated ones for the small CNN. The first stage keeps
# its lowest validation loss (best.safetensors), and each later stage starts from it. The last
# stage turns half of its images half round (the one symmetry Model I has; recipe.sh).
stage() { # name data epochs lr schedule [init [augment]]
  if [ -f "$out/$1/checkpoint.safetensors" ]; then
    "$lens" train --resume "$out/$1" --epochs "$3" $t
  else
    "$lens" train --arch resnet18 --crop 96 ${6:+--init "$6"} --data "$2/images.npy" --labels "$2/labels.csv" --classes "$classes" \
      --epochs "$3" --batch 32 --lr "$4" --schedule "$5" --minmax ${7:+--augment "$7"} --seed 1 $t --out "$out/$1"
  fi
}
echo "2. training resnet18 on the central 96 x 96: 2 epochs on 5 times the masses, 1 on 2 times, 1 on Model I's,"
echo "   then 1 on a fresh set with half turns"
stage stage5 "$out/scale5" 2 1e-3 constant
stage stage2 "$out/scale2" 1 5e-4 constant "$out/stage5/best.safetensors"
stage stage1 "$out/train" 1 3e-4 constant "$out/stage2/best.safetensors"
stage half "$out/train2" 1 2e-4 cosine "$out/stage1/best.safetensors" rot180
last=half k=1
while [ "$k" -le "$more" ]; do
  echo "2.$k. one more epoch on $((4 * n / 3)) fresh objects (seed $((20 + k))) with half turns"
  [ -f "$out/more$k/checkpoint.safetensors" ] || sim $((20 + k)) $((4 * n / 3)) "$out/train$((20 + k))"
  stage "more$k" "$out/train$((20 + k))" 1 1e-4 cosine "$out/$last/best.safetensors" rot180
  last=more$k k=$((k + 1))
done
echo "3. scoring the $((n / 5)) test objects, each with its half turn"
"$lens" predict --model "$out/$last/best.safetensors" --crop --symmetries 2 $t "$out/test/images.npy" >"$out/test_scores.csv"
"$lens" eval --scores "$out/test_scores.csv" --labels "$out/test/labels.csv" $t --out "$out/test_eval" |
  tee "$out/test_eval.txt"
