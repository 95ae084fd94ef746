"""Telemetry: device data on `dt/<app>/<thing>/<kind>`, one rule per kind into `ingest_telemetry`, and the raw
archive, which needs no code (a rule, Firehose, S3)."""

from stacks.telemetry.archive import RawArchive
from stacks.telemetry.ingestion import TelemetryIngestion

__all__ = ["RawArchive", "TelemetryIngestion"]
