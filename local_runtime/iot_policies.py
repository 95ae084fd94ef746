"""IoT Core's authorization of what a device does over MQTT: the IoT policies it evaluates on every CONNECT,
PUBLISH, SUBSCRIBE and delivery (RECEIVE), in IAM's policy language with IoT's policy variables.

As AWS documents it (developer guide pages under https://docs.aws.amazon.com/iot/latest/developerguide/):
- iot-policies.html, iot-policy-actions.html, iot-action-resources.html: an explicit Deny wins over any Allow,
  and what no statement allows is denied. iot:Connect is checked on `client/<client ID>`, iot:Publish and
  iot:Receive on `topic/<topic>`, iot:Subscribe on `topicfilter/<topic filter>`.
- pub-sub-policy.html ("Using wildcard characters in MQTT and AWS IoT Core policies"): `*` (any characters)
  and `?` (one character) are the wildcards, as in IAM; MQTT's `+` and `#` are plain characters in a policy,
  so `topicfilter/a/+` grants the filter `a/+` only. Resources match case-sensitively, actions do not.
- iot-policy-variables.html, basic-policy-variables.html, thing-policy-variables.html,
  cert-policy-variables.html: `${iot:ClientId}`, `${aws:SourceIp}`, `${iot:CertificateId}`,
  `${iot:Connection.Thing.ThingName | ThingTypeName | Attributes[name] | IsAttached}`,
  `${iot:Certificate.Subject.<field>}` and `${iot:Certificate.Issuer.<field>}` (the first value of a field
  that has several), and IAM's `${*}`, `${?}` and `${$}` for a literal `*`, `?` and `$`. A substituted value
  is literal text: a client ID of `*` is no wildcard. The thing is the registry thing named after the client
  ID, and only when it is attached to the connection's principal do the thing variables resolve
  (thing-policy-examples.html: otherwise "this variable won't be resolved and will result in an access denied
  error"); `IsAttached` is then "true", else "false". Without `"Version": "2012-10-17"`, `${...}` is literal
  text (IAM reference_policies_variables.html).
- A variable with no value "fails to match and causes the statement to be invalid"
  (IAM reference_policies_variables.html): a pattern that needs one matches nothing; where matching nothing
  would widen what the statement covers (NotResource, a negated condition operator), the statement does not
  apply at all.
- Conditions (IAM reference_policies_elements_condition_operators.html): operators and keys AND, a key's
  values OR (none may match, for a negated operator); a key the connection does not have makes a condition
  false, but true for a negated operator, with ...IfExists and with ForAllValues; ForAnyValue needs one value
  to match; Null tests presence. Variables are substituted in the string and ARN operators only.

What this module does not emulate fails closed and says so in the verdict: an operator, condition key or
policy variable it does not know makes its statement unable to allow, and a Deny that uses one still denies.
A document that is not JSON or not a policy denies everything, naming the policy.

The two registry functions at the end give the policies and the context of a certificate's connection.
"""

from __future__ import annotations

import ipaddress
import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from local_runtime.iot_registry import IotRegistry

POLICY_VERSION = "2012-10-17"
_VERSIONS_WITHOUT_VARIABLES = (None, "2008-10-17")
_THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")


@dataclass(frozen=True)
class PolicyContext:
    """What IoT knows of a connection when it evaluates its policies."""

    region: str
    account: str
    client_id: str
    thing_name: str | None = None  # the registry thing for iot:Connection.Thing.* (None: no such thing)
    thing_type_name: str | None = None
    thing_attributes: Mapping[str, str] = field(default_factory=dict)
    is_attached: bool = False  # the thing is attached to the connection's principal
    certificate_id: str | None = None  # iot:CertificateId (None for custom-auth connections)
    certificate: x509.Certificate | None = None  # for ${iot:Certificate.Subject.CommonName} etc., when known
    source_ip: str | None = None


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str  # which statement decided, or why none allows; never a secret


