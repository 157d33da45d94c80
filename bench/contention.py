"""Other work beside a benchmark: torch processes doing 2-thread 1024² matrix products.

`contending_processes(n, seconds)` starts n of them, waits until each runs, and stops them on exit (each
also stops itself after `seconds`, should the bench be killed). Used by `--contended` in
bench/guidance.py and bench/expansion.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

CONTENDER = """
import sys, time, torch
torch.set_num_threads(2)
deadline = time.monotonic() + float(sys.argv[1])
a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
print("ready", flush=True)
while time.monotonic() < deadline:
    a @ b
"""


def start_contender(seconds: float) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", CONTENDER, str(seconds)], stdout=subprocess.PIPE, text=True)
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise SystemExit("the contending process did not start")
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def contending_processes(count: int, seconds: float) -> Iterator[list[subprocess.Popen]]:
    processes: list[subprocess.Popen] = []
    try:
        for _ in range(count):
            processes.append(start_contender(seconds))
        time.sleep(0.5 if processes else 0.0)
        yield processes
        if any(process.poll() is not None for process in processes):
            print("warning: a contending process ended before the timings did (raise --contended-seconds)")
    finally:
        for process in processes:
            stop(process)


def describe(count: int) -> str:
    if count == 0:
        return "idle (no contender started)"
    return f"CONTENDED (beside {count} 2-thread matmul process{'es' if count > 1 else ''})"
