#!/bin/sh
# The teaching page (docs/web.md) in a real headless Chromium: `make web` builds build/web/, and
# index.html?selftest, opened from the folder (file://, so nothing is fetched from a server), runs
# its self-test through the page's own handlers (the ones a dropped file or a button press reach)
# and writes the results into the page. Checked here against the native tool, not against the
# WebAssembly: the sample cutout's p_lens and logits equal `lens predict`'s within 1e-5; the
# Grad-CAM and occlusion overlays were drawn (the pictures are not uniform and the overlay differs
# from the bare cutout); a non-FITS file, a broken PNG, a FITS file without a 2-D image and a
# file too large for the page's memory get a clear message on the page, and so does a file
# dropped while the page is busy; a PNG is scored; the simulated lens has the parameters `lens sim`
# writes for the same seed. A second run keeps a screenshot, build/web/screenshot.png.
# SKIP without emcc (Debian: emscripten) or Chromium (Debian: chromium). Prints "N passed, N
# failed". About half a minute.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
unset MAKEFLAGS MFLAGS MAKELEVEL
. tests/check.sh
emcc=${EMCC:-emcc}
chromium=${CHROMIUM:-}
if [ -z "$chromium" ]; then
  for c in chromium chromium-browser google-chrome; do
    if command -v "$c" >/dev/null 2>&1; then chromium=$c; break; fi
  done
fi
skip=""
command -v "$emcc" >/dev/null 2>&1 || skip="emcc is not installed (Debian: apt-get install emscripten)"
[ -z "$skip" ] && [ -z "$chromium" ] && skip="Chromium is not installed (Debian: apt-get install chromium)"
[ -z "$skip" ] && ! command -v node >/dev/null 2>&1 && skip="node is not installed (Debian: apt-get install nodejs)"
if [ -n "$skip" ]; then
  echo "SKIP: $skip; the web page is not tested"
  check_summary
  exit $?
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lens-web.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
lens=${LENS:-build/lens}
make=${MAKE:-make}

echo "-- make web"
$make -s --no-print-directory web >"$tmp/make.log" 2>&1
rc=$?
check "make web builds the page (exit $rc: $(tail -n 3 "$tmp/make.log"))" [ "$rc" -eq 0 ]
for f in index.html app.js style.css lens_web.js lens_data.js; do
  check "build/web/$f is there" [ -s "build/web/$f" ]
done
[ -x "$lens" ] || $make -s --no-print-directory "$lens" >/dev/null 2>&1
check "the native tool $lens is there (the reference)" [ -x "$lens" ]
if [ "$rc" -ne 0 ] || [ ! -x "$lens" ]; then check_summary; exit $?; fi

# Everything the page loads is beside it: no address outside the folder in what it loads.
check "index.html loads only files beside it" sh -c "! grep -E '(src|href)=\"(https?:|//)' build/web/index.html"
check "the WebAssembly is inside lens_web.js (no .wasm to fetch)" sh -c "[ ! -e build/web/lens_web.wasm ] && grep -q 'data:application/octet-stream;base64,' build/web/lens_web.js"
kb=$(du -ck build/web/index.html build/web/app.js build/web/style.css build/web/lens_web.js build/web/lens_data.js | tail -n 1 | cut -f1)
echo "page: $kb kB"
check "the page is under 6 MB ($kb kB)" [ "$kb" -lt 6144 ]

url="file://$root/build/web/index.html?selftest"
# --no-sandbox: Chromium refuses to run as root with its sandbox (CI containers run as root)
# (a profile of its own in the scratch folder: the user's browser profile is left alone)
flags="--headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --disable-extensions --user-data-dir=$tmp/profile --virtual-time-budget=120000"
echo "-- $chromium, $url"
timeout 180 "$chromium" $flags --dump-dom "$url" >"$tmp/dom.html" 2>"$tmp/chromium.log"
rc=$?
sed -n 's/.*SELFTEST \(.*\) END.*/\1/p' "$tmp/dom.html" >"$tmp/selftest.json"
check "Chromium ran the page's self-test to its end (exit $rc: $(grep -v -i dbus "$tmp/chromium.log" | tail -n 2))" [ -s "$tmp/selftest.json" ]
if [ ! -s "$tmp/selftest.json" ]; then check_summary; exit $?; fi

# The fields of the self-test's JSON, one "path value" per line (numbers as JavaScript prints them).
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  (function walk(o, p) {
    for (const k of Object.keys(o)) {
      const v = o[k], q = p ? p + "." + k : k;
      if (v !== null && typeof v === "object") walk(v, q); else console.log(q + " " + String(v).replace(/\n/g, " "));
    }
  })(r, "");' "$tmp/selftest.json" >"$tmp/fields.txt"
field() { sed -n "s/^$1 //p" "$tmp/fields.txt" | head -n 1; }
# near A B TOL: |A - B| <= TOL (both numbers)
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { if (a == "" || b == "") exit 1; d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }
# more A B: A > B
more() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 > b + 0) }'; }

echo "-- what a score cannot know"
blank=$(field blank.warnings)
check "a blank 50 x 50 FITS at 0.05\"/pixel is scored ($(field blank.p_lens)) with warnings: $blank" \
  sh -c "echo '$blank' | grep -q 'covers 2.5\" (0.05\"/pixel); OU_VIS was trained on 20.0\" (0.1\"/pixel).*look 8.00 times their size' &&
         echo '$blank' | grep -q 'a 50 x 50 cutout is blown up to 200 x 200' && echo '$blank' | grep -q 'every finite pixel has the same value'"

