#!/bin/sh
# Runs each benchmark program given, shows its output, then measures the installed peers in the
# same run, one thread each, and prints "workload | ours | peer | ratio (ours/peer)" tables.
#
#   make bench                          (builds build/bench_* and runs this script on them)
#   SHARED=../shared sh tests/bench.sh build/bench_lensnet build/bench_gemm
#
# Only ratios measured in one run mean anything: these machines are noisy. Nothing here checks a
# time. A missing peer is skipped with a one-line note; the script fails only when one of our own
# programs fails.
#
# Our lines: a program's line "ours WORKLOAD: NUMBER UNIT ..." is paired with a peer's line for
# the same WORKLOAD (e.g. "ours OU-66 infer batch=1: 812.3 img/s",
# "ours sgemm M=256 N=256 K=256: 40.2 GFLOP/s"); any other line is only shown.
#
# Peers (see $SHARED/peers/README.md), each run with one thread:
#   PyTorch      /usr/bin/python3 $SHARED/peers/torch_bench.py, when `import torch` works
#                (Debian: apt-get install -y python3-torch python3-numpy). Its 2-thread half is
#                not needed here, so it is stopped once the 1-thread lines are out
#                (LENS_BENCH_TORCH_ALL=1 lets it finish and shows every line).
#   onnxruntime  node $SHARED/peers/ort_bench.js on models exported by export_onnx.py (needs
#                PyTorch), when node and $ORT_DIR/node_modules/onnxruntime-node exist
#                (ORT_DIR defaults to /tmp/ort). Install:
#                  npm install --prefix /tmp/ort onnxruntime-node --ignore-scripts
#                --ignore-scripts is enough for the CPU: the package ships the CPU runtime for
#                linux x64/arm64 (bin/napi-v6/linux/*/libonnxruntime.so.1); its install script
#                only downloads the CUDA/TensorRT providers.
#   OpenBLAS     $SHARED/peers/sgemm_openblas.c built with -lopenblas, when that links
#                (apt-get install -y libopenblas-dev); paired with our sgemm lines by shape.
#                When OpenBLAS does not know the CPU and falls back to an SSE kernel (Debian's
#                0.3.21 on Sapphire/Emerald Rapids: "Prescott", 4-5x slower), it is run again
#                with OPENBLAS_CORETYPE=SkylakeX (or Haswell) and paired with that run.
#   FMA peak     $SHARED/peers/peak_fma.c built with -march=native (x86 with AVX2+FMA only);
#                our inference and best GEMM GFLOP/s as a fraction of one core's peak.
#
# Environment: SHARED (default ../shared), ORT_DIR, PYTHON (default /usr/bin/python3),
# CC (default cc), LENS_BENCH_SCALE (passed to our programs: 0.2 for a quick look).

SHARED=${SHARED:-../shared}
PEERS=$SHARED/peers
ORT_DIR=${ORT_DIR:-/tmp/ort}
PYTHON=${PYTHON:-/usr/bin/python3}
CC=${CC:-cc}

# One thread for every library that looks at these.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 GOTO_NUM_THREADS=1 \
       VECLIB_MAXIMUM_THREADS=1 NUMEXPR_NUM_THREADS=1

work=$(mktemp -d "${TMPDIR:-/tmp}/lens-bench.XXXXXX") || exit 1
peer_pid=""
trap 'rm -rf "$work"' EXIT
trap '[ -n "$peer_pid" ] && kill "$peer_pid" 2>/dev/null; exit 130' INT TERM
: >"$work/ours.txt"

note() { echo "-- $*"; }
# Other work on the machine shows in the load average: a load near the number of cpus at the
# start or the end means the figures shared the CPU and the ratios are worth a second run.
loadavg() { cut -d ' ' -f 1-3 /proc/loadavg 2>/dev/null || echo '?'; }

echo "== machine: $(uname -m), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') cpus," \
  "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)," \
  "load average $(loadavg)"

