#!/bin/busybox sh
# /init of the test guest (built into the initramfs by build-initramfs.sh).
#
# Loads the modules in the computed order, mounts the host's root read-only
# over virtio-9p at /newroot with fresh proc, sys, dev and writable tmpfs
# /tmp and /run (so /run/netns, /var/run/netns) over it, then runs the job
# script named by `cni.job=PATH` on the kernel command line with
# `chroot /newroot /bin/sh PATH`, environment CNI_GUEST=1. Its exit status
# is printed as a line `CNI-GUEST-EXIT: N` on the serial console, passed to
# QEMU's isa-debug-exit device (QEMU then exits with 2N+1) and the guest
# powers off. Every failure before the job also ends in that line (N=120+).
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin

finish() {
    echo "CNI-GUEST-EXIT: $1"
    # isa-debug-exit at port 0xf4 (244): QEMU exits at once with status 2*N+1.
    printf "\\$(printf %o "$1")" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
    poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

while read -r m params; do
    # shellcheck disable=SC2086 # parameters are words
    insmod "/lib/modules/$m.ko" $params || { echo "guest: insmod $m failed"; finish 121; }
done < /lib/modules/order

job=
for arg in $(cat /proc/cmdline); do
    case $arg in cni.job=*) job=${arg#cni.job=} ;; esac
done
[ -n "$job" ] || { echo "guest: no cni.job= on the kernel command line"; finish 122; }

# cache=loose: the host's files do not change during a run, and reading
# test binaries through the page cache is several times faster.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /newroot ||
    { echo "guest: cannot mount the host's root over 9p"; finish 123; }
mount -t proc proc /newroot/proc
mount -t sysfs sys /newroot/sys
mount -t devtmpfs dev /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm 2>/dev/null
mount -t devpts devpts /newroot/dev/pts 2>/dev/null
mount -t tmpfs tmpfs /newroot/dev/shm
mount -t tmpfs tmpfs /newroot/tmp
mount -t tmpfs tmpfs /newroot/run
mkdir -p /newroot/run/netns
# Debian's /var/run is a link to /run; elsewhere give it its own tmpfs.
[ -L /newroot/var/run ] || mount -t tmpfs tmpfs /newroot/var/run
mount -t tmpfs tmpfs /newroot/var/lib/cni 2>/dev/null || true
[ -d /newroot/sys/fs/cgroup ] && mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup 2>/dev/null

ip link set lo up
[ -f "/newroot$job" ] || { echo "guest: job $job not found in the host's root"; finish 124; }
echo "guest: kernel $(uname -r), $(cut -d' ' -f1 /proc/uptime)s after boot, running $job"
env -i CNI_GUEST=1 HOME=/root TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    chroot /newroot /bin/sh "$job"
finish $?