@dataclass(frozen=True)
class NamedPolicy:
    """A policy as IoT holds it: its name and its document (a JSON text, as GetPolicy and custom authorizers
    give it, or the parsed document). It is compiled once, on first use."""

    name: str
    document: Mapping[str, Any] | str

    @cached_property
    def compiled(self) -> _Policy:
        if isinstance(self.document, str):
            return _compile_text(self.name, self.document)
        return _compile(self.name, self.document)


def client_arn(context: PolicyContext, client_id: str) -> str:
    return f"{_arn_prefix(context)}:client/{client_id}"


def topic_arn(context: PolicyContext, topic: str) -> str:
    return f"{_arn_prefix(context)}:topic/{topic}"


def topic_filter_arn(context: PolicyContext, topic_filter: str) -> str:
    return f"{_arn_prefix(context)}:topicfilter/{topic_filter}"


def _arn_prefix(context: PolicyContext) -> str:
    return f"arn:aws:iot:{context.region}:{context.account}"


def evaluate(policies: Sequence[NamedPolicy], action: str, resource: str, context: PolicyContext) -> Verdict:
    """Whether `policies` let the connection described by `context` do `action` (e.g. "iot:Publish") on
    `resource` (an ARN from client_arn, topic_arn or topic_filter_arn)."""
    compiled = [policy.compiled for policy in policies]
    for policy in compiled:
        if policy.error is not None:
            return Verdict(False, f"policy {policy.name} is not a valid policy document: {policy.error}")
    allowed_by: str | None = None
    doubts: list[str] = []
    for policy in compiled:
        for statement in policy.statements:
            if statement.allow and allowed_by is not None:
                continue  # only a Deny can still change the answer
            outcome = statement.applies(action, resource, context)
            if outcome.state == _YES:
                if not statement.allow:
                    return Verdict(False, f"explicitly denied by {statement.where(policy)}")
                allowed_by = statement.where(policy)
            elif outcome.state == _UNKNOWN and not statement.allow:
                why = f"which uses {outcome.reason}: failing closed"
                return Verdict(False, f"denied by {statement.where(policy)}, {why}")
            elif outcome.reason is not None:
                doubts.append(f"{statement.where(policy)} {_DOUBT[outcome.state]}: {outcome.reason}")
    if allowed_by is not None:
        return Verdict(True, f"allowed by {allowed_by}")
    reason = f"no statement allows {action} on {resource}" if compiled else "no policy applies to this connection"
    return Verdict(False, "; ".join([reason, *doubts]))


# Matching is three-valued, plus the "no value" of a variable, which each use settles (see _settle).
_YES, _NO, _UNKNOWN, _INVALID, _NO_VALUE = "yes", "no", "unknown", "invalid", "no value"
_DOUBT = {_NO: "cannot match", _UNKNOWN: "cannot allow", _INVALID: "does not apply"}
_RANK = {_NO: 0, _UNKNOWN: 1, _INVALID: 2}


@dataclass(frozen=True)
class _Outcome:
    state: str
    reason: str | None = None  # for UNKNOWN (what is not emulated), INVALID and NO VALUE (which variable)


YES, NO = _Outcome(_YES), _Outcome(_NO)


def _any(outcomes: Iterable[_Outcome]) -> _Outcome:
    """YES if one is; else the weightiest of the others (INVALID, UNKNOWN, then a NO that says why)."""
    pending = NO
    for outcome in outcomes:
        if outcome.state == _YES:
            return outcome
        if _RANK[outcome.state] > _RANK[pending.state] or (outcome.state == pending.state and not pending.reason):
            pending = outcome
    return pending


def _all(outcomes: Iterable[_Outcome]) -> _Outcome:
    """NO at the first NO; else the weightiest of the others (INVALID, UNKNOWN, YES)."""
    pending = YES
    for outcome in outcomes:
        if outcome.state == _NO:
            return outcome
        if outcome.state != _YES and (pending.state == _YES or _RANK[outcome.state] > _RANK[pending.state]):
            pending = outcome
    return pending


