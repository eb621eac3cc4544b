"""TLS for the Ingress checks: self-signed certificates, what a TLS Secret holds, HTTPS with SNI."""

from __future__ import annotations

import base64
import datetime
import importlib.util
import socket
import ssl
from dataclasses import dataclass

import pytest
from kubernetes.client import ApiException

from clusterproof import urls
from clusterproof.cluster import Cluster
from clusterproof.errors import ProbeError


def der_of(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode("ascii"))


def certificate_subject(der: bytes) -> str:
    """`CN=tls.x.clusterproof.test (SAN tls.x.clusterproof.test)` for a DER certificate."""
    if not der:
        return "none presented"
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        names = []
    san = f" (SAN {', '.join(names)})" if names else ""
    return f"{cert.subject.rfc4514_string() or 'empty subject'}{san}"


def secret_certificate_state(cluster: Cluster, namespace: str, secret: str, host: str) -> str:
    """What certificate the test's own TLS Secret holds now (its tls.crt only), and whether it names
    `host`: the hint of a wrong certificate."""
    subject, problem = _secret_subject(cluster, namespace, secret)
    if problem:
        return problem
    return _names_another_host(secret, subject, host) or f"Secret {secret} holds a certificate for {subject}"


def secret_names_another_host(cluster: Cluster, namespace: str, secret: str, host: str) -> str | None:
    """The test's own TLS Secret holds a certificate that does not name `host`: nothing changes it
    while the test waits, so no controller will ever present the Secret's certificate for `host`."""
    subject, problem = _secret_subject(cluster, namespace, secret)
    return None if problem else _names_another_host(secret, subject, host)


def _names_another_host(secret: str, subject: str, host: str) -> str | None:
    return None if host in subject else f"Secret {secret} holds a certificate for {subject}, which does not name {host}"


def _secret_subject(cluster: Cluster, namespace: str, secret: str) -> tuple[str, str | None]:
    """(subject of the Secret's tls.crt, or why there is none to read)."""
    try:
        data = cluster.core.read_namespaced_secret(secret, namespace).data or {}
    except ApiException as e:
        return "", f"Secret {secret} cannot be read: HTTP {e.status} {e.reason}"
    if "tls.crt" not in data:
        return "", f"Secret {secret} has no tls.crt"
    pem = base64.b64decode(data["tls.crt"]).decode("ascii", "replace")
    try:
        der = ssl.PEM_cert_to_DER_cert(pem)
    except ValueError:
        return "", f"Secret {secret}'s tls.crt is not a PEM certificate"
    return certificate_subject(der), None


def require_cryptography() -> None:
    if importlib.util.find_spec("cryptography") is None:
        pytest.skip("the python package `cryptography` is not installed: cannot make the self-signed TLS Secret")


def self_signed_certificate(host: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for `host` (SAN, and CN when it fits), valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    # X.509 caps the CN at 64 characters; clients check the SAN, the CN is only a label
    common_name = host if len(host) <= 64 else "clusterproof self-signed"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        # the certificate is its own trust anchor: strict verifiers want the key identifiers
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class TlsAnswer:
    certificate: bytes  # DER of the certificate the server presented
    status: int
    body: str


def https_get_sni(
    ip: str, port: int, host: str, path: str, trusted_pem: bytes | None, *, timeout: float = 5
) -> TlsAnswer:
    """HTTPS to ip:port with SNI `host`, trusting only `trusted_pem` and checking the name (None: any
    certificate, unchecked: only to see what answers). Raises ProbeError when no TLS answer comes back."""
    if trusted_pem is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cadata=trusted_pem.decode("ascii"))
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    try:
        with (
            socket.create_connection((ip, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True) or b""
            tls.sendall(request)
            response = _read_all(tls)
    except (OSError, ssl.SSLError) as e:
        raise ProbeError(f"{urls.url(ip, port, path, 'https')} (SNI {host}): {type(e).__name__}: {e}") from None
    head, _, body = response.decode("utf-8", "replace").partition("\r\n\r\n")
    status_line = head.split("\r\n", 1)[0].split()
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
    return TlsAnswer(der, status, _dechunk(head, body))


def presented_certificate(ip: str, port: int, sni: str, *, timeout: float = 5) -> bytes:
    """DER of the certificate the server presents for SNI `sni` (not verified: just looked at)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((ip, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=sni) as tls,
        ):
            return tls.getpeercert(binary_form=True) or b""
    except (OSError, ssl.SSLError) as e:
        raise ProbeError(f"TLS to {ip}:{port} (SNI {sni}): {type(e).__name__}: {e}") from None


def _read_all(sock: ssl.SSLSocket) -> bytes:
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _dechunk(head: str, body: str) -> str:
    if "transfer-encoding: chunked" not in head.lower():
        return body
    out, rest = [], body
    while rest:
        size_line, _, rest = rest.partition("\r\n")
        size = int(size_line.strip() or "0", 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return "".join(out)
