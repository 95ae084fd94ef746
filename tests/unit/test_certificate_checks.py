"""The checks JITR makes of a device certificate, on plain values made by the project's PKI tool."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509

from activate_certificate.checks import AllowList, TrustUnavailable, check_certificate
from device_pki import CertificateAuthority



def now() -> datetime.datetime:
    # Read per check: certificates are issued valid from the second they are made.
    return datetime.datetime.now(datetime.timezone.utc)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(common_name="Checks CA")


def crl_of(ca: CertificateAuthority, **options: object) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(ca.crl(**options))  # type: ignore[arg-type]


def test_a_good_certificate_passes_and_names_its_thing(ca: CertificateAuthority) -> None:
    device = ca.issue_device("sensor-1")
    assert check_certificate(device.certificate, ca.certificate, crl_of(ca), None, now()) == ("sensor-1", None)


def test_not_yet_valid_is_rejected(ca: CertificateAuthority) -> None:
    later = now() + datetime.timedelta(days=1)
    device = ca.issue_device("sensor-2", not_before=later, not_after=later + datetime.timedelta(days=30))
    verdict = check_certificate(device.certificate, ca.certificate, crl_of(ca), None, now())
    assert verdict.rejection == "the certificate is outside its validity period"


@pytest.mark.parametrize(
    ("allow_list", "accepted"),
    [
        (AllowList(frozenset(), frozenset({"sensor-3"})), True),
        (AllowList(frozenset(), frozenset({"sensor-4"})), False),
        (AllowList(frozenset(), frozenset()), False),
    ],
)
def test_the_allow_list_admits_by_common_name(ca: CertificateAuthority, allow_list: AllowList, accepted: bool) -> None:
    device = ca.issue_device("sensor-3")
    verdict = check_certificate(device.certificate, ca.certificate, crl_of(ca), allow_list, now())
    assert (verdict.rejection is None) is accepted
    if not accepted:
        assert verdict.rejection == "the certificate is not on the allow-list"


def test_the_allow_list_admits_by_serial_number(ca: CertificateAuthority) -> None:
    device = ca.issue_device("sensor-5")
    allow_list = AllowList(frozenset({device.serial_hex}), frozenset())
    assert check_certificate(device.certificate, ca.certificate, crl_of(ca), allow_list, now()).rejection is None


def test_a_revocation_list_past_its_next_update_is_a_doubt_not_a_verdict(ca: CertificateAuthority) -> None:
    device = ca.issue_device("sensor-6")
    stale = crl_of(ca, last_update=now() - datetime.timedelta(days=10), next_update_days=1)
    with pytest.raises(TrustUnavailable, match="out of date"):
        check_certificate(device.certificate, ca.certificate, stale, None, now())


def test_a_revocation_list_of_another_ca_is_a_doubt_not_a_verdict(ca: CertificateAuthority) -> None:
    device = ca.issue_device("sensor-7")
    other = CertificateAuthority.create(common_name="Checks CA")  # the same name, another key
    with pytest.raises(TrustUnavailable, match="not signed by the CA"):
        check_certificate(device.certificate, ca.certificate, crl_of(other), None, now())


def test_a_common_name_with_characters_a_thing_name_forbids_is_rejected(ca: CertificateAuthority) -> None:
    device = ca.issue_device("a:b_c-d" * 9)  # 63 characters of allowed ones: fine
    assert check_certificate(device.certificate, ca.certificate, crl_of(ca), None, now()).rejection is None
    spaced = ca.issue_device("sensor 8")
    assert check_certificate(spaced.certificate, ca.certificate, crl_of(ca), None, now()).rejection == (
        "the certificate's common name is not a valid thing name"
    )
