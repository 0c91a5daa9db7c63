"""What `kafka up --secure` needs: a private CA, the broker's certificate, and SCRAM users.

Generated once per broker home with `openssl` (on every machine that has the JDK's
`keytool`, and more readable): a CA, a server certificate for 127.0.0.1/localhost
signed by it, and random passwords for two SCRAM-SHA-512 users, `broker` (the broker's
own inter-broker login) and `usage-pipeline` (every client). The private keys and the
credentials file are mode 0600; clients get only the CA certificate.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stream_app.errors import BrokerError

SCRAM_MECHANISM = "SCRAM-SHA-512"
CLIENT_USER = "usage-pipeline"
BROKER_USER = "broker"
CERT_DAYS = 825  # the longest validity clients accept for a server certificate


@dataclass(frozen=True)
class SecureMaterial:
    """Where a secure broker's certificates are, and its two SCRAM users' passwords."""

    directory: Path
    client_password: str
    broker_password: str

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def keystore_file(self) -> Path:
        """The broker's private key followed by its certificate (Kafka's PEM keystore)."""
        return self.directory / "server-keystore.pem"

    def __repr__(self) -> str:
        return f"SecureMaterial(directory={self.directory!s})"


def client_exports(bootstrap: str, material: SecureMaterial) -> dict[str, str]:
    """The settings a client of the secure broker needs (SPEC.md §5 names)."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
        "KAFKA_SASL_USERNAME": CLIENT_USER,
        "KAFKA_SASL_PASSWORD": material.client_password,
        "KAFKA_SSL_CAFILE": str(material.ca_file),
    }


def scram_format_arguments(material: SecureMaterial) -> list[str]:
    """`kafka-storage format` arguments that create both SCRAM users in the new cluster's metadata."""
    return [
        "--add-scram", f"{SCRAM_MECHANISM}=[name={BROKER_USER},password={material.broker_password}]",
        "--add-scram", f"{SCRAM_MECHANISM}=[name={CLIENT_USER},password={material.client_password}]",
    ]


def secure_listener_properties(material: SecureMaterial) -> dict[str, str]:
    """server.properties entries of the SASL_SSL listener (named SECURE)."""
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{BROKER_USER}" password="{material.broker_password}";'
    )
    return {
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        f"listener.name.secure.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(material.keystore_file),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(material.ca_file),
        "ssl.client.auth": "none",
    }


def ensure_secure_material(directory: Path) -> SecureMaterial:
    """The CA, certificate and passwords of `directory`, made the first time."""
    credentials = directory / "credentials.json"
    if credentials.is_file():
        raw = json.loads(credentials.read_text())
        material = SecureMaterial(directory, raw["client_password"], raw["broker_password"])
        if material.ca_file.is_file() and material.keystore_file.is_file():
            return material
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    material = SecureMaterial(directory, secrets.token_urlsafe(24), secrets.token_urlsafe(24))
    _make_certificates(directory)
    descriptor = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"client_password": material.client_password, "broker_password": material.broker_password}, handle)
    return material


def _make_certificates(directory: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerError("`kafka up --secure` needs `openssl` to make its CA: apt-get install -y openssl")
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    server_key, server_csr, server_cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    extensions = directory / "server.ext"
    # Python 3.13+ verifies strictly (VERIFY_X509_STRICT): key identifiers and usages are required.
    extensions.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    steps = [
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_cert,
         "-days", "3650", "-subj", "/CN=usage-pipeline local Kafka CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", server_key, "-out", server_csr,
         "-subj", "/CN=localhost"],
        [openssl, "x509", "-req", "-in", server_csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
         "-out", server_cert, "-days", str(CERT_DAYS), "-extfile", extensions],
    ]
    for step in steps:
        result = subprocess.run([str(part) for part in step], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerError(f"making the broker's certificates failed: {' '.join(map(str, step[:3]))}: {result.stderr.strip()}")
    for key in (ca_key, server_key):
        os.chmod(key, 0o600)
    keystore = directory / "server-keystore.pem"
    descriptor = os.open(keystore, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(server_key.read_text() + server_cert.read_text())
    server_csr.unlink(missing_ok=True)
