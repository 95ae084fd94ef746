"""Telemetry as synthesized: a rule per kind selecting its model's fields into ingest_telemetry, each
invocation permitted for its own rule only; the function's failures kept; the raw archive without code."""

from __future__ import annotations

import json

import pytest

from ingest_telemetry.kinds import KINDS
from tests.infrastructure.conftest import find, resources

DATA_ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_IOT_DATA_PLANE"


def _ref(value: dict) -> str:
    return value.get("Ref") or value["Fn::GetAtt"][0]


def _rules(template: dict) -> dict[str, tuple[str, dict]]:
    return {
        rule["Properties"]["RuleName"]: (logical_id, rule["Properties"]["TopicRulePayload"])
        for logical_id, rule in resources(template, "AWS::IoT::TopicRule").items()
        if rule["Properties"]["RuleName"].startswith("iot_backend_telemetry_")
    }


def _grants(template: dict, role_path: str) -> set[tuple[str, str]]:
    role, _ = find(template, "AWS::IAM::Role", role_path)
    grants = set()
    for policy in resources(template, "AWS::IAM::Policy").values():
        if not any(_ref(r) == role for r in policy["Properties"]["Roles"]):
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            grants |= {(a, t if isinstance(t, str) else json.dumps(t)) for a in actions for t in targets}
    return grants


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_has_a_rule_selecting_its_models_fields_and_the_messages_facts(template, kind):
    _, payload = _rules(template)[f"iot_backend_telemetry_{kind}"]
    fields = ", ".join(["ts", *KINDS[kind].measures])
    assert payload["Sql"] == (
        f"SELECT {fields}, topic(3) AS thingName, topic(4) AS kind, clientid() AS clientId, "
        f"timestamp() AS receivedAt FROM 'dt/fleet/+/{kind}'"
    )
    [action] = payload["Actions"]
    function, _ = find(template, "AWS::Lambda::Function", "/Telemetry/IngestTelemetry/")
    assert _ref(action["Lambda"]["FunctionArn"]) == function


def test_each_lambda_action_is_permitted_for_its_own_rule_and_account_only(template):
    function, _ = find(template, "AWS::Lambda::Function", "/Telemetry/IngestTelemetry/")
    permissions = [
        p["Properties"] for p in resources(template, "AWS::Lambda::Permission").values() if _ref(p["Properties"]["FunctionName"]) == function
    ]
    lambda_rules = {logical_id for logical_id, payload in _rules(template).values() if "Lambda" in payload["Actions"][0]}
    assert len(lambda_rules) == len(KINDS)
    assert sorted(_ref(p["SourceArn"]) for p in permissions) == sorted(lambda_rules)
    assert all(
        (p["Principal"], p["Action"], p["SourceAccount"]) == ("iot.amazonaws.com", "lambda:InvokeFunction", {"Ref": "AWS::AccountId"})
        for p in permissions
    )


def test_a_failed_invocation_is_retried_twice_then_kept_in_the_dead_letter_queue(template):
    function, _ = find(template, "AWS::Lambda::Function", "/Telemetry/IngestTelemetry/")
    dead_letters, _ = find(template, "AWS::SQS::Queue", "/Telemetry/DeadLetters/")
    [config] = [c["Properties"] for c in resources(template, "AWS::Lambda::EventInvokeConfig").values() if _ref(c["Properties"]["FunctionName"]) == function]
    assert (config["MaximumRetryAttempts"], config["MaximumEventAgeInSeconds"]) == (2, 6 * 3600)
    assert _ref(config["DestinationConfig"]["OnFailure"]["Destination"]) == dead_letters


def test_the_function_may_only_write_its_tables_read_the_registry_alert_command_and_reject(template):
    grants = _grants(template, "/Telemetry/IngestTelemetry/Role/")
    refs = {
        name: find(template, kind, path)[0]
        for name, kind, path in [
            ("logs", "AWS::Logs::LogGroup", "/Telemetry/IngestTelemetry/"),
            ("latest", "AWS::DynamoDB::Table", "/Telemetry/Latest/"),
            ("history", "AWS::DynamoDB::Table", "/Telemetry/History/"),
            ("alerts", "AWS::SNS::Topic", "/Telemetry/Alerts/"),
            ("dead", "AWS::SQS::Queue", "/Telemetry/DeadLetters/"),
        ]
    }

    def ref(name: str, attribute: str | None = "Arn") -> str:
        return json.dumps({"Fn::GetAtt": [refs[name], attribute]} if attribute else {"Ref": refs[name]})

    iot = '{"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iot:", {"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"}, '
    assert grants == {
        ("logs:CreateLogStream", ref("logs")), ("logs:PutLogEvents", ref("logs")),
        ("dynamodb:UpdateItem", ref("latest")), ("dynamodb:UpdateItem", ref("history")),
        ("sns:Publish", ref("alerts", None)),
        ("sqs:SendMessage", ref("dead")), ("sqs:GetQueueAttributes", ref("dead")), ("sqs:GetQueueUrl", ref("dead")),
        ("iot:DescribeThing", iot + '":thing/*"]]}'), ("iot:ListThingGroupsForThing", iot + '":thing/*"]]}'),
        ("iot:Publish", iot + '":topic/cmd/fleet/*/threshold"]]}'),
    }  # fmt: skip


