"""The Controller jig: the ingress controller of a class, how it is found, and the checks through it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from clusterproof import causes, pod_states, wait
from clusterproof.api_answers import unless_missing
from clusterproof.cluster import Cluster
from clusterproof.jigs.ingress.backends import service_backends, service_state
from clusterproof.jigs.ingress.classes import ClassInfo
from clusterproof.jigs.ingress.installs import (
    INGRESS_NGINX_CONTROLLER,
    INGRESS_NGINX_OFFLINE,
    KNOWN_CONTROLLERS,
    Install,
)
from clusterproof.jigs.ingress.tls import (
    certificate_subject,
    der_of,
    https_get_sni,
    presented_certificate,
    secret_certificate_state,
    secret_names_another_host,
)
from clusterproof.jigs.ingress.traffic import ROUTE_TIMEOUT, get, wait_answer
from clusterproof.probe import HttpAnswer

SERVING_TIMEOUT = 60.0  # a controller pod that is restarting gets this long to be Ready again
# words of IngressClass controller strings that name no particular controller
_GENERIC_WORDS = frozenset({"k8s", "io", "com", "org", "net", "dev", "ingress", "controller", "kubernetes", "x"})


@dataclass
class Controller:
    """The ingress controller that implements the class under test: where its pods and its
    Service are, what it is (name and version, as its image tag says), whether this run installed it."""

    cluster: Cluster
    class_name: str
    controller: str  # the IngressClass's spec.controller
    name: str  # ingress-nginx, traefik, or the controller string
    version: str
    namespace: str | None
    service_name: str | None
    pod_selector: str | None
    installed: Install | None = None  # what this run installed (removed when the module ends)
    why: str = ""  # how the class was chosen

    def describe(self) -> str:
        origin = ", installed by this run" if self.installed else ""
        return f"{self.name} {self.version} (IngressClass {self.class_name}{origin})"

    @property
    def is_ingress_nginx(self) -> bool:
        return self.controller == INGRESS_NGINX_CONTROLLER

    def require_ingress_nginx(self, what: str) -> None:
        """Skip unless the controller is ingress-nginx, naming the one under test (and offline,
        why there is no ingress-nginx)."""
        if self.is_ingress_nginx:
            return
        offline = f"; {INGRESS_NGINX_OFFLINE}" if self.cluster.offline else ""
        pytest.skip(f"{what} is ingress-nginx's; the controller under test is {self.describe()}{offline}")

    # --- its objects ---

    @property
    def service(self) -> client.V1Service | None:
        """Its Service, read now (ING-02 changes it)."""
        if not (self.namespace and self.service_name):
            return None
        return unless_missing(lambda: self.cluster.core.read_namespaced_service(self.service_name, self.namespace))

    def require_service(self) -> client.V1Service:
        service = self.service
        if service is None:
            where = f"{self.namespace}/{self.service_name}" if self.service_name else "none found"
            pytest.skip(
                f"no NodePort or LoadBalancer Service with ports 80 and 443 in front of ingress controller "
                f"{self.describe()} (looked for: {where}): the checks reach the controller through its node ports"
            )
        return service

    def pods(self) -> list[client.V1Pod]:
        if not (self.namespace and self.pod_selector):
            return []
        return self.cluster.core.list_namespaced_pod(self.namespace, label_selector=self.pod_selector).items

    def ready_pods(self) -> list[client.V1Pod]:
        return [p for p in self.pods() if pod_states.pod_is_ready(p)]

    def workloads(self) -> list[client.V1Deployment | client.V1DaemonSet]:
        """The Deployments and DaemonSets whose pods are the controller's."""
        if not (self.namespace and self.pod_selector):
            return []
        wanted = selector_labels(self.pod_selector)
        found: list[Any] = [
            *self.cluster.apps.list_namespaced_deployment(self.namespace).items,
            *self.cluster.apps.list_namespaced_daemon_set(self.namespace).items,
        ]
        return [w for w in found if wanted.items() <= ((w.spec.template.metadata.labels or {}).items())]

    def workload_state(self) -> str:
        """`Deployment traefik/traefik: 0 of 1 ready` (what runs the controller, in words)."""
        parts = [_workload_state(w) for w in self.workloads()]
        return "; ".join(parts) or f"no Deployment or DaemonSet in {self.namespace} runs pods {self.pod_selector}"

    def scaled_to_zero(self) -> str | None:
        """Why no controller pod can come (scaled to zero, a DaemonSet on no node), else None."""
        workloads = self.workloads()
        if workloads and all(_wants_none(w) for w in workloads):
            return "; ".join(f"{_workload_state(w)}: nothing runs the controller" for w in workloads)
        return None

    def unreachable(self) -> str | None:
        """Why nothing can answer through the controller's node ports, when known: nothing runs
        it, or its Service cannot route (clusterproof.causes.service_cause: no kube-proxy, no
        EndpointSlice while that controller is off)."""
        routing = None
        if self.namespace and self.service_name:
            routing = causes.service_cause(self.cluster, self.namespace, self.service_name)
        return self.scaled_to_zero() or routing

    def assert_serving(self, timeout: float = SERVING_TIMEOUT) -> None:
        """The controller MUST have a ready pod: what serves the class's Ingresses. Waits up to
        `timeout` for one (a pod restarting), gives up at once when nothing would run one."""
        wait.until_seen(
            self.pods,
            lambda pods: [p for p in pods if pod_states.pod_is_ready(p)] or None,
            f"a ready pod of ingress controller {self.describe()} in {self.namespace} ({self.pod_selector})",
            timeout,
            describe=lambda pods: f"{self.workload_state()}; pods: {pod_states.describe_pods(pods)}",
            final=lambda pods: None if any(pod_states.pod_is_ready(p) for p in pods) else self.scaled_to_zero(),
        )

    def node_port(self, port: int) -> int:
        service = self.service
        for p in (service.spec.ports if service else None) or []:
            if p.port == port and p.node_port:
                return p.node_port
        raise AssertionError(
            f"Service {self.namespace}/{self.service_name} of {self.describe()} has no node port for port {port}"
        )

    def node_ips(self) -> list[tuple[str, str]]:
        """(node name, InternalIP) where the node ports answer: every node, or with
        externalTrafficPolicy Local only the nodes running a ready controller pod."""
        nodes = [(n.name, n.internal_ip) for n in self.cluster.nodes if n.internal_ip]
        service = self.service
        if service and service.spec.external_traffic_policy == "Local":
            hosting = {p.spec.node_name for p in self.ready_pods()}
            nodes = [(name, ip) for name, ip in nodes if name in hosting]
        return nodes

    # --- traffic through it ---

    def assert_unknown_host_not_found(self, ip: str, port: int, where: str, timeout: float = 30) -> HttpAnswer:
        """The controller itself MUST answer a host no Ingress names: with 404."""
        return wait_answer(
            lambda: get(ip, port, "/", "no-such-host.clusterproof.test"),
            lambda a: a.status == 404,
            f"the 404 of ingress controller {self.describe()} for an unknown host via {where} {ip}:{port}",
            timeout=timeout,
            never=self.unreachable,
        )

    def assert_path_routed(self, namespace: str, host: str, path: str, service: str) -> None:
        """`path` (Host `host`) MUST be answered, through the controller's node port on every
        serving node, by a pod behind `service` (the Service the Ingress's rule names)."""
        backends = service_backends(self.cluster, namespace, service, what=f"{path} (Host {host})")
        port = self.node_port(80)
        for node, ip in self.node_ips():
            wait_answer(
                lambda ip=ip: get(ip, port, path, host),
                lambda a: a.ok and a.body.strip() in backends,
                f"{path} (Host {host}) via {node} {ip}:{port} answered by a pod of Service {service} "
                f"({', '.join(sorted(backends))}) through {self.describe()}",
                hint=lambda _: service_state(self.cluster, namespace, service),
                never=self.unreachable,
            )

    def assert_serves_certificate(self, namespace: str, secret: str, host: str, cert_pem: bytes, backend: str) -> None:
        """HTTPS with SNI `host` MUST be terminated, on the controller's 443 node port of every
        serving node, with the certificate of TLS Secret `secret` (verified, and the name checked),
        and answered by `backend`. A wrong certificate is named by its subject, and so is the one
        the Secret holds (its certificate only, never its key)."""
        ours = der_of(cert_pem)
        port = self.node_port(443)
        for node, ip in self.node_ips():
            where = f"{node} {ip}:{port}"
            wait.until_seen(
                lambda ip=ip: presented_certificate(ip, port, host),
                lambda der: der == ours or None,
                f"the certificate of Secret {secret} ({certificate_subject(ours)}) for SNI {host} via {where} "
                f"from {self.describe()}",
                ROUTE_TIMEOUT,
                describe=lambda der: f"certificate {certificate_subject(der)}",
                final=lambda _: secret_names_another_host(self.cluster, namespace, secret, host),
                never=self.unreachable,
                hint=lambda _: secret_certificate_state(self.cluster, namespace, secret, host),
            )
            wait_answer(
                lambda ip=ip: https_get_sni(ip, port, host, "/", cert_pem),
                lambda a: a.status == 200 and a.body.strip() == backend,
                f"HTTPS with SNI {host} via {where}, verified against Secret {secret}'s certificate, answered "
                f"by {backend}",
                never=self.unreachable,
            )


