#!/usr/bin/env bash
# Run one command in the test guest (Debian's kernel under QEMU) and exit
# with its exit status.
#
# usage: tests/guest/run.sh [--script] COMMAND [ARGS...]
#
# COMMAND runs as root in the guest's chroot of the host's root (read-only,
# with tmpfs /tmp and /run), in the current directory, with CNI_GUEST=1,
# CNI_BIN_DIR (target/debug/cni-bin, linked here from target/debug/cni-plugins
# before the boot, unless already set) and RUST_BACKTRACE/RUST_LOG/CNI_LOG_LEVEL
# passed on. COMMAND must live outside /tmp (the guest has its own /tmp):
# test binaries under target/ are fine. With --script, COMMAND is a shell
# script file whose lines run in that environment instead (several test
# binaries in one boot).
#
# Environment: GUEST_TIMEOUT (seconds, default 900), GUEST_ACCEL (default
# tcg; "kvm" only where /dev/kvm boots a distribution kernel), GUEST_SMP (2),
# GUEST_MEM (1024, MiB), GUEST_DIR (target/guest). The console goes to
# stdout and to $GUEST_DIR/console.log. Exit status: the command's; 124 on
# timeout; 125 if the guest never reported one (boot failure, see the log).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
GUEST_DIR=${GUEST_DIR:-$REPO/target/guest}
script=0
if [ "${1:-}" = --script ]; then script=1; shift; fi
[ $# -ge 1 ] || { sed -n '2,20s/^# \{0,1\}//p' "$0" >&2; exit 2; }

"$HERE/build-initramfs.sh" "$GUEST_DIR"

if [ -z "${CNI_BIN_DIR:-}" ] && [ -x "$REPO/target/debug/cni-plugins" ]; then
    "$REPO/scripts/link-roles.sh" "$REPO/target/debug/cni-plugins" "$REPO/target/debug/cni-bin"
    CNI_BIN_DIR=$REPO/target/debug/cni-bin
fi

# The job: a script in the host's tree (so the guest sees it over 9p).
mkdir -p "$GUEST_DIR/jobs"
job=$GUEST_DIR/jobs/job-$$.sh
trap 'rm -f "$job"' EXIT
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
{
    echo "cd $(q "$PWD") || exit 126"
    for v in CNI_BIN_DIR RUST_BACKTRACE RUST_LOG CNI_LOG_LEVEL RUST_TEST_THREADS; do
        if [ -n "${!v:-}" ]; then echo "export $v=$(q "${!v}")"; fi
    done
    if [ $script = 1 ]; then
        cat "$1"
    else
        printf 'exec'
        for a in "$@"; do printf ' %s' "$(q "$a")"; done
        echo
    fi
} > "$job"
case $job in /tmp/*) echo "run.sh: $job is under /tmp, which the guest does not share" >&2; exit 2 ;; esac

accel=${GUEST_ACCEL:-tcg}
cpu=max
[ "$accel" = kvm ] && cpu=host
# Each run logs on its own; the last one is kept as console.log.
log=$GUEST_DIR/jobs/console-$$.log
trap 'rm -f "$job"; mv -f "$log" "$GUEST_DIR/console.log" 2>/dev/null' EXIT
start=$(date +%s)
set +e
timeout -k 10 "${GUEST_TIMEOUT:-900}" qemu-system-x86_64 \
    -accel "$accel" -cpu "$cpu" -m "${GUEST_MEM:-1024}" -smp "${GUEST_SMP:-2}" \
    -nic none -display none -monitor none -serial stdio -no-reboot \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -kernel "$GUEST_DIR/vmlinuz" -initrd "$GUEST_DIR/initramfs.cpio" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 cni.job=$job" \
    < /dev/null 2>&1 | tee "$log"
qemu=${PIPESTATUS[0]}
set -e
secs=$(( $(date +%s) - start ))
status=$(sed -n 's/^CNI-GUEST-EXIT: \([0-9]*\).*/\1/p' "$log" | tail -n1)
if [ -n "$status" ]; then
    echo "run.sh: guest exit status $status after ${secs}s" >&2
    exit "$status"
fi
if [ "$qemu" = 124 ]; then
    echo "run.sh: guest timed out after ${secs}s (GUEST_TIMEOUT=${GUEST_TIMEOUT:-900}); console in $GUEST_DIR/console.log" >&2
    exit 124
fi
echo "run.sh: guest reported no exit status (qemu exit $qemu after ${secs}s); console in $GUEST_DIR/console.log" >&2
exit 125
