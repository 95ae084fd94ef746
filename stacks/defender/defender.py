"""Device Defender: the account's audit configuration (checks, SNS notification target), a scheduled audit, one
mitigation action of every type, each with a role that can do only what that action does, and the two
functions that act on what the audit finds:

- `mitigate_audit_findings` hears the audit's notification (SNS) and starts mitigation tasks on the findings,
  by the configured check -> actions map (validated at synth against AWS's table, allowed_actions.py);
- `remediate_finding` hears PUBLISH_FINDING_TO_SNS (the findings topic) and makes the app's own remediation
  (quarantine group, deactivation, an operator notice), recorded in the Remediations table.
"""

from __future__ import annotations

import json

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.config import DefenderConfig
from stacks.defender.allowed_actions import ACTION_TYPES, AUDIT_CHECKS
from stacks.platform import Platform
from stacks.platform.checks import acknowledge
from stacks.platform.functions import BackendFunction
from stacks.platform.queues import DeadLetterQueue
from stacks.platform.sdk_calls import deployment_call
from stacks.platform.tables import table

THING = "${iot:Connection.Thing.ThingName}"
# What a quarantined device still needs: receive a fix and report on it through IoT Jobs.
JOBS_TOPIC = f"$aws/things/{THING}/jobs/*"
IOT_LOG_GROUP = "AWSIotLogsV2"  # where IoT writes its logs (SetV2LoggingOptions); fixed by IoT
MITIGATION_OUTCOMES = [
    "MitigationTasksStarted", "MitigationTasksAlreadyStarted", "DryRunDecisions", "AuditTasksNotCompleted", "MalformedNotifications"
]
REMEDIATION_OUTCOMES = [
    "FindingsRemediated", "RemediationsAlreadyDone", "RemediationsInProgressElsewhere", "DryRunDecisions",
    "FindingsWithoutRemediation", "MalformedFindings",
]
MAX_EVENT_AGE = Duration.hours(6)
# AuditCheckConfigurations property names that do not follow the check's API name.
_CHECK_PROPERTY = {"IOT_POLICY_POTENTIAL_MIS_CONFIGURATION_CHECK": "io_t_policy_potential_mis_configuration_check"}
_IOT = iam.ServicePrincipal("iot.amazonaws.com")


def _iot_role(scope: Construct, construct_id: str, description: str, statements: list[iam.PolicyStatement]) -> iam.Role:
    """A role IoT assumes, with exactly `statements` (inline: no managed policy)."""
    return iam.Role(
        scope,
        construct_id,
        assumed_by=_IOT,
        description=description,
        inline_policies={"Permissions": iam.PolicyDocument(statements=statements)},
    )


