"""A fleet of real MQTT devices for the device-endpoint benchmark (benchmarks/devices.py): N paho-mqtt clients
over mutual TLS, in a process of their own, so that the clients' work does not share the endpoint's
interpreter lock.

paho's own network loop is a thread per client (`loop_start`): a thousand threads for a thousand devices. Here
one thread drives every client's socket from a selector, with paho's API for an external loop (`loop_read`,
`loop_write`, `loop_misc`, and the socket open/close/register-write callbacks). paho's connect (TCP, then the
TLS handshake) blocks, so a few connector threads make the connections while the selector thread serves those
already open. Every paho call on a connected client is made on the selector thread; a connector thread hands a
client over once its socket is open.

The parent talks to the fleet through `FleetProcess`, one command at a time; each answers with what it
measured on the devices' side.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import random
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt

KEEP_ALIVE_S = 1200  # the AWS IoT Device SDKs' default; no PINGREQ is due within a run
# paho's default of 5 s for TCP + TLS is for one device; here the endpoint admits a thousand, on a shared machine.
CONNECT_TIMEOUT_S = 60
CONNECTORS = 4  # threads making the blocking TCP + TLS connects
COMMAND_TIMEOUT_S = 600
KINDS = {  # each kind's measures, inside the app's default thresholds (as in benchmarks/local_runtime.py)
    "environment": {"temperature": 21.5, "humidity": 48.0},
    "power": {"battery": 87.0, "voltage": 3.9},
    "soil": {"moisture": 41.0, "temperature": 17.5},
}
APPLICATION = "fleet"  # devices publish on dt/fleet/<thing>/<kind>


@dataclass(frozen=True)
class DeviceIdentity:
    thing_name: str  # also its client ID, as IoT's examples and the app's policy have it
    certificate_file: str
    key_file: str


def reading_topic(thing_name: str, index: int) -> str:
    return f"dt/{APPLICATION}/{thing_name}/{sorted(KINDS)[index % len(KINDS)]}"


class _Fleet:
    """The clients, on the fleet process's side."""

    def __init__(self, devices: list[DeviceIdentity], host: str, port: int, ca_file: str) -> None:
        self._host, self._port = host, port
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._tasks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.connacks: dict[str, int] = {}  # client id -> CONNACKs accepted
        self.refused: list[tuple[str, str]] = []
        self.closed_by_endpoint: list[tuple[str, str]] = []
        self.pubacks = 0
        self._expect_disconnect: set[str] = set()
        self.clients: dict[str, mqtt.Client] = {}
        for device in devices:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
            context.load_cert_chain(device.certificate_file, device.key_file)
            self.clients[device.thing_name] = self._client(device.thing_name, context)
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="fleet-selector", daemon=True)
        self._thread.start()
        self._connectors = ThreadPoolExecutor(CONNECTORS, thread_name_prefix="fleet-connector")

    def _client(self, client_id: str, context: ssl.SSLContext) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, userdata=client_id, protocol=mqtt.MQTTv311
        )
        client.tls_set_context(context)
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.max_inflight_messages_set(0)  # no limit: a device's readings go out back to back
        client.on_socket_open = lambda c, _u, sock: self._on_loop(lambda: self._register(c, sock))
        client.on_socket_close = lambda _c, _u, sock: self._on_loop(lambda: self._unregister(sock))
        client.on_socket_register_write = lambda c, _u, sock: self._on_loop(lambda: self._watch(c, sock, True))
        client.on_socket_unregister_write = lambda c, _u, sock: self._on_loop(lambda: self._watch(c, sock, False))
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_publish = self._acknowledged
        return client

    # -- callbacks (on the selector thread) --------------------------------------------------------------

    def _connected(self, _c: mqtt.Client, client_id: str, _f: Any, reason: Any, _p: Any) -> None:
        with self._lock:
            if reason.is_failure:
                self.refused.append((client_id, str(reason)))
            else:
                self.connacks[client_id] = self.connacks.get(client_id, 0) + 1

    def _disconnected(self, _c: mqtt.Client, client_id: str, _f: Any, reason: Any, _p: Any) -> None:
        with self._lock:
            if client_id in self._expect_disconnect:
                self._expect_disconnect.discard(client_id)
            else:
                self.closed_by_endpoint.append((client_id, str(reason)))

    def _acknowledged(self, _c: Any, _u: Any, _mid: int, _reason: Any, _p: Any) -> None:
        with self._lock:
            self.pubacks += 1

    # -- the selector thread ---------------------------------------------------------------------------

    def _on_loop(self, task: Callable[[], None]) -> None:
        if threading.current_thread() is self._thread:
            task()
        else:
            self._tasks.put(task)
            self._wake_write.send(b"x")

    def _register(self, client: mqtt.Client, sock: Any) -> None:
        self._selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)

    def _unregister(self, sock: Any) -> None:
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):  # dropped by the storm before paho closed it
            pass

    def _watch(self, client: mqtt.Client, sock: Any, write: bool) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if write else 0)
        try:
            self._selector.modify(sock, events, client)
        except (KeyError, ValueError):
            pass

    def _loop(self) -> None:
        next_misc = time.monotonic() + 1
        while self._running:
            for key, events in self._selector.select(timeout=0.2):
                if key.data is None:
                    self._wake_read.recv(4096)
                    continue
                client: mqtt.Client = key.data
                if events & selectors.EVENT_READ:
                    client.loop_read()
                if events & selectors.EVENT_WRITE and client.socket() is key.fileobj:
                    client.loop_write()
            while True:
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    break
                task()
            if time.monotonic() >= next_misc:
                for client in self.clients.values():
                    client.loop_misc()
                next_misc = time.monotonic() + 1

    def on_loop(self, task: Callable[[], Any]) -> Any:
        """Runs `task` on the selector thread and returns what it returned."""
        done: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._on_loop(lambda: done.put(task()))
        return done.get(timeout=COMMAND_TIMEOUT_S)

    # -- commands ----------------------------------------------------------------------------------------

    def connect_all(self, timeout_s: float) -> dict[str, Any]:
        """Every device connects, as fast as the connectors go; the time until the last CONNACK."""
        expected = {client_id: self.connacks.get(client_id, 0) + 1 for client_id in self.clients}
        start = time.monotonic()
        failures = [
            f"{client_id}: {error}"
            for client_id, error in self._connect_each(lambda _, c: c.connect(self._host, self._port, KEEP_ALIVE_S))
        ]
        return {**self._wait_for_connacks(expected, start, timeout_s), "connect_errors": failures}

    def storm(self, spread_s: float, timeout_s: float, seed: int) -> dict[str, Any]:
        """Every connection dropped at once, abruptly (the socket closed: no DISCONNECT, no TLS close_notify),
        as when a site loses its uplink; each device reconnects at a random moment within `spread_s`, as the
        SDKs' jittered retry does."""
        expected = {client_id: self.connacks.get(client_id, 0) + 1 for client_id in self.clients}

        def drop_all() -> None:
            for client in self.clients.values():
                sock = client.socket()
                if sock is not None:
                    self._unregister(sock)
                    sock.close()

        start = time.monotonic()
        self.on_loop(drop_all)
        dropped_s = time.monotonic() - start
        rng = random.Random(seed)
        delays = {client_id: rng.uniform(0, spread_s) for client_id in self.clients}

        def reconnect_at(client_id: str, client: mqtt.Client) -> None:
            time.sleep(max(0.0, start + delays[client_id] - time.monotonic()))
            client.reconnect()

        order = sorted(self.clients, key=delays.__getitem__)
        errors = self._connect_each(reconnect_at, order)
        return {
            **self._wait_for_connacks(expected, start, timeout_s),
            "dropped_s": dropped_s,
            "connect_errors": [f"{client_id}: {error}" for client_id, error in errors],
        }

    def publish(self, per_device: int, now_ms: int, timeout_s: float) -> dict[str, Any]:
        """Each device publishes `per_device` readings at QoS 1, back to back; the time until the last PUBACK."""
        with self._lock:
            first = self.pubacks
        total = per_device * len(self.clients)

        def publish_all() -> None:
            for thing_name, client in self.clients.items():
                for index in range(per_device):
                    kind = sorted(KINDS)[index % len(KINDS)]
                    # One reading a second per device, the last one now: each has its own timestamp.
                    reading = {"ts": now_ms - (per_device - 1 - index) * 1000, **KINDS[kind]}
                    client.publish(reading_topic(thing_name, index), json.dumps(reading), qos=1)

        start = time.monotonic()
        self.on_loop(publish_all)
        deadline = start + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                acknowledged = self.pubacks - first
            if acknowledged >= total:
                break
            time.sleep(0.01)
        return {"published": total, "acknowledged": acknowledged, "seconds": time.monotonic() - start}

    def disconnect_all(self, timeout_s: float) -> dict[str, Any]:
        """Every device disconnects cleanly (DISCONNECT, then the socket closed)."""
        with self._lock:
            self._expect_disconnect = set(self.clients)
        start = time.monotonic()
        self.on_loop(lambda: [client.disconnect() for client in self.clients.values()])
        deadline = start + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                left = len(self._expect_disconnect)
            if not left:
                break
            time.sleep(0.01)
        return {"disconnected": len(self.clients) - left, "seconds": time.monotonic() - start}

    def counters(self) -> dict[str, Any]:
        with self._lock:
            return {
                "connacks": dict(self.connacks),
                "refused": list(self.refused),
                "closed_by_endpoint": list(self.closed_by_endpoint),
            }

    def stop(self) -> None:
        self._connectors.shutdown(wait=True, cancel_futures=True)
        self._running = False
        self._thread.join(10)
        for client in self.clients.values():
            # paho closes its socket when the client is collected; the selector is gone by then.
            client.on_socket_close = client.on_socket_unregister_write = None
            sock = client.socket()
            if sock is not None:
                sock.close()

    def _connect_each(
        self, connect: Callable[[str, mqtt.Client], Any], order: list[str] | None = None
    ) -> list[tuple[str, str]]:
        futures = {
            client_id: self._connectors.submit(connect, client_id, self.clients[client_id])
            for client_id in order or self.clients
        }
        errors = []
        for client_id, future in futures.items():
            error = future.exception()
            if error is not None:
                errors.append((client_id, f"{type(error).__name__}: {error}"))
        return errors

    def _wait_for_connacks(self, expected: dict[str, int], start: float, timeout_s: float) -> dict[str, Any]:
        deadline = start + timeout_s
        while True:
            with self._lock:
                waiting = [c for c, count in expected.items() if self.connacks.get(c, 0) < count]
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        return {"connected": len(expected) - len(waiting), "seconds": time.monotonic() - start, "waiting": waiting[:5]}