def selector_labels(selector: str) -> dict[str, str]:
    """`a=b,c=d` -> {"a": "b", "c": "d"} (equality selectors only)."""
    pairs = (part.split("=", 1) for part in selector.split(",") if "=" in part)
    return {k.strip(): v.strip() for k, v in pairs}


def _wants_none(workload: Any) -> bool:
    if isinstance(workload, client.V1DaemonSet):
        return (workload.status.desired_number_scheduled or 0) == 0 if workload.status else False
    return workload.spec.replicas == 0


def _workload_state(workload: Any) -> str:
    meta = workload.metadata
    if isinstance(workload, client.V1DaemonSet):
        s = workload.status
        ready, want = (s.number_ready or 0, s.desired_number_scheduled or 0) if s else (0, 0)
        return f"DaemonSet {meta.namespace}/{meta.name}: {ready} of {want} scheduled pods ready"
    want = workload.spec.replicas if workload.spec.replicas is not None else 1
    ready = (workload.status.ready_replicas or 0) if workload.status else 0
    scaled = " (scaled to zero)" if want == 0 else ""
    return f"Deployment {meta.namespace}/{meta.name}: {ready} of {want} replicas ready{scaled}"


def version_of(pods: Sequence[client.V1Pod]) -> str:
    """The controller's version as its image tag says (`...controller:v1.15.1@sha256:...` ->
    v1.15.1), else its app.kubernetes.io/version label, else "version unknown"."""
    for pod in pods:
        for container in pod.spec.containers or []:
            image = (container.image or "").split("@", 1)[0]
            name, _, tag = image.rpartition(":")
            if name and tag and "/" not in tag:
                return tag
        label = (pod.metadata.labels or {}).get("app.kubernetes.io/version")
        if label:
            return label if label.startswith("v") else f"v{label}"
    return "version unknown"


