"""One Lambda execution environment: a cold start (import the handler, handle the first event), then warm calls.

Run as a script by the harness, never imported: `python -S -P lambda_child.py '<settings JSON>' < event.json`.
Settings: code_root, layers, runtime_packages, handler ("package.module.function", as Lambda's _HANDLER),
function_name, warm_invocations, traced (whether active tracing samples the invocations), trigger ("sqs": the event is an SQS batch, delivered as an event source
mapping does; "invoke": the event is handed to the handler as it is, one synchronous invocation each, as IoT
invokes the pre-provisioning hook; "event": the same, as an asynchronous invocation that succeeds, as an IoT
rule invokes ingest_telemetry), first_event_records (sqs: how many records of the batch the first event
carries), result_path. The result is written as JSON to result_path; stdout is the
function's log stream, as on Lambda.

Until the handler is imported this file uses the standard library only, and only modules that boto3 imports
anyway (json, importlib, os, typing): boto3, botocore or Powertools imported here would make the handler's import
look cheaper than it is, and a module boto3 does not need would make every candidate look alike.
"""

import time

# The very first thing, so the cold start covers everything this environment does before its first response.
WALL_START = time.perf_counter()
CPU_START = time.process_time()

import importlib  # noqa: E402  (after the clock starts, on purpose)
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from typing import Any, Callable  # noqa: E402

Handler = Callable[[dict[str, Any], Any], Any]

# An SQS event source mapping's redrive: a record reported failed is received again, up to maxReceiveCount.
MAX_RECEIVE_COUNT = 5
TIMEOUT_MS = 30_000


class LambdaContext:
    """The attributes of the Python runtime's context object that a handler (and Powertools) reads."""

    def __init__(self, function_name: str, request_number: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:eu-west-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 256
        self.aws_request_id = f"00000000-0000-4000-8000-{request_number:012d}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2025/01/01/[$LATEST]benchmark"
        self._deadline = time.monotonic() + TIMEOUT_MS / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class EventSourceMapping:
    """Delivers SQS batches to the handler as Lambda does, redelivering the records it reports as failed."""

    def __init__(self, handler: Handler, function_name: str, traced: bool) -> None:
        self.handler = handler
        self.function_name = function_name
        self.traced = traced
        self.batches = 0
        self.records = 0
        self.handler_calls = 0
        self.call_ms: list[float] = []
        self.call_records: list[int] = []
        # perf_counter() and process_time() when the first invocation returned: the end of the cold start.
        self.first_return: tuple[float, float] | None = None

    def next_context(self) -> LambdaContext:
        """The next invocation's context, with the trace header Lambda's runtime sets for each invocation
        (Sampled=1 when traced: as if active tracing sampled every invocation)."""
        self.handler_calls += 1
        os.environ["_X_AMZN_TRACE_ID"] = (
            f"Root=1-6f1c33a4-{self.handler_calls:024x};Parent={self.handler_calls:016x};Sampled={int(self.traced)}"
        )
        return LambdaContext(self.function_name, self.handler_calls)

    def deliver(self, batch: dict[str, Any]) -> None:
        self.batches += 1
        self.records += len(batch["Records"])
        records = batch["Records"]
        for _ in range(MAX_RECEIVE_COUNT):
            failed = self._invoke({**batch, "Records": records})
            records = [record for record in records if record["messageId"] in failed]
            if not records:
                return

    def _invoke(self, batch: dict[str, Any]) -> set[str]:
        context = self.next_context()
        start = time.perf_counter()
        response = self.handler(batch, context)
        end = time.perf_counter()
        if self.first_return is None:
            self.first_return = (end, time.process_time())
        self.call_ms.append((end - start) * 1000)
        self.call_records.append(len(batch["Records"]))
        failures = (response or {}).get("batchItemFailures", [])
        return {failure["itemIdentifier"] for failure in failures}


class SynchronousInvoker(EventSourceMapping):
    """Hands each event to the handler once, as a synchronous invocation (or an asynchronous one that succeeds):
    one event, one call, one record."""

    def deliver(self, batch: dict[str, Any]) -> None:
        self.batches += 1
        self.records += 1
        context = self.next_context()
        start = time.perf_counter()
        self.handler(batch, context)
        end = time.perf_counter()
        if self.first_return is None:
            self.first_return = (end, time.process_time())
        self.call_ms.append((end - start) * 1000)
        self.call_records.append(1)


def load_handler(spec: str) -> Handler:
    module_name, _, function_name = spec.rpartition(".")
    return getattr(importlib.import_module(module_name), function_name)


def peak_rss_kb() -> int:
    """This process's peak resident memory. VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over
    from the parent through fork and exec, so it could never be below the harness's own size."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def main() -> None:
    settings = json.loads(sys.argv[1])
    batch = json.loads(sys.stdin.buffer.read())
    # Lambda's order: the code (/var/task), the layers (/opt/python), then the runtime (stdlib, boto3 & deps).
    sys.path[:0] = [settings["code_root"], *settings["layers"]]
    sys.path.append(settings["runtime_packages"])

    handler = load_handler(settings["handler"])
    init_ms = (time.perf_counter() - WALL_START) * 1000
    if settings.get("trigger", "sqs") in ("invoke", "event"):
        mapping = SynchronousInvoker(handler, settings["function_name"], settings["traced"])
        mapping.deliver(batch)
    else:
        mapping = EventSourceMapping(handler, settings["function_name"], settings["traced"])
        mapping.deliver({**batch, "Records": batch["Records"][: settings["first_event_records"]]})
    assert mapping.first_return is not None
    first_return_wall, first_return_cpu = mapping.first_return
    cold_wall_ms = (first_return_wall - WALL_START) * 1000
    cold_cpu_ms = (first_return_cpu - CPU_START) * 1000
    cold_rss_kb = peak_rss_kb()
    cold_calls = len(mapping.call_ms)

    for _ in range(settings["warm_invocations"]):
        mapping.deliver(batch)

    result = {
        "init_ms": init_ms,
        "cold_wall_ms": cold_wall_ms,
        "cold_cpu_ms": cold_cpu_ms,
        "cold_max_rss_kb": cold_rss_kb,
        "warm_call_ms": mapping.call_ms[cold_calls:],
        "warm_call_records": mapping.call_records[cold_calls:],
        "warm_max_rss_kb": peak_rss_kb(),
        "batches": mapping.batches,
        "records": mapping.records,
        "handler_calls": mapping.handler_calls,
    }
    with open(settings["result_path"], "w") as result_file:
        json.dump(result, result_file)


if __name__ == "__main__":
    main()
