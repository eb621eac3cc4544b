"""Service jig: the verbs of the Service checks.

Builds backends and Services from fixtures, waits for a Service's endpoints, and checks who
answers through it: from inside the cluster through a client pod (ClusterIPs, pod IPs), and
from the test host only to node InternalIPs (NodePorts, externalIPs that are node IPs).
Node-side checks read kube-proxy's NAT rules; API checks read refusals as the server words them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from kubernetes import client

from clusterproof import probe, wait
from clusterproof.api_answers import ApiAnswer
from clusterproof.cluster import Cluster, Node
from clusterproof.errors import WaitTimeout
from clusterproof.manifests import Doc, Manifests
from clusterproof.manifests import apply as apply_docs
from clusterproof.probe import ANSWER_TIMEOUT, ClientPod, HttpAnswer, SampleResult, hostname_of

NOTES_NODE_PORT_RANGE = (30000, 32767)  # [002] "30000-32767 범위"
ENDPOINTS_TIMEOUT = 90.0
RULES_TIMEOUT = 60.0
PORT_RELEASE_TIMEOUT = 60.0
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


# --- backends ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backends:
    """The ready pods behind a Service."""

    pods: tuple[client.V1Pod, ...]

    @property
    def names(self) -> set[str]:
        return {p.metadata.name for p in self.pods}

    @property
    def ips(self) -> set[str]:
        return {p.status.pod_ip for p in self.pods}

    @property
    def uids(self) -> set[str]:
        return {p.metadata.uid for p in self.pods}

    def __str__(self) -> str:
        return ", ".join(f"{p.metadata.name} ({p.status.pod_ip})" for p in sorted(self.pods, key=_pod_name)) or "none"


def _pod_name(pod: client.V1Pod) -> str:
    return pod.metadata.name


def node_port_range_setting(cluster: Cluster) -> str:
    """The apiserver's --service-node-port-range as far as the API shows it (kubeadm/kind run
    the apiserver as a static pod whose mirror pod carries its flags)."""
    try:
        pods = cluster.core.list_namespaced_pod("kube-system", label_selector="component=kube-apiserver").items
    except client.ApiException as e:
        return f"kube-apiserver flags not readable (HTTP {e.status})"
    if not pods:
        return "kube-apiserver flags not readable (no kube-apiserver pod in kube-system)"
    for container in pods[0].spec.containers:
        for arg in [*(container.command or []), *(container.args or [])]:
            if arg.startswith("--service-node-port-range="):
                return f"kube-apiserver runs with {arg}"
    return "kube-apiserver runs without --service-node-port-range (default 30000-32767)"


# --- kube-proxy's NAT rules ------------------------------------------------------------------


def nat_rules(cluster: Cluster, node: str) -> str:
    """The node's nat table, from the nf_tables backend and, when kube-proxy uses it, the legacy one."""
    rules = cluster.node_exec(node, "iptables-save", "-t", "nat").stdout
    if "-A KUBE-SERVICES" not in rules:
        legacy = cluster.node_exec(node, "iptables-legacy-save", "-t", "nat", check=False)
        rules += legacy.stdout if legacy.returncode == 0 else ""
    return rules


@dataclass(frozen=True)
class ServiceRules:
    """kube-proxy's rules for one Service port: the portal in KUBE-SERVICES, and where its
    endpoint chains DNAT to."""

    portal: tuple[str, ...]
    destinations: frozenset[str]

    @property
    def present(self) -> bool:
        return bool(self.portal)


def service_rules(rules: str, namespace: str, name: str, cluster_ip: str, port: int) -> ServiceRules:
    comment = re.compile(r'--comment "?' + re.escape(f"{namespace}/{name}") + r'[:" ]')
    portal = tuple(
        line
        for line in rules.splitlines()
        if line.startswith("-A KUBE-SERVICES ")
        and f"-d {cluster_ip}/32 " in line
        and f"--dport {port} " in line
        and "-j KUBE-SVC-" in line
    )
    destinations = frozenset(
        m.group(1)
        for line in rules.splitlines()
        if line.startswith("-A KUBE-SEP-") and comment.search(line)
        for m in [re.search(r"--to-destination (\S+)", line)]
        if m
    )
    return ServiceRules(portal, destinations)