def _negate(outcome: _Outcome) -> _Outcome:
    if outcome.state == _YES:
        return NO
    if outcome.state == _NO:
        return YES
    return outcome


def _settle(outcome: _Outcome, negated: bool) -> _Outcome:
    """A pattern that needs a variable with no value matches nothing; where that would widen the statement
    (it is negated), the statement is invalid instead."""
    if outcome.state != _NO_VALUE:
        return outcome
    return _Outcome(_INVALID if negated else _NO, outcome.reason)


# --- Values the connection has: policy variables and condition keys -------------------------------------------

_THING_PREFIX = "iot:connection.thing."
_CERTIFICATE_PREFIX = "iot:certificate."
_ATTRIBUTE = re.compile(r"attributes\[(.+)\]", re.IGNORECASE)
_CERTIFICATE_FIELDS = {
    "distinguishednamequalifier": NameOID.DN_QUALIFIER,
    "country": NameOID.COUNTRY_NAME,
    "organization": NameOID.ORGANIZATION_NAME,
    "organizationalunit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "state": NameOID.STATE_OR_PROVINCE_NAME,
    "commonname": NameOID.COMMON_NAME,
    "serialnumber": NameOID.SERIAL_NUMBER,
    "title": NameOID.TITLE,
    "surname": NameOID.SURNAME,
    "givenname": NameOID.GIVEN_NAME,
    "initials": NameOID.INITIALS,
    "pseudonym": NameOID.PSEUDONYM,
    "generationqualifier": NameOID.GENERATION_QUALIFIER,
}


def _not_emulated(key: str) -> _Outcome:
    return _Outcome(_UNKNOWN, f"{key}, which this runtime does not emulate")


def _lookup(context: PolicyContext, key: str) -> str | None | _Outcome:
    """The value of a policy variable or condition key (names are case-insensitive, as in IAM): a string,
    None when the connection has none, or UNKNOWN for a key this module does not know."""
    lowered = key.lower()
    if lowered == "iot:clientid":
        return context.client_id
    if lowered == "aws:sourceip":
        return context.source_ip
    if lowered == "iot:certificateid":
        return context.certificate_id
    if lowered.startswith(_THING_PREFIX):
        return _thing_value(context, key, key[len(_THING_PREFIX) :])
    if lowered.startswith(_CERTIFICATE_PREFIX):
        return _certificate_value(context, key, key[len(_CERTIFICATE_PREFIX) :])
    return _not_emulated(key)


def _thing_value(context: PolicyContext, key: str, name: str) -> str | None | _Outcome:
    attached = context.thing_name is not None and context.is_attached
    lowered = name.lower()
    if lowered == "isattached":
        return "true" if attached else "false"
    if lowered == "thingname":
        value = context.thing_name
    elif lowered == "thingtypename":
        value = context.thing_type_name
    elif attribute := _ATTRIBUTE.fullmatch(name):
        value = context.thing_attributes.get(attribute.group(1))
    else:
        return _not_emulated(key)
    return value if attached else None


def _certificate_value(context: PolicyContext, key: str, name: str) -> str | None | _Outcome:
    part, _, field_name = name.partition(".")
    oid = _CERTIFICATE_FIELDS.get(field_name.lower())
    if part.lower() not in ("subject", "issuer") or oid is None:
        return _not_emulated(key)
    if context.certificate_id is None:
        return None  # not a certificate connection
    if context.certificate is None:
        return _Outcome(_UNKNOWN, f"{key}, but the connection's certificate is not known here")
    return _certificate_fields(context.certificate).get((part.lower(), oid.dotted_string))