echo "-- the sample cutout against lens predict"
"$lens" predict --model weights/OU_VIS.safetensors --resize samples/vis/0000002_VIS.fits >"$tmp/native.csv" 2>/dev/null
native_p=$(awk -F, 'NR == 2 { print $2 }' "$tmp/native.csv")
native_l0=$(awk -F, 'NR == 2 { print $3 }' "$tmp/native.csv")
native_l1=$(awk -F, 'NR == 2 { print $4 }' "$tmp/native.csv")
web_p=$(field sample.p_lens)
echo "p_lens of samples/vis/0000002_VIS.fits: page $web_p, lens predict $native_p"
check "the page scored the sample with OU_VIS" [ "$(field sample.model)" = OU_VIS ]
check "p_lens on the page ($web_p) equals lens predict's ($native_p) within 1e-5" near "$web_p" "$native_p" 1e-5
check "and both logits within 1e-5 ($(field sample.logits.0) $(field sample.logits.1); $native_l0 $native_l1)" \
  sh -c "awk -v a='$(field sample.logits.0)' -v b='$native_l0' 'BEGIN { d = a - b; exit !(a != \"\" && d <= 1e-5 && d >= -1e-5) }' &&
         awk -v a='$(field sample.logits.1)' -v b='$native_l1' 'BEGIN { d = a - b; exit !(a != \"\" && d <= 1e-5 && d >= -1e-5) }'"
check "Grad-CAM: the cutout's picture is not uniform ($(field sample.canvas.image_colours) colours)" more "$(field sample.canvas.image_colours)" 10
check "Grad-CAM: the map is not uniform ($(field sample.canvas.map_colours) colours)" more "$(field sample.canvas.map_colours)" 3
check "Grad-CAM: the overlay differs from the bare cutout ($(field sample.canvas.overlay_differs) pixels)" more "$(field sample.canvas.overlay_differs)" 1000
check "occlusion: the same p_lens ($(field occlusion.p_lens))" near "$(field occlusion.p_lens)" "$native_p" 1e-5
check "occlusion: the map is not uniform ($(field occlusion.canvas.map_colours) colours)" more "$(field occlusion.canvas.map_colours)" 3
check "occlusion: the overlay differs from the bare cutout ($(field occlusion.canvas.overlay_differs) pixels)" more "$(field occlusion.canvas.overlay_differs)" 1000

echo "-- bad input"
check "a non-FITS file: an error on the page naming it ($(field bad_fits.status))" \
  sh -c "[ '$(field bad_fits.error)' = true ] && echo '$(field bad_fits.status)' | grep -q 'notes.fits: .*not a FITS file'"
check "a broken PNG: an error on the page ($(field bad_png.status))" \
  sh -c "[ '$(field bad_png.error)' = true ] && echo '$(field bad_png.status)' | grep -q 'broken.png: .*PNG'"
check "a FITS file without a 2-D image: an error on the page ($(field one_axis.status))" \
  sh -c "[ '$(field one_axis.error)' = true ] && echo '$(field one_axis.status)' | grep -q 'one_axis.fits: expected a 2-D image'"
check "a file too large for the page's memory: an error naming it ($(field too_large.status))" \
  sh -c "[ '$(field too_large.error)' = true ] && echo \"$(field too_large.status)\" | grep -q \"^huge.fits: too large for the page's memory\""
check "a file dropped while the page is busy: the page says so ($(field busy.status))" \
  sh -c "echo '$(field busy.status)' | grep -q '^late.fits: the page is busy'"
check "and says it again when the job is over ($(field busy.after))" \
  sh -c "echo '$(field busy.after)' | grep -q '^notes.fits: .*late.fits was not opened while the page was busy: open it again.$'"
check "a PNG drawn by the page is scored ($(field png.p_lens), $(field png.height) rows)" \
  sh -c "[ '$(field png.height)' = 48 ] && awk -v p='$(field png.p_lens)' 'BEGIN { exit !(p != \"\" && p >= 0 && p <= 1) }'"

echo "-- the simulated lens against lens sim"
"$lens" sim --preset euclid-lensfinding --layout ou200 --lens-fraction 1 --n 1 --seed 36 --threads 1 --out "$tmp/sim" >/dev/null 2>&1
native_row=$(sed -n 2p "$tmp/sim/labels.csv")
web_row=$(field simulated.label_row)
echo "page:     $web_row"
echo "lens sim: $native_row"
check "the simulated lens's parameters are lens sim's (labels.csv, seed 36)" [ -n "$web_row" -a "$web_row" = "$native_row" ]
check "and the page lists them ($(field simulated.params_rows) rows)" more "$(field simulated.params_rows)" 5
check "the simulated lens is scored ($(field simulated.p_lens))" awk -v p="$(field simulated.p_lens)" 'BEGIN { exit !(p != "" && p >= 0 && p <= 1) }'
check "and its overlay drawn ($(field simulated.canvas.overlay_differs) pixels differ)" more "$(field simulated.canvas.overlay_differs)" 1000

echo "-- screenshot"
rm -f build/web/screenshot.png
timeout 180 "$chromium" $flags --window-size=1280,1500 --screenshot="$root/build/web/screenshot.png" "$url" >/dev/null 2>>"$tmp/chromium.log"
check "Chromium kept a screenshot, build/web/screenshot.png" sh -c "[ -s build/web/screenshot.png ] && head -c 8 build/web/screenshot.png | od -An -c | grep -q 'P   N   G'"
check_summary
