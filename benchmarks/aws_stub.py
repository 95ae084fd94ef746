"""A tiny AWS on 127.0.0.1 that answers the JSON-protocol calls the functions make, and counts them.

It answers in microseconds, so a function's HTTP round trip through botocore (signing, urllib3, parsing) stays
in the measurement while AWS's own latency does not. Counts are by `<service>:<Operation>`, taken from the
`X-Amz-Target` header of the JSON protocol (DynamoDB, and SQS since botocore 1.34.x).
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Callable

# X-Amz-Target prefix -> the service name of IAM actions, so counts read like `dynamodb:UpdateItem`.
SERVICES = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs"}


def _update_item(request: dict[str, Any]) -> dict[str, Any]:
    # No ReturnValues requested by the functions: DynamoDB answers an empty object.
    return {}


def _send_message(request: dict[str, Any]) -> dict[str, Any]:
    body = str(request.get("MessageBody", ""))
    return {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": hashlib.md5(body.encode()).hexdigest()}


RESPONDERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "dynamodb:UpdateItem": _update_item,
    "sqs:SendMessage": _send_message,
}


def operation_of(target: str | None) -> str:
    if not target or "." not in target:
        return "unknown:no X-Amz-Target"
    prefix, operation = target.split(".", 1)
    return f"{SERVICES.get(prefix, prefix)}:{operation}"


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive, as AWS endpoints: botocore reuses its connection across calls, so must the stub.
    protocol_version = "HTTP/1.1"
    # Headers and body are written separately; without TCP_NODELAY, Nagle plus delayed ACKs add ~40 ms per call.
    disable_nagle_algorithm = True
    server: _CountingServer

    def do_POST(self) -> None:
        request_body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        operation = operation_of(self.headers.get("X-Amz-Target"))
        self.server.count(operation)
        responder = RESPONDERS.get(operation)
        if responder is None:
            message = f"The stub does not answer {operation}"
            self._reply(400, {"__type": "UnknownOperationException", "message": message})
            return
        try:
            request = json.loads(request_body or b"{}")
        except ValueError:
            self._reply(400, {"__type": "SerializationException", "message": "request body is not JSON"})
            return
        self._reply(200, responder(request))

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        # Real DynamoDB sends it and botocore verifies it when present: keep that work in the measurement.
        self.send_header("x-amz-crc32", str(zlib.crc32(body) & 0xFFFFFFFF))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None  # one line per call on stderr would drown the report


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def count(self, operation: str) -> None:
        with self._lock:
            self._counts[operation] += 1

    def take_counts(self) -> Counter[str]:
        with self._lock:
            counts, self._counts = self._counts, Counter()
        return counts


class AwsStub:
    """`with AwsStub() as aws:` serves on `aws.endpoint_url` until the block ends, whatever ends it."""

    def __init__(self) -> None:
        self._server: _CountingServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        host, port = self._running().server_address[:2]
        return f"http://{host}:{port}"

    def take_counts(self) -> Counter[str]:
        """The calls counted since the last take: the children run one at a time, so these are one child's."""
        return self._running().take_counts()

    def __enter__(self) -> AwsStub:
        self._server = _CountingServer()
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-stub", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        server, thread = self._running(), self._thread
        self._server = self._thread = None
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()

    def _running(self) -> _CountingServer:
        if self._server is None:
            raise RuntimeError("the AWS stub is not running")
        return self._server
