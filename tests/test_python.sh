#!/bin/sh
# The Python module (python/lens, docs/python.md) against the lens tool: tests/test_python.py
# compares what it computes with build/lens's outputs (predict, explain, render, sim, train) and
# checks its errors and its promises of no copies; then `pip install ./python` into a temporary
# folder, offline, and the installed module finds its own copy of liblens.so. Needs a Python 3
# with NumPy ($LENS_PYTHON, else /usr/bin/python3, else python3 on PATH): SKIP without one.
# Prints "N passed, N failed". About ten seconds once the tool and build/liblens.so are built.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
unset MAKEFLAGS MFLAGS MAKELEVEL
. tests/check.sh
lens=${LENS:-build/lens}
build=$(dirname "$lens")

py=""
for p in ${LENS_PYTHON:-} /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys, numpy; sys.exit(sys.version_info < (3, 7))' >/dev/null 2>&1; then
    py=$p
    break
  fi
done
if [ -z "$py" ]; then
  echo "SKIP: no Python 3.7+ with NumPy (Debian: apt-get install python3-numpy; or set LENS_PYTHON); the Python module is not tested"
  check_summary
  exit $?
fi
echo "-- $py ($("$py" -c 'import sys, numpy; print("Python %d.%d, NumPy %s" % (sys.version_info[:2] + (numpy.__version__,)))'))"

${MAKE:-make} -s --no-print-directory BUILD="$build" "$lens" "$build/liblens.so" >/dev/null || { check "make builds $lens and $build/liblens.so" false; check_summary; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lens_test_python.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

echo "-- tests/test_python.py: the module against $lens"
LENS=$lens LENS_LIBRARY=$build/liblens.so PYTHONPATH=$root/python "$py" tests/test_python.py > "$tmp/out.txt" 2>&1; rc=$?
cat "$tmp/out.txt"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$tmp/out.txt" | tail -n 1)
if [ -n "$line" ]; then
  pass=$((pass + $(echo "$line" | awk '{print $1}')))
  fail=$((fail + $(echo "$line" | awk '{print $3}')))
fi
check "tests/test_python.py exits 0 with its summary (exit $rc)" [ "$rc" -eq 0 -a -n "$line" ]

echo "-- pip install ./python (offline, into a temporary folder)"
if "$py" -m pip --version >/dev/null 2>&1; then
  # a copy of the tree's python/ and lensnet.h (the version), so that the build's files stay out of the tree
  mkdir -p "$tmp/src" && cp -R python "$tmp/src/python" && cp lensnet.h "$tmp/src/" && rm -rf "$tmp/src/python/build" "$tmp/src/python"/*.egg-info
  LENS_LIBRARY=$root/$build/liblens.so "$py" -m pip install --no-build-isolation --no-index --no-deps --disable-pip-version-check \
    --target "$tmp/site" "$tmp/src/python" > "$tmp/pip.log" 2>&1; rc=$?
  check "pip install --target exits 0 (exit $rc: $(tail -n 2 "$tmp/pip.log"))" [ "$rc" -eq 0 ]
  check "the installed package holds liblens.so" [ -f "$tmp/site/lens/liblens.so" ]
  # from another folder, without LENS_LIBRARY: the installed module loads its own library and scores as the tool does
  "$lens" predict --model "$root/weights/OU_66.safetensors" --list samples/objects.txt --bands 4 > "$tmp/cli.csv" 2>/dev/null
  (cd "$tmp" && unset LENS_LIBRARY && PYTHONPATH="$tmp/site" "$py" -c '
import csv, os, sys, lens
rows = list(csv.DictReader(open("cli.csv")))
m = lens.Model(sys.argv[1] + "/weights/OU_66.safetensors")
ok = lens.library_path == os.path.join(os.getcwd(), "site", "lens", "liblens.so")
for r in rows:
    p = m.predict_file([os.path.join(sys.argv[1], f) for f in r["input"].split("+")]).p_lens[0]
    ok = ok and abs(p - float(r["p_lens"])) <= 5e-7 * p
print("installed:", lens.library_path, len(rows), "objects")
sys.exit(0 if ok and rows else 1)
' "$root") > "$tmp/installed.txt" 2>&1; rc=$?
  check "the installed module uses its own liblens.so and scores samples/objects.txt as lens predict does ($(tail -n 1 "$tmp/installed.txt"))" [ "$rc" -eq 0 ]
else
  echo "note: $py has no pip (Debian: apt-get install python3-pip); pip install ./python is not tested"
fi
check_summary