def find_controller(
    cluster: Cluster, target: ClassInfo, *, why: str = "", installed: Install | None = None
) -> Controller:
    """The controller of IngressClass `target`: its pods by the usual labels of a known controller
    (in the namespace of the one this run installed), its Service: the NodePort or LoadBalancer
    Service on 80 and 443 in front of those pods; for other controllers, such a Service whose
    namespace or name carries a word of the controller's name (`haproxy.org/ingress-controller` ->
    haproxy), and its pods through the Service's selector."""
    known = installed or KNOWN_CONTROLLERS.get(target.controller)
    namespace = service_name = selector = None
    pods: list[client.V1Pod] = []
    if installed is not None:
        namespace, service_name, selector = installed.namespace, installed.service, installed.pod_selector
        pods = cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
    elif known is not None:
        selector = known.pod_selector
        found = cluster.core.list_pod_for_all_namespaces(label_selector=selector).items
        pods = _of_class(found, target.name)
        namespace = pods[0].metadata.namespace if pods else None
    if installed is None:
        service = _front_service(cluster, target, namespace, pods)
        if service is not None:
            namespace, service_name = service.metadata.namespace, service.metadata.name
            if selector is None and service.spec.selector:
                selector = ",".join(f"{k}={v}" for k, v in sorted(service.spec.selector.items()))
                pods = cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
    name = known.name if known is not None else target.controller
    return Controller(
        cluster,
        class_name=target.name,
        controller=target.controller,
        name=name,
        version=version_of(pods) if pods else (installed.version if installed else "version unknown"),
        namespace=namespace,
        service_name=service_name,
        pod_selector=selector,
        installed=installed,
        why=why,
    )


def _of_class(pods: list[client.V1Pod], class_name: str) -> list[client.V1Pod]:
    """Of several installs of one controller, the pods whose arguments name the class."""
    namespaces = {p.metadata.namespace for p in pods}
    if len(namespaces) <= 1:
        return pods
    named = [
        p
        for p in pods
        for c in p.spec.containers or []
        if any(arg.endswith(f"={class_name}") and "class" in arg.lower() for arg in c.args or [])
    ]
    chosen = named[0].metadata.namespace if named else sorted(namespaces)[0]
    return [p for p in pods if p.metadata.namespace == chosen]


def _front_service(
    cluster: Cluster, target: ClassInfo, namespace: str | None, pods: list[client.V1Pod]
) -> client.V1Service | None:
    if namespace:
        candidates = cluster.core.list_namespaced_service(namespace).items
    else:
        words = controller_words(target.controller) | {target.name}
        candidates = [
            s
            for s in cluster.core.list_service_for_all_namespaces().items
            if any(w in s.metadata.namespace or w in s.metadata.name for w in words)
        ]
    fronting = [s for s in candidates if _exposes_web(s) and (not pods or _selects_any(s, pods))]
    fronting.sort(key=lambda s: (s.spec.type != "NodePort", s.metadata.namespace, s.metadata.name))
    return fronting[0] if fronting else None


def controller_words(controller: str) -> set[str]:
    """`haproxy.org/ingress-controller` -> {"haproxy"}; the words that name a controller."""
    words = {w for w in _split_words(controller) if len(w) > 2}
    return words - _GENERIC_WORDS


def _split_words(text: str) -> list[str]:
    out, word = [], ""
    for ch in text.lower():
        if ch.isalnum():
            word += ch
        elif word:
            out.append(word)
            word = ""
    return [*out, word] if word else out


def _exposes_web(service: client.V1Service) -> bool:
    ports = {p.port for p in service.spec.ports or [] if p.node_port}
    return service.spec.type in ("NodePort", "LoadBalancer") and {80, 443} <= ports


def _selects_any(service: client.V1Service, pods: list[client.V1Pod]) -> bool:
    selector = service.spec.selector or {}
    return bool(selector) and any(selector.items() <= (p.metadata.labels or {}).items() for p in pods)
