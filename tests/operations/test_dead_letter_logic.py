"""What the dead-letter tool makes of a message, on plain values: its kind, its reason, and how (or why not)
it is redriven; and what `show` leaves out."""

from __future__ import annotations

import base64
import json
from typing import Any

from events import EVENTS_DIR
from operations.dead_letters import (
    DeadLetterQueue,
    Function,
    InvokeFunction,
    QueuedMessage,
    Queue,
    Republish,
    Rule,
    SendToQueue,
    SourceQueue,
    SqsAction,
    classify,
    show,
)

ARN = "arn:aws:sqs:eu-west-1:123456789012"
URL = "https://sqs.eu-west-1.amazonaws.com/123456789012"
EVENTS = Queue("EventsQueue", "Presence/Events", f"{URL}/Events", f"{ARN}:Events")
DISCONNECTS = Queue("DisconnectsQueue", "Presence/DelayedDisconnects", f"{URL}/Disconnects", f"{ARN}:Disconnects")
DEAD_LETTERS = Queue("DeadLettersQueue", "Presence/DeadLetters", f"{URL}/DeadLetters", f"{ARN}:DeadLetters")
LAMBDA = "arn:aws:lambda:eu-west-1:123456789012:function"
INGEST = Function("Ingest", "ingest_telemetry", "DeviceBackend-Ingest", f"{LAMBDA}:DeviceBackend-Ingest")
CONNECTED = Rule("presence_connected", "SELECT * FROM '$aws/events/presence/connected/+'", (SqsAction(EVENTS, False),))
ENCODED = Rule("presence_encoded", "select  *  from '$aws/events/presence/+/+'", (SqsAction(EVENTS, True),))
RESHAPED = Rule("reshaped", "SELECT clientId FROM '$aws/events/presence/connected/+'", (SqsAction(EVENTS, False),))
TELEMETRY = Rule("telemetry_environment", "SELECT temperature FROM 'dt/fleet/+/environment'", ())


def presence_queue(*sources: Queue) -> DeadLetterQueue:
    return DeadLetterQueue(DEAD_LETTERS, tuple(SourceQueue(q, 5, "track_presence") for q in sources), (), (), ())


def rule_errors(*rules: Rule) -> DeadLetterQueue:
    queue = Queue("RuleErrors", "Platform/RuleErrors", f"{URL}/RuleErrors", f"{ARN}:RuleErrors")
    return DeadLetterQueue(queue, (), (), (), rules)


def message(body: str, attributes: dict[str, str] | None = None, **system: str) -> QueuedMessage:
    strings = {name: {"DataType": "String", "StringValue": value} for name, value in (attributes or {}).items()}
    return QueuedMessage("m-1", "handle-1", body, strings, system)


def rule_error(rule: str, topic: str, payload: bytes, action: str = "SqsAction", resource: str = EVENTS.url) -> str:
    """The errorAction message AWS documents (local_runtime/rules.py writes the same)."""
    return json.dumps({
        "ruleName": rule,
        "topic": topic,
        "cloudwatchTraceId": "4f9c1b2a-0000-4000-8000-000000000000",
        "clientId": "sensor-1",
        "base64OriginalPayload": base64.b64encode(payload).decode(),
        "failures": [{"failedAction": action, "failedResource": resource, "errorMessage": "Failed to send it"}],
    })  # fmt: skip


def lambda_record(function_arn: str, payload: Any) -> str:
    return json.dumps({
        "version": "1.0",
        "timestamp": "2026-11-24T08:00:00.000Z",
        "requestContext": {
            "requestId": "r-1",
            "functionArn": function_arn,
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "Requested resource not found", "errorType": "ResourceNotFoundException"},
    })  # fmt: skip


def test_a_rule_error_on_a_device_topic_is_published_again_on_its_topic() -> None:
    payload = b'{"ts": 1, "temperature": 21.5}'
    error = rule_error(TELEMETRY.name, "dt/fleet/gw-1/environment", payload, "LambdaAction")
    letter = classify(message(error), rule_errors(TELEMETRY))
    assert (letter.kind, letter.reason) == ("rule-error", "rule telemetry_environment: LambdaAction failed")
    assert letter.steps == (Republish("dt/fleet/gw-1/environment", payload),)
    assert letter.content == {"ts": 1, "temperature": 21.5}


def test_a_rule_error_on_a_reserved_topic_goes_to_the_queue_of_a_select_all_rule_as_its_action_sends_it() -> None:
    payload = b'{"clientId": "sensor-1", "eventType": "connected"}'
    topic = "$aws/events/presence/connected/sensor-1"
    letter = classify(message(rule_error(CONNECTED.name, topic, payload)), rule_errors(CONNECTED))
    assert letter.steps == (SendToQueue(EVENTS, payload.decode(), {}),)
    encoded = classify(message(rule_error(ENCODED.name, topic, payload, resource="Events")), rule_errors(ENCODED))
    assert encoded.steps == (SendToQueue(EVENTS, base64.b64encode(payload).decode(), {}),)


def test_a_rule_error_on_a_reserved_topic_is_only_shown_when_the_rule_reshaped_the_message_or_it_is_not_text() -> None:
    topic = "$aws/events/presence/connected/sensor-1"
    reshaped = classify(message(rule_error(RESHAPED.name, topic, b'{"clientId": "sensor-1"}')), rule_errors(RESHAPED))
    assert reshaped.steps == ()
    assert reshaped.not_redrivable == (
        f"{topic} is a reserved topic, which IoT Core takes no publish on, and the rule's SQL reshapes the message: "
        "what its actions got cannot be rebuilt"
    )
    binary = classify(message(rule_error(CONNECTED.name, topic, b"\xff\xfe")), rule_errors(CONNECTED))
    assert binary.steps == () and "not UTF-8 text" in str(binary.not_redrivable)
    assert binary.content == "<2 bytes, not UTF-8; base64 //4=>"


