"""Device certificates at the local device endpoint, as IoT Core's device gateway treats them: the endpoint's own
TLS identity, which client certificates the TLS layer lets through, and IoT's decision on each one (JITR, JITP,
the certificate's status).

What AWS documents, and this module follows:
- Server authentication: the device verifies the endpoint's certificate against a CA it trusts; here a local CA
  (EndpointCredentials), whose file the device is given instead of Amazon's root CAs.
  https://docs.aws.amazon.com/iot/latest/developerguide/server-authentication.html
- Client authentication: a device certificate is accepted when it is registered with IoT, or issued by a CA
  certificate registered with IoT (JITR/JITP); it must be ACTIVE to connect.
  https://docs.aws.amazon.com/iot/latest/developerguide/x509-client-certs.html
- JITR: a certificate unknown to IoT, of a CA whose auto-registration is ENABLE, is registered PENDING_ACTIVATION
  and IoT publishes on `$aws/events/certificates/registered/<caCertificateId>`; it publishes there again whenever
  a client presents a PENDING_ACTIVATION certificate. The connection does not go on: the app activates it.
  https://docs.aws.amazon.com/iot/latest/developerguide/auto-register-device-cert.html
- JITP: a CA with a provisioning template (registrationConfig templateName, or the older templateBody) provisions
  the certificate from it: registered PENDING_ACTIVATION, then the thing, the policy, both attached, the status
  ACTIVE last. The first connection is dropped all the same (AWS's own samples connect twice; device SDKs retry).
  The docs document the certificate-registered event for JITR, not JITP, and the app's JITP design relies on no
  function running: none is published. The parameters come from the certificate: the subject's attributes,
  SerialNumber (its serial, as hex, the form IoT shows) and Id (IoT's certificate id); a declared parameter
  the certificate cannot fill fails the provisioning, as on AWS.
  https://docs.aws.amazon.com/iot/latest/developerguide/jit-provisioning.html
  https://docs.aws.amazon.com/iot/latest/developerguide/provision-template.html

What moto 5.2.5 lacks of IoT's CA API, completed by `install()` (moto keeps the rest):
- A CA certificate's ARN is a certificate's (`:cert/<id>`): made IoT's (`:cacert/<id>`), which IAM policies name.
- ListCACertificates is not answered: answered here (templateName filter included; one page).
- RegisterCACertificate ignores allowAutoRegistration and UpdateCACertificate newAutoRegistrationStatus, and
  DescribeCACertificate has no autoRegistrationStatus: kept on moto's CA object and described, DISABLE unless
  asked, as on AWS. (registrationConfig is kept by moto; removeAutoRegistration is refused, not emulated.)
- ListCertificates has no CA id (nor has AWS's), DescribeCertificate no caCertificateId and a made-up validity:
  so the certificates registered without a CA are found as those no ListCertificatesByCA lists, and validity is
  read from the certificate itself.
moto has no provisioning templates: the stack's are kept by the runtime (ProvisioningTemplates), not in moto.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from device_pki import CertificateAuthority, PkiError, format_serial
from local_runtime.assembly import Stack
from local_runtime.errors import NotEmulated
from local_runtime.intrinsics import Resolver
from local_runtime.iot_registry import AUTO_REGISTRATION, CaCertificate, IotRegistry

logger = logging.getLogger(__name__)

ACTIVE, PENDING_ACTIVATION = "ACTIVE", "PENDING_ACTIVATION"
REGISTERED_TOPIC = "$aws/events/certificates/registered/{}"
JITP = "JITP"
SERVER_NAMES = {"dns_names": ("localhost",), "ip_addresses": ("127.0.0.1", "::1")}
_SERVER_FILE = "server"  # server.pem and server.key, beside the CA's ca.pem, ca.key and state.json
# A server certificate is reissued when it has less than this left, so a running endpoint never outlives it.
_SERVER_RENEWAL = timedelta(days=30)
DEFAULT_TRUST_MAX_AGE_S = 0.5

# The certificate parameters IoT fills, from the subject's attributes (and SerialNumber, Id: see _parameters).
_SUBJECT_PARAMETERS = {
    "AWS::IoT::Certificate::Country": NameOID.COUNTRY_NAME,
    "AWS::IoT::Certificate::Organization": NameOID.ORGANIZATION_NAME,
    "AWS::IoT::Certificate::OrganizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "AWS::IoT::Certificate::DistinguishedNameQualifier": NameOID.DN_QUALIFIER,
    "AWS::IoT::Certificate::StateName": NameOID.STATE_OR_PROVINCE_NAME,
    "AWS::IoT::Certificate::CommonName": NameOID.COMMON_NAME,
}
SERIAL_NUMBER, CERTIFICATE_ID = "AWS::IoT::Certificate::SerialNumber", "AWS::IoT::Certificate::Id"
_THING, _CERTIFICATE, _POLICY = "AWS::IoT::Thing", "AWS::IoT::Certificate", "AWS::IoT::Policy"
_PROPERTIES = {
    _THING: {"ThingName", "AttributePayload", "ThingTypeName", "ThingGroups"},
    _CERTIFICATE: {"CertificateId", "Status"},
    _POLICY: {"PolicyName", "PolicyDocument"},
}
_OVERRIDES = {
    _THING: {
        "AttributePayload": {"DO_NOTHING", "REPLACE", "FAIL", "MERGE"},
        "ThingTypeName": {"DO_NOTHING", "REPLACE", "FAIL"},
        "ThingGroups": {"DO_NOTHING", "REPLACE", "FAIL", "MERGE"},
    },
    _CERTIFICATE: {"Status": {"DO_NOTHING", "REPLACE", "FAIL"}},
    _POLICY: {},
}


# --- the endpoint's TLS identity ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointCredentials:
    """The endpoint's own TLS identity: a local root CA and a server certificate for localhost, 127.0.0.1 and ::1,
    issued by it, in a folder (created on first use, reused after; private key files 0600). The CA file is what
    devices use for server verification (the command prints it)."""

    ca_file: Path
    certificate_file: Path
    key_file: Path

    @classmethod
    def in_folder(cls, folder: Path) -> EndpointCredentials:
        try:
            authority = CertificateAuthority.load(folder)
        except PkiError:
            if any(folder.glob("ca.*")):
                raise  # a damaged CA is the user's to look at, not to overwrite
            authority = CertificateAuthority.create(common_name="Local IoT endpoint CA")
            authority.save(folder)
        certificate_file, key_file = folder / f"{_SERVER_FILE}.pem", folder / f"{_SERVER_FILE}.key"
        if not _server_certificate_usable(certificate_file, key_file, authority):
            server = authority.issue_server("localhost", **SERVER_NAMES)
            server.save(folder, _SERVER_FILE)
            authority.save(folder)  # its state records the serial it issued
        return cls(folder / "ca.pem", certificate_file, key_file)


def _server_certificate_usable(certificate_file: Path, key_file: Path, authority: CertificateAuthority) -> bool:
    if not (certificate_file.is_file() and key_file.is_file()):
        return False
    try:
        certificate = x509.load_pem_x509_certificate(certificate_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        certificate.verify_directly_issued_by(authority.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    now = datetime.now(timezone.utc)
    return (
        key.public_key() == certificate.public_key()
        and certificate.not_valid_before_utc <= now
        and now + _SERVER_RENEWAL < certificate.not_valid_after_utc
    )


# --- which client certificates the TLS layer lets through ------------------------------------------------------


class DeviceTrust:
    """Which client certificates the TLS layer lets through: the CA certificates registered in the embedded AWS
    (ACTIVE ones; plus the device certificates registered without a CA, as trust anchors with
    ssl.VERIFY_X509_PARTIAL_CHAIN), read live, because CAs and certificates are registered while the endpoint runs.

    A client without a certificate, or with one no trust anchor verifies (unknown CA, expired, not yet valid), is
    refused at the handshake, as IoT's mTLS endpoint refuses it; admit() decides on the others.

    Each handshake takes the trust store of the registered set as last read; the set is read again when that read
    is older than `max_age_s`. So a CA registered while the endpoint runs is trusted from at most `max_age_s` later
    (0: from the next handshake), and a reconnect storm costs one read per `max_age_s`, not one per device. The
    read happens in the handshake (the SNI callback, in the caller's thread or event loop), in process (iot_registry).
    """

    def __init__(
        self,
        registry: IotRegistry,
        credentials: EndpointCredentials,
        *,
        max_age_s: float = DEFAULT_TRUST_MAX_AGE_S,
        alpn_protocols: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._credentials = credentials
        self._max_age_s = max_age_s
        self._alpn_protocols = alpn_protocols
        self._clock = clock
        self._lock = threading.Lock()
        self._pems: dict[str, str] = {}  # by certificate id
        self._contexts: dict[tuple[tuple[str, ...], tuple[str, ...]], ssl.SSLContext] = {}
        self._current: ssl.SSLContext | None = None
        self._read_at = float("-inf")

    def server_context(self) -> ssl.SSLContext:
        """For the mTLS listener: requires a client certificate and, at each handshake, swaps in the context whose
        trust store is the registered set (rebuilt only when the set changed)."""
        context = self._context(self._registered_set())
        context.sni_callback = self._select_context
        return context

    def _select_context(self, ssl_object: ssl.SSLObject | ssl.SSLSocket, _server_name: str | None, _: Any) -> int | None:
        try:
            ssl_object.context = self._current_context()
        except Exception:  # fail closed: no handshake on a trust store that could not be read
            logger.exception("the registered CA certificates could not be read; the handshake is refused")
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return None

    def _current_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._current is None or self._clock() - self._read_at >= self._max_age_s:
                self._current = self._context(self._registered_set())
                self._read_at = self._clock()
            return self._current

    def _registered_set(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        active = [ca for ca in self._registry.ca_certificates() if ca.status == ACTIVE]
        without_ca = self._registry.certificates_without_ca()
        # An id is the hash of its certificate: a pem once read is never stale.
        self._pems.update({c.certificate_id: c.pem for c in (*active, *without_ca) if c.certificate_id not in self._pems})
        return tuple(sorted(ca.certificate_id for ca in active)), tuple(sorted(c.certificate_id for c in without_ca))

    def _context(self, registered: tuple[tuple[str, ...], tuple[str, ...]]) -> ssl.SSLContext:
        if registered in self._contexts:
            return self._contexts[registered]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # IoT Core's minimum
        context.load_cert_chain(self._credentials.certificate_file, self._credentials.key_file)
        context.verify_mode = ssl.CERT_REQUIRED
        # A registered intermediate CA, or a device certificate registered without its CA, is an anchor itself.
        # The flag sits on the connection from its first context, so every context has it.
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        if self._alpn_protocols:
            context.set_alpn_protocols(list(self._alpn_protocols))
        for certificate_id in (*registered[0], *registered[1]):
            try:
                context.load_verify_locations(cadata=self._pems[certificate_id])
            except ssl.SSLError:
                logger.warning("registered certificate %s is not a usable trust anchor; skipped", certificate_id)
        # One entry per registered set seen; the sets change only as often as CAs are registered.
        self._contexts = {registered: context}
        return context


# --- provisioning templates -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvisioningTemplate:
    """An AWS::IoT::ProvisioningTemplate of the stack (moto has none): JITP ones are checked when kept, so a
    template the runtime cannot provision from is refused at start, not at a device's first connection."""

    name: str
    template_type: str
    enabled: bool
    body: Mapping[str, Any]

    @classmethod
    def parse(cls, name: str, template_type: str, enabled: bool, body: str, where: str) -> ProvisioningTemplate:
        try:
            parsed = json.loads(body)
        except ValueError as error:
            raise NotEmulated(f"{where}: the template body is not JSON ({error})") from None
        template = cls(name, template_type, enabled, parsed)
        if template_type == JITP:
            template.check(where)
        return template

    def check(self, where: str) -> None:
        """Refuses (NotEmulated) what provisioning here would not do as IoT does; resolves every value with
        placeholder parameters, so an intrinsic function the resolver lacks is refused too."""
        unknown_sections = sorted(set(self.body) - {"Parameters", "Resources"})
        if unknown_sections:
            raise NotEmulated(f"{where}: template section {', '.join(unknown_sections)} is not emulated for JITP")
        placeholders = {name: "x" for name in self.body.get("Parameters", {})}
        for logical_name, resource in self.body.get("Resources", {}).items():
            place = f"{where}.Resources.{logical_name}"
            kind = resource.get("Type")
            if kind not in _PROPERTIES:
                raise NotEmulated(f"{place}: resource type {kind} is not one of {', '.join(_PROPERTIES)}")
            unknown = sorted(set(resource.get("Properties", {})) - _PROPERTIES[kind])
            if unknown:
                raise NotEmulated(f"{place}: {kind} property {', '.join(unknown)} is not emulated")
            for setting, value in resource.get("OverrideSettings", {}).items():
                if value not in _OVERRIDES[kind].get(setting, ()):
                    raise NotEmulated(f"{place}: OverrideSettings {setting}: {value} is not emulated for {kind}")
            try:
                _TemplateValues(self.name, placeholders).resolve(resource.get("Properties", {}), place)
            except _ProvisioningFailed as error:
                raise NotEmulated(str(error)) from None


class ProvisioningTemplates:
    """The stack's provisioning templates, by name."""

    def __init__(self, templates: Iterable[ProvisioningTemplate] = ()) -> None:
        self._by_name = {template.name: template for template in templates}

    def add(self, template: ProvisioningTemplate) -> None:
        self._by_name[template.name] = template

    def get(self, name: str) -> ProvisioningTemplate | None:
        return self._by_name.get(name)

    def __len__(self) -> int:
        return len(self._by_name)


class _ProvisioningFailed(Exception):
    """What makes IoT's provisioning of one certificate fail (the reason is IoT's, for the Admission)."""


class _TemplateValues(Resolver):
    """A provisioning template's values: Ref names a parameter; Fn::Join, Fn::Sub, Fn::Select and Fn::Split as in
    CloudFormation (the functions the provisioning template docs list, but Fn::FindInMap: JITP templates have no
    Mappings). Anything else is refused by the resolver."""

    def __init__(self, template_name: str, parameters: Mapping[str, str]) -> None:
        super().__init__(Stack(template_name, Path(template_name), {}, {}), {}, account={})
        self._parameters = parameters

    def _ref(self, name: Any, where: str) -> str:
        if name not in self._parameters:
            raise _ProvisioningFailed(f"{where}: Ref {name} is not a parameter of the template")
        return self._parameters[name]

    def _get_att(self, argument: Any, where: str) -> str:
        raise NotEmulated(f"{where}: Fn::GetAtt {argument!r} has no meaning in a provisioning template")


# --- IoT's decision ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    """IoT's decision on a client certificate that passed the TLS handshake."""

    admitted: bool
    reason: str  # in IoT's terms; no secrets
    certificate_id: str | None
    certificate_arn: str | None
    # Messages IoT publishes because of this connection attempt (topic, payload), e.g. the JITR
    # certificate-registered event, which the endpoint runs through the rules.
    events: list[tuple[str, bytes]] = field(default_factory=list)


def admit(
    registry: IotRegistry,
    iot: Any,
    certificate_der: bytes,
    *,
    templates: ProvisioningTemplates,
    account: str,
    now_ms: int,
) -> Admission:
    """IoT's decision for a client certificate that passed the TLS handshake (see the module's docstring): the
    registry as it is read, IoT's own writes (JITR's registration, JITP's provisioning) through the API, `iot`."""
    try:
        certificate = x509.load_der_x509_certificate(certificate_der)
    except ValueError:
        return Admission(False, "the client certificate is not an X.509 certificate", None, None)
    certificate_id = hashlib.sha256(certificate_der).hexdigest()  # IoT's certificate id
    arn = f"arn:aws:iot:{iot.meta.region_name}:{account}:cert/{certificate_id}"

    def refused(reason: str, events: list[tuple[str, bytes]] | None = None) -> Admission:
        return Admission(False, reason, certificate_id, arn, events or [])

    now = datetime.fromtimestamp(now_ms / 1000, timezone.utc)
    if now < certificate.not_valid_before_utc:
        return refused(f"the certificate is not valid before {certificate.not_valid_before_utc.isoformat()}")
    if now > certificate.not_valid_after_utc:
        return refused(f"the certificate expired at {certificate.not_valid_after_utc.isoformat()}")

    registered = registry.certificate(certificate_id)
    if registered is not None:
        status = registered.status
        if status == ACTIVE:
            return Admission(True, "the certificate is registered and ACTIVE", certificate_id, arn)
        if status == PENDING_ACTIVATION:
            ca = _issuing_ca(registry, certificate)
            events = []
            if ca is not None:
                registered_ms = int(registered.creation_date.timestamp() * 1000)
                events.append(_registered_event(certificate_id, ca.certificate_id, account, now_ms, registered_ms))
            return refused(
                "the certificate is PENDING_ACTIVATION: it connects once it is made ACTIVE; the connection is "
                "closed, as IoT does",
                events,
            )
        return refused(f"the certificate is {status}: only an ACTIVE certificate connects")

    ca = _issuing_ca(registry, certificate)
    if ca is None:
        return refused("the certificate is not registered, and no CA certificate registered with IoT issued it")
    if ca.status != ACTIVE:
        return refused(f"the certificate's CA certificate {ca.certificate_id} is {ca.status}")
    if ca.auto_registration != "ENABLE":
        return refused(
            f"the certificate is not registered, and its CA certificate {ca.certificate_id} has auto-registration "
            f"{ca.auto_registration}"
        )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    if ca.registration_config.get("templateName") or ca.registration_config.get("templateBody"):
        return _provision(iot, certificate, pem, certificate_id, arn, ca, templates, refused)
    try:
        iot.register_certificate(certificatePem=pem, caCertificatePem=ca.pem, status=PENDING_ACTIVATION)
    except ClientError as error:
        # Another connection of the same device registered it first: it is PENDING_ACTIVATION all the same.
        if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
    return refused(
        "JITR: the certificate was registered PENDING_ACTIVATION; the connection is closed, as IoT does",
        [_registered_event(certificate_id, ca.certificate_id, account, now_ms, now_ms)],
    )


def _registered_event(certificate_id: str, ca_id: str, account: str, now_ms: int, registered_ms: int) -> tuple[str, bytes]:
    """IoT's certificate-registered message, its fields in the documented order (the registration timestamp is
    a string there, the timestamp a number)."""
    payload = {
        "certificateId": certificate_id,
        "caCertificateId": ca_id,
        "timestamp": now_ms,
        "certificateStatus": PENDING_ACTIVATION,
        "awsAccountId": account,
        "certificateRegistrationTimestamp": str(registered_ms),
    }
    return REGISTERED_TOPIC.format(ca_id), json.dumps(payload, separators=(",", ":")).encode()


def _issuing_ca(registry: IotRegistry, certificate: x509.Certificate) -> CaCertificate | None:
    """The registered CA certificate that signed this one (an ACTIVE one first, if two share a key)."""
    found: list[CaCertificate] = []
    for ca in registry.ca_certificates():
        try:
            certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.pem.encode()))
        except (ValueError, TypeError, InvalidSignature):
            continue
        found.append(ca)
    found.sort(key=lambda ca: ca.status != ACTIVE)
    return found[0] if found else None


