"""The Controller jig: the ingress controller of a class, how it is found, and the checks through it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client

from clusterproof import causes, journal, pod_states, wait
from clusterproof.api_answers import unless_missing
from clusterproof.cluster import Cluster
from clusterproof.jigs.ingress import routes
from clusterproof.jigs.ingress.classes import ClassInfo
from clusterproof.jigs.ingress.installs import (
    INGRESS_NGINX,
    INGRESS_NGINX_CONTROLLER,
    INGRESS_NGINX_FINAL,
    INGRESS_NGINX_OFFLINE,
    Install,
    known_for,
    support_of,
)
from clusterproof.jigs.ingress.routes import EntryPoint
from clusterproof.jigs.ingress.traffic import get, wait_answer

if TYPE_CHECKING:
    from clusterproof.tracker import ResourceTracker

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
    provider: str = ""  # how it serves the class when the class names another controller ("ingress-nginx provider")

    def describe(self) -> str:
        details = [p for p in (self.provider, f"IngressClass {self.class_name}") if p]
        if self.installed:
            details.append("installed by this run")
        return f"{self.name} {self.version} ({', '.join(details)})"

    def observed_on(self) -> str:
        """What a verdict was observed on: the controller, and for ingress-nginx the Kubernetes
        version beside the releases it supports."""
        if not self.is_ingress_nginx:
            return self.describe()
        pairing = support_of(self.version, self.cluster.server_version, self.cluster.git_version)
        return f"{self.describe()} {pairing}"

    @property
    def is_ingress_nginx(self) -> bool:
        """ingress-nginx itself (not another controller serving its class)."""
        return self.controller == INGRESS_NGINX_CONTROLLER and self.name == INGRESS_NGINX.name

    @property
    def reads_nginx_annotations(self) -> bool:
        """It serves IngressClasses of controller k8s.io/ingress-nginx: ingress-nginx, or another
        controller's ingress-nginx provider (Traefik's reads rewrite-target from v3.7.0)."""
        return self.controller == INGRESS_NGINX_CONTROLLER

    def require_ingress_nginx(self, what: str) -> None:
        """Skip unless the controller is ingress-nginx itself, naming the one under test (and
        offline, why there is no ingress-nginx)."""
        if self.is_ingress_nginx:
            return
        offline = ""
        if self.cluster.offline:
            offline = f"; {INGRESS_NGINX_FINAL}, and cannot be had offline: {INGRESS_NGINX_OFFLINE}"
        pytest.skip(f"{what} is ingress-nginx's own; the controller under test is {self.describe()}{offline}")

    def require_nginx_annotations(self, what: str) -> None:
        """Skip unless the controller serves the ingress-nginx class (reads its annotations), naming it."""
        if not self.reads_nginx_annotations:
            pytest.skip(
                f"{what} is an ingress-nginx annotation; the controller under test, {self.describe()}, serves "
                f"IngressClass {self.class_name} of controller {self.controller}, not {INGRESS_NGINX_CONTROLLER}"
            )

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

    def hold_service(self, tracker: ResourceTracker, run_id: str) -> client.V1Service:
        """Before a test changes the controller's Service: what puts its externalIPs and
        externalTrafficPolicy back is journaled on the cluster (clusterproof.journal: the sweep puts
        them back after a kill) and done when the test ends. A Service another run is changing is
        not touched: skipped, naming that run."""
        service = self.require_service()
        spec = service.spec
        entry = journal.Entry(
            run_id,
            service.metadata.namespace,
            service.metadata.name,
            {"externalIPs": spec.external_ips, "externalTrafficPolicy": spec.external_traffic_policy},
        )
        try:
            journal.hold(self.cluster.core, entry)
        except journal.Held as e:
            pytest.skip(str(e))
        restore = lambda: journal.restore(self.cluster.core, entry)  # noqa: E731
        tracker.on_cleanup(self.cluster, f"put back {entry.describe()}", restore)
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
        if not (self.namespace and self.pod_selector):
            return "no controller pods found"
        parts = [_workload_state(w) for w in self.workloads()]
        return "; ".join(parts) or f"no Deployment or DaemonSet in {self.namespace} runs pods {self.pod_selector}"

    def stopped(self) -> str | None:
        """Why no controller pod will be ready: none was found, or nothing runs one."""
        return self.not_found() or self.scaled_to_zero()

    def not_found(self) -> str | None:
        """Why no controller pod can be watched: none was found serving the class, else None."""
        if self.namespace and self.pod_selector:
            return None
        return (
            f"nothing found serving IngressClass {self.class_name} (controller {self.controller}): no pods of a "
            "known controller of it (for k8s.io/ingress-nginx: ingress-nginx's, or Traefik's with its ingress-nginx "
            "provider turned on) and no NodePort or LoadBalancer Service on 80 and 443 named after it"
        )

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
        return self.stopped() or routing

    def assert_serving(self, timeout: float = SERVING_TIMEOUT) -> None:
        """The controller MUST have a ready pod: what serves the class's Ingresses. Waits up to
        `timeout` for one (a pod restarting), gives up at once when nothing would run one."""
        wait.until_seen(
            self.pods,
            lambda pods: [p for p in pods if pod_states.pod_is_ready(p)] or None,
            f"a ready pod of ingress controller {self.describe()}"
            + (f" in {self.namespace} ({self.pod_selector})" if self.namespace else ""),
            timeout,
            describe=lambda pods: f"{self.workload_state()}; pods: {pod_states.describe_pods(pods)}",
            final=lambda pods: None if any(pod_states.pod_is_ready(p) for p in pods) else self.stopped(),
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

    def entry_points(self, port: int, scheme: str = "http") -> list[EntryPoint]:
        """The controller's node port for `port` on every node that serves it."""
        node_port = self.node_port(port)
        return [EntryPoint(f"{node} {ip}:{node_port}", ip, node_port, scheme) for node, ip in self.node_ips()]

    # --- traffic through it ---

    def assert_unknown_host_not_found(self, ip: str, port: int, where: str, timeout: float = 30) -> None:
        """The controller itself MUST answer a host no Ingress names: with 404."""
        entry = EntryPoint(f"{where} {ip}:{port}", ip, port)
        routes.assert_unknown_host_not_found(
            entry, f"ingress controller {self.describe()}", timeout=timeout, never=self.unreachable
        )

    def assert_path_routed(self, namespace: str, host: str, path: str, service: str) -> None:
        """`path` (Host `host`) MUST be answered, through the controller's node port on every
        serving node, by a pod behind `service` (the Service the Ingress's rule names)."""
        routes.assert_path_routed(
            self.cluster, self.entry_points(80), namespace, host, path, service, self.describe(),
            never=self.unreachable,
        )

    def assert_as_ingress_nginx(self, host: str, cases: Sequence[routes.AsIngressNginx]) -> list[str]:
        """Requests whose answer ingress-nginx defines MUST be answered so by ingress-nginx itself and
        by a controller that ignores its annotations (the path routes by Prefix alone); by another
        implementation of its class they are compared, and where it answers otherwise, the
        differences are returned in words (a request routed to another Service fails everywhere)."""
        entries = self.entry_points(80)
        if self.reads_nginx_annotations and not self.is_ingress_nginx:
            return routes.differences_from_ingress_nginx(entries, host, cases, self.describe())
        for case in cases:
            for entry in entries:
                wait_answer(
                    lambda entry=entry, case=case: get(entry.ip, entry.port, case.path, host),
                    lambda a, case=case: a.ok and a.body.strip() in case.answered_by,
                    f"{case.path} (Host {host}) via {entry.where} answered by {', '.join(sorted(case.answered_by))} "
                    f"through {self.describe()}, as {case.nginx}",
                    never=self.unreachable,
                )
        return []

    def assert_serves_certificate(self, namespace: str, secret: str, host: str, cert_pem: bytes, backend: str) -> None:
        """HTTPS with SNI `host` MUST be terminated, on the controller's 443 node port of every
        serving node, with the certificate of TLS Secret `secret`, and answered by `backend`."""
        routes.assert_serves_certificate(
            self.cluster, self.entry_points(443), namespace, secret, host, cert_pem, backend, self.describe(),
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
    of that IngressClass controller (ingress-nginx's own, then Traefik's ingress-nginx provider: the
    first with pods; in the namespace of the one this run installed), its Service: the NodePort or
    LoadBalancer Service on 80 and 443 in front of those pods; for other controllers, such a Service
    whose namespace or name carries a word of the controller's name (`haproxy.org/ingress-controller`
    -> haproxy), and its pods through the Service's selector."""
    known: Install | None = installed
    namespace = service_name = selector = None
    pods: list[client.V1Pod] = []
    if installed is not None:
        namespace, service_name, selector = installed.namespace, installed.service, installed.pod_selector
        pods = cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
    else:
        for candidate in known_for(target.controller):
            listed = cluster.core.list_pod_for_all_namespaces(label_selector=candidate.pod_selector).items
            found = _serving(listed, candidate)
            if found:
                known, selector, pods = candidate, candidate.pod_selector, _of_class(found, target.name)
                namespace = pods[0].metadata.namespace
                break
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
        provider=known.provider if known is not None else "",
    )


def _serving(pods: list[client.V1Pod], candidate: Install) -> list[client.V1Pod]:
    """Of a known controller's pods, those that serve the class: all of them, or where the class is
    served by a provider of another controller, those whose container turns that provider on."""
    if not candidate.provider_arg:
        return pods
    return [p for p in pods for c in p.spec.containers or [] if turns_on(c.args or [], candidate.provider_arg)]


def turns_on(args: Sequence[str], provider_arg: str) -> bool:
    """Whether a container's arguments turn the provider of `provider_arg` (`--providers.x=true`) on:
    `--providers.x`, `--providers.x=true`, or any option of it (`--providers.x.ingressclass=nginx`:
    its static configuration makes a provider on when any option of it is set), unless `--providers.x=false`."""
    flag = provider_arg.split("=", 1)[0]
    values = [arg.partition("=")[2].lower() or "true" for arg in args if arg.partition("=")[0] == flag]
    if "false" in values:
        return False
    return bool(values) or any(arg.startswith(f"{flag}.") for arg in args)


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