@lru_cache(maxsize=4096)
def _certificate_fields(certificate: x509.Certificate) -> Mapping[tuple[str, str], str]:
    """("subject" | "issuer", OID) -> the field's first value, as IoT gives a multi-valued field."""
    fields: dict[tuple[str, str], str] = {}
    for part, name in (("subject", certificate.subject), ("issuer", certificate.issuer)):
        for attribute in name:
            value = attribute.value
            fields.setdefault((part, attribute.oid.dotted_string), value if isinstance(value, str) else value.hex())
    return fields


def _no_value(name: str, context: PolicyContext) -> _Outcome:
    lowered = name.lower()
    if lowered.startswith(_THING_PREFIX):
        if context.thing_name is None:
            why = f"no thing is named {context.client_id!r}"
        elif not context.is_attached:
            why = f"thing {context.thing_name!r} is not attached to the connection's principal"
        else:
            why = f"thing {context.thing_name!r} has none"
    elif lowered.startswith(_CERTIFICATE_PREFIX):
        why = "no certificate" if context.certificate_id is None else "the certificate has no such field"
    else:
        why = "this connection has none"
    return _Outcome(_NO_VALUE, f"${{{name}}} has no value ({why})")


# --- Patterns: policy text with wildcards and variables ---------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_ESCAPES = ("*", "?", "$")
_WILDCARD, _LITERAL, _NAMED = "wildcard", "literal", "variable"  # kinds of a pattern's parts


@lru_cache(maxsize=16384)
def _glob(parts: tuple[tuple[str, str], ...], *, ignore_case: bool = False, arn: bool = False) -> re.Pattern[str]:
    """A regex for resolved parts: `*` and `?` are wildcards in WILDCARD text only. In an ARN pattern (one with
    the ARN's five colons), a wildcard before the fifth colon stays within its component, as IAM matches
    ARNs component by component; the resource part may hold anything, colons included."""
    arn = arn and sum(text.count(":") for kind, text in parts if kind == _WILDCARD) >= 5
    colons = 0
    regex: list[str] = []
    for kind, text in parts:
        if kind == _LITERAL:
            regex.append(re.escape(text))
            colons += text.count(":")
            continue
        for character in text:
            within = arn and colons < 5
            if character == "*":
                regex.append("[^:]*" if within else ".*")
            elif character == "?":
                regex.append("[^:]" if within else ".")
            else:
                regex.append(re.escape(character))
                colons += character == ":"
    return re.compile("".join(regex), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


@dataclass(frozen=True)
class _Pattern:
    parts: tuple[tuple[str, str], ...]  # (_WILDCARD | _LITERAL | _NAMED, policy text or variable name)

    @staticmethod
    def parse(text: str, variables: bool) -> _Pattern:
        if not variables:
            return _Pattern(((_WILDCARD, text),))
        parts: list[tuple[str, str]] = []
        position = 0
        for found in _VARIABLE.finditer(text):
            if found.start() > position:
                parts.append((_WILDCARD, text[position : found.start()]))
            name = found.group(1)
            parts.append((_LITERAL, name) if name in _ESCAPES else (_NAMED, name))
            position = found.end()
        if position < len(text):
            parts.append((_WILDCARD, text[position:]))
        return _Pattern(tuple(parts))

    @cached_property
    def constant(self) -> bool:
        return all(kind != _NAMED for kind, _ in self.parts)

    def resolve(self, context: PolicyContext) -> tuple[tuple[str, str], ...] | _Outcome:
        if self.constant:
            return self.parts
        resolved: list[tuple[str, str]] = []
        for kind, text in self.parts:
            if kind == _NAMED:
                value = _lookup(context, text)
                if isinstance(value, _Outcome):
                    return value
                if value is None:
                    return _no_value(text, context)
                resolved.append((_LITERAL, value))
            else:
                resolved.append((kind, text))
        return tuple(resolved)

    def text_of(self, context: PolicyContext) -> str | _Outcome:
        """The pattern as a plain string (wildcards are ordinary characters), for StringEquals and the like."""
        resolved = self.resolve(context)
        return resolved if isinstance(resolved, _Outcome) else "".join(text for _, text in resolved)

    def matches(self, value: str, context: PolicyContext, *, arn: bool = False) -> _Outcome:
        resolved = self.resolve(context)
        if isinstance(resolved, _Outcome):
            return resolved
        return YES if _glob(resolved, arn=arn).fullmatch(value) else NO


# --- Conditions -------------------------------------------------------------------------------------------------

_OPERATOR = re.compile(r"(?:(ForAnyValue|ForAllValues):)?(\w+?)(IfExists)?")
_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "NumericEquals": operator.eq, "NumericNotEquals": operator.eq, "NumericLessThan": operator.lt,
    "NumericLessThanEquals": operator.le, "NumericGreaterThan": operator.gt, "NumericGreaterThanEquals": operator.ge,
}  # fmt: skip
# operator -> (kind, negated); the negated ones are true when none of the policy's values matches.
_OPERATORS: dict[str, tuple[str, bool]] = {
    "StringEquals": ("string", False), "StringNotEquals": ("string", True),
    "StringEqualsIgnoreCase": ("string ignoring case", False),
    "StringNotEqualsIgnoreCase": ("string ignoring case", True),
    "StringLike": ("like", False), "StringNotLike": ("like", True),
    "ArnEquals": ("arn", False), "ArnLike": ("arn", False), "ArnNotEquals": ("arn", True), "ArnNotLike": ("arn", True),
    "Bool": ("bool", False), "IpAddress": ("ip", False), "NotIpAddress": ("ip", True), "Null": ("null", False),
    **{name: ("numeric", name == "NumericNotEquals") for name in _NUMERIC},
}  # fmt: skip
_WITH_VARIABLES = ("string", "string ignoring case", "like", "arn")


