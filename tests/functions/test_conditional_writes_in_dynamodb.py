"""The rendered conditions and updates do in DynamoDB (moto) exactly what they do in memory."""

from __future__ import annotations

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from event_processing.dynamodb import Table, write_conditionally
from tests.functions.conftest import create_table
from tests.memory_table import MemoryTable
from track_inventory.logic import inventory_write, membership_ended_by_deletion
from track_inventory.models import ThingEvent, ThingGroupMembershipEvent
from track_presence.logic import CLOCK_ORDER_MIN_GAP_MS, KICK_WINDOW_MS, connectivity_write
from track_presence.models import ConnectivityEvent

BASE = 1_795_420_800_000
# Timestamps on and around every boundary the ordering rules draw.
OFFSETS = sorted({sign * (edge + nudge) for sign in (1, -1) for edge in (0, KICK_WINDOW_MS, CLOCK_ORDER_MIN_GAP_MS) for nudge in (-1, 0, 1)})


@pytest.fixture
def dynamodb():
    with mock_aws():
        client = boto3.client("dynamodb")
        create_table(client, "presence", "clientId")
        create_table(client, "inventory", "pk", "sk")
        yield client


connectivity_events = st.builds(
    ConnectivityEvent,
    clientId=st.just("c"),
    eventType=st.sampled_from(["connected", "disconnected"]),
    timestamp=st.sampled_from(OFFSETS).map(lambda offset: BASE + offset),
    sessionIdentifier=st.sampled_from(["s1", "s2"]),
    principalIdentifier=st.sampled_from([None, "cert"]),
    versionNumber=st.sampled_from([None, 0, 1, 2]),
    ipAddress=st.sampled_from([None, "192.0.2.1"]),
    disconnectReason=st.sampled_from([None, "DUPLICATE_CLIENTID"]),
)


def _item_in_dynamodb(client, table: str, key: dict) -> dict | None:
    item = client.get_item(TableName=table, Key={k: {"S": v} for k, v in key.items()}, ConsistentRead=True).get("Item")
    if item is None:
        return None
    deserialize = TypeDeserializer().deserialize
    return {name: deserialize(value) for name, value in item.items()}


def _check_same_outcome(client, table: str, writes) -> None:
    memory = MemoryTable()
    for write in writes:
        assert write_conditionally(client, table, write) == memory.write(write)
        in_dynamodb = _item_in_dynamodb(client, table, write.key)
        in_memory = memory.get(**write.key)
        assert in_dynamodb == in_memory


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(connectivity_events, min_size=2, max_size=4))
def test_presence_conditions_decide_the_same_in_dynamodb_as_in_memory(dynamodb, events):
    dynamodb.delete_item(TableName="presence", Key={"clientId": {"S": "c"}})
    _check_same_outcome(dynamodb, "presence", [connectivity_write(event, 1) for event in events])


thing_events = st.builds(
    ThingEvent,
    eventId=st.just("e"),
    timestamp=st.sampled_from([BASE - 1, BASE, BASE + 1]),
    operation=st.sampled_from(["CREATED", "UPDATED", "DELETED"]),
    thingId=st.sampled_from(["id-1", "id-2"]),
    thingName=st.just("MyThing"),
    versionNumber=st.integers(1, 3),
    thingTypeName=st.sampled_from([None, "Thermostat"]),
    attributes=st.sampled_from([{}, {"a": "1"}]),
)
membership_events = st.builds(
    ThingGroupMembershipEvent,
    eventId=st.just("e"),
    timestamp=st.sampled_from([BASE - 1, BASE, BASE + 1]),
    operation=st.sampled_from(["ADDED", "REMOVED"]),
    groupArn=st.just("arn:aws:iot:eu-west-1:123456789012:thinggroup/G"),
    groupId=st.just("g"),
    thingArn=st.just("arn:aws:iot:eu-west-1:123456789012:thing/MyThing"),
    thingId=st.sampled_from(["id-1", "id-2"]),
    membershipId=st.sampled_from(["m1", "m2"]),
    thingName=st.just("MyThing"),
    thingGroupName=st.just("G"),
)


memberships_ended_by_deletion = st.builds(
    membership_ended_by_deletion,
    thing_name=st.just("MyThing"),
    group_name=st.just("G"),
    thing_id=st.sampled_from(["id-1", "id-2"]),
    deleted_at=st.sampled_from([BASE - 1, BASE, BASE + 1]),
    processed_at_ms=st.just(1),
)
inventory_writes = st.one_of(
    st.one_of(thing_events, membership_events).map(lambda event: inventory_write(event, 1)), memberships_ended_by_deletion
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(inventory_writes, min_size=2, max_size=5))
def test_inventory_conditions_decide_the_same_in_dynamodb_as_in_memory(dynamodb, writes):
    for sk in ("THING", "GROUP#G"):
        dynamodb.delete_item(TableName="inventory", Key={"pk": {"S": "THING#MyThing"}, "sk": {"S": sk}})
    _check_same_outcome(dynamodb, "inventory", writes)


def test_a_table_reads_items_and_lists_a_partitions_sort_keys_by_prefix(dynamodb):
    table = Table(dynamodb, "inventory")
    for pk, sk in [("THING#a", "THING"), ("THING#a", "GROUP#g1"), ("THING#a", "GROUP#g2"), ("THING#b", "GROUP#g1")]:
        dynamodb.put_item(TableName="inventory", Item={"pk": {"S": pk}, "sk": {"S": sk}, "n": {"N": "7"}})
    assert sorted(table.sort_keys({"pk": "THING#a"}, "sk", "GROUP#")) == ["GROUP#g1", "GROUP#g2"]
    assert table.sort_keys({"pk": "THING#c"}, "sk", "GROUP#") == []
    assert table.read({"pk": "THING#a", "sk": "THING"}) == {"pk": "THING#a", "sk": "THING", "n": 7}
    assert table.read({"pk": "THING#a", "sk": "GROUP#none"}) is None


def test_a_tables_sort_keys_are_read_page_by_page():
    class Paged:
        def __init__(self):
            self.requests = []

        def query(self, **request):
            self.requests.append(dict(request))
            if "ExclusiveStartKey" not in request:
                return {"Items": [{"sk": {"S": "GROUP#1"}}], "LastEvaluatedKey": {"pk": {"S": "p"}, "sk": {"S": "GROUP#1"}}}
            return {"Items": [{"sk": {"S": "GROUP#2"}}]}

    client = Paged()
    assert Table(client, "t").sort_keys({"pk": "p"}, "sk", "GROUP#") == ["GROUP#1", "GROUP#2"]
    assert [request.get("ExclusiveStartKey") for request in client.requests] == [None, {"pk": {"S": "p"}, "sk": {"S": "GROUP#1"}}]
    assert all(request["ConsistentRead"] is True for request in client.requests)
