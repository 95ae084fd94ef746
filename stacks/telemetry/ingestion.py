"""Each kind's rule selects the kind's fields and the message's facts (thing, client, time of receipt) and
invokes `ingest_telemetry`, which validates, enriches, stores, and alerts and commands on a breach."""

from __future__ import annotations

import json

import aws_cdk.aws_iot_actions_alpha as actions
from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sns as sns
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.function_code import function_module
from stacks.platform import Platform
from stacks.platform.checks import acknowledge
from stacks.platform.functions import BackendFunction
from stacks.platform.queues import DeadLetterQueue
from stacks.platform.rules import topic_rule
from stacks.platform.sdk_calls import deployment_call
from stacks.platform.tables import table

_kinds = function_module("ingest_telemetry/kinds.py")
KINDS, telemetry_topic = _kinds.KINDS, _kinds.telemetry_topic
OUTCOMES = ["ReadingsStored", "ThresholdsBreached", "DuplicateReadings", "ReadingsRejected"]
# Lambda retries a failed asynchronous invocation twice; an event it could not run within this age is given
# up too. Both end in the dead-letter queue (the OnFailure destination), with the reading.
MAX_EVENT_AGE = Duration.hours(6)


def kind_sql(application: str, kind: str) -> str:
    fields = ", ".join(["ts", *KINDS[kind].measures])
    return (
        f"SELECT {fields}, topic(3) AS thingName, topic(4) AS kind, clientid() AS clientId, "
        f"timestamp() AS receivedAt FROM '{telemetry_topic(application, '+', kind)}'"
    )


class TelemetryIngestion(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        settings = platform.config.telemetry
        stack = Stack.of(self)
        self.latest = table(self, "Latest", platform=platform, partition_key="thingName", sort_key="kind")
        self.history = table(
            self,
            "History",
            platform=platform,
            partition_key="series",  # <thingName>#<kind>
            sort_key="ts",
            numeric_sort_key=True,
            time_to_live_attribute="expiresAt",
        )
        self.alerts = sns.Topic(self, "Alerts", display_name="IoT device telemetry alerts", enforce_ssl=True)
        acknowledge(
            self.alerts,
            "AwsSolutions-SNS2",
            "Alerts carry readings and registry attributes, no secrets; a KMS key would add cost and a key "
            "policy for every subscriber.",
        )
        self.dead_letters = DeadLetterQueue(
            self,
            "DeadLetters",
            platform=platform,
            purpose="telemetry rejected as invalid or failed after retries",
            delivered_by="ingest_telemetry's rejections and Lambda's OnFailure destination",
        )
        command_prefix = f"cmd/{settings.application}"
        backend_function = BackendFunction(
            self,
            "IngestTelemetry",
            platform=platform,
            package="ingest_telemetry",
            description="Validates, enriches and stores device telemetry; alerts and commands on a breach",
            reserved_concurrency=settings.reserved_concurrency,
            environment={
                "LATEST_TABLE": self.latest.table_name,
                "HISTORY_TABLE": self.history.table_name,
                "ALERTS_TOPIC_ARN": self.alerts.topic_arn,
                "COMMAND_TOPIC_PREFIX": command_prefix,
                "HISTORY_DAYS": str(settings.history_days),
                "ENRICHMENT_CACHE_SECONDS": str(settings.enrichment_cache_seconds),
                "THRESHOLDS": json.dumps(
                    {"default": settings.thresholds, "groups": settings.group_thresholds}, separators=(",", ":")
                ),
                "DEAD_LETTER_QUEUE_URL": self.dead_letters.queue.queue_url,
                # botocore's endpoint variable for iot-data (named after its service id, IoT Data Plane): the account's
                # own data endpoint.
                "AWS_ENDPOINT_URL_IOT_DATA_PLANE": f"https://{self._data_endpoint()}",
            },
        )
        self.function = backend_function.function
        # The destination's grant (sqs:SendMessage) is also what rejections use.
        self.function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.dead_letters.queue),
            retry_attempts=2,
            max_event_age=MAX_EVENT_AGE,
        )
        self.latest.grant(self.function, "dynamodb:UpdateItem")
        self.history.grant(self.function, "dynamodb:UpdateItem")
        self.alerts.grant_publish(self.function)
        base = f"arn:{stack.partition}:iot:{stack.region}:{stack.account}"
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["iot:DescribeThing", "iot:ListThingGroupsForThing"], resources=[f"{base}:thing/*"])
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["iot:Publish"], resources=[f"{base}:topic/{command_prefix}/*/threshold"])
        )
        acknowledge(
            backend_function.role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:thing/*]",
            "Any registered device may publish telemetry: things are created at run time and cannot be named "
            "in advance. Only reads of the registry are allowed.",
        )
        acknowledge(
            backend_function.role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:topic/{command_prefix}/*/threshold]",
            "A threshold command goes to the device whose reading breached: one topic per thing, named at run time.",
        )
        for kind in KINDS:
            topic_rule(
                self,
                f"{kind.capitalize()}Rule",
                platform=platform,
                name=f"telemetry_{kind}",
                sql=kind_sql(settings.application, kind),
                action=actions.LambdaFunctionAction(self.function),
                description=f"{kind} readings on dt/{settings.application}/+/{kind} to ingest_telemetry",
            )
        platform.monitoring.graph_outcomes("Telemetry", "ingest_telemetry", OUTCOMES)

    def _data_endpoint(self) -> str:
        """The account's IoT data endpoint (iot:Data-ATS), looked up at deployment: the function gets it in its
        environment instead of asking for it at every cold start."""
        call = cr.AwsSdkCall(
            service="Iot",
            action="describeEndpoint",
            parameters={"endpointType": "iot:Data-ATS"},
            physical_resource_id=cr.PhysicalResourceId.from_response("endpointAddress"),
        )
        resource = deployment_call(self, "DataEndpoint", call=call, iam_action="iot:DescribeEndpoint")
        return resource.get_response_field("endpointAddress")