# ---- our programs ----------------------------------------------------------------------------
failed=""
for prog in "$@"; do
  echo "== $prog"
  { "$prog" 2>&1; echo $? >"$work/status"; } | tee "$work/prog.txt"
  status=$(cat "$work/status")
  cat "$work/prog.txt" >>"$work/ours.txt"
  if [ "$status" -ne 0 ]; then
    echo "!! $prog exited with status $status"
    failed="$failed $prog"
  fi
done

# "WORKLOAD<TAB>NUMBER<TAB>UNIT" for every "ours WORKLOAD: NUMBER UNIT" line; the first line of
# a workload wins if two programs print it.
awk '
  /^ours / {
    i = index($0, ": "); if (i == 0) next
    key = substr($0, 6, i - 6); split(substr($0, i + 2), f, " ")
    if (f[1] ~ /^[0-9]+(\.[0-9]+)?$/ && !(key in seen)) { seen[key] = 1; print key "\t" f[1] "\t" f[2] }
  }' "$work/ours.txt" >"$work/ours.tsv"

# table TITLE PEER_TSV: one row per peer workload, ours "-" where we have no such line.
table() {
  echo
  echo "== $1"
  awk -F '\t' '
    NR == FNR { ours[$1] = $2; next }
    FNR == 1 { printf "%-34s | %13s | %13s | %s\n", "workload", "ours", "peer", "ratio (ours/peer)" }
    {
      unit = $3; o = ($1 in ours) ? ours[$1] : ""
      r = (o != "" && $2 + 0 > 0) ? sprintf("%.2f", o / $2) : "-"
      printf "%-34s | %13s | %13s | %s\n", $1, (o != "" ? o " " unit : "-"), $2 " " unit, r
    }' "$work/ours.tsv" "$2"
}

# ---- PyTorch -------------------------------------------------------------------------------
have_torch=0
if [ -x "$PYTHON" ] && "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
  have_torch=1
  echo
  echo "== peer PyTorch $("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null), 1 thread"
  "$PYTHON" -u "$PEERS/torch_bench.py" >"$work/torch.txt" 2>&1 &
  peer_pid=$!
  if [ -z "${LENS_BENCH_TORCH_ALL:-}" ]; then
    while kill -0 "$peer_pid" 2>/dev/null; do
      if grep -q '^threads=2' "$work/torch.txt"; then kill "$peer_pid" 2>/dev/null; break; fi
      sleep 1
    done
  fi
  wait "$peer_pid" 2>/dev/null
  peer_pid=""
  grep -v '^threads=2' "$work/torch.txt"
  [ -n "${LENS_BENCH_TORCH_ALL:-}" ] && grep '^threads=2' "$work/torch.txt"
  awk '/^threads=1 / {
      i = index($0, ": "); key = substr($0, 11, i - 11); split(substr($0, i + 2), f, " ")
      print key "\t" f[1] "\t" f[2]
    }' "$work/torch.txt" >"$work/torch.tsv"
  if [ -s "$work/torch.tsv" ]; then table "ours vs PyTorch (1 thread)" "$work/torch.tsv"
  else note "PyTorch printed no threads=1 lines"; fi
else
  echo; note "PyTorch skipped: '$PYTHON -c \"import torch\"' fails (apt-get install -y python3-torch)"
fi

# ---- onnxruntime ---------------------------------------------------------------------------
echo
ort_module=$ORT_DIR/node_modules/onnxruntime-node
if ! command -v node >/dev/null 2>&1; then
  note "onnxruntime skipped: node is not installed"
elif [ ! -d "$ort_module" ]; then
  note "onnxruntime skipped: no $ort_module (npm install --prefix $ORT_DIR onnxruntime-node --ignore-scripts)"
elif ! NODE_PATH=$ORT_DIR/node_modules node -e "require('onnxruntime-node')" >"$work/ort_load.txt" 2>&1; then
  note "onnxruntime skipped: onnxruntime-node does not load: $(grep -m 1 '^[A-Za-z]*Error' "$work/ort_load.txt" || tail -n 1 "$work/ort_load.txt")"
elif [ "$have_torch" -ne 1 ]; then
  note "onnxruntime skipped: exporting the models needs PyTorch"
elif ! "$PYTHON" "$PEERS/export_onnx.py" "$work/onnx" >"$work/export.txt" 2>&1; then
  note "onnxruntime skipped: export_onnx.py failed: $(tail -n 1 "$work/export.txt")"