@dataclass(frozen=True)
class _Condition:
    operator: str  # as written
    key: str
    kind: str
    negated: bool
    set_operator: str | None  # "ForAnyValue", "ForAllValues" or None
    if_exists: bool
    values: tuple[Any, ...]  # _Pattern for the string and ARN kinds; parsed values for the others
    compare_numbers: Callable[[float, float], bool] | None = None

    def outcome(self, context: PolicyContext) -> _Outcome:
        if self.kind == "not emulated":
            return _not_emulated(f"the condition operator {self.operator}")
        value = _lookup(context, self.key)
        if isinstance(value, _Outcome):
            return value
        if self.kind == "null":
            return YES if (value is None) in self.values else NO
        if value is None:
            if self.if_exists or self.set_operator == "ForAllValues":
                return YES
            if self.set_operator == "ForAnyValue":
                return NO
            return YES if self.negated else NO
        # Every key here is single-valued: ForAnyValue and ForAllValues both come down to its one value.
        compared = _any(_settle(self._compare(wanted, value, context), self.negated) for wanted in self.values)
        return _negate(compared) if self.negated else compared

    def _compare(self, wanted: Any, value: str, context: PolicyContext) -> _Outcome:
        if self.kind == "like":
            return wanted.matches(value, context)
        if self.kind == "arn":
            return wanted.matches(value, context, arn=True)
        if self.kind in ("string", "string ignoring case"):
            text = wanted.text_of(context)
            if isinstance(text, _Outcome):
                return text
            equal = text == value if self.kind == "string" else text.casefold() == value.casefold()
            return YES if equal else NO
        if self.kind == "bool":
            return YES if value.lower() == wanted else NO
        if self.kind == "ip":
            try:
                address = ipaddress.ip_address(value)
            except ValueError:
                return NO
            return YES if wanted is not None and address in wanted else NO
        number = _number(value)
        assert self.compare_numbers is not None
        return YES if wanted is not None and number is not None and self.compare_numbers(number, wanted) else NO


