"""Ingress verbs: the ingress controller under test (the one of `--ingress-class`, of the cluster's
default IngressClass, or one this module installs the bare-metal way, as the notes install
ingress-nginx [000]), HTTP and HTTPS through its node ports, its Service's external IPs, and which
Ingress APIs the server serves.

Which controller is installed: ingress-nginx (pinned release, upstream's image names) where a
registry answers; offline, Traefik built from its Go module by the offline build, because no honest
ingress-nginx image can be built here (INGRESS_NGINX_OFFLINE says why). The manifests are the
suite's own (fixtures/claims/ingress/controllers/), images through the catalogue.

Traffic from the test host goes to node InternalIPs only (node ports, or port 80 / 443 on a node IP).
"""

from __future__ import annotations

import base64
import datetime
import importlib.util
import json
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from clusterproof import wait
from clusterproof.api_answers import answer_to
from clusterproof.cluster import Cluster
from clusterproof.errors import Broken, ClusterproofError, ProbeError, SetupFailed, WaitTimeout
from clusterproof.jigs.pods import IMAGE_REASONS
from clusterproof.manifests import CLUSTER_SCOPED_KINDS, Doc
from clusterproof.offline.releases import TRAEFIK as TRAEFIK_VERSION
from clusterproof.probe import HttpAnswer, http_get

if TYPE_CHECKING:
    from clusterproof.manifests import Manifests
    from clusterproof.timings import Stopwatch

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
ROUTE_TIMEOUT = 90.0  # a controller syncs a new Ingress within seconds; nginx reloads can lag
INSTALL_TIMEOUT = 300.0  # image pulls (online), admission certificates, the first sync
SERVING_TIMEOUT = 60.0  # a controller pod that is restarting gets this long to be Ready again
ENDPOINTS_GRACE = 15.0  # a backend Service the suite made Ready has endpoints by now

A = TypeVar("A")  # HttpAnswer or TlsAnswer: both have .status and .body


# --- the controllers this suite installs -----------------------------------------------------------

CONTROLLERS_DIR = "claims/ingress/controllers"
INGRESS_NGINX_CONTROLLER = "k8s.io/ingress-nginx"
TRAEFIK_CONTROLLER = "traefik.io/ingress-controller"
# Why the offline cluster has no ingress-nginx (probed on this build machine; the skip reason of
# ING-01 and ING-04 there).
INGRESS_NGINX_OFFLINE = (
    "no ingress-nginx controller image offline: its nginx needs stream-lua-nginx-module and "
    "lua-resty-balancer, -lock, -http, -dns, -cookie, -string, -ipmatcher, -global-throttle, which Debian "
    "(trixie, sid) does not package, and the Go module proxy serves no controller-v* release of "
    "k8s.io/ingress-nginx (only v0.0.0-20240708192948-52c50467d67d, controller v1.11.0's era) nor "
    "kube-webhook-certgen"
)


@dataclass(frozen=True)
class Install:
    """A controller this suite installs the bare-metal way: its manifest (a fixture, rendered
    here), what it creates, and how its pods are found."""

    name: str  # ingress-nginx, traefik
    version: str  # the pinned release (the catalogue's image tag)
    fixture: str
    namespace: str
    class_name: str
    controller: str  # its IngressClass's spec.controller
    service: str  # the NodePort Service on 80 and 443
    deployment: str
    pod_selector: str
    images: tuple[str, ...]  # logical names (the catalogue's) of the images its manifest runs
    jobs: tuple[str, ...] = ()  # Jobs that must complete (admission certificates)
    webhook: bool = False  # an admission webhook that must admit Ingresses of its class


