#!/bin/sh
# Builds without PNG and without stb_image_write.h:
#  - make NO_PNG=1 (into build/nopng) gives a tool that links; --version and a command without
#    PNG work; every command that would write PNG stops with exit 1 and a message saying why and
#    how to rebuild, before writing anything; lensviz_png_write itself returns an error saying so;
#  - the Makefile's check for stb_image_write.h: when it is hidden (STB_INCLUDE=an empty folder,
#    or no default include path), make stops before compiling with a message saying what is
#    missing and how to get it; STB_INCLUDE=a folder with a copy builds with that copy.
# Prints "N passed, N failed" like the C tests. About 15 s (one build of the tool).
cd "$(dirname "$0")/.." || exit 1
unset MAKEFLAGS MFLAGS MAKELEVEL
MAKE=${MAKE:-make}
CC=${CC:-cc}
. tests/check.sh
has_flag() { case " $1 " in *" $2 "*) return 0;; esac; return 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lens_test_build.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

echo "-- make NO_PNG=1 builds a tool that links"
$MAKE -s --no-print-directory BUILD=build/nopng NO_PNG=1 build/nopng/lens > "$tmp/make.log" 2>&1; rc=$?
check "make NO_PNG=1 succeeds (exit $rc)" [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || cat "$tmp/make.log"
lens=build/nopng/lens
check "build/nopng/lens exists" [ -x "$lens" ]

echo "-- lens --version and commands without PNG work"
"$lens" --version > "$tmp/version.txt" 2>&1; rc=$?
check "lens --version exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "lens --version says PNG output is off" has "$tmp/version.txt" "PNG output: no"
"$lens" sim --preset euclid-lensfinding --n 2 --seed 1 --threads 1 --out "$tmp/sim" > "$tmp/sim.log" 2>&1; rc=$?
check "lens sim without --png exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "lens sim writes images.npy and labels.csv" [ -s "$tmp/sim/images.npy" -a -s "$tmp/sim/labels.csv" ]
"$lens" info weights/OU_66.safetensors > "$tmp/info.log" 2>&1; rc=$?
check "lens info exits 0 (got $rc)" [ "$rc" -eq 0 ]
"$lens" plot --help > "$tmp/help.log" 2>&1; rc=$?
check "lens plot --help still shows the usage (exit $rc)" [ "$rc" -eq 0 ]

echo "-- commands that write PNG say why they cannot, exit 1, write nothing"
png_refused() { # png_refused NAME ARGS...
  name=$1; shift
  "$lens" "$@" > "$tmp/out.log" 2> "$tmp/err.log"; rc=$?
  check "$name exits 1 (got $rc)" [ "$rc" -eq 1 ]
  check "$name: says it was built without PNG support" has "$tmp/err.log" "built without PNG support"
  check "$name: says how to rebuild" has "$tmp/err.log" "sudo apt-get install libstb-dev"
  [ "$rc" -eq 1 ] || { cat "$tmp/out.log" "$tmp/err.log"; }
}
png_refused "lens plot" plot roc --scores "$tmp/sim/labels.csv" --out "$tmp/roc.png"
check "lens plot wrote no picture" [ ! -e "$tmp/roc.png" ]
png_refused "lens explain" explain --model weights/OU_66.safetensors --input "$tmp/sim/images.npy" --method gradcam --out "$tmp/explain"
check "lens explain wrote nothing" [ ! -e "$tmp/explain" ]
png_refused "lens sim --png" sim --preset euclid-lensfinding --n 2 --png --out "$tmp/sim_png"
check "lens sim --png wrote nothing" [ ! -e "$tmp/sim_png" ]

echo "-- lensviz_png_write under LENSVIZ_NO_PNG returns an error saying so"
cat > "$tmp/nopng.c" <<'C'
#define LENSNET_IMPLEMENTATION
#define LENSVIZ_IMPLEMENTATION
#define LENSVIZ_NO_PNG
#include "lensviz.h"
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
  unsigned char rgb[2 * 2 * 3] = {0};
  lensviz_image img = {rgb, 2, 2, 0};
  lensnet_error err;
  lensnet_result r = lensviz_png_write(argv[1], &img, &err);
  FILE *f = fopen(argv[1], "rb");
  (void)argc;
  printf("%s\n", err.message);
  if (f) fclose(f);
  return !(r == LENSNET_ERR_UNSUPPORTED && !LENSVIZ_HAS_PNG && !f && strstr(err.message, "without PNG support"));
}
C
if $CC -std=c99 -O0 -I. -o "$tmp/nopng" "$tmp/nopng.c" -lm -lpthread > "$tmp/cc.log" 2>&1; then
  "$tmp/nopng" "$tmp/x.png" > "$tmp/nopng.log" 2>&1; rc=$?
  check "LENSNET_ERR_UNSUPPORTED, no file, a message naming the cause: $(cat "$tmp/nopng.log")" [ "$rc" -eq 0 ]
else
  cat "$tmp/cc.log"; check "a program using lensviz.h with LENSVIZ_NO_PNG compiles" false
fi

