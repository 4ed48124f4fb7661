#!/bin/sh
# Remakes every picture of docs/explain.md's gallery with the lens tool (run from the repository root
# after `make`). Inputs: the released finders of Wilde et al. 2022 (weights/), their test inputs in
# tests/data/wilde2022, the Bologna challenge cutouts in ../shared/data, and a small
# simulated ring / disc data set made below with NumPy.
set -e
SHARED=${SHARED:-../shared}
R=tests/data/wilde2022
B=$SHARED/data/bologna-challenge1/space_based
G=docs/gallery
T=build/gallery
mkdir -p $G $T
lens=build/lens

# What OU-66 looks at in test input 0 (a ring around a bright lens galaxy).
for method in gradcam saliency guided guided-gradcam ig smoothgrad; do
  $lens explain --model weights/OU_66.safetensors --preprocess none --input $R/inputs_66.npy --index 0 --method $method --scale 2 --out $T
  cp $T/$method.png $G/$method.png
done
# OU-200's Grad-CAM cells: 6x6, 16 pixels apart, two pixels off the image's centre
$lens explain --model weights/OU_200.safetensors --preprocess none --input $R/inputs_200.npy --method gradcam --out $T/ou200
cp $T/ou200/gradcam.png $G/gradcam-ou200.png
$lens explain --model weights/OU_66.safetensors --preprocess none --input $R/inputs_66.npy --method occlusion --patch 2 --stride 2 --scale 2 --frames 24 --out $T
cp $T/occlusion.png $T/occlusion.gif $G/
$lens explain --model weights/OU_66.safetensors --preprocess none --input $R/inputs_66.npy --method dream --octaves 3 --iterations 40 --scale 2 --frames 20 --out $T
cp $T/dream.png $T/dream.gif $G/
$lens explain --model weights/OU_66.safetensors --preprocess none --input $R/inputs_66.npy --method class-image --iterations 150 --scale 2 --out $T
cp $T/class-image.png $G/
$lens explain --model weights/OU_66.safetensors --preprocess none --input $R/inputs_66.npy --method filters --count 4 --iterations 60 --scale 2 --out $T
cp $T/filters.png $G/

# OU_VIS on the 16 space-based cutouts of the Bologna lens-finding challenge (8 lenses).
$lens predict --model weights/OU_VIS.safetensors --resize $B/lens/*.fits $B/nolens/*.fits > $T/vis.csv
awk -F, 'NR == 1 { print "label" } NR > 1 { print ($1 ~ /\/lens\//) ? 1 : 0 }' $T/vis.csv > $T/vis_labels.csv
$lens plot roc --scores $T/vis.csv --labels $T/vis_labels.csv --name OU_VIS --width 480 --height 360 --out $G/roc.png
$lens plot pr --scores $T/vis.csv --labels $T/vis_labels.csv --name OU_VIS --width 480 --height 360 --out $G/pr.png
$lens plot scores --scores $T/vis.csv --labels $T/vis_labels.csv --bins 10 --width 480 --height 360 --out $G/scores.png
$lens plot confusion --scores $T/vis.csv --labels $T/vis_labels.csv --threshold 0.98 --width 360 --height 360 --out $G/confusion.png

# Training curves of a small CNN on simulated 16x16 rings (label 1) and discs (label 0).
${PYTHON:-python3} - "$T" <<'PY'
import sys, numpy as np
out = sys.argv[1]
rng = np.random.default_rng(7)
n = 2048
y, x = np.mgrid[0:16, 0:16]
labels = np.arange(n) % 2
cx, cy = 7.5 + 3 * (rng.random(n) - 0.5), 7.5 + 3 * (rng.random(n) - 0.5)
r = 3.5 + 2 * rng.random(n)
d = np.sqrt((x[None] - cx[:, None, None]) ** 2 + (y[None] - cy[:, None, None]) ** 2)
ring = (np.abs(d - r[:, None, None]) < 0.9).astype(np.float32)
disc = (d < 0.6 * r[:, None, None]).astype(np.float32)
img = np.where(labels[:, None, None] == 1, ring, disc) + 1.3 * rng.standard_normal((n, 16, 16))
np.save(out + "/rings.npy", img[:, None].astype(np.float32))
np.savetxt(out + "/rings_labels.csv", labels, fmt="%d", header="label", comments="")
PY
printf 'input 1 16 16\nconv2d name=c1 out=8 kernel=3 padding=1\nrelu\nmaxpool kernel=2\nconv2d name=c2 out=16 kernel=3 padding=1\nrelu\nmaxpool kernel=2\nflatten\ndense name=fc out=2\n' > $T/small.arch
rm -rf $T/run
$lens train --arch $T/small.arch --data $T/rings.npy --labels $T/rings_labels.csv --epochs 15 --lr 1e-3 --val-fraction 0.25 --out $T/run
$lens plot history --history $T/run/history.csv --width 720 --height 300 --out $G/history.png
