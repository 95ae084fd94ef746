"""Shared fixtures for the development PKI's tests: a fresh CA per test (EC keys are cheap) and a strict verifier."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import pytest
from cryptography import x509
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store

from device_pki import CertificateAuthority

VerifyAsClient = Callable[..., None]


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(common_name="Test Device CA")


@pytest.fixture
def verify_as_client(ca: CertificateAuthority) -> VerifyAsClient:
    """Check a certificate as a TLS server checks a client's, trusting only `ca`; raises VerificationError.

    Web PKI (RFC 5280 profile) insists on a subjectAltName in end-entity certificates; AWS IoT device
    certificates need none, so that one rule is relaxed and every other check (chain, signature, validity,
    key usage, extended key usage, key identifiers) stays.
    """
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )

    def verify(certificate: x509.Certificate, at: datetime | None = None) -> None:
        verifier = (
            PolicyBuilder()
            .store(Store([ca.certificate]))
            .time(at or datetime.now(timezone.utc))
            .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
            .build_client_verifier()
        )
        verifier.verify(certificate, [])

    return verify
