"""The app's one typed configuration, read from CDK context (`cdk.json`, or `-c key=value`) with safe defaults.

Every key is `deviceBackend.<name>`. A value that does not fit, or an unknown `deviceBackend.` key (a typo
would otherwise be silently ignored), fails synth with a message naming the key and what it allows.
Values given with `-c` arrive as strings and are converted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from stacks.function_code import function_module

PREFIX = "deviceBackend."

# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS",
    1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}  # fmt: skip


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class PresenceConfig:
    disconnect_delay_seconds: int = 5
    batch_size: int = 10
    max_concurrency: int = 10
    track_subscriptions: bool = True


@dataclass(frozen=True)
class RegistryConfig:
    batch_size: int = 10
    max_concurrency: int = 2
    # The registry event configuration (UpdateEventConfigurations) is one per account and region: off where
    # another stage or tool in the same account and region already turns the events on.
    manage_event_configuration: bool = True


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA the app registers with IoT, with auto-registration on: its devices are onboarded by JITR (the
    activation function checks each certificate) or JITP (IoT provisions them with the app's JITP template)."""

    name: str  # names its construct
    certificate: str  # PEM text
    verification_certificate: str | None  # PEM text; None registers in SNI_ONLY mode (no proof of possession)
    mode: str  # JITR or JITP


@dataclass(frozen=True)
class OnboardingConfig:
    # Bounded so that a flood of new devices stays inside IoT's control-plane quotas (UpdateCertificate
    # about 10 TPS, AttachPolicy 15): each activation makes one call of each.
    activation_batch_size: int = 5
    activation_max_concurrency: int = 2
    require_allow_list: bool = False
    trust_refresh_seconds: int = 300
    certificate_authorities: tuple[CertificateAuthority, ...] = ()


@dataclass(frozen=True)
class AuthorizerConfig:
    """The custom authorizer: devices present a signed token (a JWT) over MQTT (username/password), HTTP or
    WebSocket (header or query string). Off until the operator gives the keys that verify the tokens."""

    enabled: bool = False
    token_key_name: str = "x-device-token"
    # JWT verification: the operator's public keys (a JWKS file), pinned algorithm, issuer and audience.
    jwt_keys: str | None = None  # JWKS text, read from the configured file
    jwt_algorithm: str = "ES256"
    jwt_issuer: str = "device-backend"
    jwt_audience: str = "iot"
    clock_skew_seconds: int = 60
    keys_refresh_seconds: int = 300
    # IoT's own check of the token's signature before it invokes the function (TokenSigningPublicKeys).
    token_signing_public_keys: tuple[tuple[str, str], ...] = ()  # (key name, PEM text)
    token_signing_disabled: bool = False
    default_for_domain: bool = False  # a domain configuration whose default authorizer this is
    # The authorizer function's reserved concurrency: kept for it in a reconnect storm, and its ceiling. None:
    # none, since reserving takes from the account's quota (new accounts may have as little as 10 in all).
    reserved_concurrency: int | None = None
    # The topics a device may use, `{clientId}` standing for its own client ID (= its thing name); IoT policy
    # wildcards (`*`) allowed. The same convention as the shared device policy of onboarding.
    topics: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("publish", ("dt/*/{clientId}/*", "$aws/things/{clientId}/shadow/*")),
        ("subscribe", ("cmd/*/{clientId}/*", "$aws/things/{clientId}/shadow/*")),
        ("receive", ("cmd/*/{clientId}/*", "$aws/things/{clientId}/shadow/*")),
    )


@dataclass(frozen=True)
class ObjectLock:
    """S3 Object Lock's default retention on the raw archive: each new object version cannot be deleted or
    overwritten for `days` (GOVERNANCE: except by a principal allowed s3:BypassGovernanceRetention; COMPLIANCE:
    by no one, the account's root user included)."""

    mode: str  # GOVERNANCE or COMPLIANCE
    days: int


