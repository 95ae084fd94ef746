"""Device Defender as synthesized: the audit configuration and schedule, one mitigation action of every type
each with exactly its permissions, the quarantine group's policy, the check -> actions map validated at synth,
and the two functions' subscriptions and permissions."""

from __future__ import annotations

import json

import pytest

from stacks.config import DEFAULT_AUDIT_CHECKS, DEFAULT_MITIGATIONS, ConfigError, load_config
from stacks.defender.allowed_actions import AUDIT_CHECKS
from tests.infrastructure.conftest import cdk_path, find, resources

IOT = "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}"
THING = "${iot:Connection.Thing.ThingName}"


def _ref(value: dict) -> str:
    return value.get("Ref") or value["Fn::GetAtt"][0]


def _text(value) -> str:
    """A resource ARN as written, with CloudFormation's pseudo parameters and references in ${...} form."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        return "".join(_text(part) for part in value["Fn::Join"][1])
    if "Ref" in value:
        return "${%s}" % value["Ref"]
    if "Fn::GetAtt" in value:
        return "${%s}" % ".".join(value["Fn::GetAtt"])
    return json.dumps(value)


def _role_grants(template: dict, role: str) -> set[tuple[str, str]]:
    """(action, resource) for every statement of the role's inline policies and attached AWS::IAM::Policy."""
    properties = template["Resources"][role]["Properties"]
    assert "ManagedPolicyArns" not in properties
    documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
    documents += [
        policy["Properties"]["PolicyDocument"]
        for policy in resources(template, "AWS::IAM::Policy").values()
        if any(_ref(r) == role for r in policy["Properties"]["Roles"])
    ]
    grants = set()
    for document in documents:
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            grants |= {(action, _text(target)) for action in actions for target in targets}
    return grants


def _trusts_iot_only(template: dict, role: str) -> bool:
    statements = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    return [s["Principal"] for s in statements] == [{"Service": "iot.amazonaws.com"}]


def test_the_audit_enables_exactly_the_configured_checks_and_notifies_its_topic_through_its_role(template):
    _, audit = find(template, "AWS::IoT::AccountAuditConfiguration", "/Defender/")
    properties = audit["Properties"]
    enabled = {name for name, check in properties["AuditCheckConfigurations"].items() if check["Enabled"]}
    assert len(enabled) == len(DEFAULT_AUDIT_CHECKS) == 10
    assert all(check["Enabled"] is False for name, check in properties["AuditCheckConfigurations"].items() if name not in enabled)
    assert "DeviceCertificateSharedCheck" in enabled and "LoggingDisabledCheck" in enabled
    assert properties["AccountId"] == {"Ref": "AWS::AccountId"}
    sns = properties["AuditNotificationTargetConfigurations"]["Sns"]
    topic, _ = find(template, "AWS::SNS::Topic", "/Defender/AuditNotifications/")
    notification_role, _ = find(template, "AWS::IAM::Role", "/Defender/AuditNotificationRole/")
    assert (sns["Enabled"], _ref(sns["TargetArn"]), _ref(sns["RoleArn"])) == (True, topic, notification_role)
    assert _trusts_iot_only(template, notification_role)
    assert _role_grants(template, notification_role) == {("sns:Publish", "${%s}" % topic)}
    audit_role, _ = find(template, "AWS::IAM::Role", "/Defender/AuditRole/")
    assert _ref(properties["RoleArn"]) == audit_role and _trusts_iot_only(template, audit_role)
    # AWS's audit role policy, but the role-alias, Cognito and IAM reads: no enabled check needs them.
    assert {action for action, _ in _role_grants(template, audit_role)} == AUDIT_ROLE_POLICY - {
        "iot:ListRoleAliases", "iot:DescribeRoleAlias", "cognito-identity:GetIdentityPoolRoles",
    } - {action for action in AUDIT_ROLE_POLICY if action.startswith("iam:")}  # fmt: skip


# The actions of the audit role's permissions policy AWS documents (the AWSIoTDeviceDefenderAudit managed policy,
# https://docs.aws.amazon.com/iot-device-defender/latest/devguide/audit-permissions.html).
AUDIT_ROLE_POLICY = {
    "iot:GetLoggingOptions", "iot:GetV2LoggingOptions", "iot:ListCACertificates", "iot:ListCertificates",
    "iot:DescribeCACertificate", "iot:DescribeCertificate", "iot:ListPolicies", "iot:GetPolicy",
    "iot:GetEffectivePolicies", "iot:ListRoleAliases", "iot:DescribeRoleAlias", "cognito-identity:GetIdentityPoolRoles",
    "iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:GetRole", "iam:GetPolicy", "iam:GetPolicyVersion",
    "iam:GetRolePolicy", "iam:GenerateServiceLastAccessedDetails", "iam:GetServiceLastAccessedDetails",
}  # fmt: skip


