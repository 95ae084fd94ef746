"""From the runs to the numbers, the target checks and the Markdown report."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from typing import Any

from benchmarks.candidates import BASELINE
from benchmarks.harness import CandidateRuns, Settings
from benchmarks.import_profile import PackageCost
from benchmarks.lambda_image import VARIANTS, Variant

PRESENCE = "track_presence"
COLD_START_RATIO_TARGET = 1.15
ACTIVATION = "activate_certificate"
# What a new device may cost the activation, beyond the trust material each container loads once (the CA's
# certificate and its CRL): DescribeCertificate, CreateThing, AttachThingPrincipal, AttachPolicy,
# AddThingToThingGroup and UpdateCertificate.
ACTIVATION_CALLS_TARGET = 6
TRUST_LOADS = ("iot:DescribeCACertificate", "s3:GetObject")
TELEMETRY = "ingest_telemetry"
# What a valid reading may cost, beyond the registry reads each container caches (ENRICHMENT_CACHE_SECONDS, so
# only a container's first message of a thing makes them): the latest state's and the history's UpdateItem.
TELEMETRY_CALLS_TARGET = 2
REGISTRY_READS = ("iot:DescribeThing", "iot:ListThingGroupsForThing")
HOOK = "pre_provisioning_hook"
AUTHORIZER = "authorize_device"
AUTHORIZER_WARM_P99_TARGET_MS = 1.0  # a decision of a warm container, per invocation (Powertools' logs included)
# The functions a device waits on, and what its first request gets: IoT waits 5 s for either, so a cold start
# (import, the first AWS read, the answer) must be far inside that.
WAITED_ON = {HOOK: "first answer", AUTHORIZER: "first decision"}
WAITED_ON_COLD_START_TARGET_MS = 1000
KIB_PER_MIB = 1024
TRIGGERS = {"sqs": "SQS batch", "invoke": "synchronous", "event": "asynchronous"}  # ru_maxrss is in KiB on Linux


@dataclass(frozen=True)
class Summary:
    name: str
    cold_samples: int
    cold_wall_ms: float  # medians over the measured rounds
    cold_cpu_ms: float
    init_ms: float  # the part of the cold start until the handler is imported (Lambda's Init phase)
    wall_ratio: float | None  # median over the rounds of (this candidate's sample / the baseline's), None for it
    cpu_ratio: float | None
    warm_event_ms: float  # medians and p99 over the warm invocations, per record and per invocation
    warm_event_p99_ms: float
    warm_invocation_ms: float
    warm_invocation_p99_ms: float
    cold_rss_mib: float
    warm_rss_mib: float
    aws_calls: dict[str, int]  # over every run of the candidate
    records: int
    batches: int
    handler_calls: int
    trigger: str = "sqs"  # how its events arrive: "sqs" batches, or "invoke" (one synchronous invocation each)
    variant: Variant = "shipped"
    # Medians over the rounds of (this sample / the same function's sample in the first variant); None in it.
    first_variant_ratio: float | None = None
    first_variant_cpu_ratio: float | None = None

    @property
    def calls_per_event(self) -> dict[str, float]:
        return {operation: count / self.records for operation, count in sorted(self.aws_calls.items())}

    @property
    def invocations_per_batch(self) -> float:
        return self.handler_calls / self.batches


@dataclass(frozen=True)
class Check:
    target: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Outcome:
    settings: Settings
    command: str
    machine: dict[str, Any]
    aws_endpoint_url: str
    runs: dict[tuple[str, Variant], CandidateRuns]
    summaries: list[Summary]
    checks: list[Check]
    import_profile_runs: int
    import_costs: dict[str, list[PackageCost]]  # by function


def p99(samples: list[float]) -> float:
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def median_ratio(samples: list[dict[str, float]], baseline: list[dict[str, float]], key: str) -> float:
    """Per round, then the median: samples of one round ran minutes apart from other rounds' but seconds
    apart from each other, so the machine's drift cancels out of each round's ratio."""
    return statistics.median(sample[key] / base[key] for sample, base in zip(samples, baseline, strict=True))


def summarize(runs: CandidateRuns, baseline: CandidateRuns, first_variant: CandidateRuns) -> Summary:
    cold, warm = runs.cold, runs.warm
    event_ms = [ms / records for ms, records in zip(warm["warm_call_ms"], warm["warm_call_records"], strict=True)]
    is_baseline = runs is baseline
    return Summary(
        name=runs.candidate.name,
        cold_samples=len(cold),
        cold_wall_ms=statistics.median(sample["cold_wall_ms"] for sample in cold),
        cold_cpu_ms=statistics.median(sample["cold_cpu_ms"] for sample in cold),
        init_ms=statistics.median(sample["init_ms"] for sample in cold),
        wall_ratio=None if is_baseline else median_ratio(cold, baseline.cold, "cold_wall_ms"),
        cpu_ratio=None if is_baseline else median_ratio(cold, baseline.cold, "cold_cpu_ms"),
        warm_event_ms=statistics.median(event_ms),
        warm_event_p99_ms=p99(event_ms),
        warm_invocation_ms=statistics.median(warm["warm_call_ms"]),
        warm_invocation_p99_ms=p99(warm["warm_call_ms"]),
        cold_rss_mib=statistics.median(sample["cold_max_rss_kb"] for sample in cold) / KIB_PER_MIB,
        warm_rss_mib=warm["warm_max_rss_kb"] / KIB_PER_MIB,
        aws_calls=dict(runs.aws_calls),
        records=runs.records,
        batches=runs.batches,
        handler_calls=runs.handler_calls,
        trigger=runs.candidate.trigger,
        variant=runs.variant,
        first_variant_ratio=(
            None if runs is first_variant else median_ratio(cold, first_variant.cold, "cold_wall_ms")
        ),
        first_variant_cpu_ratio=(
            None if runs is first_variant else median_ratio(cold, first_variant.cold, "cold_cpu_ms")
        ),
    )


def summarize_all(runs: dict[tuple[str, Variant], CandidateRuns], variants: tuple[Variant, ...]) -> list[Summary]:
    """Every run against the baseline of the same rounds, and against its own first variant's."""
    baseline = runs[BASELINE, variants[0]]
    return [summarize(r, baseline, runs[name, variants[0]]) for (name, _), r in runs.items()]


