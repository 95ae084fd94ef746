"""A tiny AWS on 127.0.0.1 that answers the calls the functions make, and counts them.

It answers in microseconds, so a function's HTTP round trip through botocore (signing, urllib3, parsing) stays
in the measurement while AWS's own latency does not. Counts are by `<service>:<Operation>`, taken from the
`X-Amz-Target` header of the JSON protocol (DynamoDB, SSM, and SQS since botocore 1.34.x), or from the method and
path of IoT's REST API and S3's GetObject (REST_ROUTES). IoT and S3 answer with the JITR samples' trust
material (events/activate_certificate/public-certificates): every device certificate is pending activation,
so each delivery of a registered event is the full activation of a new device; any other certificate is an
active device certificate attached to two things, as a certificate that Device Defender finds shared. IoT's
registry answers that every thing is registered, with attributes and one group. Device Defender's audit
answers with the findings samples, page by page (events/mitigate_audit_findings/findings), and starts every
mitigation task it is asked to. Every DynamoDB write succeeds, so each delivery of a telemetry reading is stored
as a new reading, never recognised as a repeat, and each delivery of a finding is remediated as a new one. SNS
(the query protocol) publishes whatever it is given.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from pathlib import Path
from typing import Any, Callable, NamedTuple
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from cryptography import x509
from cryptography.hazmat.primitives import serialization

# X-Amz-Target prefix -> the service name of IAM actions, so counts read like `dynamodb:UpdateItem`.
SERVICES = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs", "AmazonSSM": "ssm"}


def _update_item(request: dict[str, Any]) -> dict[str, Any]:
    # The write succeeds, and no function asks for ReturnValues (ReturnValuesOnConditionCheckFailure shapes only
    # a rejected write's answer): DynamoDB answers an empty object.
    return {}


def _get_item(request: dict[str, Any]) -> dict[str, Any]:
    # The item exists and holds only its key: for the pre-provisioning hook, a serial on the allow-list (the
    # path every provisioned device takes). But no thing of the inventory's samples has a deletion record:
    # their membership events take the path of a thing that exists.
    key = dict(request.get("Key") or {})
    if key.get("sk", {}).get("S", "").startswith("DELETED#"):
        return {}
    return {"Item": key}


def _query(request: dict[str, Any]) -> dict[str, Any]:
    # A deleted thing of the samples had no memberships left to end.
    return {"Items": [], "Count": 0, "ScannedCount": 0}


def _send_message(request: dict[str, Any]) -> dict[str, Any]:
    body = str(request.get("MessageBody", ""))
    return {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": hashlib.md5(body.encode()).hexdigest()}


AUTHORIZER_KEYS = Path(__file__).resolve().parents[1] / "events" / "authorize_device" / "jwks.json"


def _get_parameter(request: dict[str, Any]) -> dict[str, Any]:
    # Every parameter holds the authorizer samples' public JWKS: the only parameter a function reads.
    name = str(request.get("Name", ""))
    value = AUTHORIZER_KEYS.read_text()
    return {"Parameter": {"Name": name, "Type": "String", "Value": value, "Version": 1, "DataType": "text"}}


RESPONDERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "dynamodb:UpdateItem": _update_item,
    "dynamodb:GetItem": _get_item,
    "dynamodb:Query": _query,
    "sqs:SendMessage": _send_message,
    "ssm:GetParameter": _get_parameter,
}


JITR_TRUST = Path(__file__).resolve().parents[1] / "events" / "activate_certificate" / "public-certificates"
AUDIT_FINDINGS = Path(__file__).resolve().parents[1] / "events" / "mitigate_audit_findings" / "findings"


class RestCall(NamedTuple):
    """What a REST route answers from: the request's body, and the samples the stub serves."""

    body: bytes
    trust: dict[str, str]
    findings: dict[tuple[str, str | None], dict[str, Any]]


def _certificate_id(pem: str) -> str:
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def _trust_material() -> dict[str, str]:
    """Certificate id -> PEM of every sample certificate (the CA's among them), and "crl" -> the CRL."""
    pems = {_certificate_id(path.read_text()): path.read_text() for path in JITR_TRUST.glob("*.pem") if path.stem != "crl"}
    return {**pems, "crl": (JITR_TRUST / "crl.pem").read_text()}


