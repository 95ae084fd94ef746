"""`python -m device_pki` end to end in a temporary directory: create a CA, its verification certificate, issue,
revoke, publish the CRL; what it prints (never a key), the files and their modes, and its errors (exit 2)."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from device_pki.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """Run the CLI in this process (fast) and return its exit status, stdout and stderr."""
    try:
        status = main([str(arg) for arg in argv])
    except SystemExit as exit_:  # argparse's own usage errors
        status = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


def common_name(certificate: x509.Certificate) -> str:
    return str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def ca_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    directory = tmp_path / "ca"
    status, out, _ = run(capsys, "ca", "create", "--dir", directory, "--name", "CLI Device CA", "--days", "30")
    assert status == 0, out
    return directory


def test_ca_create_writes_the_ca_with_a_private_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "ca"

    status, out, err = run(capsys, "ca", "create", "--dir", directory, "--key-type", "rsa", "--name", "RSA CA")

    assert (status, err) == (0, "")
    assert "CA 'RSA CA'" in out and str(directory / "ca.pem") in out
    assert "PRIVATE KEY" not in out
    assert mode(directory / "ca.key") == 0o600
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    assert common_name(ca_cert) == "RSA CA"


def test_issue_revoke_and_publish_a_crl(ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "devices"

    status, out, err = run(capsys, "device", "issue", "--dir", ca_dir, "--thing", "sensor-1", "--out", out_dir)

    assert (status, err) == (0, "")
    assert "PRIVATE KEY" not in out
    serial_hex = re.search(r"^serial: ([0-9a-f]+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    assert str(out_dir / "sensor-1.pem") in out and str(out_dir / "sensor-1.key") in out
    device = x509.load_pem_x509_certificate((out_dir / "sensor-1.pem").read_bytes())
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    device.verify_directly_issued_by(ca_cert)
    assert common_name(device) == "sensor-1"
    assert format(device.serial_number, "x") == serial_hex
    assert mode(out_dir / "sensor-1.key") == 0o600

    status, out, err = run(
        capsys, "device", "revoke", "--dir", ca_dir, "--serial", serial_hex, "--reason", "keyCompromise"
    )
    assert (status, err) == (0, "")
    assert f"revoked serial {serial_hex} (CN 'sensor-1') (keyCompromise)" in out

    status, out, err = run(capsys, "crl", "--dir", ca_dir)
    assert (status, err) == (0, "")
    assert "CRL number 1 with 1 revoked serial(s)" in out
    crl = x509.load_der_x509_crl((ca_dir / "crl.der").read_bytes())
    assert crl.is_signature_valid(ca_cert.public_key())
    entry = crl.get_revoked_certificate_by_serial_number(device.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise

    # The next publication, as PEM to a chosen file, takes the next CRL number: state.json was updated.
    status, out, err = run(capsys, "crl", "--dir", ca_dir, "--pem", "--out", tmp_path / "pub" / "ca.crl")
    assert (status, err) == (0, "")
    crl = x509.load_pem_x509_crl((tmp_path / "pub" / "ca.crl").read_bytes())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert crl.get_revoked_certificate_by_serial_number(device.serial_number) is not None


def test_issue_defaults_to_the_devices_folder_of_the_ca(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, _ = run(capsys, "device", "issue", "--dir", ca_dir, "--thing", "sensor-1", "--days", "2")

    assert status == 0
    device = x509.load_pem_x509_certificate((ca_dir / "devices" / "sensor-1.pem").read_bytes())
    assert (device.not_valid_after_utc - device.not_valid_before_utc).days == 2


def test_revoke_accepts_openssl_style_serials(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "device", "issue", "--dir", ca_dir, "--thing", "sensor-1")
    serial_hex = re.search(r"^serial: ([0-9a-f]+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    padded = serial_hex.upper().zfill(len(serial_hex) + len(serial_hex) % 2)
    openssl_style = ":".join(padded[i : i + 2] for i in range(0, len(padded), 2))

    status, out, err = run(capsys, "device", "revoke", "--dir", ca_dir, "--serial", openssl_style)

    assert (status, err) == (0, "")
    assert f"revoked serial {serial_hex}" in out


def test_verification_certificate_for_aws_registration(
    ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = "0f" * 32

    status, out, err = run(
        capsys, "ca", "verification", "--dir", ca_dir, "--registration-code", code, "--out", tmp_path / "reg"
    )

    assert (status, err) == (0, "")
    assert "PRIVATE KEY" not in out
    assert "aws iot register-ca-certificate" in out and "--allow-auto-registration" in out
    verification = x509.load_pem_x509_certificate((tmp_path / "reg" / "verification.pem").read_bytes())
    assert common_name(verification) == code
    verification.verify_directly_issued_by(x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes()))
    assert mode(tmp_path / "reg" / "verification.key") == 0o600


def test_missing_ca_directory_is_an_error_that_says_how_to_create_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        ("device", "issue", "--dir", tmp_path / "none", "--thing", "sensor-1"),
        ("device", "revoke", "--dir", tmp_path / "none", "--serial", "1a"),
        ("crl", "--dir", tmp_path / "none"),
        ("ca", "verification", "--dir", tmp_path / "none", "--registration-code", "x", "--out", tmp_path),
    ):
        status, out, err = run(capsys, *argv)
        assert status == 2
        assert out == ""
        assert f"no CA in {tmp_path / 'none'}" in err and "python -m device_pki ca create --dir" in err


def test_unknown_serial_is_an_error(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "device", "revoke", "--dir", ca_dir, "--serial", "0xABC")

    assert status == 2
    assert "error: serial abc was not issued by this CA (CLI Device CA)" in err


def test_revoking_twice_is_an_error(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "device", "issue", "--dir", ca_dir, "--thing", "sensor-1")
    serial_hex = re.search(r"^serial: ([0-9a-f]+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    assert run(capsys, "device", "revoke", "--dir", ca_dir, "--serial", serial_hex)[0] == 0

    status, _, err = run(capsys, "device", "revoke", "--dir", ca_dir, "--serial", serial_hex)

    assert status == 2
    assert f"serial {serial_hex} was already revoked" in err


def test_serial_that_is_not_hex_is_a_usage_error(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "device", "revoke", "--dir", ca_dir, "--serial", "sensor-1")

    assert status == 2
    assert "serial 'sensor-1' is not hexadecimal" in err


def test_creating_a_ca_over_an_existing_one_is_refused(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_before = (ca_dir / "ca.key").read_bytes()

    status, _, err = run(capsys, "ca", "create", "--dir", ca_dir)

    assert status == 2
    assert "already holds a CA" in err
    assert (ca_dir / "ca.key").read_bytes() == key_before


def test_thing_name_that_is_not_a_file_name_is_refused_and_not_recorded(
    ca_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_before = (ca_dir / "state.json").read_text()

    status, _, err = run(capsys, "device", "issue", "--dir", ca_dir, "--thing", "../escape")

    assert status == 2
    assert "'../escape' cannot be used as a file name" in err
    assert (ca_dir / "state.json").read_text() == state_before
    assert not (ca_dir / "escape.pem").exists()


def test_bad_numbers_are_errors(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "device", "issue", "--dir", ca_dir, "--thing", "sensor-1", "--days", "0")
    assert status == 2 and "valid_days must be at least 1" in err

    status, _, err = run(capsys, "crl", "--dir", ca_dir, "--days", "0")
    assert status == 2 and "next_update_days must be at least 1" in err


def test_unwritable_output_is_an_error_not_a_traceback(
    ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("not a directory")

    status, _, err = run(capsys, "device", "issue", "--dir", ca_dir, "--thing", "sensor-1", "--out", tmp_path / "file")

    assert status == 2
    assert "error:" in err and "Traceback" not in err


def test_runs_as_a_module(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "device_pki", "ca", "create", "--dir", str(tmp_path / "ca")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "created" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "device_pki", "crl", "--dir", str(tmp_path / "missing")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("python -m device_pki: error: no CA in")
