#!/bin/sh
# tools/paper.sh - `make paper`: the seven finders of Wilde et al. 2022 (OU-66, OU-200 and the
# VIS, J, Y, H, JYH variants) trained on lens sim's Euclid population and evaluated with
# lens eval on seeds they never saw; writes $PAPER/results.md, the table docs/paper.md quotes.
#
#   sh tools/paper.sh                 everything (about 5 hours on 2 cores)
#   MODELS="OU_66" sh tools/paper.sh  some models only
#
# Restartable: a step whose output exists is skipped, so an interrupted run goes on where it
# stopped. Settings (environment): LENS (build/lens), PAPER (build/paper), THREADS (2),
# N66 (24000 training images, OU-66 layout), N200 (8000, OU-200 layout), EPOCHS66 (15),
# EPOCHS200 (10), NTEST (4000), NCOMPOUND (1500), MODELS. Each finder ends as $PAPER/NAME/finder.safetensors:
# the best epoch with band_names and pixel_scale in its metadata (what weights/ ships).
set -eu
L=${LENS:-build/lens}
P=${PAPER:-build/paper}
T=${THREADS:-2}
N66=${N66:-24000}
N200=${N200:-8000}
E66=${EPOCHS66:-15}
E200=${EPOCHS200:-10}
NTEST=${NTEST:-4000}
NCOMP=${NCOMPOUND:-1500}
MODELS=${MODELS:-"OU_66 OU_JYH OU_J OU_Y OU_H OU_200 OU_VIS"}
mkdir -p "$P"

say() { echo "paper: $*"; }
run() { echo "+ $*"; "$@"; }

# name -> architecture, layout, channels of a lens sim stack (VIS, NISP Y, J, H)
model() {
  case $1 in
    OU_66) echo "ou66 66 0,1,2,3" ;;
    OU_JYH) echo "ou66 66 2,1,3" ;;
    OU_J) echo "ou66 66 2" ;;
    OU_Y) echo "ou66 66 1" ;;
    OU_H) echo "ou66 66 3" ;;
    OU_200) echo "ou200 200 0,1,2,3" ;;
    OU_VIS) echo "ou200 200 0" ;;
    *) echo "paper: unknown model $1" >&2; exit 2 ;;
  esac
}

# sim DIR ARGS...: a data set, unless DIR already holds one
sim() {
  dir=$1; shift
  if [ -f "$dir/labels.csv" ] && [ -f "$dir/images.npy" ]; then say "$dir exists, kept"; return; fi
  run "$L" sim "$@" --threads "$T" --out "$dir"
}

# The data: training and held-out sets per layout. Seeds: 1 training, 2 test, 3 compound.
need66=0; need200=0
for m in $MODELS; do
  set -- $(model "$m")
  if [ "$2" = 66 ]; then need66=1; else need200=1; fi
done
if [ $need66 = 1 ]; then
  sim "$P/train66" --preset euclid-lensfinding --layout ou66 --n "$N66" --seed 1
  sim "$P/test66" --preset euclid-lensfinding --layout ou66 --n "$NTEST" --seed 2
  sim "$P/compound66" --preset euclid-compound --layout ou66 --n "$NCOMP" --seed 3
fi
if [ $need200 = 1 ]; then
  sim "$P/train200" --preset euclid-lensfinding --layout ou200 --n "$N200" --seed 1
  sim "$P/test200" --preset euclid-lensfinding --layout ou200 --n "$NTEST" --seed 2
  sim "$P/compound200" --preset euclid-compound --layout ou200 --n "$NCOMP" --seed 3
fi

# column NAME of the row whose first field is GROUP in a metrics.csv
metric() {
  awk -F, -v g="$2" -v c="$3" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next }
    $1 == g && k { print $k; exit }' "$1"
}

# scores and labels of the lenses and the bright (VIS < 23) non-lens ellipticals only
# (sh has no local variables: be_ names are this function's)
bright_ellipticals() {
  be_scores=$1; be_labels=$2; be_out=$3
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "kind") k = i; if ($i == "mag_lens") m = i; if ($i == "index") x = i }; next }
    $k == "galaxy_galaxy" || ($k == "elliptical" && $m < 23) { print $x }' "$be_labels" > "$be_out.keep"
  awk -F, 'NR == FNR { keep[$1] = 1; next } FNR == 1 || keep[$1]' "$be_out.keep" "$be_labels" > "$be_out.labels.csv"
  awk 'NR == FNR { keep[$1] = 1; next }
    FNR == 1 { print; next }
    { i = $0; sub(/^[^[]*\[/, "", i); sub(/\].*$/, "", i); if (keep[i]) print }' "$be_out.keep" "$be_scores" > "$be_out.scores.csv"
}

