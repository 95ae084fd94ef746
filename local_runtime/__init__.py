"""Runs the synthesized app (a CDK cloud assembly) on this machine: no Docker, no AWS account.

An embedded AWS (moto's server) holds the tables, queues, topics and delivery streams the template declares;
each Lambda function runs in its own child process as a warm container would; SQS event source mappings feed
the functions; a minimal IoT rules engine turns published messages, a device's or a function's, into rule
actions. Whatever it does not emulate it refuses, with a message saying what and where, rather than pretend.

Modules: assembly (the cloud assembly and its functions), intrinsics (CloudFormation functions), cloud (the
embedded AWS) with custom_resources (`Custom::AWS` calls) and sqs_redrive (dead-letter redrive), functions and worker (Lambda's execution
environments), event_sources (SQS mappings and asynchronous invocations), topics, rules and rule_actions (the
rules engine), broker (what functions publish to IoT Core), firehose (delivery to S3), runtime (all of it as
one object), device_endpoint with device_gateway, device_certificates, iot_policies and lifecycle_events (real
MQTT devices: `serve`), scenario with outcomes (what became of each message), report, and __main__ (the command line:
`python -m local_runtime --help`).

Not emulated, knowingly: IAM (every call is allowed), CloudWatch (logs are captured and printed, metrics
summed from the EMF lines, alarms skipped), Lambda's memory limit, concurrency (one batch at a time per
mapping), retries of asynchronous invocations, the function's Python version and architecture (it runs on
this interpreter), DynamoDB's TTL deletions, deliveries to SNS subscribers, and IoT SQL beyond `SELECT *`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from local_runtime.errors import LocalRuntimeError, NotEmulated

if TYPE_CHECKING:
    from local_runtime.runtime import LocalRuntime

__all__ = ["LocalRuntime", "LocalRuntimeError", "NotEmulated"]


def __getattr__(name: str) -> Any:
    # LocalRuntime loads moto; importing a light module of this package (lambda_runtime) must not.
    if name == "LocalRuntime":
        from local_runtime.runtime import LocalRuntime

        return LocalRuntime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
