"""The local runtime's device endpoint: a real MQTT broker on loopback with IoT Core's device gateway in front,
driving the synthesized app from what real devices do.

    mtls          MQTT 3.1.1 over TLS with a client certificate (IoT's port 8883): JITR, JITP, policies
    custom_auth   MQTT 3.1.1 over TLS, authenticated by the app's custom authorizer from the MQTT username and
                  password (IoT's port 443 with ALPN `mqtt`, or 8883)
    websocket     MQTT over WebSocket (TLS), authenticated by the custom authorizer from the upgrade request's
                  headers or query string (SigV4 is not emulated)

The broker is amqtt's (0.12.1, pinned: it is MQTT 3.1.1 only). Its codec, sessions, QoS 1 flows, retained
messages and persistent sessions are used as they are. Where IoT behaves differently, the broker's own
handling is replaced (GatewayBroker), each for a reason: a connection opens only once the gateway admitted and
authorized it (device_gateway.py), and a refused one is closed without a CONNACK, as IoT closes it; a second
connection with a live client ID takes the first one over (amqtt would leave a clean session's old connection
open); every PUBLISH is checked against the policies and IoT's limits, runs through the rules engine, and a
denied one disconnects the client (MQTT 3); a SUBSCRIBE with any denied filter disconnects it; a message, a
retained one included, reaches a subscriber only if its policy allows iot:Receive; the Last Will goes through
the same checks and rules; keep-alive is enforced at 1.5 times the keep-alive IoT uses (amqtt never expires
it). Each connection's lifecycle events (lifecycle_events.py) go through the rules.

Threads: the broker runs on its own asyncio loop; the LocalRuntime (the rules engine, the functions, the event
sources) is used from one thread only, RuntimeThread, which runs what the broker hands it (a device's message,
a lifecycle event, an authorizer invocation) in order and polls the event sources in between. Messages the
app sends to devices (republish, iot-data Publish) come back from that thread into the broker's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, TypeVar
from urllib.parse import unquote

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter, WebSocketsReader, WebSocketsWriter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.mqtt.constants import QOS_1
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session

from events import now_ms
from local_runtime.account import ACCOUNT_ID, REGION
from local_runtime.activity import RuleFired
from local_runtime.authorizers import Connection, Decision
from local_runtime.device_certificates import DeviceTrust, EndpointCredentials
from local_runtime.device_gateway import (
    CUSTOM_AUTH,
    KEEP_ALIVE_MIN_S,
    MAX_FILTERS_PER_SUBSCRIBE,
    MTLS,
    ConnectDecision,
    ConnectRequest,
    DeviceGateway,
    Grant,
    keep_alive_s,
    publish_problem,
    topic_problem,
)
from local_runtime.errors import LocalRuntimeError
from local_runtime.iot_registry import IotRegistry
from local_runtime import lifecycle_events as lifecycle
from local_runtime.runtime import LocalRuntime
from local_runtime.topics import basic_ingest

WEBSOCKET = "websocket"
_AMQTT_LISTENER = {MTLS: "default"}  # the endpoint's listener names that amqtt knows by another
Result = TypeVar("Result")
_IDLE_POLL_S = 0.05
_log = logging.getLogger("local_runtime.device_endpoint")


class RuntimeThread:
    """The one thread that uses the LocalRuntime while the endpoint runs: jobs run in the order they were
    submitted, and the event sources poll whenever there is no job waiting."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self._runtime = runtime
        self._jobs: queue.Queue[tuple[Callable[[LocalRuntime], Any], concurrent.futures.Future[Any]] | None] = (
            queue.Queue()
        )
        self._thread = threading.Thread(target=self._run, name="local-runtime", daemon=True)
        self.errors: list[BaseException] = []

    def start(self) -> None:
        self._runtime.start_event_flow()
        self._thread.start()

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join()

    def submit(self, job: Callable[[LocalRuntime], Result]) -> concurrent.futures.Future[Result]:
        future: concurrent.futures.Future[Result] = concurrent.futures.Future()
        self._jobs.put((job, future))
        return future

    def call(self, job: Callable[[LocalRuntime], Result], timeout_s: float | None = None) -> Result:
        return self.submit(job).result(timeout_s)

    def _run(self) -> None:
        busy = False
        while True:
            try:
                item = self._jobs.get(timeout=0 if busy else _IDLE_POLL_S)
            except queue.Empty:
                item = ()  # type: ignore[assignment]
            if item is None:
                return
            if item:
                job, future = item
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(job(self._runtime))
                    except BaseException as error:  # the submitter gets it; the thread goes on
                        future.set_exception(error)
                continue
            try:
                busy = self._runtime.event_sources.poll()
            except LocalRuntimeError as error:  # e.g. a function the runtime cannot run: say it, keep serving
                self.errors.append(error)
                _log.error("event sources: %s", error)
                busy = False