# --- JITP -------------------------------------------------------------------------------------------------------


def _provision(
    iot: Any,
    certificate: x509.Certificate,
    pem: str,
    certificate_id: str,
    arn: str,
    ca: CaCertificate,
    templates: ProvisioningTemplates,
    refused: Callable[..., Admission],
) -> Admission:
    name = ca.registration_config.get("templateName")
    if name:
        template = templates.get(name)
        if template is None:
            return refused(f"JITP failed: the CA's provisioning template {name} does not exist")
        if template.template_type != JITP:
            return refused(f"JITP failed: the provisioning template {name} is of type {template.template_type}")
        if not template.enabled:
            return refused(f"JITP failed: the provisioning template {name} is disabled")
    else:  # the older API: the template body on the CA itself
        template = ProvisioningTemplate.parse(
            f"CA {ca.certificate_id}", JITP, True, ca.registration_config["templateBody"], "registrationConfig"
        )
    try:
        plan = _plan(template, _parameters(template, certificate, certificate_id))
    except _ProvisioningFailed as error:
        return refused(f"JITP failed: {error}")
    iot.register_certificate(certificatePem=pem, caCertificatePem=ca.pem, status=PENDING_ACTIVATION)
    try:
        if plan.thing is not None:
            _provision_thing(iot, plan.thing, plan.overrides)
        for policy in plan.policies:
            iot.attach_policy(policyName=_policy_name(iot, policy), target=arn)
        if plan.thing is not None:
            iot.attach_thing_principal(thingName=plan.thing["ThingName"], principal=arn)
        iot.update_certificate(certificateId=certificate_id, newStatus=plan.status)
    except (ClientError, _ProvisioningFailed) as error:
        # As on AWS, what was done stays done and the certificate stays PENDING_ACTIVATION.
        return refused(f"JITP failed: {error}")
    return refused(
        f"JITP: provisioned from template {template.name}, the certificate {plan.status}; the first connection is "
        "closed, as IoT does, and the device's retry connects"
    )


