#!/bin/sh
# Runs each test program given, shows its output, and sums the "N passed, N failed" lines.
# A program that crashes or prints no summary counts as one failure. $LENS_TEST_RUNNER, when set,
# is the command that runs each program (make test-cross: qemu-aarch64 or qemu-s390x);
# LENS_TEST_TIMES=1 adds the seconds each took.
#
# LENS_TEST_JOBS=N (make test sets it to the number of CPUs) runs up to N programs at once. The
# outputs are still shown whole and in the order given, each once it and those before it have
# finished. Programs with the same name in different folders (build/test_cli and its sanitizer
# build build/san/test_cli) write the same scratch files under build/, so they run one after
# the other, never together; programs of different names share no files. The programs start in
# the order given, so the slowest are best named first.
jobs=${LENS_TEST_JOBS:-1}
case $jobs in ''|*[!0-9]*) echo "run.sh: LENS_TEST_JOBS must be a whole number, not '$jobs'" >&2; exit 2 ;; esac
[ "$jobs" -ge 1 ] || jobs=1

# run_one I PROGRAM: runs it, its output in $tmp/I.out, then "status seconds" in $tmp/I.rc (last,
# so that a finished .rc means a complete .out)
# (with several jobs in the background, its pid in $tmp/I.pid, so that a stopped run stops it)
run_one() {
  start=$(date +%s)
  if [ "$jobs" -eq 1 ]; then
    ${LENS_TEST_RUNNER:-} "$2" >"$tmp/$1.out" 2>&1
    status=$?
  else
    ${LENS_TEST_RUNNER:-} "$2" >"$tmp/$1.out" 2>&1 </dev/null &
    echo $! >"$tmp/$1.pid"
    wait $!
    status=$?
    rm -f "$tmp/$1.pid"
  fi
  echo "$status $(($(date +%s) - start))" >"$tmp/$1.rc.part" && mv "$tmp/$1.rc.part" "$tmp/$1.rc"
}

total_pass=0; total_fail=0; broken=""
# report I PROGRAM: shows the output and adds its summary to the totals
report() {
  echo "== $2"
  out=$(cat "$tmp/$1.out")
  status=1; secs=0
  [ -f "$tmp/$1.rc" ] && read -r status secs <"$tmp/$1.rc"
  printf '%s\n' "$out"
  [ "${LENS_TEST_TIMES:-}" = 1 ] && echo "-- $2: $secs s"
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
  p=0; f=0
  if [ -n "$line" ]; then
    p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
  fi
  if [ -z "$line" ] || { [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; }; then
    broken="$broken $2"; f=$((f + 1))
    echo "!! $2 exited with status $status without a failing summary"
  fi
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lens-run.XXXXXX") || exit 1
pids=""
stop() {
  for p in $pids $(cat "$tmp"/*.pid 2>/dev/null); do kill "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
# Interrupted (Ctrl-C, a closed terminal, kill): the programs and whatever they started go too.
# Programs started in the background ignore Ctrl-C and are in this script's process group, so
# with several jobs the group is sent SIGTERM (make, which runs this script, is stopping anyway).
interrupted() {
  trap '' INT TERM HUP
  stop
  [ "$jobs" -gt 1 ] && kill -TERM 0 2>/dev/null
  exit "$1"
}
trap stop EXIT
trap 'interrupted 130' INT
trap 'interrupted 143' TERM
trap 'interrupted 129' HUP

if [ "$jobs" -eq 1 ]; then
  i=0
  for t in "$@"; do
    i=$((i + 1)); run_one "$i" "$t"; report "$i" "$t"
  done
else
  # Groups: the indices of the programs of one name, in order, one group per line of $tmp/groups
  i=0
  for t in "$@"; do
    i=$((i + 1))
    key=$(basename "$t"); key=${key%.sh}
    printf '%s\t%s\n' "$i" "$key"
  done | awk -F '\t' '{ if (!($2 in g)) { order[++n] = $2; g[$2] = $1 } else g[$2] = g[$2] " " $1 }
                       END { for (k = 1; k <= n; k++) print g[order[k]] }' >"$tmp/groups"
  workers=$(wc -l <"$tmp/groups")
  [ "$workers" -gt "$jobs" ] && workers=$jobs
  # N workers, each taking the next group from the shared list (a lock-free claim: a group is
  # its worker's once mkdir of its marker succeeds)
  worker() {
    g=0
    while IFS= read -r group; do
      g=$((g + 1))
      mkdir "$tmp/claim.$g" 2>/dev/null || continue
      for k in $group; do
        eval "prog=\${$k}"
        run_one "$k" "$prog"
      done
    done <"$tmp/groups"
  }
  w=0
  while [ "$w" -lt "$workers" ]; do
    worker "$@" &
    pids="$pids $!"; w=$((w + 1))
  done
  i=0
  for t in "$@"; do
    i=$((i + 1))
    while [ ! -f "$tmp/$i.rc" ]; do
      alive=""
      for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
      if [ -z "$alive" ] && [ ! -f "$tmp/$i.rc" ]; then
        echo "!! $t: its worker stopped before it finished" >>"$tmp/$i.out"; break
      fi
      sleep 1
    done
    report "$i" "$t"
  done
  wait
  pids=""
fi
[ -n "$broken" ] && echo "programs that crashed or printed no summary:$broken"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