@dataclass(frozen=True)
class TelemetryConfig:
    """Device data on `dt/<application>/<thing>/<kind>`; commands to devices on `cmd/<application>/<thing>/...`."""

    application: str = "fleet"
    history_days: int = 30  # readings older than this leave the history table (DynamoDB TTL)
    archive_days: int = 365  # raw messages older than this leave the archive bucket
    archive_object_lock: ObjectLock | None = None  # None: versioning only, no Object Lock
    enrichment_cache_seconds: int = 300  # how long a container trusts what it read of a thing's registry entry
    # At most this many ingest_telemetry run at once (reserved concurrency); beyond it, readings wait in Lambda's
    # asynchronous queue. None: no cap, which a telemetry flood can use to starve the functions devices wait on.
    reserved_concurrency: int | None = None
    # kind -> measure -> {"min": x, "max": y}; for every thing, and per thing group (a group can only tighten)
    thresholds: Mapping[str, Mapping[str, Mapping[str, float]]] = field(
        default_factory=lambda: {
            "environment": {"temperature": {"min": 5, "max": 35}, "humidity": {"max": 90}},
            "soil": {"moisture": {"min": 20}},
            "power": {"battery": {"min": 15}},
        }
    )
    group_thresholds: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]] = field(default_factory=dict)


# The audit checks relevant to this backend's devices (certificates, CAs, IoT policies, client IDs, logging).
DEFAULT_AUDIT_CHECKS = (
    "DEVICE_CERTIFICATE_SHARED_CHECK",
    "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK",
    "DEVICE_CERTIFICATE_EXPIRING_CHECK",
    "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK",
    "CA_CERTIFICATE_EXPIRING_CHECK",
    "CA_CERTIFICATE_KEY_QUALITY_CHECK",
    "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK",
    "CONFLICTING_CLIENT_IDS_CHECK",
    "IOT_POLICY_OVERLY_PERMISSIVE_CHECK",
    "LOGGING_DISABLED_CHECK",
)
# check -> the app's mitigation actions (stacks/defender/allowed_actions.py), applied in this order; if one fails,
# AWS skips the rest for that finding, so the operator's notice (publish_finding) comes first. Disruptive actions
# only where the finding leaves no doubt (a revoked certificate still active; logging off); blank_policy is
# available but not mapped: it would cut off every device sharing the policy.
DEFAULT_MITIGATIONS: dict[str, tuple[str, ...]] = {
    "DEVICE_CERTIFICATE_SHARED_CHECK": ("publish_finding", "quarantine"),
    "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK": ("publish_finding", "deactivate_device_certificate"),
    "DEVICE_CERTIFICATE_EXPIRING_CHECK": ("publish_finding",),
    "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK": ("publish_finding", "quarantine"),
    "CA_CERTIFICATE_EXPIRING_CHECK": ("publish_finding",),
    "CA_CERTIFICATE_KEY_QUALITY_CHECK": ("publish_finding",),
    "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK": ("publish_finding", "deactivate_ca_certificate"),
    "CONFLICTING_CLIENT_IDS_CHECK": ("publish_finding",),
    "IOT_POLICY_OVERLY_PERMISSIVE_CHECK": ("publish_finding",),
    "LOGGING_DISABLED_CHECK": ("publish_finding", "enable_logging"),
}


@dataclass(frozen=True)
class DefenderConfig:
    """Device Defender audit and mitigation. The audit configuration (AWS::IoT::AccountAuditConfiguration) is
    ONE per account and region, not per stack: with `enabled` true this app owns it (checks, notification
    target, role), and a second stack or another tool configuring audit in the same account and region would
    overwrite it. Turn it off where another owner manages Device Defender audit."""

    enabled: bool = True
    audit_checks: tuple[str, ...] = DEFAULT_AUDIT_CHECKS
    audit_frequency: str = "DAILY"  # DAILY, WEEKLY, BIWEEKLY or MONTHLY; IoT picks the time of day
    audit_day: str | None = None  # SUN..SAT for WEEKLY and BIWEEKLY; "1".."31" or "LAST" for MONTHLY
    mitigations: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_MITIGATIONS))
    dry_run: bool = False  # the functions decide and log, but change nothing and start no task
    logging_level: str = "ERROR"  # the level ENABLE_IOT_LOGGING sets (DEBUG, INFO, WARN or ERROR)


# The longest name a prefix goes into: the fleet-provisioning template `<prefix>_fleet`, of at most 36 characters.
MAX_RESOURCE_NAME_PREFIX = 30


