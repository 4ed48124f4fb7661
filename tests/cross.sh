#!/bin/sh
# make test-cross: the test programs named in $2, built for each CPU named in $1 with Debian's
# cross compiler (<cpu>-linux-gnu-gcc) and run under qemu-user (qemu-<cpu>), then the summed
# "N passed, N failed" of them all. A CPU without its compiler or qemu is a SKIP, not a failure.
# The CLI tests among them run the lens tool built for that CPU, through the same qemu.
cpus=$1; tests=$2
make=${MAKE:-make}
total_pass=0; total_fail=0; ran=""
log=build/cross/run.log
mkdir -p build/cross
for cpu in $cpus; do
  case $cpu in
    aarch64) libc=libc6-dev-arm64-cross ;;
    *) libc=libc6-dev-$cpu-cross ;;
  esac
  cc=$cpu-linux-gnu-gcc
  if ! command -v "$cc" >/dev/null 2>&1; then
    echo "SKIP $cpu: no $cc (Debian: apt-get install gcc-$cpu-linux-gnu $libc)"; continue
  fi
  mkdir -p "build/cross/$cpu"
  # the compiler alone, without its C library, builds nothing
  if ! printf 'int main(void) { return 0; }\n' | "$cc" -static -x c - -o "build/cross/$cpu/probe" >/dev/null 2>&1; then
    echo "SKIP $cpu: $cc cannot link a static program (Debian: apt-get install $libc)"; continue
  fi
  rm -f "build/cross/$cpu/probe"
  qemu=""
  for q in qemu-$cpu qemu-$cpu-static; do
    if command -v "$q" >/dev/null 2>&1; then qemu=$q; break; fi
  done
  if [ -z "$qemu" ]; then echo "SKIP $cpu: no qemu-$cpu (Debian: apt-get install qemu-user)"; continue; fi
  programs=""
  for t in $tests; do programs="$programs build/cross/$cpu/$t"; done
  echo "== $cpu: building$programs and build/cross/$cpu/lens with $cc"
  # shellcheck disable=SC2086
  if ! $make --no-print-directory $programs "build/cross/$cpu/lens"; then
    echo "!! $cpu: the build failed"; total_fail=$((total_fail + 1)); continue
  fi
  start=$(date +%s)
  # shellcheck disable=SC2086
  LENS=build/cross/$cpu/lens LENS_TEST_RUNNER=$qemu LENS_TEST_TIMES=1 LENS_TEST_JOBS=1 sh tests/run.sh $programs | tee "$log"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
  p=0; f=1
  [ -n "$line" ] && p=$(echo "$line" | awk '{print $1}') && f=$(echo "$line" | awk '{print $3}')
  echo "== $cpu under $qemu: $p passed, $f failed in $(($(date +%s) - start)) s"
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f)); ran="$ran $cpu"
done
rm -f "$log"
[ -n "$ran" ] && echo "== test-cross ran on:$ran"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
