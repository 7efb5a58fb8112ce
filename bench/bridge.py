#!/usr/bin/env python3
"""Whole-process timing of bridge + host-local: ours against the reference.

Everything runs inside a throwaway "host" namespace; nothing touches this
machine's own interfaces. Ours and the reference run interleaved so both see
the same machine state, each cycle in a fresh container namespace made just
before its ADD and removed after its DEL, as a runtime does. The kernel
tears a removed namespace down in the background, holding RTNL at times,
which any plugin's next call then waits for: so each removal is given
`--settle` seconds (default 0.05) before the next call is timed, and the
parallel rounds wait for the removal of the previous round's 64
namespaces. Both implementations run under the same conditions.

Measured, in one run:
- ADD, CHECK and DEL, IPv4-only and dual-stack (IPv4 + IPv6): median, p95,
  p99, and the ratio ours/reference of the medians.
- Floors for the same kernel work done by `ip` in the same run: the links
  and addresses of an IPv4 (or dual-stack) ADD done by `ip -batch` (one
  process in the host namespace for the veth and the bridge port, one in
  the container namespace for the addresses and the default route), and
  `ip link del` of the veth so built, the floor for DEL.
- The share of CPU time the hypervisor stole during each half (IPv4,
  dual-stack), from /proc/stat: on a loaded virtual machine the tails
  (p95, p99) follow it more than they follow either implementation. For
  context, the dual-stack p99 is also given over only the ADDs during
  which the steal counter did not move.
- Peak RSS of one ADD (the plugin and the IPAM it runs), with GNU time.
- The installed suite on disk, each file counted once (as `du` does; our
  plugin names are hard links to one executable).
- 64 ADDs started at once on one bridge network, then 64 DELs: the wall
  time to the last result, ours against the reference.
Then one table with every figure, its target and whether it holds.

usage: sudo python3 bench/bridge.py [--cycles N] [--parallel N] [--rounds N]
                                    [--settle SECONDS] [--ours DIR] [--reference DIR]
--ours is a directory laid out as an install (plugin names linked to our
executable): `make links` makes target/<triple>/release/cni-bin.
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

from benchlib import cpu_times, ip, run_timed, setns, stolen_share


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


def du_bytes(path):
    """Disk use of a directory, each file (inode) counted once, as du does."""
    out = subprocess.run(["du", "-s", "-B1", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--parallel", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--settle", type=float, default=0.05,
                    help="seconds after removing a namespace before the next timed call")
    # The release build's target, as the Makefile picks it (musl where it can).
    triple = subprocess.run(["make", "-s", "-C", root, "release-triple"], capture_output=True,
                            text=True).stdout.strip()
    ap.add_argument("--ours", default=os.path.join(root, "target", triple, "release", "cni-bin"))
    ap.add_argument("--reference", default="/usr/lib/cni")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: run as root (namespaces)")
    for d in (args.ours, args.reference):
        for n in ("bridge", "host-local"):
            if not os.access(os.path.join(d, n), os.X_OK):
                sys.exit(f"bench: {d}/{n} missing (make links / apt-get install containernetworking-plugins)")

    tag = f"cnibench{os.getpid()}"
    host = f"{tag}-host"
    tmp = tempfile.mkdtemp(prefix="cni-bench-")
    made = []

    def netns_add(name):
        ip("netns", "add", name)
        made.append(name)

    def netns_del(name):
        ip("netns", "del", name)
        made.remove(name)

    try:
        netns_add(host)
        # Everything from here runs in the host namespace: the plugins we
        # spawn inherit it, so the bridges live there.
        setns(f"/run/netns/{host}")
        impls = {}
        for name, src in (("ours", args.ours), ("reference", args.reference)):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            for b in ("bridge", "host-local"):
                # Hard links keep ours one executable (host-local then runs
                # in-process, as installed); copies where links cannot go.
                try:
                    os.link(os.path.join(src, b), os.path.join(d, b))
                except OSError:
                    shutil.copy(os.path.join(src, b), os.path.join(d, b))
            impls[name] = {"dir": d, "rss": None}

        def conf(name, family, n):
            ranges = [[{"subnet": f"10.{90 + n}.0.0/16"}]]
            if family == "dual":
                ranges.append([{"subnet": f"fd00:{90 + n}::/64"}])
            return {
                "cniVersion": "1.0.0", "name": f"bench-{name}-{family}", "type": "bridge",
                "bridge": f"br{n}", "isGateway": True,
                "ipam": {"type": "host-local", "ranges": ranges,
                         "dataDir": os.path.join(tmp, f"{name}-{family}-data")},
            }

        def env(impl, cmd, ctr):
            e = dict(os.environ)
            e.update({"CNI_COMMAND": cmd, "CNI_CONTAINERID": ctr, "CNI_NETNS": f"/run/netns/{ctr}",
                      "CNI_IFNAME": "eth0", "CNI_PATH": impl["dir"]})
            return e

        # Floors: the bridge the `ip` runs use, with its gateway addresses.
        ip("link", "add", "br-flo", "type", "bridge")
        ip("addr", "add", "10.89.0.1/16", "dev", "br-flo")
        ip("addr", "add", "fd00:89::1/64", "dev", "br-flo", "nodad")
        ip("link", "set", "br-flo", "up")

        def floor_cycle(family, i):
            """`ip -batch` doing an ADD's link and address work; then `ip link del`."""
            ctr = f"{tag}-{family[0]}flo{i}"
            netns_add(ctr)
            host_batch = (f"link add vfloor type veth peer name eth0 netns {ctr}\n"
                          "link set vfloor master br-flo\nlink set vfloor up\n")
            ctr_batch = "addr add 10.89.0.2/16 dev eth0\n"
            if family == "dual":
                ctr_batch += "addr add fd00:89::2/64 dev eth0 nodad\n"
            ctr_batch += "link set eth0 up\nroute add default via 10.89.0.1\n"
            if family == "dual":
                ctr_batch += "route add default via fd00:89::1\n"
            start = time.perf_counter()
            subprocess.run(["ip", "-batch", "-"], input=host_batch, text=True, check=True)
            subprocess.run(["ip", "-n", ctr, "-batch", "-"], input=ctr_batch, text=True, check=True)
            t_add = time.perf_counter() - start
            start = time.perf_counter()
            ip("link", "del", "vfloor")
            t_del = time.perf_counter() - start
            netns_del(ctr)
            time.sleep(args.settle)
            return t_add, t_del

        seq = {}
        stolen = {}
        for n, family in enumerate(("ipv4", "dual")):
            cpu_before = cpu_times()
            times = {name: {"add": [], "check": [], "del": [], "add_unstolen": []}
                     for name in impls}
            floor = {"add": [], "del": []}
            for i in range(args.cycles + 1):
                for name, impl in impls.items():
                    c = conf(name, family, n)
                    data = json.dumps(c).encode()
                    ctr = f"{tag}-{family[0]}{name[:3]}{i}"
                    netns_add(ctr)
                    binary = os.path.join(impl["dir"], "bridge")
                    if i == 1 and family == "ipv4":
                        # One ADD/DEL under GNU time for peak memory, outside the timings.
                        impl["rss"] = peak_rss_kib([binary], env(impl, "ADD", ctr), data)
                        run_timed([binary], env(impl, "DEL", ctr), data)
                    cpu_at_add = cpu_times()
                    t_add, out = run_timed([binary], env(impl, "ADD", ctr), data)
                    unstolen = cpu_times()[0] == cpu_at_add[0]
                    check = json.dumps(dict(c, prevResult=json.loads(out))).encode()
                    t_check, _ = run_timed([binary], env(impl, "CHECK", ctr), check)
                    t_del, _ = run_timed([binary], env(impl, "DEL", ctr), data)
                    netns_del(ctr)
                    time.sleep(args.settle)
                    if i > 0:  # cycle 0 warms up: bridge creation, page cache
                        times[name]["add"].append(t_add)
                        if unstolen:
                            times[name]["add_unstolen"].append(t_add)
                        times[name]["check"].append(t_check)
                        times[name]["del"].append(t_del)
                f_add, f_del = floor_cycle(family, i)
                if i > 0:
                    floor["add"].append(f_add)
                    floor["del"].append(f_del)
            seq[family] = (times, floor)
            stolen[family] = stolen_share(cpu_before, cpu_times())
        time.sleep(3)

        def parallel(name, impl, n):
            """n ADDs started at once, then n DELs: wall time of each wave."""
            c = conf(name, "ipv4", 2 + (name == "reference"))
            data = json.dumps(c).encode()
            adds, dels = [], []
            for r in range(args.rounds + 1):
                ctrs = [f"{tag}-p{name[:3]}{r}x{k}" for k in range(n)]
                for ctr in ctrs:
                    netns_add(ctr)
                time.sleep(0.5)
                binary = os.path.join(impl["dir"], "bridge")
                for verb, out in (("ADD", adds), ("DEL", dels)):
                    start = time.perf_counter()
                    procs = [subprocess.Popen([binary], env=env(impl, verb, ctr), stdin=subprocess.PIPE,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                             for ctr in ctrs]
                    for p in procs:
                        p.stdin.write(data)
                        p.stdin.close()
                    failed = 0
                    for p in procs:
                        p.stdout.read()
                        p.stderr.read()
                        if p.wait() != 0:
                            failed += 1
                    elapsed = time.perf_counter() - start
                    if failed:
                        raise RuntimeError(f"{name}: {failed} of {n} parallel {verb}s failed")
                    if r > 0:
                        out.append(elapsed)
                for ctr in ctrs:
                    netns_del(ctr)
                # The namespaces go in the background: let that finish
                # before the next round is timed.
                time.sleep(2)
            return adds, dels

        par = {name: parallel(name, impl, args.parallel) for name, impl in impls.items()}

        ms = lambda s: f"{s * 1000:7.2f}"
        med = statistics.median
        rows = []  # (figure, value, target, holds)
        print(f"bridge + host-local, {args.cycles} cycles each, cniVersion 1.0.0, "
              "whole-process times (ms)")
        print(f"{'stack':5} {'verb':6} {'ours med':>9} {'ours p95':>9} {'ours p99':>9} "
              f"{'ref med':>9} {'ref p95':>9} {'ref p99':>9} {'ratio':>6}")
        for family in ("ipv4", "dual"):
            times, floor = seq[family]
            o, r = times["ours"], times["reference"]
            for verb in ("add", "check", "del"):
                print(f"{family:5} {verb.upper():6} {ms(med(o[verb])):>9} {ms(pct(o[verb], 95)):>9} "
                      f"{ms(pct(o[verb], 99)):>9} {ms(med(r[verb])):>9} {ms(pct(r[verb], 95)):>9} "
                      f"{ms(pct(r[verb], 99)):>9} {med(o[verb]) / med(r[verb]):>6.2f}")
            print(f"{family:5} floors: `ip -batch` ADD work {ms(med(floor['add'])).strip()} ms, "
                  f"`ip link del` {ms(med(floor['del'])).strip()} ms (medians); "
                  f"CPU time stolen by the hypervisor meanwhile: {stolen[family]:.1%}")
        o4, r4 = seq["ipv4"][0]["ours"], seq["ipv4"][0]["reference"]
        od, rd = seq["dual"][0]["ours"], seq["dual"][0]["reference"]
        fl4 = seq["ipv4"][1]
        ratio = med(o4["add"]) / med(r4["add"])
        rows.append(("IPv4 ADD median / reference", f"{ratio:.2f}", "<= 0.25", ratio <= 0.25))
        ratio = med(o4["add"]) / med(fl4["add"])
        rows.append(("IPv4 ADD median / `ip -batch` floor", f"{ratio:.2f}", "< 1", ratio < 1))
        ratio = med(o4["check"]) / med(r4["check"])
        rows.append(("IPv4 CHECK median / reference", f"{ratio:.2f}", "<= 0.2", ratio <= 0.2))
        ratio = med(o4["del"]) / med(fl4["del"])
        rows.append(("IPv4 DEL median / `ip link del` floor", f"{ratio:.2f}", "<= 1.05", ratio <= 1.05))
        ratio = med(od["add"]) / med(rd["add"])
        rows.append(("dual-stack ADD median / reference", f"{ratio:.2f}", "<= 0.3", ratio <= 0.3))
        ratio = pct(od["add"], 99) / med(o4["add"])
        rows.append(("dual-stack ADD p99 / our IPv4 ADD median", f"{ratio:.2f}", "< 3", ratio < 3))
        # The same over the ADDs during which the hypervisor's steal counter
        # did not move: what is left of the tail once the VM's preemption
        # is taken out (the counter moves by whole ticks, so a short steal
        # can still hide in these).
        calm = od["add_unstolen"]
        if calm:
            ratio = pct(calm, 99) / med(o4["add"])
            rows.append((f"  the same, {len(calm)} ADDs with no stolen tick", f"{ratio:.2f}",
                         "(none)", None))
        ro, rr = impls["ours"]["rss"], impls["reference"]["rss"]
        if ro and rr:
            print(f"peak RSS of one ADD (bridge and the IPAM it runs): ours {ro} KiB, reference {rr} KiB")
            rows.append(("peak RSS of an ADD / reference", f"{ro / rr:.2f}", "<= 0.4", ro / rr <= 0.4))
        else:
            print("peak RSS: /usr/bin/time missing (apt-get install time)")
        so, sr = du_bytes(args.ours), du_bytes(args.reference)
        print(f"installed suite on disk (du, each file once): ours {so / 2**20:.1f} MiB "
              f"({args.ours}), reference {sr / 2**20:.1f} MiB ({args.reference})")
        rows.append(("installed suite size / reference", f"{so / sr:.3f}", "<= 0.1", so / sr <= 0.1))
        (oa, odl), (ra, rdl) = par["ours"], par["reference"]
        print(f"{args.parallel} ADDs at once, then {args.parallel} DELs, {args.rounds} rounds, "
              f"wall time to the last result (ms, median): ours ADD {ms(med(oa)).strip()}, "
              f"DEL {ms(med(odl)).strip()}; reference ADD {ms(med(ra)).strip()}, DEL {ms(med(rdl)).strip()}")
        ratio = med(ra) / med(oa)
        rows.append((f"{args.parallel}-way ADD throughput / reference", f"{ratio:.2f}", ">= 3", ratio >= 3))
        ratio = med(rdl) / med(odl)
        rows.append((f"{args.parallel}-way DEL throughput / reference", f"{ratio:.2f}", "(none)", None))
        print()
        print(f"{'figure':45} {'value':>7} {'target':>8}  holds")
        for figure, value, target, holds in rows:
            mark = "-" if holds is None else ("yes" if holds else "NO")
            print(f"{figure:45} {value:>7} {target:>8}  {mark}")
    finally:
        os.chdir("/")
        for ns in list(made):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
