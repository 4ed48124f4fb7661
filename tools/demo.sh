#!/bin/sh
# make demo: simulate a small Euclid-like sample, score it with a released finder of Wilde et al.
# 2022 and with the finder trained here, and write a table, scores.csv, a ROC curve and an
# explanation of the best candidate into one folder.
#   sh tools/demo.sh [LENS_TOOL] [OUT_DIR]      (defaults: build/lens build/demo)
set -eu
lens=${1:-build/lens}
out=${2:-build/demo}
n=400
seed=2026   # held out: the shipped finder was trained on seed 1 and tested on seed 2 (weights/ou66-sim.md)

[ -x "$lens" ] || { echo "demo: $lens not found; run make first" >&2; exit 1; }
rm -rf "$out/sample" "$out/explain"
mkdir -p "$out"

echo "1. simulating $n Euclid-like objects (VIS, Y, J, H at 0.3\", half of them lenses), seed $seed"
"$lens" sim --preset euclid-lensfinding --n $n --seed $seed --out "$out/sample" 2>&1 | sed 's/^/   /'

echo "2. scoring them with two OU-66 finders"
# lens sim writes the bands as VIS, Y, J, H; the released OU-66 takes J, Y, H, VIS (weights/OU_66.md)
"$lens" predict --model weights/OU_66.safetensors --channels 2,1,3,0 "$out/sample/images.npy" >"$out/released.csv" 2>"$out/released.log"
"$lens" predict --model weights/ou66-sim.safetensors "$out/sample/images.npy" >"$out/shipped.csv" 2>"$out/shipped.log"
sed 's/^/   /' "$out/released.log"

# scores.csv: one row per object, the truth beside both scores
awk -F, 'FNR == 1 { f++; next }
         f == 1 { label[FNR] = $2; kind[FNR] = $3; n = FNR }
         f == 2 { rel[FNR] = $2 }
         f == 3 { own[FNR] = $2 }
         END { print "index,label,kind,p_lens_OU_66,p_lens_ou66_sim"
               for (i = 2; i <= n; i++) print i - 2 "," label[i] "," kind[i] "," rel[i] "," own[i] }' \
  "$out/sample/labels.csv" "$out/released.csv" "$out/shipped.csv" >"$out/scores.csv"

"$lens" plot roc --scores "$out/released.csv" --scores "$out/shipped.csv" --labels "$out/sample/labels.csv" \
  --name "OU_66 (Wilde et al. 2022)" --name "ou66-sim (trained here)" \
  --title "ROC on $n simulated objects, seed $seed" --out "$out/roc.png" >"$out/roc.log"
auc_rel=$(awk 'NR == 1 { print $3 }' "$out/roc.log")
auc_own=$(awk 'NR == 2 { print $3 }' "$out/roc.log")

echo
echo "   model                                 AUC"
printf '   %-36s %.3f\n' "OU_66, released (Wilde et al. 2022)" "$auc_rel" "ou66-sim, trained on lens sim images" "$auc_own"
echo
echo "   The released finder was trained on another group's simulations; ours differ in PSF, noise"
echo "   and populations, so its AUC here is not the paper's. ou66-sim was trained on this simulator"
echo "   (other seeds): the same PSF, noise and kinds of galaxies as here, its non-lenses as bright as"
echo "   the lens galaxies, so this is its home ground, an easier test than a survey it never saw."
echo
echo "   top 5 candidates by ou66-sim:"
echo "   index  p_lens(ou66-sim)  p_lens(OU_66)  truth"
best=$(sort -t, -k5,5gr "$out/scores.csv" | grep -v '^index' | head -n 5 | tee "$out/top.csv" | head -n 1 | cut -d, -f1)
awk -F, '{ printf "   %5d  %16.4f  %13.4f  %s\n", $1, $5, $4, ($2 == 1 ? "lens (" $3 ")" : "non-lens (" $3 ")") }' "$out/top.csv"
rm -f "$out/top.csv"

echo
echo "3. explaining candidate $best: which pixels does ou66-sim's score depend on? (occlusion)"
"$lens" explain --model weights/ou66-sim.safetensors --input "$out/sample/images.npy" --index "$best" \
  --method occlusion --patch 4 --out "$out/explain" 2>&1 | sed 's/^/   /'

echo
echo "wrote:"
echo "  $out/scores.csv                 truth and both finders' p_lens, one row per object"
echo "  $out/roc.png                    ROC curves of both finders"
echo "  $out/explain/occlusion.png      occlusion map of candidate $best"
echo "  $out/sample/                    the simulated images.npy and labels.csv"
