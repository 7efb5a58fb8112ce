#!/usr/bin/env python3
"""Whole-process timing of bridge + host-local: ours against the reference.

Runs N cycles of ADD, CHECK and DEL for our plugins and for the reference Go
plugins (Debian's containernetworking-plugins in /usr/lib/cni) side by side,
interleaved so that both see the same machine state, each cycle in a fresh
container namespace. All of it happens inside a throwaway "host" namespace;
nothing touches this machine's own interfaces.

Prints per-verb median and p95, the ratio ours/reference, the peak RSS of
one ADD (the plugin and the IPAM plugin it runs), the binary sizes, and the
kernel's own floor for DEL: `ip link del` of a veth wired as an attachment
is (host end on a bridge, container end up with an address), timed in the
same run.

usage: sudo python3 bench/bridge.py [--cycles N] [--ours DIR] [--reference DIR]
Ours default to target/<host triple>/release, as `make build` makes them
(static); `--ours target/release` measures a plain `cargo build --release`.
Peak memory needs GNU time (/usr/bin/time, Debian package `time`).
"""

import argparse
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL("libc.so.6", use_errno=True)


def setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def run_timed(argv, env, stdin):
    """Run a command; return (seconds, rc, stdout, maxrss_kib)."""
    start = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdin.write(stdin)
    p.stdin.close()
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {out.decode()} {err.decode()}")
    return elapsed, out, usage.ru_maxrss


def peak_rss_kib(argv, env, stdin):
    """Peak RSS of a command and the children it waits for (GNU time's %M).

    Measured through /usr/bin/time rather than from here: a child forked
    from this Python process starts with Python's own resident pages counted
    in its high-water mark."""
    if not os.access("/usr/bin/time", os.X_OK):
        return None
    p = subprocess.run(["/usr/bin/time", "-f", "RSS %M"] + argv, env=env, input=stdin,
                       capture_output=True)
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {p.stdout.decode()} {p.stderr.decode()}")
    for line in p.stderr.decode().splitlines():
        if line.startswith("RSS "):
            return int(line.split()[1])
    return None


