"""The JITR samples' trust material (events/activate_certificate/public-certificates: the example CA, its CRL,
one device certificate per case) installed in an AWS (moto, in process or the local runtime's): the CA
registered with auto-registration, the device certificates registered as IoT's JITR registers them, the CRL in
the trust bucket. No private key is in the samples: none is needed to check a certificate."""

from __future__ import annotations

from typing import Any

from events import EVENTS_DIR

CERTIFICATES = EVENTS_DIR / "activate_certificate" / "public-certificates"
# What the app names the shared device policy and the fleet group with its default namePrefix.
POLICY, GROUP = "iot_backend_device", "iot_backend_fleet"
DEVICE_CASES = ("new", "already_active", "revoked", "expired", "bad_common_name", "unknown_ca")


def pem(name: str) -> str:
    return (CERTIFICATES / f"{name}.pem").read_text()


def install(iot: Any, s3: Any, bucket: str) -> dict[str, str]:
    """Registers the CA and every device certificate; returns the certificate id of each case."""
    ca = iot.register_ca_certificate(
        caCertificate=pem("ca"),
        verificationCertificate=pem("new"),  # moto does not check the proof of possession
        setAsActive=True,
        allowAutoRegistration=True,
    )["certificateId"]
    s3.put_object(Bucket=bucket, Key=f"crl/{ca}.crl", Body=(CERTIFICATES / "crl.pem").read_bytes())
    ids = {"ca": ca}
    for case in DEVICE_CASES:
        status = "ACTIVE" if case == "already_active" else "PENDING_ACTIVATION"
        if case == "unknown_ca":  # issued by a CA that is not registered
            registered = iot.register_certificate_without_ca(certificatePem=pem(case), status=status)
        else:
            registered = iot.register_certificate(certificatePem=pem(case), caCertificatePem=pem("ca"), status=status)
        ids[case] = registered["certificateId"]
    return ids


def status(iot: Any, certificate_id: str) -> str:
    return iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"]
