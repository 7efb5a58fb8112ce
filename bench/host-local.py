#!/usr/bin/env python3
"""host-local at scale: our binary against the reference, same directories.

For each size (addresses already held in a /16) and each binary, the network
directory is pre-populated with reservation files written directly in the
reference's format, then M containers are added one after another and
deleted again (DEL carries the ADD result as prevResult, as runtimes send
it). Printed: allocations per second, ADD and DEL latency (median, p95) and
the reference/ours ratios.

Two cursor positions are measured:
  after-block  last_reserved_ip.0 points just past the held block (a directory
               the reference filled in order): the next address is free;
  wrapped      no cursor: the search starts at the range start, in front of
               every held address (as after the round-robin wraps).
Our first call on a directory written by someone else rebuilds our index
from the files; that one-off cost is printed separately.

Usage: python3 bench/host-local.py [--sizes 10,1000,30000] [--ops 40] [--no-build]
Not a test: numbers depend on the machine.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS = os.path.join(ROOT, "target", "release", "host-local")
REFERENCE = "/usr/lib/cni/host-local"


def conf(data_dir):
    return {
        "cniVersion": "1.0.0",
        "name": "bench",
        "type": "bridge",
        "ipam": {
            "type": "host-local",
            "dataDir": data_dir,
            "ranges": [[{"subnet": "10.100.0.0/16"}]],
        },
    }


def run(binary, command, cid, config):
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/var/run/netns/bench-unused",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
    }
    data = json.dumps(config).encode()
    t0 = time.perf_counter()
    p = subprocess.run([binary], input=data, env=env, capture_output=True, timeout=300)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{binary} {command} {cid} failed: {p.stdout!r} {p.stderr!r}")
    return dt, p.stdout


def ip_of(i):
    """The i-th address from 10.100.0.2 on."""
    n = (10 << 24) | (100 << 16) | 2
    n += i
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def populate(net_dir, held, cursor):
    os.makedirs(net_dir)
    for i in range(held):
        path = os.path.join(net_dir, ip_of(i))
        with open(path, "w") as f:
            f.write(f"pre{i}\r\neth0")
        os.chmod(path, 0o644)
    if cursor == "after-block" and held:
        with open(os.path.join(net_dir, "last_reserved_ip.0"), "w") as f:
            f.write(ip_of(held - 1))


def p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def measure(binary, held, cursor, ops):
    base = tempfile.mkdtemp(prefix="hl-bench-")
    try:
        cfg = conf(base)
        populate(os.path.join(base, "bench"), held, cursor)
        # First call on a directory we did not write (ours rebuilds its index).
        first, out = run(binary, "ADD", "warm", cfg)
        d = dict(cfg, prevResult=json.loads(out))
        run(binary, "DEL", "warm", d)
        adds, dels, results = [], [], []
        for i in range(ops):
            dt, out = run(binary, "ADD", f"b{i}", cfg)
            adds.append(dt)
            results.append(json.loads(out))
        for i in range(ops):
            d = dict(cfg, prevResult=results[i])
            dt, _ = run(binary, "DEL", f"b{i}", d)
            dels.append(dt)
        left = [n for n in os.listdir(os.path.join(base, "bench")) if n[0].isdigit()]
        if len(left) != held:
            sys.exit(f"{binary}: {len(left)} reservations left, expected {held}")
        return {
            "first": first,
            "rate": ops / sum(adds),
            "add_med": statistics.median(adds),
            "add_p95": p95(adds),
            "del_med": statistics.median(dels),
            "del_p95": p95(dels),
        }
    finally:
        shutil.rmtree(base)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,1000,30000")
    ap.add_argument("--ops", type=int, default=40)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--binary", default=OURS, help="our host-local (default target/release/host-local)")
    a = ap.parse_args()
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "host-local"], cwd=ROOT, check=True)
    ours = a.binary
    if not os.path.exists(REFERENCE):
        sys.exit(f"{REFERENCE} missing: apt-get install containernetworking-plugins")
    sizes = [int(s) for s in a.sizes.split(",")]
    ms = lambda s: f"{s * 1000:8.2f}"
    print(f"host-local benchmark: /16, {a.ops} ADDs then {a.ops} DELs per row; times in ms\n")
    hdr = f"{'cursor':<12}{'held':>7} {'binary':<10}{'allocs/s':>9}{'ADD med':>9}{'ADD p95':>9}{'DEL med':>9}{'DEL p95':>9}{'1st call':>9}"
    print(hdr)
    print("-" * len(hdr))
    ratios = []
    for cursor in ("after-block", "wrapped"):
        for held in sizes:
            res = {}
            for name, binary in (("ours", ours), ("reference", REFERENCE)):
                r = measure(binary, held, cursor, a.ops)
                res[name] = r
                print(
                    f"{cursor:<12}{held:>7} {name:<10}{r['rate']:>9.1f}{ms(r['add_med']):>9}{ms(r['add_p95']):>9}"
                    f"{ms(r['del_med']):>9}{ms(r['del_p95']):>9}{ms(r['first']):>9}"
                )
            o, f = res["ours"], res["reference"]
            ratios.append(
                (cursor, held, o["rate"] / f["rate"], f["add_med"] / o["add_med"], f["del_med"] / o["del_med"])
            )
    print("\nratios (reference time / our time; >1 means ours is faster)")
    print(f"{'cursor':<12}{'held':>7}{'allocs/s':>10}{'ADD med':>9}{'DEL med':>9}")
    for cursor, held, rate, add, dele in ratios:
        print(f"{cursor:<12}{held:>7}{rate:>9.1f}x{add:>8.1f}x{dele:>8.1f}x")


if __name__ == "__main__":
    main()
