#!/bin/sh
# Print the target the release build is for: the host's architecture with
# musl (x86_64-unknown-linux-musl on x86_64) when rustc has that target's
# standard library, which this script installs with rustup if it can;
# otherwise the host's own triple (glibc), saying so on stderr.
#
# Why musl: a static glibc executable probes the CPU's caches at start-up
# with dozens of CPUID instructions, and in a virtual machine each one
# traps to the hypervisor. On the test VM that cost about 1 ms of every
# plugin call (a static musl executable starts in 0.25 ms, the glibc one
# in 1.2 ms): a third of a bridge ADD. See README, Benchmarks.
set -eu
host=$(rustc -vV | sed -n 's/^host: //p')
case "$host" in
*-unknown-linux-gnu) musl=${host%-gnu}-musl ;;
*) echo "$host"; exit 0 ;;
esac
if [ -d "$(rustc --print sysroot)/lib/rustlib/$musl/lib" ]; then
    echo "$musl"
elif command -v rustup >/dev/null 2>&1 && rustup target add "$musl" >&2; then
    echo "$musl"
else
    echo "release build: no $musl standard library (rustup target add $musl); building for $host" >&2
    echo "$host"
fi
