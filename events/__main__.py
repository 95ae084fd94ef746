"""`python -m events <file>`: a sample with its relative times resolved, as plain JSON on stdout.

    .venv/bin/python -m events events/ingest_telemetry/soil_valid.json > build/soil_valid.json
    sam local invoke -t cdk.out/DeviceBackend.template.json <logical id> -e build/soil_valid.json

The file is a path, or a name relative to events/ (`ingest_telemetry/soil_valid`). --at gives the moment to
resolve against (epoch ms; default now).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from events import event_path, now_ms, resolve_times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m events", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", help="a sample or scenario: a path, or a name relative to events/")
    parser.add_argument("--at", type=int, help="the moment the relative times count from, epoch ms (default: now)")
    args = parser.parse_args(argv)
    try:
        path = Path(args.file) if Path(args.file).is_file() else event_path(args.file)
        resolved = resolve_times(json.loads(path.read_text()), now_ms() if args.at is None else args.at)
    except (OSError, ValueError) as error:  # RelativeTimeError and JSON errors are ValueErrors
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(resolved, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
