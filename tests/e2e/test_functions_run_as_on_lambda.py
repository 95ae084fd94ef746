"""A function runs in its own warm worker process, seeing what Lambda gives it and nothing else."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from local_runtime import LocalRuntime, NotEmulated
from tests.e2e.assemblies import assert_nothing_left_running, python_function, queue, write_assembly

FUNCTION_CODE = '''
import os
import sys
import time

COLD_STARTS = 0
COLD_STARTS += 1
invocations = 0


def handler(event, context):
    global invocations
    invocations += 1
    action = event.get("action")
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "import":
        __import__(event["module"])
    if action == "exit":
        os._exit(3)
    if action == "raise":
        raise ValueError("the event asked for it")
    if action == "unmarshallable":
        return {"a set": {1, 2}}
    print("handling", action)
    return {
        "invocations": invocations,
        "path": sys.path,
        "environment": dict(os.environ),
        "cwd": os.getcwd(),
        "context": {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "invoked_function_arn": context.invoked_function_arn,
            "aws_request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
    }
'''


@pytest.fixture
def assembly(tmp_path: Path) -> Path:
    resources = {
        "Echo": python_function(
            "echo", timeout=2, memory=512, environment={"WORK_QUEUE": {"Ref": "Work"}, "MODE": "test"}
        ),
        "ImportsMoto": python_function("imports_moto", handler="needs_moto.handler"),
        "Work": queue(),
    }
    code = {
        "echo": {"app.py": FUNCTION_CODE},
        "imports_moto": {"needs_moto.py": "import moto\n\ndef handler(event, context):\n    return 'unreachable'\n"},
    }
    return write_assembly(tmp_path / "assembly", resources, code)


def test_a_function_imports_its_code_and_lambdas_runtime_packages_only(assembly: Path) -> None:
    with LocalRuntime(assembly) as runtime:
        result = runtime.invoke("Echo", {}).result
        for module in ("moto", "pytest", "aws_cdk"):
            failed = runtime.invoke("Echo", {"action": "import", "module": module}).error
            assert failed is not None and failed.type == "ModuleNotFoundError", module
            assert failed.message == f"No module named '{module}'"
        boto3_found = runtime.invoke("Echo", {"action": "import", "module": "boto3"}).error
    assert boto3_found is None
    assert not any("site-packages" in entry for entry in result["path"])
    assert result["path"][0] == str(assembly.resolve() / "asset.echo")


def test_a_module_that_lambda_could_not_import_fails_the_init_as_on_lambda(assembly: Path) -> None:
    with LocalRuntime(assembly) as runtime:
        invocation = runtime.invoke("ImportsMoto", {})
        assert runtime.functions.get("ImportsMoto").worker_pid is None  # Lambda discards a failed environment
    assert invocation.error is not None
    assert invocation.error.type == "Runtime.ImportModuleError"
    assert invocation.error.message == "Unable to import module 'needs_moto': No module named 'moto'"
    assert any("ModuleNotFoundError" in line or "Runtime.ImportModuleError" in line for line in invocation.logs)


def test_a_function_sees_lambdas_environment_and_none_of_this_process_credentials(
    assembly: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALLOOKINGKEY00")
    monkeypatch.setenv("AWS_PROFILE", "production")
    with LocalRuntime(assembly) as runtime:
        result = runtime.invoke("Echo", {}).result
        queue_url = runtime.cloud.physical["Work"].ref
        endpoint = runtime.cloud.endpoint_url
    environment = result["environment"]
    assert environment["AWS_ACCESS_KEY_ID"] == "testing"
    assert "AWS_PROFILE" not in environment
    assert environment["AWS_ENDPOINT_URL"] == endpoint
    assert environment["AWS_REGION"] == environment["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert environment["WORK_QUEUE"] == queue_url  # the template's Ref, resolved against the embedded AWS
    assert environment["MODE"] == "test"
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == "TestStack-Echo"
    assert environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert environment["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert environment["_HANDLER"] == "app.handler"
    assert environment["LAMBDA_TASK_ROOT"] == result["cwd"] == str(assembly.resolve() / "asset.echo")


def test_the_context_object_is_lambdas(assembly: Path) -> None:
    with LocalRuntime(assembly) as runtime:
        invocation = runtime.invoke("Echo", {})
    context = invocation.result["context"]
    assert context["function_name"] == "TestStack-Echo"
    assert context["function_version"] == "$LATEST"
    assert context["memory_limit_in_mb"] == "512"  # a string, as on Lambda
    assert context["invoked_function_arn"] == "arn:aws:lambda:eu-west-1:123456789012:function:TestStack-Echo"
    assert context["aws_request_id"] == invocation.request_id
    assert 0 < context["remaining_ms"] <= 2000


def test_the_container_stays_warm_and_its_logs_belong_to_each_invocation(assembly: Path) -> None:
    with LocalRuntime(assembly) as runtime:
        first = runtime.invoke("Echo", {"action": "first"})
        pid = runtime.functions.get("Echo").worker_pid
        second = runtime.invoke("Echo", {"action": "second"})
        assert runtime.functions.get("Echo").worker_pid == pid
    assert first.init_ms is not None and second.init_ms is None
    assert (first.result["invocations"], second.result["invocations"]) == (1, 2)
    assert first.logs == ("handling first",) and second.logs == ("handling second",)


def test_a_timed_out_invocation_is_killed_and_the_next_one_starts_cold(assembly: Path) -> None:
    with LocalRuntime(assembly) as runtime:
        runtime.invoke("Echo", {})
        pid = runtime.functions.get("Echo").worker_pid
        started = time.monotonic()
        timed_out = runtime.invoke("Echo", {"action": "sleep", "seconds": 30})
        elapsed = time.monotonic() - started
        next_one = runtime.invoke("Echo", {})
        port = runtime.cloud.port
        pids = [pid, runtime.functions.get("Echo").worker_pid]
    assert timed_out.error is not None and timed_out.error.type == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in timed_out.error.message
    assert any("Task timed out after 2.00 seconds" in line for line in timed_out.logs)
    assert 2 <= elapsed < 5
    assert not Path(f"/proc/{pid}").exists()
    assert next_one.init_ms is not None and next_one.result["invocations"] == 1
    assert_nothing_left_running(pids, port)


def test_errors_are_reported_in_lambdas_format(assembly: Path) -> None:
    with LocalRuntime(assembly) as runtime:
        raised = runtime.invoke("Echo", {"action": "raise"})
        unmarshallable = runtime.invoke("Echo", {"action": "unmarshallable"})
        exited = runtime.invoke("Echo", {"action": "exit"})
        after_exit = runtime.invoke("Echo", {})
    assert raised.error is not None
    assert (raised.error.type, raised.error.message) == ("ValueError", "the event asked for it")
    assert any("in handler" in frame for frame in raised.error.stack_trace)
    assert raised.logs[0] == "[ERROR] ValueError: the event asked for it"
    assert unmarshallable.error is not None and unmarshallable.error.type == "Runtime.MarshalError"
    assert exited.error is not None and exited.error.type == "Runtime.ExitError"
    assert exited.error.message.endswith("Runtime exited with error: exit status 3")
    assert after_exit.error is None and after_exit.init_ms is not None


def test_a_function_that_is_not_python_is_listed_with_the_reason_and_refused(tmp_path: Path) -> None:
    node = python_function("node")
    node["Properties"]["Runtime"] = "nodejs24.x"
    assembly = write_assembly(tmp_path / "assembly", {"Node": node}, {"node": {"index.js": "exports.handler = 1\n"}})
    with LocalRuntime(assembly) as runtime:
        assert runtime.function_specs[0].not_runnable == "runtime nodejs24.x, not Python"
        with pytest.raises(NotEmulated, match="Function Node .* cannot run locally: runtime nodejs24.x, not Python"):
            runtime.invoke("Node", {})
