"""Where a function's cold start goes beyond the baseline's, from `python -X importtime` of each.

A module's self time covers finding it, compiling it when it has no bytecode, and running its top-level code.
Compared by top-level package, so that both costs show: modules the baseline does not import at all, and
modules it imports too but that cost the function more (a layer's copy of a runtime package, without .pyc).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

_PREFIX = "import time:"


@dataclass(frozen=True)
class PackageCost:
    package: str  # the top-level name: `aws_lambda_powertools.logging` counts for aws_lambda_powertools
    extra_ms: float  # the function's self time in the package minus the baseline's
    new_modules: int  # modules of the package that the baseline does not import


def self_times_us(importtime_stderr: str) -> dict[str, int]:
    """Module -> self time in µs, from the lines `import time: <self> | <cumulative> | <indented module>`."""
    times: dict[str, int] = {}
    for line in importtime_stderr.splitlines():
        if not line.startswith(_PREFIX):
            continue
        fields = line[len(_PREFIX) :].split("|")
        if len(fields) == 3 and fields[0].strip().isdigit():
            times[fields[2].strip()] = int(fields[0])
    return times


def median_self_times_us(importtime_stderrs: list[str]) -> dict[str, float]:
    """Per module, the median over several runs: one run's noise would show as a package costing more."""
    runs = [self_times_us(stderr) for stderr in importtime_stderrs]
    modules = set().union(*runs)
    return {module: statistics.median(run.get(module, 0) for run in runs) for module in modules}


def costs_beyond(function: dict[str, float], baseline: dict[str, float]) -> list[PackageCost]:
    """The function's extra import time by package, costliest first."""
    extra_us: dict[str, float] = defaultdict(float)
    new_modules: dict[str, int] = defaultdict(int)
    for module in function.keys() | baseline.keys():
        package = module.partition(".")[0]
        extra_us[package] += function.get(module, 0) - baseline.get(module, 0)
        new_modules[package] += module in function and module not in baseline
    costs = [PackageCost(package, extra_us[package] / 1000, new_modules[package]) for package in extra_us]
    return sorted(costs, key=lambda cost: cost.extra_ms, reverse=True)
