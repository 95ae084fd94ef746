"""Runs the candidates in fresh Python processes, as Lambda runs them, against the AWS stub, on an interpreter
of the runtime's Python version, each function in every variant measured (lambda_image.VARIANTS).

Cold starts are interleaved: each round starts every candidate in every variant once, so that the machine's speed, which drifts
by tens of percent within minutes here, is about the same for the samples compared with each other.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from benchmarks.aws_stub import AwsStub
from benchmarks.candidates import Candidate
from benchmarks.lambda_image import LambdaImage, Variant
from stacks.config import DefenderConfig, TelemetryConfig
from stacks.lambda_packaging import RUNTIME_NAME

CHILD_SCRIPT = Path(__file__).with_name("lambda_child.py")
# -S: no site, so sys.path is only what Lambda's has (the child adds code, layer and runtime packages itself).
# -P: the script's folder (benchmarks/) is not on sys.path either.
CHILD_ISOLATION = ("-S", "-P")
CHILD_TIMEOUT_SECONDS = 600
REGION = "eu-west-1"
ACCOUNT = "123456789012"
# The app's telemetry settings as synthesized by default: the thresholds measured are the deployed ones.
TELEMETRY_DEFAULTS = TelemetryConfig()
DEFENDER_DEFAULTS = DefenderConfig()
# What the stack gives every function (stacks/platform/functions.py) and the functions' own variables
# (stacks/lifecycle/, stacks/telemetry/, stacks/defender/), with made-up resource names: every function gets all of them, each
# reads its own.
STACK_ENVIRONMENT = {
    "POWERTOOLS_METRICS_NAMESPACE": "IotDeviceBackend",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "CONNECTIVITY_TABLE": "DeviceBackend-Connectivity",
    "SUBSCRIPTIONS_TABLE": "DeviceBackend-Subscriptions",
    "INVENTORY_TABLE": "DeviceBackend-Inventory",
    "ALLOW_LIST_TABLE": "DeviceBackend-AllowList",
    "TRUST_BUCKET": "devicebackend-trustbucket",
    "TRUST_REFRESH_SECONDS": "300",
    "REQUIRE_ALLOW_LIST": "false",
    "DEVICE_POLICY_NAME": "iot_backend_device",
    "FLEET_THING_GROUP": "iot_backend_fleet",
    "DEAD_LETTER_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/DeviceBackend-DeadLetters",
    # The custom authorizer's (stacks/authorizer/): its keys parameter answers with the samples' public JWKS.
    "TOKEN_KEYS_PARAMETER": "/iot_backend/authorizer/token-keys",
    "TOKEN_ALGORITHM": "ES256",
    "TOKEN_ISSUER": "device-backend",
    "TOKEN_AUDIENCE": "iot",
    "CLOCK_SKEW_SECONDS": "60",
    "KEYS_REFRESH_SECONDS": "300",
    "TOKEN_KEY_NAME": "x-device-token",
    "DEVICE_TOPICS": json.dumps(
        {
            "publish": ["dt/*/{clientId}/*", "$aws/things/{clientId}/shadow/*"],
            "subscribe": ["cmd/*/{clientId}/*", "$aws/things/{clientId}/shadow/*"],
            "receive": ["cmd/*/{clientId}/*", "$aws/things/{clientId}/shadow/*"],
        }
    ),
    # ingest_telemetry's (stacks/telemetry/ingestion.py). Its iot-data endpoint is AWS_ENDPOINT_URL's, the stub.
    "LATEST_TABLE": "DeviceBackend-TelemetryLatest",
    "HISTORY_TABLE": "DeviceBackend-TelemetryHistory",
    "ALERTS_TOPIC_ARN": f"arn:aws:sns:{REGION}:{ACCOUNT}:DeviceBackend-TelemetryAlerts",
    "COMMAND_TOPIC_PREFIX": f"cmd/{TELEMETRY_DEFAULTS.application}",
    "HISTORY_DAYS": str(TELEMETRY_DEFAULTS.history_days),
    "ENRICHMENT_CACHE_SECONDS": str(TELEMETRY_DEFAULTS.enrichment_cache_seconds),
    "THRESHOLDS": json.dumps({"default": TELEMETRY_DEFAULTS.thresholds, "groups": TELEMETRY_DEFAULTS.group_thresholds}),
    # Device Defender's (stacks/defender/defender.py): the default check -> actions map, actions named as the stack
    # names them.
    "MITIGATION_ACTIONS": json.dumps(
        {check: [f"iot_backend_{key}" for key in keys] for check, keys in DEFENDER_DEFAULTS.mitigations.items()}
    ),
    "DRY_RUN": "false",
    "REMEDIATIONS_TABLE": "DeviceBackend-Remediations",
    "NOTICES_TOPIC_ARN": f"arn:aws:sns:{REGION}:{ACCOUNT}:DeviceBackend-DefenderNotices",
    "QUARANTINE_GROUP": "iot_backend_quarantine",
}


class ChildFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Settings:
    rounds: int  # the first one is the warm-up, not reported
    warm_invocations: int
    batch_size: int
    variants: tuple[Variant, ...]  # the first is the one the targets are checked on, and the baseline's
    # The records of the first event after a cold start. One by default: the cold start is the environment's
    # fixed cost (init and first calls); what each further record costs is the warm time per event.
    first_event_records: int = 1


@dataclass(frozen=True)
class ChildResult:
    measurements: dict[str, Any]  # what lambda_child.py wrote
    aws_calls: Counter[str]
    stderr: str


@dataclass
class CandidateRuns:
    candidate: Candidate
    variant: Variant
    cold: list[dict[str, Any]] = field(default_factory=list)  # one per measured round, in round order
    warm: dict[str, Any] = field(default_factory=dict)
    aws_calls: Counter[str] = field(default_factory=Counter)  # over every run: warm-up, cold and warm
    batches: int = 0
    records: int = 0
    handler_calls: int = 0

    def count(self, result: ChildResult) -> None:
        self.aws_calls += result.aws_calls
        self.batches += result.measurements["batches"]
        self.records += result.measurements["records"]
        self.handler_calls += result.measurements["handler_calls"]


def lambda_environment(candidate: Candidate, image: LambdaImage, variant: Variant, endpoint_url: str) -> dict[str, str]:
    """The child's whole environment: Lambda's variables, the stack's, and the stub in place of AWS. Nothing is
    inherited from this process, so no AWS profile, PYTHONPATH or PYTHON* setting of this shell leaks in."""
    function_name = f"DeviceBackend-{candidate.name}"
    environment = {
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2025/01/01/[$LATEST]benchmark",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{RUNTIME_NAME}",
        "LAMBDA_TASK_ROOT": str(image.task_root(candidate, variant)),
        "_HANDLER": candidate.handler,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "ASIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_SESSION_TOKEN": "benchmark-session-token",
        # Set whether tracing is active or not; nothing listens there (the functions send no segment).
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "TZ": ":UTC",
        "LANG": "C.UTF-8",
        "POWERTOOLS_SERVICE_NAME": candidate.name,
        **STACK_ENVIRONMENT,
        "AWS_ENDPOINT_URL": endpoint_url,
        # Lambda has no AWS config files; pointing at files that do not exist keeps this machine's out.
        "AWS_CONFIG_FILE": str(image.root / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(image.root / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "HOME": str(image.root),
        # Lambda's code folders are read-only: what has no bytecode is compiled at every cold start.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return environment


def run_child(
    candidate: Candidate,
    image: LambdaImage,
    aws: AwsStub,
    *,
    variant: Variant = "shipped",
    warm_invocations: int,
    first_event_records: int,
    python_options: Sequence[str] = (),
) -> ChildResult:
    """One execution environment of `candidate` in `variant`: a cold start, then `warm_invocations` more
    events, on the interpreter of the runtime's Python version."""
    result_path = image.root / f"result-{candidate.name}.json"
    result_path.unlink(missing_ok=True)
    settings = {
        "code_root": str(image.task_root(candidate, variant)),
        "layers": [str(layer) for layer in image.layers(candidate, variant)],
        "runtime_packages": str(image.runtime_packages),
        "handler": candidate.handler,
        "function_name": f"DeviceBackend-{candidate.name}",
        "warm_invocations": warm_invocations,
        "trigger": candidate.trigger,
        "first_event_records": first_event_records,
        "traced": variant == "traced",
        "result_path": str(result_path),
    }
    completed = subprocess.run(
        [str(image.python.path), *CHILD_ISOLATION, *python_options, str(CHILD_SCRIPT), json.dumps(settings)],
        input=json.dumps(candidate.event).encode(),
        stdout=subprocess.DEVNULL,  # the function's logs and metrics (EMF), which go to CloudWatch on Lambda
        stderr=subprocess.PIPE,
        env=lambda_environment(candidate, image, variant, aws.endpoint_url),
        timeout=CHILD_TIMEOUT_SECONDS,
    )
    aws_calls = aws.take_counts()  # taken even on failure, so they are not put down to the next child
    stderr = completed.stderr.decode(errors="replace")
    if completed.returncode != 0:
        raise ChildFailed(f"{candidate.name} ({variant}) exited with {completed.returncode}:\n{stderr[-4000:]}")
    return ChildResult(json.loads(result_path.read_text()), aws_calls, stderr)