INGRESS_NGINX = Install(
    name="ingress-nginx",
    version="v1.15.1",
    fixture=f"{CONTROLLERS_DIR}/ingress-nginx-baremetal.yaml",
    namespace="ingress-nginx",
    class_name="nginx",
    controller=INGRESS_NGINX_CONTROLLER,
    service="ingress-nginx-controller",
    deployment="ingress-nginx-controller",
    pod_selector="app.kubernetes.io/name=ingress-nginx,app.kubernetes.io/component=controller",
    images=("ingress-nginx-controller", "kube-webhook-certgen"),
    jobs=("ingress-nginx-admission-create", "ingress-nginx-admission-patch"),
    webhook=True,
)
TRAEFIK = Install(
    name="traefik",
    version=TRAEFIK_VERSION,
    fixture=f"{CONTROLLERS_DIR}/traefik-baremetal.yaml",
    namespace="traefik",
    class_name="traefik",
    controller=TRAEFIK_CONTROLLER,
    service="traefik",
    deployment="traefik",
    pod_selector="app.kubernetes.io/name=traefik",
    images=("traefik",),
)
# names of the notes' ingress-nginx install [000]
NGINX_NAMESPACE = INGRESS_NGINX.namespace
CONTROLLER_SERVICE = INGRESS_NGINX.service
ADMISSION_SERVICE = "ingress-nginx-controller-admission"
ADMISSION_JOBS = INGRESS_NGINX.jobs
# controllers whose pods are found by their usual labels (others through their Service's name)
KNOWN_CONTROLLERS = {c.controller: c for c in (INGRESS_NGINX, TRAEFIK)}
# words of IngressClass controller strings that name no particular controller
_GENERIC_WORDS = frozenset({"k8s", "io", "com", "org", "net", "dev", "ingress", "controller", "kubernetes", "x"})


def install_for(offline: bool) -> Install:
    """ingress-nginx where a registry answers; Traefik (built by the offline build) offline."""
    return TRAEFIK if offline else INGRESS_NGINX


# --- which class is under test ---------------------------------------------------------------------


@dataclass(frozen=True)
class ClassInfo:
    name: str
    controller: str
    default: bool = False

    @classmethod
    def of(cls, ic: client.V1IngressClass) -> ClassInfo:
        annotations = ic.metadata.annotations or {}
        default = annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"
        return cls(ic.metadata.name, (ic.spec.controller if ic.spec else None) or "?", default)


class IngressClassNotFound(ClusterproofError):
    """--ingress-class names no IngressClass of the cluster (one line, listing the classes)."""


@dataclass(frozen=True)
class Plan:
    """What the ingress module tests: an IngressClass there is, or one it installs (`install`),
    or nothing (`skip`, in words); `why` says how it was chosen."""

    target: ClassInfo | None = None
    install: Install | None = None
    why: str = ""
    skip: str = ""


def ingress_classes(cluster: Cluster) -> list[client.V1IngressClass]:
    try:
        return cluster.networking.list_ingress_class().items
    except ApiException as e:
        if e.status == 404:  # before 1.19: no networking.k8s.io/v1 IngressClass
            return []
        raise


def class_infos(cluster: Cluster) -> list[ClassInfo]:
    return [ClassInfo.of(c) for c in ingress_classes(cluster)]


def describe_classes(classes: Iterable[client.V1IngressClass | ClassInfo]) -> str:
    infos = [c if isinstance(c, ClassInfo) else ClassInfo.of(c) for c in classes]
    names = [f"{c.name} ({c.controller}{', default' if c.default else ''})" for c in infos]
    return ", ".join(names) or "none"


def default_classes(classes: Iterable[client.V1IngressClass | ClassInfo]) -> list[str]:
    infos = [c if isinstance(c, ClassInfo) else ClassInfo.of(c) for c in classes]
    return [c.name for c in infos if c.default]


def check_class(wanted: str, classes: Sequence[ClassInfo]) -> ClassInfo:
    """The IngressClass `wanted`, or IngressClassNotFound listing the classes there are."""
    for info in classes:
        if info.name == wanted:
            return info
    raise IngressClassNotFound(
        f"--ingress-class {wanted}: the cluster has no IngressClass {wanted!r} "
        f"(IngressClasses: {describe_classes(classes)})"
    )


