"""Service jig: the verbs of the Service checks.

Builds backends and Services from fixtures, waits for a Service's endpoints, and checks who
answers through it, one call per observed fact (`assert_answered_by`, `assert_node_port_answered_by`,
...): from inside the cluster through a client pod (ClusterIPs, pod IPs), and from the test host
only to node InternalIPs (NodePorts, externalIPs that are node IPs). Each counts the requests that
fail once every backend has answered (the rules are in place then): past one in 20 the claim fails
with the counts and the first errors. Each check builds its description from the Service and the
pods, so a message cannot drift from the manifest.
API checks read refusals as the server words them (kube-proxy's NAT rules: clusterproof.jigs.kube_proxy).

Set-up and observation are kept apart: making backends and Services (an API refusal, pods that
never start, a node port that stays taken) is a set-up step (SetupFailed: the test errors, could
not evaluate); the Endpoints a Service gets and who answers through it are what the claims
observe (a failure). Waits for them end early, naming the cause, when clusterproof.causes knows
the shared precondition is broken (no endpoints controller, kube-proxy on no node).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from kubernetes import client

from clusterproof import causes, health, probe, urls, wait
from clusterproof.api_answers import ApiAnswer, answer_to, unless_missing
from clusterproof.cluster import Cluster, Node
from clusterproof.errors import WaitGaveUp, WaitTimeout
from clusterproof.jigs import Jig
from clusterproof.jigs.service_backends import BackendPods, Backends
from clusterproof.manifests import Doc
from clusterproof.probe import ANSWER_TIMEOUT, ClientPod, HttpAnswer, SampleResult, hostname_of
from clusterproof.verdicts import setup_step

NOTES_NODE_PORT_RANGE = (30000, 32767)  # [002] "30000-32767 범위"
ENDPOINTS_TIMEOUT = 90.0
# When a shared precondition is known broken (clusterproof.causes: no endpoints controller, no
# kube-proxy on any node), a wait that cannot succeed still gets this long, then gives up naming it.
BROKEN_GRACE = 5.0
PORT_RELEASE_TIMEOUT = 60.0
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


def node_port_range_setting(cluster: Cluster) -> str:
    """The apiserver's --service-node-port-range as far as the API shows it (kubeadm/kind run
    the apiserver as a static pod whose mirror pod carries its flags)."""
    args = health.Look(cluster).apiserver_args()
    if args is None:
        return "kube-apiserver flags not readable (no kube-apiserver pod in kube-system)"
    found = next((arg for arg in args if arg.startswith("--service-node-port-range=")), None)
    if found:
        return f"kube-apiserver runs with {found}"
    return "kube-apiserver runs without --service-node-port-range (default 30000-32767)"


# --- reading kubectl's table ---------------------------------------------------------------


def kubectl_row(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, str]:
    """`kubectl get KIND NAME` as {column: value}, cut at the header's column offsets."""
    lines = cluster.kubectl("get", kind, name, "-n", namespace).stdout.splitlines()
    header, row = lines[0], lines[1]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    ends = [*starts[1:], None]
    return {header[s:e].strip(): row[s:e].strip() for s, e in zip(starts, ends, strict=True)}


# --- messages ------------------------------------------------------------------------------


def answer_mismatch(via: str, result: SampleResult, expected: Iterable[str]) -> str | None:
    """A plain account of how the backends that answered through `via` differ from `expected`
    (never answered, answered by something else), or of the requests that failed once all of
    them had answered, past the tolerance (a stale endpoint, a black hole taking a share of the
    connections); None when exactly `expected` answered and no more failed."""
    ready_set, seen = set(expected), set(result.seen)
    if seen == ready_set:
        if result.too_many_failures:
            return f"{via}: {result.failures_after()}; answered by {_fmt(seen)} ({result})"
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


def describe_service(service: client.V1Service) -> str:
    """`Service svc-1`, or `NodePort Service np-svc` for the types that are more than a ClusterIP."""
    kind = service.spec.type if service.spec.type != "ClusterIP" else ""
    return f"{kind} Service {service.metadata.name}".strip()


# --- the jig -------------------------------------------------------------------------------