def check_targets(summaries: list[Summary]) -> list[Check]:
    """The presence function's targets, then those of the activation, telemetry ingestion, the authorizer and
    the functions a device waits on, if present."""
    by_name = {summary.name: summary for summary in summaries}
    checks = _presence_checks(by_name.get(PRESENCE))
    if ACTIVATION in by_name:
        target = f"{ACTIVATION}: at most {ACTIVATION_CALLS_TARGET} AWS calls per new device (trust loads aside)"
        checks.append(_calls_check(by_name[ACTIVATION], target, ACTIVATION_CALLS_TARGET, TRUST_LOADS, "device"))
    if TELEMETRY in by_name:
        target = (
            f"{TELEMETRY}: at most {TELEMETRY_CALLS_TARGET} AWS calls per valid reading, warm "
            "(registry reads aside: cached per container)"
        )
        checks.append(_calls_check(by_name[TELEMETRY], target, TELEMETRY_CALLS_TARGET, REGISTRY_READS, "message"))
    authorizer = by_name.get(AUTHORIZER)
    if authorizer is not None:
        checks.append(
            Check(
                f"{AUTHORIZER}: warm p99 under {AUTHORIZER_WARM_P99_TARGET_MS:g} ms per decision",
                authorizer.warm_invocation_p99_ms < AUTHORIZER_WARM_P99_TARGET_MS,
                f"p99 {authorizer.warm_invocation_p99_ms:.3f} ms, p50 {authorizer.warm_invocation_ms:.3f} ms",
            )
        )
    for name, first in WAITED_ON.items():
        if name in by_name:
            checks.append(
                Check(
                    f"{name}: cold start and {first} under {WAITED_ON_COLD_START_TARGET_MS} ms (IoT waits 5 s)",
                    by_name[name].cold_wall_ms < WAITED_ON_COLD_START_TARGET_MS,
                    f"{by_name[name].cold_wall_ms:.0f} ms",
                )
            )
    return checks


