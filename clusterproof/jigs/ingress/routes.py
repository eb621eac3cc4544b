"""What a route MUST do, checked through any entry point of what serves it: an ingress controller's
node port on each serving node, or a Gateway's address and listener port. Each check names the
entry point, what it expected, the last answer, and (where there is one) what no waiting cures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from clusterproof import wait
from clusterproof.cluster import Cluster
from clusterproof.errors import ProbeError
from clusterproof.jigs.ingress.backends import service_backends, service_state
from clusterproof.jigs.ingress.tls import (
    TlsAnswer,
    certificate_subject,
    der_of,
    https_get_sni,
    presented_certificate,
    secret_certificate_state,
    secret_names_another_host,
)
from clusterproof.jigs.ingress.traffic import ROUTE_TIMEOUT, get, wait_answer
from clusterproof.probe import HttpAnswer

Never = Callable[[], str | None] | None
WEB_PORTS = ((80, "http"), (443, "https"))
UNKNOWN_HOST = "no-such-host.clusterproof.test"


@dataclass(frozen=True)
class EntryPoint:
    """Where a client reaches what serves the routes: `where` names it in messages."""

    where: str  # "kind-worker 172.18.0.3:31080", "Gateway web's address 172.18.0.3:80"
    ip: str
    port: int
    scheme: str = "http"  # or "https" (only looked at: any certificate)


def assert_unknown_host_not_found(entry: EntryPoint, through: str, *, timeout: float = 30, never: Never = None) -> None:
    """What serves the routes MUST answer a host no route names: with 404."""
    wait_answer(
        lambda: get(entry.ip, entry.port, "/", UNKNOWN_HOST),
        lambda a: a.status == 404,
        f"the 404 of {through} for an unknown host via {entry.where}",
        timeout=timeout,
        never=never,
    )


def assert_path_routed(
    cluster: Cluster,
    entries: Sequence[EntryPoint],
    namespace: str,
    host: str,
    path: str,
    service: str,
    through: str,
    *,
    never: Never = None,
    hint: wait.Hint = None,
) -> None:
    """`path` (Host `host`) MUST be answered, at every entry point, by a pod behind `service` (the
    Service the route names for it)."""
    backends = service_backends(cluster, namespace, service, what=f"{path} (Host {host})")
    for entry in entries:
        wait_answer(
            lambda entry=entry: get(entry.ip, entry.port, path, host),
            lambda a: a.ok and a.body.strip() in backends,
            f"{path} (Host {host}) via {entry.where} answered by a pod of Service {service} "
            f"({', '.join(sorted(backends))}) through {through}",
            hint=hint or (lambda _: service_state(cluster, namespace, service)),
            never=never,
        )


def assert_serves_certificate(
    cluster: Cluster,
    entries: Sequence[EntryPoint],
    namespace: str,
    secret: str,
    host: str,
    cert_pem: bytes,
    backend: str,
    through: str,
    *,
    never: Never = None,
) -> None:
    """HTTPS with SNI `host` MUST be terminated, at every entry point, with the certificate of TLS
    Secret `secret` (verified, and the name checked), and answered by `backend`. A wrong certificate
    is named by its subject, and so is the one the Secret holds (its certificate only, never its key)."""
    ours = der_of(cert_pem)
    for entry in entries:
        wait.until_seen(
            lambda entry=entry: presented_certificate(entry.ip, entry.port, host),
            lambda der: der == ours or None,
            f"the certificate of Secret {secret} ({certificate_subject(ours)}) for SNI {host} via {entry.where} "
            f"from {through}",
            ROUTE_TIMEOUT,
            describe=lambda der: f"certificate {certificate_subject(der)}",
            final=lambda _: secret_names_another_host(cluster, namespace, secret, host),
            never=never,
            hint=lambda _: secret_certificate_state(cluster, namespace, secret, host),
        )
        wait_answer(
            lambda entry=entry: https_get_sni(entry.ip, entry.port, host, "/", cert_pem),
            lambda a: a.status == 200 and a.body.strip() == backend,
            f"HTTPS with SNI {host} via {entry.where}, verified against Secret {secret}'s certificate, answered "
            f"by {backend}",
            never=never,
        )


def assert_another_name_gets_another_certificate(entry: EntryPoint, host: str, cert_pem: bytes, through: str) -> None:
    """The certificate is chosen by SNI: a name the route does not name MUST NOT get the Secret's."""
    other = presented_certificate(entry.ip, entry.port, host)
    assert other != der_of(cert_pem), (
        f"{through} presented the Secret's certificate for {host} via {entry.where}, a host the route does not name"
    )


def answer_at(entry: EntryPoint, host: str, path: str) -> HttpAnswer | TlsAnswer | None:
    """What answers at `entry` for `host` and `path` (over HTTPS with SNI `host` where the entry
    point is TLS, any certificate), or None when nothing answers there."""
    try:
        if entry.scheme == "https":
            return https_get_sni(entry.ip, entry.port, host, path, None)
        return get(entry.ip, entry.port, path, host)
    except ProbeError:
        return None


def node_entry_points(cluster: Cluster) -> list[EntryPoint]:
    """Port 80 (HTTP) and 443 (HTTPS) of every node: where a bare-metal controller may listen too."""
    nodes = [(n.name, n.internal_ip) for n in cluster.nodes if n.internal_ip]
    return [EntryPoint(f"{name} {ip}:{port}", ip, port, scheme) for name, ip in nodes for port, scheme in WEB_PORTS]


def assert_not_served(
    entries: Sequence[EntryPoint], host: str, paths: Sequence[str], backends: set[str], what: str
) -> list[str]:
    """Nothing MUST serve `what` (a declaration): at no entry point are `host`'s paths answered by one
    of `backends`. What each entry point gave instead (nothing listening, another answer) is returned."""
    seen = []
    for entry in entries:
        for path in paths:
            answer = answer_at(entry, host, path)
            if answer is None:
                seen.append(f"{entry.where}{path}: nothing answers")
                continue
            body = answer.body.strip()
            assert body not in backends, (
                f"{entry.where}{path} (Host {host}) answered from backend {body!r}: something serves {what}"
            )
            seen.append(f"{entry.where}{path}: {answer.status} {body[:40]!r}")
    return seen


@dataclass(frozen=True)
class AsIngressNginx:
    """A request whose answer ingress-nginx defines for the notes' Ingresses, to hold another
    implementation of its class (Traefik's ingress-nginx provider) against."""

    path: str
    answered_by: frozenset[str]  # the pods whose answer ingress-nginx gives
    wrong: frozenset[str]  # pods whose answer means the request was routed to another Service
    nginx: str  # what ingress-nginx does, in words


def differences_from_ingress_nginx(
    entries: Sequence[EntryPoint], host: str, cases: Sequence[AsIngressNginx], through: str
) -> list[str]:
    """Each case asked once at every entry point (its route is in place): an answer from a pod of
    another Service fails (misrouted); any other answer than ingress-nginx's is a difference, in
    words for the claim's reason (the documented ones: regex paths, trailing slashes)."""
    found = []
    for case in cases:
        for entry in entries:
            answer = answer_at(entry, host, case.path)
            body = answer.body.strip() if answer is not None else ""
            assert body not in case.wrong, (
                f"{case.path} (Host {host}) via {entry.where} answered by {body} through {through}: routed to "
                f"another Service ({case.nginx})"
            )
            if answer is None or not (200 <= answer.status < 300 and body in case.answered_by):
                seen = "nothing" if answer is None else f"HTTP {answer.status} {body[:40]!r}"
                found.append(f"{case.path} answered {seen} via {entry.where}, where {case.nginx}")
                break
    return found
