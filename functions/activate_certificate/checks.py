"""The checks a device certificate must pass before JITR activates it, on plain values: the certificate, its
CA's certificate, the CA's revocation list and the optional allow-list. No AWS here.

A check that fails is a verdict (the certificate is revoked); trust material that is missing or cannot be
trusted (no CRL, a CRL not signed by the CA or out of date) is not a verdict but a doubt: it raises
TrustUnavailable, and the certificate is left PENDING_ACTIVATION until the operator fixes it.
"""

from __future__ import annotations

import datetime
import re
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

# IoT thing names: 1-128 of letters, digits, ':', '_' and '-'.
THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")


class TrustUnavailable(Exception):
    """The trust material needed to decide is missing or cannot be trusted: decide later, not now."""


class AllowList(NamedTuple):
    """Serial numbers (lower-case hex, as AWS and the PKI tool show them) and common names from the
    manufacturing manifest."""

    serial_numbers: frozenset[str]
    common_names: frozenset[str]


class Verdict(NamedTuple):
    thing_name: str | None
    rejection: str | None  # why the certificate must be revoked; None when it passed every check


def serial_hex(certificate: x509.Certificate) -> str:
    return format(certificate.serial_number, "x")


def common_name(certificate: x509.Certificate) -> str | None:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not isinstance(names[0].value, str):
        return None
    return names[0].value


def check_revocation_list(crl: x509.CertificateRevocationList, ca: x509.Certificate, now: datetime.datetime) -> None:
    """Raises TrustUnavailable unless the CRL is the CA's own and current."""
    if crl.issuer != ca.subject or not crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
        raise TrustUnavailable("the revocation list is not signed by the CA")
    if crl.next_update_utc is None or crl.next_update_utc < now:
        raise TrustUnavailable("the revocation list is out of date (past its next update)")


def check_certificate(
    certificate: x509.Certificate,
    ca: x509.Certificate,
    crl: x509.CertificateRevocationList,
    allow_list: AllowList | None,
    now: datetime.datetime,
) -> Verdict:
    """Every check, in order; the first that fails is the rejection."""
    check_revocation_list(crl, ca, now)
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return Verdict(None, "the certificate is not issued by the CA named in the event")
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        return Verdict(None, "the certificate is outside its validity period")
    if crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None:
        return Verdict(None, "the certificate's serial number is on the CA's revocation list")
    name = common_name(certificate)
    if name is None or not THING_NAME.fullmatch(name):
        return Verdict(None, "the certificate's common name is not a valid thing name")
    if allow_list is not None and serial_hex(certificate) not in allow_list.serial_numbers and (
        name not in allow_list.common_names
    ):
        return Verdict(None, "the certificate is not on the allow-list")
    return Verdict(name, None)


def thing_attributes(certificate: x509.Certificate, ca_certificate_id: str) -> dict[str, str]:
    """What the thing records of the certificate it was created for: a later certificate with the same name
    (another device, or a re-keyed one) then does not match it and is left to the operator."""
    return {"certificateSerial": serial_hex(certificate), "caCertificateId": ca_certificate_id}
