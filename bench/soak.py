#!/usr/bin/env python3
"""Soak (issue #13): sequential ADD / CHECK / DEL cycles of bridge with
host-local (dual-stack, ipMasq through nftables, isGateway), each cycle a
new container ID in one reused container namespace.

Checked and printed:
- every call succeeds;
- per call, with a test build (`cargo build`, debug assertions on), the
  descriptors the plugin process still had open when it ended and its
  peak resident set (VmHWM; for ADD the in-process host-local included),
  as the `CNI_TEST_STATS` hook of `cni::fault` reports them: the first and
  the last 10% of the run side by side, so a leak shows as growth
  (wait4's ru_maxrss is no use here: it counts the forking Python's
  pages before the exec);
- the machine's allocated file handles (/proc/sys/fs/file-nr) before and
  after, and any process left behind;
- at the end the host namespace and the data directory exactly as after
  the warm-up cycle: links, addresses, routes, policy rules, nftables,
  iptables, files.

Everything runs in throwaway namespaces ("host" and container) and a
temporary directory; nothing touches this machine's own interfaces.

usage: sudo python3 bench/soak.py [--cycles 2000] [--bin target/debug/cni-bin]
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

from benchlib import setns


def sh(*argv, check=True):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed: {p.stderr.strip()}")
    return p.stdout


def call(plugin, command, conf, container, netns, bin_dir, stats):
    """Run one plugin call; return (stdout, seconds)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": bin_dir,
        "CNI_TEST_STATS": stats,
    }
    start = time.perf_counter()
    p = subprocess.run([os.path.join(bin_dir, plugin)], env=env, input=json.dumps(conf).encode(),
                       capture_output=True, timeout=60)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"{command} {container} failed ({p.returncode}): "
                 f"{p.stdout.decode()} {p.stderr.decode()}")
    return p.stdout.decode(), elapsed


def snapshot(data_dir):
    s = {}
    links = json.loads(sh("ip", "-j", "-d", "link", "show"))
    s["links"] = sorted(f"{l['ifname']} master={l.get('master', '-')} up={'UP' in l['flags']}"
                        for l in links)
    addrs = json.loads(sh("ip", "-j", "addr", "show"))
    s["addresses"] = sorted(f"{l['ifname']} {a['local']}/{a['prefixlen']}"
                            for l in addrs for a in l.get("addr_info", []))
    for key, argv in [
        ("routes4", ["ip", "-4", "route", "show", "table", "all"]),
        ("routes6", ["ip", "-6", "route", "show", "table", "all"]),
        ("rules4", ["ip", "-4", "rule", "show"]),
        ("rules6", ["ip", "-6", "rule", "show"]),
        ("nft", ["nft", "list", "ruleset"]),
        ("iptables", ["iptables-save"]),
        ("ip6tables", ["ip6tables-save"]),
    ]:
        lines = []
        for l in sh(*argv).splitlines():
            if l.startswith("#") or not l.strip():
                continue
            if l.startswith(":") and " [" in l:
                l = l[: l.index(" [")]
            lines.append(l.rstrip().removesuffix(" linkdown"))
        s[key] = lines if key == "nft" else sorted(lines)
    files = []
    for root, dirs, names in os.walk(data_dir):
        rel = os.path.relpath(root, data_dir)
        if os.path.basename(root) == ".host-local-index":
            dirs[:] = []
            continue
        files += [os.path.join(rel, n) for n in names]
    s["files"] = sorted(files)
    return s


def settle(bridge):
    """Wait until the bridge is up and its IPv6 addresses are past DAD."""
    for _ in range(200):
        link = json.loads(sh("ip", "-j", "link", "show", "dev", bridge))[0]
        addrs = json.loads(sh("ip", "-j", "-6", "addr", "show", "dev", bridge))[0]["addr_info"]
        if (link["operstate"] == "UP" and any(a["scope"] == "link" for a in addrs)
                and not any(a.get("tentative") for a in addrs)):
            return
        time.sleep(0.05)
    sys.exit(f"bridge {bridge} never settled")


def file_handles():
    with open("/proc/sys/fs/file-nr") as f:
        return int(f.read().split()[0])


