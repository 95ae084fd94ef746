"""The one way to deploy a function of `functions/`: runtime, layer, role, logs and environment defaults."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import jsii
from aws_cdk import AssetHashType, BundlingOptions, Duration, ILocalBundling, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.config import LOG_RETENTION_DAYS
from stacks.function_code import FUNCTIONS_DIR
from stacks.lambda_packaging import (
    PYTHON_VERSION,
    Interpreter,
    build_function_code,
    build_layer,
    code_fingerprint,
    lambda_interpreter,
    layer_fingerprint,
)
from stacks.platform.checks import acknowledge

if TYPE_CHECKING:
    from stacks.platform.platform import Platform

RUNTIME = getattr(lambda_.Runtime, "PYTHON_" + PYTHON_VERSION.replace(".", "_"))
ARCHITECTURE = lambda_.Architecture.ARM_64
# Packages of functions/ that every function's code asset carries beside its own.
SHARED_PACKAGES = ("event_processing",)


@jsii.implements(ILocalBundling)
class _BuildOnThisMachine:
    """Builds an asset with plain Python on this machine. It always succeeds or raises, so Docker (the
    bundling image, which CDK requires to be named) is never called."""

    def __init__(self, build: Callable[[Path], None]) -> None:
        self._build = build

    def try_bundle(self, output_dir: str, *, image: Any = None, **_: Any) -> bool:
        self._build(Path(output_dir))
        return True


def _interpreter(scope: Construct) -> Interpreter | None:
    """The interpreter that compiles the bytecode, looked for only when the stack's assets are built (not by
    `cdk ls`, nor with bundling skipped): synth fails here, with what to do, when there is none."""
    return lambda_interpreter() if Stack.of(scope).bundling_required else None


def dependency_layer(scope: Construct, construct_id: str) -> lambda_.LayerVersion:
    """Third-party runtime dependencies (functions/requirements.txt), at the versions the tests use, with
    their bytecode."""
    requirements = FUNCTIONS_DIR / "requirements.txt"
    interpreter = _interpreter(scope)
    return lambda_.LayerVersion(
        scope,
        construct_id,
        description="Runtime dependencies of the IoT backend functions (functions/requirements.txt)",
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[ARCHITECTURE],
        code=lambda_.Code.from_asset(
            str(FUNCTIONS_DIR),
            exclude=["*", "!requirements.txt"],
            # Hashed by what it is built from, so a synth into a cdk.out that has it does not run pip again.
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=layer_fingerprint(requirements),
            bundling=BundlingOptions(
                image=RUNTIME.bundling_image,
                local=_BuildOnThisMachine(lambda output: build_layer(_required(interpreter), requirements, output)),
            ),
        ),
    )


def _function_code(scope: Construct, packages: tuple[str, ...]) -> lambda_.Code:
    """The packages and their bytecode, hashed by what they are built from, as the layer is (a build gives
    the same bytes every time)."""
    interpreter = _interpreter(scope)
    return lambda_.Code.from_asset(
        str(FUNCTIONS_DIR),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=code_fingerprint(FUNCTIONS_DIR, packages),
        bundling=BundlingOptions(
            image=RUNTIME.bundling_image,
            local=_BuildOnThisMachine(
                lambda output: build_function_code(_required(interpreter), FUNCTIONS_DIR, packages, output)
            ),
        ),
    )


def _required(interpreter: Interpreter | None) -> Interpreter:
    assert interpreter is not None, "CDK builds assets only for stacks that require bundling"
    return interpreter


class BackendFunction(Construct):
    """A function whose handler is `functions/<package>/handler.py`, with its own log group and a role that
    can write only to that log group; the capability grants whatever else it uses."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: Platform,
        package: str,
        description: str,
        environment: dict[str, str],
        timeout: Duration = Duration.seconds(30),
        memory_size: int = 256,
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if not (FUNCTIONS_DIR / package / "handler.py").is_file():
            raise ValueError(f"functions/{package}/handler.py does not exist")
        config = platform.config
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=getattr(logs.RetentionDays, LOG_RETENTION_DAYS[config.log_retention_days]),
            removal_policy=platform.removal_policy,
        )
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=f"Runs {package}"
        )
        self.log_group.grant_write(self.role)
        packages = (package, *SHARED_PACKAGES)
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=f"{package}.handler.handler",
            code=_function_code(self, packages),
            layers=[platform.dependencies],
            role=self.role,
            log_group=self.log_group,
            timeout=timeout,
            memory_size=memory_size,
            reserved_concurrent_executions=reserved_concurrency,
            # Active tracing: Lambda records each invocation's segment (initialization, invocation, overhead,
            # errors) itself; the code records nothing (README, "Observability").
            tracing=lambda_.Tracing.ACTIVE if config.tracing else None,
            environment={
                "POWERTOOLS_SERVICE_NAME": package,
                "POWERTOOLS_METRICS_NAMESPACE": config.stage_metrics_namespace,
                "POWERTOOLS_LOG_LEVEL": config.log_level,
                **environment,
            },
        )
        platform.monitoring.watch_function(self.function, package)
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            f"{RUNTIME.name}, not the newest Python runtime: the build ships bytecode compiled by the runtime's own "
            "Python version, and no newer interpreter can be installed from the package registries the build uses",
        )
        if config.tracing:
            acknowledge(
                self.role.node.find_child("DefaultPolicy"),
                "AwsSolutions-IAM5[Resource::*]",
                "xray:PutTraceSegments and xray:PutTelemetryRecords, which active tracing adds, act on no resource: "
                "X-Ray allows only '*' for them",
            )