# --- reading kubectl's table ---------------------------------------------------------------


def kubectl_row(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, str]:
    """`kubectl get KIND NAME` as {column: value}, cut at the header's column offsets."""
    lines = cluster.kubectl("get", kind, name, "-n", namespace).stdout.splitlines()
    header, row = lines[0], lines[1]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    ends = [*starts[1:], None]
    return {header[s:e].strip(): row[s:e].strip() for s, e in zip(starts, ends, strict=True)}


# --- messages ------------------------------------------------------------------------------


def spread_problem(via: str, result: SampleResult, ready: Iterable[str]) -> str | None:
    """None when the answering backends are exactly `ready`; else a plain account of who answered."""
    ready_set, seen = set(ready), set(result.seen)
    if seen == ready_set:
        return None
    if not seen:
        return f"{via} did not answer; ready pods {_fmt(ready_set)} ({result})"
    text = f"{via} answered from {_fmt(seen)}; ready pods {_fmt(ready_set)}"
    if ready_set - seen:
        text += f"; never answered: {_fmt(ready_set - seen)}"
    if seen - ready_set:
        text += f"; answered by something else: {_fmt(seen - ready_set)}"
    return f"{text} ({result})"


def _fmt(names: Iterable[str]) -> str:
    return "{" + ", ".join(sorted(names)) + "}"


def in_notes_range(port: int | None) -> bool:
    low, high = NOTES_NODE_PORT_RANGE
    return port is not None and low <= port <= high


# --- the jig -------------------------------------------------------------------------------


