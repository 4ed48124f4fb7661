# check.sh - the shell tests' harness (the counterpart of check.h), sourced from the repository
# root: `check DESCRIPTION COMMAND...` counts whether the command succeeds, `check_summary`
# prints "N passed, N failed" and returns nonzero if anything failed.
pass=0; fail=0
check() {
  desc=$1; shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $desc"; fi
}
# has FILE TEXT / lacks FILE TEXT: whether the file holds the text, as is.
has() { grep -qF -- "$2" "$1"; }
lacks() { ! grep -qF -- "$2" "$1"; }
check_summary() {
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}