echo "-- make without stb_image_write.h says what is missing and how to get it"
mkdir -p "$tmp/empty"
missing_message() { # missing_message NAME: checks $tmp/miss.log and that nothing was compiled
  check "$1: make fails (exit $rc)" [ "$rc" -ne 0 ]
  for s in "Missing stb_image_write.h" "sudo apt-get install libstb-dev" "make deps" "dnf install stb_image_write-devel" \
           "vcpkg install stb" "make STB_INCLUDE=DIR" "make NO_PNG=1"; do
    check "$1: the message has '$s'" has "$tmp/miss.log" "$s"
  done
  check "$1: stops before compiling" [ ! -e "$tmp/b/lens" ]
  if ! has "$tmp/miss.log" "make NO_PNG=1"; then cat "$tmp/miss.log"; fi
}
$MAKE --no-print-directory BUILD="$tmp/b" STB_INCLUDE="$tmp/empty" "$tmp/b/lens" > "$tmp/miss.log" 2>&1; rc=$?
missing_message "STB_INCLUDE=an empty folder"
check "STB_INCLUDE=an empty folder: names the folder" has "$tmp/miss.log" "STB_INCLUDE=$tmp/empty"
# -nostdinc hides the default include path from the lookup (the lookup fails first: nothing compiles)
$MAKE --no-print-directory BUILD="$tmp/b" CFLAGS_EXTRA=-nostdinc "$tmp/b/lens" > "$tmp/miss.log" 2>&1; rc=$?
missing_message "no stb on the default include path"
check "no stb on the default include path: says where it looked" has "$tmp/miss.log" "on the compiler's include path"

echo "-- STB_INCLUDE=a folder with a copy of stb_image_write.h is used"
sys=$(printf '#include <stb/stb_image_write.h>\n' | $CC -M -x c - 2>/dev/null | tr ' \\' '\n\n' | grep 'stb_image_write\.h$' | head -n 1)
if [ -n "$sys" ] && [ -f "$sys" ]; then
  mkdir -p "$tmp/copy" && cp "$sys" "$tmp/copy/stb_image_write.h"
  $MAKE -s --no-print-directory STB_INCLUDE="$tmp/copy" check-stb > "$tmp/ok.log" 2>&1; rc=$?
  check "make check-stb passes with the copy (exit $rc)" [ "$rc" -eq 0 ]
  line=$($MAKE -n --no-print-directory BUILD="$tmp/c" STB_INCLUDE="$tmp/copy" "$tmp/c/lens" 2>/dev/null | grep -F -- "-o $tmp/c/lens")
  flags=$(printf '%s\n' "$line" | sed -e "s| -o $tmp/c/lens.*||" -e 's|^[^ ]* ||')
  check "the compile line has -I$tmp/copy" has_flag "$flags" "-I$tmp/copy"
  eval "$CC $flags -M tools/impl.c" > "$tmp/deps.txt" 2>&1
  check "tools/impl.c includes the copy, not another stb_image_write.h" has "$tmp/deps.txt" "$tmp/copy/stb_image_write.h"
else
  echo "SKIP: no stb_image_write.h on this machine to copy"
fi

echo "-- the headers print no 64-bit integer with %ll (newlib-nano, the usual microcontroller C library, lacks it)"
for h in lensnet.h lenssim.h lensviz.h; do
  check "no %lld, %llu or %llx in a format of $h" sh -c "! grep -v '^/\\*\\| \\* ' $h | grep -q '\"[^\"]*%[0-9]*ll[dux]'"
done

echo "-- -ffast-math: blank pixels are still found (by their bits; comparisons such as x != x are folded away)"
cat > "$tmp/fastmath.c" <<'EOF2'
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
int main(void) {
  lensnet_model *m = NULL;
  lensnet_error err;
  lensnet_cutout_desc d;
  lensnet_cutout_report rep;
  static float img[4 * 66 * 66], out[4 * 66 * 66];
  const uint32_t nan_bits = 0x7fc00000u, inf_bits = 0x7f800000u, minus_inf_bits = 0xff800000u;
  size_t k, bad = 0;
  if (lensnet_model_load("weights/OU_66.safetensors", &m, &err) != LENSNET_OK) return 2;
  for (k = 0; k < 4 * 66 * 66; k++) img[k] = (float)(k % 97) * 0.01f;
  /* from their bits: under -ffast-math 0/0 need not make a NaN */
  memcpy(&img[100], &nan_bits, 4); memcpy(&img[5000], &inf_bits, 4); memcpy(&img[9000], &minus_inf_bits, 4);
  memset(&d, 0, sizeof d);
  d.minmax = 1;
  if (lensnet_cutout_prepare(m, &d, img, 4, 66, 66, out, &rep, &err) != LENSNET_OK) return 3;
  for (k = 0; k < 4 * 66 * 66; k++) bad += !(out[k] >= 0.0f && out[k] <= 1.0f);
  printf("nan %lu inf %lu outside [0,1] %lu zeroed %d %d %d\n", (unsigned long)rep.nan_pixels, (unsigned long)rep.inf_pixels,
         (unsigned long)bad, out[100] == 0.0f, out[5000] == 0.0f, out[9000] == 0.0f);
  lensnet_model_free(m);
  return !(rep.nan_pixels == 1 && rep.inf_pixels == 2 && bad == 0 && out[100] == 0.0f && out[5000] == 0.0f && out[9000] == 0.0f);
}
EOF2
for cc in gcc clang; do
  command -v $cc >/dev/null 2>&1 || continue
  $cc -std=c99 -O2 -ffast-math -I. -o "$tmp/fastmath" "$tmp/fastmath.c" -lm -lpthread > "$tmp/fastmath.log" 2>&1 && "$tmp/fastmath" >> "$tmp/fastmath.log" 2>&1; rc=$?
  check "$cc -O2 -ffast-math: a NaN and two infinities counted and zeroed by min-max (exit $rc: $(tail -n 1 "$tmp/fastmath.log"))" [ "$rc" -eq 0 ]
done

check_summary
