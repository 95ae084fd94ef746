"""A development PKI for AWS IoT device onboarding: a CA, its registration (verification) certificate, device
certificates whose CN is the thing name, revocation and CRLs, and a local endpoint's server certificate, for tests
and the local runtime (not production).

    from device_pki import CertificateAuthority
    ca = CertificateAuthority.create(common_name="Example Device CA")
    device = ca.issue_device("sensor-1")
    ca.revoke(device.serial)
    crl_der = ca.crl()

The same from a shell: `python -m device_pki --help`.
"""

from __future__ import annotations

from device_pki.authority import CertificateAuthority, IssuedCertificate, KeyType, PkiError, format_serial, parse_serial

__all__ = ["CertificateAuthority", "IssuedCertificate", "KeyType", "PkiError", "format_serial", "parse_serial"]
