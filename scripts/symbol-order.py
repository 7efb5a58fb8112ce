#!/usr/bin/env python3
"""Write plugins/suite/symbol-order.txt: the functions that the usual plugin
calls execute, which `make build` hands to the linker (lld's
--symbol-ordering-file) so that they sit together at the start of .text.

Why: a plugin process lives for a few milliseconds and executes about
200 KB of a 3 MB .text. The kernel maps the file's pages around each
fault (fault-around, 64 KB at a time), so hot code scattered over the
whole binary makes the resident set of every call follow the size of the
suite, not of the work. Placed together, a bridge ADD faults in a few
hundred KB.

How: build the suite as `make build` does (same flags, same profile), run
each call below under valgrind's callgrind in scratch namespaces, map the
executed instruction addresses to symbols with `nm`, and list them: the
bridge ADD's first, then the others'. Needs valgrind, so it is a
developer's step (run it after changes that move much code; `make
symbol-order`); builds use the committed list. A stale list
costs only locality: lld skips names it does not find.

usage: sudo python3 scripts/symbol-order.py
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "plugins", "suite", "symbol-order.txt")


def make_says(what):
    """What `make release-triple` or `make release-flags` prints."""
    return subprocess.run(["make", "-s", "-C", ROOT, what], capture_output=True, text=True,
                          check=True).stdout.strip()


def triple():
    return make_says("release-triple")


def build():
    """The release suite as `make build` builds it (its flags, asked of the
    Makefile), before the Makefile strips it, in a target directory of its
    own: the same symbol names as the build that ships."""
    target = os.path.join(ROOT, "target", "symbol-order")
    flags = make_says("release-flags")
    env = dict(os.environ, CARGO_TARGET_DIR=target, RUSTFLAGS=flags)
    subprocess.run(["cargo", "build", "--release", "--target", triple(), "--workspace", "--bins"],
                   cwd=ROOT, env=env, check=True)
    return os.path.join(target, triple(), "release", "cni-plugins")


def symbols(binary):
    """(start, end, name) of every function with a size, sorted by start."""
    out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4 and f[2] in "tTwW":
            start, size = int(f[0], 16), int(f[1], 16)
            if size:
                syms.append((start, start + size, f[3]))
    syms.sort()
    return syms


def executed(prefix):
    """Instruction addresses callgrind saw executed, in the call's process
    and any it started (files PREFIX.PID)."""
    addrs = set()
    d, base = os.path.split(prefix)
    for name in os.listdir(d):
        if not name.startswith(base + "."):
            continue
        with open(os.path.join(d, name)) as f:
            for line in f:
                m = re.match(r"^0x([0-9a-f]+) ", line)
                if m:
                    addrs.add(int(m.group(1), 16))
    return addrs


# glibc's string functions come in variants chosen for the CPU at start-up
# (sse2, avx2, evex, ...); valgrind's CPU picks others than a real one, and
# replaces some functions with its own. Every variant of these families is
# listed after the executed functions, so whichever one a CPU picks is
# near the rest (about 100 KiB in all).
STRING_FAMILIES = set(
    "strcmp strlen memcpy memmove mempcpy memset strchr strchrnul strnlen stpcpy strcpy "
    "memchr rawmemchr memcmp bcmp strncmp strncpy strrchr strcspn strspn strstr "
    "strcasecmp strncasecmp".split())


# Run at start-up and exit by the C runtime, out of valgrind's sight (it
# loads the program itself); found with `perf record -e page-faults -d`:
# glibc's, then musl's (static-pie: rcrt1's self-relocation, then libc's
# start). Names the build does not have are skipped by the linker.
RUNTIME = ["frame_dummy", "register_tm_clones", "deregister_tm_clones",
           "__do_global_dtors_aux", "free_mem", "freeres", "_dl_new_object",
           "_dl_setup_hash", "_dl_relocate_static_pie", "_dl_non_dynamic_init",
           "__libc_init_secure", "__libc_setup_tls", "_dl_aux_init",
           "_start", "_start_c", "_dlstart_c", "__dls2", "__libc_start_main",
           "libc_start_main_stage2", "__init_libc", "__init_tls", "static_init_tls",
           "__copy_tls", "__init_tp", "__set_thread_area", "__init_ssp",
           "__libc_start_init", "_init", "exit", "__libc_exit_fini", "_fini",
           "__funcs_on_exit", "__stdio_exit", "_Exit"]


def string_variants(syms):
    names = []
    for _, _, name in syms:
        m = re.match(r"^__([a-z]+?)_(sse2|ssse3|sse4|avx|evex|erms|unaligned|rtm|movbe)", name)
        if m and m.group(1) in STRING_FAMILIES and name not in names:
            names.append(name)
    return names


def functions(addrs, syms):
    """Names of the functions holding `addrs`, in address order."""
    import bisect
    starts = [s[0] for s in syms]
    names = []
    seen = set()
    for a in sorted(addrs):
        i = bisect.bisect_right(starts, a) - 1
        if i >= 0 and syms[i][0] <= a < syms[i][1] and syms[i][2] not in seen:
            seen.add(syms[i][2])
            names.append(syms[i][2])
    return names


def main():
    if os.geteuid() != 0:
        sys.exit("symbol-order: run as root (namespaces)")
    if not shutil.which("valgrind"):
        sys.exit("symbol-order: valgrind missing (apt-get install valgrind)")
    binary = build()
    syms = symbols(binary)
    tmp = tempfile.mkdtemp(prefix="cni-symbol-order-")
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir)
    for role in ("bridge", "host-local", "ptp", "loopback", "portmap"):
        os.link(binary, os.path.join(bindir, role))
    tag = f"symord{os.getpid()}"
    host = f"{tag}-h"
    made = []

    def netns(name):
        subprocess.run(["ip", "netns", "add", name], check=True)
        made.append(name)

    def call(role, command, ctr, conf, out):
        """One call under callgrind, in the host namespace; its stdout."""
        env = dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID=ctr,
                   CNI_NETNS=f"/run/netns/{ctr}", CNI_IFNAME="eth0", CNI_PATH=bindir)
        p = subprocess.run(
            # Children too: under valgrind /proc/self/exe is valgrind, so
            # host-local runs as a process of its own, not in-process.
            ["ip", "netns", "exec", host, "valgrind", "--tool=callgrind", "--dump-instr=yes",
             "--trace-children=yes", "--compress-pos=no", "--compress-strings=no",
             f"--callgrind-out-file={out}.%p",
             os.path.join(bindir, role)],
            env=env, input=json.dumps(conf).encode(), capture_output=True)
        if p.returncode != 0:
            raise RuntimeError(f"{role} {command}: {p.stdout.decode()} {p.stderr.decode()[-2000:]}")
        return p.stdout

    order = []
    try:
        netns(host)
        subprocess.run(["ip", "-n", host, "link", "set", "lo", "up"], check=True)
        data = os.path.join(tmp, "data")
        bridge = {"cniVersion": "1.0.0", "name": "order", "type": "bridge", "bridge": "brord",
                  "isGateway": True, "ipMasq": True,
                  "ipam": {"type": "host-local", "dataDir": data,
                           "ranges": [[{"subnet": "10.199.0.0/24"}], [{"subnet": "fd00:199::/64"}]]}}
        ptp = dict(bridge, type="ptp")
        ptp["ipam"] = dict(bridge["ipam"], ranges=[[{"subnet": "10.199.1.0/24"}]])
        del ptp["bridge"]
        netns(f"{tag}-c1")
        netns(f"{tag}-c2")
        c1, c2 = f"{tag}-c1", f"{tag}-c2"
        runs = {}

        def run(label, role, command, ctr, conf):
            out = os.path.join(tmp, f"cg.{len(runs)}")
            stdout = call(role, command, ctr, conf, out)
            runs[label] = out
            return stdout

        # The bridge ADD first: it is what the list is ordered for.
        res = json.loads(run("bridge ADD", "bridge", "ADD", c1, bridge))
        run("bridge CHECK", "bridge", "CHECK", c1, dict(bridge, prevResult=res))
        for backend in ("nftables", "iptables"):
            pm = {"cniVersion": "1.0.0", "name": "order", "type": "portmap", "backend": backend,
                  "runtimeConfig": {"portMappings": [
                      {"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]},
                  "prevResult": res}
            run(f"portmap {backend} ADD", "portmap", "ADD", c1, pm)
            run(f"portmap {backend} DEL", "portmap", "DEL", c1, pm)
        run("bridge DEL", "bridge", "DEL", c1, bridge)
        run("ptp ADD", "ptp", "ADD", c2, ptp)
        run("ptp DEL", "ptp", "DEL", c2, ptp)
        run("loopback ADD", "loopback", "ADD", c2, {"cniVersion": "1.0.0", "name": "lo",
                                                    "type": "loopback"})
        run("VERSION", "bridge", "VERSION", c2, {"cniVersion": "1.0.0"})
        seen = set()
        for label, out in runs.items():
            names = functions(executed(out), syms)
            new = [n for n in names if n not in seen]
            seen.update(new)
            order.extend(new)
            size = sum(e - s for s, e, n in syms if n in set(names))
            print(f"{label:24} {len(names):5} functions, {size / 1024:6.0f} KiB of code")
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
    order.extend(n for n in RUNTIME + string_variants(syms) if n not in seen)
    total = sum(e - s for s, e, n in syms if n in set(order))
    text = sum(e - s for s, e, n in syms)
    with open(OUT, "w") as f:
        f.write("".join(n + "\n" for n in order))
    print(f"{OUT}: {len(order)} functions, {total / 1024:.0f} KiB of {text / 1024:.0f} KiB of code")


if __name__ == "__main__":
    main()
