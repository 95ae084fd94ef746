"""Text for people: what happened (activities, with the functions' logs summarised), the tables, the queues."""

from __future__ import annotations

import json
import platform
import re
from collections import Counter
from decimal import Decimal
from typing import Any, Iterable, Mapping

import botocore.session
from boto3.dynamodb.types import TypeDeserializer
from botocore.utils import CLIENT_NAME_TO_HYPHENIZED_SERVICE_ID_OVERRIDES

from local_runtime.activity import (
    Activity,
    AsyncInvoked,
    BatchDelivered,
    MitigationActionExecuted,
    ObjectDelivered,
    Published,
    RuleFired,
)
from local_runtime.cloud import (
    BUCKET, CA_CERTIFICATE, DELIVERY_STREAM, IOT_POLICY, MITIGATION_ACTION, PARAMETER, QUEUE, SUBSCRIPTION, TABLE,
    THING_GROUP, TOPIC,
)  # fmt: skip
from local_runtime.event_sources import dead_letter_sources, peek_messages, queue_state
from local_runtime.functions import SERVICE_ENDPOINT_PREFIX, Invocation
from local_runtime.iot_sql.values import json_text
from local_runtime.runtime import LocalRuntime

MAX_MESSAGES_SHOWN = 20
_OPAQUE_ID = re.compile(r"[0-9a-fA-F-]{24,}")
_TYPE_NAMES = {
    TABLE: ("DynamoDB table", "DynamoDB tables"),
    QUEUE: ("SQS queue", "SQS queues"),
    TOPIC: ("SNS topic", "SNS topics"),
    SUBSCRIPTION: ("SNS subscription", "SNS subscriptions"),
    BUCKET: ("S3 bucket", "S3 buckets"),
    PARAMETER: ("SSM parameter", "SSM parameters"),
    THING_GROUP: ("thing group", "thing groups"),
    IOT_POLICY: ("IoT policy", "IoT policies"),
    DELIVERY_STREAM: ("Firehose delivery stream", "Firehose delivery streams"),
    MITIGATION_ACTION: ("Device Defender mitigation action", "Device Defender mitigation actions"),
    CA_CERTIFICATE: ("CA certificate", "CA certificates"),
}
# Keys every Powertools log line carries: the summary shows the message and the keys particular to it.
_COMMON_LOG_KEYS = {
    "level", "location", "message", "timestamp", "service", "cold_start", "function_name", "function_memory_size",
    "function_arn", "function_request_id", "xray_trace_id", "sampling_rate", "exception", "exception_name",
    "stack_trace",
}  # fmt: skip
_deserialize = TypeDeserializer().deserialize


def describe_activity(activity: Activity) -> list[str]:
    if isinstance(activity, RuleFired):
        return _rule_lines(activity)
    if isinstance(activity, BatchDelivered):
        return _batch_lines(activity)
    if isinstance(activity, Published):
        return [f"{activity.function} published to {activity.topic}: {_output(_payload_value(activity.payload))}"]
    if isinstance(activity, ObjectDelivered):
        records = f"{activity.records} record{'s' * (activity.records != 1)}"
        return [f"firehose {activity.stream} delivered {records} to s3://{activity.bucket}/{activity.key}"]
    if isinstance(activity, MitigationActionExecuted):
        reason = f": {activity.reason}" if activity.reason else ""
        return [
            f"mitigation task {activity.task_id}: {activity.action} ({activity.action_type}) on finding "
            f"{activity.finding_id} {activity.status}{reason}"
        ]
    return _async_lines(activity)


def _rule_lines(fired: RuleFired) -> list[str]:
    if fired.rule_not_found:
        return [f"Basic Ingest to {fired.topic}: RuleNotFound, no enabled rule {fired.rule}; the message is dropped"]
    if fired.sql_error is not None:
        return [f"rule {fired.rule} on {fired.topic}: SQL FAILED, no action ran: {fired.sql_error}"]
    if fired.where_false:
        return [f"rule {fired.rule} on {fired.topic}: WHERE not met, no action ran"]
    lines = [f"rule {fired.rule} on {fired.topic} selected {_output(fired.output)}"]
    for outcome in fired.actions:
        result = f"FAILED: {outcome.error}" if outcome.error else "sent"
        lines.append(f"  -> {outcome.action} {outcome.target}: {result}")
    if fired.error_action is not None:
        error = fired.error_action.error
        result = f"FAILED, the message is lost: {error}" if error else "sent the error message"
        lines.append(f"  errorAction -> {fired.error_action.action} {fired.error_action.target}: {result}")
    return lines


