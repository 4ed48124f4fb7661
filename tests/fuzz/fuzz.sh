#!/bin/sh
# Runs libFuzzer targets one after another (make fuzz): tests/fuzz/fuzz.sh SECONDS NAME...
# Each build/fuzz/fuzz_NAME runs for SECONDS on its committed seeds (tests/fuzz/corpus/NAME and
# tests/fuzz/regressions/NAME, read only) and writes the inputs it finds new into build/fuzz/corpus/NAME,
# so the committed corpus stays as it is. A crashing input lands in build/fuzz/crashes/NAME;
# copy it into tests/fuzz/regressions/NAME once fixed, so that `make test` replays it.
# The log of each run is build/fuzz/NAME.log. Exits 1 if any target found a crash.
seconds=$1; shift
found=""
for name in "$@"; do
  case $name in
    fits) max_len=12000 ;;
    safetensors|checkpoint) max_len=8192 ;;
    *) max_len=4096 ;;
  esac
  mkdir -p "build/fuzz/corpus/$name" "build/fuzz/crashes/$name"
  seeds="tests/fuzz/corpus/$name"
  [ -d "tests/fuzz/regressions/$name" ] && seeds="$seeds tests/fuzz/regressions/$name"
  echo "== fuzz_$name: $seconds s, -max_len=$max_len"
  # -rss_limit_mb: the readers' own limits keep memory well below this; more is a finding.
  # shellcheck disable=SC2086
  "build/fuzz/fuzz_$name" -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb=2048 -timeout=30 \
    -print_final_stats=1 -artifact_prefix="build/fuzz/crashes/$name/" "build/fuzz/corpus/$name" $seeds \
    > "build/fuzz/$name.log" 2>&1
  status=$?
  grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "build/fuzz/$name.log" | tail -n 1
  crashes=$(find "build/fuzz/crashes/$name" -type f | wc -l)
  if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    echo "!! fuzz_$name: exit status $status, $crashes input(s) in build/fuzz/crashes/$name (log: build/fuzz/$name.log)"
    grep -E '^==[0-9]+==ERROR|SUMMARY|runtime error' "build/fuzz/$name.log" | head -n 5
    found="$found $name"
  fi
done
if [ -n "$found" ]; then echo "fuzzing found crashes in:$found"; exit 1; fi
echo "fuzzing found nothing in $# target(s) of $seconds s each"
