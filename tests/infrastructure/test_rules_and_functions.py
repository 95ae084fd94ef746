"""Every rule, queue, function and permission claim, asserted on the synthesized template."""

from __future__ import annotations

import json
import re

from tests.infrastructure.conftest import cdk_path, find, resources

RULE_NAME = re.compile(r"^[a-zA-Z0-9_]+$")


def _ref(value: dict) -> str:
    return value.get("Ref") or value["Fn::GetAtt"][0]


def _rule(template: dict, name: str) -> dict:
    (rule,) = [r for r in resources(template, "AWS::IoT::TopicRule").values() if r["Properties"]["RuleName"] == name]
    return rule["Properties"]["TopicRulePayload"]


def _queue(template: dict, path_part: str) -> tuple[str, dict]:
    return find(template, "AWS::SQS::Queue", path_part)


def test_every_rule_uses_sql_2016_03_23_a_valid_name_and_an_error_action_to_the_rule_error_queue(template):
    rule_errors, _ = _queue(template, "/Platform/RuleErrors/")
    rules = resources(template, "AWS::IoT::TopicRule")
    assert len(rules) == 11
    for rule in rules.values():
        properties = rule["Properties"]
        assert RULE_NAME.match(properties["RuleName"])
        payload = properties["TopicRulePayload"]
        assert payload["AwsIotSqlVersion"] == "2016-03-23"
        assert _ref(payload["ErrorAction"]["Sqs"]["QueueUrl"]) == rule_errors


def test_presence_rules_send_connects_and_subscriptions_to_the_events_queue_and_disconnects_to_the_delayed_one(template):
    events, _ = _queue(template, "/Presence/Events/")
    delayed, _ = _queue(template, "/Presence/DelayedDisconnects/")
    expected = {
        "iot_backend_presence_connected": ("SELECT * FROM '$aws/events/presence/connected/+'", events),
        "iot_backend_presence_disconnected": ("SELECT * FROM '$aws/events/presence/disconnected/+'", delayed),
        "iot_backend_presence_subscriptions": ("SELECT * FROM '$aws/events/subscriptions/+/+'", events),
    }
    for name, (sql, queue) in expected.items():
        payload = _rule(template, name)
        assert payload["Sql"] == sql
        (action,) = payload["Actions"]
        assert _ref(action["Sqs"]["QueueUrl"]) == queue and not action["Sqs"].get("UseBase64")


def test_registry_rules_cover_thing_group_and_membership_events(template):
    events, _ = _queue(template, "/Registry/Events/")
    topics = {
        "iot_backend_registry_things": "$aws/events/thing/+/+",
        "iot_backend_registry_thing_groups": "$aws/events/thingGroup/+/+",
        "iot_backend_registry_group_memberships": "$aws/events/thingGroupMembership/thingGroup/+/thing/+/+",
    }
    for name, topic_filter in topics.items():
        payload = _rule(template, name)
        assert payload["Sql"] == f"SELECT * FROM '{topic_filter}'"
        assert _ref(payload["Actions"][0]["Sqs"]["QueueUrl"]) == events


def test_disconnects_wait_five_seconds_before_delivery_and_connects_do_not(template):
    assert _queue(template, "/Presence/DelayedDisconnects/")[1]["Properties"]["DelaySeconds"] == 5
    assert _queue(template, "/Presence/Events/")[1]["Properties"].get("DelaySeconds", 0) == 0


def test_work_queues_move_a_message_to_their_dead_letter_queue_after_five_receives(template):
    for work, dead in [
        ("/Presence/Events/", "/Presence/DeadLetters/"),
        ("/Presence/DelayedDisconnects/", "/Presence/DeadLetters/"),
        ("/Registry/Events/", "/Registry/DeadLetters/"),
    ]:
        properties = _queue(template, work)[1]["Properties"]
        redrive = properties["RedrivePolicy"]
        assert (_ref(redrive["deadLetterTargetArn"]), redrive["maxReceiveCount"]) == (_queue(template, dead)[0], 5)
        assert properties["VisibilityTimeout"] == 180  # six times the 30 s function timeout


