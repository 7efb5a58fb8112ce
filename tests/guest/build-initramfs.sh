#!/usr/bin/env bash
# Build the test guest: Debian's distribution kernel (which has 8021q,
# ipvlan, dummy, vrf and bridge VLAN filtering, unlike the CI machine's) and
# a small initramfs whose init loads the modules, mounts the host's root
# read-only over virtio-9p and runs one job script from it (see init.sh).
#
# Everything comes from Debian packages: the kernel .deb is fetched with
# `apt-get download` and unpacked with `dpkg-deb -x` (never installed into
# /boot); busybox is busybox-static's; `ip` and `bridge` are iproute2's with
# the shared libraries ldd lists.
#
# usage: tests/guest/build-initramfs.sh [OUT]     (OUT: target/guest)
# Writes OUT/vmlinuz and OUT/initramfs.cpio; does nothing when they are
# newer than this script, init.sh and the kernel package. Extra modules:
# GUEST_MODULES="nf_tables tun" (their dependencies are added).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${1:-$REPO/target/guest}
mkdir -p "$OUT/deb"
OUT=$(cd "$OUT" && pwd)
# One build at a time (two runners may start together).
exec 9> "$OUT/.build.lock"
flock 9

# Modules the guest tests need; their dependencies are computed below.
# 8021q (vlan), ipvlan, dummy, vrf, veth, bridge, macvlan, tun: the links
# the tests make. nf_tables (libcrc32c needs crc32c_generic loaded first):
# the bridge GC lists its masquerade rules. 9p
# over virtio-pci: the host's root.
MODULES="8021q ipvlan dummy vrf veth bridge macvlan tun crc32c_generic nf_tables 9p 9pnet_virtio virtio_pci ${GUEST_MODULES:-}"

# 1. The kernel package: the version linux-image-amd64 depends on.
deb=$(ls "$OUT"/deb/linux-image-*-amd64_*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
    pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1)
    [ -n "$pkg" ] || { echo "build-initramfs: no linux-image-*-amd64 behind linux-image-amd64 (apt-get update?)" >&2; exit 1; }
    echo "build-initramfs: downloading $pkg" >&2
    # As root apt warns that _apt cannot write here; the download still works.
    (cd "$OUT/deb" && apt-get download -q "$pkg" 2> >(grep -v "couldn't be accessed by user '_apt'" >&2))
    deb=$(ls "$OUT"/deb/linux-image-*-amd64_*.deb | head -n1)
fi

if [ -f "$OUT/initramfs.cpio" ] && [ -f "$OUT/vmlinuz" ] &&
   [ "$OUT/initramfs.cpio" -nt "$deb" ] && [ "$OUT/initramfs.cpio" -nt "$0" ] &&
   [ "$OUT/initramfs.cpio" -nt "$HERE/init.sh" ] &&
   [ "$(cat "$OUT/modules.list" 2>/dev/null)" = "$MODULES" ]; then
    exit 0
fi

KDIR=$OUT/kernel
if [ ! -f "$KDIR/.unpacked" ] || [ "$deb" -nt "$KDIR/.unpacked" ]; then
    rm -rf "$KDIR"
    mkdir -p "$KDIR"
    dpkg-deb -x "$deb" "$KDIR"
    touch "$KDIR/.unpacked"
fi
KVER=$(ls "$KDIR/lib/modules" | head -n1)
MODDIR=$KDIR/lib/modules/$KVER
cp "$KDIR/boot/vmlinuz-$KVER" "$OUT/vmlinuz"

# 2. Module load order. The .deb ships no modules.dep, so read each
# module's `depends=` from its .modinfo section (NUL-separated strings) and
# put every module after its dependencies (depth first).
declare -A FILE SEEN
while IFS= read -r f; do
    n=$(basename "$f" .ko)
    FILE[${n//-/_}]=$f
done < <(find "$MODDIR/kernel" -name '*.ko')
ORDER=()
visit() {
    local m=${1//-/_} d
    [ -n "${SEEN[$m]:-}" ] && return
    SEEN[$m]=1
    if [ -z "${FILE[$m]:-}" ]; then
        # Built into the kernel (modules.builtin) or a typo.
        if grep -q "/${m//_/[-_]}\.ko$" "$MODDIR/modules.builtin"; then return; fi
        echo "build-initramfs: module $m not found in $KVER" >&2
        exit 1
    fi
    for d in $(tr '\0' '\n' < "${FILE[$m]}" | sed -n 's/^depends=//p' | tr ',' ' '); do
        visit "$d"
    done
    # `softdep=pre: NAME...`: modules the init function needs loaded first
    # without linking to them (libcrc32c asks the crypto API for crc32c,
    # which crc32c_generic provides). NAME may be an alias: try NAME, then
    # NAME_generic; one that is neither is left to the kernel.
    for d in $(tr '\0' '\n' < "${FILE[$m]}" | sed -n 's/^softdep=.*pre: *\([^:]*\).*/\1/p' | sed 's/ post$//'); do
        d=${d//-/_}
        if [ -n "${FILE[$d]:-}" ]; then visit "$d"
        elif [ -n "${FILE[${d}_generic]:-}" ]; then visit "${d}_generic"
        fi
    done
    ORDER+=("$m")
}
for m in $MODULES; do visit "$m"; done

# 3. The initramfs tree.
ROOT=$OUT/initramfs
rm -rf "$ROOT"
mkdir -p "$ROOT"/{bin,dev,proc,sys,newroot,lib/modules,usr/bin}
cp /bin/busybox "$ROOT/bin/busybox"
file -b /bin/busybox 2>/dev/null | grep -q 'statically linked' ||
    ldd /bin/busybox 2>&1 | grep -q 'not a dynamic' ||
    { echo "build-initramfs: /bin/busybox is not static (apt-get install busybox-static)" >&2; exit 1; }
for m in "${ORDER[@]}"; do cp "${FILE[$m]}" "$ROOT/lib/modules/$m.ko"; done
# One line per module: its name, then its parameters. dummy would make a
# dummy0 in the guest's own namespace unless told not to.
for m in "${ORDER[@]}"; do
    case $m in
        dummy) echo "dummy numdummies=0" ;;
        *) echo "$m" ;;
    esac
done > "$ROOT/lib/modules/order"
# iproute2 for looking around before the host's root is mounted (the job
# itself runs in the host's root and uses the host's ip).
for tool in ip bridge; do
    src=$(command -v "$tool")
    cp "$src" "$ROOT/usr/bin/$tool"
    for lib in $(ldd "$src" | grep -o '/[^ ]*'); do
        mkdir -p "$ROOT$(dirname "$lib")"
        cp -L "$lib" "$ROOT$lib"
    done
done
cp "$HERE/init.sh" "$ROOT/init"
chmod 0755 "$ROOT/init"
(cd "$ROOT" && find . | sort | busybox cpio -o -H newc 2>/dev/null) > "$OUT/initramfs.cpio.tmp"
mv "$OUT/initramfs.cpio.tmp" "$OUT/initramfs.cpio"
echo "$MODULES" > "$OUT/modules.list"
echo "build-initramfs: $OUT/initramfs.cpio ($KVER, modules: ${ORDER[*]})" >&2
