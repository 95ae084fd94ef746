"""`python -m device_pki`: a development CA for AWS IoT device onboarding (JITR) tests and the local runtime.

    ca create --dir DIR [--name CN] [--days N] [--key-type ec|rsa]        a new CA in DIR (refuses to replace one)
    ca verification --dir DIR --registration-code CODE --out DIR2       DIR2/verification.pem/.key for AWS
    device issue --dir DIR --thing NAME [--days N] [--out DIR2]         DIR2/<thing>.pem/.key (DIR2 = DIR/devices)
    device revoke --dir DIR --serial HEX [--reason keyCompromise]       onto the next CRL
    crl --dir DIR [--out FILE] [--pem] [--days N]                       publish the CRL (DIR/crl.der or crl.pem)

Exit status: 0 done; 2 the request cannot be done (no CA in DIR, unknown serial, ...), with the reason on stderr.
Private keys go to files with mode 0600 and are never printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from device_pki.authority import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    STATE_FILE,
    CertificateAuthority,
    PkiError,
    format_serial,
    parse_serial,
)

# removeFromCRL belongs to delta CRLs only, which this CA does not publish.
REASONS = {flag.value: flag for flag in x509.ReasonFlags if flag is not x509.ReasonFlags.remove_from_crl}


def _ca_create(args: argparse.Namespace) -> None:
    directory: Path = args.dir
    # Replacing a CA would orphan every certificate it issued (and one AWS may have registered).
    if any((directory / name).exists() for name in (CA_CERT_FILE, CA_KEY_FILE, STATE_FILE)):
        raise PkiError(f"{directory} already holds a CA; remove the directory first to replace it")
    ca = CertificateAuthority.create(common_name=args.name, valid_days=args.days, key_type=args.key_type)
    ca.save(directory)
    print(f"CA {ca.common_name!r} (serial {format_serial(ca.certificate.serial_number)}) created")
    print(f"certificate: {directory / CA_CERT_FILE}")
    print(f"valid until: {ca.certificate.not_valid_after_utc.isoformat()}")


def _ca_verification(args: argparse.Namespace) -> None:
    ca = CertificateAuthority.load(args.dir)
    issued = ca.verification_certificate(args.registration_code)
    cert_path, key_path = issued.save(args.out, "verification")
    ca.save(args.dir)
    print(f"verification certificate: {cert_path}")
    print(f"its key: {key_path}")
    print("register the CA with:")
    print(
        f"  aws iot register-ca-certificate --ca-certificate file://{args.dir / CA_CERT_FILE}"
        f" --verification-cert file://{cert_path} --set-as-active --allow-auto-registration"
    )


def _device_issue(args: argparse.Namespace) -> None:
    ca = CertificateAuthority.load(args.dir)
    out: Path = args.out or args.dir / "devices"
    issued = ca.issue_device(args.thing, valid_days=args.days, key_type=args.key_type)
    # The files first, then the CA's record: if writing fails, the CA has not recorded a certificate nobody has.
    cert_path, key_path = issued.save(out, args.thing)
    ca.save(args.dir)
    print(f"serial: {issued.serial_hex}")
    print(f"certificate: {cert_path}")
    print(f"key: {key_path}")


def _device_revoke(args: argparse.Namespace) -> None:
    ca = CertificateAuthority.load(args.dir)
    ca.revoke(args.serial, reason=REASONS[args.reason] if args.reason else None)
    ca.save(args.dir)
    reason = f" ({args.reason})" if args.reason else ""
    print(f"revoked serial {format_serial(args.serial)} (CN {ca.common_name_of(args.serial)!r}){reason}")
    print(f"publish it with: python -m device_pki crl --dir {args.dir}")


def _crl(args: argparse.Namespace) -> None:
    ca = CertificateAuthority.load(args.dir)
    out: Path = args.out or args.dir / ("crl.pem" if args.pem else "crl.der")
    data = ca.crl_pem(next_update_days=args.days).encode() if args.pem else ca.crl(next_update_days=args.days)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    ca.save(args.dir)  # the CRL number it used
    crl = x509.load_pem_x509_crl(data) if args.pem else x509.load_der_x509_crl(data)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    print(f"CRL number {number} with {len(crl)} revoked serial(s): {out}")
    print(f"next update: {crl.next_update_utc.isoformat() if crl.next_update_utc else 'none'}")


def _serial(text: str) -> int:
    try:
        return parse_serial(text)
    except PkiError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m device_pki",
        description="A development CA for AWS IoT device certificates (not for production).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def with_dir(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--dir", type=Path, required=True, help="the CA's directory (ca.pem, ca.key, state.json)")
        return sub

    ca = commands.add_parser("ca", help="create a CA or its AWS verification certificate")
    ca_commands = ca.add_subparsers(dest="ca_command", required=True)
    create = with_dir(ca_commands.add_parser("create", help="create a CA in an empty directory"))
    create.add_argument("--name", default="Example Device CA", help="the CA's Common Name")
    create.add_argument("--days", type=int, default=3650, help="validity in days (default 3650)")
    create.add_argument("--key-type", choices=["ec", "rsa"], default="ec", help="P-256 (default) or RSA 2048")
    create.set_defaults(run=_ca_create)
    verification = with_dir(
        ca_commands.add_parser("verification", help="the certificate AWS needs to register the CA")
    )
    verification.add_argument(
        "--registration-code", required=True, help="from `aws iot get-registration-code`; becomes the CN"
    )
    verification.add_argument("--out", type=Path, required=True, help="directory for verification.pem and .key")
    verification.set_defaults(run=_ca_verification)

    device = commands.add_parser("device", help="issue or revoke device certificates")
    device_commands = device.add_subparsers(dest="device_command", required=True)
    issue = with_dir(device_commands.add_parser("issue", help="a device certificate whose CN is the thing name"))
    issue.add_argument("--thing", required=True, help="the thing name (the certificate's CN and file name)")
    issue.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    issue.add_argument("--key-type", choices=["ec", "rsa"], default="ec", help="P-256 (default) or RSA 2048")
    issue.add_argument("--out", type=Path, help="directory for <thing>.pem and .key (default DIR/devices)")
    issue.set_defaults(run=_device_issue)
    revoke = with_dir(device_commands.add_parser("revoke", help="revoke a certificate this CA issued"))
    revoke.add_argument("--serial", type=_serial, required=True, help="the serial in hex, as `device issue` printed")
    revoke.add_argument("--reason", choices=sorted(REASONS), help="the CRL reason code (default none)")
    revoke.set_defaults(run=_device_revoke)

    crl = with_dir(commands.add_parser("crl", help="publish the CRL"))
    crl.add_argument("--out", type=Path, help="the CRL file (default DIR/crl.der, or DIR/crl.pem with --pem)")
    crl.add_argument("--pem", action="store_true", help="PEM instead of DER")
    crl.add_argument("--days", type=int, default=7, help="days until its next update (default 7)")
    crl.set_defaults(run=_crl)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except PkiError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    # A directory that cannot be written or read (permissions, a file where a directory should be).
    except OSError as error:
        print(f"{parser.prog}: error: {error.strerror}: {error.filename}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
