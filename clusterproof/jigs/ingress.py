"""Ingress verbs: find an ingress controller (ingress-nginx, bare-metal install), route HTTP and
HTTPS through its node ports, patch its Service, and read which Ingress APIs the server serves.

Traffic from the test host goes to node InternalIPs only (node ports, or port 80 / 443 on a node IP).
"""

from __future__ import annotations

import base64
import datetime
import importlib.util
import json
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from clusterproof import wait
from clusterproof.cluster import Cluster
from clusterproof.errors import ProbeError
from clusterproof.probe import HttpAnswer, http_get

NGINX_NAMESPACE = "ingress-nginx"
CONTROLLER_SERVICE = "ingress-nginx-controller"
ADMISSION_SERVICE = "ingress-nginx-controller-admission"
CONTROLLER_POD_SELECTOR = "app.kubernetes.io/component=controller"
ADMISSION_JOBS = ("ingress-nginx-admission-create", "ingress-nginx-admission-patch")
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
ROUTE_TIMEOUT = 90.0  # the controller syncs a new Ingress into nginx.conf within seconds; reloads can lag

A = TypeVar("A")  # HttpAnswer or TlsAnswer: both have .status and .body


# --- is there a controller? ------------------------------------------------------------------


def ingress_classes(cluster: Cluster) -> list[client.V1IngressClass]:
    try:
        return cluster.networking.list_ingress_class().items
    except ApiException as e:
        if e.status == 404:  # before 1.19: no networking.k8s.io/v1 IngressClass
            return []
        raise


def describe_classes(classes: Iterable[client.V1IngressClass]) -> str:
    names = [f"{c.metadata.name} ({c.spec.controller})" for c in classes]
    return ", ".join(names) or "none"


def default_classes(classes: Iterable[client.V1IngressClass]) -> list[str]:
    annotated = ((c.metadata.name, (c.metadata.annotations or {}).get(DEFAULT_CLASS_ANNOTATION)) for c in classes)
    return [name for name, value in annotated if value == "true"]


@dataclass
class NginxInstall:
    """What the bare-metal ingress-nginx install put into the cluster."""

    cluster: Cluster
    namespace: str
    service: client.V1Service | None
    pods: list[client.V1Pod]

    @property
    def ready_pods(self) -> list[client.V1Pod]:
        return [p for p in self.pods if wait.pod_is_ready(p)]

    def node_port(self, port: int) -> int:
        for p in (self.service.spec.ports if self.service else None) or []:
            if p.port == port and p.node_port:
                return p.node_port
        raise AssertionError(f"Service {self.namespace}/{CONTROLLER_SERVICE} has no node port for port {port}")

    def node_ips(self) -> list[tuple[str, str]]:
        """(node name, InternalIP) where the node ports answer: every node, or with
        externalTrafficPolicy Local only the nodes running a ready controller pod."""
        nodes = [(n.name, n.internal_ip) for n in self.cluster.nodes if n.internal_ip]
        if self.service and self.service.spec.external_traffic_policy == "Local":
            hosting = {p.spec.node_name for p in self.ready_pods}
            nodes = [(name, ip) for name, ip in nodes if name in hosting]
        return nodes


def find_ingress_nginx(cluster: Cluster) -> tuple[NginxInstall | None, str]:
    """The install, or None and what is missing (in words for a skip reason)."""
    try:
        cluster.core.read_namespace(NGINX_NAMESPACE)
    except ApiException as e:
        if e.status != 404:
            raise
        classes = ingress_classes(cluster)
        return None, (
            f"no ingress controller installed: no namespace {NGINX_NAMESPACE} "
            f"(IngressClasses: {describe_classes(classes)}); ING-01..05 need the bare-metal ingress-nginx install"
        )
    pods = cluster.core.list_namespaced_pod(NGINX_NAMESPACE, label_selector=CONTROLLER_POD_SELECTOR).items
    try:
        service = cluster.core.read_namespaced_service(CONTROLLER_SERVICE, NGINX_NAMESPACE)
    except ApiException as e:
        if e.status != 404:
            raise
        service = None
    return NginxInstall(cluster, NGINX_NAMESPACE, service, pods), ""


def require_ingress_nginx(cluster: Cluster, *, serving: bool = True) -> NginxInstall:
    """Skip unless ingress-nginx is installed (and, with `serving`, has a ready controller
    behind its controller Service)."""
    install, reason = find_ingress_nginx(cluster)
    if install is None:
        pytest.skip(reason)
    if serving and (install.service is None or not install.ready_pods):
        pods = wait.describe_pods(install.pods)
        service = "present" if install.service else "missing"
        pytest.skip(f"ingress-nginx is not serving: controller pods {pods}; Service {CONTROLLER_SERVICE} {service}")
    return install