def _number(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _condition_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise _Malformed(f"a condition value is {json.dumps(value)}, not a string, number or boolean")


def _conditions(block: Any, variables: bool) -> Iterator[_Condition]:
    if not isinstance(block, Mapping):
        raise _Malformed("a Condition is not an object")
    for written, keys in block.items():
        if not isinstance(keys, Mapping) or not keys:
            raise _Malformed(f"the condition {written} does not map keys to values")
        found = _OPERATOR.fullmatch(written)
        base = found and _OPERATORS.get(found.group(2))
        for key, given in keys.items():
            values = tuple(_condition_value(v) for v in (given if isinstance(given, list) else [given]))
            if not values:
                raise _Malformed(f"the condition {written} gives {key} no value")
            if found is None or base is None:
                yield _Condition(written, key, "not emulated", False, None, False, ())
                continue
            kind, negated = base
            parsed: tuple[Any, ...]
            if kind in _WITH_VARIABLES:
                parsed = tuple(_Pattern.parse(v, variables) for v in values)
            elif kind == "bool":
                parsed = tuple(v.lower() for v in values)
            elif kind == "null":
                parsed = tuple(v.lower() == "true" for v in values)  # true: the key must be absent
            elif kind == "ip":
                parsed = tuple(_network(v) for v in values)
            else:
                parsed = tuple(_number(v) for v in values)
            set_operator, if_exists = found.group(1), found.group(3) is not None
            yield _Condition(written, key, kind, negated, set_operator, if_exists, parsed, _NUMERIC.get(found.group(2)))


# --- Policies ---------------------------------------------------------------------------------------------------


class _Malformed(Exception):
    """The document is not an IoT policy; the message says why."""


_STATEMENT_ELEMENTS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}


@dataclass(frozen=True)
class _Statement:
    number: int  # from 1, in document order
    sid: str | None
    allow: bool
    actions: tuple[re.Pattern[str], ...]
    not_action: bool
    resources: tuple[_Pattern, ...]
    not_resource: bool
    conditions: tuple[_Condition, ...]
    # action -> whether the statement covers it: a broker asks about a handful of actions, very often
    covered: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def where(self, policy: _Policy) -> str:
        return f"statement {self.number} of policy {policy.name}" + (f" ({self.sid})" if self.sid else "")

    def applies(self, action: str, resource: str, context: PolicyContext) -> _Outcome:
        covered = self.covered.get(action)
        if covered is None:
            covered = self.covered[action] = any(p.fullmatch(action) for p in self.actions) != self.not_action
        if not covered:
            return NO
        return _all(self._parts(resource, context))

    def _parts(self, resource: str, context: PolicyContext) -> Iterator[_Outcome]:
        matched = _any(
            _settle(pattern.matches(resource, context, arn=True), self.not_resource) for pattern in self.resources
        )
        yield _negate(matched) if self.not_resource else matched
        for condition in self.conditions:
            yield condition.outcome(context)


@dataclass(frozen=True)
class _Policy:
    name: str
    statements: tuple[_Statement, ...]
    error: str | None = None  # why the document is not a policy: it then denies everything


@lru_cache(maxsize=1024)
def _compile_text(name: str, text: str) -> _Policy:
    try:
        document = json.loads(text)
    except ValueError as error:
        return _Policy(name, (), f"it is not JSON ({error})")
    return _compile(name, document)


def _compile(name: str, document: Any) -> _Policy:
    try:
        return _Policy(name, tuple(_statements(document)))
    except _Malformed as error:
        return _Policy(name, (), str(error))


def _statements(document: Any) -> Iterator[_Statement]:
    if not isinstance(document, Mapping):
        raise _Malformed("it is not a JSON object")
    version = document.get("Version")
    if version != POLICY_VERSION and version not in _VERSIONS_WITHOUT_VARIABLES:
        raise _Malformed(f"its Version is {json.dumps(version)}, not {POLICY_VERSION}")
    variables = version == POLICY_VERSION
    statements = document.get("Statement")
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise _Malformed("it has no Statement")
    for number, statement in enumerate(statements, start=1):
        yield _statement(number, statement, variables)


