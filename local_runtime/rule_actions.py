"""The topic rule actions the local runtime performs: sqs, lambda, sns, dynamoDBv2, republish and firehose, each
as IoT Core performs it on AWS, failing where AWS fails (so that the rule's errorAction runs with AWS's message).

Each action is read from the template once, when the rules load: an action type or property this module does
not emulate is refused there, naming the rule. The role a rule action names is not checked (there is no IAM
here); a lambda action's function must let iot.amazonaws.com invoke it for the rule (AWS::Lambda::Permission),
as on AWS, where a rule without that permission deploys and then fails every invocation.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from local_runtime.cloud import QUEUE, TABLE, TOPIC, EmbeddedAws
from local_runtime.errors import LocalRuntimeError, NotEmulated
from local_runtime.event_sources import invoke_denied
from local_runtime.functions import LocalFunction, LocalFunctions
from local_runtime.iot_sql import MessageContext, SqlEvaluationError, parse_template
from local_runtime.iot_sql.values import json_text
from local_runtime.topics import is_reserved

# The characters SQS accepts in a message body (moto accepts any, so the check is made here).
_NOT_SQS_TEXT = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SERIALIZER = TypeSerializer()
FIREHOSE_SEPARATORS = ("\n", "\t", "\r\n", ",")  # the record separators IoT accepts
MAX_BATCH_RECORDS = 500  # PutRecordBatch's limit


class ActionFailed(Exception):
    """An action failed as it fails on AWS; the message is the errorMessage AWS puts in the errorAction."""


@dataclass(frozen=True)
class Message:
    """A message as the rules engine received it."""

    topic: str
    payload: bytes
    context: MessageContext


@dataclass(frozen=True)
class Output:
    """What a rule's SELECT made of one message: a JSON value, or the raw bytes of a binary payload."""

    value: Any

    @property
    def body(self) -> bytes:
        if isinstance(self.value, bytes):
            return self.value
        return json_text(self.value).encode()


class Services(Protocol):
    def client(self, service: str) -> Any: ...

    def invoke_async(self, function: LocalFunction, event: Any, source: str) -> None: ...

    def put_records(self, stream: str, records: list[bytes]) -> None: ...


Republished = tuple[str, bytes]  # a topic and a payload for the rules engine


@dataclass(frozen=True)
class SqsAction:
    queue_url: str
    queue: str  # its logical id
    use_base64: bool

    kind = "sqs"
    failed_action = "SqsAction"

    @property
    def target(self) -> str:
        return self.queue

    @property
    def resource(self) -> str:
        return self.queue_url

    def run(self, output: Output, message: Message, services: Services, rule: str) -> Republished | None:
        failed = "Failed to send the message to SQS"
        if self.use_base64:
            body = base64.b64encode(output.body).decode()
        else:
            try:
                body = output.body.decode("utf-8")
            except UnicodeDecodeError:
                raise ActionFailed(f"{failed}: the payload is not UTF-8 text (useBase64 is false)") from None
            if _NOT_SQS_TEXT.search(body):
                raise ActionFailed(f"{failed}: the payload holds characters SQS refuses (useBase64 is false)")
        try:
            services.client("sqs").send_message(QueueUrl=self.queue_url, MessageBody=body)
        except ClientError as error:
            raise ActionFailed(f"{failed}: {error}") from None
        return None


@dataclass(frozen=True)
class LambdaAction:
    function: LocalFunction
    denied: str | None  # why Lambda refuses IoT's invocations for this rule, if it does

    kind = "lambda"
    failed_action = "LambdaAction"

    @property
    def target(self) -> str:
        return self.function.name

    @property
    def resource(self) -> str:
        return self.function.function_arn

    def run(self, output: Output, message: Message, services: Services, rule: str) -> Republished | None:
        if self.denied is not None:
            raise ActionFailed(f"Failed to invoke lambda function. Received Client error from Lambda: 403 ({self.denied})")
        if isinstance(output.value, bytes):
            raise ActionFailed(
                "The lambda action takes JSON only and this payload is binary "
                "(AWS's advice: SELECT encode(*, 'base64') AS data)"
            )
        # IoT invokes the function asynchronously: the invocation is accepted now and runs (and is retried) later.
        # The event is the output's JSON, as the function's runtime parses it.
        services.invoke_async(self.function, json.loads(output.body), f"rule {rule}")
        return None