def _serve(commands: Connection, devices: list[DeviceIdentity], host: str, port: int, ca_file: str) -> None:
    fleet = _Fleet(devices, host, port, ca_file)
    commands.send("ready")
    try:
        while True:
            name, arguments = commands.recv()
            if name == "stop":
                break
            try:
                commands.send(("ok", getattr(fleet, name)(**arguments)))
            except Exception as error:  # the parent reports it and stops the fleet
                commands.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        fleet.stop()
        commands.send(("ok", None))


class FleetProcess:
    """`with FleetProcess(devices, host, port, ca_file) as fleet:` the devices, in their own (spawned) process,
    which the block's end stops."""

    def __init__(self, devices: list[DeviceIdentity], host: str, port: int, ca_file: str) -> None:
        context = multiprocessing.get_context("spawn")  # the parent runs threads: no fork
        self._commands, theirs = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(theirs, devices, host, port, ca_file), name="device-fleet", daemon=True
        )

    def __enter__(self) -> FleetProcess:
        self._process.start()
        if not self._commands.poll(COMMAND_TIMEOUT_S) or self._commands.recv() != "ready":
            self._stop()
            raise RuntimeError("the device fleet did not start")
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop()

    def command(self, name: str, **arguments: Any) -> dict[str, Any]:
        self._commands.send((name, arguments))
        limit_s = arguments.get("timeout_s", 0) + COMMAND_TIMEOUT_S  # the command's own limit, and then some
        if not self._commands.poll(limit_s):
            raise RuntimeError(f"the device fleet did not answer {name} within {limit_s:g} s")
        status, answer = self._commands.recv()
        if status != "ok":
            raise RuntimeError(f"the device fleet failed {name}: {answer}")
        return answer

    def _stop(self) -> None:
        if self._process.is_alive():
            try:
                self._commands.send(("stop", {}))
                self._commands.poll(30)
            except (BrokenPipeError, OSError):
                pass
            self._process.join(30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
