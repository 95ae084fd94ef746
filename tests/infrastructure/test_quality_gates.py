"""The synthesized app passes cfn-lint and cdk-nag, and synthesizes with no AWS account, as the CLI does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import STACK_NAME, build_app
from stacks.config import ConfigError
from tests.conftest import ROOT
from tests.infrastructure.conftest import acknowledged_findings


def test_cfn_lint_finds_nothing_beyond_the_documented_ignores(template_path):
    cfn_lint = Path(sys.executable).parent / "cfn-lint"  # reads .cfnlintrc.yaml from the repo root
    result = subprocess.run(
        [str(cfn_lint), "--format", "json", "--", str(template_path)], cwd=ROOT, capture_output=True, text=True
    )
    assert (result.returncode, json.loads(result.stdout)) == (0, []), result.stdout + result.stderr


# The functions of the default app, each on a runtime cdk-nag's AwsSolutions-L1 takes for outdated.
FUNCTIONS = (
    "Presence/TrackPresence", "Registry/TrackInventory", "Onboarding/Activation/ActivateCertificate",
    "Onboarding/FleetProvisioning/PreProvisioningHook", "Telemetry/IngestTelemetry",
    "Defender/MitigateAuditFindings", "Defender/RemediateFinding",
)  # fmt: skip


def test_cdk_nag_findings_are_acknowledged_only_where_reviewed_and_with_reasons(cloud_assembly):
    acknowledged = acknowledged_findings(cloud_assembly)
    assert set(acknowledged) == {
        # python3.13, not the newest runtime: the one whose bytecode the build can ship (README, "Packaging").
        *((f"/DeviceBackend/{function}/Function", "Annotation::AwsSolutions-L1") for function in FUNCTIONS),
        ("/DeviceBackend/Platform/RuleErrors/Queue", "Annotation::AwsSolutions-SQS3"),
        ("/DeviceBackend/Registry/EventConfigurations", "Annotation::AwsSolutions-IAM5[Resource::*]"),
        (
            "/DeviceBackend/AWS679f53fac002430cb0da5b7982bd2287",
            "Annotation::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        ),
        (
            "/DeviceBackend/Onboarding/FleetProvisioning/ProvisioningRole",
            "Annotation::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:thing/*]",
        ),
        (
            "/DeviceBackend/Onboarding/FleetProvisioning/ProvisioningRole",
            "Annotation::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:cert/*]",
        ),
        ("/DeviceBackend/Onboarding/Activation/TrustBucket", "Annotation::AwsSolutions-S1"),
        *(
            (
                "/DeviceBackend/Onboarding/Activation/ActivateCertificate/Role",
                f"Annotation::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:{arn}]",
            )
            for arn in ("cert/*", "cacert/*", "thing/*")
        ),
        (
            "/DeviceBackend/Onboarding/Activation/ActivateCertificate/Role",
            "Annotation::AwsSolutions-IAM5[Resource::<OnboardingActivationTrustBucket74C6FFA6.Arn>/crl/*]",
        ),
        ("/DeviceBackend/Telemetry/Alerts", "Annotation::AwsSolutions-SNS2"),
        ("/DeviceBackend/Telemetry/DeadLetters/Queue", "Annotation::AwsSolutions-SQS3"),
        ("/DeviceBackend/Telemetry/DataEndpoint", "Annotation::AwsSolutions-IAM5[Resource::*]"),
        *(
            (
                "/DeviceBackend/Telemetry/IngestTelemetry/Role",
                f"Annotation::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:{arn}]",
            )
            for arn in ("thing/*", "topic/cmd/fleet/*/threshold")
        ),
        ("/DeviceBackend/TelemetryArchive/Bucket", "Annotation::AwsSolutions-S1"),
        *(
            (f"/DeviceBackend/Defender/{topic}", "Annotation::AwsSolutions-SNS2")
            for topic in ("AuditNotifications", "Findings", "Notices")
        ),
        *(
            (f"/DeviceBackend/Defender/{queue}/Queue", "Annotation::AwsSolutions-SQS3")
            for queue in ("MitigationDeadLetters", "RemediationDeadLetters")
        ),
        *(
            (
                f"/DeviceBackend/Defender/{role}",
                f"Annotation::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:{arn}]",
            )
            for role, arn in (
                ("AuditRole", "cert/*"), ("AuditRole", "cacert/*"), ("AuditRole", "policy/*"),
                ("QuarantineRole", "thing/*"), ("QuarantineRole", "cert/*"),
                ("DeactivateDeviceCertificateRole", "cert/*"), ("DeactivateCaCertificateRole", "cacert/*"),
                ("BlankPolicyRole", "policy/*"), ("RemediateFinding/Role", "cert/*"), ("RemediateFinding/Role", "thing/*"),
            )
        ),
        *(
            (f"/DeviceBackend/Defender/{role}", "Annotation::AwsSolutions-IAM5[Resource::*]")
            for role in ("AuditRole", "EnableLoggingRole", "MitigateAuditFindings/Role")
        ),
        (
            "/DeviceBackend/Defender/LoggingRole",
            "Annotation::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:AWSIotLogsV2:*]",
        ),
        *(
            ("/DeviceBackend/TelemetryArchive/DeliveryRole", f"Annotation::AwsSolutions-IAM5[Resource::<TelemetryArchiveBucketEAE09D0F.Arn>/{prefix}/*]")
            for prefix in ("raw", "errors")
        ),
    }
    assert all(len(reason) > 60 for reason in acknowledged.values())


def test_an_unacknowledged_finding_fails_synthesis():
    from aws_cdk import aws_sqs as sqs

    app = build_app(outdir=str(ROOT / "build" / "test.cdk.out.nag"))
    sqs.Queue(app.node.find_child(STACK_NAME), "QueueWithoutDeadLetters")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()


def test_synth_fails_on_a_bad_setting_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="deviceBackend.presence.batchSize"):
        build_app(context={"deviceBackend.presence.batchSize": 0}, outdir=str(tmp_path))


def test_python_app_py_synthesizes_with_no_aws_credentials():
    outdir = ROOT / "build" / "test.cdk.out.app"  # under build/, so the layer is built once, not per run
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"CDK_OUTDIR": str(outdir)}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads((outdir / f"{STACK_NAME}.template.json").read_text())["Resources"]


def test_python_app_py_reports_a_bad_setting_in_one_line(tmp_path):
    environment = {**os.environ, "CDK_OUTDIR": str(tmp_path), "CDK_CONTEXT_JSON": json.dumps({"deviceBackend.logLevel": "LOUD"})}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Configuration error: Context key 'deviceBackend.logLevel' is 'LOUD'; it must be one of DEBUG, INFO, WARNING, ERROR"
    )


def test_cdk_cli_synthesizes_with_no_aws_credentials(tmp_path):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    result = subprocess.run(
        [str(ROOT / "node_modules" / ".bin" / "cdk"), "synth", "--quiet", "--output", str(tmp_path)],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / f"{STACK_NAME}.template.json").is_file()


def test_cdk_diff_against_a_saved_template_needs_no_aws_credentials(template_path, tmp_path):
    """README, "Review a change": the offline diff shows the change, and --fail exits 1 on it."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    result = subprocess.run(
        [str(ROOT / "node_modules" / ".bin" / "cdk"), "diff", "--template", str(template_path), "--fail",
         "--output", str(tmp_path), "-c", "deviceBackend.presence.batchSize=5"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = result.stdout + result.stderr
    assert "BatchSize" in report and "[-] 10" in report and "[+] 5" in report
    assert "Number of stacks with differences: 1" in report