@dataclass(frozen=True)
class SnsAction:
    topic_arn: str
    topic: str  # its logical id
    message_format: str  # RAW or JSON

    kind = "sns"
    failed_action = "SnsAction"

    @property
    def target(self) -> str:
        return self.topic

    @property
    def resource(self) -> str:
        return self.topic_arn

    def run(self, output: Output, message: Message, services: Services, rule: str) -> Republished | None:
        request: dict[str, Any] = {"TopicArn": self.topic_arn}
        if self.message_format == "JSON":
            request["MessageStructure"] = "json"
        try:
            request["Message"] = output.body.decode("utf-8")
            services.client("sns").publish(**request)
        except UnicodeDecodeError:
            raise ActionFailed("Failed to publish to SNS: the payload is not UTF-8 text") from None
        except ClientError as error:
            raise ActionFailed(f"Failed to publish to SNS: {error}") from None
        return None


@dataclass(frozen=True)
class DynamoDbV2Action:
    table_name: str
    table: str  # its logical id

    kind = "dynamoDBv2"
    failed_action = "DynamoDBv2Action"

    @property
    def target(self) -> str:
        return self.table

    @property
    def resource(self) -> str:
        return self.table_name

    def run(self, output: Output, message: Message, services: Services, rule: str) -> Republished | None:
        failed = "Failed to put the item into DynamoDB"
        if not isinstance(output.value, dict):
            raise ActionFailed(f"{failed}: the dynamoDBv2 action writes a JSON object's keys as columns")
        # Numbers as DynamoDB takes them: Decimal, never float.
        document = json.loads(output.body, parse_float=Decimal)
        item = {name: _SERIALIZER.serialize(value) for name, value in document.items()}
        try:
            services.client("dynamodb").put_item(TableName=self.table_name, Item=item)
        except ClientError as error:
            raise ActionFailed(f"{failed}: {error}") from None
        return None


@dataclass(frozen=True)
class RepublishAction:
    topic_template: str

    kind = "republish"
    failed_action = "RepublishAction"

    @property
    def target(self) -> str:
        return self.topic_template

    @property
    def resource(self) -> str:
        return self.topic_template

    def run(self, output: Output, message: Message, services: Services, rule: str) -> Republished | None:
        try:
            topic = parse_template(self.topic_template).render(message.payload, message.context)
        except SqlEvaluationError as error:
            raise ActionFailed(f"Failed to republish: the topic template cannot be evaluated: {error}") from None
        if not topic or "+" in topic or "#" in topic:
            raise ActionFailed(f"Failed to republish to {topic!r}: not a topic name")
        if is_reserved(topic):
            raise ActionFailed(f"Failed to republish to {topic}: a reserved topic")
        return topic, output.body


@dataclass(frozen=True)
class FirehoseAction:
    stream_name: str
    stream: str  # its logical id
    separator: bytes  # after each record
    batch_mode: bool  # the SELECT makes a JSON array, and each element is a record (PutRecordBatch)

    kind = "firehose"
    failed_action = "FirehoseAction"

    @property
    def target(self) -> str:
        return self.stream

    @property
    def resource(self) -> str:
        return self.stream_name

    def run(self, output: Output, message: Message, services: Services, rule: str) -> Republished | None:
        failed = "Failed to send the record to Firehose"
        if not self.batch_mode:
            services.put_records(self.stream_name, [output.body + self.separator])
            return None
        if not isinstance(output.value, list):
            raise ActionFailed(f"{failed}: batchMode is true and the SELECT output is not a JSON array")
        if not 1 <= len(output.value) <= MAX_BATCH_RECORDS:
            raise ActionFailed(
                f"{failed}: batchMode is true and the array holds {len(output.value)} records "
                f"(PutRecordBatch takes 1 to {MAX_BATCH_RECORDS})"
            )
        services.put_records(self.stream_name, [Output(element).body + self.separator for element in output.value])
        return None


