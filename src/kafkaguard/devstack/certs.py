"""A throw-away certificate authority for the secured dev stack, written into the run folder.

One CA signs a server certificate for every broker and for PostgreSQL (SANs ``IP:127.0.0.1`` and
``DNS:localhost``, so ``ssl.endpoint.identification.algorithm=https`` and libpq's
``sslmode=verify-full`` check the name) and a client certificate per principal (``CN=<principal>``:
the brokers map it to ``User:<principal>``, the same principal SCRAM gives). Keys are unencrypted
PKCS#8 PEM (the form Java's PEM keystore, KIP-651, and librdkafka both read), mode 0600; nothing
here is ever committed (the run folder is git-ignored). Existing files are kept, so ``dev up
--secure`` is idempotent and clients keep trusting the same CA across restarts.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafkaguard.errors import DevStackError

_VALID_DAYS = 825  # below the 825-day limit some TLS stacks enforce for server certificates


@dataclass(frozen=True)
class Credential:
    """A certificate and its key; ``pem`` holds both (key first), as Java's PEM keystore takes them."""

    certificate: Path
    key: Path
    pem: Path


def _crypto() -> Any:
    try:
        from cryptography import x509
    except ImportError as exc:
        raise DevStackError(
            "the secured dev stack generates its certificates with the `cryptography` package: "
            "pip install 'kafkaguard[secure-stack]'"
        ) from exc
    return x509


class CertificateAuthority:
    """The CA of one run folder (``<folder>/ca.crt``, ``ca.key``) and the certificates it issued."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.crt"

    def ensure(self) -> None:
        """Create the CA once."""
        if self.ca_file.exists() and (self.folder / "ca.key").exists():
            return
        x509 = _crypto()
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)  # PostgreSQL's service user reads its own files below
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "kafkaguard dev CA")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write_key(self.folder / "ca.key", key)
        _write(self.ca_file, _cert_pem(cert), 0o644)

    def issue(self, name: str, *, server: bool) -> Credential:
        """Return the credential ``name`` (``CN=<name>``), issuing it once; ``server``: with the loopback SANs."""
        self.ensure()
        cred = Credential(self.folder / f"{name}.crt", self.folder / f"{name}.key", self.folder / f"{name}.pem")
        if cred.certificate.exists() and cred.key.exists() and cred.pem.exists():
            return cred
        x509 = _crypto()
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        ca_key = serialization.load_pem_private_key((self.folder / "ca.key").read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usages = [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
        if server:
            usages.append(x509.oid.ExtendedKeyUsageOID.SERVER_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if server:
            sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write_key(cred.key, key)
        _write(cred.certificate, _cert_pem(cert), 0o644)
        _write(cred.pem, cred.key.read_bytes() + _cert_pem(cert), 0o600)
        return cred


def self_signed(folder: Path, name: str) -> Credential:
    """A client credential signed by nobody the stack trusts (for tests of a refused certificate)."""
    return CertificateAuthority(folder / f"untrusted-{name}").issue(name, server=False)


def _cert_pem(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_key(path: Path, key: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write(path, pem, 0o600)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)  # complete or absent: an interrupted run never leaves half a key