def _calls_check(summary: Summary, target: str, limit: int, once_per_container: tuple[str, ...], unit: str) -> Check:
    """At most `limit` AWS calls per event, not counting the calls a container makes once, whichever event
    comes first: their number depends on how many containers ran, not on the events."""
    per_event = {op: n for op, n in summary.aws_calls.items() if op not in once_per_container}
    return Check(
        target,
        summary.records > 0 and sum(per_event.values()) <= limit * summary.records,
        f"{sum(per_event.values()) / max(summary.records, 1):.2f} per {unit} "
        f"({_counts(per_event)} for {summary.records} {unit}s)",
    )


def _presence_checks(presence: Summary | None) -> list[Check]:
    targets = [
        f"{PRESENCE}: exactly 1 DynamoDB write per presence event (batches of valid events)",
        f"{PRESENCE}: 1 invocation per SQS batch",
        f"{PRESENCE}: cold start ≤ {COLD_START_RATIO_TARGET}× the baseline's (median of per-round ratios)",
    ]
    if presence is None:
        return [Check(target, False, f"no {PRESENCE} in functions/") for target in targets]
    writes = {op: n for op, n in presence.aws_calls.items() if op.startswith("dynamodb:")}
    ratio = presence.wall_ratio
    return [
        Check(
            targets[0],
            sum(writes.values()) == presence.records > 0,
            f"{_counts(writes) or 'no DynamoDB call'} for {presence.records} events",
        ),
        Check(
            targets[1],
            presence.handler_calls == presence.batches > 0,
            f"{presence.handler_calls} handler calls for {presence.batches} batches",
        ),
        Check(
            targets[2],
            ratio is not None and ratio <= COLD_START_RATIO_TARGET,
            f"{_ratio(ratio)}× (wall; CPU: {_ratio(presence.cpu_ratio)}×)",
        ),
    ]


def markdown_table(summaries: list[Summary]) -> str:
    header = (
        "| candidate | event | cold wall ms | cold CPU ms | of which init ms | wall ÷ baseline | CPU ÷ baseline "
        "| warm ms/event p50 | warm ms/event p99 | warm ms/invocation p50 | warm ms/invocation p99 "
        "| peak RSS MiB cold / warm | AWS calls per event | invocations per batch |"
    )
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for s in summaries:
        calls = ", ".join(f"{op} {per_event:.2f}" for op, per_event in s.calls_per_event.items()) or "none"
        lines.append(
            f"| {s.name} | {TRIGGERS.get(s.trigger, s.trigger)} | {s.cold_wall_ms:.1f} | {s.cold_cpu_ms:.1f} | {s.init_ms:.1f} | {_ratio(s.wall_ratio)} "
            f"| {_ratio(s.cpu_ratio)} | {_ms(s.warm_event_ms)} | {_ms(s.warm_event_p99_ms)} "
            f"| {_ms(s.warm_invocation_ms)} | {_ms(s.warm_invocation_p99_ms)} "
            f"| {s.cold_rss_mib:.1f} / {s.warm_rss_mib:.1f} | {calls} "
            f"| {s.invocations_per_batch:g} |"
        )
    return "\n".join(lines)


