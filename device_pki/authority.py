"""A small certificate authority for development and tests: a CA, its AWS IoT verification certificate,
device certificates (CN = thing name), revocation and CRLs.

Why it exists: JITR onboarding is driven by certificates signed by a CA registered with AWS IoT, and the
activation function checks a certificate's issuer, validity, revocation (CRL) and CN. Tests and the local
runtime need such certificates, good and bad, made on the spot without openssl recipes. It is not a
production CA: the key sits unencrypted in a directory and there is no audit trail beyond state.json.

What AWS IoT requires of a CA it registers: SHA-256 signatures (ECDSA-WITH-SHA256 / SHA256WITHRSA), RSA keys
of at least 2048 bits or P-256 keys, a CA certificate (basicConstraints CA:true) to register, and a "private key
verification certificate" signed by that CA whose Common Name is the account's registration code.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
STATE_FILE = "state.json"

# RFC 5280 §4.1.2.2: at most 20 octets and positive, so at most 159 bits of value.
_MAX_SERIAL = 1 << 159
# ub-common-name (RFC 5280 appendix A); cryptography refuses longer CNs, so say so in our words.
_MAX_CN = 64


class PkiError(Exception):
    """A request the CA cannot honour (missing CA, unknown serial, bad argument); the message says why."""


def _utc(moment: datetime) -> datetime:
    # Naive datetimes are taken as UTC, as cryptography does; aware ones are converted so state.json is uniform.
    # X.509 times have whole seconds, so drop the rest here and the recorded times match the certificate.
    aware = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    return aware.replace(microsecond=0)


def _now() -> datetime:
    return _utc(datetime.now(timezone.utc))


def _generate_key(key_type: KeyType) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise PkiError(f"unknown key type {key_type!r}: use 'ec' (P-256) or 'rsa' (2048 bits)")


def _key_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _name(common_name: str, what: str) -> x509.Name:
    if not common_name:
        raise PkiError(f"the {what} must not be empty")
    if len(common_name) > _MAX_CN:
        raise PkiError(
            f"the {what} is {len(common_name)} characters; an X.509 Common Name holds at most {_MAX_CN}"
        )
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, data: str, *, private: bool = False) -> None:
    """Write atomically; a private file is 0600 from its creation, so the key is never readable by others."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
    try:
        if private:
            os.fchmod(fd, 0o600)  # exactly 0600 whatever the umask
        os.write(fd, data.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def format_serial(serial: int) -> str:
    """Lower-case hex without separators or leading zeros, the form AWS IoT shows."""
    return format(serial, "x")


def parse_serial(text: str) -> int:
    """Read a hex serial as this tool, AWS or openssl print it (a `0x` prefix and `:` separators are allowed)."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        return int(cleaned, 16)
    except ValueError:
        raise PkiError(f"serial {text!r} is not hexadecimal") from None


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate this CA signed, with its private key (kept out of repr so it cannot end up in a log)."""

    certificate: x509.Certificate
    private_key_pem: str = field(repr=False)

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    @property
    def serial_hex(self) -> str:
        return format_serial(self.serial)

    def save(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Write <name>.pem and <name>.key (0600) into directory, creating it; returns both paths.

        The name is usually the thing name, which tests make deliberately odd, so it must be a plain file name:
        nothing that would write outside the directory.
        """
        if not name or name in {".", ".."} or "/" in name or "\0" in name:
            raise PkiError(f"{name!r} cannot be used as a file name")
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        directory.mkdir(parents=True, exist_ok=True)
        _write(cert_path, self.certificate_pem)
        _write(key_path, self.private_key_pem, private=True)
        return cert_path, key_path


@dataclass
class _Issued:
    common_name: str
    kind: Literal["device", "verification", "server"]
    not_after: datetime


@dataclass
class _Revocation:
    revoked_at: datetime
    reason: x509.ReasonFlags | None


class CertificateAuthority:
    """A self-signed CA (basicConstraints CA:true, pathlen 0) that issues and revokes certificates and publishes CRLs.

    The serials it issued and revoked and the next CRL number live in memory; save() persists them with the
    certificate and key, load() reads them back. Issuing, revoking and publishing a CRL change that state, so
    save() after them when the CA lives in a directory (the CLI does).
    """

    def __init__(
        self,
        certificate: x509.Certificate,
        private_key: PrivateKey,
        *,
        issued: dict[int, _Issued] | None = None,
        revoked: dict[int, _Revocation] | None = None,
        next_crl_number: int = 1,
    ) -> None:
        self._certificate = certificate
        self._key = private_key
        self._issued = issued or {}
        self._revoked = revoked or {}
        self._next_crl_number = next_crl_number

    # --- creation and persistence ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls, common_name: str = "Example Device CA", valid_days: int = 3650, key_type: KeyType = "ec"
    ) -> CertificateAuthority:
        if valid_days < 1:
            raise PkiError(f"valid_days must be at least 1, not {valid_days}")
        name = _name(common_name, "CA name")
        key = _generate_key(key_type)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        now = _now()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=valid_days))
            # pathlen 0: this CA signs devices only, never another CA.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        cert_path, key_path, state_path = (directory / f for f in (CA_CERT_FILE, CA_KEY_FILE, STATE_FILE))
        missing = [p.name for p in (cert_path, key_path, state_path) if not p.is_file()]
        if missing:
            raise PkiError(
                f"no CA in {directory} (missing {', '.join(missing)}); "
                f"create one with: python -m device_pki ca create --dir {directory}"
            )
        try:
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            state = json.loads(state_path.read_text())
            issued = {
                parse_serial(s): _Issued(v["common_name"], v["kind"], datetime.fromisoformat(v["not_after"]))
                for s, v in state["issued"].items()
            }
            revoked = {
                parse_serial(s): _Revocation(
                    datetime.fromisoformat(v["revoked_at"]), x509.ReasonFlags(v["reason"]) if v["reason"] else None
                )
                for s, v in state["revoked"].items()
            }
            next_crl_number = int(state["next_crl_number"])
        # A hand-edited or truncated file: say which CA is damaged rather than show a parser's traceback.
        except (ValueError, KeyError, TypeError) as error:
            raise PkiError(f"the CA in {directory} is damaged: {error!r}") from error
        if not isinstance(key, PrivateKey) or key.public_key() != certificate.public_key():
            raise PkiError(f"{key_path} is not the private key of {cert_path}")
        return cls(certificate, key, issued=issued, revoked=revoked, next_crl_number=next_crl_number)

    def save(self, directory: Path) -> None:
        """Write ca.pem, ca.key (0600) and state.json into directory (created 0700 if missing)."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write(directory / CA_CERT_FILE, self.certificate_pem)
        _write(directory / CA_KEY_FILE, self.private_key_pem, private=True)
        state = {
            "issued": {
                format_serial(serial): {
                    "common_name": entry.common_name,
                    "kind": entry.kind,
                    "not_after": entry.not_after.isoformat(),
                }
                for serial, entry in self._issued.items()
            },
            "revoked": {
                format_serial(serial): {
                    "revoked_at": revocation.revoked_at.isoformat(),
                    "reason": revocation.reason.value if revocation.reason else None,
                }
                for serial, revocation in self._revoked.items()
            },
            "next_crl_number": self._next_crl_number,
        }
        _write(directory / STATE_FILE, json.dumps(state, indent=2) + "\n")

    # --- what it is -----------------------------------------------------------------------------------------

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def certificate_pem(self) -> str:
        return self._certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def private_key_pem(self) -> str:
        return _key_pem(self._key)

    @property
    def common_name(self) -> str:
        return str(self._certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)

    def common_name_of(self, serial: int) -> str:
        """The CN of a certificate this CA issued (PkiError if it did not)."""
        return self._issued_entry(serial).common_name

    def __repr__(self) -> str:
        return (
            f"CertificateAuthority(common_name={self.common_name!r}, "
            f"issued={len(self._issued)}, revoked={len(self._revoked)})"
        )

    # --- issuing --------------------------------------------------------------------------------------------

    def verification_certificate(self, registration_code: str, *, valid_days: int = 30) -> IssuedCertificate:
        """AWS IoT's private key verification certificate: CN = the registration code, signed by this CA.

        The code is not checked (AWS's are 64 hex digits) so that tests can also make wrong ones. It only has to
        live until RegisterCACertificate is called, hence the short default validity.
        """
        name = _name(registration_code, "registration code")
        now = _now()
        return self._issue(name, "verification", now, now + timedelta(days=valid_days), None, "ec", usage=None)

    def issue_server(
        self, common_name: str, *, dns_names: Sequence[str] = (), ip_addresses: Sequence[str] = (), valid_days: int = 825
    ) -> IssuedCertificate:
        """A TLS server certificate for the given names (subjectAltName, which is what TLS clients check), e.g. a
        local endpoint's for localhost, 127.0.0.1 and ::1. 825 days: the longest validity clients accept."""
        if valid_days < 1:
            raise PkiError(f"valid_days must be at least 1, not {valid_days}")
        if not dns_names and not ip_addresses:
            raise PkiError("a server certificate needs at least one DNS name or IP address")
        try:
            names = [x509.DNSName(name) for name in dns_names] + [
                x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses
            ]
        except ValueError as error:
            raise PkiError(f"not a server name: {error}") from None
        now = _now()
        return self._issue(
            _name(common_name, "server name"), "server", now, now + timedelta(days=valid_days), None, "ec",
            usage=ExtendedKeyUsageOID.SERVER_AUTH, alternative_names=names,
        )  # fmt: skip

    def issue_device(
        self,
        thing_name: str,
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        valid_days: int = 365,
        serial: int | None = None,
        key_type: KeyType = "ec",
    ) -> IssuedCertificate:
        """A device certificate whose CN is thing_name exactly (any non-empty CN, so tests can make bad ones).

        not_before defaults to now and not_after to not_before + valid_days; pass both in the past for an
        expired certificate, or in the future for one not yet valid. serial defaults to a random 159-bit one.
        """
        name = _name(thing_name, "thing name")
        if not_after is None and valid_days < 1:
            raise PkiError(f"valid_days must be at least 1, not {valid_days}")
        start = _utc(not_before) if not_before else _now()
        end = _utc(not_after) if not_after else start + timedelta(days=valid_days)
        return self._issue(name, "device", start, end, serial, key_type, usage=ExtendedKeyUsageOID.CLIENT_AUTH)

    def _issue(
        self,
        subject: x509.Name,
        kind: Literal["device", "verification", "server"],
        not_before: datetime,
        not_after: datetime,
        serial: int | None,
        key_type: KeyType,
        *,
        usage: x509.ObjectIdentifier | None,
        alternative_names: Sequence[x509.GeneralName] = (),
    ) -> IssuedCertificate:
        if not_after <= not_before:
            raise PkiError(
                f"not_after ({not_after.isoformat()}) must be later than not_before ({not_before.isoformat()})"
            )
        if serial is None:
            serial = x509.random_serial_number()
        elif not 0 < serial < _MAX_SERIAL:
            raise PkiError(f"serial must be positive and at most 159 bits (RFC 5280), not {serial}")
        # Two certificates with one serial would make the CRL ambiguous: revoking one would revoke both.
        if serial in self._issued:
            raise PkiError(f"serial {format_serial(serial)} was already issued by this CA")
        key = _generate_key(key_type)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        if usage is not None:
            # A device is the TLS client of AWS IoT's mutual-TLS handshake; an endpoint, its server.
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if alternative_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(alternative_names)), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        common_name = str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
        self._issued[serial] = _Issued(common_name, kind, not_after)
        return IssuedCertificate(certificate, _key_pem(key))

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        ski = self._certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)

    def _issued_entry(self, serial: int) -> _Issued:
        try:
            return self._issued[serial]
        except KeyError:
            raise PkiError(f"serial {format_serial(serial)} was not issued by this CA ({self.common_name})") from None

    # --- revocation -----------------------------------------------------------------------------------------

    def revoke(self, serial: int, *, reason: x509.ReasonFlags | None = None, when: datetime | None = None) -> None:
        """Put a certificate this CA issued on the next CRL; `when` (default now) is its revocation date."""
        self._issued_entry(serial)
        if serial in self._revoked:
            raise PkiError(
                f"serial {format_serial(serial)} was already revoked at {self._revoked[serial].revoked_at.isoformat()}"
            )
        # removeFromCRL is only meaningful in delta CRLs (RFC 5280 §5.3.1), which this CA does not publish.
        if reason is x509.ReasonFlags.remove_from_crl:
            raise PkiError("removeFromCRL is only for delta CRLs; give another reason")
        self._revoked[serial] = _Revocation(_utc(when) if when else _now(), reason)

    def crl(self, *, next_update_days: int = 7, last_update: datetime | None = None) -> bytes:
        """Publish a CRL (DER) of every revoked serial, signed by the CA; each call takes the next CRL number.

        last_update (default now) dates the CRL; one far enough in the past makes an out-of-date CRL, which a
        relying party must not trust (the activation function's case).
        """
        if next_update_days < 1:
            raise PkiError(f"next_update_days must be at least 1, not {next_update_days}")
        issued_at = _utc(last_update) if last_update else _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._certificate.subject)
            .last_update(issued_at)
            .next_update(issued_at + timedelta(days=next_update_days))
            .add_extension(x509.CRLNumber(self._next_crl_number), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        for serial, revocation in sorted(self._revoked.items()):
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revocation.revoked_at)
            if revocation.reason:
                entry = entry.add_extension(x509.CRLReason(revocation.reason), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        crl = builder.sign(self._key, hashes.SHA256())
        self._next_crl_number += 1
        return crl.public_bytes(serialization.Encoding.DER)

    def crl_pem(self, *, next_update_days: int = 7, last_update: datetime | None = None) -> str:
        """Same as crl(), PEM-encoded (and likewise takes the next CRL number)."""
        der = self.crl(next_update_days=next_update_days, last_update=last_update)
        return x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM).decode()
