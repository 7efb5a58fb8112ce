#!/usr/bin/env bash
# The job these plugins do, shown end to end: two containers (network
# namespaces) wired to one bridge by our bridge plugin, addresses from
# host-local, a ping between them, and a clean teardown.
#
# The "host" side is a namespace of its own too, so the demo never touches
# this machine's interfaces, routes or firewall.
#
# usage: scripts/demo.sh [PLUGIN_DIR]   (default /opt/cni/bin; needs root)
set -euo pipefail

BIN=${1:-/opt/cni/bin}
for p in bridge host-local loopback; do
    [ -x "$BIN/$p" ] || { echo "demo: $BIN/$p not found; run 'make install' first" >&2; exit 1; }
done

TAG="cnidemo$$"
HOST="$TAG-host"
DATA=$(mktemp -d)
CONF=$(cat <<JSON
{
  "cniVersion": "1.1.0",
  "name": "demo",
  "type": "bridge",
  "bridge": "demo0",
  "isGateway": true,
  "ipam": {
    "type": "host-local",
    "ranges": [[{"subnet": "10.88.0.0/24"}], [{"subnet": "fd88::/64"}]],
    "dataDir": "$DATA"
  }
}
JSON
)
LO='{"cniVersion":"1.1.0","name":"demo-lo","type":"loopback"}'

cleanup() {
    for c in a b; do ip netns del "$TAG-$c" 2>/dev/null || true; done
    ip netns del "$HOST" 2>/dev/null || true
    rm -rf "$DATA"
}
trap cleanup EXIT

# cni COMMAND CONTAINER PLUGIN CONFIG: run a plugin inside the host namespace
# the way a runtime does (CNI_* in the environment, the config on stdin).
cni() {
    CNI_COMMAND=$1 CNI_CONTAINERID="$TAG-$2" CNI_NETNS="/run/netns/$TAG-$2" \
        CNI_IFNAME=$([ "$3" = loopback ] && echo lo || echo eth0) CNI_PATH="$BIN" \
        ip netns exec "$HOST" "$BIN/$3" <<<"$4"
}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "namespaces: a host, and two containers a and b"
ip netns add "$HOST"
ip netns add "$TAG-a"
ip netns add "$TAG-b"
ip netns list | grep "$TAG"

for c in a b; do
    step "ADD container $c (loopback, then bridge + host-local)"
    cni ADD "$c" loopback "$LO" >/dev/null
    cni ADD "$c" bridge "$CONF"
done

step "container a's interfaces and routes"
ip netns exec "$TAG-a" ip -br addr
ip netns exec "$TAG-a" ip route

B4=$(ip netns exec "$TAG-b" ip -4 -br addr show eth0 | awk '{print $3}' | cut -d/ -f1)
B6=$(ip netns exec "$TAG-b" ip -6 -br addr show eth0 | awk '{print $3}' | cut -d/ -f1)
step "ping b ($B4, $B6) from a"
ip netns exec "$TAG-a" ping -c 2 -W 2 "$B4"
ip netns exec "$TAG-a" ping -6 -c 2 -W 2 "$B6"

step "host-local's reservations on disk"
ls -l "$DATA/demo"

for c in a b; do
    step "DEL container $c"
    cni DEL "$c" bridge "$CONF"
    cni DEL "$c" loopback "$LO"
done

step "after DEL: no veth left on the bridge, no reservation left"
ip netns exec "$HOST" ip -br link
left=$(ls "$DATA/demo" | grep -v -e '^lock$' -e '^last_reserved_ip' || true)
[ -z "$left" ] || { echo "demo: reservations left behind: $left" >&2; exit 1; }
echo "none"
step "demo done: namespaces removed on exit"
