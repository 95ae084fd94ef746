"""Firehose's delivery to Amazon S3, as the local runtime performs it for the delivery streams of the stack
(DirectPut, to a bucket of the stack): records wait in the stream's buffer and reach the bucket as one object
per flush, gzipped when the stream says GZIP, under the prefix with its `!{timestamp:...}` expressions
evaluated, and named as Firehose names its objects: `<prefix><stream>-1-<yyyy-MM-dd-HH-mm-ss>-<uuid>[.gz]`.

moto creates the streams (DescribeDeliveryStream answers as on AWS), but it delivers every PutRecord call at
once, as its own uncompressed object, under the prefix as written followed by `yyyy/MM/dd/HH/`: a user would
see the difference, so the rules' firehose actions hand their records to this module instead. A function's
own PutRecord calls still reach moto, and are delivered moto's way (the startup summary says so).

Firehose flushes a buffer once it holds SizeInMBs or its oldest record is IntervalInSeconds old; so does the
runtime while it runs (`run_for`), and every drain flushes whatever waits, so that a test reads the objects
right after `drain()`. The timestamps (prefix and name) are the oldest record's arrival, in UTC.
"""

from __future__ import annotations

import gzip
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from local_runtime.activity import ObjectDelivered, Observer
from local_runtime.errors import NotEmulated
from local_runtime.iot_sql.joda_time import UnsupportedPattern, compile_pattern

DEFAULT_BUFFER_MB = 5  # Firehose's defaults for an S3 destination
DEFAULT_INTERVAL_S = 300
COMPRESSIONS = {"UNCOMPRESSED": "", "GZIP": ".gz"}  # the emulated CompressionFormats and their file extensions
_MIB = 1 << 20
_EXPRESSION = re.compile(r"!\{([^:}]*):([^}]*)\}")
# Firehose appends this to a prefix that has no timestamp expression (or to no prefix at all).
_DEFAULT_TIME_PREFIX = "yyyy/MM/dd/HH/"
# Letters that java.time (Firehose's formatter) reads otherwise than Joda-Time, whose emulation formats here:
# Y is the week-based year there, e a localized day of week, and Z's longer forms differ.
_NOT_AS_IN_JAVA = "YeZ"


@dataclass(frozen=True)
class S3Delivery:
    """A delivery stream of the stack, and where and how it delivers."""

    stream: str  # its logical id
    name: str
    bucket: str
    prefix: str  # as the template writes it
    evaluate_prefix: Callable[[datetime], str]  # for a buffer whose oldest record arrived then
    compression: str  # a key of COMPRESSIONS
    buffer_mb: int
    interval_s: int


def compile_prefix(prefix: str, where: str) -> Callable[[datetime], str]:
    """The prefix as Firehose evaluates it; an expression other than `!{timestamp:<java.time pattern>}` is
    refused, naming `where` (its place in the template)."""
    parts: list[Callable[[datetime], str]] = []
    position = 0
    for match in _EXPRESSION.finditer(prefix):
        namespace, pattern = match.groups()
        if namespace != "timestamp":
            raise NotEmulated(f"{where}: the expression {match.group(0)} is not emulated (!{{timestamp:...}} is)")
        parts += [_literal(prefix[position : match.start()]), _timestamp(pattern, where)]
        position = match.end()
    parts.append(_literal(prefix[position:]))
    if position == 0:  # no timestamp expression
        parts.append(_timestamp(_DEFAULT_TIME_PREFIX, where))
    return lambda moment: "".join(part(moment) for part in parts)


def _literal(text: str) -> Callable[[datetime], str]:
    return lambda moment: text


def _timestamp(pattern: str, where: str) -> Callable[[datetime], str]:
    try:
        return compile_pattern(pattern, refused=_NOT_AS_IN_JAVA)
    except UnsupportedPattern as error:
        raise NotEmulated(f"{where}: !{{timestamp:{pattern}}} cannot be evaluated here: {error}") from None


@dataclass
class _Buffer:
    arrival: datetime  # of its oldest record
    records: list[bytes] = field(default_factory=list)
    size: int = 0


class DeliveryStreams:
    """The buffers of the stack's delivery streams, flushed into their buckets."""

    def __init__(self, streams: Mapping[str, S3Delivery], clients: Callable[[str], Any], observer: Observer) -> None:
        self._streams = streams  # by stream name
        self._clients = clients
        self._observer = observer
        self._buffers: dict[str, _Buffer] = {}

    def put(self, name: str, records: list[bytes]) -> None:
        """Records accepted by the stream `name` (PutRecord, PutRecordBatch)."""
        buffer = self._buffers.setdefault(name, _Buffer(datetime.now(timezone.utc)))
        buffer.records += records
        buffer.size += sum(len(record) for record in records)
        if buffer.size >= self._streams[name].buffer_mb * _MIB:
            self._flush(name)

    def flush_due(self) -> None:
        """Flushes the buffers whose oldest record has waited the stream's buffering interval."""
        now = time.time()
        for name, buffer in list(self._buffers.items()):
            if now - buffer.arrival.timestamp() >= self._streams[name].interval_s:
                self._flush(name)

    def flush(self) -> None:
        for name in list(self._buffers):
            self._flush(name)

    def _flush(self, name: str) -> None:
        stream, buffer = self._streams[name], self._buffers.pop(name)
        data = b"".join(buffer.records)
        # 1: the stream's version, which only a change of its configuration raises.
        suffix = f"{stream.name}-1-{buffer.arrival:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}{COMPRESSIONS[stream.compression]}"
        key = stream.evaluate_prefix(buffer.arrival) + suffix
        body = gzip.compress(data) if stream.compression == "GZIP" else data
        self._clients("s3").put_object(Bucket=stream.bucket, Key=key, Body=body)
        self._observer(ObjectDelivered(stream.stream, stream.bucket, key, len(buffer.records)))
