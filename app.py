#!/usr/bin/env python3
"""The CDK app: `npx cdk synth`, or `python app.py` (writes to $CDK_OUTDIR, else cdk.out)."""

from __future__ import annotations

import os
import sys
from typing import Any

import aws_cdk as cdk

from stacks.config import ConfigError, load_config
from stacks.device_backend import DeviceBackendStack
from stacks.lambda_packaging import PackagingError
from stacks.platform.checks import enable_checks

STACK_NAME = "DeviceBackend"  # with no deviceBackend.stage; DeviceBackend-<stage> with one


def stack_name(stage: str | None) -> str:
    return STACK_NAME if stage is None else f"{STACK_NAME}-{stage}"


def deployment_environment() -> cdk.Environment | None:
    """The account and region the CLI resolved from the credentials (CDK_DEFAULT_ACCOUNT, CDK_DEFAULT_REGION).
    Without an account the stack is environment-agnostic, so that synth needs no credentials: the CLI sets a
    region even then (us-east-1 when it finds none), which must not pin the template to it."""
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    return cdk.Environment(account=account, region=os.environ.get("CDK_DEFAULT_REGION")) if account else None


def build_app(context: dict[str, Any] | None = None, outdir: str | None = None) -> cdk.App:
    app = cdk.App(
        outdir=outdir or os.environ.get("CDK_OUTDIR") or "cdk.out",
        analytics_reporting=False,
        # Construct paths and asset paths in the template's metadata, as the CLI writes them: `sam local invoke`
        # and the local runtime find functions by them.
        context={"aws:cdk:enable-path-metadata": True, "aws:cdk:enable-asset-metadata": True, **(context or {})},
    )
    config = load_config(app.node.get_all_context())
    DeviceBackendStack(app, stack_name(config.stage), config=config, env=deployment_environment())
    enable_checks(app)
    return app


if __name__ == "__main__":
    try:
        build_app().synth()
    except ConfigError as error:
        sys.exit(f"Configuration error: {error}")
    except PackagingError as error:
        sys.exit(f"Cannot build the functions for Lambda: {error}")
