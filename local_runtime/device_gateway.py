"""IoT Core's device gateway, as the local device endpoint (device_endpoint.py) asks it: whether a connection
may open, and whether each publish, subscribe and delivery of an open one is allowed. It knows nothing of MQTT
packets or sockets; it takes what a device presented and answers in IoT's terms.

A certificate connection is admitted as IoT admits it (device_certificates.py: JITR registers an unknown
certificate of an auto-registering CA and closes the connection; JITP provisions it; revoked, inactive and
unknown certificates are refused), then authorized by the policies attached to the certificate and its thing's
groups. A custom-authentication connection names its authorizer in the MQTT username
(`...?x-amz-customauthorizer-name=<name>&<tokenKey>=...`), or gets the domain's default one; IoT checks the
token's signature and the answer (authorizers.py), and the policies the function returned authorize the
connection until it is refreshed or must disconnect. Deny wins, and anything not allowed is denied
(iot_policies.py).

Limits are IoT's (https://docs.aws.amazon.com/general/latest/gr/iot-core.html, "Message broker and protocol
limits and quotas"): a client ID of at most 128 bytes, a payload of at most 128 KB, a topic of at most 256
bytes and 7 slashes, at most 8 topic filters in one SUBSCRIBE, keep-alive between 30 and 1,200 seconds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from cryptography import x509

from local_runtime.account import ACCOUNT_ID, REGION
from local_runtime.assembly import Stack
from local_runtime.authorizers import Authorizer, Connection, Decision, requested_authorizer
from local_runtime.device_certificates import Admission, ProvisioningTemplates, admit
from local_runtime.iot_policies import (
    NamedPolicy,
    PolicyContext,
    Verdict,
    certificate_policies,
    client_arn,
    connection_context,
    evaluate,
    topic_arn,
    topic_filter_arn,
)
from local_runtime.iot_registry import IotRegistry
from local_runtime.topics import basic_ingest, may_publish_to

MAX_CLIENT_ID_BYTES = 128
MAX_PAYLOAD_BYTES = 128 * 1024
MAX_TOPIC_BYTES = 256
MAX_TOPIC_SLASHES = 7
MAX_FILTERS_PER_SUBSCRIBE = 8
KEEP_ALIVE_MIN_S, KEEP_ALIVE_MAX_S = 30, 1200
DOMAIN_CONFIGURATION = "AWS::IoT::DomainConfiguration"

MTLS, CUSTOM_AUTH = "mtls", "custom_auth"


@dataclass(frozen=True)
class ConnectRequest:
    """What a device presented: its TLS identity (mTLS) or its MQTT credentials (custom authentication)."""

    listener: str  # MTLS or CUSTOM_AUTH
    client_id: str
    ip_address: str
    protocol: str = "mqtt"  # or "websocket": the token and signature are in the upgrade request
    certificate_der: bytes | None = None
    username: str | None = None
    password: bytes | None = None
    server_name: str | None = None  # the TLS SNI the device sent
    headers: dict[str, str] = field(default_factory=dict)
    query_string: str = ""
    keep_alive_s: int = 0  # as the CONNECT asked
    connection_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Grant:
    """What an open connection may do, and for how long. A custom-auth grant changes when it is refreshed."""

    principal_identifier: str
    policies: list[NamedPolicy]
    context: PolicyContext
    authorizer: str | None = None
    disconnect_after_s: int | None = None
    refresh_after_s: int | None = None


@dataclass(frozen=True)
class ConnectDecision:
    grant: Grant | None  # None: refused
    reason: str  # in IoT's terms, for the endpoint's log; never a secret
    events: tuple[tuple[str, bytes], ...] = ()  # what IoT publishes because of the attempt (JITR's registration)


class DeviceGateway:
    def __init__(
        self,
        stack: Stack,
        registry: IotRegistry,
        iot: Any,
        authorizers: Callable[[], dict[str, Authorizer]],
        authorize: Callable[[str, Connection], Decision],
        templates: ProvisioningTemplates,
        now_ms: Callable[[], int],
    ) -> None:
        self._registry = registry  # read at every connection
        self._iot = iot  # for what IoT writes because of a connection (JITR, JITP)
        self._authorizers = authorizers
        self._authorize = authorize  # runs the authorizer function (on the runtime's thread)
        self._templates = templates
        self._now_ms = now_ms
        self._default_authorizer = _default_authorizer(stack)

    def connect(self, request: ConnectRequest) -> ConnectDecision:
        if len(request.client_id.encode()) > MAX_CLIENT_ID_BYTES:
            return ConnectDecision(None, f"the client ID is longer than {MAX_CLIENT_ID_BYTES} bytes")
        if request.listener == MTLS:
            return self._connect_with_certificate(request)
        return self._connect_with_authorizer(request)

    def may_connect(self, grant: Grant, client_id: str) -> Verdict:
        return evaluate(grant.policies, "iot:Connect", client_arn(grant.context, client_id), grant.context)

    def may_publish(self, grant: Grant, topic: str, retain: bool) -> Verdict:
        resource = topic_arn(grant.context, topic)
        verdict = evaluate(grant.policies, "iot:Publish", resource, grant.context)
        if verdict.allowed and retain:
            return evaluate(grant.policies, "iot:RetainPublish", resource, grant.context)
        return verdict

    def may_subscribe(self, grant: Grant, topic_filter: str) -> Verdict:
        return evaluate(grant.policies, "iot:Subscribe", topic_filter_arn(grant.context, topic_filter), grant.context)

    def may_receive(self, grant: Grant, topic: str) -> Verdict:
        return evaluate(grant.policies, "iot:Receive", topic_arn(grant.context, topic), grant.context)

    def refresh(self, grant: Grant, request: ConnectRequest) -> ConnectDecision:
        """IoT invokes the authorizer again after refreshAfterInSeconds, with the connection's own id; the new
        answer replaces the connection's policies, or ends it."""
        assert grant.authorizer is not None
        return self._authorized(grant.authorizer, request)

    def _connect_with_certificate(self, request: ConnectRequest) -> ConnectDecision:
        if request.certificate_der is None:
            return ConnectDecision(None, "the device presented no client certificate")
        admission: Admission = admit(
            self._registry,
            self._iot,
            request.certificate_der, templates=self._templates, account=ACCOUNT_ID, now_ms=self._now_ms()
        )
        if not admission.admitted:
            return ConnectDecision(None, admission.reason, tuple(admission.events))
        assert admission.certificate_id is not None and admission.certificate_arn is not None
        context = connection_context(
            self._registry,
            region=REGION,
            account=ACCOUNT_ID,
            client_id=request.client_id,
            certificate_arn=admission.certificate_arn,
            certificate=x509.load_der_x509_certificate(request.certificate_der),
            source_ip=request.ip_address,
        )
        grant = Grant(
            principal_identifier=admission.certificate_id,
            policies=certificate_policies(self._registry, admission.certificate_arn, context),
            context=context,
        )
        return self._connect_verdict(grant, request, admission.reason, tuple(admission.events))

    def _connect_with_authorizer(self, request: ConnectRequest) -> ConnectDecision:
        connection = _connection(request)
        name = requested_authorizer(connection) or self._default_authorizer
        if name is None:
            return ConnectDecision(
                None, "the username names no authorizer (x-amz-customauthorizer-name) and the domain has no default"
            )
        if name not in self._authorizers():
            return ConnectDecision(None, f"there is no custom authorizer {name!r}")
        return self._authorized(name, request)

    def _authorized(self, name: str, request: ConnectRequest) -> ConnectDecision:
        decision = self._authorize(name, _connection(request))
        if not decision.allowed:
            return ConnectDecision(None, f"custom authorizer {name}: {decision.reason}")
        assert decision.invocation is not None
        answer = decision.invocation.result
        context = PolicyContext(region=REGION, account=ACCOUNT_ID, client_id=request.client_id, source_ip=request.ip_address)
        grant = Grant(
            principal_identifier=answer["principalId"],
            policies=[NamedPolicy(f"{name} answer {i + 1}", d) for i, d in enumerate(answer["policyDocuments"])],
            context=context,
            authorizer=name,
            disconnect_after_s=answer["disconnectAfterInSeconds"],
            refresh_after_s=answer["refreshAfterInSeconds"],
        )
        return self._connect_verdict(grant, request, f"custom authorizer {name}: {decision.reason}", ())

    def _connect_verdict(
        self, grant: Grant, request: ConnectRequest, admitted: str, events: tuple[tuple[str, bytes], ...]
    ) -> ConnectDecision:
        verdict = self.may_connect(grant, request.client_id)
        if not verdict.allowed:
            return ConnectDecision(None, f"{admitted}, but iot:Connect is not allowed: {verdict.reason}", events)
        return ConnectDecision(grant, admitted, events)