def _findings_pages() -> dict[tuple[str, str | None], dict[str, Any]]:
    """(check name, the nextToken asked with) -> the page: `<CHECK>_page<N>.json`, each naming the next page's
    token, the first page asked for with none."""
    pages: dict[tuple[str, str | None], dict[str, Any]] = {}
    for first in sorted(AUDIT_FINDINGS.glob("*_page1.json")):
        check = first.name.removesuffix("_page1.json")
        token, number = None, 1
        while (path := AUDIT_FINDINGS / f"{check}_page{number}.json").exists():
            page = json.loads(path.read_text())
            pages[(check, token)] = page
            token, number = page.get("nextToken"), number + 1
    return pages


def _describe_certificate(match: re.Match[str], call: RestCall) -> tuple[int, Any]:
    certificate_id = match["id"]
    description = {
        "certificateId": certificate_id,
        "certificateArn": f"arn:aws:iot:eu-west-1:123456789012:cert/{certificate_id}",
        "status": "ACTIVE",
    }
    if certificate_id in call.trust:
        description |= {"status": "PENDING_ACTIVATION", "certificatePem": call.trust[certificate_id]}
    return 200, {"certificateDescription": description}


def _describe_ca_certificate(match: re.Match[str], call: RestCall) -> tuple[int, Any]:
    if match["id"] not in call.trust:
        return 404, {"message": "CA certificate not found"}
    return 200, {"certificateDescription": {"certificateId": match["id"], "certificatePem": call.trust[match["id"]]}}


def _get_object(match: re.Match[str], call: RestCall) -> tuple[int, Any]:
    if not match["key"].startswith("crl/"):
        return 404, b"<Error><Code>NoSuchKey</Code></Error>"
    return 200, call.trust["crl"].encode()


def _empty(match: re.Match[str], call: RestCall) -> tuple[int, Any]:
    return 200, {}


# The group every onboarded device joins (FLEET_THING_GROUP): what the registry says of any thing it is asked about.
THING_GROUP = "iot_backend_fleet"
THING_ATTRIBUTES = {"site": "greenhouse-a", "firmware": "1.0.0"}
# The things every certificate but the JITR samples' is attached to: the two devices that share a certificate in
# the remediation sample (events/remediate_finding/device_certificate_shared.json).
SHARING_THINGS = ("sensor-0042", "sensor-0043")


def _describe_thing(match: re.Match[str], call: RestCall) -> tuple[int, Any]:
    name = match["name"]
    return 200, {
        "thingName": name,
        "thingId": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
        "thingArn": f"arn:aws:iot:eu-west-1:123456789012:thing/{name}",
        "thingTypeName": "GreenhouseSensor",
        "attributes": THING_ATTRIBUTES,
        "defaultClientId": name,
        "version": 1,
    }


def _list_thing_groups(match: re.Match[str], call: RestCall) -> tuple[int, Any]:
    group = {"groupName": THING_GROUP, "groupArn": f"arn:aws:iot:eu-west-1:123456789012:thinggroup/{THING_GROUP}"}
    return 200, {"thingGroups": [group]}


def _list_principal_things(match: re.Match[str], call: RestCall) -> tuple[int, Any]:
    return 200, {"things": list(SHARING_THINGS)}


def _list_audit_findings(match: re.Match[str], call: RestCall) -> tuple[int, Any]:
    request = json.loads(call.body or b"{}")
    page = call.findings.get((request.get("checkName"), request.get("nextToken")))
    if page is None and request.get("nextToken"):
        return 400, {"message": "invalid nextToken"}
    return 200, page or {"findings": []}


def _start_mitigation_task(match: re.Match[str], call: RestCall) -> tuple[int, Any]:
    return 200, {"taskId": match["id"]}


