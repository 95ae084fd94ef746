"""IoT policy evaluation as IoT Core does it for a device's CONNECT, PUBLISH, SUBSCRIBE and RECEIVE: plain
policies and connection contexts, except the two registry functions at the end (moto, in process)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto import mock_aws

from device_pki import CertificateAuthority
from local_runtime.iot_policies import (
    NamedPolicy,
    PolicyContext,
    certificate_policies,
    client_arn,
    connection_context,
    evaluate,
    topic_arn,
    topic_filter_arn,
)
from local_runtime.iot_registry import IotRegistry
from stacks.device_policy import device_policy_document

REGION, ACCOUNT = "eu-west-1", "123456789012"
BASE = f"arn:aws:iot:{REGION}:{ACCOUNT}"
THING = "${iot:Connection.Thing.ThingName}"
CERTIFICATE_ID = "a" * 64


def context(client_id: str = "thing-1", **known: object) -> PolicyContext:
    return PolicyContext(region=REGION, account=ACCOUNT, client_id=client_id, **known)  # type: ignore[arg-type]


def attached(thing: str = "thing-1", **known: object) -> PolicyContext:
    """A certificate connection whose client ID is the name of a thing attached to its certificate."""
    return context(thing, thing_name=thing, is_attached=True, certificate_id=CERTIFICATE_ID, **known)


def policy(*statements: dict, name: str = "p", version: str | None = "2012-10-17") -> NamedPolicy:
    document: dict = {"Statement": list(statements)}
    if version is not None:
        document["Version"] = version
    return NamedPolicy(name, document)


def allow(action: str | list[str], resource: str | list[str], **more: object) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **more}


def deny(action: str | list[str], resource: str | list[str], **more: object) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **more}


def may_publish(policies: NamedPolicy | list[NamedPolicy], topic: str, connection: PolicyContext) -> bool:
    listed = policies if isinstance(policies, list) else [policies]
    return evaluate(listed, "iot:Publish", topic_arn(connection, topic), connection).allowed


# --- Effects, actions and resources ----------------------------------------------------------------------------


def test_resource_arns_name_the_client_topic_and_topic_filter_in_the_connections_account_and_region() -> None:
    connection = context()
    assert client_arn(connection, "c-1") == f"{BASE}:client/c-1"
    assert topic_arn(connection, "dt/a/b") == f"{BASE}:topic/dt/a/b"
    assert topic_filter_arn(connection, "cmd/+/#") == f"{BASE}:topicfilter/cmd/+/#"


def test_an_allow_statement_allows_its_action_on_its_resource_and_says_which_statement() -> None:
    verdict = evaluate(
        [policy(allow("iot:Connect", "*"), allow("iot:Publish", f"{BASE}:topic/a", Sid="Telemetry"), name="dev")],
        "iot:Publish", f"{BASE}:topic/a", context(),
    )  # fmt: skip
    assert verdict.allowed
    assert verdict.reason == "allowed by statement 2 of policy dev (Telemetry)"


def test_what_no_statement_allows_is_denied_saying_so() -> None:
    verdict = evaluate([policy(allow("iot:Publish", f"{BASE}:topic/a"))], "iot:Publish", f"{BASE}:topic/b", context())
    assert not verdict.allowed
    assert verdict.reason == f"no statement allows iot:Publish on {BASE}:topic/b"


def test_a_connection_without_policies_may_do_nothing() -> None:
    verdict = evaluate([], "iot:Connect", f"{BASE}:client/thing-1", context())
    assert not verdict.allowed
    assert verdict.reason == "no policy applies to this connection"


def test_an_explicit_deny_in_any_policy_wins_over_an_allow() -> None:
    policies = [
        policy(allow("iot:*", "*"), name="broad"),
        policy(deny("iot:Publish", f"{BASE}:topic/secret"), name="fence"),
    ]
    verdict = evaluate(policies, "iot:Publish", f"{BASE}:topic/secret", context())
    assert not verdict.allowed
    assert verdict.reason == "explicitly denied by statement 1 of policy fence"
    assert may_publish(policies, "public", context())


def test_action_and_resource_may_each_be_a_string_or_a_list() -> None:
    listed = policy(allow(["iot:Publish", "iot:Receive"], [f"{BASE}:topic/a", f"{BASE}:topic/b"]))
    for action in ("iot:Publish", "iot:Receive"):
        for topic in ("a", "b"):
            assert evaluate([listed], action, f"{BASE}:topic/{topic}", context()).allowed
    assert not evaluate([listed], "iot:Subscribe", f"{BASE}:topicfilter/a", context()).allowed
    assert may_publish(policy(allow("iot:Publish", f"{BASE}:topic/a")), "a", context())


def test_not_action_covers_every_other_action() -> None:
    everything_but_publish = policy({"Effect": "Allow", "NotAction": "iot:Publish", "Resource": "*"})
    assert evaluate([everything_but_publish], "iot:Receive", f"{BASE}:topic/a", context()).allowed
    assert not may_publish(everything_but_publish, "a", context())


def test_not_resource_covers_every_other_resource() -> None:
    policies = [
        policy(allow("iot:Publish", "*")),
        policy({"Effect": "Deny", "Action": "iot:Publish", "NotResource": [f"{BASE}:topic/dt/*", f"{BASE}:topic/x"]}),
    ]
    assert may_publish(policies, "dt/a/b", context())
    assert may_publish(policies, "x", context())
    assert not may_publish(policies, "cmd/a/b", context())


@pytest.mark.parametrize(
    "action", ["iot:Publish", "iot:publish", "IOT:PUBLISH", "iot:*", "iot:Pub*", "iot:?ublish", "*"]
)
def test_actions_match_case_insensitively_with_star_and_question_mark(action: str) -> None:
    assert may_publish(policy(allow(action, "*")), "a", context())


@pytest.mark.parametrize("action", ["iot:Subscribe", "iot:Pub", "iot:?Publish", "iotdata:Publish"])
def test_an_action_pattern_matches_the_whole_action_name(action: str) -> None:
    assert not may_publish(policy(allow(action, "*")), "a", context())


def test_iot_star_allows_every_iot_action() -> None:
    everything = policy(allow("iot:*", "*"))
    connection = context()
    assert evaluate([everything], "iot:Connect", client_arn(connection, "any"), connection).allowed
    assert evaluate([everything], "iot:Subscribe", topic_filter_arn(connection, "#"), connection).allowed
    assert evaluate([everything], "iot:Receive", topic_arn(connection, "a/b"), connection).allowed


@pytest.mark.parametrize(
    ("pattern", "topic", "allowed"),
    [
        ("dt/*", "dt/a/b/c", True),  # * spans levels: it is not MQTT's +
        ("dt/*/telemetry", "dt/a/b/telemetry", True),
        ("dt/?", "dt/a", True),
        ("dt/?", "dt/ab", False),
        ("dt/a", "dt/A", False),  # resources are case-sensitive
        ("Dt/*", "dt/a", False),
        ("dt/a", "dt/a/b", False),  # the whole resource must match
        ("dt/a.b", "dt/aXb", False),  # no regex characters
    ],
)
def test_resources_match_case_sensitively_with_star_and_question_mark(pattern: str, topic: str, allowed: bool) -> None:
    assert may_publish(policy(allow("iot:Publish", f"{BASE}:topic/{pattern}")), topic, context()) is allowed


@pytest.mark.parametrize(
    ("pattern", "topic_filter", "allowed"),
    [
        ("a/+", "a/+", True),
        ("a/+", "a/b", False),  # + is no wildcard in a policy
        ("a/+", "a/#", False),
        ("a/#", "a/#", True),
        ("a/#", "a/b/c", False),  # nor is #
        ("a/*", "a/+", True),  # * covers MQTT's wildcards as characters
        ("a/*", "a/#", True),
    ],
)
def test_mqtt_plus_and_hash_are_literal_characters_in_policy_resources(
    pattern: str, topic_filter: str, allowed: bool
) -> None:
    connection = context()
    subscribe = policy(allow("iot:Subscribe", f"{BASE}:topicfilter/{pattern}"))
    verdict = evaluate([subscribe], "iot:Subscribe", topic_filter_arn(connection, topic_filter), connection)
    assert verdict.allowed is allowed


def test_a_wildcard_before_the_resource_part_of_an_arn_stays_within_its_component() -> None:
    any_region = policy(allow("iot:Publish", "arn:aws:iot:*:*:topic/x"))
    assert may_publish(any_region, "x", context())
    # Here the account's * would have to span "123456789012:topic/a:b" to reach ":topic/x".
    assert not may_publish(any_region, "a:b:topic/x", context())
    assert may_publish(policy(allow("iot:Publish", "arn:aws:iot:*:*:topic/*")), "a:b:topic/x", context())


# --- Policy variables ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "connection", "value"),
    [
        ("iot:ClientId", context("client-7"), "client-7"),
        ("iot:Connection.Thing.ThingName", attached("thing-1"), "thing-1"),
        ("iot:Connection.Thing.ThingTypeName", attached(thing_type_name="sensor"), "sensor"),
        ("iot:Connection.Thing.Attributes[site]", attached(thing_attributes={"site": "lyon"}), "lyon"),
        ("iot:Connection.Thing.IsAttached", attached(), "true"),
        ("iot:Connection.Thing.IsAttached", context(thing_name="thing-1"), "false"),
        ("iot:CertificateId", attached(), CERTIFICATE_ID),
        ("aws:SourceIp", context(source_ip="10.1.2.3"), "10.1.2.3"),
        ("iot:connection.thing.thingname", attached("thing-1"), "thing-1"),  # names are case-insensitive
    ],
)
def test_policy_variables_resolve_to_what_iot_knows_of_the_connection(
    variable: str, connection: PolicyContext, value: str
) -> None:
    scoped = policy(allow("iot:Publish", f"{BASE}:topic/devices/${{{variable}}}/data"))
    assert may_publish(scoped, f"devices/{value}/data", connection)
    assert not may_publish(scoped, "devices/other/data", connection)


def test_a_substituted_value_is_literal_text_not_a_wildcard() -> None:
    scoped = policy(allow("iot:Publish", f"{BASE}:topic/devices/${{iot:ClientId}}"))
    assert may_publish(scoped, "devices/*", context("*"))
    assert not may_publish(scoped, "devices/other", context("*"))
    assert not may_publish(scoped, "devices/ab", context("a?"))


@pytest.mark.parametrize(
    ("resource", "allowed", "refused"),
    [
        ("what${?}", "what?", "whatX"),
        ("all${*}", "all*", "allX"),
        ("price/${$}{amount}", "price/${amount}", "price/X{amount}"),
    ],
)
def test_iam_escapes_stand_for_a_literal_star_question_mark_and_dollar(
    resource: str, allowed: str, refused: str
) -> None:
    escaped = policy(allow("iot:Publish", f"{BASE}:topic/{resource}"))
    assert may_publish(escaped, allowed, context())
    assert not may_publish(escaped, refused, context())


@pytest.mark.parametrize("version", [None, "2008-10-17"])
def test_without_the_2012_version_variables_are_literal_text(version: str | None) -> None:
    old = policy(allow("iot:Publish", f"{BASE}:topic/${{iot:ClientId}}"), version=version)
    assert may_publish(old, "${iot:ClientId}", context("thing-1"))
    assert not may_publish(old, "thing-1", context("thing-1"))


def test_a_thing_variable_does_not_resolve_when_no_thing_is_named_after_the_client_id() -> None:
    own = policy(allow("iot:Publish", f"{BASE}:topic/dt/app/{THING}/*"), name="device")
    connection = context("thing-1", certificate_id=CERTIFICATE_ID)
    verdict = evaluate([own], "iot:Publish", topic_arn(connection, "dt/app/thing-1/telemetry"), connection)
    assert not verdict.allowed
    assert verdict.reason == (
        f"no statement allows iot:Publish on {BASE}:topic/dt/app/thing-1/telemetry; statement 1 of policy device "
        "cannot match: ${iot:Connection.Thing.ThingName} has no value (no thing is named 'thing-1')"
    )


@pytest.mark.parametrize(
    "variable",
    [THING, "${iot:Connection.Thing.ThingTypeName}", "${iot:Connection.Thing.Attributes[site]}"],
)
def test_thing_variables_do_not_resolve_when_the_thing_is_not_attached_to_the_principal(variable: str) -> None:
    known = {"thing_type_name": "sensor", "thing_attributes": {"site": "lyon"}}
    not_attached = context("thing-1", thing_name="thing-1", certificate_id=CERTIFICATE_ID, **known)
    scoped = policy(allow("iot:Publish", f"{BASE}:topic/x/{variable}"))
    for value in ("thing-1", "sensor", "lyon", variable):
        assert not may_publish(scoped, f"x/{value}", not_attached)
    verdict = evaluate([scoped], "iot:Publish", f"{BASE}:topic/x/thing-1", not_attached)
    assert "thing 'thing-1' is not attached to the connection's principal" in verdict.reason


def test_a_missing_thing_attribute_or_type_does_not_resolve() -> None:
    scoped = policy(allow("iot:Publish", f"{BASE}:topic/x/${{iot:Connection.Thing.Attributes[site]}}"))
    verdict = evaluate([scoped], "iot:Publish", f"{BASE}:topic/x/", attached())
    assert not verdict.allowed
    assert "${iot:Connection.Thing.Attributes[site]} has no value (thing 'thing-1' has none)" in verdict.reason


def test_one_resource_that_needs_a_missing_variable_does_not_stop_the_others_of_its_statement() -> None:
    mixed = policy(allow("iot:Publish", [f"{BASE}:topic/own/{THING}", f"{BASE}:topic/public/*"]))
    assert may_publish(mixed, "public/news", context())
    assert not may_publish(mixed, "own/thing-1", context())


def test_a_not_resource_that_needs_a_missing_variable_makes_its_statement_not_apply() -> None:
    """It would otherwise cover every resource: an Allow does not allow, and a Deny, as IAM makes such a
    statement invalid, does not deny."""
    outside_own = {"Effect": "Allow", "Action": "iot:Publish", "NotResource": f"{BASE}:topic/own/{THING}"}
    verdict = evaluate([policy(outside_own)], "iot:Publish", f"{BASE}:topic/other", context())
    assert not verdict.allowed
    assert "statement 1 of policy p does not apply: ${iot:Connection.Thing.ThingName} has no value" in verdict.reason
    fenced = [policy(allow("iot:Publish", "*")), policy({**outside_own, "Effect": "Deny"}, name="fence")]
    assert may_publish(fenced, "other", context())
    assert not may_publish(fenced, "other", attached())
    assert may_publish(fenced, "own/thing-1", attached())


def test_a_variable_this_runtime_does_not_emulate_fails_closed() -> None:
    unknown = f"{BASE}:topic/${{iot:DomainName}}/x"
    verdict = evaluate([policy(allow("iot:Publish", unknown))], "iot:Publish", f"{BASE}:topic/d/x", context())
    assert not verdict.allowed
    assert "statement 1 of policy p cannot allow: iot:DomainName, which this runtime does not emulate" in verdict.reason
    fenced = [policy(allow("iot:Publish", "*")), policy(deny("iot:Publish", unknown), name="fence")]
    verdict = evaluate(fenced, "iot:Publish", f"{BASE}:topic/anything", context())
    assert not verdict.allowed
    assert verdict.reason == (
        "denied by statement 1 of policy fence, which uses iot:DomainName, which this runtime does not emulate: "
        "failing closed"
    )


# --- X.509 certificate variables -------------------------------------------------------------------------------


def certificate(subject: list[tuple[x509.ObjectIdentifier, str]], issuer: str = "Fleet CA") -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)  # any time: nothing here checks validity
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(oid, value) for oid, value in subject]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def test_certificate_variables_resolve_to_the_subject_and_issuer_of_the_device_certificate() -> None:
    issued = CertificateAuthority.create(common_name="Test Device CA").issue_device("thing-1")
    connection = attached(certificate=issued.certificate)
    own = policy(
        allow(
            "iot:Publish",
            f"{BASE}:topic/${{iot:Certificate.Subject.CommonName}}/${{iot:Certificate.Issuer.CommonName}}",
        )
    )
    assert may_publish(own, "thing-1/Test Device CA", connection)
    assert not may_publish(own, "thing-2/Test Device CA", connection)


def test_a_multi_valued_certificate_field_resolves_to_its_first_value() -> None:
    units = [(NameOID.COMMON_NAME, "thing-1"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "north"),
             (NameOID.ORGANIZATIONAL_UNIT_NAME, "south")]  # fmt: skip
    connection = attached(certificate=certificate(units))
    scoped = policy(allow("iot:Publish", f"{BASE}:topic/${{iot:Certificate.Subject.OrganizationalUnit}}"))
    assert may_publish(scoped, "north", connection)
    assert not may_publish(scoped, "south", connection)


def test_a_certificate_field_the_certificate_lacks_does_not_resolve() -> None:
    connection = attached(certificate=certificate([(NameOID.COMMON_NAME, "thing-1")]))
    scoped = policy(allow("iot:Publish", f"{BASE}:topic/${{iot:Certificate.Subject.Organization}}"))
    verdict = evaluate([scoped], "iot:Publish", f"{BASE}:topic/", connection)
    assert not verdict.allowed
    assert "${iot:Certificate.Subject.Organization} has no value (the certificate has no such field)" in verdict.reason


def test_certificate_variables_do_not_resolve_for_a_custom_authorizer_connection() -> None:
    scoped = policy(allow("iot:Publish", f"{BASE}:topic/${{iot:Certificate.Subject.CommonName}}"))
    verdict = evaluate([scoped], "iot:Publish", f"{BASE}:topic/thing-1", context())
    assert not verdict.allowed
    assert "(no certificate)" in verdict.reason


def test_certificate_variables_fail_closed_when_the_certificate_is_not_known() -> None:
    scoped = policy(allow("iot:Publish", f"{BASE}:topic/${{iot:Certificate.Subject.CommonName}}"))
    verdict = evaluate([scoped], "iot:Publish", f"{BASE}:topic/thing-1", attached())
    assert not verdict.allowed
    assert "the connection's certificate is not known here" in verdict.reason


# --- Conditions ------------------------------------------------------------------------------------------------


def allowed_when(condition: dict, connection: PolicyContext) -> bool:
    return may_publish(policy(allow("iot:Publish", "*", Condition=condition)), "a", connection)


def test_bool_is_attached_admits_only_a_thing_attached_to_the_principal() -> None:
    condition = {"Bool": {"iot:Connection.Thing.IsAttached": ["true"]}}
    assert allowed_when(condition, attached())
    assert not allowed_when(condition, context(thing_name="thing-1", certificate_id=CERTIFICATE_ID))
    assert not allowed_when(condition, context())
    assert allowed_when({"Bool": {"iot:Connection.Thing.IsAttached": True}}, attached())  # a JSON boolean
    assert allowed_when({"Bool": {"iot:Connection.Thing.IsAttached": "false"}}, context())


@pytest.mark.parametrize(
    ("operator", "values", "allowed"),
    [
        ("StringEquals", "thing-1", True),
        ("StringEquals", "Thing-1", False),
        ("StringEquals", ["other", "thing-1"], True),  # a key's values OR
        ("StringEquals", "thing-*", False),  # no wildcards in StringEquals
        ("StringNotEquals", "other", True),
        ("StringNotEquals", ["other", "thing-1"], False),  # none may match
        ("StringEqualsIgnoreCase", "THING-1", True),
        ("StringNotEqualsIgnoreCase", "THING-1", False),
        ("StringLike", "thing-*", True),
        ("StringLike", "thing-?", True),
        ("StringLike", "THING-*", False),
        ("StringNotLike", "thing-*", False),
        ("StringNotLike", "sensor-*", True),
    ],
)
def test_string_operators_compare_the_client_id(operator: str, values: str | list[str], allowed: bool) -> None:
    assert allowed_when({operator: {"iot:ClientId": values}}, context("thing-1")) is allowed


def test_condition_values_may_use_policy_variables() -> None:
    own_name = {"StringEquals": {"iot:ClientId": THING}}
    assert allowed_when(own_name, attached("thing-1"))
    assert not allowed_when(own_name, context("thing-1"))  # the variable has no value: nothing matches
    other_name = {"StringNotEquals": {"iot:ClientId": THING}}
    verdict = evaluate(
        [policy(allow("iot:Publish", "*", Condition=other_name))], "iot:Publish", f"{BASE}:topic/a", context()
    )
    assert not verdict.allowed
    assert "does not apply: ${iot:Connection.Thing.ThingName} has no value" in verdict.reason


@pytest.mark.parametrize(
    ("operator", "value", "allowed"),
    [
        ("NumericEquals", "12", True),
        ("NumericEquals", "12.0", True),
        ("NumericNotEquals", "12", False),
        ("NumericNotEquals", ["11", "12"], False),  # none may be equal
        ("NumericNotEquals", ["11", "13"], True),
        ("NumericLessThan", "13", True),
        ("NumericLessThan", "12", False),
        ("NumericLessThanEquals", "12", True),
        ("NumericGreaterThan", "11", True),
        ("NumericGreaterThanEquals", "13", False),
        ("NumericEquals", "twelve", False),
    ],
)
def test_numeric_operators_compare_a_thing_attribute(operator: str, value: str | list[str], allowed: bool) -> None:
    firmware = attached(thing_attributes={"firmware": "12"})
    assert allowed_when({operator: {"iot:Connection.Thing.Attributes[firmware]": value}}, firmware) is allowed


def test_a_value_that_is_not_a_number_fails_a_numeric_condition() -> None:
    assert not allowed_when({"NumericLessThan": {"iot:Connection.Thing.Attributes[firmware]": "20"}},
                            attached(thing_attributes={"firmware": "v12"}))  # fmt: skip


@pytest.mark.parametrize(
    ("operator", "networks", "source_ip", "allowed"),
    [
        ("IpAddress", "10.0.0.0/8", "10.1.2.3", True),
        ("IpAddress", "10.0.0.0/8", "192.168.1.1", False),
        ("IpAddress", ["192.168.0.0/16", "10.1.2.3"], "10.1.2.3", True),
        ("IpAddress", "2001:db8::/32", "2001:db8::1", True),
        ("NotIpAddress", "10.0.0.0/8", "192.168.1.1", True),
        ("NotIpAddress", "10.0.0.0/8", "10.1.2.3", False),
    ],
)
def test_ip_address_operators_compare_the_source_ip(
    operator: str, networks: str | list[str], source_ip: str, allowed: bool
) -> None:
    assert allowed_when({operator: {"aws:SourceIp": networks}}, context(source_ip=source_ip)) is allowed


def test_arn_operators_match_arns_component_by_component() -> None:
    connection = context("arn:aws:iot:eu-west-1:123456789012:thing/thing-1")
    assert allowed_when({"ArnLike": {"iot:ClientId": "arn:aws:iot:*:123456789012:thing/*"}}, connection)
    assert allowed_when({"ArnEquals": {"iot:ClientId": "arn:aws:iot:eu-west-1:123456789012:thing/thing-1"}}, connection)
    assert not allowed_when({"ArnLike": {"iot:ClientId": "arn:aws:iot:*:999999999999:thing/*"}}, connection)
    assert allowed_when({"ArnNotLike": {"iot:ClientId": "arn:aws:iot:*:999999999999:thing/*"}}, connection)


def test_null_tests_whether_the_connection_has_a_key() -> None:
    typed = attached(thing_type_name="sensor")
    assert allowed_when({"Null": {"iot:Connection.Thing.ThingTypeName": "false"}}, typed)
    assert not allowed_when({"Null": {"iot:Connection.Thing.ThingTypeName": "true"}}, typed)
    assert allowed_when({"Null": {"iot:Connection.Thing.ThingTypeName": "true"}}, attached())
    assert allowed_when({"Null": {"iot:Certificate.Subject.CommonName": True}}, context())


def test_a_key_the_connection_lacks_fails_a_condition_but_passes_a_negated_one_or_one_if_exists() -> None:
    untyped = attached()
    assert not allowed_when({"StringEquals": {"iot:Connection.Thing.ThingTypeName": "sensor"}}, untyped)
    assert allowed_when({"StringNotEquals": {"iot:Connection.Thing.ThingTypeName": "sensor"}}, untyped)
    assert allowed_when({"StringEqualsIfExists": {"iot:Connection.Thing.ThingTypeName": "sensor"}}, untyped)
    typed = attached(thing_type_name="camera")
    assert not allowed_when({"StringEqualsIfExists": {"iot:Connection.Thing.ThingTypeName": "sensor"}}, typed)


def test_for_any_value_needs_the_key_and_for_all_values_passes_without_it() -> None:
    untyped, typed = attached(), attached(thing_type_name="sensor")
    assert not allowed_when({"ForAnyValue:StringEquals": {"iot:Connection.Thing.ThingTypeName": "sensor"}}, untyped)
    assert allowed_when({"ForAnyValue:StringEquals": {"iot:Connection.Thing.ThingTypeName": "sensor"}}, typed)
    assert allowed_when({"ForAllValues:StringEquals": {"iot:Connection.Thing.ThingTypeName": "sensor"}}, untyped)
    assert allowed_when({"ForAllValues:StringLike": {"iot:Connection.Thing.ThingTypeName": "sen*"}}, typed)
    assert not allowed_when({"ForAllValues:StringEquals": {"iot:Connection.Thing.ThingTypeName": "camera"}}, typed)


def test_every_operator_and_every_key_of_a_condition_must_hold() -> None:
    condition = {
        "StringEquals": {
            "iot:Connection.Thing.ThingTypeName": "sensor",
            "iot:Connection.Thing.Attributes[site]": "lyon",
        },
        "Bool": {"iot:Connection.Thing.IsAttached": "true"},
    }
    assert allowed_when(condition, attached(thing_type_name="sensor", thing_attributes={"site": "lyon"}))
    assert not allowed_when(condition, attached(thing_type_name="sensor", thing_attributes={"site": "oslo"}))
    assert not allowed_when(condition, attached(thing_type_name="camera", thing_attributes={"site": "lyon"}))


def test_a_condition_operator_this_runtime_does_not_emulate_fails_closed() -> None:
    dated = {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}
    verdict = evaluate(
        [policy(allow("iot:Publish", "*", Condition=dated))], "iot:Publish", f"{BASE}:topic/a", context()
    )
    assert not verdict.allowed
    assert "cannot allow: the condition operator DateLessThan, which this runtime does not emulate" in verdict.reason
    fenced = [policy(allow("iot:Publish", "*")), policy(deny("iot:Publish", "*", Condition=dated), name="fence")]
    verdict = evaluate(fenced, "iot:Publish", f"{BASE}:topic/a", context())
    assert not verdict.allowed
    assert verdict.reason.startswith(
        "denied by statement 1 of policy fence, which uses the condition operator DateLessThan"
    )


def test_a_condition_key_this_runtime_does_not_emulate_fails_closed() -> None:
    unknown = {"StringEquals": {"iot:DomainName": "example.com"}}
    verdict = evaluate(
        [policy(allow("iot:Publish", "*", Condition=unknown))], "iot:Publish", f"{BASE}:topic/a", context()
    )
    assert not verdict.allowed
    assert "cannot allow: iot:DomainName, which this runtime does not emulate" in verdict.reason
    fenced = [policy(allow("iot:Publish", "*")), policy(deny("iot:Publish", "*", Condition=unknown))]
    assert not may_publish(fenced, "a", context())


def test_a_deny_whose_condition_does_not_hold_does_not_deny() -> None:
    fenced = [
        policy(allow("iot:Publish", "*")),
        policy(deny("iot:Publish", "*", Condition={"Bool": {"iot:Connection.Thing.IsAttached": "false"}})),
    ]
    assert may_publish(fenced, "a", attached())
    assert not may_publish(fenced, "a", context())


# --- Documents -------------------------------------------------------------------------------------------------


def test_a_document_may_be_json_text_or_parsed() -> None:
    document = {"Version": "2012-10-17", "Statement": allow("iot:Publish", f"{BASE}:topic/a")}  # one statement
    assert may_publish(NamedPolicy("text", json.dumps(document)), "a", context())
    assert may_publish(NamedPolicy("parsed", document), "a", context())


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ("{not json", "it is not JSON"),
        ("[]", "it is not a JSON object"),
        ({"Version": "2012-10-17"}, "it has no Statement"),
        ({"Version": "2012-10-17", "Statement": []}, "it has no Statement"),
        ({"Version": "2020-01-01", "Statement": [allow("iot:*", "*")]}, 'its Version is "2020-01-01", not 2012-10-17'),
        ({"Version": "2012-10-17", "Statement": [{"Action": "iot:*", "Resource": "*"}]},
         "statement 1 has Effect null, not Allow or Deny"),
        ({"Version": "2012-10-17",
          "Statement": [{"Effect": "Allow", "Action": "iot:*", "NotAction": "x", "Resource": "*"}]},
         "statement 1 needs exactly one of Action and NotAction"),
        ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*"}]},
         "statement 1 needs exactly one of Resource and NotResource"),
        ({"Version": "2012-10-17", "Statement": [allow("iot:*", "*", Principal="*")]},
         "statement 1 has Principal, which IoT policies do not have"),
        ({"Version": "2012-10-17", "Statement": [allow("iot:*", [])]},
         "statement 1 has a Resource that is not a string or a list of strings"),
    ],
)  # fmt: skip
def test_a_document_that_is_not_a_policy_denies_everything_saying_why(document: object, why: str) -> None:
    broken = NamedPolicy("broken", document if isinstance(document, str) else json.dumps(document))
    verdict = evaluate([policy(allow("iot:*", "*"), name="fine"), broken], "iot:Publish", f"{BASE}:topic/a", context())
    assert not verdict.allowed
    assert verdict.reason.startswith(f"policy broken is not a valid policy document: {why}")


def test_a_policy_is_compiled_once_however_often_it_is_evaluated() -> None:
    device = policy(allow("iot:Publish", f"{BASE}:topic/dt/*/{THING}/*"))
    assert device.compiled is device.compiled
    text = json.dumps({"Version": "2012-10-17", "Statement": [allow("iot:Publish", "*")]})
    assert NamedPolicy("a", text).compiled is NamedPolicy("a", text).compiled  # the same text, from two GetPolicy calls


# --- The app's own device policy (stacks/device_policy.py) -----------------------------------------------------

DEVICE_POLICY = NamedPolicy("iot_backend_device", device_policy_document(BASE))


def device_may(action: str, resource: str, connection: PolicyContext) -> bool:
    return evaluate([DEVICE_POLICY], action, resource, connection).allowed


def test_a_device_connects_only_with_its_thing_name_as_client_id_and_its_certificate_attached() -> None:
    own = attached("thing-1")
    assert device_may("iot:Connect", client_arn(own, "thing-1"), own)
    # Another thing's name as client ID: that thing is not attached to this certificate.
    spoof = context("thing-2", thing_name="thing-2", certificate_id=CERTIFICATE_ID)
    assert not device_may("iot:Connect", client_arn(spoof, "thing-2"), spoof)
    # A client ID that names no thing.
    anonymous = context("laptop", certificate_id=CERTIFICATE_ID)
    assert not device_may("iot:Connect", client_arn(anonymous, "laptop"), anonymous)


def test_a_device_publishes_its_own_telemetry_and_shadow_only() -> None:
    own = attached("thing-1")
    assert may_publish(DEVICE_POLICY, "dt/backend/thing-1/telemetry", own)
    assert may_publish(DEVICE_POLICY, "dt/other-app/thing-1/status", own)
    assert may_publish(DEVICE_POLICY, "$aws/things/thing-1/shadow/update", own)
    assert not may_publish(DEVICE_POLICY, "dt/backend/thing-2/telemetry", own)
    assert not may_publish(DEVICE_POLICY, "$aws/things/thing-2/shadow/update", own)
    assert not may_publish(DEVICE_POLICY, "cmd/backend/thing-1/reboot", own)  # commands come from the backend
    assert not may_publish(DEVICE_POLICY, "dt/backend/thing-1", own)  # dt/<app>/<thing>/<kind>: a kind is needed


def test_a_device_subscribes_to_and_receives_its_own_commands_only() -> None:
    own = attached("thing-1")
    for topic_filter in ("cmd/backend/thing-1/reboot", "cmd/backend/thing-1/+", "cmd/+/thing-1/#"):
        assert device_may("iot:Subscribe", topic_filter_arn(own, topic_filter), own), topic_filter
    for topic_filter in ("cmd/#", "cmd/backend/#", "cmd/backend/+/reboot", "cmd/backend/thing-2/+"):
        assert not device_may("iot:Subscribe", topic_filter_arn(own, topic_filter), own), topic_filter
    assert device_may("iot:Receive", topic_arn(own, "cmd/backend/thing-1/reboot"), own)
    assert device_may("iot:Receive", topic_arn(own, "$aws/things/thing-1/shadow/update/delta"), own)
    assert not device_may("iot:Receive", topic_arn(own, "cmd/backend/thing-2/reboot"), own)
    assert not device_may("iot:Receive", topic_arn(own, "dt/backend/thing-1/telemetry"), own)


def test_a_device_whose_certificate_is_not_attached_to_a_thing_may_do_nothing() -> None:
    unattached = context("thing-1", thing_name="thing-1", certificate_id=CERTIFICATE_ID)
    assert not may_publish(DEVICE_POLICY, "dt/backend/thing-1/telemetry", unattached)
    assert not device_may("iot:Subscribe", topic_filter_arn(unattached, "cmd/backend/thing-1/+"), unattached)


def test_the_device_policy_grants_nothing_else() -> None:
    own = attached("thing-1")
    assert not device_may("iot:RetainPublish", topic_arn(own, "dt/backend/thing-1/telemetry"), own)
    assert not device_may("iot:GetThingShadow", f"{BASE}:thing/thing-1", own)
    elsewhere = replace(own, region="us-east-1")  # the policy names its own account and region
    assert not device_may("iot:Connect", client_arn(elsewhere, "thing-1"), elsewhere)


# --- The registry (moto, in process) ---------------------------------------------------------------------------


@pytest.fixture
def iot():
    with mock_aws():
        yield boto3.client("iot", region_name=REGION)


@pytest.fixture
def registry(iot) -> IotRegistry:
    return IotRegistry(ACCOUNT, REGION)  # what the API calls above made, read in process


def device_certificate(iot) -> str:
    return iot.create_keys_and_certificate(setAsActive=True)["certificateArn"]


def test_connection_context_is_the_thing_named_after_the_client_id_with_its_type_attributes_and_attachment(
    iot, registry
) -> None:
    iot.create_thing_type(thingTypeName="sensor")
    iot.create_thing(thingName="thing-1", thingTypeName="sensor", attributePayload={"attributes": {"site": "lyon"}})
    certificate_arn = device_certificate(iot)
    iot.attach_thing_principal(thingName="thing-1", principal=certificate_arn)
    known = {"region": REGION, "account": ACCOUNT, "certificate": None, "source_ip": "127.0.0.1"}

    found = connection_context(registry, client_id="thing-1", certificate_arn=certificate_arn, **known)
    assert (found.thing_name, found.thing_type_name) == ("thing-1", "sensor")
    assert found.thing_attributes == {"site": "lyon"}
    assert found.is_attached
    assert found.certificate_id == certificate_arn.rsplit("/", 1)[-1]
    assert found.source_ip == "127.0.0.1"

    other_certificate = connection_context(registry, client_id="thing-1", certificate_arn=device_certificate(iot), **known)
    assert other_certificate.thing_name == "thing-1" and not other_certificate.is_attached
    custom_authorizer = connection_context(registry, client_id="thing-1", certificate_arn=None, **known)
    assert not custom_authorizer.is_attached and custom_authorizer.certificate_id is None
    for nameless in ("laptop", "a/b", ""):  # no such thing; not a thing name at all
        assert connection_context(registry, client_id=nameless, certificate_arn=certificate_arn, **known).thing_name is None


def create_policy(iot, name: str, topic: str) -> None:
    document = {"Version": "2012-10-17", "Statement": [allow("iot:Publish", f"{BASE}:topic/{topic}")]}
    iot.create_policy(policyName=name, policyDocument=json.dumps(document))


def test_certificate_policies_add_the_thing_groups_and_their_parents_when_the_client_id_is_the_attached_thing(
    iot, registry
) -> None:
    iot.create_thing(thingName="thing-1")
    certificate_arn = device_certificate(iot)
    iot.attach_thing_principal(thingName="thing-1", principal=certificate_arn)
    iot.create_thing_group(thingGroupName="fleet")
    child = iot.create_thing_group(thingGroupName="fleet-lyon", parentGroupName="fleet")
    iot.add_thing_to_thing_group(thingGroupName="fleet-lyon", thingName="thing-1")
    for name in ("own", "lyon", "everyone"):
        create_policy(iot, name, name)
    iot.attach_policy(policyName="own", target=certificate_arn)
    iot.attach_policy(policyName="lyon", target=child["thingGroupArn"])
    iot.attach_policy(policyName="everyone", target=iot.describe_thing_group(thingGroupName="fleet")["thingGroupArn"])
    known = {"region": REGION, "account": ACCOUNT, "certificate": None, "source_ip": None}

    as_thing = connection_context(registry, client_id="thing-1", certificate_arn=certificate_arn, **known)
    policies = certificate_policies(registry, certificate_arn, as_thing)
    assert sorted(p.name for p in policies) == ["everyone", "lyon", "own"]
    assert all(may_publish(policies, topic, as_thing) for topic in ("own", "lyon", "everyone"))

    as_other_client = connection_context(registry, client_id="laptop", certificate_arn=certificate_arn, **known)
    assert [p.name for p in certificate_policies(registry, certificate_arn, as_other_client)] == ["own"]
