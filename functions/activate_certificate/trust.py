"""The trust material of each CA, fetched once and kept for a bounded time per container, so that activating
a device costs no call for it: the CA's certificate (IoT DescribeCACertificate), its revocation list and the
allow-list (objects of the trust bucket the app creates, which the operator maintains):

    crl/<caCertificateId>.crl   the CA's CRL, DER or PEM (the PKI tool's `crl` command writes one)
    allow-list.json             {"serialNumbers": ["<hex>", ...], "commonNames": ["<thing name>", ...]}

A CRL is refetched when older than the refresh period, conditionally (If-None-Match), so an unchanged one
costs a 304.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Generic, NamedTuple, TypeVar

from botocore.exceptions import ClientError
from cryptography import x509

from activate_certificate.checks import AllowList, TrustUnavailable

T = TypeVar("T")
ALLOW_LIST_KEY = "allow-list.json"


def crl_key(ca_certificate_id: str) -> str:
    return f"crl/{ca_certificate_id}.crl"


class _Cached(NamedTuple, Generic[T]):
    value: T
    etag: str | None
    fetched_at: float


class TrustStore:
    def __init__(self, iot: Any, s3: Any, bucket: str, refresh_seconds: int, clock: Callable[[], float] = time.monotonic):
        self._iot, self._s3, self._bucket = iot, s3, bucket
        self._refresh_seconds, self._clock = refresh_seconds, clock
        self._cas: dict[str, _Cached[x509.Certificate]] = {}
        self._crls: dict[str, _Cached[x509.CertificateRevocationList]] = {}
        self._allow_list: _Cached[AllowList] | None = None

    def ca_certificate(self, ca_certificate_id: str) -> x509.Certificate:
        cached = self._cas.get(ca_certificate_id)
        if cached is None or self._stale(cached):
            try:
                description = self._iot.describe_ca_certificate(certificateId=ca_certificate_id)
            except ClientError as error:
                if error.response["Error"]["Code"] == "ResourceNotFoundException":
                    raise TrustUnavailable("the CA named in the event is not registered") from None
                raise
            pem = description["certificateDescription"]["certificatePem"]
            cached = _Cached(x509.load_pem_x509_certificate(pem.encode()), None, self._clock())
            self._cas[ca_certificate_id] = cached
        return cached.value

    def revocation_list(self, ca_certificate_id: str) -> x509.CertificateRevocationList:
        cached = self._crls.get(ca_certificate_id)
        if cached is not None and not self._stale(cached):
            return cached.value
        body, etag = self._get(crl_key(ca_certificate_id), cached.etag if cached else None)
        if body is None and cached is not None:  # not modified
            self._crls[ca_certificate_id] = cached._replace(fetched_at=self._clock())
            return cached.value
        if body is None:
            raise TrustUnavailable(f"no revocation list for the CA at s3://{self._bucket}/{crl_key(ca_certificate_id)}")
        try:
            crl = (x509.load_pem_x509_crl if body.lstrip().startswith(b"-----") else x509.load_der_x509_crl)(body)
        except ValueError:
            raise TrustUnavailable("the CA's revocation list is not a CRL (DER or PEM)") from None
        self._crls[ca_certificate_id] = _Cached(crl, etag, self._clock())
        return crl

    def allow_list(self) -> AllowList:
        cached = self._allow_list
        if cached is not None and not self._stale(cached):
            return cached.value
        body, etag = self._get(ALLOW_LIST_KEY, cached.etag if cached else None)
        if body is None and cached is not None:
            self._allow_list = cached._replace(fetched_at=self._clock())
            return cached.value
        if body is None:
            raise TrustUnavailable(f"the allow-list is required and s3://{self._bucket}/{ALLOW_LIST_KEY} is missing")
        try:
            document = json.loads(body)
            allow_list = AllowList(
                frozenset(str(serial).lower() for serial in document.get("serialNumbers", [])),
                frozenset(str(name) for name in document.get("commonNames", [])),
            )
        except (ValueError, AttributeError, TypeError):
            raise TrustUnavailable(f"{ALLOW_LIST_KEY} is not the allow-list's JSON") from None
        self._allow_list = _Cached(allow_list, etag, self._clock())
        return allow_list

    def _stale(self, cached: _Cached[Any]) -> bool:
        return self._clock() - cached.fetched_at >= self._refresh_seconds

    def _get(self, key: str, etag: str | None) -> tuple[bytes | None, str | None]:
        """The object's body and ETag; (None, None) when it is missing or has not changed since `etag`."""
        request = {"Bucket": self._bucket, "Key": key}
        if etag:
            request["IfNoneMatch"] = etag
        try:
            response = self._s3.get_object(**request)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            # Without s3:ListBucket (not granted) a missing object answers AccessDenied rather than NoSuchKey.
            if code in ("NoSuchKey", "AccessDenied", "304", "NotModified"):
                return None, None
            raise
        return response["Body"].read(), response.get("ETag")