def summary(xs):
    if not xs:
        return "-"
    return f"min {min(xs)} median {statistics.median(xs):g} max {max(xs)}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--bin", default="target/debug/cni-bin",
                    help="a directory with bridge and host-local (links to cni-plugins)")
    args = ap.parse_args()
    bin_src = os.path.abspath(args.bin)
    tag = f"soak-{os.getpid()}"
    tmp = tempfile.mkdtemp(prefix=f"cni-{tag}-")
    host, ctr = f"{tag}-host", f"{tag}-ctr"
    sh("ip", "netns", "add", host)
    sh("ip", "netns", "add", ctr)
    try:
        run(args, bin_src, tmp, host, ctr)
    finally:
        sh("ip", "netns", "del", ctr, check=False)
        sh("ip", "netns", "del", host, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, bin_src, tmp, host, ctr):
    bin_dir = os.path.join(tmp, "bin")
    data = os.path.join(tmp, "data")
    stats = os.path.join(tmp, "stats")
    os.makedirs(bin_dir)
    for p in ["bridge", "host-local"]:
        os.link(os.path.join(bin_src, p), os.path.join(bin_dir, p))
    setns(f"/run/netns/{host}")
    sh("ip", "link", "set", "lo", "up")
    netns = f"/run/netns/{ctr}"
    conf = {
        "cniVersion": "1.1.0", "name": "soak", "type": "bridge", "bridge": "soakbr0",
        "isGateway": True, "ipMasq": True,
        "ipam": {"type": "host-local", "dataDir": data,
                 "ranges": [[{"subnet": "10.238.200.0/24"}], [{"subnet": "fd00:cafe:a0c8::/64"}]]},
    }

    def cycle(cid):
        out, t_add = call("bridge", "ADD", conf, cid, netns, bin_dir, stats)
        prev = dict(conf, prevResult=json.loads(out))
        _, t_check = call("bridge", "CHECK", prev, cid, netns, bin_dir, stats)
        _, t_del = call("bridge", "DEL", prev, cid, netns, bin_dir, stats)
        return t_add + t_check + t_del

    cycle("warm")
    # A port of the host's own keeps the bridge's carrier (and so its
    # routes) steady when the last container leaves; no IPv6 on it.
    sh("ip", "link", "add", "soakkeep", "type", "veth", "peer", "name", "soakkeepp")
    for dev in ["soakkeep", "soakkeepp"]:
        sh("sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
    sh("ip", "link", "set", "soakkeepp", "up")
    sh("ip", "link", "set", "soakkeep", "master", "soakbr0", "up")
    settle("soakbr0")
    before = snapshot(data)
    if os.path.exists(stats):
        os.remove(stats)
    handles_before = file_handles()
    started = time.perf_counter()
    times = []
    for i in range(args.cycles):
        times.append(cycle(f"soak-{i}"))
        if (i + 1) % 250 == 0:
            print(f"{i + 1} cycles, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    wall = time.perf_counter() - started
    handles_after = file_handles()
    after = snapshot(data)
    leftovers = sh("pgrep", "-f", bin_dir, check=False).split()

    lines = open(stats).read().splitlines() if os.path.exists(stats) else []
    per = {}
    for n, l in enumerate(lines):
        role, command, fds, hwm = l.split()
        per.setdefault((role, command), []).append(
            (n, int(fds.split("=")[1]), int(hwm.split("=")[1] or 0)))
    tenth = max(1, args.cycles // 10)
    print(f"\n{args.cycles} ADD/CHECK/DEL cycles in {wall:.0f} s "
          f"(cycle median {statistics.median(times) * 1000:.1f} ms, "
          f"first 10% {statistics.median(times[:tenth]) * 1000:.1f} ms, "
          f"last 10% {statistics.median(times[-tenth:]) * 1000:.1f} ms)")
    if not lines:
        print("no CNI_TEST_STATS lines: a release build? (fds and VmHWM need a test build)")
    for (role, command), xs in sorted(per.items()):
        k = max(1, len(xs) // 10)
        first, last = xs[:k], xs[-k:]
        print(f"{role:10} {command:5} calls {len(xs):5}  "
              f"fds at exit first 10% [{summary([x[1] for x in first])}] "
              f"last 10% [{summary([x[1] for x in last])}]  "
              f"VmHWM kB first 10% [{summary([x[2] for x in first])}] "
              f"last 10% [{summary([x[2] for x in last])}]")
    print(f"machine file handles allocated: {handles_before} before, {handles_after} after")
    print(f"plugin processes left: {len(leftovers)}")
    diff = {k: (sorted(set(before[k]) - set(after[k])), sorted(set(after[k]) - set(before[k])))
            for k in before if before[k] != after[k]}
    if diff:
        print("host or data directory differ from before the run:")
        for k, (gone, new) in diff.items():
            print(f"  [{k}] gone {gone} new {new}")
    else:
        print("host namespace and data directory: exactly as before the run")
    if diff or leftovers:
        sys.exit(1)


if __name__ == "__main__":
    main()