def read_job(cluster: Cluster, namespace: str, name: str) -> client.V1Job | None:
    try:
        return cluster.batch.read_namespaced_job(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def controller_claims(cluster: Cluster, class_name: str) -> bool:
    """Whether some controller implements IngressClass `class_name` (the class exists, or an
    ingress-nginx controller is running, which owns class "nginx" even without the object)."""
    if any(c.metadata.name == class_name for c in ingress_classes(cluster)):
        return True
    install, _ = find_ingress_nginx(cluster)
    return class_name == "nginx" and install is not None and bool(install.ready_pods)


# --- Ingress documents -------------------------------------------------------------------------


def ingresses(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == "Ingress"]


def set_host(docs: list[dict[str, Any]], host: str) -> list[dict[str, Any]]:
    """Give every rule (and TLS entry) of the Ingresses one host: a per-test host keeps tests
    apart on a shared controller, where host-less rules of different namespaces would collide."""
    for doc in ingresses(docs):
        for rule in doc["spec"].get("rules") or []:
            rule["host"] = host
        for tls in doc["spec"].get("tls") or []:
            tls["hosts"] = [host]
    return docs


def set_class(docs: list[dict[str, Any]], class_name: str) -> list[dict[str, Any]]:
    for doc in ingresses(docs):
        doc["spec"]["ingressClassName"] = class_name
    return docs


def load_balancer_addresses(ingress: Any) -> list[str]:
    status = ingress.get("status") if isinstance(ingress, dict) else ingress.status
    if not status:
        return []
    lb = status.get("loadBalancer") if isinstance(status, dict) else status.load_balancer
    entries = (lb.get("ingress") if isinstance(lb, dict) else lb.ingress) if lb else None
    found = []
    for entry in entries or []:
        ip = entry.get("ip") if isinstance(entry, dict) else entry.ip
        hostname = entry.get("hostname") if isinstance(entry, dict) else entry.hostname
        found.append(ip or hostname or "?")
    return found


def address_within(cluster: Cluster, namespace: str, name: str, window: float) -> list[str]:
    """Watch Ingress `name` for `window` seconds; the status addresses it got ([] when none)."""
    return wait.seen_within(
        cluster.networking.list_namespaced_ingress,
        lambda objs: load_balancer_addresses(objs[name]) if name in objs else [],
        window,
        default=[],
        namespace=namespace,
        field_selector=f"metadata.name={name}",
    )


# --- HTTP through the controller ---------------------------------------------------------------


def get(ip: str, port: int, path: str, host: str, *, timeout: float = 3) -> HttpAnswer:
    return http_get(f"http://{ip}:{port}{path}", headers={"Host": host}, timeout=timeout)


def wait_answer(
    fetch: Callable[[], A],
    matches: Callable[[A], bool],
    expected: str,
    timeout: float = ROUTE_TIMEOUT,
) -> A:
    """Repeat `fetch` (an HttpAnswer or TlsAnswer; no answer at all is a ProbeError, retried)
    until its answer matches; a timeout names the last answer."""
    return wait.until_seen(
        fetch,
        lambda answer: answer if matches(answer) else None,
        expected,
        timeout,
        describe=lambda answer: f"HTTP {answer.status} {answer.body.strip()[:120]!r}",
    )


def answers_with(name: str) -> Callable[[HttpAnswer], bool]:
    return lambda answer: answer.ok and answer.body.strip() == name


# --- HTTPS with SNI ------------------------------------------------------------------------------


def require_cryptography() -> None:
    if importlib.util.find_spec("cryptography") is None:
        pytest.skip("the python package `cryptography` is not installed: cannot make the self-signed TLS Secret")


def self_signed_certificate(host: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for `host` (CN and SAN), valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
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


def https_get_sni(ip: str, port: int, host: str, path: str, trusted_pem: bytes, *, timeout: float = 5) -> TlsAnswer:
    """HTTPS to ip:port with SNI `host`, trusting only `trusted_pem` and checking the name.
    Raises ProbeError when no verified TLS answer comes back."""
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
        raise ProbeError(f"https://{ip}:{port}{path} (SNI {host}): {type(e).__name__}: {e}") from None
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


# --- the controller Service's external IPs -----------------------------------------------------


def external_ip_column(cluster: Cluster, namespace: str, service: str) -> str:
    """The EXTERNAL-IP column of `kubectl get service`, as a person would read it."""
    out = cluster.kubectl("get", "service", service, "-n", namespace, "--no-headers").stdout.split()
    return out[3] if len(out) > 3 else f"<unreadable: {' '.join(out)!r}>"


def patch_service_spec(cluster: Cluster, namespace: str, service: str, spec: dict[str, Any]) -> None:
    """A merge patch, as the notes' `kubectl edit` would leave it."""
    patch = json.dumps({"spec": spec})
    cluster.kubectl("patch", "service", service, "-n", namespace, "--type", "merge", "-p", patch)


# --- which Ingress APIs the server serves ------------------------------------------------------


def served_versions(cluster: Cluster, group: str) -> list[str]:
    """Versions of an API group, from live discovery (/apis), not a cache."""
    groups = client.ApisApi(cluster.api).get_api_versions().groups
    return [v.version for g in groups if g.name == group for v in g.versions]


def serves_resource(cluster: Cluster, group_version: str, plural: str) -> bool:
    """Whether /apis/<group_version> lists `plural` (live request)."""
    try:
        found = cluster.dynamic.request("GET", f"/apis/{group_version}")
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return any(r.name == plural for r in found.resources)
