"""Every topic rule of the app, end to end on the synthesized app: the rule's sample (a raw message as IoT Core
publishes it: the demo scenario's first on the rule's topics, or the JITR sample) through the rule's real SQL,
its action, the event source and the function, to the row or thing it leaves. Then the proof that these checks
catch broken rules: each rule's SQL broken the ways rules break (rule_mutants.py) must fail its check."""

from __future__ import annotations

import base64
import gzip
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest
from boto3.dynamodb.types import TypeDeserializer

from events import sqs_bodies
from local_runtime import LocalRuntime
from local_runtime.scenario import DeviceConnect, DevicePublish, Publish, load_scenario
from local_runtime.topics import TopicFilter
from local_runtime.trust_material import trust_bucket
from tests import jitr_samples
from tests.e2e.rule_mutants import assembly_with_sql, from_filter, mutants
from tests.e2e.test_fleet_morning import SCENARIO

PREFIX = "iot_backend_"  # the app's default deviceBackend.namePrefix
_deserialize = TypeDeserializer().deserialize
Tables = dict[str, list[dict[str, Any]]]


def run_one(assembly: Path, message: Publish) -> tuple[Tables, list[str]]:
    """Every table's items (and IoT's things, as the table "IotThings") and the names of the rules that fired,
    after `message` alone went through."""
    with LocalRuntime(assembly, drain_timeout_s=30) as runtime:
        if message.topic.startswith("$aws/events/certificates/registered/"):
            jitr_samples.install(runtime.cloud.client("iot"), runtime.cloud.client("s3"), trust_bucket(runtime))
        fired = runtime.publish(message.topic, message.payload, message.client_id)
        runtime.drain()
        dynamodb = runtime.cloud.client("dynamodb")
        tables = {
            resource.logical_id: [
                {name: _deserialize(value) for name, value in item.items()}
                for item in dynamodb.scan(TableName=runtime.cloud.physical[resource.logical_id].ref)["Items"]
            ]
            for resource in runtime.cloud.created
            if resource.type == "AWS::DynamoDB::Table"
        }
        iot = runtime.cloud.client("iot")
        tables["IotThings"] = [iot.describe_thing(thingName=t["thingName"]) for t in iot.list_things()["things"]]
        tables["ArchivedRecords"] = archived_records(runtime)
        failed = [f.rule for f in fired if f.sql_error or any(a.error for a in f.actions)]
    assert not failed, f"rules failed: {failed}"
    return tables, [f.rule for f in fired]


def archived_records(runtime: LocalRuntime) -> list[dict[str, Any]]:
    """The records Firehose delivered to the raw archive (gzipped, newline-separated JSON)."""
    s3 = runtime.cloud.client("s3")
    [bucket] = [r.logical_id for r in runtime.cloud.created if r.type == "AWS::S3::Bucket" and "TelemetryArchive" in r.label]
    name = runtime.cloud.physical[bucket].ref
    return [
        json.loads(line)
        for listed in s3.list_objects_v2(Bucket=name).get("Contents", [])
        for line in gzip.decompress(s3.get_object(Bucket=name, Key=listed["Key"])["Body"].read()).decode().splitlines()
    ]


def only_item(tables: Tables, table_prefix: str) -> dict[str, Any]:
    [items] = [items for logical_id, items in tables.items() if logical_id.startswith(table_prefix)]
    assert len(items) == 1, f"{table_prefix}: expected one item, found {len(items)}"
    others = {logical_id: items for logical_id, items in tables.items() if not logical_id.startswith(table_prefix)}
    assert all(not items for items in others.values()), f"unexpected items elsewhere: {others}"
    return items[0]


def connected(tables: Tables, event: dict[str, Any]) -> None:
    row = only_item(tables, "PresenceConnectivity")
    assert (row["clientId"], row["connected"], row["sessionIdentifier"]) == (
        event["clientId"], True, event["sessionIdentifier"]
    )  # fmt: skip


def disconnected(tables: Tables, event: dict[str, Any]) -> None:
    row = only_item(tables, "PresenceConnectivity")
    assert (row["clientId"], row["connected"], row["disconnectReason"]) == (
        event["clientId"], False, event["disconnectReason"]
    )  # fmt: skip