def publish_problem(topic: str, payload: bytes, qos: int) -> str | None:
    """Why IoT refuses this PUBLISH of a device whatever its policy says (it disconnects the client), or None."""
    if qos > 1:
        return "QoS 2 is not supported by IoT Core"
    if len(payload) > MAX_PAYLOAD_BYTES:
        return f"the payload is {len(payload)} bytes, over IoT's {MAX_PAYLOAD_BYTES}"
    ingest = basic_ingest(topic)
    if ingest is not None:  # its first three levels do not count towards IoT's topic limits
        return topic_problem(ingest.topic) if ingest.topic else None
    return topic_problem(topic) or (None if may_publish_to(topic) else f"{topic} is a reserved topic")


def topic_problem(topic: str) -> str | None:
    """Why a topic or topic filter is over IoT's limits, or None."""
    if not topic:
        return "the topic is empty"
    if len(topic.encode()) > MAX_TOPIC_BYTES:
        return f"the topic is longer than {MAX_TOPIC_BYTES} bytes"
    if topic.count("/") > MAX_TOPIC_SLASHES:
        return f"the topic has more than {MAX_TOPIC_SLASHES} slashes"
    return None


def keep_alive_s(requested: int, minimum: int = KEEP_ALIVE_MIN_S) -> int:
    """The keep-alive IoT uses: 0 (none asked) is the maximum; below or above the range, its bound."""
    return KEEP_ALIVE_MAX_S if requested == 0 else min(max(requested, minimum), KEEP_ALIVE_MAX_S)


def _connection(request: ConnectRequest) -> Connection:
    return Connection(
        request.protocol,
        client_id=request.client_id,
        username=request.username,
        password=request.password,
        headers=request.headers,
        query_string=request.query_string,
        server_name=request.server_name or "",
        connection_id=request.connection_id,
    )


def _default_authorizer(stack: Stack) -> str | None:
    for resource in stack.of_type(DOMAIN_CONFIGURATION):
        name = resource.properties.get("AuthorizerConfig", {}).get("DefaultAuthorizerName")
        if isinstance(name, str):
            return name
    return None