Action = SqsAction | LambdaAction | SnsAction | DynamoDbV2Action | RepublishAction | FirehoseAction
_SETTINGS: dict[str, set[str]] = {
    "Sqs": {"QueueUrl", "RoleArn", "UseBase64"},
    "Lambda": {"FunctionArn"},
    "Sns": {"TargetArn", "RoleArn", "MessageFormat"},
    "DynamoDBv2": {"PutItem", "RoleArn"},
    "Republish": {"Topic", "RoleArn", "Qos"},
    "Firehose": {"DeliveryStreamName", "RoleArn", "Separator", "BatchMode"},
}


def load_action(
    action: dict[str, Any], where: str, label: str, rule_arn: str, cloud: EmbeddedAws, functions: LocalFunctions
) -> Action:
    """The action at `where` in the template (e.g. `Rule.TopicRulePayload.Actions[0]`) of the rule `label`."""
    ((kind, settings),) = action.items()
    if kind not in _SETTINGS:
        emulated = ", ".join(sorted(_SETTINGS))
        raise NotEmulated(f"{label}: the {kind} action is not emulated by this runtime (these are: {emulated})")
    unknown = sorted(set(settings) - _SETTINGS[kind])
    if unknown:
        raise NotEmulated(f"{label}: {kind} action property {', '.join(unknown)} is not emulated")

    def resolve(name: str) -> Any:
        return cloud.resolver.resolve(settings[name], f"{where}.{kind}.{name}")

    if kind == "Sqs":
        queue_url = resolve("QueueUrl")
        queue = _logical_id(cloud, QUEUE, queue_url)
        if queue is None:
            raise NotEmulated(f"{label}: its sqs action sends to {queue_url}, which is not a queue of this stack")
        return SqsAction(queue_url, queue, use_base64=settings.get("UseBase64") in (True, "true"))
    if kind == "Lambda":
        arn = resolve("FunctionArn")
        function = functions.for_arn(arn)
        if function is None:
            raise NotEmulated(f"{label}: its lambda action invokes {arn}, which is not a function this runtime can run")
        return LambdaAction(function, invoke_denied(cloud, function, "iot.amazonaws.com", rule_arn))
    if kind == "Sns":
        topic_arn = resolve("TargetArn")
        topic = _logical_id(cloud, TOPIC, topic_arn)
        if topic is None:
            raise NotEmulated(f"{label}: its sns action publishes to {topic_arn}, which is not a topic of this stack")
        return SnsAction(topic_arn, topic, settings.get("MessageFormat", "RAW"))
    if kind == "DynamoDBv2":
        table_name = cloud.resolver.resolve(settings["PutItem"]["TableName"], f"{where}.DynamoDBv2.PutItem.TableName")
        table = _logical_id(cloud, TABLE, table_name)
        if table is None:
            raise NotEmulated(f"{label}: its dynamoDBv2 action writes to {table_name}, which is not a table of this stack")
        return DynamoDbV2Action(table_name, table)
    if kind == "Firehose":
        name = resolve("DeliveryStreamName")
        if name not in cloud.delivery_streams:
            raise NotEmulated(
                f"{label}: its firehose action puts records into {name}, which is not a delivery stream of this stack"
            )
        separator = settings.get("Separator", "")
        if separator and separator not in FIREHOSE_SEPARATORS:
            accepted = ", ".join(map(repr, FIREHOSE_SEPARATORS))
            raise LocalRuntimeError(f"{where}.Firehose.Separator: IoT refuses {separator!r} (it accepts {accepted})")
        stream = cloud.delivery_streams[name].stream
        return FirehoseAction(name, stream, separator.encode(), batch_mode=settings.get("BatchMode") in (True, "true"))
    topic_template = resolve("Topic")
    parse_template(topic_template)  # refused now if the template uses what the SQL evaluator does not emulate
    return RepublishAction(topic_template)


def _logical_id(cloud: EmbeddedAws, resource_type: str, physical_ref: str) -> str | None:
    for logical_id, physical in cloud.physical.items():
        if physical.ref == physical_ref and cloud.stack.resources[logical_id].type == resource_type:
            return logical_id
    return None
