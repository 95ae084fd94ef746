"""The one way to create a topic rule: SQL 2016-03-23, a checked name, and an errorAction, always."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import aws_cdk.aws_iot_actions_alpha as actions
import aws_cdk.aws_iot_alpha as iot
from constructs import Construct

from stacks.platform.checks import acknowledge

if TYPE_CHECKING:
    from stacks.config import DefenderConfig
    from stacks.platform.platform import Platform

_RULE_NAME = re.compile(r"[a-zA-Z0-9_]{1,128}")


def topic_rule(
    scope: Construct,
    construct_id: str,
    *,
    platform: Platform,
    name: str,
    sql: str,
    action: iot.IAction,
    description: str,
) -> iot.TopicRule:
    """A rule named `<namePrefix>_<name>`. Failed actions go to the platform's rule-error queue, in the
    format AWS documents (the failing message, base64, with the error), so nothing is silently lost."""
    rule_name = f"{platform.config.resource_name_prefix}_{name}"
    if not _RULE_NAME.fullmatch(rule_name):
        raise ValueError(f"Topic rule name {rule_name!r} must match ^[a-zA-Z0-9_]+$ and be at most 128 characters")
    rule = iot.TopicRule(
        scope,
        construct_id,
        topic_rule_name=rule_name,
        description=description,
        sql=iot.IotSql.from_string_as_ver20160323(sql),
        actions=[action],
        error_action=actions.SqsQueueAction(platform.rule_errors.queue),
    )
    platform.monitoring.watch_rule(rule_name)
    if keeps_iot_logging_on(platform.config.defender):
        acknowledge(
            rule,
            "IoT-LOG1",
            "IoT's v2 logging is one setting per account and region, which stages of this app share, so the app "
            "does not own it; Device Defender's LOGGING_DISABLED_CHECK finds it off and the ENABLE_IOT_LOGGING "
            "mitigation turns it on (deviceBackend.defender.loggingLevel).",
        )
    return rule


def keeps_iot_logging_on(defender: DefenderConfig) -> bool:
    """Whether the app's audit finds IoT logging off and its mitigation turns it on."""
    check = "LOGGING_DISABLED_CHECK"
    return defender.enabled and check in defender.audit_checks and "enable_logging" in defender.mitigations.get(check, ())