def _payload_value(payload: bytes) -> Any:
    """A payload as the rules see it: its JSON value, or its bytes."""
    try:
        return json.loads(payload)
    except ValueError:
        return payload


def _output(value: Any, limit: int = 100) -> str:
    if isinstance(value, bytes):
        return f"<binary, {len(value)} bytes>"
    text = json_text(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _batch_lines(batch: BatchDelivered) -> list[str]:
    records = f"{batch.records} record{'s' * (batch.records != 1)}"
    head = f"{batch.function} <- {batch.queue}: {records}, {_settlement(batch)}, {_timing(batch.invocation)}"
    return [head, *("    " + line for line in summarise_logs(batch.invocation.logs))]


def _settlement(batch: BatchDelivered) -> str:
    if batch.whole_batch_failed:
        return f"all records left in the queue: {batch.whole_batch_failed}"
    if batch.left_in_queue:
        return f"{len(batch.left_in_queue)} reported failed (left in the queue)"
    return "all done"


def _async_lines(invoked: AsyncInvoked) -> list[str]:
    invocation = invoked.invocation
    outcome = "ok"
    if invocation.error:
        then = "Lambda retries it" if invoked.retry_pending else "no retry left"
        outcome = f"FAILED ({invocation.error.type}), {then}"
    if invoked.sent_to:
        outcome += f", sent to its {invoked.sent_to}"
    head = (
        f"{invocation.function} (asynchronous, from {invoked.source}, attempt {invoked.attempt}): "
        f"{outcome}, {_timing(invocation)}"
    )
    return [head, *("    " + line for line in summarise_logs(invocation.logs))]


def _timing(invocation: Invocation) -> str:
    cold = f" after a {invocation.init_ms:.0f} ms cold start" if invocation.init_ms is not None else ""
    return f"{invocation.duration_ms:.0f} ms{cold}"


def summarise_logs(lines: Iterable[str]) -> list[str]:
    """One line per log record: JSON logs as `LEVEL message key=value...`, EMF metrics added up in one line,
    anything else (tracebacks, print) as written."""
    summary: list[str] = []
    metrics: dict[str, float] = {}
    for line in lines:
        record = _json_object(line)
        if record is None:
            summary.append(line)
        elif "_aws" in record:
            for definition in record["_aws"].get("CloudWatchMetrics", [{}])[0].get("Metrics", []):
                name, value = definition["Name"], record.get(definition["Name"], 0)
                metrics[name] = metrics.get(name, 0) + sum(value if isinstance(value, list) else [value])
        else:
            summary.append(_log_record(record))
    if metrics:
        summary.append("metrics: " + " ".join(f"{name}={value:g}" for name, value in sorted(metrics.items())))
    return summary


def _json_object(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _log_record(record: Mapping[str, Any]) -> str:
    fields = " ".join(f"{key}={_cell(value)}" for key, value in record.items() if key not in _COMMON_LOG_KEYS)
    text = f"{record.get('level', '')} {record.get('message', '')}".strip()
    if "exception_name" in record:
        last_line = str(record.get("exception", "")).strip().splitlines()[-1:] or [""]
        text += f" [{record['exception_name']}: {last_line[0]}]"
    return f"{text}  {fields}" if fields else text


def _botocore_endpoint_variables() -> set[str]:
    """The service-specific endpoint variables botocore reads, one per client: iot-data's is
    AWS_ENDPOINT_URL_IOT_DATA_PLANE, after its service id."""
    clients = botocore.session.Session().get_available_services()
    service_ids = (CLIENT_NAME_TO_HYPHENIZED_SERVICE_ID_OVERRIDES.get(client, client) for client in clients)
    return {SERVICE_ENDPOINT_PREFIX + service_id.replace("-", "_").upper() for service_id in service_ids}


def tables_report(runtime: LocalRuntime) -> str:
    blocks = []
    dynamodb = runtime.cloud.client("dynamodb")
    for resource in runtime.cloud.created:
        if resource.type != TABLE:
            continue
        name = runtime.cloud.physical[resource.logical_id].ref
        keys = [key["AttributeName"] for key in resource.properties["KeySchema"]]
        items = [
            {attribute: _deserialize(value) for attribute, value in item.items()}
            for page in dynamodb.get_paginator("scan").paginate(TableName=name)
            for item in page["Items"]
        ]
        items.sort(key=lambda item: tuple(str(item.get(key, "")) for key in keys))
        title = f"Table {resource.logical_id}" + (f" ({resource.cdk_path})" if resource.cdk_path else "")
        blocks.append(f"{title}: {len(items)} item{'s' * (len(items) != 1)}\n{text_table(items, keys)}")
    return "\n\n".join(blocks)


def text_table(items: list[Mapping[str, Any]], keys: list[str]) -> str:
    if not items:
        return "  (empty)"
    columns = keys + sorted({attribute for item in items for attribute in item} - set(keys))
    cells = [[_cell(item[column]) if column in item else "" for column in columns] for item in items]
    widths = [max(len(column), *(len(row[index]) for row in cells)) for index, column in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  " + " | ".join(value.ljust(width) for value, width in zip(values, widths)).rstrip()

    return "\n".join([line(columns), "  " + "-+-".join("-" * width for width in widths), *(line(row) for row in cells)])


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Decimal):
        text = str(int(value)) if value == value.to_integral_value() else str(value)
    elif isinstance(value, (set, frozenset)):
        text = "{" + ", ".join(sorted(_cell(member) for member in value)) + "}"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{key}={_cell(member)}" for key, member in sorted(value.items())) + "}"
    elif isinstance(value, list):
        text = "[" + ", ".join(_cell(member) for member in value) + "]"
    else:
        text = str(value)
    # Long opaque identifiers (principals, session ids, UUIDs) are cut in the middle: their ends tell them
    # apart. Text people read (topics, reasons) is shown whole.
    return f"{text[:8]}…{text[-6:]}" if _OPAQUE_ID.fullmatch(text) else text


def queues_report(runtime: LocalRuntime) -> str:
    """Every queue's depth; the messages of the queues that no function consumes and that have no dead-letter
    queue themselves (dead letters, rule errors)."""
    sqs = runtime.cloud.client("sqs")
    consumers = {mapping.queue: mapping.function.name for mapping in runtime.event_sources.mappings}
    redrive_sources = dead_letter_sources(runtime.cloud)
    lines = ["Queues: messages visible / in flight / delayed"]
    for resource in runtime.cloud.created:
        if resource.type != QUEUE:
            continue
        url = runtime.cloud.physical[resource.logical_id].ref
        state = queue_state(sqs, url)
        if resource.logical_id in consumers:
            role = f"consumed by {consumers[resource.logical_id]}"
        elif resource.logical_id in redrive_sources:
            role = f"dead-letter queue of {', '.join(redrive_sources[resource.logical_id])}"
        else:
            role = "no consumer"
        lines.append(f"  {resource.logical_id:<42} {state.visible} / {state.in_flight} / {state.delayed}   {role}")
        # Peeking receives the messages: not where a receive counts toward moving them to a dead-letter queue.
        if resource.logical_id not in consumers and "RedrivePolicy" not in resource.properties and state.visible:
            lines += [f"      {line}" for line in _peek(sqs, url)]
    return "\n".join(lines)


def _peek(sqs: Any, url: str) -> list[str]:
    lines = []
    for number, message in enumerate(peek_messages(sqs, url, MAX_MESSAGES_SHOWN), 1):
        lines.append(f"message {number}: {message['Body']}")
        for name, value in sorted(message.get("MessageAttributes", {}).items()):
            lines.append(f"    {name}: {value.get('StringValue', value.get('BinaryValue'))}")
    return lines


def startup_summary(runtime: LocalRuntime, *, with_event_flow: bool) -> str:
    """What the runtime made of the stack: what it created, runs, ignores and does not emulate."""
    cloud = runtime.cloud
    created = Counter(resource.type for resource in cloud.created)
    lines = [
        f"Local runtime: stack {runtime.stack.name} from {runtime.stack.template_path.parent}",
        f"  embedded AWS (moto) at {cloud.endpoint_url}: "
        + ", ".join(f"{count} {_TYPE_NAMES[kind][count != 1]}" for kind, count in sorted(created.items())),
    ]
    runnable = [spec.name for spec in runtime.function_specs if not spec.not_runnable]
    python = platform.python_version()
    lines.append(f"  functions (each in its own worker process, on Python {python}): {', '.join(runnable)}")
    for spec in runtime.function_specs:
        if spec.not_runnable:
            lines.append(f"    not runnable: {spec.logical_id}: {spec.not_runnable}")
    native = sorted({build for builds in runtime.functions.native_builds.values() for build in builds})
    if native:
        lines.append(f"    compiled layer packages run as this machine's build of the same version: {', '.join(native)}")
    for spec in runtime.function_specs:
        variables = spec.resource.properties.get("Environment", {}).get("Variables", {})
        endpoints = sorted(name for name in variables if name.startswith(SERVICE_ENDPOINT_PREFIX))
        if endpoints and not spec.not_runnable:
            line = f"    {spec.name}: {', '.join(endpoints)} set to the embedded AWS, not the template's value"
            unread = sorted(set(endpoints) - _botocore_endpoint_variables())
            if unread:
                line += f"; no boto3 client reads {', '.join(unread)} (botocore names them after the service id)"
            lines.append(line)
    for made in cloud.calls_made:
        attributes = ", ".join(sorted(made.physical.attributes))
        lines.append(f"  {made.resource.logical_id}: its Custom::AWS call {made.call} made here ({attributes})")
    for stream in cloud.delivery_streams.values():
        lines.append(
            f"  firehose {stream.stream} -> s3://{stream.bucket}/{stream.prefix} ({stream.compression}; "
            f"one object per {stream.buffer_mb} MiB, {stream.interval_s} s or drain); a function's own PutRecord "
            "is delivered by moto: one uncompressed object per call, under the prefix as written + yyyy/MM/dd/HH/"
        )
    if with_event_flow:
        for mapping in runtime.event_sources.mappings:
            settings = f"batches of {mapping.batch_size}"
            if mapping.report_batch_item_failures:
                settings += ", ReportBatchItemFailures"
            if mapping.maximum_concurrency:
                settings += f", MaximumConcurrency {mapping.maximum_concurrency} (here one batch at a time)"
            state = "" if mapping.enabled else " (disabled)"
            lines.append(f"  SQS {mapping.queue} -> {mapping.function.name}{state}: {settings}")
        for subscription in runtime.event_sources.sns_subscriptions:
            topic = subscription.subscription.topic_arn.rsplit(":", 1)[-1]
            lines.append(f"  SNS {topic} -> {subscription.function.name} (asynchronous)")
        for rule in runtime.start_event_flow().rules:
            targets = ", ".join(f"{action.kind} {action.target}" for action in rule.actions)
            state = " (disabled)" if rule.disabled else ""
            error = f"; errorAction {rule.error_action.kind} {rule.error_action.target}" if rule.error_action else ""
            lines.append(f"  rule {rule.name}{state}: {rule.sql}\n      -> {targets}{error}")
    ignored = Counter((item.name, item.reason) for item in runtime.ignored_properties)
    if ignored:
        listing = "; ".join(f"{name} ({reason}) x{count}" for (name, reason), count in sorted(ignored.items()))
        lines.append(f"  without local effect: {listing}")
    not_emulated = runtime.not_emulated()
    if not_emulated:
        listing = ", ".join(f"{count} {kind}" for kind, count in sorted(not_emulated.items()))
        lines.append(f"  not emulated (skipped): {listing}")
    return "\n".join(lines)

