#!/usr/bin/env bash
# Build the suite and the named test suites of tests/tests, then run those
# suites' guest tests (the #[ignore]d ones, `--ignored`) in one boot of the
# test guest. Exit status 0 only if every suite passed.
#
# usage: tests/guest/test.sh SUITE... [-- TEST-ARGS...]
#   tests/guest/test.sh dummy vrf                  # every guest test of both
#   tests/guest/test.sh vrf -- --exact add_keeps   # libtest args for each suite
#
# The builds are the ones `make test` does (`cargo build --workspace
# --bins`, `cargo test --workspace --no-run`), so after `make test` they
# cost nothing and pick exactly the binaries cargo just built.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CARGO=${CARGO:-cargo}
suites=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do suites+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
[ ${#suites[@]} -gt 0 ] || { sed -n '2,12s/^# \{0,1\}//p' "$0" >&2; exit 2; }

cd "$REPO"
"$CARGO" build --workspace --bins --quiet
# Each test target's executable, from cargo's own report (no guessing
# among stale target/debug/deps/<name>-<hash> files).
exes=$("$CARGO" test --workspace --no-run --message-format=json --quiet |
    python3 -c '
import json, sys
want = set(sys.argv[1:])
for line in sys.stdin:
    m = json.loads(line)
    t = m.get("target") or {}
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and t.get("kind") == ["test"] and t.get("name") in want:
        print(t["name"], m["executable"])
' "${suites[@]}")

job=$(mktemp "$REPO/target/guest-suites.XXXXXX")
trap 'rm -f "$job"' EXIT
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
args=""
for a in "$@"; do args+=" $(q "$a")"; done
{
    echo "status=0"
    for s in "${suites[@]}"; do
        exe=$(printf '%s\n' "$exes" | sed -n "s/^$s //p")
        [ -n "$exe" ] || { echo "test.sh: no test target named $s in tests/tests" >&2; exit 2; }
        echo "echo '=== guest suite $s'"
        echo "$(q "$exe") --ignored$args || { echo '=== guest suite $s FAILED'; status=1; }"
    done
    echo 'exit $status'
} > "$job"
"$HERE/run.sh" --script "$job"
