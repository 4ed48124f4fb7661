#!/bin/sh
# CMake users: the repository's CMakeLists.txt builds the lens tool and every example (they run
# and print what the Makefile's builds print); a project that pulls the repository in with
# add_subdirectory links lens::lens and runs; after `make install PREFIX=...`, find_package(lens
# 0.M) finds the installed headers (a program builds and runs against them) and refuses
# versions it is not (another minor while the major is 0, a later one). SKIP without cmake.
# Prints "N passed, N failed". About a minute (most of it compiling the tool and the examples).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
unset MAKEFLAGS MFLAGS MAKELEVEL
. tests/check.sh
if ! command -v cmake >/dev/null 2>&1; then
  echo "SKIP: cmake is not installed (Debian: apt-get install cmake); the CMake builds are not tested"
  check_summary
  exit $?
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lens-cmake.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
version=$(sed -n 's/^#define LENSNET_VERSION_STRING "\(.*\)"$/\1/p' lensnet.h)
minor=$(echo "$version" | cut -d. -f1-2)
lens=${LENS:-build/lens}
# NO_PNG builds of the Makefile are matched here, so the two builds print the same
png=""
[ -n "${NO_PNG:-}" ] && [ "${NO_PNG:-}" != 0 ] && png="-DLENS_NO_PNG=ON"