@dataclass
class ServiceJig:
    """Per test: builds Services and backends in the test's namespace; `release()` (the suite's
    fixture teardown) deletes the Services that hold node ports and waits until they are gone,
    so a fixed nodePort (30000 in the notes) is free for the next test."""

    cluster: Cluster
    manifests: Manifests
    _holding_node_ports: list[str] = field(default_factory=list)

    @property
    def namespace(self) -> str:
        return self.manifests.namespace

    @property
    def core(self) -> client.CoreV1Api:
        return self.cluster.core

    # --- backends --------------------------------------------------------------------------

    def add_backends(self, path: str, *, extra: Iterable[Doc] = ()) -> None:
        """Apply the fixture (plus `extra` documents, e.g. a never_ready_copy) without waiting."""
        self.manifests.apply(path)
        extra = list(extra)
        if extra:
            self.manifests.apply(extra)

    def ready_backends(self, selector: str, count: int, timeout: float = 120) -> Backends:
        return Backends(tuple(wait.pods_ready(self.core, self.namespace, selector, count, timeout)))

    def start_backends(self, path: str, selector: str, count: int) -> Backends:
        self.add_backends(path)
        return self.ready_backends(selector, count)

    def never_ready_copy(self, path: str, name: str) -> Doc:
        """The fixture's first Pod under another name, serving as before but with a readiness
        probe that always fails: same labels, so the Service selects it, yet it is never ready."""
        pod = next(d for d in self.manifests.render(path) if d.get("kind") == "Pod")
        pod["metadata"]["name"] = name
        for container in pod["spec"]["containers"]:
            container["readinessProbe"] = {"tcpSocket": {"port": 1}, "periodSeconds": 2}
        return pod

    def wait_running(self, name: str) -> client.V1Pod:
        return wait.pod_phase(self.core, self.namespace, name, "Running")

    def delete_pods(self, backends: Backends) -> None:
        for name in backends.names:
            self.cluster.delete_pod_now(self.namespace, name, wait_gone=False)
        for name in backends.names:
            wait.gone(lambda n=name: self.core.read_namespaced_pod(n, self.namespace), f"pod {self.namespace}/{name}")

    # --- Services --------------------------------------------------------------------------

    def create_service(
        self,
        path: str | list[Doc],
        *,
        values: Mapping[str, str] | None = None,
        backends: Backends | None = None,
    ) -> client.V1Service:
        """Apply a fixture holding one Service (and maybe its Endpoints); returns the stored Service,
        after its Endpoints list `backends` when given. A fixed nodePort is first waited free
        cluster-wide (another test may still be releasing it)."""
        docs = self.manifests.load(path, values=values) if isinstance(path, str) else self.manifests.prepare(path)
        for doc in docs:
            if doc["kind"] == "Service":
                for port in _fixed_node_ports(doc):
                    self.wait_node_port_free(port)
        created = apply_docs(self.cluster, docs, tracker=self.manifests.tracker)
        name = next(d["metadata"]["name"] for d in created if d["kind"] == "Service")
        service = self.read(name)
        if service.spec.type in NODE_PORT_TYPES:
            self._holding_node_ports.append(name)
        if backends is not None:
            self.wait_endpoints(name, backends.ips)
        return service

    def try_create_service(self, docs: list[Doc]) -> ApiAnswer:
        """Create a Service the API server may refuse; returns its answer either way."""
        try:
            service = self.create_service(docs)
        except client.ApiException as e:
            return ApiAnswer.from_exception(e)
        return ApiAnswer(201, self.cluster.api.sanitize_for_serialization(service))

    def expose(self, *args: str) -> client.V1Service:
        """`kubectl expose ARGS -n <namespace>`; the created Service (named by --name=)."""
        name = next(a.split("=", 1)[1] for a in args if a.startswith("--name="))
        self.cluster.kubectl("expose", *args, "-n", self.namespace)
        service = self.read(name)
        if service.spec.type in NODE_PORT_TYPES:
            self._holding_node_ports.append(name)
        return service

    def read(self, name: str) -> client.V1Service:
        return self.core.read_namespaced_service(name, self.namespace)

    def delete_service(self, name: str) -> None:
        services = self.cluster.dynamic.resources.get(api_version="v1", kind="Service")
        try:
            # dynamic: a 1.20 server answers a Service delete with a Status the typed client cannot read
            services.delete(name=name, namespace=self.namespace)
        except client.ApiException as e:
            if e.status != 404:
                raise
        wait.gone(
            lambda: self.core.read_namespaced_service(name, self.namespace),
            f"Service {self.namespace}/{name}",
            PORT_RELEASE_TIMEOUT,
        )

    def release(self) -> None:
        for name in reversed(self._holding_node_ports):
            self.delete_service(name)
        self._holding_node_ports.clear()

    def wait_node_port_free(self, port: int, timeout: float = PORT_RELEASE_TIMEOUT) -> None:
        def holders() -> list[str]:
            return [
                f"{s.metadata.namespace}/{s.metadata.name}"
                for s in self.core.list_service_for_all_namespaces().items
                if any(p.node_port == port for p in (s.spec.ports or []))
            ]

        wait.until(
            lambda: not holders() or None,
            f"nodePort {port} to be free (no Service in the cluster holding it)",
            timeout,
            describe=lambda _: f"held by {holders()}",
        )

    def wait_endpoints(
        self,
        name: str,
        ready_ips: Iterable[str],
        not_ready_ips: Iterable[str] = (),
        timeout: float = ENDPOINTS_TIMEOUT,
    ) -> client.V1Endpoints:
        """The Service's Endpoints list exactly `ready_ips` as ready (and `not_ready_ips` as not ready)."""
        want, want_not_ready = set(ready_ips), set(not_ready_ips)

        def done(objs: dict[str, client.V1Endpoints]) -> client.V1Endpoints | None:
            ep = objs.get(name)
            if ep is None:
                return None
            ready, not_ready = endpoint_ips(ep)
            return ep if ready == want and want_not_ready <= not_ready else None

        def describe(objs: dict[str, client.V1Endpoints]) -> str:
            ep = objs.get(name)
            if ep is None:
                return "no Endpoints object (is the endpoints controller running?)"
            ready, not_ready = endpoint_ips(ep)
            return f"ready addresses {_fmt(ready)}, not-ready addresses {_fmt(not_ready)}"

        expected = f"Endpoints {self.namespace}/{name} listing the ready pods {_fmt(want)} as ready"
        if want_not_ready:
            expected += f" and {_fmt(want_not_ready)} as not ready"
        return wait.watch_until(
            self.core.list_namespaced_endpoints,
            done,
            expected,
            describe,
            timeout,
            namespace=self.namespace,
            field_selector=f"metadata.name={name}",
        )

    def load_balancer_ingress(self, name: str, window: float) -> list[client.V1LoadBalancerIngress]:
        """Watch the Service for `window` seconds; the ingress points it got, or [] if none came."""

        def done(objs: dict[str, client.V1Service]) -> list[client.V1LoadBalancerIngress] | None:
            svc = objs.get(name)
            lb = svc.status.load_balancer if svc is not None and svc.status else None
            return (lb.ingress or None) if lb else None

        try:
            return wait.watch_until(
                self.core.list_namespaced_service,
                done,
                f"an ingress point on Service {self.namespace}/{name}",
                lambda objs: "no ingress",
                window,
                namespace=self.namespace,
                field_selector=f"metadata.name={name}",
            )
        except WaitTimeout:
            return []

    # --- reachability ------------------------------------------------------------------------

    def await_answer_from_host(self, url: str, what: str, timeout: float = ANSWER_TIMEOUT) -> HttpAnswer:
        return wait.until(
            lambda: probe.require_ok(probe.http_get(url)), f"an HTTP answer from {what} ({url})", timeout, describe=str
        )

    def sample_inside(
        self,
        pod: ClientPod,
        url: str,
        what: str,
        ready: Iterable[str],
        *,
        never: Iterable[str] = (),
        backend_of: Callable[[HttpAnswer], str] = hostname_of,
    ) -> SampleResult:
        """Fresh connections from the client pod until every ready backend answered; with `never`
        (backends that must not answer) the whole budget is spent, so their absence means something."""
        try:
            pod.await_answer(url, what)
        except WaitTimeout as e:
            return SampleResult(url, frozenset(ready), errors=[str(e)])
        return pod.sample_backends(url, ready, never=never, backend_of=backend_of)

    def sample_from_host(
        self, url: str, what: str, ready: Iterable[str], *, backend_of: Callable[[HttpAnswer], str] = hostname_of
    ) -> SampleResult:
        """From the test host (node IPs only): fresh connections until every ready backend answered."""
        try:
            self.await_answer_from_host(url, what)
        except WaitTimeout as e:
            return SampleResult(url, frozenset(ready), errors=[str(e)])
        return probe.sample_backends(url, ready, backend_of=backend_of)

    def node_port_problems(self, node_port: int, ready: Iterable[str]) -> list[str]:
        """Sample NodePort `node_port` on every node's InternalIP from the test host."""
        problems = []
        for node in self.cluster.nodes:
            if not node.internal_ip:
                problems.append(f"node {node.name} has no InternalIP")
                continue
            what = f"NodePort {node_port} on node {node.name} ({node.internal_ip})"
            result = self.sample_from_host(node_url(node, node_port), what, ready)
            problem = spread_problem(what, result, ready)
            if problem:
                problems.append(problem)
        return problems


def _fixed_node_ports(service: Doc) -> list[int]:
    return [p["nodePort"] for p in (service.get("spec") or {}).get("ports") or [] if p.get("nodePort")]


def endpoint_ips(ep: client.V1Endpoints) -> tuple[set[str], set[str]]:
    ready: set[str] = set()
    not_ready: set[str] = set()
    for subset in ep.subsets or []:
        ready |= {a.ip for a in subset.addresses or []}
        not_ready |= {a.ip for a in subset.not_ready_addresses or []}
    return ready, not_ready


def endpoint_target_uids(ep: client.V1Endpoints) -> set[str]:
    return {a.target_ref.uid for subset in ep.subsets or [] for a in subset.addresses or [] if a.target_ref is not None}


def cluster_ip_url(service: client.V1Service, port: int | None = None, path: str = "/") -> str:
    return f"http://{service.spec.cluster_ip}:{port or service.spec.ports[0].port}{path}"


def node_url(node: Node, port: int, path: str = "/") -> str:
    return f"http://{node.internal_ip}:{port}{path}"


def is_ip(value: str | None) -> bool:
    try:
        ipaddress.ip_address(value or "")
    except ValueError:
        return False
    return True