Unit = tuple[Candidate, Variant]


def units(candidates: list[Candidate], variants: tuple[Variant, ...]) -> list[Unit]:
    """What is measured: every function in every variant, and the baseline (boto3 and a client, the same in
    every variant) in the first one."""
    return [(c, v) for c in candidates for v in variants if not (c.is_baseline and v != variants[0])]


def rotated(items: list[Unit], round_number: int) -> list[Unit]:
    # Each unit takes each place in the round in turn, so none always runs first (or right after another).
    shift = round_number % len(items)
    return items[shift:] + items[:shift]


def measure(
    candidates: list[Candidate],
    settings: Settings,
    image: LambdaImage,
    aws: AwsStub,
    progress: Callable[[str], None],
) -> dict[tuple[str, Variant], CandidateRuns]:
    measured = units(candidates, settings.variants)
    runs = {(c.name, v): CandidateRuns(c, v) for c, v in measured}
    for round_number in range(settings.rounds):
        warm_up = round_number == 0  # fills the page cache; not reported
        progress(f"cold starts: round {round_number + 1}/{settings.rounds}{' (warm-up)' if warm_up else ''}")
        for candidate, variant in rotated(measured, round_number):
            result = run_child(
                candidate,
                image,
                aws,
                variant=variant,
                warm_invocations=0,
                first_event_records=settings.first_event_records,
            )
            runs[candidate.name, variant].count(result)
            if not warm_up:
                runs[candidate.name, variant].cold.append(result.measurements)
    for candidate, variant in measured:
        progress(f"warm invocations: {candidate.name} ({variant})")
        result = run_child(
            candidate,
            image,
            aws,
            variant=variant,
            warm_invocations=settings.warm_invocations,
            first_event_records=settings.first_event_records,
        )
        runs[candidate.name, variant].count(result)
        runs[candidate.name, variant].warm = result.measurements
    return runs


def profile_imports(
    candidates: list[Candidate], settings: Settings, image: LambdaImage, aws: AwsStub, runs: int
) -> dict[str, list[str]]:
    """`python -X importtime` of `runs` cold starts of each candidate in the first variant, interleaved: their
    stderr, by candidate."""
    profiles: dict[str, list[str]] = {candidate.name: [] for candidate in candidates}
    for _ in range(runs):
        for candidate in candidates:
            result = run_child(
                candidate,
                image,
                aws,
                variant=settings.variants[0],
                warm_invocations=0,
                first_event_records=settings.first_event_records,
                python_options=("-X", "importtime"),
            )
            profiles[candidate.name].append(result.stderr)
    return profiles
