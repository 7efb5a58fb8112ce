#!/usr/bin/env python3
"""Whole-process timing of portmap ADD and DEL: ours against the reference.

A bridge + host-local + portmap chain with 4 port mappings (2 tcp, 2 udp),
as a runtime runs it: bridge ADD first (not timed), then portmap ADD with
the bridge's result as prevResult, then portmap DEL; only the portmap
processes are timed. Measured with 1, 50 and 200 containers already
mapped in the same host namespace, for:
- ours, nftables backend;
- ours, iptables backend;
- the reference (/usr/lib/cni/portmap; Debian's 1.1.1 has only iptables:
  its nftables backend came in 1.5, so there is no reference nftables row
  unless the installed one prints a version >= 1.5).
The rows run interleaved, cycle by cycle, so all see the same machine.

Each backend gets its own throwaway host namespace (so "200 containers
mapped" means 200 in the backend measured); the iptables namespace is
shared by ours and the reference, whose rule layouts are the same. The
containers already mapped are made with our plugin (same layout, faster to
set up) from synthetic prevResults. Nothing runs in this machine's own
namespace; everything is removed on exit.

usage: sudo python3 bench/portmap.py [--cycles N] [--ours DIR] [--reference DIR]
--ours is a directory laid out as an install (plugin names linked to our
executable): `make links` makes target/<triple>/release/cni-bin.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import ip, setns
from benchlib import run_timed as run
SCALES = (1, 50, 200)
CNI_VERSION = "1.0.0"


def reference_has_nftables(binary):
    """Whether the reference portmap is 1.5 or newer (nftables backend)."""
    p = subprocess.run([binary], capture_output=True, text=True, env={"CNI_COMMAND": ""})
    m = re.search(r"v(\d+)\.(\d+)", p.stderr + p.stdout)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (1, 5)


def mappings(base):
    return [
        {"hostPort": base, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": base + 1, "containerPort": 81, "protocol": "udp"},
        {"hostPort": base + 2, "containerPort": 443, "protocol": "tcp"},
        {"hostPort": base + 3, "containerPort": 53, "protocol": "udp"},
    ]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=30)
    # The release build's target, as the Makefile picks it (musl where it can).
    triple = subprocess.run(["make", "-s", "-C", root, "release-triple"], capture_output=True,
                            text=True).stdout.strip()
    ap.add_argument("--ours", default=os.path.join(root, "target", triple, "release", "cni-bin"))
    ap.add_argument("--reference", default="/usr/lib/cni")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: run as root (namespaces)")
    for d, names in ((args.ours, ("bridge", "host-local", "portmap")), (args.reference, ("portmap",))):
        for n in names:
            if not os.access(os.path.join(d, n), os.X_OK):
                sys.exit(f"bench: {d}/{n} missing (make links / apt-get install containernetworking-plugins)")

    tag = f"cnipm{os.getpid()}"
    tmp = tempfile.mkdtemp(prefix="cni-bench-portmap-")
    made = []

    def netns_add(name):
        ip("netns", "add", name)
        made.append(name)

    try:
        bindir = {}
        for name, src, plugins in (("ours", args.ours, ("bridge", "host-local", "portmap")),
                                   ("reference", args.reference, ("portmap",))):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            for b in plugins:
                try:
                    os.link(os.path.join(src, b), os.path.join(d, b))
                except OSError:
                    shutil.copy(os.path.join(src, b), os.path.join(d, b))
            bindir[name] = d

        # Rows: (label, host namespace key, plugin dir, backend key or None).
        rows = [("ours nftables", "nft", bindir["ours"], "nftables"),
                ("ours iptables", "ipt", bindir["ours"], "iptables"),
                ("reference iptables", "ipt", bindir["reference"], None)]
        if reference_has_nftables(os.path.join(bindir["reference"], "portmap")):
            rows.append(("reference nftables", "nft", bindir["reference"], "nftables"))
        hosts = {}
        for k, key in enumerate(("nft", "ipt")):
            h = f"{tag}-{key}"
            netns_add(h)
            hosts[key] = {"ns": f"/run/netns/{h}", "subnet": f"10.250.{k * 16}.0/20",
                          "bridge": f"pmbr{key}", "net": f"bench-{key}"}
            setns(hosts[key]["ns"])
            ip("link", "set", "lo", "up")

        def env(d, cmd, ctr, netns):
            e = dict(os.environ)
            e.update({"CNI_COMMAND": cmd, "CNI_CONTAINERID": ctr, "CNI_NETNS": netns,
                      "CNI_IFNAME": "eth0", "CNI_PATH": d})
            return e

        def bridge_conf(h):
            return {"cniVersion": CNI_VERSION, "name": h["net"], "type": "bridge",
                    "bridge": h["bridge"], "isGateway": True, "hairpinMode": True,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": h["subnet"]}]],
                             "dataDir": os.path.join(tmp, f"{h['net']}-ipam")}}

        def portmap_conf(h, backend, maps, prev):
            c = {"cniVersion": CNI_VERSION, "name": h["net"], "type": "portmap",
                 "capabilities": {"portMappings": True}, "snat": True,
                 "runtimeConfig": {"portMappings": maps}, "prevResult": prev}
            if backend:
                c["backend"] = backend
                c["dataDir"] = os.path.join(tmp, f"{h['net']}-portmap")
            return c

        # The containers already mapped: synthetic prevResults, our plugin.
        def synthetic_prev(h, i):
            base = h["subnet"].split(".")
            addr = f"10.250.{int(base[2]) + 8 + i // 250}.{2 + i % 250}"
            gw = f"10.250.{int(base[2])}.1"
            return {"cniVersion": CNI_VERSION,
                    "interfaces": [{"name": h["bridge"]}, {"name": f"veth{i}"},
                                   {"name": "eth0", "sandbox": f"/run/netns/bg{i}"}],
                    "ips": [{"interface": 2, "address": f"{addr}/20", "gateway": gw}]}

        mapped = {"nft": 0, "ipt": 0}

        def populate(key, n):
            h = hosts[key]
            setns(h["ns"])
            backend = "nftables" if key == "nft" else "iptables"
            while mapped[key] < n:
                i = mapped[key]
                c = portmap_conf(h, backend, mappings(20000 + 4 * i), synthetic_prev(h, i))
                run([os.path.join(bindir["ours"], "portmap")],
                    env(bindir["ours"], "ADD", f"bg{i}", f"/run/netns/bg{i}"), json.dumps(c).encode())
                mapped[key] += 1

        # One real container per row, attached by our bridge (not timed).
        ctrs = {}
        for r, (label, key, d, backend) in enumerate(rows):
            h = hosts[key]
            setns(h["ns"])
            ctr = f"{tag}-c{r}"
            netns_add(ctr)
            _, out = run([os.path.join(bindir["ours"], "bridge")],
                         env(bindir["ours"], "ADD", ctr, f"/run/netns/{ctr}"),
                         json.dumps(bridge_conf(h)).encode())
            ctrs[label] = (ctr, json.loads(out))

        results = {}  # (label, scale) -> {"add": [...], "del": [...]}
        for scale in SCALES:
            for key in hosts:
                populate(key, scale)
            times = {label: {"add": [], "del": []} for label, *_ in rows}
            for cycle in range(args.cycles + 1):
                for r, (label, key, d, backend) in enumerate(rows):
                    h = hosts[key]
                    setns(h["ns"])
                    ctr, prev = ctrs[label]
                    c = json.dumps(portmap_conf(h, backend, mappings(10000 + 4 * r), prev)).encode()
                    binary = os.path.join(d, "portmap")
                    t_add, _ = run([binary], env(d, "ADD", ctr, f"/run/netns/{ctr}"), c)
                    t_del, _ = run([binary], env(d, "DEL", ctr, f"/run/netns/{ctr}"), c)
                    if cycle > 0:  # cycle 0 warms up: tables, page cache
                        times[label]["add"].append(t_add)
                        times[label]["del"].append(t_del)
            for label in times:
                results[(label, scale)] = times[label]

        med = statistics.median
        ms = lambda s: f"{s * 1000:8.2f}"
        print(f"portmap (after bridge + host-local), 4 mappings (2 tcp, 2 udp), cniVersion {CNI_VERSION}, "
              f"{args.cycles} cycles per row; whole-process medians (ms)")
        print(f"{'row':20} {'verb':4} " + " ".join(f"{f'{s} mapped':>11}" for s in SCALES)
              + f" {'200/1':>6}")
        for label, *_ in rows:
            for verb in ("add", "del"):
                m = [med(results[(label, s)][verb]) for s in SCALES]
                print(f"{label:20} {verb.upper():4} " + " ".join(f"{ms(x):>11}" for x in m)
                      + f" {m[-1] / m[0]:6.2f}")
        print()
        print("ratios (reference iptables median / ours; >1 means ours is faster)")
        print(f"{'row':20} {'verb':4} " + " ".join(f"{f'{s} mapped':>11}" for s in SCALES))
        for label in ("ours nftables", "ours iptables"):
            for verb in ("add", "del"):
                ratio = [med(results[("reference iptables", s)][verb]) / med(results[(label, s)][verb])
                         for s in SCALES]
                print(f"{label:20} {verb.upper():4} " + " ".join(f"{x:10.1f}x" for x in ratio))
        print()
        print("targets (printed, not asserted)")
        for label in ("ours nftables", "ours iptables"):
            ref = med(results[("reference iptables", 200)]["add"])
            o200 = med(results[(label, 200)]["add"])
            o1 = med(results[(label, 1)]["add"])
            print(f"{label:20} ADD at 200: {ref / o200:5.1f}x faster than the reference (target >= 5x: "
                  f"{'yes' if ref / o200 >= 5 else 'NO'}); 200/1 = {o200 / o1:.2f} "
                  f"(target <= 1.2: {'yes' if o200 / o1 <= 1.2 else 'NO'})")
    finally:
        os.chdir("/")
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