def test_a_rule_error_of_a_rule_that_does_not_send_its_errors_there_is_only_shown() -> None:
    letter = classify(message(rule_error("someone_elses_rule", "dt/x", b"{}")), rule_errors(TELEMETRY))
    assert letter.steps == ()
    assert letter.not_redrivable == "someone_elses_rule is not a rule of this stack whose errors come here"


def test_lambdas_record_of_a_failed_invocation_invokes_its_function_again_with_the_request_payload() -> None:
    dead_letters = DeadLetterQueue(DEAD_LETTERS, (), (INGEST,), (INGEST,), ())
    payload = {"ts": 1, "temperature": 21.5, "thingName": "gw-1", "kind": "environment"}
    letter = classify(message(lambda_record(f"{INGEST.arn}:$LATEST", payload)), dead_letters)
    assert letter.kind == "lambda-failure" and letter.steps == (InvokeFunction(INGEST, payload),)
    assert letter.reason == (
        "Lambda gave up on ingest_telemetry after 3 attempts (RetriesExhausted): "
        "ResourceNotFoundException: Requested resource not found"
    )
    other = classify(message(lambda_record(f"{LAMBDA}:other", payload)), dead_letters)
    assert other.steps == ()
    assert other.not_redrivable == f"{LAMBDA}:other is not a function of this stack whose failures come here"


def test_a_rejected_event_is_invoked_again_only_as_a_rejection_and_only_for_the_function_that_rejected_it() -> None:
    dead_letters = DeadLetterQueue(DEAD_LETTERS, (), (INGEST,), (INGEST,), ())
    body = '{"ts": 1, "humidity": "48%"}'
    rejection = {"rejectionReason": "humidity must be a number", "rejectedBy": INGEST.function_name}
    letter = classify(message(body, rejection), dead_letters)
    assert (letter.kind, letter.rejected) == ("rejected-event", True)
    assert letter.steps == (InvokeFunction(INGEST, json.loads(body)),)
    assert letter.reason == "ingest_telemetry rejected it as malformed: humidity must be a number"
    stranger = classify(message(body, {"rejectionReason": "bad", "rejectedBy": "other-function"}), dead_letters)
    assert stranger.steps == ()
    assert stranger.not_redrivable == "other-function is not a function of this stack that rejects here"


def test_a_rejected_record_goes_back_to_the_queue_it_came_from_if_that_is_a_source_of_its_dead_letter_queue() -> None:
    rejected = {"rejectionReason": "clientId must be a non-empty string", "sourceMessageId": "s-1"}
    from_disconnects = message("{}", {**rejected, "sourceQueueArn": DISCONNECTS.arn})
    letter = classify(from_disconnects, presence_queue(EVENTS, DISCONNECTS))
    assert (letter.kind, letter.steps) == ("rejected-record", (SendToQueue(DISCONNECTS, "{}", {}),))
    foreign = classify(message("{}", {**rejected, "sourceQueueArn": f"{ARN}:Other"}), presence_queue(EVENTS))
    assert foreign.steps == ()
    assert foreign.not_redrivable == f"it came from {ARN}:Other, not a queue of this dead-letter queue"


def test_a_failed_record_goes_back_to_where_sqs_says_it_came_from_with_its_message_attributes() -> None:
    attributes = {"traceparent": "00-1"}
    moved = message('{"a": 1}', attributes, DeadLetterQueueSourceArn=DISCONNECTS.arn)
    letter = classify(moved, presence_queue(EVENTS, DISCONNECTS))
    assert (letter.kind, letter.moved_by_sqs) == ("failed-record", True)
    assert letter.reason == "its 5 deliveries to track_presence from Presence/DelayedDisconnects failed"
    kept = {"traceparent": {"DataType": "String", "StringValue": "00-1"}}
    assert letter.steps == (SendToQueue(DISCONNECTS, '{"a": 1}', kept),)


def test_a_record_sqs_does_not_place_goes_to_the_only_source_queue_by_sendmessage_and_is_unknown_with_two() -> None:
    only = classify(message('{"a": 1}'), presence_queue(EVENTS))
    assert (only.kind, only.moved_by_sqs) == ("failed-record", False)
    assert only.steps == (SendToQueue(EVENTS, '{"a": 1}', {}),)
    unknown = classify(message('{"a": 1}'), presence_queue(EVENTS, DISCONNECTS))
    assert (unknown.kind, unknown.steps) == ("unknown", ())


def test_show_prints_the_reason_and_content_but_cuts_certificates_short() -> None:
    pem = (EVENTS_DIR / "activate_certificate" / "public-certificates" / "new.pem").read_text()
    body = json.dumps({"certificateId": "c-1", "certificatePem": pem})
    lines = "\n".join(show(classify(message(body, DeadLetterQueueSourceArn=EVENTS.arn), presence_queue(EVENTS))))
    assert "reason: its 5 deliveries to track_presence from Presence/Events failed" in lines
    assert '"certificateId": "c-1"' in lines
    escaped = json.dumps(pem)[1:-1]
    block = escaped[: escaped.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    assert f"{block[:40]}... ({len(block)} characters of PEM not shown)" in lines
    assert pem.splitlines()[2] not in lines
