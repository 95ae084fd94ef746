"""Basic Ingest topics as IoT reads them (https://docs.aws.amazon.com/iot/latest/developerguide/iot-basic-ingest.html):
`$aws/rules/<rule_name>` as the first three levels names the one rule the message goes to."""

from __future__ import annotations

import pytest

from local_runtime.device_gateway import publish_problem
from local_runtime.iot_sql import MessageContext, parse_rule_sql
from local_runtime.topics import BasicIngest, basic_ingest, may_publish_to


@pytest.mark.parametrize(
    "topic, expected",
    [
        ("$aws/rules/BuildingManager/Buildings/Building5/Floor2/Room201/Lights",
         BasicIngest("BuildingManager", "Buildings/Building5/Floor2/Room201/Lights")),
        ("$aws/rules/BuildingManager", BasicIngest("BuildingManager", "")),
        ("$aws/rules/", None),
        ("$aws/rulesets/x/y", None),
        ("Buildings/Building5", None),
        ("$aws/events/presence/connected/d-1", None),
    ],
)
def test_a_basic_ingest_topic_names_its_rule_and_the_topic_after_the_prefix(topic, expected) -> None:
    assert basic_ingest(topic) == expected


def test_clients_may_publish_to_basic_ingest_and_thing_topics_but_not_to_other_reserved_ones() -> None:
    assert may_publish_to("$aws/rules/telemetry/dt/fleet/s-1")
    assert may_publish_to("$aws/things/s-1/shadow/update")
    assert may_publish_to("dt/fleet/s-1/soil")
    assert not may_publish_to("$aws/events/presence/connected/s-1")
    assert not may_publish_to("$aws/rules/")


def test_the_basic_ingest_prefix_does_not_count_towards_the_topic_limits() -> None:
    # "The first three levels of the Basic Ingest topic ($aws/rules/rule_name) don't count towards the
    # 8-segment length or towards the 256 total character limits on a topic."
    eight_levels = "/".join(["level"] * 8)
    assert publish_problem(f"$aws/rules/ingest/{eight_levels}", b"{}", 1) is None
    assert "slashes" in str(publish_problem(f"$aws/rules/ingest/{eight_levels}/ninth", b"{}", 1))
    long_name = "r" * 120
    assert publish_problem(f"$aws/rules/{long_name}/" + "t" * 250, b"{}", 1) is None
    assert "256 bytes" in str(publish_problem(f"$aws/rules/{long_name}/" + "t" * 257, b"{}", 1))
    assert "reserved" in str(publish_problem("$aws/events/presence/connected/d-1", b"{}", 1))


def test_a_rule_only_basic_ingest_invokes_needs_no_from_clause() -> None:
    # "If you define a rule that will only be invoked by Basic Ingest, the FROM clause is optional".
    statement = parse_rule_sql("SELECT reading, topic(1) AS building WHERE reading > 1")
    context = MessageContext(topic="Buildings/Building5")
    assert statement.topic_filter is None
    assert statement.evaluate(b'{"reading": 2}', context) == {"reading": 2, "building": "Buildings"}