# (method, path pattern) -> the operation and its answer: (status, JSON object or raw bytes).
REST_ROUTES: list[tuple[str, re.Pattern[str], str, Callable[[re.Match[str], RestCall], tuple[int, Any]]]] = [
    ("GET", re.compile(r"/certificates/(?P<id>[0-9a-f]{64})"), "iot:DescribeCertificate", _describe_certificate),
    ("GET", re.compile(r"/cacertificate/(?P<id>[0-9a-f]{64})"), "iot:DescribeCACertificate", _describe_ca_certificate),
    ("PUT", re.compile(r"/certificates/(?P<id>[0-9a-f]{64})"), "iot:UpdateCertificate", _empty),
    ("POST", re.compile(r"/things/(?P<name>[^/]+)"), "iot:CreateThing", _empty),
    ("PUT", re.compile(r"/things/(?P<name>[^/]+)/principals"), "iot:AttachThingPrincipal", _empty),
    ("PUT", re.compile(r"/target-policies/(?P<name>[^/]+)"), "iot:AttachPolicy", _empty),
    ("PUT", re.compile(r"/thing-groups/addThingToThingGroup"), "iot:AddThingToThingGroup", _empty),
    ("GET", re.compile(r"/things/(?P<name>[^/]+)"), "iot:DescribeThing", _describe_thing),
    ("GET", re.compile(r"/things/(?P<name>[^/]+)/thing-groups"), "iot:ListThingGroupsForThing", _list_thing_groups),
    ("GET", re.compile(r"/principals/things"), "iot:ListPrincipalThings", _list_principal_things),
    ("POST", re.compile(r"/audit/findings"), "iot:ListAuditFindings", _list_audit_findings),
    ("POST", re.compile(r"/audit/mitigationactions/tasks/(?P<id>[^/]+)"), "iot:StartAuditMitigationActionsTask", _start_mitigation_task),
    # Last: its pattern matches any GET of two levels or more.
    ("GET", re.compile(r"/(?P<bucket>[^/]+)/(?P<key>.+)"), "s3:GetObject", _get_object),
]


def _sns_publish(form: dict[str, list[str]]) -> str:
    return f"<PublishResult><MessageId>{uuid.uuid4()}</MessageId></PublishResult>"


# Query-protocol actions (a form POSTed to /, as botocore sends SNS's) -> the XML of their result.
QUERY_RESPONDERS: dict[str, Callable[[dict[str, list[str]]], str]] = {"sns:Publish": _sns_publish}


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

    def do_GET(self) -> None:
        self._rest("GET")

    def do_PUT(self) -> None:
        self._rest("PUT")

    def do_POST(self) -> None:
        if self.headers.get("X-Amz-Target") is None:
            self._rest("POST")
            return
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

    def _rest(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        if method == "POST" and path == "/":
            self._query(body)
            return
        call = RestCall(body, self.server.trust, self.server.findings)
        for route_method, pattern, operation, answer in REST_ROUTES:
            match = pattern.fullmatch(path)
            if route_method == method and match is not None:
                self.server.count(operation)
                status, payload = answer(match, call)
                if isinstance(payload, bytes):
                    self._reply_bytes(status, payload, "application/octet-stream")
                else:
                    self._reply_bytes(status, json.dumps(payload).encode(), "application/json")
                return
        self.server.count(f"unknown:{method} {path}")
        self._reply_bytes(400, json.dumps({"message": f"The stub does not answer {method} {path}"}).encode(), "application/json")

    def _query(self, body: bytes) -> None:
        form = parse_qs(body.decode())
        action = (form.get("Action") or ["no Action"])[0]
        # Of the services the functions call, only SNS still speaks the query protocol.
        operation = f"sns:{action}"
        self.server.count(operation)
        responder = QUERY_RESPONDERS.get(operation)
        if responder is None:
            error = f"<Error><Type>Sender</Type><Code>InvalidAction</Code><Message>{escape(operation)}</Message></Error>"
            self._reply_bytes(400, f"<ErrorResponse>{error}</ErrorResponse>".encode(), "text/xml")
            return
        request_id = f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        xml = f'<{action}Response xmlns="http://sns.amazonaws.com/doc/2010-03-31/">{responder(form)}{request_id}</{action}Response>'
        self._reply_bytes(200, xml.encode(), "text/xml")

    def _reply_bytes(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("ETag", '"' + hashlib.md5(body).hexdigest() + '"')
        self.end_headers()
        self.wfile.write(body)

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
        self.trust = _trust_material()
        self.findings = _findings_pages()
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