@dataclass(frozen=True)
class BackendConfig:
    # The environment (dev, prod...): in the stack's name and in every name the app sets, so that stages do not
    # clash in one account. None: the single environment's names (DeviceBackend, iot_backend_...).
    stage: str | None = None
    name_prefix: str = "iot_backend"
    metrics_namespace: str = "IotDeviceBackend"
    log_level: str = "INFO"
    log_retention_days: int = 30
    alarm_email: str | None = None
    retain_data: bool = True
    max_receive_count: int = 5
    tracing: bool = False  # Lambda active tracing (X-Ray) on every function
    presence: PresenceConfig = field(default_factory=PresenceConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    onboarding: OnboardingConfig = field(default_factory=OnboardingConfig)
    authorizer: AuthorizerConfig = field(default_factory=AuthorizerConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    defender: DefenderConfig = field(default_factory=DefenderConfig)

    @property
    def resource_name_prefix(self) -> str:
        """What every name the app gives a resource starts with (rules, IoT policies, thing groups, templates,
        the authorizer, mitigation actions, the scheduled audit, SSM parameters): the prefix, then the stage."""
        return self.name_prefix if self.stage is None else f"{self.name_prefix}_{self.stage}"

    @property
    def stage_metrics_namespace(self) -> str:
        """The functions' metrics and the alarms on them: one namespace per stage, so that two stages in one
        account and region neither mix their metrics nor set off each other's alarms."""
        return self.metrics_namespace if self.stage is None else f"{self.metrics_namespace}/{self.stage}"


def _structured(value: Any, allowed: str) -> Any:
    """A list or object from cdk.json as it is; from `-c key='<JSON>'`, as a string to decode."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ConfigError(allowed) from None


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"a whole number from {low} to {high}")
        return value

    return parse


def _boolean(value: Any) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise ConfigError("true or false")
    return value


def _matching(pattern: str, allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            raise ConfigError(allowed)
        return value

    return parse


def _choice(*choices: Any) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        for choice in choices:
            if value == choice or str(value) == str(choice):
                return choice
        raise ConfigError("one of " + ", ".join(str(choice) for choice in choices))

    return parse


_CA_KEYS = {"name", "certificate", "verificationCertificate", "mode"}
_CA_ALLOWED = (
    'a list of {"name": letters and digits, "certificate": a PEM file, "verificationCertificate": a PEM file or '
    'null, "mode": "JITR" or "JITP"}, names unique'
)


def _pem_file(value: Any, base: Path) -> str:
    if not isinstance(value, str):
        raise ConfigError(_CA_ALLOWED)
    path = base / value
    if not path.is_file():
        raise ConfigError(f"{_CA_ALLOWED}; {value} is not a file (relative to {base})")
    text = path.read_text()
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(f"{_CA_ALLOWED}; {value} holds no PEM certificate")
    return text


def _certificate_authorities(base: Path) -> Callable[[Any], tuple[CertificateAuthority, ...]]:
    def parse(value: Any) -> tuple[CertificateAuthority, ...]:
        value = _structured(value, _CA_ALLOWED)  # -c deviceBackend.onboarding.certificateAuthorities='[...]'
        if not isinstance(value, list):
            raise ConfigError(_CA_ALLOWED)
        authorities = []
        for item in value:
            if not isinstance(item, dict) or set(item) - _CA_KEYS or not {"name", "certificate", "mode"} <= set(item):
                raise ConfigError(_CA_ALLOWED)
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,63}", str(item["name"])) or item["mode"] not in ("JITR", "JITP"):
                raise ConfigError(_CA_ALLOWED)
            verification = item.get("verificationCertificate")
            authorities.append(
                CertificateAuthority(
                    name=item["name"],
                    certificate=_pem_file(item["certificate"], base),
                    verification_certificate=None if verification is None else _pem_file(verification, base),
                    mode=item["mode"],
                )
            )
        if len({authority.name for authority in authorities}) != len(authorities):
            raise ConfigError(_CA_ALLOWED)
        return tuple(authorities)

    return parse


def _text_file(kind: str, check: Callable[[str], bool], base: Path) -> Callable[[Any], str | None]:
    def parse(value: Any) -> str | None:
        if value in (None, ""):
            return None
        if not isinstance(value, str) or not (base / value).is_file():
            raise ConfigError(f"a path (from the project folder) of {kind}, or null")
        text = (base / value).read_text()
        if not check(text):
            raise ConfigError(f"a path (from the project folder) of {kind}; {value} is not one")
        return text

    return parse


def _jwks(text: str) -> bool:
    try:
        keys = json.loads(text).get("keys")
    except (ValueError, AttributeError):
        return False
    return isinstance(keys, list) and bool(keys) and all(isinstance(key, dict) and "kty" in key for key in keys)


def _signing_keys(base: Path) -> Callable[[Any], tuple[tuple[str, str], ...]]:
    allowed = 'an object of at most 2 key names ([a-zA-Z0-9:_-], up to 128) to PEM public key files'

    def parse(value: Any) -> tuple[tuple[str, str], ...]:
        value = _structured(value, allowed)
        if not isinstance(value, dict) or len(value) > 2:
            raise ConfigError(allowed)
        pem = _text_file("a PEM public key", lambda text: "-----BEGIN PUBLIC KEY-----" in text, base)
        keys = []
        for name, path in sorted(value.items()):
            if not re.fullmatch(r"[a-zA-Z0-9:_-]{1,128}", name) or path in (None, ""):
                raise ConfigError(allowed)
            keys.append((name, pem(path)))
        return tuple(keys)

    return parse


def _topics(value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    allowed = (
        'an object {"publish": [...], "subscribe": [...], "receive": [...]} of topic templates, each holding '
        "{clientId}, with no + or # (IoT policies use *)"
    )
    value = _structured(value, allowed)
    if not isinstance(value, dict) or set(value) != {"publish", "subscribe", "receive"}:
        raise ConfigError(allowed)
    for templates in value.values():
        if not isinstance(templates, list) or not templates or not all(
            isinstance(t, str) and "{clientId}" in t and not set(t) & {"+", "#"} and len(t) <= 256 for t in templates
        ):
            raise ConfigError(allowed)
    return tuple((action, tuple(value[action])) for action in ("publish", "subscribe", "receive"))


_KINDS = function_module("ingest_telemetry/kinds.py").KINDS


def _thresholds(value: Any) -> dict[str, dict[str, dict[str, float]]]:
    """kind -> measure -> limits, checked against the kinds' models (functions/ingest_telemetry/kinds.py)."""
    kinds = "; ".join(f"{kind}: {', '.join(spec.measures)}" for kind, spec in _KINDS.items())
    allowed = (
        'an object {"<kind>": {"<measure>": {"min": number, "max": number}}} (either bound may be left out; '
        f"min below max; within what the sensor can report), of these kinds and measures: {kinds}"
    )
    value = _structured(value, allowed)
    if not isinstance(value, dict):
        raise ConfigError(allowed)
    for kind, measures in value.items():
        if kind not in _KINDS or not isinstance(measures, dict):
            raise ConfigError(allowed)
        for measure, bounds in measures.items():
            spec = _KINDS[kind].measures.get(measure)
            if spec is None or not isinstance(bounds, dict) or not bounds or set(bounds) - {"min", "max"}:
                raise ConfigError(allowed)
            if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds.values()):
                raise ConfigError(allowed)
            if not all(spec.low <= b <= spec.high for b in bounds.values()):
                raise ConfigError(f"{allowed}; {kind}.{measure} is reported from {spec.low:g} to {spec.high:g} {spec.unit}")
            if bounds.get("min", spec.low) >= bounds.get("max", spec.high + 1):
                raise ConfigError(allowed)
    return value


def _group_thresholds(value: Any) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    allowed = 'an object {"<thing group name>": thresholds} (see telemetry.thresholds)'
    value = _structured(value, allowed)
    if not isinstance(value, dict) or not all(isinstance(g, str) and re.fullmatch(r"[a-zA-Z0-9:_-]{1,128}", g) for g in value):
        raise ConfigError(allowed)
    return {group: _thresholds(thresholds) for group, thresholds in value.items()}


def _object_lock(value: Any) -> ObjectLock | None:
    allowed = '{"mode": "GOVERNANCE" or "COMPLIANCE", "days": a whole number from 1 to 3650}, or null'
    value = _structured(value, allowed)  # -c deviceBackend.telemetry.archiveObjectLock='{...}' (or null)
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"mode", "days"} or value["mode"] not in ("GOVERNANCE", "COMPLIANCE"):
        raise ConfigError(allowed)
    days = value["days"]
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
        raise ConfigError(allowed)
    return ObjectLock(mode=value["mode"], days=days)


