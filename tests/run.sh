#!/bin/sh
# Runs each test program given, shows its output, and sums the "N passed, N failed" lines.
# A program that crashes or prints no summary counts as one failure. $LENS_TEST_RUNNER, when set,
# is the command that runs each program (make test-cross: qemu-aarch64 or qemu-s390x);
# LENS_TEST_TIMES=1 adds the seconds each took.
total_pass=0; total_fail=0; broken=""
for t in "$@"; do
  echo "== $t"
  start=$(date +%s)
  out=$(${LENS_TEST_RUNNER:-} "$t" 2>&1); status=$?
  printf '%s\n' "$out"
  [ "${LENS_TEST_TIMES:-}" = 1 ] && echo "-- $t: $(($(date +%s) - start)) s"
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
  p=0; f=0
  if [ -n "$line" ]; then
    p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
  fi
  if [ -z "$line" ] || { [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; }; then
    broken="$broken $t"; f=$((f + 1))
    echo "!! $t exited with status $status without a failing summary"
  fi
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
done
[ -n "$broken" ] && echo "programs that crashed or printed no summary:$broken"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