def subscribed(tables: Tables, event: dict[str, Any]) -> None:
    row = only_item(tables, "PresenceSubscriptions")
    assert (row["clientId"], row["sessionIdentifier"], row["topics"]) == (
        event["clientId"], event["sessionIdentifier"], set(event["topics"])
    )  # fmt: skip


def thing(tables: Tables, event: dict[str, Any]) -> None:
    row = only_item(tables, "RegistryInventory")
    assert (row["pk"], row["sk"], row["thingName"], row["deleted"]) == (
        f"THING#{event['thingName']}", "THING", event["thingName"], event["operation"] == "DELETED"
    )  # fmt: skip


def thing_group(tables: Tables, event: dict[str, Any]) -> None:
    row = only_item(tables, "RegistryInventory")
    assert (row["pk"], row["sk"], row["thingGroupName"]) == (
        f"GROUP#{event['thingGroupName']}", "GROUP", event["thingGroupName"]
    )  # fmt: skip


def membership(tables: Tables, event: dict[str, Any]) -> None:
    row = only_item(tables, "RegistryInventory")
    thing_name, group_name = event["thingArn"].rsplit("/", 1)[1], event["groupArn"].rsplit("/", 1)[1]
    assert (row["pk"], row["sk"], row["member"]) == (
        f"THING#{thing_name}", f"GROUP#{group_name}", event["operation"] == "ADDED"
    )  # fmt: skip


def activated(tables: Tables, event: dict[str, Any]) -> None:
    thing = only_item(tables, "IotThings")
    assert thing["thingName"] == "greenhouse-sensor-0001"
    assert thing["attributes"]["caCertificateId"] == event["caCertificateId"]


def only_row(tables: Tables, table_prefix: str) -> dict[str, Any]:
    """The one item of a table, whatever the other tables hold (a device message fires two rules)."""
    [items] = [items for name, items in tables.items() if name.startswith(table_prefix)]
    assert len(items) == 1, f"{table_prefix}: expected one item, found {len(items)}"
    return items[0]


def reading(kind: str) -> Callable[[Tables, dict[str, Any]], None]:
    """The kind's reading is the thing's latest and in its history; the publisher's client ID is its thing name
    in the samples, so a rule that reads the thing name from the wrong topic level is caught."""

    def check(tables: Tables, event: dict[str, Any]) -> None:
        latest = only_row(tables, "TelemetryLatest")
        stored = only_row(tables, "TelemetryHistory")
        assert (latest["thingName"], latest["kind"], latest["ts"]) == (latest["clientId"], kind, event["ts"])
        assert {name: float(value) for name, value in latest["reading"].items()} == {
            name: value for name, value in event.items() if name != "ts"
        }
        assert (stored["series"], stored["ts"]) == (f"{latest['thingName']}#{kind}", event["ts"])

    return check


def archived(tables: Tables, event: dict[str, Any]) -> None:
    record = only_row(tables, "ArchivedRecords")
    assert json.loads(base64.b64decode(record["payload"])) == event
    assert record["topic"].startswith("dt/fleet/") and record["clientId"] == record["topic"].split("/")[2]


# What each rule of the app must do with its sample. A rule added to the app without a check here fails
# test_every_rule_of_the_app_has_an_end_to_end_check.
CHECKS: dict[str, Callable[[Tables, dict[str, Any]], None]] = {
    "presence_connected": connected,
    "presence_disconnected": disconnected,
    "presence_subscriptions": subscribed,
    "registry_things": thing,
    "registry_thing_groups": thing_group,
    "registry_group_memberships": membership,
    "onboarding_certificates_registered": activated,
    "telemetry_environment": reading("environment"),
    "telemetry_soil": reading("soil"),
    "telemetry_power": reading("power"),
    "telemetry_archive": archived,
}


def app_rules(assembly: Path) -> dict[str, tuple[str, str]]:
    """Each rule of the synthesized app: its name without the prefix -> (its RuleName, its SQL)."""
    [template] = assembly.glob("*.template.json")
    resources = json.loads(template.read_text())["Resources"].values()
    rules = [resource["Properties"] for resource in resources if resource["Type"] == "AWS::IoT::TopicRule"]
    return {
        rule["RuleName"].removeprefix(PREFIX): (rule["RuleName"], rule["TopicRulePayload"]["Sql"]) for rule in rules
    }