class _ActivityReader(StreamReaderAdapter):
    """Remembers when the device last sent anything: IoT's keep-alive counts every packet."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        super().__init__(reader)
        self.last_read = time.monotonic()

    async def read(self, n: int = -1) -> bytes:
        data = await super().read(n)
        self.last_read = time.monotonic()
        return data


class _WebSocketActivityReader(WebSocketsReader):
    def __init__(self, websocket: Any) -> None:
        super().__init__(websocket)
        self.last_read = time.monotonic()
        request = websocket.request
        self.path = request.path if request is not None else ""
        self.headers = dict(request.headers.raw_items()) if request is not None else {}

    async def read(self, n: int = -1) -> bytes:
        data = await super().read(n)
        self.last_read = time.monotonic()
        return data


@dataclass(frozen=True)
class HandedToRules:
    """A message the endpoint handed the rules engine: a device's PUBLISH that IoT let through, or a message IoT
    publishes itself because of a device (a lifecycle event, JITR's certificate registration). `fired` is done
    once the runtime's thread has run the rules on it: so a caller that sees the record knows it is queued."""

    client_id: str
    topic: str
    payload: bytes
    from_device: bool  # the device published it (else IoT did, about the device)
    fired: concurrent.futures.Future[list[RuleFired]]


@dataclass(eq=False)
class DeviceConnection:
    """One open connection, as the gateway granted it."""

    request: ConnectRequest
    grant: Grant
    identity: lifecycle.SessionIdentity
    keep_alive_s: int
    session: Session
    handler: BrokerProtocolHandler
    reader: _ActivityReader | _WebSocketActivityReader
    closing_reason: str | None = None  # set when the endpoint closes it
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    timers: list[asyncio.Task[None]] = field(default_factory=list)


class GatewayBroker(Broker):
    """amqtt's broker with IoT Core's gateway behaviour where IoT differs (see the module's docstring). The
    methods replaced are amqtt 0.12.1's; the version is pinned in requirements-dev.txt."""

    def __init__(self, config: dict[str, Any], endpoint: DeviceEndpoint, contexts: dict[str, ssl.SSLContext]) -> None:
        super().__init__(config, loop=asyncio.get_running_loop())
        self._endpoint = endpoint
        self._contexts = contexts

    def bound_port(self, listener: str) -> int:
        server = self._servers[listener].instance
        assert server is not None
        return int(next(iter(server.sockets)).getsockname()[1])

    async def _create_server_instance(
        self, listener_name: str, listener_type: Any, address: str | None, port: int, ssl_context: Any
    ) -> Any:
        return await super()._create_server_instance(
            listener_name, listener_type, address, port, self._contexts[listener_name]
        )

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        await self._client_connected(listener_name, _ActivityReader(reader), StreamWriterAdapter(writer))

    async def ws_connected(self, websocket: Any, listener_name: str) -> None:
        await self._client_connected(listener_name, _WebSocketActivityReader(websocket), WebSocketsWriter(websocket))

    async def _handle_client_session(
        self,
        reader: Any,
        writer: Any,
        client_session: Session,
        handler: BrokerProtocolHandler,
        server: Any,
        listener_name: str,
    ) -> None:
        request = self._endpoint.connect_request(listener_name, client_session, reader, writer)
        decision = await self._endpoint.decide(request)
        if decision.grant is None:
            await writer.close()
            return
        await self._endpoint.take_over(request.client_id)
        # From here, amqtt's own steps, without its take-over (done above) and with retained messages sent
        # for this session's own subscriptions only.
        client_session.transitions.connect()
        handler.attach(client_session, reader, writer)
        self._sessions[request.client_id] = (client_session, handler)
        # Open before the CONNACK: the device may act on it at once.
        connection = self._endpoint.opened(request, decision.grant, client_session, handler, reader)
        await handler.mqtt_connack_authorize(True)
        await handler.start()
        await self._publish_session_retained_messages(client_session)
        for topic_filter, subscribers in list(self._subscriptions.items()):
            for subscriber, qos in subscribers:
                if subscriber is client_session:
                    await self._publish_retained_messages_for_subscription((topic_filter, qos), client_session)
        try:
            await self._client_message_loop(client_session, handler)
        finally:
            if not connection.ended.is_set():  # the loop ended without a disconnect (cancelled at shutdown)
                await self._endpoint.closed(connection, client_initiated=False)

    async def _handle_disconnect(
        self, client_session: Session, handler: BrokerProtocolHandler, disconnect_waiter: asyncio.Future[Any]
    ) -> None:
        client_initiated = isinstance(disconnect_waiter.result(), DisconnectPacket)
        # The Last Will goes out below, through the gateway's checks and the rules, not amqtt's broadcast.
        will = client_session.will_flag
        client_session.will_flag = False
        try:
            await super()._handle_disconnect(client_session, handler, disconnect_waiter)
        finally:
            client_session.will_flag = will
        connection = self._endpoint.connection_of(handler)
        if connection is None:
            return
        if will and not client_initiated and client_session.will_topic:
            await self._endpoint.device_published(
                connection,
                client_session.will_topic,
                bytes(client_session.will_message or b""),
                client_session.will_qos or 0,
                bool(client_session.will_retain),
                closing=True,
            )
        await self._endpoint.closed(connection, client_initiated=client_initiated)

    async def _handle_message_delivery(
        self, client_session: Session, handler: BrokerProtocolHandler, wait_deliver: asyncio.Future[Any]
    ) -> bool:
        message = wait_deliver.result()
        connection = self._endpoint.connection_of(handler)
        if message is None or connection is None:
            return True
        retain = bool(message.publish_packet and message.publish_packet.retain_flag)
        await self._endpoint.device_published(connection, message.topic, bytes(message.data), message.qos or 0, retain)
        return True

    async def _handle_subscription(
        self, client_session: Session, handler: BrokerProtocolHandler, subscribe_waiter: asyncio.Future[Any]
    ) -> None:
        subscriptions = subscribe_waiter.result()
        connection = self._endpoint.connection_of(handler)
        if connection is None:
            return
        filters = [topic_filter for topic_filter, _ in subscriptions.topics]
        if not self._endpoint.may_subscribe(connection, filters):
            return
        # IoT grants QoS 0 and 1 only.
        codes = [await self.add_subscription((f, min(qos, QOS_1)), client_session) for f, qos in subscriptions.topics]
        await handler.mqtt_acknowledge_subscription(subscriptions.packet_id, codes)
        granted = []
        for topic_filter, code in zip(filters, codes):
            if code != 0x80:
                granted.append(topic_filter)
                await self._publish_retained_messages_for_subscription((topic_filter, code), client_session)
        self._endpoint.subscriptions_changed(connection, "subscribed", granted)

    async def _handle_unsubscription(
        self, client_session: Session, handler: BrokerProtocolHandler, unsubscribe_waiter: asyncio.Future[Any]
    ) -> None:
        unsubscription = unsubscribe_waiter.result()
        for topic_filter in unsubscription.topics:
            self._del_subscription(topic_filter, client_session)
        await handler.mqtt_acknowledge_unsubscription(unsubscription.packet_id)
        connection = self._endpoint.connection_of(handler)
        if connection is not None:
            self._endpoint.subscriptions_changed(connection, "unsubscribed", list(unsubscription.topics))

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        # Publish and subscribe are checked before amqtt sees them; what is left is each delivery.
        if action != Action.RECEIVE:
            return True
        return self._endpoint.may_receive(session, topic)

    async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int], session: Session) -> None:
        topic_filter, qos = subscription
        handler = self._get_handler(session)
        if handler is None:
            return
        tasks = [
            asyncio.ensure_future(handler.mqtt_publish(topic, retained.data, min(qos, retained.qos or qos), retain=True))
            for topic, retained in list(self._retained_messages.items())
            if self._matches(topic, topic_filter) and self._endpoint.may_receive(session, topic)
        ]
        if tasks:
            await asyncio.wait(tasks)

    async def deliver(self, topic: str, payload: bytes, qos: int) -> None:
        """A message from the app (republish, iot-data Publish, a lifecycle event) to the subscribed devices."""
        await self._broadcast_message(None, topic, payload, qos)

    async def broadcast_from(self, session: Session, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        await self._broadcast_message(session, topic, payload, qos)
        if retain:
            await self.retain_message(session, topic, payload, qos)


class DeviceEndpoint:
    """`with DeviceEndpoint(runtime, folder) as endpoint:` serves devices on loopback until the block ends; then
    every device is disconnected (SERVER_INITIATED_DISCONNECT), the broker stops, and the runtime's thread
    finishes what it was handed. While it runs, use the runtime only through `call` (or `drain`)."""

    def __init__(
        self,
        runtime: LocalRuntime,
        folder: Path,
        *,
        host: str = "127.0.0.1",
        mtls_port: int = 0,
        custom_auth_port: int = 0,
        websocket_port: int = 0,
        keep_alive_min_s: int = KEEP_ALIVE_MIN_S,
        authorizer_time_scale: float = 1.0,
    ) -> None:
        self.runtime = runtime
        self.host = host
        self.credentials = EndpointCredentials.in_folder(folder)
        self._ports = {MTLS: mtls_port, CUSTOM_AUTH: custom_auth_port, WEBSOCKET: websocket_port}
        self._keep_alive_min_s = keep_alive_min_s
        self._authorizer_time_scale = authorizer_time_scale  # < 1 only in tests: IoT's 300 s minimum, shortened
        self.ports: dict[str, int] = {}
        self._runtime_thread = RuntimeThread(runtime)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._broker: GatewayBroker | None = None
        self._delivering = True
        self._gateway: DeviceGateway | None = None
        self._live: dict[str, DeviceConnection] = {}  # client id -> its open connection
        self._by_handler: dict[int, DeviceConnection] = {}
        self._versions = lifecycle.VersionNumbers()
        self._connectivity: dict[str, dict[str, Any]] = {}  # client id -> GetThingConnectivityData's answer
        self.refusals: list[tuple[str, str]] = []  # (client id, why), in order
        # (client id, connection id, allowed) of every authorizer decision: a connect or a refresh
        self.authorizations: list[tuple[str, str, bool]] = []
        self.handed_to_rules: list[HandedToRules] = []  # in order
        self._uninstall_connectivity_api: Callable[[], None] | None = None

    # -- lifecycle of the endpoint --------------------------------------------------------------------------

    def __enter__(self) -> DeviceEndpoint:
        runtime = self.runtime
        registry = IotRegistry(ACCOUNT_ID, REGION)
        self._gateway = DeviceGateway(
            runtime.stack,
            registry,
            runtime.cloud.client("iot"),
            authorizers=lambda: self._runtime_thread.call(lambda r: r.authorizers),
            authorize=self._authorize,
            templates=runtime.cloud.provisioning_templates,
            now_ms=now_ms,
        )
        self._uninstall_connectivity_api = _serve_connectivity_api(registry, self.thing_connectivity)
        trust = DeviceTrust(registry, self.credentials, alpn_protocols=("x-amzn-mqtt-ca",))
        contexts = {MTLS: trust.server_context(), CUSTOM_AUTH: self._token_context(), WEBSOCKET: self._token_context()}
        self._runtime_thread.start()
        runtime.start_event_flow().deliver = self._deliver_from_runtime
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._serve, args=(contexts, started), name="device-endpoint", daemon=True
        )
        self._loop_thread.start()
        try:
            started.result(30)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        try:
            if self._loop is not None and self._loop.is_running() and self.ports:
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(30)
        finally:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(30)
            if self._loop is not None and not self._loop.is_running():
                self._loop.close()
            self.runtime.start_event_flow().deliver = None
            self._runtime_thread.stop()
            if self._uninstall_connectivity_api is not None:
                self._uninstall_connectivity_api()
                self._uninstall_connectivity_api = None

    def _serve(self, contexts: dict[str, ssl.SSLContext], started: concurrent.futures.Future[None]) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            # amqtt requires a listener named "default": the mTLS one is.
            listeners = {
                _AMQTT_LISTENER.get(name, name): {"type": "ws" if name == WEBSOCKET else "tcp", "bind": f"{self.host}:{port}"}
                for name, port in self._ports.items()
            }
            named = {_AMQTT_LISTENER.get(name, name): context for name, context in contexts.items()}
            self._broker = GatewayBroker({"listeners": listeners, "plugins": {}}, self, named)
            await self._broker.start()
            self.ports = {name: self._broker.bound_port(_AMQTT_LISTENER.get(name, name)) for name in self._ports}

        try:
            self._loop.run_until_complete(start())
        except BaseException as error:
            started.set_exception(error)
            return
        started.set_result(None)
        self._loop.run_forever()

    async def _shutdown(self) -> None:
        connections = list(self._live.values())
        for connection in connections:
            await self._close(connection, lifecycle.SERVER_INITIATED_DISCONNECT)
        await asyncio.gather(*(connection.ended.wait() for connection in connections))
        assert self._broker is not None
        await self._broker.shutdown()
        self._delivering = False  # what the runtime still sends goes nowhere: no device is connected

    def _token_context(self) -> ssl.SSLContext:
        """Server authentication only; the device authenticates in MQTT. The SNI it sent is the authorizer's
        protocolData.tls.serverName."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.credentials.certificate_file, self.credentials.key_file)
        context.set_alpn_protocols(["mqtt", "http/1.1"])

        def remember_server_name(ssl_object: Any, server_name: str | None, _: ssl.SSLContext) -> None:
            ssl_object.requested_server_name = server_name

        context.sni_callback = remember_server_name
        return context

    # -- for tests and the command line ---------------------------------------------------------------------

    @property
    def ca_file(self) -> Path:
        """What devices verify the endpoint's certificate with (it is issued for localhost and 127.0.0.1)."""
        return self.credentials.ca_file

    def summary(self) -> str:
        """What a device needs to know to connect, for the command line to print."""
        authorizers = ", ".join(sorted(self.call(lambda r: r.authorizers))) or "none in the app"
        return "\n".join(
            [
                f"Device endpoint on {self.host}; devices verify it with {self.ca_file} (the server certificate "
                "is for localhost and 127.0.0.1)",
                f"  mqtts://{self.host}:{self.ports[MTLS]}  client certificates issued by a CA registered in the "
                "app (JITR, JITP) or registered themselves",
                f"  mqtts://{self.host}:{self.ports[CUSTOM_AUTH]}  custom authentication, username "
                f"'<name>?x-amz-customauthorizer-name=<authorizer>&<token key>=<token>' (authorizers: {authorizers})",
                f"  wss://{self.host}:{self.ports[WEBSOCKET]}/mqtt  MQTT over WebSocket, custom authentication from "
                "the request's headers or query string",
                "MQTT 3.1.1, QoS 0 and 1, retained messages, persistent sessions; Ctrl-C stops it.",
            ]
        )

    def call(self, job: Callable[[LocalRuntime], Result], timeout_s: float | None = None) -> Result:
        """Runs `job` with the runtime on the runtime's thread, after everything handed to it before."""
        return self._runtime_thread.call(job, timeout_s)

    def drain(self) -> None:
        self.call(lambda runtime: runtime.drain())

    def connected_clients(self) -> list[str]:
        return sorted(self._live)

    def session_identifiers(self) -> dict[str, str]:
        """The sessionIdentifier of each client ID's open connection: what its lifecycle events carry."""
        return {client_id: c.identity.session_identifier for client_id, c in list(self._live.items())}

    def thing_connectivity(self, thing_name: str) -> dict[str, Any]:
        """GetThingConnectivityData's answer, from the sessions: IoT keys it by client ID = thing name."""
        known = self._connectivity.get(thing_name)
        if known is None:
            return {"thingName": thing_name, "connected": False}
        return {"thingName": thing_name, **known}

    # -- called by the broker (on its loop) -----------------------------------------------------------------

    def connect_request(self, listener: str, session: Session, reader: Any, writer: Any) -> ConnectRequest:
        ssl_object = writer.get_ssl_info()
        certificate = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        peer = writer.get_peer_info()
        headers, query = {}, ""
        if isinstance(reader, _WebSocketActivityReader):
            headers, query = reader.headers, reader.path.partition("?")[2]
        return ConnectRequest(
            listener=MTLS if listener == _AMQTT_LISTENER[MTLS] else CUSTOM_AUTH,
            protocol=WEBSOCKET if listener == WEBSOCKET else "mqtt",
            client_id=session.client_id or "",
            ip_address=peer[0] if peer else "",
            certificate_der=certificate,
            username=session.username,
            password=session.password.encode() if isinstance(session.password, str) else session.password,
            server_name=getattr(ssl_object, "requested_server_name", None),
            headers=headers,
            query_string=query,
            keep_alive_s=session.keep_alive,
        )

    async def decide(self, request: ConnectRequest) -> ConnectDecision:
        assert self._gateway is not None
        decision = await asyncio.get_running_loop().run_in_executor(None, self._gateway.connect, request)
        for topic, payload in decision.events:
            self._hand_to_rules(request.client_id, topic, payload)
        if decision.grant is None:
            self.refusals.append((request.client_id, decision.reason))
            _log.warning("refused %s (%s): %s", request.client_id, request.listener, decision.reason)
        return decision

    async def take_over(self, client_id: str) -> None:
        """IoT keeps one connection per client ID: the older one is disconnected (DUPLICATE_CLIENTID)."""
        existing = self._live.get(client_id)
        if existing is not None:
            await self._close(existing, lifecycle.DUPLICATE_CLIENTID)
            await existing.ended.wait()

    def opened(
        self, request: ConnectRequest, grant: Grant, session: Session, handler: BrokerProtocolHandler, reader: Any
    ) -> DeviceConnection:
        at = now_ms()
        identity = lifecycle.SessionIdentity(
            client_id=request.client_id,
            session_identifier=request.connection_id,
            principal_identifier=grant.principal_identifier,
            ip_address=request.ip_address,
            version_number=self._versions.next_connection(request.client_id, at),
        )
        connection = DeviceConnection(
            request, grant, identity, keep_alive_s(request.keep_alive_s, self._keep_alive_min_s), session, handler, reader
        )
        self._live[request.client_id] = connection
        self._by_handler[id(handler)] = connection
        self._connectivity[request.client_id] = {"connected": True, "timestamp": at}
        self._lifecycle(request.client_id, lifecycle.connected_event(identity, at))
        connection.timers.append(asyncio.ensure_future(self._expire_keep_alive(connection)))
        if grant.disconnect_after_s is not None:
            connection.timers.append(asyncio.ensure_future(self._expire_authorization(connection)))
        if grant.refresh_after_s is not None and grant.refresh_after_s < (grant.disconnect_after_s or 86_400):
            # (no refresh when the connection ends first)
            connection.timers.append(asyncio.ensure_future(self._refresh_authorization(connection)))
        _log.info("connected %s (%s, principal %s)", request.client_id, request.listener, grant.principal_identifier)
        return connection

    async def closed(self, connection: DeviceConnection, *, client_initiated: bool) -> None:
        if connection.ended.is_set():
            return
        at = now_ms()
        reason = connection.closing_reason or (
            lifecycle.CLIENT_INITIATED_DISCONNECT if client_initiated else lifecycle.CONNECTION_LOST
        )
        for timer in connection.timers:
            if timer is not asyncio.current_task():
                timer.cancel()
        client_id = connection.identity.client_id
        if self._live.get(client_id) is connection:
            del self._live[client_id]
            self._connectivity[client_id] = {"connected": False, "timestamp": at, "disconnectReason": reason}
        self._by_handler.pop(id(connection.handler), None)
        self._versions.disconnected(client_id, connection.identity.version_number, at)
        self._lifecycle(client_id, lifecycle.disconnected_event(connection.identity, reason, at))
        _log.info("disconnected %s: %s", client_id, reason)
        connection.ended.set()

    def connection_of(self, handler: BrokerProtocolHandler) -> DeviceConnection | None:
        return self._by_handler.get(id(handler))

    async def device_published(
        self, connection: DeviceConnection, topic: str, payload: bytes, qos: int, retain: bool, *, closing: bool = False
    ) -> None:
        """A device's PUBLISH (or its Last Will, as it disconnects): checked, delivered, then through the rules."""
        problem = publish_problem(topic, payload, qos)
        if problem is not None:
            return await self._refuse(connection, f"PUBLISH to {topic!r}: {problem}", lifecycle.CLIENT_ERROR, closing)
        assert self._gateway is not None and self._broker is not None
        verdict = self._gateway.may_publish(connection.grant, topic, retain)
        if not verdict.allowed:
            return await self._refuse(connection, f"PUBLISH to {topic!r}: {verdict.reason}", lifecycle.AUTH_ERROR, closing)
        if basic_ingest(topic) is None:  # Basic Ingest skips the broker: only its rule gets the message
            await self._broker.broadcast_from(connection.session, topic, payload, qos, retain)
        client_id, principal = connection.identity.client_id, connection.grant.principal_identifier
        self._hand_to_rules(client_id, topic, payload, principal)

    def may_subscribe(self, connection: DeviceConnection, filters: list[str]) -> bool:
        """Whether IoT lets the whole SUBSCRIBE through; if not, the client is being disconnected."""
        assert self._gateway is not None
        problem = None
        if len(filters) > MAX_FILTERS_PER_SUBSCRIBE:
            problem = f"SUBSCRIBE with {len(filters)} topic filters, over IoT's {MAX_FILTERS_PER_SUBSCRIBE}"
        for topic_filter in filters:
            problem = problem or topic_problem(topic_filter)
        if problem is not None:
            asyncio.ensure_future(self._refuse(connection, problem, lifecycle.CLIENT_ERROR))
            return False
        for topic_filter in filters:
            verdict = self._gateway.may_subscribe(connection.grant, topic_filter)
            if not verdict.allowed:
                reason = f"SUBSCRIBE to {topic_filter!r}: {verdict.reason}"
                asyncio.ensure_future(self._refuse(connection, reason, lifecycle.AUTH_ERROR))
                return False
        return True

    def may_receive(self, session: Session, topic: str) -> bool:
        connection = self._live.get(session.client_id or "")
        if connection is None or connection.session is not session:
            return False
        assert self._gateway is not None
        return self._gateway.may_receive(connection.grant, topic).allowed

    def subscriptions_changed(self, connection: DeviceConnection, event_type: str, topics: list[str]) -> None:
        if topics:
            event = lifecycle.subscription_event(connection.identity, event_type, topics, now_ms())
            self._lifecycle(connection.identity.client_id, event)

    # -- inside ---------------------------------------------------------------------------------------------

    def _deliver_from_runtime(self, topic: str, payload: bytes) -> None:
        """On the runtime's thread: the app sent `topic` to the devices; the broker's loop delivers it."""
        broker = self._broker
        if self._loop is None or broker is None:
            return

        def deliver() -> None:  # on the loop: a delivery that comes after the broker stopped makes no coroutine
            if self._delivering:
                asyncio.ensure_future(broker.deliver(topic, payload, 0))

        try:
            self._loop.call_soon_threadsafe(deliver)
        except RuntimeError:  # the loop is closed: the endpoint has stopped, and no device is left to receive it
            pass

    def _authorize(self, name: str, connection: Connection) -> Decision:
        """IoT invokes the authorizer function; it runs on the runtime's thread, as every function does."""
        decision = self._runtime_thread.call(lambda runtime: runtime.authorize(name, connection))
        self.authorizations.append((connection.client_id or "", connection.connection_id, decision.allowed))
        return decision

    def _lifecycle(self, client_id: str, event: tuple[str, bytes]) -> None:
        if lifecycle.publishes_lifecycle_events(client_id):
            topic, payload = event
            self._hand_to_rules(client_id, topic, payload)

    def _hand_to_rules(self, client_id: str, topic: str, payload: bytes, principal: str | None = None) -> None:
        """`principal` given: the device `client_id` published it (the broker delivered it already); else IoT did."""
        if principal is None:
            fired = self._runtime_thread.submit(lambda r: r.publish(topic, payload))
        else:
            fired = self._runtime_thread.submit(
                lambda r: r.publish(topic, payload, client_id, principal, delivered=True)
            )
        self.handed_to_rules.append(HandedToRules(client_id, topic, payload, principal is not None, fired))

    async def _refuse(self, connection: DeviceConnection, why: str, reason: str, closing: bool = False) -> None:
        self.refusals.append((connection.identity.client_id, why))
        _log.warning("%s: %s; disconnecting (%s)", connection.identity.client_id, why, reason)
        if not closing:
            await self._close(connection, reason)

    async def _close(self, connection: DeviceConnection, reason: str) -> None:
        if connection.closing_reason is None:
            connection.closing_reason = reason
        await connection.handler.handle_connection_closed()

    async def _expire_keep_alive(self, connection: DeviceConnection) -> None:
        """IoT disconnects a client that sent nothing for 1.5 times its keep-alive. The last read only moves
        on, so the task sleeps until the earliest moment the connection could expire, then looks again."""
        limit = 1.5 * connection.keep_alive_s
        while True:
            idle = time.monotonic() - connection.reader.last_read
            if idle >= limit:
                await self._close(connection, lifecycle.MQTT_KEEP_ALIVE_TIMEOUT)
                return
            await asyncio.sleep(limit - idle)

    async def _expire_authorization(self, connection: DeviceConnection) -> None:
        assert connection.grant.disconnect_after_s is not None
        await asyncio.sleep(connection.grant.disconnect_after_s * self._authorizer_time_scale)
        await self._close(connection, lifecycle.CUSTOMAUTH_TTL_EXPIRATION)

    async def _refresh_authorization(self, connection: DeviceConnection) -> None:
        """After refreshAfterInSeconds IoT asks the authorizer again: its new policies apply from then on, and
        a denial ends the connection."""
        assert self._gateway is not None
        while connection.grant.refresh_after_s is not None:
            await asyncio.sleep(connection.grant.refresh_after_s * self._authorizer_time_scale)
            decision = await asyncio.get_running_loop().run_in_executor(
                None, self._gateway.refresh, connection.grant, connection.request
            )
            if decision.grant is None:
                self.refusals.append((connection.identity.client_id, f"refresh: {decision.reason}"))
                await self._close(connection, lifecycle.AUTH_ERROR)
                return
            connection.grant.policies = decision.grant.policies
            connection.grant.refresh_after_s = decision.grant.refresh_after_s