def _parameters(template: ProvisioningTemplate, certificate: x509.Certificate, certificate_id: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, declaration in template.body.get("Parameters", {}).items():
        if name == CERTIFICATE_ID:
            values[name] = certificate_id
        elif name == SERIAL_NUMBER:
            values[name] = format_serial(certificate.serial_number)
        elif name in _SUBJECT_PARAMETERS:
            attributes = certificate.subject.get_attributes_for_oid(_SUBJECT_PARAMETERS[name])
            if not attributes:
                raise _ProvisioningFailed(f"the certificate's subject has no value for the parameter {name}")
            values[name] = str(attributes[0].value)
        elif "Default" in declaration:
            values[name] = str(declaration["Default"])
        else:
            raise _ProvisioningFailed(f"nothing gives the parameter {name} a value (JITP fills only the certificate's)")
    return values


@dataclass(frozen=True)
class _Plan:
    thing: dict[str, Any] | None
    overrides: Mapping[str, str]
    policies: list[dict[str, Any]]
    status: str


def _plan(template: ProvisioningTemplate, parameters: Mapping[str, str]) -> _Plan:
    values = _TemplateValues(template.name, parameters)
    thing, overrides, policies, status = None, {}, [], ACTIVE
    for logical_name, resource in template.body.get("Resources", {}).items():
        properties = values.resolve(resource.get("Properties", {}), f"{template.name}.Resources.{logical_name}")
        if resource["Type"] == _THING:
            thing, overrides = properties, resource.get("OverrideSettings", {})
        elif resource["Type"] == _POLICY:
            policies.append(properties)
        else:
            status = str(properties.get("Status", ACTIVE)).upper()
            if status not in {ACTIVE, "INACTIVE"}:
                raise _ProvisioningFailed(f"certificate Status {status} is neither ACTIVE nor INACTIVE")
    if thing is not None and not isinstance(thing.get("ThingName"), str):
        raise _ProvisioningFailed("the thing has no ThingName")
    return _Plan(thing, overrides, policies, status)


def _provision_thing(iot: Any, thing: Mapping[str, Any], overrides: Mapping[str, str]) -> None:
    name = thing["ThingName"]
    attributes = {key: str(value) for key, value in thing.get("AttributePayload", {}).items()}
    groups = list(thing.get("ThingGroups", []))
    try:
        existing = iot.describe_thing(thingName=name)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        existing = None
    if existing is None:
        request: dict[str, Any] = {"thingName": name, "attributePayload": {"attributes": attributes}}
        if "ThingTypeName" in thing:
            request["thingTypeName"] = thing["ThingTypeName"]
        iot.create_thing(**request)
        for group in groups:
            iot.add_thing_to_thing_group(thingGroupName=group, thingName=name)
        return
    # An existing thing: each of its settings as OverrideSettings says; the docs name no default, and DO_NOTHING
    # is the one that changes nothing of another device's.
    for setting in ("AttributePayload", "ThingTypeName", "ThingGroups"):
        if overrides.get(setting) == "FAIL" and setting in thing:
            raise _ProvisioningFailed(f"ResourceConflictsException: the thing {name} exists ({setting}: FAIL)")
    attribute_override = overrides.get("AttributePayload", "DO_NOTHING")
    if attribute_override in ("REPLACE", "MERGE") and "AttributePayload" in thing:
        if attribute_override == "REPLACE":  # drop the attributes the template does not give
            attributes = {**{key: "" for key in existing.get("attributes", {})}, **attributes}
        iot.update_thing(thingName=name, attributePayload={"attributes": attributes, "merge": True})
    if overrides.get("ThingTypeName") == "REPLACE" and "ThingTypeName" in thing:
        iot.update_thing(thingName=name, thingTypeName=thing["ThingTypeName"])
    group_override = overrides.get("ThingGroups", "DO_NOTHING")
    if group_override in ("REPLACE", "MERGE") and "ThingGroups" in thing:
        current = {group["groupName"] for group in iot.list_thing_groups_for_thing(thingName=name)["thingGroups"]}
        if group_override == "REPLACE":
            for group in sorted(current - set(groups)):
                iot.remove_thing_from_thing_group(thingGroupName=group, thingName=name)
        for group in groups:
            if group not in current:
                iot.add_thing_to_thing_group(thingGroupName=group, thingName=name)


def _policy_name(iot: Any, policy: Mapping[str, Any]) -> str:
    """An existing policy by name, or the template's document, created under the hash of the document (IoT's
    default name) unless it exists already."""
    if "PolicyName" in policy and "PolicyDocument" not in policy:
        return str(policy["PolicyName"])
    if "PolicyDocument" not in policy or "PolicyName" in policy:
        raise _ProvisioningFailed("a policy resource gives PolicyName or PolicyDocument, not both")
    document = policy["PolicyDocument"]
    text = document if isinstance(document, str) else json.dumps(document)
    name = hashlib.sha256(text.encode()).hexdigest()
    try:
        iot.create_policy(policyName=name, policyDocument=text)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
    return name


# --- what moto lacks ---------------------------------------------------------------------------------------------



def install() -> Callable[[], None]:
    """Completes moto's IoT CA certificate API as the module's docstring says; returns what undoes it."""
    from moto.core.responses import ActionResult  # moto loads its backends lazily: so does this
    from moto.iot.exceptions import InvalidRequestException
    from moto.iot.models import FakeCaCertificate, FakeCertificate
    from moto.iot.responses import IoTResponse

    moto_register = IoTResponse.register_ca_certificate
    moto_update = IoTResponse.update_ca_certificate
    moto_ca_init = FakeCaCertificate.__init__

    def ca_init(ca: FakeCaCertificate, *args: Any, **kwargs: Any) -> None:
        moto_ca_init(ca, *args, **kwargs)
        ca.arn = ca.arn.replace(":cert/", ":cacert/", 1)

    def list_ca_certificates(response: IoTResponse) -> ActionResult:
        template = response._get_param("templateName")
        listed = [
            {
                "certificateArn": ca.arn,
                "certificateId": ca.certificate_id,
                "status": ca.status,
                "creationDate": ca.creation_date,
            }
            for ca in response.iot_backend.ca_certificates.values()
            if template is None or (ca.registration_config or {}).get("templateName") == template
        ]
        return ActionResult({"certificates": listed})

    def register_ca_certificate(response: IoTResponse) -> Any:
        answer = moto_register(response)
        pem = response._get_param("caCertificate")
        status = "ENABLE" if response._get_bool_param("allowAutoRegistration", False) else "DISABLE"
        for ca in response.iot_backend.ca_certificates.values():
            if ca.certificate_pem == pem:
                setattr(ca, AUTO_REGISTRATION, status)
        return answer

    def update_ca_certificate(response: IoTResponse) -> Any:
        if response._get_bool_param("removeAutoRegistration", False):
            raise InvalidRequestException("removeAutoRegistration is not emulated by the local runtime")
        status = response._get_param("newAutoRegistrationStatus")
        answer = moto_update(response)
        if status is not None:
            ca = response.iot_backend.describe_ca_certificate(response.path.split("/")[-1])
            setattr(ca, AUTO_REGISTRATION, status)
        return answer

    def describe(ca: FakeCaCertificate) -> dict[str, Any]:
        return {**FakeCertificate.to_description_dict(ca), "autoRegistrationStatus": getattr(ca, AUTO_REGISTRATION, "DISABLE")}

    IoTResponse.list_ca_certificates = list_ca_certificates  # type: ignore[attr-defined]
    IoTResponse.register_ca_certificate = register_ca_certificate  # type: ignore[method-assign]
    IoTResponse.update_ca_certificate = update_ca_certificate  # type: ignore[method-assign]
    FakeCaCertificate.to_description_dict = describe  # type: ignore[method-assign]
    FakeCaCertificate.__init__ = ca_init  # type: ignore[method-assign]

    def uninstall() -> None:
        if "list_ca_certificates" in vars(IoTResponse):
            del IoTResponse.list_ca_certificates  # type: ignore[attr-defined]
        IoTResponse.register_ca_certificate = moto_register  # type: ignore[method-assign]
        IoTResponse.update_ca_certificate = moto_update  # type: ignore[method-assign]
        if "to_description_dict" in vars(FakeCaCertificate):
            del FakeCaCertificate.to_description_dict
        FakeCaCertificate.__init__ = moto_ca_init  # type: ignore[method-assign]

    return uninstall