for m in $MODELS; do
  set -- $(model "$m")
  arch=$1; lay=$2; ch=$3
  run_dir="$P/run_$m"; out="$P/$m"
  mkdir -p "$out"
  epochs=$E66; [ "$lay" = 200 ] && epochs=$E200
  if [ -f "$run_dir/best.safetensors" ] && grep -q "^$epochs," "$run_dir/history.csv" 2>/dev/null; then
    say "$run_dir trained, kept"
  elif [ -f "$run_dir/checkpoint.safetensors" ]; then
    run "$L" train --resume "$run_dir" --threads "$T"
  else
    start=$(date +%s)
    run "$L" train --arch "$arch" --weight-init he --channels "$ch" --data "$P/train$lay/images.npy" \
      --labels "$P/train$lay/labels.csv" --epochs "$epochs" --batch 32 --lr 1e-3 --schedule cosine \
      --class-weights auto --augment flip,rot90 --minmax --seed 1 --out "$run_dir" --threads "$T"
    echo $(( $(date +%s) - start )) > "$run_dir/seconds"
  fi
  w="$run_dir/best.safetensors"
  # the finder as shipped (weights/NAME.safetensors): the best epoch with its bands' names and
  # pixel scale, which lens explain labels panels and scale bars with
  if [ ! -f "$out/finder.safetensors" ]; then
    names=$(echo "$ch" | sed 's/0/VIS/g; s/1/Y/g; s/2/J/g; s/3/H/g')
    scale=0.3; [ "$lay" = 200 ] && scale=0.1
    run "$L" info "$w" --set "band_names=$names" --set "pixel_scale=$scale" \
      --set "source=lens toolkit: $arch on $names, the paper's $m, trained on lens sim --preset euclid-lensfinding images (make paper; docs/paper.md)" \
      --out "$out/finder.safetensors" > /dev/null
  fi
  for set in test compound; do
    [ -f "$out/$set.csv" ] || run "$L" predict --model "$w" --channels "$ch" --threads "$T" "$P/$set$lay/images.npy" --out "$out/$set.csv"
  done
  [ -f "$out/eval_test/metrics.csv" ] || run "$L" eval --scores "$out/test.csv" --labels "$P/test$lay/labels.csv" \
    --by kind --prior 1:100,1:1000 --threads "$T" --out "$out/eval_test" > "$out/eval_test.txt"
  [ -f "$out/eval_compound/metrics.csv" ] || run "$L" eval --scores "$out/compound.csv" --labels "$P/compound$lay/labels.csv" \
    --by kind --threads "$T" --out "$out/eval_compound" > "$out/eval_compound.txt"
  if [ ! -f "$out/eval_bright/metrics.csv" ]; then
    bright_ellipticals "$out/test.csv" "$P/test$lay/labels.csv" "$out/bright"
    run "$L" eval --scores "$out/bright.scores.csv" --labels "$out/bright.labels.csv" --threads "$T" \
      --out "$out/eval_bright" > "$out/eval_bright.txt"
  fi
done

# the file name weights/ ships a finder under
ship_name() {
  case $1 in
    OU_66) echo ou66-sim ;; OU_JYH) echo ou66-jyh-sim ;; OU_J) echo ou66-j-sim ;; OU_Y) echo ou66-y-sim ;;
    OU_H) echo ou66-h-sim ;; OU_200) echo ou200-sim ;; OU_VIS) echo ou200-vis-sim ;;
  esac
}

