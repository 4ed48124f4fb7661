#!/bin/sh
# What a survey costs, measured on this machine (docs/survey.md): CPU time per object of the whole
# `lens predict` and `lens sim` processes on one thread (user + system, so other work on the
# machine changes it little), their peak memory, the bytes read or written per object, and from
# them the core-hours of 10^9 cutouts scored by OU-66 and OU-200 and of a 10^7-image training set.
#
#   sh tools/slurm/cost.sh [WORKDIR]        (LENS: default build/lens; needs /usr/bin/time)
set -eu
lens=${LENS:-build/lens}
w=${1:-build/cost}
[ -x /usr/bin/time ] || { echo "cost.sh: /usr/bin/time is needed (Debian: apt-get install time)" >&2; exit 1; }
mkdir -p "$w"
# cpu_rss LABEL N COMMAND...: runs it, prints "LABEL N cpu_seconds peak_kib"
cpu_rss() {
  label=$1 n=$2; shift 2
  /usr/bin/time -f '%U %S %M' -o "$w/time.txt" "$@" > /dev/null 2>&1
  awk -v l="$label" -v n="$n" '{ printf "%s %d %.3f %d\n", l, n, $1 + $2, $3 }' "$w/time.txt"
}
n66=${N66:-512} n200=${N200:-96}
[ -f "$w/s66/images.npy" ] || "$lens" sim --preset euclid-lensfinding --n "$n66" --seed 7 --out "$w/s66" 2> /dev/null
[ -f "$w/s200/images.npy" ] || "$lens" sim --preset euclid-lensfinding --layout ou200 --n "$n200" --seed 7 --out "$w/s200" 2> /dev/null
{
  cpu_rss "sim_ou66" "$n66" "$lens" sim --preset euclid-lensfinding --n "$n66" --seed 8 --threads 1 --out "$w/t66"
  cpu_rss "sim_ou200" "$n200" "$lens" sim --preset euclid-lensfinding --layout ou200 --n "$n200" --seed 8 --threads 1 --out "$w/t200"
  cpu_rss "predict_ou66" "$n66" "$lens" predict --model weights/OU_66.safetensors --threads 1 "$w/s66/images.npy" --out "$w/p66.csv"
  cpu_rss "predict_ou200" "$n200" "$lens" predict --model weights/OU_200.safetensors --threads 1 "$w/s200/images.npy" --out "$w/p200.csv"
  cpu_rss "predict_ou66_shard" "$n66" "$lens" predict --model weights/OU_66.safetensors --threads 1 --shard 0/1 "$w/s66/images.npy" --out "$w/q66.csv"
} > "$w/measured.txt"
in66=$(( $(wc -c < "$w/s66/images.npy") / n66 )) in200=$(( $(wc -c < "$w/s200/images.npy") / n200 ))
out66=$(( $(wc -c < "$w/p66.csv") / n66 ))
awk -v in66="$in66" -v in200="$in200" -v out66="$out66" '
  { cpu[$1] = $3 / $2; rss[$1] = $4 / 1024 }
  END {
    printf "| work | CPU per object | objects per core-second | peak memory | core-hours |\n|---|---|---|---|---|\n"
    printf "| lens predict, OU-66 (4 x 66 x 66) | %.2f ms | %.0f | %.0f MB | %.0f for 10^9 |\n", 1000 * cpu["predict_ou66"], 1 / cpu["predict_ou66"], rss["predict_ou66"], 1e9 * cpu["predict_ou66"] / 3600
    printf "| lens predict, OU-200 (4 x 200 x 200) | %.2f ms | %.1f | %.0f MB | %.0f for 10^9 |\n", 1000 * cpu["predict_ou200"], 1 / cpu["predict_ou200"], rss["predict_ou200"], 1e9 * cpu["predict_ou200"] / 3600
    printf "| lens sim, OU-66 layout | %.2f ms | %.1f | %.0f MB | %.0f for 10^7 |\n", 1000 * cpu["sim_ou66"], 1 / cpu["sim_ou66"], rss["sim_ou66"], 1e7 * cpu["sim_ou66"] / 3600
    printf "| lens sim, OU-200 layout | %.2f ms | %.1f | %.0f MB | %.0f for 10^7 |\n", 1000 * cpu["sim_ou200"], 1 / cpu["sim_ou200"], rss["sim_ou200"], 1e7 * cpu["sim_ou200"] / 3600
    printf "\nbytes per object: OU-66 cutout %d (float32), OU-200 cutout %d, one CSV row of scores %d\n", in66, in200, out66
    printf "input per 10^9 objects: OU-66 %.1f TB, OU-200 %.1f TB\n", in66 * 1e9 / 1e12, in200 * 1e9 / 1e12
    printf "lens predict --shard 0/1 on the same stack: %.2f ms per object (the manifest costs nothing measurable)\n", 1000 * cpu["predict_ou66_shard"]
  }' "$w/measured.txt"