def _statement(number: int, statement: Any, variables: bool) -> _Statement:
    if not isinstance(statement, Mapping):
        raise _Malformed(f"statement {number} is not an object")
    unknown = sorted(set(statement) - _STATEMENT_ELEMENTS)
    if unknown:
        raise _Malformed(f"statement {number} has {', '.join(unknown)}, which IoT policies do not have")
    effect = statement.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise _Malformed(f"statement {number} has Effect {json.dumps(effect)}, not Allow or Deny")
    actions, not_action = _one_of(statement, "Action", "NotAction", number)
    resources, not_resource = _one_of(statement, "Resource", "NotResource", number)
    return _Statement(
        number=number,
        sid=statement.get("Sid"),
        allow=effect == "Allow",
        actions=tuple(_glob(((_WILDCARD, action),), ignore_case=True) for action in actions),
        not_action=not_action,
        resources=tuple(_Pattern.parse(resource, variables) for resource in resources),
        not_resource=not_resource,
        conditions=tuple(_conditions(statement["Condition"], variables)) if "Condition" in statement else (),
    )


def _one_of(statement: Mapping[str, Any], element: str, negated: str, number: int) -> tuple[list[str], bool]:
    if (element in statement) == (negated in statement):
        raise _Malformed(f"statement {number} needs exactly one of {element} and {negated}")
    name = element if element in statement else negated
    given = statement[name]
    values = given if isinstance(given, list) else [given]
    if not values or not all(isinstance(value, str) for value in values):
        raise _Malformed(f"statement {number} has a {name} that is not a string or a list of strings")
    return values, name == negated


# --- The registry: a certificate connection's policies and context ---------------------------------------------


def connection_context(
    registry: IotRegistry,
    *,
    region: str,
    account: str,
    client_id: str,
    certificate_arn: str | None,
    certificate: x509.Certificate | None,
    source_ip: str | None,
) -> PolicyContext:
    """The context of a connection: the thing named after its client ID (DescribeThing), with its type and
    attributes, and whether it is attached to the connection's certificate (ListThingPrincipals). A custom
    authorizer's connection (no certificate) is attached to no thing."""
    known = PolicyContext(
        region=region,
        account=account,
        client_id=client_id,
        certificate_id=certificate_arn.rsplit("/", 1)[-1] if certificate_arn else None,
        certificate=certificate,
        source_ip=source_ip,
    )
    if not _THING_NAME.fullmatch(client_id):
        return known  # no thing can have this name
    thing = registry.thing(client_id)
    if thing is None:
        return known
    attached = certificate_arn is not None and certificate_arn in registry.thing_principals(client_id)
    return PolicyContext(
        region=region,
        account=account,
        client_id=client_id,
        thing_name=thing.name,
        thing_type_name=thing.type_name,
        thing_attributes=thing.attributes,
        is_attached=attached,
        certificate_id=known.certificate_id,
        certificate=certificate,
        source_ip=source_ip,
    )


def certificate_policies(registry: IotRegistry, certificate_arn: str, context: PolicyContext) -> list[NamedPolicy]:
    """The policies IoT evaluates for a certificate's connection: those attached to the certificate, and,
    when the client ID is the name of a thing attached to the certificate, those of the thing's static groups
    and of their parent groups, which they inherit (thing-groups.html). Dynamic thing groups cannot have
    policies (dynamic-thing-groups.html). A policy deleted between the listing and the read is not evaluated."""
    names = registry.attached_policies(certificate_arn)
    if context.thing_name is not None and context.is_attached and context.thing_name == context.client_id:
        for group in registry.thing_groups(context.thing_name):
            if group.dynamic:
                continue
            for arn in [group.arn, *group.ancestor_arns]:
                names += registry.attached_policies(arn)
    documents = {name: registry.policy_document(name) for name in dict.fromkeys(names)}
    return [NamedPolicy(name, document) for name, document in documents.items() if document is not None]