def test_the_function_publishes_commands_to_the_accounts_own_data_endpoint(template):
    _, function = find(template, "AWS::Lambda::Function", "/Telemetry/IngestTelemetry/")
    endpoint, resource = find(template, "Custom::AWS", "/Telemetry/DataEndpoint/")
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables[DATA_ENDPOINT_VARIABLE] == {"Fn::Join": ["", ["https://", {"Fn::GetAtt": [endpoint, "endpointAddress"]}]]}
    create = resource["Properties"]["Create"]
    text = create if isinstance(create, str) else "".join(p for p in create["Fn::Join"][1] if isinstance(p, str))
    assert '"action":"describeEndpoint"' in text and '"endpointType":"iot:Data-ATS"' in text
    assert variables["COMMAND_TOPIC_PREFIX"] == "cmd/fleet"
    assert json.loads(variables["THRESHOLDS"])["default"]["soil"] == {"moisture": {"min": 20}}


def test_boto3_reads_the_data_endpoint_from_the_variable_the_stack_sets(monkeypatch):
    import boto3

    monkeypatch.setenv(DATA_ENDPOINT_VARIABLE, "https://a1b2c3-ats.iot.eu-west-1.amazonaws.com")
    assert boto3.client("iot-data").meta.endpoint_url == "https://a1b2c3-ats.iot.eu-west-1.amazonaws.com"


def test_the_history_is_kept_per_thing_and_kind_by_time_and_expires(template):
    _, history = find(template, "AWS::DynamoDB::Table", "/Telemetry/History/")
    properties = history["Properties"]
    assert properties["KeySchema"] == [{"AttributeName": "series", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}]
    assert {"AttributeName": "ts", "AttributeType": "N"} in properties["AttributeDefinitions"]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}