# card M: $P/M/card.md, the model card of a finder from its run and lens eval's figures
card() {
  set -- "$1" $(model "$1")
  cm=$1 carch=$2 clay=$3 cch=$4
  cn=$(ship_name "$cm"); cd_="$P/$cm"
  e="$cd_/eval_test/metrics.csv"; c="$cd_/eval_compound/metrics.csv"; b="$cd_/eval_bright/metrics.csv"
  [ -f "$e" ] && [ -f "$c" ] && [ -f "$b" ] || return 0
  names=$(echo "$cch" | sed 's/0/VIS/g; s/1/Y/g; s/2/J/g; s/3/H/g')
  nb=$(echo "$cch" | awk -F, '{ print NF }')
  ntrain=$N66; scale=0.3; cepochs=$E66; [ "$clay" = 200 ] && { ntrain=$N200; scale=0.1; cepochs=$E200; }
  best=$("$L" info "$cd_/finder.safetensors" | awk '$1 == "train.epoch:" { print $2 }')
  ne=$(metric "$b" all n_neg)
  f() { printf '%.3f' "$(metric "$1" "$2" "$3")"; }
  cat <<CARD
# $cn: $carch on $names, trained on this project's Euclid-like simulations

**What it is.** The \`$carch\` architecture of Wilde et al. 2022 on $names ($nb x $clay x $clay at
$scale"/px), the counterpart of the paper's \`$cm\`, trained from scratch by \`make paper\` on images made by
\`lens sim\`. It reads channels $cch of a \`lens sim\` stack (0 VIS, 1 Y, 2 J, 3 H):

    build/lens predict --model weights/$cn.safetensors --channels $cch images.npy

Inputs are scaled per image and per band to [0, 1] (metadata \`preprocess: minmax\`), applied by
\`lens predict\` and \`lens explain\`; \`band_names\` and \`pixel_scale\` are in the metadata.

**Data and training** ([docs/paper.md](../docs/paper.md)): \`lens sim --preset euclid-lensfinding --layout ou$clay
--n $ntrain --seed 1\`, the population of [docs/populations.md](../docs/populations.md) (hard negatives,
neighbours, Moffat PSFs; see [ou66-sim.md](ou66-sim.md)), 10 % held out for validation;

    lens train --arch $carch --weight-init he --channels $cch --epochs $cepochs --batch 32 --lr 1e-3 \\
      --schedule cosine --class-weights auto --augment flip,rot90 --minmax --seed 1

$(cat "$P/run_$cm/seconds" 2>/dev/null || echo '?') s of wall time on 2 threads; the weights are epoch $best, the lowest validation loss.

**Metrics on held-out seeds** (\`lens eval\`; $NTEST objects of \`--seed 2\`, half lenses; threshold 0.5;
95 % bootstrap intervals):

| | |
|---|---|
| ROC AUC (the same at any prior) | $(f "$e" all auc) [$(f "$e" all auc_lo), $(f "$e" all auc_hi)] |
| F1 / precision / recall at 0.5, 1:1 | $(f "$e" all f1) / $(f "$e" all precision) / $(f "$e" all recall) |
| precision at recall 0.9: 1:1 / 1:100 / 1:1000 | $(f "$e" all precision_at_recall_0.9) / $(f "$e" all precision_at_recall_0.9_1to100) / $(f "$e" all precision_at_recall_0.9_1to1000) |
| recall at false-positive rate 0.01 / 0.001 | $(f "$e" all recall_at_fpr_0.01) / $(f "$e" all recall_at_fpr_0.001) |
| AUC against the bright (VIS < 23) non-lens ellipticals only ($ne of them) | $(f "$b" all auc) [$(f "$b" all auc_lo), $(f "$b" all auc_hi)] |
| recall at 0.5 on compound arcs / double rings (\`euclid-compound\`, seed 3) | $(f "$c" kind=compound_arc recall) / $(f "$c" kind=double_ring recall) |
| the same at the threshold of false-positive rate 0.01 | $(f "$c" kind=compound_arc recall_at_fpr_0.01) / $(f "$c" kind=double_ring recall_at_fpr_0.01) |

The paper reports F1 from 0.83 to 0.91 across its finders and recall up to 76 % on compound arcs
and 52 % on double rings, on its own (Bologna Lens Factory) simulations: a different population,
so the figures are not a like-for-like comparison.

**Limits.** Trained and tested on this simulator only (other seeds): upper bounds for real images.
CARD
  if [ "$clay" = 200 ]; then
    cat <<CARD

**Undertrained.** $ntrain training images of $nb x 200 x 200 for $cepochs epochs, against $N66 images and $E66 epochs
for the OU-66 finders, to keep \`make paper\` within hours on 2 cores; validation loss by epoch:
$(awk -F, 'NR > 1 { printf "%s%.3f", (NR > 2 ? ", " : ""), $5 }' "$P/run_$cm/history.csv"). A longer run, e.g.
\`N200=24000 EPOCHS200=15 MODELS=$cm make paper\`, is the way to a fair comparison with OU-66.
CARD
  fi
}

for m in $MODELS; do
  if [ -f "$P/$m/eval_bright/metrics.csv" ]; then card "$m" > "$P/$m/card.md.tmp" && mv "$P/$m/card.md.tmp" "$P/$m/card.md"; fi
done

# The table: one row per model
{
  echo "| model | bands | AUC (1:1) [95 %] | F1 at 0.5 | AUC vs bright ellipticals | precision at recall 0.9, 1:100 | recall at 0.5: compound arcs / double rings | recall at FPR 0.01: compound arcs / double rings | training, wall s (2 threads) |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for m in $MODELS; do
    set -- $(model "$m")
    e="$P/$m/eval_test/metrics.csv"; c="$P/$m/eval_compound/metrics.csv"; b="$P/$m/eval_bright/metrics.csv"
    [ -f "$e" ] || continue
    printf '| %s | %s | %.4f [%.4f, %.4f] | %.3f | %.4f | %.3f | %.3f / %.3f | %.3f / %.3f | %s |\n' "$m" "$3" \
      "$(metric "$e" all auc)" "$(metric "$e" all auc_lo)" "$(metric "$e" all auc_hi)" "$(metric "$e" all f1)" \
      "$(metric "$b" all auc)" "$(metric "$e" all precision_at_recall_0.9_1to100)" \
      "$(metric "$c" kind=compound_arc recall)" "$(metric "$c" kind=double_ring recall)" \
      "$(metric "$c" kind=compound_arc recall_at_fpr_0.01)" "$(metric "$c" kind=double_ring recall_at_fpr_0.01)" \
      "$(cat "$P/run_$m/seconds" 2>/dev/null || echo '?')"
  done
} > "$P/results.md"
cat "$P/results.md"
