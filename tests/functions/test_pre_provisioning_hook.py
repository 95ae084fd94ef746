"""The pre-provisioning hook as IoT invokes it: the events/ samples against an allow-list table in moto.

What a user would notice: an allowed device gets its thing name and attributes from the allow-list; every
other case, including DynamoDB failing or not answering, is a denial, logged with a reason and counted, and
answered well inside IoT's 5 s; the certificate PEM never appears in the answer or the logs.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import pytest

from events import load_event
from tests.functions.conftest import Deployed, LambdaContext, _deploy, _import_fresh, emitted

PEM_MARKERS = ("BEGIN CERTIFICATE", "MIIDWTCCAkGgAwIBAgIU")
ALLOWED_OVERRIDES = {"ThingName": "SN-000123", "Model": "PX-200", "Batch": "2025-W14"}


@pytest.fixture
def hook(monkeypatch, aws) -> Deployed:
    deployed = _deploy(monkeypatch, aws, "pre_provisioning_hook", {"ALLOW_LIST_TABLE": ("serialNumber",)})
    table = deployed.tables["ALLOW_LIST_TABLE"]
    for item in (
        {"serialNumber": {"S": "SN-000123"}, "model": {"S": "PX-200"}, "batch": {"S": "2025-W14"}},
        {"serialNumber": {"S": "SN-000666"}, "status": {"S": "BLOCKED"}},
    ):
        deployed.dynamodb.put_item(TableName=table, Item=item)
    return deployed


def assert_no_pem(*texts: object) -> None:
    for text in texts:
        assert not any(marker in str(text) for marker in PEM_MARKERS)


def denial(capsys) -> tuple[dict, dict[str, float]]:
    logs, metrics = emitted(capsys.readouterr().out)
    (line,) = [log for log in logs if log["message"] == "Provisioning denied"]
    return line, metrics


def test_an_allowed_serial_is_provisioned_with_the_allow_lists_name_and_attributes(hook, capsys):
    answer = hook.invoke(load_event("pre_provisioning_hook/allowed"))
    assert answer == {"allowProvisioning": True, "parameterOverrides": ALLOWED_OVERRIDES}
    out = capsys.readouterr().out
    logs, metrics = emitted(out)
    assert metrics == {"ProvisioningAllowed": 1}
    (line,) = [log for log in logs if log["message"] == "Provisioning allowed"]
    assert line["serialNumber"] == "SN-000123"
    assert line["certificateId"] == load_event("pre_provisioning_hook/allowed")["certificateId"]
    assert line["clientId"] == "b6c1f1f4-3c1e-4a7b-9d2e-6f0a1b2c3d4e"
    assert_no_pem(out, answer)


def test_a_device_cannot_choose_its_own_thing_name_or_attributes(hook, capsys):
    answer = hook.invoke(load_event("pre_provisioning_hook/allowed_with_device_thing_name"))
    assert answer == {"allowProvisioning": True, "parameterOverrides": ALLOWED_OVERRIDES}


@pytest.mark.parametrize(
    ("sample", "reason"),
    [
        ("unknown_serial", "DeniedNotOnAllowList"),
        ("blocked_serial", "DeniedBlocked"),
        ("malformed", "DeniedMalformedRequest"),
        ("malformed_no_serial", "DeniedMalformedRequest"),
    ],
)
def test_every_other_request_is_denied_logged_and_counted(hook, capsys, sample, reason):
    answer = hook.invoke(load_event(f"pre_provisioning_hook/{sample}"))
    assert answer == {"allowProvisioning": False}
    out = capsys.readouterr().out
    logs, metrics = emitted(out)
    assert metrics == {reason: 1}
    (line,) = [log for log in logs if log["message"] == "Provisioning denied"]
    assert line["reason"] == reason and line["detail"]
    assert_no_pem(out)


@pytest.mark.parametrize("event", [None, "not json", [], {"parameters": "SN-000123"}])
def test_a_request_that_is_not_iots_is_denied_not_an_error(hook, capsys, event):
    assert hook.invoke(event) == {"allowProvisioning": False}
    assert denial(capsys)[1] == {"DeniedMalformedRequest": 1}


def test_a_dynamodb_error_denies(hook, capsys):
    hook.dynamodb.delete_table(TableName=hook.tables["ALLOW_LIST_TABLE"])
    assert hook.invoke(load_event("pre_provisioning_hook/allowed")) == {"allowProvisioning": False}
    line, metrics = denial(capsys)
    assert metrics == {"DeniedHookError": 1}
    assert "ResourceNotFoundException" in line["detail"]


def test_an_allow_list_item_of_the_wrong_types_denies(hook, capsys):
    table = hook.tables["ALLOW_LIST_TABLE"]
    hook.dynamodb.put_item(TableName=table, Item={"serialNumber": {"S": "SN-000123"}, "thingName": {"N": "12"}})
    assert hook.invoke(load_event("pre_provisioning_hook/allowed")) == {"allowProvisioning": False}
    assert denial(capsys)[1] == {"DeniedInvalidAllowListItem": 1}


def test_a_missing_table_name_denies(hook, capsys, monkeypatch):
    monkeypatch.delenv("ALLOW_LIST_TABLE")
    assert hook.invoke(load_event("pre_provisioning_hook/allowed")) == {"allowProvisioning": False}
    line, metrics = denial(capsys)
    assert metrics == {"DeniedHookError": 1} and "ALLOW_LIST_TABLE" in line["detail"]


def test_an_unexpected_exception_denies(hook, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(hook.handler, "decide", broken)
    assert hook.invoke(load_event("pre_provisioning_hook/allowed")) == {"allowProvisioning": False}
    line, metrics = denial(capsys)
    assert metrics == {"DeniedHookError": 1} and line["detail"] == "unexpected RuntimeError"
    assert_no_pem(line)


def test_a_blocked_serial_is_blocked_at_once(hook, capsys):
    """ConsistentRead: a serial blocked a moment ago is not provisioned on a stale read."""
    assert hook.invoke(load_event("pre_provisioning_hook/allowed"))["allowProvisioning"] is True
    hook.dynamodb.update_item(
        TableName=hook.tables["ALLOW_LIST_TABLE"],
        Key={"serialNumber": {"S": "SN-000123"}},
        UpdateExpression="SET #s = :b",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":b": {"S": "BLOCKED"}},
    )
    assert hook.invoke(load_event("pre_provisioning_hook/allowed")) == {"allowProvisioning": False}


@pytest.fixture
def silent_dynamodb() -> Iterator[str]:
    """An endpoint that accepts connections and never answers: DynamoDB hanging."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_a_dynamodb_that_does_not_answer_is_a_denial_well_inside_five_seconds(monkeypatch, capsys, silent_dynamodb):
    monkeypatch.setenv("ALLOW_LIST_TABLE", "allow_list_table")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "pre_provisioning_hook")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "IotDeviceBackend")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", silent_dynamodb)
    handler = _import_fresh("pre_provisioning_hook.handler")
    started = time.monotonic()
    answer = handler.handler(load_event("pre_provisioning_hook/allowed"), LambdaContext())
    elapsed = time.monotonic() - started
    assert answer == {"allowProvisioning": False}
    assert elapsed < 3.5, f"answered after {elapsed:.2f} s"
    line, metrics = denial(capsys)
    assert metrics == {"DeniedHookError": 1} and "ReadTimeoutError" in line["detail"]