def test_the_raw_archive_is_a_rule_with_a_native_action_only(template):
    logical_id, payload = _rules(template)["iot_backend_telemetry_archive"]
    assert payload["Sql"] == (
        "SELECT encode(*, 'base64') AS payload, topic() AS topic, clientid() AS clientId, timestamp() AS receivedAt "
        "FROM 'dt/fleet/+/+'"
    )
    [action] = payload["Actions"]
    stream, properties = find(template, "AWS::KinesisFirehose::DeliveryStream", "/TelemetryArchive/Stream/")
    assert (_ref(action["Firehose"]["DeliveryStreamName"]), action["Firehose"]["Separator"]) == (stream, "\n")
    rule_errors, _ = find(template, "AWS::SQS::Queue", "/Platform/RuleErrors/")
    assert _grants(template, "/TelemetryArchive/Rule/TopicRuleActionRole/") == {
        ("firehose:PutRecord", json.dumps({"Fn::GetAtt": [stream, "Arn"]})),
        ("firehose:PutRecordBatch", json.dumps({"Fn::GetAtt": [stream, "Arn"]})),
        ("sqs:SendMessage", json.dumps({"Fn::GetAtt": [rule_errors, "Arn"]})),
    }
    destination = properties["Properties"]["ExtendedS3DestinationConfiguration"]
    bucket, archive = find(template, "AWS::S3::Bucket", "/TelemetryArchive/Bucket/")
    assert (_ref(destination["BucketARN"]), destination["CompressionFormat"], destination["Prefix"]) == (
        bucket, "GZIP", "raw/!{timestamp:yyyy/MM/dd}/"
    )  # fmt: skip
    assert properties["Properties"]["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}


def test_the_archive_is_versioned_and_every_version_expires_after_archive_days(template):
    _, archive = find(template, "AWS::S3::Bucket", "/TelemetryArchive/Bucket/")
    assert archive["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    assert archive["Properties"]["LifecycleConfiguration"]["Rules"] == [
        {"ExpirationInDays": 365, "NoncurrentVersionExpiration": {"NoncurrentDays": 365}, "Status": "Enabled"}
    ]
    assert not {"ObjectLockEnabled", "ObjectLockConfiguration"} & set(archive["Properties"])  # off unless configured


def test_firehose_may_only_add_objects_under_its_prefixes_and_write_its_log_stream(template):
    bucket, _ = find(template, "AWS::S3::Bucket", "/TelemetryArchive/Bucket/")
    log_group, _ = find(template, "AWS::Logs::LogGroup", "/TelemetryArchive/DeliveryLogs/")
    log_stream, _ = find(template, "AWS::Logs::LogStream", "/TelemetryArchive/DeliveryLogStream/")
    role, resource = find(template, "AWS::IAM::Role", "/TelemetryArchive/DeliveryRole/")
    _, stream = find(template, "AWS::KinesisFirehose::DeliveryStream", "/TelemetryArchive/Stream/")
    assert stream["Properties"]["ExtendedS3DestinationConfiguration"]["RoleARN"] == {"Fn::GetAtt": [role, "Arn"]}
    [trust] = resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert (trust["Principal"], trust["Condition"]) == (
        {"Service": "firehose.amazonaws.com"}, {"StringEquals": {"sts:ExternalId": {"Ref": "AWS::AccountId"}}}
    )  # fmt: skip
    [policy] = resource["Properties"]["Policies"]  # inline: in place before the stream is created
    assert not [p for p in resources(template, "AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]]
    arn = {"Fn::GetAtt": [bucket, "Arn"]}
    assert policy["PolicyDocument"]["Statement"] == [
        {
            "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
            "Effect": "Allow",
            "Resource": arn,
        },
        {
            "Action": ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
            "Effect": "Allow",
            "Resource": [{"Fn::Join": ["", [arn, "/raw/*"]]}, {"Fn::Join": ["", [arn, "/errors/*"]]}],
        },
        {
            "Action": "logs:PutLogEvents",
            "Effect": "Allow",
            "Resource": {"Fn::Join": ["", [
                "arn:", {"Ref": "AWS::Partition"}, ":logs:", {"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"},
                ":log-group:", {"Ref": log_group}, ":log-stream:", {"Ref": log_stream},
            ]]},
        },
    ]  # fmt: skip
    logging = stream["Properties"]["ExtendedS3DestinationConfiguration"]["CloudWatchLoggingOptions"]
    assert logging == {"Enabled": True, "LogGroupName": {"Ref": log_group}, "LogStreamName": {"Ref": log_stream}}
    assert stream["Properties"]["ExtendedS3DestinationConfiguration"]["ErrorOutputPrefix"].startswith("errors/")


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
def test_object_lock_retains_every_new_version_for_the_configured_days(tmp_path, mode):
    from aws_cdk.assertions import Template

    from app import STACK_NAME, build_app

    context = {"deviceBackend.telemetry.archiveObjectLock": {"mode": mode, "days": 30}, "aws:cdk:bundling-stacks": []}
    app = build_app(context=context, outdir=str(tmp_path))
    locked = Template.from_stack(app.node.find_child(STACK_NAME)).to_json()
    _, archive = find(locked, "AWS::S3::Bucket", "/TelemetryArchive/Bucket/")
    assert archive["Properties"]["ObjectLockEnabled"] is True
    assert archive["Properties"]["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": mode, "Days": 30}}
    }  # fmt: skip
    assert archive["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}


def test_the_application_names_the_topics_of_every_telemetry_rule_and_command(tmp_path):
    from aws_cdk.assertions import Template

    from app import STACK_NAME, build_app

    app = build_app(context={"deviceBackend.telemetry.application": "greenhouse", "aws:cdk:bundling-stacks": []}, outdir=str(tmp_path))
    template = Template.from_stack(app.node.find_child(STACK_NAME)).to_json()
    filters = {name: payload["Sql"].rsplit("FROM ", 1)[1] for name, (_, payload) in _rules(template).items()}
    assert filters == {
        "iot_backend_telemetry_archive": "'dt/greenhouse/+/+'",
        **{f"iot_backend_telemetry_{kind}": f"'dt/greenhouse/+/{kind}'" for kind in KINDS},
    }
    _, function = find(template, "AWS::Lambda::Function", "/Telemetry/IngestTelemetry/")
    assert function["Properties"]["Environment"]["Variables"]["COMMAND_TOPIC_PREFIX"] == "cmd/greenhouse"


def test_a_flood_of_readings_can_be_capped_so_it_cannot_take_the_accounts_concurrency(template, tmp_path):
    from aws_cdk.assertions import Template

    from app import STACK_NAME, build_app

    _, uncapped = find(template, "AWS::Lambda::Function", "/Telemetry/IngestTelemetry/")
    assert "ReservedConcurrentExecutions" not in uncapped["Properties"]  # the default: an account may have only 10
    app = build_app(context={"deviceBackend.telemetry.reservedConcurrency": 20, "aws:cdk:bundling-stacks": []}, outdir=str(tmp_path))
    capped = Template.from_stack(app.node.find_child(STACK_NAME)).to_json()
    _, function = find(capped, "AWS::Lambda::Function", "/Telemetry/IngestTelemetry/")
    assert function["Properties"]["ReservedConcurrentExecutions"] == 20