class DeviceDefender(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        settings = platform.config.defender
        prefix = platform.config.resource_name_prefix
        stack = Stack.of(self)
        self.base = base = f"arn:{stack.partition}:iot:{stack.region}:{stack.account}"

        # --- the audit ---------------------------------------------------------------------------------------
        self.audit_topic = sns.Topic(self, "AuditNotifications", display_name="IoT Device Defender audit notifications", enforce_ssl=True)
        acknowledge(
            self.audit_topic,
            "AwsSolutions-SNS2",
            "Audit notifications carry the audit task's id and counts of non-compliant resources, no secrets; a "
            "KMS key would add cost and a key policy for IoT and every subscriber.",
        )
        notification_role = _iot_role(
            self,
            "AuditNotificationRole",
            "Lets IoT Device Defender publish audit notifications to their topic",
            [iam.PolicyStatement(actions=["sns:Publish"], resources=[self.audit_topic.topic_arn])],
        )
        audit_role = _iot_role(self, "AuditRole", "Lets IoT Device Defender audit read what its checks inspect", self._audit_reads(settings.audit_checks))
        acknowledge(
            audit_role,
            "AwsSolutions-IAM5[Resource::*]",
            "The audit lists every certificate, CA, policy and role alias and reads the logging options: these "
            "List/Get actions take no resource-level permissions. Every action is a read.",
        )
        inspected = ("cert", "cacert", "policy") + (("rolealias",) if _checks_role_aliases(settings.audit_checks) else ())
        for kind in inspected:
            acknowledge(
                audit_role,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:{kind}/*]",
                f"The audit inspects every {kind} of the account, whatever created it; read-only actions.",
            )
        checks = {check: check in settings.audit_checks for check in AUDIT_CHECKS}
        self.audit_configuration = iot.CfnAccountAuditConfiguration(
            self,
            "AuditConfiguration",
            account_id=stack.account,
            role_arn=audit_role.role_arn,
            audit_check_configurations=iot.CfnAccountAuditConfiguration.AuditCheckConfigurationsProperty(
                **{
                    _CHECK_PROPERTY.get(check, check.lower()): {"enabled": enabled}
                    for check, enabled in checks.items()
                }
            ),
            audit_notification_target_configurations=iot.CfnAccountAuditConfiguration.AuditNotificationTargetConfigurationsProperty(
                sns=iot.CfnAccountAuditConfiguration.AuditNotificationTargetProperty(
                    enabled=True, target_arn=self.audit_topic.topic_arn, role_arn=notification_role.role_arn
                )
            ),
        )
        weekly = settings.audit_frequency in ("WEEKLY", "BIWEEKLY")
        self.scheduled_audit = iot.CfnScheduledAudit(
            self,
            "ScheduledAudit",
            scheduled_audit_name=f"{prefix}_audit",
            frequency=settings.audit_frequency,
            day_of_week=settings.audit_day if weekly else None,
            day_of_month=settings.audit_day if settings.audit_frequency == "MONTHLY" else None,
            target_check_names=list(settings.audit_checks),
        )
        # The checks must be enabled before a scheduled audit may name them.
        self.scheduled_audit.node.add_dependency(self.audit_configuration)

        # --- the mitigation actions ------------------------------------------------------------------------
        self.findings_topic = sns.Topic(self, "Findings", display_name="IoT Device Defender findings to remediate", enforce_ssl=True)
        acknowledge(
            self.findings_topic,
            "AwsSolutions-SNS2",
            "Findings name the non-compliant certificate, CA, policy or client id and why, no secrets; a KMS key "
            "would add cost and a key policy for IoT and every subscriber.",
        )
        self.quarantine_group_name = f"{prefix}_quarantine"
        self.quarantine_group_arn = f"{base}:thinggroup/{self.quarantine_group_name}"
        self._quarantine_group(base)
        self.logging_role = _iot_role(
            self,
            "LoggingRole",
            f"Lets IoT write its logs to the {IOT_LOG_GROUP} log group (set by the enable-logging mitigation)",
            [
                # The group is what CreateLogGroup is authorized on; its streams (log-group:<name>:log-stream:...),
                # what CreateLogStream and PutLogEvents are.
                iam.PolicyStatement(
                    actions=["logs:CreateLogGroup"],
                    resources=[stack.format_arn(service="logs", resource="log-group", resource_name=IOT_LOG_GROUP, arn_format=ArnFormat.COLON_RESOURCE_NAME)],
                ),
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[stack.format_arn(service="logs", resource="log-group", resource_name=f"{IOT_LOG_GROUP}:*", arn_format=ArnFormat.COLON_RESOURCE_NAME)],
                ),
            ],
        )
        acknowledge(
            self.logging_role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:AWSIotLogsV2:*]",
            "IoT names its log streams at run time, inside the one log group it writes (AWSIotLogsV2).",
        )
        self.action_names = {key: f"{prefix}_{key}" for key in ACTION_TYPES}
        self.action_roles: dict[str, iam.Role] = {}
        self.actions: dict[str, iot.CfnMitigationAction] = {}
        for key, (description, statements, params) in self._action_definitions(base, settings.logging_level).items():
            role = _iot_role(self, f"{_pascal(key)}Role", f"Lets the {self.action_names[key]} mitigation action {description}", statements)
            self.action_roles[key] = role
            self.actions[key] = iot.CfnMitigationAction(
                self, _pascal(key), action_name=self.action_names[key], role_arn=role.role_arn, action_params=params
            )
        self._acknowledge_action_roles()

        # --- the functions ---------------------------------------------------------------------------------
        self._mitigation_function(platform, settings)
        self._remediation_function(platform, settings)

    # ------------------------------------------------------------------------------------------------------
    def _audit_reads(self, checks: tuple[str, ...]) -> list[iam.PolicyStatement]:
        """What the audit reads: the actions of AWS's audit role policy (the AWSIoTDeviceDefenderAudit managed
        policy, https://docs.aws.amazon.com/iot-device-defender/latest/devguide/audit-permissions.html), with
        the resources narrowed where the action takes them, and the role-alias, Cognito and IAM reads only when
        an enabled check needs them."""
        base = self.base
        statements = [
            iam.PolicyStatement(
                actions=[
                    "iot:GetLoggingOptions", "iot:GetV2LoggingOptions", "iot:ListCACertificates",
                    "iot:ListCertificates", "iot:ListPolicies",
                ],
                resources=["*"],
            ),  # fmt: skip
            # GetEffectivePolicies is authorized on the principal it asks about: a certificate.
            iam.PolicyStatement(actions=["iot:DescribeCertificate", "iot:GetEffectivePolicies"], resources=[f"{base}:cert/*"]),
            iam.PolicyStatement(actions=["iot:DescribeCACertificate"], resources=[f"{base}:cacert/*"]),
            iam.PolicyStatement(actions=["iot:GetPolicy"], resources=[f"{base}:policy/*"]),
        ]
        if _checks_role_aliases(checks):
            statements += [
                iam.PolicyStatement(actions=["iot:ListRoleAliases"], resources=["*"]),
                iam.PolicyStatement(actions=["iot:DescribeRoleAlias"], resources=[f"{base}:rolealias/*"]),
            ]
        if any("ROLE" in check for check in checks):  # Cognito roles and role aliases: the IAM policies behind them
            statements.append(
                iam.PolicyStatement(
                    actions=[
                        "iam:GetRole", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:GetRolePolicy",
                        "iam:GetPolicy", "iam:GetPolicyVersion", "iam:GenerateServiceLastAccessedDetails",
                        "iam:GetServiceLastAccessedDetails",
                    ],
                    resources=["*"],
                )
            )  # fmt: skip
        if any("COGNITO" in check for check in checks):
            statements.append(iam.PolicyStatement(actions=["cognito-identity:GetIdentityPoolRoles"], resources=["*"]))
        return statements

    def _quarantine_group(self, base: str) -> None:
        """The group ADD_THINGS_TO_THING_GROUP moves a suspect device into, and the policy attached to it: only
        connecting as its own thing and the IoT Jobs topics, through which it can receive and report a fix."""
        self.quarantine_group = iot.CfnThingGroup(
            self,
            "QuarantineGroup",
            thing_group_name=self.quarantine_group_name,
            thing_group_properties=iot.CfnThingGroup.ThingGroupPropertiesProperty(
                thing_group_description="Devices a Device Defender finding put aside until they are fixed"
            ),
        )
        self.quarantine_policy = iot.CfnPolicy(
            self,
            "QuarantinePolicy",
            policy_name=self.quarantine_group_name,
            policy_document={
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{base}:client/{THING}"},
                    {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{base}:topicfilter/{JOBS_TOPIC}"},
                    {"Effect": "Allow", "Action": ["iot:Receive", "iot:Publish"], "Resource": f"{base}:topic/{JOBS_TOPIC}"},
                ],
            },
        )
        # CloudFormation attaches IoT policies to certificates only (AWS::IoT::PolicyPrincipalAttachment, the
        # deprecated AttachPrincipalPolicy); AttachPolicy's target may be a thing group.
        target = {"policyName": self.quarantine_group_name, "target": self.quarantine_group_arn}
        attachment = deployment_call(
            self,
            "QuarantinePolicyAttachment",
            call=cr.AwsSdkCall(
                service="Iot",
                action="attachPolicy",
                parameters=target,
                physical_resource_id=cr.PhysicalResourceId.of(f"{self.quarantine_group_name}-policy"),
            ),
            on_delete=cr.AwsSdkCall(service="Iot", action="detachPolicy", parameters=target),
            iam_action="iot:AttachPolicy",
            resources=[self.quarantine_group_arn],  # authorized on the target, not on the policy
        )
        attachment.node.add_dependency(self.quarantine_group, self.quarantine_policy)

    def _action_definitions(self, base: str, logging_level: str) -> dict[str, tuple[str, list[iam.PolicyStatement], object]]:
        """key -> (what its role lets it do, its role's statements, its ActionParams). The statements are those
        of AWS's managed policy for each action (AWSIoTDeviceDefender<...>MitigationAction), narrowed to the
        resources the actions take."""
        params = iot.CfnMitigationAction.ActionParamsProperty
        return {
            "quarantine": (
                "add a finding's things to the quarantine group",
                [
                    # ListPrincipalThings is authorized on the principal: the finding's certificate.
                    iam.PolicyStatement(actions=["iot:ListPrincipalThings"], resources=[f"{base}:cert/*"]),
                    iam.PolicyStatement(
                        actions=["iot:AddThingToThingGroup"], resources=[self.quarantine_group_arn, f"{base}:thing/*"]
                    ),
                ],
                params(
                    add_things_to_thing_group_params=iot.CfnMitigationAction.AddThingsToThingGroupParamsProperty(
                        thing_group_names=[self.quarantine_group_name]
                    )
                ),
            ),
            "deactivate_device_certificate": (
                "deactivate a device certificate",
                [iam.PolicyStatement(actions=["iot:UpdateCertificate"], resources=[f"{base}:cert/*"])],
                params(
                    update_device_certificate_params=iot.CfnMitigationAction.UpdateDeviceCertificateParamsProperty(
                        action="DEACTIVATE"
                    )
                ),
            ),
            "deactivate_ca_certificate": (
                "deactivate a CA certificate",
                [iam.PolicyStatement(actions=["iot:UpdateCACertificate"], resources=[f"{base}:cacert/*"])],
                params(
                    update_ca_certificate_params=iot.CfnMitigationAction.UpdateCACertificateParamsProperty(action="DEACTIVATE")
                ),
            ),
            "blank_policy": (
                "make a blank version the default version of an IoT policy",
                [iam.PolicyStatement(actions=["iot:CreatePolicyVersion"], resources=[f"{base}:policy/*"])],
                params(
                    replace_default_policy_version_params=iot.CfnMitigationAction.ReplaceDefaultPolicyVersionParamsProperty(
                        template_name="BLANK_POLICY"
                    )
                ),
            ),
            "enable_logging": (
                "turn IoT logging on, with the logging role",
                [
                    iam.PolicyStatement(actions=["iot:SetV2LoggingOptions"], resources=["*"]),
                    iam.PolicyStatement(
                        actions=["iam:PassRole"],
                        resources=[self.logging_role.role_arn],
                        conditions={"StringEquals": {"iam:PassedToService": "iot.amazonaws.com"}},
                    ),
                ],
                params(
                    enable_io_t_logging_params=iot.CfnMitigationAction.EnableIoTLoggingParamsProperty(
                        log_level=logging_level, role_arn_for_logging=self.logging_role.role_arn
                    )
                ),
            ),
            "publish_finding": (
                "publish a finding to the findings topic",
                [iam.PolicyStatement(actions=["sns:Publish"], resources=[self.findings_topic.topic_arn])],
                params(
                    publish_finding_to_sns_params=iot.CfnMitigationAction.PublishFindingToSnsParamsProperty(
                        topic_arn=self.findings_topic.topic_arn
                    )
                ),
            ),
        }

    def _acknowledge_action_roles(self) -> None:
        arn = "arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>"
        reasons = {
            ("quarantine", "thing/*"): "Any device a finding names may be quarantined: things are created at run time. Only into the quarantine group.",
            ("quarantine", "cert/*"): "A finding may name any device certificate of the account; the action only lists its things.",
            ("deactivate_device_certificate", "cert/*"): "A finding may name any device certificate of the account; the action can only deactivate it.",
            ("deactivate_ca_certificate", "cacert/*"): "A finding may name any CA certificate of the account; the action can only deactivate it.",
            ("blank_policy", "policy/*"): "A finding may name any IoT policy of the account; the action can only add a blank default version.",
        }
        for (key, resource), reason in reasons.items():
            acknowledge(self.action_roles[key], f"AwsSolutions-IAM5[Resource::{arn}:{resource}]", reason)
        acknowledge(
            self.action_roles["enable_logging"],
            "AwsSolutions-IAM5[Resource::*]",
            "iot:SetV2LoggingOptions is account-wide and takes no resource-level permissions; iam:PassRole is on "
            "the logging role only.",
        )

    # ------------------------------------------------------------------------------------------------------
    def _dead_letters(self, platform: Platform, construct_id: str, function: str) -> DeadLetterQueue:
        return DeadLetterQueue(
            self,
            construct_id,
            platform=platform,
            purpose=f"{function} invocations that failed after retries",
            delivered_by=f"{function}'s OnFailure destination (Lambda's asynchronous invocation from SNS)",
        )

    def _mitigation_function(self, platform: Platform, settings: DefenderConfig) -> None:
        mapping = {check: [self.action_names[key] for key in keys] for check, keys in settings.mitigations.items()}
        self.mitigation_dead_letters = self._dead_letters(platform, "MitigationDeadLetters", "mitigate_audit_findings")
        backend_function = BackendFunction(
            self,
            "MitigateAuditFindings",
            platform=platform,
            package="mitigate_audit_findings",
            description="On an audit notification, starts the configured mitigation actions on its findings",
            environment={
                "MITIGATION_ACTIONS": json.dumps(mapping, separators=(",", ":")),
                "DRY_RUN": "true" if settings.dry_run else "false",
                # Malformed notifications are kept here with their reason (the OnFailure destination's grant).
                "DEAD_LETTER_QUEUE_URL": self.mitigation_dead_letters.queue.queue_url,
            },
            timeout=Duration.seconds(60),
        )
        self.mitigation_function = function = backend_function.function
        function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.mitigation_dead_letters.queue), retry_attempts=2, max_event_age=MAX_EVENT_AGE
        )
        self.audit_topic.add_subscription(subscriptions.LambdaSubscription(function))
        # None takes resource-level permissions; the task uses the actions' own roles (it passes none).
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "iot:ListAuditFindings",
                    "iot:StartAuditMitigationActionsTask",
                    "iot:DescribeAuditMitigationActionsTask",  # which findings a task started earlier covers
                ],
                resources=["*"],
            )
        )
        acknowledge(
            backend_function.role,
            "AwsSolutions-IAM5[Resource::*]",
            "iot:ListAuditFindings, iot:StartAuditMitigationActionsTask and iot:DescribeAuditMitigationActionsTask "
            "take no resource-level permissions; the task can only apply the account's mitigation actions, each "
            "limited by its own role.",
        )
        platform.monitoring.graph_outcomes("Device Defender: mitigation tasks", "mitigate_audit_findings", MITIGATION_OUTCOMES)

    def _remediation_function(self, platform: Platform, settings: DefenderConfig) -> None:
        base = self.base
        self.remediations = table(self, "Remediations", platform=platform, partition_key="findingId", sort_key="change")
        self.notices = sns.Topic(self, "Notices", display_name="IoT Device Defender remediation notices", enforce_ssl=True)
        acknowledge(
            self.notices,
            "AwsSolutions-SNS2",
            "Notices tell operators which device was remediated and why, no secrets; a KMS key would add cost and "
            "a key policy for every subscriber.",
        )
        self.remediation_dead_letters = self._dead_letters(platform, "RemediationDeadLetters", "remediate_finding")
        backend_function = BackendFunction(
            self,
            "RemediateFinding",
            platform=platform,
            package="remediate_finding",
            description="On a published finding, quarantines or deactivates the device and notifies the operators",
            environment={
                "REMEDIATIONS_TABLE": self.remediations.table_name,
                "NOTICES_TOPIC_ARN": self.notices.topic_arn,
                "QUARANTINE_GROUP": self.quarantine_group_name,
                "DRY_RUN": "true" if settings.dry_run else "false",
                "DEAD_LETTER_QUEUE_URL": self.remediation_dead_letters.queue.queue_url,
            },
        )
        self.remediation_function = function = backend_function.function
        function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.remediation_dead_letters.queue), retry_attempts=2, max_event_age=MAX_EVENT_AGE
        )
        self.findings_topic.add_subscription(subscriptions.LambdaSubscription(function))
        self.remediations.grant(function, "dynamodb:UpdateItem")
        self.notices.grant_publish(function)
        for actions, resources in [
            (["iot:UpdateCertificate", "iot:DescribeCertificate", "iot:ListPrincipalThings"], [f"{base}:cert/*"]),
            (["iot:AddThingToThingGroup"], [self.quarantine_group_arn, f"{base}:thing/*"]),
        ]:
            function.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=resources))
        for resource, reason in [
            ("cert/*", "A finding may name any device certificate of the account: read it, revoke it, list its things."),
            ("thing/*", "Any device a finding names may be quarantined: things are created at run time. Only into the quarantine group."),
        ]:
            acknowledge(
                backend_function.role,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:{resource}]",
                reason,
            )
        platform.monitoring.graph_outcomes("Device Defender: remediations", "remediate_finding", REMEDIATION_OUTCOMES)


def _checks_role_aliases(checks: tuple[str, ...]) -> bool:
    return any("ROLE_ALIAS" in check for check in checks)


def _pascal(key: str) -> str:
    return "".join(part.capitalize() for part in key.split("_"))

