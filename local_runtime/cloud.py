"""The embedded AWS: moto's server on 127.0.0.1, holding the tables, queues and topics the template declares.

Each resource gets the name CloudFormation would give it if the template names it, else its logical id (so
the report can name it by logical id), and is created after the resources it refers to (a queue after its
dead-letter queue). Lambda functions, layers and log groups are not created in moto: they get the names and
ARNs intrinsics resolve to, and the runtime runs or captures them itself. Properties that change nothing on
this machine (encryption at rest, backups, tags...) are listed, not refused; any other property this module
does not know is refused, as it could change behaviour. A `Custom::AWS` resource is created by making its
call when the embedded AWS answers that call as AWS does (custom_resources.py), else it is skipped.

CA certificates are registered in moto, with the auto-registration moto lacks (device_certificates.py); the
provisioning templates, which moto lacks, are kept by the runtime (`provisioning_templates`), for JITP.

SQS gets the dead-letter redrive moto lacks (sqs_redrive.py): the source of a message moved to a dead-letter
queue, and message move tasks; and sends and receives whose cost does not grow with the queue's depth
(sqs_depth.py).

Messages published through iot-data reach moto's server, where IoT Core's own check is added: a reserved
topic is refused as IoT refuses it, so the publishing function sees the error. The messages it accepts are
kept, in order, in `iot_messages`, for the runtime's message broker.

moto keeps one state per process, so there is one embedded AWS per process at a time.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.request
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Callable, Mapping

import boto3
import botocore.session
from moto.core import config as moto_config
from moto.core.exceptions import JsonRESTError
from moto.server import ThreadedMotoServer

from local_runtime import device_certificates, sqs_depth, sqs_redrive
from local_runtime.account import ACCOUNT_ID, CREDENTIALS, REGION
from local_runtime.assembly import FUNCTION, LAYER, Resource, Stack
from local_runtime.custom_resources import CUSTOM_AWS, CallMade, answered, make_call
from local_runtime.device_certificates import ProvisioningTemplate, ProvisioningTemplates
from local_runtime.device_defender import PERFORMED, DeviceDefender, action_arn, install
from local_runtime.errors import LocalRuntimeError, NotEmulated
from local_runtime.firehose import COMPRESSIONS, DEFAULT_BUFFER_MB, DEFAULT_INTERVAL_S, S3Delivery, compile_prefix
from local_runtime.intrinsics import Physical, Resolver, references
from local_runtime.topics import may_publish_to

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
TOPIC = "AWS::SNS::Topic"
SUBSCRIPTION = "AWS::SNS::Subscription"
BUCKET = "AWS::S3::Bucket"
PARAMETER = "AWS::SSM::Parameter"
THING_GROUP = "AWS::IoT::ThingGroup"
IOT_POLICY = "AWS::IoT::Policy"
LOG_GROUP = "AWS::Logs::LogGroup"
TOPIC_RULE = "AWS::IoT::TopicRule"
AUTHORIZER = "AWS::IoT::Authorizer"
DELIVERY_STREAM = "AWS::KinesisFirehose::DeliveryStream"
MITIGATION_ACTION = "AWS::IoT::MitigationAction"
CA_CERTIFICATE = "AWS::IoT::CACertificate"
PROVISIONING_TEMPLATE = "AWS::IoT::ProvisioningTemplate"
CREATED_TYPES = (
    TABLE, QUEUE, TOPIC, SUBSCRIPTION, BUCKET, PARAMETER, THING_GROUP, IOT_POLICY, DELIVERY_STREAM, MITIGATION_ACTION,
    CA_CERTIFICATE,
)  # fmt: skip
# Provisioning templates are kept by the runtime, not created in moto.
NAMED_TYPES = (FUNCTION, LAYER, LOG_GROUP, TOPIC_RULE, AUTHORIZER, PROVISIONING_TEMPLATE)
# Subscriptions whose messages would leave this machine: created, never delivered.
_UNDELIVERED_PROTOCOLS = {"email", "email-json", "http", "https", "sms", "application", "firehose"}

_NO_LOCAL_EFFECT = {
    "PointInTimeRecoverySpecification": "no backups here",
    "SSESpecification": "encryption at rest changes nothing here",
    "SqsManagedSseEnabled": "encryption at rest changes nothing here",
    "KmsMasterKeyId": "encryption at rest changes nothing here",
    "KmsDataKeyReusePeriodSeconds": "encryption at rest changes nothing here",
    "Tags": "tags change nothing here",
    "DeletionProtectionEnabled": "nothing is deleted here",
    "ContributorInsightsSpecification": "no CloudWatch here",
    "TableClass": "storage classes change nothing here",
    "ResourcePolicy": "no IAM here",
    "WarmThroughput": "no throughput limits here",
    "OnDemandThroughput": "no throughput limits here",
    "RedriveAllowPolicy": "no permissions between queues here",
    "TracingConfig": "no X-Ray here",
    "DataProtectionPolicy": "no SNS data protection here",
    "DeliveryStatusLogging": "no CloudWatch here",
    "SignatureVersion": "no message signing here",
    "DisplayName": "display names change nothing here",
    "BucketEncryption": "encryption at rest changes nothing here",
    "PublicAccessBlockConfiguration": "nothing is public here",
    "OwnershipControls": "no ACLs here",
    "LifecycleConfiguration": "lifecycle rules act after days; nothing here lives that long",
    "DeliveryStreamEncryptionConfigurationInput": "encryption at rest changes nothing here",
    "EncryptionConfiguration": "encryption at rest changes nothing here",
    "RoleARN": "no IAM here",
    "CloudWatchLoggingOptions": "no CloudWatch here",
    "ErrorOutputPrefix": "only failed processing or format conversion writes there, and neither is emulated",
    "ServiceToken": "the runtime makes the call itself; the provider function does not run",
    "InstallLatestAwsSdk": "the embedded AWS answers the call, whatever the SDK's version",
    "ServiceTimeout": "the embedded AWS answers at once",
    "Update": "no stack updates here",
    "Delete": "nothing is deleted here",
    "VerificationCertificatePem": "moto does not check the proof of possession",
    "CertificateMode": "the registration mode decides the proof of possession, which moto does not check",
    "RemoveAutoRegistration": "no stack updates here",
    "ProvisioningRoleArn": "no IAM here",
    "Description": "descriptions change nothing here",
    "PreProvisioningHook": "fleet provisioning (its MQTT API) is not emulated, so the hook never runs",
}
_TABLE_PROPERTIES = {
    "TableName", "KeySchema", "AttributeDefinitions", "BillingMode", "ProvisionedThroughput",
    "TimeToLiveSpecification", "GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification",
}  # fmt: skip
_QUEUE_ATTRIBUTES = (
    "DelaySeconds", "VisibilityTimeout", "MessageRetentionPeriod", "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
)  # fmt: skip
_QUEUE_PROPERTIES = {"QueueName", "RedrivePolicy", *_QUEUE_ATTRIBUTES}
_TOPIC_PROPERTIES = {"TopicName", "Subscription"}
_SUBSCRIPTION_PROPERTIES = {
    "TopicArn", "Protocol", "Endpoint", "FilterPolicy", "FilterPolicyScope", "RawMessageDelivery", "Region",
}  # fmt: skip
_BUCKET_PROPERTIES = {"BucketName", "VersioningConfiguration", "ObjectLockEnabled", "ObjectLockConfiguration"}
_PARAMETER_PROPERTIES = {"Name", "Type", "Value", "Description", "Tier", "DataType", "AllowedPattern"}
_BUCKET_NAME_LENGTH = 63
_THING_GROUP_PROPERTIES = {"ThingGroupName", "ThingGroupProperties", "ParentGroupName", "QueryString"}
_POLICY_PROPERTIES = {"PolicyName", "PolicyDocument"}
_CA_CERTIFICATE_PROPERTIES = {"CACertificatePem", "Status", "AutoRegistrationStatus", "RegistrationConfig"}
_REGISTRATION_CONFIG = {"TemplateName": "templateName", "TemplateBody": "templateBody", "RoleArn": "roleArn"}
_PROVISIONING_TEMPLATE_PROPERTIES = {"TemplateName", "TemplateType", "TemplateBody", "Enabled"}
_DELIVERY_STREAM_PROPERTIES = {"DeliveryStreamName", "DeliveryStreamType", "ExtendedS3DestinationConfiguration"}
_S3_DESTINATION_PROPERTIES = {"BucketARN", "Prefix", "CompressionFormat", "BufferingHints"}
_DELIVERY_STREAM_NAME_LENGTH = 64
# CreateDeliveryStream needs a role, which the template's RoleARN names through IAM (not emulated).
_NO_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/local-runtime-no-iam"
# SQS queue names are at most 80 characters; CloudFormation shortens its generated names the same way.
_QUEUE_NAME_LENGTH = 80
_FUNCTION_NAME_LENGTH = 64

_one_per_process = threading.Lock()


@dataclass(frozen=True)
class IgnoredProperty:
    resource: Resource
    name: str
    reason: str


@dataclass(frozen=True)
class LambdaSubscription:
    """An SNS subscription of a Lambda function. moto delivers the topic's messages, with its filter policy
    applied, to a relay queue of the runtime's own; the event sources turn them into Lambda's SNS events."""

    resource: Resource
    topic_arn: str
    subscription_arn: str
    function_arn: str
    relay_queue_url: str


class EmbeddedAws:
    """`with EmbeddedAws(stack) as aws:` starts the server and creates the resources; leaving the block (also
    on an exception or Ctrl-C) stops the server and closes its port."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.physical: dict[str, Physical] = {}
        self.resolver = Resolver(stack, self.physical)
        self.created: list[Resource] = []
        self.ignored: list[IgnoredProperty] = []
        self.lambda_subscriptions: list[LambdaSubscription] = []
        self.delivery_streams: dict[str, S3Delivery] = {}  # by stream name
        self.calls_made: list[CallMade] = []  # by the Custom::AWS resources it created
        self.iot_messages: list[tuple[str, bytes]] = []  # topic and payload of every message iot-data accepted
        self.device_defender = DeviceDefender()  # audit findings and mitigation tasks, which moto lacks
        self.provisioning_templates = ProvisioningTemplates()  # which moto lacks
        self._uninstall_device_certificates: Callable[[], None] | None = None
        self._uninstall_device_defender: Callable[[], None] | None = None
        self._uninstall_sqs_redrive: Callable[[], None] | None = None
        self._uninstall_sqs_depth: Callable[[], None] | None = None
        self.endpoint_url = ""
        self.port = 0
        self._server: ThreadedMotoServer | None = None
        self._clients: dict[str, Any] = {}
        self._holds_process_lock = False
        self._iot_config: Any = None
        self._moto_publish: Callable[..., None] | None = None

    def __enter__(self) -> EmbeddedAws:
        if not _one_per_process.acquire(blocking=False):
            raise LocalRuntimeError(
                "An embedded AWS is already running in this process (moto has one state per process)"
            )
        self._holds_process_lock = True
        try:
            self._start()
            self._create_resources()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop()

    def client(self, service: str) -> Any:
        """A boto3 client of the embedded AWS that cannot reach a real account, whatever the environment holds."""
        if service not in self._clients:
            # The developer's ~/.aws files and AWS_PROFILE must not apply: they could name a profile that does
            # not exist here, or a region other than the one the resources are in. (A session variable is
            # (config file key, environment variables, default, conversion).)
            session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
            session.set_config_variable("config_file", os.devnull)
            session.set_config_variable("credentials_file", os.devnull)
            self._clients[service] = boto3.session.Session(
                botocore_session=session,
                aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=CREDENTIALS["AWS_SESSION_TOKEN"],
                region_name=REGION,
            ).client(service, endpoint_url=self.endpoint_url)
        return self._clients[service]

    def _start(self) -> None:
        # werkzeug logs every request at INFO; the runtime prints what happened itself.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # Port 0: the kernel picks a free port as it binds the server's socket, so no other process can take
        # the port between finding it and using it.
        # Certificate ids as AWS computes them (the SHA-256 of the DER), so that they match IoT's events. moto's
        # server takes this setting only in process (its config API has no iot section); restored on stop.
        self._iot_config = moto_config.default_user_config.get("iot")
        moto_config.default_user_config["iot"] = {"use_valid_cert": True}
        self._check_publishes()
        self._uninstall_device_defender = install(self.device_defender)
        self._uninstall_sqs_redrive = sqs_redrive.install()
        self._uninstall_sqs_depth = sqs_depth.install()
        self._uninstall_device_certificates = device_certificates.install()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, self.port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{self.port}"
        # The state left by an earlier embedded AWS (or moto mock) in this process must not leak in.
        self._reset()

    def _check_publishes(self) -> None:
        """IoT Core's check on a message published through iot-data, added to moto's, which accepts any topic;
        restored on stop."""
        from moto.iotdata.models import IoTDataPlaneBackend  # moto loads its backends lazily: so does this

        moto_publish = self._moto_publish = IoTDataPlaneBackend.publish
        accepted = self.iot_messages

        def publish(backend: IoTDataPlaneBackend, topic: str, payload: bytes) -> None:
            if not may_publish_to(topic):
                raise _Forbidden(f"Forbidden: {topic} is a reserved topic")
            moto_publish(backend, topic, payload)
            accepted.append((topic, payload))

        IoTDataPlaneBackend.publish = publish  # type: ignore[method-assign]

    def _stop(self) -> None:
        try:
            if self._server is not None:
                self._server.stop()  # werkzeug's serve_forever closes the listening socket as it returns
                self._server = None
                moto_config.default_user_config["iot"] = self._iot_config or {"use_valid_cert": False}
        finally:
            if self._moto_publish is not None:
                from moto.iotdata.models import IoTDataPlaneBackend

                IoTDataPlaneBackend.publish = self._moto_publish  # type: ignore[method-assign]
                self._moto_publish = None
            if self._uninstall_device_defender is not None:
                self._uninstall_device_defender()
                self._uninstall_device_defender = None
            if self._uninstall_sqs_redrive is not None:
                self._uninstall_sqs_redrive()
                self._uninstall_sqs_redrive = None
            if self._uninstall_sqs_depth is not None:
                self._uninstall_sqs_depth()
                self._uninstall_sqs_depth = None
            if self._uninstall_device_certificates is not None:
                self._uninstall_device_certificates()
                self._uninstall_device_certificates = None
            if self._holds_process_lock:
                self._holds_process_lock = False
                _one_per_process.release()

    def _reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def _create_resources(self) -> None:
        # A creator returns None for a resource it leaves uncreated.
        creators: Mapping[str, Callable[[Resource], Physical | None]] = {
            TABLE: self._create_table,
            QUEUE: self._create_queue,
            TOPIC: self._create_topic,
            SUBSCRIPTION: self._create_subscription,
            BUCKET: self._create_bucket,
            PARAMETER: self._create_parameter,
            THING_GROUP: self._create_thing_group,
            IOT_POLICY: self._create_policy,
            DELIVERY_STREAM: self._create_delivery_stream,
            MITIGATION_ACTION: self._create_mitigation_action,
            CA_CERTIFICATE: self._register_ca_certificate,
            PROVISIONING_TEMPLATE: self._keep_provisioning_template,
            CUSTOM_AWS: self._make_custom_aws_call,
            FUNCTION: self._name_function,
            TOPIC_RULE: self._name_topic_rule,
            AUTHORIZER: self._name_authorizer,
            LAYER: self._name_layer,
            LOG_GROUP: self._name_log_group,
        }
        for resource in self._in_dependency_order([r for r in self.stack.resources.values() if r.type in creators]):
            physical = creators[resource.type](resource)
            if physical is None:
                continue
            self.physical[resource.logical_id] = physical
            if resource.type in CREATED_TYPES:
                self.created.append(resource)

    def _in_dependency_order(self, resources: list[Resource]) -> list[Resource]:
        """Resources after those they refer to (among `resources`); a cycle is refused."""
        by_id = {resource.logical_id: resource for resource in resources}
        ordered: list[Resource] = []
        done: set[str] = set()
        visiting: set[str] = set()

        def visit(resource: Resource) -> None:
            if resource.logical_id in done:
                return
            if resource.logical_id in visiting:
                raise NotEmulated(f"{resource.label} is part of a reference cycle")
            visiting.add(resource.logical_id)
            needed = references(resource.properties) | set(resource.depends_on)
            for logical_id in sorted(needed & set(by_id)):
                visit(by_id[logical_id])
            done.add(resource.logical_id)
            ordered.append(resource)

        for resource in resources:
            visit(resource)
        return ordered

    def _properties(self, resource: Resource, emulated: set[str], within: str = "") -> dict[str, Any]:
        """The resolved properties this runtime emulates, of the resource or of its property `within`."""
        place = f"{within}." if within else ""
        return {
            name: self.resolver.resolve(value, f"{resource.logical_id}.{place}{name}")
            for name, value in self._emulated(resource, emulated, within).items()
        }

    def _emulated(self, resource: Resource, emulated: set[str], within: str = "") -> dict[str, Any]:
        """The properties this runtime emulates, unresolved; records the ones without local effect, refuses others."""
        place = f"{within}." if within else ""
        properties = resource.properties[within] if within else resource.properties
        unknown = sorted(set(properties) - emulated - set(_NO_LOCAL_EFFECT))
        if unknown:
            names = ", ".join(place + name for name in unknown)
            raise NotEmulated(f"{resource.label}: {resource.type} property {names} is not emulated by the local runtime")
        for name in sorted(set(properties) - emulated):
            self.ignored.append(IgnoredProperty(resource, place + name, _NO_LOCAL_EFFECT[name]))
        return {name: value for name, value in properties.items() if name in emulated}

    def _create_table(self, resource: Resource) -> Physical:
        properties = self._properties(resource, _TABLE_PROPERTIES)
        name = properties.get("TableName", resource.logical_id)
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": properties["KeySchema"],
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "BillingMode": properties.get("BillingMode", "PROVISIONED"),  # CloudFormation's default
        }
        for optional in ("ProvisionedThroughput", "GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if optional in properties:
                request[optional] = properties[optional]
        if "StreamSpecification" in properties:
            request["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
        dynamodb = self.client("dynamodb")
        description = dynamodb.create_table(**request)["TableDescription"]
        time_to_live = properties.get("TimeToLiveSpecification")
        if time_to_live and time_to_live.get("Enabled"):
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=time_to_live)
        attributes = {"Arn": description["TableArn"]}
        if "LatestStreamArn" in description:
            attributes["StreamArn"] = description["LatestStreamArn"]
        return Physical(ref=name, attributes=attributes)

    def _create_queue(self, resource: Resource) -> Physical:
        properties = self._properties(resource, _QUEUE_PROPERTIES)
        name = properties.get("QueueName", resource.logical_id[:_QUEUE_NAME_LENGTH])
        attributes = {key: str(properties[key]) for key in _QUEUE_ATTRIBUTES if key in properties}
        if "RedrivePolicy" in properties:
            attributes["RedrivePolicy"] = json.dumps(properties["RedrivePolicy"])
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return Physical(ref=url, attributes={"Arn": arn, "QueueName": name, "QueueUrl": url})

    def _create_topic(self, resource: Resource) -> Physical:
        properties = self._properties(resource, _TOPIC_PROPERTIES)
        name = properties.get("TopicName", resource.logical_id)
        arn = self.client("sns").create_topic(Name=name)["TopicArn"]
        for index, inline in enumerate(properties.get("Subscription", [])):
            self._subscribe(resource, arn, inline["Protocol"], inline["Endpoint"], {}, index)
        return Physical(ref=arn, attributes={"TopicArn": arn, "TopicName": name})

    def _create_subscription(self, resource: Resource) -> Physical:
        properties = self._properties(resource, _SUBSCRIPTION_PROPERTIES)
        attributes = {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in properties.items()
            if key in ("FilterPolicy", "FilterPolicyScope", "RawMessageDelivery")
        }
        if "RawMessageDelivery" in attributes:
            attributes["RawMessageDelivery"] = str(properties["RawMessageDelivery"]).lower()
        arn = self._subscribe(resource, properties["TopicArn"], properties["Protocol"], properties["Endpoint"], attributes)
        return Physical(ref=arn, attributes={"Arn": arn})

    def _subscribe(
        self, resource: Resource, topic_arn: str, protocol: str, endpoint: str, attributes: dict[str, str], index: int = 0
    ) -> str:
        sns = self.client("sns")
        if protocol == "sqs":
            return sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=endpoint, Attributes=attributes)[
                "SubscriptionArn"
            ]
        if protocol == "lambda":
            if attributes.get("RawMessageDelivery") == "true":
                raise NotEmulated(f"{resource.label}: SNS has no raw message delivery to Lambda")
            # The runtime's own queue, named for the subscription, within SQS's 80 characters: the end of the name
            # is kept, where CDK's logical ids carry the hash that makes them unique.
            relay_name = f"local-runtime-sns-relay-{index}-{resource.logical_id}"[-_QUEUE_NAME_LENGTH:]
            relay = self.client("sqs").create_queue(QueueName=relay_name)
            relay_arn = self.client("sqs").get_queue_attributes(
                QueueUrl=relay["QueueUrl"], AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            arn = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=relay_arn, Attributes=attributes)[
                "SubscriptionArn"
            ]
            self.lambda_subscriptions.append(LambdaSubscription(resource, topic_arn, arn, endpoint, relay["QueueUrl"]))
            return arn
        if protocol in _UNDELIVERED_PROTOCOLS:
            self.ignored.append(
                IgnoredProperty(resource, f"{protocol} subscription", "messages to it would leave this machine")
            )
            return f"{topic_arn}:{resource.logical_id}-{index}"
        raise NotEmulated(f"{resource.label}: SNS subscriptions of protocol {protocol} are not emulated")

    def _create_bucket(self, resource: Resource) -> Physical:
        properties = self._properties(resource, _BUCKET_PROPERTIES)
        default = f"{self.stack.name}-{resource.logical_id}".lower()[:_BUCKET_NAME_LENGTH]
        name = properties.get("BucketName", default)
        s3 = self.client("s3")
        # Object Lock as S3 keeps it: versions under a default retention cannot be deleted or overwritten.
        locked = properties.get("ObjectLockEnabled") in (True, "true")
        s3.create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}, ObjectLockEnabledForBucket=locked
        )
        if "VersioningConfiguration" in properties:
            s3.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": properties["VersioningConfiguration"]["Status"]}
            )
        if "ObjectLockConfiguration" in properties:
            s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=properties["ObjectLockConfiguration"])
        arn = f"arn:aws:s3:::{name}"
        return Physical(
            ref=name,
            attributes={
                "Arn": arn,
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com",
            },
        )

    def _create_parameter(self, resource: Resource) -> Physical:
        properties = self._properties(resource, _PARAMETER_PROPERTIES)
        # CloudFormation's generated names look like CFN-<logical id>-<suffix>.
        name = properties.get("Name", f"CFN-{resource.logical_id}")
        request = {"Name": name, "Type": properties["Type"], "Value": properties["Value"]}
        for optional in ("Description", "Tier", "DataType", "AllowedPattern"):
            if optional in properties:
                request[optional] = properties[optional]
        self.client("ssm").put_parameter(**request)
        return Physical(ref=name, attributes={"Type": properties["Type"], "Value": properties["Value"]})

    def _create_thing_group(self, resource: Resource) -> Physical:
        properties = self._properties(resource, _THING_GROUP_PROPERTIES)
        if "QueryString" in properties:
            raise NotEmulated(f"{resource.label}: dynamic thing groups (QueryString) are not emulated")
        name = properties.get("ThingGroupName", resource.logical_id)
        request: dict[str, Any] = {"thingGroupName": name}
        if "ParentGroupName" in properties:
            request["parentGroupName"] = properties["ParentGroupName"]
        group_properties = properties.get("ThingGroupProperties", {})
        if group_properties:
            request["thingGroupProperties"] = {
                "thingGroupDescription": group_properties.get("ThingGroupDescription", ""),
                "attributePayload": {"attributes": group_properties.get("AttributePayload", {}).get("Attributes", {})},
            }
        created = self.client("iot").create_thing_group(**request)
        return Physical(ref=name, attributes={"Arn": created["thingGroupArn"], "Id": created["thingGroupId"]})

    def _create_mitigation_action(self, resource: Resource) -> Physical:
        # The roles (RoleArn, and EnableIoTLoggingParams' RoleArnForLogging) are left unresolved: IAM is not emulated.
        properties = self._emulated(resource, {"ActionName", "ActionParams", "RoleArn"})
        name = self.resolver.resolve(properties.get("ActionName", resource.logical_id), f"{resource.logical_id}.ActionName")
        params = {
            member: self.resolver.resolve(value, f"{resource.logical_id}.ActionParams.{member}") if member in PERFORMED else value
            for member, value in properties["ActionParams"].items()
        }
        try:
            action = self.device_defender.add_action(name, params)
        except ValueError as error:
            raise NotEmulated(f"{resource.label}: {error}") from None
        return Physical(ref=name, attributes={"MitigationActionArn": action_arn(name), "MitigationActionId": action.action_id})

    def _create_policy(self, resource: Resource) -> Physical:
        properties = self._properties(resource, _POLICY_PROPERTIES)
        name = properties.get("PolicyName", resource.logical_id)
        document = properties["PolicyDocument"]
        created = self.client("iot").create_policy(
            policyName=name, policyDocument=document if isinstance(document, str) else json.dumps(document)
        )
        return Physical(ref=name, attributes={"Arn": created["policyArn"], "Id": name})

    def _register_ca_certificate(self, resource: Resource) -> Physical:
        properties = self._properties(resource, _CA_CERTIFICATE_PROPERTIES)
        request: dict[str, Any] = {
            "caCertificate": properties["CACertificatePem"],
            "setAsActive": properties.get("Status") == "ACTIVE",
            "allowAutoRegistration": properties.get("AutoRegistrationStatus") == "ENABLE",
        }
        if "RegistrationConfig" in properties:
            config = self._properties(resource, set(_REGISTRATION_CONFIG), "RegistrationConfig")
            request["registrationConfig"] = {_REGISTRATION_CONFIG[key]: value for key, value in config.items()}
        registered = self.client("iot").register_ca_certificate(**request)
        return Physical(
            ref=registered["certificateId"],
            attributes={"Arn": registered["certificateArn"], "Id": registered["certificateId"]},
        )

    def _keep_provisioning_template(self, resource: Resource) -> Physical:
        properties = self._properties(resource, _PROVISIONING_TEMPLATE_PROPERTIES)
        name = properties.get("TemplateName", resource.logical_id)
        template = ProvisioningTemplate.parse(
            name,
            properties.get("TemplateType", "FLEET_PROVISIONING"),  # CloudFormation's default
            properties.get("Enabled") in (True, "true"),
            properties["TemplateBody"],
            f"{resource.label}.TemplateBody",
        )
        self.provisioning_templates.add(template)
        return Physical(
            ref=name, attributes={"TemplateArn": f"arn:aws:iot:{REGION}:{ACCOUNT_ID}:provisioningtemplate/{name}"}
        )

    def _create_delivery_stream(self, resource: Resource) -> Physical:
        """A DirectPut stream to a bucket of this stack: created in moto as declared, and delivered by the runtime
        (firehose.py) for the rules' firehose actions."""
        self._emulated(resource, _DELIVERY_STREAM_PROPERTIES)  # its destination is read in parts, below
        within = "ExtendedS3DestinationConfiguration"
        destination = self._properties(resource, _S3_DESTINATION_PROPERTIES, within)
        where = f"{resource.logical_id}.{within}"
        source = resource.properties.get("DeliveryStreamType", "DirectPut")
        if source != "DirectPut":
            raise NotEmulated(f"{resource.label}: delivery streams of type {source} are not emulated (DirectPut is)")
        bucket_arn = destination["BucketARN"]
        buckets = [
            physical.ref
            for logical_id, physical in self.physical.items()
            if self.stack.resources[logical_id].type == BUCKET and physical.attributes["Arn"] == bucket_arn
        ]
        if not buckets:
            raise NotEmulated(f"{resource.label}: it delivers to {bucket_arn}, not a bucket of this stack")
        compression = destination.get("CompressionFormat", "UNCOMPRESSED")
        if compression not in COMPRESSIONS:
            emulated = ", ".join(COMPRESSIONS)
            raise NotEmulated(f"{where}.CompressionFormat: {compression} is not emulated (these are: {emulated})")
        name = self._name(resource, "DeliveryStreamName", resource.logical_id[:_DELIVERY_STREAM_NAME_LENGTH])
        hints = destination.get("BufferingHints", {})
        self.delivery_streams[name] = S3Delivery(
            stream=resource.logical_id,
            name=name,
            bucket=buckets[0],
            prefix=destination.get("Prefix", ""),
            evaluate_prefix=compile_prefix(destination.get("Prefix", ""), f"{where}.Prefix"),
            compression=compression,
            buffer_mb=int(hints.get("SizeInMBs", DEFAULT_BUFFER_MB)),
            interval_s=int(hints.get("IntervalInSeconds", DEFAULT_INTERVAL_S)),
        )
        arn = self.client("firehose").create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType=source,
            ExtendedS3DestinationConfiguration={"RoleARN": _NO_ROLE, **destination},
        )["DeliveryStreamARN"]
        return Physical(ref=name, attributes={"Arn": arn})

    def _make_custom_aws_call(self, resource: Resource) -> Physical | None:
        if not answered(resource.properties.get("Create")):
            return None  # not created, as a resource of a type the runtime does not emulate
        made = make_call(resource, self._properties(resource, {"Create"})["Create"], self.client)
        self.calls_made.append(made)
        return made.physical

    def _name_authorizer(self, resource: Resource) -> Physical:
        name = self._name(resource, "AuthorizerName", resource.logical_id)
        return Physical(ref=name, attributes={"Arn": f"arn:aws:iot:{REGION}:{ACCOUNT_ID}:authorizer/{name}"})

    def _name_topic_rule(self, resource: Resource) -> Physical:
        # CloudFormation generates a name of the logical id and a suffix; rule names allow no hyphen.
        name = self._name(resource, "RuleName", resource.logical_id)
        return Physical(ref=name, attributes={"Arn": f"arn:aws:iot:{REGION}:{ACCOUNT_ID}:rule/{name}"})

    def _name_function(self, resource: Resource) -> Physical:
        name = self._name(resource, "FunctionName", f"{self.stack.name}-{resource.logical_id}"[:_FUNCTION_NAME_LENGTH])
        return Physical(ref=name, attributes={"Arn": function_arn(name)})

    def _name_layer(self, resource: Resource) -> Physical:
        name = self._name(resource, "LayerName", resource.logical_id)
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:{name}:1"
        return Physical(ref=arn, attributes={"LayerVersionArn": arn})

    def _name_log_group(self, resource: Resource) -> Physical:
        name = self._name(resource, "LogGroupName", f"{self.stack.name}-{resource.logical_id}")
        return Physical(ref=name, attributes={"Arn": f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}:*"})

    def _name(self, resource: Resource, property_name: str, default: str) -> str:
        if property_name not in resource.properties:
            return default
        where = f"{resource.logical_id}.{property_name}"
        return self.resolver.resolve_string(resource.properties[property_name], where)


class _Forbidden(JsonRESTError):
    """What IoT Core answers a Publish it does not allow."""

    code = 403

    def __init__(self, message: str) -> None:
        super().__init__("ForbiddenException", message)


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
