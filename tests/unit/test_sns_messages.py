"""event_processing.sns: reading the messages of an SNS event, as both Device Defender functions do, and
publishing a notification, as the telemetry alerts and the remediation notices are."""

from __future__ import annotations

import json

import pytest

from event_processing.fields import MalformedEvent
from event_processing.sns import MAX_MESSAGE_LENGTH, kept_event, publish, sns_messages
from events import load_event


@pytest.mark.parametrize("sample", ["mitigate_audit_findings/non_compliant", "remediate_finding/device_certificate_shared"])
def test_each_record_gives_its_message_id_and_message_text(sample):
    event = load_event(sample)
    [(record, message_id, message)] = sns_messages(event)
    assert record is event["Records"][0]
    assert (message_id, message) == (record["Sns"]["MessageId"], record["Sns"]["Message"])


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({}, "Records must be a non-empty list of SNS records"),
        ([1], "Records must be a non-empty list of SNS records"),
        ({"Records": []}, "Records must be a non-empty list of SNS records"),
        ({"Records": [{"body": "{}"}]}, "Records[].Sns must be an object"),
        ({"Records": [{"Sns": {"Message": ""}}]}, "Records[].Sns.Message must be a non-empty string"),
        ({"Records": [{"Sns": {"Message": 7}}]}, "Records[].Sns.Message must be a non-empty string"),
        ({"Records": [{"Sns": {"Message": "x" * (MAX_MESSAGE_LENGTH + 1)}}]}, "longer than SNS allows"),
    ],
)
def test_an_event_that_is_not_an_sns_event_is_refused_with_the_reason(event, reason):
    with pytest.raises(MalformedEvent) as refused:
        sns_messages(event)
    assert reason in str(refused.value)


def test_a_refused_record_is_kept_as_an_event_of_that_record_alone():
    event = load_event("remediate_finding/malformed")
    [(record, _, _)] = sns_messages(event)
    assert sns_messages(json.loads(kept_event(record))) == sns_messages(event)


def test_a_notification_is_published_as_json_with_its_subject_cut_and_filterable_attributes():
    class Recorder:
        def publish(self, **request):
            self.request = request

    client = Recorder()
    publish(client, "arn:aws:sns:eu-west-1:123456789012:t", "s" * 150, {"a": 1}, {"kind": "soil", "measures": ["x", "y"]})
    assert client.request == {
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:t",
        "Subject": "s" * 100,
        "Message": '{"a": 1}',
        "MessageAttributes": {
            "kind": {"DataType": "String", "StringValue": "soil"},
            "measures": {"DataType": "String.Array", "StringValue": '["x", "y"]'},
        },
    }
