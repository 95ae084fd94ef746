"""The IoT registry as the device endpoint reads it at every connection: certificates and CA certificates, the
thing named after the client ID and its principals, the policies of a certificate and of its thing's groups.

It is read in process, from the embedded AWS's IoT state (moto's backend, which moto's server and so every API
call of the app's functions share), not through IoT's API: a certificate connection reads the registry about
eight times, a reconnect storm of a thousand devices eight thousand times, and through moto's HTTP server each
read cost the process's one interpreter lock a few milliseconds of HTTP and serialization on both sides; most of
a connection's cost. What is read is what the API would answer, from the same objects.

Writes are not made here: what IoT itself writes because of a connection (JITR's RegisterCertificate, JITP's
provisioning) stays an API call, through the same server the functions use.

moto's server threads change these objects while the endpoint reads them. A read copies what it needs; one that
meets a collection changing under it (Python's "changed size during iteration") is made again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

_Read = TypeVar("_Read")
_ATTEMPTS = 5
# Where device_certificates.install() keeps a CA certificate's auto-registration status, which moto drops.
AUTO_REGISTRATION = "local_runtime_auto_registration_status"


@dataclass(frozen=True)
class Certificate:
    certificate_id: str
    arn: str
    status: str
    pem: str
    ca_certificate_id: str | None  # the registered CA it was registered with (RegisterCertificate's caCertificatePem)
    creation_date: datetime


@dataclass(frozen=True)
class CaCertificate:
    certificate_id: str
    pem: str
    status: str
    auto_registration: str  # ENABLE or DISABLE
    registration_config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Thing:
    name: str
    type_name: str | None
    attributes: dict[str, str]


@dataclass(frozen=True)
class ThingGroup:
    name: str
    arn: str
    dynamic: bool  # a dynamic group cannot have policies
    ancestor_arns: tuple[str, ...]  # root first, as rootToParentThingGroups lists them


class IotRegistry:
    """One account's and region's IoT registry, as the API would answer it."""

    def __init__(self, account: str, region: str) -> None:
        self._account, self._region = account, region

    def certificate(self, certificate_id: str) -> Certificate | None:
        """DescribeCertificate, or None for a certificate not registered."""

        def read() -> Certificate | None:
            found = self._backend().certificates.get(certificate_id)
            return None if found is None else _certificate(found)

        return _consistent(read)

    def certificates_without_ca(self) -> list[Certificate]:
        """The certificates registered without a CA certificate (RegisterCertificateWithoutCA, or without
        caCertificatePem): their own trust anchors."""
        return _consistent(
            lambda: [_certificate(c) for c in list(self._backend().certificates.values()) if c.ca_certificate_id is None]
        )

    def ca_certificates(self) -> list[CaCertificate]:
        """ListCACertificates, each with DescribeCACertificate's pem, status, auto-registration and registration
        configuration."""

        def read() -> list[CaCertificate]:
            return [
                CaCertificate(
                    certificate_id=ca.certificate_id,
                    pem=ca.certificate_pem,
                    status=ca.status,
                    auto_registration=getattr(ca, AUTO_REGISTRATION, "DISABLE"),
                    registration_config=dict(ca.registration_config or {}),
                )
                for ca in list(self._backend().ca_certificates.values())
            ]

        return _consistent(read)

    def thing(self, thing_name: str) -> Thing | None:
        """DescribeThing, or None for no such thing."""
        from moto.iot.exceptions import ResourceNotFoundException

        def read() -> Thing | None:
            try:
                found = self._backend().describe_thing(thing_name)
            except ResourceNotFoundException:
                return None
            type_name = found.thing_type.thing_type_name if found.thing_type is not None else None
            return Thing(found.thing_name, type_name, dict(found.attributes or {}))

        return _consistent(read)

    def thing_principals(self, thing_name: str) -> list[str]:
        """ListThingPrincipals: the ARNs of the certificates attached to the thing."""
        from moto.iot.exceptions import ResourceNotFoundException

        def read() -> list[str]:
            try:
                return list(self._backend().list_thing_principals(thing_name))
            except ResourceNotFoundException:
                return []

        return _consistent(read)

    def attached_policies(self, target_arn: str) -> list[str]:
        """ListAttachedPolicies: the names of the policies attached to a certificate or a thing group."""
        return _consistent(lambda: [policy.name for policy in self._backend().list_attached_policies(target_arn)])

    def thing_groups(self, thing_name: str) -> list[ThingGroup]:
        """ListThingGroupsForThing, each described (DescribeThingGroup): dynamic or not, and its ancestors."""
        from moto.iot.exceptions import ResourceNotFoundException

        def read() -> list[ThingGroup]:
            backend = self._backend()
            try:
                listed = backend.list_thing_groups_for_thing(thing_name)
            except ResourceNotFoundException:
                return []
            groups = []
            for group in listed:
                described = backend.describe_thing_group(group["groupName"]).to_dict()
                ancestors = described.get("thingGroupMetadata", {}).get("rootToParentThingGroups", [])
                groups.append(
                    ThingGroup(
                        name=group["groupName"],
                        arn=group["groupArn"],
                        dynamic="queryString" in described,
                        ancestor_arns=tuple(ancestor["groupArn"] for ancestor in ancestors),
                    )
                )
            return groups

        return _consistent(read)

    def policy_document(self, policy_name: str) -> str | None:
        """GetPolicy's policyDocument (its default version), or None for no such policy."""
        from moto.iot.exceptions import ResourceNotFoundException

        def read() -> str | None:
            try:
                return self._backend().get_policy(policy_name).document
            except ResourceNotFoundException:
                return None

        return _consistent(read)

    def _backend(self) -> Any:
        from moto.iot.models import iot_backends  # moto loads its backends lazily: so does this

        return iot_backends[self._account][self._region]


def _certificate(found: Any) -> Certificate:
    return Certificate(
        certificate_id=found.certificate_id,
        arn=found.arn,
        status=found.status,
        pem=found.certificate_pem,
        ca_certificate_id=found.ca_certificate_id,
        # moto keeps naive datetimes in UTC
        creation_date=found.creation_date.replace(tzinfo=found.creation_date.tzinfo or timezone.utc),
    )


def _consistent(read: Callable[[], _Read]) -> _Read:
    for attempt in range(_ATTEMPTS):
        try:
            return read()
        except RuntimeError as error:  # a collection changed size under the read, in one of moto's threads
            if "changed size during iteration" not in str(error) or attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
