#!/bin/sh
# Run every fuzz target for SECONDS each (default 60), starting from the
# corpus of earlier runs (fuzz/full, not committed), the committed corpus
# and fresh seeds; minimise what was found (libFuzzer -merge=1) into
# fuzz/full, and commit-sized: KEEP inputs per target (default 40) into
# fuzz/corpus, which tests/fuzz-targets/tests/replay.rs replays in CI.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Builds with debug assertions (integer overflow panics, as in tests) and
# without a sanitizer (the targets run no unsafe code). A crash leaves its
# input in fuzz/artifacts/<target>/ and makes the script exit 1: copy it to
# fuzz/regressions/<target>/, fix the code, add a unit test beside the fix.
# Prints one line per target: executions, seconds, corpus size, crashes.
set -eu
cd "$(dirname "$0")"
secs=${1:-60}
keep=${KEEP:-40}
[ $# -gt 0 ] && shift
targets=${*:-$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^cni-fuzz$')}
flags="-a -s none"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
./seed.py "$work/seeds" >/dev/null
cargo +nightly fuzz build $flags
failed=0
printf '%-20s %12s %8s %8s %8s\n' target executions seconds corpus crashes
for t in $targets; do
    mkdir -p "$work/$t" "corpus/$t" "artifacts/$t"
    cp -r "corpus/$t/." "$work/$t/"
    [ -d "full/$t" ] && cp -r "full/$t/." "$work/$t/"
    [ -d "$work/seeds/$t" ] && cp -r "$work/seeds/$t/." "$work/$t/"
    before=$(ls "artifacts/$t" | wc -l)
    status=0
    # -rss_limit_mb: a parser that balloons on small input is a finding too.
    cargo +nightly fuzz run $flags "$t" "$work/$t" -- \
        -max_total_time="$secs" -max_len=8192 -rss_limit_mb=1024 -timeout=10 \
        -print_final_stats=1 >"$work/$t.log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$work/$t.log" | tail -1)
    crashes=$(( $(ls "artifacts/$t" | wc -l) - before ))
    if [ "$status" -ne 0 ]; then
        failed=1
        grep -E "panicked|ERROR|SUMMARY" "$work/$t.log" | head -5 >&2 || true
    fi
    # Minimise into the committed corpus.
    rm -rf "$work/$t.min" && mkdir "$work/$t.min"
    cargo +nightly fuzz run $flags "$t" "$work/$t.min" "$work/$t" -- -merge=1 -max_len=8192 \
        >>"$work/$t.log" 2>&1 || true
    rm -rf "full/$t" && mkdir -p full && mv "$work/$t.min" "full/$t"
    # File names are content hashes: the first KEEP are a fair sample.
    rm -rf "corpus/$t" && mkdir "corpus/$t"
    ls "full/$t" | sort | head -n "$keep" | while read -r f; do cp "full/$t/$f" "corpus/$t/"; done
    printf '%-20s %12s %8s %8s %8s\n' "$t" "${runs:-?}" "${took:-?}" "$(ls "full/$t" | wc -l)" "$crashes"
done
exit $failed