else
  echo "== peer onnxruntime-node" \
    "$(NODE_PATH=$ORT_DIR/node_modules node -p "require('onnxruntime-node/package.json').version" 2>/dev/null), 1 thread"
  NODE_PATH=$ORT_DIR/node_modules node "$PEERS/ort_bench.js" "$work/onnx" 1 >"$work/ort.txt" 2>&1
  cat "$work/ort.txt"
  # "onnxruntime threads=1 ou66 infer batch=1: 615.3 img/s": the last three words name it
  awk '/^onnxruntime .*threads=1 / {
      i = index($0, ": "); n = split(substr($0, 1, i - 1), w, " "); split(substr($0, i + 2), f, " ")
      model = (w[n-2] == "ou66") ? "OU-66" : (w[n-2] == "ou200") ? "OU-200" : w[n-2]
      print model " " w[n-1] " " w[n] "\t" f[1] "\t" f[2]
    }' "$work/ort.txt" >"$work/ort.tsv"
  if [ -s "$work/ort.tsv" ]; then table "ours vs onnxruntime (1 thread)" "$work/ort.tsv"
  else note "onnxruntime printed no threads=1 lines"; fi
fi

# ---- OpenBLAS ------------------------------------------------------------------------------
# Runs the peer program with one thread; $1 forces a kernel (OPENBLAS_CORETYPE) when not empty.
# OPENBLAS_VERBOSE=2 makes OpenBLAS name the kernel it picked ("Core: Haswell") on stderr.
run_openblas() {
  (
    unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
    if [ -n "$1" ]; then OPENBLAS_CORETYPE=$1; export OPENBLAS_CORETYPE; fi
    OPENBLAS_VERBOSE=2 OPENBLAS_NUM_THREADS=1 "$work/sgemm_openblas"
  )
}
# 3: an AVX-512 kernel, 2: an AVX2 kernel, 1: anything older.
openblas_kernel_rank() {
  case $1 in
    SkylakeX|Cooperlake|SapphireRapids) echo 3 ;;
    Haswell|Zen|Excavator|Steamroller) echo 2 ;;
    *) echo 1 ;;
  esac
}
cpu_flags=" $(grep -m 1 '^flags' /proc/cpuinfo 2>/dev/null | sed 's/^[^:]*://') "
has_flags() {
  for flag in "$@"; do
    case $cpu_flags in *" $flag "*) ;; *) return 1 ;; esac
  done
  return 0
}

echo
if "$CC" -O2 "$PEERS/sgemm_openblas.c" -lopenblas -o "$work/sgemm_openblas" >"$work/sgemm_cc.txt" 2>&1; then
  lib=$(ldd "$work/sgemm_openblas" 2>/dev/null | awk '/openblas/ {print $3; exit}')
  run_openblas "" >"$work/sgemm.txt" 2>"$work/sgemm_err.txt"
  core=$(sed -n 's/^Core: //p' "$work/sgemm_err.txt" | head -n 1)
  echo "== peer OpenBLAS SGEMM ($lib), 1 thread, kernel ${core:-?} (its own choice)"
  cat "$work/sgemm.txt"
  # OpenBLAS picks its kernel from the CPU model; builds older than the CPU fall back to an
  # SSE kernel (0.3.21 on Sapphire/Emerald Rapids picks Prescott, 4-5x slower). Then measure
  # again with the kernel the CPU's features allow and pair with that run: the peer at its best.
  want=""
  if has_flags avx512f avx512cd avx512bw avx512dq avx512vl; then want=SkylakeX; want_rank=3
  elif has_flags avx2 fma; then want=Haswell; want_rank=2
  fi
  if [ -n "$want" ] && [ "$(openblas_kernel_rank "${core:-?}")" -lt "$want_rank" ]; then
    run_openblas "$want" >"$work/sgemm_forced.txt" 2>"$work/sgemm_err.txt"
    forced=$(sed -n 's/^Core: //p' "$work/sgemm_err.txt" | head -n 1)
    if [ "$forced" = "$want" ] && grep -q 'GFLOP/s' "$work/sgemm_forced.txt"; then
      echo
      echo "== peer OpenBLAS SGEMM, 1 thread, kernel $want (OPENBLAS_CORETYPE=$want)"
      note "its own choice, ${core:-?}, leaves this CPU's wider vector units idle; the table pairs with this run"
      cat "$work/sgemm_forced.txt"
      cp "$work/sgemm_forced.txt" "$work/sgemm.txt"
      core=$want
    else
      note "OpenBLAS does not accept OPENBLAS_CORETYPE=$want; pairing with its own choice"
    fi
  fi
  awk '/^M=[0-9]+ N=[0-9]+ K=[0-9]+ / { print "sgemm " $1 " " $2 " " $3 "\t" $4 "\t" $5 }' \
    "$work/sgemm.txt" >"$work/sgemm.tsv"
  if [ -s "$work/sgemm.tsv" ]; then
    table "ours vs OpenBLAS SGEMM (1 thread, kernel ${core:-?}, row-major, no transposes)" "$work/sgemm.tsv"
  else note "OpenBLAS printed no GFLOP/s lines"; fi
