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


def ip(*args, stdin=None):
    """`ip ARGS`, which must succeed."""
    subprocess.run(["ip", *args], check=True, input=stdin, text=True)
