#!/bin/sh
# Every shell command of README.md and of the manual pages docs/*.md runs as written. Each file's
# ```sh blocks are read in order, lines joined at trailing backslashes, comments and `make` lines
# dropped (make demo and make test are what CI runs; make install has its own test), and each
# command is run from a fresh scratch folder per file, which sees the repository's build/,
# weights/, samples/, tools/, tests/, examples/ and python/ where a clone has them. Blocks not meant to be
# run use another fence (```text, ```console). A file's ```python blocks are joined in order into
# one script, run once (one check) from its scratch folder with the repository's python/ module and
# build/liblens.so, by a Python 3 with NumPy ($LENS_PYTHON, /usr/bin/python3 or python3); without
# one, or without build/liblens.so, they are skipped, saying so. Prints "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
. tests/check.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/lens-readme.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
py=""
for p in ${LENS_PYTHON:-} /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import numpy' >/dev/null 2>&1; then py=$p; break; fi
done

run_file() {  # run_file FILE: the ```sh commands of FILE, in a scratch folder of their own
  name=$1
  dir="$work/$(printf '%s' "$name" | tr '/.' '__')"
  mkdir -p "$dir"
  for d in build weights samples tools tests examples python; do ln -s "$root/$d" "$dir/$d"; done
  awk '/^```sh[ \t]*$/ { on = 1; next } /^```/ { on = 0; next }
       on { sub(/[ \t]+#.*$/, ""); if ($0 ~ /^[ \t]*(#|$)/) next
            if (sub(/\\$/, "")) { line = line $0; next }
            print line $0; line = "" }' "$root/$name" >"$dir/.commands"
  n=0
  while IFS= read -r cmd; do
    case "$cmd" in make*) continue ;; esac
    n=$((n + 1))
    if (cd "$dir" && SLURM_ARRAY_TASK_ID=0 sh -c "$cmd") >"$dir/.out" 2>&1 </dev/null; then
      pass=$((pass + 1))
    else
      fail=$((fail + 1))
      echo "FAIL $name command: $cmd"
      sed 's/^/    /' "$dir/.out" | tail -n 5
    fi
  done <"$dir/.commands"
  count=$n; echo "$name: $n commands"
  awk '/^```python[ \t]*$/ { on = 1; next } /^```/ { on = 0; next } on { print }' "$root/$name" >"$dir/.script.py"
  if [ -s "$dir/.script.py" ] && [ -z "$py" ]; then
    echo "$name: its python blocks are skipped: no Python with NumPy (Debian: apt-get install python3-numpy)"
  elif [ -s "$dir/.script.py" ] && [ ! -f "$root/build/liblens.so" ]; then
    echo "$name: its python blocks are skipped: no build/liblens.so (make shared; make test builds it)"
  elif [ -s "$dir/.script.py" ]; then
    if (cd "$dir" && LENS_LIBRARY="$root/build/liblens.so" PYTHONPATH="$root/python" "$py" .script.py) >"$dir/.out" 2>&1 </dev/null; then
      pass=$((pass + 1)); echo "$name: python blocks ran ($py)"
    else
      fail=$((fail + 1))
      echo "FAIL $name: its python blocks"
      sed 's/^/    /' "$dir/.out" | tail -n 8
    fi
  fi
  rm -rf "$dir"
}

run_file README.md
check "README.md has shell commands to run" [ "$count" -gt 0 ]
for page in docs/*.md; do run_file "$page"; done
check_summary