def _serve_connectivity_api(registry: IotRegistry, answer: Callable[[str], dict[str, Any]]) -> Callable[[], None]:
    """GetThingConnectivityData in the embedded AWS (moto has no such route), answered from the endpoint's
    sessions, for as long as the endpoint runs; returns what removes it. A thing that does not exist is
    ResourceNotFoundException, as on AWS."""
    from moto.core.responses import ActionResult  # moto loads its backends lazily: so does this
    from moto.iot.exceptions import ResourceNotFoundException
    from moto.iot.responses import IoTResponse

    def get_thing_connectivity_data(response: IoTResponse) -> ActionResult:
        thing_name = unquote(response.path.split("/")[-2])
        if registry.thing(thing_name) is None:
            raise ResourceNotFoundException(f"Thing {thing_name} does not exist")
        known = answer(thing_name)
        if "timestamp" in known:  # epoch milliseconds here; a timestamp in the API's shape
            known = {**known, "timestamp": datetime.fromtimestamp(known["timestamp"] / 1000, timezone.utc)}
        return ActionResult(known)

    IoTResponse.get_thing_connectivity_data = get_thing_connectivity_data  # type: ignore[attr-defined]

    def uninstall() -> None:
        if "get_thing_connectivity_data" in vars(IoTResponse):
            del IoTResponse.get_thing_connectivity_data  # type: ignore[attr-defined]

    return uninstall
