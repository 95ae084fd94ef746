"""The app's trust material in the embedded AWS: the CRLs `activate_certificate` reads from the trust bucket
(`crl/<caCertificateId>.crl`), put there as an operator uploads them on AWS (README, Onboarding). Without its
CA's CRL, the activation function leaves a JITR certificate PENDING_ACTIVATION, so a device's retries are
refused: `serve --crl` puts the CRLs in before the first device connects.
"""

from __future__ import annotations

from cryptography import x509

from local_runtime.account import ACCOUNT_ID, REGION
from local_runtime.errors import LocalRuntimeError
from local_runtime.iot_registry import IotRegistry
from local_runtime.runtime import LocalRuntime

TRUST_BUCKET_PATH = "/Activation/TrustBucket/"  # the bucket's CDK path, within the onboarding construct


def trust_bucket(runtime: LocalRuntime) -> str:
    """The name of the app's bucket of CA trust material."""
    names = [
        runtime.cloud.physical[resource.logical_id].ref
        for resource in runtime.cloud.created
        if resource.type == "AWS::S3::Bucket" and TRUST_BUCKET_PATH in (resource.cdk_path or "")
    ]
    if len(names) != 1:
        raise LocalRuntimeError(f"the app has {len(names)} trust buckets (one expected, at *{TRUST_BUCKET_PATH}*)")
    return names[0]


def put_crl(runtime: LocalRuntime, crl_bytes: bytes) -> str:
    """Puts a CRL (DER or PEM) where activate_certificate reads its CA's: the CA is the registered CA certificate
    whose key signed it. Returns that CA's certificate id."""
    try:
        crl = x509.load_pem_x509_crl(crl_bytes) if crl_bytes.lstrip().startswith(b"-----") else x509.load_der_x509_crl(crl_bytes)
    except ValueError as error:
        raise LocalRuntimeError(f"not a CRL (DER or PEM): {error}") from error
    signers = [ca for ca in IotRegistry(ACCOUNT_ID, REGION).ca_certificates() if _signed_by(crl, ca.pem)]
    if not signers:
        raise LocalRuntimeError(
            f"no CA certificate registered in the app signed the CRL of {crl.issuer.rfc4514_string()}: "
            "its CA must be in onboarding.certificateAuthorities"
        )
    for ca in signers:  # the same CA registered twice (two ids for one key) reads the same CRL
        key = f"crl/{ca.certificate_id}.crl"
        runtime.cloud.client("s3").put_object(Bucket=trust_bucket(runtime), Key=key, Body=crl_bytes)
    return signers[0].certificate_id


def _signed_by(crl: x509.CertificateRevocationList, ca_pem: str) -> bool:
    certificate = x509.load_pem_x509_certificate(ca_pem.encode())
    if certificate.subject != crl.issuer:
        return False
    try:
        return crl.is_signature_valid(certificate.public_key())  # type: ignore[arg-type]
    except TypeError:  # a key that cannot sign (X25519...): not this CRL's CA
        return False
