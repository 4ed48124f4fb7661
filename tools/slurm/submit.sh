#!/bin/sh
# Submits a `lens sim`, `lens predict` or `lens find` run as a Slurm job array of shards, and the merge of
# their outputs as a job that starts when every shard has succeeded (docs/survey.md).
#
#   sh tools/slurm/submit.sh --shards N --out DIR [--cpus C] [--mem M] [--time T]
#                            [--partition P] [--lens PATH] [--sbatch "MORE OPTIONS"] -- COMMAND...
#
#   sh tools/slurm/submit.sh --shards 64 --out survey -- \
#       predict --model weights/OU_66.safetensors tiles/tile_*.npy
#   sh tools/slurm/submit.sh --shards 16 --cpus 4 --out trainset -- \
#       sim --preset euclid-lensfinding --n 1000000 --seed 1
#
# Task I writes DIR/part-IIIII (predict: a CSV; sim, find: a folder) with its shard manifest; the
# merge writes DIR/scores.csv (predict) or DIR/all/ (sim, find); logs go to DIR/logs/. Submitting the same
# command again reruns only the shards that did not finish (--skip-done). Prints the two job ids.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
shards= out= cpus=1 mem= time_limit= partition= more=
lens=${LENS:-$here/../../build/lens}
usage() {
  echo "usage: sh tools/slurm/submit.sh --shards N --out DIR [--cpus C] [--mem M] [--time T] [--partition P]" >&2
  echo "                                [--lens PATH] [--sbatch \"MORE OPTIONS\"] -- sim|predict|find OPTIONS..." >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --shards) shards=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --time) time_limit=$2; shift 2 ;;
    --partition) partition=$2; shift 2 ;;
    --lens) lens=$2; shift 2 ;;
    --sbatch) more=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "submit.sh: unknown option '$1'" >&2; usage ;;
  esac
done
[ -n "$shards" ] && [ -n "$out" ] && [ $# -gt 0 ] || usage
case $shards in ''|*[!0-9]*|0) echo "submit.sh: --shards takes a whole number >= 1, got '$shards'" >&2; exit 2 ;; esac
case $1 in
  predict) merged=$out/scores.csv ;;
  sim|find) merged=$out/all ;;
  *) echo "submit.sh: the command must be sim, predict or find, got '$1'" >&2; exit 2 ;;
esac
[ -x "$lens" ] || { echo "submit.sh: no lens binary at $lens (make, or --lens PATH)" >&2; exit 1; }
command -v sbatch > /dev/null || { echo "submit.sh: sbatch not found: is this a Slurm login node?" >&2; exit 1; }
mkdir -p "$out/logs"
lens=$(cd "$(dirname "$lens")" && pwd)/$(basename "$lens")
out=$(cd "$out" && pwd)
case $merged in /*) ;; *) merged=$(pwd)/$merged ;; esac
opts="--cpus-per-task=$cpus"
[ -n "$mem" ] && opts="$opts --mem=$mem"
[ -n "$time_limit" ] && opts="$opts --time=$time_limit"
[ -n "$partition" ] && opts="$opts --partition=$partition"
# the work, one task per shard; then the merge once all of them succeeded
array=$(LENS=$lens LENS_OUT=$out LENS_SHARDS=$shards sbatch --parsable --export=ALL $opts $more \
  --array="0-$((shards - 1))" --output="$out/logs/%A_%a.out" "$here/array.sbatch" "$@")
array=${array%%;*}
merge=$(LENS=$lens LENS_OUT=$out LENS_MERGED=$merged LENS_KIND=$1 sbatch --parsable --export=ALL $more \
  --dependency="afterok:$array" --output="$out/logs/%j-merge.out" "$here/merge.sbatch")
merge=${merge%%;*}
echo "array job $array ($shards shards) -> $out/part-*; merge job $merge -> $merged"