else
  note "OpenBLAS skipped: $CC ... -lopenblas fails (apt-get install -y libopenblas-dev)"
fi

# ---- FMA peak ------------------------------------------------------------------------------
echo
if "$CC" -O2 -march=native "$PEERS/peak_fma.c" -o "$work/peak_fma" >"$work/peak_cc.txt" 2>&1; then
  echo "== peer FP32 FMA peak of one core"
  "$work/peak_fma" >"$work/peak.txt" 2>&1
  cat "$work/peak.txt"
  # Compared with the peak of the vector width our GEMM path uses (the widest one when scalar:
  # the compiler vectorises the scalar loops for the host).
  path=$(sed -n 's/^ours gemm path: //p' "$work/ours.txt" | head -n 1)
  peak=$(awk -v path="$path" '
      /^AVX2 FMA peak/ { avx2 = $4 } /^AVX-512 FMA peak/ { avx512 = $4 }
      END {
        if (path == "avx2" || path == "sse") { if (avx2 != "") print "AVX2\t" avx2; exit }
        if (avx512 != "") print "AVX-512\t" avx512; else if (avx2 != "") print "AVX2\t" avx2
      }' "$work/peak.txt")
  if [ -n "$peak" ]; then
    peak_name=${peak%%	*}; peak_value=${peak##*	}
    # our inference as GFLOP/s (the figure in brackets), and our best GEMM shape
    awk '
      /^ours .* infer batch=[0-9]+: / && /GFLOP\/s\)/ {
        i = index($0, ": "); key = substr($0, 6, i - 6)
        match($0, /[0-9.]+ GFLOP\/s\)/); g = substr($0, RSTART, RLENGTH); sub(/ .*/, "", g)
        print key " (GFLOP/s)\t" g
      }
      /^ours sgemm M=/ {
        i = index($0, ": "); split(substr($0, i + 2), f, " ")
        if (f[1] + 0 > best + 0) { best = f[1]; shape = substr($0, 12, i - 12) }
      }
      END { if (best != "") print "best sgemm (" shape ")\t" best }' "$work/ours.txt" >"$work/peak_ours.tsv"
    echo
    echo "== ours vs one core's $peak_name FMA peak ($peak_value GFLOP/s)"
    printf "%-34s | %13s | %13s | %s\n" "workload" "ours" "peak" "fraction of peak"
    awk -F '\t' -v peak="$peak_value" '{
        printf "%-34s | %13s | %13s | %.2f\n", $1, $2 " GFLOP/s", peak " GFLOP/s", $2 / peak
      }' "$work/peak_ours.tsv"
  else
    note "the FMA peak program printed no peak"
  fi
else
  note "FMA peak skipped: peak_fma.c needs x86 with AVX2 and FMA ($CC -march=native failed)"
fi

echo
echo "== load average at the end: $(loadavg)"
if [ -n "$failed" ]; then
  echo
  echo "!! benchmark programs that failed:$failed"
  exit 1
fi
exit 0