def test_with_every_check_enabled_the_audit_role_has_exactly_the_actions_of_aws_audit_policy(tmp_path):
    from aws_cdk.assertions import Template

    from app import STACK_NAME, build_app

    context = {"deviceBackend.defender.auditChecks": list(AUDIT_CHECKS), "aws:cdk:bundling-stacks": []}
    template = Template.from_stack(build_app(context=context, outdir=str(tmp_path)).node.find_child(STACK_NAME)).to_json()
    audit_role, _ = find(template, "AWS::IAM::Role", "/Defender/AuditRole/")
    assert {action for action, _ in _role_grants(template, audit_role)} == AUDIT_ROLE_POLICY


def test_the_scheduled_audit_runs_daily_exactly_the_enabled_checks_after_they_are_enabled(template):
    audit, _ = find(template, "AWS::IoT::AccountAuditConfiguration", "/Defender/")
    _, scheduled = find(template, "AWS::IoT::ScheduledAudit", "/Defender/")
    properties = scheduled["Properties"]
    assert properties["TargetCheckNames"] == list(DEFAULT_AUDIT_CHECKS)
    assert (properties["Frequency"], properties["ScheduledAuditName"]) == ("DAILY", "iot_backend_audit")
    assert "DayOfWeek" not in properties and "DayOfMonth" not in properties
    assert audit in scheduled["DependsOn"]


EXPECTED_ACTIONS = {
    # key: (ActionParams key, params, the role's exact grants)
    "quarantine": (
        "AddThingsToThingGroupParams",
        {"ThingGroupNames": ["iot_backend_quarantine"]},
        {
            ("iot:ListPrincipalThings", f"{IOT}:cert/*"),
            ("iot:AddThingToThingGroup", f"{IOT}:thinggroup/iot_backend_quarantine"),
            ("iot:AddThingToThingGroup", f"{IOT}:thing/*"),
        },
    ),
    "deactivate_device_certificate": (
        "UpdateDeviceCertificateParams", {"Action": "DEACTIVATE"}, {("iot:UpdateCertificate", f"{IOT}:cert/*")}
    ),
    "deactivate_ca_certificate": (
        "UpdateCACertificateParams", {"Action": "DEACTIVATE"}, {("iot:UpdateCACertificate", f"{IOT}:cacert/*")}
    ),
    "blank_policy": (
        "ReplaceDefaultPolicyVersionParams", {"TemplateName": "BLANK_POLICY"}, {("iot:CreatePolicyVersion", f"{IOT}:policy/*")}
    ),
}  # fmt: skip


@pytest.mark.parametrize("key", sorted(EXPECTED_ACTIONS))
def test_each_iot_mitigation_action_has_its_own_role_with_exactly_its_permissions(template, key):
    params_key, params, grants = EXPECTED_ACTIONS[key]
    (action,) = [
        a["Properties"] for a in resources(template, "AWS::IoT::MitigationAction").values()
        if a["Properties"]["ActionName"] == f"iot_backend_{key}"
    ]  # fmt: skip
    assert action["ActionParams"] == {params_key: params}
    role = _ref(action["RoleArn"])
    assert _trusts_iot_only(template, role)
    assert _role_grants(template, role) == grants


def test_there_is_one_mitigation_action_of_every_type_each_with_a_role_of_its_own(template):
    actions = [a["Properties"] for a in resources(template, "AWS::IoT::MitigationAction").values()]
    assert sorted(next(iter(a["ActionParams"])) for a in actions) == sorted([
        "AddThingsToThingGroupParams", "UpdateDeviceCertificateParams", "UpdateCACertificateParams",
        "ReplaceDefaultPolicyVersionParams", "EnableIoTLoggingParams", "PublishFindingToSnsParams",
    ])  # fmt: skip
    assert len({_ref(a["RoleArn"]) for a in actions}) == 6


