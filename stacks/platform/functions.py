"""The one way to deploy a function of `functions/`: runtime, layer, role, logs and environment defaults."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, Duration, ILocalBundling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.config import LOG_RETENTION_DAYS
from stacks.function_code import FUNCTIONS_DIR

if TYPE_CHECKING:
    from stacks.platform.platform import Platform

RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
# pip's names for the runtime above, to fetch wheels for Lambda's platform rather than this machine's.
PIP_PLATFORM = ("--platform", "manylinux2014_aarch64", "--python-version", "3.14", "--implementation", "cp")
# Packages of functions/ that every function's code asset carries beside its own.
SHARED_PACKAGES = ("event_processing",)


@jsii.implements(ILocalBundling)
class _PipInstallForLambda:
    """Builds the dependency layer with pip on this machine: no Docker."""

    def __init__(self, requirements: Path) -> None:
        self._requirements = requirements

    def try_bundle(self, output_dir: str, *, image: Any = None, **_: Any) -> bool:
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
            "--no-deps", "--only-binary=:all:", *PIP_PLATFORM, "--requirement", str(self._requirements),
            "--target", str(Path(output_dir) / "python"),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"Building the dependency layer failed ({' '.join(command)}):\n{result.stderr}")
        return True


def dependency_layer(scope: Construct, construct_id: str) -> lambda_.LayerVersion:
    """Third-party runtime dependencies (functions/requirements.txt), at the versions the tests use."""
    requirements = FUNCTIONS_DIR / "requirements.txt"
    fingerprint = hashlib.sha256(requirements.read_bytes() + " ".join(PIP_PLATFORM).encode()).hexdigest()
    return lambda_.LayerVersion(
        scope,
        construct_id,
        description="Runtime dependencies of the IoT backend functions (functions/requirements.txt)",
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[ARCHITECTURE],
        code=lambda_.Code.from_asset(
            str(FUNCTIONS_DIR),
            exclude=["*", "!requirements.txt"],
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=fingerprint,
            bundling=BundlingOptions(
                image=RUNTIME.bundling_image,
                command=["bash", "-c", "pip install -r requirements.txt -t /asset-output/python"],
                local=_PipInstallForLambda(requirements),
            ),
        ),
    )


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
            code=lambda_.Code.from_asset(
                str(FUNCTIONS_DIR),
                exclude=["*", *(f"!{p}" for p in packages), *(f"!{p}/**" for p in packages), "**/__pycache__"],
            ),
            layers=[platform.dependencies],
            role=self.role,
            log_group=self.log_group,
            timeout=timeout,
            memory_size=memory_size,
            reserved_concurrent_executions=reserved_concurrency,
            environment={
                "POWERTOOLS_SERVICE_NAME": package,
                "POWERTOOLS_METRICS_NAMESPACE": config.stage_metrics_namespace,
                "POWERTOOLS_LOG_LEVEL": config.log_level,
                **environment,
            },
        )
        platform.monitoring.watch_function(self.function, package)
