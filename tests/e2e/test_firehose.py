"""Firehose: a rule's firehose action puts its records into a delivery stream of the stack, which delivers
them to its bucket as Firehose does (one object per flush, gzipped, under the evaluated prefix)."""

from __future__ import annotations

import gzip
import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local_runtime import LocalRuntime, LocalRuntimeError, NotEmulated
from local_runtime.__main__ import main
from local_runtime.activity import ObjectDelivered
from local_runtime.firehose import compile_prefix
from tests.e2e.assemblies import (
    bucket,
    delivery_stream,
    firehose_action,
    queue,
    receive,
    sqs_action,
    topic_rule,
    write_assembly,
)

# The destination of the app's archive (stacks/telemetry/archive.py: GZIP, a dated prefix, 60 s or 5 MiB).
ARCHIVE = {
    "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 5},
    "CompressionFormat": "GZIP",
    "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/",
    "Prefix": "raw/!{timestamp:yyyy/MM/dd}/",
}


def archive_assembly(
    root: Path,
    action: dict[str, Any],
    sql: str = "SELECT * FROM 'telemetry/+'",
    bucket_properties: dict[str, Any] | None = None,
    **destination: Any,
) -> Path:
    resources = {
        "Telemetry": bucket(**(bucket_properties or {})),
        "Archive": delivery_stream("Telemetry", **{**ARCHIVE, **destination}),
        "Errors": queue(),
        "Rule": topic_rule("archive", sql, [action], error_action=sqs_action("Errors")),
    }
    return write_assembly(root, resources)


def objects(runtime: LocalRuntime) -> dict[str, bytes]:
    """Every object of the Telemetry bucket, by key."""
    s3, name = runtime.cloud.client("s3"), runtime.cloud.physical["Telemetry"].ref
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=name).get("Contents", [])]
    return {key: s3.get_object(Bucket=name, Key=key)["Body"].read() for key in keys}


def deliveries(runtime: LocalRuntime) -> list[ObjectDelivered]:
    return [activity for activity in runtime.activities if isinstance(activity, ObjectDelivered)]


