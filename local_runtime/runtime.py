"""The local runtime as one object: the assembly, the embedded AWS, the functions, and (on first use) the
event sources and rules. `with LocalRuntime(...) as runtime:` starts it; leaving the block, however it is
left, stops every worker process and the embedded AWS."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

from local_runtime.activity import Activity, Observer, Published, RuleFired
from local_runtime.assembly import FunctionSpec, Stack, find_functions, load_stack
from local_runtime.async_invocations import EVENT_INVOKE_CONFIG, AsyncInvocations, load_async_settings
from local_runtime.authorizers import Authorizer, Connection, Decision, authorize, load_authorizers
from local_runtime.broker import Broker
from local_runtime.cloud import CREATED_TYPES, NAMED_TYPES, EmbeddedAws, IgnoredProperty
from local_runtime.device_defender import MitigationTasks
from local_runtime.errors import LocalRuntimeError
from local_runtime.event_sources import MAPPING, PERMISSION, EventSources, load_mappings, load_sns_subscriptions
from local_runtime.firehose import DeliveryStreams
from local_runtime.functions import Invocation, LocalFunctions
from local_runtime.rules import NO_CLIENT, RulesEngine, load_rules
from local_runtime.topics import TopicFilter

DEFAULT_DRAIN_TIMEOUT_S = 60.0
_RUN_TYPES = {*CREATED_TYPES, *NAMED_TYPES, MAPPING, PERMISSION, EVENT_INVOKE_CONFIG}


class LocalRuntime:
    def __init__(
        self,
        assembly_dir: Path,
        *,
        stack: str | None = None,
        observer: Observer | None = None,
        drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S,
    ) -> None:
        self.stack: Stack = load_stack(assembly_dir, stack)
        self.function_specs: list[FunctionSpec] = find_functions(self.stack)
        self.activities: list[Activity] = []
        self.drain_timeout_s = drain_timeout_s
        self._observer = observer
        self._cloud: EmbeddedAws | None = None
        self._functions: LocalFunctions | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._event_sources: EventSources | None = None
        self._rules: RulesEngine | None = None
        self._authorizers: dict[str, Authorizer] | None = None

    def __enter__(self) -> LocalRuntime:
        self._workdir = tempfile.TemporaryDirectory(prefix="local-runtime-")
        try:
            self._cloud = EmbeddedAws(self.stack).__enter__()
            self._functions = LocalFunctions(self.function_specs, self._cloud, Path(self._workdir.name))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        try:
            if self._functions is not None:
                self._functions.stop()
        finally:
            try:
                if self._cloud is not None:
                    self._cloud.__exit__(None, None, None)
            finally:
                if self._workdir is not None:
                    self._workdir.cleanup()

    @property
    def cloud(self) -> EmbeddedAws:
        assert self._cloud is not None, "use the runtime in a `with` block"
        return self._cloud

    @property
    def functions(self) -> LocalFunctions:
        assert self._functions is not None, "use the runtime in a `with` block"
        return self._functions

    def start_event_flow(self) -> RulesEngine:
        """Loads the event sources and the rules (refusing what they use that is not emulated)."""
        if self._rules is None:
            cloud, functions = self.cloud, self.functions
            async_invocations = AsyncInvocations(
                load_async_settings(self.stack, cloud, functions), cloud.client, functions, self._record
            )
            mappings = load_mappings(self.stack, cloud, functions)
            sns_subscriptions = load_sns_subscriptions(cloud, functions)
            delivery_streams = DeliveryStreams(cloud.delivery_streams, cloud.client, self._record)
            rules = RulesEngine(
                load_rules(self.stack, cloud, functions), cloud, async_invocations, delivery_streams, self._record
            )
            self._event_sources = EventSources(
                mappings,
                sns_subscriptions,
                async_invocations,
                Broker(functions.outbox, rules.publish, self._record),
                delivery_streams,
                MitigationTasks(cloud.device_defender, cloud.client, self._record),
                cloud.client("sqs"),
                self._record,
            )
            self._rules = rules
        return self._rules

    @property
    def event_sources(self) -> EventSources:
        self.start_event_flow()
        assert self._event_sources is not None
        return self._event_sources

    def invoke(self, function: str, event: Any) -> Invocation:
        return self.functions.get(function).invoke(event)

    def publish(
        self,
        topic: str,
        payload: bytes,
        client_id: str = NO_CLIENT,
        principal: str | None = None,
        *,
        delivered: bool = False,
    ) -> list[RuleFired]:
        """Runs the rules on one message; the functions run when the event sources poll (`drain`, `run_for`).
        `delivered`: the device endpoint's broker has sent it to the subscribed devices already."""
        return self.start_event_flow().publish(topic, payload, client_id, principal, delivered=delivered)

    @property
    def authorizers(self) -> dict[str, Authorizer]:
        """The stack's custom authorizers by name (loaded on first use, refusing what is not emulated)."""
        if self._authorizers is None:
            self._authorizers = load_authorizers(self.stack, self.cloud, self.functions)
        return self._authorizers

    def authorize(self, authorizer: str, connection: Connection) -> Decision:
        """What IoT Core decides for a device connecting through the named custom authorizer."""
        if authorizer not in self.authorizers:
            known = ", ".join(sorted(self.authorizers)) or "none"
            raise LocalRuntimeError(f"No custom authorizer {authorizer!r} in the stack (it has: {known})")
        return authorize(self.authorizers[authorizer], connection)

    def run_for(self, seconds: float) -> None:
        self.event_sources.run_for(seconds)

    def drain(self) -> None:
        """Runs the event sources until the queues are empty and the functions' messages routed, then flushes
        the delivery streams (their objects are in S3 when it returns)."""
        self.event_sources.drain(self.drain_timeout_s)

    def published_to(self, topic_filter: str) -> list[Published]:
        """The messages the functions published to topics `topic_filter` matches (MQTT's + and #), in order: what a
        device subscribed to it has received from them once the event sources polled (`drain`, `run_for`)."""
        subscription = TopicFilter.parse(topic_filter, "published_to")
        return [a for a in self.activities if isinstance(a, Published) and subscription.matches(a.topic)]

    def not_emulated(self) -> Counter[str]:
        """Resource types of the stack the runtime neither creates nor runs, with their counts (a `Custom::AWS`
        whose call it made counts as created)."""
        return Counter(
            r.type
            for r in self.stack.resources.values()
            if r.type not in _RUN_TYPES and r.logical_id not in self.cloud.physical
        )

    @property
    def ignored_properties(self) -> list[IgnoredProperty]:
        return self.cloud.ignored

    def _record(self, activity: Activity) -> None:
        self.activities.append(activity)
        if self._observer is not None:
            self._observer(activity)
