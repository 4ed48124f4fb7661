#!/bin/sh
# Every shell command in README.md runs as written: the ```sh blocks are read in order, lines
# joined at trailing backslashes, comments and `make` lines dropped (make demo and make test are
# what CI runs; make install has its own test), and each command is run from a scratch folder that
# sees the repository's build/, weights/, samples/ and tools/ where the README expects them.
# Prints "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
. tests/check.sh
readme="$root/README.md"
work=$(mktemp -d "${TMPDIR:-/tmp}/lens-readme.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
for d in build weights samples tools; do ln -s "$root/$d" "$work/$d"; done

awk '/^```sh/ { on = 1; next } /^```/ { on = 0; next }
     on { sub(/[ \t]+#.*$/, ""); if ($0 ~ /^[ \t]*(#|$)/) next
          if (sub(/\\$/, "")) { line = line $0; next }
          print line $0; line = "" }' "$readme" >"$work/commands.txt"

while IFS= read -r cmd; do
  case "$cmd" in make*) continue ;; esac
  if (cd "$work" && SLURM_ARRAY_TASK_ID=0 sh -c "$cmd") >"$work/out.txt" 2>&1 </dev/null; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL README command: $cmd"
    sed 's/^/    /' "$work/out.txt" | tail -n 5
  fi
done <"$work/commands.txt"
check "README.md has shell commands to run" [ -s "$work/commands.txt" ]
check_summary