def test_each_message_and_its_separator_is_a_record_and_a_drain_flushes_one_gzipped_object(tmp_path: Path) -> None:
    with LocalRuntime(archive_assembly(tmp_path, firehose_action("Archive", Separator="\n"))) as runtime:
        runtime.publish("telemetry/s-1", b'{"temperature": 21}')
        runtime.publish("telemetry/s-2", b'{"temperature": 22}')
        assert objects(runtime) == {}  # Firehose buffers: nothing is delivered before the flush
        runtime.drain()
        [(key, body)] = objects(runtime).items()
        stream = runtime.cloud.client("firehose").describe_delivery_stream(DeliveryStreamName="Archive")
    assert gzip.decompress(body) == b'{"temperature":21}\n{"temperature":22}\n'
    today = time.strftime("%Y/%m/%d", time.gmtime())
    assert re.fullmatch(rf"raw/{today}/Archive-1-\d{{4}}(-\d\d){{5}}-[0-9a-f-]{{36}}\.gz", key), key
    assert [(d.stream, d.key, d.records) for d in deliveries(runtime)] == [("Archive", key, 2)]
    destination = stream["DeliveryStreamDescription"]["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert (destination["Prefix"], destination["CompressionFormat"]) == ("raw/!{timestamp:yyyy/MM/dd}/", "GZIP")


@pytest.mark.parametrize(
    ("prefix", "evaluated"),
    [
        ("raw/!{timestamp:yyyy/MM/dd}/", "raw/2026/03/07/"),
        ("dt=!{timestamp:yyyy'-'MM'-'dd}/h=!{timestamp:HH}/", "dt=2026-03-07/h=09/"),
        ("it's/!{timestamp:'y'yy}/", "it's/y26/"),  # a quote in the text, a quoted literal in the pattern
        ("", "2026/03/07/09/"),  # without a timestamp expression, Firehose appends yyyy/MM/dd/HH/ as it is
        ("plain", "plain2026/03/07/09/"),
    ],
)
def test_a_prefix_evaluates_as_firehose_evaluates_it(prefix: str, evaluated: str) -> None:
    oldest_arrival = datetime(2026, 3, 7, 9, 41, 5, tzinfo=timezone.utc)
    assert compile_prefix(prefix, "Archive.Prefix")(oldest_arrival) == evaluated


def test_a_prefix_without_a_timestamp_gets_the_hour_appended_and_records_stay_uncompressed(tmp_path: Path) -> None:
    assembly = archive_assembly(
        tmp_path, firehose_action("Archive"), Prefix="plain/", CompressionFormat=None, ErrorOutputPrefix=None
    )
    with LocalRuntime(assembly) as runtime:
        runtime.publish("telemetry/s-1", b"\x00\x01binary")
        runtime.drain()
        [(key, body)] = objects(runtime).items()
    assert body == b"\x00\x01binary"  # no separator: the action has none
    assert re.fullmatch(rf"plain/{time.strftime('%Y/%m/%d/%H', time.gmtime())}/Archive-1-[^/]+-[0-9a-f-]{{36}}", key)


def test_in_batch_mode_each_element_of_the_selected_array_is_a_record(tmp_path: Path) -> None:
    action = firehose_action("Archive", Separator=",", BatchMode=True)
    with LocalRuntime(archive_assembly(tmp_path, action, "SELECT VALUE readings FROM 'telemetry/+'")) as runtime:
        [fired] = runtime.publish("telemetry/s-1", b'{"readings": [{"t": 1}, {"t": 2}, 3]}')
        runtime.drain()
        [body] = objects(runtime).values()
    assert fired.actions[0].error is None
    assert gzip.decompress(body) == b'{"t":1},{"t":2},3,'
    assert [d.records for d in deliveries(runtime)] == [3]


@pytest.mark.parametrize(
    ("readings", "reason"),
    [
        (7, "the SELECT output is not a JSON array"),
        ([], "the array holds 0 records (PutRecordBatch takes 1 to 500)"),
        (list(range(501)), "the array holds 501 records (PutRecordBatch takes 1 to 500)"),
    ],
)
def test_a_batch_that_putrecordbatch_would_refuse_fails_into_the_error_action(
    tmp_path: Path, readings: Any, reason: str
) -> None:
    action = firehose_action("Archive", BatchMode=True)
    with LocalRuntime(archive_assembly(tmp_path, action, "SELECT VALUE readings FROM 'telemetry/+'")) as runtime:
        runtime.publish("telemetry/s-1", json.dumps({"readings": readings}).encode())
        runtime.drain()
        [error] = [json.loads(message["Body"]) for message in receive(runtime, "Errors")]
        assert objects(runtime) == {}
    [failure] = error["failures"]
    assert (failure["failedAction"], failure["failedResource"]) == ("FirehoseAction", "Archive")
    assert failure["errorMessage"] == (
        f"Failed to send the record to Firehose: batchMode is true and {reason}. "
        "Message arrived on: telemetry/s-1, Action: firehose"
    )


def test_a_full_buffer_is_delivered_at_once_and_an_elapsed_interval_while_the_runtime_runs(tmp_path: Path) -> None:
    sized = archive_assembly(tmp_path / "sized", firehose_action("Archive"), BufferingHints={"SizeInMBs": 1})
    with LocalRuntime(sized) as runtime:
        for number in range(9):  # 9 x 120 KiB: the ninth fills the 1 MiB buffer
            runtime.publish("telemetry/s-1", json.dumps({"n": number, "padding": "x" * 120 * 1024}).encode())
        assert [d.records for d in deliveries(runtime)] == [9]
    hints = {"IntervalInSeconds": 0, "SizeInMBs": 1}
    timed = archive_assembly(tmp_path / "timed", firehose_action("Archive"), BufferingHints=hints)
    with LocalRuntime(timed) as runtime:
        runtime.publish("telemetry/s-1", b"{}")
        assert deliveries(runtime) == []
        runtime.run_for(0.2)
        assert [d.records for d in deliveries(runtime)] == [1]


def test_into_a_versioned_bucket_with_object_lock_each_delivered_version_is_locked(tmp_path: Path) -> None:
    """The archive's bucket as the app configures it with telemetry.archiveObjectLock: its objects' versions
    cannot be deleted; a delete only hides the object behind a delete marker, and its version stays."""
    locked = {
        "VersioningConfiguration": {"Status": "Enabled"},
        "ObjectLockEnabled": True,
        "ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}},
    }
    with LocalRuntime(archive_assembly(tmp_path, firehose_action("Archive"), bucket_properties=locked)) as runtime:
        runtime.publish("telemetry/s-1", b'{"temperature": 21}')
        runtime.drain()
        s3, name = runtime.cloud.client("s3"), runtime.cloud.physical["Telemetry"].ref
        [delivered] = deliveries(runtime)
        head = s3.head_object(Bucket=name, Key=delivered.key)
        with pytest.raises(ClientError, match="AccessDenied"):
            s3.delete_object(Bucket=name, Key=delivered.key, VersionId=head["VersionId"])
        s3.delete_object(Bucket=name, Key=delivered.key)  # a delete marker: allowed, and nothing is lost
        versions = s3.list_object_versions(Bucket=name)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"].timestamp() == pytest.approx(time.time() + 86_400, abs=120)
    assert [(v["Key"], v["VersionId"]) for v in versions["Versions"]] == [(delivered.key, head["VersionId"])]
    assert [m["Key"] for m in versions["DeleteMarkers"]] == [delivered.key]


def test_the_properties_without_local_effect_are_listed(tmp_path: Path) -> None:
    with LocalRuntime(archive_assembly(tmp_path, firehose_action("Archive"))) as runtime:
        ignored = sorted(item.name for item in runtime.ignored_properties)
    assert ignored == [
        "DeliveryStreamEncryptionConfigurationInput",
        "ExtendedS3DestinationConfiguration.CloudWatchLoggingOptions",
        "ExtendedS3DestinationConfiguration.ErrorOutputPrefix",
        "ExtendedS3DestinationConfiguration.RoleARN",
    ]


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"BucketARN": "arn:aws:s3:::elsewhere"}, "it delivers to arn:aws:s3:::elsewhere, not a bucket of this stack"),
        ({"CompressionFormat": "Snappy"}, r"CompressionFormat: Snappy is not emulated \(these are: UNCOMPRESSED, GZIP"),
        ({"Prefix": "raw/!{firehose:random-string}/"}, r"the expression !\{firehose:random-string\} is not emulated"),
        # Java's Y is the week-based year, not Joda-Time's year.
        ({"Prefix": "!{timestamp:YYYY}/"}, r"Prefix: !\{timestamp:YYYY\} cannot be evaluated here: the pattern letter"),
        ({"ProcessingConfiguration": {"Enabled": True}}, "property ExtendedS3DestinationConfiguration.Processing"),
    ],
)
def test_a_destination_the_runtime_cannot_deliver_as_firehose_does_is_refused(
    tmp_path: Path, change: dict[str, Any], refusal: str
) -> None:
    with pytest.raises(NotEmulated, match=refusal):
        with LocalRuntime(archive_assembly(tmp_path, firehose_action("Archive"), **change)):
            pass