class ServiceJig(Jig):
    """Per test: builds Services and backends in the test's namespace through its Manifests, and
    checks who answers through them. A Service holding node ports is deleted when the test ends,
    waiting until it is gone, so that a fixed nodePort (30000 in the notes) is free for the next
    test (a tracker step registered at creation: after the namespace's, so it runs before it)."""

    # --- backends --------------------------------------------------------------------------

    def add_backends(self, pods: BackendPods, *, extra: Iterable[Doc] = ()) -> None:
        """Apply the fixture (plus `extra` documents, e.g. a never_ready_copy) without waiting."""
        self.manifests.apply(pods.path)
        extra = list(extra)
        if extra:
            self.manifests.apply(extra)

    def ready_backends(self, pods: BackendPods, timeout: float = 120) -> Backends:
        """The fixture's pods once `count` of them are Ready (a pod that can never be fails at
        once). A set-up step: backends that do not start leave a Service claim unevaluated."""
        with setup_step(f"start {pods.count} backend pod(s) {pods.selector} of {pods.path}"):
            # their controller refusing to create them (Pod Security, a quota) is a final answer
            refused = wait.failed_create(self.core, self.namespace)
            ready = wait.pods_ready(self.core, self.namespace, pods.selector, pods.count, timeout, never=refused)
            return Backends(tuple(ready))

    def start_backends(self, pods: BackendPods) -> Backends:
        self.add_backends(pods)
        return self.ready_backends(pods)

    def never_ready_copy(self, pods: BackendPods, name: str) -> Doc:
        """The fixture's first Pod under another name, serving as before but with a readiness
        probe that always fails: same labels, so the Service selects it, yet it is never ready."""
        pod = next(d for d in self.manifests.render(pods.path) if d.get("kind") == "Pod")
        pod["metadata"]["name"] = name
        for container in pod["spec"]["containers"]:
            container["readinessProbe"] = {"tcpSocket": {"port": 1}, "periodSeconds": 2}
        return pod

    def wait_running(self, name: str) -> client.V1Pod:
        with setup_step(f"start pod {name}"):
            return wait.pod_phase(self.core, self.namespace, name, "Running")

    def delete_pods(self, backends: Backends) -> None:
        with setup_step(f"delete the pods {sorted(backends.names)}"):
            for name in backends.names:
                self.cluster.delete_pod_now(self.namespace, name, wait_gone=False)
            for name in backends.names:
                wait.gone(
                    lambda n=name: self.core.read_namespaced_pod(n, self.namespace), f"pod {self.namespace}/{name}"
                )

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
        cluster-wide (another test may still be releasing it). Creating is a set-up step (a
        refusal is SetupFailed in the API server's words); the Endpoints are observed (a failure)."""
        docs = self.manifests.load(path, values=values) if isinstance(path, str) else self.manifests.prepare(path)
        for doc in docs:
            if doc["kind"] == "Service":
                for port in _fixed_node_ports(doc):
                    with setup_step(f"wait until nodePort {port} is free for Service {doc['metadata']['name']}"):
                        self.wait_node_port_free(port)
        created = self.manifests.create(docs)
        service = self._created(next(d["metadata"]["name"] for d in created if d["kind"] == "Service"))
        if backends is not None:
            self.wait_endpoints(service.metadata.name, backends.ips)
        return service

    def try_create_service(self, docs: list[Doc]) -> ApiAnswer:
        """Create a Service the API server may refuse; returns its answer either way."""
        return answer_to(lambda: self.create_service(docs))

    def expose(self, *args: str) -> client.V1Service:
        """`kubectl expose ARGS -n <namespace>`; the created Service (named by --name=)."""
        name = next(a.split("=", 1)[1] for a in args if a.startswith("--name="))
        with setup_step(f"kubectl expose {' '.join(args)}"):
            self.cluster.kubectl("expose", *args, "-n", self.namespace)
        return self._created(name)

    def _created(self, name: str) -> client.V1Service:
        service = self.read(name)
        if service.spec.type in NODE_PORT_TYPES:
            self.tracker.on_cleanup(
                self.cluster,
                f"delete Service {self.namespace}/{name} and wait until it is gone (its node ports free)",
                lambda: self.delete_service(name),
            )
        return service

    def read(self, name: str) -> client.V1Service:
        return self.core.read_namespaced_service(name, self.namespace)

    def delete_service(self, name: str) -> None:
        services = self.cluster.dynamic.resources.get(api_version="v1", kind="Service")
        # dynamic: a 1.20 server answers a Service delete with a Status the typed client cannot read
        unless_missing(lambda: services.delete(name=name, namespace=self.namespace))
        wait.gone(
            lambda: self.core.read_namespaced_service(name, self.namespace),
            f"Service {self.namespace}/{name}",
            PORT_RELEASE_TIMEOUT,
        )

    def wait_node_port_free(self, port: int, timeout: float = PORT_RELEASE_TIMEOUT) -> None:
        def holders() -> list[str]:
            return [
                f"{s.metadata.namespace}/{s.metadata.name}"
                for s in self.core.list_service_for_all_namespaces().items
                if any(p.node_port == port for p in (s.spec.ports or []))
            ]

        wait.until_seen(
            holders,
            lambda held_by: not held_by,
            f"nodePort {port} to be free (no Service in the cluster holding it)",
            timeout,
            describe=lambda held_by: f"held by {held_by}",
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
                return "no Endpoints object"
            ready, not_ready = endpoint_ips(ep)
            return f"ready addresses {_fmt(ready)}, not-ready addresses {_fmt(not_ready)}"

        expected = f"Endpoints {self.namespace}/{name} listing the ready pods {_fmt(want)} as ready"
        if want_not_ready:
            expected += f" and {_fmt(want_not_ready)} as not ready"

        def watch(seconds: float) -> client.V1Endpoints:
            return wait.watch_until(
                self.core.list_namespaced_endpoints,
                done,
                expected,
                describe,
                seconds,
                hint=lambda last: "is the endpoints controller running?" if last == "no Endpoints object" else None,
                namespace=self.namespace,
                field_selector=f"metadata.name={name}",
            )

        if timeout <= BROKEN_GRACE:
            return watch(timeout)
        # no Endpoints object at all after the grace, and the cluster's older Services have none
        # either: the endpoints controller is not running, waiting longer is pointless
        try:
            return watch(BROKEN_GRACE)
        except WaitGaveUp:
            raise
        except WaitTimeout as e:
            cause = causes.endpoints_cause(self.cluster) if e.last_seen == "no Endpoints object" else None
            if cause:
                raise WaitGaveUp(expected, cause, BROKEN_GRACE, last_seen=e.last_seen) from None
        try:
            return watch(timeout - BROKEN_GRACE)
        except WaitGaveUp:
            raise
        except WaitTimeout as e:
            raise WaitTimeout(expected, e.last_seen, timeout, hint=e.hint) from None

    def load_balancer_ingress(self, name: str, window: float) -> list[client.V1LoadBalancerIngress]:
        """Watch the Service for `window` seconds; the ingress points it got, or [] if none came."""

        def done(objs: dict[str, client.V1Service]) -> list[client.V1LoadBalancerIngress] | None:
            svc = objs.get(name)
            lb = svc.status.load_balancer if svc is not None and svc.status else None
            return (lb.ingress or None) if lb else None

        return wait.seen_within(
            self.core.list_namespaced_service,
            done,
            window,
            default=[],
            namespace=self.namespace,
            field_selector=f"metadata.name={name}",
        )

    # --- who answers: one call per observed fact ---------------------------------------------

    def assert_answered_by(
        self,
        clients: ClientPod | Sequence[ClientPod],
        service: client.V1Service,
        pods: Backends,
        *,
        port: int | None = None,
        path: str = "/",
        never: Iterable[str] = (),
        note: str = "",
    ) -> None:
        """Requests from each client pod to the Service's ClusterIP:port (a fresh connection each)
        are answered by exactly `pods`: every one of them answers, nothing else does (and none of
        `never`), and once all have answered no more than one request in 20 fails. Fails naming
        who answered, and how many requests failed with which errors."""
        clients = [clients] if isinstance(clients, ClientPod) else list(clients)
        port = port or service.spec.ports[0].port
        url = cluster_ip_url(service, port, path)
        problems = []
        for pod in clients:
            what = f"ClusterIP {service.spec.cluster_ip}:{port} of {describe_service(service)}"
            if pod.node_name:
                what += f" from a pod on node {pod.node_name}"
            if note:
                what += f" ({note})"
            problems.append(self._inside_mismatch(pod, url, what, pods.names, never=never, service=service))
        _assert_none(problems)

    def assert_ports_reach_container_ports(
        self, client_pod: ClientPod, service: client.V1Service, pods: Backends, container_port_of: Mapping[int, int]
    ) -> None:
        """Each Service port is answered by its own container port on every pod: agnhost porter
        answers `port-<container port> <pod>`, so the answer names both."""
        problems = []
        for port, container_port in container_port_of.items():
            what = f"port {port} of {describe_service(service)} ({service.spec.cluster_ip})"
            expected = {f"port-{container_port} {pod}" for pod in pods.names}
            url = cluster_ip_url(service, port)
            problems.append(
                self._inside_mismatch(client_pod, url, what, expected, backend_of=porter_answer, service=service)
            )
        _assert_none(problems)

    def assert_node_port_answered_by(self, service: client.V1Service, pods: Backends) -> None:
        """From the test host, the Service's node port on every node's InternalIP (a fresh
        connection each) is answered by exactly `pods`."""
        node_port = service.spec.ports[0].node_port
        problems = []
        for node in self.cluster.nodes:
            if not node.internal_ip:
                problems.append(f"node {node.name} has no InternalIP")
                continue
            what = f"node port {node_port} of {describe_service(service)} on node {node.name} ({node.internal_ip})"
            problems.append(self._host_mismatch(node_url(node, node_port), what, pods.names, service))
        _assert_none(problems)

    def assert_external_ip_answered_by(self, service: client.V1Service, pods: Backends) -> None:
        """From the test host, each of the Service's externalIPs (node IPs) on its port is
        answered by exactly `pods`."""
        port = service.spec.ports[0].port
        nodes = {n.internal_ip: n.name for n in self.cluster.nodes}
        problems = []
        for ip in service.spec.external_ips or []:
            where = f" (node {nodes[ip]})" if ip in nodes else ""
            what = f"externalIP {ip}:{port}{where} of {describe_service(service)}"
            problems.append(self._host_mismatch(urls.url(ip, port), what, pods.names, service))
        _assert_none(problems)

    def _inside_mismatch(
        self,
        pod: ClientPod,
        url: str,
        what: str,
        expected: set[str],
        *,
        never: Iterable[str] = (),
        backend_of: Callable[[HttpAnswer], str] = hostname_of,
        service: client.V1Service,
    ) -> str | None:
        """Fresh connections from the client pod until every expected backend answered (after a
        first answer: rules may lag behind the Endpoints); the mismatch, or None."""
        try:
            self._first_answer(lambda timeout: pod.await_answer(url, what, timeout), service)
        except WaitTimeout as e:
            result = SampleResult(url, frozenset(expected), errors=[str(e)])
        else:
            result = pod.sample_backends(url, expected, never=never, backend_of=backend_of)
        return answer_mismatch(what, result, expected)

    def _host_mismatch(self, url: str, what: str, expected: set[str], service: client.V1Service) -> str | None:
        """The same from the test host (node IPs only)."""
        try:
            self._first_answer(
                lambda timeout: wait.until(
                    lambda: probe.require_ok(probe.http_get(url)),
                    f"an HTTP answer from {what} ({url})",
                    timeout,
                    describe=str,
                ),
                service,
            )
        except WaitTimeout as e:
            result = SampleResult(url, frozenset(expected), errors=[str(e)])
        else:
            result = probe.sample_backends(url, expected)
        return answer_mismatch(what, result, expected)

    def _first_answer(self, await_answer: Callable[[float], HttpAnswer], service: client.V1Service) -> HttpAnswer:
        """`await_answer(timeout)`: the first answer through `service`. When it cannot route
        (clusterproof.causes.service_cause: kube-proxy on no node, no EndpointSlice while that
        controller is off), it gets BROKEN_GRACE seconds, then gives up naming the cause."""
        cause = causes.service_cause(self.cluster, service.metadata.namespace, service.metadata.name)
        if cause is None:
            return await_answer(ANSWER_TIMEOUT)
        grace = causes.grace_for(self.cluster, cause, BROKEN_GRACE)  # none once another wait gave up on it
        try:
            return await_answer(grace)
        except WaitTimeout as e:
            causes.confirm(self.cluster, cause)
            raise WaitGaveUp(e.expected, cause, grace, last_seen=e.last_seen) from None


def _assert_none(problems: Iterable[str | None]) -> None:
    found = [p for p in problems if p]
    assert not found, "; ".join(found)


def porter_answer(answer: HttpAnswer) -> str:
    """agnhost porter answers "port-80 <pod>": which container port answered, and which pod."""
    return answer.body.strip()


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
    return urls.url(service.spec.cluster_ip, port or service.spec.ports[0].port, path)


def node_url(node: Node, port: int, path: str = "/") -> str:
    return urls.url(node.internal_ip, port, path)


def is_ip(value: str | None) -> bool:
    try:
        ipaddress.ip_address(value or "")
    except ValueError:
        return False
    return True
