"""JITR activation of one certificate-registered event: decide, then provision or revoke.

Only a PENDING_ACTIVATION certificate is worked on. One that is ACTIVE (activated by an earlier delivery of
the same event, or provisioned by JITP), REVOKED or INACTIVE is left as it is: a repeated event changes
nothing, and nothing here ever reactivates a certificate someone turned off.
"""

from __future__ import annotations

import datetime
from typing import Any, NamedTuple

from cryptography import x509

from activate_certificate import steps
from activate_certificate.checks import check_certificate, serial_hex, thing_attributes
from activate_certificate.models import CertificateRegistered
from activate_certificate.trust import TrustStore
from event_processing.fields import MalformedEvent


class Settings(NamedTuple):
    policy_name: str
    thing_group_name: str
    require_allow_list: bool


class Outcome(NamedTuple):
    result: str  # the metric: CertificatesActivated, CertificatesRevoked or AlreadyDecided
    thing_name: str | None = None
    reason: str | None = None  # why it was revoked, or what status it already had
    serial: str | None = None


def activate(
    event: CertificateRegistered, iot: Any, trust: TrustStore, settings: Settings, now: datetime.datetime
) -> Outcome:
    description = steps.describe_certificate(iot, event.certificateId)
    status = description["status"]
    if status != "PENDING_ACTIVATION":
        return Outcome("AlreadyDecided", reason=f"the certificate is {status}")
    if description.get("caCertificateId", event.caCertificateId) != event.caCertificateId:
        # IoT says which CA registered the certificate; an event that names another one is not IoT's. (The
        # signature check below decides in any case: moto's description leaves the CA out.)
        raise MalformedEvent("the event's caCertificateId is not the certificate's CA")
    certificate = x509.load_pem_x509_certificate(description["certificatePem"].encode())
    verdict = check_certificate(
        certificate,
        trust.ca_certificate(event.caCertificateId),
        trust.revocation_list(event.caCertificateId),
        trust.allow_list() if settings.require_allow_list else None,
        now,
    )
    serial = serial_hex(certificate)
    if verdict.rejection is not None:
        steps.revoke(iot, event.certificateId)
        return Outcome("CertificatesRevoked", reason=verdict.rejection, serial=serial)
    assert verdict.thing_name is not None
    steps.provision(
        iot,
        certificate_arn=description["certificateArn"],
        certificate_id=event.certificateId,
        thing_name=verdict.thing_name,
        attributes=thing_attributes(certificate, event.caCertificateId),
        policy_name=settings.policy_name,
        thing_group_name=settings.thing_group_name,
    )
    return Outcome("CertificatesActivated", thing_name=verdict.thing_name, serial=serial)
