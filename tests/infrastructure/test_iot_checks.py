"""The IoT rule pack (stacks/platform/iot_checks.py): each rule fires on a small construct that breaks it and
stays quiet on one that follows it; the app is clean, or acknowledged where reviewed; an unacknowledged error
fails synthesis and a warning does not."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda as lambda_

from app import STACK_NAME, build_app
from stacks.platform.iot_checks import RULES, IotChecks
from tests.conftest import ROOT
from tests.infrastructure.conftest import acknowledged_findings

BASE = "arn:aws:iot:eu-west-1:123456789012"
ROLE = "arn:aws:iam::123456789012:role/rule-actions"
FUNCTION = "arn:aws:lambda:eu-west-1:123456789012:function:consumer"
THING = "${iot:Connection.Thing.ThingName}"


def findings(build: Callable[[Stack], Any]) -> dict[str, str]:
    """Rule id (with its [...] detail) -> severity, for what the pack finds in a stack `build` fills."""
    app = App()
    build(Stack(app, "Probe"))
    report = IotChecks(app).validate_scope(app)
    return {violation.rule_name: violation.severity for violation in report.violations}


def policy(*statements: tuple[str | list[str], str | list[str]]) -> Callable[[Stack], Any]:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource} for action, resource in statements],
    }
    return lambda stack: iot.CfnPolicy(stack, "Policy", policy_document=document)


def rule(
    sql: str = "SELECT temperature FROM 'dt/+/temperature'",
    action: dict[str, Any] | None = None,
    *,
    error_action: bool = True,
    version: str | None = "2016-03-23",
    logging: str | None = "ERROR",
) -> Callable[[Stack], Any]:
    def build(stack: Stack) -> None:
        queue = iot.CfnTopicRule.SqsActionProperty(queue_url="https://sqs/errors", role_arn=ROLE)
        iot.CfnTopicRule(
            stack,
            "Rule",
            topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
                sql=sql,
                aws_iot_sql_version=version,
                actions=[iot.CfnTopicRule.ActionProperty(**(action or {"sqs": queue}))],
                error_action=iot.CfnTopicRule.ActionProperty(sqs=queue) if error_action else None,
            ),
        )
        if logging is not None:
            iot.CfnLogging(stack, "Logging", account_id="123456789012", default_log_level=logging, role_arn=ROLE)

    return build


def republish(topic: str) -> dict[str, Any]:
    return {"republish": iot.CfnTopicRule.RepublishActionProperty(topic=topic, role_arn=ROLE)}


def lambda_action() -> dict[str, Any]:
    return {"lambda_": iot.CfnTopicRule.LambdaActionProperty(function_arn=FUNCTION)}


def permission(**scope: str) -> Callable[[Stack], Any]:
    return lambda stack: lambda_.CfnPermission(
        stack, "Permission", action="lambda:InvokeFunction", function_name=FUNCTION, principal="iot.amazonaws.com", **scope
    )


def authorizer(*, reserved: int | None = 10, **properties: Any) -> Callable[[Stack], Any]:
    def build(stack: Stack) -> None:
        function = lambda_.CfnFunction(
            stack,
            "Authorize",
            code=lambda_.CfnFunction.CodeProperty(zip_file="def handler(event, context): pass"),
            role=ROLE,
            runtime="python3.13",
            handler="index.handler",
            reserved_concurrent_executions=reserved,
        )
        settings = {"status": "ACTIVE", "signing_disabled": False, "token_key_name": "token",
                    "token_signing_public_keys": {"key": "-----BEGIN PUBLIC KEY-----..."}, **properties}  # fmt: skip
        iot.CfnAuthorizer(stack, "Authorizer", authorizer_function_arn=function.attr_arn, **settings)

    return build


def ca(**properties: Any) -> Callable[[Stack], Any]:
    return lambda stack: iot.CfnCACertificate(
        stack, "Ca", ca_certificate_pem="-----BEGIN CERTIFICATE-----...", status="ACTIVE", **properties
    )


def template(**properties: Any) -> Callable[[Stack], Any]:
    return lambda stack: iot.CfnProvisioningTemplate(
        stack, "Template", provisioning_role_arn=ROLE, template_body="{}", enabled=True, **properties
    )


def specific_logging(level: str) -> Callable[[Stack], Any]:
    return lambda stack: iot.CfnResourceSpecificLogging(stack, "Logging", log_level=level, target_name="fleet", target_type="THING_GROUP")


HOOK = iot.CfnProvisioningTemplate.ProvisioningHookProperty(target_arn=FUNCTION, payload_version="2020-04-01")
CLAIM_TOPICS = ("$aws/certificates/create/json", "$aws/provisioning-templates/fleet/provision/json")
CLAIM = (
    ("iot:Connect", f"{BASE}:client/*"),
    ("iot:Publish", [f"{BASE}:topic/{t}" for t in CLAIM_TOPICS]),
    ("iot:Subscribe", [f"{BASE}:topicfilter/{t}/{r}" for t in CLAIM_TOPICS for r in ("accepted", "rejected")]),
    ("iot:Receive", [f"{BASE}:topic/{t}/{r}" for t in CLAIM_TOPICS for r in ("accepted", "rejected")]),
)

# rule id, what fires (the id with its detail), a construct that breaks the rule, one that follows it
CASES: list[tuple[str, str, Callable[[Stack], Any], Callable[[Stack], Any]]] = [
    ("IoT-POL1", "IoT-POL1", policy(("iot:*", "*")), policy(("iot:Connect", f"{BASE}:client/{THING}"))),
    ("IoT-POL1", "IoT-POL1", policy(("*", f"{BASE}:topic/dt/{THING}")), policy(("iot:Publish", f"{BASE}:topic/dt/{THING}"))),
    (
        "IoT-POL2", "IoT-POL2[iot:Publish:topic/dt/*]",
        policy(("iot:Publish", f"{BASE}:topic/dt/*")), policy(("iot:Publish", f"{BASE}:topic/dt/*/{THING}/*")),
    ),
    (
        "IoT-POL2", "IoT-POL2[iot:Connect:*]",
        policy(("iot:Connect", "*")), policy(("iot:Connect", f"{BASE}:client/${{iot:ClientId}}")),
    ),
    (
        "IoT-POL2", "IoT-POL2[iot:Subscribe:topicfilter/cmd/?]",
        policy(("iot:Sub*", f"{BASE}:topicfilter/cmd/?")), policy(("iot:Subscribe", f"{BASE}:topicfilter/cmd/{THING}/#")),
    ),
    (
        "IoT-POL3", f"IoT-POL3[iot:Publish:topic/dt/{THING}]",
        policy(*CLAIM, ("iot:Publish", f"{BASE}:topic/dt/{THING}")), policy(*CLAIM),
    ),
    ("IoT-RUL1", "IoT-RUL1", rule(error_action=False), rule()),
    ("IoT-RUL2", "IoT-RUL2", rule(version=None), rule()),
    ("IoT-RUL2", "IoT-RUL2", rule(version="2015-10-08"), rule(version="2016-03-23")),
    (
        "IoT-RUL3", "IoT-RUL3",
        rule("SELECT * FROM 'dt/#'", lambda_action()), rule("SELECT * FROM 'dt/#' WHERE temperature > 40", lambda_action()),
    ),
    (
        "IoT-RUL4", "IoT-RUL4[$$aws/events/presence/connected/x]",
        rule(action=republish("$$aws/events/presence/connected/x")), rule(action=republish("$$aws/things/x/shadow/update")),
    ),
    (
        "IoT-RUL5", "IoT-RUL5[${topic()}]",
        rule("SELECT * FROM 'echo/+'", republish("${topic()}")), rule("SELECT * FROM 'faults/+'", republish("cmd/${topic(2)}/reboot")),
    ),
    (
        "IoT-RUL5", "IoT-RUL5[cmd/${topic(2)}/reboot]",
        rule("SELECT * FROM 'cmd/#'", republish("cmd/${topic(2)}/reboot")), rule("SELECT * FROM 'cmd/+'", republish("cmd/${topic(2)}/reboot")),
    ),
    (
        "IoT-LMP1", "IoT-LMP1",
        permission(source_arn=f"{BASE}:rule/forward"), permission(source_arn=f"{BASE}:rule/forward", source_account="123456789012"),
    ),
    ("IoT-AUT1", "IoT-AUT1", authorizer(signing_disabled=True, token_signing_public_keys=None), authorizer()),
    ("IoT-AUT2", "IoT-AUT2", authorizer(status="INACTIVE"), authorizer(status="ACTIVE")),
    ("IoT-AUT3", "IoT-AUT3", authorizer(reserved=None), authorizer(reserved=10)),
    (
        "IoT-CA1", "IoT-CA1",
        ca(auto_registration_status="ENABLE", certificate_mode="SNI_ONLY"),
        ca(auto_registration_status="ENABLE", certificate_mode="DEFAULT", verification_certificate_pem="-----BEGIN..."),
    ),
    ("IoT-PRV1", "IoT-PRV1", template(template_type="FLEET_PROVISIONING"), template(template_type="FLEET_PROVISIONING", pre_provisioning_hook=HOOK)),
    ("IoT-PRV1", "IoT-PRV1", template(), template(template_type="JITP")),
    ("IoT-LOG1", "IoT-LOG1", rule(logging=None), rule(logging="WARN")),
    ("IoT-LOG1", "IoT-LOG1", rule(logging="DISABLED"), rule(logging="ERROR")),
    ("IoT-LOG2", "IoT-LOG2", rule(logging="DEBUG"), rule(logging="INFO")),
    ("IoT-LOG3", "IoT-LOG3", specific_logging("DEBUG"), specific_logging("ERROR")),
]  # fmt: skip
LEVELS = {rule.rule_id: "error" if rule.level.value == "ERROR" else "warning" for rule in RULES}


@pytest.mark.parametrize(("rule_id", "finding", "broken", "followed"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_rule_fires_on_a_construct_that_breaks_it_and_not_on_one_that_follows_it(
    rule_id: str, finding: str, broken: Callable[[Stack], Any], followed: Callable[[Stack], Any]
) -> None:
    found = findings(broken)
    assert found.get(finding) == LEVELS[rule_id], found
    assert not [name for name in findings(followed) if name.split("[")[0] == rule_id]


def test_every_rule_has_cases_and_at_least_ten_rules_ship() -> None:
    assert {case[0] for case in CASES} == set(LEVELS)
    assert len(RULES) >= 10
    assert all(len(r.explanation) > 80 and r.info.endswith(".") for r in RULES)


def test_each_rule_is_listed_in_the_readme_with_its_level() -> None:
    readme = (ROOT / "README.md").read_text()
    for r in RULES:
        assert f"| `{r.rule_id}` | {r.level.value.capitalize()} | {r.info} |" in readme, r.rule_id


def test_the_app_is_clean_and_acknowledged_only_where_reviewed(cloud_assembly: Any) -> None:
    app = build_app(outdir=str(ROOT / "build" / "test.cdk.out.iot-checks"))
    assert IotChecks(app).validate_scope(app).violations == []
    rules = ("Presence/ConnectedRule", "Presence/DisconnectedRule", "Presence/SubscriptionsRule", "Registry/ThingRule",
             "Registry/ThingGroupRule", "Registry/GroupMembershipRule", "Onboarding/Activation/RegisteredRule",
             "Telemetry/EnvironmentRule", "Telemetry/SoilRule", "Telemetry/PowerRule", "TelemetryArchive/Rule")  # fmt: skip
    acknowledged = acknowledged_findings(cloud_assembly, "IoT")
    assert set(acknowledged) == {
        ("/DeviceBackend/Onboarding/FleetProvisioning/ClaimPolicy", "Annotation::IoT-POL2[iot:Connect:client/*]"),
        *((f"/DeviceBackend/{path}", "Annotation::IoT-LOG1") for path in rules),
    }
    assert all(len(reason) > 60 for reason in acknowledged.values())


def test_without_the_audit_turning_logging_on_the_app_warns_that_iot_logging_is_off() -> None:
    app = build_app(
        context={"deviceBackend.defender.enabled": False}, outdir=str(ROOT / "build" / "test.cdk.out.iot-checks")
    )
    found = {violation.rule_name: violation.severity for violation in IotChecks(app).validate_scope(app).violations}
    assert found == {"IoT-LOG1": "warning"}


def test_an_unacknowledged_iot_error_fails_synthesis_and_a_warning_does_not() -> None:
    app = build_app(outdir=str(ROOT / "build" / "test.cdk.out.iot-checks"))
    stack = app.node.find_child(STACK_NAME)
    iot.CfnLogging(stack, "DebugLogging", account_id="123456789012", default_log_level="DEBUG", role_arn=ROLE)
    app.synth()  # IoT-LOG2, a warning: printed, and synthesis goes on
    report = json.loads((ROOT / "build" / "test.cdk.out.iot-checks" / "validation-report.json").read_text())
    [iot_report] = [r for r in report["pluginReports"] if r["pluginName"] == "IoT"]
    assert (iot_report["conclusion"], [v["ruleName"] for v in iot_report["violations"]]) == ("success", ["IoT-LOG2"])

    app = build_app(outdir=str(ROOT / "build" / "test.cdk.out.iot-checks"))
    policy(("iot:*", "*"))(app.node.find_child(STACK_NAME))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