def plan(classes: Sequence[ClassInfo], wanted: str | None, *, existing: bool, offline: bool) -> Plan:
    """Which class to test. `--ingress-class` first, then the cluster's default class; a class the
    suite's own install would make is reused (never installed twice); an existing cluster with
    other classes is tested as it is (its only class, or the user picks one); otherwise the
    suite installs its controller (a kind cluster of the run has none)."""
    if wanted:
        return Plan(target=check_class(wanted, classes), why=f"--ingress-class {wanted}")
    defaults = sorted((c for c in classes if c.default), key=lambda c: c.name)
    if defaults:
        return Plan(target=defaults[0], why="the cluster's default IngressClass")
    ours = install_for(offline)
    for info in classes:
        if info.name == ours.class_name and info.controller == ours.controller:
            return Plan(target=info, why=f"IngressClass {info.name} is there already (not installed twice)")
    if existing and len(classes) == 1:
        return Plan(target=classes[0], why="the cluster's only IngressClass")
    if existing and classes:
        return Plan(
            skip=f"the cluster has IngressClasses {describe_classes(classes)} and none is the default: "
            "pick the one to test with --ingress-class NAME"
        )
    why = "no ingress controller on the cluster" if existing else "a kind cluster of this run"
    if offline:
        why += f"; Traefik, not ingress-nginx: {INGRESS_NGINX_OFFLINE}"
    return Plan(install=ours, why=why)