def _audit_checks(value: Any) -> tuple[str, ...]:
    from stacks.defender.allowed_actions import AUDIT_CHECKS  # here: stacks.defender imports this module

    allowed = f"a non-empty list of distinct audit check names, of: {', '.join(AUDIT_CHECKS)}"
    value = _structured(value, allowed)
    if not isinstance(value, list) or not value or len(set(map(str, value))) != len(value):
        raise ConfigError(allowed)
    unknown = [check for check in value if check not in AUDIT_CHECKS]
    if unknown:
        raise ConfigError(f"{allowed}; {unknown[0]!r} is not one")
    return tuple(value)


def _audit_day(value: Any) -> str:
    """A day of the week (WEEKLY, BIWEEKLY) or of the month (MONTHLY: 29-31 mean the last day in shorter months)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not re.fullmatch(r"SUN|MON|TUE|WED|THU|FRI|SAT|[1-9]|[12][0-9]|3[01]|LAST", value):
        raise ConfigError("SUN..SAT (weekly, biweekly), 1..31 or LAST (monthly), or null (daily)")
    return value


def _mitigations(value: Any) -> dict[str, tuple[str, ...]]:
    from stacks.defender.allowed_actions import ACTION_TYPES, MAX_ACTIONS_PER_CHECK

    allowed = (
        f'an object {{"<audit check>": ["<action>", ...]}} of 1 to {MAX_ACTIONS_PER_CHECK} actions per check, '
        f"each one of: {', '.join(ACTION_TYPES)}"
    )
    value = _structured(value, allowed)
    if not isinstance(value, dict) or not all(
        isinstance(keys, list) and all(isinstance(key, str) for key in keys) for keys in value.values()
    ):
        raise ConfigError(allowed)
    return {check: tuple(keys) for check, keys in value.items()}  # checked against AWS's table in _defender


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value in (None, "") else parse(value)


# context key (after the prefix) -> (where it goes in BackendConfig, how it is read)
_SETTINGS: dict[str, tuple[tuple[str, ...], Callable[[Any], Any]]] = {
    # Letters and digits: topic rule names take no '-', stack names no '_'. Lowercase, so that a stage is
    # spelled one way in every name.
    "stage": (
        ("stage",),
        _optional(_matching(r"[a-z][a-z0-9]{0,15}", "1-16 lowercase letters or digits, starting with a letter, or null")),
    ),
    "namePrefix": (
        ("name_prefix",),
        _matching(
            rf"[A-Za-z][A-Za-z0-9_]{{0,{MAX_RESOURCE_NAME_PREFIX - 1}}}",
            f"1-{MAX_RESOURCE_NAME_PREFIX} letters, digits or '_', starting with a letter (IoT names)",
        ),
    ),
    "metricsNamespace": (
        ("metrics_namespace",),
        _matching(r"[A-Za-z0-9._/#:-]{1,255}", "1-255 of letters, digits and . _ / # : -"),
    ),
    "logLevel": (("log_level",), _choice("DEBUG", "INFO", "WARNING", "ERROR")),
    "logRetentionDays": (("log_retention_days",), _choice(*LOG_RETENTION_DAYS)),
    "alarmEmail": (("alarm_email",), _optional(_matching(r"[^@\s]+@[^@\s]+\.[^@\s]+", "an e-mail address or null"))),
    "retainData": (("retain_data",), _boolean),
    "maxReceiveCount": (("max_receive_count",), _integer(1, 1000)),
    "tracing": (("tracing",), _boolean),
    "presence.disconnectDelaySeconds": (("presence", "disconnect_delay_seconds"), _integer(0, 900)),
    "presence.batchSize": (("presence", "batch_size"), _integer(1, 10)),
    "presence.maxConcurrency": (("presence", "max_concurrency"), _integer(2, 1000)),
    "presence.trackSubscriptions": (("presence", "track_subscriptions"), _boolean),
    "registry.batchSize": (("registry", "batch_size"), _integer(1, 10)),
    "registry.maxConcurrency": (("registry", "max_concurrency"), _integer(2, 1000)),
    "registry.manageEventConfiguration": (("registry", "manage_event_configuration"), _boolean),
    "onboarding.activationBatchSize": (("onboarding", "activation_batch_size"), _integer(1, 10)),
    "onboarding.activationMaxConcurrency": (("onboarding", "activation_max_concurrency"), _integer(2, 10)),
    "onboarding.requireAllowList": (("onboarding", "require_allow_list"), _boolean),
    "onboarding.trustRefreshSeconds": (("onboarding", "trust_refresh_seconds"), _integer(0, 3600)),
    # Paths are relative to the project (where cdk.json is).
    "onboarding.certificateAuthorities": (
        ("onboarding", "certificate_authorities"),
        _certificate_authorities(Path(__file__).resolve().parents[1]),
    ),
    "authorizer.enabled": (("authorizer", "enabled"), _boolean),
    "authorizer.tokenKeyName": (("authorizer", "token_key_name"), _matching(r"[a-zA-Z0-9_-]{1,128}", "1-128 of a-z, A-Z, 0-9, _ and -")),
    "authorizer.jwtKeys": (
        ("authorizer", "jwt_keys"),
        _text_file("a JWKS (JSON with a non-empty \"keys\" list)", _jwks, Path(__file__).resolve().parents[1]),
    ),
    "authorizer.jwtAlgorithm": (("authorizer", "jwt_algorithm"), _choice("ES256", "RS256", "EdDSA")),
    "authorizer.jwtIssuer": (("authorizer", "jwt_issuer"), _matching(r"[\x21-\x7e]{1,256}", "1-256 printable characters")),
    "authorizer.jwtAudience": (("authorizer", "jwt_audience"), _matching(r"[\x21-\x7e]{1,256}", "1-256 printable characters")),
    "authorizer.clockSkewSeconds": (("authorizer", "clock_skew_seconds"), _integer(0, 300)),
    "authorizer.keysRefreshSeconds": (("authorizer", "keys_refresh_seconds"), _integer(60, 3600)),
    "authorizer.tokenSigningPublicKeys": (
        ("authorizer", "token_signing_public_keys"),
        _signing_keys(Path(__file__).resolve().parents[1]),
    ),
    "authorizer.tokenSigningDisabled": (("authorizer", "token_signing_disabled"), _boolean),
    "authorizer.defaultForDomain": (("authorizer", "default_for_domain"), _boolean),
    "authorizer.reservedConcurrency": (("authorizer", "reserved_concurrency"), _optional(_integer(1, 1000))),
    "authorizer.topics": (("authorizer", "topics"), _topics),
    # The second level of the device topics (dt/<application>/<thing>/<kind>); no MQTT wildcards.
    "telemetry.application": (("telemetry", "application"), _matching(r"[a-zA-Z0-9_-]{1,64}", "1-64 of a-z, A-Z, 0-9, _ and -")),
    "telemetry.historyDays": (("telemetry", "history_days"), _integer(1, 3650)),
    "telemetry.archiveDays": (("telemetry", "archive_days"), _integer(1, 3650)),
    "telemetry.archiveObjectLock": (("telemetry", "archive_object_lock"), _object_lock),
    "telemetry.enrichmentCacheSeconds": (("telemetry", "enrichment_cache_seconds"), _integer(0, 3600)),
    "telemetry.reservedConcurrency": (("telemetry", "reserved_concurrency"), _optional(_integer(1, 1000))),
    "telemetry.thresholds": (("telemetry", "thresholds"), _thresholds),
    "telemetry.groupThresholds": (("telemetry", "group_thresholds"), _group_thresholds),
    "defender.enabled": (("defender", "enabled"), _boolean),
    "defender.auditChecks": (("defender", "audit_checks"), _audit_checks),
    "defender.auditFrequency": (("defender", "audit_frequency"), _choice("DAILY", "WEEKLY", "BIWEEKLY", "MONTHLY")),
    "defender.auditDay": (("defender", "audit_day"), _optional(_audit_day)),
    "defender.mitigations": (("defender", "mitigations"), _mitigations),
    "defender.dryRun": (("defender", "dry_run"), _boolean),
    "defender.loggingLevel": (("defender", "logging_level"), _choice("DEBUG", "INFO", "WARN", "ERROR")),
}

SETTING_KEYS = tuple(PREFIX + name for name in _SETTINGS)


def load_config(context: Mapping[str, Any]) -> BackendConfig:
    """Reads every `deviceBackend.` key of `context` (all the app's context, as `node.get_all_context()`)."""
    unknown = sorted(key for key in context if key.startswith(PREFIX) and key[len(PREFIX) :] not in _SETTINGS)
    if unknown:
        raise ConfigError(f"Unknown context key {unknown[0]!r}; the keys are: {', '.join(SETTING_KEYS)}")
    sections: dict[str, dict[str, Any]] = {
        "": {}, "presence": {}, "registry": {}, "onboarding": {}, "authorizer": {}, "telemetry": {}, "defender": {}
    }  # fmt: skip
    for name, (path, parse) in _SETTINGS.items():
        key = PREFIX + name
        if key not in context:
            continue
        try:
            value = parse(context[key])
        except ConfigError as allowed:
            raise ConfigError(f"Context key {key!r} is {context[key]!r}; it must be {allowed}") from None
        section = path[0] if len(path) == 2 else ""
        sections[section][path[-1]] = value
    config = BackendConfig(
        presence=PresenceConfig(**sections["presence"]),
        registry=RegistryConfig(**sections["registry"]),
        onboarding=OnboardingConfig(**sections["onboarding"]),
        authorizer=_authorizer(sections["authorizer"]),
        telemetry=_telemetry(sections["telemetry"]),
        defender=_defender(sections["defender"]),
        **sections[""],
    )
    _check_names(config)
    return config


def _check_names(config: BackendConfig) -> None:
    """The prefix and the stage together must still fit the shortest name they go into."""
    prefix = config.resource_name_prefix
    if len(prefix) > MAX_RESOURCE_NAME_PREFIX:
        raise ConfigError(
            f"Context keys '{PREFIX}namePrefix' and '{PREFIX}stage' make the names start with {prefix!r}, "
            f"{len(prefix)} characters; together (with the '_' between them) they may have at most "
            f"{MAX_RESOURCE_NAME_PREFIX}, as the fleet-provisioning template's name <prefix>_fleet allows 36"
        )


def _authorizer(settings: dict[str, Any]) -> AuthorizerConfig:
    """Checks what only the keys together say: an enabled authorizer needs the keys that verify tokens, and
    IoT's token signing stays on unless it is turned off explicitly."""
    config = AuthorizerConfig(**settings)
    if config.enabled and config.jwt_keys is None:
        raise ConfigError(f"Context key '{PREFIX}authorizer.jwtKeys' must name the JWKS file when the authorizer is enabled")
    if config.enabled and not config.token_signing_public_keys and not config.token_signing_disabled:
        raise ConfigError(
            f"Context key '{PREFIX}authorizer.tokenSigningPublicKeys' must name at least one public key when the "
            f"authorizer is enabled, unless '{PREFIX}authorizer.tokenSigningDisabled' is true"
        )
    return config


def _telemetry(settings: dict[str, Any]) -> TelemetryConfig:
    """Checks what only the keys together say: a locked version cannot outlive the archive's expiration."""
    config = TelemetryConfig(**settings)
    lock = config.archive_object_lock
    if lock is not None and lock.days > config.archive_days:
        raise ConfigError(
            f"Context key '{PREFIX}telemetry.archiveObjectLock' locks objects for {lock.days} days, longer than "
            f"'{PREFIX}telemetry.archiveDays' ({config.archive_days}) keeps them"
        )
    return config


def _defender(settings: dict[str, Any]) -> DefenderConfig:
    """Checks what only the keys together say: the audit day fits the frequency, and every check -> actions
    pair is one AWS allows, on an enabled check, within AWS's 5 actions per check."""
    from stacks.defender.allowed_actions import mapping_problem

    config = DefenderConfig(**settings)
    day = config.audit_day
    if config.audit_frequency == "DAILY" and day is not None:
        raise ConfigError(f"Context key '{PREFIX}defender.auditDay' must be null when the audit runs DAILY")
    if config.audit_frequency in ("WEEKLY", "BIWEEKLY") and day not in ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"):
        raise ConfigError(
            f"Context key '{PREFIX}defender.auditDay' must be a day of the week (SUN..SAT) when the audit runs "
            f"{config.audit_frequency}"
        )
    if config.audit_frequency == "MONTHLY" and (day is None or not (day == "LAST" or day.isdigit())):
        raise ConfigError(f"Context key '{PREFIX}defender.auditDay' must be 1..31 or LAST when the audit runs MONTHLY")
    for check, keys in config.mitigations.items():
        problem = mapping_problem(check, keys, config.audit_checks)
        if problem:
            raise ConfigError(f"Context key '{PREFIX}defender.mitigations' is not valid: {problem}")
    return config