def pct(xs, p):
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=100)
    triple = subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout
    triple = next((l.split()[1] for l in triple.splitlines() if l.startswith("host:")), "")
    ap.add_argument("--ours", default=os.path.join(root, "target", triple, "release"))
    ap.add_argument("--reference", default="/usr/lib/cni")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: run as root (namespaces)")
    for d, names in ((args.ours, ["bridge", "host-local"]), (args.reference, ["bridge", "host-local"])):
        for n in names:
            if not os.access(os.path.join(d, n), os.X_OK):
                sys.exit(f"bench: {d}/{n} missing (cargo build --release / apt-get install containernetworking-plugins)")

    tag = f"cnibench{os.getpid()}"
    host = f"{tag}-host"
    tmp = tempfile.mkdtemp(prefix="cni-bench-")
    made = []
    try:
        subprocess.run(["ip", "netns", "add", host], check=True)
        made.append(host)
        # Everything from here runs in the host namespace: the plugins we
        # spawn inherit it, so the bridge lives there.
        setns(f"/run/netns/{host}")
        impls = {}
        for name, src in (("ours", args.ours), ("reference", args.reference)):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            for b in ("bridge", "host-local"):
                shutil.copy(os.path.join(src, b), os.path.join(d, b))
            conf = {
                "cniVersion": "1.0.0", "name": f"bench-{name}", "type": "bridge",
                "bridge": f"br-{name[:3]}", "isGateway": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/16"}]],
                         "dataDir": os.path.join(tmp, name + "-data")},
            }
            impls[name] = {"dir": d, "conf": conf,
                           "add": [], "check": [], "del": [], "rss": None}

        def env(impl, cmd, ctr):
            e = dict(os.environ)
            e.update({"CNI_COMMAND": cmd, "CNI_CONTAINERID": ctr, "CNI_NETNS": f"/run/netns/{ctr}",
                      "CNI_IFNAME": "eth0", "CNI_PATH": impl["dir"]})
            return e

        floor = []
        subprocess.run(["ip", "link", "add", "br-flo", "type", "bridge"], check=True)
        subprocess.run(["ip", "link", "set", "br-flo", "up"], check=True)
        for i in range(args.cycles + 1):
            for name, impl in impls.items():
                ctr = f"{tag}-{name[:3]}{i}"
                subprocess.run(["ip", "netns", "add", ctr], check=True)
                made.append(ctr)
                conf = json.dumps(impl["conf"]).encode()
                binary = os.path.join(impl["dir"], "bridge")
                if i == 1:
                    # One ADD/DEL under GNU time for peak memory, outside the timings.
                    impl["rss"] = peak_rss_kib([binary], env(impl, "ADD", ctr), conf)
                    run_timed([binary], env(impl, "DEL", ctr), conf)
                t_add, out, _ = run_timed([binary], env(impl, "ADD", ctr), conf)
                check_conf = dict(impl["conf"], prevResult=json.loads(out))
                t_check, _, _ = run_timed([binary], env(impl, "CHECK", ctr), json.dumps(check_conf).encode())
                t_del, _, _ = run_timed([binary], env(impl, "DEL", ctr), conf)
                subprocess.run(["ip", "netns", "del", ctr], check=True)
                made.remove(ctr)
                if i == 0:
                    continue  # warm-up: first bridge creation, page cache
                impl["add"].append(t_add)
                impl["check"].append(t_check)
                impl["del"].append(t_del)
            # The kernel's floor for DEL: remove a veth wired as an attachment
            # is (host end up on a bridge, container end up with an address),
            # with `ip link del`.
            ctr = f"{tag}-floor{i}"
            subprocess.run(["ip", "netns", "add", ctr], check=True)
            made.append(ctr)
            for cmd in (["ip", "link", "add", "vfloor", "type", "veth", "peer", "name", "eth0", "netns", ctr],
                        ["ip", "link", "set", "vfloor", "master", "br-flo", "up"],
                        ["ip", "-n", ctr, "addr", "add", "10.98.0.2/24", "dev", "eth0"],
                        ["ip", "-n", ctr, "link", "set", "eth0", "up"]):
                subprocess.run(cmd, check=True)
            start = time.perf_counter()
            subprocess.run(["ip", "link", "del", "vfloor"], check=True)
            if i > 0:
                floor.append(time.perf_counter() - start)
            subprocess.run(["ip", "netns", "del", ctr], check=True)
            made.remove(ctr)

        ms = lambda s: f"{s * 1000:7.2f}"
        print(f"bridge + host-local, {args.cycles} cycles each, cniVersion 1.0.0, whole-process times (ms)")
        print(f"{'verb':6} {'ours med':>9} {'ours p95':>9} {'ref med':>9} {'ref p95':>9} {'ratio med':>10}")
        o, r = impls["ours"], impls["reference"]
        for verb in ("add", "check", "del"):
            om, rm = statistics.median(o[verb]), statistics.median(r[verb])
            print(f"{verb.upper():6} {ms(om):>9} {ms(pct(o[verb], 95)):>9} {ms(rm):>9} "
                  f"{ms(pct(r[verb], 95)):>9} {om / rm:>10.2f}")
        fm = statistics.median(floor)
        print(f"DEL floor (`ip link del` of a bridged veth, same run): median {ms(fm).strip()} ms, "
              f"p95 {ms(pct(floor, 95)).strip()} ms; our DEL / floor = {statistics.median(o['del']) / fm:.2f}")
        if o["rss"] and r["rss"]:
            print(f"peak RSS of one ADD (bridge and the IPAM it runs): ours {o['rss']} KiB, "
                  f"reference {r['rss']} KiB, ratio {o['rss'] / r['rss']:.2f}")
        else:
            print("peak RSS: /usr/bin/time missing (apt-get install time)")
        for b in ("bridge", "host-local"):
            so = os.path.getsize(os.path.join(args.ours, b))
            sr = os.path.getsize(os.path.join(args.reference, b))
            print(f"binary size {b}: ours {so / 1024:.0f} KiB, reference {sr / 1024:.0f} KiB, ratio {so / sr:.2f}")
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
