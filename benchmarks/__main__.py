"""`python -m benchmarks`: cold start, warm time, peak memory and AWS calls per event of every function of
`functions/`, side by side with a baseline that only creates a boto3 client, as deployed (the bytecode the
build ships), without that bytecode, and with active tracing, in one run, on an interpreter of Lambda's Python
version. Prints a Markdown report."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from benchmarks.aws_stub import AwsStub
from benchmarks.candidates import BASELINE, all_candidates
from benchmarks.harness import Settings, measure, profile_imports
from benchmarks.import_profile import costs_beyond, median_self_times_us
from benchmarks.lambda_image import VARIANTS, Variant, build_image
from benchmarks.report import Outcome, check_targets, raw_numbers, render_markdown, summarize_all
from stacks.lambda_packaging import PackagingError, lambda_interpreter

DEFAULTS = {"rounds": 15, "warm_invocations": 200}
QUICK = {"rounds": 3, "warm_invocations": 10}
IMPORT_PROFILE_RUNS = 3


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--rounds", type=int, help="cold-start rounds, the first a warm-up (default 15; quick 3)")
    parser.add_argument("--warm-invocations", type=int, help="warm batches per function (default 200; quick 10)")
    parser.add_argument("--batch-size", type=int, default=10, help="records per warm SQS batch (default 10)")
    parser.add_argument(
        "--first-event-records", type=int, default=1, help="records of the first event after a cold start (default 1)"
    )
    parser.add_argument(
        "--variants",
        type=_variants,
        default=tuple(VARIANTS),
        help=f"comma-separated, the first checked against the targets (default {','.join(VARIANTS)}; see the report)",
    )
    parser.add_argument("--quick", action="store_true", help="few rounds and warm invocations, for tests")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the raw numbers there")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    for name, default in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.rounds < 2 or args.warm_invocations < 1 or not 1 <= args.first_event_records <= args.batch_size:
        parser.error(
            "--rounds must be at least 2 (one warm-up), --warm-invocations at least 1, "
            "--first-event-records from 1 to --batch-size"
        )
    return args


def _variants(value: str) -> tuple[Variant, ...]:
    names = tuple(dict.fromkeys(name.strip() for name in value.split(",")))
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown) or value!r}: the variants are {', '.join(VARIANTS)}")
    return names  # type: ignore[return-value]


def machine_facts() -> dict[str, Any]:
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "load_average": " ".join(f"{load:.2f}" for load in os.getloadavg()),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def progress(message: str) -> None:
    print(f"[benchmarks] {message}", file=sys.stderr, flush=True)


def run(settings: Settings, command: str) -> Outcome:
    python = lambda_interpreter()
    # Before the run: the load average then is the neighbours', not the benchmark's.
    machine = {**machine_facts(), "functions_python": f"CPython {python.version} ({python.path})"}
    candidates = all_candidates(settings.batch_size)
    with tempfile.TemporaryDirectory(prefix="lambda-image-") as scratch, AwsStub() as aws:
        endpoint_url = aws.endpoint_url
        progress(f"building the code, layer and runtime for Python {python.version}")
        image = build_image(Path(scratch), candidates, python, settings.variants)
        runs = measure(candidates, settings, image, aws, progress)
        progress("import profile (python -X importtime)")
        stderrs = profile_imports(candidates, settings, image, aws, IMPORT_PROFILE_RUNS)
    profiles = {name: median_self_times_us(runs_stderr) for name, runs_stderr in stderrs.items()}
    summaries = summarize_all(runs, settings.variants)
    return Outcome(
        settings=settings,
        command=command,
        machine=machine,
        aws_endpoint_url=endpoint_url,
        runs=runs,
        summaries=summaries,
        checks=check_targets([summary for summary in summaries if summary.variant == settings.variants[0]]),
        import_profile_runs=IMPORT_PROFILE_RUNS,
        import_costs={name: costs_beyond(p, profiles[BASELINE]) for name, p in profiles.items() if name != BASELINE},
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(sys.orig_argv) if argv is None else shlex.join(["python", "-m", "benchmarks", *argv])
    settings = Settings(args.rounds, args.warm_invocations, args.batch_size, args.variants, args.first_event_records)
    try:
        outcome = run(settings, command)
    except PackagingError as error:
        print(f"Cannot run the functions as on Lambda: {error}", file=sys.stderr)
        return 2
    print(render_markdown(outcome))
    if args.json:
        args.json.write_text(json.dumps(raw_numbers(outcome), indent=2))
    return 1 if args.check and not all(check.passed for check in outcome.checks) else 0


if __name__ == "__main__":
    sys.exit(main())