def markdown_variants(summaries: list[Summary], variants: tuple[Variant, ...]) -> str:
    """Cold starts of each function in every variant, side by side: wall and CPU time, against the baseline
    and against the first variant (CPU time, which waiting for a busy machine's cores does not inflate, is
    the steadier of the two where the machine is shared)."""
    by_key = {(s.name, s.variant): s for s in summaries}
    names = list(dict.fromkeys(s.name for s in summaries if s.name != BASELINE))
    columns = [f"{variants[0]}: cold wall ms (÷ baseline) / CPU ms (÷ baseline)"] + [
        f"{variant}: cold wall ms (÷ baseline, ÷ {variants[0]}) / CPU ms (÷ baseline, ÷ {variants[0]})"
        for variant in variants[1:]
    ]
    lines = ["| candidate | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name in names:
        cells = []
        for variant in variants:
            s = by_key[name, variant]
            wall, cpu = _ratio(s.wall_ratio), _ratio(s.cpu_ratio)
            if s.first_variant_ratio is not None:
                wall, cpu = f"{wall}, {_ratio(s.first_variant_ratio)}", f"{cpu}, {_ratio(s.first_variant_cpu_ratio)}"
            cells.append(f"{s.cold_wall_ms:.1f} ({wall}) / {s.cold_cpu_ms:.1f} ({cpu})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_checks(checks: list[Check]) -> str:
    return "\n".join(f"- **{'PASS' if c.passed else 'FAIL'}** {c.target}: {c.detail}" for c in checks)


def markdown_import_costs(costs: dict[str, list[PackageCost]], top: int = 8) -> str:
    lines = []
    for name, packages in costs.items():
        total = sum(cost.extra_ms for cost in packages)
        shown = ", ".join(f"{c.package} {c.extra_ms:+.1f} ms ({c.new_modules} new modules)" for c in packages[:top])
        lines.append(f"- {name}: {total:+.1f} ms; {shown}")
    return "\n".join(lines)


def _ms(ms: float) -> str:
    # The baseline's warm calls take nanoseconds: printed as 0.000 they would look like a failed measurement.
    return f"{ms:.3f}" if ms >= 0.001 else "<0.001"


def _ratio(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.3f}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {operation}" for operation, count in sorted(counts.items()))


def render_markdown(outcome: Outcome) -> str:
    settings = outcome.settings
    first = settings.variants[0]
    variants = "".join(f"- `{variant}`: {VARIANTS[variant]}\n" for variant in settings.variants)
    return (
        f"## Lambda functions vs a boto3-client baseline ({settings.rounds - 1} interleaved cold-start rounds after "
        f"1 warm-up; {settings.warm_invocations} warm invocations each: of a {settings.batch_size}-record SQS batch, "
        "or of one event for a function invoked per event, synchronously or asynchronously)\n\n"
        f"Variants, each function in each, interleaved in every round:\n\n{variants}\n"
        "Every run: PYTHONDONTWRITEBYTECODE=1 (Lambda's code folders are read-only).\n\n"
        f"### `{first}`\n\n"
        f"{markdown_table([s for s in outcome.summaries if s.variant == first])}\n\n"
        "Cold start: from the child's first line to the return of its first invocation (an SQS batch of "
        f"{settings.first_event_records} record{'s' if settings.first_event_records > 1 else ''}, or the one event "
        "of a function invoked per event: what a device waiting on a synchronous one waits at a cold start); init: "
        "to the handler imported. Medians; ratios are the median of per-round ratios. AWS: a stub at "
        f"{outcome.aws_endpoint_url} (stopped since), calls counted by operation over every run. A function invoked "
        "per event gets the same event every time; the stub's writes all succeed, so telemetry's warm time per "
        "event is that of a new valid reading stored (registry reads cached), never a repeated message's.\n\n"
        f"### Cold start by variant (medians; ratios: medians of per-round ratios)\n\n"
        f"{markdown_variants(outcome.summaries, settings.variants)}\n\n"
        f"### Targets (`{first}`)\n\n{markdown_checks(outcome.checks)}\n\n"
        f"### Import time beyond the baseline's (python -X importtime, `{first}`, median of "
        f"{outcome.import_profile_runs} cold starts each; self time by top-level package, largest first)\n\n"
        f"{markdown_import_costs(outcome.import_costs)}\n\n"
        f"### Run\n\n- command: `{outcome.command}`\n"
        + "".join(f"- {key}: {value}\n" for key, value in outcome.machine.items())
    )


def raw_numbers(outcome: Outcome) -> dict[str, Any]:
    return {
        "command": outcome.command,
        "machine": outcome.machine,
        "settings": dataclasses.asdict(outcome.settings),
        "variants": {variant: VARIANTS[variant] for variant in outcome.settings.variants},
        "aws_endpoint_url": outcome.aws_endpoint_url,
        "summaries": [
            {
                **dataclasses.asdict(s),
                "calls_per_event": s.calls_per_event,
                "invocations_per_batch": s.invocations_per_batch,
            }
            for s in outcome.summaries
        ],
        "checks": [dataclasses.asdict(check) for check in outcome.checks],
        "import_costs_beyond_baseline": {
            name: [dataclasses.asdict(cost) for cost in costs] for name, costs in outcome.import_costs.items()
        },
        "runs": {
            f"{name} ({variant})": {
                "handler": runs.candidate.handler,
                "trigger": runs.candidate.trigger,
                "event": runs.candidate.event,
                "cold": runs.cold,
                "warm": runs.warm,
            }
            for (name, variant), runs in outcome.runs.items()
        },
    }
