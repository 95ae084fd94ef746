"""The development CA as a library: what its CA, verification and device certificates contain, revocation and
CRLs, and persistence. These are the properties the JITR activation function relies on (issuer, validity,
revocation, CN), so they are checked with cryptography's own verifiers rather than by re-reading our inputs."""

from __future__ import annotations

import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import VerificationError

from device_pki import CertificateAuthority, PkiError

from .conftest import VerifyAsClient

NOW = datetime.now(timezone.utc)


def common_name(certificate: x509.Certificate) -> str:
    return str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def extension(certificate: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension:
    return certificate.extensions.get_extension_for_class(kind)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the CA certificate ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key_type", "key_class"), [("ec", ec.EllipticCurvePublicKey), ("rsa", rsa.RSAPublicKey)])
def test_ca_is_a_self_signed_pathlen_0_ca_that_signs_certificates_and_crls(key_type: str, key_class: type) -> None:
    ca = CertificateAuthority.create(common_name="Example Device CA", valid_days=10, key_type=key_type)
    cert = ca.certificate

    cert.verify_directly_issued_by(cert)
    assert cert.subject == cert.issuer
    assert common_name(cert) == "Example Device CA"
    assert cert.version is x509.Version.v3
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=10)
    basic = extension(cert, x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = extension(cert, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign and not usage.value.digital_signature
    public_key = cert.public_key()
    assert isinstance(public_key, key_class)
    # AWS accepts P-256 and RSA of at least 2048 bits.
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        assert public_key.curve.name == "secp256r1"
    else:
        assert public_key.key_size == 2048


def test_ca_pems_hold_its_certificate_and_the_matching_private_key(ca: CertificateAuthority) -> None:
    assert x509.load_pem_x509_certificate(ca.certificate_pem.encode()) == ca.certificate
    key = serialization.load_pem_private_key(ca.private_key_pem.encode(), password=None)
    assert key.public_key() == ca.certificate.public_key()


def test_unknown_key_type_or_empty_name_is_refused() -> None:
    with pytest.raises(PkiError, match="unknown key type 'dsa'"):
        CertificateAuthority.create(key_type="dsa")  # type: ignore[arg-type]
    with pytest.raises(PkiError, match="CA name must not be empty"):
        CertificateAuthority.create(common_name="")


# --- the verification certificate -----------------------------------------------------------------------------


def test_verification_certificate_has_the_registration_code_as_cn_and_is_signed_by_the_ca(
    ca: CertificateAuthority,
) -> None:
    code = "a1b2c3d4" * 8  # AWS registration codes are 64 hex digits
    verification = ca.verification_certificate(code)

    assert common_name(verification.certificate) == code
    assert verification.certificate.issuer == ca.certificate.subject
    verification.certificate.verify_directly_issued_by(ca.certificate)
    assert not extension(verification.certificate, x509.BasicConstraints).value.ca
    # Its own key pair: AWS checks possession of the CA key through the signature, not by key reuse.
    key = serialization.load_pem_private_key(verification.private_key_pem.encode(), password=None)
    assert key.public_key() == verification.certificate.public_key()
    assert key.public_key() != ca.certificate.public_key()


# --- device certificates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_device_certificate_verifies_against_the_ca_as_a_tls_client_certificate(
    ca: CertificateAuthority, verify_as_client: VerifyAsClient, key_type: str
) -> None:
    device = ca.issue_device("sensor-1", key_type=key_type)

    device.certificate.verify_directly_issued_by(ca.certificate)
    verify_as_client(device.certificate)
    key = serialization.load_pem_private_key(device.private_key_pem.encode(), password=None)
    assert key.public_key() == device.certificate.public_key()


def test_device_certificate_has_the_thing_name_as_cn_and_the_ca_as_issuer(ca: CertificateAuthority) -> None:
    device = ca.issue_device("sensor-1")

    assert device.certificate.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sensor-1")])
    assert device.certificate.issuer == ca.certificate.subject
    assert x509.load_pem_x509_certificate(device.certificate_pem.encode()) == device.certificate


def test_device_certificate_is_a_v3_client_certificate_with_key_identifiers(ca: CertificateAuthority) -> None:
    cert = ca.issue_device("sensor-1").certificate

    assert cert.version is x509.Version.v3
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    basic = extension(cert, x509.BasicConstraints)
    assert basic.critical and not basic.value.ca
    usage = extension(cert, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not (usage.value.key_cert_sign or usage.value.crl_sign or usage.value.key_encipherment)
    assert list(extension(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ski = extension(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    aki = extension(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == extension(ca.certificate, x509.SubjectKeyIdentifier).value.digest


def test_default_validity_is_from_now_for_valid_days(ca: CertificateAuthority) -> None:
    cert = ca.issue_device("sensor-1", valid_days=30).certificate

    assert abs(cert.not_valid_before_utc - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=30)


def test_serial_is_random_positive_at_most_159_bits_and_shown_in_lower_case_hex(ca: CertificateAuthority) -> None:
    devices = [ca.issue_device(f"sensor-{i}") for i in range(5)]

    serials = {device.serial for device in devices}
    assert len(serials) == 5
    assert all(0 < serial < 2**159 for serial in serials)
    for device in devices:
        assert device.serial == device.certificate.serial_number
        assert device.serial_hex == format(device.serial, "x")
        assert device.serial_hex == device.serial_hex.lower()


def test_given_serial_is_used_and_cannot_be_issued_twice(ca: CertificateAuthority) -> None:
    device = ca.issue_device("sensor-1", serial=0x1234)
    assert device.serial == 0x1234
    assert device.serial_hex == "1234"

    with pytest.raises(PkiError, match="serial 1234 was already issued"):
        ca.issue_device("sensor-2", serial=0x1234)
    for bad in (0, -1, 2**159):
        with pytest.raises(PkiError, match="at most 159 bits"):
            ca.issue_device("sensor-3", serial=bad)


def test_expired_certificate_can_be_made_with_explicit_validity(
    ca: CertificateAuthority, verify_as_client: VerifyAsClient
) -> None:
    start, end = NOW - timedelta(days=30), NOW - timedelta(days=1)
    expired = ca.issue_device("sensor-1", not_before=start, not_after=end)

    assert expired.certificate.not_valid_before_utc == start.replace(microsecond=0)
    assert expired.certificate.not_valid_after_utc == end.replace(microsecond=0)
    verify_as_client(ca.issue_device("sensor-2").certificate)  # the CA itself is fine now
    with pytest.raises(VerificationError, match="not valid at validation time"):
        verify_as_client(expired.certificate)


def test_not_yet_valid_certificate_can_be_made(ca: CertificateAuthority, verify_as_client: VerifyAsClient) -> None:
    future = ca.issue_device("sensor-1", not_before=NOW + timedelta(days=1), valid_days=10)

    assert future.certificate.not_valid_after_utc - future.certificate.not_valid_before_utc == timedelta(days=10)
    with pytest.raises(VerificationError):
        verify_as_client(future.certificate)


def test_naive_datetimes_are_taken_as_utc(ca: CertificateAuthority) -> None:
    cert = ca.issue_device("sensor-1", not_before=datetime(2020, 1, 1), not_after=datetime(2021, 1, 1)).certificate

    assert cert.not_valid_before_utc == datetime(2020, 1, 1, tzinfo=timezone.utc)
    assert cert.not_valid_after_utc == datetime(2021, 1, 1, tzinfo=timezone.utc)


def test_empty_validity_is_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(PkiError, match="must be later than not_before"):
        ca.issue_device("sensor-1", not_before=NOW, not_after=NOW - timedelta(seconds=5))
    with pytest.raises(PkiError, match="valid_days must be at least 1"):
        ca.issue_device("sensor-1", valid_days=0)


@pytest.mark.parametrize(
    "thing_name",
    ["not a thing!", "../etc/passwd", "Capteur-é", "a" * 64, "sensor-1 "],
    ids=["punctuation", "path", "non-ascii", "64-characters", "trailing-space"],
)
def test_any_non_empty_cn_is_issued_as_given_so_tests_can_make_bad_ones(
    ca: CertificateAuthority, thing_name: str
) -> None:
    assert common_name(ca.issue_device(thing_name).certificate) == thing_name


def test_empty_or_over_long_thing_name_is_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(PkiError, match="thing name must not be empty"):
        ca.issue_device("")
    # AWS thing names reach 128 characters, but an X.509 CN holds 64 (RFC 5280 ub-common-name).
    with pytest.raises(PkiError, match="65 characters; an X.509 Common Name holds at most 64"):
        ca.issue_device("a" * 65)


def test_private_keys_are_not_in_reprs(ca: CertificateAuthority) -> None:
    device = ca.issue_device("sensor-1")

    assert "PRIVATE KEY" not in repr(device)
    assert "PRIVATE KEY" not in repr(ca)
    assert "sensor" not in repr(ca) and "Test Device CA" in repr(ca)


# --- revocation and CRLs --------------------------------------------------------------------------------------


def load_crl(der: bytes) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(der)


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_revoked_serial_is_listed_in_a_crl_signed_by_the_ca(ca: CertificateAuthority) -> None:
    revoked, kept = ca.issue_device("sensor-1"), ca.issue_device("sensor-2")
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    ca.revoke(revoked.serial, reason=x509.ReasonFlags.key_compromise, when=when)

    crl = load_crl(ca.crl(next_update_days=3))

    assert crl.is_signature_valid(ca.certificate.public_key())
    assert crl.issuer == ca.certificate.subject
    assert isinstance(crl.signature_hash_algorithm, hashes.SHA256)
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=3)
    entry = crl.get_revoked_certificate_by_serial_number(revoked.serial)
    assert entry is not None
    assert entry.revocation_date_utc == when
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise
    assert crl.get_revoked_certificate_by_serial_number(kept.serial) is None
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == extension(ca.certificate, x509.SubjectKeyIdentifier).value.digest


def test_crl_is_not_valid_under_another_ca(ca: CertificateAuthority) -> None:
    other = CertificateAuthority.create(common_name="Other CA")

    assert not load_crl(ca.crl()).is_signature_valid(other.certificate.public_key())


def test_revocation_without_reason_has_no_reason_code(ca: CertificateAuthority) -> None:
    device = ca.issue_device("sensor-1")
    ca.revoke(device.serial)

    entry = load_crl(ca.crl()).get_revoked_certificate_by_serial_number(device.serial)
    assert entry is not None
    assert len(entry.extensions) == 0
    assert abs(entry.revocation_date_utc - datetime.now(timezone.utc)) < timedelta(minutes=1)


def test_crl_number_increases_with_each_publication_der_or_pem(ca: CertificateAuthority) -> None:
    first = load_crl(ca.crl())
    second = x509.load_pem_x509_crl(ca.crl_pem().encode())
    third = load_crl(ca.crl())

    assert [crl_number(first), crl_number(second), crl_number(third)] == [1, 2, 3]
    assert len(first) == 0
    assert second.is_signature_valid(ca.certificate.public_key())


def test_revoking_an_unknown_serial_twice_or_for_remove_from_crl_is_refused(ca: CertificateAuthority) -> None:
    device = ca.issue_device("sensor-1")

    with pytest.raises(PkiError, match="serial abc was not issued by this CA"):
        ca.revoke(0xABC)
    with pytest.raises(PkiError, match="delta CRLs"):
        ca.revoke(device.serial, reason=x509.ReasonFlags.remove_from_crl)
    ca.revoke(device.serial)
    with pytest.raises(PkiError, match="already revoked"):
        ca.revoke(device.serial)


def test_verification_certificate_can_be_revoked_too(ca: CertificateAuthority) -> None:
    verification = ca.verification_certificate("ab" * 32)
    ca.revoke(verification.serial)

    assert load_crl(ca.crl()).get_revoked_certificate_by_serial_number(verification.serial) is not None


def test_an_out_of_date_crl_can_be_made_by_dating_it_in_the_past(ca: CertificateAuthority) -> None:
    issued_at = NOW - timedelta(days=10)

    crl = x509.load_pem_x509_crl(ca.crl_pem(last_update=issued_at, next_update_days=7).encode())

    assert crl.last_update_utc == issued_at.replace(microsecond=0)
    assert crl.next_update_utc is not None and crl.next_update_utc < NOW
    assert crl.is_signature_valid(ca.certificate.public_key())


def test_crl_needs_a_next_update_after_its_last_update(ca: CertificateAuthority) -> None:
    with pytest.raises(PkiError, match="next_update_days must be at least 1"):
        ca.crl(next_update_days=0)


# --- persistence ------------------------------------------------------------------------------------------------


def test_save_and_load_round_trip_keeps_the_ca_its_serials_and_crl_number(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    revoked, kept = ca.issue_device("sensor-1"), ca.issue_device("sensor-2")
    ca.revoke(revoked.serial, reason=x509.ReasonFlags.superseded)
    ca.crl()
    ca.save(tmp_path / "ca")

    loaded = CertificateAuthority.load(tmp_path / "ca")

    assert loaded.certificate == ca.certificate
    assert loaded.private_key_pem == ca.private_key_pem
    crl = load_crl(loaded.crl())
    assert crl_number(crl) == 2
    assert crl.is_signature_valid(ca.certificate.public_key())
    entry = crl.get_revoked_certificate_by_serial_number(revoked.serial)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.superseded
    with pytest.raises(PkiError, match="already issued"):
        loaded.issue_device("again", serial=kept.serial)
    loaded.revoke(kept.serial)  # known after the round trip
    with pytest.raises(PkiError, match="already revoked"):
        loaded.revoke(revoked.serial)


def test_ca_files_are_written_with_the_key_private(ca: CertificateAuthority, tmp_path: Path) -> None:
    directory = tmp_path / "ca"
    ca.save(directory)

    assert sorted(p.name for p in directory.iterdir()) == ["ca.key", "ca.pem", "state.json"]
    assert mode(directory / "ca.key") == 0o600
    assert mode(directory) == 0o700
    assert (directory / "ca.pem").read_text() == ca.certificate_pem


def test_saving_again_keeps_the_key_private_even_if_it_was_loosened(ca: CertificateAuthority, tmp_path: Path) -> None:
    ca.save(tmp_path)
    (tmp_path / "ca.key").chmod(0o644)

    ca.save(tmp_path)

    assert mode(tmp_path / "ca.key") == 0o600


def test_issued_certificate_saves_pem_and_private_key_file(ca: CertificateAuthority, tmp_path: Path) -> None:
    device = ca.issue_device("sensor-1")

    cert_path, key_path = device.save(tmp_path / "devices", "sensor-1")

    assert (cert_path, key_path) == (tmp_path / "devices" / "sensor-1.pem", tmp_path / "devices" / "sensor-1.key")
    assert cert_path.read_text() == device.certificate_pem
    assert key_path.read_text() == device.private_key_pem
    assert mode(key_path) == 0o600
    assert sorted(p.name for p in cert_path.parent.iterdir()) == ["sensor-1.key", "sensor-1.pem"]  # no temp files


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../escape"])
def test_issued_certificate_refuses_a_file_name_that_is_a_path(
    ca: CertificateAuthority, tmp_path: Path, name: str
) -> None:
    with pytest.raises(PkiError, match="cannot be used as a file name"):
        ca.issue_device("sensor-1").save(tmp_path, name)


def test_loading_a_missing_ca_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match=r"no CA in .*missing ca.pem, ca.key, state.json.*ca create --dir"):
        CertificateAuthority.load(tmp_path / "nowhere")


def test_loading_a_damaged_ca_is_reported(ca: CertificateAuthority, tmp_path: Path) -> None:
    ca.save(tmp_path)
    (tmp_path / "state.json").write_text("{not json")

    with pytest.raises(PkiError, match="is damaged"):
        CertificateAuthority.load(tmp_path)


def test_loading_a_ca_with_another_key_is_refused(ca: CertificateAuthority, tmp_path: Path) -> None:
    ca.save(tmp_path)
    (tmp_path / "ca.key").write_text(CertificateAuthority.create().private_key_pem)

    with pytest.raises(PkiError, match="is not the private key of"):
        CertificateAuthority.load(tmp_path)
