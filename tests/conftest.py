"""Shared test set-up: no test can reach AWS, and the app is synthesized once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Fake credentials and region for every boto3 client a test creates (moto answers; nothing reaches AWS).
FAKE_AWS = {
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
os.environ.update(FAKE_AWS)
os.environ.pop("AWS_PROFILE", None)
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def session_build_dir(name: str) -> Path:
    """A folder under build/ for what a test session synthesizes: there, not in a temporary folder, the
    dependency layer (pip) is built once, not per run. Each pytest-xdist worker has its own, as they synthesize
    at the same time."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return ROOT / "build" / (f"{name}.{worker}" if worker else name)


@pytest.fixture(scope="session")
def cloud_assembly() -> Path:
    """The app as `cdk synth` writes it, with the cdk-nag checks on (an unacknowledged finding fails here)."""
    from app import build_app

    outdir = session_build_dir("test.cdk.out")
    build_app(outdir=str(outdir)).synth()
    return outdir


@pytest.fixture(scope="session")
def authorizer_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fresh JWT and IoT token-signing key pairs (device_tokens), for the app with its authorizer enabled."""
    from device_tokens import create_keys

    directory = tmp_path_factory.mktemp("authorizer-keys")
    create_keys(directory, "ES256")
    return directory


def authorizer_context(keys: Path, **settings: object) -> dict:
    return {
        "deviceBackend.authorizer.enabled": True,
        "deviceBackend.authorizer.jwtKeys": str(keys / "jwks.json"),  # absolute paths are allowed
        "deviceBackend.authorizer.tokenSigningPublicKeys": {"factory-2026": str(keys / "token-signing-public.pem")},
        **{f"deviceBackend.authorizer.{name}": value for name, value in settings.items()},
    }


@pytest.fixture(scope="session")
def authorizer_assembly(authorizer_keys: Path) -> Path:
    """The app with its custom authorizer enabled (token signing on), synthesized as cloud_assembly is."""
    from app import build_app

    outdir = session_build_dir("test.cdk.out.authorizer")
    build_app(context=authorizer_context(authorizer_keys), outdir=str(outdir)).synth()
    return outdir
