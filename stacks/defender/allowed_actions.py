"""Which mitigation action types AWS IoT Device Defender applies to the findings of which audit check.

The table is AWS's "Audit check to mitigation action mapping"
(https://docs.aws.amazon.com/iot-device-defender/latest/devguide/dd-mitigation-actions.html), keyed here by
the checks' current API names (that page still prints some older aliases: REVOKED_CA_CERT_CHECK is
REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK, IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK is
IOT_POLICY_POTENTIAL_MIS_CONFIGURATION_CHECK). StartAuditMitigationActionsTask takes 1 to 5 actions per check
(https://docs.aws.amazon.com/iot/latest/apireference/API_StartAuditMitigationActionsTask.html).

No AWS imports here: the configuration (stacks/config.py) checks the check -> actions map against this table
before anything is built.
"""

from __future__ import annotations

ADD_THINGS_TO_THING_GROUP = "ADD_THINGS_TO_THING_GROUP"
UPDATE_DEVICE_CERTIFICATE = "UPDATE_DEVICE_CERTIFICATE"
UPDATE_CA_CERTIFICATE = "UPDATE_CA_CERTIFICATE"
REPLACE_DEFAULT_POLICY_VERSION = "REPLACE_DEFAULT_POLICY_VERSION"
ENABLE_IOT_LOGGING = "ENABLE_IOT_LOGGING"
PUBLISH_FINDING_TO_SNS = "PUBLISH_FINDING_TO_SNS"

# The app's mitigation actions, by the short key the configuration uses (deployed as <namePrefix>_<key>).
ACTION_TYPES: dict[str, str] = {
    "quarantine": ADD_THINGS_TO_THING_GROUP,
    "deactivate_device_certificate": UPDATE_DEVICE_CERTIFICATE,
    "deactivate_ca_certificate": UPDATE_CA_CERTIFICATE,
    "blank_policy": REPLACE_DEFAULT_POLICY_VERSION,
    "enable_logging": ENABLE_IOT_LOGGING,
    "publish_finding": PUBLISH_FINDING_TO_SNS,
}

_DEVICE_CERTIFICATE = frozenset({PUBLISH_FINDING_TO_SNS, UPDATE_DEVICE_CERTIFICATE, ADD_THINGS_TO_THING_GROUP})
_CA_CERTIFICATE = frozenset({PUBLISH_FINDING_TO_SNS, UPDATE_CA_CERTIFICATE})
_POLICY = frozenset({PUBLISH_FINDING_TO_SNS, REPLACE_DEFAULT_POLICY_VERSION})
_NOTIFY_ONLY = frozenset({PUBLISH_FINDING_TO_SNS})

# audit check (API name) -> the mitigation action types AWS allows on its findings
ALLOWED_ACTION_TYPES: dict[str, frozenset[str]] = {
    "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK": _CA_CERTIFICATE,
    "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK": _DEVICE_CERTIFICATE,
    "DEVICE_CERTIFICATE_SHARED_CHECK": _DEVICE_CERTIFICATE,
    "UNAUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK": _NOTIFY_ONLY,
    "AUTHENTICATED_COGNITO_ROLE_OVERLY_PERMISSIVE_CHECK": _NOTIFY_ONLY,
    "IOT_POLICY_OVERLY_PERMISSIVE_CHECK": _POLICY,
    "IOT_POLICY_POTENTIAL_MIS_CONFIGURATION_CHECK": _POLICY,
    "CA_CERTIFICATE_EXPIRING_CHECK": _CA_CERTIFICATE,
    "CONFLICTING_CLIENT_IDS_CHECK": _NOTIFY_ONLY,
    "DEVICE_CERTIFICATE_EXPIRING_CHECK": _DEVICE_CERTIFICATE,
    "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK": _DEVICE_CERTIFICATE,
    "LOGGING_DISABLED_CHECK": frozenset({PUBLISH_FINDING_TO_SNS, ENABLE_IOT_LOGGING}),
    "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK": _DEVICE_CERTIFICATE,
    "CA_CERTIFICATE_KEY_QUALITY_CHECK": _CA_CERTIFICATE,
    "IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK": _NOTIFY_ONLY,
    "IOT_ROLE_ALIAS_ALLOWS_ACCESS_TO_UNUSED_SERVICES_CHECK": _NOTIFY_ONLY,
}

# Every audit check the API names (AWS::IoT::ScheduledAudit TargetCheckNames); DEVICE_CERTIFICATE_AGE_CHECK is
# not in the mapping table above, so no mitigation action may be mapped to it.
AUDIT_CHECKS: tuple[str, ...] = tuple(sorted({*ALLOWED_ACTION_TYPES, "DEVICE_CERTIFICATE_AGE_CHECK"}))

MAX_ACTIONS_PER_CHECK = 5


def mapping_problem(check: str, keys: list[str] | tuple[str, ...], enabled_checks: tuple[str, ...]) -> str | None:
    """Why `check` -> `keys` (action keys, in the order they are applied) cannot be used, or None."""
    if check not in AUDIT_CHECKS:
        return f"{check!r} is not an audit check; the checks are: {', '.join(AUDIT_CHECKS)}"
    if check not in enabled_checks:
        return f"{check!r} is not among the enabled audit checks (defender.auditChecks), so it has no findings"
    allowed_types = ALLOWED_ACTION_TYPES.get(check, frozenset())
    allowed_keys = [key for key, action_type in ACTION_TYPES.items() if action_type in allowed_types]
    allowed = ", ".join(allowed_keys) if allowed_keys else "none"
    if not keys:
        return f"{check!r} maps to no action; give 1 to {MAX_ACTIONS_PER_CHECK} of: {allowed}"
    if len(keys) > MAX_ACTIONS_PER_CHECK:
        return f"{check!r} maps to {len(keys)} actions; AWS applies at most {MAX_ACTIONS_PER_CHECK} per check"
    if len(set(keys)) != len(keys):
        return f"{check!r} names an action twice"
    for key in keys:
        if key not in ACTION_TYPES:
            return f"{key!r} (for {check!r}) is not one of the app's mitigation actions: {', '.join(ACTION_TYPES)}"
        if ACTION_TYPES[key] not in allowed_types:
            return (
                f"AWS does not allow {key!r} ({ACTION_TYPES[key]}) on findings of {check!r}; allowed for it: {allowed}"
            )
    return None
