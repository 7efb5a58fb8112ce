"""What the whole-process benchmarks share: entering a network namespace
from Python, timing one plugin process, and `ip`.

Imported by bench/bridge.py, bench/portmap.py and bench/soak.py, which run
as `python3 bench/<name>.py` (so this directory is on sys.path)."""

import ctypes
import os
import subprocess
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def setns(path):
    """Move this (single-threaded) process into the network namespace at `path`."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def run_timed(argv, env, stdin):
    """Run a command to the end, `stdin` fed; return (seconds, stdout).
    A non-zero exit raises, with what the command printed."""
    start = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    out, err = p.communicate(stdin)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        raise RuntimeError(f"{argv} {env.get('CNI_COMMAND', '')} failed: {out.decode()} {err.decode()}")
    return elapsed, out


def cpu_times():
    """The host's CPU time so far (all CPUs, in clock ticks): (stolen, total).
    Stolen is time a virtual machine's CPUs were ready but the hypervisor
    ran something else: noise no plugin can avoid, printed so a reader can
    tell a loaded host from a slow plugin. Zero on bare metal."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    steal = fields[7] if len(fields) > 7 else 0
    # guest and guest_nice (fields 8, 9) are already counted in user and nice.
    return steal, sum(fields[:8])


def stolen_share(before, after):
    """Share of CPU time stolen between two `cpu_times()` readings."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0


def ip(*args, stdin=None):
    """`ip ARGS`, which must succeed."""
    subprocess.run(["ip", *args], check=True, input=stdin, text=True)