# --- the controller under test -------------------------------------------------------------------


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
        try:
            return self.cluster.core.read_namespaced_service(self.service_name, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

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
        return [p for p in self.pods() if wait.pod_is_ready(p)]

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

    def assert_serving(self, timeout: float = SERVING_TIMEOUT) -> None:
        """The controller MUST have a ready pod: what serves the class's Ingresses. Waits up to
        `timeout` for one (a pod restarting), gives up at once when nothing would run one."""
        wait.until_seen(
            self.pods,
            lambda pods: [p for p in pods if wait.pod_is_ready(p)] or None,
            f"a ready pod of ingress controller {self.describe()} in {self.namespace} ({self.pod_selector})",
            timeout,
            describe=lambda pods: f"{self.workload_state()}; pods: {wait.describe_pods(pods)}",
            final=lambda pods: None if any(wait.pod_is_ready(p) for p in pods) else self.scaled_to_zero(),
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
            never=self.scaled_to_zero,
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
                never=self.scaled_to_zero,
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
                never=self.scaled_to_zero,
                hint=lambda _: secret_certificate_state(self.cluster, namespace, secret, host),
            )
            wait_answer(
                lambda ip=ip: https_get_sni(ip, port, host, "/", cert_pem),
                lambda a: a.status == 200 and a.body.strip() == backend,
                f"HTTPS with SNI {host} via {where}, verified against Secret {secret}'s certificate, answered "
                f"by {backend}",
                never=self.scaled_to_zero,
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


def controller_claims(cluster: Cluster, class_name: str) -> bool:
    """Whether some controller implements IngressClass `class_name` (the class exists, or, for
    "nginx", a ready ingress-nginx controller runs, which serves it even without the object)."""
    if any(c.metadata.name == class_name for c in ingress_classes(cluster)):
        return True
    if class_name != INGRESS_NGINX.class_name:
        return False
    pods = cluster.core.list_pod_for_all_namespaces(label_selector=INGRESS_NGINX.pod_selector).items
    return any(wait.pod_is_ready(p) for p in pods)


# --- installing one ------------------------------------------------------------------------------


@dataclass
class UnderTest:
    """The ingress module's controller, once per module: a Controller, or why there is none to
    test (`skip`), or the install's failure (`error`, raised to every test that needs it: the
    install is tried once). `namespace` is where its pods are (for diagnostics)."""

    controller: Controller | None = None
    skip: str = ""
    error: BaseException | None = None
    namespace: str | None = None
    plan: Plan = field(default_factory=Plan)

    def get(self) -> Controller:
        if self.error is not None:
            raise self.error
        if self.controller is None:
            pytest.skip(self.skip or "no ingress controller to test")
        return self.controller


def controller_under_test(
    cluster: Cluster, wanted: str | None, manifests: Manifests, stopwatch: Stopwatch
) -> UnderTest:
    """Choose the class (see `plan`), install the controller when nothing implements one, find
    it. `manifests` is bound to the install's namespace and registers what it creates with the
    tracker (removed when its scope ends). Never raises: the outcome is for each test to meet."""
    chosen = plan(class_infos(cluster), wanted, existing=cluster.provider == "existing", offline=cluster.offline)
    if chosen.skip:
        return UnderTest(skip=chosen.skip, plan=chosen)
    if chosen.install is not None and cluster.offline:
        missing = missing_images(cluster, [manifests.image(name) for name in chosen.install.images])
        if missing:
            return UnderTest(
                skip=f"no ingress controller to install offline: the nodes have no {', '.join(missing)} (the offline "
                "node images of the Go-built releases carry it: python -m clusterproof.offline build; the legacy "
                "1.20 image has none: Traefik >= v3.1 finds endpoints through discovery.k8s.io/v1 EndpointSlices, "
                f"which Kubernetes 1.20 does not serve); {INGRESS_NGINX_OFFLINE}",
                plan=chosen,
            )
    try:
        if chosen.install is not None:
            controller = install(cluster, chosen.install, manifests, stopwatch, why=chosen.why)
        else:
            assert chosen.target is not None
            controller = find_controller(cluster, chosen.target, why=chosen.why)
    except (Broken, SetupFailed, WaitTimeout, ApiException) as e:
        namespace = chosen.install.namespace if chosen.install else None
        return UnderTest(error=e, namespace=namespace, plan=chosen)
    return UnderTest(controller=controller, namespace=controller.namespace, plan=chosen)


def missing_images(cluster: Cluster, refs: Sequence[str]) -> list[str]:
    """Of `refs`, those no node has (as its kubelet reports the node's images)."""
    present = {
        name
        for node in cluster.core.list_node().items
        for image in ((node.status.images or []) if node.status else [])
        for name in image.names or []
    }
    return [ref for ref in refs if ref not in present]


def install(
    cluster: Cluster,
    what: Install,
    manifests: Manifests,
    stopwatch: Stopwatch,
    *,
    why: str = "",
    timeout: float = INSTALL_TIMEOUT,
) -> Controller:
    """Install `what` the bare-metal way and wait until it serves: its Jobs completed, a ready
    controller pod, its webhook admitting Ingresses of its class, its node port answering. Timed
    (a row of "where the time went"). What cannot start for reasons of this cluster's making (an
    image that cannot be pulled, a pod never scheduled, a refusal by the API server) is a set-up
    failure; a controller that does not become ready in `timeout` is Broken, naming the pod and
    its last state."""
    with stopwatch.measure(f"cluster {cluster.name}: install ingress controller {what.name} {what.version}"):
        manifests.create(rendered(what, manifests))
        target = ClassInfo(what.class_name, what.controller)
        _wait_installed(cluster, what, find_controller(cluster, target, why=why, installed=what), timeout)
    # found again now that it runs: its version as its pod's image says
    return find_controller(cluster, target, why=why, installed=what)


def rendered(what: Install, manifests: Manifests) -> list[Doc]:
    """The install's documents, ready to create in order: the Namespace first (created at once,
    so the cluster-scoped objects can name it as their owner: deleting the namespace removes them)."""
    docs = manifests.load(what.fixture, what.namespace)
    namespace, rest = docs[0], docs[1:]
    if namespace["kind"] != "Namespace" or namespace["metadata"]["name"] != what.namespace:
        raise ClusterproofError(f"{what.fixture}: the first document must be Namespace {what.namespace}")
    created = manifests.create([namespace])[0]
    owner = {"apiVersion": "v1", "kind": "Namespace", "name": what.namespace, "uid": created["metadata"]["uid"]}
    for doc in rest:
        if doc["kind"] in CLUSTER_SCOPED_KINDS:
            doc["metadata"]["ownerReferences"] = [owner]
    return rest


def _wait_installed(cluster: Cluster, what: Install, controller: Controller, timeout: float) -> None:
    ns = what.namespace
    for job in what.jobs:
        _settled(cluster, what, lambda job=job: wait_job_complete(cluster, ns, job, timeout))
    _settled(cluster, what, lambda: wait.pods_ready(cluster.core, ns, what.pod_selector, 1, timeout))
    if what.webhook:
        # the API server admits an Ingress of the class only once the webhook has its certificate
        probe = ingress_probe(what.class_name)
        _settled(
            cluster,
            what,
            lambda: wait.until_seen(
                lambda: answer_to(lambda: dry_run_create(cluster, ns, probe)),
                lambda answer: answer if answer.accepted else None,
                f"the admission webhook of {what.name} admitting an Ingress of class {what.class_name} (dry run)",
                timeout,
                describe=str,
            ),
        )
    port = controller.node_port(80)
    node, ip = controller.node_ips()[0]
    _settled(cluster, what, lambda: controller.assert_unknown_host_not_found(ip, port, node, timeout=timeout))


def _settled(cluster: Cluster, what: Install, step: Callable[[], Any]) -> None:
    """Run one wait of the install: a pod that cannot start for reasons no claim observes is a
    set-up failure; any other wait that came to nothing makes the controller Broken."""
    try:
        step()
    except WaitTimeout as e:
        cause = _unrelated(cluster, what.namespace)
        if cause:
            raise SetupFailed(f"install ingress controller {what.name} {what.version}", f"{cause} ({e})") from e
        raise Broken(f"ingress controller {what.name} {what.version} did not become ready: {e}") from e


def _unrelated(cluster: Cluster, namespace: str) -> str | None:
    """A pod of the install whose image cannot be pulled, or that was never scheduled."""
    for pod in cluster.core.list_namespaced_pod(namespace).items:
        for status in (pod.status.container_statuses or []) if pod.status else []:
            waiting = status.state.waiting if status.state else None
            if waiting and waiting.reason in IMAGE_REASONS:
                return f"pod {pod.metadata.name}: container {status.name} {waiting.reason} ({status.image})"
        for condition in (pod.status.conditions or []) if pod.status else []:
            if condition.type == "PodScheduled" and condition.status == "False":
                return f"pod {pod.metadata.name} not scheduled: {condition.message or condition.reason}"
    return None


def read_job(cluster: Cluster, namespace: str, name: str) -> client.V1Job | None:
    try:
        return cluster.batch.read_namespaced_job(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def wait_job_complete(cluster: Cluster, namespace: str, name: str, timeout: float) -> client.V1Job:
    def read() -> client.V1Job | None:
        try:
            return cluster.batch.read_namespaced_job(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def failed(job: client.V1Job | None) -> str | None:
        conditions = (job.status.conditions or []) if job and job.status else []
        return next((f"Job {name} failed: {c.message or c.reason}" for c in conditions if c.type == "Failed"), None)

    return wait.until_seen(
        read,
        lambda job: job if job and job.status and (job.status.succeeded or 0) >= 1 else None,
        f"Job {namespace}/{name} complete",
        timeout,
        describe=lambda job: "no such Job" if job is None else _job_state(cluster, namespace, name, job),
        final=failed,
    )


def _job_state(cluster: Cluster, namespace: str, name: str, job: client.V1Job) -> str:
    s = job.status
    pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    return (
        f"active={s.active or 0} succeeded={s.succeeded or 0} failed={s.failed or 0}; pods: {wait.describe_pods(pods)}"
    )


def ingress_probe(class_name: str) -> Doc:
    """An Ingress of the class, for dry-run creates (nothing is stored)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "clusterproof-admission-probe"},
        "spec": {
            "ingressClassName": class_name,
            "rules": [{"host": "admission-probe.clusterproof.test", "http": {"paths": [_path("/", "no-such-svc")]}}],
        },
    }


def _path(path: str, service: str) -> Doc:
    return {"path": path, "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 80}}}}


def dry_run_create(cluster: Cluster, namespace: str, doc: Doc) -> Any:
    return cluster.networking.create_namespaced_ingress(namespace, doc, dry_run="All")


# --- the backends behind a path ------------------------------------------------------------------


def path_services(doc: Doc) -> dict[str, str]:
    """{path: Service} of an Ingress document's (first) rule."""
    rules = doc["spec"].get("rules") or []
    paths = ((rules[0].get("http") or {}).get("paths") or []) if rules else []
    return {p["path"]: p["backend"]["service"]["name"] for p in paths}


def service_for(routes: dict[str, str], path: str) -> str:
    """The Service whose Prefix path matches `path` longest (element-wise, as pathType Prefix):
    /testpath matches /testpath and /testpath/x, not /testpathx."""

    def matches(prefix: str) -> bool:
        stem = prefix.rstrip("/")
        return stem == "" or path == stem or path.startswith(stem + "/")

    found = sorted((p for p in routes if matches(p)), key=len, reverse=True)
    if not found:
        raise AssertionError(f"no path of {sorted(routes)} matches {path}")
    return routes[found[0]]


def ready_backends(cluster: Cluster, namespace: str, service: str) -> set[str]:
    """Names of the pods behind `service` that its EndpointSlices call ready."""
    slices = client.DiscoveryV1Api(cluster.api).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    return {
        e.target_ref.name
        for s in slices.items
        for e in s.endpoints or []
        if e.target_ref is not None and (e.conditions is None or e.conditions.ready is not False)
    }


def service_backends(
    cluster: Cluster, namespace: str, service: str, grace: float = ENDPOINTS_GRACE, *, what: str = "a path"
) -> set[str]:
    """The ready pods behind `service`; an AssertionError naming the Service when it has none
    (after `grace`): `what` the Ingress routes to it can have no answer from a backend."""
    try:
        return wait.until(
            lambda: ready_backends(cluster, namespace, service) or None,
            f"ready endpoints of Service {namespace}/{service}",
            grace,
        )
    except WaitTimeout:
        raise AssertionError(
            f"{what} is routed by the Ingress to Service {service}, which "
            f"{_endpoints_words(cluster, namespace, service)}: no backend can answer it"
        ) from None


def service_state(cluster: Cluster, namespace: str, service: str) -> str:
    """`Service test has no ready endpoints (selector app=x)`, `... has ready endpoints: a, b`, or `... does
    not exist in ns`."""
    return f"Service {service} {_endpoints_words(cluster, namespace, service)}"


def _endpoints_words(cluster: Cluster, namespace: str, service: str) -> str:
    try:
        svc = cluster.core.read_namespaced_service(service, namespace)
    except ApiException as e:
        if e.status == 404:
            return f"does not exist in {namespace}"
        raise
    ready = ready_backends(cluster, namespace, service)
    if ready:
        return f"has ready endpoints: {', '.join(sorted(ready))}"
    selector = ",".join(f"{k}={v}" for k, v in sorted((svc.spec.selector or {}).items())) or "none"
    return f"has no ready endpoints (selector {selector})"


# --- certificates --------------------------------------------------------------------------------


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
    *,
    hint: wait.Hint = None,
    never: Callable[[], str | None] | None = None,
) -> A:
    """Repeat `fetch` (an HttpAnswer or TlsAnswer; no answer at all is a ProbeError, retried)
    until its answer matches; a timeout names the last answer (and the hint, when given).
    `never()`, asked whenever the answer is wrong or missing, names a cause no waiting cures
    (the controller scaled to zero): the wait gives up at once with it."""
    return wait.until_seen(
        fetch,
        lambda answer: answer if matches(answer) else None,
        expected,
        timeout,
        describe=lambda answer: f"HTTP {answer.status} {answer.body.strip()[:120]!r}",
        never=never,
        hint=hint,
    )


def answers_with(name: str) -> Callable[[HttpAnswer], bool]:
    return lambda answer: answer.ok and answer.body.strip() == name


# --- HTTPS with SNI ------------------------------------------------------------------------------


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