def test_every_queue_is_encrypted_and_refuses_plain_http(template):
    queues = resources(template, "AWS::SQS::Queue")
    assert all(queue["Properties"]["SqsManagedSseEnabled"] for queue in queues.values())
    policies = resources(template, "AWS::SQS::QueuePolicy").values()
    protected = {
        _ref(queue)
        for policy in policies
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for queue in policy["Properties"]["Queues"]
    }
    assert protected == set(queues)


def test_every_dead_letter_queue_alarms_on_its_first_message(template):
    alarmed = {
        _ref(dimension["Value"])
        for alarm in resources(template, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and alarm["Properties"]["Threshold"] == 1
        for dimension in alarm["Properties"]["Dimensions"]
    }
    dead_letters = (
        "/RuleErrors/", "/Presence/DeadLetters/", "/Registry/DeadLetters/", "/Activation/DeadLetters/", "/Telemetry/DeadLetters/",
        "/Defender/MitigationDeadLetters/", "/Defender/RemediationDeadLetters/",
    )  # fmt: skip
    assert alarmed == {_queue(template, path)[0] for path in dead_letters}


def test_every_rule_alarms_when_it_loses_a_message(template):
    rule_names = {rule["Properties"]["RuleName"] for rule in resources(template, "AWS::IoT::TopicRule").values()}
    alarmed = {
        alarm["Properties"]["Dimensions"][0]["Value"]
        for alarm in resources(template, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"]["MetricName"] == "ErrorActionFailure"
    }
    assert alarmed == rule_names


def test_consumers_take_sqs_batches_report_partial_failures_and_have_bounded_concurrency(template):
    mappings = resources(template, "AWS::Lambda::EventSourceMapping").values()
    assert len(mappings) == 4
    for mapping in mappings:
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    settings = {
        _ref(m["Properties"]["EventSourceArn"]): (m["Properties"]["BatchSize"], m["Properties"]["ScalingConfig"]["MaximumConcurrency"])
        for m in mappings
    }
    assert settings == {
        _queue(template, "/Presence/Events/")[0]: (10, 10),
        _queue(template, "/Presence/DelayedDisconnects/")[0]: (10, 10),
        _queue(template, "/Registry/Events/")[0]: (10, 2),
        # IoT's UpdateCertificate quota is about 10 calls a second: two activations at a time, 5 devices each.
        _queue(template, "/Activation/Registrations/")[0]: (5, 2),
    }


def test_functions_run_python_3_13_on_arm64_with_the_dependency_layer(template):
    layer, _ = find(template, "AWS::Lambda::LayerVersion", "/Platform/Dependencies")
    ours = {name: f for name, f in resources(template, "AWS::Lambda::Function").items() if "/TrackP" in cdk_path(f) or "/TrackI" in cdk_path(f)}
    assert len(ours) == 2
    for function in ours.values():
        properties = function["Properties"]
        assert (properties["Runtime"], properties["Architectures"]) == ("python3.13", ["arm64"])
        assert [_ref(layer_ref) for layer_ref in properties["Layers"]] == [layer]
        assert properties["LoggingConfig"]["LogGroup"]


def _statements(template: dict, role_path: str) -> list[dict]:
    role, _ = find(template, "AWS::IAM::Role", role_path)
    assert "ManagedPolicyArns" not in template["Resources"][role]["Properties"]
    return [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if any(_ref(r) == role for r in policy["Properties"]["Roles"])
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _grants(statements: list[dict]) -> set[tuple[str, str]]:
    grants = set()
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        grants |= {(action, _ref(target)) for action in actions for target in targets}
    return grants


CONSUME = {"sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}


def test_presence_function_may_only_update_its_tables_reject_to_its_dlq_consume_its_queues_and_log(template):
    logs, _ = find(template, "AWS::Logs::LogGroup", "/Presence/TrackPresence/")
    tables = [find(template, "AWS::DynamoDB::Table", f"/Presence/{name}/")[0] for name in ("Connectivity", "Subscriptions")]
    queues = [_queue(template, path)[0] for path in ("/Presence/Events/", "/Presence/DelayedDisconnects/")]
    assert _grants(_statements(template, "/Presence/TrackPresence/Role/")) == (
        {("logs:CreateLogStream", logs), ("logs:PutLogEvents", logs)}
        | {("dynamodb:UpdateItem", table) for table in tables}
        | {("sqs:SendMessage", _queue(template, "/Presence/DeadLetters/")[0])}
        | {(action, queue) for action in CONSUME for queue in queues}
    )


def test_inventory_function_may_only_update_query_and_read_its_table_reject_to_its_dlq_consume_its_queue_and_log(template):
    logs, _ = find(template, "AWS::Logs::LogGroup", "/Registry/TrackInventory/")
    inventory = find(template, "AWS::DynamoDB::Table", "/Registry/Inventory/")[0]
    assert _grants(_statements(template, "/Registry/TrackInventory/Role/")) == (
        {("logs:CreateLogStream", logs), ("logs:PutLogEvents", logs)}
        | {(action, inventory) for action in ("dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:GetItem")}
        | {("sqs:SendMessage", _queue(template, "/Registry/DeadLetters/")[0])}
        | {(action, _queue(template, "/Registry/Events/")[0]) for action in CONSUME}
    )


def test_each_sqs_rule_role_may_only_send_to_its_queue_and_the_rule_error_queue(template):
    rule_errors = _queue(template, "/Platform/RuleErrors/")[0]
    for rule in resources(template, "AWS::IoT::TopicRule").values():
        payload = rule["Properties"]["TopicRulePayload"]
        if "Sqs" not in payload["Actions"][0]:
            continue
        role_path = cdk_path(rule).rsplit("/", 1)[0] + "/TopicRuleActionRole/"
        target = _ref(payload["Actions"][0]["Sqs"]["QueueUrl"])
        assert _grants(_statements(template, role_path)) == {("sqs:SendMessage", rule_errors), ("sqs:SendMessage", target)}


def test_functions_get_their_tables_and_dead_letter_queue_from_the_environment(template):
    _, presence = find(template, "AWS::Lambda::Function", "/Presence/TrackPresence/")
    variables = presence["Properties"]["Environment"]["Variables"]
    assert _ref(variables["CONNECTIVITY_TABLE"]) == find(template, "AWS::DynamoDB::Table", "/Presence/Connectivity/")[0]
    assert _ref(variables["SUBSCRIPTIONS_TABLE"]) == find(template, "AWS::DynamoDB::Table", "/Presence/Subscriptions/")[0]
    assert _ref(variables["DEAD_LETTER_QUEUE_URL"]) == _queue(template, "/Presence/DeadLetters/")[0]
    assert (variables["POWERTOOLS_SERVICE_NAME"], variables["POWERTOOLS_METRICS_NAMESPACE"]) == ("track_presence", "IotDeviceBackend")


def test_tables_keep_point_in_time_backups_and_expire_tombstones_and_old_sessions(template):
    for path, ttl in [("/Presence/Connectivity/", None), ("/Presence/Subscriptions/", "expiresAt"), ("/Registry/Inventory/", "expiresAt")]:
        name, table = find(template, "AWS::DynamoDB::Table", path)
        properties = table["Properties"]
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties.get("TimeToLiveSpecification", {}).get("AttributeName") == ttl
        assert table["DeletionPolicy"] == "Retain"


def test_the_app_enables_thing_group_and_membership_registry_events(template):
    _, resource = find(template, "Custom::AWS", "/Registry/EventConfigurations/")
    create = resource["Properties"]["Create"]
    text = create if isinstance(create, str) else "".join(part for part in create["Fn::Join"][1] if isinstance(part, str))
    for event_type in ("THING", "THING_GROUP", "THING_GROUP_MEMBERSHIP"):
        assert f'"{event_type}":{{"Enabled":true}}' in text
    assert '"action":"updateEventConfigurations"' in text
    policy = next(p for p in resources(template, "AWS::IAM::Policy").values() if "/Registry/EventConfigurations/" in cdk_path(p))
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {"Action": "iot:UpdateEventConfigurations", "Effect": "Allow", "Resource": "*"}
    ]


def test_with_the_event_configuration_left_to_another_owner_the_app_consumes_registry_events_without_setting_them(tmp_path):
    from aws_cdk.assertions import Template

    from app import STACK_NAME, build_app

    app = build_app(
        context={"deviceBackend.registry.manageEventConfiguration": "false", "aws:cdk:bundling-stacks": []},
        outdir=str(tmp_path),
    )
    template = Template.from_stack(app.node.find_child(STACK_NAME)).to_json()
    assert not [r for r in resources(template, "Custom::AWS").values() if "/Registry/EventConfigurations/" in cdk_path(r)]
    assert not [p for p in resources(template, "AWS::IAM::Policy").values() if "/Registry/EventConfigurations/" in cdk_path(p)]
    rule_names = {rule["Properties"]["RuleName"] for rule in resources(template, "AWS::IoT::TopicRule").values()}
    assert {"iot_backend_registry_things", "iot_backend_registry_thing_groups", "iot_backend_registry_group_memberships"} <= rule_names


def test_with_subscription_tracking_off_there_is_no_subscriptions_rule_or_table(tmp_path):
    from aws_cdk.assertions import Template

    from app import STACK_NAME, build_app

    app = build_app(
        context={"deviceBackend.presence.trackSubscriptions": "false", "aws:cdk:bundling-stacks": []},
        outdir=str(tmp_path),
    )
    template = Template.from_stack(app.node.find_child(STACK_NAME)).to_json()
    rule_names = {rule["Properties"]["RuleName"] for rule in resources(template, "AWS::IoT::TopicRule").values()}
    assert "iot_backend_presence_subscriptions" not in rule_names and len(rule_names) == 10
    assert not [t for t in resources(template, "AWS::DynamoDB::Table").values() if "/Subscriptions/" in cdk_path(t)]
    _, function = find(template, "AWS::Lambda::Function", "/Presence/TrackPresence/")
    assert "SUBSCRIPTIONS_TABLE" not in function["Properties"]["Environment"]["Variables"]


def test_jitr_sends_certificate_registrations_to_the_activation_queue(template):
    registrations, _ = _queue(template, "/Activation/Registrations/")
    payload = _rule(template, "iot_backend_onboarding_certificates_registered")
    assert payload["Sql"] == "SELECT * FROM '$aws/events/certificates/registered/+'"
    (action,) = payload["Actions"]
    assert _ref(action["Sqs"]["QueueUrl"]) == registrations


def test_the_activation_may_call_only_the_iot_and_s3_actions_it_uses_on_their_narrowest_resources(template):
    _, function = find(template, "AWS::Lambda::Function", "/Activation/ActivateCertificate/")
    role = _ref(function["Properties"]["Role"])
    [policy] = [p for p in resources(template, "AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]]
    granted = {}
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources_ = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in actions:
            granted.setdefault(action, []).extend(json.dumps(r) for r in resources_)
    assert set(granted) == {
        "iot:DescribeCertificate", "iot:UpdateCertificate", "iot:AttachThingPrincipal", "iot:AttachPolicy",
        "iot:DescribeCACertificate", "iot:CreateThing", "iot:AddThingToThingGroup", "s3:GetObject",
        "sqs:SendMessage", "logs:CreateLogStream", "logs:PutLogEvents",
        # the event source mapping's, on the activation queue
        "sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl", "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    }  # fmt: skip
    assert all(":cert/*" in r for r in granted["iot:UpdateCertificate"] + granted["iot:AttachPolicy"])
    assert any("thinggroup/iot_backend_fleet" in r for r in granted["iot:AddThingToThingGroup"])
    assert all("/crl/*" in r or "/allow-list.json" in r for r in granted["s3:GetObject"])
    assert all('"*"' != r for rs in granted.values() for r in rs)
