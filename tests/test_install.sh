#!/bin/sh
# make install / uninstall into a temporary prefix: the tool, the headers, liblens.so, lens.pc and the weights
# land where they should; a small C program builds against the installed headers with
# `pkg-config --cflags --libs lens` and runs (skipped, with the reason, without pkg-config);
# `lens --version` agrees with the headers' version macros; DESTDIR stages without changing the
# paths inside lens.pc; uninstall removes what install put there.
# Prints "N passed, N failed" like the C tests. A few seconds (the tool is built by make test).
cd "$(dirname "$0")/.." || exit 1
unset MAKEFLAGS MFLAGS MAKELEVEL
MAKE=${MAKE:-make}
CC=${CC:-cc}
. tests/check.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lens_test_install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# The version macros, as the headers define them.
macro() { sed -n "s/^#define $1 \"*\([^\"]*\)\"*\$/\1/p" "$2"; }
for h in lensnet lenssim lensviz; do
  H=$(echo "$h" | tr a-z A-Z)
  s=$(macro "${H}_VERSION_STRING" "$h.h")
  triple="$(macro "${H}_VERSION_MAJOR" "$h.h").$(macro "${H}_VERSION_MINOR" "$h.h").$(macro "${H}_VERSION_PATCH" "$h.h")"
  check "$h.h: ${H}_VERSION_STRING ($s) is MAJOR.MINOR.PATCH ($triple)" [ -n "$s" -a "$s" = "$triple" ]
  eval "ver_$h=\$s"
done
check "the three headers carry one version ($ver_lensnet, $ver_lenssim, $ver_lensviz)" \
  [ "$ver_lensnet" = "$ver_lenssim" -a "$ver_lensnet" = "$ver_lensviz" ]
ver=$ver_lensnet

echo "-- make install PREFIX=$tmp/prefix"
prefix=$tmp/prefix
$MAKE --no-print-directory install PREFIX="$prefix" > "$tmp/install.log" 2>&1; rc=$?
check "make install exits 0 (got $rc)" [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || cat "$tmp/install.log"
check "bin/lens is there and executable" [ -x "$prefix/bin/lens" ]
check "lib/liblens.so (the shared library of the Python module) is build/liblens.so" cmp -s build/liblens.so "$prefix/lib/liblens.so"
for h in lensnet.h lenssim.h lensviz.h; do
  check "include/$h is the header" cmp -s "$h" "$prefix/include/$h"
done
pc=$prefix/lib/pkgconfig/lens.pc
check "lib/pkgconfig/lens.pc is there" [ -f "$pc" ]
check "lens.pc: Version: $ver" has "$pc" "Version: $ver"
check "lens.pc: Libs: -lm -lpthread" has "$pc" "Libs: -lm -lpthread"
check "lens.pc: prefix=$prefix" has "$pc" "prefix=$prefix"
n=0
for w in weights/*.safetensors weights/*.md; do
  n=$((n + 1))
  check "share/lens/$w installed" cmp -s "$w" "$prefix/share/lens/$w"
done
check "some weights were installed ($n files)" [ "$n" -gt 0 ]

echo "-- lens --version agrees with the headers"
"$prefix/bin/lens" --version > "$tmp/version.txt" 2>&1; rc=$?
check "lens --version exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "lens --version: 'lens $ver'" has "$tmp/version.txt" "lens $ver"
check "lens --version: 'lensnet.h $ver_lensnet'" has "$tmp/version.txt" "lensnet.h $ver_lensnet"
check "lens --version: 'lenssim.h $ver_lenssim'" has "$tmp/version.txt" "lenssim.h $ver_lenssim"
check "lens --version: 'lensviz.h $ver_lensviz'" has "$tmp/version.txt" "lensviz.h $ver_lensviz"
[ "$rc" -eq 0 ] || cat "$tmp/version.txt"

echo "-- a program built with pkg-config --cflags --libs lens"
if command -v pkg-config > /dev/null 2>&1; then
  export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
  mv_=$(pkg-config --modversion lens 2>&1)
  check "pkg-config --modversion lens: $ver (got $mv_)" [ "$mv_" = "$ver" ]
  wdir=$(pkg-config --variable=weightsdir lens)
  check "pkg-config --variable=weightsdir lens: $prefix/share/lens/weights (got $wdir)" [ "$wdir" = "$prefix/share/lens/weights" ]
  mkdir -p "$tmp/app"
  cat > "$tmp/app/app.c" <<'C'
#define LENSNET_IMPLEMENTATION
#include <lensnet.h>
#include <lenssim.h>
#include <lensviz.h>
#include <stdio.h>
int main(int argc, char **argv) {
  lensnet_model *m;
  lensnet_error err;
  if (argc < 2 || lensnet_model_load(argv[1], &m, &err) != LENSNET_OK) return 1;
  printf("%s %s %s %lux%lux%lu\n", LENSNET_VERSION_STRING, LENSSIM_VERSION_STRING, LENSVIZ_VERSION_STRING,
         (unsigned long)m->in_c, (unsigned long)m->in_h, (unsigned long)m->in_w);
  lensnet_model_free(m);
  return 0;
}
C
  # built in its own folder, so only the installed headers can be found
  (cd "$tmp/app" && $CC -std=c99 -O0 -o app app.c $(pkg-config --cflags --libs lens)) > "$tmp/cc.log" 2>&1; rc=$?
  check "app.c compiles and links with pkg-config's flags (exit $rc)" [ "$rc" -eq 0 ]
  [ "$rc" -eq 0 ] || cat "$tmp/cc.log"
  out=$("$tmp/app/app" "$wdir/OU_66.safetensors" 2>&1)
  check "app runs on the installed OU_66 weights (got '$out')" [ "$out" = "$ver $ver $ver 4x66x66" ]
else
  echo "SKIP: pkg-config not found (Debian: apt-get install pkg-config): the program against lens.pc was not built"
fi

echo "-- DESTDIR stages the files; lens.pc keeps the real prefix"
$MAKE --no-print-directory install DESTDIR="$tmp/stage" PREFIX=/opt/lens > "$tmp/stage.log" 2>&1; rc=$?
check "make install DESTDIR=... exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "DESTDIR/opt/lens/bin/lens" [ -x "$tmp/stage/opt/lens/bin/lens" ]
check "DESTDIR/opt/lens/share/lens/weights/OU_66.safetensors" [ -f "$tmp/stage/opt/lens/share/lens/weights/OU_66.safetensors" ]
check "lens.pc says prefix=/opt/lens" has "$tmp/stage/opt/lens/lib/pkgconfig/lens.pc" "prefix=/opt/lens"
check "lens.pc does not name DESTDIR" lacks "$tmp/stage/opt/lens/lib/pkgconfig/lens.pc" "$tmp/stage"

echo "-- make uninstall"
$MAKE --no-print-directory uninstall PREFIX="$prefix" > "$tmp/uninstall.log" 2>&1; rc=$?
check "make uninstall exits 0 (got $rc)" [ "$rc" -eq 0 ]
left=$(cd "$prefix" && find . -type f | sort | tr '\n' ' ')
check "no file left under the prefix (left: $left)" [ -z "$left" ]
check "share/lens removed" [ ! -e "$prefix/share/lens" ]

check_summary