def test_enable_logging_sets_the_configured_level_with_a_logging_role_it_alone_may_pass(template):
    (action,) = [
        a["Properties"] for a in resources(template, "AWS::IoT::MitigationAction").values()
        if "EnableIoTLoggingParams" in a["Properties"]["ActionParams"]
    ]  # fmt: skip
    params = action["ActionParams"]["EnableIoTLoggingParams"]
    logging_role, _ = find(template, "AWS::IAM::Role", "/Defender/LoggingRole/")
    assert (params["LogLevel"], _ref(params["RoleArnForLogging"])) == ("ERROR", logging_role)
    assert _role_grants(template, _ref(action["RoleArn"])) == {
        ("iot:SetV2LoggingOptions", "*"),
        ("iam:PassRole", "${%s.Arn}" % logging_role),
    }
    statements = template["Resources"][_ref(action["RoleArn"])]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    (pass_role,) = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "iot.amazonaws.com"}}
    assert _trusts_iot_only(template, logging_role)
    log_group = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:AWSIotLogsV2"
    assert _role_grants(template, logging_role) == {
        ("logs:CreateLogGroup", log_group),
        ("logs:CreateLogStream", log_group + ":*"),
        ("logs:PutLogEvents", log_group + ":*"),
    }


def test_publish_finding_publishes_to_the_findings_topic_only(template):
    (action,) = [
        a["Properties"] for a in resources(template, "AWS::IoT::MitigationAction").values()
        if "PublishFindingToSnsParams" in a["Properties"]["ActionParams"]
    ]  # fmt: skip
    findings, _ = find(template, "AWS::SNS::Topic", "/Defender/Findings/")
    assert _ref(action["ActionParams"]["PublishFindingToSnsParams"]["TopicArn"]) == findings
    assert _role_grants(template, _ref(action["RoleArn"])) == {("sns:Publish", "${%s}" % findings)}


def test_the_quarantine_policy_allows_only_connecting_as_the_thing_and_its_jobs_topics(template):
    _, policy = find(template, "AWS::IoT::Policy", "/Defender/QuarantinePolicy")
    assert policy["Properties"]["PolicyName"] == "iot_backend_quarantine"
    grants = set()
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        assert statement["Effect"] == "Allow" and "Condition" not in statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        grants |= {(action, _text(statement["Resource"])) for action in actions}
    jobs = f"$aws/things/{THING}/jobs/*"
    assert grants == {
        ("iot:Connect", f"{IOT}:client/{THING}"),
        ("iot:Subscribe", f"{IOT}:topicfilter/{jobs}"),
        ("iot:Receive", f"{IOT}:topic/{jobs}"),
        ("iot:Publish", f"{IOT}:topic/{jobs}"),
    }


def test_the_quarantine_policy_is_attached_to_the_quarantine_group_and_detached_on_delete(template):
    _, group = find(template, "AWS::IoT::ThingGroup", "/Defender/QuarantineGroup")
    assert group["Properties"]["ThingGroupName"] == "iot_backend_quarantine"
    _, attachment = find(template, "Custom::AWS", "/Defender/QuarantinePolicyAttachment/")
    create = _text(attachment["Properties"]["Create"])
    assert '"action":"attachPolicy"' in create and '"policyName":"iot_backend_quarantine"' in create
    assert f'"target":"{IOT}:thinggroup/iot_backend_quarantine"' in create.replace("${AWS::Partition}", "${AWS::Partition}")
    assert '"action":"detachPolicy"' in _text(attachment["Properties"]["Delete"])
    policy = next(p for p in resources(template, "AWS::IAM::Policy").values() if "/QuarantinePolicyAttachment/" in cdk_path(p))
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["iot:AttachPolicy", "iot:DetachPolicy"]
    resources_ = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    assert {_text(r) for r in resources_} == {f"{IOT}:thinggroup/iot_backend_quarantine"}  # authorized on the target


def test_mitigate_audit_findings_hears_the_audit_topic_with_the_deployed_action_names(template):
    function, resource = find(template, "AWS::Lambda::Function", "/Defender/MitigateAuditFindings/")
    variables = resource["Properties"]["Environment"]["Variables"]
    assert json.loads(variables["MITIGATION_ACTIONS"]) == {
        check: [f"iot_backend_{key}" for key in keys] for check, keys in DEFAULT_MITIGATIONS.items()
    }
    assert variables["DRY_RUN"] == "false"
    topic, _ = find(template, "AWS::SNS::Topic", "/Defender/AuditNotifications/")
    _assert_subscribed(template, topic, function)
    role = _ref(resource["Properties"]["Role"])
    log_group, _ = find(template, "AWS::Logs::LogGroup", "/Defender/MitigateAuditFindings/")
    dead_letters, _ = find(template, "AWS::SQS::Queue", "/Defender/MitigationDeadLetters/")
    assert _role_grants(template, role) == {
        ("iot:ListAuditFindings", "*"),
        ("iot:StartAuditMitigationActionsTask", "*"),
        ("iot:DescribeAuditMitigationActionsTask", "*"),
        *_SEND_TO(dead_letters),
        ("logs:CreateLogStream", "${%s.Arn}" % log_group),
        ("logs:PutLogEvents", "${%s.Arn}" % log_group),
    }
    _assert_failures_go_to(template, function, dead_letters)


