"""Runs a command with the wall clock moved, to prove nothing depends on today's date:

    .venv/bin/python -m tests.moved_clock +365d -- .venv/bin/python -m pytest

libfaketime (requirements-dev.txt ships its prebuilt library) is preloaded into the command and every process
it starts, Python and Node alike: their wall clock (time.time(), datetime.now(), Date.now()) reads the
offset later, while the monotonic clock, which timeouts and sleeps use, is left alone. The local runtime
passes these variables on to its function workers (local_runtime.functions.CLOCK_VARIABLES), so the
functions see the moved clock too. The offset is libfaketime's: +365d, -2h, +30m...
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

A_YEAR_AHEAD = "+365d"


def faketime_library() -> Path:
    """libfaketime.so.1 as the libfaketime package ships it (found without importing the package)."""
    spec = importlib.util.find_spec("libfaketime")
    if spec is None or spec.origin is None:
        raise RuntimeError("libfaketime is not installed: make install (requirements-dev.txt)")
    library = Path(spec.origin).parent / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"
    if not library.is_file():
        raise RuntimeError(f"libfaketime ships no library at {library}")
    return library


def moved_clock_environment(offset: str = A_YEAR_AHEAD, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with the clock moved by `offset`."""
    environment = dict(os.environ if base is None else base)
    preload = [str(faketime_library()), *filter(None, environment.get("LD_PRELOAD", "").split(":"))]
    # FAKETIME_FORCE_MONOTONIC_FIX=0: libfaketime's wrapper of pthread_cond_timedwait otherwise rewrites the
    # deadlines of condition variables on the monotonic clock, which is what CPython's GIL waits on; every
    # hand-over of the GIL between busy threads then waited out a switch interval. A device endpoint's
    # benchmark (300 devices) took 2 min 21 s so, 30 s without, as without the moved clock; timed waits
    # (Event, Condition, Queue, sleep, asyncio) still last what they should (tests/e2e/test_clock_ahead.py).
    environment.update(
        LD_PRELOAD=":".join(preload), FAKETIME=offset, DONT_FAKE_MONOTONIC="1", FAKETIME_FORCE_MONOTONIC_FIX="0"
    )
    return environment


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m tests.moved_clock <offset, e.g. +365d> -- <command> [args...]", file=sys.stderr)
        return 2
    offset, command = argv[0], argv[2:]
    print(f"clock moved {offset}: {' '.join(command)}", file=sys.stderr, flush=True)
    os.execvpe(command[0], command, moved_clock_environment(offset))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
