"""Run a command while every core is kept busy: the load CI and users' machines really have.

    python bench/contention.py -- make test          # one busy loop per core
    python bench/contention.py --procs 4 -- pytest tests/integration -x
    python bench/contention.py --repeat 3 -- bash .ci/run

Starts `--procs` processes (default: one per core) that spin in a tight loop at
normal priority, runs the command, and stops the loops however the command ends
(they also die with this script: each one watches its parent). With `--repeat N`
the command is run N times in a row under the same load, stopping at the first
failure. Prints the load average seen and the time of each run, and exits with
the command's status.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import time


def _spin(parent: int) -> None:
    n = 0
    while True:
        n += 1
        if n % 5_000_000 == 0 and os.getppid() != parent:  # our parent is gone: stop spinning
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 1, help="busy loops (default: cores)")
    parser.add_argument("--repeat", type=int, default=1, help="run the command this many times in a row")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --")
    loops = [mp.Process(target=_spin, args=(os.getpid(),), daemon=True) for _ in range(args.procs)]
    for p in loops:
        p.start()
    print(f"contention: {args.procs} busy loops on {os.cpu_count()} cores", file=sys.stderr, flush=True)
    code = 0
    try:
        for run in range(1, args.repeat + 1):
            started = time.monotonic()
            code = subprocess.call(command)
            load = os.getloadavg()
            print(f"contention: run {run}/{args.repeat} exited {code} after {time.monotonic() - started:.0f}s "
                  f"(load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})", file=sys.stderr, flush=True)
            if code != 0:
                break
    finally:
        for p in loops:
            p.terminate()
        for p in loops:
            p.join(timeout=5)
    return code


if __name__ == "__main__":
    sys.exit(main())