def test_remediate_finding_hears_the_findings_topic_and_may_only_do_its_remediations(template):
    function, resource = find(template, "AWS::Lambda::Function", "/Defender/RemediateFinding/")
    variables = resource["Properties"]["Environment"]["Variables"]
    table, table_resource = find(template, "AWS::DynamoDB::Table", "/Defender/Remediations/")
    notices, _ = find(template, "AWS::SNS::Topic", "/Defender/Notices/")
    assert (_ref(variables["REMEDIATIONS_TABLE"]), _ref(variables["NOTICES_TOPIC_ARN"])) == (table, notices)
    assert (variables["QUARANTINE_GROUP"], variables["DRY_RUN"]) == ("iot_backend_quarantine", "false")
    assert table_resource["Properties"]["KeySchema"] == [
        {"AttributeName": "findingId", "KeyType": "HASH"}, {"AttributeName": "change", "KeyType": "RANGE"}
    ]
    findings, _ = find(template, "AWS::SNS::Topic", "/Defender/Findings/")
    _assert_subscribed(template, findings, function)
    log_group, _ = find(template, "AWS::Logs::LogGroup", "/Defender/RemediateFinding/")
    dead_letters, _ = find(template, "AWS::SQS::Queue", "/Defender/RemediationDeadLetters/")
    assert _role_grants(template, _ref(resource["Properties"]["Role"])) == {
        ("iot:UpdateCertificate", f"{IOT}:cert/*"),
        ("iot:DescribeCertificate", f"{IOT}:cert/*"),
        ("iot:ListPrincipalThings", f"{IOT}:cert/*"),
        ("iot:AddThingToThingGroup", f"{IOT}:thinggroup/iot_backend_quarantine"),
        ("iot:AddThingToThingGroup", f"{IOT}:thing/*"),
        ("dynamodb:UpdateItem", "${%s.Arn}" % table),
        ("sns:Publish", "${%s}" % notices),
        *_SEND_TO(dead_letters),
        ("logs:CreateLogStream", "${%s.Arn}" % log_group),
        ("logs:PutLogEvents", "${%s.Arn}" % log_group),
    }
    _assert_failures_go_to(template, function, dead_letters)


def _SEND_TO(queue: str) -> set[tuple[str, str]]:
    """What Lambda's OnFailure destination grants (aws-cdk-lib's grantSendMessages) on the dead-letter queue."""
    return {(action, "${%s.Arn}" % queue) for action in ("sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl")}


def _assert_subscribed(template: dict, topic: str, function: str) -> None:
    subscriptions = [
        s["Properties"] for s in resources(template, "AWS::SNS::Subscription").values() if _ref(s["Properties"]["TopicArn"]) == topic
    ]
    assert [(s["Protocol"], _ref(s["Endpoint"])) for s in subscriptions] == [("lambda", function)]
    permissions = [
        p["Properties"] for p in resources(template, "AWS::Lambda::Permission").values() if _ref(p["Properties"]["FunctionName"]) == function
    ]
    assert [(p["Principal"], _ref(p["SourceArn"])) for p in permissions] == [("sns.amazonaws.com", topic)]


def _assert_failures_go_to(template: dict, function: str, queue: str) -> None:
    (config,) = [
        c["Properties"] for c in resources(template, "AWS::Lambda::EventInvokeConfig").values() if _ref(c["Properties"]["FunctionName"]) == function
    ]
    assert _ref(config["DestinationConfig"]["OnFailure"]["Destination"]) == queue


KEY = "deviceBackend.defender.mitigations"


