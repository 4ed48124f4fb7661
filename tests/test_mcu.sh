#!/bin/sh
# The firmware example (examples/mcu, docs/embedded.md): make mcu builds OU-66 for a Cortex-M4F
# with Debian's arm-none-eabi-gcc and newlib; it runs under qemu-system-arm (mps2-an386) and
# prints, through semihosting, logits within 1e-4 of the ordinary host build's for the same
# images, with no allocation at all, and exits 0. `lens export-c` writes C that compiles warning-
# free and holds the model's architecture text and parameters to the bit, and refuses bad names.
# Built with MCU_CPU for a Cortex-M7, the firmware runs on mps2-an500 with the same logits; a
# changed MCU_CPU rebuilds it, both ways. SKIP (not FAIL) without arm-none-eabi-gcc, newlib or
# qemu-system-arm. Prints "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
unset MAKEFLAGS MFLAGS MAKELEVEL
. tests/check.sh
lens=${LENS:-build/lens}
cc=${CC:-cc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lens-mcu.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

echo "-- lens export-c"
${MAKE:-make} -s --no-print-directory "$lens" >"$tmp/make-lens.log" 2>&1
"$lens" export-c weights/OU_66.safetensors --out "$tmp/ou66_model.c" --name ou66 >"$tmp/export.log" 2>&1; rc=$?
check "export-c writes OU-66 (exit $rc: $(cat "$tmp/export.log"))" [ "$rc" -eq 0 ]
check "export-c writes the header beside the C file" [ -f "$tmp/ou66_model.h" ]
check "the values are const and aligned" has "$tmp/ou66_model.c" "OU66_ALIGNED const float ou66_values[OU66_VALUE_COUNT] = {"
cat >"$tmp/roundtrip.c" <<'C'
#include <stdio.h>
#include <string.h>
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include "ou66_model.h"
int main(void) {
  lensnet_model *m, *p;
  lensnet_error err;
  static unsigned char block[OU66_HEAP_BYTES] __attribute__((aligned(8)));
  size_t bytes = 0;
  if (lensnet_model_load("weights/OU_66.safetensors", &m, &err)) { puts(err.message); return 1; }
  if (strcmp(m->arch, ou66_arch)) { puts("arch text differs"); return 1; }
  if (m->value_count != OU66_VALUE_COUNT || memcmp(m->values, ou66_values, sizeof ou66_values)) { puts("values differ"); return 1; }
  if (lensnet_model_heap_size(ou66_arch, &bytes, &err) || bytes != OU66_HEAP_BYTES) { puts("OU66_HEAP_BYTES is not the heap size"); return 1; }
  if (lensnet_model_workspace_floats(m, 1) != OU66_WORKSPACE_FLOATS) { puts("OU66_WORKSPACE_FLOATS is not the workspace"); return 1; }
  if (lensnet_model_init_preallocated(ou66_arch, ou66_values, OU66_VALUE_COUNT, block, sizeof block, &p, &err)) { puts(err.message); return 1; }
  if (ou66_meta_count != m->meta_count || strcmp(ou66_meta[2][0], m->meta_keys[2]) || strcmp(ou66_meta[2][1], m->meta_values[2])) {
    puts("metadata differs"); return 1;
  }
  puts("same");
  return 0;
}
C
$cc -std=c99 -Wall -Wextra -pedantic -Werror -O1 -I. -I"$tmp" -o "$tmp/roundtrip" "$tmp/roundtrip.c" "$tmp/ou66_model.c" -lm >"$tmp/roundtrip.log" 2>&1; rc=$?
check "the exported C compiles with -std=c99 -pedantic -Werror (exit $rc: $(head -n 5 "$tmp/roundtrip.log"))" [ "$rc" -eq 0 ]
out=$("$tmp/roundtrip" 2>&1)
check "the exported architecture, parameters (bit for bit), metadata, heap and workspace sizes are the model's ($out)" [ "$out" = same ]
"$lens" export-c weights/OU_66.safetensors --out "$tmp/x.c" --name 9lives >/dev/null 2>&1; rc=$?
check "a --name that is not a C identifier is a usage error (exit $rc)" [ "$rc" -eq 2 ]
"$lens" export-c weights/OU_66.safetensors --out "$tmp/x.txt" >/dev/null 2>&1; rc=$?
check "an --out that is not a .c file is a usage error (exit $rc)" [ "$rc" -eq 2 ]
"$lens" export-c "$tmp/missing.safetensors" --out "$tmp/x.c" >"$tmp/missing.log" 2>&1; rc=$?
check "a missing model fails with a message (exit $rc)" [ "$rc" -eq 1 ] && has "$tmp/missing.log" "missing.safetensors"
check "nothing is left behind by failures" [ ! -e "$tmp/x.c" ] && [ ! -e "$tmp/x.c.tmp" ]
# text from the model file (metadata, its path) that C would read otherwise: "??=" is a
# trigraph in a string, "*/" ends the comment naming the file
mkdir -p "$tmp/c*"
"$lens" info weights/OU_66.safetensors --set 'note=a"b\c??=d */ e' --out "$tmp/c*/odd.safetensors" >/dev/null 2>&1
"$lens" export-c "$tmp/c*/odd.safetensors" --out "$tmp/odd.c" --name odd >/dev/null 2>&1; rc=$?
cat > "$tmp/odd_main.c" <<'C'
#include <stdio.h>
#include <string.h>
#include "odd.h"
int main(void) {
  size_t i;
  for (i = 0; i < odd_meta_count; i++)
    if (!strcmp(odd_meta[i][0], "note")) return strcmp(odd_meta[i][1], "a\"b\\c\?\?=d */ e") != 0;
  return 2;
}
C
$cc -std=c99 -Wall -Wextra -pedantic -Werror -O0 -I"$tmp" -o "$tmp/odd" "$tmp/odd_main.c" "$tmp/odd.c" >"$tmp/odd.log" 2>&1
check "metadata with a trigraph and a path with */ export to C that compiles and keeps the text (export exit $rc: $(head -n 3 "$tmp/odd.log"))" "$tmp/odd"

echo "-- firmware under qemu-system-arm (mps2-an386, Cortex-M4F)"
missing=""
command -v arm-none-eabi-gcc >/dev/null 2>&1 || missing="arm-none-eabi-gcc (Debian: gcc-arm-none-eabi)"
if [ -z "$missing" ] && [ ! -f "$(arm-none-eabi-gcc -print-file-name=nano.specs)" ]; then
  missing="newlib for arm-none-eabi (Debian: libnewlib-arm-none-eabi)"
fi
command -v qemu-system-arm >/dev/null 2>&1 || missing="${missing:+$missing and }qemu-system-arm (Debian: qemu-system-arm)"
if [ -n "$missing" ]; then
  echo "SKIP: the firmware is not built or run: missing $missing"
  check_summary
  exit $?
fi
${MAKE:-make} -s --no-print-directory mcu >"$tmp/make.log" 2>&1; rc=$?
check "make mcu builds the firmware (exit $rc: $(tail -n 5 "$tmp/make.log"))" [ "$rc" -eq 0 ]
check "the firmware builds without warnings ($(grep -m 1 'warning:' "$tmp/make.log"))" lacks "$tmp/make.log" "warning:"
[ "$rc" -eq 0 ] || { check_summary; exit $?; }
arm-none-eabi-size build/mcu/fw.elf
start=$(date +%s)
timeout 300 qemu-system-arm -M mps2-an386 -nographic -semihosting-config enable=on,target=native -kernel build/mcu/fw.elf \
  >"$tmp/fw.log" 2>&1 </dev/null; rc=$?
cat "$tmp/fw.log"
echo "(qemu ran for $(($(date +%s) - start)) s)"
check "the firmware exits 0 through semihosting (exit $rc)" [ "$rc" -eq 0 ]
check "nothing allocates: neither the library nor the C library" has "$tmp/fw.log" "allocations: library 0, C library 0"
images=$(sed -n 's/^#define MCU_IMAGES \([0-9]*\)$/\1/p' build/mcu/mcu_inputs.h)
got=$(grep -c '^image [0-9]* logits' "$tmp/fw.log")
check "the firmware prints logits for all $images images (got $got)" [ "$got" -eq "${images:-0}" ] && [ "$got" -gt 0 ]
# image K logits A (bits) B (bits)  against  image K logits A B
worst=$(awk 'NR == FNR { for (i = 4; i <= NF; i++) ref[$2, i - 3] = $i; n[$2] = NF - 3; next }
  /^image [0-9]+ logits/ { k = 0; for (i = 4; i <= NF; i++) if ($i !~ /^\(/) { k++; d = $i - ref[$2, k]; if (d < 0) d = -d; if (d > w) w = d;
                                                                               if (!(($2, k) in ref)) bad = 1 }
                          if (k != n[$2]) bad = 1; seen++ }
  END { if (bad || !seen) print "mismatch"; else printf "%.3g\n", w + 0 }' build/mcu/host_logits.txt "$tmp/fw.log")
echo "largest |firmware - host| logit difference: $worst"
check "every firmware logit is within 1e-4 of the host build's (largest difference $worst)" \
  awk -v w="$worst" 'BEGIN { exit !(w != "mismatch" && w + 0 <= 1e-4) }'
# PyTorch's logits for the same images (tests/data/wilde2022/logits_OU_66.npy, little-endian
# float32 [6, 2] after the .npy header), read with od where the host is little-endian too
npy=tests/data/wilde2022/logits_OU_66.npy
if [ "$(printf '\001\000' | od -An -t u2 | tr -d ' ')" = 1 ]; then
  hl=$(od -An -t u2 -j 8 -N 2 "$npy" | tr -d ' ')
  od -An -v -t f4 -j $((10 + hl)) "$npy" | tr -s ' \n' '\n\n' | awk 'NF { printf "%s%s", $1, (++n % 2 ? " " : "\n") }' |
    awk '{ print "image " NR - 1 " logits " $0 }' >"$tmp/torch.txt"
  worst=$(awk 'NR == FNR { ref[$2, 1] = $4; ref[$2, 2] = $5; next }
    /^image [0-9]+ logits/ { if (!(($2, 1) in ref)) bad = 1; for (k = 1; k <= 2; k++) { d = $(2 + 2 * k) - ref[$2, k]; if (d < 0) d = -d; if (d > w) w = d }; seen++ }
    END { if (bad || !seen) print "mismatch"; else printf "%.3g\n", w + 0 }' "$tmp/torch.txt" "$tmp/fw.log")
  echo "largest |firmware - PyTorch| logit difference: $worst"
  check "every firmware logit is within 1e-4 of PyTorch's (largest difference $worst)" \
    awk -v w="$worst" 'BEGIN { exit !(w != "mismatch" && w + 0 <= 1e-4) }'
else
  echo "SKIP: comparing with PyTorch's logits reads the .npy with od, which needs a little-endian host"
fi
# the sizes docs/embedded.md's sample run shows (the target's structure sizes, not the host's)
line=$(grep -m 1 '^model block ' "$tmp/fw.log")
check "docs/embedded.md's sample run shows the firmware's '$line'" has docs/embedded.md "$line"

echo "-- make mcu again, with MCU_CPU for a Cortex-M7 (mps2-an500), and plain again"
${MAKE:-make} --no-print-directory mcu >"$tmp/again.log" 2>&1
check "a second make mcu builds nothing ($(grep -m 1 'arm-none-eabi-gcc ' "$tmp/again.log" | cut -c 1-60))" lacks "$tmp/again.log" "arm-none-eabi-gcc "
m7='-mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-sp-d16'
${MAKE:-make} --no-print-directory mcu MCU_CPU="$m7" >"$tmp/m7.log" 2>&1; rc=$?
check "make mcu MCU_CPU='$m7' after the M4's build builds the firmware again (exit $rc)" [ "$rc" -eq 0 ] && has "$tmp/m7.log" "-mcpu=cortex-m7"
timeout 300 qemu-system-arm -M mps2-an500 -nographic -semihosting-config enable=on,target=native -kernel build/mcu/fw.elf \
  >"$tmp/m7run.log" 2>&1 </dev/null; rc=$?
check "the M7's firmware exits 0 on mps2-an500 with the M4's logits, bit for bit (exit $rc)" \
  [ "$rc" -eq 0 ] && [ -n "$(grep '^image' "$tmp/fw.log")" ] && [ "$(grep '^image' "$tmp/m7run.log")" = "$(grep '^image' "$tmp/fw.log")" ]
${MAKE:-make} --no-print-directory mcu >"$tmp/back.log" 2>&1; rc=$?
check "a plain make mcu after the M7's build builds the M4's firmware again (exit $rc)" [ "$rc" -eq 0 ] && has "$tmp/back.log" "-mcpu=cortex-m4"
check_summary
