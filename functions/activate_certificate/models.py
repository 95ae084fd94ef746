"""The certificate-registered event IoT Core publishes on $aws/events/certificates/registered/<caCertificateId>
when it registers a device certificate of a CA with auto-registration on (JITR), and again whenever a
PENDING_ACTIVATION certificate connects."""

from __future__ import annotations

import re
from typing import Any, Mapping, NamedTuple

from event_processing.fields import MalformedEvent, decode_object, text, whole_number

_CERTIFICATE_ID = re.compile(r"[0-9a-f]{64}")


class CertificateRegistered(NamedTuple):
    certificateId: str
    caCertificateId: str
    certificateStatus: str
    awsAccountId: str
    timestamp: int


def _certificate_id(event: Mapping[str, Any], field: str) -> str:
    value = text(event, field, max_length=64)
    if not _CERTIFICATE_ID.fullmatch(value):
        raise MalformedEvent(f"{field} must be 64 lower-case hex digits")
    return value


def parse_certificate_registered(body: str) -> CertificateRegistered:
    event = decode_object(body)
    return CertificateRegistered(
        certificateId=_certificate_id(event, "certificateId"),
        caCertificateId=_certificate_id(event, "caCertificateId"),
        certificateStatus=text(event, "certificateStatus", max_length=32),
        awsAccountId=text(event, "awsAccountId", max_length=12),
        timestamp=whole_number(event, "timestamp"),
    )