@pytest.mark.parametrize(
    "mitigations, message",
    [
        (
            {"CONFLICTING_CLIENT_IDS_CHECK": ["quarantine"]},
            "AWS does not allow 'quarantine' (ADD_THINGS_TO_THING_GROUP) on findings of 'CONFLICTING_CLIENT_IDS_CHECK'; "
            "allowed for it: publish_finding",
        ),
        (
            {"LOGGING_DISABLED_CHECK": ["deactivate_device_certificate"]},
            "allowed for it: enable_logging, publish_finding",
        ),
        ({"NO_SUCH_CHECK": ["publish_finding"]}, "'NO_SUCH_CHECK' is not an audit check"),
        ({"DEVICE_CERTIFICATE_SHARED_CHECK": ["lock_out"]}, "'lock_out' (for 'DEVICE_CERTIFICATE_SHARED_CHECK') is not one of"),
        ({"DEVICE_CERTIFICATE_SHARED_CHECK": ["publish_finding"] * 6}, "maps to 6 actions; AWS applies at most 5 per check"),
        ({"DEVICE_CERTIFICATE_AGE_CHECK": ["publish_finding"]}, "'DEVICE_CERTIFICATE_AGE_CHECK' is not among the enabled audit checks"),
        ({"DEVICE_CERTIFICATE_SHARED_CHECK": []}, "maps to no action"),
    ],
)
def test_a_check_to_actions_map_aws_would_refuse_fails_synth_naming_the_problem(mitigations, message):
    with pytest.raises(ConfigError) as error:
        load_config({KEY: mitigations})
    assert f"Context key '{KEY}' is not valid: " in str(error.value)
    assert message in str(error.value)


def test_every_default_pair_is_one_aws_allows():
    assert load_config({KEY: json.dumps({c: list(k) for c, k in DEFAULT_MITIGATIONS.items()})}).defender.mitigations == DEFAULT_MITIGATIONS


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"auditFrequency": "WEEKLY"}, "must be a day of the week (SUN..SAT) when the audit runs WEEKLY"),
        ({"auditFrequency": "MONTHLY", "auditDay": "MON"}, "must be 1..31 or LAST when the audit runs MONTHLY"),
        ({"auditDay": "MON"}, "must be null when the audit runs DAILY"),
        ({"auditChecks": ["DEVICE_CERT_SHARED"]}, "'DEVICE_CERT_SHARED' is not one"),
        ({"loggingLevel": "DISABLED"}, "one of DEBUG, INFO, WARN, ERROR"),
    ],
)
def test_bad_audit_settings_fail_synth_naming_the_key(settings, message):
    with pytest.raises(ConfigError, match="deviceBackend.defender.") as error:
        load_config({f"deviceBackend.defender.{k}": v for k, v in settings.items()})
    assert message in str(error.value)


def test_a_weekly_dry_run_audit_of_fewer_checks_is_synthesized_as_configured(tmp_path):
    from aws_cdk.assertions import Template

    from app import STACK_NAME, build_app

    context = {
        "deviceBackend.defender.auditChecks": ["DEVICE_CERTIFICATE_SHARED_CHECK", "LOGGING_DISABLED_CHECK"],
        "deviceBackend.defender.auditFrequency": "BIWEEKLY",
        "deviceBackend.defender.auditDay": "TUE",
        "deviceBackend.defender.mitigations": {"LOGGING_DISABLED_CHECK": ["enable_logging"]},
        "deviceBackend.defender.dryRun": "true",
        "aws:cdk:bundling-stacks": [],
    }
    app = build_app(context=context, outdir=str(tmp_path))
    template = Template.from_stack(app.node.find_child(STACK_NAME)).to_json()
    _, scheduled = find(template, "AWS::IoT::ScheduledAudit", "/Defender/")
    assert (scheduled["Properties"]["Frequency"], scheduled["Properties"]["DayOfWeek"]) == ("BIWEEKLY", "TUE")
    assert scheduled["Properties"]["TargetCheckNames"] == ["DEVICE_CERTIFICATE_SHARED_CHECK", "LOGGING_DISABLED_CHECK"]
    _, function = find(template, "AWS::Lambda::Function", "/Defender/MitigateAuditFindings/")
    variables = function["Properties"]["Environment"]["Variables"]
    assert json.loads(variables["MITIGATION_ACTIONS"]) == {"LOGGING_DISABLED_CHECK": ["iot_backend_enable_logging"]}
    assert variables["DRY_RUN"] == "true"


def test_with_defender_off_the_app_leaves_the_accounts_audit_alone(tmp_path):
    from aws_cdk.assertions import Template

    from app import STACK_NAME, build_app

    app = build_app(context={"deviceBackend.defender.enabled": False, "aws:cdk:bundling-stacks": []}, outdir=str(tmp_path))
    template = Template.from_stack(app.node.find_child(STACK_NAME)).to_json()
    for resource_type in ("AWS::IoT::AccountAuditConfiguration", "AWS::IoT::ScheduledAudit", "AWS::IoT::MitigationAction"):
        assert not resources(template, resource_type)
