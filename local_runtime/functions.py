"""Runs Lambda functions as Lambda does, each in its own child process (worker.py): a warm container that is
started on the first invocation (a cold start), reused by the next ones, and replaced after a timeout or a
crash. The function sees Lambda's environment variables, resolved against the embedded AWS, fake credentials
and nothing of this machine's Python packages but those Lambda's Python runtime ships. Its AWS SDK calls reach
the embedded AWS: AWS_ENDPOINT_URL, and any service's own AWS_ENDPOINT_URL_<SERVICE> the template sets, point
there.

One invocation runs at a time, so the messages the embedded AWS accepted through iot-data Publish while a
function ran are the ones it published: each invocation lists them, and the invocations that published wait
in `outbox` for the message broker.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from local_runtime.account import CREDENTIALS, REGION
from local_runtime.assembly import FunctionSpec, select_function
from local_runtime.cloud import EmbeddedAws
from local_runtime.errors import NotEmulated
from local_runtime.lambda_runtime import link_runtime_packages
from local_runtime.native_packages import link_native_builds

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
INIT_PHASE_LIMIT_S = 10  # as worker.INIT_PHASE_LIMIT_MS: Lambda's own limit for a function's initialization
# botocore's service-specific endpoint variables (AWS_ENDPOINT_URL_DYNAMODB, ...): pointed at the embedded AWS.
SERVICE_ENDPOINT_PREFIX = "AWS_ENDPOINT_URL_"
_STOP_GRACE_S = 2
# Variables Lambda sets itself and refuses in a function's configuration.
RESERVED_VARIABLES = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})  # fmt: skip


@dataclass(frozen=True)
class LambdaError:
    """An invocation's error, in the Lambda Python runtime's format."""

    type: str
    message: str
    stack_trace: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"errorType": self.type, "errorMessage": self.message, "stackTrace": list(self.stack_trace)}


@dataclass(frozen=True)
class Invocation:
    function: str
    request_id: str
    result: Any
    error: LambdaError | None
    duration_ms: float
    init_ms: float | None  # set on a cold start: the time it took to import the handler
    logs: tuple[str, ...]
    # From the worker's "started" (just before it calls the handler) to its answer, at this end of the pipe:
    # the handler's own time, without the request's way through the pipe. None if the handler never ran.
    handler_ms: float | None = None
    published: tuple[tuple[str, bytes], ...] = ()  # topic and payload of each message it published to IoT Core


class _WorkerExited(Exception):
    pass


class _Worker:
    """One worker process and its two pipes."""

    def __init__(self, settings: Mapping[str, Any], environment: dict[str, str], cwd: Path, log_path: Path) -> None:
        requests_read, self._requests_fd = os.pipe()
        self._responses_fd, responses_write = os.pipe()
        # -I: no PYTHON* variables, no script folder on sys.path; -S: no site-packages; -B: Lambda's code
        # folder is read-only, and the assembly's assets must stay as `cdk synth` wrote them.
        command = [sys.executable, "-I", "-S", "-B", str(WORKER_SCRIPT), str(requests_read), str(responses_write)]
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, json.dumps(settings)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=cwd,
                pass_fds=(requests_read, responses_write),
                # Its own session: Ctrl-C reaches the runtime only, which then stops the workers in order.
                start_new_session=True,
            )
        os.close(requests_read)
        os.close(responses_write)
        self._buffer = b""
        # poll, not select: select refuses descriptors above 1023, which a device endpoint's thousand sockets
        # make this pipe's.
        self._readable = select.poll()
        self._readable.register(self._responses_fd, select.POLLIN)

    def send(self, message: Mapping[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\n"
        try:
            while data:
                data = data[os.write(self._requests_fd, data) :]
        except BrokenPipeError:
            raise _WorkerExited from None

    def receive(self, deadline: float) -> dict[str, Any] | None:
        """The next message, or None if none came by `deadline` (time.monotonic())."""
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._readable.poll(remaining * 1000):
                return None
            chunk = os.read(self._responses_fd, 1 << 16)
            if not chunk:
                raise _WorkerExited
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def exit_status(self) -> str:
        try:
            code = self.process.wait(timeout=_STOP_GRACE_S)
        except subprocess.TimeoutExpired:  # it closed its pipe but hangs on: end it
            self._kill()
            code = self.process.wait()
        return f"signal: {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"

    def stop(self, *, kill: bool) -> None:
        """Closing the request pipe ends an idle worker; one still busy (a timeout) is killed with anything
        it started (its process group)."""
        for fd in (self._requests_fd, self._responses_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        if kill:
            self._kill()
        try:
            self.process.wait(timeout=_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self._kill()
            self.process.wait()

    def _kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class LocalFunction:
    """A function and its warm container, if it has one."""

    def __init__(
        self,
        spec: FunctionSpec,
        function_name: str,
        function_arn: str,
        environment: dict[str, str],
        python_path: list[str],
        log_path: Path,
        iot_messages: Sequence[tuple[str, bytes]],
        outbox: deque[Invocation],
    ) -> None:
        self.spec = spec
        self.function_name = function_name
        self.function_arn = function_arn
        self._environment = environment
        self._python_path = python_path
        self._log_path = log_path
        self._iot_messages = iot_messages
        self._outbox = outbox
        self._worker: _Worker | None = None
        self._handler_started: float | None = None  # when the current invocation's handler started
        self._messages_start = 0  # how many iot_messages there were when the current invocation started

    @property
    def name(self) -> str:
        return self.spec.name

    def answers_to(self, name: str) -> bool:
        """Whether Lambda takes `name` (a function name or ARN, unqualified or `$LATEST`) for this function."""
        return name.removesuffix(":$LATEST") in (self.function_name, self.function_arn)

    @property
    def worker_pid(self) -> int | None:
        return self._worker.process.pid if self._worker else None

    def invoke(self, event: Any, *, request_id: str | None = None) -> Invocation:
        request_id = request_id or str(uuid.uuid4())
        cold = self._worker is None
        worker = self._worker or self._start_worker()
        log_start = self._log_path.stat().st_size
        self._messages_start = len(self._iot_messages)
        started = time.monotonic()
        self._handler_started = None
        try:
            init_ms, response = self._exchange(worker, request_id, event, cold)
        except _WorkerExited:
            status = worker.exit_status()
            self._discard_worker(kill=False)
            message = f"RequestId: {request_id} Error: Runtime exited with error: {status}"
            error = LambdaError("Runtime.ExitError", message)
            return self._invocation(request_id, started, log_start, None, error)
        if response is None:
            # Lambda stops the environment of a timed-out invocation; the next invocation gets a new one.
            self._discard_worker(kill=True)
            message = f"Task timed out after {self.spec.timeout_s:.2f} seconds"
            with self._log_path.open("a") as log:
                log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {request_id} {message}\n")
            error = LambdaError("Sandbox.Timedout", f"RequestId: {request_id} Error: {message}")
            return self._invocation(request_id, started, log_start, init_ms, error)
        if response.get("initFailed"):
            self._discard_worker(kill=False)  # Lambda discards an environment whose initialization failed
        if "error" in response:
            failure = response["error"]
            error = LambdaError(failure["errorType"], failure["errorMessage"], tuple(failure["stackTrace"]))
            return self._invocation(request_id, started, log_start, init_ms, error)
        return self._invocation(request_id, started, log_start, init_ms, None, response["result"])

    def _exchange(
        self, worker: _Worker, request_id: str, event: Any, cold: bool
    ) -> tuple[float | None, dict[str, Any] | None]:
        """Sends the request; the init time (on a cold start) and the response, or None on a timeout."""
        timeout_s = self.spec.timeout_s
        arn = self.function_arn
        worker.send({"requestId": request_id, "timeoutMs": timeout_s * 1000, "invokedFunctionArn": arn, "event": event})
        # A cold start may spend up to the init phase's own limit importing the handler before the handler
        # runs; the worker then says when the invocation's deadline is.
        start = worker.receive(time.monotonic() + (max(INIT_PHASE_LIMIT_S, timeout_s) if cold else timeout_s))
        if start is None:
            return None, None
        init_ms, deadline_ms = start["started"]["initMs"], start["started"]["deadlineMs"]
        self._handler_started = time.monotonic()
        return init_ms, worker.receive(self._handler_started + deadline_ms / 1000 - time.time())

    def stop(self) -> None:
        self._discard_worker(kill=False)

    def _start_worker(self) -> _Worker:
        assert self.spec.code_dir is not None
        self._worker = _Worker({"path": self._python_path}, self._environment, self.spec.code_dir, self._log_path)
        return self._worker

    def _discard_worker(self, *, kill: bool) -> None:
        if self._worker is not None:
            self._worker.stop(kill=kill)
            self._worker = None

    def _invocation(
        self, request_id: str, started: float, log_start: int, init_ms: float | None, error: LambdaError | None,
        result: Any = None,
    ) -> Invocation:
        now = time.monotonic()
        duration_ms = (now - started) * 1000 - (init_ms or 0)
        handler_ms = (now - self._handler_started) * 1000 if self._handler_started is not None else None
        with self._log_path.open("rb") as log:
            log.seek(log_start)
            logs = log.read().decode("utf-8", errors="replace").splitlines()
        published = tuple(self._iot_messages[self._messages_start :])
        invocation = Invocation(
            self.name, request_id, result, error, duration_ms, init_ms, tuple(logs), handler_ms, published
        )
        if published:
            self._outbox.append(invocation)
        return invocation


class LocalFunctions:
    """The functions of the stack, started on demand; `stop()` ends every worker."""

    def __init__(self, specs: list[FunctionSpec], cloud: EmbeddedAws, workdir: Path) -> None:
        self.specs = specs
        self._cloud = cloud
        self._workdir = workdir
        self._runtime_packages = link_runtime_packages(workdir / "runtime-packages")
        self._functions: dict[str, LocalFunction] = {}
        self.outbox: deque[Invocation] = deque()  # the invocations that published, oldest first
        # Per function: the layer distributions built for Lambda's platform that run as this machine's build.
        self.native_builds: dict[str, list[str]] = {}

    def get(self, name: str) -> LocalFunction:
        """The function named by friendly name, logical id or CDK path; a function that cannot run is refused."""
        spec = select_function(self.specs, name)
        if spec.not_runnable:
            raise NotEmulated(f"Function {spec.resource.label} cannot run locally: {spec.not_runnable}")
        if spec.logical_id not in self._functions:
            self._functions[spec.logical_id] = self._prepare(spec)
        return self._functions[spec.logical_id]

    def for_arn(self, arn: str) -> LocalFunction | None:
        """The runnable function with this ARN or name (unqualified or `$LATEST`), if any."""
        unqualified = arn.removesuffix(":$LATEST")
        for spec in self.specs:
            physical = self._cloud.physical[spec.logical_id]
            if unqualified in (physical.ref, physical.attributes["Arn"]) and not spec.not_runnable:
                return self.get(spec.logical_id)
        return None

    @property
    def worker_pids(self) -> list[int]:
        return [pid for function in self._functions.values() if (pid := function.worker_pid) is not None]

    def stop(self) -> None:
        for function in self._functions.values():
            function.stop()

    def _prepare(self, spec: FunctionSpec) -> LocalFunction:
        physical = self._cloud.physical[spec.logical_id]
        assert spec.code_dir is not None and spec.runtime is not None
        environment = lambda_environment(
            spec,
            self._variables(spec),
            function_name=physical.ref,
            endpoint_url=self._cloud.endpoint_url,
            log_group=self._log_group(spec, physical.ref),
            runtime_dir=self._runtime_packages,
        )
        layers = [
            path
            # Lambda extracts the layers into /opt in order, a later one overwriting an earlier one's files.
            for layer in reversed(spec.layer_dirs)
            for path in (layer / "python" / "lib" / spec.runtime / "site-packages", layer / "python")
        ]
        overlay = self._workdir / f"{spec.logical_id}.native"
        self.native_builds[spec.name] = link_native_builds([path for path in layers if path.is_dir()], overlay)
        native = [str(overlay)] if self.native_builds[spec.name] else []
        return LocalFunction(
            spec,
            physical.ref,
            physical.attributes["Arn"],
            environment,
            python_path=[str(spec.code_dir), *native, *map(str, layers), str(self._runtime_packages)],
            log_path=self._workdir / f"{spec.logical_id}.log",
            iot_messages=self._cloud.iot_messages,
            outbox=self.outbox,
        )

    def _variables(self, spec: FunctionSpec) -> dict[str, str]:
        where = f"{spec.logical_id}.Environment.Variables"
        declared = spec.resource.properties.get("Environment", {}).get("Variables", {})
        variables = self._cloud.resolver.resolve(declared, where)
        reserved = sorted(set(variables) & (RESERVED_VARIABLES | {"AWS_ENDPOINT_URL"}))
        if reserved:
            names = ", ".join(reserved)
            raise NotEmulated(f"{where}: {names} is set by Lambda (or by this runtime) and cannot be configured")
        return {name: str(value) for name, value in variables.items()}

    def _log_group(self, spec: FunctionSpec, function_name: str) -> str:
        log_group = spec.resource.properties.get("LoggingConfig", {}).get("LogGroup")
        if log_group is None:
            return f"/aws/lambda/{function_name}"
        return self._cloud.resolver.resolve_string(log_group, f"{spec.logical_id}.LoggingConfig.LogGroup")


# The machine's clock, when a test moves it with libfaketime (tests/moved_clock.py): a function runs on the
# clock of the machine it runs on.
CLOCK_VARIABLES = ("LD_PRELOAD", "FAKETIME", "DONT_FAKE_MONOTONIC", "FAKETIME_FORCE_MONOTONIC_FIX")


def lambda_environment(
    spec: FunctionSpec,
    variables: Mapping[str, str],
    *,
    function_name: str,
    endpoint_url: str,
    log_group: str,
    runtime_dir: Path,
) -> dict[str, str]:
    """The environment Lambda gives the function, pointed at the embedded AWS. Nothing is inherited from this
    process but a moved clock (CLOCK_VARIABLES): its AWS credentials, profile or region must never reach a
    function. A service endpoint the template sets (resolved all the same, so that a bad reference fails) is
    the embedded AWS too."""
    assert spec.handler is not None and spec.code_dir is not None and spec.runtime is not None
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",  # Lambda's is en_US.UTF-8, which this machine may not have; both are UTF-8
        "TZ": ":UTC",
        **variables,
        **{name: endpoint_url for name in variables if name.startswith(SERVICE_ENDPOINT_PREFIX)},
        "_HANDLER": spec.handler,
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "LAMBDA_RUNTIME_DIR": str(runtime_dir),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": log_group,
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": endpoint_url,
        # Not Lambda's, but without them botocore would read this machine's ~/.aws files and instance metadata.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        **{name: os.environ[name] for name in CLOCK_VARIABLES if name in os.environ},
    }