def test_another_source_than_direct_put_is_refused(tmp_path: Path) -> None:
    assembly = archive_assembly(tmp_path, firehose_action("Archive"))
    template = assembly / "TestStack.template.json"
    resources = json.loads(template.read_text())
    resources["Resources"]["Archive"]["Properties"]["DeliveryStreamType"] = "KinesisStreamAsSource"
    template.write_text(json.dumps(resources))
    with pytest.raises(NotEmulated, match="Archive: delivery streams of type KinesisStreamAsSource are not emulated"):
        with LocalRuntime(assembly):
            pass


def test_a_firehose_action_to_a_stream_of_another_stack_or_with_a_separator_iot_refuses_is_refused(
    tmp_path: Path,
) -> None:
    elsewhere = {"Firehose": {"DeliveryStreamName": "elsewhere", "RoleArn": "arn:aws:iam::123456789012:role/r"}}
    with LocalRuntime(archive_assembly(tmp_path / "elsewhere", elsewhere)) as runtime:
        with pytest.raises(NotEmulated, match="Rule archive .*puts records into elsewhere, which is not a delivery"):
            runtime.start_event_flow()
    with LocalRuntime(archive_assembly(tmp_path / "separator", firehose_action("Archive", Separator=";"))) as runtime:
        with pytest.raises(LocalRuntimeError, match=r"Actions\[0\]\.Firehose\.Separator: IoT refuses ';'"):
            runtime.start_event_flow()


def test_the_command_line_reports_the_stream_and_each_object_it_delivers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assembly = archive_assembly(tmp_path, firehose_action("Archive", Separator="\n"))
    code = main(["publish", "telemetry/s-1", "--payload", '{"t": 1}', "--assembly", str(assembly)])
    out = capsys.readouterr().out
    assert code == 0
    assert "firehose Archive -> s3://teststack-telemetry/raw/!{timestamp:yyyy/MM/dd}/ (GZIP; " in out
    assert "a function's own PutRecord is delivered by moto: one uncompressed object per call" in out
    assert "-> firehose Archive: sent" in out
    today = time.strftime("%Y/%m/%d", time.gmtime())
    assert f"firehose Archive delivered 1 record to s3://teststack-telemetry/raw/{today}/Archive-1-" in out