echo "-- the repository as a CMake project: the tool and the examples"
# The Debug configuration (CMake's -g, no optimisation): what is tested is the project, not the
# compiler's optimiser, and it compiles the implementation six times (the tool and each example)
# in a third of Release's time.
cmake -S . -B "$tmp/top" -DCMAKE_BUILD_TYPE=Debug $png >"$tmp/top.log" 2>&1 && cmake --build "$tmp/top" -j 2 >>"$tmp/top.log" 2>&1
rc=$?
check "cmake configures and builds the tool and the examples (exit $rc: $(tail -n 3 "$tmp/top.log"))" [ "$rc" -eq 0 ]
check "the CMake-built lens says version $version" sh -c "'$tmp/top/lens' --version | grep -qF '$version'"
for e in examples/*.c; do
  name=$(basename "$e" .c)
  check "example $name built" [ -x "$tmp/top/$name" ]
done
# find_lenses scores the sample cutouts: the same lines from both builds (same compiler, flags aside)
if [ -x "$tmp/top/find_lenses" ] && ${MAKE:-make} -s --no-print-directory build/examples/find_lenses >/dev/null 2>&1; then
  "$tmp/top/find_lenses" >"$tmp/find_cmake.txt" 2>&1; rc=$?
  build/examples/find_lenses >"$tmp/find_make.txt" 2>&1
  check "find_lenses (CMake build) exits 0 (got $rc)" [ "$rc" -eq 0 ]
  n=$(grep -c 'p_lens=' "$tmp/find_cmake.txt"); m=$(grep -c 'p_lens=' "$tmp/find_make.txt")
  check "find_lenses (CMake build) scores as many cutouts as the Makefile build ($n, $m)" [ "$n" -gt 0 -a "$n" -eq "$m" ]
  check "with the same p_lens to 1e-5" awk -F'p_lens=' 'NR == FNR { a[FNR] = $2 + 0; next }
    { d = a[FNR] - ($2 + 0); if (d < -1e-5 || d > 1e-5) bad = 1 } END { exit bad }' "$tmp/find_cmake.txt" "$tmp/find_make.txt"
fi

# a program of the consumer's own, built against lens::lens
mkdir -p "$tmp/app"
cat >"$tmp/app/main.c" <<'EOF'
#define LENSNET_IMPLEMENTATION
#define LENSSIM_IMPLEMENTATION
#define LENSVIZ_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include "lensviz.h"
#include "lenssim.h"
#include <stdio.h>
int main(void) {
  lensnet_model *m;
  lensnet_error err;
  char arch[4096];
  if (!lensnet_arch_builtin("ou66", 4, arch, sizeof arch) || lensnet_model_create(arch, &m, &err)) return 1;
  printf("lens %s: ou66 with %lu parameters\n", LENSNET_VERSION_STRING, (unsigned long)lensnet_model_parameter_count(m));
  lensnet_model_free(m);
  return 0;
}
EOF

echo "-- add_subdirectory"
mkdir -p "$tmp/sub"
cat >"$tmp/sub/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.13)
project(consumer C)
add_subdirectory("$root" lens)
add_executable(app "$tmp/app/main.c")
target_link_libraries(app PRIVATE lens::lens)
EOF
cmake -S "$tmp/sub" -B "$tmp/sub/build" $png >"$tmp/sub.log" 2>&1 && cmake --build "$tmp/sub/build" >>"$tmp/sub.log" 2>&1
rc=$?
check "a project with add_subdirectory builds (exit $rc: $(tail -n 3 "$tmp/sub.log"))" [ "$rc" -eq 0 ]
check "and builds neither the tool nor the examples it did not ask for" [ ! -e "$tmp/sub/build/lens/lens" -a ! -e "$tmp/sub/build/lens/find_lenses" ]
check "its program runs against the headers" sh -c "'$tmp/sub/build/app' | grep -qE 'lens $version: ou66 with [0-9]+ parameters'"

echo "-- make install, then find_package(lens $minor)"
${MAKE:-make} -s --no-print-directory install PREFIX="$tmp/prefix" ${NO_PNG:+NO_PNG=$NO_PNG} >"$tmp/install.log" 2>&1
rc=$?
check "make install exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "it writes lib/cmake/lens/lensConfig.cmake and lensConfigVersion.cmake" \
  [ -f "$tmp/prefix/lib/cmake/lens/lensConfig.cmake" -a -f "$tmp/prefix/lib/cmake/lens/lensConfigVersion.cmake" ]
find_project() { # find_project DIR VERSION: a consumer asking find_package(lens VERSION)
  mkdir -p "$1"
  cat >"$1/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.13)
project(consumer C)
find_package(lens $2 REQUIRED)
add_executable(app "$tmp/app/main.c")
target_link_libraries(app PRIVATE lens::lens)
message(STATUS "lens weights: \${lens_WEIGHTS_DIR}")
EOF
  cmake -S "$1" -B "$1/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >"$1.log" 2>&1
}
find_project "$tmp/found" "$minor"; rc=$?
check "find_package(lens $minor) configures (exit $rc: $(tail -n 3 "$tmp/found.log"))" [ "$rc" -eq 0 ]
check "lens_WEIGHTS_DIR names the installed weights" has "$tmp/found.log" "lens weights: $tmp/prefix/share/lens/weights"
cmake --build "$tmp/found/build" >"$tmp/found_build.log" 2>&1; rc=$?
check "the program builds against the installed headers (exit $rc)" [ "$rc" -eq 0 ]
check "and runs" sh -c "'$tmp/found/build/app' | grep -qF 'lens $version'"
check "the installed include folder is the one used" grep -rqF "$tmp/prefix/include" "$tmp/found/build/CMakeFiles/app.dir/flags.make"
major=$(echo "$version" | cut -d. -f1); min=$(echo "$version" | cut -d. -f2)
find_project "$tmp/later" "$major.$((min + 1))"; rc=$?
check "find_package(lens $major.$((min + 1))) is refused (exit $rc)" [ "$rc" -ne 0 ]
find_project "$tmp/major" "$((major + 1)).0"; rc=$?
check "find_package(lens $((major + 1)).0) is refused (exit $rc)" [ "$rc" -ne 0 ]
${MAKE:-make} -s --no-print-directory uninstall PREFIX="$tmp/prefix" >/dev/null 2>&1
check "make uninstall removes the CMake files" [ ! -e "$tmp/prefix/lib/cmake/lens" ]
check_summary
