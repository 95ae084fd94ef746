from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import STACK_NAME


@pytest.fixture(scope="session")
def template_path(cloud_assembly: Path) -> Path:
    return cloud_assembly / f"{STACK_NAME}.template.json"


@pytest.fixture(scope="session")
def template(template_path: Path) -> dict:
    return json.loads(template_path.read_text())


def resources(template: dict, resource_type: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == resource_type}


def cdk_path(resource: dict) -> str:
    return resource.get("Metadata", {}).get("aws:cdk:path", "")


def find(template: dict, resource_type: str, path_part: str) -> tuple[str, dict]:
    """The one resource of `resource_type` whose CDK path contains `path_part`."""
    found = [(n, r) for n, r in resources(template, resource_type).items() if path_part in cdk_path(r)]
    assert len(found) == 1, f"{len(found)} {resource_type} with {path_part!r} in their path"
    return found[0]


def acknowledged_findings(assembly: Path, pack: str = "AwsSolutions") -> dict[tuple[str, str], str]:
    """(construct path, finding) -> reason, for every finding of a cdk-nag pack (AwsSolutions, or the IoT
    checks) acknowledged in the synthesized app."""
    metadata = json.loads((assembly / f"{STACK_NAME}.metadata.json").read_text())
    return {
        (path, rule): reason
        for path, entries in metadata.items()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for rule, reason in entry["data"].items()
        if rule.startswith(f"Annotation::{pack}-")
    }