def sample(sql: str) -> Publish:
    """The first message of the demo scenario on the topics of `sql`'s FROM filter (a real device's as its client
    published it), or the JITR sample."""
    topic_filter = TopicFilter.parse(from_filter(sql), sql)
    [registered] = sqs_bodies("activate_certificate/new")
    jitr = Publish(f"$aws/events/certificates/registered/{registered['caCertificateId']}", json.dumps(registered).encode())
    scenario = load_scenario(SCENARIO)
    client_ids = {step.device: step.client_id for step in scenario if isinstance(step, DeviceConnect)}
    steps = [
        step if isinstance(step, Publish) else Publish(step.topic, step.payload, client_id=client_ids[step.device])
        for step in scenario
        if isinstance(step, (Publish, DevicePublish))
    ]
    return next(step for step in [*steps, jitr] if topic_filter.matches(step.topic))


def test_every_rule_of_the_app_has_an_end_to_end_check(cloud_assembly: Path) -> None:
    assert sorted(app_rules(cloud_assembly)) == sorted(CHECKS)


@pytest.mark.parametrize("rule", sorted(CHECKS))
def test_the_rule_takes_its_raw_message_through_its_sql_to_the_table(cloud_assembly: Path, rule: str) -> None:
    name, sql = app_rules(cloud_assembly)[rule]
    message = sample(sql)
    tables, fired = run_one(cloud_assembly, message)
    if message.topic.startswith("dt/"):  # a device message: its kind's rule and the archive's fire
        assert sorted(fired) == sorted({f"{PREFIX}telemetry_{message.topic.split('/')[3]}", f"{PREFIX}telemetry_archive"})
    else:
        assert fired == [name]
    CHECKS[rule](tables, json.loads(message.payload))


def all_mutants(assembly: Path) -> list[tuple[str, str, str]]:
    return [(rule, what, broken) for rule, (_, sql) in sorted(app_rules(assembly).items()) for what, broken in mutants(sql)]


Mutant = tuple[int, str, str, str]  # number, rule, what was broken, the broken SQL


def surviving(cloud_assembly: Path, root: Path, broken_rules: list[Mutant]) -> tuple[int, list[str]]:
    """How many of `broken_rules` ran, each on a runtime of its own, and those whose check passed."""
    rules = app_rules(cloud_assembly)
    ran, survivors = 0, []
    for number, rule, what, broken_sql in broken_rules:
        name, sql = rules[rule]
        assembly = assembly_with_sql(cloud_assembly, root / str(number), name, broken_sql)
        message = sample(sql)
        ran += 1
        try:
            tables, _ = run_one(assembly, message)
            CHECKS[rule](tables, json.loads(message.payload))
        except AssertionError:
            continue
        survivors.append(f"{rule}: {what}: {broken_sql}")
    return ran, survivors


def test_a_broken_rule_fails_its_check(cloud_assembly: Path, tmp_path: Path) -> None:
    """Every mutant of every rule: the same sample, the same check, and the check must fail. The mutants are
    shared among processes, one per core (an embedded AWS is one per process), started fresh ("spawn": this
    process runs threads and the CDK's node process, which a fork would copy mid-flight)."""
    broken_rules = [(number, *mutant) for number, mutant in enumerate(all_mutants(cloud_assembly))]
    assert len(broken_rules) >= 2 * len(app_rules(cloud_assembly))
    processes = max(1, min(os.cpu_count() or 1, 4))
    shares = [broken_rules[index::processes] for index in range(processes)]
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(surviving, [cloud_assembly] * processes, [tmp_path] * processes, shares))
    assert sum(ran for ran, _ in results) == len(broken_rules)
    survivors = [survivor for _, share in results for survivor in share]
    assert survivors == [], "broken rules the checks let through:\n" + "\n".join(survivors)


def test_the_mutants_cover_topic_indexes_and_fields_where_a_rule_has_them() -> None:
    broken = dict(mutants("SELECT topic(3) AS thing, temperature FROM 'dt/+/+' WHERE humidity > 5"))
    assert broken["topic(3) as topic(2)"] == "SELECT topic(2) AS thing, temperature FROM 'dt/+/+' WHERE humidity > 5"
    assert broken["field temperature misspelled"].startswith("SELECT topic(3) AS thing, temperaturex FROM")
    assert broken["field humidity misspelled"].endswith("WHERE humidityx > 5")
    assert "field thing misspelled" not in broken  # an alias, not a field
